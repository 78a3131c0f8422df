#include "ref/fault_alloc.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "rvattn/alloc.h"

static atomic_long count, failed, live;
static atomic_long fail_at = -1; /* 0-based index of the first refused one; -1 none */
static atomic_bool sticky;

static void *fault_alloc(size_t size, size_t align, void *user) {
	(void)user;
	long n = atomic_fetch_add(&count, 1);
	long at = atomic_load(&fail_at);
	if (at >= 0 && (n == at || (n > at && atomic_load(&sticky)))) {
		atomic_fetch_add(&failed, 1);
		return NULL;
	}
	void *p = NULL;
	if (posix_memalign(&p, align, size ? size : 1) != 0)
		return NULL;
	atomic_fetch_add(&live, 1);
	return p;
}

static void fault_free(void *p, void *user) {
	(void)user;
	atomic_fetch_sub(&live, 1);
	free(p);
}

rva_status ref_fault_install(void) {
	ref_fault_arm(-1, false);
	rva_allocator a = {fault_alloc, fault_free, NULL};
	return rva_set_allocator(&a);
}

void ref_fault_uninstall(void) { rva_set_allocator(NULL); }

void ref_fault_arm(long k, bool s) {
	atomic_store(&count, 0);
	atomic_store(&failed, 0);
	atomic_store(&sticky, s);
	atomic_store(&fail_at, k < 0 ? -1 : k);
}

void ref_fault_disarm(void) { atomic_store(&fail_at, -1); }

long ref_fault_count(void) { return atomic_load(&count); }
long ref_fault_failed(void) { return atomic_load(&failed); }
long ref_fault_live(void) { return atomic_load(&live); }

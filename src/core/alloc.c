/* The allocator hook, the default allocator (huge pages for large blocks), caller buffers
 * (rva_buffer_alloc), and the small utilities of core/internal.h. */
#define _GNU_SOURCE 1
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "core/internal.h"
#include "rvattn/alloc.h"

void rva__advise_huge(void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
	uintptr_t lo = ((uintptr_t)p + RVA__HUGE_PAGE - 1) & ~(uintptr_t)(RVA__HUGE_PAGE - 1);
	uintptr_t hi = ((uintptr_t)p + bytes) & ~(uintptr_t)(RVA__HUGE_PAGE - 1);
	/* Best effort: a kernel without transparent huge pages answers EINVAL and the block
	 * keeps ordinary pages. */
	if (hi > lo)
		(void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
	(void)p;
	(void)bytes;
#endif
}

/* Blocks of a huge page or more are 2 MiB-aligned and their whole 2 MiB pages advised
 * MADV_HUGEPAGE before anything touches them (transparent huge pages are often `madvise`
 * only): streaming K/V from 4 KiB pages ran at ~21 GB/s on one core here, from huge pages
 * at ~25 GB/s. Smaller blocks are plain posix_memalign. Only whole huge pages inside the
 * block are advised, so the block never costs more physical memory than it asked for. */
static void *default_alloc(size_t size, size_t align, void *user) {
	(void)user;
	void *p = NULL;
	bool huge = size >= RVA__HUGE_PAGE;
	if (huge && align < RVA__HUGE_PAGE)
		align = RVA__HUGE_PAGE;
	if (posix_memalign(&p, align, size ? size : 1) != 0)
		return NULL;
	if (huge)
		rva__advise_huge(p, size);
	return p;
}

static void default_free(void *p, void *user) {
	(void)user;
	free(p);
}

static rva_allocator current = {default_alloc, default_free, NULL};

rva_status rva_set_allocator(const rva_allocator *a) {
	if (!a) {
		current = (rva_allocator){default_alloc, default_free, NULL};
		return RVA_OK;
	}
	if (!a->alloc || !a->free)
		return rva__fail(RVA_EINVAL, "allocator needs both alloc and free functions");
	current = *a;
	return RVA_OK;
}

rva_status rva_get_allocator(rva_allocator *out) {
	if (!out)
		return rva__fail(RVA_ENULL, "rva_get_allocator: out is NULL");
	*out = current;
	return RVA_OK;
}

rva_status rva_buffer_alloc(size_t bytes, void **out) {
	if (!out)
		return rva__fail(RVA_ENULL, "rva_buffer_alloc: out is NULL");
	*out = NULL;
	if (bytes == 0)
		return rva__fail(RVA_EEMPTY, "rva_buffer_alloc: bytes is 0");
	void *p = current.alloc(bytes, RVA__ALIGN, current.user);
	if (!p)
		return rva__fail(RVA_ENOMEM, "rva_buffer_alloc: cannot allocate %zu bytes", bytes);
	*out = p;
	return RVA_OK;
}

rva_status rva_buffer_free(void *p) {
	rva__free(p);
	return RVA_OK;
}

void *rva__malloc(size_t bytes) {
	return current.alloc(bytes ? bytes : 1, RVA__ALIGN, current.user);
}

void *rva__malloc_aligned(size_t bytes, size_t align) {
	return current.alloc(bytes ? bytes : 1, align > RVA__ALIGN ? align : RVA__ALIGN,
	                     current.user);
}

void *rva__calloc(size_t n, size_t size) {
	size_t bytes;
	if (!rva__mul_ok(n, size, &bytes))
		return NULL;
	void *p = rva__malloc(bytes);
	if (p)
		memset(p, 0, bytes);
	return p;
}

void rva__free(void *p) {
	if (p)
		current.free(p, current.user);
}

rva_status rva__alloc_array(void **out, size_t n, size_t size, const char *what) {
	size_t bytes;
	if (!rva__mul_ok(n, size, &bytes))
		return rva__fail(RVA_EOVERFLOW, "%s: %zu elements of %zu bytes overflow size_t",
		                 what, n, size);
	void *p = rva__malloc(bytes);
	if (!p)
		return rva__fail(RVA_ENOMEM, "%s: cannot allocate %zu bytes", what, bytes);
	*out = p;
	return RVA_OK;
}

char *rva__strdup(const char *s) {
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	char *d = rva__malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

uint64_t rva__now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool rva__name_eq(const char *a, const char *b) {
	for (;; a++, b++) {
		int ca = tolower((unsigned char)*a), cb = tolower((unsigned char)*b);
		if (ca == '-')
			ca = '_';
		if (cb == '-')
			cb = '_';
		if (ca != cb)
			return false;
		if (ca == 0)
			return true;
	}
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void rva__rng_seed(rva__rng *r, uint64_t seed) {
	uint64_t x = seed;
	for (int i = 0; i < 4; i++) {
		x = rva__mix64(x);
		r->s[i] = x;
	}
}

uint64_t rva__rng_next(rva__rng *r) {
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double rva__rng_uniform(rva__rng *r) { return (double)(rva__rng_next(r) >> 11) * 0x1.0p-53; }

double rva__rng_normal(rva__rng *r) {
	double u1 = rva__rng_uniform(r), u2 = rva__rng_uniform(r);
	if (u1 < 1e-300)
		u1 = 1e-300;
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

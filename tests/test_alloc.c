/*
 * Memory: the default allocator gives blocks of 2 MiB or more 2 MiB alignment and advises
 * their huge pages (MADV_HUGEPAGE), for rvattn's own memory (rva__malloc: job memory,
 * scratch, caches), for caller buffers (rva_buffer_alloc) and for the engine's worker
 * scratch; an installed rva_allocator gets plain calls. The advice and the pages really
 * obtained are read back from /proc/self/smaps (VmFlags "hg", AnonHugePages), and what is
 * asserted follows the system's transparent huge page settings
 * (/sys/kernel/mm/transparent_hugepage/enabled and defrag).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "ref/fault_alloc.h"
#include "rvattn/alloc.h"
#include "rvattn/engine.h"
#include "sched/engine_internal.h"

#define MIB ((size_t)1 << 20)

/* The bracketed word of a sysfs setting line ("always [madvise] never" -> "madvise"), or
 * "" when the file is missing (a kernel without transparent huge pages). */
static void thp_setting(const char *file, char *out, size_t cap) {
	out[0] = '\0';
	char path[128], line[256];
	snprintf(path, sizeof path, "/sys/kernel/mm/transparent_hugepage/%s", file);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(line, sizeof line, f)) {
		char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
		if (a && b && (size_t)(b - a - 1) < cap) {
			memcpy(out, a + 1, (size_t)(b - a - 1));
			out[b - a - 1] = '\0';
		}
	}
	fclose(f);
}

typedef struct vma_info {
	bool found, advised; /* advised: VmFlags has "hg" (MADV_HUGEPAGE) */
	size_t anon_huge_kb;
} vma_info;

/* The smaps entry of the mapping that holds p. */
static vma_info vma_of(const void *p) {
	vma_info v = {0};
	FILE *f = fopen("/proc/self/smaps", "r");
	cr_assert(f, "cannot read /proc/self/smaps");
	char line[512];
	bool in = false;
	uintptr_t a = (uintptr_t)p;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char c;
		if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3) { /* a mapping's header */
			in = a >= lo && a < hi;
			v.found |= in;
			continue;
		}
		if (!in)
			continue;
		size_t kb;
		if (sscanf(line, "AnonHugePages: %zu kB", &kb) == 1)
			v.anon_huge_kb = kb;
		if (!strncmp(line, "VmFlags:", 8))
			v.advised = strstr(line, " hg") != NULL;
	}
	fclose(f);
	return v;
}

/* Checks a block of `bytes` (>= 2 MiB) from the default allocator after it was touched. */
static void expect_huge(const void *p, size_t bytes, const char *what) {
	cr_assert_eq((uintptr_t)p % RVA__HUGE_PAGE, 0, "%s: %p is not 2 MiB-aligned", what, p);
	char enabled[32], defrag[32];
	thp_setting("enabled", enabled, sizeof enabled);
	thp_setting("defrag", defrag, sizeof defrag);
	vma_info v = vma_of(p);
	cr_assert(v.found, "%s: no mapping holds %p", what, p);
	if (!enabled[0]) {
		/* no transparent huge pages in this kernel: madvise refused, ordinary pages */
		cr_expect_not(v.advised, "%s: advised although the kernel has no THP", what);
		return;
	}
	cr_expect(v.advised, "%s: the mapping of %p lacks MADV_HUGEPAGE (VmFlags hg)", what, p);
	if (!strcmp(enabled, "never")) {
		cr_expect_eq(v.anon_huge_kb, 0, "%s: huge pages although THP is 'never'", what);
		return;
	}
	/* 'always' or 'madvise': an advised region gets huge pages at fault time when the
	 * kernel compacts for advised regions (defrag always, madvise or defer+madvise). */
	if (!strcmp(defrag, "always") || !strcmp(defrag, "madvise") ||
	    !strcmp(defrag, "defer+madvise"))
		cr_expect_geq(v.anon_huge_kb, bytes / 1024 / 2,
		              "%s: %zu kB of huge pages for a touched %zu kB block (THP %s, defrag "
		              "%s)", what, v.anon_huge_kb, bytes / 1024, enabled, defrag);
}

Test(alloc, buffer_alloc_gives_huge_pages) {
	size_t bytes = 8 * MIB;
	void *p = NULL;
	cr_assert_eq(rva_buffer_alloc(bytes, &p), RVA_OK, "%s", rva_last_error());
	cr_assert(p);
	memset(p, 1, bytes); /* first touch */
	expect_huge(p, bytes, "rva_buffer_alloc");
	cr_expect_eq(((unsigned char *)p)[bytes - 1], 1);
	cr_expect_eq(rva_buffer_free(p), RVA_OK);
	/* small buffers are plain (cache-line aligned) */
	cr_assert_eq(rva_buffer_alloc(100, &p), RVA_OK);
	cr_expect_eq((uintptr_t)p % 64, 0);
	rva_buffer_free(p);
	cr_expect_eq(rva_buffer_free(NULL), RVA_OK);
}

Test(alloc, internal_blocks_get_huge_pages) {
	/* job memory, scratch and caches all come from rva__malloc */
	size_t bytes = 6 * MIB + 12345;
	unsigned char *p = rva__malloc(bytes);
	cr_assert(p);
	memset(p, 2, bytes);
	expect_huge(p, 6 * MIB, "rva__malloc");
	rva__free(p);
}

Test(alloc, engine_scratch_gets_huge_pages) {
	rva_engine_config c = rva_engine_config_defaults();
	c.threads = 1;
	c.scratch_bytes = 4 * MIB;
	rva_engine *e;
	cr_assert_eq(rva_engine_create(&c, &e), RVA_OK, "%s", rva_last_error());
	/* the worker first-touched its scratch at team start */
	const rva__scratch *s = e->workers[0].scratch;
	cr_assert_geq(s->size, 4 * MIB);
	vma_info v = vma_of(s->data);
	char enabled[32];
	thp_setting("enabled", enabled, sizeof enabled);
	cr_expect(v.found);
	if (enabled[0])
		cr_expect(v.advised, "worker scratch is not advised MADV_HUGEPAGE");
	rva_engine_destroy(e);
}

/* ---- an installed allocator gets plain calls ------------------------------------------ */

static size_t seen_size, seen_align;
static int seen_frees;

static void *plain_alloc(size_t size, size_t align, void *user) {
	(void)user;
	seen_size = size;
	seen_align = align;
	void *p = NULL;
	return posix_memalign(&p, align, size) ? NULL : p;
}

static void plain_free(void *p, void *user) {
	(void)user;
	seen_frees++;
	free(p);
}

Test(alloc, installed_allocator_gets_plain_calls) {
	rva_allocator a = {plain_alloc, plain_free, NULL};
	cr_assert_eq(rva_set_allocator(&a), RVA_OK);
	void *p = NULL;
	cr_assert_eq(rva_buffer_alloc(8 * MIB, &p), RVA_OK);
	cr_expect_eq(seen_size, 8 * MIB);
	cr_expect_eq(seen_align, 64, "the hook was asked for alignment %zu", seen_align);
	memset(p, 0, 8 * MIB);
	cr_expect_eq(rva_buffer_free(p), RVA_OK);
	cr_expect_eq(seen_frees, 1);
	void *q = rva__malloc(4 * MIB);
	cr_expect_eq(seen_align, 64);
	rva__free(q);
	cr_assert_eq(rva_set_allocator(NULL), RVA_OK);
}

Test(alloc, buffer_alloc_errors) {
	void *p = (void *)1;
	cr_expect_eq(rva_buffer_alloc(16, NULL), RVA_ENULL);
	cr_expect_eq(rva_buffer_alloc(0, &p), RVA_EEMPTY);
	cr_expect_null(p);
	/* out of memory (the fault-injection allocator refuses the call) */
	cr_assert_eq(ref_fault_install(), RVA_OK);
	ref_fault_arm(0, false);
	p = (void *)1;
	cr_expect_eq(rva_buffer_alloc(4 * MIB, &p), RVA_ENOMEM);
	cr_expect_null(p);
	cr_expect(strstr(rva_last_error(), "cannot allocate 4194304 bytes") != NULL, "%s",
	          rva_last_error());
	cr_expect_eq(ref_fault_failed(), 1);
	cr_expect_eq(ref_fault_live(), 0);
	ref_fault_uninstall();
}

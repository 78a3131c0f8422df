/*
 * NUMA-true job memory and placement: intermediates (rva__graph_alloc_untouched) are whole
 * pages of their own that the planner never touches, first-touched by the tasks that write
 * them (checked with mincore before and after the job, and their real node with
 * hwloc_get_area_memlocation: on a one-node machine, that node); arena blocks handed to the
 * interleave binder are page-aligned whole pages; sequences are placed by where Q, K and V
 * live together (the decision on synthetic multi-node topologies).
 */
#define _GNU_SOURCE 1
#include <criterion/criterion.h>
#include <hwloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/internal.h"
#include "graph/graph.h"
#include "rvattn/engine.h"
#include "sched/engine_internal.h"

#define MIB ((size_t)1 << 20)
#define PAGE ((size_t)4096)

#if defined(__SANITIZE_ADDRESS__)
/* AddressSanitizer's allocator writes the first 4 KiB of every new block (its
 * max_malloc_fill_size): that would be a touch the library did not make. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "max_malloc_fill_size=0"; }
#endif

/* Pages of [p, p + bytes) resident in memory (p page-aligned). */
static size_t resident_pages(const void *p, size_t bytes) {
	size_t n = (bytes + PAGE - 1) / PAGE, got = 0;
	unsigned char *vec = malloc(n);
	cr_assert(vec);
	cr_assert_eq(mincore((void *)p, bytes, vec), 0, "mincore failed");
	for (size_t i = 0; i < n; i++)
		got += vec[i] & 1;
	free(vec);
	return got;
}

/* ---- placement decisions ------------------------------------------------------------- */

Test(placement, home_node_counts_q_k_and_v) {
	/* decode: one query row on node 1, K and V (4096 rows each) on node 0 -> node 0 */
	cr_expect_eq(rva__seq_home_node((int[]){1, 0, 0}, (double[]){768, 3e6, 3e6}), 0);
	/* prefill, all on one node */
	cr_expect_eq(rva__seq_home_node((int[]){2, 2, 2}, (double[]){1e6, 1e6, 1e6}), 2);
	/* K on node 3, Q and V on node 1: V and Q together outweigh K */
	cr_expect_eq(rva__seq_home_node((int[]){1, 3, 1}, (double[]){10, 100, 100}), 1);
	/* K alone is the biggest */
	cr_expect_eq(rva__seq_home_node((int[]){1, 3, 2}, (double[]){10, 100, 90}), 3);
	/* ties go to the earlier tensor (Q, then K) */
	cr_expect_eq(rva__seq_home_node((int[]){1, 0, -1}, (double[]){50, 50, 0}), 1);
	/* unknown locations are ignored; none known -> -1 */
	cr_expect_eq(rva__seq_home_node((int[]){-1, 4, -1}, (double[]){9e9, 1, 9e9}), 4);
	cr_expect_eq(rva__seq_home_node((int[]){-1, -1, -1}, (double[]){1, 1, 1}), -1);
}

/* The pool of plan p whose NUMA node has OS index os (or UINT_MAX). */
static unsigned pool_of_node(const rva__sched_plan *p, unsigned os) {
	for (unsigned i = 0; i < p->npools; i++)
		if (p->pools[i].numa_os == os)
			return i;
	return UINT32_MAX;
}

Test(placement, decode_goes_to_the_node_of_its_keys) {
	/* four NUMA nodes (two per package), four cores each */
	rva_engine_config c = rva_engine_config_defaults();
	c.topology_synthetic = "package:2 numa:2 core:4 pu:1";
	c.threads = 8;
	c.spin_us = 0;
	rva_engine *e;
	cr_assert_eq(rva_engine_create(&c, &e), RVA_OK, "%s", rva_last_error());
	const rva__sched_plan *p = rva__engine_plan(e);
	cr_assert_eq(p->npools, 4);
	for (unsigned kv = 0; kv < 4; kv++) {
		unsigned qn = (kv + 1) % 4;
		int node = rva__seq_home_node((int[]){(int)qn, (int)kv, (int)kv},
		                              (double[]){768, 4096.0 * 768, 4096.0 * 768});
		cr_expect_eq(node, (int)kv);
		unsigned pool = rva__sched_place(p, RVA_NUMA_LOCAL, 5, 16, node);
		cr_expect_eq(pool, pool_of_node(p, kv), "K/V on node %u went to pool %u", kv, pool);
		cr_expect_neq(pool, pool_of_node(p, qn), "placed by the query's node");
	}
	rva_engine_destroy(e);
}

/* ---- job memory first-touched by its writers ----------------------------------------- */

typedef struct writer {
	unsigned char *mem;
	size_t half;
	atomic_size_t resident_at_start; /* pages resident when the first task began */
	atomic_int first;
} writer;

static rva_status write_half(const rva__task *t, rva__exec_ctx *x) {
	(void)x;
	writer *w = (writer *)t->ctx;
	int expected = 0;
	if (atomic_compare_exchange_strong(&w->first, &expected, 1))
		atomic_store(&w->resident_at_start, resident_pages(w->mem, 2 * w->half));
	memset(w->mem + t->a * w->half, 0x5a, w->half);
	return RVA_OK;
}

/* The OS index of the real machine's first NUMA node. */
static unsigned real_node(void) {
	hwloc_topology_t t;
	cr_assert_eq(hwloc_topology_init(&t), 0);
	cr_assert_eq(hwloc_topology_load(t), 0);
	hwloc_obj_t n = hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, 0);
	cr_assert(n);
	unsigned os = n->os_index;
	cr_expect_eq(hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE), 1,
	             "this test expects a one-node machine (it checks node %u)", os);
	hwloc_topology_destroy(t);
	return os;
}

Test(job_memory, untouched_until_the_writing_tasks_run) {
	/* two fake NUMA domains over the two real cores, binding real */
	rva_engine_config c = rva_engine_config_defaults();
	c.topology_synthetic = "package:2 [numa] core:1 pu:1";
	c.assume_this_system = true;
	c.threads = 2;
	c.spin_us = 0;
	rva_engine *e;
	cr_assert_eq(rva_engine_create(&c, &e), RVA_OK, "%s", rva_last_error());
	rva__graph g;
	rva__graph_init(&g, 2);
	/* descriptors first (zeroed by the planner), then 64 MiB of intermediates: more than
	 * glibc ever serves from its heap, so the pages are fresh */
	void *small = rva__graph_alloc(&g, 100);
	cr_assert(small);
	writer w = {.half = 32 * MIB};
	w.mem = rva__graph_alloc_untouched(&g, 2, w.half);
	cr_assert(w.mem, "%s", rva_last_error());
	cr_expect_eq((uintptr_t)w.mem % RVA__HUGE_PAGE, 0, "large intermediates are huge-page aligned");
	void *after = rva__graph_alloc(&g, 100);
	cr_assert(after);
	/* nothing else shares its pages */
	uintptr_t lo = (uintptr_t)w.mem, hi = lo + 2 * w.half;
	cr_expect((uintptr_t)small + 100 <= lo || (uintptr_t)small >= hi);
	cr_expect((uintptr_t)after + 100 <= lo || (uintptr_t)after >= hi);
	cr_expect_eq(resident_pages(w.mem, 2 * w.half), 0, "the planner touched job memory");
	uint32_t id;
	for (uint32_t h = 0; h < 2; h++)
		cr_assert_eq(rva__graph_add(&g, write_half, &w, h, h, 0, 0, 0, 1.0f, &id), RVA_OK);
	cr_assert_eq(rva__graph_finalize(&g), RVA_OK);
	cr_expect_eq(resident_pages(w.mem, 2 * w.half), 0, "finalizing touched job memory");
	cr_assert_eq(rva__engine_run_graph(e, &g, NULL, NULL), RVA_OK, "%s", rva_last_error());
	cr_expect_eq(atomic_load(&w.resident_at_start), 0, "pages were resident before the tasks");
	cr_expect_eq(resident_pages(w.mem, 2 * w.half), 2 * w.half / PAGE);
	cr_expect_eq(w.mem[0], 0x5a);
	cr_expect_eq(w.mem[2 * w.half - 1], 0x5a);
	/* where the pages really are: on this one-node machine, its node */
	hwloc_topology_t t;
	cr_assert_eq(hwloc_topology_init(&t), 0);
	cr_assert_eq(hwloc_topology_load(t), 0);
	hwloc_nodeset_t ns = hwloc_bitmap_alloc();
	unsigned node = real_node();
	for (int h = 0; h < 2; h++) {
		cr_assert_eq(hwloc_get_area_memlocation(t, w.mem + h * w.half, w.half, ns,
		                                        HWLOC_MEMBIND_BYNODESET), 0);
		cr_expect_eq(hwloc_bitmap_weight(ns), 1, "half %d spans %d nodes", h,
		             hwloc_bitmap_weight(ns));
		cr_expect(hwloc_bitmap_isset(ns, node), "half %d is not on node %u", h, node);
	}
	hwloc_bitmap_free(ns);
	hwloc_topology_destroy(t);
	rva__graph_free(&g);
	rva_engine_destroy(e);
}

/* ---- interleaving binds only whole pages of the arena's own blocks -------------------- */

static size_t bound_calls, bound_bad;

static void record_bind(void *ptr, size_t bytes, void *user) {
	(void)user;
	bound_calls++;
	if ((uintptr_t)ptr % PAGE || bytes % PAGE || !bytes)
		bound_bad++;
}

Test(job_memory, binder_sees_whole_pages) {
	rva__arena_cache *cache;
	cr_assert_eq(rva__arena_cache_create(64 * MIB, &cache), RVA_OK);
	rva__arena_cache_set_binder(cache, record_bind, NULL);
	rva__graph g;
	rva__graph_init_cached(&g, 1, cache);
	size_t sizes[] = {100, 70000, 5, 3 * MIB + 7, 12345, 1};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		cr_assert(rva__graph_alloc(&g, sizes[i]));
		unsigned char *u = rva__graph_alloc_untouched(&g, 1, sizes[i]);
		cr_assert(u);
		cr_expect_eq((uintptr_t)u % PAGE, 0, "untouched block of %zu bytes not page-aligned",
		             sizes[i]);
	}
	cr_expect_gt(bound_calls, 0);
	cr_expect_eq(bound_bad, 0, "%zu of %zu bound ranges were not whole pages", bound_bad,
	             bound_calls);
	/* a zeroed allocation after an untouched one starts on a fresh page */
	unsigned char *u = rva__graph_alloc_untouched(&g, 1, 10);
	unsigned char *z = rva__graph_alloc(&g, 10);
	cr_expect((uintptr_t)z >= (uintptr_t)u + PAGE || (uintptr_t)z + 10 <= (uintptr_t)u,
	          "a zeroed allocation shares the untouched block's page");
	rva__graph_free(&g);
	rva__arena_cache_destroy(cache);
}

/*
 * The engine's topology side: the cpu-set parser (valid and invalid strings with their
 * exact statuses), the placement planner on synthetic and XML topologies (pools, worker
 * -> core map, round-robin thread selection, stealing order, sequence placement), and
 * engines created on them (real binding on the two real cores with a fake two-domain
 * topology marked as this system).
 */
#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hwloc.h>

#include "rvattn/engine.h"
#include "sched/cpuset.h"
#include "sched/engine_internal.h"
#include "sched/topology.h"

static hwloc_topology_t load_synthetic(const char *desc) {
	hwloc_topology_t t;
	cr_assert_eq(hwloc_topology_init(&t), 0);
	cr_assert_eq(hwloc_topology_set_synthetic(t, desc), 0, "synthetic %s", desc);
	cr_assert_eq(hwloc_topology_load(t), 0);
	return t;
}

static const char *fixture(const char *name) {
	static char path[4096];
	char here[4096];
	snprintf(here, sizeof here, "%s", __FILE__);
	snprintf(path, sizeof path, "%s/fixtures/%s", dirname(here), name);
	return path;
}

static hwloc_topology_t load_xml(const char *name) {
	hwloc_topology_t t;
	cr_assert_eq(hwloc_topology_init(&t), 0);
	cr_assert_eq(hwloc_topology_set_xml(t, fixture(name)), 0, "xml %s", fixture(name));
	cr_assert_eq(hwloc_topology_load(t), 0);
	return t;
}

/* Parses spec and returns the PU list string (or the status in *st). */
static rva_status parse(hwloc_topology_t t, const char *spec, char *list, size_t n) {
	hwloc_bitmap_t b = hwloc_bitmap_alloc();
	rva_status st = rva__cpuset_parse(t, spec, b);
	if (st == RVA_OK)
		hwloc_bitmap_list_snprintf(list, n, b);
	hwloc_bitmap_free(b);
	return st;
}

#define SYN16 "package:2 numa:2 core:4 pu:1"  /* 2 packages x 2 NUMA x 4 cores */
#define SYN32 "numa:4 core:8 pu:1"            /* 4 NUMA x 8 cores */

/* ---- the cpu-set parser ------------------------------------------------------------ */

Test(cpuset, valid_strings) {
	hwloc_topology_t t = load_synthetic("package:2 numa:2 core:4 pu:2"); /* 32 PUs */
	struct { const char *spec, *want; } cases[] = {
		{"0-3,8", "0-3,8"},
		{"5", "5"},
		{"0-99", "0-31"},            /* a range may run past the end */
		{"all", "0-31"},
		{"core:0-3", "0-7"},         /* cores have 2 PUs each */
		{"core:3", "6-7"},
		{"CORE:1", "2-3"},
		{"numa:1", "8-15"},
		{"node:3", "24-31"},
		{"numa:all", "0-31"},
		{"package:0", "0-15"},
		{"socket:1", "16-31"},
		{"pu:2-5", "2-5"},
		{"core:0-1,3 8", "0-3,6-8"}, /* the prefix holds for the comma list, not after space */
		{"core:0,numa:3", "0-1,24-31"},
		{"  1  2\t4 ", "1-2,4"},
		{"core:15,0", "0-1,30-31"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char list[128] = "";
		rva_status st = parse(t, cases[i].spec, list, sizeof list);
		cr_assert_eq(st, RVA_OK, "\"%s\": %s (%s)", cases[i].spec, rva_status_name(st),
		             rva_last_error());
		cr_expect_str_eq(list, cases[i].want, "\"%s\"", cases[i].spec);
	}
	hwloc_topology_destroy(t);
}

Test(cpuset, invalid_strings) {
	hwloc_topology_t t = load_synthetic("package:2 numa:2 core:4 pu:2");
	struct { const char *spec; rva_status st; const char *msg; } cases[] = {
		{"", RVA_EINVAL, "no items"},
		{"   ", RVA_EINVAL, "no items"},
		{"core:", RVA_EINVAL, "expected a number at offset 5"},
		{"core:x", RVA_EINVAL, "expected an index range or 'all' at offset 5"},
		{"foo:1", RVA_EINVAL, "unknown object type 'foo'"},
		{"3-1", RVA_EINVAL, "range 3-1 at offset 0 is reversed"},
		{"1-", RVA_EINVAL, "expected a number at offset 2"},
		{"-1", RVA_EINVAL, "expected a number at offset 0"},
		{"1,,2", RVA_EINVAL, "expected an item after ','"},
		{"1,", RVA_EINVAL, "expected an item after ','"},
		{"1x", RVA_EINVAL, "unexpected character at offset 1"},
		{"1;2", RVA_EINVAL, "unexpected character at offset 1"},
		{"cores", RVA_EINVAL, "expected a PU number or TYPE:RANGE at offset 0"},
		{"99999999", RVA_EINVAL, "exceeds 1048575"},
		{"64", RVA_ENOTFOUND, "PU 64 (item at offset 0) does not exist"},
		{"40-50", RVA_ENOTFOUND, "none of PUs 40-50"},
		{"1 64", RVA_ENOTFOUND, "PU 64 (item at offset 2)"},
		{"core:16", RVA_ENOTFOUND, "core 16 (item at offset 0) does not exist (the "
		                           "topology has 16 cores, 0-15)"},
		{"numa:4", RVA_ENOTFOUND, "NUMA node 4"},
		{"package:2-3", RVA_ENOTFOUND, "none of packages 2-3"},
		{"core:0,package:9", RVA_ENOTFOUND, "package 9 (item at offset 7)"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char list[128];
		rva_status st = parse(t, cases[i].spec, list, sizeof list);
		cr_expect_eq(st, cases[i].st, "\"%s\": got %s, want %s (%s)", cases[i].spec,
		             rva_status_name(st), rva_status_name(cases[i].st), rva_last_error());
		cr_expect(strstr(rva_last_error(), cases[i].msg) != NULL, "\"%s\": message \"%s\" lacks "
		          "\"%s\"", cases[i].spec, rva_last_error(), cases[i].msg);
		cr_expect(strstr(rva_last_error(), "cpu set \"") != NULL, "message quotes the spec");
	}
	cr_expect_eq(rva__cpuset_parse(t, NULL, NULL), RVA_ENULL);
	hwloc_topology_destroy(t);
}

Test(cpuset, no_cores_in_topology) {
	hwloc_topology_t t = load_synthetic("numa:2 pu:4");
	char list[64];
	cr_expect_eq(parse(t, "core:0", list, sizeof list), RVA_ENOTFOUND);
	cr_expect(strstr(rva_last_error(), "has no cores") != NULL, "%s", rva_last_error());
	cr_expect_eq(parse(t, "numa:1", list, sizeof list), RVA_OK);
	cr_expect_str_eq(list, "4-7");
	hwloc_topology_destroy(t);
}

/* ---- the planner ---------------------------------------------------------------------- */

Test(planner, two_packages_four_numa) {
	hwloc_topology_t t = load_synthetic(SYN16);
	rva__sched_plan p;
	cr_assert_eq(rva__sched_plan_make(t, NULL, NULL, false, 0, &p), RVA_OK, "%s",
	             rva_last_error());
	cr_expect_eq(p.npools, 4);
	cr_expect_eq(p.nworkers, 16);
	cr_expect_eq(p.available, 16);
	for (unsigned w = 0; w < 16; w++) {
		cr_expect_eq(p.workers[w].pool, w / 4, "worker %u", w);
		cr_expect_eq(p.workers[w].numa_os, w / 4);
		cr_expect_eq(p.workers[w].core_logical, w);
		cr_expect_eq(p.workers[w].pu_os, w);
	}
	for (unsigned q = 0; q < 4; q++) {
		cr_expect_eq(p.pools[q].first_worker, 4 * q);
		cr_expect_eq(p.pools[q].nworkers, 4);
		cr_expect_eq(p.pools[q].package, (int)(q / 2));
	}
	/* same package first, then the other package in ring order */
	unsigned want[4][3] = {{1, 2, 3}, {0, 2, 3}, {3, 0, 1}, {2, 0, 1}};
	for (unsigned q = 0; q < 4; q++)
		for (unsigned k = 0; k < 3; k++)
			cr_expect_eq(p.pools[q].steal[k], want[q][k], "pool %u steal %u", q, k);
	char list[64];
	hwloc_bitmap_list_snprintf(list, sizeof list, p.allowed);
	cr_expect_str_eq(list, "0-15");
	rva__sched_plan_free(&p);
	hwloc_topology_destroy(t);
}

Test(planner, threads_round_robin_over_domains) {
	hwloc_topology_t t = load_synthetic(SYN16);
	rva__sched_plan p;
	/* 2 threads on 4 domains: the first two domains, one worker each */
	cr_assert_eq(rva__sched_plan_make(t, NULL, NULL, false, 2, &p), RVA_OK);
	cr_expect_eq(p.npools, 2);
	cr_expect_eq(p.workers[0].core_logical, 0);
	cr_expect_eq(p.workers[1].core_logical, 4);
	cr_expect_eq(p.workers[1].pool, 1);
	cr_expect_eq(p.pools[1].numa_os, 1);
	rva__sched_plan_free(&p);
	/* 6 threads: one per domain, then a second in domains 0 and 1 */
	cr_assert_eq(rva__sched_plan_make(t, NULL, NULL, false, 6, &p), RVA_OK);
	cr_expect_eq(p.npools, 4);
	unsigned cores[6] = {0, 1, 4, 5, 8, 12}, pools[6] = {0, 0, 1, 1, 2, 3};
	for (unsigned w = 0; w < 6; w++) {
		cr_expect_eq(p.workers[w].core_logical, cores[w], "worker %u", w);
		cr_expect_eq(p.workers[w].pool, pools[w], "worker %u", w);
	}
	cr_expect_eq(p.pools[2].nworkers, 1);
	rva__sched_plan_free(&p);
	/* too many */
	cr_expect_eq(rva__sched_plan_make(t, NULL, NULL, false, 17, &p), RVA_EINVAL);
	cr_expect(strstr(rva_last_error(), "threads 17 exceeds the 16 allowed cores") != NULL, "%s",
	          rva_last_error());
	cr_expect_null(p.workers);
	hwloc_topology_destroy(t);
}

Test(planner, four_numa_eight_cores) {
	hwloc_topology_t t = load_synthetic(SYN32);
	rva__sched_plan p;
	cr_assert_eq(rva__sched_plan_make(t, NULL, NULL, false, 0, &p), RVA_OK);
	cr_expect_eq(p.npools, 4);
	cr_expect_eq(p.nworkers, 32);
	for (unsigned q = 0; q < 4; q++) {
		cr_expect_eq(p.pools[q].package, -1);
		cr_expect_eq(p.pools[q].nworkers, 8);
		for (unsigned k = 0; k < 3; k++) /* no packages: plain ring order */
			cr_expect_eq(p.pools[q].steal[k], (q + 1 + k) % 4);
	}
	cr_expect_eq(p.workers[13].pool, 1);
	cr_expect_eq(p.workers[13].pu_os, 13);
	rva__sched_plan_free(&p);
	hwloc_topology_destroy(t);
}

Test(planner, asymmetric_xml) {
	/* package 0: NUMA 0 with 4 cores x 2 PUs; package 1: NUMA 1 with 2 cores x 2 PUs */
	hwloc_topology_t t = load_xml("topo_asym_6c.xml");
	rva__sched_plan p;
	cr_assert_eq(rva__sched_plan_make(t, NULL, NULL, false, 0, &p), RVA_OK, "%s",
	             rva_last_error());
	cr_expect_eq(p.npools, 2);
	cr_expect_eq(p.nworkers, 6);
	cr_expect_eq(p.pools[0].nworkers, 4);
	cr_expect_eq(p.pools[1].nworkers, 2);
	unsigned pu[6] = {0, 2, 4, 6, 8, 10};
	for (unsigned w = 0; w < 6; w++) {
		cr_expect_eq(p.workers[w].pu_os, pu[w], "worker %u binds to the first PU of its core",
		             w);
		cr_expect_eq(p.workers[w].core_logical, w);
	}
	cr_expect_eq(p.pools[0].steal[0], 1);
	cr_expect_eq(p.pools[1].steal[0], 0);
	rva__sched_plan_free(&p);

	cr_assert_eq(rva__sched_plan_make(t, NULL, NULL, true, 0, &p), RVA_OK);
	cr_expect_eq(p.nworkers, 12);
	cr_expect_eq(p.pools[0].nworkers, 8);
	cr_expect_eq(p.pools[1].nworkers, 4);
	cr_expect_eq(p.workers[9].pu_os, 9);
	cr_expect_eq(p.workers[9].core_logical, 4);
	rva__sched_plan_free(&p);

	/* 5 threads: 0,1 / 0,1 / 0 -> 3 + 2 */
	cr_assert_eq(rva__sched_plan_make(t, NULL, NULL, false, 5, &p), RVA_OK);
	cr_expect_eq(p.pools[0].nworkers, 3);
	cr_expect_eq(p.pools[1].nworkers, 2);
	rva__sched_plan_free(&p);
	cr_expect_eq(rva__sched_plan_make(t, NULL, NULL, false, 7, &p), RVA_EINVAL);
	hwloc_topology_destroy(t);
}

Test(planner, cpu_set_spanning_two_domains_partly) {
	hwloc_topology_t t = load_synthetic(SYN16);
	rva__sched_plan p;
	cr_assert_eq(rva__sched_plan_make(t, NULL, "2-5", false, 0, &p), RVA_OK);
	cr_expect_eq(p.npools, 2);
	cr_expect_eq(p.nworkers, 4);
	cr_expect_eq(p.pools[0].numa_os, 0);
	cr_expect_eq(p.pools[1].numa_os, 1);
	unsigned cores[4] = {2, 3, 4, 5};
	for (unsigned w = 0; w < 4; w++) {
		cr_expect_eq(p.workers[w].core_logical, cores[w]);
		cr_expect_eq(p.workers[w].pool, w / 2);
	}
	/* the two pools are in one package: each steals from the other */
	cr_expect_eq(p.pools[0].steal[0], 1);
	rva__sched_plan_free(&p);

	/* crossing a package boundary: pools 0 (core 7) and 1 (cores 8-9) of different
	 * packages; 3 threads go 1 + 2 */
	cr_assert_eq(rva__sched_plan_make(t, NULL, "core:7-9", false, 3, &p), RVA_OK);
	cr_expect_eq(p.npools, 2);
	cr_expect_eq(p.pools[0].numa_os, 1);
	cr_expect_eq(p.pools[1].numa_os, 2);
	cr_expect_eq(p.pools[0].nworkers, 1);
	cr_expect_eq(p.pools[1].nworkers, 2);
	cr_expect_eq(p.pools[0].package, 0);
	cr_expect_eq(p.pools[1].package, 1);
	rva__sched_plan_free(&p);

	/* the process binding limits the set; the user set is intersected with it */
	hwloc_bitmap_t bind = hwloc_bitmap_alloc();
	hwloc_bitmap_set_range(bind, 0, 5);
	cr_assert_eq(rva__sched_plan_make(t, bind, "numa:1", false, 0, &p), RVA_OK);
	cr_expect_eq(p.nworkers, 2); /* PUs 4-5 */
	char list[64];
	hwloc_bitmap_list_snprintf(list, sizeof list, p.allowed);
	cr_expect_str_eq(list, "4-5");
	rva__sched_plan_free(&p);
	cr_expect_eq(rva__sched_plan_make(t, bind, "numa:2", false, 0, &p), RVA_ENOTFOUND);
	cr_expect(strstr(rva_last_error(), "none of which is allowed (allowed PUs: 0-5)") != NULL,
	          "%s", rva_last_error());
	cr_expect_eq(rva__sched_plan_make(t, bind, "numa:9", false, 0, &p), RVA_ENOTFOUND);
	cr_expect_eq(rva__sched_plan_make(t, bind, "numa:", false, 0, &p), RVA_EINVAL);
	hwloc_bitmap_free(bind);
	hwloc_topology_destroy(t);
}

Test(planner, sequence_placement) {
	hwloc_topology_t t = load_synthetic(SYN16);
	rva__sched_plan p;
	cr_assert_eq(rva__sched_plan_make(t, NULL, NULL, false, 0, &p), RVA_OK);
	/* local: the pool of the node holding the data */
	cr_expect_eq(rva__sched_place(&p, RVA_NUMA_LOCAL, 0, 8, 2), 2);
	cr_expect_eq(rva__sched_place(&p, RVA_NUMA_LOCAL, 7, 8, 1), 1);
	/* local, unknown location: contiguous blocks */
	unsigned blocks[8] = {0, 0, 1, 1, 2, 2, 3, 3};
	for (unsigned s = 0; s < 8; s++)
		cr_expect_eq(rva__sched_place(&p, RVA_NUMA_LOCAL, s, 8, -1), blocks[s]);
	cr_expect_eq(rva__sched_place(&p, RVA_NUMA_LOCAL, 2, 3, -1), 2);
	/* a node without a pool falls back to blocks too */
	cr_expect_eq(rva__sched_place(&p, RVA_NUMA_LOCAL, 5, 8, 9), 2);
	for (unsigned s = 0; s < 8; s++)
		cr_expect_eq(rva__sched_place(&p, RVA_NUMA_SPREAD, s, 8, 0), s % 4);
	cr_expect_eq(rva__sched_place(&p, RVA_NUMA_INTERLEAVE, 3, 8, 0), RVA__ANY_POOL);
	rva__sched_plan_free(&p);
	/* one pool: everything goes there */
	cr_assert_eq(rva__sched_plan_make(t, NULL, "numa:3", false, 0, &p), RVA_OK);
	cr_expect_eq(rva__sched_place(&p, RVA_NUMA_SPREAD, 5, 8, -1), 0);
	rva__sched_plan_free(&p);
	hwloc_topology_destroy(t);
}

Test(planner, cores_without_core_objects) {
	hwloc_topology_t t = load_synthetic("numa:2 pu:3");
	rva__sched_plan p;
	cr_assert_eq(rva__sched_plan_make(t, NULL, NULL, false, 0, &p), RVA_OK);
	cr_expect_eq(p.nworkers, 6); /* every PU stands for a core */
	cr_expect_eq(p.pools[1].first_worker, 3);
	rva__sched_plan_free(&p);
	hwloc_topology_destroy(t);
}

/* ---- engines on synthetic topologies ----------------------------------------------- */

static rva_engine_config small_cfg(void) {
	rva_engine_config c = rva_engine_config_defaults();
	c.scratch_bytes = 64 << 10;
	c.spin_us = 20;
	return c;
}

Test(engine_topology, synthetic_not_this_system) {
	rva_engine_config c = small_cfg();
	c.topology_synthetic = SYN16;
	rva_engine *e;
	cr_assert_eq(rva_engine_create(&c, &e), RVA_OK, "%s", rva_last_error());
	rva_engine_info info;
	cr_assert_eq(rva_engine_info_get(e, &info), RVA_OK);
	cr_expect_eq(info.workers, 16);
	cr_expect_eq(info.pools, 4);
	cr_expect_not(info.binding_real);
	cr_expect_str_eq(info.topology, "synthetic: " SYN16);
	cr_expect_str_eq(info.cpuset, "0-15");
	for (unsigned i = 0; i < 16; i++) {
		rva_worker_info w;
		cr_assert_eq(rva_engine_worker(e, i, &w), RVA_OK);
		cr_expect_eq(w.index, i);
		cr_expect_eq(w.pool, i / 4);
		cr_expect_eq(w.numa_os_index, i / 4);
		cr_expect_eq(w.core_index, i);
		cr_expect_eq(w.pu_os_index, i);
		cr_expect_not(w.bound, "binding is a no-op on a topology that is not this system");
		cr_expect_eq(w.observed_pu, -1);
		cr_expect_not(w.scratch_on_node);
		cr_expect_eq(w.tasks, 0);
	}
	rva_worker_info w;
	cr_expect_eq(rva_engine_worker(e, 16, &w), RVA_ERANGE);
	cr_expect_eq(rva_engine_worker(e, 0, NULL), RVA_ENULL);
	cr_expect_eq(rva_engine_info_get(NULL, &info), RVA_ENULL);
	cr_expect_eq(rva_engine_destroy(e), RVA_OK);
}

Test(engine_topology, xml_fixture_and_options) {
	rva_engine_config c = small_cfg();
	c.topology_xml = fixture("topo_asym_6c.xml");
	c.per_pu = true;
	c.threads = 5;
	c.cpus = "core:1-5";
	rva_engine *e;
	cr_assert_eq(rva_engine_create(&c, &e), RVA_OK, "%s", rva_last_error());
	rva_engine_info info;
	rva_engine_info_get(e, &info);
	cr_expect_eq(info.workers, 5);
	cr_expect_eq(info.pools, 2);
	cr_expect_str_eq(info.cpuset, "2-11");
	cr_expect(strncmp(info.topology, "xml: ", 5) == 0, "%s", info.topology);
	/* PUs 2-7 in domain 0, 8-11 in domain 1: round robin 0,1,0,1,0 -> 3 + 2 */
	unsigned pus[5] = {2, 3, 4, 8, 9};
	for (unsigned i = 0; i < 5; i++) {
		rva_worker_info w;
		rva_engine_worker(e, i, &w);
		cr_expect_eq(w.pu_os_index, pus[i], "worker %u on PU %u", i, w.pu_os_index);
	}
	rva_engine_destroy(e);
}

Test(engine_topology, environment_synthetic) {
	setenv("HWLOC_SYNTHETIC", "numa:2 core:2 pu:1", 1);
	rva_engine_config c = small_cfg();
	rva_engine *e;
	cr_assert_eq(rva_engine_create(&c, &e), RVA_OK, "%s", rva_last_error());
	rva_engine_info info;
	rva_engine_info_get(e, &info);
	cr_expect_eq(info.workers, 4);
	cr_expect_eq(info.pools, 2);
	cr_expect_str_eq(info.topology, "synthetic: numa:2 core:2 pu:1");
	cr_expect_not(info.binding_real);
	rva_engine_destroy(e);
}

Test(engine_topology, bad_configs) {
	rva_engine *e = (rva_engine *)0x1;
	rva_engine_config c = small_cfg();
	c.topology_synthetic = SYN16;
	c.topology_xml = "x.xml";
	cr_expect_eq(rva_engine_create(&c, &e), RVA_EINVAL);
	cr_expect(strstr(rva_last_error(), "both") != NULL);
	c = small_cfg();
	c.topology_synthetic = "warp:3 core:2";
	cr_expect_eq(rva_engine_create(&c, &e), RVA_EINVAL);
	cr_expect(strstr(rva_last_error(), "warp:3") != NULL, "%s", rva_last_error());
	c = small_cfg();
	c.topology_xml = "/nonexistent/topology.xml";
	cr_expect_eq(rva_engine_create(&c, &e), RVA_ESYSTEM);
	c = small_cfg();
	c.numa = (rva_numa_policy)7;
	cr_expect_eq(rva_engine_create(&c, &e), RVA_EINVAL);
	c = small_cfg();
	c.kernels = (rva_kernel_set)42;
	cr_expect_eq(rva_engine_create(&c, &e), RVA_EINVAL);
	c = small_cfg();
	c.topology_synthetic = SYN16;
	c.threads = 99;
	cr_expect_eq(rva_engine_create(&c, &e), RVA_EINVAL);
	cr_expect(strstr(rva_last_error(), "threads 99") != NULL);
	c.threads = 0;
	c.cpus = "core:2-1";
	cr_expect_eq(rva_engine_create(&c, &e), RVA_EINVAL);
	cr_expect(strstr(rva_last_error(), "reversed") != NULL);
	c.cpus = "numa:7";
	cr_expect_eq(rva_engine_create(&c, &e), RVA_ENOTFOUND);
	cr_expect_eq(rva_engine_create(&c, NULL), RVA_ENULL);
	cr_expect_eq(e, (rva_engine *)0x1, "output untouched on failure");
	cr_expect_eq(rva_engine_destroy(NULL), RVA_OK);
}

Test(engine_topology, kernel_sets) {
	for (int k = RVA_KERNELS_SKX; k < RVA_KERNELS_COUNT; k++) {
		rva_kernel_set resolved;
		rva_status want = rva_kernels_resolve((rva_kernel_set)k, &resolved);
		rva_engine_config c = small_cfg();
		c.kernels = (rva_kernel_set)k;
		c.threads = 1;
		rva_engine *e;
		rva_status st = rva_engine_create(&c, &e);
		cr_expect_eq(st, want, "kernel set %s: %s vs %s", rva_kernel_set_name(k),
		             rva_status_name(st), rva_status_name(want));
		if (st == RVA_OK) {
			rva_engine_info info;
			rva_engine_info_get(e, &info);
			cr_expect_eq(info.kernels, resolved);
			rva_engine_destroy(e);
		}
	}
}

/* ---- real binding -------------------------------------------------------------------- */

static bool have_real_pus_0_1(void) {
	hwloc_topology_t t;
	hwloc_topology_init(&t);
	hwloc_topology_load(t);
	hwloc_bitmap_t b = hwloc_bitmap_alloc();
	bool ok = hwloc_get_cpubind(t, b, HWLOC_CPUBIND_PROCESS) == 0 && hwloc_bitmap_isset(b, 0) &&
	          hwloc_bitmap_isset(b, 1);
	hwloc_bitmap_free(b);
	hwloc_topology_destroy(t);
	return ok;
}

Test(engine_topology, real_binding_two_fake_domains) {
	if (!have_real_pus_0_1())
		cr_skip_test("the process may not run on PUs 0 and 1");
	rva_engine_config c = small_cfg();
	c.topology_synthetic = "package:2 [numa] core:1 pu:1";
	c.assume_this_system = true;
	rva_engine *e;
	cr_assert_eq(rva_engine_create(&c, &e), RVA_OK, "%s", rva_last_error());
	rva_engine_info info;
	rva_engine_info_get(e, &info);
	cr_expect(info.binding_real);
	cr_expect_eq(info.workers, 2);
	cr_expect_eq(info.pools, 2);
	cr_expect(strstr(info.topology, "(this system)") != NULL, "%s", info.topology);
	for (unsigned i = 0; i < 2; i++) {
		rva_worker_info w;
		rva_engine_worker(e, i, &w);
		cr_expect(w.bound, "worker %u binding", i);
		cr_expect_eq(w.pu_os_index, i);
		cr_expect_eq(w.observed_pu, (int)i, "worker %u reads back PU %d", i, w.observed_pu);
		cr_expect_eq(w.numa_os_index, i);
	}
	/* node 0 is real: the scratch is bound there; fake node 1 refuses (fallback) */
	rva_worker_info w0, w1;
	rva_engine_worker(e, 0, &w0);
	rva_engine_worker(e, 1, &w1);
	cr_expect(w0.scratch_on_node);
	cr_expect_not(w1.scratch_on_node);
	rva_engine_destroy(e);
}

Test(engine_topology, real_machine_default) {
	rva_engine *e;
	rva_engine_config c = small_cfg();
	cr_assert_eq(rva_engine_create(&c, &e), RVA_OK, "%s", rva_last_error());
	rva_engine_info info;
	rva_engine_info_get(e, &info);
	cr_expect(info.binding_real);
	cr_expect_str_eq(info.topology, "this system");
	cr_expect_geq(info.workers, 1);
	for (unsigned i = 0; i < info.workers; i++) {
		rva_worker_info w;
		rva_engine_worker(e, i, &w);
		cr_expect(w.bound);
		cr_expect_eq(w.observed_pu, (int)w.pu_os_index);
	}
	rva_engine_destroy(e);
}

/* ---- what the planner clips is said (rva__sched_plan.note, rva_engine_info.notes) ------ */

Test(planner, clipped_cpu_sets_are_said) {
	hwloc_topology_t t = load_synthetic(SYN16);
	rva__sched_plan p;
	/* exactly the machine: nothing to say */
	cr_assert_eq(rva__sched_plan_make(t, NULL, "0-15", false, 0, &p), RVA_OK);
	cr_expect_str_eq(p.note, "");
	rva__sched_plan_free(&p);
	/* a PU range past the topology */
	cr_assert_eq(rva__sched_plan_make(t, NULL, "8-20", false, 0, &p), RVA_OK);
	cr_expect_eq(p.nworkers, 8);
	cr_expect_str_eq(p.note, "cpu set \"8-20\": PUs 16-20 (item '8-20') do not exist, the "
	                 "topology has PUs 0-15; using PUs 8-15");
	rva__sched_plan_free(&p);
	/* an object range past the topology, then a single PU */
	cr_assert_eq(rva__sched_plan_make(t, NULL, "core:14-17 99", false, 0, &p),
	             RVA_ENOTFOUND, "PU 99 alone names nothing: refused, as before");
	cr_assert_eq(rva__sched_plan_make(t, NULL, "core:14-17 3", false, 0, &p), RVA_OK);
	cr_expect_str_eq(p.note, "cpu set \"core:14-17 3\": cores 16-17 (item 'core:14-17') do "
	                 "not exist, the topology has 16 cores (0-15); using PUs 3,14-15");
	rva__sched_plan_free(&p);
	/* PUs the process may not use (its binding) */
	hwloc_bitmap_t bind = hwloc_bitmap_alloc();
	hwloc_bitmap_set_range(bind, 0, 3);
	cr_assert_eq(rva__sched_plan_make(t, bind, "2-5", false, 0, &p), RVA_OK);
	cr_expect_str_eq(p.note, "cpu set \"2-5\": PUs 4-5 are not allowed to this process; "
	                 "using PUs 2-3");
	rva__sched_plan_free(&p);
	cr_assert_eq(rva__sched_plan_make(t, bind, "3-4,15-16", false, 0, &p), RVA_OK);
	cr_expect_str_eq(p.note, "cpu set \"3-4,15-16\": PU 16 (item '15-16') does not exist, "
	                 "the topology has PUs 0-15; PUs 4,15 are not allowed to this process; "
	                 "using PUs 3");
	rva__sched_plan_free(&p);
	cr_assert_eq(rva__sched_plan_make(t, bind, "3,4", false, 0, &p), RVA_OK);
	cr_expect_str_eq(p.note, "cpu set \"3,4\": PU 4 is not allowed to this process; using PUs 3");
	rva__sched_plan_free(&p);
	/* no user set: nothing to say */
	cr_assert_eq(rva__sched_plan_make(t, bind, NULL, false, 0, &p), RVA_OK);
	cr_expect_str_eq(p.note, "");
	rva__sched_plan_free(&p);
	hwloc_bitmap_free(bind);
	hwloc_topology_destroy(t);
}

Test(engine_topology, notes_and_environment_topologies) {
	rva_engine_config c = rva_engine_config_defaults();
	c.topology_synthetic = "package:1 core:4 pu:1";
	c.cpus = "2-9";
	c.spin_us = 0;
	rva_engine *e = NULL;
	cr_assert_eq(rva_engine_create(&c, &e), RVA_OK, "%s", rva_last_error());
	rva_engine_info info;
	cr_assert_eq(rva_engine_info_get(e, &info), RVA_OK);
	cr_expect_str_eq(info.notes, "cpu set \"2-9\": PUs 4-9 (item '2-9') do not exist, the "
	                 "topology has PUs 0-3; using PUs 2-3");
	rva_engine_destroy(e);
	/* hwloc alone would describe this machine when these are bad: they are errors */
	rva_engine_config d = rva_engine_config_defaults();
	d.spin_us = 0;
	setenv("HWLOC_SYNTHETIC", "not a topology", 1);
	e = NULL;
	cr_expect_eq(rva_engine_create(&d, &e), RVA_ESYSTEM);
	cr_expect(strstr(rva_last_error(), "HWLOC_SYNTHETIC=\"not a topology\" is not a valid") !=
	          NULL, "%s", rva_last_error());
	setenv("HWLOC_XMLFILE", fixture("no-such-file.xml"), 1);
	cr_expect_eq(rva_engine_create(&d, &e), RVA_ESYSTEM);
	cr_expect(strstr(rva_last_error(), "both set") != NULL, "%s", rva_last_error());
	unsetenv("HWLOC_SYNTHETIC");
	cr_expect_eq(rva_engine_create(&d, &e), RVA_ESYSTEM);
	cr_expect(strstr(rva_last_error(), "cannot be loaded: No such file or directory") != NULL,
	          "%s", rva_last_error());
	cr_expect_null(e);
	/* a good one is used (not this system), and the engine says where it came from */
	unsetenv("HWLOC_XMLFILE");
	setenv("HWLOC_SYNTHETIC", "package:2 core:1 pu:1", 1);
	cr_assert_eq(rva_engine_create(&d, &e), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_engine_info_get(e, &info), RVA_OK);
	cr_expect_eq(info.binding_real, false);
	cr_expect_str_eq(info.topology, "synthetic: package:2 core:1 pu:1");
	cr_expect_str_eq(info.notes, "");
	rva_engine_destroy(e);
	unsetenv("HWLOC_SYNTHETIC");
}

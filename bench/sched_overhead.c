/*
 * Scheduler overhead: empty tasks per second through the engine's executor.
 *
 *   sched_overhead [threads=2] [tasks=200000] [runs=7] [spin_us=100]
 *
 * Three graph shapes, each run `runs` times after one warm-up run (which also fills the
 * engine's task-state cache, so no timed run page-faults fresh job memory); the median
 * is printed. A run is submit + wait (rva__engine_run_graph): planning is not included,
 * job setup (dependency counters, queue nodes, dealing the ready tasks) is.
 * - independent: `tasks` tasks without edges (every task ready at once);
 * - chains: 64 chains of tasks/64 (each completion releases one task: the release path);
 * - fanout: a root releasing tasks-1 tasks into one worker's queue (stealing).
 * Target: >= 2 million empty tasks/s on 2 workers.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/internal.h"
#include "graph/graph.h"
#include "rvattn/engine.h"
#include "sched/engine_internal.h"

static rva_status empty_task(const rva__task *t, rva__exec_ctx *x) {
	(void)t;
	(void)x;
	return RVA_OK;
}

static int cmp_double(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void build(rva__graph *g, const char *shape, uint32_t n) {
	rva__graph_init(g, 0);
	for (uint32_t t = 0; t < n; t++) {
		uint32_t id;
		if (rva__graph_add(g, empty_task, NULL, RVA__NO_SEQ, t, 0, 0, 0, 1.0f, &id) != RVA_OK) {
			fprintf(stderr, "graph: %s\n", rva_last_error());
			exit(1);
		}
	}
	rva_status st = RVA_OK;
	if (shape[0] == 'c') {
		uint32_t chains = 64;
		for (uint32_t t = chains; t < n && st == RVA_OK; t++)
			st = rva__graph_edge(g, t - chains, t);
	} else if (shape[0] == 'f') {
		for (uint32_t t = 1; t < n && st == RVA_OK; t++)
			st = rva__graph_edge(g, 0, t);
	}
	if (st != RVA_OK || rva__graph_finalize(g) != RVA_OK) {
		fprintf(stderr, "graph: %s\n", rva_last_error());
		exit(1);
	}
}

int main(int argc, char **argv) {
	unsigned threads = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
	uint32_t ntasks = argc > 2 ? (uint32_t)atol(argv[2]) : 200000;
	int runs = argc > 3 ? atoi(argv[3]) : 7;
	unsigned spin = argc > 4 ? (unsigned)atoi(argv[4]) : 100;
	if (runs < 1 || ntasks < 64) {
		fprintf(stderr, "usage: sched_overhead [threads] [tasks >= 64] [runs >= 1] [spin_us]\n");
		return 2;
	}
	rva_engine_config c = rva_engine_config_defaults();
	c.threads = threads;
	c.spin_us = spin;
	c.scratch_bytes = 64 << 10;
	rva_engine *e;
	rva_status st = rva_engine_create(&c, &e);
	if (st != RVA_OK) {
		fprintf(stderr, "engine: %s: %s\n", rva_status_name(st), rva_last_error());
		return 1;
	}
	rva_engine_info info;
	rva_engine_info_get(e, &info);
	printf("# sched_overhead: %u workers in %u pools, cpus %s, topology %s, spin_us %u\n",
	       info.workers, info.pools, info.cpuset, info.topology, spin);
	printf("# %u empty tasks per run, median of %d runs (after 1 warm-up)\n", ntasks, runs);
	printf("%-12s %14s %14s %14s\n", "shape", "Mtasks/s", "ns/task", "min-max Mt/s");
	const char *shapes[] = {"independent", "chains", "fanout"};
	double *rate = malloc(sizeof *rate * (size_t)runs);
	for (int s = 0; s < 3; s++) {
		rva__graph g;
		build(&g, shapes[s], ntasks);
		for (int r = -1; r < runs; r++) {
			uint64_t t0 = rva__now_ns();
			st = rva__engine_run_graph(e, &g, NULL, NULL);
			uint64_t t1 = rva__now_ns();
			if (st != RVA_OK) {
				fprintf(stderr, "run: %s: %s\n", rva_status_name(st), rva_last_error());
				return 1;
			}
			if (r >= 0)
				rate[r] = (double)ntasks / ((double)(t1 - t0) * 1e-9);
		}
		qsort(rate, (size_t)runs, sizeof *rate, cmp_double);
		double med = runs % 2 ? rate[runs / 2] : 0.5 * (rate[runs / 2 - 1] + rate[runs / 2]);
		printf("%-12s %14.2f %14.1f %8.2f-%.2f\n", shapes[s], med * 1e-6, 1e9 / med,
		       rate[0] * 1e-6, rate[runs - 1] * 1e-6);
		rva__graph_free(&g);
	}
	printf("# per worker: tasks, busy ms, local steals, remote steals\n");
	for (unsigned i = 0; i < info.workers; i++) {
		rva_worker_info w;
		rva_engine_worker(e, i, &w);
		printf("#   worker %u (PU %u, pool %u): %llu, %.1f, %llu, %llu\n", i, w.pu_os_index,
		       w.pool, (unsigned long long)w.tasks, (double)w.busy_ns * 1e-6,
		       (unsigned long long)w.steals_local, (unsigned long long)w.steals_remote);
	}
	free(rate);
	rva_engine_destroy(e);
	return 0;
}

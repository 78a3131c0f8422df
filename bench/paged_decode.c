/*
 * Decode over paged K/V (rva_kv_cache) against the same decode over contiguous K/V, in
 * one process: the G5 shape by default (B16 H12 D64, one query x 4096 keys per sequence,
 * fp32, not causal), the contiguous batch through rva_engine_run and the paged one through
 * rva_kv_cache_run on the same engine, with the same rows (checked bit-identical first),
 * run alternately (contiguous, then each page size) --reps times. Reports per variant the
 * median wall time, GB/s of K+V bytes and the ratio paged / contiguous speed (>= 1 means
 * paged is as fast); medians of the per-round ratios, so a loaded machine's slow rounds
 * hit both sides.
 *
 * The sequences' rows are appended one sequence after another, so each takes its pages in
 * order (back to back in memory: runs of pages, kv_pages.h); --interleave appends them a
 * page at a time round the batch instead, so a sequence's pages lie B pages apart, as
 * streams decoding side by side take theirs (every page then a run of its own).
 *
 * --cpu-time: the ratios are of the process's CPU time per round instead of wall time
 * (engine workers park at once when idle, spin_us = 0, so CPU time is the work): on a
 * machine shared with other work, time spent waiting for a core then counts on neither
 * side, while memory stalls still do.
 *
 *   build/bench/paged_decode [--batch B] [--keys N] [--heads H] [--kv-heads G]
 *                            [--pages 16,128] [--threads T] [--reps R] [--cpu-time]
 *                            [--interleave]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "rvattn/rvattn.h"

#define HD 64
#define MAXP 8

/* Seconds of CPU time of the whole process (every engine worker). */
static double process_cpu_now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, rva_status st) {
	fprintf(stderr, "paged_decode: %s: %s (%s)\n", what, rva_status_name(st), rva_last_error());
	exit(1);
}

int main(int argc, char **argv) {
	size_t B = 16, N = 4096, H = 12, G = 0, threads = 0, reps = 21;
	size_t P[MAXP] = {16, 128}, np = 2;
	bool cpu = false, interleave = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--cpu-time") || !strcmp(a, "--interleave")) {
			*(a[2] == 'c' ? &cpu : &interleave) = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "paged_decode: %s needs a value\n", a);
			return 2;
		}
		if (!strcmp(a, "--batch"))
			B = strtoul(v, NULL, 10);
		else if (!strcmp(a, "--keys"))
			N = strtoul(v, NULL, 10);
		else if (!strcmp(a, "--heads"))
			H = strtoul(v, NULL, 10);
		else if (!strcmp(a, "--kv-heads"))
			G = strtoul(v, NULL, 10);
		else if (!strcmp(a, "--threads"))
			threads = strtoul(v, NULL, 10);
		else if (!strcmp(a, "--reps"))
			reps = strtoul(v, NULL, 10);
		else if (!strcmp(a, "--pages")) {
			np = 0;
			for (char *s = (char *)v; *s && np < MAXP;) {
				P[np++] = strtoul(s, &s, 10);
				if (*s == ',')
					s++;
			}
		} else {
			fprintf(stderr, "paged_decode: unknown option %s\n", a);
			return 2;
		}
		i++;
	}
	if (!G)
		G = H;
	if (!B || !N || !H || H % G || !reps || !np) {
		fprintf(stderr, "paged_decode: bad sizes\n");
		return 2;
	}
	size_t dim = H * HD, kvd = G * HD;
	bench_header(stdout, "paged_decode");
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = (unsigned)threads;
	if (cpu)
		ec.spin_us = 0;
	double (*clock_now)(void) = cpu ? process_cpu_now : bench_now;
	rva_engine *e = NULL;
	rva_status st = rva_engine_create(&ec, &e);
	if (st)
		die("engine", st);
	rva_engine_info info;
	rva_engine_info_get(e, &info);
	rva_config c = rva_flash(dim, 128);
	c.heads = H;
	c.kv_heads = G == H ? 0 : G;
	rva_attention *att = NULL;
	if ((st = rva_build(&c, &att)))
		die("build", st);
	float *q = bench_buffer(B * dim, 1), *k = bench_buffer(B * N * kvd, 2);
	float *v = bench_buffer(B * N * kvd, 3), *oc = bench_buffer(B * dim, 4);
	float *op = bench_buffer(B * dim, 5);
	rva_seq *seqs = calloc(B, sizeof *seqs);
	rva_kv_step *steps = calloc(B, sizeof *steps);
	rva_kv_cache *cache[MAXP];
	for (size_t s = 0; s < B; s++)
		seqs[s] = (rva_seq){.nq = 1, .nk = N, .q = q + s * dim, .k = k + s * N * kvd,
		                    .v = v + s * N * kvd, .out = oc + s * dim};
	uint64_t *ids = calloc(B * np, sizeof *ids);
	for (size_t p = 0; p < np; p++) {
		rva_kv_cache_config kc = {.kv_heads = G, .head_dim = HD, .page_tokens = P[p],
		                          .pages = B * ((N + P[p] - 1) / P[p]), .max_seqs = B};
		if ((st = rva_kv_cache_create(e, &kc, &cache[p])))
			die("cache", st);
		for (size_t s = 0; s < B; s++)
			if ((st = rva_kv_cache_seq_new(cache[p], &ids[p * B + s])))
				die("seq_new", st);
		size_t step = interleave ? P[p] : N; /* rows appended per sequence in turn */
		for (size_t r0 = 0; r0 < N; r0 += step)
			for (size_t s = 0; s < B; s++) {
				size_t n = N - r0 < step ? N - r0 : step;
				if ((st = rva_kv_cache_append(cache[p], ids[p * B + s],
				                              k + (s * N + r0) * kvd, 0,
				                              v + (s * N + r0) * kvd, 0, n)))
					die("append", st);
			}
	}
	rva_batch b = {B, seqs};
	/* same bits first */
	if ((st = rva_engine_run(e, att, &b, NULL, NULL, NULL)))
		die("contiguous run", st);
	for (size_t p = 0; p < np; p++) {
		for (size_t s = 0; s < B; s++)
			steps[s] = (rva_kv_step){.seq = ids[p * B + s], .nq = 1, .q = q + s * dim,
			                         .out = op + s * dim};
		if ((st = rva_kv_cache_run(e, cache[p], att, steps, B, NULL, NULL, NULL)))
			die("paged run", st);
		if (memcmp(oc, op, B * dim * sizeof(float))) {
			fprintf(stderr, "paged_decode: page %zu: output differs from contiguous K/V\n",
			        P[p]);
			return 1;
		}
	}
	double bytes = 2.0 * (double)B * (double)N * (double)kvd * sizeof(float);
	double *tc = calloc(reps, sizeof *tc), *tp = calloc(reps * np, sizeof *tp);
	double *ratio = calloc(reps * np, sizeof *ratio);
	for (size_t r = 0; r < reps + 2; r++) { /* two warm-up rounds */
		double t0 = clock_now();
		rva_engine_run(e, att, &b, NULL, NULL, NULL);
		double c_s = clock_now() - t0;
		for (size_t p = 0; p < np; p++) {
			for (size_t s = 0; s < B; s++)
				steps[s] = (rva_kv_step){.seq = ids[p * B + s], .nq = 1, .q = q + s * dim,
				                         .out = op + s * dim};
			t0 = clock_now();
			rva_kv_cache_run(e, cache[p], att, steps, B, NULL, NULL, NULL);
			double p_s = clock_now() - t0;
			if (r >= 2) {
				tp[p * reps + r - 2] = p_s;
				ratio[p * reps + r - 2] = c_s / p_s;
			}
		}
		if (r >= 2)
			tc[r - 2] = c_s;
	}
	printf("# decode B%zu H%zu (kv heads %zu) D%d, 1 query x %zu keys, fp32; %u workers; "
	       "median of %zu alternated rounds; %s; pages %s\n", B, H, G, HD, N, info.workers,
	       reps, cpu ? "process CPU time (ms and GB/s per CPU second)" : "wall time",
	       interleave ? "interleaved over the batch" : "in order per sequence");
	printf("%-12s %10s %9s %14s\n", "variant", "ms", "GB/s", "paged/contig");
	double mc = bench_median(tc, reps);
	printf("%-12s %10.3f %9.2f %14s\n", "contiguous", mc * 1e3, bytes / mc * 1e-9, "1");
	for (size_t p = 0; p < np; p++) {
		double m = bench_median(tp + p * reps, reps);
		char name[32];
		snprintf(name, sizeof name, "page %zu", P[p]);
		printf("%-12s %10.3f %9.2f %14.3f\n", name, m * 1e3, bytes / m * 1e-9,
		       bench_median(ratio + p * reps, reps));
	}
	for (size_t p = 0; p < np; p++)
		rva_kv_cache_destroy(cache[p]);
	rva_attention_destroy(att);
	rva_engine_destroy(e);
	free(q);
	free(k);
	free(v);
	free(oc);
	free(op);
	free(seqs);
	free(steps);
	free(ids);
	free(tc);
	free(tp);
	free(ratio);
	return 0;
}

/*
 * What huge pages are worth to decode, in one process: the G5 decode (B16 H12 D64, one
 * query x 4096 keys per sequence, fp32; default shape) on an engine, with K and V in
 * ordinary 4 KiB pages (malloc + MADV_NOHUGEPAGE) and in huge pages (rva_buffer_alloc),
 * run alternately, next to a plain read loop over the same bytes in each kind of page (the
 * streaming-read baseline). Every figure is GB/s of K+V bytes, from wall time and from the
 * process's CPU time (user + system, all threads: robust when a loaded machine preempts
 * the worker), medians of --reps runs. Also prints how much of each buffer the kernel
 * really backs with huge pages (AnonHugePages of its mappings in /proc/self/smaps).
 *
 *   build/bench/decode_pages [--batch B] [--keys N] [--threads T] [--reps R]
 */
#define _GNU_SOURCE 1
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "bench_common.h"
#include "rvattn/rvattn.h"

static double cpu_now(void) {
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
	       (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

/* kB of AnonHugePages over the mappings that intersect [p, p + bytes). */
static size_t huge_kb(const void *p, size_t bytes) {
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return 0;
	char line[512];
	bool in = false;
	size_t total = 0, kb;
	uintptr_t lo = (uintptr_t)p, hi = lo + bytes;
	while (fgets(line, sizeof line, f)) {
		unsigned long a, b;
		char c;
		if (sscanf(line, "%lx-%lx %c", &a, &b, &c) == 3) {
			in = a < hi && b > lo;
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %zu kB", &kb) == 1)
			total += kb;
	}
	fclose(f);
	return total;
}

static volatile float sink;

/* Sums n floats with 16 independent accumulators (a streaming read). */
static void read_all(const float *x, size_t n) {
	float acc[16] = {0};
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		for (int j = 0; j < 16; j++)
			acc[j] += x[i + j];
	float s = 0;
	for (int j = 0; j < 16; j++)
		s += acc[j];
	for (; i < n; i++)
		s += x[i];
	sink = s;
}

typedef struct variant {
	const char *name;
	float *k, *v;
	rva_seq *seqs;
	double *wall, *cpu, *rwall, *rcpu;
} variant;

static void fill(float *x, size_t n, unsigned seed) {
	unsigned long long s = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		x[i] = (float)((double)(s >> 40) / 8388608.0 - 1.0);
	}
}

int main(int argc, char **argv) {
	size_t B = 16, nk = 4096;
	unsigned threads = 1;
	int reps = 15;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--batch") && i + 1 < argc)
			B = (size_t)strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--keys") && i + 1 < argc)
			nk = (size_t)strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--batch B] [--keys N] [--threads T] [--reps R]\n",
			        argv[0]);
			return 2;
		}
	}
	if (!B || !nk || !threads || reps < 1) {
		fprintf(stderr, "decode_pages: every option must be positive\n");
		return 2;
	}
	const size_t H = 12, D = 64, dim = H * D, kvn = B * nk * dim;
	const double bytes = 2.0 * (double)kvn * sizeof(float);
	rva_config c = rva_multi_head(dim, H);
	rva_attention *att;
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = threads;
	rva_engine *e;
	if (rva_build(&c, &att) != RVA_OK || rva_engine_create(&ec, &e) != RVA_OK) {
		fprintf(stderr, "decode_pages: %s\n", rva_last_error());
		return 1;
	}
	float *q = bench_buffer(B * dim, 1), *out = bench_buffer(B * dim, 2);
	variant var[2] = {{.name = "4 KiB pages"}, {.name = "huge pages"}};
	for (int w = 0; w < 2; w++) {
		variant *x = &var[w];
		void *k = NULL, *v = NULL;
		if (w == 0) { /* ordinary pages: what malloc gives without the tunable */
			if (posix_memalign(&k, 4096, kvn * sizeof(float)) ||
			    posix_memalign(&v, 4096, kvn * sizeof(float)))
				return 1;
			madvise(k, kvn * sizeof(float), MADV_NOHUGEPAGE);
			madvise(v, kvn * sizeof(float), MADV_NOHUGEPAGE);
		} else if (rva_buffer_alloc(kvn * sizeof(float), &k) != RVA_OK ||
		           rva_buffer_alloc(kvn * sizeof(float), &v) != RVA_OK) {
			fprintf(stderr, "decode_pages: %s\n", rva_last_error());
			return 1;
		}
		x->k = k;
		x->v = v;
		fill(x->k, kvn, 3); /* same values in both variants */
		fill(x->v, kvn, 4);
		x->seqs = calloc(B, sizeof *x->seqs);
		x->wall = calloc((size_t)reps, sizeof(double));
		x->cpu = calloc((size_t)reps, sizeof(double));
		x->rwall = calloc((size_t)reps, sizeof(double));
		x->rcpu = calloc((size_t)reps, sizeof(double));
		if (!x->seqs || !x->wall || !x->cpu || !x->rwall || !x->rcpu)
			return 1;
		for (size_t s = 0; s < B; s++)
			x->seqs[s] = (rva_seq){.nq = 1, .nk = nk, .q = q + s * dim,
			                       .k = x->k + s * nk * dim, .v = x->v + s * nk * dim,
			                       .out = out + s * dim};
	}
	bench_header(stdout, "decode_pages");
	for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
		for (int w = 0; w < 2; w++) {
			variant *x = &var[w];
			rva_batch b = {B, x->seqs};
			double t0 = bench_now(), c0 = cpu_now();
			if (rva_engine_run(e, att, &b, NULL, NULL, NULL) != RVA_OK) {
				fprintf(stderr, "decode_pages: %s\n", rva_last_error());
				return 1;
			}
			double t1 = bench_now(), c1 = cpu_now();
			read_all(x->k, kvn);
			read_all(x->v, kvn);
			double t2 = bench_now(), c2 = cpu_now();
			if (r >= 0) {
				x->wall[r] = t1 - t0;
				x->cpu[r] = c1 - c0;
				x->rwall[r] = t2 - t1;
				x->rcpu[r] = c2 - c1;
			}
		}
	}
	printf("# G5 decode: B%zu H%zu D%zu, 1 query x %zu keys, K+V %.0f MB, %u thread(s), %d "
	       "reps (medians); read = one-thread plain read of the same bytes\n",
	       B, H, D, nk, bytes / 1e6, threads, reps);
	printf("%-12s %10s %10s %10s %10s %8s %14s\n", "K/V pages", "decode", "decode", "read",
	       "read", "decode", "AnonHugePages");
	printf("%-12s %10s %10s %10s %10s %8s %14s\n", "", "GB/s wall", "GB/s cpu", "GB/s wall",
	       "GB/s cpu", "/read", "of K+V (MB)");
	double dw[2];
	for (int w = 0; w < 2; w++) {
		variant *x = &var[w];
		double a = bench_median(x->wall, (size_t)reps), b = bench_median(x->cpu, (size_t)reps);
		double ra = bench_median(x->rwall, (size_t)reps), rb = bench_median(x->rcpu, (size_t)reps);
		size_t hk = huge_kb(x->k, kvn * sizeof(float)) + huge_kb(x->v, kvn * sizeof(float));
		dw[w] = a;
		printf("%-12s %10.2f %10.2f %10.2f %10.2f %8.2f %14.0f\n", x->name, bytes / a / 1e9,
		       bytes / b / 1e9, bytes / ra / 1e9, bytes / rb / 1e9, ra / a, hk / 1024.0);
	}
	printf("huge/4K decode speed (wall): %.2fx\n", dw[0] / dw[1]);
	for (int w = 0; w < 2; w++) {
		if (w == 0) {
			free(var[w].k);
			free(var[w].v);
		} else {
			rva_buffer_free(var[w].k);
			rva_buffer_free(var[w].v);
		}
		free(var[w].seqs);
		free(var[w].wall);
		free(var[w].cpu);
		free(var[w].rwall);
		free(var[w].rcpu);
	}
	free(q);
	free(out);
	rva_engine_destroy(e);
	rva_attention_destroy(att);
	return 0;
}

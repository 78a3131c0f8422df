/*
 * sparse: the sparse patterns against dense flash in the same process, GFLOP/s counted
 * on the pairs each computes (rva_attention_flops: 4 * head_dim per visible pair and
 * head), so a pattern that costs what it computes runs near the dense figure:
 *
 *   DENSE   flash, not causal                     (the reference row)
 *   CAUSAL  flash causal
 *   LG      local-global (Longformer), window W (|i - j| <= W/2), G global tokens spread
 *           evenly over the sequence (positions s * N / G + N / (2G))
 *   STRIDED Sparse Transformer strided, stride L (causal)
 *   FIXED   Sparse Transformer fixed, stride L, summary C (causal)
 *
 * One sequence of N rows, H heads of 64, fp32, on an engine of --threads workers. The
 * rows are timed in turns (one run of each row per round, --repeat rounds after a warm-up
 * round), so load on the machine falls on every row alike; each figure is a median. Two
 * clocks: wall time, and the process's CPU time (CLOCK_PROCESS_CPUTIME_ID: every thread of
 * the process, time while descheduled by other work on a shared machine left out); with
 * one thread the CPU-time figures are the steadier ones on a loaded machine.
 * Buffers are allocated and pre-faulted before timing (bench_buffer).
 *
 *   build/bench/sparse [--n 16384] [--heads 2] [--window 512] [--globals 8] [--stride 128]
 *                      [--summary 16] [--threads 1] [--repeat 5] [--rows DENSE,LG,...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "rvattn/rvattn.h"

enum { R_DENSE, R_CAUSAL, R_LG, R_STRIDED, R_FIXED, NROWS };
static const char *const names[NROWS] = {"DENSE", "CAUSAL", "LG", "STRIDED", "FIXED"};

typedef struct opts {
	size_t n, heads, window, globals, stride, summary, threads;
	int repeat;
	bool on[NROWS];
} opts;

static size_t arg_size(const char *v, const char *name) {
	char *end;
	unsigned long long x = strtoull(v, &end, 10);
	if (*v == '\0' || *end != '\0') {
		fprintf(stderr, "sparse: --%s %s: expected a number\n", name, v);
		exit(2);
	}
	return (size_t)x;
}

static void parse(int argc, char **argv, opts *o) {
	*o = (opts){.n = 16384, .heads = 2, .window = 512, .globals = 8, .stride = 128,
	            .summary = 16, .threads = 1, .repeat = 5};
	for (int r = 0; r < NROWS; r++)
		o->on[r] = true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			fprintf(stderr, "sparse: %s needs a value (see the header of bench/sparse.c)\n", a);
			exit(2);
		}
		i++;
		if (!strcmp(a, "--n")) o->n = arg_size(v, "n");
		else if (!strcmp(a, "--heads")) o->heads = arg_size(v, "heads");
		else if (!strcmp(a, "--window")) o->window = arg_size(v, "window");
		else if (!strcmp(a, "--globals")) o->globals = arg_size(v, "globals");
		else if (!strcmp(a, "--stride")) o->stride = arg_size(v, "stride");
		else if (!strcmp(a, "--summary")) o->summary = arg_size(v, "summary");
		else if (!strcmp(a, "--threads")) o->threads = arg_size(v, "threads");
		else if (!strcmp(a, "--repeat")) o->repeat = (int)arg_size(v, "repeat");
		else if (!strcmp(a, "--rows")) {
			for (int r = 0; r < NROWS; r++)
				o->on[r] = strstr(v, names[r]) != NULL;
		} else {
			fprintf(stderr, "sparse: unknown option %s\n", a);
			exit(2);
		}
	}
	if (o->n == 0 || o->heads == 0 || o->repeat < 1 || o->threads == 0) {
		fprintf(stderr, "sparse: --n, --heads, --threads and --repeat must be positive\n");
		exit(2);
	}
}

static rva_config row_config(int r, const opts *o, const size_t *glob) {
	size_t dim = o->heads * 64;
	rva_config c = rva_flash(dim, 128);
	switch (r) {
	case R_CAUSAL: c.causal = true; break;
	case R_LG:
		c = rva_local_global(dim, o->window);
		c.global_indices = glob;
		c.n_global_indices = o->globals;
		break;
	case R_STRIDED:
		c.pattern = RVA_PATTERN_STRIDED;
		c.sparse_stride = o->stride;
		break;
	case R_FIXED:
		c.pattern = RVA_PATTERN_FIXED;
		c.sparse_stride = o->stride;
		c.sparse_summary = o->summary;
		break;
	default: break;
	}
	c.heads = o->heads;
	return c;
}

int main(int argc, char **argv) {
	opts o;
	parse(argc, argv, &o);
	size_t dim = o.heads * 64, n = o.n;
	size_t *glob = calloc(o.globals ? o.globals : 1, sizeof *glob);
	for (size_t g = 0; g < o.globals; g++)
		glob[g] = g * n / o.globals + n / (2 * o.globals);
	float *q = bench_buffer(n * dim, 1), *k = bench_buffer(n * dim, 2);
	float *v = bench_buffer(n * dim, 3), *out = bench_buffer(n * dim, 4);
	rva_seq s = {.nq = n, .nk = n, .q = q, .k = k, .v = v, .out = out};
	rva_batch b = {1, &s};
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = (unsigned)o.threads;
	rva_engine *e = NULL;
	rva_attention *att[NROWS] = {0};
	double flops[NROWS] = {0};
	if (rva_engine_create(&ec, &e) != RVA_OK) {
		fprintf(stderr, "sparse: engine: %s\n", rva_last_error());
		return 1;
	}
	for (int r = 0; r < NROWS; r++) {
		if (!o.on[r])
			continue;
		rva_config c = row_config(r, &o, glob);
		if (rva_build(&c, &att[r]) != RVA_OK || rva_attention_flops(att[r], &b, &flops[r]) != RVA_OK) {
			fprintf(stderr, "sparse: %s: %s\n", names[r], rva_last_error());
			return 1;
		}
	}
	double *t = calloc((size_t)NROWS * (size_t)o.repeat, sizeof *t);
	double *tc = calloc((size_t)NROWS * (size_t)o.repeat, sizeof *tc);
	for (int i = -1; i < o.repeat; i++)
		for (int r = 0; r < NROWS; r++) {
			if (!att[r])
				continue;
			double t0 = bench_now(), c0 = bench_process_cpu_now();
			if (rva_engine_run(e, att[r], &b, NULL, NULL, NULL) != RVA_OK) {
				fprintf(stderr, "sparse: %s: %s\n", names[r], rva_last_error());
				return 1;
			}
			if (i >= 0) {
				t[r * o.repeat + i] = bench_now() - t0;
				tc[r * o.repeat + i] = bench_process_cpu_now() - c0;
			}
		}
	bench_header(stdout, "sparse");
	printf("# N %zu, %zu heads of 64, fp32, %zu thread%s, %d rounds (medians); LG window %zu "
	       "with %zu spread globals, STRIDED stride %zu, FIXED stride %zu summary %zu\n",
	       n, o.heads, o.threads, o.threads == 1 ? "" : "s", o.repeat, o.window, o.globals,
	       o.stride, o.stride, o.summary);
	printf("%-8s %10s | %9s %9s %7s %7s | %9s %9s %7s %7s\n", "row", "pairs/N^2", "wall ms",
	       "GFLOP/s", "/DENSE", "/CAUSAL", "cpu ms", "GFLOP/s", "/DENSE", "/CAUSAL");
	double g[2][NROWS] = {{0}};
	for (int r = 0; r < NROWS; r++)
		if (att[r]) {
			g[0][r] = flops[r] / bench_median(t + r * o.repeat, (size_t)o.repeat) * 1e-9;
			g[1][r] = flops[r] / bench_median(tc + r * o.repeat, (size_t)o.repeat) * 1e-9;
		}
	for (int r = 0; r < NROWS; r++) {
		if (!att[r])
			continue;
		double pairs = flops[r] / (4.0 * 64.0 * (double)o.heads) / ((double)n * (double)n);
		printf("%-8s %10.5f", names[r], pairs);
		for (int c = 0; c < 2; c++) {
			double ms = bench_median((c ? tc : t) + r * o.repeat, (size_t)o.repeat) * 1e3;
			printf(" | %9.2f %9.1f", ms, g[c][r]);
			/* the references of the ratios (left out when not run: profiling one row) */
			if (att[R_DENSE])
				printf(" %7.3f", g[c][r] / g[c][R_DENSE]);
			else
				printf(" %7s", "-");
			if (att[R_CAUSAL])
				printf(" %7.3f", g[c][r] / g[c][R_CAUSAL]);
			else
				printf(" %7s", "-");
		}
		printf("\n");
	}
	for (int r = 0; r < NROWS; r++)
		rva_attention_destroy(att[r]);
	rva_engine_destroy(e);
	free(t);
	free(tc);
	free(glob);
	free(q);
	free(k);
	free(v);
	free(out);
	return 0;
}

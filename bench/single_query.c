/*
 * The single-query call (rva_compute: one query, key and value rows by pointer) against
 * the same query as a batch of one over the K/V matrix (rva_compute_batch), in the same
 * run: the ratio shows what the pointer interface costs. Decode shape of G5 per sequence:
 * H12, D64, one query x N keys (default 4096), rows pointing into one matrix.
 *
 *   build/bench/single_query [--keys N] [--reps R]
 *
 * Prints the median time per call of both and their ratio, plus the K/V bytes streamed
 * per second by the single-query call. Buffers are allocated once and pre-faulted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "rvattn/rvattn.h"

int main(int argc, char **argv) {
	size_t nk = 4096;
	int reps = 200;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--keys") && i + 1 < argc)
			nk = (size_t)strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--keys N] [--reps R]\n", argv[0]);
			return 2;
		}
	}
	if (nk == 0 || reps < 1) {
		fprintf(stderr, "single_query: --keys and --reps must be positive\n");
		return 2;
	}
	const size_t H = 12, D = 64, dim = H * D;
	rva_config c = rva_multi_head(dim, H);
	rva_attention *att;
	if (rva_build(&c, &att) != RVA_OK) {
		fprintf(stderr, "single_query: %s\n", rva_last_error());
		return 1;
	}
	float *q = bench_buffer(dim, 1), *k = bench_buffer(nk * dim, 2),
	      *v = bench_buffer(nk * dim, 3), *out = bench_buffer(dim, 4);
	const float **kr = malloc(nk * sizeof *kr), **vr = malloc(nk * sizeof *vr);
	double *t1 = malloc((size_t)reps * sizeof *t1), *t2 = malloc((size_t)reps * sizeof *t2);
	if (!kr || !vr || !t1 || !t2) {
		fprintf(stderr, "single_query: out of memory\n");
		return 1;
	}
	for (size_t j = 0; j < nk; j++) {
		kr[j] = k + j * dim;
		vr[j] = v + j * dim;
	}
	rva_seq s = {.nq = 1, .nk = nk, .q = q, .k = k, .v = v, .out = out};
	rva_batch b = {1, &s};
	bench_header(stdout, "single_query");
	for (int w = 0; w < 3; w++) { /* warm-up */
		rva_compute(att, q, kr, vr, nk, out);
		rva_compute_batch(att, &b, NULL, NULL);
	}
	for (int r = 0; r < reps; r++) { /* interleaved: same machine state for both */
		double a = bench_now();
		if (rva_compute(att, q, kr, vr, nk, out) != RVA_OK) {
			fprintf(stderr, "single_query: %s\n", rva_last_error());
			return 1;
		}
		double m = bench_now();
		rva_compute_batch(att, &b, NULL, NULL);
		t1[r] = m - a;
		t2[r] = bench_now() - m;
	}
	double single = bench_median(t1, (size_t)reps), batch = bench_median(t2, (size_t)reps);
	double bytes = 2.0 * (double)nk * (double)dim * sizeof(float);
	printf("# H%zu D%zu, 1 query x %zu keys, K+V %.1f MB, %d reps (medians)\n", H, D, nk,
	       bytes / 1e6, reps);
	printf("rva_compute        %9.1f us  %6.2f GB/s\n", single * 1e6, bytes / single / 1e9);
	printf("rva_compute_batch  %9.1f us  %6.2f GB/s\n", batch * 1e6, bytes / batch / 1e9);
	printf("single/batch time  %9.3f\n", single / batch);
	free(kr);
	free(vr);
	free(t1);
	free(t2);
	free(q);
	free(k);
	free(v);
	free(out);
	rva_attention_destroy(att);
	return 0;
}

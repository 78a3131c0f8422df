/*
 * linear_scaling — linear (Performer FAVOR+) attention is O(n): time it at growing
 * sequence lengths on one thread (the serial rva_compute_batch path, BLIS
 * single-threaded) and print t(N_max) / t(N_min), which should stay close to
 * N_max / N_min (8 for 8192 -> 65536; target <= 9).
 *
 *   linear_scaling [--heads H] [--head-dim D] [--features M] [--runs R] [--causal]
 *                  [--map favor|relu|elu] [N ...]        (default N: 8192 16384 32768 65536)
 *
 * Batch of one sequence, nq = nk = N, dim = H * D, inputs in [-1, 1). Inputs and the
 * output are allocated and touched (pre-faulted) before timing, and one untimed run per
 * N warms the caches and the allocator; each figure is the median of R timed runs.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "rvattn/rvattn.h"

static void usage(FILE *f) {
	fprintf(f, "usage: linear_scaling [--heads H] [--head-dim D] [--features M] [--runs R] "
	           "[--causal] [--map favor|relu|elu] [N ...]\n");
}

int main(int argc, char **argv) {
	size_t heads = 12, hd = 64, features = 256, ns[32], nn = 0;
	int runs = 3;
	bool causal = false;
	rva_feature_map map = RVA_FEATURES_FAVOR;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool more = i + 1 < argc;
		if (!strcmp(a, "--heads") && more)
			heads = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(a, "--head-dim") && more)
			hd = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(a, "--features") && more)
			features = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(a, "--runs") && more)
			runs = atoi(argv[++i]);
		else if (!strcmp(a, "--causal"))
			causal = true;
		else if (!strcmp(a, "--map") && more) {
			const char *m = argv[++i];
			map = !strcmp(m, "relu") ? RVA_FEATURES_RELU
			      : !strcmp(m, "elu") ? RVA_FEATURES_ELU : RVA_FEATURES_FAVOR;
		} else if (!strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (a[0] != '-' && nn < 32)
			ns[nn++] = strtoul(a, NULL, 10);
		else {
			usage(stderr);
			return 2;
		}
	}
	if (nn == 0) {
		const size_t def[] = {8192, 16384, 32768, 65536};
		for (nn = 0; nn < 4; nn++)
			ns[nn] = def[nn];
	}
	if (runs < 1 || heads == 0 || hd == 0) {
		usage(stderr);
		return 2;
	}
	size_t dim = heads * hd;
	rva_config cfg = rva_linear(dim, features);
	cfg.heads = heads;
	cfg.causal = causal;
	cfg.feature_map = map;
	rva_attention *att;
	if (rva_build(&cfg, &att) != RVA_OK) {
		fprintf(stderr, "linear_scaling: %s\n", rva_last_error());
		return 1;
	}
	rva_attention_config(att, &cfg); /* defaults resolved (block_size) */
	bench_header(stdout, "linear_scaling");
	printf("# linear attention %s%s: B=1, H=%zu, D=%zu, m=%zu, block %zu, 1 thread "
	       "(rva_compute_batch), median of %d runs, inputs pre-faulted\n",
	       map == RVA_FEATURES_RELU ? "relu" : map == RVA_FEATURES_ELU ? "elu" : "favor+",
	       causal ? " causal" : "", heads, hd, map == RVA_FEATURES_ELU ? hd : features,
	       cfg.block_size, runs);
	printf("%8s %12s %10s %14s\n", "N", "median_s", "GFLOP/s", "ns/token/head");
	double *times = malloc((size_t)runs * sizeof *times), t_first = 0.0, t_last = 0.0;
	for (size_t i = 0; i < nn; i++) {
		size_t n = ns[i];
		float *q = bench_buffer(n * dim, 1), *k = bench_buffer(n * dim, 2);
		float *v = bench_buffer(n * dim, 3), *out = bench_buffer(n * dim, 4);
		rva_seq s = {.nq = n, .nk = n, .q = q, .k = k, .v = v, .out = out};
		rva_batch b = {.count = 1, .seqs = &s};
		double fl = 0.0;
		rva_attention_flops(att, &b, &fl);
		if (rva_compute_batch(att, &b, NULL, NULL) != RVA_OK) { /* warm-up */
			fprintf(stderr, "linear_scaling: %s\n", rva_last_error());
			return 1;
		}
		for (int r = 0; r < runs; r++) {
			double t0 = bench_now();
			rva_compute_batch(att, &b, NULL, NULL);
			times[r] = bench_now() - t0;
		}
		double t = bench_median(times, (size_t)runs);
		printf("%8zu %12.4f %10.1f %14.1f\n", n, t, fl / t * 1e-9,
		       t * 1e9 / ((double)n * (double)heads));
		fflush(stdout);
		if (i == 0)
			t_first = t;
		t_last = t;
		free(q);
		free(k);
		free(v);
		free(out);
	}
	if (nn > 1)
		printf("# ratio t(%zu) / t(%zu) = %.2f (ideal %.2f)\n", ns[nn - 1], ns[0],
		       t_last / t_first, (double)ns[nn - 1] / (double)ns[0]);
	printf("# peak RSS %.1f MiB\n", (double)bench_peak_rss() / 1048576.0);
	free(times);
	rva_attention_destroy(att);
	return 0;
}

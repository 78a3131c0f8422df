/*
 * The decode kernels alone (rva__sm_decode_step + rva__sm_decode_softmax, the loop of one
 * decode task without the engine): nanoseconds per key and per (head, key), and GB/s of
 * K + V against rva_engine_read_probe of the same buffers on a one-worker engine, same
 * run. With few keys the K/V rows stay in cache and the figure is the kernels' arithmetic
 * and cache traffic; with many keys it is their streaming from memory. Best of the runs.
 *
 *   build/bench/decode_kernel HEADS KV_HEADS HEAD_DIM QUERIES KEYS [RUNS]
 *   e.g. build/bench/decode_kernel 12 12 64 1 64      (G5's heads, in cache)
 *        build/bench/decode_kernel 12 2 64 1 65536    (GQA 12/2, from memory)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention/softmax_kernels.h"
#include "bench_common.h"
#include "rvattn/rvattn.h"

#define KB 32 /* the engine's decode block */

int main(int argc, char **argv) {
	if (argc < 6) {
		fprintf(stderr, "usage: %s HEADS KV_HEADS HEAD_DIM QUERIES KEYS [RUNS]\n", argv[0]);
		return 2;
	}
	size_t H = strtoul(argv[1], NULL, 10), KVH = strtoul(argv[2], NULL, 10);
	size_t D = strtoul(argv[3], NULL, 10), nq = strtoul(argv[4], NULL, 10);
	size_t nk = strtoul(argv[5], NULL, 10);
	int runs = argc > 6 ? atoi(argv[6]) : (nk > 1024 ? 7 : 200);
	if (!H || !KVH || H % KVH || !D || !nq || nq > 8 || !nk || runs < 1) {
		fprintf(stderr, "%s: heads and kv heads > 0 (kv heads dividing heads), head dim > 0, "
		                "1-8 queries, keys > 0, runs > 0\n", argv[0]);
		return 2;
	}
	size_t G = H / KVH, kvd = KVH * D, dim = H * D, HQ = H * nq;
	float *k = bench_buffer(nk * kvd, 1), *v = bench_buffer(nk * kvd, 2);
	float *q = bench_buffer(nq * dim, 3);
	float *sc = bench_buffer(HQ * KB, 4), *sp = bench_buffer(HQ * KB, 5);
	float *o = bench_buffer(HQ * D, 6), *m = bench_buffer(HQ, 7), *l = bench_buffer(HQ, 8);
	float scale = 1.0f / sqrtf((float)D);

	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 1;
	rva_engine *e = NULL;
	if (rva_engine_create(&ec, &e) != RVA_OK) {
		fprintf(stderr, "%s: engine: %s\n", argv[0], rva_last_error());
		return 1;
	}
	const void *bufs[2] = {k, v};
	size_t bytes[2] = {nk * kvd * sizeof(float), nk * kvd * sizeof(float)};
	double best = 1e300, best_read = 1e300, check = 0.0;
	for (int r = 0; r < runs; r++) {
		double tr;
		if (rva_engine_read_probe(e, bufs, bytes, 2, &tr) != RVA_OK) {
			fprintf(stderr, "%s: read probe: %s\n", argv[0], rva_last_error());
			return 1;
		}
		best_read = tr < best_read ? tr : best_read;
		for (size_t i = 0; i < HQ; i++) {
			m[i] = -INFINITY;
			l[i] = 0.0f;
		}
		memset(o, 0, HQ * D * sizeof(float));
		double t0 = bench_now();
		float *cur = sc, *prev = sp;
		size_t prev0 = 0, nprev = 0;
		for (size_t b0 = 0; b0 < nk; b0 += KB) { /* the loop of softmax_core.c's decode task */
			size_t nkb = nk - b0 < KB ? nk - b0 : KB;
			rva__sm_decode_step(k + b0 * kvd, kvd, nkb, v + prev0 * kvd, kvd, nprev, q, dim, nq,
			                    H, G, D, scale, cur, prev, KB, o);
			rva__sm_decode_softmax(nkb, cur, HQ, D, KB, m, l, o);
			float *t = prev;
			prev = cur;
			cur = t;
			prev0 = b0;
			nprev = nkb;
		}
		rva__sm_decode_step(k, kvd, 0, v + prev0 * kvd, kvd, nprev, q, dim, nq, H, G, D, scale,
		                    cur, prev, KB, o);
		double t = bench_now() - t0;
		best = t < best ? t : best;
		check = (double)(o[0] / l[0]);
	}
	double gb = 2.0 * (double)(nk * kvd * sizeof(float)) * 1e-9;
	printf("H%zu KVH%zu D%zu nq%zu keys %zu: %.1f ns/key, %.2f ns per (head, key); "
	       "%.1f GB/s of K+V, read %.1f GB/s, %.0f%% of read (out[0] %.6f)\n",
	       H, KVH, D, nq, nk, best / (double)nk * 1e9, best / (double)(nk * HQ) * 1e9,
	       gb / best, gb / best_read, 100.0 * best_read / best, check);
	rva_engine_destroy(e);
	free(k);
	free(v);
	free(q);
	free(sc);
	free(sp);
	free(o);
	free(m);
	free(l);
	return 0;
}

/*
 * The decode kernels alone (rva__sm_decode_step + rva__sm_decode_softmax, the loop of one
 * decode task without the engine): nanoseconds per key and per (head, key), and GB/s of
 * K + V against rva_engine_read_probe of the same buffers on a one-worker engine, same
 * run. With few keys the K/V rows stay in cache and the figure is the kernels' arithmetic
 * and cache traffic; with many keys it is their streaming from memory. Best of the runs.
 *
 * --cpu-time: on a machine shared with other work, both the kernel loop and its baseline,
 * a plain read of the same K and V bytes on the same thread (bench_read_bytes), are timed
 * in thread CPU time (preemption does not count; memory bandwidth is still shared), run
 * by run; medians, and the median of the runs' ratios.
 * --kv bf16|f16: K and V of that type, read in place by the half decode step
 * (rva__smh_decode_step); the read baseline reads the half bytes.
 *
 *   build/bench/decode_kernel HEADS KV_HEADS HEAD_DIM QUERIES KEYS [RUNS] [--cpu-time]
 *                             [--kv f32|bf16|f16]
 *   e.g. build/bench/decode_kernel 12 12 64 1 64      (G5's heads, in cache)
 *        build/bench/decode_kernel 12 2 64 1 65536    (GQA 12/2, from memory)
 *        build/bench/decode_kernel 12 4 64 1 16384 15 --cpu-time   (GQA 12/4)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention/softmax_half.h"
#include "attention/softmax_kernels.h"
#include "bench_common.h"
#include "rvattn/rvattn.h"

#define KB 32 /* the engine's decode block */

static int usage(const char *prog) {
	fprintf(stderr, "usage: %s HEADS KV_HEADS HEAD_DIM QUERIES KEYS [RUNS] [--cpu-time] "
	                "[--kv f32|bf16|f16]\n", prog);
	return 2;
}

int main(int argc, char **argv) {
	bool cpu = false;
	rva_dtype kvt = RVA_F32;
	const char *pos[6];
	int npos = 0;
	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--cpu-time"))
			cpu = true;
		else if (!strcmp(argv[a], "--kv") && a + 1 < argc) {
			const char *t = argv[++a];
			if (!strcmp(t, "f32"))
				kvt = RVA_F32;
			else if (!strcmp(t, "bf16"))
				kvt = RVA_BF16;
			else if (!strcmp(t, "f16"))
				kvt = RVA_F16;
			else
				return usage(argv[0]);
		} else if (npos < 6)
			pos[npos++] = argv[a];
		else
			return usage(argv[0]);
	}
	if (npos < 5)
		return usage(argv[0]);
	size_t H = strtoul(pos[0], NULL, 10), KVH = strtoul(pos[1], NULL, 10);
	size_t D = strtoul(pos[2], NULL, 10), nq = strtoul(pos[3], NULL, 10);
	size_t nk = strtoul(pos[4], NULL, 10);
	int runs = npos > 5 ? atoi(pos[5]) : (nk > 1024 ? 7 : 200);
	if (!H || !KVH || H % KVH || !D || !nq || nq > 8 || !nk || runs < 1) {
		fprintf(stderr, "%s: heads and kv heads > 0 (kv heads dividing heads), head dim > 0, "
		                "1-8 queries, keys > 0, runs > 0\n", argv[0]);
		return 2;
	}
	size_t G = H / KVH, kvd = KVH * D, dim = H * D, HQ = H * nq, esz = rva__dtype_size(kvt);
	float *k = bench_buffer(nk * kvd, 1), *v = bench_buffer(nk * kvd, 2);
	float *q = bench_buffer(nq * dim, 3);
	float *sc = bench_buffer(HQ * KB, 4), *sp = bench_buffer(HQ * KB, 5);
	float *o = bench_buffer(HQ * D, 6), *m = bench_buffer(HQ, 7), *l = bench_buffer(HQ, 8);
	float scale = 1.0f / sqrtf((float)D);
	/* half K/V: the fp32 values converted into buffers of their own (huge pages too) */
	void *kh = k, *vh = v;
	if (kvt != RVA_F32) {
		kh = bench_buffer((nk * kvd + 1) / 2, 11);
		vh = bench_buffer((nk * kvd + 1) / 2, 12);
		rva__cvt_from_f32(kvt, k, kh, nk * kvd);
		rva__cvt_from_f32(kvt, v, vh, nk * kvd);
		if (kvt == RVA_BF16)
			rva__cvt_round_bf16(q, nq * dim);
	}
	rva_seq seq = {.nq = nq, .nk = nk, .q = q, .k = kh, .v = vh, .k_dtype = kvt, .v_dtype = kvt};
	float *hk = bench_buffer(KB * kvd, 9), *hv = bench_buffer(KB * kvd, 10);
	double (*clock_now)(void) = cpu ? bench_cpu_now : bench_now;

	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 1;
	rva_engine *e = NULL;
	if (!cpu && rva_engine_create(&ec, &e) != RVA_OK) {
		fprintf(stderr, "%s: engine: %s\n", argv[0], rva_last_error());
		return 1;
	}
	const void *bufs[2] = {kh, vh};
	size_t bytes[2] = {nk * kvd * esz, nk * kvd * esz};
	double *tk = malloc((size_t)runs * sizeof *tk), *trd = malloc((size_t)runs * sizeof *trd);
	double *ratio = malloc((size_t)runs * sizeof *ratio);
	if (!tk || !trd || !ratio) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		return 1;
	}
	double check = 0.0;
	volatile float sink = 0.0f;
	for (int r = 0; r < runs; r++) {
		double tr;
		if (cpu) {
			double t0 = bench_cpu_now();
			sink += bench_read_bytes(kh, bytes[0]) + bench_read_bytes(vh, bytes[1]);
			tr = bench_cpu_now() - t0;
		} else if (rva_engine_read_probe(e, bufs, bytes, 2, &tr) != RVA_OK) {
			fprintf(stderr, "%s: read probe: %s\n", argv[0], rva_last_error());
			return 1;
		}
		for (size_t i = 0; i < HQ; i++) {
			m[i] = -INFINITY;
			l[i] = 0.0f;
		}
		memset(o, 0, HQ * D * sizeof(float));
		double t0 = clock_now();
		float *cur = sc, *prev = sp;
		size_t prev0 = 0, nprev = 0;
		for (size_t b0 = 0; b0 < nk; b0 += KB) { /* the loop of softmax_core.c's decode task */
			size_t nkb = nk - b0 < KB ? nk - b0 : KB;
			if (kvt == RVA_F32)
				rva__sm_decode_step(k + b0 * kvd, kvd, nkb, v + prev0 * kvd, kvd, nprev, q, dim,
				                    nq, H, G, D, scale, cur, prev, KB, o);
			else
				rva__smh_decode_step(&seq, b0, nkb, prev0, nprev, kvd, q, dim, nq, H, G, D,
				                     scale, cur, prev, KB, o, hk, hv);
			rva__sm_decode_softmax(nkb, cur, HQ, D, KB, m, l, o);
			float *t = prev;
			prev = cur;
			cur = t;
			prev0 = b0;
			nprev = nkb;
		}
		if (kvt == RVA_F32)
			rva__sm_decode_step(k, kvd, 0, v + prev0 * kvd, kvd, nprev, q, dim, nq, H, G, D,
			                    scale, cur, prev, KB, o);
		else
			rva__smh_decode_step(&seq, 0, 0, prev0, nprev, kvd, q, dim, nq, H, G, D, scale, cur,
			                     prev, KB, o, hk, hv);
		tk[r] = clock_now() - t0;
		trd[r] = tr;
		ratio[r] = tr / tk[r];
		check = (double)(o[0] / l[0]);
	}
	(void)sink;
	double gb = (double)(bytes[0] + bytes[1]) * 1e-9;
	double best = tk[0], best_read = trd[0];
	for (int r = 1; r < runs; r++) {
		best = tk[r] < best ? tk[r] : best;
		best_read = trd[r] < best_read ? trd[r] : best_read;
	}
	const char *tn = kvt == RVA_F32 ? "f32" : kvt == RVA_BF16 ? "bf16" : "f16";
	if (cpu) {
		double mk = bench_median(tk, (size_t)runs), mr = bench_median(trd, (size_t)runs);
		printf("H%zu KVH%zu D%zu nq%zu keys %zu K/V %s, thread CPU time, medians of %d: "
		       "%.1f ns/key; %.1f GB/s of K+V, same-thread read %.1f GB/s, %.0f%% of read "
		       "(median of the runs' ratios; out[0] %.6f)\n",
		       H, KVH, D, nq, nk, tn, runs, mk / (double)nk * 1e9, gb / mk, gb / mr,
		       100.0 * bench_median(ratio, (size_t)runs), check);
	} else
		printf("H%zu KVH%zu D%zu nq%zu keys %zu K/V %s: %.1f ns/key, %.2f ns per (head, key); "
		       "%.1f GB/s of K+V, read %.1f GB/s, %.0f%% of read (out[0] %.6f)\n",
		       H, KVH, D, nq, nk, tn, best / (double)nk * 1e9,
		       best / (double)(nk * HQ) * 1e9, gb / best, gb / best_read,
		       100.0 * best_read / best, check);
	if (e)
		rva_engine_destroy(e);
	free(tk);
	free(trd);
	free(ratio);
	free(hk);
	free(hv);
	if (kvt != RVA_F32) {
		free(kh);
		free(vh);
	}
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

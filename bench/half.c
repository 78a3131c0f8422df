/*
 * half: bf16 and fp16 tensors against fp32, in one process and run (ratios hold on a
 * loaded machine):
 *
 *   G5 decode (B=16 H=12, 1 query x 4096 keys, D=64): fp32 K/V against bf16 and fp16 K/V
 *      (fp32 query and output), GB/s of the K/V bytes each reads, and the engine's
 *      streaming-read probe (rva_engine_read_probe) of the same bf16 K and V buffers on
 *      the same workers after each bf16 run (the bandwidth limit of the half decode);
 *   G2 flash (B=4 H=12 N=2048 D=64): fp32 against all-bf16 and all-fp16 tensors, next to
 *      the single-thread sgemm limit and the bf16 dot-product peak probe
 *      (bench_bf16_peak_gflops: vdpbf16ps on independent accumulators, 64 FLOP per
 *      instruction, the bf16 ceiling of this CPU; 0 without AVX512_BF16), at the same
 *      thread count.
 *
 * Median of --repeat runs after a warm-up; buffers allocated and pre-faulted before timing.
 *
 *   build/bench/half [--threads 1,2] [--repeat R] [--rows G5,G2]
 */
#define _GNU_SOURCE 1
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "kernels/half.h"
#include "rvattn/rvattn.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

typedef struct run_res {
	double s;       /* median seconds */
	double read_s;  /* with probe: median seconds of the engine's read of the K and V bytes */
	rva_status st;
} run_res;

/* One shape with element types qt/kt/vt/ot, t threads: median seconds. */
static run_res run(size_t B, size_t H, size_t nq, size_t nk, size_t D, rva_dtype qt,
                   rva_dtype kt, rva_dtype vt, rva_dtype ot, unsigned threads, int reps,
                   size_t *kv_bytes, bool probe) {
	run_res res = {0};
	size_t dim = H * D, nqr = B * nq, nkr = B * nk;
	float *q = bench_buffer(nqr * dim, 1), *k = bench_buffer(nkr * dim, 2),
	      *v = bench_buffer(nkr * dim, 3), *o = bench_buffer(nqr * dim, 4);
	/* half copies (converted once, before timing), on huge pages as the fp32 buffers */
	void *qh = qt ? (void *)bench_buffer((nqr * dim + 1) / 2, 5) : q,
	     *kh = kt ? (void *)bench_buffer((nkr * dim + 1) / 2, 6) : k,
	     *vh = vt ? (void *)bench_buffer((nkr * dim + 1) / 2, 7) : v;
	if (qt)
		rva__cvt_from_f32(qt, q, qh, nqr * dim);
	if (kt)
		rva__cvt_from_f32(kt, k, kh, nkr * dim);
	if (vt)
		rva__cvt_from_f32(vt, v, vh, nkr * dim);
	*kv_bytes = nkr * dim * (rva__dtype_size(kt) + rva__dtype_size(vt));
	rva_seq *seqs = calloc(B, sizeof *seqs);
	for (size_t b = 0; b < B; b++)
		seqs[b] = (rva_seq){.nq = nq, .nk = nk,
		                    .q = rva__elem_at(qh, qt, b * nq * dim),
		                    .k = rva__elem_at(kh, kt, b * nk * dim),
		                    .v = rva__elem_at(vh, vt, b * nk * dim),
		                    .out = rva__elem_at_mut(o, ot, b * nq * dim), .q_dtype = qt,
		                    .k_dtype = kt, .v_dtype = vt, .out_dtype = ot};
	rva_batch batch = {B, seqs};
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = threads;
	rva_engine *e = NULL;
	rva_attention *att = NULL;
	rva_config cfg = rva_flash(dim, 0);
	cfg.heads = H;
	double *t = malloc((size_t)reps * sizeof *t), *rt = malloc((size_t)reps * sizeof *rt);
	if ((res.st = rva_engine_create(&ec, &e)) != RVA_OK || (res.st = rva_build(&cfg, &att)))
		goto out;
	const void *kv[2] = {kh, vh};
	size_t kvb[2] = {nkr * dim * rva__dtype_size(kt), nkr * dim * rva__dtype_size(vt)};
	for (int i = -1; i < reps; i++) {
		double t0 = bench_now();
		if ((res.st = rva_engine_run(e, att, &batch, NULL, NULL, NULL)) != RVA_OK)
			goto out;
		if (i >= 0)
			t[i] = bench_now() - t0;
		if (probe && i >= 0 &&
		    (res.st = rva_engine_read_probe(e, kv, kvb, 2, &rt[i])) != RVA_OK)
			goto out;
	}
	res.s = bench_median(t, (size_t)reps);
	res.read_s = probe ? bench_median(rt, (size_t)reps) : 0.0;
out:
	free(t);
	free(rt);
	rva_attention_destroy(att);
	rva_engine_destroy(e);
	free(seqs);
	if (qt)
		free(qh);
	if (kt)
		free(kh);
	if (vt)
		free(vh);
	free(q);
	free(k);
	free(v);
	free(o);
	return res;
}

static bool wanted(const char *only, const char *name) {
	if (!only)
		return true;
	const char *p = strstr(only, name);
	size_t n = strlen(name);
	return p && (p == only || p[-1] == ',') && (p[n] == '\0' || p[n] == ',');
}

int main(int argc, char **argv) {
	unsigned threads[8] = {1};
	size_t nt = 1;
	int reps = 5;
	const char *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			nt = 0;
			for (char *s = strtok(argv[++i], ","); s && nt < 8; s = strtok(NULL, ","))
				threads[nt++] = (unsigned)atoi(s);
		} else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
			reps = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--rows") && i + 1 < argc) {
			only = argv[++i];
		} else {
			fprintf(stderr, "usage: half [--threads 1,2] [--repeat R] [--rows G5,G2]\n");
			return 2;
		}
	}
	if (reps < 1)
		reps = 1;
	bench_header(stdout, "half");
	printf("# half instructions: AVX512_BF16 %s, F16C %s\n",
	       rva__half_avx512bf16() ? "yes" : "no", rva__half_f16c() ? "yes" : "no");
	double limit = bench_sgemm_gflops(1024, 1024, 1024, 7, 1);
	printf("# limit: single-thread sgemm 1024^3 = %.1f GFLOP/s (same process)\n", limit);
	for (size_t ti = 0; ti < nt; ti++) {
		unsigned T = threads[ti];
		if (wanted(only, "G5")) {
			size_t B = 16, H = 12, nk = 4096, D = 64, bytes32, bytes16, bytesf;
			run_res f = run(B, H, 1, nk, D, RVA_F32, RVA_F32, RVA_F32, RVA_F32, T, reps,
			                &bytes32, false);
			run_res b = run(B, H, 1, nk, D, RVA_F32, RVA_BF16, RVA_BF16, RVA_F32, T, reps,
			                &bytes16, true);
			run_res h = run(B, H, 1, nk, D, RVA_F32, RVA_F16, RVA_F16, RVA_F32, T, reps,
			                &bytesf, false);
			if (f.st || b.st || h.st) {
				fprintf(stderr, "G5: %s\n", rva_last_error());
				return 1;
			}
			double rd = bytes16 / b.read_s * 1e-9;
			double g32 = bytes32 / f.s * 1e-9, g16 = bytes16 / b.s * 1e-9,
			       gf = bytesf / h.s * 1e-9;
			printf("G5 decode T=%u: fp32 %.3f ms (%.1f GB/s) | bf16 K/V %.3f ms (%.1f GB/s) "
			       "speed-up %.2fx, %.0f%% of the bf16-bytes read (%.1f GB/s) | fp16 K/V "
			       "%.3f ms (%.1f GB/s) speed-up %.2fx\n",
			       T, f.s * 1e3, g32, b.s * 1e3, g16, f.s / b.s, 100.0 * g16 / rd, rd,
			       h.s * 1e3, gf, f.s / h.s);
		}
		if (wanted(only, "G2")) {
			size_t B = 4, H = 12, N = 2048, D = 64, by;
			double flops = 4.0 * (double)B * (double)H * (double)N * (double)N * (double)D;
			run_res f = run(B, H, N, N, D, RVA_F32, RVA_F32, RVA_F32, RVA_F32, T, reps, &by,
			                false);
			run_res b = run(B, H, N, N, D, RVA_BF16, RVA_BF16, RVA_BF16, RVA_BF16, T, reps,
			                &by, false);
			run_res h = run(B, H, N, N, D, RVA_F16, RVA_F16, RVA_F16, RVA_F16, T, reps, &by,
			                false);
			if (f.st || b.st || h.st) {
				fprintf(stderr, "G2: %s\n", rva_last_error());
				return 1;
			}
			double peak = bench_bf16_peak_gflops(T, reps);
			double gf = flops / f.s * 1e-9, gb = flops / b.s * 1e-9, gh = flops / h.s * 1e-9;
			printf("G2 flash T=%u: fp32 %.1f GFLOP/s (%.2fx sgemm limit) | bf16 %.1f GFLOP/s "
			       "(%.2fx fp32, %.2fx sgemm limit, %.0f%% of the bf16 peak %.0f) | fp16 %.1f "
			       "GFLOP/s (%.2fx fp32)\n",
			       T, gf, gf / (limit * T), gb, gb / gf, gb / (limit * T),
			       peak > 0 ? 100.0 * gb / peak : 0.0, peak, gh, gh / gf);
		}
	}
	return 0;
}

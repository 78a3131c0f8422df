/*
 * prefill_parts: where the cycles of the fp32 prefill tile loop go (hardware counters are
 * not available everywhere; this times the loop's kernels alone instead).
 *
 * For one head of G1 (N=512), G2 (N=2048), G3 (G2 causal) and G4 (N=8192 causal, 16
 * heads; D=64, keys at the row stride of all heads), on one thread, it runs the tile loop of
 * src/attention/softmax_core.c (query tiles of 64 rows, key tiles of 128, the AVX-512
 * kernels of softmax_kernels.c) whole, and each of its parts alone over the same tiles:
 *   qk       St = K.Qt (rva__sm_scores_fused)
 *   softmax  online softmax of St (max pass, exp pass, m/l update)
 *   rescale  O *= alpha (forced on every tile)
 *   pv       O += P^T V (rva__sm_pv_fused)
 *   mask     the causal mask of the diagonal tiles (G4)
 *   pack     Q^T packing, once per query tile
 * and the whole loop twice more: on contiguous copies of the head's K and V made outside
 * the timing (an upper bound for packing them once), and with each key tile's K and V
 * copied contiguous right before use (slower: the copy costs more than it saves),
 * interleaved in rounds with the FMA peak probe. Times are the thread's CPU time
 * (bench_cpu_now: time while descheduled by other work does not count), the best of the
 * rounds for each part and for the probe (bench_fma_peak_thread_gflops). Prints each part's time, its share of the whole loop, GFLOP/s and share of the
 * FMA peak for the two products, and the softmax cost per score in cycle equivalents
 * (FMA peak / 64 flops per cycle: two 512-bit FMA pipes).
 *
 *   build/bench/prefill_parts [--rows G1,G2,G3,G4] [--repeat 5] [--bc 128] [--dim 64]
 *
 * --bc sets the key tile (16..512, a multiple of 16; the engine's default block_size is 128),
 * --dim the head dim (16, 32, 64, 128 or 256; the heads per row shrink so the row stride
 * stays the shape's): the tile-size and head-dim questions measured the same way.
 */
#define _GNU_SOURCE 1
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention/pattern.h"
#include "attention/softmax_kernels.h"
#include "bench_common.h"

enum { BR = 64, NPART = 9 };
static size_t BC = 128; /* keys per tile (--bc) */
static const char *part_name[NPART] = {"whole", "qk", "softmax", "rescale", "pv", "mask",
                                       "pack", "whole-kv", "whole-pk"};

typedef struct shape {
	const char *name;
	size_t H, N, D;
	bool causal;
} shape;

typedef struct bufs {
	float *q, *k, *v;       /* N x (H*D), head 0 used */
	float *kc, *vc;         /* head 0 of k and v, contiguous N x D */
	float *kp, *vp;         /* one key tile of K and V, contiguous */
	float *st, *qt, *o, *m, *l, *alpha;
	int64_t *qpos;
} bufs;

/* One pass of the tile loop over every query tile of head 0; `part` selects what runs
 * (0: everything, as attend() does). Returns a checksum so nothing is optimised away. */
static double tile_loop(const shape *s, bufs *b, int part, const rva__pattern *pat) {
	size_t D = s->D, ld = s->H * s->D, N = s->N;
	const float *kb = b->k, *vb = b->v;
	size_t kvld = ld;
	if (part == 7) { /* the whole loop on contiguous copies of the head's K and V */
		part = 0;
		kb = b->kc;
		vb = b->vc;
		kvld = D;
	}
	bool packtile = part == 8;
	if (packtile)
		part = 0;
	float scale = 1.0f / sqrtf((float)D);
	double check = 0.0;
	for (size_t q0 = 0; q0 < N; q0 += BR) {
		size_t br = BR, brp = BR;
		for (size_t i = 0; i < br; i++)
			b->qpos[i] = (int64_t)(q0 + i);
		if (part == 0 || part == 6)
			rva__sm_pack_qt(b->q + q0 * ld, ld, br, brp, D, scale, b->qt);
		if (part == 0) {
			for (size_t i = 0; i < brp; i++) {
				b->m[i] = -INFINITY;
				b->l[i] = 0.0f;
			}
			memset(b->o, 0, br * D * sizeof(float));
		}
		int64_t qb = b->qpos[br - 1];
		for (size_t k0 = 0; k0 < N; k0 += BC) {
			size_t nkt = BC < N - k0 ? BC : N - k0; /* --bc need not divide N */
			if (s->causal) {
				if ((int64_t)k0 > qb)
					break;
				nkt = nkt < (size_t)(qb - (int64_t)k0) + 1 ? nkt : (size_t)(qb - (int64_t)k0) + 1;
			}
			bool diag = s->causal && (int64_t)(k0 + nkt - 1) > b->qpos[0];
			const float *kt = kb + k0 * kvld, *vt = vb + k0 * kvld;
			size_t tld = kvld;
			if (packtile) {
				for (size_t j = 0; j < nkt; j++) {
					memcpy(b->kp + j * D, kt + j * kvld, D * sizeof(float));
					memcpy(b->vp + j * D, vt + j * kvld, D * sizeof(float));
				}
				kt = b->kp;
				vt = b->vp;
				tld = D;
			}
			switch (part) {
			case 0:
				rva__sm_scores_fused(kt, tld, nkt, b->qt, brp, D, b->st);
				if (diag)
					rva__pattern_mask_tile(pat, b->qpos, br, k0, nkt, b->st, brp);
				if (rva__sm_online_softmax(b->st, brp, nkt, b->m, b->l, b->alpha))
					rva__sm_rescale(b->o, br, D, b->alpha);
				rva__sm_pv_fused(b->st, brp, nkt, vt, tld, br, D, b->o);
				break;
			case 1: rva__sm_scores_fused(kt, kvld, nkt, b->qt, brp, D, b->st); break;
			case 2: rva__sm_online_softmax(b->st, brp, nkt, b->m, b->l, b->alpha); break;
			case 3: rva__sm_rescale(b->o, br, D, b->alpha); break;
			case 4: rva__sm_pv_fused(b->st, brp, nkt, vt, kvld, br, D, b->o); break;
			case 5:
				if (diag)
					rva__pattern_mask_tile(pat, b->qpos, br, k0, nkt, b->st, brp);
				break;
			default: break;
			}
		}
		check += b->o[0] + b->st[0];
	}
	return check;
}

/* Visible pairs of head 0 (the FLOP count of each product is 2 * pairs * D). */
static double pairs_of(const shape *s) {
	return s->causal ? (double)s->N * (double)(s->N + 1) / 2.0 : (double)s->N * (double)s->N;
}

static void run_shape(const shape *s, int reps) {
	size_t ld = s->H * s->D, n = s->N * ld;
	bufs b;
	b.q = bench_buffer(n, 1);
	b.k = bench_buffer(n, 2);
	b.v = bench_buffer(n, 3);
	b.st = bench_buffer(BC * BR + 16, 4);
	b.qt = bench_buffer(s->D * BR, 5);
	b.o = bench_buffer(BR * s->D + 16, 6);
	b.m = bench_buffer(BR, 7);
	b.l = bench_buffer(BR, 8);
	b.alpha = bench_buffer(BR, 9);
	b.qpos = malloc(BR * sizeof *b.qpos);
	b.kc = bench_buffer(s->N * s->D, 10);
	b.vc = bench_buffer(s->N * s->D, 11);
	b.kp = bench_buffer(BC * s->D, 12);
	b.vp = bench_buffer(BC * s->D, 13);
	for (size_t j = 0; j < s->N; j++) {
		memcpy(b.kc + j * s->D, b.k + j * ld, s->D * sizeof(float));
		memcpy(b.vc + j * s->D, b.v + j * ld, s->D * sizeof(float));
	}
	rva__pattern pat = {.causal = s->causal};
	double *t = malloc((size_t)reps * (NPART + 1) * sizeof *t);
	volatile double sink = 0.0;
	/* the parts alone start from a whole pass's state: probabilities in St, finite m */
	sink += tile_loop(s, &b, 0, &pat);
	for (int r = -1; r < reps; r++) {
		double fma = bench_fma_peak_thread_gflops(3);
		if (r >= 0)
			t[r * (NPART + 1) + NPART] = fma;
		for (int p = 0; p < NPART; p++) {
			if (p == 3)
				for (size_t i = 0; i < BR; i++)
					b.alpha[i] = 0.999f; /* every tile rescales */
			double t0 = bench_cpu_now();
			sink += tile_loop(s, &b, p, &pat);
			if (r >= 0)
				t[r * (NPART + 1) + p] = bench_cpu_now() - t0;
		}
	}
	(void)sink;
	/* best round: least time per part, most GFLOP/s for the probe */
	double best[NPART + 1];
	for (int p = 0; p <= NPART; p++) {
		best[p] = t[p];
		for (int r = 1; r < reps; r++) {
			double x = t[r * (NPART + 1) + p];
			best[p] = p == NPART ? (x > best[p] ? x : best[p]) : (x < best[p] ? x : best[p]);
		}
	}
	double pairs = pairs_of(s), fma = best[NPART], ghz = fma / 64.0;
	double prod_flops = 2.0 * pairs * (double)s->D;
	printf("\n%s: one head, N=%zu D=%zu%s, row stride %zu floats, tiles %d x %zu; FMA peak "
	       "%.1f GFLOP/s (%.2f GHz-equivalent at 64 flops/cycle)\n", s->name, s->N, s->D,
	       s->causal ? " causal" : "", ld, (int)BR, BC, fma, ghz);
	printf("whole loop: %.2f ms, %.1f GFLOP/s = %.0f%% of the FMA peak\n", best[0] * 1e3,
	       2.0 * prod_flops / best[0] * 1e-9, 100.0 * 2.0 * prod_flops / best[0] * 1e-9 / fma);
	printf("%-8s %9s %8s %9s %8s\n", "part", "ms", "of-whole", "GFLOP/s", "of-fma");
	double sum = 0.0;
	for (int p = 1; p < 7; p++) {
		sum += best[p];
		if (p == 1 || p == 4)
			printf("%-8s %9.2f %7.0f%% %9.1f %7.0f%%\n", part_name[p], best[p] * 1e3,
			       100.0 * best[p] / best[0], prod_flops / best[p] * 1e-9,
			       100.0 * prod_flops / best[p] * 1e-9 / fma);
		else
			printf("%-8s %9.2f %7.0f%%\n", part_name[p], best[p] * 1e3, 100.0 * best[p] / best[0]);
	}
	double ideal = 2.0 * prod_flops / (fma * 1e9);
	printf("whole loop, the head's K and V contiguous (row stride D): %.2f ms, %.0f%% of the FMA "
	       "peak\n", best[7] * 1e3, 100.0 * 2.0 * prod_flops / best[7] * 1e-9 / fma);
	printf("whole loop, each key tile's K and V copied contiguous first: %.2f ms, %.0f%% of the "
	       "FMA peak\n", best[8] * 1e3, 100.0 * 2.0 * prod_flops / best[8] * 1e-9 / fma);
	printf("sum of parts %.2f ms (%.0f%% of whole); FMA-peak time of the flops %.2f ms\n",
	       sum * 1e3, 100.0 * sum / best[0], ideal * 1e3);
	printf("softmax per score: %.2f ns = %.2f cycle-equivalents (the two products: %.2f per "
	       "score at peak)\n", best[2] / pairs * 1e9, best[2] / pairs * ghz * 1e9,
	       4.0 * (double)s->D / 64.0);
	free(t);
	free(b.q);
	free(b.k);
	free(b.v);
	free(b.st);
	free(b.qt);
	free(b.o);
	free(b.m);
	free(b.l);
	free(b.alpha);
	free(b.qpos);
	free(b.kc);
	free(b.vc);
	free(b.kp);
	free(b.vp);
}

int main(int argc, char **argv) {
	static const shape shapes[] = {{"G1", 12, 512, 64, false},
	                               {"G2", 12, 2048, 64, false},
	                               {"G3", 12, 2048, 64, true},
	                               {"G4", 16, 8192, 64, true}};
	const char *only = "G2,G4";
	int reps = 5, bc = 128, dim = 64;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rows") && i + 1 < argc)
			only = argv[++i];
		else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--bc") && i + 1 < argc)
			bc = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--dim") && i + 1 < argc)
			dim = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: prefill_parts [--rows G1,G2,G3,G4] [--repeat R] [--bc 16..512] "
			                "[--dim 16|32|64|128|256]\n");
			return 2;
		}
	}
	if (bc < 16 || bc > 512 || bc % 16 != 0 || dim < 16 || dim > 256 || (dim & (dim - 1)) != 0) {
		fprintf(stderr, "prefill_parts: --bc takes a multiple of 16 in 16..512, --dim a power of "
		                "two in 16..256\n");
		return 2;
	}
	BC = (size_t)bc;
	if (reps < 1 || reps > 64)
		reps = reps < 1 ? 1 : 64;
	if (!rva__sm_use_fused()) {
		fprintf(stderr, "prefill_parts: the fused AVX-512 kernels are not in use on this CPU "
		                "(or RVATTN_ATTN_KERNEL/RVATTN_SIMD); nothing to break down\n");
		return 1;
	}
	bench_header(stdout, "prefill_parts");
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		char list[256], pat[16];
		snprintf(list, sizeof list, ",%s,", only);
		snprintf(pat, sizeof pat, ",%s,", shapes[i].name);
		if (strstr(list, pat)) {
			shape sh = shapes[i]; /* another head dim at the same row stride (H x D) */
			sh.H = sh.H * sh.D / (size_t)dim;
			sh.D = (size_t)dim;
			run_shape(&sh, reps);
		}
	}
	return 0;
}

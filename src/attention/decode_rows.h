/*
 * The AVX-512 decode step (rva__sm_decode_step, softmax_kernels.h), one body for every
 * head layout (multi-head, GQA, multi-query; one or a few queries) and every K/V element
 * type: fp32 K/V (softmax_kernels.c) and bf16/fp16 K/V read in place and widened in
 * registers (softmax_half_kernels.c). Included by those two files only.
 *
 * Why it is shaped like this (bench/RESULTS.md §10): a decode streams K and V from memory,
 * so the step is built around keeping the stream going while it computes.
 *  - One query over multi-head K/V (G x nq = 1, G5's shape) reads each K row and each V
 *    row whole, front to back, and prefetches every line of the rows DECODE_PF_BYTES
 *    ahead into L1 (16-20 GB/s without, 20-25 with, against a 22-27 GB/s plain read).
 *  - Shared kv heads (GQA, multi-query, several queries: G x nq >= 2) have G x nq times
 *    the arithmetic per byte, so key rows go in groups of four: per kv head each K piece
 *    is loaded once for up to four (head, query) rows and each query piece once for the
 *    four keys (16 accumulators, one horizontal-sum tree per row and group); each V piece
 *    once for all the kv head's rows and each O piece loaded and stored once per four
 *    rows. The next group's rows are prefetched one kv-head slice at a time as each kv
 *    head is processed, so the prefetches spread over the group's work: issued in one
 *    burst per group (the earlier kernel, 12 KiB ahead) they left GQA 12/4 at 68-81%, the
 *    llama-3 shape at 50% and multi-query at 41-46% of a same-thread read, spread
 *    98-103%, 89-90% and 60-65% (thread CPU time, bench/decode_kernel).
 *
 * Bits: a key row's score is fused multiply-adds over D in order (dr_dot, or the same
 * operations per accumulator in dr_scores_u4), then a lane of the tree (each sum adds only
 * its own vector's lanes, so its place among four does not matter); a V row's addition is
 * one fused multiply-add per element into O, rows in order. Neither depends on how rows
 * are grouped into calls (paged K/V cut steps at page boundaries), on the kv head count of
 * the call (K/V at other head strides run one kv head at a time) or on threads; half K/V
 * give the bits of the fp32 step on the widened rows (widening is exact).
 */
#ifndef RVATTN_DECODE_ROWS_H
#define RVATTN_DECODE_ROWS_H
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/internal.h"
#include "kernels/half.h"
#include "kernels/lanes16.h"
#include "kernels/vexp.h"

/* Prefetch distance in bytes of row data (at least the next group of four rows where rows
 * go in groups): 1.5, 3 and 4.5 KiB measured alike for whole rows, 6 KiB and beyond less. */
#define DECODE_PF_BYTES 2048u

/* 16 elements of a row of type T from element i, widened to fp32 (zeros beyond mk). */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) __m512
dr_load16(const void *p, size_t i, __mmask16 mk, const rva_dtype T) {
	if (T == RVA_F32)
		return mk == 0xFFFF ? _mm512_loadu_ps((const float *)p + i)
		                    : _mm512_maskz_loadu_ps(mk, (const float *)p + i);
	const uint16_t *h = (const uint16_t *)p + i;
	__m256i x = mk == 0xFFFF ? _mm256_loadu_si256((const __m256i *)h)
	                         : _mm256_maskz_loadu_epi16(mk, h);
	if (T == RVA_BF16)
		return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(x), 16));
	return _mm512_cvtph_ps(x);
}

/* The horizontal sums of four vectors at once, in lanes 0-3 (a transpose-and-add tree:
 * 9 shuffles and 5 adds for four sums, against ~8 dependent operations per
 * _mm512_reduce_add_ps). Each sum adds only its own vector's lanes. */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) __m128
dr_hsum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
	/* 128-bit chunks: x = [a0 a0 a1 a1], y = [a2 a2 a3 a3] (two partials each) */
	__m512 x = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44), _mm512_shuffle_f32x4(a0, a1, 0xEE));
	__m512 y = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44), _mm512_shuffle_f32x4(a2, a3, 0xEE));
	/* chunk r: four partials of a_r */
	__m512 z = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x88), _mm512_shuffle_f32x4(x, y, 0xDD));
	z = _mm512_add_ps(z, _mm512_shuffle_ps(z, z, _MM_SHUFFLE(1, 0, 3, 2)));
	z = _mm512_add_ps(z, _mm512_shuffle_ps(z, z, _MM_SHUFFLE(2, 3, 0, 1)));
	/* lane 0 of chunk r holds the sum of a_r */
	const __m512i idx = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
	return _mm512_castps512_ps128(_mm512_permutexvar_ps(idx, z));
}

/* Every cache line of `bytes` bytes at address a into L1. An integer: a may lie past the
 * rows of the call (no pointer is formed there; a prefetch never faults). */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) void
dr_prefetch(uintptr_t a, size_t bytes) {
	for (size_t b = 0; b < bytes; b += 64)
		_mm_prefetch((const char *)(a + b), _MM_HINT_T0);
}

/* q_r . K slice as one vector of partial sums: fused multiply-adds over D in order. */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) __m512
dr_dot(const float *q, const void *k, size_t D, const rva_dtype KT) {
	__m512 acc = _mm512_setzero_ps();
	for (size_t d = 0; d < D; d += 16) {
		__mmask16 mk = rva__lanes16(D - d);
		acc = _mm512_fmadd_ps(dr_load16(k, d, mk, KT), _mm512_maskz_loadu_ps(mk, q + d), acc);
	}
	return acc;
}

/* One query over multi-head K/V (G x nq = 1): the scores of key row kj, heads in fours
 * through one tree. */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) void
dr_score_heads(const void *kj, const float *q, size_t H, size_t D, float scale, float *sc,
               size_t kb, size_t j, const rva_dtype KT) {
	size_t ksz = rva__dtype_size(KT), h = 0;
	const char *k = kj;
	for (; h + 4 <= H; h += 4) {
		__m128 s = dr_hsum4(dr_dot(q + h * D, k + h * D * ksz, D, KT),
		                    dr_dot(q + (h + 1) * D, k + (h + 1) * D * ksz, D, KT),
		                    dr_dot(q + (h + 2) * D, k + (h + 2) * D * ksz, D, KT),
		                    dr_dot(q + (h + 3) * D, k + (h + 3) * D * ksz, D, KT));
		float t[4];
		_mm_storeu_ps(t, _mm_mul_ps(_mm_set1_ps(scale), s));
		sc[h * kb + j] = t[0];
		sc[(h + 1) * kb + j] = t[1];
		sc[(h + 2) * kb + j] = t[2];
		sc[(h + 3) * kb + j] = t[3];
	}
	for (; h < H; h++) {
		__m512 a = dr_dot(q + h * D, k + h * D * ksz, D, KT);
		sc[h * kb + j] = _mm_cvtss_f32(_mm_mul_ss(_mm_set1_ps(scale), dr_hsum4(a, a, a, a)));
	}
}

/* O += p_j V_j for value row vj, every (head, query): per kv head and 16-float piece the
 * slice is loaded once for its G x nq rows. */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) void
dr_pv_row(const void *vj, const float *p, size_t nq, size_t H, size_t G, size_t D, size_t kb,
          size_t j, float *o, const rva_dtype VT) {
	size_t gq = G * nq, vsz = rva__dtype_size(VT);
	for (size_t g = 0; g < H / G; g++) {
		const char *vg = (const char *)vj + g * D * vsz;
		for (size_t d = 0; d < D; d += 16) {
			__mmask16 mk = rva__lanes16(D - d);
			__m512 x = dr_load16(vg, d, mk, VT);
			for (size_t r = g * gq; r < (g + 1) * gq; r++) {
				float *od = o + r * D + d;
				_mm512_mask_storeu_ps(od, mk, _mm512_fmadd_ps(_mm512_set1_ps(p[r * kb + j]), x,
				                                              _mm512_maskz_loadu_ps(mk, od)));
			}
		}
	}
}

/* U (head, query) rows of one kv head (query rows qr[u]) against four key slices k4 (a
 * short group repeats its last row; `keep` masks the stored scores): each K piece loaded
 * once for the U rows, each query piece once for the four keys; per row the four sums
 * leave through one tree into dst[u] .. dst[u] + 3. */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) void
dr_scores_u4(const float *const qr[4], float *const dst[4], const char *const k4[4], size_t D,
             __mmask8 keep, __m128 vs, const rva_dtype KT, const int U) {
	__m512 acc[4][4];
	for (int u = 0; u < U; u++)
		for (int t = 0; t < 4; t++)
			acc[u][t] = _mm512_setzero_ps();
	for (size_t d = 0; d < D; d += 16) {
		__mmask16 mk = rva__lanes16(D - d);
		__m512 x[4];
		for (int t = 0; t < 4; t++)
			x[t] = dr_load16(k4[t], d, mk, KT);
		for (int u = 0; u < U; u++) {
			__m512 qv = _mm512_maskz_loadu_ps(mk, qr[u] + d);
			for (int t = 0; t < 4; t++)
				acc[u][t] = _mm512_fmadd_ps(x[t], qv, acc[u][t]);
		}
	}
	for (int u = 0; u < U; u++)
		_mm_mask_storeu_ps(dst[u], keep,
		                   _mm_mul_ps(vs, dr_hsum4(acc[u][0], acc[u][1], acc[u][2], acc[u][3])));
}

/* Scores of key rows kr[0..3] (nv of them valid) for every (head, query) row, the rows of
 * a kv head in tuples of up to four. Each kv head's pass prefetches that head's slice of
 * the four rows at pf (row stride pfs bytes): the prefetches of a group spread over its
 * work instead of leaving in one burst. */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) void
dr_scores4(const char *const kr[4], size_t nv, const float *q, size_t qs, size_t nq, size_t H,
           size_t G, size_t D, float scale, float *sc, size_t kb, size_t j, uintptr_t pf,
           size_t pfs, const rva_dtype KT) {
	size_t gq = G * nq, ksz = rva__dtype_size(KT);
	const __m128 vs = _mm_set1_ps(scale);
	const __mmask8 keep = (__mmask8)((1u << nv) - 1);
	for (size_t g = 0; g < H / G; g++) {
		for (size_t t = 0; t < 4; t++)
			dr_prefetch(pf + t * pfs + g * D * ksz, D * ksz);
		const char *k4[4] = {kr[0] + g * D * ksz, kr[1] + g * D * ksz, kr[2] + g * D * ksz,
		                     kr[3] + g * D * ksz};
		for (size_t l0 = 0; l0 < gq; l0 += 4) {
			size_t cnt = gq - l0 < 4 ? gq - l0 : 4;
			const float *qr[4] = {q, q, q, q};
			float *dst[4] = {sc, sc, sc, sc};
			for (size_t u = 0; u < cnt; u++) {
				size_t r = g * gq + l0 + u, h = r / nq; /* r = h * nq + i */
				qr[u] = q + (r - h * nq) * qs + h * D;
				dst[u] = sc + r * kb + j;
			}
			switch (cnt) {
			case 4: dr_scores_u4(qr, dst, k4, D, keep, vs, KT, 4); break;
			case 3: dr_scores_u4(qr, dst, k4, D, keep, vs, KT, 3); break;
			case 2: dr_scores_u4(qr, dst, k4, D, keep, vs, KT, 2); break;
			default: dr_scores_u4(qr, dst, k4, D, keep, vs, KT, 1); break;
			}
		}
	}
}

/* O += p_j V_j + ... + p_{j+3} V_{j+3} (value rows in that order), every (head, query):
 * per kv head, 64 columns at a time, the four rows' pieces are loaded once into registers
 * (16 vectors) for all the kv head's rows, each row's four probabilities broadcast once
 * per 64 columns, each O piece loaded and stored once for the four rows (in cache: 8-34 %
 * less time than broadcasting per 16 columns for multi-query and llama-3's 32/8 at D128);
 * the kv head's slices of the four rows at pf are prefetched. */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) void
dr_pv4(const void *vj, size_t vs, const float *p, size_t nq, size_t H, size_t G, size_t D,
       size_t kb, size_t j, float *o, uintptr_t pf, const rva_dtype VT) {
	size_t gq = G * nq, vsz = rva__dtype_size(VT);
	for (size_t g = 0; g < H / G; g++) {
		for (size_t t = 0; t < 4; t++)
			dr_prefetch(pf + (t * vs + g * D) * vsz, D * vsz);
		const char *v0 = (const char *)vj + g * D * vsz;
		for (size_t d0 = 0; d0 < D; d0 += 64) {
			size_t np = (D - d0 + 15) / 16;
			np = np < 4 ? np : 4;
			__m512 x[4][4];
			for (size_t t = 0; t < 4; t++)
				for (size_t c = 0; c < np; c++)
					x[t][c] = dr_load16(v0 + t * vs * vsz, d0 + 16 * c,
					                    rva__lanes16(D - d0 - 16 * c), VT);
			for (size_t r = g * gq; r < (g + 1) * gq; r++) {
				const float *pr = p + r * kb + j;
				__m512 p0 = _mm512_set1_ps(pr[0]), p1 = _mm512_set1_ps(pr[1]);
				__m512 p2 = _mm512_set1_ps(pr[2]), p3 = _mm512_set1_ps(pr[3]);
				for (size_t c = 0; c < np; c++) {
					__mmask16 mk = rva__lanes16(D - d0 - 16 * c);
					float *od = o + r * D + d0 + 16 * c;
					__m512 acc = _mm512_maskz_loadu_ps(mk, od);
					acc = _mm512_fmadd_ps(p0, x[0][c], acc);
					acc = _mm512_fmadd_ps(p1, x[1][c], acc);
					acc = _mm512_fmadd_ps(p2, x[2][c], acc);
					acc = _mm512_fmadd_ps(p3, x[3][c], acc);
					_mm512_mask_storeu_ps(od, mk, acc);
				}
			}
		}
	}
}

/*
 * The step: K rows [0, ncur) of kc scored into sc_cur while V rows [0, nprev) of vp are
 * added with the previous block's probabilities sc_prev (both streams in flight
 * together). Strides ks, vs in elements of KT / VT. DD: a constant head dim (fully
 * unrolled) or 0 (runtime D). One query over multi-head K/V goes row by row (whole rows);
 * shared kv heads (G x nq >= 2) go in groups of four rows.
 */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) void
dr_step(const void *kc, size_t ks, size_t ncur, const void *vp, size_t vs, size_t nprev,
        const float *q, size_t qs, size_t nq, size_t H, size_t G, size_t D, float scale,
        float *sc_cur, const float *sc_prev, size_t kb, float *o, const rva_dtype KT,
        const rva_dtype VT, const size_t DD) {
	if (DD)
		D = DD;
	size_t n = ncur > nprev ? ncur : nprev, ksz = rva__dtype_size(KT), vsz = rva__dtype_size(VT);
	size_t krb = (H / G) * D * ksz, vrb = (H / G) * D * vsz; /* bytes of a row read */
	size_t kpf = (DECODE_PF_BYTES + krb - 1) / krb, vpf = (DECODE_PF_BYTES + vrb - 1) / vrb;
	const char *K = kc, *V = vp;
	if (G * nq == 1) {
		for (size_t j = 0; j < n; j++) {
			dr_prefetch((uintptr_t)K + (j + kpf) * ks * ksz, krb);
			dr_prefetch((uintptr_t)V + (j + vpf) * vs * vsz, vrb);
			if (j < ncur)
				dr_score_heads(K + j * ks * ksz, q, H, D, scale, sc_cur, kb, j, KT);
			if (j < nprev)
				dr_pv_row(V + j * vs * vsz, sc_prev, 1, H, 1, D, kb, j, o, VT);
		}
		return;
	}
	/* a group's rows are read together: prefetch at least the next group */
	kpf = kpf < 4 ? 4 : kpf;
	vpf = vpf < 4 ? 4 : vpf;
	for (size_t j = 0; j < n; j += 4) {
		uintptr_t kpa = (uintptr_t)K + (j + kpf) * ks * ksz;
		uintptr_t vpa = (uintptr_t)V + (j + vpf) * vs * vsz;
		if (j < ncur) {
			size_t nv = ncur - j < 4 ? ncur - j : 4;
			const char *kr[4];
			for (size_t t = 0; t < 4; t++)
				kr[t] = K + (j + (t < nv ? t : nv - 1)) * ks * ksz;
			dr_scores4(kr, nv, q, qs, nq, H, G, D, scale, sc_cur, kb, j, kpa, ks * ksz, KT);
		}
		if (j + 4 <= nprev)
			dr_pv4(V + j * vs * vsz, vs, sc_prev, nq, H, G, D, kb, j, o, vpa, VT);
		else
			for (size_t t = j; t < nprev; t++)
				dr_pv_row(V + t * vs * vsz, sc_prev, nq, H, G, D, kb, t, o, VT);
	}
}

#endif /* __x86_64__ */
#endif

/*
 * Decode over half K/V read in place (softmax_half.h): the software-pipelined step of
 * rva__sm_decode_step (scores of the current block, P.V of the previous one, row by row)
 * with bf16/fp16 rows widened in registers on load, so the step streams the half bytes
 * and nothing else. AVX-512 only (bf16 widening is a shift; fp16 uses vcvtph2ps); other
 * CPUs convert blocks into scratch first (the same numbers: widening is exact and the
 * products and sums are the fp32 ones, in the same order).
 */
#include "attention/softmax_half.h"
#include "attention/softmax_kernels.h"
#include "core/internal.h"
#include "kernels/vexp.h"

#if defined(__x86_64__)
static inline RVA__TARGET_AVX512 __mmask16 tail16(size_t n) {
	return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}

/* 16 elements of a row of type T widened to fp32 (masked: zeros beyond mk). */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) __m512
load16(const void *p, size_t i, __mmask16 mk, bool full, const rva_dtype T) {
	if (T == RVA_F32)
		return full ? _mm512_loadu_ps((const float *)p + i)
		            : _mm512_maskz_loadu_ps(mk, (const float *)p + i);
	const uint16_t *h = (const uint16_t *)p + i;
	__m256i x = full ? _mm256_loadu_si256((const __m256i *)h) : _mm256_maskz_loadu_epi16(mk, h);
	if (T == RVA_BF16)
		return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(x), 16));
	return _mm512_cvtph_ps(x);
}

static inline RVA__TARGET_AVX512 __attribute__((always_inline)) __m512
dot16(const float *q, const void *k, size_t D, const rva_dtype T) {
	__m512 acc = _mm512_setzero_ps();
	size_t d = 0;
	for (; d + 16 <= D; d += 16)
		acc = _mm512_fmadd_ps(load16(k, d, 0xFFFF, true, T), _mm512_loadu_ps(q + d), acc);
	if (d < D) {
		__mmask16 mk = tail16(D - d);
		acc = _mm512_fmadd_ps(load16(k, d, mk, false, T), _mm512_maskz_loadu_ps(mk, q + d), acc);
	}
	return acc;
}

/* As score_row_t / pv_row_t of softmax_kernels.c, with K and V of types KT and VT. */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) void
step_t(const void *kc, size_t ks, size_t ncur, const void *vp, size_t vs, size_t nprev,
       const float *q, size_t qs, size_t nq, size_t H, size_t G, size_t D, float scale,
       float *sc_cur, const float *sc_prev, size_t kb, float *o, const rva_dtype KT,
       const rva_dtype VT, const size_t DD) {
	if (DD)
		D = DD;
	size_t n = ncur > nprev ? ncur : nprev, ksz = rva__dtype_size(KT), vsz = rva__dtype_size(VT);
	for (size_t j = 0; j < n; j++) {
		if (j < ncur) {
			const char *kj = (const char *)kc + j * ks * ksz;
			for (size_t i = 0; i < nq; i++) {
				const float *qi = q + i * qs;
				size_t g = 0, in_g = 0;
				for (size_t h = 0; h < H; h++) {
					sc_cur[(h * nq + i) * kb + j] =
						scale * _mm512_reduce_add_ps(dot16(qi + h * D, kj + g * D * ksz, D, KT));
					if (++in_g == G) {
						in_g = 0;
						g++;
					}
				}
			}
		}
		if (j < nprev) {
			const char *vj = (const char *)vp + j * vs * vsz;
			size_t h = 0;
			for (size_t g = 0; g < H / G; g++) {
				const char *vh = vj + g * D * vsz;
				for (size_t u = 0; u < G; u++, h++)
					for (size_t i = 0; i < nq; i++) {
						__m512 pj = _mm512_set1_ps(sc_prev[(h * nq + i) * kb + j]);
						float *oi = o + (h * nq + i) * D;
						size_t d = 0;
						for (; d + 16 <= D; d += 16)
							_mm512_storeu_ps(oi + d,
							                 _mm512_fmadd_ps(pj, load16(vh, d, 0xFFFF, true, VT),
							                                 _mm512_loadu_ps(oi + d)));
						if (d < D) {
							__mmask16 mk = tail16(D - d);
							_mm512_mask_storeu_ps(
								oi + d, mk,
								_mm512_fmadd_ps(pj, load16(vh, d, mk, false, VT),
								                _mm512_maskz_loadu_ps(mk, oi + d)));
						}
					}
			}
		}
	}
}

#define STEP_ARGS kc, ks, ncur, vp, vs, nprev, q, qs, nq, H, G, D, scale, sc_cur, sc_prev, kb, o
#define STEP_D(KT, VT)                                                                     \
	switch (D) {                                                                           \
	case 64: step_t(STEP_ARGS, KT, VT, 64); return;                                        \
	case 128: step_t(STEP_ARGS, KT, VT, 128); return;                                      \
	default: step_t(STEP_ARGS, KT, VT, 0); return;                                         \
	}

static RVA__TARGET_AVX512 void step_avx512(rva_dtype kt, const void *kc, size_t ks,
                                           size_t ncur, rva_dtype vt, const void *vp,
                                           size_t vs, size_t nprev, const float *q,
                                           size_t qs, size_t nq, size_t H, size_t G,
                                           size_t D, float scale, float *sc_cur,
                                           const float *sc_prev, size_t kb, float *o) {
	/* the common pairs get their own code; others take the per-element type switch */
	if (kt == RVA_BF16 && vt == RVA_BF16) {
		STEP_D(RVA_BF16, RVA_BF16)
	} else if (kt == RVA_F16 && vt == RVA_F16) {
		STEP_D(RVA_F16, RVA_F16)
	}
	const rva_dtype K = kt, V = vt;
	if (K == RVA_F32 && V == RVA_BF16)
		step_t(STEP_ARGS, RVA_F32, RVA_BF16, 0);
	else if (K == RVA_F32 && V == RVA_F16)
		step_t(STEP_ARGS, RVA_F32, RVA_F16, 0);
	else if (K == RVA_BF16 && V == RVA_F32)
		step_t(STEP_ARGS, RVA_BF16, RVA_F32, 0);
	else if (K == RVA_F16 && V == RVA_F32)
		step_t(STEP_ARGS, RVA_F16, RVA_F32, 0);
	else if (K == RVA_BF16 && V == RVA_F16)
		step_t(STEP_ARGS, RVA_BF16, RVA_F16, 0);
	else
		step_t(STEP_ARGS, RVA_F16, RVA_BF16, 0);
}
#undef STEP_D
#undef STEP_ARGS
#endif

void rva__smh_decode_step(const rva_seq *seq, size_t kr, size_t ncur, size_t vr, size_t nprev,
                          size_t kvd, const float *q, size_t qs, size_t nq, size_t H,
                          size_t G, size_t D, float scale, float *sc_cur,
                          const float *sc_prev, size_t kb, float *o, float *kbuf,
                          float *vbuf) {
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512 &&
	    (seq->k_dtype != RVA_F32 || seq->v_dtype != RVA_F32)) {
		step_avx512(seq->k_dtype, rva__elem_at(seq->k, seq->k_dtype, kr * seq->k_stride),
		            seq->k_stride, ncur, seq->v_dtype,
		            rva__elem_at(seq->v, seq->v_dtype, vr * seq->v_stride), seq->v_stride,
		            nprev, q, qs, nq, H, G, D, scale, sc_cur, sc_prev, kb, o);
		return;
	}
#endif
	size_t ks, vs;
	const float *kc = rva__smh_operand(seq->k_dtype, seq->k, seq->k_stride, kr * seq->k_stride,
	                                   ncur, kvd, false, kbuf, &ks);
	const float *vp = rva__smh_operand(seq->v_dtype, seq->v, seq->v_stride, vr * seq->v_stride,
	                                   nprev, kvd, false, vbuf, &vs);
	rva__sm_decode_step(kc, ks, ncur, vp, vs, nprev, q, qs, nq, H, G, D, scale, sc_cur, sc_prev,
	                    kb, o);
}

/* ---- prefill tiles with vdpbf16ps (bf16 K and V, fused backend) ------------------------ */

bool rva__smh_bf16_tiles(const rva_seq *seq) {
	return seq->k_dtype == RVA_BF16 && seq->v_dtype == RVA_BF16 && rva__half_avx512bf16();
}

void rva__smh_pack_q_bf16(const float *q, size_t qs, size_t br, size_t brp, size_t D,
                          uint32_t *qp) {
	size_t D2 = (D + 1) / 2;
	for (size_t d2 = 0; d2 < D2; d2++) {
		uint32_t *row = qp + d2 * brp;
		for (size_t i = 0; i < br; i++) {
			uint32_t lo = rva__f32_to_bf16(q[i * qs + 2 * d2]);
			uint32_t hi = 2 * d2 + 1 < D ? rva__f32_to_bf16(q[i * qs + 2 * d2 + 1]) : 0;
			row[i] = lo | hi << 16;
		}
		for (size_t i = br; i < brp; i++)
			row[i] = 0;
	}
}

#if defined(__x86_64__)
#define RVA__TARGET_BF16 \
	__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx512bf16,fma")))

static inline RVA__TARGET_BF16 __attribute__((always_inline)) __m512
dp(__m512 acc, __m512i a, __m512i b) {
	return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

/* 12 key rows x (16 * NV) query lanes; rows beyond nrows repeat the last and are not stored. */
static inline RVA__TARGET_BF16 __attribute__((always_inline)) void
scores_block_bf16(const uint16_t *k, size_t ks, size_t nrows, const uint32_t *qp, size_t brp,
                  size_t D, float scale, float *st, const int NV) {
	enum { JR = 12 };
	const uint16_t *kr[JR];
	for (int r = 0; r < JR; r++)
		kr[r] = k + (size_t)((size_t)r < nrows ? (size_t)r : nrows - 1) * ks;
	__m512 acc[JR][2];
	for (int r = 0; r < JR; r++)
		for (int v = 0; v < NV; v++)
			acc[r][v] = _mm512_setzero_ps();
	size_t D2 = D / 2;
	for (size_t d2 = 0; d2 < D2; d2++) {
		__m512i a0 = _mm512_load_si512(qp + d2 * brp);
		__m512i a1 = NV > 1 ? _mm512_load_si512(qp + d2 * brp + 16) : a0;
#pragma GCC unroll 12
		for (int r = 0; r < JR; r++) {
			uint32_t w;
			memcpy(&w, kr[r] + 2 * d2, 4);
			__m512i b = _mm512_set1_epi32((int)w);
			acc[r][0] = dp(acc[r][0], a0, b);
			if (NV > 1)
				acc[r][1] = dp(acc[r][1], a1, b);
		}
	}
	if (D & 1) { /* the last element pairs with 0 */
		__m512i a0 = _mm512_load_si512(qp + D2 * brp);
		__m512i a1 = NV > 1 ? _mm512_load_si512(qp + D2 * brp + 16) : a0;
		for (int r = 0; r < JR; r++) {
			__m512i b = _mm512_set1_epi32((int)kr[r][D - 1]);
			acc[r][0] = dp(acc[r][0], a0, b);
			if (NV > 1)
				acc[r][1] = dp(acc[r][1], a1, b);
		}
	}
	__m512 sc = _mm512_set1_ps(scale);
	for (int r = 0; r < JR; r++) {
		if ((size_t)r >= nrows)
			break;
		for (int v = 0; v < NV; v++)
			_mm512_store_ps(st + (size_t)r * brp + 16 * v, _mm512_mul_ps(acc[r][v], sc));
	}
}

static RVA__TARGET_BF16 void scores_bf16(const uint16_t *k, size_t ks, size_t nk,
                                         const uint32_t *qp, size_t brp, size_t D,
                                         float scale, float *st) {
	for (size_t i0 = 0; i0 < brp; i0 += 32) {
		bool two = brp - i0 >= 32;
		for (size_t j0 = 0; j0 < nk; j0 += 12) {
			size_t nr = rva__min(12, nk - j0);
			if (two)
				scores_block_bf16(k + j0 * ks, ks, nr, qp + i0, brp, D, scale,
				                  st + j0 * brp + i0, 2);
			else
				scores_block_bf16(k + j0 * ks, ks, nr, qp + i0, brp, D, scale,
				                  st + j0 * brp + i0, 1);
		}
	}
}

/* 16 columns of two V rows interleaved: lane c = (a[c], b[c]) (b may be NULL: 0). */
static inline RVA__TARGET_BF16 __attribute__((always_inline)) __m512i
vpair(const uint16_t *a, const uint16_t *b, __mmask16 mk) {
	const __m512i idx = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9,
	                                     40, 8, 39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1,
	                                     32, 0);
	__m512i xa = _mm512_castsi256_si512(_mm256_maskz_loadu_epi16(mk, a));
	__m512i xb = b ? _mm512_castsi256_si512(_mm256_maskz_loadu_epi16(mk, b))
	               : _mm512_setzero_si512();
	return _mm512_permutex2var_epi16(xa, idx, xb);
}

/* O rows [0, rows) x columns [0, dcols) (NV vectors) += sum over key pairs. */
static inline RVA__TARGET_BF16 __attribute__((always_inline)) void
pv_block_bf16(const uint32_t *pp, size_t brp, size_t nk, const uint16_t *v, size_t vs,
              size_t rows, size_t dcols, float *o, size_t D, const int MR, const int NV) {
	__m512 acc[6][4];
	for (int r = 0; r < MR; r++)
		for (int c = 0; c < NV; c++)
			acc[r][c] = _mm512_setzero_ps();
	size_t n2 = (nk + 1) / 2;
	for (size_t j2 = 0; j2 < n2; j2++) {
		const uint16_t *va = v + 2 * j2 * vs, *vb = 2 * j2 + 1 < nk ? va + vs : NULL;
		__m512i vv[4];
		for (int c = 0; c < NV; c++)
			vv[c] = vpair(va + 16 * c, vb ? vb + 16 * c : NULL,
			              tail16(dcols - 16 * (size_t)c));
		const uint32_t *pj = pp + j2 * brp;
		for (int r = 0; r < MR; r++) {
			__m512i b = _mm512_set1_epi32((int)pj[r]);
			for (int c = 0; c < NV; c++)
				acc[r][c] = dp(acc[r][c], vv[c], b);
		}
	}
	for (int r = 0; r < MR; r++) {
		if ((size_t)r >= rows)
			break;
		float *orow = o + (size_t)r * D;
		for (int c = 0; c < NV; c++) {
			__mmask16 mk = tail16(dcols - 16 * (size_t)c);
			if (mk == 0xFFFF)
				_mm512_storeu_ps(orow + 16 * c,
				                 _mm512_add_ps(_mm512_loadu_ps(orow + 16 * c), acc[r][c]));
			else
				_mm512_mask_storeu_ps(orow + 16 * c, mk,
				                      _mm512_add_ps(_mm512_maskz_loadu_ps(mk, orow + 16 * c),
				                                    acc[r][c]));
		}
	}
}

static RVA__TARGET_BF16 void pv_bf16(const float *st, size_t brp, size_t nk, const uint16_t *v,
                                     size_t vs, size_t br, size_t D, float *o, uint32_t *pp) {
	/* P pairs (P holds bf16 values: rva__smh_round_p ran), key pair j2 x query lane */
	size_t n2 = (nk + 1) / 2;
	for (size_t j2 = 0; j2 < n2; j2++) {
		const float *a = st + 2 * j2 * brp, *b = 2 * j2 + 1 < nk ? a + brp : NULL;
		for (size_t i = 0; i < brp; i += 16) {
			__m512i lo = _mm512_srli_epi32(_mm512_castps_si512(_mm512_load_ps(a + i)), 16);
			__m512i hi = b ? _mm512_and_si512(_mm512_castps_si512(_mm512_load_ps(b + i)),
			                                  _mm512_set1_epi32((int)0xFFFF0000u))
			               : _mm512_setzero_si512();
			_mm512_store_si512(pp + j2 * brp + i, _mm512_or_si512(lo, hi));
		}
	}
	for (size_t d0 = 0; d0 < D; d0 += 64) {
		size_t dc = rva__min(64, D - d0);
		size_t nv = rva__div_up(dc, 16);
		for (size_t i0 = 0; i0 < br; i0 += 6) {
			size_t rows = rva__min(6, br - i0);
			switch (nv) {
			case 1: pv_block_bf16(pp + i0, brp, nk, v + d0, vs, rows, dc, o + i0 * D + d0, D, 6, 1); break;
			case 2: pv_block_bf16(pp + i0, brp, nk, v + d0, vs, rows, dc, o + i0 * D + d0, D, 6, 2); break;
			case 3: pv_block_bf16(pp + i0, brp, nk, v + d0, vs, rows, dc, o + i0 * D + d0, D, 6, 3); break;
			default: pv_block_bf16(pp + i0, brp, nk, v + d0, vs, rows, dc, o + i0 * D + d0, D, 6, 4); break;
			}
		}
	}
}
#endif

void rva__smh_scores_bf16(const void *k, size_t ks, size_t nk, const uint32_t *qp, size_t brp,
                          size_t D, float scale, float *st) {
#if defined(__x86_64__)
	scores_bf16(k, ks, nk, qp, brp, D, scale, st);
#else
	(void)k; (void)ks; (void)nk; (void)qp; (void)brp; (void)D; (void)scale; (void)st;
#endif
}

void rva__smh_pv_bf16(const float *st, size_t brp, size_t nk, const void *v, size_t vs,
                      size_t br, size_t D, float *o, uint32_t *pp) {
#if defined(__x86_64__)
	pv_bf16(st, brp, nk, v, vs, br, D, o, pp);
#else
	(void)st; (void)brp; (void)nk; (void)v; (void)vs; (void)br; (void)D; (void)o; (void)pp;
#endif
}

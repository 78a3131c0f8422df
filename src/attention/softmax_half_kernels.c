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

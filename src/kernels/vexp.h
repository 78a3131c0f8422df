/*
 * Vectorised exp: AVX-512 and AVX2 versions picked at run time, scalar fallback.
 *
 * Accuracy (both SIMD versions): range reduction x = n ln2 + r (|r| <= ln2/2, ln2 split
 * hi/lo) and a degree-6 polynomial; max relative error ~2 ulp over [-87.3, 88.7] (normal
 * results). Below that, down to x = -104, the results are subnormal, within one subnormal
 * step (2^-149) of exp(x), as libm's expf; exp(x) = 0 for x < -104 (flush; exp(-104) is
 * below half the smallest subnormal anyway) and exp(-inf) = 0. exp(x) = +inf above
 * 88.72 (overflow) and for +inf; NaN propagates. tests/test_vexp.c holds both versions
 * to this at the boundaries, against libm.
 *
 * The inline SIMD primitives below are for kernels compiled with the matching target
 * attribute (RVA__TARGET_AVX512 / RVA__TARGET_AVX2); everything else calls rva__vexp.
 */
#ifndef RVATTN_SRC_KERNELS_VEXP_H
#define RVATTN_SRC_KERNELS_VEXP_H

#include <stdbool.h>
#include <stddef.h>

#include "kernels/env.h"

struct rva_cpu_features;

/* y[i] = exp(x[i]), i < n (x == y allowed). */
void rva__vexp(const float *x, float *y, size_t n);

/* The scalar reference twin (expf). */
void rva__vexp_ref(const float *x, float *y, size_t n);

/* SIMD levels available on this CPU (and not disabled by RVATTN_SIMD=scalar|avx2). */
typedef enum rva__simd { RVA__SIMD_SCALAR = 0, RVA__SIMD_AVX2, RVA__SIMD_AVX512 } rva__simd;
rva__simd rva__simd_level(void);

/* The highest level a CPU with features f can run: AVX512 needs everything the kernels of
 * RVA__TARGET_AVX512 may use (AVX-512 F, DQ, BW, VL, and FMA), AVX2 needs AVX2 and FMA. */
rva__simd rva__simd_cpu_level(const struct rva_cpu_features *f);

/* The level the kernels use: the CPU's, lowered (never raised) by the RVATTN_SIMD value e. */
rva__simd rva__simd_choose(const struct rva_cpu_features *f, rva__env_simd e);

#if defined(__x86_64__)
#include <immintrin.h>

#define RVA__TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))
#define RVA__TARGET_AVX2 __attribute__((target("avx2,fma")))

/* exp of 16 floats (the AVX512 level: RVA__TARGET_AVX512 lets the compiler use DQ too). */
static inline RVA__TARGET_AVX512 __m512 rva__exp512(__m512 x) {
	const __m512 lo = _mm512_set1_ps(-104.0f), hi = _mm512_set1_ps(88.8f);
	/* Operand order keeps NaN: max/min return the second operand when one is NaN. */
	__m512 xc = _mm512_min_ps(hi, _mm512_max_ps(lo, x));
	__m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
	                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), xc);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
	__m512 p = _mm512_set1_ps(1.3981999507e-3f);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
	__m512 r2 = _mm512_mul_ps(r, r);
	p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
	/* scalef computes p * 2^n with correct underflow to 0 / overflow to inf. */
	return _mm512_scalef_ps(p, n);
}

/* exp of 8 floats (AVX2+FMA). */
static inline RVA__TARGET_AVX2 __m256 rva__exp256(__m256 x) {
	const __m256 lo = _mm256_set1_ps(-104.0f), hi = _mm256_set1_ps(88.8f);
	__m256 xc = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
	__m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
	                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), xc);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
	__m256 p = _mm256_set1_ps(1.3981999507e-3f);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
	__m256 r2 = _mm256_mul_ps(r, r);
	p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
	/* p * 2^n as p * 2^n1 * 2^n2 (n1 = floor(n/2), n2 = n - n1, both in [-75, 64] for n in
	 * [-150, 128] after the clamp): each factor is a normal float built from exponent
	 * bits, p * 2^n1 is exact, and the last product rounds once, into the subnormals or to
	 * +inf as exp(x) itself does (the AVX-512 version gets the same from scalef). */
	__m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1);
	__m256i n2 = _mm256_sub_epi32(ni, n1), bias = _mm256_set1_epi32(127);
	__m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
	__m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
	__m256 res = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
	/* Below the clamp: exact 0 (and exp(-inf) = 0). */
	res = _mm256_and_ps(res, _mm256_cmp_ps(x, lo, _CMP_GE_OQ));
	/* Keep NaN and +inf. */
	__m256 keep = _mm256_or_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q),
	                           _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
	__m256 big = _mm256_blendv_ps(_mm256_set1_ps(__builtin_inff()), x,
	                              _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
	return _mm256_blendv_ps(res, big, keep);
}
#endif

#endif

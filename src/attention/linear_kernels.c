/*
 * Element-wise kernels of linear attention (see linear_kernels.h). The AVX-512 versions
 * use masked tails; the AVX2 versions finish with the portable code.
 */
#include <math.h>

#include "attention/linear_kernels.h"
#include "kernels/vexp.h"

/* ---- portable twins ---------------------------------------------------------------- */

static float rowmax_ref(const float *x, size_t n) {
	float m = -INFINITY;
	for (size_t i = 0; i < n; i++)
		m = x[i] > m ? x[i] : m;
	return m;
}

static float sumsq_ref(const float *x, size_t n) {
	float s = 0.0f;
	for (size_t i = 0; i < n; i++)
		s += x[i] * x[i];
	return s;
}

static void exp_shift_ref(float *x, size_t n, float sub) {
	for (size_t i = 0; i < n; i++)
		x[i] = expf(x[i] - sub);
}

static void relu_ref(float *x, size_t n, float a, float eps) {
	for (size_t i = 0; i < n; i++)
		x[i] = (x[i] > 0.0f ? x[i] : 0.0f) * a + eps;
}

static void elu1_ref(const float *x, float *y, size_t n, float c) {
	for (size_t i = 0; i < n; i++) {
		float t = c * x[i];
		y[i] = t > 0.0f ? t + 1.0f : expf(t);
	}
}

static const rva__lin_kern kern_ref = {
	.rowmax = rowmax_ref, .sumsq = sumsq_ref, .exp_shift = exp_shift_ref,
	.relu = relu_ref, .elu1 = elu1_ref,
};

#if defined(__x86_64__)
/* ---- AVX-512 ----------------------------------------------------------------------- */

static inline RVA__TARGET_AVX512 __mmask16 tail_mask(size_t k) {
	return (__mmask16)((1u << k) - 1u);
}

static RVA__TARGET_AVX512 float rowmax_avx512(const float *x, size_t n) {
	__m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + i));
		m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + i + 16));
	}
	for (; i + 16 <= n; i += 16)
		m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + i));
	if (i < n)
		m1 = _mm512_mask_max_ps(m1, tail_mask(n - i), m1, _mm512_maskz_loadu_ps(
		                                                  tail_mask(n - i), x + i));
	return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

static RVA__TARGET_AVX512 float sumsq_avx512(const float *x, size_t n) {
	__m512 s0 = _mm512_setzero_ps(), s1 = s0;
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		__m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
		s0 = _mm512_fmadd_ps(a, a, s0);
		s1 = _mm512_fmadd_ps(b, b, s1);
	}
	for (; i + 16 <= n; i += 16) {
		__m512 a = _mm512_loadu_ps(x + i);
		s0 = _mm512_fmadd_ps(a, a, s0);
	}
	if (i < n) {
		__m512 a = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
		s1 = _mm512_fmadd_ps(a, a, s1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static RVA__TARGET_AVX512 void exp_shift_avx512(float *x, size_t n, float sub) {
	__m512 s = _mm512_set1_ps(sub);
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(x + i, rva__exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), s)));
	if (i < n) {
		__mmask16 k = tail_mask(n - i);
		__m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), s);
		_mm512_mask_storeu_ps(x + i, k, rva__exp512(v));
	}
}

static RVA__TARGET_AVX512 void relu_avx512(float *x, size_t n, float a, float eps) {
	__m512 va = _mm512_set1_ps(a), ve = _mm512_set1_ps(eps), z = _mm512_setzero_ps();
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512 v = _mm512_max_ps(_mm512_loadu_ps(x + i), z);
		_mm512_storeu_ps(x + i, _mm512_fmadd_ps(v, va, ve));
	}
	if (i < n) {
		__mmask16 k = tail_mask(n - i);
		__m512 v = _mm512_max_ps(_mm512_maskz_loadu_ps(k, x + i), z);
		_mm512_mask_storeu_ps(x + i, k, _mm512_fmadd_ps(v, va, ve));
	}
}

static inline RVA__TARGET_AVX512 __m512 elu1_512(__m512 x, __m512 c) {
	__m512 t = _mm512_mul_ps(x, c);
	__mmask16 pos = _mm512_cmp_ps_mask(t, _mm512_setzero_ps(), _CMP_GT_OQ);
	__m512 e = rva__exp512(_mm512_min_ps(t, _mm512_setzero_ps()));
	return _mm512_mask_add_ps(e, pos, t, _mm512_set1_ps(1.0f));
}

static RVA__TARGET_AVX512 void elu1_avx512(const float *x, float *y, size_t n, float c) {
	__m512 vc = _mm512_set1_ps(c);
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(y + i, elu1_512(_mm512_loadu_ps(x + i), vc));
	if (i < n) {
		__mmask16 k = tail_mask(n - i);
		_mm512_mask_storeu_ps(y + i, k, elu1_512(_mm512_maskz_loadu_ps(k, x + i), vc));
	}
}

static const rva__lin_kern kern_avx512 = {
	.rowmax = rowmax_avx512, .sumsq = sumsq_avx512, .exp_shift = exp_shift_avx512,
	.relu = relu_avx512, .elu1 = elu1_avx512,
};

/* ---- AVX2 -------------------------------------------------------------------------- */

static RVA__TARGET_AVX2 float hmax256(__m256 v) {
	__m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	m = _mm_max_ps(m, _mm_movehl_ps(m, m));
	m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
	return _mm_cvtss_f32(m);
}

static RVA__TARGET_AVX2 float hsum256(__m256 v) {
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
	return _mm_cvtss_f32(s);
}

static RVA__TARGET_AVX2 float rowmax_avx2(const float *x, size_t n) {
	__m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
		m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + i + 8));
	}
	for (; i + 8 <= n; i += 8)
		m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
	float m = hmax256(_mm256_max_ps(m0, m1));
	for (; i < n; i++)
		m = x[i] > m ? x[i] : m;
	return m;
}

static RVA__TARGET_AVX2 float sumsq_avx2(const float *x, size_t n) {
	__m256 s0 = _mm256_setzero_ps(), s1 = s0;
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
		s0 = _mm256_fmadd_ps(a, a, s0);
		s1 = _mm256_fmadd_ps(b, b, s1);
	}
	for (; i + 8 <= n; i += 8) {
		__m256 a = _mm256_loadu_ps(x + i);
		s0 = _mm256_fmadd_ps(a, a, s0);
	}
	float s = hsum256(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		s += x[i] * x[i];
	return s;
}

static RVA__TARGET_AVX2 void exp_shift_avx2(float *x, size_t n, float sub) {
	__m256 s = _mm256_set1_ps(sub);
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(x + i, rva__exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), s)));
	exp_shift_ref(x + i, n - i, sub);
}

static RVA__TARGET_AVX2 void relu_avx2(float *x, size_t n, float a, float eps) {
	__m256 va = _mm256_set1_ps(a), ve = _mm256_set1_ps(eps), z = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 v = _mm256_max_ps(_mm256_loadu_ps(x + i), z);
		_mm256_storeu_ps(x + i, _mm256_fmadd_ps(v, va, ve));
	}
	relu_ref(x + i, n - i, a, eps);
}

static RVA__TARGET_AVX2 void elu1_avx2(const float *x, float *y, size_t n, float c) {
	__m256 vc = _mm256_set1_ps(c), z = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 t = _mm256_mul_ps(_mm256_loadu_ps(x + i), vc);
		__m256 e = rva__exp256(_mm256_min_ps(t, z));
		__m256 pos = _mm256_cmp_ps(t, z, _CMP_GT_OQ);
		_mm256_storeu_ps(y + i, _mm256_blendv_ps(e, _mm256_add_ps(t, one), pos));
	}
	elu1_ref(x + i, y + i, n - i, c);
}

static const rva__lin_kern kern_avx2 = {
	.rowmax = rowmax_avx2, .sumsq = sumsq_avx2, .exp_shift = exp_shift_avx2,
	.relu = relu_avx2, .elu1 = elu1_avx2,
};
#endif

const rva__lin_kern *rva__lin_kernels_ref(void) { return &kern_ref; }

const rva__lin_kern *rva__lin_kernels(void) {
#if defined(__x86_64__)
	switch (rva__simd_level()) {
	case RVA__SIMD_AVX512: return &kern_avx512;
	case RVA__SIMD_AVX2: return &kern_avx2;
	default: break;
	}
#endif
	return &kern_ref;
}

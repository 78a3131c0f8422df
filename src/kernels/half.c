/*
 * Half-precision conversions (see half.h): portable twins and AVX-512 / AVX2+F16C
 * versions with bit-identical results, dispatched at run time.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "core/internal.h"
#include "kernels/half.h"
#include "kernels/lanes16.h"
#include "kernels/vexp.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

const char *rva__dtype_name(rva_dtype t) {
	switch (t) {
	case RVA_F32: return "f32";
	case RVA_BF16: return "bf16";
	case RVA_F16: return "f16";
	}
	return "unknown";
}

/* ---- scalar fp16 ------------------------------------------------------------------- */

float rva__f16_to_f32(uint16_t h) {
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
	if (e == 0x1f)
		u = sign | 0x7f800000u | (m << 13) | (m ? 0x00400000u : 0u);
	else if (e)
		u = sign | ((e + 112u) << 23) | (m << 13);
	else {
		/* zero or subnormal: m * 2^-24, exact in fp32 */
		float f = (float)m * 0x1p-24f;
		memcpy(&u, &f, 4);
		u |= sign;
	}
	float f;
	memcpy(&f, &u, 4);
	return f;
}

uint16_t rva__f32_to_f16(float f) {
	uint32_t x;
	memcpy(&x, &f, 4);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
	x &= 0x7fffffffu;
	if (x > 0x7f800000u) /* NaN: quiet, top payload bits kept */
		return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
	if (x >= 0x477ff000u) /* >= 65520 (ties to even go up to 2^16): infinity */
		return (uint16_t)(sign | 0x7c00u);
	if (x >= 0x38800000u) { /* normal: rebias the exponent 127 -> 15, round the mantissa */
		uint32_t r = x + 0xfffu + ((x >> 13) & 1u);
		return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
	}
	/* below 2^-14: a multiple of 2^-24, rounded to nearest even (exact scaling) */
	float a;
	memcpy(&a, &x, 4);
	return (uint16_t)(sign | (uint16_t)nearbyintf(a * 0x1p24f));
}

/* ---- portable twins ---------------------------------------------------------------- */

void rva__cvt_to_f32_ref(rva_dtype t, const void *src, float *dst, size_t n) {
	const uint16_t *h = src;
	switch (t) {
	case RVA_BF16:
		for (size_t i = 0; i < n; i++)
			dst[i] = rva__bf16_to_f32(h[i]);
		break;
	case RVA_F16:
		for (size_t i = 0; i < n; i++)
			dst[i] = rva__f16_to_f32(h[i]);
		break;
	default:
		memmove(dst, src, n * sizeof(float));
		break;
	}
}

void rva__cvt_from_f32_ref(rva_dtype t, const float *src, void *dst, size_t n) {
	uint16_t *h = dst;
	switch (t) {
	case RVA_BF16:
		for (size_t i = 0; i < n; i++)
			h[i] = rva__f32_to_bf16(src[i]);
		break;
	case RVA_F16:
		for (size_t i = 0; i < n; i++)
			h[i] = rva__f32_to_f16(src[i]);
		break;
	default:
		memmove(dst, src, n * sizeof(float));
		break;
	}
}

void rva__cvt_round_bf16_ref(float *x, size_t n) {
	for (size_t i = 0; i < n; i++)
		x[i] = rva__round_bf16(x[i]);
}

/* ---- dispatch ---------------------------------------------------------------------- */

static bool f16c_ok, bf16_ok;
static pthread_once_t feat_once = PTHREAD_ONCE_INIT;

static void detect(void) {
#if defined(__x86_64__)
	unsigned a, b, c, d, max_leaf = 0;
	rva__simd lvl = rva__simd_level(); /* already honours RVATTN_SIMD and OS support */
	if (!__get_cpuid(0, &max_leaf, &b, &c, &d))
		return;
	__get_cpuid(1, &a, &b, &c, &d);
	f16c_ok = lvl >= RVA__SIMD_AVX2 && ((c >> 29) & 1);
	if (max_leaf >= 7 && lvl == RVA__SIMD_AVX512) {
		__cpuid_count(7, 1, a, b, c, d);
		bf16_ok = (a >> 5) & 1;
	}
#endif
}

bool rva__half_f16c(void) {
	pthread_once(&feat_once, detect);
	return f16c_ok;
}

bool rva__half_avx512bf16(void) {
	pthread_once(&feat_once, detect);
	return bf16_ok;
}

#if defined(__x86_64__)
/* bf16 <-> fp32 in integer arithmetic (the twin's formulas, 16 lanes). */
static inline RVA__TARGET_AVX512 __m512 bf16x16_to_f32(__m256i h) {
	__m512i u = _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
	__mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
	                                        _mm512_set1_epi32(0x7f800000));
	u = _mm512_mask_or_epi32(u, nan, u, _mm512_set1_epi32(0x00400000));
	return _mm512_castsi512_ps(u);
}

static inline RVA__TARGET_AVX512 __m256i f32x16_to_bf16(__m512 f) {
	__m512i u = _mm512_castps_si512(f);
	__mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
	                                        _mm512_set1_epi32(0x7f800000));
	__m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
	__m512i r = _mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
	r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
	return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

/* Full vectors use plain loads and stores: masked stores are slow on some CPUs (Zen 4/5
 * microcode them); only the tail is masked. */
static RVA__TARGET_AVX512 void to_f32_avx512(rva_dtype t, const void *src, float *dst,
                                             size_t n) {
	const uint16_t *h = src;
	size_t i = 0;
	if (t == RVA_BF16)
		for (; i + 16 <= n; i += 16)
			_mm512_storeu_ps(dst + i,
			                 bf16x16_to_f32(_mm256_loadu_si256((const __m256i *)(h + i))));
	else
		for (; i + 16 <= n; i += 16)
			_mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))));
	if (i < n) {
		__mmask16 mk = rva__lanes16(n - i);
		__m256i x = _mm256_maskz_loadu_epi16(mk, h + i);
		_mm512_mask_storeu_ps(dst + i, mk, t == RVA_BF16 ? bf16x16_to_f32(x) : _mm512_cvtph_ps(x));
	}
}

static inline RVA__TARGET_AVX512 __m256i from_f32x16(rva_dtype t, __m512 f) {
	return t == RVA_BF16 ? f32x16_to_bf16(f)
	                     : _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

static RVA__TARGET_AVX512 void from_f32_avx512(rva_dtype t, const float *src, void *dst,
                                               size_t n) {
	uint16_t *h = dst;
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm256_storeu_si256((__m256i *)(h + i), from_f32x16(t, _mm512_loadu_ps(src + i)));
	if (i < n) {
		__mmask16 mk = rva__lanes16(n - i);
		_mm256_mask_storeu_epi16(h + i, mk, from_f32x16(t, _mm512_maskz_loadu_ps(mk, src + i)));
	}
}

static RVA__TARGET_AVX512 void round_bf16_avx512(float *x, size_t n) {
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(x + i, bf16x16_to_f32(f32x16_to_bf16(_mm512_loadu_ps(x + i))));
	if (i < n) {
		__mmask16 mk = rva__lanes16(n - i);
		__m512 f = _mm512_maskz_loadu_ps(mk, x + i);
		_mm512_mask_storeu_ps(x + i, mk, bf16x16_to_f32(f32x16_to_bf16(f)));
	}
}

/* AVX2 + F16C: fp16 only (bf16 goes through the twin at this level). */
static __attribute__((target("avx2,f16c"))) void to_f32_f16c(const uint16_t *h, float *dst,
                                                             size_t n) {
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
	for (; i < n; i++)
		dst[i] = rva__f16_to_f32(h[i]);
}

static __attribute__((target("avx2,f16c"))) void from_f32_f16c(const float *src, uint16_t *h,
                                                               size_t n) {
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(h + i),
		                 _mm256_cvtps_ph(_mm256_loadu_ps(src + i),
		                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	for (; i < n; i++)
		h[i] = rva__f32_to_f16(src[i]);
}
#endif

void rva__cvt_to_f32(rva_dtype t, const void *src, float *dst, size_t n) {
	if (t == RVA_F32) {
		memmove(dst, src, n * sizeof(float));
		return;
	}
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512) {
		to_f32_avx512(t, src, dst, n);
		return;
	}
	if (t == RVA_F16 && rva__half_f16c()) {
		to_f32_f16c(src, dst, n);
		return;
	}
#endif
	rva__cvt_to_f32_ref(t, src, dst, n);
}

void rva__cvt_from_f32(rva_dtype t, const float *src, void *dst, size_t n) {
	if (t == RVA_F32) {
		memmove(dst, src, n * sizeof(float));
		return;
	}
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512) {
		from_f32_avx512(t, src, dst, n);
		return;
	}
	if (t == RVA_F16 && rva__half_f16c()) {
		from_f32_f16c(src, dst, n);
		return;
	}
#endif
	rva__cvt_from_f32_ref(t, src, dst, n);
}

void rva__cvt_round_bf16(float *x, size_t n) {
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512) {
		round_bf16_avx512(x, n);
		return;
	}
#endif
	rva__cvt_round_bf16_ref(x, n);
}

void rva__cvt_rows_to_f32(rva_dtype t, const void *src, size_t src_stride, size_t rows,
                          size_t cols, float *dst, size_t dst_stride) {
	for (size_t r = 0; r < rows; r++)
		rva__cvt_to_f32(t, rva__elem_at(src, t, r * src_stride), dst + r * dst_stride, cols);
}

void rva__cvt_rows_from_f32(rva_dtype t, const float *src, size_t src_stride, size_t rows,
                            size_t cols, void *dst, size_t dst_stride) {
	for (size_t r = 0; r < rows; r++)
		rva__cvt_from_f32(t, src + r * src_stride, rva__elem_at_mut(dst, t, r * dst_stride),
		                  cols);
}

/* ---- the public converter (rvattn/batch.h) -------------------------------------------- */

rva_status rva_convert(rva_dtype to, void *dst, rva_dtype from, const void *src, size_t n) {
	if (n > 0 && (!dst || !src))
		return rva__fail(RVA_ENULL, "rva_convert: %s is NULL", dst ? "src" : "dst");
	if ((unsigned)to > RVA_F16 || (unsigned)from > RVA_F16)
		return rva__fail(RVA_EINVAL, "rva_convert: element type %d is not an rva_dtype "
		                 "(RVA_F32, RVA_BF16, RVA_F16)", (unsigned)to > RVA_F16 ? (int)to
		                                                                    : (int)from);
	if (n == 0)
		return RVA_OK;
	if (to == from) {
		if (dst != src)
			memcpy(dst, src, n * rva__dtype_size(to));
	} else if (from == RVA_F32) {
		rva__cvt_from_f32(to, src, dst, n);
	} else if (to == RVA_F32) {
		rva__cvt_to_f32(from, src, dst, n);
	} else { /* bf16 <-> fp16 through a small fp32 block */
		float buf[256];
		const uint16_t *s = src;
		uint16_t *d = dst;
		for (size_t i = 0; i < n; i += 256) {
			size_t m = n - i < 256 ? n - i : 256;
			rva__cvt_to_f32(from, s + i, buf, m);
			rva__cvt_from_f32(to, buf, d + i, m);
		}
	}
	return RVA_OK;
}

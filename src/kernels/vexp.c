/* Array exp with run-time SIMD dispatch, and the SIMD level switch (RVATTN_SIMD). */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/internal.h"
#include "kernels/env.h"
#include "kernels/vexp.h"
#include "rvattn/kernels.h"

static rva__simd level = RVA__SIMD_SCALAR;
static pthread_once_t level_once = PTHREAD_ONCE_INIT;

rva__simd rva__simd_cpu_level(const rva_cpu_features *f) {
	if (!(f->avx2 && f->fma))
		return RVA__SIMD_SCALAR;
	/* The AVX512 kernels are compiled for F, DQ, BW and VL (RVA__TARGET_AVX512), and the
	 * compiler may use any of them (DQ: e.g. vandps/vxorps on zmm registers). */
	if (f->avx512f && f->avx512dq && f->avx512bw && f->avx512vl)
		return RVA__SIMD_AVX512;
	return RVA__SIMD_AVX2;
}

rva__simd rva__simd_choose(const rva_cpu_features *f, rva__env_simd e) {
	rva__simd l = rva__simd_cpu_level(f);
	/* A/B switch: force a lower level (never a higher one than the CPU has; an unknown
	 * value is ignored, and rva_env_check() says both). */
	if (e == RVA__ENV_SIMD_SCALAR)
		l = RVA__SIMD_SCALAR;
	else if (e == RVA__ENV_SIMD_AVX2 && l > RVA__SIMD_AVX2)
		l = RVA__SIMD_AVX2;
	return l;
}

static void detect_level(void) {
	rva_cpu_features f;
	rva_cpu_detect(&f);
	level = rva__simd_choose(&f, rva__env_simd_get(NULL));
}

rva__simd rva__simd_level(void) {
	pthread_once(&level_once, detect_level);
	return level;
}

void rva__vexp_ref(const float *x, float *y, size_t n) {
	for (size_t i = 0; i < n; i++)
		y[i] = expf(x[i]);
}

#if defined(__x86_64__)
static RVA__TARGET_AVX512 void vexp_avx512(const float *x, float *y, size_t n) {
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(y + i, rva__exp512(_mm512_loadu_ps(x + i)));
	if (i < n) {
		__mmask16 m = (__mmask16)((1u << (n - i)) - 1);
		_mm512_mask_storeu_ps(y + i, m, rva__exp512(_mm512_maskz_loadu_ps(m, x + i)));
	}
}

static RVA__TARGET_AVX2 void vexp_avx2(const float *x, float *y, size_t n) {
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, rva__exp256(_mm256_loadu_ps(x + i)));
	for (; i < n; i++)
		y[i] = expf(x[i]);
}
#endif

void rva__vexp(const float *x, float *y, size_t n) {
#if defined(__x86_64__)
	switch (rva__simd_level()) {
	case RVA__SIMD_AVX512: vexp_avx512(x, y, n); return;
	case RVA__SIMD_AVX2: vexp_avx2(x, y, n); return;
	default: break;
	}
#endif
	rva__vexp_ref(x, y, n);
}

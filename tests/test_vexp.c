/*
 * The vectorised exp (src/kernels/vexp.h): the SIMD dispatch decision on made-up feature
 * sets, and both SIMD versions against libm where their contract is easiest to break:
 * the underflow boundary (normal results down to -87.3, subnormal ones down to -104, zero
 * below) and the overflow boundary (+inf above 88.72). The softcap's tanh
 * (src/kernels/vtanh.h) against tanh in double: its stated error bound, the clamp, +-inf
 * and NaN.
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "kernels/vexp.h"
#include "kernels/vtanh.h"
#include "rvattn/kernels.h"

static rva_cpu_features all_features(void) {
	rva_cpu_features f;
	memset(&f, 0, sizeof f);
	strcpy(f.vendor, "AuthenticAMD");
	f.avx2 = f.fma = f.avx512f = f.avx512dq = f.avx512bw = f.avx512vl = true;
	f.os_avx = f.os_avx512 = true;
	return f;
}

Test(simd_dispatch, avx512_needs_f_dq_bw_vl) {
	rva_cpu_features f = all_features();
	cr_assert_eq(rva__simd_cpu_level(&f), RVA__SIMD_AVX512);
	f.avx512dq = false; /* AVX-512F, BW, VL without DQ: the AVX2 kernels */
	cr_assert_eq(rva__simd_cpu_level(&f), RVA__SIMD_AVX2);
	f = all_features();
	f.avx512bw = false;
	cr_assert_eq(rva__simd_cpu_level(&f), RVA__SIMD_AVX2);
	f = all_features();
	f.avx512vl = false;
	cr_assert_eq(rva__simd_cpu_level(&f), RVA__SIMD_AVX2);
	f = all_features();
	f.avx512f = false;
	cr_assert_eq(rva__simd_cpu_level(&f), RVA__SIMD_AVX2);
	f = all_features();
	f.fma = false; /* the kernels of both levels use FMA */
	cr_assert_eq(rva__simd_cpu_level(&f), RVA__SIMD_SCALAR);
	f = all_features();
	f.avx2 = false;
	cr_assert_eq(rva__simd_cpu_level(&f), RVA__SIMD_SCALAR);
}

Test(simd_dispatch, rvattn_simd_lowers_never_raises) {
	rva_cpu_features f = all_features();
	cr_assert_eq(rva__simd_choose(&f, RVA__ENV_SIMD_AUTO), RVA__SIMD_AVX512);
	cr_assert_eq(rva__simd_choose(&f, RVA__ENV_SIMD_AVX512), RVA__SIMD_AVX512);
	cr_assert_eq(rva__simd_choose(&f, RVA__ENV_SIMD_AVX2), RVA__SIMD_AVX2);
	cr_assert_eq(rva__simd_choose(&f, RVA__ENV_SIMD_SCALAR), RVA__SIMD_SCALAR);
	f.avx512dq = false;
	cr_assert_eq(rva__simd_choose(&f, RVA__ENV_SIMD_AVX512), RVA__SIMD_AVX2);
	f.avx2 = false;
	cr_assert_eq(rva__simd_choose(&f, RVA__ENV_SIMD_AVX2), RVA__SIMD_SCALAR);
}

/* The level in use on this machine agrees with what rva_cpu_detect reports. */
Test(simd_dispatch, this_cpu) {
	unsetenv("RVATTN_SIMD");
	rva_cpu_features f;
	cr_assert_eq(rva_cpu_detect(&f), RVA_OK);
	cr_assert_eq(rva__simd_level(), rva__simd_cpu_level(&f));
	if (rva__simd_level() == RVA__SIMD_AVX512)
		cr_assert(f.avx512dq, "the AVX512 level on a CPU without AVX512DQ");
}

/* x from lo to hi in steps of `step`, plus the given points. */
static size_t grid(float *x, size_t cap, float lo, float hi, float step, const float *pts,
                   size_t npts) {
	size_t n = 0;
	for (float v = lo; v <= hi && n < cap; v += step)
		x[n++] = v;
	for (size_t i = 0; i < npts && n < cap; i++)
		x[n++] = pts[i];
	return n;
}

/* The contract of vexp.h for one result: relative 4e-7 where exp(x) is a normal float,
 * that plus one subnormal step (2^-149) below it, exactly 0 below -104, +inf above
 * FLT_MAX. */
static void check_exp(float x, float got, const char *who) {
	double want = exp((double)x);
	if (x < -104.0f) {
		cr_assert_eq(got, 0.0f, "%s: exp(%.9g) = %g, want 0 (flush below -104)", who, x, got);
	} else if (want > (double)FLT_MAX) {
		cr_assert(isinf(got) && got > 0, "%s: exp(%.9g) = %g, want +inf", who, x, got);
	} else if (want >= (double)FLT_MIN) {
		cr_assert(fabs((double)got - want) <= 4e-7 * want, "%s: exp(%.9g) = %.9g, want %.9g",
		          who, x, got, want);
	} else {
		cr_assert(fabs((double)got - want) <= 4e-7 * want + 0x1p-149, "%s: exp(%.9g) = %a, "
		          "want %a (subnormal: within 4e-7 relative + 2^-149)", who, x, got, want);
		/* as libm: a subnormal where expf gives one, not an early flush to zero */
		if (expf(x) >= 0x1p-148f)
			cr_assert_gt(got, 0.0f, "%s: exp(%.9g) flushed to 0, libm gives %g", who, x,
			             expf(x));
	}
}

static const float edges[] = {-87.3f,   -87.33f,  -87.336f, -87.34f, -87.35f, -88.0f,
                              -95.0f,   -100.0f,  -103.0f,  -103.27f, -103.97f, -103.98f,
                              -104.0f,  -104.01f, -110.0f,  88.7f,   88.72f,  88.7228f,
                              88.7229f, 88.73f,   88.8f,    88.81f,  89.0f};

#if defined(__x86_64__)
static RVA__TARGET_AVX2 void exp_avx2(const float *x, float *y, size_t n) {
	for (size_t i = 0; i < n; i += 8) {
		float in[8] = {0}, out[8];
		size_t m = n - i < 8 ? n - i : 8;
		memcpy(in, x + i, m * sizeof(float));
		_mm256_storeu_ps(out, rva__exp256(_mm256_loadu_ps(in)));
		memcpy(y + i, out, m * sizeof(float));
	}
}

static RVA__TARGET_AVX512 void exp_avx512(const float *x, float *y, size_t n) {
	for (size_t i = 0; i < n; i += 16) {
		float in[16] = {0}, out[16];
		size_t m = n - i < 16 ? n - i : 16;
		memcpy(in, x + i, m * sizeof(float));
		_mm512_storeu_ps(out, rva__exp512(_mm512_loadu_ps(in)));
		memcpy(y + i, out, m * sizeof(float));
	}
}

static void boundaries(void (*fn)(const float *, float *, size_t), const char *who) {
	enum { CAP = 8192 };
	static float x[CAP], y[CAP];
	size_t n = grid(x, CAP, -110.0f, -80.0f, 0.00625f, edges, sizeof edges / sizeof *edges);
	fn(x, y, n);
	for (size_t i = 0; i < n; i++)
		check_exp(x[i], y[i], who);
	n = grid(x, CAP, 80.0f, 90.0f, 0.003f, edges, sizeof edges / sizeof *edges);
	fn(x, y, n);
	for (size_t i = 0; i < n; i++)
		check_exp(x[i], y[i], who);
	const float special[] = {-INFINITY, INFINITY, NAN, 0.0f, -1000.0f, 1000.0f};
	fn(special, y, 6);
	cr_assert_eq(y[0], 0.0f, "%s: exp(-inf)", who);
	cr_assert(isinf(y[1]) && y[1] > 0, "%s: exp(+inf)", who);
	cr_assert(isnan(y[2]), "%s: exp(NaN)", who);
	cr_assert_eq(y[3], 1.0f, "%s: exp(0)", who);
	cr_assert_eq(y[4], 0.0f, "%s: exp(-1000)", who);
	cr_assert(isinf(y[5]) && y[5] > 0, "%s: exp(1000)", who);
}

Test(vexp_contract, avx2_underflow_and_overflow_boundaries) {
	rva_cpu_features f;
	rva_cpu_detect(&f);
	if (rva__simd_cpu_level(&f) < RVA__SIMD_AVX2)
		cr_skip_test("no AVX2+FMA on this CPU");
	boundaries(exp_avx2, "avx2");
}

Test(vexp_contract, avx512_underflow_and_overflow_boundaries) {
	rva_cpu_features f;
	rva_cpu_detect(&f);
	if (rva__simd_cpu_level(&f) < RVA__SIMD_AVX512)
		cr_skip_test("no AVX-512 F/DQ/BW/VL on this CPU");
	boundaries(exp_avx512, "avx512");
}
#endif

/* The array version at the level in use, on the same boundaries. */
Test(vexp_contract, dispatched_array_exp_boundaries) {
	enum { CAP = 8192 };
	static float x[CAP], y[CAP];
	size_t n = grid(x, CAP, -110.0f, -80.0f, 0.00625f, edges, sizeof edges / sizeof *edges);
	rva__vexp(x, y, n);
	for (size_t i = 0; i < n; i++)
		check_exp(x[i], y[i], "rva__vexp");
}

#if defined(__x86_64__)
static RVA__TARGET_AVX512 void softcap_avx512(float cap, const float *x, float *y, size_t n) {
	rva__softcap512_k k = rva__softcap512_init(cap);
	for (size_t i = 0; i < n; i += 16)
		_mm512_storeu_ps(y + i, rva__softcap512(_mm512_loadu_ps(x + i), k));
}

/* vtanh.h: |cap tanh(x / cap) - exact| <= cap 2^-21 (tanh within 2.7e-7 absolute and
 * relative, plus the roundings of x / cap and of the product by cap), and relative
 * 2^-21 for small x; past the clamp exactly +-cap; +-inf give +-cap, NaN stays NaN. */
Test(vtanh_contract, softcap_error_bound) {
	rva_cpu_features f;
	rva_cpu_detect(&f);
	if (rva__simd_cpu_level(&f) < RVA__SIMD_AVX512)
		cr_skip_test("no AVX-512 F/DQ/BW/VL on this CPU");
	enum { N = 1 << 16 };
	static float x[N], y[N];
	const float caps[] = {0.7f, 1.0f, 5.0f, 30.0f, 50.0f};
	double worst = 0.0;
	for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
		float cap = caps[c];
		/* t = x / cap over [-12, 12] on a grid, then t from 1e-30 to 1e-3 geometrically */
		for (size_t i = 0; i < N / 2; i++)
			x[i] = cap * (-12.0f + 24.0f * (float)i / (float)(N / 2));
		float t = 1e-30f;
		for (size_t i = N / 2; i < N; i++, t *= 1.0013f)
			x[i] = (i & 1 ? -cap : cap) * t;
		softcap_avx512(cap, x, y, N);
		for (size_t i = 0; i < N; i++) {
			double want = (double)cap * tanh((double)x[i] / (double)cap);
			double err = fabs((double)y[i] - want);
			double bound = ldexp(fmin((double)cap, fabs((double)x[i]) * 1.01), -21);
			cr_assert(err <= bound, "cap %g x %g: %.9g, want %.9g (error %g > %g)",
			          (double)cap, (double)x[i], (double)y[i], want, err, bound);
			if (err / cap > worst)
				worst = err / cap;
		}
		float sp[16] = {INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 8.0f * cap, -8.0f * cap, 1e30f};
		softcap_avx512(cap, sp, y, 16);
		cr_assert_eq(y[0], cap, "cap %g: +inf -> %g", (double)cap, (double)y[0]);
		cr_assert_eq(y[1], -cap, "cap %g: -inf -> %g", (double)cap, (double)y[1]);
		cr_assert(isnan(y[2]), "cap %g: NaN -> %g", (double)cap, (double)y[2]);
		cr_assert(y[3] == 0.0f && y[4] == 0.0f, "cap %g: +-0", (double)cap);
		cr_assert(y[5] == cap && y[6] == -cap && y[7] == cap, "cap %g: past the clamp: %.9g %.9g %.9g",
		          (double)cap, (double)y[5], (double)y[6], (double)y[7]);
	}
	cr_assert(worst > 0.0); /* the grid reached the approximation's error at all */
}
#endif

/* The GEMM wrapper against a naive double-precision triple loop: odd shapes, both
 * transposes, row strides wider than the rows, alpha/beta, every kernel set this CPU
 * can run. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "kernels/gemm.h"
#include "kernels/vexp.h"
#include "ref/ref_util.h"
#include "rvattn/rvattn.h"

static void naive(bool ta, bool tb, size_t m, size_t n, size_t k, float alpha, const float *a,
                  size_t lda, const float *b, size_t ldb, float beta, const float *c0,
                  size_t ldc, double *out) {
	for (size_t i = 0; i < m; i++)
		for (size_t j = 0; j < n; j++) {
			double acc = 0.0;
			for (size_t p = 0; p < k; p++)
				acc += (double)(ta ? a[p * lda + i] : a[i * lda + p]) *
				       (double)(tb ? b[j * ldb + p] : b[p * ldb + j]);
			out[i * n + j] = alpha * acc + (double)beta * c0[i * ldc + j];
		}
}

static void check_set(rva_kernel_set set) {
	const rva__gemm_ctx *ctx;
	cr_assert_eq(rva__gemm_ctx_get(set, &ctx), RVA_OK, "%s", rva_last_error());
	static const size_t dims[] = {1, 3, 17, 129};
	unsigned seed = 1;
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++)
			for (size_t im = 0; im < 4; im++)
				for (size_t in = 0; in < 4; in++)
					for (size_t ik = 0; ik < 4; ik++, seed++) {
						size_t m = dims[im], n = dims[in], k = dims[ik];
						size_t pad = seed % 3 == 0 ? 5 : 0;
						size_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
						size_t ra = ta ? k : m, rb = tb ? n : k;
						float *a = ref_alloc(ra * lda), *b = ref_alloc(rb * ldb);
						float *c = ref_alloc(m * ldc), *c0 = ref_alloc(m * ldc);
						ref_fill_uniform(a, ra * lda, -1, 1, seed);
						ref_fill_uniform(b, rb * ldb, -1, 1, seed + 100);
						ref_fill_uniform(c0, m * ldc, -1, 1, seed + 200);
						for (size_t i = 0; i < m * ldc; i++)
							c[i] = c0[i];
						float alpha = seed % 2 ? 1.0f : -0.75f, beta = seed % 4 == 0 ? 0.0f
						                                             : seed % 4 == 1 ? 1.0f : 0.5f;
						rva__sgemm_ex(ctx, 1, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c,
						              ldc);
						double *want = ref_alloc_d(m * n);
						naive(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc, want);
						for (size_t i = 0; i < m; i++) {
							for (size_t j = 0; j < n; j++)
								cr_assert(fabs(c[i * ldc + j] - want[i * n + j]) <=
								              1e-5 * (double)k + 1e-5,
								          "%s ta%d tb%d %zux%zux%zu (%zu,%zu): %g vs %g",
								          rva_kernel_set_name(set), ta, tb, m, n, k, i, j,
								          c[i * ldc + j], want[i * n + j]);
							for (size_t j = n; j < ldc; j++) /* padding untouched */
								cr_assert_eq(c[i * ldc + j], c0[i * ldc + j]);
						}
						free(a);
						free(b);
						free(c);
						free(c0);
						free(want);
					}
}

Test(gemm, every_runnable_kernel_set_matches_naive) {
	rva_cpu_features f;
	cr_assert_eq(rva_cpu_detect(&f), RVA_OK);
	check_set(RVA_KERNELS_BLIS);
	if (f.avx2 && f.fma) {
		check_set(RVA_KERNELS_ZEN3);
		check_set(RVA_KERNELS_HASWELL);
	}
	if (f.avx512f)
		check_set(RVA_KERNELS_SKX);
}

Test(gemm, threaded_and_reference_paths_agree) {
	size_t m = 300, n = 200, k = 150;
	float *a = ref_alloc(m * k), *b = ref_alloc(n * k), *c1 = ref_alloc(m * n),
	      *c2 = ref_alloc(m * n), *c3 = ref_alloc(m * n);
	ref_fill_uniform(a, m * k, -1, 1, 5);
	ref_fill_uniform(b, n * k, -1, 1, 6);
	rva__sgemm(false, true, m, n, k, 1.0f, a, k, b, k, 0.0f, c1, n);
	rva__sgemm_ex(NULL, 2, false, true, m, n, k, 1.0f, a, k, b, k, 0.0f, c2, n);
	rva__sgemm_ref(false, true, m, n, k, 1.0f, a, k, b, k, 0.0f, c3, n);
	for (size_t i = 0; i < m * n; i++) {
		cr_assert(fabsf(c1[i] - c2[i]) <= 1e-4f);
		cr_assert(fabsf(c1[i] - c3[i]) <= 1e-4f);
	}
	rva__sgemm(false, false, 0, 5, 5, 1.0f, a, 5, b, 5, 0.0f, c1, 5); /* empty is fine */
	free(a);
	free(b);
	free(c1);
	free(c2);
	free(c3);
}

Test(vexp, accurate_and_special_values) {
	enum { N = 4099 };
	float *x = ref_alloc(N), *y = ref_alloc(N);
	for (size_t i = 0; i < N; i++)
		x[i] = -100.0f + 190.0f * (float)i / (float)(N - 1);
	x[0] = -INFINITY;
	x[1] = INFINITY;
	x[2] = NAN;
	x[3] = -1000.0f;
	x[4] = 0.0f;
	rva__vexp(x, y, N);
	cr_assert_eq(y[0], 0.0f);
	cr_assert(isinf(y[1]) && y[1] > 0);
	cr_assert(isnan(y[2]));
	cr_assert_eq(y[3], 0.0f);
	cr_assert_eq(y[4], 1.0f);
	for (size_t i = 5; i < N; i++) {
		double want = exp((double)x[i]);
		if (want < 1e-37 || want > 3e38)
			continue; /* underflow / overflow band: checked above */
		cr_assert(fabs(y[i] - want) <= 4e-7 * want, "exp(%g) = %g, want %g", x[i], y[i], want);
	}
	free(x);
	free(y);
}

Test(vexp, avx2_path_accurate, .init = NULL) {
	setenv("RVATTN_SIMD", "avx2", 1);
	enum { N = 1001 };
	float x[N], y[N];
	for (size_t i = 0; i < N; i++)
		x[i] = -80.0f + 160.0f * (float)i / (float)(N - 1);
	rva__vexp(x, y, N);
	for (size_t i = 0; i < N; i++) {
		double want = exp((double)x[i]);
		cr_assert(fabs(y[i] - want) <= 4e-7 * want, "exp(%g) = %g, want %g", x[i], y[i], want);
	}
	cr_assert(rva__simd_level() <= RVA__SIMD_AVX2);
}

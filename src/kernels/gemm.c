/*
 * The strided sgemm wrapper on BLIS, and its naive reference twin. The context (which
 * kernel set: Debian's BLIS 0.9.0 picks its slow `generic` kernels on Zen 4/5) comes from
 * the kernel choice, kernel_select.c; this file only runs GEMMs with it.
 */
#include <stdlib.h>
#include <string.h>

#include <blis.h>

#include "core/internal.h"
#include "kernels/env.h"
#include "kernels/gemm.h"
#include "kernels/gemm_ctx.h"

static int use_reference = -1;

void rva__sgemm_ref(bool ta, bool tb, size_t m, size_t n, size_t k, float alpha,
                    const float *a, size_t lda, const float *b, size_t ldb, float beta,
                    float *c, size_t ldc) {
	for (size_t i = 0; i < m; i++)
		for (size_t j = 0; j < n; j++) {
			float acc = 0.0f;
			for (size_t p = 0; p < k; p++) {
				float av = ta ? a[p * lda + i] : a[i * lda + p];
				float bv = tb ? b[j * ldb + p] : b[p * ldb + j];
				acc += av * bv;
			}
			float *cij = &c[i * ldc + j];
			*cij = alpha * acc + (beta == 0.0f ? 0.0f : beta * *cij);
		}
}

static bool reference_forced(void) {
	int r = __atomic_load_n(&use_reference, __ATOMIC_RELAXED);
	if (r < 0) {
		r = rva__env_reference_gemm_get(NULL);
		__atomic_store_n(&use_reference, r, __ATOMIC_RELAXED);
	}
	return r;
}

void rva__sgemm_ex(const rva__gemm_ctx *ctx, unsigned threads, bool ta, bool tb, size_t m,
                   size_t n, size_t k, float alpha, const float *a, size_t lda,
                   const float *b, size_t ldb, float beta, float *c, size_t ldc) {
	if (m == 0 || n == 0)
		return;
	if (reference_forced()) {
		rva__sgemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
		return;
	}
	if (!ctx)
		ctx = rva__gemm_ctx_current();
	rntm_t rntm = BLIS_RNTM_INITIALIZER;
	bli_rntm_set_num_threads(threads > 1 ? (dim_t)threads : 1, &rntm);
	if (!ctx->sup)
		bli_rntm_disable_l3_sup(&rntm);
	/* Row-major storage: element (i, j) of a stored matrix is at i*ld + j. op(X) = X^T
	 * is the same memory read with swapped strides. */
	inc_t rsa = ta ? 1 : (inc_t)lda, csa = ta ? (inc_t)lda : 1;
	inc_t rsb = tb ? 1 : (inc_t)ldb, csb = tb ? (inc_t)ldb : 1;
	float al = alpha, be = beta;
	bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, (dim_t)m, (dim_t)n, (dim_t)k, &al,
	             (float *)a, rsa, csa, (float *)b, rsb, csb, &be, c, (inc_t)ldc, 1,
	             (cntx_t *)ctx->cntx, &rntm);
}

void rva__sgemm(bool ta, bool tb, size_t m, size_t n, size_t k, float alpha, const float *a,
                size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc) {
	rva__sgemm_ex(NULL, 1, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/*
 * BLIS contexts (one per kernel set, filled once) and the strided sgemm wrapper.
 * Why explicit contexts: Debian's BLIS 0.9.0 picks `generic` on Zen 4/5 (~5x slower);
 * the static archive still carries the skx/zen3/haswell kernels, which we install here.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <blis.h>

#include "core/internal.h"
#include "kernels/env.h"
#include "kernels/gemm.h"

/* Exported by the static archive, not declared by blis.h. */
void bli_cntx_init_skx(cntx_t *cntx);
void bli_cntx_init_zen3(cntx_t *cntx);
void bli_cntx_init_haswell(cntx_t *cntx);

struct rva__gemm_ctx {
	rva_kernel_set set;
	const cntx_t *cntx;
	cntx_t storage;
	bool sup;          /* let BLIS use its small/unpacked path */
};

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static rva__gemm_ctx contexts[RVA_KERNELS_COUNT];
static bool context_ready[RVA_KERNELS_COUNT];
static _Thread_local const rva__gemm_ctx *thread_ctx;
static int use_reference = -1;

static void fill_context(rva_kernel_set k, rva__gemm_ctx *c) {
	c->set = k;
	switch (k) {
	case RVA_KERNELS_SKX:
		bli_cntx_init_skx(&c->storage);
		c->cntx = &c->storage;
		/* skx registers no small/unpacked kernels: the sup path would fall to the
		 * reference ones, so always pack (measured in bench/gemm_peak). */
		c->sup = false;
		break;
	case RVA_KERNELS_ZEN3:
		bli_cntx_init_zen3(&c->storage);
		c->cntx = &c->storage;
		c->sup = true;
		break;
	case RVA_KERNELS_HASWELL:
		bli_cntx_init_haswell(&c->storage);
		c->cntx = &c->storage;
		c->sup = true;
		break;
	default:
		c->cntx = bli_gks_query_cntx();
		c->sup = true;
		break;
	}
}

/* The context of an already resolved (runnable) kernel set, filled on first use; after
 * that, lock-free (these lookups sit on every GEMM call). */
static const rva__gemm_ctx *ctx_for(rva_kernel_set k) {
	if (!__atomic_load_n(&context_ready[k], __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&ctx_lock);
		if (!context_ready[k]) {
			bli_init();
			fill_context(k, &contexts[k]);
			__atomic_store_n(&context_ready[k], true, __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(&ctx_lock);
	}
	return &contexts[k];
}

rva_status rva__gemm_ctx_get(rva_kernel_set want, const rva__gemm_ctx **out) {
	rva_kernel_set k;
	rva_status st = rva_kernels_resolve(want, &k);
	if (st != RVA_OK)
		return st;
	*out = ctx_for(k);
	return RVA_OK;
}

/* The process default, cached; rva_kernels_select() clears the cache. */
static const rva__gemm_ctx *cached_default;

void rva__gemm_default_changed(void) {
	__atomic_store_n(&cached_default, NULL, __ATOMIC_RELEASE);
}

static const rva__gemm_ctx *default_ctx(void) {
	const rva__gemm_ctx *c = __atomic_load_n(&cached_default, __ATOMIC_ACQUIRE);
	if (c)
		return c;
	rva_kernel_set k;
	rva_kernels_current(&k, NULL); /* never an unrunnable set */
	c = ctx_for(k);
	__atomic_store_n(&cached_default, c, __ATOMIC_RELEASE);
	return c;
}

const rva__gemm_ctx *rva__gemm_ctx_current(void) {
	return thread_ctx ? thread_ctx : default_ctx();
}

void rva__gemm_ctx_use(const rva__gemm_ctx *ctx) { thread_ctx = ctx; }

rva_kernel_set rva__gemm_ctx_kernels(const rva__gemm_ctx *ctx) { return ctx->set; }

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

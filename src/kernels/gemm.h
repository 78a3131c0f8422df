/*
 * The one GEMM wrapper every kernel uses: row-major strided sgemm on BLIS with the
 * context chosen by CPU features (kernels.h), single-threaded unless asked otherwise.
 *
 *   C[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C
 *
 * Matrices are row-major with a row stride in floats (lda >= columns of the stored
 * matrix). trans_a means A is stored k x m (op(A) = A^T), trans_b means B is stored
 * n x k (op(B) = B^T, the Q K^T case). Transposes are expressed as BLIS strides:
 * no copies.
 */
#ifndef RVATTN_SRC_KERNELS_GEMM_H
#define RVATTN_SRC_KERNELS_GEMM_H

#include <stdbool.h>
#include <stddef.h>

#include "rvattn/kernels.h"
#include "rvattn/status.h"

typedef struct rva__gemm_ctx rva__gemm_ctx; /* an initialised BLIS cntx_t */

/* The contexts and the process default belong to the kernel choice (kernel_select.c),
 * which never calls back into the wrapper (gemm.c). */

/* Context for a concrete kernel set (filled once, then shared; thread-safe).
 * Errors: those of rva_kernels_resolve (k is resolved first). */
rva_status rva__gemm_ctx_get(rva_kernel_set k, const rva__gemm_ctx **out);

/* The context the calling thread uses: the one set by rva__gemm_ctx_use() on this
 * thread, else the process default (rva_kernels_current). Never NULL. */
const rva__gemm_ctx *rva__gemm_ctx_current(void);

/* Makes ctx (NULL = process default) the calling thread's context (engine workers). */
void rva__gemm_ctx_use(const rva__gemm_ctx *ctx);

/* The kernel set a context was filled from. */
rva_kernel_set rva__gemm_ctx_kernels(const rva__gemm_ctx *ctx);

/* Single-threaded sgemm with the calling thread's context. m, n or k may be 0. */
void rva__sgemm(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                const float *a, size_t lda, const float *b, size_t ldb, float beta,
                float *c, size_t ldc);

/* The same with an explicit context (NULL = current) and BLIS thread count (0 or 1 =
 * single-threaded; more only for big standalone GEMMs outside engine tasks). */
void rva__sgemm_ex(const rva__gemm_ctx *ctx, unsigned threads, bool trans_a, bool trans_b,
                   size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
                   const float *b, size_t ldb, float beta, float *c, size_t ldc);

/* The naive triple loop (reference twin; also used when RVATTN_REFERENCE_GEMM=1). */
void rva__sgemm_ref(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                    const float *a, size_t lda, const float *b, size_t ldb, float beta,
                    float *c, size_t ldc);

#endif

/*
 * What a GEMM context holds (private to the kernel choice, kernel_select.c, which fills
 * it, and the GEMM wrapper, gemm.c, which reads it). Everyone else holds the opaque
 * rva__gemm_ctx of gemm.h.
 */
#ifndef RVATTN_SRC_KERNELS_GEMM_CTX_H
#define RVATTN_SRC_KERNELS_GEMM_CTX_H

#include <stdbool.h>

#include <blis.h>

#include "rvattn/kernels.h"

struct rva__gemm_ctx {
	rva_kernel_set set;  /* the concrete set it was filled from */
	const cntx_t *cntx;  /* &storage, or BLIS's own context */
	cntx_t storage;
	bool sup;            /* let BLIS use its small/unpacked path */
};

#endif

/*
 * Element-wise kernels of linear (Performer) attention: the feature maps applied to the
 * GEMM outputs. AVX-512 and AVX2 versions (on the shared exp of kernels/vexp.h) are
 * picked at run time by rva__simd_level(); the portable versions are the reference
 * twins (RVATTN_SIMD=scalar forces them).
 */
#ifndef RVATTN_SRC_ATTENTION_LINEAR_KERNELS_H
#define RVATTN_SRC_ATTENTION_LINEAR_KERNELS_H

#include <stddef.h>

typedef struct rva__lin_kern {
	/* max_i x[i] (-inf for n == 0). */
	float (*rowmax)(const float *x, size_t n);
	/* sum_i x[i]^2. */
	float (*sumsq)(const float *x, size_t n);
	/* x[i] = exp(x[i] - sub). */
	void (*exp_shift)(float *x, size_t n, float sub);
	/* x[i] = max(x[i], 0) * a + eps. */
	void (*relu)(float *x, size_t n, float a, float eps);
	/* y[i] = elu(c x[i]) + 1 = (c x > 0 ? c x + 1 : exp(c x)). */
	void (*elu1)(const float *x, float *y, size_t n, float c);
} rva__lin_kern;

/* The kernels for this CPU (and RVATTN_SIMD). */
const rva__lin_kern *rva__lin_kernels(void);

/* The portable reference twins. */
const rva__lin_kern *rva__lin_kernels_ref(void);

#endif

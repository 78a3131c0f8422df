/*
 * Double-precision oracle of transformer blocks over self-attention sequences, written
 * from the definitions independently of src/: pre-norm y = x + MHA(N(x), N(x), N(x)) and
 * post-norm y = N(x + MHA(x, x, x)), N LayerNorm or RMSNorm, MHA multi-head softmax
 * attention without projections (head h reads columns [h*hd, (h+1)*hd)), dense, causal or
 * not, with an optional key mask. The whole block runs in double: the stream is never
 * rounded to float, so stacking blocks compares a float pipeline against exact arithmetic.
 */
#ifndef RVATTN_TESTS_REF_BLOCK_H
#define RVATTN_TESTS_REF_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { REF_BLOCK_LAYER = 0, REF_BLOCK_RMS = 1 };

typedef struct ref_block_spec {
	int norm;                 /* REF_BLOCK_LAYER or REF_BLOCK_RMS */
	double eps;
	const float *gain, *bias; /* dim floats each, or NULL (ones / zeros) */
	size_t heads;
	double scale;             /* logit scale; 0 = 1/sqrt(head_dim) */
	bool causal;              /* key j visible to query i only if j <= i */
	bool prenorm;             /* pre-norm (else post-norm) */
} ref_block_spec;

/* One block over the n rows of dim doubles of one sequence: x and y packed, n x dim, not
 * aliasing. mask: NULL or n bytes, nonzero = that row may be attended as a key. A query
 * that sees no key gets an attention output of zeros. */
void ref_self_block(const ref_block_spec *sp, size_t n, size_t dim, const double *x,
                    const uint8_t *mask, double *y);

#endif

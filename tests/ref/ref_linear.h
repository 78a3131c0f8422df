/*
 * Oracle for linear (Performer) attention: a naive double-precision implementation of
 * the definitions in docs/ARCHITECTURE.md (Mechanisms), written independently of src/.
 *
 * For query head h (kv head h / (heads / kv_heads)), with x' = sqrt(scale) * x on the
 * head slice:
 *   FAVOR: phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m)           (no stabiliser: double)
 *   RELU:  phi(x) = relu(W x') / sqrt(m) + 1e-6
 *   ELU:   phi(x) = elu(x') + 1                                 (m = head_dim, W unused)
 *   out_i = sum_j a_ij v_j / sum_j a_ij, a_ij = phi(q_i) . phi(k_j), over the keys j
 * that are not masked and, when causal, j <= nk - nq + i. A row with no such key (or a
 * zero denominator) is 0.
 *
 * Also: exact softmax attention (for the FAVOR+ approximation test) and the
 * orthogonality check of a feature matrix.
 */
#ifndef RVATTN_TESTS_REF_LINEAR_H
#define RVATTN_TESTS_REF_LINEAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ref_linear_map {
	REF_LINEAR_FAVOR = 0,
	REF_LINEAR_RELU,
	REF_LINEAR_ELU
} ref_linear_map;

typedef struct ref_linear_args {
	size_t nq, nk;
	size_t heads, kv_heads, head_dim;
	const float *q; size_t q_stride;   /* strides in floats, never 0 */
	const float *k; size_t k_stride;
	const float *v; size_t v_stride;
	const uint8_t *mask;               /* NULL or nk bytes, nonzero = visible */
	bool causal;
	double scale;                      /* logit scale s; inputs are scaled by sqrt(s) */
	ref_linear_map map;
	const float *w;                    /* m x head_dim row-major (FAVOR, RELU) */
	size_t m;
} ref_linear_args;

/* Linear attention output, nq x (heads * head_dim) doubles, packed. Returns 0, or -1
 * when memory runs out. */
int ref_linear(const ref_linear_args *a, double *out);

/* Exact softmax attention with the same arguments (map, w, m ignored): softmax of
 * scale * q.k over the visible keys. */
int ref_softmax_attention(const ref_linear_args *a, double *out);

/* Largest |<w_i, w_j>| / (|w_i| |w_j|) over pairs i != j inside the same block of
 * head_dim consecutive rows of w (m x head_dim): 0 for orthogonal blocks. */
double ref_block_orthogonality(const float *w, size_t m, size_t head_dim);

#endif

/*
 * Double-precision oracle for the attention-op extras of the softmax family (issue #15):
 * log-sum-exp output, a V head dim different from the Q/K head dim, head strides ([B, H,
 * S, D] layouts) and rotary position embeddings (GPT-NeoX and GPT-J layouts, linear and
 * NTK-aware scaling, partial rotary), on top of ref_attention's spec (patterns, T5 bias).
 * Written from the definitions (include/rvattn/batch.h, include/rvattn/config.h;
 * Su et al. 2021 for RoPE), independent of src/.
 */
#ifndef RVATTN_TESTS_REF_ATTN_EX_H
#define RVATTN_TESTS_REF_ATTN_EX_H

#include <stddef.h>
#include <stdint.h>

#include "ref/ref_softmax.h"

enum { REF_ROPE_NONE = 0, REF_ROPE_NEOX = 1, REF_ROPE_GPTJ = 2 };
enum { REF_ROPE_SCALE_NONE = 0, REF_ROPE_SCALE_LINEAR = 1, REF_ROPE_SCALE_NTK = 2 };

typedef struct ref_rope {
	int kind;          /* REF_ROPE_* */
	double theta;      /* base */
	size_t rot_dim;    /* leading dims rotated (even, <= head_dim) */
	int scaling;       /* REF_ROPE_SCALE_* */
	double factor;     /* scaling factor */
} ref_rope;

typedef struct ref_ex_io {
	size_t nq, nk;
	/* element (row i, head h, d) of q at q[i * qs + h * qhs + d]; the same for k, v */
	const float *q; size_t qs, qhs;
	const float *k; size_t ks, khs;
	const float *v; size_t vs, vhs;
	const uint8_t *mask;   /* NULL or nk bytes */
	size_t v_head_dim;     /* Dv */
	long q_pos, k_pos;     /* RoPE positions of query row 0 and key row 0 */
	ref_rope rope;
	double *out;           /* nq x heads * Dv, packed */
	double *lse;           /* NULL or heads x nq: log sum exp of the visible logits */
} ref_ex_io;

/* Softmax attention of sp (heads, kv_heads, head_dim, scale, pattern, causal, T5) with the
 * extras of io. A row with no visible key: zeros and lse -inf. */
void ref_attention_ex(const ref_attn_spec *sp, const ref_ex_io *io);

/* The RoPE rotation of one head vector x (head_dim values) at position pos, in place. */
void ref_rope_apply(const ref_rope *r, size_t head_dim, long pos, double *x);

#endif

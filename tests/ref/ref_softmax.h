/*
 * Naive double-precision oracle for softmax attention (scaled dot-product, multi-head,
 * flash, local-global, Sparse Transformer strided, T5 bias), written from the
 * definitions (docs/ARCHITECTURE.md, Data model and Mechanisms), independent of src/.
 */
#ifndef RVATTN_TESTS_REF_SOFTMAX_H
#define RVATTN_TESTS_REF_SOFTMAX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { REF_DENSE = 0, REF_LOCAL_GLOBAL = 1, REF_STRIDED = 2 };

typedef struct ref_attn_spec {
	size_t heads, kv_heads, head_dim;
	double scale;            /* logit scale */
	bool causal;
	int pattern;             /* REF_DENSE, REF_LOCAL_GLOBAL, REF_STRIDED */
	size_t window;           /* local-global */
	const size_t *globals;   /* local-global global positions (any order) */
	size_t nglobals;
	size_t stride;           /* strided */
	const float *t5_table;   /* buckets x heads, or NULL for no bias */
	size_t t5_buckets, t5_max_distance;
	/* score modifiers (include/rvattn/config.h, batch.h), all off when zero */
	bool top_left;           /* query i at position i (else nk - nq + i) */
	bool sliding;            /* sliding window: qp - window_left <= kp <= qp + window_right */
	size_t window_left, window_right;
	double softcap;          /* s = softcap tanh(s / softcap) on the scaled logit; 0 = off */
	const double *alibi;     /* heads slopes: s -= slope |qp - kp|; NULL = off */
	const float *bias;       /* [h][i][j] at h * bias_hs + i * bias_s + j; NULL = off */
	size_t bias_s, bias_hs;
	const uint8_t *smask;    /* the same layout: 0 hides the pair; NULL = off */
	size_t smask_s, smask_hs;
} ref_attn_spec;

/* The paper's default ALiBi slopes for n heads (Press et al., get_slopes), in double. */
void ref_alibi_slopes(size_t n, double *out);

/* out: nq rows of heads*head_dim doubles (packed). q/k/v rows with strides in floats.
 * mask: NULL or nk bytes. A query with no visible key gets zeros. */
void ref_attention(const ref_attn_spec *sp, size_t nq, size_t nk, const float *q,
                           size_t qs, const float *k, size_t ks, const float *v, size_t vs,
                           const uint8_t *mask, double *out);

/* T5 bucket of relative position rp = key_pos - query_pos (HF definition). */
size_t ref_t5_bucket(long rp, bool bidirectional, size_t buckets, size_t max_distance);

/* Whether query position qp sees key position kp under the spec's pattern. */
bool ref_visible(const ref_attn_spec *sp, long qp, long kp);
#endif

/*
 * The double-precision oracle of softmax attention (scaled dot-product, multi-head, flash,
 * local-global, Sparse Transformer strided and fixed, T5 bias, the score modifiers, and the
 * attention-op extras of issue #15: log-sum-exp output, a V head dim of its own, head
 * strides ([B, H, S, D] layouts), rotary position embeddings), written from the
 * definitions (docs/ARCHITECTURE.md, include/rvattn/batch.h and config.h; Su et al. 2021
 * for RoPE), independent of src/. One implementation (ref_attention_ex); ref_attention is
 * its packed-rows form.
 */
#ifndef RVATTN_TESTS_REF_SOFTMAX_H
#define RVATTN_TESTS_REF_SOFTMAX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { REF_DENSE = 0, REF_LOCAL_GLOBAL = 1, REF_STRIDED = 2, REF_FIXED = 3 };

typedef struct ref_attn_spec {
	size_t heads, kv_heads, head_dim;
	double scale;            /* logit scale */
	bool causal;
	int pattern;             /* REF_DENSE, REF_LOCAL_GLOBAL, REF_STRIDED, REF_FIXED */
	size_t window;           /* local-global */
	const size_t *globals;   /* local-global global positions (any order) */
	size_t nglobals;
	size_t stride;           /* strided, fixed: l */
	size_t summary;          /* fixed: c, the last c positions of each block are summaries */
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

enum { REF_ROPE_NONE = 0, REF_ROPE_NEOX = 1, REF_ROPE_GPTJ = 2 };
enum { REF_ROPE_SCALE_NONE = 0, REF_ROPE_SCALE_LINEAR = 1, REF_ROPE_SCALE_NTK = 2 };

typedef struct ref_rope {
	int kind;          /* REF_ROPE_* */
	double theta;      /* base */
	size_t rot_dim;    /* leading dims rotated (even, <= head_dim); 0 = head_dim */
	int scaling;       /* REF_ROPE_SCALE_* */
	double factor;     /* scaling factor */
} ref_rope;

/* The tensors of one sequence. */
typedef struct ref_ex_io {
	size_t nq, nk;
	/* element (row i, head h, d) of q at q[i * qs + h * qhs + d]; the same for k, v */
	const float *q; size_t qs, qhs;
	const float *k; size_t ks, khs;
	const float *v; size_t vs, vhs;
	const uint8_t *mask;   /* NULL or nk bytes (key mask) */
	size_t v_head_dim;     /* Dv; 0 = head_dim */
	/* RoPE offsets (batch.h: rva_seq.q_pos, k_pos): query row i rotates at q_pos plus its
	 * masking position (nk - nq + i bottom-right, i with the spec's top_left), key row j
	 * at k_pos + j */
	long q_pos, k_pos;
	ref_rope rope;
	double *out;           /* nq x heads * Dv, packed */
	double *lse;           /* NULL or heads x nq: log sum exp of the visible logits */
} ref_ex_io;

/* The paper's default ALiBi slopes for n heads (Press et al., get_slopes), in double. */
void ref_alibi_slopes(size_t n, double *out);

/* Softmax attention of sp over io: every modifier of the spec (patterns, window, softcap,
 * ALiBi, T5, bias, score mask, key mask) and the extras of io. A row with no visible key
 * gets zeros and lse -inf. */
void ref_attention_ex(const ref_attn_spec *sp, const ref_ex_io *io);

/* The packed form: q/k/v rows of heads (kv heads) x head_dim floats at row strides qs, ks,
 * vs; out: nq rows of heads * head_dim doubles (packed). mask: NULL or nk bytes. */
void ref_attention(const ref_attn_spec *sp, size_t nq, size_t nk, const float *q,
                   size_t qs, const float *k, size_t ks, const float *v, size_t vs,
                   const uint8_t *mask, double *out);

/* The RoPE rotation of one head vector x (head_dim values) at position pos, in place. */
void ref_rope_apply(const ref_rope *r, size_t head_dim, long pos, double *x);

/* T5 bucket of relative position rp = key_pos - query_pos (HF definition). */
size_t ref_t5_bucket(long rp, bool bidirectional, size_t buckets, size_t max_distance);

/* Whether query position qp sees key position kp under the spec's pattern. */
bool ref_visible(const ref_attn_spec *sp, long qp, long kp);
#endif

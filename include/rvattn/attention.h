/*
 * rvattn — built attention mechanisms and the single-query (SDK guide) calls.
 *
 * rva_build() validates a config and returns an opaque, immutable rva_attention: it may
 * be used from many threads at once. The single-query calls keep the guide's shape
 * (one query, arrays of key and value row pointers); they run as a batch of one on the
 * calling thread and give the same numbers as the batched engine path.
 *
 * Ownership: an attention is reference-counted. rva_build() gives the caller one
 * reference; rva_attention_retain() adds one, rva_attention_release() (or its older name
 * rva_attention_destroy()) drops one, and the last one frees it. Counting is atomic:
 * threads may retain and release the same attention concurrently. A pipeline keeps the
 * reference it is given (pipeline.h): to add one attention to several pipelines, or to
 * keep using it after adding it, retain it first. The engine does not count: an
 * attention must outlive the jobs that run it (engine.h).
 */
#ifndef RVATTN_ATTENTION_H
#define RVATTN_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "config.h"
#include "status.h"

RVA_BEGIN_DECLS

typedef struct rva_attention rva_attention;

/* MoE routing statistics of one call or job (see rva_runtime.moe_stats and
 * rva_job_moe_stats). The arrays make RVA_MOE_MAX_EXPERTS part of this struct's layout:
 * it is reached only through pointers (never embedded in another public struct), and a
 * change of the constant is an ABI change that moves the SONAME (README, "Versions and
 * ABI"). */
#define RVA_MOE_MAX_EXPERTS 256
typedef struct rva_moe_stats {
	size_t experts;                          /* E */
	size_t tokens;                           /* query rows routed */
	size_t capacity;                         /* per-expert capacity used (per-sequence
	                                          * scope: summed over the sequences) */
	size_t assigned[RVA_MOE_MAX_EXPERTS];    /* tokens routed to e before capacity */
	size_t processed[RVA_MOE_MAX_EXPERTS];   /* tokens e actually processed */
	size_t dropped;                          /* (token, expert) assignments dropped */
	double load_balancing_loss;              /* E * sum_e f_e * P_e (Switch, alpha = 1) */
	/* Time in each phase, summed over its tasks (ns): routing, capacity assignment, the
	 * experts' own attention work, and combining the weighted expert outputs. */
	uint64_t router_ns, assign_ns, expert_ns, combine_ns;
} rva_moe_stats;

/*
 * Per-call knobs (BLIS's rntm_t idea): a small stack struct; NULL means the defaults
 * (inference mode). Training mode enables attention dropout, MoE jitter noise, pipeline
 * dropout and batch statistics in BatchNorm; `seed` and `step` select the counter-based
 * random streams, so masks do not depend on the thread count.
 */
typedef struct rva_runtime {
	bool training;
	uint64_t seed;              /* default 0 */
	uint64_t step;              /* e.g. the training step; default 0 */
	rva_moe_stats *moe_stats;   /* optional output for MoE attentions (may be NULL) */
	float scale;                /* logit scale of this call, replacing the config's
	                             * (softmax mechanisms: scaled_dot, multi_head, flash,
	                             * local_global); 0 = the config's scale (default); must
	                             * be finite and >= 0, else every sequence of the call
	                             * fails with RVA_ERANGE; other mechanisms refuse a
	                             * non-zero value with RVA_EINVAL */
	uint32_t reserved32;        /* zero */
	uint64_t reserved[3];       /* zero (growth: the rule of config.h) */
} rva_runtime;

/*
 * Validates *cfg and builds the mechanism. On success *out owns all its memory (the
 * config's borrowed arrays are copied) and the caller holds its one reference: drop it
 * with rva_attention_release().
 * Errors: RVA_ENULL (also a NULL matrix in an MoE expert_w* list); RVA_EINVAL
 * (unknown enum values, inconsistent options); RVA_EDIM (heads not dividing dim,
 * kv_heads not dividing heads, an MoE router_stride or matrix-list stride narrower than
 * its rows); RVA_ERANGE (a float field or an entry of bias_table / feature_matrix /
 * router_weights / an MoE expert matrix that is NaN or infinite,
 * dropout outside [0,1), curvature >= 0, temperature <= 0, top_k 0 or > experts,
 * negative capacity, window 0 or odd, block_size/features 0 where used, features above
 * 65536, frechet_max_iter above 10000, a global index >= 2^32 - 1, ...);
 * RVA_EOVERFLOW; RVA_ENOMEM. rva_last_error() names the offending values.
 */
rva_status rva_build(const rva_config *cfg, rva_attention **out);

/* Adds a reference to att, which the caller must already hold (or share with a holder
 * that outlives this call); each reference is dropped by one rva_attention_release.
 * Thread-safe. Errors: RVA_ENULL. */
rva_status rva_attention_retain(rva_attention *att);

/* Drops one reference to att; the last one frees it and everything it owns (the MoE
 * experts, the copied arrays). NULL is fine. Thread-safe. Always RVA_OK. */
rva_status rva_attention_release(rva_attention *att);

/* The same as rva_attention_release (the name of the releases before reference counting,
 * kept for the SDK guide's examples and existing callers). Always RVA_OK. */
rva_status rva_attention_destroy(rva_attention *att);

/* Copies the (normalised: defaults resolved) config of att into *out. Pointer fields are
 * set to att's internal copies, valid while att lives. Errors: RVA_ENULL. */
rva_status rva_attention_config(const rva_attention *att, rva_config *out);

/*
 * attention.compute(query, keys, values): query has dim floats; keys[i] and values[i]
 * point to rows of kv_heads*head_dim and kv_heads*v_head_dim floats (config.h; v_head_dim
 * is head_dim unless set), i < n_keys; out receives heads*v_head_dim floats (dim unless
 * v_head_dim is set).
 * Causal masking makes the single query the last position (it sees every key).
 * out may overlap query (in place): the query is read from a copy. Key rows evenly
 * spaced in memory (keys[i] = keys[0] + i * stride, stride >= the row width, as when the
 * pointers index one matrix), and likewise value rows, are read in place without a copy;
 * scattered rows, or rows that out overlaps, are first copied into one matrix (n_keys x
 * 2 rows). Only a mask (rva_compute_masked) must not overlap out.
 * Errors: RVA_ENULL; RVA_EEMPTY when n_keys is 0; RVA_EINVAL when out overlaps the
 * mask; RVA_ENOMEM.
 */
rva_status rva_compute(const rva_attention *att, const float *query,
                       const float *const *keys, const float *const *values,
                       size_t n_keys, float *out);

/* compute_with_mask: as rva_compute; mask[i] nonzero means key i may be attended
 * (NULL = all). A query whose keys are all masked gets an output of zeros. */
rva_status rva_compute_masked(const rva_attention *att, const float *query,
                              const float *const *keys, const float *const *values,
                              const uint8_t *mask, size_t n_keys, float *out);

/* The _ex form of rva_compute_masked with per-call knobs (rt may be NULL). */
rva_status rva_compute_ex(const rva_attention *att, const float *query,
                          const float *const *keys, const float *const *values,
                          const uint8_t *mask, size_t n_keys, float *out,
                          const rva_runtime *rt);

/*
 * The attention-op extras of one query (batch.h, rva_seq's fields of the same names with
 * nq = 1 and nk = n_keys; zero = off). Softmax mechanisms only (scaled_dot, multi_head,
 * flash, local_global): the others refuse bias, mask and lse with RVA_EINVAL.
 *  - bias: an additive logit bias per key, bias[h * bias_head_stride + j] for query head
 *    h and key j; bias_head_stride 0 = one row of n_keys broadcast over the heads.
 *  - mask: a boolean per key and head, the same layout (nonzero = visible; with the key
 *    mask of the call both must let the key through).
 *  - lse: heads floats, lse[h] = the natural log of the sum of exp of the visible scaled
 *    logits of head h (-inf when it sees no key).
 *  - q_pos, k_pos: RoPE position offsets (config.h rope; without it RVA_EINVAL): the
 *    query rotates at q_pos plus its causal_align position (n_keys - 1 bottom-right, 0
 *    top-left), key j at k_pos + j.
 * None may overlap out (RVA_EINVAL). The arrays are borrowed for the call.
 */
typedef struct rva_query_extras {
	const float *bias;
	size_t bias_head_stride;
	const uint8_t *mask;
	size_t mask_head_stride;
	float *lse;
	size_t q_pos, k_pos;
	uint64_t reserved[8];    /* zero */
} rva_query_extras;

/* rva_compute_ex with the extras x (NULL = none): the same bits as rva_compute_batch over
 * an rva_seq of one query row carrying them. Errors: those of rva_compute_ex; RVA_EINVAL
 * (x->reserved not zero, and the rva_seq checks of its fields). */
rva_status rva_compute_query(const rva_attention *att, const float *query,
                             const float *const *keys, const float *const *values,
                             const uint8_t *key_mask, size_t n_keys, float *out,
                             const rva_query_extras *x, const rva_runtime *rt);

/*
 * Runs a whole batch serially on the calling thread (no engine): the reference path
 * and the one the single-query calls use. seq_status, when non-NULL, receives one
 * status per sequence; a bad sequence fails alone and the others complete (a sequence
 * whose output overlaps its inputs fails with RVA_EINVAL: see batch.h). Returns
 * RVA_OK when every sequence succeeded, else the first failing sequence's status.
 * Statuses, as the engine's (rva_engine_run): they are written whenever the batch was
 * planned, also when it then fails as a whole (out of memory, a failing whole-batch
 * step such as training-mode BatchNorm), and a sequence such a failure kept from
 * completing carries its status: RVA_OK always means the output is complete. A call
 * that fails before that (bad arguments, out of memory while planning) leaves them alone.
 */
rva_status rva_compute_batch(const rva_attention *att, const rva_batch *batch,
                             const rva_runtime *rt, rva_status *seq_status);

/*
 * The random feature matrix W (m x head_dim, row-major) of a linear attention, for
 * tests and users who want to reproduce its numbers. Errors: RVA_ENULL;
 * RVA_EINVAL when att is not a linear attention with a random-feature map.
 */
rva_status rva_attention_features(const rva_attention *att, const float **w,
                                  size_t *rows, size_t *cols);

/* The router weights (experts x dim, row-major) of an MoE attention, and its experts
 * (built attentions owned by att). Errors: RVA_ENULL; RVA_EINVAL if not MoE;
 * RVA_ERANGE for an expert index >= experts. */
rva_status rva_attention_router(const rva_attention *att, const float **w,
                                size_t *experts, size_t *dim);
rva_status rva_attention_expert(const rva_attention *att, size_t e,
                                const rva_attention **expert);

/* The projection weights of expert e of an MoE attention (shapes in config.h), packed
 * row-major and owned by att (valid while it lives): *wq and *wo dim x dim, *wk and *wv
 * kv_dim x kv_dim (the shared ones unless kv_projection is per expert). Any output
 * pointer may be NULL. Errors: RVA_ENULL (att); RVA_EINVAL if not MoE; RVA_ERANGE for
 * e >= experts. */
rva_status rva_attention_moe_weights(const rva_attention *att, size_t e, const float **wq,
                                     const float **wo, const float **wk, const float **wv);

/* The T5 bias table (buckets x heads, row-major) of an attention with RVA_BIAS_T5.
 * Errors: RVA_ENULL; RVA_EINVAL when the attention has no T5 bias. */
rva_status rva_attention_bias_table(const rva_attention *att, const float **table,
                                    size_t *buckets, size_t *heads);

/* T5 relative-position bucket of key_pos - query_pos (HF `_relative_position_bucket`).
 * Errors: RVA_ENULL; RVA_ERANGE when buckets < 2 (bidirectional: < 4) or
 * max_distance <= buckets/2 (bidirectional: buckets/4). */
rva_status rva_t5_bucket(int64_t relative_position, bool bidirectional, size_t buckets,
                         size_t max_distance, size_t *bucket);

/* FLOPs of running att over a batch (4·nq·nk·head_dim per head for softmax attention,
 * unmasked pairs only when causal; the dominant terms for the others), for GFLOP/s. */
rva_status rva_attention_flops(const rva_attention *att, const rva_batch *batch,
                               double *flops);

RVA_END_DECLS
#endif

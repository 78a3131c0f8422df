/*
 * rvattn — pipelines: attention, normalisation, dropout, residual and custom stages.
 *
 * A pipeline is built by appending stages, then run on one query (the SDK guide's
 * pipeline.run(&query, &keys, &values)) or on a batch through the engine
 * (rva_engine_run_pipeline), where it becomes the job graph. The pipeline input is the
 * query; every attention stage takes the current rows (the stream) as its queries, and its
 * keys/values as the pipeline's mode says (rva_pipeline_mode below): the call's keys and
 * values (cross-attention, the guide's run(query, keys, values)), or the stream itself
 * (self-attention: K = V = the rows the stage reads, so a norm before the attention
 * normalises its keys and values too, as a pre-norm transformer block does). A residual
 * stage adds the input of the current segment (the pipeline input, or the output of the
 * previous residual stage) and starts a new segment.
 *
 * Modes (rva_runtime.training): dropout is the identity in inference and, in training,
 * a seeded counter-based mask scaled by 1/(1-p), the same whatever the thread count
 * (element (row r, column c) of sequence s at stage i is kept when
 * u01(hash(seed, step, i, s, r, c)) >= p; s is the index in the batch, 0 for the single
 * query); BatchNorm uses running statistics in inference and the batch's statistics (over
 * every row of every sequence of the call that has not failed before it) in training.
 *
 * Ownership: attentions are reference-counted (attention.h). A pipeline keeps the
 * reference it is given by rva_pipeline_add_attention (or a transformer block
 * constructor) when that call succeeds, and releases it in rva_pipeline_destroy; a call
 * that fails leaves the reference with the caller. To share one attention between
 * several pipelines (or keep using it yourself), rva_attention_retain it once per extra
 * holder. A pipeline is immutable while it runs; running it from several threads at once
 * is allowed in inference mode.
 */
#ifndef RVATTN_PIPELINE_H
#define RVATTN_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attention.h"
#include "status.h"

RVA_BEGIN_DECLS

typedef struct rva_pipeline rva_pipeline;

typedef enum rva_norm_type {
	RVA_NORM_LAYER = 0, /* (x - mean) / sqrt(var + eps) * gain + bias, per row */
	RVA_NORM_RMS,       /* x / sqrt(mean(x^2) + eps) * gain (+ bias when given), per row */
	RVA_NORM_BATCH,     /* per feature over the batch's rows (training) or running stats:
	                     * (x - mean) / sqrt(var + eps) * gain + bias, var biased; the
	                     * running statistics are read, never updated */
	RVA_NORM_COUNT
} rva_norm_type;

typedef struct rva_norm_config {
	rva_norm_type type;
	float eps;                  /* > 0; 0 = default 1e-5 (the rule of config.h) */
	const float *gain;          /* dim floats or NULL (ones); copied */
	const float *bias;          /* dim floats or NULL (zeros); copied */
	const float *running_mean;  /* BatchNorm: dim floats or NULL (zeros); copied */
	const float *running_var;   /* BatchNorm: dim floats or NULL (ones); copied */
	uint64_t reserved[4];       /* zero (growth: the rule of config.h) */
} rva_norm_config;

/* Defaults for a norm type: eps 1e-5, no gain/bias/running statistics given. */
rva_norm_config rva_norm_defaults(rva_norm_type type);

/*
 * Where attention stages take their keys and values from.
 *
 * RVA_PIPELINE_CROSS: from the call (seq.k / seq.v, or run's keys/values), the same for
 * every attention stage. The default of rva_pipeline_create.
 *
 * RVA_PIPELINE_SELF: from the stream. Each attention stage takes K = V = the rows it reads
 * as queries, of the same sequence (nk = nq for that stage; causal masking puts key i at
 * position i; key_mask, when given, has nq bytes and masks stream rows). A sequence of a
 * batch gives only its queries: k = v = NULL and nk = 0, or the self-attention form
 * k = v = q with the same stride and nk = nq; anything else fails that sequence with
 * RVA_EINVAL. On the single-query path (rva_pipeline_run) the sequence is the key rows
 * followed by the query, i.e. the context and the newest position; values must hold the
 * same rows as keys (else RVA_EINVAL), n_keys may be 0 (keys/values may then be NULL), mask
 * (n_keys bytes) masks the context rows (the query always sees itself), and out gets the
 * query's row; every row of that sequence is computed, from copies of the rows (so out
 * may overlap them, unlike in cross-attention). The stream has dim columns, so
 * every attention stage must read key/value rows of dim floats: grouped-query attention
 * (kv_heads < heads) has no key/value rows to take from the stream without projections and
 * is refused (RVA_EDIM).
 *
 * RVA_PIPELINE_AUTO: per sequence of a batch, SELF for a self-attention sequence (k == q and
 * v == q, as pointers, with the same stride, a stride of 0 meaning dim for all three, and
 * nk == nq; with grouped-query attention such a sequence fails with RVA_EDIM), CROSS for any
 * other; the single-query path is CROSS. The
 * default of rva_transformer_block and rva_prenorm_transformer_block: a self-attention
 * batch gets a true pre-norm block, the guide's block.run(query, keys, values) stays
 * cross-attention. Like PyTorch's nn.MultiheadAttention (`query is key`), it looks at the
 * pointers, never at the values: equal copies in separate buffers are cross-attention.
 */
typedef enum rva_pipeline_mode {
	RVA_PIPELINE_CROSS = 0,
	RVA_PIPELINE_SELF,
	RVA_PIPELINE_AUTO,
	RVA_PIPELINE_MODE_COUNT
} rva_pipeline_mode;

/*
 * A custom stage: maps one row `in` (dim floats) to `out` (dim floats; may alias in).
 * Called once per row, possibly from several threads at once. A non-OK return fails the
 * sequence with that status.
 */
typedef rva_status (*rva_custom_fn)(const float *in, float *out, size_t dim, void *user);

/* Creates an empty pipeline. Errors: RVA_ENULL; RVA_ENOMEM. */
rva_status rva_pipeline_create(rva_pipeline **out);

/* Frees the pipeline and releases the attention references it holds (NULL is fine). */
rva_status rva_pipeline_destroy(rva_pipeline *p);

/* Appends an attention stage; on success the pipeline keeps the caller's reference to
 * att (on failure, att is untouched and the reference stays the caller's). Errors: RVA_ENULL; RVA_EDIM when att's dim, or the width of the
 * key/value rows it reads (kv_heads * head_dim), differs from the pipeline's earlier
 * attention stages (they all read the same keys/values), or in RVA_PIPELINE_SELF mode when
 * that width is not dim; RVA_EINVAL when att is already a stage of this pipeline;
 * RVA_ENOMEM. */
rva_status rva_pipeline_add_attention(rva_pipeline *p, rva_attention *att);

/* Appends a norm with default parameters (the guide's add_norm(NormType)). */
rva_status rva_pipeline_add_norm(rva_pipeline *p, rva_norm_type type);

/* Appends a norm with explicit parameters. Errors: RVA_ENULL; RVA_EINVAL (type, or
 * running statistics for a norm other than BatchNorm, reserved words not zero); RVA_ERANGE
 * (eps < 0 or not finite,
 * running_var < 0 or not finite); RVA_ESTATE when arrays are given before the pipeline dim
 * is known (arrays need an attention stage added before); RVA_ENOMEM. */
rva_status rva_pipeline_add_norm_ex(rva_pipeline *p, const rva_norm_config *cfg);

/* Appends dropout with probability prob. Errors: RVA_ERANGE when prob is outside [0, 1). */
rva_status rva_pipeline_add_dropout(rva_pipeline *p, float prob);

/* Appends a residual connection. */
rva_status rva_pipeline_add_residual(rva_pipeline *p);

/* Appends a custom stage. Errors: RVA_ENULL when fn is NULL. */
rva_status rva_pipeline_add_custom(rva_pipeline *p, rva_custom_fn fn, void *user);

/* Number of stages. Errors: RVA_ENULL. */
rva_status rva_pipeline_stage_count(const rva_pipeline *p, size_t *n);

/* Sets where attention stages take their keys and values from (rva_pipeline_mode), before
 * the pipeline first runs. Errors: RVA_ENULL; RVA_EINVAL for an unknown mode; RVA_EDIM for
 * RVA_PIPELINE_SELF when an attention stage reads key/value rows narrower than dim
 * (kv_heads < heads); RVA_ESTATE once the pipeline has run (or been submitted to an
 * engine): its results so far were computed in the other mode. */
rva_status rva_pipeline_set_mode(rva_pipeline *p, rva_pipeline_mode mode);

/* The pipeline's mode. Errors: RVA_ENULL. */
rva_status rva_pipeline_mode_get(const rva_pipeline *p, rva_pipeline_mode *mode);

/*
 * pipeline.run(query, keys, values): as rva_compute (attention.h), out gets dim floats.
 * In RVA_PIPELINE_CROSS mode, unlike rva_compute, out must not overlap query (or the
 * mask): stages write out while later ones (a residual) still read the input; such a
 * call fails with RVA_EINVAL (RVA_PIPELINE_SELF works from copies, see above).
 * Errors: RVA_EEMPTY for a pipeline with no stage or no attention stage (the dim is then
 * unknown); RVA_EINVAL (cross mode: out overlapping the query or mask); those of the
 * stages.
 */
rva_status rva_pipeline_run(const rva_pipeline *p, const float *query,
                            const float *const *keys, const float *const *values,
                            size_t n_keys, float *out);
rva_status rva_pipeline_run_ex(const rva_pipeline *p, const float *query,
                               const float *const *keys, const float *const *values,
                               const uint8_t *mask, size_t n_keys, float *out,
                               const rva_runtime *rt);

/* Runs the pipeline over a batch serially on the calling thread (the engine-free path,
 * same numbers as rva_engine_run_pipeline). seq_status as in rva_compute_batch. Outputs
 * must not overlap the queries (the pipeline's input), keys, values or key mask: such a
 * sequence fails alone with RVA_EINVAL naming it (the rule of batch.h). Training-mode BatchNorm fails the whole
 * call with RVA_EINVAL when the batch has a single row (its variance is undefined).
 * Pipelines run on fp32 rows: a sequence with a bf16/fp16 tensor (batch.h) fails alone with
 * RVA_EINVAL. */
rva_status rva_pipeline_run_batch(const rva_pipeline *p, const rva_batch *batch,
                                  const rva_runtime *rt, rva_status *seq_status);

/*
 * transformer_block(attention, dropout): post-norm block
 *   attention -> dropout -> residual -> LayerNorm.
 * prenorm_transformer_block(attention, dropout): pre-norm block
 *   LayerNorm -> attention -> dropout -> residual.
 * Both are in RVA_PIPELINE_AUTO mode: over a self-attention sequence (k = v = q) the
 * pre-norm block is x + att(LN(x), LN(x), LN(x)); over other keys/values, and on the
 * single-query path, x + att(LN(x), keys, values). rva_pipeline_set_mode changes it before
 * the first run. On success the block keeps the caller's reference to att; on failure
 * att is untouched and the reference stays the caller's (as rva_pipeline_add_attention).
 * Errors: RVA_ENULL; RVA_ERANGE (dropout); RVA_ENOMEM.
 */
rva_status rva_transformer_block(rva_attention *att, float dropout, rva_pipeline **out);
rva_status rva_prenorm_transformer_block(rva_attention *att, float dropout,
                                         rva_pipeline **out);

RVA_END_DECLS
#endif

/*
 * rvattn — pipelines: attention, normalisation, dropout, residual and custom stages.
 *
 * A pipeline is built by appending stages, then run on one query (the SDK guide's
 * pipeline.run(&query, &keys, &values)) or on a batch through the engine
 * (rva_engine_run_pipeline), where it becomes the job graph. The pipeline input is the
 * query; every attention stage takes the current vector as its query and the original
 * keys/values. A residual stage adds the input of the current segment (the pipeline
 * input, or the output of the previous residual stage) and starts a new segment.
 *
 * Modes (rva_runtime.training): dropout is the identity in inference and, in training,
 * a seeded counter-based mask scaled by 1/(1-p), the same whatever the thread count
 * (element (row r, column c) of sequence s at stage i is kept when
 * u01(hash(seed, step, i, s, r, c)) >= p; s is the index in the batch, 0 for the single
 * query); BatchNorm uses running statistics in inference and the batch's statistics (over
 * every row of every sequence of the call that has not failed before it) in training.
 *
 * Ownership: a pipeline takes ownership of every attention added to it (freed by
 * rva_pipeline_destroy). A pipeline is immutable while it runs; running it from several
 * threads at once is allowed in inference mode.
 */
#ifndef RVATTN_PIPELINE_H
#define RVATTN_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "attention.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

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
	float eps;                  /* default 1e-5 */
	const float *gain;          /* dim floats or NULL (ones); copied */
	const float *bias;          /* dim floats or NULL (zeros); copied */
	const float *running_mean;  /* BatchNorm: dim floats or NULL (zeros); copied */
	const float *running_var;   /* BatchNorm: dim floats or NULL (ones); copied */
} rva_norm_config;

/* Defaults for a norm type: eps 1e-5, no gain/bias/running statistics given. */
rva_norm_config rva_norm_defaults(rva_norm_type type);

/*
 * A custom stage: maps one row `in` (dim floats) to `out` (dim floats; may alias in).
 * Called once per row, possibly from several threads at once. A non-OK return fails the
 * sequence with that status.
 */
typedef rva_status (*rva_custom_fn)(const float *in, float *out, size_t dim, void *user);

/* Creates an empty pipeline. Errors: RVA_ENULL; RVA_ENOMEM. */
rva_status rva_pipeline_create(rva_pipeline **out);

/* Frees the pipeline and the attentions it owns (NULL is fine). */
rva_status rva_pipeline_destroy(rva_pipeline *p);

/* Appends an attention stage and takes ownership of att (on failure, att is untouched
 * and stays the caller's). Errors: RVA_ENULL; RVA_EDIM when att's dim, or the width of the
 * key/value rows it reads (kv_heads * head_dim), differs from the pipeline's earlier
 * attention stages (they all read the same keys/values); RVA_EINVAL when att is already
 * a stage of this pipeline; RVA_ENOMEM. */
rva_status rva_pipeline_add_attention(rva_pipeline *p, rva_attention *att);

/* Appends a norm with default parameters (the guide's add_norm(NormType)). */
rva_status rva_pipeline_add_norm(rva_pipeline *p, rva_norm_type type);

/* Appends a norm with explicit parameters. Errors: RVA_ENULL; RVA_EINVAL (type, or
 * running statistics for a norm other than BatchNorm); RVA_ERANGE (eps <= 0 or not finite,
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

/*
 * pipeline.run(query, keys, values): as rva_compute (attention.h), out gets dim floats.
 * Errors: RVA_EEMPTY for a pipeline with no stage or no attention stage (the dim is then
 * unknown); those of the stages.
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
 * must not overlap the queries, keys or values. Training-mode BatchNorm fails the whole
 * call with RVA_EINVAL when the batch has a single row (its variance is undefined). */
rva_status rva_pipeline_run_batch(const rva_pipeline *p, const rva_batch *batch,
                                  const rva_runtime *rt, rva_status *seq_status);

/*
 * transformer_block(attention, dropout): post-norm block
 *   attention -> dropout -> residual -> LayerNorm.
 * prenorm_transformer_block(attention, dropout): pre-norm block
 *   LayerNorm -> attention -> dropout -> residual.
 * Both take ownership of att (also on failure). Errors: RVA_ENULL; RVA_ERANGE (dropout).
 */
rva_status rva_transformer_block(rva_attention *att, float dropout, rva_pipeline **out);
rva_status rva_prenorm_transformer_block(rva_attention *att, float dropout,
                                         rva_pipeline **out);

#ifdef __cplusplus
}
#endif
#endif

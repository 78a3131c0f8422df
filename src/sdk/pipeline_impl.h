/*
 * The pipeline object, shared by pipeline.c (the public API) and pipeline_plan.c (planning
 * a pipeline over a batch into a job graph), and the row kernels of its stages
 * (pipeline_rows.c).
 */
#ifndef RVATTN_SRC_SDK_PIPELINE_IMPL_H
#define RVATTN_SRC_SDK_PIPELINE_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rvattn/pipeline.h"

typedef enum rva__stage_kind {
	RVA__STAGE_ATTENTION = 0,
	RVA__STAGE_NORM,
	RVA__STAGE_DROPOUT,
	RVA__STAGE_RESIDUAL,
	RVA__STAGE_CUSTOM
} rva__stage_kind;

typedef struct rva__stage {
	rva__stage_kind kind;
	rva_attention *att;      /* ATTENTION: owned */
	/* NORM: the copies own dim floats each, NULL = the default (ones / zeros) */
	rva_norm_type norm;
	float eps;
	float *gain, *bias, *running_mean, *running_var;
	float prob;              /* DROPOUT */
	rva_custom_fn fn;        /* CUSTOM */
	void *user;
} rva__stage;

struct rva_pipeline {
	rva__stage *stages;
	size_t n, cap;
	size_t dim;              /* from the first attention stage; 0 before */
	size_t kv_dim;           /* width of key/value rows every attention stage reads */
	const rva_attention *first_att;
	rva_pipeline_mode mode;  /* where attention stages take K/V from; CROSS by default */
	atomic_bool ran;         /* set when first planned (run or submitted): the mode is fixed */
};

/* ---- row kernels (pipeline_rows.c); in and out may alias ---------------------------- */

/* LayerNorm of one row: (x - mean) / sqrt(var + eps) * gain + bias (biased variance). */
void rva__layer_norm_row(const float *in, float *out, size_t dim, float eps,
                         const float *gain, const float *bias);
/* RMSNorm of one row: x / sqrt(mean(x^2) + eps) * gain (+ bias when given). */
void rva__rms_norm_row(const float *in, float *out, size_t dim, float eps,
                       const float *gain, const float *bias);
/* Per-feature affine normalisation (BatchNorm with resolved statistics):
 * out = (x - mean) * scale + shift. */
void rva__affine_norm_row(const float *in, float *out, size_t dim, const float *mean,
                          const float *scale, const float *shift);
/* Dropout of one row with the counter-based mask of (key, column): kept with probability
 * 1 - prob, scaled by 1 / (1 - prob). row_key = rva__hash3(stream key, sequence, row). */
void rva__dropout_row(const float *in, float *out, size_t dim, float prob, uint64_t row_key);
/* The key of a dropout stage's random stream. */
uint64_t rva__dropout_key(uint64_t seed, uint64_t step, uint32_t stream);
/* out = in + res. */
void rva__residual_row(const float *in, const float *res, float *out, size_t dim);

#endif

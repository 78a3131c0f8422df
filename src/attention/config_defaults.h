/*
 * Defaults of rva_config (include/rvattn/config.h) shared by rva_build (src/attention/),
 * which reads a zero in a field where zero is not a valid value as that field's default
 * (the rule of config.h), and the SDK above it: the constructors (src/sdk/config.c), the
 * presets (src/sdk/presets.c) and pipelines. They live below the SDK so that
 * src/attention/ depends on nothing in src/sdk/ (docs/ARCHITECTURE.md, Dependencies);
 * the head-count rules are defined in src/attention/config_defaults.c.
 */
#ifndef RVATTN_ATTENTION_CONFIG_DEFAULTS_H
#define RVATTN_ATTENTION_CONFIG_DEFAULTS_H

#include <stddef.h>

#include "rvattn/config.h"

#define RVA__DEFAULT_SEED 0x5EEDu
#define RVA__DEFAULT_BLOCK 128
#define RVA__DEFAULT_QUERY_BLOCK 64
#define RVA__DEFAULT_WINDOW 256
#define RVA__DEFAULT_GLOBAL_TOKENS 1
#define RVA__DEFAULT_FEATURES 256
#define RVA__DEFAULT_CURVATURE (-1.0f)
#define RVA__DEFAULT_TEMPERATURE 1.0f
#define RVA__DEFAULT_FRECHET_ITER 100
#define RVA__DEFAULT_FRECHET_TOL 1e-6f
#define RVA__DEFAULT_EXPERTS 8
#define RVA__DEFAULT_TOP_K 2
#define RVA__DEFAULT_CAPACITY 1.25f
#define RVA__DEFAULT_BIAS_BUCKETS 32
#define RVA__DEFAULT_BIAS_MAX_DISTANCE 128
#define RVA__DEFAULT_SPARSE_STRIDE 128
#define RVA__DEFAULT_ROPE_THETA 10000.0f /* RoFormer (Su et al., arXiv:2104.09864) */
#define RVA__DEFAULT_SPARSE_SUMMARY 16
#define RVA__DEFAULT_NORM_EPS 1e-5f /* rva_norm_config (pipeline.h) */

/* The head width the default head count aims at (BERT/GPT base: 768 / 12). */
#define RVA__TARGET_HEAD_DIM 64
/* The narrowest head a fitted head count gives where dim allows a wider one: a dot product
 * over fewer features discriminates little. */
#define RVA__MIN_HEAD_DIM 8
/* The largest dim rva_build accepts (config.h); larger ones are refused after defaults. */
#define RVA__MAX_DIM ((size_t)1 << 32)

/*
 * A head count near `heads` that divides dim: `heads` when it divides dim; else the
 * largest divisor of dim below it with dim / divisor >= RVA__MIN_HEAD_DIM; else 1. dim 0
 * keeps `heads` (rva_build rejects dim 0 with its own message); heads 0 gives 1; a dim
 * above RVA__MAX_DIM gives 1 without searching (rva_build refuses it after the defaults).
 */
size_t rva__fit_heads(size_t dim, size_t heads);

/* The default head count of mechanism m at dim (config.h, `heads`): 1 for scaled_dot and
 * hyperbolic (distances on the whole vector), else rva__fit_heads(dim, dim / 64), at
 * least 1: 12 heads at 768, 8 at 512, 16 at 1024, 1 at 64 and below. */
size_t rva__default_heads(rva_mechanism m, size_t dim);

#endif

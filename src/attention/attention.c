/*
 * The common part of every mechanism: config validation and copying (rva_build),
 * per-sequence validation, planning dispatch, the serial batch path and the
 * single-query calls of the SDK guide.
 */
#include <math.h>
#include <string.h>

#include "attention/attention_internal.h"
#include "attention/config_defaults.h"
#include "attention/half_convert.h"
#include "attention/score_mods.h"
#include "core/internal.h"
#include "kernels/half.h"

/* Upper bounds of work-defining counts (documented in config.h). */
#define RVA__MAX_FEATURES 65536
#define RVA__MAX_FRECHET_ITER 10000

static const rva__mech_ops *ops_for(rva_mechanism m) {
	switch (m) {
	case RVA_MECH_SCALED_DOT: return &rva__scaled_dot_ops;
	case RVA_MECH_MULTI_HEAD: return &rva__multi_head_ops;
	case RVA_MECH_FLASH: return &rva__flash_ops;
	case RVA_MECH_LINEAR: return &rva__linear_ops;
	case RVA_MECH_LOCAL_GLOBAL: return &rva__local_global_ops;
	case RVA_MECH_HYPERBOLIC: return &rva__hyperbolic_ops;
	case RVA_MECH_MOE: return &rva__moe_ops;
	default: return NULL;
	}
}

static bool is_softmax(rva_mechanism m) {
	return m == RVA_MECH_SCALED_DOT || m == RVA_MECH_MULTI_HEAD || m == RVA_MECH_FLASH ||
	       m == RVA_MECH_LOCAL_GLOBAL;
}

/* Which expert kinds an MoE config uses (so their options get validated too). */
static bool moe_uses(const rva_config *c, rva_expert_kind k) {
	if (c->mechanism != RVA_MECH_MOE)
		return false;
	if (c->expert_kind == RVA_EXPERTS_MIXED) {
		size_t e = k == RVA_EXPERTS_STANDARD ? 0 : k == RVA_EXPERTS_HYPERBOLIC ? 1 : 2;
		return c->experts > e;
	}
	return c->expert_kind == k;
}

/* ---- rva_build: zero defaults, then validation (config.h) ----------------------------- */

/* The rule of config.h: zero is never an error. A zero in a field where 0 is not a valid
 * value is that field's default; fields where 0 is valid (dropout, jitter_noise,
 * expert_capacity, frechet_tol, global_tokens, seed, kv_split) keep it. kv_heads and scale
 * are resolved in rva_build, from the head count. */
static void resolve_zero_defaults(rva_config *c) {
	if (c->heads == 0)
		c->heads = rva__default_heads(c->mechanism, c->dim);
	if (c->block_size == 0)
		c->block_size = RVA__DEFAULT_BLOCK;
	if (c->query_block == 0)
		c->query_block = RVA__DEFAULT_QUERY_BLOCK;
	if (c->window == 0)
		c->window = RVA__DEFAULT_WINDOW;
	if (c->features == 0)
		c->features = RVA__DEFAULT_FEATURES;
	if (c->curvature == 0.0f)
		c->curvature = RVA__DEFAULT_CURVATURE;
	if (c->temperature == 0.0f)
		c->temperature = RVA__DEFAULT_TEMPERATURE;
	if (c->frechet_max_iter == 0)
		c->frechet_max_iter = RVA__DEFAULT_FRECHET_ITER;
	if (c->experts == 0)
		c->experts = RVA__DEFAULT_EXPERTS;
	if (c->top_k == 0)
		c->top_k = rva__min(RVA__DEFAULT_TOP_K, c->experts);
	if (c->bias_buckets == 0)
		c->bias_buckets = RVA__DEFAULT_BIAS_BUCKETS;
	if (c->bias_max_distance == 0)
		c->bias_max_distance = RVA__DEFAULT_BIAS_MAX_DISTANCE;
	if (c->sparse_stride == 0)
		c->sparse_stride = RVA__DEFAULT_SPARSE_STRIDE;
	/* RoPE's values only with RoPE (validate_rope refuses them without it); rope_dim is
	 * resolved in rva_build, from the head dim */
	if (c->rope != RVA_ROPE_NONE && c->rope_theta == 0.0f)
		c->rope_theta = RVA__DEFAULT_ROPE_THETA;
	if (c->rope_scaling != RVA_ROPE_SCALING_NONE && c->rope_factor == 0.0f)
		c->rope_factor = 1.0f;
	if (c->sparse_summary == 0)
		c->sparse_summary = rva__min(RVA__DEFAULT_SPARSE_SUMMARY, c->sparse_stride);
}

/* Every float a caller hands in is finite, whether or not the mechanism reads it (a NaN
 * left in an unused field is a bug on the caller's side all the same). */
static rva_status validate_floats(const rva_config *c, const char *mn) {
	const struct {
		const char *name;
		float v;
	} floats[] = {{"scale", c->scale},
	              {"dropout", c->dropout},
	              {"curvature", c->curvature},
	              {"temperature", c->temperature},
	              {"frechet_tol", c->frechet_tol},
	              {"expert_capacity", c->expert_capacity},
	              {"jitter_noise", c->jitter_noise},
	              {"softcap", c->softcap},
	              {"rope_theta", c->rope_theta},
	              {"rope_factor", c->rope_factor}};
	for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++)
		if (!isfinite(floats[i].v))
			return rva__fail(RVA_ERANGE, "%s: %s is %g, not a finite number", mn,
			                 floats[i].name, (double)floats[i].v);
	return RVA_OK;
}

/* Enumerations in range; the reserved tail zero (config.h: a later version gives those
 * bytes a meaning whose zero is today's behaviour). */
static rva_status validate_enums(const rva_config *c, const char *mn) {
	if ((unsigned)c->feature_map >= RVA_FEATURES_COUNT)
		return rva__fail(RVA_EINVAL, "%s: invalid feature_map value %d", mn,
		                 (int)c->feature_map);
	if ((unsigned)c->aggregation >= RVA_AGG_COUNT)
		return rva__fail(RVA_EINVAL, "%s: invalid aggregation value %d", mn,
		                 (int)c->aggregation);
	if ((unsigned)c->expert_kind >= RVA_EXPERTS_COUNT)
		return rva__fail(RVA_EINVAL, "%s: invalid expert_kind value %d", mn,
		                 (int)c->expert_kind);
	if ((unsigned)c->bias >= RVA_BIAS_COUNT)
		return rva__fail(RVA_EINVAL, "%s: invalid bias value %d", mn, (int)c->bias);
	if ((unsigned)c->pattern >= RVA_PATTERN_COUNT)
		return rva__fail(RVA_EINVAL, "%s: invalid pattern value %d", mn, (int)c->pattern);
	if ((unsigned)c->causal_align >= RVA_CAUSAL_ALIGN_COUNT)
		return rva__fail(RVA_EINVAL, "%s: invalid causal_align value %d", mn,
		                 (int)c->causal_align);
	if ((unsigned)c->rope >= RVA_ROPE_COUNT)
		return rva__fail(RVA_EINVAL, "%s: invalid rope value %d", mn, (int)c->rope);
	if ((unsigned)c->rope_scaling >= RVA_ROPE_SCALING_COUNT)
		return rva__fail(RVA_EINVAL, "%s: invalid rope_scaling value %d", mn,
		                 (int)c->rope_scaling);
	for (size_t i = 0; i < sizeof c->reserved / sizeof c->reserved[0]; i++)
		if (c->reserved[i] != 0)
			return rva__fail(RVA_EINVAL, "%s: reserved[%zu] is not zero (start from a "
			                 "constructor such as rva_config_defaults)", mn, i);
	return RVA_OK;
}

/* dim, heads, kv_heads, scale, dropout and the softmax tiles: the shape every mechanism
 * has. */
static rva_status validate_shape(const rva_config *c, const char *mn) {
	if (c->dim == 0)
		return rva__fail(RVA_ERANGE, "%s: dim must be > 0", mn);
	/* Scratch and job-memory sizes multiply dim by tile sizes (up to 2^28) and counts:
	 * bounded so that none of those products can overflow. */
	if (c->dim > RVA__MAX_DIM)
		return rva__fail(RVA_EOVERFLOW, "%s: dim %zu exceeds 2^32 (the sizes computed from "
		                 "it would overflow)", mn, c->dim);
	if (c->dim % c->heads != 0)
		return rva__fail(RVA_EDIM, "%s: %zu heads do not divide dim %zu", mn, c->heads,
		                 c->dim);
	size_t kvh = c->kv_heads ? c->kv_heads : c->heads;
	if (c->heads % kvh != 0)
		return rva__fail(RVA_EDIM, "%s: kv_heads %zu does not divide heads %zu", mn, kvh,
		                 c->heads);
	/* A V head dim of its own (config.h): softmax mechanisms, output rows within 2^32. */
	size_t D = c->dim / c->heads;
	if (c->v_head_dim && c->v_head_dim != D && !is_softmax(c->mechanism))
		return rva__fail(RVA_EINVAL, "%s: v_head_dim %zu != head_dim %zu needs a softmax "
		                 "mechanism (scaled_dot, multi_head, flash, local_global)", mn,
		                 c->v_head_dim, D);
	if (c->v_head_dim > RVA__MAX_DIM / c->heads)
		return rva__fail(RVA_EOVERFLOW, "%s: %zu heads x v_head_dim %zu exceed 2^32", mn,
		                 c->heads, c->v_head_dim);
	if (c->scale < 0.0f)
		return rva__fail(RVA_ERANGE, "%s: scale %g must be >= 0 (0 = 1/sqrt(d))", mn,
		                 (double)c->scale);
	if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
		return rva__fail(RVA_ERANGE, "%s: dropout %g outside [0, 1)", mn, (double)c->dropout);
	/* Tiles live in per-worker scratch: bounded so their sizes cannot overflow. */
	if (c->block_size > RVA__MAX_BLOCK)
		return rva__fail(RVA_ERANGE, "%s: block_size %zu exceeds %d", mn, c->block_size,
		                 RVA__MAX_BLOCK);
	if (c->query_block > RVA__MAX_QUERY_BLOCK)
		return rva__fail(RVA_ERANGE, "%s: query_block %zu exceeds %d", mn, c->query_block,
		                 RVA__MAX_QUERY_BLOCK);
	return RVA_OK;
}

/* The local-global window and the global positions (the list is copied whatever the
 * mechanism, so it is checked whatever the mechanism). */
static rva_status validate_local_global(const rva_config *c, const char *mn) {
	if (c->mechanism == RVA_MECH_LOCAL_GLOBAL && c->window % 2 != 0)
		return rva__fail(RVA_ERANGE, "local_global: window %zu must be even (window/2 keys "
		                 "each side)", c->window);
	if (c->n_global_indices > 0 && !c->global_indices)
		return rva__fail(RVA_ENULL, "%s: n_global_indices is %zu but global_indices is NULL",
		                 mn, c->n_global_indices);
	/* Key positions are below 2^32 - 1 (nk <= 2^32 - 1): a larger index names no token of
	 * any sequence. The count is bounded by the array the caller hands in. */
	if (c->n_global_indices > 0 && c->n_global_indices <= SIZE_MAX / sizeof(size_t))
		for (size_t i = 0; i < c->n_global_indices; i++)
			if (c->global_indices[i] >= UINT32_MAX)
				return rva__fail(RVA_ERANGE, "%s: global_indices[%zu] = %zu is beyond any "
				                 "sequence (positions are below 2^32 - 1)", mn, i,
				                 c->global_indices[i]);
	return RVA_OK;
}

/* Linear attention, and MoE configs with linear experts. */
static rva_status validate_linear(const rva_config *c, const char *mn) {
	if (c->mechanism != RVA_MECH_LINEAR && !moe_uses(c, RVA_EXPERTS_LINEAR))
		return RVA_OK;
	/* Drawing m features costs O(m * head_dim * min(m, head_dim)) at build and every row
	 * O(m * head_dim): bounded, so a typo cannot run for hours. */
	if (c->features > RVA__MAX_FEATURES && c->feature_map != RVA_FEATURES_ELU)
		return rva__fail(RVA_ERANGE, "%s: features %zu exceeds %d", mn, c->features,
		                 RVA__MAX_FEATURES);
	return RVA_OK;
}

/* Hyperbolic attention, and MoE configs with hyperbolic experts. */
static rva_status validate_hyperbolic(const rva_config *c, const char *mn) {
	if (c->mechanism != RVA_MECH_HYPERBOLIC && !moe_uses(c, RVA_EXPERTS_HYPERBOLIC))
		return RVA_OK;
	if (!(c->curvature < 0.0f))
		return rva__fail(RVA_ERANGE, "%s: curvature %g must be < 0 (Poincare ball)", mn,
		                 (double)c->curvature);
	if (!(c->temperature > 0.0f))
		return rva__fail(RVA_ERANGE, "%s: temperature %g must be > 0", mn,
		                 (double)c->temperature);
	if (c->aggregation == RVA_AGG_FRECHET &&
	    (c->frechet_max_iter > RVA__MAX_FRECHET_ITER || !(c->frechet_tol >= 0.0f)))
		return rva__fail(RVA_ERANGE, "%s: Frechet mean needs max_iter in [1, %d] (got %zu) "
		                 "and tol >= 0 (got %g)", mn, RVA__MAX_FRECHET_ITER,
		                 c->frechet_max_iter, (double)c->frechet_tol);
	return RVA_OK;
}

/* Experts, routing and capacity of an MoE config. */
static rva_status validate_moe(const rva_config *c) {
	if (c->mechanism != RVA_MECH_MOE)
		return RVA_OK;
	if (c->experts > RVA_MOE_MAX_EXPERTS)
		return rva__fail(RVA_ERANGE, "moe: experts %zu outside [1, %d]", c->experts,
		                 RVA_MOE_MAX_EXPERTS);
	if (c->top_k > c->experts)
		return rva__fail(RVA_ERANGE, "moe: top_k %zu outside [1, experts = %zu]", c->top_k,
		                 c->experts);
	if (!(c->expert_capacity >= 0.0f))
		return rva__fail(RVA_ERANGE, "moe: expert_capacity %g must be >= 0",
		                 (double)c->expert_capacity);
	if (!(c->jitter_noise >= 0.0f && c->jitter_noise < 1.0f))
		return rva__fail(RVA_ERANGE, "moe: jitter_noise %g outside [0, 1)",
		                 (double)c->jitter_noise);
	return RVA_OK;
}

/* The T5 position bias: a softmax mechanism, and buckets that the bucket function can use. */
static rva_status validate_bias(const rva_config *c, const char *mn) {
	if (c->bias != RVA_BIAS_T5)
		return RVA_OK;
	if (!is_softmax(c->mechanism) && c->mechanism != RVA_MECH_MOE)
		return rva__fail(RVA_EINVAL, "%s: T5 position bias needs a softmax mechanism", mn);
	/* The sparse patterns force causal (decoder buckets). */
	bool causal = c->causal || c->pattern != RVA_PATTERN_DENSE;
	if (c->bias_buckets > 65535 || c->bias_max_distance > ((size_t)1 << 24))
		return rva__fail(RVA_ERANGE, "%s: bias_buckets %zu (max 65535) or bias_max_distance "
		                 "%zu (max 2^24) too large", mn, c->bias_buckets,
		                 c->bias_max_distance);
	size_t nb = causal ? c->bias_buckets : c->bias_buckets / 2;
	if (nb < 2)
		return rva__fail(RVA_ERANGE, "%s: bias_buckets %zu too small (needs >= %d)", mn,
		                 c->bias_buckets, causal ? 2 : 4);
	if (c->bias_max_distance <= nb / 2)
		return rva__fail(RVA_ERANGE, "%s: bias_max_distance %zu must exceed %zu", mn,
		                 c->bias_max_distance, nb / 2);
	return RVA_OK;
}

/* The strided and fixed sparse patterns apply to the plain softmax mechanisms; the fixed
 * pattern's summary fits in its blocks. */
static rva_status validate_pattern(const rva_config *c, const char *mn) {
	if (c->pattern != RVA_PATTERN_DENSE &&
	    (!is_softmax(c->mechanism) || c->mechanism == RVA_MECH_LOCAL_GLOBAL))
		return rva__fail(RVA_EINVAL, "%s: the %s sparse pattern needs scaled_dot, "
		                 "multi_head or flash", mn,
		                 c->pattern == RVA_PATTERN_STRIDED ? "strided" : "fixed");
	if (c->pattern == RVA_PATTERN_FIXED && c->sparse_summary > c->sparse_stride)
		return rva__fail(RVA_ERANGE, "%s: sparse_summary %zu exceeds sparse_stride %zu (the "
		                 "summary positions are the last ones of each block)", mn,
		                 c->sparse_summary, c->sparse_stride);
	return RVA_OK;
}

/* The score modifiers (config.h): softmax mechanisms only, a window's counts only with its
 * switch, slopes only with ALiBi, softcap >= 0. */
static rva_status validate_score_mods(const rva_config *c, const char *mn) {
	const char *set = c->causal_align != RVA_CAUSAL_BOTTOM_RIGHT ? "causal_align"
	                  : c->sliding_window                        ? "sliding_window"
	                  : c->softcap != 0.0f                       ? "softcap"
	                  : c->alibi                                 ? "alibi"
	                                                             : NULL;
	if (set && !is_softmax(c->mechanism))
		return rva__fail(RVA_EINVAL, "%s: %s is a score modifier of the softmax mechanisms "
		                 "(scaled_dot, multi_head, flash, local_global)", mn, set);
	if (!c->sliding_window && (c->window_left || c->window_right))
		return rva__fail(RVA_EINVAL, "%s: window_left %zu / window_right %zu set without "
		                 "sliding_window (0 is a real window count; set sliding_window)", mn,
		                 c->window_left, c->window_right);
	if (c->alibi_slopes && !c->alibi)
		return rva__fail(RVA_EINVAL, "%s: alibi_slopes given without alibi", mn);
	if (c->softcap < 0.0f)
		return rva__fail(RVA_ERANGE, "%s: softcap %g must be >= 0 (0 = off)", mn,
		                 (double)c->softcap);
	return RVA_OK;
}

/* RoPE (config.h): softmax mechanisms only; its values only with it; theta and the factor
 * positive; rope_dim even and within the head (head_dim = dim / heads, checked by
 * validate_shape). */
static rva_status validate_rope(const rva_config *c, const char *mn) {
	if (c->rope == RVA_ROPE_NONE) {
		const char *set = c->rope_theta != 0.0f                     ? "rope_theta"
		                  : c->rope_scaling != RVA_ROPE_SCALING_NONE ? "rope_scaling"
		                  : c->rope_factor != 0.0f                   ? "rope_factor"
		                  : c->rope_dim                              ? "rope_dim"
		                                                             : NULL;
		if (set)
			return rva__fail(RVA_EINVAL, "%s: %s set without rope (set rope to "
			                 "RVA_ROPE_NEOX or RVA_ROPE_GPTJ)", mn, set);
		return RVA_OK;
	}
	if (!is_softmax(c->mechanism))
		return rva__fail(RVA_EINVAL, "%s: rope applies to the softmax mechanisms "
		                 "(scaled_dot, multi_head, flash, local_global)", mn);
	if (!(c->rope_theta > 0.0f))
		return rva__fail(RVA_ERANGE, "%s: rope_theta %g must be > 0 (0 = 10000)", mn,
		                 (double)c->rope_theta);
	if (c->rope_scaling == RVA_ROPE_SCALING_NONE && c->rope_factor != 0.0f)
		return rva__fail(RVA_EINVAL, "%s: rope_factor %g set without rope_scaling (linear "
		                 "or ntk)", mn, (double)c->rope_factor);
	if (c->rope_scaling != RVA_ROPE_SCALING_NONE && !(c->rope_factor > 0.0f))
		return rva__fail(RVA_ERANGE, "%s: rope_factor %g must be > 0 (0 = 1)", mn,
		                 (double)c->rope_factor);
	size_t hd = c->dim / c->heads;
	if (c->rope_dim % 2 != 0)
		return rva__fail(RVA_EINVAL, "%s: rope_dim %zu is odd (RoPE turns pairs of "
		                 "elements)", mn, c->rope_dim);
	if (c->rope_dim > hd)
		return rva__fail(RVA_ERANGE, "%s: rope_dim %zu exceeds head_dim %zu", mn, c->rope_dim,
		                 hd);
	size_t rd = c->rope_dim ? c->rope_dim : hd & ~(size_t)1;
	if (c->rope_scaling == RVA_ROPE_SCALING_NTK && rd < 4)
		return rva__fail(RVA_ERANGE, "%s: NTK scaling needs rope_dim >= 4 (its exponent is "
		                 "rope_dim / (rope_dim - 2)), rope_dim is %zu", mn, rd);
	return RVA_OK;
}

/* Validates every field that matters for c->mechanism, zero defaults already resolved
 * (resolve_zero_defaults): the first failing check sets the error. */
static rva_status validate_config(const rva_config *c) {
	if ((unsigned)c->mechanism >= RVA_MECH_COUNT)
		return rva__fail(RVA_EINVAL, "invalid mechanism value %d", (int)c->mechanism);
	const char *mn = rva_mechanism_name(c->mechanism);
	rva_status st;
	if ((st = validate_floats(c, mn)) != RVA_OK || (st = validate_enums(c, mn)) != RVA_OK ||
	    (st = validate_shape(c, mn)) != RVA_OK ||
	    (st = validate_local_global(c, mn)) != RVA_OK ||
	    (st = validate_linear(c, mn)) != RVA_OK ||
	    (st = validate_hyperbolic(c, mn)) != RVA_OK || (st = validate_moe(c)) != RVA_OK ||
	    (st = validate_bias(c, mn)) != RVA_OK || (st = validate_pattern(c, mn)) != RVA_OK ||
	    (st = validate_score_mods(c, mn)) != RVA_OK || (st = validate_rope(c, mn)) != RVA_OK)
		return st;
	return RVA_OK;
}

static rva_status copy_floats(float **dst, const float *src, size_t n, size_t m,
                              const char *what) {
	*dst = NULL;
	if (!src)
		return RVA_OK;
	size_t count;
	if (!rva__mul_ok(n, m, &count))
		return rva__fail(RVA_EOVERFLOW, "%s: %zu x %zu overflows", what, n, m);
	rva_status st = rva__alloc_array((void **)dst, count, sizeof(float), what);
	if (st != RVA_OK)
		return st;
	memcpy(*dst, src, count * sizeof(float));
	return RVA_OK;
}

rva_status rva_attention_retain(rva_attention *att) {
	if (!att)
		return rva__fail(RVA_ENULL, "rva_attention_retain: att is NULL");
	/* Relaxed: the caller already holds a reference, so the count cannot reach 0 now. */
	atomic_fetch_add_explicit(&att->refs, 1, memory_order_relaxed);
	return RVA_OK;
}

/* Frees the attention and what it owns (the last reference is gone). */
static void free_attention(rva_attention *att) {
	if (att->ops && att->ops->destroy)
		att->ops->destroy(att);
	rva__free(att->global_indices);
	rva__free(att->feature_matrix);
	rva__free(att->router_weights);
	rva__free(att->bias_table);
	rva__free(att->alibi_slopes);
	rva__free(att);
}

rva_status rva_attention_release(rva_attention *att) {
	if (!att)
		return RVA_OK;
	/* Release: this holder's reads of att happen before the free; acquire (on the last
	 * reference): the free happens after every other holder's reads. */
	if (atomic_fetch_sub_explicit(&att->refs, 1, memory_order_acq_rel) == 1)
		free_attention(att);
	return RVA_OK;
}

rva_status rva_attention_destroy(rva_attention *att) { return rva_attention_release(att); }

rva_status rva_build(const rva_config *cfg, rva_attention **out) {
	if (!cfg || !out)
		return rva__fail(RVA_ENULL, "rva_build: %s is NULL", !cfg ? "cfg" : "out");
	rva_config resolved = *cfg;
	resolve_zero_defaults(&resolved);
	rva_status st = validate_config(&resolved);
	if (st != RVA_OK)
		return st;
	rva_attention *att = rva__calloc(1, sizeof *att);
	if (!att)
		return rva__fail(RVA_ENOMEM, "rva_build: cannot allocate the attention");
	atomic_init(&att->refs, 1);
	att->cfg = resolved;
	rva_config *c = &att->cfg;
	att->ops = ops_for(c->mechanism);
	att->head_dim = c->dim / c->heads;
	att->kv_heads = c->kv_heads ? c->kv_heads : c->heads;
	c->kv_heads = att->kv_heads;
	att->kv_dim = att->kv_heads * att->head_dim;
	att->v_head_dim = c->v_head_dim ? c->v_head_dim : att->head_dim;
	c->v_head_dim = att->v_head_dim;
	att->v_dim = att->kv_heads * att->v_head_dim;
	att->out_dim = c->heads * att->v_head_dim;
	att->scale = c->scale > 0.0f ? c->scale : 1.0f / sqrtf((float)att->head_dim);
	c->scale = att->scale;
	if (c->pattern != RVA_PATTERN_DENSE)
		c->causal = true;
	if (c->rope != RVA_ROPE_NONE && c->rope_dim == 0)
		c->rope_dim = att->head_dim & ~(size_t)1;

	/* Copy the borrowed arrays so the attention owns everything it reads. */
	if (c->n_global_indices > 0) {
		st = rva__alloc_array((void **)&att->global_indices, c->n_global_indices,
		                      sizeof(size_t), "global_indices");
		if (st != RVA_OK)
			goto fail;
		memcpy(att->global_indices, cfg->global_indices,
		       c->n_global_indices * sizeof(size_t));
	}
	c->global_indices = att->global_indices;
	if ((st = copy_floats(&att->feature_matrix, cfg->feature_matrix, c->features,
	                      att->head_dim, "feature_matrix")) != RVA_OK)
		goto fail;
	c->feature_matrix = att->feature_matrix;
	/* MoE copies and checks its router and expert weights itself (moe.c); the other
	 * mechanisms have none. */
	if (c->mechanism != RVA_MECH_MOE) {
		c->router_weights = NULL;
		c->expert_wq = c->expert_wo = c->expert_wk = c->expert_wv = (rva_matrix_list){0};
	}
	if ((st = copy_floats(&att->bias_table, cfg->bias_table, c->bias_buckets, c->heads,
	                      "bias_table")) != RVA_OK)
		goto fail;
	if (att->bias_table)
		for (size_t i = 0; i < c->bias_buckets * c->heads; i++)
			if (!isfinite(att->bias_table[i])) {
				st = rva__fail(RVA_ERANGE, "%s: bias_table[%zu][%zu] = %g is not finite",
				               rva_mechanism_name(c->mechanism), i / c->heads, i % c->heads,
				               (double)att->bias_table[i]);
				goto fail;
			}
	c->bias_table = att->bias_table;
	if (c->alibi) {
		if ((st = rva__alibi_slopes(c->heads, cfg->alibi_slopes, &att->alibi_slopes)) != RVA_OK)
			goto fail;
	}
	c->alibi_slopes = att->alibi_slopes;
	if (att->ops->build && (st = att->ops->build(att)) != RVA_OK)
		goto fail;
	*out = att;
	return RVA_OK;
fail:
	free_attention(att);
	return st;
}

rva_status rva__build_variant(const rva_config *base, rva_mechanism m, rva_attention **out) {
	rva_config c = *base;
	c.mechanism = m;
	c.router_weights = NULL;
	if (m != RVA_MECH_LINEAR)
		c.feature_matrix = NULL;
	if (m == RVA_MECH_LINEAR || m == RVA_MECH_HYPERBOLIC) {
		c.bias = RVA_BIAS_NONE;
		c.bias_table = NULL;
	}
	return rva_build(&c, out);
}

rva_status rva_attention_config(const rva_attention *att, rva_config *out) {
	if (!att || !out)
		return rva__fail(RVA_ENULL, "rva_attention_config: NULL argument");
	*out = att->cfg;
	return RVA_OK;
}

rva_runtime rva__runtime_or_default(const rva_runtime *rt) {
	if (rt)
		return *rt;
	return (rva_runtime){.training = false, .seed = 0, .step = 0, .moe_stats = NULL};
}

void rva__normalise_seq(const rva_attention *att, const rva_seq *in, rva_seq *out) {
	*out = *in;
	if (!out->q_stride)
		out->q_stride = att->cfg.dim;
	if (!out->k_stride)
		out->k_stride = att->kv_dim;
	if (!out->v_stride)
		out->v_stride = att->v_dim;
	if (!out->out_stride)
		out->out_stride = att->out_dim;
	if (out->lse && !out->lse_head_stride)
		out->lse_head_stride = out->nq;
	if (out->bias && !out->bias_stride)
		out->bias_stride = out->nk;
	if (out->mask && !out->mask_stride)
		out->mask_stride = out->nk;
}

static rva_status check_extent(size_t rows, size_t stride, size_t width, rva_dtype t,
                               const char *what, size_t index) {
	size_t span;
	if (rows && (!rva__mul_ok(rows - 1, stride, &span) || !rva__add_ok(span, width, &span) ||
	             !rva__mul_ok(span, rva__dtype_size(t), &span)))
		return rva__fail(RVA_EOVERFLOW, "sequence %zu: %s extent of %zu rows x stride %zu "
		                 "overflows", index, what, rows, stride);
	return RVA_OK;
}

/* The bytes a strided matrix covers: rows of `width` bytes, `stride` bytes apart. Its
 * extent was checked not to overflow (check_extent). */
typedef struct byte_span {
	uintptr_t lo, hi;   /* [lo, hi) from the first byte of the first row to the end of the
	                     * last row */
	size_t rows, stride, width;
} byte_span;

static byte_span span_of(const void *p, size_t rows, size_t stride_elems, size_t width_elems,
                         size_t elem) {
	byte_span b = {.lo = (uintptr_t)p, .rows = rows, .stride = stride_elems * elem,
	               .width = width_elems * elem};
	size_t bytes = rows ? (rows - 1) * b.stride + b.width : 0;
	b.hi = b.lo + bytes < b.lo ? UINTPTR_MAX : b.lo + bytes;
	return b;
}

/* Whether two strided matrices may share a byte. Exact "no" for disjoint address ranges,
 * and for matrices with the same row stride whose columns sit in disjoint bands of each
 * row (an output interleaved with its inputs in one [rows, q | out] buffer); every other
 * case of intersecting ranges counts as an overlap (conservative). */
static bool spans_overlap(const byte_span *a, const byte_span *b) {
	if (a->lo >= b->hi || b->lo >= a->hi || a->lo == a->hi || b->lo == b->hi || !a->lo ||
	    !b->lo) /* empty, or no matrix (a paged sequence's K and V: validate_seq) */
		return false;
	if (a->rows > 1 && b->rows > 1 && a->stride != b->stride)
		return true;
	if (a->rows <= 1 && b->rows <= 1)
		return true;
	size_t S = a->rows > 1 ? a->stride : b->stride;
	if (S == 0 || a->width > S || b->width > S)
		return true;
	/* Bytes of a lie at offsets [0, a->width) modulo S from a->lo; those of b at
	 * [d, d + b->width) with d = (b->lo - a->lo) mod S. */
	size_t d = b->lo >= a->lo ? (size_t)((b->lo - a->lo) % S)
	                          : (size_t)((S - (a->lo - b->lo) % S) % S);
	return !(d >= a->width && d + b->width <= S);
}

/* Elements spanned by a score matrix of seq ([heads][nq][nk] at h * head_stride +
 * i * stride + j), its size checked by check_scores first. */
static size_t score_extent(const rva_attention *att, const rva_seq *s, size_t stride,
                           size_t head_stride) {
	return (att->cfg.heads - 1) * head_stride + (s->nq - 1) * stride + s->nk;
}

/* The sequence's additive bias or boolean mask (batch.h): a stride only with its matrix,
 * rows at least nk wide, the extent within size_t. */
static rva_status check_scores(const rva_attention *att, const rva_seq *s, const void *p,
                               size_t stride, size_t head_stride, size_t elem, const char *what,
                               size_t index) {
	if (!p) {
		if (stride || head_stride)
			return rva__fail(RVA_EINVAL, "sequence %zu: %s stride %zu / head stride %zu given "
			                 "without a %s", index, what, stride, head_stride, what);
		return RVA_OK;
	}
	if (stride < s->nk)
		return rva__fail(RVA_EDIM, "sequence %zu: %s stride %zu is narrower than nk %zu", index,
		                 what, stride, s->nk);
	size_t a, b, n;
	if (!rva__mul_ok(att->cfg.heads - 1, head_stride, &a) ||
	    !rva__mul_ok(s->nq - 1, stride, &b) || !rva__add_ok(a, b, &n) ||
	    !rva__add_ok(n, s->nk, &n) || !rva__mul_ok(n, elem, &n))
		return rva__fail(RVA_EOVERFLOW, "sequence %zu: %s extent of %zu heads x %zu rows "
		                 "(head stride %zu, stride %zu) overflows", index, what,
		                 att->cfg.heads, s->nq, head_stride, stride);
	return RVA_OK;
}

/*
 * One tensor of a sequence (batch.h): `rows` rows of `heads` heads of `width` elements,
 * element (i, h, d) at i * rs + h * hs + d (hs already resolved: never 0).
 */
typedef struct tensor_layout {
	size_t rows, heads, width, rs, hs;
} tensor_layout;

/* Elements from the first to the last element of t plus one, or false on overflow. */
static bool tensor_extent(const tensor_layout *t, size_t *n) {
	size_t a = 0, b = 0;
	if (!t->rows || !t->heads) {
		*n = 0;
		return true;
	}
	return rva__mul_ok(t->rows - 1, t->rs, &a) && rva__mul_ok(t->heads - 1, t->hs, &b) &&
	       rva__add_ok(a, b, n) && rva__add_ok(*n, t->width, n);
}

/* Whether heads sit side by side within rows (A: hs >= width, rs past the last head) or
 * rows stack within heads (B, [B, H, S, D]: rs >= width, hs past the last row): in either,
 * no two (row, head) slices share an element. One row constrains no row stride and one
 * head no head stride. */
static bool layout_heads_in_rows(const tensor_layout *t) {
	size_t last;
	return t->hs >= t->width &&
	       (t->rows <= 1 || (rva__mul_ok(t->heads - 1, t->hs, &last) &&
	                         rva__add_ok(last, t->width, &last) && t->rs >= last));
}

static bool layout_rows_in_heads(const tensor_layout *t) {
	size_t last;
	return t->rs >= t->width &&
	       (t->heads <= 1 || (rva__mul_ok(t->rows - 1, t->rs, &last) &&
	                          rva__add_ok(last, t->width, &last) && t->hs >= last));
}

/* Refuses a tensor whose (row, head) slices overlap (RVA_EDIM) or whose extent in bytes
 * overflows size_t (RVA_EOVERFLOW). */
static rva_status check_tensor(const tensor_layout *t, rva_dtype type, const char *what,
                               size_t index) {
	if (!t->rows)
		return RVA_OK;
	if (!layout_heads_in_rows(t) && !layout_rows_in_heads(t)) {
		if (t->hs == t->width) /* packed heads: the row stride is too narrow */
			return rva__fail(RVA_EDIM, "sequence %zu: %s stride %zu is narrower than its row "
			                 "(%zu heads x %zu = %zu elements)", index, what, t->rs, t->heads,
			                 t->width, t->heads * t->width);
		return rva__fail(RVA_EDIM, "sequence %zu: %s rows and heads overlap (row stride %zu, "
		                 "head stride %zu, %zu rows x %zu heads of %zu elements): heads must "
		                 "sit side by side within rows or rows within heads ([B, H, S, D])",
		                 index, what, t->rs, t->hs, t->rows, t->heads, t->width);
	}
	size_t n;
	if (!tensor_extent(t, &n) || !rva__mul_ok(n, rva__dtype_size(type), &n))
		return rva__fail(RVA_EOVERFLOW, "sequence %zu: %s extent of %zu rows x stride %zu "
		                 "(%zu heads x head stride %zu) overflows", index, what, t->rows,
		                 t->rs, t->heads, t->hs);
	return RVA_OK;
}

/* The bytes of a tensor as a strided matrix (checked by check_tensor): its rows, each as
 * wide as its heads' span, when heads sit within rows; its heads, each as wide as its
 * rows' span, when rows sit within heads. */
static byte_span tensor_span(const void *p, const tensor_layout *t, size_t elem) {
	if (t->rows <= 1)
		return span_of(p, t->rows ? t->heads : 0, t->hs, t->width, elem);
	if (t->heads <= 1 || layout_heads_in_rows(t))
		return span_of(p, t->rows, t->rs, (t->heads - 1) * t->hs + t->width, elem);
	return span_of(p, t->heads, t->hs, (t->rows - 1) * t->rs + t->width, elem);
}

/* The layouts of q, k, v and out of a sequence (strides normalised). */
static void seq_layouts(const rva_attention *att, const rva_seq *s, tensor_layout *q,
                        tensor_layout *k, tensor_layout *v, tensor_layout *o) {
	size_t H = att->cfg.heads, KH = att->kv_heads, D = att->head_dim, Dv = att->v_head_dim;
	*q = (tensor_layout){s->nq, H, D, s->q_stride, rva__head_stride(s->q_head_stride, D)};
	*k = (tensor_layout){s->nk, KH, D, s->k_stride, rva__head_stride(s->k_head_stride, D)};
	*v = (tensor_layout){s->nk, KH, Dv, s->v_stride, rva__head_stride(s->v_head_stride, Dv)};
	*o = (tensor_layout){s->nq, H, Dv, s->out_stride,
	                     rva__head_stride(s->out_head_stride, Dv)};
}

bool rva__seq_head_strided(const rva_attention *att, const rva_seq *s) {
	size_t D = att->head_dim, Dv = att->v_head_dim;
	return rva__head_stride(s->q_head_stride, D) != D ||
	       rva__head_stride(s->k_head_stride, D) != D ||
	       rva__head_stride(s->v_head_stride, Dv) != Dv ||
	       rva__head_stride(s->out_head_stride, Dv) != Dv;
}

/* Refuses an output that shares memory with the sequence's inputs (the numbers would be
 * wrong: tiles read inputs after other tiles wrote outputs). */
static rva_status check_aliasing(const rva_attention *att, const rva_seq *s, size_t index) {
	tensor_layout tq, tk, tv, to;
	seq_layouts(att, s, &tq, &tk, &tv, &to);
	byte_span out = tensor_span(s->out, &to, rva__dtype_size(s->out_dtype));
	/* The score matrices: their whole extent, as one row (conservative). */
	size_t bias_n = s->bias ? score_extent(att, s, s->bias_stride, s->bias_head_stride) : 0;
	size_t mask_n = s->mask ? score_extent(att, s, s->mask_stride, s->mask_head_stride) : 0;
	byte_span in[6] = {tensor_span(s->q, &tq, rva__dtype_size(s->q_dtype)),
	                   tensor_span(s->k, &tk, rva__dtype_size(s->k_dtype)),
	                   tensor_span(s->v, &tv, rva__dtype_size(s->v_dtype)),
	                   span_of(s->key_mask, s->key_mask ? 1 : 0, s->nk, s->nk, 1),
	                   span_of(s->bias, s->bias ? 1 : 0, bias_n, bias_n, sizeof(float)),
	                   span_of(s->mask, s->mask ? 1 : 0, mask_n, mask_n, 1)};
	static const char *const names[6] = {"query", "key", "value", "key mask", "bias", "mask"};
	for (int i = 0; i < 6; i++)
		if (spans_overlap(&out, &in[i]))
			return rva__fail(RVA_EINVAL, "sequence %zu: the output overlaps the %s (outputs "
			                 "must not share memory with inputs)", index, names[i]);
	if (s->lse) {
		byte_span lse = span_of(s->lse, att->cfg.heads, s->lse_head_stride, s->nq,
		                        sizeof(float));
		if (spans_overlap(&lse, &out))
			return rva__fail(RVA_EINVAL, "sequence %zu: lse overlaps the output", index);
		for (int i = 0; i < 4; i++)
			if (spans_overlap(&lse, &in[i]))
				return rva__fail(RVA_EINVAL, "sequence %zu: lse overlaps the %s (outputs must "
				                 "not share memory with inputs)", index, names[i]);
	}
	return RVA_OK;
}

/* The log-sum-exp output (batch.h): softmax mechanisms only; [heads][nq] floats with
 * lse_head_stride (normalised) between heads. */
static rva_status check_lse(const rva_attention *att, const rva_seq *s, size_t index) {
	if (!s->lse) {
		if (s->lse_head_stride)
			return rva__fail(RVA_EINVAL, "sequence %zu: lse_head_stride is %zu but lse is NULL",
			                 index, s->lse_head_stride);
		return RVA_OK;
	}
	if (!is_softmax(att->cfg.mechanism))
		return rva__fail(RVA_EINVAL, "sequence %zu: rva_seq.lse is written by the softmax "
		                 "mechanisms (scaled_dot, multi_head, flash, local_global), not %s",
		                 index, rva_mechanism_name(att->cfg.mechanism));
	size_t H = att->cfg.heads;
	if (H > 1 && s->lse_head_stride < s->nq)
		return rva__fail(RVA_EDIM, "sequence %zu: lse_head_stride %zu is below nq %zu (heads "
		                 "would overlap)", index, s->lse_head_stride, s->nq);
	return check_extent(H, s->lse_head_stride, s->nq, RVA_F32, "lse", index);
}

/* The rva_seq extras (batch.h) a build implements: a field appears here until its feature
 * exists; a descriptor using one is refused, never silently computed without it. */
rva_status rva__seq_extras_supported(const rva_attention *att, const rva_seq *s,
                                     size_t index) {
	if ((s->bias || s->mask) && !is_softmax(att->cfg.mechanism))
		return rva__fail(RVA_EINVAL, "sequence %zu: rva_seq.%s needs a softmax mechanism "
		                 "(scaled_dot, multi_head, flash, local_global), not %s", index,
		                 s->bias ? "bias" : "mask", rva_mechanism_name(att->cfg.mechanism));
	if ((s->q_pos || s->k_pos) && att->cfg.rope == RVA_ROPE_NONE)
		return rva__fail(RVA_EINVAL, "sequence %zu: rva_seq.%s is a RoPE position offset, "
		                 "the attention has no rope", index, s->q_pos ? "q_pos" : "k_pos");
	/* RoPE positions below 2^48 (batch.h); nq, nk < 2^32 are checked with the rows */
	if (s->q_pos >= ((size_t)1 << 47) || s->k_pos >= ((size_t)1 << 47))
		return rva__fail(RVA_ERANGE, "sequence %zu: rva_seq.%s %zu is beyond the RoPE "
		                 "positions (below 2^48)", index,
		                 s->q_pos >= ((size_t)1 << 47) ? "q_pos" : "k_pos",
		                 s->q_pos >= ((size_t)1 << 47) ? s->q_pos : s->k_pos);
	if (rva__seq_head_strided(att, s) && !is_softmax(att->cfg.mechanism))
		return rva__fail(RVA_EINVAL, "sequence %zu: head strides (rva_seq.q_head_stride, ...) "
		                 "need a softmax mechanism (scaled_dot, multi_head, flash, "
		                 "local_global), not %s", index, rva_mechanism_name(att->cfg.mechanism));
	for (size_t i = 0; i < sizeof s->reserved / sizeof s->reserved[0]; i++)
		if (s->reserved[i])
			return rva__fail(RVA_EINVAL, "sequence %zu: rva_seq.reserved[%zu] is not zero",
			                 index, i);
	return RVA_OK;
}

/* paged: K and V live in a cache's pages (kv_pages.h): their pointers are page 0's, their
 * extents and aliasing are the cache's to check. */
static rva_status validate_seq(const rva_attention *att, const rva_seq *s, size_t index,
                               bool paged) {
	const rva_dtype types[4] = {s->q_dtype, s->k_dtype, s->v_dtype, s->out_dtype};
	static const char *const tnames[4] = {"query", "key", "value", "output"};
	for (int i = 0; i < 4; i++)
		if (!rva__dtype_size(types[i]))
			return rva__fail(RVA_EINVAL, "sequence %zu: %s element type %d is not an "
			                 "rva_dtype (RVA_F32, RVA_BF16, RVA_F16)", index, tnames[i],
			                 (int)types[i]);
	rva_status st = rva__seq_extras_supported(att, s, index);
	if (st != RVA_OK)
		return st;
	if (s->nq == 0)
		return RVA_OK;
	if (!s->q || !s->out)
		return rva__fail(RVA_ENULL, "sequence %zu: %s pointer is NULL", index,
		                 !s->q ? "query" : "output");
	if (s->nk == 0)
		return rva__fail(RVA_EEMPTY, "sequence %zu has %zu queries but no keys", index, s->nq);
	if (!s->k || !s->v)
		return rva__fail(RVA_ENULL, "sequence %zu: %s pointer is NULL", index,
		                 !s->k ? "key" : "value");
	if (s->nq > UINT32_MAX || s->nk > UINT32_MAX)
		return rva__fail(RVA_ERANGE, "sequence %zu: %zu queries / %zu keys exceed 2^32-1",
		                 index, s->nq, s->nk);
	tensor_layout tq, tk, tv, to;
	seq_layouts(att, s, &tq, &tk, &tv, &to);
	if ((st = check_tensor(&tq, s->q_dtype, "query", index)) != RVA_OK ||
	    (st = check_tensor(&to, s->out_dtype, "output", index)) != RVA_OK ||
	    (!paged && ((st = check_tensor(&tk, s->k_dtype, "key", index)) != RVA_OK ||
	                (st = check_tensor(&tv, s->v_dtype, "value", index)) != RVA_OK)))
		return st;
	if ((st = check_lse(att, s, index)) != RVA_OK ||
	    (st = check_scores(att, s, s->bias, s->bias_stride, s->bias_head_stride, sizeof(float),
	                       "bias", index)) != RVA_OK ||
	    (st = check_scores(att, s, s->mask, s->mask_stride, s->mask_head_stride, 1, "mask",
	                       index)) != RVA_OK)
		return st;
	if (paged) {
		rva_seq qo = *s; /* the query and the key mask only */
		qo.k = qo.v = NULL;
		return check_aliasing(att, &qo, index);
	}
	return check_aliasing(att, s, index);
}

rva_status rva__validate_seq(const rva_attention *att, const rva_seq *s, size_t index) {
	return validate_seq(att, s, index, false);
}

static void set_detail(rva__plan_io *io, size_t s) {
	if (io->details && !io->details[s])
		io->details[s] = rva__strdup(rva_last_error());
}

/* The per-call knobs of rva_runtime that apply to attention: the scale (attention.h). */
static rva_status check_runtime(const rva_attention *att, const rva_runtime *rt) {
	if (!isfinite(rt->scale) || rt->scale < 0.0f)
		return rva__fail(RVA_ERANGE, "rva_runtime.scale %g must be finite and >= 0 (0 = the "
		                 "config's scale)", (double)rt->scale);
	if (rt->scale != 0.0f && !is_softmax(att->cfg.mechanism))
		return rva__fail(RVA_EINVAL, "rva_runtime.scale applies to the softmax mechanisms "
		                 "(scaled_dot, multi_head, flash, local_global), not %s",
		                 rva_mechanism_name(att->cfg.mechanism));
	return RVA_OK;
}

rva_status rva__attention_plan(const rva_attention *att, rva__plan_io *io, rva__graph *g) {
	rva_status rst = check_runtime(att, &io->rt);
	for (size_t s = 0; s < io->nseq; s++) {
		if (io->seq_status[s] != RVA_OK)
			continue;
		bool paged = io->pages && rva__kv_paged(&io->pages[s]);
		rva_status st = rst != RVA_OK ? rst : validate_seq(att, &io->seqs[s], s, paged);
		if (st != RVA_OK) {
			io->seq_status[s] = st;
			set_detail(io, s);
		}
	}
	/* Mechanisms without half kernels compute on fp32 copies made by the job's tasks. */
	rva_status st = rva__half_needs_convert(att, io) ? rva__half_plan_converted(att, io, g)
	                                                 : att->ops->plan(att, io, g);
	if (st != RVA_OK)
		return st;
	for (size_t s = 0; s < io->nseq; s++)
		if (io->seq_status[s] == RVA_OK)
			g->flops += att->ops->flops(att, &io->seqs[s]);
	return RVA_OK;
}

rva_status rva__run_serial(rva__plan_fn plan, const void *op, const rva_seq *seqs, size_t n,
                           const rva_runtime *rt, rva_status *seq_status) {
	if (n > SIZE_MAX / sizeof(rva_seq)) /* the job's per-sequence arrays would overflow */
		return rva__fail(RVA_EOVERFLOW, "batch of %zu sequences overflows size_t", n);
	rva__graph g;
	rva__graph_init(&g, n);
	rva_status st = RVA_OK;
	uint32_t *done = rva__graph_alloc_array(&g, n ? n : 1, sizeof *done);
	rva_status *status = rva__graph_alloc_array(&g, n ? n : 1, sizeof *status);
	char **details = rva__graph_alloc_array(&g, n ? n : 1, sizeof *details);
	if (!done || !status || !details) {
		st = RVA_ENOMEM;
		goto out;
	}
	rva__plan_io io = {.seqs = seqs, .nseq = n, .rt = rva__runtime_or_default(rt),
	                   .after = NULL, .done = done, .seq_status = status,
	                   .details = details, .stream = 0};
	if ((st = plan(op, &io, &g)) != RVA_OK)
		goto out;
	st = rva__graph_run_serial(&g, status, details);
	/* Once the job is planned every sequence's status is handed out, as the engine does
	 * once it has accepted a job: also after a job-wide failure, which marks every
	 * sequence it kept from completing with its status (rva__graph_run_serial). */
	if (seq_status)
		memcpy(seq_status, status, n * sizeof *status);
	for (size_t s = 0; s < n && st == RVA_OK; s++) {
		if (status[s] == RVA_OK)
			continue;
		st = status[s];
		if (n > 1)
			rva__fail(st, "sequence %zu: %s", s, details[s] ? details[s] : rva_strerror(st));
		else
			rva__fail(st, "%s", details[s] ? details[s] : rva_strerror(st));
	}
out:
	if (details)
		for (size_t s = 0; s < n; s++)
			rva__free(details[s]);
	rva__graph_free(&g);
	return st;
}

/* Plans an attention over a caller's batch: descriptors normalised into the arena. */
static rva_status plan_caller_batch(const void *op, rva__plan_io *io, rva__graph *g) {
	const rva_attention *att = op;
	rva_seq *seqs = rva__graph_alloc_array(g, io->nseq ? io->nseq : 1, sizeof *seqs);
	if (!seqs)
		return RVA_ENOMEM;
	for (size_t s = 0; s < io->nseq; s++)
		rva__normalise_seq(att, &io->seqs[s], &seqs[s]);
	io->seqs = seqs;
	return rva__attention_plan(att, io, g);
}

rva_status rva__run_batch_serial(const rva_attention *att, const rva_batch *batch,
                                 const rva_runtime *rt, rva_status *seq_status) {
	return rva__run_serial(plan_caller_batch, att, batch->seqs, batch->count, rt, seq_status);
}

rva_status rva_compute_batch(const rva_attention *att, const rva_batch *batch,
                             const rva_runtime *rt, rva_status *seq_status) {
	if (!att || !batch)
		return rva__fail(RVA_ENULL, "rva_compute_batch: %s is NULL", !att ? "att" : "batch");
	if (batch->count && !batch->seqs)
		return rva__fail(RVA_ENULL, "rva_compute_batch: batch has %zu sequences but seqs is "
		                 "NULL", batch->count);
	return rva__run_batch_serial(att, batch, rt, seq_status);
}

rva_status rva__gather_kv(const char *who, const float *const *keys,
                          const float *const *values, size_t n_keys, size_t kv_dim,
                          size_t v_dim, float **kv) {
	if (n_keys == 0)
		return rva__fail(RVA_EEMPTY, "%s: no keys", who);
	if (!keys || !values)
		return rva__fail(RVA_ENULL, "%s: %s is NULL", who, !keys ? "keys" : "values");
	for (size_t i = 0; i < n_keys; i++)
		if (!keys[i] || !values[i])
			return rva__fail(RVA_ENULL, "%s: %s[%zu] is NULL", who,
			                 !keys[i] ? "keys" : "values", i);
	size_t width, row_bytes = kv_dim * sizeof(float), vrow_bytes = v_dim * sizeof(float);
	if (!rva__add_ok(kv_dim, v_dim, &width) || width > SIZE_MAX / sizeof(float))
		return rva__fail(RVA_EOVERFLOW, "%s: key/value rows of %zu + %zu floats overflow", who,
		                 kv_dim, v_dim);
	float *buf;
	rva_status st = rva__alloc_array((void **)&buf, n_keys, width * sizeof(float),
	                                 "key/value copy");
	if (st != RVA_OK)
		return st;
	float *kc = buf, *vc = buf + n_keys * kv_dim;
	for (size_t i = 0; i < n_keys; i++) {
		memcpy(kc + i * kv_dim, keys[i], row_bytes);
		memcpy(vc + i * v_dim, values[i], vrow_bytes);
	}
	*kv = buf;
	return RVA_OK;
}

/* The row stride (in floats) when rows[i] = rows[0] + i * stride for every i, with a
 * stride of at least `width` floats (rows never overlap); 0 when the rows are scattered.
 * One key has the stride `width`. */
static size_t even_stride(const float *const *rows, size_t n, size_t width) {
	if (n == 1)
		return width;
	uintptr_t base = (uintptr_t)rows[0], next = (uintptr_t)rows[1];
	if (next <= base || (next - base) % sizeof(float))
		return 0;
	size_t stride = (next - base) / sizeof(float);
	if (stride < width || (n - 1) > SIZE_MAX / (stride * sizeof(float)))
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((uintptr_t)rows[i] != base + i * stride * sizeof(float))
			return 0;
	return stride;
}

rva_status rva_compute_query(const rva_attention *att, const float *query,
                             const float *const *keys, const float *const *values,
                             const uint8_t *mask, size_t n_keys, float *out,
                             const rva_query_extras *x, const rva_runtime *rt) {
	if (x)
		for (size_t i = 0; i < sizeof x->reserved / sizeof x->reserved[0]; i++)
			if (x->reserved[i])
				return rva__fail(RVA_EINVAL, "rva_compute_query: extras reserved[%zu] is not "
				                 "zero", i);
	if (!att || !query || !out)
		return rva__fail(RVA_ENULL, "rva_compute: %s is NULL",
		                 !att ? "attention" : !query ? "query" : "out");
	if (n_keys == 0)
		return rva__fail(RVA_EEMPTY, "rva_compute: no keys");
	if (!keys || !values)
		return rva__fail(RVA_ENULL, "rva_compute: %s is NULL", !keys ? "keys" : "values");
	for (size_t i = 0; i < n_keys; i++)
		if (!keys[i] || !values[i])
			return rva__fail(RVA_ENULL, "rva_compute: %s[%zu] is NULL",
			                 !keys[i] ? "keys" : "values", i);
	/* The guide's shape hands rows by pointer. Rows evenly spaced in memory (an array of
	 * pointers into one matrix, the usual case) are read in place as a strided matrix, a
	 * batch of one with no copy. Scattered rows, and rows the output overlaps, are gathered
	 * into one matrix first. */
	size_t kvd = att->kv_dim, vd = att->v_dim, dim = att->cfg.dim, od = att->out_dim;
	size_t bytes = dim * sizeof(float), obytes = od * sizeof(float);
	rva_seq s = {.nq = 1, .nk = n_keys, .q = query, .out = out, .key_mask = mask,
	             .k = keys[0], .k_stride = even_stride(keys, n_keys, kvd),
	             .v = values[0], .v_stride = even_stride(values, n_keys, vd)};
	if (x) { /* one query row: the score matrices' row stride and the lse's head stride
	          * are their defaults (n_keys, 1) */
		s.bias = x->bias;
		s.bias_head_stride = x->bias_head_stride;
		s.mask = x->mask;
		s.mask_head_stride = x->mask_head_stride;
		s.lse = x->lse;
		s.q_pos = x->q_pos;
		s.k_pos = x->k_pos;
	}
	bool in_place = s.k_stride && s.v_stride;
	if (in_place) {
		byte_span o = span_of(out, 1, od, od, sizeof(float));
		byte_span k = span_of(s.k, n_keys, s.k_stride, kvd, sizeof(float));
		byte_span v = span_of(s.v, n_keys, s.v_stride, vd, sizeof(float));
		in_place = !spans_overlap(&o, &k) && !spans_overlap(&o, &v);
	}
	float *kv = NULL;
	rva_status st;
	if (!in_place) {
		if ((st = rva__gather_kv("rva_compute", keys, values, n_keys, kvd, vd, &kv)) !=
		    RVA_OK)
			return st;
		s.k = kv;
		s.v = kv + n_keys * kvd;
		s.k_stride = kvd;
		s.v_stride = vd;
	}
	/* In place (out overlapping the query) is supported: the query is read from a copy.
	 * Keys and values the output overlaps were gathered above; only the mask can still be
	 * overwritten (refused by the batch's aliasing check). */
	float *qcopy = NULL;
	if ((uintptr_t)out < (uintptr_t)query + bytes && (uintptr_t)query < (uintptr_t)out + obytes) {
		if ((st = rva__alloc_array((void **)&qcopy, dim, sizeof(float), "query copy")) !=
		    RVA_OK) {
			rva__free(kv);
			return st;
		}
		memcpy(qcopy, query, bytes);
		s.q = qcopy;
	}
	rva_batch b = {.count = 1, .seqs = &s};
	st = rva__run_batch_serial(att, &b, rt, NULL);
	rva__free(qcopy);
	rva__free(kv);
	return st;
}

rva_status rva_compute_ex(const rva_attention *att, const float *query,
                          const float *const *keys, const float *const *values,
                          const uint8_t *mask, size_t n_keys, float *out,
                          const rva_runtime *rt) {
	return rva_compute_query(att, query, keys, values, mask, n_keys, out, NULL, rt);
}

rva_status rva_compute_masked(const rva_attention *att, const float *query,
                              const float *const *keys, const float *const *values,
                              const uint8_t *mask, size_t n_keys, float *out) {
	return rva_compute_ex(att, query, keys, values, mask, n_keys, out, NULL);
}

rva_status rva_compute(const rva_attention *att, const float *query, const float *const *keys,
                       const float *const *values, size_t n_keys, float *out) {
	return rva_compute_ex(att, query, keys, values, NULL, n_keys, out, NULL);
}

rva_status rva_attention_flops(const rva_attention *att, const rva_batch *batch,
                               double *flops) {
	if (!att || !batch || !flops)
		return rva__fail(RVA_ENULL, "rva_attention_flops: NULL argument");
	if (batch->count && !batch->seqs)
		return rva__fail(RVA_ENULL, "rva_attention_flops: seqs is NULL");
	double f = 0.0;
	for (size_t s = 0; s < batch->count; s++) {
		rva_seq n;
		rva__normalise_seq(att, &batch->seqs[s], &n);
		f += att->ops->flops(att, &n);
	}
	*flops = f;
	return RVA_OK;
}

rva_status rva_attention_features(const rva_attention *att, const float **w, size_t *rows,
                                  size_t *cols) {
	if (!att || !w || !rows || !cols)
		return rva__fail(RVA_ENULL, "rva_attention_features: NULL argument");
	if (att->cfg.mechanism != RVA_MECH_LINEAR || att->cfg.feature_map == RVA_FEATURES_ELU ||
	    !att->feature_matrix)
		return rva__fail(RVA_EINVAL, "rva_attention_features: %s attention has no random "
		                 "feature matrix", rva_mechanism_name(att->cfg.mechanism));
	*w = att->feature_matrix;
	*rows = att->cfg.features;
	*cols = att->head_dim;
	return RVA_OK;
}

rva_status rva_attention_bias_table(const rva_attention *att, const float **table,
                                    size_t *buckets, size_t *heads) {
	if (!att || !table || !buckets || !heads)
		return rva__fail(RVA_ENULL, "rva_attention_bias_table: NULL argument");
	if (att->cfg.bias != RVA_BIAS_T5 || !att->bias_table)
		return rva__fail(RVA_EINVAL, "rva_attention_bias_table: attention has no T5 bias");
	*table = att->bias_table;
	*buckets = att->cfg.bias_buckets;
	*heads = att->cfg.heads;
	return RVA_OK;
}

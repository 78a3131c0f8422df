/* Config constructors (the builder's C form). (Mechanism names, the defaults and the
 * head-count rules live below the SDK, in src/attention/.) */
#include <string.h>

#include "attention/config_defaults.h"
#include "core/internal.h"
#include "rvattn/config.h"

rva_config rva_config_defaults(size_t dim) {
	rva_config c;
	memset(&c, 0, sizeof c); /* the reserved tail and every "0 = default" field */
	c.mechanism = RVA_MECH_SCALED_DOT;
	c.dim = dim;
	c.heads = 1;
	c.kv_heads = 0;
	c.scale = 0.0f;
	c.dropout = 0.0f;
	c.causal = false;
	c.seed = RVA__DEFAULT_SEED;
	c.block_size = 0;
	c.query_block = 0;
	c.kv_split = 0;
	c.window = RVA__DEFAULT_WINDOW;
	c.global_tokens = RVA__DEFAULT_GLOBAL_TOKENS;
	c.features = RVA__DEFAULT_FEATURES;
	c.feature_map = RVA_FEATURES_FAVOR;
	c.orthogonal = true;
	c.curvature = RVA__DEFAULT_CURVATURE;
	c.temperature = RVA__DEFAULT_TEMPERATURE;
	c.aggregation = RVA_AGG_GYROMIDPOINT;
	c.frechet_max_iter = RVA__DEFAULT_FRECHET_ITER;
	c.frechet_tol = RVA__DEFAULT_FRECHET_TOL;
	c.experts = RVA__DEFAULT_EXPERTS;
	c.top_k = RVA__DEFAULT_TOP_K;
	c.expert_capacity = RVA__DEFAULT_CAPACITY;
	c.jitter_noise = 0.0f;
	c.expert_kind = RVA_EXPERTS_MIXED;
	c.bias = RVA_BIAS_NONE;
	c.bias_buckets = RVA__DEFAULT_BIAS_BUCKETS;
	c.bias_max_distance = RVA__DEFAULT_BIAS_MAX_DISTANCE;
	c.pattern = RVA_PATTERN_DENSE;
	c.sparse_stride = RVA__DEFAULT_SPARSE_STRIDE;
	c.sparse_summary = 0; /* min(16, sparse_stride) at rva_build: follows a stride set later */
	return c;
}

rva_config rva_scaled_dot(size_t dim) { return rva_config_defaults(dim); }

rva_config rva_multi_head(size_t dim, size_t heads) {
	rva_config c = rva_config_defaults(dim);
	c.mechanism = RVA_MECH_MULTI_HEAD;
	c.heads = heads;
	return c;
}

rva_config rva_flash(size_t dim, size_t block_size) {
	rva_config c = rva_config_defaults(dim);
	c.mechanism = RVA_MECH_FLASH;
	c.heads = rva__default_heads(RVA_MECH_FLASH, dim);
	c.block_size = block_size;
	return c;
}

rva_config rva_linear(size_t dim, size_t features) {
	rva_config c = rva_config_defaults(dim);
	c.mechanism = RVA_MECH_LINEAR;
	c.features = features;
	return c;
}

rva_config rva_local_global(size_t dim, size_t window) {
	rva_config c = rva_config_defaults(dim);
	c.mechanism = RVA_MECH_LOCAL_GLOBAL;
	c.window = window;
	return c;
}

rva_config rva_hyperbolic(size_t dim, float curvature) {
	rva_config c = rva_config_defaults(dim);
	c.mechanism = RVA_MECH_HYPERBOLIC;
	c.curvature = curvature;
	return c;
}

rva_config rva_moe(size_t dim, size_t experts, size_t top_k) {
	rva_config c = rva_config_defaults(dim);
	c.mechanism = RVA_MECH_MOE;
	c.experts = experts;
	c.top_k = top_k;
	return c;
}

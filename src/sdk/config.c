/* Config constructors (the builder's C form). (Mechanism names live below the SDK, in
 * src/attention/mechanism.c.) */
#include <string.h>

#include "core/internal.h"
#include "rvattn/config.h"

rva_config rva_config_defaults(size_t dim) {
	rva_config c;
	memset(&c, 0, sizeof c);
	c.mechanism = RVA_MECH_SCALED_DOT;
	c.dim = dim;
	c.heads = 1;
	c.kv_heads = 0;
	c.scale = 0.0f;
	c.dropout = 0.0f;
	c.causal = false;
	c.seed = 0x5EED;
	c.block_size = 0;
	c.query_block = 0;
	c.kv_split = 0;
	c.window = 256;
	c.global_tokens = 1;
	c.features = 256;
	c.feature_map = RVA_FEATURES_FAVOR;
	c.orthogonal = true;
	c.curvature = -1.0f;
	c.temperature = 1.0f;
	c.aggregation = RVA_AGG_GYROMIDPOINT;
	c.frechet_max_iter = 100;
	c.frechet_tol = 1e-6f;
	c.experts = 8;
	c.top_k = 2;
	c.expert_capacity = 1.25f;
	c.jitter_noise = 0.0f;
	c.expert_kind = RVA_EXPERTS_MIXED;
	c.bias = RVA_BIAS_NONE;
	c.bias_buckets = 32;
	c.bias_max_distance = 128;
	c.pattern = RVA_PATTERN_DENSE;
	c.sparse_stride = 128;
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

/*
 * libFuzzer target: config validation. An rva_config is filled from the fuzz bytes
 * (a constructor or preset, then a list of field assignments: sizes including
 * overflowing ones, floats including NaN/Inf, enum values out of range); the pointer
 * fields are NULL or point to fuzz-owned arrays of exactly the size rva_build() reads
 * (global_indices: n_global_indices entries; feature_matrix: features x head_dim;
 * router_weights: experts x max(router_stride, dim); bias_table: bias_buckets x heads;
 * alibi_slopes: heads). The score modifiers (causal_align, sliding_window with
 * window_left / window_right, softcap, alibi, alibi_slopes) are fields like the others.
 * rva_build() must return one of its documented statuses; when it builds, a tiny batch
 * (two sequences, up to 8 x 8 rows, maybe masked, maybe training mode, the first maybe
 * with a per-sequence bias and boolean mask, broadcast or per head, padded strides) is
 * computed and must succeed (a bias or mask on a mechanism outside the softmax family:
 * RVA_EINVAL for that sequence); an all-zero bias with an all-visible mask must give the
 * bits of neither, and a single-query rva_compute() the same bits as the batch path for
 * nq = 1.
 * RoPE (rope, rope_theta, rope_scaling, rope_factor, rope_dim; the first sequence's q_pos
 * and k_pos) is fuzzed too, with a predictor: when the config without its RoPE fields
 * builds, the status of the config with them is exactly the one config.h documents for
 * them (rope_status), and the first sequence's status follows batch.h for the position
 * offsets (RVA_EINVAL without rope, RVA_ERANGE from 2^47 on).
 */
#include <math.h>

#include "attention/config_defaults.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
	(void)argc;
	(void)argv;
	fuzz_install_allocator();
	return 0;
}

enum {
	F_MECH, F_DIM, F_HEADS, F_KV_HEADS, F_SCALE, F_DROPOUT, F_CAUSAL, F_SEED, F_BLOCK,
	F_QBLOCK, F_KVSPLIT, F_WINDOW, F_GLOBAL_TOKENS, F_N_GLOBAL, F_GLOBAL_PTR, F_FEATURES,
	F_FEATURE_MAP, F_ORTHOGONAL, F_FEATURE_PTR, F_CURVATURE, F_TEMPERATURE, F_AGGREGATION,
	F_FRECHET_ITER, F_FRECHET_TOL, F_EXPERTS, F_TOP_K, F_CAPACITY, F_JITTER, F_EXPERT_KIND,
	F_ROUTER_PTR, F_BIAS, F_BIAS_BUCKETS, F_BIAS_MAX_DIST, F_BIAS_PTR, F_PATTERN,
	F_SPARSE_STRIDE, F_GATES, F_CAP_SCOPE, F_KV_PROJ, F_ROUTER_STRIDE, F_CAUSAL_ALIGN,
	F_SLIDING, F_WINDOW_LEFT, F_WINDOW_RIGHT, F_SOFTCAP, F_ALIBI, F_ALIBI_PTR, F_SEQ_MODS,
	F_SPARSE_SUMMARY, F_ROPE, F_ROPE_THETA, F_ROPE_SCALING, F_ROPE_FACTOR, F_ROPE_DIM,
	F_POSITIONS, F_COUNT
};

/* An enum value: mostly valid, sometimes just past the end, negative or huge. */
static int fuzz_enum(fuzz_in *in, int count) {
	uint8_t b = fuzz_u8(in);
	if (b < 200)
		return b % count;
	static const int odd[] = {-1, -2, INT32_MIN, INT32_MAX, 255, 256};
	return b < 206 ? odd[b - 200] : count + (b - 206) % 4;
}

/* A sliding-window count: small (the tiny sequences' scale), unbounded, or any size. */
static size_t window_count(fuzz_in *in) {
	uint8_t b = fuzz_u8(in);
	if (b < 160)
		return b % 10;
	return b < 192 ? RVA_WINDOW_UNBOUNDED : fuzz_size(in);
}

/* A RoPE position offset: zero, small, the last valid ones (below 2^47) or beyond. */
static size_t position(fuzz_in *in) {
	uint8_t b = fuzz_u8(in);
	if (b < 96)
		return b < 32 ? 0 : b % 50;
	if (b < 160)
		return ((size_t)1 << 47) - 1 - b % 4;
	return b < 192 ? ((size_t)1 << 47) + b % 4 : fuzz_size(in);
}

/* A rope_dim: 0 (the head), small even or odd, or any size. */
static size_t rope_dim_of(fuzz_in *in) {
	uint8_t b = fuzz_u8(in);
	return b < 200 ? b % 20 : fuzz_size(in);
}

/* seq_mods bits: the first sequence's bias and mask, their layout, and the identity check. */
enum {
	SM_BIAS = 1, SM_MASK = 2, SM_PER_HEAD = 4, SM_PADDED = 8, SM_INF = 16, SM_IDENTITY = 32
};

static bool softmax_family(rva_mechanism m) {
	return m == RVA_MECH_SCALED_DOT || m == RVA_MECH_MULTI_HEAD || m == RVA_MECH_FLASH ||
	       m == RVA_MECH_LOCAL_GLOBAL;
}

/* Deterministic values in [-1, 1) for inputs. */
static float lcg_value(uint64_t *s) {
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (float)((double)(*s >> 40) / 8388608.0 - 1.0);
}

static size_t mul_or_max(size_t a, size_t b) {
	size_t r;
	return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

/* Fuzz-owned float array of n elements (NULL when n is too big to hold). */
static float *owned_floats(size_t n, uint64_t *seed, bool raw_specials) {
	if (n > ((size_t)1 << 20))
		return NULL;
	float *a = malloc((n ? n : 1) * sizeof *a);
	if (!a)
		return NULL;
	for (size_t i = 0; i < n; i++)
		a[i] = lcg_value(seed);
	if (raw_specials && n)
		a[n / 2] = NAN;
	return a;
}

static bool uses(const rva_config *c, rva_mechanism m, rva_expert_kind k, size_t first) {
	if (c->mechanism == m)
		return true;
	if (c->mechanism != RVA_MECH_MOE)
		return false;
	if (c->expert_kind == k)
		return true;
	return c->expert_kind == RVA_EXPERTS_MIXED && c->experts > first;
}

/* Rough cost of rva_build (random feature draws dominate): skip configs that would make
 * one execution take seconds (they are valid, only slow). */
static bool build_too_slow(const rva_config *c) {
	/* Costs of the resolved config: zero fields are the library's defaults (config.h). */
	size_t heads = c->heads ? c->heads : rva__default_heads(c->mechanism, c->dim);
	if (heads == 0 || c->dim % heads != 0)
		return false;
	size_t hd = c->dim / heads;
	size_t experts = c->experts ? c->experts : RVA__DEFAULT_EXPERTS;
	double cost = 0.0;
	if (uses(c, RVA_MECH_LINEAR, RVA_EXPERTS_LINEAR, 2) && c->feature_map != RVA_FEATURES_ELU) {
		/* ceil(m/d) blocks of d x d Gram-Schmidt (two passes), or m x d draws */
		double m = (double)(c->features ? c->features : RVA__DEFAULT_FEATURES), d = (double)hd;
		cost = c->orthogonal ? (m / d + 1.0) * d * d * d * 2.0 : m * d;
		if (c->mechanism == RVA_MECH_MOE)
			cost *= (double)(experts < RVA_MOE_MAX_EXPERTS ? experts : 256);
	}
	if (c->mechanism == RVA_MECH_MOE) /* router, then the experts' W_q, W_o, W_k, W_v */
		cost += (double)experts * (double)c->dim * (50.0 + 4.0 * 30.0 * (double)c->dim);
	if (c->bias == RVA_BIAS_T5)
		cost += (double)c->bias_max_distance * 100.0 + (double)c->bias_buckets *
		        (double)heads * 50.0;
	return cost > 2e7;
}

/* The status config.h documents for c's RoPE fields alone (c as the caller set them;
 * mechanism m and head dim hd as resolved by a build of c without them): non-finite
 * theta / factor RVA_ERANGE, enums out of range RVA_EINVAL (the order of rva_build's
 * checks: floats, enums, then the fields), values without rope RVA_EINVAL, rope outside
 * the softmax family RVA_EINVAL, theta <= 0 RVA_ERANGE, a factor without scaling
 * RVA_EINVAL, a factor <= 0 with it RVA_ERANGE, rope_dim odd RVA_EINVAL or above hd
 * RVA_ERANGE, NTK with fewer than 4 rotated elements RVA_ERANGE. */
static rva_status rope_status(const rva_config *c, rva_mechanism m, size_t hd) {
	if (!isfinite(c->rope_theta) || !isfinite(c->rope_factor))
		return RVA_ERANGE;
	if ((unsigned)c->rope >= RVA_ROPE_COUNT || (unsigned)c->rope_scaling >= RVA_ROPE_SCALING_COUNT)
		return RVA_EINVAL;
	if (c->rope == RVA_ROPE_NONE)
		return c->rope_theta != 0.0f || c->rope_scaling != RVA_ROPE_SCALING_NONE ||
		               c->rope_factor != 0.0f || c->rope_dim
		           ? RVA_EINVAL
		           : RVA_OK;
	if (!softmax_family(m))
		return RVA_EINVAL;
	float theta = c->rope_theta == 0.0f ? 10000.0f : c->rope_theta;
	float factor = c->rope_scaling != RVA_ROPE_SCALING_NONE && c->rope_factor == 0.0f
	                   ? 1.0f
	                   : c->rope_factor;
	if (!(theta > 0.0f))
		return RVA_ERANGE;
	if (c->rope_scaling == RVA_ROPE_SCALING_NONE && factor != 0.0f)
		return RVA_EINVAL;
	if (c->rope_scaling != RVA_ROPE_SCALING_NONE && !(factor > 0.0f))
		return RVA_ERANGE;
	if (c->rope_dim % 2)
		return RVA_EINVAL;
	if (c->rope_dim > hd)
		return RVA_ERANGE;
	size_t rd = c->rope_dim ? c->rope_dim : hd & ~(size_t)1;
	if (c->rope_scaling == RVA_ROPE_SCALING_NTK && rd < 4)
		return RVA_ERANGE;
	return RVA_OK;
}

static bool rope_fields_set(const rva_config *c) {
	return c->rope != RVA_ROPE_NONE || c->rope_theta != 0.0f ||
	       c->rope_scaling != RVA_ROPE_SCALING_NONE || c->rope_factor != 0.0f || c->rope_dim;
}

/* The status of c built without its RoPE fields, with its resolved mechanism and head dim
 * when it builds. */
static rva_status build_without_rope(const rva_config *c, rva_mechanism *m, size_t *hd) {
	rva_config c0 = *c;
	c0.rope = RVA_ROPE_NONE;
	c0.rope_theta = c0.rope_factor = 0.0f;
	c0.rope_scaling = RVA_ROPE_SCALING_NONE;
	c0.rope_dim = 0;
	rva_attention *a = NULL;
	rva_status st = rva_build(&c0, &a);
	if (st == RVA_OK) {
		rva_config r;
		FUZZ_CHECK(rva_attention_config(a, &r) == RVA_OK, "rva_attention_config");
		*m = r.mechanism;
		*hd = r.dim / r.heads;
		rva_attention_destroy(a);
	}
	return st;
}

static rva_status allowed_build_status[] = {RVA_OK, RVA_ENULL, RVA_EINVAL, RVA_EDIM,
                                            RVA_ERANGE, RVA_EOVERFLOW, RVA_ENOMEM};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	fuzz_in in = {data, size};
	uint8_t base = fuzz_u8(&in);
	size_t dim = fuzz_size(&in), a1 = fuzz_size(&in), a2 = fuzz_size(&in);
	uint8_t flags = fuzz_u8(&in);
	size_t nq = fuzz_u8(&in) % 9, nk = fuzz_u8(&in) % 9;
	uint64_t seed = fuzz_u64(&in);

	rva_config c;
	switch (base % 17) {
	case 10: c = rva_scaled_dot(dim); break;
	case 11: c = rva_multi_head(dim, a1); break;
	case 12: c = rva_flash(dim, a1); break;
	case 13: c = rva_linear(dim, a1); break;
	case 14: c = rva_local_global(dim, a1); break;
	case 15: c = rva_hyperbolic(dim, -(float)a1 / 8.0f); break;
	case 16: c = rva_moe(dim, a1, a2); break;
	default: c = rva_preset_config((rva_preset)(base % 17), dim); break;
	}
	bool want_global = false, want_features = false, want_router = false, want_bias = false;
	bool nan_arrays = false, want_slopes = false;
	uint8_t seq_mods = 0; /* SM_* below */
	size_t q_pos = 0, k_pos = 0; /* the first sequence's RoPE offsets */
	for (int ops = 0; in.n && ops < 64; ops++) {
		switch (fuzz_u8(&in) % F_COUNT) {
		case F_MECH: c.mechanism = (rva_mechanism)fuzz_enum(&in, RVA_MECH_COUNT); break;
		case F_DIM: c.dim = fuzz_size(&in); break;
		case F_HEADS: c.heads = fuzz_size(&in); break;
		case F_KV_HEADS: c.kv_heads = fuzz_size(&in); break;
		case F_SCALE: c.scale = fuzz_float(&in); break;
		case F_DROPOUT: c.dropout = fuzz_float(&in); break;
		case F_CAUSAL: c.causal = fuzz_u8(&in) & 1; break;
		case F_SEED: c.seed = fuzz_u64(&in); break;
		case F_BLOCK: c.block_size = fuzz_size(&in); break;
		case F_QBLOCK: c.query_block = fuzz_size(&in); break;
		case F_KVSPLIT: c.kv_split = fuzz_size(&in); break;
		case F_WINDOW: c.window = fuzz_size(&in); break;
		case F_GLOBAL_TOKENS: c.global_tokens = fuzz_size(&in); break;
		case F_N_GLOBAL: c.n_global_indices = fuzz_size(&in); break;
		case F_GLOBAL_PTR: want_global = fuzz_u8(&in) & 1; break;
		case F_FEATURES: c.features = fuzz_size(&in); break;
		case F_FEATURE_MAP: c.feature_map = (rva_feature_map)fuzz_enum(&in, RVA_FEATURES_COUNT); break;
		case F_ORTHOGONAL: c.orthogonal = fuzz_u8(&in) & 1; break;
		case F_FEATURE_PTR: want_features = fuzz_u8(&in) & 1; break;
		case F_CURVATURE: c.curvature = fuzz_float(&in); break;
		case F_TEMPERATURE: c.temperature = fuzz_float(&in); break;
		case F_AGGREGATION: c.aggregation = (rva_aggregation)fuzz_enum(&in, RVA_AGG_COUNT); break;
		case F_FRECHET_ITER: c.frechet_max_iter = fuzz_size(&in); break;
		case F_FRECHET_TOL: c.frechet_tol = fuzz_float(&in); break;
		case F_EXPERTS: c.experts = fuzz_size(&in); break;
		case F_TOP_K: c.top_k = fuzz_size(&in); break;
		case F_CAPACITY: c.expert_capacity = fuzz_float(&in); break;
		case F_JITTER: c.jitter_noise = fuzz_float(&in); break;
		case F_EXPERT_KIND: c.expert_kind = (rva_expert_kind)fuzz_enum(&in, RVA_EXPERTS_COUNT); break;
		case F_ROUTER_PTR: want_router = fuzz_u8(&in) & 1; break;
		case F_BIAS: c.bias = (rva_position_bias)fuzz_enum(&in, RVA_BIAS_COUNT); break;
		case F_BIAS_BUCKETS: c.bias_buckets = fuzz_size(&in); break;
		case F_BIAS_MAX_DIST: c.bias_max_distance = fuzz_size(&in); break;
		case F_BIAS_PTR: {
			uint8_t b = fuzz_u8(&in);
			want_bias = b & 1;
			nan_arrays = (b & 6) == 6;
			break;
		}
		case F_PATTERN: c.pattern = (rva_sparse_pattern)fuzz_enum(&in, RVA_PATTERN_COUNT); break;
		case F_SPARSE_STRIDE: c.sparse_stride = fuzz_size(&in); break;
		case F_SPARSE_SUMMARY: c.sparse_summary = fuzz_size(&in); break;
		case F_GATES: c.normalize_gates = (rva_gate_norm)fuzz_enum(&in, RVA_GATES_COUNT); break;
		case F_CAP_SCOPE:
			c.capacity_scope = (rva_capacity_scope)fuzz_enum(&in, RVA_CAPACITY_COUNT);
			break;
		case F_KV_PROJ: c.kv_projection = (rva_moe_kv)fuzz_enum(&in, RVA_MOE_KV_COUNT); break;
		case F_ROUTER_STRIDE: c.router_stride = fuzz_u8(&in) % 4 == 0 ? 0 : fuzz_size(&in); break;
		case F_CAUSAL_ALIGN:
			c.causal_align = (rva_causal_align)fuzz_enum(&in, RVA_CAUSAL_ALIGN_COUNT);
			break;
		case F_SLIDING: c.sliding_window = fuzz_u8(&in) & 1; break;
		case F_WINDOW_LEFT: c.window_left = window_count(&in); break;
		case F_WINDOW_RIGHT: c.window_right = window_count(&in); break;
		case F_SOFTCAP: c.softcap = fuzz_float(&in); break;
		case F_ALIBI: c.alibi = fuzz_u8(&in) & 1; break;
		case F_ALIBI_PTR: want_slopes = fuzz_u8(&in) & 1; break;
		case F_SEQ_MODS: seq_mods = fuzz_u8(&in); break;
		case F_ROPE: c.rope = (rva_rope)fuzz_enum(&in, RVA_ROPE_COUNT); break;
		case F_ROPE_THETA: c.rope_theta = fuzz_float(&in); break;
		case F_ROPE_SCALING:
			c.rope_scaling = (rva_rope_scaling)fuzz_enum(&in, RVA_ROPE_SCALING_COUNT);
			break;
		case F_ROPE_FACTOR: c.rope_factor = fuzz_float(&in); break;
		case F_ROPE_DIM: c.rope_dim = rope_dim_of(&in); break;
		case F_POSITIONS:
			q_pos = position(&in);
			k_pos = position(&in);
			break;
		}
	}

	/* Pointer fields: NULL, or arrays of exactly the size rva_build reads. */
	uint64_t vs = seed;
	size_t *global = NULL;
	float *features = NULL, *router = NULL, *bias = NULL, *slopes = NULL;
	c.global_indices = NULL;
	if (want_global && c.n_global_indices <= 256) {
		global = malloc((c.n_global_indices ? c.n_global_indices : 1) * sizeof *global);
		for (size_t i = 0; global && i < c.n_global_indices; i++)
			global[i] = i % 7 == 6 ? SIZE_MAX - i :
			            (size_t)(lcg_value(&vs) * 6.0f + 6.0f) * (i % 5 == 4 ? 1000 : 1);
		c.global_indices = global;
	}
	size_t hd = c.heads && c.dim % c.heads == 0 ? c.dim / c.heads : 0;
	c.feature_matrix = c.router_weights = c.bias_table = NULL;
	/* Arrays are sized by the config's own counts; a zero count means the library's default
	 * (config.h), whose size the harness does not model, so it passes no array then. */
	if (want_features && hd && c.features)
		c.feature_matrix = features = owned_floats(mul_or_max(c.features, hd), &vs, nan_arrays);
	if (want_router && c.experts)
		c.router_weights = router = owned_floats(
			mul_or_max(c.experts, c.router_stride > c.dim ? c.router_stride : c.dim), &vs,
			nan_arrays);
	if (want_bias && c.bias_buckets && c.heads)
		c.bias_table = bias = owned_floats(mul_or_max(c.bias_buckets, c.heads), &vs, nan_arrays);
	c.alibi_slopes = NULL;
	if (want_slopes && c.heads) {
		/* |values| (valid slopes), or raw with a negative one and maybe a NaN (ERANGE) */
		c.alibi_slopes = slopes = owned_floats(c.heads, &vs, nan_arrays);
		for (size_t i = 0; slopes && i < c.heads; i++)
			slopes[i] = seed & 1 && i == c.heads - 1 ? -1.0f - fabsf(slopes[i]) : fabsf(slopes[i]);
	}

	if (build_too_slow(&c))
		goto out;
	rva_mechanism m0 = RVA_MECH_SCALED_DOT;
	size_t hd0 = 0;
	bool predict = rope_fields_set(&c) && build_without_rope(&c, &m0, &hd0) == RVA_OK;
	rva_attention *att = NULL;
	rva_clear_error();
	rva_status st = rva_build(&c, &att);
	if (predict) {
		rva_status want = rope_status(&c, m0, hd0);
		FUZZ_CHECK(st == want || (want == RVA_OK && st == RVA_ENOMEM),
		           "rva_build with RoPE (rope %d theta %g scaling %d factor %g rope_dim %zu, "
		           "%s, head_dim %zu): %s, predicted %s", (int)c.rope, (double)c.rope_theta,
		           (int)c.rope_scaling, (double)c.rope_factor, c.rope_dim,
		           rva_mechanism_name(m0), hd0, rva_status_name(st), rva_status_name(want));
	}
	bool allowed = false;
	for (size_t i = 0; i < sizeof allowed_build_status / sizeof allowed_build_status[0]; i++)
		allowed |= st == allowed_build_status[i];
	FUZZ_CHECK(allowed, "rva_build status %s", rva_status_name(st));
	if (st != RVA_OK) {
		FUZZ_CHECK(att == NULL, "*out set on failure");
		FUZZ_CHECK(rva_last_error()[0] != '\0', "rva_build %s without a message",
		           rva_status_name(st));
		goto out;
	}
	rva_config r;
	FUZZ_CHECK(rva_attention_config(att, &r) == RVA_OK, "rva_attention_config");
	size_t kvd = r.kv_heads * (r.dim / r.heads);
	bool slow = r.aggregation == RVA_AGG_FRECHET && r.mechanism == RVA_MECH_HYPERBOLIC &&
	            r.frechet_max_iter > 200;
	if (r.dim > 256 || kvd > 256 || slow || nk == 0) {
		rva_attention_destroy(att);
		goto out;
	}

	/* Two sequences: (nq, nk) and a second one (maybe empty), packed rows. */
	size_t nq2 = flags & 8 ? nq / 2 : 0, nk2 = nk;
	size_t nfl = (nq + nq2) * r.dim + 2 * (nk + nk2) * kvd;
	float *buf = malloc(nfl * sizeof(float) + 64);
	float *out = malloc(((nq + nq2) * r.dim + 1) * sizeof(float));
	float *out1 = malloc((r.dim + 1) * sizeof(float));
	uint8_t mask[16];
	FUZZ_CHECK(buf && out && out1, "malloc");
	for (size_t i = 0; i < nfl; i++)
		buf[i] = lcg_value(&vs);
	for (size_t i = 0; i < 16; i++)
		mask[i] = (uint8_t)((seed >> (i * 4)) & 3) != 0;
	float *q = buf, *k = q + (nq + nq2) * r.dim, *v = k + (nk + nk2) * kvd;
	rva_seq s[2] = {
		{.nq = nq, .nk = nk, .q = q, .k = k, .v = v, .out = out,
		 .key_mask = flags & 2 ? mask : NULL},
		{.nq = nq2, .nk = nk2, .q = q + nq * r.dim, .k = k + nk * kvd, .v = v + nk * kvd,
		 .out = out + nq * r.dim, .key_mask = flags & 4 ? mask + 8 : NULL},
	};
	/* The first sequence's score matrices: [heads or 1][nq][stride], stride nk or padded. */
	size_t H = r.heads, ms_ = seq_mods & SM_PADDED ? nk + 3 : nk;
	size_t mat = (seq_mods & SM_PER_HEAD ? H : 1) * (nq ? nq : 1) * ms_;
	float *sbias = seq_mods & SM_BIAS ? malloc(mat * sizeof(float)) : NULL;
	uint8_t *smask = seq_mods & SM_MASK ? malloc(mat) : NULL;
	for (size_t i = 0; sbias && i < mat; i++)
		sbias[i] = seq_mods & SM_IDENTITY ? 0.0f : 2.0f * lcg_value(&vs);
	if (sbias && (seq_mods & SM_INF) && !(seq_mods & SM_IDENTITY))
		sbias[mat / 2] = -INFINITY; /* hides the pair */
	for (size_t i = 0; smask && i < mat; i++)
		smask[i] = seq_mods & SM_IDENTITY ? 1 : lcg_value(&vs) > -0.5f;
	if (sbias) {
		s[0].bias = sbias;
		s[0].bias_stride = seq_mods & SM_PADDED ? ms_ : 0;
		s[0].bias_head_stride = seq_mods & SM_PER_HEAD ? nq * ms_ : 0;
	}
	if (smask) {
		s[0].mask = smask;
		s[0].mask_stride = seq_mods & SM_PADDED ? ms_ : 0;
		s[0].mask_head_stride = seq_mods & SM_PER_HEAD ? nq * ms_ : 0;
	}
	bool mats = sbias || smask;
	s[0].q_pos = q_pos;
	s[0].k_pos = k_pos;
	/* a bias or mask outside the softmax family, position offsets without rope or from
	 * 2^47 on (batch.h, in this order): that sequence is refused, the other runs */
	rva_status want0 = mats && !softmax_family(r.mechanism)                 ? RVA_EINVAL
	                   : (q_pos || k_pos) && r.rope == RVA_ROPE_NONE        ? RVA_EINVAL
	                   : q_pos >= ((size_t)1 << 47) || k_pos >= ((size_t)1 << 47) ? RVA_ERANGE
	                                                                        : RVA_OK;
	rva_batch b = {2, s};
	rva_moe_stats ms;
	rva_runtime rt = {.training = flags & 1, .seed = seed, .step = seed >> 32,
	                  .moe_stats = &ms};
	rva_status ss[2] = {RVA_EINTERNAL, RVA_EINTERNAL};
	st = rva_compute_batch(att, &b, &rt, ss);
	if (want0 != RVA_OK)
		FUZZ_CHECK(st == want0 && ss[0] == want0,
		           "bias/mask on %s or positions %zu/%zu (rope %d): batch %s, seq %s, "
		           "predicted %s", rva_mechanism_name(r.mechanism), q_pos, k_pos, (int)r.rope,
		           rva_status_name(st), rva_status_name(ss[0]), rva_status_name(want0));
	else
		FUZZ_CHECK(st == RVA_OK || st == RVA_ENOMEM, "compute_batch %s (seq %s, %s)",
		           rva_status_name(st), rva_status_name(ss[0]), rva_status_name(ss[1]));
	if (st == RVA_OK && mats && (seq_mods & SM_IDENTITY) && nq) {
		/* bias 0 and every pair visible: the bits of the same sequence without them */
		float *out0 = malloc(nq * r.dim * sizeof(float));
		FUZZ_CHECK(out0 != NULL, "malloc");
		memcpy(out0, out, nq * r.dim * sizeof(float));
		rva_seq plain = s[0];
		plain.bias = NULL;
		plain.mask = NULL;
		plain.bias_stride = plain.bias_head_stride = plain.mask_stride = plain.mask_head_stride = 0;
		rva_batch b1 = {1, &plain};
		st = rva_compute_batch(att, &b1, &rt, NULL);
		FUZZ_CHECK(st == RVA_OK || st == RVA_ENOMEM, "without bias/mask: %s",
		           rva_status_name(st));
		if (st == RVA_OK)
			FUZZ_CHECK(memcmp(out0, out, nq * r.dim * sizeof(float)) == 0,
			           "a zero bias / all-visible mask changed the output (%s)",
			           rva_mechanism_name(r.mechanism));
		free(out0);
	}
	if (st == RVA_OK && nq == 1 && (flags & 16) && !mats && !q_pos && !k_pos) {
		/* The single-query call is a batch of one: the same bits. */
		const float *kp[8], *vp[8];
		for (size_t i = 0; i < nk; i++) {
			kp[i] = k + i * kvd;
			vp[i] = v + i * kvd;
		}
		rva_seq one = s[0];
		rva_batch b1 = {1, &one};
		st = rva_compute_batch(att, &b1, &rt, NULL);
		FUZZ_CHECK(st == RVA_OK || st == RVA_ENOMEM, "batch of one: %s", rva_status_name(st));
		rva_status st1 = rva_compute_ex(att, q, kp, vp, s[0].key_mask, nk, out1, &rt);
		FUZZ_CHECK(st1 == RVA_OK || st1 == RVA_ENOMEM, "rva_compute_ex %s",
		           rva_status_name(st1));
		if (st == RVA_OK && st1 == RVA_OK)
			FUZZ_CHECK(memcmp(out, out1, r.dim * sizeof(float)) == 0,
			           "rva_compute_ex differs from the batch path (%s)",
			           rva_mechanism_name(r.mechanism));
	}
	free(buf);
	free(out);
	free(out1);
	free(sbias);
	free(smask);
	rva_attention_destroy(att);
out:
	free(global);
	free(features);
	free(router);
	free(bias);
	free(slopes);
	return 0;
}

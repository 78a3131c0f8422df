/*
 * rvattn — attention configuration (the C form of the SDK guide's AttentionBuilder).
 *
 * A configuration is a plain value: a constructor fills every field with its documented
 * default, the caller changes fields with ordinary assignments, and rva_build() (see
 * attention.h) validates the whole thing and allocates. Nothing is allocated before
 * rva_build(); pointers inside a config (global_indices, router_weights, bias_table,
 * feature_matrix, the expert_w* matrix lists) are borrowed by the config and copied by
 * rva_build().
 *
 *     rva_config c = rva_multi_head(768, 12);   // multi_head(768, 12)
 *     c.dropout = 0.1f; c.causal = true;         //   .dropout(0.1).causal(true)
 *     rva_attention *att;
 *     rva_status st = rva_build(&c, &att);       //   .build()?
 *
 * Shapes: the query dimension is `dim` = heads * head_dim; keys and values have
 * kv_heads * head_dim columns (grouped-query attention when kv_heads < heads, query head
 * h uses kv head h / (heads / kv_heads)); the output has `dim` columns.
 *
 * Zero is never an error (one rule for every numeric field of rva_config): a field where 0
 * is not a valid value reads 0 as its documented default (heads: the head count near
 * dim/64, block_size 128, window 256, features 256, curvature -1, temperature 1, experts 8,
 * top_k min(2, experts), ...), and rva_attention_config() returns the resolved value; a
 * field where 0 is a valid value means 0 (dropout, jitter_noise, expert_capacity: no
 * token kept, frechet_tol: iterate to frechet_max_iter, global_tokens: none, seed 0,
 * kv_split: automatic, softcap: off, window_left/window_right: a window of 0 keys on that
 * side, which is why the window has its own switch, sliding_window, whose zero is "no
 * window"). The only numeric field without a default is `dim`.
 *
 * Growth (the rule for every public option struct: rva_config, rva_runtime,
 * rva_engine_config, rva_norm_config, and the rva_job_stats output):
 * a struct ends in a `reserved` array that must be zero, which the constructors and a
 * `= {...}` initialiser give it. Within one SOVERSION (version.h) a struct never changes
 * size; a release adds a field only by taking it from `reserved`, and chooses its meaning
 * so that zero is the earlier behaviour. A caller compiled against older headers then
 * gets exactly what it got before; rva_build() refuses a config whose reserved words are
 * not zero (RVA_EINVAL). Start from a constructor, or zero-initialise, never leave a
 * struct of this header uninitialised.
 */
#ifndef RVATTN_CONFIG_H
#define RVATTN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

RVA_BEGIN_DECLS

typedef enum rva_mechanism {
	RVA_MECH_SCALED_DOT = 0, /* softmax(q K^T * scale) V, one head */
	RVA_MECH_MULTI_HEAD,     /* the same per head on slices of dim, outputs concatenated */
	RVA_MECH_FLASH,          /* multi-head numbers, FlashAttention-2 tiles of block_size keys */
	RVA_MECH_LINEAR,         /* Performer FAVOR+ (or ReLU/ELU feature maps), O(n) */
	RVA_MECH_LOCAL_GLOBAL,   /* Longformer sliding window + symmetric global tokens */
	RVA_MECH_HYPERBOLIC,     /* Poincare-ball distance scores, gyromidpoint/Frechet aggregation */
	RVA_MECH_MOE,            /* router + top-k experts with capacity */
	RVA_MECH_COUNT
} rva_mechanism;

/* Feature map of linear attention. */
typedef enum rva_feature_map {
	RVA_FEATURES_FAVOR = 0, /* positive orthogonal random features (FAVOR+), the default */
	RVA_FEATURES_RELU,      /* phi(x) = relu(W x) / sqrt(m) + tiny epsilon */
	RVA_FEATURES_ELU,       /* phi(x) = elu(x) + 1 on the raw head vector (m ignored) */
	RVA_FEATURES_COUNT
} rva_feature_map;

/* Aggregation of hyperbolic attention. */
typedef enum rva_aggregation {
	RVA_AGG_GYROMIDPOINT = 0, /* weighted Mobius gyromidpoint, closed form (default) */
	RVA_AGG_FRECHET,          /* weighted Frechet (Karcher) mean, iterative */
	RVA_AGG_COUNT
} rva_aggregation;

/* Experts of an MoE attention. */
typedef enum rva_expert_kind {
	RVA_EXPERTS_MIXED = 0, /* expert e is standard, hyperbolic, linear for e % 3 = 0, 1, 2 */
	RVA_EXPERTS_STANDARD,  /* all multi-head softmax attention */
	RVA_EXPERTS_HYPERBOLIC,
	RVA_EXPERTS_LINEAR,
	RVA_EXPERTS_COUNT
} rva_expert_kind;

/* Gates of an MoE attention (rva_config.normalize_gates). */
typedef enum rva_gate_norm {
	RVA_GATES_AUTO = 0,     /* raw for top_k = 1, renormalised for top_k > 1 (default) */
	RVA_GATES_RAW,          /* gate = router probability p_e(x) (Switch Transformer,
	                         * Fedus et al. 2021: y = p_i(x) E_i(x), not renormalised) */
	RVA_GATES_NORMALIZED,   /* gate = p_e(x) / sum of p over the k chosen experts
	                         * (GShard, Lepikhin et al. 2020; Mixtral) */
	RVA_GATES_COUNT
} rva_gate_norm;

/* Where MoE expert capacity is counted (rva_config.capacity_scope). */
typedef enum rva_capacity_scope {
	RVA_CAPACITY_PER_SEQUENCE = 0, /* C = ceil(factor * nq * k / E) per sequence, priority
	                                * within the sequence: a sequence's output never
	                                * depends on its batch-mates (default; in training
	                                * mode the jitter and dropout streams are keyed by
	                                * the sequence's index in the batch) */
	RVA_CAPACITY_PER_BATCH,        /* C = ceil(factor * tokens * k / E) over the whole
	                                * batch, priority over all its tokens (GShard): one
	                                * sequence's output can depend on the others */
	RVA_CAPACITY_COUNT
} rva_capacity_scope;

/* K/V projections of MoE experts (rva_config.kv_projection). */
typedef enum rva_moe_kv {
	RVA_MOE_KV_SHARED = 0,  /* one W_k and one W_v for all experts (Mixture of Attention
	                         * Heads), computed once per sequence (default) */
	RVA_MOE_KV_PER_EXPERT,  /* each expert its own W_k and W_v */
	RVA_MOE_KV_COUNT
} rva_moe_kv;

/*
 * A list of caller-supplied weight matrices (MoE expert projections): `data` is NULL
 * (seeded initialisation) or an array of pointers, one per matrix, each matrix row-major
 * with `stride` floats between rows (0 = packed: stride = columns). Borrowed by the
 * config, copied by rva_build(); every element must be finite.
 */
typedef struct rva_matrix_list {
	const float *const *data;
	size_t stride;
} rva_matrix_list;

/* Additive position bias on the logits. */
typedef enum rva_position_bias {
	RVA_BIAS_NONE = 0,
	RVA_BIAS_T5, /* T5 relative-position buckets; bidirectional, or causal when causal */
	RVA_BIAS_COUNT
} rva_position_bias;

/* Sparsity pattern of softmax attention (scaled_dot, multi_head, flash). */
typedef enum rva_sparse_pattern {
	RVA_PATTERN_DENSE = 0,
	RVA_PATTERN_STRIDED, /* Sparse Transformer strided: keys j <= i with i-j < stride, or
	                      * (i-j) % stride == 0; implies causal */
	RVA_PATTERN_FIXED,   /* Sparse Transformer fixed (Child et al. 2019, for text): keys
	                      * j <= i in i's own block of `stride` positions
	                      * (floor(j/stride) == floor(i/stride)), or among the last
	                      * sparse_summary positions of any block (j % stride >=
	                      * stride - sparse_summary); implies causal */
	RVA_PATTERN_COUNT
} rva_sparse_pattern;

/*
 * Where the query rows of a sequence with nq queries and nk keys sit (rva_config.
 * causal_align): their positions decide causal masking, the sliding window, ALiBi and T5
 * distances and the local-global / strided patterns. Key row j sits at position j.
 */
typedef enum rva_causal_align {
	RVA_CAUSAL_BOTTOM_RIGHT = 0, /* query i at nk - nq + i: the last query sees the last
	                              * key (decoding a continuation; FlashAttention-2's
	                              * alignment; the default) */
	RVA_CAUSAL_TOP_LEFT,         /* query i at i (PyTorch scaled_dot_product_attention's
	                              * is_causal: query i sees keys j <= i) */
	RVA_CAUSAL_ALIGN_COUNT
} rva_causal_align;

/*
 * Rotary position embedding (RoPE; Su et al., RoFormer, arXiv:2104.09864) on the query and
 * key rows of the softmax mechanisms (rva_config.rope). Within each head the first
 * rope_dim elements form rope_dim / 2 pairs (x0, x1); pair i at position p turns by the
 * angle p * theta^(-2i / rope_dim):
 *   x0' = x0 cos(a) - x1 sin(a),   x1' = x0 sin(a) + x1 cos(a);
 * the remaining head_dim - rope_dim elements pass unchanged (partial rotary). The layouts
 * differ only in which elements pair up:
 */
typedef enum rva_rope {
	RVA_ROPE_NONE = 0,  /* no rotation (default) */
	RVA_ROPE_NEOX,      /* pair i = (x[i], x[i + rope_dim/2]): GPT-NeoX, Hugging Face
	                     * Llama / Mistral / Gemma / Qwen2 ("rotate_half") */
	RVA_ROPE_GPTJ,      /* pair i = (x[2i], x[2i + 1]): GPT-J, the RoFormer paper, Meta's
	                     * original Llama code (interleaved) */
	RVA_ROPE_COUNT
} rva_rope;

/* Context extension of RoPE (rva_config.rope_scaling, with rope_factor F). */
typedef enum rva_rope_scaling {
	RVA_ROPE_SCALING_NONE = 0, /* default; rope_factor must be 0 */
	RVA_ROPE_SCALING_LINEAR,   /* position interpolation (Chen et al., arXiv:2306.15595):
	                            * positions p / F */
	RVA_ROPE_SCALING_NTK,      /* "NTK-aware" base change (bloc97, 2023; Code Llama's and
	                            * Hugging Face's static form): theta' = theta *
	                            * F^(rope_dim / (rope_dim - 2)) */
	RVA_ROPE_SCALING_COUNT
} rva_rope_scaling;

/* rva_config.window_left / window_right: no bound on that side of the window. */
#define RVA_WINDOW_UNBOUNDED SIZE_MAX

typedef struct rva_config {
	rva_mechanism mechanism;
	size_t dim;         /* query/output dimension = heads * head_dim; required, > 0, at
	                     * most 2^32 */
	size_t heads;       /* number of query heads; 0 = the default: 1 for scaled_dot and
	                     * hyperbolic, else the divisor of dim nearest dim/64 from below
	                     * that keeps head_dim >= 8 (12 at 768, 8 at 512, 1 at 64; the
	                     * presets' rule). rva_config_defaults sets 1, rva_multi_head
	                     * its argument, rva_flash the default */
	size_t kv_heads;    /* key/value heads dividing heads; 0 = heads (default) */
	/* Every float field must be finite, whether or not the mechanism uses it: rva_build
	 * refuses NaN and +-Inf with RVA_ERANGE naming the field. */
	float scale;        /* logit scale; 0 = 1/sqrt(head_dim) (default); T5 uses 1 */
	float dropout;      /* attention-probability dropout in training mode, [0, 1); default 0
	                     * (linear attention forms no probabilities and does not apply it) */
	bool causal;        /* key j visible to query i only if j <= nk - nq + i (the default
	                     * causal_align; top-left: j <= i); default false.
	                     * A query row with no visible key (causal with nq > nk: rows
	                     * i < nq - nk; or every key masked by the batch's key_mask) gets
	                     * an output row of zeros, on every mechanism and path (PyTorch's
	                     * scaled_dot_product_attention gives NaN there) */
	uint64_t seed;      /* seeds random features, router init, bias init; the constructors
	                     * set 0x5EED (0 is a seed like any other) */

	/* Softmax tiling (scaled_dot, multi_head, flash, local_global). The numbers do not
	 * depend on tiling beyond fp32 rounding, and tiling never depends on thread count. */
	size_t block_size;  /* keys per tile; 0 = default 128, at most 65536 (flash(dim,
	                     * block) sets it, 0 there too giving 128);
	                     * linear: keys per causal block, 16 blocks per key-state chunk */
	size_t query_block; /* queries per tile; 0 = default 64; at most 4096 */
	size_t kv_split;    /* split-KV chunk (keys) for decoding; 0 = automatic when
	                     * nq <= 16: equal chunks of at least ~3 MiB of work each (K/V
	                     * bytes plus products, by shape and K/V element types), none
	                     * when the sequence has less than two chunks' work; SIZE_MAX =
	                     * never split;
	                     * an explicit chunk applies when nq <= query_block */

	/* Local-global (Longformer). */
	size_t window;                 /* window size, even; 0 = default 256: keys |i-j| <=
	                                * window/2, or when causal the `window` previous keys
	                                * and i itself */
	size_t global_tokens;          /* the first global_tokens positions are global; the
	                                * constructors set 1, 0 = none;
	                                * any count is fine: beyond the sequence, every position
	                                * is global (the work follows the sequence) */
	const size_t *global_indices;  /* or an explicit list (positions, each < 2^32 - 1;
	                                * positions beyond a sequence are ignored for it);
	                                * overrides the count */
	size_t n_global_indices;

	/* Linear attention (Performer). */
	size_t features;               /* m, number of random features; 0 = default 256, at
	                                * most 65536 */
	rva_feature_map feature_map;   /* default RVA_FEATURES_FAVOR */
	bool orthogonal;               /* orthogonal random features (default true) */
	const float *feature_matrix;   /* optional m x head_dim row-major W to use instead of a
	                                * seeded draw (copied; m = features resolved, 256 for 0) */

	/* Hyperbolic attention. */
	float curvature;               /* c < 0; 0 = default -1 */
	float temperature;             /* > 0; 0 = default 1: scores = -d_c(q, k) / temperature */
	rva_aggregation aggregation;   /* default RVA_AGG_GYROMIDPOINT */
	size_t frechet_max_iter;       /* 0 = default 100, at most 10000 */
	float frechet_tol;             /* >= 0, on the Riemannian gradient norm; the
	                                * constructors set 1e-6 (0 = iterate to max_iter) */

	/* Mixture of experts. */
	size_t experts;                /* E, at most RVA_MOE_MAX_EXPERTS; 0 = default 8 */
	size_t top_k;                  /* k <= E; 0 = default min(2, E) */
	float expert_capacity;         /* capacity factor >= 0; the constructors set 1.25 (0
	                                * = no token kept); capacity per expert =
	                                * ceil(factor * tokens * k / E), tokens of the
	                                * sequence or of the batch (capacity_scope) */
	float jitter_noise;            /* epsilon in [0, 1), training only; default 0 */
	rva_expert_kind expert_kind;   /* default RVA_EXPERTS_MIXED */
	const float *router_weights;   /* optional E x dim row-major gate weights (copied,
	                                * finite); NULL = seeded init N(0, 1/dim) */
	size_t router_stride;          /* floats between router rows; 0 = dim */
	rva_gate_norm normalize_gates; /* default RVA_GATES_AUTO: Switch (raw) for k = 1,
	                                * GShard (renormalised over the k) for k > 1 */
	rva_capacity_scope capacity_scope; /* default RVA_CAPACITY_PER_SEQUENCE */
	/*
	 * Expert parameters (Mixture of Attention Heads, Zhang et al. 2022; SwitchHead,
	 * Csordas et al. 2023). Row vectors times matrices stored [in x out]:
	 *   q_e = x W_q[e]        W_q[e]: dim x dim      (per expert)
	 *   K'  = K W_k           W_k:    kv_dim x kv_dim (shared, or per expert)
	 *   V'  = V W_v           W_v:    kv_dim x kv_dim (shared, or per expert)
	 *   E_e(x) = attention_e(q_e, K', V') W_o[e]   W_o[e]: dim x dim (per expert)
	 * with kv_dim = kv_heads * head_dim and attention_e the expert's mechanism. Each list
	 * holds `experts` matrices (W_k, W_v: 1 when shared, `experts` when per expert).
	 * NULL data = seeded LeCun-normal initialisation N(0, 1/fan_in) (fan_in = rows),
	 * distinct per expert (drawn from seed); rva_attention_moe_weights returns them.
	 */
	rva_moe_kv kv_projection;      /* default RVA_MOE_KV_SHARED */
	rva_matrix_list expert_wq, expert_wo, expert_wk, expert_wv;

	/* Position bias (T5). */
	rva_position_bias bias;        /* default RVA_BIAS_NONE */
	size_t bias_buckets;           /* 0 = default 32 */
	size_t bias_max_distance;      /* 0 = default 128 */
	const float *bias_table;       /* optional bias_buckets x heads row-major (copied, every
	                                * entry finite); NULL = seeded init N(0, 0.1^2) */

	/* Sparse pattern. */
	rva_sparse_pattern pattern;    /* default RVA_PATTERN_DENSE */
	size_t sparse_stride;          /* l of the strided and fixed patterns; 0 = default 128 */
	size_t sparse_summary;         /* c of the fixed pattern, summary positions per block,
	                                * 1..sparse_stride; 0 = default min(16, sparse_stride)
	                                * (the paper used 8-32) */

	/*
	 * Score modifiers of the softmax family (scaled_dot, multi_head, flash, local_global).
	 * Each is computed inside the tiles:
	 * no nq x nk matrix is formed. On the scaled logit s = scale * q.k of query row i
	 * (position qp, see causal_align) and key row j (position j), in this order:
	 *   softcap:  s = softcap * tanh(s / softcap)                         (Gemma 2)
	 *   ALiBi:    s -= slope[h] * |qp - j|                                (Press et al.)
	 *   T5 bias, then the sequence's additive bias (rva_seq.bias, batch.h): s += ...
	 *   masks:    s = -inf where causal, the sliding window, the pattern, key_mask or
	 *             the sequence's boolean mask (rva_seq.mask) hide key j from query i.
	 * Zero in every field is the behaviour without them. The other mechanisms (linear,
	 * hyperbolic, moe) refuse a non-zero modifier at rva_build (RVA_EINVAL naming it).
	 */
	rva_causal_align causal_align; /* query positions; default bottom-right (see the enum) */
	float softcap;                 /* > 0: cap the scaled logits at +-softcap by tanh;
	                                * 0 = off (default); negative is refused (RVA_ERANGE) */
	/* Sliding window (FlashAttention's window_size = (window_left, window_right)): with
	 * sliding_window set, key j is visible to the query at position qp only if
	 * qp - window_left <= j <= qp + window_right. Both counts are real settings at 0 (0, 0
	 * = the query's own position only); RVA_WINDOW_UNBOUNDED (SIZE_MAX) lifts one side
	 * (FlashAttention's -1). It composes with causal (which removes j > qp whatever
	 * window_right says), with both alignments and with the patterns (a key must pass
	 * all of them). Key tiles wholly outside the band are skipped, never computed, and
	 * split-KV chunks wholly outside it are not planned. sliding_window = false (the
	 * default, zero) ignores the two counts, which must then be 0 (RVA_EINVAL otherwise:
	 * a count without the switch is a forgotten switch). Mistral 7B: causal, window_left
	 * 4095, window_right 0 (4096 keys including the query's own). */
	bool sliding_window;
	bool alibi;                    /* ALiBi linear biases (Press et al., arXiv:2108.12409):
	                                * s -= slope[h] * |qp - j|, with qp the query position of
	                                * causal_align; default false */
	size_t window_left, window_right;
	const float *alibi_slopes;     /* alibi: heads slopes (borrowed, copied by rva_build;
	                                * each finite and >= 0); NULL = the paper's geometric
	                                * slopes 2^(-8 (h+1) / n) for n = heads a power of two,
	                                * else those of the nearest power of two below n = 2^k
	                                * followed by every other slope of 2^(k+1) (the
	                                * reference implementation's rule). Setting slopes
	                                * without alibi is refused (RVA_EINVAL). */

	/*
	 * RoPE (rva_rope above), softmax mechanisms only (the others refuse it, RVA_EINVAL).
	 * Positions: key row j of a sequence at k_pos + j, query row i at q_pos + its
	 * causal_align position (nk - nq + i bottom-right, i top-left), q_pos / k_pos from
	 * rva_seq (batch.h; zero: the positions the masks use, which is what decoding a
	 * continuation needs). Q and K rows are rotated once per job (never per tile), so a
	 * call computes exactly the attention of the rotated rows; the rotation of a row
	 * depends only on its position, so outputs stay bit-identical for any thread count.
	 * The paged cache (kv_cache.h) stores keys rotated: attention over it rotates only
	 * the queries. rope_theta, rope_scaling, rope_factor and rope_dim without rope are
	 * refused (RVA_EINVAL: a forgotten switch).
	 */
	rva_rope rope;                 /* default RVA_ROPE_NONE */
	float rope_theta;              /* base > 0; 0 = 10000 (the paper's); negative is
	                                * refused (RVA_ERANGE) */
	rva_rope_scaling rope_scaling; /* default none */
	float rope_factor;             /* F > 0 of rope_scaling; 0 = 1 (no change); refused
	                                * without scaling (RVA_EINVAL), negative RVA_ERANGE */
	size_t rope_dim;               /* rotated elements per head, even, <= head_dim
	                                * (RVA_EINVAL odd, RVA_ERANGE larger); 0 = head_dim
	                                * (head_dim - 1 when head_dim is odd) */

	/*
	 * Head dimension of V (and of the output) in the softmax mechanisms (scaled_dot,
	 * multi_head, flash, local_global): 0 = head_dim (default). With Dv = v_head_dim, V
	 * rows have kv_heads * Dv elements and output rows heads * Dv (heads * Dv at most
	 * 2^32); Q and K keep head_dim = dim / heads. Multi-head latent attention
	 * (DeepSeek-V2/V3) has head_dim 192 (128 + a 64-dim rotary part) and v_head_dim 128.
	 * The linear, hyperbolic and moe mechanisms refuse a value other than head_dim
	 * (RVA_EINVAL); so do pipelines (their stream has dim columns), rva_kv_cache_submit
	 * and rvattn_mpi. rva_attention_config returns the resolved value.
	 */
	size_t v_head_dim;

	uint64_t reserved[7];          /* zero (see "Growth" above) */
} rva_config;

/* Constructors: every field at its documented default, then the arguments applied. */
rva_config rva_config_defaults(size_t dim);                       /* scaled_dot, 1 head */
rva_config rva_scaled_dot(size_t dim);
rva_config rva_multi_head(size_t dim, size_t heads);
rva_config rva_flash(size_t dim, size_t block_size);             /* heads: the default */
rva_config rva_linear(size_t dim, size_t features);
rva_config rva_local_global(size_t dim, size_t window);
rva_config rva_hyperbolic(size_t dim, float curvature);
rva_config rva_moe(size_t dim, size_t experts, size_t top_k);

/* Static lower-case name of a mechanism ("multi_head"); "unknown" when out of range. */
const char *rva_mechanism_name(rva_mechanism m);

/* Parses a mechanism name as printed by rva_mechanism_name (case-insensitive, '-' and '_'
 * equal). Errors: RVA_ENULL; RVA_ENOTFOUND with a message listing the known names. */
rva_status rva_mechanism_parse(const char *name, rva_mechanism *out);

RVA_END_DECLS
#endif

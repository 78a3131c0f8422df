/*
 * Model presets, smart selection and model names (the SDK guide's presets module).
 *
 * Every preset is a plain config built from the constructors of config.c. Where the guide
 * states a value the preset uses it; where it states none, the preset takes what a user of
 * that model family expects (the table in docs/ARCHITECTURE.md, Presets):
 *
 *   bert               multi_head, 12 heads, dropout 0.1, bidirectional
 *   gpt                multi_head, 12 heads, dropout 0.1, causal
 *   longformer         local_global, window 512, 1 global token, model heads, dropout 0.1
 *   performer          linear FAVOR+, 256 positive orthogonal random features, model heads
 *   flash_optimized    flash, block 128, model heads
 *   switch_transformer moe, 8 experts, top-2, capacity 1.25, jitter 0.01 (training only)
 *   hyperbolic_tree    hyperbolic, curvature -1 (one head: distances on the whole vector)
 *   t5                 multi_head, 12 heads, T5 relative-position bias (32 buckets, max
 *                      distance 128), scale 1 (no 1/sqrt(d)), dropout 0.1, bidirectional
 *   vit                multi_head, 12 heads, bidirectional, no dropout
 *   sparse_transformer flash (block 128) with the strided pattern of Child et al.,
 *                      stride 128, causal, model heads
 *   llama-2 ... qwen2  the decoders of include/rvattn/presets.h, from each model's released
 *                      configuration (decoder_presets below)
 *
 * "Model heads" is 12, the head count of the base-size models. Every preset, selection
 * and model name builds for every dim > 0: where its head count does not divide dim it
 * takes the largest divisor of dim below that count that keeps head_dim >= 8, or one head
 * when there is none (fit_heads below); e.g. 12 heads at 768, 8 at 512 and 1024, 10 at
 * 100, 1 at 97.
 */
#include <stdio.h>
#include <string.h>

#include "attention/config_defaults.h"
#include "core/internal.h"
#include "rvattn/presets.h"

/* The head count of a preset whose model has `heads` heads, at `dim` (the rule shared
 * with rva_flash and the heads default: rva__fit_heads, src/attention/config_defaults.h). */
static size_t fit_heads(size_t dim, size_t heads) { return rva__fit_heads(dim, heads); }

/* The base-size models' head count (see the file comment). */
#define MODEL_HEADS 12

/*
 * The decoders, from the models' released configurations (Hugging Face config.json of
 * each checkpoint: num_attention_heads, num_key_value_heads, head_dim or hidden_size /
 * heads, rope_theta, sliding_window, attn_logit_softcapping, query_pre_attn_scalar) and
 * papers:
 *   llama-2  meta-llama/Llama-2-7b-hf: 32 heads, 32 kv heads, hidden 4096, theta 10000
 *            (Touvron et al., arXiv:2307.09288: GQA only in the 34B/70B models)
 *   llama-3  meta-llama/Meta-Llama-3-8B: 32 heads, 8 kv heads, hidden 4096, theta 500000
 *   mistral  mistralai/Mistral-7B-v0.1: 32 heads, 8 kv heads, hidden 4096, sliding window
 *            4096, theta 10000 (Jiang et al., arXiv:2310.06825)
 *   gemma-2  google/gemma-2-9b: 16 heads, 8 kv heads, head_dim 256, softcap 50,
 *            query_pre_attn_scalar 256, sliding window 4096 on alternate layers, theta
 *            10000 (Gemma Team, arXiv:2408.00118)
 *   qwen2    Qwen/Qwen2-7B: 28 heads, 4 kv heads, hidden 3584, theta 1000000 (Yang et al.,
 *            arXiv:2407.10671)
 * All causal, RoPE on the full head in the rotate_half (GPT-NeoX) layout of those
 * checkpoints.
 */
typedef struct decoder {
	size_t heads, kv_heads, head_dim;
	float theta, softcap, scale;
	size_t window; /* keys of the sliding window including the query's own; 0 = none */
} decoder;

static const decoder decoders[] = {
	[RVA_PRESET_LLAMA2 - RVA_PRESET_LLAMA2] = {32, 32, 128, 10000.0f, 0.0f, 0.0f, 0},
	[RVA_PRESET_LLAMA3 - RVA_PRESET_LLAMA2] = {32, 8, 128, 500000.0f, 0.0f, 0.0f, 0},
	[RVA_PRESET_MISTRAL - RVA_PRESET_LLAMA2] = {32, 8, 128, 10000.0f, 0.0f, 0.0f, 4096},
	[RVA_PRESET_GEMMA2 - RVA_PRESET_LLAMA2] = {16, 8, 256, 10000.0f, 50.0f, 0.0625f, 4096},
	[RVA_PRESET_QWEN2 - RVA_PRESET_LLAMA2] = {28, 4, 128, 1000000.0f, 0.0f, 0.0f, 0},
};

static bool is_decoder(rva_preset p) { return p >= RVA_PRESET_LLAMA2 && p < RVA_PRESET_COUNT; }

/* The largest divisor of heads not above kv (grouped-query heads fitted to heads). */
static size_t fit_kv(size_t heads, size_t kv) {
	for (size_t k = rva__min(kv, heads); k > 1; k--)
		if (heads % k == 0)
			return k;
	return 1;
}

/* A decoder's config at dim, with its sliding window on (local layer) or off. */
static rva_config decoder_config(rva_preset p, size_t dim, bool local) {
	const decoder *d = &decoders[p - RVA_PRESET_LLAMA2];
	rva_config c = rva_flash(dim, 128);
	c.heads = fit_heads(dim, d->heads);
	size_t kvh = fit_kv(c.heads, d->kv_heads);
	c.kv_heads = kvh == c.heads ? 0 : kvh;
	c.causal = true;
	c.rope = RVA_ROPE_NEOX;
	c.rope_theta = d->theta;
	c.softcap = d->softcap;
	c.scale = d->scale; /* gemma-2: 1/sqrt(query_pre_attn_scalar 256); others 1/sqrt(d) */
	if (d->window && local) {
		c.sliding_window = true;
		c.window_left = d->window - 1;
		c.window_right = 0;
	}
	return c;
}

size_t rva_preset_model_dim(rva_preset p) {
	if (!is_decoder(p))
		return 768;
	const decoder *d = &decoders[p - RVA_PRESET_LLAMA2];
	return d->heads * d->head_dim;
}

rva_status rva_preset_layer_config(rva_preset p, size_t dim, size_t layer, rva_config *out) {
	if (!out)
		return rva__fail(RVA_ENULL, "rva_preset_layer_config: out is NULL");
	if ((unsigned)p >= RVA_PRESET_COUNT)
		return rva__fail(RVA_EINVAL, "rva_preset_layer_config: preset %d is out of range",
		                 (int)p);
	*out = p == RVA_PRESET_GEMMA2 ? decoder_config(p, dim, layer % 2 == 0)
	                              : rva_preset_config(p, dim);
	return RVA_OK;
}

rva_config rva_preset_config(rva_preset p, size_t dim) {
	rva_config c;
	if (is_decoder(p))
		return decoder_config(p, dim, true);
	switch (p) {
	case RVA_PRESET_BERT:
		c = rva_multi_head(dim, fit_heads(dim, MODEL_HEADS));
		c.dropout = 0.1f;
		c.causal = false;
		break;
	case RVA_PRESET_GPT:
		c = rva_multi_head(dim, fit_heads(dim, MODEL_HEADS));
		c.dropout = 0.1f;
		c.causal = true;
		break;
	case RVA_PRESET_LONGFORMER:
		c = rva_local_global(dim, 512);
		c.heads = fit_heads(dim, MODEL_HEADS);
		c.global_tokens = 1;
		c.dropout = 0.1f;
		break;
	case RVA_PRESET_PERFORMER:
		c = rva_linear(dim, 256);
		c.heads = fit_heads(dim, MODEL_HEADS);
		c.feature_map = RVA_FEATURES_FAVOR;
		c.orthogonal = true;
		break;
	case RVA_PRESET_FLASH_OPTIMIZED:
		c = rva_flash(dim, 128);
		c.heads = fit_heads(dim, MODEL_HEADS);
		break;
	case RVA_PRESET_SWITCH_TRANSFORMER:
		c = rva_moe(dim, 8, 2);
		c.expert_capacity = 1.25f;
		c.jitter_noise = 0.01f;
		break;
	case RVA_PRESET_HYPERBOLIC_TREE:
		c = rva_hyperbolic(dim, -1.0f);
		break;
	case RVA_PRESET_T5:
		c = rva_multi_head(dim, fit_heads(dim, MODEL_HEADS));
		c.bias = RVA_BIAS_T5;
		c.bias_buckets = 32;
		c.bias_max_distance = 128;
		c.scale = 1.0f;
		c.dropout = 0.1f;
		c.causal = false;
		break;
	case RVA_PRESET_VIT:
		c = rva_multi_head(dim, fit_heads(dim, MODEL_HEADS));
		c.dropout = 0.0f;
		c.causal = false;
		break;
	case RVA_PRESET_SPARSE_TRANSFORMER:
		c = rva_flash(dim, 128);
		c.heads = fit_heads(dim, MODEL_HEADS);
		c.pattern = RVA_PATTERN_STRIDED;
		c.sparse_stride = 128;
		c.causal = true;
		break;
	default:
		c = rva_config_defaults(dim);
		c.mechanism = RVA_MECH_COUNT; /* rva_build rejects it with RVA_EINVAL */
		break;
	}
	return c;
}

static const char *const preset_names[RVA_PRESET_COUNT] = {
	[RVA_PRESET_BERT] = "bert",
	[RVA_PRESET_GPT] = "gpt",
	[RVA_PRESET_LONGFORMER] = "longformer",
	[RVA_PRESET_PERFORMER] = "performer",
	[RVA_PRESET_FLASH_OPTIMIZED] = "flash_optimized",
	[RVA_PRESET_SWITCH_TRANSFORMER] = "switch_transformer",
	[RVA_PRESET_HYPERBOLIC_TREE] = "hyperbolic_tree",
	[RVA_PRESET_T5] = "t5",
	[RVA_PRESET_VIT] = "vit",
	[RVA_PRESET_SPARSE_TRANSFORMER] = "sparse_transformer",
	[RVA_PRESET_LLAMA2] = "llama-2",
	[RVA_PRESET_LLAMA3] = "llama-3",
	[RVA_PRESET_MISTRAL] = "mistral",
	[RVA_PRESET_GEMMA2] = "gemma-2",
	[RVA_PRESET_QWEN2] = "qwen2",
};

/* How a description says that the head count is fitted to dim (fit_heads). */
#define FEWER " (fewer where 12 does not divide dim)"

static const char *const preset_descriptions[RVA_PRESET_COUNT] = {
	[RVA_PRESET_BERT] = "multi_head, 12 heads" FEWER ", dropout 0.1, bidirectional",
	[RVA_PRESET_GPT] = "multi_head, 12 heads" FEWER ", dropout 0.1, causal",
	[RVA_PRESET_LONGFORMER] = "local_global, window 512, 1 global token, dropout 0.1, "
	                          "12 heads" FEWER,
	[RVA_PRESET_PERFORMER] = "linear FAVOR+, 256 positive orthogonal random features, "
	                         "12 heads" FEWER,
	[RVA_PRESET_FLASH_OPTIMIZED] = "flash, block 128, 12 heads" FEWER,
	[RVA_PRESET_SWITCH_TRANSFORMER] = "moe, 8 experts, top-2, capacity 1.25, jitter 0.01",
	[RVA_PRESET_HYPERBOLIC_TREE] = "hyperbolic (Poincare ball), curvature -1",
	[RVA_PRESET_T5] = "multi_head, 12 heads" FEWER ", T5 relative-position bias (32 "
	                  "buckets, max distance 128), scale 1, dropout 0.1",
	[RVA_PRESET_VIT] = "multi_head, 12 heads" FEWER ", bidirectional, no dropout",
	[RVA_PRESET_SPARSE_TRANSFORMER] = "flash, strided sparse pattern (stride 128), causal, "
	                                  "block 128, 12 heads" FEWER,
	[RVA_PRESET_LLAMA2] = "Llama 2 7B: causal flash, 32 heads x 128 at dim 4096 (MHA), RoPE "
	                      "neox theta 10000",
	[RVA_PRESET_LLAMA3] = "Llama 3 8B: causal flash, 32 q / 8 kv heads x 128 at dim 4096, "
	                      "RoPE neox theta 500000",
	[RVA_PRESET_MISTRAL] = "Mistral 7B: causal flash, 32 q / 8 kv heads x 128 at dim 4096, "
	                       "sliding window 4096, RoPE neox theta 10000",
	[RVA_PRESET_GEMMA2] = "Gemma 2 9B: causal flash, 16 q / 8 kv heads x 256 at dim 4096, "
	                      "softcap 50, scale 1/16, RoPE neox theta 10000; even layers window "
	                      "4096, odd layers global (this is layer 0)",
	[RVA_PRESET_QWEN2] = "Qwen2 7B: causal flash, 28 q / 4 kv heads x 128 at dim 3584, RoPE "
	                     "neox theta 1000000",
};

const char *rva_preset_name(rva_preset p) {
	if ((unsigned)p >= RVA_PRESET_COUNT)
		return "unknown";
	return preset_names[p];
}

const char *rva_preset_description(rva_preset p) {
	if ((unsigned)p >= RVA_PRESET_COUNT)
		return "unknown preset";
	return preset_descriptions[p];
}

/*
 * Names users type, each mapped to a preset and, for the model sizes whose head count
 * differs from the preset's, the heads of that model (0 = the preset's). Compared with
 * rva__name_eq: case-insensitive, '-' and '_' alike. The canonical preset names are
 * matched first (preset_names above).
 */
typedef struct model_alias {
	const char *name;
	rva_preset preset;
	size_t heads;
} model_alias;

static const model_alias model_aliases[] = {
	{"bert-base", RVA_PRESET_BERT, 0},
	{"bert-base-uncased", RVA_PRESET_BERT, 0},
	{"bert-base-cased", RVA_PRESET_BERT, 0},
	{"bert-large", RVA_PRESET_BERT, 16},
	{"bert-large-uncased", RVA_PRESET_BERT, 16},
	{"bert-large-cased", RVA_PRESET_BERT, 16},
	{"roberta", RVA_PRESET_BERT, 0},
	{"roberta-base", RVA_PRESET_BERT, 0},
	{"roberta-large", RVA_PRESET_BERT, 16},
	{"distilbert", RVA_PRESET_BERT, 0},
	{"gpt2", RVA_PRESET_GPT, 0},
	{"gpt-2", RVA_PRESET_GPT, 0},
	{"gpt2-medium", RVA_PRESET_GPT, 16},
	{"gpt2-large", RVA_PRESET_GPT, 20},
	{"gpt2-xl", RVA_PRESET_GPT, 25},
	/* GPT-3 175B (Brown et al. 2020, Table 2.1): 96 heads of 128 at dim 12288; these are
	 * its dense layers, presets.h says how to build its banded ones */
	{"gpt3", RVA_PRESET_GPT, 96},
	{"gpt-3", RVA_PRESET_GPT, 96},
	{"longformer-base", RVA_PRESET_LONGFORMER, 12},
	{"longformer-large", RVA_PRESET_LONGFORMER, 16},
	{"local-global", RVA_PRESET_LONGFORMER, 0},
	{"linear", RVA_PRESET_PERFORMER, 0},
	{"favor", RVA_PRESET_PERFORMER, 0},
	{"flash", RVA_PRESET_FLASH_OPTIMIZED, 0},
	{"flash-attention", RVA_PRESET_FLASH_OPTIMIZED, 0},
	{"switch", RVA_PRESET_SWITCH_TRANSFORMER, 0},
	{"switch-base", RVA_PRESET_SWITCH_TRANSFORMER, 12}, /* Switch-Base: 12 heads at 768 */
	{"moe", RVA_PRESET_SWITCH_TRANSFORMER, 0},
	{"hyperbolic", RVA_PRESET_HYPERBOLIC_TREE, 0},
	{"poincare", RVA_PRESET_HYPERBOLIC_TREE, 0},
	{"t5-small", RVA_PRESET_T5, 8},
	{"t5-base", RVA_PRESET_T5, 0},
	{"t5-large", RVA_PRESET_T5, 16},
	{"vit-base", RVA_PRESET_VIT, 0},
	{"vit-large", RVA_PRESET_VIT, 16},
	{"vit-huge", RVA_PRESET_VIT, 16},
	{"sparse", RVA_PRESET_SPARSE_TRANSFORMER, 0},
	{"llama2", RVA_PRESET_LLAMA2, 0},
	{"llama-2-7b", RVA_PRESET_LLAMA2, 0},
	{"llama3", RVA_PRESET_LLAMA3, 0},
	{"llama-3-8b", RVA_PRESET_LLAMA3, 0},
	{"mistral-7b", RVA_PRESET_MISTRAL, 0},
	{"gemma2", RVA_PRESET_GEMMA2, 0},
	{"gemma-2-9b", RVA_PRESET_GEMMA2, 0},
	{"qwen-2", RVA_PRESET_QWEN2, 0},
	{"qwen2-7b", RVA_PRESET_QWEN2, 0},
	{"sparse-attention", RVA_PRESET_SPARSE_TRANSFORMER, 0},
	/* the canonical names spelled without a separator */
	{"flashoptimized", RVA_PRESET_FLASH_OPTIMIZED, 0},
	{"switchtransformer", RVA_PRESET_SWITCH_TRANSFORMER, 0},
	{"hyperbolictree", RVA_PRESET_HYPERBOLIC_TREE, 0},
	{"sparsetransformer", RVA_PRESET_SPARSE_TRANSFORMER, 0},
};

#define KNOWN_NAMES                                                                        \
	"bert, gpt, longformer, performer, flash_optimized, switch_transformer, "          \
	"hyperbolic_tree, t5, vit, sparse_transformer; aliases: bert-base, bert-large, "    \
	"roberta, distilbert, gpt2, gpt-2, gpt2-medium/large/xl, gpt3, linear, flash, "     \
	"switch, switch-base, moe, hyperbolic, t5-small/base/large, vit-base/large/huge, "   \
	"sparse; decoders: llama-2, llama-3, mistral, gemma-2, qwen2 (also llama2, "       \
	"llama-2-7b, llama3, llama-3-8b, mistral-7b, gemma2, gemma-2-9b, qwen2-7b)"

/* Looks a name up; *heads gets the model's head count (0 = the preset's). */
static bool lookup(const char *name, rva_preset *p, size_t *heads) {
	for (int i = 0; i < RVA_PRESET_COUNT; i++)
		if (rva__name_eq(name, preset_names[i])) {
			*p = (rva_preset)i;
			*heads = 0;
			return true;
		}
	for (size_t i = 0; i < sizeof model_aliases / sizeof model_aliases[0]; i++)
		if (rva__name_eq(name, model_aliases[i].name)) {
			*p = model_aliases[i].preset;
			*heads = model_aliases[i].heads;
			return true;
		}
	return false;
}

rva_status rva_preset_from_name(const char *name, rva_preset *out) {
	if (!name || !out)
		return rva__fail(RVA_ENULL, "rva_preset_from_name: %s is NULL",
		                 !name ? "name" : "out");
	rva_preset p;
	size_t heads;
	if (!lookup(name, &p, &heads))
		return rva__fail(RVA_ENOTFOUND, "unknown preset '%.40s' (known: " KNOWN_NAMES ")",
		                 name);
	*out = p;
	return RVA_OK;
}

rva_status rva_from_model_name(const char *name, size_t dim, rva_config *out) {
	if (!name || !out)
		return rva__fail(RVA_ENULL, "rva_from_model_name: %s is NULL", !name ? "name" : "out");
	rva_preset p;
	size_t heads;
	if (!lookup(name, &p, &heads))
		return rva__fail(RVA_ENOTFOUND, "unknown model name '%.40s' (known: " KNOWN_NAMES
		                 ")", name);
	rva_config c = rva_preset_config(p, dim);
	if (heads)
		c.heads = fit_heads(dim, heads);
	*out = c;
	return RVA_OK;
}

/* ---- smart selection (the guide's thresholds) ----------------------------------------
 *
 * Selections are presets, so they build for every dim > 0 (the presets fit their heads);
 * the guide's own call for_sequences(512, max_len) selects Bert at dim 512: 8 heads.
 */

rva_config rva_for_sequences(size_t dim, size_t max_len) {
	if (max_len <= 512)
		return rva_preset_config(RVA_PRESET_BERT, dim);
	if (max_len <= 4096)
		return rva_preset_config(RVA_PRESET_LONGFORMER, dim);
	return rva_preset_config(RVA_PRESET_PERFORMER, dim);
}

/* General graphs: multi-head attention with 8 heads (Graph Attention Networks use 8), fitted
 * to dim like the presets. */
rva_config rva_for_graphs(size_t dim, bool hierarchical) {
	if (hierarchical)
		return rva_preset_config(RVA_PRESET_HYPERBOLIC_TREE, dim);
	return rva_multi_head(dim, fit_heads(dim, 8));
}

rva_config rva_for_large_scale(size_t dim) {
	return rva_preset_config(RVA_PRESET_FLASH_OPTIMIZED, dim);
}

/* The patch size decides how an image becomes tokens (dim-sized patch embeddings), which
 * happens before attention: it does not change the attention configuration. */
rva_config rva_for_vision(size_t dim, size_t patch_size) {
	(void)patch_size;
	return rva_preset_config(RVA_PRESET_VIT, dim);
}

rva_config rva_for_generation(size_t dim, size_t context_len) {
	if (context_len <= 2048)
		return rva_preset_config(RVA_PRESET_GPT, dim);
	rva_config c = rva_preset_config(RVA_PRESET_FLASH_OPTIMIZED, dim);
	c.causal = true;
	return c;
}

rva_config rva_for_moe(size_t dim, size_t experts, size_t top_k) {
	rva_config c = rva_preset_config(RVA_PRESET_SWITCH_TRANSFORMER, dim);
	c.experts = experts;
	c.top_k = top_k;
	return c;
}

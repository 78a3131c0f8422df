/*
 * rvattn — model presets and smart selection (the SDK guide's presets module).
 *
 * Presets resolve to plain configs (config.h) and cannot fail. Every preset, selection and
 * model name builds for every dim > 0: where the model's head count H does not divide dim,
 * the config takes the largest divisor of dim below H that keeps head_dim >= 8, or one head
 * when there is none (Bert: 12 heads at 768, 8 at 512, 10 at 100, 1 at 97). The heads
 * named below are H.
 */
#ifndef RVATTN_PRESETS_H
#define RVATTN_PRESETS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "status.h"

RVA_BEGIN_DECLS

typedef enum rva_preset {
	RVA_PRESET_BERT = 0,          /* multi-head, 12 heads, dropout 0.1, bidirectional */
	RVA_PRESET_GPT,               /* multi-head, 12 heads, dropout 0.1, causal */
	RVA_PRESET_LONGFORMER,        /* local-global, window 512, 1 global token */
	RVA_PRESET_PERFORMER,         /* linear FAVOR+, positive orthogonal random features */
	RVA_PRESET_FLASH_OPTIMIZED,   /* flash, block 128 */
	RVA_PRESET_SWITCH_TRANSFORMER,/* MoE, 8 experts, top-2, capacity 1.25, as the SDK
	                               * guide asks; the original Switch Transformer (Fedus
	                               * et al. 2021) routes top-1 with the raw router
	                               * probability as gate: set top_k = 1 for that (gates
	                               * then follow Switch by default, config.h) */
	RVA_PRESET_HYPERBOLIC_TREE,   /* hyperbolic, curvature -1 */
	RVA_PRESET_T5,                /* multi-head + T5 relative-position buckets, scale 1 */
	RVA_PRESET_VIT,               /* multi-head, 12 heads, bidirectional, no dropout */
	RVA_PRESET_SPARSE_TRANSFORMER,/* strided sparse pattern (local band + every l-th key) */
	/* Decoders (causal flash, RoPE in the Hugging Face "rotate_half" = GPT-NeoX layout, which
	 * is how their released checkpoints lay out q and k). Real dims at
	 * rva_preset_model_dim(p), fitted to other dims as above (kv heads: the largest
	 * divisor of the fitted heads not above the model's kv heads). */
	RVA_PRESET_LLAMA2,            /* "llama-2": Llama 2 7B, 32 heads x 128 (MHA), theta 1e4 */
	RVA_PRESET_LLAMA3,            /* "llama-3": Llama 3 8B, 32 q / 8 kv heads x 128, theta
	                               * 500000 */
	RVA_PRESET_MISTRAL,           /* "mistral": Mistral 7B v0.1, 32 q / 8 kv heads x 128,
	                               * sliding window 4096 (window_left 4095, right 0), theta
	                               * 1e4 */
	RVA_PRESET_GEMMA2,            /* "gemma-2": Gemma 2 9B, 16 q / 8 kv heads x 256, logit
	                               * softcap 50, scale 1/sqrt(256), theta 1e4; layers
	                               * alternate local (window 4096) and global: the preset
	                               * is layer 0 (local), rva_preset_layer_config gives
	                               * each layer */
	RVA_PRESET_QWEN2,             /* "qwen2": Qwen2 7B, 28 q / 4 kv heads x 128, theta 1e6 */
	RVA_PRESET_COUNT
} rva_preset;

/* AttentionPreset::X.builder(dim). An out-of-range preset gives a config that
 * rva_build() rejects with RVA_EINVAL. */
rva_config rva_preset_config(rva_preset p, size_t dim);

/*
 * The config of layer `layer` (0-based) of a preset's model into *out. Models whose layers
 * differ say so here: gemma-2 alternates, as Gemma 2 does (Hugging Face Gemma2, layer
 * l sliding when l is even): even layers are local (sliding window of 4096 keys including
 * the query's own: window_left 4095, window_right 0), odd layers global (no window).
 * Every other preset has the same config in every layer (rva_preset_config). Any layer
 * index is accepted (the alternation repeats). Errors: RVA_ENULL; RVA_EINVAL (p out of
 * range).
 */
rva_status rva_preset_layer_config(rva_preset p, size_t dim, size_t layer, rva_config *out);

/* The model's attention width (query heads x head_dim) for the decoder presets (llama-2,
 * llama-3, mistral, gemma-2: 4096; qwen2: 3584), 768 for the others and out of range. */
size_t rva_preset_model_dim(rva_preset p);

/* Static canonical name ("bert", "flash_optimized", ...); "unknown" when out of range. */
const char *rva_preset_name(rva_preset p);

/* One line saying what the preset resolves to (static string). */
const char *rva_preset_description(rva_preset p);

/* Name (canonical or alias, case-insensitive) to preset. Errors: RVA_ENULL;
 * RVA_ENOTFOUND with a message listing the known names. */
rva_status rva_preset_from_name(const char *name, rva_preset *out);

/* Smart selection, with the guide's thresholds. A selection is a preset (or, for general
 * graphs, multi-head attention with H = 8) and builds for its dim as above, e.g.
 * for_sequences(512, 512) is Bert with 8 heads and for_graphs(100, false) has 5. */
rva_config rva_for_sequences(size_t dim, size_t max_len);  /* <=512 Bert, <=4096 Longformer,
                                                             * else Performer */
rva_config rva_for_graphs(size_t dim, bool hierarchical);  /* Hyperbolic or multi-head (8) */
rva_config rva_for_large_scale(size_t dim);                /* Flash (FlashOptimized) */
rva_config rva_for_vision(size_t dim, size_t patch_size);  /* ViT */
rva_config rva_for_generation(size_t dim, size_t context_len); /* <=2048 Gpt, else causal
                                                                * flash */
rva_config rva_for_moe(size_t dim, size_t experts, size_t top_k);

/*
 * from_model_name(name, dim): case-insensitive, with the aliases users type (bert,
 * bert-base, gpt, gpt2, gpt-2, longformer, performer, t5, vit, switch, ...). A name of a
 * model size gives that model's head count H (fitted to dim as above): bert-large,
 * roberta-large, gpt2-medium, longformer-large, t5-large, vit-large, vit-huge 16;
 * gpt2-large 20; gpt2-xl 25; t5-small 8; switch-base 12; gpt3 96.
 *
 * gpt3 (or gpt-3) is GPT-3 175B: 96 heads of 128 at dim 12288, causal. GPT-3 alternates
 * dense and locally banded sparse attention layers (Brown et al. 2020, section 2.1, "similar
 * to the Sparse Transformer"); the name gives the dense layers. A banded layer is causal
 * local-global attention without global tokens:
 *   rva_config band = rva_local_global(12288, W);  band.heads = 96;
 *   band.causal = true;  band.global_tokens = 0;
 * where each position sees itself and the W positions before it (W even). The paper does
 * not publish the band width; EleutherAI's GPT-Neo, an open replication, uses 256.
 * Errors: RVA_ENULL; RVA_ENOTFOUND with a message listing the known names.
 */
rva_status rva_from_model_name(const char *name, size_t dim, rva_config *out);

RVA_END_DECLS
#endif

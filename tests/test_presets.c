/* Presets, smart selection and model names (presets.h). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rvattn/attention.h"
#include "rvattn/presets.h"

static void build_ok(const rva_config *c) {
	rva_attention *att = NULL;
	rva_status st = rva_build(c, &att);
	cr_assert_eq(st, RVA_OK, "build %s dim %zu: %s (%s)", rva_mechanism_name(c->mechanism),
	             c->dim, rva_status_name(st), rva_last_error());
	rva_attention_destroy(att);
}

/* The fields that define a preset (pointer fields stay NULL in every preset). */
static void assert_same_config(const rva_config *a, const rva_config *b) {
	cr_assert_eq(a->mechanism, b->mechanism);
	cr_assert_eq(a->dim, b->dim);
	cr_assert_eq(a->heads, b->heads);
	cr_assert_eq(a->kv_heads, b->kv_heads);
	cr_assert_float_eq(a->scale, b->scale, 0.0f);
	cr_assert_float_eq(a->dropout, b->dropout, 0.0f);
	cr_assert_eq(a->causal, b->causal);
	cr_assert_eq(a->block_size, b->block_size);
	cr_assert_eq(a->window, b->window);
	cr_assert_eq(a->global_tokens, b->global_tokens);
	cr_assert_eq(a->features, b->features);
	cr_assert_eq(a->feature_map, b->feature_map);
	cr_assert_eq(a->orthogonal, b->orthogonal);
	cr_assert_float_eq(a->curvature, b->curvature, 0.0f);
	cr_assert_eq(a->experts, b->experts);
	cr_assert_eq(a->top_k, b->top_k);
	cr_assert_float_eq(a->expert_capacity, b->expert_capacity, 0.0f);
	cr_assert_float_eq(a->jitter_noise, b->jitter_noise, 0.0f);
	cr_assert_eq(a->bias, b->bias);
	cr_assert_eq(a->bias_buckets, b->bias_buckets);
	cr_assert_eq(a->bias_max_distance, b->bias_max_distance);
	cr_assert_eq(a->pattern, b->pattern);
	cr_assert_eq(a->sparse_stride, b->sparse_stride);
}

Test(presets, bert) {
	rva_config c = rva_preset_config(RVA_PRESET_BERT, 768);
	cr_assert_eq(c.mechanism, RVA_MECH_MULTI_HEAD);
	cr_assert_eq(c.dim, 768);
	cr_assert_eq(c.heads, 12);
	cr_assert_float_eq(c.dropout, 0.1f, 1e-7f);
	cr_assert_not(c.causal);
	cr_assert_eq(c.bias, RVA_BIAS_NONE);
	cr_assert_float_eq(c.scale, 0.0f, 0.0f); /* 1/sqrt(head_dim) */
	build_ok(&c);
}

Test(presets, gpt) {
	rva_config c = rva_preset_config(RVA_PRESET_GPT, 768);
	cr_assert_eq(c.mechanism, RVA_MECH_MULTI_HEAD);
	cr_assert_eq(c.heads, 12);
	cr_assert_float_eq(c.dropout, 0.1f, 1e-7f);
	cr_assert(c.causal);
	build_ok(&c);
}

Test(presets, longformer) {
	rva_config c = rva_preset_config(RVA_PRESET_LONGFORMER, 512);
	cr_assert_eq(c.mechanism, RVA_MECH_LOCAL_GLOBAL);
	cr_assert_eq(c.window, 512);
	cr_assert_eq(c.global_tokens, 1);
	cr_assert_null(c.global_indices);
	cr_assert_eq(c.heads, 8); /* 12 does not divide 512 */
	cr_assert_not(c.causal);
	build_ok(&c);
	c = rva_preset_config(RVA_PRESET_LONGFORMER, 768);
	cr_assert_eq(c.heads, 12);
	build_ok(&c);
}

Test(presets, performer) {
	rva_config c = rva_preset_config(RVA_PRESET_PERFORMER, 512);
	cr_assert_eq(c.mechanism, RVA_MECH_LINEAR);
	cr_assert_eq(c.feature_map, RVA_FEATURES_FAVOR);
	cr_assert(c.orthogonal);
	cr_assert_eq(c.features, 256);
	cr_assert_eq(c.heads, 8);
	build_ok(&c);
}

Test(presets, flash_optimized_heads) {
	rva_config c = rva_preset_config(RVA_PRESET_FLASH_OPTIMIZED, 1024);
	cr_assert_eq(c.mechanism, RVA_MECH_FLASH);
	cr_assert_eq(c.block_size, 128);
	cr_assert_eq(c.heads, 8); /* 1024: 12 does not divide, 8 does */
	build_ok(&c);
	c = rva_preset_config(RVA_PRESET_FLASH_OPTIMIZED, 768);
	cr_assert_eq(c.heads, 12);
	build_ok(&c);
	c = rva_preset_config(RVA_PRESET_FLASH_OPTIMIZED, 100); /* 10: largest divisor below 12 */
	cr_assert_eq(c.heads, 10);
	build_ok(&c);
	c = rva_preset_config(RVA_PRESET_FLASH_OPTIMIZED, 97); /* prime: one head */
	cr_assert_eq(c.heads, 1);
	build_ok(&c);
}

Test(presets, switch_transformer) {
	rva_config c = rva_preset_config(RVA_PRESET_SWITCH_TRANSFORMER, 512);
	cr_assert_eq(c.mechanism, RVA_MECH_MOE);
	cr_assert_eq(c.experts, 8);
	cr_assert_eq(c.top_k, 2);
	cr_assert_float_eq(c.expert_capacity, 1.25f, 0.0f);
	cr_assert_float_eq(c.jitter_noise, 0.01f, 1e-8f);
	build_ok(&c);
}

Test(presets, hyperbolic_tree) {
	rva_config c = rva_preset_config(RVA_PRESET_HYPERBOLIC_TREE, 512);
	cr_assert_eq(c.mechanism, RVA_MECH_HYPERBOLIC);
	cr_assert_float_eq(c.curvature, -1.0f, 0.0f);
	cr_assert_eq(c.heads, 1);
	build_ok(&c);
}

Test(presets, t5) {
	rva_config c = rva_preset_config(RVA_PRESET_T5, 768);
	cr_assert_eq(c.mechanism, RVA_MECH_MULTI_HEAD);
	cr_assert_eq(c.heads, 12);
	cr_assert_eq(c.bias, RVA_BIAS_T5);
	cr_assert_eq(c.bias_buckets, 32);
	cr_assert_eq(c.bias_max_distance, 128);
	cr_assert_float_eq(c.scale, 1.0f, 0.0f); /* no 1/sqrt(d) (T5: docs/ARCHITECTURE.md) */
	cr_assert_not(c.causal);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s", rva_last_error());
	rva_config r;
	cr_assert_eq(rva_attention_config(att, &r), RVA_OK);
	cr_assert_float_eq(r.scale, 1.0f, 0.0f, "scale 1 kept after build");
	rva_attention_destroy(att);
}

Test(presets, vit) {
	rva_config c = rva_preset_config(RVA_PRESET_VIT, 768);
	cr_assert_eq(c.mechanism, RVA_MECH_MULTI_HEAD);
	cr_assert_eq(c.heads, 12);
	cr_assert_float_eq(c.dropout, 0.0f, 0.0f);
	cr_assert_not(c.causal);
	build_ok(&c);
}

Test(presets, sparse_transformer) {
	rva_config c = rva_preset_config(RVA_PRESET_SPARSE_TRANSFORMER, 512);
	cr_assert(c.mechanism == RVA_MECH_FLASH || c.mechanism == RVA_MECH_MULTI_HEAD);
	cr_assert_eq(c.pattern, RVA_PATTERN_STRIDED);
	cr_assert_eq(c.sparse_stride, 128);
	cr_assert(c.causal);
	cr_assert_eq(c.heads, 8);
	build_ok(&c);
}

Test(presets, every_preset_builds_at_768) {
	for (int p = 0; p < RVA_PRESET_COUNT; p++) {
		rva_config c = rva_preset_config((rva_preset)p, 768);
		cr_assert_eq(c.dim, 768, "%s", rva_preset_name((rva_preset)p));
		build_ok(&c);
	}
}

Test(presets, heads_fit_dims_that_12_does_not_divide) {
	static const struct {
		size_t dim, heads;
	} cases[] = {
		{768, 12}, {96, 12}, {12, 12}, /* 12 divides: the model's 12, whatever head_dim */
		{512, 8}, {1024, 8}, {100, 10}, {200, 10}, {640, 10}, {90, 10}, {56, 7},
		{16, 2}, {24, 12}, {40, 5}, {97, 1}, {15, 1}, {7, 1}, {1, 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		rva_config c = rva_preset_config(RVA_PRESET_BERT, cases[i].dim);
		cr_assert_eq(c.heads, cases[i].heads, "bert at dim %zu: %zu heads, want %zu",
		             cases[i].dim, c.heads, cases[i].heads);
		build_ok(&c);
	}
	/* a user's explicit head count is not fitted: 12 heads at dim 100 still fail */
	rva_config c = rva_multi_head(100, 12);
	rva_attention *att = NULL;
	cr_assert_eq(rva_build(&c, &att), RVA_EDIM);
	cr_assert_null(att);
	cr_assert(strstr(rva_last_error(), "12") && strstr(rva_last_error(), "100"), "%s",
	          rva_last_error());
}

Test(presets, out_of_range_preset) {
	rva_config c = rva_preset_config(RVA_PRESET_COUNT, 512);
	rva_attention *att = NULL;
	cr_assert_eq(rva_build(&c, &att), RVA_EINVAL);
	c = rva_preset_config((rva_preset)-1, 512);
	cr_assert_eq(rva_build(&c, &att), RVA_EINVAL);
	cr_assert_str_eq(rva_preset_name(RVA_PRESET_COUNT), "unknown");
	cr_assert_str_eq(rva_preset_name((rva_preset)-3), "unknown");
	cr_assert_not_null(rva_preset_description(RVA_PRESET_COUNT));
}

Test(presets, names_round_trip) {
	static const char *const expect[RVA_PRESET_COUNT] = {
		"bert", "gpt", "longformer", "performer", "flash_optimized", "switch_transformer",
		"hyperbolic_tree", "t5", "vit", "sparse_transformer", "llama-2", "llama-3", "mistral",
		"gemma-2", "qwen2"};
	for (int p = 0; p < RVA_PRESET_COUNT; p++) {
		cr_assert_str_eq(rva_preset_name((rva_preset)p), expect[p]);
		rva_preset q;
		cr_assert_eq(rva_preset_from_name(expect[p], &q), RVA_OK);
		cr_assert_eq(q, (rva_preset)p);
		const char *d = rva_preset_description((rva_preset)p);
		cr_assert(d && strlen(d) > 10 && !strchr(d, '\n'), "%s: '%s'", expect[p], d);
	}
	/* descriptions say what they resolve to */
	cr_assert(strstr(rva_preset_description(RVA_PRESET_BERT), "12 heads"));
	cr_assert(strstr(rva_preset_description(RVA_PRESET_GPT), "causal"));
	cr_assert(strstr(rva_preset_description(RVA_PRESET_LONGFORMER), "512"));
	cr_assert(strstr(rva_preset_description(RVA_PRESET_FLASH_OPTIMIZED), "128"));
	cr_assert(strstr(rva_preset_description(RVA_PRESET_SWITCH_TRANSFORMER), "8 experts"));
	cr_assert(strstr(rva_preset_description(RVA_PRESET_T5), "32 buckets"));
}

Test(presets, from_name_aliases_and_case) {
	static const struct {
		const char *name;
		rva_preset p;
	} cases[] = {
		{"BERT", RVA_PRESET_BERT}, {"Bert-Base", RVA_PRESET_BERT},
		{"bert_large", RVA_PRESET_BERT}, {"RoBERTa", RVA_PRESET_BERT},
		{"GPT", RVA_PRESET_GPT}, {"gpt2", RVA_PRESET_GPT}, {"GPT-2", RVA_PRESET_GPT},
		{"gpt3", RVA_PRESET_GPT}, {"FlashOptimized", RVA_PRESET_FLASH_OPTIMIZED},
		{"flash-optimized", RVA_PRESET_FLASH_OPTIMIZED}, {"Flash", RVA_PRESET_FLASH_OPTIMIZED},
		{"switch", RVA_PRESET_SWITCH_TRANSFORMER},
		{"Switch-Transformer", RVA_PRESET_SWITCH_TRANSFORMER},
		{"MoE", RVA_PRESET_SWITCH_TRANSFORMER}, {"hyperbolic", RVA_PRESET_HYPERBOLIC_TREE},
		{"HYPERBOLIC_TREE", RVA_PRESET_HYPERBOLIC_TREE}, {"T5", RVA_PRESET_T5},
		{"t5-base", RVA_PRESET_T5}, {"ViT", RVA_PRESET_VIT}, {"vit-base", RVA_PRESET_VIT},
		{"sparse", RVA_PRESET_SPARSE_TRANSFORMER},
		{"SparseTransformer", RVA_PRESET_SPARSE_TRANSFORMER},
		{"sparse-transformer", RVA_PRESET_SPARSE_TRANSFORMER},
		{"Longformer", RVA_PRESET_LONGFORMER}, {"performer", RVA_PRESET_PERFORMER},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		rva_preset p = RVA_PRESET_COUNT;
		cr_assert_eq(rva_preset_from_name(cases[i].name, &p), RVA_OK, "%s", cases[i].name);
		cr_assert_eq(p, cases[i].p, "%s -> %s", cases[i].name, rva_preset_name(p));
		rva_config c;
		cr_assert_eq(rva_from_model_name(cases[i].name, 768, &c), RVA_OK, "%s",
		             cases[i].name);
		rva_config want = rva_preset_config(cases[i].p, 768);
		cr_assert_eq(c.mechanism, want.mechanism, "%s", cases[i].name);
	}
}

Test(presets, from_model_name_guide_calls) {
	rva_config c;
	cr_assert_eq(rva_from_model_name("bert", 768, &c), RVA_OK);
	rva_config w = rva_preset_config(RVA_PRESET_BERT, 768);
	assert_same_config(&c, &w);
	cr_assert_eq(rva_from_model_name("gpt2", 768, &c), RVA_OK);
	w = rva_preset_config(RVA_PRESET_GPT, 768);
	assert_same_config(&c, &w);
	cr_assert_eq(rva_from_model_name("longformer", 512, &c), RVA_OK);
	w = rva_preset_config(RVA_PRESET_LONGFORMER, 512);
	assert_same_config(&c, &w);
	cr_assert_eq(rva_from_model_name("t5", 768, &c), RVA_OK);
	w = rva_preset_config(RVA_PRESET_T5, 768);
	assert_same_config(&c, &w);
	cr_assert_eq(rva_from_model_name("vit", 768, &c), RVA_OK);
	w = rva_preset_config(RVA_PRESET_VIT, 768);
	assert_same_config(&c, &w);
	build_ok(&c);
}

Test(presets, model_sizes_set_their_heads) {
	rva_config c;
	cr_assert_eq(rva_from_model_name("bert-large", 1024, &c), RVA_OK);
	cr_assert_eq(c.heads, 16);
	cr_assert_float_eq(c.dropout, 0.1f, 1e-7f);
	build_ok(&c);
	cr_assert_eq(rva_from_model_name("gpt2-medium", 1024, &c), RVA_OK);
	cr_assert_eq(c.heads, 16);
	cr_assert(c.causal);
	build_ok(&c);
	cr_assert_eq(rva_from_model_name("gpt2-xl", 1600, &c), RVA_OK);
	cr_assert_eq(c.heads, 25);
	build_ok(&c);
	cr_assert_eq(rva_from_model_name("t5-small", 512, &c), RVA_OK);
	cr_assert_eq(c.heads, 8);
	cr_assert_eq(c.bias, RVA_BIAS_T5);
	build_ok(&c);
}

Test(presets, unknown_names) {
	rva_config c = rva_preset_config(RVA_PRESET_BERT, 768);
	rva_config before = c;
	cr_assert_eq(rva_from_model_name("llama-7b", 768, &c), RVA_ENOTFOUND);
	const char *msg = rva_last_error();
	cr_assert(strstr(msg, "llama-7b"), "%s", msg);
	cr_assert(strstr(msg, "bert") && strstr(msg, "performer") && strstr(msg, "sparse_transformer"),
	          "message lists the known names: %s", msg);
	assert_same_config(&c, &before); /* output untouched */
	rva_preset p = RVA_PRESET_VIT;
	cr_assert_eq(rva_preset_from_name("", &p), RVA_ENOTFOUND);
	cr_assert_eq(rva_preset_from_name("bert ", &p), RVA_ENOTFOUND);
	cr_assert_eq(rva_preset_from_name("bertx", &p), RVA_ENOTFOUND);
	cr_assert_eq(p, RVA_PRESET_VIT);
	/* a very long name does not overflow the message */
	char longname[2000];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	cr_assert_eq(rva_preset_from_name(longname, &p), RVA_ENOTFOUND);
	cr_assert(strstr(rva_last_error(), "bert"));
}

Test(presets, null_arguments) {
	rva_config c;
	rva_preset p;
	cr_assert_eq(rva_from_model_name(NULL, 768, &c), RVA_ENULL);
	cr_assert_eq(rva_from_model_name("bert", 768, NULL), RVA_ENULL);
	cr_assert_eq(rva_preset_from_name(NULL, &p), RVA_ENULL);
	cr_assert_eq(rva_preset_from_name("bert", NULL), RVA_ENULL);
}

Test(selection, for_sequences_boundaries) {
	rva_config c = rva_for_sequences(768, 1);
	cr_assert_eq(c.mechanism, RVA_MECH_MULTI_HEAD);
	c = rva_for_sequences(768, 512);
	rva_config w = rva_preset_config(RVA_PRESET_BERT, 768);
	assert_same_config(&c, &w);
	c = rva_for_sequences(768, 513);
	w = rva_preset_config(RVA_PRESET_LONGFORMER, 768);
	assert_same_config(&c, &w);
	c = rva_for_sequences(768, 4096);
	assert_same_config(&c, &w);
	c = rva_for_sequences(768, 4097);
	w = rva_preset_config(RVA_PRESET_PERFORMER, 768);
	assert_same_config(&c, &w);
	c = rva_for_sequences(512, 8192); /* the guide's call */
	cr_assert_eq(c.mechanism, RVA_MECH_LINEAR);
	build_ok(&c);
}

Test(selection, for_generation_boundaries) {
	rva_config c = rva_for_generation(768, 2048);
	rva_config w = rva_preset_config(RVA_PRESET_GPT, 768);
	assert_same_config(&c, &w);
	c = rva_for_generation(768, 2049);
	cr_assert_eq(c.mechanism, RVA_MECH_FLASH);
	cr_assert(c.causal);
	cr_assert_eq(c.block_size, rva_preset_config(RVA_PRESET_FLASH_OPTIMIZED, 768).block_size);
	cr_assert_eq(c.heads, 12);
	build_ok(&c);
}

Test(selection, for_graphs) {
	rva_config c = rva_for_graphs(256, true);
	rva_config w = rva_preset_config(RVA_PRESET_HYPERBOLIC_TREE, 256);
	assert_same_config(&c, &w);
	c = rva_for_graphs(256, false);
	cr_assert_eq(c.mechanism, RVA_MECH_MULTI_HEAD);
	cr_assert_eq(c.heads, 8);
	build_ok(&c);
}

Test(selection, large_scale_vision_moe) {
	rva_config c = rva_for_large_scale(1024);
	rva_config w = rva_preset_config(RVA_PRESET_FLASH_OPTIMIZED, 1024);
	assert_same_config(&c, &w);
	w = rva_preset_config(RVA_PRESET_VIT, 768);
	c = rva_for_vision(768, 16);
	assert_same_config(&c, &w);
	c = rva_for_vision(768, 32); /* the patch size does not change the attention */
	assert_same_config(&c, &w);
	c = rva_for_moe(512, 16, 4);
	cr_assert_eq(c.mechanism, RVA_MECH_MOE);
	cr_assert_eq(c.experts, 16);
	cr_assert_eq(c.top_k, 4);
	cr_assert_float_eq(c.expert_capacity,
	                   rva_preset_config(RVA_PRESET_SWITCH_TRANSFORMER, 512).expert_capacity,
	                   0.0f);
	build_ok(&c);
	c = rva_for_moe(512, 4, 5); /* top_k > experts: rejected at build */
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
}

Test(selection, always_buildable) {
	/* the guide's call for_sequences(512, max_len) selects Bert at dim 512: 8 heads */
	rva_config c = rva_for_sequences(512, 512);
	cr_assert_eq(c.mechanism, RVA_MECH_MULTI_HEAD);
	cr_assert_eq(c.heads, 8);
	cr_assert_float_eq(c.dropout, 0.1f, 1e-7f);
	build_ok(&c);
	c = rva_for_generation(512, 100);
	cr_assert_eq(c.heads, 8);
	cr_assert(c.causal);
	build_ok(&c);
	c = rva_for_vision(100, 16); /* neither 12 nor 8 divides 100 */
	cr_assert_eq(c.heads, 10);
	build_ok(&c);
	c = rva_for_graphs(100, false); /* 8 does not divide 100 */
	cr_assert_eq(c.mechanism, RVA_MECH_MULTI_HEAD);
	cr_assert_eq(c.heads, 5);
	build_ok(&c);
	/* where 12 divides dim, exactly the preset */
	c = rva_for_vision(768, 16);
	cr_assert_eq(c.heads, 12);
	for (size_t dim = 1; dim <= 200; dim++) {
		const rva_config cs[] = {rva_for_sequences(dim, 100), rva_for_sequences(dim, 1000),
		                         rva_for_sequences(dim, 10000), rva_for_graphs(dim, true),
		                         rva_for_large_scale(dim), rva_for_vision(dim, 16),
		                         rva_for_generation(dim, 100), rva_for_generation(dim, 5000)};
		for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
			cr_assert_eq(dim % cs[i].heads, 0, "dim %zu selection %zu: %zu heads", dim, i,
			             cs[i].heads);
	}
}

Test(presets, gpt3_is_gpt3) {
	rva_config c;
	cr_assert_eq(rva_from_model_name("gpt3", 12288, &c), RVA_OK);
	cr_assert_eq(c.mechanism, RVA_MECH_MULTI_HEAD);
	cr_assert_eq(c.heads, 96); /* head_dim 128 */
	cr_assert(c.causal);
	build_ok(&c);
	cr_assert_eq(rva_from_model_name("GPT-3", 12288, &c), RVA_OK);
	cr_assert_eq(c.heads, 96);
	cr_assert_eq(rva_from_model_name("switch-base", 768, &c), RVA_OK);
	cr_assert_eq(c.mechanism, RVA_MECH_MOE);
	cr_assert_eq(c.heads, 12);
	/* not GPT-2's 12 heads at its own size either; fitted elsewhere */
	cr_assert_eq(rva_from_model_name("gpt3", 1000, &c), RVA_OK);
	cr_assert_eq(c.heads, 50); /* largest divisor of 1000 below 96 with head_dim >= 8 */
	build_ok(&c);
}

/* presets.h's recipe for GPT-3's locally banded layers: causal local-global without global
 * tokens; position i attends itself and the W positions before it. Checked at a small
 * size against dense multi-head attention over exactly those keys. */
Test(presets, gpt3_banded_layer_recipe) {
	enum { DIM = 64, HEADS = 4, W = 4, N = 11 };
	rva_config band = rva_local_global(DIM, W);
	band.heads = HEADS;
	band.causal = true;
	band.global_tokens = 0;
	rva_config dense = rva_multi_head(DIM, HEADS);
	rva_attention *ab = NULL, *ad = NULL;
	cr_assert_eq(rva_build(&band, &ab), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_build(&dense, &ad), RVA_OK, "%s", rva_last_error());
	float x[N * DIM], out[N * DIM];
	uint64_t st = 12345;
	for (int i = 0; i < N * DIM; i++) {
		st = st * 6364136223846793005ull + 1442695040888963407ull;
		x[i] = (float)((st >> 40) & 0xFFFF) / 32768.0f - 1.0f;
	}
	rva_seq s = {.nq = N, .nk = N, .q = x, .k = x, .v = x, .out = out};
	rva_batch b = {.count = 1, .seqs = &s};
	cr_assert_eq(rva_compute_batch(ab, &b, NULL, NULL), RVA_OK, "%s", rva_last_error());
	for (int i = 0; i < N; i++) {
		int lo = i - W < 0 ? 0 : i - W;
		const float *rows[W + 1];
		for (int j = lo; j <= i; j++)
			rows[j - lo] = x + j * DIM;
		float want[DIM];
		cr_assert_eq(rva_compute(ad, x + i * DIM, rows, rows, (size_t)(i - lo + 1), want),
		             RVA_OK);
		for (int f = 0; f < DIM; f++)
			cr_assert_float_eq(out[i * DIM + f], want[f], 1e-5f, "row %d col %d", i, f);
	}
	rva_attention_destroy(ab);
	rva_attention_destroy(ad);
}

/* Builds c and runs one query over three keys; checks the head count against the rule of
 * presets.h (H = the model's heads) and that the output is finite. */
static void fits_and_runs(const rva_config *c, size_t H, const char *what, size_t dim) {
	cr_assert_eq(c->dim, dim, "%s", what);
	cr_assert(c->heads >= 1 && dim % c->heads == 0, "%s dim %zu: %zu heads", what, dim,
	          c->heads);
	if (dim % H == 0)
		cr_assert_eq(c->heads, H, "%s dim %zu: %zu heads, the model has %zu", what, dim,
		             c->heads, H);
	else
		cr_assert(c->heads < H && (c->heads == 1 || dim / c->heads >= 8), "%s dim %zu: %zu "
		          "heads", what, dim, c->heads);
	/* An MoE build draws every expert's parameters (random features of its linear experts,
	 * projections, E x dim x dim normals each): ~0.1 s at small dims, seconds at large ones.
	 * Its head count is fitted by the same code as every other preset's, so MoE configs are
	 * built at a sample of dims: up to 24 and every 5th up to 300. */
	if (c->mechanism == RVA_MECH_MOE && (dim > 300 || (dim > 24 && dim % 5 != 0)))
		return;
	rva_attention *att = NULL;
	rva_status st = rva_build(c, &att);
	cr_assert_eq(st, RVA_OK, "%s dim %zu: %s (%s)", what, dim, rva_status_name(st),
	             rva_last_error());
	static float buf[4 * 12288], out[12288];
	for (size_t i = 0; i < 4 * dim; i++)
		buf[i] = (float)((i * 37 + 11) % 101) / 101.0f - 0.5f;
	const float *rows[3] = {buf + dim, buf + 2 * dim, buf + 3 * dim};
	st = rva_compute(att, buf, rows, rows, 3, out);
	cr_assert_eq(st, RVA_OK, "%s dim %zu: run %s (%s)", what, dim, rva_status_name(st),
	             rva_last_error());
	for (size_t i = 0; i < dim; i++)
		cr_assert(isfinite(out[i]), "%s dim %zu: out[%zu] = %g", what, dim, i, (double)out[i]);
	rva_attention_destroy(att);
}

/* The model heads H of each preset (presets.h). */
static size_t preset_heads(rva_preset p) {
	switch (p) {
	case RVA_PRESET_SWITCH_TRANSFORMER:
	case RVA_PRESET_HYPERBOLIC_TREE: return 1;
	case RVA_PRESET_LLAMA2:
	case RVA_PRESET_LLAMA3:
	case RVA_PRESET_MISTRAL: return 32;
	case RVA_PRESET_GEMMA2: return 16;
	case RVA_PRESET_QWEN2: return 28;
	default: return 12;
	}
}

static void every_selection_at(size_t dim) {
	char what[64];
	for (int p = 0; p < RVA_PRESET_COUNT; p++) {
		rva_config c = rva_preset_config((rva_preset)p, dim);
		fits_and_runs(&c, preset_heads((rva_preset)p), rva_preset_name((rva_preset)p), dim);
	}
	static const size_t lens[] = {1, 512, 513, 4096, 4097};
	for (size_t i = 0; i < 5; i++) {
		rva_config c = rva_for_sequences(dim, lens[i]);
		snprintf(what, sizeof what, "for_sequences(%zu)", lens[i]);
		fits_and_runs(&c, 12, what, dim);
	}
	rva_config c = rva_for_graphs(dim, true);
	fits_and_runs(&c, 1, "for_graphs(hierarchical)", dim);
	c = rva_for_graphs(dim, false);
	fits_and_runs(&c, 8, "for_graphs", dim);
	c = rva_for_large_scale(dim);
	fits_and_runs(&c, 12, "for_large_scale", dim);
	c = rva_for_vision(dim, 16);
	fits_and_runs(&c, 12, "for_vision", dim);
	c = rva_for_generation(dim, 2048);
	fits_and_runs(&c, 12, "for_generation(2048)", dim);
	c = rva_for_generation(dim, 2049);
	fits_and_runs(&c, 12, "for_generation(2049)", dim);
	c = rva_for_moe(dim, 4, 2);
	fits_and_runs(&c, 1, "for_moe", dim);
	static const struct {
		const char *name;
		size_t heads;
	} names[] = {{"bert-large", 16}, {"gpt2", 12}, {"gpt2-large", 20}, {"gpt2-xl", 25},
	             {"gpt3", 96}, {"t5-small", 8}, {"vit-huge", 16}, {"switch-base", 12},
	             {"longformer-base", 12}};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		cr_assert_eq(rva_from_model_name(names[i].name, dim, &c), RVA_OK);
		fits_and_runs(&c, names[i].heads, names[i].name, dim);
	}
}

Test(selection, every_selection_preset_and_name_builds_and_runs_for_every_dim) {
	for (size_t dim = 1; dim <= 300; dim++)
		every_selection_at(dim);
	static const size_t large[] = {768, 1000, 1024, 1280, 1600, 4096, 12288};
	for (size_t i = 0; i < sizeof large / sizeof large[0]; i++)
		every_selection_at(large[i]);
}

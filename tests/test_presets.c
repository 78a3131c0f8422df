/* Presets, smart selection and model names (presets.h). */
#include <criterion/criterion.h>
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
	c = rva_preset_config(RVA_PRESET_FLASH_OPTIMIZED, 100); /* neither: one head */
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
	cr_assert_float_eq(c.scale, 1.0f, 0.0f); /* no 1/sqrt(d) (ANCHORS C.6) */
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

Test(presets, bert_dim_100_fails_at_build) {
	rva_config c = rva_preset_config(RVA_PRESET_BERT, 100);
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
		"hyperbolic_tree", "t5", "vit", "sparse_transformer"};
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
	cr_assert_eq(c.heads, 1);
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

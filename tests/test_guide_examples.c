/*
 * Every code example of the SDK guide (listed in docs/ARCHITECTURE.md, Presets and the SDK
 * guide), in C: each test builds what the example builds, runs it, and checks the shape and the values against the
 * double-precision oracles of tests/ref/ (softmax, linear, hyperbolic attention; norms),
 * composed stage by stage for pipelines.
 *
 * The guide's own data (query 0.5 everywhere, ten keys and values equal to the query)
 * makes every averaging mechanism return the value row: checked where the mechanism
 * averages in Euclidean space. MoE experts own projections (config.h): with every key and
 * value equal to v, expert e's attention returns v W_v, so the MoE returns the sum over the
 * token's experts of gate_e (v W_v) W_o[e], computed here in double (tests/ref/ref_moe.c);
 * its examples use small values, inside the unit ball of its hyperbolic experts.
 *
 * Constant data cannot catch much (every key scores the same), so every example is also
 * run on random inputs against the oracle; for MoE the oracle is composed from the route
 * and, per chosen expert, the oracle of that expert's own attention on the projected
 * inputs.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_hyperbolic.h"
#include "ref/ref_linear.h"
#include "ref/ref_moe.h"
#include "ref/ref_norms.h"
#include "ref/ref_softmax.h"
#include "ref/ref_util.h"
#include "rvattn/attention.h"
#include "rvattn/pipeline.h"
#include "rvattn/presets.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static void ok(rva_status st, const char *what) {
	cr_assert_eq(st, RVA_OK, "%s: %s (%s)", what, rva_status_name(st), rva_last_error());
}

static rva_attention *build(rva_config c, const char *what) {
	rva_attention *a = NULL;
	ok(rva_build(&c, &a), what);
	return a;
}

static rva_config config_of(const rva_attention *a) {
	rva_config c;
	ok(rva_attention_config(a, &c), "config");
	return c;
}

/* Keys and values handed by row pointer, as the guide does. */
typedef struct kvset {
	size_t nk, width;
	float *k, *v;
	const float **kr, **vr;
} kvset;

static kvset kv_random(size_t nk, size_t width, uint64_t seed, float lo, float hi) {
	kvset s = {.nk = nk, .width = width, .k = ref_alloc(nk * width), .v = ref_alloc(nk * width),
	           .kr = calloc(nk, sizeof(float *)), .vr = calloc(nk, sizeof(float *))};
	ref_fill_uniform(s.k, nk * width, lo, hi, seed);
	ref_fill_uniform(s.v, nk * width, lo, hi, seed + 1);
	for (size_t j = 0; j < nk; j++) {
		s.kr[j] = s.k + j * width;
		s.vr[j] = s.v + j * width;
	}
	return s;
}

/* The guide's data: ten keys and values that all point at the query itself. */
static kvset kv_guide(const float *query, size_t width) {
	kvset s = {.nk = 10, .width = width, .k = NULL, .v = NULL,
	           .kr = calloc(10, sizeof(float *)), .vr = calloc(10, sizeof(float *))};
	for (int j = 0; j < 10; j++)
		s.kr[j] = s.vr[j] = query;
	return s;
}

static void kv_free(kvset *s) {
	free(s->k);
	free(s->v);
	free(s->kr);
	free(s->vr);
}

/* Packed copies of a kvset's rows (the oracles take strided matrices). */
static float *pack(const float *const *rows, size_t n, size_t width) {
	float *m = ref_alloc(n * width);
	for (size_t j = 0; j < n; j++)
		memcpy(m + j * width, rows[j], width * sizeof(float));
	return m;
}

static float *filled(size_t n, float x) {
	float *p = ref_alloc(n);
	for (size_t i = 0; i < n; i++)
		p[i] = x;
	return p;
}

static float *random_vec(size_t n, uint64_t seed, float lo, float hi) {
	float *p = ref_alloc(n);
	ref_fill_uniform(p, n, lo, hi, seed);
	return p;
}

/* The oracle of one query through att (any mechanism but MoE), in double. */
static void oracle(const rva_attention *att, const float *q, const kvset *kv, double *out) {
	rva_config c = config_of(att);
	size_t hd = c.dim / c.heads, kvd = c.kv_heads * hd;
	cr_assert_eq(kvd, kv->width);
	float *k = pack(kv->kr, kv->nk, kvd), *v = pack(kv->vr, kv->nk, kvd);
	switch (c.mechanism) {
	case RVA_MECH_SCALED_DOT:
	case RVA_MECH_MULTI_HEAD:
	case RVA_MECH_FLASH:
	case RVA_MECH_LOCAL_GLOBAL: {
		size_t globals[64];
		size_t ng = c.n_global_indices ? c.n_global_indices : c.global_tokens;
		cr_assert(ng <= 64);
		for (size_t i = 0; i < ng; i++)
			globals[i] = c.n_global_indices ? c.global_indices[i] : i;
		ref_attn_spec sp = {.heads = c.heads, .kv_heads = c.kv_heads, .head_dim = hd,
		                    .scale = c.scale, .causal = c.causal, .pattern = REF_DENSE};
		if (c.mechanism == RVA_MECH_LOCAL_GLOBAL) {
			sp.pattern = REF_LOCAL_GLOBAL;
			sp.window = c.window;
			sp.globals = globals;
			sp.nglobals = ng;
		} else if (c.pattern == RVA_PATTERN_STRIDED) {
			sp.pattern = REF_STRIDED;
			sp.stride = c.sparse_stride;
		}
		if (c.bias == RVA_BIAS_T5) {
			const float *table;
			size_t nb, nh;
			ok(rva_attention_bias_table(att, &table, &nb, &nh), "bias table");
			sp.t5_table = table;
			sp.t5_buckets = nb;
			sp.t5_max_distance = c.bias_max_distance;
		}
		ref_attention(&sp, 1, kv->nk, q, c.dim, k, kvd, v, kvd, NULL, out);
		break;
	}
	case RVA_MECH_LINEAR: {
		const float *w = NULL;
		size_t m = 0, cols = 0;
		if (c.feature_map != RVA_FEATURES_ELU)
			ok(rva_attention_features(att, &w, &m, &cols), "features");
		ref_linear_args a = {.nq = 1, .nk = kv->nk, .heads = c.heads, .kv_heads = c.kv_heads,
		                     .head_dim = hd, .q = q, .q_stride = c.dim, .k = k,
		                     .k_stride = kvd, .v = v, .v_stride = kvd, .causal = c.causal,
		                     .scale = c.scale,
		                     .map = c.feature_map == RVA_FEATURES_RELU  ? REF_LINEAR_RELU
		                            : c.feature_map == RVA_FEATURES_ELU ? REF_LINEAR_ELU
		                                                                : REF_LINEAR_FAVOR,
		                     .w = w, .m = m};
		cr_assert_eq(ref_linear(&a, out), 0);
		break;
	}
	case RVA_MECH_HYPERBOLIC: {
		ref_hyp_params hp = {.c = -(double)c.curvature, .temperature = c.temperature,
		                     .frechet = c.aggregation == RVA_AGG_FRECHET, .causal = c.causal};
		ref_hyperbolic_attention(&hp, c.heads, c.kv_heads, hd, 1, kv->nk, q, c.dim, k, kvd, v,
		                         kvd, NULL, out);
		break;
	}
	default:
		cr_assert_fail("no oracle for %s", rva_mechanism_name(c.mechanism));
	}
	free(k);
	free(v);
}

static void assert_close(const float *got, const double *want, size_t n, double atol,
                         double rtol, const char *what) {
	double e = ref_err_ratio(got, want, n, atol, rtol);
	cr_assert(e <= 1.0, "%s: error ratio %g (atol %g rtol %g)", what, e, atol, rtol);
}

/* Runs att on one query (the guide's attention.compute) and checks it against the
 * oracle. */
static void compute_and_check(const rva_attention *att, const float *q, const kvset *kv,
                              const char *what) {
	size_t dim = config_of(att).dim;
	float *out = filled(dim, NAN);
	ok(rva_compute(att, q, kv->kr, kv->vr, kv->nk, out), what);
	double *want = ref_alloc_d(dim);
	oracle(att, q, kv, want);
	assert_close(out, want, dim, 1e-4, 1e-3, what);
	free(out);
	free(want);
}

/* The guide's data through att: every averaging mechanism returns the value row (the
 * query). */
static void guide_data_returns_value(const rva_attention *att, float value, const char *what) {
	size_t dim = config_of(att).dim;
	float *q = filled(dim, value), *out = filled(dim, NAN);
	kvset kv = kv_guide(q, dim);
	ok(rva_compute(att, q, kv.kr, kv.vr, kv.nk, out), what);
	for (size_t i = 0; i < dim; i++)
		cr_assert_float_eq(out[i], value, 1e-5f * (1.0f + fabsf(value)), "%s: out[%zu] = %g",
		                   what, i, (double)out[i]);
	kv_free(&kv);
	free(q);
	free(out);
}

/* The guide's data through an MoE (see the file comment): one query q, every key and
 * value equal to q, capacity large enough for one token's k experts. */
static void guide_data_moe(const rva_attention *att, float value, const rva_runtime *rt,
                           const char *what) {
	rva_config c = config_of(att);
	size_t dim = c.dim, kvd = c.kv_heads * (c.dim / c.heads), E = c.experts, k = c.top_k;
	float *q = filled(dim, value), *out = filled(dim, NAN);
	kvset kv = kv_guide(q, dim);
	ok(rva_compute_ex(att, q, kv.kr, kv.vr, NULL, kv.nk, out, rt), what);
	const float *w, *wo, *wv;
	size_t e_n, d_n;
	ok(rva_attention_router(att, &w, &e_n, &d_n), what);
	double *probs = ref_alloc_d(E), *gate = ref_alloc_d(k), *vp = ref_alloc_d(kvd);
	double *want = ref_alloc_d(dim), *eo = ref_alloc_d(dim);
	uint32_t choice[RVA_MOE_MAX_EXPERTS];
	int normalize = c.normalize_gates == RVA_GATES_NORMALIZED;
	ref_moe_route(w, E, dim, q, k, normalize, probs, choice, gate);
	for (size_t r = 0; r < k; r++) {
		ok(rva_attention_moe_weights(att, choice[r], NULL, &wo, NULL, &wv), what);
		ref_moe_project(q, kvd, 1, wv, kvd, kvd, kvd, vp);
		ref_moe_project_d(vp, 1, wo, dim, dim, dim, eo);
		for (size_t d = 0; d < dim; d++)
			want[d] += gate[r] * eo[d];
	}
	assert_close(out, want, dim, 1e-5, 1e-3, what);
	kv_free(&kv);
	free(q);
	free(out);
	free(probs);
	free(gate);
	free(vp);
	free(want);
	free(eo);
}

static void to_float(const double *d, float *f, size_t n) {
	for (size_t i = 0; i < n; i++)
		f[i] = (float)d[i];
}

/* Random data through an MoE, against the oracle composed from its parts: the route
 * (tests/ref/ref_moe.c), and per chosen expert e the oracle of e's own attention on the
 * projected inputs (q W_q[e], K W_k, V W_v), projected by W_o[e] and weighted by the gate.
 * Small values keep the hyperbolic experts' inputs inside their ball. */
static void random_moe(const rva_attention *att, size_t nk, uint64_t seed, const char *what) {
	rva_config c = config_of(att);
	size_t dim = c.dim, kvd = c.kv_heads * (c.dim / c.heads), E = c.experts, k = c.top_k;
	float *q = random_vec(dim, seed, -0.05f, 0.05f), *out = filled(dim, NAN);
	kvset kv = kv_random(nk, kvd, seed + 1, -0.05f, 0.05f);
	ok(rva_compute(att, q, kv.kr, kv.vr, kv.nk, out), what);
	const float *w;
	size_t e_n, d_n;
	ok(rva_attention_router(att, &w, &e_n, &d_n), what);
	double *probs = ref_alloc_d(E), *gate = ref_alloc_d(k), *want = ref_alloc_d(dim);
	double *qd = ref_alloc_d(dim), *kd = ref_alloc_d(nk * kvd), *vd = ref_alloc_d(nk * kvd);
	double *ao = ref_alloc_d(dim), *eo = ref_alloc_d(dim);
	float *qp = ref_alloc(dim), *kp = ref_alloc(nk * kvd), *vp = ref_alloc(nk * kvd);
	uint32_t choice[RVA_MOE_MAX_EXPERTS];
	ref_moe_route(w, E, dim, q, k, c.normalize_gates == RVA_GATES_NORMALIZED, probs, choice,
	              gate);
	for (size_t r = 0; r < k; r++) {
		const float *wq, *wo, *wk, *wv;
		const rva_attention *ex;
		ok(rva_attention_moe_weights(att, choice[r], &wq, &wo, &wk, &wv), what);
		ok(rva_attention_expert(att, choice[r], &ex), what);
		ref_moe_project(q, dim, 1, wq, dim, dim, dim, qd);
		ref_moe_project(kv.k, kvd, nk, wk, kvd, kvd, kvd, kd);
		ref_moe_project(kv.v, kvd, nk, wv, kvd, kvd, kvd, vd);
		to_float(qd, qp, dim);
		to_float(kd, kp, nk * kvd);
		to_float(vd, vp, nk * kvd);
		kvset pkv = {.nk = nk, .width = kvd, .k = NULL, .v = NULL,
		             .kr = calloc(nk, sizeof(float *)), .vr = calloc(nk, sizeof(float *))};
		for (size_t j = 0; j < nk; j++) {
			pkv.kr[j] = kp + j * kvd;
			pkv.vr[j] = vp + j * kvd;
		}
		oracle(ex, qp, &pkv, ao);
		ref_moe_project_d(ao, 1, wo, dim, dim, dim, eo);
		for (size_t d = 0; d < dim; d++)
			want[d] += gate[r] * eo[d];
		kv_free(&pkv);
	}
	assert_close(out, want, dim, 1e-5, 1e-3, what);
	kv_free(&kv);
	free(q);
	free(out);
	free(probs);
	free(gate);
	free(want);
	free(qd);
	free(kd);
	free(vd);
	free(ao);
	free(eo);
	free(qp);
	free(kp);
	free(vp);
}

/* Full check of one built attention: the guide's data, then random data vs the oracle
 * (MoE: small values, see the file comment). */
static void check_attention(const rva_attention *att, size_t nk, uint64_t seed,
                            const char *what) {
	rva_config c = config_of(att);
	if (c.mechanism == RVA_MECH_MOE) {
		guide_data_moe(att, 0.01f, NULL, what);
		random_moe(att, nk, seed, what);
		return;
	}
	if (c.mechanism == RVA_MECH_HYPERBOLIC) {
		guide_data_returns_value(att, 0.01f, what);
	} else {
		guide_data_returns_value(att, 0.5f, what);
	}
	float *q = random_vec(c.dim, seed, -1.0f, 1.0f);
	kvset kv = kv_random(nk, c.dim / c.heads * c.kv_heads, seed + 10, -1.0f, 1.0f);
	compute_and_check(att, q, &kv, what);
	kv_free(&kv);
	free(q);
}

static void check_config(rva_config c, size_t nk, uint64_t seed, const char *what) {
	rva_attention *a = build(c, what);
	check_attention(a, nk, seed, what);
	rva_attention_destroy(a);
}

/* Attention output of one query as float (the oracle's double rounded), for composing
 * pipeline oracles. */
static void oracle_f(const rva_attention *att, const float *q, const kvset *kv, float *out) {
	size_t dim = config_of(att).dim;
	double *d = ref_alloc_d(dim);
	oracle(att, q, kv, d);
	for (size_t i = 0; i < dim; i++)
		out[i] = (float)d[i];
	free(d);
}

/* ---- Quick Start ------------------------------------------------------------------------- */

Test(guide, quick_start_basic_usage) {
	/* let attention = multi_head(768, 12).dropout(0.1).causal(true).build()?; */
	rva_config c = rva_multi_head(768, 12);
	c.dropout = 0.1f;
	c.causal = true;
	rva_attention *attention = build(c, "multi_head(768, 12)");
	/* let query = vec![0.5; 768]; keys = values = vec![&query[..]; 10]; */
	float *query = filled(768, 0.5f), *output = filled(768, NAN);
	kvset kv = kv_guide(query, 768);
	ok(rva_compute(attention, query, kv.kr, kv.vr, 10, output), "compute");
	double *want = ref_alloc_d(768);
	oracle(attention, query, &kv, want);
	for (int i = 0; i < 768; i++) {
		cr_assert_float_eq(output[i], 0.5f, 1e-6f);
		cr_assert_float_eq(want[i], 0.5, 1e-12);
	}
	kv_free(&kv);
	free(query);
	free(output);
	free(want);
	check_attention(attention, 17, 1, "basic usage, random data");
	rva_attention_destroy(attention);
}

Test(guide, quick_start_presets) {
	rva_attention *bert = build(rva_preset_config(RVA_PRESET_BERT, 768), "bert");
	rva_attention *gpt = build(rva_preset_config(RVA_PRESET_GPT, 768), "gpt");
	rva_attention *flash = build(rva_preset_config(RVA_PRESET_FLASH_OPTIMIZED, 1024), "flash");
	rva_attention *aut = build(rva_for_sequences(512, 8192), "for_sequences(512, 8192)");
	cr_assert_eq(config_of(aut).mechanism, RVA_MECH_LINEAR, "> 4096: Performer");
	check_attention(bert, 12, 11, "bert");
	check_attention(gpt, 12, 12, "gpt");
	check_attention(flash, 300, 13, "flash (more keys than a block)");
	check_attention(aut, 12, 14, "auto");
	rva_attention_destroy(bert);
	rva_attention_destroy(gpt);
	rva_attention_destroy(flash);
	rva_attention_destroy(aut);
}

Test(guide, quick_start_pipeline) {
	/* multi_head(768, 12) -> add_attention -> add_dropout(0.1) -> add_residual ->
	 * add_norm(LayerNorm); pipeline.run(&query, &keys, &values) */
	rva_attention *attention = build(rva_multi_head(768, 12), "multi_head");
	rva_attention *ref = build(rva_multi_head(768, 12), "oracle copy");
	rva_pipeline *pipeline = NULL;
	ok(rva_pipeline_create(&pipeline), "create");
	ok(rva_pipeline_add_attention(pipeline, attention), "attention");
	ok(rva_pipeline_add_dropout(pipeline, 0.1f), "dropout");
	ok(rva_pipeline_add_residual(pipeline), "residual");
	ok(rva_pipeline_add_norm(pipeline, RVA_NORM_LAYER), "norm");
	float *query = random_vec(768, 21, -1.0f, 1.0f), *output = filled(768, NAN);
	kvset kv = kv_random(9, 768, 22, -1.0f, 1.0f);
	ok(rva_pipeline_run(pipeline, query, kv.kr, kv.vr, kv.nk, output), "run");
	/* oracle: LayerNorm(attention(q) + q); dropout is the identity in inference */
	float x[768];
	oracle_f(ref, query, &kv, x);
	for (int i = 0; i < 768; i++)
		x[i] += query[i];
	double want[768];
	ref_layer_norm(x, 768, 1e-5, NULL, NULL, want);
	assert_close(output, want, 768, 1e-4, 1e-3, "pipeline");
	kv_free(&kv);
	free(query);
	free(output);
	rva_attention_destroy(ref);
	rva_pipeline_destroy(pipeline);
}

/* ---- Builder API ----------------------------------------------------------------------- */

Test(guide, builder_available_types) {
	check_config(rva_scaled_dot(512), 10, 31, "scaled_dot(512)");
	rva_config mh = rva_multi_head(768, 12);
	mh.dropout = 0.1f;
	check_config(mh, 10, 32, "multi_head(768, 12).dropout(0.1)");
	rva_config fl = rva_flash(1024, 128);
	fl.causal = true;
	check_config(fl, 300, 33, "flash(1024, 128).causal(true)");
	check_config(rva_linear(512, 256), 10, 34, "linear(512, 256)");
	check_config(rva_local_global(512, 256), 400, 35, "local_global(512, 256)");
	check_config(rva_hyperbolic(512, -1.0f), 10, 36, "hyperbolic(512, -1.0)");
	rva_config moe = rva_moe(512, 8, 2);
	moe.expert_capacity = 1.25f;
	moe.jitter_noise = 0.01f;
	check_config(moe, 10, 37, "moe(512, 8, 2)");
}

Test(guide, builder_options) {
	/* AttentionBuilder::new(512).multi_head(8).dropout(0.1).causal(true)
	 *   .expert_capacity(1.25).jitter_noise(0.01).build()? */
	rva_config c = rva_config_defaults(512);
	c.mechanism = RVA_MECH_MULTI_HEAD;
	c.heads = 8;
	c.dropout = 0.1f;
	c.causal = true;
	c.expert_capacity = 1.25f;
	c.jitter_noise = 0.01f;
	check_config(c, 10, 41, "builder options");
}

/* ---- Pipeline API ---------------------------------------------------------------------- */

static rva_status relu(const float *in, float *out, size_t dim, void *user) {
	(void)user;
	for (size_t i = 0; i < dim; i++)
		out[i] = in[i] > 0.0f ? in[i] : 0.0f; /* x.iter().map(|v| v.max(0.0)) */
	return RVA_OK;
}

Test(guide, pipeline_creating) {
	/* add_attention -> add_norm(LayerNorm) -> add_dropout(0.1) -> add_residual ->
	 * add_custom(relu) */
	enum { DIM = 256 };
	rva_pipeline *p = NULL;
	ok(rva_pipeline_create(&p), "create");
	ok(rva_pipeline_add_attention(p, build(rva_multi_head(DIM, 8), "att")), "attention");
	ok(rva_pipeline_add_norm(p, RVA_NORM_LAYER), "norm");
	ok(rva_pipeline_add_dropout(p, 0.1f), "dropout");
	ok(rva_pipeline_add_residual(p), "residual");
	ok(rva_pipeline_add_custom(p, relu, NULL), "custom");
	rva_attention *ref = build(rva_multi_head(DIM, 8), "oracle copy");
	float *q = random_vec(DIM, 51, -1.0f, 1.0f), out[DIM];
	kvset kv = kv_random(7, DIM, 52, -1.0f, 1.0f);
	ok(rva_pipeline_run(p, q, kv.kr, kv.vr, kv.nk, out), "run");
	float a[DIM], x[DIM];
	double ln[DIM], want[DIM];
	oracle_f(ref, q, &kv, a);
	ref_layer_norm(a, DIM, 1e-5, NULL, NULL, ln);
	for (int i = 0; i < DIM; i++) {
		x[i] = (float)(ln[i] + q[i]);
		want[i] = x[i] > 0.0f ? x[i] : 0.0;
	}
	assert_close(out, want, DIM, 1e-4, 1e-3, "relu(LN(att(q)) + q)");
	kv_free(&kv);
	free(q);
	rva_attention_destroy(ref);
	rva_pipeline_destroy(p);
}

Test(guide, pipeline_normalization_types) {
	enum { DIM = 128 };
	const rva_norm_type types[] = {RVA_NORM_LAYER, RVA_NORM_RMS, RVA_NORM_BATCH};
	rva_attention *ref = build(rva_multi_head(DIM, 4), "oracle copy");
	float *q = random_vec(DIM, 61, -1.0f, 1.0f), out[DIM], a[DIM];
	kvset kv = kv_random(5, DIM, 62, -1.0f, 1.0f);
	oracle_f(ref, q, &kv, a);
	for (int t = 0; t < 3; t++) {
		rva_pipeline *p = NULL;
		ok(rva_pipeline_create(&p), "create");
		ok(rva_pipeline_add_attention(p, build(rva_multi_head(DIM, 4), "att")), "attention");
		ok(rva_pipeline_add_norm(p, types[t]), "norm");
		ok(rva_pipeline_run(p, q, kv.kr, kv.vr, kv.nk, out), "run");
		double want[DIM];
		if (types[t] == RVA_NORM_LAYER)
			ref_layer_norm(a, DIM, 1e-5, NULL, NULL, want);
		else if (types[t] == RVA_NORM_RMS)
			ref_rms_norm(a, DIM, 1e-5, NULL, NULL, want);
		else /* inference: running statistics, mean 0 and variance 1 by default */
			ref_batch_norm_running(a, DIM, 1e-5, NULL, NULL, NULL, NULL, want);
		assert_close(out, want, DIM, 1e-4, 1e-3, "norm type");
		rva_pipeline_destroy(p);
	}
	kv_free(&kv);
	free(q);
	rva_attention_destroy(ref);
}

Test(guide, pipeline_prebuilt_transformers) {
	enum { DIM = 96 };
	rva_attention *ref = build(rva_multi_head(DIM, 12), "oracle copy");
	float *q = random_vec(DIM, 71, -1.0f, 1.0f), out[DIM], a[DIM], x[DIM];
	double want[DIM], lnq[DIM];
	kvset kv = kv_random(6, DIM, 72, -1.0f, 1.0f);

	/* let block = transformer_block(attention, 0.1); post-norm: LN(att(q) + q) */
	rva_pipeline *block = NULL;
	ok(rva_transformer_block(build(rva_multi_head(DIM, 12), "att"), 0.1f, &block), "block");
	ok(rva_pipeline_run(block, q, kv.kr, kv.vr, kv.nk, out), "run");
	oracle_f(ref, q, &kv, a);
	for (int i = 0; i < DIM; i++)
		x[i] = a[i] + q[i];
	ref_layer_norm(x, DIM, 1e-5, NULL, NULL, want);
	assert_close(out, want, DIM, 1e-4, 1e-3, "post-norm block");
	rva_pipeline_destroy(block);

	/* let block = prenorm_transformer_block(attention, 0.1); att(LN(q)) + q */
	ok(rva_prenorm_transformer_block(build(rva_multi_head(DIM, 12), "att"), 0.1f, &block),
	   "prenorm block");
	ok(rva_pipeline_run(block, q, kv.kr, kv.vr, kv.nk, out), "run");
	ref_layer_norm(q, DIM, 1e-5, NULL, NULL, lnq);
	float lq[DIM];
	to_float(lnq, lq, DIM);
	oracle_f(ref, lq, &kv, a);
	for (int i = 0; i < DIM; i++)
		want[i] = (double)a[i] + q[i];
	assert_close(out, want, DIM, 1e-4, 1e-3, "pre-norm block");
	rva_pipeline_destroy(block);
	kv_free(&kv);
	free(q);
	rva_attention_destroy(ref);
}

/* ---- Presets ----------------------------------------------------------------------------- */

Test(guide, model_presets) {
	static const struct {
		rva_preset p;
		size_t dim, nk;
	} calls[] = {
		{RVA_PRESET_BERT, 768, 10},
		{RVA_PRESET_GPT, 768, 10},
		{RVA_PRESET_LONGFORMER, 512, 600},       /* past the window of 512 */
		{RVA_PRESET_PERFORMER, 512, 10},
		{RVA_PRESET_FLASH_OPTIMIZED, 1024, 300},
		{RVA_PRESET_SWITCH_TRANSFORMER, 512, 10},
		{RVA_PRESET_HYPERBOLIC_TREE, 512, 10},
		{RVA_PRESET_T5, 768, 40},                /* bias buckets past max_exact */
		{RVA_PRESET_VIT, 768, 10},
		{RVA_PRESET_SPARSE_TRANSFORMER, 512, 300}, /* the strided pattern matters */
	};
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
		rva_attention *a = build(rva_preset_config(calls[i].p, calls[i].dim),
		                         rva_preset_name(calls[i].p));
		check_attention(a, calls[i].nk, 80 + i, rva_preset_name(calls[i].p));
		rva_attention_destroy(a);
	}
}

Test(guide, smart_selection) {
	const size_t lens[] = {128, 512, 513, 4096, 4097, 8192};
	for (size_t i = 0; i < 6; i++)
		check_config(rva_for_sequences(512, lens[i]), 10, 90 + i, "for_sequences");
	check_config(rva_for_graphs(256, true), 10, 97, "for_graphs(hierarchical)");
	check_config(rva_for_graphs(256, false), 10, 98, "for_graphs(general)");
	check_config(rva_for_large_scale(1024), 10, 99, "for_large_scale");
	check_config(rva_for_vision(768, 16), 10, 100, "for_vision");
	check_config(rva_for_generation(768, 1024), 10, 101, "for_generation <= 2048");
	rva_config g = rva_for_generation(768, 8192);
	cr_assert(g.causal && g.mechanism == RVA_MECH_FLASH);
	check_config(g, 300, 102, "for_generation > 2048");
	check_config(rva_for_moe(512, 8, 2), 10, 103, "for_moe");
}

Test(guide, from_model_names) {
	static const struct {
		const char *name;
		size_t dim;
	} calls[] = {{"bert", 768}, {"gpt2", 768}, {"longformer", 512}, {"t5", 768}, {"vit", 768}};
	for (size_t i = 0; i < 5; i++) {
		rva_config c;
		ok(rva_from_model_name(calls[i].name, calls[i].dim, &c), calls[i].name);
		check_config(c, 10, 110 + i, calls[i].name);
	}
}

/* ---- Advanced examples ----------------------------------------------------------------- */

/* fn create_transformer_layer(dim, num_heads) -> AttentionResult<AttentionPipeline> */
static rva_status create_transformer_layer(size_t dim, size_t num_heads, rva_pipeline **out) {
	rva_config c = rva_multi_head(dim, num_heads);
	c.dropout = 0.1f;
	rva_attention *attention;
	rva_status st = rva_build(&c, &attention);
	if (st != RVA_OK)
		return st;
	rva_pipeline *p = NULL;
	if ((st = rva_pipeline_create(&p)) != RVA_OK) {
		rva_attention_destroy(attention);
		return st;
	}
	st = rva_pipeline_add_norm(p, RVA_NORM_LAYER); /* pre-norm */
	if (st == RVA_OK)
		st = rva_pipeline_add_attention(p, attention);
	if (st != RVA_OK) { /* the pipeline did not take the attention */
		rva_attention_destroy(attention);
		rva_pipeline_destroy(p);
		return st;
	}
	st = rva_pipeline_add_dropout(p, 0.1f);
	if (st == RVA_OK)
		st = rva_pipeline_add_residual(p);
	if (st == RVA_OK)
		st = rva_pipeline_add_norm(p, RVA_NORM_LAYER); /* post-norm */
	if (st != RVA_OK) {
		rva_pipeline_destroy(p);
		return st;
	}
	*out = p;
	return RVA_OK;
}

Test(guide, advanced_custom_transformer_layer) {
	enum { DIM = 192 };
	rva_pipeline *layer = NULL;
	ok(create_transformer_layer(DIM, 12, &layer), "create_transformer_layer");
	size_t n;
	ok(rva_pipeline_stage_count(layer, &n), "count");
	cr_assert_eq(n, 5);
	rva_attention *ref = build(rva_multi_head(DIM, 12), "oracle copy");
	float *q = random_vec(DIM, 121, -1.0f, 1.0f), out[DIM], a[DIM], lq[DIM], x[DIM];
	kvset kv = kv_random(8, DIM, 122, -1.0f, 1.0f);
	ok(rva_pipeline_run(layer, q, kv.kr, kv.vr, kv.nk, out), "run");
	double d[DIM], want[DIM];
	ref_layer_norm(q, DIM, 1e-5, NULL, NULL, d);
	to_float(d, lq, DIM);
	oracle_f(ref, lq, &kv, a);
	for (int i = 0; i < DIM; i++)
		x[i] = a[i] + q[i]; /* the residual adds the pipeline input */
	ref_layer_norm(x, DIM, 1e-5, NULL, NULL, want);
	assert_close(out, want, DIM, 1e-4, 1e-3, "LN(att(LN(q)) + q)");
	/* a bad dim fails at build with the builder's status */
	rva_pipeline *bad = NULL;
	cr_assert_eq(create_transformer_layer(100, 12, &bad), RVA_EDIM);
	cr_assert_null(bad);
	kv_free(&kv);
	free(q);
	rva_attention_destroy(ref);
	rva_pipeline_destroy(layer);
}

/* fn create_long_context_attention(dim, max_len) */
static rva_status create_long_context_attention(size_t dim, size_t max_len,
                                                rva_attention **out) {
	rva_config c;
	if (max_len <= 2048)
		c = rva_multi_head(dim, 12);    /* standard attention for short sequences */
	else if (max_len <= 16384)
		c = rva_local_global(dim, 512); /* local-global for medium sequences */
	else
		c = rva_linear(dim, dim / 4);   /* linear attention for very long sequences */
	return rva_build(&c, out);
}

Test(guide, advanced_long_sequence) {
	const size_t lens[] = {2048, 2049, 16384, 16385};
	const rva_mechanism want[] = {RVA_MECH_MULTI_HEAD, RVA_MECH_LOCAL_GLOBAL,
	                              RVA_MECH_LOCAL_GLOBAL, RVA_MECH_LINEAR};
	for (int i = 0; i < 4; i++) {
		rva_attention *a = NULL;
		ok(create_long_context_attention(768, lens[i], &a), "create_long_context_attention");
		cr_assert_eq(config_of(a).mechanism, want[i]);
		check_attention(a, want[i] == RVA_MECH_LOCAL_GLOBAL ? 600 : 10, 130 + i, "long");
		rva_attention_destroy(a);
	}
}

/* fn create_graph_attention(dim, is_tree) */
static rva_status create_graph_attention(size_t dim, bool is_tree, rva_attention **out) {
	rva_config c = is_tree ? rva_hyperbolic(dim, -1.0f) : rva_multi_head(dim, 8);
	return rva_build(&c, out);
}

Test(guide, advanced_hierarchical_graph) {
	for (int t = 0; t < 2; t++) {
		rva_attention *a = NULL;
		ok(create_graph_attention(256, t == 1, &a), "create_graph_attention");
		cr_assert_eq(config_of(a).mechanism, t ? RVA_MECH_HYPERBOLIC : RVA_MECH_MULTI_HEAD);
		check_attention(a, 10, 140 + t, "graph");
		/* larger points: projected into the ball first */
		if (t) {
			float *q = random_vec(256, 150, -0.2f, 0.2f);
			kvset kv = kv_random(12, 256, 151, -0.2f, 0.2f);
			compute_and_check(a, q, &kv, "hyperbolic, projected inputs");
			kv_free(&kv);
			free(q);
		}
		rva_attention_destroy(a);
	}
}

/* fn create_hybrid_pipeline(dim) */
static rva_status create_hybrid_pipeline(size_t dim, rva_pipeline **out) {
	rva_config lc = rva_flash(dim, 128), gc = rva_multi_head(dim, 8);
	rva_attention *local, *global;
	rva_status st = rva_build(&lc, &local); /* local attention */
	if (st != RVA_OK)
		return st;
	if ((st = rva_build(&gc, &global)) != RVA_OK) { /* global (can be added in sequence) */
		rva_attention_destroy(local);
		return st;
	}
	rva_attention_destroy(global); /* built, like the guide's, but not added */
	rva_pipeline *p = NULL;
	if ((st = rva_pipeline_create(&p)) != RVA_OK) {
		rva_attention_destroy(local);
		return st;
	}
	if ((st = rva_pipeline_add_attention(p, local)) != RVA_OK) {
		rva_attention_destroy(local);
		rva_pipeline_destroy(p);
		return st;
	}
	st = rva_pipeline_add_norm(p, RVA_NORM_LAYER);
	if (st == RVA_OK)
		st = rva_pipeline_add_residual(p);
	if (st != RVA_OK) {
		rva_pipeline_destroy(p);
		return st;
	}
	*out = p;
	return RVA_OK;
}

Test(guide, advanced_sparse_dense_hybrid) {
	enum { DIM = 256 };
	rva_pipeline *p = NULL;
	ok(create_hybrid_pipeline(DIM, &p), "create_hybrid_pipeline");
	rva_attention *ref = build(rva_flash(DIM, 128), "oracle copy");
	float *q = random_vec(DIM, 161, -1.0f, 1.0f), out[DIM], a[DIM];
	kvset kv = kv_random(200, DIM, 162, -1.0f, 1.0f);
	ok(rva_pipeline_run(p, q, kv.kr, kv.vr, kv.nk, out), "run");
	double want[DIM];
	oracle_f(ref, q, &kv, a);
	ref_layer_norm(a, DIM, 1e-5, NULL, NULL, want);
	for (int i = 0; i < DIM; i++)
		want[i] += q[i];
	assert_close(out, want, DIM, 1e-4, 1e-3, "LN(flash(q)) + q");
	kv_free(&kv);
	free(q);
	rva_attention_destroy(ref);
	rva_pipeline_destroy(p);
}

/* fn create_moe_attention(dim) */
static rva_status create_moe_attention(size_t dim, rva_attention **out) {
	rva_config c = rva_moe(dim, 16, 2); /* 16 experts, route to top-2 */
	c.expert_capacity = 1.5f;           /* higher capacity for load balancing */
	c.jitter_noise = 0.1f;              /* exploration during training */
	return rva_build(&c, out);
}

Test(guide, advanced_moe) {
	rva_attention *a = NULL;
	ok(create_moe_attention(512, &a), "create_moe_attention");
	rva_config c = config_of(a);
	cr_assert_eq(c.experts, 16);
	cr_assert_eq(c.top_k, 2);
	cr_assert_float_eq(c.expert_capacity, 1.5f, 0.0f);
	cr_assert_float_eq(c.jitter_noise, 0.1f, 0.0f);
	guide_data_moe(a, 0.01f, NULL, "moe, inference");
	random_moe(a, 20, 170, "moe, inference, random data");
	/* training mode: jitter on the router (its choices are counted) */
	float *q = filled(512, 0.01f), out[512];
	kvset kv = kv_guide(q, 512);
	rva_moe_stats stats;
	memset(&stats, 0, sizeof stats);
	rva_runtime rt = {.training = true, .seed = 3, .moe_stats = &stats};
	ok(rva_compute_ex(a, q, kv.kr, kv.vr, NULL, kv.nk, out, &rt), "training");
	for (int i = 0; i < 512; i++)
		cr_assert(isfinite(out[i]) && out[i] != 0.0f, "out[%d] = %g", i, (double)out[i]);
	cr_assert_eq(stats.experts, 16);
	cr_assert_eq(stats.tokens, 1);
	size_t routed = 0;
	for (int e = 0; e < 16; e++)
		routed += stats.assigned[e];
	cr_assert_eq(routed, 2, "one token routed to its top-2 experts");
	kv_free(&kv);
	free(q);
	rva_attention_destroy(a);
}

/* ---- Testing (the guide's test_attention_pipeline) ------------------------------------- */

Test(guide, testing_attention_pipeline) {
	rva_attention *attention = build(rva_multi_head(512, 8), "multi_head(512, 8)");
	rva_pipeline *pipeline = NULL;
	ok(rva_pipeline_create(&pipeline), "create");
	ok(rva_pipeline_add_attention(pipeline, attention), "attention");
	ok(rva_pipeline_add_norm(pipeline, RVA_NORM_LAYER), "norm");
	float *query = filled(512, 0.5f), *output = filled(512 + 1, NAN);
	kvset kv = kv_guide(query, 512);
	ok(rva_pipeline_run(pipeline, query, kv.kr, kv.vr, 10, output), "run");
	/* assert_eq!(output.len(), 512): exactly 512 floats written */
	cr_assert(isnan(output[512]), "nothing written past 512 floats");
	/* attention returns the value row (0.5 everywhere); LayerNorm of a constant row is 0 */
	float att[512];
	for (int i = 0; i < 512; i++)
		att[i] = 0.5f;
	double want[512];
	ref_layer_norm(att, 512, 1e-5, NULL, NULL, want);
	for (int i = 0; i < 512; i++) {
		cr_assert_float_eq(want[i], 0.0, 1e-12);
		cr_assert_float_eq(output[i], 0.0f, 1e-5f, "out[%d] = %g", i, (double)output[i]);
	}
	kv_free(&kv);
	free(query);
	/* the same pipeline on random data: LayerNorm(attention(q)) against the oracle */
	rva_attention *ref = build(rva_multi_head(512, 8), "oracle copy");
	query = random_vec(512, 181, -1.0f, 1.0f);
	kv = kv_random(10, 512, 182, -1.0f, 1.0f);
	ok(rva_pipeline_run(pipeline, query, kv.kr, kv.vr, 10, output), "run, random data");
	oracle_f(ref, query, &kv, att);
	ref_layer_norm(att, 512, 1e-5, NULL, NULL, want);
	assert_close(output, want, 512, 1e-4, 1e-3, "LN(att(q)), random data");
	cr_assert(isnan(output[512]), "nothing written past 512 floats");
	kv_free(&kv);
	free(query);
	free(output);
	rva_attention_destroy(ref);
	rva_pipeline_destroy(pipeline);
}

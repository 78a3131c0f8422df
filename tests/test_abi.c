/*
 * The library as others link it (include/rvattn/version.h, attention.h, pipeline.h):
 * version macros and rva_version(), reference-counted attentions shared by pipelines,
 * and who owns an attention when a pipeline call fails (checked with the fault allocator
 * of tests/ref/fault_alloc: every allocation of the call refused in turn).
 * The exported symbols are checked by tests/abi_exports.sh.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/fault_alloc.h"
#include "ref/ref_softmax.h"
#include "ref/ref_util.h"
#include "rvattn/rvattn.h"

#define DIM 32
#define HEADS 4
#define NK 7

/* One query, NK key/value rows (K = V) and the oracle's attention output for them. */
typedef struct data {
	float q[DIM];
	float kv[NK * DIM];
	const float *rows[NK];
	double att[DIM]; /* multi-head attention of q over the rows, double precision */
} data;

static void make_data(data *d, uint64_t seed) {
	ref_fill_uniform(d->q, DIM, -1.0f, 1.0f, seed);
	ref_fill_uniform(d->kv, NK * DIM, -1.0f, 1.0f, seed + 1);
	for (size_t i = 0; i < NK; i++)
		d->rows[i] = d->kv + i * DIM;
	ref_attn_spec sp = {.heads = HEADS, .kv_heads = HEADS, .head_dim = DIM / HEADS,
	                    .scale = 1.0 / sqrt((double)(DIM / HEADS))};
	ref_attention(&sp, 1, NK, d->q, DIM, d->kv, DIM, d->kv, DIM, NULL, d->att);
}

static rva_attention *build_mh(void) {
	rva_config c = rva_multi_head(DIM, HEADS);
	rva_attention *a = NULL;
	cr_assert_eq(rva_build(&c, &a), RVA_OK, "build: %s", rva_last_error());
	return a;
}

/* att computes the oracle's numbers. */
static void expect_attention(const rva_attention *att, const data *d, const char *what) {
	float out[DIM];
	cr_assert_eq(rva_compute(att, d->q, d->rows, d->rows, NK, out), RVA_OK, "%s: %s", what,
	             rva_last_error());
	cr_assert_leq(ref_err_ratio(out, d->att, DIM, 1e-5, 1e-4), 1.0, "%s: output differs "
	              "from the oracle", what);
}

/* LayerNorm of one row (eps 1e-5, no gain or bias), double precision. */
static void layer_norm(const double *x, double *y) {
	double mean = 0.0, var = 0.0;
	for (size_t i = 0; i < DIM; i++)
		mean += x[i];
	mean /= DIM;
	for (size_t i = 0; i < DIM; i++)
		var += (x[i] - mean) * (x[i] - mean);
	var /= DIM;
	for (size_t i = 0; i < DIM; i++)
		y[i] = (x[i] - mean) / sqrt(var + 1e-5);
}

/* p is the post-norm block LN(att(q) + q) (inference: dropout is the identity). */
static void expect_post_norm_block(const rva_pipeline *p, const data *d) {
	double sum[DIM], want[DIM];
	for (size_t i = 0; i < DIM; i++)
		sum[i] = d->att[i] + d->q[i];
	layer_norm(sum, want);
	float out[DIM];
	cr_assert_eq(rva_pipeline_run(p, d->q, d->rows, d->rows, NK, out), RVA_OK, "run: %s",
	             rva_last_error());
	cr_assert_leq(ref_err_ratio(out, want, DIM, 1e-4, 1e-4), 1.0, "block output differs");
}

Test(abi, version_macros_match_the_project_and_the_library) {
	/* The build passes CMake's project version: the configured header must carry it. */
	cr_assert_eq(RVA_VERSION_MAJOR, RVATTN_TEST_VERSION_MAJOR);
	cr_assert_eq(RVA_VERSION_MINOR, RVATTN_TEST_VERSION_MINOR);
	cr_assert_eq(RVA_VERSION_PATCH, RVATTN_TEST_VERSION_PATCH);
	char s[64];
	snprintf(s, sizeof s, "%d.%d.%d", RVATTN_TEST_VERSION_MAJOR, RVATTN_TEST_VERSION_MINOR,
	         RVATTN_TEST_VERSION_PATCH);
	cr_assert_str_eq(RVA_VERSION_STRING, s);
	cr_assert_eq(RVA_VERSION_NUMBER, RVATTN_TEST_VERSION_MAJOR * 10000 +
	                                 RVATTN_TEST_VERSION_MINOR * 100 +
	                                 RVATTN_TEST_VERSION_PATCH);
	unsigned major = 999, minor = 999, patch = 999;
	cr_assert_eq(rva_version(&major, &minor, &patch), RVA_OK);
	cr_assert_eq(major, (unsigned)RVATTN_TEST_VERSION_MAJOR);
	cr_assert_eq(minor, (unsigned)RVATTN_TEST_VERSION_MINOR);
	cr_assert_eq(patch, (unsigned)RVATTN_TEST_VERSION_PATCH);
	/* every argument is optional */
	minor = 999;
	cr_assert_eq(rva_version(NULL, &minor, NULL), RVA_OK);
	cr_assert_eq(minor, (unsigned)RVATTN_TEST_VERSION_MINOR);
	cr_assert_eq(rva_version(NULL, NULL, NULL), RVA_OK);
}

Test(abi, retain_and_release_count_references) {
	data d;
	make_data(&d, 11);
	cr_assert_eq(ref_fault_install(), RVA_OK);
	long base = ref_fault_live();
	rva_attention *a = build_mh();
	long built = ref_fault_live();
	cr_assert_gt(built, base);
	cr_assert_eq(rva_attention_retain(a), RVA_OK);
	cr_assert_eq(rva_attention_retain(a), RVA_OK);
	cr_assert_eq(rva_attention_release(a), RVA_OK);
	cr_assert_eq(rva_attention_destroy(a), RVA_OK); /* the older name of release */
	cr_assert_eq(ref_fault_live(), built, "released while references remain");
	expect_attention(a, &d, "after two retains and two releases");
	cr_assert_eq(rva_attention_release(a), RVA_OK); /* the last reference */
	cr_assert_eq(ref_fault_live(), base, "the last release frees everything");
	cr_assert_eq(rva_attention_release(NULL), RVA_OK);
	cr_assert_eq(rva_attention_retain(NULL), RVA_ENULL);
	ref_fault_uninstall();
}

Test(abi, pipelines_share_one_attention) {
	data d;
	make_data(&d, 21);
	cr_assert_eq(ref_fault_install(), RVA_OK);
	long base = ref_fault_live();
	rva_attention *a = build_mh();
	rva_pipeline *p1 = NULL, *p2 = NULL;
	cr_assert_eq(rva_pipeline_create(&p1), RVA_OK);
	cr_assert_eq(rva_pipeline_create(&p2), RVA_OK);
	/* one reference per pipeline, and ours */
	cr_assert_eq(rva_attention_retain(a), RVA_OK);
	cr_assert_eq(rva_pipeline_add_attention(p1, a), RVA_OK);
	cr_assert_eq(rva_attention_retain(a), RVA_OK);
	cr_assert_eq(rva_pipeline_add_attention(p2, a), RVA_OK);
	cr_assert_eq(rva_attention_release(a), RVA_OK);
	float out[DIM];
	cr_assert_eq(rva_pipeline_destroy(p1), RVA_OK);
	/* p2 still holds a: its only stage is the attention, so it gives the oracle's row */
	cr_assert_eq(rva_pipeline_run(p2, d.q, d.rows, d.rows, NK, out), RVA_OK, "%s",
	             rva_last_error());
	cr_assert_leq(ref_err_ratio(out, d.att, DIM, 1e-5, 1e-4), 1.0);
	expect_attention(a, &d, "held by p2 only");
	cr_assert_eq(rva_pipeline_destroy(p2), RVA_OK);
	cr_assert_eq(ref_fault_live(), base, "the last pipeline frees the attention");
	ref_fault_uninstall();
}

/* The calls that take an attention into a pipeline. */
enum { TAKE_BLOCK, TAKE_PRENORM_BLOCK, TAKE_ADD_ATTENTION, TAKE_COUNT };
static const char *const take_names[TAKE_COUNT] = {
	"rva_transformer_block", "rva_prenorm_transformer_block", "rva_pipeline_add_attention"};

static rva_status take(int how, rva_attention *a, rva_pipeline **p) {
	switch (how) {
	case TAKE_BLOCK: return rva_transformer_block(a, 0.1f, p);
	case TAKE_PRENORM_BLOCK: return rva_prenorm_transformer_block(a, 0.1f, p);
	default: return rva_pipeline_add_attention(*p, a);
	}
}

/* Every allocation of the call refused in turn: a failing call leaves the attention, still
 * working, with the caller, and nothing leaks; the call that finally succeeds keeps the
 * caller's reference (the pipeline frees the attention). */
Test(abi, failed_pipeline_calls_leave_the_attention_with_the_caller) {
	data d;
	make_data(&d, 31);
	cr_assert_eq(ref_fault_install(), RVA_OK);
	for (int how = 0; how < TAKE_COUNT; how++) {
		long failures = 0;
		for (long k = 0;; k++) {
			cr_assert_lt(k, 1000, "%s never succeeds", take_names[how]);
			long base = ref_fault_live();
			rva_attention *a = build_mh();
			rva_pipeline *p = NULL;
			if (how == TAKE_ADD_ATTENTION) /* a pipeline that needs to grow its stages */
				cr_assert_eq(rva_pipeline_create(&p), RVA_OK);
			ref_fault_arm(k, false);
			rva_status st = take(how, a, &p);
			bool refused = ref_fault_failed() > 0;
			ref_fault_disarm();
			if (st != RVA_OK) {
				cr_assert_eq(st, RVA_ENOMEM, "%s, allocation %ld refused: %s",
				             take_names[how], k, rva_status_name(st));
				if (how != TAKE_ADD_ATTENTION)
					cr_assert_null(p, "%s failed but returned a pipeline", take_names[how]);
				failures++;
				expect_attention(a, &d, take_names[how]);
				cr_assert_eq(rva_attention_release(a), RVA_OK);
				rva_pipeline_destroy(p);
				cr_assert_eq(ref_fault_live(), base, "%s, allocation %ld refused: leak",
				             take_names[how], k);
				continue;
			}
			if (how == TAKE_BLOCK)
				expect_post_norm_block(p, &d);
			rva_pipeline_destroy(p); /* releases the reference the pipeline kept */
			cr_assert_eq(ref_fault_live(), base, "%s: the pipeline did not free the "
			             "attention it was given", take_names[how]);
			if (!refused)
				break; /* every allocation point has been refused once */
		}
		cr_assert_gt(failures, 0, "%s: no allocation was refused", take_names[how]);
	}
	ref_fault_uninstall();
}

/* ---- zero is never an error (config.h) ------------------------------------------------ */

#define ZQ 5
#define ZK 9
#define ZDIM 128

/* Runs the config on fixed random inputs (ZQ queries, ZK keys of kv_dim columns): out
 * gets ZQ x dim floats. Returns the resolved config through *resolved. */
static void run_config(const rva_config *c, float *out, rva_config *resolved) {
	rva_attention *a = NULL;
	cr_assert_eq(rva_build(c, &a), RVA_OK, "build %s: %s", rva_mechanism_name(c->mechanism),
	             rva_last_error());
	cr_assert_eq(rva_attention_config(a, resolved), RVA_OK);
	size_t dim = resolved->dim, kvd = resolved->kv_heads * (dim / resolved->heads);
	float *q = ref_alloc(ZQ * dim), *kv = ref_alloc(ZK * kvd);
	ref_fill_uniform(q, ZQ * dim, -1.0f, 1.0f, 71);
	ref_fill_uniform(kv, ZK * kvd, -1.0f, 1.0f, 72);
	rva_seq s = {.nq = ZQ, .nk = ZK, .q = q, .k = kv, .v = kv, .out = out};
	rva_batch b = {.count = 1, .seqs = &s};
	cr_assert_eq(rva_compute_batch(a, &b, NULL, NULL), RVA_OK, "%s", rva_last_error());
	rva_attention_release(a);
	free(q);
	free(kv);
}

/* A zero in the field gives the same attention (resolved value and outputs, bit for bit)
 * as the documented default written out. */
#define EXPECT_ZERO_IS_DEFAULT(base, field, dflt)                                           \
	do {                                                                                    \
		rva_config zero_ = (base), dflt_ = (base);                                          \
		zero_.field = 0;                                                                    \
		dflt_.field = (dflt);                                                               \
		float *oz_ = ref_alloc(ZQ * ZDIM), *od_ = ref_alloc(ZQ * ZDIM);                     \
		rva_config rz_, rd_;                                                                \
		run_config(&zero_, oz_, &rz_);                                                      \
		run_config(&dflt_, od_, &rd_);                                                      \
		cr_assert(rz_.field == rd_.field, #field ": 0 resolves to %g, the default is %g",   \
		          (double)rz_.field, (double)rd_.field);                                    \
		cr_assert(memcmp(oz_, od_, ZQ * ZDIM * sizeof(float)) == 0,                         \
		          #field ": 0 and the default give different outputs");                     \
		free(oz_);                                                                          \
		free(od_);                                                                          \
	} while (0)

Test(abi, zero_is_the_default_field_by_field) {
	rva_config mh = rva_multi_head(ZDIM, 4);
	EXPECT_ZERO_IS_DEFAULT(mh, heads, 2); /* dim 128: 128 / 64 */
	EXPECT_ZERO_IS_DEFAULT(mh, kv_heads, 4);
	EXPECT_ZERO_IS_DEFAULT(mh, block_size, 128);
	EXPECT_ZERO_IS_DEFAULT(mh, query_block, 64);
	rva_config sd = rva_scaled_dot(ZDIM);
	EXPECT_ZERO_IS_DEFAULT(sd, heads, 1);
	EXPECT_ZERO_IS_DEFAULT(sd, scale, 1.0f / sqrtf((float)ZDIM));
	rva_config fl = rva_flash(ZDIM, 4);
	EXPECT_ZERO_IS_DEFAULT(fl, block_size, 128);
	rva_config lg = rva_local_global(ZDIM, 4);
	EXPECT_ZERO_IS_DEFAULT(lg, window, 256);
	rva_config li = rva_linear(ZDIM, 16);
	EXPECT_ZERO_IS_DEFAULT(li, features, 256);
	rva_config hy = rva_hyperbolic(ZDIM, -0.5f);
	EXPECT_ZERO_IS_DEFAULT(hy, curvature, -1.0f);
	EXPECT_ZERO_IS_DEFAULT(hy, temperature, 1.0f);
	EXPECT_ZERO_IS_DEFAULT(hy, heads, 1);
	hy.aggregation = RVA_AGG_FRECHET;
	hy.frechet_tol = 0.0f; /* every iteration runs: the count decides the numbers */
	EXPECT_ZERO_IS_DEFAULT(hy, frechet_max_iter, 100);
	rva_config moe = rva_moe(ZDIM, 4, 1);
	EXPECT_ZERO_IS_DEFAULT(moe, top_k, 2);
	EXPECT_ZERO_IS_DEFAULT(moe, experts, 8);
	rva_config t5 = rva_multi_head(ZDIM, 2);
	t5.bias = RVA_BIAS_T5;
	EXPECT_ZERO_IS_DEFAULT(t5, bias_buckets, 32);
	EXPECT_ZERO_IS_DEFAULT(t5, bias_max_distance, 128);
	rva_config st = rva_multi_head(ZDIM, 2);
	st.pattern = RVA_PATTERN_STRIDED;
	EXPECT_ZERO_IS_DEFAULT(st, sparse_stride, 128);
	rva_config fx = rva_multi_head(ZDIM, 2);
	fx.pattern = RVA_PATTERN_FIXED;
	fx.sparse_stride = 32;
	EXPECT_ZERO_IS_DEFAULT(fx, sparse_summary, 16); /* min(16, stride) */
	fx.sparse_stride = 8;
	EXPECT_ZERO_IS_DEFAULT(fx, sparse_summary, 8);
}

/* top_k 0 with fewer experts than the default k takes min(2, experts). */
Test(abi, zero_top_k_fits_the_experts) {
	rva_config c = rva_moe(ZDIM, 1, 0);
	rva_attention *a;
	cr_assert_eq(rva_build(&c, &a), RVA_OK, "%s", rva_last_error());
	rva_config r;
	rva_attention_config(a, &r);
	cr_assert_eq(r.top_k, 1);
	rva_attention_release(a);
}

/* Fields where 0 is a valid value keep it (config.h). */
Test(abi, zero_keeps_its_meaning_where_it_is_valid) {
	rva_config r;
	float *o0 = ref_alloc(ZQ * ZDIM), *o1 = ref_alloc(ZQ * ZDIM);
	rva_config lg = rva_local_global(ZDIM, 2);
	lg.global_tokens = 0;
	run_config(&lg, o0, &r);
	cr_assert_eq(r.global_tokens, 0);
	lg.global_tokens = 1;
	run_config(&lg, o1, &r);
	cr_assert(memcmp(o0, o1, ZQ * ZDIM * sizeof(float)) != 0, "global_tokens 0 is none");
	rva_config li = rva_linear(ZDIM, 16);
	li.seed = 0;
	run_config(&li, o0, &r);
	cr_assert_eq(r.seed, 0);
	li.seed = 0x5EED;
	run_config(&li, o1, &r);
	cr_assert(memcmp(o0, o1, ZQ * ZDIM * sizeof(float)) != 0, "seed 0 is a seed");
	rva_config moe = rva_moe(ZDIM, 4, 1);
	moe.expert_capacity = 0.0f;
	run_config(&moe, o0, &r);
	cr_assert_eq(r.expert_capacity, 0.0f);
	for (size_t i = 0; i < ZQ * ZDIM; i++) /* capacity 0: every token dropped */
		cr_assert_eq(o0[i], 0.0f, "capacity 0 keeps no token, out[%zu] = %g", i,
		             (double)o0[i]);
	free(o0);
	free(o1);
}

Test(abi, norm_eps_zero_is_the_default) {
	data d;
	make_data(&d, 41);
	float o0[DIM], o1[DIM];
	for (int k = 0; k < 2; k++) {
		rva_pipeline *p;
		cr_assert_eq(rva_pipeline_create(&p), RVA_OK);
		cr_assert_eq(rva_pipeline_add_attention(p, build_mh()), RVA_OK);
		rva_norm_config n = rva_norm_defaults(RVA_NORM_LAYER);
		n.eps = k == 0 ? 0.0f : 1e-5f;
		cr_assert_eq(rva_pipeline_add_norm_ex(p, &n), RVA_OK, "%s", rva_last_error());
		cr_assert_eq(rva_pipeline_run(p, d.q, d.rows, d.rows, NK, k == 0 ? o0 : o1), RVA_OK);
		rva_pipeline_destroy(p);
	}
	cr_assert(memcmp(o0, o1, sizeof o0) == 0);
	double want[DIM];
	layer_norm(d.att, want);
	cr_assert_leq(ref_err_ratio(o0, want, DIM, 1e-4, 1e-4), 1.0);
}

/* ---- rva_flash takes the presets' head rule (a divisor of dim near dim/64) ------------- */

Test(abi, flash_heads_follow_dim) {
	/* 200 / 64 = 3 does not divide 200: the largest divisor below it, 2 */
	const size_t dims[] = {768, 512, 1024, 4096, 64, 32, 100, 96, 200, 960};
	const size_t heads[] = {12, 8, 16, 64, 1, 1, 1, 1, 2, 15};
	for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
		rva_config c = rva_flash(dims[i], 64);
		cr_assert_eq(c.heads, heads[i], "rva_flash(%zu): %zu heads, want %zu", dims[i], c.heads,
		             heads[i]);
		cr_assert_eq(dims[i] % c.heads, 0);
		/* heads 0 on a multi-head config resolves to the same count */
		rva_config m = rva_multi_head(dims[i], 0);
		rva_attention *a;
		cr_assert_eq(rva_build(&m, &a), RVA_OK, "%s", rva_last_error());
		rva_config r;
		rva_attention_config(a, &r);
		cr_assert_eq(r.heads, heads[i], "multi_head(%zu, 0)", dims[i]);
		rva_attention_release(a);
	}
	/* the FlashOptimized preset agrees at the base size */
	cr_assert_eq(rva_preset_config(RVA_PRESET_FLASH_OPTIMIZED, 768).heads,
	             rva_flash(768, 128).heads);
}

/* rva_flash(128, 32) is 2-head attention: checked against the oracle, not another tiling. */
Test(abi, flash_default_heads_match_the_oracle) {
	rva_config c = rva_flash(ZDIM, 4);
	cr_assert_eq(c.heads, 2);
	float *out = ref_alloc(ZQ * ZDIM);
	rva_config r;
	run_config(&c, out, &r);
	float *q = ref_alloc(ZQ * ZDIM), *kv = ref_alloc(ZK * ZDIM);
	ref_fill_uniform(q, ZQ * ZDIM, -1.0f, 1.0f, 71);
	ref_fill_uniform(kv, ZK * ZDIM, -1.0f, 1.0f, 72);
	double *want = ref_alloc_d(ZQ * ZDIM);
	ref_attn_spec sp = {.heads = 2, .kv_heads = 2, .head_dim = ZDIM / 2,
	                    .scale = 1.0 / sqrt(ZDIM / 2.0)};
	ref_attention(&sp, ZQ, ZK, q, ZDIM, kv, ZDIM, kv, ZDIM, NULL, want);
	cr_assert_leq(ref_err_ratio(out, want, ZQ * ZDIM, 1e-5, 1e-4), 1.0);
	free(out);
	free(q);
	free(kv);
	free(want);
}

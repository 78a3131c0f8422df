/*
 * Pipelines (pipeline.h) on the engine-free serial path: stage semantics against the
 * double-precision oracles of tests/ref/ref_norms.c, modes, residual segments, custom
 * stages, batches vs single sequences, and bad input.
 *
 * Many tests use an attention over ONE key: softmax of one score is 1, so the attention
 * output is the value row v for every query row, and a following residual makes the rows
 * x_r = v + q_r (computed here in float exactly as the pipeline does) — row-dependent data
 * whose normalisation the oracles can check precisely.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_block.h"
#include "ref/ref_norms.h"
#include "ref/ref_softmax.h"
#include "ref/fault_alloc.h"
#include "ref/ref_util.h"
#include "rvattn/alloc.h"
#include "rvattn/attention.h"
#include "rvattn/engine.h"
#include "rvattn/pipeline.h"

#define ATOL 2e-5
#define RTOL 2e-5

static rva_attention *mh(size_t dim, size_t heads) {
	rva_config c = rva_multi_head(dim, heads);
	rva_attention *a = NULL;
	rva_status st = rva_build(&c, &a);
	cr_assert_eq(st, RVA_OK, "build: %s", rva_last_error());
	return a;
}

static rva_pipeline *new_pipeline(void) {
	rva_pipeline *p = NULL;
	cr_assert_eq(rva_pipeline_create(&p), RVA_OK);
	cr_assert_not_null(p);
	return p;
}

static void ok(rva_status st, const char *what) {
	cr_assert_eq(st, RVA_OK, "%s: %s (%s)", what, rva_status_name(st), rva_last_error());
}

/* Runs p on one sequence of nq query rows over the single key/value row v. */
static rva_status run_one_key(const rva_pipeline *p, size_t nq, const float *q,
                              const float *v, float *out, const rva_runtime *rt) {
	rva_seq s = {.nq = nq, .nk = 1, .q = q, .k = v, .v = v, .out = out};
	rva_batch b = {.count = 1, .seqs = &s};
	return rva_pipeline_run_batch(p, &b, rt, NULL);
}

/* x = v + q row by row, in float (what attention-over-one-key + residual computes). */
static float *rows_plus_v(const float *q, const float *v, size_t nq, size_t dim) {
	float *x = ref_alloc(nq * dim);
	for (size_t r = 0; r < nq; r++)
		for (size_t i = 0; i < dim; i++)
			x[r * dim + i] = v[i] + q[r * dim + i];
	return x;
}

static void assert_close(const float *got, const double *want, size_t n, const char *what) {
	double e = ref_err_ratio(got, want, n, ATOL, RTOL);
	cr_assert(e <= 1.0, "%s: error ratio %g (atol %g, rtol %g)", what, e, ATOL, RTOL);
}

/* ---- building ------------------------------------------------------------------------- */

Test(pipeline, stages_and_counts) {
	rva_pipeline *p = new_pipeline();
	size_t n = 99;
	ok(rva_pipeline_stage_count(p, &n), "count");
	cr_assert_eq(n, 0);
	ok(rva_pipeline_add_norm(p, RVA_NORM_LAYER), "pre-norm before any attention");
	ok(rva_pipeline_add_attention(p, mh(32, 4)), "attention");
	ok(rva_pipeline_add_dropout(p, 0.0f), "dropout 0");
	ok(rva_pipeline_add_dropout(p, 0.5f), "dropout 0.5");
	ok(rva_pipeline_add_residual(p), "residual");
	ok(rva_pipeline_add_norm(p, RVA_NORM_RMS), "rms");
	ok(rva_pipeline_add_norm(p, RVA_NORM_BATCH), "batch");
	for (int i = 0; i < 20; i++) /* grows past the initial capacity */
		ok(rva_pipeline_add_residual(p), "residual");
	ok(rva_pipeline_stage_count(p, &n), "count");
	cr_assert_eq(n, 27);
	rva_pipeline_destroy(p);
	cr_assert_eq(rva_pipeline_destroy(NULL), RVA_OK);
}

Test(pipeline, norm_defaults) {
	rva_norm_config c = rva_norm_defaults(RVA_NORM_RMS);
	cr_assert_eq(c.type, RVA_NORM_RMS);
	cr_assert_float_eq(c.eps, 1e-5f, 0.0f);
	cr_assert_null(c.gain);
	cr_assert_null(c.bias);
	cr_assert_null(c.running_mean);
	cr_assert_null(c.running_var);
}

Test(pipeline, empty_pipelines) {
	rva_pipeline *p = new_pipeline();
	float q[32] = {0}, out[32];
	const float *rows[1] = {q};
	cr_assert_eq(rva_pipeline_run(p, q, rows, rows, 1, out), RVA_EEMPTY);
	rva_batch b = {.count = 0, .seqs = NULL};
	cr_assert_eq(rva_pipeline_run_batch(p, &b, NULL, NULL), RVA_EEMPTY);
	/* stages but no attention: the dim is unknown */
	ok(rva_pipeline_add_norm(p, RVA_NORM_LAYER), "norm");
	ok(rva_pipeline_add_residual(p), "residual");
	cr_assert_eq(rva_pipeline_run(p, q, rows, rows, 1, out), RVA_EEMPTY);
	cr_assert(strstr(rva_last_error(), "attention"), "%s", rva_last_error());
	cr_assert_eq(rva_pipeline_run_batch(p, &b, NULL, NULL), RVA_EEMPTY);
	rva_pipeline_destroy(p);
}

Test(pipeline, bad_input) {
	rva_pipeline *p = new_pipeline();
	cr_assert_eq(rva_pipeline_add_dropout(p, -0.1f), RVA_ERANGE);
	cr_assert_eq(rva_pipeline_add_dropout(p, 1.0f), RVA_ERANGE);
	cr_assert_eq(rva_pipeline_add_dropout(p, NAN), RVA_ERANGE);
	cr_assert_eq(rva_pipeline_add_custom(p, NULL, NULL), RVA_ENULL);
	cr_assert_eq(rva_pipeline_add_attention(p, NULL), RVA_ENULL);
	cr_assert_eq(rva_pipeline_add_norm(p, RVA_NORM_COUNT), RVA_EINVAL);
	cr_assert_eq(rva_pipeline_add_norm(p, (rva_norm_type)-1), RVA_EINVAL);
	rva_norm_config nc = rva_norm_defaults(RVA_NORM_LAYER);
	nc.reserved[0] = 1; /* growth: reserved words must be zero (config.h) */
	cr_assert_eq(rva_pipeline_add_norm_ex(p, &nc), RVA_EINVAL);
	nc.reserved[0] = 0;
	nc.eps = -1.0f;
	cr_assert_eq(rva_pipeline_add_norm_ex(p, &nc), RVA_ERANGE);
	nc.eps = INFINITY;
	cr_assert_eq(rva_pipeline_add_norm_ex(p, &nc), RVA_ERANGE);
	cr_assert_eq(rva_pipeline_add_norm_ex(p, NULL), RVA_ENULL);
	float gain[32];
	for (int i = 0; i < 32; i++)
		gain[i] = 1.0f;
	nc = rva_norm_defaults(RVA_NORM_LAYER);
	nc.gain = gain;
	cr_assert_eq(rva_pipeline_add_norm_ex(p, &nc), RVA_ESTATE, "arrays need the dim");
	size_t n;
	ok(rva_pipeline_stage_count(p, &n), "count");
	cr_assert_eq(n, 0, "failed calls add nothing");

	ok(rva_pipeline_add_attention(p, mh(32, 4)), "attention");
	ok(rva_pipeline_add_norm_ex(p, &nc), "gain after the dim is known");
	nc.type = RVA_NORM_RMS;
	nc.running_mean = gain;
	cr_assert_eq(rva_pipeline_add_norm_ex(p, &nc), RVA_EINVAL, "running stats need BatchNorm");
	float var[32];
	for (int i = 0; i < 32; i++)
		var[i] = 1.0f;
	var[7] = -0.5f;
	nc = rva_norm_defaults(RVA_NORM_BATCH);
	nc.running_var = var;
	cr_assert_eq(rva_pipeline_add_norm_ex(p, &nc), RVA_ERANGE);
	cr_assert(strstr(rva_last_error(), "running_var[7]"), "%s", rva_last_error());

	/* a second attention of another dim is refused and stays the caller's */
	rva_attention *other = mh(64, 4);
	cr_assert_eq(rva_pipeline_add_attention(p, other), RVA_EDIM);
	rva_attention_destroy(other);
	/* same dim but narrower key/value rows (grouped-query) */
	rva_config gq = rva_multi_head(32, 4);
	gq.kv_heads = 2;
	rva_attention *g = NULL;
	ok(rva_build(&gq, &g), "gqa build");
	cr_assert_eq(rva_pipeline_add_attention(p, g), RVA_EDIM);
	rva_attention_destroy(g);

	/* NULL arguments */
	float q[32] = {0}, out[32];
	const float *rows[1] = {q};
	cr_assert_eq(rva_pipeline_run(NULL, q, rows, rows, 1, out), RVA_ENULL);
	cr_assert_eq(rva_pipeline_run(p, NULL, rows, rows, 1, out), RVA_ENULL);
	cr_assert_eq(rva_pipeline_run(p, q, rows, rows, 1, NULL), RVA_ENULL);
	cr_assert_eq(rva_pipeline_run(p, q, NULL, rows, 1, out), RVA_ENULL);
	cr_assert_eq(rva_pipeline_run(p, q, rows, rows, 0, out), RVA_EEMPTY);
	const float *full[2] = {q, q}, *holes[2] = {q, NULL};
	cr_assert_eq(rva_pipeline_run(p, q, full, holes, 2, out), RVA_ENULL);
	cr_assert_eq(rva_pipeline_run_batch(p, NULL, NULL, NULL), RVA_ENULL);
	rva_batch nb = {.count = 2, .seqs = NULL};
	cr_assert_eq(rva_pipeline_run_batch(p, &nb, NULL, NULL), RVA_ENULL);
	cr_assert_eq(rva_pipeline_create(NULL), RVA_ENULL);
	cr_assert_eq(rva_pipeline_stage_count(p, NULL), RVA_ENULL);
	cr_assert_eq(rva_pipeline_stage_count(NULL, &n), RVA_ENULL);
	cr_assert_eq(rva_pipeline_add_residual(NULL), RVA_ENULL);
	cr_assert_eq(rva_pipeline_add_dropout(NULL, 0.1f), RVA_ENULL);
	cr_assert_eq(rva_pipeline_add_norm(NULL, RVA_NORM_LAYER), RVA_ENULL);
	rva_pipeline_destroy(p);
}

Test(pipeline, transformer_block_bad_input_leaves_attention_with_caller) {
	rva_pipeline *p = NULL;
	/* a failing block leaves the reference with the caller (pipeline.h): the attention is
	 * still usable, and ASan's leak check holds us to releasing it */
	rva_attention *a = mh(32, 4);
	cr_assert_eq(rva_transformer_block(a, 1.5f, &p), RVA_ERANGE);
	cr_assert_null(p);
	cr_assert_eq(rva_prenorm_transformer_block(a, -0.1f, &p), RVA_ERANGE);
	cr_assert_eq(rva_transformer_block(a, 0.1f, NULL), RVA_ENULL);
	cr_assert_null(p);
	rva_config c;
	cr_assert_eq(rva_attention_config(a, &c), RVA_OK);
	cr_assert_eq(c.dim, 32);
	ok(rva_transformer_block(a, 0.1f, &p), "block after the failures");
	rva_pipeline_destroy(p);
	p = NULL;
	cr_assert_eq(rva_transformer_block(NULL, 0.1f, &p), RVA_ENULL);
	cr_assert_eq(rva_prenorm_transformer_block(NULL, 0.1f, &p), RVA_ENULL);
	cr_assert_null(p);
}

/* ---- norms against the oracles -------------------------------------------------------- */

enum { D = 32, H = 4 };

/* [attention over one key, residual, norm] against the oracle applied to v + q. */
static void check_norm(const rva_norm_config *nc, const rva_runtime *rt, size_t nq,
                       uint64_t seed) {
	rva_pipeline *p = new_pipeline();
	ok(rva_pipeline_add_attention(p, mh(D, H)), "attention");
	ok(rva_pipeline_add_residual(p), "residual");
	ok(rva_pipeline_add_norm_ex(p, nc), "norm");
	float *q = ref_alloc(nq * D), v[D], *out = ref_alloc(nq * D);
	ref_fill_uniform(q, nq * D, -2.0f, 3.0f, seed);
	ref_fill_uniform(v, D, -1.0f, 1.0f, seed + 1);
	ok(run_one_key(p, nq, q, v, out, rt), "run");
	float *x = rows_plus_v(q, v, nq, D);
	double *want = ref_alloc_d(nq * D);
	bool training = rt && rt->training;
	if (nc->type == RVA_NORM_BATCH && training) {
		ref_batch_norm_batch(x, nq, D, D, nc->eps, nc->gain, nc->bias, want);
	} else {
		for (size_t r = 0; r < nq; r++) {
			const float *xr = x + r * D;
			double *wr = want + r * D;
			if (nc->type == RVA_NORM_LAYER)
				ref_layer_norm(xr, D, nc->eps, nc->gain, nc->bias, wr);
			else if (nc->type == RVA_NORM_RMS)
				ref_rms_norm(xr, D, nc->eps, nc->gain, nc->bias, wr);
			else
				ref_batch_norm_running(xr, D, nc->eps, nc->running_mean, nc->running_var,
				                       nc->gain, nc->bias, wr);
		}
	}
	assert_close(out, want, nq * D, "norm vs oracle");
	free(q);
	free(out);
	free(x);
	free(want);
	rva_pipeline_destroy(p);
}

Test(norms, layer_norm_default_and_affine) {
	rva_norm_config nc = rva_norm_defaults(RVA_NORM_LAYER);
	check_norm(&nc, NULL, 5, 11);
	/* gain/bias need the dim: built in check_norm after the attention, so pass them here */
	float gain[D], bias[D];
	ref_fill_uniform(gain, D, 0.5f, 1.5f, 3);
	ref_fill_uniform(bias, D, -0.5f, 0.5f, 4);
	nc.gain = gain;
	nc.bias = bias;
	nc.eps = 1e-3f;
	check_norm(&nc, NULL, 7, 12);
}

Test(norms, rms_norm) {
	rva_norm_config nc = rva_norm_defaults(RVA_NORM_RMS);
	check_norm(&nc, NULL, 5, 21);
	float gain[D], bias[D];
	ref_fill_uniform(gain, D, 0.5f, 1.5f, 5);
	ref_fill_uniform(bias, D, -0.5f, 0.5f, 6);
	nc.gain = gain;
	nc.bias = bias;
	check_norm(&nc, NULL, 3, 22);
}

Test(norms, batch_norm_inference_running_statistics) {
	rva_norm_config nc = rva_norm_defaults(RVA_NORM_BATCH);
	check_norm(&nc, NULL, 4, 31); /* defaults: mean 0, var 1 */
	float mean[D], var[D], gain[D], bias[D];
	ref_fill_uniform(mean, D, -1.0f, 1.0f, 7);
	ref_fill_uniform(var, D, 0.1f, 4.0f, 8);
	ref_fill_uniform(gain, D, 0.5f, 1.5f, 9);
	ref_fill_uniform(bias, D, -0.5f, 0.5f, 10);
	var[0] = 0.0f; /* zero variance is allowed (eps keeps it finite) */
	nc.running_mean = mean;
	nc.running_var = var;
	nc.gain = gain;
	nc.bias = bias;
	check_norm(&nc, NULL, 6, 32);
	/* training mode ignores the running statistics */
	rva_runtime rt = {.training = true};
	check_norm(&nc, &rt, 6, 33);
}

Test(norms, batch_norm_training_batch_statistics) {
	rva_norm_config nc = rva_norm_defaults(RVA_NORM_BATCH);
	rva_runtime rt = {.training = true, .seed = 5};
	check_norm(&nc, &rt, 9, 41);
	check_norm(&nc, &rt, 2, 42);
}

/* Training BatchNorm reduces over every row of every sequence of the call. */
Test(norms, batch_norm_training_spans_the_batch) {
	rva_pipeline *p = new_pipeline();
	ok(rva_pipeline_add_attention(p, mh(D, H)), "attention");
	ok(rva_pipeline_add_residual(p), "residual");
	ok(rva_pipeline_add_norm(p, RVA_NORM_BATCH), "bn");
	enum { S = 3 };
	size_t nq[S] = {4, 1, 6}, total = 11;
	float *q = ref_alloc(total * D), *out = ref_alloc(total * D), v[S][D];
	ref_fill_uniform(q, total * D, -2.0f, 2.0f, 51);
	rva_seq seqs[S];
	float *x = ref_alloc(total * D);
	size_t off = 0;
	for (int s = 0; s < S; s++) {
		ref_fill_uniform(v[s], D, -1.0f, 1.0f, 60 + s);
		seqs[s] = (rva_seq){.nq = nq[s], .nk = 1, .q = q + off * D, .k = v[s], .v = v[s],
		                    .out = out + off * D};
		for (size_t r = 0; r < nq[s]; r++)
			for (int i = 0; i < D; i++)
				x[(off + r) * D + i] = v[s][i] + q[(off + r) * D + i];
		off += nq[s];
	}
	rva_batch b = {.count = S, .seqs = seqs};
	rva_runtime rt = {.training = true};
	rva_status st[S];
	ok(rva_pipeline_run_batch(p, &b, &rt, st), "run");
	double *want = ref_alloc_d(total * D);
	ref_batch_norm_batch(x, total, D, D, 1e-5, NULL, NULL, want);
	assert_close(out, want, total * D, "batch statistics over all sequences");
	/* one row only: batch statistics are undefined (as PyTorch) */
	const float *rows[1] = {v[0]};
	cr_assert_eq(rva_pipeline_run_ex(p, q, rows, rows, NULL, 1, out, &rt), RVA_EINVAL);
	cr_assert(strstr(rva_last_error(), "BatchNorm"), "%s", rva_last_error());
	/* inference mode with one row is fine */
	ok(rva_pipeline_run(p, q, rows, rows, 1, out), "inference single query");
	free(q);
	free(out);
	free(x);
	free(want);
	rva_pipeline_destroy(p);
}

/* A sequence long enough to be split into several row tiles (and BatchNorm partials). */
Test(norms, multi_tile_sequence) {
	enum { DD = 8, NQ = 40000 }; /* tiles of 16384 rows at dim 8 */
	rva_pipeline *p = new_pipeline();
	ok(rva_pipeline_add_attention(p, mh(DD, 2)), "attention");
	ok(rva_pipeline_add_residual(p), "residual");
	ok(rva_pipeline_add_norm(p, RVA_NORM_BATCH), "bn");
	ok(rva_pipeline_add_norm(p, RVA_NORM_LAYER), "ln");
	float *q = ref_alloc((size_t)NQ * DD), *out = ref_alloc((size_t)NQ * DD), v[DD];
	ref_fill_uniform(q, (size_t)NQ * DD, -1.0f, 4.0f, 71);
	ref_fill_uniform(v, DD, -1.0f, 1.0f, 72);
	rva_runtime rt = {.training = true};
	rva_seq s = {.nq = NQ, .nk = 1, .q = q, .k = v, .v = v, .out = out};
	rva_batch b = {.count = 1, .seqs = &s};
	ok(rva_pipeline_run_batch(p, &b, &rt, NULL), "run");
	float *x = rows_plus_v(q, v, NQ, DD);
	double *bn = ref_alloc_d((size_t)NQ * DD), *want = ref_alloc_d((size_t)NQ * DD);
	ref_batch_norm_batch(x, NQ, DD, DD, 1e-5, NULL, NULL, bn);
	float row[DD];
	for (size_t r = 0; r < NQ; r++) {
		for (int i = 0; i < DD; i++)
			row[i] = (float)bn[r * DD + i];
		ref_layer_norm(row, DD, 1e-5, NULL, NULL, want + r * DD);
	}
	double e = ref_err_ratio(out, want, (size_t)NQ * DD, 1e-4, 1e-4);
	cr_assert(e <= 1.0, "error ratio %g", e);
	free(q);
	free(out);
	free(x);
	free(bn);
	free(want);
	rva_pipeline_destroy(p);
}

/* ---- dropout -------------------------------------------------------------------------- */

enum { DN = 64, DQ = 256 }; /* 16384 elements */

static size_t count_dropped(const rva_pipeline *p, const rva_runtime *rt, float prob,
                            float *out) {
	float *q = ref_alloc(DQ * DN), v[DN];
	for (int i = 0; i < DN; i++)
		v[i] = 1.0f + (float)i / 64.0f;
	ok(run_one_key(p, DQ, q, v, out, rt), "run");
	size_t zeros = 0;
	for (size_t r = 0; r < DQ; r++)
		for (size_t i = 0; i < DN; i++) {
			float y = out[r * DN + i];
			if (y == 0.0f) {
				zeros++;
				continue;
			}
			float want = v[i] / (1.0f - prob);
			cr_assert_float_eq(y, want, 1e-6f * want, "kept value scaled by 1/(1-p): %g vs %g",
			                   (double)y, (double)want);
		}
	free(q);
	return zeros;
}

Test(dropout, keep_rate_and_scaling) {
	const float probs[] = {0.1f, 0.3f, 0.5f, 0.9f};
	for (size_t k = 0; k < sizeof probs / sizeof probs[0]; k++) {
		float prob = probs[k];
		rva_pipeline *p = new_pipeline();
		ok(rva_pipeline_add_attention(p, mh(DN, 4)), "attention");
		ok(rva_pipeline_add_dropout(p, prob), "dropout");
		float *out = ref_alloc(DQ * DN);
		rva_runtime rt = {.training = true, .seed = 1234, .step = 7};
		size_t zeros = count_dropped(p, &rt, prob, out);
		double n = DQ * DN, mean = n * prob, sigma = sqrt(n * prob * (1.0 - prob));
		cr_assert(fabs((double)zeros - mean) <= 3.0 * sigma,
		          "p=%g: %zu of %g dropped, expected %g +- 3*%g", (double)prob, zeros, n, mean,
		          sigma);
		free(out);
		rva_pipeline_destroy(p);
	}
}

Test(dropout, identity_in_inference_and_deterministic_in_training) {
	rva_pipeline *p = new_pipeline();
	ok(rva_pipeline_add_attention(p, mh(DN, 4)), "attention");
	ok(rva_pipeline_add_dropout(p, 0.5f), "dropout");
	float *q = ref_alloc(DQ * DN), v[DN];
	ref_fill_uniform(q, DQ * DN, -1.0f, 1.0f, 81);
	ref_fill_uniform(v, DN, 0.5f, 1.0f, 82);
	float *a = ref_alloc(DQ * DN), *b = ref_alloc(DQ * DN), *c = ref_alloc(DQ * DN);
	ok(run_one_key(p, DQ, q, v, a, NULL), "inference");
	for (size_t r = 0; r < DQ; r++)
		cr_assert_arr_eq(a + r * DN, v, sizeof v, "identity in inference");
	rva_runtime rt = {.training = true, .seed = 9, .step = 3};
	ok(run_one_key(p, DQ, q, v, a, &rt), "training 1");
	ok(run_one_key(p, DQ, q, v, b, &rt), "training 2");
	cr_assert_arr_eq(a, b, DQ * DN * sizeof(float), "same seed/step, same mask");
	rt.step = 4;
	ok(run_one_key(p, DQ, q, v, c, &rt), "next step");
	cr_assert(memcmp(a, c, DQ * DN * sizeof(float)) != 0, "another step, another mask");
	rt.step = 3;
	rt.seed = 10;
	ok(run_one_key(p, DQ, q, v, c, &rt), "other seed");
	cr_assert(memcmp(a, c, DQ * DN * sizeof(float)) != 0, "another seed, another mask");
	free(q);
	free(a);
	free(b);
	free(c);
	rva_pipeline_destroy(p);
}

static size_t zero_mask_diff(const float *a, const float *b, size_t n) {
	size_t d = 0;
	for (size_t i = 0; i < n; i++)
		d += (a[i] == 0.0f) != (b[i] == 0.0f);
	return d;
}

Test(dropout, streams_differ_by_stage_and_sequence) {
	/* the same input to a dropout at stage 1 and at stage 2 gets independent masks */
	rva_pipeline *p1 = new_pipeline(), *p2 = new_pipeline();
	ok(rva_pipeline_add_attention(p1, mh(DN, 4)), "attention");
	ok(rva_pipeline_add_dropout(p1, 0.5f), "dropout");
	ok(rva_pipeline_add_attention(p2, mh(DN, 4)), "attention");
	ok(rva_pipeline_add_residual(p2), "residual (adds q = 0)");
	ok(rva_pipeline_add_dropout(p2, 0.5f), "dropout");
	float *q = ref_alloc(2 * DQ * DN), v[DN]; /* zeros */
	ref_fill_uniform(v, DN, 0.5f, 1.0f, 91);
	float *a = ref_alloc(2 * DQ * DN), *b = ref_alloc(2 * DQ * DN);
	rva_runtime rt = {.training = true, .seed = 1};
	ok(run_one_key(p1, DQ, q, v, a, &rt), "p1");
	ok(run_one_key(p2, DQ, q, v, b, &rt), "p2");
	size_t n = DQ * DN, d = zero_mask_diff(a, b, n);
	/* independent masks with p = 0.5 differ in half the places */
	cr_assert(fabs((double)d - n / 2.0) <= 3.0 * sqrt(n / 4.0), "%zu of %zu differ", d, n);
	/* two identical sequences of one batch: the mask depends on the sequence index */
	rva_seq s[2] = {{.nq = DQ, .nk = 1, .q = q, .k = v, .v = v, .out = a},
	                {.nq = DQ, .nk = 1, .q = q + n, .k = v, .v = v, .out = a + n}};
	rva_batch bt = {.count = 2, .seqs = s};
	ok(rva_pipeline_run_batch(p1, &bt, &rt, NULL), "batch");
	ok(run_one_key(p1, DQ, q, v, b, &rt), "alone");
	cr_assert_arr_eq(a, b, n * sizeof(float), "sequence 0 of a batch = the sequence alone");
	d = zero_mask_diff(a, a + n, n);
	cr_assert(fabs((double)d - n / 2.0) <= 3.0 * sqrt(n / 4.0), "%zu of %zu differ", d, n);
	free(q);
	free(a);
	free(b);
	rva_pipeline_destroy(p1);
	rva_pipeline_destroy(p2);
}

/* ---- residual segments ------------------------------------------------------------------ */

static rva_status times_two(const float *in, float *out, size_t dim, void *user) {
	(void)user;
	for (size_t i = 0; i < dim; i++)
		out[i] = 2.0f * in[i];
	return RVA_OK;
}

Test(residual, two_residuals) {
	/* attention -> residual (v + q) -> x2 -> residual: adds the first residual's output */
	rva_pipeline *p = new_pipeline();
	ok(rva_pipeline_add_attention(p, mh(D, H)), "attention");
	ok(rva_pipeline_add_residual(p), "residual 1");
	ok(rva_pipeline_add_custom(p, times_two, NULL), "x2");
	ok(rva_pipeline_add_residual(p), "residual 2");
	enum { NQ = 5 };
	float q[NQ * D], v[D], out[NQ * D];
	ref_fill_uniform(q, NQ * D, -1.0f, 1.0f, 101);
	ref_fill_uniform(v, D, -1.0f, 1.0f, 102);
	ok(run_one_key(p, NQ, q, v, out, NULL), "run");
	for (size_t i = 0; i < NQ * D; i++) {
		float x1 = v[i % D] + q[i];
		float want = 2.0f * x1 + x1;
		cr_assert_float_eq(out[i], want, 1e-6f, "element %zu: %g vs %g", i, (double)out[i],
		                   (double)want);
	}
	rva_pipeline_destroy(p);
}

Test(residual, segments_across_attentions) {
	/* x2 -> residual (2q + q = 3q) -> attention (v) -> residual (v + 3q) -> attention (v)
	 * -> residual (v + v + 3q) */
	rva_pipeline *p = new_pipeline();
	ok(rva_pipeline_add_custom(p, times_two, NULL), "x2");
	ok(rva_pipeline_add_residual(p), "residual 1");
	ok(rva_pipeline_add_attention(p, mh(D, H)), "attention 1");
	ok(rva_pipeline_add_residual(p), "residual 2");
	ok(rva_pipeline_add_attention(p, mh(D, H)), "attention 2");
	ok(rva_pipeline_add_residual(p), "residual 3");
	enum { NQ = 4 };
	float q[NQ * D], v[D], out[NQ * D];
	ref_fill_uniform(q, NQ * D, -1.0f, 1.0f, 111);
	ref_fill_uniform(v, D, -1.0f, 1.0f, 112);
	ok(run_one_key(p, NQ, q, v, out, NULL), "run");
	for (size_t i = 0; i < NQ * D; i++) {
		float r1 = 2.0f * q[i] + q[i];
		float r2 = v[i % D] + r1;
		float want = v[i % D] + r2;
		cr_assert_float_eq(out[i], want, 1e-5f, "element %zu: %g vs %g", i, (double)out[i],
		                   (double)want);
	}
	/* a single residual right after the attention adds the pipeline input */
	rva_pipeline *p2 = new_pipeline();
	ok(rva_pipeline_add_attention(p2, mh(D, H)), "attention");
	ok(rva_pipeline_add_residual(p2), "residual");
	ok(run_one_key(p2, NQ, q, v, out, NULL), "run");
	for (size_t i = 0; i < NQ * D; i++)
		cr_assert_float_eq(out[i], v[i % D] + q[i], 1e-6f);
	rva_pipeline_destroy(p);
	rva_pipeline_destroy(p2);
}

/* ---- custom stages ------------------------------------------------------------------------ */

typedef struct probe {
	size_t calls, bad_dim;
	size_t dim;
	const float *expect;   /* nq x dim expected input rows */
	size_t nq;
	bool *seen;
	size_t unmatched;
	float fail_above;      /* fail when in[0] > this */
	rva_status fail_with;
} probe;

static rva_status probe_fn(const float *in, float *out, size_t dim, void *user) {
	probe *pr = user;
	pr->calls++;
	if (dim != pr->dim)
		pr->bad_dim++;
	if (pr->expect) {
		bool found = false;
		for (size_t r = 0; r < pr->nq && !found; r++)
			if (!pr->seen[r] && memcmp(in, pr->expect + r * dim, dim * sizeof(float)) == 0)
				pr->seen[r] = found = true;
		if (!found)
			pr->unmatched++;
	}
	if (pr->fail_with != RVA_OK && in[0] > pr->fail_above)
		return pr->fail_with;
	for (size_t i = 0; i < dim; i++)
		out[i] = in[i] > 0.0f ? in[i] : 0.0f; /* ReLU, the guide's example */
	return RVA_OK;
}

Test(custom, receives_dim_user_and_rows) {
	enum { NQ = 6 };
	float q[NQ * D], v[D], out[NQ * D];
	ref_fill_uniform(q, NQ * D, -1.0f, 1.0f, 121);
	ref_fill_uniform(v, D, -1.0f, 1.0f, 122);
	float *x = rows_plus_v(q, v, NQ, D);
	bool seen[NQ] = {false};
	probe pr = {.dim = D, .expect = x, .nq = NQ, .seen = seen};
	rva_pipeline *p = new_pipeline();
	ok(rva_pipeline_add_attention(p, mh(D, H)), "attention");
	ok(rva_pipeline_add_residual(p), "residual");
	ok(rva_pipeline_add_custom(p, probe_fn, &pr), "custom");
	ok(run_one_key(p, NQ, q, v, out, NULL), "run");
	cr_assert_eq(pr.calls, NQ, "called once per row");
	cr_assert_eq(pr.bad_dim, 0);
	cr_assert_eq(pr.unmatched, 0, "every input row is a row of v + q");
	for (int r = 0; r < NQ; r++)
		cr_assert(seen[r]);
	for (size_t i = 0; i < NQ * D; i++)
		cr_assert_eq(out[i], x[i] > 0.0f ? x[i] : 0.0f);
	free(x);
	rva_pipeline_destroy(p);
}

Test(custom, first_stage_reads_the_query) {
	enum { NQ = 3 };
	float q[NQ * D], v[D], out[NQ * D], qcopy[NQ * D];
	ref_fill_uniform(q, NQ * D, -1.0f, 1.0f, 131);
	ref_fill_uniform(v, D, -1.0f, 1.0f, 132);
	memcpy(qcopy, q, sizeof q);
	bool seen[NQ] = {false};
	probe pr = {.dim = D, .expect = qcopy, .nq = NQ, .seen = seen};
	rva_pipeline *p = new_pipeline();
	ok(rva_pipeline_add_custom(p, probe_fn, &pr), "custom");
	ok(rva_pipeline_add_residual(p), "residual");
	ok(rva_pipeline_add_attention(p, mh(D, H)), "attention");
	ok(run_one_key(p, NQ, q, v, out, NULL), "run");
	cr_assert_eq(pr.unmatched, 0);
	cr_assert_arr_eq(q, qcopy, sizeof q, "the caller's queries are never written");
	for (size_t i = 0; i < NQ * D; i++)
		cr_assert_float_eq(out[i], v[i % D], 1e-6f);
	rva_pipeline_destroy(p);
}

Test(custom, error_fails_its_sequence_only) {
	/* sequence 1's queries are shifted up so the callback fails on them alone; training
	 * BatchNorm after it then reduces over sequences 0 and 2 only */
	enum { S = 3, NQ = 4 };
	float q[S * NQ * D], v[D], out[S * NQ * D];
	ref_fill_uniform(q, sizeof q / sizeof q[0], -1.0f, 1.0f, 141);
	ref_fill_uniform(v, D, -0.5f, 0.5f, 142);
	for (int r = 0; r < NQ; r++)
		q[(NQ + r) * D] = 100.0f;
	probe pr = {.dim = D, .fail_above = 50.0f, .fail_with = RVA_ERANGE};
	rva_pipeline *p = new_pipeline();
	ok(rva_pipeline_add_attention(p, mh(D, H)), "attention");
	ok(rva_pipeline_add_residual(p), "residual");
	ok(rva_pipeline_add_custom(p, probe_fn, &pr), "custom");
	ok(rva_pipeline_add_norm(p, RVA_NORM_BATCH), "bn");
	rva_seq seqs[S];
	for (int s = 0; s < S; s++)
		seqs[s] = (rva_seq){.nq = NQ, .nk = 1, .q = q + s * NQ * D, .k = v, .v = v,
		                    .out = out + s * NQ * D};
	rva_batch b = {.count = S, .seqs = seqs};
	rva_status st[S];
	rva_runtime rt = {.training = true};
	cr_assert_eq(rva_pipeline_run_batch(p, &b, &rt, st), RVA_ERANGE);
	cr_assert(strstr(rva_last_error(), "sequence 1") && strstr(rva_last_error(), "custom"),
	          "%s", rva_last_error());
	cr_assert_eq(st[0], RVA_OK);
	cr_assert_eq(st[1], RVA_ERANGE);
	cr_assert_eq(st[2], RVA_OK);
	/* oracle: relu(v + q) of sequences 0 and 2, batch-normalised together */
	float x[2 * NQ * D];
	for (int k = 0; k < 2; k++) {
		int s = k == 0 ? 0 : 2;
		for (int i = 0; i < NQ * D; i++) {
			float y = v[i % D] + q[s * NQ * D + i];
			x[k * NQ * D + i] = y > 0.0f ? y : 0.0f;
		}
	}
	double want[2 * NQ * D];
	ref_batch_norm_batch(x, 2 * NQ, D, D, 1e-5, NULL, NULL, want);
	assert_close(out, want, NQ * D, "sequence 0");
	assert_close(out + 2 * NQ * D, want + NQ * D, NQ * D, "sequence 2");
	rva_pipeline_destroy(p);

	/* a status outside the table becomes RVA_EINVAL */
	probe bad = {.dim = D, .fail_above = -1e30f, .fail_with = (rva_status)999};
	p = new_pipeline();
	ok(rva_pipeline_add_attention(p, mh(D, H)), "attention");
	ok(rva_pipeline_add_custom(p, probe_fn, &bad), "custom");
	const float *rows[1] = {v};
	cr_assert_eq(rva_pipeline_run(p, q, rows, rows, 1, out), RVA_EINVAL);
	cr_assert(strstr(rva_last_error(), "999"), "%s", rva_last_error());
	rva_pipeline_destroy(p);
}

/* ---- batches, blocks and the single-query path ---------------------------------------------- */

static rva_status relu(const float *in, float *out, size_t dim, void *user) {
	(void)user;
	for (size_t i = 0; i < dim; i++)
		out[i] = in[i] > 0.0f ? in[i] : 0.0f;
	return RVA_OK;
}

Test(batch, equals_each_sequence_alone) {
	enum { DIM = 48, HEADS = 4, S = 4 };
	const size_t nq[S] = {5, 1, 0, 9}, nk[S] = {7, 3, 2, 12};
	size_t tq = 0, tk = 0;
	for (int s = 0; s < S; s++)
		tq += nq[s], tk += nk[s];
	float *q = ref_alloc(tq * DIM), *k = ref_alloc(tk * DIM), *v = ref_alloc(tk * DIM);
	ref_fill_uniform(q, tq * DIM, -1.0f, 1.0f, 151);
	ref_fill_uniform(k, tk * DIM, -1.0f, 1.0f, 152);
	ref_fill_uniform(v, tk * DIM, -1.0f, 1.0f, 153);
	float gain[DIM], mean[DIM], var[DIM];
	ref_fill_uniform(gain, DIM, 0.5f, 1.5f, 154);
	ref_fill_uniform(mean, DIM, -0.2f, 0.2f, 155);
	ref_fill_uniform(var, DIM, 0.5f, 2.0f, 156);

	rva_pipeline *p = NULL;
	ok(rva_prenorm_transformer_block(mh(DIM, HEADS), 0.1f, &p), "block");
	ok(rva_pipeline_add_custom(p, relu, NULL), "relu");
	rva_norm_config nc = rva_norm_defaults(RVA_NORM_BATCH);
	nc.gain = gain;
	nc.running_mean = mean;
	nc.running_var = var;
	ok(rva_pipeline_add_norm_ex(p, &nc), "bn");
	ok(rva_pipeline_add_attention(p, mh(DIM, HEADS)), "attention 2");
	ok(rva_pipeline_add_residual(p), "residual");
	ok(rva_pipeline_add_norm(p, RVA_NORM_RMS), "rms");

	float *batch_out = ref_alloc(tq * DIM), *alone_out = ref_alloc(tq * DIM);
	rva_seq seqs[S];
	size_t oq = 0, ok_ = 0;
	for (int s = 0; s < S; s++) {
		seqs[s] = (rva_seq){.nq = nq[s], .nk = nk[s], .q = q + oq * DIM, .k = k + ok_ * DIM,
		                    .v = v + ok_ * DIM, .out = batch_out + oq * DIM};
		oq += nq[s];
		ok_ += nk[s];
	}
	rva_batch b = {.count = S, .seqs = seqs};
	rva_status st[S];
	ok(rva_pipeline_run_batch(p, &b, NULL, st), "batch");
	for (int s = 0; s < S; s++) {
		cr_assert_eq(st[s], RVA_OK);
		rva_seq one = seqs[s];
		one.out = alone_out + ((float *)seqs[s].out - batch_out);
		rva_batch b1 = {.count = 1, .seqs = &one};
		ok(rva_pipeline_run_batch(p, &b1, NULL, NULL), "alone");
	}
	cr_assert_arr_eq(batch_out, alone_out, tq * DIM * sizeof(float),
	                 "batch = each sequence alone, bit for bit");

	/* single-query path: each query row of a (non-causal) sequence on its own */
	oq = 0;
	ok_ = 0;
	float row_out[DIM];
	for (int s = 0; s < S; s++) {
		const float *kr[12], *vr[12];
		for (size_t j = 0; j < nk[s]; j++) {
			kr[j] = k + (ok_ + j) * DIM;
			vr[j] = v + (ok_ + j) * DIM;
		}
		for (size_t r = 0; r < nq[s]; r++) {
			ok(rva_pipeline_run(p, q + (oq + r) * DIM, kr, vr, nk[s], row_out), "single");
			for (int i = 0; i < DIM; i++)
				cr_assert_float_eq(row_out[i], batch_out[(oq + r) * DIM + i], 1e-4f,
				                   "seq %d row %zu col %d", s, r, i);
		}
		oq += nq[s];
		ok_ += nk[s];
	}
	free(q);
	free(k);
	free(v);
	free(batch_out);
	free(alone_out);
	rva_pipeline_destroy(p);
}

Test(batch, bad_sequence_fails_alone) {
	enum { S = 3, NQ = 2 };
	float q[S * NQ * D], v[D], out[S * NQ * D];
	ref_fill_uniform(q, sizeof q / sizeof q[0], -1.0f, 1.0f, 161);
	ref_fill_uniform(v, D, -1.0f, 1.0f, 162);
	rva_pipeline *p = new_pipeline();
	ok(rva_pipeline_add_norm(p, RVA_NORM_LAYER), "pre-norm");
	ok(rva_pipeline_add_attention(p, mh(D, H)), "attention");
	ok(rva_pipeline_add_residual(p), "residual");
	rva_seq seqs[S];
	for (int s = 0; s < S; s++)
		seqs[s] = (rva_seq){.nq = NQ, .nk = 1, .q = q + s * NQ * D, .k = v, .v = v,
		                    .out = out + s * NQ * D};
	seqs[1].nk = 0;           /* no keys */
	seqs[2].q_stride = D - 1; /* narrower than dim */
	rva_batch b = {.count = S, .seqs = seqs};
	rva_status st[S];
	cr_assert_eq(rva_pipeline_run_batch(p, &b, NULL, st), RVA_EEMPTY);
	cr_assert_eq(st[0], RVA_OK);
	cr_assert_eq(st[1], RVA_EEMPTY);
	cr_assert_eq(st[2], RVA_EDIM);
	for (int i = 0; i < NQ * D; i++)
		cr_assert_float_eq(out[i], v[i % D] + q[i], 1e-6f);
	rva_pipeline_destroy(p);
}

Test(blocks, post_and_pre_norm) {
	enum { NQ = 3, NK = 5 };
	float q[NQ * D], k[NK * D], v[NK * D];
	ref_fill_uniform(q, NQ * D, -1.0f, 1.0f, 171);
	ref_fill_uniform(k, NK * D, -1.0f, 1.0f, 172);
	ref_fill_uniform(v, NK * D, -1.0f, 1.0f, 173);
	rva_attention *ref = mh(D, H);
	float att[NQ * D], lnq[NQ * D], out[NQ * D];
	rva_seq s = {.nq = NQ, .nk = NK, .q = q, .k = k, .v = v, .out = att};
	rva_batch b = {.count = 1, .seqs = &s};
	ok(rva_compute_batch(ref, &b, NULL, NULL), "attention alone");

	/* post-norm: LN(att(q) + q); dropout is the identity in inference */
	rva_pipeline *p = NULL;
	ok(rva_transformer_block(mh(D, H), 0.1f, &p), "post-norm block");
	size_t n;
	ok(rva_pipeline_stage_count(p, &n), "count");
	cr_assert_eq(n, 4);
	s.out = out;
	ok(rva_pipeline_run_batch(p, &b, NULL, NULL), "run");
	double want[NQ * D];
	for (int r = 0; r < NQ; r++) {
		float x[D];
		for (int i = 0; i < D; i++)
			x[i] = att[r * D + i] + q[r * D + i];
		ref_layer_norm(x, D, 1e-5, NULL, NULL, want + r * D);
	}
	assert_close(out, want, NQ * D, "post-norm block");
	rva_pipeline_destroy(p);

	/* pre-norm: att(LN(q)) + q */
	for (int r = 0; r < NQ; r++) {
		double y[D];
		ref_layer_norm(q + r * D, D, 1e-5, NULL, NULL, y);
		for (int i = 0; i < D; i++)
			lnq[r * D + i] = (float)y[i];
	}
	s.q = lnq;
	s.out = att;
	ok(rva_compute_batch(ref, &b, NULL, NULL), "attention of LN(q)");
	ok(rva_prenorm_transformer_block(mh(D, H), 0.1f, &p), "pre-norm block");
	ok(rva_pipeline_stage_count(p, &n), "count");
	cr_assert_eq(n, 4);
	s.q = q;
	s.out = out;
	ok(rva_pipeline_run_batch(p, &b, NULL, NULL), "run");
	for (int i = 0; i < NQ * D; i++)
		want[i] = (double)att[i] + (double)q[i];
	assert_close(out, want, NQ * D, "pre-norm block");
	rva_pipeline_destroy(p);
	rva_attention_destroy(ref);
}

Test(modes, training_attention_and_pipeline_dropout_repeatable) {
	rva_config c = rva_multi_head(D, H);
	c.dropout = 0.2f;
	rva_attention *a = NULL;
	ok(rva_build(&c, &a), "build");
	rva_pipeline *p = NULL;
	ok(rva_transformer_block(a, 0.3f, &p), "block");
	enum { NQ = 4, NK = 6 };
	float q[NQ * D], k[NK * D], v[NK * D], o1[NQ * D], o2[NQ * D];
	ref_fill_uniform(q, NQ * D, -1.0f, 1.0f, 181);
	ref_fill_uniform(k, NK * D, -1.0f, 1.0f, 182);
	ref_fill_uniform(v, NK * D, -1.0f, 1.0f, 183);
	rva_seq s = {.nq = NQ, .nk = NK, .q = q, .k = k, .v = v, .out = o1};
	rva_batch b = {.count = 1, .seqs = &s};
	rva_runtime rt = {.training = true, .seed = 77, .step = 1};
	ok(rva_pipeline_run_batch(p, &b, &rt, NULL), "run 1");
	s.out = o2;
	ok(rva_pipeline_run_batch(p, &b, &rt, NULL), "run 2");
	cr_assert_arr_eq(o1, o2, sizeof o1, "same seed and step: same numbers");
	for (int i = 0; i < NQ * D; i++)
		cr_assert(isfinite(o1[i]));
	rva_pipeline_destroy(p);
}

/* ---- allocation failures -------------------------------------------------------------------- */

/* Builds and runs pipelines through every allocating call; cleans up on every path. */
static rva_status fault_scenario(const float *q, const float *kv, float *out, size_t nq) {
	rva_config c = rva_multi_head(16, 2);
	rva_attention *a = NULL, *b = NULL;
	rva_pipeline *p = NULL, *blk = NULL;
	rva_status st = rva_build(&c, &a);
	if (st != RVA_OK)
		return st;
	if ((st = rva_pipeline_create(&p)) != RVA_OK) {
		rva_attention_destroy(a);
		return st;
	}
	st = rva_pipeline_add_norm(p, RVA_NORM_LAYER);
	if (st == RVA_OK)
		st = rva_pipeline_add_attention(p, a);
	if (st != RVA_OK) { /* the pipeline did not take a */
		rva_attention_destroy(a);
		rva_pipeline_destroy(p);
		return st;
	}
	float gain[16];
	for (int i = 0; i < 16; i++)
		gain[i] = 1.0f + 0.01f * (float)i;
	rva_norm_config nc = rva_norm_defaults(RVA_NORM_BATCH);
	nc.gain = gain;
	nc.running_var = gain;
	if (st == RVA_OK)
		st = rva_pipeline_add_dropout(p, 0.25f);
	if (st == RVA_OK)
		st = rva_pipeline_add_residual(p);
	if (st == RVA_OK)
		st = rva_pipeline_add_norm_ex(p, &nc);
	if (st == RVA_OK)
		st = rva_pipeline_add_custom(p, times_two, NULL);
	rva_seq seqs[2] = {{.nq = nq, .nk = 3, .q = q, .k = kv, .v = kv, .out = out},
	                   {.nq = 2, .nk = 1, .q = q, .k = kv, .v = kv, .out = out + nq * 16}};
	rva_batch batch = {.count = 2, .seqs = seqs};
	rva_runtime rt = {.training = true};
	if (st == RVA_OK)
		st = rva_pipeline_run_batch(p, &batch, &rt, NULL);
	if (st == RVA_OK)
		st = rva_pipeline_run_batch(p, &batch, NULL, NULL);
	const float *rows[3] = {kv, kv + 16, kv + 32};
	if (st == RVA_OK)
		st = rva_pipeline_run(p, q, rows, rows, 3, out);
	if (st == RVA_OK && (st = rva_build(&c, &b)) == RVA_OK &&
	    (st = rva_prenorm_transformer_block(b, 0.1f, &blk)) != RVA_OK)
		rva_attention_release(b); /* a failing block leaves b with us */
	if (st == RVA_OK)
		st = rva_pipeline_run(blk, q, rows, rows, 3, out);
	/* the block over a self-attention sequence (AUTO: K/V follow the stream) */
	rva_seq self_seq = {.nq = 3, .nk = 3, .q = kv, .k = kv, .v = kv, .out = out};
	rva_batch self_batch = {.count = 1, .seqs = &self_seq};
	if (st == RVA_OK)
		st = rva_pipeline_run_batch(blk, &self_batch, NULL, NULL);
	rva_pipeline_destroy(blk);
	rva_pipeline_destroy(p);
	if (st != RVA_OK)
		return st;
	/* SELF on the single-query path, with a mask: the sequence and mask copies */
	rva_attention *sa = NULL;
	rva_pipeline *sp = NULL;
	if ((st = rva_build(&c, &sa)) != RVA_OK)
		return st;
	if ((st = rva_pipeline_create(&sp)) != RVA_OK) {
		rva_attention_destroy(sa);
		return st;
	}
	if ((st = rva_pipeline_set_mode(sp, RVA_PIPELINE_SELF)) == RVA_OK)
		st = rva_pipeline_add_attention(sp, sa);
	if (st != RVA_OK) /* the pipeline did not take sa */
		rva_attention_destroy(sa);
	const uint8_t mask[3] = {1, 0, 1};
	if (st == RVA_OK)
		st = rva_pipeline_run_ex(sp, q, rows, rows, mask, 3, out, NULL);
	rva_pipeline_destroy(sp);
	return st;
}

Test(faults, every_allocation_failure_is_enomem_and_leaks_nothing) {
	enum { NQ = 9000 }; /* two row tiles at dim 16 */
	float *q = ref_alloc((NQ + 2) * 16), *kv = ref_alloc(3 * 16), *out = ref_alloc((NQ + 2) * 16);
	ref_fill_uniform(q, (NQ + 2) * 16, -1.0f, 1.0f, 191);
	ref_fill_uniform(kv, 3 * 16, -1.0f, 1.0f, 192);
	long k;
	for (k = 0; k < 10000; k++) {
		ok(ref_fault_install(), "set allocator");
		ref_fault_arm(k, false);
		rva_status st = fault_scenario(q, kv, out, NQ);
		bool refused = ref_fault_failed() > 0;
		ref_fault_uninstall();
		if (!refused) {
			ok(st, "the scenario without failure");
			break;
		}
		cr_assert_eq(st, RVA_ENOMEM, "allocation %ld failed: %s (%s)", k, rva_status_name(st),
		             rva_last_error());
	}
	cr_assert(k > 10, "the scenario allocates (%ld)", k);
	free(q);
	free(kv);
	free(out);
}

Test(pipeline, same_attention_twice_is_refused) {
	rva_config c = rva_multi_head(16, 2);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_pipeline *p;
	cr_assert_eq(rva_pipeline_create(&p), RVA_OK);
	cr_assert_eq(rva_pipeline_add_attention(p, att), RVA_OK);
	cr_assert_eq(rva_pipeline_add_attention(p, att), RVA_EINVAL);
	size_t n;
	cr_assert_eq(rva_pipeline_stage_count(p, &n), RVA_OK);
	cr_assert_eq(n, 1);
	cr_assert_eq(rva_pipeline_destroy(p), RVA_OK); /* frees att once */
}

/* ---- self-attention mode ------------------------------------------------------------------ */

/* A ragged self-attention batch: S sequences of lengths len[] packed in x (dim columns),
 * each given as k = v = q (or, with null_kv, as k = v = NULL and nk = 0). */
typedef struct selfbatch {
	size_t count, dim, total;
	const size_t *len;
	float *x, *out;
	rva_seq seqs[8];
} selfbatch;

static void selfbatch_make(selfbatch *b, size_t dim, size_t count, const size_t *len,
                           bool null_kv, uint64_t seed) {
	b->count = count;
	b->dim = dim;
	b->len = len;
	b->total = 0;
	for (size_t s = 0; s < count; s++)
		b->total += len[s];
	b->x = ref_alloc(b->total * dim);
	b->out = ref_alloc(b->total * dim);
	ref_fill_uniform(b->x, b->total * dim, -2.0f, 2.0f, seed);
	size_t off = 0;
	for (size_t s = 0; s < count; s++) {
		const float *q = b->x + off * dim;
		b->seqs[s] = (rva_seq){.nq = len[s], .nk = null_kv ? 0 : len[s], .q = q,
		                       .k = null_kv ? NULL : q, .v = null_kv ? NULL : q,
		                       .out = b->out + off * dim};
		off += len[s];
	}
}

static void selfbatch_free(selfbatch *b) {
	free(b->x);
	free(b->out);
}

static rva_batch selfbatch_view(const selfbatch *b) {
	return (rva_batch){.count = b->count, .seqs = b->seqs};
}

/* The oracle over every sequence of b: `blocks` blocks of spec sp[i] applied in turn. */
static double *selfbatch_oracle(const selfbatch *b, const ref_block_spec *sp, size_t blocks,
                                const uint8_t *const *masks) {
	size_t dim = b->dim;
	double *want = ref_alloc_d(b->total * dim), *tmp = ref_alloc_d(b->total * dim);
	for (size_t i = 0; i < b->total * dim; i++)
		want[i] = b->x[i];
	size_t off = 0;
	for (size_t s = 0; s < b->count; s++) {
		for (size_t k = 0; k < blocks; k++) {
			ref_self_block(&sp[k], b->len[s], dim, want + off * dim,
			               masks ? masks[s] : NULL, tmp + off * dim);
			memcpy(want + off * dim, tmp + off * dim, b->len[s] * dim * sizeof(double));
		}
		off += b->len[s];
	}
	free(tmp);
	return want;
}

static rva_attention *mh_causal(size_t dim, size_t heads, bool causal) {
	rva_config c = rva_multi_head(dim, heads);
	c.causal = causal;
	rva_attention *a = NULL;
	ok(rva_build(&c, &a), "build");
	return a;
}

#define SELF_ATOL 1e-4
#define SELF_RTOL 1e-4

static void assert_self_close(const float *got, const double *want, size_t n, const char *what) {
	double e = ref_err_ratio(got, want, n, SELF_ATOL, SELF_RTOL);
	cr_assert(e <= 1.0, "%s: error ratio %g (atol %g, rtol %g)", what, e, SELF_ATOL, SELF_RTOL);
}

/* Builds a pre-norm block [norm, attention, residual] in SELF mode (norm defaults: arrays
 * need the dim, which the first attention fixes). */
static rva_pipeline *self_prenorm(rva_norm_type norm, size_t dim, size_t heads, bool causal) {
	rva_pipeline *p = new_pipeline();
	ok(rva_pipeline_set_mode(p, RVA_PIPELINE_SELF), "self mode");
	ok(rva_pipeline_add_norm(p, norm), "norm");
	ok(rva_pipeline_add_attention(p, mh_causal(dim, heads, causal)), "attention");
	ok(rva_pipeline_add_residual(p), "residual");
	return p;
}

/* A pre-norm block over a self-attention batch is x + att(N(x), N(x), N(x)): LayerNorm
 * (the pre-built block, in its AUTO mode) and RMSNorm (SELF mode), causal and not, four
 * sequences of different lengths, given as k = v = q or as k = v = NULL. */
Test(self_attention, prenorm_block_matches_float64_oracle) {
	enum { DIM = 48, HEADS = 4, S = 4 };
	static const size_t len[S] = {7, 1, 13, 30};
	for (int norm = 0; norm < 2; norm++)
		for (int causal = 0; causal < 2; causal++)
			for (int null_kv = 0; null_kv < 2; null_kv++) {
				rva_pipeline *p = NULL;
				bool builtin = norm == REF_BLOCK_LAYER && !null_kv;
				if (builtin) {
					ok(rva_prenorm_transformer_block(mh_causal(DIM, HEADS, causal), 0.1f, &p),
					   "block");
					rva_pipeline_mode m = RVA_PIPELINE_CROSS;
					ok(rva_pipeline_mode_get(p, &m), "get mode");
					cr_assert_eq(m, RVA_PIPELINE_AUTO);
				} else {
					p = self_prenorm(norm == REF_BLOCK_LAYER ? RVA_NORM_LAYER : RVA_NORM_RMS,
					                 DIM, HEADS, causal);
				}
				selfbatch b;
				selfbatch_make(&b, DIM, S, len, null_kv, 310 + norm * 4 + causal * 2 + null_kv);
				rva_batch rb = selfbatch_view(&b);
				rva_status st[S];
				ok(rva_pipeline_run_batch(p, &rb, NULL, st), "run");
				for (int s = 0; s < S; s++)
					cr_assert_eq(st[s], RVA_OK);
				ref_block_spec sp = {.norm = norm, .eps = 1e-5, .heads = HEADS,
				                     .causal = causal, .prenorm = true};
				double *want = selfbatch_oracle(&b, &sp, 1, NULL);
				char what[96];
				snprintf(what, sizeof what, "%s %s%s%s", norm ? "rms" : "layer",
				         causal ? "causal" : "bidirectional", null_kv ? " k=v=NULL" : "",
				         builtin ? " (prenorm_transformer_block)" : "");
				assert_self_close(b.out, want, b.total * DIM, what);
				free(want);
				selfbatch_free(&b);
				rva_pipeline_destroy(p);
			}
}

/* Two pre-norm blocks in one SELF pipeline: the second block's K/V are the normalised output
 * of the first (its norm with gain and bias), its attention another head count and causal;
 * padding masks on the keys. Against two oracle blocks applied in turn. */
Test(self_attention, two_block_stack_matches_float64_oracle) {
	enum { DIM = 32, S = 3 };
	static const size_t len[S] = {9, 2, 21};
	float gain[DIM], bias[DIM];
	ref_fill_uniform(gain, DIM, 0.5f, 1.5f, 321);
	ref_fill_uniform(bias, DIM, -0.3f, 0.3f, 322);
	rva_pipeline *p = self_prenorm(RVA_NORM_LAYER, DIM, 4, false);
	rva_norm_config nc = rva_norm_defaults(RVA_NORM_RMS);
	nc.gain = gain;
	nc.bias = bias;
	ok(rva_pipeline_add_norm_ex(p, &nc), "rms with gain and bias");
	ok(rva_pipeline_add_attention(p, mh_causal(DIM, 2, true)), "attention 2");
	ok(rva_pipeline_add_residual(p), "residual 2");
	selfbatch b;
	selfbatch_make(&b, DIM, S, len, false, 323);
	uint8_t m0[9], m1[2], m2[21];
	for (int j = 0; j < 9; j++)
		m0[j] = j != 3 && j != 6;
	m1[0] = m1[1] = 1;
	for (int j = 0; j < 21; j++)
		m2[j] = j % 5 != 2;
	b.seqs[0].key_mask = m0;
	b.seqs[1].key_mask = m1;
	b.seqs[2].key_mask = m2;
	const uint8_t *masks[S] = {m0, m1, m2};
	rva_batch rb = selfbatch_view(&b);
	ok(rva_pipeline_run_batch(p, &rb, NULL, NULL), "run");
	ref_block_spec sp[2] = {
		{.norm = REF_BLOCK_LAYER, .eps = 1e-5, .heads = 4, .causal = false, .prenorm = true},
		{.norm = REF_BLOCK_RMS, .eps = 1e-5, .gain = gain, .bias = bias, .heads = 2,
		 .causal = true, .prenorm = true},
	};
	double *want = selfbatch_oracle(&b, sp, 2, masks);
	assert_self_close(b.out, want, b.total * DIM, "two pre-norm blocks");
	/* the first block alone differs: the second block did something */
	double *one = selfbatch_oracle(&b, sp, 1, masks);
	cr_assert(ref_err_ratio(b.out, one, b.total * DIM, SELF_ATOL, SELF_RTOL) > 10.0);
	free(one);
	free(want);
	selfbatch_free(&b);
	rva_pipeline_destroy(p);
}

/* rva_transformer_block (post-norm) over a self-attention batch: N(x + att(x, x, x)). */
Test(self_attention, postnorm_block_matches_float64_oracle) {
	enum { DIM = 32, HEADS = 2, S = 2 };
	static const size_t len[S] = {5, 11};
	rva_pipeline *p = NULL;
	ok(rva_transformer_block(mh_causal(DIM, HEADS, true), 0.1f, &p), "block");
	selfbatch b;
	selfbatch_make(&b, DIM, S, len, false, 331);
	rva_batch rb = selfbatch_view(&b);
	ok(rva_pipeline_run_batch(p, &rb, NULL, NULL), "run");
	ref_block_spec sp = {.norm = REF_BLOCK_LAYER, .eps = 1e-5, .heads = HEADS, .causal = true,
	                     .prenorm = false};
	double *want = selfbatch_oracle(&b, &sp, 1, NULL);
	assert_self_close(b.out, want, b.total * DIM, "post-norm block");
	free(want);
	selfbatch_free(&b);
	rva_pipeline_destroy(p);
}

/* Cross-attention is unchanged: a CROSS pipeline (the default of rva_pipeline_create) over
 * the same self-attention batch still computes x + att(LN(x), x, x), the block in AUTO mode
 * over distinct keys/values computes q + att(LN(q), k, v) bit for bit like the CROSS
 * pipeline, and AUTO over k = v = q differs from CROSS (the fix is real). */
Test(self_attention, cross_mode_unchanged) {
	enum { DIM = 32, HEADS = 4, NQ = 6, NK = 9 };
	static const size_t len[1] = {NQ};
	rva_pipeline *cross = new_pipeline(), *blk = NULL;
	rva_pipeline_mode m = RVA_PIPELINE_SELF;
	ok(rva_pipeline_mode_get(cross, &m), "get mode");
	cr_assert_eq(m, RVA_PIPELINE_CROSS);
	ok(rva_pipeline_add_norm(cross, RVA_NORM_LAYER), "norm");
	ok(rva_pipeline_add_attention(cross, mh(DIM, HEADS)), "attention");
	ok(rva_pipeline_add_dropout(cross, 0.1f), "dropout");
	ok(rva_pipeline_add_residual(cross), "residual");
	ok(rva_prenorm_transformer_block(mh(DIM, HEADS), 0.1f, &blk), "block");

	/* self-attention batch through CROSS: the old numbers, x + att(LN(x), x, x) */
	selfbatch b;
	selfbatch_make(&b, DIM, 1, len, false, 341);
	rva_batch rb = selfbatch_view(&b);
	ok(rva_pipeline_run_batch(cross, &rb, NULL, NULL), "cross over k = v = q");
	float lnx[NQ * DIM];
	for (int r = 0; r < NQ; r++) {
		double y[DIM];
		ref_layer_norm(b.x + r * DIM, DIM, 1e-5, NULL, NULL, y);
		for (int i = 0; i < DIM; i++)
			lnx[r * DIM + i] = (float)y[i];
	}
	ref_attn_spec as = {.heads = HEADS, .kv_heads = HEADS, .head_dim = DIM / HEADS,
	                    .scale = 1.0 / sqrt((double)(DIM / HEADS)), .pattern = REF_DENSE};
	double att[NQ * DIM], want[NQ * DIM];
	ref_attention(&as, NQ, NQ, lnx, DIM, b.x, DIM, b.x, DIM, NULL, att);
	for (int i = 0; i < NQ * DIM; i++)
		want[i] = att[i] + b.x[i];
	assert_close(b.out, want, NQ * DIM, "CROSS over a self-attention batch");
	float cross_out[NQ * DIM];
	memcpy(cross_out, b.out, sizeof cross_out);
	ok(rva_pipeline_run_batch(blk, &rb, NULL, NULL), "AUTO block over k = v = q");
	double diff = 0.0;
	for (int i = 0; i < NQ * DIM; i++)
		diff = fmax(diff, fabs((double)b.out[i] - cross_out[i]));
	cr_assert(diff > 1e-2, "self-attention changes the block: max diff %g", diff);

	/* distinct keys/values: the AUTO block is the CROSS pipeline, bit for bit */
	float q[NQ * DIM], k[NK * DIM], v[NK * DIM], o1[NQ * DIM], o2[NQ * DIM];
	ref_fill_uniform(q, NQ * DIM, -1.0f, 1.0f, 342);
	ref_fill_uniform(k, NK * DIM, -1.0f, 1.0f, 343);
	ref_fill_uniform(v, NK * DIM, -1.0f, 1.0f, 344);
	rva_seq s = {.nq = NQ, .nk = NK, .q = q, .k = k, .v = v, .out = o1};
	rva_batch cb = {.count = 1, .seqs = &s};
	ok(rva_pipeline_run_batch(cross, &cb, NULL, NULL), "cross");
	s.out = o2;
	ok(rva_pipeline_run_batch(blk, &cb, NULL, NULL), "block");
	cr_assert_arr_eq(o1, o2, sizeof o1, "AUTO = CROSS over distinct keys/values");
	/* q = k = v pointers but nk != nq: not a self-attention sequence, CROSS */
	s = (rva_seq){.nq = 2, .nk = NQ, .q = b.x, .k = b.x, .v = b.x, .out = o1};
	ok(rva_pipeline_run_batch(cross, &cb, NULL, NULL), "cross");
	s.out = o2;
	ok(rva_pipeline_run_batch(blk, &cb, NULL, NULL), "block");
	cr_assert_arr_eq(o1, o2, 2 * DIM * sizeof(float), "nk != nq: cross");
	selfbatch_free(&b);
	rva_pipeline_destroy(cross);
	rva_pipeline_destroy(blk);
}

/* SELF on the single-query path: the context rows then the query form one sequence; the
 * output is that sequence's last row on the batch path, bit for bit (with a mask, and
 * with no context at all). */
Test(self_attention, single_query_is_the_last_row) {
	enum { DIM = 32, HEADS = 4, N = 10 };
	static const size_t len[1] = {N};
	rva_pipeline *p = self_prenorm(RVA_NORM_LAYER, DIM, HEADS, true);
	ok(rva_pipeline_add_norm(p, RVA_NORM_RMS), "rms");
	ok(rva_pipeline_add_attention(p, mh(DIM, 2)), "attention 2");
	ok(rva_pipeline_add_residual(p), "residual 2");
	selfbatch b;
	selfbatch_make(&b, DIM, 1, len, false, 351);
	uint8_t mask[N];
	for (int j = 0; j < N; j++)
		mask[j] = j != 4;
	const float *rows[N];
	for (int j = 0; j < N; j++)
		rows[j] = b.x + j * DIM;
	float out[DIM];
	for (int masked = 0; masked < 2; masked++) {
		b.seqs[0].key_mask = masked ? mask : NULL;
		rva_batch rb = selfbatch_view(&b);
		ok(rva_pipeline_run_batch(p, &rb, NULL, NULL), "batch");
		ok(rva_pipeline_run_ex(p, rows[N - 1], rows, rows, masked ? mask : NULL, N - 1, out,
		                       NULL),
		   "single");
		cr_assert_arr_eq(out, b.out + (N - 1) * DIM, sizeof out, "masked %d", masked);
	}
	/* values as separate copies of the same rows are fine */
	float copy[(N - 1) * DIM];
	memcpy(copy, b.x, sizeof copy);
	const float *vrows[N - 1];
	for (int j = 0; j < N - 1; j++)
		vrows[j] = copy + j * DIM;
	float out2[DIM];
	ok(rva_pipeline_run(p, rows[N - 1], rows, vrows, N - 1, out2), "copied values");
	ok(rva_pipeline_run(p, rows[N - 1], rows, rows, N - 1, out), "same values");
	cr_assert_arr_eq(out, out2, sizeof out);
	/* in place: out over the query (the rows are copied first) */
	float inplace[DIM];
	memcpy(inplace, rows[N - 1], sizeof inplace);
	ok(rva_pipeline_run(p, inplace, rows, rows, N - 1, inplace), "in place");
	cr_assert_arr_eq(inplace, out, sizeof out);
	/* no context: the query alone */
	b.seqs[0].nq = b.seqs[0].nk = 1;
	b.seqs[0].key_mask = NULL;
	rva_batch rb = selfbatch_view(&b);
	ok(rva_pipeline_run_batch(p, &rb, NULL, NULL), "batch of one row");
	ok(rva_pipeline_run(p, b.x, NULL, NULL, 0, out), "single, no context");
	cr_assert_arr_eq(out, b.out, sizeof out);
	/* values that differ from keys are refused */
	copy[3 * DIM + 5] += 1.0f;
	cr_assert_eq(rva_pipeline_run(p, rows[N - 1], rows, vrows, N - 1, out2), RVA_EINVAL);
	cr_assert(strstr(rva_last_error(), "values[3]"), "%s", rva_last_error());
	selfbatch_free(&b);
	rva_pipeline_destroy(p);
}

/* The engine's job graph gives the serial path's bytes with 1, 2 and 4 workers, in
 * inference and in training mode (pipeline dropout, BatchNorm over the batch). */
Test(self_attention, engine_bit_identical_across_thread_counts) {
	enum { DIM = 48, S = 5 };
	static const size_t len[S] = {17, 1, 40, 3, 64};
	rva_pipeline *p = NULL;
	ok(rva_prenorm_transformer_block(mh_causal(DIM, 4, true), 0.2f, &p), "block 1");
	ok(rva_pipeline_add_norm(p, RVA_NORM_RMS), "rms");
	ok(rva_pipeline_add_attention(p, mh_causal(DIM, 6, false)), "attention 2");
	ok(rva_pipeline_add_dropout(p, 0.1f), "dropout 2");
	ok(rva_pipeline_add_residual(p), "residual 2");
	ok(rva_pipeline_add_norm(p, RVA_NORM_BATCH), "batch norm");
	selfbatch b;
	selfbatch_make(&b, DIM, S, len, false, 361);
	rva_batch rb = selfbatch_view(&b);
	size_t bytes = b.total * DIM * sizeof(float);
	float *want = ref_alloc(b.total * DIM);
	for (int training = 0; training < 2; training++) {
		rva_runtime rt = {.training = training, .seed = 9, .step = 2};
		ok(rva_pipeline_run_batch(p, &rb, &rt, NULL), "serial");
		memcpy(want, b.out, bytes);
		static const unsigned threads[] = {1, 2, 4};
		for (int t = 0; t < 3; t++) {
			rva_engine_config ec = rva_engine_config_defaults();
			ec.threads = threads[t];
			ec.topology_synthetic = "package:1 core:4 pu:1";
			ec.spin_us = 0;
			rva_engine *e = NULL;
			ok(rva_engine_create(&ec, &e), "engine");
			memset(b.out, 0, bytes);
			ok(rva_engine_run_pipeline(e, p, &rb, &rt, NULL, NULL), "engine run");
			cr_assert(memcmp(b.out, want, bytes) == 0, "training %d, %u threads", training,
			          threads[t]);
			rva_engine_destroy(e);
		}
	}
	rva_pipeline_mode m; /* the block's AUTO mode took every sequence as self-attention */
	ok(rva_pipeline_mode_get(p, &m), "mode");
	cr_assert_eq(m, RVA_PIPELINE_AUTO);
	/* a submission fixes the mode too */
	rva_pipeline *fresh = NULL;
	ok(rva_prenorm_transformer_block(mh(DIM, 4), 0.0f, &fresh), "fresh block");
	ok(rva_pipeline_set_mode(fresh, RVA_PIPELINE_SELF), "before any run");
	rva_engine *e = NULL;
	ok(rva_engine_create(NULL, &e), "engine");
	rva_job *job = NULL;
	ok(rva_engine_submit_pipeline(e, fresh, &rb, NULL, &job), "submit");
	cr_assert_eq(rva_pipeline_set_mode(fresh, RVA_PIPELINE_CROSS), RVA_ESTATE);
	ok(rva_job_wait(job), "wait");
	rva_job_destroy(job);
	rva_engine_destroy(e);
	rva_pipeline_destroy(fresh);
	free(want);
	selfbatch_free(&b);
	rva_pipeline_destroy(p);
}

/* Mode errors: arguments, grouped-query attention, a sequence that is neither form, and
 * changing the mode after a run. */
Test(self_attention, bad_input) {
	enum { DIM = 32 };
	rva_pipeline *p = new_pipeline();
	cr_assert_eq(rva_pipeline_set_mode(NULL, RVA_PIPELINE_SELF), RVA_ENULL);
	cr_assert_eq(rva_pipeline_set_mode(p, RVA_PIPELINE_MODE_COUNT), RVA_EINVAL);
	cr_assert_eq(rva_pipeline_set_mode(p, (rva_pipeline_mode)-1), RVA_EINVAL);
	rva_pipeline_mode m;
	cr_assert_eq(rva_pipeline_mode_get(NULL, &m), RVA_ENULL);
	cr_assert_eq(rva_pipeline_mode_get(p, NULL), RVA_ENULL);

	/* grouped-query attention: no key/value rows in the stream */
	rva_config gq = rva_multi_head(DIM, 4);
	gq.kv_heads = 2;
	rva_attention *g = NULL;
	ok(rva_build(&gq, &g), "gqa");
	ok(rva_pipeline_set_mode(p, RVA_PIPELINE_SELF), "self");
	cr_assert_eq(rva_pipeline_add_attention(p, g), RVA_EDIM);
	cr_assert(strstr(rva_last_error(), "kv_heads"), "%s", rva_last_error());
	ok(rva_pipeline_set_mode(p, RVA_PIPELINE_AUTO), "auto");
	ok(rva_pipeline_add_attention(p, g), "gqa in AUTO mode");
	cr_assert_eq(rva_pipeline_set_mode(p, RVA_PIPELINE_SELF), RVA_EDIM);
	ok(rva_pipeline_mode_get(p, &m), "mode");
	cr_assert_eq(m, RVA_PIPELINE_AUTO, "a refused change keeps the mode");
	/* AUTO with GQA: a self-attention sequence fails alone, a cross one runs */
	float x[4 * DIM], kv[3 * 16], out[12 * DIM];
	ref_fill_uniform(x, 4 * DIM, -1.0f, 1.0f, 371);
	ref_fill_uniform(kv, 3 * 16, -1.0f, 1.0f, 372);
	rva_seq seqs[3] = {
		{.nq = 4, .nk = 4, .q = x, .q_stride = DIM, .k = x, .k_stride = DIM, .v = x,
		 .v_stride = DIM, .out = out},
		{.nq = 4, .nk = 3, .q = x, .k = kv, .v = kv, .out = out + 4 * DIM},
		/* packed (strides 0): still k = v = q, not key rows of kv_heads * head_dim */
		{.nq = 4, .nk = 4, .q = x, .k = x, .v = x, .out = out + 8 * DIM},
	};
	rva_batch b = {.count = 3, .seqs = seqs};
	rva_status st[3];
	cr_assert_eq(rva_pipeline_run_batch(p, &b, NULL, st), RVA_EDIM);
	cr_assert_eq(st[0], RVA_EDIM);
	cr_assert_eq(st[1], RVA_OK);
	cr_assert_eq(st[2], RVA_EDIM);
	/* after a run the mode is fixed */
	cr_assert_eq(rva_pipeline_set_mode(p, RVA_PIPELINE_CROSS), RVA_ESTATE);
	cr_assert(strstr(rva_last_error(), "already run"), "%s", rva_last_error());
	rva_pipeline_destroy(p);

	/* SELF: a sequence with other keys fails alone */
	p = self_prenorm(RVA_NORM_LAYER, DIM, 4, false);
	float kv2[3 * DIM];
	ref_fill_uniform(kv2, 3 * DIM, -1.0f, 1.0f, 373);
	rva_seq s3[3] = {
		{.nq = 4, .nk = 3, .q = x, .k = kv2, .v = kv2, .out = out},
		{.nq = 4, .nk = 0, .q = x, .out = out + 4 * DIM},
		{.nq = 4, .nk = 4, .q = x, .k = x, .v = x, .v_stride = 2 * DIM, .out = out + 8 * DIM},
	};
	rva_status st3[3];
	rva_batch b3 = {.count = 3, .seqs = s3};
	cr_assert_eq(rva_pipeline_run_batch(p, &b3, NULL, st3), RVA_EINVAL);
	cr_assert_eq(st3[0], RVA_EINVAL);
	cr_assert_eq(st3[1], RVA_OK);
	cr_assert_eq(st3[2], RVA_EINVAL, "k = v = q with another stride");
	rva_pipeline_destroy(p);
}

/*
 * Linear attention (Performer FAVOR+, ReLU, ELU) against the double-precision oracle
 * tests/ref/ref_linear.c with the attention's own feature matrix
 * (rva_attention_features), plus: FAVOR+ converging to exact softmax attention as the
 * number of features grows, single query = batch of one, ragged batch = each sequence
 * alone, chunked = single pass, the serial path's determinism, the engine (1 and 2
 * threads) bit-identical to the serial path, the feature matrix (orthogonal blocks,
 * seeded), rows() (MoE experts), allocation failures and bad input.
 *
 * Tolerance (fp32 vs the double oracle), per element:
 *   |got - want| <= ATOL + RTOL |want|, ATOL = 1e-5, RTOL = 1e-4
 * with inputs in [-1, 1) (outputs are convex combinations of value rows).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention/attention_internal.h"
#include "ref/ref_linear.h"
#include "ref/fault_alloc.h"
#include "ref/ref_util.h"
#include "rvattn/rvattn.h"

#define ATOL 1e-5
#define RTOL 1e-4

typedef struct lcase {
	size_t nq, nk, heads, kv_heads, hd, features, block;
	size_t qpad, kpad;          /* extra floats per row (strided views) */
	bool causal, with_mask;
	rva_feature_map map;
	bool orthogonal;
	float lo, hi;               /* input range */
	uint64_t seed;
} lcase;

typedef struct lrun {
	rva_attention *att;
	size_t dim, kvdim, qs, ks;
	float *q, *k, *v, *out;
	uint8_t *mask;
	double *want;
	const float *w;
	size_t m;
} lrun;

static rva_config case_config(const lcase *c) {
	rva_config cfg = rva_linear(c->heads * c->hd, c->features);
	cfg.heads = c->heads;
	cfg.kv_heads = c->kv_heads;
	cfg.causal = c->causal;
	cfg.feature_map = c->map;
	cfg.orthogonal = c->orthogonal;
	if (c->block)
		cfg.block_size = c->block;
	return cfg;
}

static ref_linear_map ref_map(rva_feature_map m) {
	return m == RVA_FEATURES_RELU ? REF_LINEAR_RELU
	       : m == RVA_FEATURES_ELU ? REF_LINEAR_ELU : REF_LINEAR_FAVOR;
}

static ref_linear_args ref_args(const lcase *c, const lrun *r) {
	return (ref_linear_args){
		.nq = c->nq, .nk = c->nk, .heads = c->heads, .kv_heads = c->kv_heads,
		.head_dim = c->hd, .q = r->q, .q_stride = r->qs, .k = r->k, .k_stride = r->ks,
		.v = r->v, .v_stride = r->ks, .mask = r->mask, .causal = c->causal,
		.scale = 1.0 / sqrt((double)c->hd), .map = ref_map(c->map), .w = r->w, .m = r->m};
}

/* Builds the attention, fills the inputs, runs the serial batch path. */
static void run_case(const lcase *c, lrun *r) {
	memset(r, 0, sizeof *r);
	rva_config cfg = case_config(c);
	rva_status st = rva_build(&cfg, &r->att);
	cr_assert_eq(st, RVA_OK, "build: %s", rva_last_error());
	r->dim = c->heads * c->hd;
	r->kvdim = c->kv_heads * c->hd;
	r->qs = r->dim + c->qpad;
	r->ks = r->kvdim + c->kpad;
	r->q = ref_alloc(c->nq * r->qs + 1);
	r->k = ref_alloc(c->nk * r->ks + 1);
	r->v = ref_alloc(c->nk * r->ks + 1);
	r->out = ref_alloc(c->nq * r->qs + 1);
	ref_fill_uniform(r->q, c->nq * r->qs, c->lo, c->hi, c->seed);
	ref_fill_uniform(r->k, c->nk * r->ks, c->lo, c->hi, c->seed + 1);
	ref_fill_uniform(r->v, c->nk * r->ks, -1.0f, 1.0f, c->seed + 2);
	if (c->with_mask) {
		r->mask = malloc(c->nk);
		uint64_t x = c->seed * 2654435761u + 7;
		for (size_t j = 0; j < c->nk; j++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			r->mask[j] = (x >> 33) % 4 != 0; /* ~3/4 visible */
		}
		if (c->nk > 3)
			r->mask[c->nk / 2] = 0;
	}
	if (c->map != RVA_FEATURES_ELU) {
		size_t rows, cols;
		st = rva_attention_features(r->att, &r->w, &rows, &cols);
		cr_assert_eq(st, RVA_OK, "features: %s", rva_last_error());
		cr_assert_eq(rows, c->features);
		cr_assert_eq(cols, c->hd);
		r->m = rows;
	}
	rva_seq s = {.nq = c->nq, .nk = c->nk, .q = r->q, .q_stride = r->qs, .k = r->k,
	             .k_stride = r->ks, .v = r->v, .v_stride = r->ks, .out = r->out,
	             .out_stride = r->qs, .key_mask = r->mask};
	rva_batch b = {.count = 1, .seqs = &s};
	st = rva_compute_batch(r->att, &b, NULL, NULL);
	cr_assert_eq(st, RVA_OK, "compute: %s", rva_last_error());
	r->want = ref_alloc_d(c->nq * r->dim + 1);
	ref_linear_args a = ref_args(c, r);
	cr_assert_eq(ref_linear(&a, r->want), 0);
}

static void free_run(lrun *r) {
	rva_attention_destroy(r->att);
	free(r->q);
	free(r->k);
	free(r->v);
	free(r->out);
	free(r->mask);
	free(r->want);
}

/* Max over elements of |got - want| / (ATOL + RTOL |want|). */
static double case_err(const lcase *c, const lrun *r) {
	double worst = 0.0;
	for (size_t i = 0; i < c->nq; i++)
		for (size_t t = 0; t < r->dim; t++) {
			double want = r->want[i * r->dim + t], got = r->out[i * r->qs + t];
			double e = fabs(got - want) / (ATOL + RTOL * fabs(want));
			if (!(e <= worst))
				worst = e;
		}
	return worst;
}

static void check_case(const lcase *c) {
	lrun r;
	run_case(c, &r);
	double e = case_err(c, &r);
	cr_expect(e <= 1.0, "nq %zu nk %zu heads %zu/%zu hd %zu m %zu block %zu causal %d mask "
	          "%d map %d: error ratio %g", c->nq, c->nk, c->heads, c->kv_heads, c->hd,
	          c->features, c->block, c->causal, c->with_mask, c->map, e);
	free_run(&r);
}

/* The grid: every nk x head_dim, with heads / kv_heads, causal, mask, nq, block size,
 * features and strides varied along the way. */
Test(linear, matches_oracle_grid) {
	const size_t nks[] = {1, 7, 64, 129, 1000};
	const size_t hds[] = {1, 3, 64, 80};
	unsigned n = 0;
	for (size_t a = 0; a < 5; a++)
		for (size_t b = 0; b < 4; b++)
			for (unsigned v = 0; v < 4; v++, n++) {
				size_t nk = nks[a], hd = hds[b];
				lcase c = {.nk = nk, .hd = hd, .map = RVA_FEATURES_FAVOR, .orthogonal = true,
				           .lo = -1.0f, .hi = 1.0f, .seed = 100 + n};
				c.causal = v & 1;
				c.with_mask = (v >> 1) & 1;
				c.heads = (n % 3 == 0) ? 1 : 4;
				c.kv_heads = c.heads == 1 ? 1 : (n % 3 == 1 ? 4 : 2 - (n % 2));
				const size_t nqs[] = {nk, nk / 2 + 1, 1, nk + 5};
				c.nq = nqs[(n / 2) % 4];
				if (nk == 1000 && c.nq > 300)
					c.nq = c.causal ? 1000 : 300;
				c.features = (size_t[]){16, 40, 64}[n % 3];
				c.block = (size_t[]){0, 4, 16, 1}[(n / 3) % 4];
				c.qpad = n % 5 == 0 ? 3 : 0;
				c.kpad = n % 7 == 0 ? 5 : 0;
				check_case(&c);
			}
}

Test(linear, relu_and_elu_match_oracle) {
	for (int map = RVA_FEATURES_RELU; map <= RVA_FEATURES_ELU; map++)
		for (unsigned v = 0; v < 8; v++) {
			lcase c = {.nq = 37 + v, .nk = (size_t[]){1, 50, 129, 300}[v % 4], .heads = 4,
			           .kv_heads = v % 2 ? 2 : 4, .hd = (size_t[]){3, 64, 1, 80}[v % 4],
			           .features = 48, .block = v < 4 ? 8 : 0, .causal = v & 1,
			           .with_mask = (v >> 1) & 1, .map = (rva_feature_map)map,
			           .orthogonal = v % 3 != 0, .lo = -1.0f, .hi = 1.0f, .seed = 7 + v};
			check_case(&c);
		}
}

/* Random features approximate softmax attention; the error shrinks as m grows. */
Test(linear, favor_converges_to_softmax) {
	const size_t ms[] = {16, 256, 2048};
	double err[3];
	for (int i = 0; i < 3; i++) {
		lcase c = {.nq = 32, .nk = 64, .heads = 2, .kv_heads = 2, .hd = 16, .features = ms[i],
		           .map = RVA_FEATURES_FAVOR, .orthogonal = true, .lo = -0.5f, .hi = 0.5f,
		           .seed = 42};
		lrun r;
		run_case(&c, &r);
		double *exact = ref_alloc_d(c.nq * r.dim);
		ref_linear_args a = ref_args(&c, &r);
		cr_assert_eq(ref_softmax_attention(&a, exact), 0);
		double s = 0.0;
		for (size_t q = 0; q < c.nq; q++)
			for (size_t t = 0; t < r.dim; t++)
				s += fabs(r.out[q * r.qs + t] - exact[q * r.dim + t]);
		err[i] = s / (double)(c.nq * r.dim);
		cr_expect(case_err(&c, &r) <= 1.0, "m = %zu: oracle mismatch", ms[i]);
		free(exact);
		free_run(&r);
	}
	cr_expect(err[1] < err[0] && err[2] < err[1],
	          "mean |favor - softmax|: m=16 %g, m=256 %g, m=2048 %g", err[0], err[1], err[2]);
	cr_expect(err[2] < 5e-3, "m=2048 mean error %g", err[2]);
}

/* The single-query calls are a batch of one: bit-identical. */
Test(linear, single_query_equals_batch_of_one) {
	for (int causal = 0; causal < 2; causal++) {
		size_t nk = 300, heads = 4, hd = 16, dim = heads * hd, kvd = 2 * hd;
		rva_config cfg = rva_linear(dim, 64);
		cfg.heads = heads;
		cfg.kv_heads = 2;
		cfg.causal = causal;
		cfg.block_size = 8;
		rva_attention *att;
		cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
		float *q = ref_alloc(dim), *k = ref_alloc(nk * kvd), *v = ref_alloc(nk * kvd);
		float *o1 = ref_alloc(dim), *o2 = ref_alloc(dim), *o3 = ref_alloc(dim);
		float *o4 = ref_alloc(dim);
		ref_fill_uniform(q, dim, -1, 1, 1);
		ref_fill_uniform(k, nk * kvd, -1, 1, 2);
		ref_fill_uniform(v, nk * kvd, -1, 1, 3);
		uint8_t *mask = malloc(nk);
		for (size_t j = 0; j < nk; j++)
			mask[j] = j % 3 != 1;
		const float **kp = malloc(nk * sizeof *kp), **vp = malloc(nk * sizeof *vp);
		for (size_t j = 0; j < nk; j++) {
			kp[j] = k + j * kvd;
			vp[j] = v + j * kvd;
		}
		cr_assert_eq(rva_compute(att, q, kp, vp, nk, o1), RVA_OK);
		cr_assert_eq(rva_compute_masked(att, q, kp, vp, mask, nk, o3), RVA_OK);
		rva_seq s = {.nq = 1, .nk = nk, .q = q, .k = k, .v = v, .out = o2};
		rva_batch b = {.count = 1, .seqs = &s};
		cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
		cr_expect(memcmp(o1, o2, dim * sizeof(float)) == 0, "causal %d: unmasked differs",
		          causal);
		s.key_mask = mask;
		s.out = o4;
		cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
		cr_expect(memcmp(o3, o4, dim * sizeof(float)) == 0, "causal %d: masked differs",
		          causal);
		free(q), free(k), free(v), free(o1), free(o2), free(o3), free(o4), free(mask);
		free(kp), free(vp);
		rva_attention_destroy(att);
	}
}

/* A ragged batch gives each sequence exactly what it gets alone; the serial path is
 * deterministic run to run. */
Test(linear, ragged_batch_equals_each_alone) {
	for (int causal = 0; causal < 2; causal++) {
		size_t heads = 4, hd = 8, dim = heads * hd, kvd = hd;
		rva_config cfg = rva_linear(dim, 32);
		cfg.heads = heads;
		cfg.kv_heads = 1;
		cfg.causal = causal;
		cfg.block_size = 4;
		rva_attention *att;
		cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
		const size_t nqs[] = {5, 0, 200, 1, 70}, nks[] = {9, 4, 200, 133, 20};
		enum { NS = 5 };
		rva_seq seqs[NS];
		float *bufs[NS][4];
		uint8_t *masks[NS];
		for (int i = 0; i < NS; i++) {
			bufs[i][0] = ref_alloc(nqs[i] * dim + 1);
			bufs[i][1] = ref_alloc(nks[i] * kvd + 1);
			bufs[i][2] = ref_alloc(nks[i] * kvd + 1);
			bufs[i][3] = ref_alloc(nqs[i] * dim + 1);
			ref_fill_uniform(bufs[i][0], nqs[i] * dim, -1, 1, 10 + i);
			ref_fill_uniform(bufs[i][1], nks[i] * kvd, -1, 1, 20 + i);
			ref_fill_uniform(bufs[i][2], nks[i] * kvd, -1, 1, 30 + i);
			masks[i] = NULL;
			if (i == 2) {
				masks[i] = malloc(nks[i]);
				for (size_t j = 0; j < nks[i]; j++)
					masks[i][j] = (j * 7) % 5 != 0;
			}
			seqs[i] = (rva_seq){.nq = nqs[i], .nk = nks[i], .q = bufs[i][0], .k = bufs[i][1],
			                    .v = bufs[i][2], .out = bufs[i][3], .key_mask = masks[i]};
		}
		rva_batch b = {.count = NS, .seqs = seqs};
		rva_status ss[NS];
		cr_assert_eq(rva_compute_batch(att, &b, NULL, ss), RVA_OK, "%s", rva_last_error());
		for (int i = 0; i < NS; i++) {
			cr_expect_eq(ss[i], RVA_OK);
			float *alone = ref_alloc(nqs[i] * dim + 1), *again = ref_alloc(nqs[i] * dim + 1);
			rva_seq s1 = seqs[i];
			s1.out = alone;
			rva_batch b1 = {.count = 1, .seqs = &s1};
			cr_assert_eq(rva_compute_batch(att, &b1, NULL, NULL), RVA_OK);
			s1.out = again;
			cr_assert_eq(rva_compute_batch(att, &b1, NULL, NULL), RVA_OK);
			cr_expect(memcmp(alone, bufs[i][3], nqs[i] * dim * sizeof(float)) == 0,
			          "causal %d sequence %d differs from its batch result", causal, i);
			cr_expect(memcmp(alone, again, nqs[i] * dim * sizeof(float)) == 0,
			          "causal %d sequence %d: two runs differ", causal, i);
			free(alone);
			free(again);
		}
		for (int i = 0; i < NS; i++) {
			for (int j = 0; j < 4; j++)
				free(bufs[i][j]);
			free(masks[i]);
		}
		rva_attention_destroy(att);
	}
}

/* Chunked key states merged by rescaling equal the single pass (one chunk) to fp32
 * rounding: block_size 1, 4 and 64 (chunks of 16, 64, 1024 keys) on 1000 keys. */
Test(linear, chunked_equals_single_pass) {
	for (int causal = 0; causal < 2; causal++) {
		float *outs[3];
		size_t blocks[3] = {1, 4, 64}, nq = 333, nk = 1000, dim = 2 * 32;
		lrun r;
		for (int i = 0; i < 3; i++) {
			lcase c = {.nq = nq, .nk = nk, .heads = 2, .kv_heads = 2, .hd = 32,
			           .features = 64, .block = blocks[i], .causal = causal,
			           .with_mask = true, .map = RVA_FEATURES_FAVOR, .orthogonal = true,
			           .lo = -1.5f, .hi = 1.5f, .seed = 5};
			run_case(&c, &r);
			double e = case_err(&c, &r);
			cr_expect(e <= 1.0, "causal %d block %zu: error ratio %g", causal, blocks[i], e);
			outs[i] = r.out;
			r.out = NULL;
			free_run(&r);
		}
		for (int i = 0; i < 2; i++)
			for (size_t t = 0; t < nq * dim; t++) {
				double a = outs[i][t], b = outs[2][t];
				if (!(fabs(a - b) <= 1e-5 + 1e-4 * fabs(b))) {
					cr_expect(false, "causal %d block %zu vs %zu: element %zu: %g vs %g",
					          causal, blocks[i], blocks[2], t, a, b);
					break;
				}
			}
		for (int i = 0; i < 3; i++)
			free(outs[i]);
	}
}

/* The seeded feature matrix: m x head_dim, blocks of head_dim rows orthogonal, row norms
 * chi_d distributed, the same for the same seed. */
Test(linear, feature_matrix_orthogonal_blocks) {
	size_t hd = 24, m = 100;
	rva_config cfg = rva_linear(4 * hd, m);
	cfg.heads = 4;
	rva_attention *a1, *a2, *a3, *a4;
	cr_assert_eq(rva_build(&cfg, &a1), RVA_OK);
	cr_assert_eq(rva_build(&cfg, &a2), RVA_OK);
	cfg.seed = 99;
	cr_assert_eq(rva_build(&cfg, &a3), RVA_OK);
	cfg.orthogonal = false;
	cr_assert_eq(rva_build(&cfg, &a4), RVA_OK);
	const float *w1, *w2, *w3, *w4;
	size_t rows, cols;
	cr_assert_eq(rva_attention_features(a1, &w1, &rows, &cols), RVA_OK);
	cr_assert_eq(rows, m);
	cr_assert_eq(cols, hd);
	cr_assert_eq(rva_attention_features(a2, &w2, &rows, &cols), RVA_OK);
	cr_assert_eq(rva_attention_features(a3, &w3, &rows, &cols), RVA_OK);
	cr_assert_eq(rva_attention_features(a4, &w4, &rows, &cols), RVA_OK);
	cr_expect(memcmp(w1, w2, m * hd * sizeof(float)) == 0, "same seed, different W");
	cr_expect(memcmp(w1, w3, m * hd * sizeof(float)) != 0, "different seeds, same W");
	double o1 = ref_block_orthogonality(w1, m, hd), o3 = ref_block_orthogonality(w3, m, hd);
	double o4 = ref_block_orthogonality(w4, m, hd);
	cr_expect(o1 < 1e-5 && o3 < 1e-5, "orthogonal blocks: worst cosine %g / %g", o1, o3);
	cr_expect(o4 > 1e-2, "i.i.d. rows look orthogonal (worst cosine %g)", o4);
	/* Row norms are chi_24: mean ~ 4.85; the mean of 100 lies well inside [4, 5.7]. */
	double mean = 0.0;
	for (size_t i = 0; i < m; i++) {
		double n2 = 0.0;
		for (size_t t = 0; t < hd; t++)
			n2 += (double)w1[i * hd + t] * w1[i * hd + t];
		mean += sqrt(n2) / (double)m;
	}
	cr_expect(mean > 4.0 && mean < 5.7, "mean row norm %g", mean);
	/* The config reports the matrix it uses. */
	rva_config back;
	cr_assert_eq(rva_attention_config(a1, &back), RVA_OK);
	cr_expect_eq(back.feature_matrix, w1);
	rva_attention_destroy(a1);
	rva_attention_destroy(a2);
	rva_attention_destroy(a3);
	rva_attention_destroy(a4);
}

/* A caller's feature matrix is copied and used. */
Test(linear, caller_feature_matrix) {
	size_t hd = 5, m = 7, nq = 9, nk = 11;
	float w[7 * 5];
	ref_fill_uniform(w, m * hd, -1.5f, 1.5f, 77);
	rva_config cfg = rva_linear(hd, m);
	cfg.feature_matrix = w;
	rva_attention *att;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	const float *got;
	size_t rows, cols;
	cr_assert_eq(rva_attention_features(att, &got, &rows, &cols), RVA_OK);
	cr_expect(got != w && memcmp(got, w, sizeof w) == 0);
	float q[9 * 5], k[11 * 5], v[11 * 5], out[9 * 5];
	double want[9 * 5];
	ref_fill_uniform(q, nq * hd, -1, 1, 1);
	ref_fill_uniform(k, nk * hd, -1, 1, 2);
	ref_fill_uniform(v, nk * hd, -1, 1, 3);
	w[0] = 100.0f; /* the attention owns its copy */
	rva_seq s = {.nq = nq, .nk = nk, .q = q, .k = k, .v = v, .out = out};
	rva_batch b = {.count = 1, .seqs = &s};
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
	ref_linear_args a = {.nq = nq, .nk = nk, .heads = 1, .kv_heads = 1, .head_dim = hd,
	                     .q = q, .q_stride = hd, .k = k, .k_stride = hd, .v = v,
	                     .v_stride = hd, .scale = 1.0 / sqrt((double)hd),
	                     .map = REF_LINEAR_FAVOR, .w = got, .m = m};
	cr_assert_eq(ref_linear(&a, want), 0);
	cr_expect(ref_err_ratio(out, want, nq * hd, ATOL, RTOL) <= 1.0);
	rva_attention_destroy(att);
}

/* All keys masked -> zero rows; causal queries before the first key -> zero rows. */
Test(linear, empty_denominators_give_zero_rows) {
	size_t hd = 8, nq = 6, nk = 3;
	float q[6 * 8], k[3 * 8], v[3 * 8], out[6 * 8];
	ref_fill_uniform(q, nq * hd, -1, 1, 1);
	ref_fill_uniform(k, nk * hd, -1, 1, 2);
	ref_fill_uniform(v, nk * hd, -1, 1, 3);
	uint8_t none[3] = {0, 0, 0};
	for (int map = 0; map < RVA_FEATURES_COUNT; map++) {
		rva_config cfg = rva_linear(hd, 16);
		cfg.feature_map = (rva_feature_map)map;
		rva_attention *att;
		cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
		rva_seq s = {.nq = nq, .nk = nk, .q = q, .k = k, .v = v, .out = out,
		             .key_mask = none};
		rva_batch b = {.count = 1, .seqs = &s};
		memset(out, 0x7f, sizeof out);
		cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
		for (size_t i = 0; i < nq * hd; i++)
			cr_assert_eq(out[i], 0.0f, "map %d: out[%zu] = %g", map, i, out[i]);
		rva_attention_destroy(att);
		cfg.causal = true;
		cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
		s.key_mask = NULL;
		memset(out, 0x7f, sizeof out);
		cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
		for (size_t i = 0; i < (nq - nk) * hd; i++)
			cr_assert_eq(out[i], 0.0f, "map %d causal: out[%zu] = %g", map, i, out[i]);
		/* query nq-nk sees key 0 only: its output is v[0] */
		for (size_t t = 0; t < hd; t++)
			cr_expect(fabsf(out[(nq - nk) * hd + t] - v[t]) <= 1e-6f, "map %d", map);
		rva_attention_destroy(att);
	}
}

/* rows() (used by MoE experts) gives the batch numbers for any ascending subset. */
Test(linear, rows_match_batch) {
	for (int causal = 0; causal < 2; causal++)
		for (int map = 0; map < RVA_FEATURES_COUNT; map++) {
			lcase c = {.nq = 150, .nk = 140, .heads = 4, .kv_heads = 2, .hd = 12,
			           .features = 40, .block = 4, .causal = causal, .with_mask = true,
			           .map = (rva_feature_map)map, .orthogonal = true, .lo = -1, .hi = 1,
			           .seed = 3 + map};
			lrun r;
			run_case(&c, &r);
			uint32_t rows[64];
			size_t n = 0;
			for (uint32_t i = 0; i < c.nq && n < 64; i += 1 + (i % 4))
				rows[n++] = i;
			rows[n - 1] = (uint32_t)c.nq - 1;
			rows[n - 2] = rows[n - 3]; /* a duplicate is fine */
			/* rows() takes the query vectors gathered (row i of qg is query rows[i]) */
			float *qg = ref_alloc(n * r.qs);
			for (size_t i = 0; i < n; i++)
				memcpy(qg + i * r.qs, r.q + rows[i] * r.qs, r.qs * sizeof(float));
			rva_seq s = {.nq = c.nq, .nk = c.nk, .q = qg, .q_stride = r.qs, .k = r.k,
			             .k_stride = r.ks, .v = r.v, .v_stride = r.ks, .out = r.out,
			             .out_stride = r.qs, .key_mask = r.mask};
			const rva__mech_ops *ops = r.att->ops;
			size_t bytes = ops->rows_scratch(r.att, &s, n);
			void *scratch = ref_alloc(bytes / sizeof(float) + 1);
			float *got = ref_alloc(n * r.dim);
			cr_assert_eq(ops->rows(r.att, &s, 0, NULL, rows, n, got, r.dim, scratch), RVA_OK,
			             "%s", rva_last_error());
			for (size_t i = 0; i < n; i++)
				for (size_t t = 0; t < r.dim; t++) {
					double want = r.want[rows[i] * r.dim + t], g = got[i * r.dim + t];
					if (!(fabs(g - want) <= ATOL + RTOL * fabs(want))) {
						cr_expect(false, "causal %d map %d row %u col %zu: %g vs %g", causal,
						          map, rows[i], t, g, want);
						i = n;
						break;
					}
				}
			free(qg);
			free(scratch);
			free(got);
			free_run(&r);
		}
}

/* FLOPs: positive, and linear in the sequence length. */
Test(linear, flops_scale_linearly) {
	for (int causal = 0; causal < 2; causal++) {
		rva_config cfg = rva_linear(768, 256);
		cfg.heads = 12;
		cfg.causal = causal;
		rva_attention *att;
		cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
		rva_seq s = {.nq = 8192, .nk = 8192};
		rva_batch b = {.count = 1, .seqs = &s};
		double f1, f2;
		cr_assert_eq(rva_attention_flops(att, &b, &f1), RVA_OK);
		s.nq = s.nk = 65536;
		cr_assert_eq(rva_attention_flops(att, &b, &f2), RVA_OK);
		cr_expect(f1 > 8192.0 * 12 * 4 * 256 * 64, "flops %g", f1);
		cr_expect(fabs(f2 / f1 - 8.0) < 0.05, "causal %d: ratio %g", causal, f2 / f1);
		rva_attention_destroy(att);
	}
}

Test(linear, bad_input) {
	rva_attention *att = NULL;
	rva_config cfg = rva_linear(64, 65537);
	cr_expect_eq(rva_build(&cfg, &att), RVA_ERANGE);
	cfg.feature_map = RVA_FEATURES_ELU; /* features unused */
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	const float *w;
	size_t rows, cols;
	cr_expect_eq(rva_attention_features(att, &w, &rows, &cols), RVA_EINVAL);
	/* no keys */
	float q[64] = {0}, out[64];
	rva_seq s = {.nq = 1, .nk = 0, .q = q, .k = q, .v = q, .out = out};
	rva_batch b = {.count = 1, .seqs = &s};
	rva_status ss;
	cr_expect_eq(rva_compute_batch(att, &b, NULL, &ss), RVA_EEMPTY);
	cr_expect_eq(ss, RVA_EEMPTY);
	rva_attention_destroy(att);
	/* a non-finite caller matrix */
	float wbad[4 * 8] = {0};
	wbad[13] = NAN; /* row 1, column 5 */
	cfg = rva_linear(8, 4);
	cfg.feature_matrix = wbad;
	cr_expect_eq(rva_build(&cfg, &att), RVA_ERANGE);
	cr_expect(strstr(rva_last_error(), "feature_matrix[1][5]") != NULL, "%s",
	          rva_last_error());
	/* kv_heads not dividing heads */
	cfg = rva_linear(64, 16);
	cfg.heads = 4;
	cfg.kv_heads = 3;
	cr_expect_eq(rva_build(&cfg, &att), RVA_EDIM);
}

/* Every allocation failure gives RVA_ENOMEM and leaks nothing. */
Test(linear, allocation_failures) {
	size_t hd = 8, heads = 2, dim = heads * hd, nq = 40, nk = 50;
	float *q = ref_alloc(nq * dim), *k = ref_alloc(nk * dim), *v = ref_alloc(nk * dim);
	float *out = ref_alloc(nq * dim);
	ref_fill_uniform(q, nq * dim, -1, 1, 1);
	ref_fill_uniform(k, nk * dim, -1, 1, 2);
	ref_fill_uniform(v, nk * dim, -1, 1, 3);
	for (int causal = 0; causal < 2; causal++) {
		bool completed = false;
		for (long fail = 0; fail < 200 && !completed; fail++) {
			cr_assert_eq(ref_fault_install(), RVA_OK);
			long base = ref_fault_live();
			ref_fault_arm(fail, false);
			rva_config cfg = rva_linear(dim, 24);
			cfg.heads = heads;
			cfg.causal = causal;
			cfg.block_size = 2;
			rva_attention *att = NULL;
			rva_status st = rva_build(&cfg, &att);
			if (st == RVA_OK) {
				rva_seq s = {.nq = nq, .nk = nk, .q = q, .k = k, .v = v, .out = out};
				rva_batch b = {.count = 1, .seqs = &s};
				st = rva_compute_batch(att, &b, NULL, NULL);
				rva_attention_destroy(att);
			}
			long leaked = ref_fault_live() - base;
			bool refused = ref_fault_failed() > 0;
			ref_fault_uninstall();
			cr_expect(st == RVA_OK || st == RVA_ENOMEM, "fail %ld: %s", fail,
			          rva_status_name(st));
			cr_expect_eq(leaked, 0, "causal %d, allocation %ld fails: %ld blocks leak",
			             causal, fail, leaked);
			completed = st == RVA_OK && !refused;
		}
		cr_expect(completed, "causal %d: never completed", causal);
	}
	free(q);
	free(k);
	free(v);
	free(out);
}

/* The engine runs the same graph: 1 and 2 threads give the serial path's bits. */
Test(linear, engine_matches_serial_bit_for_bit) {
	for (int causal = 0; causal < 2; causal++) {
		lcase c = {.nq = 700, .nk = 900, .heads = 4, .kv_heads = 2, .hd = 16, .features = 48,
		           .block = 8, .causal = causal, .with_mask = true,
		           .map = RVA_FEATURES_FAVOR, .orthogonal = true, .lo = -1, .hi = 1,
		           .seed = 11};
		lrun r;
		run_case(&c, &r);
		float *got = ref_alloc(c.nq * r.qs);
		for (unsigned t = 1; t <= 2; t++) {
			rva_engine_config ec = rva_engine_config_defaults();
			ec.threads = t;
			rva_engine *e;
			rva_status st = rva_engine_create(&ec, &e);
			if (st == RVA_EINVAL && t > 1)
				continue; /* fewer cores than threads here */
			cr_assert_eq(st, RVA_OK, "%s", rva_last_error());
			rva_seq s = {.nq = c.nq, .nk = c.nk, .q = r.q, .q_stride = r.qs, .k = r.k,
			             .k_stride = r.ks, .v = r.v, .v_stride = r.ks, .out = got,
			             .out_stride = r.qs, .key_mask = r.mask};
			rva_batch b = {.count = 1, .seqs = &s};
			memset(got, 0, c.nq * r.qs * sizeof(float));
			cr_assert_eq(rva_engine_run(e, r.att, &b, NULL, NULL, NULL), RVA_OK, "%s",
			             rva_last_error());
			for (size_t i = 0; i < c.nq; i++)
				cr_assert(memcmp(got + i * r.qs, r.out + i * r.qs, r.dim * sizeof(float)) == 0,
				          "causal %d, %u threads: row %zu differs", causal, t, i);
			rva_engine_destroy(e);
		}
		free(got);
		free_run(&r);
	}
}

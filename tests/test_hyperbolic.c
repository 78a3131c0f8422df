/*
 * Hyperbolic (Poincare ball) attention against the double-precision oracle
 * tests/ref/ref_hyperbolic.c.
 *
 * Tolerance: |out - oracle| <= 1e-4 / sqrt(c) per element for both aggregations (fp32
 * scores and GEMMs; outputs have norm < 1/sqrt(c); observed worst ~2e-5).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention/attention_internal.h"
#include "ref/ref_hyperbolic.h"
#include "ref/fault_alloc.h"
#include "rvattn/alloc.h"
#include "rvattn/attention.h"
#include "rvattn/engine.h"

#define TOL_GYRO 1e-4
#define TOL_FRECHET 1e-4

/* ---- small deterministic inputs ------------------------------------------------------ */

static uint64_t rng_state = 0x1234567;

static double urand(void) {
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (double)(rng_state >> 11) * 0x1.0p-53;
}

/* rows x width floats with row stride `stride`; rows of typical norm radius/sqrt(c),
 * every fifth row pushed outside the ball (exercises the projection). */
static float *points(size_t rows, size_t width, size_t stride, double radius, double c) {
	float *x = calloc(rows * stride + 1, sizeof(float));
	double a = radius / sqrt(c) * sqrt(3.0 / (double)width);
	for (size_t i = 0; i < rows; i++) {
		double f = i % 5 == 3 ? 3.0 : 1.0;
		for (size_t d = 0; d < width; d++)
			x[i * stride + d] = (float)((2.0 * urand() - 1.0) * a * f);
	}
	return x;
}

typedef struct hcase {
	size_t heads, kv_heads, hd, nq, nk;
	double c, temperature;
	bool causal, masked, frechet;
	size_t block, qblock;   /* 0 = defaults */
	size_t pad;             /* extra floats per row (strided inputs) */
} hcase;

/* Runs one case through rva_compute_batch and compares with the oracle; returns the max
 * abs error (scaled by sqrt(c)). */
static double run_case(const hcase *hc, rva_status *status) {
	size_t dim = hc->heads * hc->hd, kvd = hc->kv_heads * hc->hd;
	rva_config cfg = rva_hyperbolic(dim, (float)-hc->c);
	cfg.heads = hc->heads;
	cfg.kv_heads = hc->kv_heads;
	cfg.temperature = (float)hc->temperature;
	cfg.causal = hc->causal;
	cfg.block_size = hc->block;
	cfg.query_block = hc->qblock;
	if (hc->frechet) {
		cfg.aggregation = RVA_AGG_FRECHET;
		cfg.frechet_tol = 1e-7f;
		cfg.frechet_max_iter = 200;
	}
	rva_attention *att;
	rva_status st = rva_build(&cfg, &att);
	cr_assert_eq(st, RVA_OK, "build: %s", rva_last_error());
	size_t qs = dim + hc->pad, ks = kvd + hc->pad, os = dim + 2 * hc->pad;
	float *q = points(hc->nq, dim, qs, 0.7, hc->c);
	float *k = points(hc->nk, kvd, ks, 0.7, hc->c);
	float *v = points(hc->nk, kvd, ks, 0.7, hc->c);
	float *out = calloc(hc->nq * os + 1, sizeof(float));
	uint8_t *mask = NULL;
	if (hc->masked) {
		mask = calloc(hc->nk + 1, 1);
		for (size_t j = 0; j < hc->nk; j++)
			mask[j] = j + 1 == hc->nk || (j > 0 && urand() < 0.7);
	}
	rva_seq seq = {.nq = hc->nq, .nk = hc->nk, .q = q, .q_stride = qs, .k = k,
	               .k_stride = ks, .v = v, .v_stride = ks, .out = out, .out_stride = os,
	               .key_mask = mask};
	rva_batch b = {.count = 1, .seqs = &seq};
	*status = rva_compute_batch(att, &b, NULL, NULL);
	double *ref = calloc(hc->nq * dim + 1, sizeof(double));
	ref_hyp_params p = {.c = hc->c, .temperature = hc->temperature, .frechet = hc->frechet,
	                    .causal = hc->causal};
	ref_hyperbolic_attention(&p, hc->heads, hc->kv_heads, hc->hd, hc->nq, hc->nk, q, qs, k,
	                         ks, v, ks, mask, ref);
	double err = 0.0;
	for (size_t i = 0; i < hc->nq; i++) {
		double n2 = 0.0;
		for (size_t d = 0; d < dim; d++) {
			double o = out[i * os + d];
			err = fmax(err, fabs(o - ref[i * dim + d]) * sqrt(hc->c));
			if (!isfinite(o))
				err = INFINITY;
		}
		for (size_t h = 0; h < hc->heads; h++) {
			n2 = 0.0;
			for (size_t d = 0; d < hc->hd; d++) {
				double o = out[i * os + h * hc->hd + d];
				n2 += o * o;
			}
			cr_assert(hc->c * n2 < 1.0, "output row %zu head %zu outside the ball", i, h);
		}
	}
	free(ref);
	free(mask);
	free(out);
	free(v);
	free(k);
	free(q);
	rva_attention_destroy(att);
	return err;
}

Test(hyperbolic, gyromidpoint_grid_matches_oracle) {
	static const size_t nks[] = {1, 7, 64, 129, 1000};
	static const size_t hds[] = {1, 3, 64};
	static const size_t heads[] = {1, 4};
	double worst = 0.0;
	size_t n = 0;
	for (size_t a = 0; a < 5; a++)
		for (size_t b = 0; b < 3; b++)
			for (size_t h = 0; h < 2; h++)
				for (int variant = 0; variant < 3; variant++) {
					size_t nk = nks[a];
					hcase hc = {.heads = heads[h], .kv_heads = heads[h] == 4 ? 2 : 1,
					            .hd = hds[b], .nk = nk, .c = 1.0, .temperature = 1.0};
					/* variant 0: plain, nq = nk (capped); 1: mask + causal, nq != nk;
					 * 2: causal with more queries than keys, strided, small tiles */
					hc.nq = nk > 100 ? 37 : nk;
					if (variant == 1) {
						hc.masked = true;
						hc.causal = true;
						hc.nq = nk > 100 ? 23 : nk / 2 + 1;
						hc.temperature = 0.5;
						hc.c = 0.5;
					} else if (variant == 2) {
						hc.causal = true;
						hc.nq = nk > 100 ? 19 : nk + 3;
						hc.block = 48;
						hc.qblock = 5;
						hc.pad = 3;
						hc.c = 2.0;
						hc.temperature = 2.0;
					}
					rva_status st;
					double e = run_case(&hc, &st);
					cr_assert_eq(st, RVA_OK, "nk %zu hd %zu heads %zu variant %d: %s", nk,
					             hc.hd, hc.heads, variant, rva_last_error());
					cr_assert(e <= TOL_GYRO, "nk %zu hd %zu heads %zu variant %d: error %g",
					          nk, hc.hd, hc.heads, variant, e);
					worst = fmax(worst, e);
					n++;
				}
	cr_log_info("gyromidpoint: %zu cases, worst scaled error %g", n, worst);
}

Test(hyperbolic, frechet_grid_matches_oracle) {
	static const size_t nks[] = {1, 7, 64, 129};
	static const size_t hds[] = {1, 3, 16};
	double worst = 0.0;
	for (size_t a = 0; a < 4; a++)
		for (size_t b = 0; b < 3; b++)
			for (int variant = 0; variant < 2; variant++) {
				size_t nk = nks[a];
				hcase hc = {.heads = variant ? 2 : 1, .kv_heads = 1, .hd = hds[b], .nk = nk,
				            .nq = nk > 60 ? 9 : nk, .c = variant ? 1.5 : 1.0,
				            .temperature = variant ? 0.7 : 1.0, .frechet = true,
				            .causal = variant == 1, .masked = variant == 1,
				            .block = variant ? 32 : 0, .qblock = variant ? 4 : 0};
				rva_status st;
				double e = run_case(&hc, &st);
				cr_assert_eq(st, RVA_OK, "%s", rva_last_error());
				cr_assert(e <= TOL_FRECHET, "nk %zu hd %zu variant %d: error %g", nk, hc.hd,
				          variant, e);
				worst = fmax(worst, e);
			}
	cr_log_info("frechet: worst scaled error %g", worst);
}

/* Two keys with equal keys (equal scores) and different values: both aggregations give
 * the geodesic midpoint of the two values. */
static void two_point(rva_aggregation agg, const uint8_t *mask, size_t nk, float *out) {
	size_t hd = 5;
	rva_config cfg = rva_hyperbolic(hd, -1.3f);
	cfg.aggregation = agg;
	cfg.frechet_tol = 1e-7f;
	rva_attention *att;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	float q[5] = {0.1f, -0.2f, 0.05f, 0.3f, 0.0f};
	float k[4][5], v[4][5];
	const float *kp[4], *vp[4];
	for (size_t j = 0; j < nk; j++) {
		for (size_t d = 0; d < hd; d++) {
			k[j][d] = 0.2f * (float)d - 0.3f;                  /* all keys equal */
			v[j][d] = (float)(0.6 * sin(1.7 * (double)(j * hd + d) + 0.3));
		}
		kp[j] = k[j];
		vp[j] = v[j];
	}
	cr_assert_eq(rva_compute_masked(att, q, kp, vp, mask, nk, out), RVA_OK, "%s",
	             rva_last_error());
	rva_attention_destroy(att);
}

Test(hyperbolic, gyromidpoint_equals_frechet_for_two_points) {
	float g[5], f[5], g2[5], f2[5];
	two_point(RVA_AGG_GYROMIDPOINT, NULL, 2, g);
	two_point(RVA_AGG_FRECHET, NULL, 2, f);
	/* with a mask leaving two keys (1 and 3) of four */
	uint8_t mask[4] = {0, 1, 0, 1};
	two_point(RVA_AGG_GYROMIDPOINT, mask, 4, g2);
	two_point(RVA_AGG_FRECHET, mask, 4, f2);
	/* oracle: the geodesic midpoint of v0, v1 (and of v1, v3) */
	double c = 1.3, pts[2][5], pts2[2][5], w[2] = {0.5, 0.5}, mid[5], mid2[5], fm[5];
	for (size_t d = 0; d < 5; d++) {
		pts[0][d] = (float)(0.6 * sin(1.7 * (double)d + 0.3));
		pts[1][d] = (float)(0.6 * sin(1.7 * (double)(5 + d) + 0.3));
		pts2[0][d] = pts[1][d];
		pts2[1][d] = (float)(0.6 * sin(1.7 * (double)(15 + d) + 0.3));
	}
	ref_hyp_project(c, pts[0], 5);
	ref_hyp_project(c, pts[1], 5);
	ref_hyp_project(c, pts2[0], 5);
	ref_hyp_project(c, pts2[1], 5);
	ref_hyp_gyromidpoint(c, w, &pts[0][0], 2, 5, mid);
	ref_hyp_frechet(c, w, &pts[0][0], 2, 5, fm);
	ref_hyp_gyromidpoint(c, w, &pts2[0][0], 2, 5, mid2);
	/* the midpoint is equidistant from both points */
	double d0 = ref_hyp_dist(c, mid, pts[0], 5), d1 = ref_hyp_dist(c, mid, pts[1], 5);
	cr_assert(fabs(d0 - d1) < 1e-9, "oracle midpoint not equidistant: %g %g", d0, d1);
	for (size_t d = 0; d < 5; d++) {
		cr_assert(fabs(fm[d] - mid[d]) < 1e-9, "oracle Frechet != gyromidpoint");
		cr_assert(fabs(g[d] - mid[d]) < 1e-5, "gyromidpoint %g vs %g", g[d], mid[d]);
		cr_assert(fabs(f[d] - mid[d]) < 1e-5, "Frechet %g vs %g", f[d], mid[d]);
		cr_assert(fabs(g2[d] - mid2[d]) < 1e-5, "masked gyromidpoint %g vs %g", g2[d],
		          mid2[d]);
		cr_assert(fabs(f2[d] - mid2[d]) < 1e-5, "masked Frechet %g vs %g", f2[d], mid2[d]);
	}
}

/* With three unequal weights the two aggregations differ, and the Frechet output has a
 * lower objective than the gyromidpoint (it is the minimiser). */
Test(hyperbolic, frechet_minimises_the_objective) {
	size_t hd = 4, nk = 3;
	float q[4] = {0.05f, 0.1f, -0.1f, 0.2f};
	float k[3][4] = {{0.1f, 0.1f, -0.1f, 0.2f}, {-0.5f, 0.2f, 0.3f, 0.1f},
	                 {0.2f, -0.6f, 0.1f, -0.3f}};
	float v[3][4] = {{0.8f, 0.1f, 0.0f, 0.1f}, {-0.3f, 0.7f, 0.2f, 0.0f},
	                 {0.0f, -0.2f, -0.85f, 0.3f}};
	const float *kp[3] = {k[0], k[1], k[2]}, *vp[3] = {v[0], v[1], v[2]};
	float og[4], of[4];
	for (int agg = 0; agg < 2; agg++) {
		rva_config cfg = rva_hyperbolic(hd, -1.0f);
		cfg.aggregation = agg ? RVA_AGG_FRECHET : RVA_AGG_GYROMIDPOINT;
		cfg.frechet_tol = 1e-7f;
		rva_attention *att;
		cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
		cr_assert_eq(rva_compute(att, q, kp, vp, nk, agg ? of : og), RVA_OK);
		rva_attention_destroy(att);
	}
	/* weights from the oracle */
	double qd[4], kd[3][4], vd[3][4], w[3], sum = 0.0;
	for (size_t d = 0; d < hd; d++)
		qd[d] = q[d];
	for (size_t j = 0; j < nk; j++) {
		for (size_t d = 0; d < hd; d++) {
			kd[j][d] = k[j][d];
			vd[j][d] = v[j][d];
		}
		ref_hyp_project(1.0, vd[j], hd);
		w[j] = exp(-ref_hyp_dist(1.0, qd, kd[j], hd));
		sum += w[j];
	}
	for (size_t j = 0; j < nk; j++)
		w[j] /= sum;
	double gd[4], fd[4];
	for (size_t d = 0; d < hd; d++) {
		gd[d] = og[d];
		fd[d] = of[d];
	}
	double fg = ref_hyp_frechet_objective(1.0, w, &vd[0][0], nk, hd, gd);
	double ff = ref_hyp_frechet_objective(1.0, w, &vd[0][0], nk, hd, fd);
	cr_assert(ff < fg - 1e-6, "Frechet objective %g not below the gyromidpoint's %g", ff, fg);
	/* stationarity, from log maps: the gradient vanishes at the Frechet output only */
	double gn_f = ref_hyp_frechet_grad_norm(1.0, w, &vd[0][0], nk, hd, fd);
	double gn_g = ref_hyp_frechet_grad_norm(1.0, w, &vd[0][0], nk, hd, gd);
	cr_assert(gn_f < 1e-4 && gn_g > 1e-2, "gradient norms: Frechet %g, gyromidpoint %g", gn_f,
	          gn_g);
	double diff = 0.0;
	for (size_t d = 0; d < hd; d++)
		diff = fmax(diff, fabs(og[d] - of[d]));
	cr_assert(diff > 1e-3, "aggregations should differ here (diff %g)", diff);
}

Test(hyperbolic, outputs_stay_inside_the_ball) {
	size_t hd = 8, nk = 50, nq = 20;
	for (int agg = 0; agg < 2; agg++)
		for (int ci = 0; ci < 2; ci++) {
			double c = ci ? 4.0 : 0.25;
			rva_config cfg = rva_hyperbolic(hd, (float)-c);
			cfg.aggregation = agg ? RVA_AGG_FRECHET : RVA_AGG_GYROMIDPOINT;
			rva_attention *att;
			cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
			/* every point far outside the ball */
			float *q = points(nq, hd, hd, 5.0, c), *k = points(nk, hd, hd, 5.0, c);
			float *v = points(nk, hd, hd, 5.0, c), *out = calloc(nq * hd, sizeof(float));
			rva_seq s = {.nq = nq, .nk = nk, .q = q, .k = k, .v = v, .out = out};
			rva_batch b = {.count = 1, .seqs = &s};
			cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
			for (size_t i = 0; i < nq; i++) {
				double n2 = 0.0;
				for (size_t d = 0; d < hd; d++)
					n2 += (double)out[i * hd + d] * out[i * hd + d];
				cr_assert(isfinite(n2) && sqrt(c * n2) <= 1.0 - REF_HYP_EPS + 1e-6,
				          "row %zu: sqrt(c)|out| = %g", i, sqrt(c * n2));
			}
			free(q);
			free(k);
			free(v);
			free(out);
			rva_attention_destroy(att);
		}
}

Test(hyperbolic, curvature_changes_results_and_matches_oracle) {
	static const double cs[] = {0.3, 1.0, 2.5};
	size_t hd = 6, nk = 40;
	float *k = points(nk, hd, hd, 0.4, 1.0), *v = points(nk, hd, hd, 0.4, 1.0);
	float *q = points(1, hd, hd, 0.4, 1.0);
	float out[3][6];
	for (size_t ci = 0; ci < 3; ci++) {
		rva_config cfg = rva_hyperbolic(hd, (float)-cs[ci]);
		rva_attention *att;
		cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
		rva_seq s = {.nq = 1, .nk = nk, .q = q, .k = k, .v = v, .out = out[ci]};
		rva_batch b = {.count = 1, .seqs = &s};
		cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
		double ref[6];
		ref_hyp_params p = {.c = cs[ci], .temperature = 1.0};
		ref_hyperbolic_attention(&p, 1, 1, hd, 1, nk, q, hd, k, hd, v, hd, NULL, ref);
		for (size_t d = 0; d < hd; d++)
			cr_assert(fabs(out[ci][d] - ref[d]) <= TOL_GYRO / sqrt(cs[ci]),
			          "c %g: %g vs %g", cs[ci], out[ci][d], ref[d]);
		rva_attention_destroy(att);
	}
	for (size_t a = 0; a < 3; a++)
		for (size_t b = a + 1; b < 3; b++) {
			double diff = 0.0;
			for (size_t d = 0; d < hd; d++)
				diff = fmax(diff, fabs(out[a][d] - out[b][d]));
			cr_assert(diff > 1e-3, "curvatures %g and %g give the same output", cs[a], cs[b]);
		}
	free(q);
	free(k);
	free(v);
}

/* The single-query call is a batch of one: the last position of a causal batch. */
Test(hyperbolic, single_query_is_batch_of_one) {
	size_t heads = 2, hd = 16, dim = heads * hd, nk = 77, nq = 5;
	for (int agg = 0; agg < 2; agg++) {
		rva_config cfg = rva_hyperbolic(dim, -1.0f);
		cfg.heads = heads;
		cfg.causal = true;
		cfg.aggregation = agg ? RVA_AGG_FRECHET : RVA_AGG_GYROMIDPOINT;
		rva_attention *att;
		cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
		float *q = points(nq, dim, dim, 0.6, 1.0), *k = points(nk, dim, dim, 0.6, 1.0);
		float *v = points(nk, dim, dim, 0.6, 1.0), *out = calloc(nq * dim, sizeof(float));
		rva_seq s = {.nq = nq, .nk = nk, .q = q, .k = k, .v = v, .out = out};
		rva_batch b = {.count = 1, .seqs = &s};
		cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
		const float **kp = malloc(nk * sizeof *kp), **vp = malloc(nk * sizeof *vp);
		for (size_t j = 0; j < nk; j++) {
			kp[j] = k + j * dim;
			vp[j] = v + j * dim;
		}
		float one[32], batch1[32];
		cr_assert_eq(rva_compute(att, q + (nq - 1) * dim, kp, vp, nk, one), RVA_OK);
		/* a batch of one query at the last position gives bit-identical numbers */
		rva_seq s1 = {.nq = 1, .nk = nk, .q = q + (nq - 1) * dim, .k = k, .v = v,
		              .out = batch1};
		rva_batch b1 = {.count = 1, .seqs = &s1};
		cr_assert_eq(rva_compute_batch(att, &b1, NULL, NULL), RVA_OK);
		for (size_t d = 0; d < dim; d++) {
			cr_assert_eq(one[d], batch1[d], "single vs batch of one differ at %zu", d);
			cr_assert(fabs(one[d] - out[(nq - 1) * dim + d]) < 1e-6,
			          "single vs last row of the batch: %g vs %g", one[d],
			          out[(nq - 1) * dim + d]);
		}
		free(kp);
		free(vp);
		free(q);
		free(k);
		free(v);
		free(out);
		rva_attention_destroy(att);
	}
}

/* Rows of a fully masked query are 0; with causal and nq > nk the first rows see no key. */
Test(hyperbolic, empty_rows_are_zero) {
	size_t hd = 4, nk = 3, nq = 6;
	rva_config cfg = rva_hyperbolic(hd, -1.0f);
	cfg.causal = true;
	rva_attention *att;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	float *q = points(nq, hd, hd, 0.5, 1.0), *k = points(nk, hd, hd, 0.5, 1.0);
	float *v = points(nk, hd, hd, 0.5, 1.0), out[24], out2[24];
	rva_seq s = {.nq = nq, .nk = nk, .q = q, .k = k, .v = v, .out = out};
	rva_batch b = {.count = 1, .seqs = &s};
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
	for (size_t i = 0; i < 3; i++)
		for (size_t d = 0; d < hd; d++)
			cr_assert_eq(out[i * hd + d], 0.0f, "row %zu sees no key", i);
	cr_assert_neq(out[3 * hd], 0.0f);
	uint8_t mask[3] = {0, 0, 0};
	rva_seq s2 = {.nq = nq, .nk = nk, .q = q, .k = k, .v = v, .out = out2, .key_mask = mask};
	rva_batch b2 = {.count = 1, .seqs = &s2};
	cr_assert_eq(rva_compute_batch(att, &b2, NULL, NULL), RVA_OK);
	for (size_t i = 0; i < nq * hd; i++)
		cr_assert_eq(out2[i], 0.0f);
	free(q);
	free(k);
	free(v);
	rva_attention_destroy(att);
}

/* ops->rows on a subset of rows gives the rows of the full computation. */
Test(hyperbolic, rows_subset_matches_full_batch) {
	size_t heads = 3, hd = 7, dim = heads * hd, nk = 90, nq = 30;
	for (int agg = 0; agg < 2; agg++) {
		rva_config cfg = rva_hyperbolic(dim, -0.8f);
		cfg.heads = heads;
		cfg.kv_heads = 1;
		cfg.causal = true;
		cfg.query_block = 8;
		cfg.block_size = 16;
		cfg.aggregation = agg ? RVA_AGG_FRECHET : RVA_AGG_GYROMIDPOINT;
		rva_attention *att;
		cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
		float *q = points(nq, dim, dim, 0.6, 0.8), *k = points(nk, hd, hd, 0.6, 0.8);
		float *v = points(nk, hd, hd, 0.6, 0.8), *out = calloc(nq * dim, sizeof(float));
		rva_seq s = {.nq = nq, .nk = nk, .q = q, .q_stride = dim, .k = k, .k_stride = hd,
		             .v = v, .v_stride = hd, .out = out, .out_stride = dim};
		rva_batch b = {.count = 1, .seqs = &s};
		cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
		uint32_t rows[] = {0, 3, 4, 9, 10, 11, 12, 13, 14, 15, 16, 17, 29};
		size_t nr = sizeof rows / sizeof rows[0];
		size_t bytes = att->ops->rows_scratch(att, &s, nr);
		void *scratch = aligned_alloc(64, (bytes + 63) / 64 * 64);
		float *sub = calloc(nr * (dim + 1), sizeof(float));
		/* rows() takes the query vectors gathered: row r of qg is query rows[r] */
		float *qg = calloc(nr * dim, sizeof(float));
		for (size_t r = 0; r < nr; r++)
			memcpy(qg + r * dim, q + rows[r] * dim, dim * sizeof(float));
		rva_seq sg = s;
		sg.q = qg;
		cr_assert_eq(att->ops->rows(att, &sg, 0, NULL, rows, nr, sub, dim + 1, scratch),
		             RVA_OK);
		free(qg);
		for (size_t r = 0; r < nr; r++)
			for (size_t d = 0; d < dim; d++)
				cr_assert(fabs(sub[r * (dim + 1) + d] - out[rows[r] * dim + d]) < 1e-6,
				          "row %u col %zu: %g vs %g", rows[r], d, sub[r * (dim + 1) + d],
				          out[rows[r] * dim + d]);
		free(scratch);
		free(sub);
		free(q);
		free(k);
		free(v);
		free(out);
		rva_attention_destroy(att);
	}
}

Test(hyperbolic, dropout_only_in_training_and_reproducible) {
	size_t hd = 8, nk = 64, nq = 16;
	rva_config cfg = rva_hyperbolic(hd, -1.0f);
	cfg.dropout = 0.5f;
	rva_attention *att, *plain;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	cfg.dropout = 0.0f;
	cr_assert_eq(rva_build(&cfg, &plain), RVA_OK);
	float *q = points(nq, hd, hd, 0.6, 1.0), *k = points(nk, hd, hd, 0.6, 1.0);
	float *v = points(nk, hd, hd, 0.6, 1.0);
	float o[4][128];
	rva_runtime train = {.training = true, .seed = 7, .step = 1};
	rva_runtime train2 = {.training = true, .seed = 7, .step = 2};
	const rva_attention *which[4] = {plain, att, att, att};
	const rva_runtime *rts[4] = {NULL, NULL, &train, &train2};
	for (int r = 0; r < 4; r++) {
		rva_seq s = {.nq = nq, .nk = nk, .q = q, .k = k, .v = v, .out = o[r]};
		rva_batch b = {.count = 1, .seqs = &s};
		cr_assert_eq(rva_compute_batch(which[r], &b, rts[r], NULL), RVA_OK);
	}
	cr_assert(memcmp(o[0], o[1], sizeof o[0]) == 0, "inference must ignore dropout");
	cr_assert(memcmp(o[1], o[2], sizeof o[0]) != 0, "training dropout changed nothing");
	cr_assert(memcmp(o[2], o[3], sizeof o[0]) != 0, "another step, another mask");
	float again[128];
	rva_seq s = {.nq = nq, .nk = nk, .q = q, .k = k, .v = v, .out = again};
	rva_batch b = {.count = 1, .seqs = &s};
	cr_assert_eq(rva_compute_batch(att, &b, &train, NULL), RVA_OK);
	cr_assert(memcmp(o[2], again, sizeof again) == 0, "same seed and step, same mask");
	free(q);
	free(k);
	free(v);
	rva_attention_destroy(att);
	rva_attention_destroy(plain);
}

Test(hyperbolic, bad_config_is_rejected) {
	rva_attention *att = NULL;
	rva_config c = rva_hyperbolic(8, 1.0f);
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_hyperbolic(8, NAN);
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_hyperbolic(8, -1.0f);
	c.temperature = -0.5f;
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_hyperbolic(8, -1.0f);
	c.aggregation = RVA_AGG_FRECHET;
	c.frechet_max_iter = 10001;
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	/* zero is the default (config.h), not an error: curvature -1, temperature 1, 100
	 * iterations (tests/test_abi.c checks the numbers) */
	c = rva_hyperbolic(8, 0.0f);
	c.temperature = 0.0f;
	c.aggregation = RVA_AGG_FRECHET;
	c.frechet_max_iter = 0;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s", rva_last_error());
	rva_config r;
	cr_assert_eq(rva_attention_config(att, &r), RVA_OK);
	cr_assert_eq(r.curvature, -1.0f);
	cr_assert_eq(r.temperature, 1.0f);
	cr_assert_eq(r.frechet_max_iter, 100);
	rva_attention_release(att);
	att = NULL;
	c = rva_hyperbolic(8, -1.0f);
	c.aggregation = (rva_aggregation)7;
	cr_assert_eq(rva_build(&c, &att), RVA_EINVAL);
	cr_assert_null(att);
}

Test(hyperbolic, flops_count_visible_pairs) {
	rva_config c = rva_hyperbolic(12, -1.0f);
	c.heads = 3;
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_seq s = {.nq = 10, .nk = 20};
	rva_batch b = {.count = 1, .seqs = &s};
	double f;
	cr_assert_eq(rva_attention_flops(att, &b, &f), RVA_OK);
	cr_assert_float_eq(f, 4.0 * 10 * 20 * 4 * 3, 1e-9);
	rva_attention_destroy(att);
	c.causal = true;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	cr_assert_eq(rva_attention_flops(att, &b, &f), RVA_OK);
	/* query i sees 11 + i keys */
	double pairs = 0;
	for (int i = 0; i < 10; i++)
		pairs += 11 + i;
	cr_assert_float_eq(f, 4.0 * pairs * 4 * 3, 1e-9);
	rva_attention_destroy(att);
}

/* The engine (1 or 2 workers) gives bit-identical numbers to the serial path. */
Test(hyperbolic, engine_threads_bit_identical) {
	size_t heads = 4, hd = 16, dim = heads * hd;
	size_t nqs[3] = {70, 1, 33}, nks[3] = {90, 300, 33};
	for (int agg = 0; agg < 2; agg++) {
		rva_config cfg = rva_hyperbolic(dim, -1.0f);
		cfg.heads = heads;
		cfg.kv_heads = 2;
		cfg.causal = true;
		cfg.query_block = 16;
		cfg.block_size = 64;
		cfg.aggregation = agg ? RVA_AGG_FRECHET : RVA_AGG_GYROMIDPOINT;
		rva_attention *att;
		cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
		float *q[3], *k[3], *v[3], *out[3][3];
		rva_seq seqs[3][3];
		for (size_t s = 0; s < 3; s++) {
			q[s] = points(nqs[s], dim, dim, 0.6, 1.0);
			k[s] = points(nks[s], dim / 2, dim / 2, 0.6, 1.0);
			v[s] = points(nks[s], dim / 2, dim / 2, 0.6, 1.0);
			for (int r = 0; r < 3; r++) {
				out[r][s] = calloc(nqs[s] * dim, sizeof(float));
				seqs[r][s] = (rva_seq){.nq = nqs[s], .nk = nks[s], .q = q[s], .k = k[s],
				                       .v = v[s], .out = out[r][s]};
			}
		}
		rva_batch b0 = {.count = 3, .seqs = seqs[0]};
		cr_assert_eq(rva_compute_batch(att, &b0, NULL, NULL), RVA_OK);
		for (unsigned threads = 1; threads <= 2; threads++) {
			rva_engine_config ec = rva_engine_config_defaults();
			ec.threads = threads;
			rva_engine *eng;
			cr_assert_eq(rva_engine_create(&ec, &eng), RVA_OK, "%s", rva_last_error());
			rva_batch b = {.count = 3, .seqs = seqs[threads]};
			rva_job_stats js;
			cr_assert_eq(rva_engine_run(eng, att, &b, NULL, NULL, &js), RVA_OK, "%s",
			             rva_last_error());
			cr_assert(js.flops > 0.0);
			rva_engine_destroy(eng);
		}
		for (size_t s = 0; s < 3; s++) {
			cr_assert(memcmp(out[0][s], out[1][s], nqs[s] * dim * sizeof(float)) == 0,
			          "serial vs 1 thread, sequence %zu", s);
			cr_assert(memcmp(out[0][s], out[2][s], nqs[s] * dim * sizeof(float)) == 0,
			          "serial vs 2 threads, sequence %zu", s);
			for (int r = 0; r < 3; r++)
				free(out[r][s]);
			free(q[s]);
			free(k[s]);
			free(v[s]);
		}
		rva_attention_destroy(att);
	}
}

/* Failing the k-th allocation of build + run gives RVA_ENOMEM and leaks nothing (ASan). */
Test(hyperbolic, allocation_failures_are_clean) {
	cr_assert_eq(ref_fault_install(), RVA_OK);
	float q[8], kv[24], out[8];
	for (int i = 0; i < 8; i++)
		q[i] = 0.05f * (float)i - 0.2f;
	for (int i = 0; i < 24; i++)
		kv[i] = 0.04f * (float)(i % 5) - 0.08f;
	const float *kp[3] = {kv, kv + 8, kv + 16};
	bool completed = false;
	for (long fail_at = 0; fail_at < 100 && !completed; fail_at++) {
		ref_fault_arm(fail_at, false);
		rva_config cfg = rva_hyperbolic(8, -1.0f);
		cfg.aggregation = fail_at % 2 ? RVA_AGG_FRECHET : RVA_AGG_GYROMIDPOINT;
		rva_attention *att = NULL;
		rva_status st = rva_build(&cfg, &att);
		if (st != RVA_OK) {
			cr_assert_eq(st, RVA_ENOMEM);
			continue;
		}
		st = rva_compute(att, q, kp, kp, 3, out);
		cr_assert(st == RVA_OK || st == RVA_ENOMEM, "%s", rva_status_name(st));
		completed = st == RVA_OK && cfg.aggregation == RVA_AGG_FRECHET;
		rva_attention_destroy(att);
	}
	cr_assert(completed);
	ref_fault_uninstall();
}

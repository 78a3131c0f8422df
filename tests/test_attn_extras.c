/*
 * The attention-op extras of the softmax family (issue #15; include/rvattn/batch.h,
 * attention.h, config.h) against the double-precision oracle tests/ref/ref_attn_ex.h:
 *  - the log-sum-exp output on every path (dense tiles, split-KV chunks and their merge,
 *    the decode kernels, rva_compute_ex), -inf for rows with no visible key, and two
 *    partial attentions merged with their LSEs reproducing the whole;
 *  - the per-call scale (rva_runtime.scale): the config's scale bit for bit;
 * over head dims 3/64/80/128, causal, GQA and decode shapes, and bit-identical outputs for
 * 1 and 2 threads.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_attn_ex.h"
#include "ref/ref_util.h"
#include "rvattn/rvattn.h"

#define ATOL 3e-5
#define RTOL 3e-4
#define LSE_TOL 2e-5 /* relative to max(1, |lse|) */

/* One sequence of a case: buffers owned here, packed [S, H, D] rows. */
typedef struct xcase {
	rva_config cfg;
	size_t nq, nk, H, kvh, D, Dv;
	float *q, *k, *v;
	uint8_t *mask;
	rva_seq seq;          /* what the library gets */
	ref_ex_io io;         /* what the oracle gets (out, lse allocated) */
	float *out, *lse;
} xcase;

static void xcase_init(xcase *x, rva_config c, size_t nq, size_t nk, uint64_t seed) {
	memset(x, 0, sizeof *x);
	x->cfg = c;
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "build: %s", rva_last_error());
	rva_config r;
	rva_attention_config(att, &r);
	rva_attention_release(att);
	x->H = r.heads;
	x->kvh = r.kv_heads;
	x->D = r.dim / r.heads;
	x->Dv = x->D;
	x->nq = nq;
	x->nk = nk;
	size_t dim = x->H * x->D, kvd = x->kvh * x->D;
	x->q = ref_alloc(nq * dim + 1);
	x->k = ref_alloc(nk * kvd + 1);
	x->v = ref_alloc(nk * kvd + 1);
	x->out = ref_alloc(nq * x->H * x->Dv + 1);
	x->lse = ref_alloc(x->H * nq + 1);
	ref_fill_uniform(x->q, nq * dim, -1.5f, 1.5f, seed);
	ref_fill_uniform(x->k, nk * kvd, -1.5f, 1.5f, seed + 1);
	ref_fill_uniform(x->v, nk * kvd, -1.0f, 1.0f, seed + 2);
	x->seq = (rva_seq){.nq = nq, .nk = nk, .q = x->q, .k = x->k, .v = x->v, .out = x->out,
	                   .lse = x->lse};
	x->io = (ref_ex_io){.nq = nq, .nk = nk, .q = x->q, .qs = dim, .qhs = x->D, .k = x->k,
	                    .ks = kvd, .khs = x->D, .v = x->v, .vs = kvd, .vhs = x->D,
	                    .v_head_dim = x->Dv};
}

static void xcase_free(xcase *x) {
	free(x->q);
	free(x->k);
	free(x->v);
	free(x->out);
	free(x->lse);
	free(x->mask);
}

/* Masks about one key in five. */
static void xcase_mask(xcase *x) {
	x->mask = malloc(x->nk);
	for (size_t j = 0; j < x->nk; j++)
		x->mask[j] = (j * 7 + 3) % 5 != 0;
	x->seq.key_mask = x->mask;
	x->io.mask = x->mask;
}

static ref_attn_spec spec_of(const rva_config *c, size_t H, size_t kvh, size_t D,
                             double scale) {
	ref_attn_spec sp = {.heads = H, .kv_heads = kvh, .head_dim = D, .scale = scale,
	                    .causal = c->causal};
	if (c->mechanism == RVA_MECH_LOCAL_GLOBAL) {
		sp.pattern = REF_LOCAL_GLOBAL;
		sp.window = c->window;
		static const size_t first[1] = {0}; /* outlives the block (a compound literal
		                                      * here would end with it) */
		sp.globals = first;
		sp.nglobals = c->global_tokens ? 1 : 0;
	}
	return sp;
}

/* Runs x on an engine of `threads` workers (0: rva_compute_batch on the calling thread). */
static void run(const xcase *x, unsigned threads, const rva_runtime *rt) {
	rva_attention *att;
	cr_assert_eq(rva_build(&x->cfg, &att), RVA_OK, "build: %s", rva_last_error());
	rva_batch b = {1, &x->seq};
	rva_status st;
	if (threads == 0) {
		st = rva_compute_batch(att, &b, rt, NULL);
	} else {
		rva_engine_config ec = rva_engine_config_defaults();
		ec.threads = threads;
		rva_engine *e;
		cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK, "engine: %s", rva_last_error());
		st = rva_engine_run(e, att, &b, rt, NULL, NULL);
		rva_engine_destroy(e);
	}
	cr_assert_eq(st, RVA_OK, "run: %s", rva_last_error());
	rva_attention_release(att);
}

/* Checks out and lse against the oracle (scale: the logit scale in effect). */
static void check(xcase *x, double scale, const char *what) {
	ref_attn_spec sp = spec_of(&x->cfg, x->H, x->kvh, x->D, scale);
	size_t ow = x->H * x->Dv;
	double *want = ref_alloc_d(x->nq * ow + 1), *wl = ref_alloc_d(x->H * x->nq + 1);
	x->io.out = want;
	x->io.lse = wl;
	ref_attention_ex(&sp, &x->io);
	size_t os = x->seq.out_stride ? x->seq.out_stride : ow;
	for (size_t i = 0; i < x->nq; i++) {
		double e = ref_err_ratio(x->out + i * os, want + i * ow, ow, ATOL, RTOL);
		cr_assert(e <= 1.0, "%s: row %zu: error ratio %g", what, i, e);
	}
	if (x->seq.lse) {
		size_t ls = x->seq.lse_head_stride ? x->seq.lse_head_stride : x->nq;
		for (size_t h = 0; h < x->H; h++)
			for (size_t i = 0; i < x->nq; i++) {
				double w = wl[h * x->nq + i], g = x->seq.lse[h * ls + i];
				if (isinf(w)) {
					cr_assert(isinf(g) && g < 0, "%s: lse[%zu][%zu] = %g, want -inf", what, h,
					          i, g);
					continue;
				}
				cr_assert(fabs(g - w) <= LSE_TOL * fmax(1.0, fabs(w)),
				          "%s: lse[%zu][%zu] = %.9g, want %.9g", what, h, i, g, w);
			}
	}
	free(want);
	free(wl);
}

/* Runs x with 1 and 2 threads and serially: identical bits, and the oracle's numbers. */
static void run_check(xcase *x, const rva_runtime *rt, double scale, const char *what) {
	size_t on = x->nq * x->H * x->Dv, ln = x->H * x->nq;
	float *o1 = malloc((on + 1) * sizeof(float)), *l1 = malloc((ln + 1) * sizeof(float));
	run(x, 1, rt);
	memcpy(o1, x->out, on * sizeof(float));
	memcpy(l1, x->lse, ln * sizeof(float));
	for (unsigned threads = 0; threads <= 2; threads += 2) {
		memset(x->out, 0xFF, on * sizeof(float));
		memset(x->lse, 0xFF, ln * sizeof(float));
		run(x, threads, rt);
		cr_assert(memcmp(o1, x->out, on * sizeof(float)) == 0,
		          "%s: outputs of 1 thread and %u differ", what, threads);
		if (x->seq.lse)
			cr_assert(memcmp(l1, x->lse, ln * sizeof(float)) == 0,
			          "%s: lse of 1 thread and %u differ", what, threads);
	}
	check(x, scale, what);
	free(o1);
	free(l1);
}

/* The shapes every feature is checked on: (config, nq, nk, masked). */
typedef struct shape {
	const char *name;
	rva_config cfg;
	size_t nq, nk;
	bool mask;
} shape;

static size_t shapes_for(size_t D, shape *out) {
	size_t n = 0;
	rva_config c = rva_multi_head(4 * D, 4);
	c.kv_heads = 2;
	out[n++] = (shape){"multi_head GQA", c, 37, 53, false};
	c.causal = true;
	out[n++] = (shape){"multi_head GQA causal nq > nk", c, 45, 30, true};
	rva_config f = rva_flash(2 * D, 16);
	f.heads = 2;
	f.query_block = 16;
	f.causal = true;
	out[n++] = (shape){"flash causal, 16-row tiles", f, 70, 70, false};
	rva_config d = rva_multi_head(8 * D, 8);
	d.kv_heads = 2;
	out[n++] = (shape){"decode 1 x 300 GQA", d, 1, 300, true};
	d.kv_split = 64;
	d.causal = true;
	out[n++] = (shape){"decode 3 x 400 causal, split-KV", d, 3, 400, false};
	rva_config sd = rva_scaled_dot(D);
	sd.kv_split = 32;
	out[n++] = (shape){"scaled_dot 20 x 200, split-KV", sd, 20, 200, false};
	rva_config lg = rva_local_global(2 * D, 8);
	lg.heads = 2;
	out[n++] = (shape){"local_global", lg, 40, 40, false};
	return n;
}

static const size_t head_dims[] = {3, 64, 80, 128};

Test(attn_extras, lse_matches_oracle_on_every_path) {
	for (size_t di = 0; di < sizeof head_dims / sizeof head_dims[0]; di++) {
		shape sh[16];
		size_t n = shapes_for(head_dims[di], sh);
		for (size_t i = 0; i < n; i++) {
			xcase x;
			xcase_init(&x, sh[i].cfg, sh[i].nq, sh[i].nk, 100 + i);
			if (sh[i].mask)
				xcase_mask(&x);
			char what[128];
			snprintf(what, sizeof what, "D=%zu %s", head_dims[di], sh[i].name);
			run_check(&x, NULL, 1.0 / sqrt((double)x.D), what);
			xcase_free(&x);
		}
	}
}

Test(attn_extras, lse_head_stride_and_no_visible_key) {
	rva_config c = rva_multi_head(32, 4);
	c.causal = true;
	xcase x;
	xcase_init(&x, c, 6, 4, 7); /* rows 0, 1 see no key */
	float *wide = ref_alloc(4 * 10);
	x.seq.lse = wide;
	x.seq.lse_head_stride = 10;
	for (size_t i = 0; i < 40; i++)
		wide[i] = 42.0f;
	run(&x, 0, NULL);
	for (size_t h = 0; h < 4; h++)
		for (size_t i = 0; i < 10; i++) {
			float g = wide[h * 10 + i];
			if (i >= 6)
				cr_assert_eq(g, 42.0f, "lse wrote past its rows (head %zu, %zu)", h, i);
			else if (i < 2)
				cr_assert(isinf(g) && g < 0, "row %zu sees no key: lse %g, want -inf", i, g);
			else
				cr_assert(isfinite(g), "row %zu: lse %g", i, g);
		}
	/* the same numbers as the packed layout */
	float *packed = ref_alloc(4 * 6);
	x.seq.lse = packed;
	x.seq.lse_head_stride = 0;
	run(&x, 0, NULL);
	for (size_t h = 0; h < 4; h++)
		cr_assert(memcmp(packed + h * 6, wide + h * 10, 6 * sizeof(float)) == 0,
		          "head %zu: strided and packed lse differ", h);
	free(wide);
	free(packed);
	x.seq.lse = NULL;
	xcase_free(&x);
}

/* Two partial attentions (keys [0, a) and [a, nk)) merged with their LSEs reproduce the
 * whole: L = log(e^La + e^Lb), O = e^(La - L) Oa + e^(Lb - L) Ob (batch.h). */
static void merge_case(rva_config c, size_t nq, size_t nk, size_t a, const char *what) {
	xcase x;
	xcase_init(&x, c, nq, nk, 31);
	run(&x, 2, NULL);
	size_t ow = x.H * x.Dv, kvd = x.kvh * x.D, on = nq * ow, ln = x.H * nq;
	float *oa = ref_alloc(on), *ob = ref_alloc(on), *la = ref_alloc(ln), *lb = ref_alloc(ln);
	rva_seq sa = x.seq, sb = x.seq;
	sa.nk = a;
	sa.out = oa;
	sa.lse = la;
	sb.nk = nk - a;
	sb.k = x.k + a * kvd;
	sb.v = x.v + a * kvd;
	sb.out = ob;
	sb.lse = lb;
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_batch b = {1, &sa};
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK, "%s", rva_last_error());
	b.seqs = &sb;
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK, "%s", rva_last_error());
	rva_attention_release(att);
	for (size_t h = 0; h < x.H; h++)
		for (size_t i = 0; i < nq; i++) {
			double A = la[h * nq + i], B = lb[h * nq + i];
			double L = fmax(A, B) + log(exp(A - fmax(A, B)) + exp(B - fmax(A, B)));
			cr_assert(fabs(L - x.lse[h * nq + i]) <= 1e-5 * fmax(1.0, fabs(L)),
			          "%s: merged lse %g, whole %g", what, L, x.lse[h * nq + i]);
			for (size_t d = 0; d < x.Dv; d++) {
				size_t e = i * ow + h * x.Dv + d;
				double o = exp(A - L) * oa[e] + exp(B - L) * ob[e];
				cr_assert(fabs(o - x.out[e]) <= 2e-6 + 2e-5 * fabs(o),
				          "%s: merged out %g, whole %g (row %zu head %zu)", what, o, x.out[e],
				          i, h);
			}
		}
	free(oa);
	free(ob);
	free(la);
	free(lb);
	xcase_free(&x);
}

Test(attn_extras, lse_merges_partial_attentions_into_the_whole) {
	rva_config c = rva_multi_head(256, 4);
	c.kv_heads = 2;
	merge_case(c, 50, 300, 117, "prefill 50 x 300");
	merge_case(c, 1, 5000, 2049, "decode 1 x 5000");
	rva_config f = rva_flash(80 * 2, 32);
	f.heads = 2;
	merge_case(f, 7, 129, 64, "flash D80, 7 x 129");
}

Test(attn_extras, per_call_scale_is_the_config_scale) {
	for (size_t di = 0; di < sizeof head_dims / sizeof head_dims[0]; di++) {
		shape sh[16];
		size_t n = shapes_for(head_dims[di], sh);
		for (size_t i = 0; i < n; i++) {
			const float s = 0.37f;
			xcase x;
			xcase_init(&x, sh[i].cfg, sh[i].nq, sh[i].nk, 200 + i);
			rva_runtime rt = {.scale = s};
			char what[128];
			snprintf(what, sizeof what, "D=%zu %s, rt.scale", head_dims[di], sh[i].name);
			run_check(&x, &rt, (double)s, what);
			size_t on = x.nq * x.H * x.Dv;
			float *o = malloc(on * sizeof(float));
			memcpy(o, x.out, on * sizeof(float));
			x.cfg.scale = s;
			run(&x, 2, NULL);
			cr_assert(memcmp(o, x.out, on * sizeof(float)) == 0,
			          "%s: rt.scale and config scale differ", what);
			/* rt.scale 0 is the config's */
			rva_runtime rt0 = {.scale = 0.0f};
			run(&x, 2, &rt0);
			cr_assert(memcmp(o, x.out, on * sizeof(float)) == 0, "%s: rt.scale 0", what);
			free(o);
			xcase_free(&x);
		}
	}
}

Test(attn_extras, per_call_scale_single_query) {
	rva_config c = rva_multi_head(64, 4);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	xcase x;
	xcase_init(&x, c, 1, 9, 5);
	const float *kr[9], *vr[9];
	for (size_t j = 0; j < 9; j++) {
		kr[j] = x.k + j * 64;
		vr[j] = x.v + j * 64;
	}
	rva_runtime rt = {.scale = 2.5f};
	cr_assert_eq(rva_compute_ex(att, x.q, kr, vr, NULL, 9, x.out, &rt), RVA_OK, "%s",
	             rva_last_error());
	x.seq.lse = NULL;
	check(&x, 2.5, "rva_compute_ex rt.scale 2.5");
	rva_attention_release(att);
	xcase_free(&x);
}

/*
 * The attention-op extras of the softmax family (issue #15; include/rvattn/batch.h,
 * attention.h, config.h) against the double-precision oracle tests/ref/ref_softmax.h:
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

#include "ref/ref_softmax.h"
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
	size_t out_n;         /* floats of the out buffer (its layout's extent) */
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
	x->Dv = r.v_head_dim; /* resolved: head_dim unless set */
	x->nq = nq;
	x->nk = nk;
	size_t dim = x->H * x->D, kvd = x->kvh * x->D, vd = x->kvh * x->Dv;
	x->q = ref_alloc(nq * dim + 1);
	x->k = ref_alloc(nk * kvd + 1);
	x->v = ref_alloc(nk * vd + 1);
	x->out_n = nq * x->H * x->Dv;
	x->out = ref_alloc(x->out_n + 1);
	x->lse = ref_alloc(x->H * nq + 1);
	ref_fill_uniform(x->q, nq * dim, -1.5f, 1.5f, seed);
	ref_fill_uniform(x->k, nk * kvd, -1.5f, 1.5f, seed + 1);
	ref_fill_uniform(x->v, nk * vd, -1.0f, 1.0f, seed + 2);
	x->seq = (rva_seq){.nq = nq, .nk = nk, .q = x->q, .k = x->k, .v = x->v, .out = x->out,
	                   .lse = x->lse};
	x->io = (ref_ex_io){.nq = nq, .nk = nk, .q = x->q, .qs = dim, .qhs = x->D, .k = x->k,
	                    .ks = kvd, .khs = x->D, .v = x->v, .vs = vd, .vhs = x->Dv,
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
	if (c->pattern != RVA_PATTERN_DENSE) { /* both Sparse Transformer patterns imply causal */
		sp.pattern = c->pattern == RVA_PATTERN_STRIDED ? REF_STRIDED : REF_FIXED;
		sp.stride = c->sparse_stride;
		sp.summary = c->sparse_summary;
		sp.causal = true;
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
	size_t ohs = x->seq.out_head_stride ? x->seq.out_head_stride : x->Dv;
	float *row = ref_alloc(ow);
	for (size_t i = 0; i < x->nq; i++) {
		for (size_t h = 0; h < x->H; h++) /* the output's layout: its row and head strides */
			memcpy(row + h * x->Dv, x->out + i * os + h * ohs, x->Dv * sizeof(float));
		double e = ref_err_ratio(row, want + i * ow, ow, ATOL, RTOL);
		cr_assert(e <= 1.0, "%s: row %zu: error ratio %g", what, i, e);
	}
	free(row);
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
	size_t on = x->out_n, ln = x->H * x->nq;
	float *o1 = malloc((on + 1) * sizeof(float)), *l1 = malloc((ln + 1) * sizeof(float));
	memset(x->out, 0xFF, on * sizeof(float)); /* gaps of a strided output stay so */
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
	/* the block-sparse forms: strided residues (gathered rows, partial row states) and the
	 * fixed pattern's blocks and summary keys */
	rva_config sst = rva_flash(2 * D, 16);
	sst.heads = 2;
	sst.query_block = 16;
	sst.pattern = RVA_PATTERN_STRIDED;
	sst.sparse_stride = 8;
	out[n++] = (shape){"strided, stride 8", sst, 70, 70, false};
	rva_config sfx = sst;
	sfx.pattern = RVA_PATTERN_FIXED;
	sfx.sparse_summary = 2;
	out[n++] = (shape){"fixed, stride 8, summary 2", sfx, 70, 70, false};
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
	size_t ow = x.H * x.Dv, kvd = x.kvh * x.D, vd = x.kvh * x.Dv, on = nq * ow, ln = x.H * nq;
	float *oa = ref_alloc(on), *ob = ref_alloc(on), *la = ref_alloc(ln), *lb = ref_alloc(ln);
	rva_seq sa = x.seq, sb = x.seq;
	sa.nk = a;
	sa.out = oa;
	sa.lse = la;
	sb.nk = nk - a;
	sb.k = x.k + a * kvd;
	sb.v = x.v + a * vd;
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

/* ---- head strides ([B, H, S, D] and other layouts, batch.h) ---------------------------- */

/* Copies a packed [rows][heads][w] matrix into a new buffer at row stride rs and head
 * stride hs (gaps filled with NaN: a read of a gap shows), returning the buffer. */
static float *relayout(const float *src, size_t rows, size_t heads, size_t w, size_t rs,
                       size_t hs, size_t *n) {
	*n = (rows - 1) * rs + (heads - 1) * hs + w;
	float *dst = ref_alloc(*n + 1);
	for (size_t i = 0; i < *n; i++)
		dst[i] = NAN;
	for (size_t i = 0; i < rows; i++)
		for (size_t h = 0; h < heads; h++)
			memcpy(dst + i * rs + h * hs, src + (i * heads + h) * w, w * sizeof(float));
	return dst;
}

/* One layout of the four tensors: row stride and head stride of each as functions of the
 * shape; bhsd = PyTorch's [B, H, S, D] (rows within heads). */
typedef struct layout {
	const char *name;
	bool q_bhsd, kv_bhsd, out_bhsd;
	size_t pad;           /* elements added between heads of the row-major tensors */
} layout;

/* Moves x's tensors to layout L (the oracle reads them there too). */
static void xcase_layout(xcase *x, const layout *L, float **owned) {
	size_t nq = x->nq, nk = x->nk, H = x->H, KH = x->kvh, D = x->D, Dv = x->Dv, n;
	size_t qs, qhs, ks, khs, vs, vhs, os, ohs;
	if (L->q_bhsd) { qs = D; qhs = nq * D; } else { qhs = D + L->pad; qs = H * qhs + 1; }
	if (L->kv_bhsd) { ks = D; khs = nk * D; vs = Dv; vhs = nk * Dv; }
	else { khs = D + L->pad; ks = KH * khs + 3; vhs = Dv + L->pad; vs = KH * vhs + 2; }
	if (L->out_bhsd) { os = Dv; ohs = nq * Dv; } else { ohs = Dv + 2 * L->pad; os = H * ohs; }
	owned[0] = relayout(x->q, nq, H, D, qs, qhs, &n);
	owned[1] = relayout(x->k, nk, KH, D, ks, khs, &n);
	owned[2] = relayout(x->v, nk, KH, Dv, vs, vhs, &n);
	free(x->out);
	x->out_n = (nq - 1) * os + (H - 1) * ohs + Dv;
	x->out = ref_alloc(x->out_n + 1);
	x->seq.q = owned[0]; x->seq.q_stride = qs; x->seq.q_head_stride = qhs;
	x->seq.k = owned[1]; x->seq.k_stride = ks; x->seq.k_head_stride = khs;
	x->seq.v = owned[2]; x->seq.v_stride = vs; x->seq.v_head_stride = vhs;
	x->seq.out = x->out; x->seq.out_stride = os; x->seq.out_head_stride = ohs;
	x->io.q = owned[0]; x->io.qs = qs; x->io.qhs = qhs;
	x->io.k = owned[1]; x->io.ks = ks; x->io.khs = khs;
	x->io.v = owned[2]; x->io.vs = vs; x->io.vhs = vhs;
}

static const layout layouts[] = {
	{"[B, H, S, D] everywhere", true, true, true, 0},
	{"[B, H, S, D] K/V, padded heads in q/out rows", false, true, false, 5},
	{"[B, H, S, D] q/out, padded K/V heads", true, false, true, 3},
};

/* The output of x in its layout, packed [nq][H][Dv], into dst. */
static void gather_out(const xcase *x, float *dst) {
	size_t os = x->seq.out_stride ? x->seq.out_stride : x->H * x->Dv;
	size_t ohs = x->seq.out_head_stride ? x->seq.out_head_stride : x->Dv;
	for (size_t i = 0; i < x->nq; i++)
		for (size_t h = 0; h < x->H; h++)
			memcpy(dst + (i * x->H + h) * x->Dv, x->out + i * os + h * ohs,
			       x->Dv * sizeof(float));
}

Test(attn_extras, head_strides_match_oracle_and_packed_rows_on_every_path) {
	for (size_t di = 0; di < sizeof head_dims / sizeof head_dims[0]; di++) {
		shape sh[16];
		size_t n = shapes_for(head_dims[di], sh);
		for (size_t i = 0; i < n; i++)
			for (size_t li = 0; li < sizeof layouts / sizeof layouts[0]; li++) {
				xcase x;
				xcase_init(&x, sh[i].cfg, sh[i].nq, sh[i].nk, 300 + i);
				if (sh[i].mask)
					xcase_mask(&x);
				run(&x, 1, NULL); /* the packed rows' output */
				size_t on = x.nq * x.H * x.Dv;
				float *packed = ref_alloc(on + 1), *got = ref_alloc(on + 1);
				memcpy(packed, x.out, on * sizeof(float));
				float *owned[3];
				xcase_layout(&x, &layouts[li], owned);
				char what[160];
				snprintf(what, sizeof what, "D=%zu %s, %s", head_dims[di], sh[i].name,
				         layouts[li].name);
				run_check(&x, NULL, 1.0 / sqrt((double)x.D), what);
				gather_out(&x, got);
				cr_assert(memcmp(packed, got, on * sizeof(float)) == 0,
				          "%s: differs from the packed rows' output", what);
				for (int b = 0; b < 3; b++)
					free(owned[b]);
				free(packed);
				free(got);
				xcase_free(&x);
			}
	}
}

/* A [B, H, S, D] batch as PyTorch holds it: B sequences at offsets b * H * S * D of one
 * tensor each, through the engine (and bf16 K/V on the decode path). */
Test(attn_extras, bhsd_batch_through_the_engine) {
	enum { B = 3, H = 4, KH = 2, S = 33, D = 64 };
	rva_config c = rva_multi_head(H * D, H);
	c.kv_heads = KH;
	c.causal = true;
	float *q = ref_alloc(B * H * S * D), *k = ref_alloc(B * KH * S * D),
	      *v = ref_alloc(B * KH * S * D), *o = ref_alloc(B * H * S * D);
	ref_fill_uniform(q, B * H * S * D, -1, 1, 1);
	ref_fill_uniform(k, B * KH * S * D, -1, 1, 2);
	ref_fill_uniform(v, B * KH * S * D, -1, 1, 3);
	rva_seq seqs[B];
	for (size_t b = 0; b < B; b++)
		seqs[b] = (rva_seq){.nq = S, .nk = S, .q = q + b * H * S * D, .q_stride = D,
		                    .q_head_stride = S * D, .k = k + b * KH * S * D, .k_stride = D,
		                    .k_head_stride = S * D, .v = v + b * KH * S * D, .v_stride = D,
		                    .v_head_stride = S * D, .out = o + b * H * S * D, .out_stride = D,
		                    .out_head_stride = S * D};
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 2;
	rva_engine *e;
	cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK, "%s", rva_last_error());
	rva_batch bt = {B, seqs};
	cr_assert_eq(rva_engine_run(e, att, &bt, NULL, NULL, NULL), RVA_OK, "%s", rva_last_error());
	ref_attn_spec sp = {.heads = H, .kv_heads = KH, .head_dim = D, .scale = 1.0 / 8.0,
	                    .causal = true};
	double *want = ref_alloc_d(S * H * D);
	for (size_t b = 0; b < B; b++) {
		ref_ex_io io = {.nq = S, .nk = S, .q = seqs[b].q, .qs = D, .qhs = S * D,
		                .k = seqs[b].k, .ks = D, .khs = S * D, .v = seqs[b].v, .vs = D,
		                .vhs = S * D, .v_head_dim = D, .out = want};
		ref_attention_ex(&sp, &io);
		for (size_t h = 0; h < H; h++)
			for (size_t i = 0; i < S; i++) {
				double err = ref_err_ratio(o + b * H * S * D + h * S * D + i * D,
				                           want + (i * H + h) * D, D, ATOL, RTOL);
				cr_assert(err <= 1.0, "batch %zu head %zu row %zu: error ratio %g", b, h, i,
				          err);
			}
	}
	free(want);
	rva_engine_destroy(e);
	rva_attention_release(att);
	free(q);
	free(k);
	free(v);
	free(o);
}

/* Head strides that make heads overlap, that overflow, on a mechanism or path without
 * them, or an output overlapping an input through its heads, are refused. */
Test(attn_extras, head_strides_refused_clearly) {
	enum { H = 2, D = 8, N = 5 };
	float *q = ref_alloc(4 * H * N * D), *k = ref_alloc(H * N * D), *v = ref_alloc(H * N * D),
	      *o = ref_alloc(4 * H * N * D);
	rva_config c = rva_multi_head(H * D, H);
	rva_attention *att, *lin;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_config lc = rva_linear(H * D, 16);
	lc.heads = H;
	cr_assert_eq(rva_build(&lc, &lin), RVA_OK);
	rva_seq good = {.nq = N, .nk = N, .q = q, .q_stride = D, .q_head_stride = N * D, .k = k,
	                .v = v, .out = o, .out_stride = D, .out_head_stride = N * D};
	rva_batch b = {1, &good};
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK, "%s", rva_last_error());
	typedef struct bad_case {
		const char *what;
		rva_seq s;
		rva_status want;
		const rva_attention *a;
	} bad_case;
	bad_case cs[8];
	size_t n = 0;
	rva_seq s = good;
	s.q_head_stride = D - 1; /* heads overlap */
	cs[n++] = (bad_case){"q heads overlap", s, RVA_EDIM, att};
	s = good;
	s.out_head_stride = 2 * D; /* rows D apart, heads 2D apart: interleaved */
	cs[n++] = (bad_case){"out rows and heads interleave", s, RVA_EDIM, att};
	s = good;
	s.k_head_stride = SIZE_MAX / 2;
	cs[n++] = (bad_case){"k head stride overflows", s, RVA_EOVERFLOW, att};
	s = good;
	s.out = q + 3 * D; /* inside the query's head 0 */
	cs[n++] = (bad_case){"out overlaps q", s, RVA_EINVAL, att};
	s = good;
	cs[n++] = (bad_case){"linear attention", s, RVA_EINVAL, lin};
	s = good;
	s.q_head_stride = 0;
	s.q_stride = D; /* packed heads need a row of H * D */
	cs[n++] = (bad_case){"packed heads, narrow row", s, RVA_EDIM, att};
	for (size_t i = 0; i < n; i++) {
		b.seqs = &cs[i].s;
		rva_status st = rva_compute_batch(cs[i].a, &b, NULL, NULL);
		cr_assert_eq(st, cs[i].want, "%s: status %s, want %s (%s)", cs[i].what,
		             rva_status_name(st), rva_status_name(cs[i].want), rva_last_error());
		cr_assert(strlen(rva_last_error()) > 0, "%s: no message", cs[i].what);
	}
	/* a pipeline reads whole rows */
	rva_pipeline *p;
	cr_assert_eq(rva_pipeline_create(&p), RVA_OK);
	cr_assert_eq(rva_attention_retain(att), RVA_OK); /* the pipeline takes a reference */
	cr_assert_eq(rva_pipeline_add_attention(p, att), RVA_OK);
	b.seqs = &good;
	rva_status st = rva_pipeline_run_batch(p, &b, NULL, NULL);
	cr_assert_eq(st, RVA_EINVAL, "pipeline: %s (%s)", rva_status_name(st), rva_last_error());
	rva_pipeline_destroy(p);
	rva_attention_release(att);
	rva_attention_release(lin);
	free(q);
	free(k);
	free(v);
	free(o);
}

/* ---- a V head dim of its own (rva_config.v_head_dim) ----------------------------------- */

static const size_t dv_pairs[][2] = {{3, 5}, {64, 32}, {80, 128}, {128, 64}, {192, 128}};

/* Every shape (tiles, split-KV, decode, local_global, GQA, causal) with Dv != D, and the
 * [B, H, S, D] layout on top: the oracle's numbers and LSE, 1 and 2 threads identical. */
Test(attn_extras, v_head_dim_matches_oracle_on_every_path) {
	for (size_t pi = 0; pi < sizeof dv_pairs / sizeof dv_pairs[0]; pi++) {
		size_t D = dv_pairs[pi][0], Dv = dv_pairs[pi][1];
		shape sh[16];
		size_t n = shapes_for(D, sh);
		for (size_t i = 0; i < n; i++) {
			rva_config c = sh[i].cfg;
			c.v_head_dim = Dv;
			char what[160];
			xcase x;
			xcase_init(&x, c, sh[i].nq, sh[i].nk, 400 + i);
			cr_assert_eq(x.Dv, Dv, "resolved v_head_dim %zu, want %zu", x.Dv, Dv);
			if (sh[i].mask)
				xcase_mask(&x);
			snprintf(what, sizeof what, "D=%zu Dv=%zu %s", D, Dv, sh[i].name);
			run_check(&x, NULL, 1.0 / sqrt((double)D), what);
			float *owned[3];
			xcase_layout(&x, &layouts[0], owned);
			snprintf(what, sizeof what, "D=%zu Dv=%zu %s, [B, H, S, D]", D, Dv, sh[i].name);
			run_check(&x, NULL, 1.0 / sqrt((double)D), what);
			for (int b = 0; b < 3; b++)
				free(owned[b]);
			xcase_free(&x);
		}
	}
}

/* Multi-head latent attention's shape (DeepSeek-V2: head_dim 192, v_head_dim 128) on the
 * single-query call, prefill and decode, and with bf16 K and V (the vdpbf16ps tiles where
 * the CPU has them): within the bf16 bound of the exact attention of the rounded inputs. */
Test(attn_extras, mla_192_128_single_query_and_bf16) {
	enum { H = 4, D = 192, Dv = 128, NK = 77 };
	rva_config c = rva_multi_head(H * D, H);
	c.v_head_dim = Dv;
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s", rva_last_error());
	rva_config r;
	rva_attention_config(att, &r);
	cr_assert_eq(r.v_head_dim, (size_t)Dv);
	xcase x;
	xcase_init(&x, c, 1, NK, 9);
	const float *kr[NK], *vr[NK];
	for (size_t j = 0; j < NK; j++) {
		kr[j] = x.k + j * H * D;
		vr[j] = x.v + j * H * Dv;
	}
	cr_assert_eq(rva_compute(att, x.q, kr, vr, NK, x.out), RVA_OK, "%s", rva_last_error());
	x.seq.lse = NULL;
	check(&x, 1.0 / sqrt((double)D), "rva_compute MLA 192/128");
	xcase_free(&x);
	/* bf16 K and V */
	for (size_t nq = 1; nq <= 40; nq += 39) {
		xcase_init(&x, c, nq, NK, 10 + nq);
		uint16_t *kb = malloc(NK * H * D * 2), *vb = malloc(NK * H * Dv * 2);
		cr_assert_eq(rva_convert(RVA_BF16, kb, RVA_F32, x.k, NK * H * D), RVA_OK);
		cr_assert_eq(rva_convert(RVA_BF16, vb, RVA_F32, x.v, NK * H * Dv), RVA_OK);
		cr_assert_eq(rva_convert(RVA_F32, x.k, RVA_BF16, kb, NK * H * D), RVA_OK);
		cr_assert_eq(rva_convert(RVA_F32, x.v, RVA_BF16, vb, NK * H * Dv), RVA_OK);
		/* the query rounded too (Q.K^T runs on bf16 operands when K is bf16: batch.h) */
		uint16_t *qb = malloc(nq * H * D * 2);
		rva_convert(RVA_BF16, qb, RVA_F32, x.q, nq * H * D);
		rva_convert(RVA_F32, x.q, RVA_BF16, qb, nq * H * D);
		free(qb);
		x.seq.k = kb;
		x.seq.v = vb;
		x.seq.k_dtype = x.seq.v_dtype = RVA_BF16;
		x.seq.lse = NULL;
		run(&x, 2, NULL);
		ref_attn_spec sp = spec_of(&c, H, H, D, 1.0 / sqrt((double)D));
		double *want = ref_alloc_d(nq * H * Dv);
		x.io.out = want;
		ref_attention_ex(&sp, &x.io);
		for (size_t e = 0; e < nq * H * Dv; e++) /* P rounded to bf16: ~2^-8 |V|max */
			cr_assert(fabs(x.out[e] - want[e]) <= 1e-2, "bf16 MLA nq %zu: out[%zu] %g, want %g",
			          nq, e, x.out[e], want[e]);
		free(want);
		free(kb);
		free(vb);
		xcase_free(&x);
	}
	rva_attention_release(att);
}

/* v_head_dim where it cannot apply is refused clearly. */
Test(attn_extras, v_head_dim_refused_where_it_does_not_apply) {
	rva_config lc = rva_linear(64, 16);
	lc.heads = 2;
	lc.v_head_dim = 16;
	rva_attention *att;
	cr_assert_eq(rva_build(&lc, &att), RVA_EINVAL, "linear with v_head_dim: %s",
	             rva_last_error());
	rva_config hc = rva_hyperbolic(64, -1.0f);
	hc.v_head_dim = 32;
	cr_assert_eq(rva_build(&hc, &att), RVA_EINVAL, "hyperbolic with v_head_dim");
	rva_config mc = rva_moe(64, 4, 2);
	mc.v_head_dim = 8;
	cr_assert_eq(rva_build(&mc, &att), RVA_EINVAL, "moe with v_head_dim");
	rva_config big = rva_multi_head(64, 2);
	big.v_head_dim = (size_t)1 << 32;
	cr_assert_eq(rva_build(&big, &att), RVA_EOVERFLOW, "2 heads x 2^32");
	/* v_head_dim equal to head_dim is no change, for any mechanism */
	lc.v_head_dim = 32;
	cr_assert_eq(rva_build(&lc, &att), RVA_OK, "%s", rva_last_error());
	rva_attention_release(att);
	/* a pipeline's stream keeps dim columns */
	rva_config c = rva_multi_head(64, 2);
	c.v_head_dim = 16;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_pipeline *p;
	cr_assert_eq(rva_pipeline_create(&p), RVA_OK);
	cr_assert_eq(rva_pipeline_add_attention(p, att), RVA_EDIM, "pipeline: %s",
	             rva_last_error());
	rva_pipeline_destroy(p);
	/* a V stride narrower than kv_heads x v_head_dim */
	float *q = ref_alloc(64 * 4), *k = ref_alloc(64 * 4), *v = ref_alloc(32 * 4),
	      *o = ref_alloc(32 * 4);
	rva_seq s = {.nq = 4, .nk = 4, .q = q, .k = k, .v = v, .v_stride = 31, .out = o};
	rva_batch b = {1, &s};
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_EDIM, "v_stride 31 < 32");
	s.v_stride = 0;
	s.out_stride = 31;
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_EDIM, "out_stride 31 < 32");
	s.out_stride = 0;
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK, "%s", rva_last_error());
	free(q);
	free(k);
	free(v);
	free(o);
	rva_attention_release(att);
}

/*
 * Rotary position embeddings on the softmax mechanisms (config.h: rope, rope_theta,
 * rope_scaling, rope_factor, rope_dim; batch.h: q_pos, k_pos) against the double-precision
 * oracle tests/ref/ref_softmax.h (written from the RoFormer / GPT-NeoX definitions):
 * both layouts, theta, linear and NTK scaling, partial rotary, odd head dims, GQA, causal,
 * decode with its position offset, split-KV chunks, the decode kernels, rva_compute and
 * bf16 keys; serial, 1 and 2 threads bit-identical; bad values refused.
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

typedef struct rcase {
	const char *name;
	rva_config cfg;
	size_t nq, nk;
	size_t q_pos, k_pos;
} rcase;

typedef struct rdata {
	size_t H, kvh, D, rd;
	float *q, *k, *v, *out;
	rva_seq seq;
} rdata;

static void rdata_init(rdata *d, const rcase *c, uint64_t seed) {
	rva_attention *att;
	cr_assert_eq(rva_build(&c->cfg, &att), RVA_OK, "%s: build: %s", c->name, rva_last_error());
	rva_config r;
	rva_attention_config(att, &r);
	rva_attention_release(att);
	d->H = r.heads;
	d->kvh = r.kv_heads;
	d->D = r.dim / r.heads;
	d->rd = r.rope_dim;
	size_t dim = d->H * d->D, kvd = d->kvh * d->D;
	d->q = ref_alloc(c->nq * dim + 1);
	d->k = ref_alloc(c->nk * kvd + 1);
	d->v = ref_alloc(c->nk * kvd + 1);
	d->out = ref_alloc(c->nq * dim + 1);
	ref_fill_uniform(d->q, c->nq * dim, -1.5f, 1.5f, seed);
	ref_fill_uniform(d->k, c->nk * kvd, -1.5f, 1.5f, seed + 1);
	ref_fill_uniform(d->v, c->nk * kvd, -1.0f, 1.0f, seed + 2);
	d->seq = (rva_seq){.nq = c->nq, .nk = c->nk, .q = d->q, .k = d->k, .v = d->v,
	                   .out = d->out, .q_pos = c->q_pos, .k_pos = c->k_pos};
}

static void rdata_free(rdata *d) {
	free(d->q);
	free(d->k);
	free(d->v);
	free(d->out);
}

/* Runs on an engine of `threads` workers, or serially (0). */
static void run(const rcase *c, rdata *d, unsigned threads) {
	rva_attention *att;
	cr_assert_eq(rva_build(&c->cfg, &att), RVA_OK, "build: %s", rva_last_error());
	rva_batch b = {1, &d->seq};
	rva_status st;
	if (threads == 0) {
		st = rva_compute_batch(att, &b, NULL, NULL);
	} else {
		rva_engine_config ec = rva_engine_config_defaults();
		ec.threads = threads;
		ec.spin_us = 0;
		rva_engine *e;
		cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK, "engine: %s", rva_last_error());
		st = rva_engine_run(e, att, &b, NULL, NULL, NULL);
		rva_engine_destroy(e);
	}
	cr_assert_eq(st, RVA_OK, "%s: run: %s", c->name, rva_last_error());
	rva_attention_release(att);
}

static ref_rope ref_rope_of(const rva_config *c, size_t rd) {
	ref_rope r = {.kind = c->rope == RVA_ROPE_NEOX ? REF_ROPE_NEOX : REF_ROPE_GPTJ,
	              .theta = c->rope_theta != 0.0f ? (double)c->rope_theta : 10000.0,
	              .rot_dim = rd,
	              .scaling = c->rope_scaling == RVA_ROPE_SCALING_LINEAR ? REF_ROPE_SCALE_LINEAR
	                         : c->rope_scaling == RVA_ROPE_SCALING_NTK  ? REF_ROPE_SCALE_NTK
	                                                                    : REF_ROPE_SCALE_NONE,
	              .factor = c->rope_factor != 0.0f ? (double)c->rope_factor : 1.0};
	return r;
}

/* The oracle: query row i at position q_pos + nk - nq + i (bottom-right) or q_pos + i
 * (top-left), key j at k_pos + j. */
static void check_oracle(const rcase *c, const rdata *d, double atol, double rtol) {
	size_t dim = d->H * d->D, kvd = d->kvh * d->D;
	ref_attn_spec sp = {.heads = d->H, .kv_heads = d->kvh, .head_dim = d->D,
	                    .scale = 1.0 / sqrt((double)d->D), .causal = c->cfg.causal,
	                    .top_left = c->cfg.causal_align == RVA_CAUSAL_TOP_LEFT};
	double *want = ref_alloc_d(c->nq * dim + 1);
	ref_ex_io io = {.nq = c->nq, .nk = c->nk, .q = d->q, .qs = dim, .qhs = d->D, .k = d->k,
	                .ks = kvd, .khs = d->D, .v = d->v, .vs = kvd, .vhs = d->D,
	                .v_head_dim = d->D,
	                .q_pos = (long)c->q_pos, .k_pos = (long)c->k_pos,
	                .rope = ref_rope_of(&c->cfg, d->rd), .out = want};
	ref_attention_ex(&sp, &io);
	for (size_t i = 0; i < c->nq; i++) {
		double e = ref_err_ratio(d->out + i * dim, want + i * dim, dim, atol, rtol);
		cr_assert(e <= 1.0, "%s: row %zu: error ratio %g", c->name, i, e);
	}
	free(want);
}

/* Serial, 1 and 2 threads bit-identical, then the oracle. */
static void run_check(const rcase *c, uint64_t seed) {
	rdata d;
	rdata_init(&d, c, seed);
	size_t on = c->nq * d.H * d.D;
	float *o1 = malloc((on + 1) * sizeof(float));
	run(c, &d, 1);
	memcpy(o1, d.out, on * sizeof(float));
	for (unsigned threads = 0; threads <= 2; threads += 2) {
		memset(d.out, 0xFF, on * sizeof(float));
		run(c, &d, threads);
		cr_assert(memcmp(o1, d.out, on * sizeof(float)) == 0,
		          "%s: outputs of 1 thread and %u differ", c->name, threads);
	}
	check_oracle(c, &d, ATOL, RTOL);
	free(o1);
	rdata_free(&d);
}

static rva_config roped(rva_config c, rva_rope layout) {
	c.rope = layout;
	return c;
}

Test(rope, layouts_theta_gqa_causal) {
	rva_config f = roped(rva_flash(4 * 64, 16), RVA_ROPE_NEOX);
	f.heads = 4;
	f.kv_heads = 2;
	f.query_block = 16;
	f.causal = true;
	run_check(&(rcase){"neox flash GQA causal 70 x 70", f, 70, 70, 0, 0}, 11);
	f.rope = RVA_ROPE_GPTJ;
	run_check(&(rcase){"gptj flash GQA causal 70 x 70", f, 70, 70, 0, 0}, 12);
	rva_config m = roped(rva_multi_head(4 * 80, 4), RVA_ROPE_GPTJ);
	m.rope_theta = 500000.0f;
	run_check(&(rcase){"gptj theta 5e5 multi_head 33 x 90", m, 33, 90, 0, 0}, 13);
	m.rope = RVA_ROPE_NEOX;
	m.rope_theta = 1e6f;
	m.causal = true;
	run_check(&(rcase){"neox theta 1e6 causal nq > nk", m, 45, 30, 0, 0}, 14);
}

Test(rope, scaling_and_partial_rotary) {
	rva_config c = roped(rva_multi_head(2 * 64, 2), RVA_ROPE_NEOX);
	c.causal = true;
	c.rope_scaling = RVA_ROPE_SCALING_LINEAR;
	c.rope_factor = 4.0f;
	run_check(&(rcase){"linear x4", c, 40, 300, 0, 0}, 21);
	c.rope_scaling = RVA_ROPE_SCALING_NTK;
	c.rope_factor = 8.0f;
	run_check(&(rcase){"ntk x8", c, 40, 300, 0, 0}, 22);
	c.rope_dim = 32; /* GPT-NeoX rotary_pct 0.25 on 128 is 32 of 128; here half of 64 */
	run_check(&(rcase){"ntk x8, rope_dim 32 of 64", c, 40, 300, 0, 0}, 23);
	rva_config g = roped(rva_multi_head(3 * 64, 3), RVA_ROPE_GPTJ);
	g.rope_dim = 16;
	run_check(&(rcase){"gptj rope_dim 16 of 64", g, 25, 60, 0, 0}, 24);
	rva_config odd = roped(rva_multi_head(2 * 5, 2), RVA_ROPE_NEOX); /* head_dim 5: 4 turn */
	run_check(&(rcase){"head_dim 5 (rope_dim 4)", odd, 17, 23, 0, 0}, 25);
	rva_attention *att;
	cr_assert_eq(rva_build(&odd, &att), RVA_OK);
	rva_config r;
	rva_attention_config(att, &r);
	cr_assert_eq(r.rope_dim, 4);
	cr_assert_eq(r.rope_theta, 10000.0f);
	rva_attention_release(att);
}

/* causal_align top-left (PyTorch's is_causal): query row i rotates at q_pos + i, not at
 * nk - nq + i; nq < nk (the positions differ by nk - nq), nq > nk (rows past the keys see
 * every key), offsets, GQA, split-KV chunks and the decode kernels; and the check that the
 * alignment moves the rotation (bottom-right positions are far from the top-left oracle). */
Test(rope, top_left_positions) {
	rva_config c = roped(rva_flash(4 * 64, 16), RVA_ROPE_NEOX);
	c.heads = 4;
	c.kv_heads = 2;
	c.query_block = 16;
	c.causal = true;
	c.causal_align = RVA_CAUSAL_TOP_LEFT;
	run_check(&(rcase){"top-left neox causal 40 x 90", c, 40, 90, 0, 0}, 61);
	run_check(&(rcase){"top-left neox causal 70 x 30 (nq > nk)", c, 70, 30, 0, 0}, 62);
	c.rope = RVA_ROPE_GPTJ;
	c.rope_scaling = RVA_ROPE_SCALING_NTK;
	c.rope_factor = 4.0f;
	run_check(&(rcase){"top-left gptj ntk, offsets 300 / 120", c, 33, 77, 300, 120}, 63);
	c.causal = false; /* the alignment still places the queries (RoPE and ALiBi) */
	run_check(&(rcase){"top-left gptj bidirectional 20 x 60", c, 20, 60, 0, 0}, 64);
	rva_config d = roped(rva_multi_head(8 * 64, 8), RVA_ROPE_NEOX);
	d.kv_heads = 2;
	d.causal_align = RVA_CAUSAL_TOP_LEFT; /* bidirectional: every key, queries at q_pos + i */
	d.kv_split = 64;
	run_check(&(rcase){"top-left 3 x 400 split-KV", d, 3, 400, 0, 0}, 65);
	d.kv_split = 0;
	run_check(&(rcase){"top-left 1 x 300 decode kernels, q_pos 150", d, 1, 300, 150, 0}, 66);
	/* the same run against the oracle at bottom-right positions fails: the check sees them */
	rcase tl = {"top-left 40 x 90", c, 40, 90, 0, 0};
	tl.cfg.causal = true;
	rdata dt;
	rdata_init(&dt, &tl, 67);
	run(&tl, &dt, 1);
	check_oracle(&tl, &dt, ATOL, RTOL);
	size_t dim = dt.H * dt.D;
	ref_attn_spec sp = {.heads = dt.H, .kv_heads = dt.kvh, .head_dim = dt.D,
	                    .scale = 1.0 / sqrt((double)dt.D), .causal = true, .top_left = true};
	double *moved = ref_alloc_d(tl.nq * dim + 1);
	ref_ex_io io = {.nq = tl.nq, .nk = tl.nk, .q = dt.q, .qs = dim, .qhs = dt.D, .k = dt.k,
	                .ks = dt.kvh * dt.D, .khs = dt.D, .v = dt.v, .vs = dt.kvh * dt.D,
	                .vhs = dt.D, .v_head_dim = dt.D, .q_pos = (long)(tl.nk - tl.nq),
	                .rope = ref_rope_of(&tl.cfg, dt.rd), .out = moved};
	ref_attention_ex(&sp, &io); /* top-left masks, queries rotated at nk - nq + i */
	cr_assert_gt(ref_err_ratio(dt.out, moved, tl.nq * dim, ATOL, RTOL), 10.0,
	             "rotating the queries at bottom-right positions changes nothing");
	free(moved);
	rdata_free(&dt);
}

/* Decoding: one query over a history rotates at its own position (nk - 1 by default);
 * offsets shift the stream; split-KV chunks and the decode kernels on rotated keys. */
Test(rope, decode_positions) {
	rva_config d = roped(rva_multi_head(8 * 64, 8), RVA_ROPE_NEOX);
	d.kv_heads = 2;
	d.causal = true;
	run_check(&(rcase){"decode 1 x 300 GQA", d, 1, 300, 0, 0}, 31);
	run_check(&(rcase){"decode 1 x 300, stream offsets 5000", d, 1, 300, 5000, 5000}, 32);
	run_check(&(rcase){"decode, query offset only", d, 1, 300, 777, 0}, 33);
	d.kv_split = 64;
	run_check(&(rcase){"decode 3 x 400 split-KV", d, 3, 400, 0, 100}, 34);
	rva_config big = roped(rva_multi_head(4 * 128, 4), RVA_ROPE_GPTJ);
	big.rope_theta = 500000.0f;
	run_check(&(rcase){"decode 2 x 5000 (automatic split)", big, 2, 5000, 0, 0}, 35);
	rva_config lg = roped(rva_local_global(2 * 64, 16), RVA_ROPE_NEOX);
	lg.heads = 2;
	lg.global_tokens = 0;
	lg.causal = true;
	/* local_global without globals and a window wider than the sequence: every key, so
	 * the oracle's dense causal spec applies */
	lg.window = 1024;
	run_check(&(rcase){"local_global (window over all) 64 x 64", lg, 64, 64, 0, 0}, 36);
}

/* A decode step equals the last row of the prefill with the same keys (its position is
 * the prefill's last), to fp32 rounding. */
Test(rope, decode_matches_prefill_row) {
	rva_config c = roped(rva_flash(4 * 64, 32), RVA_ROPE_NEOX);
	c.heads = 4;
	c.causal = true;
	rcase pre = {"prefill 200", c, 200, 200, 0, 0};
	rdata d;
	rdata_init(&d, &pre, 41);
	run(&pre, &d, 0);
	size_t dim = d.H * d.D;
	float *last = malloc(dim * sizeof(float));
	memcpy(last, d.out + 199 * dim, dim * sizeof(float));
	rva_seq one = d.seq;
	one.nq = 1;
	one.q = d.q + 199 * dim;
	one.out = d.out;
	d.seq = one;
	rcase dec = {"decode", c, 1, 200, 0, 0};
	run(&dec, &d, 2);
	for (size_t e = 0; e < dim; e++)
		cr_assert(fabsf(d.out[e] - last[e]) <= 2e-5f + 2e-4f * fabsf(last[e]),
		          "element %zu: decode %g, prefill %g", e, d.out[e], last[e]);
	free(last);
	rdata_free(&d);
}

/* rva_compute (one query, the guide's shape): the query sits at nk - 1. */
Test(rope, compute_single_query) {
	rva_config c = roped(rva_multi_head(2 * 64, 2), RVA_ROPE_GPTJ);
	rcase rc = {"rva_compute", c, 1, 50, 0, 0};
	rdata d;
	rdata_init(&d, &rc, 51);
	size_t kvd = d.kvh * d.D;
	const float *keys[50], *vals[50];
	for (size_t j = 0; j < 50; j++) {
		keys[j] = d.k + j * kvd;
		vals[j] = d.v + j * kvd;
	}
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	cr_assert_eq(rva_compute(att, d.q, keys, vals, 50, d.out), RVA_OK, "%s", rva_last_error());
	rva_attention_release(att);
	check_oracle(&rc, &d, ATOL, RTOL);
	rdata_free(&d);
}

/* bf16 keys and values: rotated and rounded to bf16 once, then the bf16 kernels; within
 * the bf16 bound of batch.h (about 2^-8 |V|max over the fp32 terms) of the fp32 oracle. */
Test(rope, bf16_keys) {
	rva_config c = roped(rva_flash(4 * 64, 32), RVA_ROPE_NEOX);
	c.heads = 4;
	c.kv_heads = 2;
	c.causal = true;
	rcase rc = {"bf16 K/V", c, 64, 96, 0, 0};
	rdata d;
	rdata_init(&d, &rc, 61);
	size_t kvd = d.kvh * d.D;
	uint16_t *kh = malloc(96 * kvd * 2), *vh = malloc(96 * kvd * 2);
	cr_assert_eq(rva_convert(RVA_BF16, kh, RVA_F32, d.k, 96 * kvd), RVA_OK);
	cr_assert_eq(rva_convert(RVA_BF16, vh, RVA_F32, d.v, 96 * kvd), RVA_OK);
	/* the oracle reads the bf16 values (widened) */
	cr_assert_eq(rva_convert(RVA_F32, d.k, RVA_BF16, kh, 96 * kvd), RVA_OK);
	cr_assert_eq(rva_convert(RVA_F32, d.v, RVA_BF16, vh, 96 * kvd), RVA_OK);
	rva_seq s = d.seq;
	s.k = kh;
	s.v = vh;
	s.k_dtype = s.v_dtype = RVA_BF16;
	d.seq = s;
	run(&rc, &d, 2);
	check_oracle(&rc, &d, 2e-2, 2e-2);
	free(kh);
	free(vh);
	rdata_free(&d);
}

static void refuse(rva_config c, rva_status want, const char *what) {
	rva_attention *att = NULL;
	rva_status st = rva_build(&c, &att);
	cr_assert_eq(st, want, "%s: got %s (%s), want %s", what, rva_strerror(st),
	             rva_last_error(), rva_strerror(want));
	cr_assert_null(att);
}

Test(rope, bad_values_refused) {
	rva_config c = roped(rva_multi_head(128, 2), RVA_ROPE_NEOX);
	rva_config x = c;
	x.rope_dim = 7;
	refuse(x, RVA_EINVAL, "odd rope_dim");
	x.rope_dim = 66;
	refuse(x, RVA_ERANGE, "rope_dim beyond head_dim");
	x = c;
	x.rope_theta = -1.0f;
	refuse(x, RVA_ERANGE, "negative theta");
	x.rope_theta = NAN;
	refuse(x, RVA_ERANGE, "NaN theta");
	x = c;
	x.rope_factor = 2.0f;
	refuse(x, RVA_EINVAL, "factor without scaling");
	x.rope_scaling = RVA_ROPE_SCALING_LINEAR;
	x.rope_factor = -2.0f;
	refuse(x, RVA_ERANGE, "negative factor");
	x.rope_scaling = (rva_rope_scaling)7;
	refuse(x, RVA_EINVAL, "unknown scaling");
	x = c;
	x.rope = (rva_rope)9;
	refuse(x, RVA_EINVAL, "unknown layout");
	x = c;
	x.rope_scaling = RVA_ROPE_SCALING_NTK;
	x.rope_dim = 2;
	refuse(x, RVA_ERANGE, "NTK with rope_dim 2");
	rva_config none = rva_multi_head(128, 2);
	none.rope_theta = 10000.0f;
	refuse(none, RVA_EINVAL, "theta without rope");
	none = rva_multi_head(128, 2);
	none.rope_dim = 32;
	refuse(none, RVA_EINVAL, "rope_dim without rope");
	rva_config lin = roped(rva_linear(128, 16), RVA_ROPE_NEOX);
	refuse(lin, RVA_EINVAL, "rope on linear attention");
	rva_config moe = roped(rva_moe(128, 4, 1), RVA_ROPE_GPTJ);
	refuse(moe, RVA_EINVAL, "rope on moe");
}

Test(rope, positions_refused_without_rope_or_too_large) {
	float q[128] = {0}, k[128] = {0}, v[128] = {0}, out[128];
	rva_seq s = {.nq = 1, .nk = 1, .q = q, .k = k, .v = v, .out = out, .q_pos = 3};
	rva_batch b = {1, &s};
	rva_config plain = rva_multi_head(128, 2);
	rva_attention *att;
	cr_assert_eq(rva_build(&plain, &att), RVA_OK);
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_EINVAL);
	cr_assert(strstr(rva_last_error(), "q_pos"), "%s", rva_last_error());
	rva_attention_release(att);
	rva_config c = roped(rva_multi_head(128, 2), RVA_ROPE_NEOX);
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK, "%s", rva_last_error());
	s.k_pos = (size_t)1 << 50;
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_ERANGE);
	rva_attention_release(att);
}

/* The paged cache stores keys rotated (rvattn/rope.h): keys rotated by rva_rope_apply at
 * their stream positions and appended in uneven pieces, then a chunked-prefill step and a
 * decode step over the cache, bit-identical to contiguous attention over the unrotated
 * keys (which the job rotates itself), and to the oracle. */
Test(rope, paged_cache_stores_rotated_keys) {
	enum { H = 8, KVH = 2, HD = 64, NK = 203, NQ = 5 };
	rva_config c = roped(rva_flash(H * HD, 32), RVA_ROPE_NEOX);
	c.heads = H;
	c.kv_heads = KVH;
	c.causal = true;
	c.rope_theta = 500000.0f;
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rcase rc = {"paged", c, NQ, NK, 0, 0};
	rdata d;
	rdata_init(&d, &rc, 71);
	size_t kvd = KVH * HD;
	float *kr = malloc(NK * kvd * sizeof(float));
	memcpy(kr, d.k, NK * kvd * sizeof(float));
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 2;
	ec.spin_us = 0;
	rva_engine *e;
	cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK, "%s", rva_last_error());
	rva_kv_cache_config kc = {.kv_heads = KVH, .head_dim = HD, .page_tokens = 16, .pages = 64};
	rva_kv_cache *cache;
	cr_assert_eq(rva_kv_cache_create(e, &kc, &cache), RVA_OK, "%s", rva_last_error());
	uint64_t id;
	cr_assert_eq(rva_kv_cache_seq_new(cache, &id), RVA_OK);
	static const size_t pieces[] = {37, 1, 100, 64, 1};
	size_t at = 0;
	for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
		cr_assert_eq(rva_rope_apply(att, kr + at * kvd, RVA_F32, kvd, KVH, pieces[p], at),
		             RVA_OK, "%s", rva_last_error());
		cr_assert_eq(rva_kv_cache_append(cache, id, kr + at * kvd, 0, d.v + at * kvd, 0,
		                                 pieces[p]), RVA_OK, "%s", rva_last_error());
		at += pieces[p];
	}
	cr_assert_eq(at, NK);
	/* the last NQ rows' queries (a prefill chunk), then the last one alone (decode) */
	size_t dim = H * HD;
	float *paged = malloc(NQ * dim * sizeof(float));
	static const size_t steps[2] = {NQ, 1};
	for (size_t si = 0; si < 2; si++) {
		size_t nq = steps[si];
		rva_kv_step st = {.seq = id, .nq = nq, .q = d.q + (NQ - nq) * dim, .out = paged};
		cr_assert_eq(rva_kv_cache_run(e, cache, att, &st, 1, NULL, NULL, NULL), RVA_OK, "%s",
		             rva_last_error());
		rva_seq s = {.nq = nq, .nk = NK, .q = d.q + (NQ - nq) * dim, .k = d.k, .v = d.v,
		             .out = d.out};
		rva_batch b = {1, &s};
		cr_assert_eq(rva_engine_run(e, att, &b, NULL, NULL, NULL), RVA_OK);
		cr_assert(memcmp(paged, d.out, nq * dim * sizeof(float)) == 0,
		          "%zu queries: paged (rotated keys) and contiguous differ", nq);
	}
	memcpy(d.out, paged, dim * sizeof(float)); /* the decode step: the last query row */
	rcase last = {"paged decode", c, 1, NK, 0, 0};
	rdata one = d;
	one.q = d.q + (NQ - 1) * dim;
	check_oracle(&last, &one, ATOL, RTOL);
	cr_assert_eq(rva_rope_apply(att, kr, RVA_F32, kvd - 1, KVH, 1, 0), RVA_EDIM);
	cr_assert_eq(rva_rope_apply(att, kr, (rva_dtype)9, kvd, KVH, 1, 0), RVA_EINVAL);
	cr_assert_eq(rva_rope_apply(att, kr, RVA_F32, kvd, KVH, 2, ((size_t)1 << 47) - 1),
	             RVA_ERANGE);
	rva_attention *plain;
	rva_config pc = rva_multi_head(dim, H);
	cr_assert_eq(rva_build(&pc, &plain), RVA_OK);
	cr_assert_eq(rva_rope_apply(plain, kr, RVA_F32, kvd, KVH, 1, 0), RVA_EINVAL);
	rva_attention_release(plain);
	rva_kv_cache_destroy(cache);
	rva_engine_destroy(e);
	rva_attention_release(att);
	free(kr);
	free(paged);
	rdata_free(&d);
}

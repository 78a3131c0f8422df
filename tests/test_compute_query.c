/*
 * The single-query call with the attention-op extras (attention.h: rva_compute_query,
 * rva_query_extras): a per-key bias per head or broadcast, a per-head mask, the LSE and
 * RoPE position offsets, with the config's modifiers (causal alignment, window, softcap,
 * ALiBi, RoPE), over keys read in place and keys gathered from scattered rows, on the
 * decode kernels and split-KV chunks: bit-identical to rva_compute_batch over an rva_seq
 * of one row with the same fields, within the float64 oracle (tests/ref/ref_softmax.h),
 * far from it without the extras; bad extras refused.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_softmax.h"
#include "ref/ref_util.h"
#include "rvattn/rvattn.h"

#define ATOL 3e-5
#define RTOL 3e-4

enum { H = 4, KVH = 2, D = 64, DIM = H * D, KVD = KVH * D };

typedef struct qcase {
	const char *name;
	rva_config cfg;
	size_t nk;
	bool per_head_bias, rope_offsets, scattered;
} qcase;

typedef struct qdata {
	float *q, *k, *v, *bias, lse[H];
	uint8_t *mask, *key_mask;
	const float **krow, **vrow;
	float *kscatter;            /* the key rows one row apart (gathered by the call) */
	rva_query_extras x;
} qdata;

static void qdata_init(const qcase *c, qdata *d, uint64_t seed) {
	size_t nk = c->nk;
	d->q = ref_alloc(DIM);
	d->k = ref_alloc(nk * KVD);
	d->v = ref_alloc(nk * KVD);
	d->kscatter = ref_alloc(2 * nk * KVD);
	ref_fill_uniform(d->q, DIM, -1.5f, 1.5f, seed);
	ref_fill_uniform(d->k, nk * KVD, -1.5f, 1.5f, seed + 1);
	ref_fill_uniform(d->v, nk * KVD, -1.0f, 1.0f, seed + 2);
	d->bias = ref_alloc(H * (nk + 3));
	ref_fill_uniform(d->bias, H * (nk + 3), -2.0f, 2.0f, seed + 3);
	for (size_t i = 0; i < H * (nk + 3); i += 19)
		d->bias[i] = -INFINITY;
	d->mask = calloc(nk + 1, H);
	d->key_mask = calloc(nk, 1);
	for (size_t i = 0; i < H * (nk + 1); i++)
		d->mask[i] = (i * 7919) % 16 >= 3;
	for (size_t j = 0; j < nk; j++)
		d->key_mask[j] = j % 13 != 5;
	d->krow = malloc(nk * sizeof *d->krow);
	d->vrow = malloc(nk * sizeof *d->vrow);
	for (size_t j = 0; j < nk; j++) {
		float *kr = d->kscatter + (2 * j + (j % 3 == 0)) * KVD; /* uneven gaps */
		memcpy(kr, d->k + j * KVD, KVD * sizeof(float));
		d->krow[j] = c->scattered ? kr : d->k + j * KVD;
		d->vrow[j] = d->v + j * KVD;
	}
	d->x = (rva_query_extras){.bias = d->bias,
	                          .bias_head_stride = c->per_head_bias ? nk + 3 : 0,
	                          .mask = d->mask, .mask_head_stride = nk + 1, .lse = d->lse,
	                          .q_pos = c->rope_offsets ? 1000 : 0,
	                          .k_pos = c->rope_offsets ? 990 : 0};
}

static void qdata_free(qdata *d) {
	free(d->q);
	free(d->k);
	free(d->v);
	free(d->kscatter);
	free(d->bias);
	free(d->mask);
	free(d->key_mask);
	free(d->krow);
	free(d->vrow);
}

/* The oracle of the query with its extras (out packed, lse per head). */
static void oracle(const rva_attention *att, const qcase *c, const qdata *d, double *out,
                   double *lse) {
	rva_config r;
	rva_attention_config(att, &r);
	double slopes[H];
	ref_alibi_slopes(H, slopes);
	ref_attn_spec sp = {.heads = H, .kv_heads = KVH, .head_dim = D,
	                    .scale = 1.0 / sqrt((double)D), .causal = r.causal,
	                    .top_left = r.causal_align == RVA_CAUSAL_TOP_LEFT,
	                    .sliding = r.sliding_window, .window_left = r.window_left,
	                    .window_right = r.window_right, .softcap = r.softcap,
	                    .alibi = r.alibi ? slopes : NULL, .bias = d->bias,
	                    .bias_s = c->nk, .bias_hs = d->x.bias_head_stride, .smask = d->mask,
	                    .smask_s = c->nk, .smask_hs = d->x.mask_head_stride};
	ref_ex_io io = {.nq = 1, .nk = c->nk, .q = d->q, .qs = DIM, .qhs = D, .k = d->k,
	                .ks = KVD, .khs = D, .v = d->v, .vs = KVD, .vhs = D,
	                .mask = d->key_mask, .v_head_dim = D, .q_pos = (long)d->x.q_pos,
	                .k_pos = (long)d->x.k_pos, .out = out, .lse = lse};
	if (r.rope != RVA_ROPE_NONE)
		io.rope = (ref_rope){.kind = r.rope == RVA_ROPE_NEOX ? REF_ROPE_NEOX : REF_ROPE_GPTJ,
		                     .theta = r.rope_theta, .rot_dim = r.rope_dim, .factor = 1.0};
	ref_attention_ex(&sp, &io);
}

static void check_case(const qcase *c, uint64_t seed) {
	rva_attention *att = NULL;
	cr_assert_eq(rva_build(&c->cfg, &att), RVA_OK, "%s: %s", c->name, rva_last_error());
	qdata d;
	qdata_init(c, &d, seed);
	float got[DIM], batch[DIM], plain[DIM], blse[H];
	cr_assert_eq(rva_compute_query(att, d.q, d.krow, d.vrow, d.key_mask, c->nk, got, &d.x,
	                               NULL),
	             RVA_OK, "%s: %s", c->name, rva_last_error());
	rva_seq s = {.nq = 1, .nk = c->nk, .q = d.q, .k = d.k, .v = d.v, .out = batch,
	             .key_mask = d.key_mask, .bias = d.bias,
	             .bias_head_stride = d.x.bias_head_stride, .mask = d.mask,
	             .mask_head_stride = d.x.mask_head_stride, .lse = blse, .q_pos = d.x.q_pos,
	             .k_pos = d.x.k_pos};
	rva_batch b = {1, &s};
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK, "%s: batch: %s", c->name,
	             rva_last_error());
	cr_assert(memcmp(got, batch, sizeof got) == 0, "%s: output differs from the batch",
	          c->name);
	cr_assert(memcmp(d.lse, blse, sizeof blse) == 0, "%s: lse differs from the batch",
	          c->name);
	double want[DIM], wlse[H];
	oracle(att, c, &d, want, wlse);
	double e = ref_err_ratio(got, want, DIM, ATOL, RTOL);
	cr_assert(e <= 1.0, "%s: error ratio %g against the oracle", c->name, e);
	for (size_t h = 0; h < H; h++)
		cr_assert(fabs((double)d.lse[h] - wlse[h]) <= ATOL + RTOL * fabs(wlse[h]),
		          "%s: lse[%zu] %g, want %g", c->name, h, (double)d.lse[h], wlse[h]);
	cr_assert_eq(rva_compute_ex(att, d.q, d.krow, d.vrow, d.key_mask, c->nk, plain, NULL),
	             RVA_OK, "%s: %s", c->name, rva_last_error());
	cr_assert_gt(ref_err_ratio(plain, want, DIM, ATOL, RTOL), 10.0,
	             "%s: the extras change nothing", c->name);
	qdata_free(&d);
	rva_attention_release(att);
}

static rva_config gqa(rva_config c) {
	c.heads = H;
	c.kv_heads = KVH;
	return c;
}

Test(compute_query, modifiers_and_extras) {
	rva_config mh = gqa(rva_multi_head(DIM, H));
	mh.causal = true;
	mh.sliding_window = true;
	mh.window_left = 200;
	mh.softcap = 15.0f;
	mh.alibi = true;
	check_case(&(qcase){"window softcap ALiBi, per-head bias, 300 keys", mh, 300, true, false,
	                    false}, 11);
	check_case(&(qcase){"the same over scattered keys", mh, 300, true, false, true}, 12);
	rva_config fl = gqa(rva_flash(DIM, 64));
	fl.causal = true;
	fl.kv_split = 256;
	check_case(&(qcase){"flash split-KV 2000 keys, broadcast bias", fl, 2000, false, false,
	                    false}, 13);
}

Test(compute_query, rope_offsets) {
	rva_config c = gqa(rva_flash(DIM, 32));
	c.causal = true;
	c.rope = RVA_ROPE_NEOX;
	check_case(&(qcase){"RoPE neox, offsets 1000 / 990", c, 400, true, true, false}, 21);
	c.rope = RVA_ROPE_GPTJ;
	c.causal_align = RVA_CAUSAL_TOP_LEFT;
	c.causal = false;
	check_case(&(qcase){"RoPE gptj top-left (query at 0 + q_pos)", c, 150, false, true, true},
	           22);
}

Test(compute_query, bad_extras) {
	rva_config mc = gqa(rva_multi_head(DIM, H));
	rva_attention *att = NULL;
	cr_assert_eq(rva_build(&mc, &att), RVA_OK);
	qcase c = {"bad", mc, 20, true, false, false};
	qdata d;
	qdata_init(&c, &d, 31);
	float out[DIM];
	rva_query_extras x = d.x;
	x.reserved[3] = 1;
	cr_assert_eq(rva_compute_query(att, d.q, d.krow, d.vrow, NULL, 20, out, &x, NULL),
	             RVA_EINVAL);
	x = d.x;
	x.lse = out + 2; /* over the output */
	cr_assert_eq(rva_compute_query(att, d.q, d.krow, d.vrow, NULL, 20, out, &x, NULL),
	             RVA_EINVAL);
	x = d.x;
	x.q_pos = 3; /* a RoPE offset without rope */
	cr_assert_eq(rva_compute_query(att, d.q, d.krow, d.vrow, NULL, 20, out, &x, NULL),
	             RVA_EINVAL);
	cr_assert(strstr(rva_last_error(), "q_pos"), "%s", rva_last_error());
	x = d.x;
	x.bias = NULL; /* a head stride without its bias */
	cr_assert_eq(rva_compute_query(att, d.q, d.krow, d.vrow, NULL, 20, out, &x, NULL),
	             RVA_EINVAL);
	rva_config lc = rva_linear(DIM, 16);
	rva_attention *lin = NULL;
	cr_assert_eq(rva_build(&lc, &lin), RVA_OK);
	float *kf = ref_alloc(20 * DIM);
	const float *kr[20];
	for (size_t j = 0; j < 20; j++)
		kr[j] = kf + j * DIM;
	x = d.x;
	x.bias_head_stride = 0;
	x.mask_head_stride = 0;
	cr_assert_eq(rva_compute_query(lin, d.q, kr, kr, NULL, 20, out, &x, NULL), RVA_EINVAL);
	/* NULL extras: rva_compute_ex */
	cr_assert_eq(rva_compute_query(att, d.q, d.krow, d.vrow, NULL, 20, out, NULL, NULL),
	             RVA_OK, "%s", rva_last_error());
	free(kf);
	rva_attention_release(lin);
	qdata_free(&d);
	rva_attention_release(att);
}

/*
 * Score modifiers of the softmax engine (include/rvattn/config.h "Score modifiers",
 * batch.h score matrices): causal alignment, sliding window, softcap, ALiBi, the
 * sequence's additive bias and boolean mask, alone and combined, against the float64
 * oracle (tests/ref/ref_softmax.h) over head dims 3, 64 and 80, GQA, nq != nk both ways,
 * decode (one query, long split-KV key ranges) and the four softmax mechanisms. Every case
 * runs serially (rva_compute_batch) and on engines of 1 and 2 threads: bit-identical; one
 * query also through rva_compute_ex and rva_compute: bit-identical to the batch. Paged K/V
 * (rva_kv_cache_run) with the config's modifiers: bit-identical to contiguous K/V. The
 * planner's share:
 * split-KV chunks wholly outside the window are not planned (task counts), and key tiles
 * outside it are skipped (a key row of NaN there does not reach the output).
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

enum { SM_NONE = 0, SM_BCAST, SM_HEADS }; /* bias / mask layouts */

typedef struct tcase {
	const char *name;
	rva_mechanism mech;
	size_t heads, kvh, D, nq, nk;
	bool causal, top_left, window;
	size_t wl, wr;
	float softcap;
	int alibi;           /* 0 off, 1 default slopes, 2 given slopes */
	int bias, mask;      /* SM_* */
	size_t block, qblock, kv_split;
} tcase;

typedef struct data {
	float *q, *k, *v, *out, *bias;
	uint8_t *mask;
	size_t bias_s, bias_hs, mask_s, mask_hs;
	float slopes[64];
} data;

static rva_config config_of(const tcase *t, const data *d) {
	rva_config c = rva_config_defaults(t->heads * t->D);
	c.mechanism = t->mech;
	c.heads = t->heads;
	c.kv_heads = t->kvh;
	c.causal = t->causal;
	c.causal_align = t->top_left ? RVA_CAUSAL_TOP_LEFT : RVA_CAUSAL_BOTTOM_RIGHT;
	c.sliding_window = t->window;
	c.window_left = t->window ? t->wl : 0;
	c.window_right = t->window ? t->wr : 0;
	c.softcap = t->softcap;
	c.alibi = t->alibi != 0;
	c.alibi_slopes = t->alibi == 2 ? d->slopes : NULL;
	c.block_size = t->block;
	c.query_block = t->qblock;
	c.kv_split = t->kv_split;
	if (t->mech == RVA_MECH_LOCAL_GLOBAL) {
		c.window = 6;
		c.global_tokens = 1;
	}
	return c;
}

static void make_data(const tcase *t, data *d, uint64_t seed) {
	size_t dim = t->heads * t->D, kvd = t->kvh * t->D;
	memset(d, 0, sizeof *d);
	d->q = ref_alloc(t->nq * dim);
	d->k = ref_alloc(t->nk * kvd);
	d->v = ref_alloc(t->nk * kvd);
	d->out = ref_alloc(t->nq * dim);
	ref_fill_uniform(d->q, t->nq * dim, -1.5f, 1.5f, seed);
	ref_fill_uniform(d->k, t->nk * kvd, -1.5f, 1.5f, seed + 1);
	ref_fill_uniform(d->v, t->nk * kvd, -1.0f, 1.0f, seed + 2);
	for (size_t h = 0; h < t->heads && h < 64; h++)
		d->slopes[h] = 0.05f + 0.11f * (float)((h * 5) % 7);
	if (t->bias) {
		/* padded rows (stride nk + 3) and, per head, padded matrices */
		d->bias_s = t->nk + 3;
		d->bias_hs = t->bias == SM_HEADS ? t->nq * d->bias_s + 5 : 0;
		size_t n = (t->bias == SM_HEADS ? t->heads : 1) * (t->nq * d->bias_s + 5);
		d->bias = ref_alloc(n);
		ref_fill_uniform(d->bias, n, -2.0f, 2.0f, seed + 3);
		for (size_t i = 0; i < n; i += 13)
			d->bias[i] = -INFINITY; /* -inf hides the pair */
	}
	if (t->mask) {
		d->mask_s = t->nk + 1;
		d->mask_hs = t->mask == SM_HEADS ? t->nq * d->mask_s + 2 : 0;
		size_t n = (t->mask == SM_HEADS ? t->heads : 1) * (t->nq * d->mask_s + 2);
		d->mask = malloc(n);
		uint64_t x = seed * 2654435761u + 1;
		for (size_t i = 0; i < n; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			d->mask[i] = (x >> 60) >= 3; /* about 3 in 16 hidden */
		}
	}
}

static void free_data(data *d) {
	free(d->q);
	free(d->k);
	free(d->v);
	free(d->out);
	free(d->bias);
	free(d->mask);
}

static rva_seq seq_of(const tcase *t, const data *d) {
	return (rva_seq){.nq = t->nq, .nk = t->nk, .q = d->q, .k = d->k, .v = d->v, .out = d->out,
	                 .bias = d->bias, .bias_stride = d->bias_s, .bias_head_stride = d->bias_hs,
	                 .mask = d->mask, .mask_stride = d->mask_s, .mask_head_stride = d->mask_hs};
}

static void oracle(const tcase *t, const data *d, double *want) {
	double slopes[64];
	if (t->alibi == 1)
		ref_alibi_slopes(t->heads, slopes);
	else
		for (size_t h = 0; h < t->heads && h < 64; h++)
			slopes[h] = d->slopes[h];
	ref_attn_spec sp = {.heads = t->heads, .kv_heads = t->kvh, .head_dim = t->D,
	                    .scale = 1.0 / sqrt((double)t->D), .causal = t->causal,
	                    .top_left = t->top_left, .sliding = t->window, .window_left = t->wl,
	                    .window_right = t->wr, .softcap = t->softcap,
	                    .alibi = t->alibi ? slopes : NULL, .bias = d->bias,
	                    .bias_s = d->bias_s, .bias_hs = d->bias_hs, .smask = d->mask,
	                    .smask_s = d->mask_s, .smask_hs = d->mask_hs};
	size_t g = 0;
	if (t->mech == RVA_MECH_LOCAL_GLOBAL) {
		sp.pattern = REF_LOCAL_GLOBAL;
		sp.window = 6;
		sp.globals = &g;
		sp.nglobals = 1;
	}
	size_t dim = t->heads * t->D, kvd = t->kvh * t->D;
	ref_attention(&sp, t->nq, t->nk, d->q, dim, d->k, kvd, d->v, kvd, NULL, want);
}

static uint64_t run_engine(const rva_attention *att, const rva_seq *s, unsigned threads) {
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = threads;
	ec.spin_us = 0;
	rva_engine *e = NULL;
	cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK, "engine: %s", rva_last_error());
	rva_batch b = {1, s};
	rva_job_stats js;
	memset(&js, 0, sizeof js);
	cr_assert_eq(rva_engine_run(e, att, &b, NULL, NULL, &js), RVA_OK, "run: %s",
	             rva_last_error());
	rva_engine_destroy(e);
	return js.tasks;
}

/* The case against the oracle; serial, 1 and 2 threads (and rva_compute_ex for one query)
 * bit-identical. Returns the engine's task count. */
static uint64_t check_case(const tcase *t, uint64_t seed) {
	data d;
	make_data(t, &d, seed);
	rva_config c = config_of(t, &d);
	rva_attention *att = NULL;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s: build: %s", t->name, rva_last_error());
	rva_seq s = seq_of(t, &d);
	size_t n = t->nq * t->heads * t->D;
	rva_batch b = {1, &s};
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK, "%s: %s", t->name,
	             rva_last_error());
	double *want = ref_alloc_d(n);
	oracle(t, &d, want);
	double e = ref_err_ratio(d.out, want, n, ATOL, RTOL);
	cr_assert(e <= 1.0, "%s: error ratio %g against the oracle", t->name, e);
	float *serial = malloc(n * sizeof *serial);
	memcpy(serial, d.out, n * sizeof *serial);
	uint64_t tasks = 0;
	for (unsigned th = 1; th <= 2; th++) {
		memset(d.out, 0, n * sizeof *d.out);
		tasks = run_engine(att, &s, th);
		cr_assert(memcmp(serial, d.out, n * sizeof *serial) == 0,
		          "%s: engine with %u threads differs from the serial run", t->name, th);
	}
	if (t->nq == 1 && !t->bias && !t->mask) {
		size_t kvd = t->kvh * t->D;
		const float **kr = malloc(t->nk * sizeof *kr), **vr = malloc(t->nk * sizeof *vr);
		for (size_t j = 0; j < t->nk; j++) {
			kr[j] = d.k + j * kvd;
			vr[j] = d.v + j * kvd;
		}
		memset(d.out, 0, n * sizeof *d.out);
		cr_assert_eq(rva_compute_ex(att, d.q, kr, vr, NULL, t->nk, d.out, NULL), RVA_OK,
		             "%s: rva_compute_ex: %s", t->name, rva_last_error());
		cr_assert(memcmp(serial, d.out, n * sizeof *serial) == 0,
		          "%s: rva_compute_ex differs from the batch", t->name);
		memset(d.out, 0, n * sizeof *d.out);
		cr_assert_eq(rva_compute(att, d.q, kr, vr, t->nk, d.out), RVA_OK,
		             "%s: rva_compute: %s", t->name, rva_last_error());
		cr_assert(memcmp(serial, d.out, n * sizeof *serial) == 0,
		          "%s: rva_compute differs from the batch", t->name);
		free(kr);
		free(vr);
	}
	free(serial);
	free(want);
	rva_attention_release(att);
	free_data(&d);
	return tasks;
}

#define FL RVA_MECH_FLASH
#define MH RVA_MECH_MULTI_HEAD
#define SD RVA_MECH_SCALED_DOT
#define LG RVA_MECH_LOCAL_GLOBAL

static const tcase cases[] = {
	/* name                       mech h kvh D  nq  nk  causal top win wl wr cap alibi bias mask blk qb split */
	{"causal top-left nq<nk",       FL, 4, 2, 64, 37, 90, true, true, false, 0, 0, 0, 0, 0, 0, 16, 16, 0},
	{"causal top-left nq>nk",       FL, 4, 2, 64, 90, 37, true, true, false, 0, 0, 0, 0, 0, 0, 16, 16, 0},
	{"causal bottom-right nq>nk",   MH, 4, 4, 80, 50, 33, true, false, false, 0, 0, 0, 0, 0, 0, 16, 16, 0},
	{"top-left, no causal (T5-free positions)", FL, 2, 2, 3, 20, 31, false, true, false, 0, 0, 0, 1, 0, 0, 8, 8, 0},
	{"window 5/2 not causal",       FL, 4, 2, 64, 70, 70, false, false, true, 5, 2, 0, 0, 0, 0, 16, 16, 0},
	{"window 0/0",                  FL, 2, 1, 64, 40, 40, false, false, true, 0, 0, 0, 0, 0, 0, 8, 8, 0},
	{"window 9 causal bottom-right nq<nk", FL, 4, 1, 80, 33, 100, true, false, true, 9, 0, 0, 0, 0, 0, 16, 16, 0},
	{"window 9/3 causal top-left",  FL, 4, 2, 64, 60, 100, true, true, true, 9, 3, 0, 0, 0, 0, 16, 16, 0},
	{"window left unbounded",       MH, 2, 2, 64, 45, 45, false, false, true, SIZE_MAX, 4, 0, 0, 0, 0, 16, 16, 0},
	{"window right unbounded",      SD, 1, 1, 64, 45, 50, false, true, true, 3, SIZE_MAX, 0, 0, 0, 0, 16, 16, 0},
	{"window over long keys",       FL, 2, 2, 64, 64, 1000, true, false, true, 100, 0, 0, 0, 0, 0, 32, 32, 0},
	{"softcap 5",                   FL, 4, 2, 64, 50, 70, true, false, false, 0, 0, 5.0f, 0, 0, 0, 16, 16, 0},
	{"softcap 0.7 d3",              MH, 3, 3, 3, 17, 29, false, false, false, 0, 0, 0.7f, 0, 0, 0, 8, 8, 0},
	{"alibi default 8 heads",       FL, 8, 8, 64, 40, 60, true, false, false, 0, 0, 0, 1, 0, 0, 16, 16, 0},
	{"alibi default 6 heads (not a power of two)", FL, 6, 3, 64, 40, 40, false, false, false, 0, 0, 0, 1, 0, 0, 16, 16, 0},
	{"alibi given, top-left",       MH, 4, 2, 80, 30, 45, true, true, false, 0, 0, 0, 2, 0, 0, 16, 16, 0},
	{"bias broadcast",              FL, 4, 2, 64, 33, 47, false, false, false, 0, 0, 0, 0, SM_BCAST, 0, 16, 16, 0},
	{"bias per head causal",        FL, 4, 2, 80, 47, 33, true, false, false, 0, 0, 0, 0, SM_HEADS, 0, 16, 16, 0},
	{"mask broadcast",              MH, 4, 4, 64, 33, 47, false, false, false, 0, 0, 0, 0, 0, SM_BCAST, 16, 16, 0},
	{"mask per head d3",            FL, 2, 1, 3, 25, 64, true, true, false, 0, 0, 0, 0, 0, SM_HEADS, 8, 8, 0},
	{"all combined",                FL, 6, 2, 64, 70, 90, true, true, true, 20, 0, 8.0f, 1, SM_HEADS, SM_BCAST, 16, 16, 0},
	{"all combined d80 bottom-right", MH, 4, 4, 80, 31, 77, true, false, true, 13, 2, 3.0f, 2, SM_BCAST, SM_HEADS, 16, 16, 0},
	{"local_global + softcap + alibi + bias", LG, 4, 2, 64, 40, 40, false, false, false, 0, 0, 6.0f, 1, SM_BCAST, 0, 16, 16, 0},
	{"local_global + window top-left", LG, 2, 2, 64, 30, 50, true, true, true, 4, 0, 0, 0, 0, SM_BCAST, 16, 16, 0},
	/* decode: one query and few queries, long keys, split-KV */
	{"decode window",               FL, 8, 2, 64, 1, 5000, true, false, true, 700, 0, 0, 0, 0, 0, 128, 64, 512},
	{"decode all combined",         FL, 8, 2, 64, 1, 3000, true, false, true, 1000, 0, 30.0f, 1, SM_HEADS, SM_BCAST, 128, 64, 256},
	{"decode 3 queries top-left",   FL, 4, 4, 80, 3, 2000, true, true, true, 2, 40, 4.0f, 2, SM_BCAST, SM_HEADS, 128, 64, 256},
	{"decode d3 softcap alibi",     FL, 4, 1, 3, 2, 1500, false, false, false, 0, 0, 2.0f, 1, 0, 0, 128, 64, 0},
	{"decode automatic split, window", FL, 12, 12, 64, 1, 20000, true, false, true, 4095, 0, 50.0f, 1, 0, 0, 128, 64, 0},
};

Test(ops_scores, oracle_all_paths, .timeout = 600) {
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		check_case(&cases[i], 100 + 7 * i);
}

/* Split-KV chunks wholly outside the window are not planned: with a window of 700 keys
 * over 5000, far fewer chunk tasks than without. */
Test(ops_scores, window_chunks_not_planned, .timeout = 120) {
	tcase t = cases[24];
	cr_assert_str_eq(t.name, "decode window");
	uint64_t with = check_case(&t, 3);
	t.window = false;
	t.wl = 0;
	uint64_t without = check_case(&t, 3);
	/* 10 chunks of 512 keys: the window's 701 keys [4298, 4999] touch the last 2; 8
	 * chunks fewer (decode tasks: one per chunk; RVATTN_ATTN_KERNEL=blis: one per chunk
	 * and head, 8 heads) */
	cr_assert(without > with && (without - with == 8 || without - with == 64),
	          "tasks: %llu without the window, %llu with it", (unsigned long long)without,
	          (unsigned long long)with);
}

/* Tiles outside the window are never computed: NaN keys and values there do not reach
 * the output (a computed tile would carry NaN into the scores or P.V even when masked). */
Test(ops_scores, window_tiles_skipped) {
	const size_t H = 2, D = 64, N = 512, dim = H * D;
	for (int decode = 0; decode < 2; decode++) {
		size_t nq = decode ? 1 : N;
		float *q = ref_alloc(nq * dim), *k = ref_alloc(N * dim), *v = ref_alloc(N * dim);
		float *out = ref_alloc(nq * dim);
		ref_fill_uniform(q, nq * dim, -1.0f, 1.0f, 1);
		ref_fill_uniform(k, N * dim, -1.0f, 1.0f, 2);
		ref_fill_uniform(v, N * dim, -1.0f, 1.0f, 3);
		/* keys [0, 256) hold NaN: outside every window of the last 64 queries (window 63
		 * left, causal), and of the single decode query */
		for (size_t i = 0; i < 256 * dim; i++)
			k[i] = v[i] = NAN;
		rva_config c = rva_flash(dim, 64);
		c.heads = H;
		c.causal = true;
		c.sliding_window = true;
		c.window_left = 63;
		rva_attention *att = NULL;
		cr_assert_eq(rva_build(&c, &att), RVA_OK);
		rva_seq s = {.nq = nq, .nk = N, .q = q, .k = k, .v = v, .out = out};
		rva_batch b = {1, &s};
		cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
		size_t first = decode ? 0 : N - 64; /* rows whose window lies past key 256 */
		for (size_t i = first * dim; i < nq * dim; i++)
			cr_assert(isfinite(out[i]), "decode %d: out[%zu] = %g", decode, i, (double)out[i]);
		rva_attention_release(att);
		free(q);
		free(k);
		free(v);
		free(out);
	}
}

/* The paper's default slopes: 8 heads 1/2 ... 1/256; 6 heads: the 4-head slopes then
 * every other of the 8-head ones. rva_attention_config returns them. */
Test(ops_scores, alibi_default_slopes) {
	size_t counts[] = {1, 6, 8, 12, 16};
	for (size_t t = 0; t < sizeof counts / sizeof counts[0]; t++) {
		size_t H = counts[t];
		rva_config c = rva_multi_head(H * 8, H);
		c.alibi = true;
		rva_attention *att = NULL;
		cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s", rva_last_error());
		rva_config r;
		cr_assert_eq(rva_attention_config(att, &r), RVA_OK);
		double want[64];
		ref_alibi_slopes(H, want);
		cr_assert_not_null(r.alibi_slopes);
		for (size_t h = 0; h < H; h++)
			cr_assert_float_eq(r.alibi_slopes[h], want[h], 1e-7 * want[h], "H %zu h %zu", H, h);
		rva_attention_release(att);
	}
	double s8[8], s6[6];
	ref_alibi_slopes(8, s8);
	ref_alibi_slopes(6, s6);
	cr_assert_float_eq(s8[0], 0.5, 1e-15);
	cr_assert_float_eq(s8[7], 1.0 / 256, 1e-15);
	cr_assert_float_eq(s6[3], 1.0 / 256, 1e-15); /* 4-head slopes 1/4 ... 1/256 */
	cr_assert_float_eq(s6[4], 1.0 / 2, 1e-15);   /* then 8-head slopes 0 and 2 */
	cr_assert_float_eq(s6[5], 1.0 / 8, 1e-15);
}

/* Paged K/V (rva_kv_cache_run): the config's modifiers (alignment, window, softcap,
 * ALiBi; a step carries no bias or mask) over streams cut into pages, bit-identical to
 * the same attention over contiguous K/V on the engine and within the oracle's
 * tolerance: a decode step, a few-query step and a 130-query prefill over 1000 keys,
 * forced split-KV chunks in one variant. */
Test(ops_scores, paged_kv_cache, .timeout = 300) {
	enum { PH = 4, PKV = 2, PD = 64, NSTR = 3 };
	const size_t dim = PH * PD, kvd = PKV * PD;
	const size_t len[NSTR] = {700, 300, 1000}, nqs[NSTR] = {1, 37, 130};
	static const tcase variants[] = {
		{"paged: causal window 100 softcap 20 alibi", FL, PH, PKV, PD, 0, 0, true, false, true, 100, 0, 20.0f, 1, 0, 0, 64, 64, 0},
		{"paged: top-left window 50/10 softcap 5 alibi given", FL, PH, PKV, PD, 0, 0, true, true, true, 50, 10, 5.0f, 2, 0, 0, 32, 32, 0},
		{"paged: bidirectional window 30/30 split-KV 128", MH, PH, PKV, PD, 0, 0, false, false, true, 30, 30, 0, 1, 0, 0, 64, 64, 128},
	};
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 2;
	ec.spin_us = 0;
	rva_engine *e = NULL;
	cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK, "%s", rva_last_error());
	rva_kv_cache_config cfg = {.kv_heads = PKV, .head_dim = PD, .page_tokens = 16,
	                           .pages = 200, .max_seqs = 4, .dtype = RVA_F32};
	rva_kv_cache *cache = NULL;
	cr_assert_eq(rva_kv_cache_create(e, &cfg, &cache), RVA_OK, "%s", rva_last_error());
	float *k[NSTR], *v[NSTR], *q[NSTR], *paged[NSTR], *contig[NSTR];
	uint64_t id[NSTR];
	for (int s = 0; s < NSTR; s++) {
		k[s] = ref_alloc(len[s] * kvd);
		v[s] = ref_alloc(len[s] * kvd);
		q[s] = ref_alloc(nqs[s] * dim);
		paged[s] = ref_alloc(nqs[s] * dim);
		contig[s] = ref_alloc(nqs[s] * dim);
		ref_fill_uniform(k[s], len[s] * kvd, -1.5f, 1.5f, 40 + 3 * s);
		ref_fill_uniform(v[s], len[s] * kvd, -1.0f, 1.0f, 41 + 3 * s);
		ref_fill_uniform(q[s], nqs[s] * dim, -1.5f, 1.5f, 42 + 3 * s);
		cr_assert_eq(rva_kv_cache_seq_new(cache, &id[s]), RVA_OK);
		for (size_t r = 0; r < len[s]; r += 77) /* uneven appends across pages */
			cr_assert_eq(rva_kv_cache_append(cache, id[s], k[s] + r * kvd, 0, v[s] + r * kvd, 0,
			                                 len[s] - r < 77 ? len[s] - r : 77),
			             RVA_OK, "%s", rva_last_error());
	}
	for (size_t vi = 0; vi < sizeof variants / sizeof variants[0]; vi++) {
		const tcase *t = &variants[vi];
		data d;
		memset(&d, 0, sizeof d);
		for (size_t h = 0; h < PH; h++)
			d.slopes[h] = 0.05f + 0.11f * (float)((h * 5) % 7);
		rva_config c = config_of(t, &d);
		rva_attention *att = NULL;
		cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s: %s", t->name, rva_last_error());
		rva_kv_step st[NSTR];
		rva_seq seqs[NSTR];
		memset(st, 0, sizeof st);
		memset(seqs, 0, sizeof seqs);
		for (int s = 0; s < NSTR; s++) {
			st[s] = (rva_kv_step){.seq = id[s], .nq = nqs[s], .q = q[s], .out = paged[s]};
			seqs[s] = (rva_seq){.nq = nqs[s], .nk = len[s], .q = q[s], .k = k[s], .v = v[s],
			                    .out = contig[s]};
		}
		rva_status ss[NSTR];
		cr_assert_eq(rva_kv_cache_run(e, cache, att, st, NSTR, NULL, ss, NULL), RVA_OK,
		             "%s: %s", t->name, rva_last_error());
		rva_batch b = {NSTR, seqs};
		cr_assert_eq(rva_engine_run(e, att, &b, NULL, NULL, NULL), RVA_OK, "%s: %s", t->name,
		             rva_last_error());
		for (int s = 0; s < NSTR; s++) {
			cr_assert(memcmp(paged[s], contig[s], nqs[s] * dim * sizeof(float)) == 0,
			          "%s: stream %d (%zu x %zu) paged differs from contiguous", t->name, s,
			          nqs[s], len[s]);
			tcase ts = *t;
			ts.nq = nqs[s];
			ts.nk = len[s];
			data ds = d;
			ds.q = q[s];
			ds.k = k[s];
			ds.v = v[s];
			double *want = ref_alloc_d(nqs[s] * dim);
			oracle(&ts, &ds, want);
			double err = ref_err_ratio(paged[s], want, nqs[s] * dim, ATOL, RTOL);
			cr_assert(err <= 1.0, "%s: stream %d: error ratio %g against the oracle", t->name,
			          s, err);
			free(want);
		}
		rva_attention_release(att);
	}
	for (int s = 0; s < NSTR; s++) {
		free(k[s]);
		free(v[s]);
		free(q[s]);
		free(paged[s]);
		free(contig[s]);
	}
	cr_assert_eq(rva_kv_cache_destroy(cache), RVA_OK);
	rva_engine_destroy(e);
}

/* bf16 K and V (the vdpbf16ps tiles on AVX-512, where the softcap runs as its own pass
 * over the stored scores, and the decode kernels): every modifier together against the
 * oracle on the bf16 values, within bf16's tolerance (P is rounded to bf16 for a bf16 V);
 * a softcap of 4 or a mask left out moves the output far beyond it. */
Test(ops_scores, bf16_kv_all_modifiers, .timeout = 120) {
	const tcase cs[] = {
		{"bf16 prefill all combined", FL, 4, 2, 64, 70, 90, true, true, true, 20, 3, 4.0f, 1, SM_HEADS, SM_BCAST, 32, 64, 0},
		{"bf16 decode all combined", FL, 4, 2, 64, 1, 700, true, false, true, 300, 0, 4.0f, 2, SM_BCAST, SM_HEADS, 128, 64, 128},
	};
	for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
		const tcase *t = &cs[ci];
		data d;
		make_data(t, &d, 900 + ci);
		size_t kvn = t->nk * t->kvh * t->D, n = t->nq * t->heads * t->D;
		uint16_t *kb = malloc(kvn * 2), *vb = malloc(kvn * 2);
		cr_assert_eq(rva_convert(RVA_BF16, kb, RVA_F32, d.k, kvn), RVA_OK);
		cr_assert_eq(rva_convert(RVA_BF16, vb, RVA_F32, d.v, kvn), RVA_OK);
		cr_assert_eq(rva_convert(RVA_F32, d.k, RVA_BF16, kb, kvn), RVA_OK); /* oracle's input */
		cr_assert_eq(rva_convert(RVA_F32, d.v, RVA_BF16, vb, kvn), RVA_OK);
		rva_config c = config_of(t, &d);
		rva_attention *att = NULL;
		cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s: %s", t->name, rva_last_error());
		rva_seq s = seq_of(t, &d);
		s.k = kb;
		s.v = vb;
		s.k_dtype = s.v_dtype = RVA_BF16;
		rva_batch b = {1, &s};
		cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK, "%s: %s", t->name,
		             rva_last_error());
		double *want = ref_alloc_d(n);
		oracle(t, &d, want);
		double e = ref_err_ratio(d.out, want, n, 2e-2, 2e-2);
		cr_assert(e <= 1.0, "%s: error ratio %g against the oracle", t->name, e);
		/* the same without the softcap is far off: the check sees the modifier */
		tcase u = *t;
		u.softcap = 0.0f;
		double *other = ref_alloc_d(n);
		oracle(&u, &d, other);
		cr_assert(ref_err_ratio(d.out, other, n, 2e-2, 2e-2) > 1.0,
		          "%s: the output does not depend on the softcap", t->name);
		free(other);
		free(want);
		free(kb);
		free(vb);
		rva_attention_release(att);
		free_data(&d);
	}
}

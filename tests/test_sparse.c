/*
 * Sparse patterns in their block-sparse form (src/attention/pattern.h, rva__pattern_band;
 * docs/ARCHITECTURE.md "Sparse patterns"): local-global with spread and leading global
 * tokens (global rows as their own tasks, global keys gathered), the Sparse Transformer
 * strided pattern (keys gathered per residue) and fixed pattern (summaries gathered),
 * alone and with the score modifiers (causal alignment, sliding window, softcap, ALiBi,
 * the sequence's bias and mask, key_mask, T5), against the float64 oracle
 * (tests/ref/ref_softmax.h). Every case runs serially (rva_compute_batch) and on engines
 * of 1 and 2 threads: bit-identical; cases without a sequence bias or mask, key mask or
 * top-left alignment and with nq <= nk also over paged K/V (rva_kv_cache, pages of 16
 * rows): bit-identical to contiguous K/V. Few-query cases run the decode path.
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

enum { P_LG_LIST, P_LG_FIRST, P_STRIDED, P_FIXED };

typedef struct tcase {
	const char *name;
	int pat;
	size_t heads, kvh, D, nq, nk;
	bool causal, top_left;  /* causal: local-global only (the others imply it) */
	size_t w;               /* local-global window, or l */
	size_t c;               /* fixed summary, or local-global leading global count */
	bool window;
	size_t wl, wr;
	float softcap;
	bool alibi, bias, mask, key_mask, t5;
	size_t block, qblock;
} tcase;

/* spread global positions (those beyond a sequence are ignored for it) */
static const size_t globals[] = {0, 5, 77, 78, 130, 250, 251, 252, 600, 1999, 5000};

typedef struct data {
	float *q, *k, *v, *out, *bias;
	uint8_t *mask, *key_mask;
	size_t bias_s, mask_s;
} data;

static rva_config config_of(const tcase *t) {
	rva_config c = rva_config_defaults(t->heads * t->D);
	c.mechanism = t->pat <= P_LG_FIRST ? RVA_MECH_LOCAL_GLOBAL : RVA_MECH_FLASH;
	c.heads = t->heads;
	c.kv_heads = t->kvh;
	c.causal = t->causal;
	c.causal_align = t->top_left ? RVA_CAUSAL_TOP_LEFT : RVA_CAUSAL_BOTTOM_RIGHT;
	c.sliding_window = t->window;
	c.window_left = t->window ? t->wl : 0;
	c.window_right = t->window ? t->wr : 0;
	c.softcap = t->softcap;
	c.alibi = t->alibi;
	c.block_size = t->block;
	c.query_block = t->qblock;
	if (t->t5) {
		c.bias = RVA_BIAS_T5;
		c.bias_buckets = 8;
		c.bias_max_distance = 40;
	}
	switch (t->pat) {
	case P_LG_LIST:
		c.window = t->w;
		c.global_indices = globals;
		c.n_global_indices = sizeof globals / sizeof globals[0];
		break;
	case P_LG_FIRST:
		c.window = t->w;
		c.global_tokens = t->c;
		break;
	case P_STRIDED:
		c.pattern = RVA_PATTERN_STRIDED;
		c.sparse_stride = t->w;
		break;
	default:
		c.pattern = RVA_PATTERN_FIXED;
		c.sparse_stride = t->w;
		c.sparse_summary = t->c;
		break;
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
	if (t->bias) {
		d->bias_s = t->nk + 3;
		size_t n = t->nq * d->bias_s;
		d->bias = ref_alloc(n);
		ref_fill_uniform(d->bias, n, -2.0f, 2.0f, seed + 3);
	}
	if (t->mask) {
		d->mask_s = t->nk + 1;
		size_t n = t->nq * d->mask_s;
		d->mask = malloc(n);
		uint64_t x = seed * 2654435761u + 1;
		for (size_t i = 0; i < n; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			d->mask[i] = (x >> 60) >= 3;
		}
	}
	if (t->key_mask) {
		d->key_mask = malloc(t->nk);
		for (size_t j = 0; j < t->nk; j++)
			d->key_mask[j] = (j * 7 + seed) % 5 != 0;
	}
}

static void free_data(data *d) {
	free(d->q);
	free(d->k);
	free(d->v);
	free(d->out);
	free(d->bias);
	free(d->mask);
	free(d->key_mask);
}

static rva_seq seq_of(const tcase *t, const data *d) {
	return (rva_seq){.nq = t->nq, .nk = t->nk, .q = d->q, .k = d->k, .v = d->v, .out = d->out,
	                 .key_mask = d->key_mask, .bias = d->bias, .bias_stride = d->bias_s,
	                 .mask = d->mask, .mask_stride = d->mask_s};
}

static void oracle(const tcase *t, const data *d, const rva_attention *att, double *want) {
	double slopes[64];
	ref_alibi_slopes(t->heads, slopes);
	ref_attn_spec sp = {.heads = t->heads, .kv_heads = t->kvh, .head_dim = t->D,
	                    .scale = 1.0 / sqrt((double)t->D), .causal = t->causal || t->pat >= P_STRIDED,
	                    .top_left = t->top_left, .sliding = t->window, .window_left = t->wl,
	                    .window_right = t->wr, .softcap = t->softcap,
	                    .alibi = t->alibi ? slopes : NULL, .bias = d->bias, .bias_s = d->bias_s,
	                    .smask = d->mask, .smask_s = d->mask_s};
	size_t first[4096];
	switch (t->pat) {
	case P_LG_LIST:
		sp.pattern = REF_LOCAL_GLOBAL;
		sp.window = t->w;
		sp.globals = globals;
		sp.nglobals = sizeof globals / sizeof globals[0];
		break;
	case P_LG_FIRST:
		sp.pattern = REF_LOCAL_GLOBAL;
		sp.window = t->w;
		cr_assert(t->c <= 4096);
		for (size_t g = 0; g < t->c; g++)
			first[g] = g;
		sp.globals = first;
		sp.nglobals = t->c;
		break;
	case P_STRIDED:
		sp.pattern = REF_STRIDED;
		sp.stride = t->w;
		break;
	default:
		sp.pattern = REF_FIXED;
		sp.stride = t->w;
		sp.summary = t->c;
		break;
	}
	if (t->t5) {
		const float *table = NULL;
		size_t nb = 0, nh = 0;
		cr_assert_eq(rva_attention_bias_table(att, &table, &nb, &nh), RVA_OK);
		sp.t5_table = table;
		sp.t5_buckets = nb;
		sp.t5_max_distance = 40;
	}
	size_t dim = t->heads * t->D, kvd = t->kvh * t->D;
	ref_attention(&sp, t->nq, t->nk, d->q, dim, d->k, kvd, d->v, kvd, d->key_mask, want);
}

static rva_engine *engine(unsigned threads) {
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = threads;
	ec.spin_us = 0;
	rva_engine *e = NULL;
	cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK, "engine: %s", rva_last_error());
	return e;
}

/* The sequence through a K/V cache of 16-row pages on engine e (fp32). */
static void run_paged(rva_engine *e, const rva_attention *att, const tcase *t, const data *d) {
	rva_kv_cache_config kc = {.kv_heads = t->kvh, .head_dim = t->D, .page_tokens = 16,
	                          .pages = t->nk / 16 + 8};
	rva_kv_cache *kv = NULL;
	uint64_t id;
	cr_assert_eq(rva_kv_cache_create(e, &kc, &kv), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_kv_cache_seq_new(kv, &id), RVA_OK, "%s", rva_last_error());
	size_t kvd = t->kvh * t->D;
	cr_assert_eq(rva_kv_cache_append(kv, id, d->k, kvd, d->v, kvd, t->nk), RVA_OK, "%s",
	             rva_last_error());
	rva_kv_step step = {.seq = id, .nq = t->nq, .q = d->q, .out = d->out};
	cr_assert_eq(rva_kv_cache_run(e, kv, att, &step, 1, NULL, NULL, NULL), RVA_OK, "%s: %s",
	             t->name, rva_last_error());
	cr_assert_eq(rva_kv_cache_destroy(kv), RVA_OK);
}

static void check_case(const tcase *t, uint64_t seed) {
	data d;
	make_data(t, &d, seed);
	rva_config c = config_of(t);
	rva_attention *att = NULL;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s: build: %s", t->name, rva_last_error());
	rva_seq s = seq_of(t, &d);
	size_t n = t->nq * t->heads * t->D;
	rva_batch b = {1, &s};
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK, "%s: %s", t->name,
	             rva_last_error());
	double *want = ref_alloc_d(n);
	oracle(t, &d, att, want);
	double e = ref_err_ratio(d.out, want, n, ATOL, RTOL);
	cr_assert(e <= 1.0, "%s: error ratio %g against the oracle", t->name, e);
	float *serial = malloc(n * sizeof *serial);
	memcpy(serial, d.out, n * sizeof *serial);
	for (unsigned th = 1; th <= 2; th++) {
		rva_engine *en = engine(th);
		memset(d.out, 0, n * sizeof *d.out);
		cr_assert_eq(rva_engine_run(en, att, &b, NULL, NULL, NULL), RVA_OK, "%s", rva_last_error());
		cr_assert(memcmp(serial, d.out, n * sizeof *serial) == 0,
		          "%s: engine with %u threads differs from the serial run", t->name, th);
		if (!t->bias && !t->mask && !t->key_mask && !t->top_left && t->nq <= t->nk) {
			memset(d.out, 0, n * sizeof *d.out);
			run_paged(en, att, t, &d);
			cr_assert(memcmp(serial, d.out, n * sizeof *serial) == 0,
			          "%s: paged K/V with %u threads differs from contiguous", t->name, th);
		}
		rva_engine_destroy(en);
	}
	free(serial);
	free(want);
	rva_attention_release(att);
	free_data(&d);
}

#define LGL P_LG_LIST
#define LGF P_LG_FIRST
#define STR P_STRIDED
#define FIX P_FIXED

static const tcase cases[] = {
	/* name                          pat  h kvh D  nq   nk  causal top  w   c  win wl wr cap alibi bias mask kmask t5 blk qb */
	{"lg spread globals",            LGL, 4, 2, 64, 700, 700, false, false, 16, 0, false, 0, 0, 0, false, false, false, false, false, 32, 32},
	{"lg spread globals causal",     LGL, 4, 4, 64, 700, 700, true, false, 16, 0, false, 0, 0, 0, false, false, false, false, false, 32, 32},
	{"lg globals causal nq<nk",      LGL, 2, 1, 80, 300, 700, true, false, 24, 0, false, 0, 0, 0, false, false, false, false, false, 64, 16},
	{"lg globals nq>nk d3",          LGL, 3, 3, 3, 90, 260, false, false, 6, 0, false, 0, 0, 0, false, false, false, false, false, 16, 16},
	{"lg leading 40 globals",        LGF, 4, 2, 64, 500, 500, false, false, 30, 40, false, 0, 0, 0, false, false, false, false, false, 32, 32},
	{"lg leading 70 globals causal", LGF, 2, 2, 64, 333, 333, true, false, 10, 70, false, 0, 0, 0, false, false, false, false, false, 32, 64},
	{"lg all global",                LGF, 2, 2, 64, 120, 120, false, false, 4, 1000, false, 0, 0, 0, false, false, false, false, false, 32, 32},
	{"lg + mods",                    LGL, 4, 2, 64, 400, 400, true, true, 20, 0, true, 50, 0, 6.0f, true, true, true, true, false, 32, 32},
	{"lg + bias + t5 non-causal",    LGL, 4, 4, 64, 300, 300, false, false, 12, 0, false, 0, 0, 0, false, true, false, false, true, 32, 32},
	{"lg decode",                    LGL, 8, 2, 64, 1, 3000, true, false, 256, 0, false, 0, 0, 0, false, false, false, false, false, 128, 64},
	{"strided l8",                   STR, 4, 2, 64, 300, 300, false, false, 8, 0, false, 0, 0, 0, false, false, false, false, false, 32, 32},
	{"strided l16 nq<nk",            STR, 2, 1, 80, 200, 517, false, false, 16, 0, false, 0, 0, 0, false, false, false, false, false, 32, 16},
	{"strided l50 top-left nq<nk",   STR, 2, 2, 64, 400, 450, false, true, 50, 0, false, 0, 0, 0, false, false, false, false, false, 64, 32},
	{"strided l7 d3 nq>nk",          STR, 3, 1, 3, 120, 100, false, false, 7, 0, false, 0, 0, 0, false, false, false, false, false, 16, 16},
	{"strided l9 softcap alibi t5",  STR, 4, 2, 64, 260, 260, false, false, 9, 0, false, 0, 0, 4.0f, true, false, false, true, true, 32, 32},
	{"strided l12 window",           STR, 2, 2, 64, 300, 300, false, false, 12, 0, true, 40, 0, 0, false, false, false, false, false, 32, 32},
	{"strided l10 bias mask",        STR, 2, 2, 64, 150, 150, false, false, 10, 0, false, 0, 0, 0, false, true, true, false, false, 32, 32},
	/* a residue's keys beyond one gather (task_strided: 512 keys at D 64 + 64) */
	{"strided l2 two key gathers",   STR, 2, 1, 64, 1100, 1300, false, false, 2, 0, false, 0, 0, 0, false, false, false, false, false, 32, 32},
	{"strided l3 two gathers kmask", STR, 2, 2, 64, 1700, 1700, false, true, 3, 0, false, 0, 0, 2.5f, false, false, false, true, false, 128, 64},
	{"strided l2048 (band only)",    STR, 2, 2, 64, 100, 100, false, false, 2048, 0, false, 0, 0, 0, false, false, false, false, false, 32, 32},
	{"strided decode",               STR, 4, 4, 64, 2, 2000, false, false, 64, 0, false, 0, 0, 0, false, false, false, false, false, 128, 64},
	{"fixed l16 c4",                 FIX, 4, 2, 64, 400, 400, false, false, 16, 4, false, 0, 0, 0, false, false, false, false, false, 32, 32},
	{"fixed l32 c32 (all summary)",  FIX, 2, 2, 64, 200, 200, false, false, 32, 32, false, 0, 0, 0, false, false, false, false, false, 32, 32},
	{"fixed l24 c1 nq<nk",           FIX, 2, 1, 80, 150, 500, false, false, 24, 1, false, 0, 0, 0, false, false, false, false, false, 64, 16},
	{"fixed l13 c5 top-left nq>nk",  FIX, 3, 3, 3, 140, 100, false, true, 13, 5, false, 0, 0, 0, false, false, false, false, false, 16, 16},
	{"fixed l16 c8 + mods",          FIX, 4, 2, 64, 300, 300, false, false, 16, 8, true, 100, 0, 3.0f, true, true, true, true, true, 32, 32},
	{"fixed decode",                 FIX, 4, 2, 64, 3, 1500, false, false, 128, 16, false, 0, 0, 0, false, false, false, false, false, 128, 64},
};

Test(sparse, oracle_all_paths, .timeout = 900) {
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		check_case(&cases[i], 300 + 11 * i);
}

/* The fixed pattern's summary lies in its blocks; the patterns need a plain softmax
 * mechanism; a zero summary takes the default within the stride. */
Test(sparse, fixed_config_checks) {
	rva_attention *att = NULL;
	rva_config c = rva_flash(64, 32);
	c.pattern = RVA_PATTERN_FIXED;
	c.sparse_stride = 8;
	c.sparse_summary = 9;
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c.sparse_summary = 0;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s", rva_last_error());
	rva_config r;
	rva_attention_config(att, &r);
	cr_assert_eq(r.sparse_summary, 8);
	cr_assert(r.causal);
	rva_attention_release(att);
	c = rva_local_global(64, 8);
	c.pattern = RVA_PATTERN_FIXED;
	cr_assert_eq(rva_build(&c, &att), RVA_EINVAL);
}

/*
 * The attention-op extras of a serving step over the paged K/V cache (kv_cache.h:
 * rva_kv_step.key_mask, bias, mask, lse, q_head_stride, out_head_stride) with the config's
 * modifiers (causal alignment, window, softcap, ALiBi, RoPE over rotated keys): outputs
 * and LSEs bit-identical to rva_engine_run over the same rows in contiguous K/V, and
 * within tolerance of the float64 oracle (tests/ref/ref_softmax.h); decode steps, chunks
 * and a prefill over streams cut into pages, fp32 and bf16 caches, 1 and 2 threads.
 * The extras change the result (a run without them is far from their oracle), and bad
 * extras fail their step alone with the rva_seq error.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_softmax.h"
#include "ref/ref_util.h"
#include "rvattn/rvattn.h"
#include "sched/kv_cache_internal.h"

#define ATOL 3e-5
#define RTOL 3e-4

enum { H = 4, KVH = 2, D = 64, NS = 3, DIM = H * D, KVD = KVH * D };

static const size_t LEN[NS] = {700, 300, 1000}, NQ[NS] = {1, 37, 130};

/* One stream: its K/V rows (as stored: rotated and rounded to the cache's type, in fp32),
 * queries in [H, NQ, D] order, and the step's score matrices. */
typedef struct stream {
	uint64_t id;
	float *k, *v, *q;          /* k, v: LEN x KVD; q: H x NQ x D (q_head_stride NQ * D) */
	float *bias;               /* [H][NQ][LEN + 3] padded, per head */
	uint8_t *mask;             /* [NQ][LEN + 1], broadcast over the heads */
	uint8_t *key_mask;         /* LEN bytes */
} stream;

typedef struct world {
	rva_engine *e;
	rva_kv_cache *cache;
	rva_dtype t;
	stream s[NS];
	void *kc[NS], *vc[NS];     /* the rows in the cache's type, unrotated (contiguous run) */
} world;

static void fill_stream(stream *st, size_t len, size_t nq, uint64_t seed) {
	st->k = ref_alloc(len * KVD);
	st->v = ref_alloc(len * KVD);
	st->q = ref_alloc(nq * DIM);
	ref_fill_uniform(st->k, len * KVD, -1.5f, 1.5f, seed);
	ref_fill_uniform(st->v, len * KVD, -1.0f, 1.0f, seed + 1);
	ref_fill_uniform(st->q, nq * DIM, -1.5f, 1.5f, seed + 2);
	size_t nb = H * nq * (len + 3);
	st->bias = ref_alloc(nb);
	ref_fill_uniform(st->bias, nb, -2.0f, 2.0f, seed + 3);
	for (size_t i = 0; i < nb; i += 17)
		st->bias[i] = -INFINITY; /* -inf hides the pair */
	st->mask = malloc(nq * (len + 1));
	st->key_mask = malloc(len);
	uint64_t x = seed * 2654435761u + 7;
	for (size_t i = 0; i < nq * (len + 1); i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		st->mask[i] = (x >> 60) >= 3; /* about 3 in 16 hidden */
	}
	for (size_t j = 0; j < len; j++)
		st->key_mask[j] = j % 11 != 4;
}

/* A cache of type t holding the streams, appended in uneven pieces across pages of 16.
 * With RoPE the cache gets keys rotated at their positions (kv_cache.h) while the stream
 * keeps them unrotated (the contiguous run and the oracle rotate them); with a half type
 * the stream's rows are rounded to it (the values the cache holds). */
static void world_init(world *w, const rva_attention *att, rva_dtype t, unsigned threads) {
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = threads;
	ec.spin_us = 0;
	cr_assert_eq(rva_engine_create(&ec, &w->e), RVA_OK, "%s", rva_last_error());
	rva_kv_cache_config cfg = {.kv_heads = KVH, .head_dim = D, .page_tokens = 16,
	                           .pages = 200, .max_seqs = 4, .dtype = t};
	cr_assert_eq(rva_kv_cache_create(w->e, &cfg, &w->cache), RVA_OK, "%s", rva_last_error());
	w->t = t;
	rva_config c;
	rva_attention_config(att, &c);
	cr_assert(t == RVA_F32 || c.rope == RVA_ROPE_NONE, "RoPE cases are fp32");
	size_t es = t == RVA_F32 ? 4 : 2;
	for (int s = 0; s < NS; s++) {
		stream *st = &w->s[s];
		fill_stream(st, LEN[s], NQ[s], 300 + 10 * (uint64_t)s);
		size_t n = LEN[s] * KVD;
		w->kc[s] = malloc(n * es);
		w->vc[s] = malloc(n * es);
		cr_assert_eq(rva_convert(t, w->kc[s], RVA_F32, st->k, n), RVA_OK);
		cr_assert_eq(rva_convert(t, w->vc[s], RVA_F32, st->v, n), RVA_OK);
		cr_assert_eq(rva_convert(RVA_F32, st->k, t, w->kc[s], n), RVA_OK);
		cr_assert_eq(rva_convert(RVA_F32, st->v, t, w->vc[s], n), RVA_OK);
		float *kr = st->k;
		if (c.rope != RVA_ROPE_NONE) {
			kr = ref_alloc(n);
			memcpy(kr, st->k, n * sizeof(float));
			cr_assert_eq(rva_rope_apply(att, kr, RVA_F32, KVD, KVH, LEN[s], 0), RVA_OK, "%s",
			             rva_last_error());
		}
		cr_assert_eq(rva_kv_cache_seq_new(w->cache, &st->id), RVA_OK);
		const unsigned char *kb = kr != st->k ? (const void *)kr : w->kc[s];
		const unsigned char *vb = w->vc[s];
		for (size_t r = 0; r < LEN[s]; r += 77)
			cr_assert_eq(rva_kv_cache_append(w->cache, st->id, kb + r * KVD * es, 0,
			                                 vb + r * KVD * es, 0,
			                                 LEN[s] - r < 77 ? LEN[s] - r : 77),
			             RVA_OK, "%s", rva_last_error());
		if (kr != st->k)
			free(kr);
	}
}

static void world_free(world *w) {
	for (int s = 0; s < NS; s++) {
		stream *st = &w->s[s];
		free(st->k);
		free(st->v);
		free(st->q);
		free(st->bias);
		free(st->mask);
		free(st->key_mask);
		free(w->kc[s]);
		free(w->vc[s]);
	}
	cr_assert_eq(rva_kv_cache_destroy(w->cache), RVA_OK);
	rva_engine_destroy(w->e);
}

/* Stream s's step (extras on) and the same attention as a contiguous rva_seq over the
 * widened rows. Outputs in [H, NQ, D] (out_head_stride NQ * D), lse [H][NQ + 2]. */
static void descriptors(const world *w, int s, bool extras, float *out, float *lse,
                        rva_kv_step *step, rva_seq *seq) {
	const stream *st = &w->s[s];
	size_t nq = NQ[s], len = LEN[s];
	*step = (rva_kv_step){.seq = st->id, .nq = nq, .q = st->q, .q_stride = D,
	                      .q_head_stride = nq * D, .out = out, .out_stride = D,
	                      .out_head_stride = nq * D};
	if (extras) {
		step->key_mask = st->key_mask;
		step->bias = st->bias;
		step->bias_stride = len + 3;
		step->bias_head_stride = nq * (len + 3);
		step->mask = st->mask;
		step->mask_stride = len + 1;
		step->lse = lse;
		step->lse_head_stride = nq + 2;
	}
	*seq = (rva_seq){.nq = nq, .nk = len, .q = st->q, .q_stride = D, .q_head_stride = nq * D,
	                 .k = w->kc[s], .v = w->vc[s], .k_dtype = w->t, .v_dtype = w->t,
	                 .out = out, .out_stride = D,
	                 .out_head_stride = nq * D, .key_mask = step->key_mask,
	                 .bias = step->bias, .bias_stride = step->bias_stride,
	                 .bias_head_stride = step->bias_head_stride, .mask = step->mask,
	                 .mask_stride = step->mask_stride, .lse = step->lse,
	                 .lse_head_stride = step->lse_head_stride};
}

typedef struct mods {
	const char *name;
	rva_mechanism mech;
	bool causal, top_left, window;
	size_t wl, wr;
	float softcap;
	bool alibi;
	rva_rope rope;
	size_t kv_split;
} mods;

static rva_config config_of(const mods *m) {
	rva_config c = rva_config_defaults(DIM);
	c.mechanism = m->mech;
	c.heads = H;
	c.kv_heads = KVH;
	c.causal = m->causal;
	c.causal_align = m->top_left ? RVA_CAUSAL_TOP_LEFT : RVA_CAUSAL_BOTTOM_RIGHT;
	c.sliding_window = m->window;
	c.window_left = m->wl;
	c.window_right = m->wr;
	c.softcap = m->softcap;
	c.alibi = m->alibi;
	c.rope = m->rope;
	c.kv_split = m->kv_split;
	return c;
}

/* The oracle of stream s (extras on): out [nq][H * D] packed, lse [H][nq]; RoPE rotates
 * the stream's keys at j and its queries at their causal_align positions. */
static void oracle(const mods *m, const rva_attention *att, const world *w, int s,
                   double *out, double *lse) {
	const stream *st = &w->s[s];
	size_t nq = NQ[s], len = LEN[s];
	double slopes[H];
	ref_alibi_slopes(H, slopes);
	ref_attn_spec sp = {.heads = H, .kv_heads = KVH, .head_dim = D,
	                    .scale = 1.0 / sqrt((double)D), .causal = m->causal,
	                    .top_left = m->top_left, .sliding = m->window,
	                    .window_left = m->wl, .window_right = m->wr, .softcap = m->softcap,
	                    .alibi = m->alibi ? slopes : NULL, .bias = st->bias,
	                    .bias_s = len + 3, .bias_hs = nq * (len + 3), .smask = st->mask,
	                    .smask_s = len + 1, .smask_hs = 0};
	rva_config c;
	rva_attention_config(att, &c);
	ref_ex_io io = {.nq = nq, .nk = len, .q = st->q, .qs = D, .qhs = nq * D, .k = st->k,
	                .ks = KVD, .khs = D, .v = st->v, .vs = KVD, .vhs = D,
	                .mask = st->key_mask, .v_head_dim = D, .out = out, .lse = lse};
	if (c.rope != RVA_ROPE_NONE)
		io.rope = (ref_rope){.kind = c.rope == RVA_ROPE_NEOX ? REF_ROPE_NEOX : REF_ROPE_GPTJ,
		                     .theta = c.rope_theta, .rot_dim = c.rope_dim, .factor = 1.0};
	ref_attention_ex(&sp, &io);
}

/* Output element (head h, row i, d) of the [H, NQ, D] layout against the oracle's packed
 * row i. */
static double err_bhsd(const float *got, const double *want, size_t nq, double atol,
                       double rtol) {
	float *packed = malloc(nq * DIM * sizeof(float));
	for (size_t h = 0; h < H; h++)
		for (size_t i = 0; i < nq; i++)
			memcpy(packed + i * DIM + h * D, got + h * nq * D + i * D, D * sizeof(float));
	double e = ref_err_ratio(packed, want, nq * DIM, atol, rtol);
	free(packed);
	return e;
}

static void paged_case(const mods *m, rva_dtype t, unsigned threads) {
	rva_config c = config_of(m);
	rva_attention *att = NULL;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s: %s", m->name, rva_last_error());
	world w;
	world_init(&w, att, t, threads);
	float *paged[NS], *contig[NS], *plse[NS], *clse[NS], *plain[NS];
	rva_kv_step st[NS], bare[NS], step_unused;
	rva_seq seqs[NS], seq_unused;
	for (int s = 0; s < NS; s++) {
		size_t n = NQ[s] * DIM, nl = H * (NQ[s] + 2);
		paged[s] = ref_alloc(n);
		contig[s] = ref_alloc(n);
		plain[s] = ref_alloc(n);
		plse[s] = ref_alloc(nl);
		clse[s] = ref_alloc(nl);
		for (size_t i = 0; i < nl; i++)
			plse[s][i] = clse[s][i] = 12345.0f; /* the padding stays */
		descriptors(&w, s, true, paged[s], plse[s], &st[s], &seq_unused);
		descriptors(&w, s, true, contig[s], clse[s], &step_unused, &seqs[s]);
		descriptors(&w, s, false, plain[s], NULL, &bare[s], &seq_unused);
	}
	rva_status ss[NS];
	cr_assert_eq(rva_kv_cache_run(w.e, w.cache, att, st, NS, NULL, ss, NULL), RVA_OK,
	             "%s: %s", m->name, rva_last_error());
	cr_assert_eq(rva_kv_cache_run(w.e, w.cache, att, bare, NS, NULL, ss, NULL), RVA_OK,
	             "%s: without extras: %s", m->name, rva_last_error());
	rva_batch b = {NS, seqs};
	cr_assert_eq(rva_engine_run(w.e, att, &b, NULL, NULL, NULL), RVA_OK, "%s: %s", m->name,
	             rva_last_error());
	for (int s = 0; s < NS; s++) {
		size_t nq = NQ[s], n = nq * DIM;
		cr_assert(memcmp(paged[s], contig[s], n * sizeof(float)) == 0,
		          "%s: stream %d (%zu x %zu): paged output differs from contiguous", m->name, s,
		          nq, LEN[s]);
		cr_assert(memcmp(plse[s], clse[s], H * (nq + 2) * sizeof(float)) == 0,
		          "%s: stream %d: paged lse differs from contiguous", m->name, s);
		double *want = ref_alloc_d(n), *wlse = ref_alloc_d(H * nq);
		oracle(m, att, &w, s, want, wlse);
		/* bf16 V: P is rounded to bf16 (batch.h: about 2^-8 |V|max) */
		double atol = t == RVA_F32 ? ATOL : 8e-3, rtol = t == RVA_F32 ? RTOL : 8e-3;
		double e = err_bhsd(paged[s], want, nq, atol, rtol);
		cr_assert(e <= 1.0, "%s: stream %d: error ratio %g against the oracle", m->name, s, e);
		cr_assert_gt(err_bhsd(plain[s], want, nq, atol, rtol), 10.0,
		             "%s: stream %d: the extras change nothing", m->name, s);
		for (size_t h = 0; h < H; h++) {
			for (size_t i = 0; i < nq; i++) {
				float g = plse[s][h * (nq + 2) + i];
				double x = wlse[h * nq + i];
				if (isinf(x))
					cr_assert(isinf(g) && g < 0, "%s: stream %d lse (%zu, %zu): %g, want -inf",
					          m->name, s, h, i, (double)g);
				else
					cr_assert(fabs((double)g - x) <= atol + rtol * fabs(x),
					          "%s: stream %d lse (%zu, %zu): %g, want %g", m->name, s, h, i,
					          (double)g, x);
			}
			cr_assert_eq(plse[s][h * (nq + 2) + nq], 12345.0f, "lse padding written");
		}
		free(want);
		free(wlse);
		free(paged[s]);
		free(contig[s]);
		free(plain[s]);
		free(plse[s]);
		free(clse[s]);
	}
	world_free(&w);
	rva_attention_release(att);
}

static const mods CAUSAL_ALL = {"flash causal, window 100, softcap 20, ALiBi", RVA_MECH_FLASH,
                                true, false, true, 100, 0, 20.0f, true, RVA_ROPE_NONE, 0};

Test(paged_extras, fp32_causal_window_softcap_alibi, .timeout = 300) {
	paged_case(&CAUSAL_ALL, RVA_F32, 2);
}

Test(paged_extras, fp32_one_thread_split_kv, .timeout = 300) {
	mods m = {"multi_head bidirectional window 30/30, split-KV 128", RVA_MECH_MULTI_HEAD,
	          false, false, true, 30, 30, 0.0f, false, RVA_ROPE_NONE, 128};
	paged_case(&m, RVA_F32, 1);
}

Test(paged_extras, fp32_top_left_rope, .timeout = 300) {
	/* bidirectional: top-left places the queries for RoPE and ALiBi (causal top-left over a
	 * cache is in tests/test_ops_scores.c) */
	mods m = {"flash top-left, RoPE neox, ALiBi", RVA_MECH_FLASH, false, true, false, 0, 0,
	          0.0f, true, RVA_ROPE_NEOX, 0};
	paged_case(&m, RVA_F32, 2);
}

Test(paged_extras, bf16_cache, .timeout = 300) { paged_case(&CAUSAL_ALL, RVA_BF16, 2); }

/* Outputs into the cache's own pages are refused for that step alone (kv_cache.h): the
 * lse as the output. */
Test(paged_extras, outputs_in_the_cache_pages_refused) {
	rva_config c = config_of(&CAUSAL_ALL);
	rva_attention *att = NULL;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s", rva_last_error());
	world w;
	world_init(&w, att, RVA_F32, 1);
	float *out = ref_alloc(DIM), lse[H];
	/* the last page of the pool block: pages hold K rows, then V rows */
	float *page = (float *)(void *)w.cache->page_base[w.cache->npages - 1];
	rva_kv_step ok = {.seq = w.s[0].id, .nq = 1, .q = w.s[0].q, .out = out, .lse = lse};
	rva_kv_step st[3] = {ok, ok, ok};
	st[1].lse = page + 3;
	st[2].out = page;
	rva_status ss[3];
	cr_assert_eq(rva_kv_cache_run(w.e, w.cache, att, st, 3, NULL, ss, NULL), RVA_EINVAL);
	cr_assert_eq(ss[0], RVA_OK, "%s", rva_last_error());
	cr_assert_eq(ss[1], RVA_EINVAL);
	cr_assert_eq(ss[2], RVA_EINVAL);
	cr_assert(strstr(rva_last_error(), "step 1: the lse output overlaps the kv cache's pages"),
	          "%s", rva_last_error());
	free(out);
	world_free(&w);
	rva_attention_release(att);
}

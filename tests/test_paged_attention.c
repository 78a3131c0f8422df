/*
 * Attention over the paged K/V cache (rva_kv_cache_submit / _run):
 *  - a mixed serving step (decode steps, few-query steps and causal prefill chunks over
 *    ragged cached lengths, GQA) against the double-precision oracle, and BIT-IDENTICAL to
 *    the same attention over contiguous K/V through rva_engine_run, for page sizes 2, 6,
 *    16 and 128, forced split-KV chunks, 1 and 2 threads, fp32 and bf16 caches;
 *  - a stream cancelled (its sequence freed) while a job reading it runs: the job's rows
 *    stay pinned, its output is still exact, the pages return when the job ends, and the
 *    other streams go on decoding;
 *  - a stream's step cancelled inside a running job (rva_job_cancel_seq): the other steps'
 *    outputs are exact, the cancelled one is RVA_ECANCELLED or complete, pages return;
 *  - 8 threads submitting at once on one engine and one cache;
 *  - bad steps fail alone (unknown sequence, more queries than rows), bad calls fail whole;
 *  - every allocation of a submission may fail: RVA_ENOMEM, nothing pinned or leaked.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/fault_alloc.h"
#include "ref/ref_softmax.h"
#include "ref/ref_util.h"
#include "rvattn/rvattn.h"

#define HD 64
#define H 4
#define KVH 2
#define DIM (H * HD)
#define KVD (KVH * HD)

static rva_engine *engine_n(unsigned threads) {
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = threads;
	rva_engine *e = NULL;
	cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK, "%s", rva_last_error());
	return e;
}

static rva_attention *build(bool causal, size_t kv_split, size_t block) {
	rva_config c = rva_flash(DIM, block);
	c.heads = H;
	c.kv_heads = KVH;
	c.causal = causal;
	c.kv_split = kv_split;
	rva_attention *att = NULL;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s", rva_last_error());
	return att;
}

/* A serving step over NS streams: stream s holds len[s] rows; its step has nq[s] queries
 * (the last nq[s] rows). */
#define NS 6
static const size_t LEN[NS] = {1, 17, 100, 301, 1000, 2500};
/* 130: three query tiles over 2500 keys (a dense plan, tiles gathered across pages) */
static const size_t NQ[NS] = {1, 1, 37, 5, 1, 130};

typedef struct world {
	rva_kv_cache *c;
	rva_dtype t;
	uint64_t id[NS];
	void *k[NS], *v[NS];   /* contiguous copies (the cache's type) */
	float *kf[NS], *vf[NS]; /* their fp32 values (the oracle's input) */
	float *q[NS];
} world;

/* Rows are appended in uneven pieces, as prefill chunks and decode steps would: one
 * stream after another (each takes its pages in order: back to back in memory, runs of
 * pages that the kernels read as one, kv_pages.h) or, `interleaved`, a piece of each
 * stream in turn (pages of different streams alternate: runs are cut at most pages). */
static void world_make(world *w, rva_engine *e, size_t P, rva_dtype t, uint64_t seed,
                       bool interleaved) {
	memset(w, 0, sizeof *w);
	w->t = t;
	rva_kv_cache_config cfg = {.kv_heads = KVH, .head_dim = HD, .page_tokens = P,
	                           .pages = 8192 / P + 2 * NS + 4000 / P * 2, .max_seqs = 16,
	                           .dtype = t};
	cr_assert_eq(rva_kv_cache_create(e, &cfg, &w->c), RVA_OK, "%s", rva_last_error());
	size_t es = t == RVA_F32 ? 4 : 2;
	for (int s = 0; s < NS; s++) {
		size_t n = LEN[s];
		w->kf[s] = ref_alloc(n * KVD);
		w->vf[s] = ref_alloc(n * KVD);
		w->q[s] = ref_alloc(NQ[s] * DIM);
		ref_fill_uniform(w->kf[s], n * KVD, -1.0f, 1.0f, seed + 10 * s);
		ref_fill_uniform(w->vf[s], n * KVD, -1.0f, 1.0f, seed + 10 * s + 1);
		ref_fill_uniform(w->q[s], NQ[s] * DIM, -1.0f, 1.0f, seed + 10 * s + 2);
		w->k[s] = malloc(n * KVD * es);
		w->v[s] = malloc(n * KVD * es);
		cr_assert_eq(rva_convert(t, w->k[s], RVA_F32, w->kf[s], n * KVD), RVA_OK);
		cr_assert_eq(rva_convert(t, w->v[s], RVA_F32, w->vf[s], n * KVD), RVA_OK);
		cr_assert_eq(rva_convert(RVA_F32, w->kf[s], t, w->k[s], n * KVD), RVA_OK);
		cr_assert_eq(rva_convert(RVA_F32, w->vf[s], t, w->v[s], n * KVD), RVA_OK);
		cr_assert_eq(rva_kv_cache_seq_new(w->c, &w->id[s]), RVA_OK);
	}
	size_t at[NS] = {0};
	for (bool more = true; more;) {
		more = false;
		for (int s = 0; s < NS; s++) {
			/* stream after stream: each appends all its pieces before the next starts */
			for (size_t r = at[s], n = LEN[s]; r < n; r = at[s]) {
				size_t m = (n - r < 1 + (r * 13 + 7) % 97 ? n - r : 1 + (r * 13 + 7) % 97);
				cr_assert_eq(rva_kv_cache_append(w->c, w->id[s],
				                                 (char *)w->k[s] + r * KVD * es, 0,
				                                 (char *)w->v[s] + r * KVD * es, 0, m),
				             RVA_OK, "%s", rva_last_error());
				at[s] += m;
				if (interleaved)
					break;
			}
			more = more || at[s] < LEN[s];
		}
	}
}

static void world_free(world *w) {
	for (int s = 0; s < NS; s++) {
		free(w->k[s]);
		free(w->v[s]);
		free(w->kf[s]);
		free(w->vf[s]);
		free(w->q[s]);
	}
	cr_assert_eq(rva_kv_cache_destroy(w->c), RVA_OK, "%s", rva_last_error());
}

/* The serving step of every stream: outputs into out[s] (NQ[s] x DIM floats each). */
static void steps_of(const world *w, float **out, rva_kv_step *st) {
	memset(st, 0, NS * sizeof *st);
	for (int s = 0; s < NS; s++)
		st[s] = (rva_kv_step){.seq = w->id[s], .nq = NQ[s], .q = w->q[s], .out = out[s]};
}

/* Pages that streams 0 .. NS-2 hold (pages of 16 rows): what is left in use once the
 * last stream is freed and no job runs. */
static size_t pages_held_but_last(void) {
	size_t held = 0;
	for (int s = 0; s < NS - 1; s++)
		held += (LEN[s] + 15) / 16;
	return held;
}

/* Paged run: outputs into out[s] (NQ[s] x DIM floats each). */
static void run_paged(rva_engine *e, world *w, rva_attention *att, float **out) {
	rva_kv_step st[NS];
	steps_of(w, out, st);
	rva_status ss[NS];
	cr_assert_eq(rva_kv_cache_run(e, w->c, att, st, NS, NULL, ss, NULL), RVA_OK, "%s",
	             rva_last_error());
	for (int s = 0; s < NS; s++)
		cr_assert_eq(ss[s], RVA_OK);
}

/* The same attention over contiguous K/V (the batch API). */
static void run_contiguous(rva_engine *e, world *w, rva_attention *att, float **out) {
	rva_seq seqs[NS];
	memset(seqs, 0, sizeof seqs);
	for (int s = 0; s < NS; s++)
		seqs[s] = (rva_seq){.nq = NQ[s], .nk = LEN[s], .q = w->q[s], .k = w->k[s],
		                    .v = w->v[s], .out = out[s], .k_dtype = w->t, .v_dtype = w->t};
	rva_batch b = {NS, seqs};
	cr_assert_eq(rva_engine_run(e, att, &b, NULL, NULL, NULL), RVA_OK, "%s", rva_last_error());
}

static float **outs(void) {
	float **o = calloc(NS, sizeof *o);
	for (int s = 0; s < NS; s++)
		o[s] = ref_alloc(NQ[s] * DIM);
	return o;
}

static void outs_free(float **o) {
	for (int s = 0; s < NS; s++)
		free(o[s]);
	free(o);
}

static void same_bits(float **a, float **b, const char *what) {
	for (int s = 0; s < NS; s++)
		cr_assert(memcmp(a[s], b[s], NQ[s] * DIM * sizeof(float)) == 0,
		          "%s: stream %d (%zu x %zu keys) differs from contiguous K/V", what, s, NQ[s],
		          LEN[s]);
}

static void oracle(world *w, bool causal, float **o, double atol, const char *what) {
	ref_attn_spec sp = {.heads = H, .kv_heads = KVH, .head_dim = HD,
	                    .scale = 1.0 / sqrt((double)HD), .causal = causal};
	for (int s = 0; s < NS; s++) {
		double *want = ref_alloc_d(NQ[s] * DIM);
		ref_attention(&sp, NQ[s], LEN[s], w->q[s], DIM, w->kf[s], KVD, w->vf[s], KVD, NULL,
		              want);
		double e = ref_err_ratio(o[s], want, NQ[s] * DIM, atol, 10 * atol);
		cr_assert(e <= 1.0, "%s: stream %d: error ratio %g against the oracle", what, s, e);
		free(want);
	}
}

static void identity_case(size_t P, rva_dtype t, bool causal, size_t kv_split, size_t block) {
	char what[128];
	snprintf(what, sizeof what, "page %zu, %s, %s, kv_split %zu, block %zu", P,
	         t == RVA_F32 ? "fp32" : "bf16", causal ? "causal" : "bidirectional", kv_split,
	         block);
	rva_engine *e1 = engine_n(1), *e2 = engine_n(2);
	rva_attention *att = build(causal, kv_split, block);
	world w;
	world_make(&w, e2, P, t, 100 + P, false);
	float **paged2 = outs(), **paged1 = outs(), **contig = outs();
	run_paged(e2, &w, att, paged2);
	run_contiguous(e1, &w, att, contig);
	same_bits(paged2, contig, what);
	oracle(&w, causal, paged2, t == RVA_F32 ? 2e-5 : 2e-2, what);
	/* the other engine reads the cache too (a cache is tied to its engine: another one
	 * is refused) */
	rva_kv_step st = {.seq = w.id[0], .nq = 1, .q = w.q[0], .out = paged1[0]};
	rva_job *job = NULL;
	cr_expect_eq(rva_kv_cache_submit(e1, w.c, att, &st, 1, NULL, &job), RVA_EINVAL);
	world_free(&w);
	/* 1 thread, pages of the streams interleaved: a cache on the 1-thread engine gives
	 * the same bits */
	world_make(&w, e1, P, t, 100 + P, true);
	run_paged(e1, &w, att, paged1);
	same_bits(paged1, contig, what);
	world_free(&w);
	outs_free(paged1);
	outs_free(paged2);
	outs_free(contig);
	rva_attention_destroy(att);
	rva_engine_destroy(e1);
	rva_engine_destroy(e2);
}

Test(paged_attention, bit_identical_page_16) { identity_case(16, RVA_F32, true, 0, 128); }
Test(paged_attention, bit_identical_page_128) { identity_case(128, RVA_F32, true, 0, 128); }
Test(paged_attention, bit_identical_page_2_bidirectional) {
	identity_case(2, RVA_F32, false, 0, 128);
}
Test(paged_attention, bit_identical_page_6_split_kv) { identity_case(6, RVA_F32, true, 96, 32); }
Test(paged_attention, bit_identical_page_16_split_kv) {
	identity_case(16, RVA_F32, false, 200, 64);
}
Test(paged_attention, bit_identical_bf16_page_16) { identity_case(16, RVA_BF16, true, 0, 128); }
Test(paged_attention, bit_identical_f16_page_6) { identity_case(6, RVA_F16, true, 0, 64); }

/* ---- a stream cancelled while others decode ------------------------------------------ */

Test(paged_attention, cancel_one_stream_while_others_decode) {
	rva_engine *e = engine_n(2);
	rva_attention *att = build(true, 0, 128);
	world w;
	world_make(&w, e, 16, RVA_F32, 9, true);
	float **want = outs(), **got = outs();
	run_contiguous(e, &w, att, want);
	rva_kv_cache_stats before;
	rva_kv_cache_stats_get(w.c, &before);
	/* the job runs while stream 5 (the longest) is freed and its pages would be reused */
	rva_kv_step st[NS];
	steps_of(&w, got, st);
	rva_job *job = NULL;
	cr_assert_eq(rva_kv_cache_submit(e, w.c, att, st, NS, NULL, &job), RVA_OK, "%s",
	             rva_last_error());
	cr_assert_eq(rva_kv_cache_seq_free(w.c, w.id[5]), RVA_OK);
	/* a new stream takes every free page and overwrites them */
	uint64_t other;
	cr_assert_eq(rva_kv_cache_seq_new(w.c, &other), RVA_OK);
	float junk[16 * KVD];
	for (size_t i = 0; i < 16 * KVD; i++)
		junk[i] = 1e30f;
	while (rva_kv_cache_append(w.c, other, junk, 0, junk, 0, 16) == RVA_OK)
		;
	cr_assert_eq(rva_job_wait(job), RVA_OK);
	rva_job_destroy(job);
	same_bits(got, want, "stream freed during the job");
	/* once the job ended and the filler is freed, only streams 0-4 hold pages: the job's
	 * pins on the cancelled stream's pages are gone (whether the job ran before or after
	 * the free) */
	cr_assert_eq(rva_kv_cache_seq_free(w.c, other), RVA_OK);
	rva_kv_cache_stats mid;
	rva_kv_cache_stats_get(w.c, &mid);
	cr_expect_eq(mid.pages_free, mid.pages - pages_held_but_last(),
	             "pages left pinned after the job");
	/* the others decode on: one more token each, checked against contiguous K/V */
	for (int s = 0; s < NS - 1; s++) {
		float kr[KVD], vr[KVD];
		ref_fill_uniform(kr, KVD, -1.0f, 1.0f, 500 + s);
		ref_fill_uniform(vr, KVD, -1.0f, 1.0f, 600 + s);
		cr_assert_eq(rva_kv_cache_append(w.c, w.id[s], kr, 0, vr, 0, 1), RVA_OK);
		size_t n = LEN[s] + 1;
		float *k = ref_alloc(n * KVD), *v = ref_alloc(n * KVD);
		cr_assert_eq(rva_kv_cache_seq_read(w.c, w.id[s], 0, n, k, v), RVA_OK);
		cr_assert(memcmp(k + LEN[s] * KVD, kr, sizeof kr) == 0);
		float *o1 = ref_alloc(DIM), *o2 = ref_alloc(DIM);
		rva_kv_step one = {.seq = w.id[s], .nq = 1, .q = w.q[s], .out = o1};
		cr_assert_eq(rva_kv_cache_run(e, w.c, att, &one, 1, NULL, NULL, NULL), RVA_OK);
		rva_seq cs = {.nq = 1, .nk = n, .q = w.q[s], .k = k, .v = v, .out = o2};
		rva_batch b = {1, &cs};
		cr_assert_eq(rva_engine_run(e, att, &b, NULL, NULL, NULL), RVA_OK);
		cr_assert(memcmp(o1, o2, DIM * sizeof(float)) == 0, "stream %d after the cancel", s);
		free(k);
		free(v);
		free(o1);
		free(o2);
	}
	/* the freed stream's id is refused, alone */
	rva_kv_step bad[2] = {{.seq = w.id[5], .nq = 1, .q = w.q[5], .out = got[5]},
	                      {.seq = w.id[0], .nq = 1, .q = w.q[0], .out = got[0]}};
	rva_status ss[2];
	cr_expect_eq(rva_kv_cache_run(e, w.c, att, bad, 2, NULL, ss, NULL), RVA_ENOTFOUND);
	cr_expect_eq(ss[0], RVA_ENOTFOUND);
	cr_expect_eq(ss[1], RVA_OK);
	outs_free(want);
	outs_free(got);
	world_free(&w);
	rva_attention_destroy(att);
	rva_engine_destroy(e);
}

/* A stream cancelled inside a running job (rva_job_cancel_seq on its step, then its
 * sequence freed): its work stops, every other step's output is exact, and its pages go
 * back once the job ends. Whether the cancel lands before the stream's last task is up to
 * the scheduler: either the step reports RVA_ECANCELLED (and so does the job, its first
 * failing step), or the step had completed and its output is exact. */
Test(paged_attention, cancel_one_step_of_a_running_job) {
	rva_engine *e = engine_n(2);
	rva_attention *att = build(true, 0, 128);
	world w;
	world_make(&w, e, 16, RVA_F32, 21, true);
	float **want = outs(), **got = outs();
	run_contiguous(e, &w, att, want);
	size_t cancelled = 0;
	for (int round = 0; round < 20; round++) {
		for (int s = 0; s < NS; s++)
			memset(got[s], 0xff, NQ[s] * DIM * sizeof(float)); /* NaN: nothing written */
		rva_kv_step st[NS];
		steps_of(&w, got, st);
		uint64_t victim = w.id[5];
		rva_job *job = NULL;
		cr_assert_eq(rva_kv_cache_submit(e, w.c, att, st, NS, NULL, &job), RVA_OK, "%s",
		             rva_last_error());
		cr_assert_eq(rva_job_cancel_seq(job, 5), RVA_OK);
		cr_assert_eq(rva_kv_cache_seq_free(w.c, victim), RVA_OK);
		rva_status js = rva_job_wait(job), s5;
		cr_assert_eq(rva_job_seq_status(job, 5, &s5, NULL), RVA_OK);
		for (size_t s = 0; s + 1 < NS; s++) {
			rva_status ss;
			cr_assert_eq(rva_job_seq_status(job, s, &ss, NULL), RVA_OK);
			cr_expect_eq(ss, RVA_OK, "round %d: step %zu", round, s);
			cr_assert(memcmp(got[s], want[s], NQ[s] * DIM * sizeof(float)) == 0,
			          "round %d: step %zu differs after another step's cancel", round, s);
		}
		if (s5 == RVA_ECANCELLED) {
			cancelled++;
			cr_expect_eq(js, RVA_ECANCELLED, "round %d: the job's first failing step", round);
		} else {
			cr_expect_eq(s5, RVA_OK, "round %d: %s", round, rva_status_name(s5));
			cr_expect_eq(js, RVA_OK);
			cr_assert(memcmp(got[5], want[5], NQ[5] * DIM * sizeof(float)) == 0,
			          "round %d: a step the cancel missed is complete and exact", round);
		}
		rva_job_destroy(job);
		/* its pages are back: only streams 0-4 hold any */
		rva_kv_cache_stats cs;
		rva_kv_cache_stats_get(w.c, &cs);
		cr_expect_eq(cs.pages_free, cs.pages - pages_held_but_last(),
		             "round %d: pages left pinned", round);
		/* the stream comes back for the next round (same rows, a new id) */
		cr_assert_eq(rva_kv_cache_seq_new(w.c, &w.id[5]), RVA_OK);
		cr_assert_eq(rva_kv_cache_append(w.c, w.id[5], w.k[5], 0, w.v[5], 0, LEN[5]), RVA_OK);
	}
	cr_log_info("cancel_one_step_of_a_running_job: %zu of 20 cancels landed before the "
	            "step's last task", cancelled);
	outs_free(want);
	outs_free(got);
	world_free(&w);
	rva_attention_destroy(att);
	rva_engine_destroy(e);
}

/* ---- 8 threads submitting at once ------------------------------------------------------ */

typedef struct sub_arg {
	rva_engine *e;
	rva_kv_cache *c;
	const rva_attention *att;
	unsigned t;
	int bad;
} sub_arg;

static void *submitter(void *p) {
	sub_arg *a = p;
	enum { STREAMS = 2, STEPS = 12, PROMPT = 70 };
	uint64_t id[STREAMS];
	size_t cap = PROMPT + STEPS;
	float *k[STREAMS], *v[STREAMS], q[STREAMS][DIM], o[STREAMS][DIM], o2[DIM];
	for (int s = 0; s < STREAMS; s++) {
		k[s] = malloc(cap * KVD * sizeof(float));
		v[s] = malloc(cap * KVD * sizeof(float));
		ref_fill_uniform(k[s], cap * KVD, -1.0f, 1.0f, 1000 * a->t + 2 * s);
		ref_fill_uniform(v[s], cap * KVD, -1.0f, 1.0f, 1000 * a->t + 2 * s + 1);
		if (rva_kv_cache_seq_new(a->c, &id[s]) != RVA_OK ||
		    rva_kv_cache_append(a->c, id[s], k[s], 0, v[s], 0, PROMPT) != RVA_OK)
			a->bad++;
	}
	for (size_t step = 0; step < STEPS && !a->bad; step++) {
		rva_kv_step st[STREAMS];
		memset(st, 0, sizeof st);
		for (int s = 0; s < STREAMS; s++) {
			size_t len = PROMPT + step + 1;
			if (rva_kv_cache_append(a->c, id[s], k[s] + (len - 1) * KVD, 0,
			                        v[s] + (len - 1) * KVD, 0, 1) != RVA_OK)
				a->bad++;
			ref_fill_uniform(q[s], DIM, -1.0f, 1.0f, 77 * a->t + step * 3 + s);
			st[s] = (rva_kv_step){.seq = id[s], .nq = 1, .q = q[s], .out = o[s]};
		}
		rva_job *job = NULL;
		if (rva_kv_cache_submit(a->e, a->c, a->att, st, STREAMS, NULL, &job) != RVA_OK ||
		    rva_job_wait(job) != RVA_OK)
			a->bad++;
		rva_job_destroy(job);
		for (int s = 0; s < STREAMS; s++) {
			rva_seq cs = {.nq = 1, .nk = PROMPT + step + 1, .q = q[s], .k = k[s], .v = v[s],
			              .out = o2};
			rva_batch b = {1, &cs};
			if (rva_engine_run(a->e, a->att, &b, NULL, NULL, NULL) != RVA_OK ||
			    memcmp(o2, o[s], sizeof o2) != 0)
				a->bad++;
		}
	}
	for (int s = 0; s < STREAMS; s++) {
		if (rva_kv_cache_seq_free(a->c, id[s]) != RVA_OK)
			a->bad++;
		free(k[s]);
		free(v[s]);
	}
	return NULL;
}

Test(paged_attention, eight_threads_submit_at_once) {
	rva_engine *e = engine_n(2);
	rva_attention *att = build(true, 0, 128);
	rva_kv_cache_config cfg = {.kv_heads = KVH, .head_dim = HD, .page_tokens = 16,
	                           .pages = 8 * 2 * 6, .max_seqs = 16};
	rva_kv_cache *c = NULL;
	cr_assert_eq(rva_kv_cache_create(e, &cfg, &c), RVA_OK);
	sub_arg a[8];
	pthread_t th[8];
	for (unsigned t = 0; t < 8; t++) {
		a[t] = (sub_arg){.e = e, .c = c, .att = att, .t = t};
		cr_assert_eq(pthread_create(&th[t], NULL, submitter, &a[t]), 0);
	}
	for (unsigned t = 0; t < 8; t++) {
		pthread_join(th[t], NULL);
		cr_expect_eq(a[t].bad, 0, "thread %u: %d failures or differing outputs", t, a[t].bad);
	}
	rva_kv_cache_stats st;
	rva_kv_cache_stats_get(c, &st);
	cr_expect_eq(st.pages_free, st.pages);
	cr_expect_eq(rva_kv_cache_destroy(c), RVA_OK);
	rva_attention_destroy(att);
	rva_engine_destroy(e);
}

/* ---- bad input ---------------------------------------------------------------------------- */

Test(paged_attention, bad_steps_and_calls) {
	rva_engine *e = engine_n(1);
	rva_attention *att = build(true, 0, 128);
	world w;
	world_make(&w, e, 16, RVA_F32, 3, false);
	float out[64 * DIM];
	rva_kv_step st[3] = {{.seq = w.id[1], .nq = 18, .q = w.q[5], .out = out},      /* 18 > 17 */
	                     {.seq = 12345, .nq = 1, .q = w.q[0], .out = out + DIM},    /* unknown */
	                     {.seq = w.id[2], .nq = 1, .q = w.q[2], .out = out + 2 * DIM}};
	rva_status ss[3];
	cr_expect_eq(rva_kv_cache_run(e, w.c, att, st, 3, NULL, ss, NULL), RVA_ERANGE);
	cr_expect(strstr(rva_last_error(), "step 0") != NULL, "%s", rva_last_error());
	cr_expect_eq(ss[0], RVA_ERANGE);
	cr_expect_eq(ss[1], RVA_ENOTFOUND);
	cr_expect_eq(ss[2], RVA_OK);
	st[2].reserved[1] = 1;
	cr_expect_eq(rva_kv_cache_run(e, w.c, att, st + 2, 1, NULL, ss, NULL), RVA_EINVAL);
	st[2].reserved[1] = 0;
	st[2].out = NULL;
	cr_expect_eq(rva_kv_cache_run(e, w.c, att, st + 2, 1, NULL, ss, NULL), RVA_ENULL);
	rva_job *job = NULL;
	cr_expect_eq(rva_kv_cache_submit(e, w.c, att, NULL, 1, NULL, &job), RVA_ENULL);
	cr_expect_eq(rva_kv_cache_submit(e, w.c, att, st, 1, NULL, NULL), RVA_ENULL);
	rva_config lc = rva_linear(DIM, 16);
	rva_attention *lin = NULL;
	cr_assert_eq(rva_build(&lc, &lin), RVA_OK);
	cr_expect_eq(rva_kv_cache_submit(e, w.c, lin, st + 2, 1, NULL, &job), RVA_EUNSUPPORTED);
	rva_attention_destroy(lin);
	rva_config mc = rva_multi_head(DIM, 8); /* head_dim 32 */
	rva_attention *mh = NULL;
	cr_assert_eq(rva_build(&mc, &mh), RVA_OK);
	cr_expect_eq(rva_kv_cache_submit(e, w.c, mh, st + 2, 1, NULL, &job), RVA_EDIM);
	rva_attention_destroy(mh);
	/* no steps: an empty job */
	cr_expect_eq(rva_kv_cache_run(e, w.c, att, NULL, 0, NULL, NULL, NULL), RVA_OK);
	world_free(&w);
	rva_attention_destroy(att);
	rva_engine_destroy(e);
}

/* ---- allocation failures ----------------------------------------------------------------- */

Test(paged_attention, submission_fails_cleanly_on_every_allocation) {
	cr_assert_eq(ref_fault_install(), RVA_OK);
	rva_engine *e = engine_n(2);
	rva_attention *att = build(true, 0, 128);
	world w;
	world_make(&w, e, 16, RVA_F32, 5, true);
	float **want = outs(), **got = outs();
	run_paged(e, &w, att, want);
	rva_kv_cache_stats s0;
	rva_kv_cache_stats_get(w.c, &s0);
	long live0 = ref_fault_live();
	rva_kv_step st[NS];
	steps_of(&w, got, st);
	ref_fault_arm(-1, false);
	cr_assert_eq(rva_kv_cache_run(e, w.c, att, st, NS, NULL, NULL, NULL), RVA_OK);
	long n = ref_fault_count();
	for (long k = 0; k < n; k++) {
		ref_fault_arm(k, false);
		rva_status r = rva_kv_cache_run(e, w.c, att, st, NS, NULL, NULL, NULL);
		ref_fault_disarm();
		cr_expect(r == RVA_OK || r == RVA_ENOMEM, "allocation %ld: %s (%s)", k,
		          rva_status_name(r), rva_last_error());
		rva_kv_cache_stats s1;
		rva_kv_cache_stats_get(w.c, &s1);
		cr_expect_eq(s1.pages_free, s0.pages_free, "allocation %ld: pages left pinned", k);
		cr_expect_eq(ref_fault_live(), live0, "allocation %ld: leak", k);
		cr_assert_eq(rva_kv_cache_run(e, w.c, att, st, NS, NULL, NULL, NULL), RVA_OK);
		same_bits(got, want, "after a failed submission");
	}
	outs_free(want);
	outs_free(got);
	world_free(&w);
	rva_attention_destroy(att);
	rva_engine_destroy(e);
	ref_fault_uninstall();
}

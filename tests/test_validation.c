/*
 * Hostile and odd input that must still give the right numbers, fast, or a clear refusal:
 *
 * - counts far beyond the data (local-global global_tokens and window, strided
 *   sparse_stride, kv_split) do work that follows the sequence, not the number, and give
 *   the oracle's numbers (tests/ref/ref_softmax.c);
 * - an output that shares memory with an input of its sequence is refused with
 *   RVA_EINVAL naming the sequence, alone in its batch (serial, engine, pipeline); an
 *   output interleaved with the query in one row buffer is not an overlap; the
 *   single-query call works in place;
 * - rows with no visible key (causal with nq > nk, every key masked) are zeros on every
 *   path: dense tiles, flash tiles, decode, split-KV, local-global, linear, hyperbolic,
 *   MoE (its experts' zero rows projected), single query, engine.
 *
 * Tolerance (fp32 vs double oracle): |got - want| <= 2e-5 + 2e-4 |want| per element.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ref/ref_softmax.h"
#include "ref/ref_util.h"
#include "rvattn/rvattn.h"

#define ATOL 2e-5
#define RTOL 2e-4

static double now_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static rva_engine *engine2(void) {
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 2;
	ec.spin_us = 0;
	rva_engine *e = NULL;
	cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK, "%s", rva_last_error());
	return e;
}

/* One sequence's buffers: q, k, v random, out filled with NaN (so unwritten shows). */
typedef struct problem {
	size_t nq, nk, dim, kvdim;
	float *q, *k, *v, *out;
	uint8_t *mask;
	double *want;
} problem;

static problem make_problem(size_t nq, size_t nk, size_t dim, size_t kvdim, uint64_t seed) {
	problem p = {.nq = nq, .nk = nk, .dim = dim, .kvdim = kvdim};
	p.q = ref_alloc(nq * dim);
	p.k = ref_alloc(nk * kvdim);
	p.v = ref_alloc(nk * kvdim);
	p.out = ref_alloc(nq * dim);
	p.want = ref_alloc_d(nq * dim);
	ref_fill_uniform(p.q, nq * dim, -1.0f, 1.0f, seed);
	ref_fill_uniform(p.k, nk * kvdim, -1.0f, 1.0f, seed + 1);
	ref_fill_uniform(p.v, nk * kvdim, -1.0f, 1.0f, seed + 2);
	for (size_t i = 0; i < nq * dim; i++)
		p.out[i] = NAN;
	return p;
}

static void free_problem(problem *p) {
	free(p->q);
	free(p->k);
	free(p->v);
	free(p->out);
	free(p->want);
	free(p->mask);
}

static rva_seq seq_of(const problem *p) {
	return (rva_seq){.nq = p->nq, .nk = p->nk, .q = p->q, .k = p->k, .v = p->v,
	                 .out = p->out, .key_mask = p->mask};
}

static void oracle(const ref_attn_spec *sp, problem *p) {
	ref_attention(sp, p->nq, p->nk, p->q, p->dim, p->k, p->kvdim, p->v, p->kvdim, p->mask,
	              p->want);
}

static void expect_oracle(const problem *p, const char *what) {
	double e = ref_err_ratio(p->out, p->want, p->nq * p->dim, ATOL, RTOL);
	cr_assert(e <= 1.0, "%s: error ratio %g against the oracle", what, e);
}

/* Runs att over p serially and on the engine; both must match p->want. */
static void run_both(const rva_attention *att, rva_engine *e, problem *p, const char *what) {
	rva_seq s = seq_of(p);
	rva_batch b = {1, &s};
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK, "%s: serial: %s", what,
	             rva_last_error());
	expect_oracle(p, what);
	for (size_t i = 0; i < p->nq * p->dim; i++)
		p->out[i] = NAN;
	cr_assert_eq(rva_engine_run(e, att, &b, NULL, NULL, NULL), RVA_OK, "%s: engine: %s", what,
	             rva_last_error());
	expect_oracle(p, what);
}

/* ---- item: counts far beyond the data ------------------------------------------------- */

/* global_tokens of 10^10, 2^63 and SIZE_MAX make every position global: the numbers of
 * dense attention (causal or not), in about the time of a normal call. Before, planning
 * counted visible pairs in a loop as long as global_tokens (minutes at 10^10). */
Test(validation, huge_global_tokens_are_all_positions) {
	static const size_t huge[] = {10000000000ull, (size_t)1 << 63, SIZE_MAX - 1, SIZE_MAX};
	rva_engine *e = engine2();
	size_t nq = 150, nk = 300, heads = 2, hd = 16, dim = heads * hd;
	size_t *all = malloc(nk * sizeof *all);
	for (size_t j = 0; j < nk; j++)
		all[j] = j;
	double t0 = now_s();
	for (size_t h = 0; h < sizeof huge / sizeof huge[0]; h++)
		for (int causal = 0; causal < 2; causal++) {
			rva_config c = rva_local_global(dim, 4);
			c.heads = heads;
			c.block_size = 64;
			c.global_tokens = huge[h];
			c.causal = causal;
			rva_attention *att;
			cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s", rva_last_error());
			problem p = make_problem(nq, nk, dim, dim, 10 + h);
			ref_attn_spec sp = {.heads = heads, .kv_heads = heads, .head_dim = hd,
			                    .scale = 1.0 / sqrt((double)hd), .causal = causal,
			                    .pattern = REF_LOCAL_GLOBAL, .window = 4, .globals = all,
			                    .nglobals = nk};
			oracle(&sp, &p);
			char what[96];
			snprintf(what, sizeof what, "global_tokens %zu, causal %d", huge[h], causal);
			run_both(att, e, &p, what);
			/* FLOPs count every visible pair: all of them (causal: the lower part). */
			rva_seq s = seq_of(&p);
			double flops;
			cr_assert_eq(rva_attention_flops(att, &(rva_batch){1, &s}, &flops), RVA_OK);
			double pairs = 0;
			for (size_t i = 0; i < nq; i++)
				pairs += causal ? (double)(nk - nq + i + 1) : (double)nk;
			cr_assert_float_eq(flops, 4.0 * (double)dim * pairs, 1e-6 * flops, "%s: %g flops",
			                   what, flops);
			free_problem(&p);
			rva_attention_destroy(att);
		}
	double secs = now_s() - t0;
	cr_assert(secs < 20.0, "8 runs of 150 x 300 took %.1f s", secs);
	free(all);
	rva_engine_destroy(e);
}

/* A window wider than any sequence is dense attention; a global list far longer than the
 * sequence counts only the positions inside it. */
Test(validation, huge_window_and_long_global_list) {
	rva_engine *e = engine2();
	size_t nq = 70, nk = 130, hd = 8;
	static const size_t windows[] = {(size_t)1 << 40, (size_t)1 << 62, SIZE_MAX - 1};
	for (size_t w = 0; w < 3; w++)
		for (int causal = 0; causal < 2; causal++) {
			rva_config c = rva_local_global(hd, windows[w]);
			c.global_tokens = 0;
			c.causal = causal;
			c.block_size = 32;
			rva_attention *att;
			cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s", rva_last_error());
			problem p = make_problem(nq, nk, hd, hd, 40 + w);
			ref_attn_spec sp = {.heads = 1, .kv_heads = 1, .head_dim = hd,
			                    .scale = 1.0 / sqrt((double)hd), .causal = causal,
			                    .pattern = REF_DENSE};
			oracle(&sp, &p);
			char what[64];
			snprintf(what, sizeof what, "window %zu causal %d", windows[w], causal);
			run_both(att, e, &p, what);
			free_problem(&p);
			rva_attention_destroy(att);
		}
	/* 200000 global indices, most beyond the sequence (and unsorted, with repeats). */
	size_t ng = 200000;
	size_t *g = malloc(ng * sizeof *g);
	for (size_t i = 0; i < ng; i++)
		g[i] = (i * 7919) % 1000000 + (i % 3 == 0 ? 0 : 5);
	rva_config c = rva_local_global(hd, 2);
	c.global_indices = g;
	c.n_global_indices = ng;
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s", rva_last_error());
	problem p = make_problem(nq, nk, hd, hd, 77);
	ref_attn_spec sp = {.heads = 1, .kv_heads = 1, .head_dim = hd,
	                    .scale = 1.0 / sqrt((double)hd), .pattern = REF_LOCAL_GLOBAL,
	                    .window = 2};
	size_t inside[256], ni = 0; /* the oracle gets the positions that exist */
	for (size_t pos = 0; pos < nk; pos++)
		for (size_t i = 0; i < ng; i++)
			if (g[i] == pos) {
				inside[ni++] = pos;
				break;
			}
	sp.globals = inside;
	sp.nglobals = ni;
	cr_assert(ni > 0 && ni < nk);
	oracle(&sp, &p);
	double t0 = now_s();
	run_both(att, e, &p, "200000 global indices");
	cr_assert(now_s() - t0 < 10.0);
	free_problem(&p);
	free(g);
	rva_attention_destroy(att);
	rva_engine_destroy(e);
}

/* A sparse stride or split-KV chunk beyond the sequence is the band / no split. */
Test(validation, huge_stride_and_kv_split) {
	rva_engine *e = engine2();
	size_t hd = 8;
	{
		rva_config c = rva_multi_head(hd, 1);
		c.pattern = RVA_PATTERN_STRIDED;
		c.sparse_stride = (size_t)1 << 62; /* the band covers everything: causal dense */
		rva_attention *att;
		cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s", rva_last_error());
		problem p = make_problem(50, 90, hd, hd, 90);
		ref_attn_spec sp = {.heads = 1, .kv_heads = 1, .head_dim = hd,
		                    .scale = 1.0 / sqrt((double)hd), .causal = true};
		oracle(&sp, &p);
		run_both(att, e, &p, "sparse_stride 2^62");
		free_problem(&p);
		rva_attention_destroy(att);
	}
	static const size_t splits[] = {SIZE_MAX - 1, (size_t)1 << 63, 1};
	for (size_t k = 0; k < 3; k++) {
		rva_config c = rva_multi_head(2 * hd, 2);
		c.kv_split = splits[k];
		c.block_size = 16;
		rva_attention *att;
		cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s", rva_last_error());
		problem p = make_problem(3, 1500, 2 * hd, 2 * hd, 91 + k);
		ref_attn_spec sp = {.heads = 2, .kv_heads = 2, .head_dim = hd,
		                    .scale = 1.0 / sqrt((double)hd)};
		oracle(&sp, &p);
		char what[64];
		snprintf(what, sizeof what, "kv_split %zu", splits[k]);
		run_both(att, e, &p, what);
		free_problem(&p);
		rva_attention_destroy(att);
	}
	rva_engine_destroy(e);
}

/* ---- item: outputs that alias inputs -------------------------------------------------- */

/* In a batch of five, sequences whose output overlaps their own key, value, query or key
 * mask fail alone with RVA_EINVAL and a message naming the sequence and the input; the
 * good ones match the oracle. Serial and engine. Nothing is written to a refused
 * sequence's memory. */
Test(validation, aliasing_sequence_fails_alone) {
	rva_engine *e = engine2();
	size_t hd = 8, heads = 2, dim = heads * hd, nq = 12, nk = 20;
	rva_config c = rva_multi_head(dim, heads);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	ref_attn_spec sp = {.heads = heads, .kv_heads = heads, .head_dim = hd,
	                    .scale = 1.0 / sqrt((double)hd)};
	for (int engine = 0; engine < 2; engine++) {
		problem g0 = make_problem(nq, nk, dim, dim, 1), g4 = make_problem(nq, nk, dim, dim, 5);
		oracle(&sp, &g0);
		oracle(&sp, &g4);
		/* A shared arena: k, v, q and a mask of the bad sequences live in it. */
		float *arena = ref_alloc(4096);
		ref_fill_uniform(arena, 4096, -1.0f, 1.0f, 3);
		float *snapshot = malloc(4096 * sizeof(float));
		memcpy(snapshot, arena, 4096 * sizeof(float));
		rva_seq s[6];
		s[0] = seq_of(&g0);
		/* 1: out is the key matrix shifted by 5 floats */
		s[1] = (rva_seq){.nq = nq, .nk = nk, .q = arena, .k = arena + 400, .v = arena + 800,
		                 .out = arena + 405};
		/* 2: out's last row reaches into the values */
		s[2] = (rva_seq){.nq = nq, .nk = nk, .q = arena, .k = arena + 2500, .v = arena + 800,
		                 .out = arena + 800 - nq * dim + 1};
		/* 3: out is the query (in place) */
		s[3] = (rva_seq){.nq = nq, .nk = nk, .q = arena + 1200, .k = arena + 400,
		                 .v = arena + 800, .out = arena + 1200};
		s[4] = seq_of(&g4);
		/* 5: out covers the key mask */
		uint8_t *maskmem = (uint8_t *)(arena + 2000);
		memset(maskmem, 1, nk);
		s[5] = (rva_seq){.nq = nq, .nk = nk, .q = arena, .k = arena + 400, .v = arena + 800,
		                 .out = arena + 1990, .key_mask = maskmem};
		memcpy(snapshot, arena, 4096 * sizeof(float));
		rva_status ss[6];
		rva_batch b = {6, s};
		rva_status st = engine ? rva_engine_run(e, att, &b, NULL, ss, NULL)
		                       : rva_compute_batch(att, &b, NULL, ss);
		cr_assert_eq(st, RVA_EINVAL, "%s", rva_last_error());
		cr_assert(strstr(rva_last_error(), "sequence 1") != NULL, "%s", rva_last_error());
		cr_assert(strstr(rva_last_error(), "key") != NULL, "%s", rva_last_error());
		static const rva_status want[6] = {RVA_OK, RVA_EINVAL, RVA_EINVAL, RVA_EINVAL, RVA_OK,
		                                   RVA_EINVAL};
		for (int i = 0; i < 6; i++)
			cr_assert_eq(ss[i], want[i], "engine %d, sequence %d: %s", engine, i,
			             rva_status_name(ss[i]));
		cr_assert(memcmp(snapshot, arena, 4096 * sizeof(float)) == 0,
		              "a refused sequence's memory was written");
		expect_oracle(&g0, "sequence 0 of the aliasing batch");
		expect_oracle(&g4, "sequence 4 of the aliasing batch");
		if (engine) {
			/* The per-sequence detail of a submitted job names the input. */
			rva_job *job;
			cr_assert_eq(rva_engine_submit(e, att, &b, NULL, &job), RVA_OK);
			cr_assert_eq(rva_job_wait(job), RVA_EINVAL);
			rva_status js;
			const char *detail = NULL;
			cr_assert_eq(rva_job_seq_status(job, 2, &js, &detail), RVA_OK);
			cr_assert_eq(js, RVA_EINVAL);
			cr_assert(detail && strstr(detail, "sequence 2") && strstr(detail, "value"),
			          "%s", detail ? detail : "(null)");
			cr_assert_eq(rva_job_seq_status(job, 5, &js, &detail), RVA_OK);
			cr_assert(detail && strstr(detail, "key mask"), "%s", detail ? detail : "(null)");
			rva_job_destroy(job);
		}
		free(snapshot);
		free(arena);
		free_problem(&g0);
		free_problem(&g4);
	}
	rva_attention_destroy(att);
	rva_engine_destroy(e);
}

/* Q and O interleaved in one row buffer ([q | out] per row, one stride) share no byte:
 * accepted, and right. Adjacent, touching matrices are fine too. */
Test(validation, interleaved_output_is_not_an_overlap) {
	size_t hd = 8, heads = 2, dim = heads * hd, nq = 9, nk = 14;
	rva_config c = rva_multi_head(dim, heads);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	problem p = make_problem(nq, nk, dim, dim, 21);
	float *rows = ref_alloc(nq * 2 * dim);
	for (size_t i = 0; i < nq; i++) {
		memcpy(rows + i * 2 * dim, p.q + i * dim, dim * sizeof(float));
		for (size_t d = 0; d < dim; d++)
			rows[i * 2 * dim + dim + d] = NAN;
	}
	ref_attn_spec sp = {.heads = heads, .kv_heads = heads, .head_dim = hd,
	                    .scale = 1.0 / sqrt((double)hd)};
	oracle(&sp, &p);
	rva_seq s = {.nq = nq, .nk = nk, .q = rows, .q_stride = 2 * dim, .k = p.k, .v = p.v,
	             .out = rows + dim, .out_stride = 2 * dim};
	rva_engine *e = engine2();
	for (int engine = 0; engine < 2; engine++) {
		rva_batch b = {1, &s};
		rva_status st = engine ? rva_engine_run(e, att, &b, NULL, NULL, NULL)
		                       : rva_compute_batch(att, &b, NULL, NULL);
		cr_assert_eq(st, RVA_OK, "%s", rva_last_error());
		for (size_t i = 0; i < nq; i++)
			memcpy(p.out + i * dim, rows + i * 2 * dim + dim, dim * sizeof(float));
		expect_oracle(&p, "interleaved [q | out]");
		/* ... and the query half is untouched */
		for (size_t i = 0; i < nq; i++)
			cr_assert(memcmp(rows + i * 2 * dim, p.q + i * dim, dim * sizeof(float)) == 0);
	}
	/* out right after v: touching, not overlapping */
	float *kvo = ref_alloc(2 * nk * dim + nq * dim);
	memcpy(kvo, p.k, nk * dim * sizeof(float));
	memcpy(kvo + nk * dim, p.v, nk * dim * sizeof(float));
	rva_seq t = {.nq = nq, .nk = nk, .q = p.q, .k = kvo, .v = kvo + nk * dim,
	             .out = kvo + 2 * nk * dim};
	cr_assert_eq(rva_compute_batch(att, &(rva_batch){1, &t}, NULL, NULL), RVA_OK, "%s",
	             rva_last_error());
	memcpy(p.out, kvo + 2 * nk * dim, nq * dim * sizeof(float));
	expect_oracle(&p, "out adjacent to v");
	/* the same out one float earlier overlaps v's last element */
	t.out = kvo + 2 * nk * dim - 1;
	cr_assert_eq(rva_compute_batch(att, &(rva_batch){1, &t}, NULL, NULL), RVA_EINVAL);
	free(kvo);
	free(rows);
	free_problem(&p);
	rva_engine_destroy(e);
	rva_attention_destroy(att);
}

/* The single-query call works in place (out == query) with the numbers of a separate
 * output, for every mechanism; a pipeline refuses an output over its input. */
Test(validation, single_query_in_place) {
	size_t dim = 16, nk = 11;
	rva_config cfgs[5] = {rva_multi_head(dim, 4), rva_flash(dim, 4), rva_linear(dim, 8),
	                      rva_hyperbolic(dim, -1.0f), rva_local_global(dim, 4)};
	float *k = ref_alloc(nk * dim), *v = ref_alloc(nk * dim), q[16], sep[16], inplace[16];
	ref_fill_uniform(k, nk * dim, -1.0f, 1.0f, 5);
	ref_fill_uniform(v, nk * dim, -1.0f, 1.0f, 6);
	ref_fill_uniform(q, dim, -0.5f, 0.5f, 7);
	const float *kr[11], *vr[11];
	for (size_t j = 0; j < nk; j++) {
		kr[j] = k + j * dim;
		vr[j] = v + j * dim;
	}
	for (int m = 0; m < 5; m++) {
		rva_attention *att;
		cr_assert_eq(rva_build(&cfgs[m], &att), RVA_OK, "%s", rva_last_error());
		cr_assert_eq(rva_compute(att, q, kr, vr, nk, sep), RVA_OK);
		memcpy(inplace, q, sizeof q);
		cr_assert_eq(rva_compute(att, inplace, kr, vr, nk, inplace), RVA_OK, "%s",
		             rva_last_error());
		cr_assert(memcmp(sep, inplace, sizeof sep) == 0, "%s: in place differs",
		          rva_mechanism_name(cfgs[m].mechanism));
		/* overlapping by half a row: still the numbers of a separate output */
		float buf[24];
		memcpy(buf, q, sizeof q);
		cr_assert_eq(rva_compute(att, buf, kr, vr, nk, buf + 8), RVA_OK);
		cr_assert(memcmp(sep, buf + 8, sizeof sep) == 0);
		rva_attention_destroy(att);
	}
	/* pipeline: output over the pipeline's input is refused (the input is read again by
	 * the residual after the output was written) */
	rva_attention *a;
	rva_config c = rva_multi_head(dim, 4);
	cr_assert_eq(rva_build(&c, &a), RVA_OK);
	rva_pipeline *p;
	cr_assert_eq(rva_transformer_block(a, 0.0f, &p), RVA_OK);
	float *qq = ref_alloc(4 * dim);
	ref_fill_uniform(qq, 4 * dim, -1.0f, 1.0f, 8);
	rva_seq s = {.nq = 4, .nk = nk, .q = qq, .k = k, .v = v, .out = qq};
	rva_status ss = RVA_OK;
	cr_assert_eq(rva_pipeline_run_batch(p, &(rva_batch){1, &s}, NULL, &ss), RVA_EINVAL);
	cr_assert_eq(ss, RVA_EINVAL);
	cr_assert(strstr(rva_last_error(), "query") != NULL, "%s", rva_last_error());
	s.out = k + 3; /* over the keys */
	rva_engine *e = engine2();
	cr_assert_eq(rva_engine_run_pipeline(e, p, &(rva_batch){1, &s}, NULL, &ss, NULL),
	             RVA_EINVAL);
	cr_assert(strstr(rva_last_error(), "key") != NULL, "%s", rva_last_error());
	rva_engine_destroy(e);
	rva_pipeline_destroy(p);
	free(qq);
	free(k);
	free(v);
}

/* ---- item: rows with no visible key ---------------------------------------------------- */

/* Checks rows [0, nzero) of out are exactly 0 and the others finite. */
static void expect_zero_rows(const problem *p, size_t nzero, const char *what) {
	for (size_t i = 0; i < p->nq; i++)
		for (size_t d = 0; d < p->dim; d++) {
			float x = p->out[i * p->dim + d];
			if (i < nzero)
				cr_assert(x == 0.0f && !signbit(x), "%s: row %zu [%zu] = %g, want +0", what,
				          i, d, (double)x);
			else
				cr_assert(isfinite(x), "%s: row %zu [%zu] = %g", what, i, d, (double)x);
		}
}

typedef struct empty_case {
	const char *what;
	rva_config cfg;
	size_t nq, nk;
	bool all_masked;  /* else causal with nq > nk: rows [0, nq - nk) see nothing */
	bool oracle;      /* softmax family: compare the whole output with the oracle */
} empty_case;

static void run_empty_case(const empty_case *ec, rva_engine *e) {
	size_t dim = ec->cfg.dim, heads = ec->cfg.heads, hd = dim / heads;
	rva_attention *att;
	cr_assert_eq(rva_build(&ec->cfg, &att), RVA_OK, "%s: %s", ec->what, rva_last_error());
	problem p = make_problem(ec->nq, ec->nk, dim, dim, 300);
	size_t nzero = ec->all_masked ? ec->nq : ec->nq - ec->nk;
	if (ec->all_masked)
		p.mask = calloc(ec->nk, 1);
	if (ec->oracle) {
		ref_attn_spec sp = {.heads = heads, .kv_heads = heads, .head_dim = hd,
		                    .scale = 1.0 / sqrt((double)hd), .causal = ec->cfg.causal};
		if (ec->cfg.mechanism == RVA_MECH_LOCAL_GLOBAL) {
			sp.pattern = REF_LOCAL_GLOBAL;
			sp.window = ec->cfg.window;
		}
		oracle(&sp, &p);
	}
	for (int engine = 0; engine < 2; engine++) {
		for (size_t i = 0; i < p.nq * dim; i++)
			p.out[i] = NAN;
		rva_seq s = seq_of(&p);
		rva_batch b = {1, &s};
		rva_status st = engine ? rva_engine_run(e, att, &b, NULL, NULL, NULL)
		                       : rva_compute_batch(att, &b, NULL, NULL);
		cr_assert_eq(st, RVA_OK, "%s: %s", ec->what, rva_last_error());
		char what[128];
		snprintf(what, sizeof what, "%s (%s)", ec->what, engine ? "engine" : "serial");
		expect_zero_rows(&p, nzero, what);
		if (ec->oracle)
			expect_oracle(&p, what);
	}
	/* the single-query call with every key masked */
	if (ec->all_masked) {
		const float **kr = malloc(ec->nk * sizeof *kr), **vr = malloc(ec->nk * sizeof *vr);
		for (size_t j = 0; j < ec->nk; j++) {
			kr[j] = p.k + j * dim;
			vr[j] = p.v + j * dim;
		}
		float *one = ref_alloc(dim);
		for (size_t d = 0; d < dim; d++)
			one[d] = NAN;
		cr_assert_eq(rva_compute_masked(att, p.q, kr, vr, p.mask, ec->nk, one), RVA_OK);
		for (size_t d = 0; d < dim; d++)
			cr_assert(one[d] == 0.0f, "%s: single query [%zu] = %g", ec->what, d,
			          (double)one[d]);
		free(one);
		free(kr);
		free(vr);
	}
	free_problem(&p);
	rva_attention_destroy(att);
}

Test(validation, rows_without_visible_keys_are_zero) {
	rva_engine *e = engine2();
	size_t dim = 16;
	rva_config mh = rva_multi_head(dim, 2);
	rva_config mh_causal = mh;
	mh_causal.causal = true;
	rva_config fl = rva_flash(dim, 8);
	fl.heads = 2;
	fl.causal = true;
	rva_config split = mh;
	split.kv_split = 256;
	rva_config lg = rva_local_global(dim, 4);
	lg.heads = 2;
	lg.global_tokens = 0;
	lg.causal = true;
	rva_config lg_masked = rva_local_global(dim, 4);
	rva_config lin = rva_linear(dim, 16);
	lin.heads = 2;
	rva_config lin_causal = lin;
	lin_causal.causal = true;
	rva_config hyp = rva_hyperbolic(dim, -1.0f);
	hyp.heads = 2;
	rva_config hyp_causal = hyp;
	hyp_causal.causal = true;
	rva_config frechet = hyp_causal;
	frechet.aggregation = RVA_AGG_FRECHET;
	rva_config moe = rva_moe(dim, 4, 2); /* standard, hyperbolic, linear experts in turn */
	rva_config moe_causal = moe;
	moe_causal.causal = true;
	const empty_case cases[] = {
		{"multi_head causal, dense tiles (nq 40 > nk 17)", mh_causal, 40, 17, false, true},
		{"multi_head causal, decode (nq 6 > nk 4)", mh_causal, 6, 4, false, true},
		{"multi_head all masked, dense tiles", mh, 30, 50, true, true},
		{"multi_head all masked, decode split-KV (nq 2, nk 2000)", mh, 2, 2000, true, true},
		{"multi_head all masked, split-KV chunks (nq 12, nk 1100)", split, 12, 1100, true,
		 true},
		{"flash causal (nq 33 > nk 20)", fl, 33, 20, false, true},
		{"local_global causal (nq 30 > nk 9)", lg, 30, 9, false, true},
		{"local_global all masked (global token 0 masked too)", lg_masked, 20, 30, true, true},
		{"linear all masked", lin, 20, 30, true, false},
		{"linear causal (nq 25 > nk 7)", lin_causal, 25, 7, false, false},
		{"hyperbolic all masked", hyp, 20, 30, true, false},
		{"hyperbolic causal (nq 12 > nk 5)", hyp_causal, 12, 5, false, false},
		{"hyperbolic Frechet causal (nq 12 > nk 5)", frechet, 12, 5, false, false},
		{"moe (mixed experts) all masked", moe, 10, 6, true, false},
		{"moe (mixed experts) causal (nq 10 > nk 3)", moe_causal, 10, 3, false, false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		run_empty_case(&cases[i], e);
	rva_engine_destroy(e);
}

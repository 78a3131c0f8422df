/*
 * Decoding (few queries, many keys): the split-KV plan and its kernels.
 *  - ragged, grouped-query decode batches (100 to 8192 keys in one batch) against the
 *    double-precision oracle (tests/ref/ref_softmax.h);
 *  - bit-identical output for 1 and 2 threads;
 *  - the plan's cost-model decision: a small decode is one task (nothing to hand to other
 *    workers), a long one is split into equal chunks of whole decode blocks, and the
 *    chunking depends on the shape only;
 *  - the half K/V decode step (rows widened in registers) gives the fp32 step's bits on the
 *    widened rows;
 *  - RVATTN_ATTN_KERNEL=blis sends decode work to the BLIS tile loop (the portable twin),
 *    seen in the job's task count, with the oracle's numbers.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention/softmax_half.h"
#include "attention/softmax_kernels.h"
#include "attention/softmax_part.h"
#include "kernels/half.h"
#include "ref/ref_softmax.h"
#include "ref/ref_util.h"
#include "rvattn/rvattn.h"

#define ATOL 2e-5
#define RTOL 2e-4
#define HD 64

/* A ragged decode batch: sequence s has nqs[s] queries and nks[s] keys, its own buffers. */
typedef struct dbatch {
	size_t n, heads, kvh, hd; /* hd: head dim */
	rva_seq *seqs;
	float **bufs; /* per sequence: q, k, v, out */
} dbatch;

static dbatch make_batch_hd(size_t n, const size_t *nqs, const size_t *nks, size_t heads,
                            size_t kvh, size_t hd, bool mask_one, uint64_t seed) {
	dbatch b = {.n = n, .heads = heads, .kvh = kvh, .hd = hd};
	b.seqs = calloc(n, sizeof *b.seqs);
	b.bufs = calloc(4 * n, sizeof *b.bufs);
	size_t dim = heads * hd, kvd = kvh * hd;
	for (size_t s = 0; s < n; s++) {
		float **f = b.bufs + 4 * s;
		f[0] = ref_alloc(nqs[s] * dim);
		f[1] = ref_alloc(nks[s] * kvd);
		f[2] = ref_alloc(nks[s] * kvd);
		f[3] = ref_alloc(nqs[s] * dim);
		ref_fill_uniform(f[0], nqs[s] * dim, -1.0f, 1.0f, seed + 3 * s);
		ref_fill_uniform(f[1], nks[s] * kvd, -1.0f, 1.0f, seed + 3 * s + 1);
		ref_fill_uniform(f[2], nks[s] * kvd, -1.0f, 1.0f, seed + 3 * s + 2);
		b.seqs[s] = (rva_seq){.nq = nqs[s], .nk = nks[s], .q = f[0], .k = f[1], .v = f[2],
		                      .out = f[3]};
		if (mask_one && s == 1) {
			uint8_t *m = malloc(nks[s]);
			for (size_t j = 0; j < nks[s]; j++)
				m[j] = (j * 7 + s) % 5 != 0; /* about one key in five masked */
			b.seqs[s].key_mask = m;
		}
	}
	return b;
}

static dbatch make_batch(size_t n, const size_t *nqs, const size_t *nks, size_t heads,
                         size_t kvh, bool mask_one, uint64_t seed) {
	return make_batch_hd(n, nqs, nks, heads, kvh, HD, mask_one, seed);
}

static void free_batch(dbatch *b) {
	for (size_t s = 0; s < b->n; s++)
		free((void *)b->seqs[s].key_mask);
	for (size_t i = 0; i < 4 * b->n; i++)
		free(b->bufs[i]);
	free(b->bufs);
	free(b->seqs);
}

static rva_attention *build_hd(size_t heads, size_t kvh, size_t hd) {
	rva_config c = rva_flash(heads * hd, 128);
	c.heads = heads;
	c.kv_heads = kvh == heads ? 0 : kvh;
	rva_attention *att = NULL;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "build: %s", rva_last_error());
	return att;
}

static rva_attention *build(size_t heads, size_t kvh) { return build_hd(heads, kvh, HD); }

/* Runs the batch on an engine of `threads` workers; returns the job's task count. */
static uint64_t run(rva_attention *att, dbatch *b, unsigned threads) {
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = threads;
	rva_engine *e = NULL;
	cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK, "engine: %s", rva_last_error());
	rva_batch batch = {b->n, b->seqs};
	rva_job_stats js;
	memset(&js, 0, sizeof js);
	cr_assert_eq(rva_engine_run(e, att, &batch, NULL, NULL, &js), RVA_OK, "run: %s",
	             rva_last_error());
	rva_engine_destroy(e);
	return js.tasks;
}

static void check_oracle(dbatch *b, const char *what) {
	ref_attn_spec sp = {.heads = b->heads, .kv_heads = b->kvh, .head_dim = b->hd,
	                    .scale = 1.0 / sqrt((double)b->hd)};
	size_t dim = b->heads * b->hd, kvd = b->kvh * b->hd;
	for (size_t s = 0; s < b->n; s++) {
		const rva_seq *q = &b->seqs[s];
		double *want = ref_alloc_d(q->nq * dim);
		ref_attention(&sp, q->nq, q->nk, q->q, dim, q->k, kvd, q->v, kvd, q->key_mask, want);
		double e = ref_err_ratio(q->out, want, q->nq * dim, ATOL, RTOL);
		cr_assert(e <= 1.0, "%s: sequence %zu (%zu x %zu keys): error ratio %g", what, s,
		          q->nq, q->nk, e);
		free(want);
	}
}

/* Copies every output of the batch into one buffer. */
static float *outputs(const dbatch *b) {
	size_t total = 0, dim = b->heads * b->hd;
	for (size_t s = 0; s < b->n; s++)
		total += b->seqs[s].nq * dim;
	float *all = malloc(total * sizeof *all), *p = all;
	for (size_t s = 0; s < b->n; s++) {
		memcpy(p, b->seqs[s].out, b->seqs[s].nq * dim * sizeof *p);
		p += b->seqs[s].nq * dim;
	}
	return all;
}

static size_t outputs_len(const dbatch *b) {
	size_t total = 0;
	for (size_t s = 0; s < b->n; s++)
		total += b->seqs[s].nq * b->heads * b->hd;
	return total;
}

/* Builds an attention of heads/kvh heads of hd, runs a batch of those sequences (one
 * masked) on 2 threads against the oracle, then on 1 thread: bit-identical. */
static void oracle_and_threads(const char *what, size_t heads, size_t kvh, size_t hd,
                               size_t n, const size_t *nqs, const size_t *nks, uint64_t seed) {
	rva_attention *att = build_hd(heads, kvh, hd);
	dbatch b = make_batch_hd(n, nqs, nks, heads, kvh, hd, true, seed);
	run(att, &b, 2);
	check_oracle(&b, what);
	float *two = outputs(&b);
	for (size_t s = 0; s < n; s++)
		memset(b.seqs[s].out, 0, b.seqs[s].nq * heads * hd * sizeof(float));
	run(att, &b, 1);
	float *one = outputs(&b);
	cr_assert(memcmp(one, two, outputs_len(&b) * sizeof(float)) == 0,
	          "%s: 1 and 2 threads differ", what);
	free(one);
	free(two);
	free_batch(&b);
	rva_attention_destroy(att);
}

/* 100 to 8192 keys in one batch, GQA (8 query heads over 2 kv heads), 1-3 queries, one
 * masked sequence: against the oracle, and bit-identical for 1 and 2 threads. */
static void ragged_gqa(const char *what) {
	static const size_t nks[] = {100, 8192, 777, 2048, 5000, 131, 4096};
	static const size_t nqs[] = {1, 1, 3, 1, 2, 1, 1};
	oracle_and_threads(what, 8, 2, HD, sizeof nks / sizeof nks[0], nqs, nks, 700);
}

Test(decode, ragged_gqa_batch_matches_oracle_and_threads) { ragged_gqa("decode kernels"); }

/* One head layout over ragged sequences (1-1001 keys: off the 32-key block and the row
 * pairs; 1-8 queries; one masked sequence): against the oracle, and bit-identical for 1
 * and 2 threads. */
static void one_shape(const char *what, size_t heads, size_t kvh, size_t hd, uint64_t seed) {
	static const size_t nks[] = {1, 3, 6, 37, 130, 1001}, nqs[] = {1, 2, 3, 8, 1, 3};
	char tag[128];
	snprintf(tag, sizeof tag, "%s, H%zu/%zu head dim %zu", what, heads, kvh, hd);
	oracle_and_threads(tag, heads, kvh, hd, sizeof nks / sizeof nks[0], nqs, nks, seed);
}

/*
 * Every path of the decode step (src/attention/decode_rows.h: whole rows for one query
 * over multi-head K/V; groups of four key rows with a short last group and (head, query)
 * rows in tuples of one to four for shared kv heads; the unrolled head dims 64 and 128 and
 * any other with a masked tail): head dims 64, 128, 80, 40, 17 and 1; GQA ratios 1, 2, 4
 * and 8 (8: multi-query); 1, 2, 3 and 8 queries.
 */
static void kernel_paths(const char *what) {
	static const size_t hds[] = {64, 128, 80, 40, 17, 1}, gs[] = {1, 2, 4, 8};
	for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
		for (size_t g = 0; g < sizeof gs / sizeof gs[0]; g++)
			one_shape(what, 8, 8 / gs[g], hds[a], 1000 + 10 * a + g);
}

/*
 * The model shapes of GQA and multi-query decode and the edges of the step: GQA 12/4
 * (G 3: tuples of three rows), llama-3's 32/8 at D128, multi-query 12/1 at D64 and D128
 * (three tuples of four per kv head), 6/2 at D80 and 5/1 at D33 (odd head counts and
 * head dims), head dims 160 and 256 (more than eight pieces per slice).
 */
static void model_shapes(const char *what) {
	static const size_t sh[][3] = {{12, 4, 64}, {32, 8, 128}, {12, 1, 64}, {12, 1, 128},
	                               {6, 2, 80},  {5, 1, 33},   {4, 2, 160}, {4, 1, 256}};
	for (size_t a = 0; a < sizeof sh / sizeof sh[0]; a++)
		one_shape(what, sh[a][0], sh[a][1], sh[a][2], 2000 + 10 * a);
}

Test(decode, gqa_mqa_model_shapes_match_oracle_and_threads) { model_shapes("decode kernels"); }

Test(decode, scalar_twin_model_shapes) {
	setenv("RVATTN_SIMD", "scalar", 1);
	model_shapes("scalar decode kernels");
}

Test(decode, kernel_paths_match_oracle_and_threads) { kernel_paths("decode kernels"); }

Test(decode, scalar_twin_kernel_paths) {
	setenv("RVATTN_SIMD", "scalar", 1);
	kernel_paths("scalar decode kernels");
}

Test(decode, scalar_twin_ragged_gqa) {
	setenv("RVATTN_SIMD", "scalar", 1);
	ragged_gqa("scalar decode kernels");
}

Test(decode, blis_twin_ragged_gqa) {
	setenv("RVATTN_ATTN_KERNEL", "blis", 1);
	ragged_gqa("blis twin");
}

/*
 * The half K/V step (rva__smh_decode_step: bf16 / fp16 rows read in place and widened in
 * registers, src/attention/decode_rows.h) against the fp32 step (rva__sm_decode_step) on the
 * same rows widened first: scores and O bit-identical, over the step's paths (whole rows for
 * one query over multi-head K/V, groups of four rows for shared kv heads; head dims 64 and
 * 128 unrolled, others masked; 37 rows: a short last group) and a K row stride wider than
 * the row.
 */
Test(decode, half_step_is_the_fp32_step_on_widened_rows) {
	static const size_t sh[][4] = {{12, 12, 64, 1}, {12, 4, 64, 1}, {32, 8, 128, 1},
	                               {12, 1, 64, 1},  {8, 8, 80, 4},  {5, 1, 33, 2},
	                               {4, 2, 160, 3},  {6, 3, 17, 1}};
	static const rva_dtype types[] = {RVA_BF16, RVA_F16};
	enum { N = 37, KB = 40 };
	for (size_t a = 0; a < sizeof sh / sizeof sh[0]; a++)
		for (size_t t = 0; t < 2; t++) {
			size_t H = sh[a][0], KVH = sh[a][1], D = sh[a][2], nq = sh[a][3], G = H / KVH;
			size_t kvd = KVH * D, ks = kvd + 3, dim = H * D, HQ = H * nq;
			float *kf = ref_alloc(N * ks), *vf = ref_alloc(N * kvd), *q = ref_alloc(nq * dim);
			float *prev = ref_alloc(HQ * KB);
			ref_fill_uniform(kf, N * ks, -1.0f, 1.0f, 300 + a);
			ref_fill_uniform(vf, N * kvd, -1.0f, 1.0f, 400 + a);
			ref_fill_uniform(q, nq * dim, -1.0f, 1.0f, 500 + a);
			ref_fill_uniform(prev, HQ * KB, 0.0f, 1.0f, 600 + a);
			uint16_t *kh = malloc(N * ks * 2), *vh = malloc(N * kvd * 2);
			rva__cvt_from_f32(types[t], kf, kh, N * ks);
			rva__cvt_from_f32(types[t], vf, vh, N * kvd);
			rva__cvt_to_f32(types[t], kh, kf, N * ks); /* the widened rows */
			rva__cvt_to_f32(types[t], vh, vf, N * kvd);
			float *sc_h = ref_alloc(HQ * KB), *sc_f = ref_alloc(HQ * KB);
			float *o_h = ref_alloc(HQ * D), *o_f = ref_alloc(HQ * D);
			float *kbuf = ref_alloc(KB * kvd), *vbuf = ref_alloc(KB * kvd);
			memset(sc_h, 0, HQ * KB * sizeof(float));
			memset(sc_f, 0, HQ * KB * sizeof(float));
			memset(o_h, 0, HQ * D * sizeof(float));
			memset(o_f, 0, HQ * D * sizeof(float));
			rva_seq seq = {.nq = nq, .nk = N, .k = kh, .k_stride = ks, .v = vh, .v_stride = kvd,
			               .k_dtype = types[t], .v_dtype = types[t]};
			float scale = 0.125f;
			rva__smh_decode_step(&seq, 0, N, 0, N, kvd, q, dim, nq, H, G, D, scale, sc_h, prev,
			                     KB, o_h, kbuf, vbuf);
			rva__sm_decode_step(kf, ks, N, vf, kvd, N, q, dim, nq, H, G, D, scale, sc_f, prev,
			                    KB, o_f);
			cr_assert(memcmp(sc_h, sc_f, HQ * KB * sizeof(float)) == 0,
			          "H%zu/%zu D%zu nq %zu %s: scores differ", H, KVH, D, nq,
			          rva__dtype_name(types[t]));
			cr_assert(memcmp(o_h, o_f, HQ * D * sizeof(float)) == 0,
			          "H%zu/%zu D%zu nq %zu %s: O differs", H, KVH, D, nq,
			          rva__dtype_name(types[t]));
			double onorm = 0.0;
			for (size_t i = 0; i < HQ * D; i++)
				onorm += fabs((double)o_f[i]);
			cr_assert(onorm > 1.0, "the step added nothing"); /* P.V ran */
			free(kf);
			free(vf);
			free(q);
			free(prev);
			free(kh);
			free(vh);
			free(sc_h);
			free(sc_f);
			free(o_h);
			free(o_f);
			free(kbuf);
			free(vbuf);
		}
}

/* Chunking of one sequence of nq x nk (H12 D64 multi-head unless said). */
static void split_of(const rva_attention *att, size_t nq, size_t nk, size_t *len, size_t *nch) {
	rva_seq s = {.nq = nq, .nk = nk};
	cr_assert(rva__softmax_split(att, &s, len, nch), "%zu x %zu keys: not key chunks", nq, nk);
}

Test(decode, plan_splits_by_cost_never_by_threads) {
	rva_attention *att = build(12, 12);
	size_t len, nch;
	/* 1 x 512 keys (3 MiB of K and V): less than two chunks' work: one chunk */
	split_of(att, 1, 512, &len, &nch);
	cr_assert_eq(nch, 1);
	cr_assert_eq(len, 512);
	/* G5's sequence, 1 x 4096 keys (24 MiB): split into equal chunks of whole 32-key
	 * blocks, each with at least 3 MiB of work (8 x 768 + 3 x 12 x 64 bytes per key) */
	split_of(att, 1, 4096, &len, &nch);
	cr_assert(nch >= 2 && nch <= 16, "nch %zu", nch);
	cr_assert_eq(len % 32, 0);
	cr_assert((nch - 1) * len < 4096 && nch * len >= 4096, "len %zu nch %zu", len, nch);
	cr_assert((double)len * (8.0 * 768 + 3.0 * 768) >= (double)(3u << 20) * 0.9,
	          "chunk of %zu keys is too little work", len);
	/* more keys, more chunks; the same shape always gives the same chunks */
	size_t len2, nch2;
	split_of(att, 1, 16384, &len2, &nch2);
	cr_assert_gt(nch2, nch);
	split_of(att, 1, 4096, &len2, &nch2);
	cr_assert(len2 == len && nch2 == nch);
	rva_attention_destroy(att);

	/* GQA: fewer K/V bytes per key, longer chunks for the same work */
	att = build(12, 2);
	split_of(att, 1, 4096, &len2, &nch2);
	cr_assert_lt(nch2, nch);
	rva_attention_destroy(att);

	/* an explicit kv_split still applies (whole tiles) */
	rva_config c = rva_flash(768, 128);
	c.kv_split = 300;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	split_of(att, 1, 4096, &len, &nch);
	cr_assert_eq(len, 384);
	cr_assert_eq(nch, 11);
	rva_attention_destroy(att);
}

/* The job graph follows the decision at any thread count: a one-chunk decode is a single
 * task that writes its output (plus the sequence's join node); a split one is nch chunk
 * tasks, one merge task and the join. */
Test(decode, plan_tasks_for_small_and_long_decodes) {
	rva_attention *att = build(12, 12);
	size_t nk[] = {512}, nq[] = {1};
	for (unsigned t = 1; t <= 2; t++) {
		dbatch b = make_batch(1, nq, nk, 12, 12, false, 900);
		cr_assert_eq(run(att, &b, t), 2, "1 x 512 keys on %u threads", t);
		check_oracle(&b, "1 x 512");
		free_batch(&b);
	}
	size_t len, nch;
	nk[0] = 4096;
	split_of(att, 1, 4096, &len, &nch);
	for (unsigned t = 1; t <= 2; t++) {
		dbatch b = make_batch(1, nq, nk, 12, 12, false, 901);
		cr_assert_eq(run(att, &b, t), nch + 2, "1 x 4096 keys on %u threads", t);
		check_oracle(&b, "1 x 4096");
		free_batch(&b);
	}
	rva_attention_destroy(att);
}

/* RVATTN_ATTN_KERNEL=blis: decode work runs the tile loop per head and chunk. */
Test(decode, blis_switch_reaches_decode) {
	setenv("RVATTN_ATTN_KERNEL", "blis", 1);
	rva_attention *att = build(12, 4);
	size_t nk[] = {4096}, nq[] = {1}, len, nch;
	split_of(att, 1, 4096, &len, &nch);
	dbatch b = make_batch(1, nq, nk, 12, 4, false, 902);
	cr_assert_eq(run(att, &b, 2), 12 * nch + 2, "per-head chunk tasks, a merge, the join");
	check_oracle(&b, "blis decode");
	free_batch(&b);
	/* a one-chunk decode too goes through the tile loop and a merge */
	nk[0] = 300;
	b = make_batch(1, nq, nk, 12, 4, false, 903);
	cr_assert_eq(run(att, &b, 1), 12 + 2);
	check_oracle(&b, "blis one-chunk decode");
	free_batch(&b);
	rva_attention_destroy(att);
}

/* The streaming-read probe reads buffers of any length (blocks, a float tail, a byte
 * tail) on the engine's workers and reports a positive time; more bytes take longer. */
Test(decode, read_probe_times_the_bytes) {
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 2;
	rva_engine *e = NULL;
	cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK);
	size_t big = (size_t)64 << 20, odd = 3 * ((size_t)1 << 20) + 4 * 5 + 3;
	unsigned char *a = malloc(big), *b = malloc(odd);
	memset(a, 1, big);
	memset(b, 2, odd);
	const void *bufs[2] = {a, b};
	size_t bytes[2] = {big, odd};
	double t_big = 0.0, t_small = 0.0;
	cr_assert_eq(rva_engine_read_probe(e, bufs, bytes, 2, &t_big), RVA_OK, "%s",
	             rva_last_error());
	cr_assert_gt(t_big, 0.0);
	/* 64 MiB against 1 MiB, best of five each: even on a loaded machine the big read takes
	 * longer */
	double best_big = t_big, best_small = 1e300;
	for (int r = 0; r < 5; r++) {
		bytes[0] = (size_t)1 << 20;
		cr_assert_eq(rva_engine_read_probe(e, bufs, bytes, 1, &t_small), RVA_OK);
		cr_assert_gt(t_small, 0.0);
		best_small = t_small < best_small ? t_small : best_small;
		bytes[0] = big;
		cr_assert_eq(rva_engine_read_probe(e, bufs, bytes, 2, &t_big), RVA_OK);
		best_big = t_big < best_big ? t_big : best_big;
	}
	cr_assert_gt(best_big, best_small, "64 MiB in %g s, 1 MiB in %g s", best_big, best_small);
	free(a);
	free(b);
	rva_engine_destroy(e);
}

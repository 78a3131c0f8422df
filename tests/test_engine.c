/*
 * The engine with real mechanisms: rva_engine_run equals rva_compute_batch bit for bit
 * (1 and 2 threads, several pools, every NUMA policy, training-mode dropout), a bad
 * sequence fails alone, job statistics, the submit/wait/poll/seq_status calls, copied
 * batch descriptors, pipelines, MoE statistics, and allocation failure at every
 * allocation of a run.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/fault_alloc.h"
#include "rvattn/alloc.h"
#include "rvattn/attention.h"
#include "rvattn/config.h"
#include "rvattn/engine.h"
#include "rvattn/pipeline.h"

/* ---- a ragged batch with deterministic contents ------------------------------------- */

#define MAXSEQ 8

typedef struct batch {
	size_t count, dim, kvdim;
	rva_seq seqs[MAXSEQ];
	float *mem[MAXSEQ][4];
	uint8_t *mask[MAXSEQ];
} batch;

static float rnd(unsigned *s) {
	*s = *s * 1664525u + 1013904223u;
	return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float *fill(size_t rows, size_t stride, unsigned *s) {
	float *p = malloc(sizeof(float) * (rows ? rows * stride : 1));
	cr_assert(p);
	for (size_t i = 0; i < rows * stride; i++)
		p[i] = rnd(s);
	return p;
}

/* nq/nk per sequence; every other sequence uses padded strides, one has a key mask */
static void batch_make(batch *b, size_t dim, size_t kvdim, size_t count, const size_t *nq,
                       const size_t *nk, unsigned seed) {
	memset(b, 0, sizeof *b);
	b->count = count;
	b->dim = dim;
	b->kvdim = kvdim;
	unsigned s = seed;
	for (size_t i = 0; i < count; i++) {
		size_t pad = i % 2 ? 3 : 0;
		rva_seq *q = &b->seqs[i];
		q->nq = nq[i];
		q->nk = nk[i];
		q->q_stride = i % 2 ? dim + pad : 0;
		q->k_stride = i % 2 ? kvdim + pad : 0;
		q->v_stride = i % 2 ? kvdim + pad : 0;
		q->out_stride = i % 2 ? dim + pad : 0;
		b->mem[i][0] = fill(nq[i], dim + pad, &s);
		b->mem[i][1] = fill(nk[i], kvdim + pad, &s);
		b->mem[i][2] = fill(nk[i], kvdim + pad, &s);
		b->mem[i][3] = fill(nq[i], dim + pad, &s);
		q->q = b->mem[i][0];
		q->k = b->mem[i][1];
		q->v = b->mem[i][2];
		q->out = b->mem[i][3];
		if (i == 2 && nk[i] > 1) {
			b->mask[i] = malloc(nk[i]);
			for (size_t k = 0; k < nk[i]; k++)
				b->mask[i][k] = (uint8_t)(k % 3 != 1);
			q->key_mask = b->mask[i];
		}
	}
}

static void batch_free(batch *b) {
	for (size_t i = 0; i < b->count; i++) {
		for (int k = 0; k < 4; k++)
			free(b->mem[i][k]);
		free(b->mask[i]);
	}
}

static void clear_out(batch *b) {
	for (size_t i = 0; i < b->count; i++) {
		size_t stride = b->seqs[i].out_stride ? b->seqs[i].out_stride : b->dim;
		memset(b->mem[i][3], 0xff, sizeof(float) * b->seqs[i].nq * stride); /* NaN */
	}
}

/* Copies the outputs (row by row, dim floats) into one array. */
static float *outputs(const batch *b, size_t *n) {
	size_t total = 0;
	for (size_t i = 0; i < b->count; i++)
		total += b->seqs[i].nq * b->dim;
	float *o = malloc(sizeof(float) * (total ? total : 1)), *p = o;
	for (size_t i = 0; i < b->count; i++) {
		size_t stride = b->seqs[i].out_stride ? b->seqs[i].out_stride : b->dim;
		for (size_t r = 0; r < b->seqs[i].nq; r++, p += b->dim)
			memcpy(p, (const float *)b->seqs[i].out + r * stride, sizeof(float) * b->dim);
	}
	*n = total;
	return o;
}

static const size_t NQ[MAXSEQ] = {5, 1, 33, 70, 0, 17, 2, 129};
static const size_t NK[MAXSEQ] = {7, 300, 33, 70, 4, 1, 150, 129};

static rva_engine *engine_with(unsigned threads, const char *synthetic, rva_numa_policy pol) {
	rva_engine_config c = rva_engine_config_defaults();
	c.threads = threads;
	c.topology_synthetic = synthetic;
	c.numa = pol;
	c.scratch_bytes = 256 << 10;
	c.spin_us = 50;
	rva_engine *e;
	rva_status st = rva_engine_create(&c, &e);
	cr_assert_eq(st, RVA_OK, "engine: %s", rva_last_error());
	return e;
}

static unsigned real_cores(void) {
	rva_engine *e = engine_with(0, NULL, RVA_NUMA_LOCAL);
	rva_engine_info info;
	rva_engine_info_get(e, &info);
	rva_engine_destroy(e);
	return info.workers;
}

/* The serial result, then the engine's on each engine: bit-identical. */
static void check_engines_match_serial(const rva_config *cfg, const rva_runtime *rt,
                                       rva_engine **engines, int nengines, unsigned seed) {
	rva_attention *att;
	rva_status st = rva_build(cfg, &att);
	cr_assert_eq(st, RVA_OK, "%s: build: %s", rva_mechanism_name(cfg->mechanism),
	             rva_last_error());
	size_t kvdim = cfg->dim / cfg->heads * (cfg->kv_heads ? cfg->kv_heads : cfg->heads);
	batch b;
	batch_make(&b, cfg->dim, kvdim, MAXSEQ, NQ, NK, seed);
	rva_batch rb = {.count = b.count, .seqs = b.seqs};
	clear_out(&b);
	st = rva_compute_batch(att, &rb, rt, NULL);
	cr_assert_eq(st, RVA_OK, "%s: serial: %s", rva_mechanism_name(cfg->mechanism),
	             rva_last_error());
	size_t n;
	float *want = outputs(&b, &n);
	for (size_t i = 0; i < n; i++)
		cr_assert(isfinite(want[i]), "serial output %zu not finite", i);
	for (int k = 0; k < nengines; k++) {
		clear_out(&b);
		rva_status ss[MAXSEQ];
		rva_job_stats js;
		st = rva_engine_run(engines[k], att, &rb, rt, ss, &js);
		cr_assert_eq(st, RVA_OK, "%s: engine %d: %s", rva_mechanism_name(cfg->mechanism), k,
		             rva_last_error());
		for (size_t s = 0; s < b.count; s++)
			cr_expect_eq(ss[s], RVA_OK);
		size_t m;
		float *got = outputs(&b, &m);
		cr_assert_eq(m, n);
		cr_expect(memcmp(got, want, n * sizeof(float)) == 0,
		          "%s: engine %d output differs from rva_compute_batch",
		          rva_mechanism_name(cfg->mechanism), k);
		double flops;
		rva_attention_flops(att, &rb, &flops);
		cr_expect_eq(js.flops, flops);
		cr_expect_gt(js.tasks, 0);
		cr_expect_gt(js.wall_ns, 0);
		cr_expect_eq(js.failed_sequences, 0);
		free(got);
	}
	free(want);
	batch_free(&b);
	rva_attention_destroy(att);
}

Test(engine, multi_head_bit_identical_1_and_2_threads) {
	unsigned cores = real_cores();
	rva_engine *engines[3];
	int n = 0;
	engines[n++] = engine_with(1, NULL, RVA_NUMA_LOCAL);
	if (cores >= 2)
		engines[n++] = engine_with(2, NULL, RVA_NUMA_LOCAL);
	/* four pools of one worker, tasks crossing pools */
	engines[n++] = engine_with(0, "numa:4 core:1 pu:1", RVA_NUMA_SPREAD);
	rva_config c = rva_multi_head(64, 4);
	check_engines_match_serial(&c, NULL, engines, n, 1);
	c.causal = true;
	check_engines_match_serial(&c, NULL, engines, n, 2);
	c = rva_multi_head(48, 6);
	c.kv_heads = 2; /* grouped-query */
	check_engines_match_serial(&c, NULL, engines, n, 3);
	for (int k = 0; k < n; k++)
		rva_engine_destroy(engines[k]);
}

Test(engine, every_policy_and_mechanism_bit_identical) {
	rva_engine *engines[4];
	int n = 0;
	for (int pol = 0; pol < RVA_NUMA_COUNT; pol++)
		engines[n++] = engine_with(0, "package:2 [numa] core:2 pu:1", (rva_numa_policy)pol);
	engines[n++] = engine_with(0, NULL, RVA_NUMA_LOCAL);
	rva_config cfgs[] = {rva_scaled_dot(32), rva_flash(64, 16), rva_linear(32, 16),
	                     rva_local_global(32, 8), rva_hyperbolic(16, -1.0f)};
	cfgs[1].heads = 4;
	for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++)
		check_engines_match_serial(&cfgs[i], NULL, engines, n, 10 + (unsigned)i);
	/* training mode: counter-based dropout masks do not depend on the thread */
	rva_config d = rva_multi_head(32, 2);
	d.dropout = 0.25f;
	rva_runtime rt = {.training = true, .seed = 99, .step = 3};
	check_engines_match_serial(&d, &rt, engines, n, 20);
	for (int k = 0; k < n; k++)
		rva_engine_destroy(engines[k]);
}

Test(engine, bad_sequence_fails_alone) {
	rva_engine *e = engine_with(0, NULL, RVA_NUMA_LOCAL);
	rva_config c = rva_multi_head(32, 2);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	batch b;
	batch_make(&b, 32, 32, 6, NQ, NK, 5);
	b.seqs[3].nk = 0;       /* RVA_EEMPTY */
	b.seqs[5].q = NULL;     /* RVA_ENULL */
	rva_batch rb = {.count = b.count, .seqs = b.seqs};
	rva_status ser[6], eng[6];
	clear_out(&b);
	rva_status st_serial = rva_compute_batch(att, &rb, NULL, ser);
	size_t n;
	float *want = outputs(&b, &n);
	clear_out(&b);
	rva_status st = rva_engine_run(e, att, &rb, NULL, eng, NULL);
	cr_expect_eq(st, RVA_EEMPTY);
	cr_expect_eq(st, st_serial);
	cr_expect(strstr(rva_last_error(), "sequence 3") != NULL, "%s", rva_last_error());
	for (int s = 0; s < 6; s++)
		cr_expect_eq(eng[s], ser[s], "sequence %d", s);
	cr_expect_eq(eng[5], RVA_ENULL);
	float *got = outputs(&b, &n);
	/* the good sequences (0, 1, 2, 4) completed with the serial numbers */
	size_t off = 0;
	for (size_t s = 0; s < 6; s++) {
		size_t len = b.seqs[s].nq * 32;
		if (s != 3 && s != 5)
			cr_expect(memcmp(got + off, want + off, len * sizeof(float)) == 0, "sequence %zu",
			          s);
		off += len;
	}
	free(want);
	free(got);

	/* the job API gives the same per sequence, with details */
	rva_job *job;
	cr_assert_eq(rva_engine_submit(e, att, &rb, NULL, &job), RVA_OK);
	cr_expect_eq(rva_job_wait(job), RVA_EEMPTY);
	rva_status s3;
	const char *detail;
	cr_expect_eq(rva_job_seq_status(job, 3, &s3, &detail), RVA_OK);
	cr_expect_eq(s3, RVA_EEMPTY);
	cr_expect(strstr(detail, "sequence 3") != NULL, "%s", detail);
	cr_expect_eq(rva_job_seq_status(job, 0, &s3, &detail), RVA_OK);
	cr_expect_eq(s3, RVA_OK);
	rva_job_stats js;
	cr_expect_eq(rva_job_stats_get(job, &js), RVA_OK);
	cr_expect_eq(js.failed_sequences, 2);
	rva_job_destroy(job);
	batch_free(&b);
	rva_attention_destroy(att);
	rva_engine_destroy(e);
}

Test(engine, submit_many_and_copied_descriptors) {
	rva_engine *e = engine_with(0, NULL, RVA_NUMA_LOCAL);
	rva_config c = rva_multi_head(32, 4);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	enum { NB = 4 };
	batch b[NB];
	float *want[NB];
	size_t n[NB];
	rva_job *job[NB];
	for (int k = 0; k < NB; k++) {
		batch_make(&b[k], 32, 32, MAXSEQ, NQ, NK, 40 + (unsigned)k);
		rva_batch rb = {.count = b[k].count, .seqs = b[k].seqs};
		clear_out(&b[k]);
		cr_assert_eq(rva_compute_batch(att, &rb, NULL, NULL), RVA_OK);
		want[k] = outputs(&b[k], &n[k]);
		clear_out(&b[k]);
	}
	for (int k = 0; k < NB; k++) {
		rva_seq copy[MAXSEQ];
		memcpy(copy, b[k].seqs, sizeof copy);
		rva_batch rb = {.count = b[k].count, .seqs = copy};
		cr_assert_eq(rva_engine_submit(e, att, &rb, NULL, &job[k]), RVA_OK);
		memset(copy, 0, sizeof copy); /* the job copied the descriptors */
	}
	for (int k = NB - 1; k >= 0; k--) {
		cr_expect_eq(rva_job_wait(job[k]), RVA_OK);
		bool done = false;
		rva_job_poll(job[k], &done);
		cr_expect(done);
		rva_job_destroy(job[k]);
		size_t m;
		float *got = outputs(&b[k], &m);
		cr_expect(memcmp(got, want[k], m * sizeof(float)) == 0, "batch %d", k);
		free(got);
		free(want[k]);
		batch_free(&b[k]);
	}
	/* argument errors */
	rva_batch rb = {.count = 2, .seqs = NULL};
	cr_expect_eq(rva_engine_submit(e, att, &rb, NULL, &job[0]), RVA_ENULL);
	cr_expect_eq(rva_engine_run(e, att, &rb, NULL, NULL, NULL), RVA_ENULL);
	rb.count = 0;
	cr_expect_eq(rva_engine_submit(NULL, att, &rb, NULL, &job[0]), RVA_ENULL);
	cr_expect_eq(rva_engine_submit(e, NULL, &rb, NULL, &job[0]), RVA_ENULL);
	cr_expect_eq(rva_engine_submit(e, att, NULL, NULL, &job[0]), RVA_ENULL);
	cr_expect_eq(rva_engine_submit(e, att, &rb, NULL, NULL), RVA_ENULL);
	rva_job_stats js;
	cr_expect_eq(rva_engine_run(e, att, &rb, NULL, NULL, &js), RVA_OK, "empty batch");
	cr_expect_eq(js.failed_sequences, 0);
	rva_attention_destroy(att);
	rva_engine_destroy(e);
}

Test(engine, pipeline_matches_serial) {
	rva_engine *e = engine_with(0, "numa:2 core:1 pu:1", RVA_NUMA_LOCAL);
	rva_config c = rva_multi_head(32, 4);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_pipeline *p;
	cr_assert_eq(rva_transformer_block(att, 0.1f, &p), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_pipeline_add_norm(p, RVA_NORM_BATCH), RVA_OK);
	batch b;
	batch_make(&b, 32, 32, MAXSEQ, NQ, NK, 77);
	rva_batch rb = {.count = b.count, .seqs = b.seqs};
	for (int training = 0; training < 2; training++) {
		rva_runtime rt = {.training = training, .seed = 5};
		clear_out(&b);
		rva_status st = rva_pipeline_run_batch(p, &rb, &rt, NULL);
		cr_assert_eq(st, RVA_OK, "serial pipeline: %s", rva_last_error());
		size_t n, m;
		float *want = outputs(&b, &n);
		clear_out(&b);
		st = rva_engine_run_pipeline(e, p, &rb, &rt, NULL, NULL);
		cr_assert_eq(st, RVA_OK, "engine pipeline: %s", rva_last_error());
		float *got = outputs(&b, &m);
		cr_expect(memcmp(got, want, n * sizeof(float)) == 0, "training %d", training);
		free(want);
		free(got);
	}
	rva_job *job;
	cr_expect_eq(rva_engine_submit_pipeline(e, NULL, &rb, NULL, &job), RVA_ENULL);
	rva_pipeline *empty;
	rva_pipeline_create(&empty);
	cr_expect_eq(rva_engine_run_pipeline(e, empty, &rb, NULL, NULL, NULL), RVA_EEMPTY);
	rva_pipeline_destroy(empty);
	batch_free(&b);
	rva_pipeline_destroy(p);
	rva_engine_destroy(e);
}

Test(engine, moe_statistics) {
	rva_config c = rva_moe(32, 4, 2);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s", rva_last_error());
	batch b;
	batch_make(&b, 32, 32, 4, NQ, NK, 8);
	rva_batch rb = {.count = b.count, .seqs = b.seqs};
	rva_moe_stats serial, eng;
	memset(&serial, 0, sizeof serial);
	rva_runtime rt = {.moe_stats = &serial};
	rva_status st = rva_compute_batch(att, &rb, &rt, NULL);
	cr_assert_eq(st, RVA_OK, "%s", rva_last_error());
	rva_engine *e = engine_with(0, NULL, RVA_NUMA_LOCAL);
	memset(&eng, 0, sizeof eng);
	rt.moe_stats = &eng;
	rva_job *job;
	cr_assert_eq(rva_engine_submit(e, att, &rb, &rt, &job), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_job_wait(job), RVA_OK);
	rva_moe_stats js;
	cr_assert_eq(rva_job_moe_stats(job, &js), RVA_OK, "%s", rva_last_error());
	cr_expect(memcmp(&js, &eng, sizeof eng) == 0, "the job keeps a copy of the caller's stats");
	rva_job_destroy(job);
	cr_expect_eq(eng.tokens, serial.tokens);
	cr_expect(memcmp(eng.processed, serial.processed, sizeof eng.processed) == 0);
	cr_expect_eq(eng.load_balancing_loss, serial.load_balancing_loss);
	/* not asked for: not collected */
	cr_assert_eq(rva_engine_submit(e, att, &rb, NULL, &job), RVA_OK);
	cr_assert_eq(rva_job_wait(job), RVA_OK);
	cr_expect_eq(rva_job_moe_stats(job, &js), RVA_ENOTFOUND);
	rva_job_destroy(job);
	rva_engine_destroy(e);
	batch_free(&b);
	rva_attention_destroy(att);
}

/* ---- allocation failure at every allocation of a run ---------------------------------- */


Test(engine, allocation_failures_leave_engine_usable) {
	cr_assert_eq(ref_fault_install(), RVA_OK);
	rva_config c = rva_multi_head(32, 2);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_engine *e = engine_with(0, "numa:2 core:1 pu:1", RVA_NUMA_SPREAD);
	batch b;
	batch_make(&b, 32, 32, 5, NQ, NK, 9);
	rva_batch rb = {.count = b.count, .seqs = b.seqs};
	clear_out(&b);
	cr_assert_eq(rva_compute_batch(att, &rb, NULL, NULL), RVA_OK);
	size_t n;
	float *want = outputs(&b, &n);
	/* one run first: the engine keeps the job's task state block cached for reuse */
	cr_assert_eq(rva_engine_run(e, att, &rb, NULL, NULL, NULL), RVA_OK);
	long base = ref_fault_live();
	long k = 0;
	for (;; k++) {
		ref_fault_arm(k, false);
		rva_status st = rva_engine_run(e, att, &rb, NULL, NULL, NULL);
		long used = ref_fault_count();
		ref_fault_arm(-1, false);
		if (st == RVA_OK && k >= used)
			break;
		cr_expect(st == RVA_OK || st == RVA_ENOMEM, "allocation %ld: %s", k,
		          rva_status_name(st));
		cr_expect_eq(ref_fault_live(), base, "allocation %ld leaks", k);
		/* usable afterwards, same numbers */
		clear_out(&b);
		cr_assert_eq(rva_engine_run(e, att, &rb, NULL, NULL, NULL), RVA_OK);
		size_t m;
		float *got = outputs(&b, &m);
		cr_expect(memcmp(got, want, n * sizeof(float)) == 0, "after failing allocation %ld", k);
		free(got);
	}
	cr_expect_gt(k, 3);
	free(want);
	batch_free(&b);
	rva_engine_destroy(e);
	rva_attention_destroy(att);
	cr_expect_eq(ref_fault_live(), 0);
	ref_fault_uninstall();
}

Test(engine, job_progress_counts_tasks) {
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 1;
	rva_engine *e;
	cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK);
	rva_config c = rva_multi_head(64, 4);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	enum { PQ = 300, PK = 300 };
	float *q = calloc(PQ * 64, sizeof(float)), *out = calloc(PQ * 64, sizeof(float));
	for (size_t i = 0; i < PQ * 64; i++)
		q[i] = (float)(i % 17) / 17.0f;
	rva_seq s = {.nq = PQ, .nk = PK, .q = q, .k = q, .v = q, .out = out};
	rva_batch b = {1, &s};
	rva_job *job;
	cr_assert_eq(rva_engine_submit(e, att, &b, NULL, &job), RVA_OK);
	uint64_t done, total;
	cr_assert_eq(rva_job_progress(job, &done, &total), RVA_OK);
	cr_assert_gt(total, 1);
	cr_assert_leq(done, total);
	cr_assert_eq(rva_job_wait(job), RVA_OK);
	cr_assert_eq(rva_job_progress(job, &done, &total), RVA_OK);
	cr_assert_eq(done, total, "an ended job is complete");
	cr_assert_eq(rva_job_progress(NULL, &done, &total), RVA_ENULL);
	rva_job_destroy(job);
	rva_attention_destroy(att);
	rva_engine_destroy(e);
	free(q);
	free(out);
}

/*
 * Fault injection: an allocator (rva_set_allocator) that fails the k-th allocation, or
 * every allocation from the k-th on, and counts live blocks. For every mechanism (the
 * seven, the T5 and sparse presets), the engine (create, run, submit/wait, scratch
 * growth) and pipelines (run on one query, serially over a batch, through the engine),
 * the whole life create -> build -> run -> destroy is walked with k over every
 * allocation it makes. Each failure must come back as RVA_ENOMEM (never a crash or
 * another status), nothing may leak (the live count returns to where it started), and
 * after a failed run the same attention / pipeline / engine must run the next job and
 * give exactly the reference output. Memory that hwloc, libgomp and BLIS allocate for
 * themselves does not go through the hook and is not counted.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ref/fault_alloc.h"
#include "rvattn/rvattn.h"

/* ---- a small ragged problem ------------------------------------------------------------- */

#define NSEQ 3

typedef struct prob {
	size_t dim, kvd, count;
	rva_seq seqs[NSEQ];
	float *mem, *out;
	size_t out_floats;     /* batch outputs, then one single-query output */
	uint8_t mask[16];
	const float *krow[16], *vrow[16];
} prob;

static const size_t PNQ[NSEQ] = {5, 1, 0}, PNK[NSEQ] = {7, 9, 3};

static void prob_make(prob *p, size_t dim, size_t kvd) {
	memset(p, 0, sizeof *p);
	p->dim = dim;
	p->kvd = kvd;
	p->count = NSEQ;
	size_t fl = 0, outs = 0;
	for (int s = 0; s < NSEQ; s++) {
		fl += PNQ[s] * dim + 2 * PNK[s] * kvd;
		outs += PNQ[s] * dim;
	}
	p->out_floats = outs + dim;
	p->mem = malloc(fl * sizeof(float));
	p->out = malloc(p->out_floats * sizeof(float));
	cr_assert(p->mem && p->out);
	unsigned r = 12345;
	for (size_t i = 0; i < fl; i++) {
		r = r * 1664525u + 1013904223u;
		p->mem[i] = (float)((r >> 8) & 0xffff) / 32768.0f - 1.0f;
	}
	for (int i = 0; i < 16; i++)
		p->mask[i] = i % 3 != 1;
	float *m = p->mem, *o = p->out;
	for (int s = 0; s < NSEQ; s++) {
		rva_seq *q = &p->seqs[s];
		q->nq = PNQ[s];
		q->nk = PNK[s];
		q->q = m;
		m += PNQ[s] * dim;
		q->k = m;
		m += PNK[s] * kvd;
		q->v = m;
		m += PNK[s] * kvd;
		q->out = o;
		o += PNQ[s] * dim;
		q->key_mask = s == 1 ? p->mask : NULL;
	}
	for (size_t i = 0; i < PNK[0]; i++) {
		p->krow[i] = (const float *)p->seqs[0].k + i * kvd;
		p->vrow[i] = (const float *)p->seqs[0].v + i * kvd;
	}
}

static void prob_free(prob *p) {
	free(p->mem);
	free(p->out);
}

static rva_batch prob_batch(const prob *p) { return (rva_batch){p->count, p->seqs}; }

/* ---- the walk -------------------------------------------------------------------------- */

/*
 * A scenario runs a whole life on its problem and returns the first failing status (after
 * freeing what it created). A failing create/build step ends it. A failing run step
 * (RUN_STEP) is repeated at once with the injection off, on the same objects, which must
 * now give the reference output; the scenario then goes on (injection off) and returns
 * the first failure, with *recovered set.
 */
typedef rva_status (*scenario)(const void *arg, prob *p, bool *recovered);

#define RUN_STEP(call)                                                                 \
	do {                                                                               \
		rva_status s_ = (call);                                                        \
		if (s_ != RVA_OK) {                                                            \
			cr_expect(rva_last_error()[0] != '\0', "%s: %s without a message", #call,   \
			          rva_status_name(s_));                                            \
			if (first == RVA_OK)                                                       \
				first = s_;                                                            \
			ref_fault_disarm();                                                               \
			rva_status again_ = (call);                                                \
			cr_expect_eq(again_, RVA_OK, "%s: repeated after %s: %s (%s)", #call,      \
			             rva_status_name(s_), rva_status_name(again_), rva_last_error()); \
			*recovered = true;                                                         \
		}                                                                              \
	} while (0)

static void walk(const char *name, scenario run, const void *arg, size_t dim, size_t kvd) {
	prob p;
	prob_make(&p, dim, kvd);
	cr_assert_eq(ref_fault_install(), RVA_OK);
	/* Reference run (also warms one-time state: kernel choice, BLIS contexts). */
	ref_fault_arm(-1, false);
	bool rec = false;
	memset(p.out, 0xff, p.out_floats * sizeof(float));
	cr_assert_eq(run(arg, &p, &rec), RVA_OK, "%s: reference run: %s", name, rva_last_error());
	float *ref = malloc(p.out_floats * sizeof(float));
	cr_assert(ref);
	memcpy(ref, p.out, p.out_floats * sizeof(float));
	long base = ref_fault_live();
	ref_fault_arm(-1, false);
	rec = false;
	memset(p.out, 0xff, p.out_floats * sizeof(float));
	cr_assert_eq(run(arg, &p, &rec), RVA_OK, "%s: second clean run", name);
	long n = ref_fault_count();
	cr_assert(n > 0, "%s: no allocation goes through the hook", name);
	cr_expect(memcmp(p.out, ref, p.out_floats * sizeof(float)) == 0,
	          "%s: two clean runs differ", name);
	long enomem = 0, absorbed = 0;
	for (int sticky = 0; sticky < 2; sticky++) {
		for (long k = 1; k <= n; k++) {
			memset(p.out, 0xff, p.out_floats * sizeof(float));
			ref_fault_arm(k - 1, sticky); /* k counts from 1 */
			rec = false;
			rva_status st = run(arg, &p, &rec);
			ref_fault_disarm();
			long failed = ref_fault_failed();
			cr_expect(st == RVA_OK || st == RVA_ENOMEM,
			          "%s: allocation %ld of %ld (%s): status %s (%s)", name, k, n,
			          sticky ? "and all later" : "alone", rva_status_name(st),
			          rva_last_error());
			if (st == RVA_ENOMEM && !rec)
				cr_expect(rva_last_error()[0] != '\0', "%s: ENOMEM without a message",
				          name);
			cr_expect_eq(ref_fault_live(), base,
			             "%s: allocation %ld (%s) failed: %ld blocks leaked", name, k,
			             sticky ? "and all later" : "alone", ref_fault_live() - base);
			if (st == RVA_OK || rec)
				cr_expect(memcmp(p.out, ref, p.out_floats * sizeof(float)) == 0,
				          "%s: allocation %ld (%s) failed (status %s, recovered %d): "
				          "output differs from the reference", name, k,
				          sticky ? "and all later" : "alone", rva_status_name(st), rec);
			if (failed && st == RVA_ENOMEM)
				enomem++;
			else if (failed)
				absorbed++;
			/* Re-base: a leak must not cascade into every later point. */
			base = ref_fault_live();
		}
	}
	fprintf(stderr, "faults: %-28s %3ld allocations x 2 modes: %ld ENOMEM, %ld absorbed "
	        "(the call still succeeded)\n", name, n, enomem, absorbed);
	ref_fault_uninstall();
	free(ref);
	prob_free(&p);
}

/* ---- mechanisms --------------------------------------------------------------------------- */

static rva_status scen_mechanism(const void *arg, prob *p, bool *recovered) {
	const rva_config *c = arg;
	rva_attention *att = NULL;
	rva_status first = RVA_OK;
	rva_status st = rva_build(c, &att);
	if (st != RVA_OK)
		return st;
	rva_batch b = prob_batch(p);
	rva_moe_stats ms;
	rva_runtime rt = {.training = false, .moe_stats = &ms};
	RUN_STEP(rva_compute_batch(att, &b, &rt, NULL));
	float *single = p->out + p->out_floats - p->dim;
	RUN_STEP(rva_compute_ex(att, p->seqs[0].q, p->krow, p->vrow, NULL, p->seqs[0].nk,
	                        single, &rt));
	/* A second job on the same attention, after the first. */
	RUN_STEP(rva_compute_batch(att, &b, NULL, NULL));
	rva_attention_destroy(att);
	return first;
}

static void walk_config(const char *name, rva_config c) {
	rva_config r = c;
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s: %s", name, rva_last_error());
	rva_attention_config(att, &r);
	size_t kvd = r.kv_heads * (r.dim / r.heads);
	rva_attention_destroy(att);
	walk(name, scen_mechanism, &c, c.dim, kvd);
}

Test(faults, scaled_dot) { walk_config("scaled_dot", rva_scaled_dot(16)); }

Test(faults, multi_head_gqa) {
	rva_config c = rva_multi_head(16, 4);
	c.kv_heads = 2;
	walk_config("multi_head (GQA)", c);
}

Test(faults, flash_causal) {
	rva_config c = rva_flash(16, 4);
	c.heads = 2;
	c.causal = true;
	c.query_block = 2;
	walk_config("flash (causal)", c);
}

Test(faults, linear) {
	rva_config c = rva_linear(16, 8);
	c.heads = 2;
	walk_config("linear", c);
	c.causal = true;
	c.block_size = 2;
	walk_config("linear (causal)", c);
}

Test(faults, local_global) {
	static const size_t globals[] = {0, 3};
	rva_config c = rva_local_global(16, 4);
	c.heads = 2;
	c.global_indices = globals;
	c.n_global_indices = 2;
	walk_config("local_global", c);
}

Test(faults, hyperbolic) {
	rva_config c = rva_hyperbolic(16, -1.0f);
	c.heads = 2;
	walk_config("hyperbolic", c);
	c.aggregation = RVA_AGG_FRECHET;
	walk_config("hyperbolic (Frechet)", c);
}

Test(faults, moe) {
	rva_config c = rva_moe(16, 4, 2);
	c.heads = 2;
	c.expert_capacity = 1.0f;
	walk_config("moe (mixed experts)", c);
}

Test(faults, t5_preset) {
	rva_config c = rva_preset_config(RVA_PRESET_T5, 16);
	c.heads = 2;
	walk_config("t5 preset", c);
}

Test(faults, sparse_preset) {
	rva_config c = rva_preset_config(RVA_PRESET_SPARSE_TRANSFORMER, 16);
	c.heads = 2;
	c.sparse_stride = 3;
	c.block_size = 4;
	walk_config("sparse_transformer preset", c);
}

/* ---- the engine ----------------------------------------------------------------------------- */

typedef struct engine_arg {
	rva_config cfg;
	unsigned threads;
} engine_arg;

/* Submits b on e, waits, destroys the job. */
static rva_status submit_wait(rva_engine *e, const rva_attention *att, const rva_batch *b) {
	rva_job *job = NULL;
	rva_status st = rva_engine_submit(e, att, b, NULL, &job);
	if (st != RVA_OK)
		return st;
	st = rva_job_wait(job);
	rva_job_destroy(job);
	return st;
}

static rva_status scen_engine(const void *arg, prob *p, bool *recovered) {
	const engine_arg *a = arg;
	rva_attention *att = NULL;
	rva_engine *e = NULL;
	rva_status first = RVA_OK;
	rva_status st = rva_build(&a->cfg, &att);
	if (st != RVA_OK)
		return st;
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = a->threads;
	ec.scratch_bytes = 1024; /* the first job grows every worker's scratch */
	ec.spin_us = 0;
	if ((st = rva_engine_create(&ec, &e)) != RVA_OK)
		goto fail;
	rva_batch b = prob_batch(p);
	rva_status ss[NSEQ];
	rva_job_stats js;
	RUN_STEP(rva_engine_run(e, att, &b, NULL, ss, &js));
	/* submit / wait on the same engine: the first query row alone */
	rva_seq one = p->seqs[0];
	one.nq = 1;
	one.out = p->out + p->out_floats - p->dim;
	rva_batch b1 = {1, &one};
	RUN_STEP(submit_wait(e, att, &b1));
	/* the batch again, on the same engine, after everything above */
	RUN_STEP(rva_engine_run(e, att, &b, NULL, NULL, NULL));
fail:
	rva_engine_destroy(e);
	rva_attention_destroy(att);
	return st != RVA_OK ? st : first;
}

Test(faults, engine_multi_head) {
	engine_arg a = {rva_multi_head(16, 4), 2};
	a.cfg.kv_heads = 2;
	walk("engine: multi_head, 2 threads", scen_engine, &a, 16, 8);
}

Test(faults, engine_flash_1_thread) {
	engine_arg a = {rva_flash(16, 4), 1};
	a.cfg.heads = 2;
	a.cfg.causal = true;
	walk("engine: flash, 1 thread", scen_engine, &a, 16, 16);
}

Test(faults, engine_moe) {
	engine_arg a = {rva_moe(16, 4, 2), 2};
	a.cfg.heads = 2;
	a.cfg.expert_capacity = 1.0f;
	walk("engine: moe, 2 threads", scen_engine, &a, 16, 16);
}

Test(faults, engine_linear_causal) {
	engine_arg a = {rva_linear(16, 8), 2};
	a.cfg.heads = 2;
	a.cfg.causal = true;
	a.cfg.block_size = 2;
	walk("engine: linear, 2 threads", scen_engine, &a, 16, 16);
}

/* ---- pipelines --------------------------------------------------------------------------------- */

static rva_status scale_row(const float *in, float *out, size_t dim, void *user) {
	(void)user;
	for (size_t i = 0; i < dim; i++)
		out[i] = 0.5f * in[i];
	return RVA_OK;
}

/* transformer_block (post-norm) run on one query, serially over the batch, and through
 * the engine; then a hand-built pipeline with every stage kind (BatchNorm in training
 * mode: a cross-sequence reduction). */
static rva_status scen_pipeline(const void *arg, prob *p, bool *recovered) {
	(void)arg;
	rva_pipeline *tb = NULL, *pp = NULL;
	rva_engine *e = NULL;
	rva_attention *att = NULL;
	rva_config c = rva_multi_head(16, 2);
	rva_status first = RVA_OK;
	rva_status st = rva_build(&c, &att);
	if (st != RVA_OK)
		return st;
	st = rva_transformer_block(att, 0.0f, &tb); /* keeps att only on success */
	if (st != RVA_OK) {
		rva_attention_release(att);
		return st;
	}
	att = NULL;
	rva_batch b = prob_batch(p);
	RUN_STEP(rva_pipeline_run_batch(tb, &b, NULL, NULL));
	float *single = p->out + p->out_floats - p->dim;
	RUN_STEP(rva_pipeline_run(tb, p->seqs[0].q, p->krow, p->vrow, p->seqs[0].nk, single));
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 2;
	ec.spin_us = 0;
	if ((st = rva_engine_create(&ec, &e)) != RVA_OK)
		goto fail;
	RUN_STEP(rva_engine_run_pipeline(e, tb, &b, NULL, NULL, NULL));

	/* every stage kind */
	if ((st = rva_pipeline_create(&pp)) != RVA_OK)
		goto fail;
	c = rva_linear(16, 8);
	c.heads = 2;
	if ((st = rva_build(&c, &att)) != RVA_OK)
		goto fail;
	if ((st = rva_pipeline_add_attention(pp, att)) != RVA_OK)
		goto fail; /* att stays ours: freed below */
	att = NULL;
	float gain[16], bias[16];
	for (int i = 0; i < 16; i++) {
		gain[i] = 1.0f + 0.01f * (float)i;
		bias[i] = 0.02f * (float)i;
	}
	rva_norm_config nc = rva_norm_defaults(RVA_NORM_LAYER);
	nc.gain = gain;
	nc.bias = bias;
	rva_norm_config bn = rva_norm_defaults(RVA_NORM_BATCH);
	bn.running_mean = bias;
	bn.running_var = gain;
	if ((st = rva_pipeline_add_norm_ex(pp, &nc)) != RVA_OK ||
	    (st = rva_pipeline_add_dropout(pp, 0.25f)) != RVA_OK ||
	    (st = rva_pipeline_add_residual(pp)) != RVA_OK ||
	    (st = rva_pipeline_add_custom(pp, scale_row, NULL)) != RVA_OK ||
	    (st = rva_pipeline_add_norm_ex(pp, &bn)) != RVA_OK ||
	    (st = rva_pipeline_add_norm(pp, RVA_NORM_RMS)) != RVA_OK)
		goto fail;
	rva_runtime train = {.training = true, .seed = 3, .step = 1};
	RUN_STEP(rva_pipeline_run_batch(pp, &b, &train, NULL));
	RUN_STEP(rva_engine_run_pipeline(e, pp, &b, &train, NULL, NULL));
fail:
	rva_engine_destroy(e);
	rva_pipeline_destroy(pp);
	rva_pipeline_destroy(tb);
	rva_attention_destroy(att);
	return st != RVA_OK ? st : first;
}

Test(faults, pipelines) { walk("pipelines (serial + engine)", scen_pipeline, NULL, 16, 16); }

/* ---- .npy -------------------------------------------------------------------------------------- */

static rva_status scen_npy(const void *arg, prob *p, bool *recovered) {
	(void)arg;
	(void)recovered;
	static const size_t shape[2] = {5, 16};
	char path[] = "/tmp/rvattn_faults_XXXXXX";
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	close(fd);
	rva_status st = rva_npy_save(path, p->seqs[0].q, 2, shape);
	if (st == RVA_OK) {
		rva_npy_array a;
		st = rva_npy_load(path, &a);
		if (st == RVA_OK) {
			memcpy(p->out, a.data, 5 * 16 * sizeof(float));
			rva_npy_free(&a);
		}
	}
	unlink(path);
	return st;
}

Test(faults, npy) { walk("npy save + load", scen_npy, NULL, 16, 16); }


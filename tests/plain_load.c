/*
 * Load test of the engine (a plain program: it also runs under ThreadSanitizer).
 *
 * 8 caller threads submit 1000 jobs of mixed mechanisms, pipelines and sizes to one
 * engine with 2 workers, up to 4 in flight per thread, and cancel a random tenth of them
 * (some at once, some after a short while). Checked: every job ends exactly once, as done
 * or cancelled (rva_job_wait returns RVA_OK or RVA_ECANCELLED, and the same again when
 * asked twice; rva_job_poll then says done); the outputs of done jobs are byte-identical
 * to rva_compute_batch / rva_pipeline_run_batch results computed up front; nothing hangs
 * (a watchdog ends the program after 300 s); the blocks allocated through the
 * rva_allocator hook come back to their starting count.
 *
 * Prints one line with the figures (jobs done / cancelled, time, jobs per second).
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ref/fault_alloc.h"
#include "rvattn/rvattn.h"

#define THREADS 8
#define JOBS_PER_THREAD 125
#define IN_FLIGHT 4
#define MAXSEQ 4
#define WATCHDOG_S 300

static atomic_int failures;

#define CHECK(cond, ...)                                                               \
	do {                                                                               \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "plain_load: FAIL %s:%d: ", __FILE__, __LINE__);          \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, "\n");                                                     \
			atomic_fetch_add(&failures, 1);                                            \
		}                                                                              \
	} while (0)

static void on_alarm(int sig) {
	(void)sig;
	static const char msg[] = "plain_load: FAIL: watchdog: still running after 300 s "
	                          "(a job hangs)\n";
	if (write(2, msg, sizeof msg - 1) < 0) {
	}
	_exit(2);
}

/* ---- job templates: an attention or a pipeline, a batch, the reference output ---------- */

typedef struct tmpl {
	const char *name;
	rva_attention *att;    /* or */
	rva_pipeline *pipe;
	size_t count, dim;
	rva_seq seqs[MAXSEQ];
	float *in;             /* q, k, v of every sequence */
	float *ref;            /* outputs (packed rows, sequence after sequence) */
	size_t out_floats;
	size_t out_off[MAXSEQ];
} tmpl;

static float rnd(unsigned *s) {
	*s = *s * 1664525u + 1013904223u;
	return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void tmpl_make(tmpl *t, const char *name, rva_config c, bool pipeline, size_t count,
                      const size_t *nq, const size_t *nk, unsigned seed) {
	memset(t, 0, sizeof *t);
	t->name = name;
	rva_attention *att;
	if (rva_build(&c, &att) != RVA_OK) {
		fprintf(stderr, "plain_load: build %s: %s\n", name, rva_last_error());
		exit(1);
	}
	rva_config r;
	rva_attention_config(att, &r);
	size_t dim = r.dim, kvd = r.kv_heads * (r.dim / r.heads);
	if (pipeline) {
		if (rva_transformer_block(att, 0.0f, &t->pipe) != RVA_OK) {
			fprintf(stderr, "plain_load: pipeline %s: %s\n", name, rva_last_error());
			exit(1);
		}
	} else {
		t->att = att;
	}
	t->count = count;
	t->dim = dim;
	size_t in = 0, out = 0;
	for (size_t s = 0; s < count; s++) {
		in += nq[s] * dim + 2 * nk[s] * kvd;
		t->out_off[s] = out;
		out += nq[s] * dim;
	}
	t->in = malloc(in * sizeof(float));
	t->ref = malloc(out * sizeof(float));
	t->out_floats = out;
	if (!t->in || !t->ref)
		exit(1);
	for (size_t i = 0; i < in; i++)
		t->in[i] = rnd(&seed);
	float *p = t->in;
	for (size_t s = 0; s < count; s++) {
		rva_seq *q = &t->seqs[s];
		q->nq = nq[s];
		q->nk = nk[s];
		q->q = p;
		p += nq[s] * dim;
		q->k = p;
		p += nk[s] * kvd;
		q->v = p;
		p += nk[s] * kvd;
		q->out = t->ref + t->out_off[s];
	}
	rva_batch b = {count, t->seqs};
	rva_status st = t->pipe ? rva_pipeline_run_batch(t->pipe, &b, NULL, NULL)
	                        : rva_compute_batch(t->att, &b, NULL, NULL);
	if (st != RVA_OK) {
		fprintf(stderr, "plain_load: reference %s: %s\n", name, rva_last_error());
		exit(1);
	}
}

static void tmpl_free(tmpl *t) {
	rva_attention_destroy(t->att);
	rva_pipeline_destroy(t->pipe);
	free(t->in);
	free(t->ref);
}

#define NTMPL 12
static tmpl T[NTMPL];
static rva_engine *engine;

static void templates_make(void) {
	int i = 0;
	rva_config c;
	{
		size_t nq[] = {16, 1, 33}, nk[] = {16, 40, 20};
		tmpl_make(&T[i++], "scaled_dot", rva_scaled_dot(32), false, 3, nq, nk, 1);
	}
	{
		size_t nq[] = {24, 7}, nk[] = {30, 7};
		c = rva_multi_head(64, 8);
		c.kv_heads = 2;
		tmpl_make(&T[i++], "multi_head gqa", c, false, 2, nq, nk, 2);
	}
	{
		size_t nq[] = {40, 3, 17, 1}, nk[] = {40, 64, 17, 90};
		c = rva_flash(64, 16);
		c.heads = 4;
		c.causal = true;
		tmpl_make(&T[i++], "flash causal", c, false, 4, nq, nk, 3);
	}
	{
		size_t nq[] = {48}, nk[] = {48};
		c = rva_linear(32, 16);
		c.heads = 2;
		tmpl_make(&T[i++], "linear", c, false, 1, nq, nk, 4);
	}
	{
		size_t nq[] = {37, 5}, nk[] = {37, 5};
		c = rva_linear(32, 16);
		c.heads = 2;
		c.causal = true;
		c.block_size = 4;
		tmpl_make(&T[i++], "linear causal", c, false, 2, nq, nk, 5);
	}
	{
		size_t nq[] = {50, 12}, nk[] = {50, 12};
		c = rva_local_global(32, 8);
		c.heads = 2;
		tmpl_make(&T[i++], "local_global", c, false, 2, nq, nk, 6);
	}
	{
		size_t nq[] = {20, 9}, nk[] = {25, 9};
		c = rva_hyperbolic(32, -1.0f);
		c.heads = 2;
		tmpl_make(&T[i++], "hyperbolic", c, false, 2, nq, nk, 7);
	}
	{
		size_t nq[] = {30, 10}, nk[] = {30, 10};
		c = rva_moe(32, 4, 2);
		c.heads = 2;
		tmpl_make(&T[i++], "moe", c, false, 2, nq, nk, 8);
	}
	{
		size_t nq[] = {32, 8}, nk[] = {32, 8};
		c = rva_preset_config(RVA_PRESET_T5, 32);
		c.heads = 4;
		tmpl_make(&T[i++], "t5", c, false, 2, nq, nk, 9);
	}
	{
		size_t nq[] = {45}, nk[] = {45};
		c = rva_preset_config(RVA_PRESET_SPARSE_TRANSFORMER, 32);
		c.heads = 4;
		c.sparse_stride = 5;
		c.block_size = 16;
		tmpl_make(&T[i++], "sparse", c, false, 1, nq, nk, 10);
	}
	{
		size_t nq[] = {12, 20, 3}, nk[] = {12, 25, 3};
		c = rva_multi_head(32, 4);
		tmpl_make(&T[i++], "transformer_block pipeline", c, true, 3, nq, nk, 11);
	}
	{
		size_t nq[] = {64, 64}, nk[] = {64, 64};
		c = rva_multi_head(64, 4);
		tmpl_make(&T[i++], "multi_head bigger", c, false, 2, nq, nk, 12);
	}
}

/* ---- the callers ------------------------------------------------------------------------ */

typedef struct slot {
	rva_job *job;
	const tmpl *t;
	float *out;
	bool cancelled;
	int seq_no;
} slot;

static atomic_long n_done, n_cancelled, n_cancel_requests;

static void slot_finish(slot *sl) {
	rva_status st = rva_job_wait(sl->job);
	CHECK(st == RVA_OK || st == RVA_ECANCELLED, "%s job %d: wait gives %s (%s)", sl->t->name,
	      sl->seq_no, rva_status_name(st), rva_last_error());
	CHECK(rva_job_wait(sl->job) == st, "%s job %d: a second wait gives another status",
	      sl->t->name, sl->seq_no);
	bool done = false;
	CHECK(rva_job_poll(sl->job, &done) == RVA_OK && done, "%s job %d: poll after wait",
	      sl->t->name, sl->seq_no);
	if (st == RVA_ECANCELLED) {
		CHECK(sl->cancelled, "%s job %d: cancelled without a request", sl->t->name,
		      sl->seq_no);
		atomic_fetch_add(&n_cancelled, 1);
	} else if (st == RVA_OK) {
		CHECK(memcmp(sl->out, sl->t->ref, sl->t->out_floats * sizeof(float)) == 0,
		      "%s job %d: output differs from rva_compute_batch", sl->t->name, sl->seq_no);
		atomic_fetch_add(&n_done, 1);
	}
	rva_job_destroy(sl->job);
	free(sl->out);
	sl->job = NULL;
}

static void *caller(void *arg) {
	unsigned id = (unsigned)(size_t)arg;
	unsigned r = 0x9e3779b9u * (id + 1);
	slot slots[IN_FLIGHT];
	memset(slots, 0, sizeof slots);
	for (int j = 0; j < JOBS_PER_THREAD; j++) {
		slot *sl = &slots[j % IN_FLIGHT];
		if (sl->job)
			slot_finish(sl);
		r = r * 1103515245u + 12345u;
		const tmpl *t = &T[(r >> 8) % NTMPL];
		sl->t = t;
		sl->seq_no = j;
		sl->out = malloc(t->out_floats * sizeof(float));
		if (!sl->out)
			abort();
		memset(sl->out, 0xff, t->out_floats * sizeof(float));
		rva_seq seqs[MAXSEQ];
		for (size_t s = 0; s < t->count; s++) {
			seqs[s] = t->seqs[s];
			seqs[s].out = sl->out + t->out_off[s];
		}
		rva_batch b = {t->count, seqs};
		rva_status st = t->pipe ? rva_engine_submit_pipeline(engine, t->pipe, &b, NULL, &sl->job)
		                        : rva_engine_submit(engine, t->att, &b, NULL, &sl->job);
		CHECK(st == RVA_OK, "%s: submit: %s (%s)", t->name, rva_status_name(st),
		      rva_last_error());
		if (st != RVA_OK) {
			free(sl->out);
			sl->job = NULL;
			continue;
		}
		/* descriptors are copied at submission: scribble over ours */
		memset(seqs, 0xab, sizeof seqs);
		r = r * 1103515245u + 12345u;
		sl->cancelled = (r >> 8) % 10 == 0;
		if (sl->cancelled) {
			if ((r >> 20) & 1)
				sched_yield();
			CHECK(rva_job_cancel(sl->job) == RVA_OK, "cancel");
			atomic_fetch_add(&n_cancel_requests, 1);
		}
	}
	for (int i = 0; i < IN_FLIGHT; i++)
		if (slots[i].job)
			slot_finish(&slots[i]);
	return NULL;
}

static double now_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void) {
	signal(SIGALRM, on_alarm);
	alarm(WATCHDOG_S);
	if (ref_fault_install() != RVA_OK) /* counts live blocks; never refuses here */
		return 1;
	/* warm-up of process-wide state (kernel choice) before the baseline */
	{
		rva_config c = rva_scaled_dot(8);
		rva_attention *att;
		float q[8] = {0}, k[8] = {0};
		const float *kp[1] = {k};
		if (rva_build(&c, &att) != RVA_OK || rva_compute(att, q, kp, kp, 1, q) != RVA_OK)
			return 1;
		rva_attention_destroy(att);
	}
	long base = ref_fault_live();

	templates_make();
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 2;
	if (rva_engine_create(&ec, &engine) != RVA_OK) {
		fprintf(stderr, "plain_load: engine: %s\n", rva_last_error());
		return 1;
	}
	rva_engine_info info;
	rva_engine_info_get(engine, &info);

	double t0 = now_s();
	pthread_t th[THREADS];
	for (size_t i = 0; i < THREADS; i++)
		if (pthread_create(&th[i], NULL, caller, (void *)i) != 0)
			return 1;
	for (size_t i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	double secs = now_s() - t0;

	rva_engine_destroy(engine);
	for (int i = 0; i < NTMPL; i++)
		tmpl_free(&T[i]);
	long done = atomic_load(&n_done), cancelled = atomic_load(&n_cancelled);
	long total = (long)THREADS * JOBS_PER_THREAD;
	CHECK(done + cancelled == total, "%ld done + %ld cancelled != %ld jobs", done, cancelled,
	      total);
	CHECK(ref_fault_live() == base, "%ld blocks still allocated after destroying "
	      "everything", ref_fault_live() - base);
	ref_fault_uninstall();
	printf("plain_load: %ld jobs from %d threads on %u workers: %ld done (outputs "
	       "byte-identical), %ld cancelled of %ld cancel requests, %.2f s, %.0f jobs/s; "
	       "memory back to its start\n", total, THREADS, info.workers, done, cancelled,
	       atomic_load(&n_cancel_requests), secs, (double)total / secs);
	int f = atomic_load(&failures);
	if (f) {
		fprintf(stderr, "plain_load: %d check(s) failed\n", f);
		return 1;
	}
	return 0;
}

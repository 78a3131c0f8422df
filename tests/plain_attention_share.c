/*
 * One attention shared by many threads and pipelines (a plain program: it also runs
 * under ThreadSanitizer, which checks the reference count's memory ordering).
 *
 * The main thread builds a multi-head attention, hands one reference to each of THREADS
 * threads (rva_attention_retain before starting it) and releases its own at once. Each
 * thread, ROUNDS times: retains the attention, computes one query with it, retains it
 * again for a fresh pipeline, runs the pipeline and destroys it, then releases. Every
 * output is compared with the double-precision oracle (tests/ref/ref_softmax). At the end
 * each thread releases the reference it was handed: the last release, on whichever thread
 * comes last, frees the attention. Checked: every output matches; the blocks allocated
 * through the rva_allocator hook return to their starting count (nothing leaked or freed
 * twice).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "ref/fault_alloc.h"
#include "ref/ref_softmax.h"
#include "ref/ref_util.h"
#include "rvattn/rvattn.h"

#define THREADS 6
#define ROUNDS 200
#define DIM 32
#define HEADS 4
#define NK 9

static float q[DIM], kv[NK * DIM];
static const float *rows[NK];
static double want[DIM];
static atomic_int failures;

static void fail(const char *what) {
	fprintf(stderr, "plain_attention_share: %s: %s\n", what, rva_last_error());
	atomic_fetch_add(&failures, 1);
}

static bool matches(const float *out) {
	return ref_err_ratio(out, want, DIM, 1e-5, 1e-4) <= 1.0;
}

static void *worker(void *arg) {
	rva_attention *att = arg; /* the reference handed to this thread */
	float out[DIM];
	for (int r = 0; r < ROUNDS; r++) {
		if (rva_attention_retain(att) != RVA_OK) {
			fail("retain");
			break;
		}
		if (rva_compute(att, q, rows, rows, NK, out) != RVA_OK || !matches(out))
			fail("compute on a shared attention");
		rva_pipeline *p = NULL;
		if (rva_pipeline_create(&p) != RVA_OK) {
			fail("pipeline create");
		} else if (rva_attention_retain(att) != RVA_OK ||
		           rva_pipeline_add_attention(p, att) != RVA_OK) {
			fail("add the shared attention");
		} else if (rva_pipeline_run(p, q, rows, rows, NK, out) != RVA_OK || !matches(out)) {
			fail("pipeline over a shared attention");
		}
		rva_pipeline_destroy(p); /* releases the pipeline's reference */
		rva_attention_release(att);
	}
	rva_attention_release(att); /* the handed reference: the last one frees att */
	return NULL;
}

int main(void) {
	ref_fill_uniform(q, DIM, -1.0f, 1.0f, 5);
	ref_fill_uniform(kv, NK * DIM, -1.0f, 1.0f, 6);
	for (size_t i = 0; i < NK; i++)
		rows[i] = kv + i * DIM;
	ref_attn_spec sp = {.heads = HEADS, .kv_heads = HEADS, .head_dim = DIM / HEADS,
	                    .scale = 1.0 / sqrt((double)(DIM / HEADS))};
	ref_attention(&sp, 1, NK, q, DIM, kv, DIM, kv, DIM, NULL, want);

	if (ref_fault_install() != RVA_OK) {
		fprintf(stderr, "plain_attention_share: cannot install the counting allocator\n");
		return 1;
	}
	long base = ref_fault_live();
	rva_config c = rva_multi_head(DIM, HEADS);
	rva_attention *att;
	if (rva_build(&c, &att) != RVA_OK) {
		fprintf(stderr, "plain_attention_share: build: %s\n", rva_last_error());
		return 1;
	}
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++) {
		if (rva_attention_retain(att) != RVA_OK ||
		    pthread_create(&t[i], NULL, worker, att) != 0) {
			fprintf(stderr, "plain_attention_share: cannot start thread %d\n", i);
			return 1;
		}
	}
	rva_attention_release(att); /* ours: the threads hold the rest */
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	long leaked = ref_fault_live() - base;
	ref_fault_uninstall();
	int failed = atomic_load(&failures);
	printf("plain_attention_share: %d threads x %d rounds, %d failures, %ld blocks left\n",
	       THREADS, ROUNDS, failed, leaked);
	return failed == 0 && leaked == 0 ? 0 : 1;
}

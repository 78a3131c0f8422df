/*
 * Per-sequence statuses of a batch run: the serial path (rva_compute_batch,
 * rva_pipeline_run_batch) and the engine (rva_engine_run, rva_engine_run_pipeline) hand
 * out the same statuses, also when the job fails as a whole, and a status never says
 * RVA_OK for a sequence whose output was not written.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/fault_alloc.h"
#include "ref/ref_util.h"
#include "rvattn/alloc.h"
#include "rvattn/attention.h"
#include "rvattn/engine.h"
#include "rvattn/pipeline.h"

#define DIM 16
#define NSEQ 3
#define UNWRITTEN ((rva_status)0x5eed) /* no status has this value */

static rva_engine *engine(void) {
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 2;
	rva_engine *e = NULL;
	cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK, "%s", rva_last_error());
	return e;
}

static void fill_unwritten(rva_status *st, size_t n) {
	for (size_t i = 0; i < n; i++)
		st[i] = UNWRITTEN;
}

/* A pipeline attention -> BatchNorm over a batch with one query row in all (nq 1, 0, 0):
 * in training mode BatchNorm's whole-job statistics task fails (one row has no
 * variance), a job-wide failure after the per-sequence attention tasks ran. */
Test(batch_status, job_wide_failure_serial_and_engine_agree) {
	float *x = ref_alloc(4 * DIM), out[NSEQ][DIM];
	ref_fill_uniform(x, 4 * DIM, -1.0f, 1.0f, 7);
	rva_config c = rva_multi_head(DIM, 2);
	rva_attention *att = NULL;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_pipeline *p = NULL;
	cr_assert_eq(rva_pipeline_create(&p), RVA_OK);
	cr_assert_eq(rva_pipeline_add_attention(p, att), RVA_OK);
	cr_assert_eq(rva_pipeline_add_norm(p, RVA_NORM_BATCH), RVA_OK);
	rva_seq seqs[NSEQ];
	for (size_t s = 0; s < NSEQ; s++)
		seqs[s] = (rva_seq){.nq = s == 0, .nk = 3, .q = x, .k = x + DIM, .v = x + DIM,
		                    .out = out[s]};
	rva_batch b = {.count = NSEQ, .seqs = seqs};
	rva_runtime rt = {0};
	rt.training = true;

	rva_status serial[NSEQ], eng[NSEQ];
	fill_unwritten(serial, NSEQ);
	rva_status st_serial = rva_pipeline_run_batch(p, &b, &rt, serial);
	rva_engine *e = engine();
	fill_unwritten(eng, NSEQ);
	rva_status st_engine = rva_engine_run_pipeline(e, p, &b, &rt, eng, NULL);

	cr_assert_eq(st_serial, RVA_EINVAL, "serial: %s", rva_status_name(st_serial));
	cr_assert_eq(st_engine, RVA_EINVAL, "engine: %s", rva_status_name(st_engine));
	for (size_t s = 0; s < NSEQ; s++) {
		cr_assert_neq(serial[s], UNWRITTEN, "serial left sequence %zu's status unwritten", s);
		cr_assert_eq(serial[s], eng[s], "sequence %zu: serial %s, engine %s", s,
		             rva_status_name(serial[s]), rva_status_name(eng[s]));
		cr_assert_eq(serial[s], RVA_EINVAL, "sequence %zu: %s", s, rva_status_name(serial[s]));
	}
	rva_engine_destroy(e);
	rva_pipeline_destroy(p);
	free(x);
}

/* A failure of one sequence: both paths fail it alone, the others complete. */
Test(batch_status, sequence_failure_serial_and_engine_agree) {
	float *x = ref_alloc(8 * DIM), out[NSEQ][2 * DIM];
	ref_fill_uniform(x, 8 * DIM, -1.0f, 1.0f, 8);
	rva_config c = rva_multi_head(DIM, 2);
	rva_attention *att = NULL;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_seq seqs[NSEQ];
	for (size_t s = 0; s < NSEQ; s++)
		seqs[s] = (rva_seq){.nq = 2, .nk = 4, .q = x, .k = x + 2 * DIM, .v = x + 4 * DIM,
		                    .out = out[s]};
	seqs[1].k = NULL; /* fails alone: RVA_ENULL */
	rva_batch b = {.count = NSEQ, .seqs = seqs};
	rva_status serial[NSEQ], eng[NSEQ];
	fill_unwritten(serial, NSEQ);
	rva_status st_serial = rva_compute_batch(att, &b, NULL, serial);
	rva_engine *e = engine();
	fill_unwritten(eng, NSEQ);
	rva_status st_engine = rva_engine_run(e, att, &b, NULL, eng, NULL);
	cr_assert_eq(st_serial, RVA_ENULL);
	cr_assert_eq(st_engine, RVA_ENULL);
	const rva_status want[NSEQ] = {RVA_OK, RVA_ENULL, RVA_OK};
	for (size_t s = 0; s < NSEQ; s++) {
		cr_assert_eq(serial[s], want[s], "serial, sequence %zu: %s", s,
		             rva_status_name(serial[s]));
		cr_assert_eq(eng[s], want[s], "engine, sequence %zu: %s", s, rva_status_name(eng[s]));
	}
	rva_engine_destroy(e);
	rva_attention_destroy(att);
	free(x);
}

/* Runs the batch serially (e NULL) or on the engine. */
static rva_status run(rva_engine *e, const rva_attention *att, const rva_batch *b,
                      rva_status *st) {
	return e ? rva_engine_run(e, att, b, NULL, st, NULL) : rva_compute_batch(att, b, NULL, st);
}

/* Every allocation of a MoE batch run refused in turn: the statuses are either all left
 * alone (the call failed before planning finished) or all written, and a sequence
 * reported RVA_OK holds exactly the output of an undisturbed run. */
static void walk_faults(bool on_engine) {
	enum { NQ = 5, NK = 7 };
	float *x = ref_alloc((NQ + 2 * NK) * DIM);
	ref_fill_uniform(x, (NQ + 2 * NK) * DIM, -1.0f, 1.0f, 9);
	float *want = ref_alloc(NSEQ * NQ * DIM), *got = ref_alloc(NSEQ * NQ * DIM);
	rva_config c = rva_moe(DIM, 4, 2);
	c.expert_kind = RVA_EXPERTS_STANDARD;
	rva_attention *att = NULL;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s", rva_last_error());
	rva_engine *e = on_engine ? engine() : NULL;
	rva_seq seqs[NSEQ];
	for (size_t s = 0; s < NSEQ; s++)
		seqs[s] = (rva_seq){.nq = NQ, .nk = NK, .q = x, .k = x + NQ * DIM,
		                    .v = x + (NQ + NK) * DIM, .out = want + s * NQ * DIM};
	rva_batch b = {.count = NSEQ, .seqs = seqs};
	cr_assert_eq(run(e, att, &b, NULL), RVA_OK);
	for (size_t s = 0; s < NSEQ; s++)
		seqs[s].out = got + s * NQ * DIM;

	cr_assert_eq(ref_fault_install(), RVA_OK);
	ref_fault_arm(-1, false);
	cr_assert_eq(run(e, att, &b, NULL), RVA_OK);
	long total = ref_fault_count();
	cr_assert_gt(total, 0, "the run allocates");
	long written_on_failure = 0;
	for (long k = 0; k < total; k++) {
		for (size_t i = 0; i < NSEQ * NQ * DIM; i++)
			got[i] = NAN;
		rva_status st[NSEQ];
		fill_unwritten(st, NSEQ);
		ref_fault_arm(k, true);
		rva_status r = run(e, att, &b, st);
		ref_fault_disarm();
		cr_assert(r == RVA_OK || r == RVA_ENOMEM, "k %ld: %s", k, rva_status_name(r));
		size_t unwritten = 0;
		for (size_t s = 0; s < NSEQ; s++)
			unwritten += st[s] == UNWRITTEN;
		cr_assert(unwritten == 0 || unwritten == NSEQ, "k %ld: %zu of %d statuses unwritten",
		          k, unwritten, NSEQ);
		if (r != RVA_OK && unwritten == 0)
			written_on_failure++;
		for (size_t s = 0; s < NSEQ && !unwritten; s++) {
			if (st[s] != RVA_OK) {
				cr_assert_neq(r, RVA_OK, "k %ld: sequence %zu failed, the call did not", k, s);
				continue;
			}
			cr_assert_eq(memcmp(got + s * NQ * DIM, want + s * NQ * DIM,
			                    NQ * DIM * sizeof(float)), 0,
			             "k %ld: sequence %zu reported RVA_OK without its output", k, s);
		}
	}
	ref_fault_uninstall();
	if (!on_engine) /* the serial path allocates its scratch once the job is planned */
		cr_assert_gt(written_on_failure, 0, "some refusal happens once the job is planned");
	rva_engine_destroy(e);
	rva_attention_destroy(att);
	free(x);
	free(want);
	free(got);
}

Test(batch_status, serial_statuses_never_claim_unwritten_outputs) { walk_faults(false); }

Test(batch_status, engine_statuses_never_claim_unwritten_outputs) { walk_faults(true); }

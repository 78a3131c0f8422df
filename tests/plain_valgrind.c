/*
 * A small program that touches every part of the library once, for Valgrind's memcheck
 * (tools/valgrind.sh; Criterion's forking runner makes its tests awkward under
 * Valgrind). It is also a plain ctest test: build, compute (batch and single query) and
 * destroy every mechanism (and the T5 and sparse presets), a pipeline on one query and
 * on a batch, the engine with one worker (run, submit/wait, a pipeline job), and an .npy
 * save/load round trip. Checks: finite outputs, engine == serial bit for bit, the file
 * reads back bit for bit.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rvattn/rvattn.h"

#define DIM 16
#define NQ 6
#define NK 9

static int failures;

#define CHECK(cond, ...)                                                               \
	do {                                                                               \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "plain_valgrind: FAIL %s:%d: ", __FILE__, __LINE__);      \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, " (%s)\n", rva_last_error());                             \
			failures++;                                                                \
		}                                                                              \
	} while (0)

static float q[2 * NQ * DIM], k[2 * NK * DIM], v[2 * NK * DIM];
static float out[2 * NQ * DIM], out2[2 * NQ * DIM], one[DIM];
static uint8_t mask[NK];

static bool all_finite(const float *x, size_t n) {
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return false;
	return true;
}

/* Two sequences (the second with a key mask and one query fewer). */
static void make_batch(size_t kvd, rva_seq s[2], float *o) {
	s[0] = (rva_seq){.nq = NQ, .nk = NK, .q = q, .k = k, .v = v, .out = o};
	s[1] = (rva_seq){.nq = NQ - 1, .nk = NK, .q = q + NQ * DIM, .k = k + NK * kvd,
	                 .v = v + NK * kvd, .out = o + NQ * DIM, .key_mask = mask};
}

static void mechanism(const char *name, rva_config c, rva_engine *e) {
	rva_attention *att;
	rva_status st = rva_build(&c, &att);
	CHECK(st == RVA_OK, "%s: build", name);
	if (st != RVA_OK)
		return;
	rva_config r;
	rva_attention_config(att, &r);
	size_t kvd = r.kv_heads * (r.dim / r.heads);
	rva_seq s[2];
	make_batch(kvd, s, out);
	rva_batch b = {2, s};
	rva_moe_stats ms;
	rva_runtime rt = {.training = true, .seed = 5, .step = 2, .moe_stats = &ms};
	CHECK(rva_compute_batch(att, &b, &rt, NULL) == RVA_OK, "%s: compute_batch", name);
	CHECK(all_finite(out, (2 * NQ - 1) * DIM), "%s: non-finite output", name);
	const float *kp[NK], *vp[NK];
	for (int i = 0; i < NK; i++) {
		kp[i] = k + i * kvd;
		vp[i] = v + i * kvd;
	}
	CHECK(rva_compute_masked(att, q, kp, vp, mask, NK, one) == RVA_OK, "%s: compute", name);
	CHECK(all_finite(one, DIM), "%s: non-finite single-query output", name);
	make_batch(kvd, s, out2);
	CHECK(rva_engine_run(e, att, &b, &rt, NULL, NULL) == RVA_OK, "%s: engine run", name);
	CHECK(memcmp(out, out2, (2 * NQ - 1) * DIM * sizeof(float)) == 0,
	      "%s: engine and serial outputs differ", name);
	rva_attention_destroy(att);
}

static void pipeline(rva_engine *e) {
	rva_attention *att;
	rva_config c = rva_multi_head(DIM, 4);
	CHECK(rva_build(&c, &att) == RVA_OK, "pipeline: build");
	rva_pipeline *p;
	CHECK(rva_prenorm_transformer_block(att, 0.1f, &p) == RVA_OK, "prenorm block");
	CHECK(rva_pipeline_add_norm(p, RVA_NORM_RMS) == RVA_OK, "add rms");
	rva_seq s[2];
	make_batch(DIM, s, out);
	rva_batch b = {2, s};
	rva_runtime rt = {.training = true, .seed = 1};
	CHECK(rva_pipeline_run_batch(p, &b, &rt, NULL) == RVA_OK, "pipeline batch");
	make_batch(DIM, s, out2);
	CHECK(rva_engine_run_pipeline(e, p, &b, &rt, NULL, NULL) == RVA_OK, "pipeline engine");
	CHECK(memcmp(out, out2, (2 * NQ - 1) * DIM * sizeof(float)) == 0,
	      "pipeline: engine and serial outputs differ");
	const float *kp[NK];
	for (int i = 0; i < NK; i++)
		kp[i] = k + i * DIM;
	CHECK(rva_pipeline_run(p, q, kp, kp, NK, one) == RVA_OK, "pipeline single");
	rva_pipeline_destroy(p);
}

static void submit_wait(rva_engine *e) {
	rva_attention *att;
	rva_config c = rva_flash(DIM, 4);
	c.heads = 2;
	c.causal = true;
	CHECK(rva_build(&c, &att) == RVA_OK, "submit: build");
	rva_seq s[2];
	make_batch(DIM, s, out);
	rva_batch b = {2, s};
	rva_job *job;
	CHECK(rva_engine_submit(e, att, &b, NULL, &job) == RVA_OK, "submit");
	CHECK(rva_job_wait(job) == RVA_OK, "wait");
	rva_job_stats js;
	CHECK(rva_job_stats_get(job, &js) == RVA_OK && js.tasks > 0, "job stats");
	rva_job_destroy(job);
	rva_attention_destroy(att);
}

static void npy(void) {
	char path[] = "/tmp/rvattn_valgrind_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp");
	close(fd);
	size_t shape[2] = {NQ, DIM};
	CHECK(rva_npy_save(path, q, 2, shape) == RVA_OK, "npy save");
	rva_npy_array a;
	CHECK(rva_npy_load(path, &a) == RVA_OK, "npy load");
	CHECK(a.count == NQ * DIM && memcmp(a.data, q, sizeof(float) * NQ * DIM) == 0,
	      "npy round trip");
	rva_npy_free(&a);
	unlink(path);
}

int main(void) {
	for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
		q[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
		k[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
		v[i] = (float)((i * 29) % 89) / 44.0f - 1.0f;
	}
	for (int i = 0; i < NK; i++)
		mask[i] = i % 4 != 2;
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 1;
	ec.spin_us = 0;
	rva_engine *e;
	if (rva_engine_create(&ec, &e) != RVA_OK) {
		fprintf(stderr, "plain_valgrind: engine: %s\n", rva_last_error());
		return 1;
	}
	rva_config c;
	mechanism("scaled_dot", rva_scaled_dot(DIM), e);
	c = rva_multi_head(DIM, 4);
	c.kv_heads = 2;
	c.dropout = 0.1f;
	mechanism("multi_head", c, e);
	c = rva_flash(DIM, 4);
	c.heads = 2;
	c.causal = true;
	mechanism("flash", c, e);
	c = rva_linear(DIM, 8);
	c.heads = 2;
	mechanism("linear", c, e);
	c.causal = true;
	c.block_size = 2;
	mechanism("linear causal", c, e);
	c = rva_local_global(DIM, 4);
	c.heads = 2;
	mechanism("local_global", c, e);
	c = rva_hyperbolic(DIM, -1.0f);
	c.heads = 2;
	mechanism("hyperbolic", c, e);
	c.aggregation = RVA_AGG_FRECHET;
	mechanism("hyperbolic frechet", c, e);
	c = rva_moe(DIM, 4, 2);
	c.heads = 2;
	c.jitter_noise = 0.1f;
	mechanism("moe", c, e);
	c = rva_preset_config(RVA_PRESET_T5, DIM);
	c.heads = 2;
	mechanism("t5", c, e);
	c = rva_preset_config(RVA_PRESET_SPARSE_TRANSFORMER, DIM);
	c.heads = 2;
	c.sparse_stride = 3;
	mechanism("sparse", c, e);
	pipeline(e);
	submit_wait(e);
	rva_engine_destroy(e);
	npy();
	if (failures) {
		fprintf(stderr, "plain_valgrind: %d check(s) failed\n", failures);
		return 1;
	}
	printf("plain_valgrind: all checks passed\n");
	return 0;
}

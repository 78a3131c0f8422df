/*
 * The bad-input matrix: one table of bad inputs x public functions -> the status the
 * headers document. NULL for every pointer argument of every public function, zero and
 * huge sizes, size products that overflow size_t, strides narrower than rows, bad
 * sequences in a batch, NaN/Inf in every config float that matters (scale, dropout,
 * curvature, temperature, capacity, jitter, Frechet tolerance, norm eps), invalid enum
 * values and out-of-range options. Every failing call must also leave a message in
 * rva_last_error() and (where checked) leave its output arguments untouched.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rvattn/rvattn.h"

/* ---- fixtures: objects and buffers shared by the rows (set up once) -------------------- */

#define DIM 16
#define KVD 8 /* multi_head 16/4 with kv_heads 2 */
#define NQ 4
#define NK 8

static struct {
	rva_attention *att, *lin, *moe, *t5;
	rva_engine *e;
	rva_pipeline *pipe, *empty, *norm_only;
	rva_job *job; /* an ended job of 2 sequences */
	rva_kv_cache *kvc; /* a paged K/V cache of F.att's shape on F.e ... */
	uint64_t kvs;      /* ... holding one sequence of NK rows (F.k, F.v) */
	float q[NQ * DIM], k[NK * KVD], v[NK * KVD], out[NQ * DIM], kfull[NK * DIM];
	const float *krow[NK], *vrow[NK], *kfull_row[NK];
	const float *krow_hole[NK];
	rva_seq good;
	char dir[64];
} F;

static rva_config cfg_base(void) {
	rva_config c = rva_multi_head(DIM, 4);
	c.kv_heads = 2;
	return c;
}

static void fixtures_up(void) {
	for (size_t i = 0; i < sizeof F.q / sizeof F.q[0]; i++)
		F.q[i] = (float)((i * 7) % 11) / 11.0f - 0.5f;
	for (size_t i = 0; i < sizeof F.k / sizeof F.k[0]; i++) {
		F.k[i] = (float)((i * 5) % 13) / 13.0f - 0.5f;
		F.v[i] = (float)((i * 3) % 7) / 7.0f - 0.5f;
	}
	for (size_t i = 0; i < sizeof F.kfull / sizeof F.kfull[0]; i++)
		F.kfull[i] = (float)((i * 5) % 13) / 13.0f - 0.5f;
	for (int i = 0; i < NK; i++) {
		F.krow[i] = F.k + i * KVD;
		F.vrow[i] = F.v + i * KVD;
		F.kfull_row[i] = F.kfull + i * DIM;
		F.krow_hole[i] = i == 1 ? NULL : F.krow[i];
	}
	F.good = (rva_seq){.nq = NQ, .nk = NK, .q = F.q, .k = F.k, .v = F.v, .out = F.out};
	rva_config c = cfg_base();
	cr_assert_eq(rva_build(&c, &F.att), RVA_OK);
	c = rva_linear(DIM, 8);
	cr_assert_eq(rva_build(&c, &F.lin), RVA_OK);
	c = rva_moe(DIM, 4, 2);
	cr_assert_eq(rva_build(&c, &F.moe), RVA_OK);
	c = rva_preset_config(RVA_PRESET_T5, DIM);
	c.heads = 2;
	cr_assert_eq(rva_build(&c, &F.t5), RVA_OK);
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 1;
	ec.spin_us = 0;
	cr_assert_eq(rva_engine_create(&ec, &F.e), RVA_OK);
	rva_attention *a;
	c = rva_multi_head(DIM, 4);
	cr_assert_eq(rva_build(&c, &a), RVA_OK);
	cr_assert_eq(rva_transformer_block(a, 0.1f, &F.pipe), RVA_OK);
	cr_assert_eq(rva_pipeline_create(&F.empty), RVA_OK);
	cr_assert_eq(rva_pipeline_create(&F.norm_only), RVA_OK);
	cr_assert_eq(rva_pipeline_add_norm(F.norm_only, RVA_NORM_LAYER), RVA_OK);
	rva_seq two[2] = {F.good, F.good};
	two[1].nq = 1;
	rva_batch b = {2, two};
	cr_assert_eq(rva_engine_submit(F.e, F.att, &b, NULL, &F.job), RVA_OK);
	cr_assert_eq(rva_job_wait(F.job), RVA_OK);
	rva_kv_cache_config kc = {.kv_heads = 2, .head_dim = 4, .pages = 8};
	cr_assert_eq(rva_kv_cache_create(F.e, &kc, &F.kvc), RVA_OK);
	cr_assert_eq(rva_kv_cache_seq_new(F.kvc, &F.kvs), RVA_OK);
	cr_assert_eq(rva_kv_cache_append(F.kvc, F.kvs, F.k, 0, F.v, 0, NK), RVA_OK);
	snprintf(F.dir, sizeof F.dir, "/tmp/rvattn_bad_input_%ld", (long)getpid());
	char cmd[128];
	snprintf(cmd, sizeof cmd, "mkdir -p %s", F.dir);
	cr_assert_eq(system(cmd), 0);
}

static void fixtures_down(void) {
	rva_job_destroy(F.job);
	rva_kv_cache_destroy(F.kvc);
	rva_engine_destroy(F.e);
	rva_pipeline_destroy(F.pipe);
	rva_pipeline_destroy(F.empty);
	rva_pipeline_destroy(F.norm_only);
	rva_attention_destroy(F.att);
	rva_attention_destroy(F.lin);
	rva_attention_destroy(F.moe);
	rva_attention_destroy(F.t5);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", F.dir);
	cr_expect_eq(system(cmd), 0);
}

/* A row's own check failed (an output argument changed on failure, a wrong string): the
 * row reports this pseudo-status, which never equals an expected one. */
#define BROKEN ((rva_status)1000)

static rva_status str_is(const char *got, const char *want) {
	return strcmp(got, want) == 0 ? RVA_OK : BROKEN;
}

/* ---- helpers for rows that need more than one expression -------------------------------- */

/* rva_build on c; *out must stay untouched on failure; a success is destroyed. */
static rva_status build(rva_config c) {
	rva_attention *a = (rva_attention *)&F; /* sentinel */
	rva_status st = rva_build(&c, &a);
	if (st != RVA_OK)
		return a == (rva_attention *)&F ? st : BROKEN;
	rva_attention_destroy(a);
	return st;
}

#define WITH(field, value)                                                             \
	({                                                                                 \
		rva_config c_ = cfg_base();                                                    \
		c_.field = (value);                                                            \
		build(c_);                                                                     \
	})

static rva_config mech(rva_mechanism m) {
	rva_config c = cfg_base();
	c.mechanism = m;
	return c;
}

#define MECH_WITH(m, field, value)                                                     \
	({                                                                                 \
		rva_config c_ = mech(m);                                                       \
		c_.field = (value);                                                            \
		build(c_);                                                                     \
	})

static const size_t two_globals[2] = {0, 5};
static float spare_floats[64];
/* The last word of rva_config.reserved (the tail shrinks as fields are taken from it). */
#define RESERVED_LAST (sizeof((rva_config){0}.reserved) / sizeof(uint64_t) - 1)

/* One sequence through rva_compute_batch (seq_status checked against the result). */
static rva_status batch1(rva_seq s) {
	rva_batch b = {1, &s};
	rva_status ss = BROKEN;
	rva_status st = rva_compute_batch(F.att, &b, NULL, &ss);
	return ss == st ? st : BROKEN;
}

static rva_seq good_with(int which, size_t value) {
	rva_seq s = F.good;
	switch (which) {
	case 0: s.q_stride = value; break;
	case 1: s.k_stride = value; break;
	case 2: s.v_stride = value; break;
	case 3: s.out_stride = value; break;
	case 4: s.nq = value; break;
	case 5: s.nk = value; break;
	}
	return s;
}

static rva_seq good_null(int which) {
	rva_seq s = F.good;
	switch (which) {
	case 0: s.q = NULL; break;
	case 1: s.k = NULL; break;
	case 2: s.v = NULL; break;
	case 3: s.out = NULL; break;
	}
	return s;
}

/* F.good with one element type set to `value` (0 q, 1 k, 2 v, 3 out), a bf16 query whose
 * stride overflows in bytes (4), or a bf16 output overlapping the key's bytes (5). */
static rva_seq good_dtype(int which, int value) {
	rva_seq s = F.good;
	switch (which) {
	case 0: s.q_dtype = (rva_dtype)value; break;
	case 1: s.k_dtype = (rva_dtype)value; break;
	case 2: s.v_dtype = (rva_dtype)value; break;
	case 3: s.out_dtype = (rva_dtype)value; break;
	case 4: s.q_dtype = RVA_BF16; s.nq = (size_t)1 << 31; s.q_stride = (size_t)1 << 62; break;
	case 5: s.out_dtype = RVA_BF16; s.out = (char *)(uintptr_t)s.k + 6; break;
	}
	return s;
}

/* A batch of three where the middle sequence is bad: it fails alone, the others run. */
static rva_status batch_one_bad(bool engine) {
	rva_seq s[3] = {F.good, good_with(0, DIM - 1), F.good};
	s[2].nq = 1;
	rva_batch b = {3, s};
	rva_status ss[3] = {BROKEN, BROKEN, BROKEN};
	rva_status st = engine ? rva_engine_run(F.e, F.att, &b, NULL, ss, NULL)
	                       : rva_compute_batch(F.att, &b, NULL, ss);
	if (ss[0] != RVA_OK || ss[2] != RVA_OK || ss[1] != st)
		return BROKEN;
	return st;
}

static rva_status engine_batch1(rva_seq s) {
	rva_batch b = {1, &s};
	rva_status ss = BROKEN;
	rva_status st = rva_engine_run(F.e, F.att, &b, NULL, &ss, NULL);
	return ss == st ? st : BROKEN;
}

static rva_status engine_cfg(int which) {
	rva_engine_config c = rva_engine_config_defaults();
	c.spin_us = 0;
	switch (which) {
	case 0: c.numa = RVA_NUMA_COUNT; break;
	case 1: c.numa = (rva_numa_policy)-1; break;
	case 2: c.kernels = (rva_kernel_set)99; break;
	case 3: c.cpus = "abc"; break;
	case 4: c.cpus = "0-"; break;
	case 5: c.cpus = "3-1"; break;
	case 6: c.cpus = "4095"; break;
	case 7: c.cpus = "core:4095"; break;
	case 8: c.threads = 100000; break;
	case 9: c.topology_synthetic = "no such topology"; break;
	case 10: c.topology_xml = "/nonexistent/topology.xml"; break;
	case 11: c.cpus = "99999999999"; break;
	case 12: c.cpus = ","; break;
	case 13: c.cpus = ""; c.threads = 1; break;
	case 14: c.scratch_bytes = SIZE_MAX; break;          /* wraps when rounded to pages */
	case 15: c.scratch_bytes = SIZE_MAX - 4095; break;
	case 16: c.spin_us = 1000001; break;                 /* spins over a second */
	case 17: c.spin_us = 1000000; c.threads = 1; break;
	}
	rva_engine *e = (rva_engine *)&F;
	rva_status st = rva_engine_create(&c, &e);
	if (st != RVA_OK)
		return e == (rva_engine *)&F ? st : BROKEN;
	rva_engine_destroy(e);
	return st;
}

/* rva_env_check with one RVATTN_* switch set (and unset again). */
static rva_status env_check_with(const char *var, const char *val) {
	setenv(var, val, 1);
	rva_status st = rva_env_check();
	unsetenv(var);
	return st;
}

/* Engine creation with a bad HWLOC_SYNTHETIC / HWLOC_XMLFILE, which hwloc alone would
 * ignore (describing this machine instead). */
static rva_status engine_env(int which) {
	rva_engine_config c = rva_engine_config_defaults();
	c.spin_us = 0;
	switch (which) {
	case 0: setenv("HWLOC_SYNTHETIC", "no such topology", 1); break;
	case 1: setenv("HWLOC_XMLFILE", "/nonexistent/topology.xml", 1); break;
	case 2: setenv("HWLOC_XMLFILE", "/proc/self/status", 1); break;
	case 3:
		setenv("HWLOC_SYNTHETIC", "package:1 core:1 pu:1", 1);
		setenv("HWLOC_XMLFILE", "/nonexistent/topology.xml", 1);
		break;
	}
	rva_engine *e = (rva_engine *)&F;
	rva_status st = rva_engine_create(&c, &e);
	unsetenv("HWLOC_SYNTHETIC");
	unsetenv("HWLOC_XMLFILE");
	if (st != RVA_OK)
		return e == (rva_engine *)&F ? st : BROKEN;
	rva_engine_destroy(e);
	return st;
}

static rva_status unpack(int which) {
	size_t cu_q[3] = {0, 2, 5}, cu_k[3] = {0, 3, 3};
	rva_packed_batch p = {.count = 2, .cu_q = cu_q, .cu_k = cu_k, .q = F.q, .q_stride = DIM,
	                      .k = F.k, .k_stride = KVD, .v = F.v, .v_stride = KVD,
	                      .out = F.out, .out_stride = DIM};
	rva_seq seqs[2];
	size_t cap = 2;
	switch (which) {
	case 0: return rva_batch_unpack(NULL, seqs, 2);
	case 1: return rva_batch_unpack(&p, NULL, 2);
	case 2: p.cu_q = NULL; break;
	case 3: p.cu_k = NULL; break;
	case 4: cap = 1; break;
	case 5: cu_q[0] = 1; break;
	case 6: cu_k[2] = 2; break; /* decreasing */
	case 7: p.k_stride = 0; break;
	case 8: p.count = 0; return rva_batch_unpack(&p, NULL, 0);
	case 9: cu_q[1] = 6; break; /* cu_q[2] < cu_q[1]: sequence lengths mismatch */
	case 10: p.q_stride = SIZE_MAX / 4; break;          /* 5 rows x stride overflow */
	case 11: cu_k[1] = cu_k[2] = SIZE_MAX / 2; break;   /* key rows x stride overflow */
	case 12: p.out_stride = (size_t)1 << 62; break;     /* x sizeof(float) overflows */
	case 13: p.v_dtype = (rva_dtype)3; break;           /* not an rva_dtype */
	case 14: p.q_dtype = RVA_F16; p.q_stride = SIZE_MAX / 8; break; /* x 2 bytes overflows */
	case 15: p.k_dtype = RVA_BF16; p.out_dtype = RVA_F16; break;
	}
	return rva_batch_unpack(&p, seqs, cap);
}

static rva_status pipe_norm(int which) {
	rva_norm_config n = rva_norm_defaults(RVA_NORM_LAYER);
	rva_pipeline *p = F.pipe;
	float neg[DIM], nan_[DIM];
	for (int i = 0; i < DIM; i++) {
		neg[i] = i == 3 ? -1.0f : 1.0f;
		nan_[i] = i == 5 ? NAN : 1.0f;
	}
	switch (which) {
	case 0: return rva_pipeline_add_norm_ex(p, NULL);
	case 1: return rva_pipeline_add_norm_ex(NULL, &n);
	case 2: n.eps = 0.0f; break;
	case 3: n.eps = -1e-5f; break;
	case 4: n.eps = NAN; break;
	case 5: n.eps = INFINITY; break;
	case 6: n.type = RVA_NORM_COUNT; break;
	case 7: n.type = (rva_norm_type)-1; break;
	case 8: n.running_mean = spare_floats; break; /* running stats on LayerNorm */
	case 9: n.type = RVA_NORM_BATCH; n.running_var = neg; break;
	case 10: n.type = RVA_NORM_BATCH; n.running_var = nan_; break;
	case 11: n.gain = spare_floats; p = F.empty; break; /* arrays before the dim */
	case 12: n.reserved[1] = 1; break;
	}
	size_t before, after;
	rva_pipeline_stage_count(p, &before);
	rva_status st = rva_pipeline_add_norm_ex(p, &n);
	rva_pipeline_stage_count(p, &after);
	return st != RVA_OK && before != after ? BROKEN : st;
}

/* rva_pipeline_add_attention with an attention that must stay the caller's on failure. */
static rva_status pipe_add_att(rva_config c) {
	rva_attention *a;
	if (rva_build(&c, &a) != RVA_OK)
		return BROKEN;
	rva_status st = rva_pipeline_add_attention(F.pipe, a);
	rva_attention_destroy(a); /* still ours: a failure did not take it (ASan checks) */
	return st == RVA_OK ? BROKEN : st;
}

/* A failing transformer block leaves att with the caller (LeakSanitizer checks). */
static rva_status block(bool prenorm, float dropout, bool null_out) {
	rva_attention *a;
	rva_config c = rva_multi_head(DIM, 4);
	if (rva_build(&c, &a) != RVA_OK)
		return BROKEN;
	rva_pipeline *p = NULL;
	rva_status st = prenorm ? rva_prenorm_transformer_block(a, dropout, null_out ? NULL : &p)
	                        : rva_transformer_block(a, dropout, null_out ? NULL : &p);
	if (st != RVA_OK)
		rva_attention_release(a);
	rva_pipeline_destroy(p);
	return st;
}

/* Pipeline modes (rva_pipeline_set_mode/mode_get and what a mode refuses at run time), each
 * case on a pipeline of its own: [LayerNorm, attention multi_head 16/4 (GQA: kv_heads 2)]. */
static rva_status pipe_mode(int which) {
	rva_pipeline *p;
	rva_attention *a;
	rva_config c = rva_multi_head(DIM, 4);
	if (which == 5 || which == 6 || which == 9)
		c.kv_heads = 2;
	if (rva_pipeline_create(&p) != RVA_OK || rva_build(&c, &a) != RVA_OK)
		return BROKEN;
	rva_status st = rva_pipeline_add_norm(p, RVA_NORM_LAYER);
	if (st == RVA_OK && which == 6)
		st = rva_pipeline_set_mode(p, RVA_PIPELINE_SELF);
	if (st == RVA_OK && which == 9)
		st = rva_pipeline_set_mode(p, RVA_PIPELINE_AUTO);
	if (st == RVA_OK && which == 10)
		st = rva_pipeline_set_mode(p, RVA_PIPELINE_SELF);
	if (st == RVA_OK)
		st = rva_pipeline_add_attention(p, a);
	if (st != RVA_OK) {
		rva_attention_destroy(a); /* still ours */
		rva_pipeline_destroy(p);
		return which == 6 ? st : BROKEN;
	}
	if (which == 6) { /* the add must have failed */
		rva_pipeline_destroy(p);
		return BROKEN;
	}
	rva_pipeline_mode m;
	rva_seq s = F.good;
	s.k = s.v = F.kfull;
	rva_status ss = BROKEN;
	switch (which) {
	case 0: st = rva_pipeline_set_mode(NULL, RVA_PIPELINE_SELF); break;
	case 1: st = rva_pipeline_set_mode(p, RVA_PIPELINE_MODE_COUNT); break;
	case 2: st = rva_pipeline_set_mode(p, (rva_pipeline_mode)-1); break;
	case 3: st = rva_pipeline_mode_get(NULL, &m); break;
	case 4: st = rva_pipeline_mode_get(p, NULL); break;
	case 5: st = rva_pipeline_set_mode(p, RVA_PIPELINE_SELF); break; /* GQA */
	case 7: /* after a run */
		st = rva_pipeline_run_batch(p, &(rva_batch){1, &s}, NULL, NULL);
		st = st == RVA_OK ? rva_pipeline_set_mode(p, RVA_PIPELINE_SELF) : BROKEN;
		break;
	case 8: /* SELF, a sequence with other keys */
		st = rva_pipeline_set_mode(p, RVA_PIPELINE_SELF);
		if (st == RVA_OK)
			st = rva_pipeline_run_batch(p, &(rva_batch){1, &s}, NULL, &ss);
		st = ss == st ? st : BROKEN;
		break;
	case 9: /* AUTO with GQA, a self-attention sequence (k = v = q) */
		s.k = s.v = s.q;
		s.nk = s.nq;
		s.q_stride = s.k_stride = s.v_stride = DIM;
		st = rva_pipeline_run_batch(p, &(rva_batch){1, &s}, NULL, &ss);
		st = ss == st ? st : BROKEN;
		break;
	case 10: { /* SELF single query, values differing from keys */
		const float *vr[NK];
		for (size_t i = 0; i < NK; i++)
			vr[i] = F.kfull_row[(i + 1) % NK];
		st = rva_pipeline_run(p, F.q, F.kfull_row, vr, NK, F.out);
		break;
	}
	default: st = BROKEN; break;
	}
	rva_pipeline_destroy(p);
	return st;
}

static rva_status halve(const float *in, float *out, size_t dim, void *user) {
	(void)user;
	for (size_t i = 0; i < dim; i++)
		out[i] = 0.5f * in[i];
	return RVA_OK;
}

static rva_status bn_single_row(void) {
	rva_pipeline *p;
	rva_attention *a;
	rva_config c = rva_multi_head(DIM, 4);
	if (rva_pipeline_create(&p) != RVA_OK || rva_build(&c, &a) != RVA_OK)
		return BROKEN;
	rva_status st = rva_pipeline_add_attention(p, a);
	if (st == RVA_OK)
		st = rva_pipeline_add_norm(p, RVA_NORM_BATCH);
	if (st != RVA_OK) {
		rva_pipeline_destroy(p);
		return BROKEN;
	}
	rva_seq s = F.good;
	s.k = F.kfull;
	s.v = F.kfull;
	s.nq = 1;
	rva_batch b = {1, &s};
	rva_runtime rt = {.training = true};
	st = rva_pipeline_run_batch(p, &b, &rt, NULL);
	rva_pipeline_destroy(p);
	return st;
}

/* A good .npy file of two floats, as rva_npy_header_write lays it out. */
static unsigned char npy_ok[256];
static size_t npy_ok_len;

static void npy_ok_make(void) {
	static const size_t two[1] = {2};
	size_t h;
	cr_assert_eq(rva_npy_header_write(1, two, 1, npy_ok, sizeof npy_ok, &h), RVA_OK);
	float d[2] = {1.0f, 2.0f};
	memcpy(npy_ok + h, d, sizeof d);
	npy_ok_len = h + sizeof d;
}

static void replace_in(unsigned char *buf, size_t n, const char *from, const char *to) {
	size_t k = strlen(from);
	for (size_t i = 0; i + k <= n; i++)
		if (memcmp(buf + i, from, k) == 0) {
			memcpy(buf + i, to, k);
			return;
		}
	cr_assert_fail("'%s' not found in the test header", from);
}

static rva_status npy_parse_variant(int which) {
	unsigned char buf[300];
	size_t n = npy_ok_len;
	memcpy(buf, npy_ok, n);
	rva_npy_array a;
	memset(&a, 0x5a, sizeof a);
	unsigned char before[sizeof a];
	memcpy(before, &a, sizeof a);
	switch (which) {
	case 0: break;                   /* the good file */
	case 1: n -= 3; break;           /* truncated data */
	case 2: buf[n++] = 0; break;     /* trailing byte */
	case 3: buf[8] = 0xff; break;    /* header length beyond the buffer */
	case 4: replace_in(buf, n, "<f4", "<i4"); break; /* wrong dtype */
	case 5: buf[6] = 9; break;       /* unknown version */
	case 6: n = 5; break;            /* shorter than the magic */
	case 7: replace_in(buf, n, "(2,)", "(4,)"); break; /* shape lies: 4 elements, data for 2 */
	case 8: replace_in(buf, n, "(2,)", "(1,)"); break; /* shape lies the other way */
	case 9: replace_in(buf, n, "False", "True "); break; /* Fortran order */
	case 10: replace_in(buf, n, "<f4", "<u2"); n -= 4; break; /* uint16: bf16 bits only */
	}
	rva_status st = rva_npy_parse(buf, n, &a);
	if (st == RVA_OK) {
		rva_npy_free(&a);
		return st;
	}
	return memcmp(&a, before, sizeof a) == 0 ? st : BROKEN;
}

static rva_status npy_overflow_header(void) {
	char hdr[128];
	int len = snprintf(hdr, sizeof hdr,
	                   "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, 4), }",
	                   SIZE_MAX / 2);
	unsigned char buf[256];
	memcpy(buf, "\x93NUMPY\x01\x00", 8);
	buf[8] = (unsigned char)(len + 1);
	buf[9] = 0;
	memcpy(buf + 10, hdr, (size_t)len);
	buf[10 + len] = '\n';
	rva_npy_header h;
	return rva_npy_parse_header(buf, (size_t)len + 11, &h);
}

static rva_status npy_save_to(const char *name, const float *data, size_t ndim,
                              const size_t *shape, unsigned version) {
	char path[256];
	snprintf(path, sizeof path, "%s/%s", F.dir, name);
	return rva_npy_save_ex(path, data, ndim, shape, version);
}

static const size_t shape3[1] = {3}, shape0[1] = {0};
static const size_t shape_huge[2] = {SIZE_MAX / 2, 4};
static size_t shape33[33];

/* A call on a handle resolved for F.dir/outfile.bin (released afterwards): 0 describe with
 * d NULL; 1 write with buf NULL and 4 bytes; 2 write before begin; 3 begin twice; 4 commit
 * before begin; 5 a resolve that leaves out NULL on failure (BROKEN otherwise). */
static rva_status outfile_with(int which) {
	char path[256];
	snprintf(path, sizeof path, "%s/outfile.bin", F.dir);
	rva_outfile *f = NULL;
	if (which == 5) {
		f = (rva_outfile *)&F;
		rva_status st = rva_outfile_resolve("/nonexistent/rvattn/x.bin", &f);
		return f == NULL ? st : BROKEN;
	}
	if (rva_outfile_resolve(path, &f) != RVA_OK)
		return BROKEN;
	rva_status st = BROKEN;
	switch (which) {
	case 0: st = rva_outfile_describe(f, NULL); break;
	case 1: st = rva_outfile_write(f, NULL, 4); break;
	case 2: st = rva_outfile_write(f, "abcd", 4); break;
	case 3:
		st = rva_outfile_begin(f) == RVA_OK ? rva_outfile_begin(f) : BROKEN;
		break;
	case 4: return rva_outfile_commit(f); /* frees f */
	}
	rva_outfile_abort(f);
	return st;
}

/* rva_outfile_open_fd on a descriptor open for reading only. */
static rva_status outfile_fd_readonly(void) {
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return BROKEN;
	rva_outfile *f = NULL;
	rva_status st = rva_outfile_open_fd(fd, "/dev/null", &f);
	close(fd);
	rva_outfile_abort(f);
	return st;
}

static rva_status job_seq(size_t i, bool null_st, bool null_detail) {
	rva_status st;
	const char *d;
	return rva_job_seq_status(F.job, i, null_st ? NULL : &st, null_detail ? NULL : &d);
}

/* A T5 config whose caller-supplied bias table (32 buckets x 4 heads) holds `bad` at one
 * entry (0 = all finite). */
static rva_status t5_table_with(float bad) {
	static float table[32 * 4];
	for (size_t i = 0; i < 32 * 4; i++)
		table[i] = 0.01f * (float)i;
	if (bad != 0.0f)
		table[77] = bad;
	rva_config c = cfg_base();
	c.bias = RVA_BIAS_T5;
	c.bias_table = table;
	return build(c);
}

/* MoE caller weights (DIM 16, kv_dim 16, 4 experts): which = 0 all good; 1 a NaN in
 * W_q[2]; 2 +Inf in W_o[0]; 3 -Inf in the shared W_k; 4 NaN in W_v; 5 W_q[1] NULL;
 * 6 W_o stride 15 < 16 columns; 7 NaN in the router; 8 router_stride 15 < dim; 9 per-
 * expert W_k list with expert 3's matrix NULL; 10 NULL data list for W_q (seeded, fine). */
static rva_status moe_weights_with(int which) {
	enum { D = DIM, E = 4 };
	static float m[E][D * (D + 2)], router[E * (D + 1)];
	for (size_t e = 0; e < E; e++)
		for (size_t i = 0; i < D * (D + 2); i++)
			m[e][i] = 0.01f * (float)((i + 3 * e) % 17) - 0.08f;
	for (size_t i = 0; i < E * (D + 1); i++)
		router[i] = 0.02f * (float)(i % 13) - 0.1f;
	const float *q[E] = {m[0], m[1], m[2], m[3]}, *o[E] = {m[3], m[2], m[1], m[0]};
	const float *kv[E] = {m[1], m[2], m[3], m[0]};
	rva_config c = rva_moe(D, E, 2);
	c.expert_kind = RVA_EXPERTS_STANDARD;
	c.router_weights = router;
	c.router_stride = D + 1;
	c.expert_wq = (rva_matrix_list){q, D + 2};
	c.expert_wo = (rva_matrix_list){o, D + 1};
	c.expert_wk = (rva_matrix_list){kv, D};
	c.expert_wv = (rva_matrix_list){kv + 1, 0};
	switch (which) {
	case 1: m[2][5 * (D + 2) + 3] = NAN; break;
	case 2: m[3][D - 1] = INFINITY; break;  /* W_o[0] is m[3], row 0 */
	case 3: m[1][2 * D + 7] = -INFINITY; break;
	case 4: m[2][D * D - 1] = NAN; break;    /* the shared W_v is m[2] */
	case 5: q[1] = NULL; break;
	case 6: c.expert_wo.stride = D - 1; break;
	case 7: router[2 * (D + 1) + 4] = NAN; break;
	case 8: c.router_stride = D - 1; break;
	case 9:
		c.kv_projection = RVA_MOE_KV_PER_EXPERT;
		kv[3] = NULL;
		break;
	case 10: c.expert_wq.data = NULL; break;
	default: break;
	}
	return build(c);
}

/* Global indices {0, 5, x}. */
static rva_status globals_with(size_t x) {
	static size_t g[3];
	g[0] = 0;
	g[1] = 5;
	g[2] = x;
	rva_config c = rva_local_global(DIM, 4);
	c.global_indices = g;
	c.n_global_indices = 3;
	return build(c);
}

/* A Frechet-mean hyperbolic config with max_iter n. */
static rva_status frechet_iters(size_t n) {
	rva_config c = rva_hyperbolic(DIM, -1.0f);
	c.aggregation = RVA_AGG_FRECHET;
	c.frechet_max_iter = n;
	return build(c);
}

/* The good sequence with its output moved onto one of its inputs (aliasing). */
static float alias_buf[NQ * DIM + NK * KVD * 2 + 64];

static rva_seq aliased(int which) {
	rva_seq s = F.good;
	float *k = alias_buf, *v = alias_buf + NK * KVD, *q = alias_buf + 2 * NK * KVD;
	memcpy(k, F.k, sizeof F.k);
	memcpy(v, F.v, sizeof F.v);
	memcpy(q, F.q, sizeof F.q);
	s.k = k;
	s.v = v;
	s.q = q;
	switch (which) {
	case 0: s.out = k; break;                       /* out == k */
	case 1: s.out = v + NK * KVD - 1; break;        /* out's first float is v's last */
	case 2: s.out = q; break;                       /* in place */
	case 3: s.out = q + 1; s.out_stride = DIM; break; /* shifted by one float */
	case 4: s.key_mask = (const uint8_t *)(q + NQ * DIM + 8); s.out = q + NQ * DIM;
		memset(q + NQ * DIM + 8, 1, NK); s.q = F.q; break; /* out over the key mask */
	case 5: s.out = q + NQ * DIM; s.q = F.q; break;  /* adjacent to k/v, no overlap */
	}
	return s;
}

/* The attention-op extras of rva_seq and rva_runtime (batch.h, attention.h). `which`:
 * 0 lse on a linear attention, 1 lse_head_stride without lse, 2 lse_head_stride below nq,
 * 3 lse over the output, 4 lse over the query, 5 lse extent overflowing, 6 lse good. */
static rva_status seq_lse(int which) {
	rva_seq s = F.good;
	s.lse = spare_floats;
	const rva_attention *att = F.att;
	switch (which) {
	case 0: att = F.lin; s.k = s.v = F.kfull; break;
	case 1: s.lse = NULL; s.lse_head_stride = NQ; break;
	case 2: s.lse_head_stride = NQ - 1; break;
	case 3: s.lse = F.out + 3; break;
	case 4: s.lse = (float *)F.q + 1; break;
	case 5: s.lse_head_stride = SIZE_MAX / 2; break;
	}
	rva_batch b = {1, &s};
	rva_status ss = BROKEN;
	rva_status st = rva_compute_batch(att, &b, NULL, &ss);
	return ss == st ? st : BROKEN;
}

/* rva_runtime.scale = value on F.att (or the linear attention), serial or on the engine. */
static rva_status rt_scale(float value, bool linear, bool engine) {
	rva_runtime rt = {.scale = value};
	rva_seq s = F.good;
	if (linear)
		s.k = s.v = F.kfull;
	rva_batch b = {1, &s};
	rva_status ss = BROKEN;
	const rva_attention *att = linear ? F.lin : F.att;
	rva_status st = engine ? rva_engine_run(F.e, att, &b, &rt, &ss, NULL)
	                       : rva_compute_batch(att, &b, &rt, &ss);
	return ss == st ? st : BROKEN;
}

/* The good sequence with a score matrix (batch.h): which = 0 a good bias, 1 a good
 * per-head mask, 2 a bias stride without a bias, 3 a mask head stride without a mask,
 * 4 a bias stride narrower than nk, 5 a mask whose head stride overflows, 6 the output
 * over the bias, 7 the output over the mask, 8 a bias with -inf everywhere (rows of
 * zeros, valid). */
static float score_buf[4 * NQ * NK + NQ * DIM];
static uint8_t mask_buf[4 * NQ * NK];

static rva_seq with_scores(int which) {
	rva_seq s = F.good;
	for (size_t i = 0; i < 4 * NQ * NK; i++) {
		score_buf[i] = which == 8 ? -INFINITY : (float)(i % 5) * 0.25f - 0.5f;
		mask_buf[i] = i % 3 != 0;
	}
	switch (which) {
	case 0: s.bias = score_buf; break;
	case 1: s.mask = mask_buf; s.mask_head_stride = NQ * NK; break;
	case 2: s.bias_stride = NK; break;
	case 3: s.mask_head_stride = NQ * NK; break;
	case 4: s.bias = score_buf; s.bias_stride = NK - 1; break;
	case 5: s.mask = mask_buf; s.mask_head_stride = SIZE_MAX / 2; break;
	case 6: s.bias = score_buf; s.out = score_buf + NK; break;
	case 7: s.mask = mask_buf; s.out = (float *)(void *)mask_buf; break;
	case 8: s.bias = score_buf; break;
	}
	return s;
}

/* kv_cache.h: a cache config with one field set to a bad value. */
static rva_status kv_cfg(int which) {
	rva_kv_cache_config c = {.kv_heads = 2, .head_dim = 4, .pages = 4};
	switch (which) {
	case 0: c.kv_heads = 0; break;
	case 1: c.head_dim = 0; break;
	case 2: c.page_tokens = 7; break;
	case 3: c.page_tokens = 1 << 20; break;
	case 4: c.dtype = (rva_dtype)3; break;
	case 5: c.reserved[7] = 1; break;
	case 6: c.max_seqs = (size_t)1 << 40; break;
	case 7: c.head_dim = SIZE_MAX / 2; break;
	case 8: c.pages = (size_t)1 << 40; break;
	}
	rva_kv_cache *kc = (rva_kv_cache *)&F; /* must stay as it is */
	rva_status st = rva_kv_cache_create(F.e, &c, &kc);
	if (st == RVA_OK)
		rva_kv_cache_destroy(kc);
	else if (kc != (rva_kv_cache *)&F)
		return BROKEN;
	return st;
}

/* One step on the fixture cache with one field changed (which: 0 nq past the rows,
 * 1 unknown sequence, 2 reserved, 3 out NULL, 4 q NULL, 5 out over q, 6 good; the
 * extras, as rva_seq's: 7 a bias stride narrower than the sequence, 8 a mask head stride
 * without a mask, 9 lse_head_stride without lse, 10 lse over the output, 11 query heads
 * overlapping (head stride 1), 12 the output over the bias, 13 every extra, good). */
static rva_status kv_step1(int which) {
	rva_kv_step k = {.seq = F.kvs, .nq = NQ, .q = F.q, .out = F.out};
	switch (which) {
	case 0: k.nq = NK + 1; break;
	case 1: k.seq = F.kvs + 1; break;
	case 2: k.reserved[0] = 1; break;
	case 3: k.out = NULL; break;
	case 4: k.q = NULL; break;
	case 5: k.out = F.q; break;
	case 7: k.bias = score_buf; k.bias_stride = NK - 1; break;
	case 8: k.mask_head_stride = NQ * NK; break;
	case 9: k.lse_head_stride = NQ; break;
	case 10: k.lse = F.out + 3; break;
	case 11: k.q_head_stride = 1; break;
	case 12: k.bias = score_buf; k.out = score_buf + NK; break;
	case 13:
		k.key_mask = (const uint8_t *)"\1\1\0\1\1\1\1\1";
		k.bias = score_buf;
		k.bias_head_stride = NQ * NK;
		k.mask = mask_buf;
		k.lse = spare_floats;
		k.q_stride = 4;
		k.q_head_stride = NQ * 4;
		k.out_stride = 4;
		k.out_head_stride = NQ * 4;
		break;
	}
	rva_status ss = BROKEN;
	rva_status st = rva_kv_cache_run(F.e, F.kvc, F.att, &k, 1, NULL, &ss, NULL);
	return ss == st ? st : BROKEN;
}

static rva_status pipe_run_batch(rva_seq s) {
	rva_status ss = BROKEN;
	rva_status st = rva_pipeline_run_batch(F.pipe, &(rva_batch){1, &s}, NULL, &ss);
	return ss == st ? st : BROKEN;
}

/* ---- the table ------------------------------------------------------------------------- */

#define ROWS(X)                                                                                  \
	/* status.h: out-of-range values give fixed strings */                                       \
	X("rva_strerror(99)", RVA_OK, str_is(rva_strerror((rva_status)99), "unknown status"))        \
	X("rva_strerror(-1)", RVA_OK, str_is(rva_strerror((rva_status)-1), "unknown status"))        \
	X("rva_status_name(99)", RVA_OK, str_is(rva_status_name((rva_status)99), "RVA_UNKNOWN"))     \
	X("rva_mechanism_name(99)", RVA_OK, str_is(rva_mechanism_name((rva_mechanism)99), "unknown")) \
	X("rva_kernel_set_name(-1)", RVA_OK, str_is(rva_kernel_set_name((rva_kernel_set)-1), "unknown")) \
	X("rva_preset_name(99)", RVA_OK, str_is(rva_preset_name((rva_preset)99), "unknown"))         \
	X("rva_preset_description(99)", RVA_OK,                                                      \
	  str_is(rva_preset_description((rva_preset)99), "unknown preset"))                          \
	X("rva_npy_dtype_name(9)", RVA_OK, str_is(rva_npy_dtype_name((rva_npy_dtype)9), "unknown"))  \
	/* alloc.h */                                                                                \
	X("rva_set_allocator alloc NULL", RVA_EINVAL,                                                \
	  rva_set_allocator(&(rva_allocator){NULL, (void (*)(void *, void *))1, NULL}))              \
	X("rva_set_allocator free NULL", RVA_EINVAL,                                                 \
	  rva_set_allocator(&(rva_allocator){(void *(*)(size_t, size_t, void *))1, NULL, NULL}))     \
	X("rva_get_allocator(NULL)", RVA_ENULL, rva_get_allocator(NULL))                             \
	X("rva_buffer_alloc out NULL", RVA_ENULL, rva_buffer_alloc(64, NULL))                        \
	X("rva_buffer_alloc 0 bytes", RVA_EEMPTY, rva_buffer_alloc(0, &(void *){NULL}))              \
	X("rva_buffer_free(NULL)", RVA_OK, rva_buffer_free(NULL))                                    \
	/* kernels.h */                                                                              \
	X("rva_cpu_detect(NULL)", RVA_ENULL, rva_cpu_detect(NULL))                                   \
	X("rva_kernel_set_parse name NULL", RVA_ENULL, rva_kernel_set_parse(NULL, &(rva_kernel_set){0})) \
	X("rva_kernel_set_parse out NULL", RVA_ENULL, rva_kernel_set_parse("skx", NULL))             \
	X("rva_kernel_set_parse \"\"", RVA_ENOTFOUND, rva_kernel_set_parse("", &(rva_kernel_set){0})) \
	X("rva_kernel_set_parse unknown", RVA_ENOTFOUND,                                             \
	  rva_kernel_set_parse("avx9000", &(rva_kernel_set){0}))                                     \
	X("rva_kernels_resolve COUNT", RVA_EINVAL,                                                   \
	  rva_kernels_resolve(RVA_KERNELS_COUNT, &(rva_kernel_set){0}))                              \
	X("rva_kernels_resolve -1", RVA_EINVAL,                                                      \
	  rva_kernels_resolve((rva_kernel_set)-1, &(rva_kernel_set){0}))                             \
	X("rva_kernels_resolve out NULL", RVA_ENULL, rva_kernels_resolve(RVA_KERNELS_AUTO, NULL))    \
	X("rva_kernels_select COUNT", RVA_EINVAL, rva_kernels_select(RVA_KERNELS_COUNT))             \
	X("rva_kernels_current out NULL", RVA_ENULL, rva_kernels_current(NULL, NULL))                \
	X("rva_env_check RVATTN_SIMD=avx9", RVA_EINVAL, env_check_with("RVATTN_SIMD", "avx9"))       \
	X("rva_env_check RVATTN_ATTN_KERNEL=fast", RVA_EINVAL,                                       \
	  env_check_with("RVATTN_ATTN_KERNEL", "fast"))                                              \
	X("rva_env_check RVATTN_REFERENCE_GEMM=2", RVA_EINVAL,                                       \
	  env_check_with("RVATTN_REFERENCE_GEMM", "2"))                                              \
	X("rva_env_check RVATTN_BLIS_KERNELS=bogus", RVA_EINVAL,                                     \
	  env_check_with("RVATTN_BLIS_KERNELS", "bogus"))                                            \
	X("rva_env_check RVATTN_SIMD=scalar (valid)", RVA_OK, env_check_with("RVATTN_SIMD", "scalar")) \
	X("rva_env_check RVATTN_REFERENCE_GEMM=yes (valid)", RVA_OK,                                 \
	  env_check_with("RVATTN_REFERENCE_GEMM", "yes"))                                            \
	/* config.h */                                                                               \
	X("rva_mechanism_parse name NULL", RVA_ENULL, rva_mechanism_parse(NULL, &(rva_mechanism){0})) \
	X("rva_mechanism_parse out NULL", RVA_ENULL, rva_mechanism_parse("flash", NULL))            \
	X("rva_mechanism_parse \"\"", RVA_ENOTFOUND, rva_mechanism_parse("", &(rva_mechanism){0}))   \
	X("rva_mechanism_parse \"multi head\"", RVA_ENOTFOUND,                                      \
	  rva_mechanism_parse("multi head", &(rva_mechanism){0}))                                    \
	/* rva_build: pointers, enums */                                                             \
	X("rva_build cfg NULL", RVA_ENULL, rva_build(NULL, &(rva_attention *){NULL}))                \
	X("rva_build out NULL", RVA_ENULL, rva_build(&(rva_config){0}, NULL))                        \
	X("build: the base config", RVA_OK, build(cfg_base()))                                       \
	X("build: mechanism COUNT", RVA_EINVAL, WITH(mechanism, RVA_MECH_COUNT))                     \
	X("build: mechanism -1", RVA_EINVAL, WITH(mechanism, (rva_mechanism)-1))                     \
	X("build: feature_map COUNT", RVA_EINVAL, WITH(feature_map, RVA_FEATURES_COUNT))             \
	X("build: aggregation COUNT", RVA_EINVAL, WITH(aggregation, RVA_AGG_COUNT))                  \
	X("build: expert_kind COUNT", RVA_EINVAL, WITH(expert_kind, RVA_EXPERTS_COUNT))              \
	X("build: bias COUNT", RVA_EINVAL, WITH(bias, RVA_BIAS_COUNT))                               \
	X("build: bias -5", RVA_EINVAL, WITH(bias, (rva_position_bias)-5))                           \
	X("build: pattern COUNT", RVA_EINVAL, WITH(pattern, RVA_PATTERN_COUNT))                      \
	X("build: preset 99", RVA_EINVAL, build(rva_preset_config((rva_preset)99, 64)))              \
	/* rva_build: sizes */                                                                       \
	X("build: dim 0", RVA_ERANGE, WITH(dim, 0))                                                  \
	X("build: scaled_dot dim 2^32 (the largest)", RVA_OK, build(rva_scaled_dot((size_t)1 << 32))) \
	X("build: scaled_dot dim 2^32 + 1", RVA_EOVERFLOW,                                           \
	  build(rva_scaled_dot(((size_t)1 << 32) + 1)))                                              \
	X("build: heads 0 = default (1 at dim 16): kv_heads 2 does not divide it", RVA_EDIM,           \
	  WITH(heads, 0))                                                                            \
	X("build: heads 0 = default, kv_heads 0 = heads", RVA_OK,                                    \
	  ({ rva_config c_ = cfg_base(); c_.heads = 0; c_.kv_heads = 0; build(c_); }))               \
	X("build: last reserved word not zero", RVA_EINVAL, WITH(reserved[RESERVED_LAST], 1))        \
	X("build: heads 3 do not divide dim 16", RVA_EDIM, WITH(heads, 3))                           \
	X("build: kv_heads 3 do not divide heads 4", RVA_EDIM, WITH(kv_heads, 3))                    \
	X("build: kv_heads 8 > heads 4", RVA_EDIM, WITH(kv_heads, 8))                                \
	X("build: 12 heads dim 100", RVA_EDIM, build(rva_multi_head(100, 12)))                       \
	X("build: for_sequences dim 0", RVA_ERANGE, build(rva_for_sequences(0, 100)))                \
	X("build: flash block_size 0 = default", RVA_OK, build(rva_flash(DIM, 0)))                   \
	X("build: local_global window 0 = default", RVA_OK, build(rva_local_global(DIM, 0)))         \
	X("build: local_global window 3", RVA_ERANGE, build(rva_local_global(DIM, 3)))               \
	X("build: local_global n_global 2, NULL list", RVA_ENULL,                                    \
	  MECH_WITH(RVA_MECH_LOCAL_GLOBAL, n_global_indices, 2))                                     \
	X("build: multi_head n_global 2, NULL list", RVA_ENULL, WITH(n_global_indices, 2))           \
	X("build: local_global, 2 globals", RVA_OK,                                                  \
	  ({ rva_config c_ = rva_local_global(DIM, 4); c_.global_indices = two_globals;              \
	     c_.n_global_indices = 2; build(c_); }))                                                 \
	X("build: n_global SIZE_MAX/4 (overflow)", RVA_EOVERFLOW,                                    \
	  ({ rva_config c_ = rva_local_global(DIM, 4); c_.global_indices = two_globals;              \
	     c_.n_global_indices = SIZE_MAX / 4; build(c_); }))                                      \
	X("build: linear features 0 = default", RVA_OK, build(rva_linear(DIM, 0)))                   \
	X("build: linear ELU features 0", RVA_OK,                                                    \
	  ({ rva_config c_ = rva_linear(DIM, 0); c_.feature_map = RVA_FEATURES_ELU; build(c_); }))   \
	X("build: linear dim SIZE_MAX (features x dim overflows)", RVA_EOVERFLOW,                    \
	  build(rva_linear(SIZE_MAX, 8)))                                                            \
	X("build: linear features SIZE_MAX/2 > 65536 (with a feature_matrix)", RVA_ERANGE,           \
	  ({ rva_config c_ = rva_linear(DIM, SIZE_MAX / 2); c_.feature_matrix = spare_floats;        \
	     build(c_); }))                                                                          \
	X("build: linear block_size SIZE_MAX", RVA_ERANGE,                                           \
	  ({ rva_config c_ = rva_linear(DIM, 8); c_.block_size = SIZE_MAX; build(c_); }))            \
	X("build: moe dim 2^61 (router overflows)", RVA_EOVERFLOW,                                   \
	  build(rva_moe((size_t)1 << 61, 2, 1)))                                                     \
	/* rva_build: floats (NaN/Inf where it matters) */                                           \
	X("build: scale NaN", RVA_ERANGE, WITH(scale, NAN))                                          \
	X("build: scale +Inf", RVA_ERANGE, WITH(scale, INFINITY))                                    \
	X("build: scale -1", RVA_ERANGE, WITH(scale, -1.0f))                                         \
	X("build: dropout NaN", RVA_ERANGE, WITH(dropout, NAN))                                      \
	X("build: dropout 1", RVA_ERANGE, WITH(dropout, 1.0f))                                       \
	X("build: dropout -0.1", RVA_ERANGE, WITH(dropout, -0.1f))                                   \
	X("build: dropout +Inf", RVA_ERANGE, WITH(dropout, INFINITY))                                \
	X("build: hyperbolic curvature 0 = default", RVA_OK, build(rva_hyperbolic(DIM, 0.0f)))       \
	X("build: hyperbolic curvature +1", RVA_ERANGE, build(rva_hyperbolic(DIM, 1.0f)))            \
	X("build: hyperbolic curvature NaN", RVA_ERANGE, build(rva_hyperbolic(DIM, NAN)))            \
	X("build: hyperbolic curvature -Inf", RVA_ERANGE, build(rva_hyperbolic(DIM, -INFINITY)))     \
	X("build: hyperbolic temperature 0 = default", RVA_OK,                                       \
	  MECH_WITH(RVA_MECH_HYPERBOLIC, temperature, 0.0f))                                         \
	X("build: hyperbolic temperature -1", RVA_ERANGE,                                            \
	  MECH_WITH(RVA_MECH_HYPERBOLIC, temperature, -1.0f))                                        \
	X("build: hyperbolic temperature NaN", RVA_ERANGE,                                           \
	  MECH_WITH(RVA_MECH_HYPERBOLIC, temperature, NAN))                                          \
	X("build: hyperbolic temperature +Inf", RVA_ERANGE,                                          \
	  MECH_WITH(RVA_MECH_HYPERBOLIC, temperature, INFINITY))                                     \
	X("build: Frechet max_iter 0 = default", RVA_OK,                                             \
	  ({ rva_config c_ = rva_hyperbolic(DIM, -1.0f); c_.aggregation = RVA_AGG_FRECHET;           \
	     c_.frechet_max_iter = 0; build(c_); }))                                                 \
	X("build: Frechet tol NaN", RVA_ERANGE,                                                      \
	  ({ rva_config c_ = rva_hyperbolic(DIM, -1.0f); c_.aggregation = RVA_AGG_FRECHET;           \
	     c_.frechet_tol = NAN; build(c_); }))                                                    \
	X("build: moe experts 0 = default", RVA_OK, build(rva_moe(DIM, 0, 1)))                       \
	X("build: moe experts 257", RVA_ERANGE, build(rva_moe(DIM, 257, 1)))                         \
	X("build: moe experts SIZE_MAX", RVA_ERANGE, build(rva_moe(DIM, SIZE_MAX, 1)))               \
	X("build: moe top_k 0 = default", RVA_OK, build(rva_moe(DIM, 4, 0)))                         \
	X("build: moe top_k 5 > experts 4", RVA_ERANGE, build(rva_moe(DIM, 4, 5)))                   \
	X("build: moe capacity NaN", RVA_ERANGE, MECH_WITH(RVA_MECH_MOE, expert_capacity, NAN))      \
	X("build: moe capacity -1", RVA_ERANGE, MECH_WITH(RVA_MECH_MOE, expert_capacity, -1.0f))     \
	X("build: moe capacity +Inf", RVA_ERANGE,                                                    \
	  MECH_WITH(RVA_MECH_MOE, expert_capacity, INFINITY))                                        \
	X("build: moe jitter NaN", RVA_ERANGE, MECH_WITH(RVA_MECH_MOE, jitter_noise, NAN))           \
	X("build: moe jitter 1", RVA_ERANGE, MECH_WITH(RVA_MECH_MOE, jitter_noise, 1.0f))            \
	X("build: moe jitter -0.1", RVA_ERANGE, MECH_WITH(RVA_MECH_MOE, jitter_noise, -0.1f))        \
	X("build: moe hyperbolic experts, curvature NaN", RVA_ERANGE,                                \
	  ({ rva_config c_ = rva_moe(DIM, 4, 2); c_.curvature = NAN; build(c_); }))                  \
	X("build: moe linear experts, features 0 = default", RVA_OK,                                 \
	  ({ rva_config c_ = rva_moe(DIM, 4, 2); c_.features = 0; build(c_); }))                     \
	X("build: T5 bias on linear", RVA_EINVAL,                                                    \
	  ({ rva_config c_ = rva_linear(DIM, 8); c_.bias = RVA_BIAS_T5; build(c_); }))               \
	X("build: T5 bias_buckets 3 (bidirectional)", RVA_ERANGE,                                    \
	  ({ rva_config c_ = cfg_base(); c_.bias = RVA_BIAS_T5; c_.bias_buckets = 3; build(c_); }))  \
	X("build: T5 bias_max_distance 2", RVA_ERANGE,                                               \
	  ({ rva_config c_ = cfg_base(); c_.bias = RVA_BIAS_T5; c_.bias_max_distance = 2;            \
	     build(c_); }))                                                                          \
	X("build: T5 bias_max_distance SIZE_MAX", RVA_ERANGE,                                     \
	  ({ rva_config c_ = cfg_base(); c_.bias = RVA_BIAS_T5; c_.bias_max_distance = SIZE_MAX;     \
	     build(c_); }))                                                                          \
	X("build: T5 bias_table buckets x heads overflows", RVA_ERANGE,                           \
	  ({ rva_config c_ = cfg_base(); c_.bias = RVA_BIAS_T5; c_.bias_buckets = SIZE_MAX / 2;      \
	     c_.bias_max_distance = SIZE_MAX; c_.bias_table = spare_floats; build(c_); }))           \
	X("build: strided pattern on linear", RVA_EINVAL,                                            \
	  ({ rva_config c_ = rva_linear(DIM, 8); c_.pattern = RVA_PATTERN_STRIDED; build(c_); }))    \
	X("build: strided pattern on local_global", RVA_EINVAL,                                      \
	  ({ rva_config c_ = rva_local_global(DIM, 4); c_.pattern = RVA_PATTERN_STRIDED;             \
	     build(c_); }))                                                                          \
	X("build: sparse_stride 0 = default", RVA_OK,                                                \
	  ({ rva_config c_ = cfg_base(); c_.pattern = RVA_PATTERN_STRIDED; c_.sparse_stride = 0;     \
	     build(c_); }))                                                                          \
	/* rva_build: score modifiers (config.h) */                                                 \
	X("build: causal_align COUNT", RVA_EINVAL, WITH(causal_align, RVA_CAUSAL_ALIGN_COUNT))       \
	X("build: softcap -1", RVA_ERANGE, WITH(softcap, -1.0f))                                     \
	X("build: softcap NaN", RVA_ERANGE, WITH(softcap, NAN))                                      \
	X("build: softcap +Inf", RVA_ERANGE, WITH(softcap, INFINITY))                                \
	X("build: window_left without sliding_window", RVA_EINVAL, WITH(window_left, 4))             \
	X("build: window_right without sliding_window", RVA_EINVAL, WITH(window_right, 1))           \
	X("build: alibi_slopes without alibi", RVA_EINVAL, WITH(alibi_slopes, spare_floats))         \
	X("build: alibi_slopes NaN", RVA_ERANGE,                                                     \
	  ({ rva_config c_ = cfg_base(); float sl_[4] = {0.5f, NAN, 0.1f, 0.1f}; c_.alibi = true;    \
	     c_.alibi_slopes = sl_; build(c_); }))                                                   \
	X("build: alibi_slopes negative", RVA_ERANGE,                                                \
	  ({ rva_config c_ = cfg_base(); float sl_[4] = {0.5f, -1.0f, 0.1f, 0.1f}; c_.alibi = true;  \
	     c_.alibi_slopes = sl_; build(c_); }))                                                   \
	X("build: softcap on linear", RVA_EINVAL,                                                    \
	  ({ rva_config c_ = rva_linear(DIM, 8); c_.softcap = 30.0f; build(c_); }))                \
	X("build: sliding_window on hyperbolic", RVA_EINVAL,                                         \
	  ({ rva_config c_ = rva_hyperbolic(DIM, -1.0f); c_.sliding_window = true; build(c_); }))    \
	X("build: alibi on moe", RVA_EINVAL,                                                         \
	  ({ rva_config c_ = rva_moe(DIM, 4, 2); c_.alibi = true; build(c_); }))                     \
	X("build: causal_align top-left on linear", RVA_EINVAL,                                      \
	  ({ rva_config c_ = rva_linear(DIM, 8); c_.causal_align = RVA_CAUSAL_TOP_LEFT; build(c_); })) \
	/* rva_build: counts that would set the work, not the data; caller arrays */                \
	X("build: global_indices {0, 5, 2^32-2}", RVA_OK, globals_with((size_t)UINT32_MAX - 1))      \
	X("build: global_indices value 2^32-1 (beyond any sequence)", RVA_ERANGE,                    \
	  globals_with(UINT32_MAX))                                                                  \
	X("build: global_indices value SIZE_MAX", RVA_ERANGE, globals_with(SIZE_MAX))               \
	X("build: local_global global_tokens SIZE_MAX (all global)", RVA_OK,                         \
	  ({ rva_config c_ = rva_local_global(DIM, 4); c_.global_tokens = SIZE_MAX; build(c_); }))   \
	X("build: local_global window SIZE_MAX-1 (wider than any sequence)", RVA_OK,                 \
	  build(rva_local_global(DIM, SIZE_MAX - 1)))                                                \
	X("build: linear features 65536", RVA_OK, build(rva_linear(DIM, 65536)))                    \
	X("build: linear features 65537", RVA_ERANGE, build(rva_linear(DIM, 65537)))                \
	X("build: moe linear experts, features 2^40", RVA_ERANGE,                                    \
	  ({ rva_config c_ = rva_moe(DIM, 4, 2); c_.features = (size_t)1 << 40; build(c_); }))       \
	X("build: Frechet max_iter 10000", RVA_OK, frechet_iters(10000))                            \
	X("build: Frechet max_iter 10001", RVA_ERANGE, frechet_iters(10001))                        \
	X("build: Frechet max_iter SIZE_MAX", RVA_ERANGE, frechet_iters(SIZE_MAX))                  \
	/* rva_build: every float field finite, used by the mechanism or not */                     \
	X("build: scale -Inf", RVA_ERANGE, WITH(scale, -INFINITY))                                   \
	X("build: Frechet tol +Inf", RVA_ERANGE,                                                     \
	  ({ rva_config c_ = rva_hyperbolic(DIM, -1.0f); c_.aggregation = RVA_AGG_FRECHET;           \
	     c_.frechet_tol = INFINITY; build(c_); }))                                               \
	X("build: multi_head with curvature NaN", RVA_ERANGE, WITH(curvature, NAN))                  \
	X("build: multi_head with temperature +Inf", RVA_ERANGE, WITH(temperature, INFINITY))        \
	X("build: multi_head with frechet_tol NaN", RVA_ERANGE, WITH(frechet_tol, NAN))              \
	X("build: multi_head with expert_capacity -Inf", RVA_ERANGE, WITH(expert_capacity, -INFINITY)) \
	X("build: multi_head with jitter_noise NaN", RVA_ERANGE, WITH(jitter_noise, NAN))            \
	X("build: moe jitter +Inf", RVA_ERANGE, MECH_WITH(RVA_MECH_MOE, jitter_noise, INFINITY))     \
	X("build: moe normalize_gates 3", RVA_EINVAL,                                                \
	  MECH_WITH(RVA_MECH_MOE, normalize_gates, (rva_gate_norm)3))                                \
	X("build: moe normalize_gates -1", RVA_EINVAL,                                               \
	  MECH_WITH(RVA_MECH_MOE, normalize_gates, (rva_gate_norm)-1))                               \
	X("build: moe capacity_scope 2", RVA_EINVAL,                                                 \
	  MECH_WITH(RVA_MECH_MOE, capacity_scope, (rva_capacity_scope)2))                            \
	X("build: moe kv_projection 7", RVA_EINVAL,                                                  \
	  MECH_WITH(RVA_MECH_MOE, kv_projection, (rva_moe_kv)7))                                     \
	X("build: moe caller weights, strided, all finite", RVA_OK, moe_weights_with(0))           \
	X("build: moe W_q with a NaN", RVA_ERANGE, moe_weights_with(1))                             \
	X("build: moe W_o with +Inf", RVA_ERANGE, moe_weights_with(2))                              \
	X("build: moe shared W_k with -Inf", RVA_ERANGE, moe_weights_with(3))                       \
	X("build: moe shared W_v with a NaN", RVA_ERANGE, moe_weights_with(4))                      \
	X("build: moe W_q list with a NULL matrix", RVA_ENULL, moe_weights_with(5))                 \
	X("build: moe W_o stride narrower than dim", RVA_EDIM, moe_weights_with(6))                 \
	X("build: moe router weights with a NaN", RVA_ERANGE, moe_weights_with(7))                  \
	X("build: moe router_stride narrower than dim", RVA_EDIM, moe_weights_with(8))              \
	X("build: moe per-expert W_k list with a NULL matrix", RVA_ENULL, moe_weights_with(9))      \
	X("build: moe W_q list NULL (seeded)", RVA_OK, moe_weights_with(10))                        \
	X("rva_attention_moe_weights att NULL", RVA_ENULL,                                           \
	  rva_attention_moe_weights(NULL, 0, NULL, NULL, NULL, NULL))                                \
	X("rva_attention_moe_weights not moe", RVA_EINVAL,                                           \
	  rva_attention_moe_weights(F.att, 0, NULL, NULL, NULL, NULL))                               \
	X("rva_attention_moe_weights 4 of 4", RVA_ERANGE,                                            \
	  rva_attention_moe_weights(F.moe, 4, &(const float *){0}, NULL, NULL, NULL))                \
	X("rva_attention_moe_weights all outputs NULL", RVA_OK,                                      \
	  rva_attention_moe_weights(F.moe, 3, NULL, NULL, NULL, NULL))                               \
	X("build: T5 bias_table all finite", RVA_OK, t5_table_with(0.0f))                          \
	X("build: T5 bias_table with a NaN", RVA_ERANGE, t5_table_with(NAN))                        \
	X("build: T5 bias_table with +Inf", RVA_ERANGE, t5_table_with(INFINITY))                    \
	X("build: T5 bias_table with -Inf", RVA_ERANGE, t5_table_with(-INFINITY))                   \
	/* accessors of built attentions */                                                          \
	X("rva_attention_config att NULL", RVA_ENULL, rva_attention_config(NULL, &(rva_config){0}))  \
	X("rva_attention_retain att NULL", RVA_ENULL, rva_attention_retain(NULL))                    \
	X("rva_attention_config out NULL", RVA_ENULL, rva_attention_config(F.att, NULL))             \
	X("rva_attention_destroy(NULL)", RVA_OK, rva_attention_destroy(NULL))                        \
	X("rva_attention_features att NULL", RVA_ENULL,                                              \
	  rva_attention_features(NULL, &(const float *){0}, &(size_t){0}, &(size_t){0}))             \
	X("rva_attention_features w NULL", RVA_ENULL,                                                \
	  rva_attention_features(F.lin, NULL, &(size_t){0}, &(size_t){0}))                           \
	X("rva_attention_features not linear", RVA_EINVAL,                                           \
	  rva_attention_features(F.att, &(const float *){0}, &(size_t){0}, &(size_t){0}))            \
	X("rva_attention_router not moe", RVA_EINVAL,                                                \
	  rva_attention_router(F.att, &(const float *){0}, &(size_t){0}, &(size_t){0}))              \
	X("rva_attention_router dim NULL", RVA_ENULL,                                                \
	  rva_attention_router(F.moe, &(const float *){0}, &(size_t){0}, NULL))                      \
	X("rva_attention_expert 4 of 4", RVA_ERANGE,                                                 \
	  rva_attention_expert(F.moe, 4, &(const rva_attention *){0}))                               \
	X("rva_attention_expert SIZE_MAX", RVA_ERANGE,                                               \
	  rva_attention_expert(F.moe, SIZE_MAX, &(const rva_attention *){0}))                        \
	X("rva_attention_expert out NULL", RVA_ENULL, rva_attention_expert(F.moe, 0, NULL))          \
	X("rva_attention_expert not moe", RVA_EINVAL,                                                \
	  rva_attention_expert(F.att, 0, &(const rva_attention *){0}))                               \
	X("rva_attention_bias_table no T5", RVA_EINVAL,                                              \
	  rva_attention_bias_table(F.att, &(const float *){0}, &(size_t){0}, &(size_t){0}))          \
	X("rva_attention_bias_table heads NULL", RVA_ENULL,                                          \
	  rva_attention_bias_table(F.t5, &(const float *){0}, &(size_t){0}, NULL))                   \
	X("rva_t5_bucket out NULL", RVA_ENULL, rva_t5_bucket(3, true, 32, 128, NULL))                \
	X("rva_t5_bucket buckets 1 (causal)", RVA_ERANGE, rva_t5_bucket(3, false, 1, 128, &(size_t){0})) \
	X("rva_t5_bucket buckets 3 (bidirectional)", RVA_ERANGE,                                     \
	  rva_t5_bucket(3, true, 3, 128, &(size_t){0}))                                              \
	X("rva_t5_bucket max_distance 8 <= 32/4", RVA_ERANGE,                                        \
	  rva_t5_bucket(3, true, 32, 8, &(size_t){0}))                                               \
	X("rva_t5_bucket INT64_MIN", RVA_OK, rva_t5_bucket(INT64_MIN, true, 32, 128, &(size_t){0}))  \
	X("rva_t5_bucket INT64_MIN, causal", RVA_OK,                                                 \
	  rva_t5_bucket(INT64_MIN, false, 32, 128, &(size_t){0}))                                    \
	X("rva_t5_bucket 2^62 buckets, distance just above", RVA_OK,                                 \
	  rva_t5_bucket(INT64_MIN, false, (size_t)1 << 62, ((size_t)1 << 61) + ((size_t)1 << 38),    \
	                &(size_t){0}))                                                               \
	X("rva_attention_flops att NULL", RVA_ENULL,                                                 \
	  rva_attention_flops(NULL, &(rva_batch){1, &F.good}, &(double){0}))                         \
	X("rva_attention_flops batch NULL", RVA_ENULL, rva_attention_flops(F.att, NULL, &(double){0})) \
	X("rva_attention_flops out NULL", RVA_ENULL,                                                 \
	  rva_attention_flops(F.att, &(rva_batch){1, &F.good}, NULL))                                \
	X("rva_attention_flops seqs NULL", RVA_ENULL,                                                \
	  rva_attention_flops(F.att, &(rva_batch){2, NULL}, &(double){0}))                           \
	/* single-query calls */                                                                     \
	X("rva_compute good", RVA_OK, rva_compute(F.att, F.q, F.krow, F.vrow, NK, F.out))            \
	X("rva_compute att NULL", RVA_ENULL, rva_compute(NULL, F.q, F.krow, F.vrow, NK, F.out))      \
	X("rva_compute query NULL", RVA_ENULL, rva_compute(F.att, NULL, F.krow, F.vrow, NK, F.out))  \
	X("rva_compute keys NULL", RVA_ENULL, rva_compute(F.att, F.q, NULL, F.vrow, NK, F.out))      \
	X("rva_compute values NULL", RVA_ENULL, rva_compute(F.att, F.q, F.krow, NULL, NK, F.out))    \
	X("rva_compute out NULL", RVA_ENULL, rva_compute(F.att, F.q, F.krow, F.vrow, NK, NULL))      \
	X("rva_compute keys[1] NULL", RVA_ENULL,                                                     \
	  rva_compute(F.att, F.q, F.krow_hole, F.vrow, NK, F.out))                                   \
	X("rva_compute values[1] NULL", RVA_ENULL,                                                   \
	  rva_compute(F.att, F.q, F.krow, F.krow_hole, NK, F.out))                                   \
	X("rva_compute n_keys 0", RVA_EEMPTY, rva_compute(F.att, F.q, F.krow, F.vrow, 0, F.out))     \
	X("rva_compute n_keys 0, keys NULL", RVA_EEMPTY,                                             \
	  rva_compute(F.att, F.q, NULL, NULL, 0, F.out))                                             \
	X("rva_compute_masked all masked", RVA_OK,                                                   \
	  rva_compute_masked(F.att, F.q, F.krow, F.vrow, (const uint8_t[NK]){0}, NK, F.out))         \
	X("rva_compute_masked query NULL", RVA_ENULL,                                                \
	  rva_compute_masked(F.att, NULL, F.krow, F.vrow, NULL, NK, F.out))                          \
	X("rva_compute_ex out NULL", RVA_ENULL,                                                      \
	  rva_compute_ex(F.att, F.q, F.krow, F.vrow, NULL, NK, NULL, &(rva_runtime){0}))             \
	X("rva_compute_ex keys NULL", RVA_ENULL,                                                     \
	  rva_compute_ex(F.att, F.q, NULL, F.vrow, NULL, NK, F.out, NULL))                           \
	/* rva_compute_batch */                                                                      \
	X("rva_compute_batch good", RVA_OK, batch1(F.good))                                          \
	X("rva_compute_batch att NULL", RVA_ENULL,                                                   \
	  rva_compute_batch(NULL, &(rva_batch){1, &F.good}, NULL, NULL))                             \
	X("rva_compute_batch batch NULL", RVA_ENULL, rva_compute_batch(F.att, NULL, NULL, NULL))     \
	X("rva_compute_batch count 2, seqs NULL", RVA_ENULL,                                         \
	  rva_compute_batch(F.att, &(rva_batch){2, NULL}, NULL, NULL))                               \
	X("rva_compute_batch count 0", RVA_OK, rva_compute_batch(F.att, &(rva_batch){0, NULL}, NULL, NULL)) \
	X("rva_compute_batch count SIZE_MAX/2 (overflow)", RVA_EOVERFLOW,                            \
	  rva_compute_batch(F.att, &(rva_batch){SIZE_MAX / 2, &F.good}, NULL, NULL))                 \
	X("seq: q NULL", RVA_ENULL, batch1(good_null(0)))                                            \
	X("seq: k NULL", RVA_ENULL, batch1(good_null(1)))                                            \
	X("seq: v NULL", RVA_ENULL, batch1(good_null(2)))                                            \
	X("seq: out NULL", RVA_ENULL, batch1(good_null(3)))                                          \
	X("seq: nq 0, all NULL", RVA_OK, batch1((rva_seq){.nq = 0, .nk = 5}))                        \
	X("seq: nk 0", RVA_EEMPTY, batch1(good_with(5, 0)))                                          \
	X("seq: q_stride 15 < dim 16", RVA_EDIM, batch1(good_with(0, DIM - 1)))                      \
	X("seq: k_stride 7 < kv width 8", RVA_EDIM, batch1(good_with(1, KVD - 1)))                   \
	X("seq: v_stride 1 < kv width 8", RVA_EDIM, batch1(good_with(2, 1)))                         \
	X("seq: out_stride 8 < dim 16", RVA_EDIM, batch1(good_with(3, 8)))                           \
	X("seq: nq 2^32", RVA_ERANGE, batch1(good_with(4, (size_t)UINT32_MAX + 1)))                  \
	X("seq: nk SIZE_MAX", RVA_ERANGE, batch1(good_with(5, SIZE_MAX)))                            \
	X("seq: nq 2^31 x q_stride 2^62 overflows", RVA_EOVERFLOW,                                   \
	  batch1(({ rva_seq s_ = good_with(4, (size_t)1 << 31); s_.q_stride = (size_t)1 << 62; s_; }))) \
	X("seq: nk 2^31 x v_stride 2^60 overflows", RVA_EOVERFLOW,                                   \
	  batch1(({ rva_seq s_ = good_with(5, (size_t)1 << 31); s_.v_stride = (size_t)1 << 60; s_; }))) \
	X("seq: out_stride SIZE_MAX", RVA_EOVERFLOW, batch1(good_with(3, SIZE_MAX)))                 \
	X("seq: q_dtype 3 (not an rva_dtype)", RVA_EINVAL, batch1(good_dtype(0, 3)))                 \
	X("seq: k_dtype -1", RVA_EINVAL, batch1(good_dtype(1, -1)))                                  \
	X("seq: v_dtype 1000", RVA_EINVAL, batch1(good_dtype(2, 1000)))                              \
	X("seq: out_dtype 7", RVA_EINVAL, batch1(good_dtype(3, 7)))                                  \
	X("seq: bf16 q, nq 2^31 x q_stride 2^62 overflows", RVA_EOVERFLOW, batch1(good_dtype(4, 0))) \
	X("seq: bf16 out inside k's bytes", RVA_EINVAL, batch1(good_dtype(5, 0)))                    \
	X("seq: bf16 k and v, fp16 out", RVA_OK,                                                     \
	  batch1(({ rva_seq s_ = F.good; s_.k_dtype = s_.v_dtype = RVA_BF16;                         \
	            s_.out_dtype = RVA_F16; s_; })))                                                  \
	X("rva_engine_run seq q_dtype 3", RVA_EINVAL, engine_batch1(good_dtype(0, 3)))             \
	X("seq: out == k (aliasing)", RVA_EINVAL, batch1(aliased(0)))                               \
	X("seq: out starts on v's last float", RVA_EINVAL, batch1(aliased(1)))                      \
	X("seq: out == q (in place)", RVA_EINVAL, batch1(aliased(2)))                               \
	X("seq: out == q + 1", RVA_EINVAL, batch1(aliased(3)))                                      \
	X("seq: out over the key mask", RVA_EINVAL, batch1(aliased(4)))                             \
	X("seq: out adjacent to k, v, q (no overlap)", RVA_OK, batch1(aliased(5)))                  \
	X("seq: lse on a linear attention (softmax only)", RVA_EINVAL, seq_lse(0))                 \
	X("seq: lse_head_stride without lse", RVA_EINVAL, seq_lse(1))                              \
	X("seq: lse_head_stride below nq", RVA_EDIM, seq_lse(2))                                    \
	X("seq: lse over the output", RVA_EINVAL, seq_lse(3))                                       \
	X("seq: lse over the query", RVA_EINVAL, seq_lse(4))                                        \
	X("seq: lse heads x lse_head_stride overflows", RVA_EOVERFLOW, seq_lse(5))                 \
	X("seq: lse good", RVA_OK, seq_lse(6))                                                      \
	X("rva_runtime.scale NaN", RVA_ERANGE, rt_scale(NAN, false, false))                         \
	X("rva_runtime.scale -1", RVA_ERANGE, rt_scale(-1.0f, false, false))                        \
	X("rva_runtime.scale -inf (engine)", RVA_ERANGE, rt_scale(-INFINITY, false, true))          \
	X("rva_runtime.scale on a linear attention", RVA_EINVAL, rt_scale(0.5f, true, false))       \
	X("rva_runtime.scale 0.5", RVA_OK, rt_scale(0.5f, false, true))                              \
	X("rva_engine_run seq out == k", RVA_EINVAL, engine_batch1(aliased(0)))                     \
	X("seq: bias (batch.h)", RVA_OK, batch1(with_scores(0)))                                    \
	X("seq: mask per head", RVA_OK, batch1(with_scores(1)))                                     \
	X("seq: bias -inf everywhere (rows of zeros)", RVA_OK, batch1(with_scores(8)))              \
	X("seq: bias_stride without bias", RVA_EINVAL, batch1(with_scores(2)))                      \
	X("seq: mask_head_stride without mask", RVA_EINVAL, batch1(with_scores(3)))                 \
	X("seq: bias_stride nk - 1", RVA_EDIM, batch1(with_scores(4)))                              \
	X("seq: mask head stride extent overflows", RVA_EOVERFLOW, batch1(with_scores(5)))          \
	X("seq: out over the bias", RVA_EINVAL, batch1(with_scores(6)))                             \
	X("seq: out over the mask", RVA_EINVAL, batch1(with_scores(7)))                             \
	X("rva_engine_run seq: out over the bias", RVA_EINVAL, engine_batch1(with_scores(6)))       \
	X("seq: bias on linear attention", RVA_EINVAL,                                               \
	  rva_compute_batch(F.lin, &(rva_batch){1, &(rva_seq){0}}, NULL, NULL) == RVA_OK            \
	      ? ({ rva_seq s_ = with_scores(0); s_.k = F.kfull; s_.v = F.kfull;                      \
	           rva_compute_batch(F.lin, &(rva_batch){1, &s_}, NULL, NULL); })                   \
	      : BROKEN)                                                                               \
	X("rva_compute out == query (in place is supported)", RVA_OK,                                \
	  ({ memcpy(alias_buf, F.q, DIM * sizeof(float));                                            \
	     rva_compute(F.att, alias_buf, F.krow, F.vrow, NK, alias_buf); }))                       \
	X("rva_compute_masked out over the mask", RVA_EINVAL,                                        \
	  ({ memset(alias_buf, 1, NK);                                                               \
	     rva_compute_masked(F.att, F.q, F.krow, F.vrow, (const uint8_t *)alias_buf, NK,          \
	                        alias_buf); }))                                                      \
	X("rva_pipeline_run_batch out == input", RVA_EINVAL, pipe_run_batch(aliased(2)))            \
	X("rva_pipeline_run_batch bf16 query (pipelines are fp32)", RVA_EINVAL,                     \
	  pipe_run_batch(good_dtype(0, RVA_BF16)))                                                    \
	X("rva_pipeline_run_batch fp16 output", RVA_EINVAL, pipe_run_batch(good_dtype(3, RVA_F16)))  \
	X("rva_pipeline_run out == query", RVA_EINVAL,                                               \
	  ({ memcpy(alias_buf, F.q, DIM * sizeof(float));                                            \
	     rva_pipeline_run(F.pipe, alias_buf, F.kfull_row, F.kfull_row, NK, alias_buf); }))       \
	X("batch of 3, the middle one bad (serial)", RVA_EDIM, batch_one_bad(false))                 \
	X("batch of 3, the middle one bad (engine)", RVA_EDIM, batch_one_bad(true))                  \
	/* rva_batch_unpack */                                                                       \
	X("unpack good", RVA_OK, unpack(-1))                                                         \
	X("unpack p NULL", RVA_ENULL, unpack(0))                                                     \
	X("unpack seqs NULL, cap 2", RVA_ENULL, unpack(1))                                           \
	X("unpack cu_q NULL", RVA_ENULL, unpack(2))                                                  \
	X("unpack cu_k NULL", RVA_ENULL, unpack(3))                                                  \
	X("unpack cap 1 < count 2", RVA_ERANGE, unpack(4))                                           \
	X("unpack cu_q[0] = 1", RVA_EINVAL, unpack(5))                                               \
	X("unpack cu_k decreasing", RVA_EINVAL, unpack(6))                                           \
	X("unpack k_stride 0", RVA_EINVAL, unpack(7))                                                \
	X("unpack count 0, seqs NULL", RVA_OK, unpack(8))                                            \
	X("unpack cu_q[2] < cu_q[1]", RVA_EINVAL, unpack(9))                                         \
	X("unpack q rows x q_stride overflows", RVA_EOVERFLOW, unpack(10))                           \
	X("unpack k rows SIZE_MAX/2 x k_stride overflows", RVA_EOVERFLOW, unpack(11))                \
	X("unpack out rows x out_stride x 4 bytes overflows", RVA_EOVERFLOW, unpack(12))             \
	X("unpack v_dtype 3 (not an rva_dtype)", RVA_EINVAL, unpack(13))                             \
	X("unpack fp16 q rows x q_stride x 2 bytes overflows", RVA_EOVERFLOW, unpack(14))            \
	X("unpack bf16 k, fp16 out", RVA_OK, unpack(15))                                             \
	/* engine.h */                                                                               \
	X("rva_engine_create out NULL", RVA_ENULL, rva_engine_create(NULL, NULL))                    \
	X("engine: numa COUNT", RVA_EINVAL, engine_cfg(0))                                           \
	X("engine: numa -1", RVA_EINVAL, engine_cfg(1))                                              \
	X("engine: kernels 99", RVA_EINVAL, engine_cfg(2))                                           \
	X("engine: cpus \"abc\"", RVA_EINVAL, engine_cfg(3))                                         \
	X("engine: cpus \"0-\"", RVA_EINVAL, engine_cfg(4))                                          \
	X("engine: cpus \"3-1\"", RVA_EINVAL, engine_cfg(5))                                         \
	X("engine: cpus \"4095\" (no such PU)", RVA_ENOTFOUND, engine_cfg(6))                        \
	X("engine: cpus \"core:4095\"", RVA_ENOTFOUND, engine_cfg(7))                                \
	X("engine: threads 100000", RVA_EINVAL, engine_cfg(8))                                       \
	X("engine: bad synthetic topology", RVA_EINVAL, engine_cfg(9))                              \
	X("engine: missing topology XML", RVA_ESYSTEM, engine_cfg(10))                               \
	X("engine: cpus index too large", RVA_EINVAL, engine_cfg(11))                                \
	X("engine: cpus \",\"", RVA_EINVAL, engine_cfg(12))                                          \
	X("engine: cpus \"\" = all", RVA_OK, engine_cfg(13))                                         \
	X("engine: scratch_bytes SIZE_MAX (rounding overflows)", RVA_EOVERFLOW, engine_cfg(14))     \
	X("engine: scratch_bytes SIZE_MAX - 4095", RVA_EOVERFLOW, engine_cfg(15))                   \
	X("engine: spin_us 1000001 (over a second)", RVA_ERANGE, engine_cfg(16))                    \
	X("engine: spin_us 1000000", RVA_OK, engine_cfg(17))                                        \
	X("engine: HWLOC_SYNTHETIC not a description", RVA_ESYSTEM, engine_env(0))                  \
	X("engine: HWLOC_XMLFILE missing", RVA_ESYSTEM, engine_env(1))                               \
	X("engine: HWLOC_XMLFILE not XML", RVA_ESYSTEM, engine_env(2))                               \
	X("engine: HWLOC_SYNTHETIC and HWLOC_XMLFILE both set", RVA_ESYSTEM, engine_env(3))          \
	X("rva_engine_destroy(NULL)", RVA_OK, rva_engine_destroy(NULL))                              \
	X("rva_engine_info_get e NULL", RVA_ENULL, rva_engine_info_get(NULL, &(rva_engine_info){0}))  \
	X("rva_engine_info_get out NULL", RVA_ENULL, rva_engine_info_get(F.e, NULL))                 \
	X("rva_engine_worker e NULL", RVA_ENULL, rva_engine_worker(NULL, 0, &(rva_worker_info){0})) \
	X("rva_engine_worker out NULL", RVA_ENULL, rva_engine_worker(F.e, 0, NULL))          \
	X("rva_engine_worker 99", RVA_ERANGE, rva_engine_worker(F.e, 99, &(rva_worker_info){0})) \
	X("rva_engine_read_probe e NULL", RVA_ENULL,                                               \
	  rva_engine_read_probe(NULL, (const void *const[]){F.good.k}, (size_t[]){64}, 1, &(double){0})) \
	X("rva_engine_read_probe bufs NULL", RVA_ENULL,                                            \
	  rva_engine_read_probe(F.e, NULL, (size_t[]){64}, 1, &(double){0}))                       \
	X("rva_engine_read_probe bytes NULL", RVA_ENULL,                                           \
	  rva_engine_read_probe(F.e, (const void *const[]){F.good.k}, NULL, 1, &(double){0}))      \
	X("rva_engine_read_probe seconds NULL", RVA_ENULL,                                         \
	  rva_engine_read_probe(F.e, (const void *const[]){F.good.k}, (size_t[]){64}, 1, NULL))    \
	X("rva_engine_read_probe a NULL buffer with bytes", RVA_ENULL,                             \
	  rva_engine_read_probe(F.e, (const void *const[]){NULL}, (size_t[]){64}, 1, &(double){0})) \
	X("rva_engine_read_probe n 0", RVA_EINVAL,                                                 \
	  rva_engine_read_probe(F.e, (const void *const[]){F.good.k}, (size_t[]){64}, 0, &(double){0})) \
	X("rva_engine_read_probe 64 bytes", RVA_OK,                                                \
	  rva_engine_read_probe(F.e, (const void *const[]){F.good.k}, (size_t[]){64}, 1, &(double){0})) \
	X("rva_engine_run good", RVA_OK, engine_batch1(F.good))                                      \
	X("rva_engine_run e NULL", RVA_ENULL,                                                        \
	  rva_engine_run(NULL, F.att, &(rva_batch){1, &F.good}, NULL, NULL, NULL))                   \
	X("rva_engine_run att NULL", RVA_ENULL,                                                      \
	  rva_engine_run(F.e, NULL, &(rva_batch){1, &F.good}, NULL, NULL, NULL))                     \
	X("rva_engine_run batch NULL", RVA_ENULL, rva_engine_run(F.e, F.att, NULL, NULL, NULL, NULL)) \
	X("rva_engine_run seqs NULL", RVA_ENULL,                                                     \
	  rva_engine_run(F.e, F.att, &(rva_batch){3, NULL}, NULL, NULL, NULL))                       \
	X("rva_engine_run count SIZE_MAX/2 (overflow)", RVA_EOVERFLOW,                               \
	  rva_engine_run(F.e, F.att, &(rva_batch){SIZE_MAX / 2, &F.good}, NULL, NULL, NULL))         \
	X("rva_engine_run_pipeline count SIZE_MAX/2 (overflow)", RVA_EOVERFLOW,                      \
	  rva_engine_run_pipeline(F.e, F.pipe, &(rva_batch){SIZE_MAX / 2, &F.good}, NULL, NULL, NULL)) \
	X("rva_engine_run count 0", RVA_OK,                                                          \
	  rva_engine_run(F.e, F.att, &(rva_batch){0, NULL}, NULL, NULL, NULL))                       \
	X("rva_engine_run seq q NULL", RVA_ENULL, engine_batch1(good_null(0)))                       \
	X("rva_engine_run seq nk 0", RVA_EEMPTY, engine_batch1(good_with(5, 0)))                     \
	X("rva_engine_run seq k_stride 1", RVA_EDIM, engine_batch1(good_with(1, 1)))                 \
	X("rva_engine_run seq nq 2^32", RVA_ERANGE, engine_batch1(good_with(4, (size_t)1 << 32)))    \
	X("rva_engine_run seq extent overflows", RVA_EOVERFLOW, engine_batch1(good_with(3, SIZE_MAX))) \
	X("rva_engine_run_pipeline p NULL", RVA_ENULL,                                               \
	  rva_engine_run_pipeline(F.e, NULL, &(rva_batch){1, &F.good}, NULL, NULL, NULL))            \
	X("rva_engine_run_pipeline batch NULL", RVA_ENULL,                                           \
	  rva_engine_run_pipeline(F.e, F.pipe, NULL, NULL, NULL, NULL))                              \
	X("rva_engine_submit job NULL", RVA_ENULL,                                                   \
	  rva_engine_submit(F.e, F.att, &(rva_batch){1, &F.good}, NULL, NULL))                       \
	X("rva_engine_submit e NULL", RVA_ENULL,                                                     \
	  rva_engine_submit(NULL, F.att, &(rva_batch){1, &F.good}, NULL, &(rva_job *){NULL}))        \
	X("rva_engine_submit_pipeline job NULL", RVA_ENULL,                                          \
	  rva_engine_submit_pipeline(F.e, F.pipe, &(rva_batch){1, &F.good}, NULL, NULL))             \
	X("rva_engine_submit_pipeline p NULL", RVA_ENULL,                                            \
	  rva_engine_submit_pipeline(F.e, NULL, &(rva_batch){1, &F.good}, NULL, &(rva_job *){NULL})) \
	X("rva_job_wait(NULL)", RVA_ENULL, rva_job_wait(NULL))                                       \
	X("rva_job_poll job NULL", RVA_ENULL, rva_job_poll(NULL, &(bool){0}))                        \
	X("rva_job_poll done NULL", RVA_ENULL, rva_job_poll(F.job, NULL))                            \
	X("rva_job_cancel(NULL)", RVA_ENULL, rva_job_cancel(NULL))                                   \
	X("rva_job_cancel_seq job NULL", RVA_ENULL, rva_job_cancel_seq(NULL, 0))                     \
	X("rva_job_cancel_seq past the sequences", RVA_ERANGE, rva_job_cancel_seq(F.job, 1u << 20))  \
	X("rva_job_seq_status job NULL", RVA_ENULL,                                                  \
	  rva_job_seq_status(NULL, 0, &(rva_status){0}, NULL))                                       \
	X("rva_job_seq_status st NULL", RVA_ENULL, job_seq(0, true, false))                          \
	X("rva_job_seq_status 2 of 2", RVA_ERANGE, job_seq(2, false, false))                         \
	X("rva_job_seq_status SIZE_MAX", RVA_ERANGE, job_seq(SIZE_MAX, false, true))                 \
	X("rva_job_seq_status 1, detail NULL", RVA_OK, job_seq(1, false, true))                      \
	X("rva_job_stats_get job NULL", RVA_ENULL, rva_job_stats_get(NULL, &(rva_job_stats){0}))     \
	X("rva_job_stats_get out NULL", RVA_ENULL, rva_job_stats_get(F.job, NULL))                   \
	X("rva_job_moe_stats job NULL", RVA_ENULL, rva_job_moe_stats(NULL, &(rva_moe_stats){0}))     \
	X("rva_job_moe_stats out NULL", RVA_ENULL, rva_job_moe_stats(F.job, NULL))                   \
	X("rva_job_moe_stats, none collected", RVA_ENOTFOUND,                                        \
	  rva_job_moe_stats(F.job, &(rva_moe_stats){0}))                                             \
	X("rva_job_destroy(NULL)", RVA_OK, rva_job_destroy(NULL))                                    \
	/* kv_cache.h */                                                                             \
	X("rva_kv_cache_create e NULL", RVA_ENULL,                                                   \
	  rva_kv_cache_create(NULL, &(rva_kv_cache_config){.kv_heads = 1, .head_dim = 1},          \
	                      &(rva_kv_cache *){NULL}))                                              \
	X("rva_kv_cache_create cfg NULL", RVA_ENULL,                                                 \
	  rva_kv_cache_create(F.e, NULL, &(rva_kv_cache *){NULL}))                                   \
	X("rva_kv_cache_create out NULL", RVA_ENULL,                                                 \
	  rva_kv_cache_create(F.e, &(rva_kv_cache_config){.kv_heads = 1, .head_dim = 1}, NULL))     \
	X("rva_kv_cache_create kv_heads 0", RVA_EINVAL, kv_cfg(0))                                   \
	X("rva_kv_cache_create head_dim 0", RVA_EINVAL, kv_cfg(1))                                   \
	X("rva_kv_cache_create page_tokens 7 (odd)", RVA_EINVAL, kv_cfg(2))                          \
	X("rva_kv_cache_create page_tokens 2^20", RVA_ERANGE, kv_cfg(3))                             \
	X("rva_kv_cache_create dtype 3", RVA_EINVAL, kv_cfg(4))                                      \
	X("rva_kv_cache_create reserved", RVA_EINVAL, kv_cfg(5))                                     \
	X("rva_kv_cache_create max_seqs 2^40", RVA_ERANGE, kv_cfg(6))                                \
	X("rva_kv_cache_create row overflows", RVA_EOVERFLOW, kv_cfg(7))                             \
	X("rva_kv_cache_create pages 2^40", RVA_ERANGE, kv_cfg(8))                                   \
	X("rva_kv_cache_create good", RVA_OK, kv_cfg(9))                                             \
	X("rva_kv_cache_destroy(NULL)", RVA_OK, rva_kv_cache_destroy(NULL))                          \
	X("rva_kv_cache_seq_new c NULL", RVA_ENULL, rva_kv_cache_seq_new(NULL, &(uint64_t){0}))      \
	X("rva_kv_cache_seq_new seq NULL", RVA_ENULL, rva_kv_cache_seq_new(F.kvc, NULL))             \
	X("rva_kv_cache_append c NULL", RVA_ENULL,                                                   \
	  rva_kv_cache_append(NULL, F.kvs, F.k, 0, F.v, 0, 1))                                       \
	X("rva_kv_cache_append k NULL", RVA_ENULL, rva_kv_cache_append(F.kvc, F.kvs, NULL, 0, F.v, 0, 1)) \
	X("rva_kv_cache_append v NULL", RVA_ENULL, rva_kv_cache_append(F.kvc, F.kvs, F.k, 0, NULL, 0, 1)) \
	X("rva_kv_cache_append unknown sequence", RVA_ENOTFOUND,                                     \
	  rva_kv_cache_append(F.kvc, F.kvs + 1, F.k, 0, F.v, 0, 1))                                  \
	X("rva_kv_cache_append stride 7 < row 8", RVA_EDIM,                                          \
	  rva_kv_cache_append(F.kvc, F.kvs, F.k, 7, F.v, 0, 1))                                      \
	X("rva_kv_cache_append stride overflows", RVA_EOVERFLOW,                                     \
	  rva_kv_cache_append(F.kvc, F.kvs, F.k, SIZE_MAX / 2, F.v, 0, 3))                           \
	X("rva_kv_cache_append 0 rows, NULL rows", RVA_OK,                                           \
	  rva_kv_cache_append(F.kvc, F.kvs, NULL, 0, NULL, 0, 0))                                    \
	X("rva_kv_cache_append past capacity", RVA_ENOMEM,                                           \
	  rva_kv_cache_append(F.kvc, F.kvs, F.k, 0, F.v, 0, 1000))                                   \
	X("rva_kv_cache_fork c NULL", RVA_ENULL, rva_kv_cache_fork(NULL, F.kvs, &(uint64_t){0}))     \
	X("rva_kv_cache_fork child NULL", RVA_ENULL, rva_kv_cache_fork(F.kvc, F.kvs, NULL))          \
	X("rva_kv_cache_fork unknown", RVA_ENOTFOUND,                                                \
	  rva_kv_cache_fork(F.kvc, F.kvs + 1, &(uint64_t){0}))                                       \
	X("rva_kv_cache_seq_free c NULL", RVA_ENULL, rva_kv_cache_seq_free(NULL, F.kvs))             \
	X("rva_kv_cache_seq_free unknown", RVA_ENOTFOUND, rva_kv_cache_seq_free(F.kvc, 0))           \
	X("rva_kv_cache_seq_len c NULL", RVA_ENULL, rva_kv_cache_seq_len(NULL, F.kvs, &(size_t){0})) \
	X("rva_kv_cache_seq_len len NULL", RVA_ENULL, rva_kv_cache_seq_len(F.kvc, F.kvs, NULL))      \
	X("rva_kv_cache_seq_len unknown", RVA_ENOTFOUND,                                             \
	  rva_kv_cache_seq_len(F.kvc, F.kvs + 1, &(size_t){0}))                                      \
	X("rva_kv_cache_seq_read c NULL", RVA_ENULL, rva_kv_cache_seq_read(NULL, F.kvs, 0, 1, NULL, NULL)) \
	X("rva_kv_cache_seq_read past the rows", RVA_ERANGE,                                         \
	  rva_kv_cache_seq_read(F.kvc, F.kvs, NK, 1, NULL, NULL))                                    \
	X("rva_kv_cache_seq_read row0 SIZE_MAX", RVA_ERANGE,                                         \
	  rva_kv_cache_seq_read(F.kvc, F.kvs, SIZE_MAX, 2, NULL, NULL))                              \
	X("rva_kv_cache_seq_read unknown", RVA_ENOTFOUND,                                            \
	  rva_kv_cache_seq_read(F.kvc, F.kvs + 1, 0, 1, NULL, NULL))                                 \
	X("rva_kv_cache_stats_get c NULL", RVA_ENULL,                                                \
	  rva_kv_cache_stats_get(NULL, &(rva_kv_cache_stats){0}))                                    \
	X("rva_kv_cache_stats_get out NULL", RVA_ENULL, rva_kv_cache_stats_get(F.kvc, NULL))         \
	X("rva_kv_cache_submit e NULL", RVA_ENULL,                                                   \
	  rva_kv_cache_submit(NULL, F.kvc, F.att, NULL, 0, NULL, &(rva_job *){NULL}))               \
	X("rva_kv_cache_submit c NULL", RVA_ENULL,                                                   \
	  rva_kv_cache_submit(F.e, NULL, F.att, NULL, 0, NULL, &(rva_job *){NULL}))                 \
	X("rva_kv_cache_submit att NULL", RVA_ENULL,                                                 \
	  rva_kv_cache_submit(F.e, F.kvc, NULL, NULL, 0, NULL, &(rva_job *){NULL}))                 \
	X("rva_kv_cache_submit job NULL", RVA_ENULL,                                                 \
	  rva_kv_cache_submit(F.e, F.kvc, F.att, NULL, 0, NULL, NULL))                               \
	X("rva_kv_cache_submit steps NULL, n 1", RVA_ENULL,                                          \
	  rva_kv_cache_submit(F.e, F.kvc, F.att, NULL, 1, NULL, &(rva_job *){NULL}))                \
	X("rva_kv_cache_submit linear attention", RVA_EUNSUPPORTED,                                  \
	  rva_kv_cache_submit(F.e, F.kvc, F.lin, NULL, 0, NULL, &(rva_job *){NULL}))                \
	X("rva_kv_cache_submit t5 (head_dim 8)", RVA_EDIM,                                          \
	  rva_kv_cache_submit(F.e, F.kvc, F.t5, NULL, 0, NULL, &(rva_job *){NULL}))                 \
	X("rva_kv_cache_run step nq past the rows", RVA_ERANGE, kv_step1(0))                         \
	X("rva_kv_cache_run step unknown sequence", RVA_ENOTFOUND, kv_step1(1))                      \
	X("rva_kv_cache_run step reserved", RVA_EINVAL, kv_step1(2))                                 \
	X("rva_kv_cache_run step out NULL", RVA_ENULL, kv_step1(3))                                  \
	X("rva_kv_cache_run step q NULL", RVA_ENULL, kv_step1(4))                                    \
	X("rva_kv_cache_run step out over q", RVA_EINVAL, kv_step1(5))                               \
	X("rva_kv_cache_run good step", RVA_OK, kv_step1(6))                                         \
	X("rva_kv_cache_run step bias stride below len", RVA_EDIM, kv_step1(7))                      \
	X("rva_kv_cache_run step mask head stride, no mask", RVA_EINVAL, kv_step1(8))                \
	X("rva_kv_cache_run step lse_head_stride, no lse", RVA_EINVAL, kv_step1(9))                  \
	X("rva_kv_cache_run step lse over out", RVA_EINVAL, kv_step1(10))                            \
	X("rva_kv_cache_run step query heads overlap", RVA_EDIM, kv_step1(11))                       \
	X("rva_kv_cache_run step out over bias", RVA_EINVAL, kv_step1(12))                           \
	X("rva_kv_cache_run step with every extra", RVA_OK, kv_step1(13))                            \
	/* pipeline.h */                                                                             \
	X("rva_pipeline_create(NULL)", RVA_ENULL, rva_pipeline_create(NULL))                         \
	X("rva_pipeline_destroy(NULL)", RVA_OK, rva_pipeline_destroy(NULL))                          \
	X("rva_pipeline_add_attention p NULL", RVA_ENULL, rva_pipeline_add_attention(NULL, F.att))   \
	X("rva_pipeline_add_attention att NULL", RVA_ENULL, rva_pipeline_add_attention(F.pipe, NULL)) \
	X("rva_pipeline_add_attention dim 32 after 16", RVA_EDIM, pipe_add_att(rva_multi_head(32, 4))) \
	X("rva_pipeline_add_attention kv width 8 after 16", RVA_EDIM, pipe_add_att(cfg_base()))      \
	X("rva_pipeline_add_norm p NULL", RVA_ENULL, rva_pipeline_add_norm(NULL, RVA_NORM_LAYER))    \
	X("rva_pipeline_add_norm type COUNT", RVA_EINVAL, rva_pipeline_add_norm(F.pipe, RVA_NORM_COUNT)) \
	X("add_norm_ex cfg NULL", RVA_ENULL, pipe_norm(0))                                           \
	X("add_norm_ex p NULL", RVA_ENULL, pipe_norm(1))                                             \
	X("add_norm_ex eps 0 = default", RVA_OK, pipe_norm(2))                                       \
	X("add_norm_ex eps -1e-5", RVA_ERANGE, pipe_norm(3))                                         \
	X("add_norm_ex eps NaN", RVA_ERANGE, pipe_norm(4))                                           \
	X("add_norm_ex eps +Inf", RVA_ERANGE, pipe_norm(5))                                          \
	X("add_norm_ex type COUNT", RVA_EINVAL, pipe_norm(6))                                        \
	X("add_norm_ex type -1", RVA_EINVAL, pipe_norm(7))                                           \
	X("add_norm_ex running stats on LayerNorm", RVA_EINVAL, pipe_norm(8))                        \
	X("add_norm_ex running_var < 0", RVA_ERANGE, pipe_norm(9))                                   \
	X("add_norm_ex running_var NaN", RVA_ERANGE, pipe_norm(10))                                  \
	X("add_norm_ex gain before the dim is known", RVA_ESTATE, pipe_norm(11))                     \
	X("add_norm_ex reserved[1] not zero", RVA_EINVAL, pipe_norm(12))                             \
	X("rva_pipeline_add_dropout p NULL", RVA_ENULL, rva_pipeline_add_dropout(NULL, 0.1f))        \
	X("rva_pipeline_add_dropout 1", RVA_ERANGE, rva_pipeline_add_dropout(F.pipe, 1.0f))          \
	X("rva_pipeline_add_dropout -0.1", RVA_ERANGE, rva_pipeline_add_dropout(F.pipe, -0.1f))      \
	X("rva_pipeline_add_dropout NaN", RVA_ERANGE, rva_pipeline_add_dropout(F.pipe, NAN))         \
	X("rva_pipeline_add_dropout +Inf", RVA_ERANGE, rva_pipeline_add_dropout(F.pipe, INFINITY))   \
	X("rva_pipeline_add_residual(NULL)", RVA_ENULL, rva_pipeline_add_residual(NULL))             \
	X("rva_pipeline_add_custom fn NULL", RVA_ENULL, rva_pipeline_add_custom(F.pipe, NULL, NULL)) \
	X("rva_pipeline_add_custom p NULL", RVA_ENULL,                                               \
	  rva_pipeline_add_custom(NULL, halve, NULL))               \
	X("rva_pipeline_stage_count p NULL", RVA_ENULL, rva_pipeline_stage_count(NULL, &(size_t){0})) \
	X("rva_pipeline_stage_count n NULL", RVA_ENULL, rva_pipeline_stage_count(F.pipe, NULL))      \
	X("rva_pipeline_set_mode p NULL", RVA_ENULL, pipe_mode(0))                                   \
	X("rva_pipeline_set_mode MODE_COUNT", RVA_EINVAL, pipe_mode(1))                              \
	X("rva_pipeline_set_mode -1", RVA_EINVAL, pipe_mode(2))                                      \
	X("rva_pipeline_mode_get p NULL", RVA_ENULL, pipe_mode(3))                                   \
	X("rva_pipeline_mode_get mode NULL", RVA_ENULL, pipe_mode(4))                                \
	X("rva_pipeline_set_mode SELF with GQA stages", RVA_EDIM, pipe_mode(5))                      \
	X("rva_pipeline_add_attention GQA in SELF mode", RVA_EDIM, pipe_mode(6))                     \
	X("rva_pipeline_set_mode after a run", RVA_ESTATE, pipe_mode(7))                             \
	X("SELF pipeline: sequence with other keys", RVA_EINVAL, pipe_mode(8))                       \
	X("AUTO pipeline, GQA: self-attention sequence", RVA_EDIM, pipe_mode(9))                     \
	X("SELF rva_pipeline_run: values differ from keys", RVA_EINVAL, pipe_mode(10))               \
	X("rva_pipeline_run good", RVA_OK,                                                           \
	  rva_pipeline_run(F.pipe, F.q, F.kfull_row, F.kfull_row, NK, F.out))                        \
	X("rva_pipeline_run empty pipeline", RVA_EEMPTY,                                             \
	  rva_pipeline_run(F.empty, F.q, F.kfull_row, F.kfull_row, NK, F.out))                       \
	X("rva_pipeline_run no attention stage", RVA_EEMPTY,                                         \
	  rva_pipeline_run(F.norm_only, F.q, F.kfull_row, F.kfull_row, NK, F.out))                   \
	X("rva_pipeline_run p NULL", RVA_ENULL,                                                      \
	  rva_pipeline_run(NULL, F.q, F.kfull_row, F.kfull_row, NK, F.out))                          \
	X("rva_pipeline_run query NULL", RVA_ENULL,                                                  \
	  rva_pipeline_run(F.pipe, NULL, F.kfull_row, F.kfull_row, NK, F.out))                       \
	X("rva_pipeline_run keys NULL", RVA_ENULL,                                                   \
	  rva_pipeline_run(F.pipe, F.q, NULL, F.kfull_row, NK, F.out))                               \
	X("rva_pipeline_run out NULL", RVA_ENULL,                                                    \
	  rva_pipeline_run(F.pipe, F.q, F.kfull_row, F.kfull_row, NK, NULL))                         \
	X("rva_pipeline_run n_keys 0", RVA_EEMPTY,                                                   \
	  rva_pipeline_run(F.pipe, F.q, F.kfull_row, F.kfull_row, 0, F.out))                         \
	X("rva_pipeline_run_ex values NULL", RVA_ENULL,                                              \
	  rva_pipeline_run_ex(F.pipe, F.q, F.kfull_row, NULL, NULL, NK, F.out, NULL))                \
	X("rva_pipeline_run_batch p NULL", RVA_ENULL,                                                \
	  rva_pipeline_run_batch(NULL, &(rva_batch){0, NULL}, NULL, NULL))                           \
	X("rva_pipeline_run_batch batch NULL", RVA_ENULL, rva_pipeline_run_batch(F.pipe, NULL, NULL, NULL)) \
	X("rva_pipeline_run_batch seqs NULL", RVA_ENULL,                                             \
	  rva_pipeline_run_batch(F.pipe, &(rva_batch){2, NULL}, NULL, NULL))                         \
	X("rva_pipeline_run_batch count SIZE_MAX/2 (overflow)", RVA_EOVERFLOW,                       \
	  rva_pipeline_run_batch(F.pipe, &(rva_batch){SIZE_MAX / 2, &F.good}, NULL, NULL))           \
	X("training BatchNorm over a single row", RVA_EINVAL, bn_single_row())                       \
	X("rva_transformer_block att NULL", RVA_ENULL, rva_transformer_block(NULL, 0.1f, &(rva_pipeline *){NULL})) \
	X("rva_transformer_block out NULL", RVA_ENULL, block(false, 0.1f, true))                     \
	X("rva_transformer_block dropout 1", RVA_ERANGE, block(false, 1.0f, false))                  \
	X("rva_transformer_block dropout NaN", RVA_ERANGE, block(false, NAN, false))                 \
	X("rva_prenorm_transformer_block dropout -1", RVA_ERANGE, block(true, -1.0f, false))         \
	X("rva_prenorm_transformer_block out NULL", RVA_ENULL, block(true, 0.0f, true))              \
	/* presets.h */                                                                              \
	X("rva_preset_from_name name NULL", RVA_ENULL, rva_preset_from_name(NULL, &(rva_preset){0})) \
	X("rva_preset_from_name out NULL", RVA_ENULL, rva_preset_from_name("bert", NULL))            \
	X("rva_preset_from_name \"bort\"", RVA_ENOTFOUND, rva_preset_from_name("bort", &(rva_preset){0})) \
	X("rva_preset_from_name \"\"", RVA_ENOTFOUND, rva_preset_from_name("", &(rva_preset){0}))    \
	X("rva_from_model_name name NULL", RVA_ENULL, rva_from_model_name(NULL, 64, &(rva_config){0})) \
	X("rva_from_model_name out NULL", RVA_ENULL, rva_from_model_name("bert", 64, NULL))          \
	X("rva_from_model_name \"llama\"", RVA_ENOTFOUND,                                            \
	  rva_from_model_name("llama", 64, &(rva_config){0}))                                        \
	/* npy.h */                                                                                  \
	X("rva_npy_parse_header buf NULL, len 10", RVA_ENULL,                                        \
	  rva_npy_parse_header(NULL, 10, &(rva_npy_header){0}))                                      \
	X("rva_npy_parse_header out NULL", RVA_ENULL, rva_npy_parse_header(npy_ok, npy_ok_len, NULL))        \
	X("rva_npy_parse_header empty", RVA_EFORMAT, rva_npy_parse_header(NULL, 0, &(rva_npy_header){0})) \
	X("rva_npy_parse_header not npy", RVA_EFORMAT,                                               \
	  rva_npy_parse_header("hello world", 11, &(rva_npy_header){0}))                             \
	X("rva_npy_parse_header shape overflows", RVA_EOVERFLOW, npy_overflow_header())              \
	X("rva_npy_parse buf NULL, len 5", RVA_ENULL, rva_npy_parse(NULL, 5, &(rva_npy_array){0}))   \
	X("rva_npy_parse out NULL", RVA_ENULL, rva_npy_parse(npy_ok, npy_ok_len, NULL))       \
	X("rva_npy_parse good", RVA_OK, npy_parse_variant(0))                                        \
	X("rva_npy_parse truncated data", RVA_EFORMAT, npy_parse_variant(1))                         \
	X("rva_npy_parse trailing byte", RVA_EFORMAT, npy_parse_variant(2))                          \
	X("rva_npy_parse header length beyond the buffer", RVA_EFORMAT, npy_parse_variant(3))        \
	X("rva_npy_parse dtype <i4", RVA_EFORMAT, npy_parse_variant(4))                              \
	X("rva_npy_parse version 9", RVA_EFORMAT, npy_parse_variant(5))                              \
	X("rva_npy_parse 5 bytes", RVA_EFORMAT, npy_parse_variant(6))                                \
	X("rva_npy_parse shape lies (4 for 2)", RVA_EFORMAT, npy_parse_variant(7))                   \
	X("rva_npy_parse shape lies (1 for 2)", RVA_EFORMAT, npy_parse_variant(8))                   \
	X("rva_npy_parse fortran_order True", RVA_EFORMAT, npy_parse_variant(9))                     \
	X("rva_npy_parse dtype <u2 (read only as bf16)", RVA_EFORMAT, npy_parse_variant(10))         \
	X("rva_npy_parse_as buf NULL, len 5", RVA_ENULL,                                             \
	  rva_npy_parse_as(NULL, 5, RVA_F16, &(rva_npy_typed){0}))                                   \
	X("rva_npy_parse_as out NULL", RVA_ENULL, rva_npy_parse_as(npy_ok, npy_ok_len, RVA_F16, NULL)) \
	X("rva_npy_parse_as dtype 9", RVA_EINVAL,                                                    \
	  rva_npy_parse_as(npy_ok, npy_ok_len, (rva_dtype)9, &(rva_npy_typed){0}))                   \
	X("rva_npy_load_as path NULL", RVA_ENULL,                                                    \
	  rva_npy_load_as(NULL, RVA_BF16, &(rva_npy_typed){0}))                                      \
	X("rva_npy_load_as dtype 9", RVA_EINVAL,                                                     \
	  rva_npy_load_as("x.npy", (rva_dtype)9, &(rva_npy_typed){0}))                               \
	X("rva_npy_load_as missing file", RVA_EIO,                                                   \
	  rva_npy_load_as("/nonexistent/rvattn/x.npy", RVA_F16, &(rva_npy_typed){0}))                \
	X("rva_npy_save_as dtype 9", RVA_EINVAL,                                                     \
	  rva_npy_save_as("/nonexistent/rvattn/x.npy", shape3, (rva_dtype)9, 1, shape3))             \
	X("rva_npy_typed_free NULL", RVA_OK, rva_npy_typed_free(NULL))                               \
	X("rva_npy_load path NULL", RVA_ENULL, rva_npy_load(NULL, &(rva_npy_array){0}))              \
	X("rva_npy_load out NULL", RVA_ENULL, rva_npy_load("x.npy", NULL))                           \
	X("rva_npy_load missing file", RVA_EIO,                                                      \
	  rva_npy_load("/nonexistent/rvattn/x.npy", &(rva_npy_array){0}))                            \
	X("rva_npy_load a directory", RVA_EIO, rva_npy_load("/", &(rva_npy_array){0}))              \
	X("rva_npy_load /dev/zero (a stream without the magic)", RVA_EFORMAT,                         \
	  rva_npy_load("/dev/zero", &(rva_npy_array){0}))                                            \
	X("rva_npy_load /dev/null (an empty stream)", RVA_EFORMAT,                                   \
	  rva_npy_load("/dev/null", &(rva_npy_array){0}))                                            \
	X("rva_npy_free(NULL)", RVA_OK, rva_npy_free(NULL))                                          \
	X("rva_npy_header_write len NULL", RVA_ENULL, rva_npy_header_write(1, shape3, 0, NULL, 0, NULL)) \
	X("rva_npy_header_write shape NULL", RVA_ENULL,                                              \
	  rva_npy_header_write(2, NULL, 0, NULL, 0, &(size_t){0}))                                   \
	X("rva_npy_header_write version 4", RVA_EINVAL,                                              \
	  rva_npy_header_write(1, shape3, 4, NULL, 0, &(size_t){0}))                                 \
	X("rva_npy_header_write ndim 33", RVA_EINVAL,                                                \
	  rva_npy_header_write(33, shape33, 0, NULL, 0, &(size_t){0}))                               \
	X("rva_npy_header_write shape overflows", RVA_EOVERFLOW,                                     \
	  rva_npy_header_write(2, shape_huge, 0, NULL, 0, &(size_t){0}))                             \
	X("rva_npy_header_write cap 10", RVA_ERANGE,                                                 \
	  rva_npy_header_write(1, shape3, 0, (char[10]){0}, 10, &(size_t){0}))                       \
	X("rva_npy_save path NULL", RVA_ENULL, rva_npy_save(NULL, F.q, 1, shape3))                   \
	X("rva_npy_save data NULL", RVA_ENULL, npy_save_to("a.npy", NULL, 1, shape3, 0))             \
	X("rva_npy_save data NULL, 0 elements", RVA_OK, npy_save_to("b.npy", NULL, 1, shape0, 0))    \
	X("rva_npy_save shape NULL", RVA_ENULL, npy_save_to("c.npy", F.q, 1, NULL, 0))               \
	X("rva_npy_save ndim 33", RVA_EINVAL, npy_save_to("d.npy", F.q, 33, shape33, 0))             \
	X("rva_npy_save shape overflows", RVA_EOVERFLOW, npy_save_to("e.npy", F.q, 2, shape_huge, 0)) \
	X("rva_npy_save_ex version 7", RVA_EINVAL, npy_save_to("f.npy", F.q, 1, shape3, 7))          \
	X("rva_npy_save missing directory", RVA_EIO,                                                 \
	  rva_npy_save("/nonexistent/rvattn/x.npy", F.q, 1, shape3))                                 \
	X("rva_npy_save onto a directory", RVA_EIO, npy_save_to("", F.q, 1, shape3, 0))             \
	X("rva_outfile_resolve path NULL", RVA_ENULL, rva_outfile_resolve(NULL, &(rva_outfile *){0})) \
	X("rva_outfile_resolve out NULL", RVA_ENULL, rva_outfile_resolve("x.bin", NULL))             \
	X("rva_outfile_resolve empty path", RVA_EINVAL, rva_outfile_resolve("", &(rva_outfile *){0})) \
	X("rva_outfile_resolve missing directory (out NULL)", RVA_EIO, outfile_with(5))              \
	X("rva_outfile_resolve a directory", RVA_EIO, rva_outfile_resolve(F.dir, &(rva_outfile *){0})) \
	X("rva_outfile_open path NULL", RVA_ENULL, rva_outfile_open(NULL, &(rva_outfile *){0}))      \
	X("rva_outfile_open out NULL", RVA_ENULL, rva_outfile_open("x.bin", NULL))                   \
	X("rva_outfile_open empty path", RVA_EINVAL, rva_outfile_open("", &(rva_outfile *){0}))      \
	X("rva_outfile_open descriptor 999", RVA_EIO,                                                \
	  rva_outfile_open("/proc/self/fd/999", &(rva_outfile *){0}))                                \
	X("rva_outfile_open_fd name NULL", RVA_ENULL, rva_outfile_open_fd(1, NULL, &(rva_outfile *){0})) \
	X("rva_outfile_open_fd out NULL", RVA_ENULL, rva_outfile_open_fd(1, "x", NULL))              \
	X("rva_outfile_open_fd fd -1", RVA_EIO, rva_outfile_open_fd(-1, "x", &(rva_outfile *){0}))   \
	X("rva_outfile_open_fd read-only fd", RVA_EIO, outfile_fd_readonly())                        \
	X("rva_outfile_begin NULL", RVA_ENULL, rva_outfile_begin(NULL))                              \
	X("rva_outfile_begin twice", RVA_ESTATE, outfile_with(3))                                    \
	X("rva_outfile_set_cancel NULL", RVA_ENULL, rva_outfile_set_cancel(NULL, NULL, NULL))        \
	X("rva_outfile_describe f NULL", RVA_ENULL,                                                  \
	  rva_outfile_describe(NULL, &(rva_outfile_desc){0}))                                        \
	X("rva_outfile_describe d NULL", RVA_ENULL, outfile_with(0))                                 \
	X("rva_outfile_write f NULL", RVA_ENULL, rva_outfile_write(NULL, "a", 1))                    \
	X("rva_outfile_write buf NULL", RVA_ENULL, outfile_with(1))                                  \
	X("rva_outfile_write before begin", RVA_ESTATE, outfile_with(2))                             \
	X("rva_outfile_commit NULL", RVA_ENULL, rva_outfile_commit(NULL))                            \
	X("rva_outfile_commit before begin", RVA_ESTATE, outfile_with(4))                            \
	X("rva_outfile_abort NULL", RVA_OK, rva_outfile_abort(NULL))

/* Row i's call (a chain of ifs generated from the table). */
static rva_status run_row(int i) {
	int n = 0;
#define ROW_CALL(what, want, expr)                                                     \
	if (i == n++)                                                                      \
		return (expr);
	ROWS(ROW_CALL)
#undef ROW_CALL
	return BROKEN;
}

static const struct {
	const char *what;
	rva_status want;
} rows[] = {
#define ROW_DESC(what, want, expr) {what, want},
	ROWS(ROW_DESC)
#undef ROW_DESC
};

Test(bad_input, matrix) {
	fixtures_up();
	npy_ok_make();
	size_t n = sizeof rows / sizeof rows[0], bad = 0;
	for (size_t i = 0; i < n; i++) {
		rva_clear_error();
		rva_status got = run_row((int)i);
		bool ok = got == rows[i].want;
		if (ok && got != RVA_OK && rva_last_error()[0] == '\0') {
			cr_expect(false, "%s: %s without a message in rva_last_error()", rows[i].what,
			          rva_status_name(got));
			ok = false;
		}
		if (!ok) {
			bad++;
			cr_expect_eq(got, rows[i].want, "%s: got %s (%d), want %s -- %s", rows[i].what,
			             got == BROKEN ? "a broken promise (output changed or wrong string)"
			                           : rva_status_name(got),
			             (int)got, rva_status_name(rows[i].want), rva_last_error());
		}
	}
	fprintf(stderr, "bad_input: %zu rows, %zu as documented\n", n, n - bad);
	fixtures_down();
}

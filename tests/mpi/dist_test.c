/*
 * Tests of rvattn_mpi (include/rvattn/dist.h), a plain MPI program run by ctest as
 * `mpirun --oversubscribe -n K dist_test` for K = 1, 2, 3.
 *
 * Checked on every rank count: the ranks' cpu sets on one node do not overlap (unless
 * there are more ranks than PUs); the LPT assignment against a hand-worked example;
 * batch sharding from a root (ragged, GQA, causal, strided rows, a decode sequence, more
 * ranks than sequences) bit-identical to the single-process engine, and one sequence
 * against the double-precision oracle; a bad sequence at the root and on another rank
 * (statuses agreed, reported with rank and sequence, nobody hangs); data-parallel local
 * batches; cancellation (every rank returns RVA_ECANCELLED, the next call works); decode
 * split-KV (decode and chunk paths, GQA, causal, key mask) and ring attention (causal
 * and not, nq != nk, T5 bias) bit-identical to the engine on the whole sequence.
 * Ends with one line "dist_test: K ranks: N checks, F failures".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "ref/ref_softmax.h"
#include "rvattn/dist.h"
#include "rvattn/rvattn.h"

static int failures, checks, rank_, size_;

#define CHECK(cond, ...)                                                                  \
	do {                                                                                  \
		checks++;                                                                         \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "dist_test[rank %d/%d]: FAIL %s:%d: ", rank_, size_, __FILE__, \
			        __LINE__);                                                            \
			fprintf(stderr, __VA_ARGS__);                                                 \
			fprintf(stderr, "\n");                                                        \
			failures++;                                                                   \
		}                                                                                 \
	} while (0)

/* The same pseudo-random data on every rank. */
static void fill(float *x, size_t n, unsigned seed) {
	unsigned long long s = 0x9E3779B97F4A7C15ull * (seed + 1);
	for (size_t i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		x[i] = (float)((double)(s >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
	}
}

static rva_attention *build(rva_mechanism m, size_t dim, size_t heads, size_t kvh, bool causal,
                            size_t kv_split, bool t5) {
	rva_config c = rva_config_defaults(dim);
	c.mechanism = m;
	c.heads = heads;
	c.kv_heads = kvh;
	c.causal = causal;
	c.kv_split = kv_split;
	c.block_size = 32;
	c.query_block = 16;
	if (t5)
		c.bias = RVA_BIAS_T5;
	rva_attention *att = NULL;
	rva_status st = rva_build(&c, &att);
	CHECK(st == RVA_OK, "rva_build: %s", rva_last_error());
	return att;
}

/* ---- 1. creation and cpu sets ---------------------------------------------------------- */

static void test_topology(rva_dist *d) {
	rva_dist_rank_info me, *all = rank_ == 0 ? calloc((size_t)size_, sizeof *all) : NULL;
	CHECK(rva_dist_info(d, &me) == RVA_OK, "info");
	CHECK(me.rank == rank_ && me.size == size_, "rank %d/%d", me.rank, me.size);
	CHECK(me.engine.workers >= 1, "workers %u", me.engine.workers);
	CHECK(rva_dist_gather_info(d, 0, all) == RVA_OK, "gather: %s", rva_last_error());
	if (rank_ == 0) {
		for (int a = 0; a < size_; a++)
			for (int b = a + 1; b < size_; b++)
				if (!strcmp(all[a].host, all[b].host) && !all[a].overlap && !all[b].overlap)
					CHECK(strcmp(all[a].engine.cpuset, all[b].engine.cpuset) != 0,
					      "ranks %d and %d share cpus %s", a, b, all[a].engine.cpuset);
		free(all);
	}
	CHECK(rva_dist_gather_info(d, size_, NULL) == RVA_ERANGE, "root out of range");
}

/* ---- 2. LPT ------------------------------------------------------------------------------ */

static void test_assign(void) {
	rva_attention *att = build(RVA_MECH_FLASH, 64, 4, 0, false, 0, false);
	size_t n[5] = {64, 128, 32, 256, 16};
	rva_seq s[5];
	for (int i = 0; i < 5; i++)
		s[i] = (rva_seq){.nq = n[i], .nk = n[i]};
	rva_batch b = {.count = 5, .seqs = s};
	int owner[5];
	CHECK(rva_dist_assign(2, att, &b, owner) == RVA_OK, "assign");
	/* costs ~ n^2: 256 -> r0; 128, 64, 32, 16 -> r1 (r1 stays below 65536) */
	int want[5] = {1, 1, 1, 0, 1};
	for (int i = 0; i < 5; i++)
		CHECK(owner[i] == want[i], "owner[%d] = %d, want %d", i, owner[i], want[i]);
	CHECK(rva_dist_assign(3, att, &b, owner) == RVA_OK, "assign 3");
	int want3[5] = {2, 1, 2, 0, 2}; /* 256->0, 128->1, 64->2, 32->2, 16->2 */
	for (int i = 0; i < 5; i++)
		CHECK(owner[i] == want3[i], "3 ranks: owner[%d] = %d, want %d", i, owner[i], want3[i]);
	CHECK(rva_dist_assign(0, att, &b, owner) == RVA_ERANGE, "0 ranks");
	CHECK(rva_dist_assign(2, NULL, &b, owner) == RVA_ENULL, "NULL att");
	rva_attention_destroy(att);
}

/* ---- 3. batch sharding ----------------------------------------------------------------- */

#define NS 5
typedef struct batch_data {
	rva_seq seqs[NS];
	float *mem[NS];
	uint8_t mask[600];
} batch_data;

/* A ragged GQA batch with strided query/output rows and a decode sequence. */
static void make_batch(batch_data *b, const rva_attention *att, size_t count) {
	size_t dim = 64, kvd = 32, nq[NS] = {100, 1, 37, 250, 64}, nk[NS] = {100, 600, 80, 250, 1};
	for (size_t i = 0; i < 600; i++)
		b->mask[i] = (uint8_t)(i % 7 != 3);
	(void)att;
	for (size_t i = 0; i < count; i++) {
		size_t qs = dim + 8, n = nq[i] * qs * 2 + nk[i] * kvd * 2;
		b->mem[i] = calloc(n, sizeof(float));
		fill(b->mem[i], n, (unsigned)i + 7);
		float *q = b->mem[i], *out = q + nq[i] * qs, *k = out + nq[i] * qs, *v = k + nk[i] * kvd;
		memset(out, 0, nq[i] * qs * sizeof(float));
		b->seqs[i] = (rva_seq){.nq = nq[i], .nk = nk[i], .q = q, .q_stride = qs, .k = k,
		                       .v = v, .out = out, .out_stride = qs,
		                       .key_mask = i == 1 ? b->mask : NULL};
	}
}

static void free_batch(batch_data *b, size_t count) {
	for (size_t i = 0; i < count; i++)
		free(b->mem[i]);
}

static void test_run_root(rva_dist *d) {
	rva_attention *att = build(RVA_MECH_FLASH, 64, 4, 2, true, 0, false);
	rva_engine *e;
	rva_dist_engine(d, &e);
	for (size_t count = 2; count <= NS; count += NS - 2) { /* 2 < 3 ranks, then 5 */
		batch_data got, want;
		make_batch(&got, att, count);
		make_batch(&want, att, count);
		rva_batch bg = {.count = count, .seqs = got.seqs}, bw = {.count = count, .seqs = want.seqs};
		rva_status sts[NS];
		rva_dist_stats stats;
		rva_status st = rva_dist_run_root(d, att, rank_ == 0 ? &bg : NULL, 0, NULL,
		                                  rank_ == 0 ? sts : NULL, &stats);
		CHECK(st == RVA_OK, "run_root(%zu): %s", count, rva_last_error());
		if (rank_ == 0) {
			CHECK(rva_engine_run(e, att, &bw, NULL, NULL, NULL) == RVA_OK, "engine");
			for (size_t i = 0; i < count; i++) {
				CHECK(sts[i] == RVA_OK, "seq %zu status %d", i, sts[i]);
				size_t bytes = (2 * got.seqs[i].nq * got.seqs[i].q_stride) * sizeof(float);
				CHECK(memcmp(got.mem[i], want.mem[i], bytes) == 0,
				      "%zu seqs: sequence %zu differs from the single-process engine", count, i);
			}
			/* one sequence against the double-precision oracle */
			const rva_seq *s = &got.seqs[0];
			ref_attn_spec sp = {.heads = 4, .kv_heads = 2, .head_dim = 16,
			                    .scale = 1.0 / sqrt(16.0), .causal = true};
			double *ref = malloc(s->nq * 64 * sizeof *ref);
			ref_attention(&sp, s->nq, s->nk, s->q, s->q_stride, s->k, 32, s->v, 32, NULL, ref);
			double worst = 0;
			for (size_t r = 0; r < s->nq; r++)
				for (size_t c = 0; c < 64; c++)
					worst = fmax(worst, fabs(ref[r * 64 + c] - ((const float *)s->out)[r * s->out_stride + c]));
			CHECK(worst < 1e-5, "oracle: max error %g", worst);
			free(ref);
		}
		free_batch(&got, count);
		free_batch(&want, count);
	}
	/* a bad sequence at the root: fails alone, the others complete and are right */
	batch_data got, want;
	make_batch(&got, att, NS);
	make_batch(&want, att, NS);
	got.seqs[2].k = NULL;
	rva_batch bg = {.count = NS, .seqs = got.seqs}, bw = {.count = NS, .seqs = want.seqs};
	rva_status sts[NS];
	rva_status st = rva_dist_run_root(d, att, rank_ == 0 ? &bg : NULL, 0, NULL,
	                                  rank_ == 0 ? sts : NULL, NULL);
	CHECK(st == RVA_ENULL, "bad sequence: %d (%s)", st, rva_last_error());
	CHECK(strstr(rva_last_error(), "sequence 2") != NULL, "message: %s", rva_last_error());
	if (rank_ == 0) {
		rva_engine_run(e, att, &bw, NULL, NULL, NULL);
		for (size_t i = 0; i < NS; i++) {
			CHECK(sts[i] == (i == 2 ? RVA_ENULL : RVA_OK), "seq %zu status %d", i, sts[i]);
			if (i != 2)
				CHECK(memcmp(got.seqs[i].out, want.seqs[i].out,
				             got.seqs[i].nq * got.seqs[i].out_stride * sizeof(float)) == 0,
				      "good sequence %zu next to a bad one differs", i);
		}
	}
	free_batch(&got, NS);
	free_batch(&want, NS);
	/* attentions that differ between ranks are refused everywhere */
	rva_attention *other = build(RVA_MECH_FLASH, 64, rank_ == size_ - 1 && size_ > 1 ? 8 : 4,
	                             2, true, 0, false);
	rva_batch empty = {.count = 0, .seqs = NULL};
	st = rva_dist_run_root(d, other, rank_ == 0 ? &empty : NULL, 0, NULL, NULL, NULL);
	CHECK(st == (size_ > 1 ? RVA_EINVAL : RVA_OK), "differing attentions: %d", st);
	rva_attention_destroy(other);
	rva_attention_destroy(att);
}

static void test_run_local(rva_dist *d) {
	rva_attention *att = build(RVA_MECH_FLASH, 64, 4, 2, false, 0, false);
	rva_engine *e;
	rva_dist_engine(d, &e);
	batch_data got, want;
	size_t count = (size_t)(rank_ % 3) + 1; /* ragged across ranks too */
	make_batch(&got, att, count);
	make_batch(&want, att, count);
	rva_batch bg = {.count = count, .seqs = got.seqs}, bw = {.count = count, .seqs = want.seqs};
	rva_status sts[NS];
	CHECK(rva_dist_run_local(d, att, &bg, NULL, sts, NULL) == RVA_OK, "local: %s",
	      rva_last_error());
	rva_engine_run(e, att, &bw, NULL, NULL, NULL);
	for (size_t i = 0; i < count; i++)
		CHECK(memcmp(got.seqs[i].out, want.seqs[i].out,
		             got.seqs[i].nq * got.seqs[i].out_stride * sizeof(float)) == 0,
		      "local sequence %zu differs", i);
	/* the last rank has a bad sequence (no keys): every rank learns it */
	if (rank_ == size_ - 1)
		got.seqs[0].nk = 0;
	rva_status st = rva_dist_run_local(d, att, &bg, NULL, sts, NULL);
	CHECK(st == RVA_EEMPTY, "bad local sequence: %d (%s)", st, rva_last_error());
	char want_msg[64];
	snprintf(want_msg, sizeof want_msg, "rank %d, sequence 0", size_ - 1);
	CHECK(strstr(rva_last_error(), want_msg) != NULL, "message: %s", rva_last_error());
	if (rank_ == size_ - 1)
		CHECK(sts[0] == RVA_EEMPTY && (count < 2 || sts[1] == RVA_OK), "statuses %d %d", sts[0],
		      count > 1 ? sts[1] : 0);
	free_batch(&got, count);
	free_batch(&want, count);
	rva_attention_destroy(att);
}

static void test_cancel(rva_dist *d) {
	rva_attention *att = build(RVA_MECH_FLASH, 64, 4, 2, false, 0, false);
	batch_data got;
	make_batch(&got, att, NS);
	rva_batch bg = {.count = NS, .seqs = got.seqs};
	rva_status sts[NS];
	if (rank_ == size_ - 1)
		CHECK(rva_dist_cancel(d) == RVA_OK, "cancel");
	rva_status st = rva_dist_run_root(d, att, rank_ == 0 ? &bg : NULL, 0, NULL,
	                                  rank_ == 0 ? sts : NULL, NULL);
	CHECK(st == RVA_ECANCELLED, "cancelled run_root: %d", st);
	if (rank_ == size_ - 1)
		rva_dist_cancel(d);
	st = rva_dist_run_local(d, att, &bg, NULL, NULL, NULL);
	CHECK(st == RVA_ECANCELLED, "cancelled run_local: %d", st);
	/* the flag was consumed: the next call completes */
	st = rva_dist_run_root(d, att, rank_ == 0 ? &bg : NULL, 0, NULL, rank_ == 0 ? sts : NULL,
	                       NULL);
	CHECK(st == RVA_OK, "after cancel: %d (%s)", st, rva_last_error());
	CHECK(rva_dist_cancel(NULL) == RVA_ENULL, "cancel NULL");
	free_batch(&got, NS);
	rva_attention_destroy(att);
}

/* ---- 4. decode split-KV ---------------------------------------------------------------- */

static void test_decode(rva_dist *d, size_t nq, size_t nk, bool causal, size_t kv_split,
                        bool masked) {
	rva_attention *att = build(RVA_MECH_FLASH, 128, 8, 2, causal, kv_split, false);
	size_t dim = 128, kvd = 32;
	float *q = malloc(nq * dim * sizeof *q), *k = malloc(nk * kvd * sizeof *k);
	float *v = malloc(nk * kvd * sizeof *v), *out = calloc(nq * dim, sizeof *out);
	float *want = calloc(nq * dim, sizeof *want);
	uint8_t *mask = malloc(nk);
	fill(q, nq * dim, 1);
	fill(k, nk * kvd, 2);
	fill(v, nk * kvd, 3);
	for (size_t i = 0; i < nk; i++)
		mask[i] = (uint8_t)((i * 31) % 11 != 0);
	size_t first = 0, count = 0;
	rva_status st = rva_dist_decode_keys(d, att, nq, nk, &first, &count);
	CHECK(st == RVA_OK, "decode_keys: %s", rva_last_error());
	/* this rank holds only its slice of the keys */
	float *ks = malloc((count ? count : 1) * kvd * sizeof *ks);
	float *vs = malloc((count ? count : 1) * kvd * sizeof *vs);
	memcpy(ks, k + first * kvd, count * kvd * sizeof *ks);
	memcpy(vs, v + first * kvd, count * kvd * sizeof *vs);
	rva_seq s = {.nq = nq, .nk = nk, .q = q, .k = count ? ks : NULL, .v = count ? vs : NULL,
	             .out = rank_ == 0 ? out : NULL, .key_mask = masked ? mask : NULL};
	st = rva_dist_decode(d, att, &s, 0, NULL, NULL);
	CHECK(st == RVA_OK, "decode nq %zu nk %zu: %s", nq, nk, rva_last_error());
	long long mine = (long long)count, total = 0;
	MPI_Allreduce(&mine, &total, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
	CHECK(total == (long long)nk, "key slices cover %lld of %zu keys", total, nk);
	if (rank_ == 0) {
		rva_engine *e;
		rva_dist_engine(d, &e);
		rva_seq w = {.nq = nq, .nk = nk, .q = q, .k = k, .v = v, .out = want,
		             .key_mask = masked ? mask : NULL};
		rva_batch b = {.count = 1, .seqs = &w};
		CHECK(rva_engine_run(e, att, &b, NULL, NULL, NULL) == RVA_OK, "engine");
		CHECK(memcmp(out, want, nq * dim * sizeof *out) == 0,
		      "decode nq %zu nk %zu causal %d split %zu: differs from the engine", nq, nk,
		      causal, kv_split);
		double sum = 0;
		for (size_t i = 0; i < nq * dim; i++)
			sum += fabs(out[i]);
		CHECK(sum > 0, "decode output is zero");
	}
	free(q), free(k), free(v), free(out), free(want), free(mask), free(ks), free(vs);
	rva_attention_destroy(att);
}

/* ---- 5. ring attention ------------------------------------------------------------------ */

static void test_ring(rva_dist *d, size_t nq, size_t nk, bool causal, bool t5, bool masked) {
	rva_attention *att = build(RVA_MECH_FLASH, 64, 4, 2, causal, 0, t5);
	size_t dim = 64, kvd = 32;
	float *q = malloc(nq * dim * sizeof *q), *k = malloc(nk * kvd * sizeof *k);
	float *v = malloc(nk * kvd * sizeof *v), *want = calloc(nq * dim, sizeof *want);
	uint8_t *mask = malloc(nk);
	fill(q, nq * dim, 4);
	fill(k, nk * kvd, 5);
	fill(v, nk * kvd, 6);
	for (size_t i = 0; i < nk; i++)
		mask[i] = (uint8_t)(i % 13 != 5);
	rva_dist_ring_layout L;
	rva_status st = rva_dist_ring_layout_get(d, att, nq, nk, &L);
	CHECK(st == RVA_OK, "layout: %s", rva_last_error());
	/* this rank's striped query tiles and its key block, copied out */
	size_t qs = dim + 4; /* strided local rows */
	float *lq = calloc((L.q_rows ? L.q_rows : 1) * qs, sizeof *lq);
	float *lo = calloc((L.q_rows ? L.q_rows : 1) * qs, sizeof *lo);
	float *lk = malloc((L.kv_rows ? L.kv_rows : 1) * kvd * sizeof *lk);
	float *lv = malloc((L.kv_rows ? L.kv_rows : 1) * kvd * sizeof *lv);
	size_t r = 0;
	for (size_t t = (size_t)rank_; t < L.q_tiles; t += (size_t)size_)
		for (size_t i = t * L.q_tile; i < nq && i < (t + 1) * L.q_tile; i++, r++)
			memcpy(lq + r * qs, q + i * dim, dim * sizeof *q);
	CHECK(r == L.q_rows, "layout rows %zu vs %zu", r, L.q_rows);
	memcpy(lk, k + L.kv_first * kvd, L.kv_rows * kvd * sizeof *lk);
	memcpy(lv, v + L.kv_first * kvd, L.kv_rows * kvd * sizeof *lv);
	rva_seq s = {.nq = nq, .nk = nk, .q = lq, .q_stride = qs, .k = L.kv_rows ? lk : NULL,
	             .v = L.kv_rows ? lv : NULL, .out = lo, .out_stride = qs,
	             .key_mask = masked ? mask : NULL};
	rva_dist_stats stats;
	st = rva_dist_ring(d, att, &s, NULL, &stats);
	CHECK(st == RVA_OK, "ring nq %zu nk %zu: %s", nq, nk, rva_last_error());
	rva_engine *e;
	rva_dist_engine(d, &e);
	rva_seq w = {.nq = nq, .nk = nk, .q = q, .k = k, .v = v, .out = want,
	             .key_mask = masked ? mask : NULL};
	rva_batch b = {.count = 1, .seqs = &w};
	CHECK(rva_engine_run(e, att, &b, NULL, NULL, NULL) == RVA_OK, "engine");
	r = 0;
	size_t bad = 0;
	for (size_t t = (size_t)rank_; t < L.q_tiles; t += (size_t)size_)
		for (size_t i = t * L.q_tile; i < nq && i < (t + 1) * L.q_tile; i++, r++)
			bad += memcmp(lo + r * qs, want + i * dim, dim * sizeof *want) != 0;
	CHECK(bad == 0, "ring nq %zu nk %zu causal %d t5 %d: %zu rows differ from the engine", nq,
	      nk, causal, t5, bad);
	free(q), free(k), free(v), free(want), free(mask), free(lq), free(lo), free(lk), free(lv);
	rva_attention_destroy(att);
}

static void test_bad_args(rva_dist *d) {
	rva_attention *lin = NULL;
	rva_config c = rva_linear(64, 16);
	CHECK(rva_build(&c, &lin) == RVA_OK, "linear");
	size_t first, count;
	CHECK(rva_dist_decode_keys(d, lin, 1, 100, &first, &count) == RVA_EINVAL, "linear decode");
	rva_attention *att = build(RVA_MECH_FLASH, 64, 4, 2, false, 0, false);
	CHECK(rva_dist_decode_keys(d, att, 100, 100, &first, &count) == RVA_EINVAL,
	      "decode of a dense shape");
	rva_dist_ring_layout L;
	CHECK(rva_dist_ring_layout_get(d, att, 1, 5000, &L) == RVA_EINVAL, "ring of a decode shape");
	CHECK(rva_dist_ring_layout_get(d, att, 10, 0, &L) == RVA_EEMPTY, "ring without keys");
	CHECK(rva_dist_ring_layout_get(NULL, att, 10, 10, &L) == RVA_ENULL, "ring NULL d");
	CHECK(rva_dist_create(MPI_COMM_WORLD, NULL, NULL) == RVA_ENULL, "create NULL out");
	/* a rank passing NULL pieces: agreed failure, nobody hangs */
	rva_seq s = {.nq = 40, .nk = 40};
	rva_status st = rva_dist_ring(d, att, &s, NULL, NULL);
	CHECK(st == RVA_ENULL, "ring with NULL rows: %d", st);
	rva_attention_destroy(att);
	rva_attention_destroy(lin);
}

int main(int argc, char **argv) {
	int provided = 0;
	MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
	MPI_Comm_size(MPI_COMM_WORLD, &size_);
	CHECK(provided >= MPI_THREAD_FUNNELED, "thread level %d", provided);
	rva_engine_config cfg = rva_engine_config_defaults();
	cfg.spin_us = 0;
	rva_dist *d = NULL;
	rva_status st = rva_dist_create(MPI_COMM_WORLD, &cfg, &d);
	CHECK(st == RVA_OK, "create: %s", rva_last_error());
	if (d) {
		test_topology(d);
		test_assign();
		test_run_root(d);
		test_run_local(d);
		test_cancel(d);
		test_decode(d, 1, 5000, false, 0, false);
		test_decode(d, 4, 3000, true, 0, true);
		test_decode(d, 1, 300, false, 0, false);   /* one chunk: rank 0 holds every key */
		test_decode(d, 12, 2000, true, 256, false); /* the chunk path (nq > 8) */
		test_ring(d, 300, 300, true, false, false);
		test_ring(d, 300, 300, false, false, true);
		test_ring(d, 77, 500, true, true, false);
		test_ring(d, 500, 200, true, false, false); /* nq > nk: rows that see no key */
		test_bad_args(d);
		rva_dist_destroy(d);
	}
	int total = 0, all_checks = 0;
	MPI_Reduce(&failures, &total, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
	MPI_Reduce(&checks, &all_checks, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
	if (rank_ == 0)
		printf("dist_test: %d ranks: %d checks, %d failures\n", size_, all_checks, total);
	MPI_Finalize();
	return rank_ == 0 ? (total != 0) : 0;
}

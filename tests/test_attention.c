/*
 * Softmax-family mechanisms (scaled_dot, multi_head, flash, local_global, strided
 * sparse, T5 bias) against the double-precision oracle tests/ref/ref_softmax.c, plus
 * the cross-checks of docs/ARCHITECTURE.md (Testing): flash = multi-head, single query =
 * batch of one, ragged batch = each sequence alone, patterns = dense with the explicit mask.
 *
 * Tolerance (fp32 vs double oracle): |got - want| <= 2e-5 + 2e-4 |want| per element.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_softmax.h"
#include "ref/ref_util.h"
#include "rvattn/rvattn.h"

#define ATOL 2e-5
#define RTOL 2e-4

typedef struct problem {
	size_t nq, nk, dim, kvdim;
	float *q, *k, *v, *out;
	uint8_t *mask;
	double *want;
} problem;

static problem make_problem(size_t nq, size_t nk, size_t heads, size_t kv_heads, size_t hd,
                            bool with_mask, uint64_t seed) {
	problem p = {.nq = nq, .nk = nk, .dim = heads * hd, .kvdim = kv_heads * hd};
	p.q = ref_alloc(nq * p.dim);
	p.k = ref_alloc(nk * p.kvdim);
	p.v = ref_alloc(nk * p.kvdim);
	p.out = ref_alloc(nq * p.dim);
	p.want = ref_alloc_d(nq * p.dim);
	ref_fill_uniform(p.q, nq * p.dim, -1.0f, 1.0f, seed);
	ref_fill_uniform(p.k, nk * p.kvdim, -1.0f, 1.0f, seed + 1);
	ref_fill_uniform(p.v, nk * p.kvdim, -1.0f, 1.0f, seed + 2);
	if (with_mask) {
		p.mask = malloc(nk);
		for (size_t j = 0; j < nk; j++)
			p.mask[j] = (j * 7 + seed) % 5 != 0; /* about one key in five masked */
	}
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

static ref_attn_spec spec_of(const rva_config *c) {
	size_t kvh = c->kv_heads ? c->kv_heads : c->heads;
	size_t hd = c->dim / c->heads;
	ref_attn_spec s = {.heads = c->heads, .kv_heads = kvh, .head_dim = hd,
	                   .scale = c->scale > 0 ? c->scale : 1.0 / sqrt((double)hd),
	                   .causal = c->causal || c->pattern == RVA_PATTERN_STRIDED};
	if (c->mechanism == RVA_MECH_LOCAL_GLOBAL) {
		s.pattern = REF_LOCAL_GLOBAL;
		s.window = c->window;
		if (c->n_global_indices) {
			s.globals = c->global_indices;
			s.nglobals = c->n_global_indices;
		}
	} else if (c->pattern == RVA_PATTERN_STRIDED) {
		s.pattern = REF_STRIDED;
		s.stride = c->sparse_stride;
	}
	return s;
}

/* Runs cfg on p through rva_compute_batch and checks it against the oracle. */
static void check_against_oracle(rva_config cfg, problem *p, const char *what) {
	rva_attention *att = NULL;
	rva_status st = rva_build(&cfg, &att);
	cr_assert_eq(st, RVA_OK, "%s: build: %s", what, rva_last_error());
	rva_seq s = seq_of(p);
	rva_batch b = {.count = 1, .seqs = &s};
	st = rva_compute_batch(att, &b, NULL, NULL);
	cr_assert_eq(st, RVA_OK, "%s: compute: %s", what, rva_last_error());
	ref_attn_spec sp = spec_of(&cfg);
	size_t globals[1] = {0};
	if (sp.pattern == REF_LOCAL_GLOBAL && !sp.globals && cfg.global_tokens == 1) {
		sp.globals = globals;
		sp.nglobals = 1;
	}
	const float *table = NULL;
	size_t nb = 0, nh = 0;
	if (cfg.bias == RVA_BIAS_T5) {
		cr_assert_eq(rva_attention_bias_table(att, &table, &nb, &nh), RVA_OK);
		sp.t5_table = table;
		sp.t5_buckets = nb;
		sp.t5_max_distance = cfg.bias_max_distance;
	}
	ref_attention(&sp, p->nq, p->nk, p->q, p->dim, p->k, p->kvdim, p->v, p->kvdim,
	                      p->mask, p->want);
	double e = ref_err_ratio(p->out, p->want, p->nq * p->dim, ATOL, RTOL);
	cr_assert(e <= 1.0, "%s: error ratio %g (nq %zu nk %zu dim %zu heads %zu)", what, e,
	          p->nq, p->nk, cfg.dim, cfg.heads);
	rva_attention_destroy(att);
}

static void grid(rva_mechanism mech) {
	static const size_t nks[] = {1, 7, 64, 129, 1000};
	static const size_t hds[] = {1, 3, 64, 80, 128};
	static const size_t hs[] = {1, 4, 12};
	unsigned n = 0;
	for (size_t a = 0; a < 5; a++)
		for (size_t b = 0; b < 5; b++)
			for (size_t c = 0; c < 3; c++, n++) {
				size_t nk = nks[a], hd = hds[b], heads = hs[c];
				size_t kvh = heads == 12 ? (n % 2 ? 4 : 12) : heads == 4 ? (n % 2 ? 1 : 2) : 1;
				size_t nq = n % 3 == 0 ? nk : 1 + (n * 13) % 40; /* nq != nk too */
				bool mask = n % 4 == 1, causal = n % 5 == 2;
				if (hd == 128 && heads == 12 && nk == 1000)
					nq = 9; /* keep the oracle quick */
				problem p = make_problem(nq, nk, heads, kvh, hd, mask, 100 + n);
				rva_config cfg = rva_multi_head(heads * hd, heads);
				cfg.mechanism = mech;
				cfg.kv_heads = kvh;
				cfg.causal = causal;
				if (mech == RVA_MECH_FLASH)
					cfg.block_size = n % 2 ? 32 : 100;
				char what[96];
				snprintf(what, sizeof what, "%s #%u", rva_mechanism_name(mech), n);
				check_against_oracle(cfg, &p, what);
				free_problem(&p);
			}
}

Test(multi_head, oracle_grid) { grid(RVA_MECH_MULTI_HEAD); }
Test(flash, oracle_grid) { grid(RVA_MECH_FLASH); }

Test(scaled_dot, oracle_one_head) {
	problem p = make_problem(17, 129, 1, 1, 48, true, 5);
	check_against_oracle(rva_scaled_dot(48), &p, "scaled_dot");
	free_problem(&p);
	p = make_problem(1, 5, 1, 1, 512, false, 6);
	rva_config c = rva_scaled_dot(512);
	c.scale = 0.5f;
	check_against_oracle(c, &p, "scaled_dot scale 0.5");
	free_problem(&p);
}

Test(multi_head, blis_backend_matches_oracle) {
	setenv("RVATTN_ATTN_KERNEL", "blis", 1);
	problem p = make_problem(70, 300, 4, 2, 64, true, 9);
	rva_config c = rva_multi_head(256, 4);
	c.kv_heads = 2;
	c.causal = true;
	check_against_oracle(c, &p, "blis backend");
	free_problem(&p);
	p = make_problem(3, 1500, 2, 2, 80, false, 10); /* decode shape: split-KV */
	check_against_oracle(rva_multi_head(160, 2), &p, "blis backend decode");
	free_problem(&p);
}

Test(multi_head, scalar_backend_matches_oracle) {
	setenv("RVATTN_SIMD", "scalar", 1);
	problem p = make_problem(33, 200, 3, 3, 20, true, 11);
	rva_config c = rva_multi_head(60, 3);
	c.causal = true;
	check_against_oracle(c, &p, "scalar backend");
	free_problem(&p);
}

Test(flash, split_kv_decoding) {
	for (size_t nq = 1; nq <= 16; nq += 5) {
		problem p = make_problem(nq, 3000, 4, 4, 64, nq == 6, 20 + nq);
		rva_config c = rva_flash(256, 128);
		c.heads = 4;
		c.causal = nq == 11;
		check_against_oracle(c, &p, "split-kv");
		/* no split gives the same numbers to fp32 rounding */
		rva_attention *att;
		c.kv_split = SIZE_MAX;
		cr_assert_eq(rva_build(&c, &att), RVA_OK);
		float *o2 = ref_alloc(nq * 256);
		rva_seq s = seq_of(&p);
		s.out = o2;
		rva_batch b = {1, &s};
		cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
		for (size_t i = 0; i < nq * 256; i++)
			cr_assert(fabsf(o2[i] - p.out[i]) <= 1e-5f + 1e-4f * fabsf(p.out[i]));
		free(o2);
		rva_attention_destroy(att);
		free_problem(&p);
	}
}

Test(flash, equals_multi_head) {
	problem p = make_problem(200, 333, 12, 12, 64, false, 30);
	float *o2 = ref_alloc(200 * 768);
	rva_attention *mh, *fl;
	rva_config a = rva_multi_head(768, 12), b = rva_flash(768, 48);
	a.causal = b.causal = true;
	b.heads = 12;
	/* Each against the oracle first: agreeing with each other alone would not show an
	 * error the two share (they run the same tile loop with other tile sizes). */
	check_against_oracle(a, &p, "multi_head(768, 12) causal");
	check_against_oracle(b, &p, "flash(768, 48) causal");
	cr_assert_eq(rva_build(&a, &mh), RVA_OK);
	cr_assert_eq(rva_build(&b, &fl), RVA_OK);
	rva_seq s1 = seq_of(&p), s2 = seq_of(&p);
	s2.out = o2;
	rva_batch b1 = {1, &s1}, b2 = {1, &s2};
	cr_assert_eq(rva_compute_batch(mh, &b1, NULL, NULL), RVA_OK);
	cr_assert_eq(rva_compute_batch(fl, &b2, NULL, NULL), RVA_OK);
	for (size_t i = 0; i < 200 * 768; i++)
		cr_assert(fabsf(o2[i] - p.out[i]) <= 1e-6f + 1e-5f * fabsf(p.out[i]),
		          "element %zu: flash %g multi-head %g", i, o2[i], p.out[i]);
	free(o2);
	rva_attention_destroy(mh);
	rva_attention_destroy(fl);
	free_problem(&p);
}

Test(multi_head, single_query_equals_batch_of_one) {
	problem p = make_problem(1, 77, 8, 4, 16, true, 40);
	rva_config c = rva_multi_head(128, 8);
	c.kv_heads = 4;
	c.causal = true;
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	const float **kr = malloc(77 * sizeof *kr), **vr = malloc(77 * sizeof *vr);
	for (size_t j = 0; j < 77; j++) {
		kr[j] = p.k + j * 64;
		vr[j] = p.v + j * 64;
	}
	float single[128];
	cr_assert_eq(rva_compute_masked(att, p.q, kr, vr, p.mask, 77, single), RVA_OK);
	rva_seq s = seq_of(&p);
	rva_batch b = {1, &s};
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
	cr_assert_eq(memcmp(single, p.out, sizeof single), 0, "single query != batch of one");
	free(kr);
	free(vr);
	rva_attention_destroy(att);
	free_problem(&p);
}

Test(multi_head, ragged_batch_equals_each_alone_with_strides) {
	/* Sequences live inside BSHD-like buffers with row strides wider than the rows. */
	enum { NS = 5, H = 4, HD = 32, DIM = H * HD, PAD = 24 };
	size_t nqs[NS] = {1, 64, 65, 200, 3}, nks[NS] = {10, 64, 300, 200, 2000};
	rva_config c = rva_multi_head(DIM, H);
	c.causal = true;
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_seq seqs[NS];
	float *bufs[NS][4], *alone[NS];
	for (int s = 0; s < NS; s++) {
		size_t rs = DIM + PAD;
		for (int m = 0; m < 4; m++) {
			size_t rows = m == 0 || m == 3 ? nqs[s] : nks[s];
			bufs[s][m] = ref_alloc(rows * rs);
			ref_fill_uniform(bufs[s][m], rows * rs, -2.0f, 2.0f, 1000 + s * 4 + m);
		}
		seqs[s] = (rva_seq){.nq = nqs[s], .nk = nks[s], .q = bufs[s][0], .q_stride = rs,
		                    .k = bufs[s][1], .k_stride = rs, .v = bufs[s][2], .v_stride = rs,
		                    .out = bufs[s][3], .out_stride = rs};
		alone[s] = ref_alloc(nqs[s] * DIM);
	}
	rva_batch b = {NS, seqs};
	rva_status stat[NS];
	cr_assert_eq(rva_compute_batch(att, &b, NULL, stat), RVA_OK);
	for (int s = 0; s < NS; s++) {
		cr_assert_eq(stat[s], RVA_OK);
		rva_seq one = seqs[s];
		one.out = alone[s];
		one.out_stride = 0;
		rva_batch b1 = {1, &one};
		cr_assert_eq(rva_compute_batch(att, &b1, NULL, NULL), RVA_OK);
		for (size_t i = 0; i < nqs[s]; i++)
			cr_assert_eq(memcmp(alone[s] + i * DIM, (float *)seqs[s].out + i * (DIM + PAD),
			                    DIM * sizeof(float)), 0, "seq %d row %zu differs", s, i);
		/* and against the oracle */
		double *want = ref_alloc_d(nqs[s] * DIM);
		ref_attn_spec sp = spec_of(&c);
		ref_attention(&sp, nqs[s], nks[s], seqs[s].q, DIM + PAD, seqs[s].k, DIM + PAD,
		                      seqs[s].v, DIM + PAD, NULL, want);
		cr_assert(ref_err_ratio(alone[s], want, nqs[s] * DIM, ATOL, RTOL) <= 1.0);
		/* padding columns untouched */
		for (size_t i = 0; i < nqs[s]; i++)
			for (size_t d = DIM; d < DIM + PAD; d++)
				cr_assert_eq(((float *)seqs[s].out)[i * (DIM + PAD) + d], bufs[s][3][i * (DIM + PAD) + d]);
		free(want);
	}
	for (int s = 0; s < NS; s++) {
		for (int m = 0; m < 4; m++)
			free(bufs[s][m]);
		free(alone[s]);
	}
	rva_attention_destroy(att);
}

Test(local_global, oracle_and_explicit_mask) {
	size_t globals[3] = {90, 5, 5}; /* unsorted, with a duplicate */
	for (int causal = 0; causal < 2; causal++)
		for (int list = 0; list < 2; list++) {
			problem p = make_problem(300, 300, 2, 2, 16, causal == 0 && list == 1, 50);
			rva_config c = rva_local_global(32, 40);
			c.heads = 2;
			c.causal = causal;
			c.block_size = 32;
			c.query_block = 32;
			if (list) {
				c.global_indices = globals;
				c.n_global_indices = 3;
			}
			check_against_oracle(c, &p, "local_global");
			/* Row i equals a dense single-query attention with key mask = row i's pattern
			 * (the query placed last by giving it the keys up to... all keys, non-causal). */
			rva_config dc = rva_multi_head(32, 2);
			rva_attention *dense;
			cr_assert_eq(rva_build(&dc, &dense), RVA_OK);
			ref_attn_spec sp = spec_of(&c);
			size_t g1[1] = {0};
			if (!list) {
				sp.globals = g1;
				sp.nglobals = 1;
			}
			uint8_t *m = malloc(300);
			float out[32];
			for (size_t i = 0; i < 300; i += 37) {
				for (size_t j = 0; j < 300; j++)
					m[j] = ref_visible(&sp, (long)i, (long)j) && (!p.mask || p.mask[j]);
				rva_seq s = {.nq = 1, .nk = 300, .q = p.q + i * 32, .k = p.k, .v = p.v,
				             .out = out, .key_mask = m};
				rva_batch b = {1, &s};
				cr_assert_eq(rva_compute_batch(dense, &b, NULL, NULL), RVA_OK);
				for (size_t d = 0; d < 32; d++)
					cr_assert(fabsf(out[d] - p.out[i * 32 + d]) <= 1e-5f, "row %zu", i);
			}
			free(m);
			rva_attention_destroy(dense);
			free_problem(&p);
		}
}

Test(sparse, strided_pattern_matches_oracle) {
	for (size_t stride = 3; stride <= 64; stride *= 4) {
		problem p = make_problem(257, 257, 4, 4, 8, stride == 12, 60 + stride);
		rva_config c = rva_multi_head(32, 4);
		c.pattern = RVA_PATTERN_STRIDED;
		c.sparse_stride = stride;
		c.block_size = 64;
		check_against_oracle(c, &p, "strided");
		free_problem(&p);
	}
}

Test(t5, buckets_match_reference_table) {
	/* Hand-computed from the HF definition (32 buckets, max distance 128). */
	struct { long rp; bool bidir; size_t want; } cases[] = {
		{0, true, 0},    {1, true, 17},   {-1, true, 1},  {7, true, 23},
		{8, true, 24},   {-8, true, 8},   {-20, true, 10}, {20, true, 26},
		{127, true, 31}, {200, true, 31}, {-200, true, 15}, {0, false, 0},
		{5, false, 0},   {-5, false, 5},  {-16, false, 16}, {-40, false, 23},
		{-1000, false, 31},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t b;
		cr_assert_eq(rva_t5_bucket(cases[i].rp, cases[i].bidir, 32, 128, &b), RVA_OK);
		cr_assert_eq(b, cases[i].want, "rp %ld bidir %d: got %zu want %zu", cases[i].rp,
		             cases[i].bidir, b, cases[i].want);
	}
	for (long rp = -600; rp <= 600; rp++)
		for (int bd = 0; bd < 2; bd++) {
			size_t b;
			cr_assert_eq(rva_t5_bucket(rp, bd, 32, 128, &b), RVA_OK);
			cr_assert_eq(b, ref_t5_bucket(rp, bd, 32, 128));
		}
	size_t b;
	cr_assert_eq(rva_t5_bucket(0, true, 2, 128, &b), RVA_ERANGE);
	cr_assert_eq(rva_t5_bucket(0, false, 32, 8, &b), RVA_ERANGE);
	cr_assert_eq(rva_t5_bucket(0, false, 32, 128, NULL), RVA_ENULL);
}

Test(t5, biased_attention_matches_oracle) {
	for (int causal = 0; causal < 2; causal++) {
		problem p = make_problem(150, 400, 4, 4, 16, false, 70);
		rva_config c = rva_multi_head(64, 4);
		c.bias = RVA_BIAS_T5;
		c.scale = 1.0f;
		c.causal = causal;
		check_against_oracle(c, &p, "t5");
		free_problem(&p);
		/* caller-supplied table honoured */
		float table[32 * 4];
		ref_fill_uniform(table, 128, -1.0f, 1.0f, 71);
		c.bias_table = table;
		p = make_problem(20, 30, 4, 4, 16, true, 72);
		check_against_oracle(c, &p, "t5 given table");
		free_problem(&p);
	}
}

Test(multi_head, fully_masked_rows_are_zero_and_nan_propagates) {
	problem p = make_problem(4, 50, 2, 2, 8, false, 80);
	p.mask = calloc(50, 1); /* every key masked */
	rva_attention *att;
	rva_config c = rva_multi_head(16, 2);
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_seq s = seq_of(&p);
	rva_batch b = {1, &s};
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
	for (size_t i = 0; i < 4 * 16; i++)
		cr_assert_eq(p.out[i], 0.0f);
	/* causal with nq > nk: the first queries precede every key */
	free(p.mask);
	p.mask = NULL;
	s.key_mask = NULL; /* s is reused below: it must not keep the freed mask */
	rva_attention_destroy(att);
	c.causal = true;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	problem r = make_problem(6, 3, 2, 2, 8, false, 81);
	rva_seq s2 = seq_of(&r);
	rva_batch b2 = {1, &s2};
	cr_assert_eq(rva_compute_batch(att, &b2, NULL, NULL), RVA_OK);
	for (size_t i = 0; i < 3 * 16; i++)
		cr_assert_eq(r.out[i], 0.0f, "query before every key must give 0");
	for (size_t i = 5 * 16; i < 6 * 16; i++)
		cr_assert_neq(r.out[i], 0.0f);
	/* NaN in a key propagates to the rows that see it */
	p.k[3 * 16] = NAN;
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
	cr_assert(isnan(p.out[3 * 16]), "NaN key must propagate to the last query");
	rva_attention_destroy(att);
	free_problem(&p);
	free_problem(&r);
}

Test(multi_head, dropout_only_in_training_and_deterministic) {
	problem p = make_problem(40, 90, 2, 2, 16, false, 90);
	rva_config c = rva_multi_head(32, 2);
	c.dropout = 0.3f;
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	check_against_oracle(c, &p, "dropout, inference = no dropout");
	float *t1 = ref_alloc(40 * 32), *t2 = ref_alloc(40 * 32), *t3 = ref_alloc(40 * 32);
	rva_runtime rt = {.training = true, .seed = 7};
	rva_seq s = seq_of(&p);
	rva_batch b = {1, &s};
	s.out = t1;
	cr_assert_eq(rva_compute_batch(att, &b, &rt, NULL), RVA_OK);
	s.out = t2;
	cr_assert_eq(rva_compute_batch(att, &b, &rt, NULL), RVA_OK);
	cr_assert_eq(memcmp(t1, t2, 40 * 32 * sizeof(float)), 0, "same seed, same mask");
	rt.seed = 8;
	s.out = t3;
	cr_assert_eq(rva_compute_batch(att, &b, &rt, NULL), RVA_OK);
	cr_assert_neq(memcmp(t1, t3, 40 * 32 * sizeof(float)), 0, "another seed, another mask");
	double diff = ref_max_abs_diff(t1, 32, p.want, 32, 40, 32);
	cr_assert(diff > 1e-3, "training output should differ from inference");
	free(t1);
	free(t2);
	free(t3);
	rva_attention_destroy(att);
	free_problem(&p);
}

Test(attention, bad_config_statuses) {
	rva_attention *att = NULL;
	rva_config c = rva_multi_head(100, 12);
	cr_assert_eq(rva_build(&c, &att), RVA_EDIM);
	cr_assert(strstr(rva_last_error(), "12") && strstr(rva_last_error(), "100"));
	c = rva_multi_head(768, 12);
	c.kv_heads = 5;
	cr_assert_eq(rva_build(&c, &att), RVA_EDIM);
	c = rva_multi_head(768, 12);
	c.dropout = 1.0f;
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c.dropout = -0.1f;
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_flash(64, 65537);
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_local_global(64, 7);
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_multi_head(64, 3);
	cr_assert_eq(rva_build(&c, &att), RVA_EDIM);
	c = rva_multi_head(0, 1);
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_multi_head(64, 4);
	c.mechanism = (rva_mechanism)99;
	cr_assert_eq(rva_build(&c, &att), RVA_EINVAL);
	c = rva_local_global(64, 8);
	c.pattern = RVA_PATTERN_STRIDED;
	cr_assert_eq(rva_build(&c, &att), RVA_EINVAL);
	c = rva_multi_head(64, 4);
	c.scale = NAN;
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_multi_head(64, 4);
	c.block_size = (size_t)1 << 62; /* tile scratch would overflow */
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_multi_head(64, 4);
	c.query_block = SIZE_MAX;
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_multi_head(64, 4);
	c.bias = RVA_BIAS_T5;
	c.pattern = RVA_PATTERN_STRIDED; /* forces causal: decoder buckets, 2 suffice */
	c.bias_buckets = 2;
	c.bias_max_distance = 4;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_attention_destroy(att);
	att = NULL;
	cr_assert_eq(rva_build(NULL, &att), RVA_ENULL);
	cr_assert_eq(rva_build(&c, NULL), RVA_ENULL);
	cr_assert_null(att);
}

Test(attention, bad_sequences_fail_alone) {
	rva_config c = rva_multi_head(32, 2);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	problem good = make_problem(5, 9, 2, 2, 16, false, 95);
	float out2[5 * 32];
	rva_seq seqs[4] = {seq_of(&good), seq_of(&good), seq_of(&good), seq_of(&good)};
	seqs[1].nk = 0;             /* no keys */
	seqs[2].k_stride = 16;      /* narrower than the 32-float rows */
	seqs[3].out = out2;
	rva_status st[4];
	rva_batch b = {4, seqs};
	rva_status r = rva_compute_batch(att, &b, NULL, st);
	cr_assert_eq(r, RVA_EEMPTY);
	cr_assert(strstr(rva_last_error(), "sequence 1"), "detail: %s", rva_last_error());
	cr_assert_eq(st[0], RVA_OK);
	cr_assert_eq(st[1], RVA_EEMPTY);
	cr_assert_eq(st[2], RVA_EDIM);
	cr_assert_eq(st[3], RVA_OK);
	cr_assert_eq(memcmp(out2, good.out, sizeof out2), 0);
	/* single-query bad input */
	float q[32] = {0}, o[32];
	const float *rows[1] = {q};
	cr_assert_eq(rva_compute(att, q, rows, rows, 0, o), RVA_EEMPTY);
	cr_assert_eq(rva_compute(att, NULL, rows, rows, 1, o), RVA_ENULL);
	const float *bad[1] = {NULL};
	cr_assert_eq(rva_compute(att, q, bad, rows, 1, o), RVA_ENULL);
	rva_attention_destroy(att);
	free_problem(&good);
}

Test(attention, flops_count_visible_pairs) {
	rva_config c = rva_multi_head(64, 4);
	c.causal = true;
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_seq s = {.nq = 100, .nk = 100};
	rva_batch b = {1, &s};
	double f;
	cr_assert_eq(rva_attention_flops(att, &b, &f), RVA_OK);
	cr_assert_float_eq(f, 4.0 * 4 * 16 * (100.0 * 101.0 / 2.0), 1e-6);
	rva_attention_destroy(att);
}

Test(batch, packed_varlen_equals_descriptors) {
	enum { H = 2, HD = 8, DIM = H * HD, NS = 3 };
	size_t cu_q[NS + 1] = {0, 5, 5, 12}, cu_k[NS + 1] = {0, 9, 10, 30};
	float *q = ref_alloc(12 * DIM), *k = ref_alloc(30 * DIM), *v = ref_alloc(30 * DIM);
	float *o1 = ref_alloc(12 * DIM), *o2 = ref_alloc(12 * DIM);
	ref_fill_uniform(q, 12 * DIM, -1, 1, 1);
	ref_fill_uniform(k, 30 * DIM, -1, 1, 2);
	ref_fill_uniform(v, 30 * DIM, -1, 1, 3);
	rva_packed_batch pb = {.count = NS, .cu_q = cu_q, .cu_k = cu_k, .q = q, .q_stride = DIM,
	                       .k = k, .k_stride = DIM, .v = v, .v_stride = DIM, .out = o1,
	                       .out_stride = DIM};
	rva_seq seqs[NS];
	cr_assert_eq(rva_batch_unpack(&pb, seqs, NS), RVA_OK);
	cr_assert_eq(seqs[2].nq, 7);
	cr_assert_eq(seqs[2].nk, 20);
	cr_assert_eq(seqs[2].k, k + 10 * DIM);
	rva_config c = rva_multi_head(DIM, H);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_batch b = {NS, seqs};
	cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
	for (int s = 0; s < NS; s++) {
		rva_seq one = {.nq = cu_q[s + 1] - cu_q[s], .nk = cu_k[s + 1] - cu_k[s],
		               .q = q + cu_q[s] * DIM, .k = k + cu_k[s] * DIM, .v = v + cu_k[s] * DIM,
		               .out = o2 + cu_q[s] * DIM};
		rva_batch b1 = {1, &one};
		cr_assert_eq(rva_compute_batch(att, &b1, NULL, NULL), RVA_OK);
	}
	cr_assert_eq(memcmp(o1, o2, 12 * DIM * sizeof(float)), 0);
	cr_assert_eq(rva_batch_unpack(&pb, seqs, 2), RVA_ERANGE);
	cu_k[2] = 8;
	cr_assert_eq(rva_batch_unpack(&pb, seqs, NS), RVA_EINVAL);
	cu_k[2] = 10;
	pb.v_stride = 0;
	cr_assert_eq(rva_batch_unpack(&pb, seqs, NS), RVA_EINVAL);
	cr_assert_eq(rva_batch_unpack(NULL, seqs, NS), RVA_ENULL);
	rva_attention_destroy(att);
	free(q); free(k); free(v); free(o1); free(o2);
}

/*
 * Mixture-of-experts attention against the oracles: routing (tests/ref/ref_moe.c),
 * capacity and GShard priority, and the expert oracles (ref_hyperbolic, ref_softmax for
 * multi-head experts, ref_linear for linear experts).
 *
 * Tolerance on outputs: |got - want| <= ATOL + RTOL |want| with ATOL = 5e-5,
 * RTOL = 5e-4 (fp32 experts; routing decisions themselves must match exactly, and the
 * tests check that no routing decision is within 1e-6 of a tie in probability).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention/attention_internal.h"
#include "attention/router.h"
#include "ref/ref_hyperbolic.h"
#include "ref/ref_linear.h"
#include "ref/ref_moe.h"
#include "ref/ref_softmax.h"
#include "ref/fault_alloc.h"
#include "ref/ref_util.h"
#include "rvattn/alloc.h"
#include "rvattn/attention.h"
#include "rvattn/engine.h"
#include "rvattn/pipeline.h"

#define ATOL 5e-5
#define RTOL 5e-4
#define TIE_MARGIN 1e-6
#define MAXSEQ 4

/* ---- a batch of sequences and its expected MoE output ---------------------------------- */

typedef struct mbatch {
	size_t n;
	size_t dim, kvd;
	rva_seq seqs[MAXSEQ];
	float *q[MAXSEQ], *k[MAXSEQ], *v[MAXSEQ], *out[MAXSEQ];
	uint8_t *mask[MAXSEQ];
} mbatch;

/* Routing statistics equal, phase timings aside (those are wall-clock measurements). */
static bool same_counts(const rva_moe_stats *a, const rva_moe_stats *b) {
	rva_moe_stats x = *a, y = *b;
	x.router_ns = x.assign_ns = x.expert_ns = x.combine_ns = 0;
	y.router_ns = y.assign_ns = y.expert_ns = y.combine_ns = 0;
	return memcmp(&x, &y, sizeof x) == 0;
}

static void make_batch(mbatch *b, const rva_attention *att, size_t n, const size_t *nq,
                       const size_t *nk, bool masks, uint64_t seed) {
	rva_config c;
	rva_attention_config(att, &c);
	memset(b, 0, sizeof *b);
	b->n = n;
	b->dim = c.dim;
	b->kvd = c.kv_heads * (c.dim / c.heads);
	for (size_t s = 0; s < n; s++) {
		b->q[s] = ref_alloc(nq[s] * b->dim + 1);
		b->k[s] = ref_alloc(nk[s] * b->kvd + 1);
		b->v[s] = ref_alloc(nk[s] * b->kvd + 1);
		b->out[s] = ref_alloc(nq[s] * b->dim + 1);
		ref_fill_uniform(b->q[s], nq[s] * b->dim, -0.4f, 0.4f, seed + 10 * s + 1);
		ref_fill_uniform(b->k[s], nk[s] * b->kvd, -0.4f, 0.4f, seed + 10 * s + 2);
		ref_fill_uniform(b->v[s], nk[s] * b->kvd, -0.4f, 0.4f, seed + 10 * s + 3);
		if (masks && nk[s] > 1) {
			b->mask[s] = calloc(nk[s], 1);
			for (size_t j = 0; j < nk[s]; j++)
				b->mask[s][j] = (j * 7 + s) % 3 != 0 || j == nk[s] - 1;
		}
		b->seqs[s] = (rva_seq){.nq = nq[s], .nk = nk[s], .q = b->q[s], .q_stride = b->dim,
		                       .k = b->k[s], .k_stride = b->kvd, .v = b->v[s],
		                       .v_stride = b->kvd, .out = b->out[s], .out_stride = b->dim,
		                       .key_mask = b->mask[s]};
	}
}

static void free_batch(mbatch *b) {
	for (size_t s = 0; s < b->n; s++) {
		free(b->q[s]);
		free(b->k[s]);
		free(b->v[s]);
		free(b->out[s]);
		free(b->mask[s]);
	}
}

/* The oracle of one expert over a whole sequence: nq x dim doubles. */
static void expert_oracle(const rva_attention *ex, const rva_seq *s, double *out) {
	rva_config c;
	cr_assert_eq(rva_attention_config(ex, &c), RVA_OK);
	size_t hd = c.dim / c.heads;
	switch (c.mechanism) {
	case RVA_MECH_HYPERBOLIC: {
		ref_hyp_params p = {.c = -(double)c.curvature, .temperature = c.temperature,
		                    .frechet = c.aggregation == RVA_AGG_FRECHET, .causal = c.causal};
		ref_hyperbolic_attention(&p, c.heads, c.kv_heads, hd, s->nq, s->nk, s->q,
		                         s->q_stride, s->k, s->k_stride, s->v, s->v_stride,
		                         s->key_mask, out);
		break;
	}
	case RVA_MECH_MULTI_HEAD: {
		ref_attn_spec sp = {.heads = c.heads, .kv_heads = c.kv_heads, .head_dim = hd,
		                    .scale = c.scale, .causal = c.causal, .pattern = REF_DENSE};
		ref_attention(&sp, s->nq, s->nk, s->q, s->q_stride, s->k, s->k_stride, s->v,
		              s->v_stride, s->key_mask, out);
		break;
	}
	case RVA_MECH_LINEAR: {
		const float *w = NULL;
		size_t m = hd, cols;
		if (c.feature_map != RVA_FEATURES_ELU)
			cr_assert_eq(rva_attention_features(ex, &w, &m, &cols), RVA_OK);
		ref_linear_args a = {.nq = s->nq, .nk = s->nk, .heads = c.heads,
		                     .kv_heads = c.kv_heads, .head_dim = hd, .q = s->q,
		                     .q_stride = s->q_stride, .k = s->k, .k_stride = s->k_stride,
		                     .v = s->v, .v_stride = s->v_stride, .mask = s->key_mask,
		                     .causal = c.causal, .scale = c.scale,
		                     .map = (ref_linear_map)c.feature_map, .w = w, .m = m};
		cr_assert_eq(ref_linear(&a, out), 0);
		break;
	}
	default:
		cr_assert_fail("unexpected expert mechanism %d", (int)c.mechanism);
	}
}

/* The whole expert e of an MoE attention over a sequence, in double precision:
 * A_e(Q W_q[e], K W_k, V W_v) W_o[e] (the projected inputs rounded to fp32 for the
 * attention oracles, as the fp32 path holds them): nq x dim doubles. */
static void expert_full_oracle(const rva_attention *att, size_t e, const rva_seq *s,
                               double *out) {
	rva_config c;
	rva_attention_config(att, &c);
	size_t dim = c.dim, kvd = c.kv_heads * (c.dim / c.heads), nq = s->nq, nk = s->nk;
	const float *wq, *wo, *wk, *wv;
	cr_assert_eq(rva_attention_moe_weights(att, e, &wq, &wo, &wk, &wv), RVA_OK);
	double *tq = calloc(nq * dim + 1, sizeof(double));
	double *tk = calloc(nk * kvd + 1, sizeof(double)), *tv = calloc(nk * kvd + 1, sizeof(double));
	float *fq = ref_alloc(nq * dim + 1), *fk = ref_alloc(nk * kvd + 1), *fv = ref_alloc(nk * kvd + 1);
	ref_moe_project(s->q, s->q_stride, nq, wq, dim, dim, dim, tq);
	ref_moe_project(s->k, s->k_stride, nk, wk, kvd, kvd, kvd, tk);
	ref_moe_project(s->v, s->v_stride, nk, wv, kvd, kvd, kvd, tv);
	for (size_t i = 0; i < nq * dim; i++)
		fq[i] = (float)tq[i];
	for (size_t i = 0; i < nk * kvd; i++) {
		fk[i] = (float)tk[i];
		fv[i] = (float)tv[i];
	}
	rva_seq ps = {.nq = nq, .nk = nk, .q = fq, .q_stride = dim, .k = fk, .k_stride = kvd,
	              .v = fv, .v_stride = kvd, .key_mask = s->key_mask};
	const rva_attention *ex;
	cr_assert_eq(rva_attention_expert(att, e, &ex), RVA_OK);
	expert_oracle(ex, &ps, tq);
	ref_moe_project_d(tq, nq, wo, dim, dim, dim, out);
	free(tq);
	free(tk);
	free(tv);
	free(fq);
	free(fk);
	free(fv);
}

typedef struct moe_expect {
	size_t tokens, capacity, dropped;
	size_t assigned[RVA_MOE_MAX_EXPERTS], processed[RVA_MOE_MAX_EXPERTS];
	double loss;
	double *out[MAXSEQ];     /* nq x dim per sequence */
	uint32_t *choice;        /* tokens x k */
	double *weight;
	uint8_t *kept;
	double *probs;           /* tokens x E */
} moe_expect;

/* The whole MoE of the oracles over the valid (valid[s], or all) sequences, with the
 * attention's gate rule and capacity scope. */
static void expect_moe(const rva_attention *att, const mbatch *b, const bool *valid,
                       moe_expect *x) {
	rva_config c;
	rva_attention_config(att, &c);
	const float *w;
	size_t E, dim;
	cr_assert_eq(rva_attention_router(att, &w, &E, &dim), RVA_OK);
	size_t k = c.top_k, T = 0;
	int normalize = c.normalize_gates == RVA_GATES_NORMALIZED ||
	                (c.normalize_gates == RVA_GATES_AUTO && k > 1);
	for (size_t s = 0; s < b->n; s++)
		if (!valid || valid[s])
			T += b->seqs[s].nq;
	memset(x, 0, sizeof *x);
	x->tokens = T;
	x->choice = calloc(T * k + 1, sizeof *x->choice);
	x->weight = calloc(T * k + 1, sizeof *x->weight);
	x->kept = calloc(T * k + 1, 1);
	x->probs = calloc(T * E + 1, sizeof *x->probs);
	size_t t = 0;
	for (size_t s = 0; s < b->n; s++) {
		if (valid && !valid[s])
			continue;
		for (size_t i = 0; i < b->seqs[s].nq; i++, t++) {
			ref_moe_route(w, E, dim, (const float *)b->seqs[s].q + i * b->seqs[s].q_stride, k, normalize,
			              x->probs + t * E, x->choice + t * k, x->weight + t * k);
			double m = ref_moe_margin(x->probs + t * E, E, k);
			cr_assert(m > TIE_MARGIN, "token %zu is within %g of a routing tie", t, m);
		}
	}
	if (c.capacity_scope == RVA_CAPACITY_PER_BATCH) {
		x->capacity = ref_moe_capacity(c.expert_capacity, T, k, E);
		ref_moe_assign(x->choice, T, k, E, x->capacity, x->kept, x->assigned, x->processed,
		               &x->dropped);
	} else { /* per sequence: each sequence alone */
		t = 0;
		for (size_t s = 0; s < b->n; s++) {
			if (valid && !valid[s])
				continue;
			size_t nq = b->seqs[s].nq, as[RVA_MOE_MAX_EXPERTS], pr[RVA_MOE_MAX_EXPERTS], dr;
			size_t cap = ref_moe_capacity(c.expert_capacity, nq, k, E);
			ref_moe_assign(x->choice + t * k, nq, k, E, cap, x->kept + t * k, as, pr, &dr);
			x->capacity += cap;
			x->dropped += dr;
			for (size_t e = 0; e < E; e++) {
				x->assigned[e] += as[e];
				x->processed[e] += pr[e];
			}
			t += nq;
		}
	}
	x->loss = ref_moe_loss(x->probs, x->assigned, T, E);
	/* outputs: the gates times the expert oracles, kept pairs only */
	t = 0;
	for (size_t s = 0; s < b->n; s++) {
		if (valid && !valid[s])
			continue;
		const rva_seq *sq = &b->seqs[s];
		x->out[s] = calloc(sq->nq * dim + 1, sizeof(double));
		double *eo = calloc(sq->nq * dim + 1, sizeof(double));
		for (size_t e = 0; e < E; e++) {
			bool used = false;
			for (size_t i = 0; i < sq->nq * k; i++)
				used |= x->choice[t * k + i] == e && x->kept[t * k + i];
			if (!used)
				continue;
			expert_full_oracle(att, e, sq, eo);
			for (size_t i = 0; i < sq->nq; i++)
				for (size_t r = 0; r < k; r++) {
					size_t slot = (t + i) * k + r;
					if (x->choice[slot] != e || !x->kept[slot])
						continue;
					for (size_t d = 0; d < dim; d++)
						x->out[s][i * dim + d] += x->weight[slot] * eo[i * dim + d];
				}
		}
		free(eo);
		t += sq->nq;
	}
}

static void free_expect(moe_expect *x) {
	for (size_t s = 0; s < MAXSEQ; s++)
		free(x->out[s]);
	free(x->choice);
	free(x->weight);
	free(x->kept);
	free(x->probs);
}

static void check_stats(const rva_moe_stats *st, const moe_expect *x, size_t E) {
	cr_assert_eq(st->experts, E);
	cr_assert_eq(st->tokens, x->tokens);
	cr_assert_eq(st->capacity, x->capacity, "capacity %zu vs %zu", st->capacity, x->capacity);
	cr_assert_eq(st->dropped, x->dropped, "dropped %zu vs %zu", st->dropped, x->dropped);
	for (size_t e = 0; e < E; e++) {
		cr_assert_eq(st->assigned[e], x->assigned[e], "assigned[%zu]", e);
		cr_assert_eq(st->processed[e], x->processed[e], "processed[%zu]", e);
	}
	cr_assert(fabs(st->load_balancing_loss - x->loss) <= 1e-5 * fmax(1.0, x->loss),
	          "loss %g vs %g", st->load_balancing_loss, x->loss);
}

static void check_outputs(const mbatch *b, const bool *valid, const moe_expect *x) {
	for (size_t s = 0; s < b->n; s++) {
		if (valid && !valid[s])
			continue;
		double r = ref_err_ratio(b->out[s], x->out[s], b->seqs[s].nq * b->dim, ATOL, RTOL);
		cr_assert(r <= 1.0, "sequence %zu: error ratio %g", s, r);
	}
}

/* Builds, runs a batch, checks outputs and stats against the oracles. */
static void run_and_check(rva_config *cfg, size_t n, const size_t *nq, const size_t *nk,
                          bool masks, uint64_t seed) {
	rva_attention *att;
	cr_assert_eq(rva_build(cfg, &att), RVA_OK, "build: %s", rva_last_error());
	mbatch b;
	make_batch(&b, att, n, nq, nk, masks, seed);
	rva_moe_stats st;
	memset(&st, 0xAB, sizeof st);
	rva_runtime rt = {.moe_stats = &st};
	rva_batch bb = {.count = n, .seqs = b.seqs};
	cr_assert_eq(rva_compute_batch(att, &bb, &rt, NULL), RVA_OK, "%s", rva_last_error());
	moe_expect x;
	expect_moe(att, &b, NULL, &x);
	check_stats(&st, &x, cfg->experts);
	check_outputs(&b, NULL, &x);
	free_expect(&x);
	free_batch(&b);
	rva_attention_destroy(att);
}

/* ---- routing ------------------------------------------------------------------------- */

Test(moe, routing_matches_oracle) {
	size_t dim = 24, E = 8, k = 3, n = 50;
	rva_config cfg = rva_moe(dim, E, k);
	cfg.expert_kind = RVA_EXPERTS_HYPERBOLIC;
	rva_attention *att;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	const float *w;
	size_t e_out, d_out;
	cr_assert_eq(rva_attention_router(att, &w, &e_out, &d_out), RVA_OK);
	cr_assert(e_out == E && d_out == dim);
	float *q = ref_alloc(n * dim);
	ref_fill_uniform(q, n * dim, -2.0f, 2.0f, 99);
	float *probs = ref_alloc(n * E), *weight = ref_alloc(n * k);
	uint32_t *choice = calloc(n * k, sizeof *choice);
	for (int norm = 0; norm < 2; norm++) {
	rva__router r = {.w = w, .experts = E, .dim = dim, .top_k = k, .jitter = 0.0f,
	                 .normalize = norm};
	rva__router_rows(&r, NULL, 0, 0, q, dim, 0, n, probs, choice, weight, NULL);
	size_t checked = 0;
	for (size_t i = 0; i < n; i++) {
		double p[8], wt[3];
		uint32_t ch[3];
		ref_moe_route(w, E, dim, q + i * dim, k, norm, p, ch, wt);
		for (size_t e = 0; e < E; e++)
			cr_assert(fabs(probs[i * E + e] - p[e]) < 1e-6, "p[%zu][%zu] %g vs %g", i, e,
			          probs[i * E + e], p[e]);
		if (ref_moe_margin(p, E, k) < TIE_MARGIN)
			continue;
		checked++;
		double wsum = 0.0;
		for (size_t t = 0; t < k; t++) {
			cr_assert_eq(choice[i * k + t], ch[t], "row %zu rank %zu", i, t);
			cr_assert(fabs(weight[i * k + t] - wt[t]) < 1e-6);
			wsum += weight[i * k + t];
			if (t > 0)
				cr_assert(weight[i * k + t] <= weight[i * k + t - 1]);
		}
		/* GShard gates sum to 1; Switch gates are the probabilities (sum below 1) */
		if (norm)
			cr_assert(fabs(wsum - 1.0) < 1e-6);
		else
			cr_assert(wsum < 1.0 - 1e-3 && fabs(weight[i * k] - p[ch[0]]) < 1e-6);
	}
	cr_assert(checked >= n - 2, "too many near-ties (%zu of %zu checked)", checked, n);
	}
	free(q);
	free(probs);
	free(weight);
	free(choice);
	rva_attention_destroy(att);
}

/* Default router init: N(0, 1/dim) from cfg.seed, reproducible, seed-dependent. */
Test(moe, router_init_is_seeded_normal) {
	size_t dim = 64, E = 16;
	rva_config cfg = rva_moe(dim, E, 2);
	cfg.expert_kind = RVA_EXPERTS_HYPERBOLIC;
	rva_attention *a, *b, *c;
	cr_assert_eq(rva_build(&cfg, &a), RVA_OK);
	cr_assert_eq(rva_build(&cfg, &b), RVA_OK);
	cfg.seed = 42;
	cr_assert_eq(rva_build(&cfg, &c), RVA_OK);
	const float *wa, *wb, *wc;
	size_t e, d;
	rva_attention_router(a, &wa, &e, &d);
	rva_attention_router(b, &wb, &e, &d);
	rva_attention_router(c, &wc, &e, &d);
	cr_assert(memcmp(wa, wb, E * dim * sizeof(float)) == 0, "same seed, same weights");
	cr_assert(memcmp(wa, wc, E * dim * sizeof(float)) != 0, "another seed, other weights");
	double s = 0.0, s2 = 0.0;
	for (size_t i = 0; i < E * dim; i++) {
		s += wa[i];
		s2 += (double)wa[i] * wa[i];
	}
	double mean = s / (double)(E * dim), var = s2 / (double)(E * dim) - mean * mean;
	cr_assert(fabs(mean) < 0.02 && fabs(var * dim - 1.0) < 0.15, "mean %g, var*dim %g", mean,
	          var * dim);
	/* the config reports the attention's own copy */
	rva_config got;
	rva_attention_config(a, &got);
	cr_assert_eq(got.router_weights, wa);
	rva_attention_destroy(a);
	rva_attention_destroy(b);
	rva_attention_destroy(c);
}

/* Caller-supplied gate weights are copied and used; all-zero weights route every token to
 * experts 0..k-1 (ties to the lower index) with gates 1/k, and the loss is k. */
Test(moe, caller_router_weights_are_honoured) {
	size_t dim = 6, E = 5, k = 2;
	float *w = calloc(E * dim, sizeof(float));
	rva_config cfg = rva_moe(dim, E, k);
	cfg.expert_kind = RVA_EXPERTS_HYPERBOLIC;
	cfg.router_weights = w;
	cfg.expert_capacity = 10.0f;
	rva_attention *att;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	w[0] = 123.0f; /* the attention holds a copy */
	const float *aw;
	size_t e, d;
	cr_assert_eq(rva_attention_router(att, &aw, &e, &d), RVA_OK);
	cr_assert(aw != w && aw[0] == 0.0f);
	mbatch b;
	size_t nq[2] = {7, 5}, nk[2] = {9, 4};
	make_batch(&b, att, 2, nq, nk, false, 5);
	rva_moe_stats st;
	rva_runtime rt = {.moe_stats = &st};
	rva_batch bb = {.count = 2, .seqs = b.seqs};
	cr_assert_eq(rva_compute_batch(att, &bb, &rt, NULL), RVA_OK);
	cr_assert_eq(st.tokens, 12);
	cr_assert_eq(st.assigned[0], 12);
	cr_assert_eq(st.assigned[1], 12);
	cr_assert_eq(st.assigned[2] + st.assigned[3] + st.assigned[4], 0);
	cr_assert(fabs(st.load_balancing_loss - (double)k) < 1e-6, "loss %g",
	          st.load_balancing_loss);
	/* every token goes to experts 0 and 1 with GShard gates 1/2 each (k = 2) */
	for (size_t s = 0; s < 2; s++) {
		double *want = calloc(nq[s] * dim, sizeof(double));
		double *e1 = calloc(nq[s] * dim, sizeof(double));
		expert_full_oracle(att, 0, &b.seqs[s], want);
		expert_full_oracle(att, 1, &b.seqs[s], e1);
		for (size_t i = 0; i < nq[s] * dim; i++)
			want[i] = 0.5 * want[i] + 0.5 * e1[i];
		cr_assert(ref_err_ratio(b.out[s], want, nq[s] * dim, ATOL, RTOL) <= 1.0);
		free(want);
		free(e1);
	}
	/* explicit weights steer the routing: row e of W picks out feature e */
	free_batch(&b);
	rva_attention_destroy(att);
	memset(w, 0, E * dim * sizeof(float));
	for (size_t i = 0; i < E; i++)
		w[i * dim + i] = 50.0f;
	cfg.top_k = 1;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	float q[3 * 6] = {0};
	q[0 * dim + 3] = 1.0f;  /* -> expert 3 */
	q[1 * dim + 1] = 1.0f;  /* -> expert 1 */
	q[2 * dim + 4] = 1.0f;  /* -> expert 4 */
	float kv[6] = {0.1f, 0.2f, 0.0f, 0.0f, -0.1f, 0.3f}, out[18];
	rva_seq s = {.nq = 3, .nk = 1, .q = q, .k = kv, .v = kv, .out = out};
	rva_batch b1 = {.count = 1, .seqs = &s};
	cr_assert_eq(rva_compute_batch(att, &b1, &rt, NULL), RVA_OK);
	cr_assert(st.assigned[3] == 1 && st.assigned[1] == 1 && st.assigned[4] == 1 &&
	          st.assigned[0] == 0 && st.assigned[2] == 0);
	rva_attention_destroy(att);
	free(w);
}

/* ---- capacity ---------------------------------------------------------------------- */

Test(moe, capacity_zero_drops_every_token) {
	size_t dim = 16, E = 4, k = 2;
	rva_config cfg = rva_moe(dim, E, k);
	cfg.expert_kind = RVA_EXPERTS_HYPERBOLIC;
	cfg.expert_capacity = 0.0f;
	rva_attention *att;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	mbatch b;
	size_t nq[3] = {5, 1, 70}, nk[3] = {5, 3, 80};
	make_batch(&b, att, 3, nq, nk, true, 11);
	for (size_t s = 0; s < 3; s++)
		for (size_t i = 0; i < nq[s] * dim; i++)
			b.out[s][i] = 7.0f;
	rva_moe_stats st;
	rva_runtime rt = {.moe_stats = &st};
	rva_batch bb = {.count = 3, .seqs = b.seqs};
	cr_assert_eq(rva_compute_batch(att, &bb, &rt, NULL), RVA_OK);
	for (size_t s = 0; s < 3; s++)
		for (size_t i = 0; i < nq[s] * dim; i++)
			cr_assert_eq(b.out[s][i], 0.0f, "sequence %zu element %zu", s, i);
	cr_assert_eq(st.tokens, 76);
	cr_assert_eq(st.capacity, 0);
	cr_assert_eq(st.dropped, 76 * k);
	size_t assigned = 0;
	for (size_t e = 0; e < E; e++) {
		cr_assert_eq(st.processed[e], 0);
		assigned += st.assigned[e];
	}
	cr_assert_eq(assigned, 76 * k);
	free_batch(&b);
	rva_attention_destroy(att);
}

Test(moe, large_capacity_hyperbolic_experts_match_oracle) {
	size_t nq[3] = {9, 1, 70}, nk[3] = {9, 5, 130};
	for (int causal = 0; causal < 2; causal++) {
		rva_config cfg = rva_moe(16, 4, 2);
		cfg.heads = 2;
		cfg.expert_kind = RVA_EXPERTS_HYPERBOLIC;
		cfg.expert_capacity = 4.0f; /* C = 2 * tokens: nothing dropped */
		cfg.causal = causal;
		cfg.query_block = 16;
		run_and_check(&cfg, 3, nq, nk, causal, 21 + causal);
	}
}

/* Capacity below demand: which pairs survive follows the GShard priority. */
Test(moe, capacity_limited_matches_oracle) {
	size_t nq[3] = {20, 3, 41}, nk[3] = {20, 8, 60};
	static const float factors[] = {0.5f, 0.75f, 1.25f};
	for (int f = 0; f < 3; f++) {
		rva_config cfg = rva_moe(12, 6, 2);
		cfg.heads = 3;
		cfg.kv_heads = 1;
		cfg.expert_kind = RVA_EXPERTS_HYPERBOLIC;
		cfg.expert_capacity = factors[f];
		cfg.query_block = 8;
		run_and_check(&cfg, 3, nq, nk, f == 1, 31 + f);
	}
}

/* Two tokens routed (e0, e1) and (e1, e0), capacity 1: rank-major priority keeps both
 * first choices and drops both second choices (token-major would keep token 0 twice). */
Test(moe, priority_is_rank_major) {
	size_t dim = 2, E = 3, k = 2;
	float w[6] = {2.0f, 1.0f, 1.0f, 2.0f, -5.0f, -5.0f};
	rva_config cfg = rva_moe(dim, E, k);
	cfg.expert_kind = RVA_EXPERTS_HYPERBOLIC;
	cfg.router_weights = w;
	cfg.expert_capacity = 0.75f; /* ceil(0.75 * 2 * 2 / 3) = 1 */
	rva_attention *att;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	float q[4] = {0.6f, 0.0f, 0.0f, 0.6f}, kv[6] = {0.1f, -0.2f, 0.3f, 0.1f, -0.4f, 0.2f};
	float out[4];
	rva_seq s = {.nq = 2, .nk = 3, .q = q, .q_stride = 2, .k = kv, .k_stride = 2, .v = kv,
	             .v_stride = 2, .out = out, .out_stride = 2};
	rva_batch b = {.count = 1, .seqs = &s};
	rva_moe_stats st;
	rva_runtime rt = {.moe_stats = &st};
	cr_assert_eq(rva_compute_batch(att, &b, &rt, NULL), RVA_OK);
	cr_assert_eq(st.capacity, 1);
	cr_assert_eq(st.processed[0], 1);
	cr_assert_eq(st.processed[1], 1);
	cr_assert_eq(st.dropped, 2);
	double p[3], wt[2], h[2][4];
	uint32_t ch[2];
	expert_full_oracle(att, 0, &s, h[0]);
	expert_full_oracle(att, 1, &s, h[1]);
	for (size_t t = 0; t < 2; t++) {
		ref_moe_route(w, E, dim, q + t * dim, k, 1, p, ch, wt);
		cr_assert_eq(ch[0], t == 0 ? 0u : 1u);
		for (size_t d = 0; d < dim; d++) {
			double want = wt[0] * h[t][t * dim + d]; /* the first choice only */
			cr_assert(fabs(out[t * dim + d] - want) <= ATOL + RTOL * fabs(want),
			          "token %zu: %g vs %g", t, out[t * dim + d], want);
		}
	}
	rva_attention_destroy(att);
}

/* ---- experts of every kind ---------------------------------------------------------------- */

Test(moe, standard_experts_match_oracle) {
	size_t nq[2] = {17, 33}, nk[2] = {17, 50};
	rva_config cfg = rva_moe(16, 4, 2);
	cfg.heads = 4;
	cfg.kv_heads = 2;
	cfg.expert_kind = RVA_EXPERTS_STANDARD;
	cfg.expert_capacity = 0.75f;
	cfg.causal = true;
	run_and_check(&cfg, 2, nq, nk, true, 41);
}

Test(moe, linear_experts_match_oracle) {
	size_t nq[2] = {12, 25}, nk[2] = {12, 40};
	rva_config cfg = rva_moe(16, 4, 1);
	cfg.heads = 2;
	cfg.expert_kind = RVA_EXPERTS_LINEAR;
	cfg.features = 32;
	cfg.expert_capacity = 1.0f;
	run_and_check(&cfg, 2, nq, nk, false, 51);
	/* experts get their own seeds: different random features */
	rva_attention *att;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	const rva_attention *e0, *e1;
	rva_attention_expert(att, 0, &e0);
	rva_attention_expert(att, 1, &e1);
	const float *w0, *w1;
	size_t r, c;
	rva_attention_features(e0, &w0, &r, &c);
	rva_attention_features(e1, &w1, &r, &c);
	cr_assert(memcmp(w0, w1, r * c * sizeof(float)) != 0);
	rva_attention_destroy(att);
}

/* The default mix: multi-head, hyperbolic, linear for e % 3 = 0, 1, 2. */
Test(moe, mixed_experts_match_oracle) {
	size_t nq[3] = {30, 2, 45}, nk[3] = {30, 6, 64};
	rva_config cfg = rva_moe(16, 6, 2);
	cfg.heads = 2;
	cfg.features = 32;
	cfg.expert_capacity = 0.75f; /* exact in binary, as the oracle's capacity needs */
	rva_attention *att;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	static const rva_mechanism kinds[3] = {RVA_MECH_MULTI_HEAD, RVA_MECH_HYPERBOLIC,
	                                       RVA_MECH_LINEAR};
	for (size_t e = 0; e < 6; e++) {
		const rva_attention *ex;
		rva_config c;
		cr_assert_eq(rva_attention_expert(att, e, &ex), RVA_OK);
		rva_attention_config(ex, &c);
		cr_assert_eq(c.mechanism, kinds[e % 3], "expert %zu", e);
	}
	rva_attention_destroy(att);
	run_and_check(&cfg, 3, nq, nk, true, 61);
	cfg.causal = true;
	run_and_check(&cfg, 3, nq, nk, false, 62);
}

/* ---- jitter, single query, failures, bad input --------------------------------------- */

Test(moe, jitter_only_in_training) {
	size_t dim = 16, E = 4, n = 24;
	rva_config cfg = rva_moe(dim, E, 2);
	cfg.expert_kind = RVA_EXPERTS_HYPERBOLIC;
	cfg.jitter_noise = 0.2f;
	rva_attention *att, *plain;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	cfg.jitter_noise = 0.0f;
	cr_assert_eq(rva_build(&cfg, &plain), RVA_OK);
	float *q = ref_alloc(n * dim), *kv = ref_alloc(8 * dim);
	ref_fill_uniform(q, n * dim, -1.0f, 1.0f, 3);
	ref_fill_uniform(kv, 8 * dim, -0.3f, 0.3f, 4);
	rva_moe_stats st[5];
	float *out[5];
	rva_runtime rts[5] = {
		{.moe_stats = &st[0]},                                    /* plain, inference */
		{.moe_stats = &st[1]},                                    /* jitter, inference */
		{.training = true, .seed = 1, .step = 5, .moe_stats = &st[2]},
		{.training = true, .seed = 1, .step = 5, .moe_stats = &st[3]},
		{.training = true, .seed = 1, .step = 6, .moe_stats = &st[4]},
	};
	for (int r = 0; r < 5; r++) {
		out[r] = ref_alloc(n * dim);
		rva_seq s = {.nq = n, .nk = 8, .q = q, .k = kv, .v = kv, .out = out[r]};
		rva_batch b = {.count = 1, .seqs = &s};
		cr_assert_eq(rva_compute_batch(r == 0 ? plain : att, &b, &rts[r], NULL), RVA_OK);
	}
	cr_assert(memcmp(out[0], out[1], n * dim * sizeof(float)) == 0);
	cr_assert_eq(st[0].load_balancing_loss, st[1].load_balancing_loss);
	cr_assert_neq(st[1].load_balancing_loss, st[2].load_balancing_loss,
	              "jitter in training must change the router probabilities");
	cr_assert_eq(st[2].load_balancing_loss, st[3].load_balancing_loss);
	cr_assert(memcmp(out[2], out[3], n * dim * sizeof(float)) == 0, "reproducible");
	cr_assert_neq(st[2].load_balancing_loss, st[4].load_balancing_loss);
	/* the jittered router input stays within U(1 - eps, 1 + eps) of the row: the router
	 * probabilities of a row move, but only as far as the logits can */
	const float *w;
	size_t e, d;
	rva_attention_router(att, &w, &e, &d);
	rva__router r = {.w = w, .experts = E, .dim = dim, .top_k = 2, .jitter = 0.2f};
	void *scratch = aligned_alloc(64, rva__router_scratch(&r, n, true) + 64);
	float *pj = ref_alloc(n * E), *wt = ref_alloc(n * 2);
	uint32_t *ch = calloc(n * 2, sizeof *ch);
	rva__router_rows(&r, &rts[2], 0, 0, q, dim, 0, n, pj, ch, wt, scratch);
	for (size_t i = 0; i < n; i++) {
		double lo[4], hi[4]; /* bounds of each logit over the jitter box */
		for (size_t x = 0; x < E; x++) {
			lo[x] = hi[x] = 0.0;
			for (size_t t = 0; t < dim; t++) {
				double a = (double)w[x * dim + t] * q[i * dim + t];
				lo[x] += a * (a < 0 ? 1.2 : 0.8);
				hi[x] += a * (a < 0 ? 0.8 : 1.2);
			}
		}
		for (size_t x = 0; x < E; x++) {
			/* p_x <= exp(hi_x) / (exp(hi_x) + sum_other exp(lo)) and symmetrically */
			double so_lo = 0.0, so_hi = 0.0;
			for (size_t y = 0; y < E; y++)
				if (y != x) {
					so_lo += exp(lo[y]);
					so_hi += exp(hi[y]);
				}
			double pmax = exp(hi[x]) / (exp(hi[x]) + so_lo);
			double pmin = exp(lo[x]) / (exp(lo[x]) + so_hi);
			cr_assert(pj[i * E + x] <= pmax + 1e-6 && pj[i * E + x] >= pmin - 1e-6);
		}
	}
	free(scratch);
	free(pj);
	free(wt);
	free(ch);
	for (int i = 0; i < 5; i++)
		free(out[i]);
	free(q);
	free(kv);
	rva_attention_destroy(att);
	rva_attention_destroy(plain);
}

Test(moe, single_query_is_batch_of_one) {
	size_t dim = 12, nk = 20;
	rva_config cfg = rva_moe(dim, 3, 2);
	cfg.heads = 3;
	cfg.features = 16;
	rva_attention *att;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	float *q = ref_alloc(dim), *k = ref_alloc(nk * dim), *v = ref_alloc(nk * dim);
	ref_fill_uniform(q, dim, -0.5f, 0.5f, 1);
	ref_fill_uniform(k, nk * dim, -0.5f, 0.5f, 2);
	ref_fill_uniform(v, nk * dim, -0.5f, 0.5f, 3);
	const float *kp[20], *vp[20];
	for (size_t j = 0; j < nk; j++) {
		kp[j] = k + j * dim;
		vp[j] = v + j * dim;
	}
	float one[12], batch[12];
	rva_moe_stats s1, s2;
	rva_runtime r1 = {.moe_stats = &s1}, r2 = {.moe_stats = &s2};
	cr_assert_eq(rva_compute_ex(att, q, kp, vp, NULL, nk, one, &r1), RVA_OK, "%s",
	             rva_last_error());
	rva_seq s = {.nq = 1, .nk = nk, .q = q, .q_stride = dim, .k = k, .k_stride = dim, .v = v,
	             .v_stride = dim, .out = batch, .out_stride = dim};
	rva_batch b = {.count = 1, .seqs = &s};
	cr_assert_eq(rva_compute_batch(att, &b, &r2, NULL), RVA_OK);
	cr_assert(memcmp(one, batch, sizeof one) == 0);
	cr_assert_eq(s1.tokens, 1);
	cr_assert_eq(s1.capacity, 1); /* ceil(1.25 * 1 * 2 / 3) */
	cr_assert(same_counts(&s1, &s2));
	mbatch mb = {.n = 1, .dim = dim, .kvd = dim, .seqs = {s}, .out = {batch}};
	moe_expect x;
	expect_moe(att, &mb, NULL, &x);
	check_stats(&s1, &x, 3);
	check_outputs(&mb, NULL, &x);
	free_expect(&x);
	free(q);
	free(k);
	free(v);
	rva_attention_destroy(att);
}

/* A bad sequence fails alone and does not count as tokens; the others match the oracle
 * computed over the valid sequences only (capacity is batch-wide). */
Test(moe, bad_sequence_fails_alone) {
	rva_config cfg = rva_moe(8, 4, 2);
	cfg.expert_kind = RVA_EXPERTS_HYPERBOLIC;
	cfg.expert_capacity = 0.5f;
	rva_attention *att;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	mbatch b;
	size_t nq[3] = {10, 4, 13}, nk[3] = {10, 4, 13};
	make_batch(&b, att, 3, nq, nk, false, 71);
	b.seqs[1].nk = 0; /* no keys: RVA_EEMPTY */
	rva_moe_stats st;
	rva_runtime rt = {.moe_stats = &st};
	rva_status ss[3];
	rva_batch bb = {.count = 3, .seqs = b.seqs};
	cr_assert_eq(rva_compute_batch(att, &bb, &rt, ss), RVA_EEMPTY);
	cr_assert(ss[0] == RVA_OK && ss[1] == RVA_EEMPTY && ss[2] == RVA_OK);
	bool valid[3] = {true, false, true};
	moe_expect x;
	expect_moe(att, &b, valid, &x);
	cr_assert_eq(x.tokens, 23);
	check_stats(&st, &x, 4);
	check_outputs(&b, valid, &x);
	free_expect(&x);
	free_batch(&b);
	rva_attention_destroy(att);
}

Test(moe, capacity_formula) {
	cr_assert_eq(rva__moe_capacity(1.25f, 8, 2, 4), 5);
	cr_assert_eq(rva__moe_capacity(1.25f, 10, 2, 8), 4);   /* 3.125 -> 4 */
	cr_assert_eq(rva__moe_capacity(1.1f, 10, 1, 1), 11);   /* 1.1f is 1.10000002 */
	cr_assert_eq(rva__moe_capacity(0.0f, 1000, 2, 8), 0);
	cr_assert_eq(rva__moe_capacity(1.0f, 0, 2, 8), 0);
	cr_assert_eq(rva__moe_capacity(1e30f, 1000, 2, 1), SIZE_MAX);
}

Test(moe, bad_input_is_rejected) {
	rva_attention *att = NULL;
	rva_config c = rva_moe(8, 4, 5);
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_moe(8, 0, 9); /* experts 0 is the default 8 (config.h) */
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_moe(8, RVA_MOE_MAX_EXPERTS + 1, 1);
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_moe(8, 4, 2);
	c.expert_capacity = -0.5f;
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_moe(8, 4, 2);
	c.expert_capacity = NAN;
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_moe(8, 4, 2);
	c.jitter_noise = 1.0f;
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	c = rva_moe(8, 4, 2);
	c.expert_kind = (rva_expert_kind)9;
	cr_assert_eq(rva_build(&c, &att), RVA_EINVAL);
	c = rva_moe(8, 4, 2);
	c.curvature = 1.0f; /* the hyperbolic expert's options are validated too */
	cr_assert_eq(rva_build(&c, &att), RVA_ERANGE);
	cr_assert_null(att);

	/* accessors */
	c = rva_moe(8, 4, 2);
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	const rva_attention *ex;
	const float *w;
	size_t e, d;
	cr_assert_eq(rva_attention_expert(att, 4, &ex), RVA_ERANGE);
	cr_assert_eq(rva_attention_expert(att, 0, NULL), RVA_ENULL);
	cr_assert_eq(rva_attention_router(NULL, &w, &e, &d), RVA_ENULL);
	cr_assert_null(att->ops->rows, "MoE cannot serve as an expert");
	rva_attention_destroy(att);
	rva_config h = rva_hyperbolic(8, -1.0f);
	cr_assert_eq(rva_build(&h, &att), RVA_OK);
	cr_assert_eq(rva_attention_router(att, &w, &e, &d), RVA_EINVAL);
	cr_assert_eq(rva_attention_expert(att, 0, &ex), RVA_EINVAL);
	rva_attention_destroy(att);
}

Test(moe, flops_are_router_plus_k_experts) {
	rva_config c = rva_moe(8, 4, 2);
	c.expert_kind = RVA_EXPERTS_HYPERBOLIC;
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	rva_seq s = {.nq = 10, .nk = 20};
	rva_batch b = {.count = 1, .seqs = &s};
	double f;
	cr_assert_eq(rva_attention_flops(att, &b, &f), RVA_OK);
	/* router 2*10*8*4 + per row k (W_q, W_o) 2*4*8*8 + shared K/V projections
	 * 4*20*8*8 + k/E * E * (hyperbolic 4*10*20*8) */
	double want = 2.0 * 10 * 8 * 4 + 10.0 * 2 * 4 * 8 * 8 + 4.0 * 20 * 8 * 8 +
	              2.0 * 4.0 * 10 * 20 * 8;
	cr_assert(fabs(f - want) <= 1e-9 * want, "flops %g vs %g", f, want);
	/* per-expert K/V projections count once per expert */
	rva_attention_destroy(att);
	c.kv_projection = RVA_MOE_KV_PER_EXPERT;
	cr_assert_eq(rva_build(&c, &att), RVA_OK);
	cr_assert_eq(rva_attention_flops(att, &b, &f), RVA_OK);
	want += 3.0 * 4.0 * 20 * 8 * 8;
	cr_assert(fabs(f - want) <= 1e-9 * want, "flops %g vs %g", f, want);
	rva_attention_destroy(att);
}

/* The engine (1 or 2 workers) gives bit-identical outputs and the same statistics as the
 * serial path, and reports the MoE statistics in its job stats. */
Test(moe, engine_threads_bit_identical) {
	size_t nq[3] = {40, 3, 65}, nk[3] = {40, 7, 80};
	rva_config cfg = rva_moe(16, 6, 2);
	cfg.heads = 2;
	cfg.features = 32;
	cfg.expert_capacity = 0.8f;
	cfg.causal = true;
	cfg.query_block = 16;
	rva_attention *att;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	mbatch b[3];
	rva_moe_stats st[3];
	for (int r = 0; r < 3; r++)
		make_batch(&b[r], att, 3, nq, nk, true, 81);
	rva_runtime rt0 = {.training = true, .seed = 3, .moe_stats = &st[0]};
	rva_batch bb0 = {.count = 3, .seqs = b[0].seqs};
	cr_assert_eq(rva_compute_batch(att, &bb0, &rt0, NULL), RVA_OK);
	for (unsigned threads = 1; threads <= 2; threads++) {
		rva_engine_config ec = rva_engine_config_defaults();
		ec.threads = threads;
		rva_engine *eng;
		cr_assert_eq(rva_engine_create(&ec, &eng), RVA_OK, "%s", rva_last_error());
		rva_runtime rt = {.training = true, .seed = 3, .moe_stats = &st[threads]};
		rva_batch bb = {.count = 3, .seqs = b[threads].seqs};
		cr_assert_eq(rva_engine_run(eng, att, &bb, &rt, NULL, NULL), RVA_OK, "%s",
		             rva_last_error());
		cr_assert(same_counts(&st[threads], &st[0]));
		rva_engine_destroy(eng);
	}
	for (int r = 1; r < 3; r++) {
		cr_assert(same_counts(&st[r], &st[0]), "stats, run %d", r);
		for (size_t s = 0; s < 3; s++)
			cr_assert(memcmp(b[r].out[s], b[0].out[s], nq[s] * 16 * sizeof(float)) == 0,
			          "run %d sequence %zu", r, s);
	}
	cr_assert(st[0].dropped > 0);
	for (int r = 0; r < 3; r++)
		free_batch(&b[r]);
	rva_attention_destroy(att);
}

/* ---- allocation failures ---------------------------------------------------------------- */

/* Failing the k-th allocation of build + run gives RVA_ENOMEM (nothing leaks: ASan), and
 * the same attention works once memory is back. */
Test(moe, allocation_failures_are_clean) {
	cr_assert_eq(ref_fault_install(), RVA_OK);
	float q[2 * 8], kv[3 * 8], out[2 * 8];
	for (int i = 0; i < 16; i++)
		q[i] = 0.05f * (float)(i % 7) - 0.1f;
	for (int i = 0; i < 24; i++)
		kv[i] = 0.04f * (float)(i % 5) - 0.08f;
	rva_seq s = {.nq = 2, .nk = 3, .q = q, .k = kv, .v = kv, .out = out};
	rva_batch b = {.count = 1, .seqs = &s};
	bool completed = false;
	for (long fail_at = 0; fail_at < 400 && !completed; fail_at++) {
		ref_fault_arm(fail_at, false);
		rva_config cfg = rva_moe(8, 3, 2);
		cfg.features = 8;
		rva_attention *att = NULL;
		rva_status st = rva_build(&cfg, &att);
		if (st != RVA_OK) {
			cr_assert_eq(st, RVA_ENOMEM, "build, allocation %ld: %s", fail_at,
			             rva_status_name(st));
			cr_assert_null(att);
			continue;
		}
		rva_moe_stats ms;
		rva_runtime rt = {.moe_stats = &ms};
		st = rva_compute_batch(att, &b, &rt, NULL);
		if (st == RVA_OK) {
			completed = true;
		} else {
			cr_assert_eq(st, RVA_ENOMEM, "run, allocation %ld: %s (%s)", fail_at,
			             rva_status_name(st), rva_last_error());
			ref_fault_disarm(); /* memory is back: the attention still works */
			cr_assert_eq(rva_compute_batch(att, &b, &rt, NULL), RVA_OK);
		}
		rva_attention_destroy(att);
	}
	cr_assert(completed, "never completed within 400 allocations");
	ref_fault_uninstall();
}

/* MoE stages inside a pipeline: the stages run one after the other on the previous
 * stage's output (same numbers as two separate calls), and the statistics reported are
 * those of the last MoE stage (the finish hooks are chained in stage order). */
Test(moe, pipeline_of_two_moe_stages) {
	size_t dim = 8, nq[2] = {9, 20}, nk[2] = {9, 25};
	rva_config ca = rva_moe(dim, 4, 2), cb = rva_moe(dim, 3, 1);
	ca.expert_kind = RVA_EXPERTS_HYPERBOLIC;
	ca.expert_capacity = 0.75f;
	cb.features = 8;
	cb.seed = 99;
	rva_attention *a, *b, *a2, *b2;
	cr_assert_eq(rva_build(&ca, &a), RVA_OK);
	cr_assert_eq(rva_build(&cb, &b), RVA_OK);
	cr_assert_eq(rva_build(&ca, &a2), RVA_OK);
	cr_assert_eq(rva_build(&cb, &b2), RVA_OK);
	rva_pipeline *p;
	cr_assert_eq(rva_pipeline_create(&p), RVA_OK);
	cr_assert_eq(rva_pipeline_add_attention(p, a2), RVA_OK);
	cr_assert_eq(rva_pipeline_add_attention(p, b2), RVA_OK);
	mbatch m, mid, fin;
	make_batch(&m, a, 2, nq, nk, false, 91);
	make_batch(&mid, a, 2, nq, nk, false, 91);
	make_batch(&fin, a, 2, nq, nk, false, 91);
	rva_moe_stats sp, sa, sb;
	rva_runtime rp = {.moe_stats = &sp}, ra = {.moe_stats = &sa}, rb = {.moe_stats = &sb};
	rva_batch bp = {.count = 2, .seqs = m.seqs};
	cr_assert_eq(rva_pipeline_run_batch(p, &bp, &rp, NULL), RVA_OK, "%s", rva_last_error());
	/* by hand: a on the queries, then b on a's output */
	rva_batch b1 = {.count = 2, .seqs = mid.seqs};
	cr_assert_eq(rva_compute_batch(a, &b1, &ra, NULL), RVA_OK);
	for (size_t s = 0; s < 2; s++)
		fin.seqs[s].q = mid.out[s];
	rva_batch b2b = {.count = 2, .seqs = fin.seqs};
	cr_assert_eq(rva_compute_batch(b, &b2b, &rb, NULL), RVA_OK);
	for (size_t s = 0; s < 2; s++)
		cr_assert(memcmp(m.out[s], fin.out[s], nq[s] * dim * sizeof(float)) == 0,
		          "sequence %zu", s);
	cr_assert(same_counts(&sp, &sb), "pipeline stats are the last stage's");
	cr_assert_eq(sa.experts, 4);
	cr_assert_eq(sb.experts, 3);
	free_batch(&m);
	free_batch(&mid);
	free_batch(&fin);
	rva_pipeline_destroy(p);
	rva_attention_destroy(a);
	rva_attention_destroy(b);
}

Test(moe, phase_timings_are_reported) {
	enum { NQ = 40, NK = 60, DIM = 16 };
	rva_config cfg = rva_moe(DIM, 4, 2);
	cfg.heads = 2;
	rva_attention *att;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	float *q = calloc(NQ * DIM, sizeof(float)), *kv = calloc(NK * DIM, sizeof(float));
	float *out = calloc(NQ * DIM, sizeof(float));
	for (size_t i = 0; i < NQ * DIM; i++)
		q[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
	for (size_t i = 0; i < NK * DIM; i++)
		kv[i] = (float)((i * 13) % 7) / 7.0f - 0.5f;
	rva_seq s = {.nq = NQ, .nk = NK, .q = q, .k = kv, .v = kv, .out = out};
	rva_batch b = {1, &s};
	rva_moe_stats st;
	rva_runtime rt = {.moe_stats = &st};
	cr_assert_eq(rva_compute_batch(att, &b, &rt, NULL), RVA_OK);
	cr_assert_gt(st.router_ns, 0);
	cr_assert_gt(st.assign_ns, 0);
	cr_assert_gt(st.expert_ns, 0);
	cr_assert_gt(st.combine_ns, 0);
	free(q);
	free(kv);
	free(out);
	rva_attention_destroy(att);
}

/* Linear experts run in groups of query tiles (at most 4096 rows a task); a sequence
 * longer than one group gives the same numbers as one expert task per tile. */
Test(moe, linear_expert_groups_match_per_tile_tasks) {
	enum { LQ = 4096 + 300, LK = 24, LD = 8 };
	float *q = malloc(sizeof(float) * LQ * LD), *kv = malloc(sizeof(float) * LK * LD);
	float *o1 = malloc(sizeof(float) * LQ * LD), *o2 = malloc(sizeof(float) * LQ * LD);
	for (size_t i = 0; i < LQ * LD; i++)
		q[i] = (float)((i * 7919) % 101) / 101.0f - 0.5f;
	for (size_t i = 0; i < LK * LD; i++)
		kv[i] = (float)((i * 104729) % 97) / 97.0f - 0.5f;
	rva_config c = rva_moe(LD, 3, 1);
	c.expert_kind = RVA_EXPERTS_LINEAR;
	c.features = 16;
	c.expert_capacity = 10.0f;
	c.query_block = 64;              /* 70 tiles: groups of 64 tiles */
	rva_attention *grouped, *per_tile;
	cr_assert_eq(rva_build(&c, &grouped), RVA_OK);
	c.query_block = 4096;            /* 2 tiles: one task each */
	cr_assert_eq(rva_build(&c, &per_tile), RVA_OK);
	rva_seq s1 = {.nq = LQ, .nk = LK, .q = q, .k = kv, .v = kv, .out = o1};
	rva_seq s2 = s1;
	s2.out = o2;
	rva_batch b1 = {1, &s1}, b2 = {1, &s2};
	cr_assert_eq(rva_compute_batch(grouped, &b1, NULL, NULL), RVA_OK);
	cr_assert_eq(rva_compute_batch(per_tile, &b2, NULL, NULL), RVA_OK);
	size_t nonzero = 0;
	for (size_t i = 0; i < LQ * LD; i++) {
		cr_assert(fabsf(o1[i] - o2[i]) <= 1e-5f + 1e-4f * fabsf(o2[i]), "element %zu", i);
		nonzero += o1[i] != 0.0f;
	}
	cr_assert_gt(nonzero, LQ * LD / 2);
	rva_attention_destroy(grouped);
	rva_attention_destroy(per_tile);
	free(q);
	free(kv);
	free(o1);
	free(o2);
}

/* ---- experts own parameters (Mixture of Attention Heads) ------------------------------ */

/* Builds att's MoE on a batch and checks outputs and statistics against the oracles. */
static void check_att(const rva_attention *att, mbatch *b) {
	rva_moe_stats st;
	memset(&st, 0xAB, sizeof st);
	rva_runtime rt = {.moe_stats = &st};
	rva_batch bb = {.count = b->n, .seqs = b->seqs};
	cr_assert_eq(rva_compute_batch(att, &bb, &rt, NULL), RVA_OK, "%s", rva_last_error());
	moe_expect x;
	expect_moe(att, b, NULL, &x);
	rva_config c;
	rva_attention_config(att, &c);
	check_stats(&st, &x, c.experts);
	check_outputs(b, NULL, &x);
	free_expect(&x);
}

/* Largest |a - b| over n floats. */
static double max_diff(const float *a, const float *b, size_t n) {
	double m = 0.0;
	for (size_t i = 0; i < n; i++)
		m = fmax(m, fabs((double)a[i] - (double)b[i]));
	return m;
}

/* rva_moe(32, 4, 2) with standard experts used to equal multi_head(32, 1) to 1e-8
 * whatever the routing: parameter-free experts all computed the same function. Now each
 * expert has its own W_q/W_o, the experts' outputs differ pairwise and the mixture
 * differs from plain attention. */
Test(moe, experts_own_parameters_and_differ) {
	size_t dim = 32, nq[1] = {24}, nk[1] = {30};
	rva_config cfg = rva_moe(dim, 4, 2);
	cfg.expert_kind = RVA_EXPERTS_STANDARD;
	rva_attention *moe, *mh;
	cr_assert_eq(rva_build(&cfg, &moe), RVA_OK);
	rva_config mc = rva_multi_head(dim, 1);
	cr_assert_eq(rva_build(&mc, &mh), RVA_OK);
	mbatch a, b;
	make_batch(&a, moe, 1, nq, nk, false, 7);
	make_batch(&b, moe, 1, nq, nk, false, 7);
	rva_batch ba = {1, a.seqs}, bb = {1, b.seqs};
	cr_assert_eq(rva_compute_batch(moe, &ba, NULL, NULL), RVA_OK);
	cr_assert_eq(rva_compute_batch(mh, &bb, NULL, NULL), RVA_OK);
	double d = max_diff(a.out[0], b.out[0], nq[0] * dim);
	cr_assert_gt(d, 1e-2, "MoE output within %g of multi_head", d);
	/* the experts, each on the whole sequence, pairwise far apart */
	double *eo[4];
	for (size_t e = 0; e < 4; e++) {
		eo[e] = calloc(nq[0] * dim, sizeof(double));
		expert_full_oracle(moe, e, &a.seqs[0], eo[e]);
	}
	for (size_t e = 0; e < 4; e++)
		for (size_t f = e + 1; f < 4; f++) {
			double m = 0.0, n = 0.0;
			for (size_t i = 0; i < nq[0] * dim; i++) {
				m = fmax(m, fabs(eo[e][i] - eo[f][i]));
				n = fmax(n, fabs(eo[e][i]));
			}
			cr_assert_gt(m, 0.1 * n, "experts %zu and %zu differ by %g only (scale %g)", e, f,
			             m, n);
		}
	for (size_t e = 0; e < 4; e++)
		free(eo[e]);
	check_att(moe, &a);
	free_batch(&a);
	free_batch(&b);
	rva_attention_destroy(moe);
	rva_attention_destroy(mh);
}

/* Seeded weights: LeCun-normal N(0, 1/fan_in), distinct per expert and per matrix,
 * reproducible from the seed, other with another seed; the normalised config points to
 * the attention's own copies. */
Test(moe, seeded_weights_are_distinct_and_scaled) {
	size_t dim = 48, E = 3;
	rva_config cfg = rva_moe(dim, E, 1);
	cfg.heads = 4;
	cfg.kv_heads = 2; /* kv_dim 24 */
	cfg.expert_kind = RVA_EXPERTS_STANDARD;
	rva_attention *a, *b, *c;
	cr_assert_eq(rva_build(&cfg, &a), RVA_OK);
	cr_assert_eq(rva_build(&cfg, &b), RVA_OK);
	cfg.seed = 77;
	cr_assert_eq(rva_build(&cfg, &c), RVA_OK);
	const float *q[3], *o[3], *k[3], *v[3], *qb, *qc;
	for (size_t e = 0; e < E; e++)
		cr_assert_eq(rva_attention_moe_weights(a, e, &q[e], &o[e], &k[e], &v[e]), RVA_OK);
	cr_assert_eq(rva_attention_moe_weights(b, 0, &qb, NULL, NULL, NULL), RVA_OK);
	cr_assert_eq(rva_attention_moe_weights(c, 0, &qc, NULL, NULL, NULL), RVA_OK);
	cr_assert(memcmp(q[0], qb, dim * dim * sizeof(float)) == 0, "same seed, same W_q");
	cr_assert(memcmp(q[0], qc, dim * dim * sizeof(float)) != 0, "another seed, other W_q");
	cr_assert(memcmp(q[0], q[1], dim * dim * sizeof(float)) != 0);
	cr_assert(memcmp(q[1], q[2], dim * dim * sizeof(float)) != 0);
	cr_assert(memcmp(q[0], o[0], dim * dim * sizeof(float)) != 0, "W_q and W_o differ");
	cr_assert(k[0] == k[1] && k[1] == k[2] && v[0] == v[2], "shared K/V projections");
	cr_assert(memcmp(k[0], v[0], 24 * 24 * sizeof(float)) != 0);
	/* variance * fan_in close to 1 over the E W_q (6912 draws) and W_k (576) */
	double s2 = 0.0;
	for (size_t e = 0; e < E; e++)
		for (size_t i = 0; i < dim * dim; i++)
			s2 += (double)q[e][i] * q[e][i];
	cr_assert(fabs(s2 / (double)(E * dim * dim) * dim - 1.0) < 0.06, "W_q var*fan_in %g",
	          s2 / (double)(E * dim * dim) * dim);
	s2 = 0.0;
	for (size_t i = 0; i < 24 * 24; i++)
		s2 += (double)k[0][i] * k[0][i];
	cr_assert(fabs(s2 / (24.0 * 24.0) * 24.0 - 1.0) < 0.2, "W_k var*fan_in %g",
	          s2 / (24.0 * 24.0) * 24.0);
	rva_config got;
	rva_attention_config(a, &got);
	cr_assert(got.expert_wq.data && got.expert_wq.data[1] == q[1] && got.expert_wq.stride == dim);
	cr_assert(got.expert_wk.data && got.expert_wk.data[0] == k[0] && got.expert_wk.stride == 24);
	cr_assert_eq(got.normalize_gates, RVA_GATES_RAW, "auto resolves to raw for top-1");
	/* the normalised config builds the same attention (weights copied again) */
	rva_attention *d;
	cr_assert_eq(rva_build(&got, &d), RVA_OK);
	const float *qd;
	cr_assert_eq(rva_attention_moe_weights(d, 2, &qd, NULL, NULL, NULL), RVA_OK);
	cr_assert(qd != q[2] && memcmp(qd, q[2], dim * dim * sizeof(float)) == 0);
	rva_attention_destroy(a);
	rva_attention_destroy(b);
	rva_attention_destroy(c);
	rva_attention_destroy(d);
}

/* Caller weights with row strides wider than the rows are copied (later changes to the
 * caller's memory do nothing) and used: the output matches the oracle built from them. */
Test(moe, caller_weights_with_strides_are_copied_and_used) {
	enum { D = 12, E = 3, LD = D + 5 };
	static float mats[4][E][D * LD], router[E * (D + 2)];
	for (size_t w = 0; w < 4; w++)
		for (size_t e = 0; e < E; e++)
			for (size_t i = 0; i < D * LD; i++)
				mats[w][e][i] = (i % LD) >= D ? NAN /* padding: never read */
				                              : 0.3f * sinf((float)(i + 31 * e + 97 * w));
	for (size_t i = 0; i < E * (D + 2); i++)
		router[i] = (i % (D + 2)) >= D ? NAN : 0.5f * cosf((float)i);
	const float *lq[E], *lo[E], *lk[E], *lv[E];
	for (size_t e = 0; e < E; e++) {
		lq[e] = mats[0][e];
		lo[e] = mats[1][e];
		lk[e] = mats[2][e];
		lv[e] = mats[3][e];
	}
	rva_config cfg = rva_moe(D, E, 2);
	cfg.heads = 3;
	cfg.expert_kind = RVA_EXPERTS_STANDARD;
	cfg.kv_projection = RVA_MOE_KV_PER_EXPERT;
	cfg.router_weights = router;
	cfg.router_stride = D + 2;
	cfg.expert_wq = (rva_matrix_list){lq, LD};
	cfg.expert_wo = (rva_matrix_list){lo, LD};
	cfg.expert_wk = (rva_matrix_list){lk, LD};
	cfg.expert_wv = (rva_matrix_list){lv, LD};
	cfg.expert_capacity = 0.75f;
	rva_attention *att;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK, "%s", rva_last_error());
	for (size_t e = 0; e < E; e++) {
		const float *w[4];
		cr_assert_eq(rva_attention_moe_weights(att, e, &w[0], &w[1], &w[2], &w[3]), RVA_OK);
		for (size_t m = 0; m < 4; m++)
			for (size_t r = 0; r < D; r++)
				cr_assert(memcmp(w[m] + r * D, mats[m][e] + r * LD, D * sizeof(float)) == 0,
				          "matrix %zu of expert %zu, row %zu", m, e, r);
	}
	const float *rw;
	size_t re, rd;
	cr_assert_eq(rva_attention_router(att, &rw, &re, &rd), RVA_OK);
	for (size_t e = 0; e < E; e++)
		cr_assert(memcmp(rw + e * D, router + e * (D + 2), D * sizeof(float)) == 0);
	for (size_t w = 0; w < 4; w++) /* the attention holds copies */
		for (size_t e = 0; e < E; e++)
			mats[w][e][0] = 1e6f;
	mbatch b;
	size_t nq[2] = {13, 20}, nk[2] = {9, 26};
	make_batch(&b, att, 2, nq, nk, true, 17);
	check_att(att, &b);
	free_batch(&b);
	rva_attention_destroy(att);
}

/* Per-expert K/V projections: each expert its own W_k, W_v, checked against the oracle
 * with drops and causal masking. */
Test(moe, per_expert_kv_projections_match_oracle) {
	size_t nq[3] = {21, 4, 37}, nk[3] = {21, 9, 50};
	rva_config cfg = rva_moe(16, 5, 2);
	cfg.heads = 4;
	cfg.kv_heads = 2;
	cfg.features = 16;
	cfg.causal = true;
	cfg.expert_capacity = 0.5f;
	cfg.kv_projection = RVA_MOE_KV_PER_EXPERT;
	cfg.query_block = 8;
	rva_attention *att;
	cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
	const float *k0, *k1;
	cr_assert_eq(rva_attention_moe_weights(att, 0, NULL, NULL, &k0, NULL), RVA_OK);
	cr_assert_eq(rva_attention_moe_weights(att, 1, NULL, NULL, &k1, NULL), RVA_OK);
	cr_assert(memcmp(k0, k1, 8 * 8 * sizeof(float)) != 0);
	mbatch b;
	make_batch(&b, att, 3, nq, nk, true, 23);
	check_att(att, &b);
	free_batch(&b);
	rva_attention_destroy(att);
}

/* Routing changes the output: the same experts (same seed) behind two routers that send
 * the tokens to different experts give different outputs, each the oracle's. */
Test(moe, routing_changes_the_output) {
	enum { D = 8, E = 4 };
	float w1[E * D] = {0}, w2[E * D] = {0};
	for (size_t e = 0; e < E; e++) {
		w1[e * D + e] = 4.0f;            /* feature e -> expert e */
		w2[e * D + (e + 1) % E] = 4.0f;  /* feature e -> expert e - 1 */
	}
	rva_config cfg = rva_moe(D, E, 1);
	cfg.heads = 2;
	cfg.expert_kind = RVA_EXPERTS_STANDARD;
	cfg.expert_capacity = 4.0f;
	cfg.router_weights = w1;
	rva_attention *a1, *a2;
	cr_assert_eq(rva_build(&cfg, &a1), RVA_OK);
	cfg.router_weights = w2;
	cr_assert_eq(rva_build(&cfg, &a2), RVA_OK);
	mbatch b1, b2;
	size_t nq[1] = {16}, nk[1] = {12};
	make_batch(&b1, a1, 1, nq, nk, false, 3);
	make_batch(&b2, a2, 1, nq, nk, false, 3);
	for (size_t i = 0; i < 16; i++) /* token i leans on feature i % 4 */
		b1.q[0][i * D + i % 4] = b2.q[0][i * D + i % 4] = 1.5f;
	check_att(a1, &b1);
	check_att(a2, &b2);
	double d = max_diff(b1.out[0], b2.out[0], 16 * D);
	cr_assert_gt(d, 1e-2, "rerouted output within %g", d);
	rva_moe_stats st;
	rva_runtime rt = {.moe_stats = &st};
	rva_batch bb = {1, b1.seqs};
	cr_assert_eq(rva_compute_batch(a1, &bb, &rt, NULL), RVA_OK);
	for (size_t e = 0; e < E; e++)
		cr_assert_eq(st.assigned[e], 4, "expert %zu", e);
	free_batch(&b1);
	free_batch(&b2);
	rva_attention_destroy(a1);
	rva_attention_destroy(a2);
}

/* Gates: top-1 with the default (Switch) gate is the router probability, so the output is
 * p times the output of the same MoE with renormalised (GShard) gates, which for k = 1
 * are 1. Top-2 defaults to GShard gates. */
Test(moe, top1_gate_is_the_router_probability) {
	size_t dim = 16, E = 4, nq[1] = {30}, nk[1] = {20};
	rva_config cfg = rva_moe(dim, E, 1);
	cfg.heads = 2;
	cfg.expert_capacity = 4.0f;
	cfg.features = 16;
	rva_attention *raw, *norm, *top2;
	cr_assert_eq(rva_build(&cfg, &raw), RVA_OK);
	cfg.normalize_gates = RVA_GATES_NORMALIZED;
	cr_assert_eq(rva_build(&cfg, &norm), RVA_OK);
	rva_config c2 = rva_moe(dim, E, 2), got;
	cr_assert_eq(rva_build(&c2, &top2), RVA_OK);
	rva_attention_config(top2, &got);
	cr_assert_eq(got.normalize_gates, RVA_GATES_NORMALIZED, "auto: GShard for top-2");
	rva_attention_config(raw, &got);
	cr_assert_eq(got.normalize_gates, RVA_GATES_RAW, "auto: Switch for top-1");
	mbatch a, b;
	make_batch(&a, raw, 1, nq, nk, true, 5);
	make_batch(&b, raw, 1, nq, nk, true, 5);
	rva_batch ba = {1, a.seqs}, bb = {1, b.seqs};
	cr_assert_eq(rva_compute_batch(raw, &ba, NULL, NULL), RVA_OK);
	cr_assert_eq(rva_compute_batch(norm, &bb, NULL, NULL), RVA_OK);
	const float *w;
	size_t e_n, d_n;
	rva_attention_router(raw, &w, &e_n, &d_n);
	double pmin = 1.0;
	for (size_t i = 0; i < nq[0]; i++) {
		double p[4], g;
		uint32_t ch;
		ref_moe_route(w, E, dim, a.q[0] + i * dim, 1, 0, p, &ch, &g);
		pmin = fmin(pmin, g);
		for (size_t d = 0; d < dim; d++) {
			double want = g * b.out[0][i * dim + d];
			cr_assert(fabs(a.out[0][i * dim + d] - want) <= 1e-6 + 1e-5 * fabs(want),
			          "row %zu col %zu: %g vs p %g x %g", i, d, a.out[0][i * dim + d], g,
			          b.out[0][i * dim + d]);
		}
	}
	cr_assert_lt(pmin, 0.9, "gates all near 1: the test could not tell the rules apart");
	check_att(raw, &a);
	check_att(norm, &b);
	free_batch(&a);
	free_batch(&b);
	rva_attention_destroy(raw);
	rva_attention_destroy(norm);
	rva_attention_destroy(top2);
}

/* Capacity per sequence (the default) is batch-invariant: a sequence alone and inside a
 * ragged batch of others gives bit-identical outputs, serially and on the engine (1 and 2
 * workers). Per batch (GShard), its batch-mates take capacity and change its output. */
Test(moe, capacity_per_sequence_is_batch_invariant, .timeout = 60) {
	size_t dim = 16;
	size_t nq_b[4] = {50, 37, 3, 70}, nk_b[4] = {60, 37, 11, 90}; /* X is sequence 1 */
	for (int scope = 0; scope < 2; scope++) {
		rva_config cfg = rva_moe(dim, 6, 2);
		cfg.heads = 2;
		cfg.features = 16;
		cfg.causal = true;
		cfg.expert_capacity = 0.5f;
		cfg.query_block = 16;
		cfg.capacity_scope = scope ? RVA_CAPACITY_PER_BATCH : RVA_CAPACITY_PER_SEQUENCE;
		rva_attention *att;
		cr_assert_eq(rva_build(&cfg, &att), RVA_OK);
		mbatch batch, alone;
		make_batch(&batch, att, 4, nq_b, nk_b, true, 91);
		make_batch(&alone, att, 4, nq_b, nk_b, true, 91); /* same data; run X alone */
		rva_batch bb = {4, batch.seqs}, b1 = {1, &alone.seqs[1]};
		rva_runtime rt = {.training = true, .seed = 4};
		cr_assert_eq(rva_compute_batch(att, &bb, &rt, NULL), RVA_OK);
		cr_assert_eq(rva_compute_batch(att, &b1, &rt, NULL), RVA_OK);
		bool same = memcmp(batch.out[1], alone.out[1], 37 * dim * sizeof(float)) == 0;
		if (scope == 0) {
			cr_assert(same, "per sequence: alone and batched differ");
			for (unsigned threads = 1; threads <= 2; threads++) {
				rva_engine_config ec = rva_engine_config_defaults();
				ec.threads = threads;
				rva_engine *eng;
				cr_assert_eq(rva_engine_create(&ec, &eng), RVA_OK, "%s", rva_last_error());
				mbatch e4;
				make_batch(&e4, att, 4, nq_b, nk_b, true, 91);
				rva_batch eb = {4, e4.seqs};
				cr_assert_eq(rva_engine_run(eng, att, &eb, &rt, NULL, NULL), RVA_OK);
				for (size_t s = 0; s < 4; s++)
					cr_assert(memcmp(e4.out[s], batch.out[s], nq_b[s] * dim * sizeof(float)) ==
					              0, "engine %u threads, sequence %zu", threads, s);
				free_batch(&e4);
				rva_engine_destroy(eng);
			}
			/* and each sequence matches the oracle */
			rva_runtime r0 = {.moe_stats = NULL};
			cr_assert_eq(rva_compute_batch(att, &bb, &r0, NULL), RVA_OK);
			moe_expect x;
			expect_moe(att, &batch, NULL, &x);
			check_outputs(&batch, NULL, &x);
			cr_assert_gt(x.dropped, 0, "no token dropped: capacity did not bind");
			free_expect(&x);
		} else {
			cr_assert(!same, "per batch: the batch-mates did not change the output");
		}
		free_batch(&batch);
		free_batch(&alone);
		rva_attention_destroy(att);
	}
}

/*
 * Numerics that a too-kind test would miss, against the double-precision oracle of
 * tests/ref/ref_softmax.c:
 *
 * - large logits (+-30 after scaling, and +-90 where exp's clamps decide) through the
 *   online-softmax rescaling: key tiles whose maximum rises (every earlier partial is
 *   rescaled by up to exp(-60)), falls, or spikes once, on the dense multi-head tiles, flash
 *   tiles, and the decode path (few queries, many keys: split-KV partials merged by
 *   log-sum-exp), serially and on the engine, causal or not;
 * - attention-probability dropout in training mode: the keep rate within a binomial bound
 *   that a wrong rate fails, and every kept probability scaled by exactly 1/(1-p).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_softmax.h"
#include "ref/ref_util.h"
#include "rvattn/attention.h"
#include "rvattn/engine.h"

/* ---- large logits --------------------------------------------------------------------- */

enum { RISING = 0, FALLING, SPIKE, PATTERNS };
static const char *const pattern_names[PATTERNS] = {"rising", "falling", "spike"};

/*
 * One sequence whose logits (after the 1/sqrt(head_dim) scale) are close to s_i * t_j:
 * per head, q_i = s_i u + noise and k_j = t_j u / (scale |u|^2) + noise for a random
 * direction u, with t_j a ramp from -amp to +amp over the keys (RISING), its reverse
 * (FALLING) or -amp everywhere but one key at +amp (SPIKE), and s_i cycling through
 * 1, -1, 0.5 (some queries see the ramp reversed). V is uniform in [-1, 1).
 */
typedef struct problem {
	size_t nq, nk, heads, hd, dim;
	float *q, *k, *v, *out;
	double *want;
} problem;

static problem make(size_t nq, size_t nk, size_t heads, size_t hd, int pattern, double amp,
                    uint64_t seed) {
	problem p = {.nq = nq, .nk = nk, .heads = heads, .hd = hd, .dim = heads * hd};
	p.q = ref_alloc(nq * p.dim);
	p.k = ref_alloc(nk * p.dim);
	p.v = ref_alloc(nk * p.dim);
	p.out = ref_alloc(nq * p.dim);
	p.want = ref_alloc_d(nq * p.dim);
	ref_fill_uniform(p.q, nq * p.dim, -0.01f, 0.01f, seed);
	ref_fill_uniform(p.k, nk * p.dim, -0.01f, 0.01f, seed + 1);
	ref_fill_uniform(p.v, nk * p.dim, -1.0f, 1.0f, seed + 2);
	float *u = ref_alloc(hd);
	double scale = 1.0 / sqrt((double)hd);
	for (size_t h = 0; h < heads; h++) {
		ref_fill_uniform(u, hd, -1.0f, 1.0f, seed + 10 + h);
		double uu = 0.0;
		for (size_t d = 0; d < hd; d++)
			uu += (double)u[d] * u[d];
		for (size_t j = 0; j < nk; j++) {
			double ramp = nk > 1 ? -amp + 2.0 * amp * (double)j / (double)(nk - 1) : amp;
			double t = pattern == RISING ? ramp : pattern == FALLING ? -ramp
			           : j == nk / 3 ? amp : -amp;
			for (size_t d = 0; d < hd; d++)
				p.k[j * p.dim + h * hd + d] += (float)(t * u[d] / (scale * uu));
		}
		static const double s[] = {1.0, -1.0, 0.5};
		for (size_t i = 0; i < nq; i++)
			for (size_t d = 0; d < hd; d++)
				p.q[i * p.dim + h * hd + d] += (float)(s[i % 3] * u[d]);
	}
	free(u);
	return p;
}

static void drop(problem *p) {
	free(p->q);
	free(p->k);
	free(p->v);
	free(p->out);
	free(p->want);
}

/* The largest |logit| of the problem, in double (to show the test reaches the range). */
static double max_logit(const problem *p) {
	double m = 0.0, scale = 1.0 / sqrt((double)p->hd);
	for (size_t i = 0; i < p->nq; i++)
		for (size_t j = 0; j < p->nk; j++)
			for (size_t h = 0; h < p->heads; h++) {
				double s = 0.0;
				for (size_t d = 0; d < p->hd; d++)
					s += (double)p->q[i * p->dim + h * p->hd + d] *
					     p->k[j * p->dim + h * p->hd + d];
				m = fmax(m, fabs(s * scale));
			}
	return m;
}

static void check(rva_config c, problem *p, rva_engine *e, const char *what) {
	rva_attention *att = NULL;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s: %s", what, rva_last_error());
	ref_attn_spec sp = {.heads = p->heads, .kv_heads = p->heads, .head_dim = p->hd,
	                    .scale = 1.0 / sqrt((double)p->hd), .causal = c.causal,
	                    .pattern = REF_DENSE};
	ref_attention(&sp, p->nq, p->nk, p->q, p->dim, p->k, p->dim, p->v, p->dim, NULL, p->want);
	rva_seq s = {.nq = p->nq, .nk = p->nk, .q = p->q, .k = p->k, .v = p->v, .out = p->out};
	rva_batch b = {.count = 1, .seqs = &s};
	for (int on_engine = 0; on_engine < 2; on_engine++) {
		for (size_t i = 0; i < p->nq * p->dim; i++)
			p->out[i] = NAN;
		rva_status st = on_engine ? rva_engine_run(e, att, &b, NULL, NULL, NULL)
		                          : rva_compute_batch(att, &b, NULL, NULL);
		cr_assert_eq(st, RVA_OK, "%s: %s", what, rva_last_error());
		/* outputs are averages of V rows in [-1, 1): a rescaling slip is an O(1) error */
		double err = ref_err_ratio(p->out, p->want, p->nq * p->dim, 1e-4, 1e-4);
		cr_assert(err <= 1.0, "%s (%s): error ratio %g against the oracle (atol 1e-4, rtol "
		          "1e-4)", what, on_engine ? "engine" : "serial", err);
	}
	rva_attention_destroy(att);
}

static rva_engine *engine2(void) {
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 2;
	rva_engine *e = NULL;
	cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK, "%s", rva_last_error());
	return e;
}

/* Every path, every pattern, logits of +-amp. */
static void large_logits(double amp) {
	rva_engine *e = engine2();
	for (int pat = 0; pat < PATTERNS; pat++)
		for (int causal = 0; causal < 2; causal++) {
			char what[128];
			/* dense multi-head tiles (default block), 2 heads of 64 */
			problem p = make(70, 300, 2, 64, pat, amp, 100 + (uint64_t)pat);
			cr_assert(max_logit(&p) > 0.95 * amp, "the logits reach %g", max_logit(&p));
			rva_config c = rva_multi_head(128, 2);
			c.causal = causal;
			snprintf(what, sizeof what, "multi_head %s +-%g causal %d", pattern_names[pat], amp,
			         causal);
			check(c, &p, e, what);
			/* flash with small tiles: 19 rescalings per query row */
			c = rva_flash(128, 16);
			c.heads = 2;
			c.causal = causal;
			snprintf(what, sizeof what, "flash(16) %s +-%g causal %d", pattern_names[pat], amp,
			         causal);
			check(c, &p, e, what);
			drop(&p);
			/* decode: 3 queries over 5000 keys, split-KV partials merged */
			p = make(3, 5000, 2, 64, pat, amp, 200 + (uint64_t)pat);
			c = rva_multi_head(128, 2);
			c.causal = causal;
			snprintf(what, sizeof what, "decode %s +-%g causal %d", pattern_names[pat], amp,
			         causal);
			check(c, &p, e, what);
			c = rva_flash(128, 128);
			c.heads = 2;
			c.causal = causal;
			snprintf(what, sizeof what, "flash decode %s +-%g causal %d", pattern_names[pat],
			         amp, causal);
			check(c, &p, e, what);
			drop(&p);
		}
	rva_engine_destroy(e);
}

Test(large_logits, pm30_through_online_softmax) { large_logits(30.0); }

/* exp arguments down to -180: the clamps and flushes of the SIMD exp decide. */
Test(large_logits, pm90_through_the_exp_clamps) { large_logits(90.0); }

/* Scalar kernels (RVATTN_SIMD=scalar) and the BLIS tile loop: the same data. */
Test(large_logits, pm30_scalar_kernels) {
	setenv("RVATTN_SIMD", "scalar", 1);
	large_logits(30.0);
}

Test(large_logits, pm30_blis_tile_loop) {
	setenv("RVATTN_ATTN_KERNEL", "blis", 1);
	large_logits(30.0);
}

/* ---- attention dropout ---------------------------------------------------------------- */

/*
 * One head of dim NK, Q = 0 (every probability 1/NK) and V = the identity (value row j is
 * e_j): output (i, j) is query i's probability of key j after dropout, 0 when dropped and
 * 1/(NK (1-p)) when kept. The number kept of N = NQ x NK is Binomial(N, 1-p): it must lie
 * within 5 standard deviations of N (1-p) (a false alarm about once in 1.7 million runs; a
 * rate wrong by 0.02 at p = 0.1 is 8 deviations off).
 */
static void dropout_rate(rva_config c, float prob, rva_engine *e, const char *what) {
	enum { NQ = 256, NK = 64 };
	c.dropout = prob;
	rva_attention *att = NULL;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s: %s", what, rva_last_error());
	float *q = ref_alloc(NQ * NK), *v = ref_alloc(NK * NK), *k = ref_alloc(NK * NK);
	float *out = ref_alloc(NQ * NK);
	ref_fill_uniform(k, NK * NK, -1.0f, 1.0f, 5);
	for (size_t j = 0; j < NK; j++)
		v[j * NK + j] = 1.0f;
	rva_seq s = {.nq = NQ, .nk = NK, .q = q, .k = k, .v = v, .out = out};
	rva_batch b = {.count = 1, .seqs = &s};
	rva_runtime rt = {0};
	rt.training = true;
	rt.seed = 42;
	rva_status st = e ? rva_engine_run(e, att, &b, &rt, NULL, NULL)
	                  : rva_compute_batch(att, &b, &rt, NULL);
	cr_assert_eq(st, RVA_OK, "%s: %s", what, rva_last_error());
	double kept_value = 1.0 / ((double)NK * (1.0 - (double)prob));
	size_t kept = 0;
	for (size_t i = 0; i < (size_t)NQ * NK; i++) {
		if (out[i] == 0.0f)
			continue;
		kept++;
		cr_assert(fabs((double)out[i] - kept_value) <= 1e-6 * kept_value,
		          "%s p=%g: a kept probability is %.9g, want 1/(%d (1-p)) = %.9g", what,
		          (double)prob, (double)out[i], NK, kept_value);
	}
	double n = (double)NQ * NK, mean = n * (1.0 - prob), sd = sqrt(n * prob * (1.0 - prob));
	cr_assert(fabs((double)kept - mean) <= 5.0 * sd, "%s p=%g: %zu of %g kept, expected %g "
	          "+- 5 x %g", what, (double)prob, kept, n, mean, sd);
	free(q);
	free(k);
	free(v);
	free(out);
	rva_attention_destroy(att);
}

Test(dropout, attention_keep_rate_and_scaling) {
	static const float probs[] = {0.1f, 0.5f, 0.8f};
	rva_engine *e = engine2();
	for (size_t i = 0; i < 3; i++) {
		rva_config mh = rva_multi_head(64, 1), fl = rva_flash(64, 16);
		fl.heads = 1;
		dropout_rate(mh, probs[i], NULL, "multi_head serial");
		dropout_rate(mh, probs[i], e, "multi_head engine");
		dropout_rate(fl, probs[i], NULL, "flash(16) serial");
		dropout_rate(fl, probs[i], e, "flash(16) engine");
	}
	rva_engine_destroy(e);
}

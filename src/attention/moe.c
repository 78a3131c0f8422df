/*
 * Mixture-of-experts attention: Switch Transformer / GShard routing over experts that
 * are attention mechanisms owning parameters, as in Mixture of Attention Heads (Zhang et
 * al. 2022) and SwitchHead (Csordas et al. 2023).
 *
 * Build: the router weights (E x dim) are a checked copy of the config's (row stride
 * router_stride), or a seeded draw N(0, 1/dim). Expert e owns W_q[e] and W_o[e]
 * (dim x dim); W_k and W_v (kv_dim x kv_dim) are shared by all experts or one per expert
 * (kv_projection). Caller matrices are copied (finite values only); the others are
 * LeCun-normal N(0, 1/fan_in) draws from hash(seed, tag, e), distinct per expert. Expert
 * e's attention is built with rva__build_variant with the mechanism of its kind
 * (RVA_EXPERTS_MIXED: multi-head softmax, hyperbolic, linear for e % 3 = 0, 1, 2) and
 * its own seed, so seeded experts (random features, T5 tables) differ too.
 *
 * Semantics of one sequence (x = query row, K, V the sequence's keys and values):
 *   - router: training mode with jitter eps > 0 multiplies x by U(1 - eps, 1 + eps)
 *     elementwise; p = softmax(W x) in fp32; the top-k experts (ties to the lower
 *     index); gate g_e = p_e (Switch) or p_e / sum of the chosen p (GShard), per
 *     normalize_gates (router.h);
 *   - capacity C = ceil(expert_capacity * tokens * k / E) (router.h: rva__moe_capacity
 *     for the rounding of the float factor), tokens = the sequence's query rows
 *     (capacity_scope per sequence, the default: batch-invariant) or those of every
 *     valid sequence of the job (per batch, GShard);
 *   - assignment priority within the scope (GShard): every token's first choice in
 *     token order, then every second choice, and so on; an expert already holding C
 *     assignments drops the later ones, and a dropped (token, expert) pair contributes
 *     exactly 0 (the other gates are not renormalised);
 *   - expert e: E_e(x) = A_e(x W_q[e], K W_k, V W_v) W_o[e], A_e its attention over the
 *     whole sequence's projected keys (positions, causality and key mask unchanged);
 *   - output row = sum over the token's k choices in rank order of g_e E_e(x); a token
 *     dropped by all its experts gets 0;
 *   - statistics (rt.moe_stats, written by the graph's finish hook): tokens, capacity
 *     (per batch: C; per sequence: the sum of the sequences' C), assigned[e] (before
 *     capacity), processed[e] (after), dropped pairs, and the Switch load-balancing loss
 *     E * sum_e f_e P_e over all routed tokens, f_e = assigned[e] / tokens (sum f = k),
 *     P_e = mean router probability of e.
 *
 * Job graph, per sequence: router tasks per query tile -> a capacity-assignment task
 * (per sequence, or one for the whole job per batch) -> expert tasks per (expert, group
 * of query tiles) -> combine tasks per query tile -> a join. K/V projection tasks per
 * block of keys (shared: from the start, in parallel with the routers; per expert: after
 * the assignment, skipped for experts that got no token of the sequence) feed the
 * expert tasks. An expert task gathers its kept rows, projects them (one sgemm by
 * W_q[e]), runs the expert's rows() on them, projects the result (one sgemm by W_o[e])
 * and scatters it to the per-(token, rank) outputs in the job arena.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attention/attention_internal.h"
#include "attention/router.h"
#include "core/internal.h"
#include "kernels/gemm.h"
#include "kernels/half.h"

#define MOE_ROUTER_INIT_TAG 0x524F55544552494Eull /* "ROUTERIN" */
#define MOE_EXPERT_SEED_TAG 0x4558504552545345ull /* "EXPERTSE" */
#define MOE_WQ_TAG 0x4D4F452D57512D2Dull          /* "MOE-WQ--" */
#define MOE_WO_TAG 0x4D4F452D574F2D2Dull
#define MOE_WK_TAG 0x4D4F452D574B2D2Dull
#define MOE_WV_TAG 0x4D4F452D57562D2Dull

/* Query rows of one expert task: softmax and hyperbolic experts take up to
 * MOE_GROUP_ROWS rows (so the projection GEMMs see enough rows to run near the sgemm
 * limit: a long sequence is cut into groups of whole query tiles, short sequences are
 * packed together whole), linear experts up to MOE_LINEAR_GROUP_ROWS (their rows()
 * rebuilds the key state once per call). The rows a task actually gathers are also
 * bounded by the capacity, which bounds its scratch. */
#define MOE_GROUP_ROWS 2048
#define MOE_LINEAR_GROUP_ROWS 4096
/* Sequences (or tile groups) one expert task covers at most. */
#define MOE_MAX_UNITS 64
/* Keys per K/V projection task. */
#define MOE_KV_ROWS 512

typedef struct moe_state {
	rva_attention **experts;
	size_t count;
	float *wq, *wo;              /* experts x dim x dim, packed */
	float *wk, *wv;              /* nkv x kv_dim x kv_dim, packed */
	size_t nkv;                  /* 1 (shared K/V projections) or experts */
	const float **lists;         /* 2 * experts + 2 * nkv pointers into the above: the
	                              * normalised config's matrix lists */
} moe_state;

static rva_mechanism expert_mechanism(rva_expert_kind kind, size_t e) {
	static const rva_mechanism mixed[3] = {RVA_MECH_MULTI_HEAD, RVA_MECH_HYPERBOLIC,
	                                       RVA_MECH_LINEAR};
	switch (kind) {
	case RVA_EXPERTS_STANDARD: return RVA_MECH_MULTI_HEAD;
	case RVA_EXPERTS_HYPERBOLIC: return RVA_MECH_HYPERBOLIC;
	case RVA_EXPERTS_LINEAR: return RVA_MECH_LINEAR;
	default: return mixed[e % 3];
	}
}

static void destroy(rva_attention *att) {
	moe_state *ms = att->state;
	if (!ms)
		return;
	if (ms->experts)
		for (size_t e = 0; e < ms->count; e++)
			rva_attention_destroy(ms->experts[e]);
	rva__free(ms->experts);
	rva__free(ms->wq);
	rva__free(ms->wo);
	rva__free(ms->wk);
	rva__free(ms->wv);
	rva__free(ms->lists);
	rva__free(ms);
	att->state = NULL;
}

/*
 * Fills *dst with count matrices of rows x cols floats (packed): a checked copy of the
 * caller's list (non-NULL pointers, stride >= cols, finite values), or seeded
 * N(0, 1/rows) draws, matrix m from hash(seed, tag, m).
 */
static rva_status load_matrices(float **dst, const rva_matrix_list *src, size_t count,
                                size_t rows, size_t cols, uint64_t seed, uint64_t tag,
                                const char *what) {
	size_t per, bytes;
	if (!rva__mul_ok(rows, cols, &per) || !rva__mul_ok(per, sizeof(float), &bytes))
		return rva__fail(RVA_EOVERFLOW, "moe: %s of %zu x %zu overflows", what, rows, cols);
	rva_status st = rva__alloc_array((void **)dst, count, bytes, what);
	if (st != RVA_OK)
		return st;
	float *w = *dst;
	if (src && src->data) {
		size_t ld = src->stride ? src->stride : cols;
		if (ld < cols)
			return rva__fail(RVA_EDIM, "moe: %s stride %zu is narrower than its %zu "
			                 "columns", what, src->stride, cols);
		for (size_t m = 0; m < count; m++) {
			const float *a = src->data[m];
			if (!a)
				return rva__fail(RVA_ENULL, "moe: %s[%zu] is NULL", what, m);
			for (size_t i = 0; i < rows; i++)
				for (size_t j = 0; j < cols; j++) {
					float x = a[i * ld + j];
					if (!isfinite(x))
						return rva__fail(RVA_ERANGE, "moe: %s[%zu][%zu][%zu] = %g is not "
						                 "finite", what, m, i, j, (double)x);
					w[m * per + i * cols + j] = x;
				}
		}
		return RVA_OK;
	}
	double sd = 1.0 / sqrt((double)rows);
	for (size_t m = 0; m < count; m++) {
		rva__rng rng;
		rva__rng_seed(&rng, rva__hash3(seed, tag, m));
		for (size_t i = 0; i < per; i++)
			w[m * per + i] = (float)(rva__rng_normal(&rng) * sd);
	}
	return RVA_OK;
}

static rva_status build_router(rva_attention *att) {
	rva_config *c = &att->cfg;
	size_t E = c->experts, dim = c->dim;
	float *w;
	rva_status st = rva__alloc_array((void **)&w, E, dim * sizeof(float), "moe router weights");
	if (st != RVA_OK)
		return st;
	att->router_weights = w;
	if (c->router_weights) {
		size_t ld = c->router_stride ? c->router_stride : dim;
		if (ld < dim)
			return rva__fail(RVA_EDIM, "moe: router_stride %zu is narrower than dim %zu",
			                 c->router_stride, dim);
		for (size_t e = 0; e < E; e++)
			for (size_t d = 0; d < dim; d++) {
				float x = c->router_weights[e * ld + d];
				if (!isfinite(x))
					return rva__fail(RVA_ERANGE, "moe: router_weights[%zu][%zu] = %g is not "
					                 "finite", e, d, (double)x);
				w[e * dim + d] = x;
			}
	} else {
		rva__rng rng;
		rva__rng_seed(&rng, rva__hash3(c->seed, MOE_ROUTER_INIT_TAG, 0));
		double sd = 1.0 / sqrt((double)dim);
		for (size_t i = 0; i < E * dim; i++)
			w[i] = (float)(rva__rng_normal(&rng) * sd);
	}
	c->router_weights = w;
	c->router_stride = dim;
	return RVA_OK;
}

static rva_status build(rva_attention *att) {
	rva_config *c = &att->cfg;
	size_t E = c->experts, dim = c->dim, kvd = att->kv_dim;
	rva_status st;
	if ((unsigned)c->normalize_gates >= RVA_GATES_COUNT)
		return rva__fail(RVA_EINVAL, "moe: invalid normalize_gates value %d",
		                 (int)c->normalize_gates);
	if ((unsigned)c->capacity_scope >= RVA_CAPACITY_COUNT)
		return rva__fail(RVA_EINVAL, "moe: invalid capacity_scope value %d",
		                 (int)c->capacity_scope);
	if ((unsigned)c->kv_projection >= RVA_MOE_KV_COUNT)
		return rva__fail(RVA_EINVAL, "moe: invalid kv_projection value %d",
		                 (int)c->kv_projection);
	if (c->normalize_gates == RVA_GATES_AUTO)
		c->normalize_gates = c->top_k > 1 ? RVA_GATES_NORMALIZED : RVA_GATES_RAW;
	if ((st = build_router(att)) != RVA_OK)
		return st;

	moe_state *ms = rva__calloc(1, sizeof *ms);
	if (!ms)
		return rva__fail(RVA_ENOMEM, "moe: cannot allocate the state");
	att->state = ms;
	ms->nkv = c->kv_projection == RVA_MOE_KV_PER_EXPERT ? E : 1;
	if ((st = load_matrices(&ms->wq, &c->expert_wq, E, dim, dim, c->seed, MOE_WQ_TAG,
	                        "expert_wq")) != RVA_OK ||
	    (st = load_matrices(&ms->wo, &c->expert_wo, E, dim, dim, c->seed, MOE_WO_TAG,
	                        "expert_wo")) != RVA_OK ||
	    (st = load_matrices(&ms->wk, &c->expert_wk, ms->nkv, kvd, kvd, c->seed, MOE_WK_TAG,
	                        "expert_wk")) != RVA_OK ||
	    (st = load_matrices(&ms->wv, &c->expert_wv, ms->nkv, kvd, kvd, c->seed, MOE_WV_TAG,
	                        "expert_wv")) != RVA_OK)
		return st;
	/* The normalised config points to the attention's own copies. */
	if ((st = rva__alloc_array((void **)&ms->lists, 2 * (E + ms->nkv), sizeof(float *),
	                           "moe weight lists")) != RVA_OK)
		return st;
	const float **lq = ms->lists, **lo = lq + E, **lk = lo + E, **lv = lk + ms->nkv;
	for (size_t e = 0; e < E; e++) {
		lq[e] = ms->wq + e * dim * dim;
		lo[e] = ms->wo + e * dim * dim;
	}
	for (size_t e = 0; e < ms->nkv; e++) {
		lk[e] = ms->wk + e * kvd * kvd;
		lv[e] = ms->wv + e * kvd * kvd;
	}
	c->expert_wq = (rva_matrix_list){lq, dim};
	c->expert_wo = (rva_matrix_list){lo, dim};
	c->expert_wk = (rva_matrix_list){lk, kvd};
	c->expert_wv = (rva_matrix_list){lv, kvd};

	ms->experts = rva__calloc(E, sizeof *ms->experts);
	if (!ms->experts)
		return rva__fail(RVA_ENOMEM, "moe: cannot allocate %zu experts", E);
	ms->count = E;
	for (size_t e = 0; e < E; e++) {
		rva_config base = *c;
		base.seed = rva__hash3(c->seed, MOE_EXPERT_SEED_TAG, e);
		base.expert_wq = base.expert_wo = base.expert_wk = base.expert_wv =
			(rva_matrix_list){NULL, 0};
		rva_mechanism m = expert_mechanism(c->expert_kind, e);
		if ((st = rva__build_variant(&base, m, &ms->experts[e])) != RVA_OK) {
			char why[256];
			snprintf(why, sizeof why, "%s", rva_last_error());
			return rva__fail(st, "moe: expert %zu (%s): %s", e, rva_mechanism_name(m), why);
		}
		if (!ms->experts[e]->ops->rows || !ms->experts[e]->ops->rows_scratch)
			return rva__fail(RVA_EUNSUPPORTED, "moe: expert %zu: %s attention cannot serve "
			                 "as an expert (no row computation)", e, rva_mechanism_name(m));
	}
	return RVA_OK;
}

/* ---- planning ------------------------------------------------------------------------- */

typedef struct moe_tile {
	uint32_t seq;       /* sequence */
	uint32_t qt;        /* query tile within it */
	size_t tok;         /* first token */
	size_t n;           /* rows */
} moe_tile;

typedef struct moe_job {
	const rva_attention *att;
	const moe_state *ms;
	const rva_seq *seqs;
	size_t nseq;
	rva_runtime rt;
	uint32_t stream;
	rva__router router;
	size_t E, k, dim, kvd, qb;
	bool per_batch;
	size_t ntiles;
	moe_tile *tiles;    /* in token order */
	size_t *tile0;      /* per sequence: its first tile */
	uint32_t *choice;   /* tokens x k */
	float *weight;      /* tokens x k: gates */
	uint8_t *kept;      /* tokens x k: 1 when the expert processes the pair */
	uint8_t *routed;    /* per tile: its router task ran */
	double *psum;       /* tiles x E: sums of router probabilities */
	float *eout;        /* tokens x k x dim: expert outputs (projected by W_o) */
	float **kp, **vp;   /* per sequence: K W_k and V W_v, nkv x nk x kv_dim each */
	size_t *seq_cap;    /* per sequence: its capacity (per-sequence scope) */
	size_t batch_cap;   /* the job's capacity (per-batch scope) */
	size_t *assigned;   /* nseq x E: pairs routed to e before capacity */
	size_t *processed;  /* nseq x E: pairs e processes */
	size_t *dropped;    /* per sequence: dropped pairs */
	struct moe_unit *units;   /* expert-task units (see plan_experts) */
	struct moe_group *groups; /* expert-task groups */
	uint64_t phase_ns[4];  /* router, assign, expert (+ projections), combine (atomic) */
	rva_status (*prev_finish)(void *, const rva_status *, size_t);
	void *prev_ctx;
} moe_job;

static rva_status router_body(const rva__task *t, rva__exec_ctx *x) {
	moe_job *j = (moe_job *)t->ctx;
	const moe_tile *tl = &j->tiles[t->a];
	const rva_seq *s = &j->seqs[tl->seq];
	size_t E = j->E, k = j->k;
	size_t jit = rva__router_scratch(&j->router, tl->n,
	                                 rva__router_jitter_active(&j->router, &j->rt));
	float *probs = (float *)((unsigned char *)x->scratch + jit);
	rva__router_rows(&j->router, &j->rt, j->stream, tl->seq, s->q, s->q_stride,
	                 (size_t)tl->qt * j->qb, tl->n, probs, j->choice + tl->tok * k,
	                 j->weight + tl->tok * k, x->scratch);
	double *ps = j->psum + (size_t)t->a * E;
	for (size_t i = 0; i < tl->n; i++)
		for (size_t e = 0; e < E; e++)
			ps[e] += probs[i * E + e];
	j->routed[t->a] = 1;
	return RVA_OK;
}

/* GShard assignment of the routed tiles [t0, t1) with capacity cap: all first choices
 * in token order, then all second choices, ...; counts per sequence. */
static void assign(moe_job *j, size_t t0, size_t t1, size_t cap) {
	size_t E = j->E, k = j->k;
	size_t held[RVA_MOE_MAX_EXPERTS] = {0};
	for (size_t r = 0; r < k; r++)
		for (size_t i = t0; i < t1; i++) {
			const moe_tile *tl = &j->tiles[i];
			if (!j->routed[i])
				continue;
			size_t *as = j->assigned + (size_t)tl->seq * E, *pr = j->processed + (size_t)tl->seq * E;
			for (size_t tok = tl->tok; tok < tl->tok + tl->n; tok++) {
				size_t slot = tok * k + r;
				uint32_t e = j->choice[slot];
				as[e]++;
				if (held[e] < cap) {
					held[e]++;
					pr[e]++;
					j->kept[slot] = 1;
				} else {
					j->kept[slot] = 0;
					j->dropped[tl->seq]++;
				}
			}
		}
}

/* Per-batch scope: one task for the whole job, after every router task. */
static rva_status capacity_batch_body(const rva__task *t, rva__exec_ctx *x) {
	(void)x;
	moe_job *j = (moe_job *)t->ctx;
	size_t tokens = 0;
	for (size_t i = 0; i < j->ntiles; i++)
		if (j->routed[i])
			tokens += j->tiles[i].n;
	j->batch_cap = rva__moe_capacity(j->att->cfg.expert_capacity, tokens, j->k, j->E);
	assign(j, 0, j->ntiles, j->batch_cap);
	return RVA_OK;
}

/* Per-sequence scope: one task per sequence, after its router tasks. */
static rva_status capacity_seq_body(const rva__task *t, rva__exec_ctx *x) {
	(void)x;
	moe_job *j = (moe_job *)t->ctx;
	const rva_seq *s = &j->seqs[t->seq];
	size_t t0 = j->tile0[t->seq], t1 = t0 + rva__div_up(s->nq, j->qb);
	j->seq_cap[t->seq] = rva__moe_capacity(j->att->cfg.expert_capacity, s->nq, j->k, j->E);
	assign(j, t0, t1, j->seq_cap[t->seq]);
	return RVA_OK;
}

/* K/V projection task: a = projection index (0 shared, else the expert), b = first key,
 * c = keys. Per expert, skipped when the expert processes no token of the sequence. */
static rva_status kvproj_body(const rva__task *t, rva__exec_ctx *x) {
	(void)x;
	moe_job *j = (moe_job *)t->ctx;
	const moe_state *ms = j->ms;
	const rva_seq *s = &j->seqs[t->seq];
	size_t kvd = j->kvd, m = t->a, k0 = t->b, n = t->c;
	if (ms->nkv > 1 && j->processed[(size_t)t->seq * j->E + m] == 0)
		return RVA_OK;
	size_t off = (m * s->nk + k0) * kvd;
	rva__sgemm(false, false, n, kvd, kvd, 1.0f, RVA__F32(s->k) + k0 * s->k_stride, s->k_stride,
	           ms->wk + m * kvd * kvd, kvd, 0.0f, j->kp[t->seq] + off, kvd);
	rva__sgemm(false, false, n, kvd, kvd, 1.0f, RVA__F32(s->v) + k0 * s->v_stride, s->v_stride,
	           ms->wv + m * kvd * kvd, kvd, 0.0f, j->vp[t->seq] + off, kvd);
	return RVA_OK;
}

/* A unit of an expert task: query tiles [t0, t0 + ntl) of sequence seq. */
typedef struct moe_unit {
	uint32_t seq;
	uint32_t t0, ntl;
} moe_unit;

/* An expert task: units [u0, u0 + nu) of j->units (ascending sequences), at most
 * `bound` query rows and `mmax` gathered rows in all. */
typedef struct moe_group {
	uint32_t u0, nu;
	size_t bound, mmax;
} moe_group;

/* Scratch of an expert task: row list and slots (bound entries), three mmax x dim
 * buffers, then the expert's own. */
static size_t expert_scratch_head(size_t dim, size_t bound, size_t mmax) {
	return rva__round_up(bound * sizeof(uint32_t), RVA__ALIGN) +
	       rva__round_up(bound * sizeof(size_t), RVA__ALIGN) +
	       3 * rva__round_up(mmax * dim * sizeof(float), RVA__ALIGN);
}

static size_t group_rows(const rva_attention *ex) {
	return ex->cfg.mechanism == RVA_MECH_LINEAR ? MOE_LINEAR_GROUP_ROWS : MOE_GROUP_ROWS;
}

/*
 * Expert task: a = expert, b = its group in j->groups. Gathers the rows the expert keeps
 * in every unit, projects them all at once (x W_q[e], one sgemm), runs the expert's
 * rows() per sequence on its slice, projects the results (W_o[e], one sgemm) and
 * scatters them to the per-(token, rank) outputs. A row's numbers do not depend on the
 * other rows of the sgemm (each output element is the same k-ordered dot product), so
 * grouping sequences keeps the output batch-invariant.
 */
static rva_status expert_body(const rva__task *t, rva__exec_ctx *x) {
	moe_job *j = (moe_job *)t->ctx;
	const moe_state *ms = j->ms;
	const moe_group *gr = &j->groups[t->b];
	size_t e = t->a, k = j->k, dim = j->dim, kvd = j->kvd;
	unsigned char *p = x->scratch;
	uint32_t *rows = (uint32_t *)p;
	p += rva__round_up(gr->bound * sizeof(uint32_t), RVA__ALIGN);
	size_t *slots = (size_t *)p;
	p += rva__round_up(gr->bound * sizeof(size_t), RVA__ALIGN);
	size_t ustart[MOE_MAX_UNITS + 1]; /* first gathered row of each unit */
	size_t m = 0;
	for (size_t u = 0; u < gr->nu; u++) {
		const moe_unit *un = &j->units[gr->u0 + u];
		ustart[u] = m;
		size_t first = j->tile0[un->seq] + un->t0;
		for (size_t ti = first; ti < first + un->ntl; ti++) {
			const moe_tile *tl = &j->tiles[ti];
			if (!j->routed[ti])
				continue;
			size_t row0 = (size_t)tl->qt * j->qb;
			for (size_t i = 0; i < tl->n; i++)
				for (size_t r = 0; r < k; r++) {
					size_t slot = (tl->tok + i) * k + r;
					if (j->choice[slot] == e) {
						if (j->kept[slot]) {
							rows[m] = (uint32_t)(row0 + i);
							slots[m++] = slot;
						}
						break; /* an expert appears once among a token's choices */
					}
				}
		}
	}
	ustart[gr->nu] = m;
	if (m == 0)
		return RVA_OK;
	float *xb = (float *)p;
	p += rva__round_up(gr->mmax * dim * sizeof(float), RVA__ALIGN);
	float *qp = (float *)p;
	p += rva__round_up(gr->mmax * dim * sizeof(float), RVA__ALIGN);
	float *ab = (float *)p;
	p += rva__round_up(gr->mmax * dim * sizeof(float), RVA__ALIGN);

	for (size_t u = 0; u < gr->nu; u++) {
		const rva_seq *s = &j->seqs[j->units[gr->u0 + u].seq];
		for (size_t i = ustart[u]; i < ustart[u + 1]; i++)
			memcpy(xb + i * dim, RVA__F32(s->q) + (size_t)rows[i] * s->q_stride, dim * sizeof(float));
	}
	rva__sgemm(false, false, m, dim, dim, 1.0f, xb, dim, ms->wq + e * dim * dim, dim, 0.0f,
	           qp, dim);
	const rva_attention *ex = ms->experts[e];
	/* Each expert and each pipeline stage draws its own dropout stream. */
	rva_runtime rt = j->rt;
	rt.seed = rva__hash3(j->rt.seed, j->stream, e);
	for (size_t u = 0; u < gr->nu; u++) {
		size_t r0 = ustart[u], n = ustart[u + 1] - r0;
		if (n == 0)
			continue;
		uint32_t sq = j->units[gr->u0 + u].seq;
		const rva_seq *s = &j->seqs[sq];
		size_t off = (ms->nkv > 1 ? e : 0) * s->nk * kvd;
		rva_seq ps = *s;
		ps.q = qp + r0 * dim;
		ps.q_stride = dim;
		ps.k = j->kp[sq] + off;
		ps.v = j->vp[sq] + off;
		ps.k_stride = ps.v_stride = kvd;
		ps.out = NULL;
		rva_status st = ex->ops->rows(ex, &ps, sq, &rt, rows + r0, n, ab + r0 * dim, dim, p);
		if (st != RVA_OK)
			return rva__propagate(st);
	}
	rva__sgemm(false, false, m, dim, dim, 1.0f, ab, dim, ms->wo + e * dim * dim, dim, 0.0f,
	           xb, dim);
	for (size_t i = 0; i < m; i++)
		memcpy(j->eout + slots[i] * dim, xb + i * dim, dim * sizeof(float));
	return RVA_OK;
}

static rva_status combine_body(const rva__task *t, rva__exec_ctx *x) {
	(void)x;
	moe_job *j = (moe_job *)t->ctx;
	size_t k = j->k, dim = j->dim;
	const moe_tile *tl = &j->tiles[j->tile0[t->seq] + t->b];
	const rva_seq *s = &j->seqs[t->seq];
	for (size_t i = 0; i < tl->n; i++) {
		float *out = RVA__F32(s->out) + ((size_t)tl->qt * j->qb + i) * s->out_stride;
		memset(out, 0, dim * sizeof(float));
		for (size_t r = 0; r < k; r++) {
			size_t slot = (tl->tok + i) * k + r;
			if (!j->kept[slot])
				continue;
			float w = j->weight[slot];
			const float *eo = j->eout + slot * dim;
			for (size_t d = 0; d < dim; d++)
				out[d] += w * eo[d];
		}
	}
	return RVA_OK;
}

/* Each phase's tasks are timed (summed over workers) for the MoE statistics. */
#define MOE_TIMED(name, phase)                                                      \
	static rva_status name##_task(const rva__task *t, rva__exec_ctx *x) {           \
		uint64_t t0 = rva__now_ns();                                                \
		rva_status st = name##_body(t, x);                                          \
		__atomic_fetch_add(&((moe_job *)t->ctx)->phase_ns[phase], rva__now_ns() - t0, \
		                   __ATOMIC_RELAXED);                                       \
		return st;                                                                  \
	}
MOE_TIMED(router, 0)
MOE_TIMED(capacity_batch, 1)
MOE_TIMED(capacity_seq, 1)
MOE_TIMED(kvproj, 2)
MOE_TIMED(expert, 2)
MOE_TIMED(combine, 3)
#undef MOE_TIMED

/* Reduces the per-sequence counts into the caller's statistics. */
static rva_status moe_finish(void *ctx, const rva_status *seq_status, size_t nseq) {
	moe_job *j = ctx;
	rva_status st = RVA_OK;
	if (j->prev_finish)
		st = j->prev_finish(j->prev_ctx, seq_status, nseq);
	rva_moe_stats *ms = j->rt.moe_stats, r;
	memset(&r, 0, sizeof r);
	size_t E = j->E;
	r.experts = E;
	for (size_t s = 0; s < j->nseq; s++) {
		bool any = false;
		for (size_t e = 0; e < E; e++) {
			r.assigned[e] += j->assigned[s * E + e];
			r.processed[e] += j->processed[s * E + e];
			any |= j->assigned[s * E + e] > 0;
		}
		r.dropped += j->dropped[s];
		if (any && !j->per_batch)
			r.capacity += j->seq_cap[s];
	}
	if (j->per_batch)
		r.capacity = j->batch_cap;
	for (size_t i = 0; i < j->ntiles; i++)
		if (j->routed[i])
			r.tokens += j->tiles[i].n;
	double loss = 0.0;
	if (r.tokens > 0)
		for (size_t e = 0; e < E; e++) {
			double p = 0.0;
			for (size_t i = 0; i < j->ntiles; i++)
				if (j->routed[i])
					p += j->psum[i * E + e];
			loss += (double)r.assigned[e] / (double)r.tokens * (p / (double)r.tokens);
		}
	r.load_balancing_loss = (double)E * loss;
	r.router_ns = j->phase_ns[0];
	r.assign_ns = j->phase_ns[1];
	r.expert_ns = j->phase_ns[2];
	r.combine_ns = j->phase_ns[3];
	*ms = r;
	return st;
}

static bool planned(const rva__plan_io *io, size_t s) {
	return io->seq_status[s] == RVA_OK && io->seqs[s].nq > 0;
}

#define MOE_ALLOC(ptr, n)                                                 \
	do {                                                                  \
		if (!((ptr) = rva__graph_alloc_array(g, (n) ? (n) : 1, sizeof *(ptr)))) \
			return RVA_ENOMEM;                                            \
	} while (0)

/* Useful FLOPs of one query row through expert e: its attention's share plus the W_q
 * and W_o products. */
static double expert_row_flops(const moe_job *j, const rva_attention *ex, const rva_seq *s) {
	return ex->ops->flops(ex, s) / (double)s->nq + 4.0 * (double)j->dim * (double)j->dim;
}

/* Task ids a sequence's expert tasks depend on or feed. */
typedef struct moe_ids {
	uint32_t *cap;      /* per sequence: its capacity task (or the job's) */
	uint32_t *kvjoin;   /* nseq x nkv: K/V projections of (sequence, projection) done */
	uint32_t *combine;  /* per tile: its combine task */
	size_t *cap_bound;  /* per sequence: an upper bound of any expert's kept rows */
} moe_ids;

/* The capacity of sequence s: its own capacity task (per-sequence scope), or the job's
 * (ids->cap[s] on entry, per batch); ids->cap_bound[s] bounds any expert's kept rows. */
static rva_status plan_capacity(moe_job *j, rva__graph *g, const rva_seq *seq, size_t s,
                                moe_ids *ids, size_t tokens) {
	const double cf = j->att->cfg.expert_capacity;
	if (ids->cap[s] != RVA__NO_TASK) {
		ids->cap_bound[s] = rva__moe_capacity(cf, tokens, j->k, j->E);
		return RVA_OK;
	}
	ids->cap_bound[s] = rva__moe_capacity(cf, seq->nq, j->k, j->E);
	return rva__graph_add(g, capacity_seq_task, j, (uint32_t)s, 0, 0, 0, 0,
	                      (float)(seq->nq * j->k), &ids->cap[s]);
}

/* K/V projections of sequence s into the arena, MOE_KV_ROWS keys a task: one join per
 * projection feeds the experts. Shared projections start once the sequence may start;
 * per-expert ones wait for the capacity (which tells whether an expert runs at all). */
static rva_status plan_kv_projections(moe_job *j, rva__plan_io *io, rva__graph *g,
                                      const rva_seq *seq, size_t s, moe_ids *ids) {
	const moe_state *ms = j->ms;
	uint32_t start = ms->nkv > 1 ? ids->cap[s] : rva__plan_after(io, s), id;
	size_t kvn;
	rva_status st;
	if (!rva__mul_ok(ms->nkv, seq->nk, &kvn) || !rva__mul_ok(kvn, j->kvd, &kvn))
		return rva__fail(RVA_EOVERFLOW, "moe: projected keys overflow");
	/* written in full by the projection tasks, which first-touch them on their node */
	if (!(j->kp[s] = rva__graph_alloc_untouched(g, kvn, sizeof(float))) ||
	    !(j->vp[s] = rva__graph_alloc_untouched(g, kvn, sizeof(float))))
		return RVA_ENOMEM;
	for (size_t m = 0; m < ms->nkv; m++) {
		uint32_t *kj = &ids->kvjoin[s * ms->nkv + m];
		if ((st = rva__graph_add_join(g, (uint32_t)s, kj)) != RVA_OK)
			return st;
		for (size_t k0 = 0; k0 < seq->nk; k0 += MOE_KV_ROWS) {
			size_t n = rva__min(MOE_KV_ROWS, seq->nk - k0);
			float cost = (float)(4.0 * (double)n * (double)j->kvd * (double)j->kvd);
			if ((st = rva__graph_add(g, kvproj_task, j, (uint32_t)s, (uint32_t)m,
			                         (uint32_t)k0, (uint32_t)n, 0, cost, &id)) != RVA_OK ||
			    (st = rva__graph_edge(g, start, id)) != RVA_OK ||
			    (st = rva__graph_edge(g, id, *kj)) != RVA_OK)
				return st;
		}
	}
	return RVA_OK;
}

/* The query tiles of sequence s (j->tiles from *ti_io, tokens from *tok_io): per tile a
 * router task (before the capacity) and a combine task (before the sequence's join). */
static rva_status plan_tiles(moe_job *j, rva__plan_io *io, rva__graph *g, const rva_seq *seq,
                             size_t s, uint32_t join, moe_ids *ids, size_t *ti_io,
                             size_t *tok_io) {
	uint32_t after = rva__plan_after(io, s), id;
	size_t nt = rva__div_up(seq->nq, j->qb), ti = *ti_io, tok = *tok_io;
	bool jitter = rva__router_jitter_active(&j->router, &j->rt);
	rva_status st;
	for (size_t qt = 0; qt < nt; qt++, ti++) {
		size_t n = rva__min(j->qb, seq->nq - qt * j->qb);
		j->tiles[ti] = (moe_tile){.seq = (uint32_t)s, .qt = (uint32_t)qt, .tok = tok, .n = n};
		tok += n;
		rva__graph_need_scratch(g, rva__router_scratch(&j->router, n, jitter) +
		                               n * j->E * sizeof(float));
		float rcost = (float)(2.0 * (double)n * (double)j->dim * (double)j->E);
		if ((st = rva__graph_add(g, router_task, j, (uint32_t)s, (uint32_t)ti, 0, 0, 0, rcost,
		                         &id)) != RVA_OK ||
		    (st = rva__graph_edge(g, after, id)) != RVA_OK ||
		    (st = rva__graph_edge(g, id, ids->cap[s])) != RVA_OK ||
		    (st = rva__graph_add(g, combine_task, j, (uint32_t)s, 0, (uint32_t)qt, 0, 0,
		                         (float)(n * j->k * j->dim), &ids->combine[ti])) != RVA_OK ||
		    (st = rva__graph_edge(g, ids->combine[ti], join)) != RVA_OK)
			return st;
	}
	*ti_io = ti;
	*tok_io = tok;
	return RVA_OK;
}

/* The tasks of one planned sequence s: capacity (per-sequence scope), K/V projections,
 * routers and combines. The job's capacity task is ids->cap[s] on entry (per batch) or
 * RVA__NO_TASK. */
static rva_status plan_seq(moe_job *j, rva__plan_io *io, rva__graph *g, size_t s,
                           uint32_t join, moe_ids *ids, size_t *ti_io, size_t *tok_io,
                           size_t tokens) {
	const rva_seq *seq = &io->seqs[s];
	rva_status st;
	j->tile0[s] = *ti_io;
	if ((st = plan_capacity(j, g, seq, s, ids, tokens)) != RVA_OK ||
	    (st = plan_kv_projections(j, io, g, seq, s, ids)) != RVA_OK)
		return st;
	return plan_tiles(j, io, g, seq, s, join, ids, ti_io, tok_io);
}

/* Adds the expert task of group gi of expert e (units already in j->units). */
static rva_status add_expert_task(moe_job *j, rva__graph *g, const moe_ids *ids, size_t e,
                                  size_t gi) {
	const moe_state *ms = j->ms;
	const rva_attention *ex = ms->experts[e];
	moe_group *gr = &j->groups[gi];
	const moe_unit *un = &j->units[gr->u0];
	size_t need_ex = 0;
	double cost = 0.0;
	gr->bound = gr->mmax = 0;
	for (size_t u = 0; u < gr->nu; u++) {
		const rva_seq *seq = &j->seqs[un[u].seq];
		size_t rows = rva__min(seq->nq - (size_t)un[u].t0 * j->qb, (size_t)un[u].ntl * j->qb);
		size_t mm = rva__min(rows, ids->cap_bound[un[u].seq]);
		gr->bound += rows;
		gr->mmax += mm;
		need_ex = rva__max(need_ex, ex->ops->rows_scratch(ex, seq, rva__max(mm, 1)));
		cost += expert_row_flops(j, ex, seq) * (double)rows * (double)j->k / (double)j->E;
	}
	size_t need = expert_scratch_head(j->dim, gr->bound, rva__max(gr->mmax, 1));
	if (!rva__add_ok(need, need_ex, &need))
		return rva__fail(RVA_EOVERFLOW, "moe: expert scratch overflows");
	rva__graph_need_scratch(g, need);
	uint32_t id, seq = gr->nu == 1 ? un[0].seq : RVA__NO_SEQ;
	rva_status st;
	if ((st = rva__graph_add(g, expert_task, j, seq, (uint32_t)e, (uint32_t)gi, 0, 0,
	                         (float)cost, &id)) != RVA_OK)
		return st;
	for (size_t u = 0; u < gr->nu; u++) {
		size_t s = un[u].seq;
		if ((u == 0 || !j->per_batch) &&
		    (st = rva__graph_edge(g, ids->cap[s], id)) != RVA_OK)
			return st;
		if ((st = rva__graph_edge(g, ids->kvjoin[s * ms->nkv + (ms->nkv > 1 ? e : 0)], id)) !=
		    RVA_OK)
			return st;
		size_t first = j->tile0[s] + un[u].t0;
		for (size_t ti = first; ti < first + un[u].ntl; ti++)
			if ((st = rva__graph_edge(g, id, ids->combine[ti])) != RVA_OK)
				return st;
	}
	return RVA_OK;
}

/* One task group per run of `per` query tiles of sequence s, a long sequence (more tiles
 * than a group holds), for expert e. */
static rva_status plan_long_seq(moe_job *j, rva__graph *g, const moe_ids *ids, size_t e,
                                size_t s, size_t nt, size_t per, size_t *nunits,
                                size_t *ngroups) {
	rva_status st;
	for (size_t t0 = 0; t0 < nt; t0 += per) {
		j->units[*nunits] = (moe_unit){(uint32_t)s, (uint32_t)t0,
		                               (uint32_t)rva__min(per, nt - t0)};
		j->groups[*ngroups] = (moe_group){.u0 = (uint32_t)*nunits, .nu = 1};
		(*nunits)++;
		if ((st = add_expert_task(j, g, ids, e, (*ngroups)++)) != RVA_OK)
			return st;
	}
	return RVA_OK;
}

/*
 * Expert tasks of every expert: a sequence longer than the group rows is cut into groups
 * of whole query tiles, each its own task; shorter sequences are packed whole, in
 * sequence order, into tasks of up to the group rows (and MOE_MAX_UNITS sequences). A
 * sequence is thus always computed in the same pieces, whatever its batch-mates.
 */
static rva_status plan_experts(moe_job *j, rva__plan_io *io, rva__graph *g,
                               const moe_ids *ids, size_t *nunits, size_t *ngroups) {
	rva_status st;
	for (size_t e = 0; e < j->E; e++) {
		size_t R = group_rows(j->ms->experts[e]), per = rva__max(1, R / j->qb);
		size_t rows_open = 0;
		moe_group *open = NULL; /* the group short sequences are being packed into */
		for (size_t s = 0; s < io->nseq; s++) {
			if (!planned(io, s))
				continue;
			const rva_seq *seq = &io->seqs[s];
			size_t nt = rva__div_up(seq->nq, j->qb);
			if (nt > per) {
				if ((st = plan_long_seq(j, g, ids, e, s, nt, per, nunits, ngroups)) != RVA_OK)
					return st;
				continue;
			}
			if (open && (rows_open + seq->nq > R || open->nu == MOE_MAX_UNITS)) {
				if ((st = add_expert_task(j, g, ids, e, (size_t)(open - j->groups))) != RVA_OK)
					return st;
				open = NULL;
			}
			if (!open) {
				open = &j->groups[(*ngroups)++];
				*open = (moe_group){.u0 = (uint32_t)*nunits, .nu = 0};
				rows_open = 0;
			}
			j->units[(*nunits)++] = (moe_unit){(uint32_t)s, 0, (uint32_t)nt};
			open->nu++;
			rows_open += seq->nq;
		}
		if (open && (st = add_expert_task(j, g, ids, e, (size_t)(open - j->groups))) != RVA_OK)
			return st;
	}
	return RVA_OK;
}

/* The job's fixed fields from the attention and the plan's inputs. */
static void moe_job_init(moe_job *j, const rva_attention *att, const rva__plan_io *io) {
	const rva_config *c = &att->cfg;
	j->att = att;
	j->ms = att->state;
	j->seqs = io->seqs;
	j->nseq = io->nseq;
	j->rt = io->rt;
	j->stream = io->stream;
	j->E = c->experts;
	j->k = c->top_k;
	j->dim = c->dim;
	j->kvd = att->kv_dim;
	j->qb = c->query_block;
	j->per_batch = c->capacity_scope == RVA_CAPACITY_PER_BATCH;
	j->router = (rva__router){.w = att->router_weights, .experts = c->experts, .dim = c->dim,
	                          .top_k = c->top_k, .jitter = c->jitter_noise,
	                          .normalize = c->normalize_gates == RVA_GATES_NORMALIZED};
}

/* Tokens and query tiles of the planned sequences (overflow-checked). */
static rva_status count_tokens(const moe_job *j, const rva__plan_io *io, size_t *tokens,
                               size_t *ntiles) {
	*tokens = *ntiles = 0;
	for (size_t s = 0; s < io->nseq; s++)
		if (planned(io, s)) {
			if (!rva__add_ok(*tokens, io->seqs[s].nq, tokens))
				return rva__fail(RVA_EOVERFLOW, "moe: token count overflows");
			*ntiles += rva__div_up(io->seqs[s].nq, j->qb);
		}
	if (*ntiles > UINT32_MAX / RVA_MOE_MAX_EXPERTS)
		return rva__fail(RVA_EOVERFLOW, "moe: %zu query tiles are too many", *ntiles);
	return RVA_OK;
}

/* The job's arrays and the planner's task ids, in the graph's arena. */
static rva_status moe_job_alloc(moe_job *j, const rva__plan_io *io, rva__graph *g,
                                size_t tokens, size_t ntiles, moe_ids *ids) {
	size_t pairs, outs, per_seq, kvs;
	if (!rva__mul_ok(tokens, j->k, &pairs) || !rva__mul_ok(pairs, j->dim, &outs) ||
	    !rva__mul_ok(io->nseq, j->E, &per_seq) || !rva__mul_ok(io->nseq, j->ms->nkv, &kvs))
		return rva__fail(RVA_EOVERFLOW, "moe: %zu tokens x top_k %zu x dim %zu overflows",
		                 tokens, j->k, j->dim);
	j->ntiles = ntiles;
	MOE_ALLOC(j->tiles, ntiles);
	MOE_ALLOC(j->tile0, io->nseq);
	MOE_ALLOC(j->choice, pairs);
	MOE_ALLOC(j->weight, pairs);
	MOE_ALLOC(j->kept, pairs);
	MOE_ALLOC(j->routed, ntiles);
	/* expert tasks write every kept slot (first touch on their node); combine reads only
	 * kept slots */
	if (!(j->eout = rva__graph_alloc_untouched(g, outs ? outs : 1, sizeof *j->eout)))
		return RVA_ENOMEM;
	MOE_ALLOC(j->kp, io->nseq);
	MOE_ALLOC(j->vp, io->nseq);
	MOE_ALLOC(j->seq_cap, io->nseq);
	MOE_ALLOC(j->assigned, per_seq);
	MOE_ALLOC(j->processed, per_seq);
	MOE_ALLOC(j->dropped, io->nseq);
	size_t nunits_max = ntiles * j->E; /* a unit holds at least one tile */
	MOE_ALLOC(j->units, nunits_max);
	MOE_ALLOC(j->groups, nunits_max);
	if (!(j->psum = rva__graph_alloc_array(g, ntiles ? ntiles : 1, j->E * sizeof(double))))
		return RVA_ENOMEM;
	MOE_ALLOC(ids->cap, io->nseq);
	MOE_ALLOC(ids->kvjoin, kvs);
	MOE_ALLOC(ids->combine, ntiles);
	MOE_ALLOC(ids->cap_bound, io->nseq);
	return RVA_OK;
}

/* The MoE job graph: router -> capacity -> experts -> combine, per sequence a join (see
 * docs/ARCHITECTURE.md). */
static rva_status plan(const rva_attention *att, rva__plan_io *io, rva__graph *g) {
	moe_job *j;
	MOE_ALLOC(j, 1);
	moe_job_init(j, att, io);
	size_t tokens, ntiles;
	moe_ids ids;
	rva_status st;
	if ((st = count_tokens(j, io, &tokens, &ntiles)) != RVA_OK ||
	    (st = moe_job_alloc(j, io, g, tokens, ntiles, &ids)) != RVA_OK)
		return st;

	uint32_t cap_task = RVA__NO_TASK;
	if (j->per_batch &&
	    (st = rva__graph_add(g, capacity_batch_task, j, RVA__NO_SEQ, 0, 0, 0, 0,
	                         (float)(tokens * j->k + ntiles * j->E), &cap_task)) != RVA_OK)
		return st;
	size_t ti = 0, tok = 0;
	for (size_t s = 0; s < io->nseq; s++) {
		uint32_t join, after = rva__plan_after(io, s);
		if ((st = rva__graph_add_join(g, (uint32_t)s, &join)) != RVA_OK ||
		    (st = rva__graph_edge(g, after, join)) != RVA_OK)
			return st;
		io->done[s] = join;
		ids.cap[s] = cap_task;
		if (planned(io, s) &&
		    (st = plan_seq(j, io, g, s, join, &ids, &ti, &tok, tokens)) != RVA_OK)
			return st;
	}
	size_t nunits = 0, ngroups = 0;
	if ((st = plan_experts(j, io, g, &ids, &nunits, &ngroups)) != RVA_OK)
		return st;
	if (io->rt.moe_stats) {
		j->prev_finish = g->finish;
		j->prev_ctx = g->finish_ctx;
		g->finish = moe_finish;
		g->finish_ctx = j;
	}
	return RVA_OK;
}

/*
 * FLOPs of one sequence: the router GEMM (2 nq dim E); per query row and each of its k
 * experts, the W_q and W_o products (4 dim^2) and the average expert attention's share
 * (its own model, times k / E); the K and V projections (4 nk kv_dim^2, once when
 * shared, once per expert otherwise).
 */
static double flops(const rva_attention *att, const rva_seq *s) {
	const moe_state *ms = att->state;
	double nq = (double)s->nq, nk = (double)s->nk, dim = (double)att->cfg.dim;
	double kvd = (double)att->kv_dim, E = (double)att->cfg.experts, k = (double)att->cfg.top_k;
	if (s->nq == 0)
		return 0.0;
	double f = 2.0 * nq * dim * E + nq * k * 4.0 * dim * dim +
	           (double)ms->nkv * 4.0 * nk * kvd * kvd;
	double ex = 0.0;
	for (size_t e = 0; e < ms->count; e++)
		ex += ms->experts[e]->ops->flops(ms->experts[e], s);
	return f + ex * k / E;
}

const rva__mech_ops rva__moe_ops = {
	.mechanism = RVA_MECH_MOE,
	.build = build,
	.destroy = destroy,
	.plan = plan,
	.rows = NULL, /* MoE cannot be an expert */
	.rows_scratch = NULL,
	.flops = flops,
};

/* ---- accessors (attention.h) ---------------------------------------------------------- */

rva_status rva_attention_router(const rva_attention *att, const float **w, size_t *experts,
                                size_t *dim) {
	if (!att || !w || !experts || !dim)
		return rva__fail(RVA_ENULL, "rva_attention_router: NULL argument");
	if (att->cfg.mechanism != RVA_MECH_MOE || !att->router_weights)
		return rva__fail(RVA_EINVAL, "rva_attention_router: %s attention has no router",
		                 rva_mechanism_name(att->cfg.mechanism));
	*w = att->router_weights;
	*experts = att->cfg.experts;
	*dim = att->cfg.dim;
	return RVA_OK;
}

rva_status rva_attention_expert(const rva_attention *att, size_t e,
                                const rva_attention **expert) {
	if (!att || !expert)
		return rva__fail(RVA_ENULL, "rva_attention_expert: NULL argument");
	if (att->cfg.mechanism != RVA_MECH_MOE || !att->state)
		return rva__fail(RVA_EINVAL, "rva_attention_expert: %s attention has no experts",
		                 rva_mechanism_name(att->cfg.mechanism));
	const moe_state *ms = att->state;
	if (e >= ms->count)
		return rva__fail(RVA_ERANGE, "rva_attention_expert: expert %zu of %zu", e,
		                 ms->count);
	*expert = ms->experts[e];
	return RVA_OK;
}

rva_status rva_attention_moe_weights(const rva_attention *att, size_t e, const float **wq,
                                     const float **wo, const float **wk, const float **wv) {
	if (!att)
		return rva__fail(RVA_ENULL, "rva_attention_moe_weights: att is NULL");
	if (att->cfg.mechanism != RVA_MECH_MOE || !att->state)
		return rva__fail(RVA_EINVAL, "rva_attention_moe_weights: %s attention has no "
		                 "experts", rva_mechanism_name(att->cfg.mechanism));
	const moe_state *ms = att->state;
	if (e >= ms->count)
		return rva__fail(RVA_ERANGE, "rva_attention_moe_weights: expert %zu of %zu", e,
		                 ms->count);
	size_t dim = att->cfg.dim, kvd = att->kv_dim, kv = ms->nkv > 1 ? e : 0;
	if (wq)
		*wq = ms->wq + e * dim * dim;
	if (wo)
		*wo = ms->wo + e * dim * dim;
	if (wk)
		*wk = ms->wk + kv * kvd * kvd;
	if (wv)
		*wv = ms->wv + kv * kvd * kvd;
	return RVA_OK;
}

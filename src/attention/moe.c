/*
 * Mixture-of-experts attention (Switch Transformer / GShard routing, ANCHORS C.4) whose
 * experts are attention mechanisms.
 *
 * Build: the router weights (E x dim) are the config's copy, or a seeded draw
 * N(0, 1/dim) from cfg.seed stored in att->router_weights (so rva_attention_router
 * returns them). Expert e is built with rva__build_variant from the MoE config with
 * the mechanism of its kind (RVA_EXPERTS_MIXED: multi-head softmax, hyperbolic, linear
 * for e % 3 = 0, 1, 2) and its own seed hash(cfg.seed, e), so seeded experts (random
 * features, T5 tables) differ from one another.
 *
 * Semantics of one batch (all valid sequences of the job together):
 *   - tokens are the query rows of the valid sequences, in (sequence, row) order;
 *   - the router maps the query row x (dim floats; training mode with jitter_noise eps > 0:
 *     x times U(1 - eps, 1 + eps) elementwise) to p = softmax(W x) in fp32 and picks the
 *     top-k experts (ties to the lower index), gates renormalised over the k;
 *   - capacity per expert C = ceil(expert_capacity * tokens * k / E) (router.h:
 *     rva__moe_capacity for the rounding of the float factor);
 *   - assignment priority (GShard): every token's first choice in token order, then every
 *     second choice in token order, and so on. An expert that already holds C
 *     assignments drops the later ones: a dropped (token, expert) pair contributes exactly
 *     0 (the remaining gates are not renormalised);
 *   - output row = sum over the token's k choices in rank order of gate x expert output
 *     (the expert's rows() on that query row, against the whole sequence's keys); a token
 *     dropped by all its experts gets 0;
 *   - statistics (rt.moe_stats, written by the graph's finish hook): tokens, capacity,
 *     assigned[e] (before capacity), processed[e] (after), dropped (pairs), and the
 *     Switch load-balancing loss E * sum_e f_e P_e, f_e = assigned[e] / tokens (so
 *     sum f = k), P_e = the mean router probability of e.
 *
 * Job graph: router tasks per (sequence, query tile) -> one capacity-assignment task
 * (whole job) -> expert tasks per (expert, sequence, query tile) computing that tile's
 * rows kept by the expert -> combine tasks per (sequence, query tile) -> a join per
 * sequence. Routing tables and the per-(token, rank) expert outputs live in the job
 * arena (tokens * k * dim floats).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attention/attention_internal.h"
#include "attention/router.h"
#include "core/internal.h"

#define MOE_ROUTER_INIT_TAG 0x524F55544552494Eull /* "ROUTERIN" */
#define MOE_EXPERT_SEED_TAG 0x4558504552545345ull /* "EXPERTSE" */

typedef struct moe_state {
	rva_attention **experts;
	size_t count;
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
	for (size_t e = 0; e < ms->count; e++)
		rva_attention_destroy(ms->experts[e]);
	rva__free(ms->experts);
	rva__free(ms);
	att->state = NULL;
}

static rva_status build(rva_attention *att) {
	rva_config *c = &att->cfg;
	size_t E = c->experts, dim = c->dim;
	rva_status st;
	if (!att->router_weights) {
		float *w;
		if ((st = rva__alloc_array((void **)&w, E, dim * sizeof(float), "moe router weights")) !=
		    RVA_OK)
			return st;
		rva__rng rng;
		rva__rng_seed(&rng, rva__hash3(c->seed, MOE_ROUTER_INIT_TAG, 0));
		double sd = 1.0 / sqrt((double)dim);
		for (size_t i = 0; i < E * dim; i++)
			w[i] = (float)(rva__rng_normal(&rng) * sd);
		att->router_weights = w;
		c->router_weights = w;
	}
	moe_state *ms = rva__calloc(1, sizeof *ms);
	if (!ms)
		return rva__fail(RVA_ENOMEM, "moe: cannot allocate the state");
	att->state = ms;
	ms->experts = rva__calloc(E, sizeof *ms->experts);
	if (!ms->experts)
		return rva__fail(RVA_ENOMEM, "moe: cannot allocate %zu experts", E);
	ms->count = E;
	for (size_t e = 0; e < E; e++) {
		rva_config base = *c;
		base.seed = rva__hash3(c->seed, MOE_EXPERT_SEED_TAG, e);
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
	rva_runtime rt;
	uint32_t stream;
	rva__router router;
	size_t E, k, dim, qb;
	size_t ntiles;
	moe_tile *tiles;    /* in token order */
	size_t *tile0;      /* per sequence: its first tile */
	uint32_t *choice;   /* tokens x k */
	float *weight;      /* tokens x k */
	uint8_t *kept;      /* tokens x k: 1 when the expert processes the pair */
	uint8_t *routed;    /* per tile: its router task ran */
	double *psum;       /* tiles x E: sums of router probabilities */
	float *eout;        /* tokens x k x dim: expert outputs */
	rva_moe_stats stats;
	uint64_t phase_ns[4];  /* router, assign, expert, combine: summed task times (atomic) */
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

static rva_status capacity_body(const rva__task *t, rva__exec_ctx *x) {
	(void)x;
	moe_job *j = (moe_job *)t->ctx;
	rva_moe_stats *st = &j->stats;
	size_t E = j->E, k = j->k, tokens = 0;
	for (size_t i = 0; i < j->ntiles; i++)
		if (j->routed[i])
			tokens += j->tiles[i].n;
	size_t cap = rva__moe_capacity(j->att->cfg.expert_capacity, tokens, k, E);
	memset(st, 0, sizeof *st);
	st->experts = E;
	st->tokens = tokens;
	st->capacity = cap;
	/* GShard priority: all first choices in token order, then all second choices, ... */
	for (size_t r = 0; r < k; r++)
		for (size_t i = 0; i < j->ntiles; i++) {
			const moe_tile *tl = &j->tiles[i];
			if (!j->routed[i])
				continue;
			for (size_t tok = tl->tok; tok < tl->tok + tl->n; tok++) {
				size_t slot = tok * k + r;
				uint32_t e = j->choice[slot];
				st->assigned[e]++;
				if (st->processed[e] < cap) {
					st->processed[e]++;
					j->kept[slot] = 1;
				} else {
					j->kept[slot] = 0;
					st->dropped++;
				}
			}
		}
	double loss = 0.0;
	if (tokens > 0)
		for (size_t e = 0; e < E; e++) {
			double p = 0.0;
			for (size_t i = 0; i < j->ntiles; i++)
				if (j->routed[i])
					p += j->psum[i * E + e];
			loss += (double)st->assigned[e] / (double)tokens * (p / (double)tokens);
		}
	st->load_balancing_loss = (double)E * loss;
	return RVA_OK;
}

/* Scratch of an expert task over up to `rows` query rows: row list, gathered outputs,
 * then the expert's own. */
static size_t expert_scratch_head(const moe_job *j, size_t rows) {
	return rva__round_up(rows * sizeof(uint32_t), RVA__ALIGN) +
	       rva__round_up(rows * sizeof(size_t), RVA__ALIGN) +
	       rva__round_up(rows * j->dim * sizeof(float), RVA__ALIGN);
}

/* Expert task: a = expert, b = first query tile of the sequence, c = tiles covered
 * (tiles_per_task). */
/* Query tiles per expert task: 1, or for experts whose rows() pays a per-call cost over
 * all keys (linear attention rebuilds its key state) as many tiles as fit in
 * MOE_GROUP_ROWS rows, which bounds both that cost and the task's scratch. */
#define MOE_GROUP_ROWS 4096

static size_t tiles_per_task(const rva_attention *ex, size_t qb, size_t nt) {
	if (ex->cfg.mechanism != RVA_MECH_LINEAR)
		return 1;
	return rva__min(nt, rva__max(1, MOE_GROUP_ROWS / qb));
}

static rva_status expert_body(const rva__task *t, rva__exec_ctx *x) {
	moe_job *j = (moe_job *)t->ctx;
	size_t e = t->a, k = j->k, dim = j->dim, cap = (size_t)t->c * j->qb;
	unsigned char *p = x->scratch;
	uint32_t *rows = (uint32_t *)p;
	p += rva__round_up(cap * sizeof(uint32_t), RVA__ALIGN);
	size_t *slots = (size_t *)p;
	p += rva__round_up(cap * sizeof(size_t), RVA__ALIGN);
	float *buf = (float *)p;
	p += rva__round_up(cap * dim * sizeof(float), RVA__ALIGN);
	size_t m = 0;
	for (size_t ti = j->tile0[t->seq] + t->b; ti < j->tile0[t->seq] + t->b + t->c; ti++) {
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
	if (m == 0)
		return RVA_OK;
	const rva_attention *ex = j->ms->experts[e];
	const rva_seq *s = &j->seqs[t->seq];
	/* Each expert and each pipeline stage draws its own dropout stream. */
	rva_runtime rt = j->rt;
	rt.seed = rva__hash3(j->rt.seed, j->stream, e);
	rva_status st = ex->ops->rows(ex, s, t->seq, &rt, rows, m, buf, dim, p);
	if (st != RVA_OK)
		return rva__propagate(st);
	for (size_t i = 0; i < m; i++)
		memcpy(j->eout + slots[i] * dim, buf + i * dim, dim * sizeof(float));
	return RVA_OK;
}

static rva_status combine_body(const rva__task *t, rva__exec_ctx *x) {
	(void)x;
	moe_job *j = (moe_job *)t->ctx;
	size_t k = j->k, dim = j->dim;
	const moe_tile *tl = &j->tiles[j->tile0[t->seq] + t->b];
	const rva_seq *s = &j->seqs[t->seq];
	for (size_t i = 0; i < tl->n; i++) {
		float *out = s->out + ((size_t)tl->qt * j->qb + i) * s->out_stride;
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
MOE_TIMED(capacity, 1)
MOE_TIMED(expert, 2)
MOE_TIMED(combine, 3)
#undef MOE_TIMED

static rva_status moe_finish(void *ctx, const rva_status *seq_status, size_t nseq) {
	moe_job *j = ctx;
	rva_status st = RVA_OK;
	if (j->prev_finish)
		st = j->prev_finish(j->prev_ctx, seq_status, nseq);
	j->stats.router_ns = j->phase_ns[0];
	j->stats.assign_ns = j->phase_ns[1];
	j->stats.expert_ns = j->phase_ns[2];
	j->stats.combine_ns = j->phase_ns[3];
	if (j->rt.moe_stats)
		*j->rt.moe_stats = j->stats;
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

static rva_status plan(const rva_attention *att, rva__plan_io *io, rva__graph *g) {
	const rva_config *c = &att->cfg;
	moe_job *j;
	MOE_ALLOC(j, 1);
	j->att = att;
	j->ms = att->state;
	j->seqs = io->seqs;
	j->rt = io->rt;
	j->stream = io->stream;
	j->E = c->experts;
	j->k = c->top_k;
	j->dim = c->dim;
	j->qb = c->query_block;
	j->router = (rva__router){.w = att->router_weights, .experts = c->experts, .dim = c->dim,
	                          .top_k = c->top_k, .jitter = c->jitter_noise};
	j->stats.experts = c->experts;

	/* Tokens and tiles of the planned sequences, in token order. */
	size_t tokens = 0, ntiles = 0;
	for (size_t s = 0; s < io->nseq; s++)
		if (planned(io, s)) {
			if (!rva__add_ok(tokens, io->seqs[s].nq, &tokens))
				return rva__fail(RVA_EOVERFLOW, "moe: token count overflows");
			ntiles += rva__div_up(io->seqs[s].nq, j->qb);
		}
	if (ntiles > UINT32_MAX)
		return rva__fail(RVA_EOVERFLOW, "moe: %zu query tiles exceed 2^32", ntiles);
	size_t pairs, outs;
	if (!rva__mul_ok(tokens, j->k, &pairs) || !rva__mul_ok(pairs, j->dim, &outs))
		return rva__fail(RVA_EOVERFLOW, "moe: %zu tokens x top_k %zu x dim %zu overflows",
		                 tokens, j->k, j->dim);
	j->ntiles = ntiles;
	MOE_ALLOC(j->tiles, ntiles);
	MOE_ALLOC(j->tile0, io->nseq);
	MOE_ALLOC(j->choice, pairs);
	MOE_ALLOC(j->weight, pairs);
	MOE_ALLOC(j->kept, pairs);
	MOE_ALLOC(j->routed, ntiles);
	MOE_ALLOC(j->eout, outs);
	if (!(j->psum = rva__graph_alloc_array(g, ntiles ? ntiles : 1, j->E * sizeof(double))))
		return RVA_ENOMEM;
	uint32_t *router_ids, *combine_ids;
	MOE_ALLOC(router_ids, ntiles);
	MOE_ALLOC(combine_ids, ntiles);

	rva_status st;
	uint32_t cap_task;
	if ((st = rva__graph_add(g, capacity_task, j, RVA__NO_SEQ, 0, 0, 0, 0,
	                         (float)(pairs + ntiles * j->E), &cap_task)) != RVA_OK)
		return st;
	size_t ti = 0, tok = 0;
	bool jitter = rva__router_jitter_active(&j->router, &j->rt);
	for (size_t s = 0; s < io->nseq; s++) {
		uint32_t join, after = rva__plan_after(io, s);
		if ((st = rva__graph_add_join(g, (uint32_t)s, &join)) != RVA_OK ||
		    (st = rva__graph_edge(g, after, join)) != RVA_OK)
			return st;
		io->done[s] = join;
		if (!planned(io, s))
			continue;
		const rva_seq *seq = &io->seqs[s];
		j->tile0[s] = ti;
		size_t nt = rva__div_up(seq->nq, j->qb);
		double expert_flops = 0.0;
		for (size_t e = 0; e < j->E; e++) {
			const rva_attention *ex = j->ms->experts[e];
			expert_flops += ex->ops->flops(ex, seq);
			size_t rows = tiles_per_task(ex, j->qb, nt) * j->qb; /* as expert_task carves */
			size_t need = ex->ops->rows_scratch(ex, seq, rva__min(rows, seq->nq));
			if (!rva__add_ok(need, expert_scratch_head(j, rows), &need))
				return rva__fail(RVA_EOVERFLOW, "moe: expert scratch overflows");
			rva__graph_need_scratch(g, need);
		}
		/* average expert cost of one query row, times the k experts it visits */
		double row_cost = expert_flops / (double)j->E / (double)seq->nq * (double)j->k;
		for (size_t qt = 0; qt < nt; qt++, ti++) {
			size_t n = rva__min(j->qb, seq->nq - qt * j->qb);
			j->tiles[ti] = (moe_tile){.seq = (uint32_t)s, .qt = (uint32_t)qt, .tok = tok,
			                          .n = n};
			tok += n;
			rva__graph_need_scratch(g, rva__router_scratch(&j->router, n, jitter) +
			                               n * j->E * sizeof(float));
			float rcost = (float)(2.0 * (double)n * (double)j->dim * (double)j->E);
			if ((st = rva__graph_add(g, router_task, j, (uint32_t)s, (uint32_t)ti, 0, 0, 0,
			                         rcost, &router_ids[ti])) != RVA_OK ||
			    (st = rva__graph_edge(g, after, router_ids[ti])) != RVA_OK ||
			    (st = rva__graph_edge(g, router_ids[ti], cap_task)) != RVA_OK ||
			    (st = rva__graph_add(g, combine_task, j, (uint32_t)s, 0, (uint32_t)qt, 0, 0,
			                         (float)(n * j->k * j->dim), &combine_ids[ti])) !=
			        RVA_OK ||
			    (st = rva__graph_edge(g, combine_ids[ti], join)) != RVA_OK)
				return st;
			float ecost = (float)(row_cost * (double)n / (double)j->k);
			for (size_t e = 0; e < j->E; e++) {
				if (tiles_per_task(j->ms->experts[e], j->qb, nt) > 1)
					continue; /* planned by tile groups below */
				uint32_t id;
				if ((st = rva__graph_add(g, expert_task, j, (uint32_t)s, (uint32_t)e,
				                         (uint32_t)qt, 1, 0, ecost, &id)) != RVA_OK ||
				    (st = rva__graph_edge(g, cap_task, id)) != RVA_OK ||
				    (st = rva__graph_edge(g, id, combine_ids[ti])) != RVA_OK)
					return st;
			}
		}
		for (size_t e = 0; e < j->E; e++) {
			size_t per = tiles_per_task(j->ms->experts[e], j->qb, nt);
			if (per == 1)
				continue;
			for (size_t t0 = 0; t0 < nt; t0 += per) {
				size_t ntl = rva__min(per, nt - t0);
				size_t rows = rva__min(seq->nq - t0 * j->qb, ntl * j->qb);
				uint32_t id;
				if ((st = rva__graph_add(g, expert_task, j, (uint32_t)s, (uint32_t)e,
				                         (uint32_t)t0, (uint32_t)ntl, 0,
				                         (float)(row_cost * (double)rows / (double)j->k),
				                         &id)) != RVA_OK ||
				    (st = rva__graph_edge(g, cap_task, id)) != RVA_OK)
					return st;
				for (size_t qt = t0; qt < t0 + ntl; qt++)
					if ((st = rva__graph_edge(g, id, combine_ids[j->tile0[s] + qt])) != RVA_OK)
						return st;
			}
		}
	}
	if (io->rt.moe_stats) {
		j->prev_finish = g->finish;
		j->prev_ctx = g->finish_ctx;
		g->finish = moe_finish;
		g->finish_ctx = j;
	}
	return RVA_OK;
}

/* Router GEMM plus, per row, the average expert's work times the k experts it visits. */
static double flops(const rva_attention *att, const rva_seq *s) {
	const moe_state *ms = att->state;
	double f = 2.0 * (double)s->nq * (double)att->cfg.dim * (double)att->cfg.experts;
	double ex = 0.0;
	for (size_t e = 0; e < ms->count; e++)
		ex += ms->experts[e]->ops->flops(ms->experts[e], s);
	return f + ex * (double)att->cfg.top_k / (double)att->cfg.experts;
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

/*
 * Planning a pipeline over a batch into a job graph (rva__pipeline_plan).
 *
 * Per sequence the stages form a chain. Attention stages are planned by their mechanism
 * (rva__attention_plan) with the current rows as queries and, as the pipeline's mode says
 * for that sequence, the batch's keys/values (cross-attention) or the current rows again
 * (self-attention: K = V = the stage's input buffer, nk = nq);
 * elementwise stages (norm, dropout, residual, custom) are one task per (stage, sequence,
 * row tile), the tile of stage i+1 waiting only for the same tile of stage i. Training-mode
 * BatchNorm is the one cross-sequence barrier: per-tile partial statistics (after all of
 * that sequence's previous stage), one merge task for the whole job (RVA__NO_SEQ, fixed
 * order), then per-tile normalisation.
 *
 * Rows between stages live in up to three temporary buffers of the job arena, plus the
 * caller's output (which is written last anyway): the assignment below is the same for
 * every sequence, reuses buffers in place where an elementwise stage allows it, and keeps
 * the residual source alive while a later residual needs it. Identity stages (dropout in
 * inference mode or with p = 0) are left out.
 *
 * Tiling depends on dim only (never on threads), every reduction runs in a fixed order,
 * and dropout masks are counter-based (seed, step, stage stream, sequence, row, column):
 * the numbers are the same whatever the executor and thread count.
 */
#include <math.h>
#include <string.h>

#include "attention/attention_internal.h"
#include "core/internal.h"
#include "sdk/pipeline_impl.h"
#include "sdk/pipeline_internal.h"

enum { BUF_IN = 0, BUF_OUT, BUF_T0, BUF_T1, BUF_T2, NBUF };

/* Elements per row tile of an elementwise stage (512 KiB of floats). */
#define TILE_ELEMS ((size_t)1 << 17)

typedef struct rowbuf {
	float *p;
	size_t stride;
} rowbuf;

/* Job-wide data of a planned pipeline (arena). */
typedef struct plan_ctx {
	size_t dim;
	rva_runtime rt;
	rowbuf *bufs[NBUF];     /* bufs[b][s]: buffer b of sequence s */
} plan_ctx;

/* One stage left in the plan, with its buffers. */
typedef struct step {
	const rva__stage *st;
	uint32_t index;         /* the stage's index in the pipeline */
	uint8_t src, dst, res;  /* input, output, residual source (RESIDUAL) */
	bool bn_train;          /* BatchNorm with batch statistics */
} step;

/* Per elementwise stage (arena). */
typedef struct ew_ctx {
	const plan_ctx *pc;
	const rva__stage *st;
	uint32_t stage;
	uint8_t src, dst, res;
	uint64_t dropout_key;
	/* BatchNorm: out = (x - mean) * scale + shift, resolved at planning (running
	 * statistics) or by the merge task (batch statistics) */
	float *mean, *scale, *shift;
	/* training BatchNorm: per row-tile partial statistics, merged in index order */
	size_t nparts;
	size_t *part_count;
	double *part_mean, *part_m2;  /* nparts x dim */
} ew_ctx;

/* ---- task functions -------------------------------------------------------------------- */

static rva_status ew_task(const rva__task *t, rva__exec_ctx *x) {
	(void)x;
	const ew_ctx *c = t->ctx;
	const rva__stage *st = c->st;
	size_t dim = c->pc->dim, s = t->seq;
	const rowbuf *src = &c->pc->bufs[c->src][s], *dst = &c->pc->bufs[c->dst][s];
	const rowbuf *res = &c->pc->bufs[c->res][s];
	for (uint32_t r = t->a; r < t->b; r++) {
		const float *in = src->p + (size_t)r * src->stride;
		float *out = dst->p + (size_t)r * dst->stride;
		switch (st->kind) {
		case RVA__STAGE_NORM:
			if (st->norm == RVA_NORM_LAYER)
				rva__layer_norm_row(in, out, dim, st->eps, st->gain, st->bias);
			else if (st->norm == RVA_NORM_RMS)
				rva__rms_norm_row(in, out, dim, st->eps, st->gain, st->bias);
			else
				rva__affine_norm_row(in, out, dim, c->mean, c->scale, c->shift);
			break;
		case RVA__STAGE_DROPOUT:
			rva__dropout_row(in, out, dim, st->prob, rva__hash3(c->dropout_key, s, r));
			break;
		case RVA__STAGE_RESIDUAL:
			rva__residual_row(in, res->p + (size_t)r * res->stride, out, dim);
			break;
		case RVA__STAGE_CUSTOM: {
			rva_status rs = st->fn(in, out, dim, st->user);
			if (rs == RVA_OK)
				break;
			if ((unsigned)rs >= RVA_STATUS_COUNT)
				return rva__fail(RVA_EINVAL, "pipeline stage %u (custom): callback returned "
				                 "the invalid status %d on row %u", c->stage, (int)rs, r);
			return rva__fail(rs, "pipeline stage %u (custom): callback returned %s on row %u",
			                 c->stage, rva_status_name(rs), r);
		}
		default:
			return rva__fail(RVA_EINTERNAL, "pipeline stage %u: kind %d is not elementwise",
			                 c->stage, (int)st->kind);
		}
	}
	return RVA_OK;
}

/* Partial statistics of rows [a, b) of one sequence: count, mean and M2 per feature. */
static rva_status bn_partial_task(const rva__task *t, rva__exec_ctx *x) {
	(void)x;
	const ew_ctx *c = t->ctx;
	size_t dim = c->pc->dim, part = t->c;
	const rowbuf *src = &c->pc->bufs[c->src][t->seq];
	double *mean = c->part_mean + part * dim, *m2 = c->part_m2 + part * dim;
	size_t n = t->b - t->a;
	for (size_t f = 0; f < dim; f++)
		mean[f] = 0.0, m2[f] = 0.0;
	for (uint32_t r = t->a; r < t->b; r++) {
		const float *row = src->p + (size_t)r * src->stride;
		for (size_t f = 0; f < dim; f++)
			mean[f] += row[f];
	}
	for (size_t f = 0; f < dim; f++)
		mean[f] /= (double)n;
	for (uint32_t r = t->a; r < t->b; r++) {
		const float *row = src->p + (size_t)r * src->stride;
		for (size_t f = 0; f < dim; f++) {
			double d = (double)row[f] - mean[f];
			m2[f] += d * d;
		}
	}
	c->part_count[part] = n;
	return RVA_OK;
}

/* Merges the partials in index order (Chan et al.) into the batch statistics. Partials of
 * sequences that failed before them were skipped and count 0. */
static rva_status bn_merge_task(const rva__task *t, rva__exec_ctx *x) {
	(void)x;
	const ew_ctx *c = t->ctx;
	size_t dim = c->pc->dim;
	size_t total = 0;
	for (size_t p = 0; p < c->nparts; p++)
		total += c->part_count[p];
	if (total == 0)
		return RVA_OK; /* every sequence failed: nothing to normalise */
	if (total < 2)
		return rva__fail(RVA_EINVAL, "pipeline stage %u (BatchNorm, training mode) needs "
		                 "more than one row in the batch, got %zu", c->stage, total);
	const rva__stage *st = c->st;
	for (size_t f = 0; f < dim; f++) {
		double n = 0.0, mean = 0.0, m2 = 0.0;
		for (size_t p = 0; p < c->nparts; p++) {
			double nb = (double)c->part_count[p];
			if (nb == 0.0)
				continue;
			double mb = c->part_mean[p * dim + f], m2b = c->part_m2[p * dim + f];
			double nn = n + nb, delta = mb - mean;
			mean += delta * nb / nn;
			m2 += m2b + delta * delta * n * nb / nn;
			n = nn;
		}
		double var = m2 / n;
		double g = st->gain ? st->gain[f] : 1.0;
		c->mean[f] = (float)mean;
		c->scale[f] = (float)(g / sqrt(var + (double)st->eps));
		c->shift[f] = st->bias ? st->bias[f] : 0.0f;
	}
	return RVA_OK;
}

/* ---- buffer assignment ------------------------------------------------------------------ */

/* Chooses src/dst/res of every step (the same for every sequence) and marks the buffers
 * used. The last step writes the caller's output. An attention never writes its own
 * input; the residual source is kept while a later residual needs it; the caller's
 * queries are never written; the step before a final attention does not write the output
 * (that attention reads it). Elementwise steps work in place when allowed. */
static void assign_buffers(step *steps, size_t n, bool used[NBUF]) {
	uint8_t cur = BUF_IN, res = BUF_IN;
	for (size_t i = 0; i < n; i++) {
		step *sp = &steps[i];
		bool attn = sp->st->kind == RVA__STAGE_ATTENTION;
		bool residual = sp->st->kind == RVA__STAGE_RESIDUAL;
		sp->src = cur;
		sp->res = res;
		if (i + 1 == n) {
			sp->dst = BUF_OUT;
		} else {
			bool forbid[NBUF] = {false};
			forbid[BUF_IN] = true;
			if (!residual)
				for (size_t j = i + 1; j < n; j++)
					if (steps[j].st->kind == RVA__STAGE_RESIDUAL) {
						forbid[res] = true;
						break;
					}
			if (attn)
				forbid[cur] = true;
			if (i + 2 == n && steps[i + 1].st->kind == RVA__STAGE_ATTENTION)
				forbid[BUF_OUT] = true;
			uint8_t dst = cur;
			if (attn || forbid[cur]) {
				static const uint8_t order[] = {BUF_OUT, BUF_T0, BUF_T1, BUF_T2};
				for (size_t k = 0; k < sizeof order; k++)
					if (!forbid[order[k]]) {
						dst = order[k];
						break;
					}
			}
			sp->dst = dst;
		}
		used[sp->dst] = true;
		cur = sp->dst;
		if (residual)
			res = sp->dst;
	}
}

/* ---- planning ----------------------------------------------------------------------------- */

/* Per-sequence progress of the chain while planning. */
typedef struct seq_state {
	uint32_t node;    /* completes after every stage planned so far (or RVA__NO_TASK) */
	uint32_t first;   /* tiled: the first tile task of the last stage (tiles are contiguous) */
	uint32_t ntiles;
	bool tiled;       /* the last stage was tiled and `node` does not cover it yet */
} seq_state;

/* The task that completes sequence s's stages so far (a join over the last tiles). */
static rva_status seq_node(rva__graph *g, seq_state *ss, uint32_t s, uint32_t *out) {
	if (ss->tiled) {
		if (ss->ntiles == 1) {
			ss->node = ss->first;
		} else {
			uint32_t j;
			rva_status st = rva__graph_add_join(g, s, &j);
			for (uint32_t t = 0; st == RVA_OK && t < ss->ntiles; t++)
				st = rva__graph_edge(g, ss->first + t, j);
			if (st != RVA_OK)
				return st;
			ss->node = j;
		}
		ss->tiled = false;
	}
	*out = ss->node;
	return RVA_OK;
}

static bool seq_live(const rva__plan_io *io, const rva_seq *seqs, size_t s) {
	return io->seq_status[s] == RVA_OK && seqs[s].nq > 0;
}

typedef struct planner {
	const rva_pipeline *p;
	rva__plan_io *io;
	rva__graph *g;
	const rva_seq *seqs;     /* normalised copy */
	const bool *self;        /* per sequence: K/V follow the stream */
	plan_ctx *pc;
	seq_state *ss;
	size_t tile_rows;
} planner;

static rva_status plan_attention(planner *pl, const step *sp) {
	rva__plan_io *io = pl->io;
	size_t n = io->nseq;
	rva__graph *g = pl->g;
	rva_seq *aseqs = rva__graph_alloc_array(g, n ? n : 1, sizeof *aseqs);
	uint32_t *after = rva__graph_alloc_array(g, n ? n : 1, sizeof *after);
	uint32_t *done = rva__graph_alloc_array(g, n ? n : 1, sizeof *done);
	if (!aseqs || !after || !done)
		return rva__propagate(RVA_ENOMEM);
	rva_status st;
	for (size_t s = 0; s < n; s++) {
		aseqs[s] = pl->seqs[s];
		if (seq_live(io, pl->seqs, s)) {
			const rowbuf *in = &pl->pc->bufs[sp->src][s], *out = &pl->pc->bufs[sp->dst][s];
			aseqs[s].q = in->p;
			aseqs[s].q_stride = in->stride;
			aseqs[s].out = out->p;
			aseqs[s].out_stride = out->stride;
			if (pl->self[s]) {
				aseqs[s].k = aseqs[s].v = in->p;
				aseqs[s].k_stride = aseqs[s].v_stride = in->stride;
			}
		}
		if ((st = seq_node(g, &pl->ss[s], (uint32_t)s, &after[s])) != RVA_OK)
			return st;
	}
	rva__plan_io aio = {.seqs = aseqs, .nseq = n, .rt = io->rt, .after = after,
	                    .done = done, .seq_status = io->seq_status, .details = io->details,
	                    .stream = io->stream + sp->index};
	if ((st = rva__attention_plan(sp->st->att, &aio, g)) != RVA_OK)
		return st;
	for (size_t s = 0; s < n; s++) {
		pl->ss[s].node = done[s];
		pl->ss[s].tiled = false;
	}
	return RVA_OK;
}

/* Estimated FLOPs per element of an elementwise stage. */
static float ew_flops(const rva__stage *st) {
	switch (st->kind) {
	case RVA__STAGE_NORM: return st->norm == RVA_NORM_BATCH ? 3.0f : 7.0f;
	case RVA__STAGE_DROPOUT: return 2.0f;
	case RVA__STAGE_RESIDUAL: return 1.0f;
	default: return 1.0f;
	}
}

/* Adds the row tiles of an elementwise stage; with `gate` != RVA__NO_TASK every tile
 * waits for it (the BatchNorm merge) instead of the previous stage. */
static rva_status plan_tiles(planner *pl, const step *sp, const ew_ctx *c, uint32_t gate) {
	rva__graph *g = pl->g;
	size_t dim = pl->pc->dim;
	float per_elem = ew_flops(sp->st);
	for (size_t s = 0; s < pl->io->nseq; s++) {
		if (!seq_live(pl->io, pl->seqs, s))
			continue;
		size_t nq = pl->seqs[s].nq;
		seq_state *ss = &pl->ss[s];
		uint32_t ntiles = (uint32_t)rva__div_up(nq, pl->tile_rows), first = RVA__NO_TASK;
		for (uint32_t t = 0; t < ntiles; t++) {
			size_t r0 = (size_t)t * pl->tile_rows, r1 = rva__min(nq, r0 + pl->tile_rows);
			uint32_t id;
			rva_status st = rva__graph_add(g, ew_task, c, (uint32_t)s, (uint32_t)r0,
			                               (uint32_t)r1, t, sp->index,
			                               per_elem * (float)((r1 - r0) * dim), &id);
			if (st != RVA_OK)
				return st;
			if (t == 0)
				first = id;
			uint32_t dep = gate != RVA__NO_TASK ? gate
			               : ss->tiled          ? ss->first + t
			                                    : ss->node;
			if ((st = rva__graph_edge(g, dep, id)) != RVA_OK)
				return st;
		}
		ss->first = first;
		ss->ntiles = ntiles;
		ss->tiled = true;
		pl->g->flops += (double)per_elem * (double)nq * (double)dim;
	}
	return RVA_OK;
}

static rva_status plan_elementwise(planner *pl, const step *sp) {
	rva__graph *g = pl->g;
	const rva__stage *st = sp->st;
	size_t dim = pl->pc->dim, n = pl->io->nseq;
	ew_ctx *c = rva__graph_alloc(g, sizeof *c);
	if (!c)
		return rva__propagate(RVA_ENOMEM);
	*c = (ew_ctx){.pc = pl->pc, .st = st, .stage = sp->index, .src = sp->src,
	              .dst = sp->dst, .res = sp->res};
	if (st->kind == RVA__STAGE_DROPOUT)
		c->dropout_key = rva__dropout_key(pl->io->rt.seed, pl->io->rt.step,
		                                  pl->io->stream + sp->index);
	if (st->kind != RVA__STAGE_NORM || st->norm != RVA_NORM_BATCH)
		return plan_tiles(pl, sp, c, RVA__NO_TASK);

	c->mean = rva__graph_alloc_array(g, dim, sizeof(float));
	c->scale = rva__graph_alloc_array(g, dim, sizeof(float));
	c->shift = rva__graph_alloc_array(g, dim, sizeof(float));
	if (!c->mean || !c->scale || !c->shift)
		return rva__propagate(RVA_ENOMEM);
	if (!sp->bn_train) {
		/* running statistics: resolved now */
		for (size_t f = 0; f < dim; f++) {
			double var = st->running_var ? st->running_var[f] : 1.0;
			double gain = st->gain ? st->gain[f] : 1.0;
			c->mean[f] = st->running_mean ? st->running_mean[f] : 0.0f;
			c->scale[f] = (float)(gain / sqrt(var + (double)st->eps));
			c->shift[f] = st->bias ? st->bias[f] : 0.0f;
		}
		return plan_tiles(pl, sp, c, RVA__NO_TASK);
	}

	/* batch statistics: partials -> merge (the barrier) -> normalisation */
	size_t nparts = 0;
	for (size_t s = 0; s < n; s++)
		if (seq_live(pl->io, pl->seqs, s))
			nparts += rva__div_up(pl->seqs[s].nq, pl->tile_rows);
	if (nparts == 0)
		return RVA_OK; /* no rows to normalise */
	c->nparts = nparts;
	c->part_count = rva__graph_alloc_array(g, nparts, sizeof(size_t));
	c->part_mean = rva__graph_alloc_array(g, nparts, dim * sizeof(double));
	c->part_m2 = rva__graph_alloc_array(g, nparts, dim * sizeof(double));
	uint32_t *part_ids = rva__graph_alloc_array(g, nparts, sizeof(uint32_t));
	if (!c->part_count || !c->part_mean || !c->part_m2 || !part_ids)
		return rva__propagate(RVA_ENOMEM);
	size_t part = 0;
	rva_status rs;
	for (size_t s = 0; s < n; s++) {
		if (!seq_live(pl->io, pl->seqs, s))
			continue;
		uint32_t node;
		if ((rs = seq_node(g, &pl->ss[s], (uint32_t)s, &node)) != RVA_OK)
			return rs;
		size_t nq = pl->seqs[s].nq;
		for (size_t r0 = 0; r0 < nq; r0 += pl->tile_rows, part++) {
			size_t r1 = rva__min(nq, r0 + pl->tile_rows);
			if ((rs = rva__graph_add(g, bn_partial_task, c, (uint32_t)s, (uint32_t)r0,
			                         (uint32_t)r1, (uint32_t)part, sp->index,
			                         3.0f * (float)((r1 - r0) * dim), &part_ids[part])) !=
			    RVA_OK)
				return rs;
			if ((rs = rva__graph_edge(g, node, part_ids[part])) != RVA_OK)
				return rs;
		}
	}
	uint32_t merge;
	if ((rs = rva__graph_add(g, bn_merge_task, c, RVA__NO_SEQ, 0, 0, 0, sp->index,
	                         4.0f * (float)(nparts * dim), &merge)) != RVA_OK)
		return rs;
	for (size_t k = 0; k < nparts; k++)
		if ((rs = rva__graph_edge(g, part_ids[k], merge)) != RVA_OK)
			return rs;
	return plan_tiles(pl, sp, c, merge);
}

/* Whether the caller's descriptor is a self-attention sequence: k == q and v == q with the
 * same stride, nk == nq. Strides are compared as the caller gave them, 0 meaning dim for
 * all three (the rows of one matrix), so a packed k = v = q under grouped-query attention
 * is recognised (and refused) rather than read as narrower key rows. */
static bool self_form(const rva_seq *raw, size_t dim) {
	size_t qs = raw->q_stride ? raw->q_stride : dim;
	size_t ks = raw->k_stride ? raw->k_stride : dim;
	size_t vs = raw->v_stride ? raw->v_stride : dim;
	return raw->k == raw->q && raw->v == raw->q && ks == qs && vs == qs && raw->nk == raw->nq;
}

/* Resolves the pipeline's mode for sequence s (the caller's descriptor raw, normalised in
 * *seq): *self says whether its attention stages take K/V from the stream; a self sequence
 * gets k = v = q, nk = nq (what validation then checks). Returns the status the sequence
 * fails with, or RVA_OK. */
static rva_status resolve_mode(const rva_pipeline *p, const rva_seq *raw, rva_seq *seq,
                               size_t s, bool *self) {
	*self = false;
	if (p->mode == RVA_PIPELINE_CROSS)
		return RVA_OK;
	bool given_self = self_form(raw, p->dim);
	if (p->mode == RVA_PIPELINE_AUTO && !given_self)
		return RVA_OK;
	if (p->kv_dim != p->dim) /* AUTO only: SELF refuses GQA when configured */
		return rva__fail(RVA_EDIM, "sequence %zu is self-attention (k = v = q) but the "
		                 "pipeline's attention reads key/value rows of %zu floats, not the "
		                 "stream's %zu (grouped-query attention): give keys/values", s,
		                 p->kv_dim, p->dim);
	if (!given_self && !(seq->k == NULL && seq->v == NULL && seq->nk == 0))
		return rva__fail(RVA_EINVAL, "sequence %zu: a self-attention pipeline takes keys and "
		                 "values from its stream; give k = v = NULL and nk = 0, or k = v = q "
		                 "with the query stride and nk = nq (%zu), not nk = %zu", s, seq->nq,
		                 seq->nk);
	seq->k = seq->v = seq->q;
	seq->k_stride = seq->v_stride = seq->q_stride;
	seq->nk = seq->nq;
	*self = true;
	return RVA_OK;
}

static bool step_active(const rva__stage *st, const rva_runtime *rt) {
	if (st->kind == RVA__STAGE_DROPOUT)
		return rt->training && st->prob > 0.0f;
	return true;
}

rva_status rva__pipeline_plan(const rva_pipeline *p, rva__plan_io *io, rva__graph *g) {
	if (!p->n)
		return rva__fail(RVA_EEMPTY, "the pipeline has no stage");
	if (!p->dim || !p->first_att)
		return rva__fail(RVA_EEMPTY, "the pipeline has no attention stage (its dim is "
		                 "unknown)");
	size_t n = io->nseq, dim = p->dim;
	const rva_attention *att0 = p->first_att;
	/* Planned once: from now on the mode is fixed (rva_pipeline_set_mode). The pipeline is
	 * the caller's non-const object; only this flag is written. */
	atomic_store_explicit(&((rva_pipeline *)p)->ran, true, memory_order_release);

	/* Normalised copy of the batch; every sequence validated once up front. */
	rva_seq *seqs = rva__graph_alloc_array(g, n ? n : 1, sizeof *seqs);
	seq_state *ss = rva__graph_alloc_array(g, n ? n : 1, sizeof *ss);
	plan_ctx *pc = rva__graph_alloc(g, sizeof *pc);
	step *steps = rva__graph_alloc_array(g, p->n, sizeof *steps);
	bool *self = rva__graph_alloc_array(g, n ? n : 1, sizeof *self);
	if (!seqs || !ss || !pc || !steps || !self)
		return rva__propagate(RVA_ENOMEM);
	size_t total_rows = 0;
	for (size_t s = 0; s < n; s++) {
		rva__normalise_seq(att0, &io->seqs[s], &seqs[s]);
		ss[s] = (seq_state){.node = rva__plan_after(io, s), .tiled = false};
		self[s] = false;
		if (io->seq_status[s] != RVA_OK)
			continue;
		rva_status vs = resolve_mode(p, &io->seqs[s], &seqs[s], s, &self[s]);
		if (vs == RVA_OK)
			vs = rva__validate_seq(att0, &seqs[s], s);
		if (vs == RVA_OK && rva__seq_head_strided(att0, &seqs[s]))
			vs = rva__fail(RVA_EINVAL, "sequence %zu: a pipeline's rows are packed (its stages "
			               "read whole rows): head strides are not supported", s);
		if (vs == RVA_OK && (seqs[s].q_dtype || seqs[s].k_dtype || seqs[s].v_dtype ||
		                     seqs[s].out_dtype))
			vs = rva__fail(RVA_EINVAL, "sequence %zu: a pipeline's rows are fp32 (its stages "
			               "run in fp32 between attentions); element types must be RVA_F32",
			               s);
		if (vs != RVA_OK) {
			io->seq_status[s] = vs;
			if (io->details && !io->details[s])
				io->details[s] = rva__strdup(rva_last_error());
			continue;
		}
		if (!rva__add_ok(total_rows, seqs[s].nq, &total_rows))
			return rva__fail(RVA_EOVERFLOW, "pipeline: the batch's query rows overflow");
	}

	/* The active stages and their buffers. */
	size_t nsteps = 0;
	for (size_t i = 0; i < p->n; i++) {
		const rva__stage *st = &p->stages[i];
		if (!step_active(st, &io->rt))
			continue;
		steps[nsteps++] = (step){.st = st, .index = (uint32_t)i,
		                         .bn_train = st->kind == RVA__STAGE_NORM &&
		                                     st->norm == RVA_NORM_BATCH && io->rt.training};
	}
	bool used[NBUF] = {false};
	assign_buffers(steps, nsteps, used);

	*pc = (plan_ctx){.dim = dim, .rt = io->rt};
	for (int b = 0; b < NBUF; b++) {
		pc->bufs[b] = rva__graph_alloc_array(g, n ? n : 1, sizeof(rowbuf));
		if (!pc->bufs[b])
			return rva__propagate(RVA_ENOMEM);
	}
	for (int b = BUF_T0; b < NBUF; b++) {
		if (!used[b])
			continue;
		size_t elems;
		if (!rva__mul_ok(total_rows ? total_rows : 1, dim, &elems))
			return rva__fail(RVA_EOVERFLOW, "pipeline: %zu rows x dim %zu overflow",
			                 total_rows, dim);
		/* rows are written in full by the stage producing them, which first-touches
		 * them on its worker's node */
		float *base = rva__graph_alloc_untouched(g, elems, sizeof(float));
		if (!base)
			return rva__propagate(RVA_ENOMEM);
		size_t off = 0;
		for (size_t s = 0; s < n; s++) {
			pc->bufs[b][s] = (rowbuf){.p = base + off * dim, .stride = dim};
			if (seq_live(io, seqs, s))
				off += seqs[s].nq;
		}
	}
	for (size_t s = 0; s < n; s++) {
		pc->bufs[BUF_IN][s] = (rowbuf){.p = (float *)seqs[s].q, .stride = seqs[s].q_stride};
		pc->bufs[BUF_OUT][s] = (rowbuf){.p = seqs[s].out, .stride = seqs[s].out_stride};
	}

	planner pl = {.p = p, .io = io, .g = g, .seqs = seqs, .self = self, .pc = pc, .ss = ss,
	              .tile_rows = rva__max(1, TILE_ELEMS / dim)};
	rva_status st;
	for (size_t i = 0; i < nsteps; i++) {
		if (steps[i].st->kind == RVA__STAGE_ATTENTION)
			st = plan_attention(&pl, &steps[i]);
		else
			st = plan_elementwise(&pl, &steps[i]);
		if (st != RVA_OK)
			return st;
	}
	for (size_t s = 0; s < n; s++) {
		uint32_t node;
		if ((st = seq_node(g, &ss[s], (uint32_t)s, &node)) != RVA_OK)
			return st;
		if (node == RVA__NO_TASK && (st = rva__graph_add_join(g, (uint32_t)s, &node)) != RVA_OK)
			return st;
		io->done[s] = node;
	}
	return RVA_OK;
}

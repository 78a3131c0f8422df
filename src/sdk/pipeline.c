/*
 * Pipelines (pipeline.h): building them stage by stage, the pre-built transformer blocks,
 * and the engine-free runs (one query, or a batch serially). Planning a pipeline into a
 * job graph is in pipeline_plan.c; the row kernels are in pipeline_rows.c.
 */
#include <math.h>
#include <string.h>

#include "attention/attention_internal.h"
#include "attention/config_defaults.h"
#include "core/internal.h"
#include "sdk/pipeline_impl.h"
#include "sdk/pipeline_internal.h"

rva_norm_config rva_norm_defaults(rva_norm_type type) {
	return (rva_norm_config){.type = type, .eps = RVA__DEFAULT_NORM_EPS, .gain = NULL, .bias = NULL,
	                         .running_mean = NULL, .running_var = NULL};
}

rva_status rva_pipeline_create(rva_pipeline **out) {
	if (!out)
		return rva__fail(RVA_ENULL, "rva_pipeline_create: out is NULL");
	rva_pipeline *p = rva__calloc(1, sizeof *p);
	if (!p)
		return rva__fail(RVA_ENOMEM, "rva_pipeline_create: cannot allocate the pipeline");
	p->mode = RVA_PIPELINE_CROSS;
	atomic_init(&p->ran, false);
	*out = p;
	return RVA_OK;
}

static void free_stage(rva__stage *s) {
	rva_attention_destroy(s->att);
	rva__free(s->gain);
	rva__free(s->bias);
	rva__free(s->running_mean);
	rva__free(s->running_var);
}

rva_status rva_pipeline_destroy(rva_pipeline *p) {
	if (!p)
		return RVA_OK;
	for (size_t i = 0; i < p->n; i++)
		free_stage(&p->stages[i]);
	rva__free(p->stages);
	rva__free(p);
	return RVA_OK;
}

/* Makes room for one more stage. */
static rva_status reserve(rva_pipeline *p) {
	if (p->n < p->cap)
		return RVA_OK;
	size_t ncap = p->cap ? p->cap * 2 : 8;
	rva__stage *ns;
	rva_status st = rva__alloc_array((void **)&ns, ncap, sizeof *ns, "pipeline stages");
	if (st != RVA_OK)
		return st;
	if (p->n)
		memcpy(ns, p->stages, p->n * sizeof *ns);
	rva__free(p->stages);
	p->stages = ns;
	p->cap = ncap;
	return RVA_OK;
}

/* Appends s (reserve() must have succeeded). */
static void push(rva_pipeline *p, const rva__stage *s) { p->stages[p->n++] = *s; }

rva_status rva_pipeline_add_attention(rva_pipeline *p, rva_attention *att) {
	if (!p || !att)
		return rva__fail(RVA_ENULL, "rva_pipeline_add_attention: %s is NULL",
		                 !p ? "pipeline" : "attention");
	if (att->v_head_dim != att->head_dim)
		return rva__fail(RVA_EDIM, "rva_pipeline_add_attention: v_head_dim %zu differs from "
		                 "head_dim %zu (a pipeline's stream keeps dim columns)",
		                 att->v_head_dim, att->head_dim);
	if (p->dim && att->cfg.dim != p->dim)
		return rva__fail(RVA_EDIM, "rva_pipeline_add_attention: attention dim %zu differs "
		                 "from the pipeline dim %zu", att->cfg.dim, p->dim);
	if (p->dim && att->kv_dim != p->kv_dim)
		return rva__fail(RVA_EDIM, "rva_pipeline_add_attention: attention reads key/value "
		                 "rows of %zu floats, the pipeline's earlier attention %zu",
		                 att->kv_dim, p->kv_dim);
	if (p->mode == RVA_PIPELINE_SELF && att->kv_dim != att->cfg.dim)
		return rva__fail(RVA_EDIM, "rva_pipeline_add_attention: a self-attention pipeline "
		                 "takes keys/values from its stream of %zu columns, the attention "
		                 "reads rows of %zu (kv_heads %zu < heads %zu)", att->cfg.dim,
		                 att->kv_dim, att->kv_heads, att->cfg.heads);
	for (size_t i = 0; i < p->n; i++) /* one reference would be released twice */
		if (p->stages[i].kind == RVA__STAGE_ATTENTION && p->stages[i].att == att)
			return rva__fail(RVA_EINVAL, "rva_pipeline_add_attention: this attention is "
			                 "already stage %zu of the pipeline; build another", i);
	rva_status st = reserve(p);
	if (st != RVA_OK)
		return st;
	push(p, &(rva__stage){.kind = RVA__STAGE_ATTENTION, .att = att});
	if (!p->dim) {
		p->dim = att->cfg.dim;
		p->kv_dim = att->kv_dim;
		p->first_att = att;
	}
	return RVA_OK;
}

static rva_status copy_param(float **dst, const float *src, size_t dim, const char *what) {
	*dst = NULL;
	if (!src)
		return RVA_OK;
	rva_status st = rva__alloc_array((void **)dst, dim, sizeof(float), what);
	if (st != RVA_OK)
		return st;
	memcpy(*dst, src, dim * sizeof(float));
	return RVA_OK;
}

rva_status rva_pipeline_add_norm_ex(rva_pipeline *p, const rva_norm_config *cfg) {
	if (!p || !cfg)
		return rva__fail(RVA_ENULL, "rva_pipeline_add_norm_ex: %s is NULL",
		                 !p ? "pipeline" : "cfg");
	if ((unsigned)cfg->type >= RVA_NORM_COUNT)
		return rva__fail(RVA_EINVAL, "rva_pipeline_add_norm: invalid norm type %d",
		                 (int)cfg->type);
	/* Zero is never an error (config.h): eps 0 is the default. */
	float eps = cfg->eps == 0.0f ? RVA__DEFAULT_NORM_EPS : cfg->eps;
	if (!(eps > 0.0f) || !isfinite(eps))
		return rva__fail(RVA_ERANGE, "rva_pipeline_add_norm: eps %g must be finite and > 0",
		                 (double)cfg->eps);
	for (size_t i = 0; i < sizeof cfg->reserved / sizeof cfg->reserved[0]; i++)
		if (cfg->reserved[i] != 0)
			return rva__fail(RVA_EINVAL, "rva_pipeline_add_norm: reserved[%zu] is not zero "
			                 "(start from rva_norm_defaults)", i);
	bool arrays = cfg->gain || cfg->bias || cfg->running_mean || cfg->running_var;
	if (arrays && !p->dim)
		return rva__fail(RVA_ESTATE, "rva_pipeline_add_norm: gain/bias/running statistics "
		                 "need the pipeline dim: add an attention stage first");
	if ((cfg->running_mean || cfg->running_var) && cfg->type != RVA_NORM_BATCH)
		return rva__fail(RVA_EINVAL, "rva_pipeline_add_norm: running statistics apply to "
		                 "BatchNorm only");
	if (cfg->running_var)
		for (size_t i = 0; i < p->dim; i++)
			if (!(cfg->running_var[i] >= 0.0f) || !isfinite(cfg->running_var[i]))
				return rva__fail(RVA_ERANGE, "rva_pipeline_add_norm: running_var[%zu] = %g "
				                 "must be finite and >= 0", i, (double)cfg->running_var[i]);
	rva__stage s = {.kind = RVA__STAGE_NORM, .norm = cfg->type, .eps = eps};
	rva_status st = reserve(p);
	if (st == RVA_OK)
		st = copy_param(&s.gain, cfg->gain, p->dim, "norm gain");
	if (st == RVA_OK)
		st = copy_param(&s.bias, cfg->bias, p->dim, "norm bias");
	if (st == RVA_OK)
		st = copy_param(&s.running_mean, cfg->running_mean, p->dim, "norm running_mean");
	if (st == RVA_OK)
		st = copy_param(&s.running_var, cfg->running_var, p->dim, "norm running_var");
	if (st != RVA_OK) {
		free_stage(&s);
		return st;
	}
	push(p, &s);
	return RVA_OK;
}

rva_status rva_pipeline_add_norm(rva_pipeline *p, rva_norm_type type) {
	rva_norm_config c = rva_norm_defaults(type);
	return rva_pipeline_add_norm_ex(p, &c);
}

rva_status rva_pipeline_add_dropout(rva_pipeline *p, float prob) {
	if (!p)
		return rva__fail(RVA_ENULL, "rva_pipeline_add_dropout: pipeline is NULL");
	if (!(prob >= 0.0f && prob < 1.0f))
		return rva__fail(RVA_ERANGE, "rva_pipeline_add_dropout: probability %g outside [0, 1)",
		                 (double)prob);
	rva_status st = reserve(p);
	if (st != RVA_OK)
		return st;
	push(p, &(rva__stage){.kind = RVA__STAGE_DROPOUT, .prob = prob});
	return RVA_OK;
}

rva_status rva_pipeline_add_residual(rva_pipeline *p) {
	if (!p)
		return rva__fail(RVA_ENULL, "rva_pipeline_add_residual: pipeline is NULL");
	rva_status st = reserve(p);
	if (st != RVA_OK)
		return st;
	push(p, &(rva__stage){.kind = RVA__STAGE_RESIDUAL});
	return RVA_OK;
}

rva_status rva_pipeline_add_custom(rva_pipeline *p, rva_custom_fn fn, void *user) {
	if (!p || !fn)
		return rva__fail(RVA_ENULL, "rva_pipeline_add_custom: %s is NULL",
		                 !p ? "pipeline" : "callback");
	rva_status st = reserve(p);
	if (st != RVA_OK)
		return st;
	push(p, &(rva__stage){.kind = RVA__STAGE_CUSTOM, .fn = fn, .user = user});
	return RVA_OK;
}

rva_status rva_pipeline_stage_count(const rva_pipeline *p, size_t *n) {
	if (!p || !n)
		return rva__fail(RVA_ENULL, "rva_pipeline_stage_count: %s is NULL",
		                 !p ? "pipeline" : "n");
	*n = p->n;
	return RVA_OK;
}

rva_status rva_pipeline_set_mode(rva_pipeline *p, rva_pipeline_mode mode) {
	if (!p)
		return rva__fail(RVA_ENULL, "rva_pipeline_set_mode: pipeline is NULL");
	if ((unsigned)mode >= RVA_PIPELINE_MODE_COUNT)
		return rva__fail(RVA_EINVAL, "rva_pipeline_set_mode: invalid mode %d", (int)mode);
	if (atomic_load_explicit(&p->ran, memory_order_acquire))
		return rva__fail(RVA_ESTATE, "rva_pipeline_set_mode: the pipeline has already run; "
		                 "its mode is fixed (build another pipeline)");
	if (mode == RVA_PIPELINE_SELF && p->dim && p->kv_dim != p->dim)
		return rva__fail(RVA_EDIM, "rva_pipeline_set_mode: self-attention takes keys/values "
		                 "from the stream of %zu columns, the attention stages read rows of "
		                 "%zu (grouped-query attention)", p->dim, p->kv_dim);
	p->mode = mode;
	return RVA_OK;
}

rva_status rva_pipeline_mode_get(const rva_pipeline *p, rva_pipeline_mode *mode) {
	if (!p || !mode)
		return rva__fail(RVA_ENULL, "rva_pipeline_mode_get: %s is NULL",
		                 !p ? "pipeline" : "mode");
	*mode = p->mode;
	return RVA_OK;
}

/* RVA_EEMPTY for a pipeline that cannot run (no stage, or no attention stage). */
static rva_status check_runnable(const rva_pipeline *p, const char *who) {
	if (p->n == 0)
		return rva__fail(RVA_EEMPTY, "%s: the pipeline has no stage", who);
	if (!p->dim)
		return rva__fail(RVA_EEMPTY, "%s: the pipeline has no attention stage (its dim is "
		                 "unknown)", who);
	return RVA_OK;
}

static rva_status plan_pipeline(const void *op, rva__plan_io *io, rva__graph *g) {
	return rva__pipeline_plan(op, io, g);
}

/* The serial batch path (rva_pipeline_run_batch's body, also used by the single query). */
static rva_status run_serial(const rva_pipeline *p, const rva_batch *batch,
                             const rva_runtime *rt, rva_status *seq_status) {
	return rva__run_serial(plan_pipeline, p, batch->seqs, batch->count, rt, seq_status);
}

rva_status rva_pipeline_run_batch(const rva_pipeline *p, const rva_batch *batch,
                                  const rva_runtime *rt, rva_status *seq_status) {
	if (!p || !batch)
		return rva__fail(RVA_ENULL, "rva_pipeline_run_batch: %s is NULL",
		                 !p ? "pipeline" : "batch");
	if (batch->count && !batch->seqs)
		return rva__fail(RVA_ENULL, "rva_pipeline_run_batch: batch has %zu sequences but "
		                 "seqs is NULL", batch->count);
	rva_status st = check_runnable(p, "rva_pipeline_run_batch");
	if (st != RVA_OK)
		return st;
	return run_serial(p, batch, rt, seq_status);
}

/* The single query of a self-attention pipeline (pipeline.h, RVA_PIPELINE_SELF): one
 * sequence of the n_keys context rows followed by the query, every row computed; out gets
 * the query's row. */
static rva_status run_self_single(const rva_pipeline *p, const float *query,
                                  const float *const *keys, const float *const *values,
                                  const uint8_t *mask, size_t n_keys, float *out,
                                  const rva_runtime *rt) {
	static const char who[] = "rva_pipeline_run";
	size_t dim = p->dim, row_bytes = dim * sizeof(float), rows, elems;
	if (n_keys && (!keys || !values))
		return rva__fail(RVA_ENULL, "%s: %s is NULL", who, !keys ? "keys" : "values");
	for (size_t i = 0; i < n_keys; i++) {
		if (!keys[i] || !values[i])
			return rva__fail(RVA_ENULL, "%s: %s[%zu] is NULL", who,
			                 !keys[i] ? "keys" : "values", i);
		if (values[i] != keys[i] && memcmp(values[i], keys[i], row_bytes) != 0)
			return rva__fail(RVA_EINVAL, "%s: self-attention pipeline: values[%zu] differs "
			                 "from keys[%zu] (K and V both come from the stream: pass the "
			                 "context rows as both)", who, i, i);
	}
	if (!rva__add_ok(n_keys, 1, &rows) || !rva__mul_ok(rows, dim, &elems))
		return rva__fail(RVA_EOVERFLOW, "%s: %zu context rows of %zu floats overflow", who,
		                 n_keys, dim);
	float *buf; /* the sequence's rows, then its output rows */
	rva_status st = rva__alloc_array((void **)&buf, elems, 2 * sizeof(float),
	                                 "self-attention sequence");
	if (st != RVA_OK)
		return st;
	uint8_t *m = NULL;
	if (mask) {
		if ((st = rva__alloc_array((void **)&m, rows, 1, "self-attention mask")) != RVA_OK) {
			rva__free(buf);
			return st;
		}
		memcpy(m, mask, n_keys);
		m[n_keys] = 1; /* the query sees itself */
	}
	for (size_t i = 0; i < n_keys; i++)
		memcpy(buf + i * dim, keys[i], row_bytes);
	memcpy(buf + n_keys * dim, query, row_bytes);
	rva_seq s = {.nq = rows, .nk = rows, .q = buf, .k = buf, .v = buf, .out = buf + elems,
	             .key_mask = m};
	rva_batch b = {.count = 1, .seqs = &s};
	st = run_serial(p, &b, rt, NULL);
	if (st == RVA_OK)
		memcpy(out, buf + elems + n_keys * dim, row_bytes);
	rva__free(m);
	rva__free(buf);
	return st;
}

rva_status rva_pipeline_run_ex(const rva_pipeline *p, const float *query,
                               const float *const *keys, const float *const *values,
                               const uint8_t *mask, size_t n_keys, float *out,
                               const rva_runtime *rt) {
	if (!p || !query || !out)
		return rva__fail(RVA_ENULL, "rva_pipeline_run: %s is NULL",
		                 !p ? "pipeline" : !query ? "query" : "out");
	rva_status st = check_runnable(p, "rva_pipeline_run");
	if (st != RVA_OK)
		return st;
	if (p->mode == RVA_PIPELINE_SELF)
		return run_self_single(p, query, keys, values, mask, n_keys, out, rt);
	size_t kvd = p->kv_dim;
	float *kv;
	if ((st = rva__gather_kv("rva_pipeline_run", keys, values, n_keys, kvd, kvd, &kv)) != RVA_OK)
		return st;
	rva_seq s = {.nq = 1, .nk = n_keys, .q = query, .k = kv, .v = kv + n_keys * kvd,
	             .out = out, .key_mask = mask};
	rva_batch b = {.count = 1, .seqs = &s};
	st = run_serial(p, &b, rt, NULL);
	rva__free(kv);
	return st;
}

rva_status rva_pipeline_run(const rva_pipeline *p, const float *query,
                            const float *const *keys, const float *const *values,
                            size_t n_keys, float *out) {
	return rva_pipeline_run_ex(p, query, keys, values, NULL, n_keys, out, NULL);
}

/* ---- pre-built transformer blocks ---------------------------------------------------- */

static rva_status block(rva_attention *att, float dropout, bool prenorm, rva_pipeline **out,
                        const char *who) {
	if (!att || !out)
		return rva__fail(RVA_ENULL, "%s: %s is NULL", who, !att ? "attention" : "out");
	if (!(dropout >= 0.0f && dropout < 1.0f))
		return rva__fail(RVA_ERANGE, "%s: dropout %g outside [0, 1)", who, (double)dropout);
	rva_pipeline *p;
	rva_status st = rva_pipeline_create(&p);
	if (st != RVA_OK)
		return st;
	p->mode = RVA_PIPELINE_AUTO; /* self-attention batches get a true pre-norm block */
	/* The block holds its own reference while it is assembled: a failure below destroys
	 * the block (and that reference) and leaves the caller's reference untouched. */
	if ((st = rva_attention_retain(att)) != RVA_OK) {
		rva_pipeline_destroy(p);
		return st;
	}
	if (prenorm)
		st = rva_pipeline_add_norm(p, RVA_NORM_LAYER);
	if (st == RVA_OK)
		st = rva_pipeline_add_attention(p, att);
	if (st != RVA_OK) { /* the pipeline did not take the block's reference */
		rva_attention_release(att);
		rva_pipeline_destroy(p);
		return st;
	}
	st = rva_pipeline_add_dropout(p, dropout);
	if (st == RVA_OK)
		st = rva_pipeline_add_residual(p);
	if (st == RVA_OK && !prenorm)
		st = rva_pipeline_add_norm(p, RVA_NORM_LAYER);
	if (st != RVA_OK) {
		rva_pipeline_destroy(p);
		return st;
	}
	/* Success: the pipeline keeps the caller's reference (the one it was given), so the
	 * block's own goes. It cannot be the last: the pipeline holds one. */
	rva_attention_release(att);
	*out = p;
	return RVA_OK;
}

rva_status rva_transformer_block(rva_attention *att, float dropout, rva_pipeline **out) {
	return block(att, dropout, false, out, "rva_transformer_block");
}

rva_status rva_prenorm_transformer_block(rva_attention *att, float dropout,
                                         rva_pipeline **out) {
	return block(att, dropout, true, out, "rva_prenorm_transformer_block");
}

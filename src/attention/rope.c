/*
 * Rotary position embedding for the softmax engine (rope.h; definitions in config.h).
 *
 * A job with RoPE rotates each sequence's query rows and key rows once, in tasks of whole
 * row ranges that run before the attention tasks and write packed rotated copies into job
 * memory (O(rows x width) extra memory and work, against the O(nq x nk x width) of the
 * attention): the tile loop, the split-KV chunks and the decode kernels then read rotated
 * rows exactly as they read unrotated ones, and no (query tile x key tile) pair rotates
 * anything again.
 */
#include <math.h>
#include <string.h>

#include "attention/rope.h"
#include "rvattn/rope.h"
#include "core/internal.h"
#include "kernels/half.h"

rva_status rva__rope_init(rva__rope *r, const rva_config *c, size_t head_dim) {
	memset(r, 0, sizeof *r);
	if (c->rope == RVA_ROPE_NONE)
		return RVA_OK;
	size_t R = c->rope_dim, half = R / 2;
	r->dim = R;
	r->head_dim = head_dim;
	if (half == 0) { /* head_dim 1: nothing to rotate */
		r->layout = c->rope;
		return RVA_OK;
	}
	rva_status st = rva__alloc_array((void **)&r->w, 3 * half, sizeof(double), "RoPE angles");
	if (st != RVA_OK)
		return st;
	r->layout = c->rope;
	r->cw = r->w + half;
	r->sw = r->cw + half;
	double theta = c->rope_theta, lin = 1.0;
	if (c->rope_scaling == RVA_ROPE_SCALING_NTK)
		theta *= pow((double)c->rope_factor, (double)R / (double)(R - 2));
	else if (c->rope_scaling == RVA_ROPE_SCALING_LINEAR)
		lin = (double)c->rope_factor;
	for (size_t i = 0; i < half; i++) {
		r->w[i] = pow(theta, -(double)(2 * i) / (double)R) / lin;
		r->cw[i] = cos(r->w[i]);
		r->sw[i] = sin(r->w[i]);
	}
	return RVA_OK;
}

void rva__rope_free(rva__rope *r) {
	rva__free(r->w);
	memset(r, 0, sizeof *r);
}

size_t rva__rope_scratch_doubles(const rva__rope *r) {
	/* cos and sin per pair in double and in float, then one head as floats (input) and
	 * floats (output) */
	return r->dim + r->dim / 2 + r->head_dim + 16;
}

/* cos / sin of p * w_i, exactly (libm, in double). */
static void angles_exact(const rva__rope *r, int64_t p, double *c, double *s) {
	for (size_t i = 0; i < r->dim / 2; i++) {
		double a = (double)p * r->w[i];
		c[i] = cos(a);
		s[i] = sin(a);
	}
}

/* One position further: (c, s) of p -> of p + 1 (angle addition). */
static void angles_step(const rva__rope *r, double *c, double *s) {
	for (size_t i = 0; i < r->dim / 2; i++) {
		double c0 = c[i], s0 = s[i];
		c[i] = c0 * r->cw[i] - s0 * r->sw[i];
		s[i] = s0 * r->cw[i] + c0 * r->sw[i];
	}
}

/* (c, s) of position p as the rows loop reaches it: exact at multiples of 64, then steps;
 * so the bits depend on p alone, whichever row a task starts from. */
static void angles_seek(const rva__rope *r, int64_t p, double *c, double *s) {
	int64_t p0 = p & ~(int64_t)63; /* floor to a multiple of 64, also below 0 */
	angles_exact(r, p0, c, s);
	for (int64_t q = p0; q < p; q++)
		angles_step(r, c, s);
}

/* Rotates one head of D floats x into y (y may be x: each pair is read before it is
 * written). c and s: the row's cos and sin per pair, rounded to float; the products are
 * fp32 (the attention's own precision), in loops the compiler vectorises. */
static void rotate_head(const rva__rope *r, const float *c, const float *s, const float *x,
                        float *y) {
	size_t half = r->dim / 2;
	if (r->layout == RVA_ROPE_NEOX) {
		for (size_t i = 0; i < half; i++) {
			float x0 = x[i], x1 = x[i + half];
			y[i] = x0 * c[i] - x1 * s[i];
			y[i + half] = x0 * s[i] + x1 * c[i];
		}
	} else {
		for (size_t i = 0; i < half; i++) {
			float x0 = x[2 * i], x1 = x[2 * i + 1];
			y[2 * i] = x0 * c[i] - x1 * s[i];
			y[2 * i + 1] = x0 * s[i] + x1 * c[i];
		}
	}
	if (y != x)
		for (size_t d = r->dim; d < r->head_dim; d++)
			y[d] = x[d];
}

void rva__rope_rows(const rva__rope *r, int64_t pos0, size_t n, size_t heads, rva_dtype t,
                    const void *src, size_t src_stride, size_t src_head_stride, void *dst,
                    size_t dst_stride, size_t dst_head_stride, double *scratch) {
	size_t D = r->head_dim, half = r->dim / 2;
	double *c = scratch, *s = scratch + half;
	float *cf = (float *)(s + half), *sf = cf + half;
	float *x = sf + half, *y = x + D;
	for (size_t k = 0; k < n; k++) {
		int64_t p = pos0 + (int64_t)k;
		if (half) {
			if (k == 0)
				angles_seek(r, p, c, s);
			else if ((p & 63) == 0)
				angles_exact(r, p, c, s);
			else
				angles_step(r, c, s);
			for (size_t i = 0; i < half; i++) {
				cf[i] = (float)c[i];
				sf[i] = (float)s[i];
			}
		}
		for (size_t h = 0; h < heads; h++) {
			const void *in = rva__elem_at(src, t, k * src_stride + h * src_head_stride);
			void *out = rva__elem_at_mut(dst, t, k * dst_stride + h * dst_head_stride);
			if (t == RVA_F32) {
				rotate_head(r, cf, sf, in, out); /* in place when in == out */
				continue;
			}
			rva__cvt_to_f32(t, in, x, D);
			rotate_head(r, cf, sf, x, y);
			rva__cvt_from_f32(t, y, out, D);
		}
	}
}

/* ---- planning ------------------------------------------------------------------------ */

/* Rows of one rotation task: about 2^17 elements, whole multiples of 64 rows (the exact
 * angle points), fixed by the shape. */
static size_t task_rows(size_t width) {
	size_t rows = ((size_t)1 << 17) / (width ? width : 1);
	return rva__round_up(rva__max(rows, 64), 64);
}

typedef struct rope_op {
	const rva_attention *att;
	const rva__rope *r;
	const rva__score_mods *mods;
	const rva_seq *src;          /* the caller's descriptors (normalised) */
	const rva_seq *dst;          /* the rotated ones (q, k point to job memory) */
	const rva__kv_pages *pages;  /* NULL or per sequence */
} rope_op;

/* A rotation task: a = 0 queries / 1 keys, c = first row, d = rows. */
static rva_status task_rope(const rva__task *t, rva__exec_ctx *x) {
	const rope_op *op = t->ctx;
	const rva_attention *att = op->att;
	const rva_seq *in = &op->src[t->seq], *out = &op->dst[t->seq];
	size_t D = att->head_dim, r0 = t->c, n = t->d;
	if (t->a == 0) {
		int64_t pos = rva__score_qpos0(op->mods, in->nq, in->nk) + (int64_t)in->q_pos +
		              (int64_t)r0;
		size_t hs = in->q_head_stride ? in->q_head_stride : D;
		rva__rope_rows(op->r, pos, n, att->cfg.heads, in->q_dtype,
		               rva__elem_at(in->q, in->q_dtype, r0 * in->q_stride), in->q_stride, hs,
		               rva__elem_at_mut((void *)out->q, in->q_dtype, r0 * out->q_stride),
		               out->q_stride, D, x->scratch);
		return RVA_OK;
	}
	int64_t pos = (int64_t)in->k_pos + (int64_t)r0;
	size_t hs = in->k_head_stride ? in->k_head_stride : D;
	rva__rope_rows(op->r, pos, n, att->kv_heads, in->k_dtype,
	               rva__elem_at(in->k, in->k_dtype, r0 * in->k_stride), in->k_stride, hs,
	               rva__elem_at_mut((void *)out->k, in->k_dtype, r0 * out->k_stride),
	               out->k_stride, D, x->scratch);
	return RVA_OK;
}

/* Plans the tasks rotating rows [0, rows) of one side of sequence s, each after `after`
 * and before `join`. */
static rva_status plan_side(rva__graph *g, const rope_op *op, uint32_t s, uint32_t side,
                            size_t rows, size_t width, uint32_t after, uint32_t join) {
	size_t step = task_rows(width);
	rva_status st;
	for (size_t r0 = 0; r0 < rows; r0 += step) {
		size_t n = rva__min(step, rows - r0);
		uint32_t id;
		if ((st = rva__graph_add(g, task_rope, op, s, side, 0, (uint32_t)r0, (uint32_t)n,
		                         (float)(6.0 * (double)n * (double)width), &id)) != RVA_OK ||
		    (st = rva__graph_edge(g, after, id)) != RVA_OK ||
		    (st = rva__graph_edge(g, id, join)) != RVA_OK)
			return st;
	}
	return RVA_OK;
}

rva_status rva__rope_plan(const rva_attention *att, const rva__rope *r,
                          const rva__score_mods *mods, rva__plan_io *io, rva__graph *g) {
	size_t n = io->nseq ? io->nseq : 1;
	rope_op *op = rva__graph_alloc(g, sizeof *op);
	rva_seq *dst = rva__graph_alloc_array(g, n, sizeof *dst);
	uint32_t *after = rva__graph_alloc_array(g, n, sizeof *after);
	if (!op || !dst || !after)
		return RVA_ENOMEM;
	*op = (rope_op){.att = att, .r = r, .mods = mods, .src = io->seqs, .dst = dst,
	                .pages = io->pages};
	size_t dim = att->cfg.dim, kvw = att->kv_heads * att->head_dim;
	rva__graph_need_scratch(g, rva__rope_scratch_doubles(r) * sizeof(double) + 64);
	rva_status st;
	for (size_t s = 0; s < io->nseq; s++) {
		const rva_seq *in = &io->seqs[s];
		dst[s] = *in;
		after[s] = rva__plan_after(io, s);
		if (io->seq_status[s] != RVA_OK || in->nq == 0)
			continue;
		bool paged = io->pages && rva__kv_paged(&io->pages[s]);
		size_t qb, kb = 0;
		if (!rva__mul3_ok(in->nq, dim, rva__dtype_size(in->q_dtype), &qb) ||
		    (!paged && !rva__mul3_ok(in->nk, kvw, rva__dtype_size(in->k_dtype), &kb))) {
			io->seq_status[s] = rva__fail(RVA_EOVERFLOW, "sequence %zu: the rotated query / "
			                              "key rows (RoPE) overflow size_t", s);
			if (io->details && !io->details[s])
				io->details[s] = rva__strdup(rva_last_error());
			continue;
		}
		void *rq = rva__graph_alloc_untouched(g, qb, 1);
		void *rk = paged ? NULL : rva__graph_alloc_untouched(g, kb, 1);
		if (!rq || (!paged && !rk))
			return RVA_ENOMEM;
		dst[s].q = rq;
		dst[s].q_stride = dim;
		dst[s].q_head_stride = 0;
		if (!paged) {
			dst[s].k = rk;
			dst[s].k_stride = kvw;
			dst[s].k_head_stride = 0;
		}
		uint32_t join;
		if ((st = rva__graph_add_join(g, (uint32_t)s, &join)) != RVA_OK ||
		    (st = plan_side(g, op, (uint32_t)s, 0, in->nq, dim, after[s], join)) != RVA_OK ||
		    (!paged &&
		     (st = plan_side(g, op, (uint32_t)s, 1, in->nk, kvw, after[s], join)) != RVA_OK))
			return st;
		after[s] = join;
	}
	io->seqs = dst;
	io->after = after;
	return RVA_OK;
}

/* ---- rva_rope_apply (rvattn/rope.h) --------------------------------------------------- */

rva_status rva_rope_apply(const rva_attention *att, void *rows, rva_dtype t, size_t stride,
                          size_t heads, size_t n, size_t pos0) {
	if (!att || (!rows && n > 0))
		return rva__fail(RVA_ENULL, "rva_rope_apply: %s is NULL", !att ? "att" : "rows");
	if (att->cfg.rope == RVA_ROPE_NONE)
		return rva__fail(RVA_EINVAL, "rva_rope_apply: the attention has no rope");
	if (!rva__dtype_size(t))
		return rva__fail(RVA_EINVAL, "rva_rope_apply: element type %d is not an rva_dtype",
		                 (int)t);
	size_t D = att->head_dim, width;
	if (heads == 0 || !rva__mul_ok(heads, D, &width) || stride < width)
		return rva__fail(RVA_EDIM, "rva_rope_apply: %zu heads of %zu elements need a stride "
		                 "of at least their width (stride %zu)", heads, D, stride);
	if (pos0 >= ((size_t)1 << 47) || n >= ((size_t)1 << 47) - pos0)
		return rva__fail(RVA_ERANGE, "rva_rope_apply: positions %zu + %zu rows are beyond "
		                 "2^47", pos0, n);
	if (n == 0)
		return RVA_OK;
	rva__rope r;
	rva_status st = rva__rope_init(&r, &att->cfg, D);
	if (st != RVA_OK)
		return st;
	double *scratch;
	st = rva__alloc_array((void **)&scratch, rva__rope_scratch_doubles(&r), sizeof(double),
	                      "RoPE scratch");
	if (st == RVA_OK) {
		rva__rope_rows(&r, (int64_t)pos0, n, heads, t, rows, stride, D, rows, stride, D,
		               scratch);
		rva__free(scratch);
	}
	rva__rope_free(&r);
	return st;
}

/*
 * Half-precision tensors for mechanisms without half kernels (linear, hyperbolic, MoE):
 * each sequence with a bf16/fp16 q, k, v or out gets fp32 copies in job memory; a task of
 * that sequence converts its half inputs before the mechanism's tasks run, and another
 * rounds the fp32 output into the caller's half output after them. Conversion runs in the
 * job's tasks (in parallel across sequences, on the workers), never on the submitting
 * thread; the memory is the size of that sequence's half tensors in fp32. Conversion is
 * exact (widening) and round-to-nearest-even (narrowing): outputs are bit-identical for
 * any thread count.
 */
#include "attention/half_convert.h"

#include "attention/softmax_part.h"
#include "core/internal.h"
#include "kernels/half.h"

/* Per-op context: the caller's sequences and their fp32 stand-ins. */
typedef struct cvt_op {
	const rva_attention *att;
	const rva_seq *orig;    /* the caller's (normalised) descriptors */
	const rva_seq *conv;    /* what the mechanism computes on */
	float *(*buf)[3];       /* per sequence: its fp32 q, k, v copies (NULL: not half) */
} cvt_op;

static bool all_f32(const rva_seq *s) {
	return s->q_dtype == RVA_F32 && s->k_dtype == RVA_F32 && s->v_dtype == RVA_F32 &&
	       s->out_dtype == RVA_F32;
}

bool rva__half_needs_convert(const rva_attention *att, const rva__plan_io *io) {
	if (rva__softmax_is(att))
		return false; /* the softmax family reads and writes half tensors itself */
	for (size_t s = 0; s < io->nseq; s++)
		if (io->seq_status[s] == RVA_OK && io->seqs[s].nq && !all_f32(&io->seqs[s]))
			return true;
	return false;
}

/* Task: a = 0 converts the inputs of sequence t->seq, a = 1 rounds its output. Rows go
 * in blocks so a large sequence's conversion stays one task (memory-bound, ~1 byte/ns). */
static rva_status task_convert(const rva__task *t, rva__exec_ctx *x) {
	(void)x;
	const cvt_op *op = t->ctx;
	const rva_seq *o = &op->orig[t->seq], *c = &op->conv[t->seq];
	size_t dim = op->att->cfg.dim, kvd = op->att->kv_dim;
	if (t->a == 0) {
		float **b = op->buf[t->seq];
		if (b[0])
			rva__cvt_rows_to_f32(o->q_dtype, o->q, o->q_stride, o->nq, dim, b[0], dim);
		if (b[1])
			rva__cvt_rows_to_f32(o->k_dtype, o->k, o->k_stride, o->nk, kvd, b[1], kvd);
		if (b[2])
			rva__cvt_rows_to_f32(o->v_dtype, o->v, o->v_stride, o->nk, kvd, b[2], kvd);
	} else {
		rva__cvt_rows_from_f32(o->out_dtype, RVA__F32(c->out), c->out_stride, o->nq, dim,
		                       o->out, o->out_stride);
	}
	return RVA_OK;
}

/* An fp32 matrix of rows x cols in job memory (packed), not zeroed: the conversion task
 * (inputs) or the mechanism (output) writes every element before anything reads it, and
 * that first touch places the pages on the writing worker's node. */
static float *f32_matrix(rva__graph *g, size_t rows, size_t cols) {
	size_t n;
	if (!rva__mul_ok(rows ? rows : 1, cols, &n)) {
		rva__fail(RVA_EOVERFLOW, "half conversion: %zu rows x %zu columns overflow", rows,
		          cols);
		return NULL;
	}
	return rva__graph_alloc_untouched(g, n, sizeof(float));
}

rva_status rva__half_plan_converted(const rva_attention *att, rva__plan_io *io,
                                    rva__graph *g) {
	size_t n = io->nseq ? io->nseq : 1, dim = att->cfg.dim, kvd = att->kv_dim;
	cvt_op *op = rva__graph_alloc(g, sizeof *op);
	rva_seq *conv = rva__graph_alloc_array(g, n, sizeof *conv);
	uint32_t *after = rva__graph_alloc_array(g, n, sizeof *after);
	uint32_t *done = rva__graph_alloc_array(g, n, sizeof *done);
	float *(*buf)[3] = rva__graph_alloc_array(g, n, sizeof *buf);
	if (!op || !conv || !after || !done || !buf)
		return RVA_ENOMEM;
	*op = (cvt_op){.att = att, .orig = io->seqs, .conv = conv, .buf = buf};
	rva_status st;
	for (size_t s = 0; s < io->nseq; s++) {
		const rva_seq *o = &io->seqs[s];
		conv[s] = *o;
		after[s] = rva__plan_after(io, s);
		if (io->seq_status[s] != RVA_OK || !o->nq || all_f32(o))
			continue;
		rva_seq *c = &conv[s];
		if (o->q_dtype != RVA_F32) {
			if (!(c->q = buf[s][0] = f32_matrix(g, o->nq, dim)))
				return RVA_ENOMEM;
			c->q_stride = dim;
		}
		if (o->k_dtype != RVA_F32) {
			if (!(c->k = buf[s][1] = f32_matrix(g, o->nk, kvd)))
				return RVA_ENOMEM;
			c->k_stride = kvd;
		}
		if (o->v_dtype != RVA_F32) {
			if (!(c->v = buf[s][2] = f32_matrix(g, o->nk, kvd)))
				return RVA_ENOMEM;
			c->v_stride = kvd;
		}
		if (o->out_dtype != RVA_F32) {
			if (!(c->out = f32_matrix(g, o->nq, dim)))
				return RVA_ENOMEM;
			c->out_stride = dim;
		}
		c->q_dtype = c->k_dtype = c->v_dtype = c->out_dtype = RVA_F32;
		if (o->q_dtype != RVA_F32 || o->k_dtype != RVA_F32 || o->v_dtype != RVA_F32) {
			uint32_t id;
			float cost = (float)((double)o->nq * (double)dim + 2.0 * (double)o->nk * (double)kvd);
			if ((st = rva__graph_add(g, task_convert, op, (uint32_t)s, 0, 0, 0, 0, cost,
			                         &id)) != RVA_OK ||
			    (st = rva__graph_edge(g, after[s], id)) != RVA_OK)
				return st;
			after[s] = id;
		}
	}
	rva__plan_io sub = *io;
	sub.seqs = conv;
	sub.after = after;
	sub.done = done;
	if ((st = att->ops->plan(att, &sub, g)) != RVA_OK)
		return st;
	for (size_t s = 0; s < io->nseq; s++) {
		io->done[s] = done[s];
		const rva_seq *o = &io->seqs[s];
		if (io->seq_status[s] != RVA_OK || !o->nq || o->out_dtype == RVA_F32)
			continue;
		uint32_t id;
		if ((st = rva__graph_add(g, task_convert, op, (uint32_t)s, 1, 0, 0, 0,
		                         (float)((double)o->nq * (double)dim), &id)) != RVA_OK ||
		    (st = rva__graph_edge(g, done[s], id)) != RVA_OK)
			return st;
		io->done[s] = id;
	}
	return RVA_OK;
}

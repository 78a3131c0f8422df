/*
 * Rotary position embedding (RoPE, config.h: rva_rope) for the softmax engine: the
 * resolved parameters of one attention, the row rotation, and the planning step that
 * rotates a job's queries and keys once into job memory before its attention tasks.
 *
 * Angles: pair i of a head at position p turns by p * w_i with
 *   w_i = theta'^(-2i / R) / F_linear,   R = rope_dim,
 *   theta' = theta * F^(R / (R - 2)) under NTK scaling, F_linear = F under linear scaling.
 * cos and sin of p * w_i are computed in double: exactly (libm) at every position that is a
 * multiple of 64, and from there by the angle-addition recurrence one position at a time
 * (each step one complex product in double, error ~1e-16 per step), then rounded to
 * float. A row's rotation is a function of its position alone (never of the row range a
 * task covers), so queries and keys rotate to the same bits on every path and for any
 * thread count. The products x0 cos - x1 sin are fp32 (about 1 ulp, the precision of the
 * attention that follows), rounded once more to a half row's element type.
 */
#ifndef RVATTN_SRC_ATTENTION_ROPE_H
#define RVATTN_SRC_ATTENTION_ROPE_H

#include <stddef.h>
#include <stdint.h>

#include "attention/attention_internal.h"
#include "attention/score_mods.h"

typedef struct rva__rope {
	rva_rope layout;   /* RVA_ROPE_NONE: inactive, nothing else set */
	size_t dim;        /* R: rotated elements per head (even, <= head_dim) */
	size_t head_dim;
	double *w;         /* R/2 angles per position step */
	double *cw, *sw;   /* cos and sin of w (one step of the recurrence) */
} rva__rope;

/* Positions of RoPE stay below this bound (batch.h: q_pos, k_pos). */
#define RVA__ROPE_MAX_POS ((int64_t)1 << 48)

/* Resolves r from a validated config (rope, theta, scaling, rope_dim resolved). Errors:
 * RVA_ENOMEM. r is safe for rva__rope_free on failure. */
rva_status rva__rope_init(rva__rope *r, const rva_config *c, size_t head_dim);
void rva__rope_free(rva__rope *r);

/* Doubles of scratch rva__rope_rows needs. */
size_t rva__rope_scratch_doubles(const rva__rope *r);

/*
 * Rotates rows [0, n) of `heads` heads: row k at position pos0 + k, head h of row k at
 * element k * src_stride + h * src_head_stride of src (type t), written at
 * k * dst_stride + h * dst_head_stride of dst (type t). dst may equal src with the same
 * strides (in place); otherwise they must not overlap. Elements of a head past rope_dim
 * are copied. scratch: rva__rope_scratch_doubles doubles.
 */
void rva__rope_rows(const rva__rope *r, int64_t pos0, size_t n, size_t heads, rva_dtype t,
                    const void *src, size_t src_stride, size_t src_head_stride, void *dst,
                    size_t dst_stride, size_t dst_head_stride, double *scratch);

/*
 * Plans the rotation of att's queries and keys for every planned sequence of io (status
 * OK, nq > 0) and redirects io: io->seqs becomes job-memory descriptors whose q (and k)
 * point to rotated packed copies (the input's element type, default head strides), and
 * io->after a per-sequence join that follows the rotation tasks, so every attention task
 * planned on io afterwards reads rotated rows. Paged sequences (io->pages) rotate their
 * queries only: the cache stores keys rotated (kv_cache.h). A sequence whose copies
 * cannot be sized fails alone (RVA_EOVERFLOW). Returns RVA_ENOMEM for job-wide failures.
 */
rva_status rva__rope_plan(const rva_attention *att, const rva__rope *r,
                          const rva__score_mods *mods, rva__plan_io *io, rva__graph *g);

#endif

/*
 * rvattn — batches of sequences (the data model of the batched API).
 *
 * A sequence holds nq query rows and nk key/value rows. Every matrix is a pointer plus a
 * row stride counted in floats (>= the row width), so callers hand in BSHD tensors,
 * packed buffers or slices of larger arrays without copies. A batch is many sequences of
 * possibly different lengths (ragged); a dense [B, N, H, D] tensor is the special case of
 * equal lengths. All memory is the caller's: rvattn reads q, k, v, key_mask and writes
 * out, and keeps no pointer after the call (or, for submitted jobs, after the job ends).
 *
 * Causal masking with nq != nk aligns the last query with the last key: query i sits at
 * position nk - nq + i (decoding). A query row that sees no key (causal with nq > nk:
 * rows i < nq - nk; every key masked by key_mask) gets an output row of zeros on every
 * mechanism and path; PyTorch's scaled_dot_product_attention gives NaN for such rows.
 *
 * Aliasing: a sequence's output must not share memory with its q, k, v or key_mask (the
 * numbers would be wrong: tiles read inputs after other tiles wrote outputs). Every call
 * that runs a batch checks the byte ranges [first byte, last byte] of each matrix and
 * refuses an overlapping sequence with RVA_EINVAL naming it (that sequence fails alone;
 * the others complete). An output interleaved with an input in one row buffer (the same
 * stride, disjoint columns, e.g. rows of [q | out]) is not an overlap. Outputs of
 * different sequences must not overlap each other either (not checked). In place is
 * supported only by the single-query calls (rva_compute*, see attention.h).
 */
#ifndef RVATTN_BATCH_H
#define RVATTN_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rva_seq {
	size_t nq, nk;          /* query rows, key/value rows */
	const float *q;         /* nq rows of dim floats */
	size_t q_stride;        /* floats between query rows; 0 = dim (packed) */
	const float *k;         /* nk rows of kv_heads*head_dim floats */
	size_t k_stride;        /* 0 = packed */
	const float *v;         /* nk rows of kv_heads*head_dim floats */
	size_t v_stride;        /* 0 = packed */
	float *out;             /* nq rows of dim floats, written */
	size_t out_stride;      /* 0 = dim (packed) */
	const uint8_t *key_mask; /* NULL, or nk bytes: nonzero = key may be attended; a query
	                          * with every key masked gets zeros */
} rva_seq;

typedef struct rva_batch {
	size_t count;           /* number of sequences */
	const rva_seq *seqs;    /* count descriptors (borrowed) */
} rva_batch;

/*
 * Packed (varlen) form, as FlashAttention's varlen API: the rows of all sequences are
 * stacked; sequence s owns query rows [cu_q[s], cu_q[s+1]) and key rows
 * [cu_k[s], cu_k[s+1]). Row strides (in floats) are required here: the packed form
 * knows no dim (q_stride = dim for packed rows). key_mask, when non-NULL, has cu_k[count]
 * bytes.
 */
typedef struct rva_packed_batch {
	size_t count;
	const size_t *cu_q;     /* count + 1 nondecreasing offsets, cu_q[0] == 0 */
	const size_t *cu_k;     /* count + 1 nondecreasing offsets, cu_k[0] == 0 */
	const float *q; size_t q_stride;
	const float *k; size_t k_stride;
	const float *v; size_t v_stride;
	float *out; size_t out_stride;
	const uint8_t *key_mask;
} rva_packed_batch;

/*
 * Expands a packed batch into `p->count` sequence descriptors written to seqs[], which the
 * caller provides (capacity `cap` entries). The result points into the packed buffers
 * (an empty sequence's pointers, on the side that has no rows, are NULL).
 * Errors: RVA_ENULL; RVA_EOVERFLOW when a matrix's rows x stride x sizeof(float)
 * overflows; RVA_EINVAL when offsets are not nondecreasing from 0 or a stride
 * is 0; RVA_ERANGE when cap < count.
 */
rva_status rva_batch_unpack(const rva_packed_batch *p, rva_seq *seqs, size_t cap);

#ifdef __cplusplus
}
#endif
#endif

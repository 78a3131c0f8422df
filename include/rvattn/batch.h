/*
 * rvattn — batches of sequences (the data model of the batched API).
 *
 * A sequence holds nq query rows and nk key/value rows. Every matrix is a pointer plus a
 * row stride counted in elements (>= the row width), and optionally a head stride (below),
 * so callers hand in BSHD or BHSD tensors, packed buffers or slices of larger arrays
 * without copies. Each of q, k, v and out has its
 * own element type (rva_dtype below; zero = fp32, so a zero-initialised descriptor holding
 * float pointers means what it always meant). A batch is many sequences of
 * possibly different lengths (ragged); a dense [B, N, H, D] tensor is the special case of
 * equal lengths. All memory is the caller's: rvattn reads q, k, v, key_mask and writes
 * out, and keeps no pointer after the call (or, for submitted jobs, after the job ends).
 *
 * Causal masking with nq != nk aligns the last query with the last key: query i sits at
 * position nk - nq + i (decoding), or at i with rva_config.causal_align top-left. A query
 * row that sees no key (causal with nq > nk: rows i < nq - nk; every key masked) gets an
 * output row of zeros on every mechanism and path; PyTorch's scaled_dot_product_attention gives NaN for such rows.
 *
 * Aliasing: a sequence's output must not share memory with its q, k, v, key_mask, bias or
 * mask (the numbers would be wrong: tiles read inputs after other tiles wrote outputs).
 * Every call that runs a batch checks the byte ranges [first byte, last byte] of each
 * matrix and refuses an overlapping sequence with RVA_EINVAL naming it (that sequence fails alone;
 * the others complete). An output interleaved with an input in one row buffer (the same
 * stride, disjoint columns, e.g. rows of [q | out]) is not an overlap. Outputs of
 * different sequences must not overlap each other either (not checked). In place is
 * supported only by the single-query calls (rva_compute*, see attention.h).
 *
 * Element types and their error model. Accumulation, the softmax and every reduction run in
 * fp32 whatever the storage type; a half tensor is widened exactly (bf16 and fp16 values are
 * fp32 values) and an fp32 result written to a half output is rounded to nearest-even once.
 *  - fp32 everywhere: as before (fp32 rounding of the products and sums).
 *  - bf16 K and V (scaled_dot, multi_head, flash, local_global: the softmax family): Q.K^T
 *    in fp32 over the bf16 inputs (a bf16 query, or an fp32 query rounded to bf16 when K is
 *    bf16), and P rounded to bf16 for P.V when V is bf16, as FlashAttention does. Relative
 *    to the exact attention of the same (rounded) inputs the output error is bounded by
 *    about 2^-8 |V|max (the rounding of P) plus the fp32 terms; the tests state the bound
 *    per path (tests/test_half.c) and check it is no larger than PyTorch's bf16 attention
 *    on the same inputs (tests/test_half_torch.c). On vdpbf16ps (AVX512_BF16) a subnormal
 *    bf16 operand counts as 0, as the instruction defines (each such product is below
 *    2^-126 in magnitude).
 *  - fp16 K and V (softmax family): converted to fp32 on load (F16C where the CPU has it);
 *    the products and P stay fp32: the error is the fp32 path's on the fp16 values.
 *  - Other mechanisms (linear, hyperbolic, MoE): their half tensors are converted to fp32
 *    inside the job's tasks (per sequence, into job memory the size of that sequence's
 *    half tensors in fp32), computed in fp32, and the output rounded to its type.
 * A CPU without AVX512_BF16 or F16C computes the same semantics (bf16 P, fp32 sums) in
 * portable code; results agree to fp32 summation order, and on one CPU they are
 * bit-identical for any thread count. An unknown element type is refused with RVA_EINVAL
 * for that sequence (rva_batch_unpack refuses it for the whole packed batch).
 */
#ifndef RVATTN_BATCH_H
#define RVATTN_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

RVA_BEGIN_DECLS

/* Element type of one tensor. RVA_F32 is 0: zero-initialised descriptors are fp32. */
typedef enum rva_dtype {
	RVA_F32 = 0,            /* IEEE binary32 */
	RVA_BF16 = 1,           /* bfloat16: the upper 16 bits of a binary32 */
	RVA_F16 = 2,            /* IEEE binary16 */
} rva_dtype;

typedef struct rva_seq {
	size_t nq, nk;          /* query rows, key/value rows */
	const void *q;          /* nq rows of dim elements of type q_dtype */
	size_t q_stride;        /* elements between query rows; 0 = dim (packed) */
	const void *k;          /* nk rows of kv_heads*head_dim elements of type k_dtype */
	size_t k_stride;        /* 0 = packed */
	const void *v;          /* nk rows of kv_heads*v_head_dim elements of type v_dtype
	                         * (config.h: v_head_dim, head_dim unless set) */
	size_t v_stride;        /* 0 = packed */
	void *out;              /* nq rows of heads*v_head_dim elements (dim unless v_head_dim
	                         * is set) of type out_dtype, written */
	size_t out_stride;      /* 0 = heads*v_head_dim (packed) */
	const uint8_t *key_mask; /* NULL, or nk bytes: nonzero = key may be attended; a query
	                          * with every key masked gets zeros */
	rva_dtype q_dtype, k_dtype, v_dtype, out_dtype; /* element types; 0 = RVA_F32 */
	/*
	 * Attention-op extras (zero = off, the behaviour of a descriptor without them). Until a
	 * field's section below documents it, rva__validate_seq refuses a non-zero value with
	 * RVA_EINVAL naming the field (never silently ignored).
	 *
	 * Score matrices (bias and mask; softmax mechanisms only: scaled_dot, multi_head,
	 * flash, local_global; others refuse them with RVA_EINVAL). Each is [heads][nq][nk]:
	 * element (h, i, j) for query head h, query row i, key row j at
	 * p[h * head_stride + i * stride + j]; stride 0 = nk (rows packed; otherwise >= nk,
	 * RVA_EDIM); head_stride 0 = one [nq][nk] matrix broadcast over the heads. Read only,
	 * borrowed for the call (or the job); never copied, and no nq x nk matrix is formed
	 * from them: the tiles read their own block. A stride or head stride without its
	 * matrix is refused (RVA_EINVAL), an extent beyond size_t too (RVA_EOVERFLOW), and the
	 * output must not overlap either matrix (the aliasing rule above, checked on the
	 * matrix's whole extent).
	 *  - bias: added to the scaled (and soft-capped) logit, after ALiBi and T5 (config.h,
	 *    "Score modifiers"). -inf hides the pair, as the mask does. The values are not
	 *    scanned (that would read the whole matrix per call): a NaN or +inf makes that
	 *    query row's output NaN, as a NaN in q, k or v does.
	 *  - mask: nonzero = key j visible to query i; zero hides it (with causal, the window,
	 *    the pattern and key_mask: a pair must pass all of them). A row with every key
	 *    hidden gets zeros, as everywhere.
	 * rvattn_mpi (dist.h) refuses both (the matrices are not sent to other ranks).
	 */
	const float *bias;       /* additive logit bias, or NULL */
	size_t bias_stride, bias_head_stride;
	const uint8_t *mask;     /* boolean mask, or NULL */
	size_t mask_stride, mask_head_stride;
	/*
	 * Log-sum-exp output (softmax mechanisms: scaled_dot, multi_head, flash, local_global;
	 * the others refuse a non-NULL lse with RVA_EINVAL). When non-NULL, lse[h *
	 * lse_head_stride + i] receives, for query row i and query head h, the natural log of
	 * the sum over the keys visible to that row of exp(s_ij), s_ij the scaled logit
	 * (scale * q.k plus any bias of the config) before dropout: the row's softmax
	 * normaliser, -inf for a row with no visible key (whose output row is zeros). fp32
	 * whatever out_dtype. lse_head_stride 0 = nq (a packed [heads][nq] array, the layout
	 * of FlashAttention's softmax_lse); otherwise >= nq when heads > 1. Two attentions of
	 * one query over disjoint key sets A and B, with outputs O_A, O_B and LSEs L_A, L_B,
	 * merge into the attention over A u B:
	 *   L = log(exp(L_A) + exp(L_B)),  O = exp(L_A - L) O_A + exp(L_B - L) O_B.
	 * lse must not overlap the output or the inputs (RVA_EINVAL); lse_head_stride without
	 * lse is refused (RVA_EINVAL).
	 */
	float *lse;
	size_t lse_head_stride;
	/*
	 * RoPE position offsets (rva_config.rope, config.h): key row j rotates at position
	 * k_pos + j, query row i at q_pos + its causal_align position (nk - nq + i
	 * bottom-right, the default; i top-left). Zero offsets rotate at the positions the
	 * masks use: a decode step over a whole K/V history (nq = 1, nk = t + 1) rotates its
	 * query at t. Set them when the rows are a window of a longer stream (keys of a
	 * sliding cache starting at stream position k_pos; queries top-left at q_pos). They
	 * move RoPE only, never the masks. Each position (offset plus row) must stay below
	 * 2^48 (RVA_ERANGE); non-zero without rope is refused (RVA_EINVAL).
	 */
	size_t q_pos, k_pos;
	/*
	 * Head strides: elements between consecutive heads of one row; 0 = the head width
	 * (heads side by side within a row, the default). Element d of head h of row i of q
	 * is q[i * q_stride + h * q_head_stride + d] (k, v with kv_heads heads, out likewise).
	 * PyTorch's default [B, H, S, D] tensor passes without a copy: for batch entry b,
	 * q = base + b * H * S * D, q_stride = D, q_head_stride = S * D. Every tensor's
	 * (row, head) slices must be disjoint, in one of two layouts: heads side by side
	 * within rows (head stride >= head width, row stride past the last head) or rows
	 * stacked within heads (row stride >= head width, head stride past the last row);
	 * one row constrains no row stride, one head no head stride. Anything else is
	 * RVA_EDIM, an extent beyond size_t RVA_EOVERFLOW; the aliasing rule above applies to
	 * the span of the heads. Softmax mechanisms only (scaled_dot, multi_head, flash,
	 * local_global, on every path: tiles, split-KV, decode); the others, pipelines and
	 * rvattn_mpi refuse a head stride other than the head width with RVA_EINVAL.
	 */
	size_t q_head_stride, k_head_stride, v_head_stride, out_head_stride;
	uint64_t reserved[8];    /* zero */
} rva_seq;

typedef struct rva_batch {
	size_t count;           /* number of sequences */
	const rva_seq *seqs;    /* count descriptors (borrowed) */
} rva_batch;

/*
 * Packed (varlen) form, as FlashAttention's varlen API: the rows of all sequences are
 * stacked; sequence s owns query rows [cu_q[s], cu_q[s+1]) and key rows
 * [cu_k[s], cu_k[s+1]). Row strides (in elements) are required here: the packed form
 * knows no dim (q_stride = dim for packed rows). key_mask, when non-NULL, has cu_k[count]
 * bytes.
 */
typedef struct rva_packed_batch {
	size_t count;
	const size_t *cu_q;     /* count + 1 nondecreasing offsets, cu_q[0] == 0 */
	const size_t *cu_k;     /* count + 1 nondecreasing offsets, cu_k[0] == 0 */
	const void *q; size_t q_stride;
	const void *k; size_t k_stride;
	const void *v; size_t v_stride;
	void *out; size_t out_stride;
	const uint8_t *key_mask;
	rva_dtype q_dtype, k_dtype, v_dtype, out_dtype; /* element types; 0 = RVA_F32 */
} rva_packed_batch;

/*
 * Expands a packed batch into `p->count` sequence descriptors written to seqs[], which the
 * caller provides (capacity `cap` entries). The result points into the packed buffers
 * (an empty sequence's pointers, on the side that has no rows, are NULL) and carries its
 * element types.
 * Errors: RVA_ENULL; RVA_EOVERFLOW when a matrix's rows x stride x element size
 * overflows; RVA_EINVAL when offsets are not nondecreasing from 0, a stride is 0 or an
 * element type is not an rva_dtype; RVA_ERANGE when cap < count.
 */
rva_status rva_batch_unpack(const rva_packed_batch *p, rva_seq *seqs, size_t cap);

/*
 * Converts n elements: dst[i] = src[i] as type `to`, with the library's own rules (to
 * bf16/fp16: round to nearest even, NaN stays NaN; to fp32: exact; the same type copies
 * the bits; bf16 <-> fp16 goes through fp32). Both buffers are the caller's; they must not
 * overlap unless dst == src and to == from. Errors: RVA_ENULL (dst or src NULL with n > 0);
 * RVA_EINVAL (to or from is not an rva_dtype).
 */
rva_status rva_convert(rva_dtype to, void *dst, rva_dtype from, const void *src, size_t n);

RVA_END_DECLS
#endif

/*
 * The softmax attention engine shared by scaled_dot, multi_head, flash and local_global
 * (and the T5 / Sparse Transformer presets): FlashAttention-2 tiling with online softmax,
 * patterns as block-sparse tile lists, T5 bias, attention dropout, split-KV decoding.
 * The four mechanisms differ only in defaults and pattern; their numbers agree to fp32
 * rounding (the same code computes them).
 */
#ifndef RVATTN_SRC_ATTENTION_SOFTMAX_CORE_H
#define RVATTN_SRC_ATTENTION_SOFTMAX_CORE_H

#include "attention/attention_internal.h"

rva_status rva__softmax_build(rva_attention *att);
void rva__softmax_destroy(rva_attention *att);
rva_status rva__softmax_plan(const rva_attention *att, rva__plan_io *io, rva__graph *g);
rva_status rva__softmax_rows(const rva_attention *att, const rva_seq *seq, uint32_t seq_index,
                             const rva_runtime *rt, const uint32_t *rows, size_t nrows,
                             float *out, size_t out_stride, void *scratch);
size_t rva__softmax_rows_scratch(const rva_attention *att, const rva_seq *seq, size_t nrows);
double rva__softmax_flops(const rva_attention *att, const rva_seq *seq);

/* Initialiser for the op tables of the softmax mechanisms. */
#define RVA__SOFTMAX_OPS(mech)                                                             \
	{                                                                                      \
		.mechanism = (mech), .build = rva__softmax_build, .destroy = rva__softmax_destroy, \
		.plan = rva__softmax_plan, .rows = rva__softmax_rows,                              \
		.rows_scratch = rva__softmax_rows_scratch, .flops = rva__softmax_flops,            \
	}

#endif

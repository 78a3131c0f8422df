/*
 * The MoE router (Switch Transformer / GShard): gate logits W x over the E experts for a
 * query row x (dim floats), a softmax in fp32 ("selective precision"), the top-k experts
 * and their gates: the raw probabilities (Switch) or the probabilities renormalised over
 * the chosen k (GShard). moe.c's router tasks use it; tests call it to compare routing
 * with an oracle.
 */
#ifndef RVATTN_SRC_ATTENTION_ROUTER_H
#define RVATTN_SRC_ATTENTION_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rvattn/attention.h"

/* Everything one routing call needs. */
typedef struct rva__router {
	const float *w;     /* experts x dim, row-major, packed (row stride dim) */
	size_t experts, dim, top_k;
	float jitter;       /* epsilon of the input jitter (used in training mode only) */
	bool normalize;     /* gates renormalised over the chosen k (else raw) */
} rva__router;

/* Bytes of scratch rva__router_rows needs for up to nrows rows (jitter: whether the
 * input jitter is active, see rva__router_jitter_active). */
size_t rva__router_scratch(const rva__router *r, size_t nrows, bool jitter);

/* Whether jitter applies: training mode and epsilon > 0. */
bool rva__router_jitter_active(const rva__router *r, const rva_runtime *rt);

/*
 * Routes the query rows [row0, row0 + n) of q (row stride q_stride; row i at
 * q + i * q_stride): probs receives n x experts gate probabilities (row-major), choice
 * and weight n x top_k entries: the chosen experts by decreasing probability (ties go
 * to the lower expert index) and their gates: the probabilities, divided by their sum
 * over the chosen k when r->normalize. With jitter active, x is first multiplied elementwise by U(1 - eps, 1 + eps) drawn
 * from counter-based random numbers of (rt->seed, rt->step, stream, seq_index, row,
 * element): the same whatever the thread count or tiling. scratch holds at least
 * rva__router_scratch(r, n, jitter) bytes (64-byte aligned).
 */
void rva__router_rows(const rva__router *r, const rva_runtime *rt, uint32_t stream,
                      uint32_t seq_index, const float *q, size_t q_stride, size_t row0,
                      size_t n, float *probs, uint32_t *choice, float *weight,
                      void *scratch);

/*
 * Per-batch capacity of one expert: ceil(factor * tokens * k / experts), computed in
 * double. The float factor carries a representation error (1.1f is 1.10000002...), so
 * a value within 2^-23 (relative) above an integer is taken as that integer: 1.1f x 10
 * gives 11, not 12. Saturates at SIZE_MAX.
 */
size_t rva__moe_capacity(float factor, size_t tokens, size_t k, size_t experts);

#endif

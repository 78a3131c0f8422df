/*
 * Half-precision tensors in the softmax tile loop and the decode loop (softmax_core.c):
 * the pieces that turn a bf16/fp16 query, key or value tile into the fp32 operands of the
 * fp32 kernels, round P to bf16 for P.V when V is bf16, and write fp32 results into a
 * half output. The semantics (batch.h): K and V widened exactly; Q rounded to bf16 when K
 * is bf16 (both operands of Q.K^T are bf16, as with vdpbf16ps); P rounded to bf16 when V is
 * bf16; sums, softmax and the output accumulator in fp32; the output rounded once.
 */
#ifndef RVATTN_SRC_ATTENTION_SOFTMAX_HALF_H
#define RVATTN_SRC_ATTENTION_SOFTMAX_HALF_H

#include <stdbool.h>
#include <stddef.h>

#include "kernels/half.h"
#include "rvattn/batch.h"

/* Whether any of seq's tensors is not fp32. */
static inline bool rva__smh_any(const rva_seq *seq) {
	return seq->q_dtype != RVA_F32 || seq->k_dtype != RVA_F32 || seq->v_dtype != RVA_F32 ||
	       seq->out_dtype != RVA_F32;
}

/* Scratch floats the tile loop needs for half tensors: a query tile (br x D), a key and a
 * value tile (bc x D each), the bf16 pairs of Q and P and the packed V tile
 * (rva__smh_pack_q_bf16, rva__smh_pv_bf16), 64-byte aligned pieces. */
size_t rva__smh_tile_floats(size_t br, size_t bc, size_t D);

/* Scratch floats of the decode loop for half tensors: the query rows (nq x dim) and a key
 * and a value block (kb x kvd each). */
size_t rva__smh_decode_floats(size_t nq, size_t dim, size_t kvd, size_t kb);

/*
 * The fp32 operand of `rows` x `cols` elements of matrix m (type t, row stride `stride`
 * elements) from element offset `off`: m itself (stride unchanged) when t is fp32 and no
 * rounding is asked, else a packed copy in buf (stride cols), rounded to bf16 values when
 * round_bf16. *out_stride receives the stride of the result.
 */
const float *rva__smh_operand(rva_dtype t, const void *m, size_t stride, size_t off,
                              size_t rows, size_t cols, bool round_bf16, float *buf,
                              size_t *out_stride);

/* Rounds P (n floats) to bf16 values when V is bf16 (the P.V operand), else nothing. */
void rva__smh_round_p(const rva_seq *seq, float *p, size_t n);

/*
 * One step of the decode loop (rva__sm_decode_step: scores of K rows [kr, kr + ncur) into
 * sc_cur, P.V of V rows [vr, vr + nprev) with sc_prev into o; rows of seq's K/V slice) for
 * any K/V types: half rows are read in place and widened on load where the CPU has
 * AVX-512 (the step streams the half bytes), else converted into kbuf and vbuf
 * (DECODE rows x kvd floats each) first. fp32 K/V go to rva__sm_decode_step unchanged.
 */
void rva__smh_decode_step(const rva_seq *seq, size_t kr, size_t ncur, size_t vr, size_t nprev,
                          size_t kvd, const float *q, size_t qs, size_t nq, size_t H,
                          size_t G, size_t D, float scale, float *sc_cur,
                          const float *sc_prev, size_t kb, float *o, float *kbuf,
                          float *vbuf);

/*
 * Prefill tiles on vdpbf16ps (K and V bf16, a CPU with AVX512_BF16, the fused backend):
 *  rva__smh_pack_q_bf16: qp[d2][i] = the pair (q[i][2 d2], q[i][2 d2 + 1]) as bf16 (0 past D
 *    and for br <= i < brp); q holds bf16 values already (rounded when K is bf16).
 *  rva__smh_scores_bf16: St[j][i] = scale * sum_d K[j][d] Q[i][d] (K bf16 rows, stride ks).
 *  rva__smh_pv_bf16: O[i][:] += sum_j bf16(P[j][i]) V[j][:] (V bf16 rows; P fp32, rounded
 *    to bf16 (nearest even) as it is paired), pp: scratch of ceil(nk / 2) x brp words, vp:
 *    of rva__smh_vpack_words(nk, D) words (the V tile packed once, pairs of keys
 *    interleaved), both 64-byte aligned.
 * The products are exact and summed in fp32 pairwise (the instruction's order); a
 * subnormal bf16 operand counts as 0 (vdpbf16ps).
 */
bool rva__smh_bf16_tiles(const rva_seq *seq);
void rva__smh_pack_q_bf16(const float *q, size_t qs, size_t br, size_t brp, size_t D,
                          uint32_t *qp);
void rva__smh_scores_bf16(const void *k, size_t ks, size_t nk, const uint32_t *qp, size_t brp,
                          size_t D, float scale, float *st);
void rva__smh_pv_bf16(const float *st, size_t brp, size_t nk, const void *v, size_t vs,
                      size_t br, size_t D, float *o, uint32_t *pp, uint32_t *vp);
size_t rva__smh_vpack_words(size_t bc, size_t D);

/* out row i (type t, stride out_stride elements) = O[i] / l[i], 0 when l[i] = 0, NaN when
 * l[i] is NaN (as the fp32 finish), rounded once to t. */
void rva__smh_finish_rows(const float *o, const float *l, size_t br, size_t D, void *out,
                          rva_dtype t, size_t out_stride);

#endif

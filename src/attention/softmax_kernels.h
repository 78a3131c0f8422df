/*
 * The inner kernels of the softmax tile loop (softmax_core.c), in a key-major layout:
 *
 *   St[j][i] (tile of bc keys x brp query lanes, brp = br rounded up to 16) — scores with
 *   the query index across SIMD lanes, so the online-softmax reductions over keys are
 *   plain vertical vector ops (no horizontal reductions);
 *   O[i][d] (br x D, row-major) — the unnormalised output accumulator.
 *
 * Two backends compute the two products: BLIS sgemm through rva__sgemm (portable, any
 * CPU BLIS supports) and fused AVX-512 micro-kernels that read K and V rows in place
 * (no packing; Q is packed once per task). RVATTN_ATTN_KERNEL=blis forces the former.
 */
#ifndef RVATTN_SRC_ATTENTION_SOFTMAX_KERNELS_H
#define RVATTN_SRC_ATTENTION_SOFTMAX_KERNELS_H

#include <stdbool.h>
#include <stddef.h>

/* Backend selection (once per process; RVATTN_ATTN_KERNEL=auto|blis|avx512). */
bool rva__sm_use_fused(void);

/* Whether few-query (decode) work runs the decode kernels below: always, except under
 * RVATTN_ATTN_KERNEL=blis, where it runs the BLIS tile loop per head and key chunk (the
 * portable twin of the decode path). */
bool rva__sm_use_decode(void);

/* Qt[d][i] = scale * q[i*qs + d] for i < br, 0 for br <= i < brp (fused backend). */
void rva__sm_pack_qt(const float *q, size_t qs, size_t br, size_t brp, size_t D, float scale,
                     float *qt);

/* St[j][i] = sum_d K[j][d] * Qt[d][i], j < nk, i < brp (fused, AVX-512). */
void rva__sm_scores_fused(const float *k, size_t ks, size_t nk, const float *qt, size_t brp,
                          size_t D, float *st);

/* The same, then St[j][i] = softcap * tanh(St[j][i] / softcap) before the store when
 * softcap > 0 (0: none): the bits of rva__score_softcap_tile over the stored tile
 * (src/kernels/vtanh.h), without a second pass over it. */
void rva__sm_scores_fused_capped(const float *k, size_t ks, size_t nk, const float *qt,
                                 size_t brp, size_t D, float softcap, float *st);

/* St[j][i] = scale * K[j] . q[i] for small br (decode), j < nk, i < br (fused). */
void rva__sm_scores_dot(const float *k, size_t ks, size_t nk, const float *q, size_t qs,
                        size_t br, size_t brp, size_t D, float scale, float *st);

/* O[i][d] += sum_j St[j][i] * V[j][d], i < br, d < D (fused, AVX-512). */
void rva__sm_pv_fused(const float *st, size_t brp, size_t nk, const float *v, size_t vs,
                      size_t br, size_t D, float *o);

/*
 * Online-softmax step over a tile of nk key rows: per lane i < brp,
 *   m_new = max(m, max_j St[j][i]); ms = m_new, or 0 when m_new = -inf;
 *   alpha[i] = exp(m - ms); St[j][i] = exp(St[j][i] - ms); l = alpha*l + sum_j St[j][i].
 * Returns whether any alpha differs from 1 (the accumulator needs rescaling).
 */
bool rva__sm_online_softmax(float *st, size_t brp, size_t nk, float *m, float *l,
                            float *alpha);

/* O[i][:] *= alpha[i], i < br. */
void rva__sm_rescale(float *o, size_t br, size_t D, const float *alpha);

/*
 * Decoding (few queries): all heads of a key row at once (whole rows, or groups of four
 * rows where kv heads are shared: src/attention/decode_rows.h), software-pipelined: one
 * step scores the current block (ncur K rows at kc into sc_cur) while it adds the previous
 * block's P.V (nprev V rows at vp, probabilities in sc_prev), so both streams are read
 * together.
 *   sc[(h * nq + i) * kb + j] = scale * q_i,h . K[j]   (kv head of h = h / G)
 *   o[(h * nq + i) * D + :]  += sum_j p[(h * nq + i) * kb + j] * V[j]
 * rva__sm_decode_softmax: per row r < rows of sc, the online update of
 * rva__sm_online_softmax (scores become probabilities, o rows rescaled).
 * Contract: a key row's score, and its V row's addition into o (in row order), are the
 * same operations whatever call or group of rows it comes in: paged K/V cut a step at
 * page boundaries into several calls (softmax_core.c, decode_step_paged) and must give
 * the contiguous call's bits (tests/test_paged_attention.c).
 */
void rva__sm_decode_step(const float *kc, size_t ks, size_t ncur, const float *vp, size_t vs,
                         size_t nprev, const float *q, size_t qs, size_t nq, size_t H, size_t G,
                         size_t D, float scale, float *sc_cur, const float *sc_prev, size_t kb,
                         float *o);
void rva__sm_decode_softmax(size_t nkb, float *sc, size_t rows, size_t D, size_t kb, float *m,
                            float *l, float *o);
#endif

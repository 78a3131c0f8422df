/*
 * Score modifiers of the softmax engine (rva_config's causal_align, sliding window,
 * softcap, ALiBi; rva_seq's additive bias and boolean mask): positions, the window as a
 * tile predicate, the ALiBi slopes, and the per-tile pass that applies them to a score
 * tile in place. Nothing here forms an nq x nk matrix: every function works on one tile.
 */
#ifndef RVATTN_SRC_ATTENTION_SCORE_MODS_H
#define RVATTN_SRC_ATTENTION_SCORE_MODS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attention/pattern.h"
#include "rvattn/batch.h"
#include "rvattn/config.h"
#include "rvattn/status.h"

/* The modifiers of one attention, resolved at build (counts clamped to 2^40 so position
 * arithmetic in int64 cannot overflow: a wider window is the same as an unbounded one). */
typedef struct rva__score_mods {
	bool top_left;          /* causal_align == RVA_CAUSAL_TOP_LEFT */
	bool window;            /* sliding_window */
	int64_t left, right;    /* window counts */
	float softcap;          /* 0 = off */
	const float *slopes;    /* ALiBi: heads slopes, or NULL */
} rva__score_mods;

/* Fills m from a validated config and the attention's own slope array (or NULL). */
void rva__score_mods_init(rva__score_mods *m, const rva_config *c, const float *slopes);

/* Position of query row 0 of a sequence (config.h, rva_causal_align). */
int64_t rva__score_qpos0(const rva__score_mods *m, size_t nq, size_t nk);

/* Whether any per-element work is needed on a tile of head scores besides the window:
 * softcap, ALiBi, or the sequence's bias or mask. */
bool rva__score_elementwise(const rva__score_mods *m, const rva_seq *seq);

/* The window's class of the tile of query positions [qa, qb] x keys [ka, kb] (FULL
 * without a window). */
rva__tile_class rva__window_classify(const rva__score_mods *m, int64_t qa, int64_t qb,
                                     int64_t ka, int64_t kb);

/* Combines two classes of one tile (both must allow a pair). */
rva__tile_class rva__tile_class_and(rva__tile_class a, rva__tile_class b);

/* The first key the window lets query positions >= qa see (0 without a window), and
 * whether any key <= kmax can be seen by positions <= qb (false: nothing from there on). */
int64_t rva__window_first_key(const rva__score_mods *m, int64_t qa);
int64_t rva__window_last_key(const rva__score_mods *m, int64_t qb);

/* Keys [*klo, *khi) that some query of the sequence may see under the window and causal
 * (the rest are never visited); [0, nk) without either. */
void rva__score_key_range(const rva__score_mods *m, bool causal, size_t nq, size_t nk,
                          size_t *klo, size_t *khi);

/* (query, key) pairs the window and causal leave, of a dense pattern (exact). */
double rva__score_pairs_dense(const rva__score_mods *m, bool causal, size_t nq, size_t nk);

/* Softcap on a key-major tile: st[j * ld + i] = softcap * tanh(st / softcap), i < br. */
void rva__score_softcap_tile(const rva__score_mods *m, float *st, size_t ld, size_t br,
                             size_t nkt);

/*
 * The additive and masking modifiers on a key-major tile of head h (st[j * ld + i]: query
 * row q0 + i at position qpos[i], key row k0 + j), i < br, j < nkt, in the order of
 * config.h: ALiBi, the sequence's bias, then -inf where the window (when `window_partial`)
 * or the sequence's boolean mask hides the pair. seq's bias / mask strides are normalised.
 */
void rva__score_tile(const rva__score_mods *m, const rva_seq *seq, size_t h, size_t q0,
                     const int64_t *qpos, size_t br, size_t k0, size_t nkt, float *st,
                     size_t ld, bool window_partial);

/* The same for one row of keys (decode layout): row[j] for key k0 + j, j < nkt, of query
 * row qi at position qp, head h (softcap applied before, by rva__score_softcap_tile). */
void rva__score_row(const rva__score_mods *m, const rva_seq *seq, size_t h, size_t qi,
                    int64_t qp, size_t k0, size_t nkt, float *row, bool window_partial);

/*
 * ALiBi slopes for `heads` heads into a new array (*out, rva__free): a copy of `given`
 * (heads entries, each finite and >= 0: RVA_ERANGE otherwise) or, when given is NULL, the
 * paper's defaults (config.h, rva_config.alibi_slopes). Errors: RVA_ENOMEM, RVA_ERANGE.
 */
rva_status rva__alibi_slopes(size_t heads, const float *given, float **out);

#endif

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

#include "rvattn/status.h"

/*
 * ALiBi slopes for `heads` heads into a new array (*out, rva__free): a copy of `given`
 * (heads entries, each finite and >= 0: RVA_ERANGE otherwise) or, when given is NULL, the
 * paper's defaults (config.h, rva_config.alibi_slopes). Errors: RVA_ENOMEM, RVA_ERANGE.
 */
rva_status rva__alibi_slopes(size_t heads, const float *given, float **out);

#endif

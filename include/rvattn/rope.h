/*
 * rvattn — rotary position embeddings applied by the caller (config.h: rva_config.rope).
 *
 * Attention with RoPE rotates its queries and keys itself, once per job. The paged K/V
 * cache (kv_cache.h) stores keys ROTATED, as vLLM and llama.cpp do: a decode step then
 * reads each cached key once, as without RoPE, instead of rotating the whole history
 * again every step. Callers rotate the key rows of new tokens with rva_rope_apply before
 * rva_kv_cache_append; rva_kv_cache_submit rotates only the queries.
 */
#ifndef RVATTN_ROPE_H
#define RVATTN_ROPE_H

#include <stddef.h>

#include "attention.h"
#include "batch.h"
#include "status.h"

RVA_BEGIN_DECLS

/*
 * Rotates n rows in place exactly as attention att rotates its rows (its rope, rope_theta,
 * rope_scaling, rope_factor and rope_dim): row r (at rows + r * stride elements of type t)
 * holds `heads` heads of att's head_dim elements side by side and sits at position
 * pos0 + r. The bits are those att's jobs compute for the same row at the same position,
 * so attention over a cache of keys rotated here (rows of kv_heads heads appended at the
 * stream's positions: pos0 = the stream's length before the append) is bit-identical to
 * attention over the unrotated keys in contiguous memory. rows is the caller's, written in
 * place. Errors: RVA_ENULL (att; rows with n > 0); RVA_EINVAL (att has no rope; t not an
 * rva_dtype); RVA_EDIM (heads 0, or stride narrower than heads x head_dim); RVA_ERANGE
 * (pos0 + n beyond 2^47).
 */
rva_status rva_rope_apply(const rva_attention *att, void *rows, rva_dtype t, size_t stride,
                          size_t heads, size_t n, size_t pos0);

RVA_END_DECLS
#endif

/*
 * Pieces of the softmax engine for callers that spread one sequence over several
 * processes (the MPI library, dist/): the split-KV chunking the engine uses, partial
 * (m, l, O) results of a range of key chunks, their merge in chunk order, and the tile
 * loop of one (query tile, head) continued over consecutive key ranges. Each piece runs
 * the engine's own code, so a sequence computed in pieces is bit-identical to the engine
 * computing it whole, provided the pieces follow the engine's boundaries: key chunks of
 * rva__softmax_split, query tiles of query_block rows, key ranges starting at multiples
 * of block_size and visited in ascending order.
 *
 * In every call `seq` has the global nq and nk; its k and v point to the row of global
 * key `kv_origin` (a caller holding only keys [kv_origin, ...) passes its slice), its
 * key_mask (NULL or nk bytes) is indexed by global key, strides are not 0 (normalised).
 */
#ifndef RVATTN_SRC_ATTENTION_SOFTMAX_PART_H
#define RVATTN_SRC_ATTENTION_SOFTMAX_PART_H

#include <stdbool.h>
#include <stddef.h>

#include "attention/attention_internal.h"

/* Whether the engine computes seq by key chunks (split-KV or decode: true, with the
 * chunk length and count) or by query tiles over every key (false; *chunk_len = nk,
 * *nchunks = 1). att must be a softmax mechanism (rva__softmax_is(att)). */
bool rva__softmax_split(const rva_attention *att, const rva_seq *seq, size_t *chunk_len,
                        size_t *nchunks);

/* Whether att is computed by this engine (scaled_dot, multi_head, flash, local_global). */
bool rva__softmax_is(const rva_attention *att);

/* Scratch bytes for rva__softmax_chunk_partials on seq. */
size_t rva__softmax_partials_scratch(const rva_attention *att, const rva_seq *seq);

/*
 * Partial (m, l, O) of key chunk c of seq (chunks of rva__softmax_split) for every head,
 * into part[h][c - part_base] of a [heads][part_chunks][nq][head_dim + 2] float array.
 * seq_index and rt select the dropout stream as in the engine (the index in the batch).
 * scratch: rva__softmax_partials_scratch bytes, 64-byte aligned.
 */
void rva__softmax_chunk_partials(const rva_attention *att, const rva_seq *seq,
                                 size_t kv_origin, uint32_t seq_index, const rva_runtime *rt,
                                 size_t c, float *part, size_t part_chunks, size_t part_base,
                                 void *scratch);

/* Merges part ([heads][nch][nq][head_dim + 2]) in chunk order into seq->out, and the rows'
 * log-sum-exp into seq->lse when it is not NULL (lse_head_stride normalised). */
void rva__softmax_merge_partials(const rva_attention *att, const rva_seq *seq, size_t nch,
                                 const float *part);

/* Floats of a tile state of br rows: m and l (16-rounded lanes each) then O (br x D),
 * rounded up to 16: states laid out back to back from a 64-byte aligned base stay aligned. */
size_t rva__softmax_tile_state_floats(const rva_attention *att, size_t br);

/* Scratch bytes of rva__softmax_tile_step for br rows. */
size_t rva__softmax_tile_scratch(const rva_attention *att, size_t br);

/*
 * Runs the engine's tile loop for query rows [q0, q0 + br) (br <= query_block) of head h
 * over keys [k_begin, k_end), continuing `state` (rva__softmax_tile_state_floats) unless
 * `first`. q points to the query row q0 (row stride seq->q_stride). k_begin must be a
 * multiple of block_size. With first and k_begin = 0, k_end = nk, this is the engine's
 * dense task for that tile and head.
 */
void rva__softmax_tile_step(const rva_attention *att, const rva_seq *seq, size_t kv_origin,
                            uint32_t seq_index, const rva_runtime *rt, const float *q,
                            size_t q0, size_t br, size_t h, size_t k_begin, size_t k_end,
                            bool first, float *state, void *scratch);

/* Writes the normalised rows of a finished tile state (out: row 0 of the tile, head h's
 * slice already applied by the caller) and, when lse is not NULL, their log-sum-exp to
 * lse[0..br) (batch.h, rva_seq.lse). */
void rva__softmax_tile_finish(const rva_attention *att, size_t br, const float *state,
                              float *out, size_t out_stride, float *lse);

#endif

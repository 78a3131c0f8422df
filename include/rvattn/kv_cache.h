/*
 * rvattn — a paged key/value cache for serving (vLLM's PagedAttention layout), and
 * attention over it on the engine.
 *
 * A cache stores the K and V rows of many sequences (streams) in pages of `page_tokens`
 * rows; a row holds kv_heads x head_dim elements of one element type (rva_dtype: fp32,
 * bf16 or fp16). Each sequence has a block table: the list of its pages, in token order;
 * only its last page may be partly filled. Every page is allocated when the cache is
 * created (through the library allocator, rva_set_allocator: 2 MiB blocks are advised huge
 * pages) and written once (committed), one block per pool of the engine, bound to that
 * pool's NUMA node: a sequence lives in one pool, and the engine runs its attention there.
 * A pool's block holds the K rows of its pages page after page, then their V rows: pages
 * a sequence takes in order (a fresh cache hands its pages out in page order) lie back to
 * back, and attention reads them as one run, as contiguous K/V (bench/RESULTS.md §13).
 * Appending, forking and attention never allocate memory; a cache whose pages are all in
 * use refuses the append with RVA_ENOMEM and a message naming the pool and the pages
 * missing, and is left unchanged (nothing is ever evicted).
 *
 * Forking a sequence gives a new sequence sharing every page of its parent (reference
 * counts); a shared page is copied on write: the first append to either sequence while
 * its last, partly filled page is shared copies that page into a free one first. Full
 * pages stay shared until both sequences are freed.
 *
 * Sequences are named by 64-bit ids that are never reused within a cache (a stale id is
 * RVA_ENOTFOUND, never another sequence).
 *
 * Threads: every function may be called from any number of threads at once (a mutex
 * guards the block tables and free lists; row copies run outside it). Calls on the SAME
 * sequence (append, fork from it, free) must not overlap each other: the caller orders
 * them (rows appended by two threads at once would interleave in no defined order).
 * A submitted job holds a reference to every page it reads until it ends, so a sequence
 * may be freed (a stream cancelled) or appended to while a job reading it runs: the job
 * reads the rows it was submitted with. To cancel a stream inside a running job, call
 * rva_job_cancel_seq(job, i) with its step's index i (engine.h: its work not yet started
 * is skipped, the other steps are untouched) and rva_kv_cache_seq_free: its pages return
 * to the pool when the job ends.
 *
 * Ownership: rva_kv_cache_create returns a cache the caller destroys with
 * rva_kv_cache_destroy, after every job submitted on it has ended and before its engine
 * is destroyed. Row buffers passed in are the caller's and only read during the call.
 */
#ifndef RVATTN_KV_CACHE_H
#define RVATTN_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "attention.h"
#include "batch.h"
#include "engine.h"
#include "status.h"

RVA_BEGIN_DECLS

typedef struct rva_kv_cache rva_kv_cache;

/* Zero is the documented default (the rule of config.h); kv_heads and head_dim have none. */
typedef struct rva_kv_cache_config {
	size_t kv_heads;          /* K/V heads of a row (required, > 0) */
	size_t head_dim;          /* elements per head (required, > 0) */
	size_t page_tokens;       /* rows per page; 0 = 16. Even, at most 65536: the decode
	                           * kernels read key rows in pairs, a page holds whole pairs */
	size_t pages;             /* pages in the whole cache (split evenly over the engine's
	                           * pools); 0 = 1024 */
	size_t max_seqs;          /* live sequences at most; 0 = 4096 */
	rva_dtype dtype;          /* element type of K and V; 0 = RVA_F32 */
	uint64_t reserved[8];     /* zero (growth: the rule of config.h) */
} rva_kv_cache_config;

/*
 * Creates a cache for engine e (its pools decide where pages live; e must outlive the
 * cache). cfg is copied. On success *out must be destroyed with rva_kv_cache_destroy.
 * Errors: RVA_ENULL; RVA_EINVAL (kv_heads or head_dim 0, odd page_tokens, an unknown
 * dtype, reserved not zero); RVA_ERANGE (page_tokens above 65536, max_seqs above 2^31);
 * RVA_EOVERFLOW (the pages' bytes overflow size_t); RVA_ENOMEM.
 */
rva_status rva_kv_cache_create(rva_engine *e, const rva_kv_cache_config *cfg,
                               rva_kv_cache **out);

/* Frees the cache and every page (NULL is fine). Errors: RVA_ESTATE while a job that
 * reads the cache has not ended (nothing is freed then). */
rva_status rva_kv_cache_destroy(rva_kv_cache *c);

/* A new empty sequence, in the pool with the most free pages (ties: the lowest pool);
 * *seq receives its id. Errors: RVA_ENULL; RVA_ENOMEM (max_seqs sequences are live). */
rva_status rva_kv_cache_seq_new(rva_kv_cache *c, uint64_t *seq);

/*
 * Appends n rows to a sequence: row r of K is k[r * k_stride ...] (kv_heads x head_dim
 * elements of the cache's dtype), the same for V; strides in elements, 0 = packed.
 * All or nothing: when the sequence's pool lacks the free pages (including the copy of a
 * shared last page) the call fails with RVA_ENOMEM naming the pool, the pages needed and
 * the pages free, and changes nothing. n = 0 is a no-op.
 * Errors: RVA_ENULL (c, or k / v with n > 0); RVA_ENOTFOUND (no such live sequence);
 * RVA_EDIM (a stride narrower than a row); RVA_EOVERFLOW (the length overflows);
 * RVA_ENOMEM (capacity).
 */
rva_status rva_kv_cache_append(rva_kv_cache *c, uint64_t seq, const void *k, size_t k_stride,
                               const void *v, size_t v_stride, size_t n);

/* A new sequence *child holding the rows of parent, sharing its pages (copy on write).
 * Errors: RVA_ENULL; RVA_ENOTFOUND; RVA_ENOMEM (max_seqs sequences are live). */
rva_status rva_kv_cache_fork(rva_kv_cache *c, uint64_t parent, uint64_t *child);

/* Frees a sequence: its id becomes invalid, its pages go back to the pool when no other
 * sequence or running job holds them. Errors: RVA_ENULL; RVA_ENOTFOUND. */
rva_status rva_kv_cache_seq_free(rva_kv_cache *c, uint64_t seq);

/* *len = the rows of a sequence. Errors: RVA_ENULL; RVA_ENOTFOUND. */
rva_status rva_kv_cache_seq_len(rva_kv_cache *c, uint64_t seq, size_t *len);

/*
 * Copies rows [row0, row0 + n) of a sequence out (packed rows of the cache's dtype into
 * k and v, either may be NULL). Errors: RVA_ENULL (c); RVA_ENOTFOUND; RVA_ERANGE (rows
 * past the sequence's length).
 */
rva_status rva_kv_cache_seq_read(rva_kv_cache *c, uint64_t seq, size_t row0, size_t n, void *k,
                                 void *v);

typedef struct rva_kv_cache_stats {
	size_t page_tokens;       /* rows per page */
	size_t page_bytes;        /* bytes of one page's K and V */
	size_t pages;             /* pages in the cache */
	size_t pages_free;        /* pages no sequence or job holds */
	size_t pages_shared;      /* pages held by more than one sequence */
	size_t pools;             /* pools (NUMA domains) holding pages */
	size_t seqs;              /* live sequences */
	size_t rows;              /* rows stored, summed over the live sequences */
	size_t bytes;             /* memory of the cache's pages, bytes */
	uint64_t cow_copies;      /* pages copied on write since creation */
	uint64_t reserved[6];     /* zero */
} rva_kv_cache_stats;

/* Fills *out. Errors: RVA_ENULL. */
rva_status rva_kv_cache_stats_get(rva_kv_cache *c, rva_kv_cache_stats *out);

/*
 * RoPE (config.h: rva_config.rope): the cache stores keys ROTATED, as vLLM and llama.cpp
 * do. Rotate each new key row at its stream position with rva_rope_apply (rope.h) before
 * appending it; attention with RoPE over the cache rotates only the step's queries (query
 * row i at position len - nq + i; at i with causal_align top-left, as rva_seq's q_pos 0),
 * so a decode step costs what it costs without RoPE.
 *
 * One entry of a serving step: nq query rows of a sequence of the cache, which are the
 * queries of its LAST nq rows (append the new tokens' K/V rows first): a prefill chunk
 * (nq > 1, the chunk's queries over the cached prefix and the chunk, causal when the
 * attention is causal) or a decode step (nq = 1). Query row i sits at position
 * len - nq + i (batch.h). q and out as in rva_seq (dim = heads x head_dim of the
 * attention; strides in elements, 0 = packed; types zero = fp32).
 *
 * The attention's score modifiers (config.h: causal_align, window, softcap, ALiBi, T5,
 * RoPE) apply as on contiguous K/V with nk = len. The step's own extras mean what rva_seq's
 * fields of the same names mean (batch.h), with nk = the sequence's length at submission:
 * key_mask (len bytes), the additive bias and the 2-D mask ([heads][nq][len] at
 * h * head_stride + i * stride + j; stride 0 = len), the log-sum-exp output lse
 * ([heads][nq], what merging a cached prefix's attention with another shard's needs) and
 * the head strides of q and out ([B, H, S, D] queries and outputs in place; K and V are
 * the cache's packed rows). They are validated as rva_seq's (RVA_EINVAL, RVA_EDIM,
 * RVA_EOVERFLOW for that step alone); lse must not lie in the cache's pages (RVA_EINVAL).
 * Not over the cache: a V head dim other than head_dim (rva_kv_cache_submit: RVA_EDIM),
 * RoPE position offsets (the cache's rows are the stream from position 0: keys rotate
 * where they were appended) and non-softmax mechanisms (RVA_EUNSUPPORTED).
 */
typedef struct rva_kv_step {
	uint64_t seq;             /* sequence id */
	size_t nq;                /* query rows; 0 = nothing to compute (success) */
	const void *q;
	size_t q_stride;
	void *out;
	size_t out_stride;
	rva_dtype q_dtype, out_dtype;
	const uint8_t *key_mask;  /* NULL, or len bytes: nonzero = key may be attended */
	const float *bias;        /* additive logit bias, or NULL (rva_seq.bias) */
	size_t bias_stride, bias_head_stride;
	const uint8_t *mask;      /* boolean mask, or NULL (rva_seq.mask) */
	size_t mask_stride, mask_head_stride;
	float *lse;               /* log-sum-exp per head and query row, or NULL (rva_seq.lse) */
	size_t lse_head_stride;
	size_t q_head_stride, out_head_stride; /* 0 = head_dim (rva_seq's) */
	uint64_t reserved[4];     /* zero */
} rva_kv_step;

/*
 * Submits attention att over n steps, reading K and V from the cache's pages (every step
 * reads its sequence's rows as they are at submission). att must be a softmax mechanism
 * (scaled_dot, multi_head, flash, local_global) with the cache's kv_heads and head_dim;
 * K and V are of the cache's element type. The results are bit-identical to rva_engine_submit over the same rows in
 * contiguous K/V (rva_seq with nk = the sequence's length), whatever the thread count.
 * A bad step fails alone (rva_job_seq_status: RVA_ENOTFOUND for an unknown sequence,
 * RVA_ERANGE for nq above its length, and the rva_seq checks of rva_engine_submit on its
 * extras; a query, output or lse overlapping the cache's pages is RVA_EINVAL). *job is freed with
 * rva_job_destroy. The engine must be the cache's.
 * Errors: RVA_ENULL; RVA_EINVAL (another engine; reserved not zero); RVA_EUNSUPPORTED
 * (att is not a softmax mechanism); RVA_EDIM (att's kv_heads or head_dim differ from the
 * cache's, or its v_head_dim from its head_dim); RVA_ENOMEM; RVA_ESTATE (the engine is being destroyed).
 */
rva_status rva_kv_cache_submit(rva_engine *e, rva_kv_cache *c, const rva_attention *att,
                               const rva_kv_step *steps, size_t n, const rva_runtime *rt,
                               rva_job **job);

/* Submits and waits: per-step statuses into step_status (NULL or n entries), statistics
 * into stats (may be NULL). Returns RVA_OK or the first failing step's status. */
rva_status rva_kv_cache_run(rva_engine *e, rva_kv_cache *c, const rva_attention *att,
                            const rva_kv_step *steps, size_t n, const rva_runtime *rt,
                            rva_status *step_status, rva_job_stats *stats);

RVA_END_DECLS
#endif

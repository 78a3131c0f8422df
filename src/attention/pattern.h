/*
 * Attention patterns as predicates on (query position, key position), never as
 * materialised N x N masks: causal, Longformer window + global tokens, Sparse Transformer
 * strided and fixed. The tile loop asks for a whole tile whether it is all-masked (skipped before
 * any work), all-visible (no per-element test) or partial (per-element test).
 *
 * Positions: query row i of a sequence with nq queries and nk keys sits at nk - nq + i
 * (causal alignment for decoding); key row j at j.
 */
#ifndef RVATTN_SRC_ATTENTION_PATTERN_H
#define RVATTN_SRC_ATTENTION_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum rva__pattern_kind {
	RVA__PAT_DENSE = 0,
	RVA__PAT_LOCAL_GLOBAL,
	RVA__PAT_STRIDED,
	RVA__PAT_FIXED,          /* Sparse Transformer fixed: causal, the query's own block of
	                          * `stride` positions, plus the last `summary` positions of
	                          * every block */
} rva__pattern_kind;

typedef struct rva__pattern {
	rva__pattern_kind kind;
	bool causal;
	int64_t window;          /* local-global: window size (even) */
	int64_t stride;          /* strided, fixed: l */
	int64_t summary;         /* fixed: c, summary positions per block (0: the blocks only) */
	const size_t *global;    /* local-global: sorted unique global positions, or NULL */
	size_t nglobal;          /* entries of global[] */
	size_t global_first;     /* when global == NULL: positions [0, global_first) are global */
} rva__pattern;

typedef enum rva__tile_class {
	RVA__TILE_NONE = 0,   /* every pair masked: skip */
	RVA__TILE_FULL,       /* every pair visible */
	RVA__TILE_PARTIAL,    /* test each pair */
} rva__tile_class;

/* Whether position pos is a global token (local-global only). */
bool rva__pattern_is_global(const rva__pattern *p, int64_t pos);

/* Whether query position qp may attend key position kp (key mask aside). */
bool rva__pattern_allows(const rva__pattern *p, int64_t qp, int64_t kp);

/* Classifies the tile of query positions [qa, qb] x key positions [ka, kb] (inclusive,
 * query positions ascending within the tile). Conservative: PARTIAL is always correct. */
rva__tile_class rva__pattern_classify(const rva__pattern *p, int64_t qa, int64_t qb,
                                      int64_t ka, int64_t kb);

/*
 * Sets st[j * ld + i] = -inf for every masked pair of query positions qpos[0..br)
 * (ascending) and key positions k0 + j, j < nkt: the per-element work of a partial tile,
 * with the pattern's per-row and per-key facts hoisted out of the inner loop.
 */
void rva__pattern_mask_tile(const rva__pattern *p, const int64_t *qpos, size_t br,
                            size_t k0, size_t nkt, float *st, size_t ld);

/*
 * Block-sparse form of the sparse patterns (softmax_core.c runs it; docs/ARCHITECTURE.md,
 * "Sparse patterns"). A pattern is split into
 *   - its band (*band): the part where a query row sees a contiguous run of keys near its
 *     own position, run as tiles over that run only: the local-global window without the
 *     global tokens, the strided pattern's l most recent keys, the fixed pattern's own
 *     block;
 *   - shared keys: keys every later (or, non-causal, every) query sees, gathered into
 *     contiguous tiles: the local-global global tokens, the fixed pattern's summary
 *     positions. A shared key is attended in the gathered tiles only where the band does
 *     not already cover the pair, so no pair counts twice;
 *   - local-global global rows, which see every key (dense rows of their own), and the
 *     strided pattern's keys qp - t l (t >= 1), gathered per residue qp mod l.
 * Returns false for a dense pattern (no split).
 */
bool rva__pattern_band(const rva__pattern *p, rva__pattern *band);

/* Keys [*k0, *k1) holding every key the band pattern `band` lets query positions [qa, qb]
 * see, within [0, nk) (*k0 == *k1: none). */
void rva__pattern_band_keys(const rva__pattern *band, int64_t qa, int64_t qb, size_t nk,
                            size_t *k0, size_t *k1);

/* Shared keys (see rva__pattern_band) below position lim, and the position of shared key
 * t (ascending in t). */
size_t rva__pattern_shared_below(const rva__pattern *p, int64_t lim);
int64_t rva__pattern_shared_key(const rva__pattern *p, size_t t);

/* Number of visible (query, key) pairs of a sequence, for FLOP counts; and of its query
 * rows [r0, r1) (task costs). */
double rva__pattern_pairs(const rva__pattern *p, size_t nq, size_t nk);
double rva__pattern_pairs_rows(const rva__pattern *p, size_t nq, size_t nk, size_t r0,
                               size_t r1);

#endif

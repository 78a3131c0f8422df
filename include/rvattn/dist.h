/*
 * rvattn — beyond one machine: a distributed engine over MPI (library rvattn_mpi, CMake
 * target rvattn::rvattn_mpi; the core library never depends on MPI).
 *
 * A distributed engine wraps one local engine (engine.h) per rank of an MPI communicator.
 * Every call below marked "collective" must be made by every rank of the communicator,
 * in the same order, with the same attention (built from the same config on every rank:
 * checked) — a rank that skips one hangs the others, as with any MPI collective. MPI must
 * be initialised with at least MPI_THREAD_FUNNELED; rvattn makes MPI calls only from the
 * thread that calls these functions.
 *
 * Three ways to spread work (all bit-identical to the single-process engine, for any
 * number of ranks and threads, because every number is computed by the engine's own code
 * on the engine's own tile/chunk boundaries and merged in the engine's order):
 *   - batch sharding: whole sequences go to ranks by cost (LPT on the FLOP model), from
 *     a root (rva_dist_run_root) or already distributed (rva_dist_run_local);
 *   - decode split-KV: the key chunks of one sequence spread over ranks, partial
 *     (m, l, O) gathered and merged in chunk order (rva_dist_decode);
 *   - ring attention for one long sequence: query tiles striped over ranks, K/V blocks
 *     broadcast in global order with nonblocking MPI while the previous block computes,
 *     one online-softmax state continued across blocks (rva_dist_ring).
 *
 * rva_dist_decode and rva_dist_ring take fp32 sequences: a bf16/fp16 tensor (batch.h) is
 * refused with RVA_EINVAL. So is an attention with RoPE (config.h rope): their pieces
 * take q and k as given, so rotate them first with rva_rope_apply (rope.h) at their
 * global positions and pass an attention without rope.
 *
 * Errors are agreed collectively: every rank returns the same status, and
 * rva_last_error() names the rank and the sequence that failed first.
 */
#ifndef RVATTN_DIST_H
#define RVATTN_DIST_H

#include <stdbool.h>
#include <stddef.h>

#include <mpi.h>

#include "engine.h"

RVA_BEGIN_DECLS

typedef struct rva_dist rva_dist;

/*
 * Collective over comm (which is duplicated: the caller keeps its own). Each rank
 * creates its engine from cfg (NULL = defaults) on the cpus its process may use (its
 * MPI binding). Ranks on one node (MPI_Comm_split_type SHARED) that were not bound apart
 * (their allowed sets are identical) split the node's PUs into contiguous disjoint shares
 * when cfg->cpus is NULL or ""; with more ranks than PUs shares wrap around (overlap,
 * said in the rank info). *out must be destroyed with rva_dist_destroy. Errors:
 * RVA_ENULL; RVA_ESTATE (MPI not initialised, or initialised below FUNNELED); any error of
 * rva_engine_create (agreed: when one rank fails, all fail and destroy what they made);
 * RVA_ENOMEM.
 */
rva_status rva_dist_create(MPI_Comm comm, const rva_engine_config *cfg, rva_dist **out);

/* Collective. Frees the engine and the communicator (NULL is fine). */
rva_status rva_dist_destroy(rva_dist *d);

/* The rank's local engine (owned by d). Errors: RVA_ENULL. */
rva_status rva_dist_engine(const rva_dist *d, rva_engine **engine);

/* What one rank runs on (for `rvattn topo` and reports). */
typedef struct rva_dist_rank_info {
	int rank, size;             /* in the distributed engine's communicator */
	int node_rank, node_size;   /* among the ranks sharing this rank's node */
	char host[64];              /* MPI processor name */
	bool split;                 /* rvattn split the node's PUs among unbound ranks */
	bool overlap;               /* this rank's PUs overlap another rank's of the node */
	char binding[128];          /* PUs the process was allowed (its MPI binding) */
	rva_engine_info engine;     /* the local engine: pools, workers, cpuset */
} rva_dist_rank_info;

/* This rank's info. Errors: RVA_ENULL. */
rva_status rva_dist_info(const rva_dist *d, rva_dist_rank_info *out);

/* Collective: gathers every rank's info at root into all[0..size) (significant at root
 * only; other ranks may pass NULL). Errors: RVA_ENULL (all NULL at root); RVA_ERANGE
 * (root out of range); RVA_ESYSTEM (an MPI call failed). */
rva_status rva_dist_gather_info(rva_dist *d, int root, rva_dist_rank_info *all);

/*
 * Requests cancellation of the collective call in progress (or of the next one) from any
 * thread or a signal handler of this rank (async-signal-safe: it sets a flag). The flag
 * is checked between the phases of every collective run (before sending inputs, before
 * computing, after computing) and while the local job runs (it is then cancelled); its
 * value is agreed with an allreduce, so every rank of the call returns RVA_ECANCELLED
 * and the flag is cleared. Outputs of a cancelled call are unspecified. Errors: RVA_ENULL.
 */
rva_status rva_dist_cancel(rva_dist *d);

/* Timings and volume of one collective call on this rank. */
typedef struct rva_dist_stats {
	double wall_s;              /* the whole call */
	double compute_s;           /* local engine jobs (submit to end) */
	double comm_wait_s;         /* blocked in MPI after the local work was done */
	double flops;               /* useful FLOPs computed on this rank */
	double bytes_sent, bytes_received; /* payload of this rank's messages */
	size_t local_sequences;     /* sequences computed here */
} rva_dist_stats;

/*
 * LPT assignment of a batch to nranks ranks by the FLOP model of att (rva_attention_flops
 * per sequence): sequences by decreasing cost (ties: lower index first) each to the rank
 * with the least load so far (ties: lower rank). Deterministic; owner receives
 * batch->count ranks. Only nq and nk of the sequences are read. Errors: RVA_ENULL;
 * RVA_ERANGE (nranks < 1).
 */
rva_status rva_dist_assign(int nranks, const rva_attention *att, const rva_batch *batch,
                           int *owner);

/*
 * Collective: the batch lives at root (batch and seq_status significant there only;
 * other ranks pass NULL). Sequences are validated at root, assigned with rva_dist_assign,
 * their rows (any strides) sent to their owners, computed there by the local engine and
 * the outputs sent back into the root's out rows. seq_status at root receives count
 * statuses (a bad sequence fails alone). Returns, on every rank, RVA_OK or the status of
 * the first failing sequence (rva_last_error: "rank R, sequence I: ..."); RVA_ECANCELLED;
 * RVA_EINVAL when the ranks' attentions differ; RVA_EOVERFLOW for a sequence whose rows
 * or row width exceed INT_MAX (MPI counts); RVA_ESYSTEM when MPI fails. stats may be NULL.
 */
rva_status rva_dist_run_root(rva_dist *d, const rva_attention *att, const rva_batch *batch,
                             int root, const rva_runtime *rt, rva_status *seq_status,
                             rva_dist_stats *stats);

/*
 * Collective, data-parallel: each rank runs its own local batch (count may be 0) on its
 * engine, in place; seq_status (NULL or local->count) receives its statuses. The outcome
 * is agreed: every rank returns RVA_OK, or the status of the failing sequence of the
 * lowest failing rank (its lowest local index), with "rank R, sequence I: ..." in
 * rva_last_error(); RVA_ECANCELLED if any rank cancelled.
 */
rva_status rva_dist_run_local(rva_dist *d, const rva_attention *att, const rva_batch *local,
                              const rva_runtime *rt, rva_status *seq_status,
                              rva_dist_stats *stats);

/*
 * Keys this rank must hold for rva_dist_decode of a sequence of nq queries and nk keys:
 * rows [*first, *first + *count) (count may be 0). The engine's key chunks of that shape
 * are dealt to ranks in contiguous runs (rank r: chunks [r*C/P, (r+1)*C/P)).
 * Errors: RVA_ENULL; RVA_EINVAL (att is not a softmax mechanism, or the engine computes
 * that shape by query tiles, not by key chunks: nq > 8 without kv_split).
 */
rva_status rva_dist_decode_keys(const rva_dist *d, const rva_attention *att, size_t nq,
                                size_t nk, size_t *first, size_t *count);

/*
 * Collective: decoding split over ranks by key chunks. seq has the global nq and nk and
 * all nq query rows on every rank; its k and v point to this rank's key rows [first,
 * first + count) of rva_dist_decode_keys (k/v may be NULL when count is 0); key_mask is
 * NULL or the global nk bytes on every rank; out (all nq rows) is written at root only
 * (other ranks may pass NULL). Errors: as rva_dist_decode_keys; RVA_ENULL; RVA_EDIM
 * (strides narrower than rows); RVA_ESYSTEM; agreed as rva_dist_run_local.
 */
rva_status rva_dist_decode(rva_dist *d, const rva_attention *att, const rva_seq *seq,
                           int root, const rva_runtime *rt, rva_dist_stats *stats);

/* How one long sequence is laid out over the ranks for rva_dist_ring. */
typedef struct rva_dist_ring_layout {
	size_t q_tile;              /* query rows per tile (the attention's query_block) */
	size_t q_tiles;             /* tiles of the sequence */
	size_t q_rows;              /* this rank's query rows: tiles t with t % size == rank,
	                             * in ascending t, stacked (the last tile may be short) */
	size_t kv_block;            /* keys per block (a multiple of block_size) */
	size_t kv_first, kv_rows;   /* this rank's key block: rows [kv_first, + kv_rows) */
} rva_dist_ring_layout;

/* Errors: RVA_ENULL; RVA_EINVAL (not a softmax mechanism, or a shape the engine computes
 * by key chunks: use rva_dist_decode). */
rva_status rva_dist_ring_layout_get(const rva_dist *d, const rva_attention *att, size_t nq,
                                    size_t nk, rva_dist_ring_layout *out);

/*
 * Collective: ring attention over one sequence. seq has the global nq and nk; q and out
 * hold this rank's q_rows rows (layout above), k and v its kv_rows key rows (NULL when
 * kv_rows is 0); key_mask NULL or the global nk bytes on every rank. Block s (owned by
 * rank s) is broadcast with MPI_Ibcast while block s-1 is computed; every query tile
 * continues one online-softmax state across blocks in global key order, so the output is
 * bit-identical to rva_engine_run on the whole sequence. Errors: as
 * rva_dist_ring_layout_get; RVA_ENULL; RVA_EDIM; RVA_ENOMEM; RVA_ESYSTEM; agreed.
 */
rva_status rva_dist_ring(rva_dist *d, const rva_attention *att, const rva_seq *seq,
                         const rva_runtime *rt, rva_dist_stats *stats);

RVA_END_DECLS
#endif

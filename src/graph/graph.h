/*
 * Job graphs: the task interface between the mechanisms (src/, which plan) and the
 * engine (sched/, which executes). "Plan, then execute" (ggml): planning builds a DAG
 * of tasks with dependency counts, sizes all intermediate memory (the job arena) and the
 * per-worker scratch up front; executing only runs task functions.
 *
 * A task function computes one unit of work — (sequence, head group, query tile), a key
 * chunk, a merge, an expert — reading the job's inputs and writing its outputs or
 * intermediates in the arena. It gets the worker's scratch (at least graph.scratch_bytes,
 * 64-byte aligned, reused between tasks: contents undefined at entry). It must not
 * allocate, and must not depend on which worker runs it (determinism).
 *
 * Failure isolation: a task belongs to a sequence (seq < nseq) or to the whole job
 * (RVA__NO_SEQ). When a task fails, its sequence is marked failed and every later task
 * of that sequence is skipped (its dependents are still released). A failing whole-job
 * task fails every sequence.
 */
#ifndef RVATTN_SRC_GRAPH_GRAPH_H
#define RVATTN_SRC_GRAPH_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rvattn/status.h"

#define RVA__NO_SEQ UINT32_MAX
#define RVA__NO_TASK UINT32_MAX

struct rva__task;

/* What a task function sees of the worker running it. */
typedef struct rva__exec_ctx {
	void *scratch;            /* >= graph scratch_bytes, 64-byte aligned */
	size_t scratch_bytes;
	unsigned worker;          /* worker index (statistics only; never for numbers) */
} rva__exec_ctx;

typedef rva_status (*rva__task_fn)(const struct rva__task *t, rva__exec_ctx *x);

typedef struct rva__task {
	rva__task_fn fn;          /* NULL = join node (no work) */
	const void *ctx;          /* planner-owned data, lives in the graph arena */
	uint32_t seq;             /* owning sequence, or RVA__NO_SEQ */
	uint32_t a, b, c, d;      /* coordinates: meaning chosen by the planner */
	float cost;               /* estimated FLOPs (for longest-processing-time order) */
	uint32_t ndeps;           /* number of predecessors */
	uint32_t succ_begin;      /* successors: graph.succ[succ_begin .. + succ_count) */
	uint32_t succ_count;
} rva__task;

typedef struct rva__arena_block rva__arena_block;

/*
 * A cache of arena blocks kept across jobs (one per engine): fresh memory costs a page
 * fault per 4 KiB page on first touch, which for a job's intermediates (split-KV
 * partials, MoE routing tables, pipeline rows) can rival the job itself. Thread-safe.
 */
typedef struct rva__arena_cache rva__arena_cache;

/* Errors: RVA_ENOMEM. max_bytes bounds what the cache keeps (older blocks are freed). */
rva_status rva__arena_cache_create(size_t max_bytes, rva__arena_cache **out);
/* Frees the cache and every block it holds (NULL is fine). */
void rva__arena_cache_destroy(rva__arena_cache *c);

/* Calls bind(ptr, bytes, user) on every block the cache allocates from now on, before its
 * pages are first touched (e.g. to interleave job memory over NUMA nodes). */
void rva__arena_cache_set_binder(rva__arena_cache *c,
                                 void (*bind)(void *ptr, size_t bytes, void *user),
                                 void *user);

typedef struct rva__graph {
	rva__task *tasks;
	uint32_t ntasks, cap_tasks;
	uint32_t *succ;           /* CSR successor lists (valid after rva__graph_finalize) */
	/* edges as added, before finalize */
	uint32_t *edge_from, *edge_to;
	size_t nedges, cap_edges;
	size_t scratch_bytes;     /* max scratch any task needs */
	size_t nseq;              /* sequences of the job (for per-sequence status) */
	double flops;             /* useful FLOPs of the job (statistics) */
	rva__arena_block *arena;  /* job memory, freed with the graph (or returned to cache) */
	rva__arena_cache *cache;  /* NULL, or where arena blocks come from and return to */
	/* Optional hooks run by the executor, in order, after all tasks (e.g. MoE stats
	 * reduction into the caller's struct). */
	rva_status (*finish)(void *finish_ctx, const rva_status *seq_status, size_t nseq);
	void *finish_ctx;
	bool finalized;
} rva__graph;

/* Initialises an empty graph for a job of nseq sequences. */
void rva__graph_init(rva__graph *g, size_t nseq);

/* The same, with arena blocks taken from (and, at rva__graph_free, returned to) cache. */
void rva__graph_init_cached(rva__graph *g, size_t nseq, rva__arena_cache *cache);

/* Frees everything the graph owns (tasks, edges, arena). */
void rva__graph_free(rva__graph *g);

/*
 * Adds a task and returns its id in *id. Errors: RVA_ENOMEM; RVA_EOVERFLOW beyond
 * 2^32-2 tasks.
 */
rva_status rva__graph_add(rva__graph *g, rva__task_fn fn, const void *ctx, uint32_t seq,
                          uint32_t a, uint32_t b, uint32_t c, uint32_t d, float cost,
                          uint32_t *id);

/* Adds a join node (no work), e.g. "sequence s done". */
rva_status rva__graph_add_join(rva__graph *g, uint32_t seq, uint32_t *id);

/* Adds the edge from -> to (to runs after from). RVA__NO_TASK as from is ignored. */
rva_status rva__graph_edge(rva__graph *g, uint32_t from, uint32_t to);

/* Raises the per-worker scratch requirement to at least bytes. */
void rva__graph_need_scratch(rva__graph *g, size_t bytes);

/* Allocates zeroed, 64-byte-aligned job memory that lives as long as the graph.
 * Returns NULL (and raises RVA_ENOMEM/RVA_EOVERFLOW detail) on failure. It is zeroed by
 * the planning (submitting) thread, which therefore places its pages: use it for
 * descriptors and small tables, and rva__graph_alloc_untouched for intermediates. */
void *rva__graph_alloc(rva__graph *g, size_t bytes);
/* The same, n * size bytes with an overflow check. */
void *rva__graph_alloc_array(rva__graph *g, size_t n, size_t size);

/*
 * Job memory for intermediates (split-KV partials, MoE expert outputs and projections,
 * pipeline rows): n * size bytes on whole pages of its own (page-aligned, 2 MiB-aligned
 * from 2 MiB on), neither zeroed nor touched by the planner. The tasks that write it touch
 * its pages first, so they land on the writing worker's NUMA node (in parallel, not
 * serially on the submitting thread), and under RVA_NUMA_INTERLEAVE only whole arena
 * blocks are interleaved. Contents are undefined (or a previous job's, when the block comes
 * from the engine's cache): every byte a task reads must have been written by a task before
 * it, and any zeroing the semantics need belongs in the writing task. NULL (and the detail)
 * on RVA_ENOMEM/RVA_EOVERFLOW.
 */
void *rva__graph_alloc_untouched(rva__graph *g, size_t n, size_t size);

/* Builds the CSR successor lists and checks the graph is acyclic.
 * Errors: RVA_ENOMEM; RVA_EINTERNAL for a cycle or a bad edge. */
rva_status rva__graph_finalize(rva__graph *g);

/*
 * Runs a finalized graph on the calling thread in a deterministic topological order,
 * with a scratch buffer allocated here. seq_status (nseq entries, initialised by the
 * caller to RVA_OK or to a planning failure — tasks of a failed sequence are skipped)
 * receives each sequence's outcome; details (may be NULL) receives one heap string per
 * failed sequence (caller frees with rva__free). Returns RVA_OK, or RVA_ENOMEM for the
 * scratch, or the status of a failing whole-job task. Every sequence a job-wide failure
 * kept from completing (a failing whole-job task, or no task run at all) carries that
 * failure's status, so seq_status never says RVA_OK for an output that was not written.
 */
rva_status rva__graph_run_serial(rva__graph *g, rva_status *seq_status, char **details);

/* Shared by executors: runs task t (or skips it when its sequence failed), records the
 * outcome. Returns the task's status (RVA_OK for skipped and join tasks). */
rva_status rva__graph_exec_task(const rva__graph *g, uint32_t t, rva__exec_ctx *x,
                                rva_status *seq_status, char **details);

/* Runs the finish hook, if any (executors call it once after all tasks). */
rva_status rva__graph_finish(rva__graph *g, const rva_status *seq_status);

#endif

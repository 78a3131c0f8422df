/*
 * The engine's internals: engine and job objects, the worker team and the executor
 * (sched/executor.c), the job lifecycle (sched/job.c), the public API (sched/engine.c).
 * See sched/README.md for the threading model.
 *
 * Queues: every worker owns a ready queue, a max-heap on task cost (longest processing
 * time first; ties: older job first, then lower task id), protected by its own mutex.
 * A pool (NUMA domain) is the set of queues of its workers. Ready tasks go to a queue of
 * the pool that holds their sequence's data: at job start they are dealt round-robin over
 * that pool's workers; a task released by a completing worker goes to that worker's own
 * queue when the worker belongs to the task's pool, else to a worker of the task's pool.
 * An idle worker takes from its own queue, then steals from the other workers of its
 * pool (a local steal), then from the other pools in the plan's stealing order (a remote
 * steal). Queue nodes live in the job (one per task, allocated at submission), so queue
 * operations never allocate.
 */
#ifndef RVATTN_SCHED_ENGINE_INTERNAL_H
#define RVATTN_SCHED_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hwloc.h>

#include "attention/kv_pages.h"
#include "graph/graph.h"
#include "kernels/gemm.h"
#include "rvattn/engine.h"
#include "sched/topology.h"

#define RVA__CACHELINE 64

/* A queue node: one per task of a job. */
typedef struct rva__qnode {
	struct rva__qnode *child, *next; /* pairing heap links (next: sibling or list link) */
	struct rva_job *job;
	uint32_t task;
	float cost;
} rva__qnode;

/* A worker's ready queue. */
typedef struct rva__wqueue {
	_Alignas(RVA__CACHELINE) pthread_mutex_t lock;
	rva__qnode *root;             /* max-heap root, under lock */
	atomic_uint size;             /* nodes in the heap: written under lock, read as hint */
} rva__wqueue;

/* A scratch buffer: this header, then `size` usable bytes at data. */
typedef struct rva__scratch {
	unsigned char *data;
	size_t size;
	bool on_node;                 /* memory bound to the worker's NUMA node */
} rva__scratch;

/* Per-worker state; the statistics are written by the worker alone (relaxed stores) and
 * read by rva_engine_worker. One cache line per worker for the hot counters. */
typedef struct rva__worker {
	_Alignas(RVA__CACHELINE) atomic_uint_fast64_t tasks;
	atomic_uint_fast64_t busy_ns;
	atomic_uint_fast64_t steals_local;
	atomic_uint_fast64_t steals_remote;
	/* set once by the worker at team start, read after the engine is ready */
	_Alignas(RVA__CACHELINE) bool bound;
	int observed_pu;
	atomic_bool scratch_on_node;
	rva__scratch *scratch;        /* current buffer (worker-owned once the team runs) */
	_Atomic(rva__scratch *) scratch_next; /* a bigger buffer handed over by a submitter */
	hwloc_bitmap_t cpuset;        /* the PU it binds to */
} rva__worker;

struct rva_engine {
	rva_engine_config cfg;        /* copy; pointer fields NULL (strings copied below) */
	hwloc_topology_t topo;
	bool thissystem;
	rva__sched_plan plan;
	char topo_desc[64];
	const rva__gemm_ctx *gemm;    /* NULL = the process default (RVA_KERNELS_AUTO) */
	rva_kernel_set kernels;
	uint64_t generation;          /* unique per engine (binding cache key) */
	unsigned nworkers;
	rva__worker *workers;         /* nworkers */
	rva__wqueue *queues;          /* nworkers */
	unsigned spin_us;

	/* team */
	pthread_t dispatcher;
	bool dispatcher_started;
	atomic_uint ready_workers;    /* members that bound themselves */
	atomic_int team_error;        /* nonzero: the team could not be formed */
	atomic_bool shutdown;
	_Alignas(RVA__CACHELINE) atomic_uint sleepers;
	/* Idle spinning (sched/executor.c, worker_loop): tasks of launched jobs not yet
	 * started (ready or waiting for predecessors), and workers running a task. */
	_Alignas(RVA__CACHELINE) atomic_uint_fast64_t unstarted;
	atomic_uint running;
	pthread_mutex_t park_lock;
	pthread_cond_t park_cond;
	pthread_cond_t start_cond;    /* creation waits for the team (with park_lock) */

	/* jobs */
	pthread_mutex_t lock;         /* guards the fields below */
	pthread_cond_t idle_cond;     /* signalled when active_jobs drops to 0 */
	size_t active_jobs;
	size_t submitters;            /* threads inside a submit call (destroy waits for them) */
	bool destroying;
	uint64_t next_job_id;
	size_t scratch_size;          /* usable bytes of every worker's scratch */
	rva__arena_cache *arena_cache; /* job memory (graph arenas) reused across jobs */
	/* cache of node/dependency blocks from ended jobs (avoids page faults per job) */
	void *block_cache[4];
	size_t block_cache_tasks[4];
};

typedef enum rva__job_kind { RVA__JOB_GRAPH, RVA__JOB_ATTENTION, RVA__JOB_PIPELINE } rva__job_kind;

struct rva_job {
	rva_engine *engine;           /* not touched after the job ended */
	uint64_t id;
	rva__job_kind kind;
	rva__graph *g;                /* the graph run (owned when kind != GRAPH) */
	rva__graph graph;             /* storage for owned graphs (freed when the job ends:
	                               * its arena goes back to the engine's cache) */
	size_t nseq;
	rva_status *seq_status;       /* nseq, owned by the job */
	char **details;               /* nseq heap strings (rva__strdup) or NULL, owned */
	unsigned *seq_pool;           /* nseq pools (RVA__ANY_POOL = any) */
	rva__qnode *nodes;            /* ntasks */
	atomic_uint *deps;            /* ntasks remaining predecessors */
	void *block;                  /* the allocation holding nodes and deps */
	size_t block_tasks;           /* its capacity in tasks */
	atomic_uint remaining;        /* tasks not yet accounted as done */
	uint32_t ntasks;              /* tasks in the graph (progress) */
	atomic_bool cancelled;
	atomic_bool cancel_skipped;   /* a cancel kept at least one task from running */
	atomic_int job_status;        /* first failing whole-job task (RVA_OK if none) */
	rva_runtime rt;
	bool moe;                     /* copy rt.moe_stats into moe_stats at the end */
	uint64_t t_submit;
	/* result, written by the finishing worker before `ended` */
	rva_status status;
	size_t first_failed;          /* sequence index, or SIZE_MAX */
	char errbuf[256];             /* detail of a whole-job failure */
	rva_job_stats stats;
	bool has_moe_stats;           /* moe_stats holds the job's MoE statistics */
	rva_moe_stats moe_stats;      /* rva_job_moe_stats */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool closing;                 /* under lock: the outcome is being computed (no more
	                               * rva_job_cancel_seq) */
	atomic_bool ended;
};

/* Layout of a job's task block: nodes[cap], deps[cap], then (cache-line aligned) one
 * list head per worker used while launching. */
static inline size_t rva__block_heads_offset(size_t cap) {
	size_t b = cap * (sizeof(rva__qnode) + sizeof(atomic_uint));
	return (b + RVA__CACHELINE - 1) & ~(size_t)(RVA__CACHELINE - 1);
}

/*
 * Submits a finalized (or finalizable) graph built by hand: the job borrows g, which
 * must stay valid and unchanged until the job has ended. init_status (NULL or g->nseq
 * entries) gives the sequences' initial statuses (non-OK ones are skipped). seqs (NULL
 * or g->nseq descriptors, read now) let the LOCAL policy find where each sequence's
 * queries live; without them sequences are dealt in blocks. Results are read with the
 * public rva_job_* calls. Errors: RVA_ENULL; RVA_ESTATE (engine being destroyed);
 * RVA_ENOMEM; RVA_EINTERNAL (cyclic graph).
 */
rva_status rva__engine_submit_graph(rva_engine *e, rva__graph *g,
                                    const rva_status *init_status, const rva_seq *seqs,
                                    rva_job **out);

/*
 * Submits att over n sequences whose K/V rows are paged (rva_kv_cache): prepare(ctx, g,
 * seqs, pages, seq_status, details) fills the n descriptors (k / v: page 0's rows) and
 * their pages (kv_pages.h) in the job's memory g, records bad sequences in seq_status /
 * details, and may set g->finish, which runs once when the job ends or, when the
 * submission fails after prepare succeeded, before this returns. Errors: prepare's,
 * RVA_ENOMEM, RVA_ESTATE (engine being destroyed).
 */
typedef rva_status (*rva__paged_prepare)(void *ctx, rva__graph *g, rva_seq *seqs,
                                         rva__kv_pages *pages, rva_status *seq_status,
                                         char **details);
rva_status rva__engine_submit_paged(rva_engine *e, const rva_attention *att, size_t n,
                                   const rva_runtime *rt, rva__paged_prepare prepare,
                                   void *ctx, rva_job **out);

/* Submit, wait, copy statuses into seq_status (NULL or g->nseq) and stats (may be
 * NULL), destroy the job. Returns the job's status. */
rva_status rva__engine_run_graph(rva_engine *e, rva__graph *g, rva_status *seq_status,
                                 rva_job_stats *stats);

/* The NUMA node (OS index) whose pool runs a sequence: of the nodes holding its Q, K and
 * V (node[i], -1 = unknown; bytes[i] their sizes), the one that holds the most bytes;
 * ties go to the earlier of Q, K, V; -1 when no node is known. */
int rva__seq_home_node(const int node[3], const double bytes[3]);

/* The engine's placement plan (valid while the engine lives). */
const rva__sched_plan *rva__engine_plan(const rva_engine *e);

/* Executor (sched/executor.c). */

/* Starts the team (dispatcher thread + OpenMP parallel region) and waits until every
 * worker has bound itself and touched its scratch. Errors: RVA_ESYSTEM. On failure the
 * team is stopped. */
rva_status rva__team_start(rva_engine *e);

/* Stops the team (no job may be active) and joins the dispatcher. */
void rva__team_stop(rva_engine *e);

/* Pushes the job's initially ready tasks (the job has at least one task and is registered
 * as active by rva__job_start). */
void rva__exec_launch(rva_engine *e, rva_job *job);

/* The job lifecycle (sched/job.c), one owner for the job's counters and caches. */

/* A new job of `kind` for nseq sequences; jobs that own their graph (attention, pipeline)
 * get it initialised with job memory from e's arena cache. NULL (and the detail) when out
 * of memory or a lock cannot be made. */
rva_job *rva__job_new(rva_engine *e, rva__job_kind kind, size_t nseq);

/* Allocates the job's per-sequence statuses (from init, or RVA_OK) and details.
 * Errors: RVA_ENOMEM, RVA_EOVERFLOW. */
rva_status rva__job_results(rva_job *job, size_t n, const rva_status *init);

/* Takes a task block, resets the dependency counters, registers the job as active and
 * launches it (a job without tasks ends right away). Errors: RVA_ENOMEM, RVA_EOVERFLOW,
 * RVA_ESTATE (engine being destroyed). On failure the job is not in the engine. */
rva_status rva__job_start(rva_engine *e, rva_job *job);

/* Ends a job whose every task is done: finish hook, statuses, statistics, caches given
 * back, unregistered, waiters woken. Called exactly once per job (by the worker that
 * completes its last task, or by rva__job_start). */
void rva__job_end(rva_job *job);

/* Frees a job that is not (or no longer) in the engine. */
void rva__job_free(rva_job *job);

/* Scratch buffers: allocates one of `size` usable bytes, bound to the NUMA node with OS
 * index numa_os when the topology is this system (on_node says whether that worked). */
rva__scratch *rva__scratch_new(rva_engine *e, size_t size, unsigned numa_os);
void rva__scratch_free(rva__scratch *s);

#endif

/*
 * rvattn — the batch engine: NUMA-aware worker pools that run job graphs.
 *
 * Lifecycle (hwloc style): rva_engine_create() discovers the topology, resolves the
 * allowed cores, builds one pool per NUMA domain with one worker per core (bound with
 * hwloc), allocates each worker's scratch on its own node, and returns a ready engine.
 * Jobs are run synchronously (rva_engine_run) or submitted (rva_engine_submit) and then
 * waited, polled or cancelled. Several caller threads may submit at once. A job's
 * output does not depend on the number of threads or on the cpu set (bit-identical).
 *
 * Threads: workers are OpenMP threads of one flat team owned by the engine's dispatcher
 * thread; they spin for `spin_us` microseconds when idle, then park (a worker parks at
 * once when every task of the jobs in flight has started and another worker still runs
 * one: nothing can come to it before those end, and its core is left to the caller's
 * threads). Leave OMP_PROC_BIND
 * and OMP_PLACES unset: hwloc does the binding. Every engine thread blocks all
 * asynchronous signals (faults excepted), so signals reach the caller's threads only.
 */
#ifndef RVATTN_ENGINE_H
#define RVATTN_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attention.h"
#include "batch.h"
#include "kernels.h"
#include "status.h"

RVA_BEGIN_DECLS

typedef struct rva_engine rva_engine;
typedef struct rva_job rva_job;
typedef struct rva_pipeline rva_pipeline; /* see pipeline.h */

typedef enum rva_numa_policy {
	RVA_NUMA_LOCAL = 0, /* tasks run in the domain that holds their sequence's data */
	RVA_NUMA_SPREAD,    /* sequences dealt round-robin over domains */
	RVA_NUMA_INTERLEAVE,/* job memory interleaved over domains; tasks go anywhere */
	RVA_NUMA_COUNT
} rva_numa_policy;

typedef struct rva_engine_config {
	unsigned threads;          /* 0 = one per allowed core (or PU with per_pu) */
	const char *cpus;          /* allowed set: "0-3,8" (PUs) or TYPE:RANGE ("core:0-3",
	                            * "numa:1", "package:0"); NULL or "" = all allowed */
	rva_numa_policy numa;      /* default RVA_NUMA_LOCAL */
	bool per_pu;               /* one worker per PU instead of per core */
	rva_kernel_set kernels;    /* BLIS kernel set; AUTO = process default */
	const char *topology_synthetic; /* hwloc synthetic description, or NULL */
	const char *topology_xml;  /* hwloc XML file, or NULL (HWLOC_XMLFILE/HWLOC_SYNTHETIC
	                            * in the environment work too) */
	bool assume_this_system;   /* with a synthetic/XML topology: binding is real */
	size_t scratch_bytes;      /* per-worker scratch reserved at creation; 0 = 8 MiB;
	                            * grown (outside the task loop) if a job needs more */
	unsigned spin_us;          /* idle spin before parking, microseconds; default 100,
	                            * 0 = park at once, at most 1000000 */
	uint64_t reserved[8];      /* zero (growth: the rule of config.h) */
} rva_engine_config;

/* The defaults listed above. */
rva_engine_config rva_engine_config_defaults(void);

/*
 * Creates an engine. cfg may be NULL (defaults). On success *out must be destroyed.
 * A cpu set wider than what exists and is allowed is clipped, and rva_engine_info.notes
 * says what was dropped. HWLOC_SYNTHETIC / HWLOC_XMLFILE (when cfg names no topology)
 * are loaded explicitly: a bad one fails creation instead of silently describing this
 * machine.
 * Errors: RVA_ENULL; RVA_EINVAL (bad cpu set syntax, unknown policy, threads larger
 * than the allowed cores, a bad topology_synthetic); RVA_EOVERFLOW (scratch_bytes too
 * large to round up to whole pages); RVA_ERANGE (spin_us above 1000000); RVA_ENOTFOUND (cpu set names no
 * allowed core); RVA_ESYSTEM (hwloc failed to load the topology or cannot read the XML
 * file, a bad HWLOC_SYNTHETIC, both HWLOC_SYNTHETIC and HWLOC_XMLFILE set);
 * RVA_EUNSUPPORTED (kernel set); RVA_ENOMEM.
 */
rva_status rva_engine_create(const rva_engine_config *cfg, rva_engine **out);

/* Waits for every submitted job to end, then frees the engine (NULL is fine). Jobs not
 * yet destroyed by the caller stay valid for rva_job_* queries and rva_job_destroy. */
rva_status rva_engine_destroy(rva_engine *e);

/* Description of an engine, for reports and `rvattn topo`. */
typedef struct rva_engine_info {
	unsigned workers;          /* worker threads */
	unsigned pools;            /* NUMA domains used (one pool each) */
	bool binding_real;         /* false when the topology is not this system */
	rva_kernel_set kernels;    /* BLIS kernel set in use */
	char topology[64];         /* "this system", "synthetic: ...", "xml: FILE" */
	char cpuset[128];          /* allowed PUs as a list string "0-3,8" */
	char notes[256];           /* settings clipped at creation, "" when none: the part of
	                            * `cpus` that names no PU of the topology or PUs the
	                            * process may not use ("cpu set \"0-127\": PUs 2-127
	                            * (item '0-127') do not exist, ...; using PUs 0-1") */
} rva_engine_info;

typedef struct rva_worker_info {
	unsigned index;            /* worker index */
	unsigned pool;             /* pool (NUMA domain) index */
	unsigned numa_os_index;    /* OS index of its NUMA node */
	unsigned core_index;       /* the core it is bound to (hwloc logical index) */
	unsigned pu_os_index;      /* the PU it is bound to (OS index) */
	bool bound;                /* binding succeeded */
	int observed_pu;           /* PU read back after binding (-1 unknown) */
	bool scratch_on_node;      /* scratch bound to its node */
	/* statistics since creation */
	uint64_t tasks;            /* tasks run */
	uint64_t busy_ns;          /* time inside tasks */
	uint64_t steals_local;     /* tasks taken from another worker of its own domain */
	uint64_t steals_remote;    /* tasks taken from another domain */
} rva_worker_info;

/* Errors: RVA_ENULL. */
rva_status rva_engine_info_get(const rva_engine *e, rva_engine_info *out);
/* Worker i of the engine. Errors: RVA_ENULL; RVA_ERANGE when i >= workers. */
rva_status rva_engine_worker(const rva_engine *e, unsigned i, rva_worker_info *out);

/* Statistics of one job. */
typedef struct rva_job_stats {
	uint64_t wall_ns;          /* submit to completion */
	uint64_t tasks;            /* tasks in the graph */
	double flops;              /* useful floating-point operations */
	double gflops;             /* flops / wall time */
	size_t failed_sequences;
	uint64_t reserved[8];      /* zero (growth: the rule of config.h). The MoE routing
	                            * statistics are not embedded (their size depends on
	                            * RVA_MOE_MAX_EXPERTS): rva_job_moe_stats */
} rva_job_stats;

/*
 * Runs att over batch on the engine and waits. rt may be NULL. seq_status, when
 * non-NULL, receives batch->count statuses: a bad sequence fails alone (its status says
 * why) and the others complete. A sequence whose output overlaps its q, k, v or key_mask
 * is such a bad sequence (RVA_EINVAL, the rule of batch.h; for pipelines the queries are
 * the pipeline's input). Returns RVA_OK when all succeeded, else the first failing
 * sequence's status (rva_last_error() names its index). stats may be NULL.
 */
rva_status rva_engine_run(rva_engine *e, const rva_attention *att, const rva_batch *batch,
                          const rva_runtime *rt, rva_status *seq_status,
                          rva_job_stats *stats);

/* Runs a pipeline (see pipeline.h) over a batch; the queries are the pipeline input. */
rva_status rva_engine_run_pipeline(rva_engine *e, const rva_pipeline *p,
                                   const rva_batch *batch, const rva_runtime *rt,
                                   rva_status *seq_status, rva_job_stats *stats);

/*
 * Submits without waiting. The batch's descriptors are copied; the memory they point to
 * (and att / p, and rt->moe_stats) must stay valid until the job has ended. *job must be
 * freed with rva_job_destroy (which waits). Errors: as rva_engine_run's validation of the
 * whole batch; RVA_ESTATE when the engine is being destroyed.
 */
rva_status rva_engine_submit(rva_engine *e, const rva_attention *att,
                             const rva_batch *batch, const rva_runtime *rt, rva_job **job);
rva_status rva_engine_submit_pipeline(rva_engine *e, const rva_pipeline *p,
                                      const rva_batch *batch, const rva_runtime *rt,
                                      rva_job **job);

/* Blocks until the job has ended; returns its overall status (RVA_ECANCELLED if a
 * cancel skipped any task). Errors: RVA_ENULL. */
rva_status rva_job_wait(rva_job *job);

/* *done = whether the job has ended. Errors: RVA_ENULL. */
rva_status rva_job_poll(rva_job *job, bool *done);

/* Progress of a job: tasks finished (or skipped) so far and tasks in its graph. The
 * count is updated in small batches, so it may lag a little behind the truth; it is
 * total once the job has ended. Errors: RVA_ENULL. */
rva_status rva_job_progress(const rva_job *job, uint64_t *done_tasks, uint64_t *total_tasks);

/* Requests cancellation: tasks not yet started are skipped (their sequences report
 * RVA_ECANCELLED), and the job then ends with RVA_ECANCELLED. A cancel that skipped
 * nothing (the job had ended, or its last task had already started) leaves every output
 * complete and the job's status what it would have been. Errors: RVA_ENULL. */
rva_status rva_job_cancel(rva_job *job);

/*
 * Cancels one sequence of a job (a stream that left while the others go on): its tasks
 * not yet started are skipped, tasks of it already running finish; the other sequences
 * run as if nothing happened (same outputs, bit for bit). Sequence i then reports
 * RVA_ECANCELLED (rva_job_seq_status) and its output is unspecified: partly written or
 * not at all. The job ends with the status of its first failing sequence, as with any
 * sequence that fails alone (RVA_ECANCELLED when that is i). A sequence that had already
 * failed keeps its status; a call after the job ended changes nothing. Any thread may
 * call it, at any time until rva_job_destroy. Errors: RVA_ENULL; RVA_ERANGE (i is not a
 * sequence of the job).
 */
rva_status rva_job_cancel_seq(rva_job *job, size_t i);

/* Status of sequence i of an ended job, and its error detail (may be NULL; valid until
 * rva_job_destroy). Errors: RVA_ENULL; RVA_ERANGE; RVA_ESTATE if the job has not ended. */
rva_status rva_job_seq_status(const rva_job *job, size_t i, rva_status *st,
                              const char **detail);

/* Statistics of an ended job. Errors: RVA_ENULL; RVA_ESTATE if not ended. */
rva_status rva_job_stats_get(const rva_job *job, rva_job_stats *out);

/* MoE routing statistics of an ended job that ran an MoE attention (or a pipeline with
 * one) with rt->moe_stats given at submission: a copy of what was written there, kept by
 * the job until rva_job_destroy. Errors: RVA_ENULL; RVA_ESTATE if not ended;
 * RVA_ENOTFOUND when the job collected none (no MoE stage, or rt->moe_stats was NULL). */
rva_status rva_job_moe_stats(const rva_job *job, rva_moe_stats *out);

/* Waits for the job, then frees it (NULL is fine). */
rva_status rva_job_destroy(rva_job *job);

/*
 * The streaming-read probe, the memory-bound baseline of an engine: decoding (few queries,
 * many keys) is limited by the rate at which K and V stream from memory, so its speed is
 * best stated as a share of a plain read of the same bytes by the same workers. Reads
 * every byte of the n buffers (bufs[i] of bytes[i] bytes, the caller's, only read) on the
 * engine's workers: a plain streaming read (a sum over the floats of each 1 MiB block, one
 * task per block, dealt over the workers as a job's tasks are), and stores the wall time
 * of that job (submission to completion) in *seconds; GB/s = sum(bytes) / *seconds * 1e-9.
 * Buffers need no alignment; a tail shorter than a float is read as bytes. `rvattn bench`
 * and bench/attention use it for their decode figures. Thread-safe as rva_engine_run is.
 * Errors: RVA_ENULL (e, bufs, bytes or seconds NULL, or a NULL buffer with bytes > 0);
 * RVA_EINVAL (n is 0); RVA_EOVERFLOW (2^32 blocks or more); RVA_ENOMEM; RVA_ESTATE (the
 * engine is being destroyed).
 */
rva_status rva_engine_read_probe(rva_engine *e, const void *const *bufs, const size_t *bytes,
                                 size_t n, double *seconds);

RVA_END_DECLS
#endif

/*
 * The engine's public API (include/rvattn/engine.h): creation (topology, plan, workers,
 * scratch, team), queries, job submission (copy, plan, place, launch) and the job calls.
 * The executor itself is in executor.c; the threading model in README.md.
 */
#include <stdio.h>
#include <string.h>

#include "attention/attention_internal.h"
#include "core/internal.h"
#include "sched/engine_internal.h"
#include "sdk/pipeline_internal.h"

#define DEFAULT_SCRATCH ((size_t)8 << 20)
#define DEFAULT_SPIN_US 100u
/* Job memory (graph arenas) an engine keeps for reuse; beyond it blocks are freed. */
#define ARENA_CACHE_BYTES ((size_t)128 << 20)

static atomic_uint_fast64_t engine_generations;

rva_engine_config rva_engine_config_defaults(void) {
	return (rva_engine_config){.threads = 0, .cpus = NULL, .numa = RVA_NUMA_LOCAL,
	                           .per_pu = false, .kernels = RVA_KERNELS_AUTO,
	                           .topology_synthetic = NULL, .topology_xml = NULL,
	                           .assume_this_system = false, .scratch_bytes = DEFAULT_SCRATCH,
	                           .spin_us = DEFAULT_SPIN_US};
}

/* ---- creation and destruction ------------------------------------------------------- */

/* Frees a (possibly partly built) engine whose team is not running. */
static void engine_free(rva_engine *e, unsigned queues_ready, int sync_ready) {
	if (e->workers) {
		for (unsigned i = 0; i < e->nworkers; i++) {
			rva__worker *w = &e->workers[i];
			rva__scratch_free(w->scratch);
			rva__scratch_free(atomic_load(&w->scratch_next));
			if (w->cpuset)
				hwloc_bitmap_free(w->cpuset);
		}
	}
	for (unsigned i = 0; i < queues_ready; i++)
		pthread_mutex_destroy(&e->queues[i].lock);
	rva__free(e->queues);
	rva__free(e->workers);
	for (int i = 0; i < 4; i++)
		rva__free(e->block_cache[i]);
	rva__arena_cache_destroy(e->arena_cache);
	rva__sched_plan_free(&e->plan);
	if (e->topo)
		hwloc_topology_destroy(e->topo);
	if (sync_ready >= 1)
		pthread_mutex_destroy(&e->park_lock);
	if (sync_ready >= 2)
		pthread_cond_destroy(&e->park_cond);
	if (sync_ready >= 3)
		pthread_cond_destroy(&e->start_cond);
	if (sync_ready >= 4)
		pthread_mutex_destroy(&e->lock);
	if (sync_ready >= 5)
		pthread_cond_destroy(&e->idle_cond);
	rva__free(e);
}

static int init_sync(rva_engine *e) {
	if (pthread_mutex_init(&e->park_lock, NULL))
		return 0;
	if (pthread_cond_init(&e->park_cond, NULL))
		return 1;
	if (pthread_cond_init(&e->start_cond, NULL))
		return 2;
	if (pthread_mutex_init(&e->lock, NULL))
		return 3;
	if (pthread_cond_init(&e->idle_cond, NULL))
		return 4;
	return 5;
}

/* RVA_NUMA_INTERLEAVE: job memory (arena blocks) is spread page by page over the NUMA
 * nodes allowed to the process, bound before its pages are first touched. Best effort:
 * where the OS refuses, the memory stays first-touch. */
static void interleave_job_memory(void *ptr, size_t bytes, void *user) {
	const rva_engine *e = user;
	hwloc_nodeset_t nodes = hwloc_bitmap_alloc();
	if (!nodes)
		return;
	hwloc_cpuset_to_nodeset(e->topo, hwloc_topology_get_allowed_cpuset(e->topo), nodes);
	if (hwloc_bitmap_weight(nodes) > 1)
		hwloc_set_area_membind(e->topo, ptr, bytes, nodes, HWLOC_MEMBIND_INTERLEAVE,
		                       HWLOC_MEMBIND_BYNODESET);
	hwloc_bitmap_free(nodes);
}

rva_status rva_engine_create(const rva_engine_config *cfg, rva_engine **out) {
	if (!out)
		return rva__fail(RVA_ENULL, "rva_engine_create: out is NULL");
	rva_engine_config c = cfg ? *cfg : rva_engine_config_defaults();
	if ((unsigned)c.numa >= RVA_NUMA_COUNT)
		return rva__fail(RVA_EINVAL, "rva_engine_create: unknown NUMA policy %d", (int)c.numa);
	if ((unsigned)c.kernels >= RVA_KERNELS_COUNT)
		return rva__fail(RVA_EINVAL, "rva_engine_create: unknown kernel set %d",
		                 (int)c.kernels);
	/* Scratch is rounded up to whole (huge) pages plus a header: a size that cannot be
	 * rounded must not wrap around to a tiny buffer. */
	size_t scratch_round;
	if (!rva__round_up_ok(c.scratch_bytes, (size_t)2 << 20, &scratch_round) ||
	    scratch_round > SIZE_MAX - ((size_t)4 << 20))
		return rva__fail(RVA_EOVERFLOW, "rva_engine_create: scratch_bytes %zu overflows when "
		                 "rounded up to whole pages", c.scratch_bytes);
	/* An idle worker spins this long before parking: a huge value would burn a core for
	 * hours after every job. */
	if (c.spin_us > 1000000u)
		return rva__fail(RVA_ERANGE, "rva_engine_create: spin_us %u exceeds 1000000 (1 s)",
		                 c.spin_us);
	const rva__gemm_ctx *gemm = NULL;
	rva_kernel_set kernels;
	rva_status st;
	/* The engine holds a concrete context: AUTO is the process default at creation, so a
	 * later rva_kernels_select() never switches kernels under a running job, and workers
	 * never go through the process-default lookup. */
	if (c.kernels == RVA_KERNELS_AUTO)
		rva_kernels_current(&kernels, NULL);
	else
		kernels = c.kernels;
	if ((st = rva__gemm_ctx_get(kernels, &gemm)) != RVA_OK)
		return st;
	kernels = rva__gemm_ctx_kernels(gemm);

	rva_engine *e = rva__calloc(1, sizeof *e);
	if (!e)
		return rva__fail(RVA_ENOMEM, "rva_engine_create: cannot allocate the engine");
	unsigned queues_ready = 0;
	int sync_ready = init_sync(e);
	if (sync_ready < 5) {
		engine_free(e, 0, sync_ready);
		return rva__fail(RVA_ESYSTEM, "rva_engine_create: cannot initialise a mutex or "
		                 "condition variable");
	}
	e->gemm = gemm;
	e->kernels = kernels;
	e->spin_us = c.spin_us;
	e->generation = atomic_fetch_add(&engine_generations, 1) + 1;

	if ((st = rva__arena_cache_create(ARENA_CACHE_BYTES, &e->arena_cache)) != RVA_OK ||
	    (st = rva__sched_topology_load(&c, &e->topo, e->topo_desc, sizeof e->topo_desc)) !=
	    RVA_OK)
		goto fail;
	e->thissystem = hwloc_topology_is_thissystem(e->topo);
	if (c.numa == RVA_NUMA_INTERLEAVE && e->thissystem)
		rva__arena_cache_set_binder(e->arena_cache, interleave_job_memory, e);
	hwloc_bitmap_t binding = rva__sched_binding(e->topo);
	if (!binding) {
		st = RVA_ENOMEM;
		goto fail;
	}
	st = rva__sched_plan_make(e->topo, binding, c.cpus, c.per_pu, c.threads, &e->plan);
	hwloc_bitmap_free(binding);
	if (st != RVA_OK)
		goto fail;

	unsigned W = e->nworkers = e->plan.nworkers;
	e->workers = rva__calloc(W, sizeof *e->workers);
	e->queues = rva__calloc(W, sizeof *e->queues);
	if (!e->workers || !e->queues) {
		st = rva__fail(RVA_ENOMEM, "rva_engine_create: cannot allocate %u workers", W);
		goto fail;
	}
	for (; queues_ready < W; queues_ready++)
		if (pthread_mutex_init(&e->queues[queues_ready].lock, NULL)) {
			st = rva__fail(RVA_ESYSTEM, "rva_engine_create: cannot initialise a queue lock");
			goto fail;
		}
	size_t scratch = c.scratch_bytes ? c.scratch_bytes : DEFAULT_SCRATCH;
	for (unsigned i = 0; i < W; i++) {
		rva__worker *w = &e->workers[i];
		w->observed_pu = -1;
		if (!(w->cpuset = hwloc_bitmap_alloc()) ||
		    hwloc_bitmap_set(w->cpuset, e->plan.workers[i].pu_os) < 0) {
			st = rva__fail(RVA_ENOMEM, "rva_engine_create: hwloc cannot allocate a bitmap");
			goto fail;
		}
		if (!(w->scratch = rva__scratch_new(e, scratch, e->plan.workers[i].numa_os))) {
			st = rva__propagate(RVA_ENOMEM);
			goto fail;
		}
	}
	e->scratch_size = e->workers[0].scratch->size;
	c.cpus = c.topology_synthetic = c.topology_xml = NULL;
	e->cfg = c;
	if ((st = rva__team_start(e)) != RVA_OK)
		goto fail;
	*out = e;
	return RVA_OK;
fail:
	engine_free(e, queues_ready, sync_ready);
	return st;
}

rva_status rva_engine_destroy(rva_engine *e) {
	if (!e)
		return RVA_OK;
	pthread_mutex_lock(&e->lock);
	e->destroying = true;
	while (e->active_jobs || e->submitters)
		pthread_cond_wait(&e->idle_cond, &e->lock);
	pthread_mutex_unlock(&e->lock);
	rva__team_stop(e);
	engine_free(e, e->nworkers, 5);
	return RVA_OK;
}

const rva__sched_plan *rva__engine_plan(const rva_engine *e) { return &e->plan; }

/* ---- queries ------------------------------------------------------------------------- */

rva_status rva_engine_info_get(const rva_engine *e, rva_engine_info *out) {
	if (!e || !out)
		return rva__fail(RVA_ENULL, "rva_engine_info_get: %s is NULL", !e ? "engine" : "out");
	memset(out, 0, sizeof *out);
	out->workers = e->nworkers;
	out->pools = e->plan.npools;
	out->binding_real = e->thissystem;
	out->kernels = e->kernels;
	snprintf(out->topology, sizeof out->topology, "%s", e->topo_desc);
	hwloc_bitmap_list_snprintf(out->cpuset, sizeof out->cpuset, e->plan.allowed);
	size_t nl = strnlen(e->plan.note, sizeof out->notes - 1);
	memcpy(out->notes, e->plan.note, nl);
	out->notes[nl] = '\0';
	return RVA_OK;
}

rva_status rva_engine_worker(const rva_engine *e, unsigned i, rva_worker_info *out) {
	if (!e || !out)
		return rva__fail(RVA_ENULL, "rva_engine_worker: %s is NULL", !e ? "engine" : "out");
	if (i >= e->nworkers)
		return rva__fail(RVA_ERANGE, "rva_engine_worker: worker %u of %u", i, e->nworkers);
	const rva__sched_worker *p = &e->plan.workers[i];
	rva__worker *w = &e->workers[i];
	*out = (rva_worker_info){
		.index = i, .pool = p->pool, .numa_os_index = p->numa_os,
		.core_index = p->core_logical, .pu_os_index = p->pu_os, .bound = w->bound,
		.observed_pu = w->observed_pu,
		.scratch_on_node = atomic_load_explicit(&w->scratch_on_node, memory_order_relaxed),
		.tasks = atomic_load_explicit(&w->tasks, memory_order_relaxed),
		.busy_ns = atomic_load_explicit(&w->busy_ns, memory_order_relaxed),
		.steals_local = atomic_load_explicit(&w->steals_local, memory_order_relaxed),
		.steals_remote = atomic_load_explicit(&w->steals_remote, memory_order_relaxed)};
	return RVA_OK;
}

/* ---- jobs: allocation, placement, launch -------------------------------------------- */



/* Makes every worker's scratch at least `need` bytes: new buffers are handed over and
 * taken by each worker before its next task (never resized inside a task). */
static rva_status ensure_scratch(rva_engine *e, size_t need) {
	pthread_mutex_lock(&e->lock);
	if (need <= e->scratch_size) {
		pthread_mutex_unlock(&e->lock);
		return RVA_OK;
	}
	rva__scratch **fresh;
	rva_status st = rva__alloc_array((void **)&fresh, e->nworkers, sizeof *fresh,
	                                 "engine scratch growth");
	if (st != RVA_OK) {
		pthread_mutex_unlock(&e->lock);
		return st;
	}
	size_t size;
	if (!rva__round_up_ok(need, (size_t)64 << 10, &size)) {
		pthread_mutex_unlock(&e->lock);
		rva__free(fresh);
		return rva__fail(RVA_EOVERFLOW, "engine: a job needs %zu bytes of scratch per worker, "
		                 "which overflows when rounded up", need);
	}
	for (unsigned i = 0; i < e->nworkers; i++) {
		if (!(fresh[i] = rva__scratch_new(e, size, e->plan.workers[i].numa_os))) {
			for (unsigned j = 0; j < i; j++)
				rva__scratch_free(fresh[j]);
			rva__free(fresh);
			pthread_mutex_unlock(&e->lock);
			return rva__propagate(RVA_ENOMEM);
		}
	}
	for (unsigned i = 0; i < e->nworkers; i++)
		rva__scratch_free(atomic_exchange(&e->workers[i].scratch_next, fresh[i]));
	e->scratch_size = fresh[0]->size;
	pthread_mutex_unlock(&e->lock);
	rva__free(fresh);
	return RVA_OK;
}


int rva__seq_home_node(const int node[3], const double bytes[3]) {
	int best = -1;
	double most = 0.0;
	for (int i = 0; i < 3; i++) {
		if (node[i] < 0)
			continue;
		double sum = 0.0;
		for (int j = 0; j < 3; j++)
			if (node[j] == node[i])
				sum += bytes[j];
		if (best < 0 || sum > most) { /* ties: the earlier of Q, K, V */
			best = node[i];
			most = sum;
		}
	}
	return best;
}

/* The NUMA node (OS index) holding the page of p, -1 when unknown; last_page, last_node
 * remember the previous answer (consecutive sequences often share pages). */
static int node_of(const rva_engine *e, const void *p, hwloc_bitmap_t ns, uintptr_t *last_page,
                   int *last_node) {
	if (!p)
		return -1;
	uintptr_t page = (uintptr_t)p & ~(uintptr_t)4095;
	if (page == *last_page)
		return *last_node;
	int node = -1;
	if (hwloc_get_area_memlocation(e->topo, p, 1, ns, HWLOC_MEMBIND_BYNODESET) == 0 &&
	    !hwloc_bitmap_iszero(ns))
		node = hwloc_bitmap_first(ns);
	*last_page = page;
	*last_node = node;
	return node;
}

/* Where each sequence's tasks go (NULL seq_pool: anywhere, e.g. a single pool). Under
 * RVA_NUMA_LOCAL on the real machine, the pool of the node that holds most of the
 * sequence's input bytes, Q, K and V counted (decode reads K and V, thousands of rows, for
 * one query row). */
static rva_status place(rva_engine *e, rva_job *job, const rva_seq *seqs) {
	const rva__sched_plan *p = &e->plan;
	if (p->npools <= 1 || job->nseq == 0 || e->cfg.numa == RVA_NUMA_INTERLEAVE)
		return RVA_OK;
	rva_status st = rva__alloc_array((void **)&job->seq_pool, job->nseq,
	                                 sizeof *job->seq_pool, "engine sequence placement");
	if (st != RVA_OK)
		return st;
	hwloc_bitmap_t ns = NULL;
	bool locate = e->cfg.numa == RVA_NUMA_LOCAL && e->thissystem && seqs;
	if (locate && !(ns = hwloc_bitmap_alloc()))
		locate = false;
	uintptr_t last_page[3] = {0, 0, 0};
	int last_node[3] = {-1, -1, -1};
	for (size_t s = 0; s < job->nseq; s++) {
		int node = -1;
		if (locate && seqs[s].nq) {
			const rva_seq *q = &seqs[s];
			const void *ptr[3] = {q->q, q->k, q->v};
			double rows[3] = {(double)q->nq, (double)q->nk, (double)q->nk};
			size_t stride[3] = {q->q_stride, q->k_stride, q->v_stride};
			int nodes[3];
			double bytes[3];
			for (int i = 0; i < 3; i++) {
				nodes[i] = node_of(e, ptr[i], ns, &last_page[i], &last_node[i]);
				bytes[i] = rows[i] * (double)(stride[i] ? stride[i] : 1);
			}
			node = rva__seq_home_node(nodes, bytes);
		}
		job->seq_pool[s] = rva__sched_place(p, e->cfg.numa, s, job->nseq, node);
	}
	if (ns)
		hwloc_bitmap_free(ns);
	return RVA_OK;
}

/* Prepares the job's execution state and launches it (sched/job.c starts it). On failure
 * the job is not in the engine and the caller frees it. */
static rva_status launch(rva_engine *e, rva_job *job, const rva_seq *seqs) {
	rva__graph *g = job->g;
	rva_status st;
	if (!g->finalized && (st = rva__graph_finalize(g)) != RVA_OK)
		return st;
	if ((st = ensure_scratch(e, g->scratch_bytes)) != RVA_OK ||
	    (st = place(e, job, seqs)) != RVA_OK)
		return st;
	return rva__job_start(e, job);
}


/* A submitter registers before it touches the engine and leaves after its last access
 * (the wake-up of the workers), so rva_engine_destroy never frees the engine under a
 * submitting thread; submissions that start after destroy began get RVA_ESTATE. */
static rva_status submit_enter(rva_engine *e) {
	pthread_mutex_lock(&e->lock);
	if (e->destroying) {
		pthread_mutex_unlock(&e->lock);
		return rva__fail(RVA_ESTATE, "engine: cannot submit, the engine is being destroyed");
	}
	e->submitters++;
	pthread_mutex_unlock(&e->lock);
	return RVA_OK;
}

static void submit_leave(rva_engine *e) {
	pthread_mutex_lock(&e->lock);
	if (--e->submitters == 0)
		pthread_cond_broadcast(&e->idle_cond);
	pthread_mutex_unlock(&e->lock);
}

rva_status rva__engine_submit_graph(rva_engine *e, rva__graph *g,
                                    const rva_status *init_status, const rva_seq *seqs,
                                    rva_job **out) {
	if (!e || !g || !out)
		return rva__fail(RVA_ENULL, "engine: submit_graph: %s is NULL",
		                 !e ? "engine" : !g ? "graph" : "out");
	rva_status st = submit_enter(e);
	if (st != RVA_OK)
		return st;
	rva_job *job = rva__job_new(e, RVA__JOB_GRAPH, g->nseq);
	if (!job) {
		submit_leave(e);
		return RVA_ENOMEM;
	}
	job->g = g;
	job->rt = rva__runtime_or_default(NULL);
	if ((st = rva__job_results(job, g->nseq, init_status)) != RVA_OK ||
	    (st = launch(e, job, seqs)) != RVA_OK) {
		rva__job_free(job);
		submit_leave(e);
		return st;
	}
	*out = job;
	submit_leave(e);
	return RVA_OK;
}

/* A new job of n sequences with its runtime, result arrays, and the per-sequence
 * descriptor and done-count arrays in its graph (the start every submission shares).
 * On failure the job, when one was made, is left in *job for the caller to end. */
static rva_status job_start(rva_engine *e, rva__job_kind kind, size_t n,
                            const rva_runtime *rt, rva_job **job, rva_seq **seqs,
                            uint32_t **done) {
	*job = rva__job_new(e, kind, n);
	if (!*job)
		return RVA_ENOMEM;
	(*job)->rt = rva__runtime_or_default(rt);
	rva_status st = rva__job_results(*job, n, NULL);
	if (st != RVA_OK)
		return st;
	*seqs = rva__graph_alloc_array((*job)->g, n ? n : 1, sizeof **seqs);
	*done = rva__graph_alloc_array((*job)->g, n ? n : 1, sizeof **done);
	return *seqs && *done ? RVA_OK : rva__propagate(RVA_ENOMEM);
}

/* Submits an attention (att) or a pipeline (p) over a batch. */
static rva_status submit_op(rva_engine *e, const rva_attention *att, const rva_pipeline *p,
                            const rva_batch *batch, const rva_runtime *rt, rva_job **out) {
	size_t n = batch->count;
	rva_job *job;
	rva_seq *seqs = NULL;
	uint32_t *done = NULL;
	rva_status st = job_start(e, att ? RVA__JOB_ATTENTION : RVA__JOB_PIPELINE, n, rt, &job,
	                          &seqs, &done);
	if (!job)
		return st;
	rva__graph *g = job->g;
	if (st != RVA_OK)
		goto fail;
	/* The batch's descriptors are copied: the caller's array may go away after submit.
	 * Attention strides are normalised here; the pipeline planner normalises its own. */
	for (size_t s = 0; s < n; s++) {
		if (att)
			rva__normalise_seq(att, &batch->seqs[s], &seqs[s]);
		else
			seqs[s] = batch->seqs[s];
	}
	rva__plan_io io = {.seqs = seqs, .nseq = n, .rt = job->rt, .after = NULL, .done = done,
	                   .seq_status = job->seq_status, .details = job->details,
	                   .stream = 0};
	st = att ? rva__attention_plan(att, &io, g) : rva__pipeline_plan(p, &io, g);
	if (st != RVA_OK)
		goto fail;
	job->moe = job->rt.moe_stats &&
	           (att ? att->cfg.mechanism == RVA_MECH_MOE : g->finish != NULL);
	if ((st = launch(e, job, seqs)) != RVA_OK)
		goto fail;
	*out = job;
	return RVA_OK;
fail:
	rva__job_free(job);
	return st;
}

rva_status rva__engine_submit_paged(rva_engine *e, const rva_attention *att, size_t n,
                                   const rva_runtime *rt, rva__paged_prepare prepare,
                                   void *ctx, rva_job **out) {
	rva_status st = submit_enter(e);
	if (st != RVA_OK)
		return st;
	rva_job *job;
	rva_seq *seqs = NULL;
	uint32_t *done = NULL;
	st = job_start(e, RVA__JOB_ATTENTION, n, rt, &job, &seqs, &done);
	if (!job) {
		submit_leave(e);
		return st;
	}
	rva__graph *g = job->g;
	if (st != RVA_OK)
		goto fail;
	rva__kv_pages *pages = rva__graph_alloc_array(g, n ? n : 1, sizeof *pages);
	if (!pages) {
		st = rva__propagate(RVA_ENOMEM);
		goto fail;
	}
	memset(seqs, 0, (n ? n : 1) * sizeof *seqs);
	memset(pages, 0, (n ? n : 1) * sizeof *pages);
	if ((st = prepare(ctx, g, seqs, pages, job->seq_status, job->details)) != RVA_OK)
		goto fail;
	for (size_t s = 0; s < n; s++)
		rva__normalise_seq(att, &seqs[s], &seqs[s]);
	rva__plan_io io = {.seqs = seqs, .nseq = n, .rt = job->rt, .after = NULL, .done = done,
	                   .seq_status = job->seq_status, .details = job->details,
	                   .stream = 0, .pages = pages};
	if ((st = rva__attention_plan(att, &io, g)) != RVA_OK ||
	    (st = launch(e, job, seqs)) != RVA_OK)
		goto fail;
	*out = job;
	submit_leave(e);
	return RVA_OK;
fail:
	/* the job never ran: its finish hook (set by prepare) releases what prepare took */
	rva__graph_finish(g, job->seq_status);
	rva__job_free(job);
	submit_leave(e);
	return st;
}

static rva_status check_batch(const char *who, rva_engine *e, const void *op,
                              const char *opname, const rva_batch *batch) {
	if (!e || !op || !batch)
		return rva__fail(RVA_ENULL, "%s: %s is NULL", who,
		                 !e ? "engine" : !op ? opname : "batch");
	if (batch->count && !batch->seqs)
		return rva__fail(RVA_ENULL, "%s: batch has %zu sequences but seqs is NULL", who,
		                 batch->count);
	return RVA_OK;
}

rva_status rva_engine_submit(rva_engine *e, const rva_attention *att,
                             const rva_batch *batch, const rva_runtime *rt, rva_job **job) {
	rva_status st = check_batch("rva_engine_submit", e, att, "attention", batch);
	if (st != RVA_OK)
		return st;
	if (!job)
		return rva__fail(RVA_ENULL, "rva_engine_submit: job is NULL");
	if ((st = submit_enter(e)) != RVA_OK)
		return st;
	st = submit_op(e, att, NULL, batch, rt, job);
	submit_leave(e);
	return st;
}

rva_status rva_engine_submit_pipeline(rva_engine *e, const rva_pipeline *p,
                                      const rva_batch *batch, const rva_runtime *rt,
                                      rva_job **job) {
	rva_status st = check_batch("rva_engine_submit_pipeline", e, p, "pipeline", batch);
	if (st != RVA_OK)
		return st;
	if (!job)
		return rva__fail(RVA_ENULL, "rva_engine_submit_pipeline: job is NULL");
	if ((st = submit_enter(e)) != RVA_OK)
		return st;
	st = submit_op(e, NULL, p, batch, rt, job);
	submit_leave(e);
	return st;
}

/* ---- waiting and results ------------------------------------------------------------ */

/* Always through the lock: the finishing worker sets `ended` and broadcasts under it, so
 * taking the lock here guarantees that worker is out of the mutex and condition variable
 * before the caller may destroy the job. */
static void wait_ended(rva_job *job) {
	pthread_mutex_lock(&job->lock);
	while (!atomic_load_explicit(&job->ended, memory_order_acquire))
		pthread_cond_wait(&job->cond, &job->lock);
	pthread_mutex_unlock(&job->lock);
}

rva_status rva_job_wait(rva_job *job) {
	if (!job)
		return rva__fail(RVA_ENULL, "rva_job_wait: job is NULL");
	wait_ended(job);
	rva_status st = job->status;
	if (st == RVA_OK)
		return RVA_OK;
	/* The detail on the waiting thread, as the serial path words it. */
	size_t f = job->first_failed;
	bool from_seq = st != RVA_ECANCELLED && f != SIZE_MAX && job->seq_status[f] == st &&
	                !atomic_load(&job->job_status) && !job->errbuf[0];
	if (from_seq) {
		const char *d = job->details && job->details[f] ? job->details[f] : rva_strerror(st);
		if (job->nseq > 1)
			return rva__fail(st, "sequence %zu: %s", f, d);
		return rva__fail(st, "%s", d);
	}
	return rva__fail(st, "%s", job->errbuf[0] ? job->errbuf : rva_strerror(st));
}

rva_status rva_job_poll(rva_job *job, bool *done) {
	if (!job || !done)
		return rva__fail(RVA_ENULL, "rva_job_poll: %s is NULL", !job ? "job" : "done");
	*done = atomic_load_explicit(&job->ended, memory_order_acquire);
	return RVA_OK;
}

rva_status rva_job_progress(const rva_job *job, uint64_t *done_tasks, uint64_t *total_tasks) {
	if (!job || !done_tasks || !total_tasks)
		return rva__fail(RVA_ENULL, "rva_job_progress: NULL argument");
	uint32_t left = atomic_load_explicit(&((rva_job *)job)->remaining, memory_order_relaxed);
	if (atomic_load_explicit(&((rva_job *)job)->ended, memory_order_acquire))
		left = 0;
	*total_tasks = job->ntasks;
	*done_tasks = job->ntasks - (left < job->ntasks ? left : job->ntasks);
	return RVA_OK;
}

rva_status rva_job_cancel(rva_job *job) {
	if (!job)
		return rva__fail(RVA_ENULL, "rva_job_cancel: job is NULL");
	atomic_store_explicit(&job->cancelled, true, memory_order_release);
	return RVA_OK;
}

rva_status rva_job_cancel_seq(rva_job *job, size_t i) {
	if (!job)
		return rva__fail(RVA_ENULL, "rva_job_cancel_seq: job is NULL");
	if (i >= job->nseq)
		return rva__fail(RVA_ERANGE, "rva_job_cancel_seq: sequence %zu of %zu", i, job->nseq);
	/* Under the job's lock, which rva__job_end takes before it reads the statuses: a
	 * cancel either lands before the job's outcome is computed or changes nothing. The
	 * executor skips a task whose sequence's status is not RVA_OK (rva__graph_exec_task). */
	pthread_mutex_lock(&job->lock);
	if (!job->closing) {
		int expected = RVA_OK;
		__atomic_compare_exchange_n((int *)&job->seq_status[i], &expected, (int)RVA_ECANCELLED,
		                            false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
	}
	pthread_mutex_unlock(&job->lock);
	return RVA_OK;
}

rva_status rva_job_seq_status(const rva_job *job, size_t i, rva_status *st,
                              const char **detail) {
	if (!job || !st)
		return rva__fail(RVA_ENULL, "rva_job_seq_status: %s is NULL", !job ? "job" : "st");
	if (!atomic_load_explicit(&job->ended, memory_order_acquire))
		return rva__fail(RVA_ESTATE, "rva_job_seq_status: the job has not ended");
	if (i >= job->nseq)
		return rva__fail(RVA_ERANGE, "rva_job_seq_status: sequence %zu of %zu", i, job->nseq);
	*st = job->seq_status[i];
	if (detail) {
		const char *d = job->details ? job->details[i] : NULL;
		*detail = d ? d : *st != RVA_OK ? rva_strerror(*st) : "";
	}
	return RVA_OK;
}

rva_status rva_job_stats_get(const rva_job *job, rva_job_stats *out) {
	if (!job || !out)
		return rva__fail(RVA_ENULL, "rva_job_stats_get: %s is NULL", !job ? "job" : "out");
	if (!atomic_load_explicit(&job->ended, memory_order_acquire))
		return rva__fail(RVA_ESTATE, "rva_job_stats_get: the job has not ended");
	*out = job->stats;
	return RVA_OK;
}

rva_status rva_job_moe_stats(const rva_job *job, rva_moe_stats *out) {
	if (!job || !out)
		return rva__fail(RVA_ENULL, "rva_job_moe_stats: %s is NULL", !job ? "job" : "out");
	if (!atomic_load_explicit(&job->ended, memory_order_acquire))
		return rva__fail(RVA_ESTATE, "rva_job_moe_stats: the job has not ended");
	if (!job->has_moe_stats)
		return rva__fail(RVA_ENOTFOUND, "rva_job_moe_stats: the job collected no MoE "
		                 "statistics (no MoE attention, or rt->moe_stats was NULL)");
	*out = job->moe_stats;
	return RVA_OK;
}

rva_status rva_job_destroy(rva_job *job) {
	if (!job)
		return RVA_OK;
	wait_ended(job);
	rva__job_free(job);
	return RVA_OK;
}

/* ---- synchronous runs ------------------------------------------------------------------ */

/* Waits for job, hands out its results, destroys it. */
static rva_status finish_run(rva_job *job, rva_status *seq_status, rva_job_stats *stats) {
	rva_status st = rva_job_wait(job);
	if (seq_status)
		memcpy(seq_status, job->seq_status, job->nseq * sizeof *seq_status);
	if (stats)
		*stats = job->stats;
	rva__job_free(job);
	return st;
}

rva_status rva__engine_run_graph(rva_engine *e, rva__graph *g, rva_status *seq_status,
                                 rva_job_stats *stats) {
	rva_job *job = NULL;
	rva_status st = rva__engine_submit_graph(e, g, NULL, NULL, &job);
	if (st != RVA_OK)
		return st;
	return finish_run(job, seq_status, stats);
}

rva_status rva_engine_run(rva_engine *e, const rva_attention *att, const rva_batch *batch,
                          const rva_runtime *rt, rva_status *seq_status,
                          rva_job_stats *stats) {
	rva_job *job = NULL;
	rva_status st = rva_engine_submit(e, att, batch, rt, &job);
	if (st != RVA_OK)
		return st;
	return finish_run(job, seq_status, stats);
}

rva_status rva_engine_run_pipeline(rva_engine *e, const rva_pipeline *p,
                                   const rva_batch *batch, const rva_runtime *rt,
                                   rva_status *seq_status, rva_job_stats *stats) {
	rva_job *job = NULL;
	rva_status st = rva_engine_submit_pipeline(e, p, batch, rt, &job);
	if (st != RVA_OK)
		return st;
	return finish_run(job, seq_status, stats);
}

/*
 * The job lifecycle, in one place: a job is created (rva__job_new: its graph draws job
 * memory from the engine's arena cache), gets its per-sequence results, takes a task block
 * from the engine's cache and registers as active (rva__job_start), runs on the executor,
 * and ends exactly once (rva__job_end: statuses, statistics, the graph's memory and the
 * task block back to the engine's caches, unregistered, announced); the caller then waits
 * for it and frees it (rva_job_destroy). Every counter this file increments it also
 * decrements, and every cache it takes from it also returns to. The executor
 * (executor.c) only runs tasks and calls rva__job_end when a job's last task is done.
 */
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "sched/engine_internal.h"

/* ---- creation and destruction -------------------------------------------------------- */

rva_job *rva__job_new(rva_engine *e, rva__job_kind kind, size_t nseq) {
	rva_job *job = rva__calloc(1, sizeof *job);
	if (!job) {
		rva__fail(RVA_ENOMEM, "engine: cannot allocate a job");
		return NULL;
	}
	if (pthread_mutex_init(&job->lock, NULL)) {
		rva__free(job);
		rva__fail(RVA_ESYSTEM, "engine: cannot initialise a job lock");
		return NULL;
	}
	if (pthread_cond_init(&job->cond, NULL)) {
		pthread_mutex_destroy(&job->lock);
		rva__free(job);
		rva__fail(RVA_ESYSTEM, "engine: cannot initialise a job condition variable");
		return NULL;
	}
	job->kind = kind;
	if (kind != RVA__JOB_GRAPH) {
		/* job memory (descriptors, plan data, intermediates) comes from the engine's
		 * arena cache and goes back to it when the job ends */
		job->g = &job->graph;
		rva__graph_init_cached(job->g, nseq, e->arena_cache);
	}
	job->first_failed = SIZE_MAX;
	return job;
}

/* Frees a job that is not (or no longer) in the engine. */
void rva__job_free(rva_job *job) {
	if (job->details)
		for (size_t s = 0; s < job->nseq; s++)
			rva__free(job->details[s]);
	rva__free(job->seq_status);
	rva__free(job->details);
	rva__free(job->seq_pool);
	rva__free(job->block);
	if (job->kind != RVA__JOB_GRAPH)
		rva__graph_free(&job->graph);
	pthread_cond_destroy(&job->cond);
	pthread_mutex_destroy(&job->lock);
	rva__free(job);
}

/* Allocates the job's per-sequence results (kept until rva_job_destroy, after the
 * graph has gone back to the engine). */
rva_status rva__job_results(rva_job *job, size_t n, const rva_status *init) {
	size_t m = n ? n : 1;
	rva_status st = rva__alloc_array((void **)&job->seq_status, m, sizeof *job->seq_status,
	                                 "job sequence status");
	if (st != RVA_OK)
		return st;
	if (!(job->details = rva__calloc(m, sizeof *job->details)))
		return rva__fail(RVA_ENOMEM, "engine: cannot allocate %zu sequence details", n);
	for (size_t s = 0; s < n; s++)
		job->seq_status[s] = init ? init[s] : RVA_OK;
	job->nseq = n;
	return RVA_OK;
}

/* The task block (queue nodes, dependency counters, launch list heads): a cached one
 * from an ended job when big enough, else a new one. */
static rva_status take_block(rva_engine *e, rva_job *job, uint32_t ntasks) {
	size_t cap = ntasks ? ntasks : 1;
	pthread_mutex_lock(&e->lock);
	int best = -1;
	for (int i = 0; i < 4; i++)
		if (e->block_cache[i] && e->block_cache_tasks[i] >= cap &&
		    (best < 0 || e->block_cache_tasks[i] < e->block_cache_tasks[best]))
			best = i;
	if (best >= 0) {
		job->block = e->block_cache[best];
		job->block_tasks = e->block_cache_tasks[best];
		e->block_cache[best] = NULL;
		e->block_cache_tasks[best] = 0;
	}
	pthread_mutex_unlock(&e->lock);
	if (!job->block) {
		size_t off = rva__block_heads_offset(cap), bytes;
		if (!rva__add_ok(off, (size_t)e->nworkers * sizeof(rva__qnode *), &bytes) ||
		    cap > SIZE_MAX / (sizeof(rva__qnode) + sizeof(atomic_uint)))
			return rva__fail(RVA_EOVERFLOW, "engine: %zu tasks overflow the task block", cap);
		if (!(job->block = rva__malloc(bytes)))
			return rva__fail(RVA_ENOMEM, "engine: cannot allocate %zu bytes of task state for "
			                 "%u tasks", bytes, ntasks);
		job->block_tasks = cap;
	}
	job->nodes = job->block;
	job->deps = (atomic_uint *)((unsigned char *)job->block +
	                            job->block_tasks * sizeof(rva__qnode));
	return RVA_OK;
}

/* Gives the task block back to the engine's cache (evicting the smallest when full) and
 * unregisters the job, under the engine's lock. */
static void return_block_and_leave(rva_engine *e, rva_job *job) {
	void *evict = job->block;
	pthread_mutex_lock(&e->lock);
	int slot = -1;
	size_t smallest = SIZE_MAX;
	for (int i = 0; i < 4; i++) {
		if (!e->block_cache[i]) {
			slot = i;
			smallest = 0;
			break;
		}
		if (e->block_cache_tasks[i] < smallest) {
			smallest = e->block_cache_tasks[i];
			slot = i;
		}
	}
	if (slot >= 0 && smallest < job->block_tasks) {
		evict = e->block_cache[slot];
		e->block_cache[slot] = job->block;
		e->block_cache_tasks[slot] = job->block_tasks;
	}
	e->active_jobs--;
	if (e->active_jobs == 0)
		pthread_cond_broadcast(&e->idle_cond);
	pthread_mutex_unlock(&e->lock);
	job->block = NULL;
	job->nodes = NULL;
	job->deps = NULL;
	rva__free(evict);
}

/* ---- start and end ----------------------------------------------------------------- */

rva_status rva__job_start(rva_engine *e, rva_job *job) {
	rva__graph *g = job->g;
	rva_status st = take_block(e, job, g->ntasks);
	if (st != RVA_OK)
		return st;
	for (uint32_t t = 0; t < g->ntasks; t++) {
		job->nodes[t] = (rva__qnode){.job = job, .task = t, .cost = g->tasks[t].cost};
		atomic_init(&job->deps[t], g->tasks[t].ndeps);
	}
	atomic_init(&job->remaining, g->ntasks);
	job->ntasks = g->ntasks;
	atomic_init(&job->job_status, RVA_OK);
	pthread_mutex_lock(&e->lock);
	if (e->destroying) {
		pthread_mutex_unlock(&e->lock);
		return rva__fail(RVA_ESTATE, "engine: cannot submit, the engine is being destroyed");
	}
	job->id = ++e->next_job_id;
	e->active_jobs++;
	pthread_mutex_unlock(&e->lock);
	job->engine = e;
	job->t_submit = rva__now_ns();
	if (g->ntasks == 0)
		rva__job_end(job);
	else
		rva__exec_launch(e, job);
	return RVA_OK;
}

/* The job's status: a cancel counts only when it kept a task from running. A cancel that
 * arrives after the last task (every output complete) leaves the job's own outcome. */
static rva_status job_outcome(rva_job *job, rva_status js, size_t failed) {
	if (atomic_load_explicit(&job->cancel_skipped, memory_order_acquire)) {
		if (!job->errbuf[0])
			snprintf(job->errbuf, sizeof job->errbuf, "job cancelled");
		return RVA_ECANCELLED;
	}
	if (js != RVA_OK)
		return js;
	return failed ? job->seq_status[job->first_failed] : RVA_OK;
}

void rva__job_end(rva_job *job) {
	rva__graph *g = job->g;
	rva_status js = (rva_status)atomic_load_explicit(&job->job_status, memory_order_acquire);
	pthread_mutex_lock(&job->lock); /* no rva_job_cancel_seq from here on */
	job->closing = true;
	pthread_mutex_unlock(&job->lock);
	rva_clear_error();
	rva_status fin = rva__graph_finish(g, job->seq_status);
	if (fin != RVA_OK && js == RVA_OK) {
		js = fin;
		snprintf(job->errbuf, sizeof job->errbuf, "%s",
		         rva_last_error()[0] ? rva_last_error() : rva_strerror(fin));
	}
	size_t failed = 0;
	job->first_failed = SIZE_MAX;
	for (size_t s = 0; s < job->nseq; s++)
		if (job->seq_status[s] != RVA_OK) {
			if (!failed)
				job->first_failed = s;
			failed++;
		}
	job->status = job_outcome(job, js, failed);
	uint64_t wall = rva__now_ns() - job->t_submit;
	job->stats.wall_ns = wall;
	job->stats.tasks = g->ntasks;
	job->stats.flops = g->flops;
	job->stats.gflops = wall ? g->flops / (double)wall : 0.0;
	job->stats.failed_sequences = failed;
	if (job->moe && job->rt.moe_stats) {
		job->has_moe_stats = true;
		job->moe_stats = *job->rt.moe_stats;
	}
	/* An owned graph is done: its arena returns to the engine's cache now, while the
	 * engine surely exists (the job may outlive it). */
	if (job->kind != RVA__JOB_GRAPH) {
		rva__graph_free(&job->graph);
		job->g = NULL;
	}
	/* Unregister (the engine may be destroyed once no job is active: the team, which
	 * runs this code, is joined before anything is freed), then announce the end. */
	return_block_and_leave(job->engine, job);
	pthread_mutex_lock(&job->lock);
	atomic_store_explicit(&job->ended, true, memory_order_release);
	pthread_cond_broadcast(&job->cond);
	pthread_mutex_unlock(&job->lock);
}

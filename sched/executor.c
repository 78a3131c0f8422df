/*
 * The executor: the worker team (one flat OpenMP parallel region entered by the
 * engine's dispatcher thread and kept alive for the engine's lifetime), the per-worker
 * cost-ordered ready queues, stealing, dependency release, idle spinning and parking.
 * A job's start and end belong to sched/job.c; the worker that completes a job's last
 * task calls rva__job_end. Nothing here allocates once the team runs, except the detail
 * strings rva__graph_exec_task records for failing tasks.
 */
#include <errno.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "sched/engine_internal.h"

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* ---- scratch buffers ----------------------------------------------------------------- */

static size_t page_size(void) {
	long p = sysconf(_SC_PAGESIZE);
	return p > 0 ? (size_t)p : 4096;
}

rva__scratch *rva__scratch_new(rva_engine *e, size_t size, unsigned numa_os) {
	size_t pg = page_size(), usable = 0, total;
	/* header + padding up to a page boundary + whole pages, so binding the data pages
	 * never changes the policy of a neighbour's memory */
	if (!rva__round_up_ok(size ? size : 1, pg, &usable) ||
	    !rva__add_ok(usable, pg + RVA__ALIGN, &total)) {
		rva__fail(RVA_EOVERFLOW, "engine: scratch of %zu bytes overflows", size);
		return NULL;
	}
	unsigned char *block = rva__malloc(total);
	if (!block) {
		rva__fail(RVA_ENOMEM, "engine: cannot allocate %zu bytes of worker scratch", total);
		return NULL;
	}
	rva__scratch *s = (rva__scratch *)block;
	uintptr_t data = ((uintptr_t)block + sizeof *s + pg - 1) & ~(uintptr_t)(pg - 1);
	s->data = (unsigned char *)data;
	s->size = usable;
	s->on_node = false;
	if (e->thissystem) {
		hwloc_bitmap_t ns = hwloc_bitmap_alloc();
		if (ns && hwloc_bitmap_set(ns, numa_os) == 0)
			s->on_node = hwloc_set_area_membind(e->topo, s->data, s->size, ns,
			                                    HWLOC_MEMBIND_BIND,
			                                    HWLOC_MEMBIND_BYNODESET) == 0;
		if (ns)
			hwloc_bitmap_free(ns);
	}
	return s;
}

void rva__scratch_free(rva__scratch *s) { rva__free(s); }

/* First touch from the worker, then check where the pages went. */
static bool touch_scratch(rva_engine *e, rva__scratch *s, unsigned numa_os) {
	memset(s->data, 0, s->size);
	if (!s->on_node || !e->thissystem)
		return false;
	hwloc_bitmap_t ns = hwloc_bitmap_alloc();
	bool ok = false;
	if (ns && hwloc_get_area_memlocation(e->topo, s->data, s->size, ns,
	                                     HWLOC_MEMBIND_BYNODESET) == 0)
		ok = hwloc_bitmap_weight(ns) == 1 && hwloc_bitmap_isset(ns, numa_os);
	if (ns)
		hwloc_bitmap_free(ns);
	return ok;
}

/* ---- the cost-ordered queues (pairing max-heaps over job-owned nodes) ---------------- */

static inline bool before(const rva__qnode *a, const rva__qnode *b) {
	if (a->cost != b->cost)
		return a->cost > b->cost;
	if (a->job != b->job)
		return a->job->id < b->job->id;
	return a->task < b->task;
}

/* Melds two heap roots (both with next == NULL). */
static inline rva__qnode *meld(rva__qnode *a, rva__qnode *b) {
	if (!a)
		return b;
	if (!b)
		return a;
	if (before(b, a)) {
		rva__qnode *t = a;
		a = b;
		b = t;
	}
	b->next = a->child;
	a->child = b;
	return a;
}

/* Two-pass pairing of a sibling list. */
static rva__qnode *merge_pairs(rva__qnode *first) {
	rva__qnode *stack = NULL;
	while (first) {
		rva__qnode *a = first, *b = a->next;
		if (!b) {
			a->next = stack;
			stack = a;
			break;
		}
		first = b->next;
		a->next = b->next = NULL;
		rva__qnode *m = meld(a, b);
		m->next = stack;
		stack = m;
	}
	rva__qnode *res = NULL;
	while (stack) {
		rva__qnode *nx = stack->next;
		stack->next = NULL;
		res = meld(res, stack);
		stack = nx;
	}
	return res;
}

/* Pushes a list of nodes linked by next; the caller holds q->lock. */
static unsigned push_list_locked(rva__wqueue *q, rva__qnode *list) {
	unsigned n = 0;
	rva__qnode *root = q->root;
	while (list) {
		rva__qnode *nx = list->next;
		list->child = list->next = NULL;
		root = meld(root, list);
		list = nx;
		n++;
	}
	q->root = root;
	unsigned size = atomic_load_explicit(&q->size, memory_order_relaxed) + n;
	atomic_store_explicit(&q->size, size, memory_order_relaxed);
	return size;
}

static rva__qnode *pop(rva__wqueue *q) {
	if (atomic_load_explicit(&q->size, memory_order_relaxed) == 0)
		return NULL;
	pthread_mutex_lock(&q->lock);
	rva__qnode *r = q->root;
	if (r) {
		q->root = merge_pairs(r->child);
		r->child = NULL;
		atomic_store_explicit(&q->size,
		                      atomic_load_explicit(&q->size, memory_order_relaxed) - 1,
		                      memory_order_relaxed);
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

static bool any_work(const rva_engine *e) {
	for (unsigned i = 0; i < e->nworkers; i++)
		if (atomic_load_explicit(&e->queues[i].size, memory_order_relaxed))
			return true;
	return false;
}

/* Wakes up to k parked workers (after pushing k tasks someone else may take). */
static void wake(rva_engine *e, unsigned k) {
	atomic_thread_fence(memory_order_seq_cst);
	unsigned s = atomic_load_explicit(&e->sleepers, memory_order_relaxed);
	if (!s || !k)
		return;
	pthread_mutex_lock(&e->park_lock);
	if (k >= s)
		pthread_cond_broadcast(&e->park_cond);
	else
		for (unsigned i = 0; i < k; i++)
			pthread_cond_signal(&e->park_cond);
	pthread_mutex_unlock(&e->park_lock);
}

/* Pool of a task of a job (RVA__ANY_POOL: anywhere). */
static inline unsigned task_pool(const rva_job *job, const rva__task *t) {
	if (!job->seq_pool || t->seq == RVA__NO_SEQ)
		return RVA__ANY_POOL;
	return job->seq_pool[t->seq];
}

/* The worker of `pool` that receives task t of job released from elsewhere: the
 * sequence's home worker in that pool. */
static inline unsigned home_worker(const rva_engine *e, unsigned pool, const rva__task *t) {
	const rva__sched_pool *p = &e->plan.pools[pool];
	uint32_t key = t->seq != RVA__NO_SEQ ? t->seq : 0;
	return p->first_worker + key % p->nworkers;
}

/* ---- launching jobs (their lifecycle is sched/job.c's) ------------------------------ */

void rva__exec_launch(rva_engine *e, rva_job *job) {
	const rva__graph *g = job->g;
	uint32_t n = g->ntasks;
	unsigned W = e->nworkers;
	rva__qnode **heads = (rva__qnode **)((unsigned char *)job->block +
	                                     rva__block_heads_offset(job->block_tasks));
	memset(heads, 0, W * sizeof *heads);
	/* Deal the initially ready tasks round-robin over the workers of their pool. */
	uint64_t k = job->id;
	unsigned total = 0;
	for (uint32_t t = 0; t < n; t++) {
		const rva__task *task = &g->tasks[t];
		if (task->ndeps)
			continue;
		unsigned pool = task_pool(job, task), v;
		if (pool == RVA__ANY_POOL) {
			v = (unsigned)(k++ % W);
		} else {
			const rva__sched_pool *p = &e->plan.pools[pool];
			v = p->first_worker + (unsigned)(k++ % p->nworkers);
		}
		rva__qnode *node = &job->nodes[t];
		node->next = heads[v];
		heads[v] = node;
		total++;
	}
	/* Counted before any task can start (run_node subtracts each one). */
	atomic_fetch_add_explicit(&e->unstarted, n, memory_order_relaxed);
	/* Push each worker's list under its lock. Once the last list is in, the job may end
	 * (and be freed) at any moment: stop touching it. */
	unsigned last = 0;
	for (unsigned v = 0; v < W; v++)
		if (heads[v])
			last = v;
	for (unsigned v = 0; v <= last; v++) {
		rva__qnode *list = heads[v];
		if (!list)
			continue;
		rva__wqueue *q = &e->queues[v];
		pthread_mutex_lock(&q->lock);
		push_list_locked(q, list);
		pthread_mutex_unlock(&q->lock);
	}
	wake(e, total);
}


/* ---- the worker loop -------------------------------------------------------------------- */

typedef struct wstate {
	rva_engine *e;
	unsigned id, pool;
	rva__worker *w;
	rva__wqueue *q;
	rva_job *cur_job;      /* job whose completions are being counted */
	unsigned cur_done;     /* completions not yet subtracted from cur_job->remaining */
} wstate;

#define FLUSH_EVERY 64

static void flush(wstate *ws) {
	if (ws->cur_done) {
		rva_job *job = ws->cur_job;
		unsigned n = ws->cur_done;
		ws->cur_done = 0;
		ws->cur_job = NULL;
		if (atomic_fetch_sub_explicit(&job->remaining, n, memory_order_acq_rel) == n)
			rva__job_end(job);
	}
	ws->cur_job = NULL;
}

static inline void stat_add(atomic_uint_fast64_t *c, uint64_t v) {
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
	                      memory_order_relaxed);
}

static void cancel_skip(rva_job *job, const rva__task *t) {
	if (!t->fn)
		return;
	/* work was really left undone: the job reports RVA_ECANCELLED (sched/job.c) */
	atomic_store_explicit(&job->cancel_skipped, true, memory_order_release);
	size_t lo = t->seq == RVA__NO_SEQ ? 0 : t->seq;
	size_t hi = t->seq == RVA__NO_SEQ ? job->nseq : (size_t)t->seq + 1;
	for (size_t s = lo; s < hi; s++) {
		int expected = RVA_OK;
		__atomic_compare_exchange_n((int *)&job->seq_status[s], &expected,
		                            (int)RVA_ECANCELLED, false, __ATOMIC_ACQ_REL,
		                            __ATOMIC_ACQUIRE);
	}
}

static void swap_scratch(wstate *ws) {
	rva__scratch *nx = atomic_exchange_explicit(&ws->w->scratch_next, NULL,
	                                            memory_order_acq_rel);
	if (!nx)
		return;
	rva__scratch_free(ws->w->scratch);
	ws->w->scratch = nx;
	bool on = touch_scratch(ws->e, nx, ws->e->plan.workers[ws->id].numa_os);
	atomic_store_explicit(&ws->w->scratch_on_node, on, memory_order_relaxed);
}

static void run_node(wstate *ws, rva__qnode *node) {
	rva_engine *e = ws->e;
	rva_job *job = node->job;
	if (job != ws->cur_job) {
		flush(ws);
		ws->cur_job = job;
	}
	if (RVA__UNLIKELY(atomic_load_explicit(&ws->w->scratch_next, memory_order_acquire)))
		swap_scratch(ws);
	const rva__graph *g = job->g;
	uint32_t id = node->task;
	const rva__task *t = &g->tasks[id];
	atomic_fetch_sub_explicit(&e->unstarted, 1, memory_order_relaxed);
	rva__exec_ctx x = {.scratch = ws->w->scratch->data,
	                   .scratch_bytes = ws->w->scratch->size, .worker = ws->id};
	uint64_t t0 = rva__now_ns();
	if (RVA__UNLIKELY(atomic_load_explicit(&job->cancelled, memory_order_relaxed))) {
		cancel_skip(job, t);
	} else {
		rva_status st = rva__graph_exec_task(g, id, &x, job->seq_status, job->details);
		if (RVA__UNLIKELY(st != RVA_OK) && t->seq == RVA__NO_SEQ) {
			int expected = RVA_OK;
			if (atomic_compare_exchange_strong_explicit(&job->job_status, &expected, (int)st,
			                                            memory_order_acq_rel,
			                                            memory_order_acquire))
				snprintf(job->errbuf, sizeof job->errbuf, "%s",
				         rva_last_error()[0] ? rva_last_error() : rva_strerror(st));
		}
	}
	uint64_t t1 = rva__now_ns();
	stat_add(&ws->w->tasks, 1);
	stat_add(&ws->w->busy_ns, t1 - t0);

	/* Release successors: ours go to our own queue in one batch, others to their pool. */
	rva__qnode *mine = NULL;
	unsigned nmine = 0;
	for (uint32_t i = 0; i < t->succ_count; i++) {
		uint32_t s = g->succ[t->succ_begin + i];
		if (atomic_fetch_sub_explicit(&job->deps[s], 1, memory_order_acq_rel) != 1)
			continue;
		rva__qnode *n = &job->nodes[s];
		const rva__task *st = &g->tasks[s];
		unsigned pool = task_pool(job, st);
		if (pool == RVA__ANY_POOL || pool == ws->pool) {
			n->next = mine;
			mine = n;
			nmine++;
		} else {
			rva__wqueue *q = &e->queues[home_worker(e, pool, st)];
			n->next = NULL;
			pthread_mutex_lock(&q->lock);
			push_list_locked(q, n);
			pthread_mutex_unlock(&q->lock);
			wake(e, 1);
		}
	}
	if (mine) {
		pthread_mutex_lock(&ws->q->lock);
		unsigned size = push_list_locked(ws->q, mine);
		pthread_mutex_unlock(&ws->q->lock);
		/* We take one of them next; the surplus is for whoever is parked. */
		if (size > 1)
			wake(e, size - 1 < nmine ? size - 1 : nmine);
	}
	if (++ws->cur_done >= FLUSH_EVERY)
		flush(ws);
}

/* Own queue, then the other workers of our pool, then the other pools. */
static rva__qnode *find_task(wstate *ws) {
	rva__qnode *n = pop(ws->q);
	if (n)
		return n;
	rva_engine *e = ws->e;
	const rva__sched_pool *p = &e->plan.pools[ws->pool];
	unsigned local = ws->id - p->first_worker;
	for (unsigned k = 1; k < p->nworkers; k++) {
		unsigned v = p->first_worker + (local + k) % p->nworkers;
		if ((n = pop(&e->queues[v]))) {
			stat_add(&ws->w->steals_local, 1);
			return n;
		}
	}
	for (unsigned i = 0; i + 1 < e->plan.npools; i++) {
		const rva__sched_pool *r = &e->plan.pools[p->steal[i]];
		for (unsigned k = 0; k < r->nworkers; k++) {
			unsigned v = r->first_worker + (local + k) % r->nworkers;
			if ((n = pop(&e->queues[v]))) {
				stat_add(&ws->w->steals_remote, 1);
				return n;
			}
		}
	}
	return NULL;
}

/* Whether an idle worker has nothing to spin for: every task of the jobs in flight has
 * started and some worker still runs one (no successor can be released, and the next
 * job comes after the caller sees this one end). */
static inline bool futile(rva_engine *e) {
	return atomic_load_explicit(&e->unstarted, memory_order_relaxed) == 0 &&
	       atomic_load_explicit(&e->running, memory_order_relaxed) != 0;
}

static void worker_loop(rva_engine *e, unsigned id) {
	wstate ws = {.e = e, .id = id, .pool = e->plan.workers[id].pool, .w = &e->workers[id],
	             .q = &e->queues[id]};
	uint64_t spin_ns = (uint64_t)e->spin_us * 1000u;
	for (;;) {
		rva__qnode *n = find_task(&ws);
		if (n) {
			atomic_fetch_add_explicit(&e->running, 1, memory_order_relaxed);
			run_node(&ws, n);
			atomic_fetch_sub_explicit(&e->running, 1, memory_order_relaxed);
			continue;
		}
		flush(&ws);
		if (atomic_load_explicit(&e->shutdown, memory_order_acquire))
			break;
		/* Spin a while (cheap wake-up for short gaps between tasks) while tasks of the
		 * jobs in flight are still to start, or when no worker runs anything (the next
		 * job is picked up at once). A worker with nothing to wait for but the end of
		 * tasks others run parks at once and leaves its core to the program: a job of
		 * one task (a 1 x 512-key decode) ran 2-4 us slower on two workers than on one
		 * while the idle one spun through it beside the caller's thread. */
		bool found = false;
		if (spin_ns && !futile(e)) {
			uint64_t deadline = rva__now_ns() + spin_ns;
			for (;;) {
				for (int i = 0; i < 32; i++)
					cpu_relax();
				if (any_work(e) || atomic_load_explicit(&e->shutdown, memory_order_relaxed)) {
					found = true;
					break;
				}
				if (rva__now_ns() >= deadline || futile(e))
					break;
			}
		}
		if (found)
			continue;
		/* ... then park until a push or shutdown (Dekker with wake(): sleepers first). */
		pthread_mutex_lock(&e->park_lock);
		atomic_fetch_add_explicit(&e->sleepers, 1, memory_order_seq_cst);
		atomic_thread_fence(memory_order_seq_cst);
		while (!any_work(e) && !atomic_load_explicit(&e->shutdown, memory_order_acquire))
			pthread_cond_wait(&e->park_cond, &e->park_lock);
		atomic_fetch_sub_explicit(&e->sleepers, 1, memory_order_seq_cst);
		pthread_mutex_unlock(&e->park_lock);
	}
}

/* ---- the team ------------------------------------------------------------------------------ */

/* Binding cache: a thread that already bound itself for this engine and worker skips it. */
static _Thread_local uint64_t tl_bound_generation;
static _Thread_local unsigned tl_bound_worker;

static void bind_self(rva_engine *e, unsigned id) {
	rva__worker *w = &e->workers[id];
	if (tl_bound_generation == e->generation && tl_bound_worker == id)
		return;
	w->bound = false;
	w->observed_pu = -1;
	if (e->thissystem) {
		w->bound = hwloc_set_cpubind(e->topo, w->cpuset,
		                             HWLOC_CPUBIND_THREAD | HWLOC_CPUBIND_STRICT) == 0;
		hwloc_bitmap_t got = hwloc_bitmap_alloc();
		if (got && hwloc_get_last_cpu_location(e->topo, got, HWLOC_CPUBIND_THREAD) == 0)
			w->observed_pu = hwloc_bitmap_first(got);
		if (got)
			hwloc_bitmap_free(got);
	}
	tl_bound_generation = e->generation;
	tl_bound_worker = id;
}

/* Blocks every asynchronous signal in the calling thread (old, when non-NULL, gets the
 * previous mask). Every thread the engine creates runs with them blocked for its whole
 * life, so the signals a program handles (SIGINT, SIGTERM, SIGHUP, SIGCHLD, ...) are
 * delivered to the program's own threads, never to a worker: a handler runs where the
 * program expects it, and a program that blocks a signal in its thread really holds it
 * off. Faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) stay deliverable. */
static void block_async_signals(sigset_t *old) {
	sigset_t s;
	sigfillset(&s);
	static const int sync_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
	for (size_t i = 0; i < sizeof sync_signals / sizeof sync_signals[0]; i++)
		sigdelset(&s, sync_signals[i]);
	pthread_sigmask(SIG_BLOCK, &s, old);
}

static void member(rva_engine *e, unsigned tid, unsigned nthreads) {
	/* OpenMP threads inherit the dispatcher's mask when libgomp creates them; block
	 * again in case the runtime made them elsewhere (a reused pool). */
	block_async_signals(NULL);
	if (nthreads < e->nworkers) {
		if (tid == 0) {
			pthread_mutex_lock(&e->park_lock);
			atomic_store(&e->team_error, (int)nthreads);
			pthread_cond_broadcast(&e->start_cond);
			pthread_mutex_unlock(&e->park_lock);
		}
		return;
	}
	if (tid >= e->nworkers)
		return;
	rva__worker *w = &e->workers[tid];
	bind_self(e, tid);
	bool on = touch_scratch(e, w->scratch, e->plan.workers[tid].numa_os);
	atomic_store_explicit(&w->scratch_on_node, on, memory_order_relaxed);
	rva__gemm_ctx_use(e->gemm);
	pthread_mutex_lock(&e->park_lock);
	atomic_fetch_add(&e->ready_workers, 1);
	pthread_cond_broadcast(&e->start_cond);
	pthread_mutex_unlock(&e->park_lock);
	worker_loop(e, tid);
	rva__gemm_ctx_use(NULL);
}

static void *dispatcher_main(void *arg) {
	rva_engine *e = arg;
	block_async_signals(NULL); /* already inherited blocked from rva__team_start */
	int n = (int)e->nworkers;
	omp_set_dynamic(0);
	/* The one flat team of the engine: every member runs the executor loop until the
	 * engine shuts down. Never a nested region per task. */
#pragma omp parallel num_threads(n)
	member(e, (unsigned)omp_get_thread_num(), (unsigned)omp_get_num_threads());
	return NULL;
}

rva_status rva__team_start(rva_engine *e) {
	/* The dispatcher starts with every asynchronous signal blocked (no window in which
	 * a signal could reach it), and the workers it creates inherit that mask. */
	sigset_t old;
	block_async_signals(&old);
	int rc = pthread_create(&e->dispatcher, NULL, dispatcher_main, e);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return rva__fail(RVA_ESYSTEM, "engine: cannot start the dispatcher thread: %s",
		                 strerror(rc));
	e->dispatcher_started = true;
	pthread_mutex_lock(&e->park_lock);
	while (atomic_load(&e->ready_workers) < e->nworkers && !atomic_load(&e->team_error))
		pthread_cond_wait(&e->start_cond, &e->park_lock);
	pthread_mutex_unlock(&e->park_lock);
	int got = atomic_load(&e->team_error);
	if (got) {
		rva__team_stop(e);
		return rva__fail(RVA_ESYSTEM, "engine: OpenMP gave a team of %d threads, %u needed "
		                 "(check OMP_THREAD_LIMIT)", got, e->nworkers);
	}
	return RVA_OK;
}

void rva__team_stop(rva_engine *e) {
	if (!e->dispatcher_started)
		return;
	pthread_mutex_lock(&e->park_lock);
	atomic_store(&e->shutdown, true);
	pthread_cond_broadcast(&e->park_cond);
	pthread_mutex_unlock(&e->park_lock);
	pthread_join(e->dispatcher, NULL);
	e->dispatcher_started = false;
}

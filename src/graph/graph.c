/* Job graph construction, the job arena, and the serial executor. */
#include <pthread.h>
#include <string.h>

#include "core/internal.h"
#include "graph/graph.h"
#include "rvattn/status.h"

struct rva__arena_block {
	rva__arena_block *next;
	size_t size, used;
	unsigned char *data;
};

/* Below glibc's mmap threshold, so small jobs reuse heap pages instead of faulting. */
#define ARENA_MIN_BLOCK ((size_t)64 << 10)

struct rva__arena_cache {
	pthread_mutex_t lock;
	rva__arena_block *free;   /* blocks not in use, most recently returned first */
	size_t bytes, max_bytes;
	void (*bind)(void *ptr, size_t bytes, void *user);
	void *bind_user;
};

void rva__arena_cache_set_binder(rva__arena_cache *c,
                                 void (*bind)(void *ptr, size_t bytes, void *user),
                                 void *user) {
	pthread_mutex_lock(&c->lock);
	c->bind = bind;
	c->bind_user = user;
	pthread_mutex_unlock(&c->lock);
}

rva_status rva__arena_cache_create(size_t max_bytes, rva__arena_cache **out) {
	rva__arena_cache *c = rva__calloc(1, sizeof *c);
	if (!c)
		return rva__fail(RVA_ENOMEM, "cannot allocate the job memory cache");
	pthread_mutex_init(&c->lock, NULL);
	c->max_bytes = max_bytes;
	*out = c;
	return RVA_OK;
}

static void free_blocks(rva__arena_block *b) {
	for (rva__arena_block *n; b; b = n) {
		n = b->next;
		rva__free(b->data);
		rva__free(b);
	}
}

void rva__arena_cache_destroy(rva__arena_cache *c) {
	if (!c)
		return;
	free_blocks(c->free);
	pthread_mutex_destroy(&c->lock);
	rva__free(c);
}

/* A cached block of at least need bytes (best fit), or NULL. */
static rva__arena_block *cache_take(rva__arena_cache *c, size_t need) {
	pthread_mutex_lock(&c->lock);
	rva__arena_block **best = NULL;
	for (rva__arena_block **p = &c->free; *p; p = &(*p)->next)
		if ((*p)->size >= need && (!best || (*p)->size < (*best)->size))
			best = p;
	rva__arena_block *b = NULL;
	if (best) {
		b = *best;
		*best = b->next;
		c->bytes -= b->size;
	}
	pthread_mutex_unlock(&c->lock);
	return b;
}

static void cache_return(rva__arena_cache *c, rva__arena_block *list) {
	rva__arena_block *drop = NULL;
	pthread_mutex_lock(&c->lock);
	for (rva__arena_block *b = list, *n; b; b = n) {
		n = b->next;
		if (c->bytes + b->size <= c->max_bytes) {
			b->next = c->free;
			c->free = b;
			c->bytes += b->size;
		} else {
			b->next = drop;
			drop = b;
		}
	}
	pthread_mutex_unlock(&c->lock);
	free_blocks(drop);
}

void rva__graph_init(rva__graph *g, size_t nseq) {
	memset(g, 0, sizeof *g);
	g->nseq = nseq;
}

void rva__graph_init_cached(rva__graph *g, size_t nseq, rva__arena_cache *cache) {
	rva__graph_init(g, nseq);
	g->cache = cache;
}

void rva__graph_free(rva__graph *g) {
	if (!g)
		return;
	rva__free(g->tasks);
	rva__free(g->succ);
	rva__free(g->edge_from);
	rva__free(g->edge_to);
	if (g->cache)
		cache_return(g->cache, g->arena);
	else
		free_blocks(g->arena);
	memset(g, 0, sizeof *g);
}

static rva_status grow(void **p, size_t *cap, size_t need, size_t elem) {
	if (need <= *cap)
		return RVA_OK;
	size_t ncap = *cap ? *cap : 64;
	while (ncap < need)
		ncap *= 2;
	void *np;
	rva_status st = rva__alloc_array(&np, ncap, elem, "job graph");
	if (st != RVA_OK)
		return st;
	if (*p)
		memcpy(np, *p, *cap * elem);
	rva__free(*p);
	*p = np;
	*cap = ncap;
	return RVA_OK;
}

rva_status rva__graph_add(rva__graph *g, rva__task_fn fn, const void *ctx, uint32_t seq,
                          uint32_t a, uint32_t b, uint32_t c, uint32_t d, float cost,
                          uint32_t *id) {
	if (g->ntasks >= UINT32_MAX - 1)
		return rva__fail(RVA_EOVERFLOW, "job graph exceeds 2^32-2 tasks");
	size_t cap = g->cap_tasks;
	rva_status st = grow((void **)&g->tasks, &cap, (size_t)g->ntasks + 1, sizeof *g->tasks);
	if (st != RVA_OK)
		return st;
	g->cap_tasks = (uint32_t)rva__min(cap, UINT32_MAX);
	rva__task *t = &g->tasks[g->ntasks];
	*t = (rva__task){.fn = fn, .ctx = ctx, .seq = seq, .a = a, .b = b, .c = c, .d = d,
	                 .cost = cost};
	*id = g->ntasks++;
	g->finalized = false;
	return RVA_OK;
}

rva_status rva__graph_add_join(rva__graph *g, uint32_t seq, uint32_t *id) {
	return rva__graph_add(g, NULL, NULL, seq, 0, 0, 0, 0, 0.0f, id);
}

rva_status rva__graph_edge(rva__graph *g, uint32_t from, uint32_t to) {
	if (from == RVA__NO_TASK)
		return RVA_OK;
	if (from >= g->ntasks || to >= g->ntasks)
		return rva__fail(RVA_EINTERNAL, "graph edge %u -> %u out of range (%u tasks)", from,
		                 to, g->ntasks);
	if (g->nedges >= UINT32_MAX) /* successor offsets are 32-bit */
		return rva__fail(RVA_EOVERFLOW, "job graph exceeds 2^32-1 edges");
	size_t cap = g->cap_edges;
	rva_status st = grow((void **)&g->edge_from, &cap, g->nedges + 1, sizeof(uint32_t));
	if (st != RVA_OK)
		return st;
	cap = g->cap_edges;
	st = grow((void **)&g->edge_to, &cap, g->nedges + 1, sizeof(uint32_t));
	if (st != RVA_OK)
		return st;
	g->cap_edges = cap;
	g->edge_from[g->nedges] = from;
	g->edge_to[g->nedges] = to;
	g->nedges++;
	g->finalized = false;
	return RVA_OK;
}

void rva__graph_need_scratch(rva__graph *g, size_t bytes) {
	if (bytes > g->scratch_bytes)
		g->scratch_bytes = bytes;
}

/* Arena blocks are whole pages, page-aligned (2 MiB-aligned huge pages from 2 MiB on, by
 * the default allocator), so binding a block (interleave) or first-touching an untouched
 * allocation never reaches another block's memory. */
#define ARENA_PAGE ((size_t)4096)

/* `need` bytes (a multiple of align) at an align-aligned offset of the graph's current
 * block, or of a new (or cached) one. */
static void *arena_take(rva__graph *g, size_t need, size_t align) {
	rva__arena_block *b = g->arena;
	size_t off = b ? (b->used + align - 1) & ~(align - 1) : 0;
	if (!b || off > b->size || b->size - off < need) {
		b = g->cache ? cache_take(g->cache, need) : NULL;
		if (!b) {
			size_t size;
			if (!rva__round_up_ok(rva__max(need, ARENA_MIN_BLOCK), ARENA_PAGE, &size)) {
				rva__fail(RVA_EOVERFLOW, "job memory request of %zu bytes overflows", need);
				return NULL;
			}
			b = rva__malloc(sizeof *b);
			unsigned char *data = b ? rva__malloc_aligned(size, ARENA_PAGE) : NULL;
			if (!data) {
				rva__free(b);
				rva__fail(RVA_ENOMEM, "cannot allocate %zu bytes of job memory", size);
				return NULL;
			}
			*b = (rva__arena_block){.size = size, .data = data};
			if (g->cache && g->cache->bind)
				g->cache->bind(data, size, g->cache->bind_user);
		}
		b->used = 0;
		b->next = g->arena;
		g->arena = b;
		off = 0;
	}
	b->used = off + need;
	return b->data + off;
}

void *rva__graph_alloc(rva__graph *g, size_t bytes) {
	size_t need;
	if (!rva__round_up_ok(bytes ? bytes : 1, RVA__ALIGN, &need)) {
		rva__fail(RVA_EOVERFLOW, "job memory request of %zu bytes overflows", bytes);
		return NULL;
	}
	void *p = arena_take(g, need, RVA__ALIGN);
	if (p)
		memset(p, 0, bytes);
	return p;
}

void *rva__graph_alloc_array(rva__graph *g, size_t n, size_t size) {
	size_t bytes;
	if (!rva__mul_ok(n, size, &bytes)) {
		rva__fail(RVA_EOVERFLOW, "job memory of %zu x %zu bytes overflows", n, size);
		return NULL;
	}
	return rva__graph_alloc(g, bytes);
}

void *rva__graph_alloc_untouched(rva__graph *g, size_t n, size_t size) {
	size_t bytes, need;
	if (!rva__mul_ok(n, size, &bytes) || !rva__round_up_ok(bytes ? bytes : 1, ARENA_PAGE, &need)) {
		rva__fail(RVA_EOVERFLOW, "job memory of %zu x %zu bytes overflows", n, size);
		return NULL;
	}
	/* whole pages of its own (huge-page aligned when it spans huge pages), never written
	 * here: the tasks that write it touch its pages first, on their own node */
	return arena_take(g, need, need >= RVA__HUGE_PAGE ? RVA__HUGE_PAGE : ARENA_PAGE);
}

rva_status rva__graph_finalize(rva__graph *g) {
	rva__free(g->succ);
	g->succ = NULL;
	uint32_t n = g->ntasks;
	for (uint32_t t = 0; t < n; t++) {
		g->tasks[t].ndeps = 0;
		g->tasks[t].succ_count = 0;
	}
	for (size_t e = 0; e < g->nedges; e++) {
		g->tasks[g->edge_from[e]].succ_count++;
		g->tasks[g->edge_to[e]].ndeps++;
	}
	void *succ;
	rva_status st = rva__alloc_array(&succ, g->nedges ? g->nedges : 1, sizeof(uint32_t),
	                                 "job graph edges");
	if (st != RVA_OK)
		return st;
	g->succ = succ;
	uint32_t off = 0;
	for (uint32_t t = 0; t < n; t++) {
		g->tasks[t].succ_begin = off;
		off += g->tasks[t].succ_count;
		g->tasks[t].succ_count = 0;
	}
	for (size_t e = 0; e < g->nedges; e++) {
		rva__task *f = &g->tasks[g->edge_from[e]];
		g->succ[f->succ_begin + f->succ_count++] = g->edge_to[e];
	}
	/* Acyclicity check by Kahn's algorithm over a scratch copy of the counts. */
	uint32_t *cnt, *queue;
	st = rva__alloc_array((void **)&cnt, n ? n : 1, 2 * sizeof(uint32_t), "graph check");
	if (st != RVA_OK)
		return st;
	queue = cnt + n;
	uint32_t head = 0, tail = 0;
	for (uint32_t t = 0; t < n; t++) {
		cnt[t] = g->tasks[t].ndeps;
		if (cnt[t] == 0)
			queue[tail++] = t;
	}
	while (head < tail) {
		const rva__task *t = &g->tasks[queue[head++]];
		for (uint32_t i = 0; i < t->succ_count; i++) {
			uint32_t s = g->succ[t->succ_begin + i];
			if (--cnt[s] == 0)
				queue[tail++] = s;
		}
	}
	rva__free(cnt);
	if (tail != n)
		return rva__fail(RVA_EINTERNAL, "job graph has a cycle (%u of %u tasks reachable)",
		                 tail, n);
	g->finalized = true;
	return RVA_OK;
}

static void record_failure(rva_status *slot, char **detail, rva_status st) {
	int expected = RVA_OK;
	if (__atomic_compare_exchange_n((int *)slot, &expected, (int)st, false, __ATOMIC_ACQ_REL,
	                                __ATOMIC_ACQUIRE) &&
	    detail)
		*detail = rva__strdup(rva_last_error()[0] ? rva_last_error() : rva_strerror(st));
}

rva_status rva__graph_exec_task(const rva__graph *g, uint32_t id, rva__exec_ctx *x,
                                rva_status *seq_status, char **details) {
	const rva__task *t = &g->tasks[id];
	if (!t->fn)
		return RVA_OK;
	if (t->seq != RVA__NO_SEQ &&
	    __atomic_load_n((int *)&seq_status[t->seq], __ATOMIC_ACQUIRE) != RVA_OK)
		return RVA_OK; /* its sequence already failed: skip */
	rva_clear_error();
	rva_status st = t->fn(t, x);
	if (st == RVA_OK)
		return RVA_OK;
	if (t->seq != RVA__NO_SEQ) {
		record_failure(&seq_status[t->seq], details ? &details[t->seq] : NULL, st);
	} else {
		for (size_t s = 0; s < g->nseq; s++)
			record_failure(&seq_status[s], details ? &details[s] : NULL, st);
	}
	return st;
}

rva_status rva__graph_finish(rva__graph *g, const rva_status *seq_status) {
	if (!g->finish)
		return RVA_OK;
	return g->finish(g->finish_ctx, seq_status, g->nseq);
}

/* A failure before any task ran: every sequence not failed yet fails with st. */
static rva_status fail_unstarted(const rva__graph *g, rva_status *seq_status, char **details,
                                 rva_status st) {
	for (size_t s = 0; s < g->nseq; s++)
		record_failure(&seq_status[s], details ? &details[s] : NULL, st);
	return st;
}

rva_status rva__graph_run_serial(rva__graph *g, rva_status *seq_status, char **details) {
	rva_status st = RVA_OK;
	if (!g->finalized && (st = rva__graph_finalize(g)) != RVA_OK)
		return fail_unstarted(g, seq_status, details, st);
	uint32_t n = g->ntasks;
	uint32_t *cnt, *queue;
	st = rva__alloc_array((void **)&cnt, n ? n : 1, 2 * sizeof(uint32_t), "serial executor");
	if (st != RVA_OK)
		return fail_unstarted(g, seq_status, details, st);
	queue = cnt + n;
	void *scratch = rva__malloc(g->scratch_bytes ? g->scratch_bytes : 64);
	if (!scratch) {
		rva__free(cnt);
		return fail_unstarted(g, seq_status, details,
		                      rva__fail(RVA_ENOMEM, "cannot allocate %zu bytes of scratch",
		                                g->scratch_bytes));
	}
	rva__exec_ctx x = {.scratch = scratch, .scratch_bytes = g->scratch_bytes, .worker = 0};
	/* FIFO topological order: tasks run in the order they became ready. */
	uint32_t head = 0, tail = 0;
	for (uint32_t t = 0; t < n; t++) {
		cnt[t] = g->tasks[t].ndeps;
		if (cnt[t] == 0)
			queue[tail++] = t;
	}
	rva_status job = RVA_OK;
	while (head < tail) {
		uint32_t id = queue[head++];
		rva_status r = rva__graph_exec_task(g, id, &x, seq_status, details);
		if (r != RVA_OK && g->tasks[id].seq == RVA__NO_SEQ && job == RVA_OK)
			job = r;
		const rva__task *t = &g->tasks[id];
		for (uint32_t i = 0; i < t->succ_count; i++) {
			uint32_t s = g->succ[t->succ_begin + i];
			if (--cnt[s] == 0)
				queue[tail++] = s;
		}
	}
	rva__free(scratch);
	rva__free(cnt);
	rva_status fin = rva__graph_finish(g, seq_status);
	return job != RVA_OK ? job : fin;
}

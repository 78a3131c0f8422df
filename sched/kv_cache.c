/*
 * The paged K/V cache (include/rvattn/kv_cache.h): pages allocated and committed at
 * creation, one block per pool of the engine bound to the pool's NUMA node; per page a
 * count of the sequences that hold it (copy on write when a sequence appends to a shared,
 * partly filled last page) and a count of the running jobs that read it (pins: a page goes
 * back to its pool's free stack only when both are zero). One mutex guards the tables, the
 * counts and the free stacks; rows are copied outside it into pages the appending
 * sequence owns alone. Attention over the cache is in sched/kv_cache_attention.c.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "kernels/half.h"
#include "sched/engine_internal.h"
#include "sched/kv_cache_internal.h"

#define DEFAULT_PAGE_TOKENS 16
#define DEFAULT_PAGES 1024
#define DEFAULT_MAX_SEQS 256
#define MAX_PAGE_TOKENS 65536

static rva_status check_config(const rva_kv_cache_config *c) {
	for (size_t i = 0; i < sizeof c->reserved / sizeof c->reserved[0]; i++)
		if (c->reserved[i])
			return rva__fail(RVA_EINVAL, "kv cache: config reserved[%zu] is not zero", i);
	if (!c->kv_heads || !c->head_dim)
		return rva__fail(RVA_EINVAL, "kv cache: %s is 0 (required)",
		                 !c->kv_heads ? "kv_heads" : "head_dim");
	if (!rva__dtype_size(c->dtype))
		return rva__fail(RVA_EINVAL, "kv cache: element type %d is not an rva_dtype",
		                 (int)c->dtype);
	if (c->page_tokens > MAX_PAGE_TOKENS)
		return rva__fail(RVA_ERANGE, "kv cache: page_tokens %zu is above %d", c->page_tokens,
		                 MAX_PAGE_TOKENS);
	if (c->page_tokens % 2)
		return rva__fail(RVA_EINVAL, "kv cache: page_tokens %zu is odd (pages hold whole "
		                 "pairs of key rows)", c->page_tokens);
	if (c->max_seqs > ((size_t)1 << 31))
		return rva__fail(RVA_ERANGE, "kv cache: max_seqs %zu is above 2^31", c->max_seqs);
	if (c->pages > UINT32_MAX - 1)
		return rva__fail(RVA_ERANGE, "kv cache: %zu pages are above 2^32 - 2", c->pages);
	return RVA_OK;
}

void rva__kv_cache_free_all(rva_kv_cache *c) {
	if (!c)
		return;
	if (c->pools)
		for (size_t p = 0; p < c->npools; p++) {
			rva__free(c->pools[p].block);
			rva__free(c->pools[p].free_stack);
		}
	rva__free(c->pools);
	rva__free(c->page_base);
	rva__free(c->page_pool);
	rva__free(c->refs);
	rva__free(c->pins);
	rva__free(c->seqs);
	rva__free(c->tables);
	rva__free(c->free_slots);
	if (c->lock_ok)
		pthread_mutex_destroy(&c->lock);
	rva__free(c);
}

/* Allocates, binds and commits pool p's pages; fills page_base for them. */
static rva_status pool_init(rva_kv_cache *c, rva_engine *e, size_t p, unsigned numa_os,
                            size_t first, size_t n) {
	rva__kv_pool *pl = &c->pools[p];
	size_t bytes;
	if (!rva__mul_ok(n, c->page_bytes, &bytes))
		return rva__fail(RVA_EOVERFLOW, "kv cache: %zu pages of %zu bytes overflow", n,
		                 c->page_bytes);
	rva_status st = rva__alloc_array((void **)&pl->free_stack, n, sizeof(uint32_t),
	                                 "kv cache free list");
	if (st != RVA_OK)
		return st;
	if (!(pl->block = rva__malloc(bytes)))
		return rva__fail(RVA_ENOMEM, "kv cache: cannot allocate %zu bytes of pages (%zu pages "
		                 "of %zu bytes) for pool %zu", bytes, n, c->page_bytes, p);
	pl->numa_os = numa_os;
	pl->npages = n;
	pl->first = first;
	if (e->thissystem && e->plan.npools > 1) {
		hwloc_bitmap_t ns = hwloc_bitmap_alloc();
		if (ns && hwloc_bitmap_set(ns, numa_os) == 0)
			pl->on_node = hwloc_set_area_membind(e->topo, pl->block, bytes, ns,
			                                     HWLOC_MEMBIND_BIND,
			                                     HWLOC_MEMBIND_BYNODESET) == 0;
		if (ns)
			hwloc_bitmap_free(ns);
	}
	memset(pl->block, 0, bytes); /* commit every page now: nothing faults while serving */
	pl->v_offset = n * c->k_stride;
	for (size_t i = 0; i < n; i++) {
		c->page_base[first + i] = (unsigned char *)pl->block + i * c->k_stride;
		c->page_pool[first + i] = (uint32_t)p;
		pl->free_stack[i] = (uint32_t)(first + n - 1 - i); /* pops in page order */
	}
	pl->nfree = n;
	return RVA_OK;
}

rva_status rva_kv_cache_create(rva_engine *e, const rva_kv_cache_config *cfg,
                               rva_kv_cache **out) {
	if (!e || !cfg || !out)
		return rva__fail(RVA_ENULL, "rva_kv_cache_create: %s is NULL",
		                 !e ? "engine" : !cfg ? "config" : "out");
	rva_status st = check_config(cfg);
	if (st != RVA_OK)
		return st;
	rva_kv_cache *c = rva__calloc(1, sizeof *c);
	if (!c)
		return rva__fail(RVA_ENOMEM, "kv cache: cannot allocate the cache");
	c->engine = e;
	c->cfg = *cfg;
	if (!c->cfg.page_tokens)
		c->cfg.page_tokens = DEFAULT_PAGE_TOKENS;
	if (!c->cfg.pages)
		c->cfg.pages = DEFAULT_PAGES;
	if (!c->cfg.max_seqs)
		c->cfg.max_seqs = DEFAULT_MAX_SEQS;
	c->es = rva__dtype_size(c->cfg.dtype);
	size_t P = c->cfg.page_tokens;
	if (!rva__mul_ok(c->cfg.kv_heads, c->cfg.head_dim, &c->row_elems) ||
	    !rva__mul_ok(c->row_elems, c->es, &c->row_bytes) ||
	    !rva__mul_ok(c->row_bytes, P, &c->half_bytes) ||
	    !rva__round_up_ok(c->half_bytes, RVA__ALIGN, &c->k_stride) ||
	    !rva__mul_ok(c->k_stride, 2, &c->page_bytes)) {
		rva__free(c);
		return rva__fail(RVA_EOVERFLOW, "kv cache: a page of %zu rows of %zu x %zu elements "
		                 "overflows", P, cfg->kv_heads, cfg->head_dim);
	}
	if (pthread_mutex_init(&c->lock, NULL)) {
		rva__free(c);
		return rva__fail(RVA_ESYSTEM, "kv cache: cannot initialise its lock");
	}
	c->lock_ok = true;
	const rva__sched_plan *plan = &e->plan;
	size_t npages = c->cfg.pages, pools = rva__min(plan->npools ? plan->npools : 1, npages);
	size_t ms = c->cfg.max_seqs, per_pool_max = rva__div_up(npages, pools), tbl;
	c->npools = pools;
	c->npages = npages;
	if (!rva__mul_ok(ms, per_pool_max, &tbl)) {
		rva__kv_cache_free_all(c);
		return rva__fail(RVA_EOVERFLOW, "kv cache: block tables of %zu sequences x %zu pages "
		                 "overflow", ms, per_pool_max);
	}
	c->table_cap = per_pool_max;
	if ((st = rva__alloc_array((void **)&c->pools, pools, sizeof *c->pools, "kv cache pools")) !=
	        RVA_OK ||
	    (st = rva__alloc_array((void **)&c->page_base, npages, sizeof *c->page_base,
	                           "kv cache page table")) != RVA_OK ||
	    (st = rva__alloc_array((void **)&c->page_pool, npages, sizeof *c->page_pool,
	                           "kv cache page pools")) != RVA_OK ||
	    (st = rva__alloc_array((void **)&c->refs, npages, sizeof *c->refs,
	                           "kv cache page references")) != RVA_OK ||
	    (st = rva__alloc_array((void **)&c->pins, npages, sizeof *c->pins,
	                           "kv cache page pins")) != RVA_OK ||
	    (st = rva__alloc_array((void **)&c->seqs, ms, sizeof *c->seqs, "kv cache sequences")) !=
	        RVA_OK ||
	    (st = rva__alloc_array((void **)&c->tables, tbl, sizeof *c->tables,
	                           "kv cache block tables")) != RVA_OK ||
	    (st = rva__alloc_array((void **)&c->free_slots, ms, sizeof *c->free_slots,
	                           "kv cache sequence slots")) != RVA_OK) {
		if (c->pools)
			memset(c->pools, 0, pools * sizeof *c->pools);
		rva__kv_cache_free_all(c);
		return st;
	}
	memset(c->pools, 0, pools * sizeof *c->pools);
	memset(c->refs, 0, npages * sizeof *c->refs);
	memset(c->pins, 0, npages * sizeof *c->pins);
	for (size_t s = 0; s < ms; s++) {
		c->seqs[s] = (rva__kv_seq){.gen = 0, .live = false};
		c->free_slots[s] = (uint32_t)(ms - 1 - s);
	}
	c->nfree_slots = ms;
	size_t first = 0;
	for (size_t p = 0; p < pools; p++) {
		size_t n = npages / pools + (p < npages % pools);
		unsigned node = plan->npools ? plan->pools[p].numa_os : 0;
		if ((st = pool_init(c, e, p, node, first, n)) != RVA_OK) {
			rva__kv_cache_free_all(c);
			return st;
		}
		first += n;
	}
	*out = c;
	return RVA_OK;
}

rva_status rva_kv_cache_destroy(rva_kv_cache *c) {
	if (!c)
		return RVA_OK;
	pthread_mutex_lock(&c->lock);
	size_t jobs = c->jobs;
	pthread_mutex_unlock(&c->lock);
	if (jobs)
		return rva__fail(RVA_ESTATE, "rva_kv_cache_destroy: %zu jobs reading the cache have "
		                 "not ended (destroy them first)", jobs);
	rva__kv_cache_free_all(c);
	return RVA_OK;
}

/* The live sequence of id, or NULL (with the detail) — under the lock. */
rva__kv_seq *rva__kv_lookup(rva_kv_cache *c, uint64_t id, const char *who) {
	uint64_t slot = id & 0xffffffffu, gen = id >> 32;
	if (slot >= c->cfg.max_seqs || !c->seqs[slot].live || c->seqs[slot].gen != gen) {
		rva__fail(RVA_ENOTFOUND, "%s: no live sequence with id %llu in the kv cache", who,
		          (unsigned long long)id);
		return NULL;
	}
	return &c->seqs[slot];
}

uint32_t *rva__kv_table(rva_kv_cache *c, const rva__kv_seq *s) {
	return c->tables + (size_t)(s - c->seqs) * c->table_cap;
}

/* A fresh sequence slot in pool `pool` (under the lock); NULL when max_seqs are live. */
static rva__kv_seq *slot_new(rva_kv_cache *c, uint32_t pool, uint64_t *id, const char *who) {
	if (!c->nfree_slots) {
		rva__fail(RVA_ENOMEM, "%s: the kv cache holds its max_seqs = %zu live sequences", who,
		          c->cfg.max_seqs);
		return NULL;
	}
	uint32_t slot = c->free_slots[--c->nfree_slots];
	rva__kv_seq *s = &c->seqs[slot];
	s->gen++;
	s->live = true;
	s->len = 0;
	s->npages = 0;
	s->pool = pool;
	c->nseqs++;
	*id = (uint64_t)s->gen << 32 | slot;
	return s;
}

rva_status rva_kv_cache_seq_new(rva_kv_cache *c, uint64_t *seq) {
	if (!c || !seq)
		return rva__fail(RVA_ENULL, "rva_kv_cache_seq_new: %s is NULL", !c ? "cache" : "seq");
	pthread_mutex_lock(&c->lock);
	uint32_t best = 0;
	for (uint32_t p = 1; p < c->npools; p++)
		if (c->pools[p].nfree > c->pools[best].nfree)
			best = p;
	uint64_t id;
	rva__kv_seq *s = slot_new(c, best, &id, "rva_kv_cache_seq_new");
	pthread_mutex_unlock(&c->lock);
	if (!s)
		return RVA_ENOMEM;
	*seq = id;
	return RVA_OK;
}

/* Drops one holder (a sequence when pin is false, a job when true) of page g; the page
 * goes back to its pool's free stack when nothing holds it. Under the lock. */
void rva__kv_page_release(rva_kv_cache *c, uint32_t g, bool pin) {
	if (pin)
		c->pins[g]--;
	else
		c->refs[g]--;
	if (!c->refs[g] && !c->pins[g]) {
		rva__kv_pool *pl = &c->pools[c->page_pool[g]];
		pl->free_stack[pl->nfree++] = g;
	}
}

static uint32_t page_take(rva_kv_cache *c, uint32_t pool) {
	rva__kv_pool *pl = &c->pools[pool];
	uint32_t g = pl->free_stack[--pl->nfree];
	c->refs[g] = 1;
	return g;
}

/* Copies rows [r0, r0 + n) of K (or V) from src (stride in elements) into the pages of
 * table starting at row r0. */
static void copy_in(const rva_kv_cache *c, const uint32_t *table, bool v, size_t r0,
                    const unsigned char *src, size_t stride_bytes, size_t n) {
	size_t P = c->cfg.page_tokens;
	for (size_t r = 0; r < n;) {
		size_t row = r0 + r, in = row % P, run = rva__min(P - in, n - r);
		unsigned char *dst = rva__kv_page_rows(c, table[row / P], v) +
		                     in * c->row_bytes;
		if (stride_bytes == c->row_bytes) {
			memcpy(dst, src + r * stride_bytes, run * c->row_bytes);
		} else {
			for (size_t i = 0; i < run; i++)
				memcpy(dst + i * c->row_bytes, src + (r + i) * stride_bytes, c->row_bytes);
		}
		r += run;
	}
}

rva_status rva_kv_cache_append(rva_kv_cache *c, uint64_t seq, const void *k, size_t k_stride,
                               const void *v, size_t v_stride, size_t n) {
	if (!c || (n && (!k || !v)))
		return rva__fail(RVA_ENULL, "rva_kv_cache_append: %s is NULL",
		                 !c ? "cache" : !k ? "k" : "v");
	size_t re = c->row_elems;
	if (!k_stride)
		k_stride = re;
	if (!v_stride)
		v_stride = re;
	if (k_stride < re || v_stride < re)
		return rva__fail(RVA_EDIM, "rva_kv_cache_append: %s stride %zu is narrower than a "
		                 "row (%zu x %zu elements)", k_stride < re ? "key" : "value",
		                 k_stride < re ? k_stride : v_stride, c->cfg.kv_heads,
		                 c->cfg.head_dim);
	size_t kb, vb, span;
	if (!rva__mul_ok(k_stride, c->es, &kb) || !rva__mul_ok(v_stride, c->es, &vb) ||
	    (n && (!rva__mul_ok(n - 1, kb > vb ? kb : vb, &span) ||
	           !rva__add_ok(span, c->row_bytes, &span))))
		return rva__fail(RVA_EOVERFLOW, "rva_kv_cache_append: %zu rows of stride %zu/%zu "
		                 "overflow", n, k_stride, v_stride);
	size_t P = c->cfg.page_tokens;
	pthread_mutex_lock(&c->lock);
	rva__kv_seq *s = rva__kv_lookup(c, seq, "rva_kv_cache_append");
	if (!s) {
		pthread_mutex_unlock(&c->lock);
		return RVA_ENOTFOUND;
	}
	if (!n) {
		pthread_mutex_unlock(&c->lock);
		return RVA_OK;
	}
	size_t len = s->len, end;
	if (!rva__add_ok(len, n, &end) || end > UINT32_MAX) {
		pthread_mutex_unlock(&c->lock);
		return rva__fail(RVA_EOVERFLOW, "rva_kv_cache_append: sequence %llu: %zu + %zu rows "
		                 "exceed 2^32 - 1", (unsigned long long)seq, len, n);
	}
	uint32_t *table = rva__kv_table(c, s);
	bool cow = len % P && c->refs[table[s->npages - 1]] > 1;
	size_t pages_end = rva__div_up(end, P), need = pages_end - s->npages + (cow ? 1 : 0);
	rva__kv_pool *pl = &c->pools[s->pool];
	if (need > pl->nfree) {
		pthread_mutex_unlock(&c->lock);
		return rva__fail(RVA_ENOMEM, "rva_kv_cache_append: kv cache full: appending %zu rows "
		                 "to sequence %llu (%zu rows) needs %zu free pages of %zu rows in "
		                 "pool %u, which has %zu of %zu (nothing was changed or evicted)", n,
		                 (unsigned long long)seq, len, need, P, s->pool, pl->nfree,
		                 pl->npages);
	}
	if (cow) { /* the shared, partly filled last page: this sequence gets its own copy */
		uint32_t old = table[s->npages - 1], fresh = page_take(c, s->pool);
		size_t rows = len % P;
		memcpy(c->page_base[fresh], c->page_base[old], rows * c->row_bytes);
		memcpy(rva__kv_page_rows(c, fresh, true), rva__kv_page_rows(c, old, true),
		       rows * c->row_bytes);
		rva__kv_page_release(c, old, false);
		table[s->npages - 1] = fresh;
		c->cow_copies++;
	}
	while (s->npages < pages_end)
		table[s->npages++] = page_take(c, s->pool);
	pthread_mutex_unlock(&c->lock);
	/* The rows [len, end) lie in pages this sequence holds alone (a job may read their
	 * earlier rows: other bytes); the length is published under the lock afterwards. */
	copy_in(c, table, false, len, k, kb, n);
	copy_in(c, table, true, len, v, vb, n);
	pthread_mutex_lock(&c->lock);
	s->len = end;
	c->rows += n;
	pthread_mutex_unlock(&c->lock);
	return RVA_OK;
}

rva_status rva_kv_cache_fork(rva_kv_cache *c, uint64_t parent, uint64_t *child) {
	if (!c || !child)
		return rva__fail(RVA_ENULL, "rva_kv_cache_fork: %s is NULL", !c ? "cache" : "child");
	pthread_mutex_lock(&c->lock);
	rva__kv_seq *p = rva__kv_lookup(c, parent, "rva_kv_cache_fork");
	if (!p) {
		pthread_mutex_unlock(&c->lock);
		return RVA_ENOTFOUND;
	}
	uint64_t id;
	size_t pidx = (size_t)(p - c->seqs);
	rva__kv_seq *s = slot_new(c, p->pool, &id, "rva_kv_cache_fork");
	if (!s) {
		pthread_mutex_unlock(&c->lock);
		return RVA_ENOMEM;
	}
	p = &c->seqs[pidx];
	uint32_t *pt = rva__kv_table(c, p), *ct = rva__kv_table(c, s);
	for (size_t i = 0; i < p->npages; i++) {
		ct[i] = pt[i];
		c->refs[pt[i]]++;
	}
	s->npages = p->npages;
	s->len = p->len;
	c->rows += p->len;
	pthread_mutex_unlock(&c->lock);
	*child = id;
	return RVA_OK;
}

rva_status rva_kv_cache_seq_free(rva_kv_cache *c, uint64_t seq) {
	if (!c)
		return rva__fail(RVA_ENULL, "rva_kv_cache_seq_free: cache is NULL");
	pthread_mutex_lock(&c->lock);
	rva__kv_seq *s = rva__kv_lookup(c, seq, "rva_kv_cache_seq_free");
	if (!s) {
		pthread_mutex_unlock(&c->lock);
		return RVA_ENOTFOUND;
	}
	uint32_t *table = rva__kv_table(c, s);
	for (size_t i = 0; i < s->npages; i++)
		rva__kv_page_release(c, table[i], false);
	c->rows -= s->len;
	s->live = false;
	s->npages = 0;
	s->len = 0;
	c->free_slots[c->nfree_slots++] = (uint32_t)(s - c->seqs);
	c->nseqs--;
	pthread_mutex_unlock(&c->lock);
	return RVA_OK;
}

rva_status rva_kv_cache_seq_len(rva_kv_cache *c, uint64_t seq, size_t *len) {
	if (!c || !len)
		return rva__fail(RVA_ENULL, "rva_kv_cache_seq_len: %s is NULL", !c ? "cache" : "len");
	pthread_mutex_lock(&c->lock);
	rva__kv_seq *s = rva__kv_lookup(c, seq, "rva_kv_cache_seq_len");
	if (s)
		*len = s->len;
	pthread_mutex_unlock(&c->lock);
	return s ? RVA_OK : RVA_ENOTFOUND;
}

rva_status rva_kv_cache_seq_read(rva_kv_cache *c, uint64_t seq, size_t row0, size_t n, void *k,
                                 void *v) {
	if (!c)
		return rva__fail(RVA_ENULL, "rva_kv_cache_seq_read: cache is NULL");
	pthread_mutex_lock(&c->lock);
	rva__kv_seq *s = rva__kv_lookup(c, seq, "rva_kv_cache_seq_read");
	if (!s) {
		pthread_mutex_unlock(&c->lock);
		return RVA_ENOTFOUND;
	}
	if (row0 > s->len || n > s->len - row0) {
		size_t len = s->len;
		pthread_mutex_unlock(&c->lock);
		return rva__fail(RVA_ERANGE, "rva_kv_cache_seq_read: rows [%zu, %zu + %zu) past the "
		                 "sequence's %zu rows", row0, row0, n, len);
	}
	const uint32_t *table = rva__kv_table(c, s);
	size_t P = c->cfg.page_tokens;
	for (int which = 0; which < 2; which++) {
		unsigned char *dst = which ? v : k;
		if (!dst)
			continue;
		for (size_t r = 0; r < n;) {
			size_t row = row0 + r, in = row % P, run = rva__min(P - in, n - r);
			memcpy(dst + r * c->row_bytes,
			       rva__kv_page_rows(c, table[row / P], which) + in * c->row_bytes,
			       run * c->row_bytes);
			r += run;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return RVA_OK;
}

rva_status rva_kv_cache_stats_get(rva_kv_cache *c, rva_kv_cache_stats *out) {
	if (!c || !out)
		return rva__fail(RVA_ENULL, "rva_kv_cache_stats_get: %s is NULL", !c ? "cache" : "out");
	rva_kv_cache_stats r;
	memset(&r, 0, sizeof r);
	pthread_mutex_lock(&c->lock);
	r.page_tokens = c->cfg.page_tokens;
	r.page_bytes = c->page_bytes;
	r.pages = c->npages;
	for (size_t p = 0; p < c->npools; p++)
		r.pages_free += c->pools[p].nfree;
	for (size_t g = 0; g < c->npages; g++)
		r.pages_shared += c->refs[g] > 1;
	r.pools = c->npools;
	r.seqs = c->nseqs;
	r.rows = c->rows;
	r.bytes = c->npages * c->page_bytes;
	r.cow_copies = c->cow_copies;
	pthread_mutex_unlock(&c->lock);
	*out = r;
	return RVA_OK;
}

/*
 * The paged K/V cache's internals (sched/kv_cache.c: pages, tables, counts;
 * sched/kv_cache_attention.c: jobs over it). Every field below `lock` is guarded by it.
 */
#ifndef RVATTN_SCHED_KV_CACHE_INTERNAL_H
#define RVATTN_SCHED_KV_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rvattn/kv_cache.h"

typedef struct rva__kv_pool {
	void *block;               /* the pool's pages, one allocation: the K rows of its pages
	                            * (page after page, k_stride bytes apart), then their V rows
	                            * in the same order v_offset bytes further */
	size_t v_offset;           /* bytes from a page's K rows to its V rows */
	size_t first, npages;      /* global indices [first, first + npages) */
	uint32_t *free_stack;      /* nfree free pages (global indices) */
	size_t nfree;
	unsigned numa_os;          /* the NUMA node the block is bound to */
	bool on_node;              /* binding succeeded (a single pool is never bound) */
} rva__kv_pool;

typedef struct rva__kv_seq {
	uint32_t gen;              /* id = gen << 32 | slot */
	bool live;
	uint32_t pool;
	size_t len;                /* rows */
	size_t npages;             /* pages in its block table */
} rva__kv_seq;

struct rva_kv_cache {
	rva_engine *engine;
	rva_kv_cache_config cfg;   /* defaults resolved */
	size_t es, row_elems, row_bytes;
	size_t half_bytes;         /* bytes of a page's K rows (as many of V rows) */
	size_t k_stride;           /* half_bytes rounded to 64: bytes from a page's K (V) rows
	                            * to the next page's in the pool */
	size_t page_bytes;         /* K + V: 2 k_stride */
	size_t npools, npages, table_cap;
	bool lock_ok;
	pthread_mutex_t lock;
	rva__kv_pool *pools;
	unsigned char **page_base; /* per page: its K rows */
	uint32_t *page_pool;       /* per page: its pool */
	uint32_t *refs;            /* per page: sequences holding it */
	uint32_t *pins;            /* per page: running jobs reading it */
	rva__kv_seq *seqs;         /* max_seqs slots */
	uint32_t *tables;          /* max_seqs x table_cap page indices */
	uint32_t *free_slots;
	size_t nfree_slots, nseqs, rows;
	uint64_t cow_copies;
	size_t jobs;               /* submitted jobs not yet ended */
};

/* Under the lock: the live sequence of id (NULL and RVA_ENOTFOUND's detail naming `who`);
 * its block table; release of one holder of page g (pin: a job's, else a sequence's). */
rva__kv_seq *rva__kv_lookup(rva_kv_cache *c, uint64_t id, const char *who);
uint32_t *rva__kv_table(rva_kv_cache *c, const rva__kv_seq *s);
void rva__kv_page_release(rva_kv_cache *c, uint32_t g, bool pin);

/* Page g's K rows (v false) or V rows (v true). */
static inline unsigned char *rva__kv_page_rows(const rva_kv_cache *c, uint32_t g, bool v) {
	return c->page_base[g] + (v ? c->pools[c->page_pool[g]].v_offset : 0);
}

/* Frees everything (a cache half built by create included). */
void rva__kv_cache_free_all(rva_kv_cache *c);

#endif

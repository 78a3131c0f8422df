/*
 * Paged K/V rows (the key-row source of the softmax engine for rva_kv_cache, kv_cache.h):
 * a sequence's keys and values live in pages of page_rows rows, listed in token order;
 * page p holds the K rows of keys [p P, (p + 1) P) at pages[p] and their V rows
 * v_offset bytes further, rows seq->k_stride elements apart (the same stride for V).
 * Pages that lie back to back in memory (pages[p + 1] = pages[p] + page_span, as a
 * cache's pages taken in order do: sched/kv_cache.c keeps K rows and V rows in two
 * regions) form one run of rows. The softmax kernels read key rows in place within a run;
 * a tile that spans runs is gathered (tile loop) or split where a run ends into calls of
 * the same per-key operation order (decode loop), so the output is bit-identical to
 * contiguous K/V.
 */
#ifndef RVATTN_SRC_ATTENTION_KV_PAGES_H
#define RVATTN_SRC_ATTENTION_KV_PAGES_H

#include <stdbool.h>
#include <stddef.h>

#include "kernels/half.h"
#include "rvattn/batch.h"

typedef struct rva__kv_pages {
	const unsigned char *const *pages; /* ceil(nk / page_rows) page bases, token order */
	size_t page_rows;                  /* rows per page; 0 = not paged (contiguous) */
	size_t v_offset;                   /* bytes from a page's K rows to its V rows */
	size_t page_span;                  /* page_rows rows' bytes, when pages may lie back to
	                                    * back (their rows then continue the run); 0 = every
	                                    * page is a run of its own */
} rva__kv_pages;

/* Whether pg describes paged rows (NULL or page_rows 0: contiguous seq->k / seq->v). */
static inline bool rva__kv_paged(const rva__kv_pages *pg) { return pg && pg->page_rows; }

/* Element `off` of key (value when v) row `row` of seq: in its page when paged, else in
 * seq->k / seq->v. */
static inline const void *rva__kv_elem(const rva__kv_pages *pg, const rva_seq *seq, bool v,
                                       size_t row, size_t off) {
	rva_dtype t = v ? seq->v_dtype : seq->k_dtype;
	size_t stride = v ? seq->v_stride : seq->k_stride;
	if (!rva__kv_paged(pg))
		return rva__elem_at(v ? seq->v : seq->k, t, row * stride + off);
	const unsigned char *base = pg->pages[row / pg->page_rows] + (v ? pg->v_offset : 0);
	return rva__elem_at(base, t, (row % pg->page_rows) * stride + off);
}

/* Rows from `row` on that lie back to back in memory, counted up to at least `want`
 * (rows [row, row + want) must exist) when the pages allow: the rest of row's page and of
 * the pages that follow it in memory (SIZE_MAX-like when not paged). */
static inline size_t rva__kv_run(const rva__kv_pages *pg, size_t row, size_t want) {
	if (!rva__kv_paged(pg))
		return (size_t)-1;
	size_t p = row / pg->page_rows, run = pg->page_rows - row % pg->page_rows;
	while (run < want && pg->page_span && pg->pages[p + 1] == pg->pages[p] + pg->page_span) {
		run += pg->page_rows;
		p++;
	}
	return run;
}

#endif

/*
 * Attention over the paged K/V cache (kv_cache.h: rva_kv_cache_submit / _run): each step
 * becomes an rva_seq whose K/V rows are its sequence's pages (src/attention/kv_pages.h),
 * planned by the softmax engine like any sequence (the same tiles, chunks and kernels:
 * bit-identical to contiguous K/V). Submission pins every page a step reads, under the
 * cache's lock, and the job's finish hook unpins them: a stream freed or appended to
 * while the job runs leaves the job's rows intact.
 */
#include <string.h>

#include "attention/attention_internal.h"
#include "attention/softmax_part.h"
#include "core/internal.h"
#include "sched/engine_internal.h"
#include "sched/kv_cache_internal.h"

typedef struct kv_submit {
	rva_kv_cache *c;
	const rva_kv_step *steps;
	size_t n;
	size_t dim;          /* the attention's query / output width */
	size_t heads;        /* its query heads */
} kv_submit;

/* What a job pinned (in the job's memory), released by its finish hook. */
typedef struct kv_pinned {
	rva_kv_cache *c;
	uint32_t *pages;
	size_t n;
} kv_pinned;

static rva_status unpin(void *ctx, const rva_status *seq_status, size_t nseq) {
	(void)seq_status;
	(void)nseq;
	kv_pinned *p = ctx;
	pthread_mutex_lock(&p->c->lock);
	for (size_t i = 0; i < p->n; i++)
		rva__kv_page_release(p->c, p->pages[i], true);
	p->c->jobs--;
	pthread_mutex_unlock(&p->c->lock);
	return RVA_OK;
}

/* Whether [p, p + bytes) meets one of the cache's page blocks. */
static bool in_cache(const rva_kv_cache *c, const void *p, size_t bytes) {
	uintptr_t lo = (uintptr_t)p, hi = lo + bytes < lo ? UINTPTR_MAX : lo + bytes;
	for (size_t i = 0; i < c->npools; i++) {
		uintptr_t b = (uintptr_t)c->pools[i].block, e = b + c->pools[i].npages * c->page_bytes;
		if (lo < e && b < hi)
			return true;
	}
	return false;
}

/* Bytes from the first to the last element of `rows` rows of `heads` heads of `width`
 * elements (row stride rs, head stride hs, elements of `elem` bytes), in *n; false when
 * the size overflows (validation refuses the step then). */
static bool tensor_bytes(size_t rows, size_t rs, size_t heads, size_t hs, size_t width,
                         size_t elem, size_t *n) {
	size_t a, b;
	return rva__mul_ok(rows - 1, rs, &a) && rva__mul_ok(heads - 1, hs, &b) &&
	       rva__add_ok(a, b, n) && rva__add_ok(*n, width, n) && rva__mul_ok(*n, elem, n);
}

static void step_fail(rva_status *seq_status, char **details, size_t s, rva_status st) {
	seq_status[s] = st;
	if (details && !details[s])
		details[s] = rva__strdup(rva_last_error());
}

/* Under the cache's lock: one step's descriptor; its page count in *npg (0: none read). */
static rva_status step_seq(rva_kv_cache *c, const rva_kv_step *k, size_t s, size_t dim,
                           size_t heads, rva_seq *seq, size_t *npg) {
	*npg = 0;
	for (size_t i = 0; i < sizeof k->reserved / sizeof k->reserved[0]; i++)
		if (k->reserved[i])
			return rva__fail(RVA_EINVAL, "step %zu: reserved[%zu] is not zero", s, i);
	rva__kv_seq *q = rva__kv_lookup(c, k->seq, "rva_kv_cache_submit");
	if (!q)
		return rva__fail(RVA_ENOTFOUND, "step %zu: no live sequence with id %llu in the kv "
		                 "cache", s, (unsigned long long)k->seq);
	if (k->nq > q->len)
		return rva__fail(RVA_ERANGE, "step %zu: %zu queries but sequence %llu holds %zu rows "
		                 "(append the new tokens' K/V rows first)", s, k->nq,
		                 (unsigned long long)k->seq, q->len);
	*seq = (rva_seq){.nq = k->nq, .nk = q->len, .q = k->q, .q_stride = k->q_stride,
	                 .out = k->out, .out_stride = k->out_stride, .q_dtype = k->q_dtype,
	                 .out_dtype = k->out_dtype, .k_dtype = c->cfg.dtype,
	                 .v_dtype = c->cfg.dtype, .k_stride = c->row_elems,
	                 .v_stride = c->row_elems, .key_mask = k->key_mask, .bias = k->bias,
	                 .bias_stride = k->bias_stride, .bias_head_stride = k->bias_head_stride,
	                 .mask = k->mask, .mask_stride = k->mask_stride,
	                 .mask_head_stride = k->mask_head_stride, .lse = k->lse,
	                 .lse_head_stride = k->lse_head_stride, .q_head_stride = k->q_head_stride,
	                 .out_head_stride = k->out_head_stride};
	if (!k->nq)
		return RVA_OK;
	/* q and out: heads x D elements per row (the cache's V rows are D wide), extents as
	 * far as they are sizeable (validation refuses the others) */
	size_t H = heads, D = c->cfg.head_dim, n;
	size_t qes = rva__dtype_size(k->q_dtype), oes = rva__dtype_size(k->out_dtype);
	size_t qs = k->q_stride ? k->q_stride : dim, os = k->out_stride ? k->out_stride : dim;
	size_t qhs = rva__head_stride(k->q_head_stride, D);
	size_t ohs = rva__head_stride(k->out_head_stride, D);
	if (qes && k->q && tensor_bytes(k->nq, qs, H, qhs, D, qes, &n) && in_cache(c, k->q, n))
		return rva__fail(RVA_EINVAL, "step %zu: the query lies in the kv cache's pages", s);
	if (oes && k->out && tensor_bytes(k->nq, os, H, ohs, D, oes, &n) && in_cache(c, k->out, n))
		return rva__fail(RVA_EINVAL, "step %zu: the output overlaps the kv cache's pages "
		                 "(outputs must not share memory with inputs)", s);
	if (k->lse && tensor_bytes(1, 0, H, k->lse_head_stride ? k->lse_head_stride : k->nq,
	                           k->nq, sizeof(float), &n) && in_cache(c, k->lse, n))
		return rva__fail(RVA_EINVAL, "step %zu: the lse output overlaps the kv cache's pages "
		                 "(outputs must not share memory with inputs)", s);
	const uint32_t *table = rva__kv_table(c, q);
	seq->k = c->page_base[table[0]];
	seq->v = rva__kv_page_rows(c, table[0], true);
	*npg = q->npages;
	return RVA_OK;
}

static rva_status prepare(void *ctx, rva__graph *g, rva_seq *seqs, rva__kv_pages *pages,
                          rva_status *seq_status, char **details) {
	kv_submit *in = ctx;
	rva_kv_cache *c = in->c;
	size_t total = 0;
	kv_pinned *pin = rva__graph_alloc(g, sizeof *pin);
	size_t *npg = rva__graph_alloc_array(g, in->n ? in->n : 1, sizeof *npg);
	if (!pin || !npg)
		return rva__fail(RVA_ENOMEM, "rva_kv_cache_submit: cannot allocate job memory");
	pthread_mutex_lock(&c->lock);
	for (size_t s = 0; s < in->n; s++) {
		rva_status st = step_seq(c, &in->steps[s], s, in->dim, in->heads, &seqs[s],
		                         &npg[s]);
		if (st != RVA_OK) {
			npg[s] = 0;
			step_fail(seq_status, details, s, st);
		}
		total += npg[s];
	}
	uint32_t *ids = rva__graph_alloc_array(g, total ? total : 1, sizeof *ids);
	const unsigned char **ptrs = rva__graph_alloc_array(g, total ? total : 1, sizeof *ptrs);
	if (!ids || !ptrs) {
		pthread_mutex_unlock(&c->lock);
		return rva__fail(RVA_ENOMEM, "rva_kv_cache_submit: cannot allocate the page lists of "
		                 "%zu pages", total);
	}
	size_t at = 0;
	for (size_t s = 0; s < in->n; s++) {
		if (!npg[s])
			continue;
		rva__kv_seq *q = rva__kv_lookup(c, in->steps[s].seq, "rva_kv_cache_submit");
		const uint32_t *table = rva__kv_table(c, q);
		pages[s] = (rva__kv_pages){.pages = ptrs + at, .page_rows = c->cfg.page_tokens,
		                           .v_offset = c->pools[q->pool].v_offset,
		                           .page_span = c->k_stride == c->half_bytes ? c->k_stride : 0};
		for (size_t i = 0; i < npg[s]; i++, at++) {
			ids[at] = table[i];
			ptrs[at] = c->page_base[table[i]];
			c->pins[table[i]]++;
		}
	}
	c->jobs++;
	pthread_mutex_unlock(&c->lock);
	*pin = (kv_pinned){.c = c, .pages = ids, .n = total};
	g->finish = unpin;
	g->finish_ctx = pin;
	return RVA_OK;
}

rva_status rva_kv_cache_submit(rva_engine *e, rva_kv_cache *c, const rva_attention *att,
                               const rva_kv_step *steps, size_t n, const rva_runtime *rt,
                               rva_job **job) {
	if (!e || !c || !att || !job || (n && !steps))
		return rva__fail(RVA_ENULL, "rva_kv_cache_submit: %s is NULL",
		                 !e ? "engine" : !c ? "cache" : !att ? "attention" : !job ? "job"
		                                                                          : "steps");
	if (c->engine != e)
		return rva__fail(RVA_EINVAL, "rva_kv_cache_submit: the cache belongs to another "
		                 "engine");
	if (!rva__softmax_is(att))
		return rva__fail(RVA_EUNSUPPORTED, "rva_kv_cache_submit: %s attention does not read "
		                 "paged K/V (scaled_dot, multi_head, flash and local_global do)",
		                 rva_mechanism_name(att->cfg.mechanism));
	if (att->v_head_dim != att->head_dim) /* pages hold V rows as wide as K rows */
		return rva__fail(RVA_EDIM, "rva_kv_cache_submit: the attention's v_head_dim %zu "
		                 "differs from its head_dim %zu (the cache's V rows are as wide as its "
		                 "K rows)", att->v_head_dim, att->head_dim);
	if (att->kv_heads != c->cfg.kv_heads || att->head_dim != c->cfg.head_dim)
		return rva__fail(RVA_EDIM, "rva_kv_cache_submit: the attention has %zu kv heads of "
		                 "%zu, the cache %zu of %zu", att->kv_heads, att->head_dim,
		                 c->cfg.kv_heads, c->cfg.head_dim);
	if (n > UINT32_MAX)
		return rva__fail(RVA_ERANGE, "rva_kv_cache_submit: %zu steps exceed 2^32 - 1", n);
	kv_submit in = {.c = c, .steps = steps, .n = n, .dim = att->cfg.dim,
	                .heads = att->cfg.heads};
	return rva__engine_submit_paged(e, att, n, rt, prepare, &in, job);
}

rva_status rva_kv_cache_run(rva_engine *e, rva_kv_cache *c, const rva_attention *att,
                            const rva_kv_step *steps, size_t n, const rva_runtime *rt,
                            rva_status *step_status, rva_job_stats *stats) {
	rva_job *job = NULL;
	rva_status st = rva_kv_cache_submit(e, c, att, steps, n, rt, &job);
	if (st != RVA_OK)
		return st;
	st = rva_job_wait(job);
	if (step_status)
		for (size_t s = 0; s < n; s++)
			rva_job_seq_status(job, s, &step_status[s], NULL);
	if (stats)
		rva_job_stats_get(job, stats);
	if (st != RVA_OK) {
		const char *detail = NULL;
		for (size_t s = 0; s < n && !detail; s++) {
			rva_status ss;
			if (rva_job_seq_status(job, s, &ss, &detail) != RVA_OK || ss == RVA_OK)
				detail = NULL;
		}
		if (detail)
			rva__fail(st, "%s", detail);
	}
	rva_job_destroy(job);
	return st;
}

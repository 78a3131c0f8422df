/*
 * The paged K/V cache (rvattn/kv_cache.h) against a shadow model: every sequence's rows
 * kept contiguously by the test, and the cache's rows read back and compared bit for bit.
 *  - append across page boundaries (strided and packed input, fp32 and bf16 bits);
 *  - fork shares pages; copy on write of the shared, partly filled last page only, the
 *    parent unchanged; full pages stay shared; free returns pages when the last holder goes;
 *  - exhaustion: RVA_ENOMEM with a message, the cache unchanged (rows, stats);
 *  - stale ids, max_seqs, bad configurations;
 *  - 8 threads appending, forking and freeing at once, then every sequence checked;
 *  - allocation failures during creation: RVA_ENOMEM, nothing leaks.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ref/fault_alloc.h"
#include "rvattn/rvattn.h"
#include "rvattn/kv_cache.h"

#define KVH 2
#define HD 8
#define ROW (KVH * HD)

static rva_engine *engine1(void) {
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 1;
	rva_engine *e = NULL;
	cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK, "%s", rva_last_error());
	return e;
}

static rva_kv_cache *cache_new(rva_engine *e, size_t P, size_t pages, size_t max_seqs,
                               rva_dtype t) {
	rva_kv_cache_config cfg = {.kv_heads = KVH, .head_dim = HD, .page_tokens = P,
	                           .pages = pages, .max_seqs = max_seqs, .dtype = t};
	rva_kv_cache *c = NULL;
	cr_assert_eq(rva_kv_cache_create(e, &cfg, &c), RVA_OK, "%s", rva_last_error());
	return c;
}

/* A shadow sequence: its rows as the test wrote them (fp32 values or 16-bit words). */
typedef struct shadow {
	uint64_t id;
	size_t len;
	float k[4096 * ROW], v[4096 * ROW];
} shadow;

static float val(uint64_t seed, size_t row, size_t e, int which) {
	uint64_t h = seed * 0x9E3779B97F4A7C15ull + row * 1315423911ull + e * 2654435761ull +
	             (uint64_t)which * 97;
	h ^= h >> 29;
	h *= 0xBF58476D1CE4E5B9ull;
	h ^= h >> 32;
	return (float)(h % 2001) / 1000.0f - 1.0f;
}

/* Appends n rows drawn from seed, with row strides ks / vs (elements; 0 = packed). */
static rva_status put(rva_kv_cache *c, shadow *s, size_t n, uint64_t seed, size_t ks,
                      size_t vs) {
	size_t kst = ks ? ks : ROW, vst = vs ? vs : ROW;
	float *kb = calloc(n * kst + 1, sizeof(float)), *vb = calloc(n * vst + 1, sizeof(float));
	cr_assert(kb && vb);
	for (size_t r = 0; r < n; r++)
		for (size_t e = 0; e < ROW; e++) {
			kb[r * kst + e] = val(seed, s->len + r, e, 0);
			vb[r * vst + e] = val(seed, s->len + r, e, 1);
		}
	rva_status st = rva_kv_cache_append(c, s->id, kb, ks, vb, vs, n);
	if (st == RVA_OK) {
		for (size_t r = 0; r < n; r++) {
			memcpy(s->k + (s->len + r) * ROW, kb + r * kst, ROW * sizeof(float));
			memcpy(s->v + (s->len + r) * ROW, vb + r * vst, ROW * sizeof(float));
		}
		s->len += n;
	}
	free(kb);
	free(vb);
	return st;
}

static void check(rva_kv_cache *c, const shadow *s) {
	size_t len = 0;
	cr_assert_eq(rva_kv_cache_seq_len(c, s->id, &len), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(len, s->len, "sequence length %zu, expected %zu", len, s->len);
	float *k = malloc((len + 1) * ROW * sizeof(float)), *v = malloc((len + 1) * ROW * sizeof(float));
	cr_assert_eq(rva_kv_cache_seq_read(c, s->id, 0, len, k, v), RVA_OK, "%s", rva_last_error());
	cr_assert(memcmp(k, s->k, len * ROW * sizeof(float)) == 0, "K rows differ");
	cr_assert(memcmp(v, s->v, len * ROW * sizeof(float)) == 0, "V rows differ");
	free(k);
	free(v);
}

static rva_kv_cache_stats stats(rva_kv_cache *c) {
	rva_kv_cache_stats st;
	cr_assert_eq(rva_kv_cache_stats_get(c, &st), RVA_OK);
	return st;
}

Test(kv_cache, append_across_pages) {
	rva_engine *e = engine1();
	rva_kv_cache *c = cache_new(e, 16, 64, 8, RVA_F32);
	static shadow s;
	memset(&s, 0, sizeof s);
	cr_assert_eq(rva_kv_cache_seq_new(c, &s.id), RVA_OK);
	size_t sizes[] = {1, 15, 1, 16, 33, 2, 100, 7};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		cr_assert_eq(put(c, &s, sizes[i], 11 + i, i % 2 ? ROW + 5 : 0, i % 3 ? 0 : ROW + 3),
		             RVA_OK, "%s", rva_last_error());
		check(c, &s);
	}
	rva_kv_cache_stats st = stats(c);
	cr_expect_eq(st.rows, s.len);
	cr_expect_eq(st.pages - st.pages_free, (s.len + 15) / 16, "pages in use");
	cr_expect_eq(st.page_bytes, 2 * 16 * ROW * sizeof(float));
	cr_expect_eq(st.bytes, 64 * st.page_bytes);
	/* a partial read in the middle of a page */
	float k[5 * ROW];
	cr_assert_eq(rva_kv_cache_seq_read(c, s.id, 13, 5, k, NULL), RVA_OK);
	cr_expect(memcmp(k, s.k + 13 * ROW, sizeof k) == 0);
	cr_expect_eq(rva_kv_cache_seq_read(c, s.id, s.len - 2, 3, k, NULL), RVA_ERANGE);
	cr_expect_eq(rva_kv_cache_append(c, s.id, NULL, 0, s.v, 0, 0), RVA_OK, "n = 0: no-op");
	cr_expect_eq(rva_kv_cache_append(c, s.id, s.k, ROW - 1, s.v, 0, 1), RVA_EDIM);
	cr_expect_eq(rva_kv_cache_append(c, s.id, NULL, 0, s.v, 0, 1), RVA_ENULL);
	check(c, &s);
	cr_assert_eq(rva_kv_cache_destroy(c), RVA_OK);
	rva_engine_destroy(e);
}

Test(kv_cache, bf16_rows_keep_their_bits) {
	rva_engine *e = engine1();
	rva_kv_cache *c = cache_new(e, 4, 16, 4, RVA_BF16);
	uint64_t id;
	cr_assert_eq(rva_kv_cache_seq_new(c, &id), RVA_OK);
	uint16_t k[9 * ROW], v[9 * ROW], rk[9 * ROW], rv[9 * ROW];
	for (size_t i = 0; i < 9 * ROW; i++) {
		k[i] = (uint16_t)(i * 2654435761u >> 7);
		v[i] = (uint16_t)(i * 40503u + 7);
	}
	k[3] = 0x7fc1; /* a NaN payload stays as it is */
	cr_assert_eq(rva_kv_cache_append(c, id, k, 0, v, 0, 9), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_kv_cache_seq_read(c, id, 0, 9, rk, rv), RVA_OK);
	cr_expect(memcmp(k, rk, sizeof k) == 0 && memcmp(v, rv, sizeof v) == 0);
	cr_expect_eq(stats(c).page_bytes, 2 * 4 * ROW * 2);
	rva_kv_cache_destroy(c);
	rva_engine_destroy(e);
}

Test(kv_cache, fork_shares_pages_copy_on_write) {
	rva_engine *e = engine1();
	rva_kv_cache *c = cache_new(e, 16, 32, 8, RVA_F32);
	static shadow a, b, d;
	memset(&a, 0, sizeof a);
	cr_assert_eq(rva_kv_cache_seq_new(c, &a.id), RVA_OK);
	cr_assert_eq(put(c, &a, 40, 1, 0, 0), RVA_OK); /* pages: 16 + 16 + 8 (partial) */
	size_t used0 = stats(c).pages - stats(c).pages_free;
	cr_assert_eq(used0, 3);
	b = a;
	cr_assert_eq(rva_kv_cache_fork(c, a.id, &b.id), RVA_OK, "%s", rva_last_error());
	cr_assert_neq(b.id, a.id);
	check(c, &b);
	rva_kv_cache_stats st = stats(c);
	cr_expect_eq(st.pages - st.pages_free, 3, "a fork takes no page");
	cr_expect_eq(st.pages_shared, 3);
	cr_expect_eq(st.rows, 80);
	/* the child appends: its partial last page is copied, the parent keeps its rows */
	cr_assert_eq(put(c, &b, 3, 2, 0, 0), RVA_OK);
	st = stats(c);
	cr_expect_eq(st.cow_copies, 1);
	cr_expect_eq(st.pages - st.pages_free, 4);
	cr_expect_eq(st.pages_shared, 2, "full pages stay shared");
	check(c, &a);
	check(c, &b);
	/* the parent appends: its last page is its own now, no copy */
	cr_assert_eq(put(c, &a, 5, 3, 0, 0), RVA_OK);
	cr_expect_eq(stats(c).cow_copies, 1);
	check(c, &a);
	check(c, &b);
	/* a fork at a page boundary copies nothing on append (the new row opens a page) */
	memset(&d, 0, sizeof d);
	cr_assert_eq(rva_kv_cache_seq_new(c, &d.id), RVA_OK);
	cr_assert_eq(put(c, &d, 32, 4, 0, 0), RVA_OK);
	static shadow d2;
	d2 = d;
	cr_assert_eq(rva_kv_cache_fork(c, d.id, &d2.id), RVA_OK);
	cr_assert_eq(put(c, &d2, 1, 5, 0, 0), RVA_OK);
	cr_expect_eq(stats(c).cow_copies, 1);
	check(c, &d);
	check(c, &d2);
	/* free the parent: the child's shared pages stay, the parent's own page returns */
	size_t free_before = stats(c).pages_free;
	cr_assert_eq(rva_kv_cache_seq_free(c, a.id), RVA_OK);
	cr_expect_eq(stats(c).pages_free, free_before + 1);
	check(c, &b);
	cr_expect_eq(rva_kv_cache_seq_len(c, a.id, &(size_t){0}), RVA_ENOTFOUND, "stale id");
	cr_expect_eq(rva_kv_cache_seq_free(c, a.id), RVA_ENOTFOUND);
	cr_assert_eq(rva_kv_cache_seq_free(c, b.id), RVA_OK);
	cr_assert_eq(rva_kv_cache_seq_free(c, d.id), RVA_OK);
	cr_assert_eq(rva_kv_cache_seq_free(c, d2.id), RVA_OK);
	st = stats(c);
	cr_expect_eq(st.pages_free, st.pages, "every page back");
	cr_expect_eq(st.seqs, 0);
	cr_expect_eq(st.rows, 0);
	rva_kv_cache_destroy(c);
	rva_engine_destroy(e);
}

Test(kv_cache, exhaustion_is_a_clear_error_and_changes_nothing) {
	rva_engine *e = engine1();
	rva_kv_cache *c = cache_new(e, 8, 4, 3, RVA_F32); /* 32 rows in all */
	static shadow a, b;
	memset(&a, 0, sizeof a);
	cr_assert_eq(rva_kv_cache_seq_new(c, &a.id), RVA_OK);
	cr_assert_eq(put(c, &a, 20, 1, 0, 0), RVA_OK); /* 3 pages */
	b = a;
	cr_assert_eq(rva_kv_cache_fork(c, a.id, &b.id), RVA_OK);
	rva_kv_cache_stats before = stats(c);
	/* 13 rows more need 2 pages (one a copy of the shared partial page): 1 is free */
	cr_assert_eq(put(c, &a, 13, 2, 0, 0), RVA_ENOMEM);
	cr_expect(strstr(rva_last_error(), "kv cache full") != NULL, "message: %s",
	          rva_last_error());
	rva_kv_cache_stats after = stats(c);
	cr_expect(memcmp(&before, &after, sizeof before) == 0, "stats changed");
	check(c, &a);
	check(c, &b);
	/* what fits still goes in: 4 rows into a copy of the partial page */
	cr_assert_eq(put(c, &a, 4, 3, 0, 0), RVA_OK, "%s", rva_last_error());
	check(c, &a);
	check(c, &b);
	cr_expect_eq(stats(c).pages_free, 0);
	cr_expect_eq(put(c, &b, 5, 4, 0, 0), RVA_ENOMEM, "b's last page is shared no more? it "
	             "is b's own now, but 5 rows overflow it");
	cr_assert_eq(put(c, &b, 4, 4, 0, 0), RVA_OK, "%s", rva_last_error());
	check(c, &b);
	/* max_seqs */
	uint64_t x, y;
	cr_assert_eq(rva_kv_cache_seq_new(c, &x), RVA_OK);
	cr_expect_eq(rva_kv_cache_seq_new(c, &y), RVA_ENOMEM);
	cr_expect_eq(rva_kv_cache_fork(c, a.id, &y), RVA_ENOMEM);
	cr_assert_eq(rva_kv_cache_seq_free(c, x), RVA_OK);
	cr_assert_eq(rva_kv_cache_seq_new(c, &y), RVA_OK);
	cr_expect_neq(x, y, "ids are never reused");
	cr_expect_eq(rva_kv_cache_seq_free(c, x), RVA_ENOTFOUND);
	rva_kv_cache_destroy(c);
	rva_engine_destroy(e);
}

Test(kv_cache, bad_configs) {
	rva_engine *e = engine1();
	rva_kv_cache *c = NULL;
	rva_kv_cache_config cfg = {.kv_heads = 2, .head_dim = 8};
	cfg.page_tokens = 15;
	cr_expect_eq(rva_kv_cache_create(e, &cfg, &c), RVA_EINVAL);
	cfg.page_tokens = 65538;
	cr_expect_eq(rva_kv_cache_create(e, &cfg, &c), RVA_ERANGE);
	cfg.page_tokens = 0;
	cfg.kv_heads = 0;
	cr_expect_eq(rva_kv_cache_create(e, &cfg, &c), RVA_EINVAL);
	cfg.kv_heads = 2;
	cfg.dtype = (rva_dtype)7;
	cr_expect_eq(rva_kv_cache_create(e, &cfg, &c), RVA_EINVAL);
	cfg.dtype = RVA_F32;
	cfg.reserved[3] = 1;
	cr_expect_eq(rva_kv_cache_create(e, &cfg, &c), RVA_EINVAL);
	cfg.reserved[3] = 0;
	cfg.head_dim = SIZE_MAX / 4;
	cr_expect_eq(rva_kv_cache_create(e, &cfg, &c), RVA_EOVERFLOW);
	cfg.head_dim = 8;
	cr_expect_eq(rva_kv_cache_create(NULL, &cfg, &c), RVA_ENULL);
	cr_expect_null(c);
	cr_assert_eq(rva_kv_cache_create(e, &cfg, &c), RVA_OK); /* defaults */
	rva_kv_cache_stats st = stats(c);
	cr_expect_eq(st.page_tokens, 16);
	cr_expect_eq(st.pages, 1024);
	cr_expect_eq(rva_kv_cache_destroy(NULL), RVA_OK);
	cr_expect_eq(rva_kv_cache_destroy(c), RVA_OK);
	rva_engine_destroy(e);
}

/* ---- 8 threads at once --------------------------------------------------------------- */

typedef struct worker_arg {
	rva_kv_cache *c;
	unsigned t;
	shadow *s;   /* 3 sequences per thread */
	int errors;
} worker_arg;

static void *worker(void *p) {
	worker_arg *w = p;
	shadow *s = w->s;
	for (int i = 0; i < 3; i++)
		if (rva_kv_cache_seq_new(w->c, &s[i].id) != RVA_OK)
			w->errors++;
	for (unsigned round = 0; round < 40; round++) {
		size_t n = 1 + (round * 7 + w->t) % 19;
		if (put(w->c, &s[round % 2], n, w->t * 1000 + round, round % 3 ? 0 : ROW + 1, 0) !=
		    RVA_OK)
			w->errors++;
		if (round == 20) { /* re-fork the third from the first */
			if (rva_kv_cache_seq_free(w->c, s[2].id) != RVA_OK)
				w->errors++;
			uint64_t id;
			if (rva_kv_cache_fork(w->c, s[0].id, &id) != RVA_OK)
				w->errors++;
			memcpy(&s[2], &s[0], sizeof s[0]);
			s[2].id = id;
		}
		if (round > 20 && put(w->c, &s[2], 1, w->t * 7 + round, 0, 0) != RVA_OK)
			w->errors++;
	}
	return NULL;
}

Test(kv_cache, eight_threads_at_once) {
	rva_engine *e = engine1();
	rva_kv_cache *c = cache_new(e, 16, 8 * 3 * 40, 32, RVA_F32);
	shadow *all = calloc(24, sizeof *all);
	cr_assert(all);
	worker_arg w[8];
	pthread_t th[8];
	for (unsigned t = 0; t < 8; t++) {
		w[t] = (worker_arg){.c = c, .t = t, .s = all + 3 * t};
		cr_assert_eq(pthread_create(&th[t], NULL, worker, &w[t]), 0);
	}
	for (unsigned t = 0; t < 8; t++)
		pthread_join(th[t], NULL);
	size_t rows = 0;
	for (unsigned t = 0; t < 8; t++) {
		cr_expect_eq(w[t].errors, 0, "thread %u: %d calls failed", t, w[t].errors);
		for (int i = 0; i < 3; i++) {
			check(c, &all[3 * t + i]);
			rows += all[3 * t + i].len;
		}
	}
	rva_kv_cache_stats st = stats(c);
	cr_expect_eq(st.seqs, 24);
	cr_expect_eq(st.rows, rows);
	for (size_t i = 0; i < 24; i++)
		cr_assert_eq(rva_kv_cache_seq_free(c, all[i].id), RVA_OK);
	cr_expect_eq(stats(c).pages_free, st.pages);
	free(all);
	rva_kv_cache_destroy(c);
	rva_engine_destroy(e);
}

/* ---- allocation failures ------------------------------------------------------------- */

Test(kv_cache, creation_fails_cleanly_on_every_allocation) {
	cr_assert_eq(ref_fault_install(), RVA_OK);
	rva_engine *e = engine1();
	long live0 = ref_fault_live();
	rva_kv_cache_config cfg = {.kv_heads = 2, .head_dim = 8, .pages = 8};
	ref_fault_arm(-1, false);
	rva_kv_cache *c = NULL;
	cr_assert_eq(rva_kv_cache_create(e, &cfg, &c), RVA_OK);
	long n = ref_fault_count();
	rva_kv_cache_destroy(c);
	cr_assert_gt(n, 0);
	for (long k = 0; k < n; k++) {
		ref_fault_arm(k, false);
		c = NULL;
		rva_status st = rva_kv_cache_create(e, &cfg, &c);
		ref_fault_disarm();
		cr_expect_eq(st, RVA_ENOMEM, "allocation %ld failed: %s (%s)", k, rva_status_name(st),
		             rva_last_error());
		cr_expect_null(c);
		cr_expect_eq(ref_fault_live(), live0, "allocation %ld: leak", k);
	}
	/* a full cache's operations allocate nothing */
	cr_assert_eq(rva_kv_cache_create(e, &cfg, &c), RVA_OK);
	uint64_t a, b;
	float rows[4 * 16];
	memset(rows, 0, sizeof rows);
	ref_fault_arm(0, true);
	cr_expect_eq(rva_kv_cache_seq_new(c, &a), RVA_OK);
	cr_expect_eq(rva_kv_cache_append(c, a, rows, 0, rows, 0, 4), RVA_OK);
	cr_expect_eq(rva_kv_cache_fork(c, a, &b), RVA_OK);
	cr_expect_eq(rva_kv_cache_append(c, b, rows, 0, rows, 0, 4), RVA_OK);
	cr_expect_eq(rva_kv_cache_seq_free(c, a), RVA_OK);
	cr_expect_eq(ref_fault_count(), 0, "the cache allocated while serving");
	ref_fault_disarm();
	rva_kv_cache_destroy(c);
	rva_engine_destroy(e);
	ref_fault_uninstall();
}

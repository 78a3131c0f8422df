/*
 * The single-query call (rva_compute and its masked/_ex forms) reads key and value rows in
 * place when the row pointers are evenly spaced (an array of pointers into one matrix), and
 * gathers them only when they are scattered or the output overlaps them. Every case is
 * checked against the double-precision oracle (tests/ref/ref_softmax.c) and, where the
 * rows form a matrix, bit for bit against rva_compute_batch on that matrix; a recording
 * allocator shows that the in-place case allocates no key/value copy.
 *
 * Tolerance (fp32 vs double oracle): |got - want| <= 2e-5 + 2e-4 |want| per element.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_softmax.h"
#include "ref/ref_util.h"
#include "rvattn/alloc.h"
#include "rvattn/attention.h"
#include "rvattn/config.h"

#define ATOL 2e-5
#define RTOL 2e-4

/* The largest allocation asked for while installed (plain posix_memalign underneath). */
static size_t biggest;

static void *rec_alloc(size_t size, size_t align, void *user) {
	(void)user;
	if (size > biggest)
		biggest = size;
	void *p = NULL;
	return posix_memalign(&p, align, size) ? NULL : p;
}

static void rec_free(void *p, void *user) {
	(void)user;
	free(p);
}

typedef struct setup {
	size_t heads, kv_heads, hd, nk, stride;
	rva_attention *att;
	float *q, *k, *v;           /* K and V: nk rows of `stride` floats */
	const float **kr, **vr;     /* row pointers */
	uint8_t *mask;
	double *want;
} setup;

static setup make(size_t heads, size_t kv_heads, size_t hd, size_t nk, size_t pad,
                  bool causal, bool masked, uint64_t seed) {
	setup s = {.heads = heads, .kv_heads = kv_heads, .hd = hd, .nk = nk,
	           .stride = kv_heads * hd + pad};
	rva_config c = rva_multi_head(heads * hd, heads);
	c.kv_heads = kv_heads;
	c.causal = causal;
	cr_assert_eq(rva_build(&c, &s.att), RVA_OK, "%s", rva_last_error());
	s.q = ref_alloc(heads * hd);
	s.k = ref_alloc(nk * s.stride);
	s.v = ref_alloc(nk * s.stride);
	ref_fill_uniform(s.q, heads * hd, -1.0f, 1.0f, seed);
	ref_fill_uniform(s.k, nk * s.stride, -1.0f, 1.0f, seed + 1);
	ref_fill_uniform(s.v, nk * s.stride, -1.0f, 1.0f, seed + 2);
	s.kr = malloc(nk * sizeof *s.kr);
	s.vr = malloc(nk * sizeof *s.vr);
	cr_assert(s.kr && s.vr);
	for (size_t j = 0; j < nk; j++) {
		s.kr[j] = s.k + j * s.stride;
		s.vr[j] = s.v + j * s.stride;
	}
	if (masked) {
		s.mask = malloc(nk);
		for (size_t j = 0; j < nk; j++)
			s.mask[j] = (j * 7 + seed) % 5 != 0;
	}
	ref_attn_spec sp = {.heads = heads, .kv_heads = kv_heads, .head_dim = hd,
	                    .scale = 1.0 / sqrt((double)hd), .causal = causal};
	s.want = ref_alloc_d(heads * hd);
	ref_attention(&sp, 1, nk, s.q, heads * hd, s.k, s.stride, s.v, s.stride, s.mask, s.want);
	return s;
}

static void release(setup *s) {
	rva_attention_destroy(s->att);
	free(s->q);
	free(s->k);
	free(s->v);
	free(s->kr);
	free(s->vr);
	free(s->mask);
	free(s->want);
}

/* rva_compute_masked on the setup's row pointers, through the recording allocator. */
static rva_status compute(const setup *s, float *out, size_t *largest) {
	biggest = 0;
	rva_allocator a = {rec_alloc, rec_free, NULL};
	cr_assert_eq(rva_set_allocator(&a), RVA_OK);
	rva_status st = rva_compute_masked(s->att, s->q, s->kr, s->vr, s->mask, s->nk, out);
	cr_assert_eq(rva_set_allocator(NULL), RVA_OK);
	*largest = biggest;
	return st;
}

Test(compute, strided_rows_read_in_place) {
	/* padded rows, GQA, a mask, causal; 1500 keys take the split-KV decode path */
	setup s = make(8, 2, 32, 1500, 5, true, true, 11);
	size_t dim = 8 * 32, kv_bytes = 2 * s.nk * 2 * 32 * sizeof(float), largest;
	float *out = ref_alloc(dim);
	cr_assert_eq(compute(&s, out, &largest), RVA_OK, "%s", rva_last_error());
	cr_expect_leq(ref_err_ratio(out, s.want, dim, ATOL, RTOL), 1.0);
	cr_expect_lt(largest, kv_bytes / 4, "an allocation of %zu bytes: K/V (%zu bytes) were "
	             "copied", largest, kv_bytes);
	/* the batch of one over the same matrix gives the same bits */
	float *batch_out = ref_alloc(dim);
	rva_seq q = {.nq = 1, .nk = s.nk, .q = s.q, .k = s.k, .k_stride = s.stride, .v = s.v,
	             .v_stride = s.stride, .out = batch_out, .key_mask = s.mask};
	rva_batch b = {1, &q};
	cr_assert_eq(rva_compute_batch(s.att, &b, NULL, NULL), RVA_OK);
	cr_expect_eq(memcmp(out, batch_out, dim * sizeof(float)), 0, "single query != batch");
	free(out);
	free(batch_out);
	release(&s);
}

Test(compute, one_key_and_dense_rows) {
	for (size_t nk = 1; nk <= 3; nk++) {
		setup s = make(4, 4, 16, nk, 0, false, false, 20 + nk);
		float out[64];
		size_t largest;
		cr_assert_eq(compute(&s, out, &largest), RVA_OK, "%s", rva_last_error());
		cr_expect_leq(ref_err_ratio(out, s.want, 64, ATOL, RTOL), 1.0, "nk %zu", nk);
		release(&s);
	}
}

Test(compute, scattered_rows_are_gathered) {
	setup s = make(4, 4, 16, 300, 3, false, false, 31);
	/* reverse the rows: K row j lives at matrix row nk-1-j (not evenly spaced upwards) */
	float *rk = ref_alloc(s.nk * s.stride), *rv = ref_alloc(s.nk * s.stride);
	for (size_t j = 0; j < s.nk; j++) {
		memcpy(rk + (s.nk - 1 - j) * s.stride, s.kr[j], s.stride * sizeof(float));
		memcpy(rv + (s.nk - 1 - j) * s.stride, s.vr[j], s.stride * sizeof(float));
		s.kr[j] = rk + (s.nk - 1 - j) * s.stride;
		s.vr[j] = rv + (s.nk - 1 - j) * s.stride;
	}
	/* and one value row out of line */
	float *odd = ref_alloc(s.stride);
	memcpy(odd, s.vr[7], s.stride * sizeof(float));
	s.vr[7] = odd;
	float out[64];
	size_t largest;
	cr_assert_eq(compute(&s, out, &largest), RVA_OK, "%s", rva_last_error());
	cr_expect_leq(ref_err_ratio(out, s.want, 64, ATOL, RTOL), 1.0);
	cr_expect_geq(largest, 2 * s.nk * 64 * sizeof(float), "scattered rows need the gather");
	free(rk);
	free(rv);
	free(odd);
	release(&s);
}

Test(compute, output_overlapping_the_keys_reads_a_copy) {
	/* out is the last key row of the matrix: the rows are gathered before out is written */
	setup s = make(4, 4, 16, 40, 0, false, false, 41);
	float *out = s.k + 39 * s.stride;
	size_t largest;
	cr_assert_eq(compute(&s, out, &largest), RVA_OK, "%s", rva_last_error());
	cr_expect_leq(ref_err_ratio(out, s.want, 64, ATOL, RTOL), 1.0);
	/* in place over the query still works */
	setup t = make(4, 4, 16, 40, 0, false, false, 42);
	cr_assert_eq(rva_compute(t.att, t.q, t.kr, t.vr, t.nk, t.q), RVA_OK);
	cr_expect_leq(ref_err_ratio(t.q, t.want, 64, ATOL, RTOL), 1.0);
	release(&s);
	release(&t);
}

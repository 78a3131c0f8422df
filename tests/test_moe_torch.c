/*
 * MoE attention against an independent PyTorch float64 computation of Mixture of
 * Attention Heads on a grid of hidden sizes (dim 8, 32, 64; 2, 4, 8 heads; top-1 with
 * Switch gates and top-2 with GShard gates; with and without dropped tokens; causal).
 * The fixtures under tests/fixtures/moe/<case>/ were written by tests/ref/moa_torch.py
 * (see it for the file layout; rerun it to regenerate them): inputs and every weight as
 * float32, the output as float64. Here the weights go in through the API (caller
 * weights, copied at build) and the output must agree within fp32 accuracy:
 * |got - want| <= ATOL + RTOL |want| with ATOL = 2e-5, RTOL = 2e-4, both serially and
 * on the engine. The dropped-pair count is checked against the fixture's own
 * capacity rule too.
 */
#include <criterion/criterion.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_util.h"
#include "rvattn/attention.h"
#include "rvattn/engine.h"
#include "rvattn/npy.h"

#define ATOL 2e-5
#define RTOL 2e-4

static const char *fixture(const char *cs, const char *file) {
	static char path[4096];
	char here[4096];
	snprintf(here, sizeof here, "%s", __FILE__);
	snprintf(path, sizeof path, "%s/fixtures/moe/%s/%s", dirname(here), cs, file);
	return path;
}

static rva_npy_array load(const char *cs, const char *file, size_t ndim, const size_t *shape) {
	rva_npy_array a;
	memset(&a, 0, sizeof a);
	cr_assert_eq(rva_npy_load(fixture(cs, file), &a), RVA_OK, "%s/%s: %s", cs, file,
	             rva_last_error());
	cr_assert_eq(a.ndim, ndim, "%s/%s: %zu dims", cs, file, a.ndim);
	for (size_t i = 0; i < ndim; i++)
		cr_assert_eq(a.shape[i], shape[i], "%s/%s: dim %zu is %zu, want %zu", cs, file, i,
		             a.shape[i], shape[i]);
	return a;
}

static void check_case(const char *cs) {
	rva_npy_array meta;
	memset(&meta, 0, sizeof meta);
	cr_assert_eq(rva_npy_load(fixture(cs, "meta.npy"), &meta), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(meta.count, 9);
	size_t dim = (size_t)meta.data[0], heads = (size_t)meta.data[1], E = (size_t)meta.data[2];
	size_t k = (size_t)meta.data[3], nq = (size_t)meta.data[7], nk = (size_t)meta.data[8];
	float capacity = meta.data[4];
	bool causal = meta.data[5] != 0.0f, normalize = meta.data[6] != 0.0f;
	rva_npy_free(&meta);

	rva_npy_array x = load(cs, "x.npy", 2, (size_t[]){nq, dim});
	rva_npy_array kk = load(cs, "k.npy", 2, (size_t[]){nk, dim});
	rva_npy_array vv = load(cs, "v.npy", 2, (size_t[]){nk, dim});
	rva_npy_array router = load(cs, "router.npy", 2, (size_t[]){E, dim});
	rva_npy_array wq = load(cs, "wq.npy", 3, (size_t[]){E, dim, dim});
	rva_npy_array wo = load(cs, "wo.npy", 3, (size_t[]){E, dim, dim});
	rva_npy_array wk = load(cs, "wk.npy", 2, (size_t[]){dim, dim});
	rva_npy_array wv = load(cs, "wv.npy", 2, (size_t[]){dim, dim});
	rva_npy_array want_f = load(cs, "out.npy", 2, (size_t[]){nq, dim});
	cr_assert(want_f.converted, "out.npy should hold float64");

	const float *lq[16], *lo[16], *lk[1] = {wk.data}, *lv[1] = {wv.data};
	cr_assert_leq(E, 16);
	for (size_t e = 0; e < E; e++) {
		lq[e] = wq.data + e * dim * dim;
		lo[e] = wo.data + e * dim * dim;
	}
	rva_config c = rva_moe(dim, E, k);
	c.heads = heads;
	c.causal = causal;
	c.expert_kind = RVA_EXPERTS_STANDARD;
	c.expert_capacity = capacity;
	c.normalize_gates = normalize ? RVA_GATES_NORMALIZED : RVA_GATES_RAW;
	c.router_weights = router.data;
	c.expert_wq = (rva_matrix_list){lq, dim};
	c.expert_wo = (rva_matrix_list){lo, 0};
	c.expert_wk = (rva_matrix_list){lk, 0};
	c.expert_wv = (rva_matrix_list){lv, dim};
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s: %s", cs, rva_last_error());

	double *want = ref_alloc_d(nq * dim);
	for (size_t i = 0; i < nq * dim; i++)
		want[i] = want_f.data[i];
	float *out = ref_alloc(nq * dim);
	rva_seq s = {.nq = nq, .nk = nk, .q = x.data, .k = kk.data, .v = vv.data, .out = out};
	rva_batch b = {1, &s};
	rva_moe_stats st;
	rva_runtime rt = {.moe_stats = &st};
	cr_assert_eq(rva_compute_batch(att, &b, &rt, NULL), RVA_OK, "%s", rva_last_error());
	double r = ref_err_ratio(out, want, nq * dim, ATOL, RTOL);
	cr_assert(r <= 1.0, "%s: error ratio %g against torch float64", cs, r);
	/* the capacity of moa_torch.py: ceil(factor * nq * k / E) per sequence */
	size_t cap = (size_t)ceil((double)capacity * (double)nq * (double)k / (double)E);
	cr_assert_eq(st.capacity, cap, "%s", cs);
	size_t processed = 0;
	for (size_t e = 0; e < E; e++)
		processed += st.processed[e];
	cr_assert_eq(processed + st.dropped, nq * k, "%s", cs);

	/* the engine gives the same numbers, bit for bit */
	float *out2 = ref_alloc(nq * dim);
	rva_seq s2 = s;
	s2.out = out2;
	rva_batch b2 = {1, &s2};
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 2;
	rva_engine *eng;
	cr_assert_eq(rva_engine_create(&ec, &eng), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_engine_run(eng, att, &b2, NULL, NULL, NULL), RVA_OK);
	cr_assert(memcmp(out, out2, nq * dim * sizeof(float)) == 0, "%s: engine differs", cs);
	rva_engine_destroy(eng);

	free(out);
	free(out2);
	free(want);
	rva_attention_destroy(att);
	rva_npy_array *all[] = {&x, &kk, &vv, &router, &wq, &wo, &wk, &wv, &want_f};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		rva_npy_free(all[i]);
}

Test(moe_torch, d8_top1_switch_gates) { check_case("d8_h2_k1"); }
Test(moe_torch, d32_top2_gshard_gates_with_drops) { check_case("d32_h4_k2"); }
Test(moe_torch, d32_top2_causal_six_experts) { check_case("d32_h4_k2_causal"); }
Test(moe_torch, d64_eight_heads) { check_case("d64_h8_k2"); }

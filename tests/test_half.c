/*
 * Half precision (bf16 / fp16 per tensor, rvattn/batch.h):
 *  - the converters: exhaustive over the 65536 half values and sampled over fp32 inputs,
 *    SIMD versions against their portable twins (bit-identical) and both against
 *    independently known values and round trips;
 *  - accuracy of the softmax family against the float64 oracle (tests/ref) run on the same
 *    rounded inputs, with the bound of each path (below), over head dims 3, 64, 80, 128,
 *    causal, GQA, decode, split-KV and ragged batches;
 *  - bit-identity across thread counts;
 *  - every mechanism accepts half tensors: the converting path gives exactly the fp32
 *    result on the widened inputs, rounded once to the output type.
 *
 * Error bound of a softmax-family output element (|.| over the row's head slice):
 *   |out - ref| <= 2^-9 max|V| [V bf16: P rounded to bf16]
 *               + u_out |ref|  [rounding of the output: 2^-8 bf16, 2^-11 fp16, 0 fp32]
 *               + 2e-5 max|V|  [fp32 accumulation, exp]
 * where ref is the float64 attention of the rounded inputs (Q rounded to bf16 too when K
 * is bf16, as the kernels define).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/half.h"
#include "ref/fault_alloc.h"
#include "ref/ref_softmax.h"
#include "rvattn/rvattn.h"

/* ---- converters ------------------------------------------------------------------- */

static uint32_t f2u(float f) {
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float u2f(uint32_t u) {
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static uint64_t rng_next(uint64_t *s) {
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Independent decoding of fp16 from its definition (double arithmetic). */
static double f16_value(uint16_t h) {
	int e = (h >> 10) & 0x1f, m = h & 0x3ff;
	double sgn = (h & 0x8000) ? -1.0 : 1.0;
	if (e == 0)
		return sgn * ldexp(m, -24);
	if (e == 31)
		return m ? NAN : sgn * INFINITY;
	return sgn * ldexp(1024 + m, e - 25);
}

static void check_converters(void) {
	enum { N = 65536 };
	static uint16_t h[N], back[N], back_ref[N];
	static float f[N], f_ref[N];
	for (int i = 0; i < N; i++)
		h[i] = (uint16_t)i;
	/* fp16 -> fp32: exact, equal to the definition; round trip is the identity */
	rva__cvt_to_f32(RVA_F16, h, f, N);
	rva__cvt_to_f32_ref(RVA_F16, h, f_ref, N);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(f2u(f[i]), f2u(f_ref[i]), "f16 %04x: simd %08x twin %08x", i, f2u(f[i]),
		             f2u(f_ref[i]));
		double v = f16_value(h[i]);
		if (isnan(v))
			cr_assert(isnan(f[i]), "f16 %04x is NaN", i);
		else
			cr_assert_eq((double)f[i], v, "f16 %04x: %g, want %g", i, (double)f[i], v);
	}
	rva__cvt_from_f32(RVA_F16, f, back, N);
	rva__cvt_from_f32_ref(RVA_F16, f, back_ref, N);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(back[i], back_ref[i], "f16 %04x: simd %04x twin %04x", i, back[i],
		             back_ref[i]);
		if (!isnan(f[i]))
			cr_assert_eq(back[i], h[i], "f16 round trip %04x -> %04x", i, back[i]);
	}
	/* bf16: the same */
	rva__cvt_to_f32(RVA_BF16, h, f, N);
	rva__cvt_to_f32_ref(RVA_BF16, h, f_ref, N);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(f2u(f[i]), f2u(f_ref[i]));
		if (!isnan(f[i]))
			cr_assert_eq(f2u(f[i]), (uint32_t)i << 16);
	}
	rva__cvt_from_f32(RVA_BF16, f, back, N);
	rva__cvt_from_f32_ref(RVA_BF16, f, back_ref, N);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(back[i], back_ref[i]);
		if (!isnan(f[i]))
			cr_assert_eq(back[i], h[i]);
	}
	/* fp32 -> half on sampled bit patterns (every exponent, ties included): SIMD = twin,
	 * and the result is the nearest half value (ties to even), checked in double. */
	enum { M = 1 << 18 };
	static float x[M], xr[M];
	static uint16_t a[M], b[M];
	uint64_t s = 0x9E3779B97F4A7C15ull;
	for (int i = 0; i < M; i++) {
		uint32_t u = (uint32_t)rng_next(&s);
		if (i % 4 == 1)
			u &= 0xffff8000u | 0x1000u; /* fp16 ties: the 13 dropped bits 1000000000000 */
		if (i % 4 == 2)
			u = (u & 0xffff0000u) | 0x8000u; /* bf16 ties */
		x[i] = u2f(u);
	}
	for (int t = 0; t < 2; t++) {
		rva_dtype dt = t ? RVA_BF16 : RVA_F16;
		rva__cvt_from_f32(dt, x, a, M);
		rva__cvt_from_f32_ref(dt, x, b, M);
		rva__cvt_to_f32_ref(dt, b, xr, M);
		for (int i = 0; i < M; i++) {
			cr_assert_eq(a[i], b[i], "%s of %08x: simd %04x twin %04x",
			             rva__dtype_name(dt), f2u(x[i]), a[i], b[i]);
			if (isnan(x[i])) {
				cr_assert(isnan(xr[i]));
				continue;
			}
			/* nearest: no other half value is closer, and ties go to an even code */
			double err = fabs((double)xr[i] - (double)x[i]);
			if (isinf(xr[i]) && !isinf(x[i])) {
				cr_assert(dt == RVA_F16 ? fabs((double)x[i]) >= 65520.0
				                        : fabs((double)x[i]) >= 0x1.ffp127,
				          "%s: %g overflowed", rva__dtype_name(dt), (double)x[i]);
				continue;
			}
			for (int d = -1; d <= 1; d += 2) {
				uint16_t nb = (uint16_t)(b[i] + d);
				float alt;
				rva__cvt_to_f32_ref(dt, &nb, &alt, 1);
				if (isnan(alt) || ((nb ^ b[i]) & 0x8000))
					continue;
				double e2 = fabs((double)alt - (double)x[i]);
				cr_assert(err <= e2, "%s of %a: got %a, %a is closer", rva__dtype_name(dt),
				          (double)x[i], (double)xr[i], (double)alt);
				if (err == e2)
					cr_assert_eq(b[i] & 1, 0, "%s tie of %a not to even", rva__dtype_name(dt),
					             (double)x[i]);
			}
		}
	}
	/* in-place bf16 rounding = the conversion's round trip */
	memcpy(xr, x, sizeof x);
	rva__cvt_round_bf16(xr, M);
	rva__cvt_from_f32_ref(RVA_BF16, x, b, M);
	for (int i = 0; i < M; i++) {
		float w;
		rva__cvt_to_f32_ref(RVA_BF16, &b[i], &w, 1);
		cr_assert(f2u(xr[i]) == f2u(w) || (isnan(xr[i]) && isnan(w)));
	}
}

Test(half, converters_known_values) {
	cr_assert_eq(rva__f32_to_f16(1.0f), 0x3c00);
	cr_assert_eq(rva__f32_to_f16(65504.0f), 0x7bff);
	cr_assert_eq(rva__f32_to_f16(65519.0f), 0x7bff);
	cr_assert_eq(rva__f32_to_f16(65520.0f), 0x7c00);
	cr_assert_eq(rva__f32_to_f16(0x1p-24f), 0x0001);
	cr_assert_eq(rva__f32_to_f16(0x1p-25f), 0x0000);      /* tie -> even (0) */
	cr_assert_eq(rva__f32_to_f16(0x1.8p-24f), 0x0002);    /* tie -> even (2) */
	cr_assert_eq(rva__f32_to_f16(-0x1p-14f), 0x8400);
	cr_assert_eq(rva__f32_to_f16(INFINITY), 0x7c00);
	cr_assert_eq(rva__f32_to_f16(1.0f + 0x1p-11f), 0x3c00); /* tie -> even */
	cr_assert_eq(rva__f32_to_f16(1.0f + 0x3p-11f), 0x3c02);
	cr_assert_eq(rva__f32_to_bf16(1.0f), 0x3f80);
	cr_assert_eq(rva__f32_to_bf16(1.0f + 0x1p-8f), 0x3f80); /* tie -> even */
	cr_assert_eq(rva__f32_to_bf16(1.0f + 0x3p-8f), 0x3f82);
	cr_assert_eq(rva__f32_to_bf16(0x1p-130f), 0x0008);      /* subnormals kept */
	cr_assert_eq(rva__f32_to_bf16(-3.0e38f) & 0x8000, 0x8000);
	cr_assert_eq(rva__f32_to_bf16(3.4e38f), 0x7f80);        /* rounds past the largest */
	cr_assert(isnan(rva__bf16_to_f32(rva__f32_to_bf16(NAN))));
	cr_assert(isnan(rva__f16_to_f32(rva__f32_to_f16(NAN))));
	cr_assert_str_eq(rva__dtype_name(RVA_BF16), "bf16");
	cr_assert_eq(rva__dtype_size((rva_dtype)7), 0);
}

/* SIMD versions against twins: at the machine's level, then AVX2+F16C, then scalar. */
Test(half, converters_auto) { check_converters(); }
Test(half, converters_avx2) {
	setenv("RVATTN_SIMD", "avx2", 1);
	check_converters();
}
Test(half, converters_scalar) {
	setenv("RVATTN_SIMD", "scalar", 1);
	check_converters();
}

/* ---- accuracy of the softmax family ------------------------------------------------ */

typedef struct shape {
	size_t heads, kv_heads, head_dim, nq, nk;
	bool causal;
	rva_mechanism mech;
} shape;

typedef struct types {
	rva_dtype q, k, v, out;
} types;

static void fill(float *x, size_t n, uint64_t seed, float amp) {
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++)
		x[i] = amp * ((float)(rng_next(&s) >> 11) * 0x1p-53f * 2.0f - 1.0f);
}

/* A tensor of n values stored as type t: the half/fp32 buffer and its fp32 values. */
typedef struct tensor {
	void *data;
	float *val;
} tensor;

static tensor make_tensor(rva_dtype t, size_t n, uint64_t seed, float amp) {
	tensor x = {.data = malloc(n * rva__dtype_size(t) + 4), .val = malloc(n * 4 + 4)};
	cr_assert(x.data && x.val);
	fill(x.val, n, seed, amp);
	rva__cvt_from_f32_ref(t, x.val, x.data, n);
	rva__cvt_to_f32_ref(t, x.data, x.val, n);
	return x;
}

static void free_tensor(tensor *x) {
	free(x->data);
	free(x->val);
}

static rva_config config_for(const shape *sh) {
	size_t dim = sh->heads * sh->head_dim;
	rva_config c = sh->mech == RVA_MECH_SCALED_DOT ? rva_scaled_dot(dim)
	               : sh->mech == RVA_MECH_FLASH     ? rva_flash(dim, 64)
	               : sh->mech == RVA_MECH_LOCAL_GLOBAL ? rva_local_global(dim, 64)
	                                                   : rva_multi_head(dim, sh->heads);
	c.heads = sh->heads;
	c.kv_heads = sh->kv_heads;
	c.causal = sh->causal;
	return c;
}

static double out_unit(rva_dtype t) {
	return t == RVA_BF16 ? 0x1p-8 : t == RVA_F16 ? 0x1p-11 : 0.0;
}

/* Runs shape sh with element types ty (batch of `count` sequences of lengths nq - s,
 * nk - 3 s: ragged) on an engine of `threads`, checks every element against the oracle,
 * and returns the output bytes (caller frees) for identity checks. */
static uint8_t *run_checked(const shape *sh, types ty, size_t count, unsigned threads,
                            size_t *bytes_out) {
	rva_config c = config_for(sh);
	rva_attention *att;
	cr_assert_eq(rva_build(&c, &att), RVA_OK, "%s", rva_last_error());
	size_t H = sh->heads, D = sh->head_dim, dim = H * D, kvd = sh->kv_heads * D;
	rva_seq seqs[4];
	tensor q[4], k[4], v[4];
	uint8_t *outs[4];
	size_t total = 0, obytes[4];
	for (size_t s = 0; s < count; s++) {
		size_t nq = sh->nq - s, nk = sh->nk - 3 * s;
		q[s] = make_tensor(ty.q, nq * dim, 10 * s + 1, 1.5f);
		k[s] = make_tensor(ty.k, nk * kvd, 10 * s + 2, 1.5f);
		v[s] = make_tensor(ty.v, nk * kvd, 10 * s + 3, 2.0f);
		obytes[s] = nq * dim * rva__dtype_size(ty.out);
		outs[s] = malloc(obytes[s] + 1);
		memset(outs[s], 0x7f, obytes[s]);
		total += obytes[s];
		seqs[s] = (rva_seq){.nq = nq, .nk = nk, .q = q[s].data, .k = k[s].data,
		                    .v = v[s].data, .out = outs[s], .q_dtype = ty.q, .k_dtype = ty.k,
		                    .v_dtype = ty.v, .out_dtype = ty.out};
	}
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = threads;
	ec.scratch_bytes = 1 << 20;
	rva_engine *e;
	cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK, "%s", rva_last_error());
	rva_batch b = {.count = count, .seqs = seqs};
	rva_status st[4];
	cr_assert_eq(rva_engine_run(e, att, &b, NULL, st, NULL), RVA_OK, "%s", rva_last_error());
	rva_engine_destroy(e);
	ref_attn_spec sp = {.heads = H, .kv_heads = sh->kv_heads, .head_dim = D,
	                    .scale = 1.0 / sqrt((double)D), .causal = sh->causal,
	                    .pattern = sh->mech == RVA_MECH_LOCAL_GLOBAL ? REF_LOCAL_GLOBAL
	                                                                 : REF_DENSE,
	                    .window = 64};
	rva_config used;
	cr_assert_eq(rva_attention_config(att, &used), RVA_OK);
	size_t globals[8] = {0, 1, 2, 3, 4, 5, 6, 7};
	if (sp.pattern == REF_LOCAL_GLOBAL && used.global_tokens) {
		cr_assert(used.global_tokens <= 8);
		sp.globals = globals;
		sp.nglobals = used.global_tokens;
	}
	for (size_t s = 0; s < count; s++) {
		cr_assert_eq(st[s], RVA_OK);
		size_t nq = seqs[s].nq, nk = seqs[s].nk;
		/* the kernels' Q: rounded to bf16 when K is bf16 */
		float *qv = malloc(nq * dim * 4);
		memcpy(qv, q[s].val, nq * dim * 4);
		if (ty.k == RVA_BF16)
			rva__cvt_round_bf16_ref(qv, nq * dim);
		double *ref = malloc(nq * dim * sizeof(double));
		float *got = malloc(nq * dim * 4);
		ref_attention(&sp, nq, nk, qv, dim, k[s].val, kvd, v[s].val, kvd, NULL, ref);
		rva__cvt_to_f32_ref(ty.out, outs[s], got, nq * dim);
		double vmax = 0.0;
		for (size_t i = 0; i < nk * kvd; i++)
			vmax = fmax(vmax, fabs((double)v[s].val[i]));
		double pterm = ty.v == RVA_BF16 ? 0x1p-9 * vmax : 0.0;
		for (size_t i = 0; i < nq * dim; i++) {
			double err = fabs((double)got[i] - ref[i]);
			double bound = pterm + out_unit(ty.out) * fabs(ref[i]) + 2e-5 * vmax;
			cr_assert(err <= bound, "%s H%zu/%zu D%zu nq %zu nk %zu%s q%s k%s v%s out%s: "
			          "element %zu: %.9g vs %.9g (error %.3g > bound %.3g)",
			          rva_mechanism_name(sh->mech), H, sh->kv_heads, D, nq, nk,
			          sh->causal ? " causal" : "", rva__dtype_name(ty.q),
			          rva__dtype_name(ty.k), rva__dtype_name(ty.v), rva__dtype_name(ty.out), i,
			          (double)got[i], ref[i], err, bound);
		}
		free(qv);
		free(ref);
		free(got);
	}
	uint8_t *all = malloc(total + 1), *p = all;
	for (size_t s = 0; s < count; s++) {
		memcpy(p, outs[s], obytes[s]);
		p += obytes[s];
		free(outs[s]);
		free_tensor(&q[s]);
		free_tensor(&k[s]);
		free_tensor(&v[s]);
	}
	rva_attention_destroy(att);
	*bytes_out = total;
	return all;
}

static const types TYPES[] = {
	{RVA_BF16, RVA_BF16, RVA_BF16, RVA_BF16}, /* all bf16 */
	{RVA_F16, RVA_F16, RVA_F16, RVA_F16},     /* all fp16 */
	{RVA_F32, RVA_BF16, RVA_BF16, RVA_F32},   /* bf16 KV cache, fp32 activations */
	{RVA_F32, RVA_F16, RVA_F16, RVA_F32},     /* fp16 KV cache */
	{RVA_BF16, RVA_F32, RVA_F16, RVA_BF16},   /* mixed */
};

/* Every shape with every type combination, on 1 and 2 threads: within the bound, and the
 * two runs bit-identical. */
static void grid(const shape *shapes, size_t nshapes, size_t count) {
	for (size_t i = 0; i < nshapes; i++)
		for (size_t t = 0; t < sizeof TYPES / sizeof TYPES[0]; t++) {
			size_t n1, n2;
			uint8_t *a = run_checked(&shapes[i], TYPES[t], count, 1, &n1);
			uint8_t *b = run_checked(&shapes[i], TYPES[t], count, 2, &n2);
			cr_assert_eq(n1, n2);
			cr_assert_eq(memcmp(a, b, n1), 0, "shape %zu types %zu: 1 and 2 threads differ",
			             i, t);
			free(a);
			free(b);
		}
}

Test(half, softmax_head_dims) {
	const shape s[] = {
		{2, 2, 3, 37, 90, false, RVA_MECH_MULTI_HEAD},
		{2, 2, 64, 70, 200, false, RVA_MECH_FLASH},
		{2, 1, 80, 33, 150, true, RVA_MECH_FLASH},      /* GQA, causal */
		{2, 2, 128, 20, 130, false, RVA_MECH_MULTI_HEAD},
		{1, 1, 64, 24, 100, false, RVA_MECH_SCALED_DOT},
		{2, 2, 64, 80, 300, true, RVA_MECH_LOCAL_GLOBAL},
	};
	grid(s, sizeof s / sizeof s[0], 3);
}

Test(half, softmax_decode_and_split) {
	const shape s[] = {
		{4, 2, 64, 1, 700, false, RVA_MECH_FLASH},    /* decode, GQA */
		{3, 3, 80, 4, 2100, true, RVA_MECH_FLASH},    /* decode, several queries, causal */
		{2, 1, 128, 12, 3000, false, RVA_MECH_MULTI_HEAD}, /* split-KV chunks */
		{2, 2, 3, 2, 1500, false, RVA_MECH_FLASH},
	};
	grid(s, sizeof s / sizeof s[0], 2);
}

/* The portable twins compute the same semantics within the same bound. */
Test(half, softmax_scalar_twins) {
	setenv("RVATTN_SIMD", "scalar", 1);
	const shape s[] = {
		{2, 1, 64, 40, 130, true, RVA_MECH_FLASH},
		{2, 2, 80, 1, 300, false, RVA_MECH_FLASH},
	};
	grid(s, sizeof s / sizeof s[0], 2);
}

/* ---- every mechanism ---------------------------------------------------------------- */

/* The converting path: outputs equal the fp32 computation on the widened inputs, rounded
 * once to the output type (bit for bit), for every mechanism; serial call and engine. */
Test(half, every_mechanism) {
	const size_t dim = 32, nq = 9, nk = 21;
	rva_config cfgs[] = {rva_linear(dim, 16), rva_hyperbolic(dim, -1.0f), rva_moe(dim, 4, 2),
	                     rva_multi_head(dim, 4), rva_flash(dim, 16), rva_scaled_dot(dim),
	                     rva_local_global(dim, 8)};
	for (size_t m = 0; m < sizeof cfgs / sizeof cfgs[0]; m++) {
		rva_attention *att;
		cr_assert_eq(rva_build(&cfgs[m], &att), RVA_OK, "%s", rva_last_error());
		const size_t kvd = dim;
		for (size_t t = 0; t < sizeof TYPES / sizeof TYPES[0]; t++) {
			types ty = TYPES[t];
			tensor q = make_tensor(ty.q, nq * dim, 5, 1.0f), k = make_tensor(ty.k, nk * kvd, 6, 1.0f),
			       v = make_tensor(ty.v, nk * kvd, 7, 1.0f);
			float *want = malloc(nq * dim * 4), *got = malloc(nq * dim * 4);
			void *out = malloc(nq * dim * 4);
			rva_seq s32 = {.nq = nq, .nk = nk, .q = q.val, .k = k.val, .v = v.val, .out = want};
			rva_batch b32 = {.count = 1, .seqs = &s32};
			cr_assert_eq(rva_compute_batch(att, &b32, NULL, NULL), RVA_OK, "%s",
			             rva_last_error());
			/* the softmax family rounds Q to bf16 with a bf16 K and P with a bf16 V: only
			 * the converting mechanisms are exact against the fp32 run */
			bool exact = cfgs[m].mechanism == RVA_MECH_LINEAR ||
			             cfgs[m].mechanism == RVA_MECH_HYPERBOLIC ||
			             cfgs[m].mechanism == RVA_MECH_MOE ||
			             (ty.k != RVA_BF16 && ty.v != RVA_BF16);
			rva_seq sh = {.nq = nq, .nk = nk, .q = q.data, .k = k.data, .v = v.data, .out = out,
			              .q_dtype = ty.q, .k_dtype = ty.k, .v_dtype = ty.v, .out_dtype = ty.out};
			rva_batch bh = {.count = 1, .seqs = &sh};
			cr_assert_eq(rva_compute_batch(att, &bh, NULL, NULL), RVA_OK, "%s",
			             rva_last_error());
			rva__cvt_to_f32_ref(ty.out, out, got, nq * dim);
			for (size_t i = 0; i < nq * dim; i++) {
				float w = want[i];
				if (ty.out != RVA_F32) {
					uint16_t r;
					rva__cvt_from_f32_ref(ty.out, &want[i], &r, 1);
					rva__cvt_to_f32_ref(ty.out, &r, &w, 1);
				}
				if (exact)
					cr_assert_eq(f2u(got[i]), f2u(w), "%s types %zu element %zu: %a vs %a",
					             rva_mechanism_name(cfgs[m].mechanism), t, i, (double)got[i],
					             (double)w);
				else
					cr_assert(fabs(got[i] - w) <= 0.02f, "%s types %zu element %zu: %g vs %g",
					          rva_mechanism_name(cfgs[m].mechanism), t, i, (double)got[i],
					          (double)w);
			}
			/* engine, 2 threads: the same bytes as the serial call */
			void *out2 = malloc(nq * dim * 4);
			sh.out = out2;
			rva_engine_config ec = rva_engine_config_defaults();
			ec.threads = 2;
			rva_engine *e;
			cr_assert_eq(rva_engine_create(&ec, &e), RVA_OK);
			cr_assert_eq(rva_engine_run(e, att, &bh, NULL, NULL, NULL), RVA_OK, "%s",
			             rva_last_error());
			rva_engine_destroy(e);
			cr_assert_eq(memcmp(out, out2, nq * dim * rva__dtype_size(ty.out)), 0,
			             "%s types %zu: engine differs from the serial call",
			             rva_mechanism_name(cfgs[m].mechanism), t);
			free(out2);
			free(out);
			free(want);
			free(got);
			free_tensor(&q);
			free_tensor(&k);
			free_tensor(&v);
		}
		rva_attention_destroy(att);
	}
}

/* Packed batches carry the element types into the sequences. */
Test(half, packed_batch_types) {
	const size_t dim = 16;
	uint16_t q[5 * 16], k[7 * 16], v[7 * 16], out[5 * 16];
	size_t cu_q[] = {0, 2, 5}, cu_k[] = {0, 3, 7};
	rva_packed_batch p = {.count = 2, .cu_q = cu_q, .cu_k = cu_k, .q = q, .q_stride = dim,
	                      .k = k, .k_stride = dim, .v = v, .v_stride = dim, .out = out,
	                      .out_stride = dim, .q_dtype = RVA_BF16, .k_dtype = RVA_F16,
	                      .v_dtype = RVA_F16, .out_dtype = RVA_BF16};
	rva_seq s[2];
	cr_assert_eq(rva_batch_unpack(&p, s, 2), RVA_OK);
	cr_assert_eq(s[1].q, (const void *)(q + 2 * dim));
	cr_assert_eq(s[1].k, (const void *)(k + 3 * dim));
	cr_assert_eq(s[1].out, (void *)(out + 2 * dim));
	cr_assert_eq(s[1].k_dtype, RVA_F16);
	cr_assert_eq(s[0].out_dtype, RVA_BF16);
}

/* Every allocation of a converting job (linear, hyperbolic, MoE on bf16/fp16 tensors) and of
 * a half softmax job may fail: RVA_ENOMEM, nothing leaked, and the same call then works. */
Test(half, allocation_failures) {
	const size_t dim = 16, nq = 5, nk = 12;
	rva_config cfgs[] = {rva_hyperbolic(dim, -1.0f), rva_linear(dim, 8), rva_moe(dim, 2, 1),
	                     rva_flash(dim, 8)};
	cr_assert_eq(ref_fault_install(), RVA_OK);
	for (size_t m = 0; m < sizeof cfgs / sizeof cfgs[0]; m++) {
		rva_attention *att;
		cr_assert_eq(rva_build(&cfgs[m], &att), RVA_OK);
		tensor q = make_tensor(RVA_BF16, nq * dim, 1, 1.0f),
		       k = make_tensor(RVA_F16, nk * dim, 2, 1.0f),
		       v = make_tensor(RVA_BF16, nk * dim, 3, 1.0f);
		uint16_t out[5 * 16], want[5 * 16];
		rva_seq s = {.nq = nq, .nk = nk, .q = q.data, .k = k.data, .v = v.data, .out = want,
		             .q_dtype = RVA_BF16, .k_dtype = RVA_F16, .v_dtype = RVA_BF16,
		             .out_dtype = RVA_F16};
		rva_batch b = {.count = 1, .seqs = &s};
		cr_assert_eq(rva_compute_batch(att, &b, NULL, NULL), RVA_OK);
		s.out = out;
		long live = ref_fault_live(), failures = 0;
		for (long i = 0;; i++) {
			ref_fault_arm(i, false);
			rva_status st = rva_compute_batch(att, &b, NULL, NULL);
			bool refused = ref_fault_failed() > 0;
			ref_fault_disarm();
			cr_assert_eq(ref_fault_live(), live, "%s: allocation %ld leaked",
			             rva_mechanism_name(cfgs[m].mechanism), i);
			if (!refused) {
				cr_assert_eq(st, RVA_OK);
				break;
			}
			cr_assert_eq(st, RVA_ENOMEM, "%s: allocation %ld refused: %s",
			             rva_mechanism_name(cfgs[m].mechanism), i, rva_strerror(st));
			failures++;
		}
		cr_assert(failures > 0);
		cr_assert_eq(memcmp(out, want, sizeof out), 0);
		free_tensor(&q);
		free_tensor(&k);
		free_tensor(&v);
		rva_attention_destroy(att);
	}
	ref_fault_uninstall();
}

/* The public converter against the twins (one element at a time through fp32), and its
 * errors. */
Test(half, public_convert) {
	enum { M = 1000 };
	float x[M], back[M];
	uint16_t b[M], f[M], want[M], got[M];
	for (int i = 0; i < M; i++)
		x[i] = (float)((i * 2654435761u) % 100003u) * 0x1p-12f - 12.0f;
	x[0] = NAN;
	x[1] = INFINITY;
	x[2] = 0x1p-130f;
	cr_assert_eq(rva_convert(RVA_BF16, b, RVA_F32, x, M), RVA_OK);
	cr_assert_eq(rva_convert(RVA_F16, f, RVA_F32, x, M), RVA_OK);
	for (int i = 1; i < M; i++) { /* x[0] is NaN: checked as NaN below */
		cr_assert_eq(b[i], rva__f32_to_bf16(x[i]), "bf16 %d", i);
		cr_assert_eq(f[i], rva__f32_to_f16(x[i]), "f16 %d", i);
	}
	cr_assert(isnan(rva__bf16_to_f32(b[0])) && isnan(rva__f16_to_f32(f[0])));
	/* widening is exact */
	cr_assert_eq(rva_convert(RVA_F32, back, RVA_BF16, b, M), RVA_OK);
	for (int i = 1; i < M; i++)
		cr_assert_eq(f2u(back[i]), f2u(rva__bf16_to_f32(b[i])));
	/* bf16 -> f16 = through fp32, in blocks past the converter's 256 */
	cr_assert_eq(rva_convert(RVA_F16, got, RVA_BF16, b, M), RVA_OK);
	for (int i = 0; i < M; i++)
		want[i] = rva__f32_to_f16(rva__bf16_to_f32(b[i]));
	for (int i = 1; i < M; i++)
		cr_assert_eq(got[i], want[i], "bf16->f16 %d", i);
	/* the same type copies the bits; in place is allowed */
	cr_assert_eq(rva_convert(RVA_F16, got, RVA_F16, f, M), RVA_OK);
	cr_assert_eq(memcmp(got, f, sizeof got), 0);
	cr_assert_eq(rva_convert(RVA_F16, got, RVA_F16, got, M), RVA_OK);
	cr_assert_eq(rva_convert(RVA_F16, NULL, RVA_F32, NULL, 0), RVA_OK);
	cr_assert_eq(rva_convert(RVA_F16, NULL, RVA_F32, x, 1), RVA_ENULL);
	cr_assert_eq(rva_convert(RVA_F16, got, RVA_F32, NULL, 1), RVA_ENULL);
	cr_assert_eq(rva_convert((rva_dtype)3, got, RVA_F32, x, 1), RVA_EINVAL);
	cr_assert_eq(rva_convert(RVA_F16, got, (rva_dtype)-1, x, 1), RVA_EINVAL);
	cr_assert(strstr(rva_last_error(), "not an rva_dtype") != NULL);
}

/*
 * Prefill tiles on vdpbf16ps (bf16 K and V; rva__smh_scores_bf16, rva__smh_pv_bf16, below)
 * and decode over half K/V read in place (softmax_half.h): the software-pipelined step of
 * rva__sm_decode_step (scores of the current block, P.V of the previous one, row by row)
 * with bf16/fp16 rows widened in registers on load, so the step streams the half bytes
 * and nothing else. AVX-512 only (bf16 widening is a shift; fp16 uses vcvtph2ps); other
 * CPUs convert blocks into scratch first (the same numbers: widening is exact and the
 * products and sums are the fp32 ones, in the same order).
 */
#include "attention/decode_rows.h"
#include "attention/softmax_half.h"
#include "attention/softmax_kernels.h"
#include "core/internal.h"
#include "kernels/vexp.h"

#if defined(__x86_64__)
#define STEP_ARGS kc, ks, ncur, vp, vs, nprev, q, qs, nq, H, G, D, scale, sc_cur, sc_prev, kb, o
#define STEP_D(KT, VT)                                                                     \
	switch (D) {                                                                           \
	case 64: dr_step(STEP_ARGS, KT, VT, 64); return;                                       \
	case 128: dr_step(STEP_ARGS, KT, VT, 128); return;                                     \
	default: dr_step(STEP_ARGS, KT, VT, 0); return;                                        \
	}

static RVA__TARGET_AVX512 void step_avx512(rva_dtype kt, const void *kc, size_t ks,
                                           size_t ncur, rva_dtype vt, const void *vp,
                                           size_t vs, size_t nprev, const float *q,
                                           size_t qs, size_t nq, size_t H, size_t G,
                                           size_t D, float scale, float *sc_cur,
                                           const float *sc_prev, size_t kb, float *o) {
	/* the common pairs get their own code (decode_rows.h); mixed pairs the runtime D */
	if (kt == RVA_BF16 && vt == RVA_BF16) {
		STEP_D(RVA_BF16, RVA_BF16)
	} else if (kt == RVA_F16 && vt == RVA_F16) {
		STEP_D(RVA_F16, RVA_F16)
	}
	const rva_dtype K = kt, V = vt;
	if (K == RVA_F32 && V == RVA_BF16)
		dr_step(STEP_ARGS, RVA_F32, RVA_BF16, 0);
	else if (K == RVA_F32 && V == RVA_F16)
		dr_step(STEP_ARGS, RVA_F32, RVA_F16, 0);
	else if (K == RVA_BF16 && V == RVA_F32)
		dr_step(STEP_ARGS, RVA_BF16, RVA_F32, 0);
	else if (K == RVA_F16 && V == RVA_F32)
		dr_step(STEP_ARGS, RVA_F16, RVA_F32, 0);
	else if (K == RVA_BF16 && V == RVA_F16)
		dr_step(STEP_ARGS, RVA_BF16, RVA_F16, 0);
	else
		dr_step(STEP_ARGS, RVA_F16, RVA_BF16, 0);
}
#undef STEP_D
#undef STEP_ARGS
#endif

void rva__smh_decode_step(const rva_seq *seq, size_t kr, size_t ncur, size_t vr, size_t nprev,
                          size_t kvd, const float *q, size_t qs, size_t nq, size_t H,
                          size_t G, size_t D, float scale, float *sc_cur,
                          const float *sc_prev, size_t kb, float *o, float *kbuf,
                          float *vbuf) {
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512 &&
	    (seq->k_dtype != RVA_F32 || seq->v_dtype != RVA_F32)) {
		step_avx512(seq->k_dtype, rva__elem_at(seq->k, seq->k_dtype, kr * seq->k_stride),
		            seq->k_stride, ncur, seq->v_dtype,
		            rva__elem_at(seq->v, seq->v_dtype, vr * seq->v_stride), seq->v_stride,
		            nprev, q, qs, nq, H, G, D, scale, sc_cur, sc_prev, kb, o);
		return;
	}
#endif
	size_t ks, vs;
	const float *kc = rva__smh_operand(seq->k_dtype, seq->k, seq->k_stride, kr * seq->k_stride,
	                                   ncur, kvd, false, kbuf, &ks);
	const float *vp = rva__smh_operand(seq->v_dtype, seq->v, seq->v_stride, vr * seq->v_stride,
	                                   nprev, kvd, false, vbuf, &vs);
	rva__sm_decode_step(kc, ks, ncur, vp, vs, nprev, q, qs, nq, H, G, D, scale, sc_cur, sc_prev,
	                    kb, o);
}

/* ---- prefill tiles with vdpbf16ps (bf16 K and V, fused backend) ------------------------ */

bool rva__smh_bf16_tiles(const rva_seq *seq) {
	return seq->k_dtype == RVA_BF16 && seq->v_dtype == RVA_BF16 && rva__half_avx512bf16();
}

void rva__smh_pack_q_bf16(const float *q, size_t qs, size_t br, size_t brp, size_t D,
                          uint32_t *qp) {
	size_t D2 = (D + 1) / 2;
	for (size_t i = 0; i < br; i++) {
		const float *qi = q + i * qs;
		/* q holds bf16 values: a pair word is the two high halves (no rounding left) */
		for (size_t d2 = 0; d2 < D2; d2++) {
			uint32_t lo, hi = 0;
			memcpy(&lo, qi + 2 * d2, 4);
			if (2 * d2 + 1 < D)
				memcpy(&hi, qi + 2 * d2 + 1, 4);
			qp[d2 * brp + i] = lo >> 16 | (hi & 0xFFFF0000u);
		}
	}
	for (size_t d2 = 0; d2 < D2; d2++)
		for (size_t i = br; i < brp; i++)
			qp[d2 * brp + i] = 0;
}

size_t rva__smh_vpack_words(size_t bc, size_t D) {
	return (bc + 1) / 2 * rva__round_up(D, 16);
}

#if defined(__x86_64__)
#define RVA__TARGET_BF16 \
	__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx512bf16,fma")))

static inline RVA__TARGET_BF16 __attribute__((always_inline)) __m512
dp(__m512 acc, __m512i a, __m512i b) {
	return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

/* JR key rows x (16 * NV) query lanes of St, JR <= 6, NV <= 4 (24 accumulators; per pair
 * of d: NV query loads and JR key-pair broadcasts for JR * NV vdpbf16ps). */
static inline RVA__TARGET_BF16 __attribute__((always_inline)) void
scores_block_bf16(const uint16_t *k, size_t ks, const uint32_t *qp, size_t brp, size_t D,
                  __m512 sc, float *st, const int JR, const int NV) {
	__m512 acc[6][4];
	for (int r = 0; r < JR; r++)
		for (int v = 0; v < NV; v++)
			acc[r][v] = _mm512_setzero_ps();
	size_t D2 = D / 2;
	for (size_t d2 = 0; d2 < D2; d2++) {
		__m512i a[4];
		for (int v = 0; v < NV; v++)
			a[v] = _mm512_load_si512(qp + d2 * brp + 16 * v);
		for (int r = 0; r < JR; r++) {
			uint32_t w;
			memcpy(&w, k + (size_t)r * ks + 2 * d2, 4);
			__m512i b = _mm512_set1_epi32((int)w);
			for (int v = 0; v < NV; v++)
				acc[r][v] = dp(acc[r][v], a[v], b);
		}
	}
	if (D & 1) { /* the last element pairs with 0 (Q's pair word holds 0 there too) */
		__m512i a[4];
		for (int v = 0; v < NV; v++)
			a[v] = _mm512_load_si512(qp + D2 * brp + 16 * v);
		for (int r = 0; r < JR; r++) {
			__m512i b = _mm512_set1_epi32((int)k[(size_t)r * ks + D - 1]);
			for (int v = 0; v < NV; v++)
				acc[r][v] = dp(acc[r][v], a[v], b);
		}
	}
	for (int r = 0; r < JR; r++)
		for (int v = 0; v < NV; v++)
			_mm512_store_ps(st + (size_t)r * brp + 16 * v, _mm512_mul_ps(acc[r][v], sc));
}

/* Blocks of 6 key rows, the last one exactly as long as what is left (4, 2, 1 rows). */
#define SCORES_NV(NVv)                                                                     \
	for (size_t j0 = 0; j0 < nk;) {                                                        \
		size_t left = nk - j0, jr = left >= 6 ? 6 : left >= 4 ? 4 : left >= 2 ? 2 : 1;     \
		const uint16_t *kb = k + j0 * ks;                                                  \
		float *sb = st + j0 * brp + i0;                                                    \
		if (jr == 6)                                                                       \
			scores_block_bf16(kb, ks, qp + i0, brp, D, sc, sb, 6, NVv);                    \
		else if (jr == 4)                                                                  \
			scores_block_bf16(kb, ks, qp + i0, brp, D, sc, sb, 4, NVv);                    \
		else if (jr == 2)                                                                  \
			scores_block_bf16(kb, ks, qp + i0, brp, D, sc, sb, 2, NVv);                    \
		else                                                                               \
			scores_block_bf16(kb, ks, qp + i0, brp, D, sc, sb, 1, NVv);                    \
		j0 += jr;                                                                          \
	}

static RVA__TARGET_BF16 void scores_bf16(const uint16_t *k, size_t ks, size_t nk,
                                         const uint32_t *qp, size_t brp, size_t D,
                                         float scale, float *st) {
	__m512 sc = _mm512_set1_ps(scale);
	for (size_t i0 = 0; i0 < brp; i0 += 64) {
		switch ((brp - i0) >= 64 ? 4 : (brp - i0) / 16) {
		case 4: SCORES_NV(4) break;
		case 3: SCORES_NV(3) break;
		case 2: SCORES_NV(2) break;
		default: SCORES_NV(1) break;
		}
	}
}
#undef SCORES_NV

/* V rows [0, nk) (stride vs) into pair-interleaved words: vp[j2 * Dp + d] = the pair
 * (V[2 j2][d], V[2 j2 + 1][d]) (0 past nk and past D), Dp = D rounded up to 16. Once per
 * tile, where interleaving in the product loop cost a permute per vector per key pair
 * per row block. */
static RVA__TARGET_BF16 void pack_v_bf16(const uint16_t *v, size_t vs, size_t nk, size_t D,
                                         uint32_t *vp) {
	size_t Dp = rva__round_up(D, 16), n2 = (nk + 1) / 2;
	for (size_t j2 = 0; j2 < n2; j2++) {
		const uint16_t *a = v + 2 * j2 * vs;
		bool has_b = 2 * j2 + 1 < nk;
		const uint16_t *b = has_b ? a + vs : a;
		uint32_t *row = vp + j2 * Dp;
		for (size_t d = 0; d < Dp; d += 16) {
			__mmask16 mk = rva__lanes16(D > d ? D - d : 0);
			__m512i xa = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, a + d));
			__m512i xb = has_b ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, b + d))
			                   : _mm512_setzero_si512();
			_mm512_store_si512(row + d, _mm512_or_si512(xa, _mm512_slli_epi32(xb, 16)));
		}
	}
}

/* P (fp32, key-major, brp lanes) rounded to bf16 (nearest even; vdpbf16ps reads a
 * subnormal as 0 in any case) and paired by keys: pp[j2 * brp + i] = (P[2 j2][i],
 * P[2 j2 + 1][i]). */
static RVA__TARGET_BF16 void pack_p_bf16(const float *st, size_t brp, size_t nk,
                                         uint32_t *pp) {
	size_t n2 = (nk + 1) / 2;
	for (size_t j2 = 0; j2 < n2; j2++) {
		const float *a = st + 2 * j2 * brp;
		bool has_b = 2 * j2 + 1 < nk;
		for (size_t i = 0; i < brp; i += 16) {
			__m512i lo = _mm512_cvtepu16_epi32(
				(__m256i)_mm512_cvtneps_pbh(_mm512_load_ps(a + i)));
			__m512i hi = has_b ? _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(
			                         _mm512_load_ps(a + brp + i)))
			                   : _mm512_setzero_si512();
			_mm512_store_si512(pp + j2 * brp + i, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
		}
	}
}

/* O rows [0, rows) x columns [0, dcols) (NV vectors) += sum over key pairs; MR x NV <= 24
 * accumulators, per key pair NV loads of packed V and MR broadcasts of P pairs. */
static inline RVA__TARGET_BF16 __attribute__((always_inline)) void
pv_block_bf16(const uint32_t *pp, size_t brp, size_t n2, const uint32_t *vp, size_t Dp,
              size_t rows, size_t dcols, float *o, size_t D, const int MR, const int NV) {
	__m512 acc[12][4];
	for (int r = 0; r < MR; r++)
		for (int c = 0; c < NV; c++)
			acc[r][c] = _mm512_setzero_ps();
	for (size_t j2 = 0; j2 < n2; j2++) {
		__m512i vv[4];
		for (int c = 0; c < NV; c++)
			vv[c] = _mm512_load_si512(vp + j2 * Dp + 16 * c);
		const uint32_t *pj = pp + j2 * brp;
		for (int r = 0; r < MR; r++) {
			__m512i b = _mm512_set1_epi32((int)pj[r]);
			for (int c = 0; c < NV; c++)
				acc[r][c] = dp(acc[r][c], vv[c], b);
		}
	}
	for (int r = 0; r < MR; r++) {
		if ((size_t)r >= rows)
			break;
		float *orow = o + (size_t)r * D;
		for (int c = 0; c < NV; c++) {
			__mmask16 mk = rva__lanes16(dcols - 16 * (size_t)c);
			_mm512_mask_storeu_ps(orow + 16 * c, mk,
			                      _mm512_add_ps(_mm512_maskz_loadu_ps(mk, orow + 16 * c),
			                                    acc[r][c]));
		}
	}
}

/* Row blocks of MRv query rows; the last block takes the 4, 2 or 1-row variant that covers
 * what is left. */
#define PV_CASE(NVv, MRv)                                                                  \
	case NVv:                                                                              \
		for (size_t i0 = 0; i0 < br; i0 += MRv) {                                          \
			size_t rows = rva__min(MRv, br - i0);                                          \
			const uint32_t *pb = pp + i0;                                                  \
			const uint32_t *vb = vp + d0;                                                  \
			float *ob = o + i0 * D + d0;                                                   \
			if (rows == 1)                                                                 \
				pv_block_bf16(pb, brp, n2, vb, Dp, 1, dc, ob, D, 1, NVv);                 \
			else if (rows == 2 && MRv > 2)                                                 \
				pv_block_bf16(pb, brp, n2, vb, Dp, 2, dc, ob, D, 2, NVv);                 \
			else if (rows <= 4 && MRv > 4)                                                 \
				pv_block_bf16(pb, brp, n2, vb, Dp, rows, dc, ob, D, 4, NVv);              \
			else                                                                           \
				pv_block_bf16(pb, brp, n2, vb, Dp, rows, dc, ob, D, MRv, NVv);            \
		}                                                                                  \
		break;

static RVA__TARGET_BF16 void pv_bf16(const float *st, size_t brp, size_t nk, const uint16_t *v,
                                     size_t vs, size_t br, size_t D, float *o, uint32_t *pp,
                                     uint32_t *vp) {
	size_t Dp = rva__round_up(D, 16), n2 = (nk + 1) / 2;
	pack_p_bf16(st, brp, nk, pp);
	pack_v_bf16(v, vs, nk, D, vp);
	for (size_t d0 = 0; d0 < D; d0 += 64) {
		size_t dc = rva__min(64, D - d0);
		switch (rva__div_up(dc, 16)) {
			PV_CASE(1, 12)
			PV_CASE(2, 12)
			PV_CASE(3, 8)
			PV_CASE(4, 6)
		default: break;
		}
	}
}
#undef PV_CASE
#endif

void rva__smh_scores_bf16(const void *k, size_t ks, size_t nk, const uint32_t *qp, size_t brp,
                          size_t D, float scale, float *st) {
#if defined(__x86_64__)
	scores_bf16(k, ks, nk, qp, brp, D, scale, st);
#else
	(void)k; (void)ks; (void)nk; (void)qp; (void)brp; (void)D; (void)scale; (void)st;
#endif
}

void rva__smh_pv_bf16(const float *st, size_t brp, size_t nk, const void *v, size_t vs,
                      size_t br, size_t D, float *o, uint32_t *pp, uint32_t *vp) {
#if defined(__x86_64__)
	pv_bf16(st, brp, nk, v, vs, br, D, o, pp, vp);
#else
	(void)st; (void)brp; (void)nk; (void)v; (void)vs; (void)br; (void)D; (void)o; (void)pp;
	(void)vp;
#endif
}

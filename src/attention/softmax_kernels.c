/*
 * Inner kernels of the softmax tile loop (see softmax_kernels.h for the layout).
 * AVX-512 versions are compiled with target attributes and picked at run time; the
 * portable versions are the reference twins (RVATTN_SIMD=scalar forces them).
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "attention/decode_rows.h"
#include "kernels/lanes16.h"
#include "attention/softmax_kernels.h"
#include "core/internal.h"
#include "kernels/env.h"
#include "kernels/transpose16.h"
#include "kernels/vexp.h"
#include "kernels/vtanh.h"

static bool fused = false, decode_kernels = true;

static pthread_once_t fused_once = PTHREAD_ONCE_INIT;

static void pick_backend(void) {
	/* RVATTN_ATTN_KERNEL=blis forces the BLIS loop; fused (or auto) needs AVX-512, and
	 * rva_env_check() says when it is not available. */
	bool avx512 = rva__simd_level() == RVA__SIMD_AVX512;
	bool blis = rva__env_attn_get(NULL) == RVA__ENV_ATTN_BLIS;
	fused = avx512 && !blis;
	/* The decode kernels have their own portable twins (RVATTN_SIMD=scalar); only the
	 * BLIS switch sends few-query work to the tile loop. */
	decode_kernels = !blis;
}

bool rva__sm_use_fused(void) {
	pthread_once(&fused_once, pick_backend);
	return fused;
}

bool rva__sm_use_decode(void) {
	pthread_once(&fused_once, pick_backend);
	return decode_kernels;
}

#if defined(__x86_64__)
/* rva__sm_pack_qt in 16 x 16 blocks: 16 query rows (16 floats of each) loaded, scaled,
 * transposed in registers and stored as 16 lanes of 16 rows of Qt (the scalar loop's
 * products, in another order: the same bits). */
static RVA__TARGET_AVX512 void pack_qt_avx512(const float *q, size_t qs, size_t br, size_t brp,
                                              size_t D, float scale, float *qt) {
	const __m512 vs = _mm512_set1_ps(scale);
	for (size_t i0 = 0; i0 < brp; i0 += 16)
		for (size_t d0 = 0; d0 < D; d0 += 16) {
			size_t nd = D - d0 < 16 ? D - d0 : 16;
			__mmask16 dm = rva__lanes16(nd);
			__m512 r[16];
			for (size_t i = 0; i < 16; i++)
				r[i] = i0 + i < br ? _mm512_mul_ps(_mm512_maskz_loadu_ps(dm, q + (i0 + i) * qs + d0), vs)
				                   : _mm512_setzero_ps();
			rva__transpose16(r);
			for (size_t d = 0; d < nd; d++)
				_mm512_store_ps(qt + (d0 + d) * brp + i0, r[d]);
		}
}
#endif

void rva__sm_pack_qt(const float *q, size_t qs, size_t br, size_t brp, size_t D, float scale,
                     float *qt) {
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512) {
		pack_qt_avx512(q, qs, br, brp, D, scale, qt);
		return;
	}
#endif
	for (size_t d = 0; d < D; d++) {
		float *row = qt + d * brp;
		for (size_t i = 0; i < br; i++)
			row[i] = scale * q[i * qs + d];
		for (size_t i = br; i < brp; i++)
			row[i] = 0.0f;
	}
}

/* ---- portable twins ---------------------------------------------------------------- */

static bool online_softmax_ref(float *st, size_t brp, size_t nk, float *m, float *l,
                               float *alpha) {
	bool rescale = false;
	for (size_t i = 0; i < brp; i++) {
		float mt = m[i];
		for (size_t j = 0; j < nk; j++)
			mt = fmaxf(mt, st[j * brp + i]);
		float ms = mt == -INFINITY ? 0.0f : mt;
		float a = expf(m[i] - ms), sum = 0.0f;
		for (size_t j = 0; j < nk; j++) {
			float p = expf(st[j * brp + i] - ms);
			st[j * brp + i] = p;
			sum += p;
		}
		l[i] = a * l[i] + sum;
		m[i] = mt;
		alpha[i] = a;
		rescale |= a != 1.0f;
	}
	return rescale;
}

static void rescale_ref(float *o, size_t br, size_t D, const float *alpha) {
	for (size_t i = 0; i < br; i++)
		if (alpha[i] != 1.0f)
			for (size_t d = 0; d < D; d++)
				o[i * D + d] *= alpha[i];
}

static void decode_scores_ref(const float *k, size_t ks, size_t nkb, const float *q,
                              size_t qs, size_t nq, size_t H, size_t G, size_t D, float scale,
                              float *sc, size_t kb) {
	for (size_t j = 0; j < nkb; j++)
		for (size_t h = 0; h < H; h++) {
			const float *kj = k + j * ks + (h / G) * D;
			for (size_t i = 0; i < nq; i++) {
				const float *qi = q + i * qs + h * D;
				float acc = 0.0f;
				for (size_t d = 0; d < D; d++)
					acc += qi[d] * kj[d];
				sc[(h * nq + i) * kb + j] = scale * acc;
			}
		}
}

static void decode_pv_ref(const float *v, size_t vs, size_t nkb, const float *p, size_t nq,
                          size_t H, size_t G, size_t D, size_t kb, float *o) {
	for (size_t j = 0; j < nkb; j++)
		for (size_t h = 0; h < H; h++) {
			const float *vj = v + j * vs + (h / G) * D;
			for (size_t i = 0; i < nq; i++) {
				float pj = p[(h * nq + i) * kb + j];
				float *oi = o + (h * nq + i) * D;
				for (size_t d = 0; d < D; d++)
					oi[d] += pj * vj[d];
			}
		}
}

#if defined(__x86_64__)
/* ---- AVX-512 ------------------------------------------------------------------------ */

/* JR key rows x (16 * NV) query lanes of scores, JR <= 6, NV <= 4: 24 accumulators, and per
 * d NV query vectors + JR key broadcasts (10 loads per 24 FMAs at 6 x 4). With NV = 4 a
 * 64-row query tile takes its K tile in one walk. The cache lines of the next block's key
 * rows (npf rows from pf at stride ks) are prefetched as d advances: key rows of
 * one head lie a head-row apart, so every row starts a new stream (often a new page),
 * which the hardware prefetchers do not foresee. With `cap` the softcap is applied to the
 * accumulators before they are stored (vtanh.h: the bits of the separate pass). */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) void
scores_block(const float *k, size_t ks, const float *pf, int npf, const float *qt, size_t brp,
             size_t D, float *st, const rva__softcap512_k *cap, const int JR, const int NV) {
	__m512 acc[6][4];
	for (int r = 0; r < JR; r++)
		for (int v = 0; v < NV; v++)
			acc[r][v] = _mm512_setzero_ps();
	for (size_t d0 = 0; d0 < D; d0 += 16) {
		for (int r = 0; r < npf; r++)
				_mm_prefetch((const char *)(pf + (size_t)r * ks + d0), _MM_HINT_T0);
		size_t d1 = d0 + 16 < D ? d0 + 16 : D;
		for (size_t d = d0; d < d1; d++) {
			__m512 a[4];
			for (int v = 0; v < NV; v++)
				a[v] = _mm512_load_ps(qt + d * brp + 16 * v);
			for (int r = 0; r < JR; r++) {
				__m512 b = _mm512_set1_ps(k[(size_t)r * ks + d]);
				for (int v = 0; v < NV; v++)
					acc[r][v] = _mm512_fmadd_ps(b, a[v], acc[r][v]);
			}
		}
	}
	if (cap)
		for (int r = 0; r < JR; r++)
			for (int v = 0; v < NV; v++)
				acc[r][v] = rva__softcap512(acc[r][v], *cap);
	for (int r = 0; r < JR; r++)
		for (int v = 0; v < NV; v++)
			_mm512_store_ps(st + (size_t)r * brp + 16 * v, acc[r][v]);
}

/* Blocks of 6 key rows over the tile, the last block exactly as long as what is left
 * (4, 2 and 1-row variants: no padding FMAs). */
#define SCORES_NV(NVv)                                                                     \
	for (size_t j0 = 0; j0 < nk;) {                                                        \
		size_t left = nk - j0, jr = left >= 6 ? 6 : left >= 4 ? 4 : left >= 2 ? 2 : 1;     \
		const float *kb = k + j0 * ks;                                                     \
		int npf = (int)rva__min(6, nk - j0 - jr);                                          \
		/* the next block's rows exist only when npf > 0 (a row stride may be huge when \
		 * nk is 1: no pointer is formed past the last row) */                             \
		const float *pf = npf > 0 ? kb + jr * ks : kb;                                     \
		float *sb = st + j0 * brp + i0;                                                    \
		if (jr == 6)                                                                       \
			scores_block(kb, ks, pf, npf, qt + i0, brp, D, sb, cap, 6, NVv);                    \
		else if (jr == 4)                                                                  \
			scores_block(kb, ks, pf, npf, qt + i0, brp, D, sb, cap, 4, NVv);                    \
		else if (jr == 2)                                                                  \
			scores_block(kb, ks, pf, npf, qt + i0, brp, D, sb, cap, 2, NVv);                    \
		else                                                                               \
			scores_block(kb, ks, pf, npf, qt + i0, brp, D, sb, cap, 1, NVv);                    \
		j0 += jr;                                                                          \
	}

static RVA__TARGET_AVX512 void scores_fused(const float *k, size_t ks, size_t nk,
                                            const float *qt, size_t brp, size_t D,
                                            float softcap, float *st) {
	rva__softcap512_k ck = rva__softcap512_init(softcap != 0.0f ? softcap : 1.0f);
	const rva__softcap512_k *cap = softcap != 0.0f ? &ck : NULL;
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

static RVA__TARGET_AVX512 void scores_dot(const float *k, size_t ks, size_t nk,
                                          const float *q, size_t qs, size_t br, size_t brp,
                                          size_t D, float scale, float *st) {
	enum { MAXV = 8 };
	size_t nv = rva__div_up(D, 16);
	for (size_t i = 0; i < br; i++) {
		const float *qi = q + i * qs;
		for (size_t d0 = 0; d0 < D; d0 += 16 * MAXV) {
			size_t nvc = rva__min(MAXV, nv - d0 / 16);
			__m512 qv[MAXV];
			for (size_t v = 0; v < nvc; v++)
				qv[v] = _mm512_mul_ps(_mm512_maskz_loadu_ps(rva__lanes16(D - d0 - 16 * v),
				                                            qi + d0 + 16 * v),
				                      _mm512_set1_ps(scale));
			for (size_t j = 0; j < nk; j++) {
				const float *kj = k + j * ks + d0;
				__m512 acc = _mm512_setzero_ps();
				for (size_t v = 0; v < nvc; v++)
					acc = _mm512_fmadd_ps(
						_mm512_maskz_loadu_ps(rva__lanes16(D - d0 - 16 * v), kj + 16 * v),
						qv[v], acc);
				float s = _mm512_reduce_add_ps(acc);
				st[j * brp + i] = d0 == 0 ? s : st[j * brp + i] + s;
			}
		}
	}
	for (size_t j = 0; j < nk; j++)
		for (size_t i = br; i < brp; i++)
			st[j * brp + i] = 0.0f;
}

/* O rows [i0, i0+MR) x D columns [d0, d0 + 16*NV) += sum_j P[j][i] V[j][d]. */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) void
pv_block(const float *st, size_t brp, size_t nk, const float *v, size_t vs, size_t rows,
         size_t dcols, float *o, size_t D, const int MR, const int NV) {
	__m512 acc[12][8];
	__mmask16 last = rva__lanes16(dcols - 16 * (size_t)(NV - 1));
	for (int r = 0; r < MR; r++)
		for (int c = 0; c < NV; c++)
			acc[r][c] = _mm512_setzero_ps();
	for (size_t j = 0; j < nk; j++) {
		__m512 vv[8];
		const float *vj = v + j * vs;
		for (int c = 0; c < NV; c++)
			vv[c] = c == NV - 1 ? _mm512_maskz_loadu_ps(last, vj + 16 * c)
			                    : _mm512_loadu_ps(vj + 16 * c);
		const float *pj = st + j * brp;
#pragma GCC unroll 12
		for (int r = 0; r < MR; r++) {
			__m512 b = _mm512_set1_ps(pj[r]);
			for (int c = 0; c < NV; c++)
				acc[r][c] = _mm512_fmadd_ps(b, vv[c], acc[r][c]);
		}
	}
	for (int r = 0; r < MR; r++) {
		if ((size_t)r >= rows)
			break;
		float *orow = o + (size_t)r * D;
		for (int c = 0; c < NV; c++) {
			__mmask16 mk = c == NV - 1 ? last : (__mmask16)0xFFFF;
			__m512 cur = _mm512_maskz_loadu_ps(mk, orow + 16 * c);
			_mm512_mask_storeu_ps(orow + 16 * c, mk, _mm512_add_ps(cur, acc[r][c]));
		}
	}
}

/* Row blocks of MRv query rows (MR x NV <= 24 accumulators); the last block runs the
 * 4, 2 or 1-row variant when that covers what is left (no padding FMAs at br = 64). */
#define PV_CASE(NVv, MRv)                                                                  \
	case NVv:                                                                              \
		for (size_t i0 = 0; i0 < br; i0 += MRv) {                                          \
			size_t rows = rva__min(MRv, br - i0);                                          \
			const float *sb = st + j0 * brp + i0;                                          \
			float *ob = o + i0 * D + d0;                                                   \
			if (rows == 1)                                                                 \
				pv_block(sb, brp, n, vc + d0, vs, 1, dc, ob, D, 1, NVv);                  \
			else if (rows == 2 && MRv > 2)                                                 \
				pv_block(sb, brp, n, vc + d0, vs, 2, dc, ob, D, 2, NVv);                  \
			else if (rows <= 4 && MRv > 4)                                                 \
				pv_block(sb, brp, n, vc + d0, vs, rows, dc, ob, D, 4, NVv);               \
			else                                                                           \
				pv_block(sb, brp, n, vc + d0, vs, rows, dc, ob, D, MRv, NVv);             \
		}                                                                                  \
		break;

/* The keys go in chunks of PV_CHUNK_FLOATS / D rows (D <= 512) that every row block walks
 * in turn, so a chunk of V (16 KiB) and its P rows stay near while they are reused, where
 * the whole tile (V rows a head-row apart, 4 KiB at G4: the rows' d-th floats share few
 * cache sets) fell out of cache between its ~11 walks. (Copying each chunk contiguous
 * first, or prefetching the next chunk, measured no faster.) The chunks depend only on D,
 * so the sums do not depend on the layout. */
enum { PV_CHUNK_FLOATS = 4096 };

static RVA__TARGET_AVX512 void pv_fused(const float *st, size_t brp, size_t nk,
                                        const float *v, size_t vs, size_t br, size_t D,
                                        float *o) {
	size_t kc = D <= PV_CHUNK_FLOATS / 8 ? PV_CHUNK_FLOATS / D : nk;
	/* Rows beyond br read padded lanes of St (valid memory, results not stored). */
	for (size_t j0 = 0; j0 < nk; j0 += kc) {
		size_t n = rva__min(kc, nk - j0);
		const float *vc = v + j0 * vs;
		for (size_t d0 = 0; d0 < D; d0 += 128) {
			size_t dc = rva__min(128, D - d0);
			switch (rva__div_up(dc, 16)) {
				PV_CASE(1, 12)
				PV_CASE(2, 12)
				PV_CASE(3, 8)
				PV_CASE(4, 6)
				PV_CASE(5, 4)
				PV_CASE(6, 4)
				PV_CASE(7, 3)
				PV_CASE(8, 3)
			default: break;
			}
		}
	}
}
#undef PV_CASE

/* exp(s - m) as 2^t, t = (s - m) * log2(e) <= 0: clamped below at -151 (2^-151 rounds to
 * 0, so exp(-inf) = 0 and scalef never sees -inf); n = round(t), r = t - n exact,
 * |r| <= 1/2, 2^r by the degree-6 polynomial of Cephes' exp2f (relative error ~2e-7);
 * s = m gives exactly 1 (a single visible key passes V through unchanged); NaN propagates.
 * 11 vector ops where the subtraction plus rva__exp512 take 15 (they share the FMA pipes
 * with the products). Folding log2(e) into one FMA, s * log2(e) - m * log2(e), saves one
 * more but leaves 2^(rounding error) instead of 1 at s = m. */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) __m512
exp_shifted(__m512 s, __m512 ms) {
	__m512 t = _mm512_mul_ps(_mm512_sub_ps(s, ms), _mm512_set1_ps(1.44269504088896341f));
	t = _mm512_max_ps(_mm512_set1_ps(-151.0f), t); /* NaN: max returns its 2nd operand */
	__m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_sub_ps(t, n);
	__m512 p = _mm512_set1_ps(1.535336188319500e-4f);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.339887440266574e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(9.618437357674640e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.550332471162809e-2f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(2.402264791363012e-1f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(6.931472028550421e-1f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(p, n);
}

/* Up to four 16-lane groups (64 query rows) per walk over the keys: four independent max and
 * sum chains per key instead of one (each lane still sums its keys in order). */
static RVA__TARGET_AVX512 bool online_softmax_avx512(float *st, size_t brp, size_t nk,
                                                     float *m, float *l, float *alpha) {
	const __m512 ninf = _mm512_set1_ps(-INFINITY), one = _mm512_set1_ps(1.0f);
	__mmask16 changed = 0;
	for (size_t i0 = 0; i0 < brp; i0 += 64) {
		size_t nv = rva__min(4, (brp - i0) / 16);
		__m512 mo[4], mt[4], msv[4], sum[4];
		for (size_t v = 0; v < nv; v++) {
			mo[v] = _mm512_load_ps(m + i0 + 16 * v);
			mt[v] = mo[v];
			sum[v] = _mm512_setzero_ps();
		}
		for (size_t j = 0; j < nk; j++)
			for (size_t v = 0; v < nv; v++)
				mt[v] = _mm512_max_ps(_mm512_load_ps(st + j * brp + i0 + 16 * v), mt[v]);
		for (size_t v = 0; v < nv; v++) {
			__m512 ms = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(mt[v], ninf, _CMP_EQ_OQ), mt[v],
			                                 _mm512_setzero_ps());
			msv[v] = ms;
			__m512 a = rva__exp512(_mm512_sub_ps(mo[v], ms));
			_mm512_store_ps(alpha + i0 + 16 * v, a);
			_mm512_store_ps(l + i0 + 16 * v,
			                _mm512_mul_ps(a, _mm512_load_ps(l + i0 + 16 * v)));
			_mm512_store_ps(m + i0 + 16 * v, mt[v]);
			changed |= _mm512_cmp_ps_mask(a, one, _CMP_NEQ_UQ);
		}
		for (size_t j = 0; j < nk; j++)
			for (size_t v = 0; v < nv; v++) {
				float *p = st + j * brp + i0 + 16 * v;
				__m512 e = exp_shifted(_mm512_load_ps(p), msv[v]);
				_mm512_store_ps(p, e);
				sum[v] = _mm512_add_ps(sum[v], e);
			}
		for (size_t v = 0; v < nv; v++)
			_mm512_store_ps(l + i0 + 16 * v, _mm512_add_ps(_mm512_load_ps(l + i0 + 16 * v), sum[v]));
	}
	return changed != 0;
}

static RVA__TARGET_AVX512 void rescale_avx512(float *o, size_t br, size_t D,
                                              const float *alpha) {
	for (size_t i = 0; i < br; i++) {
		if (alpha[i] == 1.0f)
			continue;
		__m512 a = _mm512_set1_ps(alpha[i]);
		float *row = o + i * D;
		for (size_t d = 0; d < D; d += 16) {
			__mmask16 mk = rva__lanes16(D - d);
			_mm512_mask_storeu_ps(row + d, mk,
			                      _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, row + d), a));
		}
	}
}
/* The decode step: one body for every head layout and query count (decode_rows.h says
 * why it is shaped as it is). */
static RVA__TARGET_AVX512 void decode_step_avx512(const float *kc, size_t ks, size_t ncur,
                                                  const float *vp, size_t vs, size_t nprev,
                                                  const float *q, size_t qs, size_t nq,
                                                  size_t H, size_t G, size_t D, float scale,
                                                  float *sc_cur, const float *sc_prev,
                                                  size_t kb, float *o) {
#define DR_ARGS kc, ks, ncur, vp, vs, nprev, q, qs, nq, H, G, D, scale, sc_cur, sc_prev, kb, o
	switch (D) {
	case 64: dr_step(DR_ARGS, RVA_F32, RVA_F32, 64); break;
	case 128: dr_step(DR_ARGS, RVA_F32, RVA_F32, 128); break;
	default: dr_step(DR_ARGS, RVA_F32, RVA_F32, 0); break;
	}
#undef DR_ARGS
}

/* Online softmax of every (head, query) row over the block. */
static RVA__TARGET_AVX512 void decode_softmax_avx512(size_t nkb, float *sc, size_t rows,
                                                     size_t D, size_t kb, float *m, float *l,
                                                     float *o) {
	const __m512 ninf = _mm512_set1_ps(-INFINITY);
	for (size_t r = 0; r < rows; r++) {
		float *row = sc + r * kb;
		__m512 mx = ninf;
		for (size_t j = 0; j < nkb; j += 16)
			mx = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, rva__lanes16(nkb - j), row + j), mx);
		float mt = _mm512_reduce_max_ps(mx);
		mt = m[r] > mt ? m[r] : mt;
		float ms = mt == -INFINITY ? 0.0f : mt;
		__m512 vms = _mm512_set1_ps(ms), sum = _mm512_setzero_ps();
		for (size_t j = 0; j < nkb; j += 16) {
			__mmask16 mk = rva__lanes16(nkb - j);
			__m512 e = rva__exp512(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, mk, row + j), vms));
			_mm512_mask_storeu_ps(row + j, mk, e);
			sum = _mm512_add_ps(sum, e);
		}
		float a = expf(m[r] - ms);
		l[r] = a * l[r] + _mm512_reduce_add_ps(sum);
		m[r] = mt;
		if (a != 1.0f) {
			float *orow = o + r * D;
			for (size_t d = 0; d < D; d += 16) {
				__mmask16 mk = rva__lanes16(D - d);
				_mm512_mask_storeu_ps(orow + d, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, orow + d),
				                                                  _mm512_set1_ps(a)));
			}
		}
	}
}

#endif /* __x86_64__ */

void rva__sm_decode_step(const float *kc, size_t ks, size_t ncur, const float *vp, size_t vs,
                         size_t nprev, const float *q, size_t qs, size_t nq, size_t H, size_t G,
                         size_t D, float scale, float *sc_cur, const float *sc_prev, size_t kb,
                         float *o) {
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512) {
		decode_step_avx512(kc, ks, ncur, vp, vs, nprev, q, qs, nq, H, G, D, scale, sc_cur,
		                   sc_prev, kb, o);
		return;
	}
#endif
	decode_scores_ref(kc, ks, ncur, q, qs, nq, H, G, D, scale, sc_cur, kb);
	decode_pv_ref(vp, vs, nprev, sc_prev, nq, H, G, D, kb, o);
}

static void decode_softmax_ref(float *sc, size_t nkb, size_t rows, size_t D, size_t kb,
                               float *m, float *l, float *o) {
	for (size_t r = 0; r < rows; r++) {
		float *row = sc + r * kb, mt = m[r];
		for (size_t j = 0; j < nkb; j++)
			mt = row[j] > mt ? row[j] : mt;
		float ms = mt == -INFINITY ? 0.0f : mt, sum = 0.0f;
		for (size_t j = 0; j < nkb; j++) {
			row[j] = expf(row[j] - ms);
			sum += row[j];
		}
		float a = expf(m[r] - ms);
		l[r] = a * l[r] + sum;
		m[r] = mt;
		if (a != 1.0f)
			for (size_t d = 0; d < D; d++)
				o[r * D + d] *= a;
	}
}

void rva__sm_decode_softmax(size_t nkb, float *sc, size_t rows, size_t D, size_t kb, float *m,
                            float *l, float *o) {
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512) {
		decode_softmax_avx512(nkb, sc, rows, D, kb, m, l, o);
		return;
	}
#endif
	decode_softmax_ref(sc, nkb, rows, D, kb, m, l, o);
}

void rva__sm_scores_fused(const float *k, size_t ks, size_t nk, const float *qt, size_t brp,
                          size_t D, float *st) {
	rva__sm_scores_fused_capped(k, ks, nk, qt, brp, D, 0.0f, st);
}

void rva__sm_scores_fused_capped(const float *k, size_t ks, size_t nk, const float *qt,
                                 size_t brp, size_t D, float softcap, float *st) {
#if defined(__x86_64__)
	scores_fused(k, ks, nk, qt, brp, D, softcap, st);
#else
	(void)k; (void)ks; (void)nk; (void)qt; (void)brp; (void)D; (void)softcap; (void)st;
#endif
}

void rva__sm_scores_dot(const float *k, size_t ks, size_t nk, const float *q, size_t qs,
                        size_t br, size_t brp, size_t D, float scale, float *st) {
#if defined(__x86_64__)
	scores_dot(k, ks, nk, q, qs, br, brp, D, scale, st);
#else
	(void)k; (void)ks; (void)nk; (void)q; (void)qs; (void)br; (void)brp; (void)D;
	(void)scale; (void)st;
#endif
}

void rva__sm_pv_fused(const float *st, size_t brp, size_t nk, const float *v, size_t vs,
                      size_t br, size_t D, float *o) {
#if defined(__x86_64__)
	pv_fused(st, brp, nk, v, vs, br, D, o);
#else
	(void)st; (void)brp; (void)nk; (void)v; (void)vs; (void)br; (void)D; (void)o;
#endif
}

bool rva__sm_online_softmax(float *st, size_t brp, size_t nk, float *m, float *l,
                            float *alpha) {
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512)
		return online_softmax_avx512(st, brp, nk, m, l, alpha);
#endif
	return online_softmax_ref(st, brp, nk, m, l, alpha);
}

void rva__sm_rescale(float *o, size_t br, size_t D, const float *alpha) {
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512) {
		rescale_avx512(o, br, D, alpha);
		return;
	}
#endif
	rescale_ref(o, br, D, alpha);
}

/*
 * Inner kernels of the softmax tile loop (see softmax_kernels.h for the layout).
 * AVX-512 versions are compiled with target attributes and picked at run time; the
 * portable versions are the reference twins (RVATTN_SIMD=scalar forces them).
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "attention/softmax_kernels.h"
#include "core/internal.h"
#include "kernels/vexp.h"

static bool fused = false;
static pthread_once_t fused_once = PTHREAD_ONCE_INIT;

static void pick_backend(void) {
	const char *e = getenv("RVATTN_ATTN_KERNEL");
	bool avx512 = rva__simd_level() == RVA__SIMD_AVX512;
	fused = avx512 && !(e && rva__name_eq(e, "blis"));
}

bool rva__sm_use_fused(void) {
	pthread_once(&fused_once, pick_backend);
	return fused;
}

void rva__sm_pack_qt(const float *q, size_t qs, size_t br, size_t brp, size_t D, float scale,
                     float *qt) {
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

/* 12 key rows x (16 * NV) query lanes of scores; rows beyond nrows repeat the last row
 * and are not stored. */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) void
scores_block(const float *k, size_t ks, size_t nrows, const float *qt, size_t brp, size_t D,
             float *st, const int NV) {
	enum { JR = 12 };
	const float *kr[JR];
	for (int r = 0; r < JR; r++)
		kr[r] = k + (size_t)((size_t)r < nrows ? (size_t)r : nrows - 1) * ks;
	__m512 acc[JR][2];
	for (int r = 0; r < JR; r++)
		for (int v = 0; v < NV; v++)
			acc[r][v] = _mm512_setzero_ps();
	for (size_t d = 0; d < D; d++) {
		__m512 a0 = _mm512_load_ps(qt + d * brp);
		__m512 a1 = NV > 1 ? _mm512_load_ps(qt + d * brp + 16) : a0;
#pragma GCC unroll 12
		for (int r = 0; r < JR; r++) {
			__m512 b = _mm512_set1_ps(kr[r][d]);
			acc[r][0] = _mm512_fmadd_ps(b, a0, acc[r][0]);
			if (NV > 1)
				acc[r][1] = _mm512_fmadd_ps(b, a1, acc[r][1]);
		}
	}
	for (int r = 0; r < JR; r++) {
		if ((size_t)r >= nrows)
			break;
		for (int v = 0; v < NV; v++)
			_mm512_store_ps(st + (size_t)r * brp + 16 * v, acc[r][v]);
	}
}

static RVA__TARGET_AVX512 void scores_fused(const float *k, size_t ks, size_t nk,
                                            const float *qt, size_t brp, size_t D,
                                            float *st) {
	for (size_t i0 = 0; i0 < brp; i0 += 32) {
		bool two = brp - i0 >= 32;
		for (size_t j0 = 0; j0 < nk; j0 += 12) {
			size_t nr = rva__min(12, nk - j0);
			if (two)
				scores_block(k + j0 * ks, ks, nr, qt + i0, brp, D, st + j0 * brp + i0, 2);
			else
				scores_block(k + j0 * ks, ks, nr, qt + i0, brp, D, st + j0 * brp + i0, 1);
		}
	}
}

static inline RVA__TARGET_AVX512 __mmask16 tail_mask(size_t n) {
	return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}

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
				qv[v] = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail_mask(D - d0 - 16 * v),
				                                            qi + d0 + 16 * v),
				                      _mm512_set1_ps(scale));
			for (size_t j = 0; j < nk; j++) {
				const float *kj = k + j * ks + d0;
				__m512 acc = _mm512_setzero_ps();
				for (size_t v = 0; v < nvc; v++)
					acc = _mm512_fmadd_ps(
						_mm512_maskz_loadu_ps(tail_mask(D - d0 - 16 * v), kj + 16 * v),
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
	__mmask16 last = tail_mask(dcols - 16 * (size_t)(NV - 1));
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

/* Register blocking per number of 16-wide column vectors: MR x NV <= 24 accumulators. */
#define PV_CASE(NVv, MRv)                                                                  \
	case NVv:                                                                              \
		for (size_t i0 = 0; i0 < br; i0 += MRv)                                            \
			pv_block(st + i0, brp, nk, v + d0, vs, rva__min(MRv, br - i0), dc,             \
			         o + i0 * D + d0, D, MRv, NVv);                                        \
		break;

static RVA__TARGET_AVX512 void pv_fused(const float *st, size_t brp, size_t nk,
                                        const float *v, size_t vs, size_t br, size_t D,
                                        float *o) {
	/* Rows beyond br read padded lanes of St (valid memory, results not stored). */
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
#undef PV_CASE

static RVA__TARGET_AVX512 bool online_softmax_avx512(float *st, size_t brp, size_t nk,
                                                     float *m, float *l, float *alpha) {
	const __m512 ninf = _mm512_set1_ps(-INFINITY), one = _mm512_set1_ps(1.0f);
	__mmask16 changed = 0;
	for (size_t i = 0; i < brp; i += 16) {
		__m512 mo = _mm512_load_ps(m + i), mt = mo;
		for (size_t j = 0; j < nk; j++)
			mt = _mm512_max_ps(_mm512_load_ps(st + j * brp + i), mt);
		__m512 ms = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(mt, ninf, _CMP_EQ_OQ), mt,
		                                 _mm512_setzero_ps());
		__m512 a = rva__exp512(_mm512_sub_ps(mo, ms));
		__m512 sum = _mm512_setzero_ps();
		for (size_t j = 0; j < nk; j++) {
			float *p = st + j * brp + i;
			__m512 e = rva__exp512(_mm512_sub_ps(_mm512_load_ps(p), ms));
			_mm512_store_ps(p, e);
			sum = _mm512_add_ps(sum, e);
		}
		_mm512_store_ps(l + i, _mm512_fmadd_ps(a, _mm512_load_ps(l + i), sum));
		_mm512_store_ps(m + i, mt);
		_mm512_store_ps(alpha + i, a);
		changed |= _mm512_cmp_ps_mask(a, one, _CMP_NEQ_UQ);
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
			__mmask16 mk = tail_mask(D - d);
			_mm512_mask_storeu_ps(row + d, mk,
			                      _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, row + d), a));
		}
	}
}
static inline void prefetch_row(const float *row, size_t bytes) {
	for (size_t off = 0; off < bytes; off += 64)
		_mm_prefetch((const char *)row + off, _MM_HINT_T0);
}

/* Sums of four accumulators: lane r of the result is sum(a_r), r < 4. */
static inline RVA__TARGET_AVX512 __m128 reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
	__m256 t0 = _mm256_add_ps(_mm512_castps512_ps256(a0), _mm512_extractf32x8_ps(a0, 1));
	__m256 t1 = _mm256_add_ps(_mm512_castps512_ps256(a1), _mm512_extractf32x8_ps(a1, 1));
	__m256 t2 = _mm256_add_ps(_mm512_castps512_ps256(a2), _mm512_extractf32x8_ps(a2, 1));
	__m256 t3 = _mm256_add_ps(_mm512_castps512_ps256(a3), _mm512_extractf32x8_ps(a3, 1));
	__m256 w = _mm256_hadd_ps(_mm256_hadd_ps(t0, t1), _mm256_hadd_ps(t2, t3));
	return _mm_add_ps(_mm256_castps256_ps128(w), _mm256_extractf128_ps(w, 1));
}

/* Head-outer order: the query slice stays in registers across the block's keys (the
 * block's rows were prefetched whole by the previous block). */
static RVA__TARGET_AVX512 void decode_scores_avx512(const float *k, size_t ks, size_t nkb,
                                                    size_t pf, const float *q, size_t qs,
                                                    size_t nq, size_t H, size_t G, size_t D,
                                                    float scale, float *sc, size_t kb) {
	size_t row_bytes = (H / G) * D * sizeof(float);
	__m512 vscale = _mm512_set1_ps(scale);
	for (size_t h = 0; h < H; h++) {
		const float *kh = k + (h / G) * D;
		for (size_t i = 0; i < nq; i++) {
			const float *qi = q + i * qs + h * D;
			float *out = sc + (h * nq + i) * kb;
			for (size_t d0 = 0; d0 < D; d0 += 64) {
				size_t dn = rva__min(64, D - d0);
				__mmask16 m0 = tail_mask(dn), m1 = tail_mask(dn > 16 ? dn - 16 : 0),
				          m2 = tail_mask(dn > 32 ? dn - 32 : 0),
				          m3 = tail_mask(dn > 48 ? dn - 48 : 0);
				__m512 q0 = _mm512_mul_ps(vscale, _mm512_maskz_loadu_ps(m0, qi + d0));
				__m512 q1 = _mm512_mul_ps(vscale, _mm512_maskz_loadu_ps(m1, qi + d0 + 16));
				__m512 q2 = _mm512_mul_ps(vscale, _mm512_maskz_loadu_ps(m2, qi + d0 + 32));
				__m512 q3 = _mm512_mul_ps(vscale, _mm512_maskz_loadu_ps(m3, qi + d0 + 48));
#define DOT64(kj)                                                                          \
	_mm512_fmadd_ps(_mm512_maskz_loadu_ps(m3, (kj) + 48), q3,                              \
	                _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m2, (kj) + 32), q2,              \
	                                _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, (kj) + 16),  \
	                                                q1, _mm512_mul_ps(                     \
	                                                        _mm512_maskz_loadu_ps(m0, (kj)), \
	                                                        q0))))
				size_t j = 0;
				for (; j + 4 <= nkb; j += 4) {
					if (h == 0 && i == 0 && d0 == 0)
						for (size_t t = j; t < j + 4 && t < pf; t++) /* next block */
							prefetch_row(k + (nkb + t) * ks, row_bytes);
					const float *kj = kh + j * ks + d0;
					__m128 r = reduce4(DOT64(kj), DOT64(kj + ks), DOT64(kj + 2 * ks),
					                   DOT64(kj + 3 * ks));
					if (d0 != 0)
						r = _mm_add_ps(_mm_loadu_ps(out + j), r);
					_mm_storeu_ps(out + j, r);
				}
				for (; j < nkb; j++) {
					if (h == 0 && i == 0 && d0 == 0 && j < pf)
						prefetch_row(k + (nkb + j) * ks, row_bytes);
					float r = _mm512_reduce_add_ps(DOT64(kh + j * ks + d0));
					out[j] = d0 == 0 ? r : out[j] + r;
				}
#undef DOT64
			}
		}
	}
}

/* Online softmax of every (head, query) row over the block, then P.V with the output
 * row in registers across the block's keys. */
static RVA__TARGET_AVX512 void decode_softmax_pv_avx512(const float *v, size_t vs, size_t nkb,
                                                        size_t pf, float *sc, size_t nq,
                                                        size_t H, size_t G, size_t D,
                                                        size_t kb, float *m, float *l,
                                                        float *o) {
	(void)pf;
	const __m512 ninf = _mm512_set1_ps(-INFINITY);
	for (size_t r = 0; r < H * nq; r++) {
		float *row = sc + r * kb;
		__m512 mx = ninf;
		for (size_t j = 0; j < nkb; j += 16)
			mx = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, tail_mask(nkb - j), row + j), mx);
		float mt = _mm512_reduce_max_ps(mx);
		mt = m[r] > mt ? m[r] : mt;
		float ms = mt == -INFINITY ? 0.0f : mt;
		__m512 vms = _mm512_set1_ps(ms), sum = _mm512_setzero_ps();
		for (size_t j = 0; j < nkb; j += 16) {
			__mmask16 mk = tail_mask(nkb - j);
			__m512 e = rva__exp512(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, mk, row + j), vms));
			_mm512_mask_storeu_ps(row + j, mk, e);
			sum = _mm512_add_ps(sum, e);
		}
		float a = expf(m[r] - ms);
		l[r] = a * l[r] + _mm512_reduce_add_ps(sum);
		m[r] = mt;
		float *orow = o + r * D;
		if (a != 1.0f)
			for (size_t d = 0; d < D; d += 16) {
				__mmask16 mk = tail_mask(D - d);
				_mm512_mask_storeu_ps(orow + d, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, orow + d),
				                                                  _mm512_set1_ps(a)));
			}
	}
}

static RVA__TARGET_AVX512 void decode_pv_avx512(const float *v, size_t vs, size_t nkb,
                                                size_t pf, const float *p, size_t nq,
                                                size_t H, size_t G, size_t D, size_t kb,
                                                float *o) {
	size_t row_bytes = (H / G) * D * sizeof(float);
	for (size_t h = 0; h < H; h++) {
		const float *vh = v + (h / G) * D;
		for (size_t i = 0; i < nq; i++) {
			const float *pr = p + (h * nq + i) * kb;
			float *orow = o + (h * nq + i) * D;
			for (size_t d0 = 0; d0 < D; d0 += 64) {
				size_t dn = rva__min(64, D - d0);
				__mmask16 m0 = tail_mask(dn), m1 = tail_mask(dn > 16 ? dn - 16 : 0),
				          m2 = tail_mask(dn > 32 ? dn - 32 : 0),
				          m3 = tail_mask(dn > 48 ? dn - 48 : 0);
				__m512 o0 = _mm512_maskz_loadu_ps(m0, orow + d0);
				__m512 o1 = _mm512_maskz_loadu_ps(m1, orow + d0 + 16);
				__m512 o2 = _mm512_maskz_loadu_ps(m2, orow + d0 + 32);
				__m512 o3 = _mm512_maskz_loadu_ps(m3, orow + d0 + 48);
				for (size_t j = 0; j < nkb; j++) {
					if (h == 0 && i == 0 && d0 == 0 && j < pf)
						prefetch_row(v + (nkb + j) * vs, row_bytes);
					const float *vj = vh + j * vs + d0;
					__m512 pj = _mm512_set1_ps(pr[j]);
					o0 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m0, vj), o0);
					o1 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m1, vj + 16), o1);
					o2 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m2, vj + 32), o2);
					o3 = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(m3, vj + 48), o3);
				}
				_mm512_mask_storeu_ps(orow + d0, m0, o0);
				_mm512_mask_storeu_ps(orow + d0 + 16, m1, o1);
				_mm512_mask_storeu_ps(orow + d0 + 32, m2, o2);
				_mm512_mask_storeu_ps(orow + d0 + 48, m3, o3);
			}
		}
	}
}
#endif /* __x86_64__ */

void rva__sm_decode_scores(const float *k, size_t ks, size_t nkb, size_t pf, const float *q,
                           size_t qs, size_t nq, size_t H, size_t G, size_t D, float scale,
                           float *sc, size_t kb) {
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512) {
		decode_scores_avx512(k, ks, nkb, pf, q, qs, nq, H, G, D, scale, sc, kb);
		return;
	}
#endif
	(void)pf;
	decode_scores_ref(k, ks, nkb, q, qs, nq, H, G, D, scale, sc, kb);
}

static void decode_softmax_ref(float *sc, size_t nkb, size_t nq, size_t H, size_t D, size_t kb,
                               float *m, float *l, float *o) {
	for (size_t r = 0; r < H * nq; r++) {
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

void rva__sm_decode_softmax(const float *v, size_t vs, size_t nkb, size_t pf, float *sc,
                            size_t nq, size_t H, size_t G, size_t D, size_t kb, float *m,
                            float *l, float *o) {
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512) {
		decode_softmax_pv_avx512(v, vs, nkb, pf, sc, nq, H, G, D, kb, m, l, o);
		return;
	}
#endif
	(void)v; (void)vs; (void)pf; (void)G;
	decode_softmax_ref(sc, nkb, nq, H, D, kb, m, l, o);
}

void rva__sm_decode_pv(const float *v, size_t vs, size_t nkb, size_t pf, const float *p,
                       size_t nq, size_t H, size_t G, size_t D, size_t kb, float *o) {
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512) {
		decode_pv_avx512(v, vs, nkb, pf, p, nq, H, G, D, kb, o);
		return;
	}
#endif
	(void)pf;
	decode_pv_ref(v, vs, nkb, p, nq, H, G, D, kb, o);
}

void rva__sm_scores_fused(const float *k, size_t ks, size_t nk, const float *qt, size_t brp,
                          size_t D, float *st) {
#if defined(__x86_64__)
	scores_fused(k, ks, nk, qt, brp, D, st);
#else
	(void)k; (void)ks; (void)nk; (void)qt; (void)brp; (void)D; (void)st;
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

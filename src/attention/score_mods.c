/* Score modifiers of the softmax engine (see score_mods.h). */
#include <math.h>
#include <string.h>

#include "attention/score_mods.h"
#include "core/internal.h"
#include "kernels/lanes16.h"
#include "kernels/transpose16.h"
#include "kernels/vexp.h"
#include "kernels/vtanh.h"

/* Press et al. (arXiv:2108.12409), the reference implementation's get_slopes: for n a
 * power of two, 2^(-8 (h + 1) / n); otherwise the n' = 2^floor(log2 n) slopes of n',
 * then slopes 0, 2, 4, ... of the 2 n' list for the remaining n - n' heads. In double,
 * rounded once. */
static double default_slope(size_t h, size_t n) {
	size_t p = 1;
	while (p * 2 <= n)
		p *= 2;
	if (h < p)
		return exp2(-8.0 * (double)(h + 1) / (double)p);
	return exp2(-8.0 * (double)(2 * (h - p) + 1) / (double)(2 * p));
}

rva_status rva__alibi_slopes(size_t heads, const float *given, float **out) {
	*out = NULL;
	if (given)
		for (size_t h = 0; h < heads; h++)
			if (!isfinite(given[h]) || given[h] < 0.0f)
				return rva__fail(RVA_ERANGE, "alibi_slopes[%zu] = %g must be finite and >= 0",
				                 h, (double)given[h]);
	float *s;
	rva_status st = rva__alloc_array((void **)&s, heads, sizeof(float), "ALiBi slopes");
	if (st != RVA_OK)
		return st;
	for (size_t h = 0; h < heads; h++)
		s[h] = given ? given[h] : (float)default_slope(h, heads);
	*out = s;
	return RVA_OK;
}

/* ---- positions and the window ------------------------------------------------------ */

#define POS_CAP ((int64_t)1 << 40)

void rva__score_mods_init(rva__score_mods *m, const rva_config *c, const float *slopes) {
	*m = (rva__score_mods){0};
	m->top_left = c->causal_align == RVA_CAUSAL_TOP_LEFT;
	m->window = c->sliding_window;
	m->left = (int64_t)rva__min(c->window_left, (size_t)POS_CAP);
	m->right = (int64_t)rva__min(c->window_right, (size_t)POS_CAP);
	m->softcap = c->softcap;
	m->slopes = c->alibi ? slopes : NULL;
}

int64_t rva__score_qpos0(const rva__score_mods *m, size_t nq, size_t nk) {
	return m->top_left ? 0 : (int64_t)nk - (int64_t)nq;
}

bool rva__score_elementwise(const rva__score_mods *m, const rva_seq *seq) {
	return m->softcap != 0.0f || m->slopes || seq->bias || seq->mask;
}

rva__tile_class rva__window_classify(const rva__score_mods *m, int64_t qa, int64_t qb,
                                     int64_t ka, int64_t kb) {
	if (!m->window)
		return RVA__TILE_FULL;
	/* visible: qp - left <= kp <= qp + right */
	if (kb < qa - m->left || ka > qb + m->right)
		return RVA__TILE_NONE;
	return ka >= qb - m->left && kb <= qa + m->right ? RVA__TILE_FULL : RVA__TILE_PARTIAL;
}

rva__tile_class rva__tile_class_and(rva__tile_class a, rva__tile_class b) {
	if (a == RVA__TILE_NONE || b == RVA__TILE_NONE)
		return RVA__TILE_NONE;
	return a == RVA__TILE_FULL && b == RVA__TILE_FULL ? RVA__TILE_FULL : RVA__TILE_PARTIAL;
}

int64_t rva__window_first_key(const rva__score_mods *m, int64_t qa) {
	return m->window && qa - m->left > 0 ? qa - m->left : 0;
}

int64_t rva__window_last_key(const rva__score_mods *m, int64_t qb) {
	return m->window ? qb + m->right : INT64_MAX;
}

void rva__score_key_range(const rva__score_mods *m, bool causal, size_t nq, size_t nk,
                          size_t *klo, size_t *khi) {
	*klo = 0;
	*khi = nk;
	if (nq == 0 || nk == 0)
		return;
	int64_t qa = rva__score_qpos0(m, nq, nk), qb = qa + (int64_t)nq - 1;
	int64_t lo = rva__window_first_key(m, qa), hi = rva__window_last_key(m, qb);
	if (causal && qb < hi)
		hi = qb;
	if (hi < lo || hi < 0 || lo >= (int64_t)nk) {
		*klo = *khi = 0;
		return;
	}
	*klo = (size_t)lo;
	*khi = hi >= (int64_t)nk - 1 ? nk : (size_t)hi + 1;
}

double rva__score_pairs_dense(const rva__score_mods *m, bool causal, size_t nq, size_t nk) {
	int64_t q0 = rva__score_qpos0(m, nq, nk);
	double pairs = 0.0;
	for (size_t i = 0; i < nq; i++) {
		int64_t qp = q0 + (int64_t)i;
		int64_t lo = rva__window_first_key(m, qp), hi = rva__window_last_key(m, qp);
		if (causal && qp < hi)
			hi = qp;
		if (hi > (int64_t)nk - 1)
			hi = (int64_t)nk - 1;
		if (hi >= lo)
			pairs += (double)(hi - lo + 1);
	}
	return pairs;
}

/* ---- per-element passes ------------------------------------------------------------- */

/* The -inf of a hidden pair; the window test of one pair. */
static inline bool window_hides(const rva__score_mods *m, int64_t qp, int64_t kp) {
	return kp < qp - m->left || kp > qp + m->right;
}

static void softcap_ref(float cap, float *x, size_t n) {
	float inv = 1.0f / cap;
	for (size_t i = 0; i < n; i++)
		x[i] = cap * tanhf(x[i] * inv);
}

#if defined(__x86_64__)
static RVA__TARGET_AVX512 void softcap_avx512(float cap, float *x, size_t n) {
	rva__softcap512_k k = rva__softcap512_init(cap);
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(x + i, rva__softcap512(_mm512_loadu_ps(x + i), k));
	if (i < n) {
		__mmask16 mk = (__mmask16)((1u << (n - i)) - 1);
		_mm512_mask_storeu_ps(x + i, mk, rva__softcap512(_mm512_maskz_loadu_ps(mk, x + i), k));
	}
}
#endif

static void softcap_run(float cap, float *x, size_t n) {
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512) {
		softcap_avx512(cap, x, n);
		return;
	}
#endif
	softcap_ref(cap, x, n);
}

void rva__score_softcap_tile(const rva__score_mods *m, float *st, size_t ld, size_t br,
                             size_t nkt) {
	if (m->softcap == 0.0f)
		return;
	for (size_t j = 0; j < nkt; j++)
		softcap_run(m->softcap, st + j * ld, br);
}

/* -inf where the window hides the pair (the tile's band edges). */
static void window_tile(const rva__score_mods *m, const int64_t *qpos, size_t br, size_t k0,
                        size_t nkt, float *st, size_t ld) {
	for (size_t j = 0; j < nkt; j++) {
		float *row = st + j * ld;
		int64_t kp = (int64_t)(k0 + j);
		for (size_t i = 0; i < br; i++)
			if (window_hides(m, qpos[i], kp))
				row[i] = -INFINITY;
	}
}

/* The portable twin of rva__score_tile (and its ALiBi where distances reach 2^24). */
static void score_tile_ref(const rva__score_mods *m, const rva_seq *seq, size_t h, size_t q0,
                           const int64_t *qpos, size_t br, size_t k0, size_t nkt, float *st,
                           size_t ld, bool window_partial) {
	if (m->slopes) {
		/* s -= slope |qp - kp|: distances as exact floats below 2^24 */
		float slope = m->slopes[h];
		for (size_t j = 0; j < nkt; j++) {
			float *row = st + j * ld;
			int64_t kp = (int64_t)(k0 + j);
			for (size_t i = 0; i < br; i++) {
				int64_t d = qpos[i] - kp;
				row[i] -= slope * (float)(d < 0 ? -d : d);
			}
		}
	}
	if (seq->bias) {
		const float *b = seq->bias + h * seq->bias_head_stride + q0 * seq->bias_stride + k0;
		size_t bs = seq->bias_stride;
		/* 16 x 16 blocks: rows of the bias are read along keys, the tile along queries */
		for (size_t i0 = 0; i0 < br; i0 += 16)
			for (size_t j0 = 0; j0 < nkt; j0 += 16) {
				size_t i1 = rva__min(br, i0 + 16), j1 = rva__min(nkt, j0 + 16);
				for (size_t i = i0; i < i1; i++)
					for (size_t j = j0; j < j1; j++)
						st[j * ld + i] += b[i * bs + j];
			}
	}
	if (window_partial && m->window)
		window_tile(m, qpos, br, k0, nkt, st, ld);
	if (seq->mask) {
		const uint8_t *mk = seq->mask + h * seq->mask_head_stride + q0 * seq->mask_stride + k0;
		size_t ms = seq->mask_stride;
		for (size_t i0 = 0; i0 < br; i0 += 16)
			for (size_t j0 = 0; j0 < nkt; j0 += 16) {
				size_t i1 = rva__min(br, i0 + 16), j1 = rva__min(nkt, j0 + 16);
				for (size_t i = i0; i < i1; i++)
					for (size_t j = j0; j < j1; j++)
						if (!mk[i * ms + j])
							st[j * ld + i] = -INFINITY;
			}
	}
}

#if defined(__x86_64__)
/*
 * ALiBi, the sequence's bias and its mask on a key-major tile in one pass, 16 query lanes x
 * 16 keys at a time: the block's bias rows (16 keys of one query row each) and mask rows
 * are loaded once and transposed in registers to the tile's key-major rows, then each key
 * row of the tile is loaded, modified and stored once. ALiBi (when `alibi`) takes
 * |qp - kp| as |(qp - k0) - j| in float, exact (the scalar loop's values) while the
 * distances stay below 2^24 (the caller checks). Lanes past br get 0 from the bias and
 * "hidden" from the mask (padded lanes, set to -inf afterwards anyway). Each bias row's
 * cache line one tile width (nkt keys) further on, where the next key tile of these
 * query rows reads, is prefetched as the block is read (each bias row is a stream of its
 * own, a matrix row apart, which the hardware prefetchers do not follow); likewise the
 * mask rows once per 64 keys. The addresses are integer arithmetic: past the matrix
 * they fetch lines nobody reads (a prefetch never faults).
 */
/* The bias rows of a 16-row block (ni of them valid, the rest zero), km's keys of each,
 * each row's next tile prefetched (nkt floats further). */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) void
bias_block(__m512 bt[16], const float *b, size_t bs, __mmask16 km, size_t nkt, size_t ni) {
	for (size_t i = 0; i < 16; i++) {
		const float *bi = b + i * bs;
		bt[i] = i < ni ? _mm512_maskz_loadu_ps(km, bi) : _mm512_setzero_ps();
		if (i < ni)
			_mm_prefetch((const char *)((uintptr_t)bi + nkt * sizeof(float)), _MM_HINT_T0);
	}
}

static inline RVA__TARGET_AVX512 __attribute__((always_inline)) void
mods_tile_t(const rva__score_mods *m, const rva_seq *seq, size_t h, size_t q0,
            const int64_t *qpos, size_t br, size_t k0, size_t nkt, float *st, size_t ld,
            const bool alibi, const bool has_bias, const bool has_mask) {
	const float *bias = has_bias ? seq->bias + h * seq->bias_head_stride + q0 * seq->bias_stride + k0 : NULL;
	const uint8_t *mask = has_mask ? seq->mask + h * seq->mask_head_stride + q0 * seq->mask_stride + k0 : NULL;
	size_t bs = seq->bias_stride, ms = seq->mask_stride;
	__m512 vs = _mm512_set1_ps(alibi ? m->slopes[h] : 0.0f);
	const __m512 ninf = _mm512_set1_ps(-INFINITY);
	for (size_t i0 = 0; i0 < br; i0 += 16) {
		size_t ni = rva__min(16, br - i0);
		__mmask16 qm = rva__lanes16(ni);
		float base[16] = {0};
		for (size_t i = 0; i < ni && alibi; i++)
			base[i] = (float)(qpos[i0 + i] - (int64_t)k0);
		__m512 vbase = _mm512_loadu_ps(base);
		for (size_t j0 = 0; j0 < nkt; j0 += 16) {
			size_t nj = rva__min(16, nkt - j0);
			__mmask16 km = rva__lanes16(nj);
			__m512 bt[16], mt[16];
			if (has_bias) {
				if (ni == 16) /* whole blocks: the constant drops the test per row */
					bias_block(bt, bias + i0 * bs + j0, bs, km, nkt, 16);
				else
					bias_block(bt, bias + i0 * bs + j0, bs, km, nkt, ni);
				rva__transpose16(bt);
			}
			if (has_mask) {
				for (size_t i = 0; i < 16; i++) {
					const uint8_t *mi = mask + (i0 + i) * ms + j0;
					mt[i] = i < ni ? _mm512_castsi512_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(km, mi)))
					               : _mm512_setzero_ps();
					if (i < ni && j0 % 64 == 0)
						_mm_prefetch((const char *)((uintptr_t)mi + nkt), _MM_HINT_T0);
				}
				rva__transpose16(mt);
			}
			for (size_t j = 0; j < nj; j++) {
				float *row = st + (j0 + j) * ld + i0;
				__m512 x = _mm512_maskz_loadu_ps(qm, row);
				if (alibi) {
					__m512 d = _mm512_abs_ps(_mm512_sub_ps(vbase, _mm512_set1_ps((float)(j0 + j))));
					x = _mm512_fnmadd_ps(vs, d, x);
				}
				if (has_bias)
					x = _mm512_add_ps(x, bt[j]);
				if (has_mask) {
					__mmask16 vis = _mm512_test_epi32_mask(_mm512_castps_si512(mt[j]),
					                                       _mm512_castps_si512(mt[j]));
					x = _mm512_mask_blend_ps(vis, ninf, x);
				}
				_mm512_mask_storeu_ps(row, qm, x);
			}
		}
	}
}

/* mods_tile_t with its three switches fixed per instantiation: each keeps only its own
 * loads in registers (the bias block and the mask block together overflow them). */
static RVA__TARGET_AVX512 void mods_tile_avx512(const rva__score_mods *m, const rva_seq *seq,
                                                size_t h, size_t q0, const int64_t *qpos,
                                                size_t br, size_t k0, size_t nkt, float *st,
                                                size_t ld, bool alibi) {
#define MODS_TILE(A, B, M) mods_tile_t(m, seq, h, q0, qpos, br, k0, nkt, st, ld, A, B, M)
	if (seq->bias && !seq->mask && !alibi)
		MODS_TILE(false, true, false);
	else if (!seq->bias && !seq->mask && alibi)
		MODS_TILE(true, false, false);
	else
		MODS_TILE(alibi, seq->bias != NULL, seq->mask != NULL);
#undef MODS_TILE
}
#endif


void rva__score_tile(const rva__score_mods *m, const rva_seq *seq, size_t h, size_t q0,
                     const int64_t *qpos, size_t br, size_t k0, size_t nkt, float *st,
                     size_t ld, bool window_partial) {
#if defined(__x86_64__)
	if ((m->slopes || seq->bias || seq->mask) && rva__simd_level() == RVA__SIMD_AVX512) {
		/* ALiBi's distances |qp - kp| within the tile below 2^24: exact floats */
		bool alibi = m->slopes && qpos[br - 1] - (int64_t)k0 < ((int64_t)1 << 24) &&
		             (int64_t)k0 - qpos[0] + (int64_t)nkt < ((int64_t)1 << 24);
		if (m->slopes && !alibi) {
			rva__score_mods ma = *m;
			rva_seq none = {0};
			ma.window = false;
			score_tile_ref(&ma, &none, h, q0, qpos, br, k0, nkt, st, ld, false);
		}
		if (alibi || seq->bias || seq->mask)
			mods_tile_avx512(m, seq, h, q0, qpos, br, k0, nkt, st, ld, alibi);
		/* the window's -inf after the mask's: both assign -inf, the order is immaterial */
		if (window_partial && m->window)
			window_tile(m, qpos, br, k0, nkt, st, ld);
		return;
	}
#endif
	score_tile_ref(m, seq, h, q0, qpos, br, k0, nkt, st, ld, window_partial);
}

void rva__score_row(const rva__score_mods *m, const rva_seq *seq, size_t h, size_t qi,
                    int64_t qp, size_t k0, size_t nkt, float *row, bool window_partial) {
	if (m->slopes) {
		float slope = m->slopes[h];
		for (size_t j = 0; j < nkt; j++) {
			int64_t d = qp - (int64_t)(k0 + j);
			row[j] -= slope * (float)(d < 0 ? -d : d);
		}
	}
	if (seq->bias) {
		const float *b = seq->bias + h * seq->bias_head_stride + qi * seq->bias_stride + k0;
		for (size_t j = 0; j < nkt; j++)
			row[j] += b[j];
	}
	if (window_partial && m->window)
		for (size_t j = 0; j < nkt; j++)
			if (window_hides(m, qp, (int64_t)(k0 + j)))
				row[j] = -INFINITY;
	if (seq->mask) {
		const uint8_t *mk = seq->mask + h * seq->mask_head_stride + qi * seq->mask_stride + k0;
		for (size_t j = 0; j < nkt; j++)
			if (!mk[j])
				row[j] = -INFINITY;
	}
}

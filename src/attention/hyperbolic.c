/*
 * Hyperbolic attention in the Poincare ball of curvature -c (c = -cfg.curvature > 0),
 * after Gulcehre et al. (arXiv:1805.09786) with the numerics of geoopt (docs/ARCHITECTURE.md, Mechanisms).
 *
 * Per query head h (kv head h / (heads / kv_heads)) on the head slices:
 *   - every q, k, v slice is projected into the ball: a point with sqrt(c)|x| >= 1 - eps
 *     is rescaled to norm (1 - eps)/sqrt(c), eps = 4e-3 (geoopt's fp32 value); others are
 *     unchanged. The projection is a per-row factor, so GEMMs run on the raw inputs.
 *   - scores s_ij = -d_c(q_i, k_j) / temperature with
 *       d_c(x, y) = (1/sqrt c) arcosh(1 + 2c|x-y|^2 / ((1 - c|x|^2)(1 - c|y|^2))),
 *     |x-y|^2 = |x|^2 + |y|^2 - 2 x.y: the dot products of a tile are one sgemm, the norms
 *     are per row. Where |x-y|^2 < 1/64 (|x|^2 + |y|^2) the difference is recomputed
 *     directly (cancellation). The arcosh argument is clamped to >= 1; arcosh(1 + x) is
 *     ln(1 + x + sqrt(x (x + 2))) with a polynomial ln vectorised for AVX-512 / AVX2
 *     (RVATTN_SIMD selects; the scalar twin computes the same polynomial).
 *   - a_ij = softmax_j(s_ij) (running max subtracted; key mask and causal: query i sits at
 *     position nk - nq + i and sees keys j <= position). A row with no visible key
 *     outputs 0.
 *   - RVA_AGG_GYROMIDPOINT (default): o_i = 1/2 (x)_c (sum_j a_ij l_j v_j /
 *     sum_j a_ij (l_j - 1)), l_j = 2/(1 - c|v_j|^2), Mobius scalar multiplication
 *     r (x)_c x = (1/sqrt c) tanh(r artanh(sqrt(c)|x|)) x/|x| (artanh argument clamped to
 *     1 - 1e-7, denominators to >= 1e-15). The ratio is homogeneous in the weights, so it
 *     runs tile by tile with the online-softmax rescaling of FlashAttention-2, memory
 *     O(tile). With AVX-512 (the softmax path's backend choice, rva__sm_use_fused) a tile
 *     runs on the fused kernels of softmax_kernels.h in their key-major layout: the dot
 *     products by rva__sm_scores_fused (projected queries packed once per task, keys read
 *     in place), distance -> arcosh -> score -> running max -> exp -> l_j weighting in
 *     one register pass (gyro_tile_avx512), the weighted values by rva__sm_pv_fused;
 *     otherwise (RVATTN_ATTN_KERNEL=blis, AVX2, scalar) one sgemm for the scores and one
 *     for the weighted values per (query tile, key tile).
 *   - RVA_AGG_FRECHET: the weighted Frechet (Karcher) mean argmin_mu sum_j a_ij
 *     d_c(mu, v_j)^2, iterated in double precision from the gyromidpoint by the
 *     convergent fixed-point scheme of Lou et al. (see frechet_iterate: the plain Karcher
 *     flow with unit step diverges for values near the boundary); it stops when the
 *     Riemannian gradient norm is < frechet_tol or after frechet_max_iter iterations.
 *     It needs every weight of a row: one row of weights (O(nk) doubles) is
 *     materialised in scratch per query.
 *   - outputs are projected like the inputs (they lie in the geodesic convex hull of the
 *     projected values already; the projection only guards fp32 rounding).
 *   - dropout (training mode, cfg.dropout > 0): each weight a_ij is kept with probability
 *     1 - dropout, from counter-based random numbers of (rt.seed, rt.step, stream,
 *     sequence, head, row, key). Both aggregations are invariant to a common scaling of
 *     the weights, so no 1/(1 - p) factor is needed; a row whose visible keys are all
 *     dropped outputs 0. rows() (MoE experts) has no stream id and uses stream 0.
 *
 * Job graph: one task per (sequence, query head, query tile of query_block rows); key
 * tiles of block_size keys; causal key tiles past the last visible key are skipped.
 */
#include <math.h>
#include <string.h>

#include "attention/attention_internal.h"
#include "attention/softmax_kernels.h"
#include "core/internal.h"
#include "kernels/gemm.h"
#include "kernels/half.h"
#include "kernels/vexp.h"

#define HYP_EPS 4e-3             /* projection margin: geoopt's value for fp32 */
#define HYP_ATANH_MAX (1.0 - 1e-7)
#define HYP_MIN_DEN 1e-15
#define HYP_NEAR (1.0f / 64.0f)  /* recompute |x-y|^2 directly below this fraction */
#define HYP_DROP_TAG 0x48595044524F50ull /* "HYPDROP" */

typedef struct hyp_state {
	double c, sqrt_c;
	double max_norm;      /* (1 - HYP_EPS) / sqrt(c) */
	float two_c;
	float score_mul;      /* 1 / (sqrt(c) * temperature) */
} hyp_state;

/* The rows one call of the kernel computes, all for one query head. */
typedef struct hyp_rows {
	const rva_seq *seq;
	size_t h;
	const uint32_t *idx;  /* row indices, or NULL for row0, row0 + 1, ... */
	const float *qrows;   /* with idx: query i's vector at qrows + i * seq->q_stride */
	size_t row0, n;       /* n <= query_block */
	float *out;           /* result row r at out + r * ostride (head slice) */
	size_t ostride;
	uint64_t drop_key;    /* dropout stream key (used when dropout > 0) */
	float dropout;        /* 0 = off */
} hyp_rows;

/* Scratch of the kernel, carved from one block (every piece 64-byte aligned). */
typedef struct hyp_scratch {
	float *q;             /* qb x hd projected query rows */
	/* per query lane (qbp = qb rounded up to 16 entries each; padded lanes see no key) */
	float *qn, *qf;       /* |q|^2, 1/(1 - c|q|^2) */
	float *mx, *den;      /* running max, running denominator */
	size_t *lim;          /* keys [0, lim) visible by causality */
	float *alpha;         /* fused path: the rescaling factors of a tile */
	float *qt, *st;       /* fused path: Qt[d][i] (hd x qbp), St[j][i] (bk x qbp, + 16) */
	float *acc;           /* qb x hd running numerator */
	float *s;             /* qb x bk scores, then weights */
	float *ka, *kn, *kf;  /* key tile: projection factor, |k|^2, 1/(1 - c|k|^2) */
	float *vw, *vl;       /* value tile: l * projection factor, l - 1 */
	double *n2;           /* squared norms of a key or value tile */
	/* Frechet only (nk entries each, and hd doubles each for the flow) */
	double *w;            /* a row of weights */
	float *va;            /* value projection factors */
	double *vn;           /* |v|^2 after projection */
	double *mu, *u;       /* the iterate, and sum_j al_j v_j */
	double *tmp;          /* hd doubles */
} hyp_scratch;

static size_t carve(unsigned char *base, size_t *off, size_t bytes, void **out) {
	size_t at = rva__round_up(*off, RVA__ALIGN);
	if (out)
		*out = base ? base + at : NULL;
	*off = at + bytes;
	return *off;
}

/* Lays out the scratch for a sequence of nk keys; returns the bytes needed. */
static size_t hyp_layout(const rva_attention *att, size_t nk, void *base, hyp_scratch *sc) {
	const rva_config *c = &att->cfg;
	size_t qb = c->query_block, bk = c->block_size, hd = att->head_dim, off = 0;
	unsigned char *b = base;
	hyp_scratch dummy;
	if (!sc)
		sc = &dummy;
	memset(sc, 0, sizeof *sc);
	size_t qbp = rva__round_up(qb, 16);
	carve(b, &off, qb * hd * sizeof(float), (void **)&sc->q);
	carve(b, &off, qbp * sizeof(float), (void **)&sc->qn);
	carve(b, &off, qbp * sizeof(float), (void **)&sc->qf);
	carve(b, &off, qbp * sizeof(float), (void **)&sc->mx);
	carve(b, &off, qbp * sizeof(float), (void **)&sc->den);
	carve(b, &off, qbp * sizeof(size_t), (void **)&sc->lim);
	carve(b, &off, qbp * sizeof(float), (void **)&sc->alpha);
	if (c->aggregation != RVA_AGG_FRECHET && rva__sm_use_fused()) {
		carve(b, &off, hd * qbp * sizeof(float), (void **)&sc->qt);
		carve(b, &off, (bk * qbp + 16) * sizeof(float), (void **)&sc->st);
	}
	carve(b, &off, qb * hd * sizeof(float), (void **)&sc->acc);
	carve(b, &off, qb * bk * sizeof(float), (void **)&sc->s);
	carve(b, &off, bk * sizeof(float), (void **)&sc->ka);
	carve(b, &off, bk * sizeof(float), (void **)&sc->kn);
	carve(b, &off, bk * sizeof(float), (void **)&sc->kf);
	carve(b, &off, bk * sizeof(float), (void **)&sc->vw);
	carve(b, &off, bk * sizeof(float), (void **)&sc->vl);
	carve(b, &off, bk * sizeof(double), (void **)&sc->n2);
	carve(b, &off, hd * sizeof(double), (void **)&sc->tmp);
	if (c->aggregation == RVA_AGG_FRECHET) {
		carve(b, &off, nk * sizeof(double), (void **)&sc->w);
		carve(b, &off, nk * sizeof(float), (void **)&sc->va);
		carve(b, &off, nk * sizeof(double), (void **)&sc->vn);
		carve(b, &off, hd * sizeof(double), (void **)&sc->mu);
		carve(b, &off, hd * sizeof(double), (void **)&sc->u);
	}
	return rva__round_up(off, RVA__ALIGN);
}

/* Squared norm of a float vector, accumulated in double (8 partial sums in a fixed
 * order: independent chains, same result whatever the caller). The AVX-512 twin keeps
 * the same 8 partial sums in one vector (the compiler may fuse its multiply-adds). */
static double norm2_scalar(const float *x, size_t n) {
	double p[8] = {0};
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (size_t l = 0; l < 8; l++)
			p[l] += (double)x[i + l] * x[i + l];
	for (; i < n; i++)
		p[0] += (double)x[i] * x[i];
	return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
}

#if defined(__x86_64__)
/* The partial sums in acc, the tail x[i..n) added to the first, reduced as above. */
static inline RVA__TARGET_AVX512 double norm2_finish(__m512d acc, const float *x, size_t i,
                                                     size_t n) {
	double p[8];
	_mm512_storeu_pd(p, acc);
	for (; i < n; i++)
		p[0] += (double)x[i] * x[i];
	return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
}

static inline RVA__TARGET_AVX512 __m512d norm2_step(__m512d acc, const float *x) {
	__m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x));
	return _mm512_add_pd(acc, _mm512_mul_pd(v, v));
}

static RVA__TARGET_AVX512 double norm2_avx512(const float *x, size_t n) {
	__m512d acc = _mm512_setzero_pd();
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		acc = norm2_step(acc, x + i);
	return norm2_finish(acc, x, i, n);
}

/* norm2 of `rows` rows (stride ld) four at a time: independent addition chains. */
static RVA__TARGET_AVX512 void norm2_rows_avx512(const float *x, size_t ld, size_t rows,
                                                 size_t n, double *out) {
	size_t r = 0;
	for (; r + 4 <= rows; r += 4) {
		const float *x0 = x + r * ld, *x1 = x0 + ld, *x2 = x1 + ld, *x3 = x2 + ld;
		__m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
		size_t i = 0;
		for (; i + 8 <= n; i += 8) {
			a0 = norm2_step(a0, x0 + i);
			a1 = norm2_step(a1, x1 + i);
			a2 = norm2_step(a2, x2 + i);
			a3 = norm2_step(a3, x3 + i);
		}
		out[r] = norm2_finish(a0, x0, i, n);
		out[r + 1] = norm2_finish(a1, x1, i, n);
		out[r + 2] = norm2_finish(a2, x2, i, n);
		out[r + 3] = norm2_finish(a3, x3, i, n);
	}
	for (; r < rows; r++)
		out[r] = norm2_avx512(x + r * ld, n);
}
#endif

static double norm2(const float *x, size_t n) {
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512)
		return norm2_avx512(x, n);
#endif
	return norm2_scalar(x, n);
}

/* out[r] = norm2(x + r * ld, n), r < rows. */
static void norm2_rows(const float *x, size_t ld, size_t rows, size_t n, double *out) {
#if defined(__x86_64__)
	if (rva__simd_level() == RVA__SIMD_AVX512) {
		norm2_rows_avx512(x, ld, rows, n, out);
		return;
	}
#endif
	for (size_t r = 0; r < rows; r++)
		out[r] = norm2_scalar(x + r * ld, n);
}

/* sum_j a[j] b[j] and max_j a[j] over n floats, 8 lanes in a fixed order. */
static float dot_f(const float *a, const float *b, size_t n) {
	float p[8] = {0};
	size_t j = 0;
	for (; j + 8 <= n; j += 8)
		for (size_t l = 0; l < 8; l++)
			p[l] += a[j + l] * b[j + l];
	for (; j < n; j++)
		p[0] += a[j] * b[j];
	return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
}

static float max_f(const float *a, size_t n) {
	float p[8];
	for (size_t l = 0; l < 8; l++)
		p[l] = -INFINITY;
	size_t j = 0;
	for (; j + 8 <= n; j += 8)
		for (size_t l = 0; l < 8; l++)
			p[l] = a[j + l] > p[l] ? a[j + l] : p[l];
	for (; j < n; j++)
		p[0] = a[j] > p[0] ? a[j] : p[0];
	for (size_t l = 1; l < 8; l++)
		p[0] = p[l] > p[0] ? p[l] : p[0];
	return p[0];
}

/* Projection factor of a point of squared norm n2 (1 = unchanged). */
static double proj_factor(const hyp_state *st, double n2) {
	double n = sqrt(n2);
	if (st->sqrt_c * n >= 1.0 - HYP_EPS)
		return st->max_norm / n;
	return 1.0;
}

/* Keys [0, lim) are visible to query row `row` (causal alignment of the last rows). */
static size_t visible_limit(const rva_attention *att, const rva_seq *s, size_t row) {
	if (!att->cfg.causal)
		return s->nk;
	/* position nk - nq + row; keys j <= position */
	if (row + s->nk < s->nq)
		return 0;
	return rva__min(s->nk, row + s->nk - s->nq + 1);
}

static inline bool dropped(const hyp_rows *r, size_t row, size_t key) {
	return rva__u01(rva__hash3(r->drop_key, row, key)) < r->dropout;
}


static double dnorm2(const double *x, size_t n) {
	double s = 0.0;
	for (size_t i = 0; i < n; i++)
		s += x[i] * x[i];
	return s;
}

/* y = r (x)_c x (y may alias x). */
static void mobius_scalar(const hyp_state *st, double r, const double *x, size_t hd,
                          double *y) {
	double n = sqrt(dnorm2(x, hd));
	double f = r; /* the limit for |x| -> 0 */
	if (n >= HYP_MIN_DEN) {
		double z = fmin(st->sqrt_c * n, HYP_ATANH_MAX);
		f = tanh(r * atanh(z)) / (st->sqrt_c * n);
	}
	for (size_t d = 0; d < hd; d++)
		y[d] = f * x[d];
}

/* Writes the point x (double) to out as floats, projected into the ball. */
static void store_point(const hyp_state *st, const double *x, size_t hd, float *out) {
	double n2 = dnorm2(x, hd);
	double f = n2 > 0.0 ? proj_factor(st, n2) : 1.0;
	for (size_t d = 0; d < hd; d++)
		out[d] = (float)(x[d] * f);
}

static void store_zero(float *out, size_t hd) {
	memset(out, 0, hd * sizeof *out);
}

static size_t row_index(const hyp_rows *r, size_t i) {
	return r->idx ? r->idx[i] : r->row0 + i;
}

/* Projects the query rows of r into sc->q with their norms and causal limits. */
static void load_queries(const rva_attention *att, const hyp_state *st, const hyp_rows *r,
                         hyp_scratch *sc) {
	size_t hd = att->head_dim;
	const rva_seq *s = r->seq;
	for (size_t i = 0; i < r->n; i++) {
		size_t row = row_index(r, i);
		const float *src = (r->qrows ? r->qrows + i * s->q_stride : RVA__F32(s->q) + row * s->q_stride) +
		                   r->h * hd;
		double n2 = norm2(src, hd);
		double f = proj_factor(st, n2);
		float *dst = sc->q + i * hd;
		for (size_t d = 0; d < hd; d++)
			dst[d] = (float)(src[d] * f);
		double qn = n2 * f * f;
		sc->qn[i] = (float)qn;
		sc->qf[i] = (float)(1.0 / fmax(1.0 - st->c * qn, HYP_MIN_DEN));
		sc->lim[i] = visible_limit(att, s, row);
	}
}

/* Per-key projection data of keys [j0, j0 + nt) of kv head kvh. */
static void load_keys(const rva_attention *att, const hyp_state *st, const rva_seq *s,
                      size_t kvh, size_t j0, size_t nt, hyp_scratch *sc) {
	size_t hd = att->head_dim;
	norm2_rows(RVA__F32(s->k) + j0 * s->k_stride + kvh * hd, s->k_stride, nt, hd, sc->n2);
	for (size_t j = 0; j < nt; j++) {
		double n2 = sc->n2[j];
		double f = proj_factor(st, n2);
		double kn = n2 * f * f;
		sc->ka[j] = (float)f;
		sc->kn[j] = (float)kn;
		sc->kf[j] = (float)(1.0 / fmax(1.0 - st->c * kn, HYP_MIN_DEN));
	}
}

/* Per-value data for the gyromidpoint: l * projection factor and l - 1. */
static void load_values(const rva_attention *att, const hyp_state *st, const rva_seq *s,
                        size_t kvh, size_t j0, size_t nt, hyp_scratch *sc) {
	size_t hd = att->head_dim;
	norm2_rows(RVA__F32(s->v) + j0 * s->v_stride + kvh * hd, s->v_stride, nt, hd, sc->n2);
	for (size_t j = 0; j < nt; j++) {
		double n2 = sc->n2[j];
		double f = proj_factor(st, n2);
		double cv = st->c * n2 * f * f;
		double den = fmax(1.0 - cv, HYP_MIN_DEN);
		sc->vw[j] = (float)(2.0 / den * f);
		sc->vl[j] = (float)((1.0 + cv) / den);
	}
}

/*
 * arcosh(1 + x) = ln(y), y = 1 + x + sqrt(x (x + 2)) >= 1. ln by the cephes logf
 * polynomial on the mantissa in [sqrt(1/2), sqrt(2)) (absolute error ~1e-7): scores only
 * enter the weights through exp(s - max), so an absolute error is what matters, and
 * ln(fl(y)) stays within one ulp of 1 of ln(y) even where y is close to 1.
 * Scalar, AVX2 and AVX-512 versions compute the same polynomial.
 */
#define HYP_LOG_POLY(P, x)                                                                \
	P(P(P(P(P(P(P(P(7.0376836292E-2f, x, -1.1514610310E-1f), x, 1.1676998740E-1f), x,     \
	                  -1.2420140846E-1f), x, 1.4249322787E-1f), x, -1.6668057665E-1f), x,   \
	      2.0000714765E-1f), x, -2.4999993993E-1f), x, 3.3333331174E-1f)
#define HYP_SQRT_HALF_X2 1.41421356f

static inline float fma_s(float a, float x, float b) {
	return a * x + b;
}

static float log_ge1(float y) {
	uint32_t bits;
	memcpy(&bits, &y, sizeof bits);
	int e = (int)(bits >> 23) - 127;
	uint32_t mb = (bits & 0x7FFFFFu) | 0x3F800000u;
	float m;
	memcpy(&m, &mb, sizeof m);
	if (m > HYP_SQRT_HALF_X2) {
		m *= 0.5f;
		e++;
	}
	float x = m - 1.0f, z = x * x, fe = (float)e;
	float r = x * z * HYP_LOG_POLY(fma_s, x);
	r += fe * -2.12194440e-4f;
	r += -0.5f * z;
	return x + r + fe * 0.693359375f;
}

/* row[j] <- mul * arcosh(1 + max(a * row[j] * kf[j], 0)), j < n: scalar. */
static void arcosh_row_scalar(float *row, const float *kf, float a, float mul, size_t n) {
	for (size_t j = 0; j < n; j++) {
		float x = a * row[j] * kf[j];
		x = x < 0.0f ? 0.0f : x;
		row[j] = mul * log_ge1(1.0f + x + sqrtf(x * (x + 2.0f)));
	}
}

#if defined(__x86_64__)
static inline RVA__TARGET_AVX512 __m512 fma512(__m512 a, __m512 x, float b) {
	return _mm512_fmadd_ps(a, x, _mm512_set1_ps(b));
}
static inline RVA__TARGET_AVX512 __m512 fma512c(float a, __m512 x, float b) {
	return _mm512_fmadd_ps(_mm512_set1_ps(a), x, _mm512_set1_ps(b));
}
#define P512(a, x, b) _Generic((a), float: fma512c, default: fma512)(a, x, b)

/* arcosh(1 + x) for x >= 0 (or NaN): the polynomial ln of log_ge1 on 16 lanes. */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) __m512 arcosh1p512(__m512 x) {
	const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
	__m512 y = _mm512_add_ps(_mm512_add_ps(one, x),
	                         _mm512_sqrt_ps(_mm512_mul_ps(x, _mm512_add_ps(x, two))));
	__m512 e = _mm512_getexp_ps(y);
	__m512 m = _mm512_getmant_ps(y, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
	__mmask16 big = _mm512_cmp_ps_mask(m, _mm512_set1_ps(HYP_SQRT_HALF_X2), _CMP_GT_OQ);
	m = _mm512_mask_mul_ps(m, big, m, _mm512_set1_ps(0.5f));
	e = _mm512_mask_add_ps(e, big, e, one);
	__m512 xm = _mm512_sub_ps(m, one), z = _mm512_mul_ps(xm, xm);
	__m512 r = _mm512_mul_ps(_mm512_mul_ps(xm, z), HYP_LOG_POLY(P512, xm));
	r = _mm512_fmadd_ps(e, _mm512_set1_ps(-2.12194440e-4f), r);
	r = _mm512_fmadd_ps(_mm512_set1_ps(-0.5f), z, r);
	r = _mm512_add_ps(xm, r);
	return _mm512_fmadd_ps(e, _mm512_set1_ps(0.693359375f), r);
}

static RVA__TARGET_AVX512 void arcosh_row_avx512(float *row, const float *kf, float a,
                                                  float mul, size_t n) {
	const __m512 va = _mm512_set1_ps(a), vmul = _mm512_set1_ps(mul);
	for (size_t j = 0; j < n; j += 16) {
		__mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1u);
		__m512 x = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + j), va),
		                         _mm512_maskz_loadu_ps(k, kf + j));
		x = _mm512_max_ps(_mm512_setzero_ps(), x); /* NaN stays NaN */
		_mm512_mask_storeu_ps(row + j, k, _mm512_mul_ps(vmul, arcosh1p512(x)));
	}
}

/*
 * The fused tile step of the gyromidpoint (key-major St[j][i], nb query lanes, keys
 * [j0, j0 + nt)), per block of 16 lanes: on entry St holds the dot products
 * q_i . k_j (projected q, raw k); in one pass over the tile in registers
 *   d2 = |q|^2 + |k|^2 - 2 ka q.k (recomputed directly for close points),
 *   s = -arcosh(1 + max(two_c qf d2 kf, 0)) / (sqrt(c) temperature), -inf where the key is
 *   not visible (causal limit or key mask), running max;
 * then alpha = exp(m_old - m_new) and p = exp(s - m_new); with `weigh`, St <- p vw_j and
 * den <- alpha den + sum_j p (l_j - 1), without it St <- p and den <- alpha den (the
 * caller drops weights and adds the sums). Returns whether any alpha differs from 1.
 */
static RVA__TARGET_AVX512 bool gyro_tile_avx512(const hyp_state *hs, hyp_scratch *sc,
                                                const float *kbase, size_t ks, size_t hd,
                                                const uint8_t *kmask, size_t j0, size_t nt,
                                                size_t nb, bool weigh) {
	const __m512 ninf = _mm512_set1_ps(-INFINITY), zero = _mm512_setzero_ps();
	const __m512 vnear = _mm512_set1_ps(HYP_NEAR), vmul = _mm512_set1_ps(-hs->score_mul);
	__mmask16 changed = 0;
	for (size_t i0 = 0; i0 < nb; i0 += 16) {
		__m512 qn = _mm512_load_ps(sc->qn + i0);
		__m512 a = _mm512_mul_ps(_mm512_set1_ps(hs->two_c), _mm512_load_ps(sc->qf + i0));
		__m512i lim_lo = _mm512_load_si512((const void *)(sc->lim + i0));
		__m512i lim_hi = _mm512_load_si512((const void *)(sc->lim + i0 + 8));
		__m512 mo = _mm512_load_ps(sc->mx + i0), mt = mo;
		for (size_t j = 0; j < nt; j++) {
			float *p = sc->st + j * nb + i0;
			__m512i key = _mm512_set1_epi64((long long)(j0 + j));
			__mmask16 vis = (__mmask16)(_mm512_cmpgt_epu64_mask(lim_lo, key) |
			                            ((unsigned)_mm512_cmpgt_epu64_mask(lim_hi, key) << 8));
			if (kmask && !kmask[j])
				vis = 0;
			if (!vis) {
				_mm512_store_ps(p, ninf);
				continue;
			}
			__m512 nsum = _mm512_add_ps(qn, _mm512_set1_ps(sc->kn[j]));
			__m512 d2 = _mm512_sub_ps(nsum, _mm512_mul_ps(_mm512_set1_ps(2.0f * sc->ka[j]),
			                                              _mm512_load_ps(p)));
			__mmask16 near = _mm512_mask_cmp_ps_mask(vis, d2, _mm512_mul_ps(vnear, nsum),
			                                         _CMP_LT_OQ);
			if (near) {
				/* close points: |q - k|^2 from the difference, not from the norms */
				float t[16];
				_mm512_storeu_ps(t, d2);
				const float *k = kbase + j * ks;
				float ka = sc->ka[j];
				for (unsigned l = 0; l < 16; l++)
					if (near >> l & 1u) {
						const float *qrow = sc->q + (i0 + l) * hd;
						float e = 0.0f;
						for (size_t d = 0; d < hd; d++) {
							float u = qrow[d] - ka * k[d];
							e += u * u;
						}
						t[l] = e;
					}
				d2 = _mm512_loadu_ps(t);
			}
			__m512 x = _mm512_mul_ps(_mm512_mul_ps(d2, a), _mm512_set1_ps(sc->kf[j]));
			x = _mm512_max_ps(zero, x); /* NaN stays NaN */
			__m512 s = _mm512_mask_blend_ps(vis, ninf, _mm512_mul_ps(vmul, arcosh1p512(x)));
			_mm512_store_ps(p, s);
			mt = _mm512_max_ps(s, mt);
		}
		__m512 ms = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(mt, ninf, _CMP_EQ_OQ), mt, zero);
		__m512 al = rva__exp512(_mm512_sub_ps(mo, ms));
		__m512 sum = zero;
		if (weigh)
			for (size_t j = 0; j < nt; j++) {
				float *p = sc->st + j * nb + i0;
				__m512 e = rva__exp512(_mm512_sub_ps(_mm512_load_ps(p), ms));
				sum = _mm512_fmadd_ps(e, _mm512_set1_ps(sc->vl[j]), sum);
				_mm512_store_ps(p, _mm512_mul_ps(e, _mm512_set1_ps(sc->vw[j])));
			}
		else
			for (size_t j = 0; j < nt; j++) {
				float *p = sc->st + j * nb + i0;
				_mm512_store_ps(p, rva__exp512(_mm512_sub_ps(_mm512_load_ps(p), ms)));
			}
		_mm512_store_ps(sc->den + i0, _mm512_fmadd_ps(al, _mm512_load_ps(sc->den + i0), sum));
		_mm512_store_ps(sc->mx + i0, mt);
		_mm512_store_ps(sc->alpha + i0, al);
		changed |= _mm512_cmp_ps_mask(al, _mm512_set1_ps(1.0f), _CMP_NEQ_UQ);
	}
	return changed != 0;
}

static inline RVA__TARGET_AVX2 __m256 fma256(__m256 a, __m256 x, float b) {
	return _mm256_fmadd_ps(a, x, _mm256_set1_ps(b));
}
static inline RVA__TARGET_AVX2 __m256 fma256c(float a, __m256 x, float b) {
	return _mm256_fmadd_ps(_mm256_set1_ps(a), x, _mm256_set1_ps(b));
}
#define P256(a, x, b) _Generic((a), float: fma256c, default: fma256)(a, x, b)

static RVA__TARGET_AVX2 void arcosh_row_avx2(float *row, const float *kf, float a, float mul,
                                             size_t n) {
	const __m256 va = _mm256_set1_ps(a), vmul = _mm256_set1_ps(mul);
	const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
	size_t j = 0;
	for (; j + 8 <= n; j += 8) {
		__m256 x = _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(row + j), va),
		                         _mm256_loadu_ps(kf + j));
		x = _mm256_max_ps(_mm256_setzero_ps(), x);
		__m256 y = _mm256_add_ps(_mm256_add_ps(one, x),
		                         _mm256_sqrt_ps(_mm256_mul_ps(x, _mm256_add_ps(x, two))));
		__m256i bits = _mm256_castps_si256(y);
		__m256i ei = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127));
		__m256 m = _mm256_castsi256_ps(_mm256_or_si256(
			_mm256_and_si256(bits, _mm256_set1_epi32(0x7FFFFF)), _mm256_set1_epi32(0x3F800000)));
		__m256 big = _mm256_cmp_ps(m, _mm256_set1_ps(HYP_SQRT_HALF_X2), _CMP_GT_OQ);
		m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5f)), big);
		__m256 e = _mm256_add_ps(_mm256_cvtepi32_ps(ei), _mm256_and_ps(big, one));
		__m256 xm = _mm256_sub_ps(m, one), z = _mm256_mul_ps(xm, xm);
		__m256 r = _mm256_mul_ps(_mm256_mul_ps(xm, z), HYP_LOG_POLY(P256, xm));
		r = _mm256_fmadd_ps(e, _mm256_set1_ps(-2.12194440e-4f), r);
		r = _mm256_fmadd_ps(_mm256_set1_ps(-0.5f), z, r);
		r = _mm256_add_ps(xm, r);
		r = _mm256_fmadd_ps(e, _mm256_set1_ps(0.693359375f), r);
		_mm256_storeu_ps(row + j, _mm256_mul_ps(vmul, r));
	}
	arcosh_row_scalar(row + j, kf + j, a, mul, n - j);
}
#endif

static void arcosh_row(float *row, const float *kf, float a, float mul, size_t n) {
#if defined(__x86_64__)
	switch (rva__simd_level()) {
	case RVA__SIMD_AVX512: arcosh_row_avx512(row, kf, a, mul, n); return;
	case RVA__SIMD_AVX2: arcosh_row_avx2(row, kf, a, mul, n); return;
	default: break;
	}
#endif
	arcosh_row_scalar(row, kf, a, mul, n);
}

/*
 * Scores of the tile rows [i0, i0 + ni) against keys [j0, j0 + nt) into sc->s (row
 * stride block_size, first row at sc->s); keys a row may not see get -inf. Needs
 * load_keys for the same key range.
 */
static void tile_scores(const rva_attention *att, const hyp_state *st, const hyp_rows *r,
                        hyp_scratch *sc, size_t kvh, size_t i0, size_t ni, size_t j0,
                        size_t nt) {
	const rva_seq *s = r->seq;
	size_t hd = att->head_dim, bk = att->cfg.block_size;
	const float *kbase = RVA__F32(s->k) + j0 * s->k_stride + kvh * hd;
	rva__sgemm(false, true, ni, nt, hd, 1.0f, sc->q + i0 * hd, hd, kbase, s->k_stride, 0.0f,
	           sc->s, bk);
	for (size_t ii = 0; ii < ni; ii++) {
		size_t i = i0 + ii;
		float *row = sc->s + ii * bk;
		const float *qrow = sc->q + i * hd;
		size_t lim = sc->lim[i];
		size_t vis = lim > j0 ? rva__min(nt, lim - j0) : 0;
		float qn = sc->qn[i];
		for (size_t j = 0; j < vis; j++)
			row[j] = qn + sc->kn[j] - 2.0f * sc->ka[j] * row[j];
		for (size_t j = 0; j < vis; j++)
			if (row[j] < HYP_NEAR * (qn + sc->kn[j])) {
				/* close points: |q - k|^2 from the difference, not from the norms */
				const float *k = kbase + j * s->k_stride;
				float ka = sc->ka[j], e = 0.0f;
				for (size_t d = 0; d < hd; d++) {
					float t = qrow[d] - ka * k[d];
					e += t * t;
				}
				row[j] = e;
			}
		/* x = 2c |q-k|^2 / ((1 - c|q|^2)(1 - c|k|^2)) clamped >= 0; s = -arcosh(1 + x) /
		 * (sqrt(c) temperature) */
		arcosh_row(row, sc->kf, st->two_c * sc->qf[i], -st->score_mul, vis);
		for (size_t j = vis; j < nt; j++)
			row[j] = -INFINITY;
		if (s->key_mask)
			for (size_t j = 0; j < vis; j++)
				if (!s->key_mask[j0 + j])
					row[j] = -INFINITY;
	}
}

/* Writes the gyromidpoint outputs from the accumulators (both gyromidpoint paths). */
static void gyro_finish(const rva_attention *att, const hyp_state *st, const hyp_rows *r,
                        hyp_scratch *sc) {
	size_t hd = att->head_dim;
	for (size_t i = 0; i < r->n; i++) {
		float *out = r->out + i * r->ostride;
		if (!(sc->den[i] > 0.0f)) {
			store_zero(out, hd);
			continue;
		}
		double inv = 1.0 / (double)sc->den[i];
		const float *acc = sc->acc + i * hd;
		for (size_t d = 0; d < hd; d++)
			sc->tmp[d] = acc[d] * inv;
		mobius_scalar(st, 0.5, sc->tmp, hd, sc->tmp);
		store_point(st, sc->tmp, hd, out);
	}
}

/* Gyromidpoint aggregation over key tiles with online softmax rescaling. */
static void hyp_gyro(const rva_attention *att, const hyp_state *st, const hyp_rows *r,
                     hyp_scratch *sc) {
	const rva_seq *s = r->seq;
	size_t hd = att->head_dim, bk = att->cfg.block_size, n = r->n;
	size_t kvh = r->h / (att->cfg.heads / att->kv_heads);
	load_queries(att, st, r, sc);
	size_t kmax = 0;
	for (size_t i = 0; i < n; i++) {
		kmax = rva__max(kmax, sc->lim[i]);
		sc->mx[i] = -INFINITY;
		sc->den[i] = 0.0f;
	}
	memset(sc->acc, 0, n * hd * sizeof(float));
	for (size_t j0 = 0; j0 < kmax; j0 += bk) {
		size_t nt = rva__min(bk, kmax - j0);
		load_keys(att, st, s, kvh, j0, nt, sc);
		load_values(att, st, s, kvh, j0, nt, sc);
		tile_scores(att, st, r, sc, kvh, 0, n, j0, nt);
		for (size_t i = 0; i < n; i++) {
			float *row = sc->s + i * bk;
			float rmax = max_f(row, nt);
			if (rmax == -INFINITY) {
				memset(row, 0, nt * sizeof(float));
				continue;
			}
			if (rmax > sc->mx[i]) {
				float corr = expf(sc->mx[i] - rmax); /* 0 when nothing was seen yet */
				float *acc = sc->acc + i * hd;
				for (size_t d = 0; d < hd; d++)
					acc[d] *= corr;
				sc->den[i] *= corr;
				sc->mx[i] = rmax;
			}
			float m = sc->mx[i], dsum = 0.0f;
			for (size_t j = 0; j < nt; j++)
				row[j] -= m; /* -inf stays -inf: exp gives 0 */
			rva__vexp(row, row, nt);
			if (r->dropout > 0.0f) {
				size_t rowi = row_index(r, i);
				for (size_t j = 0; j < nt; j++)
					if (row[j] != 0.0f && dropped(r, rowi, j0 + j))
						row[j] = 0.0f;
			}
			dsum = dot_f(row, sc->vl, nt);
			for (size_t j = 0; j < nt; j++)
				row[j] *= sc->vw[j];
			sc->den[i] += dsum;
		}
		rva__sgemm(false, false, n, hd, nt, 1.0f, sc->s, bk,
		           RVA__F32(s->v) + j0 * s->v_stride + kvh * hd, s->v_stride, 1.0f, sc->acc, hd);
	}
	gyro_finish(att, st, r, sc);
}

#if defined(__x86_64__)
/*
 * Gyromidpoint with the fused kernels of the softmax path (AVX-512, key-major tiles):
 * S = K Q^T by rva__sm_scores_fused (Q projected and packed once per task, K read in
 * place), distance -> arcosh -> score -> exp in one pass (gyro_tile_avx512), and
 * O += P'^T V by rva__sm_pv_fused with P' = p l_j f_j (V read in place).
 */
static void hyp_gyro_fused(const rva_attention *att, const hyp_state *st, const hyp_rows *r,
                           hyp_scratch *sc) {
	const rva_seq *s = r->seq;
	size_t hd = att->head_dim, bk = att->cfg.block_size, n = r->n;
	size_t nb = rva__round_up(n, 16);
	size_t kvh = r->h / (att->cfg.heads / att->kv_heads);
	load_queries(att, st, r, sc);
	size_t kmax = 0;
	for (size_t i = 0; i < nb; i++) {
		if (i < n) {
			kmax = rva__max(kmax, sc->lim[i]);
		} else { /* padded lanes: no visible key */
			sc->qn[i] = 0.0f;
			sc->qf[i] = 1.0f;
			sc->lim[i] = 0;
		}
		sc->mx[i] = -INFINITY;
		sc->den[i] = 0.0f;
	}
	memset(sc->acc, 0, n * hd * sizeof(float));
	rva__sm_pack_qt(sc->q, hd, n, nb, hd, 1.0f, sc->qt);
	const float *kbase = RVA__F32(s->k) + kvh * hd, *vbase = RVA__F32(s->v) + kvh * hd;
	bool drop = r->dropout > 0.0f;
	for (size_t j0 = 0; j0 < kmax; j0 += bk) {
		size_t nt = rva__min(bk, kmax - j0);
		const float *kt = kbase + j0 * s->k_stride, *vt = vbase + j0 * s->v_stride;
		load_keys(att, st, s, kvh, j0, nt, sc);
		load_values(att, st, s, kvh, j0, nt, sc);
		rva__sm_scores_fused(kt, s->k_stride, nt, sc->qt, nb, hd, sc->st);
		bool rescale = gyro_tile_avx512(st, sc, kt, s->k_stride, hd,
		                                s->key_mask ? s->key_mask + j0 : NULL, j0, nt, nb,
		                                !drop);
		if (drop)
			for (size_t i = 0; i < n; i++) {
				size_t rowi = row_index(r, i);
				float dsum = 0.0f;
				for (size_t j = 0; j < nt; j++) {
					float *p = sc->st + j * nb + i;
					if (*p != 0.0f && dropped(r, rowi, j0 + j))
						*p = 0.0f;
					dsum += *p * sc->vl[j];
					*p *= sc->vw[j];
				}
				sc->den[i] += dsum;
			}
		if (rescale)
			rva__sm_rescale(sc->acc, n, hd, sc->alpha);
		rva__sm_pv_fused(sc->st, nb, nt, vt, s->v_stride, n, hd, sc->acc);
	}
	gyro_finish(att, st, r, sc);
}
#endif

/*
 * Weighted Frechet mean from the start point in sc->mu (left there), by the fixed-point
 * iteration of Lou et al. (arXiv:2003.00335, Algorithm 1): with
 *   u_j = c|y - v_j|^2 / ((1 - c|v_j|^2)(1 - c|y|^2)),  g(u) = 2 arcosh(1 + 2u) / sqrt(u^2 + u),
 *   al_j = w_j g(u_j) / (1 - c|v_j|^2),  a = sum al_j,  b = sum al_j v_j,  e = sum al_j |v_j|^2,
 * the stationarity condition of sum_j w_j d_c(y, v_j)^2 at fixed al gives y = t b with
 * c|b|^2 t^2 - (a + c e) t + 1 = 0 (the root inside the ball, written without
 * cancellation). Each step decreases the objective (majorise-minimise) and the flow
 * converges from anywhere in the ball, where the plain Karcher flow
 * y <- exp_y(sum_j w_j log_y(v_j)) oscillates when values lie near the boundary.
 * The Euclidean gradient of the objective is
 *   2/s^2 (s (a y - b) + c y (e - 2 b.y + a|y|^2)),  s = 1 - c|y|^2,
 * and its Riemannian norm is |grad| / l_y = |grad| s / 2: the iteration stops when that
 * is below frechet_tol, or after frechet_max_iter gradient evaluations.
 */
static void frechet_iterate(const rva_attention *att, const hyp_state *st, const rva_seq *s,
                            size_t kvh, size_t lim, hyp_scratch *sc) {
	size_t hd = att->head_dim, max_iter = att->cfg.frechet_max_iter;
	double c = st->c, tol = att->cfg.frechet_tol;
	double *y = sc->mu, *b = sc->u;
	for (size_t it = 0; it < max_iter; it++) {
		double y2 = dnorm2(y, hd);
		double sy = fmax(1.0 - c * y2, HYP_MIN_DEN);
		double a = 0.0, e = 0.0;
		memset(b, 0, hd * sizeof(double));
		for (size_t j = 0; j < lim; j++) {
			double wj = sc->w[j];
			if (wj == 0.0)
				continue;
			const float *v = RVA__F32(s->v) + j * s->v_stride + kvh * hd;
			double fa = sc->va[j], x2 = sc->vn[j], d2 = 0.0;
			for (size_t d = 0; d < hd; d++) {
				double t = y[d] - fa * v[d];
				d2 += t * t;
			}
			double sx = fmax(1.0 - c * x2, HYP_MIN_DEN);
			double u = c * d2 / (sx * sy);
			double g = 4.0; /* the limit for u -> 0 */
			if (u > 1e-12) {
				double r = sqrt(u * u + u);
				g = 2.0 * log1p(2.0 * u + 2.0 * r) / r; /* 2 arcosh(1 + 2u) / r */
			}
			double al = wj * g / sx;
			a += al;
			e += al * x2;
			double bf = al * fa;
			for (size_t d = 0; d < hd; d++)
				b[d] += bf * v[d];
		}
		double by = 0.0, b2 = 0.0, gn = 0.0;
		for (size_t d = 0; d < hd; d++) {
			by += b[d] * y[d];
			b2 += b[d] * b[d];
		}
		for (size_t d = 0; d < hd; d++) {
			double gd = sy * (a * y[d] - b[d]) + c * y[d] * (e - 2.0 * by + a * y2);
			gn += gd * gd;
		}
		/* |grad_E| s / 2 with grad_E = 2/s^2 (...) */
		if (sqrt(gn) / sy < tol)
			break;
		double A = a + c * e;
		double t = 2.0 / (A + sqrt(fmax(A * A - 4.0 * c * b2, 0.0)));
		for (size_t d = 0; d < hd; d++)
			y[d] = t * b[d];
	}
}

/* Frechet-mean aggregation, one query row at a time over a materialised weight row. */
static void hyp_frechet(const rva_attention *att, const hyp_state *st, const hyp_rows *r,
                        hyp_scratch *sc) {
	const rva_seq *s = r->seq;
	size_t hd = att->head_dim, bk = att->cfg.block_size;
	size_t kvh = r->h / (att->cfg.heads / att->kv_heads);
	load_queries(att, st, r, sc);
	size_t kmax = 0;
	for (size_t i = 0; i < r->n; i++)
		kmax = rva__max(kmax, sc->lim[i]);
	for (size_t j = 0; j < kmax; j++) {
		const float *v = RVA__F32(s->v) + j * s->v_stride + kvh * hd;
		double n2 = norm2(v, hd);
		double f = proj_factor(st, n2);
		sc->va[j] = (float)f;
		sc->vn[j] = n2 * f * f;
	}
	for (size_t i = 0; i < r->n; i++) {
		float *out = r->out + i * r->ostride;
		size_t lim = sc->lim[i], rowi = row_index(r, i);
		double m = -INFINITY;
		for (size_t j0 = 0; j0 < lim; j0 += bk) {
			size_t nt = rva__min(bk, lim - j0);
			load_keys(att, st, s, kvh, j0, nt, sc);
			tile_scores(att, st, r, sc, kvh, i, 1, j0, nt);
			for (size_t j = 0; j < nt; j++) {
				sc->w[j0 + j] = sc->s[j];
				m = fmax(m, sc->s[j]);
			}
		}
		if (m == -INFINITY) {
			store_zero(out, hd);
			continue;
		}
		double sum = 0.0;
		for (size_t j = 0; j < lim; j++) {
			double p = sc->w[j] == -INFINITY ? 0.0 : exp(sc->w[j] - m);
			if (r->dropout > 0.0f && p != 0.0 && dropped(r, rowi, j))
				p = 0.0;
			sc->w[j] = p;
			sum += p;
		}
		if (!(sum > 0.0)) {
			store_zero(out, hd);
			continue;
		}
		/* start: the gyromidpoint of the normalised weights */
		double den = 0.0;
		memset(sc->mu, 0, hd * sizeof(double));
		for (size_t j = 0; j < lim; j++) {
			double a = sc->w[j] /= sum;
			if (a == 0.0)
				continue;
			double cv = st->c * sc->vn[j];
			double lam = 2.0 / fmax(1.0 - cv, HYP_MIN_DEN);
			double coef = a * lam * sc->va[j];
			const float *v = RVA__F32(s->v) + j * s->v_stride + kvh * hd;
			for (size_t d = 0; d < hd; d++)
				sc->mu[d] += coef * v[d];
			den += a * (lam - 1.0);
		}
		den = fmax(den, HYP_MIN_DEN);
		for (size_t d = 0; d < hd; d++)
			sc->mu[d] /= den;
		mobius_scalar(st, 0.5, sc->mu, hd, sc->mu);
		frechet_iterate(att, st, s, kvh, lim, sc);
		store_point(st, sc->mu, hd, out);
	}
}

static uint64_t dropout_key(const rva_runtime *rt, uint32_t stream, size_t seq, size_t h) {
	return rva__hash3(rva__hash3(rt->seed, rt->step, HYP_DROP_TAG),
	                  ((uint64_t)stream << 32) ^ (uint64_t)seq, h);
}

/* Computes the rows of r with scratch of at least hyp_layout(att, nk) bytes. */
static void hyp_compute(const rva_attention *att, const hyp_rows *r, void *scratch) {
	const hyp_state *st = att->state;
	hyp_scratch sc;
	hyp_layout(att, r->seq->nk, scratch, &sc);
	if (att->cfg.aggregation == RVA_AGG_FRECHET)
		hyp_frechet(att, st, r, &sc);
#if defined(__x86_64__)
	else if (sc.st)
		hyp_gyro_fused(att, st, r, &sc);
#endif
	else
		hyp_gyro(att, st, r, &sc);
}

static float dropout_of(const rva_attention *att, const rva_runtime *rt) {
	return rt->training ? att->cfg.dropout : 0.0f;
}

/* ---- the mechanism table -------------------------------------------------------------- */

typedef struct hyp_job {
	const rva_attention *att;
	const rva_seq *seqs;
	rva_runtime rt;
	uint32_t stream;
} hyp_job;

static rva_status hyp_task(const rva__task *t, rva__exec_ctx *x) {
	const hyp_job *job = t->ctx;
	const rva_attention *att = job->att;
	const rva_seq *s = &job->seqs[t->seq];
	size_t qb = att->cfg.query_block, hd = att->head_dim;
	if (x->scratch_bytes < hyp_layout(att, s->nk, NULL, NULL))
		return rva__fail(RVA_EINTERNAL, "hyperbolic: worker scratch of %zu bytes is too small",
		                 x->scratch_bytes);
	size_t i0 = (size_t)t->b * qb, h = t->a;
	hyp_rows r = {.seq = s, .h = h, .idx = NULL, .row0 = i0, .n = rva__min(qb, s->nq - i0),
	              .out = RVA__F32(s->out) + i0 * s->out_stride + h * hd, .ostride = s->out_stride,
	              .dropout = dropout_of(att, &job->rt)};
	if (r.dropout > 0.0f)
		r.drop_key = dropout_key(&job->rt, job->stream, t->seq, h);
	hyp_compute(att, &r, x->scratch);
	return RVA_OK;
}

/* Key/query pairs a sequence computes (causal: the visible ones only). */
static double visible_pairs(const rva_attention *att, const rva_seq *s) {
	if (!att->cfg.causal)
		return (double)s->nq * (double)s->nk;
	double pairs = 0.0;
	for (size_t i = 0; i < s->nq; i++)
		pairs += (double)visible_limit(att, s, i);
	return pairs;
}

static rva_status plan(const rva_attention *att, rva__plan_io *io, rva__graph *g) {
	hyp_job *job = rva__graph_alloc(g, sizeof *job);
	if (!job)
		return RVA_ENOMEM;
	*job = (hyp_job){.att = att, .seqs = io->seqs, .rt = io->rt, .stream = io->stream};
	size_t qb = att->cfg.query_block, hd = att->head_dim;
	rva_status st;
	for (size_t s = 0; s < io->nseq; s++) {
		uint32_t join, after = rva__plan_after(io, s);
		if ((st = rva__graph_add_join(g, (uint32_t)s, &join)) != RVA_OK ||
		    (st = rva__graph_edge(g, after, join)) != RVA_OK)
			return st;
		io->done[s] = join;
		const rva_seq *seq = &io->seqs[s];
		if (io->seq_status[s] != RVA_OK || seq->nq == 0)
			continue;
		rva__graph_need_scratch(g, hyp_layout(att, seq->nk, NULL, NULL));
		size_t tiles = rva__div_up(seq->nq, qb);
		float per_row = (float)(4.0 * visible_pairs(att, seq) / (double)seq->nq * (double)hd);
		if (att->cfg.aggregation == RVA_AGG_FRECHET)
			per_row *= 8.0f; /* a few Karcher iterations of similar cost */
		for (size_t h = 0; h < att->cfg.heads; h++)
			for (size_t qt = 0; qt < tiles; qt++) {
				size_t rows = rva__min(qb, seq->nq - qt * qb);
				uint32_t id;
				if ((st = rva__graph_add(g, hyp_task, job, (uint32_t)s, (uint32_t)h,
				                         (uint32_t)qt, 0, 0, per_row * (float)rows, &id)) !=
				        RVA_OK ||
				    (st = rva__graph_edge(g, after, id)) != RVA_OK ||
				    (st = rva__graph_edge(g, id, join)) != RVA_OK)
					return st;
			}
	}
	return RVA_OK;
}

static rva_status rows_fn(const rva_attention *att, const rva_seq *seq, uint32_t seq_index,
                          const rva_runtime *rt, const uint32_t *rows, size_t nrows,
                          float *out, size_t out_stride, void *scratch) {
	rva_runtime r0 = rva__runtime_or_default(rt);
	size_t qb = att->cfg.query_block, hd = att->head_dim;
	float dropout = dropout_of(att, &r0);
	for (size_t h = 0; h < att->cfg.heads; h++)
		for (size_t i = 0; i < nrows; i += qb) {
			hyp_rows r = {.seq = seq, .h = h, .idx = rows + i,
			              .qrows = RVA__F32(seq->q) + i * seq->q_stride, .row0 = 0,
			              .n = rva__min(qb, nrows - i), .out = out + i * out_stride + h * hd,
			              .ostride = out_stride, .dropout = dropout};
			if (dropout > 0.0f)
				r.drop_key = dropout_key(&r0, 0, seq_index, h);
			hyp_compute(att, &r, scratch);
		}
	return RVA_OK;
}

static size_t rows_scratch(const rva_attention *att, const rva_seq *seq, size_t nrows) {
	(void)nrows;
	return hyp_layout(att, seq->nk, NULL, NULL);
}

/* Two GEMM-sized terms per visible pair and head: q.k and the weighted value sum. The
 * Karcher iterations of the Frechet mean are data-dependent and not counted. */
static double flops(const rva_attention *att, const rva_seq *s) {
	return 4.0 * visible_pairs(att, s) * (double)att->head_dim * (double)att->cfg.heads;
}

static rva_status build(rva_attention *att) {
	const rva_config *c = &att->cfg;
	size_t t1, t2;
	if (!rva__mul_ok(c->query_block, c->block_size, &t1) ||
	    !rva__mul_ok(c->query_block, att->head_dim, &t2) || t1 > SIZE_MAX / 64 ||
	    t2 > SIZE_MAX / 64)
		return rva__fail(RVA_EOVERFLOW, "hyperbolic: tiles of %zu x %zu (head_dim %zu) "
		                 "overflow", c->query_block, c->block_size, att->head_dim);
	hyp_state *st = rva__calloc(1, sizeof *st);
	if (!st)
		return rva__fail(RVA_ENOMEM, "hyperbolic: cannot allocate the state");
	st->c = -(double)c->curvature;
	st->sqrt_c = sqrt(st->c);
	st->max_norm = (1.0 - HYP_EPS) / st->sqrt_c;
	st->two_c = (float)(2.0 * st->c);
	st->score_mul = (float)(1.0 / (st->sqrt_c * (double)c->temperature));
	att->state = st;
	return RVA_OK;
}

static void destroy(rva_attention *att) {
	rva__free(att->state);
	att->state = NULL;
}

const rva__mech_ops rva__hyperbolic_ops = {
	.mechanism = RVA_MECH_HYPERBOLIC,
	.build = build,
	.destroy = destroy,
	.plan = plan,
	.rows = rows_fn,
	.rows_scratch = rows_scratch,
	.flops = flops,
};

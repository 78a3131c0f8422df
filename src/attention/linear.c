/*
 * Linear attention: Performer FAVOR+ (Choromanski et al., arXiv:2009.14794;
 * docs/ARCHITECTURE.md, Mechanisms) and the ReLU / ELU feature maps of the reference crate.
 *
 * Per query head h (kv head g = h / (heads / kv_heads)), with s the logit scale and the
 * inputs rescaled x' = sqrt(s) x so that E[phi(q')·phi(k')] = exp(s q·k):
 *
 *   FAVOR (default): phi(x) = exp(W x' - |x'|^2/2 - stabiliser) / sqrt(m), W the m x d
 *         feature matrix: positive orthogonal random features (blocks of d x d Gaussian
 *         matrices orthonormalised by Gram-Schmidt in double, stacked, truncated to m
 *         rows, each row rescaled by the norm of an independent N(0, I_d) sample), or
 *         plain Gaussian rows when !orthogonal; drawn from cfg.seed (deterministic), or
 *         the caller's cfg.feature_matrix. Stabilisers (as google-research /
 *         performer-pytorch): a query row subtracts its own max of W q' (the row's
 *         factor, like |q'|^2/2 and 1/sqrt(m), cancels between numerator and
 *         denominator, so neither is computed); keys subtract one max over the keys of
 *         (W k' - |k'|^2/2). Chunks of keys are summed with their own maxima and merged
 *         by rescaling to the common max (as online softmax), which equals the single
 *         pass up to fp32 rounding.
 *   RELU: phi(x) = relu(W x') / sqrt(m) + 1e-6 (the epsilon keeps the denominator > 0).
 *   ELU:  phi(x) = elu(x') + 1 on the raw head vector: m = head_dim, W and
 *         cfg.features unused.
 *
 *   out_i = phi(q_i)^T S / phi(q_i)^T z,  S = sum_j phi(k_j) v_j^T,  z = sum_j phi(k_j)
 *
 * over the unmasked keys (and j <= nk - nq + i when causal). A zero denominator (every
 * key masked, or a query at a negative causal position) gives a zero row. Dropout is not
 * applied: linear attention never forms the attention probabilities it would drop.
 *
 * The state is kept augmented, [S | z] (m x (d+1)), so one GEMM gives numerators and
 * denominator: keys multiply [V | 1], queries read both at once.
 *
 * Tiling (fixed by the config, never by the thread count, so the numbers are
 * bit-identical for any thread count): C = cfg.block_size keys per causal block and
 * chunk = 16 C keys per state task (and queries per output tile).
 *   non-causal: per (sequence, kv head, key chunk) a state task -> a reduce task per
 *               (sequence, kv head) merging chunks 0, 1, 2, ... in order -> output tasks
 *               per (sequence, query head, query tile).
 *   causal:     state tasks for every chunk before the last -> a prefix task turning
 *               them into exclusive prefix states -> per (sequence, query head, chunk
 *               holding queries) an output task that walks its chunk in blocks of C
 *               keys: out = phi(Qc) [S|z] + tril(phi(Qc) phi(Kc)^T) [Vc|1], then
 *               [S|z] += phi(Kc)^T [Vc|1].
 * Cost O(n m d): W x, phi(K)^T [V|1] and phi(Q) [S|z] are rva__sgemm calls.
 */
#include <math.h>
#include <string.h>

#include "attention/attention_internal.h"
#include "attention/linear_kernels.h"
#include "core/internal.h"
#include "kernels/gemm.h"
#include "kernels/half.h"

#define LIN_SUPER 16      /* causal blocks per chunk (state task, output tile) */
#define LIN_NB 256        /* rows per inner step of the non-causal paths */
#define LIN_RELU_EPS 1e-6f

enum {
	LIN_K_STATE,     /* chunk state task */
	LIN_K_PREFIX,    /* causal prefix task */
	LIN_K_OUT_NC,    /* non-causal output task */
	LIN_K_OUT_C,     /* causal output task */
	LIN_K_ROWS_NC,   /* rows(), non-causal */
	LIN_K_ROWS_C,    /* rows(), causal */
	LIN_NKINDS
};

typedef struct lin_impl {
	rva_feature_map map;
	bool causal;
	size_t m, d, da;          /* features (head_dim for ELU), head_dim, head_dim + 1 */
	float c;                  /* sqrt(scale): x' = c x */
	float half_s;             /* scale / 2: |x'|^2 / 2 = half_s |x|^2 */
	float relu_a;             /* 1 / sqrt(m) */
	const float *w;           /* m x d (FAVOR, RELU); att->feature_matrix */
	size_t blk;               /* C: keys per causal block */
	size_t chunk;             /* LIN_SUPER * C: keys per state task, queries per tile */
	size_t nb;                /* min(LIN_NB, chunk) */
	size_t sf;                /* floats of one state: [S|z] (m x da), max, padding */
	size_t scratch[LIN_NKINDS];
	const rva__lin_kern *k;
} lin_impl;

/* Buffers of one task, carved from the worker's scratch. */
typedef struct lin_bufs {
	float *st, *st2;          /* states (sf floats) */
	float *u;                 /* key features, rows x m */
	float *vaug;              /* [V | 1], rows x da */
	float *shift;             /* per key row: |k'|^2 / 2 */
	float *phiq;              /* query features, rows x m */
	float *a;                 /* causal block scores, C x C */
	float *o;                 /* [numerator | denominator], rows x da */
	float *qg;                /* gathered query rows (rows()), rows x d */
	size_t *vis;              /* causal: keys of the block each query sees */
} lin_bufs;

typedef struct lin_cursor {
	unsigned char *base;
	size_t off;
	bool overflow;
} lin_cursor;

static void *take(lin_cursor *cur, size_t n, size_t elem) {
	size_t bytes, end;
	cur->off = rva__round_up(cur->off, RVA__ALIGN);
	if (!rva__mul_ok(n, elem, &bytes) || !rva__add_ok(cur->off, bytes, &end) ||
	    end > SIZE_MAX - RVA__ALIGN) {
		cur->overflow = true;
		return NULL;
	}
	void *p = cur->base ? cur->base + cur->off : NULL;
	cur->off = end;
	return p;
}

/* Lays out the buffers of a task kind from base (NULL: sizes only). Returns the bytes
 * needed, or 0 on size overflow. */
static size_t layout(const lin_impl *L, int kind, void *base, lin_bufs *b) {
	lin_cursor cur = {.base = base, .off = 0, .overflow = false};
	lin_bufs tmp;
	if (!b)
		b = &tmp;
	memset(b, 0, sizeof *b);
	size_t m = L->m, da = L->da, nb = L->nb, C = L->blk, f = sizeof(float);
	switch (kind) {
	case LIN_K_STATE:
		b->u = take(&cur, nb, m * f);
		b->vaug = take(&cur, nb, da * f);
		b->shift = take(&cur, nb, f);
		break;
	case LIN_K_PREFIX:
		b->st = take(&cur, L->sf, f);
		b->st2 = take(&cur, L->sf, f);
		break;
	case LIN_K_OUT_NC:
		b->phiq = take(&cur, nb, m * f);
		b->o = take(&cur, nb, da * f);
		break;
	case LIN_K_OUT_C:
	case LIN_K_ROWS_C:
		b->st = take(&cur, L->sf, f);
		b->u = take(&cur, C, m * f);
		b->vaug = take(&cur, C, da * f);
		b->shift = take(&cur, C, f);
		b->phiq = take(&cur, C, m * f);
		b->a = take(&cur, C, C * f);
		b->o = take(&cur, C, da * f);
		b->vis = take(&cur, C, sizeof(size_t));
		if (kind == LIN_K_ROWS_C)
			b->qg = take(&cur, C, L->d * f);
		break;
	case LIN_K_ROWS_NC:
		b->st = take(&cur, L->sf, f);
		b->u = take(&cur, nb, m * f);
		b->vaug = take(&cur, nb, da * f);
		b->shift = take(&cur, nb, f);
		b->phiq = take(&cur, nb, m * f);
		b->o = take(&cur, nb, da * f);
		b->qg = take(&cur, nb, L->d * f);
		break;
	default:
		break;
	}
	/* The products above are checked by take(); m * f and friends by build(). */
	return cur.overflow ? 0 : rva__max(cur.off, 1);
}

/* ---- states: [S | z] (m x da, row stride da), then the reference max -------------- */

static inline float *st_max(const lin_impl *L, float *st) { return st + L->m * L->da; }

static void state_init(const lin_impl *L, float *st) {
	memset(st, 0, L->m * L->da * sizeof(float));
	*st_max(L, st) = L->map == RVA_FEATURES_FAVOR ? -INFINITY : 0.0f;
}

/* Raises the state's reference max to mx (FAVOR), rescaling its sums. */
static void state_rebase(const lin_impl *L, float *st, float mx) {
	float old = *st_max(L, st);
	if (!(mx > old))
		return;
	if (old != -INFINITY) {
		float f = expf(old - mx);
		size_t n = L->m * L->da;
		for (size_t i = 0; i < n; i++)
			st[i] *= f;
	}
	*st_max(L, st) = mx;
}

/* dst += src, both brought to the larger reference max. */
static void state_merge(const lin_impl *L, float *dst, const float *src) {
	size_t n = L->m * L->da;
	float f = 1.0f;
	if (L->map == RVA_FEATURES_FAVOR) {
		float ms = src[n];
		if (ms == -INFINITY)
			return; /* no visible key: nothing to add */
		state_rebase(L, dst, ms);
		f = expf(ms - *st_max(L, dst));
	}
	for (size_t i = 0; i < n; i++)
		dst[i] += f * src[i];
}

/* ---- feature maps ------------------------------------------------------------------- */

static inline bool masked(const uint8_t *mask, size_t j) { return mask && !mask[j]; }

/*
 * Features of nb keys (rows k, stride ldk; values v, stride ldv; mask NULL or nb bytes):
 * phi(K) into u (nb x m), [V | 1] into vaug (nb x da). For FAVOR the state st is first
 * rebased to the block's max, which becomes the features' reference. Masked keys get
 * zero features.
 */
static void key_block(const lin_impl *L, float *st, const float *k, size_t ldk,
                      const float *v, size_t ldv, const uint8_t *mask, size_t nb, float *u,
                      float *vaug, float *shift) {
	size_t m = L->m, d = L->d, da = L->da;
	const rva__lin_kern *K = L->k;
	switch (L->map) {
	case RVA_FEATURES_FAVOR: {
		rva__sgemm(false, true, nb, m, d, L->c, k, ldk, L->w, d, 0.0f, u, m);
		float bmax = -INFINITY;
		for (size_t j = 0; j < nb; j++) {
			if (masked(mask, j))
				continue;
			shift[j] = L->half_s * K->sumsq(k + j * ldk, d);
			float t = K->rowmax(u + j * m, m) - shift[j];
			bmax = t > bmax ? t : bmax;
		}
		state_rebase(L, st, bmax);
		float ref = *st_max(L, st);
		for (size_t j = 0; j < nb; j++) {
			if (masked(mask, j))
				memset(u + j * m, 0, m * sizeof(float));
			else
				K->exp_shift(u + j * m, m, shift[j] + ref);
		}
		break;
	}
	case RVA_FEATURES_RELU:
		rva__sgemm(false, true, nb, m, d, L->c, k, ldk, L->w, d, 0.0f, u, m);
		for (size_t j = 0; j < nb; j++) {
			if (masked(mask, j))
				memset(u + j * m, 0, m * sizeof(float));
			else
				K->relu(u + j * m, m, L->relu_a, LIN_RELU_EPS);
		}
		break;
	default: /* ELU */
		for (size_t j = 0; j < nb; j++) {
			if (masked(mask, j))
				memset(u + j * m, 0, m * sizeof(float));
			else
				K->elu1(k + j * ldk, u + j * m, d, L->c);
		}
		break;
	}
	for (size_t j = 0; j < nb; j++) {
		memcpy(vaug + j * da, v + j * ldv, d * sizeof(float));
		vaug[j * da + d] = 1.0f;
	}
}

/* [S | z] += phi(K)^T [V | 1]. */
static void state_add(const lin_impl *L, float *st, const float *u, const float *vaug,
                      size_t nb) {
	rva__sgemm(true, false, L->m, L->da, nb, 1.0f, u, L->m, vaug, L->da, 1.0f, st, L->da);
}

/* Features of n query rows (stride ldq) into phiq (n x m). */
static void query_feats(const lin_impl *L, const float *q, size_t ldq, size_t n,
                        float *phiq) {
	size_t m = L->m, d = L->d;
	const rva__lin_kern *K = L->k;
	switch (L->map) {
	case RVA_FEATURES_FAVOR:
		rva__sgemm(false, true, n, m, d, L->c, q, ldq, L->w, d, 0.0f, phiq, m);
		for (size_t i = 0; i < n; i++)
			K->exp_shift(phiq + i * m, m, K->rowmax(phiq + i * m, m));
		break;
	case RVA_FEATURES_RELU:
		rva__sgemm(false, true, n, m, d, L->c, q, ldq, L->w, d, 0.0f, phiq, m);
		for (size_t i = 0; i < n; i++)
			K->relu(phiq + i * m, m, L->relu_a, LIN_RELU_EPS);
		break;
	default:
		for (size_t i = 0; i < n; i++)
			K->elu1(q + i * ldq, phiq + i * m, d, L->c);
		break;
	}
}

/* out_r = numerator_r / denominator_r, or 0 when the denominator is 0. */
static void finish_rows(const lin_impl *L, const float *o, size_t n, float *out,
                        size_t ldo) {
	size_t d = L->d, da = L->da;
	for (size_t r = 0; r < n; r++) {
		const float *src = o + r * da;
		float *dst = out + r * ldo, den = src[d];
		if (den == 0.0f) {
			memset(dst, 0, d * sizeof(float));
			continue;
		}
		for (size_t t = 0; t < d; t++)
			dst[t] = src[t] / den;
	}
}

/* Adds keys [0, n) (rows of k / v, mask NULL or n bytes) to state st, nb at a time. */
static void scan_keys(const lin_impl *L, float *st, const float *k, size_t ldk,
                      const float *v, size_t ldv, const uint8_t *mask, size_t n,
                      const lin_bufs *b) {
	for (size_t j = 0; j < n; j += L->nb) {
		size_t nb = rva__min(L->nb, n - j);
		key_block(L, st, k + j * ldk, ldk, v + j * ldv, ldv, mask ? mask + j : NULL, nb,
		          b->u, b->vaug, b->shift);
		state_add(L, st, b->u, b->vaug, nb);
	}
}

/* Non-causal outputs of n query rows against the complete state st. */
static void emit_rows(const lin_impl *L, const float *st, const float *q, size_t ldq,
                      size_t n, float *out, size_t ldo, const lin_bufs *b) {
	for (size_t i = 0; i < n; i += L->nb) {
		size_t nr = rva__min(L->nb, n - i);
		query_feats(L, q + i * ldq, ldq, nr, b->phiq);
		rva__sgemm(false, false, nr, L->da, L->m, 1.0f, b->phiq, L->m, st, L->da, 0.0f,
		           b->o, L->da);
		finish_rows(L, b->o, nr, out + i * ldo, ldo);
	}
}

/*
 * Causal outputs of nq rows whose keys are the state st (every key before the block)
 * plus the first vis[r] keys of the current block (features in b->u / b->vaug, nb keys,
 * the same reference as st).
 */
static void causal_rows(const lin_impl *L, const float *st, size_t nb, const float *q,
                        size_t ldq, size_t nq, float *out, size_t ldo, const lin_bufs *b) {
	size_t m = L->m, da = L->da;
	query_feats(L, q, ldq, nq, b->phiq);
	rva__sgemm(false, false, nq, da, m, 1.0f, b->phiq, m, st, da, 0.0f, b->o, da);
	rva__sgemm(false, true, nq, nb, m, 1.0f, b->phiq, m, b->u, m, 0.0f, b->a, nb);
	for (size_t r = 0; r < nq; r++)
		if (b->vis[r] < nb)
			memset(b->a + r * nb + b->vis[r], 0, (nb - b->vis[r]) * sizeof(float));
	rva__sgemm(false, false, nq, da, nb, 1.0f, b->a, nb, b->vaug, da, 1.0f, b->o, da);
	finish_rows(L, b->o, nq, out, ldo);
}

static void zero_rows(float *out, size_t ldo, size_t n, size_t d) {
	for (size_t r = 0; r < n; r++)
		memset(out + r * ldo, 0, d * sizeof(float));
}

/* ---- job graph tasks ---------------------------------------------------------------- */

typedef struct lin_job {
	const rva_attention *att;
	const lin_impl *L;
	const rva_seq *seq;
	float *states;            /* kv_heads x nslots states */
	size_t nslots;
	size_t group;             /* heads / kv_heads */
} lin_job;

static inline float *slot(const lin_job *J, size_t g, size_t c) {
	return J->states + (g * J->nslots + c) * J->L->sf;
}

/* State of key chunk b (kv head a). */
static rva_status task_state(const rva__task *t, rva__exec_ctx *x) {
	const lin_job *J = t->ctx;
	const lin_impl *L = J->L;
	const rva_seq *s = J->seq;
	lin_bufs b;
	layout(L, LIN_K_STATE, x->scratch, &b);
	size_t g = t->a, k0 = (size_t)t->b * L->chunk, n = rva__min(L->chunk, s->nk - k0);
	float *st = slot(J, g, t->b);
	state_init(L, st);
	scan_keys(L, st, RVA__F32(s->k) + k0 * s->k_stride + g * L->d, s->k_stride,
	          RVA__F32(s->v) + k0 * s->v_stride + g * L->d, s->v_stride,
	          s->key_mask ? s->key_mask + k0 : NULL, n, &b);
	return RVA_OK;
}

/* Non-causal: merges the chunk states of kv head a into slot 0, in chunk order. */
static rva_status task_reduce(const rva__task *t, rva__exec_ctx *x) {
	const lin_job *J = t->ctx;
	(void)x;
	for (size_t c = 1; c < J->nslots; c++)
		state_merge(J->L, slot(J, t->a, 0), slot(J, t->a, c));
	return RVA_OK;
}

/* Causal: turns slot c into the exclusive prefix of chunks 0..c-1 (kv head a). */
static rva_status task_prefix(const rva__task *t, rva__exec_ctx *x) {
	const lin_job *J = t->ctx;
	const lin_impl *L = J->L;
	lin_bufs b;
	layout(L, LIN_K_PREFIX, x->scratch, &b);
	state_init(L, b.st);
	for (size_t c = 0; c < J->nslots; c++) {
		float *sc = slot(J, t->a, c);
		bool raw = c + 1 < J->nslots; /* the last chunk has no state of its own */
		if (raw)
			memcpy(b.st2, sc, L->sf * sizeof(float));
		memcpy(sc, b.st, L->sf * sizeof(float));
		if (raw)
			state_merge(L, b.st, b.st2);
	}
	return RVA_OK;
}

/* Non-causal: query tile b of head a. */
static rva_status task_out_nc(const rva__task *t, rva__exec_ctx *x) {
	const lin_job *J = t->ctx;
	const lin_impl *L = J->L;
	const rva_seq *s = J->seq;
	lin_bufs b;
	layout(L, LIN_K_OUT_NC, x->scratch, &b);
	size_t h = t->a, i0 = (size_t)t->b * L->chunk, n = rva__min(L->chunk, s->nq - i0);
	emit_rows(L, slot(J, h / J->group, 0), RVA__F32(s->q) + i0 * s->q_stride + h * L->d, s->q_stride,
	          n, RVA__F32(s->out) + i0 * s->out_stride + h * L->d, s->out_stride, &b);
	return RVA_OK;
}

/* Causal: the queries of head a whose positions fall in key chunk b. */
static rva_status task_out_c(const rva__task *t, rva__exec_ctx *x) {
	const lin_job *J = t->ctx;
	const lin_impl *L = J->L;
	const rva_seq *s = J->seq;
	lin_bufs b;
	layout(L, LIN_K_OUT_C, x->scratch, &b);
	size_t h = t->a, g = h / J->group, c = t->b, d = L->d;
	size_t nq = s->nq, nk = s->nk, k0 = c * L->chunk, k1 = rva__min(nk, k0 + L->chunk);
	int64_t off = (int64_t)nk - (int64_t)nq; /* position of query 0 */
	const float *kh = RVA__F32(s->k) + g * d, *vh = RVA__F32(s->v) + g * d, *qh = RVA__F32(s->q) + h * d;
	float *oh = RVA__F32(s->out) + h * d;
	if (c == 0) {
		state_init(L, b.st);
		if (off < 0) /* queries before the first key see nothing */
			zero_rows(oh, s->out_stride, rva__min(nq, (size_t)-off), d);
	} else {
		memcpy(b.st, slot(J, g, c), L->sf * sizeof(float));
	}
	for (size_t b0 = k0; b0 < k1; b0 += L->blk) {
		size_t nb = rva__min(L->blk, k1 - b0);
		int64_t lo = (int64_t)b0 - off, hi = (int64_t)(b0 + nb) - off;
		lo = lo < 0 ? 0 : lo;
		hi = hi > (int64_t)nq ? (int64_t)nq : hi;
		key_block(L, b.st, kh + b0 * s->k_stride, s->k_stride, vh + b0 * s->v_stride,
		          s->v_stride, s->key_mask ? s->key_mask + b0 : NULL, nb, b.u, b.vaug,
		          b.shift);
		if (hi > lo) {
			size_t i0 = (size_t)lo, n = (size_t)(hi - lo);
			for (size_t r = 0; r < n; r++)
				b.vis[r] = (size_t)(off + (int64_t)(i0 + r) - (int64_t)b0) + 1;
			causal_rows(L, b.st, nb, qh + i0 * s->q_stride, s->q_stride, n,
			            oh + i0 * s->out_stride, s->out_stride, &b);
		}
		if (b0 + nb < k1)
			state_add(L, b.st, b.u, b.vaug, nb);
	}
	return RVA_OK;
}

/* ---- planning ----------------------------------------------------------------------- */

static float feat_flops(const lin_impl *L) {
	return L->map == RVA_FEATURES_ELU ? 0.0f : 2.0f * (float)L->m * (float)L->d;
}

static float row_flops(const lin_impl *L) {
	return feat_flops(L) + 2.0f * (float)L->m * (float)L->da;
}

static rva_status add_task(rva__graph *g, rva__task_fn fn, const lin_job *J, uint32_t seq,
                           size_t a, size_t b, float cost, uint32_t *id) {
	return rva__graph_add(g, fn, J, seq, (uint32_t)a, (uint32_t)b, 0, 0, cost, id);
}

static rva_status plan_seq(const rva_attention *att, rva__plan_io *io, size_t s,
                           rva__graph *g) {
	const lin_impl *L = att->state;
	const rva_seq *seq = &io->seqs[s];
	uint32_t after = rva__plan_after(io, s), sid = (uint32_t)s, id, join;
	size_t nq = seq->nq, nk = seq->nk, kvh = att->kv_heads, heads = att->cfg.heads;
	size_t chunk = L->chunk;
	lin_job *J = rva__graph_alloc(g, sizeof *J);
	uint32_t *ready = rva__graph_alloc_array(g, kvh, sizeof *ready);
	if (!J || !ready)
		return rva__propagate(RVA_ENOMEM);
	*J = (lin_job){.att = att, .L = L, .seq = seq, .group = heads / kvh};
	size_t c_first = 0, c_last = 0, nstate;
	int64_t off = (int64_t)nk - (int64_t)nq;
	if (L->causal) {
		c_first = (off > 0 ? (size_t)off : 0) / chunk;
		c_last = (nk - 1) / chunk;
		J->nslots = c_last + 1;
		nstate = c_last; /* the last chunk's own sum is never needed */
	} else {
		J->nslots = rva__div_up(nk, chunk);
		nstate = J->nslots;
	}
	size_t nstates;
	if (!rva__mul_ok(kvh, J->nslots, &nstates))
		return rva__fail(RVA_EOVERFLOW, "linear: %zu kv heads x %zu chunks overflow", kvh,
		                 J->nslots);
	J->states = rva__graph_alloc_array(g, nstates, L->sf * sizeof(float));
	if (!J->states)
		return rva__propagate(RVA_ENOMEM);
	rva_status st;
	for (size_t gk = 0; gk < kvh; gk++) {
		uint32_t merge = RVA__NO_TASK;
		ready[gk] = after;
		bool need_merge = L->causal ? nstate > 0 : nstate > 1;
		if (need_merge) {
			rva__task_fn fn = L->causal ? task_prefix : task_reduce;
			float cost = 2.0f * (float)J->nslots * (float)L->m * (float)L->da;
			if ((st = add_task(g, fn, J, sid, gk, 0, cost, &merge)) != RVA_OK)
				return st;
			ready[gk] = merge;
		}
		for (size_t c = 0; c < nstate; c++) {
			size_t n = rva__min(chunk, nk - c * chunk);
			if ((st = add_task(g, task_state, J, sid, gk, c, (float)n * row_flops(L),
			                   &id)) != RVA_OK ||
			    (st = rva__graph_edge(g, after, id)) != RVA_OK)
				return st;
			if (need_merge) {
				if ((st = rva__graph_edge(g, id, merge)) != RVA_OK)
					return st;
			} else {
				ready[gk] = id;
			}
		}
	}
	if ((st = rva__graph_add_join(g, sid, &join)) != RVA_OK)
		return st;
	size_t t0 = L->causal ? c_first : 0, t1 = L->causal ? c_last + 1 : rva__div_up(nq, chunk);
	for (size_t h = 0; h < heads; h++)
		for (size_t t = t0; t < t1; t++) {
			float cost = (float)rva__min(chunk, L->causal ? nk : nq) * row_flops(L);
			if (L->causal)
				cost *= 2.0f + (float)L->blk / (float)L->d;
			if ((st = add_task(g, L->causal ? task_out_c : task_out_nc, J, sid, h, t, cost,
			                   &id)) != RVA_OK ||
			    (st = rva__graph_edge(g, ready[h / J->group], id)) != RVA_OK ||
			    (st = rva__graph_edge(g, id, join)) != RVA_OK)
				return st;
		}
	io->done[s] = join;
	return RVA_OK;
}

static rva_status plan(const rva_attention *att, rva__plan_io *io, rva__graph *g) {
	const lin_impl *L = att->state;
	bool any = false;
	for (size_t s = 0; s < io->nseq; s++) {
		rva_status st;
		const rva_seq *seq = &io->seqs[s];
		if (io->seq_status[s] != RVA_OK || seq->nq == 0) {
			uint32_t join;
			if ((st = rva__graph_add_join(g, (uint32_t)s, &join)) != RVA_OK ||
			    (st = rva__graph_edge(g, rva__plan_after(io, s), join)) != RVA_OK)
				return st;
			io->done[s] = join;
			continue;
		}
		if ((st = plan_seq(att, io, s, g)) != RVA_OK)
			return st;
		any = true;
	}
	if (any) {
		rva__graph_need_scratch(g, L->scratch[LIN_K_STATE]);
		rva__graph_need_scratch(g, L->scratch[L->causal ? LIN_K_PREFIX : LIN_K_OUT_NC]);
		if (L->causal)
			rva__graph_need_scratch(g, L->scratch[LIN_K_OUT_C]);
	}
	return RVA_OK;
}

/* ---- rows(): a subset of query rows, synchronously (MoE experts) -------------------- */

static size_t rows_scratch(const rva_attention *att, const rva_seq *seq, size_t nrows) {
	const lin_impl *L = att->state;
	(void)seq;
	(void)nrows;
	return L->scratch[L->causal ? LIN_K_ROWS_C : LIN_K_ROWS_NC];
}

/* Copies n query rows (head slice of d floats, row stride ldq) into a packed block. */
static void gather(const float *q, size_t ldq, size_t n, size_t d, float *dst) {
	for (size_t r = 0; r < n; r++)
		memcpy(dst + r * d, q + r * ldq, d * sizeof(float));
}

static void rows_nc(const rva_attention *att, const rva_seq *s, const uint32_t *rows,
                    size_t nrows, float *out, size_t ldo, void *scratch) {
	const lin_impl *L = att->state;
	size_t d = L->d, group = att->cfg.heads / att->kv_heads;
	lin_bufs b;
	layout(L, LIN_K_ROWS_NC, scratch, &b);
	for (size_t g = 0; g < att->kv_heads; g++) {
		state_init(L, b.st);
		scan_keys(L, b.st, RVA__F32(s->k) + g * d, s->k_stride, RVA__F32(s->v) + g * d, s->v_stride,
		          s->key_mask, s->nk, &b);
		for (size_t h = g * group; h < (g + 1) * group; h++)
			for (size_t r = 0; r < nrows; r += L->nb) {
				size_t n = rva__min(L->nb, nrows - r);
				gather(RVA__F32(s->q) + r * s->q_stride + h * d, s->q_stride, n, d, b.qg);
				emit_rows(L, b.st, b.qg, d, n, out + r * ldo + h * d, ldo, &b);
			}
	}
}

static void rows_c(const rva_attention *att, const rva_seq *s, const uint32_t *rows,
                   size_t nrows, float *out, size_t ldo, void *scratch) {
	const lin_impl *L = att->state;
	size_t d = L->d, group = att->cfg.heads / att->kv_heads, nk = s->nk;
	int64_t off = (int64_t)nk - (int64_t)s->nq;
	lin_bufs b;
	layout(L, LIN_K_ROWS_C, scratch, &b);
	for (size_t h = 0; h < att->cfg.heads; h++) {
		size_t g = h / group, r = 0;
		const float *kh = RVA__F32(s->k) + g * d, *vh = RVA__F32(s->v) + g * d;
		state_init(L, b.st);
		while (r < nrows && off + (int64_t)rows[r] < 0) /* before the first key */
			memset(out + r++ * ldo + h * d, 0, d * sizeof(float));
		if (r == nrows)
			continue;
		size_t last = (size_t)(off + (int64_t)rows[nrows - 1]);
		for (size_t b0 = 0; b0 <= last; b0 += L->blk) {
			size_t nb = rva__min(L->blk, nk - b0);
			key_block(L, b.st, kh + b0 * s->k_stride, s->k_stride, vh + b0 * s->v_stride,
			          s->v_stride, s->key_mask ? s->key_mask + b0 : NULL, nb, b.u, b.vaug,
			          b.shift);
			while (r < nrows && (size_t)(off + (int64_t)rows[r]) < b0 + nb) {
				size_t n = 0;
				while (r + n < nrows && n < L->blk &&
				       (size_t)(off + (int64_t)rows[r + n]) < b0 + nb) {
					b.vis[n] = (size_t)(off + (int64_t)rows[r + n]) - b0 + 1;
					n++;
				}
				gather(RVA__F32(s->q) + r * s->q_stride + h * d, s->q_stride, n, d, b.qg);
				causal_rows(L, b.st, nb, b.qg, d, n, out + r * ldo + h * d, ldo, &b);
				r += n;
			}
			if (b0 + nb <= last)
				state_add(L, b.st, b.u, b.vaug, nb);
		}
	}
}

static rva_status rows_fn(const rva_attention *att, const rva_seq *seq, uint32_t seq_index,
                          const rva_runtime *rt, const uint32_t *rows, size_t nrows,
                          float *out, size_t out_stride, void *scratch) {
	(void)seq_index;
	(void)rt;
	if (nrows == 0)
		return RVA_OK;
	if (!seq || !rows || !out || !scratch)
		return rva__fail(RVA_ENULL, "linear rows: NULL argument");
	rva_seq s;
	rva__normalise_seq(att, seq, &s);
	if (s.nk == 0)
		return rva__fail(RVA_EEMPTY, "linear rows: sequence has %zu queries but no keys",
		                 s.nq);
	for (size_t r = 0; r < nrows; r++)
		if (rows[r] >= s.nq || (r > 0 && rows[r] < rows[r - 1]))
			return rva__fail(RVA_EINVAL, "linear rows: row %zu is %u (nq %zu, rows must "
			                 "ascend)", r, rows[r], s.nq);
	if (!out_stride)
		out_stride = att->cfg.dim;
	if (att->cfg.causal)
		rows_c(att, &s, rows, nrows, out, out_stride, scratch);
	else
		rows_nc(att, &s, rows, nrows, out, out_stride, scratch);
	return RVA_OK;
}

/* ---- flops -------------------------------------------------------------------------- */

static double flops(const rva_attention *att, const rva_seq *seq) {
	const lin_impl *L = att->state;
	if (seq->nq == 0 || seq->nk == 0)
		return 0.0;
	double nk = (double)seq->nk, nq = (double)seq->nq, row = row_flops(L);
	double heads = (double)att->cfg.heads, kvh = (double)att->kv_heads;
	if (!L->causal)
		return kvh * nk * row + heads * nq * row;
	/* State tasks, then per head: the keys of the chunks holding queries again, and per
	 * query its features, the state product and the causal block (C keys). */
	int64_t off = (int64_t)seq->nk - (int64_t)seq->nq;
	size_t c_first = (off > 0 ? (size_t)off : 0) / L->chunk, c_last = (seq->nk - 1) / L->chunk;
	double keys_again = fmin(nk, (double)(c_last - c_first + 1) * (double)L->chunk);
	double blk = (double)L->blk;
	return kvh * nk * row +
	       heads * (keys_again * row + nq * (row + blk * ((double)L->m + (double)L->da)));
}

/* ---- build -------------------------------------------------------------------------- */

/*
 * W (m x d): ceil(m/d) blocks of d x d Gaussian matrices whose rows are orthonormalised
 * (modified Gram-Schmidt, two passes, in double), stacked and truncated to m rows, each
 * row scaled by the norm of an independent N(0, I_d) sample; or i.i.d. N(0, 1) entries.
 */
static rva_status draw_features(size_t m, size_t d, bool orthogonal, uint64_t seed,
                                float *w) {
	rva__rng rng;
	rva__rng_seed(&rng, seed);
	if (!orthogonal) {
		for (size_t i = 0; i < m * d; i++)
			w[i] = (float)rva__rng_normal(&rng);
		return RVA_OK;
	}
	/* Only the rows used are drawn and orthogonalised: O(rows^2 d) per block, not
	 * O(d^3) (a head_dim of thousands with few features would take minutes). */
	double *blk;
	rva_status st = rva__alloc_array((void **)&blk, rva__min(d, m), d * sizeof(double),
	                                 "linear: orthogonal block");
	if (st != RVA_OK)
		return st;
	for (size_t r0 = 0; r0 < m; r0 += d) {
		size_t rows = rva__min(d, m - r0);
		for (size_t i = 0; i < rows; i++) {
			double *bi = blk + i * d;
			for (int attempt = 0;; attempt++) {
				if (attempt == 64) {
					rva__free(blk);
					return rva__fail(RVA_EINTERNAL, "linear: cannot orthogonalise a "
					                 "random block (d = %zu)", d);
				}
				double n0 = 0.0, n1 = 0.0;
				for (size_t t = 0; t < d; t++) {
					bi[t] = rva__rng_normal(&rng);
					n0 += bi[t] * bi[t];
				}
				for (int pass = 0; pass < 2; pass++)
					for (size_t j = 0; j < i; j++) {
						const double *bj = blk + j * d;
						double dot = 0.0;
						for (size_t t = 0; t < d; t++)
							dot += bi[t] * bj[t];
						for (size_t t = 0; t < d; t++)
							bi[t] -= dot * bj[t];
					}
				for (size_t t = 0; t < d; t++)
					n1 += bi[t] * bi[t];
				if (n1 > 1e-20 * n0 && n1 > 0.0) {
					double inv = 1.0 / sqrt(n1);
					for (size_t t = 0; t < d; t++)
						bi[t] *= inv;
					break;
				}
			}
		}
		for (size_t i = 0; i < rows * d; i++)
			w[r0 * d + i] = (float)blk[i];
	}
	rva__free(blk);
	for (size_t i = 0; i < m; i++) {
		double n2 = 0.0;
		for (size_t t = 0; t < d; t++) {
			double z = rva__rng_normal(&rng);
			n2 += z * z;
		}
		float scale = (float)sqrt(n2);
		for (size_t t = 0; t < d; t++)
			w[i * d + t] *= scale;
	}
	return RVA_OK;
}

static rva_status build(rva_attention *att) {
	rva_config *c = &att->cfg;
	lin_impl *L = rva__calloc(1, sizeof *L);
	if (!L)
		return rva__fail(RVA_ENOMEM, "linear: cannot allocate the attention state");
	att->state = L;
	L->map = c->feature_map;
	L->causal = c->causal;
	L->d = att->head_dim;
	L->da = L->d + 1;
	L->m = L->map == RVA_FEATURES_ELU ? L->d : c->features;
	L->c = sqrtf(att->scale);
	L->half_s = 0.5f * att->scale;
	L->relu_a = 1.0f / sqrtf((float)L->m);
	if (c->heads > UINT32_MAX)
		return rva__fail(RVA_ERANGE, "linear: %zu heads exceed 2^32-1", c->heads);
	L->blk = c->block_size;
	if (!rva__mul_ok(L->blk, LIN_SUPER, &L->chunk))
		return rva__fail(RVA_ERANGE, "linear: block_size %zu too large", L->blk);
	L->nb = rva__min(LIN_NB, L->chunk);
	size_t md;
	if (!rva__mul_ok(L->m, L->da, &md) || md > SIZE_MAX / sizeof(float) - 64)
		return rva__fail(RVA_EOVERFLOW, "linear: %zu features x head_dim %zu overflows",
		                 L->m, L->d);
	L->sf = rva__round_up(md + 1, 16);
	if (L->map != RVA_FEATURES_ELU) {
		size_t n = L->m * L->d;
		if (!att->feature_matrix) {
			float *w;
			rva_status st = rva__alloc_array((void **)&w, L->m, L->d * sizeof(float),
			                                 "linear: feature matrix");
			if (st != RVA_OK)
				return st;
			att->feature_matrix = w;
			if ((st = draw_features(L->m, L->d, c->orthogonal, c->seed, w)) != RVA_OK)
				return st;
		} else {
			for (size_t i = 0; i < n; i++)
				if (!isfinite(att->feature_matrix[i]))
					return rva__fail(RVA_ERANGE, "linear: feature_matrix[%zu][%zu] = %g is "
					                 "not finite", i / L->d, i % L->d,
					                 (double)att->feature_matrix[i]);
		}
		c->feature_matrix = att->feature_matrix;
		L->w = att->feature_matrix;
	}
	for (int k = 0; k < LIN_NKINDS; k++)
		if ((L->scratch[k] = layout(L, k, NULL, NULL)) == 0)
			return rva__fail(RVA_EOVERFLOW, "linear: scratch for block_size %zu, %zu "
			                 "features, head_dim %zu overflows", L->blk, L->m, L->d);
	L->k = rva__lin_kernels();
	return RVA_OK;
}

static void destroy(rva_attention *att) {
	rva__free(att->state);
	att->state = NULL;
}

const rva__mech_ops rva__linear_ops = {
	.mechanism = RVA_MECH_LINEAR,
	.build = build,
	.destroy = destroy,
	.plan = plan,
	.rows = rows_fn,
	.rows_scratch = rows_scratch,
	.flops = flops,
};

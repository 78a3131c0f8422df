/*
 * Softmax attention on tiles (FlashAttention-2 forward):
 *
 *   for each task (sequence, head group, query tile of query_block rows):
 *     for each key tile of block_size keys, in order:
 *       skip it if the pattern masks it entirely (causal tiles above the diagonal,
 *       Longformer tiles outside the band, ...);
 *       S = scale * K_tile . Q_tile^T (+ T5 bias) (-inf where masked)
 *       online softmax: m, l per query row; P = exp(S - m); O = alpha * O + P^T V
 *     out = O / l  (a row with no visible key gets 0)
 *
 * The nq x nk score matrix is never materialised: scratch per worker is O(tile).
 * Decoding (few queries, many keys) splits the key range into chunks whose partial
 * (m, l, O) are merged in chunk order by a reduction task (flash-decoding).
 * Tiling depends only on the config and the shapes, never on threads: the output is
 * bit-identical for any thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention/pattern.h"
#include "attention/position_bias.h"
#include "attention/rope.h"
#include "attention/score_mods.h"
#include "attention/softmax_core.h"
#include "attention/softmax_half.h"
#include "attention/softmax_kernels.h"
#include "attention/softmax_part.h"
#include "core/internal.h"
#include "kernels/gemm.h"
#include "kernels/vexp.h"

typedef struct sm_state {
	rva__pattern pattern;
	size_t *global_sorted;      /* sorted unique copy of global_indices */
	rva__t5_buckets t5;
	bool has_t5;
	rva__score_mods mods;       /* causal alignment, window, softcap, ALiBi */
	rva__rope rope;             /* RoPE (rope.h): queries and keys rotated per job */
	rva__pattern band;          /* the pattern's band (pattern.h, rva__pattern_band) */
	bool sparse;                /* a sparse pattern: prefill runs its block-sparse form */
} sm_state;

/* Per-op planning context, in the job arena. */
typedef struct sm_op {
	const rva_attention *att;
	const rva_seq *seqs;
	rva_runtime rt;
	float scale;                /* logit scale of this call (rt.scale, or the config's) */
	uint32_t stream;
	float **partials;           /* per sequence: [heads][chunks][rows] x (Dv + 2), or NULL */
	size_t *nchunks;            /* per sequence: key chunks (split-KV / decode) */
	size_t *chunk_len;          /* per sequence: keys per chunk */
	size_t chunk_base;          /* partials hold chunks from this one on (0 in the engine) */
	size_t kv_origin;           /* global key row of seq->k / seq->v row 0 (0 in the engine;
	                             * a rank's slice of the keys in rvattn_mpi) */
	bool direct;                /* a decode task of a one-chunk sequence writes the output
	                             * itself (no partials, no merge task): the engine's plan */
	const rva__kv_pages *pages; /* NULL, or per sequence its paged K/V rows (kv_pages.h) */
} sm_op;

/* The logit scale of a call: the runtime's per-call scale, or the config's. */
static float call_scale(const rva_attention *att, const rva_runtime *rt) {
	return rt && rt->scale > 0.0f ? rt->scale : att->scale;
}

/* ---- build ---------------------------------------------------------------------------- */

static int cmp_size(const void *a, const void *b) {
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

void rva__softmax_destroy(rva_attention *att) {
	sm_state *s = att->state;
	if (!s)
		return;
	rva__free(s->global_sorted);
	rva__rope_free(&s->rope);
	if (s->has_t5)
		rva__t5_buckets_free(&s->t5);
	rva__free(s);
	att->state = NULL;
}

rva_status rva__softmax_build(rva_attention *att) {
	const rva_config *c = &att->cfg;
	sm_state *s = rva__calloc(1, sizeof *s);
	if (!s)
		return rva__fail(RVA_ENOMEM, "%s: cannot allocate state", rva_mechanism_name(c->mechanism));
	att->state = s;
	rva__score_mods_init(&s->mods, c, att->alibi_slopes);
	rva_status rst = rva__rope_init(&s->rope, c, att->head_dim);
	if (rst != RVA_OK)
		return rst;
	s->pattern.causal = c->causal;
	if (c->mechanism == RVA_MECH_LOCAL_GLOBAL) {
		s->pattern.kind = RVA__PAT_LOCAL_GLOBAL;
		/* Positions stay below 2^32: a wider window (or stride, below) is the same as
		 * 2^40, and the pattern's int64 arithmetic must not overflow. */
		s->pattern.window = (int64_t)rva__min(c->window, (size_t)1 << 40);
		if (c->n_global_indices > 0) {
			rva_status st = rva__alloc_array((void **)&s->global_sorted, c->n_global_indices,
			                                 sizeof(size_t), "global token list");
			if (st != RVA_OK)
				return st;
			memcpy(s->global_sorted, c->global_indices, c->n_global_indices * sizeof(size_t));
			qsort(s->global_sorted, c->n_global_indices, sizeof(size_t), cmp_size);
			size_t n = 0; /* unique */
			for (size_t i = 0; i < c->n_global_indices; i++)
				if (n == 0 || s->global_sorted[n - 1] != s->global_sorted[i])
					s->global_sorted[n++] = s->global_sorted[i];
			s->pattern.global = s->global_sorted;
			s->pattern.nglobal = n;
		} else {
			s->pattern.global_first = c->global_tokens;
		}
	} else if (c->pattern != RVA_PATTERN_DENSE) {
		s->pattern.kind = c->pattern == RVA_PATTERN_STRIDED ? RVA__PAT_STRIDED : RVA__PAT_FIXED;
		s->pattern.stride = (int64_t)rva__min(c->sparse_stride, (size_t)1 << 40);
		s->pattern.summary = (int64_t)rva__min(c->sparse_summary, (size_t)s->pattern.stride);
	}
	s->sparse = rva__pattern_band(&s->pattern, &s->band);
	if (c->bias == RVA_BIAS_T5) {
		rva_status st = rva__t5_buckets_init(&s->t5, !c->causal, c->bias_buckets,
		                                     c->bias_max_distance);
		if (st != RVA_OK)
			return st;
		s->has_t5 = true;
		if (!att->bias_table) {
			/* A learned table is the caller's to supply; without one, a seeded
			 * N(0, 0.1^2) initialisation, as a freshly initialised T5 layer. */
			st = rva__alloc_array((void **)&att->bias_table, c->bias_buckets * c->heads,
			                      sizeof(float), "T5 bias table");
			if (st != RVA_OK)
				return st;
			rva__rng r;
			rva__rng_seed(&r, c->seed ^ 0x75B1A5ull);
			for (size_t i = 0; i < c->bias_buckets * c->heads; i++)
				att->bias_table[i] = (float)(0.1 * rva__rng_normal(&r));
			att->cfg.bias_table = att->bias_table;
		}
	}
	return RVA_OK;
}

/* ---- the tile loop ---------------------------------------------------------------------- */

/* Position of query row 0 of seq (config.h, causal_align). */
static int64_t qpos0(const rva_attention *att, size_t nq, size_t nk) {
	const sm_state *s = att->state;
	return rva__score_qpos0(&s->mods, nq, nk);
}

/* Scratch of one tile loop call with br query rows (floats; +16 slack for the PV kernel's
 * padded-lane reads and alignment). */
static size_t tile_scratch_floats(const rva_attention *att, size_t br, size_t qspan) {
	size_t D = att->head_dim, Dv = att->v_head_dim, bc = att->cfg.block_size;
	size_t brp = rva__round_up(br, 16), Dm = rva__max(D, Dv);
	size_t f = bc * brp + 16      /* St */
	           + D * brp          /* packed Q^T */
	           + br * Dv + 16     /* O */
	           + 3 * brp          /* m, l, alpha */
	           + qspan + bc + 16  /* T5 bias by distance */
	           + 2 * brp          /* query positions (int64) */
	           + rva__smh_tile_floats(br, bc, Dm) /* half operands (softmax_half.h) */
	           + bc * (D + Dv);   /* K and V tiles gathered from pages (kv_tile) */
	return rva__round_up(f, 16) + 192; /* alignment of the carved buffers */
}

typedef struct tile_io {
	const void *q;       /* row r of the head slice at element r*qs (type seq->q_dtype) */
	size_t qs;
	const int64_t *qpos; /* br ascending positions */
	size_t q0;           /* query row of row 0 (the rows of a tile are consecutive) */
	size_t br;
	size_t h;            /* query head */
	size_t k_begin, k_end;
	float *o, *m, *l;    /* outputs: O (br x Dv, ld Dv), m, l (brp lanes) */
	bool resume;         /* continue the state in o, m, l instead of starting afresh */
	const rva__kv_pages *pg; /* the sequence's paged K/V, or NULL (contiguous) */
	const rva__pattern *pat; /* the pattern of the key tiles; NULL = the attention's */
	bool gathered_rows;  /* rows not consecutive (strided residues): q0 is meaningless */
	bool q_packed;       /* the scratch already holds these rows' packed Q (a previous
	                      * call of the tile loop on the same rows and scratch) */
} tile_io;

static inline float *align16f(float *p) {
	return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* Adds the T5 bias and the score modifiers and masks per element, key-major St; `partial`:
 * the pattern to test each pair against, or NULL (the tile is not partial for it);
 * `capped`: the score pass applied the softcap already. */
static void tile_bias_mask(const rva_attention *att, const sm_state *s, const rva_seq *seq,
                           const tile_io *io, size_t k0, size_t nkt, float *st, size_t brp,
                           const rva__pattern *partial, bool window_partial, bool capped,
                           float *lut, size_t lut_cap) {
	const int64_t *qp = io->qpos;
	size_t br = io->br;
	if (!capped) /* on the scaled logits, first */
		rva__score_softcap_tile(&s->mods, st, brp, br, nkt);
	if (s->has_t5) {
		const float *table = att->bias_table;
		size_t H = att->cfg.heads, h = io->h;
		/* rp = kp - qp ranges over [k0 - qp[br-1], k0 + nkt - 1 - qp[0]] */
		int64_t rlo = (int64_t)k0 - qp[br - 1];
		size_t span = (size_t)((int64_t)k0 + (int64_t)nkt - 1 - qp[0] - rlo + 1);
		if (span <= lut_cap) {
			for (size_t x = 0; x < span; x++)
				lut[x] = table[rva__t5_lookup(&s->t5, rlo + (int64_t)x) * H + h];
			for (size_t j = 0; j < nkt; j++) {
				float *row = st + j * brp;
				int64_t kp = (int64_t)(k0 + j);
				for (size_t i = 0; i < br; i++)
					row[i] += lut[kp - qp[i] - rlo];
			}
		} else {
			for (size_t j = 0; j < nkt; j++)
				for (size_t i = 0; i < br; i++)
					st[j * brp + i] +=
						table[rva__t5_lookup(&s->t5, (int64_t)(k0 + j) - qp[i]) * H + h];
		}
	}
	if (s->mods.slopes || seq->bias || seq->mask || window_partial)
		rva__score_tile(&s->mods, seq, io->h, io->q0, qp, br, k0, nkt, st, brp, window_partial);
	if (partial)
		rva__pattern_mask_tile(partial, qp, br, k0, nkt, st, brp);
	if (seq->key_mask)
		for (size_t j = 0; j < nkt; j++)
			if (!seq->key_mask[k0 + j]) {
				float *row = st + j * brp;
				for (size_t i = 0; i < brp; i++)
					row[i] = -INFINITY;
			}
	/* Padded lanes must not produce NaN/inf surprises: give them -inf scores. */
	for (size_t j = 0; j < nkt; j++)
		for (size_t i = br; i < brp; i++)
			st[j * brp + i] = -INFINITY;
}

/* Attention dropout (training): P *= keep / (1 - p), counter-based per (row, key). */
static void tile_dropout(const rva_attention *att, const sm_op *op, uint32_t seq_index,
                         const tile_io *io, size_t k0, size_t nkt, float *st, size_t brp) {
	float p = att->cfg.dropout, inv = 1.0f / (1.0f - p);
	uint64_t key = rva__hash3(op->rt.seed, op->rt.step, ((uint64_t)op->stream << 32) | 0xD0);
	uint64_t sh = ((uint64_t)seq_index << 20) ^ io->h;
	for (size_t j = 0; j < nkt; j++)
		for (size_t i = 0; i < io->br; i++) {
			uint64_t ctr = ((uint64_t)(uint32_t)io->qpos[i] << 32) | (uint32_t)(k0 + j);
			float u = rva__u01(rva__hash3(key, sh, ctr));
			st[j * brp + i] *= u >= p ? inv : 0.0f;
		}
}

/*
 * K (v: V) rows [kr, kr + n) of the head slice at element `off` of each row: a pointer to
 * row kr's slice and, in *stride, the row stride in elements. Contiguous rows and paged
 * rows within one run (kv_pages.h) are read in place; a tile that spans runs is gathered into buf
 * (n x D elements of the tensor's type, stride D; D is Dv for V), so every kernel sees the same values
 * in the same order as over contiguous K/V.
 */
static const void *kv_tile(const rva__kv_pages *pg, const rva_seq *seq, bool v, size_t kr,
                           size_t n, size_t off, size_t D, void *buf, size_t *stride) {
	size_t st = v ? seq->v_stride : seq->k_stride;
	if (!rva__kv_paged(pg) || rva__kv_run(pg, kr, n) >= n) {
		*stride = st;
		return rva__kv_elem(pg, seq, v, kr, off);
	}
	size_t es = rva__dtype_size(v ? seq->v_dtype : seq->k_dtype);
	for (size_t r = 0; r < n; r++)
		memcpy((char *)buf + r * D * es, rva__kv_elem(pg, seq, v, kr + r, off), D * es);
	*stride = D;
	return buf;
}

/*
 * One call's tile machinery (attend, attend_keys): the scratch carved into the score tile,
 * packed Q, T5 table and half-precision operands, and which kernels run. Starting it
 * resets O, m, l unless io->resume, and packs Q.
 */
typedef struct tile_run {
	const rva_attention *att;
	const sm_op *op;
	const sm_state *s;
	const rva_seq *seq;
	uint32_t seq_index;
	const tile_io *io;
	size_t D, Dv, khs, vhs, bc, br, brp, kvh, lut_cap, qs; /* Dv: V head dim; khs, vhs: head strides */
	bool fused, small, bf16, dropout;
	float *st, *qt, *lut, *alpha, *hk, *hv, *gk, *gv;
	uint32_t *hp, *hqp, *hvp;
	const float *q;
} tile_run;

static void tile_run_start(tile_run *r, const rva_attention *att, const sm_op *op,
                           const rva_seq *seq, uint32_t seq_index, const tile_io *io,
                           float *scratch) {
	size_t D = att->head_dim, Dv = att->v_head_dim, bc = att->cfg.block_size, br = io->br;
	size_t brp = rva__round_up(br, 16);
	r->att = att;
	r->op = op;
	r->s = att->state;
	r->seq = seq;
	r->seq_index = seq_index;
	r->io = io;
	r->D = D;
	r->Dv = Dv;
	r->khs = rva__head_stride(seq->k_head_stride, D);
	r->vhs = rva__head_stride(seq->v_head_stride, Dv);
	r->bc = bc;
	r->br = br;
	r->brp = brp;
	r->kvh = io->h / (att->cfg.heads / att->kv_heads);
	r->fused = rva__sm_use_fused();
	r->small = br < 8;
	r->st = align16f(scratch);
	r->qt = align16f(r->st + bc * brp + 16);
	r->lut = r->qt + D * brp;
	/* T5 distances of rows that are not consecutive (gathered) may span far more than the
	 * scratch holds: those tiles look the table up per element (tile_bias_mask) */
	r->lut_cap = io->gathered_rows ? br + bc + 1
	                               : (size_t)(io->qpos[br - 1] - io->qpos[0]) + bc + 1;
	r->alpha = align16f(r->lut + r->lut_cap);
	/* fp32 operands of half tensors (softmax_half.h): Q once, K and V per tile */
	float *hq = align16f(r->alpha + brp);
	r->hk = align16f(hq + br * D);
	r->hv = align16f(r->hk + bc * D);
	r->hp = (uint32_t *)align16f(r->hv + bc * Dv);                       /* bf16 P pairs */
	r->hqp = (uint32_t *)align16f((float *)(r->hp + (bc + 1) / 2 * brp)); /* Q pairs */
	r->hvp = (uint32_t *)align16f((float *)(r->hqp + (D + 1) / 2 * brp)); /* V pairs */
	/* K and V tiles gathered from pages (kv_tile) or from scattered rows (attend_keys) */
	r->gk = align16f((float *)(r->hvp + rva__smh_vpack_words(bc, Dv)));
	r->gv = align16f(r->gk + bc * D);
	r->bf16 = r->fused && !r->small && rva__smh_bf16_tiles(seq); /* vdpbf16ps tiles */
	r->q = rva__smh_operand(seq->q_dtype, io->q, io->qs, 0, br, D, seq->k_dtype == RVA_BF16,
	                        hq, &r->qs);
	r->dropout = op->rt.training && att->cfg.dropout > 0.0f;
	if (!io->resume) {
		for (size_t i = 0; i < brp; i++) {
			io->m[i] = -INFINITY;
			io->l[i] = 0.0f;
		}
		memset(io->o, 0, br * Dv * sizeof(float));
	}
	if (io->q_packed)
		return;
	if (r->bf16)
		rva__smh_pack_q_bf16(r->q, r->qs, br, brp, D, r->hqp);
	else if (r->fused && !r->small)
		rva__sm_pack_qt(r->q, r->qs, br, brp, D, op->scale, r->qt);
}

/* Scores of a key tile (K rows kraw, stride ksr) into r->st; returns the fp32 V operand
 * (NULL on the bf16 path, which reads V raw) and its stride in *vts. */
static const float *tile_scores(tile_run *r, const void *kraw, size_t ksr, const void *vraw,
                                size_t vsr, size_t nkt, size_t *vts) {
	const rva_seq *seq = r->seq;
	size_t D = r->D, kts = 0;
	if (r->bf16) {
		rva__smh_scores_bf16(kraw, ksr, nkt, r->hqp, r->brp, D, r->op->scale, r->st);
		return NULL;
	}
	const float *kt = rva__smh_operand(seq->k_dtype, kraw, ksr, 0, nkt, D, false, r->hk, &kts);
	const float *vt = rva__smh_operand(seq->v_dtype, vraw, vsr, 0, nkt, r->Dv, false, r->hv, vts);
	if (!r->fused)
		rva__sgemm(false, true, nkt, r->br, D, r->op->scale, kt, kts, r->q, r->qs, 0.0f, r->st,
		           r->brp);
	else if (r->small)
		rva__sm_scores_dot(kt, kts, nkt, r->q, r->qs, r->br, r->brp, D, r->op->scale, r->st);
	else /* the softcap in the score pass */
		rva__sm_scores_fused_capped(kt, kts, nkt, r->qt, r->brp, D, r->s->mods.softcap, r->st);
	return vt;
}

/* Whether tile_scores applied the softcap itself (the fused fp32 score pass). */
static inline bool tile_capped(const tile_run *r) { return r->fused && !r->small && !r->bf16; }

/* Online softmax of the masked scores in r->st: P in place, O rescaled. */
static void tile_softmax(tile_run *r, size_t nkt) {
	const tile_io *io = r->io;
	if (rva__sm_online_softmax(r->st, r->brp, nkt, io->m, io->l, r->alpha))
		rva__sm_rescale(io->o, r->br, r->Dv, r->alpha);
}

/* O += P V (V rows vraw / vt) after tile_softmax (and dropout on P). */
static void tile_pv(tile_run *r, const void *vraw, size_t vsr, const float *vt, size_t vts,
                    size_t nkt) {
	const tile_io *io = r->io;
	size_t brp = r->brp;
	if (r->bf16) { /* P rounded to bf16 as it is paired */
		rva__smh_pv_bf16(r->st, brp, nkt, vraw, vsr, r->br, r->Dv, io->o, r->hp, r->hvp);
		return;
	}
	rva__smh_round_p(r->seq, r->st, nkt * brp); /* bf16 P for a bf16 V */
	if (r->fused)
		rva__sm_pv_fused(r->st, brp, nkt, vt, vts, r->br, r->Dv, io->o);
	else
		rva__sgemm(true, false, r->br, r->Dv, nkt, 1.0f, r->st, brp, vt, vts, 1.0f, io->o, r->Dv);
}

/* The tile loop for one head over keys [k_begin, k_end), tiles classified and masked by
 * io->pat (the attention's pattern when NULL). */
static void attend(const rva_attention *att, const sm_op *op, const rva_seq *seq,
                   uint32_t seq_index, const tile_io *io, float *scratch) {
	const sm_state *s = att->state;
	const rva__pattern *pat = io->pat ? io->pat : &s->pattern;
	tile_run r;
	tile_run_start(&r, att, op, seq, seq_index, io, scratch);
	size_t D = r.D, bc = r.bc, br = r.br, brp = r.brp;
	int64_t qa = io->qpos[0], qb = io->qpos[br - 1];
	/* The sliding window: tiles wholly before its first key are never visited (the tile
	 * grid stays the multiples of bc from k_begin); the loop ends past its last key. */
	int64_t wfirst = rva__window_first_key(&s->mods, qa), wlast = rva__window_last_key(&s->mods, qb);
	if (s->pattern.causal && qb < wlast)
		wlast = qb;
	size_t kstart = io->k_begin;
	if (wfirst > (int64_t)kstart)
		kstart += ((size_t)wfirst - kstart) / bc * bc;
	for (size_t k0 = kstart; k0 < io->k_end; k0 += bc) {
		size_t nkt = rva__min(bc, io->k_end - k0);
		if ((int64_t)k0 > wlast)
			break; /* every later tile lies above the diagonal or past the window */
		nkt = rva__min(nkt, (size_t)(wlast - (int64_t)k0) + 1); /* trim the last tile */
		int64_t ka = (int64_t)k0, kb = (int64_t)(k0 + nkt - 1);
		rva__tile_class pcls = rva__pattern_classify(pat, qa, qb, ka, kb);
		rva__tile_class wcls = rva__window_classify(&s->mods, qa, qb, ka, kb);
		if (rva__tile_class_and(pcls, wcls) == RVA__TILE_NONE)
			continue;
		size_t kr = k0 - op->kv_origin; /* row in the seq's K/V slice */
		size_t ksr, vsr, vts = 0; /* row strides of the K / V tiles (in place or gathered) */
		const void *kraw = kv_tile(io->pg, seq, false, kr, nkt, r.kvh * r.khs, D, r.gk, &ksr);
		const void *vraw = kv_tile(io->pg, seq, true, kr, nkt, r.kvh * r.vhs, r.Dv, r.gv, &vsr);
		const float *vt = tile_scores(&r, kraw, ksr, vraw, vsr, nkt, &vts);
		tile_bias_mask(att, s, seq, io, k0, nkt, r.st, brp, pcls == RVA__TILE_PARTIAL ? pat : NULL,
		               wcls == RVA__TILE_PARTIAL, tile_capped(&r), r.lut, r.lut_cap);
		tile_softmax(&r, nkt);
		if (r.dropout)
			tile_dropout(att, op, seq_index, io, k0, nkt, r.st, brp);
		tile_pv(&r, vraw, vsr, vt, vts, nkt);
	}
}

/*
 * Gathered keys (pattern.h, rva__pattern_band): key t of a list sits at position
 * first + t * step, or, with shared set, at the pattern's shared key t. Which pairs of a
 * gathered tile are visible (beyond causal, the window and the sequence's masks):
 *   KEYS_OUTSIDE_BAND: those the band does not already cover (local-global global keys,
 *                      fixed summaries);
 *   KEYS_STRIDED:      kp <= qp - l (the strided pattern's keys qp - t l, t >= 1; the list
 *                      holds one residue class, that of the rows).
 */
#define GATHER_MAX 512 /* keys per gathered tile, at most (and at most block_size) */

typedef enum keys_rule { KEYS_OUTSIDE_BAND, KEYS_STRIDED } keys_rule;

typedef struct key_list {
	const rva__pattern *shared; /* the pattern whose shared keys these are, or NULL */
	int64_t first, step;
	keys_rule rule;
} key_list;

static inline int64_t key_at(const key_list *kl, size_t t) {
	return kl->shared ? rva__pattern_shared_key(kl->shared, t)
	                  : kl->first + (int64_t)t * kl->step;
}

/* K and V rows of list entries [first, ...) gathered once by the caller, contiguous (row
 * stride D / Dv elements of the tensors' types): attend_keys reads them in place. */
typedef struct key_rows {
	const void *k, *v;
	size_t first;
} key_rows;

/*
 * Attends keys [t0, t1) of the list kl in tiles of block_size gathered rows (K and V rows
 * copied into the tile scratch, from pages too, or read in place from `pre` when the caller
 * gathered them), continuing io's state (io->resume should be set). `all_visible`: the rule
 * lets every (row, key) pair of the range through, so no pair is tested.
 */
static void attend_keys(const rva_attention *att, const sm_op *op, const rva_seq *seq,
                        uint32_t seq_index, const tile_io *io, float *scratch, const key_list *kl,
                        size_t t0, size_t t1, bool all_visible, const key_rows *pre) {
	const sm_state *s = att->state;
	tile_run r;
	tile_run_start(&r, att, op, seq, seq_index, io, scratch);
	size_t D = r.D, bc = r.bc, br = r.br, brp = r.brp;
	size_t kes = rva__dtype_size(seq->k_dtype), ves = rva__dtype_size(seq->v_dtype);
	int64_t kpos[GATHER_MAX];
	const int64_t *qp = io->qpos;
	bool elementwise = s->has_t5 || rva__score_elementwise(&s->mods, seq) || seq->key_mask;
	for (size_t c0 = t0; c0 < t1;) {
		size_t nkt = rva__min(rva__min(bc, GATHER_MAX), t1 - c0);
		const void *kg = r.gk, *vg = r.gv;
		for (size_t j = 0; j < nkt; j++)
			kpos[j] = key_at(kl, c0 + j);
		if (pre) {
			kg = (const char *)pre->k + (c0 - pre->first) * D * kes;
			vg = (const char *)pre->v + (c0 - pre->first) * r.Dv * ves;
		} else {
			for (size_t j = 0; j < nkt; j++) {
				size_t kr = (size_t)kpos[j] - op->kv_origin;
				memcpy((char *)r.gk + j * D * kes,
				       rva__kv_elem(io->pg, seq, false, kr, r.kvh * r.khs), D * kes);
				memcpy((char *)r.gv + j * r.Dv * ves,
				       rva__kv_elem(io->pg, seq, true, kr, r.kvh * r.vhs), r.Dv * ves);
			}
		}
		c0 += nkt;
		rva__tile_class wcls = rva__window_classify(&s->mods, qp[0], qp[br - 1], kpos[0],
		                                            kpos[nkt - 1]);
		if (wcls == RVA__TILE_NONE)
			continue;
		size_t vts = 0;
		const float *vt = tile_scores(&r, kg, D, vg, r.Dv, nkt, &vts);
		if (elementwise || wcls == RVA__TILE_PARTIAL) /* key by key: positions scatter */
			for (size_t j = 0; j < nkt; j++)
				tile_bias_mask(att, s, seq, io, (size_t)kpos[j], 1, r.st + j * brp, brp, NULL,
				               wcls == RVA__TILE_PARTIAL, tile_capped(&r), r.lut, r.lut_cap);
		else
			for (size_t j = 0; j < nkt; j++)
				for (size_t i = br; i < brp; i++)
					r.st[j * brp + i] = -INFINITY;
		if (!all_visible && kl->rule == KEYS_STRIDED) {
			/* kp <= qp - l: the rows (positions ascending) before the first with
			 * qp >= kp + l are hidden, a prefix growing with kp */
			size_t a = 0;
			for (size_t j = 0; j < nkt; j++) {
				while (a < br && qp[a] < kpos[j] + s->pattern.stride)
					a++;
				float *row = r.st + j * brp;
				for (size_t i = 0; i < a; i++)
					row[i] = -INFINITY;
			}
		} else if (!all_visible) {
			for (size_t j = 0; j < nkt; j++) {
				float *row = r.st + j * brp;
				for (size_t i = 0; i < br; i++)
					if (!((!s->pattern.causal || kpos[j] <= qp[i]) &&
					      !rva__pattern_allows(&s->band, qp[i], kpos[j])))
						row[i] = -INFINITY;
			}
		}
		tile_softmax(&r, nkt);
		if (r.dropout)
			for (size_t j = 0; j < nkt; j++)
				tile_dropout(att, op, seq_index, io, (size_t)kpos[j], 1, r.st + j * brp, brp);
		tile_pv(&r, r.gv, r.Dv, vt, vts, nkt);
	}
}

/* out row i (head slice, type t) = O[i] / l[i]; 0 when no key was visible. */
static void finish_rows(const float *o, const float *l, size_t br, size_t D, void *outp,
                        rva_dtype t, size_t out_stride) {
	if (t != RVA_F32) {
		rva__smh_finish_rows(o, l, br, D, outp, t, out_stride);
		return;
	}
	float *out = outp;
	for (size_t i = 0; i < br; i++) {
		float *dst = out + i * out_stride;
		const float *src = o + i * D;
		if (l[i] > 0.0f) { /* the test out of the loop over d, so it vectorises */
			float inv = 1.0f / l[i];
			for (size_t d = 0; d < D; d++)
				dst[d] = src[d] * inv;
		} else {
			float f = isnan(l[i]) ? NAN : 0.0f;
			for (size_t d = 0; d < D; d++)
				dst[d] = f;
		}
	}
}

/* The log-sum-exp of rows from their online-softmax state (batch.h, rva_seq.lse): m + log l
 * (m the row's running maximum, l the sum of exp(s - m)); -inf for a row with no visible key,
 * NaN when l is NaN (as the output row). */
static inline float row_lse(float m, float l) {
	return l > 0.0f ? m + logf(l) : (isnan(l) ? NAN : -INFINITY);
}

static void write_lse(const float *m, const float *l, size_t br, float *lse) {
	for (size_t i = 0; i < br; i++)
		lse[i] = row_lse(m[i], l[i]);
}

/* Carves the per-call buffers out of the scratch after the tile area. */
typedef struct tile_bufs {
	float *o, *m, *l;
	int64_t *qpos;
	float *tile;
} tile_bufs;

static tile_bufs carve(void *scratch, size_t br, size_t D) {
	size_t brp = rva__round_up(br, 16);
	tile_bufs b;
	b.m = align16f(scratch);
	b.l = b.m + brp;
	b.qpos = (int64_t *)(b.l + brp);
	b.o = align16f((float *)(b.qpos + brp));
	b.tile = align16f(b.o + br * D + 16);
	return b;
}

static size_t carve_floats(size_t br, size_t D) {
	size_t brp = rva__round_up(br, 16);
	return 2 * brp + 2 * brp + br * D + 16 + 64;
}

/* ---- block-sparse patterns (pattern.h, rva__pattern_band; docs/ARCHITECTURE.md) ------ */

/* Rows of a band sub-tile (a multiple of 16: sub-tiles share the m / l lanes of their
 * tile), and query rows of a strided residue per pass. Measured at N = 16384, stride 128
 * (bench/sparse.c; RESULTS section 16): 16 / 32 beat 32 / 64 and 64 / 64. */
#define SPARSE_SUB_ROWS 16
#define RESIDUE_ROWS 32
/* Floats of a strided residue's K and V rows gathered at once (task_strided): 256 KiB. */
#define RESIDUE_GATHER_FLOATS 65536

/* Whether the prefill tasks of seq run the pattern's block-sparse form: a sparse pattern,
 * except the strided one with a sequence bias or mask (those index consecutive rows, and
 * strided residues gather rows that are not): that sequence runs the pattern tile by
 * tile as a predicate, every tile partial. */
static bool seq_sparse(const rva_attention *att, const rva_seq *seq) {
	const sm_state *s = att->state;
	return s->sparse && !(s->pattern.kind == RVA__PAT_STRIDED && (seq->bias || seq->mask));
}

/* The row state (m, l, O) of (row i, head h) in a strided sequence's partials. */
static inline float *strided_state(const sm_op *op, size_t slot, size_t i, size_t h) {
	const rva_attention *att = op->att;
	return op->partials[slot] + (i * att->cfg.heads + h) * (att->v_head_dim + 2);
}

/*
 * The block-sparse form of one query tile and head: the strided keys' state first when
 * the pattern has them (task_strided wrote it), then the band's tiles, then the shared keys
 * the band does not cover, gathered: those before the band and (non-causal) after it are
 * seen by every row, those in its span are tested pair by pair.
 */
static void attend_sparse(const rva_attention *att, const sm_op *op, const rva_seq *seq,
                          uint32_t slot, tile_io *io, float *scratch) {
	const sm_state *s = att->state;
	size_t br = io->br, brp = rva__round_up(br, 16), Dv = att->v_head_dim;
	int64_t qa = io->qpos[0], qb = io->qpos[br - 1];
	io->resume = false;
	if (s->pattern.kind == RVA__PAT_STRIDED) {
		for (size_t i = 0; i < brp; i++) {
			const float *p = i < br && io->qpos[i] >= s->pattern.stride
			                         ? strided_state(op, slot, io->q0 + i, io->h) : NULL;
			io->m[i] = p ? p[0] : -INFINITY;
			io->l[i] = p ? p[1] : 0.0f;
			if (i < br) {
				if (p)
					memcpy(io->o + i * Dv, p + 2, Dv * sizeof(float));
				else
					memset(io->o + i * Dv, 0, Dv * sizeof(float));
			}
		}
		io->resume = true;
	}
	/* The band: the keys of br consecutive rows span width + br - 1 positions, so a band
	 * narrower than three tiles of rows (the strided band of l keys, the fixed blocks)
	 * runs in sub-tiles of SPARSE_SUB_ROWS rows, which leave fewer of the parallelogram's
	 * masked corners. */
	int64_t width = s->band.kind == RVA__PAT_FIXED ? s->band.stride : s->band.window + 1;
	size_t sub = br > SPARSE_SUB_ROWS && width < 3 * (int64_t)br ? SPARSE_SUB_ROWS : br;
	for (size_t i0 = 0; i0 < br; i0 += sub) {
		tile_io t = *io;
		t.br = rva__min(sub, br - i0);
		t.q = rva__elem_at(io->q, seq->q_dtype, i0 * io->qs);
		t.qpos = io->qpos + i0;
		t.q0 = io->q0 + i0;
		t.o = io->o + i0 * Dv;
		t.m = io->m + i0; /* sub is a multiple of 16: the lanes of sub-tiles do not overlap */
		t.l = io->l + i0;
		t.pat = &s->band;
		rva__pattern_band_keys(&s->band, t.qpos[0], t.qpos[t.br - 1], seq->nk, &t.k_begin,
		                       &t.k_end);
		attend(att, op, seq, slot, &t, scratch);
	}
	io->resume = true;
	io->q_packed = sub == br; /* the scratch holds the last sub-tile's Q otherwise */
	if (s->pattern.kind == RVA__PAT_STRIDED)
		return;
	size_t kb0, kb1;
	rva__pattern_band_keys(&s->band, qa, qb, seq->nk, &kb0, &kb1);
	int64_t lim = s->pattern.causal && qb + 1 < (int64_t)seq->nk ? qb + 1 : (int64_t)seq->nk;
	size_t n = rva__pattern_shared_below(&s->pattern, lim);
	size_t t0 = rva__min(n, rva__pattern_shared_below(&s->pattern, (int64_t)kb0));
	size_t t1 = rva__min(n, rva__pattern_shared_below(&s->pattern, (int64_t)kb1));
	key_list kl = {.shared = &s->pattern, .rule = KEYS_OUTSIDE_BAND};
	if (t0 > 0)
		attend_keys(att, op, seq, slot, io, scratch, &kl, 0, t0, true, NULL);
	if (t1 > t0)
		attend_keys(att, op, seq, slot, io, scratch, &kl, t0, t1, false, NULL);
	if (n > t1)
		attend_keys(att, op, seq, slot, io, scratch, &kl, t1, n, true, NULL);
}

/* ---- tasks -------------------------------------------------------------------------- */

/* Writes rows [r0, r1) of the tile state (O / l, and the LSE) of head h to the output. */
static void write_rows(const rva_seq *seq, const tile_bufs *b, size_t q0, size_t r0, size_t r1,
                       size_t h, size_t Dv, size_t ohs) {
	finish_rows(b->o + r0 * Dv, b->l + r0, r1 - r0, Dv,
	            rva__elem_at_mut(seq->out, seq->out_dtype, (q0 + r0) * seq->out_stride + h * ohs),
	            seq->out_dtype, seq->out_stride);
	if (seq->lse)
		write_lse(b->m + r0, b->l + r0, r1 - r0, seq->lse + h * seq->lse_head_stride + q0 + r0);
}

/* How a query-tile task runs its rows: the pattern as a predicate tile by tile; the
 * block-sparse form (seq_sparse), leaving the rows of local-global global tokens to their
 * own tasks; or those global rows, over every key. */
typedef enum tile_form { FORM_PATTERN, FORM_SPARSE, FORM_GLOBAL_ROWS } tile_form;

/* Query-tile task: a = first head, b = end head, c = first query row, d = rows. */
static rva_status rows_task(const rva__task *t, rva__exec_ctx *x, tile_form form) {
	const sm_op *op = t->ctx;
	const rva_attention *att = op->att;
	const sm_state *s = att->state;
	const rva_seq *seq = &op->seqs[t->seq];
	size_t D = att->head_dim, Dv = att->v_head_dim, q0 = t->c, br = t->d;
	rva__pattern dense = {.kind = RVA__PAT_DENSE, .causal = s->pattern.causal};
	tile_bufs b = carve(x->scratch, br, Dv);
	int64_t off = qpos0(att, seq->nq, seq->nk);
	for (size_t i = 0; i < br; i++)
		b.qpos[i] = off + (int64_t)(q0 + i);
	size_t qhs = rva__head_stride(seq->q_head_stride, D);
	size_t ohs = rva__head_stride(seq->out_head_stride, Dv);
	for (size_t h = t->a; h < t->b; h++) {
		tile_io io = {.q = rva__elem_at(seq->q, seq->q_dtype, q0 * seq->q_stride + h * qhs),
		              .qs = seq->q_stride,
		              .qpos = b.qpos, .q0 = q0, .br = br, .h = h, .k_begin = 0,
		              .k_end = seq->nk, .o = b.o, .m = b.m, .l = b.l,
		              .pg = op->pages ? &op->pages[t->seq] : NULL,
		              .pat = form == FORM_GLOBAL_ROWS ? &dense : NULL};
		if (form == FORM_SPARSE)
			attend_sparse(att, op, seq, t->seq, &io, b.tile);
		else
			attend(att, op, seq, t->seq, &io, b.tile);
		for (size_t r0 = 0; r0 < br;) { /* runs of rows to write: global rows are not */
			size_t r1 = r0;
			while (r1 < br && (form != FORM_SPARSE ||
			                   !rva__pattern_is_global(&s->pattern, b.qpos[r1])))
				r1++;
			if (r1 > r0)
				write_rows(seq, &b, q0, r0, r1, h, Dv, ohs);
			r0 = r1 + 1;
		}
	}
	return RVA_OK;
}

static rva_status task_dense(const rva__task *t, rva__exec_ctx *x) {
	return rows_task(t, x, FORM_PATTERN);
}

static rva_status task_sparse(const rva__task *t, rva__exec_ctx *x) {
	return rows_task(t, x, FORM_SPARSE);
}

/* Local-global global rows (a run of consecutive ones, planned by plan_global_rows). */
static rva_status task_global_rows(const rva__task *t, rva__exec_ctx *x) {
	return rows_task(t, x, FORM_GLOBAL_ROWS);
}

/*
 * Local-global global rows wherever they lie: a = first head, b = end head, c = index of
 * the first in the pattern's sorted global list, d = how many (at most query_block). Their
 * query rows are gathered so that they share the key tiles (over every key, as
 * task_global_rows), instead of a task per run of consecutive rows: spread global tokens
 * made runs of one row each, on the one-row kernel. Planned only for sequences without a
 * bias or 2-D mask (those index consecutive rows).
 */
static rva_status task_global_gathered(const rva__task *t, rva__exec_ctx *x) {
	const sm_op *op = t->ctx;
	const rva_attention *att = op->att;
	const sm_state *s = att->state;
	const rva_seq *seq = &op->seqs[t->seq];
	size_t D = att->head_dim, Dv = att->v_head_dim, br = t->d, qes = rva__dtype_size(seq->q_dtype);
	rva__pattern dense = {.kind = RVA__PAT_DENSE, .causal = s->pattern.causal};
	tile_bufs b = carve(x->scratch, br, Dv);
	unsigned char *qg = (unsigned char *)align16f(b.tile + tile_scratch_floats(att, br, br));
	int64_t off = qpos0(att, seq->nq, seq->nk);
	for (size_t i = 0; i < br; i++)
		b.qpos[i] = rva__pattern_shared_key(&s->pattern, t->c + i);
	size_t qhs = rva__head_stride(seq->q_head_stride, D);
	size_t ohs = rva__head_stride(seq->out_head_stride, Dv);
	for (size_t h = t->a; h < t->b; h++) {
		for (size_t i = 0; i < br; i++)
			memcpy(qg + i * D * qes,
			       rva__elem_at(seq->q, seq->q_dtype,
			                    (size_t)(b.qpos[i] - off) * seq->q_stride + h * qhs),
			       D * qes);
		tile_io io = {.q = qg, .qs = D, .qpos = b.qpos, .q0 = 0, .br = br, .h = h,
		              .k_begin = 0, .k_end = seq->nk, .o = b.o, .m = b.m, .l = b.l,
		              .pg = op->pages ? &op->pages[t->seq] : NULL, .pat = &dense,
		              .gathered_rows = true};
		attend(att, op, seq, t->seq, &io, b.tile);
		for (size_t i = 0; i < br; i++) { /* write_rows, row by row */
			size_t row = (size_t)(b.qpos[i] - off);
			finish_rows(b.o + i * Dv, b.l + i, 1, Dv,
			            rva__elem_at_mut(seq->out, seq->out_dtype, row * seq->out_stride + h * ohs),
			            seq->out_dtype, seq->out_stride);
			if (seq->lse)
				write_lse(b.m + i, b.l + i, 1, seq->lse + h * seq->lse_head_stride + row);
		}
	}
	return RVA_OK;
}

/* Keys of a strided residue gathered at once (task_strided): at most this many, and at
 * least one tile's worth (the scratch of plan_strided holds them). */
static size_t residue_keys_max(const rva_attention *att) {
	return rva__max(att->cfg.block_size,
	                RESIDUE_GATHER_FLOATS / (att->head_dim + att->v_head_dim));
}

/*
 * Strided keys of head a, residues b..c-1 counted from the first row position with strided
 * keys (max(first position, l)): for each residue r, the query rows at positions
 * qp = r (mod l), qp >= l, against the keys r, r + l, ... <= qp - l (a causal attention
 * among the residue's positions), their state (m, l, O) left in the partials for
 * task_sparse to continue with the band. The residue's K and V rows are gathered once,
 * contiguous (in chunks of residue_keys_max keys), and every pass of rows reads them in
 * place; rows go query_block (at most RESIDUE_ROWS) at a time, gathered.
 */
static rva_status task_strided(const rva__task *t, rva__exec_ctx *x) {
	const sm_op *op = t->ctx;
	const rva_attention *att = op->att;
	const sm_state *s = att->state;
	const rva_seq *seq = &op->seqs[t->seq];
	size_t D = att->head_dim, Dv = att->v_head_dim, h = t->a;
	size_t qb = rva__min(att->cfg.query_block, RESIDUE_ROWS);
	size_t br_max = rva__min(qb, seq->nq), qes = rva__dtype_size(seq->q_dtype);
	size_t kes = rva__dtype_size(seq->k_dtype), ves = rva__dtype_size(seq->v_dtype);
	size_t kvh = h / (att->cfg.heads / att->kv_heads);
	size_t khs = rva__head_stride(seq->k_head_stride, D), vhs = rva__head_stride(seq->v_head_stride, Dv);
	size_t qhs = rva__head_stride(seq->q_head_stride, D), kmax_keys = residue_keys_max(att);
	int64_t l = s->pattern.stride, off = qpos0(att, seq->nq, seq->nk);
	int64_t qend = off + (int64_t)seq->nq, kmax = (int64_t)seq->nk - 1; /* positions [off, qend) */
	const rva__kv_pages *pg = op->pages ? &op->pages[t->seq] : NULL;
	tile_bufs b = carve(x->scratch, br_max, Dv);
	unsigned char *qg = (unsigned char *)align16f(b.tile + tile_scratch_floats(att, br_max, br_max));
	unsigned char *kg = (unsigned char *)align16f((float *)(qg + br_max * D * qes));
	unsigned char *vg = (unsigned char *)align16f((float *)(kg + kmax_keys * D * kes));
	key_list kl = {.step = l, .rule = KEYS_STRIDED};
	int64_t start = off > l ? off : l; /* rows at positions >= l have strided keys */
	for (size_t rho = t->b; rho < t->c; rho++) {
		int64_t first = start + (int64_t)rho, r = first % l; /* residue r from `first` on */
		kl.first = r;
		/* rows first + i l, i < nrows; keys r + u l, u < nkeys (<= the last row's qp - l) */
		size_t nrows = (size_t)((qend - first + l - 1) / l);
		int64_t qlast = first + (int64_t)(nrows - 1) * l; /* the last row's position */
		int64_t klast = qlast - l < kmax ? qlast - l : kmax;
		size_t nkeys = klast >= r ? (size_t)((klast - r) / l + 1) : 0;
		/* keys u are seen by row i when r + u l <= min(qp_i - l, kmax) */
		for (size_t u0 = 0; u0 == 0 || u0 < nkeys; u0 += kmax_keys) {
			size_t u1 = rva__min(nkeys, u0 + kmax_keys);
			for (size_t u = u0; u < u1; u++) {
				size_t kr = (size_t)(r + (int64_t)u * l) - op->kv_origin;
				memcpy(kg + (u - u0) * D * kes, rva__kv_elem(pg, seq, false, kr, kvh * khs), D * kes);
				memcpy(vg + (u - u0) * Dv * ves, rva__kv_elem(pg, seq, true, kr, kvh * vhs), Dv * ves);
			}
			key_rows pre = {.k = kg, .v = vg, .first = u0};
			/* the first row that sees key u0 (qp >= r + u0 l + l): the rows before it have
			 * no key in this chunk (all rows take part in the first, which starts them) */
			size_t i_first = 0;
			if (u0 > 0) {
				int64_t p = r + (int64_t)u0 * l + l;
				i_first = p > first ? (size_t)((p - first + l - 1) / l) : 0;
			}
			for (size_t i0 = i_first; i0 < nrows; i0 += qb) {
				size_t br = rva__min(qb, nrows - i0);
				for (size_t i = 0; i < br; i++) {
					int64_t p = first + (int64_t)(i0 + i) * l;
					b.qpos[i] = p;
					memcpy(qg + i * D * qes,
					       rva__elem_at(seq->q, seq->q_dtype, (size_t)(p - off) * seq->q_stride + h * qhs),
					       D * qes);
				}
				tile_io io = {.q = qg, .qs = D, .qpos = b.qpos, .q0 = 0, .br = br, .h = h,
				              .o = b.o, .m = b.m, .l = b.l, .gathered_rows = true, .pg = pg,
				              .resume = u0 > 0};
				if (u0 > 0) /* continue the rows' state of the earlier chunks */
					for (size_t i = 0; i < rva__round_up(br, 16); i++) {
						const float *st = i < br ? strided_state(op, t->seq, (size_t)(b.qpos[i] - off), h)
						                         : NULL;
						b.m[i] = st ? st[0] : -INFINITY;
						b.l[i] = st ? st[1] : 0.0f;
						if (st)
							memcpy(b.o + i * Dv, st + 2, Dv * sizeof(float));
					}
				/* keys [u0, uall) reach some row of the pass, [u0, ufull) every row */
				int64_t qa = b.qpos[0] - l < kmax ? b.qpos[0] - l : kmax;
				int64_t qz = b.qpos[br - 1] - l < kmax ? b.qpos[br - 1] - l : kmax;
				size_t ufull = qa >= r ? rva__min(u1, (size_t)((qa - r) / l + 1)) : 0;
				size_t uall = qz >= r ? rva__min(u1, (size_t)((qz - r) / l + 1)) : 0;
				ufull = rva__max(ufull, u0);
				uall = rva__max(uall, u0);
				/* one call: the test is a prefix per key, and a split would leave small tiles */
				attend_keys(att, op, seq, t->seq, &io, b.tile, &kl, u0, uall, uall == ufull, &pre);
				for (size_t i = 0; i < br; i++) {
					float *p = strided_state(op, t->seq, (size_t)(b.qpos[i] - off), h);
					p[0] = b.m[i];
					p[1] = b.l[i];
					memcpy(p + 2, b.o + i * Dv, Dv * sizeof(float));
				}
			}
		}
	}
	return RVA_OK;
}

/* Split-KV chunk task: a = head, b = chunk; all nq rows. Writes the partial
 * (m, l, O) of (head, chunk) to the arena: rows x (Dv + 2) floats. `slot` indexes the
 * op's per-sequence arrays (t->seq in the engine; t->seq selects the dropout stream). */
static void task_chunk_at(const rva__task *t, rva__exec_ctx *x, size_t slot) {
	const sm_op *op = t->ctx;
	const rva_attention *att = op->att;
	const rva_seq *seq = &op->seqs[slot];
	size_t D = att->head_dim, Dv = att->v_head_dim, br = seq->nq, h = t->a, chunk = t->b;
	size_t nch = op->nchunks[slot];
	tile_bufs b = carve(x->scratch, br, Dv);
	int64_t off = qpos0(att, seq->nq, seq->nk);
	for (size_t i = 0; i < br; i++)
		b.qpos[i] = off + (int64_t)i;
	size_t k0 = chunk * op->chunk_len[slot], k1 = rva__min(seq->nk, k0 + op->chunk_len[slot]);
	size_t qhs = rva__head_stride(seq->q_head_stride, D);
	tile_io io = {.q = rva__elem_at(seq->q, seq->q_dtype, h * qhs), .qs = seq->q_stride,
	              .qpos = b.qpos, .q0 = 0, .br = br,
	              .h = h, .k_begin = k0, .k_end = k1, .o = b.o, .m = b.m, .l = b.l,
	              .pg = op->pages ? &op->pages[slot] : NULL};
	attend(att, op, seq, t->seq, &io, b.tile);
	float *part = op->partials[slot] + (h * nch + chunk - op->chunk_base) * br * (Dv + 2);
	for (size_t i = 0; i < br; i++) {
		float *p = part + i * (Dv + 2);
		p[0] = b.m[i];
		p[1] = b.l[i];
		memcpy(p + 2, b.o + i * Dv, Dv * sizeof(float));
	}
}

static rva_status task_chunk(const rva__task *t, rva__exec_ctx *x) {
	task_chunk_at(t, x, t->seq);
	return RVA_OK;
}

/* Decode task (few queries): b = key chunk, every head at once so K and V rows are read
 * front to back. Writes the same (m, l, O) partials as task_chunk, or, for a sequence of
 * one chunk in the engine (op->direct), the output rows themselves: what merge_head makes
 * of a single partial (weight exp(0) = 1, then O / l), without a merge task. */
#define DECODE_KB 32

static size_t decode_scratch_floats(const rva_attention *att, size_t nq) {
	size_t H = att->cfg.heads, D = att->head_dim;
	return H * nq * (2 * DECODE_KB + D + 3) + 5 * 16 + 2 * nq + 64 +
	       rva__smh_decode_floats(nq, att->cfg.dim, att->kv_dim, DECODE_KB);
}

/*
 * rva__smh_decode_step over paged K/V (pg paged): the step is cut where the current
 * block's K rows or the previous block's V rows leave a run of back-to-back pages
 * (kv_pages.h; pages taken in order are one run, so such a step is one call, as on
 * contiguous K/V), each piece a call on the rows of one run with the score and
 * probability columns offset to match. The decode
 * step computes each key row's score and adds each V row into O by the same operations
 * whatever group of rows a call puts it in (softmax_kernels.h), and the pieces run in key
 * order: the same bits as the contiguous call (tests/test_paged_attention.c checks pages
 * of 2, 6, 16 and 128 rows).
 */
static void decode_step_paged(const rva__kv_pages *pg, const rva_seq *seq, size_t kr,
                              size_t ncur, size_t vr, size_t nprev, size_t kvd, const float *q,
                              size_t qs, size_t nq, size_t H, size_t G, size_t D, float scale,
                              float *sc_cur, const float *sc_prev, size_t kb, float *o,
                              float *kbuf, float *vbuf) {
	size_t n = rva__max(ncur, nprev);
	for (size_t a = 0; a < n;) {
		size_t e = n;
		if (a < ncur)
			e = rva__min(e, a + rva__kv_run(pg, kr + a, ncur - a));
		if (a < nprev)
			e = rva__min(e, a + rva__kv_run(pg, vr + a, nprev - a));
		size_t ck = a < ncur ? rva__min(ncur, e) - a : 0;
		size_t cv = a < nprev ? rva__min(nprev, e) - a : 0;
		rva_seq piece = *seq;
		piece.k = ck ? rva__kv_elem(pg, seq, false, kr + a, 0) : seq->k;
		piece.v = cv ? rva__kv_elem(pg, seq, true, vr + a, 0) : seq->v;
		rva__smh_decode_step(&piece, 0, ck, 0, cv, kvd, q, qs, nq, H, G, D, scale, sc_cur + a,
		                     sc_prev + a, kb, o, kbuf, vbuf);
		a = e;
	}
}

/* One step of the decode loop on contiguous or paged K/V. K and V heads at other head
 * strides than the packed one (batch.h; contiguous K/V only: a cache's pages are packed)
 * run one kv head at a time, each a step over that head's group of query heads (q packed,
 * qs >= H * D): every key row's score and V row addition are the same operations as in
 * the all-heads step (softmax_kernels.h). */
static void decode_step(const rva__kv_pages *pg, const rva_seq *seq, size_t kr, size_t ncur,
                        size_t vr, size_t nprev, size_t kvd, const float *q, size_t qs,
                        size_t nq, size_t H, size_t G, size_t D, float scale, float *sc_cur,
                        const float *sc_prev, size_t kb, float *o, float *kbuf, float *vbuf) {
	size_t khs = rva__head_stride(seq->k_head_stride, D);
	size_t vhs = rva__head_stride(seq->v_head_stride, D);
	if (!rva__kv_paged(pg) && (khs != D || vhs != D) && H > G) {
		for (size_t g = 0; g < H / G; g++) {
			rva_seq head = *seq;
			head.k = rva__elem_at(seq->k, seq->k_dtype, g * khs);
			head.v = rva__elem_at(seq->v, seq->v_dtype, g * vhs);
			head.k_head_stride = head.v_head_stride = 0;
			size_t r = g * G * nq; /* the group's first (head, query) row */
			rva__smh_decode_step(&head, kr, ncur, vr, nprev, D, q + g * G * D, qs, nq, G, G, D,
			                     scale, sc_cur + r * kb, sc_prev + r * kb, kb, o + r * D, kbuf,
			                     vbuf);
		}
		return;
	}
	if (rva__kv_paged(pg))
		decode_step_paged(pg, seq, kr, ncur, vr, nprev, kvd, q, qs, nq, H, G, D, scale, sc_cur,
		                  sc_prev, kb, o, kbuf, vbuf);
	else
		rva__smh_decode_step(seq, kr, ncur, vr, nprev, kvd, q, qs, nq, H, G, D, scale, sc_cur,
		                     sc_prev, kb, o, kbuf, vbuf);
}

/* The decode loop's fp32 query rows (nq x dim, heads side by side): the sequence's own
 * when they are fp32 with packed heads, else converted into buf (rounded to bf16 values
 * when K is bf16, softmax_half.h) or gathered from their head stride. */
static const float *decode_query(const rva_attention *att, const rva_seq *seq, float *buf,
                                 size_t *qs) {
	size_t D = att->head_dim, dim = att->cfg.dim, nq = seq->nq;
	size_t qhs = rva__head_stride(seq->q_head_stride, D);
	bool round = seq->k_dtype == RVA_BF16;
	if (qhs == D)
		return rva__smh_operand(seq->q_dtype, seq->q, seq->q_stride, 0, nq, dim, round, buf, qs);
	for (size_t h = 0; h < att->cfg.heads; h++)
		rva__cvt_rows_to_f32(seq->q_dtype, rva__elem_at(seq->q, seq->q_dtype, h * qhs),
		                     seq->q_stride, nq, D, buf + h * D, dim);
	if (round && seq->q_dtype != RVA_BF16)
		rva__cvt_round_bf16(buf, nq * dim);
	*qs = dim;
	return buf;
}

static void task_decode_at(const rva__task *t, rva__exec_ctx *x, size_t slot) {
	const sm_op *op = t->ctx;
	const rva_attention *att = op->att;
	const sm_state *st = att->state;
	const rva_seq *seq = &op->seqs[slot];
	const rva__kv_pages *pg = op->pages ? &op->pages[slot] : NULL;
	size_t H = att->cfg.heads, G = H / att->kv_heads, D = att->head_dim, nq = seq->nq;
	size_t chunk = t->b, nch = op->nchunks[slot], len = op->chunk_len[slot];
	size_t k0 = chunk * len, k1 = rva__min(seq->nk, k0 + len), HQ = H * nq;
	float *sc = align16f(x->scratch), *sc_prev = align16f(sc + HQ * DECODE_KB);
	float *o = align16f(sc_prev + HQ * DECODE_KB);
	float *m = align16f(o + HQ * D), *l = m + HQ, *alpha = l + HQ;
	int64_t *qpos = (int64_t *)align16f(alpha + HQ);
	int64_t off = qpos0(att, nq, seq->nk);
	for (size_t i = 0; i < nq; i++)
		qpos[i] = off + (int64_t)i;
	/* Half tensors: fp32 operands in scratch after qpos (softmax_half.h). */
	size_t kvd = att->kv_dim, qs;
	float *hq = align16f((float *)(qpos + nq)), *hk = align16f(hq + nq * att->cfg.dim);
	float *hv = align16f(hk + DECODE_KB * kvd);
	const float *q = decode_query(att, seq, hq, &qs);
	for (size_t r = 0; r < HQ; r++) {
		m[r] = -INFINITY;
		l[r] = 0.0f;
	}
	memset(o, 0, HQ * D * sizeof(float));
	bool dropout = op->rt.training && att->cfg.dropout > 0.0f;
	float pdrop = att->cfg.dropout, inv = 1.0f / (1.0f - pdrop);
	uint64_t dkey = rva__hash3(op->rt.seed, op->rt.step, ((uint64_t)op->stream << 32) | 0xD0);
	/* Block b's scores are computed together with block b-1's P.V (software pipeline):
	 * the softmax of block b rescales O only after O holds block b-1 in full. */
	size_t prev0 = 0, nprev = 0;
	/* Blocks stay on the grid of DECODE_KB keys from k0; those wholly before the sliding
	 * window are never visited, the loop ends past its last key (or the diagonal). */
	const rva__score_mods *mods = &st->mods;
	int64_t wfirst = rva__window_first_key(mods, qpos[0]);
	int64_t wlast = rva__window_last_key(mods, qpos[nq - 1]);
	if (st->pattern.causal && qpos[nq - 1] < wlast)
		wlast = qpos[nq - 1];
	size_t bstart = k0;
	if (wfirst > (int64_t)bstart)
		bstart += ((size_t)wfirst - bstart) / DECODE_KB * DECODE_KB;
	bool mods_on = rva__score_elementwise(mods, seq);
	for (size_t b0 = bstart; b0 < k1; b0 += DECODE_KB) {
		size_t nkb = rva__min(DECODE_KB, k1 - b0);
		if ((int64_t)b0 > wlast)
			break;
		int64_t ka = (int64_t)b0, kb = (int64_t)(b0 + nkb - 1);
		rva__tile_class cls = rva__pattern_classify(&st->pattern, qpos[0], qpos[nq - 1], ka, kb);
		rva__tile_class wcls = rva__window_classify(mods, qpos[0], qpos[nq - 1], ka, kb);
		if (rva__tile_class_and(cls, wcls) == RVA__TILE_NONE)
			continue;
		decode_step(pg, seq, b0 - op->kv_origin, nkb, prev0 - op->kv_origin, nprev, kvd, q, qs,
		            nq, H, G, D, op->scale, sc, sc_prev, DECODE_KB, o, hk, hv);
		bool elementwise = st->has_t5 || cls == RVA__TILE_PARTIAL || seq->key_mask;
		bool wpart = wcls == RVA__TILE_PARTIAL;
		if (mods_on || wpart)
			for (size_t h = 0; h < H; h++)
				for (size_t i = 0; i < nq; i++) {
					float *row = sc + (h * nq + i) * DECODE_KB;
					rva__score_softcap_tile(mods, row, 0, nkb, 1); /* before any bias */
					if (st->has_t5)
						for (size_t j = 0; j < nkb; j++)
							row[j] += att->bias_table[rva__t5_lookup(&st->t5, ka + (int64_t)j -
							                                                      qpos[i]) * H + h];
					rva__score_row(mods, seq, h, i, qpos[i], b0, nkb, row, wpart);
				}
		if (elementwise)
			for (size_t h = 0; h < H; h++)
				for (size_t i = 0; i < nq; i++) {
					float *row = sc + (h * nq + i) * DECODE_KB;
					for (size_t j = 0; j < nkb; j++) {
						int64_t kp = (int64_t)(b0 + j);
						if (st->has_t5 && !(mods_on || wpart))
							row[j] += att->bias_table[rva__t5_lookup(&st->t5, kp - qpos[i]) * H + h];
						if ((cls == RVA__TILE_PARTIAL &&
						     !rva__pattern_allows(&st->pattern, qpos[i], kp)) ||
						    (seq->key_mask && !seq->key_mask[kp]))
							row[j] = -INFINITY;
					}
				}
		rva__sm_decode_softmax(nkb, sc, HQ, D, DECODE_KB, m, l, o);
		if (dropout)
			for (size_t h = 0; h < H; h++)
				for (size_t i = 0; i < nq; i++) {
					float *row = sc + (h * nq + i) * DECODE_KB;
					uint64_t sh = ((uint64_t)t->seq << 20) ^ h;
					for (size_t j = 0; j < nkb; j++) {
						uint64_t ctr = ((uint64_t)(uint32_t)qpos[i] << 32) | (uint32_t)(b0 + j);
						row[j] *= rva__u01(rva__hash3(dkey, sh, ctr)) >= pdrop ? inv : 0.0f;
					}
				}
		rva__smh_round_p(seq, sc, HQ * DECODE_KB); /* bf16 P for a bf16 V */
		float *tmp = sc_prev;
		sc_prev = sc;
		sc = tmp;
		prev0 = b0;
		nprev = nkb;
	}
	if (nprev) /* the last block's P.V */
		decode_step(pg, seq, 0, 0, prev0 - op->kv_origin, nprev, kvd, q, qs, nq, H, G, D,
		            op->scale, sc, sc_prev, DECODE_KB, o, hk, hv);
	if (op->direct && nch == 1) {
		size_t ohs = rva__head_stride(seq->out_head_stride, D);
		for (size_t h = 0; h < H; h++) {
			finish_rows(o + h * nq * D, l + h * nq, nq, D,
			            rva__elem_at_mut(seq->out, seq->out_dtype, h * ohs), seq->out_dtype,
			            seq->out_stride);
			if (seq->lse)
				write_lse(m + h * nq, l + h * nq, nq, seq->lse + h * seq->lse_head_stride);
		}
		return;
	}
	for (size_t h = 0; h < H; h++) {
		float *part = op->partials[slot] + (h * nch + chunk - op->chunk_base) * nq * (D + 2);
		for (size_t i = 0; i < nq; i++) {
			float *p = part + i * (D + 2);
			size_t r = h * nq + i;
			p[0] = m[r];
			p[1] = l[r];
			memcpy(p + 2, o + r * D, D * sizeof(float));
		}
	}
}

static rva_status task_decode(const rva__task *t, rva__exec_ctx *x) {
	task_decode_at(t, x, t->seq);
	return RVA_OK;
}

/* The key chunks [*c0, *c1) of length len (nch of them) holding a key that the sliding
 * window and causal let some query see: the only ones planned (at least one). */
static void visible_chunks(const rva_attention *att, const rva_seq *seq, size_t len, size_t nch,
                           size_t *c0, size_t *c1) {
	const sm_state *s = att->state;
	size_t klo, khi;
	rva__score_key_range(&s->mods, s->pattern.causal, seq->nq, seq->nk, &klo, &khi);
	*c0 = rva__min(klo / len, nch - 1);
	*c1 = rva__max(*c0 + 1, rva__min(nch, rva__div_up(khi, len)));
}

/* Merges the partials of one head (base: nch chunks x br rows x (D + 2)) in chunk order
 * into out (row i at out + i*out_stride) and, when lse is not NULL, the rows' log-sum-exp
 * into lse[i]. Deterministic: the order is fixed. */
static void merge_head(const float *base, size_t nch, size_t br, size_t D, float *out,
                       size_t out_stride, float *lse) {
	for (size_t i = 0; i < br; i++) {
		float m = -INFINITY;
		for (size_t c = 0; c < nch; c++)
			m = fmaxf(m, base[(c * br + i) * (D + 2)]);
		float ms = m == -INFINITY ? 0.0f : m, l = 0.0f;
		float *dst = out + i * out_stride;
		for (size_t d = 0; d < D; d++)
			dst[d] = 0.0f;
		for (size_t c = 0; c < nch; c++) {
			const float *p = base + (c * br + i) * (D + 2);
			float w = expf(p[0] - ms);
			if (p[1] == 0.0f && !isnan(p[1]))
				continue; /* a chunk with no visible key adds nothing */
			l += w * p[1];
			for (size_t d = 0; d < D; d++)
				dst[d] += w * p[2 + d];
		}
		float inv = l > 0.0f ? 1.0f / l : 0.0f;
		for (size_t d = 0; d < D; d++)
			dst[d] = l > 0.0f ? dst[d] * inv : (isnan(l) ? NAN : 0.0f);
		if (lse)
			lse[i] = row_lse(ms, l);
	}
}

/* Merge task of split-KV: every head of one sequence (a few microseconds of work: one
 * task per head cost more in task hand-offs than the merge itself). Chunks merged in
 * chunk order (deterministic). */
static rva_status task_merge(const rva__task *t, rva__exec_ctx *x) {
	const sm_op *op = t->ctx;
	const rva_attention *att = op->att;
	const rva_seq *seq = &op->seqs[t->seq];
	size_t D = att->v_head_dim, br = seq->nq, nch = op->nchunks[t->seq], c0, c1;
	visible_chunks(att, seq, op->chunk_len[t->seq], nch, &c0, &c1);
	size_t ohs = rva__head_stride(seq->out_head_stride, D);
	for (size_t h = 0; h < att->cfg.heads; h++) {
		const float *part = op->partials[t->seq] + (h * nch + c0) * br * (D + 2);
		size_t n = c1 - c0; /* the planned chunks only */
		float *lse = seq->lse ? seq->lse + h * seq->lse_head_stride : NULL;
		if (seq->out_dtype != RVA_F32) { /* merged in fp32 in scratch, rounded once */
			float *tmp = x->scratch;
			merge_head(part, n, br, D, tmp, D, lse);
			rva__cvt_rows_from_f32(seq->out_dtype, tmp, D, br, D,
			                       rva__elem_at_mut(seq->out, seq->out_dtype, h * ohs),
			                       seq->out_stride);
			continue;
		}
		merge_head(part, n, br, D, RVA__F32(seq->out) + h * ohs, seq->out_stride, lse);
	}
	return RVA_OK;
}

/* ---- planning ------------------------------------------------------------------------ */

/* Visible pairs: exact for the dense pattern under any window and alignment; a pattern
 * with a window or top-left alignment counts its bottom-right pairs without the window
 * (an upper bound, for statistics and task costs only). */
static double seq_pairs(const rva_attention *att, const rva_seq *s) {
	const sm_state *st = att->state;
	if ((st->mods.window || st->mods.top_left) && st->pattern.kind == RVA__PAT_DENSE)
		return rva__score_pairs_dense(&st->mods, st->pattern.causal, s->nq, s->nk);
	return rva__pattern_pairs(&st->pattern, s->nq, s->nk);
}

double rva__softmax_flops(const rva_attention *att, const rva_seq *s) {
	/* Q.K^T and P.V: 2 (D + Dv) per pair and head */
	return 2.0 * (double)att->cfg.heads * (double)(att->head_dim + att->v_head_dim) *
	       seq_pairs(att, s);
}

/* Few queries: the split-KV form (key chunks, partials merged in chunk order). The chunk
 * tasks run the decode kernels (every head of a key row at once), or, with
 * RVATTN_ATTN_KERNEL=blis, the tile loop per head (the portable twin). */
static bool few_queries(const rva_seq *s) { return s->nq <= 8; }

/* Whether the few-query form runs the decode kernels (every head of a key row at once),
 * which take one head width for K and V: with v_head_dim != head_dim the key chunks run
 * the tile loop per head instead (the kernels' portable twin, also split-KV). */
static bool decode_kernels(const rva_attention *att, const rva_seq *s) {
	return few_queries(s) && rva__sm_use_decode() && att->v_head_dim == att->head_dim;
}

/*
 * The split-KV cost model. Decoding streams K and V: a key costs its K and V rows
 * (8 * kv_dim bytes in fp32, 4 * kv_dim in bf16/fp16) plus the products of every (head, query) pair with them, which on
 * the decode kernels take about 0.4 of the rows' memory time for multi-head attention
 * (a 1 x 512-key decode, H12 D64, runs ~2.5x faster from cache than from memory), so
 * about 3 bytes per head x query x head_dim element:
 *
 *   work per key = (k_size + v_size) * kv_dim + 3 * heads * nq * head_dim
 *                                        (bytes of streaming time; element sizes in bytes)
 *
 * A chunk carries at least SPLIT_WORK of it: ~100-150 us at 20-25 GB/s per core, far above
 * the few microseconds a task and its hand-off cost the engine. A sequence with less than
 * two chunks' work is not split: one task computes it and writes its output, so a job too
 * small to profit from more workers has nothing to hand to them (a 1 x 512-key decode ran
 * 51 us on one thread and 63 us on two when it was a decode task and 12 merge tasks).
 * Chunks are equal (rounded up to whole 32-key decode blocks, or tiles for more queries).
 * The decision depends only on the config, the shape and the K/V element types (half K/V
 * stream half the bytes, so a chunk holds about twice the keys; rvattn_mpi runs fp32
 * only): never on the thread count, so the output is bit-identical for any number of
 * threads.
 */
#define SPLIT_WORK ((double)(3u << 20))

/* Split-KV chunk for a sequence, or 0 for no split (fixed by config and shape). */
static size_t split_chunk(const rva_attention *att, const rva_seq *s) {
	size_t ks = att->cfg.kv_split, bc = att->cfg.block_size;
	if (ks == SIZE_MAX || s->nq == 0 || s->nk == 0)
		return 0;
	/* A chunk task holds every query row in one tile: only for few queries. */
	if (s->nq > att->cfg.query_block)
		return 0;
	if (ks == 0) {
		if (s->nq > 16)
			return 0;
		double per_key = (double)rva__dtype_size(s->k_dtype) * (double)att->kv_dim +
		                 (double)rva__dtype_size(s->v_dtype) * (double)att->v_dim +
		                 3.0 * (double)att->cfg.heads * (double)s->nq * (double)att->head_dim;
		double chunks = floor((double)s->nk * per_key / SPLIT_WORK);
		if (chunks < 2.0)
			return 0;
		size_t nch = chunks >= (double)s->nk ? s->nk : (size_t)chunks;
		ks = rva__round_up(rva__div_up(s->nk, nch), few_queries(s) ? DECODE_KB : bc);
		return ks < s->nk ? ks : 0;
	}
	if (ks >= s->nk)
		return 0;
	ks = rva__round_up(ks, bc); /* chunks hold whole tiles */
	return s->nk > ks ? ks : 0;
}

/*
 * The strided keys of sequence s (task_strided): partials for every row's state, tasks per
 * head over groups of residues (at least ~1M multiply-adds each, fixed by shape), all
 * after `after`, and a join *gate that the query tiles wait for.
 */
static rva_status plan_strided(const rva_attention *att, sm_op *op, rva__graph *g, size_t s,
                               uint32_t after, uint32_t *gate) {
	const sm_state *sms = att->state;
	const rva_seq *seq = &op->seqs[s];
	size_t H = att->cfg.heads, D = att->head_dim, rows;
	int64_t l = sms->pattern.stride, off = qpos0(att, seq->nq, seq->nk);
	int64_t start = off > l ? off : l, qend = off + (int64_t)seq->nq;
	if (qend <= start)
		return RVA_OK; /* no row has strided keys */
	if (!rva__mul3_ok(seq->nq, H, att->v_head_dim + 2, &rows))
		return rva__fail(RVA_EOVERFLOW, "sequence %zu: strided row states overflow", s);
	op->partials[s] = rva__graph_alloc_untouched(g, rows, sizeof(float));
	if (!op->partials[s])
		return RVA_ENOMEM;
	size_t br_max = rva__min(att->cfg.query_block, seq->nq);
	rva__graph_need_scratch(g, (tile_scratch_floats(att, br_max, br_max) +
	                            carve_floats(br_max, att->v_head_dim) + br_max * D + 16 +
	                            residue_keys_max(att) * (D + att->v_head_dim) + 64) *
	                           sizeof(float));
	uint32_t join, id;
	rva_status st = rva__graph_add_join(g, (uint32_t)s, &join);
	if (st != RVA_OK)
		return st;
	*gate = join;
	size_t nres = (size_t)rva__min((size_t)l, (size_t)(qend - start));
	double per_res = (double)(qend - start) / (double)l + 1.0; /* rows (and keys) per residue */
	double work = (double)D * per_res * per_res / 2.0;           /* multiply-adds per residue */
	size_t group = work >= 1048576.0 ? 1 : (size_t)(1048576.0 / (work + 1.0));
	group = rva__max(1, rva__min(group, nres));
	for (size_t h = 0; h < H; h++)
		for (size_t r0 = 0; r0 < nres; r0 += group) {
			size_t r1 = rva__min(nres, r0 + group);
			if ((st = rva__graph_add(g, task_strided, op, (uint32_t)s, (uint32_t)h, (uint32_t)r0,
			                         (uint32_t)r1, 0, (float)(4.0 * work * (double)(r1 - r0)),
			                         &id)) != RVA_OK ||
			    (st = rva__graph_edge(g, after, id)) != RVA_OK ||
			    (st = rva__graph_edge(g, id, join)) != RVA_OK)
				return st;
		}
	return RVA_OK;
}

/* The local-global global rows of sequence s (task_global_rows): runs of consecutive global
 * positions among the rows, query_block rows at most per task, heads in groups as the
 * query tiles; found by walking the sorted global list (never rows x globals). */
static rva_status plan_global_rows(const rva_attention *att, sm_op *op, rva__graph *g, size_t s,
                                   uint32_t after, size_t group, float cost, uint32_t done) {
	const rva__pattern *p = &((const sm_state *)att->state)->pattern;
	const rva_seq *seq = &op->seqs[s];
	size_t H = att->cfg.heads, qb = att->cfg.query_block;
	int64_t off = qpos0(att, seq->nq, seq->nk), qend = off + (int64_t)seq->nq;
	size_t t = rva__pattern_shared_below(p, off), n = rva__pattern_shared_below(p, qend);
	rva_status st;
	uint32_t id;
	if (!seq->bias && !seq->mask) { /* gathered, query_block rows a task */
		size_t br_max = rva__min(qb, n - t);
		rva__graph_need_scratch(g, (tile_scratch_floats(att, br_max, br_max) +
		                            carve_floats(br_max, att->v_head_dim) + br_max * att->head_dim +
		                            16) * sizeof(float));
		for (; t < n; t += qb)
			for (size_t h0 = 0; h0 < H; h0 += group)
				if ((st = rva__graph_add(g, task_global_gathered, op, (uint32_t)s, (uint32_t)h0,
				                         (uint32_t)rva__min(H, h0 + group), (uint32_t)t,
				                         (uint32_t)rva__min(qb, n - t), cost, &id)) != RVA_OK ||
				    (st = rva__graph_edge(g, after, id)) != RVA_OK ||
				    (st = rva__graph_edge(g, id, done)) != RVA_OK)
					return st;
		return RVA_OK;
	}
	while (t < n) {
		int64_t p0 = rva__pattern_shared_key(p, t);
		size_t run = 1;
		while (t + run < n && run < qb && rva__pattern_shared_key(p, t + run) == p0 + (int64_t)run)
			run++;
		t += run;
		for (size_t h0 = 0; h0 < H; h0 += group)
			if ((st = rva__graph_add(g, task_global_rows, op, (uint32_t)s, (uint32_t)h0,
			                         (uint32_t)rva__min(H, h0 + group), (uint32_t)(p0 - off),
			                         (uint32_t)run, cost, &id)) != RVA_OK ||
			    (st = rva__graph_edge(g, after, id)) != RVA_OK ||
			    (st = rva__graph_edge(g, id, done)) != RVA_OK)
				return st;
	}
	return RVA_OK;
}

rva_status rva__softmax_plan(const rva_attention *att, rva__plan_io *io, rva__graph *g) {
	const sm_state *sms = att->state;
	rva__plan_io rio; /* RoPE: the same op over rotated rows, after the rotation tasks */
	if (sms->rope.layout != RVA_ROPE_NONE) {
		rio = *io;
		rva_status rst = rva__rope_plan(att, &sms->rope, &sms->mods, &rio, g);
		if (rst != RVA_OK)
			return rst;
		io = &rio;
	}
	sm_op *op = rva__graph_alloc(g, sizeof *op);
	if (!op)
		return RVA_ENOMEM;
	op->att = att;
	op->seqs = io->seqs;
	op->rt = io->rt;
	op->scale = call_scale(att, &io->rt);
	op->stream = io->stream;
	op->kv_origin = 0;
	op->chunk_base = 0;
	op->direct = true;
	op->pages = io->pages;
	op->partials = rva__graph_alloc_array(g, io->nseq ? io->nseq : 1, sizeof(float *));
	op->nchunks = rva__graph_alloc_array(g, io->nseq ? io->nseq : 1, sizeof(size_t));
	op->chunk_len = rva__graph_alloc_array(g, io->nseq ? io->nseq : 1, sizeof(size_t));
	if (!op->partials || !op->nchunks || !op->chunk_len)
		return RVA_ENOMEM;
	size_t H = att->cfg.heads, D = att->head_dim, Dv = att->v_head_dim;
	size_t qb_cfg = att->cfg.query_block;
	rva_status st;
	for (size_t s = 0; s < io->nseq; s++) {
		uint32_t done, id, after = rva__plan_after(io, s);
		if ((st = rva__graph_add_join(g, (uint32_t)s, &done)) != RVA_OK)
			return st;
		io->done[s] = done;
		const rva_seq *seq = &io->seqs[s];
		if (io->seq_status[s] != RVA_OK || seq->nq == 0) {
			if ((st = rva__graph_edge(g, after, done)) != RVA_OK)
				return st;
			continue;
		}
		double pairs = seq_pairs(att, seq);
		size_t chunk = split_chunk(att, seq);
		bool few = few_queries(seq), decode = decode_kernels(att, seq);
		if (chunk || few) {
			size_t len = chunk ? chunk : seq->nk, nch = rva__div_up(seq->nk, len), parts;
			if (!rva__mul3_ok(H, nch, seq->nq, &parts) ||
			    parts > SIZE_MAX / ((Dv + 2) * sizeof(float))) {
				io->seq_status[s] = rva__fail(RVA_EOVERFLOW, "sequence %zu: %zu heads x %zu "
				                              "key chunks x %zu queries of partial results "
				                              "overflow", s, H, nch, seq->nq);
				if (io->details && !io->details[s])
					io->details[s] = rva__strdup(rva_last_error());
				if ((st = rva__graph_edge(g, after, done)) != RVA_OK)
					return st;
				continue;
			}
			op->nchunks[s] = nch;
			op->chunk_len[s] = len;
			/* One decode chunk: its task writes the output (op->direct), nothing to merge. */
			bool merge = !(decode && nch == 1);
			if (merge) {
				op->partials[s] = rva__graph_alloc_untouched(g, parts, (Dv + 2) * sizeof(float));
				if (!op->partials[s])
					return RVA_ENOMEM;
			}
			rva__graph_need_scratch(g, (decode ? decode_scratch_floats(att, seq->nq)
			                                   : tile_scratch_floats(att, seq->nq, seq->nq) +
			                                         carve_floats(seq->nq, Dv)) * sizeof(float));
			uint32_t merge_id = 0, sink = done;
			if (merge) {
				if ((st = rva__graph_add(g, task_merge, op, (uint32_t)s, 0, 0, 0, 0,
				                         (float)(seq->nq * nch * H * Dv), &merge_id)) != RVA_OK ||
				    (st = rva__graph_edge(g, merge_id, done)) != RVA_OK)
					return st;
				sink = merge_id;
			}
			/* Cost (the executor runs the costliest ready task first): the chunk's
			 * share of the sequence's flops; the last chunk may be shorter. */
			double seq_flops = 2.0 * (double)H * (double)(D + Dv) * pairs;
			size_t c0, c1; /* chunks wholly outside the sliding window are not planned */
			visible_chunks(att, seq, len, nch, &c0, &c1);
			for (size_t c = c0; c < c1; c++) {
				size_t keys = rva__min(len, seq->nk - c * len);
				float cost = (float)(seq_flops * (double)keys / (double)seq->nk);
				if (decode) {
					if ((st = rva__graph_add(g, task_decode, op, (uint32_t)s, 0, (uint32_t)c, 0,
					                         0, cost, &id)) != RVA_OK ||
					    (st = rva__graph_edge(g, after, id)) != RVA_OK ||
					    (st = rva__graph_edge(g, id, sink)) != RVA_OK)
						return st;
					continue;
				}
				for (size_t h = 0; h < H; h++)
					if ((st = rva__graph_add(g, task_chunk, op, (uint32_t)s, (uint32_t)h,
					                         (uint32_t)c, 0, 0, cost / (float)H, &id)) != RVA_OK ||
					    (st = rva__graph_edge(g, after, id)) != RVA_OK ||
					    (st = rva__graph_edge(g, id, merge_id)) != RVA_OK)
						return st;
			}
			continue;
		}
		/* Dense: query tiles x head groups; tiny heads are grouped so a task carries
		 * at least ~1M multiply-adds (fixed by shape, never by thread count). */
		size_t qb = qb_cfg;
		size_t ntiles = rva__div_up(seq->nq, qb);
		double per_head_tile = (double)D * pairs / (double)ntiles;
		size_t group = per_head_tile >= 1048576.0 ? 1 : (size_t)(1048576.0 / (per_head_tile + 1.0));
		group = rva__max(1, rva__min(group, H));
		size_t br_max = rva__min(qb, seq->nq);
		rva__graph_need_scratch(g, (tile_scratch_floats(att, br_max, br_max) +
		                            carve_floats(br_max, Dv)) * sizeof(float));
		/* Order: the executor runs equal-cost tasks in planning order. Every tile of a
		 * sequence gets the sequence's average cost (longer sequences first), and tiles
		 * are planned head by head, so a head's K and V stay in cache across its tiles
		 * (tile-major order streamed every head's K/V per tile: G2 170 -> 201 GFLOP/s on
		 * one thread here); causal ones from the last (largest) tile down, so a job ends
		 * on small tasks. */
		bool reverse = att->cfg.causal;
		float cost = (float)(4.0 * per_head_tile * (double)group);
		bool sparse = seq_sparse(att, seq);
		uint32_t gate = after; /* what the query tiles wait for */
		if (sparse && sms->pattern.kind == RVA__PAT_STRIDED &&
		    (st = plan_strided(att, op, g, s, after, &gate)) != RVA_OK)
			return st;
		if (sparse && sms->pattern.kind == RVA__PAT_LOCAL_GLOBAL &&
		    (st = plan_global_rows(att, op, g, s, after, group, cost, done)) != RVA_OK)
			return st;
		for (size_t h0 = 0; h0 < H; h0 += group) {
			size_t h1 = rva__min(H, h0 + group);
			for (size_t ti = 0; ti < ntiles; ti++) {
				size_t t = reverse ? ntiles - 1 - ti : ti;
				size_t q0 = t * qb, br = rva__min(qb, seq->nq - q0);
				if ((st = rva__graph_add(g, sparse ? task_sparse : task_dense, op, (uint32_t)s,
				                         (uint32_t)h0, (uint32_t)h1, (uint32_t)q0,
				                         (uint32_t)br, cost, &id)) != RVA_OK ||
				    (st = rva__graph_edge(g, gate, id)) != RVA_OK ||
				    (st = rva__graph_edge(g, id, done)) != RVA_OK)
					return st;
			}
		}
	}
	return RVA_OK;
}

/* ---- rows (MoE experts) ------------------------------------------------------------- */

size_t rva__softmax_rows_scratch(const rva_attention *att, const rva_seq *seq, size_t nrows) {
	size_t br = rva__min(att->cfg.query_block, nrows ? nrows : 1);
	size_t qspan = seq->nq + 1;
	return (64 + tile_scratch_floats(att, br, qspan) + carve_floats(br, att->v_head_dim)) *
	       sizeof(float);
}

rva_status rva__softmax_rows(const rva_attention *att, const rva_seq *seq, uint32_t seq_index,
                             const rva_runtime *rt, const uint32_t *rows, size_t nrows,
                             float *out, size_t out_stride, void *scratch) {
	size_t D = att->head_dim, Dv = att->v_head_dim, qb = att->cfg.query_block;
	size_t qs = seq->q_stride;
	sm_op op = {.att = att, .seqs = seq, .rt = *rt, .scale = call_scale(att, rt), .stream = 0};
	size_t br_max = rva__min(qb, nrows ? nrows : 1);
	tile_bufs b = carve(scratch, br_max, Dv);
	int64_t off = qpos0(att, seq->nq, seq->nk);
	for (size_t r0 = 0; r0 < nrows; r0 += qb) {
		size_t br = rva__min(qb, nrows - r0);
		for (size_t i = 0; i < br; i++)
			b.qpos[i] = off + (int64_t)rows[r0 + i];
		for (size_t h = 0; h < att->cfg.heads; h++) {
			tile_io io = {.q = rva__elem_at(seq->q, seq->q_dtype,
			                                r0 * qs + h * rva__head_stride(seq->q_head_stride, D)),
			              .qs = qs,
			              .qpos = b.qpos, .br = br,
			              .h = h, .k_begin = 0, .k_end = seq->nk, .o = b.o, .m = b.m,
			              .l = b.l};
			attend(att, &op, seq, seq_index, &io, b.tile);
			finish_rows(b.o, b.l, br, Dv, out + r0 * out_stride + h * Dv, RVA_F32, out_stride);
		}
	}
	return RVA_OK;
}

/* ---- pieces for distributed callers (softmax_part.h) --------------------------------- */

bool rva__softmax_is(const rva_attention *att) {
	return att && att->ops && att->ops->plan == rva__softmax_plan;
}

bool rva__softmax_split(const rva_attention *att, const rva_seq *seq, size_t *chunk_len,
                        size_t *nchunks) {
	size_t chunk = split_chunk(att, seq);
	bool few = few_queries(seq);
	size_t len = chunk ? chunk : seq->nk;
	*chunk_len = len;
	*nchunks = (chunk || few) && len ? rva__div_up(seq->nk, len) : 1;
	return chunk || few;
}

size_t rva__softmax_partials_scratch(const rva_attention *att, const rva_seq *seq) {
	size_t f = decode_kernels(att, seq) ? decode_scratch_floats(att, seq->nq)
	                                    : tile_scratch_floats(att, seq->nq, seq->nq) +
	                                          carve_floats(seq->nq, att->v_head_dim);
	return f * sizeof(float);
}

void rva__softmax_chunk_partials(const rva_attention *att, const rva_seq *seq,
                                 size_t kv_origin, uint32_t seq_index, const rva_runtime *rt,
                                 size_t c, float *part, size_t part_chunks, size_t part_base,
                                 void *scratch) {
	size_t len, nch;
	rva__softmax_split(att, seq, &len, &nch);
	/* The engine's tasks with the op's per-head chunk count part_chunks and chunk_base
	 * part_base: chunk c of head h lands at part[h][c - part_base]. */
	sm_op op = {.att = att, .seqs = seq, .rt = rva__runtime_or_default(rt),
	            .scale = call_scale(att, rt), .stream = 0, .partials = &part, .nchunks = &part_chunks, .chunk_len = &len,
	            .chunk_base = part_base, .kv_origin = kv_origin};
	rva__exec_ctx x = {.scratch = scratch, .scratch_bytes = 0, .worker = 0};
	if (decode_kernels(att, seq)) {
		rva__task t = {.fn = task_decode, .ctx = &op, .seq = seq_index, .b = (uint32_t)c};
		task_decode_at(&t, &x, 0);
		return;
	}
	for (size_t h = 0; h < att->cfg.heads; h++) {
		rva__task t = {.fn = task_chunk, .ctx = &op, .seq = seq_index, .a = (uint32_t)h,
		               .b = (uint32_t)c};
		task_chunk_at(&t, &x, 0);
	}
}

void rva__softmax_merge_partials(const rva_attention *att, const rva_seq *seq, size_t nch,
                                 const float *part) {
	size_t D = att->v_head_dim, br = seq->nq;
	for (size_t h = 0; h < att->cfg.heads; h++)
		merge_head(part + h * nch * br * (D + 2), nch, br, D,
		           RVA__F32(seq->out) + h * rva__head_stride(seq->out_head_stride, D),
		           seq->out_stride, seq->lse ? seq->lse + h * seq->lse_head_stride : NULL);
}

size_t rva__softmax_tile_state_floats(const rva_attention *att, size_t br) {
	return rva__round_up(2 * rva__round_up(br, 16) + br * att->v_head_dim, 16);
}

size_t rva__softmax_tile_scratch(const rva_attention *att, size_t br) {
	return tile_scratch_floats(att, br, br) * sizeof(float);
}

void rva__softmax_tile_step(const rva_attention *att, const rva_seq *seq, size_t kv_origin,
                            uint32_t seq_index, const rva_runtime *rt, const float *q,
                            size_t q0, size_t br, size_t h, size_t k_begin, size_t k_end,
                            bool first, float *state, void *scratch) {
	size_t brp = rva__round_up(br, 16), D = att->head_dim;
	sm_op op = {.att = att, .seqs = seq, .rt = rva__runtime_or_default(rt),
	            .scale = call_scale(att, rt), .stream = 0, .kv_origin = kv_origin};
	/* query positions: the tile's rows, as task_dense computes them; they live after the
	 * tile loop's own scratch area */
	int64_t qpos_buf[RVA__MAX_QUERY_BLOCK];
	int64_t off = qpos0(att, seq->nq, seq->nk);
	for (size_t i = 0; i < br; i++)
		qpos_buf[i] = off + (int64_t)(q0 + i);
	float *m = state, *l = state + brp, *o = state + 2 * brp;
	tile_io io = {.q = q + h * rva__head_stride(seq->q_head_stride, D), .qs = seq->q_stride,
	              .qpos = qpos_buf, .q0 = q0, .br = br,
	              .h = h,
	              .k_begin = k_begin, .k_end = k_end, .o = o, .m = m, .l = l,
	              .resume = !first};
	attend(att, &op, seq, seq_index, &io, scratch);
}

void rva__softmax_tile_finish(const rva_attention *att, size_t br, const float *state,
                              float *out, size_t out_stride, float *lse) {
	size_t brp = rva__round_up(br, 16);
	finish_rows(state + 2 * brp, state + brp, br, att->v_head_dim, out, RVA_F32, out_stride);
	if (lse)
		write_lse(state, state + brp, br, lse);
}

/*
 * One sequence over many ranks (include/rvattn/dist.h): decode split-KV and ring
 * attention. Both run the engine's own code on the engine's boundaries
 * (src/attention/softmax_part.h), so the numbers are the single-process engine's:
 *   - decode: key chunks of the engine's split, dealt to ranks in contiguous runs; each
 *     rank computes its chunks' partial (m, l, O) on its engine, the root gathers them
 *     and merges all chunks in chunk order with the engine's merge;
 *   - ring: query tiles (query_block rows) striped over ranks (tile t on rank t % P, so
 *     causal work is balanced), K/V in P blocks of whole key tiles; block s is broadcast
 *     by its owner (rank s) with MPI_Ibcast while block s-1 is computed, and every
 *     (tile, head) continues one online-softmax state over the blocks in key order: the
 *     tile loop visits the same key tiles in the same order as the engine's dense task.
 */
#include <limits.h>
#include <string.h>

#include "attention/softmax_part.h"
#include "dist/dist_internal.h"

/* Collective: every rank passes the same (a, b, c); false when they differ. */
static rva_status same_everywhere(rva_dist *d, unsigned long long a, unsigned long long b,
                                  unsigned long long c, bool *same) {
	unsigned long long v[3] = {a, b, c}, lo[3], hi[3];
	int rc = MPI_Allreduce(v, lo, 3, MPI_UNSIGNED_LONG_LONG, MPI_MIN, d->comm);
	if (rc == MPI_SUCCESS)
		rc = MPI_Allreduce(v, hi, 3, MPI_UNSIGNED_LONG_LONG, MPI_MAX, d->comm);
	if (rc != MPI_SUCCESS)
		return rva__dist_mpi_fail(rc, "MPI_Allreduce (shape check)");
	*same = lo[0] == hi[0] && lo[1] == hi[1] && lo[2] == hi[2];
	return RVA_OK;
}

/* Local checks of a sequence piece: pointers of the parts this rank holds, strides. */
static rva_status check_piece(const rva_attention *att, const rva_seq *in, size_t q_rows,
                              bool need_out, size_t kv_rows, rva_seq *s, const char *who) {
	*s = *in;
	size_t dim = att->cfg.dim, kvd = att->kv_dim;
	if (!s->q_stride)
		s->q_stride = dim;
	if (!s->out_stride)
		s->out_stride = dim;
	if (!s->k_stride)
		s->k_stride = kvd;
	if (!s->v_stride)
		s->v_stride = kvd;
	if (s->nk == 0)
		return rva__fail(RVA_EEMPTY, "%s: the sequence has no keys", who);
	if ((q_rows && !s->q) || (need_out && q_rows && !s->out) || (kv_rows && (!s->k || !s->v)))
		return rva__fail(RVA_ENULL, "%s: %s is NULL", who,
		                 q_rows && !s->q ? "q" : need_out && q_rows && !s->out ? "out"
		                 : !s->k ? "k" : "v");
	if (s->q_dtype != RVA_F32 || s->k_dtype != RVA_F32 || s->v_dtype != RVA_F32 ||
	    s->out_dtype != RVA_F32)
		return rva__fail(RVA_EINVAL, "%s: distributed sequences are fp32 (element types must "
		                 "be RVA_F32)", who);
	if (s->q_stride < dim || s->out_stride < dim || s->k_stride < kvd || s->v_stride < kvd)
		return rva__fail(RVA_EDIM, "%s: a row stride is narrower than its row (q/out %zu, "
		                 "k/v %zu floats)", who, dim, kvd);
	/* lse (batch.h): [heads][rows this rank writes], written where out is */
	if (s->lse_head_stride && !s->lse)
		return rva__fail(RVA_EINVAL, "%s: lse_head_stride is set but lse is NULL", who);
	if (!s->lse_head_stride)
		s->lse_head_stride = q_rows;
	if (s->lse && att->cfg.heads > 1 && s->lse_head_stride < q_rows)
		return rva__fail(RVA_EDIM, "%s: lse_head_stride %zu is below the %zu rows", who,
		                 s->lse_head_stride, q_rows);
	if (s->bias || s->mask)
		return rva__fail(RVA_EINVAL, "%s: rva_seq.%s is not supported by rvattn_mpi (score "
		                 "matrices are not distributed; config modifiers are)", who,
		                 s->bias ? "bias" : "mask");
	if (att->v_head_dim != att->head_dim)
		return rva__fail(RVA_EINVAL, "%s: v_head_dim %zu != head_dim %zu is not supported by "
		                 "rvattn_mpi", who, att->v_head_dim, att->head_dim);
	if (rva__seq_head_strided(att, s))
		return rva__fail(RVA_EINVAL, "%s: head strides (rva_seq.q_head_stride, ...) are not "
		                 "supported by rvattn_mpi (rows are packed [S, H, D])", who);
	return rva__seq_extras_supported(att, s, 0);
}

/* ---- decode split-KV ------------------------------------------------------------------ */

/* RoPE is refused by design here (dist.h): the sharded pieces (softmax_part.h) take q and k
 * as given, and the caller rotates them once with rva_rope_apply at their global positions,
 * which no rank could do for a slice without its offset. */
static rva_status refuse_rope(const rva_attention *att, const char *what) {
	if (att->cfg.rope == RVA_ROPE_NONE)
		return RVA_OK;
	return rva__fail(RVA_EINVAL, "rvattn_mpi: %s does not apply RoPE: rotate q and k with "
	                 "rva_rope_apply (rvattn/rope.h) and use an attention without rope", what);
}

static rva_status decode_range(const rva_dist *d, const rva_attention *att, size_t nq,
                               size_t nk, size_t *len, size_t *nch, size_t *c0, size_t *c1) {
	if (!rva__softmax_is(att))
		return rva__fail(RVA_EINVAL, "rvattn_mpi: decode split-KV needs a softmax mechanism "
		                 "(scaled_dot, multi_head, flash, local_global), not %s",
		                 rva_mechanism_name(att->cfg.mechanism));
	rva_status st = refuse_rope(att, "decode split-KV");
	if (st != RVA_OK)
		return st;
	rva_seq s = {.nq = nq, .nk = nk};
	if (nk == 0)
		return rva__fail(RVA_EEMPTY, "rvattn_mpi: decode of a sequence without keys");
	if (!rva__softmax_split(att, &s, len, nch))
		return rva__fail(RVA_EINVAL, "rvattn_mpi: the engine computes %zu queries x %zu keys "
		                 "by query tiles, not key chunks: use rva_dist_ring or batch "
		                 "sharding (or set kv_split)", nq, nk);
	size_t P = (size_t)d->size, r = (size_t)d->rank;
	*c0 = r * *nch / P;
	*c1 = (r + 1) * *nch / P;
	return RVA_OK;
}

rva_status rva_dist_decode_keys(const rva_dist *d, const rva_attention *att, size_t nq,
                                size_t nk, size_t *first, size_t *count) {
	if (!d || !att || !first || !count)
		return rva__fail(RVA_ENULL, "rva_dist_decode_keys: %s is NULL",
		                 !d ? "d" : !att ? "att" : !first ? "first" : "count");
	size_t len = 0, nch = 0, c0 = 0, c1 = 0;
	rva_status st = decode_range(d, att, nq, nk, &len, &nch, &c0, &c1);
	if (st != RVA_OK)
		return st;
	*first = rva__min(nk, c0 * len);
	*count = rva__min(nk, c1 * len) - *first;
	return RVA_OK;
}

typedef struct dec_ctx {
	const rva_attention *att;
	rva_seq seq;
	size_t first, n, c0;
	rva_runtime rt;
	float *part;
} dec_ctx;

static rva_status dec_task(const rva__task *t, rva__exec_ctx *x) {
	const dec_ctx *c = t->ctx;
	rva__softmax_chunk_partials(c->att, &c->seq, c->first, 0, &c->rt, t->a, c->part, c->n,
	                            c->c0, x->scratch);
	return RVA_OK;
}

rva_status rva_dist_decode(rva_dist *d, const rva_attention *att, const rva_seq *seq,
                           int root, const rva_runtime *rt, rva_dist_stats *stats) {
	if (!d)
		return rva__fail(RVA_ENULL, "rva_dist_decode: d is NULL");
	double t0 = rva__dist_now(), compute = 0.0, flops = 0.0;
	rva_status st = rva__dist_check_att(d, att);
	if (st != RVA_OK)
		return st;
	bool same;
	if ((st = same_everywhere(d, seq ? seq->nq : ULLONG_MAX, seq ? seq->nk : ULLONG_MAX,
	                          (unsigned long long)root, &same)) != RVA_OK)
		return st;
	if (!same)
		return rva__fail(RVA_EINVAL, "rva_dist_decode: the ranks disagree on nq, nk or root "
		                 "(or a rank passed seq = NULL)");
	if (root < 0 || root >= d->size)
		return rva__fail(RVA_ERANGE, "rva_dist_decode: root %d outside [0, %d)", root, d->size);
	size_t len = 0, nch = 0, c0 = 0, c1 = 0;
	if ((st = decode_range(d, att, seq->nq, seq->nk, &len, &nch, &c0, &c1)) != RVA_OK)
		return st; /* the same on every rank: shapes agree */
	size_t H = att->cfg.heads, D = att->head_dim, nq = seq->nq, n = c1 - c0;
	size_t first = rva__min(seq->nk, c0 * len);
	size_t kv_rows = rva__min(seq->nk, c1 * len) - first;
	bool is_root = d->rank == root;
	/* local checks and allocations, agreed */
	rva_seq s;
	char detail[256] = "";
	float *part = NULL, *all = NULL;
	int *counts = NULL, *displs = NULL;
	rva_status mine = check_piece(att, seq, nq, is_root, kv_rows, &s, "rva_dist_decode");
	size_t per_chunk = H * nq * (D + 2), mine_floats = n * per_chunk;
	/* MPI counts are int: every rank's share and the total must fit */
	if (mine == RVA_OK && (double)nch * (double)per_chunk > (double)INT_MAX)
		mine = rva__fail(RVA_EOVERFLOW, "rva_dist_decode: %zu chunks x %zu floats of partial "
		                 "results exceed the MPI count limit", nch, per_chunk);
	if (mine == RVA_OK &&
	    (rva__alloc_array((void **)&part, mine_floats ? mine_floats : 1, sizeof(float),
	                      "decode partials") != RVA_OK ||
	     (is_root && (rva__alloc_array((void **)&all, nch * per_chunk, sizeof(float),
	                                   "decode partials") != RVA_OK ||
	                  rva__alloc_array((void **)&counts, 2 * (size_t)d->size, sizeof(int),
	                                   "counts") != RVA_OK))))
		mine = RVA_ENOMEM;
	if (mine != RVA_OK)
		snprintf(detail, sizeof detail, "%s", rva_last_error());
	if ((st = rva__dist_agree(d, mine, 0, detail)) != RVA_OK)
		goto out;
	bool cancelled;
	if ((st = rva__dist_agree_cancel(d, &cancelled)) != RVA_OK)
		goto out;
	if (cancelled) {
		st = rva__fail(RVA_ECANCELLED, "rva_dist_decode: cancelled before computing");
		goto out;
	}
	/* this rank's chunks on its engine, one task per chunk */
	if (n) {
		s.k = seq->k;
		s.v = seq->v;
		dec_ctx ctx = {.att = att, .seq = s, .first = first, .n = n, .c0 = c0,
		               .rt = rva__runtime_or_default(rt), .part = part};
		rva__graph g;
		rva__graph_init_cached(&g, 1, d->engine->arena_cache);
		rva_status gs = RVA_OK;
		for (size_t c = c0; c < c1 && gs == RVA_OK; c++) {
			uint32_t id;
			gs = rva__graph_add(&g, dec_task, &ctx, 0, (uint32_t)c, 0, 0, 0, 1.0f, &id);
		}
		rva__graph_need_scratch(&g, rva__softmax_partials_scratch(att, &s));
		if (gs == RVA_OK)
			gs = rva__dist_run_graph(d, &g, NULL, 0, &compute);
		rva__graph_free(&g);
		mine = gs;
		snprintf(detail, sizeof detail, "%s", gs != RVA_OK ? rva_last_error() : "");
		rva_seq shape = {.nq = nq, .nk = kv_rows};
		rva_batch b = {.count = 1, .seqs = &shape};
		double f = 0.0;
		if (rva_attention_flops(att, &b, &f) == RVA_OK)
			flops = f;
	}
	if ((st = rva__dist_agree_cancel(d, &cancelled)) != RVA_OK)
		goto out;
	if (cancelled) {
		st = rva__fail(RVA_ECANCELLED, "rva_dist_decode: cancelled while computing");
		goto out;
	}
	if ((st = rva__dist_agree(d, mine, 0, detail)) != RVA_OK)
		goto out;
	/* gather the partials at the root, then merge in chunk order */
	double tw = rva__dist_now();
	if (is_root) {
		displs = counts + d->size;
		int off = 0;
		for (int r = 0; r < d->size; r++) {
			size_t a = (size_t)r * nch / (size_t)d->size, b = (size_t)(r + 1) * nch / (size_t)d->size;
			counts[r] = (int)((b - a) * per_chunk);
			displs[r] = off;
			off += counts[r];
		}
	}
	/* gathered rank by rank: [rank r: [H][n_r][nq][D+2]] == staging in `part` order */
	float *staging = NULL;
	if (is_root && rva__alloc_array((void **)&staging, nch * per_chunk, sizeof(float),
	                                "decode staging") != RVA_OK)
		staging = NULL;
	int have = !is_root || staging, all_have = 0;
	int rc = MPI_Allreduce(&have, &all_have, 1, MPI_INT, MPI_MIN, d->comm);
	if (rc != MPI_SUCCESS || !all_have) {
		rva__free(staging);
		st = rc != MPI_SUCCESS ? rva__dist_mpi_fail(rc, "MPI_Allreduce (staging)")
		                       : rva__fail(RVA_ENOMEM, "rank %d: cannot allocate the decode "
		                                   "staging buffer", root);
		goto out;
	}
	rc = MPI_Gatherv(part, (int)(n * per_chunk), MPI_FLOAT, staging, counts, displs, MPI_FLOAT,
	                 root, d->comm);
	if (rc != MPI_SUCCESS) {
		rva__free(staging);
		st = rva__dist_mpi_fail(rc, "MPI_Gatherv (decode partials)");
		goto out;
	}
	double comm = rva__dist_now() - tw;
	if (is_root) {
		/* rank r's block [H][n_r][nq][D+2] -> all[H][nch][nq][D+2] */
		size_t row = nq * (D + 2);
		for (int r = 0; r < d->size; r++) {
			size_t a = (size_t)r * nch / (size_t)d->size, b = (size_t)(r + 1) * nch / (size_t)d->size;
			const float *src = staging + (size_t)displs[r];
			for (size_t h = 0; h < H; h++)
				memcpy(all + (h * nch + a) * row, src + h * (b - a) * row,
				       (b - a) * row * sizeof(float));
		}
		rva__free(staging);
		rva__softmax_merge_partials(att, &s, nch, all);
	}
	st = RVA_OK;
	if (stats)
		*stats = (rva_dist_stats){.wall_s = rva__dist_now() - t0, .compute_s = compute,
		                          .comm_wait_s = comm, .flops = flops,
		                          .bytes_sent = is_root ? 0.0 : (double)n * per_chunk * 4.0,
		                          .bytes_received = is_root ? (double)(nch - n) * per_chunk * 4.0
		                                                    : 0.0,
		                          .local_sequences = n ? 1 : 0};
out:
	rva__free(part);
	rva__free(all);
	rva__free(counts);
	return st;
}

/* ---- ring attention --------------------------------------------------------------------- */

static rva_status ring_layout(const rva_dist *d, const rva_attention *att, size_t nq, size_t nk,
                              rva_dist_ring_layout *out) {
	if (!rva__softmax_is(att))
		return rva__fail(RVA_EINVAL, "rvattn_mpi: ring attention needs a softmax mechanism "
		                 "(scaled_dot, multi_head, flash, local_global), not %s",
		                 rva_mechanism_name(att->cfg.mechanism));
	rva_status rst = refuse_rope(att, "ring attention");
	if (rst != RVA_OK)
		return rst;
	if (nk == 0)
		return rva__fail(RVA_EEMPTY, "rvattn_mpi: ring attention over a sequence without keys");
	rva_seq s = {.nq = nq, .nk = nk};
	size_t len, nch;
	if (rva__softmax_split(att, &s, &len, &nch))
		return rva__fail(RVA_EINVAL, "rvattn_mpi: the engine computes %zu queries x %zu keys "
		                 "by key chunks (decoding): use rva_dist_decode", nq, nk);
	size_t P = (size_t)d->size, r = (size_t)d->rank, qb = att->cfg.query_block;
	size_t bc = att->cfg.block_size;
	memset(out, 0, sizeof *out);
	out->q_tile = qb;
	out->q_tiles = rva__div_up(nq, qb);
	for (size_t t = r; t < out->q_tiles; t += P)
		out->q_rows += rva__min(qb, nq - t * qb);
	out->kv_block = rva__round_up(rva__div_up(nk, P), bc);
	out->kv_first = rva__min(nk, r * out->kv_block);
	out->kv_rows = rva__min(nk, out->kv_first + out->kv_block) - out->kv_first;
	return RVA_OK;
}

rva_status rva_dist_ring_layout_get(const rva_dist *d, const rva_attention *att, size_t nq,
                                    size_t nk, rva_dist_ring_layout *out) {
	if (!d || !att || !out)
		return rva__fail(RVA_ENULL, "rva_dist_ring_layout_get: %s is NULL",
		                 !d ? "d" : !att ? "att" : "out");
	return ring_layout(d, att, nq, nk, out);
}

typedef struct ring_ctx {
	const rva_attention *att;
	rva_seq blk;                /* global nq/nk; k/v: the block in hand */
	const float *q;             /* this rank's query rows */
	size_t q_stride;
	size_t P, rank, qb, nq, stride_floats; /* state floats per (tile, head) of a full tile */
	size_t kb, ke;              /* key block [kb, ke) */
	bool first;
	rva_runtime rt;
	float *state;               /* [local tile][head] states */
} ring_ctx;

/* Task: a = local tile index, b = head. */
static rva_status ring_task(const rva__task *t, rva__exec_ctx *x) {
	const ring_ctx *c = t->ctx;
	size_t li = t->a, h = t->b, tile = c->rank + li * c->P, q0 = tile * c->qb;
	size_t br = rva__min(c->qb, c->nq - q0);
	float *state = c->state + (li * c->att->cfg.heads + h) * c->stride_floats;
	rva__softmax_tile_step(c->att, &c->blk, c->kb, 0, &c->rt, c->q + li * c->qb * c->q_stride,
	                       q0, br, h, c->kb, c->ke, c->first, state, x->scratch);
	return RVA_OK;
}

/* Packs rows x width floats (stride apart) into dst. */
static void pack(float *dst, const float *src, size_t rows, size_t width, size_t stride) {
	for (size_t i = 0; i < rows; i++)
		memcpy(dst + i * width, src + i * stride, width * sizeof(float));
}

rva_status rva_dist_ring(rva_dist *d, const rva_attention *att, const rva_seq *seq,
                         const rva_runtime *rt, rva_dist_stats *stats) {
	if (!d)
		return rva__fail(RVA_ENULL, "rva_dist_ring: d is NULL");
	double t0 = rva__dist_now(), compute = 0.0, wait = 0.0, sent = 0.0, recvd = 0.0;
	rva_status st = rva__dist_check_att(d, att);
	if (st != RVA_OK)
		return st;
	bool same;
	if ((st = same_everywhere(d, seq ? seq->nq : ULLONG_MAX, seq ? seq->nk : ULLONG_MAX, 0,
	                          &same)) != RVA_OK)
		return st;
	if (!same)
		return rva__fail(RVA_EINVAL, "rva_dist_ring: the ranks disagree on nq or nk (or a "
		                 "rank passed seq = NULL)");
	rva_dist_ring_layout L;
	if ((st = ring_layout(d, att, seq->nq, seq->nk, &L)) != RVA_OK)
		return st;
	size_t H = att->cfg.heads, D = att->head_dim, kvd = att->kv_dim, P = (size_t)d->size;
	size_t nq = seq->nq, nk = seq->nk, ntl = rva__div_up(L.q_rows, L.q_tile);
	size_t sf = rva__softmax_tile_state_floats(att, L.q_tile);
	size_t nblocks = rva__div_up(nk, L.kv_block);
	rva_seq s;
	char detail[256] = "";
	float *state = NULL, *buf[2] = {NULL, NULL};
	rva_status mine = check_piece(att, seq, L.q_rows, true, L.kv_rows, &s, "rva_dist_ring");
	size_t blk_floats = 2 * L.kv_block * kvd;
	if (mine == RVA_OK && blk_floats > (size_t)INT_MAX)
		mine = rva__fail(RVA_EOVERFLOW, "rva_dist_ring: a K/V block of %zu floats exceeds the "
		                 "MPI count limit: use more ranks", blk_floats);
	size_t state_floats = 0;
	if (mine == RVA_OK && !rva__mul3_ok(ntl ? ntl : 1, H, sf, &state_floats))
		mine = rva__fail(RVA_EOVERFLOW, "rva_dist_ring: tile states overflow");
	if (mine == RVA_OK &&
	    (!(state = rva__dist_ring_buffer(d, 0, state_floats)) ||
	     !(buf[0] = rva__dist_ring_buffer(d, 1, blk_floats)) ||
	     !(buf[1] = rva__dist_ring_buffer(d, 2, blk_floats))))
		mine = RVA_ENOMEM;
	if (mine != RVA_OK)
		snprintf(detail, sizeof detail, "%s", rva_last_error());
	if ((st = rva__dist_agree(d, mine, 0, detail)) != RVA_OK)
		goto out;
	ring_ctx ctx = {.att = att, .q = s.q, .q_stride = s.q_stride, .P = P,
	                .rank = (size_t)d->rank, .qb = L.q_tile, .nq = nq, .stride_floats = sf,
	                .rt = rva__runtime_or_default(rt), .state = state};
	ctx.blk = (rva_seq){.nq = nq, .nk = nk, .q = s.q, .q_stride = s.q_stride,
	                    .k_stride = kvd, .v_stride = kvd, .key_mask = s.key_mask};
	MPI_Request req = MPI_REQUEST_NULL;
	int rc;
	/* block 0 */
	size_t rows0 = rva__min(nk, L.kv_block);
	if (d->rank == 0) {
		pack(buf[0], s.k, rows0, kvd, s.k_stride);
		pack(buf[0] + rows0 * kvd, s.v, rows0, kvd, s.v_stride);
	}
	/* block 0 is not overlapped: its broadcast counts as communication wait */
	double tw0 = rva__dist_now();
	if ((rc = MPI_Ibcast(buf[0], (int)(2 * rows0 * kvd), MPI_FLOAT, 0, d->comm, &req)) !=
	        MPI_SUCCESS ||
	    (rc = MPI_Wait(&req, MPI_STATUS_IGNORE)) != MPI_SUCCESS) {
		st = rva__dist_mpi_fail(rc, "MPI_Ibcast (K/V block 0)");
		goto out;
	}
	wait += rva__dist_now() - tw0;
	if (d->rank == 0)
		sent += (double)(2 * rows0 * kvd) * 4.0 * (double)(P - 1);
	else
		recvd += (double)(2 * rows0 * kvd) * 4.0;
	mine = RVA_OK;
	for (size_t b = 0; b < nblocks; b++) {
		size_t kb = b * L.kv_block, ke = rva__min(nk, kb + L.kv_block), rows = ke - kb;
		float *cur = buf[b & 1], *next = buf[(b + 1) & 1];
		/* the next block travels while this one computes */
		req = MPI_REQUEST_NULL;
		if (b + 1 < nblocks) {
			size_t nkb = (b + 1) * L.kv_block, nrows = rva__min(nk, nkb + L.kv_block) - nkb;
			if ((size_t)d->rank == b + 1) {
				pack(next, s.k, nrows, kvd, s.k_stride);
				pack(next + nrows * kvd, s.v, nrows, kvd, s.v_stride);
			}
			if ((rc = MPI_Ibcast(next, (int)(2 * nrows * kvd), MPI_FLOAT, (int)(b + 1), d->comm,
			                     &req)) != MPI_SUCCESS) {
				st = rva__dist_mpi_fail(rc, "MPI_Ibcast (K/V block)");
				goto out;
			}
			double bytes = (double)(2 * nrows * kvd) * 4.0;
			if ((size_t)d->rank == b + 1)
				sent += bytes * (double)(P - 1);
			else
				recvd += bytes;
		}
		if (mine == RVA_OK && ntl) {
			ctx.blk.k = cur;
			ctx.blk.v = cur + rows * kvd;
			ctx.kb = kb;
			ctx.ke = ke;
			ctx.first = b == 0;
			rva__graph g;
			rva__graph_init_cached(&g, 1, d->engine->arena_cache);
			rva_status gs = RVA_OK;
			/* head-major (a head's K/V block stays in cache across its tiles), causal
			 * tiles from the last (the most keys) down: the engine's dense order */
			for (size_t h = 0; h < H && gs == RVA_OK; h++)
				for (size_t i = 0; i < ntl && gs == RVA_OK; i++) {
					size_t li = att->cfg.causal ? ntl - 1 - i : i;
					uint32_t id;
					gs = rva__graph_add(&g, ring_task, &ctx, 0, (uint32_t)li, (uint32_t)h, 0, 0,
					                    1.0f, &id);
				}
			rva__graph_need_scratch(&g, rva__softmax_tile_scratch(att, L.q_tile));
			if (gs == RVA_OK)
				gs = rva__dist_run_graph(d, &g, &req, 1, &compute);
			rva__graph_free(&g);
			if (gs != RVA_OK) {
				mine = gs; /* keep taking part in the broadcasts; agreed below */
				snprintf(detail, sizeof detail, "%s", rva_last_error());
			}
		}
		double tw = rva__dist_now();
		if ((rc = MPI_Wait(&req, MPI_STATUS_IGNORE)) != MPI_SUCCESS) {
			st = rva__dist_mpi_fail(rc, "MPI_Wait (K/V block)");
			goto out;
		}
		wait += rva__dist_now() - tw;
	}
	bool cancelled;
	if ((st = rva__dist_agree_cancel(d, &cancelled)) != RVA_OK)
		goto out;
	if (cancelled) {
		st = rva__fail(RVA_ECANCELLED, "rva_dist_ring: cancelled");
		goto out;
	}
	if ((st = rva__dist_agree(d, mine, 0, detail)) != RVA_OK)
		goto out;
	for (size_t li = 0; li < ntl; li++) {
		size_t q0 = ((size_t)d->rank + li * P) * L.q_tile, br = rva__min(L.q_tile, nq - q0);
		for (size_t h = 0; h < H; h++)
			rva__softmax_tile_finish(att, br, state + (li * H + h) * sf,
			                         (float *)s.out + li * L.q_tile * s.out_stride + h * D,
			                         s.out_stride,
			                         s.lse ? s.lse + h * s.lse_head_stride + li * L.q_tile
			                               : NULL);
	}
	if (stats) {
		double f = 0.0;
		rva_seq whole = {.nq = nq, .nk = nk};
		rva_batch b1 = {.count = 1, .seqs = &whole};
		rva_attention_flops(att, &b1, &f);
		*stats = (rva_dist_stats){.wall_s = rva__dist_now() - t0, .compute_s = compute,
		                          .comm_wait_s = wait, .flops = f * (double)L.q_rows /
		                                                        (double)(nq ? nq : 1),
		                          .bytes_sent = sent, .bytes_received = recvd,
		                          .local_sequences = 1};
	}
out:
	return st; /* state and buf belong to d's ring cache */
}

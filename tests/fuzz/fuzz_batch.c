/*
 * libFuzzer target: batch descriptor validation, rva_compute_batch / rva_engine_run on
 * fuzzed sequence descriptors, and rva_batch_unpack on fuzzed packed offsets (including
 * its overflow check of rows x stride).
 *
 * The library trusts that a descriptor's pointers cover the extents it claims (batch.h);
 * so every descriptor built here either claims extents that fit inside real buffers of
 * exactly that size (ASan sees any read or write past them), or is invalid in a way the
 * validator must catch before touching memory (NULL pointer, no keys, more than 2^32-1
 * rows, a stride narrower than the row, an extent overflowing size_t). Valid claims too
 * big to allocate are shrunk. The target predicts every sequence's status and checks
 * it; sequences that succeed must give the same bits through the engine as through the
 * serial path.
 */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NATT 9
#define MAXSEQ 4
#define MAX_FLOATS ((size_t)1 << 14)

static rva_attention *atts[NATT];
static rva_engine *engine;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
	(void)argc;
	(void)argv;
	fuzz_install_allocator();
	rva_config c[NATT];
	c[0] = rva_scaled_dot(8);
	c[1] = rva_multi_head(8, 2);
	c[1].kv_heads = 1;
	c[2] = rva_flash(8, 3);
	c[2].heads = 2;
	c[2].causal = true;
	c[2].query_block = 2;
	c[3] = rva_linear(8, 16);
	c[3].heads = 2;
	c[3].causal = true;
	c[3].block_size = 2;
	c[4] = rva_local_global(8, 2);
	c[4].heads = 2;
	c[5] = rva_hyperbolic(8, -1.0f);
	c[5].heads = 2;
	c[6] = rva_moe(8, 4, 2);
	c[6].expert_capacity = 1.0f;
	c[7] = rva_preset_config(RVA_PRESET_T5, 8);
	c[7].heads = 2;
	c[8] = rva_preset_config(RVA_PRESET_SPARSE_TRANSFORMER, 8);
	c[8].heads = 2;
	c[8].sparse_stride = 3;
	c[8].block_size = 4;
	for (int i = 0; i < NATT; i++)
		if (rva_build(&c[i], &atts[i]) != RVA_OK) {
			fprintf(stderr, "fuzz_batch: attention %d: %s\n", i, rva_last_error());
			abort();
		}
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = 1;
	ec.spin_us = 0;
	ec.scratch_bytes = 4096; /* exercises scratch growth */
	if (rva_engine_create(&ec, &engine) != RVA_OK) {
		fprintf(stderr, "fuzz_batch: engine: %s\n", rva_last_error());
		abort();
	}
	return 0;
}

static size_t pick_rows(fuzz_in *in) {
	static const size_t big[16] = {
		(size_t)UINT32_MAX, (size_t)UINT32_MAX + 1, (size_t)1 << 40, SIZE_MAX, SIZE_MAX / 2,
		(size_t)1 << 20, SIZE_MAX / 4 + 1, (size_t)1 << 62, 100, 64, 33, 17, 16, 1000,
		(size_t)1 << 31, SIZE_MAX / 32};
	uint8_t b = fuzz_u8(in);
	return b < 240 ? b % 12 : big[b - 240];
}

/* A stride for rows of width w: 0 (packed), near w (narrower, equal, wider) or huge. */
static size_t pick_stride(fuzz_in *in, size_t w) {
	static const size_t big[8] = {(size_t)1 << 62, SIZE_MAX / 2, SIZE_MAX, (size_t)1 << 40,
	                              SIZE_MAX / 8, (size_t)1 << 33, 1000, 100};
	uint8_t b = fuzz_u8(in);
	if (b < 64)
		return 0;
	if (b < 248)
		return w + b % 5 >= 2 ? w + b % 5 - 2 : 0;
	return big[b - 248];
}

/* Floats covered by rows of width w at stride s: (rows-1)*s + w, SIZE_MAX on overflow. */
static size_t extent(size_t rows, size_t s, size_t w) {
	size_t r;
	if (rows == 0)
		return 0;
	if (__builtin_mul_overflow(rows - 1, s, &r) || __builtin_add_overflow(r, w, &r) ||
	    r > SIZE_MAX / sizeof(float))
		return SIZE_MAX;
	return r;
}

enum { P_OK = 1, P_NULL = 2, P_EMPTY = 4, P_RANGE = 8, P_DIM = 16, P_OVERFLOW = 32 };

static unsigned predict(const rva_seq *s, size_t dim, size_t kvd) {
	if (s->nq == 0)
		return P_OK;
	unsigned p = 0;
	if (!s->q || !s->out || (s->nk && (!s->k || !s->v)))
		p |= P_NULL;
	if (s->nk == 0)
		p |= P_EMPTY;
	if (s->nq > UINT32_MAX || s->nk > UINT32_MAX)
		p |= P_RANGE;
	size_t qs = s->q_stride ? s->q_stride : dim, os = s->out_stride ? s->out_stride : dim;
	size_t ks = s->k_stride ? s->k_stride : kvd, vs = s->v_stride ? s->v_stride : kvd;
	/* one row constrains no row stride (batch.h, head strides) */
	if ((s->nq > 1 && (qs < dim || os < dim)) || (s->nk > 1 && (ks < kvd || vs < kvd)))
		p |= P_DIM;
	if (extent(s->nq, qs, dim) == SIZE_MAX || extent(s->nq, os, dim) == SIZE_MAX ||
	    extent(s->nk, ks, kvd) == SIZE_MAX || extent(s->nk, vs, kvd) == SIZE_MAX)
		p |= P_OVERFLOW;
	return p ? p : P_OK;
}

static unsigned status_bit(rva_status st) {
	switch (st) {
	case RVA_OK: return P_OK;
	case RVA_ENULL: return P_NULL;
	case RVA_EEMPTY: return P_EMPTY;
	case RVA_ERANGE: return P_RANGE;
	case RVA_EDIM: return P_DIM;
	case RVA_EOVERFLOW: return P_OVERFLOW;
	default: return 0;
	}
}

static float lcg_value(uint64_t *s) {
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (float)((double)(*s >> 40) / 8388608.0 - 1.0);
}

/* Exactly n floats (ASan catches accesses past them); NULL for n == 0 is avoided. */
static float *exact_floats(size_t n, uint64_t *seed) {
	float *a = malloc((n ? n : 1) * sizeof *a);
	FUZZ_CHECK(a != NULL, "malloc %zu floats", n);
	for (size_t i = 0; i < n; i++)
		a[i] = lcg_value(seed);
	return a;
}

static void run_descriptors(fuzz_in *in, const rva_attention *att, size_t dim, size_t kvd,
                            uint8_t flags, uint64_t seed) {
	size_t count = fuzz_u8(in) % (MAXSEQ + 1);
	rva_seq seqs[MAXSEQ];
	void *owned[MAXSEQ][5];
	unsigned pred[MAXSEQ];
	size_t out_floats[MAXSEQ];
	static float unread[64]; /* stands for a non-NULL pointer the validator must not read */
	uint8_t unread_mask[64];
	memset(unread_mask, 1, sizeof unread_mask);
	memset(owned, 0, sizeof owned);
	for (size_t i = 0; i < count; i++) {
		rva_seq *s = &seqs[i];
		memset(s, 0, sizeof *s);
		s->nq = pick_rows(in);
		s->nk = pick_rows(in);
		s->q_stride = pick_stride(in, dim);
		s->k_stride = pick_stride(in, kvd);
		s->v_stride = pick_stride(in, kvd);
		s->out_stride = pick_stride(in, dim);
		uint8_t nulls = fuzz_u8(in);
		/* First only the NULL-ness of the pointers matters (the prediction); real buffers
		 * of the claimed extents replace them below when the claim fits in memory. */
		s->q = nulls & 1 ? NULL : unread;
		s->k = nulls & 2 ? NULL : unread;
		s->v = nulls & 4 ? NULL : unread;
		s->out = nulls & 8 ? NULL : unread;
		bool mask = nulls & 16;
		pred[i] = predict(s, dim, kvd);
		size_t eq = extent(s->nq, s->q_stride ? s->q_stride : dim, dim);
		size_t eo = extent(s->nq, s->out_stride ? s->out_stride : dim, dim);
		size_t ek = extent(s->nk, s->k_stride ? s->k_stride : kvd, kvd);
		size_t ev = extent(s->nk, s->v_stride ? s->v_stride : kvd, kvd);
		bool fits = eq <= MAX_FLOATS && eo <= MAX_FLOATS && ek <= MAX_FLOATS &&
		            ev <= MAX_FLOATS && s->nk <= MAX_FLOATS;
		if (!fits && pred[i] == P_OK) {
			/* A valid claim too big to back with memory: shrink it. */
			s->nq %= 12;
			s->nk %= 12;
			if (s->q_stride > 64)
				s->q_stride = 0;
			if (s->k_stride > 64)
				s->k_stride = 0;
			if (s->v_stride > 64)
				s->v_stride = 0;
			if (s->out_stride > 64)
				s->out_stride = 0;
			pred[i] = predict(s, dim, kvd);
			eq = extent(s->nq, s->q_stride ? s->q_stride : dim, dim);
			eo = extent(s->nq, s->out_stride ? s->out_stride : dim, dim);
			ek = extent(s->nk, s->k_stride ? s->k_stride : kvd, kvd);
			ev = extent(s->nk, s->v_stride ? s->v_stride : kvd, kvd);
			fits = true;
		}
		out_floats[i] = 0;
		if (fits) {
			/* Real buffers of exactly the claimed extents. */
			if (s->q)
				s->q = owned[i][0] = exact_floats(eq, &seed);
			if (s->k)
				s->k = owned[i][1] = exact_floats(ek, &seed);
			if (s->v)
				s->v = owned[i][2] = exact_floats(ev, &seed);
			if (s->out) {
				/* A fixed pattern, so the rows' gaps compare equal across runs. */
				s->out = owned[i][3] = exact_floats(eo, &seed);
				memset(owned[i][3], 0xa5, eo * sizeof(float));
				out_floats[i] = eo;
			}
			if (mask) {
				uint8_t *m = owned[i][4] = malloc(s->nk ? s->nk : 1);
				FUZZ_CHECK(m != NULL, "malloc");
				for (size_t j = 0; j < s->nk; j++)
					m[j] = (uint8_t)((seed >> (j % 64)) & 1);
				s->key_mask = m;
			}
		} else {
			/* Invalid: the validator must refuse before reading anything. */
			FUZZ_CHECK(pred[i] != P_OK, "internal: an unbacked valid descriptor");
			if (mask)
				s->key_mask = unread_mask;
		}
	}

	rva_batch b = {count, count ? seqs : NULL};
	rva_runtime rt = {.training = flags & 2, .seed = seed, .step = 7, .moe_stats = NULL};
	rva_status ss[MAXSEQ];
	rva_status st = rva_compute_batch(att, &b, &rt, ss);
	rva_status first = RVA_OK;
	for (size_t i = 0; i < count; i++) {
		FUZZ_CHECK(status_bit(ss[i]) & pred[i],
		           "sequence %zu (nq %zu nk %zu strides %zu %zu %zu %zu): %s, predicted "
		           "mask %#x", i, seqs[i].nq, seqs[i].nk, seqs[i].q_stride, seqs[i].k_stride,
		           seqs[i].v_stride, seqs[i].out_stride, rva_status_name(ss[i]), pred[i]);
		if (ss[i] != RVA_OK && first == RVA_OK)
			first = ss[i];
	}
	FUZZ_CHECK(st == first, "batch status %s, first failing sequence %s",
	           rva_status_name(st), rva_status_name(first));

	if ((flags & 1) && count) {
		/* The engine gives the same statuses, and the same bits for good sequences. */
		float *saved[MAXSEQ] = {NULL};
		for (size_t i = 0; i < count; i++) {
			if (ss[i] != RVA_OK || !out_floats[i])
				continue;
			saved[i] = malloc(out_floats[i] * sizeof(float));
			FUZZ_CHECK(saved[i] != NULL, "malloc");
			memcpy(saved[i], seqs[i].out, out_floats[i] * sizeof(float));
			memset(seqs[i].out, 0xa5, out_floats[i] * sizeof(float));
		}
		rva_status es[MAXSEQ];
		rva_status est = rva_engine_run(engine, att, &b, &rt, es, NULL);
		FUZZ_CHECK(est == st, "engine %s, serial %s", rva_status_name(est),
		           rva_status_name(st));
		for (size_t i = 0; i < count; i++) {
			FUZZ_CHECK(es[i] == ss[i], "sequence %zu: engine %s, serial %s", i,
			           rva_status_name(es[i]), rva_status_name(ss[i]));
			if (saved[i])
				FUZZ_CHECK(memcmp(saved[i], seqs[i].out, out_floats[i] * sizeof(float)) == 0,
				           "sequence %zu: engine output differs from the serial one", i);
			free(saved[i]);
		}
	}
	for (size_t i = 0; i < count; i++)
		for (int j = 0; j < 5; j++)
			free(owned[i][j]);
}

static void run_packed(fuzz_in *in, const rva_attention *att, size_t dim, size_t kvd,
                       uint64_t seed) {
	size_t count = fuzz_u8(in) % (MAXSEQ + 1);
	size_t cu_q[MAXSEQ + 1], cu_k[MAXSEQ + 1];
	for (size_t i = 0; i <= count; i++) {
		uint8_t b = fuzz_u8(in);
		/* Mostly nondecreasing small steps; sometimes a drop, a jump, a nonzero start. */
		size_t prev_q = i ? cu_q[i - 1] : 0, prev_k = i ? cu_k[i - 1] : 0;
		if (b < 224) {
			cu_q[i] = i ? prev_q + b % 6 : 0;
			cu_k[i] = i ? prev_k + (b / 6) % 6 : 0;
		} else if (b < 240) {
			cu_q[i] = prev_q ? prev_q - 1 : 1;
			cu_k[i] = prev_k;
		} else {
			cu_q[i] = prev_q + ((size_t)1 << (b - 200));
			cu_k[i] = prev_k + (b & 1);
		}
	}
	rva_packed_batch p = {.count = count, .cu_q = cu_q, .cu_k = cu_k,
	                      .q_stride = pick_stride(in, dim), .k_stride = pick_stride(in, kvd),
	                      .v_stride = pick_stride(in, kvd),
	                      .out_stride = pick_stride(in, dim)};
	uint8_t capb = fuzz_u8(in);
	size_t cap = capb & 1 && count ? count - 1 : count;
	bool mask = capb & 2;

	/* Predicted failure classes of rva_batch_unpack. */
	bool range = cap < count;
	bool inval = false;
	if (count) {
		inval |= cu_q[0] != 0 || cu_k[0] != 0;
		inval |= !p.q_stride || !p.k_stride || !p.v_stride || !p.out_stride;
		for (size_t s = 0; s < count; s++)
			inval |= cu_q[s + 1] < cu_q[s] || cu_k[s + 1] < cu_k[s];
	}
	/* Back the packed rows with memory only when every extent is small. */
	size_t rq = count ? cu_q[count] : 0, rk = count ? cu_k[count] : 0;
	size_t eq = extent(rq, p.q_stride, dim), eo = extent(rq, p.out_stride, dim);
	size_t ek = extent(rk, p.k_stride, kvd), ev = extent(rk, p.v_stride, kvd);
	bool backed = !inval && eq <= MAX_FLOATS && eo <= MAX_FLOATS && ek <= MAX_FLOATS &&
	              ev <= MAX_FLOATS && rk <= MAX_FLOATS;
	float *q = NULL, *k = NULL, *v = NULL, *out = NULL;
	uint8_t *m = NULL;
	if (backed) {
		p.q = q = exact_floats(eq, &seed);
		p.k = k = exact_floats(ek, &seed);
		p.v = v = exact_floats(ev, &seed);
		p.out = out = exact_floats(eo, &seed);
		if (mask) {
			m = malloc(rk ? rk : 1);
			FUZZ_CHECK(m != NULL, "malloc");
			memset(m, 1, rk ? rk : 1);
			p.key_mask = m;
		}
	}
	rva_seq seqs[MAXSEQ];
	rva_status st = rva_batch_unpack(&p, seqs, cap);
	/* Checked after those: a matrix whose rows x stride x sizeof(float) overflows. */
	bool over = false;
	if (count) {
		size_t rows[4] = {rq, rk, rk, rq};
		size_t strides[4] = {p.q_stride, p.k_stride, p.v_stride, p.out_stride};
		for (int i = 0; i < 4; i++) {
			size_t t;
			over |= __builtin_mul_overflow(rows[i], strides[i], &t) ||
			        __builtin_mul_overflow(t, sizeof(float), &t);
		}
	}
	if (range || inval) {
		FUZZ_CHECK((range && st == RVA_ERANGE) || (inval && st == RVA_EINVAL),
		           "unpack %s, predicted%s%s", rva_status_name(st), range ? " ERANGE" : "",
		           inval ? " EINVAL" : "");
	} else if (over) {
		FUZZ_CHECK(st == RVA_EOVERFLOW, "unpack %s, predicted EOVERFLOW (rows x stride)",
		           rva_status_name(st));
	} else {
		FUZZ_CHECK(st == RVA_OK, "unpack %s on valid offsets", rva_status_name(st));
		for (size_t s = 0; s < count; s++) {
			FUZZ_CHECK(seqs[s].nq == cu_q[s + 1] - cu_q[s] && seqs[s].nk == cu_k[s + 1] - cu_k[s],
			           "unpacked lengths of sequence %zu", s);
			bool rows = backed && seqs[s].nq > 0;
			FUZZ_CHECK(seqs[s].q == (rows ? q + cu_q[s] * p.q_stride : NULL) &&
			           seqs[s].out == (rows ? out + cu_q[s] * p.out_stride : NULL),
			           "unpacked pointers of sequence %zu", s);
		}
		rva_batch b = {count, seqs};
		rva_status ss[MAXSEQ];
		st = rva_compute_batch(att, &b, NULL, ss);
		for (size_t s = 0; s < count; s++) {
			unsigned pr = predict(&seqs[s], dim, kvd);
			FUZZ_CHECK(status_bit(ss[s]) & pr, "packed sequence %zu: %s, predicted %#x", s,
			           rva_status_name(ss[s]), pr);
		}
	}
	free(q);
	free(k);
	free(v);
	free(out);
	free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	fuzz_in in = {data, size};
	const rva_attention *att = atts[fuzz_u8(&in) % NATT];
	uint8_t flags = fuzz_u8(&in);
	uint64_t seed = fuzz_u32(&in);
	rva_config c;
	rva_attention_config(att, &c);
	size_t dim = c.dim, kvd = c.kv_heads * (c.dim / c.heads);
	if (flags & 4)
		run_packed(&in, att, dim, kvd, seed);
	else
		run_descriptors(&in, att, dim, kvd, flags, seed);
	return 0;
}

/* Pattern predicates and tile classification (see pattern.h). */
#include <math.h>

#include "attention/pattern.h"

static bool any_global_in(const rva__pattern *p, int64_t a, int64_t b) {
	if (p->kind != RVA__PAT_LOCAL_GLOBAL || b < a || b < 0)
		return false;
	if (!p->global) /* [a, b] meets [0, global_first); global_first may be any size_t */
		return a < 0 ? p->global_first > 0 : (size_t)a < p->global_first;
	/* first global >= a, by binary search over the sorted list */
	size_t lo = 0, hi = p->nglobal;
	int64_t aa = a < 0 ? 0 : a;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if ((int64_t)p->global[mid] < aa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < p->nglobal && (int64_t)p->global[lo] <= b;
}

/* Number of global positions < x (local-global only): O(log n), never a loop over the
 * count, so a global_tokens far beyond the sequence costs nothing. */
static size_t globals_below(const rva__pattern *p, int64_t x) {
	if (x <= 0)
		return 0;
	if (!p->global)
		return (size_t)x < p->global_first ? (size_t)x : p->global_first;
	size_t lo = 0, hi = p->nglobal;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if ((int64_t)p->global[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool rva__pattern_is_global(const rva__pattern *p, int64_t pos) {
	return any_global_in(p, pos, pos);
}

bool rva__pattern_allows(const rva__pattern *p, int64_t qp, int64_t kp) {
	if (p->causal && kp > qp)
		return false;
	switch (p->kind) {
	case RVA__PAT_LOCAL_GLOBAL: {
		if (rva__pattern_is_global(p, qp) || rva__pattern_is_global(p, kp))
			return true;
		int64_t d = qp - kp;
		if (p->causal)
			return d <= p->window; /* the `window` previous keys and the query itself */
		return (d < 0 ? -d : d) <= p->window / 2;
	}
	case RVA__PAT_STRIDED: {
		int64_t d = qp - kp; /* >= 0: strided implies causal */
		return d < p->stride || d % p->stride == 0;
	}
	case RVA__PAT_FIXED: /* kp <= qp here: fixed implies causal, so both are >= 0 */
		return kp / p->stride == qp / p->stride || kp % p->stride >= p->stride - p->summary;
	default:
		return true;
	}
}

/* Fixed pattern: the first summary position >= x (x >= 0). */
static int64_t fixed_summary_from(const rva__pattern *p, int64_t x) {
	int64_t l = p->stride, first = x / l * l + l - p->summary;
	return x >= first ? x : first;
}

static rva__tile_class fixed_classify(const rva__pattern *p, int64_t qa, int64_t qb,
                                      int64_t ka, int64_t kb, bool causal_full) {
	int64_t l = p->stride, qa0 = qa < 0 ? 0 : qa;
	/* own block: the key blocks [ka/l, kb/l] meet the query blocks [qa0/l, qb/l] */
	bool band_any = kb / l >= qa0 / l && ka / l <= qb / l;
	bool band_full = qa >= 0 && ka / l == kb / l && qa / l == qb / l && ka / l == qa / l;
	bool sum_any = p->summary > 0 && fixed_summary_from(p, ka) <= kb;
	bool sum_all = p->summary > 0 && ka / l == kb / l && ka % l >= l - p->summary;
	if (!band_any && !sum_any)
		return RVA__TILE_NONE;
	return causal_full && (band_full || sum_all) ? RVA__TILE_FULL : RVA__TILE_PARTIAL;
}

rva__tile_class rva__pattern_classify(const rva__pattern *p, int64_t qa, int64_t qb,
                                      int64_t ka, int64_t kb) {
	bool causal_full = true;
	if (p->causal) {
		if (ka > qb)
			return RVA__TILE_NONE;
		causal_full = kb <= qa;
	}
	switch (p->kind) {
	case RVA__PAT_LOCAL_GLOBAL: {
		/* Distances d = qp - kp range over [qa - kb, qb - ka]. */
		int64_t dmin = qa - kb, dmax = qb - ka;
		int64_t lo = p->causal ? 0 : -(p->window / 2), hi = p->causal ? p->window
		                                                                : p->window / 2;
		bool band_any = dmax >= lo && dmin <= hi;
		bool band_full = dmin >= lo && dmax <= hi;
		bool glob = any_global_in(p, qa, qb) || any_global_in(p, ka, kb);
		if (!band_any && !glob)
			return RVA__TILE_NONE;
		return band_full && causal_full ? RVA__TILE_FULL : RVA__TILE_PARTIAL;
	}
	case RVA__PAT_STRIDED:
		return causal_full && qb - ka < p->stride ? RVA__TILE_FULL : RVA__TILE_PARTIAL;
	case RVA__PAT_FIXED:
		return fixed_classify(p, qa, qb, ka, kb, causal_full);
	default:
		return causal_full ? RVA__TILE_FULL : RVA__TILE_PARTIAL;
	}
}

/*
 * A band without shared keys (rva__pattern_band: a local-global window with no global
 * token, a fixed pattern's own blocks) over consecutive query positions: key kp is seen by
 * the rows whose positions lie in one interval, so each key column is two -inf runs around
 * it, with no per-element test. Returns false when p is not such a band.
 */
static bool mask_band_rows(const rva__pattern *p, const int64_t *qpos, size_t br, size_t k0,
                           size_t nkt, float *st, size_t ld) {
	bool band = (p->kind == RVA__PAT_LOCAL_GLOBAL && !p->global && p->global_first == 0) ||
	            (p->kind == RVA__PAT_FIXED && p->summary == 0);
	if (!band || qpos[br - 1] - qpos[0] != (int64_t)br - 1)
		return false;
	int64_t q0 = qpos[0], n = (int64_t)br;
	for (size_t j = 0; j < nkt; j++) {
		int64_t kp = (int64_t)(k0 + j), lo, hi; /* visible query positions [lo, hi] */
		if (p->kind == RVA__PAT_FIXED) {
			lo = kp;                                   /* causal */
			hi = kp / p->stride * p->stride + p->stride - 1; /* the end of kp's block */
		} else if (p->causal) {
			lo = kp;
			hi = kp + p->window;
		} else {
			lo = kp - p->window / 2;
			hi = kp + p->window / 2;
		}
		int64_t a = lo - q0 < 0 ? 0 : lo - q0 > n ? n : lo - q0;        /* rows [a, b) */
		int64_t b = hi - q0 + 1 < a ? a : hi - q0 + 1 > n ? n : hi - q0 + 1;
		float *row = st + j * ld;
		for (int64_t i = 0; i < a; i++)
			row[i] = -INFINITY;
		for (int64_t i = b; i < n; i++)
			row[i] = -INFINITY;
	}
	return true;
}

void rva__pattern_mask_tile(const rva__pattern *p, const int64_t *qpos, size_t br,
                            size_t k0, size_t nkt, float *st, size_t ld) {
	if (mask_band_rows(p, qpos, br, k0, nkt, st, ld))
		return;
	bool contiguous = qpos[br - 1] - qpos[0] == (int64_t)br - 1;
	unsigned char qglobal[4096]; /* br <= RVA__MAX_QUERY_BLOCK */
	if (p->kind == RVA__PAT_LOCAL_GLOBAL)
		for (size_t i = 0; i < br && i < sizeof qglobal; i++)
			qglobal[i] = rva__pattern_is_global(p, qpos[i]);
	for (size_t j = 0; j < nkt; j++) {
		int64_t kp = (int64_t)(k0 + j);
		float *row = st + j * ld;
		/* causal: the queries before kp (a prefix: positions ascend) */
		size_t first = 0;
		if (p->causal)
			while (first < br && qpos[first] < kp)
				row[first++] = -INFINITY;
		switch (p->kind) {
		case RVA__PAT_LOCAL_GLOBAL: {
			if (rva__pattern_is_global(p, kp))
				break; /* a global key is seen by every query */
			int64_t lo = p->causal ? 0 : -(p->window / 2);
			int64_t hi = p->causal ? p->window : p->window / 2;
			for (size_t i = first; i < br; i++) {
				int64_t d = qpos[i] - kp;
				bool g = i < sizeof qglobal ? qglobal[i] : rva__pattern_is_global(p, qpos[i]);
				if (!g && (d < lo || d > hi))
					row[i] = -INFINITY;
			}
			break;
		}
		case RVA__PAT_STRIDED: {
			/* d = qp - kp >= 0 here; visible when d < l or d % l == 0. Along contiguous
			 * queries d grows by one: track d mod l without dividing per element. */
			int64_t l = p->stride;
			if (first >= br)
				break;
			int64_t d = qpos[first] - kp, r = d % l;
			for (size_t i = first; i < br; i++) {
				if (!contiguous) {
					d = qpos[i] - kp;
					r = d % l;
				}
				if (d >= l && r != 0)
					row[i] = -INFINITY;
				if (contiguous) {
					d++;
					if (++r == l)
						r = 0;
				}
			}
			break;
		}
		case RVA__PAT_FIXED: {
			/* a summary key is seen by every later query; others by their own block */
			int64_t l = p->stride;
			if (kp % l >= l - p->summary)
				break;
			for (size_t i = first; i < br; i++)
				if (qpos[i] / l != kp / l)
					row[i] = -INFINITY;
			break;
		}
		default:
			break;
		}
	}
}

double rva__pattern_pairs_rows(const rva__pattern *p, size_t nq, size_t nk, size_t r0,
                                size_t r1) {
	int64_t off = (int64_t)nk - (int64_t)nq;
	if (p->kind == RVA__PAT_DENSE) {
		if (!p->causal)
			return (double)(r1 - r0) * (double)nk;
		double pairs = 0.0;
		for (size_t i = r0; i < r1; i++) {
			int64_t vis = off + (int64_t)i + 1;
			pairs += vis < 0 ? 0.0 : (double)(vis > (int64_t)nk ? (int64_t)nk : vis);
		}
		return pairs;
	}
	/* Patterns: count per query row by intervals where cheap, else exactly. */
	double pairs = 0.0;
	for (size_t i = r0; i < r1; i++) {
		int64_t qp = off + (int64_t)i;
		if (p->kind == RVA__PAT_LOCAL_GLOBAL && !rva__pattern_is_global(p, qp)) {
			int64_t a = p->causal ? qp - p->window : qp - p->window / 2;
			int64_t b = p->causal ? qp : qp + p->window / 2;
			if (a < 0)
				a = 0;
			if (b > (int64_t)nk - 1)
				b = (int64_t)nk - 1;
			double cnt = b >= a ? (double)(b - a + 1) : 0.0;
			/* global keys outside the band: the visible globals [0, lim] less those
			 * inside [a, b] (a subset of [0, lim]) */
			int64_t lim = p->causal && qp < (int64_t)nk - 1 ? qp : (int64_t)nk - 1;
			size_t outside = globals_below(p, lim + 1);
			if (b >= a)
				outside -= globals_below(p, b + 1) - globals_below(p, a);
			pairs += cnt + (double)outside;
			continue;
		}
		int64_t kmax = p->causal ? qp : (int64_t)nk - 1;
		if (kmax > (int64_t)nk - 1)
			kmax = (int64_t)nk - 1;
		if (p->kind == RVA__PAT_STRIDED) {
			if (kmax < 0)
				continue;
			int64_t band = qp - p->stride + 1; /* band keys [max(band, 0), qp] */
			double cnt = (double)(qp - (band < 0 ? 0 : band) + 1);
			if (band > 0)
				cnt += (double)(qp / p->stride); /* keys qp - t*l, t >= 1 */
			pairs += cnt;
		} else if (p->kind == RVA__PAT_FIXED) {
			if (kmax < 0)
				continue;
			/* own block [b0, kmax], then the summaries of the blocks before it (all of
			 * [0, kmax] when the block starts past the last key) */
			int64_t b0 = qp / p->stride * p->stride;
			if (kmax >= b0)
				pairs += (double)(kmax - b0 + 1) + (double)rva__pattern_shared_below(p, b0);
			else
				pairs += (double)rva__pattern_shared_below(p, kmax + 1);
		} else {
			pairs += kmax >= 0 ? (double)(kmax + 1) : 0.0;
		}
	}
	return pairs;
}

double rva__pattern_pairs(const rva__pattern *p, size_t nq, size_t nk) {
	return rva__pattern_pairs_rows(p, nq, nk, 0, nq);
}

/* ---- block-sparse form (pattern.h, rva__pattern_band) ---------------------------------- */

bool rva__pattern_band(const rva__pattern *p, rva__pattern *band) {
	*band = *p;
	switch (p->kind) {
	case RVA__PAT_LOCAL_GLOBAL:
		band->global = NULL;
		band->nglobal = 0;
		band->global_first = 0;
		return true;
	case RVA__PAT_STRIDED: /* d < l: the local-global causal band of l - 1 previous keys */
		band->kind = RVA__PAT_LOCAL_GLOBAL;
		band->causal = true;
		band->window = p->stride - 1;
		band->global = NULL;
		band->nglobal = 0;
		band->global_first = 0;
		return true;
	case RVA__PAT_FIXED:
		band->summary = 0;
		return true;
	default:
		return false;
	}
}

void rva__pattern_band_keys(const rva__pattern *band, int64_t qa, int64_t qb, size_t nk,
                            size_t *k0, size_t *k1) {
	int64_t lo = 0, hi = band->causal ? qb : (int64_t)nk - 1;
	if (band->kind == RVA__PAT_LOCAL_GLOBAL) {
		lo = band->causal ? qa - band->window : qa - band->window / 2;
		hi = band->causal ? qb : qb + band->window / 2;
	} else if (band->kind == RVA__PAT_FIXED) {
		lo = qa < 0 ? 0 : qa / band->stride * band->stride;
	}
	if (lo < 0)
		lo = 0;
	if (hi > (int64_t)nk - 1)
		hi = (int64_t)nk - 1;
	if (hi < lo) {
		*k0 = *k1 = 0;
		return;
	}
	*k0 = (size_t)lo;
	*k1 = (size_t)hi + 1;
}

size_t rva__pattern_shared_below(const rva__pattern *p, int64_t lim) {
	if (lim <= 0)
		return 0;
	if (p->kind == RVA__PAT_LOCAL_GLOBAL)
		return globals_below(p, lim);
	if (p->kind != RVA__PAT_FIXED)
		return 0;
	int64_t l = p->stride, c = p->summary, rem = lim % l - (l - c);
	return (size_t)(lim / l * c + (rem > 0 ? rem : 0));
}

int64_t rva__pattern_shared_key(const rva__pattern *p, size_t t) {
	if (p->kind == RVA__PAT_FIXED) {
		int64_t c = p->summary;
		return (int64_t)t / c * p->stride + p->stride - c + (int64_t)t % c;
	}
	return p->global ? (int64_t)p->global[t] : (int64_t)t;
}

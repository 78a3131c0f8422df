/* The head-count rules of the config defaults (declared in config_defaults.h). */
#include "attention/config_defaults.h"
#include "core/internal.h"

size_t rva__fit_heads(size_t dim, size_t heads) {
	if (dim == 0 || heads == 0 || dim % heads == 0)
		return heads ? heads : 1;
	if (dim > RVA__MAX_DIM) /* refused by validation; the search would take 2^32 steps */
		return 1;
	/* The largest divisor of dim in (1, limit], else 1. Divisors come in pairs (d, dim/d)
	 * around sqrt(dim), so trial division up to sqrt(dim) finds them all: at most 2^16
	 * steps for the largest dim (2^32), where counting down from limit took ~2^26. */
	size_t limit = rva__min(heads - 1, dim / RVA__MIN_HEAD_DIM), best = 1;
	for (size_t d = 1; d <= dim / d; d++) {
		if (dim % d != 0)
			continue;
		size_t pair = dim / d;
		if (d > 1 && d <= limit && d > best)
			best = d;
		if (pair > 1 && pair <= limit && pair > best)
			best = pair;
	}
	return best;
}

size_t rva__default_heads(rva_mechanism m, size_t dim) {
	if (m == RVA_MECH_SCALED_DOT || m == RVA_MECH_HYPERBOLIC)
		return 1;
	size_t want = dim / RVA__TARGET_HEAD_DIM;
	return rva__fit_heads(dim, want ? want : 1);
}

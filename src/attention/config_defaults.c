/* The head-count rules of the config defaults (declared in config_defaults.h). */
#include "attention/config_defaults.h"
#include "core/internal.h"

size_t rva__fit_heads(size_t dim, size_t heads) {
	if (dim == 0 || heads == 0 || dim % heads == 0)
		return heads ? heads : 1;
	for (size_t h = rva__min(heads - 1, dim / RVA__MIN_HEAD_DIM); h > 1; h--)
		if (dim % h == 0)
			return h;
	return 1;
}

size_t rva__default_heads(rva_mechanism m, size_t dim) {
	if (m == RVA_MECH_SCALED_DOT || m == RVA_MECH_HYPERBOLIC)
		return 1;
	size_t want = dim / RVA__TARGET_HEAD_DIM;
	return rva__fit_heads(dim, want ? want : 1);
}

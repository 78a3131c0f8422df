/* Score modifiers of the softmax engine (see score_mods.h). */
#include <math.h>
#include <string.h>

#include "attention/score_mods.h"
#include "core/internal.h"

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

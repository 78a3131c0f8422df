#include "ref/ref_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix(uint64_t *s) {
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

void ref_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed) {
	uint64_t s = seed;
	for (size_t i = 0; i < n; i++)
		x[i] = lo + (hi - lo) * (float)((double)(splitmix(&s) >> 11) * 0x1.0p-53);
}

double ref_err_ratio(const float *a, const double *b, size_t n, double atol, double rtol) {
	double worst = 0.0;
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)a[i] - b[i]) / (atol + rtol * fabs(b[i]));
		if (!(e <= worst))
			worst = isnan(e) ? INFINITY : e;
	}
	return worst;
}

double ref_max_abs_diff(const float *a, size_t as, const double *b, size_t bs, size_t rows,
                        size_t cols) {
	double worst = 0.0;
	for (size_t r = 0; r < rows; r++)
		for (size_t c = 0; c < cols; c++) {
			double e = fabs((double)a[r * as + c] - b[r * bs + c]);
			if (!(e <= worst))
				worst = isnan(e) ? INFINITY : e;
		}
	return worst;
}

float *ref_alloc(size_t n) {
	void *p = NULL;
	if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) != 0) {
		fprintf(stderr, "ref_alloc: out of memory\n");
		abort();
	}
	memset(p, 0, (n ? n : 1) * sizeof(float));
	return p;
}

double *ref_alloc_d(size_t n) {
	double *p = calloc(n ? n : 1, sizeof(double));
	if (!p) {
		fprintf(stderr, "ref_alloc_d: out of memory\n");
		abort();
	}
	return p;
}

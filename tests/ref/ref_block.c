/* Double-precision self-attention transformer blocks (ref_block.h). */
#include "ref/ref_block.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* N(x) of one row, in double. */
static void norm_row(const ref_block_spec *sp, const double *x, size_t dim, double *y) {
	double mean = 0.0, ms = 0.0;
	if (sp->norm == REF_BLOCK_LAYER) {
		for (size_t i = 0; i < dim; i++)
			mean += x[i];
		mean /= (double)dim;
	}
	for (size_t i = 0; i < dim; i++)
		ms += (x[i] - mean) * (x[i] - mean);
	double inv = 1.0 / sqrt(ms / (double)dim + sp->eps);
	for (size_t i = 0; i < dim; i++)
		y[i] = (x[i] - mean) * inv * (sp->gain ? sp->gain[i] : 1.0) +
		       (sp->bias ? sp->bias[i] : 0.0);
}

/* out = MHA(a, a, a) over n rows (softmax over the visible keys, per head). */
static void self_attention(const ref_block_spec *sp, size_t n, size_t dim, const double *a,
                           const uint8_t *mask, double *out) {
	size_t hd = dim / sp->heads;
	double scale = sp->scale != 0.0 ? sp->scale : 1.0 / sqrt((double)hd);
	double *p = malloc((n ? n : 1) * sizeof *p);
	if (!p)
		abort();
	for (size_t i = 0; i < n; i++)
		for (size_t h = 0; h < sp->heads; h++) {
			const double *qi = a + i * dim + h * hd;
			double mx = -INFINITY;
			for (size_t j = 0; j < n; j++) {
				bool vis = (!sp->causal || j <= i) && (!mask || mask[j]);
				p[j] = -INFINITY;
				if (!vis)
					continue;
				double d = 0.0;
				for (size_t c = 0; c < hd; c++)
					d += qi[c] * a[j * dim + h * hd + c];
				p[j] = d * scale;
				if (p[j] > mx)
					mx = p[j];
			}
			double *o = out + i * dim + h * hd;
			for (size_t c = 0; c < hd; c++)
				o[c] = 0.0;
			if (mx == -INFINITY)
				continue; /* no visible key: zeros */
			double sum = 0.0;
			for (size_t j = 0; j < n; j++) {
				p[j] = p[j] == -INFINITY ? 0.0 : exp(p[j] - mx);
				sum += p[j];
			}
			for (size_t j = 0; j < n; j++)
				if (p[j] != 0.0)
					for (size_t c = 0; c < hd; c++)
						o[c] += p[j] / sum * a[j * dim + h * hd + c];
		}
	free(p);
}

void ref_self_block(const ref_block_spec *sp, size_t n, size_t dim, const double *x,
                    const uint8_t *mask, double *y) {
	size_t elems = (n ? n : 1) * dim;
	double *a = calloc(elems, sizeof *a), *att = calloc(elems, sizeof *att);
	if (!a || !att)
		abort();
	if (sp->prenorm) {
		for (size_t r = 0; r < n; r++)
			norm_row(sp, x + r * dim, dim, a + r * dim);
		self_attention(sp, n, dim, a, mask, att);
		for (size_t i = 0; i < n * dim; i++)
			y[i] = x[i] + att[i];
	} else {
		self_attention(sp, n, dim, x, mask, att);
		for (size_t i = 0; i < n * dim; i++)
			a[i] = x[i] + att[i];
		for (size_t r = 0; r < n; r++)
			norm_row(sp, a + r * dim, dim, y + r * dim);
	}
	free(a);
	free(att);
}

/* Double-precision MoE routing oracle (see ref_moe.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_moe.h"

void ref_moe_route(const float *w, size_t experts, size_t dim, const float *x, size_t k,
                   int normalize, double *probs, uint32_t *choice, double *weight) {
	double mx = -INFINITY, sum = 0.0;
	for (size_t e = 0; e < experts; e++) {
		double z = 0.0;
		for (size_t d = 0; d < dim; d++)
			z += (double)w[e * dim + d] * (double)x[d];
		probs[e] = z;
		if (z > mx)
			mx = z;
	}
	for (size_t e = 0; e < experts; e++) {
		probs[e] = exp(probs[e] - mx);
		sum += probs[e];
	}
	for (size_t e = 0; e < experts; e++)
		probs[e] /= sum;
	/* selection sort by (probability desc, index asc) */
	char *used = calloc(experts + 1, 1);
	double chosen = 0.0;
	for (size_t r = 0; r < k; r++) {
		size_t best = experts;
		for (size_t e = 0; e < experts; e++)
			if (!used[e] && (best == experts || probs[e] > probs[best]))
				best = e;
		used[best] = 1;
		choice[r] = (uint32_t)best;
		chosen += probs[best];
	}
	for (size_t r = 0; r < k; r++)
		weight[r] = normalize ? probs[choice[r]] / chosen : probs[choice[r]];
	free(used);
}

void ref_moe_project(const float *x, size_t ldx, size_t n, const float *w, size_t ldw,
                     size_t rows, size_t cols, double *out) {
	for (size_t i = 0; i < n; i++)
		for (size_t c = 0; c < cols; c++) {
			double z = 0.0;
			for (size_t r = 0; r < rows; r++)
				z += (double)x[i * ldx + r] * (double)w[r * ldw + c];
			out[i * cols + c] = z;
		}
}

void ref_moe_project_d(const double *x, size_t n, const float *w, size_t ldw, size_t rows,
                       size_t cols, double *out) {
	for (size_t i = 0; i < n; i++)
		for (size_t c = 0; c < cols; c++) {
			double z = 0.0;
			for (size_t r = 0; r < rows; r++)
				z += x[i * rows + r] * (double)w[r * ldw + c];
			out[i * cols + c] = z;
		}
}

static int cmp_desc(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

double ref_moe_margin(const double *probs, size_t experts, size_t k) {
	double *s = malloc(experts * sizeof(double) + 1);
	memcpy(s, probs, experts * sizeof(double));
	qsort(s, experts, sizeof(double), cmp_desc);
	double m = INFINITY;
	for (size_t r = 0; r + 1 < experts && r < k; r++)
		m = fmin(m, s[r] - s[r + 1]);
	free(s);
	return m;
}

size_t ref_moe_capacity(double factor, size_t tokens, size_t k, size_t experts) {
	return (size_t)ceil(factor * (double)tokens * (double)k / (double)experts);
}

void ref_moe_assign(const uint32_t *choice, size_t tokens, size_t k, size_t experts,
                    size_t capacity, uint8_t *kept, size_t *assigned, size_t *processed,
                    size_t *dropped) {
	memset(assigned, 0, experts * sizeof(size_t));
	memset(processed, 0, experts * sizeof(size_t));
	*dropped = 0;
	for (size_t r = 0; r < k; r++)
		for (size_t t = 0; t < tokens; t++) {
			uint32_t e = choice[t * k + r];
			assigned[e]++;
			kept[t * k + r] = processed[e] < capacity;
			if (kept[t * k + r])
				processed[e]++;
			else
				(*dropped)++;
		}
}

double ref_moe_loss(const double *probs, const size_t *assigned, size_t tokens,
                    size_t experts) {
	if (tokens == 0)
		return 0.0;
	double loss = 0.0;
	for (size_t e = 0; e < experts; e++) {
		double p = 0.0;
		for (size_t t = 0; t < tokens; t++)
			p += probs[t * experts + e];
		loss += (double)assigned[e] / (double)tokens * (p / (double)tokens);
	}
	return (double)experts * loss;
}

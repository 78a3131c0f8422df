/* Naive double-precision linear-attention oracle (see ref_linear.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_linear.h"

static size_t ref_features(const ref_linear_args *a) {
	return a->map == REF_LINEAR_ELU ? a->head_dim : a->m;
}

/* phi of one head vector x (head_dim floats) into f (m doubles). */
static void ref_phi(const ref_linear_args *a, const float *x, double *f) {
	size_t d = a->head_dim, m = ref_features(a);
	double c = sqrt(a->scale);
	if (a->map == REF_LINEAR_ELU) {
		for (size_t i = 0; i < d; i++) {
			double y = c * (double)x[i];
			f[i] = y > 0.0 ? y + 1.0 : exp(y);
		}
		return;
	}
	double norm2 = 0.0;
	for (size_t i = 0; i < d; i++)
		norm2 += (c * x[i]) * (c * x[i]);
	for (size_t r = 0; r < m; r++) {
		double u = 0.0;
		for (size_t i = 0; i < d; i++)
			u += (double)a->w[r * d + i] * (c * (double)x[i]);
		if (a->map == REF_LINEAR_FAVOR)
			f[r] = exp(u - 0.5 * norm2) / sqrt((double)m);
		else
			f[r] = (u > 0.0 ? u : 0.0) / sqrt((double)m) + 1e-6;
	}
}

static bool ref_visible(const ref_linear_args *a, size_t i, size_t j) {
	if (a->mask && !a->mask[j])
		return false;
	if (a->causal) {
		/* query i sits at position nk - nq + i */
		long long pos = (long long)a->nk - (long long)a->nq + (long long)i;
		if ((long long)j > pos)
			return false;
	}
	return true;
}

int ref_linear(const ref_linear_args *a, double *out) {
	size_t d = a->head_dim, m = ref_features(a), dim = a->heads * d;
	size_t group = a->heads / a->kv_heads;
	double *fq = malloc(a->nq * m * sizeof(double) + 1);
	double *fk = malloc(a->nk * m * sizeof(double) + 1);
	double *num = malloc(d * sizeof(double) + 1);
	if (!fq || !fk || !num) {
		free(fq);
		free(fk);
		free(num);
		return -1;
	}
	for (size_t h = 0; h < a->heads; h++) {
		size_t g = h / group;
		for (size_t i = 0; i < a->nq; i++)
			ref_phi(a, a->q + i * a->q_stride + h * d, fq + i * m);
		for (size_t j = 0; j < a->nk; j++)
			ref_phi(a, a->k + j * a->k_stride + g * d, fk + j * m);
		for (size_t i = 0; i < a->nq; i++) {
			double den = 0.0;
			memset(num, 0, d * sizeof(double));
			for (size_t j = 0; j < a->nk; j++) {
				if (!ref_visible(a, i, j))
					continue;
				double w = 0.0;
				for (size_t r = 0; r < m; r++)
					w += fq[i * m + r] * fk[j * m + r];
				den += w;
				const float *vj = a->v + j * a->v_stride + g * d;
				for (size_t t = 0; t < d; t++)
					num[t] += w * vj[t];
			}
			for (size_t t = 0; t < d; t++)
				out[i * dim + h * d + t] = den > 0.0 ? num[t] / den : 0.0;
		}
	}
	free(fq);
	free(fk);
	free(num);
	return 0;
}

int ref_softmax_attention(const ref_linear_args *a, double *out) {
	size_t d = a->head_dim, dim = a->heads * d, group = a->heads / a->kv_heads;
	double *p = malloc(a->nk * sizeof(double) + 1);
	if (!p)
		return -1;
	for (size_t h = 0; h < a->heads; h++) {
		size_t g = h / group;
		for (size_t i = 0; i < a->nq; i++) {
			const float *qi = a->q + i * a->q_stride + h * d;
			double mx = -INFINITY;
			for (size_t j = 0; j < a->nk; j++) {
				p[j] = -INFINITY;
				if (!ref_visible(a, i, j))
					continue;
				const float *kj = a->k + j * a->k_stride + g * d;
				double s = 0.0;
				for (size_t t = 0; t < d; t++)
					s += (double)qi[t] * kj[t];
				p[j] = a->scale * s;
				if (p[j] > mx)
					mx = p[j];
			}
			double den = 0.0;
			for (size_t j = 0; j < a->nk; j++) {
				p[j] = p[j] == -INFINITY ? 0.0 : exp(p[j] - mx);
				den += p[j];
			}
			for (size_t t = 0; t < d; t++) {
				double acc = 0.0;
				for (size_t j = 0; j < a->nk; j++)
					acc += p[j] * a->v[j * a->v_stride + g * d + t];
				out[i * dim + h * d + t] = den > 0.0 ? acc / den : 0.0;
			}
		}
	}
	free(p);
	return 0;
}

double ref_block_orthogonality(const float *w, size_t m, size_t head_dim) {
	double worst = 0.0;
	for (size_t i = 0; i < m; i++)
		for (size_t j = i + 1; j < m && j / head_dim == i / head_dim; j++) {
			double dot = 0.0, ni = 0.0, nj = 0.0;
			for (size_t t = 0; t < head_dim; t++) {
				dot += (double)w[i * head_dim + t] * w[j * head_dim + t];
				ni += (double)w[i * head_dim + t] * w[i * head_dim + t];
				nj += (double)w[j * head_dim + t] * w[j * head_dim + t];
			}
			double c = fabs(dot) / sqrt(ni * nj);
			if (c > worst)
				worst = c;
		}
	return worst;
}

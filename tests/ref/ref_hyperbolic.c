/* Double-precision hyperbolic attention oracle (see ref_hyperbolic.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref_hyperbolic.h"

static double dot(const double *x, const double *y, size_t n) {
	double s = 0.0;
	for (size_t i = 0; i < n; i++)
		s += x[i] * y[i];
	return s;
}

void ref_hyp_project(double c, double *x, size_t n) {
	double norm = sqrt(dot(x, x, n));
	if (sqrt(c) * norm >= 1.0 - REF_HYP_EPS) {
		double f = (1.0 - REF_HYP_EPS) / sqrt(c) / norm;
		for (size_t i = 0; i < n; i++)
			x[i] *= f;
	}
}

void ref_hyp_mobius_add(double c, const double *x, const double *y, size_t n, double *out) {
	double xy = dot(x, y, n), x2 = dot(x, x, n), y2 = dot(y, y, n);
	double den = 1.0 + 2.0 * c * xy + c * c * x2 * y2;
	for (size_t i = 0; i < n; i++)
		out[i] = ((1.0 + 2.0 * c * xy + c * y2) * x[i] + (1.0 - c * x2) * y[i]) / den;
}

double ref_hyp_dist(double c, const double *x, const double *y, size_t n) {
	double *mx = malloc(2 * n * sizeof(double) + 1), *w = mx + n;
	for (size_t i = 0; i < n; i++)
		mx[i] = -x[i];
	ref_hyp_mobius_add(c, mx, y, n, w);
	double z = sqrt(c) * sqrt(dot(w, w, n));
	free(mx);
	if (z > 1.0 - 1e-15)
		z = 1.0 - 1e-15;
	return 2.0 / sqrt(c) * atanh(z);
}

void ref_hyp_gyromidpoint(double c, const double *w, const double *pts, size_t m, size_t n,
                          double *out) {
	/* Einstein midpoint in the Klein model, mapped back to the Poincare ball. */
	double *mk = calloc(n + 1, sizeof(double));
	double den = 0.0;
	for (size_t j = 0; j < m; j++) {
		const double *p = pts + j * n;
		double p2 = dot(p, p, n);
		double kf = 2.0 / (1.0 + c * p2); /* x_K = kf * x_P */
		double k2 = kf * kf * p2;
		double gamma = 1.0 / sqrt(1.0 - c * k2);
		for (size_t i = 0; i < n; i++)
			mk[i] += w[j] * gamma * kf * p[i];
		den += w[j] * gamma;
	}
	for (size_t i = 0; i < n; i++)
		mk[i] /= den;
	double m2 = dot(mk, mk, n);
	double f = 1.0 / (1.0 + sqrt(fmax(1.0 - c * m2, 0.0)));
	for (size_t i = 0; i < n; i++)
		out[i] = mk[i] * f;
	free(mk);
}

double ref_hyp_frechet_objective(double c, const double *w, const double *pts, size_t m,
                                 size_t n, const double *mu) {
	double f = 0.0;
	for (size_t j = 0; j < m; j++) {
		double d = ref_hyp_dist(c, mu, pts + j * n, n);
		f += w[j] * d * d;
	}
	return f;
}

/* log_x(y) = (2 / (sqrt(c) lambda_x)) artanh(sqrt(c)|(-x)+y|) ((-x)+y) / |(-x)+y| */
static void log_map(double c, const double *x, const double *y, size_t n, double *out,
                    double *tmp) {
	for (size_t i = 0; i < n; i++)
		tmp[i] = -x[i];
	ref_hyp_mobius_add(c, tmp, y, n, out);
	double wn = sqrt(dot(out, out, n));
	double lam = 2.0 / (1.0 - c * dot(x, x, n));
	if (wn < 1e-300)
		return;
	double f = 2.0 / (sqrt(c) * lam) * atanh(fmin(sqrt(c) * wn, 1.0 - 1e-16)) / wn;
	for (size_t i = 0; i < n; i++)
		out[i] *= f;
}

double ref_hyp_frechet_grad_norm(double c, const double *w, const double *pts, size_t m,
                                 size_t n, const double *mu) {
	/* grad = -2 sum_j w_j log_mu(p_j) / sum_j w_j; its norm in the metric at mu */
	double *g = calloc(3 * n + 1, sizeof(double)), *l = g + n, *tmp = g + 2 * n;
	double wsum = 0.0;
	for (size_t j = 0; j < m; j++)
		wsum += w[j];
	for (size_t j = 0; j < m; j++) {
		if (w[j] == 0.0)
			continue;
		log_map(c, mu, pts + j * n, n, l, tmp);
		for (size_t i = 0; i < n; i++)
			g[i] += -2.0 * w[j] / wsum * l[i];
	}
	double lam = 2.0 / (1.0 - c * dot(mu, mu, n));
	double r = lam * sqrt(dot(g, g, n));
	free(g);
	return r;
}

size_t ref_hyp_frechet(double c, const double *w, const double *pts, size_t m, size_t n,
                       double *out) {
	/*
	 * Lou et al. 2020 (arXiv:2003.00335) Algorithm 1, from the gyromidpoint:
	 * y <- t b, b = sum al_j p_j, al_j = w_j g(u_j) / (1 - c|p_j|^2),
	 * g(u) = 2 arcosh(1 + 2u) / sqrt(u^2 + u), u_j = c|y - p_j|^2 / ((1 - c|p_j|^2)(1 - c|y|^2)),
	 * t = ((a + c e) - sqrt((a + c e)^2 - 4c|b|^2)) / (2c|b|^2), a = sum al_j,
	 * e = sum al_j |p_j|^2. Stops when a step moves y by less than 1e-15.
	 */
	double *y = calloc(2 * n + 1, sizeof(double)), *b = y + n;
	ref_hyp_gyromidpoint(c, w, pts, m, n, y);
	size_t it;
	for (it = 0; it < 10000; it++) {
		double y2 = dot(y, y, n), a = 0.0, e = 0.0;
		memset(b, 0, n * sizeof(double));
		for (size_t j = 0; j < m; j++) {
			const double *p = pts + j * n;
			double p2 = dot(p, p, n), d2 = 0.0;
			for (size_t i = 0; i < n; i++)
				d2 += (y[i] - p[i]) * (y[i] - p[i]);
			double u = c * d2 / ((1.0 - c * p2) * (1.0 - c * y2));
			double g = u < 1e-14 ? 4.0 : 2.0 * acosh(1.0 + 2.0 * u) / sqrt(u * u + u);
			double al = w[j] * g / (1.0 - c * p2);
			a += al;
			e += al * p2;
			for (size_t i = 0; i < n; i++)
				b[i] += al * p[i];
		}
		double b2 = dot(b, b, n), A = a + c * e, move = 0.0;
		double t = b2 > 0.0 ? (A - sqrt(fmax(A * A - 4.0 * c * b2, 0.0))) / (2.0 * c * b2)
		                    : 0.0;
		if (b2 > 0.0 && c * b2 < 1e-8 * A * A)
			t = 1.0 / A; /* the root's limit, avoiding cancellation */
		for (size_t i = 0; i < n; i++) {
			double nyi = t * b[i];
			move = fmax(move, fabs(nyi - y[i]));
			y[i] = nyi;
		}
		if (move < 1e-15)
			break;
	}
	memcpy(out, y, n * sizeof(double));
	free(y);
	return it;
}

void ref_hyperbolic_attention(const ref_hyp_params *p, size_t heads, size_t kv_heads,
                              size_t hd, size_t nq, size_t nk, const float *q, size_t qs,
                              const float *k, size_t ks, const float *v, size_t vs,
                              const uint8_t *mask, double *out) {
	double c = p->c;
	size_t group = heads / kv_heads, dim = heads * hd;
	double *qp = malloc((hd + 2 * nk * hd + nk + 1) * sizeof(double));
	double *kp = qp + hd, *vp = kp + nk * hd, *w = vp + nk * hd;
	for (size_t h = 0; h < heads; h++) {
		size_t kh = h / group;
		for (size_t j = 0; j < nk; j++) {
			for (size_t d = 0; d < hd; d++) {
				kp[j * hd + d] = k[j * ks + kh * hd + d];
				vp[j * hd + d] = v[j * vs + kh * hd + d];
			}
			ref_hyp_project(c, kp + j * hd, hd);
			ref_hyp_project(c, vp + j * hd, hd);
		}
		for (size_t i = 0; i < nq; i++) {
			double *o = out + i * dim + h * hd;
			for (size_t d = 0; d < hd; d++)
				qp[d] = q[i * qs + h * hd + d];
			ref_hyp_project(c, qp, hd);
			/* visible keys and their softmax weights */
			long long pos = (long long)nk - (long long)nq + (long long)i;
			double mx = -INFINITY;
			for (size_t j = 0; j < nk; j++) {
				bool vis = (!mask || mask[j]) && (!p->causal || (long long)j <= pos);
				w[j] = vis ? -ref_hyp_dist(c, qp, kp + j * hd, hd) / p->temperature
				           : -INFINITY;
				if (w[j] > mx)
					mx = w[j];
			}
			if (mx == -INFINITY) {
				for (size_t d = 0; d < hd; d++)
					o[d] = 0.0;
				continue;
			}
			double sum = 0.0;
			for (size_t j = 0; j < nk; j++) {
				w[j] = w[j] == -INFINITY ? 0.0 : exp(w[j] - mx);
				sum += w[j];
			}
			for (size_t j = 0; j < nk; j++)
				w[j] /= sum;
			if (p->frechet)
				ref_hyp_frechet(c, w, vp, nk, hd, o);
			else
				ref_hyp_gyromidpoint(c, w, vp, nk, hd, o);
		}
	}
	free(qp);
}

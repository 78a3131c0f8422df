/* Naive double-precision normalisation oracles (see ref_norms.h). */
#include <math.h>

#include "ref/ref_norms.h"

static double g_or_1(const float *g, size_t i) { return g ? (double)g[i] : 1.0; }
static double b_or_0(const float *b, size_t i) { return b ? (double)b[i] : 0.0; }

void ref_layer_norm(const float *x, size_t dim, double eps, const float *gain,
                    const float *bias, double *y) {
	double mean = 0.0, var = 0.0;
	for (size_t i = 0; i < dim; i++)
		mean += x[i];
	mean /= (double)dim;
	for (size_t i = 0; i < dim; i++)
		var += ((double)x[i] - mean) * ((double)x[i] - mean);
	var /= (double)dim;
	for (size_t i = 0; i < dim; i++)
		y[i] = ((double)x[i] - mean) / sqrt(var + eps) * g_or_1(gain, i) + b_or_0(bias, i);
}

void ref_rms_norm(const float *x, size_t dim, double eps, const float *gain,
                  const float *bias, double *y) {
	double ms = 0.0;
	for (size_t i = 0; i < dim; i++)
		ms += (double)x[i] * (double)x[i];
	ms /= (double)dim;
	for (size_t i = 0; i < dim; i++)
		y[i] = (double)x[i] / sqrt(ms + eps) * g_or_1(gain, i) + b_or_0(bias, i);
}

void ref_batch_norm_running(const float *x, size_t dim, double eps, const float *running_mean,
                            const float *running_var, const float *gain, const float *bias,
                            double *y) {
	for (size_t i = 0; i < dim; i++) {
		double m = running_mean ? (double)running_mean[i] : 0.0;
		double v = running_var ? (double)running_var[i] : 1.0;
		y[i] = ((double)x[i] - m) / sqrt(v + eps) * g_or_1(gain, i) + b_or_0(bias, i);
	}
}

void ref_batch_norm_batch(const float *x, size_t rows, size_t stride, size_t dim, double eps,
                          const float *gain, const float *bias, double *y) {
	for (size_t f = 0; f < dim; f++) {
		double mean = 0.0, var = 0.0;
		for (size_t r = 0; r < rows; r++)
			mean += x[r * stride + f];
		mean /= (double)rows;
		for (size_t r = 0; r < rows; r++) {
			double d = (double)x[r * stride + f] - mean;
			var += d * d;
		}
		var /= (double)rows;
		for (size_t r = 0; r < rows; r++)
			y[r * dim + f] = ((double)x[r * stride + f] - mean) / sqrt(var + eps) *
			                 g_or_1(gain, f) + b_or_0(bias, f);
	}
}

/*
 * Row kernels of the pipeline's elementwise stages: LayerNorm, RMSNorm, the per-feature
 * affine form of BatchNorm, dropout and residual. Reductions of a row accumulate in double
 * (a row is small and these stages are memory-bound, so it costs nothing measurable);
 * outputs are computed in fp32.
 */
#include <math.h>

#include "core/internal.h"
#include "sdk/pipeline_impl.h"

void rva__layer_norm_row(const float *in, float *out, size_t dim, float eps,
                         const float *gain, const float *bias) {
	double sum = 0.0;
	for (size_t i = 0; i < dim; i++)
		sum += in[i];
	double mean = sum / (double)dim;
	double ss = 0.0;
	for (size_t i = 0; i < dim; i++) {
		double d = (double)in[i] - mean;
		ss += d * d;
	}
	float m = (float)mean;
	float inv = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
	for (size_t i = 0; i < dim; i++) {
		float y = (in[i] - m) * inv;
		if (gain)
			y *= gain[i];
		if (bias)
			y += bias[i];
		out[i] = y;
	}
}

void rva__rms_norm_row(const float *in, float *out, size_t dim, float eps,
                       const float *gain, const float *bias) {
	double ss = 0.0;
	for (size_t i = 0; i < dim; i++)
		ss += (double)in[i] * (double)in[i];
	float inv = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
	for (size_t i = 0; i < dim; i++) {
		float y = in[i] * inv;
		if (gain)
			y *= gain[i];
		if (bias)
			y += bias[i];
		out[i] = y;
	}
}

void rva__affine_norm_row(const float *in, float *out, size_t dim, const float *mean,
                          const float *scale, const float *shift) {
	for (size_t i = 0; i < dim; i++)
		out[i] = (in[i] - mean[i]) * scale[i] + shift[i];
}

uint64_t rva__dropout_key(uint64_t seed, uint64_t step, uint32_t stream) {
	/* A tag keeps pipeline dropout apart from the attention mechanisms' streams. */
	return rva__hash3(seed, step, 0xD50F000000000000ull ^ (uint64_t)stream);
}

void rva__dropout_row(const float *in, float *out, size_t dim, float prob, uint64_t row_key) {
	float keep_scale = 1.0f / (1.0f - prob);
	/* Column c draws mix64(row_key + c * golden): the SplitMix64 stream seeded by row_key. */
	for (size_t i = 0; i < dim; i++) {
		float u = rva__u01(rva__mix64(row_key + (uint64_t)i * 0x9E3779B97F4A7C15ull));
		out[i] = u >= prob ? in[i] * keep_scale : 0.0f;
	}
}

void rva__residual_row(const float *in, const float *res, float *out, size_t dim) {
	for (size_t i = 0; i < dim; i++)
		out[i] = in[i] + res[i];
}

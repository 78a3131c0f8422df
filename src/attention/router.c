/* The MoE router: gate softmax, top-k and input jitter (see router.h). */
#include <math.h>
#include <string.h>

#include "attention/router.h"
#include "core/internal.h"
#include "kernels/gemm.h"

#define ROUTER_JITTER_TAG 0x524F555445524A49ull /* "ROUTERJI" */

size_t rva__router_scratch(const rva__router *r, size_t nrows, bool jitter) {
	return jitter ? rva__round_up(nrows * r->dim * sizeof(float), RVA__ALIGN) : 0;
}

bool rva__router_jitter_active(const rva__router *r, const rva_runtime *rt) {
	return rt && rt->training && r->jitter > 0.0f;
}

/* Softmax of one row of logits in place (fp32, running max subtracted). */
static void softmax_row(float *p, size_t n) {
	float m = p[0];
	for (size_t e = 1; e < n; e++)
		m = fmaxf(m, p[e]);
	float sum = 0.0f;
	for (size_t e = 0; e < n; e++) {
		p[e] = expf(p[e] - m);
		sum += p[e];
	}
	float inv = 1.0f / sum;
	for (size_t e = 0; e < n; e++)
		p[e] *= inv;
}

/* The k largest probabilities in decreasing order, ties to the lower index. */
static void top_k(const float *p, size_t n, size_t k, bool normalize, uint32_t *choice,
                  float *weight) {
	unsigned char taken[RVA_MOE_MAX_EXPERTS];
	memset(taken, 0, n);
	float sum = 0.0f;
	for (size_t r = 0; r < k; r++) {
		size_t best = SIZE_MAX;
		for (size_t e = 0; e < n; e++) {
			/* strict > keeps the lower index on ties; the first free index stands in
			 * for NaN probabilities */
			if (!taken[e] && (best == SIZE_MAX || p[e] > p[best]))
				best = e;
		}
		taken[best] = 1;
		choice[r] = (uint32_t)best;
		weight[r] = p[best];
		sum += p[best];
	}
	if (!normalize)
		return; /* Switch: the gate is the router probability itself */
	float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
	for (size_t r = 0; r < k; r++)
		weight[r] *= inv;
}

void rva__router_rows(const rva__router *r, const rva_runtime *rt, uint32_t stream,
                      uint32_t seq_index, const float *q, size_t q_stride, size_t row0,
                      size_t n, float *probs, uint32_t *choice, float *weight,
                      void *scratch) {
	size_t dim = r->dim, E = r->experts, k = r->top_k;
	const float *x = q + row0 * q_stride;
	size_t ldx = q_stride;
	if (rva__router_jitter_active(r, rt)) {
		float *xj = scratch, eps = r->jitter;
		uint64_t base = rva__hash3(rt->seed, rt->step, ROUTER_JITTER_TAG);
		uint64_t key = rva__hash3(base, stream, seq_index);
		for (size_t i = 0; i < n; i++) {
			uint64_t rowkey = rva__mix64(key ^ rva__mix64(row0 + i));
			const float *src = x + i * q_stride;
			for (size_t d = 0; d < dim; d++) {
				float u = rva__u01(rva__hash3(rowkey, d, ROUTER_JITTER_TAG));
				xj[i * dim + d] = src[d] * (1.0f - eps + 2.0f * eps * u);
			}
		}
		x = xj;
		ldx = dim;
	}
	rva__sgemm(false, true, n, E, dim, 1.0f, x, ldx, r->w, dim, 0.0f, probs, E);
	for (size_t i = 0; i < n; i++) {
		softmax_row(probs + i * E, E);
		top_k(probs + i * E, E, k, r->normalize, choice + i * k, weight + i * k);
	}
}

size_t rva__moe_capacity(float factor, size_t tokens, size_t k, size_t experts) {
	double x = (double)factor * (double)tokens * (double)k / (double)experts;
	x -= x * 0x1p-23;
	double c = ceil(x);
	if (!(c > 0.0))
		return 0;
	if (c >= 0x1p64)
		return SIZE_MAX;
	return (size_t)c;
}

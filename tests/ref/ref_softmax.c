#include "ref/ref_softmax.h"

#include <math.h>
#include <stdlib.h>

static bool is_global(const ref_attn_spec *sp, long pos) {
	for (size_t g = 0; g < sp->nglobals; g++)
		if ((long)sp->globals[g] == pos)
			return true;
	return false;
}

/* get_slopes of the ALiBi reference code, recursively as written there. */
static void slopes_rec(size_t n, double *out) {
	double lg = log2((double)n);
	if (lg == floor(lg)) {
		double start = pow(2.0, -pow(2.0, -(lg - 3.0)));
		for (size_t i = 0; i < n; i++)
			out[i] = start * pow(start, (double)i);
		return;
	}
	size_t p = (size_t)pow(2.0, floor(lg));
	slopes_rec(p, out);
	double *two = malloc(2 * p * sizeof(double));
	slopes_rec(2 * p, two);
	for (size_t i = 0; i < n - p; i++)
		out[p + i] = two[2 * i];
	free(two);
}

void ref_alibi_slopes(size_t n, double *out) { slopes_rec(n, out); }

bool ref_visible(const ref_attn_spec *sp, long qp, long kp) {
	if (sp->causal && kp > qp)
		return false;
	/* counts beyond any position (RVA_WINDOW_UNBOUNDED) bound nothing */
	if (sp->sliding && sp->window_left < (1ul << 40) && kp < qp - (long)sp->window_left)
		return false;
	if (sp->sliding && sp->window_right < (1ul << 40) && kp > qp + (long)sp->window_right)
		return false;
	if (sp->pattern == REF_LOCAL_GLOBAL) {
		if (is_global(sp, qp) || is_global(sp, kp))
			return true;
		if (sp->causal)
			return qp - kp <= (long)sp->window;
		return labs(qp - kp) <= (long)sp->window / 2;
	}
	if (sp->pattern == REF_STRIDED) {
		long d = qp - kp;
		return d < (long)sp->stride || d % (long)sp->stride == 0;
	}
	return true;
}

size_t ref_t5_bucket(long rp, bool bidirectional, size_t buckets, size_t max_distance) {
	long nb = (long)buckets, ret = 0, n;
	if (bidirectional) {
		nb /= 2;
		ret += rp > 0 ? nb : 0;
		n = labs(rp);
	} else {
		n = rp < 0 ? -rp : 0;
	}
	long max_exact = nb / 2;
	if (n < max_exact)
		return (size_t)(ret + n);
	float v = (float)max_exact + logf((float)n / (float)max_exact) /
	                                 (float)log((double)max_distance / (double)max_exact) *
	                                 (float)(nb - max_exact);
	long large = (long)v;
	if (large > nb - 1)
		large = nb - 1;
	return (size_t)(ret + large);
}

void ref_attention(const ref_attn_spec *sp, size_t nq, size_t nk, const float *q,
                           size_t qs, const float *k, size_t ks, const float *v, size_t vs,
                           const uint8_t *mask, double *out) {
	size_t H = sp->heads, D = sp->head_dim, G = sp->heads / sp->kv_heads;
	double *s = malloc((nk ? nk : 1) * sizeof(double));
	bool *vis = malloc((nk ? nk : 1) * sizeof(bool));
	for (size_t i = 0; i < nq; i++) {
		long qp = sp->top_left ? (long)i : (long)nk - (long)nq + (long)i;
		for (size_t h = 0; h < H; h++) {
			size_t kh = h / G;
			double mx = -INFINITY;
			for (size_t j = 0; j < nk; j++) {
				vis[j] = (!mask || mask[j]) && ref_visible(sp, qp, (long)j) &&
				         (!sp->smask || sp->smask[h * sp->smask_hs + i * sp->smask_s + j]);
				if (!vis[j])
					continue;
				double dot = 0.0;
				for (size_t d = 0; d < D; d++)
					dot += (double)q[i * qs + h * D + d] * (double)k[j * ks + kh * D + d];
				s[j] = sp->scale * dot;
				if (sp->softcap > 0.0)
					s[j] = sp->softcap * tanh(s[j] / sp->softcap);
				if (sp->alibi)
					s[j] -= sp->alibi[h] * fabs((double)(qp - (long)j));
				if (sp->t5_table)
					s[j] += sp->t5_table[ref_t5_bucket((long)j - qp, !sp->causal,
					                                   sp->t5_buckets, sp->t5_max_distance) *
					                     H + h];
				if (sp->bias)
					s[j] += sp->bias[h * sp->bias_hs + i * sp->bias_s + j];
				if (s[j] == -INFINITY) {
					vis[j] = false;
					continue;
				}
				if (s[j] > mx)
					mx = s[j];
			}
			double *o = out + i * H * D + h * D;
			for (size_t d = 0; d < D; d++)
				o[d] = 0.0;
			if (mx == -INFINITY)
				continue;
			double sum = 0.0;
			for (size_t j = 0; j < nk; j++)
				if (vis[j]) {
					s[j] = exp(s[j] - mx);
					sum += s[j];
				}
			for (size_t j = 0; j < nk; j++)
				if (vis[j])
					for (size_t d = 0; d < D; d++)
						o[d] += s[j] / sum * (double)v[j * vs + kh * D + d];
		}
	}
	free(s);
	free(vis);
}

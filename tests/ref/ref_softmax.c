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
	if (sp->pattern == REF_FIXED) {
		/* Child et al. 2019: j in i's own block, or among the last c of its block */
		long l = (long)sp->stride;
		return kp <= qp && (kp / l == qp / l || kp % l >= l - (long)sp->summary);
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

void ref_rope_apply(const ref_rope *r, size_t head_dim, long pos, double *x) {
	if (r->kind == REF_ROPE_NONE)
		return;
	size_t rd = r->rot_dim ? r->rot_dim : head_dim, half = rd / 2;
	double theta = r->theta, p = (double)pos;
	if (r->scaling == REF_ROPE_SCALE_NTK)
		theta *= pow(r->factor, (double)rd / ((double)rd - 2.0));
	if (r->scaling == REF_ROPE_SCALE_LINEAR)
		p /= r->factor;
	for (size_t i = 0; i < half; i++) {
		double a = p * pow(theta, -2.0 * (double)i / (double)rd);
		size_t i0 = r->kind == REF_ROPE_NEOX ? i : 2 * i;
		size_t i1 = r->kind == REF_ROPE_NEOX ? i + half : 2 * i + 1;
		double x0 = x[i0], x1 = x[i1];
		x[i0] = x0 * cos(a) - x1 * sin(a);
		x[i1] = x0 * sin(a) + x1 * cos(a);
	}
}

/* The scaled, modified logit of (query row i at position qp, head h) and key row j, from
 * the head vectors qv and kv (rotated already); -inf when a modifier hides the pair. */
static double logit(const ref_attn_spec *sp, size_t i, long qp, size_t h, size_t j,
                    const double *qv, const double *kv) {
	double dot = 0.0;
	for (size_t d = 0; d < sp->head_dim; d++)
		dot += qv[d] * kv[d];
	double s = sp->scale * dot;
	if (sp->softcap > 0.0)
		s = sp->softcap * tanh(s / sp->softcap);
	if (sp->alibi)
		s -= sp->alibi[h] * fabs((double)(qp - (long)j));
	if (sp->t5_table)
		s += sp->t5_table[ref_t5_bucket((long)j - qp, !sp->causal, sp->t5_buckets,
		                                sp->t5_max_distance) * sp->heads + h];
	if (sp->bias)
		s += sp->bias[h * sp->bias_hs + i * sp->bias_s + j];
	return s;
}

void ref_attention_ex(const ref_attn_spec *sp, const ref_ex_io *io) {
	size_t H = sp->heads, D = sp->head_dim, G = sp->heads / sp->kv_heads;
	size_t Dv = io->v_head_dim ? io->v_head_dim : D, nq = io->nq, nk = io->nk;
	double *s = malloc((nk ? nk : 1) * sizeof(double));
	double *qv = malloc(D * sizeof(double));
	double *kv = malloc((nk ? nk : 1) * D * sizeof(double)); /* rotated keys of one head */
	bool *vis = malloc((nk ? nk : 1) * sizeof(bool));
	for (size_t h = 0; h < H; h++) {
		size_t kh = h / G;
		for (size_t j = 0; j < nk; j++) {
			for (size_t d = 0; d < D; d++)
				kv[j * D + d] = (double)io->k[j * io->ks + kh * io->khs + d];
			ref_rope_apply(&io->rope, D, io->k_pos + (long)j, kv + j * D);
		}
		for (size_t i = 0; i < nq; i++) {
			/* the masking position (causal_align); RoPE's is q_pos + qp */
			long qp = sp->top_left ? (long)i : (long)nk - (long)nq + (long)i;
			for (size_t d = 0; d < D; d++)
				qv[d] = (double)io->q[i * io->qs + h * io->qhs + d];
			ref_rope_apply(&io->rope, D, io->q_pos + qp, qv);
			double mx = -INFINITY;
			for (size_t j = 0; j < nk; j++) {
				vis[j] = (!io->mask || io->mask[j]) && ref_visible(sp, qp, (long)j) &&
				         (!sp->smask || sp->smask[h * sp->smask_hs + i * sp->smask_s + j]);
				if (!vis[j])
					continue;
				s[j] = logit(sp, i, qp, h, j, qv, kv + j * D);
				if (s[j] == -INFINITY) { /* a -inf bias hides the pair */
					vis[j] = false;
					continue;
				}
				if (s[j] > mx)
					mx = s[j];
			}
			double *o = io->out + i * H * Dv + h * Dv;
			for (size_t d = 0; d < Dv; d++)
				o[d] = 0.0;
			if (mx == -INFINITY) {
				if (io->lse)
					io->lse[h * nq + i] = -INFINITY;
				continue;
			}
			double sum = 0.0;
			for (size_t j = 0; j < nk; j++)
				if (vis[j]) {
					s[j] = exp(s[j] - mx);
					sum += s[j];
				}
			if (io->lse)
				io->lse[h * nq + i] = mx + log(sum);
			for (size_t j = 0; j < nk; j++)
				if (vis[j])
					for (size_t d = 0; d < Dv; d++)
						o[d] += s[j] / sum * (double)io->v[j * io->vs + kh * io->vhs + d];
		}
	}
	free(s);
	free(qv);
	free(kv);
	free(vis);
}

void ref_attention(const ref_attn_spec *sp, size_t nq, size_t nk, const float *q,
                   size_t qs, const float *k, size_t ks, const float *v, size_t vs,
                   const uint8_t *mask, double *out) {
	size_t D = sp->head_dim;
	ref_ex_io io = {.nq = nq, .nk = nk, .q = q, .qs = qs, .qhs = D, .k = k, .ks = ks,
	                .khs = D, .v = v, .vs = vs, .vhs = D, .mask = mask, .v_head_dim = D,
	                .out = out};
	ref_attention_ex(sp, &io);
}

#include "ref/ref_attn_ex.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

void ref_attention_ex(const ref_attn_spec *sp, const ref_ex_io *io) {
	size_t H = sp->heads, D = sp->head_dim, G = sp->heads / sp->kv_heads;
	size_t Dv = io->v_head_dim ? io->v_head_dim : D, nq = io->nq, nk = io->nk;
	double *s = malloc((nk ? nk : 1) * sizeof(double));
	double *qv = malloc(D * sizeof(double));
	double *kv = malloc((nk ? nk : 1) * D * sizeof(double)); /* rotated keys of one head */
	char *vis = malloc(nk ? nk : 1);
	for (size_t h = 0; h < H; h++) {
		size_t kh = h / G;
		for (size_t j = 0; j < nk; j++) {
			for (size_t d = 0; d < D; d++)
				kv[j * D + d] = (double)io->k[j * io->ks + kh * io->khs + d];
			ref_rope_apply(&io->rope, D, io->k_pos + (long)j, kv + j * D);
		}
		for (size_t i = 0; i < nq; i++) {
			long qp = (long)nk - (long)nq + (long)i; /* masking position (bottom-right) */
			for (size_t d = 0; d < D; d++)
				qv[d] = (double)io->q[i * io->qs + h * io->qhs + d];
			ref_rope_apply(&io->rope, D, io->q_pos + (long)i, qv);
			double mx = -INFINITY;
			for (size_t j = 0; j < nk; j++) {
				vis[j] = (!io->mask || io->mask[j]) && ref_visible(sp, qp, (long)j);
				if (!vis[j])
					continue;
				double dot = 0.0;
				for (size_t d = 0; d < D; d++)
					dot += qv[d] * kv[j * D + d];
				s[j] = sp->scale * dot;
				if (sp->t5_table)
					s[j] += sp->t5_table[ref_t5_bucket((long)j - qp, !sp->causal,
					                                   sp->t5_buckets, sp->t5_max_distance) *
					                     H + h];
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

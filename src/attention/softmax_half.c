/* Half-precision operands of the softmax loops (see softmax_half.h). */
#include <math.h>

#include "attention/softmax_half.h"
#include "core/internal.h"

size_t rva__smh_tile_floats(size_t br, size_t bc, size_t D) {
	size_t brp = rva__round_up(br, 16);
	return rva__round_up(br * D, 16) + 2 * rva__round_up(bc * D, 16) +
	       ((bc + 1) / 2 + (D + 1) / 2) * brp + rva__smh_vpack_words(bc, D) + 192;
}

size_t rva__smh_decode_floats(size_t nq, size_t dim, size_t kvd, size_t kb) {
	return rva__round_up(nq * dim, 16) + 2 * rva__round_up(kb * kvd, 16) + 64;
}

const float *rva__smh_operand(rva_dtype t, const void *m, size_t stride, size_t off,
                              size_t rows, size_t cols, bool round_bf16, float *buf,
                              size_t *out_stride) {
	if (t == RVA_F32 && !round_bf16) {
		*out_stride = stride;
		return (const float *)m + off;
	}
	rva__cvt_rows_to_f32(t, rva__elem_at(m, t, off), stride, rows, cols, buf, cols);
	if (round_bf16 && t != RVA_BF16)
		rva__cvt_round_bf16(buf, rows * cols);
	*out_stride = cols;
	return buf;
}

void rva__smh_round_p(const rva_seq *seq, float *p, size_t n) {
	if (seq->v_dtype == RVA_BF16)
		rva__cvt_round_bf16(p, n);
}

void rva__smh_finish_rows(const float *o, const float *l, size_t br, size_t D, void *out,
                          rva_dtype t, size_t out_stride) {
	enum { CH = 64 };
	float row[CH];
	for (size_t i = 0; i < br; i++) {
		float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
		for (size_t d0 = 0; d0 < D; d0 += CH) {
			size_t n = rva__min(CH, D - d0);
			for (size_t d = 0; d < n; d++)
				row[d] = l[i] > 0.0f ? o[i * D + d0 + d] * inv : (isnan(l[i]) ? NAN : 0.0f);
			rva__cvt_from_f32(t, row, rva__elem_at_mut(out, t, i * out_stride + d0), n);
		}
	}
}

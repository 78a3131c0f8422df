/*
 * A 16 x 16 float transpose in AVX-512 registers, for kernels compiled with
 * RVA__TARGET_AVX512: the score modifiers' pass transposes bias and mask blocks to the
 * key-major score tile with it (score_mods.c), the Q packing transposes query rows to the
 * tile's query-lane layout (softmax_kernels.c). A permutation: no value changes.
 */
#ifndef RVATTN_SRC_KERNELS_TRANSPOSE16_H
#define RVATTN_SRC_KERNELS_TRANSPOSE16_H

#include "kernels/vexp.h"

#if defined(__x86_64__)

/* r[0..15] (16 rows of 16 floats) transposed in place: afterwards r[j] holds column j. */
static inline RVA__TARGET_AVX512 __attribute__((always_inline)) void
rva__transpose16(__m512 r[16]) {
	__m512 t[16];
	for (int i = 0; i < 16; i += 2) {
		t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
		t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
	}
	for (int i = 0; i < 16; i += 4) {
		__m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
		__m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
		r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
		r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
		r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
		r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
	}
	/* r[4g + c] now holds, in its 128-bit lane l, column 4l + c of rows 4g..4g+3: what is
	 * left is a 4 x 4 transpose of 128-bit lanes over r[c], r[4 + c], r[8 + c], r[12 + c] */
	for (int i = 0; i < 4; i++) {
		t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
		t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
		t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
		t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
	}
	for (int i = 0; i < 8; i++) {
		r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
		r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
	}
}

#endif
#endif

/*
 * Half-precision element types (rva_dtype, rvattn/batch.h): sizes, exact widening to fp32,
 * rounding of fp32 to bf16/fp16 (round to nearest, ties to even), and strided-matrix
 * conversion. Every converter has a portable twin that gives bit-identical results (the
 * tests compare them exhaustively for the 65536 half values and on sampled fp32 inputs);
 * the SIMD versions are picked at run time and follow RVATTN_SIMD (scalar forces the
 * twins). fp16 uses F16C/AVX-512F conversion instructions; bf16 uses integer arithmetic
 * (vcvtne2ps2bf16 flushes denormal inputs, so it is not used for conversion).
 *
 * Rounding rules (both directions are the IEEE ones):
 *  - fp32 -> bf16: round to nearest even on the upper 16 bits; NaN stays NaN (quiet bit set).
 *  - fp32 -> fp16: round to nearest even, subnormal results included, |x| >= 65520 -> inf;
 *    NaN -> quiet NaN keeping the top payload bits (as F16C does).
 *  - bf16/fp16 -> fp32: exact (fp16 subnormals included); signalling NaNs come back quiet.
 */
#ifndef RVATTN_SRC_KERNELS_HALF_H
#define RVATTN_SRC_KERNELS_HALF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rvattn/batch.h"

/* Bytes of one element; 0 when t is not an rva_dtype. */
static inline size_t rva__dtype_size(rva_dtype t) {
	return t == RVA_F32 ? 4 : (t == RVA_BF16 || t == RVA_F16) ? 2 : 0;
}

/* An fp32 view of a matrix pointer of rva_seq (const-ness kept), for code that only ever
 * sees fp32 sequences: every mechanism but the softmax family gets its half tensors
 * converted to fp32 before it runs (attention.c). */
#define RVA__F32(p) _Generic((p), void *: (float *)(p), const void *: (const float *)(p))

/* "f32", "bf16", "f16", or "unknown". */
const char *rva__dtype_name(rva_dtype t);

/* Address of element `off` of a matrix of type t starting at base. */
static inline const void *rva__elem_at(const void *base, rva_dtype t, size_t off) {
	return (const char *)base + off * rva__dtype_size(t);
}
static inline void *rva__elem_at_mut(void *base, rva_dtype t, size_t off) {
	return (char *)base + off * rva__dtype_size(t);
}

/* Scalar conversions (the reference twins). */
static inline float rva__bf16_to_f32(uint16_t h) {
	uint32_t u = (uint32_t)h << 16;
	if ((u & 0x7fffffffu) > 0x7f800000u)
		u |= 0x00400000u; /* quiet */
	float f;
	memcpy(&f, &u, 4);
	return f;
}
static inline uint16_t rva__f32_to_bf16(float f) {
	uint32_t u;
	memcpy(&u, &f, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40u);
	u += 0x7fffu + ((u >> 16) & 1u);
	return (uint16_t)(u >> 16);
}
/* f rounded to the nearest bf16 value, as fp32. */
static inline float rva__round_bf16(float f) {
	return rva__bf16_to_f32(rva__f32_to_bf16(f));
}
float rva__f16_to_f32(uint16_t h);
uint16_t rva__f32_to_f16(float f);

/* Which half instructions the dispatched converters and kernels use (after RVATTN_SIMD):
 * F16C (with AVX2 or AVX-512) and AVX512_BF16 (vdpbf16ps; needs the AVX-512 level). */
bool rva__half_f16c(void);
bool rva__half_avx512bf16(void);

/* dst[i] = (float)src[i], i < n (src of type t; t == RVA_F32 copies). */
void rva__cvt_to_f32(rva_dtype t, const void *src, float *dst, size_t n);
/* dst[i] = src[i] rounded to type t, i < n (t == RVA_F32 copies). */
void rva__cvt_from_f32(rva_dtype t, const float *src, void *dst, size_t n);
/* x[i] = bf16 rounding of x[i], as fp32, i < n. */
void rva__cvt_round_bf16(float *x, size_t n);

/* Strided matrices: rows x cols elements; strides in elements of each side's type. */
void rva__cvt_rows_to_f32(rva_dtype t, const void *src, size_t src_stride, size_t rows,
                          size_t cols, float *dst, size_t dst_stride);
void rva__cvt_rows_from_f32(rva_dtype t, const float *src, size_t src_stride, size_t rows,
                            size_t cols, void *dst, size_t dst_stride);

/* The portable twins of the three row converters (tests compare against them). */
void rva__cvt_to_f32_ref(rva_dtype t, const void *src, float *dst, size_t n);
void rva__cvt_from_f32_ref(rva_dtype t, const float *src, void *dst, size_t n);
void rva__cvt_round_bf16_ref(float *x, size_t n);

#endif

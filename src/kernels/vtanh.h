/*
 * Vectorised softcap, cap * tanh(x / cap) (config.h, rva_config.softcap), for kernels
 * compiled with RVA__TARGET_AVX512: inline, so the score pass can cap its accumulators
 * before it stores them (softmax_kernels.c) and the separate pass over a stored tile
 * (score_mods.c) computes the very same bits.
 *
 * tanh(t) for t = x / cap clamped to [-7.99881172, 7.99881172] is the odd rational
 * t P(t^2) / Q(t^2) (degrees 13 / 6: the minimax coefficients of Eigen's float tanh), the
 * quotient by rcp14 and one Newton step (no division). Error, measured in float against
 * tanh in double at every float t in [-12, 12] of a 2^-16 grid and every t below 1e-3 in
 * steps of 0.1%: at most 2.7e-7 absolute and relative (4.5 x 2^-24; with the reciprocal in
 * place of the division the same bound, tests/test_vexp.c); past the clamp the result is
 * exactly +-1. So the capped score is within cap * 2^-21 of the exact one, and within
 * |x| * 2^-21 for small x. +-inf give +-cap; NaN propagates (min/max return their second
 * operand when one is NaN, and NaN goes through the arithmetic).
 */
#ifndef RVATTN_SRC_KERNELS_VTANH_H
#define RVATTN_SRC_KERNELS_VTANH_H

#include "kernels/vexp.h"

#if defined(__x86_64__)

/* The softcap's loop-invariant constants: 1 / cap and cap. */
typedef struct rva__softcap512_k {
	__m512 inv, cap;
} rva__softcap512_k;

static inline RVA__TARGET_AVX512 rva__softcap512_k rva__softcap512_init(float cap) {
	return (rva__softcap512_k){_mm512_set1_ps(1.0f / cap), _mm512_set1_ps(cap)};
}

static inline RVA__TARGET_AVX512 __attribute__((always_inline)) __m512
rva__softcap512(__m512 x, rva__softcap512_k k) {
	const __m512 clamp = _mm512_set1_ps(7.99881172180175781f);
	__m512 t = _mm512_mul_ps(x, k.inv);
	t = _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), clamp), _mm512_min_ps(clamp, t));
	__m512 t2 = _mm512_mul_ps(t, t);
	__m512 p = _mm512_set1_ps(-2.76076847742355e-16f);
	p = _mm512_fmadd_ps(p, t2, _mm512_set1_ps(2.00018790482477e-13f));
	p = _mm512_fmadd_ps(p, t2, _mm512_set1_ps(-8.60467152213735e-11f));
	p = _mm512_fmadd_ps(p, t2, _mm512_set1_ps(5.12229709037114e-08f));
	p = _mm512_fmadd_ps(p, t2, _mm512_set1_ps(1.48572235717979e-05f));
	p = _mm512_fmadd_ps(p, t2, _mm512_set1_ps(6.37261928875436e-04f));
	p = _mm512_fmadd_ps(p, t2, _mm512_set1_ps(4.89352455891786e-03f));
	__m512 q = _mm512_set1_ps(1.19825839466702e-06f);
	q = _mm512_fmadd_ps(q, t2, _mm512_set1_ps(1.18534705686654e-04f));
	q = _mm512_fmadd_ps(q, t2, _mm512_set1_ps(2.26843463243900e-03f));
	q = _mm512_fmadd_ps(q, t2, _mm512_set1_ps(4.89352518554385e-03f));
	/* 1 / q: q in [4.89e-3, 2.4e-1] (no zero, no overflow), rcp14 then one Newton step */
	__m512 r = _mm512_rcp14_ps(q);
	r = _mm512_fmadd_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(1.0f)), r);
	return _mm512_mul_ps(_mm512_mul_ps(p, _mm512_mul_ps(t, k.cap)), r);
}

#endif

#endif

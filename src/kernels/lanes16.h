/*
 * The mask of the first min(n, 16) lanes of a 16-float vector, for the masked loads and
 * stores of vector tails in kernels compiled with RVA__TARGET_AVX512 (one definition for
 * the softmax, decode, score-modifier and conversion kernels).
 */
#ifndef RVATTN_SRC_KERNELS_LANES16_H
#define RVATTN_SRC_KERNELS_LANES16_H

#include <stddef.h>

#include "kernels/vexp.h"

#if defined(__x86_64__)
static inline RVA__TARGET_AVX512 __mmask16 rva__lanes16(size_t n) {
	return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}
#endif

#endif

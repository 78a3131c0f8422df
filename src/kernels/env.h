/*
 * The RVATTN_* environment switches, parsed in one place: the code that reads a switch
 * and rva_env_check() (which says what is ignored or clipped) use the same functions,
 * so the check reports exactly what the readers do. Values are case-insensitive, '-'
 * and '_' alike; unset or empty means the default.
 */
#ifndef RVATTN_SRC_KERNELS_ENV_H
#define RVATTN_SRC_KERNELS_ENV_H

#include <stdbool.h>

/* RVATTN_SIMD=auto|avx512|avx2|scalar: the highest SIMD level the kernels may use. */
typedef enum rva__env_simd {
	RVA__ENV_SIMD_AUTO = 0, RVA__ENV_SIMD_AVX512, RVA__ENV_SIMD_AVX2, RVA__ENV_SIMD_SCALAR
} rva__env_simd;

/* RVATTN_ATTN_KERNEL=auto|fused|blis: the softmax tile loop (fused needs AVX-512). */
typedef enum rva__env_attn {
	RVA__ENV_ATTN_AUTO = 0, RVA__ENV_ATTN_FUSED, RVA__ENV_ATTN_BLIS
} rva__env_attn;

/* The switch's value; *bad (may be NULL) is set when the variable holds an unknown value,
 * which then counts as unset (the default). */
rva__env_simd rva__env_simd_get(bool *bad);
rva__env_attn rva__env_attn_get(bool *bad);
/* RVATTN_REFERENCE_GEMM=0|1 (also off/on, false/true, no/yes): the naive GEMM twin. */
bool rva__env_reference_gemm_get(bool *bad);

#endif

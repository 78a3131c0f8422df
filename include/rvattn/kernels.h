/*
 * rvattn — choice of the BLIS kernel set (sgemm micro-kernels) and the CPU features seen.
 *
 * Debian's BLIS 0.9.0 does not know Zen 4/Zen 5 and falls back to its slow `generic`
 * kernels there. rvattn therefore picks the BLIS context itself from the CPU features:
 * AVX-512F -> skx; AVX2+FMA -> zen3 on AMD, haswell on Intel; otherwise BLIS's own choice.
 * The environment variable RVATTN_BLIS_KERNELS=auto|skx|zen3|haswell|blis overrides
 * "auto"; an engine option (rva_engine_config.kernels) overrides both for that engine.
 */
#ifndef RVATTN_KERNELS_H
#define RVATTN_KERNELS_H

#include <stdbool.h>

#include "status.h"

RVA_BEGIN_DECLS

typedef enum rva_kernel_set {
	RVA_KERNELS_AUTO = 0, /* RVATTN_BLIS_KERNELS if set, else chosen by CPU features */
	RVA_KERNELS_SKX,      /* AVX-512 kernels (bli_cntx_init_skx) */
	RVA_KERNELS_ZEN3,     /* AVX2/FMA kernels tuned for AMD (bli_cntx_init_zen3) */
	RVA_KERNELS_HASWELL,  /* AVX2/FMA kernels (bli_cntx_init_haswell) */
	RVA_KERNELS_BLIS,     /* whatever BLIS's own detection picks */
	RVA_KERNELS_COUNT
} rva_kernel_set;

typedef struct rva_cpu_features {
	char vendor[13];      /* "AuthenticAMD", "GenuineIntel", ... */
	unsigned family, model;
	bool avx2, fma, avx512f, avx512bw, avx512vl;
	bool os_avx, os_avx512; /* the OS saves the YMM / ZMM state (XGETBV) */
	bool avx512dq;          /* last: it fills what was padding (the size stays 32) */
} rva_cpu_features;

/* Fills *out with the CPU features detected by cpuid. Errors: RVA_ENULL. */
rva_status rva_cpu_detect(rva_cpu_features *out);

/* Static lower-case name of a kernel set ("skx"); "unknown" when out of range. */
const char *rva_kernel_set_name(rva_kernel_set k);

/* Parses "auto", "skx", "zen3", "haswell", "blis" (case-insensitive).
 * Errors: RVA_ENULL; RVA_ENOTFOUND with a message listing the known names. */
rva_status rva_kernel_set_parse(const char *name, rva_kernel_set *out);

/*
 * Resolves `want` to a concrete kernel set that this CPU can run: AUTO becomes the
 * RVATTN_BLIS_KERNELS choice or the feature-based one. Never returns AUTO in *out.
 * Errors: RVA_ENOTFOUND when RVATTN_BLIS_KERNELS holds an unknown name;
 * RVA_EUNSUPPORTED when the set asked for needs instructions the CPU lacks
 * (skx without AVX-512, zen3/haswell without AVX2+FMA) — it is refused, never run.
 */
rva_status rva_kernels_resolve(rva_kernel_set want, rva_kernel_set *out);

/*
 * Makes `k` (resolved as above) the process default used by rva_compute() and by
 * engines created with RVA_KERNELS_AUTO. Called implicitly with AUTO on first use;
 * on an invalid RVATTN_BLIS_KERNELS value the implicit call falls back to the
 * feature-based choice and rva_kernels_current() reports why.
 * Errors: those of rva_kernels_resolve(); the default is unchanged then.
 */
rva_status rva_kernels_select(rva_kernel_set k);

/*
 * The process default kernel set and, in *note (may be NULL), a static or process-
 * lifetime string saying how it was chosen ("auto: AVX-512F", or the fallback reason).
 * The note is never rewritten: it stays valid and unchanged when another thread selects
 * another default afterwards (ask again for the new note).
 * Errors: RVA_ENULL when out is NULL.
 */
rva_status rva_kernels_current(rva_kernel_set *out, const char **note);

/*
 * Checks the environment switches rvattn reads, which never fail a call: a value they
 * cannot use is ignored or clipped. This says so. The switches (values case-insensitive;
 * unset or empty = the default):
 *   RVATTN_BLIS_KERNELS=auto|skx|zen3|haswell|blis  the BLIS kernel set (see above);
 *   RVATTN_SIMD=auto|avx512|avx2|scalar             the highest SIMD level of rvattn's
 *                                                    own kernels (never above the CPU's);
 *   RVATTN_ATTN_KERNEL=auto|fused|blis              the softmax tile loop (fused needs
 *                                                    the avx512 level);
 *   RVATTN_REFERENCE_GEMM=0|1 (off/on, false/true, no/yes)  the naive GEMM twin.
 * Returns RVA_OK when every switch is unset or used as given. Otherwise RVA_EINVAL, and
 * rva_last_error() holds one line naming each switch that is ignored (unknown value) or
 * clipped (asks for more than the CPU has), and what is used instead, separated by "; ".
 * The process keeps running with those fallbacks either way.
 */
rva_status rva_env_check(void);

RVA_END_DECLS
#endif

/* The RVATTN_* switches (see env.h) and rva_env_check(). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "kernels/env.h"
#include "kernels/vexp.h"
#include "rvattn/kernels.h"

/* Index of the variable's value in names[0, n); -1 when unset or empty, -2 unknown. */
static int choice(const char *var, const char *const *names, int n) {
	const char *v = getenv(var);
	if (!v || !*v)
		return -1;
	for (int i = 0; i < n; i++)
		if (rva__name_eq(v, names[i]))
			return i;
	return -2;
}

static const char *const simd_names[] = {"auto", "avx512", "avx2", "scalar"};
static const char *const attn_names[] = {"auto", "fused", "blis"};
static const char *const bool_names[] = {"0", "1", "off", "on", "false", "true", "no", "yes"};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

rva__env_simd rva__env_simd_get(bool *bad) {
	int c = choice("RVATTN_SIMD", simd_names, COUNT(simd_names));
	if (bad)
		*bad = c == -2;
	return c < 0 ? RVA__ENV_SIMD_AUTO : (rva__env_simd)c;
}

rva__env_attn rva__env_attn_get(bool *bad) {
	int c = choice("RVATTN_ATTN_KERNEL", attn_names, COUNT(attn_names));
	if (bad)
		*bad = c == -2;
	return c < 0 ? RVA__ENV_ATTN_AUTO : (rva__env_attn)c;
}

bool rva__env_reference_gemm_get(bool *bad) {
	int c = choice("RVATTN_REFERENCE_GEMM", bool_names, COUNT(bool_names));
	if (bad)
		*bad = c == -2;
	return c >= 0 && c % 2 == 1;
}

/* Appends one clause ("; " between clauses). */
static void clause(char *buf, size_t cap, const char *fmt, ...) RVA__PRINTF(3, 4);
static void clause(char *buf, size_t cap, const char *fmt, ...) {
	size_t used = strlen(buf);
	if (used && used + 3 < cap) {
		memcpy(buf + used, "; ", 3);
		used += 2;
	}
	if (used + 1 >= cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + used, cap - used, fmt, ap);
	va_end(ap);
}

rva_status rva_env_check(void) {
	char msg[1024] = "";
	rva_cpu_features f;
	rva_cpu_detect(&f);
	int cpu_level = (int)rva__simd_cpu_level(&f); /* 0 scalar, 1 avx2, 2 avx512 */
	static const char *const level_names[] = {"scalar", "avx2", "avx512"};

	bool bad;
	rva__env_simd s = rva__env_simd_get(&bad);
	int level = cpu_level;
	if (bad)
		clause(msg, sizeof msg, "RVATTN_SIMD='%.40s' is not one of auto, avx512, avx2, scalar: "
		       "ignored (auto: %s)", getenv("RVATTN_SIMD"), level_names[cpu_level]);
	else if (s != RVA__ENV_SIMD_AUTO) {
		int want = s == RVA__ENV_SIMD_AVX512 ? 2 : s == RVA__ENV_SIMD_AVX2 ? 1 : 0;
		if (want > cpu_level)
			clause(msg, sizeof msg, "RVATTN_SIMD=%s is above what this CPU has: using %s",
			       level_names[want], level_names[cpu_level]);
		level = want < cpu_level ? want : cpu_level;
	}

	rva__env_attn a = rva__env_attn_get(&bad);
	if (bad)
		clause(msg, sizeof msg, "RVATTN_ATTN_KERNEL='%.40s' is not one of auto, fused, blis: "
		       "ignored (auto: %s)", getenv("RVATTN_ATTN_KERNEL"), level == 2 ? "fused" : "blis");
	else if (a == RVA__ENV_ATTN_FUSED && level < 2)
		clause(msg, sizeof msg, "RVATTN_ATTN_KERNEL=fused needs the avx512 SIMD level, the "
		       "level in use is %s: using blis", level_names[level]);

	(void)rva__env_reference_gemm_get(&bad);
	if (bad)
		clause(msg, sizeof msg, "RVATTN_REFERENCE_GEMM='%.40s' is not one of 0, 1, off, on, "
		       "false, true, no, yes: ignored (off)", getenv("RVATTN_REFERENCE_GEMM"));

	const char *bk = getenv("RVATTN_BLIS_KERNELS");
	rva_kernel_set k;
	if (bk && *bk && rva_kernels_resolve(RVA_KERNELS_AUTO, &k) != RVA_OK) {
		char why[300];
		snprintf(why, sizeof why, "%s", rva_last_error());
		clause(msg, sizeof msg, "%s: the kernels are chosen by CPU features instead", why);
	}
	if (msg[0])
		return rva__fail(RVA_EINVAL, "%s", msg);
	return RVA_OK;
}

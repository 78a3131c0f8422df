/*
 * Choice of the BLIS kernel set: names, resolution by CPU features, the environment
 * override RVATTN_BLIS_KERNELS and the process default.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/internal.h"
#include "kernels/gemm.h"
#include "rvattn/kernels.h"

static const char *const set_names[RVA_KERNELS_COUNT] = {
	[RVA_KERNELS_AUTO] = "auto",   [RVA_KERNELS_SKX] = "skx",
	[RVA_KERNELS_ZEN3] = "zen3",   [RVA_KERNELS_HASWELL] = "haswell",
	[RVA_KERNELS_BLIS] = "blis",
};

const char *rva_kernel_set_name(rva_kernel_set k) {
	if ((unsigned)k >= RVA_KERNELS_COUNT)
		return "unknown";
	return set_names[k];
}

rva_status rva_kernel_set_parse(const char *name, rva_kernel_set *out) {
	if (!name || !out)
		return rva__fail(RVA_ENULL, "rva_kernel_set_parse: NULL argument");
	for (int k = 0; k < RVA_KERNELS_COUNT; k++)
		if (rva__name_eq(name, set_names[k])) {
			*out = (rva_kernel_set)k;
			return RVA_OK;
		}
	return rva__fail(RVA_ENOTFOUND,
	                 "unknown BLIS kernel set '%s' (known: auto, skx, zen3, haswell, blis)",
	                 name);
}

/* The feature-based choice; *why gets a static explanation. */
static rva_kernel_set by_features(const rva_cpu_features *f, const char **why) {
	if (f->avx512f) {
		*why = "auto: AVX-512F present";
		return RVA_KERNELS_SKX;
	}
	if (f->avx2 && f->fma) {
		bool amd = f->vendor[0] == 'A'; /* "AuthenticAMD" */
		*why = amd ? "auto: AVX2+FMA on AMD" : "auto: AVX2+FMA";
		return amd ? RVA_KERNELS_ZEN3 : RVA_KERNELS_HASWELL;
	}
	*why = "auto: no AVX2/AVX-512, BLIS's own detection";
	return RVA_KERNELS_BLIS;
}

static rva_status check_runnable(rva_kernel_set k, const rva_cpu_features *f) {
	switch (k) {
	case RVA_KERNELS_SKX:
		if (!f->avx512f)
			return rva__fail(RVA_EUNSUPPORTED,
			                 "BLIS kernel set 'skx' needs AVX-512F, which this CPU (%s) "
			                 "lacks", f->vendor);
		return RVA_OK;
	case RVA_KERNELS_ZEN3:
	case RVA_KERNELS_HASWELL:
		if (!(f->avx2 && f->fma))
			return rva__fail(RVA_EUNSUPPORTED,
			                 "BLIS kernel set '%s' needs AVX2 and FMA, which this CPU (%s) "
			                 "lacks", set_names[k], f->vendor);
		return RVA_OK;
	case RVA_KERNELS_BLIS:
		return RVA_OK;
	default:
		return rva__fail(RVA_EINVAL, "invalid BLIS kernel set value %d", (int)k);
	}
}

static rva_status resolve(rva_kernel_set want, rva_kernel_set *out, const char **why) {
	rva_cpu_features f;
	rva_cpu_detect(&f);
	if ((unsigned)want >= RVA_KERNELS_COUNT)
		return rva__fail(RVA_EINVAL, "invalid BLIS kernel set value %d", (int)want);
	*why = "explicit choice";
	if (want == RVA_KERNELS_AUTO) {
		const char *env = getenv("RVATTN_BLIS_KERNELS");
		if (env && *env) {
			rva_kernel_set e;
			rva_status st = rva_kernel_set_parse(env, &e);
			if (st != RVA_OK)
				return rva__fail(st,
				                 "RVATTN_BLIS_KERNELS='%s' is not a kernel set (known: auto, "
				                 "skx, zen3, haswell, blis)", env);
			want = e;
			*why = "RVATTN_BLIS_KERNELS";
		}
		if (want == RVA_KERNELS_AUTO)
			want = by_features(&f, why);
	}
	rva_status st = check_runnable(want, &f);
	if (st != RVA_OK)
		return st;
	*out = want;
	return RVA_OK;
}

rva_status rva_kernels_resolve(rva_kernel_set want, rva_kernel_set *out) {
	if (!out)
		return rva__fail(RVA_ENULL, "rva_kernels_resolve: out is NULL");
	const char *why;
	return resolve(want, out, &why);
}

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static bool default_set = false;
static rva_kernel_set default_kernels = RVA_KERNELS_BLIS;
static char default_note[256];

rva_status rva_kernels_select(rva_kernel_set k) {
	rva_kernel_set r = RVA_KERNELS_BLIS;
	const char *why;
	rva_status st = resolve(k, &r, &why);
	if (st != RVA_OK)
		return st;
	pthread_mutex_lock(&default_lock);
	default_kernels = r;
	snprintf(default_note, sizeof default_note, "%s", why);
	default_set = true;
	pthread_mutex_unlock(&default_lock);
	rva__gemm_default_changed();
	return RVA_OK;
}

/* First use: AUTO, falling back to the feature choice when the environment is bad. */
static void ensure_default(void) {
	pthread_mutex_lock(&default_lock);
	if (!default_set) {
		const char *why;
		rva_kernel_set r = RVA_KERNELS_BLIS;
		if (resolve(RVA_KERNELS_AUTO, &r, &why) == RVA_OK) {
			snprintf(default_note, sizeof default_note, "%s", why);
		} else {
			/* Keep the reason: it is printed by rvattn and the benchmarks. */
			char reason[200];
			snprintf(reason, sizeof reason, "%s", rva_last_error());
			rva_cpu_features f;
			rva_cpu_detect(&f);
			r = by_features(&f, &why);
			snprintf(default_note, sizeof default_note, "%s; ignored: %s", why, reason);
		}
		default_kernels = r;
		default_set = true;
	}
	pthread_mutex_unlock(&default_lock);
}

rva_status rva_kernels_current(rva_kernel_set *out, const char **note) {
	if (!out)
		return rva__fail(RVA_ENULL, "rva_kernels_current: out is NULL");
	ensure_default();
	pthread_mutex_lock(&default_lock);
	*out = default_kernels;
	if (note)
		*note = default_note;
	pthread_mutex_unlock(&default_lock);
	return RVA_OK;
}

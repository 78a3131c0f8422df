/*
 * The kernel choice, one module with one cache: kernel-set names, resolution by CPU
 * features and the RVATTN_BLIS_KERNELS override, the BLIS context of each set, and the
 * process default (its context and how it was chosen). The GEMM wrapper (gemm.c) asks
 * this module for the calling thread's context and never the other way round.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/internal.h"
#include "kernels/gemm.h"
#include "kernels/gemm_ctx.h"
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

/* ---- BLIS contexts: one per concrete kernel set, filled on first use --------------- */

/* Exported by the static archive, not declared by blis.h. */
void bli_cntx_init_skx(cntx_t *cntx);
void bli_cntx_init_zen3(cntx_t *cntx);
void bli_cntx_init_haswell(cntx_t *cntx);

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static rva__gemm_ctx contexts[RVA_KERNELS_COUNT];
static bool context_ready[RVA_KERNELS_COUNT];
static _Thread_local const rva__gemm_ctx *thread_ctx;

static void fill_context(rva_kernel_set k, rva__gemm_ctx *c) {
	c->set = k;
	switch (k) {
	case RVA_KERNELS_SKX:
		bli_cntx_init_skx(&c->storage);
		c->cntx = &c->storage;
		/* skx registers no small/unpacked kernels: the sup path would fall to the
		 * reference ones, so always pack (measured in bench/gemm_peak). */
		c->sup = false;
		break;
	case RVA_KERNELS_ZEN3:
		bli_cntx_init_zen3(&c->storage);
		c->cntx = &c->storage;
		c->sup = true;
		break;
	case RVA_KERNELS_HASWELL:
		bli_cntx_init_haswell(&c->storage);
		c->cntx = &c->storage;
		c->sup = true;
		break;
	default:
		c->cntx = bli_gks_query_cntx();
		c->sup = true;
		break;
	}
}

/* The context of an already resolved (runnable) kernel set, filled on first use; after
 * that, lock-free. */
static const rva__gemm_ctx *ctx_for(rva_kernel_set k) {
	if (!__atomic_load_n(&context_ready[k], __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&ctx_lock);
		if (!context_ready[k]) {
			bli_init();
			fill_context(k, &contexts[k]);
			__atomic_store_n(&context_ready[k], true, __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(&ctx_lock);
	}
	return &contexts[k];
}

rva_status rva__gemm_ctx_get(rva_kernel_set want, const rva__gemm_ctx **out) {
	rva_kernel_set k = RVA_KERNELS_BLIS;
	const char *why;
	rva_status st = resolve(want, &k, &why);
	if (st != RVA_OK)
		return st;
	*out = ctx_for(k);
	return RVA_OK;
}

void rva__gemm_ctx_use(const rva__gemm_ctx *ctx) { thread_ctx = ctx; }

rva_kernel_set rva__gemm_ctx_kernels(const rva__gemm_ctx *ctx) { return ctx->set; }

/* ---- the process default: the one cache --------------------------------------------
 *
 * default_ctx is the context of the default kernel set (NULL until first use) and
 * default_note says how it was chosen. Both change together under default_lock; the GEMM
 * hot path (rva__gemm_ctx_current) reads default_ctx alone, lock-free. A note is a static
 * string or fallback_note, which is written once, before the first default is published,
 * and never again: a note handed out by rva_kernels_current stays valid and unchanged for
 * the life of the process, whatever other threads select afterwards. */

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static const rva__gemm_ctx *default_ctx;
static const char *default_note;
static char fallback_note[256];

/* Under default_lock. */
static void publish_default(const rva__gemm_ctx *c, const char *note) {
	default_note = note;
	__atomic_store_n(&default_ctx, c, __ATOMIC_RELEASE);
}

rva_status rva_kernels_select(rva_kernel_set k) {
	rva_kernel_set r = RVA_KERNELS_BLIS;
	const char *why; /* static */
	rva_status st = resolve(k, &r, &why);
	if (st != RVA_OK)
		return st;
	const rva__gemm_ctx *c = ctx_for(r);
	pthread_mutex_lock(&default_lock);
	publish_default(c, why);
	pthread_mutex_unlock(&default_lock);
	return RVA_OK;
}

/* The default context; on first use AUTO, falling back to the feature choice (with the
 * reason in the note) when the environment is bad. */
static const rva__gemm_ctx *ensure_default(void) {
	const rva__gemm_ctx *c = __atomic_load_n(&default_ctx, __ATOMIC_ACQUIRE);
	if (c)
		return c;
	pthread_mutex_lock(&default_lock);
	if (!default_ctx) {
		const char *why;
		rva_kernel_set r = RVA_KERNELS_BLIS;
		const char *note;
		if (resolve(RVA_KERNELS_AUTO, &r, &why) == RVA_OK) {
			note = why;
		} else {
			/* Keep the reason: it is printed by rvattn and the benchmarks. */
			char reason[200];
			snprintf(reason, sizeof reason, "%s", rva_last_error());
			rva_cpu_features f;
			rva_cpu_detect(&f);
			r = by_features(&f, &why);
			snprintf(fallback_note, sizeof fallback_note, "%s; ignored: %s", why, reason);
			note = fallback_note;
		}
		publish_default(ctx_for(r), note);
	}
	c = default_ctx;
	pthread_mutex_unlock(&default_lock);
	return c;
}

const rva__gemm_ctx *rva__gemm_ctx_current(void) {
	return thread_ctx ? thread_ctx : ensure_default();
}

rva_status rva_kernels_current(rva_kernel_set *out, const char **note) {
	if (!out)
		return rva__fail(RVA_ENULL, "rva_kernels_current: out is NULL");
	ensure_default();
	pthread_mutex_lock(&default_lock);
	*out = default_ctx->set;
	if (note)
		*note = default_note;
	pthread_mutex_unlock(&default_lock);
	return RVA_OK;
}

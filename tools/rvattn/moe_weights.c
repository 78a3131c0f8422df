/* `--weights DIR`: MoE router and expert projection weights from .npy files (cli.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* Loads DIR/name into *a when the file exists. Returns 0 (absent: a->data stays NULL),
 * or prints the error and returns EXIT_RUNTIME. */
static int load_optional(const char *dir, const char *name, rva_npy_array *a, bool *found) {
	char path[4096];
	struct stat sb;
	int n = snprintf(path, sizeof path, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof path)
		return cli_error(EXIT_RUNTIME, "--weights: path %s/%s is too long", dir, name);
	if (stat(path, &sb) != 0)
		return EXIT_OK;
	*found = true;
	if (rva_npy_load(path, a) != RVA_OK)
		return cli_error(EXIT_RUNTIME, "--weights: %s", rva_last_error());
	for (size_t i = 0; i < a->count; i++)
		if (!isfinite(a->data[i]))
			return cli_error(EXIT_RUNTIME, "--weights: %s: element %zu is %g, not a finite "
			                 "number", path, i, (double)a->data[i]);
	return EXIT_OK;
}

/* Whether a has the shape given (ndim entries). */
static bool shaped(const rva_npy_array *a, size_t ndim, size_t d0, size_t d1, size_t d2) {
	size_t want[3] = {d0, d1, d2};
	if (a->ndim != ndim)
		return false;
	for (size_t i = 0; i < ndim; i++)
		if (a->shape[i] != want[i])
			return false;
	return true;
}

static void shape_text(const rva_npy_array *a, char *buf, size_t cap) {
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < a->ndim && off < cap; i++)
		off += (size_t)snprintf(buf + off, cap - off, "%s%zu", i ? ", " : "", a->shape[i]);
}

static int bad_shape(const char *dir, const char *name, const rva_npy_array *a,
                     const char *want) {
	char got[160];
	shape_text(a, got, sizeof got);
	return cli_error(EXIT_RUNTIME, "--weights: %s/%s has shape [%s], the configuration needs "
	                 "%s", dir, name, got, want);
}

/* Points list[0..n) at the n matrices of a stacked [n, rows, cols] array (or at the one
 * matrix of a 2-D array when n is 1). */
static void list_of(const rva_npy_array *a, size_t n, size_t per, const float **list) {
	for (size_t i = 0; i < n; i++)
		list[i] = a->data + i * per;
}

int moe_weights_load(const char *cmd, const char *dir, rva_config *c, moe_weights *h) {
	memset(h, 0, sizeof *h);
	if (c->mechanism != RVA_MECH_MOE)
		return cli_usage(cmd, "--weights applies to moe, the mechanism is %s",
		                 rva_mechanism_name(c->mechanism));
	size_t E = c->experts, dim = c->dim, heads = c->heads;
	size_t kvh = c->kv_heads ? c->kv_heads : heads;
	if (E == 0 || E > RVA_MOE_MAX_EXPERTS || heads == 0 || dim % heads != 0 || kvh == 0)
		return cli_usage(cmd, "--weights: invalid moe configuration (experts %zu, dim %zu, "
		                 "heads %zu)", E, dim, heads);
	size_t kvd = kvh * (dim / heads);
	char want[160];
	bool found = false;
	int rc;
	if ((rc = load_optional(dir, "router.npy", &h->router, &found)) ||
	    (rc = load_optional(dir, "wq.npy", &h->wq, &found)) ||
	    (rc = load_optional(dir, "wo.npy", &h->wo, &found)) ||
	    (rc = load_optional(dir, "wk.npy", &h->wk, &found)) ||
	    (rc = load_optional(dir, "wv.npy", &h->wv, &found)))
		goto fail;
	if (!found) {
		rc = cli_error(EXIT_RUNTIME, "--weights: %s holds none of router.npy, wq.npy, wo.npy, "
		               "wk.npy, wv.npy", dir);
		goto fail;
	}
	if (!(h->lists = calloc(4 * (size_t)E, sizeof *h->lists))) {
		rc = cli_error(EXIT_RUNTIME, "out of memory");
		goto fail;
	}
	if (h->router.data) {
		if (!shaped(&h->router, 2, E, dim, 0)) {
			snprintf(want, sizeof want, "[%zu, %zu] (experts, dim)", E, dim);
			rc = bad_shape(dir, "router.npy", &h->router, want);
			goto fail;
		}
		c->router_weights = h->router.data;
		c->router_stride = dim;
	}
	const char *pname[2] = {"wq.npy", "wo.npy"};
	rva_npy_array *pq[2] = {&h->wq, &h->wo};
	rva_matrix_list *lq[2] = {&c->expert_wq, &c->expert_wo};
	for (int i = 0; i < 2; i++) {
		if (!pq[i]->data)
			continue;
		if (!shaped(pq[i], 3, E, dim, dim)) {
			snprintf(want, sizeof want, "[%zu, %zu, %zu] (experts, dim, dim)", E, dim, dim);
			rc = bad_shape(dir, pname[i], pq[i], want);
			goto fail;
		}
		list_of(pq[i], E, dim * dim, h->lists + (size_t)i * E);
		*lq[i] = (rva_matrix_list){h->lists + (size_t)i * E, dim};
	}
	/* W_k and W_v: [kv_dim, kv_dim] shared, or [E, kv_dim, kv_dim] per expert (both the
	 * same kind when both are given). */
	bool per_expert = (h->wk.data && h->wk.ndim == 3) || (h->wv.data && h->wv.ndim == 3);
	const char *kname[2] = {"wk.npy", "wv.npy"};
	rva_npy_array *pk[2] = {&h->wk, &h->wv};
	rva_matrix_list *lk[2] = {&c->expert_wk, &c->expert_wv};
	for (int i = 0; i < 2; i++) {
		if (!pk[i]->data)
			continue;
		bool ok = per_expert ? shaped(pk[i], 3, E, kvd, kvd) : shaped(pk[i], 2, kvd, kvd, 0);
		if (!ok) {
			if (per_expert)
				snprintf(want, sizeof want, "[%zu, %zu, %zu] (experts, kv_dim, kv_dim), as "
				         "the other of wk/wv", E, kvd, kvd);
			else
				snprintf(want, sizeof want, "[%zu, %zu] (kv_dim, kv_dim) or [%zu, %zu, %zu]",
				         kvd, kvd, E, kvd, kvd);
			rc = bad_shape(dir, kname[i], pk[i], want);
			goto fail;
		}
		size_t n = per_expert ? E : 1;
		list_of(pk[i], n, kvd * kvd, h->lists + (size_t)(2 + i) * E);
		*lk[i] = (rva_matrix_list){h->lists + (size_t)(2 + i) * E, kvd};
	}
	if (per_expert)
		c->kv_projection = RVA_MOE_KV_PER_EXPERT;
	bool all = h->router.data && h->wq.data && h->wo.data && h->wk.data && h->wv.data;
	snprintf(h->note, sizeof h->note, "moe weights from %s:%s%s%s%s%s%s", dir,
	         h->router.data ? " router" : "", h->wq.data ? " wq" : "", h->wo.data ? " wo" : "",
	         h->wk.data ? " wk" : "", h->wv.data ? " wv" : "", all ? "" : " (the others seeded)");
	return EXIT_OK;
fail:
	moe_weights_free(h);
	return rc;
}

void moe_weights_free(moe_weights *h) {
	rva_npy_free(&h->router);
	rva_npy_free(&h->wq);
	rva_npy_free(&h->wo);
	rva_npy_free(&h->wk);
	rva_npy_free(&h->wv);
	free(h->lists);
	h->lists = NULL;
}

/* Topology loading and the placement planner (orders documented in topology.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "sched/cpuset.h"
#include "sched/topology.h"

__extension__ typedef unsigned __int128 rva__u128;

void rva__sched_plan_free(rva__sched_plan *p) {
	if (!p)
		return;
	rva__free(p->workers);
	rva__free(p->pools);
	rva__free(p->steal_storage);
	if (p->allowed)
		hwloc_bitmap_free(p->allowed);
	memset(p, 0, sizeof *p);
}

/* One candidate worker: a core (its first allowed PU) or a PU. */
typedef struct cand {
	unsigned domain;
	unsigned core_logical, pu_os, pu_logical;
} cand;

/* Index (logical order) of the first NUMA node whose cpuset holds PU os index `pu`. */
static unsigned domain_of(hwloc_topology_t topo, unsigned nnuma, unsigned pu) {
	for (unsigned d = 0; d < nnuma; d++) {
		hwloc_obj_t n = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, d);
		if (n && n->cpuset && hwloc_bitmap_isset(n->cpuset, pu))
			return d;
	}
	return 0;
}

/* Appends the NULL-terminated strings to dst (capacity cap), truncating. */
static void note_cat(char *dst, size_t cap, ...) {
	size_t used = strlen(dst);
	va_list ap;
	va_start(ap, cap);
	for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
		for (; *s && used + 1 < cap; s++)
			dst[used++] = *s;
	va_end(ap);
	dst[used] = '\0';
}

static rva_status no_bitmap(void) {
	return rva__fail(RVA_ENOMEM, "engine planner: hwloc cannot allocate a bitmap");
}

/* rva__sched_plan_make in steps, one per fixed order of topology.h. */

/* The allowed PUs into out->allowed: the binding (or the whole topology) that hwloc
 * allows, narrowed to the user's set when one is given; out->note says what of the
 * user's set was dropped. have (size 128) receives the allowed PUs before narrowing. */
static rva_status plan_allowed(hwloc_topology_t topo, hwloc_const_bitmap_t binding,
                               const char *cpus, rva__sched_plan *out, char *have) {
	out->allowed = hwloc_bitmap_dup(binding ? binding
	                                        : hwloc_topology_get_topology_cpuset(topo));
	if (!out->allowed)
		return no_bitmap();
	hwloc_bitmap_and(out->allowed, out->allowed, hwloc_topology_get_allowed_cpuset(topo));
	hwloc_bitmap_list_snprintf(have, 128, out->allowed);
	if (!cpus || !*cpus) {
		if (hwloc_bitmap_iszero(out->allowed))
			return rva__fail(RVA_ENOTFOUND, "the process may run on no PU of this topology");
		return RVA_OK;
	}
	hwloc_bitmap_t user = hwloc_bitmap_alloc(), denied = NULL;
	rva_status st = RVA_OK;
	char clipped[192];
	if (!user || !(denied = hwloc_bitmap_alloc())) {
		st = no_bitmap();
		goto out;
	}
	if ((st = rva__cpuset_parse_ex(topo, cpus, user, clipped, sizeof clipped)) != RVA_OK)
		goto out;
	/* PUs named and existing, but not allowed to the process (taskset, cgroup, MPI). */
	hwloc_bitmap_andnot(denied, user, out->allowed);
	hwloc_bitmap_and(denied, denied, hwloc_topology_get_topology_cpuset(topo));
	hwloc_bitmap_and(out->allowed, out->allowed, user);
	if (hwloc_bitmap_iszero(out->allowed)) {
		char named[128];
		hwloc_bitmap_list_snprintf(named, sizeof named, user);
		st = rva__fail(RVA_ENOTFOUND, "cpu set \"%.80s\" names PUs %s, none of which is "
		               "allowed (allowed PUs: %s)", cpus, named, have);
		goto out;
	}
	if (clipped[0] || !hwloc_bitmap_iszero(denied)) {
		char d[64] = "", used[64], spec[48];
		hwloc_bitmap_list_snprintf(d, sizeof d, denied);
		hwloc_bitmap_list_snprintf(used, sizeof used, out->allowed);
		snprintf(spec, sizeof spec, "%.40s%s", cpus, strlen(cpus) > 40 ? "..." : "");
		note_cat(out->note, sizeof out->note, "cpu set \"", spec, "\": ", clipped, NULL);
		if (!hwloc_bitmap_iszero(denied))
			note_cat(out->note, sizeof out->note, clipped[0] ? "; " : "",
			         hwloc_bitmap_weight(denied) == 1 ? "PU " : "PUs ", d,
			         hwloc_bitmap_weight(denied) == 1 ? " is" : " are",
			         " not allowed to this process", NULL);
		note_cat(out->note, sizeof out->note, "; using PUs ", used, NULL);
	}
out:
	if (denied)
		hwloc_bitmap_free(denied);
	if (user)
		hwloc_bitmap_free(user);
	return st;
}

/* The candidate workers into cands (room for every allowed PU), in PU logical order
 * (which is also core logical order): every allowed PU with per_pu, else the first
 * allowed PU of each core. count[d] receives the candidates of domain d; *nc their
 * number. */
static rva_status plan_candidates(hwloc_topology_t topo, hwloc_const_bitmap_t allowed,
                                  bool per_pu, unsigned nnuma, cand *cands, unsigned *count,
                                  unsigned *nc) {
	int ncore_i = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
	unsigned ncore = ncore_i > 0 ? (unsigned)ncore_i : 0;
	unsigned char *core_seen = rva__calloc(ncore ? ncore : 1, 1);
	if (!core_seen)
		return rva__fail(RVA_ENOMEM, "engine planner: cannot allocate %u core flags", ncore);
	*nc = 0;
	int npus_topo = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
	for (int i = 0; i < npus_topo; i++) {
		hwloc_obj_t pu = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PU, (unsigned)i);
		if (!pu || !hwloc_bitmap_isset(allowed, pu->os_index))
			continue;
		hwloc_obj_t core = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_CORE, pu);
		unsigned core_idx = core ? core->logical_index : pu->logical_index;
		if (!per_pu && core) {
			if (core_idx < ncore && core_seen[core_idx])
				continue;
			if (core_idx < ncore)
				core_seen[core_idx] = 1;
		}
		cand *c = &cands[(*nc)++];
		c->domain = domain_of(topo, nnuma, pu->os_index);
		c->core_logical = core_idx;
		c->pu_os = pu->os_index;
		c->pu_logical = pu->logical_index;
		count[c->domain]++;
	}
	rva__free(core_seen);
	return RVA_OK;
}

/* How many candidates each domain gives (taken[d]): round-robin over the domains,
 * candidate j of every domain that has one, j = 0, 1, ..., until `want`. */
static void plan_take(const unsigned *count, unsigned nnuma, unsigned want, unsigned *taken) {
	unsigned got = 0;
	for (unsigned j = 0; got < want; j++)
		for (unsigned d = 0; d < nnuma && got < want; d++)
			if (count[d] > j) {
				taken[d]++;
				got++;
			}
}

/* Pools (the domains with taken workers, in domain order) and their workers (numbered
 * pool by pool, in candidate order); allocates out->workers, out->pools and the stealing
 * storage. */
static rva_status plan_pools(hwloc_topology_t topo, unsigned nnuma, const cand *cands,
                             unsigned nc, const unsigned *taken, unsigned want,
                             rva__sched_plan *out) {
	unsigned np = 0;
	for (unsigned d = 0; d < nnuma; d++)
		np += taken[d] != 0;
	out->npools = np;
	out->nworkers = want;
	rva_status st;
	if ((st = rva__alloc_array((void **)&out->workers, want, sizeof *out->workers,
	                           "engine workers")) != RVA_OK ||
	    (st = rva__alloc_array((void **)&out->pools, np, sizeof *out->pools,
	                           "engine pools")) != RVA_OK ||
	    (st = rva__alloc_array((void **)&out->steal_storage, np > 1 ? np * (np - 1) : 1,
	                           sizeof *out->steal_storage, "engine steal order")) != RVA_OK)
		return st;
	unsigned w = 0, p = 0;
	for (unsigned d = 0; d < nnuma; d++) {
		if (!taken[d])
			continue;
		hwloc_obj_t numa = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, d);
		hwloc_obj_t pkg = numa ? hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, numa)
		                       : NULL;
		rva__sched_pool *pl = &out->pools[p];
		pl->numa_os = numa ? numa->os_index : 0;
		pl->numa_logical = d;
		pl->package = pkg ? (int)pkg->logical_index : -1;
		pl->first_worker = w;
		pl->nworkers = taken[d];
		unsigned k = 0;
		for (unsigned c = 0; c < nc && k < taken[d]; c++) {
			if (cands[c].domain != d)
				continue;
			out->workers[w++] = (rva__sched_worker){
				.pool = p, .numa_os = pl->numa_os, .core_logical = cands[c].core_logical,
				.pu_os = cands[c].pu_os, .pu_logical = cands[c].pu_logical};
			k++;
		}
		p++;
	}
	return RVA_OK;
}

/* Stealing order of every pool: same package first, then the others; ring order in each
 * group, starting after the pool itself. */
static void plan_steal_order(rva__sched_plan *out) {
	unsigned np = out->npools;
	for (unsigned p = 0; p < np; p++) {
		unsigned *order = out->steal_storage + (size_t)p * (np > 1 ? np - 1 : 0);
		unsigned k = 0;
		for (int pass = 0; pass < 2; pass++)
			for (unsigned off = 1; off < np; off++) {
				unsigned q = (p + off) % np;
				bool same = out->pools[p].package >= 0 &&
				            out->pools[q].package == out->pools[p].package;
				if (same == (pass == 0))
					order[k++] = q;
			}
		out->pools[p].steal = order;
	}
}

rva_status rva__sched_plan_make(hwloc_topology_t topo, hwloc_const_bitmap_t binding,
                                const char *cpus, bool per_pu, unsigned threads,
                                rva__sched_plan *out) {
	memset(out, 0, sizeof *out);
	cand *cands = NULL;
	unsigned *count = NULL;
	char have[128] = "";
	rva_status st = plan_allowed(topo, binding, cpus, out, have);
	if (st != RVA_OK)
		goto done;
	int nn = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
	unsigned nnuma = nn > 0 ? (unsigned)nn : 1;
	int npu_i = hwloc_bitmap_weight(out->allowed);
	unsigned npu = npu_i > 0 ? (unsigned)npu_i : 0;
	if ((st = rva__alloc_array((void **)&cands, npu ? npu : 1, sizeof *cands,
	                           "engine planner")) != RVA_OK ||
	    (st = rva__alloc_array((void **)&count, nnuma, 2 * sizeof *count,
	                           "engine planner")) != RVA_OK)
		goto done;
	unsigned *taken = count + nnuma;
	memset(count, 0, nnuma * 2 * sizeof *count);
	unsigned nc = 0;
	if ((st = plan_candidates(topo, out->allowed, per_pu, nnuma, cands, count, &nc)) != RVA_OK)
		goto done;
	out->available = nc;
	if (threads > nc) {
		st = rva__fail(RVA_EINVAL, "threads %u exceeds the %u allowed %s (PUs %s)", threads, nc,
		               per_pu ? "PUs" : "cores", have);
		goto done;
	}
	unsigned want = threads ? threads : nc;
	plan_take(count, nnuma, want, taken);
	if ((st = plan_pools(topo, nnuma, cands, nc, taken, want, out)) != RVA_OK)
		goto done;
	plan_steal_order(out);
done:
	if (st != RVA_OK)
		rva__sched_plan_free(out);
	rva__free(cands);
	rva__free(count);
	return st;
}

unsigned rva__sched_place(const rva__sched_plan *p, rva_numa_policy policy, size_t s,
                          size_t nseq, int mem_numa_os) {
	if (p->npools <= 1)
		return p->npools == 1 ? 0 : RVA__ANY_POOL;
	switch (policy) {
	case RVA_NUMA_SPREAD:
		return (unsigned)(s % p->npools);
	case RVA_NUMA_INTERLEAVE:
		return RVA__ANY_POOL;
	case RVA_NUMA_LOCAL:
	default:
		if (mem_numa_os >= 0)
			for (unsigned q = 0; q < p->npools; q++)
				if (p->pools[q].numa_os == (unsigned)mem_numa_os)
					return q;
		if (nseq == 0 || s >= nseq)
			return 0;
		return (unsigned)((rva__u128)s * p->npools / nseq);
	}
}

static void describe(char *desc, size_t n, const char *what, const char *val, bool real) {
	snprintf(desc, n, "%s: %s%s", what, val, real ? " (this system)" : "");
	if (strlen(desc) + 1 == n && n > 4)
		memcpy(desc + n - 4, "...", 4);
}

rva_status rva__sched_topology_load(const rva_engine_config *cfg, hwloc_topology_t *out,
                                    char *desc, size_t n) {
	*out = NULL;
	if (cfg->topology_synthetic && cfg->topology_xml)
		return rva__fail(RVA_EINVAL, "engine: topology_synthetic and topology_xml are both "
		                 "set; give one");
	hwloc_topology_t t;
	if (hwloc_topology_init(&t) < 0)
		return rva__fail(RVA_ENOMEM, "engine: hwloc_topology_init failed");
	if (cfg->assume_this_system &&
	    hwloc_topology_set_flags(t, HWLOC_TOPOLOGY_FLAG_IS_THISSYSTEM) < 0) {
		hwloc_topology_destroy(t);
		return rva__fail(RVA_ESYSTEM, "engine: hwloc refused the IS_THISSYSTEM flag");
	}
	if (cfg->topology_synthetic &&
	    hwloc_topology_set_synthetic(t, cfg->topology_synthetic) < 0) {
		hwloc_topology_destroy(t);
		return rva__fail(RVA_EINVAL, "engine: topology_synthetic \"%.100s\" is not a valid "
		                 "hwloc synthetic description", cfg->topology_synthetic);
	}
	if (cfg->topology_xml && hwloc_topology_set_xml(t, cfg->topology_xml) < 0) {
		int e = errno;
		hwloc_topology_destroy(t);
		return rva__fail(RVA_ESYSTEM, "engine: hwloc cannot use XML topology \"%.200s\": %s",
		                 cfg->topology_xml, strerror(e));
	}
	/* HWLOC_SYNTHETIC / HWLOC_XMLFILE: hwloc reads them itself, but falls back to this
	 * machine without a word when the description or file is bad. Load them explicitly
	 * so a bad one is an error, never a silent switch to the real machine. (A topology
	 * named in cfg takes precedence, as in hwloc.) */
	const char *env_xml = getenv("HWLOC_XMLFILE"), *env_syn = getenv("HWLOC_SYNTHETIC");
	if (!cfg->topology_synthetic && !cfg->topology_xml) {
		if (env_syn && *env_syn && env_xml && *env_xml) {
			hwloc_topology_destroy(t);
			return rva__fail(RVA_ESYSTEM, "engine: HWLOC_SYNTHETIC and HWLOC_XMLFILE are both "
			                 "set; unset one");
		}
		if (env_syn && *env_syn && hwloc_topology_set_synthetic(t, env_syn) < 0) {
			hwloc_topology_destroy(t);
			return rva__fail(RVA_ESYSTEM, "engine: HWLOC_SYNTHETIC=\"%.100s\" is not a valid "
			                 "hwloc synthetic description", env_syn);
		}
		if (env_xml && *env_xml && hwloc_topology_set_xml(t, env_xml) < 0) {
			int e = errno;
			hwloc_topology_destroy(t);
			return rva__fail(RVA_ESYSTEM, "engine: HWLOC_XMLFILE=\"%.200s\" cannot be loaded: %s",
			                 env_xml, strerror(e));
		}
	}
	if (hwloc_topology_load(t) < 0) {
		hwloc_topology_destroy(t);
		if (cfg->topology_xml)
			return rva__fail(RVA_ESYSTEM, "engine: hwloc cannot load XML topology \"%.200s\" "
			                 "(not a valid hwloc XML file?)", cfg->topology_xml);
		if (!cfg->topology_synthetic && env_xml && *env_xml)
			return rva__fail(RVA_ESYSTEM, "engine: HWLOC_XMLFILE=\"%.200s\" cannot be loaded "
			                 "(not a valid hwloc XML file?)", env_xml);
		return rva__fail(RVA_ESYSTEM, "engine: hwloc cannot load the topology");
	}
	bool real = hwloc_topology_is_thissystem(t);
	if (cfg->topology_synthetic)
		describe(desc, n, "synthetic", cfg->topology_synthetic, real);
	else if (cfg->topology_xml)
		describe(desc, n, "xml", cfg->topology_xml, real);
	else if (env_xml && *env_xml)
		describe(desc, n, "xml", env_xml, real);
	else if (env_syn && *env_syn)
		describe(desc, n, "synthetic", env_syn, real);
	else
		snprintf(desc, n, "%s", real ? "this system" : "not this system");
	*out = t;
	return RVA_OK;
}

hwloc_bitmap_t rva__sched_binding(hwloc_topology_t topo) {
	hwloc_bitmap_t set = hwloc_bitmap_alloc();
	if (!set) {
		no_bitmap();
		return NULL;
	}
	if (hwloc_topology_is_thissystem(topo) &&
	    (hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) == 0 ||
	     hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_THREAD) == 0) &&
	    !hwloc_bitmap_iszero(set))
		return set;
	if (hwloc_bitmap_copy(set, hwloc_topology_get_topology_cpuset(topo)) < 0) {
		hwloc_bitmap_free(set);
		no_bitmap();
		return NULL;
	}
	return set;
}

/*
 * The engine's placement planner: from an hwloc topology and the user's choices to
 * pools (one per NUMA domain with workers), workers (one per core or PU, each bound to
 * one PU), stealing order and sequence placement. The planner takes a loaded topology
 * and never loads one itself, so tests plan on synthetic and XML topologies.
 *
 * Fixed orders (documented in sched/README.md):
 * - domains: NUMA nodes in hwloc logical order; a core belongs to the first NUMA node
 *   (logical order) whose cpuset holds its first allowed PU;
 * - candidates of a domain: its cores (or PUs with per_pu) in logical order; a worker
 *   binds to the first allowed PU of its core;
 * - threads = N takes candidates round-robin over the domains: candidate 0 of every
 *   domain, then candidate 1 of every domain that has one, ... until N;
 * - pools are the domains that got a worker, in domain order; workers are numbered pool
 *   by pool, in candidate order, so pool p owns workers [first, first + count);
 * - a pool steals from the other pools of its package first, then from the rest, each
 *   group in ring order starting after itself (p+1, p+2, ... wrapping).
 */
#ifndef RVATTN_SCHED_TOPOLOGY_H
#define RVATTN_SCHED_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>

#include <hwloc.h>

#include "rvattn/engine.h"
#include "rvattn/status.h"

/* Pool index meaning "no preferred pool" (interleave policy, whole-job tasks). */
#define RVA__ANY_POOL 0xffffffffu

typedef struct rva__sched_worker {
	unsigned pool;            /* pool index */
	unsigned numa_os;         /* OS index of its NUMA node */
	unsigned core_logical;    /* logical index of its core (of the PU without cores) */
	unsigned pu_os;           /* the PU it binds to (OS index) */
	unsigned pu_logical;      /* the same PU's logical index */
} rva__sched_worker;

typedef struct rva__sched_pool {
	unsigned numa_os;         /* OS index of the NUMA node */
	unsigned numa_logical;    /* logical index of the NUMA node */
	int package;              /* logical index of its package, -1 if none */
	unsigned first_worker;    /* workers [first_worker, first_worker + nworkers) */
	unsigned nworkers;
	const unsigned *steal;    /* npools - 1 other pools, in stealing order */
} rva__sched_pool;

typedef struct rva__sched_plan {
	unsigned nworkers, npools;
	unsigned available;       /* candidates before the threads cap (cores or PUs) */
	rva__sched_worker *workers;
	rva__sched_pool *pools;
	unsigned *steal_storage;  /* npools * (npools - 1) entries */
	hwloc_bitmap_t allowed;   /* allowed PUs: binding (or whole topology) & user set */
	char note[256];           /* what of the user's cpu set was dropped, or "": ranges past
	                           * the topology, PUs the process may not use */
} rva__sched_plan;

/*
 * Plans the engine on a loaded topology. `binding` is the set of PUs the process may
 * use (NULL = the whole topology); cpus is the user's set (NULL or "" = everything);
 * threads 0 = every candidate. Errors: RVA_EINVAL / RVA_ENOTFOUND from the cpu-set
 * parser, RVA_ENOTFOUND when the set names no allowed PU, RVA_EINVAL when threads
 * exceeds the candidates, RVA_ENOMEM. On failure *out is left empty (safe to free).
 */
rva_status rva__sched_plan_make(hwloc_topology_t topo, hwloc_const_bitmap_t binding,
                                const char *cpus, bool per_pu, unsigned threads,
                                rva__sched_plan *out);

/* Frees what a plan owns (an empty or zeroed plan is fine). */
void rva__sched_plan_free(rva__sched_plan *p);

/*
 * Pool of sequence s (of nseq) under a policy. mem_numa_os is the OS index of the NUMA
 * node holding the sequence's queries (-1 unknown): RVA_NUMA_LOCAL uses the pool of that
 * node when it has one, else deals sequences in contiguous blocks (s * npools / nseq);
 * RVA_NUMA_SPREAD deals round-robin (s % npools); RVA_NUMA_INTERLEAVE returns
 * RVA__ANY_POOL (tasks go to any worker).
 */
unsigned rva__sched_place(const rva__sched_plan *p, rva_numa_policy policy, size_t s,
                          size_t nseq, int mem_numa_os);

/*
 * Loads a topology as the engine does: cfg's synthetic description or XML file, else
 * HWLOC_SYNTHETIC or HWLOC_XMLFILE from the environment (loaded explicitly: a bad one is
 * an error, where hwloc alone would fall back to the real machine silently), else the
 * real machine; with HWLOC_TOPOLOGY_FLAG_IS_THISSYSTEM when cfg->assume_this_system.
 * desc (size n) gets "this system", "synthetic: ..." or "xml: FILE". Errors: RVA_EINVAL
 * (both given in cfg; a bad synthetic description in cfg), RVA_ESYSTEM (both variables
 * set, a bad HWLOC_SYNTHETIC, hwloc cannot read or load the XML file, or failed),
 * RVA_ENOMEM.
 */
rva_status rva__sched_topology_load(const rva_engine_config *cfg, hwloc_topology_t *out,
                                    char *desc, size_t n);

/*
 * The PUs the process may run on: its current binding (hwloc_get_cpubind) when the
 * topology is this system, else the whole topology. Returns a new bitmap (caller frees
 * with hwloc_bitmap_free) or NULL with RVA_ENOMEM raised.
 */
hwloc_bitmap_t rva__sched_binding(hwloc_topology_t topo);

#endif

/*
 * Internals of rvattn_mpi (dist/): the distributed engine object and the helpers that
 * dist.c (creation, batch sharding) and dist_seq.c (decode split-KV, ring) share.
 */
#ifndef RVATTN_DIST_INTERNAL_H
#define RVATTN_DIST_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>

#include <mpi.h>

#include "attention/attention_internal.h"
#include "core/internal.h"
#include "graph/graph.h"
#include "rvattn/dist.h"
#include "sched/engine_internal.h"

struct rva_dist {
	MPI_Comm comm;              /* duplicate of the caller's communicator */
	MPI_Comm node;              /* the ranks sharing this node */
	int rank, size;
	rva_engine *engine;         /* this rank's engine */
	rva_dist_rank_info info;
	atomic_int cancel;          /* set by rva_dist_cancel, cleared when agreed */
	/* buffers kept across calls (grown, never shrunk), first-touched once, not per call:
	 * 0..2 the ring's tile states and K/V blocks, 3 the sequences a rank receives in
	 * batch sharding (page faults here cost ~0.25 GB/s, more than the transfer) */
	float *ring_buf[4];
	size_t ring_cap[4];         /* floats */
};

/* Buffer i (0..3) of d's cache with at least n floats, or NULL (RVA_ENOMEM). */
float *rva__dist_ring_buffer(rva_dist *d, int i, size_t n);

double rva__dist_now(void);
/* A short sleep between polls (50 us). */
/* Sleeps between polls of a running job; *round (start at 0) grows the nap while no MPI
 * request is pending. */
void rva__dist_nap(unsigned *round, bool pending);
/* RVA_ESYSTEM naming the MPI call and MPI's message. */
rva_status rva__dist_mpi_fail(int rc, const char *what);
/* Collective: whether any rank asked to cancel (the flags are then cleared). */
rva_status rva__dist_agree_cancel(rva_dist *d, bool *cancelled);
/* Collective: the ranks' attentions agree on everything that shapes the numbers. */
rva_status rva__dist_check_att(rva_dist *d, const rva_attention *att);
/* Collective: agree on the outcome (the failure of the lowest failing rank). */
rva_status rva__dist_agree(rva_dist *d, rva_status mine, size_t my_index, const char *detail);
/* Runs g on the local engine, polling reqs[0..nreq) meanwhile; a cancel request cancels
 * the job. Adds the job's time to *compute_s. */
rva_status rva__dist_run_graph(rva_dist *d, rva__graph *g, MPI_Request *reqs, int nreq,
                               double *compute_s);

#endif

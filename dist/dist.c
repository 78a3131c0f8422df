/*
 * The distributed engine (include/rvattn/dist.h): creation, rank info, agreement of
 * statuses and cancellation, batch sharding (from a root or already distributed).
 * Decode split-KV and ring attention are in dist/dist_seq.c.
 *
 * MPI is called only from the thread that calls the public functions (FUNNELED): local
 * jobs run on the engine's workers while this thread polls them and MPI requests.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dist/dist_internal.h"

/* ---- small helpers -------------------------------------------------------------------- */

double rva__dist_now(void) { return (double)rva__now_ns() * 1e-9; }

void rva__dist_nap(unsigned *round, bool pending) {
	/* Every wake-up runs on a core the rank's own worker may share (Open MPI binds the
	 * whole rank to it): a fixed 0.5 ms nap cost G2 9% of its compute. With MPI requests
	 * pending the nap stays at 0.5 ms (they progress only inside MPI calls); otherwise it
	 * grows from 50 us (a short job is seen to end soon) to 4 ms (a long one is left
	 * alone: ~250 wake-ups a second). */
	long ns = 500000;
	if (!pending) {
		ns = 50000L << (*round < 7 ? *round : 7);
		if (ns > 4000000L)
			ns = 4000000L;
		if (*round < 7)
			(*round)++;
	}
	struct timespec ts = {0, ns};
	nanosleep(&ts, NULL);
}

rva_status rva__dist_mpi_fail(int rc, const char *what) {
	char msg[MPI_MAX_ERROR_STRING];
	int len = 0;
	if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
		snprintf(msg, sizeof msg, "error %d", rc);
	return rva__fail(RVA_ESYSTEM, "rvattn_mpi: %s failed: %s", what, msg);
}

bool rva__dist_take_cancel(rva_dist *d) { return atomic_load(&d->cancel) != 0; }

/* Collective: any rank's cancel flag -> every rank returns true (and the flags clear). */
rva_status rva__dist_agree_cancel(rva_dist *d, bool *cancelled) {
	int mine = atomic_load(&d->cancel) ? 1 : 0, any = 0;
	int rc = MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, d->comm);
	if (rc != MPI_SUCCESS)
		return rva__dist_mpi_fail(rc, "MPI_Allreduce (cancel)");
	*cancelled = any != 0;
	if (any)
		atomic_store(&d->cancel, 0);
	return RVA_OK;
}

/* Collective: the ranks' attentions must agree on what shapes the numbers. */
rva_status rva__dist_check_att(rva_dist *d, const rva_attention *att) {
	if (!att)
		return rva__fail(RVA_ENULL, "rvattn_mpi: attention is NULL");
	const rva_config *c = &att->cfg;
	long long sig[9] = {(long long)c->mechanism, (long long)c->dim, (long long)c->heads,
	                    (long long)att->kv_heads, (long long)c->causal,
	                    (long long)c->block_size, (long long)c->query_block,
	                    (long long)c->kv_split, 0};
	memcpy(&sig[8], &att->scale, sizeof att->scale);
	long long lo[9], hi[9];
	int rc = MPI_Allreduce(sig, lo, 9, MPI_LONG_LONG, MPI_MIN, d->comm);
	if (rc == MPI_SUCCESS)
		rc = MPI_Allreduce(sig, hi, 9, MPI_LONG_LONG, MPI_MAX, d->comm);
	if (rc != MPI_SUCCESS)
		return rva__dist_mpi_fail(rc, "MPI_Allreduce (attention check)");
	for (int i = 0; i < 9; i++)
		if (lo[i] != hi[i])
			return rva__fail(RVA_EINVAL, "rvattn_mpi: the ranks' attentions differ (mechanism, "
			                 "dim, heads, kv_heads, causal, tiles or scale): build the same "
			                 "config on every rank");
	return RVA_OK;
}

/*
 * Collective agreement of an outcome: each rank offers its first failure (local index,
 * status, detail) or none. Every rank returns the failure of the lowest failing rank
 * with "rank R, sequence I: detail" recorded, RVA_OK when none failed.
 */
rva_status rva__dist_agree(rva_dist *d, rva_status mine, size_t my_index, const char *detail) {
	int in = mine != RVA_OK ? d->rank : d->size, who = 0;
	int rc = MPI_Allreduce(&in, &who, 1, MPI_INT, MPI_MIN, d->comm);
	if (rc != MPI_SUCCESS)
		return rva__dist_mpi_fail(rc, "MPI_Allreduce (outcome)");
	if (who >= d->size)
		return RVA_OK;
	struct {
		long long status, index;
		char detail[256];
	} msg = {0};
	if (who == d->rank) {
		msg.status = mine;
		msg.index = (long long)my_index;
		snprintf(msg.detail, sizeof msg.detail, "%s", detail ? detail : "");
	}
	rc = MPI_Bcast(&msg, (int)sizeof msg, MPI_BYTE, who, d->comm);
	if (rc != MPI_SUCCESS)
		return rva__dist_mpi_fail(rc, "MPI_Bcast (outcome)");
	msg.detail[sizeof msg.detail - 1] = '\0';
	return rva__fail((rva_status)msg.status, "rank %d, sequence %lld: %s", who, msg.index,
	                 msg.detail);
}

/* Waits for a running local job while polling reqs (may be NULL/0) so communication
 * progresses (MPI moves messages only inside MPI calls); a cancel request of d cancels the
 * job. Returns rva_job_wait's status. */
static rva_status wait_polling(rva_dist *d, rva_job *job, MPI_Request *reqs, int nreq) {
	bool done = false, cancelled = false;
	unsigned round = 0;
	int flag = 0;
	while (!done) {
		if (nreq > 0 && !flag &&
		    MPI_Testall(nreq, reqs, &flag, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
			flag = 1; /* the error surfaces at the caller's MPI_Waitall */
		if (!cancelled && atomic_load(&d->cancel)) {
			rva_job_cancel(job);
			cancelled = true;
		}
		rva_job_poll(job, &done);
		if (!done)
			rva__dist_nap(&round, nreq > 0 && !flag);
	}
	return rva_job_wait(job);
}

/* Runs a graph on the local engine while polling reqs (may be NULL/0) so communication
 * progresses; a cancel request cancels the job. Adds the job time to *compute_s. */
rva_status rva__dist_run_graph(rva_dist *d, rva__graph *g, MPI_Request *reqs, int nreq,
                               double *compute_s) {
	rva_job *job = NULL;
	double t0 = rva__dist_now();
	rva_status st = rva__engine_submit_graph(d->engine, g, NULL, NULL, &job);
	if (st != RVA_OK)
		return st;
	st = wait_polling(d, job, reqs, nreq);
	rva_job_destroy(job);
	*compute_s += rva__dist_now() - t0;
	return st;
}

/* ---- creation ------------------------------------------------------------------------ */

/* The process's allowed CPUs as a sorted list (sched_getaffinity). */
static int allowed_cpus(int *cpus, int cap) {
	cpu_set_t set;
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		return 0;
	int n = 0;
	for (int c = 0; c < CPU_SETSIZE && n < cap; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	return n;
}

static void list_string(const int *cpus, int n, char *out, size_t cap) {
	size_t used = 0;
	out[0] = '\0';
	for (int i = 0; i < n && used + 1 < cap;) {
		int j = i;
		while (j + 1 < n && cpus[j + 1] == cpus[j] + 1)
			j++;
		int w = j > i ? snprintf(out + used, cap - used, "%s%d-%d", used ? "," : "", cpus[i],
		                         cpus[j])
		              : snprintf(out + used, cap - used, "%s%d", used ? "," : "", cpus[i]);
		if (w < 0 || (size_t)w >= cap - used)
			break;
		used += (size_t)w;
		i = j + 1;
	}
}

#define MAXCPU 1024

rva_status rva_dist_create(MPI_Comm comm, const rva_engine_config *cfg, rva_dist **out) {
	if (!out)
		return rva__fail(RVA_ENULL, "rva_dist_create: out is NULL");
	*out = NULL;
	int inited = 0, provided = 0;
	MPI_Initialized(&inited);
	if (!inited)
		return rva__fail(RVA_ESTATE, "rva_dist_create: MPI is not initialised "
		                 "(call MPI_Init_thread with MPI_THREAD_FUNNELED first)");
	MPI_Query_thread(&provided);
	if (provided < MPI_THREAD_FUNNELED)
		return rva__fail(RVA_ESTATE, "rva_dist_create: MPI provides thread level %d, below "
		                 "MPI_THREAD_FUNNELED", provided);
	rva_dist *d = rva__calloc(1, sizeof *d);
	if (!d)
		return rva__fail(RVA_ENOMEM, "rva_dist_create: cannot allocate");
	d->comm = MPI_COMM_NULL;
	d->node = MPI_COMM_NULL;
	rva_status st = RVA_OK;
	int rc = MPI_Comm_dup(comm, &d->comm);
	if (rc != MPI_SUCCESS) {
		rva__free(d);
		return rva__dist_mpi_fail(rc, "MPI_Comm_dup");
	}
	MPI_Comm_rank(d->comm, &d->rank);
	MPI_Comm_size(d->comm, &d->size);
	rc = MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &d->node);
	if (rc != MPI_SUCCESS) {
		st = rva__dist_mpi_fail(rc, "MPI_Comm_split_type");
		goto agree;
	}
	MPI_Comm_rank(d->node, &d->info.node_rank);
	MPI_Comm_size(d->node, &d->info.node_size);
	d->info.rank = d->rank;
	d->info.size = d->size;
	int len = 0;
	char host[MPI_MAX_PROCESSOR_NAME];
	MPI_Get_processor_name(host, &len);
	host[sizeof d->info.host - 1] = '\0'; /* names are shorter; keep the copy bounded */
	memcpy(d->info.host, host, strlen(host) + 1);

	/* The node's ranks compare their allowed sets: identical sets on several ranks mean
	 * nobody bound them apart, and they would all run on every PU: split them. */
	static int cpus[MAXCPU];
	int n = allowed_cpus(cpus, MAXCPU);
	list_string(cpus, n, d->info.binding, sizeof d->info.binding);
	unsigned long long sig[2] = {0, 0}, lo[2], hi[2];
	for (int i = 0; i < n; i++)
		sig[0] = sig[0] * 1000003ull + (unsigned long long)cpus[i] + 1, sig[1] += cpus[i];
	rc = MPI_Allreduce(sig, lo, 2, MPI_UNSIGNED_LONG_LONG, MPI_MIN, d->node);
	if (rc == MPI_SUCCESS)
		rc = MPI_Allreduce(sig, hi, 2, MPI_UNSIGNED_LONG_LONG, MPI_MAX, d->node);
	if (rc != MPI_SUCCESS) {
		st = rva__dist_mpi_fail(rc, "MPI_Allreduce (node cpu sets)");
		goto agree;
	}
	rva_engine_config c = cfg ? *cfg : rva_engine_config_defaults();
	char share[128];
	int nr = d->info.node_size, r = d->info.node_rank;
	if (nr > 1 && n > 0 && lo[0] == hi[0] && lo[1] == hi[1] && (!c.cpus || !*c.cpus)) {
		/* contiguous shares: rank r gets PUs [r*n/nr, (r+1)*n/nr); at least one PU */
		int b = (int)((long long)r * n / nr), e = (int)((long long)(r + 1) * n / nr);
		if (e <= b) {
			b = r % n;
			e = b + 1;
		}
		d->info.overlap = nr > n; /* shares wrap around: some ranks share a PU */
		list_string(cpus + b, e - b, share, sizeof share);
		c.cpus = share;
		d->info.split = true;
		if (c.threads > (unsigned)(e - b))
			c.threads = 0; /* one per core of the share */
	}
	st = rva_engine_create(&c, &d->engine);
	if (st == RVA_OK)
		st = rva_engine_info_get(d->engine, &d->info.engine);
agree:;
	/* creation is agreed: one rank failing fails them all */
	char detail[256];
	snprintf(detail, sizeof detail, "%s", st != RVA_OK ? rva_last_error() : "");
	int bad_in = st != RVA_OK ? d->rank : d->size, bad = 0;
	rc = MPI_Allreduce(&bad_in, &bad, 1, MPI_INT, MPI_MIN, d->comm);
	if (rc != MPI_SUCCESS || bad < d->size) {
		rva_status agreed = st;
		if (rc != MPI_SUCCESS)
			agreed = rva__dist_mpi_fail(rc, "MPI_Allreduce (create)");
		else {
			long long s = st;
			MPI_Bcast(&s, 1, MPI_LONG_LONG, bad, d->comm);
			MPI_Bcast(detail, sizeof detail, MPI_CHAR, bad, d->comm);
			detail[sizeof detail - 1] = '\0';
			agreed = rva__fail((rva_status)s, "rva_dist_create: rank %d: %s", bad, detail);
		}
		rva_engine_destroy(d->engine);
		if (d->node != MPI_COMM_NULL)
			MPI_Comm_free(&d->node);
		MPI_Comm_free(&d->comm);
		rva__free(d);
		return agreed;
	}
	*out = d;
	return RVA_OK;
}

float *rva__dist_ring_buffer(rva_dist *d, int i, size_t n) {
	if (n <= d->ring_cap[i])
		return d->ring_buf[i];
	rva__free(d->ring_buf[i]);
	d->ring_buf[i] = NULL;
	d->ring_cap[i] = 0;
	if (rva__alloc_array((void **)&d->ring_buf[i], n, sizeof(float), "ring buffer") != RVA_OK)
		return NULL;
	d->ring_cap[i] = n;
	return d->ring_buf[i];
}

rva_status rva_dist_destroy(rva_dist *d) {
	if (!d)
		return RVA_OK;
	for (int i = 0; i < 4; i++)
		rva__free(d->ring_buf[i]);
	rva_engine_destroy(d->engine);
	if (d->node != MPI_COMM_NULL)
		MPI_Comm_free(&d->node);
	MPI_Comm_free(&d->comm);
	rva__free(d);
	return RVA_OK;
}

rva_status rva_dist_engine(const rva_dist *d, rva_engine **engine) {
	if (!d || !engine)
		return rva__fail(RVA_ENULL, "rva_dist_engine: %s is NULL", !d ? "d" : "engine");
	*engine = d->engine;
	return RVA_OK;
}

rva_status rva_dist_info(const rva_dist *d, rva_dist_rank_info *out) {
	if (!d || !out)
		return rva__fail(RVA_ENULL, "rva_dist_info: %s is NULL", !d ? "d" : "out");
	*out = d->info;
	return RVA_OK;
}

rva_status rva_dist_gather_info(rva_dist *d, int root, rva_dist_rank_info *all) {
	if (!d)
		return rva__fail(RVA_ENULL, "rva_dist_gather_info: d is NULL");
	if (root < 0 || root >= d->size)
		return rva__fail(RVA_ERANGE, "rva_dist_gather_info: root %d outside [0, %d)", root,
		                 d->size);
	int ok = d->rank != root || all, all_ok = 0;
	int rc = MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, d->comm);
	if (rc != MPI_SUCCESS)
		return rva__dist_mpi_fail(rc, "MPI_Allreduce (gather_info)");
	if (!all_ok)
		return rva__fail(RVA_ENULL, "rva_dist_gather_info: all is NULL at root %d", root);
	rc = MPI_Gather(&d->info, (int)sizeof d->info, MPI_BYTE, all, (int)sizeof d->info,
	                MPI_BYTE, root, d->comm);
	return rc == MPI_SUCCESS ? RVA_OK : rva__dist_mpi_fail(rc, "MPI_Gather (rank info)");
}

rva_status rva_dist_cancel(rva_dist *d) {
	if (!d)
		return RVA_ENULL; /* async-signal-safe: no message */
	atomic_store(&d->cancel, 1);
	return RVA_OK;
}

/* ---- batch sharding ------------------------------------------------------------------- */

static double seq_cost(const rva_attention *att, size_t nq, size_t nk) {
	rva_seq s = {.nq = nq, .nk = nk};
	rva_batch b = {.count = 1, .seqs = &s};
	double f = 0.0;
	if (rva_attention_flops(att, &b, &f) != RVA_OK)
		f = (double)nq * (double)nk;
	return f;
}

typedef struct lpt_item {
	double cost;
	size_t index;
} lpt_item;

static int lpt_cmp(const void *a, const void *b) {
	const lpt_item *x = a, *y = b;
	if (x->cost != y->cost)
		return x->cost > y->cost ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

static rva_status assign_shapes(int nranks, const rva_attention *att, size_t count,
                                const size_t *nq, const size_t *nk, int *owner) {
	lpt_item *items = NULL;
	double *load = NULL;
	rva_status st;
	if ((st = rva__alloc_array((void **)&items, count ? count : 1, sizeof *items,
	                           "LPT items")) != RVA_OK)
		return st;
	if ((st = rva__alloc_array((void **)&load, (size_t)nranks, sizeof *load, "LPT loads")) !=
	    RVA_OK) {
		rva__free(items);
		return st;
	}
	for (size_t i = 0; i < count; i++)
		items[i] = (lpt_item){seq_cost(att, nq[i], nk[i]), i};
	qsort(items, count, sizeof *items, lpt_cmp);
	for (int r = 0; r < nranks; r++)
		load[r] = 0.0;
	for (size_t i = 0; i < count; i++) {
		int best = 0;
		for (int r = 1; r < nranks; r++)
			if (load[r] < load[best])
				best = r;
		owner[items[i].index] = best;
		load[best] += items[i].cost;
	}
	rva__free(items);
	rva__free(load);
	return RVA_OK;
}

rva_status rva_dist_assign(int nranks, const rva_attention *att, const rva_batch *batch,
                           int *owner) {
	if (!att || !batch || !owner || (batch->count && !batch->seqs))
		return rva__fail(RVA_ENULL, "rva_dist_assign: %s is NULL",
		                 !att ? "att" : !batch ? "batch" : !owner ? "owner" : "batch->seqs");
	if (nranks < 1)
		return rva__fail(RVA_ERANGE, "rva_dist_assign: %d ranks (need at least 1)", nranks);
	size_t n = batch->count;
	size_t *nq = NULL, *nk = NULL;
	rva_status st;
	if ((st = rva__alloc_array((void **)&nq, n ? 2 * n : 1, sizeof *nq, "shapes")) != RVA_OK)
		return st;
	nk = nq + n;
	for (size_t i = 0; i < n; i++) {
		nq[i] = batch->seqs[i].nq;
		nk[i] = batch->seqs[i].nk;
	}
	st = assign_shapes(nranks, att, n, nq, nk, owner);
	rva__free(nq);
	return st;
}

/* A row-strided matrix as an MPI datatype: rows x width floats, stride floats apart. */
static int matrix_type(size_t rows, size_t width, size_t stride, MPI_Datatype *t) {
	int rc = MPI_Type_create_hvector((int)rows, (int)width, (MPI_Aint)(stride * sizeof(float)),
	                                 MPI_FLOAT, t);
	if (rc == MPI_SUCCESS)
		rc = MPI_Type_commit(t);
	return rc;
}

/* Per-sequence metadata broadcast by the root. */
typedef struct seq_meta {
	unsigned long long nq, nk, has_mask;
	long long status;
} seq_meta;

enum { TAG_Q = 11, TAG_K, TAG_V, TAG_M, TAG_O };

/* Sends (root) or receives (owner) one matrix; records the request. */
static int post(bool send, void *buf, size_t rows, size_t width, size_t stride, int peer,
                int tag, MPI_Comm comm, MPI_Request *req, double *bytes) {
	if (rows == 0) {
		*req = MPI_REQUEST_NULL;
		return MPI_SUCCESS;
	}
	MPI_Datatype t;
	int rc = matrix_type(rows, width, stride, &t);
	if (rc != MPI_SUCCESS)
		return rc;
	rc = send ? MPI_Isend(buf, 1, t, peer, tag, comm, req)
	          : MPI_Irecv(buf, 1, t, peer, tag, comm, req);
	MPI_Type_free(&t);
	*bytes += (double)rows * (double)width * sizeof(float);
	return rc;
}

/* Fills stats from a local job's view and the timings. */
static void stats_fill(rva_dist_stats *stats, double t0, double compute, double flops,
                       double sent, double recvd, size_t nloc) {
	if (!stats)
		return;
	double wall = rva__dist_now() - t0;
	*stats = (rva_dist_stats){.wall_s = wall, .compute_s = compute,
	                          .comm_wait_s = wall > compute ? wall - compute : 0.0,
	                          .flops = flops, .bytes_sent = sent, .bytes_received = recvd,
	                          .local_sequences = nloc};
}

/* Runs a local batch on the engine, polling for cancellation; per-sequence statuses into
 * st[] and the first failure's detail into detail. */
static rva_status run_local_job(rva_dist *d, const rva_attention *att, const rva_batch *b,
                                const rva_runtime *rt, rva_status *st, size_t *first_bad,
                                char *detail, size_t detail_cap, double *compute,
                                double *flops, MPI_Request *reqs, int nreq) {
	*first_bad = SIZE_MAX;
	detail[0] = '\0';
	if (b->count == 0)
		return RVA_OK;
	double t0 = rva__dist_now();
	rva_job *job = NULL;
	rva_status s = rva_engine_submit(d->engine, att, b, rt, &job);
	if (s != RVA_OK) {
		for (size_t i = 0; i < b->count; i++)
			st[i] = s;
		*first_bad = 0;
		snprintf(detail, detail_cap, "%s", rva_last_error());
		*compute += rva__dist_now() - t0;
		return s;
	}
	rva_status overall = wait_polling(d, job, reqs, nreq);
	for (size_t i = 0; i < b->count; i++) {
		const char *det = NULL;
		rva_job_seq_status(job, i, &st[i], &det);
		if (st[i] != RVA_OK && *first_bad == SIZE_MAX) {
			*first_bad = i;
			snprintf(detail, detail_cap, "%s", det ? det : rva_strerror(st[i]));
		}
	}
	rva_job_stats js;
	if (rva_job_stats_get(job, &js) == RVA_OK)
		*flops += js.flops;
	rva_job_destroy(job);
	*compute += rva__dist_now() - t0;
	return overall;
}

rva_status rva_dist_run_local(rva_dist *d, const rva_attention *att, const rva_batch *local,
                              const rva_runtime *rt, rva_status *seq_status,
                              rva_dist_stats *stats) {
	if (!d)
		return rva__fail(RVA_ENULL, "rva_dist_run_local: d is NULL");
	double t0 = rva__dist_now(), compute = 0.0, flops = 0.0;
	/* NULL arguments are a local fault: agreed like a failing sequence */
	rva_status st = rva__dist_check_att(d, att);
	if (st == RVA_ESYSTEM || st == RVA_EINVAL || st == RVA_ENULL)
		return st; /* the check itself is collective: every rank saw the same outcome */
	bool bad_args = !local || (local->count && !local->seqs);
	rva_status mine = bad_args ? rva__fail(RVA_ENULL, "local batch%s is NULL",
	                                       local ? "->seqs" : "")
	                           : RVA_OK;
	size_t bad_index = 0;
	char detail[256];
	snprintf(detail, sizeof detail, "%s", bad_args ? rva_last_error() : "");
	bool cancelled;
	if ((st = rva__dist_agree_cancel(d, &cancelled)) != RVA_OK)
		return st;
	if (cancelled)
		return rva__fail(RVA_ECANCELLED, "rvattn_mpi: cancelled before computing");
	size_t n = bad_args ? 0 : local->count;
	rva_status *sts = NULL;
	if (n && rva__alloc_array((void **)&sts, n, sizeof *sts, "statuses") != RVA_OK) {
		mine = RVA_ENOMEM;
		snprintf(detail, sizeof detail, "%s", rva_last_error());
		n = 0;
	}
	if (n) {
		size_t first_bad;
		run_local_job(d, att, local, rt, sts, &first_bad, detail, sizeof detail, &compute,
		              &flops, NULL, 0);
		if (first_bad != SIZE_MAX) {
			mine = sts[first_bad];
			bad_index = first_bad;
		}
		if (seq_status)
			memcpy(seq_status, sts, n * sizeof *sts);
		rva__free(sts);
	}
	if ((st = rva__dist_agree_cancel(d, &cancelled)) != RVA_OK)
		return st;
	if (cancelled)
		return rva__fail(RVA_ECANCELLED, "rvattn_mpi: cancelled while computing");
	st = rva__dist_agree(d, mine, bad_index, detail);
	stats_fill(stats, t0, compute, flops, 0.0, 0.0, n);
	return st;
}

rva_status rva_dist_run_root(rva_dist *d, const rva_attention *att, const rva_batch *batch,
                             int root, const rva_runtime *rt, rva_status *seq_status,
                             rva_dist_stats *stats) {
	if (!d)
		return rva__fail(RVA_ENULL, "rva_dist_run_root: d is NULL");
	if (root < 0 || root >= d->size)
		return rva__fail(RVA_ERANGE, "rva_dist_run_root: root %d outside [0, %d)", root,
		                 d->size);
	double t0 = rva__dist_now(), compute = 0.0, flops = 0.0, sent = 0.0, recvd = 0.0;
	rva_status st = rva__dist_check_att(d, att);
	if (st != RVA_OK)
		return st;
	bool is_root = d->rank == root;
	int rc;
	/* 1. the root validates and broadcasts the shapes (count = SIZE_MAX: bad arguments) */
	unsigned long long count = 0;
	char detail[256] = "";
	if (is_root) {
		if (!batch || (batch->count && !batch->seqs) || (batch->count && !seq_status)) {
			rva__fail(RVA_ENULL, "rva_dist_run_root: %s is NULL at the root",
			          !batch ? "batch" : !seq_status ? "seq_status" : "batch->seqs");
			snprintf(detail, sizeof detail, "%s", rva_last_error());
			count = ULLONG_MAX;
		} else {
			count = batch->count;
		}
	}
	if ((rc = MPI_Bcast(&count, 1, MPI_UNSIGNED_LONG_LONG, root, d->comm)) != MPI_SUCCESS)
		return rva__dist_mpi_fail(rc, "MPI_Bcast (count)");
	if (count == ULLONG_MAX) {
		if ((rc = MPI_Bcast(detail, sizeof detail, MPI_CHAR, root, d->comm)) != MPI_SUCCESS)
			return rva__dist_mpi_fail(rc, "MPI_Bcast (detail)");
		detail[sizeof detail - 1] = '\0';
		return rva__fail(RVA_ENULL, "rank %d: %s", root, detail);
	}
	size_t n = (size_t)count;
	seq_meta *meta = NULL;
	int *owner = NULL;
	size_t *shape = NULL, *lglob = NULL, *offs = NULL;
	rva_seq *lseq = NULL;
	float **bufs = NULL;
	long long *stv = NULL, *stv_all = NULL;
	MPI_Request *reqs = NULL;
	rva_status *lst = NULL;
	size_t nloc = 0, nreq = 0, first_invalid = SIZE_MAX, first_bad = SIZE_MAX;
	bool cancelled = false;
	rva_status fail = RVA_OK;
	char vdetail[256] = "";
	/* the bookkeeping arrays; their allocation is agreed before any other collective */
	size_t n1 = n ? n : 1;
	int ok = rva__alloc_array((void **)&meta, n1, sizeof *meta, "metadata") == RVA_OK &&
	         rva__alloc_array((void **)&owner, n1, sizeof *owner, "owners") == RVA_OK &&
	         rva__alloc_array((void **)&shape, 2 * n1, sizeof *shape, "shapes") == RVA_OK &&
	         rva__alloc_array((void **)&lglob, n1, sizeof *lglob, "local") == RVA_OK &&
	         rva__alloc_array((void **)&offs, n1, sizeof *offs, "offsets") == RVA_OK &&
	         rva__alloc_array((void **)&lseq, n1, sizeof *lseq, "local") == RVA_OK &&
	         rva__alloc_array((void **)&lst, n1, sizeof *lst, "local") == RVA_OK &&
	         rva__alloc_array((void **)&bufs, n1, sizeof *bufs, "buffers") == RVA_OK &&
	         rva__alloc_array((void **)&stv, n + 1, sizeof *stv, "statuses") == RVA_OK &&
	         rva__alloc_array((void **)&stv_all, n + 1, sizeof *stv_all, "statuses") == RVA_OK &&
	         rva__alloc_array((void **)&reqs, 5 * n1, sizeof *reqs, "requests") == RVA_OK;
	int all_ok = 0;
	if ((rc = MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, d->comm)) != MPI_SUCCESS) {
		fail = rva__dist_mpi_fail(rc, "MPI_Allreduce (allocation)");
		goto out_abort;
	}
	if (!all_ok) {
		fail = rva__fail(RVA_ENOMEM, "rvattn_mpi: a rank cannot allocate the bookkeeping of "
		                 "%zu sequences", n);
		goto out_abort;
	}
	for (size_t i = 0; i < n; i++)
		bufs[i] = NULL;
	if (is_root)
		for (size_t i = 0; i < n; i++) {
			rva_seq ns;
			const rva_seq *s = &ns;
			rva__normalise_seq(att, &batch->seqs[i], &ns);
			rva_status v = rva__validate_seq(att, s, i);
			if (v == RVA_OK && att->v_head_dim != att->head_dim)
				v = rva__fail(RVA_EINVAL, "sequence %zu: v_head_dim %zu != head_dim %zu is "
				              "not supported by rvattn_mpi", i, att->v_head_dim,
				              att->head_dim);
			if (v == RVA_OK && (s->bias || s->mask))
				v = rva__fail(RVA_EINVAL, "sequence %zu: rva_seq.%s is not supported by "
				              "rvattn_mpi (score matrices are not distributed; config "
				              "modifiers are)", i, s->bias ? "bias" : "mask");
			if (v == RVA_OK && (s->nq > INT_MAX || s->nk > INT_MAX || att->cfg.dim > INT_MAX))
				v = rva__fail(RVA_EOVERFLOW, "sequence %zu: %zu query rows / %zu key rows "
				              "exceed the MPI count limit (INT_MAX)", i, s->nq, s->nk);
			/* The shipped descriptor is rows of q, k, v (and the key mask) only. */
			const rva_seq *raw = &batch->seqs[i];
			if (v == RVA_OK && (raw->lse || raw->q_pos || raw->k_pos || raw->q_head_stride ||
			                    raw->k_head_stride || raw->v_head_stride ||
			                    raw->out_head_stride))
				v = rva__fail(RVA_EINVAL, "sequence %zu: batch sharding does not carry "
				              "rva_seq.lse, q_pos/k_pos or head strides (rva_dist_decode and "
				              "rva_dist_ring write lse)", i);
			seq_status[i] = v;
			if (v != RVA_OK && first_invalid == SIZE_MAX) {
				first_invalid = i;
				snprintf(vdetail, sizeof vdetail, "%s", rva_last_error());
			}
			meta[i] = (seq_meta){s->nq, s->nk, s->key_mask != NULL, v};
		}
	if ((rc = MPI_Bcast(meta, (int)(n * sizeof *meta), MPI_BYTE, root, d->comm)) !=
	    MPI_SUCCESS) {
		fail = rva__dist_mpi_fail(rc, "MPI_Bcast (metadata)");
		goto out;
	}
	/* 2. the same LPT assignment on every rank; invalid sequences stay at the root */
	for (size_t i = 0; i < n; i++) {
		shape[i] = (size_t)meta[i].nq;
		shape[n + i] = (size_t)meta[i].nk;
	}
	bool assign_failed = assign_shapes(d->size, att, n, shape, shape + n, owner) != RVA_OK;
	for (size_t i = 0; i < n; i++) {
		if (assign_failed || meta[i].status != RVA_OK)
			owner[i] = root;
		nloc += owner[i] == d->rank && meta[i].status == RVA_OK;
	}
	/* 3. owners allocate receive buffers (packed); failures become statuses, agreed
	 *    (with the cancel flag) before any data moves */
	size_t dim = att->cfg.dim, kvd = att->kv_dim;
	/* offsets of the received sequences in one cached buffer */
	size_t all = 0;
	bool all_fit = true;
	for (size_t i = 0; i < n; i++) {
		stv[i] = 0;
		if (is_root || owner[i] != d->rank || meta[i].status != RVA_OK)
			continue;
		size_t nq = (size_t)meta[i].nq, nk = (size_t)meta[i].nk, fl;
		size_t tot = 0;
		bool fits = rva__mul_ok(nq, dim, &fl) && rva__add_ok(tot, 2 * fl, &tot) &&
		          rva__mul_ok(nk, kvd, &fl) && rva__add_ok(tot, 2 * fl, &tot) &&
		          rva__add_ok(tot, nk / sizeof(float) + 1, &tot) &&
		          rva__add_ok(all, tot, &tot);
		if (!fits) {
			stv[i] = RVA_EOVERFLOW;
			all_fit = false;
			continue;
		}
		offs[i] = all;
		all = tot;
	}
	float *base = all && all_fit ? rva__dist_ring_buffer(d, 3, all) : NULL;
	for (size_t i = 0; i < n; i++) {
		if (is_root || owner[i] != d->rank || meta[i].status != RVA_OK || stv[i])
			continue;
		if (base)
			bufs[i] = base + offs[i];
		else {
			bufs[i] = NULL;
			stv[i] = all_fit ? RVA_ENOMEM : RVA_EOVERFLOW;
		}
	}
	stv[n] = assign_failed ? 2 : atomic_load(&d->cancel) ? 1 : 0;
	if ((rc = MPI_Allreduce(stv, stv_all, (int)n + 1, MPI_LONG_LONG, MPI_MAX, d->comm)) !=
	    MPI_SUCCESS) {
		fail = rva__dist_mpi_fail(rc, "MPI_Allreduce (allocation)");
		goto out;
	}
	if (stv_all[n] == 2) {
		fail = rva__fail(RVA_ENOMEM, "rvattn_mpi: a rank cannot allocate the assignment");
		goto out;
	}
	if (stv_all[n]) {
		cancelled = true;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (meta[i].status == RVA_OK && stv_all[i] != 0)
			meta[i].status = stv_all[i];
	/* 4. scatter the inputs (any strides at the root, packed at the owners) */
	for (size_t i = 0; i < n; i++) {
		if (meta[i].status != RVA_OK || owner[i] == root)
			continue;
		size_t nq = (size_t)meta[i].nq, nk = (size_t)meta[i].nk;
		if (is_root) {
			rva_seq s;
			rva__normalise_seq(att, &batch->seqs[i], &s);
			int p = owner[i];
			if ((rc = post(true, (void *)s.q, nq, dim, s.q_stride, p, TAG_Q, d->comm,
			               &reqs[nreq++], &sent)) != MPI_SUCCESS ||
			    (rc = post(true, (void *)s.k, nk, kvd, s.k_stride, p, TAG_K, d->comm,
			               &reqs[nreq++], &sent)) != MPI_SUCCESS ||
			    (rc = post(true, (void *)s.v, nk, kvd, s.v_stride, p, TAG_V, d->comm,
			               &reqs[nreq++], &sent)) != MPI_SUCCESS ||
			    (s.key_mask && (rc = MPI_Isend(s.key_mask, (int)nk, MPI_BYTE, p, TAG_M,
			                                   d->comm, &reqs[nreq++])) != MPI_SUCCESS)) {
				fail = rva__dist_mpi_fail(rc, "MPI_Isend (inputs)");
				goto out;
			}
		} else if (owner[i] == d->rank) {
			float *q = bufs[i], *k = q + 2 * nq * dim, *v = k + nk * kvd;
			if ((rc = post(false, q, nq, dim, dim, root, TAG_Q, d->comm, &reqs[nreq++],
			               &recvd)) != MPI_SUCCESS ||
			    (rc = post(false, k, nk, kvd, kvd, root, TAG_K, d->comm, &reqs[nreq++],
			               &recvd)) != MPI_SUCCESS ||
			    (rc = post(false, v, nk, kvd, kvd, root, TAG_V, d->comm, &reqs[nreq++],
			               &recvd)) != MPI_SUCCESS ||
			    (meta[i].has_mask &&
			     (rc = MPI_Irecv(v + nk * kvd, (int)nk, MPI_BYTE, root, TAG_M, d->comm,
			                     &reqs[nreq++])) != MPI_SUCCESS)) {
				fail = rva__dist_mpi_fail(rc, "MPI_Irecv (inputs)");
				goto out;
			}
		}
	}
	size_t li = 0;
	for (size_t i = 0; i < n; i++) {
		if (owner[i] != d->rank || meta[i].status != RVA_OK)
			continue;
		lglob[li] = i;
		if (is_root) {
			lseq[li++] = batch->seqs[i];
			continue;
		}
		size_t nq = (size_t)meta[i].nq, nk = (size_t)meta[i].nk;
		float *q = bufs[i], *o = q + nq * dim, *k = o + nq * dim, *v = k + nk * kvd;
		lseq[li++] = (rva_seq){.nq = nq, .nk = nk, .q = q, .q_stride = dim, .k = k,
		                       .k_stride = kvd, .v = v, .v_stride = kvd, .out = o,
		                       .out_stride = dim,
		                       .key_mask = meta[i].has_mask ? (const uint8_t *)(v + nk * kvd)
		                                                    : NULL};
	}
	/* The scatter completes before anyone computes: MPI moves large messages only inside
	 * MPI calls, and a root polling between its own tiles starved the owners (G2 over
	 * 2 ranks ran 2-3x slower). */
	if (nreq) {
		if ((rc = MPI_Waitall((int)nreq, reqs, MPI_STATUSES_IGNORE)) != MPI_SUCCESS) {
			fail = rva__dist_mpi_fail(rc, "MPI_Waitall (inputs)");
			goto out;
		}
		nreq = 0;
	}
	rva_batch lb = {.count = nloc, .seqs = lseq};
	run_local_job(d, att, &lb, rt, lst, &first_bad, detail, sizeof detail, &compute, &flops,
	              NULL, 0);
	/* 5. statuses and cancellation agreed: every rank learns every sequence's status */
	li = 0;
	for (size_t i = 0; i < n; i++) {
		stv[i] = 0;
		if (owner[i] == d->rank && meta[i].status == RVA_OK)
			stv[i] = lst[li++];
		else if (is_root && meta[i].status != RVA_OK)
			stv[i] = meta[i].status;
	}
	stv[n] = atomic_load(&d->cancel) ? 1 : 0;
	if ((rc = MPI_Allreduce(stv, stv_all, (int)n + 1, MPI_LONG_LONG, MPI_MAX, d->comm)) !=
	    MPI_SUCCESS) {
		fail = rva__dist_mpi_fail(rc, "MPI_Allreduce (statuses)");
		goto out;
	}
	if (stv_all[n]) {
		cancelled = true;
		goto out;
	}
	/* 6. gather the outputs of the sequences that succeeded */
	for (size_t i = 0; i < n; i++) {
		if (stv_all[i] != RVA_OK || owner[i] == root || meta[i].status != RVA_OK)
			continue;
		size_t nq = (size_t)meta[i].nq;
		if (is_root) {
			rva_seq s;
			rva__normalise_seq(att, &batch->seqs[i], &s);
			rc = post(false, s.out, nq, dim, s.out_stride, owner[i], TAG_O, d->comm,
			          &reqs[nreq++], &recvd);
		} else if (owner[i] == d->rank) {
			rc = post(true, bufs[i] + nq * dim, nq, dim, dim, root, TAG_O, d->comm,
			          &reqs[nreq++], &sent);
		} else {
			continue;
		}
		if (rc != MPI_SUCCESS) {
			fail = rva__dist_mpi_fail(rc, "MPI_Isend/Irecv (outputs)");
			goto out;
		}
	}
	if (nreq && (rc = MPI_Waitall((int)nreq, reqs, MPI_STATUSES_IGNORE)) != MPI_SUCCESS) {
		fail = rva__dist_mpi_fail(rc, "MPI_Waitall (outputs)");
		goto out;
	}
	nreq = 0;
	if (is_root)
		for (size_t i = 0; i < n; i++)
			seq_status[i] = (rva_status)stv_all[i];
	/* 7. the first failing sequence, reported with its owner rank */
	{
		size_t bad = SIZE_MAX;
		for (size_t i = 0; i < n && bad == SIZE_MAX; i++)
			if (stv_all[i] != RVA_OK)
				bad = i;
		if (bad != SIZE_MAX) {
			int who = owner[bad];
			char msg[256];
			const char *mine = rva_strerror((rva_status)stv_all[bad]);
			if (is_root && bad == first_invalid)
				mine = vdetail;
			else if (first_bad != SIZE_MAX && lglob[first_bad] == bad && detail[0])
				mine = detail;
			snprintf(msg, sizeof msg, "%s", d->rank == who ? mine : "");
			if ((rc = MPI_Bcast(msg, sizeof msg, MPI_CHAR, who, d->comm)) != MPI_SUCCESS) {
				fail = rva__dist_mpi_fail(rc, "MPI_Bcast (failure)");
				goto out;
			}
			msg[sizeof msg - 1] = '\0';
			fail = rva__fail((rva_status)stv_all[bad], "rank %d, sequence %zu: %s", who, bad,
			                 msg);
		}
	}
out:
	if (nreq) /* an MPI failure left requests: wait them out so buffers can be freed */
		MPI_Waitall((int)nreq, reqs, MPI_STATUSES_IGNORE);
out_abort:
	rva__free(bufs); /* the sequences themselves live in d's cache */
	rva__free(offs);
	rva__free(lseq);
	rva__free(lst);
	rva__free(reqs);
	rva__free(stv_all);
	rva__free(stv);
	rva__free(shape);
	rva__free(lglob);
	rva__free(owner);
	rva__free(meta);
	if (cancelled)
		return rva__fail(RVA_ECANCELLED, "rvattn_mpi: cancelled");
	stats_fill(stats, t0, compute, flops, sent, recvd, nloc);
	return fail;
}

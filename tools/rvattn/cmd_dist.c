/*
 * `rvattn run|bench ... --dist batch|ring` and `rvattn topo` under mpirun: the CLI side
 * of rvattn_mpi (include/rvattn/dist.h).
 *
 * MPI is initialised only here: when --dist is given, or for `topo` when the process was
 * started by mpirun (OMPI_COMM_WORLD_SIZE / PMI_SIZE set); every other command runs as
 * before, without MPI. Inputs: every rank builds the same workload (the same seed, or the
 * same .npy files, which must be readable on every host); rank 0's copy is the one batch
 * sharding scatters, ring attention takes each rank's slice of its own copy. Rank 0
 * prints and writes --out; the other ranks print errors only.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#ifndef RVATTN_HAVE_MPI

int cmd_dist(const char *cmd, int argc, char **argv) {
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--dist") == 0 || strncmp(argv[i], "--dist=", 7) == 0)
			return cli_usage(cmd, "--dist: this rvattn was built without MPI (install "
			                 "libopenmpi-dev and openmpi-bin, then reconfigure with "
			                 "-DRVATTN_WITH_MPI=ON)");
	return -1;
}

#else

#include <getopt.h>
#include <math.h>

#include <mpi.h>

#include "rvattn/dist.h"

enum { OPT_DIST = 2000, OPT_RANKS, OPT_SCALING };
enum { MODE_BATCH, MODE_RING };

static int rank_, size_;

static bool under_mpirun(void) {
	return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

static int mpi_start(int *argc, char ***argv) {
	int inited = 0, provided = 0;
	MPI_Initialized(&inited);
	if (!inited && MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
		return cli_error(EXIT_RUNTIME, "MPI_Init_thread failed");
	MPI_Query_thread(&provided);
	if (provided < MPI_THREAD_FUNNELED)
		return cli_error(EXIT_RUNTIME, "MPI provides thread level %d, rvattn needs "
		                 "MPI_THREAD_FUNNELED", provided);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
	MPI_Comm_size(MPI_COMM_WORLD, &size_);
	return 0;
}

/* The same exit code on every rank (the worst). */
static int agree_rc(int rc) {
	int worst = rc;
	MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	return worst;
}

static int dist_topo(void) {
	rva_dist *d = NULL;
	rva_status st = rva_dist_create(MPI_COMM_WORLD, NULL, &d);
	if (st != RVA_OK)
		return cli_lib_error(st, EXIT_RUNTIME, "topo: distributed engine");
	rva_dist_rank_info *all = rank_ == 0 ? calloc((size_t)size_, sizeof *all) : NULL;
	if (rank_ == 0 && !all) {
		rva_dist_destroy(d);
		return cli_error(EXIT_RUNTIME, "topo: out of memory");
	}
	st = rva_dist_gather_info(d, 0, all);
	if (st == RVA_OK && rank_ == 0) {
		printf("ranks: %d (MPI)\n", size_);
		for (int r = 0; r < size_; r++) {
			const rva_dist_rank_info *x = &all[r];
			printf("rank %d: host %s, node rank %d/%d, allowed PUs %s -> engine PUs %s, "
			       "%u pool%s, %u worker%s%s%s\n",
			       r, x->host, x->node_rank, x->node_size, x->binding, x->engine.cpuset,
			       x->engine.pools, x->engine.pools == 1 ? "" : "s", x->engine.workers,
			       x->engine.workers == 1 ? "" : "s",
			       x->split ? " (node's PUs split among unbound ranks)" : "",
			       x->overlap ? " (overlaps another rank: more ranks than PUs)" : "");
		}
	}
	free(all);
	rva_dist_destroy(d);
	return st == RVA_OK ? EXIT_OK : cli_lib_error(st, EXIT_RUNTIME, "topo: gather");
}

/* One ring run of sequence s of w over comm; rank 0 collects the output rows. */
static int ring_once(rva_dist *d, MPI_Comm comm, workload *w, size_t s, double *wall,
                     rva_dist_stats *agg) {
	int r, P;
	MPI_Comm_rank(comm, &r);
	MPI_Comm_size(comm, &P);
	rva_seq gs = w->seqs[s]; /* strides normalised (0 = packed) */
	const rva_seq *g = &gs;
	if (!gs.q_stride)
		gs.q_stride = w->q_cols;
	if (!gs.out_stride)
		gs.out_stride = w->q_cols;
	if (!gs.k_stride)
		gs.k_stride = w->kv_cols;
	if (!gs.v_stride)
		gs.v_stride = w->kv_cols;
	rva_dist_ring_layout L;
	rva_status st = rva_dist_ring_layout_get(d, w->att, g->nq, g->nk, &L);
	if (st != RVA_OK)
		return cli_lib_error(st, EXIT_USAGE, "--dist ring");
	size_t dim = w->q_cols;
	float *lo = malloc((L.q_rows ? L.q_rows : 1) * dim * sizeof *lo);
	if (!lo)
		return cli_error(EXIT_RUNTIME, "out of memory");
	/* this rank's query tiles are rows of its own copy: strided views need one stride
	 * between tiles, so copy them out (outside the timing) */
	float *lq = malloc((L.q_rows ? L.q_rows : 1) * dim * sizeof *lq);
	if (!lq) {
		free(lo);
		return cli_error(EXIT_RUNTIME, "out of memory");
	}
	memset(lo, 0, (L.q_rows ? L.q_rows : 1) * dim * sizeof *lo); /* first touch, untimed */
	size_t row = 0;
	for (size_t t = (size_t)r; t < L.q_tiles; t += (size_t)P)
		for (size_t i = t * L.q_tile; i < g->nq && i < (t + 1) * L.q_tile; i++, row++)
			memcpy(lq + row * dim, (const float *)g->q + i * g->q_stride, dim * sizeof *lq);
	rva_seq ls = {.nq = g->nq, .nk = g->nk, .q = lq, .q_stride = dim,
	              .k = L.kv_rows ? (const float *)g->k + L.kv_first * g->k_stride : NULL, .k_stride = g->k_stride,
	              .v = L.kv_rows ? (const float *)g->v + L.kv_first * g->v_stride : NULL, .v_stride = g->v_stride,
	              .out = lo, .out_stride = dim, .key_mask = g->key_mask};
	MPI_Barrier(comm);
	double t0 = now_s();
	rva_dist_stats stats;
	st = rva_dist_ring(d, w->att, &ls, NULL, &stats);
	double local = now_s() - t0;
	MPI_Allreduce(&local, wall, 1, MPI_DOUBLE, MPI_MAX, comm);
	agg->compute_s += stats.compute_s;
	agg->comm_wait_s += stats.comm_wait_s;
	agg->bytes_received += stats.bytes_received;
	free(lq);
	if (st != RVA_OK) {
		free(lo);
		return cli_lib_error(st, EXIT_RUNTIME, "--dist ring");
	}
	/* rank 0 collects the rows into the workload's output */
	int *counts = NULL, *displs = NULL;
	float *all = NULL;
	int n = (int)(L.q_rows * dim);
	if (r == 0) {
		counts = calloc(2 * (size_t)P, sizeof *counts);
		all = malloc(g->nq * dim * sizeof *all);
		displs = counts + P;
	}
	MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, comm);
	if (r == 0)
		for (int i = 0, off = 0; i < P; off += counts[i], i++)
			displs[i] = off;
	MPI_Gatherv(lo, n, MPI_FLOAT, all, counts, displs, MPI_FLOAT, 0, comm);
	if (r == 0) {
		for (int p = 0; p < P; p++) {
			const float *src = all + displs[p];
			for (size_t t = (size_t)p; t < L.q_tiles; t += (size_t)P)
				for (size_t i = t * L.q_tile; i < g->nq && i < (t + 1) * L.q_tile; i++, src += dim)
					memcpy((float *)g->out + i * g->out_stride, src, dim * sizeof *src);
		}
		free(all);
		free(counts);
	}
	free(lo);
	return 0;
}

/* One timed run of the workload over comm. *wall: the slowest rank's time. */
static int dist_once(rva_dist *d, MPI_Comm comm, int mode, workload *w, double *wall,
                     rva_dist_stats *agg) {
	memset(agg, 0, sizeof *agg);
	int r;
	MPI_Comm_rank(comm, &r);
	if (mode == MODE_RING) {
		double sum = 0.0;
		for (size_t s = 0; s < w->batch; s++) {
			double t;
			int rc = ring_once(d, comm, w, s, &t, agg);
			if (rc)
				return rc;
			sum += t;
		}
		*wall = sum;
		agg->wall_s = sum;
		return 0;
	}
	MPI_Barrier(comm);
	double t0 = now_s();
	rva_status sts_buf[1], *sts = r == 0 ? calloc(w->batch ? w->batch : 1, sizeof *sts) : sts_buf;
	rva_status st = rva_dist_run_root(d, w->att, r == 0 ? &w->b : NULL, 0, NULL,
	                                  r == 0 ? sts : NULL, agg);
	double local = now_s() - t0;
	MPI_Allreduce(&local, wall, 1, MPI_DOUBLE, MPI_MAX, comm);
	if (r == 0)
		free(sts);
	if (st != RVA_OK)
		return cli_lib_error(st, EXIT_RUNTIME, "--dist batch");
	return 0;
}

typedef struct dist_opts {
	workload_opts w;
	int mode;
	bool mode_given;
	unsigned threads;
	size_t repeat;
	size_t ranks[64], nranks;
	size_t warmup;
	int scaling;                /* bit 0: strong, bit 1: weak */
	bool json, csv;
	const char *out;
	const char *plot;           /* bench: strong-scaling plot (.png or .svg) */
} dist_opts;

static const char dist_help[] =
	"  --dist batch|ring     spread the work over the MPI ranks (start with mpirun -n K):\n"
	"                        batch = whole sequences to ranks by cost (LPT, scattered from\n"
	"                        rank 0); ring = each sequence split over the ranks (query\n"
	"                        tiles striped, K/V blocks broadcast while computing)\n"
	"  --threads N           worker threads per rank (default: the rank's cores)\n"
	"  --repeat N            timed runs, the median is reported (default 3)\n"
	"  --ranks LIST          bench: rank counts, e.g. 1,2 (default 1..K); sub-communicators\n"
	"                        of this launch\n"
	"  --warmup N            bench: untimed runs before the timed ones (default 1)\n"
	"  --scaling KIND        bench: strong, weak or both (default both; weak grows the\n"
	"                        batch k-fold, or a ring sequence sqrt(k)-fold, for k ranks)\n"
	"  --json, --csv         bench: the scaling table as JSON or CSV on stdout\n"
	"  --plot FILE           bench: strong scaling, GFLOP/s and speed-up against ranks\n"
	"                        (.png or .svg, gnuplot), written by rank 0\n"
	"  --out FILE            run: rank 0 writes the output (.npy)\n";

static int parse(const char *cmd, int argc, char **argv, dist_opts *o) {
	static const struct option longs[] = {
		WORKLOAD_LONG_OPTIONS,
		{"out", 1, 0, OPT_OUT},       {"threads", 1, 0, OPT_THREADS},
		{"repeat", 1, 0, OPT_REPEAT}, {"json", 0, 0, OPT_JSON},
		{"csv", 0, 0, OPT_CSV},       {"help", 0, 0, OPT_HELP},
		{"dist", 1, 0, OPT_DIST},     {"ranks", 1, 0, OPT_RANKS},
		{"warmup", 1, 0, OPT_WARMUP}, {"scaling", 1, 0, OPT_SCALING},
		{"plot", 1, 0, OPT_PLOT},     {0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	workload_opts_init(&o->w);
	o->repeat = 3;
	o->warmup = 1;
	o->scaling = 3;
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":", longs, NULL)) != -1) {
		int h = workload_option(cmd, &o->w, c, optarg);
		if (h < 0)
			return EXIT_USAGE;
		if (h == 1 && (c == OPT_DTYPE || c == OPT_OUT_DTYPE) &&
		    (o->w.dtype != RVA_F32 || o->w.out_dtype != RVA_F32))
			return cli_usage(cmd, "--%s %s: distributed runs compute in f32 only (rva_dist "
			                 "refuses bf16/f16 tensors)", c == OPT_DTYPE ? "dtype" :
			                 "out-dtype", optarg);
		if (h == 1)
			continue;
		size_t v;
		switch (c) {
		case OPT_DIST:
			if (strcmp(optarg, "batch") == 0)
				o->mode = MODE_BATCH;
			else if (strcmp(optarg, "ring") == 0)
				o->mode = MODE_RING;
			else
				return cli_usage(cmd, "--dist: '%s' is not batch or ring", optarg);
			o->mode_given = true;
			break;
		case OPT_THREADS:
			if (!parse_size(cmd, "--threads", optarg, false, &v))
				return EXIT_USAGE;
			o->threads = (unsigned)v;
			break;
		case OPT_REPEAT:
			if (!parse_size(cmd, "--repeat", optarg, false, &o->repeat))
				return EXIT_USAGE;
			break;
		case OPT_RANKS:
			if (!parse_size_list(cmd, "--ranks", optarg, o->ranks, 64, &o->nranks))
				return EXIT_USAGE;
			break;
		case OPT_WARMUP:
			if (!parse_size(cmd, "--warmup", optarg, true, &o->warmup))
				return EXIT_USAGE;
			break;
		case OPT_SCALING:
			if (strcmp(optarg, "strong") == 0)
				o->scaling = 1;
			else if (strcmp(optarg, "weak") == 0)
				o->scaling = 2;
			else if (strcmp(optarg, "both") == 0)
				o->scaling = 3;
			else
				return cli_usage(cmd, "--scaling: '%s' is not strong, weak or both", optarg);
			break;
		case OPT_JSON: o->json = true; break;
		case OPT_CSV: o->csv = true; break;
		case OPT_PLOT:
			if (!plot_path_ok(optarg))
				return cli_usage(cmd, "--plot %s: the name must end in .png or .svg", optarg);
			o->plot = optarg;
			break;
		case OPT_HELP:
			if (rank_ == 0)
				printf("rvattn %s --dist batch|ring [workload options]\n%s\n%s", cmd,
				       dist_help, workload_help);
			return -2;
		default: return cli_bad_option(cmd, c, argv);
		}
	}
	if (optind < argc)
		return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
	if (!o->mode_given)
		return cli_usage(cmd, "--dist needs batch or ring");
	if (o->plot && !(o->scaling & 1))
		return cli_usage(cmd, "--plot draws strong scaling: not with --scaling weak");
	if (o->w.bhsd || o->w.v_head_dim || o->w.lse_path)
		return cli_usage(cmd, "--%s is not supported by the distributed runs (rvattn_mpi "
		                 "takes packed rows of one head width)",
		                 o->w.bhsd ? "layout bhsd" : o->w.v_head_dim ? "v-head-dim" : "lse");
	if (!isnan(o->w.scale))
		return cli_usage(cmd, "--scale is not supported by the distributed runs (they run "
		                 "at the config's scale)");
	o->out = o->w.out_path;
	return 0;
}

static int dist_run(const dist_opts *o) {
	workload w;
	int rc = workload_make("run", &o->w, &w);
	if (rc)
		return rc;
	rva_engine_config ec = workload_engine_config(&o->w, o->threads);
	rva_dist *d = NULL;
	rva_status st = rva_dist_create(MPI_COMM_WORLD, &ec, &d);
	if (st != RVA_OK) {
		workload_free(&w);
		return cli_lib_error(st, EXIT_RUNTIME, "run: distributed engine");
	}
	double *times = calloc(o->repeat, sizeof *times);
	rva_dist_stats agg = {0};
	for (size_t i = 0; i < o->repeat && !rc; i++)
		rc = dist_once(d, MPI_COMM_WORLD, o->mode, &w, &times[i], &agg);
	if (!rc && rank_ == 0) {
		double t = median(times, o->repeat);
		checksum cs = workload_checksum(&w);
		workload_describe(&w, stdout);
		printf("dist: %s over %d rank%s, %s\n", o->mode == MODE_RING ? "ring" : "batch",
		       size_, size_ == 1 ? "" : "s",
		       o->mode == MODE_RING ? "query tiles striped, K/V blocks broadcast in order"
		                            : "sequences by LPT cost, scattered from rank 0");
		printf("time: %.6f s (median of %zu), %.1f GFLOP/s\n", t, o->repeat,
		       w.flops / t * 1e-9);
		printf("checksum: sum %.9g abs %.9g fnv1a %016llx\n", cs.sum, cs.abs_sum,
		       (unsigned long long)cs.fnv1a);
		if (o->out)
			rc = write_npy_output(o->out, w.out, w.out_ndim, w.out_shape);
	}
	free(times);
	rva_dist_destroy(d);
	workload_free(&w);
	return rc;
}

/* Weak scaling: the workload grown with the rank count k so the work per rank stays
 * about constant (batch: k times the sequences; ring: sequence length x sqrt(k), causal
 * and dense work growing with the square of the length). */
static void grow(workload_opts *wo, int mode, size_t k, size_t seq0, size_t batch0) {
	if (mode == MODE_BATCH)
		wo->batch = batch0 * k;
	else {
		size_t n = (size_t)((double)seq0 * sqrt((double)k));
		wo->seq = (n + 63) / 64 * 64;
		wo->kv_seq = 0;
	}
}

/* a / b, 0 when b is 0 (a scaling kind not measured) */
static double ratio(double a, double b) { return b > 0.0 ? a / b : 0.0; }

static int dist_bench(const dist_opts *o) {
	size_t ranks[64], nr = o->nranks;
	if (nr == 0)
		for (int k = 1; k <= size_ && nr < 64; k++)
			ranks[nr++] = (size_t)k;
	else
		memcpy(ranks, o->ranks, nr * sizeof *ranks);
	for (size_t i = 0; i < nr; i++)
		if (ranks[i] > (size_t)size_)
			return cli_usage("bench", "--ranks: %zu ranks, but mpirun started %d", ranks[i],
			                 size_);
	workload_opts base = o->w;
	if (base.seq == 0)
		base.seq = 4096;
	if (base.batch == 0)
		base.batch = o->mode == MODE_RING ? 1 : 8;
	double st_time[64] = {0}, st_comp[64] = {0}, st_comm[64] = {0}, st_gf[64] = {0};
	double wk_time[64] = {0}, wk_gf[64] = {0};
	int rc = 0;
	for (int weak = 0; weak < 2 && !rc; weak++)
		for (size_t i = 0; i < nr && !rc && (o->scaling >> weak & 1); i++) {
			int k = (int)ranks[i];
			MPI_Comm sub;
			MPI_Comm_split(MPI_COMM_WORLD, rank_ < k ? 0 : MPI_UNDEFINED, rank_, &sub);
			if (sub != MPI_COMM_NULL) {
				workload_opts wo = base;
				if (weak)
					grow(&wo, o->mode, (size_t)k, base.seq, base.batch);
				workload w;
				rc = workload_make("bench", &wo, &w);
				bool made = rc == 0;
				rva_dist *d = NULL;
				rva_engine_config ec = workload_engine_config(&o->w, o->threads);
				if (!rc) {
					rva_status st = rva_dist_create(sub, &ec, &d);
					if (st != RVA_OK)
						rc = cli_lib_error(st, EXIT_RUNTIME, "bench: distributed engine");
				}
				double times[64], comp[64], comm[64];
				size_t reps = o->repeat < 64 ? o->repeat : 64;
				rva_dist_stats agg;
				for (size_t u = 0; u < o->warmup && !rc; u++) /* first touch, engine start */
					rc = dist_once(d, sub, o->mode, &w, &times[0], &agg);
				for (size_t rep = 0; rep < reps && !rc; rep++) {
					rc = dist_once(d, sub, o->mode, &w, &times[rep], &agg);
					double c = agg.compute_s, m = agg.comm_wait_s;
					MPI_Allreduce(&c, &comp[rep], 1, MPI_DOUBLE, MPI_MAX, sub);
					MPI_Allreduce(&m, &comm[rep], 1, MPI_DOUBLE, MPI_MAX, sub);
				}
				if (!rc) {
					double t = median(times, reps);
					if (weak) {
						wk_time[i] = t;
						wk_gf[i] = w.flops / t * 1e-9;
					} else {
						st_time[i] = t;
						st_comp[i] = median(comp, reps);
						st_comm[i] = median(comm, reps);
						st_gf[i] = w.flops / t * 1e-9;
					}
				}
				rva_dist_destroy(d);
				if (made)
					workload_free(&w);
				MPI_Comm_free(&sub);
			}
			rc = agree_rc(rc);
		}
	if (rc || rank_ != 0)
		return rc;
	const char *m = o->mode == MODE_RING ? "ring" : "batch";
	if (o->plot) {
		double sp[64];
		for (size_t i = 0; i < nr; i++)
			sp[i] = ratio(st_time[0], st_time[i]);
		char title[256];
		if (o->threads)
			snprintf(title, sizeof title, "rvattn bench --dist %s, strong scaling, %u thread%s "
			         "per rank", m, o->threads, o->threads == 1 ? "" : "s");
		else
			snprintf(title, sizeof title, "rvattn bench --dist %s, strong scaling, each rank's "
			         "own cores", m);
		if ((rc = plot_scaling(o->plot, title, "ranks", ranks, st_gf, sp, nr)))
			return rc;
	}
	if (o->json) {
		printf("{\"dist\": \"%s\", \"threads_per_rank\": %u, \"repeat\": %zu, \"rows\": [", m,
		       o->threads, o->repeat);
		for (size_t i = 0; i < nr; i++)
			printf("%s{\"ranks\": %zu, \"strong_s\": %.6f, \"strong_gflops\": %.2f, "
			       "\"strong_efficiency\": %.4f, \"compute_s\": %.6f, \"comm_wait_s\": %.6f, "
			       "\"weak_s\": %.6f, \"weak_gflops\": %.2f, \"weak_efficiency\": %.4f}",
			       i ? ", " : "", ranks[i], st_time[i], st_gf[i],
			       ratio(st_time[0], st_time[i] * (double)ranks[i] / (double)ranks[0]),
			       st_comp[i], st_comm[i], wk_time[i], wk_gf[i], ratio(wk_time[0], wk_time[i]));
		printf("]}\n");
		return 0;
	}
	if (o->csv) {
		printf("ranks,strong_s,strong_gflops,strong_efficiency,compute_s,comm_wait_s,weak_s,"
		       "weak_gflops,weak_efficiency\n");
		for (size_t i = 0; i < nr; i++)
			printf("%zu,%.6f,%.2f,%.4f,%.6f,%.6f,%.6f,%.2f,%.4f\n", ranks[i], st_time[i],
			       st_gf[i], ratio(st_time[0], st_time[i] * (double)ranks[i] / (double)ranks[0]),
			       st_comp[i], st_comm[i], wk_time[i], wk_gf[i], ratio(wk_time[0], wk_time[i]));
		return 0;
	}
	printf("bench --dist %s: %s, median of %zu runs per rank count; compute = the slowest "
	       "rank's local jobs, comm wait = time blocked in MPI after them\n", m,
	       o->threads ? "fixed threads per rank" : "each rank's own cores", o->repeat);
	printf("%6s | %10s %9s %7s %6s %10s %10s | %10s %9s %6s\n", "ranks", "strong s",
	       "GFLOP/s", "speedup", "eff", "compute s", "comm s", "weak s", "GFLOP/s", "eff");
	for (size_t i = 0; i < nr; i++) {
		double sp = ratio(st_time[0], st_time[i]);
		printf("%6zu | %10.4f %9.1f %7.2f %6.2f %10.4f %10.4f | %10.4f %9.1f %6.2f\n", ranks[i],
		       st_time[i], st_gf[i], sp, sp * (double)ranks[0] / (double)ranks[i], st_comp[i],
		       st_comm[i], wk_time[i], wk_gf[i], ratio(wk_time[0], wk_time[i]));
	}
	if (o->plot)
		printf("plot: %s\n", o->plot);
	return 0;
}

int cmd_dist(const char *cmd, int argc, char **argv) {
	bool dist = false;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--dist") == 0 || strncmp(argv[i], "--dist=", 7) == 0)
			dist = true;
	bool topo = strcmp(cmd, "topo") == 0 && argc == 1 && under_mpirun();
	if (!dist && !topo)
		return -1;
	if (dist && strcmp(cmd, "run") != 0 && strcmp(cmd, "bench") != 0)
		return cli_usage(cmd, "--dist is an option of run and bench");
	int rc = mpi_start(&argc, &argv);
	if (rc)
		return rc;
	if (topo)
		rc = dist_topo();
	else {
		dist_opts o;
		rc = parse(cmd, argc, argv, &o);
		if (rc == -2)
			rc = 0;
		else if (!rc)
			rc = strcmp(cmd, "run") == 0 ? dist_run(&o) : dist_bench(&o);
	}
	rc = agree_rc(rc);
	fflush(stdout);
	MPI_Finalize();
	return rc;
}

#endif

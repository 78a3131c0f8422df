/*
 * `rvattn bench`: the scaling benchmark. One workload (built once), one engine per thread
 * count; per count a warm-up run, then R timed runs; the table gives the median time,
 * GFLOP/s, speed-up and parallel efficiency against the first (smallest) count, and
 * whether the output was bit-identical for every count.
 */
#define _GNU_SOURCE 1
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_COUNTS 256

static void print_bench_help(void) {
	printf("Usage: rvattn bench [OPTIONS]\n"
	       "\n"
	       "Scaling benchmark: runs the workload with each thread count (one engine per\n"
	       "count) and prints threads, median time, GFLOP/s, speed-up and parallel\n"
	       "efficiency, headed by the machine, the BLIS kernels and the binding.\n"
	       "\n%s"
	       "Benchmark:\n"
	       "  --threads LIST      thread counts, e.g. 1,2,4 or 1-8 (default 1, 2, 4, ... up to\n"
	       "                      all allowed cores, always including the maximum)\n"
	       "  --repeat R          timed runs per count (default 5); the median is reported\n"
	       "  --warmup W          untimed runs per count before timing (default 1)\n"
	       "  --json FILE         write the results as JSON\n"
	       "  --csv FILE          write the table as CSV\n"
	       "  --plot FILE         draw GFLOP/s and speed-up (.png or .svg) with gnuplot\n"
	       "                      (Debian package gnuplot-nox)\n"
	       "  --help              this text\n"
	       "\n"
	       "Output files: a regular file (a symlink's target) is replaced atomically\n"
	       "through a temporary file in its directory, keeping its mode and owner; a\n"
	       "device, FIFO or /dev/stdout is written in place (with /dev/stdout the table\n"
	       "goes to stderr). Two options naming the same file are a usage error. SIGINT,\n"
	       "SIGTERM and SIGHUP cancel the benchmark and leave no temporary file.\n"
	       "Exit status: 0 success, 1 runtime error (also: stdout not writable), 2 usage\n"
	       "error.\n",
	       workload_help);
}

typedef struct row {
	size_t threads;
	unsigned workers, pools;
	double *times;
	double med, min, max, gflops, speedup, efficiency;
	uint64_t fnv1a;
	/* decode shapes: K+V GB/s, and the streaming read of the same bytes on the same
	 * engine (rva_engine_read_probe), timed after each timed run */
	double *read_times;
	double gbps, read_gbps;
} row;

/* Few queries over the softmax family: the job streams K and V, and its speed is stated
 * in GB/s of K+V against a plain read of the same bytes. */
static bool is_decode(const workload *w) {
	rva_mechanism m = w->cfg.mechanism;
	return w->nq <= 8 && (m == RVA_MECH_SCALED_DOT || m == RVA_MECH_MULTI_HEAD ||
	                      m == RVA_MECH_FLASH || m == RVA_MECH_LOCAL_GLOBAL);
}

/* Bytes of K and of V (each). */
/* Bytes of K (= of V) as stored: fp32, or 2 per element with --dtype bf16/f16. */
static size_t kv_bytes(const workload *w) {
	return w->k_rows * w->kv_cols * (w->dtype == RVA_F32 ? sizeof(float) : 2);
}

static int write_json(const char *path, const char *cpu, const rva_engine_info *info,
                      workload *w, const row *rows, size_t n, size_t repeat, size_t warmup,
                      bool same) {
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return cli_error(EXIT_RUNTIME, "%s: out of memory", path);
	json j;
	json_init(&j, f, true);
	json_object_begin(&j);
	json_kv_string(&j, "command", "bench");
	json_kv_string(&j, "version", RVATTN_VERSION);
	json_key(&j, "machine");
	json_object_begin(&j);
	json_kv_string(&j, "cpu", cpu);
	json_kv_uint(&j, "allowed_cores", info->workers);
	json_kv_string(&j, "cpuset", info->cpuset);
	json_kv_string(&j, "topology", info->topology);
	json_kv_uint(&j, "pools", info->pools);
	json_kv_bool(&j, "binding_real", info->binding_real);
	json_object_end(&j);
	json_key(&j, "kernels");
	json_kernels(&j, info->kernels);
	json_key(&j, "config");
	json_config(&j, w);
	json_kv_number(&j, "flops", w->flops);
	json_kv_uint(&j, "repeat", repeat);
	json_kv_uint(&j, "warmup", warmup);
	json_kv_bool(&j, "bit_identical", same);
	json_key(&j, "rows");
	json_array_begin(&j);
	for (size_t i = 0; i < n; i++) {
		const row *r = &rows[i];
		json_object_begin(&j);
		json_kv_uint(&j, "threads", r->threads);
		json_kv_uint(&j, "workers", r->workers);
		json_kv_uint(&j, "pools", r->pools);
		json_key(&j, "times_s");
		json_array_begin(&j);
		for (size_t k = 0; k < repeat; k++)
			json_number(&j, r->times[k]);
		json_array_end(&j);
		json_kv_number(&j, "median_s", r->med);
		json_kv_number(&j, "min_s", r->min);
		json_kv_number(&j, "max_s", r->max);
		json_kv_number(&j, "gflops", r->gflops);
		json_kv_number(&j, "speedup", r->speedup);
		json_kv_number(&j, "efficiency", r->efficiency);
		if (is_decode(w)) {
			json_kv_number(&j, "gbps", r->gbps);
			json_kv_number(&j, "read_gbps", r->read_gbps);
			json_kv_number(&j, "of_read", r->gbps / r->read_gbps);
		}
		char hex[20];
		snprintf(hex, sizeof hex, "%016" PRIx64, r->fnv1a);
		json_kv_string(&j, "checksum_fnv1a", hex);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
	if (fclose(f) != 0) {
		free(buf);
		return cli_error(EXIT_RUNTIME, "%s: out of memory", path);
	}
	int rc = write_output(path, buf, len);
	free(buf);
	return rc;
}

static int write_csv(const char *path, const row *rows, size_t n) {
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return cli_error(EXIT_RUNTIME, "%s: out of memory", path);
	fprintf(f, "threads,median_s,min_s,max_s,gflops,speedup,efficiency\n");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%zu,%.9g,%.9g,%.9g,%.6g,%.6g,%.6g\n", rows[i].threads, rows[i].med,
		        rows[i].min, rows[i].max, rows[i].gflops, rows[i].speedup,
		        rows[i].efficiency);
	if (fclose(f) != 0) {
		free(buf);
		return cli_error(EXIT_RUNTIME, "%s: out of memory", path);
	}
	int rc = write_output(path, buf, len);
	free(buf);
	return rc;
}

/* What the command line asked for. */
typedef struct bench_args {
	workload_opts o;
	size_t counts[MAX_COUNTS], ncounts, repeat, warmup;
	const char *json_path, *csv_path, *plot_path;
	bool help;
} bench_args;

/* Parses argv into `a` (help: a->help); returns an exit code, the usage error printed. */
static int parse_bench_args(int argc, char **argv, bench_args *a) {
	static const struct option opts[] = {
		WORKLOAD_LONG_OPTIONS,
		{"threads", 1, 0, OPT_THREADS},
		{"repeat", 1, 0, OPT_REPEAT},
		{"warmup", 1, 0, OPT_WARMUP},
		{"json", 1, 0, OPT_JSON},
		{"csv", 1, 0, OPT_CSV},
		{"plot", 1, 0, OPT_PLOT},
		{"help", 0, 0, 'h'},
		{0, 0, 0, 0},
	};
	memset(a, 0, sizeof *a);
	workload_opts_init(&a->o);
	a->repeat = 5;
	a->warmup = 1;
	opterr = 0;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		int k = workload_option("bench", &a->o, c, optarg);
		if (k < 0)
			return EXIT_USAGE;
		if (k > 0)
			continue;
		switch (c) {
		case OPT_THREADS:
			if (!parse_size_list("bench", "threads", optarg, a->counts, MAX_COUNTS,
			                     &a->ncounts))
				return EXIT_USAGE;
			break;
		case OPT_REPEAT:
			if (!parse_size("bench", "repeat", optarg, false, &a->repeat))
				return EXIT_USAGE;
			if (a->repeat > 100000)
				return cli_usage("bench", "--repeat %zu is too many", a->repeat);
			break;
		case OPT_WARMUP:
			if (!parse_size("bench", "warmup", optarg, true, &a->warmup))
				return EXIT_USAGE;
			if (a->warmup > 100000)
				return cli_usage("bench", "--warmup %zu is too many", a->warmup);
			break;
		case OPT_JSON: a->json_path = optarg; break;
		case OPT_CSV: a->csv_path = optarg; break;
		case OPT_PLOT:
			if (!plot_path_ok(optarg))
				return cli_usage("bench", "--plot %s: the name must end in .png or .svg",
				                 optarg);
			a->plot_path = optarg;
			break;
		case 'h': a->help = true; return EXIT_OK;
		default: return cli_bad_option("bench", c, argv);
		}
	}
	if (optind < argc)
		return cli_usage("bench", "unexpected argument '%s'", argv[optind]);
	const char *out_flags[] = {"json", "csv", "plot"};
	const char *out_paths[] = {a->json_path, a->csv_path, a->plot_path};
	return outputs_check("bench", 3, out_flags, out_paths);
}

/* The allowed cores (from an engine with one worker per allowed core, into *info), then
 * the thread counts: 1, 2, 4, ... and the maximum by default, none above the maximum. */
static int resolve_counts(bench_args *a, rva_engine_info *info) {
	rva_engine *e = NULL;
	rva_engine_config ec = workload_engine_config(&a->o, 0);
	int rc = engine_make("bench", &ec, &e);
	if (rc)
		return rc;
	if (rva_engine_info_get(e, info) != RVA_OK)
		rc = cli_lib_error(RVA_EINTERNAL, EXIT_RUNTIME, "engine information");
	rva_engine_destroy(e);
	if (rc)
		return rc;
	size_t maxt = info->workers;
	if (a->ncounts == 0) {
		for (size_t t = 1; t < maxt && a->ncounts < MAX_COUNTS - 1; t *= 2)
			a->counts[a->ncounts++] = t;
		a->counts[a->ncounts++] = maxt;
	}
	for (size_t i = 0; i < a->ncounts; i++)
		if (a->counts[i] > maxt)
			return cli_usage("bench", "--threads %zu is more than the %zu allowed %s",
			                 a->counts[i], maxt, a->o.per_pu ? "PUs" : "cores");
	return EXIT_OK;
}

/* The header: machine, kernels, binding, workload, work per run, and the table's titles. */
static void print_header(const bench_args *a, const rva_engine_info *info, const workload *w,
                         const char *cpu) {
	char kl[256];
	kernels_line(info->kernels, kl, sizeof kl);
	printf("rvattn bench\n");
	printf("machine: %s, %u allowed %s (cpus %s), %u NUMA pool%s\n", cpu, info->workers,
	       a->o.per_pu ? "PUs" : "cores", info->cpuset, info->pools,
	       info->pools == 1 ? "" : "s");
	printf("BLIS kernels: %s\n", kl);
	printf("binding: %s, topology %s\n",
	       info->binding_real ? "real (hwloc)" : "not real (the topology is not this system)",
	       info->topology);
	workload_describe(w, stdout);
	if (isfinite(w->flops))
		printf("work: %.6g GFLOP per run; %zu warm-up + %zu timed runs per thread count, "
		       "median reported\n", w->flops * 1e-9, a->warmup, a->repeat);
	if (is_decode(w))
		printf("decode: GB/s of K+V (%.4g MB per run) against a streaming read of the same "
		       "bytes on the same engine after each timed run (rva_engine_read_probe), "
		       "medians\n", 2.0 * (double)kv_bytes(w) * 1e-6);
	printf("\n%8s %12s %10s %9s %11s", "threads", "median (s)", "GFLOP/s", "speed-up",
	       "efficiency");
	if (is_decode(w))
		printf(" %9s %9s %8s", "GB/s", "read GB/s", "of read");
	printf("\n");
	fflush(stdout);
}

/* Runs the workload on an engine of r->threads workers: warm-up runs, then the timed runs
 * into r->times; *done counts runs for the progress bar. */
static int time_count(const bench_args *a, workload *w, row *r, progress *pg, size_t *done) {
	rva_engine *e = NULL;
	rva_engine_config ec = workload_engine_config(&a->o, (unsigned)r->threads);
	int rc = engine_make("bench", &ec, &e);
	if (rc)
		return rc;
	rva_engine_info ei;
	if (rva_engine_info_get(e, &ei) == RVA_OK) {
		r->workers = ei.workers;
		r->pools = ei.pools;
	}
	const void *kv[2] = {w->dtype == RVA_F32 ? (const void *)w->k : w->kh,
	                     w->dtype == RVA_F32 ? (const void *)w->v : w->vh};
	size_t kvb[2] = {kv_bytes(w), kv_bytes(w)};
	for (size_t k = 0; k < a->warmup + a->repeat && !rc; k++) {
		double t = 0;
		rc = workload_run_once(e, w, &t, NULL, pg, *done);
		if (k >= a->warmup)
			r->times[k - a->warmup] = t;
		if (!rc && k >= a->warmup && is_decode(w)) {
			rva_status st = rva_engine_read_probe(e, kv, kvb, 2, &t);
			if (st != RVA_OK)
				rc = cli_lib_error(st, EXIT_RUNTIME, "the streaming-read probe");
			r->read_times[k - a->warmup] = t;
		}
		progress_update(pg, ++*done);
	}
	rva_engine_destroy(e);
	return rc;
}

/* A row's figures from its times, against the first row (the smallest count). */
static void row_figures(row *r, const row *first, size_t repeat, double flops) {
	r->med = median(r->times, repeat);
	r->min = r->max = r->times[0];
	for (size_t k = 1; k < repeat; k++) {
		r->min = fmin(r->min, r->times[k]);
		r->max = fmax(r->max, r->times[k]);
	}
	r->gflops = flops / r->med * 1e-9;
	r->speedup = first->med / r->med;
	r->efficiency = r->speedup * (double)first->threads / (double)r->threads;
}

/* A decode row's GB/s: K+V bytes over the median run, and over the median read. */
static void row_gbps(row *r, size_t repeat, const workload *w) {
	double bytes = 2.0 * (double)kv_bytes(w);
	r->gbps = bytes / r->med * 1e-9;
	r->read_gbps = bytes / median(r->read_times, repeat) * 1e-9;
}

/* --plot: GFLOP/s and speed-up against threads. */
static int write_plot(const char *path, const char *cpu, const rva_engine_info *info,
                      const workload *w, const row *rows, size_t n) {
	size_t th[MAX_COUNTS];
	double gf[MAX_COUNTS], sp[MAX_COUNTS];
	for (size_t i = 0; i < n; i++) {
		th[i] = rows[i].threads;
		gf[i] = rows[i].gflops;
		sp[i] = rows[i].speedup;
	}
	char title[512];
	rva_config cc;
	if (rva_attention_config(w->att, &cc) != RVA_OK)
		cc = w->cfg;
	snprintf(title, sizeof title, "rvattn %s: %s dim %zu, %zu heads, B %zu, N %zu, M %zu "
	         "- %s, BLIS %s", w->source, rva_mechanism_name(cc.mechanism), cc.dim,
	         cc.heads, w->batch, w->nq, w->nk, cpu, rva_kernel_set_name(info->kernels));
	int rc = plot_scaling(path, title, "threads", th, gf, sp, n);
	if (!rc)
		printf("plot: %s\n", path);
	return rc;
}

/* The table, one row per thread count, printed as each count finishes; *same tells whether
 * every count gave the first count's output bit for bit. */
static int run_counts(const bench_args *a, workload *w, row *rows, double *times,
                      bool *same) {
	progress pg;
	progress_start(&pg, "runs", a->ncounts * (a->warmup + a->repeat));
	size_t done = 0;
	int rc = EXIT_OK;
	*same = true;
	for (size_t i = 0; i < a->ncounts && !rc; i++) {
		row *r = &rows[i];
		r->threads = a->counts[i];
		r->times = times + i * a->repeat;
		r->read_times = times + (a->ncounts + i) * a->repeat;
		if ((rc = time_count(a, w, r, &pg, &done)))
			break;
		row_figures(r, &rows[0], a->repeat, w->flops);
		if (is_decode(w))
			row_gbps(r, a->repeat, w);
		r->fnv1a = workload_checksum(w).fnv1a;
		*same &= r->fnv1a == rows[0].fnv1a;
		progress_end(&pg);
		printf("%8zu %12.6g %10.4g %8.2fx %10.1f%%", r->threads, r->med, r->gflops,
		       r->speedup, 100.0 * r->efficiency);
		if (is_decode(w))
			printf(" %9.2f %9.2f %7.0f%%", r->gbps, r->read_gbps,
			       100.0 * r->gbps / r->read_gbps);
		printf("\n");
		fflush(stdout);
	}
	progress_end(&pg);
	return rc;
}

int cmd_bench(int argc, char **argv) {
	bench_args a;
	int rc = parse_bench_args(argc, argv, &a);
	if (rc || a.help) {
		if (a.help)
			print_bench_help();
		return rc;
	}
	interrupt_install();
	rva_engine_info info;
	if ((rc = resolve_counts(&a, &info)))
		return rc;

	workload w;
	if ((rc = workload_make("bench", &a.o, &w)))
		return rc;
	row *rows = calloc(a.ncounts, sizeof *rows);
	double *times = calloc(2 * a.ncounts * a.repeat, sizeof *times); /* runs, then reads */
	if (!rows || !times) {
		rc = cli_error(EXIT_RUNTIME, "out of memory");
		goto out;
	}
	char cpu[256];
	cpu_model(cpu, sizeof cpu);
	print_header(&a, &info, &w, cpu);
	bool same;
	if ((rc = run_counts(&a, &w, rows, times, &same)))
		goto out;
	printf("\noutput bit-identical for every thread count: %s\n", same ? "yes" : "NO");

	if (a.json_path && (rc = write_json(a.json_path, cpu, &info, &w, rows, a.ncounts,
	                                    a.repeat, a.warmup, same)))
		goto out;
	if (a.csv_path && (rc = write_csv(a.csv_path, rows, a.ncounts)))
		goto out;
	if (a.plot_path && (rc = write_plot(a.plot_path, cpu, &info, &w, rows, a.ncounts)))
		goto out;
	if (fflush(stdout) != 0)
		rc = cli_error(EXIT_RUNTIME, "cannot write to stdout");
out:
	free(rows);
	free(times);
	workload_free(&w);
	return rc;
}

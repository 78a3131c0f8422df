/* `rvattn run` (and the body of the default job): one workload on one engine. */
#define _GNU_SOURCE 1
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void print_run_help(void) {
	printf("Usage: rvattn run [OPTIONS]\n"
	       "\n"
	       "Runs one attention workload through the engine and reports the configuration,\n"
	       "the BLIS kernels, the placement, the time, GFLOP/s and a checksum of the output.\n"
	       "\n%s"
	       "Run:\n"
	       "  --threads T         workers (default: one per allowed core)\n"
	       "  --repeat R          runs (default 1); the median time is reported\n"
	       "  --out FILE          write the output as .npy float32 (the shape of --q, or\n"
	       "                      [B, N, dim]). A regular file (a symlink's target) is\n"
	       "                      replaced atomically, keeping its mode and owner, never\n"
	       "                      left partial; a device, FIFO or /dev/stdout is written\n"
	       "                      in place (with /dev/stdout the report goes to stderr)\n"
	       "  --json              print one JSON object on stdout instead of text\n"
	       "  --help              this text\n"
	       "\n"
	       "SIGINT, SIGTERM and SIGHUP cancel the run: no output file, no temporary file.\n"
	       "A query row with no visible key (--causal with --seq N > --kv-seq M: the first\n"
	       "N - M rows) comes out as zeros; PyTorch's scaled_dot_product_attention gives\n"
	       "NaN for such rows.\n"
	       "Exit status: 0 success, 1 runtime error (bad input file, failure, interrupted,\n"
	       "stdout not writable), 2 usage error.\n",
	       workload_help);
}

static void print_text(const run_opts *r, workload *w, rva_engine *e, const double *times,
                       size_t n, const run_stats *js) {
	rva_engine_info info;
	char kl[256];
	workload_describe(w, stdout);
	if (rva_engine_info_get(e, &info) == RVA_OK) {
		kernels_line(info.kernels, kl, sizeof kl);
		printf("BLIS kernels: %s\n", kl);
	}
	print_placement(stdout, e, false);
	double med = median(times, n);
	printf("time: %.6g s", med);
	if (n > 1) {
		printf(" (median of %zu:", n);
		for (size_t i = 0; i < n; i++)
			printf(" %.6g", times[i]);
		printf(")");
	}
	printf("\n");
	if (isfinite(w->flops))
		printf("throughput: %.4g GFLOP/s (%.6g GFLOP per run)\n", w->flops / med * 1e-9,
		       w->flops * 1e-9);
	else
		printf("throughput: unknown (the mechanism reports no FLOP count)\n");
	checksum c = workload_checksum(w);
	printf("checksum: sum %.17g, sum|x| %.17g, fnv1a %016" PRIx64 "\n", c.sum, c.abs_sum,
	       c.fnv1a);
	if (js->has_moe) {
		const rva_moe_stats *m = &js->moe;
		printf("moe: %zu tokens, %zu experts, capacity %zu, %zu assignments dropped, "
		       "load-balancing loss %.6g\n", m->tokens, m->experts, m->capacity, m->dropped,
		       m->load_balancing_loss);
		printf("moe processed per expert:");
		for (size_t i = 0; i < m->experts && i < RVA_MOE_MAX_EXPERTS; i++)
			printf(" %zu/%zu", m->processed[i], m->assigned[i]);
		printf("\n");
	}
	if (r->w.out_path) {
		printf("output: %s [", r->w.out_path);
		for (size_t i = 0; i < w->out_ndim; i++)
			printf("%s%zu", i ? ", " : "", w->out_shape[i]);
		printf("] %s\n", w->out_dtype == RVA_F16 ? "float16" :
		       w->out_dtype == RVA_BF16 ? "bfloat16 (as uint16)" : "float32");
	}
}

static void print_json(const run_opts *r, workload *w, rva_engine *e, const double *times,
                       size_t n, const run_stats *js) {
	json j;
	char cpu[256];
	rva_engine_info info;
	json_init(&j, stdout, true);
	json_object_begin(&j);
	json_kv_string(&j, "command", "run");
	json_kv_string(&j, "version", RVATTN_VERSION);
	cpu_model(cpu, sizeof cpu);
	json_key(&j, "machine");
	json_object_begin(&j);
	json_kv_string(&j, "cpu", cpu);
	json_object_end(&j);
	json_key(&j, "config");
	json_config(&j, w);
	if (w->synthetic)
		json_kv_uint(&j, "seed", r->w.seed);
	json_key(&j, "notes");
	json_array_begin(&j);
	for (size_t i = 0; i < w->n_notes; i++)
		json_string(&j, w->notes[i]);
	json_array_end(&j);
	if (rva_engine_info_get(e, &info) == RVA_OK) {
		json_key(&j, "kernels");
		json_kernels(&j, info.kernels);
	}
	json_key(&j, "placement");
	json_placement(&j, e);
	json_key(&j, "times_s");
	json_array_begin(&j);
	for (size_t i = 0; i < n; i++)
		json_number(&j, times[i]);
	json_array_end(&j);
	double med = median(times, n);
	json_kv_number(&j, "median_s", med);
	json_kv_number(&j, "flops", w->flops);
	json_kv_number(&j, "gflops", w->flops / med * 1e-9);
	checksum c = workload_checksum(w);
	json_key(&j, "checksum");
	json_object_begin(&j);
	json_kv_number(&j, "sum", c.sum);
	json_kv_number(&j, "abs_sum", c.abs_sum);
	char hex[20];
	snprintf(hex, sizeof hex, "%016" PRIx64, c.fnv1a);
	json_kv_string(&j, "fnv1a", hex);
	json_object_end(&j);
	if (js->has_moe) {
		json_key(&j, "moe");
		json_moe(&j, &js->moe);
	}
	json_kv_string(&j, "output", r->w.out_path);
	json_key(&j, "output_shape");
	json_array_begin(&j);
	for (size_t i = 0; i < w->out_ndim; i++)
		json_uint(&j, w->out_shape[i]);
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
}

int run_workload(const char *cmd, const run_opts *r) {
	const char *out_flag[] = {"out", "lse"}, *out_path[] = {r->w.out_path, r->w.lse_path};
	int rc = outputs_check(cmd, 2, out_flag, out_path);
	if (rc)
		return rc;
	interrupt_install();
	workload w;
	if ((rc = workload_make(cmd, &r->w, &w)))
		return rc;
	rva_engine *e = NULL;
	rva_engine_config ec = workload_engine_config(&r->w, r->threads);
	if ((rc = engine_make(cmd, &ec, &e))) {
		workload_free(&w);
		return rc;
	}
	double *times = calloc(r->repeat, sizeof *times);
	run_stats js;
	memset(&js, 0, sizeof js);
	if (!times) {
		rc = cli_error(EXIT_RUNTIME, "out of memory");
		goto out;
	}
	progress pg;
	progress_start(&pg, "runs", r->repeat);
	for (size_t i = 0; i < r->repeat && !rc; i++) {
		rc = workload_run_once(e, &w, &times[i], &js, &pg, i);
		progress_update(&pg, i + 1);
	}
	progress_end(&pg);
	if (rc)
		goto out;
	if (interrupted()) {
		rc = cli_error(EXIT_RUNTIME, "interrupted");
		goto out;
	}
	if (r->w.out_path && w.out_dtype == RVA_F32 &&
	    (rc = write_npy_output(r->w.out_path, w.out, w.out_ndim, w.out_shape)))
		goto out;
	if (r->w.out_path && w.out_dtype != RVA_F32) { /* '<f2', or bf16 bits as '<u2' */
		rva_status st = rva_npy_save_as(r->w.out_path, w.outh, w.out_dtype, w.out_ndim,
		                                w.out_shape);
		if (st != RVA_OK) {
			rc = cli_lib_error(st, EXIT_RUNTIME, "%s", r->w.out_path);
			goto out;
		}
	}
	if (r->w.lse_path) { /* [B, heads, N] (batch.h: each sequence's [heads][nq]) */
		size_t shape[3] = {w.batch, w.heads, w.nq};
		if ((rc = write_npy_output(r->w.lse_path, w.lse, 3, shape)))
			goto out;
	}
	if (r->json)
		print_json(r, &w, e, times, r->repeat, &js);
	else
		print_text(r, &w, e, times, r->repeat, &js);
	if (fflush(stdout) != 0)
		rc = cli_error(EXIT_RUNTIME, "cannot write the report to stdout");
out:
	free(times);
	rva_engine_destroy(e);
	workload_free(&w);
	return rc;
}

int cmd_run(int argc, char **argv) {
	static const struct option opts[] = {
		WORKLOAD_LONG_OPTIONS,
		{"out", 1, 0, OPT_OUT},
		{"threads", 1, 0, OPT_THREADS},
		{"repeat", 1, 0, OPT_REPEAT},
		{"json", 0, 0, OPT_JSON},
		{"help", 0, 0, 'h'},
		{0, 0, 0, 0},
	};
	run_opts r;
	memset(&r, 0, sizeof r);
	workload_opts_init(&r.w);
	r.repeat = 1;
	opterr = 0;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		int k = workload_option("run", &r.w, c, optarg);
		if (k < 0)
			return EXIT_USAGE;
		if (k > 0)
			continue;
		size_t v;
		switch (c) {
		case OPT_THREADS:
			if (!parse_size("run", "threads", optarg, false, &v))
				return EXIT_USAGE;
			if (v > 65535)
				return cli_usage("run", "--threads %zu is too many", v);
			r.threads = (unsigned)v;
			break;
		case OPT_REPEAT:
			if (!parse_size("run", "repeat", optarg, false, &r.repeat))
				return EXIT_USAGE;
			if (r.repeat > 1000000)
				return cli_usage("run", "--repeat %zu is too many", r.repeat);
			break;
		case OPT_JSON: r.json = true; break;
		case 'h': print_run_help(); return EXIT_OK;
		default: return cli_bad_option("run", c, argv);
		}
	}
	if (optind < argc)
		return cli_usage("run", "unexpected argument '%s'", argv[optind]);
	return run_workload("run", &r);
}

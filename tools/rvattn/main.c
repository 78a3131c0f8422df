/*
 * rvattn — the command-line tool: subcommand dispatch, top-level help and version, and
 * the default job (`rvattn` with no arguments).
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <hwloc.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void print_help(void) {
	printf("Usage: rvattn [COMMAND] [OPTIONS]\n"
	       "\n"
	       "Attention workloads on CPU servers: a NUMA-aware batch engine on BLIS kernels.\n"
	       "\n"
	       "With no command, runs the default job: preset bert (dim 768, 12 heads) self-\n"
	       "attention over a synthetic seeded batch of 32 sequences x 512 tokens on all\n"
	       "allowed cores, and prints the configuration, the BLIS kernels, the placement,\n"
	       "the time, GFLOP/s and a checksum of the output.\n"
	       "\n"
	       "Commands:\n"
	       "  run       run one workload (preset, model or mechanism; .npy in and out)\n"
	       "  bench     scaling benchmark over thread counts (table, JSON, CSV, plot)\n"
	       "  serve-bench  continuous batching over the paged K/V cache under Poisson load\n"
	       "  topo      the topology hwloc sees and the engine's pools and binding\n"
	       "  presets   the presets and what each resolves to\n"
	       "\n"
	       "Options:\n"
	       "  --help     this text ('rvattn COMMAND --help' for a command's options)\n"
	       "  --version  the version\n"
	       "\n"
	       "Exit status: 0 success, 1 runtime error (also: stdout not writable, interrupted\n"
	       "by SIGINT, SIGTERM or SIGHUP), 2 usage error. Settings that are clipped, ignored\n"
	       "or rounded are said in one 'rvattn: warning:' line each.\n"
	       "Environment: RVATTN_BLIS_KERNELS=auto|skx|zen3|haswell|blis overrides the kernel\n"
	       "choice; RVATTN_SIMD=auto|avx512|avx2|scalar, RVATTN_ATTN_KERNEL=auto|fused|blis\n"
	       "and RVATTN_REFERENCE_GEMM=0|1 select kernel twins; HWLOC_XMLFILE /\n"
	       "HWLOC_SYNTHETIC replace the topology (binding is then not real; one that cannot\n"
	       "be loaded is an error).\n");
}

static void print_version(void) {
	unsigned hv = hwloc_get_api_version();
	rva_kernel_set k;
	const char *note = NULL;
	printf("rvattn %s\n", RVATTN_VERSION);
	printf("hwloc %u.%u.%u\n", hv >> 16, (hv >> 8) & 0xff, hv & 0xff);
	if (rva_kernels_current(&k, &note) == RVA_OK)
		printf("BLIS kernels: %s%s%s%s\n", rva_kernel_set_name(k), note ? " (" : "",
		       note ? note : "", note ? ")" : "");
}

int cmd_default(void) {
	run_opts r;
	memset(&r, 0, sizeof r);
	workload_opts_init(&r.w);
	r.w.preset = "bert";
	r.w.dim = 768;
	r.w.batch = 32;
	r.w.seq = 512;
	r.repeat = 3;
	printf("rvattn %s: the default job (see 'rvattn --help' for the commands)\n",
	       RVATTN_VERSION);
	fflush(stdout);
	return run_workload(NULL, &r);
}

static int dispatch(const char *cmd, int argc, char **argv) {
	int drc = cmd_dist(cmd, argc, argv); /* --dist, or topo under mpirun (cmd_dist.c) */
	if (drc >= 0)
		return drc;
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc, argv);
	if (strcmp(cmd, "bench") == 0)
		return cmd_bench(argc, argv);
	if (strcmp(cmd, "serve-bench") == 0)
		return cmd_serve_bench(argc, argv);
	if (strcmp(cmd, "topo") == 0)
		return cmd_topo(argc, argv);
	if (strcmp(cmd, "presets") == 0)
		return cmd_presets(argc, argv);
	if (cmd[0] == '-')
		return cli_usage(NULL, "unknown option %s (commands take options after their name)",
		                 cmd);
	return cli_usage(NULL, "unknown command '%s' (run, bench, serve-bench, topo, presets)", cmd);
}

/* Every command, --help and --version included, fails when its stdout could not be
 * written (a full disk, /dev/full): flush and close it and say so, once. */
static int finish_stdout(int rc) {
	errno = 0;
	bool bad = fflush(stdout) != 0 || ferror(stdout);
	int e = errno;
	if (fclose(stdout) != 0 && !bad) {
		bad = true;
		e = errno;
	}
	if (bad && rc == EXIT_OK)
		rc = e ? cli_error(EXIT_RUNTIME, "cannot write to stdout: %s", strerror(e))
		       : cli_error(EXIT_RUNTIME, "cannot write to stdout");
	return rc;
}

static int run_main(int argc, char **argv);

int main(int argc, char **argv) { return finish_stdout(run_main(argc, argv)); }

static int run_main(int argc, char **argv) {
	if (argc < 2)
		return cmd_default();
	const char *cmd = argv[1];
	if (strcmp(cmd, "help") == 0 && argc > 2) {
		/* "rvattn help run" = "rvattn run --help" */
		char help[] = "--help";
		char *sub[] = {argv[2], help, NULL};
		return dispatch(argv[2], 2, sub);
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		print_help();
		return EXIT_OK;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
		print_version();
		return EXIT_OK;
	}
	return dispatch(cmd, argc - 1, argv + 1);
}

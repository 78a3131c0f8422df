/*
 * The rvattn command-line tool: declarations shared by the subcommands.
 *
 * The tool uses only the public API (include/rvattn/), as hwloc's utilities do; it reads
 * the topology with hwloc directly for display only (`rvattn topo`), while pools and
 * binding always come from the engine.
 *
 * Exit status: 0 success, 1 runtime error, 2 usage error. Errors are one line on stderr
 * starting with "rvattn: ".
 */
#ifndef RVATTN_TOOLS_CLI_H
#define RVATTN_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rvattn/rvattn.h"

#ifndef RVATTN_VERSION
#define RVATTN_VERSION "0.1.0"
#endif

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* ---- errors and messages (util.c) ---------------------------------------------------- */

/* Prints "rvattn: <message>" on stderr and returns code. */
int cli_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "rvattn: warning: <message>" on stderr: a setting that was clipped, ignored or
 * rounded (one line each). */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "rvattn: <context>: <library detail>" for a failed library call (the detail is
 * rva_last_error(), or rva_strerror(st) when empty); returns code. */
int cli_lib_error(rva_status st, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prints a usage error naming the command and pointing to its --help; returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reports an unknown option or a missing argument after getopt_long returned '?' or ':'. */
int cli_bad_option(const char *cmd, int c, char **argv);

/* Number parsing for flags: on failure they print a usage error and return false. */
bool parse_size(const char *cmd, const char *flag, const char *s, bool allow_zero,
                size_t *out);
bool parse_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);
bool parse_float(const char *cmd, const char *flag, const char *s, float *out);
/* A list like "1,2,4-8" of positive integers (at most cap entries). */
bool parse_size_list(const char *cmd, const char *flag, const char *s, size_t *out,
                     size_t cap, size_t *n);

/* Monotonic time in seconds. */
double now_s(void);

/* The CPU model (/proc/cpuinfo "model name", else cpuid vendor/family/model). */
void cpu_model(char *buf, size_t cap);

/* The kernel set in use and how it was chosen ("skx (auto: AVX-512F)"). */
void kernels_line(rva_kernel_set k, char *buf, size_t cap);

/* Median of n values (sorts a copy). */
double median(const double *v, size_t n);

/* ---- output files (outfile.c: the rules are stated at the top of that file) ----------- */

/* Checks the n output options of a command before any work (flags[i] is the option's
 * name without "--", paths[i] its value or NULL): each path resolves, no two name the
 * same file, none is the regular file or FIFO stdout writes to. When one names stdout
 * (/dev/stdout, /dev/fd/1, ...), the report moves to stderr. Returns 0, 1 or 2 (after
 * printing why). */
int outputs_check(const char *cmd, size_t n, const char *const *flags,
                  const char *const *paths);

/* An output being written: rva_outfile (rvattn/outfile.h) plus the interrupt handling. */
typedef struct outfile {
	const char *path;  /* as given, for messages */
	rva_outfile *f;    /* NULL once committed or aborted */
	int fd;            /* the descriptor written to (borrowed from f) */
	bool in_place;     /* a descriptor, device or FIFO written in place */
	bool blocked;      /* the interrupt signals are blocked while a temporary file exists */
} outfile;

/* Opens an output (in place, or a temporary file for a regular target). Returns 0, or
 * prints an error and returns 1. */
int outfile_open(outfile *o, const char *path);
/* Writes len bytes; on failure or interrupt removes the temporary file, prints one line
 * and returns 1. */
int outfile_write(outfile *o, const void *data, size_t len);
/* Finishes: fsync, rename over the target (or close a descriptor written in place).
 * Returns 0, or removes the temporary file, prints one line and returns 1. */
int outfile_commit(outfile *o);
/* Gives up: closes, removes the temporary file (idempotent). */
void outfile_abort(outfile *o);

/* A whole buffer, or a float32 .npy array, to an output. Return 0, or print and return 1. */
int write_output(const char *path, const void *data, size_t len);
int write_npy_output(const char *path, const float *data, size_t ndim, const size_t *shape);

/* ---- interrupts and progress (progress.c) -------------------------------------------- */

/* Installs the handler of SIGINT, SIGTERM and SIGHUP (sets a flag; the same signal again
 * kills). A signal inherited as ignored stays ignored. */
void interrupt_install(void);
/* Whether one of those signals arrived (and was handled). */
bool interrupted(void);
/* Whether one of them is pending (arrived while blocked) on this thread or the process. */
bool interrupt_pending(void);
/* Blocks / unblocks the three signals in the calling thread around a critical section
 * (a temporary output file exists). Nests. */
void interrupt_block(bool block);

typedef struct progress {
	bool enabled;      /* stderr is a terminal */
	double t0, last_draw;
	size_t total, done;
	const char *what;
	bool drawn;
} progress;

void progress_start(progress *p, const char *what, size_t total);
/* Redraws the line (at most 10 times a second, only after the first second). */
void progress_update(progress *p, size_t done);
/* The same with a fraction of a unit done (tasks of the running job). */
void progress_update_frac(progress *p, double done_units);
void progress_end(progress *p);

/* ---- the workload shared by run, bench and the default job (workload.c) --------------- */

typedef struct workload_opts {
	const char *preset, *model, *mechanism;
	size_t dim, heads, kv_heads, batch, seq, kv_seq; /* 0 = not given */
	size_t kv_seq_min;            /* --kv-seq MIN-MAX (ragged keys; kv_seq = MAX), or 0 */
	bool causal;
	size_t block, window, features, experts, top_k; /* 0 = not given */
	size_t global;                                  /* SIZE_MAX = not given */
	float curvature, capacity;                      /* NAN = not given */
	const char *q_path, *k_path, *v_path, *out_path;
	const char *weights_dir;                        /* moe: --weights DIR, or NULL */
	int expert_kind;                                /* moe: rva_expert_kind, -1 = not given */
	uint64_t seed;
	bool seed_given;
	/* engine */
	const char *cpus;
	rva_numa_policy numa;
	rva_kernel_set kernels;
	bool per_pu;
	/* --dtype (Q, K, V) and --out-dtype: element types, 0 = RVA_F32 */
	rva_dtype dtype, out_dtype;
	/* score modifiers (config.h): -1 / SIZE_MAX / NAN = not given */
	int causal_align;
	size_t window_left, window_right;
	float softcap;
	bool alibi;
	const char *bias_path, *mask_path;            /* --bias / --mask .npy files */
	/* RoPE (config.h): -1 / NAN / SIZE_MAX = not given */
	int rope, rope_scaling;
	float rope_theta, rope_factor;
	size_t rope_dim;
	size_t layer;                                   /* --layer: SIZE_MAX = not given */
	/* sparse pattern (config.h): -1 / 0 = not given */
	int pattern;                                  /* rva_sparse_pattern */
	size_t stride, summary;
	/* attention-op layouts (batch.h, config.h): --v-head-dim (0 = head_dim), --layout bhsd
	 * (4-D tensors and synthetic inputs as [B, heads, N, head_dim]), --lse FILE */
	size_t v_head_dim;
	bool bhsd;
	const char *lse_path;
	float scale;                                  /* --scale (rva_runtime.scale): NAN = not
	                                               * given */
	const char *alibi_slopes_path;                /* --alibi-slopes .npy [heads], or NULL */
} workload_opts;

/* Defaults: nothing given, seed 1, numa local, kernels auto. */
void workload_opts_init(workload_opts *o);

/* Long options of the workload (for getopt_long tables) and their handler: returns 1 when
 * it consumed option `c`, 0 when c is not a workload option, -1 (after printing a usage
 * error) when its value is bad. */
enum {
	OPT_PRESET = 1000, OPT_MODEL, OPT_MECHANISM, OPT_DIM, OPT_HEADS, OPT_KV_HEADS, OPT_BATCH,
	OPT_SEQ, OPT_KV_SEQ, OPT_CAUSAL, OPT_BLOCK, OPT_WINDOW, OPT_GLOBAL, OPT_FEATURES,
	OPT_CURVATURE, OPT_EXPERTS, OPT_TOP_K, OPT_CAPACITY, OPT_Q, OPT_K, OPT_V, OPT_OUT,
	OPT_CPUS, OPT_NUMA, OPT_SEED, OPT_KERNELS, OPT_PER_PU, OPT_WEIGHTS, OPT_EXPERT_KIND,
	OPT_DTYPE, OPT_OUT_DTYPE, OPT_CAUSAL_ALIGN, OPT_WINDOW_LEFT, OPT_WINDOW_RIGHT,
	OPT_SOFTCAP, OPT_ALIBI, OPT_BIAS, OPT_MASK, OPT_ROPE, OPT_ROPE_THETA, OPT_ROPE_SCALING,
	OPT_ROPE_FACTOR, OPT_ROPE_DIM, OPT_LAYER,
	OPT_PATTERN, OPT_STRIDE, OPT_SUMMARY,
	OPT_V_HEAD_DIM, OPT_LAYOUT, OPT_LSE, OPT_SCALE, OPT_ALIBI_SLOPES,
	/* command-specific */
	OPT_THREADS, OPT_REPEAT, OPT_JSON, OPT_CSV, OPT_PLOT, OPT_DIM_ONLY, OPT_HELP, OPT_WARMUP,
};
#define WORKLOAD_LONG_OPTIONS                                                            \
	{"preset", 1, 0, OPT_PRESET}, {"model", 1, 0, OPT_MODEL},                             \
	{"mechanism", 1, 0, OPT_MECHANISM}, {"dim", 1, 0, OPT_DIM}, {"heads", 1, 0, OPT_HEADS}, \
	{"kv-heads", 1, 0, OPT_KV_HEADS}, {"batch", 1, 0, OPT_BATCH}, {"seq", 1, 0, OPT_SEQ},  \
	{"kv-seq", 1, 0, OPT_KV_SEQ}, {"causal", 0, 0, OPT_CAUSAL},                           \
	{"block", 1, 0, OPT_BLOCK}, {"window", 1, 0, OPT_WINDOW}, {"global", 1, 0, OPT_GLOBAL}, \
	{"features", 1, 0, OPT_FEATURES}, {"curvature", 1, 0, OPT_CURVATURE},                 \
	{"experts", 1, 0, OPT_EXPERTS}, {"top-k", 1, 0, OPT_TOP_K},                            \
	{"capacity", 1, 0, OPT_CAPACITY}, {"q", 1, 0, OPT_Q}, {"k", 1, 0, OPT_K},              \
	{"v", 1, 0, OPT_V}, {"cpus", 1, 0, OPT_CPUS}, {"numa", 1, 0, OPT_NUMA},               \
	{"seed", 1, 0, OPT_SEED}, {"kernels", 1, 0, OPT_KERNELS}, {"per-pu", 0, 0, OPT_PER_PU}, \
	{"weights", 1, 0, OPT_WEIGHTS}, {"expert-kind", 1, 0, OPT_EXPERT_KIND},               \
	{"dtype", 1, 0, OPT_DTYPE}, {"out-dtype", 1, 0, OPT_OUT_DTYPE},                      \
	{"causal-align", 1, 0, OPT_CAUSAL_ALIGN}, {"window-left", 1, 0, OPT_WINDOW_LEFT},     \
	{"window-right", 1, 0, OPT_WINDOW_RIGHT}, {"softcap", 1, 0, OPT_SOFTCAP},             \
	{"alibi", 0, 0, OPT_ALIBI}, {"bias", 1, 0, OPT_BIAS}, {"mask", 1, 0, OPT_MASK},        \
	{"rope", 1, 0, OPT_ROPE}, {"rope-theta", 1, 0, OPT_ROPE_THETA},                      \
	{"rope-scaling", 1, 0, OPT_ROPE_SCALING}, {"rope-factor", 1, 0, OPT_ROPE_FACTOR},    \
	{"rope-dim", 1, 0, OPT_ROPE_DIM}, {"layer", 1, 0, OPT_LAYER},                        \
	{"pattern", 1, 0, OPT_PATTERN}, {"stride", 1, 0, OPT_STRIDE},                         \
	{"summary", 1, 0, OPT_SUMMARY},                                                    \
	{"v-head-dim", 1, 0, OPT_V_HEAD_DIM}, {"layout", 1, 0, OPT_LAYOUT},                  \
	{"lse", 1, 0, OPT_LSE}, {"scale", 1, 0, OPT_SCALE},                                  \
	{"alibi-slopes", 1, 0, OPT_ALIBI_SLOPES}

int workload_option(const char *cmd, workload_opts *o, int c, const char *arg);

/* Help text of the workload options. */
extern const char workload_help[];

/* A resolved workload: config, data, batch descriptors, output buffer. */
typedef struct workload {
	rva_config cfg;
	const char *source;          /* "preset bert", "model gpt2", "mechanism flash" */
	size_t batch, nq, nk;        /* sequences, query rows, key rows per sequence (ragged:
	                              * the most) */
	size_t nk_min;               /* ragged (--kv-seq MIN-MAX): keys of sequence s spread
	                              * evenly from nk_min (s = 0) to nk (the last); = nk when
	                              * every sequence has nk keys */
	size_t k_rows;               /* key/value rows of all sequences together */
	size_t q_cols, kv_cols;      /* dim, kv_heads * head_dim */
	size_t v_cols, out_cols;     /* kv_heads * v_head_dim, heads * v_head_dim */
	size_t heads, head_dim, kv_heads, v_head_dim; /* resolved */
	bool bhsd;                   /* tensors laid out [B, heads, N, head_dim] */
	float *lse;                  /* --lse: [B][heads][nq] (rva_buffer_alloc), or NULL */
	float call_scale;            /* --scale: rva_runtime.scale of every run (0 = the
	                              * config's) */
	bool alibi_given;            /* --alibi-slopes: the config's slopes came from a file */
	bool synthetic;
	uint64_t seed;                /* of the synthetic inputs */
	float *q, *k, *v, *out;      /* q/k/v may alias the loaded arrays */
	rva_npy_array qa, ka, va;
	rva_npy_array bias_a, mask_a;  /* --bias / --mask files ([nq, nk] or [heads, nq, nk]) */
	uint8_t *mask;                 /* --mask as bytes (nonzero = visible) */
	/* --dtype bf16/f16: Q, K, V stored as such (q/k/v are then NULL): read from files
	 * (qt, kt, vt own them) or the synthetic draws rounded (qh, kh, vh owned, malloc);
	 * --out-dtype bf16/f16: the output in outh (malloc), widened into out by
	 * workload_output_f32() */
	rva_dtype dtype, out_dtype;
	rva_npy_typed qt, kt, vt;
	void *qh, *kh, *vh, *outh;
	size_t out_ndim, out_shape[4];
	rva_seq *seqs;
	rva_batch b;
	rva_attention *att;
	double flops;
	char notes[3][160];          /* conversions of input files */
	size_t n_notes;
} workload;

/* MoE weights read from a --weights directory (moe_weights.c): the arrays the config's
 * pointers refer to until rva_build() has copied them. */
typedef struct moe_weights {
	rva_npy_array router, wq, wo, wk, wv;
	const float **lists;         /* 4 x experts matrix pointers */
	char note[160];              /* which files were used */
} moe_weights;

/* Loads DIR/{router,wq,wo,wk,wv}.npy (each optional, at least one present; see
 * workload_help) into c, checking shapes against c and that every value is finite.
 * Returns 0, or prints the error and returns 1 (bad file) or 2 (not an moe config). */
int moe_weights_load(const char *cmd, const char *dir, rva_config *c, moe_weights *h);
void moe_weights_free(moe_weights *h);

/* Resolves options into a workload (loads or makes data, builds the attention, allocates
 * and pre-faults the output). Returns 0, or prints the error and returns 1 or 2. */
int workload_make(const char *cmd, const workload_opts *o, workload *w);

/* With --out-dtype bf16/f16: widens the output (outh) into out (exact), so reports and
 * checksums read fp32; nothing to do for f32. */
void workload_output_f32(workload *w);

/* Name of an element type for reports: "f32", "bf16", "f16". */
const char *workload_dtype_name(rva_dtype t);
void workload_free(workload *w);

/* Engine configuration from the options (threads 0 = all allowed cores). */
rva_engine_config workload_engine_config(const workload_opts *o, unsigned threads);

/* Creates an engine or prints why not (returns 0/1/2). */
int engine_make(const char *cmd, const rva_engine_config *ec, rva_engine **e);

/* What one run reports: the job's statistics and, for MoE, its routing statistics. */
typedef struct run_stats {
	rva_job_stats job;
	bool has_moe;
	rva_moe_stats moe;
} run_stats;

/* Runs w on e once: submits, polls (cancelling on SIGINT), waits. *secs is the job's wall
 * time. Returns 0, or prints the error and returns 1. */
int workload_run_once(rva_engine *e, workload *w, double *secs, run_stats *stats,
                      progress *pg, size_t pg_done);

/* Key/value rows of sequence s of w (the ragged spread, or w->nk). */
size_t workload_seq_keys(const workload *w, size_t s);

/* Checksums of the output: sum, sum of |x| (double, in order) and FNV-1a of the bytes. */
typedef struct checksum {
	double sum, abs_sum;
	uint64_t fnv1a;
} checksum;
checksum workload_checksum(const workload *w);

/* One-line descriptions. */
void workload_describe(const workload *w, FILE *f);

/* Printing the placement of an engine (text): a summary line and one line per pool. */
void print_placement(FILE *f, rva_engine *e, bool per_worker);

/* ---- JSON (json.c) -------------------------------------------------------------------- */

#include "json.h"

/* JSON of the pieces shared by run and bench. */
void json_config(json *j, const workload *w);
void json_placement(json *j, rva_engine *e);
void json_kernels(json *j, rva_kernel_set k);
void json_moe(json *j, const rva_moe_stats *m);

/* ---- subcommands ------------------------------------------------------------------------ */

int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve_bench(int argc, char **argv);
int cmd_topo(int argc, char **argv);
int cmd_presets(int argc, char **argv);
/* `run`/`bench` with --dist and `topo` under mpirun (cmd_dist.c): returns -1 when the
 * command is none of those (the caller dispatches as usual), else its exit code. */
int cmd_dist(const char *cmd, int argc, char **argv);
int cmd_default(void);

/* The shared body of `run` and the default job. */
typedef struct run_opts {
	workload_opts w;
	unsigned threads;
	size_t repeat;
	bool json;
} run_opts;
int run_workload(const char *cmd, const run_opts *r);

/* gnuplot (plot.c): draws GFLOP/s and speed-up against threads (or ranks: xlabel names
 * the axis). Returns 0, or prints why not and returns 1. */
int plot_scaling(const char *path, const char *title, const char *xlabel,
                 const size_t *threads, const double *gflops, const double *speedup, size_t n);
/* Whether path ends in .png or .svg (case-insensitive). */
bool plot_path_ok(const char *path);
/* gnuplot (plot.c): p50 and p99 step latency (ms) and output tokens/s against the offered
 * load (requests/s), n points (serve-bench). Returns 0, or prints why and returns 1. */
int plot_latency(const char *path, const char *title, const double *rate, const double *p50,
                 const double *p99, const double *tps, size_t n);

#endif

/*
 * attention: the standard shapes of rvattn, timed through the engine, next to the limits
 * measured in the same process (single-thread sgemm GFLOP/s and streaming read GB/s).
 *
 *   G1  B=8  H=12 N=512  D=64            G4  B=1  H=16 N=8192 D=64 causal
 *   G2  B=4  H=12 N=2048 D=64            G5  B=16 H=12 1 query x 4096 keys, D=64 (decode)
 *   G3  G2 causal                         B256 B=256 H=12 N=128 D=64 (many short seqs)
 *   G5Q G5 with grouped-query attention (12 query heads over 2 kv heads)
 *   G5R a ragged decode batch: 16 sequences of 100 to 8192 keys (sequence s of B has
 *       100 + (8192 - 100) * s / (B - 1), as `rvattn bench --kv-seq 100-8192`), H12 D64
 *   + linear, local-global, hyperbolic, MoE (Switch preset: with standard experts, the
 *     Mixture of Attention Heads form, and with the default mixed experts) and a Bert
 *     transformer block at G1/G2 sizes. MoE rows also print the busy time of the busiest
 *     and least busy worker per run (expert-task balance).
 *   G2A, G2S, G2B: G2 with ALiBi, softcap 50, an additive bias [N, N] (score modifiers).
 *   G2R: G2 with RoPE (neox, theta 10000 on the whole head): the rotation of Q and K
 *        once per job against plain G2.
 *   G2H: G2 with q, k, v and out in PyTorch's [B, H, N, D] layout, read in place through
 *       head strides (rva_seq.q_head_stride = N * D, row stride D); G3H: G3 so.
 *
 * For each row and thread count: median of --repeat runs (default 5) after a warm-up,
 * GFLOP/s (4*B*H*Nq*Nk*D, unmasked pairs only when causal), fraction of the sgemm limit
 * (per thread), fraction of the FMA peak at that thread count (bench_fma_peak_gflops), GB/s for decode (K and V bytes read), and the peak RSS of the row
 * (VmHWM reset before each row). Buffers are allocated and pre-faulted before timing.
 *
 *   build/bench/attention [--threads 1,2] [--repeat R] [--rows G1,G2,...] [--json FILE]
 *                         [--clock wall|cpu]
 *
 * --clock cpu times each run by the process's CPU time (bench_process_cpu_now) instead of
 * the wall clock: on a machine shared with other work, time while descheduled is left out
 * (meaningful with --threads 1; GB/s and the limits stay wall-clock figures).
 *
 * Long rows run only when named: M32K (B=1 H=16 N=32768 causal: peak RSS against the
 * inputs), LIN64K and FL64K (linear vs flash at N = 65536), C32K and W32K (B=1 H=4
 * N=32768 D=64 causal, dense and with a sliding window of 4096 keys: the window's cost
 * against its share of the causal pairs).
 */
#define _GNU_SOURCE 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "rvattn/rvattn.h"

typedef enum { OP_ATTN, OP_PIPE } op_kind;

typedef struct row_def {
	const char *name;
	const char *what;
	size_t B, H, nq, nk, D;
	bool causal;
	bool decode;
	int preset;        /* FLASH_ROW or an rva_preset */
	op_kind kind;
	bool optional;     /* long rows: only when named in --rows */
} row_def;

/* Decode rows with grouped-query attention or ragged keys: kv heads (0 = H), and keys from
 * nk_min to nk over the sequences (0 = every sequence nk). */
static const struct {
	const char *name;
	size_t kvh, nk_min;
} row_kv[] = {{"G5Q", 2, 0}, {"G5R", 0, 100}};

/* Score-modifier rows (config.h "Score modifiers"): ALiBi, softcap 50, a bias shared by the
 * heads and sequences (rva_seq.bias, [N, N]), a causal sliding window of window_left + 1
 * keys. GFLOP/s count the visible pairs only (rva_attention_flops). */
static const struct {
	const char *name;
	bool alibi, bias;
	float softcap;
	size_t window_left;    /* 0 = no window */
} row_mods[] = {{"G2A", true, false, 0.0f, 0}, {"G2S", false, false, 50.0f, 0},
                {"G2B", false, true, 0.0f, 0}, {"W32K", false, false, 0.0f, 4095}};

/* RoPE rows (config.h: rope): neox, theta 10000, rope_dim = head_dim. */
static bool row_rope(const row_def *r) { return !strcmp(r->name, "G2R"); }
/* Rows whose tensors are [B, H, N, D] (head strides, batch.h) instead of [B, N, H, D]. */
static bool row_bhsd(const row_def *r) {
	return !strcmp(r->name, "G2H") || !strcmp(r->name, "G3H");
}

static int row_mod(const row_def *r) {
	for (size_t i = 0; i < sizeof row_mods / sizeof row_mods[0]; i++)
		if (!strcmp(row_mods[i].name, r->name))
			return (int)i;
	return -1;
}

static size_t row_kvh(const row_def *r) {
	for (size_t i = 0; i < sizeof row_kv / sizeof row_kv[0]; i++)
		if (!strcmp(row_kv[i].name, r->name) && row_kv[i].kvh)
			return row_kv[i].kvh;
	return r->H;
}

/* The row's mechanism: flash(dim, 128), the Switch preset with standard softmax experts
 * (Mixture of Attention Heads), or a preset; then its heads and causality. */
#define FLASH_ROW (-1)
#define MOA_ROW (-2)

static rva_config row_config(int preset, size_t dim, size_t H, bool causal) {
	rva_config c = preset == FLASH_ROW ? rva_flash(dim, 128)
	               : preset == MOA_ROW ? rva_preset_config(RVA_PRESET_SWITCH_TRANSFORMER, dim)
	                                   : rva_preset_config((rva_preset)preset, dim);
	if (preset == MOA_ROW)
		c.expert_kind = RVA_EXPERTS_STANDARD;
	c.heads = H;
	c.causal = causal;
	return c;
}

static const row_def rows[] = {
	{"G1", "flash", 8, 12, 512, 512, 64, false, false, FLASH_ROW, OP_ATTN, false},
	{"G2", "flash", 4, 12, 2048, 2048, 64, false, false, FLASH_ROW, OP_ATTN, false},
	{"G3", "flash causal", 4, 12, 2048, 2048, 64, true, false, FLASH_ROW, OP_ATTN, false},
	{"G4", "flash causal", 1, 16, 8192, 8192, 64, true, false, FLASH_ROW, OP_ATTN, false},
	{"G5", "flash decode", 16, 12, 1, 4096, 64, false, true, FLASH_ROW, OP_ATTN, false},
	{"G5Q", "flash decode GQA 12/2", 16, 12, 1, 4096, 64, false, true, FLASH_ROW, OP_ATTN, false},
	{"G5R", "flash decode ragged", 16, 12, 1, 8192, 64, false, true, FLASH_ROW, OP_ATTN, false},
	{"B256", "flash, 256 short seqs", 256, 12, 128, 128, 64, false, false, FLASH_ROW, OP_ATTN,
	 false},
	{"L1", "linear (Performer)", 8, 12, 512, 512, 64, false, false, RVA_PRESET_PERFORMER, OP_ATTN, false},
	{"L2", "linear (Performer)", 4, 12, 2048, 2048, 64, false, false, RVA_PRESET_PERFORMER, OP_ATTN, false},
	{"LG2", "local-global (Longformer)", 4, 12, 2048, 2048, 64, false, false, RVA_PRESET_LONGFORMER, OP_ATTN, false},
	{"HY1", "hyperbolic", 8, 12, 512, 512, 64, false, false, RVA_PRESET_HYPERBOLIC_TREE, OP_ATTN, false},
	{"MOE1", "MoE (Switch, std experts)", 8, 12, 512, 512, 64, false, false, MOA_ROW, OP_ATTN, false},
	{"MOE2", "MoE (Switch, mixed experts)", 8, 12, 512, 512, 64, false, false, RVA_PRESET_SWITCH_TRANSFORMER, OP_ATTN, false},
	{"BERT1", "Bert block (pipeline)", 8, 12, 512, 512, 64, false, false, RVA_PRESET_BERT, OP_PIPE, false},
	{"BERT2", "Bert block (pipeline)", 4, 12, 2048, 2048, 64, false, false, RVA_PRESET_BERT, OP_PIPE, false},
	/* O(tile) memory at long context, and linear vs flash at N = 65536 */
	{"M32K", "flash causal, memory", 1, 16, 32768, 32768, 64, true, false, FLASH_ROW, OP_ATTN,
	 true},
	{"LIN64K", "linear (Performer)", 1, 12, 65536, 65536, 64, false, false, RVA_PRESET_PERFORMER, OP_ATTN,
	 true},
	{"FL64K", "flash", 1, 12, 65536, 65536, 64, false, false, FLASH_ROW, OP_ATTN, true},
	/* score modifiers (row_mods) against G2, and a window against dense causal at 32K */
	{"G2A", "flash + ALiBi", 4, 12, 2048, 2048, 64, false, false, FLASH_ROW, OP_ATTN, false},
	{"G2S", "flash + softcap 50", 4, 12, 2048, 2048, 64, false, false, FLASH_ROW, OP_ATTN, false},
	{"G2B", "flash + bias [N, N]", 4, 12, 2048, 2048, 64, false, false, FLASH_ROW, OP_ATTN, false},
	{"G2R", "flash + RoPE neox", 4, 12, 2048, 2048, 64, false, false, FLASH_ROW, OP_ATTN, false},
	/* [B, H, N, D] tensors through head strides, against G2 / G3 */
	{"G2H", "flash [B, H, N, D]", 4, 12, 2048, 2048, 64, false, false, FLASH_ROW, OP_ATTN, false},
	{"G3H", "flash causal [B, H, N, D]", 4, 12, 2048, 2048, 64, true, false, FLASH_ROW, OP_ATTN,
	 false},
	{"C32K", "flash causal", 1, 4, 32768, 32768, 64, true, false, FLASH_ROW, OP_ATTN, true},
	{"W32K", "flash causal window 4096", 1, 4, 32768, 32768, 64, true, false, FLASH_ROW, OP_ATTN,
	 true},
};
#define NROWS (sizeof rows / sizeof rows[0])

/* --clock cpu: runs timed by the process's CPU time (bench_process_cpu_now). */
static bool use_cpu_clock = false;

static void reset_peak_rss(void) {
	FILE *f = fopen("/proc/self/clear_refs", "w");
	if (f) {
		fputs("5", f); /* resets VmHWM to the current RSS */
		fclose(f);
	}
}

static size_t peak_rss_now(void) {
	FILE *f = fopen("/proc/self/status", "r");
	size_t kb = 0;
	char line[256];
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			kb = strtoull(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kb * 1024;
}

/* Streaming read of the K and V buffers (bytes each) on the row's engine
 * (rva_engine_read_probe: the same workers and binding as the job), GB/s, median of reps. */
static double read_bandwidth(rva_engine *e, const float *k, const float *v, size_t bytes,
                             int reps) {
	double *times = malloc((size_t)reps * sizeof *times);
	const void *bufs[2] = {k, v};
	size_t lens[2] = {bytes, bytes};
	for (int r = -1; r < reps; r++) {
		double t = 0.0;
		if (rva_engine_read_probe(e, bufs, lens, 2, &t) != RVA_OK) {
			free(times);
			return 0.0;
		}
		if (r >= 0)
			times[r] = t;
	}
	double med = bench_median(times, (size_t)reps);
	free(times);
	return 2.0 * (double)bytes / med * 1e-9;
}

/* Keys of sequence s of row r (the ragged spread, or r->nk). */
static size_t row_keys(const row_def *r, size_t s) {
	for (size_t i = 0; i < sizeof row_kv / sizeof row_kv[0]; i++)
		if (!strcmp(row_kv[i].name, r->name) && row_kv[i].nk_min && r->B > 1)
			return row_kv[i].nk_min + (r->nk - row_kv[i].nk_min) * s / (r->B - 1);
	return r->nk;
}

typedef struct result {
	double median_s, gflops, frac, gbps, read_gbps;
	size_t rss;
	double io_bytes;
	double moe_overhead;   /* (routing + assignment + combine) / experts' time */
	double busy_max_ms, busy_min_ms; /* busiest and least busy worker, per run */
	rva_status st;
} result;

static result run_row(const row_def *r, unsigned threads, int reps, double limit) {
	result res = {0};
	size_t dim = r->H * r->D, B = r->B;
	size_t kvh = row_kvh(r), kvdim = kvh * r->D;
	size_t nq_rows = B * r->nq, nk_rows = 0;
	for (size_t b = 0; b < B; b++)
		nk_rows += row_keys(r, b);
	reset_peak_rss();
	float *q = bench_buffer(nq_rows * dim, 1), *k = bench_buffer(nk_rows * kvdim, 2);
	float *v = bench_buffer(nk_rows * kvdim, 3), *o = bench_buffer(nq_rows * dim, 4);
	res.io_bytes = (double)(2 * nq_rows * dim + 2 * nk_rows * kvdim) * sizeof(float);
	rva_seq *seqs = calloc(B, sizeof *seqs);
	for (size_t b = 0, krow = 0; b < B; b++) {
		seqs[b] = (rva_seq){.nq = r->nq, .nk = row_keys(r, b), .q = q + b * r->nq * dim,
		                    .k = k + krow * kvdim, .v = v + krow * kvdim,
		                    .out = o + b * r->nq * dim};
		if (row_bhsd(r)) { /* the same buffers, each sequence's block as [H][N][D] */
			seqs[b].q_stride = seqs[b].out_stride = r->D;
			seqs[b].k_stride = seqs[b].v_stride = r->D;
			seqs[b].q_head_stride = seqs[b].out_head_stride = r->nq * r->D;
			seqs[b].k_head_stride = seqs[b].v_head_stride = seqs[b].nk * r->D;
		}
		krow += seqs[b].nk;
	}
	int mod = row_mod(r);
	float *bias = NULL;
	if (mod >= 0 && row_mods[mod].bias) {
		bias = bench_buffer(r->nq * r->nk, 5);
		for (size_t b = 0; b < B; b++)
			seqs[b].bias = bias; /* [nq, nk], broadcast over heads and sequences */
	}
	rva_batch batch = {B, seqs};
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = threads;
	rva_engine *e = NULL;
	rva_attention *att = NULL;
	rva_pipeline *pipe = NULL;
	rva_config cfg = row_config(r->preset, dim, r->H, r->causal);
	cfg.kv_heads = kvh == r->H ? 0 : kvh;
	if (mod >= 0) {
		cfg.alibi = row_mods[mod].alibi;
		cfg.softcap = row_mods[mod].softcap;
		cfg.sliding_window = row_mods[mod].window_left > 0;
		cfg.window_left = row_mods[mod].window_left;
	}
	if (row_rope(r))
		cfg.rope = RVA_ROPE_NEOX;
	double flops = 0.0;
	if ((res.st = rva_engine_create(&ec, &e)) != RVA_OK ||
	    (res.st = rva_build(&cfg, &att)) != RVA_OK ||
	    (res.st = rva_attention_flops(att, &batch, &flops)) != RVA_OK)
		goto out;
	if (r->kind == OP_PIPE) {
		if ((res.st = rva_transformer_block(att, 0.1f, &pipe)) != RVA_OK)
			goto out; /* att is still ours: released at out */
		att = NULL; /* the pipeline holds our reference */
	}
	double *t = malloc((size_t)reps * sizeof *t);
	rva_moe_stats ms = {0};
	rva_runtime rt = {.moe_stats = cfg.mechanism == RVA_MECH_MOE ? &ms : NULL};
	double moe_over = 0.0;
	for (int i = -1; i < reps; i++) {
		double t0 = use_cpu_clock ? bench_process_cpu_now() : bench_now();
		res.st = pipe ? rva_engine_run_pipeline(e, pipe, &batch, &rt, NULL, NULL)
		              : rva_engine_run(e, att, &batch, &rt, NULL, NULL);
		if (res.st == RVA_OK && rt.moe_stats && i >= 0 && ms.expert_ns)
			moe_over += (double)(ms.router_ns + ms.assign_ns + ms.combine_ns) /
			            (double)ms.expert_ns / reps;
		if (res.st != RVA_OK) {
			free(t);
			goto out;
		}
		if (i >= 0)
			t[i] = (use_cpu_clock ? bench_process_cpu_now() : bench_now()) - t0;
	}
	res.median_s = bench_median(t, (size_t)reps);
	res.moe_overhead = moe_over;
	/* worker balance: busy time inside tasks since the engine was created (warm-up and
	 * timed runs of this row), per run */
	rva_engine_info inf;
	if (rva_engine_info_get(e, &inf) == RVA_OK && inf.workers > 0) {
		res.busy_min_ms = 1e300;
		for (unsigned w = 0; w < inf.workers; w++) {
			rva_worker_info wi;
			if (rva_engine_worker(e, w, &wi) != RVA_OK)
				continue;
			double busy = (double)wi.busy_ns * 1e-6 / (double)(reps + 1);
			res.busy_max_ms = busy > res.busy_max_ms ? busy : res.busy_max_ms;
			res.busy_min_ms = busy < res.busy_min_ms ? busy : res.busy_min_ms;
		}
	}
	free(t);
	res.gflops = flops / res.median_s * 1e-9;
	res.frac = res.gflops / (limit * threads);
	if (r->decode) {
		size_t kv_bytes = nk_rows * kvdim * sizeof(float);
		res.gbps = 2.0 * (double)kv_bytes / res.median_s * 1e-9;
		res.read_gbps = read_bandwidth(e, k, v, kv_bytes, reps);
	}
	res.rss = peak_rss_now();
out:
	if (res.st != RVA_OK)
		fprintf(stderr, "attention: %s: %s\n", r->name, rva_last_error());
	rva_pipeline_destroy(pipe);
	rva_attention_destroy(att);
	rva_engine_destroy(e);
	free(seqs);
	free(bias);
	free(q);
	free(k);
	free(v);
	free(o);
	return res;
}

int main(int argc, char **argv) {
	unsigned tlist[16];
	size_t nt = 0;
	int reps = 5;
	const char *only = NULL, *json = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			char *s = argv[++i], *tok;
			while ((tok = strsep(&s, ",")) && nt < 16)
				tlist[nt++] = (unsigned)atoi(tok);
		} else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
			reps = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--rows") && i + 1 < argc) {
			only = argv[++i];
		} else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
			json = argv[++i];
		} else if (!strcmp(argv[i], "--clock") && i + 1 < argc &&
		           (!strcmp(argv[i + 1], "wall") || !strcmp(argv[i + 1], "cpu"))) {
			use_cpu_clock = !strcmp(argv[++i], "cpu");
		} else {
			fprintf(stderr, "usage: attention [--threads 1,2] [--repeat R] [--rows G1,G2] "
			                "[--json FILE] [--clock wall|cpu]\n");
			return 2;
		}
	}
	if (reps < 1)
		reps = 1;
	if (nt == 0) {
		tlist[nt++] = 1;
		if (bench_cores() > 1)
			tlist[nt++] = bench_cores();
	}
	bench_header(stdout, "attention");
	double limit = bench_sgemm_gflops(1024, 1024, 1024, 7, 1);
	printf("# limit: single-thread sgemm 1024^3 = %.1f GFLOP/s (same process)\n", limit);
	double fma[16];
	for (size_t ti = 0; ti < nt; ti++) {
		fma[ti] = bench_fma_peak_gflops(tlist[ti], 7);
		printf("# FMA peak, %u thread(s) = %.1f GFLOP/s (sgemm limit x threads is %.0f%% of it)\n",
		       tlist[ti], fma[ti], fma[ti] > 0.0 ? 100.0 * limit * tlist[ti] / fma[ti] : 0.0);
	}
	if (use_cpu_clock)
		printf("# clock: process CPU time (median ms and GFLOP/s; the limits are wall clock)\n");
	printf("%-6s %-26s %3s %10s %9s %8s %6s %8s %8s %9s\n", "row", "what", "thr", "median ms",
	       "GFLOP/s", "of-limit", "of-fma", "GB/s", "read", "peakRSS");
	FILE *jf = json ? fopen(json, "w") : NULL;
	if (json && !jf) {
		perror(json);
		return 1;
	}
	if (jf)
		fprintf(jf, "{\"cpu\": \"%s\", \"sgemm_limit_gflops\": %.3f, "
		        "\"fma_peak_gflops_1t\": %.3f, \"rows\": [",
		        bench_cpu_model(), limit, tlist[0] == 1 ? fma[0] : bench_fma_peak_gflops(1, 7));
	int first = 1, failed = 0;
	for (size_t i = 0; i < NROWS; i++) {
		const row_def *r = &rows[i];
		if (r->optional && !only)
			continue;
		if (only) {
			char pat[32];
			snprintf(pat, sizeof pat, ",%s,", r->name);
			char list[512];
			snprintf(list, sizeof list, ",%s,", only);
			if (!strstr(list, pat))
				continue;
		}
		for (size_t ti = 0; ti < nt; ti++) {
			result res = run_row(r, tlist[ti], reps, limit);
			if (res.st != RVA_OK) {
				failed = 1;
				continue;
			}
			char note[160] = "";
			if (r->decode)
				snprintf(note, sizeof note, "  %.0f%% of read", 100.0 * res.gbps / res.read_gbps);
			if (res.moe_overhead > 0.0)
				snprintf(note, sizeof note, "  routing+combine %.1f%% of experts; workers "
				         "busy %.1f / %.1f ms (max/min %.3f)", 100.0 * res.moe_overhead,
				         res.busy_max_ms, res.busy_min_ms,
				         res.busy_min_ms > 0.0 ? res.busy_max_ms / res.busy_min_ms : 0.0);
			double of_fma = fma[ti] > 0.0 ? res.gflops / fma[ti] : 0.0;
			printf("%-6s %-26s %3u %10.2f %9.1f %7.0f%% %5.0f%% %8.1f %8.1f %8.0fM  (%.2fx io)%s\n",
			       r->name, r->what, tlist[ti], res.median_s * 1e3, res.gflops,
			       100.0 * res.frac, 100.0 * of_fma, res.gbps, res.read_gbps, (double)res.rss / 1048576.0,
			       (double)res.rss / res.io_bytes, note);
			fflush(stdout);
			if (jf) {
				fprintf(jf, "%s{\"row\": \"%s\", \"what\": \"%s\", \"B\": %zu, \"H\": %zu, "
				            "\"nq\": %zu, \"nk\": %zu, \"D\": %zu, \"causal\": %s, "
				            "\"threads\": %u, \"median_ms\": %.4f, \"gflops\": %.3f, "
				            "\"fraction_of_limit\": %.4f, \"fraction_of_fma\": %.4f, \"gbps\": %.3f, \"read_gbps\": %.3f, "
				            "\"peak_rss_bytes\": %zu, \"io_bytes\": %.0f, "
				            "\"moe_overhead\": %.4f, \"busy_max_ms\": %.3f, "
				            "\"busy_min_ms\": %.3f}",
				        first ? "" : ", ", r->name, r->what, r->B, r->H, r->nq, r->nk, r->D,
				        r->causal ? "true" : "false", tlist[ti], res.median_s * 1e3, res.gflops,
				        res.frac, of_fma, res.gbps, res.read_gbps, res.rss, res.io_bytes, res.moe_overhead,
				        res.busy_max_ms, res.busy_min_ms);
				first = 0;
			}
		}
	}
	if (jf) {
		fprintf(jf, "]}\n");
		fclose(jf);
	}
	return failed;
}

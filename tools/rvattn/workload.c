/*
 * The workload shared by `rvattn run`, `rvattn bench` and the default job: options,
 * resolution into a config and a batch (inputs from .npy files or synthetic), running it
 * on an engine, checksums and reports.
 *
 * Synthetic inputs: Q has B x N rows of dim floats, K and V have B x M rows of
 * kv_heads * head_dim floats (M = --kv-seq, default N: self-attention shapes). The three
 * tensors are drawn independently (K = V = Q would make every query attend almost only to
 * itself, a degenerate case that tells little about speed or numbers): element i of
 * tensor t (0 = Q, 1 = K, 2 = V) is 2 * u - 1 with u = (h >> 40) / 2^24 and
 * h = splitmix64(splitmix64(seed) ^ (t << 56) ^ i), so any program can rebuild them.
 * With --q alone, K = V = Q (self-attention on the given data).
 */
#define _GNU_SOURCE 1
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

const char workload_help[] =
	"Workload (what to compute):\n"
	"  --preset NAME       a preset: bert gpt longformer performer flash_optimized\n"
	"                      switch_transformer hyperbolic_tree t5 vit sparse_transformer\n"
	"                      llama-2 llama-3 mistral gemma-2 qwen2 (default: bert)\n"
	"  --layer N           the preset's layer N (gemma-2 alternates: even layers window\n"
	"                      4096, odd layers global; the others are the same everywhere)\n"
	"  --model NAME        a model name (bert-base, gpt2, t5, vit, ...), as from_model_name\n"
	"  --mechanism NAME    scaled_dot|multi_head|flash|linear|local_global|hyperbolic|moe\n"
	"  --dim D             model dimension (default: the width of --q, the decoder\n"
	"                      preset's or model's own (4096; qwen2 3584), else 768)\n"
	"  --heads H           query heads (default: the preset's; multi_head/flash: dim/64)\n"
	"  --kv-heads H        key/value heads, dividing --heads (grouped-query attention)\n"
	"  --batch B           sequences (default 32)\n"
	"  --seq N             query rows per sequence (default 512)\n"
	"  --kv-seq M          key/value rows per sequence (default N); MIN-MAX: a ragged\n"
	"                      batch (synthetic inputs), sequence s of B with\n"
	"                      MIN + (MAX - MIN) * s / (B - 1) keys (e.g. --seq 1\n"
	"                      --kv-seq 100-8192: a decode batch of 100 to 8192 keys)\n"
	"  --causal            causal masking\n"
	"  --block N           keys per softmax tile (flash block size)\n"
	"  --causal-align A    bottom-right (default: query i at nk - nq + i) or top-left\n"
	"                      (PyTorch is_causal: query i at i); softmax mechanisms\n"
	"  --window-left L --window-right R\n"
	"                      sliding window (FlashAttention window_size): query at position\n"
	"                      p sees keys p - L .. p + R; a side not given is unbounded\n"
	"  --softcap C         logit softcap C tanh(s / C) (Gemma 2); 0 = off\n"
	"  --alibi             ALiBi biases with the paper's default slopes per head\n"
	"  --alibi-slopes FILE ALiBi with the given slopes, .npy float [heads] (>= 0)\n"
	"  --bias FILE         additive logit bias, .npy float [N, M] or [heads, N, M] (N\n"
	"                      queries, M keys), the same for every sequence\n"
	"  --mask FILE         boolean mask, .npy float of the same shapes, nonzero = visible\n"
	"  --rope L            rotary position embedding on Q and K: neox (rotate-half pairs,\n"
	"                      Hugging Face Llama) or gptj (interleaved pairs); key j at\n"
	"                      position j, query i at its causal-align position\n"
	"  --rope-theta T      RoPE base (default 10000)\n"
	"  --rope-scaling S    linear (positions / F) or ntk (theta F^(R/(R-2))), with\n"
	"  --rope-factor F     the scaling factor (default 1)\n"
	"  --rope-dim R        rotated elements per head, even (default head_dim)\n"
	"  --pattern P         sparse pattern of scaled_dot, multi_head or flash (causal):\n"
	"                      dense (default), strided (Sparse Transformer: the L most recent\n"
	"                      keys and every L-th earlier one) or fixed (its own block of L\n"
	"                      positions and the last C positions of every block)\n"
	"  --stride L          strided / fixed: L (default 128)\n"
	"  --summary C         fixed: summary positions per block, 1..L (default min(16, L))\n"
	"  --window N          local_global window (even)\n"
	"  --global N          local_global: number of leading global tokens\n"
	"  --features N        linear: random features\n"
	"  --curvature C       hyperbolic: curvature (< 0)\n"
	"  --experts E         moe: experts\n"
	"  --top-k K           moe: experts per token\n"
	"  --capacity F        moe: capacity factor\n"
	"  --expert-kind KIND  moe: mixed|standard|hyperbolic|linear experts (default mixed)\n"
	"  --dtype T           element type of Q, K and V: f32 (default), bf16 or f16 (inputs\n"
	"                      converted on load, synthetic ones drawn in f32 and rounded;\n"
	"                      with bf16, uint16 '<u2' files are read as bf16 bits); every\n"
	"                      mechanism; the distributed runs (rvattn_mpi) refuse bf16/f16\n"
	"  --out-dtype T       element type of the output and of --out's .npy: f32 (default),\n"
	"                      f16 ('<f2') or bf16 (stored as uint16 '<u2')\n"
	"  --q FILE --k FILE --v FILE\n"
	"                      inputs as .npy float32 (float64/float16 converted), C order,\n"
	"                      shape [B, N, dim], [B, N, heads, head_dim] or [N, dim]; K and V\n"
	"                      may have kv heads. --q alone: K = V = Q. Without --q, Q, K and V\n"
	"                      are independent seeded uniform(-1, 1) draws.\n"
	"  --layout L          bshd (default) or bhsd: 4-D --q/--k/--v files and --out are\n"
	"                      [B, heads, N, head_dim] (PyTorch's default layout), read in\n"
	"                      place through head strides; synthetic inputs are laid out so\n"
	"                      too (softmax mechanisms)\n"
	"  --v-head-dim DV     head dim of V and of the output (softmax mechanisms; default\n"
	"                      head_dim): V rows kv_heads x DV, output rows heads x DV (MLA:\n"
	"                      --heads 16 --dim 3072 --v-head-dim 128)\n"
	"  --lse FILE          (run) write each query row's log-sum-exp per head as .npy\n"
	"                      float32 [B, heads, N] (softmax mechanisms; -inf for a row that\n"
	"                      sees no key)\n"
	"  --scale S           logit scale of the call (rva_runtime.scale) instead of\n"
	"                      1/sqrt(head_dim) (softmax mechanisms)\n"
	"  --seed S            seed of the synthetic inputs and of the mechanism's random\n"
	"                      parameters (default: inputs 1, mechanism the library default)\n"
	"  --weights DIR       moe: router and expert weights from DIR, each file optional\n"
	"                      (missing ones are seeded), .npy C order, x W convention:\n"
	"                        router.npy [E, dim]        gate logits W x\n"
	"                        wq.npy     [E, dim, dim]   expert queries x @ wq[e]\n"
	"                        wo.npy     [E, dim, dim]   expert outputs a @ wo[e]\n"
	"                        wk.npy     [kv_dim, kv_dim] shared keys K @ wk, or\n"
	"                                   [E, kv_dim, kv_dim] one per expert\n"
	"                        wv.npy     as wk.npy, for the values\n"
	"                      (tests/ref/moa_torch.py writes such directories)\n"
	"Engine (where it runs):\n"
	"  --cpus SET          allowed cores: PU list '0-7,16' or TYPE:RANGE ('core:0-3',\n"
	"                      'numa:1', 'package:0'); default all allowed. PUs that\n"
	"                      do not exist or are not allowed are dropped (a warning)\n"
	"  --numa POLICY       local|spread|interleave (default local)\n"
	"  --per-pu            one worker per PU instead of per core\n"
	"  --kernels SET       BLIS kernels: auto|skx|zen3|haswell|blis (default auto)\n";

void workload_opts_init(workload_opts *o) {
	memset(o, 0, sizeof *o);
	o->global = SIZE_MAX;
	o->curvature = NAN;
	o->capacity = NAN;
	o->expert_kind = -1;
	o->causal_align = -1;
	o->window_left = o->window_right = SIZE_MAX;
	o->softcap = NAN;
	o->scale = NAN;
	o->rope = o->rope_scaling = -1;
	o->rope_theta = o->rope_factor = NAN;
	o->rope_dim = SIZE_MAX;
	o->layer = SIZE_MAX;
	o->pattern = -1;
	o->seed = 1;
	o->numa = RVA_NUMA_LOCAL;
	o->kernels = RVA_KERNELS_AUTO;
}

int workload_option(const char *cmd, workload_opts *o, int c, const char *arg) {
	rva_status st;
	switch (c) {
	case OPT_PRESET: {
		rva_preset p;
		if ((st = rva_preset_from_name(arg, &p)) != RVA_OK) {
			cli_usage(cmd, "--preset: %s", rva_last_error());
			return -1;
		}
		o->preset = arg;
		return 1;
	}
	case OPT_MODEL: o->model = arg; return 1;
	case OPT_MECHANISM: {
		rva_mechanism m;
		if ((st = rva_mechanism_parse(arg, &m)) != RVA_OK) {
			cli_usage(cmd, "--mechanism: %s", rva_last_error());
			return -1;
		}
		o->mechanism = arg;
		return 1;
	}
	case OPT_DIM: return parse_size(cmd, "dim", arg, false, &o->dim) ? 1 : -1;
	case OPT_HEADS: return parse_size(cmd, "heads", arg, false, &o->heads) ? 1 : -1;
	case OPT_KV_HEADS: return parse_size(cmd, "kv-heads", arg, false, &o->kv_heads) ? 1 : -1;
	case OPT_BATCH: return parse_size(cmd, "batch", arg, false, &o->batch) ? 1 : -1;
	case OPT_SEQ: return parse_size(cmd, "seq", arg, false, &o->seq) ? 1 : -1;
	case OPT_KV_SEQ: {
		const char *dash = strchr(arg, '-');
		o->kv_seq_min = 0;
		if (!dash)
			return parse_size(cmd, "kv-seq", arg, false, &o->kv_seq) ? 1 : -1;
		char lo[32];
		size_t n = (size_t)(dash - arg);
		if (n == 0 || n >= sizeof lo) {
			cli_usage(cmd, "--kv-seq '%s': expected M or MIN-MAX", arg);
			return -1;
		}
		memcpy(lo, arg, n);
		lo[n] = '\0';
		if (!parse_size(cmd, "kv-seq", lo, false, &o->kv_seq_min) ||
		    !parse_size(cmd, "kv-seq", dash + 1, false, &o->kv_seq))
			return -1;
		if (o->kv_seq_min > o->kv_seq) {
			cli_usage(cmd, "--kv-seq %s: MIN is above MAX", arg);
			return -1;
		}
		return 1;
	}
	case OPT_CAUSAL: o->causal = true; return 1;
	case OPT_CAUSAL_ALIGN:
		if (strcmp(arg, "bottom-right") == 0)
			o->causal_align = RVA_CAUSAL_BOTTOM_RIGHT;
		else if (strcmp(arg, "top-left") == 0)
			o->causal_align = RVA_CAUSAL_TOP_LEFT;
		else {
			cli_usage(cmd, "--causal-align '%s': expected bottom-right or top-left", arg);
			return -1;
		}
		return 1;
	case OPT_WINDOW_LEFT:
		return parse_size(cmd, "window-left", arg, true, &o->window_left) ? 1 : -1;
	case OPT_WINDOW_RIGHT:
		return parse_size(cmd, "window-right", arg, true, &o->window_right) ? 1 : -1;
	case OPT_SOFTCAP:
		if (!parse_float(cmd, "softcap", arg, &o->softcap))
			return -1;
		if (!(o->softcap >= 0.0f)) {
			cli_usage(cmd, "--softcap %s: must be >= 0 (0 = off)", arg);
			return -1;
		}
		return 1;
	case OPT_ALIBI: o->alibi = true; return 1;
	case OPT_ALIBI_SLOPES:
		o->alibi = true;
		o->alibi_slopes_path = arg;
		return 1;
	case OPT_ROPE:
		if (strcmp(arg, "neox") == 0)
			o->rope = RVA_ROPE_NEOX;
		else if (strcmp(arg, "gptj") == 0)
			o->rope = RVA_ROPE_GPTJ;
		else if (strcmp(arg, "none") == 0)
			o->rope = RVA_ROPE_NONE;
		else {
			cli_usage(cmd, "--rope '%s': expected neox, gptj or none", arg);
			return -1;
		}
		return 1;
	case OPT_ROPE_SCALING:
		if (strcmp(arg, "linear") == 0)
			o->rope_scaling = RVA_ROPE_SCALING_LINEAR;
		else if (strcmp(arg, "ntk") == 0)
			o->rope_scaling = RVA_ROPE_SCALING_NTK;
		else if (strcmp(arg, "none") == 0)
			o->rope_scaling = RVA_ROPE_SCALING_NONE;
		else {
			cli_usage(cmd, "--rope-scaling '%s': expected linear, ntk or none", arg);
			return -1;
		}
		return 1;
	case OPT_ROPE_THETA:
	case OPT_ROPE_FACTOR: {
		const char *name = c == OPT_ROPE_THETA ? "rope-theta" : "rope-factor";
		float *dst = c == OPT_ROPE_THETA ? &o->rope_theta : &o->rope_factor;
		if (!parse_float(cmd, name, arg, dst))
			return -1;
		if (!(*dst > 0.0f)) {
			cli_usage(cmd, "--%s %s: must be > 0", name, arg);
			return -1;
		}
		return 1;
	}
	case OPT_LAYER: return parse_size(cmd, "layer", arg, true, &o->layer) ? 1 : -1;
	case OPT_ROPE_DIM:
		if (!parse_size(cmd, "rope-dim", arg, false, &o->rope_dim))
			return -1;
		if (o->rope_dim % 2 != 0) {
			cli_usage(cmd, "--rope-dim %s: must be even (RoPE turns pairs)", arg);
			return -1;
		}
		return 1;
	case OPT_BIAS: o->bias_path = arg; return 1;
	case OPT_V_HEAD_DIM:
		return parse_size(cmd, "v-head-dim", arg, false, &o->v_head_dim) ? 1 : -1;
	case OPT_LAYOUT:
		if (strcmp(arg, "bshd") != 0 && strcmp(arg, "bhsd") != 0) {
			cli_usage(cmd, "--layout '%s': expected bshd or bhsd", arg);
			return -1;
		}
		o->bhsd = strcmp(arg, "bhsd") == 0;
		return 1;
	case OPT_LSE: o->lse_path = arg; return 1;
	case OPT_SCALE:
		if (!parse_float(cmd, "scale", arg, &o->scale))
			return -1;
		if (!(o->scale > 0.0f) || !isfinite(o->scale)) {
			cli_usage(cmd, "--scale %s: must be a finite number > 0", arg);
			return -1;
		}
		return 1;
	case OPT_MASK: o->mask_path = arg; return 1;
	case OPT_PATTERN:
		if (strcmp(arg, "dense") == 0)
			o->pattern = RVA_PATTERN_DENSE;
		else if (strcmp(arg, "strided") == 0)
			o->pattern = RVA_PATTERN_STRIDED;
		else if (strcmp(arg, "fixed") == 0)
			o->pattern = RVA_PATTERN_FIXED;
		else {
			cli_usage(cmd, "--pattern '%s': expected dense, strided or fixed", arg);
			return -1;
		}
		return 1;
	case OPT_STRIDE: return parse_size(cmd, "stride", arg, false, &o->stride) ? 1 : -1;
	case OPT_SUMMARY: return parse_size(cmd, "summary", arg, false, &o->summary) ? 1 : -1;
	case OPT_BLOCK: return parse_size(cmd, "block", arg, false, &o->block) ? 1 : -1;
	case OPT_WINDOW: return parse_size(cmd, "window", arg, false, &o->window) ? 1 : -1;
	case OPT_GLOBAL: return parse_size(cmd, "global", arg, true, &o->global) ? 1 : -1;
	case OPT_FEATURES: return parse_size(cmd, "features", arg, false, &o->features) ? 1 : -1;
	case OPT_EXPERTS: return parse_size(cmd, "experts", arg, false, &o->experts) ? 1 : -1;
	case OPT_TOP_K: return parse_size(cmd, "top-k", arg, false, &o->top_k) ? 1 : -1;
	case OPT_CURVATURE: return parse_float(cmd, "curvature", arg, &o->curvature) ? 1 : -1;
	case OPT_CAPACITY: return parse_float(cmd, "capacity", arg, &o->capacity) ? 1 : -1;
	case OPT_Q: o->q_path = arg; return 1;
	case OPT_K: o->k_path = arg; return 1;
	case OPT_V: o->v_path = arg; return 1;
	case OPT_OUT: o->out_path = arg; return 1;
	case OPT_WEIGHTS: o->weights_dir = arg; return 1;
	case OPT_DTYPE:
	case OPT_OUT_DTYPE: {
		static const char *const names[3] = {"f32", "bf16", "f16"};
		static const rva_dtype types[3] = {RVA_F32, RVA_BF16, RVA_F16};
		for (int i = 0; i < 3; i++)
			if (strcmp(arg, names[i]) == 0) {
				*(c == OPT_DTYPE ? &o->dtype : &o->out_dtype) = types[i];
				return 1;
			}
		cli_usage(cmd, "--%s: '%s' is not f32, bf16 or f16",
		          c == OPT_DTYPE ? "dtype" : "out-dtype", arg);
		return -1;
	}
	case OPT_EXPERT_KIND: {
		static const char *const kinds[RVA_EXPERTS_COUNT] = {"mixed", "standard",
		                                                     "hyperbolic", "linear"};
		for (int i = 0; i < RVA_EXPERTS_COUNT; i++)
			if (!strcasecmp(arg, kinds[i])) {
				o->expert_kind = i;
				return 1;
			}
		cli_usage(cmd, "--expert-kind '%s': known kinds are mixed, standard, hyperbolic, "
		          "linear", arg);
		return -1;
	}
	case OPT_CPUS: o->cpus = arg; return 1;
	case OPT_PER_PU: o->per_pu = true; return 1;
	case OPT_SEED:
		if (!parse_u64(cmd, "seed", arg, &o->seed))
			return -1;
		o->seed_given = true;
		return 1;
	case OPT_NUMA:
		if (strcmp(arg, "local") == 0)
			o->numa = RVA_NUMA_LOCAL;
		else if (strcmp(arg, "spread") == 0)
			o->numa = RVA_NUMA_SPREAD;
		else if (strcmp(arg, "interleave") == 0)
			o->numa = RVA_NUMA_INTERLEAVE;
		else {
			cli_usage(cmd, "--numa '%s': expected local, spread or interleave", arg);
			return -1;
		}
		return 1;
	case OPT_KERNELS:
		if ((st = rva_kernel_set_parse(arg, &o->kernels)) != RVA_OK) {
			cli_usage(cmd, "--kernels: %s", rva_last_error());
			return -1;
		}
		return 1;
	default: return 0;
	}
}

/* ---- resolving ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t x) {
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static void synth_fill(float *x, size_t n, uint64_t seed, uint64_t tensor) {
	uint64_t key = splitmix64(seed) ^ (tensor << 56);
	for (size_t i = 0; i < n; i++) {
		uint64_t h = splitmix64(key ^ (uint64_t)i);
		x[i] = (float)(h >> 40) * (2.0f / 16777216.0f) - 1.0f;
	}
}

/* An input file's shape as (B, rows, cols, heads): heads is 0 unless the file is 4-D. */
typedef struct shape4 {
	size_t b, rows, cols, heads, head_dim;
} shape4;

static void shape_str(const rva_npy_array *a, char *buf, size_t cap) {
	size_t n = (size_t)snprintf(buf, cap, "(");
	for (size_t i = 0; i < a->ndim && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%zu", i ? ", " : "", a->shape[i]);
	if (n < cap)
		snprintf(buf + n, cap - n, "%s)", a->ndim == 1 ? "," : "");
}

static int interpret(const char *path, const rva_npy_array *a, bool bhsd, shape4 *s) {
	char sh[128];
	shape_str(a, sh, sizeof sh);
	memset(s, 0, sizeof *s);
	if (bhsd && a->ndim != 4)
		return cli_error(EXIT_RUNTIME, "%s has shape %s: --layout bhsd expects [B, heads, N, "
		                 "head_dim]", path, sh);
	if (a->ndim == 2) {
		s->b = 1;
		s->rows = a->shape[0];
		s->cols = a->shape[1];
	} else if (a->ndim == 3) {
		s->b = a->shape[0];
		s->rows = a->shape[1];
		s->cols = a->shape[2];
	} else if (a->ndim == 4) {
		s->b = a->shape[0];
		s->rows = a->shape[bhsd ? 2 : 1];
		s->heads = a->shape[bhsd ? 1 : 2];
		s->head_dim = a->shape[3];
		if (__builtin_mul_overflow(s->heads, s->head_dim, &s->cols))
			return cli_error(EXIT_RUNTIME, "%s: shape %s is too large", path, sh);
	} else {
		return cli_error(EXIT_RUNTIME, "%s has shape %s: expected [B, N, dim], "
		                 "[B, N, heads, head_dim] or [N, dim]", path, sh);
	}
	if (a->count == 0)
		return cli_error(EXIT_RUNTIME, "%s is empty (shape %s)", path, sh);
	return EXIT_OK;
}

/* --dtype bf16/f16: the file read keeping that type into *t; a gets its shape and what the
 * file held (no data). */
static rva_status load_typed(const char *path, rva_npy_array *a, rva_npy_typed *t,
                             rva_dtype dt) {
	rva_status st = rva_npy_load_as(path, dt, t);
	if (st != RVA_OK)
		return st;
	memset(a, 0, sizeof *a);
	a->ndim = t->ndim;
	memcpy(a->shape, t->shape, sizeof a->shape);
	a->count = t->count;
	a->file = t->file;
	a->converted = t->converted;
	a->overflowed = t->overflowed;
	return RVA_OK;
}

static int load_input(const char *path, rva_npy_array *a, rva_npy_typed *t, workload *w) {
	rva_status st = w->dtype == RVA_F32 ? rva_npy_load(path, a)
	                                    : load_typed(path, a, t, w->dtype);
	if (st != RVA_OK)
		return cli_error(EXIT_RUNTIME, "%s", rva_last_error());
	if (a->converted && w->n_notes < 3) {
		char *n = w->notes[w->n_notes++];
		int len = snprintf(n, sizeof w->notes[0], "%s holds %s%s ('%s'), converted to %s",
		                   path, a->file.big_endian ? "big-endian " : "",
		                   rva_npy_dtype_name(a->file.dtype), a->file.descr,
		                   w->dtype == RVA_F32 ? "float32" : workload_dtype_name(w->dtype));
		if (a->overflowed && len > 0 && (size_t)len < sizeof w->notes[0])
			snprintf(n + len, sizeof w->notes[0] - (size_t)len,
			         "; %zu values beyond float32 became infinite", a->overflowed);
	}
	return EXIT_OK;
}

static size_t default_heads(size_t dim) { return dim >= 64 && dim % 64 == 0 ? dim / 64 : 1; }

/* Rejects mechanism-specific flags that the chosen mechanism does not use. */
static int check_applies(const char *cmd, const workload_opts *o, rva_mechanism m) {
	bool moe = m == RVA_MECH_MOE;
	if ((o->window || o->global != SIZE_MAX) && m != RVA_MECH_LOCAL_GLOBAL)
		return cli_usage(cmd, "--%s applies to local_global, the mechanism is %s",
		                 o->window ? "window" : "global", rva_mechanism_name(m));
	if ((o->experts || o->top_k || !isnan(o->capacity) || o->expert_kind >= 0 ||
	     o->weights_dir) && !moe)
		return cli_usage(cmd, "--%s applies to moe, the mechanism is %s",
		                 o->experts ? "experts" : o->top_k ? "top-k" :
		                 !isnan(o->capacity) ? "capacity" :
		                 o->expert_kind >= 0 ? "expert-kind" : "weights",
		                 rva_mechanism_name(m));
	if (o->features && m != RVA_MECH_LINEAR && !moe)
		return cli_usage(cmd, "--features applies to linear (and moe experts), the "
		                 "mechanism is %s", rva_mechanism_name(m));
	if (!isnan(o->curvature) && m != RVA_MECH_HYPERBOLIC && !moe)
		return cli_usage(cmd, "--curvature applies to hyperbolic (and moe experts), the "
		                 "mechanism is %s", rva_mechanism_name(m));
	bool mods = o->causal_align >= 0 || o->window_left != SIZE_MAX ||
	            o->window_right != SIZE_MAX || !isnan(o->softcap) || o->alibi || o->bias_path ||
	            o->mask_path;
	if (mods && (m == RVA_MECH_LINEAR || m == RVA_MECH_HYPERBOLIC || moe))
		return cli_usage(cmd, "--causal-align, --window-left/right, --softcap, --alibi, --bias "
		                 "and --mask apply to softmax attention, the mechanism is %s",
		                 rva_mechanism_name(m));
	bool rope = o->rope > 0 || o->rope_scaling >= 0 || !isnan(o->rope_theta) ||
	            !isnan(o->rope_factor) || o->rope_dim != SIZE_MAX;
	if (rope && (m == RVA_MECH_LINEAR || m == RVA_MECH_HYPERBOLIC || moe))
		return cli_usage(cmd, "--rope and its --rope-* options apply to softmax attention, "
		                 "the mechanism is %s", rva_mechanism_name(m));
	if ((o->v_head_dim || o->bhsd || o->lse_path || !isnan(o->scale)) &&
	    (m == RVA_MECH_LINEAR || m == RVA_MECH_HYPERBOLIC || moe))
		return cli_usage(cmd, "--%s applies to softmax attention, the mechanism is %s",
		                 o->v_head_dim ? "v-head-dim" : o->bhsd ? "layout bhsd"
		                 : o->lse_path ? "lse" : "scale",
		                 rva_mechanism_name(m));
	if (o->block && (m == RVA_MECH_LINEAR || m == RVA_MECH_HYPERBOLIC))
		return cli_usage(cmd, "--block applies to softmax attention, the mechanism is %s",
		                 rva_mechanism_name(m));
	if (o->pattern > RVA_PATTERN_DENSE &&
	    (m != RVA_MECH_SCALED_DOT && m != RVA_MECH_MULTI_HEAD && m != RVA_MECH_FLASH))
		return cli_usage(cmd, "--pattern applies to scaled_dot, multi_head and flash, the "
		                 "mechanism is %s", rva_mechanism_name(m));
	return EXIT_OK;
}

/* --stride / --summary only with a pattern that reads them (given, or the preset's). */
static int check_pattern(const char *cmd, const workload_opts *o, const rva_config *c) {
	if (o->stride && c->pattern == RVA_PATTERN_DENSE)
		return cli_usage(cmd, "--stride applies to --pattern strided or fixed");
	if (o->summary && c->pattern != RVA_PATTERN_FIXED)
		return cli_usage(cmd, "--summary applies to --pattern fixed");
	return EXIT_OK;
}

static char source_buf[160];

static int base_config(const char *cmd, const workload_opts *o, size_t dim, rva_config *c,
                       const char **source) {
	int given = !!o->preset + !!o->model + !!o->mechanism;
	if (given > 1)
		return cli_usage(cmd, "give only one of --preset, --model and --mechanism");
	if (o->layer != SIZE_MAX && !o->preset)
		return cli_usage(cmd, "--layer applies to --preset");
	rva_status st;
	if (o->model) {
		if ((st = rva_from_model_name(o->model, dim, c)) != RVA_OK)
			return cli_usage(cmd, "--model: %s", rva_last_error());
		snprintf(source_buf, sizeof source_buf, "model %s", o->model);
	} else if (o->mechanism) {
		rva_mechanism m;
		rva_mechanism_parse(o->mechanism, &m); /* checked when parsed */
		rva_config d = rva_config_defaults(dim);
		switch (m) {
		case RVA_MECH_SCALED_DOT: *c = rva_scaled_dot(dim); break;
		case RVA_MECH_MULTI_HEAD: *c = rva_multi_head(dim, default_heads(dim)); break;
		case RVA_MECH_FLASH:
			*c = rva_flash(dim, o->block ? o->block : 128);
			c->heads = default_heads(dim);
			break;
		case RVA_MECH_LINEAR: *c = rva_linear(dim, o->features ? o->features : d.features);
			break;
		case RVA_MECH_LOCAL_GLOBAL:
			*c = rva_local_global(dim, o->window ? o->window : d.window);
			break;
		case RVA_MECH_HYPERBOLIC:
			*c = rva_hyperbolic(dim, isnan(o->curvature) ? d.curvature : o->curvature);
			break;
		case RVA_MECH_MOE:
			*c = rva_moe(dim, o->experts ? o->experts : d.experts,
			             o->top_k ? o->top_k : d.top_k);
			break;
		default: return cli_usage(cmd, "--mechanism %s is unknown", o->mechanism);
		}
		snprintf(source_buf, sizeof source_buf, "mechanism %s", rva_mechanism_name(m));
	} else {
		rva_preset p = RVA_PRESET_BERT;
		if (o->preset)
			rva_preset_from_name(o->preset, &p); /* checked when parsed */
		*c = rva_preset_config(p, dim);
		if (o->layer != SIZE_MAX)
			rva_preset_layer_config(p, dim, o->layer, c); /* p is in range */
		snprintf(source_buf, sizeof source_buf, "preset %s", rva_preset_name(p));
		if (o->layer != SIZE_MAX)
			snprintf(source_buf + strlen(source_buf), sizeof source_buf - strlen(source_buf),
			         " layer %zu", o->layer);
	}
	*source = source_buf;
	return EXIT_OK;
}

static bool mul3(size_t a, size_t b, size_t c, size_t *r) {
	return !__builtin_mul_overflow(a, b, r) && !__builtin_mul_overflow(*r, c, r);
}

/* workload_make in steps: each step reads the options (and what earlier steps resolved),
 * fills its part of `w`, and returns an exit code with the error already printed. */

/* The input-file flags that only make sense together. */
static int check_input_flags(const char *cmd, const workload_opts *o) {
	if (!!o->k_path != !!o->v_path)
		return cli_usage(cmd, "--k and --v go together");
	if (o->k_path && !o->q_path)
		return cli_usage(cmd, "--k and --v need --q");
	if (o->q_path && !o->k_path && o->kv_seq)
		return cli_usage(cmd, "--kv-seq with --q needs --k and --v (--q alone means K = V = Q)");
	if (o->kv_seq_min && o->q_path)
		return cli_usage(cmd, "--kv-seq MIN-MAX (a ragged batch) needs synthetic inputs (no "
		                 "--q/--k/--v)");
	return EXIT_OK;
}

/* Loads --q (and --k/--v) into w->qa, w->ka, w->va; qs and ks receive their shapes (zero
 * when the file is not given). K and V must have one shape, and as many sequences as Q. */
static int load_inputs(const workload_opts *o, workload *w, shape4 *qs, shape4 *ks) {
	int rc;
	if (o->q_path) {
		if ((rc = load_input(o->q_path, &w->qa, &w->qt, w)) ||
		    (rc = interpret(o->q_path, &w->qa, o->bhsd, qs)))
			return rc;
	}
	if (!o->k_path)
		return EXIT_OK;
	shape4 vs;
	if ((rc = load_input(o->k_path, &w->ka, &w->kt, w)) ||
	    (rc = interpret(o->k_path, &w->ka, o->bhsd, ks)) ||
	    (rc = load_input(o->v_path, &w->va, &w->vt, w)) ||
	    (rc = interpret(o->v_path, &w->va, o->bhsd, &vs)))
		return rc;
	/* with --v-head-dim, V's last dimension is its own (checked in resolve_heads) */
	size_t cmp = w->ka.ndim ? w->ka.ndim - (o->v_head_dim ? 1 : 0) : 0;
	if (w->ka.ndim != w->va.ndim ||
	    memcmp(w->ka.shape, w->va.shape, cmp * sizeof w->ka.shape[0])) {
		char a[128], b[128];
		shape_str(&w->ka, a, sizeof a);
		shape_str(&w->va, b, sizeof b);
		return cli_error(EXIT_RUNTIME, "%s has shape %s but %s has shape %s", o->k_path, a,
		                 o->v_path, b);
	}
	if (ks->b != qs->b)
		return cli_error(EXIT_RUNTIME, "%s holds %zu sequences but %s holds %zu", o->q_path,
		                 qs->b, o->k_path, ks->b);
	return EXIT_OK;
}

/* The model dimension: --dim, else the row width of --q, else 768. `from` names the source
 * for messages. */
static int resolve_dim(const workload_opts *o, const shape4 *qs, size_t *dim,
                       const char **from) {
	if (o->dim && o->q_path && qs->cols != o->dim)
		return cli_error(EXIT_RUNTIME, "%s has rows of %zu floats, --dim is %zu", o->q_path,
		                 qs->cols, o->dim);
	/* a decoder preset or model name: the model's own width */
	rva_preset p = RVA_PRESET_BERT;
	const char *name = o->preset ? o->preset : o->model;
	if (name && rva_preset_from_name(name, &p) != RVA_OK)
		p = RVA_PRESET_BERT;
	*dim = o->dim ? o->dim : o->q_path ? qs->cols : rva_preset_model_dim(p);
	*from = o->dim ? "--dim" : o->q_path ? "the dim of --q" : "the default dim";
	return EXIT_OK;
}

/* Query heads (--heads, the 4-D shape of --q, or the config's) and key/value heads
 * (--kv-heads, the shape of --k, or the config's); checks that they divide and match the
 * files, and sets c->heads, c->kv_heads, w->q_cols and w->kv_cols. */
static int resolve_heads(const char *cmd, const workload_opts *o, const shape4 *qs,
                         const shape4 *ks, size_t dim, const char *dim_from, rva_config *c,
                         workload *w) {
	if (o->heads) {
		if (qs->heads && qs->heads != o->heads)
			return cli_error(EXIT_RUNTIME, "%s has %zu heads, --heads is %zu", o->q_path,
			                 qs->heads, o->heads);
		c->heads = o->heads;
	} else if (qs->heads) {
		c->heads = qs->heads;
	}
	if (dim % c->heads != 0)
		return o->heads ? cli_usage(cmd, "--heads %zu does not divide %s %zu", c->heads,
		                            dim_from, dim)
		                : cli_usage(cmd, "%s: %zu heads do not divide %s %zu", w->source,
		                            c->heads, dim_from, dim);
	size_t hd = dim / c->heads;
	if (qs->heads && qs->head_dim != hd)
		return cli_error(EXIT_RUNTIME, "%s has head_dim %zu, expected %zu", o->q_path,
		                 qs->head_dim, hd);
	size_t kvh = c->kv_heads ? c->kv_heads : c->heads;
	if (o->kv_heads) {
		kvh = o->kv_heads;
	} else if (o->k_path) {
		if (ks->heads)
			kvh = ks->heads;
		else if (ks->cols % hd == 0)
			kvh = ks->cols / hd;
		else
			return cli_error(EXIT_RUNTIME, "%s has rows of %zu floats, not a multiple of "
			                 "head_dim %zu", o->k_path, ks->cols, hd);
	}
	if (c->heads % kvh != 0)
		return o->kv_heads ? cli_usage(cmd, "--kv-heads %zu does not divide --heads %zu", kvh,
		                               c->heads)
		                   : cli_error(EXIT_RUNTIME, "%s has %zu kv heads, which do not "
		                               "divide %zu heads", o->k_path ? o->k_path : w->source,
		                               kvh, c->heads);
	if (o->q_path && !o->k_path && kvh != c->heads)
		return cli_usage(cmd, "--kv-heads %zu with --q alone (K = V = Q) needs --k and --v",
		                 kvh);
	c->kv_heads = kvh == c->heads ? 0 : kvh;
	size_t dv = o->v_head_dim ? o->v_head_dim : hd;
	if (o->q_path && !o->k_path && dv != hd)
		return cli_usage(cmd, "--v-head-dim %zu with --q alone (K = V = Q) needs --k and --v",
		                 dv);
	if (dv > ((size_t)1 << 32) / c->heads)
		return cli_usage(cmd, "--v-head-dim %zu: %zu heads x %zu is too large", dv, c->heads,
		                 dv);
	w->q_cols = dim;
	w->kv_cols = kvh * hd;
	w->v_cols = kvh * dv;
	w->out_cols = c->heads * dv;
	w->heads = c->heads;
	w->kv_heads = kvh;
	w->head_dim = hd;
	w->v_head_dim = dv;
	w->bhsd = o->bhsd;
	if (o->k_path && (ks->cols != w->kv_cols || (ks->heads && ks->head_dim != hd)))
		return cli_error(EXIT_RUNTIME, "%s has rows of %zu floats, expected %zu (%zu kv heads "
		                 "x head_dim %zu)", o->k_path, ks->cols, w->kv_cols, kvh, hd);
	if (o->v_path) {
		size_t last = w->va.shape[w->va.ndim - 1];
		size_t vcols = w->va.ndim == 4 ? (o->bhsd ? w->va.shape[1] : w->va.shape[2]) * last
		                               : last;
		if (vcols != w->v_cols || (w->va.ndim == 4 && last != dv))
			return cli_error(EXIT_RUNTIME, "%s has rows of %zu floats, expected %zu (%zu kv "
			                 "heads x v_head_dim %zu)", o->v_path, vcols, w->v_cols, kvh, dv);
	}
	return EXIT_OK;
}

/* The mechanism options given on the command line replace the config's values. */
static void apply_overrides(const workload_opts *o, rva_config *c) {
	if (o->causal)
		c->causal = true;
	if (o->block)
		c->block_size = o->block;
	if (o->v_head_dim)
		c->v_head_dim = o->v_head_dim;
	if (o->window)
		c->window = o->window;
	if (o->global != SIZE_MAX) {
		c->global_tokens = o->global;
		c->global_indices = NULL;
		c->n_global_indices = 0;
	}
	if (o->features)
		c->features = o->features;
	if (!isnan(o->curvature))
		c->curvature = o->curvature;
	if (o->experts)
		c->experts = o->experts;
	if (o->top_k)
		c->top_k = o->top_k;
	if (!isnan(o->capacity))
		c->expert_capacity = o->capacity;
	if (o->expert_kind >= 0)
		c->expert_kind = (rva_expert_kind)o->expert_kind;
	if (o->seed_given)
		c->seed = o->seed;
	if (o->causal_align >= 0)
		c->causal_align = (rva_causal_align)o->causal_align;
	if (o->window_left != SIZE_MAX || o->window_right != SIZE_MAX) {
		c->sliding_window = true;
		c->window_left = o->window_left; /* a side not given: SIZE_MAX, unbounded */
		c->window_right = o->window_right;
	}
	if (!isnan(o->softcap))
		c->softcap = o->softcap;
	if (o->alibi)
		c->alibi = true;
	if (o->rope == RVA_ROPE_NONE) { /* --rope none clears a preset's RoPE and its values */
		c->rope_theta = c->rope_factor = 0.0f;
		c->rope_scaling = RVA_ROPE_SCALING_NONE;
		c->rope_dim = 0;
	}
	if (o->rope >= 0)
		c->rope = (rva_rope)o->rope;
	if (o->rope_scaling >= 0)
		c->rope_scaling = (rva_rope_scaling)o->rope_scaling;
	if (!isnan(o->rope_theta))
		c->rope_theta = o->rope_theta;
	if (!isnan(o->rope_factor))
		c->rope_factor = o->rope_factor;
	if (o->rope_dim != SIZE_MAX)
		c->rope_dim = o->rope_dim;
	if (o->pattern >= 0)
		c->pattern = (rva_sparse_pattern)o->pattern;
	if (o->stride)
		c->sparse_stride = o->stride;
	if (o->summary)
		c->sparse_summary = o->summary;
}

/* The config: base (preset, model or mechanism), heads, then the command-line overrides;
 * stored in w->cfg (not built yet). */
static int resolve_config(const char *cmd, const workload_opts *o, const shape4 *qs,
                          const shape4 *ks, workload *w) {
	size_t dim = 0;
	const char *dim_from = NULL;
	rva_config c;
	int rc;
	if ((rc = resolve_dim(o, qs, &dim, &dim_from)) ||
	    (rc = base_config(cmd, o, dim, &c, &w->source)) ||
	    (rc = check_applies(cmd, o, c.mechanism)) ||
	    (rc = resolve_heads(cmd, o, qs, ks, dim, dim_from, &c, w)))
		return rc;
	apply_overrides(o, &c);
	if ((rc = check_pattern(cmd, o, &c)))
		return rc;
	w->cfg = c;
	return EXIT_OK;
}

/* Sequences and rows: from the files when given (the flags must agree with them), else
 * from the flags and their defaults (32 sequences of 512 rows, as many keys as queries). */
static int resolve_shapes(const workload_opts *o, const shape4 *qs, const shape4 *ks,
                          workload *w) {
	if (o->q_path) {
		if (o->batch && o->batch != qs->b)
			return cli_error(EXIT_RUNTIME, "%s holds %zu sequences, --batch is %zu", o->q_path,
			                 qs->b, o->batch);
		if (o->seq && o->seq != qs->rows)
			return cli_error(EXIT_RUNTIME, "%s has %zu rows per sequence, --seq is %zu",
			                 o->q_path, qs->rows, o->seq);
		w->batch = qs->b;
		w->nq = qs->rows;
	} else {
		w->batch = o->batch ? o->batch : 32;
		w->nq = o->seq ? o->seq : 512;
	}
	if (o->k_path) {
		if (o->kv_seq && o->kv_seq != ks->rows)
			return cli_error(EXIT_RUNTIME, "%s has %zu rows per sequence, --kv-seq is %zu",
			                 o->k_path, ks->rows, o->kv_seq);
		w->nk = ks->rows;
	} else {
		w->nk = o->q_path ? w->nq : o->kv_seq ? o->kv_seq : w->nq;
	}
	w->nk_min = o->kv_seq_min ? o->kv_seq_min : w->nk;
	w->k_rows = 0;
	for (size_t s = 0; s < w->batch; s++)
		if (__builtin_add_overflow(w->k_rows, workload_seq_keys(w, s), &w->k_rows))
			return cli_error(EXIT_RUNTIME, "the batch (%zu sequences of up to %zu keys) is "
			                 "too large", w->batch, w->nk);
	return EXIT_OK;
}

size_t workload_seq_keys(const workload *w, size_t s) {
	if (w->nk_min == w->nk || w->batch < 2)
		return w->nk;
	/* (nk - nk_min) * s without overflow: both below 2^64 / batch in practice, checked */
	size_t span = w->nk - w->nk_min, step;
	if (__builtin_mul_overflow(span, s, &step))
		return w->nk_min + (size_t)((double)span * (double)s / (double)(w->batch - 1));
	return w->nk_min + step / (w->batch - 1);
}

/* A buffer of n floats (at least one) from rva_buffer_alloc; nonzero when out of memory. */
static int buffer_floats(size_t n, float **out) {
	void *p = NULL;
	rva_status st = rva_buffer_alloc((n ? n : 1) * sizeof(float), &p);
	*out = p;
	return st != RVA_OK;
}

const char *workload_dtype_name(rva_dtype t) {
	return t == RVA_BF16 ? "bf16" : t == RVA_F16 ? "f16" : "f32";
}

void workload_output_f32(workload *w) {
	if (w->out_dtype == RVA_F32 || !w->outh)
		return;
	/* Widening is exact and the types are valid, so this cannot fail. */
	(void)rva_convert(RVA_F32, w->out, w->out_dtype, w->outh, w->batch * w->nq * w->out_cols);
}

/* Q, K and V: the seeded synthetic draws (allocated here, nqel and nkel floats), or the
 * loaded arrays (--q alone: K = V = Q). */
static int input_data(const workload_opts *o, workload *w, size_t nqel, size_t nkel,
                      size_t nvel) {
	w->synthetic = !o->q_path;
	w->seed = o->seed;
	if (!w->synthetic && w->dtype != RVA_F32) {
		w->qh = w->qt.data;
		w->kh = o->k_path ? w->kt.data : w->qh;
		w->vh = o->k_path ? w->vt.data : w->qh;
		return EXIT_OK;
	}
	if (!w->synthetic) {
		w->q = w->qa.data;
		w->k = o->k_path ? w->ka.data : w->q;
		w->v = o->k_path ? w->va.data : w->q;
		return EXIT_OK;
	}
	/* rva_buffer_alloc: 2 MiB-aligned huge pages for large inputs (streaming K/V from
	 * 4 KiB pages cost decode a fifth of its bandwidth here) */
	if (buffer_floats(nqel, &w->q) || buffer_floats(nkel, &w->k) ||
	    buffer_floats(nvel, &w->v))
		return cli_error(EXIT_RUNTIME, "cannot allocate the synthetic inputs (%zu + %zu + "
		                 "%zu floats)", nqel, nkel, nvel);
	synth_fill(w->q, nqel, o->seed, 0);
	synth_fill(w->k, nkel, o->seed, 1);
	synth_fill(w->v, nvel, o->seed, 2);
	if (w->dtype == RVA_F32)
		return EXIT_OK;
	/* drawn in fp32, then rounded to the element type (round to nearest even) */
	if (rva_buffer_alloc((nqel ? nqel : 1) * 2, &w->qh) != RVA_OK ||
	    rva_buffer_alloc((nkel ? nkel : 1) * 2, &w->kh) != RVA_OK ||
	    rva_buffer_alloc((nvel ? nvel : 1) * 2, &w->vh) != RVA_OK)
		return cli_error(EXIT_RUNTIME, "cannot allocate the %s inputs",
		                 workload_dtype_name(w->dtype));
	if (rva_convert(w->dtype, w->qh, RVA_F32, w->q, nqel) != RVA_OK ||
	    rva_convert(w->dtype, w->kh, RVA_F32, w->k, nkel) != RVA_OK ||
	    rva_convert(w->dtype, w->vh, RVA_F32, w->v, nvel) != RVA_OK)
		return cli_error(EXIT_RUNTIME, "%s", rva_last_error());
	return EXIT_OK;
}

/* Sequence s's descriptor over the buffers qb, kb, vb, ob (element sizes isz, osz): rows
 * [B, N, heads, head_dim], or with --layout bhsd [B, heads, N, head_dim] through head
 * strides (batch.h); krow is the sequence's first key row. */
static void seq_layout(const workload *w, rva_seq *q, size_t s, size_t krow, char *qb,
                       char *kb, char *vb, char *ob, size_t isz, size_t osz) {
	size_t nk = q->nk, nq = w->nq;
	q->q = qb + s * nq * w->q_cols * isz;
	q->k = kb + krow * w->kv_cols * isz;
	q->v = vb + krow * w->v_cols * isz;
	q->out = ob + s * nq * w->out_cols * osz;
	if (!w->bhsd)
		return;
	q->q_stride = q->k_stride = w->head_dim;
	q->v_stride = q->out_stride = w->v_head_dim;
	q->q_head_stride = nq * w->head_dim;
	q->k_head_stride = nk * w->head_dim;
	q->v_head_stride = nk * w->v_head_dim;
	q->out_head_stride = nq * w->v_head_dim;
}

/* The output buffer (noel floats, pre-faulted), the --lse buffer, the sequence descriptors
 * of the batch over q/k/v/out, and the shape the output file will have (that of --q with
 * v_head_dim columns per head, else [B, N, heads * v_head_dim]). */
static int output_and_batch(const workload_opts *o, workload *w, size_t noel) {
	w->seqs = calloc(w->batch, sizeof *w->seqs);
	if (buffer_floats(noel, &w->out) || !w->seqs)
		return cli_error(EXIT_RUNTIME, "cannot allocate the output (%zu floats)", noel);
	memset(w->out, 0, noel * sizeof(float)); /* pre-fault before any timing */
	if (w->out_dtype != RVA_F32) {
		if (!(w->outh = malloc((noel ? noel : 1) * 2)))
			return cli_error(EXIT_RUNTIME, "cannot allocate the output (%zu x 2 bytes)",
			                 noel);
		memset(w->outh, 0, noel * 2);
	}
	size_t isz = w->dtype == RVA_F32 ? 4 : 2, osz = w->out_dtype == RVA_F32 ? 4 : 2;
	char *qb = w->dtype == RVA_F32 ? (char *)w->q : w->qh;
	char *kb = w->dtype == RVA_F32 ? (char *)w->k : w->kh;
	char *vb = w->dtype == RVA_F32 ? (char *)w->v : w->vh;
	char *ob = w->out_dtype == RVA_F32 ? (char *)w->out : w->outh;
	for (size_t s = 0, krow = 0; s < w->batch; s++) {
		rva_seq *q = &w->seqs[s];
		q->nq = w->nq;
		q->nk = workload_seq_keys(w, s);
		seq_layout(w, q, s, krow, qb, kb, vb, ob, isz, osz);
		if (w->lse)
			q->lse = w->lse + s * w->heads * w->nq;
		q->q_dtype = q->k_dtype = q->v_dtype = w->dtype;
		q->out_dtype = w->out_dtype;
		krow += q->nk;
	}
	w->b.count = w->batch;
	w->b.seqs = w->seqs;
	if (o->q_path && w->qa.ndim != 3) {
		w->out_ndim = w->qa.ndim;
		memcpy(w->out_shape, w->qa.shape, w->qa.ndim * sizeof(size_t));
		w->out_shape[w->out_ndim - 1] = w->out_ndim == 4 ? w->v_head_dim : w->out_cols;
	} else if (w->bhsd) {
		w->out_ndim = 4;
		w->out_shape[0] = w->batch;
		w->out_shape[1] = w->heads;
		w->out_shape[2] = w->nq;
		w->out_shape[3] = w->v_head_dim;
	} else {
		w->out_ndim = 3;
		w->out_shape[0] = w->batch;
		w->out_shape[1] = w->nq;
		w->out_shape[2] = w->out_cols;
	}
	return EXIT_OK;
}

/* --bias / --mask: one .npy [nq, nk] or [heads, nq, nk], pointed to by every sequence
 * (the mask as bytes, nonzero = visible). */
static int score_file(const char *cmd, const char *flag, const char *path, workload *w,
                      rva_npy_array *a) {
	rva_status st = rva_npy_load(path, a);
	if (st != RVA_OK)
		return cli_lib_error(st, EXIT_RUNTIME, "--%s %s", flag, path);
	size_t heads = w->cfg.heads;
	bool ok = (a->ndim == 2 && a->shape[0] == w->nq && a->shape[1] == w->nk) ||
	          (a->ndim == 3 && a->shape[0] == heads && a->shape[1] == w->nq &&
	           a->shape[2] == w->nk);
	if (!ok)
		return cli_usage(cmd, "--%s %s: shape must be [%zu, %zu] or [%zu, %zu, %zu] (queries, "
		                 "keys; heads first)", flag, path, w->nq, w->nk, heads, w->nq, w->nk);
	return EXIT_OK;
}

static int score_matrices(const char *cmd, const workload_opts *o, workload *w) {
	if (!o->bias_path && !o->mask_path)
		return EXIT_OK;
	if (w->nk_min != w->nk)
		return cli_usage(cmd, "--bias and --mask need every sequence to have the same keys "
		                 "(not a ragged --kv-seq MIN-MAX)");
	int rc;
	if (o->bias_path && (rc = score_file(cmd, "bias", o->bias_path, w, &w->bias_a)))
		return rc;
	if (o->mask_path) {
		if ((rc = score_file(cmd, "mask", o->mask_path, w, &w->mask_a)))
			return rc;
		if (!(w->mask = malloc(w->mask_a.count ? w->mask_a.count : 1)))
			return cli_error(EXIT_RUNTIME, "cannot allocate the mask (%zu bytes)",
			                 w->mask_a.count);
		for (size_t i = 0; i < w->mask_a.count; i++)
			w->mask[i] = w->mask_a.data[i] != 0.0f;
	}
	for (size_t s = 0; s < w->batch; s++) {
		rva_seq *q = &w->seqs[s];
		if (o->bias_path) {
			q->bias = w->bias_a.data;
			q->bias_head_stride = w->bias_a.ndim == 3 ? w->nq * w->nk : 0;
		}
		if (o->mask_path) {
			q->mask = w->mask;
			q->mask_head_stride = w->mask_a.ndim == 3 ? w->nq * w->nk : 0;
		}
	}
	return EXIT_OK;
}

/* Inputs, output and batch, once the element counts are known not to overflow. */
static int make_data(const workload_opts *o, workload *w) {
	size_t nqel, nkel, nvel, noel, nlse;
	if (!mul3(w->batch, w->nq, w->q_cols, &nqel) || !mul3(1, w->k_rows, w->kv_cols, &nkel) ||
	    !mul3(1, w->k_rows, w->v_cols, &nvel) || !mul3(w->batch, w->nq, w->out_cols, &noel) ||
	    !mul3(w->batch, w->heads, w->nq, &nlse) || nqel > SIZE_MAX / sizeof(float) ||
	    nkel > SIZE_MAX / sizeof(float) || nvel > SIZE_MAX / sizeof(float) ||
	    noel > SIZE_MAX / sizeof(float) || nlse > SIZE_MAX / sizeof(float))
		return cli_error(EXIT_RUNTIME, "the batch (%zu x %zu x %zu) is too large", w->batch,
		                 w->nq, w->q_cols);
	int rc = input_data(o, w, nqel, nkel, nvel);
	if (!rc && o->lse_path && buffer_floats(nlse, &w->lse))
		return cli_error(EXIT_RUNTIME, "cannot allocate --lse (%zu floats)", nlse);
	return rc ? rc : output_and_batch(o, w, noel);
}

/* Builds w->att from w->cfg (with the --weights files, freed once rva_build has copied
 * them) and counts its FLOPs on the batch (NAN when the mechanism cannot say). */
static int build_attention(const char *cmd, const workload_opts *o, workload *w) {
	moe_weights mw;
	memset(&mw, 0, sizeof mw);
	int rc;
	if (o->weights_dir && (rc = moe_weights_load(cmd, o->weights_dir, &w->cfg, &mw)))
		return rc;
	rva_npy_array slopes;
	memset(&slopes, 0, sizeof slopes);
	if (o->alibi_slopes_path) { /* [heads] floats; rva_build copies and checks them */
		rva_status ls = rva_npy_load(o->alibi_slopes_path, &slopes);
		if (ls != RVA_OK) {
			moe_weights_free(&mw);
			return cli_lib_error(ls, EXIT_RUNTIME, "--alibi-slopes %s", o->alibi_slopes_path);
		}
		if (slopes.ndim != 1 || slopes.shape[0] != w->cfg.heads) {
			rva_npy_free(&slopes);
			moe_weights_free(&mw);
			return cli_usage(cmd, "--alibi-slopes %s: shape must be [%zu] (one slope per "
			                 "head)", o->alibi_slopes_path, w->cfg.heads);
		}
		w->cfg.alibi_slopes = slopes.data;
		w->alibi_given = true;
	}
	rva_status st = rva_build(&w->cfg, &w->att);
	if (o->alibi_slopes_path) { /* copied by rva_build */
		rva_npy_free(&slopes);
		w->cfg.alibi_slopes = NULL;
	}
	if (o->weights_dir) {
		/* rva_build copied the weights: the config must not point to the freed files */
		moe_weights_free(&mw);
		w->cfg.router_weights = NULL;
		w->cfg.expert_wq = w->cfg.expert_wo = w->cfg.expert_wk = w->cfg.expert_wv =
			(rva_matrix_list){NULL, 0};
		if (w->n_notes < 3)
			snprintf(w->notes[w->n_notes++], sizeof w->notes[0], "%s", mw.note);
	}
	if (st != RVA_OK) {
		int code = st == RVA_EINVAL || st == RVA_EDIM || st == RVA_ERANGE ? EXIT_USAGE
		                                                                    : EXIT_RUNTIME;
		return cli_lib_error(st, code, "invalid configuration (%s)", w->source);
	}
	if (rva_attention_flops(w->att, &w->b, &w->flops) != RVA_OK)
		w->flops = NAN;
	return EXIT_OK;
}

int workload_make(const char *cmd, const workload_opts *o, workload *w) {
	memset(w, 0, sizeof *w);
	w->dtype = o->dtype;
	w->out_dtype = o->out_dtype;
	w->call_scale = isnan(o->scale) ? 0.0f : o->scale;
	int rc = check_input_flags(cmd, o);
	if (rc)
		return rc;
	shape4 qs = {0}, ks = {0};
	if ((rc = load_inputs(o, w, &qs, &ks)) || (rc = resolve_config(cmd, o, &qs, &ks, w)) ||
	    (rc = resolve_shapes(o, &qs, &ks, w)) || (rc = make_data(o, w)) ||
	    (rc = score_matrices(cmd, o, w)) || (rc = build_attention(cmd, o, w))) {
		workload_free(w);
		return rc;
	}
	return EXIT_OK;
}

void workload_free(workload *w) {
	rva_attention_destroy(w->att);
	if (w->synthetic) {
		rva_buffer_free(w->q);
		rva_buffer_free(w->k);
		rva_buffer_free(w->v);
	}
	rva_npy_free(&w->qa);
	rva_npy_free(&w->ka);
	rva_npy_free(&w->va);
	rva_npy_free(&w->bias_a);
	rva_npy_free(&w->mask_a);
	free(w->mask);
	if (w->synthetic) {
		rva_buffer_free(w->qh);
		rva_buffer_free(w->kh);
		rva_buffer_free(w->vh);
	}
	rva_npy_typed_free(&w->qt);
	rva_npy_typed_free(&w->kt);
	rva_npy_typed_free(&w->vt);
	free(w->outh);
	rva_buffer_free(w->out);
	rva_buffer_free(w->lse);
	free(w->seqs);
	memset(w, 0, sizeof *w);
}

/* ---- running ------------------------------------------------------------------------- */

rva_engine_config workload_engine_config(const workload_opts *o, unsigned threads) {
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = threads;
	ec.cpus = o->cpus;
	ec.numa = o->numa;
	ec.per_pu = o->per_pu;
	ec.kernels = o->kernels;
	return ec;
}

int engine_make(const char *cmd, const rva_engine_config *ec, rva_engine **e) {
	/* RVATTN_* switches that are ignored or clipped, said once before the first engine. */
	static bool env_checked;
	if (!env_checked) {
		env_checked = true;
		if (rva_env_check() != RVA_OK)
			cli_warn("%s", rva_last_error());
	}
	rva_status st = rva_engine_create(ec, e);
	if (st == RVA_OK) {
		/* What the engine clipped (a cpu set wider than the machine), said once. */
		static bool said;
		rva_engine_info info;
		if (!said && rva_engine_info_get(*e, &info) == RVA_OK && info.notes[0]) {
			cli_warn("%s", info.notes);
			said = true;
		}
		return EXIT_OK;
	}
	if (st == RVA_EINVAL || st == RVA_ENOTFOUND || st == RVA_ERANGE)
		return cli_usage(cmd, "%s", *rva_last_error() ? rva_last_error() : rva_strerror(st));
	return cli_lib_error(st, EXIT_RUNTIME, "cannot create the engine");
}

int workload_run_once(rva_engine *e, workload *w, double *secs, run_stats *stats,
                      progress *pg, size_t pg_done) {
	rva_moe_stats moe;
	memset(&moe, 0, sizeof moe);
	rva_runtime rt = {.scale = w->call_scale};
	if (w->cfg.mechanism == RVA_MECH_MOE)
		rt.moe_stats = &moe;
	double t0 = now_s();
	rva_job *job = NULL;
	rva_status st = rva_engine_submit(e, w->att, &w->b, &rt, &job);
	if (st != RVA_OK)
		return cli_lib_error(st, EXIT_RUNTIME, "cannot run the batch");
	/* Poll (to cancel on SIGINT and draw progress) with a backoff from 10 us to 2 ms:
	 * short jobs end with little delay, long ones cost a few wake-ups a second. The time
	 * reported is the job's own wall time, not this loop's. */
	bool done = false, cancelled = false;
	long sleep_ns = 10000;
	while (!done) {
		if (rva_job_poll(job, &done) != RVA_OK || done)
			break;
		if (interrupted() && !cancelled) {
			rva_job_cancel(job);
			cancelled = true;
		}
		uint64_t tdone = 0, ttotal = 0;
		rva_job_progress(job, &tdone, &ttotal);
		progress_update_frac(pg, (double)pg_done +
		                             (ttotal ? (double)tdone / (double)ttotal : 0.0));
		struct timespec ts = {0, sleep_ns};
		nanosleep(&ts, NULL);
		if (sleep_ns < 2000000)
			sleep_ns *= 2;
	}
	st = rva_job_wait(job);
	double t1 = now_s();
	int rc = EXIT_OK;
	if (st == RVA_ECANCELLED || interrupted()) {
		progress_end(pg);
		rc = cli_error(EXIT_RUNTIME, "interrupted");
	} else if (st != RVA_OK) {
		progress_end(pg);
		const char *detail = NULL;
		rva_status sst = st;
		size_t i;
		for (i = 0; i < w->b.count; i++)
			if (rva_job_seq_status(job, i, &sst, &detail) == RVA_OK && sst != RVA_OK)
				break;
		if (i < w->b.count)
			rc = cli_error(EXIT_RUNTIME, "sequence %zu failed: %s", i,
			               detail && *detail ? detail : rva_strerror(sst));
		else
			rc = cli_lib_error(st, EXIT_RUNTIME, "the batch failed");
	} else {
		run_stats rs;
		memset(&rs, 0, sizeof rs);
		if (rva_job_stats_get(job, &rs.job) == RVA_OK && rs.job.wall_ns > 0)
			*secs = (double)rs.job.wall_ns / 1e9;
		else
			*secs = t1 - t0;
		if (w->cfg.mechanism == RVA_MECH_MOE) { /* the job's copy of what rt collected */
			rs.has_moe = true;
			if (rva_job_moe_stats(job, &rs.moe) != RVA_OK)
				rs.moe = moe;
		}
		if (stats)
			*stats = rs;
	}
	rva_job_destroy(job);
	return rc;
}

checksum workload_checksum(const workload *w) {
	checksum c = {0, 0, 0xcbf29ce484222325ull};
	workload_output_f32((workload *)w); /* the output as fp32 (a no-op for f32) */
	size_t n = w->batch * w->nq * w->out_cols;
	const unsigned char *bytes = (const unsigned char *)w->out;
	for (size_t i = 0; i < n; i++) {
		c.sum += w->out[i];
		c.abs_sum += fabs((double)w->out[i]);
	}
	for (size_t i = 0; i < n * sizeof(float); i++) {
		c.fnv1a ^= bytes[i];
		c.fnv1a *= 0x100000001b3ull;
	}
	return c;
}

void workload_describe(const workload *w, FILE *f) {
	rva_config c;
	if (rva_attention_config(w->att, &c) != RVA_OK)
		c = w->cfg;
	size_t kvh = c.kv_heads ? c.kv_heads : c.heads;
	fprintf(f, "config: %s -> %s, dim %zu, %zu head%s", w->source,
	        rva_mechanism_name(c.mechanism), c.dim, c.heads, c.heads == 1 ? "" : "s");
	if (kvh != c.heads)
		fprintf(f, " (%zu kv heads)", kvh);
	fprintf(f, " of %zu", c.dim / c.heads);
	if (c.v_head_dim && c.v_head_dim != c.dim / c.heads)
		fprintf(f, " (V and output heads of %zu)", c.v_head_dim);
	fprintf(f, ", %s", c.causal ? "causal" : "bidirectional");
	if (w->bhsd)
		fprintf(f, ", layout [B, heads, N, head_dim]");
	switch (c.mechanism) {
	case RVA_MECH_FLASH: fprintf(f, ", block %zu", c.block_size); break;
	case RVA_MECH_LINEAR: fprintf(f, ", %zu features", c.features); break;
	case RVA_MECH_LOCAL_GLOBAL:
		fprintf(f, ", window %zu, %zu global", c.window,
		        c.global_indices ? c.n_global_indices : c.global_tokens);
		break;
	case RVA_MECH_HYPERBOLIC: fprintf(f, ", curvature %g", (double)c.curvature); break;
	case RVA_MECH_MOE:
		fprintf(f, ", %zu experts, top-%zu, capacity %g", c.experts, c.top_k,
		        (double)c.expert_capacity);
		break;
	default: break;
	}
	if (c.bias == RVA_BIAS_T5)
		fprintf(f, ", T5 bias");
	if (c.pattern == RVA_PATTERN_STRIDED)
		fprintf(f, ", strided sparse (stride %zu)", c.sparse_stride);
	if (c.pattern == RVA_PATTERN_FIXED)
		fprintf(f, ", fixed sparse (stride %zu, summary %zu)", c.sparse_stride,
		        c.sparse_summary);
	if (c.causal_align == RVA_CAUSAL_TOP_LEFT)
		fprintf(f, ", top-left aligned");
	if (c.sliding_window) {
		fprintf(f, ", window ");
		if (c.window_left == RVA_WINDOW_UNBOUNDED)
			fprintf(f, "(inf, ");
		else
			fprintf(f, "(%zu, ", c.window_left);
		if (c.window_right == RVA_WINDOW_UNBOUNDED)
			fprintf(f, "inf)");
		else
			fprintf(f, "%zu)", c.window_right);
	}
	if (c.softcap > 0.0f)
		fprintf(f, ", softcap %g", (double)c.softcap);
	if (c.alibi)
		fprintf(f, ", ALiBi%s", w->alibi_given ? " (given slopes)" : "");
	if (w->call_scale > 0.0f)
		fprintf(f, ", scale %g per call", (double)w->call_scale);
	if (c.rope != RVA_ROPE_NONE) {
		fprintf(f, ", RoPE %s (theta %g, rope_dim %zu", c.rope == RVA_ROPE_NEOX ? "neox" : "gptj",
		        (double)c.rope_theta, c.rope_dim);
		if (c.rope_scaling != RVA_ROPE_SCALING_NONE)
			fprintf(f, ", %s x%g", c.rope_scaling == RVA_ROPE_SCALING_LINEAR ? "linear" : "ntk",
			        (double)c.rope_factor);
		fputc(')', f);
	}
	if (w->bias_a.data)
		fprintf(f, ", bias %s", w->bias_a.ndim == 3 ? "per head" : "shared by the heads");
	if (w->mask)
		fprintf(f, ", mask %s", w->mask_a.ndim == 3 ? "per head" : "shared by the heads");
	if (w->dtype != RVA_F32 || w->out_dtype != RVA_F32)
		fprintf(f, ", q/k/v %s, output %s", workload_dtype_name(w->dtype),
		        workload_dtype_name(w->out_dtype));
	fputc('\n', f);
	if (w->nk_min != w->nk)
		fprintf(f, "batch: %zu sequence%s x %zu queries x %zu to %zu keys (ragged, %zu in "
		        "all)", w->batch, w->batch == 1 ? "" : "s", w->nq, w->nk_min, w->nk,
		        w->k_rows);
	else
		fprintf(f, "batch: %zu sequence%s x %zu queries x %zu keys", w->batch,
		        w->batch == 1 ? "" : "s", w->nq, w->nk);
	if (w->synthetic)
		fprintf(f, " (synthetic, seed %" PRIu64 ")\n", w->seed);
	else
		fprintf(f, " (from .npy files)\n");
	for (size_t i = 0; i < w->n_notes; i++)
		fprintf(f, "note: %s\n", w->notes[i]);
}

/* ---- placement --------------------------------------------------------------------- */

static int cmp_uns(const void *a, const void *b) {
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return (x > y) - (x < y);
}

/* "0-3,8" from n values (sorted in place). */
static void ranges(unsigned *v, size_t n, char *buf, size_t cap) {
	qsort(v, n, sizeof *v, cmp_uns);
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && len < cap;) {
		size_t j = i;
		while (j + 1 < n && v[j + 1] == v[j] + 1)
			j++;
		if (j == i)
			len += (size_t)snprintf(buf + len, cap - len, "%s%u", i ? "," : "", v[i]);
		else
			len += (size_t)snprintf(buf + len, cap - len, "%s%u-%u", i ? "," : "", v[i], v[j]);
		i = j + 1;
	}
}

void print_placement(FILE *f, rva_engine *e, bool per_worker) {
	rva_engine_info info;
	if (rva_engine_info_get(e, &info) != RVA_OK) {
		fprintf(f, "placement: unknown (%s)\n", rva_last_error());
		return;
	}
	fprintf(f, "placement: %u worker%s in %u pool%s (one per NUMA domain), cpus %s, "
	        "topology %s\n", info.workers, info.workers == 1 ? "" : "s", info.pools,
	        info.pools == 1 ? "" : "s", info.cpuset, info.topology);
	unsigned nbound = 0;
	rva_worker_info *wi = calloc(info.workers ? info.workers : 1, sizeof *wi);
	unsigned *a = calloc(info.workers ? info.workers : 1, sizeof *a);
	unsigned *b = calloc(info.workers ? info.workers : 1, sizeof *b);
	unsigned *c = calloc(info.workers ? info.workers : 1, sizeof *c);
	if (!wi || !a || !b || !c)
		goto out;
	for (unsigned i = 0; i < info.workers; i++) {
		if (rva_engine_worker(e, i, &wi[i]) != RVA_OK)
			memset(&wi[i], 0, sizeof wi[i]);
		nbound += wi[i].bound;
	}
	if (info.binding_real)
		fprintf(f, "binding: real (hwloc), %u of %u workers bound\n", nbound, info.workers);
	else
		fprintf(f, "binding: not real (the topology is not this system), workers unbound\n");
	for (unsigned p = 0; p < info.pools; p++) {
		size_t n = 0;
		unsigned numa = 0;
		for (unsigned i = 0; i < info.workers; i++) {
			if (wi[i].pool != p)
				continue;
			a[n] = wi[i].index;
			b[n] = wi[i].core_index;
			c[n] = wi[i].pu_os_index;
			numa = wi[i].numa_os_index;
			n++;
		}
		char ws[256], cs[256], ps[256];
		ranges(a, n, ws, sizeof ws);
		ranges(b, n, cs, sizeof cs);
		ranges(c, n, ps, sizeof ps);
		fprintf(f, "  pool %u (NUMA node %u): %zu worker%s %s -> cores %s (PUs %s)\n", p, numa,
		        n, n == 1 ? "" : "s", ws, cs, ps);
	}
	if (per_worker) {
		for (unsigned i = 0; i < info.workers; i++) {
			rva_worker_info *x = &wi[i];
			fprintf(f, "  worker %u: pool %u, NUMA node %u, core %u, PU %u, bound %s",
			        x->index, x->pool, x->numa_os_index, x->core_index, x->pu_os_index,
			        x->bound ? "yes" : "no");
			if (x->observed_pu >= 0)
				fprintf(f, ", observed on PU %d", x->observed_pu);
			fprintf(f, ", scratch on its node %s\n", x->scratch_on_node ? "yes" : "no");
		}
	}
out:
	free(wi);
	free(a);
	free(b);
	free(c);
}

/* ---- JSON pieces ------------------------------------------------------------------- */

void json_config(json *j, const workload *w) {
	rva_config c;
	if (rva_attention_config(w->att, &c) != RVA_OK)
		c = w->cfg;
	json_object_begin(j);
	json_kv_string(j, "source", w->source);
	json_kv_string(j, "mechanism", rva_mechanism_name(c.mechanism));
	json_kv_uint(j, "dim", c.dim);
	json_kv_uint(j, "heads", c.heads);
	json_kv_uint(j, "kv_heads", c.kv_heads ? c.kv_heads : c.heads);
	json_kv_uint(j, "head_dim", c.dim / c.heads);
	json_kv_uint(j, "v_head_dim", c.v_head_dim ? c.v_head_dim : c.dim / c.heads);
	json_kv_string(j, "layout", w->bhsd ? "bhsd" : "bshd");
	json_kv_bool(j, "causal", c.causal);
	json_kv_float(j, "scale", c.scale);
	json_kv_float(j, "dropout", c.dropout);
	json_kv_uint(j, "batch", w->batch);
	json_kv_uint(j, "seq", w->nq);
	json_kv_uint(j, "kv_seq", w->nk);
	if (w->nk_min != w->nk) {
		json_kv_uint(j, "kv_seq_min", w->nk_min);
		json_kv_uint(j, "kv_rows", w->k_rows);
	}
	json_kv_bool(j, "synthetic", w->synthetic);
	json_kv_string(j, "dtype", workload_dtype_name(w->dtype));
	json_kv_string(j, "out_dtype", workload_dtype_name(w->out_dtype));
	switch (c.mechanism) {
	case RVA_MECH_SCALED_DOT:
	case RVA_MECH_MULTI_HEAD:
	case RVA_MECH_FLASH: json_kv_uint(j, "block_size", c.block_size); break;
	case RVA_MECH_LINEAR: json_kv_uint(j, "features", c.features); break;
	case RVA_MECH_LOCAL_GLOBAL:
		json_kv_uint(j, "window", c.window);
		json_kv_uint(j, "global_tokens", c.global_indices ? c.n_global_indices : c.global_tokens);
		break;
	case RVA_MECH_HYPERBOLIC: json_kv_float(j, "curvature", c.curvature); break;
	case RVA_MECH_MOE:
		json_kv_uint(j, "experts", c.experts);
		json_kv_uint(j, "top_k", c.top_k);
		json_kv_float(j, "capacity", c.expert_capacity);
		break;
	default: break;
	}
	if (c.bias == RVA_BIAS_T5)
		json_kv_string(j, "bias", "t5");
	if (c.pattern != RVA_PATTERN_DENSE) {
		json_kv_string(j, "pattern", c.pattern == RVA_PATTERN_STRIDED ? "strided" : "fixed");
		json_kv_uint(j, "sparse_stride", c.sparse_stride);
	}
	if (c.pattern == RVA_PATTERN_FIXED)
		json_kv_uint(j, "sparse_summary", c.sparse_summary);
	json_kv_string(j, "causal_align",
	               c.causal_align == RVA_CAUSAL_TOP_LEFT ? "top-left" : "bottom-right");
	if (c.sliding_window) {
		/* an unbounded side as -1 (FlashAttention's window_size) */
		json_key(j, "window_size");
		json_array_begin(j);
		json_number(j, c.window_left == RVA_WINDOW_UNBOUNDED ? -1.0 : (double)c.window_left);
		json_number(j, c.window_right == RVA_WINDOW_UNBOUNDED ? -1.0 : (double)c.window_right);
		json_array_end(j);
	}
	if (c.softcap > 0.0f)
		json_kv_float(j, "softcap", c.softcap);
	json_kv_bool(j, "alibi", c.alibi);
	if (w->alibi_given)
		json_kv_bool(j, "alibi_slopes_given", true);
	if (w->call_scale > 0.0f)
		json_kv_float(j, "call_scale", w->call_scale);
	json_kv_string(j, "rope", c.rope == RVA_ROPE_NEOX ? "neox"
	                          : c.rope == RVA_ROPE_GPTJ ? "gptj" : "none");
	if (c.rope != RVA_ROPE_NONE) {
		json_kv_float(j, "rope_theta", c.rope_theta);
		json_kv_uint(j, "rope_dim", c.rope_dim);
		json_kv_string(j, "rope_scaling",
		               c.rope_scaling == RVA_ROPE_SCALING_LINEAR ? "linear"
		               : c.rope_scaling == RVA_ROPE_SCALING_NTK  ? "ntk" : "none");
		if (c.rope_scaling != RVA_ROPE_SCALING_NONE)
			json_kv_float(j, "rope_factor", c.rope_factor);
	}
	json_kv_bool(j, "score_bias", w->bias_a.data != NULL);
	json_kv_bool(j, "score_mask", w->mask != NULL);
	json_object_end(j);
}

void json_placement(json *j, rva_engine *e) {
	rva_engine_info info;
	json_object_begin(j);
	if (rva_engine_info_get(e, &info) == RVA_OK) {
		json_kv_uint(j, "workers", info.workers);
		json_kv_uint(j, "pools", info.pools);
		json_kv_bool(j, "binding_real", info.binding_real);
		json_kv_string(j, "topology", info.topology);
		json_kv_string(j, "cpuset", info.cpuset);
		json_key(j, "worker_list");
		json_array_begin(j);
		for (unsigned i = 0; i < info.workers; i++) {
			rva_worker_info x;
			if (rva_engine_worker(e, i, &x) != RVA_OK)
				continue;
			json_object_begin(j);
			json_kv_uint(j, "index", x.index);
			json_kv_uint(j, "pool", x.pool);
			json_kv_uint(j, "numa", x.numa_os_index);
			json_kv_uint(j, "core", x.core_index);
			json_kv_uint(j, "pu", x.pu_os_index);
			json_kv_bool(j, "bound", x.bound);
			json_key(j, "observed_pu");
			json_int(j, x.observed_pu);
			json_kv_bool(j, "scratch_on_node", x.scratch_on_node);
			json_kv_uint(j, "tasks", x.tasks);
			json_kv_uint(j, "busy_ns", x.busy_ns);
			json_kv_uint(j, "steals_local", x.steals_local);
			json_kv_uint(j, "steals_remote", x.steals_remote);
			json_object_end(j);
		}
		json_array_end(j);
	}
	json_object_end(j);
}

void json_kernels(json *j, rva_kernel_set k) {
	rva_kernel_set cur;
	const char *note = NULL;
	json_object_begin(j);
	json_kv_string(j, "set", rva_kernel_set_name(k));
	if (rva_kernels_current(&cur, &note) == RVA_OK && cur == k && note)
		json_kv_string(j, "note", note);
	else
		json_kv_string(j, "note", "engine option");
	json_object_end(j);
}

void json_moe(json *j, const rva_moe_stats *m) {
	size_t e = m->experts < RVA_MOE_MAX_EXPERTS ? m->experts : RVA_MOE_MAX_EXPERTS;
	json_object_begin(j);
	json_kv_uint(j, "experts", m->experts);
	json_kv_uint(j, "tokens", m->tokens);
	json_kv_uint(j, "capacity", m->capacity);
	json_key(j, "assigned");
	json_array_begin(j);
	for (size_t i = 0; i < e; i++)
		json_uint(j, m->assigned[i]);
	json_array_end(j);
	json_key(j, "processed");
	json_array_begin(j);
	for (size_t i = 0; i < e; i++)
		json_uint(j, m->processed[i]);
	json_array_end(j);
	json_kv_uint(j, "dropped", m->dropped);
	json_kv_number(j, "load_balancing_loss", m->load_balancing_loss);
	json_object_end(j);
}

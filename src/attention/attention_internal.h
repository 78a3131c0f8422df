/*
 * The mechanism contract: what every attention mechanism provides to the common code
 * (attention.c: validation, single-query calls, planning dispatch) and, through job
 * graphs, to the engine.
 *
 * A mechanism is a table of functions (rva__mech_ops). Kernels never know about threads:
 * `plan` adds tasks to a graph (one unit of work each), `rows` computes a subset of query
 * rows synchronously (used by MoE experts inside their own tasks).
 */
#ifndef RVATTN_SRC_ATTENTION_INTERNAL_H
#define RVATTN_SRC_ATTENTION_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attention/kv_pages.h"
#include "graph/graph.h"
#include "rvattn/attention.h"
#include "rvattn/batch.h"
#include "rvattn/config.h"

/* Upper bounds of the tile sizes (config validation). */
#define RVA__MAX_BLOCK 65536
#define RVA__MAX_QUERY_BLOCK 4096

/* Inputs of one op (an attention over a batch) being planned into a graph. */
typedef struct rva__plan_io {
	const rva_seq *seqs;        /* nseq descriptors, strides normalised (never 0), owned by
	                             * the job (arena) or the caller for the whole run */
	size_t nseq;
	rva_runtime rt;             /* copied; defaults when the caller passed NULL */
	const uint32_t *after;      /* NULL, or per sequence a task every task of this op for
	                             * that sequence must wait for (RVA__NO_TASK = none) */
	uint32_t *done;             /* out: per sequence, a task that completes after all of
	                             * this op's work on that sequence (always set) */
	rva_status *seq_status;     /* per sequence; planning failures are recorded here, and
	                             * sequences already failed are not planned */
	char **details;             /* per sequence detail strings (may be NULL) */
	uint32_t stream;            /* random-stream id (pipeline stage index), mixed into every
	                             * counter-based random number of the op */
	const rva__kv_pages *pages; /* NULL, or per sequence its paged K/V rows (kv_pages.h;
	                             * page_rows 0: contiguous); only the softmax mechanisms
	                             * plan paged sequences */
} rva__plan_io;

typedef struct rva__mech_ops {
	rva_mechanism mechanism;
	/* Mechanism-specific defaults resolution and validation of cfg (common fields are
	 * already checked and resolved), then allocation of derived state in att->state.
	 * Must leave att safe for `destroy` on every failure. */
	rva_status (*build)(rva_attention *att);
	/* Frees att->state (and anything build allocated). NULL = nothing to free. */
	void (*destroy)(rva_attention *att);
	/* Adds the tasks computing att over every sequence of io whose status is RVA_OK (and
	 * sets io->done[s] for every sequence). Sequences are valid (see attention.c:
	 * validate_seq). Returns non-OK only for job-wide failures (RVA_ENOMEM). */
	rva_status (*plan)(const rva_attention *att, rva__plan_io *io, rva__graph *g);
	/* Computes output rows for the query rows rows[0..nrows) (ascending row indices of
	 * seq: their positions) into out (row r of the result at out + r*out_stride),
	 * synchronously on the calling thread with `scratch` of at least
	 * rows_scratch(att, seq, nrows) bytes. The query vectors come gathered: the one of
	 * rows[r] is at seq->q + r * seq->q_stride (MoE passes its projected rows); nq, nk,
	 * K, V and the key mask are the sequence's.
	 * seq_index and rt select random streams. May be NULL for mechanisms that cannot be
	 * MoE experts (MoE itself). */
	rva_status (*rows)(const rva_attention *att, const rva_seq *seq, uint32_t seq_index,
	                   const rva_runtime *rt, const uint32_t *rows, size_t nrows, float *out,
	                   size_t out_stride, void *scratch);
	size_t (*rows_scratch)(const rva_attention *att, const rva_seq *seq, size_t nrows);
	/* Useful FLOPs of one sequence (for statistics). */
	double (*flops)(const rva_attention *att, const rva_seq *seq);
} rva__mech_ops;

struct rva_attention {
	rva_config cfg;              /* normalised: defaults resolved; pointer fields point to
	                              * the copies below (or NULL) */
	const rva__mech_ops *ops;
	size_t head_dim;             /* dim / heads */
	size_t kv_heads;             /* resolved (never 0) */
	size_t kv_dim;               /* kv_heads * head_dim: width of K rows */
	size_t v_head_dim;           /* Dv: head width of V and the output (cfg.v_head_dim
	                              * resolved; head_dim by default) */
	size_t v_dim;                /* kv_heads * v_head_dim: width of V rows */
	size_t out_dim;              /* heads * v_head_dim: width of output rows */
	float scale;                 /* resolved logit scale */
	/* owned copies of the config's borrowed arrays */
	size_t *global_indices;
	float *feature_matrix;
	float *router_weights;
	float *bias_table;
	float *alibi_slopes;         /* alibi: heads slopes (the caller's or the defaults) */
	void *state;                 /* mechanism-private, freed by ops->destroy */
	atomic_size_t refs;          /* references held (attention.h): 1 from rva_build, +1
	                              * per rva_attention_retain; freed when the last goes */
};

/* Mechanism tables (one per file in src/attention/). */
extern const rva__mech_ops rva__scaled_dot_ops;
extern const rva__mech_ops rva__multi_head_ops;
extern const rva__mech_ops rva__flash_ops;
extern const rva__mech_ops rva__linear_ops;
extern const rva__mech_ops rva__local_global_ops;
extern const rva__mech_ops rva__hyperbolic_ops;
extern const rva__mech_ops rva__moe_ops;

/*
 * Plans att over io (validating each sequence first: NULL pointers, nk == 0 -> RVA_EEMPTY,
 * strides narrower than rows -> RVA_EDIM, nq == 0 is an empty success). Sequences that
 * fail validation get their status and detail and a join node as done[s].
 */
rva_status rva__attention_plan(const rva_attention *att, rva__plan_io *io, rva__graph *g);

/* Validates one sequence against att (as above). index is used in messages. */
rva_status rva__validate_seq(const rva_attention *att, const rva_seq *s, size_t index);
/* The part of rva__validate_seq that checks the rva_seq extras (batch.h). */
rva_status rva__seq_extras_supported(const rva_attention *att, const rva_seq *s,
                                     size_t index);

/* The head stride of one tensor of a sequence (batch.h, rva_seq.q_head_stride ...):
 * elements between consecutive heads of one row; 0 = `width` (heads side by side). */
static inline size_t rva__head_stride(size_t hs, size_t width) { return hs ? hs : width; }

/* Whether seq lays any of q, k, v, out out with a head stride other than the packed one
 * (the head width). */
bool rva__seq_head_strided(const rva_attention *att, const rva_seq *s);

/* Copies a batch's descriptors with strides normalised (0 -> packed width). */
void rva__normalise_seq(const rva_attention *att, const rva_seq *in, rva_seq *out);

/* Fills an rva_runtime from a possibly NULL pointer. */
rva_runtime rva__runtime_or_default(const rva_runtime *rt);

/* Helper for planners: the `after` task of sequence s (RVA__NO_TASK if none). */
static inline uint32_t rva__plan_after(const rva__plan_io *io, size_t s) {
	return io->after ? io->after[s] : RVA__NO_TASK;
}

/* Plans an op (an attention, a pipeline) over io into g. */
typedef rva_status (*rva__plan_fn)(const void *op, rva__plan_io *io, rva__graph *g);

/* Plans op over n sequences and runs the graph serially on the calling thread: per-
 * sequence statuses to seq_status (may be NULL); returns RVA_OK or the first failing
 * sequence's status with its detail (and index when n > 1) in rva_last_error(). */
rva_status rva__run_serial(rva__plan_fn plan, const void *op, const rva_seq *seqs, size_t n,
                           const rva_runtime *rt, rva_status *seq_status);

/* Runs a batch serially (rva_compute_batch's body), optionally with seq_status/details. */
rva_status rva__run_batch_serial(const rva_attention *att, const rva_batch *batch,
                                 const rva_runtime *rt, rva_status *seq_status);

/* The guide's single-query shape hands key/value rows by pointer: checks n_keys > 0
 * (RVA_EEMPTY), keys/values and every row pointer (RVA_ENULL), then copies the rows into
 * one new buffer *kv (keys rows of kv_dim floats, then values rows of v_dim floats; free
 * with rva__free). `who` names the public caller in messages ("rva_compute"). */
rva_status rva__gather_kv(const char *who, const float *const *keys,
                          const float *const *values, size_t n_keys, size_t kv_dim,
                          size_t v_dim, float **kv);

/* Builds an expert / sub-mechanism with the same dims as parent but another mechanism
 * (MoE experts): copies cfg, sets mechanism, builds. */
rva_status rva__build_variant(const rva_config *base, rva_mechanism m, rva_attention **out);

#endif

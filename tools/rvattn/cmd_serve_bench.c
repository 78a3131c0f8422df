/*
 * `rvattn serve-bench`: continuous batching with chunked prefill over the paged K/V cache
 * (rvattn/kv_cache.h), under a seeded Poisson arrival process.
 *
 * The clock is virtual: it advances by the measured wall time of each engine step and
 * jumps over idle gaps to the next arrival, so a run of D seconds offers rate x D requests
 * whatever the machine, and its figures are the engine's (no sleeping, no timer noise).
 * --clock cpu measures a step by the process's CPU time over the workers instead (the
 * workers park at once when idle: engine spin_us 0), for a machine shared with other
 * work: the time a step waits for a core then does not count. With one worker that is
 * the step's time on a core of its own; with more it assumes the work divides evenly.
 * Each step admits waiting requests (up to --max-streams streams, and only when the cache
 * can hold the whole request: never an eviction), appends the new K/V rows of every
 * decoding stream (the token its last step generated) and prefill chunks of waiting
 * prompts, and runs ONE job with all of them (rva_kv_cache_run); a stream whose prompt
 * is done has its first token (time to first token, from its arrival), then decodes one
 * token per step until its output length, and is freed.
 *
 * Which prefill chunks a step carries (--schedule): decodes always go first; then
 *   budget (default) the waiting prompts in admission order fill the step up to
 *          --step-keys K/V rows read (vLLM's max_num_batched_tokens, in the unit of an
 *          attention step's cost: a decode of a stream of L rows reads L rows; a prefill
 *          chunk costs the rows it reads plus its FLOPs at r rows per FLOP, r measured
 *          once before the sweep from a decode step and a prefill chunk). A stream only starts decoding after its
 *          prefill, so while the decodes alone fill the budget no prompt joins them: the
 *          step cost stays near the budget at any load (decodes are never deferred);
 *   fcfs   the waiting prompts in admission order fill --chunk prompt tokens per step;
 *   paced  every step carries an even share of the prefill work: with tau =
 *          --spread / (the arrival rate seen so far: one mean arrival gap by default),
 *          each step gives every waiting prompt the fraction step / tau of its remaining
 *          work (the engine's FLOP model, rva_attention_flops; step = a running mean of
 *          the measured step times), as the whole tokens nearest that share and at least
 *          PACE_MIN_CHUNK of them. The --chunk tokens per step bound both.
 * Paced, a prompt's prefill decays smoothly over about tau instead of landing on a few
 * steps, and the prefill a step carries follows the pending work: the step's cost is its
 * decodes plus that share (a step of whole 256-token chunks costs ~100x a decode step of
 * a few streams, which made p99/p50 step latency ~600 under fcfs: bench/RESULTS.md §13).
 *
 * Per offered rate: output tokens/s, per-step latency p50/p99/max, time to first token
 * p50/p99, engine occupancy (share of the virtual time inside steps), mean active streams,
 * cache memory. A rate is saturated when its queue of requests waiting for their first
 * token (not yet admitted, or admitted with prompt rows still to prefill: under the budget
 * schedule prompts wait for room after admission), averaged over the second half of the
 * arrivals, exceeds 2 and 5% of that half's arrivals (a queue that grows, not a burst
 * after one slow step). --sweep auto doubles the rate from --rate until saturation,
 * narrows the boundary by bisection, then runs 80% of the highest unsaturated rate.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "json.h"

#define MAX_POINTS 64
#define ROW_POOL 4096 /* distinct synthetic K/V rows, reused cyclically */
#define STEP_KEYS_DEFAULT 1024 /* budget: K/V rows a step reads (--step-keys) */
#define PACE_MIN_CHUNK 8 /* prompt tokens per step at least, paced: a chunk of at most
                          * 8 queries runs the decode kernels, memory-bound like a
                          * decode step of its stream (softmax_core.c, few_queries) */

enum {
	OPT_SB_RATE = 2000, OPT_SB_DURATION, OPT_SB_PROMPT, OPT_SB_OUTPUT, OPT_SB_STREAMS,
	OPT_SB_CHUNK, OPT_SB_PAGE, OPT_SB_PAGES, OPT_SB_SWEEP, OPT_SB_HEAD_DIM, OPT_SB_THREADS,
	OPT_SB_DTYPE, OPT_SB_JSON, OPT_SB_PLOT, OPT_SB_SEED, OPT_SB_HEADS, OPT_SB_KV_HEADS,
	OPT_SB_SCHEDULE, OPT_SB_SPREAD, OPT_SB_CLOCK, OPT_SB_STEP_KEYS, OPT_SB_HELP
};

static void print_help(void) {
	printf("Usage: rvattn serve-bench [OPTIONS]\n"
	       "\n"
	       "Serving benchmark: requests arrive as a seeded Poisson process, are prefilled in\n"
	       "chunks and decode token by token while others join and leave (continuous\n"
	       "batching); K/V live in a paged cache; each engine step is one job with every\n"
	       "active stream. The clock is virtual (measured step times, idle gaps skipped).\n"
	       "\n"
	       "Model (causal multi-head attention, fp32 queries):\n"
	       "  --heads H           query heads (default 12)\n"
	       "  --kv-heads G        key/value heads (default H; fewer: grouped-query)\n"
	       "  --head-dim D        elements per head (default 64)\n"
	       "  --dtype f32|bf16|f16  element type of the cached K/V (default f32)\n"
	       "Load:\n"
	       "  --rate R            requests per second (default 10; the sweep's start)\n"
	       "  --duration S        seconds of arrivals per rate (default 5)\n"
	       "  --prompt DIST       prompt tokens (default 64-512)\n"
	       "  --output DIST       output tokens (default 16-256)\n"
	       "                      DIST: N (fixed), A-B (uniform), exp:MEAN (exponential,\n"
	       "                      rounded, at least 1, at most 8 x MEAN)\n"
	       "  --max-streams C     concurrent streams at most (default 32)\n"
	       "  --chunk N           prompt tokens per step at most, over all streams (default\n"
	       "                      256; decode tokens always go first)\n"
	       "  --schedule budget|paced|fcfs  how prompts are chunked (default budget):\n"
	       "                      budget fills each step up to --step-keys K/V rows read\n"
	       "                      (decodes first, each reads its stream's rows; a prefill\n"
	       "                      chunk counts its rows and its FLOPs at the measured cost\n"
	       "                      of a decode row), so no step carries more than that;\n"
	       "                      paced gives\n"
	       "                      each waiting prompt, every step, the share step time / T\n"
	       "                      of its remaining prefill work (FLOP model; T = --spread\n"
	       "                      mean arrival gaps; at least %d tokens), so the prefill\n"
	       "                      spreads over the steps; fcfs fills --chunk tokens per\n"
	       "                      step with the waiting prompts in admission order\n"
	       "  --spread F          paced: the time constant T in mean arrival gaps (default 1)\n"
	       "  --step-keys N       budget: K/V rows a step reads at most (default %d; decodes\n"
	       "                      are never deferred: only prefill waits for room)\n"
	       "  --seed S            seed of the arrivals and lengths (default 1)\n"
	       "  --sweep auto|LIST   rates to run: auto (double from --rate until saturation,\n"
	       "                      bisect, then 80%% of the saturation rate) or a list R1,R2\n"
	       "Cache and engine:\n"
	       "  --page P            tokens per page (even; default 16)\n"
	       "  --pages N           pages in the cache (default: --max-streams full-length\n"
	       "                      requests)\n"
	       "  --threads T         engine workers (default all allowed cores)\n"
	       "  --clock wall|cpu    what a step's time is (default wall): cpu = the process's\n"
	       "                      CPU time over the workers (idle workers park at once), for\n"
	       "                      a machine shared with other work\n"
	       "Output:\n"
	       "  --json FILE         write the results as JSON\n"
	       "  --plot FILE         draw step latency p50/p99 and tokens/s against the offered\n"
	       "                      load (.png or .svg) with gnuplot (Debian gnuplot-nox)\n"
	       "  --help              this text\n"
	       "\n"
	       "A rate is saturated when its queue of requests waiting for their first token\n"
	       "(not yet admitted, or still prefilling), averaged over the second half of the\n"
	       "arrivals, exceeds 2 and 5%% of that half's arrivals.\n"
	       "Exit status: 0 success, 1 runtime error, 2 usage error.\n",
	       PACE_MIN_CHUNK, STEP_KEYS_DEFAULT);
}

typedef struct dist {
	int kind;          /* 0 fixed, 1 uniform [a, b], 2 exponential of mean m */
	size_t a, b;
	double m;
} dist;

static bool parse_dist(const char *flag, const char *s, dist *d) {
	char *end;
	if (!strncmp(s, "exp:", 4)) {
		d->kind = 2;
		d->m = strtod(s + 4, &end);
		if (*end || !(d->m >= 1.0) || d->m > 1e7)
			return cli_usage("serve-bench", "%s: bad mean in '%s'", flag, s), false;
		d->a = 1;
		d->b = (size_t)(8.0 * d->m);
		return true;
	}
	errno = 0;
	unsigned long long a = strtoull(s, &end, 10), b = a;
	if (end == s || errno)
		return cli_usage("serve-bench", "%s: bad length '%s'", flag, s), false;
	if (*end == '-') {
		const char *t = end + 1;
		b = strtoull(t, &end, 10);
		if (end == t || errno)
			return cli_usage("serve-bench", "%s: bad range '%s'", flag, s), false;
	}
	if (*end || a == 0 || b < a || b > 10000000)
		return cli_usage("serve-bench", "%s: '%s' is not N or A-B with 1 <= A <= B <= 1e7",
		                 flag, s),
		       false;
	d->kind = a == b ? 0 : 1;
	d->a = (size_t)a;
	d->b = (size_t)b;
	return true;
}

/* xoshiro-style generator (splitmix64 steps: small, seeded, portable). */
static uint64_t rng_next(uint64_t *s) {
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static double rng_u01(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

static size_t draw(const dist *d, uint64_t *s) {
	if (d->kind == 0)
		return d->a;
	if (d->kind == 1)
		return d->a + (size_t)(rng_next(s) % (d->b - d->a + 1));
	double x = -d->m * log(1.0 - rng_u01(s));
	size_t n = (size_t)llround(x);
	return n < 1 ? 1 : n > d->b ? d->b : n;
}

enum { SCHED_BUDGET, SCHED_PACED, SCHED_FCFS };
static const char *const SCHED_NAMES[] = {"budget", "paced", "fcfs"};

typedef struct opts {
	size_t heads, kv_heads, head_dim, max_streams, chunk, page, pages, threads;
	rva_dtype dtype;
	int schedule;            /* --schedule: SCHED_* */
	size_t step_keys;        /* --step-keys: a budget step's cost in K/V rows read */
	bool cpu_clock;          /* --clock cpu */
	double rate, duration, spread;
	dist prompt, output;
	uint64_t seed;
	const char *sweep, *json_path, *plot_path;
} opts;

typedef struct request {
	double arrival;
	size_t prompt, output;
} request;

typedef struct stream {
	uint64_t seq;
	const request *r;
	size_t prefilled, generated, pages;
	size_t nq;               /* query rows in the current step (0: not in it) */
} stream;

typedef struct point {
	double rate, t_end, busy;
	size_t arrived, admitted, completed, waiting, steps, out_tokens, prompt_tokens;
	double tps, p50, p99, max, ttft50, ttft99, occupancy, mean_streams;
	double mean_waiting;     /* requests waiting for their first token (admission or
	                          * prefill), time-averaged over the second half of the
	                          * arrivals */
	size_t cache_peak_pages;
	bool saturated;
} point;

/* Everything a run needs, made once. */
typedef struct ctx {
	const opts *o;
	rva_engine *e;
	rva_kv_cache *c;
	rva_attention *att;
	rva_kv_cache_stats cs;
	size_t dim, kvd, es;
	unsigned workers;        /* the engine's */
	void *krows, *vrows;     /* ROW_POOL rows of the cache's type */
	double r_flop, c0;       /* budget: a prefill FLOP's and a chunk's fixed time in decode
	                          * rows (calibrate) */
	float *q, *out;          /* max_streams x chunk rows of dim floats */
	stream *streams;
	rva_kv_step *steps;
	double *lat, *ttft;      /* per step, per request (grown) */
	size_t lat_cap, ttft_cap;
} ctx;

/* Seconds on the step clock: wall, or (--clock cpu) the process's CPU time over the
 * workers. */
static double step_clock(const ctx *x) {
	if (!x->o->cpu_clock)
		return now_s();
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec * 1e-9) / (double)x->workers;
}

static int cmp_double(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The q-th quantile (nearest rank) of n sorted values. */
static double quantile(const double *v, size_t n, double q) {
	if (!n)
		return 0.0;
	size_t k = (size_t)ceil(q * (double)n);
	return v[k ? k - 1 : 0];
}

static bool grow(double **v, size_t *cap, size_t need) {
	if (need <= *cap)
		return true;
	size_t n = *cap ? 2 * *cap : 1024;
	while (n < need)
		n *= 2;
	double *p = realloc(*v, n * sizeof *p);
	if (!p)
		return false;
	*v = p;
	*cap = n;
	return true;
}

/* Appends rows [from, from + n) of a stream's K/V: synthetic rows from the pool. */
static rva_status append_rows(ctx *x, stream *s, size_t from, size_t n) {
	for (size_t done = 0; done < n;) {
		size_t r = (from + done + (size_t)(s->seq % 977)) % ROW_POOL;
		size_t m = n - done < ROW_POOL - r ? n - done : ROW_POOL - r;
		rva_status st = rva_kv_cache_append(x->c, s->seq, (char *)x->krows + r * x->kvd * x->es,
		                                    0, (char *)x->vrows + r * x->kvd * x->es, 0, m);
		if (st != RVA_OK)
			return st;
		done += m;
	}
	return RVA_OK;
}

static size_t req_pages(const ctx *x, const request *r) {
	return (r->prompt + r->output + x->o->page - 1) / x->o->page;
}

/* FLOPs of prompt rows [from, from + n) of a stream over the keys before them and
 * themselves (causal): the engine's model (rva_attention_flops). */
static double chunk_flops(const ctx *x, size_t from, size_t n) {
	rva_seq q = {.nq = n, .nk = from + n};
	double f = 0.0;
	rva_attention_flops(x->att, &(rva_batch){1, &q}, &f);
	return f;
}

/*
 * Paced prefill: the prompt tokens a stream takes this step (at most cap): the share
 * step_s / tau of its remaining work (tau: the pacing time constant), as the whole tokens
 * whose FLOPs come nearest that share, at least PACE_MIN_CHUNK (or what is left). Every
 * step takes the same fraction of what is left, so the prefill work of a prompt decays
 * smoothly (no step takes a lump) and the step's total follows the pending work.
 */
static size_t paced_chunk(const ctx *x, const stream *s, double step_s, double tau,
                          size_t cap) {
	size_t p = s->prefilled, left = s->r->prompt - p;
	size_t lo = left < PACE_MIN_CHUNK ? left : PACE_MIN_CHUNK;
	if (left > cap)
		left = cap;
	if (lo > left)
		lo = left;
	if (tau <= step_s)
		return left;
	double share = chunk_flops(x, p, s->r->prompt - p) * step_s / tau;
	size_t hi = left; /* the largest n in [lo, hi] with chunk_flops(p, n) <= share */
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;
		if (chunk_flops(x, p, mid) <= share)
			lo = mid;
		else
			hi = mid - 1;
	}
	/* the nearer of n and n + 1 */
	if (lo < left && chunk_flops(x, p, lo + 1) - share < share - chunk_flops(x, p, lo))
		lo++;
	return lo;
}

/*
 * The budget schedule's cost of a prefill chunk, in K/V rows read (the unit of a decode
 * step: a decode of a stream of L rows reads L rows): the rows [0, from + n) it reads,
 * a fixed c0, and its FLOPs at r rows per FLOP (the time a prefill FLOP takes over the
 * time a decode row takes; both measured once before the sweep: calibrate).
 */
static double chunk_keys(const ctx *x, size_t from, size_t n, double r) {
	return n ? (double)(from + n) + x->c0 + r * chunk_flops(x, from, n) : 0.0;
}

/* Budget: the most prompt tokens (at most cap) of a stream whose chunk costs at most room
 * rows; at least PACE_MIN_CHUNK (or what is left) when the step would else be empty. */
static size_t budget_chunk(const ctx *x, const stream *s, double room, double r, size_t cap,
                           bool must) {
	size_t p = s->prefilled, hi = s->r->prompt - p, lo = 0;
	if (hi > cap)
		hi = cap;
	while (lo < hi) { /* the largest n in [0, hi] that fits */
		size_t mid = lo + (hi - lo + 1) / 2;
		if (chunk_keys(x, p, mid, r) <= room)
			lo = mid;
		else
			hi = mid - 1;
	}
	if (!lo && must) {
		size_t left = s->r->prompt - p;
		lo = left < PACE_MIN_CHUNK ? left : PACE_MIN_CHUNK;
		lo = lo < cap ? lo : cap;
	}
	return lo;
}

/* Runs the load at one rate; fills *p. Returns 0, or prints and returns 1. */
static int run_point(ctx *x, double rate, point *p) {
	const opts *o = x->o;
	memset(p, 0, sizeof *p);
	p->rate = rate;
	/* arrivals: seeded, the same sequence of lengths for every rate */
	uint64_t sa = o->seed * 0x9E3779B97F4A7C15ull + 1, sl = o->seed ^ 0x5EEDull;
	size_t cap = 0, nreq = 0;
	request *reqs = NULL;
	for (double t = -log(1.0 - rng_u01(&sa)) / rate; t < o->duration;
	     t += -log(1.0 - rng_u01(&sa)) / rate) {
		if (nreq == cap) {
			cap = cap ? 2 * cap : 256;
			request *nr = realloc(reqs, cap * sizeof *nr);
			if (!nr) {
				free(reqs);
				return cli_error(EXIT_RUNTIME, "serve-bench: out of memory");
			}
			reqs = nr;
		}
		reqs[nreq].arrival = t;
		reqs[nreq].prompt = draw(&o->prompt, &sl);
		reqs[nreq].output = draw(&o->output, &sl);
		nreq++;
	}
	p->arrived = nreq;
	size_t next = 0, active = 0, reserved = 0, peak = 0, nlat = 0, nttft = 0;
	double t = 0.0, streams_sum = 0.0, wait_area = 0.0, half = 0.5 * o->duration;
	double step_s = 0.0; /* expected step duration: running mean of the measured ones */
	double r_flop = x->r_flop;
	size_t arrived_now = 0;
	int rc = 0;
	while (!rc) {
		if (interrupted()) {
			rc = cli_error(EXIT_RUNTIME, "interrupted");
			break;
		}
		while (arrived_now < nreq && reqs[arrived_now].arrival <= t)
			arrived_now++;
		/* the arrival rate seen so far (the scheduler does not know the offered one) */
		double seen_rate = t > 0.0 ? (double)arrived_now / t : 0.0;
		/* admit */
		while (next < nreq && reqs[next].arrival <= t && active < o->max_streams &&
		       reserved + req_pages(x, &reqs[next]) <= x->cs.pages) {
			stream *s = &x->streams[active];
			rva_status st = rva_kv_cache_seq_new(x->c, &s->seq);
			if (st != RVA_OK) {
				rc = cli_lib_error(st, EXIT_RUNTIME, "serve-bench: new stream");
				break;
			}
			s->r = &reqs[next++];
			s->prefilled = s->generated = 0;
			s->pages = req_pages(x, s->r);
			reserved += s->pages;
			active++;
			p->admitted++;
		}
		if (rc)
			break;
		if (t >= o->duration)
			break;
		if (!active) {
			if (next >= nreq)
				break;
			t = reqs[next].arrival; /* idle until the next arrival */
			continue;
		}
		/* one step: every decoding stream's token, then prefill chunks (paced or first
		 * come, first served) within --chunk prompt tokens (streams in admission order);
		 * appends, then one job over all of them */
		double t0 = step_clock(x);
		size_t qrow = 0, nsteps = 0, budget = o->chunk;
		double tau = seen_rate > 0.0 ? o->spread / seen_rate : 0.0;
		size_t drows = 0;             /* K/V rows the step's decodes read */
		size_t ptok = 0;              /* its prompt tokens */
		size_t prefilling = 0;        /* admitted streams without their first token */
		for (size_t i = 0; i < active; i++) {
			stream *s = &x->streams[i];
			s->nq = s->prefilled < s->r->prompt ? 0 : 1;
			drows += s->nq ? s->r->prompt + s->generated : 0;
			prefilling += !s->nq;
		}
		double room = (double)o->step_keys - (double)drows;
		for (size_t i = 0; i < active && budget && o->schedule == SCHED_BUDGET; i++) {
			stream *s = &x->streams[i];
			if (s->prefilled < s->r->prompt) {
				s->nq = budget_chunk(x, s, room, r_flop, budget, !drows && !ptok);
				ptok += s->nq;
				room -= chunk_keys(x, s->prefilled, s->nq, r_flop);
				budget -= s->nq;
			}
		}
		for (size_t i = 0; i < active && budget && o->schedule != SCHED_BUDGET; i++) {
			stream *s = &x->streams[i];
			if (s->prefilled < s->r->prompt) {
				size_t left = s->r->prompt - s->prefilled;
				s->nq = o->schedule == SCHED_FCFS ? (left < budget ? left : budget)
				                : paced_chunk(x, s, step_s, tau, budget);
				budget -= s->nq;
			}
		}
		for (size_t i = 0; i < active && !rc; i++) {
			stream *s = &x->streams[i];
			if (!s->nq)
				continue;
			size_t from = s->prefilled < s->r->prompt ? s->prefilled
			                                          : s->r->prompt + s->generated - 1;
			rva_status st = append_rows(x, s, from, s->nq);
			if (st != RVA_OK)
				rc = cli_lib_error(st, EXIT_RUNTIME, "serve-bench: append");
			x->steps[nsteps++] = (rva_kv_step){.seq = s->seq, .nq = s->nq,
			                                   .q = x->q + qrow * x->dim,
			                                   .out = x->out + qrow * x->dim};
			qrow += s->nq;
		}
		if (rc)
			break;
		rva_status st = rva_kv_cache_run(x->e, x->c, x->att, x->steps, nsteps, NULL, NULL, NULL);
		if (st != RVA_OK) {
			rc = cli_lib_error(st, EXIT_RUNTIME, "serve-bench: step");
			break;
		}
		double dt = step_clock(x) - t0;
		step_s = p->steps ? 0.8 * step_s + 0.2 * dt : dt;

		/* the queue over [t, t + dt), counted in the second half of the arrivals */
		if (t + dt > half && t < o->duration) {
			double a = t > half ? t : half, b = t + dt < o->duration ? t + dt : o->duration;
			wait_area += (double)(arrived_now - p->admitted + prefilling) * (b - a);
		}
		t += dt;
		p->busy += dt;
		p->steps++;
		streams_sum += (double)nsteps;
		if (!grow(&x->lat, &x->lat_cap, nlat + 1)) {
			rc = cli_error(EXIT_RUNTIME, "serve-bench: out of memory");
			break;
		}
		x->lat[nlat++] = dt * 1e3;
		rva_kv_cache_stats cs;
		rva_kv_cache_stats_get(x->c, &cs);
		if (cs.pages - cs.pages_free > peak)
			peak = cs.pages - cs.pages_free;
		/* tokens; finished streams leave (the last active one takes the slot) */
		for (size_t i = 0; i < active;) {
			stream *s = &x->streams[i];
			if (!s->nq) {
				i++;
				continue;
			}
			if (s->prefilled < s->r->prompt) {
				s->prefilled += s->nq;
				p->prompt_tokens += s->nq;
				if (s->prefilled == s->r->prompt) { /* the first token */
					s->generated = 1;
					p->out_tokens++;
					if (!grow(&x->ttft, &x->ttft_cap, nttft + 1)) {
						rc = cli_error(EXIT_RUNTIME, "serve-bench: out of memory");
						break;
					}
					x->ttft[nttft++] = (t - s->r->arrival) * 1e3;
				}
			} else {
				s->generated++;
				p->out_tokens++;
			}
			if (s->generated >= s->r->output) {
				rva_kv_cache_seq_free(x->c, s->seq);
				reserved -= s->pages;
				p->completed++;
				/* leave, keeping admission order (prefill goes first come, first served) */
				memmove(&x->streams[i], &x->streams[i + 1], (--active - i) * sizeof *s);
				continue;
			}
			i++;
		}
	}
	for (size_t i = 0; i < active; i++)
		rva_kv_cache_seq_free(x->c, x->streams[i].seq);
	p->t_end = t > o->duration ? t : o->duration;
	size_t arrived_by_end = 0;
	for (size_t i = 0; i < nreq; i++)
		arrived_by_end += reqs[i].arrival <= t;
	p->waiting = arrived_by_end - p->admitted;
	/* Saturated: a queue that persists, not one spike (a preempted step queues a burst
	 * that a stable system then drains): the time-averaged queue over the second half
	 * exceeds 5% of the arrivals of that half, and 2 requests. */
	p->mean_waiting = wait_area / (o->duration - half);
	double half_arrivals = rate * (o->duration - half);
	p->saturated = p->mean_waiting > 2.0 && p->mean_waiting > 0.05 * half_arrivals;
	if (nlat) /* (no step at all: no buffer yet) */
		qsort(x->lat, nlat, sizeof *x->lat, cmp_double);
	if (nttft)
		qsort(x->ttft, nttft, sizeof *x->ttft, cmp_double);
	p->p50 = quantile(x->lat, nlat, 0.50);
	p->p99 = quantile(x->lat, nlat, 0.99);
	p->max = nlat ? x->lat[nlat - 1] : 0.0;
	p->ttft50 = quantile(x->ttft, nttft, 0.50);
	p->ttft99 = quantile(x->ttft, nttft, 0.99);
	p->tps = (double)p->out_tokens / p->t_end;
	p->occupancy = p->busy / p->t_end;
	p->mean_streams = p->steps ? streams_sum / (double)p->steps : 0.0;
	p->cache_peak_pages = peak;
	free(reqs);
	return rc;
}

static void print_header(void) {
	printf("%9s %7s %7s %9s %6s %8s %8s %8s %9s %9s %5s %7s %9s %s\n", "rate/s", "arrived",
	       "done", "tok/s", "steps", "p50_ms", "p99_ms", "max_ms", "ttft50_ms", "ttft99_ms",
	       "occ", "streams", "cacheMiB", "saturated");
}

static void print_point(const ctx *x, const point *p) {
	printf("%9.3f %7zu %7zu %9.1f %6zu %8.3f %8.3f %8.3f %9.3f %9.3f %5.2f %7.2f %9.1f %s\n",
	       p->rate, p->arrived, p->completed, p->tps, p->steps, p->p50, p->p99, p->max, p->ttft50,
	       p->ttft99, p->occupancy, p->mean_streams,
	       (double)p->cache_peak_pages * (double)x->cs.page_bytes / 1048576.0,
	       p->saturated ? "yes" : "no");
	fflush(stdout);
}

static void json_point(json *j, const ctx *x, const point *p) {
	json_object_begin(j);
	json_kv_number(j, "rate", p->rate);
	json_kv_number(j, "virtual_seconds", p->t_end);
	json_kv_uint(j, "arrived", p->arrived);
	json_kv_uint(j, "admitted", p->admitted);
	json_kv_uint(j, "completed", p->completed);
	json_kv_uint(j, "waiting", p->waiting);
	json_kv_number(j, "mean_waiting", p->mean_waiting);
	json_kv_uint(j, "steps", p->steps);
	json_kv_uint(j, "output_tokens", p->out_tokens);
	json_kv_uint(j, "prompt_tokens", p->prompt_tokens);
	json_kv_number(j, "tokens_per_s", p->tps);
	json_kv_number(j, "step_ms_p50", p->p50);
	json_kv_number(j, "step_ms_p99", p->p99);
	json_kv_number(j, "step_ms_max", p->max);
	json_kv_number(j, "ttft_ms_p50", p->ttft50);
	json_kv_number(j, "ttft_ms_p99", p->ttft99);
	json_kv_number(j, "occupancy", p->occupancy);
	json_kv_number(j, "mean_streams", p->mean_streams);
	json_kv_uint(j, "cache_peak_bytes", p->cache_peak_pages * x->cs.page_bytes);
	json_kv_bool(j, "saturated", p->saturated);
	json_object_end(j);
}

static void json_dist(json *j, const char *key, const dist *d) {
	json_key(j, key);
	json_object_begin(j);
	json_kv_string(j, "kind", d->kind == 0 ? "fixed" : d->kind == 1 ? "uniform" : "exponential");
	if (d->kind == 2)
		json_kv_number(j, "mean", d->m);
	json_kv_uint(j, "min", d->a);
	json_kv_uint(j, "max", d->b);
	json_object_end(j);
}

static int write_json(const ctx *x, const point *pts, size_t n, const point *sat,
                      const point *at80) {
	const opts *o = x->o;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return cli_error(EXIT_RUNTIME, "%s: out of memory", o->json_path);
	rva_engine_info info;
	rva_engine_info_get(x->e, &info);
	char cpu[128];
	cpu_model(cpu, sizeof cpu);
	json j;
	json_init(&j, f, true);
	json_object_begin(&j);
	json_kv_string(&j, "command", "serve-bench");
	json_kv_string(&j, "version", RVATTN_VERSION);
	json_key(&j, "machine");
	json_object_begin(&j);
	json_kv_string(&j, "cpu", cpu);
	json_kv_uint(&j, "workers", info.workers);
	json_kv_uint(&j, "pools", info.pools);
	json_object_end(&j);
	json_key(&j, "config");
	json_object_begin(&j);
	json_kv_uint(&j, "heads", o->heads);
	json_kv_uint(&j, "kv_heads", o->kv_heads);
	json_kv_uint(&j, "head_dim", o->head_dim);
	json_kv_string(&j, "kv_dtype", workload_dtype_name(o->dtype));
	json_kv_number(&j, "duration_s", o->duration);
	json_dist(&j, "prompt", &o->prompt);
	json_dist(&j, "output", &o->output);
	json_kv_uint(&j, "max_streams", o->max_streams);
	json_kv_uint(&j, "chunk", o->chunk);
	json_kv_string(&j, "schedule", SCHED_NAMES[o->schedule]);
	json_kv_uint(&j, "step_keys", o->step_keys);
	json_kv_number(&j, "prefill_flop_rows", x->r_flop);
	json_kv_number(&j, "prefill_chunk_rows", x->c0);
	json_kv_string(&j, "clock", o->cpu_clock ? "cpu" : "wall");
	json_kv_number(&j, "spread", o->spread);
	json_kv_uint(&j, "seed", o->seed);
	json_kv_uint(&j, "page_tokens", x->cs.page_tokens);
	json_kv_uint(&j, "cache_pages", x->cs.pages);
	json_kv_uint(&j, "cache_bytes", x->cs.bytes);
	json_object_end(&j);
	json_key(&j, "points");
	json_array_begin(&j);
	for (size_t i = 0; i < n; i++)
		json_point(&j, x, &pts[i]);
	json_array_end(&j);
	json_key(&j, "saturation");
	if (sat) {
		json_object_begin(&j);
		json_kv_number(&j, "rate", sat->rate);
		json_kv_number(&j, "tokens_per_s", sat->tps);
		json_object_end(&j);
	} else {
		json_null(&j);
	}
	json_key(&j, "at_80_percent");
	if (at80) {
		json_object_begin(&j);
		json_kv_number(&j, "rate", at80->rate);
		json_kv_number(&j, "p99_over_p50", at80->p50 > 0 ? at80->p99 / at80->p50 : 0.0);
		json_key(&j, "point");
		json_point(&j, x, at80);
		json_object_end(&j);
	} else {
		json_null(&j);
	}
	json_object_end(&j);
	json_finish(&j);
	if (fclose(f) != 0) {
		free(buf);
		return cli_error(EXIT_RUNTIME, "%s: out of memory", o->json_path);
	}
	int rc = write_output(o->json_path, buf, len);
	free(buf);
	return rc;
}

static int parse_opts(int argc, char **argv, opts *o, bool *help) {
	static const struct option lo[] = {
		{"rate", 1, 0, OPT_SB_RATE}, {"duration", 1, 0, OPT_SB_DURATION},
		{"prompt", 1, 0, OPT_SB_PROMPT}, {"output", 1, 0, OPT_SB_OUTPUT},
		{"max-streams", 1, 0, OPT_SB_STREAMS}, {"chunk", 1, 0, OPT_SB_CHUNK},
		{"page", 1, 0, OPT_SB_PAGE}, {"pages", 1, 0, OPT_SB_PAGES},
		{"sweep", 1, 0, OPT_SB_SWEEP}, {"head-dim", 1, 0, OPT_SB_HEAD_DIM},
		{"threads", 1, 0, OPT_SB_THREADS}, {"dtype", 1, 0, OPT_SB_DTYPE},
		{"json", 1, 0, OPT_SB_JSON}, {"plot", 1, 0, OPT_SB_PLOT}, {"seed", 1, 0, OPT_SB_SEED},
		{"heads", 1, 0, OPT_SB_HEADS}, {"kv-heads", 1, 0, OPT_SB_KV_HEADS},
		{"schedule", 1, 0, OPT_SB_SCHEDULE}, {"spread", 1, 0, OPT_SB_SPREAD},
		{"clock", 1, 0, OPT_SB_CLOCK}, {"step-keys", 1, 0, OPT_SB_STEP_KEYS},
		{"help", 0, 0, OPT_SB_HELP}, {0, 0, 0, 0}};
	*o = (opts){.heads = 12, .head_dim = 64, .max_streams = 32, .chunk = 256, .page = 16,
	            .rate = 10.0, .duration = 5.0, .spread = 1.0, .seed = 1,
	            .step_keys = STEP_KEYS_DEFAULT};
	parse_dist("--prompt", "64-512", &o->prompt);
	parse_dist("--output", "16-256", &o->output);
	opterr = 0;
	optind = 1;
	int c;
	float fv;
	while ((c = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
		switch (c) {
		case OPT_SB_RATE:
		case OPT_SB_DURATION:
			if (!parse_float("serve-bench", c == OPT_SB_RATE ? "--rate" : "--duration", optarg,
			                 &fv))
				return EXIT_USAGE;
			if (!(fv > 0.0f) || fv > 1e6f)
				return cli_usage("serve-bench", "%s must be in (0, 1e6]",
				                 c == OPT_SB_RATE ? "--rate" : "--duration");
			*(c == OPT_SB_RATE ? &o->rate : &o->duration) = fv;
			break;
		case OPT_SB_PROMPT:
			if (!parse_dist("--prompt", optarg, &o->prompt))
				return EXIT_USAGE;
			break;
		case OPT_SB_OUTPUT:
			if (!parse_dist("--output", optarg, &o->output))
				return EXIT_USAGE;
			break;
		case OPT_SB_STREAMS:
			if (!parse_size("serve-bench", "--max-streams", optarg, false, &o->max_streams))
				return EXIT_USAGE;
			break;
		case OPT_SB_CHUNK:
			if (!parse_size("serve-bench", "--chunk", optarg, false, &o->chunk))
				return EXIT_USAGE;
			break;
		case OPT_SB_PAGE:
			if (!parse_size("serve-bench", "--page", optarg, false, &o->page))
				return EXIT_USAGE;
			break;
		case OPT_SB_PAGES:
			if (!parse_size("serve-bench", "--pages", optarg, false, &o->pages))
				return EXIT_USAGE;
			break;
		case OPT_SB_HEADS:
			if (!parse_size("serve-bench", "--heads", optarg, false, &o->heads))
				return EXIT_USAGE;
			break;
		case OPT_SB_KV_HEADS:
			if (!parse_size("serve-bench", "--kv-heads", optarg, false, &o->kv_heads))
				return EXIT_USAGE;
			break;
		case OPT_SB_HEAD_DIM:
			if (!parse_size("serve-bench", "--head-dim", optarg, false, &o->head_dim))
				return EXIT_USAGE;
			break;
		case OPT_SB_THREADS:
			if (!parse_size("serve-bench", "--threads", optarg, false, &o->threads))
				return EXIT_USAGE;
			break;
		case OPT_SB_SEED:
			if (!parse_u64("serve-bench", "--seed", optarg, &o->seed))
				return EXIT_USAGE;
			break;
		case OPT_SB_DTYPE:
			if (!strcmp(optarg, "f32"))
				o->dtype = RVA_F32;
			else if (!strcmp(optarg, "bf16"))
				o->dtype = RVA_BF16;
			else if (!strcmp(optarg, "f16"))
				o->dtype = RVA_F16;
			else
				return cli_usage("serve-bench", "--dtype: '%s' is not f32, bf16 or f16", optarg);
			break;
		case OPT_SB_SCHEDULE:
			o->schedule = -1;
			for (int k = 0; k < (int)(sizeof SCHED_NAMES / sizeof *SCHED_NAMES); k++)
				if (!strcmp(optarg, SCHED_NAMES[k]))
					o->schedule = k;
			if (o->schedule < 0)
				return cli_usage("serve-bench", "--schedule: '%s' is not budget, paced or fcfs",
				                 optarg);
			break;
		case OPT_SB_STEP_KEYS:
			if (!parse_size("serve-bench", "--step-keys", optarg, false, &o->step_keys))
				return EXIT_USAGE;
			break;
		case OPT_SB_CLOCK:
			if (strcmp(optarg, "wall") && strcmp(optarg, "cpu"))
				return cli_usage("serve-bench", "--clock: '%s' is not wall or cpu", optarg);
			o->cpu_clock = !strcmp(optarg, "cpu");
			break;
		case OPT_SB_SPREAD:
			if (!parse_float("serve-bench", "--spread", optarg, &fv))
				return EXIT_USAGE;
			if (!(fv >= 0.0f) || fv > 1000.0f)
				return cli_usage("serve-bench", "--spread must be in [0, 1000]");
			o->spread = fv;
			break;
		case OPT_SB_SWEEP: o->sweep = optarg; break;
		case OPT_SB_JSON: o->json_path = optarg; break;
		case OPT_SB_PLOT: o->plot_path = optarg; break;
		case OPT_SB_HELP: *help = true; return EXIT_OK;
		default: return cli_bad_option("serve-bench", c, argv);
		}
	}
	if (optind < argc)
		return cli_usage("serve-bench", "unexpected argument '%s'", argv[optind]);
	if (!o->kv_heads)
		o->kv_heads = o->heads;
	if (o->heads % o->kv_heads)
		return cli_usage("serve-bench", "--heads %zu is not a multiple of --kv-heads %zu",
		                 o->heads, o->kv_heads);
	if (o->page % 2 || o->page > 65536)
		return cli_usage("serve-bench", "--page %zu: pages hold an even number of tokens, at "
		                 "most 65536", o->page);
	if (o->heads > 1024 || o->head_dim > 1024 || o->max_streams > 4096 || o->chunk > 65536)
		return cli_usage("serve-bench", "--heads/--head-dim at most 1024, --max-streams at "
		                 "most 4096, --chunk at most 65536");
	if (o->plot_path && !plot_path_ok(o->plot_path))
		return cli_usage("serve-bench", "--plot %s: the file name must end in .png or .svg",
		                 o->plot_path);
	if (o->sweep && strcmp(o->sweep, "auto")) {
		size_t n = 0;
		for (const char *s = o->sweep; *s;) {
			char *end;
			double r = strtod(s, &end);
			if (end == s || !(r > 0.0) || r > 1e6 || (*end && *end != ','))
				return cli_usage("serve-bench", "--sweep: '%s' is not auto or a list of rates",
				                 o->sweep);
			if (++n > MAX_POINTS)
				return cli_usage("serve-bench", "--sweep: at most %d rates", MAX_POINTS);
			s = *end ? end + 1 : end;
		}
	}
	const char *flags[2] = {"json", "plot"};
	const char *paths[2] = {o->json_path, o->plot_path};
	return outputs_check("serve-bench", 2, flags, paths);
}

/* Median step-clock seconds of `reps` (at most 9) runs of one step. */
static double time_step(ctx *x, const rva_kv_step *st, int reps, rva_status *err) {
	double t[9];
	for (int i = 0; i < reps; i++) {
		double t0 = step_clock(x);
		rva_status s = rva_kv_cache_run(x->e, x->c, x->att, st, 1, NULL, NULL, NULL);
		t[i] = step_clock(x) - t0;
		if (s != RVA_OK)
			*err = s;
	}
	qsort(t, (size_t)reps, sizeof *t, cmp_double);
	return t[reps / 2];
}

/* A calibration stream of n rows: its id in *seq. */
static int calib_stream(ctx *x, size_t n, uint64_t *seq) {
	stream s = {0};
	rva_status st = rva_kv_cache_seq_new(x->c, &s.seq);
	if (st == RVA_OK && (st = append_rows(x, &s, 0, n)) != RVA_OK)
		rva_kv_cache_seq_free(x->c, s.seq);
	*seq = s.seq;
	return st == RVA_OK ? 0 : cli_lib_error(st, EXIT_RUNTIME, "serve-bench: calibration stream");
}

/*
 * The budget schedule's price of a prefill chunk in decode rows, measured once before the
 * sweep on this engine and clock: the median time of a decode step over a stream of L
 * rows gives a row's time (t_row = time / L: the per-step overhead included, as in every
 * step); whole prompts of 32 and of min(--chunk, L) tokens (first chunks, causal from the
 * prompt's first row: the dearest per FLOP) cost their time beyond their rows read, which
 * fits c0 + r x FLOPs: c0 the fixed cost of a chunk, r rows per FLOP (both at least 0).
 */
static int calibrate(ctx *x) {
	const opts *o = x->o;
	size_t L = o->prompt.b + o->output.b;
	L = L < 1024 ? L : 1024;
	size_t c = o->chunk < L ? o->chunk : L;
	size_t len[3] = {L, c < 32 ? c : 32, c};
	uint64_t seq[3];
	int rc = 0;
	size_t made = 0;
	for (; made < 3 && !rc; made++)
		rc = calib_stream(x, len[made], &seq[made]);
	if (rc) {
		for (size_t i = 0; i + 1 < made; i++)
			rva_kv_cache_seq_free(x->c, seq[i]);
		return rc;
	}
	rva_status err = RVA_OK;
	rva_kv_step one = {.seq = seq[0], .nq = 1, .q = x->q, .out = x->out};
	time_step(x, &one, 3, &err); /* warm */
	double t_row = time_step(x, &one, 9, &err) / (double)L, extra[3] = {0}, fl[3] = {0};
	for (size_t i = 1; i < 3 && t_row > 0.0; i++) {
		rva_kv_step chunk = {.seq = seq[i], .nq = len[i], .q = x->q, .out = x->out};
		extra[i] = time_step(x, &chunk, 9, &err) / t_row - (double)len[i];
		fl[i] = chunk_flops(x, 0, len[i]);
	}
	for (size_t i = 0; i < 3; i++)
		rva_kv_cache_seq_free(x->c, seq[i]);
	if (err != RVA_OK)
		return cli_lib_error(err, EXIT_RUNTIME, "serve-bench: calibration step");
	x->r_flop = fl[2] > fl[1] ? (extra[2] - extra[1]) / (fl[2] - fl[1]) : 0.0;
	x->r_flop = x->r_flop > 0.0 ? x->r_flop : 0.0;
	x->c0 = extra[1] - x->r_flop * fl[1];
	x->c0 = x->c0 > 0.0 ? x->c0 : 0.0;
	return 0;
}

static int setup(ctx *x, const opts *o) {
	memset(x, 0, sizeof *x);
	x->o = o;
	x->dim = o->heads * o->head_dim;
	x->kvd = o->kv_heads * o->head_dim;
	x->es = o->dtype == RVA_F32 ? 4 : 2;
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = (unsigned)o->threads;
	if (o->cpu_clock)
		ec.spin_us = 0; /* idle workers burn no CPU time */
	int rc = engine_make("serve-bench", &ec, &x->e);
	if (rc)
		return rc;
	rva_engine_info info;
	rva_engine_info_get(x->e, &info);
	x->workers = info.workers ? info.workers : 1;
	rva_config c = rva_flash(x->dim, 128);
	c.heads = o->heads;
	c.kv_heads = o->kv_heads == o->heads ? 0 : o->kv_heads;
	c.causal = true;
	rva_status st = rva_build(&c, &x->att);
	if (st != RVA_OK)
		return cli_lib_error(st, EXIT_USAGE, "serve-bench: attention");
	size_t pages = o->pages;
	if (!pages)
		pages = o->max_streams * ((o->prompt.b + o->output.b + o->page - 1) / o->page);
	rva_kv_cache_config kc = {.kv_heads = o->kv_heads, .head_dim = o->head_dim,
	                          .page_tokens = o->page, .pages = pages,
	                          .max_seqs = o->max_streams, .dtype = o->dtype};
	if ((st = rva_kv_cache_create(x->e, &kc, &x->c)) != RVA_OK)
		return cli_lib_error(st, EXIT_RUNTIME, "serve-bench: kv cache of %zu pages", pages);
	rva_kv_cache_stats_get(x->c, &x->cs);
	size_t qrows = o->max_streams + o->chunk; /* decode rows + the prefill budget */
	float *kf = malloc(ROW_POOL * x->kvd * sizeof(float)),
	      *vf = malloc(ROW_POOL * x->kvd * sizeof(float));
	x->krows = malloc(ROW_POOL * x->kvd * x->es);
	x->vrows = malloc(ROW_POOL * x->kvd * x->es);
	x->q = malloc(qrows * x->dim * sizeof(float));
	x->out = malloc(qrows * x->dim * sizeof(float));
	x->streams = calloc(o->max_streams, sizeof *x->streams);
	x->steps = calloc(o->max_streams, sizeof *x->steps);
	if (!kf || !vf || !x->krows || !x->vrows || !x->q || !x->out || !x->streams || !x->steps) {
		free(kf);
		free(vf);
		return cli_error(EXIT_RUNTIME, "serve-bench: out of memory");
	}
	uint64_t s = o->seed ^ 0xDA7Aull;
	for (size_t i = 0; i < ROW_POOL * x->kvd; i++) {
		kf[i] = (float)(2.0 * rng_u01(&s) - 1.0);
		vf[i] = (float)(2.0 * rng_u01(&s) - 1.0);
	}
	for (size_t i = 0; i < qrows * x->dim; i++) {
		x->q[i] = (float)(2.0 * rng_u01(&s) - 1.0);
		x->out[i] = 0.0f;
	}
	rva_convert(o->dtype, x->krows, RVA_F32, kf, ROW_POOL * x->kvd);
	rva_convert(o->dtype, x->vrows, RVA_F32, vf, ROW_POOL * x->kvd);
	free(kf);
	free(vf);
	return o->schedule == SCHED_BUDGET ? calibrate(x) : 0;
}

static void teardown(ctx *x) {
	rva_kv_cache_destroy(x->c);
	rva_attention_destroy(x->att);
	rva_engine_destroy(x->e);
	free(x->krows);
	free(x->vrows);
	free(x->q);
	free(x->out);
	free(x->streams);
	free(x->steps);
	free(x->lat);
	free(x->ttft);
}

static int add_point(ctx *x, point *pts, size_t *n, double rate) {
	if (*n >= MAX_POINTS)
		return cli_error(EXIT_RUNTIME, "serve-bench: more than %d rates", MAX_POINTS);
	int rc = run_point(x, rate, &pts[*n]);
	if (!rc)
		print_point(x, &pts[(*n)++]);
	return rc;
}

static int cmp_point(const void *a, const void *b) {
	const point *x = a, *y = b;
	return x->rate < y->rate ? -1 : x->rate > y->rate;
}

int cmd_serve_bench(int argc, char **argv) {
	opts o;
	bool help = false;
	int rc = parse_opts(argc, argv, &o, &help);
	if (help) {
		print_help();
		return EXIT_OK;
	}
	if (rc)
		return rc;
	interrupt_install();
	ctx x;
	if ((rc = setup(&x, &o))) {
		teardown(&x);
		return rc;
	}
	rva_engine_info info;
	rva_engine_info_get(x.e, &info);
	char how[160] = "";
	if (o.schedule == SCHED_BUDGET)
		snprintf(how, sizeof how, " (step keys %zu, a prefill chunk = %.0f rows + %.3g rows per "
		         "FLOP)", o.step_keys, x.c0, x.r_flop);
	printf("# serve-bench: causal attention H%zu (kv heads %zu) D%zu, K/V %s in pages of %zu "
	       "tokens (%zu pages, %.1f MiB); %u workers; max %zu streams, chunk %zu, %s "
	       "prefill%s; %.3g s of arrivals per rate, seed %llu; %s clock\n",
	       o.heads, o.kv_heads, o.head_dim, workload_dtype_name(o.dtype), x.cs.page_tokens,
	       x.cs.pages, (double)x.cs.bytes / 1048576.0, info.workers, o.max_streams, o.chunk,
	       SCHED_NAMES[o.schedule], how, o.duration, (unsigned long long)o.seed,
	       o.cpu_clock ? "cpu" : "wall");
	print_header();
	point *pts = calloc(MAX_POINTS, sizeof *pts);
	size_t n = 0;
	const point *sat = NULL, *at80 = NULL;
	point at80_pt;
	if (!pts) {
		teardown(&x);
		return cli_error(EXIT_RUNTIME, "serve-bench: out of memory");
	}
	if (!o.sweep) {
		rc = add_point(&x, pts, &n, o.rate);
	} else if (strcmp(o.sweep, "auto")) {
		for (const char *s = o.sweep; *s && !rc;) {
			char *end;
			double r = strtod(s, &end);
			rc = add_point(&x, pts, &n, r);
			s = *end ? end + 1 : end;
		}
	} else {
		/* double until saturated (at most 16 doublings), then bisect 4 times */
		double lo = 0.0, hi = 0.0, r = o.rate;
		for (int i = 0; i < 16 && !rc; i++, r *= 2.0) {
			rc = add_point(&x, pts, &n, r);
			if (rc)
				break;
			if (pts[n - 1].saturated) {
				hi = r;
				break;
			}
			lo = r;
		}
		for (int i = 0; i < 4 && !rc && hi > 0.0 && lo > 0.0; i++) {
			double mid = 0.5 * (lo + hi);
			rc = add_point(&x, pts, &n, mid);
			if (!rc)
				*(pts[n - 1].saturated ? &hi : &lo) = mid;
		}
		if (!rc && lo > 0.0) {
			rc = run_point(&x, 0.8 * lo, &at80_pt);
			if (!rc) {
				printf("# 80%% of the saturation rate %.3f:\n", lo);
				print_point(&x, &at80_pt);
				at80 = &at80_pt;
			}
		} else if (!rc) {
			cli_warn("serve-bench: the first rate %.3g is already saturated (try a lower "
			         "--rate)", o.rate);
		}
		if (!rc && hi == 0.0)
			cli_warn("serve-bench: no saturation up to %.3g requests/s", lo);
	}
	if (n)
		qsort(pts, n, sizeof *pts, cmp_point);
	for (size_t i = 0; i < n; i++)
		if (!pts[i].saturated)
			sat = &pts[i];
	if (o.sweep && !strcmp(o.sweep, "auto") && at80 && sat)
		printf("# saturation at %.3f requests/s (%.1f tokens/s); at 80%%: p99/p50 step latency "
		       "%.2f\n", sat->rate, sat->tps, at80->p50 > 0 ? at80->p99 / at80->p50 : 0.0);
	if (!rc && o.json_path)
		rc = write_json(&x, pts, n, o.sweep && !strcmp(o.sweep, "auto") ? sat : NULL, at80);
	if (!rc && o.plot_path) {
		double *r = calloc(n, sizeof *r), *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b),
		       *tp = calloc(n, sizeof *tp);
		if (!r || !a || !b || !tp) {
			rc = cli_error(EXIT_RUNTIME, "serve-bench: out of memory");
		} else {
			for (size_t i = 0; i < n; i++) {
				r[i] = pts[i].rate;
				a[i] = pts[i].p50;
				b[i] = pts[i].p99;
				tp[i] = pts[i].tps;
			}
			char title[160];
			snprintf(title, sizeof title, "serve-bench: H%zu D%zu, page %zu, %zu streams max",
			         o.heads, o.head_dim, o.page, o.max_streams);
			rc = plot_latency(o.plot_path, title, r, a, b, tp, n);
		}
		free(r);
		free(a);
		free(b);
		free(tp);
	}
	free(pts);
	teardown(&x);
	return rc;
}

/*
 * Signals and the engine's threads: every thread the engine creates (the dispatcher and
 * the OpenMP workers) runs with the asynchronous signals blocked, so a program's handler
 * runs in the program's own thread, and the caller's signal mask is left as it was.
 * The checks run inside engine tasks (a custom pipeline stage).
 */
#define _GNU_SOURCE 1
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rvattn/rvattn.h"

enum { D = 16, H = 2, NSEQ = 64, NQ = 8 };

static pid_t tid(void) { return (pid_t)syscall(SYS_gettid); }

typedef struct probe {
	pid_t main_tid;
	atomic_int calls, on_main, bad_mask, unblocked_fault;
	atomic_int kill_sent;
	bool send_kill;
} probe;

static rva_status probe_fn(const float *in, float *out, size_t dim, void *user) {
	probe *p = user;
	atomic_fetch_add(&p->calls, 1);
	if (tid() == p->main_tid)
		atomic_fetch_add(&p->on_main, 1);
	sigset_t cur;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	static const int async_sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1,
	                                 SIGUSR2, SIGALRM, SIGPIPE, SIGWINCH};
	for (size_t i = 0; i < sizeof async_sigs / sizeof async_sigs[0]; i++)
		if (sigismember(&cur, async_sigs[i]) != 1)
			atomic_fetch_add(&p->bad_mask, 1);
	if (sigismember(&cur, SIGSEGV) == 1 || sigismember(&cur, SIGBUS) == 1)
		atomic_fetch_add(&p->unblocked_fault, 1);
	if (p->send_kill && atomic_exchange(&p->kill_sent, 1) == 0)
		kill(getpid(), SIGUSR1); /* process-directed: any thread not blocking it may get it */
	memcpy(out, in, dim * sizeof *out);
	return RVA_OK;
}

static void ok(rva_status st, const char *what) {
	cr_assert_eq(st, RVA_OK, "%s: %s (%s)", what, rva_status_name(st), rva_last_error());
}

/* Runs the probe stage over a batch on an engine of `threads` workers. block, when not
 * NULL, is blocked in the calling thread after the engine exists (its threads started with
 * the caller's earlier mask) and before the job runs. */
static void run_probe(probe *pr, unsigned threads, const sigset_t *block) {
	static float q[NSEQ * NQ * D], out[NSEQ * NQ * D];
	for (size_t i = 0; i < NSEQ * NQ * D; i++)
		q[i] = (float)(i % 13) * 0.1f - 0.6f;
	rva_seq seqs[NSEQ];
	memset(seqs, 0, sizeof seqs);
	for (size_t s = 0; s < NSEQ; s++) {
		seqs[s].nq = seqs[s].nk = NQ;
		seqs[s].q = seqs[s].k = seqs[s].v = q + s * NQ * D;
		seqs[s].out = out + s * NQ * D;
	}
	rva_batch b = {.count = NSEQ, .seqs = seqs};
	rva_config c = rva_multi_head(D, H);
	rva_attention *a = NULL;
	ok(rva_build(&c, &a), "build");
	rva_pipeline *p = NULL;
	ok(rva_pipeline_create(&p), "pipeline");
	ok(rva_pipeline_add_attention(p, a), "attention");
	ok(rva_pipeline_add_custom(p, probe_fn, pr), "custom");
	rva_engine_config ec = rva_engine_config_defaults();
	ec.threads = threads;
	ec.spin_us = 0;
	rva_engine *e = NULL;
	ok(rva_engine_create(&ec, &e), "engine");
	if (block)
		pthread_sigmask(SIG_BLOCK, block, NULL);
	ok(rva_engine_run_pipeline(e, p, &b, NULL, NULL, NULL), "run");
	ok(rva_engine_destroy(e), "destroy");
	rva_pipeline_destroy(p); /* and the attention it owns */
}

Test(signals, worker_threads_block_async_signals) {
	probe pr = {.main_tid = tid()};
	run_probe(&pr, 0, NULL);
	cr_assert_eq(atomic_load(&pr.calls), NSEQ * NQ, "the stage ran once per row");
	cr_assert_eq(atomic_load(&pr.on_main), 0, "tasks ran on engine threads only");
	cr_assert_eq(atomic_load(&pr.bad_mask), 0,
	             "%d (row, signal) pairs found an asynchronous signal unblocked in a worker",
	             atomic_load(&pr.bad_mask));
	cr_assert_eq(atomic_load(&pr.unblocked_fault), 0, "fault signals must stay deliverable");
}

Test(signals, caller_mask_is_kept) {
	/* The caller's mask: SIGUSR2 blocked, SIGINT not. Engine creation blocks signals
	 * around creating its thread and must restore the caller's mask exactly. */
	sigset_t want, got;
	sigemptyset(&want);
	sigaddset(&want, SIGUSR2);
	pthread_sigmask(SIG_SETMASK, &want, NULL);
	probe pr = {.main_tid = tid()};
	run_probe(&pr, 2, NULL);
	pthread_sigmask(SIG_BLOCK, NULL, &got);
	cr_assert_eq(sigismember(&got, SIGUSR2), 1, "SIGUSR2 still blocked");
	cr_assert_eq(sigismember(&got, SIGINT), 0, "SIGINT still deliverable to the caller");
	cr_assert_eq(sigismember(&got, SIGTERM), 0, "SIGTERM still deliverable to the caller");
	cr_assert_eq(atomic_load(&pr.bad_mask), 0);
}

static atomic_int handler_tid;

static void on_usr1(int sig) {
	(void)sig;
	atomic_store(&handler_tid, (int)tid());
}

Test(signals, blocked_signal_waits_for_the_caller) {
	/* The CLI's pattern: the caller blocks a signal around a critical section. A
	 * process-directed signal arriving meanwhile (here: sent by a worker) must stay
	 * pending until the caller unblocks it, then run the handler in the caller's thread.
	 * A worker with the signal unblocked would take it at once, on its own thread. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	probe pr = {.main_tid = tid(), .send_kill = true};
	run_probe(&pr, 2, &usr1);
	cr_assert_eq(atomic_load(&pr.kill_sent), 1, "a task sent the signal");
	usleep(20000);
	cr_assert_eq(atomic_load(&handler_tid), 0,
	             "the handler ran on thread %d while the caller blocked the signal",
	             atomic_load(&handler_tid));
	sigset_t pending;
	sigpending(&pending);
	cr_assert_eq(sigismember(&pending, SIGUSR1), 1, "SIGUSR1 is pending");
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	cr_assert_eq(atomic_load(&handler_tid), (int)pr.main_tid,
	             "SIGUSR1 handled on thread %d, the caller is %d", atomic_load(&handler_tid),
	             (int)pr.main_tid);
}

/*
 * Interrupts (SIGINT, SIGTERM, SIGHUP) and the progress line.
 *
 * The three signals set a flag that the run loops poll: they cancel the running job,
 * remove what they were writing and exit with status 1 and one line ("rvattn:
 * interrupted"). The handlers are installed with SA_RESETHAND and without SA_RESTART: the
 * same signal a second time ends the process at once, and a write waiting on a FIFO or a
 * device returns EINTR so the writer sees the flag. While a temporary output file exists
 * the signals are blocked in the main thread; every thread the library creates blocks
 * them for its whole life (sched/executor.c), so they are only ever delivered to the main
 * thread, and a second signal during the write cannot leave the temporary file behind.
 *
 * The progress line is drawn on stderr only when stderr is a terminal, only once the
 * work has taken more than a second, and at most ten times a second; it is erased when
 * the work ends.
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t got_signal;
static const int interrupt_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define N_INTERRUPT_SIGNALS (sizeof interrupt_signals / sizeof interrupt_signals[0])

static void on_signal(int sig) { got_signal = sig; }

static void interrupt_set(sigset_t *s) {
	sigemptyset(s);
	for (size_t i = 0; i < N_INTERRUPT_SIGNALS; i++)
		sigaddset(s, interrupt_signals[i]);
}

void interrupt_install(void) {
	for (size_t i = 0; i < N_INTERRUPT_SIGNALS; i++) {
		struct sigaction old;
		if (sigaction(interrupt_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			continue; /* started with it ignored (nohup, a background job): keep that */
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_RESETHAND;
		sigaction(interrupt_signals[i], &sa, NULL);
	}
}

bool interrupted(void) { return got_signal != 0; }

bool interrupt_pending(void) {
	sigset_t p;
	if (sigpending(&p) != 0)
		return false;
	for (size_t i = 0; i < N_INTERRUPT_SIGNALS; i++)
		if (sigismember(&p, interrupt_signals[i]) == 1)
			return true;
	return false;
}

static int block_depth;

void interrupt_block(bool block) {
	if (block ? block_depth++ != 0 : --block_depth != 0)
		return;
	sigset_t s;
	interrupt_set(&s);
	pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &s, NULL);
}

void progress_start(progress *p, const char *what, size_t total) {
	memset(p, 0, sizeof *p);
	p->enabled = isatty(STDERR_FILENO) == 1;
	p->t0 = now_s();
	p->total = total;
	p->what = what;
}

static void fmt_secs(char *buf, size_t cap, double s) {
	if (s < 60)
		snprintf(buf, cap, "%.0f s", s);
	else if (s < 3600)
		snprintf(buf, cap, "%d min %02d s", (int)(s / 60), (int)s % 60);
	else
		snprintf(buf, cap, "%d h %02d min", (int)(s / 3600), (int)(s / 60) % 60);
}

void progress_update(progress *p, size_t done) { progress_update_frac(p, (double)done); }

void progress_update_frac(progress *p, double done_units) {
	if (!p || !p->enabled)
		return;
	size_t done = (size_t)done_units;
	p->done = done;
	double t = now_s(), el = t - p->t0;
	if (el < 1.0 || t - p->last_draw < 0.1)
		return;
	p->last_draw = t;
	char line[160], left[32], elapsed[32];
	fmt_secs(elapsed, sizeof elapsed, el);
	if (done_units > 0.0) {
		double rate = done_units / el;
		fmt_secs(left, sizeof left, ((double)p->total - done_units) / rate);
		snprintf(line, sizeof line, "rvattn: %s %.1f/%zu, %.3g/s, %s left", p->what,
		         done_units, p->total, rate, left);
	} else {
		snprintf(line, sizeof line, "rvattn: %s 0/%zu, %s elapsed", p->what, p->total,
		         elapsed);
	}
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
	p->drawn = true;
}

void progress_end(progress *p) {
	if (p && p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		p->drawn = false;
	}
}

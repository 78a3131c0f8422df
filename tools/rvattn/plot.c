/*
 * Plots with gnuplot (an optional runtime dependency: the Debian package gnuplot-nox):
 * scaling for `bench`, step latency against offered load for `serve-bench`. The script
 * is fed on gnuplot's stdin with the data inline; gnuplot draws on its stdout, which is
 * the output file opened by outfile.c: a temporary file renamed over a regular
 * destination when gnuplot succeeded (no partial picture is ever left), or the device,
 * FIFO or descriptor itself, written in place.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

/* Finds an executable named name on PATH; writes its path to buf. */
static bool find_in_path(const char *name, char *buf, size_t cap) {
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		if (n == 0)
			snprintf(buf, cap, "./%s", name);
		else
			snprintf(buf, cap, "%.*s/%s", (int)n, path, name);
		struct stat sb;
		if (stat(buf, &sb) == 0 && S_ISREG(sb.st_mode) && access(buf, X_OK) == 0)
			return true;
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

/* Writes s as a gnuplot single-quoted string ('' stands for a quote). */
static void gp_string(FILE *f, const char *s) {
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', f);
		if (*s != '\n')
			fputc(*s, f);
	}
	fputc('\'', f);
}

static bool ends_with(const char *s, const char *suffix) {
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

bool plot_path_ok(const char *path) { return ends_with(path, ".png") || ends_with(path, ".svg"); }

/* Runs gnuplot with the terminal for path's type, then script(f, ctx) on its stdin,
 * into path (outfile.c). Returns 0, or prints why and returns 1. */
static int plot_run(const char *path, void (*script)(FILE *f, const void *ctx),
                    const void *ctx) {
	char gp[4096];
	if (!find_in_path("gnuplot", gp, sizeof gp))
		return cli_error(EXIT_RUNTIME, "cannot draw %s: gnuplot is not installed (install "
		                 "the Debian package gnuplot-nox)", path);
	outfile o;
	int orc = outfile_open(&o, path);
	if (orc)
		return orc;
	int fds[2];
	if (pipe(fds) != 0) {
		int e = errno;
		outfile_abort(&o);
		return cli_error(EXIT_RUNTIME, "cannot draw %s: pipe: %s", path, strerror(e));
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(fds[0]);
		close(fds[1]);
		outfile_abort(&o);
		return cli_error(EXIT_RUNTIME, "cannot draw %s: fork: %s", path, strerror(e));
	}
	if (pid == 0) {
		/* gnuplot gets the signals we block while the temporary file exists. */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(fds[0], STDIN_FILENO);
		dup2(o.fd, STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execl(gp, "gnuplot", (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	/* A gnuplot that dies early must not kill us with SIGPIPE. */
	struct sigaction ign, old;
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, &old);
	FILE *f = fdopen(fds[1], "w");
	if (f) {
		if (ends_with(path, ".svg"))
			fprintf(f, "set terminal svg size 900,560 dynamic enhanced font 'sans,11'\n");
		else
			fprintf(f, "set terminal pngcairo size 900,560 enhanced font 'sans,10'\n");
		/* No file name: gnuplot draws on its stdout, our output. */
		fprintf(f, "set output\n");
		script(f, ctx);
		fprintf(f, "set output\n");
		fclose(f);
	} else {
		close(fds[1]);
	}
	sigaction(SIGPIPE, &old, NULL);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	struct stat sb;
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	          (o.in_place || (fstat(o.fd, &sb) == 0 && sb.st_size > 0));
	if (!ok) {
		outfile_abort(&o);
		if (interrupted() || interrupt_pending())
			return cli_error(EXIT_RUNTIME, "interrupted");
		if (WIFSIGNALED(status))
			return cli_error(EXIT_RUNTIME, "cannot draw %s: gnuplot was killed by signal %d",
			                 path, WTERMSIG(status));
		return cli_error(EXIT_RUNTIME, "cannot draw %s: gnuplot failed (exit status %d)", path,
		                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	return outfile_commit(&o);
}

typedef struct scaling_plot {
	const char *title, *xlabel;
	const size_t *threads;
	const double *gflops, *speedup;
	size_t n;
} scaling_plot;

static void scaling_script(FILE *f, const void *ctx) {
	const scaling_plot *p = ctx;
	fprintf(f, "set title ");
	gp_string(f, p->title);
	fprintf(f, " noenhanced\nset xlabel ");
	gp_string(f, p->xlabel);
	fprintf(f, "\nset ylabel 'GFLOP/s'\nset y2label 'speed-up'\n"
	           "set ytics nomirror\nset y2tics\nset grid\nset key top left\n"
	           "set xrange [0:*]\nset yrange [0:*]\nset y2range [0:*]\n"
	           "$d << EOD\n");
	for (size_t i = 0; i < p->n; i++)
		fprintf(f, "%zu %.17g %.17g %.17g\n", p->threads[i], p->gflops[i], p->speedup[i],
		        (double)p->threads[i] / (double)p->threads[0]);
	fprintf(f, "EOD\n");
	if (p->n <= 16) {
		fprintf(f, "set xtics (");
		for (size_t i = 0; i < p->n; i++)
			fprintf(f, "%s%zu", i ? ", " : "", p->threads[i]);
		fprintf(f, ")\n");
	}
	fprintf(f, "plot $d using 1:2 with linespoints lw 2 pt 7 title 'GFLOP/s' axes x1y1, \\\n"
	           "     $d using 1:3 with linespoints lw 2 pt 5 title 'speed-up' axes x1y2, \\\n"
	           "     $d using 1:4 with lines dashtype 2 title 'ideal speed-up' axes x1y2\n");
}

int plot_scaling(const char *path, const char *title, const char *xlabel,
                 const size_t *threads, const double *gflops, const double *speedup, size_t n) {
	scaling_plot p = {title, xlabel, threads, gflops, speedup, n};
	return plot_run(path, scaling_script, &p);
}

typedef struct latency_plot {
	const char *title;
	const double *rate, *p50, *p99, *tps;
	size_t n;
} latency_plot;

static void latency_script(FILE *f, const void *ctx) {
	const latency_plot *p = ctx;
	fprintf(f, "set title ");
	gp_string(f, p->title);
	fprintf(f, " noenhanced\nset xlabel 'offered load (requests/s)'\n"
	           "set ylabel 'step latency (ms)'\nset y2label 'output tokens/s'\n"
	           "set ytics nomirror\nset y2tics\nset grid\nset key top left\n"
	           "set xrange [0:*]\nset yrange [0:*]\nset y2range [0:*]\n$d << EOD\n");
	for (size_t i = 0; i < p->n; i++)
		fprintf(f, "%.17g %.17g %.17g %.17g\n", p->rate[i], p->p50[i], p->p99[i], p->tps[i]);
	fprintf(f, "EOD\n"
	           "plot $d using 1:2 with linespoints lw 2 pt 7 title 'p50 step latency' axes x1y1, \\\n"
	           "     $d using 1:3 with linespoints lw 2 pt 5 title 'p99 step latency' axes x1y1, \\\n"
	           "     $d using 1:4 with linespoints lw 1 dashtype 2 pt 4 title 'tokens/s' axes x1y2\n");
}

int plot_latency(const char *path, const char *title, const double *rate, const double *p50,
                 const double *p99, const double *tps, size_t n) {
	latency_plot p = {title, rate, p50, p99, tps, n};
	return plot_run(path, latency_script, &p);
}

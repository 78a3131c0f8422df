/*
 * Scaling plots with gnuplot (an optional runtime dependency: the Debian package
 * gnuplot-nox). The script is fed on gnuplot's stdin with the data inline; gnuplot draws
 * on its stdout, which is the output file opened by outfile.c: a temporary file renamed
 * over a regular destination when gnuplot succeeded (no partial picture is ever left), or
 * the device, FIFO or descriptor itself, written in place.
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

int plot_scaling(const char *path, const char *title, const char *xlabel,
                 const size_t *threads, const double *gflops, const double *speedup, size_t n) {
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
		fprintf(f, "set output\nset title ");
		gp_string(f, title);
		fprintf(f, " noenhanced\nset xlabel ");
		gp_string(f, xlabel);
		fprintf(f, "\nset ylabel 'GFLOP/s'\nset y2label 'speed-up'\n"
		           "set ytics nomirror\nset y2tics\nset grid\nset key top left\n"
		           "set xrange [0:*]\nset yrange [0:*]\nset y2range [0:*]\n"
		           "$d << EOD\n");
		for (size_t i = 0; i < n; i++)
			fprintf(f, "%zu %.17g %.17g %.17g\n", threads[i], gflops[i], speedup[i],
			        (double)threads[i] / (double)threads[0]);
		fprintf(f, "EOD\n");
		if (n <= 16) {
			fprintf(f, "set xtics (");
			for (size_t i = 0; i < n; i++)
				fprintf(f, "%s%zu", i ? ", " : "", threads[i]);
			fprintf(f, ")\n");
		}
		fprintf(f, "plot $d using 1:2 with linespoints lw 2 pt 7 title 'GFLOP/s' axes x1y1, \\\n"
		           "     $d using 1:3 with linespoints lw 2 pt 5 title 'speed-up' axes x1y2, \\\n"
		           "     $d using 1:4 with lines dashtype 2 title 'ideal speed-up' axes x1y2\n"
		           "set output\n");
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

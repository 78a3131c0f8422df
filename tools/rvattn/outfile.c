/*
 * Output files of the CLI (--out, --json, --csv, --plot). Where the bytes go is the
 * library's rva_outfile (include/rvattn/outfile.h, the rules rva_npy_save follows too):
 * descriptors (/dev/stdout, /dev/fd/N, /proc/self/fd/N), devices and FIFOs are written in
 * place; symlinks are followed; a regular file is written to a ".rvattn-XXXXXX" temporary
 * file in its directory (mode and owner kept), fsync'd and renamed over it. This file adds
 * what only the command line needs:
 * - When an output is stdout, the command's report moves to stderr so the two never mix
 *   (outputs_check arranges it; the output then writes to the saved stdout).
 * - When SIGINT, SIGTERM or SIGHUP arrived, the output is cancelled: the temporary file is
 *   removed and the target untouched ("rvattn: interrupted"). The interrupt signals are
 *   blocked while a temporary file exists (every thread rvattn creates blocks them too), so
 *   a second signal cannot kill the process between creating and removing it; a pending one
 *   is seen before each 8 MiB piece and before the rename (the rva_outfile cancel hook).
 *   Devices and FIFOs keep the signals deliverable, so an open or write that waits for a
 *   reader can be interrupted.
 * - Two outputs of one command naming the same file (same st_dev/st_ino, or the same
 *   resolved path for files not there yet), or an output naming the regular file or FIFO
 *   stdout already writes to, are a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* The descriptor the report's stdout had before an output took it (-1: not moved). */
static int saved_stdout = -1;

/* Prints the library's message for a failed rva_outfile call ("interrupted" for a
 * cancel) and returns EXIT_RUNTIME. */
static int outfile_error(rva_status st) {
	if (st == RVA_ECANCELLED)
		return cli_error(EXIT_RUNTIME, "interrupted");
	const char *msg = rva_last_error();
	return cli_error(EXIT_RUNTIME, "%s", msg && *msg ? msg : rva_strerror(st));
}

static bool same_file(const rva_outfile_desc *a, const rva_outfile_desc *b) {
	if (a->exists && b->exists)
		return a->dev == b->dev && a->ino == b->ino;
	if (!a->exists && !b->exists)
		return strcmp(a->target, b->target) == 0;
	return false;
}

int outputs_check(const char *cmd, size_t n, const char *const *flags,
                  const char *const *paths) {
	rva_outfile *h[8];
	rva_outfile_desc r[8];
	size_t idx[8], m = 0;
	int rc = EXIT_OK;
	struct stat so;
	bool so_file = fstat(STDOUT_FILENO, &so) == 0 &&
	               (S_ISREG(so.st_mode) || S_ISFIFO(so.st_mode));
	bool to_stdout = false;
	for (size_t i = 0; i < n && i < 8 && !rc; i++) {
		if (!paths[i])
			continue;
		if (!*paths[i]) {
			rc = cli_error(EXIT_RUNTIME, "an output path is empty");
			break;
		}
		rva_status st = rva_outfile_resolve(paths[i], &h[m]);
		if (st != RVA_OK) {
			rc = outfile_error(st);
			break;
		}
		rva_outfile_describe(h[m], &r[m]);
		const rva_outfile_desc *x = &r[m];
		idx[m++] = i;
		for (size_t j = 0; j + 1 < m && !rc; j++) {
			if (!same_file(&r[j], x))
				continue;
			size_t jj = idx[j];
			rc = cli_usage(cmd, "--%s %s and --%s %s name the same file", flags[jj],
			               paths[jj], flags[i], paths[i]);
		}
		if (rc)
			break;
		if (x->kind == RVA_OUTFILE_DESCRIPTOR && x->source_fd == STDOUT_FILENO) {
			to_stdout = true;
		} else if (so_file && x->exists && x->dev == (uint64_t)so.st_dev &&
		           x->ino == (uint64_t)so.st_ino) {
			rc = cli_usage(cmd, "--%s %s is the file stdout writes to (write it to "
			               "/dev/stdout to send it there)", flags[i], paths[i]);
		}
	}
	for (size_t i = 0; i < m; i++)
		rva_outfile_abort(h[i]);
	if (!rc && to_stdout && saved_stdout < 0) {
		/* The output takes stdout; the report goes to stderr. */
		fflush(stdout);
		saved_stdout = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
		if (saved_stdout < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
			rc = cli_error(EXIT_RUNTIME, "cannot move the report to stderr: %s",
			               strerror(errno));
	}
	return rc;
}

/* ---- writing ------------------------------------------------------------------------- */

/* The cancel hook: an interrupt arrived, or is pending while the signals are blocked. */
static bool cancelled(void *arg) {
	const outfile *o = arg;
	return interrupted() || (o->blocked && interrupt_pending());
}

/* Prints why st failed, gives the output up and returns EXIT_RUNTIME. */
static int fail(outfile *o, rva_status st) {
	int rc = outfile_error(st);
	outfile_abort(o);
	return rc;
}

int outfile_open(outfile *o, const char *path) {
	memset(o, 0, sizeof *o);
	o->path = path;
	o->fd = -1;
	if (!*path)
		return cli_error(EXIT_RUNTIME, "an output path is empty");
	rva_status st = rva_outfile_resolve(path, &o->f);
	if (st != RVA_OK)
		return fail(o, st);
	rva_outfile_desc d;
	rva_outfile_describe(o->f, &d);
	if (d.kind == RVA_OUTFILE_DESCRIPTOR && d.source_fd == STDOUT_FILENO && saved_stdout >= 0) {
		/* stdout now carries the report: the output goes to the stdout we were given. */
		rva_outfile_abort(o->f);
		o->f = NULL;
		if ((st = rva_outfile_open_fd(saved_stdout, path, &o->f)) != RVA_OK)
			return fail(o, st);
		rva_outfile_set_cancel(o->f, cancelled, o);
	} else {
		if (d.kind == RVA_OUTFILE_NEW || d.kind == RVA_OUTFILE_REPLACE) {
			/* No signal may kill us while the temporary file exists. */
			interrupt_block(true);
			o->blocked = true;
		}
		rva_outfile_set_cancel(o->f, cancelled, o);
		if ((st = rva_outfile_begin(o->f)) != RVA_OK)
			return fail(o, st);
	}
	rva_outfile_describe(o->f, &d);
	o->fd = d.fd;
	o->in_place = d.kind == RVA_OUTFILE_IN_PLACE || d.kind == RVA_OUTFILE_DESCRIPTOR;
	return EXIT_OK;
}

int outfile_write(outfile *o, const void *data, size_t len) {
	rva_status st = rva_outfile_write(o->f, data, len);
	return st == RVA_OK ? EXIT_OK : fail(o, st);
}

void outfile_abort(outfile *o) {
	rva_outfile_abort(o->f);
	o->f = NULL;
	o->fd = -1;
	if (o->blocked)
		interrupt_block(false);
	o->blocked = false;
}

int outfile_commit(outfile *o) {
	rva_status st = rva_outfile_commit(o->f);
	o->f = NULL; /* freed by the commit, whatever its result */
	if (st != RVA_OK)
		return fail(o, st);
	outfile_abort(o);
	return EXIT_OK;
}

int write_output(const char *path, const void *data, size_t len) {
	outfile o;
	int rc = outfile_open(&o, path);
	if (!rc)
		rc = outfile_write(&o, data, len);
	if (!rc)
		rc = outfile_commit(&o);
	return rc;
}

int write_npy_output(const char *path, const float *data, size_t ndim, const size_t *shape) {
	char head[4096];
	size_t hl = 0, count = 1;
	for (size_t i = 0; i < ndim; i++)
		count *= shape[i];
	rva_status st = rva_npy_header_write(ndim, shape, 0, head, sizeof head, &hl);
	if (st != RVA_OK)
		return cli_lib_error(st, EXIT_RUNTIME, "%s", path);
	outfile o;
	int rc = outfile_open(&o, path);
	if (!rc)
		rc = outfile_write(&o, head, hl);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	/* .npy '<f4' is little-endian: swap in chunks. */
	uint32_t buf[4096];
	for (size_t i = 0; i < count && !rc; i += 4096) {
		size_t n = count - i < 4096 ? count - i : 4096;
		memcpy(buf, data + i, n * 4);
		for (size_t k = 0; k < n; k++)
			buf[k] = __builtin_bswap32(buf[k]);
		rc = outfile_write(&o, buf, n * 4);
	}
#else
	if (!rc)
		rc = outfile_write(&o, data, count * sizeof *data);
#endif
	if (!rc)
		rc = outfile_commit(&o);
	return rc;
}

/*
 * Output files of the CLI (--out, --json, --csv, --plot): one module, one set of rules,
 * as cp, dd and numpy.save behave.
 *
 * - A path that names an open descriptor of this process (/dev/stdout, /dev/stderr,
 *   /dev/fd/N, /proc/self/fd/N, or a symlink to one) is written through that descriptor,
 *   streaming, at its current offset. When it is stdout, the command's report moves to
 *   stderr so the two never mix (outputs_check arranges it).
 * - Any other path that is not a regular file (character or block device, FIFO) is
 *   opened and written in place, streaming; nothing is created, renamed or removed.
 * - A symlink is followed (every link of the chain, dangling ones too): what is replaced
 *   is the file it points to, and the link stays.
 * - A regular file (existing or new) is written to a temporary file made with mkstemp in
 *   the target's own directory (".rvattn-XXXXXX": short, so no valid final name can make
 *   it too long), fsync'd, given the mode of the file it replaces (and its owner when the
 *   process may set it; EPERM is ignored) or 0666 & ~umask for a new file, then renamed
 *   over the target; the directory is fsync'd (best effort). On any failure, or when
 *   SIGINT, SIGTERM or SIGHUP arrived, the temporary file is removed and the target is
 *   untouched. The interrupt signals are blocked while a temporary file exists (every
 *   thread rvattn creates blocks them too), so a second signal cannot kill the process
 *   between creating and removing it.
 * - Two outputs of one command naming the same file (same st_dev/st_ino, or the same
 *   resolved path for files not there yet), or an output naming the regular file or FIFO
 *   stdout already writes to, are a usage error.
 * The library's rva_npy_save follows the same rules (src/io/outfile.c, without the
 * signal handling and the stdout report move); tools use only the public API, hence
 * the two copies.
 */
#define _GNU_SOURCE 1
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* Links followed before giving up (the kernel's own limit is 40). */
#define MAX_LINKS 40

/* The descriptor the report's stdout had before an output took it (-1: not moved). */
static int saved_stdout = -1;

typedef enum kind { K_NEW, K_REGULAR, K_SPECIAL, K_FD } kind;

/* What a path resolves to. */
typedef struct resolved {
	kind k;
	char *target;    /* K_NEW/K_REGULAR/K_SPECIAL: canonical directory + name (malloc) */
	int fd;          /* K_FD: the descriptor named */
	struct stat st;  /* K_REGULAR/K_SPECIAL/K_FD: what is there */
} resolved;

/* Whether dir (canonical) is this process's descriptor directory: /proc/PID/fd or
 * /proc/PID/task/TID/fd (what /dev/fd, /proc/self/fd and /proc/thread-self/fd resolve to). */
static bool is_own_fd_dir(const char *dir) {
	char own[64];
	snprintf(own, sizeof own, "/proc/%ld/", (long)getpid());
	size_t n = strlen(own);
	if (strncmp(dir, own, n) != 0)
		return false;
	const char *rest = dir + n;
	if (strcmp(rest, "fd") == 0)
		return true;
	if (strncmp(rest, "task/", 5) != 0)
		return false;
	rest += 5;
	while (isdigit((unsigned char)*rest))
		rest++;
	return strcmp(rest, "/fd") == 0;
}

static bool all_digits(const char *s) {
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* Resolves path; on failure prints "rvattn: PATH: reason" and returns 1. */
static int resolve(const char *path, resolved *r) {
	memset(r, 0, sizeof *r);
	r->fd = -1;
	if (!*path)
		return cli_error(EXIT_RUNTIME, "an output path is empty");
	char *cur = strdup(path);
	if (!cur)
		return cli_error(EXIT_RUNTIME, "%s: out of memory", path);
	for (int depth = 0; depth <= MAX_LINKS; depth++) {
		size_t len = strlen(cur);
		if (len > 1 && cur[len - 1] == '/') {
			free(cur);
			return cli_error(EXIT_RUNTIME, "%s: cannot write: it names a directory", path);
		}
		char *slash = strrchr(cur, '/');
		const char *base = slash ? slash + 1 : cur;
		char *dir;
		if (!slash)
			dir = strdup(".");
		else if (slash == cur)
			dir = strdup("/");
		else
			dir = strndup(cur, (size_t)(slash - cur));
		char *cdir = dir ? realpath(dir, NULL) : NULL;
		int e = errno;
		if (!cdir) {
			int rc = dir ? cli_error(EXIT_RUNTIME, "%s: cannot write: directory %s: %s", path, dir, strerror(e))
			             : cli_error(EXIT_RUNTIME, "%s: out of memory", path);
			free(dir);
			free(cur);
			return rc;
		}
		free(dir);
		if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || !*base) {
			free(cdir);
			free(cur);
			return cli_error(EXIT_RUNTIME, "%s: cannot write: it names a directory", path);
		}
		if (is_own_fd_dir(cdir) && all_digits(base)) {
			long fd = strtol(base, NULL, 10);
			free(cdir);
			free(cur);
			if (fd > INT_MAX || fstat((int)fd, &r->st) != 0)
				return cli_error(EXIT_RUNTIME, "%s: cannot write: descriptor %ld is not open", path, fd);
			int fl = fcntl((int)fd, F_GETFL);
			if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY)
				return cli_error(EXIT_RUNTIME, "%s: cannot write: descriptor %ld is not open for writing",
				                 path, fd);
			r->k = K_FD;
			r->fd = (int)fd;
			return EXIT_OK;
		}
		size_t tl = strlen(cdir) + strlen(base) + 2;
		char *full = malloc(tl);
		if (!full) {
			free(cdir);
			free(cur);
			return cli_error(EXIT_RUNTIME, "%s: out of memory", path);
		}
		snprintf(full, tl, "%s%s%s", cdir, strcmp(cdir, "/") == 0 ? "" : "/", base);
		free(cdir);
		free(cur);
		cur = NULL;
		struct stat st;
		if (lstat(full, &st) != 0) {
			if (errno == ENOENT) {
				r->k = K_NEW;
				r->target = full;
				return EXIT_OK;
			}
			e = errno;
			int rc = cli_error(EXIT_RUNTIME, "%s: cannot write: %s", path, strerror(e));
			free(full);
			return rc;
		}
		if (S_ISLNK(st.st_mode)) {
			char link[PATH_MAX];
			ssize_t n = readlink(full, link, sizeof link - 1);
			if (n < 0) {
				e = errno;
				int rc = cli_error(EXIT_RUNTIME, "%s: cannot read the link %s: %s", path,
				                   full, strerror(e));
				free(full);
				return rc;
			}
			link[n] = '\0';
			if (link[0] == '/') {
				cur = strdup(link);
			} else {
				/* relative to the link's directory */
				char *s = strrchr(full, '/');
				size_t dl = (size_t)(s - full);
				size_t cl = dl + 1 + (size_t)n + 1;
				cur = malloc(cl);
				if (cur)
					snprintf(cur, cl, "%.*s/%s", (int)dl, full, link);
			}
			free(full);
			if (!cur)
				return cli_error(EXIT_RUNTIME, "%s: out of memory", path);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			free(full);
			return cli_error(EXIT_RUNTIME, "%s: cannot write: it is a directory", path);
		}
		r->k = S_ISREG(st.st_mode) ? K_REGULAR : K_SPECIAL;
		r->target = full;
		r->st = st;
		return EXIT_OK;
	}
	free(cur);
	return cli_error(EXIT_RUNTIME, "%s: cannot write: %s", path, strerror(ELOOP));
}

static bool same_file(const resolved *a, const resolved *b) {
	bool ea = a->k != K_NEW, eb = b->k != K_NEW;
	if (ea && eb)
		return a->st.st_dev == b->st.st_dev && a->st.st_ino == b->st.st_ino;
	if (!ea && !eb)
		return strcmp(a->target, b->target) == 0;
	return false;
}

int outputs_check(const char *cmd, size_t n, const char *const *flags,
                  const char *const *paths) {
	resolved r[8];
	size_t idx[8], m = 0;
	int rc = EXIT_OK;
	struct stat so;
	bool so_file = fstat(STDOUT_FILENO, &so) == 0 &&
	               (S_ISREG(so.st_mode) || S_ISFIFO(so.st_mode));
	bool to_stdout = false;
	for (size_t i = 0; i < n && i < 8 && !rc; i++) {
		if (!paths[i])
			continue;
		if ((rc = resolve(paths[i], &r[m])) != EXIT_OK)
			break;
		resolved *x = &r[m];
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
		if (x->k == K_FD && x->fd == STDOUT_FILENO) {
			to_stdout = true;
		} else if (so_file && x->k != K_NEW && x->st.st_dev == so.st_dev &&
		           x->st.st_ino == so.st_ino) {
			rc = cli_usage(cmd, "--%s %s is the file stdout writes to (write it to "
			               "/dev/stdout to send it there)", flags[i], paths[i]);
		}
	}
	for (size_t i = 0; i < m; i++)
		free(r[i].target);
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

static int fail_errno(outfile *o, int e, const char *what) {
	int rc = cli_error(EXIT_RUNTIME, "%s: %s: %s", o->path, what, strerror(e));
	outfile_abort(o);
	return rc;
}

int outfile_open(outfile *o, const char *path) {
	memset(o, 0, sizeof *o);
	o->path = path;
	o->fd = -1;
	resolved r;
	if (resolve(path, &r) != EXIT_OK)
		return EXIT_RUNTIME;
	if (r.k == K_FD) {
		int src = r.fd == STDOUT_FILENO && saved_stdout >= 0 ? saved_stdout : r.fd;
		o->fd = fcntl(src, F_DUPFD_CLOEXEC, 3);
		if (o->fd < 0)
			return fail_errno(o, errno, "cannot duplicate its descriptor");
		o->in_place = true;
		return EXIT_OK;
	}
	if (r.k == K_SPECIAL) {
		/* Devices and FIFOs: in place, streaming. Signals stay deliverable, so an
		 * open or write that waits for a reader can be interrupted. */
		do
			o->fd = open(r.target, O_WRONLY | O_NOCTTY | O_CLOEXEC);
		while (o->fd < 0 && errno == EINTR && !interrupted());
		int e = errno;
		free(r.target);
		if (o->fd < 0) {
			if (e == EINTR)
				return cli_error(EXIT_RUNTIME, "interrupted");
			return cli_error(EXIT_RUNTIME, "%s: cannot open: %s", path, strerror(e));
		}
		o->in_place = true;
		return EXIT_OK;
	}
	/* A regular file, new or replaced: a temporary file in the target's directory. */
	o->target = r.target;
	const char *slash = strrchr(o->target, '/');
	size_t dl = (size_t)(slash - o->target);
	size_t tl = dl + sizeof "/.rvattn-XXXXXX";
	if (!(o->tmp = malloc(tl)))
		return fail_errno(o, ENOMEM, "cannot create a temporary file");
	snprintf(o->tmp, tl, "%.*s/.rvattn-XXXXXX", (int)dl, o->target);
	interrupt_block(true);
	o->blocked = true;
	o->fd = mkostemp(o->tmp, O_CLOEXEC);
	if (o->fd < 0) {
		int e = errno;
		free(o->tmp);
		o->tmp = NULL;
		char what[PATH_MAX + 64];
		snprintf(what, sizeof what, "cannot create a temporary file in %.*s", (int)(dl ? dl : 1),
		         dl ? o->target : "/");
		return fail_errno(o, e, what);
	}
	mode_t mode;
	if (r.k == K_REGULAR) {
		mode = r.st.st_mode & 07777;
		if ((r.st.st_uid != geteuid() || r.st.st_gid != getegid()) &&
		    fchown(o->fd, r.st.st_uid, r.st.st_gid) != 0 && errno != EPERM)
			return fail_errno(o, errno, "cannot give the new file the old owner");
	} else {
		mode_t um = umask(0);
		umask(um);
		mode = 0666 & ~um;
	}
	if (fchmod(o->fd, mode) != 0)
		return fail_errno(o, errno, "cannot set the mode of the new file");
	return EXIT_OK;
}

int outfile_write(outfile *o, const void *data, size_t len) {
	const char *p = data;
	while (len > 0) {
		if (interrupted() || (o->blocked && interrupt_pending())) {
			outfile_abort(o);
			return cli_error(EXIT_RUNTIME, "interrupted");
		}
		/* Chunks of 8 MiB, so an interrupt is seen soon. */
		size_t n = len < ((size_t)8 << 20) ? len : (size_t)8 << 20;
		ssize_t w = write(o->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return fail_errno(o, w < 0 ? errno : EIO, "cannot write");
		p += w;
		len -= (size_t)w;
	}
	return EXIT_OK;
}

void outfile_abort(outfile *o) {
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	if (o->tmp)
		unlink(o->tmp);
	free(o->tmp);
	free(o->target);
	o->tmp = o->target = NULL;
	if (o->blocked)
		interrupt_block(false);
	o->blocked = false;
}

int outfile_commit(outfile *o) {
	if (o->in_place) {
		int rc = EXIT_OK;
		if (interrupted())
			rc = cli_error(EXIT_RUNTIME, "interrupted");
		else if (close(o->fd) != 0 && errno != EINTR)
			rc = cli_error(EXIT_RUNTIME, "%s: cannot write: %s", o->path, strerror(errno));
		else
			o->fd = -1;
		outfile_abort(o);
		return rc;
	}
	if (fsync(o->fd) != 0)
		return fail_errno(o, errno, "cannot write");
	int fd = o->fd;
	o->fd = -1;
	if (close(fd) != 0)
		return fail_errno(o, errno, "cannot write");
	if (interrupted() || interrupt_pending()) {
		outfile_abort(o);
		return cli_error(EXIT_RUNTIME, "interrupted");
	}
	if (rename(o->tmp, o->target) != 0)
		return fail_errno(o, errno, "cannot replace it");
	free(o->tmp);
	o->tmp = NULL;
	/* Make the rename durable (best effort: some file systems refuse). */
	char *slash = strrchr(o->target, '/');
	*slash = '\0';
	int dfd = open(o->target[0] ? o->target : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
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

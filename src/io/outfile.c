/* Output files (rules and API in include/rvattn/outfile.h). Used by rva_npy_save and by the
 * rvattn CLI for --out, --json, --csv and --plot. */
#define _GNU_SOURCE 1
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "rvattn/outfile.h"

/* Links followed before giving up (the kernel's own limit is 40). */
#define MAX_LINKS 40
/* Largest piece of one write(2), so the cancel hook is asked often enough. */
#define PIECE ((size_t)8 << 20)

struct rva_outfile {
	char *path;          /* as given, for messages (rva__malloc) */
	char *target;        /* NEW/REPLACE/IN_PLACE: resolved file (rva__malloc) */
	char *tmp;           /* the temporary file beside target while it exists (rva__malloc) */
	int fd;              /* written to; -1 until begun */
	int src_fd;          /* DESCRIPTOR: the descriptor named */
	rva_outfile_kind kind;
	bool begun;
	struct stat st;      /* what is there (all kinds but NEW) */
	bool (*cancelled)(void *arg);
	void *cancel_arg;
};

static rva_status io_err(const rva_outfile *f, const char *what, int e) {
	return rva__fail(RVA_EIO, "%s: cannot %s: %s", f->path, what, strerror(e));
}

static rva_status oom(const rva_outfile *f) {
	return rva__fail(RVA_ENOMEM, "%s: out of memory", f->path);
}

static rva_status cancel_err(const rva_outfile *f) {
	return rva__fail(RVA_ECANCELLED, "%s: interrupted", f->path);
}

static bool is_cancelled(const rva_outfile *f) {
	return f->cancelled && f->cancelled(f->cancel_arg);
}

static char *dup_n(const char *s, size_t n) {
	char *d = rva__malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* Whether dir (canonical) is this process's descriptor directory: /proc/PID/fd or
 * /proc/PID/task/TID/fd (what /dev/fd, /proc/self/fd and /proc/thread-self/fd resolve to). */
static bool own_fd_dir(const char *dir) {
	char own[64];
	int n = snprintf(own, sizeof own, "/proc/%ld/", (long)getpid());
	if (strncmp(dir, own, (size_t)n) != 0)
		return false;
	const char *r = dir + n;
	if (strcmp(r, "fd") == 0)
		return true;
	if (strncmp(r, "task/", 5) != 0)
		return false;
	for (r += 5; isdigit((unsigned char)*r); r++)
		;
	return strcmp(r, "/fd") == 0;
}

static bool digits(const char *s) {
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* Whether fd is open for writing; fills *st. */
static bool writable_fd(long fd, struct stat *st) {
	if (fd < 0 || fd > INT_MAX || fstat((int)fd, st) != 0)
		return false;
	int fl = fcntl((int)fd, F_GETFL);
	return fl >= 0 && (fl & O_ACCMODE) != O_RDONLY;
}

/* Follows f->path to what is to be written: sets kind, target (kinds but DESCRIPTOR),
 * src_fd (DESCRIPTOR) and st (kinds but NEW). */
static rva_status resolve(rva_outfile *f) {
	char *cur = dup_n(f->path, strlen(f->path));
	if (!cur)
		return oom(f);
	for (int depth = 0; depth <= MAX_LINKS; depth++) {
		size_t len = strlen(cur);
		char *slash = strrchr(cur, '/');
		const char *base = slash ? slash + 1 : cur;
		if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || (len && cur[len - 1] == '/')) {
			rva__free(cur);
			return rva__fail(RVA_EIO, "%s: cannot write: the path names a directory", f->path);
		}
		char *dir = !slash ? dup_n(".", 1) : slash == cur ? dup_n("/", 1)
		                                                  : dup_n(cur, (size_t)(slash - cur));
		if (!dir) {
			rva__free(cur);
			return oom(f);
		}
		char *cdir = realpath(dir, NULL);
		int e = errno;
		if (!cdir) {
			rva_status s = e == ENOMEM ? oom(f)
			                           : rva__fail(RVA_EIO, "%s: cannot write: directory %s: %s",
			                                       f->path, dir, strerror(e));
			rva__free(dir);
			rva__free(cur);
			return s;
		}
		rva__free(dir);
		if (own_fd_dir(cdir) && digits(base)) {
			errno = 0;
			long n = strtol(base, NULL, 10);
			bool ok = errno == 0 && writable_fd(n, &f->st);
			rva_status s = ok ? RVA_OK
			                  : rva__fail(RVA_EIO, "%s: cannot write: descriptor %s is not "
			                              "open for writing", f->path, base);
			free(cdir);
			rva__free(cur);
			if (!ok)
				return s;
			f->kind = RVA_OUTFILE_DESCRIPTOR;
			f->src_fd = (int)n;
			return RVA_OK;
		}
		size_t cl = strlen(cdir), bl = strlen(base);
		char *full = rva__malloc(cl + bl + 2);
		if (!full) {
			free(cdir);
			rva__free(cur);
			return oom(f);
		}
		snprintf(full, cl + bl + 2, "%s%s%s", cdir, strcmp(cdir, "/") == 0 ? "" : "/", base);
		free(cdir);
		rva__free(cur);
		cur = NULL;
		if (lstat(full, &f->st) != 0) {
			e = errno;
			if (e == ENOENT) {
				memset(&f->st, 0, sizeof f->st);
				f->kind = RVA_OUTFILE_NEW;
				f->target = full;
				return RVA_OK;
			}
			rva__free(full);
			return io_err(f, "write", e);
		}
		if (S_ISLNK(f->st.st_mode)) {
			char link[PATH_MAX];
			ssize_t n = readlink(full, link, sizeof link - 1);
			if (n < 0) {
				e = errno;
				rva__free(full);
				return io_err(f, "read a symlink on the way", e);
			}
			link[n] = '\0';
			if (link[0] == '/') {
				cur = dup_n(link, (size_t)n);
			} else {
				/* relative to the link's directory */
				size_t dl = (size_t)(strrchr(full, '/') - full);
				cur = rva__malloc(dl + (size_t)n + 2);
				if (cur)
					snprintf(cur, dl + (size_t)n + 2, "%.*s/%s", (int)dl, full, link);
			}
			rva__free(full);
			if (!cur)
				return oom(f);
			continue;
		}
		if (S_ISDIR(f->st.st_mode)) {
			rva__free(full);
			return rva__fail(RVA_EIO, "%s: cannot write: it is a directory", f->path);
		}
		f->kind = S_ISREG(f->st.st_mode) ? RVA_OUTFILE_REPLACE : RVA_OUTFILE_IN_PLACE;
		f->target = full;
		return RVA_OK;
	}
	rva__free(cur);
	return io_err(f, "write", ELOOP);
}

/* A handle with a copy of path, nothing resolved. */
static rva_status make(const char *path, rva_outfile **out) {
	rva_outfile *f = rva__malloc(sizeof *f);
	if (!f)
		return rva__fail(RVA_ENOMEM, "%s: out of memory", path);
	memset(f, 0, sizeof *f);
	f->fd = f->src_fd = -1;
	if (!(f->path = dup_n(path, strlen(path)))) {
		rva__free(f);
		return rva__fail(RVA_ENOMEM, "%s: out of memory", path);
	}
	*out = f;
	return RVA_OK;
}

rva_status rva_outfile_resolve(const char *path, rva_outfile **out) {
	if (!path || !out)
		return rva__fail(RVA_ENULL, "rva_outfile_resolve: %s is NULL", path ? "out" : "path");
	*out = NULL;
	if (!*path)
		return rva__fail(RVA_EINVAL, "rva_outfile_resolve: the path is empty");
	rva_outfile *f;
	rva_status s = make(path, &f);
	if (s != RVA_OK)
		return s;
	if ((s = resolve(f)) != RVA_OK) {
		rva_outfile_abort(f);
		return s;
	}
	*out = f;
	return RVA_OK;
}

rva_status rva_outfile_open(const char *path, rva_outfile **out) {
	rva_status s = rva_outfile_resolve(path, out);
	if (s != RVA_OK)
		return s;
	if ((s = rva_outfile_begin(*out)) != RVA_OK) {
		rva_outfile_abort(*out);
		*out = NULL;
	}
	return s;
}

rva_status rva_outfile_open_fd(int fd, const char *name, rva_outfile **out) {
	if (!name || !out)
		return rva__fail(RVA_ENULL, "rva_outfile_open_fd: %s is NULL", name ? "out" : "name");
	*out = NULL;
	struct stat st;
	if (!writable_fd(fd, &st))
		return rva__fail(RVA_EIO, "%s: cannot write: descriptor %d is not open for writing",
		                 name, fd);
	rva_outfile *f;
	rva_status s = make(name, &f);
	if (s != RVA_OK)
		return s;
	f->kind = RVA_OUTFILE_DESCRIPTOR;
	f->src_fd = fd;
	f->st = st;
	if ((s = rva_outfile_begin(f)) != RVA_OK) {
		rva_outfile_abort(f);
		return s;
	}
	*out = f;
	return RVA_OK;
}

/* Closes and removes what begin made; the handle stays resolved. */
static void unbegin(rva_outfile *f) {
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->tmp)
		unlink(f->tmp);
	rva__free(f->tmp);
	f->tmp = NULL;
	f->begun = false;
}

rva_status rva_outfile_begin(rva_outfile *f) {
	if (!f)
		return rva__fail(RVA_ENULL, "rva_outfile_begin: f is NULL");
	if (f->begun)
		return rva__fail(RVA_ESTATE, "rva_outfile_begin: %s is already open", f->path);
	if (f->kind == RVA_OUTFILE_DESCRIPTOR) {
		f->fd = fcntl(f->src_fd, F_DUPFD_CLOEXEC, 3);
		if (f->fd < 0)
			return io_err(f, "duplicate its descriptor", errno);
		f->begun = true;
		return RVA_OK;
	}
	if (f->kind == RVA_OUTFILE_IN_PLACE) {
		/* A FIFO's open waits for a reader: a signal may end the wait (the hook). */
		for (;;) {
			f->fd = open(f->target, O_WRONLY | O_NOCTTY | O_CLOEXEC);
			if (f->fd >= 0 || errno != EINTR)
				break;
			if (is_cancelled(f))
				return cancel_err(f);
		}
		if (f->fd < 0)
			return io_err(f, "open", errno);
		f->begun = true;
		return RVA_OK;
	}
	/* A regular file, new or replaced: a temporary file in the target's directory. */
	size_t dl = (size_t)(strrchr(f->target, '/') - f->target);
	size_t tl = dl + sizeof "/.rvattn-XXXXXX";
	if (!(f->tmp = rva__malloc(tl)))
		return oom(f);
	snprintf(f->tmp, tl, "%.*s/.rvattn-XXXXXX", (int)dl, f->target);
	f->fd = mkostemp(f->tmp, O_CLOEXEC);
	if (f->fd < 0) {
		int e = errno;
		rva__free(f->tmp);
		f->tmp = NULL;
		return rva__fail(RVA_EIO, "%s: cannot create a temporary file in its directory: %s",
		                 f->path, strerror(e));
	}
	f->begun = true;
	mode_t mode;
	if (f->kind == RVA_OUTFILE_REPLACE) {
		mode = f->st.st_mode & 07777;
		if ((f->st.st_uid != geteuid() || f->st.st_gid != getegid()) &&
		    fchown(f->fd, f->st.st_uid, f->st.st_gid) != 0 && errno != EPERM) {
			int e = errno;
			unbegin(f);
			return io_err(f, "give the new file the old owner", e);
		}
	} else {
		mode_t um = umask(0);
		umask(um);
		mode = 0666 & ~um;
	}
	if (fchmod(f->fd, mode) != 0) {
		int e = errno;
		unbegin(f);
		return io_err(f, "set the mode of the new file", e);
	}
	return RVA_OK;
}

rva_status rva_outfile_set_cancel(rva_outfile *f, bool (*cancelled)(void *arg), void *arg) {
	if (!f)
		return rva__fail(RVA_ENULL, "rva_outfile_set_cancel: f is NULL");
	f->cancelled = cancelled;
	f->cancel_arg = arg;
	return RVA_OK;
}

rva_status rva_outfile_describe(const rva_outfile *f, rva_outfile_desc *d) {
	if (!f || !d)
		return rva__fail(RVA_ENULL, "rva_outfile_describe: %s is NULL", f ? "d" : "f");
	bool exists = f->kind != RVA_OUTFILE_NEW;
	*d = (rva_outfile_desc){
		.kind = f->kind,
		.path = f->path,
		.target = f->kind == RVA_OUTFILE_DESCRIPTOR ? NULL : f->target,
		.source_fd = f->kind == RVA_OUTFILE_DESCRIPTOR ? f->src_fd : -1,
		.fd = f->begun ? f->fd : -1,
		.exists = exists,
		.dev = exists ? (uint64_t)f->st.st_dev : 0,
		.ino = exists ? (uint64_t)f->st.st_ino : 0,
	};
	return RVA_OK;
}

rva_status rva_outfile_write(rva_outfile *f, const void *buf, size_t n) {
	if (!f || (!buf && n > 0))
		return rva__fail(RVA_ENULL, "rva_outfile_write: %s is NULL", f ? "buf" : "f");
	if (!f->begun)
		return rva__fail(RVA_ESTATE, "rva_outfile_write: %s is not open (rva_outfile_begin)",
		                 f->path);
	const char *p = buf;
	while (n > 0) {
		if (is_cancelled(f))
			return cancel_err(f);
		ssize_t w = write(f->fd, p, n < PIECE ? n : PIECE);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return io_err(f, "write", w < 0 ? errno : EIO);
		p += w;
		n -= (size_t)w;
	}
	return RVA_OK;
}

rva_status rva_outfile_abort(rva_outfile *f) {
	if (!f)
		return RVA_OK;
	unbegin(f);
	rva__free(f->target);
	rva__free(f->path);
	rva__free(f);
	return RVA_OK;
}

/* fsync + close + rename + directory fsync, or close in place; f is kept. */
static rva_status finish(rva_outfile *f) {
	int fd = f->fd;
	if (f->kind == RVA_OUTFILE_DESCRIPTOR || f->kind == RVA_OUTFILE_IN_PLACE) {
		if (is_cancelled(f))
			return cancel_err(f);
		f->fd = -1;
		if (close(fd) != 0 && errno != EINTR)
			return io_err(f, "write", errno);
		return RVA_OK;
	}
	f->fd = -1;
	int e = fsync(fd) != 0 ? errno : 0;
	if (close(fd) != 0 && !e)
		e = errno;
	if (e)
		return io_err(f, "write", e);
	if (is_cancelled(f))
		return cancel_err(f);
	if (rename(f->tmp, f->target) != 0)
		return io_err(f, "replace it", errno);
	rva__free(f->tmp);
	f->tmp = NULL;
	/* Make the rename durable (best effort: some file systems refuse). */
	*strrchr(f->target, '/') = '\0';
	int dfd = open(f->target[0] ? f->target : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return RVA_OK;
}

rva_status rva_outfile_commit(rva_outfile *f) {
	if (!f)
		return rva__fail(RVA_ENULL, "rva_outfile_commit: f is NULL");
	rva_status s = f->begun ? finish(f)
	                        : rva__fail(RVA_ESTATE, "rva_outfile_commit: %s was never opened "
	                                    "(rva_outfile_begin)", f->path);
	rva_outfile_abort(f);
	return s;
}

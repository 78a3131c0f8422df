/* Output files of the library (rules in outfile.h). */
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
#include "io/outfile.h"

#define MAX_LINKS 40

static rva_status io_err(const rva__outfile *o, const char *what, int e) {
	return rva__fail(RVA_EIO, "%s: cannot %s: %s", o->path, what, strerror(e));
}

static char *dup_n(const char *s, size_t n) {
	char *d = rva__malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* Whether dir (canonical) is this process's descriptor directory. */
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

/* Follows path to what is to be written. *kind: 0 new regular, 1 existing regular,
 * 2 in place (device, FIFO), 3 descriptor (*fd). *full gets the resolved name (kinds 0-2). */
static rva_status resolve(rva__outfile *o, int *kind, char **full, int *fd, struct stat *st) {
	char *cur = dup_n(o->path, strlen(o->path));
	if (!cur)
		return rva__fail(RVA_ENOMEM, "%s: out of memory", o->path);
	for (int depth = 0; depth <= MAX_LINKS; depth++) {
		size_t len = strlen(cur);
		char *slash = strrchr(cur, '/');
		const char *base = slash ? slash + 1 : cur;
		if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || (len && cur[len - 1] == '/')) {
			rva__free(cur);
			return rva__fail(RVA_EIO, "%s: cannot write: the path names a directory", o->path);
		}
		char *dir = !slash ? dup_n(".", 1) : slash == cur ? dup_n("/", 1)
		                                                  : dup_n(cur, (size_t)(slash - cur));
		if (!dir) {
			rva__free(cur);
			return rva__fail(RVA_ENOMEM, "%s: out of memory", o->path);
		}
		char *cdir = realpath(dir, NULL);
		int e = errno;
		if (!cdir) {
			rva_status s = rva__fail(RVA_EIO, "%s: cannot write: directory %s: %s", o->path, dir,
			                         strerror(e));
			rva__free(dir);
			rva__free(cur);
			return s;
		}
		rva__free(dir);
		if (own_fd_dir(cdir) && digits(base)) {
			long n = strtol(base, NULL, 10);
			free(cdir);
			rva__free(cur);
			int fl = n <= INT_MAX ? fcntl((int)n, F_GETFL) : -1;
			if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY)
				return rva__fail(RVA_EIO, "%s: cannot write: descriptor %ld is not open for "
				                 "writing", o->path, n);
			*kind = 3;
			*fd = (int)n;
			return RVA_OK;
		}
		size_t cl = strlen(cdir), bl = strlen(base);
		char *f = rva__malloc(cl + bl + 2);
		if (!f) {
			free(cdir);
			rva__free(cur);
			return rva__fail(RVA_ENOMEM, "%s: out of memory", o->path);
		}
		snprintf(f, cl + bl + 2, "%s%s%s", cdir, strcmp(cdir, "/") == 0 ? "" : "/", base);
		free(cdir);
		rva__free(cur);
		cur = NULL;
		if (lstat(f, st) != 0) {
			e = errno;
			if (e == ENOENT) {
				*kind = 0;
				*full = f;
				return RVA_OK;
			}
			rva__free(f);
			return io_err(o, "write", e);
		}
		if (S_ISLNK(st->st_mode)) {
			char link[PATH_MAX];
			ssize_t n = readlink(f, link, sizeof link - 1);
			if (n < 0) {
				e = errno;
				rva__free(f);
				return io_err(o, "read a symlink on the way", e);
			}
			link[n] = '\0';
			if (link[0] == '/') {
				cur = dup_n(link, (size_t)n);
			} else {
				size_t dl = (size_t)(strrchr(f, '/') - f);
				cur = rva__malloc(dl + (size_t)n + 2);
				if (cur)
					snprintf(cur, dl + (size_t)n + 2, "%.*s/%s", (int)dl, f, link);
			}
			rva__free(f);
			if (!cur)
				return rva__fail(RVA_ENOMEM, "%s: out of memory", o->path);
			continue;
		}
		if (S_ISDIR(st->st_mode)) {
			rva__free(f);
			return rva__fail(RVA_EIO, "%s: cannot write: it is a directory", o->path);
		}
		*kind = S_ISREG(st->st_mode) ? 1 : 2;
		*full = f;
		return RVA_OK;
	}
	rva__free(cur);
	return io_err(o, "write", ELOOP);
}

rva_status rva__outfile_open(rva__outfile *o, const char *path) {
	memset(o, 0, sizeof *o);
	o->path = path;
	o->fd = -1;
	int kind = 0, dfd = -1;
	char *full = NULL;
	struct stat st;
	rva_status s = resolve(o, &kind, &full, &dfd, &st);
	if (s != RVA_OK)
		return s;
	if (kind == 3) {
		o->in_place = true;
		o->fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
		return o->fd < 0 ? io_err(o, "duplicate its descriptor", errno) : RVA_OK;
	}
	if (kind == 2) {
		o->in_place = true;
		do
			o->fd = open(full, O_WRONLY | O_NOCTTY | O_CLOEXEC);
		while (o->fd < 0 && errno == EINTR);
		int e = errno;
		rva__free(full);
		return o->fd < 0 ? io_err(o, "open", e) : RVA_OK;
	}
	o->target = full;
	size_t dl = (size_t)(strrchr(full, '/') - full);
	o->tmp = rva__malloc(dl + sizeof "/.rvattn-XXXXXX");
	if (!o->tmp) {
		rva__outfile_abort(o);
		return rva__fail(RVA_ENOMEM, "%s: out of memory", path);
	}
	snprintf(o->tmp, dl + sizeof "/.rvattn-XXXXXX", "%.*s/.rvattn-XXXXXX", (int)dl, full);
	o->fd = mkostemp(o->tmp, O_CLOEXEC);
	if (o->fd < 0) {
		int e = errno;
		rva__free(o->tmp);
		o->tmp = NULL;
		rva__outfile_abort(o);
		return rva__fail(RVA_EIO, "%s: cannot create a temporary file in its directory: %s",
		                 path, strerror(e));
	}
	mode_t mode;
	if (kind == 1) {
		mode = st.st_mode & 07777;
		if ((st.st_uid != geteuid() || st.st_gid != getegid()) &&
		    fchown(o->fd, st.st_uid, st.st_gid) != 0 && errno != EPERM) {
			int e = errno;
			rva__outfile_abort(o);
			return io_err(o, "give the new file the old owner", e);
		}
	} else {
		mode_t um = umask(0);
		umask(um);
		mode = 0666 & ~um;
	}
	if (fchmod(o->fd, mode) != 0) {
		int e = errno;
		rva__outfile_abort(o);
		return io_err(o, "set the mode of the new file", e);
	}
	return RVA_OK;
}

rva_status rva__outfile_write(rva__outfile *o, const void *buf, size_t n) {
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(o->fd, p, n < ((size_t)1 << 30) ? n : ((size_t)1 << 30));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return io_err(o, "write", w < 0 ? errno : EIO);
		p += w;
		n -= (size_t)w;
	}
	return RVA_OK;
}

void rva__outfile_abort(rva__outfile *o) {
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	if (o->tmp)
		unlink(o->tmp);
	rva__free(o->tmp);
	rva__free(o->target);
	o->tmp = o->target = NULL;
}

rva_status rva__outfile_commit(rva__outfile *o) {
	rva_status s = RVA_OK;
	if (o->in_place) {
		int fd = o->fd;
		o->fd = -1;
		if (close(fd) != 0 && errno != EINTR)
			s = io_err(o, "write", errno);
		rva__outfile_abort(o);
		return s;
	}
	int fd = o->fd;
	o->fd = -1;
	int e = fsync(fd) != 0 ? errno : 0;
	if (close(fd) != 0 && !e)
		e = errno;
	if (!e && rename(o->tmp, o->target) != 0)
		e = errno;
	if (e) {
		rva__outfile_abort(o);
		return io_err(o, "write", e);
	}
	rva__free(o->tmp);
	o->tmp = NULL;
	/* Make the rename durable (best effort: some file systems refuse). */
	*strrchr(o->target, '/') = '\0';
	int dfd = open(o->target[0] ? o->target : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	rva__outfile_abort(o);
	return RVA_OK;
}

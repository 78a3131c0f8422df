/*
 * The output-file API (rvattn/outfile.h): a symlink's target replaced atomically with its
 * mode kept and the link left alone, a FIFO written in place, a descriptor written through,
 * abort and cancel leaving nothing behind. The oracle is the file system itself (stat,
 * readlink, the bytes read back).
 */
#define _GNU_SOURCE 1
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rvattn/rvattn.h"

static char dir[64];

static void dir_up(void) {
	snprintf(dir, sizeof dir, "/tmp/rvattn_outfile_XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void dir_down(void) {
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	(void)system(cmd);
}

TestSuite(outfile, .init = dir_up, .fini = dir_down);

static const char *in_dir(const char *name) {
	static char p[4][256];
	static int next;
	char *r = p[next++ % 4];
	snprintf(r, sizeof p[0], "%s/%s", dir, name);
	return r;
}

static void put(const char *path, const char *text, mode_t mode) {
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

/* The whole file as a string (at most 255 bytes). */
static const char *slurp(const char *path) {
	static char buf[256];
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	cr_assert(n >= 0);
	buf[n] = '\0';
	return buf;
}

/* Entries of dir whose name starts with ".rvattn-" (temporary files). */
static int temp_files(void) {
	DIR *d = opendir(dir);
	cr_assert_not_null(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += strncmp(e->d_name, ".rvattn-", 8) == 0;
	closedir(d);
	return n;
}

/* Opens path, expecting the given kind and what stat(path) shows; fills *d. */
static rva_outfile *open_as(const char *path, rva_outfile_kind kind, rva_outfile_desc *d) {
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	rva_outfile *f = NULL;
	cr_assert_eq(rva_outfile_open(path, &f), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_outfile_describe(f, d), RVA_OK);
	cr_expect_eq(d->kind, kind);
	cr_expect_str_eq(d->path, path);
	cr_expect(d->exists);
	cr_expect_eq(d->dev, (uint64_t)st.st_dev);
	cr_expect_eq(d->ino, (uint64_t)st.st_ino);
	cr_assert(d->fd >= 0);
	return f;
}

Test(outfile, symlink_target_replaced_mode_kept) {
	const char *target = in_dir("target.bin"), *link = in_dir("link.bin");
	put(target, "old contents", 0640);
	cr_assert_eq(symlink("target.bin", link), 0);
	struct stat before;
	cr_assert_eq(stat(target, &before), 0);

	rva_outfile_desc d;
	rva_outfile *f = open_as(link, RVA_OUTFILE_REPLACE, &d);
	char real[PATH_MAX];
	cr_assert_not_null(realpath(target, real));
	cr_expect_str_eq(d.target, real, "the resolved target is %s", d.target);
	cr_expect_eq(d.source_fd, -1);
	/* The temporary file sits beside the target, with the old mode already. */
	cr_expect_eq(temp_files(), 1);
	struct stat tmp;
	cr_assert_eq(fstat(d.fd, &tmp), 0);
	cr_expect_eq(tmp.st_mode & 07777, 0640u);
	cr_expect_str_eq(slurp(target), "old contents", "the target changed before the commit");

	cr_assert_eq(rva_outfile_write(f, "new ", 4), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_outfile_write(f, "contents!", 9), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_outfile_commit(f), RVA_OK, "%s", rva_last_error());

	struct stat ls, after;
	cr_assert_eq(lstat(link, &ls), 0);
	cr_expect(S_ISLNK(ls.st_mode), "the link was replaced");
	char to[64];
	ssize_t n = readlink(link, to, sizeof to - 1);
	cr_assert(n > 0);
	to[n] = '\0';
	cr_expect_str_eq(to, "target.bin");
	cr_assert_eq(stat(target, &after), 0);
	cr_expect_eq(after.st_mode & 07777, 0640u, "mode %o", (unsigned)(after.st_mode & 07777));
	cr_expect_neq(after.st_ino, before.st_ino, "written in place, not replaced");
	cr_expect_str_eq(slurp(target), "new contents!");
	cr_expect_eq(temp_files(), 0);
}

Test(outfile, new_file_gets_umask_mode) {
	const char *p = in_dir("fresh.bin");
	mode_t um = umask(027);
	rva_outfile *f = NULL;
	cr_assert_eq(rva_outfile_open(p, &f), RVA_OK, "%s", rva_last_error());
	umask(um);
	rva_outfile_desc d;
	cr_assert_eq(rva_outfile_describe(f, &d), RVA_OK);
	cr_expect_eq(d.kind, RVA_OUTFILE_NEW);
	cr_expect(!d.exists);
	cr_expect_eq(d.dev, 0u);
	cr_expect_eq(access(p, F_OK), -1, "the target exists before the commit");
	cr_assert_eq(rva_outfile_write(f, "x", 1), RVA_OK);
	cr_assert_eq(rva_outfile_commit(f), RVA_OK, "%s", rva_last_error());
	struct stat st;
	cr_assert_eq(stat(p, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0640u, "mode %o", (unsigned)(st.st_mode & 07777));
	cr_expect_str_eq(slurp(p), "x");
}

Test(outfile, fifo_written_in_place) {
	const char *fifo = in_dir("pipe");
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	/* A reader first, so the writer's open does not wait. */
	int rd = open(fifo, O_RDONLY | O_NONBLOCK);
	cr_assert(rd >= 0);
	rva_outfile_desc d;
	rva_outfile *f = open_as(fifo, RVA_OUTFILE_IN_PLACE, &d);
	cr_expect_eq(temp_files(), 0, "a temporary file for a FIFO");
	cr_assert_eq(rva_outfile_write(f, "through the fifo", 16), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_outfile_commit(f), RVA_OK, "%s", rva_last_error());

	char buf[64] = {0};
	cr_expect_eq(read(rd, buf, sizeof buf - 1), 16);
	cr_expect_str_eq(buf, "through the fifo");
	close(rd);
	struct stat st;
	cr_assert_eq(lstat(fifo, &st), 0);
	cr_expect(S_ISFIFO(st.st_mode), "the FIFO was replaced");
	cr_expect_eq(temp_files(), 0);
}

Test(outfile, descriptor_written_through) {
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	char path[64];
	snprintf(path, sizeof path, "/dev/fd/%d", fds[1]);
	rva_outfile *f = NULL;
	cr_assert_eq(rva_outfile_resolve(path, &f), RVA_OK, "%s", rva_last_error());
	rva_outfile_desc d;
	cr_assert_eq(rva_outfile_describe(f, &d), RVA_OK);
	cr_expect_eq(d.kind, RVA_OUTFILE_DESCRIPTOR);
	cr_expect_eq(d.source_fd, fds[1]);
	cr_expect_null(d.target);
	cr_expect_eq(d.fd, -1, "a descriptor before rva_outfile_begin");
	cr_assert_eq(rva_outfile_begin(f), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_outfile_describe(f, &d), RVA_OK);
	cr_expect(d.fd >= 0 && d.fd != fds[1], "fd %d: not a duplicate", d.fd);
	cr_assert_eq(rva_outfile_write(f, "abc", 3), RVA_OK);
	cr_assert_eq(rva_outfile_commit(f), RVA_OK, "%s", rva_last_error());
	/* The caller's descriptor stays open and usable. */
	cr_expect_eq(write(fds[1], "d", 1), 1);
	close(fds[1]);
	char buf[8] = {0};
	cr_expect_eq(read(fds[0], buf, sizeof buf - 1), 4);
	cr_expect_str_eq(buf, "abcd");
	close(fds[0]);

	/* rva_outfile_open_fd: the same through a descriptor given directly. */
	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(rva_outfile_open_fd(fds[1], "the pipe", &f), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_outfile_write(f, "xyz", 3), RVA_OK);
	cr_assert_eq(rva_outfile_commit(f), RVA_OK, "%s", rva_last_error());
	close(fds[1]);
	memset(buf, 0, sizeof buf);
	cr_expect_eq(read(fds[0], buf, sizeof buf - 1), 3);
	cr_expect_str_eq(buf, "xyz");
	close(fds[0]);
}

Test(outfile, abort_leaves_nothing) {
	/* a new file */
	const char *p = in_dir("never.bin");
	rva_outfile *f = NULL;
	cr_assert_eq(rva_outfile_open(p, &f), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_outfile_write(f, "partial", 7), RVA_OK);
	cr_expect_eq(temp_files(), 1);
	cr_assert_eq(rva_outfile_abort(f), RVA_OK);
	cr_expect_eq(temp_files(), 0, "the temporary file stayed");
	cr_expect_eq(access(p, F_OK), -1, "the target appeared");
	/* an existing file keeps its contents and inode */
	const char *q = in_dir("kept.bin");
	put(q, "keep me", 0600);
	struct stat before, after;
	cr_assert_eq(stat(q, &before), 0);
	cr_assert_eq(rva_outfile_open(q, &f), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_outfile_write(f, "clobbered", 9), RVA_OK);
	cr_assert_eq(rva_outfile_abort(f), RVA_OK);
	cr_assert_eq(stat(q, &after), 0);
	cr_expect_eq(after.st_ino, before.st_ino);
	cr_expect_str_eq(slurp(q), "keep me");
	cr_expect_eq(temp_files(), 0);
	/* a resolved handle never begun: nothing was created */
	cr_assert_eq(rva_outfile_resolve(p, &f), RVA_OK, "%s", rva_last_error());
	cr_expect_eq(temp_files(), 0, "rva_outfile_resolve created a file");
	cr_assert_eq(rva_outfile_abort(f), RVA_OK);
	cr_expect_eq(access(p, F_OK), -1);
}

static bool cancel_after(void *arg) {
	int *left = arg;
	return (*left)-- <= 0;
}

Test(outfile, cancel_hook_stops_write_and_rename) {
	const char *p = in_dir("cancelled.bin");
	put(p, "original", 0644);
	/* cancelled at the first piece of the write */
	rva_outfile *f = NULL;
	int left = 0;
	cr_assert_eq(rva_outfile_open(p, &f), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_outfile_set_cancel(f, cancel_after, &left), RVA_OK);
	cr_expect_eq(rva_outfile_write(f, "new", 3), RVA_ECANCELLED);
	cr_expect_not_null(strstr(rva_last_error(), "interrupted"), "%s", rva_last_error());
	rva_outfile_abort(f);
	cr_expect_str_eq(slurp(p), "original");
	cr_expect_eq(temp_files(), 0);
	/* the write goes through (one piece), the commit is cancelled before the rename */
	left = 1;
	cr_assert_eq(rva_outfile_open(p, &f), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(rva_outfile_set_cancel(f, cancel_after, &left), RVA_OK);
	cr_assert_eq(rva_outfile_write(f, "new", 3), RVA_OK, "%s", rva_last_error());
	cr_expect_eq(rva_outfile_commit(f), RVA_ECANCELLED);
	cr_expect_str_eq(slurp(p), "original");
	cr_expect_eq(temp_files(), 0, "the temporary file stayed after a cancelled commit");
}

Test(outfile, errors_name_the_path) {
	rva_outfile *f = (rva_outfile *)&f;
	cr_expect_eq(rva_outfile_open(dir, &f), RVA_EIO);
	cr_expect_null(f, "out not cleared on failure");
	cr_expect_not_null(strstr(rva_last_error(), dir), "%s", rva_last_error());
	cr_expect_not_null(strstr(rva_last_error(), "directory"), "%s", rva_last_error());
	/* a symlink loop */
	const char *a = in_dir("a"), *b = in_dir("b");
	cr_assert_eq(symlink("b", a), 0);
	cr_assert_eq(symlink("a", b), 0);
	cr_expect_eq(rva_outfile_open(a, &f), RVA_EIO);
	cr_expect_not_null(strstr(rva_last_error(), strerror(ELOOP)), "%s", rva_last_error());
	cr_expect_eq(temp_files(), 0);
}

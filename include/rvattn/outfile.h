/*
 * rvattn — output files written as cp, dd and numpy.save write them (the rules
 * rva_npy_save follows, for any bytes).
 *
 * Where the bytes go:
 * - A path naming an open descriptor of the process (/dev/stdout, /dev/stderr, /dev/fd/N,
 *   /proc/self/fd/N, or a symlink to one) is written through a duplicate of that
 *   descriptor, at its current offset (RVA_OUTFILE_DESCRIPTOR).
 * - Any other path that is not a regular file (character or block device, FIFO) is
 *   opened and written in place (RVA_OUTFILE_IN_PLACE).
 * - A symlink chain is followed (dangling links too, at most 40 links): the file it ends
 *   at is what is written, and the links stay.
 * - A regular file, existing (RVA_OUTFILE_REPLACE) or new (RVA_OUTFILE_NEW), is written to
 *   a temporary file ".rvattn-XXXXXX" (mkostemp) in the target's own directory, which gets
 *   the mode of the file it replaces (and its owner when the process may set it; EPERM is
 *   ignored) or 0666 & ~umask for a new file; rva_outfile_commit fsyncs it, renames it over
 *   the target and fsyncs the directory (best effort). Readers never see a partial file;
 *   on any failure, or rva_outfile_abort, the temporary file is removed and the target is
 *   untouched.
 * In the in-place cases nothing is created, renamed or removed.
 *
 * Use: rva_outfile_open, rva_outfile_write as often as needed, then rva_outfile_commit (or
 * rva_outfile_abort). A program that must look at every output before creating anything
 * (the rvattn CLI refuses two outputs naming one file, and moves its report off stdout when
 * an output is stdout) calls rva_outfile_resolve, rva_outfile_describe, and later
 * rva_outfile_begin. A handle is used by one thread at a time.
 */
#ifndef RVATTN_OUTFILE_H
#define RVATTN_OUTFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

RVA_BEGIN_DECLS

/* An output file being written (opaque). */
typedef struct rva_outfile rva_outfile;

/* What a path resolved to. */
typedef enum rva_outfile_kind {
	RVA_OUTFILE_NEW = 0,    /* no file there yet: a temporary file, renamed into place */
	RVA_OUTFILE_REPLACE,    /* an existing regular file: a temporary file renamed over it */
	RVA_OUTFILE_IN_PLACE,   /* a device or FIFO, opened and written in place */
	RVA_OUTFILE_DESCRIPTOR  /* an open descriptor of the process, written through */
} rva_outfile_kind;

/* A description of a handle (rva_outfile_describe). Pointers are borrowed from the
 * handle: valid until it is committed or aborted. */
typedef struct rva_outfile_desc {
	rva_outfile_kind kind;
	const char *path;   /* the path as given (or the name given to rva_outfile_open_fd) */
	const char *target; /* NEW, REPLACE, IN_PLACE: the resolved file, an absolute path with
	                     * no symlink in it; NULL for DESCRIPTOR */
	int source_fd;      /* DESCRIPTOR: the descriptor the path names; -1 otherwise */
	int fd;             /* the descriptor written to (temporary file, device, duplicate);
	                     * -1 until rva_outfile_begin. Borrowed: never close it */
	bool exists;        /* something is there (all kinds but NEW); dev and ino are set */
	uint64_t dev, ino;  /* st_dev and st_ino of what is there when resolved; 0 for NEW */
} rva_outfile_desc;

/* Follows path by the rules above and returns a handle in *out, creating and opening
 * nothing; rva_outfile_begin opens it. The handle is owned by the caller: release it with
 * rva_outfile_commit or rva_outfile_abort. Errors: RVA_ENULL (path or out); RVA_EINVAL
 * (an empty path); RVA_EIO (a directory, a missing directory on the way, a descriptor not
 * open for writing, a symlink loop: the message names the path and the reason);
 * RVA_ENOMEM. On failure *out is NULL. */
rva_status rva_outfile_resolve(const char *path, rva_outfile **out);

/* rva_outfile_resolve followed by rva_outfile_begin: on success *out is a handle ready
 * for rva_outfile_write, owned by the caller (rva_outfile_commit or rva_outfile_abort).
 * Errors: those of both; on failure nothing is left behind and *out is NULL. */
rva_status rva_outfile_open(const char *path, rva_outfile **out);

/* A handle writing through a duplicate of the caller's descriptor fd (kind
 * RVA_OUTFILE_DESCRIPTOR, already begun); name is copied and used in messages. fd stays
 * the caller's. Owned by the caller (rva_outfile_commit or rva_outfile_abort).
 * Errors: RVA_ENULL (name or out); RVA_EIO (fd is not open for writing); RVA_ENOMEM.
 * On failure *out is NULL. */
rva_status rva_outfile_open_fd(int fd, const char *name, rva_outfile **out);

/* Opens a resolved handle: duplicates the descriptor, opens the device or FIFO (which
 * may wait for a reader), or creates the temporary file with its mode and owner. On
 * failure the handle stays resolved and nothing is left behind; the caller still
 * releases it. Errors: RVA_ENULL; RVA_ESTATE (already begun); RVA_EIO; RVA_ENOMEM;
 * RVA_ECANCELLED (an open interrupted by a signal while the cancel hook says so). */
rva_status rva_outfile_begin(rva_outfile *f);

/* Sets the cancel hook (NULL removes it): cancelled(arg) is asked before each piece of
 * a write (pieces of at most 8 MiB), when an open or write is interrupted by a signal
 * (EINTR; without a hook, or while it returns false, the call is retried), and in
 * rva_outfile_commit before the rename (or before closing an in-place output). When it
 * returns true the call fails with RVA_ECANCELLED. The hook is borrowed; arg is passed
 * as is. Errors: RVA_ENULL (f). */
rva_status rva_outfile_set_cancel(rva_outfile *f, bool (*cancelled)(void *arg), void *arg);

/* Fills *d (pointers borrowed from f). Errors: RVA_ENULL (f or d). */
rva_status rva_outfile_describe(const rva_outfile *f, rva_outfile_desc *d);

/* Writes n bytes (retrying short writes). On failure the output is unusable: the caller
 * aborts it. Errors: RVA_ENULL (f, or buf with n > 0); RVA_ESTATE (not begun); RVA_EIO
 * (the message names the path and the system's reason); RVA_ECANCELLED (the hook). */
rva_status rva_outfile_write(rva_outfile *f, const void *buf, size_t n);

/* Finishes and frees f: for a temporary file fsync, close, rename over the target and
 * fsync the directory; in place, close. Whatever the result, f is freed; on failure the
 * temporary file is removed and the target untouched. Errors: RVA_ENULL; RVA_ESTATE (not
 * begun: f is freed all the same); RVA_EIO; RVA_ECANCELLED (the hook, before the rename). */
rva_status rva_outfile_commit(rva_outfile *f);

/* Gives up: closes, removes the temporary file if any, frees f. NULL is accepted.
 * Always RVA_OK. */
rva_status rva_outfile_abort(rva_outfile *f);

RVA_END_DECLS

#endif

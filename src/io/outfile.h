/*
 * Output files of the library (rva_npy_save), by the rules stated at the top of
 * rvattn/npy.h, as cp and numpy.save behave. A path naming an open descriptor of the process
 * (/dev/stdout, /dev/fd/N, /proc/self/fd/N) is written through that descriptor; another
 * path that is not a regular file (device, FIFO) is opened and written in place; a
 * symlink chain is followed and its target replaced, the links kept; a regular file (new
 * or existing) is written to a mkstemp ".rvattn-XXXXXX" file in the target's directory,
 * fsync'd, given the old file's mode (and owner when permitted) or 0666 & ~umask, and
 * renamed over the target. On failure the temporary file is removed.
 * (The CLI has its own copy of these rules in tools/rvattn/outfile.c, with signal
 * handling; tools use only the public API.)
 */
#ifndef RVATTN_SRC_IO_OUTFILE_H
#define RVATTN_SRC_IO_OUTFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "rvattn/status.h"

typedef struct rva__outfile {
	const char *path; /* as given, for messages */
	char *target;     /* resolved regular file to replace (rva__malloc), or NULL */
	char *tmp;        /* temporary file beside it (rva__malloc), or NULL */
	int fd;
	bool in_place;
} rva__outfile;

/* Opens path for writing by the rules above. Errors: RVA_EIO (with the path and the
 * system's reason), RVA_ENOMEM. */
rva_status rva__outfile_open(rva__outfile *o, const char *path);
/* Writes n bytes. Errors: RVA_EIO. On failure the caller calls rva__outfile_abort. */
rva_status rva__outfile_write(rva__outfile *o, const void *buf, size_t n);
/* fsync + rename (or close in place); on failure removes the temporary file. RVA_EIO. */
rva_status rva__outfile_commit(rva__outfile *o);
/* Closes and removes the temporary file; idempotent. */
void rva__outfile_abort(rva__outfile *o);

#endif

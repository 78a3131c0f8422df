/*
 * rvattn — status codes and error reporting.
 *
 * The rule, stated once: every public function of rvattn returns an rva_status.
 * RVA_OK (0) means success; any other value is an error, and then the function has
 * changed none of its output arguments (unless its documentation says otherwise) and
 * leaked nothing. The thread that got the error can read a one-line human-readable
 * detail with rva_last_error() ("query has 512 floats, attention dim is 768"), valid
 * until that thread's next rvattn call that fails.
 *
 * The only exceptions are pure value constructors (rva_multi_head(), rva_preset_config(),
 * ...) which cannot fail and return a value, the string accessors (rva_strerror(),
 * rva_status_name(), rva_last_error(), ..._name()) which return static or thread-local
 * strings, and rva_clear_error(), which cannot fail.
 *
 * Names: a getter is rva_<object>_<property> (rva_attention_config, rva_job_progress,
 * rva_engine_worker, rva_job_moe_stats); where that name is already the name of the type
 * it fills, `_get` follows (rva_engine_info_get, rva_job_stats_get, rva_pipeline_mode_get,
 * rva_dist_ring_layout_get). A setter is rva_<object>_set_<property>
 * (rva_pipeline_set_mode). Process-wide settings have no object: rva_set_allocator and
 * rva_get_allocator.
 */
#ifndef RVATTN_STATUS_H
#define RVATTN_STATUS_H

#include "export.h"

RVA_BEGIN_DECLS

/* One table gives code, name and message (libuv style). */
#define RVA_STATUS_MAP(X)                                                        \
	X(OK, 0, "success")                                                          \
	X(EINVAL, 1, "invalid argument")                                             \
	X(ENULL, 2, "required pointer argument is NULL")                             \
	X(EDIM, 3, "dimension mismatch")                                             \
	X(ERANGE, 4, "option value out of range")                                    \
	X(EEMPTY, 5, "empty input")                                                  \
	X(EOVERFLOW, 6, "size computation overflows")                                \
	X(ENOMEM, 7, "out of memory")                                                \
	X(EUNSUPPORTED, 8, "unsupported on this machine or build")                   \
	X(EIO, 9, "input/output error")                                              \
	X(EFORMAT, 10, "malformed or unsupported file format")                       \
	X(ENOTFOUND, 11, "not found")                                                \
	X(ECANCELLED, 12, "cancelled")                                               \
	X(ESTATE, 13, "operation not allowed in the object's current state")         \
	X(ESYSTEM, 14, "operating system or library call failed")                    \
	X(EINTERNAL, 15, "internal error (a bug in rvattn)")

typedef enum rva_status {
#define RVA__STATUS_ENUM(name, code, msg) RVA_##name = code,
	RVA_STATUS_MAP(RVA__STATUS_ENUM)
#undef RVA__STATUS_ENUM
	RVA_STATUS_COUNT
} rva_status;

/* Static message for a status ("dimension mismatch"); "unknown status" when out of range. */
const char *rva_strerror(rva_status st);

/* Static symbolic name of a status ("RVA_EDIM"); "RVA_UNKNOWN" when out of range. */
const char *rva_status_name(rva_status st);

/*
 * Detail of the last error raised on the calling thread, or "" when none. The string
 * is thread-local and stays valid until the next failing rvattn call on this thread.
 */
const char *rva_last_error(void);

/* Clears the calling thread's error detail. */
void rva_clear_error(void);

RVA_END_DECLS
#endif

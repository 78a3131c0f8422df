/* Status table, messages and the thread-local error detail. */
#include <stdarg.h>
#include <stdio.h>

#include "core/internal.h"
#include "rvattn/status.h"

static const char *const status_msgs[] = {
#define RVA__STATUS_MSG(name, code, msg) [code] = msg,
	RVA_STATUS_MAP(RVA__STATUS_MSG)
#undef RVA__STATUS_MSG
};

static const char *const status_names[] = {
#define RVA__STATUS_NAME(name, code, msg) [code] = "RVA_" #name,
	RVA_STATUS_MAP(RVA__STATUS_NAME)
#undef RVA__STATUS_NAME
};

static _Thread_local char last_error[512];

const char *rva_strerror(rva_status st) {
	if ((unsigned)st >= RVA_STATUS_COUNT)
		return "unknown status";
	return status_msgs[st];
}

const char *rva_status_name(rva_status st) {
	if ((unsigned)st >= RVA_STATUS_COUNT)
		return "RVA_UNKNOWN";
	return status_names[st];
}

const char *rva_last_error(void) { return last_error; }

void rva_clear_error(void) { last_error[0] = '\0'; }

rva_status rva__fail(rva_status st, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	va_end(ap);
	return st;
}

rva_status rva__propagate(rva_status st) {
	if (st != RVA_OK && last_error[0] == '\0')
		snprintf(last_error, sizeof last_error, "%s", rva_strerror(st));
	return st;
}

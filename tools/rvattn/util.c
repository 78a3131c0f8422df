/* Errors, flag value parsing, small helpers shared by the subcommands. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cli_error(int code, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fputs("rvattn: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return code;
}

void cli_warn(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fputs("rvattn: warning: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int cli_lib_error(rva_status st, int code, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fputs("rvattn: ", stderr);
	vfprintf(stderr, fmt, ap);
	const char *detail = rva_last_error();
	fprintf(stderr, ": %s\n", detail && *detail ? detail : rva_strerror(st));
	va_end(ap);
	return code;
}

int cli_usage(const char *cmd, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fputs("rvattn: ", stderr);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (see 'rvattn%s%s --help')\n", cmd ? " " : "", cmd ? cmd : "");
	va_end(ap);
	return EXIT_USAGE;
}

int cli_bad_option(const char *cmd, int c, char **argv) {
	const char *arg = optind > 0 ? argv[optind - 1] : "?";
	if (c == ':')
		return cli_usage(cmd, "option %s needs a value", arg);
	if (optopt && optopt < 256)
		return cli_usage(cmd, "unknown option -%c", optopt);
	return cli_usage(cmd, "unknown option %s", arg);
}

static bool parse_u64_as(const char *cmd, const char *flag, const char *s, uint64_t *out,
                         const char *what) {
	const char *p = s;
	while (*p == ' ')
		p++;
	if (*p < '0' || *p > '9') {
		cli_usage(cmd, "--%s '%s' is not %s", flag, s, what);
		return false;
	}
	errno = 0;
	char *end;
	unsigned long long v = strtoull(p, &end, 10);
	if (errno == ERANGE) {
		cli_usage(cmd, "--%s %s is too large", flag, s);
		return false;
	}
	if (*end != '\0') {
		cli_usage(cmd, "--%s '%s' is not %s", flag, s, what);
		return false;
	}
	*out = v;
	return true;
}

bool parse_u64(const char *cmd, const char *flag, const char *s, uint64_t *out) {
	return parse_u64_as(cmd, flag, s, out, "a non-negative integer");
}

bool parse_size(const char *cmd, const char *flag, const char *s, bool allow_zero,
                size_t *out) {
	uint64_t v;
	if (!parse_u64_as(cmd, flag, s, &v,
	                  allow_zero ? "a non-negative integer" : "a positive integer"))
		return false;
	if (v > SIZE_MAX) {
		cli_usage(cmd, "--%s %s is too large", flag, s);
		return false;
	}
	if (v == 0 && !allow_zero) {
		cli_usage(cmd, "--%s must be > 0", flag);
		return false;
	}
	*out = (size_t)v;
	return true;
}

bool parse_float(const char *cmd, const char *flag, const char *s, float *out) {
	errno = 0;
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end != '\0' || !isfinite(v) || fabs(v) > 3.0e38) {
		cli_usage(cmd, "--%s '%s' is not a finite number", flag, s);
		return false;
	}
	float f = (float)v;
	/* Say when float32 cannot hold what was written: the shortest decimal that reads
	 * back as f differs from the value given (0.1 is fine, 1.0000000001 is not). */
	char shortest[32];
	for (int p = 1; p <= 9; p++) {
		snprintf(shortest, sizeof shortest, "%.*g", p, (double)f);
		if (strtof(shortest, NULL) == f)
			break;
	}
	if (strtod(shortest, NULL) != v)
		cli_warn("--%s %s is not representable in float32: using %s", flag, s, shortest);
	*out = f;
	return true;
}

bool parse_size_list(const char *cmd, const char *flag, const char *s, size_t *out,
                     size_t cap, size_t *n) {
	*n = 0;
	const char *p = s;
	for (;;) {
		char *end;
		if (*p < '0' || *p > '9')
			goto bad;
		errno = 0;
		unsigned long long a = strtoull(p, &end, 10), b = a;
		if (errno)
			goto bad;
		p = end;
		if (*p == '-') {
			p++;
			if (*p < '0' || *p > '9')
				goto bad;
			b = strtoull(p, &end, 10);
			if (errno || b < a)
				goto bad;
			p = end;
		}
		if (a == 0) {
			cli_usage(cmd, "--%s: thread counts must be > 0", flag);
			return false;
		}
		for (unsigned long long x = a; x <= b; x++) {
			if (*n == cap) {
				cli_usage(cmd, "--%s: more than %zu values", flag, cap);
				return false;
			}
			out[(*n)++] = (size_t)x;
		}
		if (*p == '\0')
			return true;
		if (*p != ',')
			goto bad;
		p++;
	}
bad:
	cli_usage(cmd, "--%s '%s' is not a list like 1,2,4 or 1-8", flag, s);
	return false;
}

double now_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cpu_model(char *buf, size_t cap) {
	buf[0] = '\0';
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		char line[512];
		while (fgets(line, sizeof line, f)) {
			if (strncmp(line, "model name", 10) != 0)
				continue;
			char *c = strchr(line, ':');
			if (!c)
				continue;
			c++;
			while (*c == ' ' || *c == '\t')
				c++;
			c[strcspn(c, "\n")] = '\0';
			snprintf(buf, cap, "%s", c);
			break;
		}
		fclose(f);
	}
	if (buf[0])
		return;
	rva_cpu_features cf;
	if (rva_cpu_detect(&cf) == RVA_OK)
		snprintf(buf, cap, "%s family %u model %u", cf.vendor, cf.family, cf.model);
	else
		snprintf(buf, cap, "unknown CPU");
}

void kernels_line(rva_kernel_set k, char *buf, size_t cap) {
	rva_kernel_set cur;
	const char *note = NULL;
	if (rva_kernels_current(&cur, &note) == RVA_OK && cur == k && note && *note)
		snprintf(buf, cap, "%s (%s)", rva_kernel_set_name(k), note);
	else if (rva_kernels_current(&cur, &note) == RVA_OK && cur != k)
		snprintf(buf, cap, "%s (engine option; process default %s)", rva_kernel_set_name(k),
		         rva_kernel_set_name(cur));
	else
		snprintf(buf, cap, "%s", rva_kernel_set_name(k));
}

static int cmp_double(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double median(const double *v, size_t n) {
	if (n == 0)
		return NAN;
	double *c = malloc(n * sizeof *c);
	if (!c)
		return v[0];
	memcpy(c, v, n * sizeof *c);
	qsort(c, n, sizeof *c, cmp_double);
	double m = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
	free(c);
	return m;
}

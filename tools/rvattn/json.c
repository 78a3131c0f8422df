/* The JSON writer of json.h. */
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void json_init(json *j, FILE *f, bool pretty) {
	memset(j, 0, sizeof *j);
	j->f = f;
	j->pretty = pretty;
}

static void indent(json *j) {
	if (!j->pretty)
		return;
	fputc('\n', j->f);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->f);
}

/* Separator and indentation before a value or a key. */
static void before_value(json *j) {
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->depth > 0) {
		if (j->has_items[j->depth])
			fputc(',', j->f);
		indent(j);
	}
	j->has_items[j->depth] = true;
}

static void open_(json *j, char c) {
	before_value(j);
	fputc(c, j->f);
	if (j->depth + 1 < JSON_MAX_DEPTH)
		j->depth++;
	j->has_items[j->depth] = false;
}

static void close_(json *j, char c) {
	bool had = j->has_items[j->depth];
	if (j->depth > 0)
		j->depth--;
	if (had)
		indent(j);
	fputc(c, j->f);
}

void json_object_begin(json *j) { open_(j, '{'); }
void json_object_end(json *j) { close_(j, '}'); }
void json_array_begin(json *j) { open_(j, '['); }
void json_array_end(json *j) { close_(j, ']'); }

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when invalid. */
static int utf8_len(const unsigned char *s) {
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	int n;
	unsigned cp;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (int i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0; /* overlong, out of range, or a surrogate */
	return n;
}

void json_write_string(FILE *f, const char *str) {
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	fputc('"', f);
	while (*s) {
		unsigned char c = *s;
		switch (c) {
		case '"': fputs("\\\"", f); s++; continue;
		case '\\': fputs("\\\\", f); s++; continue;
		case '\b': fputs("\\b", f); s++; continue;
		case '\f': fputs("\\f", f); s++; continue;
		case '\n': fputs("\\n", f); s++; continue;
		case '\r': fputs("\\r", f); s++; continue;
		case '\t': fputs("\\t", f); s++; continue;
		default: break;
		}
		if (c < 0x20) {
			fprintf(f, "\\u%04x", c);
			s++;
			continue;
		}
		int n = utf8_len(s);
		if (n == 0) {
			fputs("\\ufffd", f);
			s++;
			continue;
		}
		fwrite(s, 1, (size_t)n, f);
		s += n;
	}
	fputc('"', f);
}

void json_key(json *j, const char *key) {
	before_value(j);
	json_write_string(j->f, key);
	fputs(j->pretty ? ": " : ":", j->f);
	j->after_key = true;
}

void json_string(json *j, const char *s) {
	before_value(j);
	json_write_string(j->f, s);
}

void json_number(json *j, double x) {
	before_value(j);
	if (!isfinite(x)) {
		fputs("null", j->f);
		return;
	}
	char buf[40];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	fputs(buf, j->f);
}

void json_float(json *j, float x) {
	before_value(j);
	if (!isfinite(x)) {
		fputs("null", j->f);
		return;
	}
	char buf[40];
	for (int prec = 6; prec <= 9; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
		if (strtof(buf, NULL) == x)
			break;
	}
	fputs(buf, j->f);
}

void json_uint(json *j, uint64_t x) {
	before_value(j);
	fprintf(j->f, "%llu", (unsigned long long)x);
}

void json_int(json *j, int64_t x) {
	before_value(j);
	fprintf(j->f, "%lld", (long long)x);
}

void json_bool(json *j, bool b) {
	before_value(j);
	fputs(b ? "true" : "false", j->f);
}

void json_null(json *j) {
	before_value(j);
	fputs("null", j->f);
}

void json_finish(json *j) { fputc('\n', j->f); }

void json_kv_string(json *j, const char *key, const char *s) {
	json_key(j, key);
	if (s)
		json_string(j, s);
	else
		json_null(j);
}

void json_kv_number(json *j, const char *key, double x) {
	json_key(j, key);
	json_number(j, x);
}

void json_kv_uint(json *j, const char *key, uint64_t x) {
	json_key(j, key);
	json_uint(j, x);
}

void json_kv_bool(json *j, const char *key, bool b) {
	json_key(j, key);
	json_bool(j, b);
}

void json_kv_float(json *j, const char *key, float x) {
	json_key(j, key);
	json_float(j, x);
}

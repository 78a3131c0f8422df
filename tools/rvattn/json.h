/*
 * A small streaming JSON writer (RFC 8259) for the CLI's machine-readable output.
 *
 * Strings are escaped ('"', '\\', control characters as \n \t ... or \u00XX) and must be
 * UTF-8: invalid bytes are written as U+FFFD, so the output is always valid JSON.
 * Numbers are written with the shortest of %.15g, %.16g and %.17g that reads back as the
 * same double (so they round-trip exactly); NaN and infinities, which JSON cannot hold,
 * are written as null. Commas and indentation are handled by the writer.
 */
#ifndef RVATTN_TOOLS_JSON_H
#define RVATTN_TOOLS_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 32

typedef struct json {
	FILE *f;
	bool pretty;
	int depth;
	bool has_items[JSON_MAX_DEPTH]; /* a value was written at this depth */
	bool after_key;
} json;

void json_init(json *j, FILE *f, bool pretty);
void json_object_begin(json *j);
void json_object_end(json *j);
void json_array_begin(json *j);
void json_array_end(json *j);
void json_key(json *j, const char *key);
void json_string(json *j, const char *s);
void json_number(json *j, double x);
/* A float value: the shortest of %.6g-%.9g that reads back as the same float. */
void json_float(json *j, float x);
void json_uint(json *j, uint64_t x);
void json_int(json *j, int64_t x);
void json_bool(json *j, bool b);
void json_null(json *j);
/* Ends the document with a newline. */
void json_finish(json *j);

/* Key + value shorthands. */
void json_kv_string(json *j, const char *key, const char *s);
void json_kv_number(json *j, const char *key, double x);
void json_kv_float(json *j, const char *key, float x);
void json_kv_uint(json *j, const char *key, uint64_t x);
void json_kv_bool(json *j, const char *key, bool b);

/* Writes s as a JSON string literal (with quotes) to f. */
void json_write_string(FILE *f, const char *s);

#endif

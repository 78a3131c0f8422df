/*
 * The CLI's JSON writer (tools/rvattn/json.c): escaping of every control character,
 * quotes and backslashes, UTF-8 passed through and invalid bytes replaced, numbers that
 * round-trip, non-finite numbers as null, commas and nesting.
 */
#define _GNU_SOURCE 1
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tools/rvattn/json.c"

static char *buf;
static size_t len;

static json *start(bool pretty) {
	static json j;
	FILE *f = open_memstream(&buf, &len);
	cr_assert_not_null(f);
	json_init(&j, f, pretty);
	return &j;
}

static const char *end(json *j) {
	fclose(j->f);
	return buf;
}

static void string_is(const char *in, const char *want) {
	json *j = start(false);
	json_string(j, in);
	cr_assert_str_eq(end(j), want, "input \"%s\"", in);
	free(buf);
}

Test(cli_json, escapes) {
	string_is("plain", "\"plain\"");
	string_is("", "\"\"");
	string_is("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
	string_is("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
	string_is("\x01\x1f\x7f", "\"\\u0001\\u001f\x7f\"");
	/* Valid UTF-8 passes through: 2, 3 and 4 byte sequences. */
	string_is("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	/* Invalid: lone continuation, overlong, surrogate, truncated, out of range, 0xff. */
	string_is("\x80", "\"\\ufffd\"");
	string_is("\xc0\xaf", "\"\\ufffd\\ufffd\"");
	string_is("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");
	string_is("\xe2\x82", "\"\\ufffd\\ufffd\"");
	string_is("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	string_is("a\xffz", "\"a\\ufffdz\"");
	string_is(NULL, "\"\"");
}

Test(cli_json, every_control_character) {
	char in[2] = {0, 0};
	for (int c = 1; c < 0x20; c++) {
		in[0] = (char)c;
		json *j = start(false);
		json_string(j, in);
		const char *out = end(j);
		cr_assert_eq(out[1], '\\', "control %d not escaped: %s", c, out);
		for (const char *p = out; *p; p++)
			cr_assert_geq((unsigned char)*p, 0x20);
		free(buf);
	}
}

Test(cli_json, numbers) {
	double xs[] = {0.0, -0.0, 1.0, 0.1, 1.0 / 3.0, 1e300, -2.5e-310, 123456789012345678.0,
	               6.0845e-05};
	for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
		json *j = start(false);
		json_number(j, xs[i]);
		const char *out = end(j);
		cr_assert_eq(strtod(out, NULL), xs[i], "%s does not read back", out);
		cr_assert_leq(strlen(out), 24);
		free(buf);
	}
	json *j = start(false);
	json_number(j, 0.1);
	cr_assert_str_eq(end(j), "0.1");
	free(buf);
	j = start(false);
	json_array_begin(j);
	json_number(j, NAN);
	json_number(j, INFINITY);
	json_number(j, -INFINITY);
	json_float(j, 0.1f);
	json_float(j, NAN);
	json_uint(j, UINT64_MAX);
	json_int(j, INT64_MIN);
	json_array_end(j);
	cr_assert_str_eq(end(j), "[null,null,null,0.1,null,18446744073709551615,"
	                         "-9223372036854775808]");
	free(buf);
}

Test(cli_json, structure) {
	json *j = start(false);
	json_object_begin(j);
	json_kv_string(j, "a", "x");
	json_key(j, "b");
	json_array_begin(j);
	json_array_end(j);
	json_key(j, "c");
	json_object_begin(j);
	json_object_end(j);
	json_key(j, "d");
	json_array_begin(j);
	json_bool(j, true);
	json_null(j);
	json_object_begin(j);
	json_kv_bool(j, "e", false);
	json_kv_string(j, "f", NULL);
	json_object_end(j);
	json_array_end(j);
	json_kv_uint(j, "g\"", 7);
	json_object_end(j);
	cr_assert_str_eq(end(j), "{\"a\":\"x\",\"b\":[],\"c\":{},\"d\":[true,null,{\"e\":false,"
	                         "\"f\":null}],\"g\\\"\":7}");
	free(buf);

	j = start(true);
	json_object_begin(j);
	json_kv_uint(j, "a", 1);
	json_key(j, "b");
	json_array_begin(j);
	json_uint(j, 2);
	json_uint(j, 3);
	json_array_end(j);
	json_object_end(j);
	json_finish(j);
	cr_assert_str_eq(end(j), "{\n  \"a\": 1,\n  \"b\": [\n    2,\n    3\n  ]\n}\n");
	free(buf);
}

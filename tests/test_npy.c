/*
 * .npy reading and writing: round trips (format 1.0, 2.0, 3.0), conversion of float64,
 * float16 and big-endian data, every rejection with its exact status, atomic writes,
 * allocation failures, and streams (pipes, /dev/zero): header first, then exactly the
 * declared data, with memory following what arrived.
 */
#define _GNU_SOURCE 1
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ref/fault_alloc.h"
#include "rvattn/alloc.h"
#include "rvattn/npy.h"

/* ---- helpers ----------------------------------------------------------------------- */

static char tmpdir[256];

static void make_tmpdir(void) {
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/rvattn_npy_XXXXXX", base && *base ? base : "/tmp");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
	DIR *d = opendir(tmpdir);
	if (!d)
		return;
	struct dirent *e;
	char p[512];
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(tmpdir);
}

/* Number of entries in the temporary directory (to see leftover temporary files). */
static int dir_entries(void) {
	DIR *d = opendir(tmpdir);
	cr_assert_not_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static const char *tmp_path(const char *name) {
	static char p[512];
	snprintf(p, sizeof p, "%s/%s", tmpdir, name);
	return p;
}

/* A byte buffer holding a hand-made .npy file. */
typedef struct buf {
	uint8_t b[4096];
	size_t n;
} buf;

/* Magic, version, a header dict padded to 64 bytes (unless raw_len is nonzero, then the
 * stored header length is raw_len), then data. */
static void make_npy(buf *o, unsigned major, unsigned minor, const char *dict,
                     const void *data, size_t data_len) {
	size_t prefix = major == 1 ? 10 : 12, dl = strlen(dict);
	size_t total = (prefix + dl + 1 + 63) / 64 * 64;
	cr_assert_leq(total + data_len, sizeof o->b);
	memcpy(o->b, "\x93NUMPY", 6);
	o->b[6] = (uint8_t)major;
	o->b[7] = (uint8_t)minor;
	size_t hl = total - prefix;
	o->b[8] = (uint8_t)hl;
	o->b[9] = (uint8_t)(hl >> 8);
	if (major != 1) {
		o->b[10] = (uint8_t)(hl >> 16);
		o->b[11] = (uint8_t)(hl >> 24);
	}
	memcpy(o->b + prefix, dict, dl);
	memset(o->b + prefix + dl, ' ', total - prefix - dl - 1);
	o->b[total - 1] = '\n';
	if (data_len)
		memcpy(o->b + total, data, data_len);
	o->n = total + data_len;
}

static void write_file(const char *path, const void *data, size_t n) {
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, n, f), n);
	cr_assert_eq(fclose(f), 0);
}

/* Parses b from memory and from a file; both must give status want. */
static void expect_both(const buf *b, rva_status want, const char *needle) {
	rva_npy_array a;
	memset(&a, 0x5a, sizeof a);
	rva_status st = rva_npy_parse(b->b, b->n, &a);
	cr_assert_eq(st, want, "parse: got %s (%s), want %s", rva_status_name(st),
	             rva_last_error(), rva_status_name(want));
	if (want != RVA_OK) {
		cr_assert_eq(((unsigned char *)&a)[0], 0x5a, "output changed on failure");
		if (needle)
			cr_assert_not_null(strstr(rva_last_error(), needle), "message \"%s\" lacks "
			                   "\"%s\"", rva_last_error(), needle);
	} else {
		rva_npy_free(&a);
	}
	const char *p = tmp_path("case.npy");
	write_file(p, b->b, b->n);
	st = rva_npy_load(p, &a);
	cr_assert_eq(st, want, "load: got %s (%s), want %s", rva_status_name(st),
	             rva_last_error(), rva_status_name(want));
	if (want != RVA_OK) {
		cr_assert_not_null(strstr(rva_last_error(), p), "load message \"%s\" lacks the "
		                   "path", rva_last_error());
		if (needle)
			cr_assert_not_null(strstr(rva_last_error(), needle), "message \"%s\" lacks "
			                   "\"%s\"", rva_last_error(), needle);
	} else {
		rva_npy_free(&a);
	}
}

static uint32_t f32_bits(float f) {
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

TestSuite(npy, .init = make_tmpdir, .fini = remove_tmpdir);

/* ---- round trips ----------------------------------------------------------------------- */

static void round_trip(unsigned version, size_t ndim, const size_t *shape) {
	size_t count = 1;
	for (size_t i = 0; i < ndim; i++)
		count *= shape[i];
	float *x = malloc((count ? count : 1) * sizeof *x);
	for (size_t i = 0; i < count; i++)
		x[i] = (float)((double)i * 0.37 - 3.0) * (i % 3 ? 1.0f : -1.0f);
	if (count > 2) {
		x[1] = INFINITY;
		x[2] = -0.0f;
	}
	const char *p = tmp_path("rt.npy");
	cr_assert_eq(rva_npy_save_ex(p, x, ndim, shape, version), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(dir_entries(), 1, "temporary file left behind");

	rva_npy_array a;
	cr_assert_eq(rva_npy_load(p, &a), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(a.ndim, ndim);
	for (size_t i = 0; i < ndim; i++)
		cr_assert_eq(a.shape[i], shape[i]);
	cr_assert_eq(a.count, count);
	cr_assert_eq(a.file.version_major, version ? version : 1);
	cr_assert_eq(a.file.version_minor, 0);
	cr_assert_str_eq(a.file.descr, "<f4");
	cr_assert_eq(a.file.dtype, RVA_NPY_F32);
	cr_assert_not(a.converted);
	cr_assert_eq(a.file.data_offset % 64, 0);
	size_t offset = a.file.data_offset;
	for (size_t i = 0; i < count; i++)
		cr_assert_eq(f32_bits(a.data[i]), f32_bits(x[i]), "element %zu", i);
	rva_npy_free(&a);
	cr_assert_null(a.data);

	/* The same bytes parse from memory. */
	FILE *f = fopen(p, "rb");
	cr_assert_not_null(f);
	static uint8_t bytes[1 << 16];
	size_t n = fread(bytes, 1, sizeof bytes, f);
	fclose(f);
	cr_assert_eq(n, offset + count * 4);
	cr_assert_eq(rva_npy_parse(bytes, n, &a), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(a.count, count);
	for (size_t i = 0; i < count; i++)
		cr_assert_eq(f32_bits(a.data[i]), f32_bits(x[i]));
	rva_npy_free(&a);
	free(x);
}

Test(npy, round_trip_v1) {
	size_t s3[] = {2, 3, 4}, s1[] = {5}, s0[] = {0, 3}, s4[] = {1, 2, 3, 7};
	round_trip(0, 3, s3);
	round_trip(1, 1, s1);
	round_trip(0, 0, NULL); /* scalar */
	round_trip(0, 2, s0);   /* empty */
	round_trip(1, 4, s4);
}

Test(npy, round_trip_v2_v3) {
	size_t s3[] = {3, 5, 2};
	round_trip(2, 3, s3);
	round_trip(3, 3, s3);
}

Test(npy, header_matches_numpy) {
	/* The header NumPy writes for np.zeros((2, 3), np.float32), followed by padding. */
	size_t shape[] = {2, 3};
	uint8_t hdr[256];
	size_t len;
	cr_assert_eq(rva_npy_header_write(2, shape, 0, hdr, sizeof hdr, &len), RVA_OK);
	cr_assert_eq(len, 128);
	static const char want[] = "\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': "
	                           "False, 'shape': (2, 3), }";
	cr_assert_eq(memcmp(hdr, want, sizeof want - 1), 0);
	for (size_t i = sizeof want - 1; i < 127; i++)
		cr_assert_eq(hdr[i], ' ');
	cr_assert_eq(hdr[127], '\n');
	size_t n2;
	cr_assert_eq(rva_npy_header_write(2, shape, 0, NULL, 0, &n2), RVA_OK);
	cr_assert_eq(n2, 128);
	cr_assert_eq(rva_npy_header_write(2, shape, 0, hdr, 100, &n2), RVA_ERANGE);
	cr_assert_eq(rva_npy_header_write(2, shape, 4, hdr, sizeof hdr, &n2), RVA_EINVAL);
	size_t big[RVA_NPY_MAX_DIMS + 1] = {0};
	cr_assert_eq(rva_npy_header_write(RVA_NPY_MAX_DIMS + 1, big, 0, hdr, sizeof hdr, &n2),
	             RVA_EINVAL);
	size_t huge[] = {SIZE_MAX / 2, 3};
	cr_assert_eq(rva_npy_header_write(2, huge, 0, hdr, sizeof hdr, &n2), RVA_EOVERFLOW);
	cr_assert_eq(rva_npy_header_write(2, NULL, 0, hdr, sizeof hdr, &n2), RVA_ENULL);
	cr_assert_eq(rva_npy_header_write(2, shape, 0, hdr, sizeof hdr, NULL), RVA_ENULL);
	/* 32 dimensions of 20 digits still fit format 1.0. */
	size_t wide[RVA_NPY_MAX_DIMS];
	for (int i = 0; i < RVA_NPY_MAX_DIMS; i++)
		wide[i] = i ? 1 : 0;
	cr_assert_eq(rva_npy_header_write(RVA_NPY_MAX_DIMS, wide, 0, NULL, 0, &n2), RVA_OK);
}

Test(npy, accepts_numpy_variants) {
	float v[6] = {1, 2, 3, 4, 5, 6};
	buf b;
	rva_npy_array a;
	/* Keys in another order, double quotes, no trailing comma, Python 2 'L' ints,
	 * extra whitespace, native byte order '='. */
	const char *dicts[] = {
		"{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
		"{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2L, 3L)}",
		"{ 'descr' :'<f4' ,'fortran_order':False,'shape':( 2 ,3 , ) , }",
		"{'descr': '=f4', 'fortran_order': False, 'shape': (6,), }",
	};
	for (size_t i = 0; i < sizeof dicts / sizeof *dicts; i++) {
		make_npy(&b, 1, 0, dicts[i], v, sizeof v);
		cr_assert_eq(rva_npy_parse(b.b, b.n, &a), RVA_OK, "%s: %s", dicts[i],
		             rva_last_error());
		cr_assert_eq(a.count, 6);
		cr_assert_eq(a.data[5], 6.0f);
		rva_npy_free(&a);
	}
	/* Version 3.0 (UTF-8 header) is read like 2.0. */
	make_npy(&b, 3, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", v,
	         sizeof v);
	expect_both(&b, RVA_OK, NULL);
}

/* ---- conversions ----------------------------------------------------------------------- */

Test(npy, float64_converted) {
	double d[5] = {1.0, -2.5, 1e-3, 1e300, -1e300};
	buf b;
	make_npy(&b, 1, 0, "{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }", d,
	         sizeof d);
	rva_npy_array a;
	cr_assert_eq(rva_npy_parse(b.b, b.n, &a), RVA_OK, "%s", rva_last_error());
	cr_assert(a.converted);
	cr_assert_eq(a.file.dtype, RVA_NPY_F64);
	cr_assert_str_eq(a.file.descr, "<f8");
	cr_assert_eq(a.overflowed, 2);
	cr_assert_eq(a.data[0], 1.0f);
	cr_assert_eq(a.data[1], -2.5f);
	cr_assert_eq(a.data[2], (float)1e-3);
	cr_assert(isinf(a.data[3]) && a.data[3] > 0);
	cr_assert(isinf(a.data[4]) && a.data[4] < 0);
	rva_npy_free(&a);
	/* The file loader converts in chunks: a larger array crosses chunk borders. */
	enum { N = 20000 };
	static double big[N];
	for (int i = 0; i < N; i++)
		big[i] = i * 0.5 - 7.25;
	size_t shape[] = {N};
	uint8_t hdr[256];
	size_t hl;
	cr_assert_eq(rva_npy_header_write(1, shape, 0, hdr, sizeof hdr, &hl), RVA_OK);
	hdr[hl - 1] = ' ';
	char *s = memchr(hdr, '<', hl);
	s[2] = '8'; /* '<f4' -> '<f8', same length */
	hdr[hl - 1] = '\n';
	const char *p = tmp_path("big.npy");
	FILE *f = fopen(p, "wb");
	fwrite(hdr, 1, hl, f);
	fwrite(big, sizeof(double), N, f);
	fclose(f);
	cr_assert_eq(rva_npy_load(p, &a), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(a.count, N);
	cr_assert(a.converted);
	for (int i = 0; i < N; i++)
		cr_assert_eq(a.data[i], (float)big[i], "element %d", i);
	rva_npy_free(&a);
}

Test(npy, float16_converted) {
	uint16_t h[9] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x8000, 0x7e00};
	float want[8] = {1.0f, -2.0f, 65504.0f, 5.9604644775390625e-8f, 6.097555160522461e-5f,
	                 INFINITY, -INFINITY, -0.0f};
	buf b;
	make_npy(&b, 1, 0, "{'descr': '<f2', 'fortran_order': False, 'shape': (3, 3), }", h,
	         sizeof h);
	rva_npy_array a;
	cr_assert_eq(rva_npy_parse(b.b, b.n, &a), RVA_OK, "%s", rva_last_error());
	cr_assert(a.converted);
	cr_assert_eq(a.file.dtype, RVA_NPY_F16);
	cr_assert_eq(a.ndim, 2);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(f32_bits(a.data[i]), f32_bits(want[i]), "element %d: %a", i,
		             (double)a.data[i]);
	cr_assert(isnan(a.data[8]));
	cr_assert_eq(a.overflowed, 0);
	rva_npy_free(&a);
	expect_both(&b, RVA_OK, NULL);
}

Test(npy, big_endian_converted) {
	uint8_t f4[8] = {0x3f, 0x80, 0, 0, 0xc0, 0x20, 0, 0}; /* 1.0, -2.5 */
	uint8_t f8[8] = {0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18}; /* pi */
	uint8_t f2[2] = {0x3c, 0x00};                                      /* 1.0 */
	buf b;
	rva_npy_array a;
	make_npy(&b, 1, 0, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", f4, 8);
	cr_assert_eq(rva_npy_parse(b.b, b.n, &a), RVA_OK, "%s", rva_last_error());
	cr_assert(a.converted && a.file.big_endian);
	cr_assert_eq(a.data[0], 1.0f);
	cr_assert_eq(a.data[1], -2.5f);
	rva_npy_free(&a);
	make_npy(&b, 2, 0, "{'descr': '>f8', 'fortran_order': False, 'shape': (), }", f8, 8);
	cr_assert_eq(rva_npy_parse(b.b, b.n, &a), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(a.ndim, 0);
	cr_assert_eq(a.count, 1);
	cr_assert_eq(a.data[0], (float)3.141592653589793);
	rva_npy_free(&a);
	make_npy(&b, 1, 0, "{'descr': '>f2', 'fortran_order': False, 'shape': (1,), }", f2, 2);
	cr_assert_eq(rva_npy_parse(b.b, b.n, &a), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(a.data[0], 1.0f);
	rva_npy_free(&a);
}

/* ---- rejections -------------------------------------------------------------------------- */

static void reject_dict(const char *dict, const void *data, size_t n, rva_status want,
                        const char *needle) {
	buf b;
	make_npy(&b, 1, 0, dict, data, n);
	expect_both(&b, want, needle);
}

Test(npy, rejects_other_dtypes) {
	uint8_t z[64] = {0};
	reject_dict("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", z, 8,
	            RVA_EFORMAT, "'<i4'");
	reject_dict("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", z, 2,
	            RVA_EFORMAT, "'|u1'");
	reject_dict("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", z, 16,
	            RVA_EFORMAT, "'<c8'");
	reject_dict("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", z, 16,
	            RVA_EFORMAT, "'|O'");
	reject_dict("{'descr': '<f16', 'fortran_order': False, 'shape': (1,), }", z, 16,
	            RVA_EFORMAT, "'<f16'");
	reject_dict("{'descr': '|f4', 'fortran_order': False, 'shape': (2,), }", z, 8,
	            RVA_EFORMAT, "'|f4'");
	reject_dict("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", z,
	            8, RVA_EFORMAT, "structured");
	/* Non-printable bytes in the descr are shown escaped. */
	reject_dict("{'descr': '<\x01\xc3\xa9', 'fortran_order': False, 'shape': (2,), }", z,
	            8, RVA_EFORMAT, "\\x01");
}

Test(npy, rejects_fortran_order) {
	float v[6] = {0};
	reject_dict("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", v, sizeof v,
	            RVA_EFORMAT, "Fortran");
	reject_dict("{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }", v, sizeof v,
	            RVA_EFORMAT, "True or False");
}

Test(npy, rejects_bad_size) {
	float v[7] = {0};
	reject_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", v, 20,
	            RVA_EFORMAT, "truncated");
	reject_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", v, 0,
	            RVA_EFORMAT, "truncated");
	reject_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", v, 28,
	            RVA_EFORMAT, "after the .npy data");
	reject_dict("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", v, 28,
	            RVA_EFORMAT, "truncated");
}

Test(npy, rejects_absurd_shapes) {
	uint8_t z[8] = {0};
	reject_dict("{'descr': '<f4', 'fortran_order': False, 'shape': "
	            "(123456789012345678901234567890,), }", z, 8, RVA_EOVERFLOW, "overflows");
	reject_dict("{'descr': '<f4', 'fortran_order': False, 'shape': "
	            "(4294967296, 4294967296), }", z, 8, RVA_EOVERFLOW, "overflows");
	reject_dict("{'descr': '<f4', 'fortran_order': False, 'shape': "
	            "(4611686018427387904,), }", z, 8, RVA_EOVERFLOW, "overflows");
	reject_dict("{'descr': '<f8', 'fortran_order': False, 'shape': "
	            "(3074457345618258603, 1), }", z, 8, RVA_EOVERFLOW, "overflows");
	/* A zero dimension makes a huge product 0: a valid empty array. */
	reject_dict("{'descr': '<f4', 'fortran_order': False, 'shape': "
	            "(4294967296, 4294967296, 0), }", z, 0, RVA_OK, NULL);
	/* Huge but not overflowing: refused as truncated without allocating. */
	reject_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }", z,
	            8, RVA_EFORMAT, "truncated");
	/* Too many dimensions. */
	char dict[512];
	int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
	for (int i = 0; i < RVA_NPY_MAX_DIMS + 1; i++)
		n += snprintf(dict + n, sizeof dict - (size_t)n, "1, ");
	snprintf(dict + n, sizeof dict - (size_t)n, "), }");
	reject_dict(dict, z, 4, RVA_EFORMAT, "dimensions");
	reject_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", z, 4,
	            RVA_EFORMAT, "negative");
}

Test(npy, rejects_malformed_dicts) {
	float v[2] = {0};
	struct {
		const char *dict, *needle;
	} cases[] = {
		{"{'descr': '<f4', 'fortran_order': False}", "missing key 'shape'"},
		{"{'fortran_order': False, 'shape': (2,)}", "missing key 'descr'"},
		{"{}", "missing key 'descr' 'fortran_order' 'shape'"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", "unknown key"},
		{"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", "twice"},
		{"'descr': '<f4', 'fortran_order': False, 'shape': (2,)", "'{'"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", "',' or '}'"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", "padding"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2)}", "not a tuple"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': [2]}", "list"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2,,)}", "dimension"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2 3)}", "',' or ')'"},
		{"{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", "dtype"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ,}", "quoted string"},
		{"{'descr' '<f4', 'fortran_order': False, 'shape': (2,)}", "':'"},
		{"{'descr': '<f4', 'fortran_order': Fals, 'shape': (2,)}", "True or False"},
		{"{'descr': 'a\\'b', 'fortran_order': False, 'shape': (2,)}", "escapes"},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,)}", "',' or ')'"},
		{"", "'{'"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		reject_dict(cases[i].dict, v, sizeof v, RVA_EFORMAT, cases[i].needle);
}

Test(npy, rejects_bad_prefix) {
	buf b;
	const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }";
	float one = 1;
	make_npy(&b, 1, 0, dict, &one, 4);
	b.b[0] = 'X';
	expect_both(&b, RVA_EFORMAT, "magic");
	make_npy(&b, 4, 0, dict, &one, 4);
	expect_both(&b, RVA_EFORMAT, "version 4.0");
	make_npy(&b, 1, 1, dict, &one, 4);
	expect_both(&b, RVA_EFORMAT, "version 1.1");
	/* Cut short: every prefix of a valid file fails cleanly. */
	make_npy(&b, 2, 0, dict, &one, 4);
	for (size_t n = 0; n < b.n; n++) {
		buf c = b;
		c.n = n;
		expect_both(&c, RVA_EFORMAT, NULL);
	}
	/* A header length beyond the data. */
	make_npy(&b, 1, 0, dict, &one, 4);
	b.b[8] = 0xff;
	b.b[9] = 0xff;
	expect_both(&b, RVA_EFORMAT, "beyond the end");
	make_npy(&b, 2, 0, dict, &one, 4);
	b.b[11] = 0xff;
	expect_both(&b, RVA_EFORMAT, "beyond the end");
	/* A header length of 0 and 1 (the data starts inside the 12-byte prefix read). */
	uint8_t tiny[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 1, 0, '{', 0};
	memcpy(b.b, tiny, 12);
	b.n = 12;
	expect_both(&b, RVA_EFORMAT, "expected");
	tiny[8] = 0;
	memcpy(b.b, tiny, 12);
	expect_both(&b, RVA_EFORMAT, "'{'");
}

Test(npy, null_arguments) {
	rva_npy_array a;
	rva_npy_header h;
	cr_assert_eq(rva_npy_parse(NULL, 10, &a), RVA_ENULL);
	cr_assert_eq(rva_npy_parse("x", 1, NULL), RVA_ENULL);
	cr_assert_eq(rva_npy_parse(NULL, 0, &a), RVA_EFORMAT);
	cr_assert_eq(rva_npy_parse_header(NULL, 3, &h), RVA_ENULL);
	cr_assert_eq(rva_npy_parse_header("x", 1, NULL), RVA_ENULL);
	cr_assert_eq(rva_npy_load(NULL, &a), RVA_ENULL);
	cr_assert_eq(rva_npy_load("x.npy", NULL), RVA_ENULL);
	float f = 0;
	size_t s = 1;
	cr_assert_eq(rva_npy_save(NULL, &f, 1, &s), RVA_ENULL);
	cr_assert_eq(rva_npy_save(tmp_path("n.npy"), NULL, 1, &s), RVA_ENULL);
	cr_assert_eq(rva_npy_save(tmp_path("n.npy"), &f, 1, NULL), RVA_ENULL);
	size_t zero = 0;
	cr_assert_eq(rva_npy_save(tmp_path("n.npy"), NULL, 1, &zero), RVA_OK);
	cr_assert_eq(rva_npy_free(NULL), RVA_OK);
	cr_assert_str_eq(rva_npy_dtype_name(RVA_NPY_F16), "float16");
	cr_assert_str_eq(rva_npy_dtype_name(RVA_NPY_DTYPE_COUNT), "unknown");
}

Test(npy, parse_header_alone) {
	/* The header parses without the data being present. */
	size_t shape[] = {4, 5};
	uint8_t hdr[256];
	size_t len;
	cr_assert_eq(rva_npy_header_write(2, shape, 2, hdr, sizeof hdr, &len), RVA_OK);
	rva_npy_header h;
	cr_assert_eq(rva_npy_parse_header(hdr, len, &h), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(h.version_major, 2);
	cr_assert_eq(h.ndim, 2);
	cr_assert_eq(h.count, 20);
	cr_assert_eq(h.data_offset, len);
	cr_assert_eq(h.data_bytes, 80);
	cr_assert_eq(rva_npy_parse_header(hdr, len - 1, &h), RVA_EFORMAT);
}

/* ---- files ------------------------------------------------------------------------------- */

Test(npy, load_errors) {
	rva_npy_array a;
	cr_assert_eq(rva_npy_load(tmp_path("missing.npy"), &a), RVA_EIO);
	cr_assert_not_null(strstr(rva_last_error(), "missing.npy"));
	cr_assert_not_null(strstr(rva_last_error(), "No such file"));
	cr_assert_eq(rva_npy_load(tmpdir, &a), RVA_EIO);
	cr_assert_not_null(strstr(rva_last_error(), "directory"));
	write_file(tmp_path("empty.npy"), "", 0);
	cr_assert_eq(rva_npy_load(tmp_path("empty.npy"), &a), RVA_EFORMAT);
}

Test(npy, load_from_pipe) {
	float v[3] = {1, 2, 3};
	size_t shape[] = {3};
	cr_assert_eq(rva_npy_save(tmp_path("p.npy"), v, 1, shape), RVA_OK);
	const char *fifo = tmp_path("fifo");
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	pid_t pid = fork();
	if (pid == 0) {
		char cmd[600];
		snprintf(cmd, sizeof cmd, "cat '%s/p.npy' > '%s/fifo'", tmpdir, tmpdir);
		_exit(system(cmd) == 0 ? 0 : 1);
	}
	rva_npy_array a;
	rva_status st = rva_npy_load(fifo, &a);
	int wst;
	cr_assert_eq(waitpid(pid, &wst, 0), pid);
	cr_assert_eq(st, RVA_OK, "%s", rva_last_error());
	cr_assert_eq(a.count, 3);
	cr_assert_eq(a.data[2], 3.0f);
	rva_npy_free(&a);
}

Test(npy, save_is_atomic) {
	char p[512];
	snprintf(p, sizeof p, "%s", tmp_path("out.npy"));
	float v[4] = {1, 2, 3, 4};
	size_t s4[] = {4}, s2[] = {2, 2};
	cr_assert_eq(rva_npy_save(p, v, 1, s4), RVA_OK);
	/* Overwriting replaces the file whole. */
	cr_assert_eq(rva_npy_save(p, v, 2, s2), RVA_OK);
	rva_npy_array a;
	cr_assert_eq(rva_npy_load(p, &a), RVA_OK);
	cr_assert_eq(a.ndim, 2);
	rva_npy_free(&a);
	cr_assert_eq(dir_entries(), 1);
	/* A missing directory, a path naming a directory: RVA_EIO, nothing left behind. */
	cr_assert_eq(rva_npy_save(tmp_path("no/such/dir.npy"), v, 1, s4), RVA_EIO);
	cr_assert_eq(rva_npy_save(tmpdir, v, 1, s4), RVA_EIO);
	char slash[300];
	snprintf(slash, sizeof slash, "%s/", tmpdir);
	cr_assert_eq(rva_npy_save(slash, v, 1, s4), RVA_EIO);
	cr_assert_eq(mkdir(tmp_path("sub"), 0700), 0);
	cr_assert_eq(rva_npy_save(tmp_path("sub"), v, 1, s4), RVA_EIO); /* rename fails */
	cr_assert_eq(dir_entries(), 2, "a temporary file was left behind");
	rmdir(tmp_path("sub"));
	/* Relative path (current directory). */
	char cwd[512];
	cr_assert_not_null(getcwd(cwd, sizeof cwd));
	cr_assert_eq(chdir(tmpdir), 0);
	cr_assert_eq(rva_npy_save("rel.npy", v, 1, s4), RVA_OK);
	cr_assert_eq(chdir(cwd), 0);
	cr_assert_eq(dir_entries(), 2);
	/* Permissions follow the umask like any new file (not mkstemp's 0600). */
	struct stat sb;
	cr_assert_eq(stat(p, &sb), 0);
	mode_t um = umask(0);
	umask(um);
	cr_assert_eq(sb.st_mode & 0777, 0666 & ~um);
}

/* ---- allocation failures ---------------------------------------------------------------- */

Test(npy, allocation_failures) {
	double d[40];
	for (int i = 0; i < 40; i++)
		d[i] = i;
	buf b;
	make_npy(&b, 1, 0, "{'descr': '<f8', 'fortran_order': False, 'shape': (5, 8), }", d,
	         sizeof d);
	char p[512];
	snprintf(p, sizeof p, "%s", tmp_path("alloc.npy"));
	write_file(p, b.b, b.n);
	float v[4] = {1, 2, 3, 4};
	size_t s4[] = {4};
	cr_assert_eq(ref_fault_install(), RVA_OK);
	for (int k = 0; k < 8; k++) {
		rva_npy_array a;
		ref_fault_arm(k, true); /* k allocations allowed, then none */
		long base = ref_fault_live();
		rva_status st = rva_npy_parse(b.b, b.n, &a);
		cr_assert(st == RVA_OK || st == RVA_ENOMEM);
		if (st == RVA_OK)
			rva_npy_free(&a);
		cr_assert_eq(ref_fault_live(), base, "parse leaked with %d allocations allowed", k);
		ref_fault_arm(k, true);
		st = rva_npy_load(p, &a);
		cr_assert(st == RVA_OK || st == RVA_ENOMEM, "%s", rva_last_error());
		if (st == RVA_OK) {
			cr_assert_eq(a.data[39], 39.0f);
			rva_npy_free(&a);
		}
		cr_assert_eq(ref_fault_live(), base, "load leaked with %d allocations allowed", k);
		ref_fault_arm(k, true);
		st = rva_npy_save(tmp_path("s.npy"), v, 1, s4);
		cr_assert(st == RVA_OK || st == RVA_ENOMEM);
		cr_assert_eq(ref_fault_live(), base, "save leaked with %d allocations allowed", k);
		if (k == 0) {
			cr_assert_eq(st, RVA_ENOMEM);
			cr_assert_eq(access(tmp_path("s.npy"), F_OK), -1);
		}
	}
	ref_fault_uninstall();
}

/* ---- streams: pipes, FIFOs, character devices ------------------------------------------- */

/* Feeds n bytes of data into a new pipe from a child process, then (endless) zeros until
 * the reader goes away when `zeros` is set; returns the child and the read end. */
static pid_t feed_pipe(const void *data, size_t n, bool zeros, int *rfd) {
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		close(fds[0]);
		signal(SIGPIPE, SIG_DFL);
		const uint8_t *p = data;
		while (n > 0) {
			ssize_t w = write(fds[1], p, n);
			if (w <= 0)
				_exit(1);
			p += w;
			n -= (size_t)w;
		}
		static const uint8_t z[4096];
		while (zeros)
			if (write(fds[1], z, sizeof z) <= 0)
				_exit(0);
		_exit(0);
	}
	close(fds[1]);
	*rfd = fds[0];
	return pid;
}

/* Loads through /dev/fd/N of a pipe fed with data (then zeros when asked). */
static rva_status load_piped(const void *data, size_t n, bool zeros, rva_npy_array *a) {
	int rfd;
	pid_t pid = feed_pipe(data, n, zeros, &rfd);
	char path[64];
	snprintf(path, sizeof path, "/dev/fd/%d", rfd);
	rva_status st = rva_npy_load(path, a);
	close(rfd); /* the writer gets EPIPE/SIGPIPE and ends */
	int wst;
	cr_assert_eq(waitpid(pid, &wst, 0), pid);
	return st;
}

/* Largest single allocation while a hook is installed (bytes). */
static size_t biggest_alloc;

static void *max_alloc(size_t size, size_t align, void *user) {
	(void)user;
	if (size > biggest_alloc)
		biggest_alloc = size;
	return aligned_alloc(align, (size + align - 1) / align * align);
}

static void max_free(void *p, void *user) {
	(void)user;
	free(p);
}

/* An endless stream of zeros (a pipe, and /dev/zero itself) is refused after its first
 * bytes with a format error, without reading the stream into memory. */
Test(npy, endless_zero_stream_fails_fast) {
	rva_npy_array a;
	memset(&a, 0x5a, sizeof a);
	rva_status st = load_piped("", 0, true, &a);
	cr_assert_eq(st, RVA_EFORMAT, "%s", rva_last_error());
	cr_assert_not_null(strstr(rva_last_error(), "magic"), "%s", rva_last_error());
	cr_assert_eq(((unsigned char *)&a)[0], 0x5a, "output changed on failure");
	if (access("/dev/zero", R_OK) == 0) {
		cr_assert_eq(rva_npy_load("/dev/zero", &a), RVA_EFORMAT);
		cr_assert_not_null(strstr(rva_last_error(), "/dev/zero"), "%s", rva_last_error());
	}
	if (access("/dev/null", R_OK) == 0)
		cr_assert_eq(rva_npy_load("/dev/null", &a), RVA_EFORMAT);
}

/* A pipe carrying a good file followed by more bytes: exactly the declared data is read
 * (float64, converted, over several growth steps of the array); what follows is left. */
Test(npy, pipe_reads_exactly_the_declared_data) {
	size_t count = 200003;
	size_t shape[2] = {count, 1};
	char dict[128];
	snprintf(dict, sizeof dict, "{'descr': '<f8', 'fortran_order': False, 'shape': (%zu, 1), }",
	         shape[0]);
	size_t dl = strlen(dict), total = (10 + dl + 1 + 63) / 64 * 64;
	uint8_t *file = malloc(total + count * 8);
	memcpy(file, "\x93NUMPY\x01\x00", 8);
	file[8] = (uint8_t)(total - 10);
	file[9] = (uint8_t)((total - 10) >> 8);
	memcpy(file + 10, dict, dl);
	memset(file + 10 + dl, ' ', total - 10 - dl - 1);
	file[total - 1] = '\n';
	for (size_t i = 0; i < count; i++) {
		double d = (double)i * 0.5 - 7.0;
		memcpy(file + total + 8 * i, &d, 8);
	}
	rva_npy_array a;
	rva_status st = load_piped(file, total + count * 8, true, &a); /* zeros after the data */
	cr_assert_eq(st, RVA_OK, "%s", rva_last_error());
	cr_assert_eq(a.count, count);
	cr_assert_eq(a.ndim, 2);
	cr_assert_eq(a.shape[0], count);
	cr_assert(a.converted);
	for (size_t i = 0; i < count; i++)
		cr_assert_eq(a.data[i], (float)((double)i * 0.5 - 7.0), "element %zu", i);
	rva_npy_free(&a);
	free(file);
}

/* A header promising 2^40 floats over a stream that ends after 100: a format error, and
 * memory follows what arrived (no allocation of the promised size). */
Test(npy, pipe_short_of_its_promise) {
	buf b;
	float v[100];
	for (int i = 0; i < 100; i++)
		v[i] = (float)i;
	make_npy(&b, 1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }",
	         v, sizeof v);
	rva_allocator hook = {max_alloc, max_free, NULL};
	cr_assert_eq(rva_set_allocator(&hook), RVA_OK);
	biggest_alloc = 0;
	rva_npy_array a;
	rva_status st = load_piped(b.b, b.n, false, &a);
	rva_set_allocator(NULL);
	cr_assert_eq(st, RVA_EFORMAT, "%s", rva_last_error());
	cr_assert_not_null(strstr(rva_last_error(), "truncated"), "%s", rva_last_error());
	cr_assert_not_null(strstr(rva_last_error(), "400 bytes"), "%s", rva_last_error());
	cr_assert_leq(biggest_alloc, (size_t)1 << 20, "allocated %zu bytes for a 400-byte stream",
	              biggest_alloc);
}

/* Headers over a stream: cut short, or declaring more than the stream reader takes. */
Test(npy, pipe_header_limits) {
	buf b;
	float v[2] = {1, 2};
	make_npy(&b, 1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", v,
	         sizeof v);
	rva_npy_array a;
	cr_assert_eq(load_piped(b.b, 40, false, &a), RVA_EFORMAT); /* ends inside the header */
	cr_assert_not_null(strstr(rva_last_error(), "inside its header"), "%s", rva_last_error());
	cr_assert_eq(load_piped(b.b, b.n, false, &a), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(a.data[1], 2.0f);
	rva_npy_free(&a);
	/* version 2.0 declaring a 16 MiB header, followed by endless zeros */
	uint8_t big[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0, 0, 0, 1};
	cr_assert_eq(load_piped(big, sizeof big, true, &a), RVA_EFORMAT);
	cr_assert_not_null(strstr(rva_last_error(), "header length"), "%s", rva_last_error());
}

/* ---- where rva_npy_save writes: devices, FIFOs, descriptors, symlinks, modes ------------ */

static void save_small(const char *path) {
	float v[6] = {1, 2, 3, 4, 5, 6};
	size_t s[] = {2, 3};
	cr_assert_eq(rva_npy_save(path, v, 2, s), RVA_OK, "%s: %s", path, rva_last_error());
}

/* The file at path holds the array save_small writes. */
static void expect_small(const char *path) {
	rva_npy_array a;
	cr_assert_eq(rva_npy_load(path, &a), RVA_OK, "%s: %s", path, rva_last_error());
	cr_expect_eq(a.count, 6);
	cr_expect_eq(a.data[5], 6.0f);
	rva_npy_free(&a);
}

Test(npy, save_follows_symlinks_and_keeps_mode) {
	char target[512], link[512], chain[512];
	snprintf(target, sizeof target, "%s", tmp_path("target.npy"));
	snprintf(link, sizeof link, "%s", tmp_path("link.npy"));
	snprintf(chain, sizeof chain, "%s", tmp_path("chain.npy"));
	write_file(target, "old", 3);
	cr_assert_eq(chmod(target, 0600), 0);
	cr_assert_eq(symlink("target.npy", link), 0);
	cr_assert_eq(symlink(link, chain), 0);
	save_small(chain);
	struct stat st;
	cr_assert_eq(lstat(link, &st), 0);
	cr_expect(S_ISLNK(st.st_mode), "the link was replaced");
	cr_assert_eq(lstat(chain, &st), 0);
	cr_expect(S_ISLNK(st.st_mode), "the first link was replaced");
	cr_assert_eq(stat(target, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0600, "mode %o, want 600", st.st_mode & 07777);
	expect_small(target);
	/* a dangling link: its target is created */
	char dang[512];
	snprintf(dang, sizeof dang, "%s", tmp_path("dangling.npy"));
	cr_assert_eq(symlink("created.npy", dang), 0);
	save_small(dang);
	cr_assert_eq(lstat(dang, &st), 0);
	cr_expect(S_ISLNK(st.st_mode));
	expect_small(tmp_path("created.npy"));
	/* target, link, chain, dangling, created: no temporary file left */
	cr_expect_eq(dir_entries(), 5);
}

Test(npy, save_long_name_and_new_file_mode) {
	char name[251];
	memset(name, 'n', 246);
	memcpy(name + 246, ".npy", 5);
	mode_t old = umask(027);
	save_small(tmp_path(name));
	umask(old);
	struct stat st;
	cr_assert_eq(stat(tmp_path(name), &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0640, "new file under umask 027: %o", st.st_mode & 0777);
	expect_small(tmp_path(name));
	cr_expect_eq(dir_entries(), 1);
}

Test(npy, save_writes_fifos_devices_and_descriptors_in_place) {
	/* FIFO: a child reads it; the FIFO stays a FIFO */
	char fifo[512];
	snprintf(fifo, sizeof fifo, "%s", tmp_path("fifo"));
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	char got[512];
	snprintf(got, sizeof got, "%s", tmp_path("got.npy"));
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int in = open(fifo, O_RDONLY), out = open(got, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		char b[4096];
		ssize_t n;
		while (in >= 0 && out >= 0 && (n = read(in, b, sizeof b)) > 0)
			if (write(out, b, (size_t)n) != n)
				_exit(1);
		_exit(0);
	}
	save_small(fifo);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	struct stat st;
	cr_assert_eq(lstat(fifo, &st), 0);
	cr_expect(S_ISFIFO(st.st_mode), "the FIFO was replaced");
	expect_small(got);
	/* a descriptor path: written through the descriptor, the file not replaced */
	char fdfile[512], fdpath[64];
	snprintf(fdfile, sizeof fdfile, "%s", tmp_path("fd.npy"));
	int fd = open(fdfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert(fd >= 0);
	struct stat before;
	cr_assert_eq(fstat(fd, &before), 0);
	snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
	save_small(fdpath);
	close(fd);
	cr_assert_eq(stat(fdfile, &st), 0);
	cr_expect_eq(st.st_ino, before.st_ino, "the file behind the descriptor was replaced");
	expect_small(fdfile);
	/* a character device of our own (mknod needs root) stays one */
	char dev[512];
	snprintf(dev, sizeof dev, "%s", tmp_path("null"));
	if (mknod(dev, S_IFCHR | 0666, makedev(1, 3)) == 0) {
		save_small(dev);
		cr_assert_eq(lstat(dev, &st), 0);
		cr_expect(S_ISCHR(st.st_mode), "the device node was replaced");
	} else {
		cr_log_info("mknod refused (not root): device case skipped");
	}
	/* descriptors not open for writing are refused */
	cr_expect_eq(rva_npy_save("/proc/self/fd/999", (float[1]){0}, 1, (size_t[1]){1}), RVA_EIO);
	cr_expect(strstr(rva_last_error(), "descriptor 999 is not open for writing") != NULL, "%s",
	          rva_last_error());
}

/* ---- typed arrays: float16 and bfloat16 kept as such ------------------------------- */

/* fp32 -> bf16 by round to nearest even, written out independently of the library. */
static uint16_t bf16_rne(float f) {
	uint32_t u;
	memcpy(&u, &f, 4);
	return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

Test(npy, float16_kept_and_saved) {
	/* Every class of float16: normal, max, min subnormal, max subnormal, +-inf, -0. */
	uint16_t h[8] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x8000};
	size_t shape[2] = {2, 4};
	const char *p = tmp_path("h.npy");
	cr_assert_eq(rva_npy_save_as(p, h, RVA_F16, 2, shape), RVA_OK, "%s", rva_last_error());
	/* The file is a '<f2' array numpy reads, and the float32 reader converts it exactly. */
	rva_npy_array a;
	cr_assert_eq(rva_npy_load(p, &a), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(a.file.dtype, RVA_NPY_F16);
	cr_assert_str_eq(a.file.descr, "<f2");
	cr_assert_eq(a.data[2], 65504.0f);
	cr_assert_eq(a.data[3], 5.9604644775390625e-8f);
	rva_npy_free(&a);
	/* Read as fp16: the bits as stored, not converted. */
	rva_npy_typed t;
	cr_assert_eq(rva_npy_load_as(p, RVA_F16, &t), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(t.dtype, RVA_F16);
	cr_assert_eq(t.count, 8);
	cr_assert_eq(t.ndim, 2);
	cr_assert(!t.converted);
	cr_assert_eq(memcmp(t.data, h, sizeof h), 0);
	rva_npy_typed_free(&t);
	cr_assert_null(t.data);
	/* A float32 file read as fp16 is rounded to nearest even: 1 + 2^-11 is a tie -> 1,
	 * 1 + 3 * 2^-11 a tie -> 1 + 2^-9, 70000 overflows to inf. */
	float f[4] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 70000.0f, -0.5f};
	size_t s1 = 4;
	cr_assert_eq(rva_npy_save(p, f, 1, &s1), RVA_OK);
	cr_assert_eq(rva_npy_load_as(p, RVA_F16, &t), RVA_OK, "%s", rva_last_error());
	cr_assert(t.converted);
	const uint16_t *d = t.data;
	cr_assert_eq(d[0], 0x3c00);
	cr_assert_eq(d[1], 0x3c02);
	cr_assert_eq(d[2], 0x7c00);
	cr_assert_eq(d[3], 0xb800);
	rva_npy_typed_free(&t);
}

Test(npy, bfloat16_as_uint16) {
	uint16_t bits[5] = {0x3f80, 0xc020, 0x7f80, 0x0001, 0x8000}; /* 1, -2.5, inf, tiny, -0 */
	size_t s1 = 5;
	const char *p = tmp_path("b.npy");
	cr_assert_eq(rva_npy_save_as(p, bits, RVA_BF16, 1, &s1), RVA_OK, "%s",
	             rva_last_error());
	/* Stored as '<u2' (numpy has no bfloat16). */
	FILE *fp = fopen(p, "rb");
	cr_assert_not_null(fp);
	char hdr[64];
	cr_assert_eq(fread(hdr, 1, 64, fp), 64);
	fclose(fp);
	cr_assert_not_null(memmem(hdr, 64, "'descr': '<u2'", 14));
	rva_npy_typed t;
	cr_assert_eq(rva_npy_load_as(p, RVA_BF16, &t), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(t.file.dtype, RVA_NPY_U16);
	cr_assert(!t.converted);
	cr_assert_eq(memcmp(t.data, bits, sizeof bits), 0);
	rva_npy_typed_free(&t);
	/* uint16 is refused by every other reader: it is not a float. */
	rva_npy_array a;
	cr_assert_eq(rva_npy_load(p, &a), RVA_EFORMAT);
	cr_assert(strstr(rva_last_error(), "'<u2'") && strstr(rva_last_error(), "bfloat16"),
	          "%s", rva_last_error());
	cr_assert_eq(rva_npy_load_as(p, RVA_F16, &t), RVA_EFORMAT);
	cr_assert_eq(rva_npy_load_as(p, RVA_F32, &t), RVA_EFORMAT);
	/* Big-endian uint16 is byte-swapped. */
	uint8_t be[4] = {0x3f, 0x80, 0xc0, 0x20};
	buf b;
	make_npy(&b, 1, 0, "{'descr': '>u2', 'fortran_order': False, 'shape': (2,), }", be, 4);
	cr_assert_eq(rva_npy_parse_as(b.b, b.n, RVA_BF16, &t), RVA_OK, "%s", rva_last_error());
	cr_assert(t.converted);
	cr_assert_eq(((uint16_t *)t.data)[0], 0x3f80);
	cr_assert_eq(((uint16_t *)t.data)[1], 0xc020);
	rva_npy_typed_free(&t);
	cr_assert_eq(rva_npy_parse(b.b, b.n, &a), RVA_EFORMAT);
	/* float32 and float16 files read as bf16 are rounded to nearest even. */
	float f[4] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 3.14159265f, -1e-40f};
	s1 = 4;
	cr_assert_eq(rva_npy_save(p, f, 1, &s1), RVA_OK);
	cr_assert_eq(rva_npy_load_as(p, RVA_BF16, &t), RVA_OK, "%s", rva_last_error());
	for (int i = 0; i < 4; i++)
		cr_assert_eq(((uint16_t *)t.data)[i], bf16_rne(f[i]), "element %d", i);
	cr_assert_eq(((uint16_t *)t.data)[0], 0x3f80);
	cr_assert_eq(((uint16_t *)t.data)[1], 0x3f82);
	rva_npy_typed_free(&t);
	uint16_t h1 = 0x3555; /* fp16 0.333251953125 -> bf16 0x3eaa (0.33203125) */
	s1 = 1;
	cr_assert_eq(rva_npy_save_as(p, &h1, RVA_F16, 1, &s1), RVA_OK);
	cr_assert_eq(rva_npy_load_as(p, RVA_BF16, &t), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(((uint16_t *)t.data)[0], bf16_rne(0.333251953125f));
	rva_npy_typed_free(&t);
	/* fp32 read as fp32: the plain reader's data. */
	cr_assert_eq(rva_npy_save(p, f, 1, (size_t[]){4}), RVA_OK);
	cr_assert_eq(rva_npy_load_as(p, RVA_F32, &t), RVA_OK, "%s", rva_last_error());
	cr_assert_eq(memcmp(t.data, f, sizeof f), 0);
	cr_assert(!t.converted);
	rva_npy_typed_free(&t);
}

Test(npy, typed_refusals) {
	rva_npy_typed t;
	uint16_t h = 0;
	size_t s1 = 1;
	cr_assert_eq(rva_npy_load_as(NULL, RVA_F16, &t), RVA_ENULL);
	cr_assert_eq(rva_npy_load_as(tmp_path("x.npy"), RVA_F16, NULL), RVA_ENULL);
	cr_assert_eq(rva_npy_parse_as(NULL, 4, RVA_F16, &t), RVA_ENULL);
	cr_assert_eq(rva_npy_load_as(tmp_path("x.npy"), (rva_dtype)7, &t), RVA_EINVAL);
	cr_assert(strstr(rva_last_error(), "rva_dtype"), "%s", rva_last_error());
	cr_assert_eq(rva_npy_load_as(tmp_path("missing.npy"), RVA_F16, &t), RVA_EIO);
	cr_assert_eq(rva_npy_save_as(tmp_path("x.npy"), &h, (rva_dtype)3, 1, &s1), RVA_EINVAL);
	cr_assert_eq(rva_npy_save_as(tmp_path("x.npy"), NULL, RVA_F16, 1, &s1), RVA_ENULL);
	cr_assert_eq(rva_npy_typed_free(NULL), RVA_OK);
	cr_assert_eq(dir_entries(), 0); /* refused saves leave nothing behind */
	/* Other integer types stay refused, also for bf16. */
	uint8_t z[8] = {0};
	buf b;
	make_npy(&b, 1, 0, "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }", z, 4);
	cr_assert_eq(rva_npy_parse_as(b.b, b.n, RVA_BF16, &t), RVA_EFORMAT);
	make_npy(&b, 1, 0, "{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }", z, 4);
	cr_assert_eq(rva_npy_parse_as(b.b, b.n, RVA_BF16, &t), RVA_EFORMAT); /* truncated */
}

Test(npy, typed_allocation_failures) {
	float f[16];
	for (int i = 0; i < 16; i++)
		f[i] = (float)i / 3.0f;
	const char *p = tmp_path("a.npy");
	cr_assert_eq(rva_npy_save(p, f, 1, (size_t[]){16}), RVA_OK);
	cr_assert_eq(ref_fault_install(), RVA_OK);
	for (int k = 0;; k++) {
		ref_fault_arm(k, true); /* k allocations allowed, then none */
		long base = ref_fault_live();
		rva_npy_typed t;
		rva_status st = rva_npy_load_as(p, RVA_BF16, &t);
		ref_fault_disarm();
		if (st == RVA_OK) {
			rva_npy_typed_free(&t);
			break;
		}
		cr_assert_eq(st, RVA_ENOMEM, "failure %d: %s", k, rva_last_error());
		cr_assert_eq(ref_fault_live(), base, "load_as leaked with %d allocations allowed", k);
		cr_assert(k < 20);
	}
	ref_fault_uninstall();
}

/*
 * .npy reading and writing (see include/rvattn/npy.h for the format and the rules).
 *
 * The header parser works on a bounded byte range and never reads past it; every size
 * is computed with overflow checks before it is used. The file loader reads the header
 * first, checks the data size against the file size, then reads the data straight into
 * the float32 result (converting in chunks when the file is not little-endian float32),
 * so a file is never held twice in memory. A stream (no size) is read header first, then
 * exactly the declared data into an array that grows as the data arrives.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/internal.h"
#include "rvattn/outfile.h"
#include "rvattn/npy.h"
#include "kernels/half.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define HOST_BIG_ENDIAN 1
#else
#define HOST_BIG_ENDIAN 0
#endif

const char *rva_npy_dtype_name(rva_npy_dtype t) {
	switch (t) {
	case RVA_NPY_F32: return "float32";
	case RVA_NPY_F64: return "float64";
	case RVA_NPY_F16: return "float16";
	case RVA_NPY_U16: return "uint16";
	default: return "unknown";
	}
}

static size_t dtype_size(rva_npy_dtype t) {
	return t == RVA_NPY_F64 ? 8 : (t == RVA_NPY_F16 || t == RVA_NPY_U16) ? 2 : 4;
}

/* Copies up to n bytes of s into a printable, NUL-terminated form for messages
 * (non-printable bytes as \xNN, "..." when cut); cap >= 8. */
static void printable(char *dst, size_t cap, const uint8_t *s, size_t n) {
	size_t i = 0, j = 0;
	for (; i < n; i++) {
		char one[8];
		size_t k;
		if (s[i] >= 0x20 && s[i] < 0x7f) {
			one[0] = (char)s[i];
			k = 1;
		} else {
			k = (size_t)snprintf(one, sizeof one, "\\x%02x", s[i]);
		}
		if (j + k + 4 > cap)
			break;
		memcpy(dst + j, one, k);
		j += k;
	}
	if (i < n) {
		memcpy(dst + j, "...", 3);
		j += 3;
	}
	dst[j] = '\0';
}

/* ---- the header ---------------------------------------------------------------------- */

/* Magic, version and header length. On success *dict_start and *dict_len locate the
 * header dict; the caller checks that dict_start + dict_len fits its data. */
static rva_status parse_prefix(const char *what, const uint8_t *b, size_t len,
                               unsigned *major, unsigned *minor, size_t *dict_start,
                               size_t *dict_len) {
	if (len < NPY_MAGIC_LEN || memcmp(b, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
		return rva__fail(RVA_EFORMAT, "%s: not an .npy file (no \\x93NUMPY magic)", what);
	if (len < NPY_MAGIC_LEN + 2)
		return rva__fail(RVA_EFORMAT, "%s: .npy file cut short in its version bytes", what);
	*major = b[6];
	*minor = b[7];
	if (!((*major == 1 || *major == 2 || *major == 3) && *minor == 0))
		return rva__fail(RVA_EFORMAT, "%s: unsupported .npy format version %u.%u "
		                 "(1.0, 2.0 and 3.0 are known)", what, *major, *minor);
	if (*major == 1) {
		if (len < 10)
			return rva__fail(RVA_EFORMAT, "%s: .npy file cut short in its header length",
			                 what);
		*dict_len = (size_t)b[8] | (size_t)b[9] << 8;
		*dict_start = 10;
	} else {
		if (len < 12)
			return rva__fail(RVA_EFORMAT, "%s: .npy file cut short in its header length",
			                 what);
		*dict_len = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 |
		            (size_t)b[11] << 24;
		*dict_start = 12;
	}
	return RVA_OK;
}

typedef struct lexer {
	const uint8_t *p, *end;
	const char *what;
} lexer;

static void skip_ws(lexer *lx) {
	while (lx->p < lx->end &&
	       (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r'))
		lx->p++;
}

static rva_status malformed(lexer *lx, const char *expected) {
	char near[40];
	size_t left = (size_t)(lx->end - lx->p);
	if (left == 0)
		return rva__fail(RVA_EFORMAT, "%s: malformed .npy header: expected %s, found the "
		                 "end of the header", lx->what, expected);
	printable(near, sizeof near, lx->p, left < 16 ? left : 16);
	return rva__fail(RVA_EFORMAT, "%s: malformed .npy header: expected %s at \"%s\"",
	                 lx->what, expected, near);
}

/* A quoted Python string without escapes: s points into the header, n is its length. */
static rva_status lex_string(lexer *lx, const uint8_t **s, size_t *n) {
	if (lx->p >= lx->end || (*lx->p != '\'' && *lx->p != '"'))
		return malformed(lx, "a quoted string");
	uint8_t q = *lx->p++;
	const uint8_t *start = lx->p;
	while (lx->p < lx->end && *lx->p != q) {
		if (*lx->p == '\\' || *lx->p == '\n')
			return malformed(lx, "a plain string (no escapes or line breaks)");
		lx->p++;
	}
	if (lx->p >= lx->end)
		return malformed(lx, "the closing quote of a string");
	*s = start;
	*n = (size_t)(lx->p - start);
	lx->p++;
	return RVA_OK;
}

static bool is_ident(uint8_t c) {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (c >= '0' && c <= '9');
}

static rva_status lex_bool(lexer *lx, bool *v) {
	const uint8_t *s = lx->p;
	while (lx->p < lx->end && is_ident(*lx->p))
		lx->p++;
	size_t n = (size_t)(lx->p - s);
	if (n == 4 && memcmp(s, "True", 4) == 0) {
		*v = true;
		return RVA_OK;
	}
	if (n == 5 && memcmp(s, "False", 5) == 0) {
		*v = false;
		return RVA_OK;
	}
	lx->p = s;
	return malformed(lx, "True or False for 'fortran_order'");
}

/* A non-negative Python int (an old 'L' suffix accepted). */
static rva_status lex_dim(lexer *lx, size_t *v) {
	if (lx->p < lx->end && *lx->p == '-')
		return rva__fail(RVA_EFORMAT, "%s: malformed .npy header: negative dimension in "
		                 "'shape'", lx->what);
	if (lx->p >= lx->end || *lx->p < '0' || *lx->p > '9')
		return malformed(lx, "a dimension (a non-negative integer)");
	const uint8_t *start = lx->p;
	size_t x = 0;
	bool overflow = false;
	while (lx->p < lx->end && *lx->p >= '0' && *lx->p <= '9') {
		if (!rva__mul_ok(x, 10, &x) || !rva__add_ok(x, (size_t)(*lx->p - '0'), &x))
			overflow = true;
		lx->p++;
	}
	if (overflow) {
		char num[40];
		printable(num, sizeof num, start, (size_t)(lx->p - start));
		return rva__fail(RVA_EOVERFLOW, "%s: .npy shape dimension %s overflows size_t",
		                 lx->what, num);
	}
	if (lx->p < lx->end && (*lx->p == 'L' || *lx->p == 'l'))
		lx->p++;
	*v = x;
	return RVA_OK;
}

static rva_status lex_shape(lexer *lx, rva_npy_header *h) {
	if (lx->p < lx->end && *lx->p == '[')
		return rva__fail(RVA_EFORMAT, "%s: malformed .npy header: 'shape' is a list, "
		                 "not a tuple", lx->what);
	if (lx->p >= lx->end || *lx->p != '(')
		return malformed(lx, "a tuple '(' for 'shape'");
	lx->p++;
	size_t n = 0;
	bool comma_after_last = false;
	for (;;) {
		skip_ws(lx);
		if (lx->p < lx->end && *lx->p == ')') {
			lx->p++;
			break;
		}
		if (n == RVA_NPY_MAX_DIMS)
			return rva__fail(RVA_EFORMAT, "%s: .npy shape has more than %d dimensions",
			                 lx->what, RVA_NPY_MAX_DIMS);
		rva_status st = lex_dim(lx, &h->shape[n]);
		if (st != RVA_OK)
			return st;
		n++;
		skip_ws(lx);
		comma_after_last = false;
		if (lx->p < lx->end && *lx->p == ',') {
			lx->p++;
			comma_after_last = true;
			continue;
		}
		if (lx->p < lx->end && *lx->p == ')') {
			lx->p++;
			break;
		}
		return malformed(lx, "',' or ')' in 'shape'");
	}
	/* (3) is the int 3 in Python, not a tuple: a 1-tuple is written (3,). */
	if (n == 1 && !comma_after_last)
		return rva__fail(RVA_EFORMAT, "%s: malformed .npy header: 'shape' (%zu) is not a "
		                 "tuple (a 1-tuple is written (%zu,))", lx->what, h->shape[0],
		                 h->shape[0]);
	h->ndim = n;
	return RVA_OK;
}

static rva_status check_descr(const char *what, const uint8_t *s, size_t n,
                              rva_npy_header *h) {
	char shown[48];
	printable(shown, sizeof shown, s, n);
	bool order = n == 3 && (s[0] == '<' || s[0] == '>' || s[0] == '=');
	bool u2 = order && s[1] == 'u' && s[2] == '2';
	bool ok = u2 || (order && s[1] == 'f' && (s[2] == '4' || s[2] == '8' || s[2] == '2'));
	if (!ok)
		return rva__fail(RVA_EFORMAT, "%s: unsupported .npy dtype '%s' (float32 '<f4' is "
		                 "read as is; float64 '<f8' and float16 '<f2', and big-endian "
		                 "'>f4' '>f8' '>f2', are converted; uint16 '<u2' only as bfloat16 "
		                 "bits; nothing else)", what, shown);
	memcpy(h->descr, s, 3);
	h->descr[3] = '\0';
	h->big_endian = s[0] == '>' || (s[0] == '=' && HOST_BIG_ENDIAN);
	h->dtype = u2 ? RVA_NPY_U16 : s[2] == '4' ? RVA_NPY_F32 : s[2] == '8' ? RVA_NPY_F64
	                                                           : RVA_NPY_F16;
	return RVA_OK;
}

enum { KEY_DESCR = 1, KEY_FORTRAN = 2, KEY_SHAPE = 4 };

/* Parses the dict in [d, d + n) into h (descr, dtype, shape). */
static rva_status parse_dict(const char *what, const uint8_t *d, size_t n,
                             rva_npy_header *h) {
	lexer lx = {d, d + n, what};
	unsigned seen = 0;
	bool fortran = false;
	skip_ws(&lx);
	if (lx.p >= lx.end || *lx.p != '{')
		return malformed(&lx, "'{' starting the header dict");
	lx.p++;
	for (;;) {
		skip_ws(&lx);
		if (lx.p < lx.end && *lx.p == '}') {
			lx.p++;
			break;
		}
		const uint8_t *key;
		size_t klen;
		rva_status st = lex_string(&lx, &key, &klen);
		if (st != RVA_OK)
			return st;
		unsigned which = 0;
		if (klen == 5 && memcmp(key, "descr", 5) == 0)
			which = KEY_DESCR;
		else if (klen == 13 && memcmp(key, "fortran_order", 13) == 0)
			which = KEY_FORTRAN;
		else if (klen == 5 && memcmp(key, "shape", 5) == 0)
			which = KEY_SHAPE;
		char kshown[48];
		printable(kshown, sizeof kshown, key, klen);
		if (!which)
			return rva__fail(RVA_EFORMAT, "%s: malformed .npy header: unknown key '%s' "
			                 "(only 'descr', 'fortran_order', 'shape')", what, kshown);
		if (seen & which)
			return rva__fail(RVA_EFORMAT, "%s: malformed .npy header: key '%s' appears "
			                 "twice", what, kshown);
		seen |= which;
		skip_ws(&lx);
		if (lx.p >= lx.end || *lx.p != ':')
			return malformed(&lx, "':' after a key");
		lx.p++;
		skip_ws(&lx);
		if (which == KEY_DESCR) {
			if (lx.p < lx.end && *lx.p == '[')
				return rva__fail(RVA_EFORMAT, "%s: unsupported .npy dtype: a structured "
				                 "array (list 'descr'); only float arrays are read", what);
			const uint8_t *s;
			size_t sl;
			if ((st = lex_string(&lx, &s, &sl)) != RVA_OK)
				return st;
			if ((st = check_descr(what, s, sl, h)) != RVA_OK)
				return st;
		} else if (which == KEY_FORTRAN) {
			if ((st = lex_bool(&lx, &fortran)) != RVA_OK)
				return st;
			if (fortran)
				return rva__fail(RVA_EFORMAT, "%s: .npy array is in Fortran order "
				                 "(fortran_order True); only C order is read", what);
		} else {
			if ((st = lex_shape(&lx, h)) != RVA_OK)
				return st;
		}
		skip_ws(&lx);
		if (lx.p < lx.end && *lx.p == ',') {
			lx.p++;
			continue;
		}
		if (lx.p < lx.end && *lx.p == '}') {
			lx.p++;
			break;
		}
		return malformed(&lx, "',' or '}' after a value");
	}
	skip_ws(&lx);
	if (lx.p != lx.end)
		return malformed(&lx, "only padding after the header dict");
	if (seen != (KEY_DESCR | KEY_FORTRAN | KEY_SHAPE))
		return rva__fail(RVA_EFORMAT, "%s: malformed .npy header: missing key%s%s%s", what,
		                 seen & KEY_DESCR ? "" : " 'descr'",
		                 seen & KEY_FORTRAN ? "" : " 'fortran_order'",
		                 seen & KEY_SHAPE ? "" : " 'shape'");
	return RVA_OK;
}

/* Element count, byte size, data offset; all overflow-checked. */
static rva_status finish_header(const char *what, rva_npy_header *h, size_t data_offset) {
	size_t count = 1;
	for (size_t i = 0; i < h->ndim; i++) {
		if (!rva__mul_ok(count, h->shape[i], &count)) {
			/* A zero dimension later makes the product 0: not an overflow. */
			bool zero = false;
			for (size_t j = i; j < h->ndim; j++)
				zero |= h->shape[j] == 0;
			if (zero) {
				count = 0;
				break;
			}
			return rva__fail(RVA_EOVERFLOW, "%s: .npy shape's element count overflows "
			                 "size_t", what);
		}
	}
	size_t bytes, total;
	if (!rva__mul_ok(count, dtype_size(h->dtype), &bytes) ||
	    !rva__add_ok(bytes, data_offset, &total))
		return rva__fail(RVA_EOVERFLOW, "%s: .npy data size (%zu elements of %zu bytes) "
		                 "overflows size_t", what, count, dtype_size(h->dtype));
	h->count = count;
	h->data_bytes = bytes;
	h->data_offset = data_offset;
	return RVA_OK;
}

/* u16: whether a uint16 ('u2') array is wanted (as bfloat16 bits, rva_npy_load_as);
 * every float32 entry point refuses it. */
static rva_status parse_header_named(const char *what, const void *buf, size_t len,
                                     rva_npy_header *out, bool u16) {
	const uint8_t *b = buf;
	rva_npy_header h;
	memset(&h, 0, sizeof h);
	size_t dstart = 0, dlen = 0, dend;
	rva_status st = parse_prefix(what, b, len, &h.version_major, &h.version_minor, &dstart,
	                             &dlen);
	if (st != RVA_OK)
		return st;
	if (!rva__add_ok(dstart, dlen, &dend) || dend > len)
		return rva__fail(RVA_EFORMAT, "%s: .npy header length %zu goes beyond the end of "
		                 "the data (%zu bytes)", what, dlen, len);
	if ((st = parse_dict(what, b + dstart, dlen, &h)) != RVA_OK)
		return st;
	if ((st = finish_header(what, &h, dend)) != RVA_OK)
		return st;
	if (h.dtype == RVA_NPY_U16 && !u16)
		return rva__fail(RVA_EFORMAT, "%s: unsupported .npy dtype '%s' for a float32 read: "
		                 "uint16 is read only as bfloat16 bits (rva_npy_load_as with "
		                 "RVA_BF16)", what, h.descr);
	*out = h;
	return RVA_OK;
}

rva_status rva_npy_parse_header(const void *buf, size_t len, rva_npy_header *out) {
	if (!out || (!buf && len > 0))
		return rva__fail(RVA_ENULL, "rva_npy_parse_header: %s is NULL", out ? "buf" : "out");
	return parse_header_named("npy buffer", buf ? buf : "", len, out, false);
}

/* ---- conversion ----------------------------------------------------------------------- */

static float half_to_float(uint16_t x) {
	uint32_t sign = (uint32_t)(x & 0x8000u) << 16;
	uint32_t e = (x >> 10) & 0x1fu, m = x & 0x3ffu, bits;
	if (e == 0) {
		float v = ldexpf((float)m, -24); /* zero or subnormal: exact */
		return sign ? -v : v;
	}
	if (e == 31)
		bits = sign | 0x7f800000u | (m << 13); /* inf, or NaN keeping its payload */
	else
		bits = sign | ((e + 112) << 23) | (m << 13);
	float f;
	memcpy(&f, &bits, sizeof f);
	return f;
}

/* The inverse of half_to_float, bit for bit: a float16 value widened by it narrows back
 * exactly, NaN payloads included (a rounding conversion would quiet a signalling NaN). */
static uint16_t half_bits_of_widened(float f) {
	uint32_t b;
	memcpy(&b, &f, sizeof b);
	if ((b & 0x7f800000u) == 0x7f800000u && (b & 0x7fffffu))
		return (uint16_t)(((b >> 16) & 0x8000u) | 0x7c00u | ((b >> 13) & 0x3ffu));
	return rva__f32_to_f16(f);
}

/* Converts n elements of h's dtype at src (any alignment) to float32 at dst; counts
 * finite float64 values that overflow float32. */
static void convert(const rva_npy_header *h, const uint8_t *src, size_t n, float *dst,
                    size_t *overflowed) {
	bool swap = h->big_endian != HOST_BIG_ENDIAN;
	switch (h->dtype) {
	case RVA_NPY_F32:
		if (!swap) {
			memcpy(dst, src, n * sizeof(float));
			return;
		}
		for (size_t i = 0; i < n; i++) {
			uint32_t u;
			memcpy(&u, src + 4 * i, 4);
			u = __builtin_bswap32(u);
			memcpy(&dst[i], &u, 4);
		}
		return;
	case RVA_NPY_F64:
		for (size_t i = 0; i < n; i++) {
			uint64_t u;
			double d;
			memcpy(&u, src + 8 * i, 8);
			if (swap)
				u = __builtin_bswap64(u);
			memcpy(&d, &u, 8);
			float f = (float)d;
			if (isinf(f) && isfinite(d))
				(*overflowed)++;
			dst[i] = f;
		}
		return;
	case RVA_NPY_F16:
	case RVA_NPY_U16:
		for (size_t i = 0; i < n; i++) {
			uint16_t u;
			memcpy(&u, src + 2 * i, 2);
			if (swap)
				u = __builtin_bswap16(u);
			/* uint16: the value itself (exact in float32), turned back into bits by
			 * rva_npy_load_as */
			dst[i] = h->dtype == RVA_NPY_F16 ? half_to_float(u) : (float)u;
		}
		return;
	default:
		return;
	}
}

static void fill_array(rva_npy_array *a, const rva_npy_header *h, float *data,
                       size_t overflowed) {
	memset(a, 0, sizeof *a);
	a->data = data;
	a->ndim = h->ndim;
	memcpy(a->shape, h->shape, sizeof a->shape);
	a->count = h->count;
	a->file = *h;
	a->converted = h->dtype != RVA_NPY_F32 || h->big_endian != HOST_BIG_ENDIAN;
	a->overflowed = overflowed;
}

static rva_status check_size(const char *what, const rva_npy_header *h, size_t len,
                             const char *unit) {
	size_t have = len - h->data_offset; /* data_offset <= len (checked by the parser) */
	if (have < h->data_bytes)
		return rva__fail(RVA_EFORMAT, "%s: truncated .npy data: the header says %zu "
		                 "elements (%zu bytes), the %s has %zu bytes after the header",
		                 what, h->count, h->data_bytes, unit, have);
	if (have > h->data_bytes)
		return rva__fail(RVA_EFORMAT, "%s: %zu unexpected bytes after the .npy data "
		                 "(%zu elements, %zu bytes; several arrays in one file are not "
		                 "read)", what, have - h->data_bytes, h->count, h->data_bytes);
	return RVA_OK;
}

static rva_status parse_any(const void *buf, size_t len, rva_npy_array *out, bool u16) {
	const char *what = "npy buffer";
	rva_npy_header h;
	rva_status st = parse_header_named(what, buf ? buf : "", len, &h, u16);
	if (st != RVA_OK)
		return st;
	if ((st = check_size(what, &h, len, "buffer")) != RVA_OK)
		return st;
	float *data;
	if ((st = rva__alloc_array((void **)&data, h.count, sizeof(float), "npy array")) !=
	    RVA_OK)
		return st;
	size_t overflowed = 0;
	convert(&h, (const uint8_t *)buf + h.data_offset, h.count, data, &overflowed);
	fill_array(out, &h, data, overflowed);
	return RVA_OK;
}

rva_status rva_npy_parse(const void *buf, size_t len, rva_npy_array *out) {
	if (!out || (!buf && len > 0))
		return rva__fail(RVA_ENULL, "rva_npy_parse: %s is NULL", out ? "buf" : "out");
	return parse_any(buf, len, out, false);
}

rva_status rva_npy_free(rva_npy_array *a) {
	if (!a)
		return RVA_OK;
	rva__free(a->data);
	memset(a, 0, sizeof *a);
	return RVA_OK;
}

/* ---- loading from a file -------------------------------------------------------------- */

/* Reads up to n bytes; *got is what was read before EOF. Returns 0 or an errno. */
static int read_full(int fd, void *buf, size_t n, size_t *got) {
	size_t done = 0;
	while (done < n) {
		ssize_t r = read(fd, (char *)buf + done, n - done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			*got = done;
			return errno;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	*got = done;
	return 0;
}

static rva_status io_fail(const char *path, const char *doing, int err) {
	return rva__fail(RVA_EIO, "%s: cannot %s: %s", path, doing, strerror(err));
}

/* Most header bytes read from a stream (a pipe, FIFO, /dev/stdin, a character device):
 * the header is read before anything is known about the stream, so its declared length
 * must not make the reader buffer gigabytes of padding. numpy writes headers of a few
 * hundred bytes (32 dimensions fit in ~1 KiB). */
#define NPY_STREAM_HEADER_MAX ((size_t)1 << 20)
/* First capacity of the array read from a stream (elements), doubled as data arrives. */
#define NPY_STREAM_FIRST_ELEMS ((size_t)1 << 16)

/* Reads the first 12 bytes of fd into pre (*got of them) and parses the magic, version
 * and header length: *dend is the offset of the data (SIZE_MAX when it overflows, so any
 * limit the caller checks refuses it), *dlen the header length. */
static rva_status read_prefix(int fd, const char *path, uint8_t pre[12], size_t *got,
                              size_t *dlen, size_t *dend) {
	int err = read_full(fd, pre, 12, got);
	if (err)
		return io_fail(path, "read", err);
	unsigned major, minor;
	size_t dstart = 0;
	*dlen = 0;
	rva_status st = parse_prefix(path, pre, *got, &major, &minor, &dstart, dlen);
	if (st == RVA_OK && !rva__add_ok(dstart, *dlen, dend))
		*dend = SIZE_MAX;
	return st;
}

/*
 * Not a regular file: the size is unknown. Reads the magic and the header first (so
 * /dev/zero or a text stream fails after 12 bytes), then exactly the data bytes the header
 * declares, into an array that grows with the data actually received (a header promising
 * terabytes over a short stream costs what the stream held). Bytes after the declared
 * data are left unread: a stream has no end to check without blocking on its writer.
 */
static rva_status load_stream(int fd, const char *path, rva_npy_array *out, bool u16) {
	uint8_t pre[12];
	size_t got, dlen, dend = 0;
	rva_status st = read_prefix(fd, path, pre, &got, &dlen, &dend);
	if (st != RVA_OK)
		return st;
	int err;
	if (dend > NPY_STREAM_HEADER_MAX)
		return rva__fail(RVA_EFORMAT, "%s: .npy header length %zu exceeds the %zu bytes "
		                 "read from a stream", path, dlen, NPY_STREAM_HEADER_MAX);
	size_t hcap = rva__max(dend, sizeof pre);
	uint8_t *hbuf = rva__malloc(hcap);
	if (!hbuf)
		return rva__fail(RVA_ENOMEM, "%s: cannot allocate %zu bytes for the header", path,
		                 hcap);
	memcpy(hbuf, pre, got);
	if (got < dend) {
		size_t more;
		err = read_full(fd, hbuf + got, dend - got, &more);
		if (err || more != dend - got) {
			rva__free(hbuf);
			return err ? io_fail(path, "read", err)
			           : rva__fail(RVA_EFORMAT, "%s: .npy stream ended inside its header "
			                       "(%zu of %zu bytes)", path, got + more, dend);
		}
	}
	rva_npy_header h;
	st = parse_header_named(path, hbuf, dend, &h, u16);
	/* A header shorter than the 12 bytes read first leaves data bytes in pre. */
	size_t early = got > dend ? got - dend : 0;
	uint8_t early_bytes[12];
	memcpy(early_bytes, hbuf + dend, early);
	rva__free(hbuf);
	if (st != RVA_OK)
		return st;

	size_t esz = dtype_size(h.dtype), cap = rva__min(h.count, NPY_STREAM_FIRST_ELEMS);
	float *data;
	if ((st = rva__alloc_array((void **)&data, cap ? cap : 1, sizeof(float), path)) != RVA_OK)
		return st;
	enum { CHUNK = 1 << 16 };
	uint8_t *chunk = rva__malloc(CHUNK);
	if (!chunk) {
		rva__free(data);
		return rva__fail(RVA_ENOMEM, "%s: cannot allocate a read buffer", path);
	}
	size_t per = CHUNK / esz, done = 0, overflowed = 0;
	while (st == RVA_OK && done < h.count) {
		if (done == cap) {
			size_t ncap = cap > h.count / 2 ? h.count : 2 * cap;
			float *nd;
			if ((st = rva__alloc_array((void **)&nd, ncap, sizeof(float), path)) != RVA_OK)
				break;
			memcpy(nd, data, done * sizeof(float));
			rva__free(data);
			data = nd;
			cap = ncap;
		}
		size_t n = rva__min(per, cap - done), want = n * esz, have = 0;
		if (early) { /* at most 2 bytes: less than one element, so n * esz > early */
			memcpy(chunk, early_bytes, early);
			have = early;
			early = 0;
		}
		size_t more;
		err = read_full(fd, chunk + have, want - have, &more);
		if (err) {
			st = io_fail(path, "read", err);
			break;
		}
		if (have + more != want) {
			size_t bytes = done * esz + have + more;
			st = rva__fail(RVA_EFORMAT, "%s: truncated .npy data: the header says %zu "
			               "elements (%zu bytes), the stream ended after %zu bytes of data",
			               path, h.count, h.data_bytes, bytes);
			break;
		}
		convert(&h, chunk, n, data + done, &overflowed);
		done += n;
	}
	rva__free(chunk);
	if (st != RVA_OK) {
		rva__free(data);
		return st;
	}
	fill_array(out, &h, data, overflowed);
	return RVA_OK;
}

static rva_status load_fd(int fd, const char *path, rva_npy_array *out, bool u16) {
	struct stat sb;
	if (fstat(fd, &sb) != 0)
		return io_fail(path, "stat", errno);
	if (S_ISDIR(sb.st_mode))
		return rva__fail(RVA_EIO, "%s: is a directory, not an .npy file", path);
	if (!S_ISREG(sb.st_mode))
		return load_stream(fd, path, out, u16);
	if (sb.st_size < 0 || (uintmax_t)sb.st_size > SIZE_MAX)
		return rva__fail(RVA_EOVERFLOW, "%s: file too large for this machine", path);
	size_t fsize = (size_t)sb.st_size;

	uint8_t pre[12];
	size_t got, dlen, dend = 0;
	rva_status st = read_prefix(fd, path, pre, &got, &dlen, &dend);
	if (st != RVA_OK)
		return st;
	int err;
	if (dend > fsize)
		return rva__fail(RVA_EFORMAT, "%s: .npy header length %zu goes beyond the end of "
		                 "the file (%zu bytes)", path, dlen, fsize);
	uint8_t *hbuf = rva__malloc(dend);
	if (!hbuf)
		return rva__fail(RVA_ENOMEM, "%s: cannot allocate %zu bytes for the header", path,
		                 dend);
	memcpy(hbuf, pre, got < dend ? got : dend);
	if (got < dend) {
		size_t more;
		err = read_full(fd, hbuf + got, dend - got, &more);
		if (err || more != dend - got) {
			rva__free(hbuf);
			return err ? io_fail(path, "read", err)
			           : rva__fail(RVA_EFORMAT, "%s: file shrank while being read", path);
		}
	}
	rva_npy_header h;
	st = parse_header_named(path, hbuf, dend, &h, u16);
	rva__free(hbuf);
	if (st != RVA_OK)
		return st;
	if ((st = check_size(path, &h, fsize, "file")) != RVA_OK)
		return st;
	/* The header buffer may have read into the data when it is shorter than 12 bytes. */
	if (got > dend && lseek(fd, (off_t)dend, SEEK_SET) < 0)
		return io_fail(path, "seek", errno);

	float *data;
	if ((st = rva__alloc_array((void **)&data, h.count, sizeof(float), path)) != RVA_OK)
		return st;
	size_t overflowed = 0;
	bool direct = h.dtype == RVA_NPY_F32 && h.big_endian == HOST_BIG_ENDIAN;
	if (direct) {
		err = read_full(fd, data, h.data_bytes, &got);
		if (!err && got != h.data_bytes)
			st = rva__fail(RVA_EFORMAT, "%s: file shrank while being read", path);
	} else {
		enum { CHUNK = 1 << 16 };
		uint8_t *chunk = rva__malloc(CHUNK);
		if (!chunk) {
			rva__free(data);
			return rva__fail(RVA_ENOMEM, "%s: cannot allocate a read buffer", path);
		}
		size_t esz = dtype_size(h.dtype), per = CHUNK / esz, done = 0;
		while (!err && st == RVA_OK && done < h.count) {
			size_t n = rva__min(per, h.count - done);
			err = read_full(fd, chunk, n * esz, &got);
			if (!err && got != n * esz)
				st = rva__fail(RVA_EFORMAT, "%s: file shrank while being read", path);
			else if (!err)
				convert(&h, chunk, n, data + done, &overflowed);
			done += n;
		}
		rva__free(chunk);
	}
	if (err)
		st = io_fail(path, "read", err);
	if (st != RVA_OK) {
		rva__free(data);
		return st;
	}
	fill_array(out, &h, data, overflowed);
	return RVA_OK;
}

static rva_status load_any(const char *path, rva_npy_array *out, bool u16) {
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return io_fail(path, "open", errno);
	rva_status st = load_fd(fd, path, out, u16);
	close(fd);
	return st;
}

rva_status rva_npy_load(const char *path, rva_npy_array *out) {
	if (!path || !out)
		return rva__fail(RVA_ENULL, "rva_npy_load: %s is NULL", path ? "out" : "path");
	return load_any(path, out, false);
}

/* ---- typed arrays (float32, bfloat16, float16 kept as such) ---------------------------- */

static bool typed_dtype_ok(const char *fn, rva_dtype t, rva_status *st) {
	if (t == RVA_F32 || t == RVA_BF16 || t == RVA_F16)
		return true;
	*st = rva__fail(RVA_EINVAL, "%s: element type %d is not an rva_dtype (RVA_F32, "
	                "RVA_BF16, RVA_F16)", fn, (int)t);
	return false;
}

/* Turns the float32 array f (read with uint16 allowed when want is bf16) into *out of
 * type want; f's data is consumed (freed or moved) on success and on failure. */
static rva_status to_typed(rva_npy_array *f, rva_dtype want, const char *what,
                           rva_npy_typed *out) {
	rva_npy_typed t;
	memset(&t, 0, sizeof t);
	t.dtype = want;
	t.ndim = f->ndim;
	memcpy(t.shape, f->shape, sizeof t.shape);
	t.count = f->count;
	t.file = f->file;
	t.overflowed = f->overflowed;
	if (want == RVA_F32) {
		t.data = f->data;
		t.converted = f->converted;
		f->data = NULL;
		*out = t;
		return RVA_OK;
	}
	uint16_t *d;
	rva_status st = rva__alloc_array((void **)&d, f->count ? f->count : 1, 2, what);
	if (st != RVA_OK) {
		rva_npy_free(f);
		return st;
	}
	if (f->file.dtype == RVA_NPY_U16) { /* bf16 bits, as stored */
		for (size_t i = 0; i < f->count; i++)
			d[i] = (uint16_t)f->data[i];
		t.converted = f->file.big_endian != HOST_BIG_ENDIAN;
	} else if (want == RVA_F16 && f->file.dtype == RVA_NPY_F16) { /* the file's own bits */
		for (size_t i = 0; i < f->count; i++)
			d[i] = half_bits_of_widened(f->data[i]);
		t.converted = f->file.big_endian != HOST_BIG_ENDIAN;
	} else {
		rva__cvt_from_f32(want, f->data, d, f->count);
		t.converted = true;
	}
	rva_npy_free(f);
	t.data = d;
	*out = t;
	return RVA_OK;
}

rva_status rva_npy_parse_as(const void *buf, size_t len, rva_dtype dtype,
                            rva_npy_typed *out) {
	if (!out || (!buf && len > 0))
		return rva__fail(RVA_ENULL, "rva_npy_parse_as: %s is NULL", out ? "buf" : "out");
	rva_status st;
	if (!typed_dtype_ok("rva_npy_parse_as", dtype, &st))
		return st;
	rva_npy_array f;
	if ((st = parse_any(buf, len, &f, dtype == RVA_BF16)) != RVA_OK)
		return st;
	return to_typed(&f, dtype, "npy array", out);
}

rva_status rva_npy_load_as(const char *path, rva_dtype dtype, rva_npy_typed *out) {
	if (!path || !out)
		return rva__fail(RVA_ENULL, "rva_npy_load_as: %s is NULL", path ? "out" : "path");
	rva_status st;
	if (!typed_dtype_ok("rva_npy_load_as", dtype, &st))
		return st;
	rva_npy_array f;
	if ((st = load_any(path, &f, dtype == RVA_BF16)) != RVA_OK)
		return st;
	return to_typed(&f, dtype, path, out);
}

rva_status rva_npy_typed_free(rva_npy_typed *a) {
	if (!a)
		return RVA_OK;
	rva__free(a->data);
	memset(a, 0, sizeof *a);
	return RVA_OK;
}

/* ---- writing -------------------------------------------------------------------------- */

/* The header of a C-order array of elements descr ("<f4", "<f2", "<u2") of esz bytes. */
static rva_status header_write(const char *descr, size_t esz, size_t ndim,
                               const size_t *shape, unsigned version, void *buf, size_t cap,
                               size_t *len) {
	if (!len || (!shape && ndim > 0))
		return rva__fail(RVA_ENULL, "rva_npy_header_write: %s is NULL",
		                 len ? "shape" : "len");
	if (version > 3)
		return rva__fail(RVA_EINVAL, "rva_npy_header_write: version %u (0 = auto, 1, 2, 3)",
		                 version);
	if (ndim > RVA_NPY_MAX_DIMS)
		return rva__fail(RVA_EINVAL, "rva_npy_header_write: %zu dimensions, at most %d",
		                 ndim, RVA_NPY_MAX_DIMS);
	size_t count = 1, bytes;
	bool zero = false;
	for (size_t i = 0; i < ndim; i++)
		zero |= shape[i] == 0;
	for (size_t i = 0; i < ndim && !zero; i++)
		if (!rva__mul_ok(count, shape[i], &count))
			return rva__fail(RVA_EOVERFLOW, "rva_npy_header_write: the shape's element "
			                 "count overflows size_t");
	if (!zero && !rva__mul_ok(count, esz, &bytes))
		return rva__fail(RVA_EOVERFLOW, "rva_npy_header_write: the shape's byte size "
		                 "overflows size_t");

	/* The dict as NumPy writes it; at most ~60 + 32 * 22 characters. */
	char dict[1024];
	size_t n = (size_t)snprintf(dict, sizeof dict,
	                            "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
	for (size_t i = 0; i < ndim; i++)
		n += (size_t)snprintf(dict + n, sizeof dict - n, "%s%zu", i ? ", " : "", shape[i]);
	n += (size_t)snprintf(dict + n, sizeof dict - n, "%s), }", ndim == 1 ? "," : "");

	unsigned v = version ? version : 1;
	size_t prefix = v == 1 ? 10 : 12;
	size_t total = rva__round_up(prefix + n + 1, NPY_ALIGN); /* +1: the '\n' */
	if (v == 1 && total - prefix > 65535) {
		if (version == 1)
			return rva__fail(RVA_EOVERFLOW, "rva_npy_header_write: header of %zu bytes "
			                 "does not fit format 1.0", total - prefix);
		v = 2;
		prefix = 12;
		total = rva__round_up(prefix + n + 1, NPY_ALIGN);
	}
	*len = total;
	if (!buf && cap == 0)
		return RVA_OK;
	if (!buf)
		return rva__fail(RVA_ENULL, "rva_npy_header_write: buf is NULL");
	if (cap < total)
		return rva__fail(RVA_ERANGE, "rva_npy_header_write: %zu bytes needed, buffer has "
		                 "%zu", total, cap);
	uint8_t *b = buf;
	memcpy(b, NPY_MAGIC, NPY_MAGIC_LEN);
	b[6] = (uint8_t)v;
	b[7] = 0;
	size_t hl = total - prefix;
	b[8] = (uint8_t)(hl & 0xff);
	b[9] = (uint8_t)(hl >> 8 & 0xff);
	if (v != 1) {
		b[10] = (uint8_t)(hl >> 16 & 0xff);
		b[11] = (uint8_t)(hl >> 24 & 0xff);
	}
	memcpy(b + prefix, dict, n);
	memset(b + prefix + n, ' ', total - prefix - n - 1);
	b[total - 1] = '\n';
	return RVA_OK;
}

rva_status rva_npy_header_write(size_t ndim, const size_t *shape, unsigned version,
                                void *buf, size_t cap, size_t *len) {
	return header_write("<f4", sizeof(float), ndim, shape, version, buf, cap, len);
}

static int write_full(int fd, const void *buf, size_t n) {
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n < ((size_t)1 << 30) ? n : ((size_t)1 << 30));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (w == 0)
			return EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* count 16-bit elements, little-endian. */
static int write_data16(int fd, const uint16_t *data, size_t count) {
	if (!HOST_BIG_ENDIAN)
		return write_full(fd, data, count * 2);
	uint16_t chunk[4096];
	for (size_t done = 0; done < count;) {
		size_t n = rva__min(4096, count - done);
		for (size_t i = 0; i < n; i++)
			chunk[i] = __builtin_bswap16(data[done + i]);
		int err = write_full(fd, chunk, n * 2);
		if (err)
			return err;
		done += n;
	}
	return 0;
}

static int write_data(int fd, const float *data, size_t count) {
	if (!HOST_BIG_ENDIAN)
		return write_full(fd, data, count * sizeof(float));
	uint32_t chunk[4096];
	for (size_t done = 0; done < count;) {
		size_t n = rva__min(4096, count - done);
		for (size_t i = 0; i < n; i++) {
			uint32_t u;
			memcpy(&u, &data[done + i], 4);
			chunk[i] = __builtin_bswap32(u);
		}
		int err = write_full(fd, chunk, n * 4);
		if (err)
			return err;
		done += n;
	}
	return 0;
}


static rva_status save_typed(const char *path, const void *data, rva_dtype dtype,
                             size_t ndim, const size_t *shape, unsigned version) {
	if (!path || (!shape && ndim > 0))
		return rva__fail(RVA_ENULL, "rva_npy_save: %s is NULL", path ? "shape" : "path");
	uint8_t hdr[1024];
	size_t hlen;
	const char *descr = dtype == RVA_F32 ? "<f4" : dtype == RVA_F16 ? "<f2" : "<u2";
	rva_status st = header_write(descr, rva__dtype_size(dtype), ndim, shape, version, hdr,
	                             sizeof hdr, &hlen);
	if (st != RVA_OK)
		return st;
	size_t count = 1;
	for (size_t i = 0; i < ndim; i++)
		count *= shape[i]; /* checked by rva_npy_header_write */
	if (!data && count > 0)
		return rva__fail(RVA_ENULL, "rva_npy_save: data is NULL for %zu elements", count);

	/* The output rules (include/rvattn/outfile.h): in place for descriptors, devices and
	 * FIFOs; a temporary file in the target's directory, renamed over it, for regular files. */
	rva_outfile *o;
	if ((st = rva_outfile_open(path, &o)) != RVA_OK)
		return st;
	st = rva_outfile_write(o, hdr, hlen);
	rva_outfile_desc d;
	if (st == RVA_OK)
		st = rva_outfile_describe(o, &d);
	int err = st != RVA_OK ? 0 : dtype == RVA_F32 ? write_data(d.fd, data, count)
	                                              : write_data16(d.fd, data, count);
	if (err)
		st = rva__fail(RVA_EIO, "%s: cannot write: %s", path, strerror(err));
	if (st != RVA_OK) {
		rva_outfile_abort(o);
		return st;
	}
	return rva_outfile_commit(o);
}

rva_status rva_npy_save_ex(const char *path, const float *data, size_t ndim,
                           const size_t *shape, unsigned version) {
	return save_typed(path, data, RVA_F32, ndim, shape, version);
}

rva_status rva_npy_save_as(const char *path, const void *data, rva_dtype dtype,
                           size_t ndim, const size_t *shape) {
	rva_status st;
	if (!typed_dtype_ok("rva_npy_save_as", dtype, &st))
		return st;
	return save_typed(path, data, dtype, ndim, shape, 0);
}

rva_status rva_npy_save(const char *path, const float *data, size_t ndim,
                        const size_t *shape) {
	return rva_npy_save_ex(path, data, ndim, shape, 0);
}

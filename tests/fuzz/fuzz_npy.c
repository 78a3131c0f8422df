/*
 * libFuzzer target: the .npy parser (rva_npy_parse_header, rva_npy_parse) on arbitrary
 * bytes. Besides "no crash, no out-of-bounds read, no leak", it checks what npy.h
 * promises: a parsed header is consistent (count is the product of the shape, the data
 * follows the header inside the buffer, the sizes match the dtype), rva_npy_parse succeeds
 * exactly when the header parses and the buffer holds exactly the data, little-endian
 * float32 data is copied bit for bit, and a parsed array written back with
 * rva_npy_header_write parses to the same shape and bits. rva_npy_parse_as (each
 * rva_dtype) fails or succeeds as rva_npy_parse does, except that RVA_BF16 also takes
 * uint16 files, whose bits (like a little-endian float16 file's read as RVA_F16) are kept.
 */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
	(void)argc;
	(void)argv;
	fuzz_install_allocator();
	return 0;
}

static size_t elem_size(rva_npy_dtype t) {
	return t == RVA_NPY_F64 ? 8 : (t == RVA_NPY_F16 || t == RVA_NPY_U16) ? 2 : 4;
}

static void check_header(const rva_npy_header *h, size_t len) {
	FUZZ_CHECK(h->version_major >= 1 && h->version_major <= 3 && h->version_minor == 0,
	           "version %u.%u", h->version_major, h->version_minor);
	FUZZ_CHECK(h->ndim <= RVA_NPY_MAX_DIMS, "ndim %zu", h->ndim);
	FUZZ_CHECK((unsigned)h->dtype < RVA_NPY_DTYPE_COUNT, "dtype %d", (int)h->dtype);
	FUZZ_CHECK(strlen(h->descr) == 3 && h->descr[1] == 'f', "descr '%s'", h->descr);
	size_t count = 1;
	bool zero = false;
	for (size_t i = 0; i < h->ndim; i++)
		zero |= h->shape[i] == 0;
	for (size_t i = 0; i < h->ndim && !zero; i++)
		FUZZ_CHECK(!__builtin_mul_overflow(count, h->shape[i], &count),
		           "shape overflows but the header was accepted");
	if (zero)
		count = 0;
	FUZZ_CHECK(h->count == count, "count %zu, product of the shape %zu", h->count, count);
	for (size_t i = h->ndim; i < RVA_NPY_MAX_DIMS; i++)
		FUZZ_CHECK(h->shape[i] == 0, "shape[%zu] past ndim is %zu", i, h->shape[i]);
	FUZZ_CHECK(h->data_bytes == count * elem_size(h->dtype), "data_bytes %zu",
	           h->data_bytes);
	FUZZ_CHECK(h->data_offset >= 10 && h->data_offset <= len, "data_offset %zu of %zu",
	           h->data_offset, len);
}

/* Writes the header of a's shape and a's data as a new buffer, parses it again. */
static void round_trip(const rva_npy_array *a) {
	if (a->count > ((size_t)1 << 16))
		return;
	size_t hlen;
	FUZZ_CHECK(rva_npy_header_write(a->ndim, a->shape, 0, NULL, 0, &hlen) == RVA_OK,
	           "header_write length of a parsed shape");
	FUZZ_CHECK(hlen % 64 == 0, "header length %zu not a multiple of 64", hlen);
	size_t total = hlen + a->count * sizeof(float);
	uint8_t *buf = malloc(total);
	FUZZ_CHECK(buf != NULL, "malloc");
	size_t hlen2;
	FUZZ_CHECK(rva_npy_header_write(a->ndim, a->shape, 0, buf, hlen, &hlen2) == RVA_OK &&
	           hlen2 == hlen, "header_write");
	if (a->count)
		memcpy(buf + hlen, a->data, a->count * sizeof(float));
	rva_npy_array b;
	rva_status st = rva_npy_parse(buf, total, &b);
	if (st == RVA_ENOMEM) {
		free(buf);
		return;
	}
	FUZZ_CHECK(st == RVA_OK, "re-parse of a written header: %s", rva_status_name(st));
	FUZZ_CHECK(b.ndim == a->ndim && b.count == a->count && !b.converted,
	           "re-parsed ndim %zu count %zu", b.ndim, b.count);
	FUZZ_CHECK(memcmp(b.shape, a->shape, sizeof b.shape) == 0, "re-parsed shape differs");
	FUZZ_CHECK(a->count == 0 || memcmp(b.data, a->data, a->count * sizeof(float)) == 0,
	           "re-parsed data differs");
	rva_npy_free(&b);
	free(buf);
}

/* rva_npy_parse_as against rva_npy_parse's status st on the same bytes. */
static void check_typed(const uint8_t *buf, size_t size, rva_status st) {
	static const rva_dtype types[3] = {RVA_F32, RVA_BF16, RVA_F16};
	for (int i = 0; i < 3; i++) {
		rva_npy_typed t;
		rva_status ts = rva_npy_parse_as(buf, size, types[i], &t);
		if (ts == RVA_ENOMEM || st == RVA_ENOMEM)
			continue;
		bool u16 = false;
		if (ts == RVA_OK)
			u16 = t.file.dtype == RVA_NPY_U16;
		if (!u16)
			FUZZ_CHECK(ts == st, "parse_as(%d) %s but parse %s", i, rva_status_name(ts),
			           rva_status_name(st));
		else
			FUZZ_CHECK(types[i] == RVA_BF16, "uint16 accepted for dtype %d", i);
		if (ts != RVA_OK)
			continue;
		FUZZ_CHECK(t.dtype == types[i] && t.count == t.file.count, "typed array");
		bool keep = !t.file.big_endian &&
		            ((u16 && types[i] == RVA_BF16) ||
		             (t.file.dtype == RVA_NPY_F16 && types[i] == RVA_F16) ||
		             (t.file.dtype == RVA_NPY_F32 && types[i] == RVA_F32));
		FUZZ_CHECK(t.converted == !keep, "typed converted flag");
		if (keep && t.count)
			FUZZ_CHECK(memcmp(t.data, buf + t.file.data_offset, t.file.data_bytes) == 0,
			           "typed data not kept bit for bit");
		rva_npy_typed_free(&t);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	/* A private copy of exactly `size` bytes, so ASan sees any read past the end. */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	if (size)
		memcpy(buf, data, size);

	rva_npy_header h;
	rva_status hst = rva_npy_parse_header(buf, size, &h);
	FUZZ_CHECK(hst == RVA_OK || hst == RVA_EFORMAT || hst == RVA_EOVERFLOW,
	           "parse_header status %s", rva_status_name(hst));
	if (hst == RVA_OK)
		check_header(&h, size);
	else
		FUZZ_CHECK(rva_last_error()[0] != '\0', "an error without a message");

	rva_npy_array a;
	memset(&a, 0x5a, sizeof a);
	rva_npy_array untouched = a;
	rva_status st = rva_npy_parse(buf, size, &a);
	if (hst != RVA_OK) {
		FUZZ_CHECK(st == hst, "parse %s but parse_header %s", rva_status_name(st),
		           rva_status_name(hst));
	} else if (size - h.data_offset != h.data_bytes) {
		FUZZ_CHECK(st == RVA_EFORMAT, "parse %s with %zu data bytes for %zu expected",
		           rva_status_name(st), size - h.data_offset, h.data_bytes);
	} else {
		FUZZ_CHECK(st == RVA_OK || st == RVA_ENOMEM, "parse %s on a consistent file",
		           rva_status_name(st));
	}
	if (st != RVA_OK) {
		FUZZ_CHECK(memcmp(&a, &untouched, sizeof a) == 0, "*out changed on failure");
	} else {
		FUZZ_CHECK(a.count == h.count && a.ndim == h.ndim, "array count %zu ndim %zu",
		           a.count, a.ndim);
		FUZZ_CHECK(memcmp(a.shape, h.shape, sizeof a.shape) == 0, "array shape differs");
		FUZZ_CHECK(a.converted == !(h.dtype == RVA_NPY_F32 && !h.big_endian),
		           "converted flag");
		if (h.dtype == RVA_NPY_F32 && !h.big_endian && a.count)
			FUZZ_CHECK(memcmp(a.data, buf + h.data_offset, a.count * 4) == 0,
			           "float32 data not copied bit for bit");
		round_trip(&a);
		rva_npy_free(&a);
		FUZZ_CHECK(a.data == NULL && a.count == 0, "rva_npy_free does not clear");
	}
	check_typed(buf, size, st);
	free(buf);
	return 0;
}

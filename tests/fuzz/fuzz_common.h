/*
 * Shared by the libFuzzer targets (tests/fuzz/fuzz_*.c): an invariant check that aborts
 * (libFuzzer reports it as a crash and saves the input), a bounded allocator installed
 * through the rva_allocator hook (requests above FUZZ_ALLOC_CAP fail, so huge but valid
 * sizes end in RVA_ENOMEM instead of ASan's allocation-size-too-big report), and a
 * little reader of the fuzz input.
 */
#ifndef RVATTN_TESTS_FUZZ_COMMON_H
#define RVATTN_TESTS_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rvattn/rvattn.h"

#define FUZZ_CHECK(cond, ...)                                                          \
	do {                                                                               \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, " (last error: %s)\n", rva_last_error());                 \
			abort();                                                                   \
		}                                                                              \
	} while (0)

/* Largest single allocation the library may get while fuzzing. */
#define FUZZ_ALLOC_CAP ((size_t)64 << 20)

static void *fuzz_alloc(size_t size, size_t align, void *user) {
	(void)user;
	if (size > FUZZ_ALLOC_CAP)
		return NULL;
	void *p = NULL;
	if (posix_memalign(&p, align, size ? size : 1) != 0)
		return NULL;
	return p;
}

static void fuzz_free(void *p, void *user) {
	(void)user;
	free(p);
}

static inline void fuzz_install_allocator(void) {
	rva_allocator a = {fuzz_alloc, fuzz_free, NULL};
	if (rva_set_allocator(&a) != RVA_OK)
		abort();
}

/* Sequential reader: past the end every read gives zeros. */
typedef struct fuzz_in {
	const uint8_t *p;
	size_t n;
} fuzz_in;

static inline uint8_t fuzz_u8(fuzz_in *in) {
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static inline uint32_t fuzz_u32(fuzz_in *in) {
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)fuzz_u8(in) << (8 * i);
	return v;
}

static inline uint64_t fuzz_u64(fuzz_in *in) {
	uint64_t lo = fuzz_u32(in);
	return lo | (uint64_t)fuzz_u32(in) << 32;
}

static inline float fuzz_f32_bits(fuzz_in *in) {
	uint32_t u = fuzz_u32(in);
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

/*
 * A size: mostly small (0..191), sometimes a boundary value that the validators must
 * catch or handle (overflowing products, above 2^32, the MoE expert limit, ...).
 */
static inline size_t fuzz_size(fuzz_in *in) {
	static const size_t special[64] = {
		0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 63, 64, 65,
		127, 128, 129, 255, 256, 257, 511, 512, 513, 1023, 1024, 1025,
		(size_t)1 << 16, ((size_t)1 << 16) + 1, (size_t)1 << 20, (size_t)UINT32_MAX - 1,
		(size_t)UINT32_MAX, (size_t)UINT32_MAX + 1, (size_t)1 << 33, (size_t)1 << 40,
		(size_t)1 << 48, (size_t)1 << 61, (size_t)1 << 62, (size_t)1 << 63,
		SIZE_MAX / 2, SIZE_MAX / 2 + 1, SIZE_MAX / 4, SIZE_MAX / 4 + 1, SIZE_MAX / 8 + 1,
		SIZE_MAX / 3, SIZE_MAX / 16 + 1, SIZE_MAX - 64, SIZE_MAX - 1, SIZE_MAX,
		6, 9, 10, 11, 12, 13, 14, 18, 20, 24, 48, 96, 100, 1000};
	uint8_t b = fuzz_u8(in);
	if (b < 192)
		return b;
	return special[b - 192];
}

/* A float: usually an ordinary value, sometimes the raw bits (NaN, Inf, subnormals, ...). */
static inline float fuzz_float(fuzz_in *in) {
	static const float special[16] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 0.999f, 1e-6f, 1e30f,
	                                  -1e30f, 1.25f, 2.0f, 0.1f, -0.5f, 1e-38f, 100.0f, 0.01f};
	uint8_t b = fuzz_u8(in);
	if (b < 128)
		return special[b & 15];
	if (b < 192)
		return ((float)(b - 160)) / 16.0f;
	return fuzz_f32_bits(in);
}

#endif

/*
 * Internal helpers shared by every module: error raising, allocation through the
 * allocator hook, overflow-checked size arithmetic, monotonic time.
 * Nothing here is public API (names carry the rva__ prefix).
 */
#ifndef RVATTN_SRC_CORE_INTERNAL_H
#define RVATTN_SRC_CORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rvattn/status.h"

#if defined(__GNUC__)
#define RVA__PRINTF(f, a) __attribute__((format(printf, f, a)))
#define RVA__LIKELY(x) __builtin_expect(!!(x), 1)
#define RVA__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define RVA__PRINTF(f, a)
#define RVA__LIKELY(x) (x)
#define RVA__UNLIKELY(x) (x)
#endif

/* Cache line / SIMD alignment used for every buffer rvattn allocates. */
#define RVA__ALIGN 64
/* The transparent huge page size on x86-64 and arm64 (4 KiB base pages). */
#define RVA__HUGE_PAGE ((size_t)2 << 20)

/* Records `fmt` as the calling thread's error detail and returns st. */
rva_status rva__fail(rva_status st, const char *fmt, ...) RVA__PRINTF(2, 3);

/* Records the detail only when none is set yet for this error (keeps the innermost
 * message), and returns st. Use when propagating. */
rva_status rva__propagate(rva_status st);

/* Allocation through the rva_allocator hook. Sizes of 0 allocate 1 byte. All memory is
 * RVA__ALIGN aligned. Return NULL on failure (the caller raises RVA_ENOMEM). */
void *rva__malloc(size_t bytes);
void *rva__calloc(size_t n, size_t size);   /* zeroed, overflow-checked */
/* The same as rva__malloc with a stronger alignment (a power of two), e.g. whole pages. */
void *rva__malloc_aligned(size_t bytes, size_t align);
void rva__free(void *p);
/* Advises MADV_HUGEPAGE on the whole 2 MiB pages inside [p, p + bytes) (best effort; the
 * default allocator does it for every block of 2 MiB or more). Only for memory that the
 * caller owns page by page: never a range shared with other allocations. */
void rva__advise_huge(void *p, size_t bytes);

/* Allocates n * size bytes (overflow-checked) or returns RVA_ENOMEM/RVA_EOVERFLOW with a
 * message naming `what`. On success *out holds the (uninitialised) block. */
rva_status rva__alloc_array(void **out, size_t n, size_t size, const char *what);

/* Duplicates a string with rva__malloc (NULL on failure or NULL input). */
char *rva__strdup(const char *s);

/* Overflow-checked arithmetic: return false on overflow. */
static inline bool rva__mul_ok(size_t a, size_t b, size_t *r) {
	return !__builtin_mul_overflow(a, b, r);
}
static inline bool rva__add_ok(size_t a, size_t b, size_t *r) {
	return !__builtin_add_overflow(a, b, r);
}

/* a rounded up to a multiple of b (b > 0); false when the result does not fit. */
static inline bool rva__round_up_ok(size_t a, size_t b, size_t *r) {
	size_t q = a / b + (a % b != 0);
	return rva__mul_ok(q, b, r);
}
/* a * b * c, false on overflow. */
static inline bool rva__mul3_ok(size_t a, size_t b, size_t c, size_t *r) {
	size_t t;
	return rva__mul_ok(a, b, &t) && rva__mul_ok(t, c, r);
}

static inline size_t rva__min(size_t a, size_t b) { return a < b ? a : b; }
static inline size_t rva__max(size_t a, size_t b) { return a > b ? a : b; }
static inline size_t rva__div_up(size_t a, size_t b) { return a / b + (a % b != 0); }
static inline size_t rva__round_up(size_t a, size_t b) { return rva__div_up(a, b) * b; }

/* Monotonic clock in nanoseconds. */
uint64_t rva__now_ns(void);

/* Case-insensitive comparison treating '-' and '_' as equal (for names). */
bool rva__name_eq(const char *a, const char *b);

/* Counter-based random numbers (SplitMix64 / Philox-like hash): the value depends only on
 * the key and counter, never on call order or thread. */
static inline uint64_t rva__mix64(uint64_t x) {
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}
static inline uint64_t rva__hash3(uint64_t a, uint64_t b, uint64_t c) {
	return rva__mix64(rva__mix64(rva__mix64(a) ^ b) ^ c);
}
/* Uniform in [0, 1) from a 64-bit hash (24 high bits, exact in float). */
static inline float rva__u01(uint64_t h) { return (float)(h >> 40) * (1.0f / 16777216.0f); }

/* Sequential seeded generator for initialisation (xoshiro256**). */
typedef struct rva__rng { uint64_t s[4]; } rva__rng;
void rva__rng_seed(rva__rng *r, uint64_t seed);
uint64_t rva__rng_next(rva__rng *r);
double rva__rng_uniform(rva__rng *r);  /* [0, 1) */
double rva__rng_normal(rva__rng *r);   /* N(0, 1), Box-Muller */

#endif

/* Small helpers for tests: seeded random data and error measures. */
#ifndef RVATTN_TESTS_REF_UTIL_H
#define RVATTN_TESTS_REF_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Fills n floats with uniform values in [lo, hi) from a seeded generator. */
void ref_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);

/* Max |a - b| / (|b| + atol_scale) style error: returns max over i of
 * |a[i] - b[i]| / (atol + rtol * |b[i]|); <= 1 means within tolerance. */
double ref_err_ratio(const float *a, const double *b, size_t n, double atol, double rtol);

/* Max absolute difference between float and double arrays (strided rows). */
double ref_max_abs_diff(const float *a, size_t as, const double *b, size_t bs, size_t rows,
                        size_t cols);

/* Allocates n floats (64-byte aligned, zeroed); abort on failure (tests only). */
float *ref_alloc(size_t n);
double *ref_alloc_d(size_t n);
#endif

/*
 * Oracles for the pipeline's normalisations: naive double-precision LayerNorm, RMSNorm
 * and BatchNorm (running or batch statistics), written from their textbook definitions
 * independently of src/. Inputs are float (as the library sees them), outputs double.
 * gain/bias (and running statistics) may be NULL: ones / zeros.
 */
#ifndef RVATTN_TESTS_REF_NORMS_H
#define RVATTN_TESTS_REF_NORMS_H

#include <stddef.h>

/* y = (x - mean(x)) / sqrt(var(x) + eps) * gain + bias, var the biased variance. */
void ref_layer_norm(const float *x, size_t dim, double eps, const float *gain,
                    const float *bias, double *y);

/* y = x / sqrt(mean(x^2) + eps) * gain + bias. */
void ref_rms_norm(const float *x, size_t dim, double eps, const float *gain,
                  const float *bias, double *y);

/* BatchNorm with running statistics, one row:
 * y = (x - running_mean) / sqrt(running_var + eps) * gain + bias. */
void ref_batch_norm_running(const float *x, size_t dim, double eps, const float *running_mean,
                            const float *running_var, const float *gain, const float *bias,
                            double *y);

/* BatchNorm with batch statistics over `rows` rows (row r at x + r*stride): per feature
 * the mean and biased variance over all rows; y is rows x dim, packed. */
void ref_batch_norm_batch(const float *x, size_t rows, size_t stride, size_t dim, double eps,
                          const float *gain, const float *bias, double *y);

#endif

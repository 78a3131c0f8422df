/*
 * Naive double-precision oracle for MoE attention (Switch Transformer / GShard routing;
 * experts with their own projections as in Mixture of Attention Heads), written from the
 * definitions independently of src/: router softmax and top-k with raw (Switch) or
 * renormalised (GShard) gates, per-expert capacity, GShard assignment priority, the
 * load-balancing loss, and the expert projections x W.
 */
#ifndef RVATTN_TESTS_REF_MOE_H
#define RVATTN_TESTS_REF_MOE_H

#include <stddef.h>
#include <stdint.h>

/* p = softmax(W x) over E experts (W: E x dim row-major, x: dim floats, both as given);
 * choice[0..k) the experts by decreasing p (ties to the lower index), weight[r] =
 * p[choice[r]] / sum of the chosen p when normalize (GShard), else p[choice[r]]
 * (Switch). probs receives the E probabilities. */
void ref_moe_route(const float *w, size_t experts, size_t dim, const float *x, size_t k,
                   int normalize, double *probs, uint32_t *choice, double *weight);

/* out (n x cols) = x W in double: x n rows of `rows` floats (row stride ldx), W rows x
 * cols row-major (row stride ldw). */
void ref_moe_project(const float *x, size_t ldx, size_t n, const float *w, size_t ldw,
                     size_t rows, size_t cols, double *out);

/* The same with double rows x (packed, n x rows). */
void ref_moe_project_d(const double *x, size_t n, const float *w, size_t ldw, size_t rows,
                       size_t cols, double *out);

/* The smallest gap between consecutive probabilities among the top k + 1 (how close a
 * routing decision is to a tie; +inf when k == E and E == 1). */
double ref_moe_margin(const double *probs, size_t experts, size_t k);

/* ceil(factor * tokens * k / experts) for factors exact in binary (0.5, 1.25, ...). */
size_t ref_moe_capacity(double factor, size_t tokens, size_t k, size_t experts);

/* Assignment with capacity, all rank-0 choices in token order first, then rank 1, ...:
 * kept[t*k + r] = 1 if expert choice[t*k + r] still had room. Counts per expert before
 * (assigned) and after (processed) capacity, and the dropped pairs. */
void ref_moe_assign(const uint32_t *choice, size_t tokens, size_t k, size_t experts,
                    size_t capacity, uint8_t *kept, size_t *assigned, size_t *processed,
                    size_t *dropped);

/* Switch load-balancing loss E * sum_e (assigned[e] / T) * mean_t probs[t*E + e]. */
double ref_moe_loss(const double *probs, const size_t *assigned, size_t tokens,
                    size_t experts);

#endif

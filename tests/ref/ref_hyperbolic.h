/*
 * Naive double-precision oracle for hyperbolic attention in the Poincare ball of
 * curvature -c (c > 0). Written from the definitions (Ganea et al. 2018, Gulcehre et al.
 * 2018; docs/ARCHITECTURE.md, Mechanisms), independently of src/: the distance uses the Mobius-addition form
 * d_c(x, y) = (2/sqrt c) artanh(sqrt(c) |(-x) (+)_c y|) (src/ uses the arcosh form),
 * the gyromidpoint is computed as the Einstein midpoint in the Klein model (the same
 * point), and the Frechet mean is iterated to convergence and can be checked with a
 * gradient computed from log maps.
 */
#ifndef RVATTN_TESTS_REF_HYPERBOLIC_H
#define RVATTN_TESTS_REF_HYPERBOLIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The projection margin of the mechanism (geoopt's fp32 value). */
#define REF_HYP_EPS 4e-3

/* Projects x into the ball: sqrt(c)|x| >= 1 - eps -> norm (1 - eps)/sqrt(c). */
void ref_hyp_project(double c, double *x, size_t n);

/* out = x (+)_c y (out may alias neither). */
void ref_hyp_mobius_add(double c, const double *x, const double *y, size_t n, double *out);

/* Poincare distance by Mobius addition. */
double ref_hyp_dist(double c, const double *x, const double *y, size_t n);

/* Weighted gyromidpoint of m points pts[j*n ..] (weights w[j] >= 0, not all 0). */
void ref_hyp_gyromidpoint(double c, const double *w, const double *pts, size_t m, size_t n,
                          double *out);

/* Weighted Frechet mean (Lou et al. 2020 fixed-point iteration until a step moves it by
 * less than 1e-15). Returns the iterations. */
size_t ref_hyp_frechet(double c, const double *w, const double *pts, size_t m, size_t n,
                       double *out);

/* Riemannian norm of the gradient of the normalised Frechet objective at mu, from log
 * maps (an independent check that mu is the minimiser). */
double ref_hyp_frechet_grad_norm(double c, const double *w, const double *pts, size_t m,
                                 size_t n, const double *mu);

/* sum_j w_j d_c(mu, pts_j)^2 (the Frechet objective). */
double ref_hyp_frechet_objective(double c, const double *w, const double *pts, size_t m,
                                 size_t n, const double *mu);

typedef struct ref_hyp_params {
	double c;            /* curvature magnitude, > 0 */
	double temperature;  /* scores = -d / temperature */
	bool frechet;        /* aggregation: false = gyromidpoint, true = Frechet mean */
	bool causal;         /* query i at position nk - nq + i sees keys j <= position */
} ref_hyp_params;

/*
 * Hyperbolic attention over one sequence: q is nq rows (stride qs) of heads*hd floats,
 * k and v are nk rows (strides ks, vs) of kv_heads*hd floats, mask (NULL = all) nk bytes.
 * out receives nq rows of heads*hd doubles (packed). Rows with no visible key get 0.
 */
void ref_hyperbolic_attention(const ref_hyp_params *p, size_t heads, size_t kv_heads,
                              size_t hd, size_t nq, size_t nk, const float *q, size_t qs,
                              const float *k, size_t ks, const float *v, size_t vs,
                              const uint8_t *mask, double *out);

#endif

/*
 * Scaled dot-product attention: softmax(q K^T * scale) V with one head (dim = head_dim),
 * scale 1/sqrt(dim) unless set. Computed by the shared softmax tile engine
 * (softmax_core.c), so it is also tiled, masked and parallel like flash.
 */
#include "attention/softmax_core.h"

const rva__mech_ops rva__scaled_dot_ops = RVA__SOFTMAX_OPS(RVA_MECH_SCALED_DOT);

/*
 * Multi-head attention: scaled dot-product attention per head on the head's slice of dim
 * (grouped-query: query head h reads kv head h / (heads / kv_heads)), outputs
 * concatenated. Computed by the shared softmax tile engine (softmax_core.c): the same
 * numbers as flash, to fp32 rounding, without ever materialising the score matrix.
 */
#include "attention/softmax_core.h"

const rva__mech_ops rva__multi_head_ops = RVA__SOFTMAX_OPS(RVA_MECH_MULTI_HEAD);

/*
 * Half-precision inputs and outputs for mechanisms that compute in fp32 only: conversion
 * tasks around the mechanism's own plan (half_convert.c).
 */
#ifndef RVATTN_SRC_ATTENTION_HALF_CONVERT_H
#define RVATTN_SRC_ATTENTION_HALF_CONVERT_H

#include <stdbool.h>

#include "attention/attention_internal.h"

/* Whether att needs fp32 stand-ins for some valid sequence of io (a half q, k, v or out,
 * and a mechanism outside the softmax family, which reads half tensors itself). */
bool rva__half_needs_convert(const rva_attention *att, const rva__plan_io *io);

/*
 * Plans att over io with every half tensor replaced by an fp32 copy in job memory:
 * conversion tasks of each such sequence run before its first task (after io->after[s]),
 * and the rounding of its output into the caller's half output after its last; io->done[s]
 * is set past them. Errors: RVA_ENOMEM (job-wide), and whatever att's plan returns.
 */
rva_status rva__half_plan_converted(const rva_attention *att, rva__plan_io *io,
                                    rva__graph *g);

#endif

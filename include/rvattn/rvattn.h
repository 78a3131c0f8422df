/*
 * rvattn — the whole public API in one include.
 *
 *     #include <rvattn/rvattn.h>
 */
#ifndef RVATTN_RVATTN_H
#define RVATTN_RVATTN_H

#include "status.h"
#include "rvattn/version.h" /* generated: <build>/include/rvattn/version.h */
#include "alloc.h"
#include "kernels.h"
#include "config.h"
#include "batch.h"
#include "attention.h"
#include "engine.h"
#include "kv_cache.h"
#include "pipeline.h"
#include "presets.h"
#include "rope.h"
#include "npy.h"
#include "outfile.h"

#endif

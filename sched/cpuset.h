/*
 * The cpu-set syntax of the engine (rva_engine_config.cpus, the CLI's --cpus), parsed
 * against an hwloc topology. Kept apart from the engine so a fuzz target can call it.
 *
 * Grammar (items separated by commas or white space):
 *
 *   spec  := item ((',' | ws+) item)*
 *   item  := [TYPE ':'] range
 *   range := "all" | N | N '-' M          (decimal, N <= M)
 *   TYPE  := pu | core | numa (node) | package (socket)     (case-insensitive)
 *
 * A bare range names PUs by OS index ("0-3,8"), as the kernel numbers them. A TYPE
 * prefix names hwloc objects by logical index ("core:0-3", "numa:1", "package:0",
 * "pu:2-5") and stays in force for the comma-separated ranges after it, up to white
 * space or the next prefix: "core:0-1,3 8" is cores 0, 1 and 3 plus PU 8.
 *
 * Each range must name at least one object that exists in the topology (a range may run
 * past the end: "0-99" on a 16-PU machine names PUs 0-15).
 */
#ifndef RVATTN_SCHED_CPUSET_H
#define RVATTN_SCHED_CPUSET_H

#include <stddef.h>

#include <hwloc.h>

#include "rvattn/status.h"

/* Largest index the syntax accepts (larger numbers are a syntax error). */
#define RVA__CPUSET_MAX_INDEX 1048575u

/*
 * Parses spec into out (replaced): the union of the PUs (OS indexes) of every item.
 * Nothing is intersected with any binding here. Errors (rva_last_error() quotes the
 * spec and names the offending part and its offset): RVA_ENULL; RVA_EINVAL for syntax
 * (empty or blank spec, unknown type, missing or malformed number, reversed range,
 * index above RVA__CPUSET_MAX_INDEX); RVA_ENOTFOUND when a range names no existing
 * object; RVA_ENOMEM when hwloc cannot allocate a bitmap.
 */
rva_status rva__cpuset_parse(hwloc_topology_t topo, const char *spec, hwloc_bitmap_t out);

/*
 * rva__cpuset_parse that also says what it clipped: note (capacity note_cap, may be NULL)
 * gets "" or one clause per range that runs past the topology, separated by "; "
 * ("PUs 2-127 (item '0-127') do not exist, the topology has PUs 0-1").
 */
rva_status rva__cpuset_parse_ex(hwloc_topology_t topo, const char *spec, hwloc_bitmap_t out,
                                char *note, size_t note_cap);

#endif

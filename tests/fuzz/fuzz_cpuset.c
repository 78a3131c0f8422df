/*
 * libFuzzer target: the engine's cpu-set parser (sched/cpuset.h, the CLI's --cpus) on
 * arbitrary strings, against a fixed synthetic topology (2 packages x 2 NUMA nodes x
 * 3 cores x 2 PUs = 24 PUs). Checks: only the documented statuses, a message on every
 * error, and an accepted set is non-empty and inside the topology.
 */
#include <hwloc.h>

#include "fuzz_common.h"
#include "sched/cpuset.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static hwloc_topology_t topo;
static hwloc_bitmap_t set;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
	(void)argc;
	(void)argv;
	fuzz_install_allocator();
	if (hwloc_topology_init(&topo) != 0 ||
	    hwloc_topology_set_synthetic(topo, "package:2 numa:2 core:3 pu:2") != 0 ||
	    hwloc_topology_load(topo) != 0 || !(set = hwloc_bitmap_alloc())) {
		fprintf(stderr, "fuzz_cpuset: cannot load the synthetic topology\n");
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (size > 4096)
		return 0;
	char *spec = malloc(size + 1);
	if (!spec)
		return 0;
	memcpy(spec, data, size);
	spec[size] = '\0';
	rva_clear_error();
	rva_status st = rva__cpuset_parse(topo, spec, set);
	FUZZ_CHECK(st == RVA_OK || st == RVA_EINVAL || st == RVA_ENOTFOUND,
	           "status %s for \"%.64s\"", rva_status_name(st), spec);
	if (st == RVA_OK) {
		FUZZ_CHECK(!hwloc_bitmap_iszero(set), "empty set accepted for \"%.64s\"", spec);
		FUZZ_CHECK(hwloc_bitmap_isincluded(set, hwloc_topology_get_topology_cpuset(topo)),
		           "set outside the topology for \"%.64s\"", spec);
	} else {
		FUZZ_CHECK(rva_last_error()[0] != '\0', "error without a message");
		FUZZ_CHECK(strlen(rva_last_error()) < 511, "message not truncated sensibly");
	}
	free(spec);
	return 0;
}

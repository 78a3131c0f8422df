/*
 * libFuzzer target: the name lookups of the public API on arbitrary strings —
 * rva_preset_from_name, rva_from_model_name, rva_mechanism_parse, rva_kernel_set_parse.
 * Checks: only RVA_OK or RVA_ENOTFOUND (with a message), a found name maps to a valid
 * value whose canonical name parses back to it, and a model name gives a config that
 * rva_build() accepts or rejects with a documented status.
 */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
	(void)argc;
	(void)argv;
	fuzz_install_allocator();
	return 0;
}

static void check_status(rva_status st, const char *who, const char *name) {
	FUZZ_CHECK(st == RVA_OK || st == RVA_ENOTFOUND, "%s(\"%.64s\") gives %s", who, name,
	           rva_status_name(st));
	if (st != RVA_OK)
		FUZZ_CHECK(rva_last_error()[0] != '\0', "%s: error without a message", who);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (size < 1 || size > 1024)
		return 0;
	/* First byte: the dim for rva_from_model_name; the rest: the name. */
	size_t dim = (size_t)data[0] * 8;
	char *name = malloc(size);
	if (!name)
		return 0;
	memcpy(name, data + 1, size - 1);
	name[size - 1] = '\0';

	rva_preset p = RVA_PRESET_COUNT;
	rva_status st = rva_preset_from_name(name, &p);
	check_status(st, "rva_preset_from_name", name);
	if (st == RVA_OK) {
		FUZZ_CHECK((unsigned)p < RVA_PRESET_COUNT, "preset %d", (int)p);
		rva_preset q = RVA_PRESET_COUNT;
		FUZZ_CHECK(rva_preset_from_name(rva_preset_name(p), &q) == RVA_OK && q == p,
		           "canonical preset name '%s' does not parse back", rva_preset_name(p));
	}

	rva_config c;
	memset(&c, 0x5a, sizeof c);
	rva_config untouched = c;
	st = rva_from_model_name(name, dim, &c);
	check_status(st, "rva_from_model_name", name);
	if (st == RVA_OK) {
		FUZZ_CHECK((unsigned)c.mechanism < RVA_MECH_COUNT, "mechanism %d", (int)c.mechanism);
		FUZZ_CHECK(c.dim == dim, "dim %zu for %zu", c.dim, dim);
		if (dim <= 128) {
			rva_attention *att = NULL;
			rva_status b = rva_build(&c, &att);
			FUZZ_CHECK(b == RVA_OK || b == RVA_EDIM || b == RVA_ERANGE,
			           "build of model '%.64s' dim %zu: %s", name, dim, rva_status_name(b));
			rva_attention_destroy(att);
		}
	} else {
		FUZZ_CHECK(memcmp(&c, &untouched, sizeof c) == 0, "*out changed on failure");
	}

	rva_mechanism m = RVA_MECH_COUNT;
	st = rva_mechanism_parse(name, &m);
	check_status(st, "rva_mechanism_parse", name);
	if (st == RVA_OK) {
		FUZZ_CHECK((unsigned)m < RVA_MECH_COUNT, "mechanism %d", (int)m);
		rva_mechanism m2 = RVA_MECH_COUNT;
		FUZZ_CHECK(rva_mechanism_parse(rva_mechanism_name(m), &m2) == RVA_OK && m2 == m,
		           "mechanism name round trip");
	}

	rva_kernel_set k = RVA_KERNELS_COUNT;
	st = rva_kernel_set_parse(name, &k);
	check_status(st, "rva_kernel_set_parse", name);
	if (st == RVA_OK) {
		FUZZ_CHECK((unsigned)k < RVA_KERNELS_COUNT, "kernel set %d", (int)k);
		rva_kernel_set k2 = RVA_KERNELS_COUNT;
		FUZZ_CHECK(rva_kernel_set_parse(rva_kernel_set_name(k), &k2) == RVA_OK && k2 == k,
		           "kernel set name round trip");
	}
	free(name);
	return 0;
}

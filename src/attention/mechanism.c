/*
 * Mechanism names (rva_mechanism_name, rva_mechanism_parse; declared in
 * include/rvattn/config.h). They live with the mechanisms, below the SDK: the attention
 * code names its mechanism in error messages, and src/attention/ depends on nothing in
 * src/sdk/ (docs/ARCHITECTURE.md, "Dependencies").
 */
#include "core/internal.h"
#include "rvattn/config.h"

static const char *const mech_names[RVA_MECH_COUNT] = {
	[RVA_MECH_SCALED_DOT] = "scaled_dot",     [RVA_MECH_MULTI_HEAD] = "multi_head",
	[RVA_MECH_FLASH] = "flash",               [RVA_MECH_LINEAR] = "linear",
	[RVA_MECH_LOCAL_GLOBAL] = "local_global", [RVA_MECH_HYPERBOLIC] = "hyperbolic",
	[RVA_MECH_MOE] = "moe",
};

const char *rva_mechanism_name(rva_mechanism m) {
	if ((unsigned)m >= RVA_MECH_COUNT)
		return "unknown";
	return mech_names[m];
}

rva_status rva_mechanism_parse(const char *name, rva_mechanism *out) {
	if (!name || !out)
		return rva__fail(RVA_ENULL, "rva_mechanism_parse: NULL argument");
	for (int m = 0; m < RVA_MECH_COUNT; m++)
		if (rva__name_eq(name, mech_names[m])) {
			*out = (rva_mechanism)m;
			return RVA_OK;
		}
	return rva__fail(RVA_ENOTFOUND,
	                 "unknown mechanism '%s' (known: scaled_dot, multi_head, flash, linear, "
	                 "local_global, hyperbolic, moe)", name);
}

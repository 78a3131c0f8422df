/* SCAFFOLD (replaced in this session by the real mechanism). */
#include "attention/attention_internal.h"
#include "core/internal.h"
static rva_status plan(const rva_attention *att, rva__plan_io *io, rva__graph *g) {
	(void)att; (void)io; (void)g;
	return rva__fail(RVA_EUNSUPPORTED, "moe: not built yet");
}
static double flops(const rva_attention *att, const rva_seq *s) { (void)att; (void)s; return 0; }
const rva__mech_ops rva__moe_ops = {.plan = plan, .flops = flops};

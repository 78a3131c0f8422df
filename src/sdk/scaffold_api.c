/* SCAFFOLD: symbols declared in attention.h that later files define. */
#include "attention/attention_internal.h"
#include "core/internal.h"
rva_status rva_attention_router(const rva_attention *att, const float **w, size_t *e, size_t *d) { (void)att;(void)w;(void)e;(void)d; return RVA_EUNSUPPORTED; }
rva_status rva_attention_expert(const rva_attention *att, size_t e, const rva_attention **x) { (void)att;(void)e;(void)x; return RVA_EUNSUPPORTED; }

rva_status rva_batch_unpack(const rva_packed_batch *p, rva_seq *s, size_t c) { (void)p;(void)s;(void)c; return RVA_EUNSUPPORTED; }

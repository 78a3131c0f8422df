/* Packed (varlen) batches: expansion into sequence descriptors. */
#include "core/internal.h"
#include "kernels/half.h"
#include "rvattn/batch.h"

rva_status rva_batch_unpack(const rva_packed_batch *p, rva_seq *seqs, size_t cap) {
	if (!p || (!seqs && cap))
		return rva__fail(RVA_ENULL, "rva_batch_unpack: %s is NULL", !p ? "batch" : "seqs");
	if (p->count && (!p->cu_q || !p->cu_k))
		return rva__fail(RVA_ENULL, "rva_batch_unpack: cu_q/cu_k offsets are NULL");
	if (cap < p->count)
		return rva__fail(RVA_ERANGE, "rva_batch_unpack: room for %zu descriptors, batch has %zu",
		                 cap, p->count);
	if (p->count && (p->cu_q[0] != 0 || p->cu_k[0] != 0))
		return rva__fail(RVA_EINVAL, "rva_batch_unpack: cu_q[0] = %zu and cu_k[0] = %zu must "
		                 "be 0", p->cu_q[0], p->cu_k[0]);
	if (p->count && (!p->q_stride || !p->k_stride || !p->v_stride || !p->out_stride))
		return rva__fail(RVA_EINVAL, "rva_batch_unpack: packed batches need explicit row "
		                 "strides (q %zu, k %zu, v %zu, out %zu)", p->q_stride, p->k_stride,
		                 p->v_stride, p->out_stride);
	for (size_t s = 0; s < p->count; s++)
		if (p->cu_q[s + 1] < p->cu_q[s] || p->cu_k[s + 1] < p->cu_k[s])
			return rva__fail(RVA_EINVAL, "rva_batch_unpack: offsets decrease at sequence %zu "
			                 "(cu_q %zu -> %zu, cu_k %zu -> %zu)", s, p->cu_q[s],
			                 p->cu_q[s + 1], p->cu_k[s], p->cu_k[s + 1]);
	/* Row offsets become pointer offsets: the last one (rows x stride elements, in bytes)
	 * must not overflow, whatever the buffers hold. */
	if (p->count) {
		size_t nqr = p->cu_q[p->count], nkr = p->cu_k[p->count], bytes;
		const struct {
			const char *name;
			size_t rows, stride;
			rva_dtype t;
		} m[4] = {{"query", nqr, p->q_stride, p->q_dtype},
		          {"key", nkr, p->k_stride, p->k_dtype},
		          {"value", nkr, p->v_stride, p->v_dtype},
		          {"output", nqr, p->out_stride, p->out_dtype}};
		for (int i = 0; i < 4; i++) {
			if (!rva__dtype_size(m[i].t))
				return rva__fail(RVA_EINVAL, "rva_batch_unpack: %s element type %d is not an "
				                 "rva_dtype (RVA_F32, RVA_BF16, RVA_F16)", m[i].name,
				                 (int)m[i].t);
			if (!rva__mul3_ok(m[i].rows, m[i].stride, rva__dtype_size(m[i].t), &bytes))
				return rva__fail(RVA_EOVERFLOW, "rva_batch_unpack: %s rows %zu x stride %zu "
				                 "elements overflow size_t", m[i].name, m[i].rows, m[i].stride);
		}
	}
	for (size_t s = 0; s < p->count; s++) {
		size_t q0 = p->cu_q[s], k0 = p->cu_k[s];
		size_t nq = p->cu_q[s + 1] - q0, nk = p->cu_k[s + 1] - k0;
		/* An empty sequence gets NULL pointers: its first row may lie past the buffers
		 * (the pointer arithmetic would leave the array). */
		bool hq = nq > 0, hk = nk > 0;
		seqs[s] = (rva_seq){
			.nq = nq, .nk = nk,
			.q = p->q && hq ? rva__elem_at(p->q, p->q_dtype, q0 * p->q_stride) : NULL,
			.q_stride = p->q_stride,
			.k = p->k && hk ? rva__elem_at(p->k, p->k_dtype, k0 * p->k_stride) : NULL,
			.k_stride = p->k_stride,
			.v = p->v && hk ? rva__elem_at(p->v, p->v_dtype, k0 * p->v_stride) : NULL,
			.v_stride = p->v_stride,
			.out = p->out && hq ? rva__elem_at_mut(p->out, p->out_dtype, q0 * p->out_stride)
			                    : NULL,
			.out_stride = p->out_stride,
			.key_mask = p->key_mask && hk ? p->key_mask + k0 : NULL,
			.q_dtype = p->q_dtype, .k_dtype = p->k_dtype, .v_dtype = p->v_dtype,
			.out_dtype = p->out_dtype,
		};
	}
	return RVA_OK;
}

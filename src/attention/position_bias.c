/* T5 relative-position buckets (see position_bias.h). */
#include <math.h>

#include "attention/position_bias.h"
#include "core/internal.h"
#include "rvattn/attention.h"

size_t rva__t5_bucket(int64_t rp, bool bidirectional, size_t buckets, size_t max_distance) {
	size_t nb = buckets, bucket = 0;
	uint64_t n;
	if (bidirectional) {
		nb /= 2;
		if (rp > 0)
			bucket += nb;
		n = rp < 0 ? 0 - (uint64_t)rp : (uint64_t)rp; /* INT64_MIN too */
	} else {
		n = rp < 0 ? 0 - (uint64_t)rp : 0; /* future keys all land in bucket 0 */
	}
	size_t max_exact = nb / 2;
	if (n < max_exact)
		return bucket + (size_t)n;
	/* HF: max_exact + (log(n / max_exact) / log(max_distance / max_exact)
	 *                  * (nb - max_exact)).long(), in float32, capped at nb - 1. */
	float num = logf((float)n / (float)max_exact);
	float den = (float)log((double)max_distance / (double)max_exact);
	float large = (float)max_exact + num / den * (float)(nb - max_exact);
	size_t v = large < (float)nb ? (size_t)large : nb - 1; /* no float->int overflow */
	if (v > nb - 1)
		v = nb - 1;
	return bucket + v;
}

rva_status rva_t5_bucket(int64_t relative_position, bool bidirectional, size_t buckets,
                         size_t max_distance, size_t *bucket) {
	if (!bucket)
		return rva__fail(RVA_ENULL, "rva_t5_bucket: bucket is NULL");
	size_t nb = bidirectional ? buckets / 2 : buckets;
	if (nb < 2)
		return rva__fail(RVA_ERANGE, "rva_t5_bucket: %zu buckets too few (need >= %d)", buckets,
		                 bidirectional ? 4 : 2);
	if (max_distance <= nb / 2)
		return rva__fail(RVA_ERANGE, "rva_t5_bucket: max_distance %zu must exceed %zu",
		                 max_distance, nb / 2);
	*bucket = rva__t5_bucket(relative_position, bidirectional, buckets, max_distance);
	return RVA_OK;
}

rva_status rva__t5_buckets_init(rva__t5_buckets *b, bool bidirectional, size_t buckets,
                                size_t max_distance) {
	*b = (rva__t5_buckets){.bidirectional = bidirectional, .buckets = buckets,
	                       .max_distance = max_distance};
	rva_status st = rva__alloc_array((void **)&b->pos, max_distance, 2 * sizeof(uint16_t),
	                                 "T5 bucket table");
	if (st != RVA_OK)
		return st;
	b->neg = b->pos + max_distance;
	for (size_t n = 0; n < max_distance; n++) {
		b->pos[n] = (uint16_t)rva__t5_bucket((int64_t)n, bidirectional, buckets, max_distance);
		b->neg[n] = (uint16_t)rva__t5_bucket(-(int64_t)n, bidirectional, buckets, max_distance);
	}
	b->pos_sat = (uint16_t)rva__t5_bucket((int64_t)max_distance, bidirectional, buckets,
	                                      max_distance);
	b->neg_sat = (uint16_t)rva__t5_bucket(-(int64_t)max_distance, bidirectional, buckets,
	                                      max_distance);
	return RVA_OK;
}

void rva__t5_buckets_free(rva__t5_buckets *b) {
	rva__free(b->pos);
	b->pos = b->neg = NULL;
}

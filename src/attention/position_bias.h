/*
 * T5 relative-position bias: bucket of (key position - query position) as in HF's
 * `_relative_position_bucket` (Mesh-TF port, float32 log, truncation), and a per-head
 * learned table (buckets x heads) added to the logits.
 */
#ifndef RVATTN_SRC_ATTENTION_POSITION_BIAS_H
#define RVATTN_SRC_ATTENTION_POSITION_BIAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rvattn/status.h"

/* Bucket without argument checks (the caller validated buckets / max_distance). */
size_t rva__t5_bucket(int64_t relative_position, bool bidirectional, size_t buckets,
                      size_t max_distance);

/* Precomputed buckets of one configuration: bucket(rp) for |rp| < max_distance on both
 * signs; beyond that the bucket saturates. */
typedef struct rva__t5_buckets {
	bool bidirectional;
	size_t buckets, max_distance;
	uint16_t *pos;   /* pos[n] = bucket(+n), n < max_distance */
	uint16_t *neg;   /* neg[n] = bucket(-n), n < max_distance */
	uint16_t pos_sat, neg_sat; /* buckets for n >= max_distance */
} rva__t5_buckets;

rva_status rva__t5_buckets_init(rva__t5_buckets *b, bool bidirectional, size_t buckets,
                                size_t max_distance);
void rva__t5_buckets_free(rva__t5_buckets *b);

static inline size_t rva__t5_lookup(const rva__t5_buckets *b, int64_t rp) {
	if (rp >= 0)
		return (uint64_t)rp < b->max_distance ? b->pos[rp] : b->pos_sat;
	uint64_t n = (uint64_t)(-rp);
	return n < b->max_distance ? b->neg[n] : b->neg_sat;
}

#endif

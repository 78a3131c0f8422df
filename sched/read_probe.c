/*
 * The streaming-read probe (rva_engine_read_probe, rvattn/engine.h): one task per 1 MiB block of the buffers,
 * each summing its floats with 16 independent accumulators (a plain read loop the
 * compiler vectorises; no software prefetch, nothing but loads and adds), run as a job on
 * the engine so the workers, their binding and the dealing of tasks are a job's.
 */
#include <string.h>

#include "core/internal.h"
#include "rvattn/engine.h"
#include "sched/engine_internal.h"

#define PROBE_BLOCK ((size_t)1 << 20)

typedef struct probe_ctx {
	const void *const *bufs;
	const size_t *bytes;
	float *sums;               /* one per task: keeps the reads observable */
} probe_ctx;

/* a = buffer, b = block, c = slot in sums. */
static rva_status probe_task(const rva__task *t, rva__exec_ctx *x) {
	(void)x;
	const probe_ctx *c = t->ctx;
	const unsigned char *base = (const unsigned char *)c->bufs[t->a] + (size_t)t->b * PROBE_BLOCK;
	size_t len = rva__min(PROBE_BLOCK, c->bytes[t->a] - (size_t)t->b * PROBE_BLOCK);
	size_t n = len / sizeof(float);
	float acc[16] = {0};
	size_t i = 0;
	float v[16];
	for (; i + 16 <= n; i += 16) {
		memcpy(v, base + i * sizeof(float), sizeof v); /* unaligned-safe load */
		for (int k = 0; k < 16; k++)
			acc[k] += v[k];
	}
	float total = 0.0f;
	for (; i < n; i++) {
		float f;
		memcpy(&f, base + i * sizeof(float), sizeof f);
		total += f;
	}
	for (size_t b = n * sizeof(float); b < len; b++)
		total += (float)base[b];
	for (int k = 0; k < 16; k++)
		total += acc[k];
	c->sums[t->c] = total;
	return RVA_OK;
}

rva_status rva_engine_read_probe(rva_engine *e, const void *const *bufs, const size_t *bytes,
                                 size_t n, double *seconds) {
	if (!e || !bufs || !bytes || !seconds)
		return rva__fail(RVA_ENULL, "rva_engine_read_probe: %s is NULL",
		                 !e ? "e" : !bufs ? "bufs" : !bytes ? "bytes" : "seconds");
	if (n == 0)
		return rva__fail(RVA_EINVAL, "rva_engine_read_probe: no buffers (n is 0)");
	size_t blocks = 0;
	for (size_t i = 0; i < n; i++) {
		if (!bufs[i] && bytes[i])
			return rva__fail(RVA_ENULL, "rva_engine_read_probe: buffer %zu is NULL with "
			                 "%zu bytes", i, bytes[i]);
		size_t nb = rva__div_up(bytes[i], PROBE_BLOCK);
		if (nb > UINT32_MAX - 1 - blocks || i > UINT32_MAX)
			return rva__fail(RVA_EOVERFLOW, "rva_engine_read_probe: more than 2^32 blocks "
			                 "of 1 MiB");
		blocks += nb;
	}
	rva__graph g;
	rva__graph_init(&g, 1);
	rva_status st = RVA_OK;
	probe_ctx *c = rva__graph_alloc(&g, sizeof *c);
	float *sums = c ? rva__graph_alloc_array(&g, blocks ? blocks : 1, sizeof(float)) : NULL;
	if (!c || !sums)
		st = RVA_ENOMEM;
	if (st == RVA_OK) {
		*c = (probe_ctx){.bufs = bufs, .bytes = bytes, .sums = sums};
		uint32_t slot = 0, id;
		for (size_t i = 0; i < n && st == RVA_OK; i++)
			for (size_t b = 0; b * PROBE_BLOCK < bytes[i] && st == RVA_OK; b++, slot++)
				st = rva__graph_add(&g, probe_task, c, RVA__NO_SEQ, (uint32_t)i, (uint32_t)b,
				                    slot, 0, 1.0f, &id);
	}
	rva_job_stats js;
	memset(&js, 0, sizeof js);
	if (st == RVA_OK)
		st = rva__engine_run_graph(e, &g, NULL, &js);
	rva__graph_free(&g);
	if (st == RVA_OK)
		*seconds = (double)js.wall_ns * 1e-9;
	return st;
}

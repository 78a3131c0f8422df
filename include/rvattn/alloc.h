/*
 * rvattn — memory allocation hook.
 *
 * Every allocation rvattn makes for its own data goes through the allocator set here
 * (the libraries below it — BLIS, hwloc, libgomp — allocate on their own). The default
 * uses posix_memalign/free; blocks of 2 MiB or more are 2 MiB-aligned and their whole
 * 2 MiB pages are advised MADV_HUGEPAGE before first touch, so job memory, worker scratch
 * and caches stream from transparent huge pages where the system offers them (many
 * systems offer them on request only: /sys/kernel/mm/transparent_hugepage/enabled reads
 * `madvise`). An allocator installed here gets plain calls: rvattn neither realigns nor
 * advises its blocks. Tests use the hook to fail the k-th allocation and check that every
 * public function then returns RVA_ENOMEM, leaks nothing, and leaves its objects usable.
 *
 * Buffers the caller hands to rvattn (inputs, outputs) are the caller's. To stream them
 * as fast as rvattn's own memory, allocate them with rva_buffer_alloc below (or with
 * posix_memalign to 2 MiB plus madvise(MADV_HUGEPAGE), or run the program with
 * GLIBC_TUNABLES=glibc.malloc.hugetlb=1), and write them first from the threads that
 * will read them: a page lands on the NUMA node of the thread that first touches it.
 */
#ifndef RVATTN_ALLOC_H
#define RVATTN_ALLOC_H

#include <stddef.h>

#include "status.h"

RVA_BEGIN_DECLS

typedef struct rva_allocator {
	/* Returns `size` bytes aligned to `align` (a power of two >= sizeof(void*)), or NULL. */
	void *(*alloc)(size_t size, size_t align, void *user);
	/* Frees a pointer returned by alloc (never called with NULL). */
	void (*free)(void *ptr, void *user);
	void *user;
} rva_allocator;

/*
 * Installs `a` (copied) as the process-wide allocator, or restores the default when `a`
 * is NULL. Call it only while no rvattn object is alive and no other thread is inside
 * rvattn: blocks are freed through whichever allocator is current at that time.
 * Errors: RVA_EINVAL when a is non-NULL and alloc or free is NULL.
 */
rva_status rva_set_allocator(const rva_allocator *a);

/* Copies the current allocator into *out. Errors: RVA_ENULL. */
rva_status rva_get_allocator(rva_allocator *out);

/*
 * Allocates a buffer of `bytes` bytes for the caller's own data (Q, K, V, outputs) through
 * the current allocator, and stores it in *out. With the default allocator a buffer of
 * 2 MiB or more is 2 MiB-aligned with its whole 2 MiB pages advised MADV_HUGEPAGE (see
 * above); smaller ones, and every buffer of an installed allocator, are 64-byte aligned.
 * The contents are undefined and no page has been touched yet: the thread that writes a
 * page first decides its NUMA node. The caller owns the buffer and releases it with
 * rva_buffer_free (never free()), while the same allocator is installed.
 * Errors: RVA_ENULL (out is NULL), RVA_EEMPTY (bytes is 0), RVA_ENOMEM (*out is then NULL).
 */
rva_status rva_buffer_alloc(size_t bytes, void **out);

/* Releases a buffer from rva_buffer_alloc; NULL is fine. Always RVA_OK. */
rva_status rva_buffer_free(void *ptr);

RVA_END_DECLS
#endif

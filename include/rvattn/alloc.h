/*
 * rvattn — memory allocation hook.
 *
 * Every allocation rvattn makes for its own data goes through the allocator set here
 * (the libraries below it — BLIS, hwloc, libgomp — allocate on their own). The default
 * uses aligned_alloc/free. Tests use the hook to fail the k-th allocation and check that
 * every public function then returns RVA_ENOMEM, leaks nothing, and leaves its objects
 * usable.
 */
#ifndef RVATTN_ALLOC_H
#define RVATTN_ALLOC_H

#include <stddef.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif
#endif

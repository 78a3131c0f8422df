/*
 * The test allocator for fault injection (installed with rva_set_allocator): counts the
 * allocations asked for and the blocks alive, and can refuse the k-th allocation (or
 * every one from the k-th on). Thread-safe: engine workers allocate too.
 */
#ifndef RVATTN_TESTS_REF_FAULT_ALLOC_H
#define RVATTN_TESTS_REF_FAULT_ALLOC_H

#include <stdbool.h>

#include "rvattn/status.h"

/* Installs the allocator, disarmed (counting only). */
rva_status ref_fault_install(void);

/* Restores the default allocator. */
void ref_fault_uninstall(void);

/* Refuses the allocation with 0-based index k counted from this call and, when sticky,
 * every later one; k < 0 refuses none. Resets the asked/refused counts. */
void ref_fault_arm(long k, bool sticky);

/* Stops refusing; counting goes on. */
void ref_fault_disarm(void);

long ref_fault_count(void);  /* allocations asked for since ref_fault_arm */
long ref_fault_failed(void); /* allocations refused since ref_fault_arm */
long ref_fault_live(void);   /* blocks allocated through it and not yet freed */
#endif

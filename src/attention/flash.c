/*
 * Flash attention (FlashAttention-2 forward): multi-head numbers computed in tiles of
 * block_size keys with online softmax, O(tile) memory per worker, causal tiles above the
 * diagonal skipped, split-KV (flash-decoding) for few queries over many keys. The engine
 * is softmax_core.c; flash differs from multi_head only by taking block_size from the
 * user (rva_flash(dim, block)).
 */
#include "attention/softmax_core.h"

const rva__mech_ops rva__flash_ops = RVA__SOFTMAX_OPS(RVA_MECH_FLASH);

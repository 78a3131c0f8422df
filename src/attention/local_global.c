/*
 * Local-global attention (Longformer): query i attends keys within its window
 * (|i - j| <= window/2, or the `window` previous keys and itself when causal) plus the
 * global tokens; global tokens attend every key (symmetric). A global key inside the
 * window is counted once (the pattern is a predicate, not a sum of two masks). Run by
 * the softmax tile engine with the pattern as a block-sparse tile list: tiles outside
 * the band and free of global tokens are skipped before any work, so the cost is
 * O(n * (window + globals)).
 */
#include "attention/softmax_core.h"

const rva__mech_ops rva__local_global_ops = RVA__SOFTMAX_OPS(RVA_MECH_LOCAL_GLOBAL);

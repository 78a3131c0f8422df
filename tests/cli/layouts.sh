#!/bin/bash
# Attention-op layouts and outputs of rvattn run (include/rvattn/batch.h, config.h):
# --layout bhsd (PyTorch's [B, heads, N, head_dim] files read in place through head
# strides, the output written so), --v-head-dim (V and output heads of their own width,
# MLA's 192/128), --lse FILE ([B, heads, N] log-sum-exp) against the float64 oracle
# (tests/cli/attn_oracle.py), GQA, causal with nq > nk (rows that see no key: zeros and
# -inf), 1 and 2 threads byte-identical; misuse is a usage error (exit 2), a file of the
# wrong shape a runtime error (exit 1).
source "$(dirname "$0")/lib.bash"
need_numpy
O="$PY $ORACLE"

"$PY" - <<'PYEOF' || fail "cannot write the input files"
import numpy as np
r = np.random.default_rng(11)
f = lambda *s: r.standard_normal(s).astype(np.float32)
# [B, H, N, D]: 2 sequences, 4 heads over 2 kv heads of 8, 13 queries over 21 keys
np.save("h_q.npy", f(2, 4, 13, 8)); np.save("h_k.npy", f(2, 2, 21, 8))
np.save("h_v.npy", f(2, 2, 21, 8)); np.save("h_v5.npy", f(2, 2, 21, 5))
# [B, N, H, D] with V heads of 5; nq > nk with causal (rows 0-3 see no key)
np.save("s_q.npy", f(2, 13, 4, 8)); np.save("s_k.npy", f(2, 9, 2, 8))
np.save("s_v5.npy", f(2, 9, 2, 5)); np.save("s_v.npy", f(2, 9, 2, 8))
np.save("flat.npy", f(2, 13, 32))
PYEOF

run() { expect_rc 0 "$RVATTN" run --mechanism flash --heads 4 --block 8 "$@"; }
check() { $O check "$@" >"$T/oracle" 2>&1 || fail "oracle $*: $(cat "$T/oracle")"; }

# [B, H, S, D] files, GQA, causal, LSE
run --layout bhsd --causal --q h_q.npy --k h_k.npy --v h_v.npy --out o1.npy --lse l1.npy &&
	check h_q.npy h_k.npy h_v.npy o1.npy 4 causal 2e-5 layout=bhsd lse=l1.npy
grep -q 'layout \[B, heads, N, head_dim\]' "$T/out" || fail "layout not reported: $(head -1 "$T/out")"
run --layout bhsd --causal --q h_q.npy --k h_k.npy --v h_v.npy --out o2.npy --lse l2.npy \
	--threads 2
cmp -s o1.npy o2.npy && cmp -s l1.npy l2.npy || fail "bhsd: 1 and 2 threads differ"
# the same data as [B, N, H, D] rows: the same numbers
"$PY" -c "
import numpy as np
for n in 'qkv':
    np.save('t_%s.npy' % n, np.ascontiguousarray(np.load('h_%s.npy' % n).transpose(0, 2, 1, 3)))
" || fail "transpose"
run --causal --q t_q.npy --k t_k.npy --v t_v.npy --out o3.npy --lse l3.npy
"$PY" -c "
import numpy as np, sys
a = np.load('o1.npy').transpose(0, 2, 1, 3); b = np.load('o3.npy')
sys.exit(0 if np.array_equal(a, b) and np.array_equal(np.load('l1.npy'), np.load('l3.npy')) else 1)
" || fail "bhsd and bshd outputs differ"
# V heads of 5 (rows of 2 x 5), nq > nk causal: 4 rows with no key; bhsd with Dv
run --causal --v-head-dim 5 --q s_q.npy --k s_k.npy --v s_v5.npy --out o4.npy --lse l4.npy &&
	check s_q.npy s_k.npy s_v5.npy o4.npy 4 causal 2e-5 vhd=5 lse=l4.npy
grep -q 'V and output heads of 5' "$T/out" || fail "v_head_dim not reported"
run --layout bhsd --v-head-dim 5 --q h_q.npy --k h_k.npy --v h_v5.npy --out o5.npy &&
	check h_q.npy h_k.npy h_v5.npy o5.npy 4 - 2e-5 layout=bhsd vhd=5
# MLA's shape on synthetic inputs (192/128, decode and prefill), JSON names it
for s in 1 19; do
	expect_rc 0 "$RVATTN" run --mechanism multi_head --heads 2 --dim 384 --v-head-dim 128 \
		--batch 2 --seq $s --kv-seq 40 --layout bhsd --out m.npy --json
	"$PY" -c "
import json, numpy as np, sys
c = json.load(open('$T/out'))['config']
assert c['v_head_dim'] == 128 and c['head_dim'] == 192 and c['layout'] == 'bhsd', c
o = np.load('m.npy'); assert o.shape == (2, 2, $s, 128) and np.isfinite(o).all(), o.shape
" || fail "MLA seq $s: $(head -c 300 "$T/out")"
done
# misuse
expect_rc 2 "$RVATTN" run --mechanism linear --v-head-dim 16 --dim 64 --batch 1 --seq 4
expect_rc 2 "$RVATTN" run --mechanism hyperbolic --lse x.npy --dim 64 --batch 1 --seq 4
expect_rc 2 "$RVATTN" run --mechanism flash --layout bsdh --dim 64 --batch 1 --seq 4
expect_rc 2 "$RVATTN" run --mechanism flash --heads 4 --v-head-dim 5 --q s_q.npy
expect_rc 1 "$RVATTN" run --mechanism flash --heads 4 --layout bhsd --q flat.npy
grep -q 'expects \[B, heads, N, head_dim\]' "$T/err" || fail "3-D file with bhsd: $(cat "$T/err")"
expect_rc 1 "$RVATTN" run --mechanism flash --heads 4 --v-head-dim 6 --q s_q.npy --k s_k.npy \
	--v s_v5.npy
expect_rc 2 "$RVATTN" run --mechanism flash --heads 4 --out same.npy --lse same.npy --dim 32 \
	--batch 1 --seq 4
exit $((FAILS > 0))

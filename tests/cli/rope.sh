#!/bin/bash
# The RoPE flags of rvattn run (--rope, --rope-theta, --rope-scaling, --rope-factor,
# --rope-dim) against the float64 oracle (tests/cli/attn_oracle.py): both layouts, theta,
# linear and NTK scaling, partial rotary, GQA, causal, decode (one query over many keys:
# the query rotates at the last position); the report and JSON name them; 1 and 2 threads
# give byte-identical files; bad values are usage errors (exit 2).
source "$(dirname "$0")/lib.bash"
need_numpy
O="$PY $ORACLE"

ORACLE_TOL=3e-5

# 2 sequences, 13 queries over 21 keys, 4 heads over 2 kv heads of 16
$O make a 1 2,13,64 2,21,32
flash_run a 4 --rope neox && oracle_check a 4 - rope=neox
grep -q 'RoPE neox (theta 10000, rope_dim 16)' "$T/out" || fail "RoPE not reported: $(head -1 "$T/out")"
flash_run a 4 --rope gptj --causal --rope-theta 500000 && oracle_check a 4 causal rope=gptj theta=500000
flash_run a 4 --rope neox --causal --rope-scaling linear --rope-factor 4 &&
	oracle_check a 4 causal rope=neox rscale=linear rfactor=4
flash_run a 4 --rope neox --rope-scaling ntk --rope-factor 8 --rope-dim 8 &&
	oracle_check a 4 - rope=neox rscale=ntk rfactor=8 rdim=8
grep -q 'ntk x8' "$T/out" || fail "scaling not reported: $(head -1 "$T/out")"
flash_run a 4 --rope gptj --causal --causal-align top-left && oracle_check a 4 causal rope=gptj align=top-left
flash_run a 4 --rope neox --causal --threads 1 && cp a_out.npy a_out1.npy
flash_run a 4 --rope neox --causal --threads 2
cmp -s a_out.npy a_out1.npy || fail "1 and 2 threads differ"
expect_rc 0 "$RVATTN" run --mechanism flash --heads 4 --q a_q.npy --k a_k.npy --v a_v.npy \
	--rope gptj --rope-theta 1e6 --rope-scaling linear --rope-factor 2 --rope-dim 12 --json
"$PY" - "$T/out" <<'PYEOF' || fail "JSON config: $(head -c 600 "$T/out")"
import json, sys
c = json.load(open(sys.argv[1]))["config"]
assert c["rope"] == "gptj" and c["rope_theta"] == 1e6 and c["rope_dim"] == 12, c
assert c["rope_scaling"] == "linear" and c["rope_factor"] == 2, c
PYEOF
# one query over many keys (the decode path: split-KV chunks, the decode kernels)
$O make d 2 1,1,128 1,3000,64
expect_rc 0 "$RVATTN" run --mechanism flash --heads 4 --q d_q.npy --k d_k.npy --v d_v.npy \
	--out d_out.npy --causal --rope neox --rope-theta 500000 &&
	oracle_check d 4 causal rope=neox theta=500000

# --rope none takes a decoder preset's RoPE away (and its theta with it)
expect_rc 0 "$RVATTN" run --preset llama-3 --dim 64 --batch 1 --seq 4 --rope none
grep -q 'RoPE' "$T/out" && fail "--rope none still rotates: $(head -1 "$T/out")"

# refusals
expect_rc 2 "$RVATTN" run --mechanism flash --rope sideways
expect_rc 2 "$RVATTN" run --mechanism flash --rope neox --rope-theta -3
expect_rc 2 "$RVATTN" run --mechanism flash --rope neox --rope-dim 7
expect_rc 2 "$RVATTN" run --mechanism flash --rope neox --rope-scaling yarn
expect_rc 2 "$RVATTN" run --mechanism linear --rope neox
expect_rc 2 "$RVATTN" run --mechanism flash --heads 4 --rope neox --rope-dim 400 --batch 1 --seq 4
"$RVATTN" run --help | grep -q -- '--rope-theta T' || fail "rvattn run --help does not list --rope-theta"
finish

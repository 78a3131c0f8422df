#!/bin/bash
# The sparse pattern flags of rvattn run (--pattern strided|fixed, --stride, --summary)
# against the float64 oracle (tests/cli/attn_oracle.py), alone, with score modifiers and
# with GQA; the report and JSON name them; 1 and 2 threads give byte-identical files; the
# sparse_transformer preset takes --stride; bad values are usage errors (exit 2).
source "$(dirname "$0")/lib.bash"
need_numpy
O="$PY $ORACLE"

FLASH_BLOCK=16

# 2 sequences of 150 queries over 170 keys, 4 heads over 2 kv heads of 8
$O make a 3 2,150,32 2,170,16
flash_run a 4 --pattern strided --stride 9 && oracle_check a 4 causal strided=9
grep -q 'strided sparse (stride 9)' "$T/out" || fail "strided not reported: $(head -1 "$T/out")"
flash_run a 4 --pattern fixed --stride 16 --summary 3 && oracle_check a 4 causal fixed=16,3
grep -q 'fixed sparse (stride 16, summary 3)' "$T/out" || fail "fixed not reported: $(head -1 "$T/out")"
flash_run a 4 --pattern fixed --stride 10 && oracle_check a 4 causal fixed=10,10
flash_run a 4 --pattern strided --stride 12 --causal-align top-left --window-left 30 --softcap 3 \
	--alibi && oracle_check a 4 causal strided=12 align=top-left window=30,-1 softcap=3 alibi=1
cp a_out.npy a_out1.npy
flash_run a 4 --pattern strided --stride 12 --causal-align top-left --window-left 30 --softcap 3 \
	--alibi --threads 2
cmp -s a_out.npy a_out1.npy || fail "strided: 1 and 2 threads differ"
flash_run a 4 --pattern fixed --stride 20 --summary 4 --alibi --softcap 5 && oracle_check a 4 causal fixed=20,4 alibi=1 softcap=5
cp a_out.npy a_out1.npy
flash_run a 4 --pattern fixed --stride 20 --summary 4 --alibi --softcap 5 --threads 2
cmp -s a_out.npy a_out1.npy || fail "fixed: 1 and 2 threads differ"
expect_rc 0 "$RVATTN" run --mechanism flash --heads 4 --q a_q.npy --k a_k.npy --v a_v.npy \
	--pattern fixed --stride 32 --summary 8 --json
"$PY" - "$T/out" <<'PYEOF' || fail "JSON config: $(head -c 400 "$T/out")"
import json, sys
c = json.load(open(sys.argv[1]))["config"]
assert c["pattern"] == "fixed" and c["sparse_stride"] == 32 and c["sparse_summary"] == 8, c
assert c["causal"] is True, c
PYEOF
# the preset takes --stride
expect_rc 0 "$RVATTN" run --preset sparse_transformer --dim 64 --heads 2 --batch 1 --seq 40 \
	--stride 8
grep -q 'strided sparse (stride 8)' "$T/out" || fail "preset stride not applied: $(head -1 "$T/out")"

# refusals
expect_rc 2 "$RVATTN" run --mechanism flash --pattern diagonal
expect_rc 2 "$RVATTN" run --mechanism flash --stride 8
expect_rc 2 "$RVATTN" run --mechanism flash --pattern strided --summary 4
expect_rc 2 "$RVATTN" run --mechanism linear --pattern strided
expect_rc 2 "$RVATTN" run --mechanism flash --pattern fixed --stride x
expect_rc 2 "$RVATTN" run --mechanism flash --pattern fixed --stride 8 --summary 9 --seq 16 --batch 1
"$RVATTN" run --help | grep -q -- "--pattern P" || fail "rvattn run --help does not list --pattern"
finish

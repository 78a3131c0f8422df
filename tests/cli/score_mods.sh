#!/bin/bash
# The score-modifier flags of rvattn run (--causal-align, --window-left/--window-right,
# --softcap, --alibi, --alibi-slopes, --bias, --mask, and the per-call --scale) against the
# float64 oracle (tests/cli/attn_oracle.py), alone and combined, GQA and nq != nk; the
# report and JSON name them; 1 and 2 threads give byte-identical files; bad values are
# usage errors (exit 2) and a bad file exit 1.
source "$(dirname "$0")/lib.bash"
need_numpy
O="$PY $ORACLE"


# 2 sequences, 13 queries over 21 keys, 4 heads over 2 kv heads of 8
$O make a 1 2,13,32 2,21,16
"$PY" - <<'PYEOF' || fail "cannot write the bias and mask files"
import numpy as np
r = np.random.default_rng(5)
np.save("bias2.npy", r.uniform(-2, 2, (13, 21)).astype(np.float32))
b3 = r.uniform(-2, 2, (4, 13, 21)).astype(np.float32)
b3[:, ::3, 5] = -np.inf
np.save("bias3.npy", b3)
np.save("mask2.npy", (r.uniform(size=(13, 21)) > 0.2).astype(np.float32))
np.save("mask3.npy", (r.uniform(size=(4, 13, 21)) > 0.3).astype(np.float32))
np.save("badshape.npy", np.zeros((13, 20), np.float32))
PYEOF

flash_run a 4 --causal --causal-align top-left && oracle_check a 4 causal align=top-left
grep -q 'top-left aligned' "$T/out" || fail "top-left not reported: $(head -1 "$T/out")"
flash_run a 4 --causal --causal-align bottom-right && oracle_check a 4 causal
flash_run a 4 --window-left 3 --window-right 2 && oracle_check a 4 - window=3,2
grep -q 'window (3, 2)' "$T/out" || fail "window not reported: $(head -1 "$T/out")"
flash_run a 4 --causal --window-left 4 && oracle_check a 4 causal window=4,-1
flash_run a 4 --causal --causal-align top-left --window-left 2 && oracle_check a 4 causal align=top-left window=2,-1
flash_run a 4 --window-right 0 && oracle_check a 4 - window=-1,0
flash_run a 4 --softcap 1.5 && oracle_check a 4 - softcap=1.5
grep -q 'softcap 1.5' "$T/out" || fail "softcap not reported"
flash_run a 4 --alibi --causal && oracle_check a 4 causal alibi=1
grep -q 'ALiBi' "$T/out" || fail "ALiBi not reported"
flash_run a 4 --bias bias2.npy && oracle_check a 4 - bias=bias2.npy
flash_run a 4 --bias bias3.npy --causal && oracle_check a 4 causal bias=bias3.npy
grep -q 'bias per head' "$T/out" || fail "per-head bias not reported"
flash_run a 4 --mask mask2.npy && oracle_check a 4 - mask=mask2.npy
flash_run a 4 --mask mask3.npy --causal --causal-align top-left && oracle_check a 4 causal align=top-left mask=mask3.npy
flash_run a 4 --causal --causal-align top-left --window-left 5 --softcap 2 --alibi --bias bias3.npy \
	--mask mask2.npy && oracle_check a 4 causal align=top-left window=5,-1 softcap=2 alibi=1 \
	bias=bias3.npy mask=mask2.npy
cp a_out.npy a_out1.npy
flash_run a 4 --causal --causal-align top-left --window-left 5 --softcap 2 --alibi --bias bias3.npy \
	--mask mask2.npy --threads 2
cmp -s a_out.npy a_out1.npy || fail "1 and 2 threads differ"
expect_rc 0 "$RVATTN" run --mechanism flash --heads 4 --q a_q.npy --k a_k.npy --v a_v.npy \
	--causal-align top-left --window-left 1 --window-right 1 --softcap 3 --alibi --json
"$PY" - "$T/out" <<'PYEOF' || fail "JSON config: $(cat "$T/out" | head -c 400)"
import json, sys
c = json.load(open(sys.argv[1]))["config"]
assert c["causal_align"] == "top-left", c
assert c["window_size"] == [1, 1], c
assert c["softcap"] == 3 and c["alibi"] is True, c
PYEOF
# one query over many keys (the decode path), window and ALiBi
$O make d 2 1,1,64 1,700,64
expect_rc 0 "$RVATTN" run --mechanism flash --heads 4 --q d_q.npy --k d_k.npy --v d_v.npy \
	--out d_out.npy --causal --window-left 100 --alibi --softcap 4 &&
	oracle_check d 4 causal window=100,-1 alibi=1 softcap=4

# given ALiBi slopes (--alibi-slopes: .npy [heads]); the default slopes are far from them
"$PY" -c 'import numpy as np; np.save("slopes.npy", np.array([0.9, 0.05, 0.4, 0.0], np.float32)); np.save("slopes3.npy", np.ones(3, np.float32))' ||
	fail "cannot write the slopes files"
flash_run a 4 --causal --alibi-slopes slopes.npy && oracle_check a 4 causal slopes=slopes.npy
grep -q 'ALiBi (given slopes)' "$T/out" || fail "given slopes not reported: $(head -1 "$T/out")"
"$PY" "$ORACLE" check a_q.npy a_k.npy a_v.npy a_out.npy 4 causal 2e-5 alibi=1 >/dev/null 2>&1 &&
	fail "--alibi-slopes gives the default slopes' output"
flash_run a 4 --causal-align top-left --window-left 6 --window-right 2 --alibi-slopes \
	slopes.npy --softcap 3 && oracle_check a 4 - align=top-left window=6,2 slopes=slopes.npy \
	softcap=3
expect_rc 2 "$RVATTN" run --mechanism flash --heads 4 --q a_q.npy --k a_k.npy --v a_v.npy \
	--alibi-slopes slopes3.npy
expect_rc 1 "$RVATTN" run --mechanism flash --heads 4 --alibi-slopes missing.npy
expect_rc 2 "$RVATTN" run --mechanism linear --alibi-slopes slopes.npy

# the per-call scale (rva_runtime.scale): alone, with the modifiers, on the decode path;
# the report and JSON name it; the default scale is far from it
flash_run a 4 --scale 0.9 && oracle_check a 4 - scale=0.9
grep -q 'scale 0.9 per call' "$T/out" || fail "scale not reported: $(head -1 "$T/out")"
"$PY" "$ORACLE" check a_q.npy a_k.npy a_v.npy a_out.npy 4 - 2e-5 >/dev/null 2>&1 &&
	fail "--scale 0.9 gives the default scale's output"
flash_run a 4 --scale 0.05 --causal --causal-align top-left --softcap 2 --alibi \
	--bias bias3.npy && oracle_check a 4 causal scale=0.05 align=top-left softcap=2 alibi=1 \
	bias=bias3.npy
expect_rc 0 "$RVATTN" run --mechanism flash --heads 4 --q d_q.npy --k d_k.npy --v d_v.npy \
	--out d_out.npy --causal --scale 0.3 && oracle_check d 4 causal scale=0.3
expect_rc 0 "$RVATTN" run --mechanism flash --heads 4 --q a_q.npy --k a_k.npy --v a_v.npy \
	--scale 0.25 --json
"$PY" -c 'import json,sys; assert json.load(open(sys.argv[1]))["config"]["call_scale"] == 0.25' \
	"$T/out" || fail "JSON call_scale: $(head -c 400 "$T/out")"

# refusals
expect_rc 2 "$RVATTN" run --mechanism flash --scale 0
expect_rc 2 "$RVATTN" run --mechanism flash --scale nan
expect_rc 2 "$RVATTN" run --mechanism linear --scale 0.5
expect_rc 2 "$RVATTN" run --mechanism flash --causal-align middle
expect_rc 2 "$RVATTN" run --mechanism flash --softcap -1
expect_rc 2 "$RVATTN" run --mechanism flash --window-left x
expect_rc 2 "$RVATTN" run --mechanism linear --alibi
expect_rc 2 "$RVATTN" run --mechanism hyperbolic --softcap 3
expect_rc 2 "$RVATTN" run --mechanism flash --heads 4 --q a_q.npy --k a_k.npy --v a_v.npy \
	--bias badshape.npy
expect_rc 1 "$RVATTN" run --mechanism flash --heads 4 --q a_q.npy --k a_k.npy --v a_v.npy \
	--mask missing.npy
expect_rc 2 "$RVATTN" run --mechanism flash --batch 3 --seq 4 --kv-seq 4-9 --bias bias2.npy
"$RVATTN" run --help | grep -q -- '--window-left L --window-right R' ||
	fail "rvattn run --help does not list the window flags"
finish

#!/bin/bash
# rvattn run --weights DIR (MoE router and expert projections from .npy files): the output
# equals the PyTorch float64 Mixture-of-Attention-Heads fixture (tests/ref/moa_torch.py),
# 1 and 2 threads give byte-identical files, missing files are seeded, and bad directories
# fail with one line (exit 1 bad files, exit 2 not a moe configuration).
source "$(dirname "$0")/lib.bash"
need_numpy
FX="$SOURCE_DIR/tests/fixtures/moe"

# run_case NAME DIM HEADS EXPERTS TOPK CAPACITY [--causal]: runs the fixture's inputs and
# weights through the CLI and compares with its out.npy (2e-5 + 2e-4 |want|).
run_case() {
	local n=$1 d=$2 h=$3 e=$4 k=$5 cap=$6
	shift 6
	local F="$FX/$n"
	for t in 1 2; do
		expect_rc 0 "$RVATTN" run --mechanism moe --dim "$d" --heads "$h" --experts "$e" \
			--top-k "$k" --capacity "$cap" --expert-kind standard "$@" --q "$F/x.npy" \
			--k "$F/k.npy" --v "$F/v.npy" --weights "$F" --threads "$t" --out "${n}_$t.npy" ||
			return
	done
	grep -q "moe weights from $F: router wq wo wk wv$" "$T/out" ||
		fail "$n: weights not reported: $(grep weights "$T/out")"
	cmp -s "${n}_1.npy" "${n}_2.npy" || fail "$n: 1 and 2 threads differ"
	"$PY" - "${n}_1.npy" "$F/out.npy" <<'PYEOF' >"$T/cmp" 2>&1 || fail "$n: $(cat "$T/cmp")"
import sys
import numpy as np
got, want = np.load(sys.argv[1]), np.load(sys.argv[2])
assert got.shape == want.shape, (got.shape, want.shape)
err = np.abs(got.astype(np.float64) - want) / (2e-5 + 2e-4 * np.abs(want))
assert err.max() <= 1.0, f"error ratio {err.max():.3g} against torch float64"
PYEOF
}

# top-1 needs Switch gates: the CLI keeps the library default (raw for k = 1)
run_case d8_h2_k1 8 2 4 1 1.0
run_case d32_h4_k2 32 4 4 2 0.75
run_case d32_h4_k2_causal 32 4 6 2 1.25 --causal
run_case d64_h8_k2 64 8 4 2 1.0

# A partial directory: the missing matrices are seeded (same as without --weights for
# those), and the output changes with the weights given.
mkdir part
cp "$FX/d32_h4_k2/router.npy" part/
F="$FX/d32_h4_k2"
base=(run --mechanism moe --dim 32 --heads 4 --experts 4 --top-k 2 --expert-kind standard
	--q "$F/x.npy" --k "$F/k.npy" --v "$F/v.npy" --threads 1)
expect_rc 0 "$RVATTN" "${base[@]}" --weights part --out p.npy &&
	grep -q "moe weights from part: router (the others seeded)" "$T/out" ||
	fail "partial directory not reported: $(cat "$T/out")"
expect_rc 0 "$RVATTN" "${base[@]}" --out s.npy
cmp -s p.npy s.npy && fail "the router from part/ changed nothing"

# Per-expert K/V projections: [E, kv_dim, kv_dim] stacks.
mkdir per
"$PY" - "$F" per <<'PYEOF'
import sys
import numpy as np
src, dst = sys.argv[1], sys.argv[2]
wk = np.load(src + "/wk.npy")
np.save(dst + "/wk.npy", np.stack([wk * (1.0 + 0.1 * e) for e in range(4)]).astype(np.float32))
PYEOF
expect_rc 0 "$RVATTN" "${base[@]}" --weights per --out per.npy &&
	grep -q "moe weights from per: wk (the others seeded)" "$T/out" || fail "per-expert wk"

# Bad directories and files: one line, exit 1, no output file.
bad() { # bad PATTERN DIR
	rm -f bad.npy
	expect_rc 1 "$RVATTN" "${base[@]}" --weights "$2" --out bad.npy && expect_err_line "$1"
	[ -e bad.npy ] && fail "an output file after a failure ($2)"
}
mkdir empty
bad "empty holds none of router.npy, wq.npy, wo.npy, wk.npy, wv.npy" empty
mkdir shape
cp "$FX/d8_h2_k1/wq.npy" shape/
bad "shape/wq.npy has shape \[4, 8, 8\], the configuration needs \[4, 32, 32\]" shape
mkdir nan
"$PY" - "$F" nan <<'PYEOF'
import sys
import numpy as np
wo = np.load(sys.argv[1] + "/wo.npy")
wo[2, 3, 4] = np.nan
np.save(sys.argv[2] + "/wo.npy", wo)
PYEOF
bad "nan/wo.npy: element [0-9]+ is nan, not a finite number" nan
mkdir mixed
cp "$F/wk.npy" mixed/
cp per/wk.npy mixed/wv.npy
bad "mixed/wk.npy has shape \[32, 32\], the configuration needs \[4, 32, 32\]" mixed
printf 'not npy' >junk.npy
mkdir junk && mv junk.npy junk/router.npy
bad "junk/router.npy" junk

# Not an moe configuration: a usage error.
expect_rc 2 "$RVATTN" run --mechanism multi_head --dim 32 --heads 4 --weights "$F" \
	--q "$F/x.npy" && expect_err_line "--weights applies to moe, the mechanism is multi_head"
expect_rc 2 "$RVATTN" run --mechanism moe --expert-kind nosuch --q "$F/x.npy" &&
	expect_err_line "--expert-kind 'nosuch': known kinds"

finish

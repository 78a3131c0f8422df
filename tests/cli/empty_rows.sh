#!/bin/bash
# Rows with no visible key (--causal with --seq N > --kv-seq M: the first N - M rows of
# every sequence) come out as zeros from `rvattn run`, for every mechanism that masks
# causally, and the other rows are finite (PyTorch's SDPA would give NaN rows). The help
# says so.
source "$(dirname "$0")/lib.bash"
need_numpy

for mech in multi_head flash local_global linear hyperbolic; do
	extra=""
	[ "$mech" = local_global ] && extra="--window 2 --global 0"
	expect_rc 0 "$RVATTN" run --mechanism "$mech" --dim 16 --heads 2 --batch 3 --seq 9 \
		--kv-seq 4 --causal $extra --out "e_$mech.npy" || continue
	"$PY" - "e_$mech.npy" <<'PYEOF' >"$T/check" 2>&1 || fail "$mech: $(cat "$T/check")"
import sys
import numpy as np
o = np.load(sys.argv[1])
assert o.shape == (3, 9, 16), o.shape
empty, rest = o[:, :5], o[:, 5:]
assert np.all(empty == 0) and not np.any(np.signbit(empty)), "rows 0-4 are not +0"
assert np.all(np.isfinite(rest)), "visible rows are not finite"
assert np.any(rest != 0), "visible rows are all zero"
PYEOF
done
"$RVATTN" run --help | tr '\n' ' ' | grep -q 'no visible key.*zeros.*NaN' ||
	fail "rvattn run --help does not say what a row with no visible key gives"

finish

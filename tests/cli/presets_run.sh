#!/bin/bash
# Every preset, every mechanism and some model names run through `rvattn run` on a small
# shape, give finite outputs, and the same bytes with 1 and 2 threads.
source "$(dirname "$0")/lib.bash"

small="--dim 48 --batch 2 --seq 16"
finite() { # finite FILE: the output .npy has only finite values
	"$PY" -c 'import numpy as np, sys; a = np.load(sys.argv[1]); assert a.shape == (2, 16, 48) and np.isfinite(a).all(), a.shape' "$1" ||
		fail "$1 has non-finite values or a wrong shape"
}

for p in bert gpt longformer performer flash_optimized switch_transformer hyperbolic_tree t5 \
	vit sparse_transformer; do
	expect_rc 0 "$RVATTN" run --preset "$p" $small --threads 1 --out "$p.1.npy" || continue
	grep -q "^config: preset $p -> " "$T/out" || fail "$p: config line: $(head -1 "$T/out")"
	expect_rc 0 "$RVATTN" run --preset "$p" $small --threads 2 --out "$p.2.npy" || continue
	cmp -s "$p.1.npy" "$p.2.npy" || fail "$p: --threads 1 and 2 outputs differ"
	finite "$p.1.npy"
done

for m in "scaled_dot" "multi_head --heads 4 --kv-heads 2" "flash --heads 4 --block 8 --causal" \
	"linear --heads 4 --features 16" "local_global --heads 4 --window 4 --global 2" \
	"hyperbolic --curvature -0.5" "moe --experts 4 --top-k 2 --capacity 1.0"; do
	name=${m%% *}
	expect_rc 0 "$RVATTN" run --mechanism $m $small --threads 1 --out "$name.1.npy" || continue
	expect_rc 0 "$RVATTN" run --mechanism $m $small --threads 2 --out "$name.2.npy" || continue
	cmp -s "$name.1.npy" "$name.2.npy" || fail "$m: --threads 1 and 2 outputs differ"
	finite "$name.1.npy"
done
grep -q '^moe: 32 tokens, 4 experts' "$T/out" || fail "moe run does not print its statistics: $(cat "$T/out")"

for model in bert-base gpt2 t5-small vit-base; do
	expect_rc 0 "$RVATTN" run --model "$model" $small && grep -q "^config: model $model -> " "$T/out" ||
		fail "--model $model"
done

finish

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
	vit sparse_transformer llama-2 llama-3 mistral gemma-2 qwen2; do
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

# The decoder presets at their real dims (the default dim of a decoder preset is its
# model's), against the float64 oracle with RoPE: query and key files of the model's
# widths, one sequence of 24 rows, causal.
need_numpy
O="$PY $ORACLE"
decoder() { # decoder PRESET KV_COLS HEADS CONFIG_PATTERN ORACLE_MODS... [-- FLAGS]
	local p=$1 kvc=$2 h=$3 pat=$4 dim
	shift 4
	local mods=() flags=()
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do mods+=("$1"); shift; done
	[ "${1:-}" = "--" ] && shift && flags=("$@")
	dim=$((h * 128))
	[ "$p" = gemma-2 ] && dim=4096
	$O make "$p" 3 1,24,$dim 1,24,$kvc
	expect_rc 0 "$RVATTN" run --preset "$p" --q "${p}_q.npy" --k "${p}_k.npy" --v "${p}_v.npy" \
		--out "${p}_out.npy" "${flags[@]}" || return
	grep -qE -- "$pat" "$T/out" || fail "$p: config line: $(head -1 "$T/out")"
	$O check "${p}_q.npy" "${p}_k.npy" "${p}_v.npy" "${p}_out.npy" "$h" causal 3e-5 \
		"${mods[@]}" >"$T/oracle" 2>&1 || fail "$p: $(cat "$T/oracle")"
}
decoder llama-2 4096 32 'dim 4096, 32 heads of 128.*RoPE neox \(theta 10000, rope_dim 128\)' \
	rope=neox theta=10000
decoder llama-3 1024 32 'dim 4096, 32 heads \(8 kv heads\) of 128.*RoPE neox \(theta 500000' \
	rope=neox theta=500000
decoder mistral 1024 32 'window \(4095, 0\).*RoPE neox' rope=neox window=4095,0
decoder qwen2 512 28 'dim 3584, 28 heads \(4 kv heads\) of 128.*theta 1e\+06' rope=neox theta=1000000
decoder gemma-2 2048 16 'preset gemma-2 -> flash, dim 4096, 16 heads \(8 kv heads\) of 256.*window \(4095, 0\), softcap 50.*RoPE neox' \
	rope=neox softcap=50 window=4095,0
decoder gemma-2 2048 16 'preset gemma-2 layer 1 -> .*softcap 50.*RoPE' rope=neox softcap=50 \
	-- --layer 1
grep -q 'window' "$T/out" && fail "gemma-2 layer 1 is global, but: $(head -1 "$T/out")"
expect_rc 0 "$RVATTN" run --preset gemma-2 --layer 2 --batch 1 --seq 8
grep -q 'window (4095, 0)' "$T/out" || fail "gemma-2 layer 2 is local: $(head -1 "$T/out")"
expect_rc 2 "$RVATTN" run --model gpt2 --layer 1
expect_rc 0 "$RVATTN" run --model llama-3-8b --batch 1 --seq 8
grep -q 'dim 4096, 32 heads' "$T/out" || fail "--model llama-3-8b: $(head -1 "$T/out")"

finish

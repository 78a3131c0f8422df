#!/bin/bash
# rvattn: help, version, the default job, usage errors (exit 2, one line on stderr).
source "$(dirname "$0")/lib.bash"

# Help on every command and at top level; version.
for c in "" run bench topo presets; do
	expect_rc 0 "$RVATTN" $c --help && grep -q '^Usage: rvattn' "$T/out" ||
		fail "rvattn $c --help prints no usage"
	[ -s "$T/err" ] && fail "rvattn $c --help writes to stderr"
done
expect_rc 0 "$RVATTN" help run && grep -q '^Usage: rvattn run' "$T/out" || fail "rvattn help run"
expect_rc 0 "$RVATTN" --version && grep -q '^rvattn [0-9]' "$T/out" || fail "--version"
grep -q 'BLIS kernels' "$T/out" || fail "--version does not name the BLIS kernels"

# Usage errors: exit 2, one line naming the problem.
tiny="--mechanism scaled_dot --dim 16 --batch 1 --seq 4"
expect_rc 2 "$RVATTN" frobnicate && expect_err_line "unknown command 'frobnicate'"
expect_rc 2 "$RVATTN" --frob && expect_err_line "unknown option --frob"
expect_rc 2 "$RVATTN" run --frob && expect_err_line "unknown option --frob"
expect_rc 2 "$RVATTN" run --heads && expect_err_line "option --heads needs a value"
expect_rc 2 "$RVATTN" run --heads x && expect_err_line "--heads 'x' is not a positive integer"
expect_rc 2 "$RVATTN" run --heads 0 && expect_err_line "--heads must be > 0"
expect_rc 2 "$RVATTN" run --heads 5 --dim 768 && expect_err_line "--heads 5 does not divide --dim 768"
expect_rc 2 "$RVATTN" run --dim 64 --heads 4 --kv-heads 3 &&
	expect_err_line "--kv-heads 3 does not divide --heads 4"
expect_rc 2 "$RVATTN" run --batch 99999999999999999999999 && expect_err_line "too large"
expect_rc 2 "$RVATTN" run --curvature abc && expect_err_line "not a finite number"
expect_rc 2 "$RVATTN" run --preset nope && expect_err_line "unknown preset 'nope'"
expect_rc 2 "$RVATTN" run --model nope && expect_err_line "nope"
expect_rc 2 "$RVATTN" run --mechanism nope && expect_err_line "nope"
expect_rc 2 "$RVATTN" run --preset bert --mechanism flash &&
	expect_err_line "only one of --preset, --model and --mechanism"
expect_rc 2 "$RVATTN" run --mechanism flash --window 8 && expect_err_line "--window applies to local_global"
expect_rc 2 "$RVATTN" run --mechanism multi_head --experts 4 && expect_err_line "--experts applies to moe"
expect_rc 2 "$RVATTN" run --numa far && expect_err_line "--numa 'far'"
expect_rc 2 "$RVATTN" run --kernels nope && expect_err_line "nope"
expect_rc 2 "$RVATTN" run --k k.npy && expect_err_line "--k and --v go together"
expect_rc 2 "$RVATTN" run --k k.npy --v v.npy && expect_err_line "--k and --v need --q"
expect_rc 2 "$RVATTN" run extra && expect_err_line "unexpected argument 'extra'"
expect_rc 2 "$RVATTN" run --mechanism moe --experts 4 --top-k 5 --dim 16 --batch 1 --seq 4 &&
	expect_err_line "invalid configuration.*top_k 5"
expect_rc 2 "$RVATTN" bench --threads 0 && expect_err_line "thread counts must be > 0"
expect_rc 2 "$RVATTN" bench --threads 1,x && expect_err_line "not a list"
expect_rc 2 "$RVATTN" bench --threads 100000 $tiny &&
	expect_err_line "more than the"
expect_rc 2 "$RVATTN" bench --plot out.pdf && expect_err_line "must end in .png or .svg"
expect_rc 2 "$RVATTN" run $tiny --cpus 'bogus:1-2' && expect_err_line "bogus"
expect_rc 2 "$RVATTN" run $tiny --cpus 'numa:99' && expect_err_line "numa:99"
expect_rc 2 "$RVATTN" run $tiny --threads 4096 && expect_err_line "4096"
expect_rc 2 "$RVATTN" run --dim 16 --heads 12 && expect_err_line "--heads 12 does not divide --dim 16"
expect_rc 2 "$RVATTN" topo --frob && expect_err_line "unknown option --frob"
expect_rc 2 "$RVATTN" presets --dim x && expect_err_line "--dim 'x'"

# The default job: bert 768/12 over 32 x 512, with time, GFLOP/s and a checksum. It is
# 3 x 26 GFLOP: too slow for a sanitizer build (the code path is the one `run` tests).
if ldd "$RVATTN" 2>/dev/null | grep -qE 'lib(asan|ubsan|tsan)'; then
	echo "note: sanitizer build, the default job is not run"
else
	expect_rc 0 "$RVATTN" || true
	for pat in 'preset bert -> multi_head, dim 768, 12 heads' '32 sequences x 512 queries' \
		'BLIS kernels:' 'placement:' '^time:' 'GFLOP/s' '^checksum: sum '; do
		grep -qE -- "$pat" "$T/out" || fail "default job output lacks /$pat/"
	done
fi

# presets lists all fifteen, with what each resolves to.
expect_rc 0 "$RVATTN" presets
for p in bert gpt longformer performer flash_optimized switch_transformer hyperbolic_tree t5 \
	vit sparse_transformer llama-2 llama-3 mistral gemma-2 qwen2; do
	grep -q "^  $p " "$T/out" || fail "presets does not list $p"
done
grep -q 'does not build' "$T/out" && fail "a preset does not build at dim 768: $(grep 'does not build' "$T/out")"
expect_rc 0 "$RVATTN" presets --json --dim 96
"$PY" - "$T/out" <<'PYEOF' || fail "presets --json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["dim"] == 96 and len(d["presets"]) == 15, d
for p in d["presets"]:
    assert p["config"]["dim"] == 96, p
PYEOF

finish

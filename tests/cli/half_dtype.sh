#!/bin/bash
# rvattn run/bench --dtype f32|bf16|f16 and --out-dtype: Q, K, V read as bf16 ('<u2' bits)
# or fp16 ('<f2'), float32 files converted, synthetic inputs rounded; the output written
# as '<f4', '<f2' or '<u2'. Results are checked against a float64 attention of the same
# rounded inputs within the bound of include/rvattn/batch.h (as tests/test_half.c states
# it: 2^-9 |V|max for bf16 V's rounding of P, one rounding of the output, 2e-5 |V|max for
# the fp32 sums). Bad flags exit 2 with one line; --json reports the dtypes.
source "$(dirname "$0")/lib.bash"
need_numpy

# Inputs [2, 12, 64] (Q) and [2, 20, 64] (K, V), 4 heads: float32 files, their bf16
# rounding as '<u2' bits and as '<f4' values, their fp16 rounding as '<f2'.
"$PY" - <<'PY' || fail "cannot write the inputs"
import numpy as np
r = np.random.default_rng(7)
def bf16_bits(x):
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7fff + ((u >> 16) & 1)) >> 16).astype(np.uint16)
for n, shape in (("q", (2, 12, 64)), ("k", (2, 20, 64)), ("v", (2, 20, 64))):
    x = (r.standard_normal(shape) * (3.0 if n == "v" else 1.0)).astype(np.float32)
    np.save(n + ".npy", x)
    b = bf16_bits(x)
    np.save(n + "_bf16.npy", b)
    np.save(n + "_bf16_f32.npy", (b.astype(np.uint32) << 16).view(np.float32))
    np.save(n + "_f16.npy", x.astype(np.float16))
PY

# check OUT KIND VTYPE OUTTYPE: OUT against float64 attention of the inputs KIND ("bf16_f32"
# or "f16"), within the bound.
check() {
	"$PY" - "$@" <<'PY' >"$T/check" 2>&1 || fail "$1: $(cat "$T/check")"
import sys
import numpy as np
out, kind, vt, ot = sys.argv[1:5]
def load(n):
    a = np.load(n + "_" + kind + ".npy")
    return a.astype(np.float64)
q, k, v = load("q"), load("k"), load("v")
o = np.load(out)
want_dtype = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16}[ot]
assert o.dtype == want_dtype, "output dtype %s, want %s" % (o.dtype, want_dtype)
if ot == "bf16":
    o = (o.astype(np.uint32) << 16).view(np.float32)
o = o.astype(np.float64)
H, D = 4, 16
ref = np.empty_like(q)
for b in range(q.shape[0]):
    for h in range(H):
        s = slice(h * D, (h + 1) * D)
        sc = q[b][:, s] @ k[b][:, s].T / np.sqrt(D)
        p = np.exp(sc - sc.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        ref[b][:, s] = p @ v[b][:, s]
vmax = np.abs(v).max()
unit = {"f32": 0.0, "bf16": 2.0 ** -8, "f16": 2.0 ** -11}[ot]
bound = (2.0 ** -9 * vmax if vt == "bf16" else 0.0) + unit * np.abs(ref) + 2e-5 * vmax
err = np.abs(o - ref)
assert o.shape == ref.shape, "shape %s" % (o.shape,)
worst = np.argmax(err - bound)
assert (err <= bound).all(), "element %d: %.9g vs %.9g (error %.3g > bound %.3g)" % (
    worst, o.flat[worst], ref.flat[worst], err.flat[worst], bound.flat[worst])
print("max error %.3g, bound at least %.3g" % (err.max(), bound.min()))
PY
}

run() { # run OUT ARGS...: rvattn run of the 4-head multi_head config
	local out=$1
	shift
	expect_rc 0 "$RVATTN" run --mechanism multi_head --heads 4 --out "$out" "$@"
}

# bf16: '<u2' files are bf16 bits (no conversion note); each output type.
for ot in f32 bf16 f16; do
	run bf_$ot.npy --dtype bf16 --out-dtype $ot --q q_bf16.npy --k k_bf16.npy \
		--v v_bf16.npy && check bf_$ot.npy bf16_f32 bf16 $ot
done
grep -q 'q/k/v bf16, output f16' "$T/out" || fail "dtypes not reported: $(head -1 "$T/out")"
grep -q 'output: bf_f16.npy \[2, 12, 64\] float16' "$T/out" || fail "output type not reported"
grep -q 'converted' "$T/out" && fail "uint16 bf16 files reported as converted: $(cat "$T/out")"
# float32 files with --dtype bf16 are rounded on load: the same result, bit for bit.
run bf_conv.npy --dtype bf16 --q q.npy --k k.npy --v v.npy
cmp -s bf_conv.npy bf_f32.npy || fail "float32 files rounded to bf16 differ from the '<u2' run"
grep -q "q.npy holds float32 ('<f4'), converted to bf16" "$T/out" ||
	fail "conversion to bf16 not reported: $(cat "$T/out")"
# The fp32 run on the same (bf16-valued) inputs agrees within the bound as well.
run f32.npy --q q_bf16_f32.npy --k k_bf16_f32.npy --v v_bf16_f32.npy && check f32.npy bf16_f32 f32 f32

# fp16: '<f2' files kept, each output type; float32 files rounded to the same values.
for ot in f32 f16 bf16; do
	run h_$ot.npy --dtype f16 --out-dtype $ot --q q_f16.npy --k k_f16.npy --v v_f16.npy &&
		check h_$ot.npy f16 f16 $ot
done
run h_conv.npy --dtype f16 --q q.npy --k k.npy --v v.npy
cmp -s h_conv.npy h_f32.npy || fail "float32 files rounded to f16 differ from the '<f2' run"
# uint16 is bf16 bits only: refused with --dtype f16 and f32.
expect_rc 1 "$RVATTN" run --mechanism multi_head --heads 4 --dtype f16 --q q_bf16.npy &&
	expect_err_line "'<u2'.*bfloat16"
expect_rc 1 "$RVATTN" run --mechanism multi_head --heads 4 --q q_bf16.npy &&
	expect_err_line "'<u2'"

# Synthetic inputs are rounded; 1 and 2 threads give the same bytes; every mechanism.
for m in flash linear hyperbolic local_global moe; do
	expect_rc 0 "$RVATTN" run --mechanism $m --dim 32 --seq 24 --batch 2 --dtype bf16 \
		--out-dtype f16 --threads 1 --out s1.npy &&
	expect_rc 0 "$RVATTN" run --mechanism $m --dim 32 --seq 24 --batch 2 --dtype bf16 \
		--out-dtype f16 --threads 2 --out s2.npy &&
	{ cmp -s s1.npy s2.npy || fail "$m: bf16 output differs between 1 and 2 threads"; }
done

# --json reports the types, run and bench.
expect_rc 0 "$RVATTN" run --mechanism flash --dim 64 --seq 16 --dtype f16 --out-dtype bf16 --json &&
	{ grep -q '"dtype": *"f16"' "$T/out" && grep -q '"out_dtype": *"bf16"' "$T/out" ||
		fail "run --json lacks the dtypes: $(head -c 600 "$T/out")"; }
expect_rc 0 "$RVATTN" bench --mechanism flash --dim 64 --seq 16 --dtype bf16 --repeat 1 \
	--json bench.json && { grep -q '"dtype": *"bf16"' bench.json ||
		fail "bench --json lacks the dtype: $(head -c 600 bench.json)"; }

# Bad values: exit 2, one line.
for cmd in run bench; do
	expect_rc 2 "$RVATTN" $cmd --dtype f64 && expect_err_line "--dtype: 'f64' is not f32, bf16 or f16"
	expect_rc 2 "$RVATTN" $cmd --out-dtype fp16 && expect_err_line "--out-dtype: 'fp16'"
	expect_rc 0 "$RVATTN" $cmd --help &&
		{ grep -q -- '--dtype T' "$T/out" && grep -q -- '--out-dtype T' "$T/out" ||
			fail "$cmd --help does not document --dtype/--out-dtype"; }
done
finish

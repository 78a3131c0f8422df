#!/bin/bash
# rvattn run with .npy inputs and outputs: results equal an independent float64 oracle
# (tests/cli/attn_oracle.py), conversions are reported, 1 and 2 threads give byte-identical
# files, bad files fail with exit 1, one line, and no output file.
source "$(dirname "$0")/lib.bash"
need_numpy
O="$PY $ORACLE"

check() { # check NAME HEADS [causal] -- compares NAME_out.npy with the oracle on NAME_{q,k,v}
	local n=$1 h=$2 c=${3:-}
	$O check "${n}_q.npy" "${n}_k.npy" "${n}_v.npy" "${n}_out.npy" "$h" "$c" >"$T/oracle" 2>&1 ||
		fail "$n: $(cat "$T/oracle")"
}

# 3-D [B, N, dim], cross-attention lengths.
$O make a 1 2,9,32 2,11,32
expect_rc 0 "$RVATTN" run --mechanism multi_head --heads 4 --q a_q.npy --k a_k.npy --v a_v.npy \
	--out a_out.npy && check a 4
grep -q 'output: a_out.npy \[2, 9, 32\] float32' "$T/out" || fail "run does not report the output"
# Flash gives the same numbers.
expect_rc 0 "$RVATTN" run --mechanism flash --heads 4 --block 4 --q a_q.npy --k a_k.npy \
	--v a_v.npy --out a_out.npy && check a 4

# 4-D [B, N, heads, head_dim] with grouped-query K/V: heads and kv heads from the shapes;
# the output keeps Q's 4-D shape.
$O make g 2 2,5,8,4 2,7,2,4
expect_rc 0 "$RVATTN" run --mechanism multi_head --q g_q.npy --k g_k.npy --v g_v.npy \
	--out g_out.npy && check g 8
grep -q '8 heads (2 kv heads) of 4' "$T/out" || fail "GQA config not reported: $(head -1 "$T/out")"

# Causal with nq != nk (the last query sees every key).
$O make c 3 1,3,16 1,10,16
expect_rc 0 "$RVATTN" run --mechanism multi_head --heads 2 --causal --q c_q.npy --k c_k.npy \
	--v c_v.npy --out c_out.npy && check c 2 causal

# [N, dim] with --q alone: B = 1 and K = V = Q.
$O make s 4 6,32 6,32
expect_rc 0 "$RVATTN" run --mechanism multi_head --heads 4 --causal --q s_q.npy --out s_out.npy &&
	$O check s_q.npy s_q.npy s_q.npy s_out.npy 4 causal >"$T/oracle" 2>&1 ||
	fail "self-attention: $(cat "$T/oracle")"

# float64, float16 and big-endian inputs are converted, with a note.
for dt in float64 float16 '>f4'; do
	$O make d 5 2,4,16 2,6,16 "$dt"
	expect_rc 0 "$RVATTN" run --mechanism multi_head --heads 2 --q d_q.npy --k d_k.npy \
		--v d_v.npy --out d_out.npy && check d 2
	grep -q '^note: d_q.npy holds .*converted to float32' "$T/out" ||
		fail "no conversion note for $dt: $(cat "$T/out")"
done

# Synthetic inputs follow the documented formula (splitmix64 of seed, tensor, index).
expect_rc 0 "$RVATTN" run --mechanism multi_head --dim 24 --heads 3 --kv-heads 1 --batch 2 \
	--seq 5 --kv-seq 7 --seed 42 --out syn_out.npy
"$PY" - <<'PYEOF' || fail "synthetic inputs do not follow the documented formula"
import numpy as np
M = np.uint64(0xFFFFFFFFFFFFFFFF)
def splitmix64(x):
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & M
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & M
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & M
    return x ^ (x >> np.uint64(31))
def synth(n, seed, t):
    with np.errstate(over="ignore"):
        key = splitmix64(np.uint64(seed)) ^ (np.uint64(t) << np.uint64(56))
        h = splitmix64(key ^ np.arange(n, dtype=np.uint64))
    return ((h >> np.uint64(40)).astype(np.float32) * np.float32(2.0 / 16777216.0) - np.float32(1)).astype(np.float32)
q = synth(2 * 5 * 24, 42, 0).reshape(2, 5, 24)
k = synth(2 * 7 * 8, 42, 1).reshape(2, 7, 8)
v = synth(2 * 7 * 8, 42, 2).reshape(2, 7, 8)
np.save("syn_q.npy", q); np.save("syn_k.npy", k); np.save("syn_v.npy", v)
PYEOF
check syn 3

# 1 and 2 threads (and a cpu subset) write byte-identical files.
$O make t 6 4,33,48 4,40,48
for mech in "multi_head --heads 4" "flash --heads 4 --block 8" "scaled_dot"; do
	expect_rc 0 "$RVATTN" run --mechanism $mech --q t_q.npy --k t_k.npy --v t_v.npy \
		--threads 1 --out t1.npy
	expect_rc 0 "$RVATTN" run --mechanism $mech --q t_q.npy --k t_k.npy --v t_v.npy \
		--threads 2 --out t2.npy
	cmp -s t1.npy t2.npy || fail "$mech: --threads 1 and 2 outputs differ"
	expect_rc 0 "$RVATTN" run --mechanism $mech --q t_q.npy --k t_k.npy --v t_v.npy \
		--cpus 0 --out t3.npy
	cmp -s t1.npy t3.npy || fail "$mech: --cpus 0 output differs"
done
expect_rc 0 "$RVATTN" run --preset gpt --dim 48 --batch 3 --seq 20 --threads 1 --out p1.npy
expect_rc 0 "$RVATTN" run --preset gpt --dim 48 --batch 3 --seq 20 --threads 2 --out p2.npy
cmp -s p1.npy p2.npy || fail "synthetic gpt: --threads 1 and 2 outputs differ"
no_temp_files

# Bad inputs: exit 1, one line naming the file and the problem, no output file, and an
# existing output file is left as it was.
"$PY" - <<'PYEOF'
import numpy as np
np.save("i4.npy", np.zeros((2, 3, 8), np.int32))
np.save("fort.npy", np.asfortranarray(np.arange(48, dtype=np.float32).reshape(6, 8)))
np.save("obj.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
np.save("cplx.npy", np.zeros((2, 8), np.complex64))
np.save("one_d.npy", np.zeros(8, np.float32))
np.save("empty.npy", np.zeros((1, 0, 8), np.float32))
np.save("q8.npy", np.zeros((2, 3, 8), np.float32))
np.save("k8.npy", np.zeros((2, 4, 8), np.float32))
np.save("v8b.npy", np.zeros((2, 5, 8), np.float32))
np.save("k6.npy", np.zeros((2, 4, 6), np.float32))
np.save("k1.npy", np.zeros((1, 4, 8), np.float32))
open("text.npy", "w").write("not numpy\n")
data = open("q8.npy", "rb").read()
open("trunc.npy", "wb").write(data[:-5])
open("trailing.npy", "wb").write(data + b"\0\0\0\0")
hdr = bytearray(data[:128])
hdr[8:10] = (60000).to_bytes(2, "little")
open("longhdr.npy", "wb").write(bytes(hdr))
PYEOF
bad() { # bad PATTERN ARGS...: run fails with exit 1 and PATTERN; out.npy stays "keep"
	local pat=$1
	shift
	printf keep >out.npy
	expect_rc 1 "$RVATTN" run --mechanism multi_head --heads 2 "$@" --out out.npy &&
		expect_err_line "$pat"
	[ "$(cat out.npy)" = keep ] || fail "out.npy was changed by a failing run: $*"
	no_temp_files
}
bad "i4.npy: unsupported .npy dtype '<i4'" --q i4.npy
bad "fort.npy: .*Fortran order" --q fort.npy
bad "obj.npy: unsupported .npy dtype '\|O'" --q obj.npy
bad "cplx.npy: unsupported .npy dtype '<c8'" --q cplx.npy
bad "text.npy: not an .npy file" --q text.npy
bad "trunc.npy: truncated .npy data" --q trunc.npy
bad "trailing.npy: 4 unexpected bytes after the .npy data" --q trailing.npy
bad "longhdr.npy: .npy header length 60000 goes beyond the end of the file" --q longhdr.npy
bad "missing.npy: cannot open: No such file" --q missing.npy
bad "one_d.npy has shape \(8,\)" --q one_d.npy
bad "empty.npy is empty" --q empty.npy
bad "k8.npy has shape \(2, 4, 8\) but v8b.npy has shape \(2, 5, 8\)" --q q8.npy --k k8.npy --v v8b.npy
bad "k6.npy has rows of 6 floats, not a multiple of head_dim 4" --q q8.npy --k k6.npy --v k6.npy
bad "q8.npy holds 2 sequences but k1.npy holds 1" --q q8.npy --k k1.npy --v k1.npy
bad "q8.npy has rows of 8 floats, --dim is 16" --q q8.npy --dim 16
bad "q8.npy holds 2 sequences, --batch is 3" --q q8.npy --batch 3
rm -f out.npy
expect_rc 1 "$RVATTN" run --mechanism multi_head --heads 2 --q q8.npy --out no/such/dir/o.npy &&
	expect_err_line "no/such/dir/o.npy: cannot write: directory no/such/dir: No such file"
expect_rc 1 "$RVATTN" run --mechanism multi_head --heads 2 --q q8.npy --out "$T" &&
	expect_err_line "cannot"
no_temp_files

finish

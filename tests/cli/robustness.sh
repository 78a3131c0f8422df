#!/bin/bash
# rvattn run against hostile inputs and conditions: truncated files, oversized and
# lying headers, wrong dtypes, shapes that overflow, missing or unwritable output
# directories, and an interrupted run (SIGINT). Each must end with exit status 1, one
# clear line on stderr ("rvattn: ..."), no output file and no temporary file left.
. "$(dirname "$0")/lib.bash"
need_numpy

"$PY" - <<'PYEOF'
import numpy as np, struct
def raw(name, header, data=b"", version=1):
    h = header.encode()
    pad = (64 - (10 + len(h) + 1) % 64) % 64
    h = h + b" " * pad + b"\n"
    if version == 1:
        pre = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h))
    else:
        pre = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(h))
    open(name, "wb").write(pre + h + data)
good = np.arange(2 * 3 * 8, dtype=np.float32).reshape(2, 3, 8) / 10
np.save("good.npy", good)
data = open("good.npy", "rb").read()
# truncated: in the magic, in the header length, in the dict, in the data
open("t_magic.npy", "wb").write(data[:4])
open("t_len.npy", "wb").write(data[:9])
open("t_dict.npy", "wb").write(data[:40])
open("t_data.npy", "wb").write(data[:-1])
open("t_nodata.npy", "wb").write(data[:128])
open("empty_file.npy", "wb").write(b"")
# oversized headers: length fields far beyond the file (v1 16-bit, v2 32-bit)
b = bytearray(data); b[8:10] = struct.pack("<H", 65535); open("big_hdr1.npy", "wb").write(b)
raw("big_hdr2.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 8), }", version=2)
b = bytearray(open("big_hdr2.npy", "rb").read()); b[8:12] = struct.pack("<I", 0xffffffff)
open("big_hdr2.npy", "wb").write(b)
# wrong dtypes
np.save("i8.npy", np.zeros((2, 3, 8), np.int64))
np.save("u1.npy", np.zeros((2, 3, 8), np.uint8))
np.save("c16.npy", np.zeros((2, 3, 8), np.complex128))
np.save("bool.npy", np.zeros((2, 3, 8), np.bool_))
np.save("rec.npy", np.zeros((2, 3), dtype=[("a", "<f4"), ("b", "<f4")]))
raw("f4x.npy", "{'descr': '<f4x', 'fortran_order': False, 'shape': (2, 3, 8), }", good.tobytes())
# lying shapes: more elements than data, fewer, overflowing, negative, non-tuple
raw("lie_more.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4, 8), }", good.tobytes())
raw("lie_less.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 8), }", good.tobytes())
raw("lie_huge.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 2, 8), }", good.tobytes())
raw("lie_dim.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999, 8), }", good.tobytes())
raw("lie_neg.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3, 8), }", good.tobytes())
raw("lie_int.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': 48, }", good.tobytes())
raw("dup_key.npy", "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 8), }", good.tobytes())
raw("no_shape.npy", "{'descr': '<f4', 'fortran_order': False, }", good.tobytes())
PYEOF

# bad FILE PATTERN: `run --q FILE --out out.npy` fails with exit 1, one line matching
# PATTERN, no out.npy and no temporary file.
bad() {
	local file=$1 pat=$2
	rm -f out.npy
	expect_rc 1 "$RVATTN" run --mechanism multi_head --heads 2 --q "$file" --out out.npy &&
		expect_err_line "$file.*$pat"
	[ ! -e out.npy ] || fail "$file: out.npy was written by a failing run"
	no_temp_files
}
bad t_magic.npy "not an .npy file"
bad t_len.npy "cut short"
bad t_dict.npy "header length .* beyond the end"
bad t_data.npy "truncated .npy data"
bad t_nodata.npy "truncated .npy data"
bad empty_file.npy "not an .npy file"
bad big_hdr1.npy "header length 65535 goes beyond the end"
bad big_hdr2.npy "header length 4294967295 goes beyond the end"
bad i8.npy "unsupported .npy dtype '<i8'"
bad u1.npy "unsupported .npy dtype '\|u1'"
bad c16.npy "unsupported .npy dtype '<c16'"
bad bool.npy "unsupported .npy dtype '\|b1'"
bad rec.npy "structured"
bad f4x.npy "unsupported .npy dtype '<f4x'"
bad lie_more.npy "truncated .npy data"
bad lie_less.npy "unexpected bytes after the .npy data"
bad lie_huge.npy "overflows"
bad lie_dim.npy "overflows"
bad lie_neg.npy "negative dimension"
bad lie_int.npy "malformed .npy header"
bad dup_key.npy "appears twice"
bad no_shape.npy "missing key 'shape'"

# The good file works (so the failures above are about the files).
expect_rc 0 "$RVATTN" run --mechanism multi_head --heads 2 --q good.npy --out out.npy ||
	fail "the good file fails"
[ -s out.npy ] || fail "no output for the good file"
rm -f out.npy

# Output directory missing, output path under a regular file, unwritable directory.
bad_out() {
	local out=$1 pat=$2
	expect_rc 1 "$RVATTN" run --mechanism multi_head --heads 2 --q good.npy --out "$out" &&
		expect_err_line "$pat"
	[ ! -e "$out" ] || fail "$out was written by a failing run"
}
bad_out missing/dir/out.npy "missing/dir/out.npy: cannot"
touch plainfile
bad_out plainfile/out.npy "plainfile/out.npy: cannot"
mkdir ro
chmod 555 ro
if touch ro/probe 2>/dev/null; then
	# root ignores directory permissions: use a directory no one can create files in
	rm -f ro/probe
	bad_out /proc/rvattn_robustness_out.npy "cannot"
else
	bad_out ro/out.npy "ro/out.npy: cannot"
	[ -z "$(ls -A ro)" ] || fail "files left in the unwritable directory: $(ls -A ro)"
fi
chmod 755 ro
no_temp_files

# An interrupted run: SIGINT during a long computation ends it with exit 1, one line,
# and no output file and no temporary file. env --default-signal undoes a SIGINT that
# a background shell may have set to "ignored"; --foreground makes timeout signal the
# command alone, once (without it the process group gets a second SIGINT, which ends
# the CLI at once by design).
mkdir int
start=$(date +%s)
timeout --foreground --preserve-status -s INT -k 60 2 env --default-signal=INT \
	"$RVATTN" run --preset bert --dim 384 --batch 16 --seq 512 --repeat 100000 \
	--threads 2 --out int/x.npy >"$T/out" 2>"$T/err"
rc=$?
secs=$(($(date +%s) - start))
if [ "$rc" = 137 ]; then
	fail "the interrupted run did not stop on SIGINT (killed after ${secs} s)"
elif [ "$rc" != 1 ]; then
	fail "interrupted run: exit $rc, want 1 -- stderr: $(head -c 300 "$T/err")"
else
	expect_err_line "interrupted"
fi
[ "$secs" -le 30 ] || fail "the interrupted run took ${secs} s to stop"
[ -z "$(ls -A int)" ] || fail "files left after the interrupted run: $(ls -A int)"

finish

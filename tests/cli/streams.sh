#!/bin/bash
# Inputs that are streams, not regular files: /dev/zero (and a mknod'ed zero device) fails
# fast with a format error instead of reading until memory runs out; a FIFO, a pipe on
# /dev/stdin and a FIFO carrying a file followed by endless zeros are read (exactly the
# declared bytes) and give the oracle's numbers. Run as root and again as nobody.
source "$(dirname "$0")/lib.bash"
need_numpy
O="$PY $ORACLE"
run="--mechanism multi_head --heads 2"

# expect_format_error WHAT: the last command failed with one line naming a format error.
expect_format_error() {
	expect_err_line "$1.*(not an \.npy file|magic)" || true
}

# /dev/zero: refused after its first bytes (timeout 60 s: reading it whole never ends).
expect_rc 1 timeout 60 "$RVATTN" run $run --q /dev/zero && expect_format_error /dev/zero
expect_rc 1 timeout 60 "$RVATTN" run $run --q /dev/null && expect_err_line '/dev/null'
# Our own character device (mknod needs root; never a node in /dev).
if is_root && mknod zero c 1 5 2>/dev/null; then
	expect_rc 1 timeout 60 "$RVATTN" run $run --q zero && expect_format_error zero
	rm -f zero
else
	echo "SKIP: mknod (needs root): own zero device"
fi

# A FIFO fed by a background writer gives the same numbers as the file.
$O make f 11 2,5,16 2,7,16
mkfifo qf
cat f_q.npy >qf &
wpid=$!
expect_rc 0 timeout 60 "$RVATTN" run $run --q qf --k f_k.npy --v f_v.npy --out f_out.npy &&
	{ $O check f_q.npy f_k.npy f_v.npy f_out.npy 2 "" >"$T/oracle" 2>&1 ||
		fail "FIFO input: $(cat "$T/oracle")"; }
stop_writer() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; } # a writer nobody read
stop_writer "$wpid"

# A pipe on /dev/stdin.
rm -f f_out.npy
cat f_k.npy | expect_rc 0 timeout 60 "$RVATTN" run $run --q f_q.npy --k /dev/stdin --v f_v.npy \
	--out f_out.npy &&
	{ $O check f_q.npy f_k.npy f_v.npy f_out.npy 2 "" >"$T/oracle" 2>&1 ||
		fail "/dev/stdin input: $(cat "$T/oracle")"; }

# A FIFO carrying the file then endless zeros: exactly the declared bytes are read, the
# run ends, and the writer stops on the closed pipe.
rm -f f_out.npy
mkfifo vf
(cat f_v.npy /dev/zero >vf 2>/dev/null) &
wpid=$!
expect_rc 0 timeout 60 "$RVATTN" run $run --q f_q.npy --k f_k.npy --v vf --out f_out.npy &&
	{ $O check f_q.npy f_k.npy f_v.npy f_out.npy 2 "" >"$T/oracle" 2>&1 ||
		fail "FIFO with trailing zeros: $(cat "$T/oracle")"; }
stop_writer "$wpid"

# A FIFO whose writer stops inside the data: a truncation error, one line.
head -c 100 f_v.npy >short.npy
cat short.npy >vf &
wpid=$!
expect_rc 1 timeout 60 "$RVATTN" run $run --q f_q.npy --k f_k.npy --v vf --out g_out.npy &&
	expect_err_line 'vf.*(truncated|ended)'
stop_writer "$wpid"
[ -e g_out.npy ] && fail "an output was written after a failed input"

also_unprivileged
finish

#!/bin/bash
# SIGINT during `rvattn run --out`: exit 1 with one line, no output file, no temporary file.
# Progress lines appear on stderr only when it is a terminal.
source "$(dirname "$0")/lib.bash"
set -m # job control: the background job gets SIGINT (a non-interactive shell ignores it)

long="--preset bert --dim 384 --batch 8 --seq 256"
"$RVATTN" run $long --repeat 1000000 --out long.npy >"$T/out" 2>"$T/err" &
pid=$!
# Wait until it computes (the batch is built), then interrupt.
sleep 1.5
kill -INT "$pid" 2>/dev/null || fail "the run ended before SIGINT"
wait "$pid"
rc=$?
[ "$rc" = 1 ] || fail "exit $rc after SIGINT, want 1"
expect_err_line "^rvattn: interrupted$"
[ -e long.npy ] && fail "long.npy exists after SIGINT"
no_temp_files
[ -s "$T/out" ] && fail "stdout is not empty after SIGINT: $(head -c 200 "$T/out")"

# bench too.
"$RVATTN" bench $long --threads 1 --repeat 100000 --csv b.csv >"$T/out" 2>"$T/err" &
pid=$!
sleep 1.5
kill -INT "$pid" 2>/dev/null || fail "the bench ended before SIGINT"
wait "$pid"
rc=$?
[ "$rc" = 1 ] || fail "bench: exit $rc after SIGINT, want 1"
expect_err_line "^rvattn: interrupted$"
[ -e b.csv ] && fail "b.csv exists after SIGINT"

# Progress: nothing when stderr is not a terminal; a line (after the first second) when it
# is one (a pseudo-terminal made by script(1), util-linux).
expect_rc 0 "$RVATTN" run $long --repeat 3
[ -s "$T/err" ] && fail "progress written to a non-terminal stderr: $(head -c 200 "$T/err")"
if command -v script >/dev/null; then
	script -qec "timeout -s INT 3 '$RVATTN' run $long --repeat 1000000 >/dev/null" \
		"$T/typescript" >/dev/null 2>&1 </dev/null
	grep -qE 'rvattn: runs [0-9]+(\.[0-9])?/1000000, .*/s, .* left' "$T/typescript" ||
		fail "no progress line on a terminal: $(cat -v "$T/typescript" | head -c 400)"
fi

finish

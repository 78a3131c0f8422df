#!/bin/bash
# Output files (--out, --json, --csv): devices, FIFOs and descriptors are written in place,
# symlinks are followed, replaced files keep their mode (and owner), long names work,
# SIGTERM/SIGHUP/SIGINT leave no temporary file, the same file twice is a usage error, and
# a failing stdout is exit 1. Run as root and again as nobody (also_unprivileged).
source "$(dirname "$0")/lib.bash"

small="--mechanism multi_head --heads 2 --dim 16 --batch 2 --seq 8"
expect_rc 0 "$RVATTN" run $small --out ref.npy || fail "the reference run fails"
[ -s ref.npy ] || fail "no reference output"
expect_rc 0 "$RVATTN" bench $small --threads 1 --repeat 1 --warmup 0 --csv ref.csv ||
	fail "the reference bench fails"

# same_as_ref FILE: FILE holds exactly the reference output.
same_as_ref() { cmp -s ref.npy "$1" || fail "$1 differs from the reference output"; }

# A character device stays one (mknod needs root; our own node, never /dev's).
if is_root && mknod null c 1 3 2>/dev/null; then
	expect_rc 0 "$RVATTN" run $small --out null
	[ -c null ] || fail "the device node null was replaced: $(ls -l null)"
	expect_rc 0 "$RVATTN" bench $small --threads 1 --repeat 1 --warmup 0 --csv null --json null2 &&
		[ -c null ] || fail "bench --csv replaced the device node"
	rm -f null null2
else
	echo "SKIP: mknod (needs root): device-node case"
fi
# /dev/null itself, read-only use: still a device afterwards.
expect_rc 0 "$RVATTN" run $small --out /dev/null
[ -c /dev/null ] || fail "/dev/null is no longer a character device"

# A FIFO, read by a background cat: written in place, streaming.
mkfifo fifo
cat fifo >from_fifo &
cat_pid=$!
expect_rc 0 "$RVATTN" run $small --out fifo
wait "$cat_pid"
[ -p fifo ] || fail "the FIFO was replaced"
same_as_ref from_fifo
no_temp_files

# A FIFO nobody reads: the open waits, and SIGTERM ends it with one line, exit 1.
mkfifo lonely
"$RVATTN" run $small --out lonely >"$T/out" 2>"$T/err" &
pid=$!
sleep 1
kill -TERM "$pid" 2>/dev/null || fail "the run with an unread FIFO ended by itself"
wait "$pid"
rc=$?
[ "$rc" = 1 ] || fail "SIGTERM while waiting for a FIFO reader: exit $rc, want 1"
expect_err_line "^rvattn: interrupted$"
[ -p lonely ] || fail "the unread FIFO was replaced"

# /dev/stdout: the array on stdout, the report on stderr.
"$RVATTN" run $small --out /dev/stdout >to_stdout 2>report
rc=$?
[ "$rc" = 0 ] || fail "--out /dev/stdout: exit $rc: $(head -c 300 report)"
same_as_ref to_stdout
grep -q '^checksum: ' report || fail "the report did not move to stderr: $(head -c 300 report)"
# through a pipe too
"$RVATTN" run $small --out /dev/stdout 2>/dev/null | cat >piped
same_as_ref piped
# /proc/self/fd/N and /dev/fd/N: the descriptor, at its offset (the file is not replaced).
"$RVATTN" run $small --out /proc/self/fd/3 3>fd3.npy >/dev/null 2>"$T/err" ||
	fail "--out /proc/self/fd/3: $(cat "$T/err")"
same_as_ref fd3.npy
"$RVATTN" bench $small --threads 1 --repeat 1 --warmup 0 --csv /dev/fd/4 4>fd4.csv \
	>/dev/null 2>"$T/err" || fail "--csv /dev/fd/4: $(cat "$T/err")"
[ "$(head -1 fd4.csv)" = "$(head -1 ref.csv)" ] || fail "fd4.csv: $(head -c 200 fd4.csv)"
expect_rc 1 "$RVATTN" run $small --out /dev/fd/9 &&
	expect_err_line "/dev/fd/9: cannot write: descriptor 9 is not open"

# Symlinks: the link stays, its target is replaced (temporary file beside the target).
mkdir -p sub other
echo old >other/target.npy
ln -s ../other/target.npy sub/link.npy
expect_rc 0 "$RVATTN" run $small --out sub/link.npy
[ -L sub/link.npy ] || fail "sub/link.npy is no longer a symlink"
same_as_ref other/target.npy
no_temp_files sub
no_temp_files other
# a chain of links, and a dangling link (its target is created)
ln -s sub/link.npy chain.npy
echo old >other/target.npy
expect_rc 0 "$RVATTN" run $small --out chain.npy
[ -L chain.npy ] && [ -L sub/link.npy ] || fail "a link of the chain was replaced"
same_as_ref other/target.npy
ln -s other/created.npy dangling.npy
expect_rc 0 "$RVATTN" run $small --out dangling.npy
[ -L dangling.npy ] || fail "the dangling link was replaced"
same_as_ref other/created.npy

# An existing file keeps its mode; a new file gets 0666 & ~umask.
echo old >private.npy
chmod 600 private.npy
expect_rc 0 "$RVATTN" run $small --out private.npy
[ "$(stat -c %a private.npy)" = 600 ] || fail "private.npy: mode $(stat -c %a private.npy), want 600"
same_as_ref private.npy
echo old >grp.csv
chmod 640 grp.csv
expect_rc 0 "$RVATTN" bench $small --threads 1 --repeat 1 --warmup 0 --csv grp.csv
[ "$(stat -c %a grp.csv)" = 640 ] || fail "grp.csv: mode $(stat -c %a grp.csv), want 640"
(umask 027 && "$RVATTN" run $small --out new027.npy >/dev/null 2>&1)
[ "$(stat -c %a new027.npy)" = 640 ] || fail "new file under umask 027: mode $(stat -c %a new027.npy)"
# ... and its owner, where the process may set it (root).
if is_root; then
	echo old >owned.npy
	chown 65534:65534 owned.npy
	expect_rc 0 "$RVATTN" run $small --out owned.npy
	[ "$(stat -c %u:%g owned.npy)" = 65534:65534 ] ||
		fail "owned.npy: owner $(stat -c %u:%g owned.npy), want 65534:65534"
fi

# A 250-byte final name works (the temporary name is short, not derived from it).
long=$(printf 'n%.0s' $(seq 246)).npy
expect_rc 0 "$RVATTN" run $small --out "$long" || fail "a 250-byte file name fails"
same_as_ref "$long"
expect_rc 0 "$RVATTN" bench $small --threads 1 --repeat 1 --warmup 0 --csv "${long%.npy}.csv" ||
	fail "bench: a 250-byte file name fails"
no_temp_files

# The same file twice, however spelled, is a usage error; so is the file stdout writes to.
bench1="bench $small --threads 1 --repeat 1 --warmup 0"
expect_rc 2 "$RVATTN" $bench1 --json same.out --csv same.out &&
	expect_err_line "^rvattn: --json same.out and --csv same.out name the same file"
echo x >real.out
ln -s real.out alias.out
expect_rc 2 "$RVATTN" $bench1 --json alias.out --csv ./real.out &&
	expect_err_line "name the same file"
ln real.out hard.out
expect_rc 2 "$RVATTN" $bench1 --csv real.out --json hard.out && expect_err_line "name the same file"
expect_rc 2 "$RVATTN" $bench1 --json /dev/stdout --csv /dev/fd/1 &&
	expect_err_line "name the same file"
"$RVATTN" run $small --out stdout.npy >stdout.npy 2>"$T/err"
rc=$?
[ "$rc" = 2 ] || fail "--out FILE >FILE: exit $rc, want 2"
grep -q "is the file stdout writes to" "$T/err" || fail "--out FILE >FILE: $(cat "$T/err")"

# --plot goes through the same module (gnuplot draws on the output's descriptor).
expect_rc 2 "$RVATTN" $bench1 --csv pic.svg --plot ./pic.svg && expect_err_line "name the same file"
if command -v gnuplot >/dev/null; then
	echo old >other/pic.svg
	chmod 600 other/pic.svg
	ln -s other/pic.svg piclink.svg
	expect_rc 0 "$RVATTN" $bench1 --plot piclink.svg
	[ -L piclink.svg ] || fail "--plot replaced the symlink"
	grep -q '<svg' other/pic.svg || fail "--plot did not update the symlink's target"
	[ "$(stat -c %a other/pic.svg)" = 600 ] || fail "--plot: mode $(stat -c %a other/pic.svg)"
	mkfifo picfifo.svg
	cat picfifo.svg >pic_from_fifo &
	cat_pid=$!
	expect_rc 0 "$RVATTN" $bench1 --plot picfifo.svg
	wait "$cat_pid"
	grep -q '<svg' pic_from_fifo || fail "--plot to a FIFO: nothing arrived"
	no_temp_files
	no_temp_files other
else
	echo "SKIP: gnuplot is not installed: --plot cases"
fi

# A failing stdout is exit 1, for every command, --help and --version included.
for args in "--help" "--version" "run --help" "bench --help" "topo --help" "presets --help" \
	"presets" "run $small" "topo"; do
	"$RVATTN" $args >/dev/full 2>"$T/err"
	rc=$?
	[ "$rc" = 1 ] || fail "rvattn $args >/dev/full: exit $rc, want 1"
	grep -q "^rvattn: cannot write" "$T/err" || fail "rvattn $args >/dev/full: $(head -c 200 "$T/err")"
	[ "$(wc -l <"$T/err")" = 1 ] || fail "rvattn $args >/dev/full: not one line: $(cat "$T/err")"
done

# Signals: SIGTERM and SIGHUP are handled as SIGINT (cancel, no output, no temporary file,
# one line, exit 1).
longrun="--preset bert --dim 384 --batch 8 --seq 256 --repeat 1000000"
for sig in TERM HUP; do
	"$RVATTN" run $longrun --out sig.npy >"$T/out" 2>"$T/err" &
	pid=$!
	sleep 1.5
	kill -$sig "$pid" 2>/dev/null || fail "the run ended before SIG$sig"
	wait "$pid"
	rc=$?
	[ "$rc" = 1 ] || fail "exit $rc after SIG$sig, want 1"
	expect_err_line "^rvattn: interrupted$"
	[ -e sig.npy ] && fail "sig.npy exists after SIG$sig"
	no_temp_files
done

# Every thread but the main one (the engine's dispatcher and workers) blocks SIGHUP,
# SIGINT and SIGTERM (SigBlk bits 0, 1 and 14 in /proc/PID/task/TID/status), so the
# handler always runs in the main thread, which blocks them while a temporary file exists.
"$RVATTN" run --preset bert --dim 384 --batch 8 --seq 256 --repeat 1000000 >/dev/null 2>&1 &
pid=$!
sleep 1.5
nthreads=0
for st in /proc/$pid/task/*/status; do
	tid=$(basename "$(dirname "$st")")
	blk=$(awk '/^SigBlk:/ {print $2}' "$st" 2>/dev/null) || continue
	[ -n "$blk" ] || continue
	nthreads=$((nthreads + 1))
	if [ "$tid" = "$pid" ]; then
		[ $((0x$blk & 0x4003)) = 0 ] || fail "the main thread blocks SIGHUP/INT/TERM while computing"
	else
		[ $((0x$blk & 0x4003)) = $((0x4003)) ] ||
			fail "thread $tid of the engine does not block SIGHUP/INT/TERM (SigBlk $blk)"
	fi
done
[ "$nthreads" -ge 2 ] || fail "saw $nthreads threads in the running process, want >= 2"
kill -TERM "$pid"
wait "$pid"

# Two SIGINTs while the temporary file is being written (a 128 MiB output, so the write
# takes a while), the second 50 ms after the first: whichever thread the signals reach, the
# temporary file is removed and no output appears. The first is held until the write ends
# (exit 1, one line); a second arriving after that ends the process (exit 130), the file
# already removed. Engine threads that did not block the signals would take the first and
# let the second kill the process mid-write, leaving the temporary file. Two rounds.
set -m # the background job gets SIGINT (a non-interactive shell would ignore it)
big="--mechanism multi_head --heads 1 --dim 1024 --batch 32 --seq 1024 --kv-seq 1"
for round in 1 2; do
	"$RVATTN" run $big --out big.npy >"$T/out" 2>"$T/err" &
	pid=$!
	seen=
	for _ in $(seq 20000); do
		if compgen -G '.rvattn-*' >/dev/null; then
			seen=1
			break
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.001
	done
	kill -INT "$pid" 2>/dev/null
	sleep 0.05
	kill -INT "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rc=$?
	if [ -n "$seen" ]; then
		case $rc in
		1) expect_err_line "^rvattn: interrupted$" ;;
		130) ;;
		*) fail "round $round: two SIGINTs during the write: exit $rc, want 1 or 130" ;;
		esac
		[ -e big.npy ] && fail "round $round: big.npy exists after two SIGINTs during its write"
	else
		echo "note: round $round: the write ended before the temporary file was seen (exit $rc)"
	fi
	no_temp_files
	rm -f big.npy .rvattn-*
done
set +m

also_unprivileged
finish

#!/usr/bin/env bash
# Valgrind (memcheck) over a representative subset of rvattn, as plain programs
# (Criterion forks every test, which makes its runner slow and noisy under Valgrind):
#   tests/plain_valgrind.c  every mechanism (+ T5, sparse presets) built, computed on a
#                           batch and a single query, destroyed; pipelines; the engine
#                           with one worker (run, submit/wait, a pipeline); .npy I/O
#   tests/plain_load.c      8 caller threads, 1000 jobs, cancellations, 2 workers
#
#   tools/valgrind.sh [BUILD_DIR]     (default: ./build, as made by tools/run-tests.sh)
#
# Fails on any memcheck error or definitely lost block (--errors-for-leak-kinds=definite).
# Memory that libgomp and hwloc keep for the process lifetime is "still reachable" or
# "possibly lost" (thread stacks), not an error, so no suppression file is needed.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$PWD/build}
command -v valgrind >/dev/null || { echo "valgrind: not installed (tools/install-deps.sh --dev)" >&2; exit 2; }
[ -f "$build/CMakeCache.txt" ] ||
	cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DRVATTN_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target plain_valgrind plain_load -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

export OMP_WAIT_POLICY=passive
failed=0
for prog in plain_valgrind plain_load; do
	log="$build/valgrind_$prog.log"
	start=$(date +%s)
	set +e
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
	         --show-leak-kinds=definite --track-origins=yes --log-file="$log" \
	         "$build/tests/$prog" >"$log.out" 2>&1
	rc=$?
	set -e
	errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -1)
	lost=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1)
	secs=$(($(date +%s) - start))
	if [ "$rc" -ne 0 ]; then
		failed=1
		echo "valgrind $prog: FAILED (exit $rc, ${errors:-?} errors, ${lost:-?} bytes definitely lost) -- $log"
		cat "$log.out" >&2
		grep -E 'Invalid|uninitialised|definitely lost|at 0x|by 0x' "$log" | head -40 >&2 || true
	else
		echo "valgrind $prog: ok, ${errors:-0} errors, ${lost:-0} bytes definitely lost (${secs} s)"
	fi
done
exit $failed

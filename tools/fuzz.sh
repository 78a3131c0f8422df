#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang and runs each one.
#
#   tools/fuzz.sh                      CI smoke: every target for 12 s (about a minute)
#   tools/fuzz.sh --time 600           every target for 10 minutes
#   tools/fuzz.sh --time 3600 npy      one target (fuzz_npy) for an hour
#   tools/fuzz.sh --build DIR          build directory (default ./build-fuzz)
#
# Each target starts from its committed seed corpus (tests/fuzz/corpus/<name>/) and
# writes new inputs to DIR/corpus/<name>/ (libFuzzer writes to the first corpus
# directory it is given, so the committed seeds stay as they are). A crash, leak,
# sanitizer report or failed invariant stops that target, leaves the input as
# DIR/crash-<name>-* and makes the script exit 1; reproduce it with
#   DIR/tests/fuzz/fuzz_<name> DIR/crash-<name>-...
# Worth keeping findings go to tests/fuzz/corpus/<name>/ as regression seeds.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$PWD/build-fuzz
secs=12
targets=()
while [ $# -gt 0 ]; do
	case "$1" in
		--time) secs=${2:?--time needs seconds}; shift ;;
		--build) build=${2:?--build needs a directory}; shift ;;
		-h|--help) sed -n '2,16p' "$0"; exit 0 ;;
		-*) echo "fuzz: unknown option '$1' (try --help)" >&2; exit 2 ;;
		*) targets+=("${1#fuzz_}") ;;
	esac
	shift
done
command -v clang >/dev/null || { echo "fuzz: clang is not installed (tools/install-deps.sh --dev)" >&2; exit 2; }
if [ ${#targets[@]} -eq 0 ]; then
	for f in "$src"/tests/fuzz/fuzz_*.c; do
		n=$(basename "$f" .c)
		targets+=("${n#fuzz_}")
	done
fi

cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DRVATTN_BUILD_FUZZ=ON -DRVATTN_BUILD_TESTS=OFF -DRVATTN_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target $(printf 'fuzz_%s ' "${targets[@]}") -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

# libgomp/libomp keep their thread pool for the process lifetime (see tests/lsan.supp).
export LSAN_OPTIONS="suppressions=$src/tests/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export OMP_WAIT_POLICY=passive
failed=0
total=0
for t in "${targets[@]}"; do
	bin="$build/tests/fuzz/fuzz_$t"
	seeds="$src/tests/fuzz/corpus/$t"
	new="$build/corpus/$t"
	mkdir -p "$new" "$seeds"
	log="$build/fuzz_$t.log"
	set +e
	"$bin" "$new" "$seeds" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	       -artifact_prefix="$build/crash-$t-" -print_final_stats=1 >"$log" 2>&1
	rc=$?
	set -e
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	corpus=$(find "$new" "$seeds" -type f | wc -l)
	if [ "$rc" -ne 0 ]; then
		failed=1
		echo "fuzz_$t: FAILED (exit $rc) after ${runs:-?} executions; log: $log"
		grep -E 'ERROR|invariant failed|runtime error|SUMMARY' "$log" | head -5 || true
	else
		echo "fuzz_$t: ok, ${runs:-?} executions in ${secs} s, coverage ${cov:-?} edges, corpus $corpus inputs"
	fi
	total=$((total + ${runs:-0}))
done
echo "fuzz: ${#targets[@]} targets, $total executions in total"
exit $failed

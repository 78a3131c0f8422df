#!/usr/bin/env bash
# ThreadSanitizer checks: the engine's executor (tests/plain_tsan_engine.c), the
# process-default kernel choice (tests/plain_tsan_kernels.c) and attentions shared by
# threads and pipelines through their reference count (tests/plain_attention_share.c).
#
#   tools/tsan_check.sh [BUILD_DIR]        (default: ./build-tsan)
#
# TSan with gcc + libgomp reports false positives; what works (docs/ARCHITECTURE.md,
# "Testing") is clang + libomp + Archer, the OpenMP tool that tells TSan about OpenMP's
# synchronisation. This script configures its own build directory with clang and
# -fsanitize=thread (CMake's find_package(OpenMP) then picks libomp), builds only the
# check programs and runs them with Archer loaded. Exit status 0 = no race reported and
# every check of every program passed.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$PWD/build-tsan}
archer=${RVATTN_ARCHER:-/usr/lib/llvm-14/lib/libarcher.so}
supp="$src/tools/tsan.supp"

command -v clang >/dev/null || { echo "tsan_check: clang is not installed" >&2; exit 2; }
[ -r "$archer" ] || { echo "tsan_check: Archer not found at $archer (set RVATTN_ARCHER)" >&2; exit 2; }

cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DRVATTN_SANITIZE=thread -DRVATTN_BUILD_BENCH=OFF >/dev/null
grep -q 'OpenMP_C_LIB_NAMES:STRING=omp' "$build/CMakeCache.txt" ||
	{ echo "tsan_check: CMake did not pick libomp (install libomp-dev)" >&2; exit 2; }
programs="plain_tsan_engine plain_tsan_kernels plain_attention_share"
# shellcheck disable=SC2086
cmake --build "$build" --target $programs -j2 >/dev/null

status=0
for p in $programs; do
	log="$build/$p.log"
	set +e
	OMP_TOOL_LIBRARIES="$archer" \
	TSAN_OPTIONS="ignore_noninstrumented_modules=1 halt_on_error=1 exitcode=66 suppressions=$supp" \
		"$build/tests/$p" >"$log" 2>&1
	rc=$?
	set -e
	cat "$log"
	races=$(grep -c 'WARNING: ThreadSanitizer' "$log" || true)
	echo "tsan_check: $p: exit status $rc, $races ThreadSanitizer report(s)"
	{ [ "$rc" -eq 0 ] && [ "$races" -eq 0 ]; } || status=1
done
exit "$status"

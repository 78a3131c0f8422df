#!/usr/bin/env bash
# Builds rvattn and runs every test with ctest.
#   tools/run-tests.sh          Release build in build/ (-Wall -Wextra -Werror)
#   tools/run-tests.sh --asan   ASan+UBSan build in build-asan/
# Extra arguments after -- go to ctest (e.g. -- -R attention).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=release
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --asan) mode=asan ;;
    --) shift; ctest_args=("$@"); break ;;
    *) echo "run-tests: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done

jobs=$(nproc 2>/dev/null || echo 2)
if [ "$mode" = asan ]; then
  dir=build-asan
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRVATTN_WERROR=ON \
        -DRVATTN_SANITIZE=address,undefined -DRVATTN_BUILD_BENCH=OFF >/dev/null
else
  dir=build
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DRVATTN_WERROR=ON >/dev/null
fi
cmake --build "$dir" -j "$jobs"
ctest --test-dir "$dir" --output-on-failure -j "$jobs" "${ctest_args[@]}"

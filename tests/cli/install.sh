#!/usr/bin/env bash
# cmake --install into a temporary prefix, then build a consumer project against it with
# find_package(rvattn) (shared and static targets) and with pkg-config, and run them.
set -euo pipefail
rvattn=$1 build=$2 src=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -x "$tmp/prefix/bin/rvattn"
"$tmp/prefix/bin/rvattn" --version >/dev/null
# A sanitizer build installs instrumented libraries: consumers need the same flags.
san=$(sed -n 's/^RVATTN_SANITIZE:STRING=//p' "$build/CMakeCache.txt")
sanflags=${san:+-fsanitize=$san}
cmake -S "$src/tests/install" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS="$sanflags" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib/x86_64-linux-gnu" "$tmp/consumer/consumer_shared"
"$tmp/consumer/consumer_static"
# pkg-config
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib/x86_64-linux-gnu/pkgconfig"
cc -std=c11 $sanflags "$src/tests/install/consumer.c" $(pkg-config --cflags rvattn) \
   $(pkg-config --libs rvattn) -lm -o "$tmp/consumer_pc"
LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib/x86_64-linux-gnu" "$tmp/consumer_pc"
echo "install: ok"

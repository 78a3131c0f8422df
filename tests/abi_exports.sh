#!/usr/bin/env bash
# The shared libraries export exactly the public API (include/rvattn/export.h):
#   1. every defined dynamic symbol (nm -D --defined-only) is a public name: rva_ followed
#      by a letter or digit (never an rva__ internal, a BLIS, hwloc or helper symbol);
#   2. every exported symbol is declared in a public header, and every function a public
#      header declares is exported (a hidden public function would fail its callers'
#      link only once they use it).
#   3. the SONAME is lib<name>.so.SOVERSION (the policy in README, "Versions and ABI").
# Usage: abi_exports.sh INCLUDE_DIR GENERATED_INCLUDE_DIR SOVERSION CORE_LIB [MPI_LIB]
#   CORE_LIB (librvattn.so) is checked against every header but dist.h; MPI_LIB
#   (librvattn_mpi.so, which carries the core: dist/CMakeLists.txt) against all of them.
#   GENERATED_INCLUDE_DIR holds the configured version.h.
set -euo pipefail
inc=$1 gen=$2 soversion=$3 core=$4 mpi=${5:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# Function names declared in the given headers: comments, preprocessor lines and
# brace-less typedefs (function pointer types) removed, then every rva_ identifier
# directly followed by '('.
declared() {
	cat "$@" | perl -0777 -pe 's@/\*.*?\*/@@gs; s@//[^\n]*@@g;
		s@^\s*#(?:[^\n]*\\\n)*[^\n]*@@mg; s@\btypedef\b[^;{]*;@@g' |
		grep -oE '\brva_[a-z0-9][a-z0-9_]*[[:space:]]*\(' |
		grep -oE 'rva_[a-z0-9_]+' | sort -u
}

check() { # LIB HEADERS...
	local lib=$1 name
	shift
	name=$(basename "$lib")
	local soname want
	soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
	want="${name%%.so*}.so.$soversion"
	if [ "$soname" != "$want" ]; then
		echo "FAIL $name: SONAME '$soname', expected '$want'"
		fail=1
	fi
	nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' | sort -u >"$tmp/exported"
	local n
	n=$(wc -l <"$tmp/exported")
	if [ "$n" -lt 50 ]; then
		echo "FAIL $name: only $n exported symbols: is this the library?"
		fail=1
	fi
	grep -vE '^rva_[a-z0-9]' "$tmp/exported" >"$tmp/foreign" || true
	if [ -s "$tmp/foreign" ]; then
		echo "FAIL $name exports $(wc -l <"$tmp/foreign") symbols outside the public prefix rva_:"
		head -50 "$tmp/foreign" | sed 's/^/  /'
		fail=1
	fi
	declared "$@" >"$tmp/declared"
	comm -23 "$tmp/exported" "$tmp/declared" | grep -E '^rva_[a-z0-9]' >"$tmp/undeclared" || true
	if [ -s "$tmp/undeclared" ]; then
		echo "FAIL $name exports rva_ symbols no public header declares:"
		sed 's/^/  /' "$tmp/undeclared"
		fail=1
	fi
	comm -13 "$tmp/exported" "$tmp/declared" >"$tmp/hidden"
	if [ -s "$tmp/hidden" ]; then
		echo "FAIL $name does not export functions its public headers declare:"
		sed 's/^/  /' "$tmp/hidden"
		fail=1
	fi
	echo "$name: $n exported symbols, $(wc -l <"$tmp/declared") declared functions"
}

core_headers=("$gen"/version.h)
for h in "$inc"/*.h; do
	[ "$(basename "$h")" = dist.h ] || core_headers+=("$h")
done
check "$core" "${core_headers[@]}"
if [ -n "$mpi" ]; then
	check "$mpi" "$inc"/*.h "$gen"/version.h
fi
if [ "$fail" -ne 0 ]; then
	echo "abi_exports: FAILED"
	exit 1
fi
echo "abi_exports: ok"

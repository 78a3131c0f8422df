# Helpers for the CLI tests (tests/cli/*.sh), sourced by each script.
# A script is run by ctest as: bash script.sh <rvattn binary> <build dir> <source dir>
set -u
RVATTN=$(realpath "${1:?usage: script.sh RVATTN BUILD_DIR SOURCE_DIR}")
SCRIPT=$(realpath "$0")
BUILD_DIR=$(realpath "${2:?}")
SOURCE_DIR=$(realpath "${3:?}")
# Debian's python3 with numpy (python3 on PATH may be a pyenv without it).
PY=/usr/bin/python3
ORACLE="$SOURCE_DIR/tests/cli/attn_oracle.py"
T=$(mktemp -d "${TMPDIR:-/tmp}/rvattn_cli_XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
FAILS=0

fail() {
	echo "FAIL: $*" >&2
	FAILS=$((FAILS + 1))
}

need_numpy() {
	if ! "$PY" -c 'import numpy' 2>/dev/null; then
		echo "FAIL: $PY with numpy is needed (Debian package python3-numpy)" >&2
		exit 1
	fi
}

# expect_rc WANT CMD...: runs CMD, stdout to $T/out, stderr to $T/err; checks the status.
expect_rc() {
	local want=$1
	shift
	"$@" >"$T/out" 2>"$T/err"
	local rc=$?
	if [ "$rc" != "$want" ]; then
		fail "exit $rc (want $want): $* -- stderr: $(head -c 400 "$T/err")"
		return 1
	fi
	return 0
}

# expect_err_line PATTERN: stderr is exactly one line starting "rvattn: " and matching PATTERN.
expect_err_line() {
	local lines
	lines=$(wc -l <"$T/err")
	if [ "$lines" != 1 ]; then
		fail "stderr has $lines lines, want 1: $(head -c 400 "$T/err")"
		return 1
	fi
	if ! grep -q '^rvattn: ' "$T/err"; then
		fail "stderr does not start with 'rvattn: ': $(cat "$T/err")"
		return 1
	fi
	if ! grep -qE -- "$1" "$T/err"; then
		fail "stderr lacks /$1/: $(cat "$T/err")"
		return 1
	fi
	return 0
}

# no_temp_files DIR: no temporary files (".rvattn-XXXXXX", the CLI's and the library's;
# ".NAME.tmp-..." of older versions) are left in DIR.
no_temp_files() {
	local left
	left=$(find "${1:-$T}" -maxdepth 1 \( -name '.rvattn-*' -o -name '.*.tmp-*' \) | head -5)
	if [ -n "$left" ]; then
		fail "temporary files left behind: $left"
	fi
}

is_root() { [ "$(id -u)" = 0 ]; }

# also_unprivileged: when the script runs as root, runs it once more as the unprivileged
# user nobody:nogroup (util-linux setpriv; its own temporary directory under /tmp) and
# fails when that pass fails. Skips with a message when not root (this run is then the
# unprivileged one) or when setpriv is missing or cannot switch. The second pass sees
# RVATTN_TEST_UNPRIVILEGED=1.
also_unprivileged() {
	[ -n "${RVATTN_TEST_UNPRIVILEGED:-}" ] && return 0
	if ! is_root; then
		echo "note: not root (uid $(id -u)): no second, unprivileged pass"
		return 0
	fi
	if ! command -v setpriv >/dev/null; then
		echo "SKIP: setpriv (util-linux) is missing: no unprivileged pass"
		return 0
	fi
	local u g
	u=$(id -u nobody 2>/dev/null || echo 65534)
	g=$(getent group nogroup | cut -d: -f3)
	g=${g:-65534}
	local sp=(setpriv --reuid="$u" --regid="$g" --clear-groups)
	if ! "${sp[@]}" true 2>/dev/null; then
		echo "SKIP: setpriv cannot switch to uid $u: no unprivileged pass"
		return 0
	fi
	if ! "${sp[@]}" test -x "$RVATTN" -a -r "$SCRIPT"; then
		echo "SKIP: uid $u cannot run $RVATTN or read $SCRIPT: no unprivileged pass"
		return 0
	fi
	if RVATTN_TEST_UNPRIVILEGED=1 TMPDIR=/tmp "${sp[@]}" bash "$SCRIPT" "$RVATTN" \
		"$BUILD_DIR" "$SOURCE_DIR" >"$T/unprivileged.log" 2>&1; then
		echo "unprivileged pass (uid $u): all checks passed"
	else
		fail "unprivileged pass (uid $u) failed: $(tail -c 1500 "$T/unprivileged.log")"
	fi
}

# The oracle runs of the attention-op scripts (score_mods.sh, rope.sh, sparse.sh), which
# make their inputs with "$PY $ORACLE make NAME ..." (NAME_q.npy, NAME_k.npy, NAME_v.npy).
# flash_run NAME HEADS FLAGS...: rvattn run --mechanism flash with key tiles of
# FLASH_BLOCK (default 8) over NAME's inputs into NAME_out.npy; expects exit 0.
flash_run() {
	local n=$1 h=$2
	shift 2
	expect_rc 0 "$RVATTN" run --mechanism flash --heads "$h" --block "${FLASH_BLOCK:-8}" \
		--q "${n}_q.npy" --k "${n}_k.npy" --v "${n}_v.npy" --out "${n}_out.npy" "$@"
}

# oracle_check NAME HEADS CAUSAL(causal|-) MODS...: NAME_out.npy against the float64
# oracle (attn_oracle.py check, its modifier words MODS) within ORACLE_TOL (default 2e-5).
oracle_check() {
	local n=$1 h=$2 c=$3
	shift 3
	"$PY" "$ORACLE" check "${n}_q.npy" "${n}_k.npy" "${n}_v.npy" "${n}_out.npy" "$h" "$c" \
		"${ORACLE_TOL:-2e-5}" "$@" >"$T/oracle" 2>&1 || fail "$n $*: $(cat "$T/oracle")"
}

finish() {
	if [ "$FAILS" != 0 ]; then
		echo "$FAILS check(s) failed" >&2
		exit 1
	fi
	echo "all checks passed"
	exit 0
}

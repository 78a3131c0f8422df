#!/bin/sh
# rvattn against PyTorch 2.6 (Debian 13 chroot) on G1-G4, same run: makes or reuses the
# chroot (setup.sh), then runs compare.py. Needs root (chroot). Not part of build or tests.
#
#   sudo bench/torch26/compare.sh [--build build] [--threads 1,2] [--rows G1,G2,G3,G4]
#                                 [--repeat 5] [--rounds 1] [--root DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=${TORCH26_ROOT:-/tmp/torch26-root}
prev=""
for arg in "$@"; do
	[ "$prev" = "--root" ] && root=$arg
	prev=$arg
done
"$here/setup.sh" "$root" >&2
cd "$here/../.."
exec python3 "$here/compare.py" --root "$root" "$@"

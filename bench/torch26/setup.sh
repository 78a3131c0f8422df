#!/bin/sh
# Make (or reuse) a Debian 13 "trixie" chroot with PyTorch 2.6 from Debian's own packages, the
# fp32 peer of bench/torch26/compare.sh. Never a requirement of the build or the tests.
#
#   sudo bench/torch26/setup.sh [ROOT]        # ROOT defaults to $TORCH26_ROOT or /tmp/torch26-root
#
# Idempotent: a finished chroot (marker file .rvattn-torch26-ready) is only re-mounted. Needs root,
# network access to the Debian mirror and ~2 GB. Mounts: proc, /dev and /sys bound read-only
# (not recursive: their sub-mounts stay outside).
# Other tools may use the chroot read-only; this script never deletes it.
set -eu

ROOT=${1:-${TORCH26_ROOT:-/tmp/torch26-root}}
MARK="$ROOT/.rvattn-torch26-ready"
PKGS="python3-torch python3-numpy libopenblas0-pthread"

if [ "$(id -u)" != 0 ]; then
	echo "setup.sh: must run as root (debootstrap, mount, chroot)" >&2
	exit 1
fi

# The mirror the host already uses (deb822 sources first, then the one-line format).
mirror=""
if [ -r /etc/apt/sources.list.d/debian.sources ]; then
	mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -r /etc/apt/sources.list ]; then
	mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}

mount_all() {
	mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
	for d in dev sys; do
		mkdir -p "$ROOT/$d"
		if ! mountpoint -q "$ROOT/$d"; then
			mount --bind "/$d" "$ROOT/$d"
			mount -o remount,bind,ro "$ROOT/$d"
		fi
	done
}

if [ -f "$MARK" ]; then
	mount_all
	echo "setup.sh: reusing $ROOT ($(cat "$MARK"))"
	exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
fi

mkdir -p "$ROOT"
if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
	echo "setup.sh: debootstrap trixie into $ROOT from $mirror"
	debootstrap --variant=minbase trixie "$ROOT" "$mirror"
fi
mount_all
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
	sh -c "apt-get update && apt-get install -y --no-install-recommends $PKGS && apt-get clean"
ver=$(chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin python3 -c \
	'import torch; print(torch.__version__)')
echo "torch $ver, $(date -u +%Y-%m-%dT%H:%MZ)" >"$MARK"
echo "setup.sh: ready: $ROOT (torch $ver)"

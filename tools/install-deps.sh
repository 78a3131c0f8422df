#!/usr/bin/env bash
# Installs what rvattn needs from Debian packages, only what is missing, non-interactively.
#   tools/install-deps.sh           build + tests (gcc, cmake, BLIS, hwloc, Criterion, ...)
#   tools/install-deps.sh --dev     + sanitizer/fuzzing toolchain (clang, libomp, Archer)
#   tools/install-deps.sh --peer    + the PyTorch peer of bench/compare_torch.py
set -euo pipefail

pkgs=(build-essential cmake pkg-config libhwloc-dev hwloc libblis-openmp-dev
      libcriterion-dev python3 python3-numpy gnuplot-nox libopenmpi-dev openmpi-bin)
for arg in "$@"; do
  case "$arg" in
    --dev)  pkgs+=(clang libclang-rt-14-dev libomp-dev llvm valgrind) ;;
    --peer) pkgs+=(python3-torch libopenblas0-pthread libtcmalloc-minimal4) ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "install-deps: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: everything is installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"

#!/usr/bin/env bash
# Runs every benchmark program in one go on a quiet machine and prints the figures that
# bench/RESULTS.md records (same run: the limits and the peer next to rvattn).
#   bench/run_all.sh [build-dir]        (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
b=${1:-build}
echo "## gemm_peak"; "$b/bench/gemm_peak"
echo; echo "## attention (standard shapes, 1 and all threads)"; "$b/bench/attention"
echo; echo "## attention, long rows"; "$b/bench/attention" --rows M32K,LIN64K --threads "$(nproc)" --repeat 3
"$b/bench/attention" --rows FL64K --threads "$(nproc)" --repeat 1
echo; echo "## PyTorch peer"; /usr/bin/python3 bench/compare_torch.py --build "$b"
echo; echo "## scheduler overhead"; "$b/bench/sched_overhead"
echo; echo "## linear scaling"; "$b/bench/linear_scaling"

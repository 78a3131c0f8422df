#!/usr/bin/env python3
"""rvattn against PyTorch 2.6's CPU flash attention (fp32 SDPA) on G1-G4, in the same run.

PyTorch 2.6 is Debian 13's python3-torch, run inside the chroot that setup.sh makes (it
needs trixie's glibc). Per row and thread count, in one sitting and alternating:
  * PyTorch: a fresh `python3` in the chroot (environment emptied, so OPENBLAS_CORETYPE,
    OPENBLAS_L2_SIZE and OMP_NUM_THREADS are unset; OPENBLAS_NUM_THREADS=1, see
    run_torch), torch.set_num_threads(T),
    [B, H, N, D] contiguous fp32 tensors (its best layout), F.scaled_dot_product_attention
    under inference_mode, one warm-up call, median of --repeat timed calls;
  * rvattn: BUILD/bench/attention --rows ROW --threads T --repeat R (flash, same shapes).
GFLOP/s = 4 * B * H * pairs * D for both (pairs: unmasked query-key pairs).

    sudo bench/torch26/compare.sh [--build build] [--threads 1,2] [--rows G1,G2,G3,G4]
                                  [--repeat 5] [--rounds 1] [--root /tmp/torch26-root]

--rounds R repeats the whole alternation R times and reports the median of the rounds.
Prints the markdown table of bench/RESULTS.md ("Prefill against the FMA peak").
Run by compare.sh (root: chroot); the `torch` sub-command is what runs inside the chroot.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROWS = {
    # name: (B, H, N, D, causal)
    "G1": (8, 12, 512, 64, False),
    "G2": (4, 12, 2048, 64, False),
    "G3": (4, 12, 2048, 64, True),
    "G4": (1, 16, 8192, 64, True),
}


def flops(row):
    B, H, N, D, causal = ROWS[row]
    pairs = N * (N + 1) // 2 if causal else N * N
    return 4.0 * B * H * pairs * D


def torch_main(argv):
    """Inside the chroot: time SDPA on one row at one thread count, print one JSON line."""
    import time
    import torch
    import torch.nn.functional as F

    row, threads, reps = argv[0], int(argv[1]), int(argv[2])
    torch.set_num_threads(threads)
    B, H, N, D, causal = ROWS[row]
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.rand(B, H, N, D, generator=g) * 2 - 1 for _ in range(3))
    choice = -1
    if hasattr(torch, "_fused_sdp_choice"):
        choice = int(torch._fused_sdp_choice(q, k, v, None, 0.0, causal))
    times = []
    with torch.inference_mode():
        for r in range(reps + 1):
            t0 = time.perf_counter()
            F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            if r > 0:
                times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    cap = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "?"
    print(json.dumps({"row": row, "threads": threads, "median_s": med,
                      "gflops": flops(row) / med * 1e-9, "torch": torch.__version__,
                      "sdp_choice": choice, "cpu_capability": cap,
                      "torch_threads": torch.get_num_threads()}))


def run_torch(root, row, threads, reps):
    # OpenBLAS (torch's BLAS in Debian) at one thread: torch's flash kernel runs its own
    # threads, each calling small sgemms; left at OpenBLAS's default (all cores, spinning)
    # inside them it measured 1-10 GFLOP/s instead of ~40-110 on G1.
    env = {"PATH": "/usr/bin:/bin", "HOME": "/root", "LC_ALL": "C.UTF-8",
           "OPENBLAS_NUM_THREADS": "1"}
    with open(os.path.abspath(__file__), "rb") as src:
        out = subprocess.run(["chroot", root, "/usr/bin/env", "-i"] +
                             [f"{k}={v}" for k, v in env.items()] +
                             ["python3", "-", "torch", row, str(threads), str(reps)],
                             stdin=src, capture_output=True, check=True)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def run_rvattn(build, row, threads, reps):
    with tempfile.NamedTemporaryFile(suffix=".json") as tf:
        subprocess.run([os.path.join(build, "bench", "attention"), "--rows", row, "--threads",
                        str(threads), "--repeat", str(reps), "--json", tf.name],
                       check=True, stdout=subprocess.DEVNULL)
        with open(tf.name) as f:
            doc = json.load(f)
    r = doc["rows"][0]
    return {"gflops": r["gflops"], "fma_peak": doc.get("fma_peak_gflops_1t")}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "torch":
        torch_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rows", default="G1,G2,G3,G4")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--root", default=os.environ.get("TORCH26_ROOT", "/tmp/torch26-root"))
    a = ap.parse_args()
    rows = [r for r in a.rows.split(",") if r]
    for r in rows:
        if r not in ROWS:
            sys.exit(f"compare.py: unknown row {r} (known: {', '.join(ROWS)})")
    threads = [int(t) for t in a.threads.split(",") if t]
    res = {}  # (row, t) -> {"torch": [...], "rvattn": [...]}
    info = None
    for rnd in range(a.rounds):
        for row in rows:
            for t in threads:
                tr = run_torch(a.root, row, t, a.repeat)
                rv = run_rvattn(a.build, row, t, a.repeat)
                info = info or tr
                e = res.setdefault((row, t), {"torch": [], "rvattn": []})
                e["torch"].append(tr["gflops"])
                e["rvattn"].append(rv["gflops"])
                print(f"# round {rnd + 1} {row} {t} thr: torch {tr['gflops']:.1f} "
                      f"rvattn {rv['gflops']:.1f} GFLOP/s", file=sys.stderr, flush=True)
    print(f"# PyTorch {info['torch']} (Debian 13 chroot {a.root}), SDPA fp32 [B,H,N,D], "
          f"fused sdp choice {info['sdp_choice']} (1 = flash), cpu capability "
          f"{info['cpu_capability']}; rvattn {a.build}/bench/attention (flash)")
    print(f"# median of {a.repeat} calls after a warm-up, median of {a.rounds} round(s); "
          f"load average {os.getloadavg()[0]:.1f}")
    ts = " / ".join(str(t) for t in threads)
    print(f"| shape | PyTorch 2.6 GFLOP/s ({ts} thr) | rvattn GFLOP/s | rvattn / PyTorch |")
    print("|---|---|---|---|")
    for row in rows:
        B, H, N, D, causal = ROWS[row]
        tv = [statistics.median(res[(row, t)]["torch"]) for t in threads]
        rv = [statistics.median(res[(row, t)]["rvattn"]) for t in threads]
        ratio = [statistics.median(x / y for x, y in zip(res[(row, t)]["rvattn"],
                                                         res[(row, t)]["torch"]))
                 for t in threads]
        name = f"{row} B{B} H{H} N{N} D{D}" + (" causal" if causal else "")
        print(f"| {name} | " + " / ".join(f"{x:.0f}" for x in tv) + " | " +
              " / ".join(f"{x:.0f}" for x in rv) + " | " +
              " / ".join(f"{x:.2f}" for x in ratio) + " |")


if __name__ == "__main__":
    main()

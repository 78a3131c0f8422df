#!/usr/bin/env python3
"""rvattn against PyTorch on the standard shapes, in the same run.

PyTorch is Debian's python3-torch (1.13), run at its best: with OpenBLAS's AVX-512 kernels
(LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread, OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE unset so OpenBLAS detects the CPU itself) instead of the system BLIS
alternative (generic kernels on Zen 5), tcmalloc preloaded with TCMALLOC_RELEASE_RATE=0,
[B, H, N, D] contiguous tensors, and per row the faster of plain matmul-softmax-matmul and
torch's own attention op (F._scaled_dot_product_attention in 1.13).

    /usr/bin/python3 bench/compare_torch.py [--build build] [--threads 1,2] [--rows G1,...]

The script re-executes itself with that environment, runs build/bench/attention --json
for rvattn, times torch on the same shapes and thread counts, checks that outputs agree on
a reduced copy of each shape (max abs error, via `rvattn run` with .npy files), and prints
the ratio rvattn/torch per row.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

OPENBLAS_DIR = "/usr/lib/x86_64-linux-gnu/openblas-pthread"
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"

ROWS = {
    # name: (B, H, Nq, Nk, D, causal)
    "G1": (8, 12, 512, 512, 64, False),
    "G2": (4, 12, 2048, 2048, 64, False),
    "G3": (4, 12, 2048, 2048, 64, True),
    "G4": (1, 16, 8192, 8192, 64, True),
    "G5": (16, 12, 1, 4096, 64, False),
}


def reexec_with_peer_env():
    """Runs this script again with OpenBLAS and tcmalloc for torch (once)."""
    if os.environ.get("RVATTN_COMPARE_CHILD") == "1":
        return
    env = dict(os.environ)
    env["RVATTN_COMPARE_CHILD"] = "1"
    env["LD_LIBRARY_PATH"] = OPENBLAS_DIR + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    if os.path.exists(TCMALLOC):
        env["LD_PRELOAD"] = TCMALLOC
        env["TCMALLOC_RELEASE_RATE"] = "0"
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def loaded_blas():
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if ".so" in line}
    return sorted(l for l in libs if "blas" in l or "blis" in l or "tcmalloc" in l)


def pairs(nq, nk, causal):
    if not causal:
        return nq * nk
    off = nk - nq
    return sum(max(0, min(nk, off + i + 1)) for i in range(nq))


def torch_methods(torch, F):
    def matmul(q, k, v, causal, mask):
        s = torch.matmul(q, k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
        if causal:
            s = s.masked_fill(mask, float("-inf"))
        return torch.matmul(torch.softmax(s, dim=-1), v)

    def sdpa(q, k, v, causal, mask):
        out, _ = F._scaled_dot_product_attention(q, k, v, None, 0.0, False, causal)
        return out

    return {"matmul-softmax-matmul": matmul, "torch sdpa": sdpa}


def set_threads(torch, threads):
    """torch.set_num_threads does not reach OpenBLAS's own pool (it stays at all cores):
    set both, the latter through openblas_set_num_threads in the loaded library."""
    import ctypes
    torch.set_num_threads(threads)
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "openblas" in line and ".so" in line}
    for lib in libs:
        try:
            ctypes.CDLL(lib).openblas_set_num_threads(threads)
        except (OSError, AttributeError):
            pass


def time_torch(torch, F, row, threads, reps):
    B, H, nq, nk, D, causal = ROWS[row]
    set_threads(torch, threads)
    g = torch.Generator().manual_seed(1)
    q = torch.rand(B, H, nq, D, generator=g) * 2 - 1
    k = torch.rand(B, H, nk, D, generator=g) * 2 - 1
    v = torch.rand(B, H, nk, D, generator=g) * 2 - 1
    mask = None
    if causal:
        i = torch.arange(nq).unsqueeze(1) + (nk - nq)
        j = torch.arange(nk).unsqueeze(0)
        mask = j > i
    best = None
    for name, fn in torch_methods(torch, F).items():
        if name == "torch sdpa" and causal and nq != nk:
            continue  # its is_causal aligns the first query with the first key
        try:
            with torch.no_grad():
                fn(q, k, v, causal, mask)  # warm-up
                ts = []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    fn(q, k, v, causal, mask)
                    ts.append(time.perf_counter() - t0)
        except RuntimeError as e:  # out of memory on the biggest shapes
            print(f"# torch {name} {row}: {e}", file=sys.stderr)
            continue
        ts.sort()
        med = ts[len(ts) // 2]
        if best is None or med < best[1]:
            best = (name, med)
    return best


def check_agreement(torch, F, build, row):
    """Max abs difference of rvattn and torch on a reduced copy of the row's shape."""
    import numpy as np
    B, H, nq, nk, D, causal = ROWS[row]
    B, nq, nk = min(B, 2), min(nq, 256), min(nk, 512)
    rng = np.random.default_rng(7)
    q = rng.uniform(-1, 1, (B, nq, H * D)).astype(np.float32)
    k = rng.uniform(-1, 1, (B, nk, H * D)).astype(np.float32)
    v = rng.uniform(-1, 1, (B, nk, H * D)).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        for n, a in (("q", q), ("k", k), ("v", v)):
            np.save(os.path.join(d, n + ".npy"), a)
        cmd = [os.path.join(build, "rvattn"), "run", "--mechanism", "flash", "--dim", str(H * D),
               "--heads", str(H), "--q", os.path.join(d, "q.npy"), "--k", os.path.join(d, "k.npy"),
               "--v", os.path.join(d, "v.npy"), "--out", os.path.join(d, "o.npy")]
        if causal:
            cmd.append("--causal")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        ours = np.load(os.path.join(d, "o.npy")).reshape(B, nq, H, D)
    tq = torch.from_numpy(q).view(B, nq, H, D).transpose(1, 2)
    tk = torch.from_numpy(k).view(B, nk, H, D).transpose(1, 2)
    tv = torch.from_numpy(v).view(B, nk, H, D).transpose(1, 2)
    mask = None
    if causal:
        mask = torch.arange(nk).unsqueeze(0) > (torch.arange(nq).unsqueeze(1) + (nk - nq))
    with torch.no_grad():
        ref = torch_methods(torch, F)["matmul-softmax-matmul"](tq, tk, tv, causal, mask)
    ref = ref.transpose(1, 2).numpy()
    return float(abs(ours - ref).max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--threads", default=None)
    ap.add_argument("--rows", default="G1,G2,G3,G4,G5")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    reexec_with_peer_env()

    import torch
    import torch.nn.functional as F
    threads = args.threads or ("1,%d" % os.cpu_count() if os.cpu_count() > 1 else "1")
    rows = [r for r in args.rows.split(",") if r in ROWS]

    with tempfile.NamedTemporaryFile(suffix=".json") as tf:
        subprocess.run([os.path.join(args.build, "bench", "attention"), "--rows", ",".join(rows),
                        "--threads", threads, "--repeat", str(args.repeat), "--json", tf.name],
                       check=True, stdout=sys.stderr, env={k: v for k, v in os.environ.items()
                                                           if k not in ("LD_PRELOAD",)})
        ours = json.load(open(tf.name))

    print(f"# compare_torch — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# torch {torch.__version__}, libraries loaded: {', '.join(loaded_blas())}")
    print(f"# rvattn sgemm limit (1 thread): {ours['sgemm_limit_gflops']:.1f} GFLOP/s")
    print(f"{'row':4} {'thr':>3} {'rvattn ms':>10} {'GFLOP/s':>8} {'torch ms':>9} {'GFLOP/s':>8} "
          f"{'ratio':>6}  {'torch method':22} {'max|diff|':>9}")
    results = []
    diffs = {}
    for r in ours["rows"]:
        row, t = r["row"], r["threads"]
        B, H, nq, nk, D, causal = ROWS[row]
        flops = 4.0 * B * H * D * pairs(nq, nk, causal)
        best = time_torch(torch, F, row, t, args.repeat)
        if row not in diffs:
            diffs[row] = check_agreement(torch, F, args.build, row)
        if best is None:
            print(f"{row:4} {t:>3} {r['median_ms']:10.2f} {r['gflops']:8.1f} {'-':>9}")
            continue
        tms = best[1] * 1e3
        ratio = tms / r["median_ms"]
        print(f"{row:4} {t:>3} {r['median_ms']:10.2f} {r['gflops']:8.1f} {tms:9.2f} "
              f"{flops / best[1] * 1e-9:8.1f} {ratio:5.2f}x  {best[0]:22} {diffs[row]:9.2e}")
        results.append({"row": row, "threads": t, "rvattn_ms": r["median_ms"], "torch_ms": tms,
                        "torch_method": best[0], "speedup": ratio, "max_abs_diff": diffs[row]})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "libs": loaded_blas(), "rows": results}, f, indent=1)


if __name__ == "__main__":
    main()

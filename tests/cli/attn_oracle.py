#!/usr/bin/python3
"""Independent float64 oracle for `rvattn run` outputs (used by tests/cli/*.sh).

usage: attn_oracle.py check Q K V OUT HEADS [causal] [tol]
       compares OUT (written by rvattn) with softmax(q k^T / sqrt(head_dim)) v per head,
       grouped-query heads (query head h uses kv head h // (heads // kv_heads)), causal
       masking aligned at the end (query i sees keys j <= nk - nq + i).
       Q: [B, N, dim] | [B, N, H, D] | [N, dim]; K/V the same with kv heads.
usage: attn_oracle.py make PREFIX SEED SHAPE_Q SHAPE_KV [dtype]
       writes PREFIX_q.npy, PREFIX_k.npy, PREFIX_v.npy with normal random data.
"""
import sys

import numpy as np


def as3(a):
    if a.ndim == 2:
        return a[None]
    if a.ndim == 4:
        return a.reshape(a.shape[0], a.shape[1], -1)
    return a


def oracle(q, k, v, heads, causal):
    q, k, v = (as3(x).astype(np.float64) for x in (q, k, v))
    b, nq, dim = q.shape
    nk = k.shape[1]
    hd = dim // heads
    kvh = k.shape[2] // hd
    group = heads // kvh
    out = np.zeros_like(q)
    for h in range(heads):
        g = h // group
        qs = q[:, :, h * hd:(h + 1) * hd]
        ks = k[:, :, g * hd:(g + 1) * hd]
        vs = v[:, :, g * hd:(g + 1) * hd]
        s = qs @ ks.transpose(0, 2, 1) / np.sqrt(hd)
        if causal:
            i = np.arange(nq)[:, None]
            j = np.arange(nk)[None, :]
            s = np.where(j <= nk - nq + i, s, -np.inf)
        s -= s.max(axis=2, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=2, keepdims=True)
        out[:, :, h * hd:(h + 1) * hd] = p @ vs
    return out


def main():
    if sys.argv[1] == "make":
        prefix, seed = sys.argv[2], int(sys.argv[3])
        sq = tuple(int(x) for x in sys.argv[4].split(","))
        skv = tuple(int(x) for x in sys.argv[5].split(","))
        dt = sys.argv[6] if len(sys.argv) > 6 else "float32"
        r = np.random.default_rng(seed)
        np.save(prefix + "_q.npy", r.standard_normal(sq).astype(dt))
        np.save(prefix + "_k.npy", r.standard_normal(skv).astype(dt))
        np.save(prefix + "_v.npy", r.standard_normal(skv).astype(dt))
        return 0
    qf, kf, vf, of, heads = sys.argv[2:7]
    causal = len(sys.argv) > 7 and sys.argv[7] == "causal"
    tol = float(sys.argv[8]) if len(sys.argv) > 8 else 1e-5
    q, k, v, o = (np.load(f) for f in (qf, kf, vf, of))
    if o.dtype != np.float32 or o.shape != q.shape:
        print(f"output has dtype {o.dtype} shape {o.shape}, expected float32 {q.shape}")
        return 1
    # The oracle sees the data as rvattn did: float32.
    q, k, v = (x.astype(np.float32) for x in (q, k, v))
    ref = oracle(q, k, v, int(heads), causal)
    err = np.abs(as3(o).astype(np.float64) - ref).max()
    if not np.isfinite(err) or err > tol:
        print(f"max abs error {err:.3g} > {tol:g}")
        return 1
    print(f"ok: max abs error {err:.3g} (tol {tol:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

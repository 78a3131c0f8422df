#!/usr/bin/env python3
"""Fixtures for tests/test_moe_torch.c: Mixture-of-Attention-Heads outputs computed by
PyTorch in float64, independently of rvattn.

For each case of a grid over hidden sizes (dim 8, 32, 64 with 2, 4, 8 heads) this script
draws the inputs and every weight with NumPy from a fixed seed, computes the MoE attention
output in torch float64 and writes, under tests/fixtures/moe/<case>/:

  meta.npy    float32 [dim, heads, experts, top_k, capacity_factor, causal,
                       normalize_gates (0 Switch raw, 1 GShard), nq, nk]
  x.npy       float32 [nq, dim]        queries (the router and W_q read them)
  k.npy       float32 [nk, dim]        keys
  v.npy       float32 [nk, dim]        values
  router.npy  float32 [E, dim]         gate weights: logits = W x
  wq.npy      float32 [E, dim, dim]    per expert, q_e = x @ wq[e]
  wo.npy      float32 [E, dim, dim]    per expert, y_e = attention_e @ wo[e]
  wk.npy      float32 [dim, dim]       shared: K' = k @ wk
  wv.npy      float32 [dim, dim]       shared: V' = v @ wv
  out.npy     float64 [nq, dim]        the MoE output

The semantics are those of include/rvattn/config.h (Switch/GShard routing, capacity per
sequence ceil(factor * nq * k / E), rank-major GShard priority, dropped pairs contribute
0) with standard multi-head softmax experts (scale 1/sqrt(head_dim)). The same file names
are what `rvattn run --weights DIR` reads.

CI does not need torch: the fixtures are committed. To regenerate them (Debian 12:
apt-get install python3-torch python3-numpy):

    python3 tests/ref/moa_torch.py tests/fixtures/moe
"""
import math
import os
import sys

import numpy as np
import torch

CASES = [
    # name, dim, heads, experts, top_k, capacity, causal, normalize, nq, nk, seed
    ("d8_h2_k1", 8, 2, 4, 1, 1.0, 0, 0, 12, 12, 11),
    ("d32_h4_k2", 32, 4, 4, 2, 0.75, 0, 1, 20, 24, 12),
    ("d32_h4_k2_causal", 32, 4, 6, 2, 1.25, 1, 1, 18, 18, 13),
    ("d64_h8_k2", 64, 8, 4, 2, 1.0, 0, 1, 16, 20, 14),
]

# fp32 routing must make the same choices as float64: no decision within this margin
TIE_MARGIN = 1e-3


def draw(case):
    name, dim, heads, E, k, cap, causal, norm, nq, nk, seed = case
    rng = np.random.default_rng(seed)
    while True:
        f = dict(
            x=rng.uniform(-1.0, 1.0, (nq, dim)).astype(np.float32),
            k=rng.uniform(-1.0, 1.0, (nk, dim)).astype(np.float32),
            v=rng.uniform(-1.0, 1.0, (nk, dim)).astype(np.float32),
            router=(rng.standard_normal((E, dim)) / math.sqrt(dim)).astype(np.float32),
            wq=(rng.standard_normal((E, dim, dim)) / math.sqrt(dim)).astype(np.float32),
            wo=(rng.standard_normal((E, dim, dim)) / math.sqrt(dim)).astype(np.float32),
            wk=(rng.standard_normal((dim, dim)) / math.sqrt(dim)).astype(np.float32),
            wv=(rng.standard_normal((dim, dim)) / math.sqrt(dim)).astype(np.float32),
        )
        p = torch.softmax(torch.from_numpy(f["x"]).double() @
                          torch.from_numpy(f["router"]).double().T, dim=-1)
        s = torch.sort(p, dim=-1, descending=True).values
        gaps = s[:, :-1] - s[:, 1:]
        if E == 1 or gaps[:, :k].min().item() > TIE_MARGIN:
            return f


def capacity(factor, tokens, k, E):
    return math.ceil(factor * tokens * k / E)


def moa(case, f):
    name, dim, heads, E, k, cap, causal, norm, nq, nk, seed = case
    t = {key: torch.from_numpy(val).double() for key, val in f.items()}
    x, K, V = t["x"], t["k"], t["v"]
    p = torch.softmax(x @ t["router"].T, dim=-1)               # [nq, E]
    gate, choice = torch.topk(p, k, dim=-1)                   # descending
    if norm:
        gate = gate / gate.sum(dim=-1, keepdim=True)          # GShard
    # rank-major GShard priority within the sequence
    C = capacity(np.float32(cap).item(), nq, k, E)
    held = [0] * E
    kept = torch.zeros(nq, k, dtype=torch.bool)
    for r in range(k):
        for i in range(nq):
            e = int(choice[i, r])
            if held[e] < C:
                held[e] += 1
                kept[i, r] = True
    hd = dim // heads
    Kp = (K @ t["wk"]).view(nk, heads, hd).transpose(0, 1)    # [H, nk, hd]
    Vp = (V @ t["wv"]).view(nk, heads, hd).transpose(0, 1)
    out = torch.zeros(nq, dim, dtype=torch.float64)
    qpos = torch.arange(nq) + (nk - nq)
    mask = torch.arange(nk)[None, :] <= qpos[:, None]         # causal alignment
    for e in range(E):
        q = (x @ t["wq"][e]).view(nq, heads, hd).transpose(0, 1)
        s = q @ Kp.transpose(1, 2) / math.sqrt(hd)            # [H, nq, nk]
        if causal:
            s = s.masked_fill(~mask[None], float("-inf"))
        a = torch.softmax(s, dim=-1) @ Vp                     # [H, nq, hd]
        y = a.transpose(0, 1).reshape(nq, dim) @ t["wo"][e]
        for r in range(k):
            sel = (choice[:, r] == e) & kept[:, r]
            out[sel] += gate[sel, r, None] * y[sel]
    meta = np.array([dim, heads, E, k, cap, causal, norm, nq, nk], dtype=np.float32)
    return out.numpy(), meta, int((~kept).sum())


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/moe"
    torch.set_default_dtype(torch.float64)
    for case in CASES:
        f = draw(case)
        out, meta, dropped = moa(case, f)
        d = os.path.join(root, case[0])
        os.makedirs(d, exist_ok=True)
        for key, val in f.items():
            np.save(os.path.join(d, key + ".npy"), val)
        np.save(os.path.join(d, "meta.npy"), meta)
        np.save(os.path.join(d, "out.npy"), out)
        print(f"{case[0]}: dim {case[1]} heads {case[2]} experts {case[3]} top-{case[4]} "
              f"dropped pairs {dropped}, |out| max {np.abs(out).max():.4f}")


if __name__ == "__main__":
    main()

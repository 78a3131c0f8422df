#!/usr/bin/python3
"""Independent float64 oracle for `rvattn run` outputs (used by tests/cli/*.sh).

usage: attn_oracle.py check Q K V OUT HEADS [causal] [tol]
       compares OUT (written by rvattn) with softmax(q k^T / sqrt(head_dim)) v per head,
       grouped-query heads (query head h uses kv head h // (heads // kv_heads)), causal
       masking aligned at the end (query i sees keys j <= nk - nq + i).
       Q: [B, N, dim] | [B, N, H, D] | [N, dim]; K/V the same with kv heads.
       Score modifiers (include/rvattn/config.h), as KEY=VALUE arguments anywhere after
       HEADS: align=top-left (query i at i), window=L,R (-1: unbounded side),
       scale=S (the logit scale instead of 1/sqrt(head_dim)),
       softcap=C, alibi=1 (the paper's default slopes), slopes=FILE (ALiBi with the
       given slopes, .npy [heads]), bias=FILE and mask=FILE
       (.npy [N, M] or [heads, N, M], the same for every sequence; mask nonzero = visible),
       strided=L and fixed=L,C (the Sparse Transformer patterns, causal).
       Layouts and outputs (include/rvattn/batch.h): layout=bhsd (4-D Q, K, V and OUT
       are [B, H, N, D]), vhd=DV (V and OUT heads of DV values), lse=FILE (the rows'
       log-sum-exp, [B, heads, N], checked too; -inf for a row with no visible key).
       A row with no visible key is zeros.
       RoPE (RoFormer, Su et al. 2021; GPT-NeoX rotate-half or GPT-J interleaved pairs):
       rope=neox|gptj, theta=T (10000), rscale=linear|ntk with rfactor=F, rdim=R (rotated
       elements per head, default head_dim rounded down to even); key j rotates at
       position j, query i at its alignment position.
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


def alibi_slopes(n):
    """get_slopes of Press et al.'s reference code."""
    def pow2(n):
        start = 2 ** (-2 ** -(np.log2(n) - 3))
        return [start * start ** i for i in range(n)]
    if np.log2(n).is_integer():
        return pow2(n)
    p = 2 ** int(np.floor(np.log2(n)))
    return pow2(p) + alibi_slopes(2 * p)[0::2][:n - p]


def rope_rotate(x, pos, mods):
    """x: [..., n, hd] float64 rows at positions pos [n]; returns the rotated copy."""
    hd = x.shape[-1]
    rd = int(mods.get("rdim", hd - hd % 2))
    theta = float(mods.get("theta", 10000.0))
    factor = float(mods.get("rfactor", 1.0))
    p = pos.astype(np.float64)
    if mods.get("rscale") == "ntk":
        theta *= factor ** (rd / (rd - 2))
    elif mods.get("rscale") == "linear":
        p = p / factor
    half = rd // 2
    inv = theta ** (-np.arange(0, rd, 2, dtype=np.float64) / rd)
    ang = p[:, None] * inv[None, :]
    c, s = np.cos(ang), np.sin(ang)
    if mods["rope"] == "neox":
        i0, i1 = np.arange(half), np.arange(half) + half
    else:
        i0, i1 = np.arange(0, rd, 2), np.arange(1, rd, 2)
    y = x.copy()
    y[..., i0] = x[..., i0] * c - x[..., i1] * s
    y[..., i1] = x[..., i0] * s + x[..., i1] * c
    return y


def head_matrix(a, h):
    return None if a is None else (a if a.ndim == 2 else a[h])


def oracle(q, k, v, heads, causal, mods=None):
    mods = mods or {}
    q, k, v = (as3(x).astype(np.float64) for x in (q, k, v))
    b, nq, dim = q.shape
    nk = k.shape[1]
    hd = dim // heads
    kvh = k.shape[2] // hd
    group = heads // kvh
    dv = int(mods.get("vhd", hd))
    out = np.zeros((b, nq, heads * dv))
    lse = np.full((b, heads, nq), -np.inf)
    qp = np.arange(nq)[:, None] + (0 if mods.get("align") == "top-left" else nk - nq)
    j = np.arange(nk)[None, :]
    bias = np.load(mods["bias"]).astype(np.float64) if "bias" in mods else None
    mask = np.load(mods["mask"]) != 0 if "mask" in mods else None
    slopes = alibi_slopes(heads) if mods.get("alibi") else None
    if "slopes" in mods:  # given ALiBi slopes, .npy [heads]
        slopes = np.load(mods["slopes"]).astype(np.float64)
    for h in range(heads):
        g = h // group
        qs = q[:, :, h * hd:(h + 1) * hd]
        ks = k[:, :, g * hd:(g + 1) * hd]
        vs = v[:, :, g * dv:(g + 1) * dv]
        if "rope" in mods:
            qs = rope_rotate(qs, qp[:, 0], mods)
            ks = rope_rotate(ks, j[0], mods)
        scale = float(mods["scale"]) if "scale" in mods else 1.0 / np.sqrt(hd)
        s = qs @ ks.transpose(0, 2, 1) * scale
        vis = np.ones((nq, nk), dtype=bool)
        if "softcap" in mods and float(mods["softcap"]) > 0:
            c = float(mods["softcap"])
            s = c * np.tanh(s / c)
        if slopes is not None:
            s = s - slopes[h] * np.abs(qp - j)
        if bias is not None:
            s = s + head_matrix(bias, h)
        if mask is not None:
            vis &= head_matrix(mask, h)
        if causal:
            vis &= j <= qp
        if "strided" in mods:  # Sparse Transformer strided (causal)
            st = int(mods["strided"])
            d = qp - j
            vis &= (j <= qp) & ((d < st) | (d % st == 0))
        if "fixed" in mods:  # Sparse Transformer fixed: L,C (causal)
            st, c = (int(x) for x in mods["fixed"].split(","))
            vis &= (j <= qp) & ((j // st == qp // st) | (j % st >= st - c))
        if "window" in mods:
            left, right = (int(x) for x in mods["window"].split(","))
            if left >= 0:
                vis &= j >= qp - left
            if right >= 0:
                vis &= j <= qp + right
        s = np.where(vis[None], s, -np.inf)
        m = s.max(axis=2, keepdims=True)
        empty = ~np.isfinite(m)
        p = np.exp(s - np.where(empty, 0.0, m))
        tot = p.sum(axis=2, keepdims=True)
        with np.errstate(divide="ignore"):
            lse[:, h, :] = np.where(tot > 0, m + np.log(np.where(tot > 0, tot, 1.0)),
                                    -np.inf)[:, :, 0]
        p = np.where(tot > 0, p / np.where(tot > 0, tot, 1.0), 0.0)
        out[:, :, h * dv:(h + 1) * dv] = p @ vs
    return out, lse


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
    mods = dict(a.split("=", 1) for a in sys.argv[7:] if "=" in a)
    argv = sys.argv[:7] + [a for a in sys.argv[7:] if "=" not in a]
    qf, kf, vf, of, heads = argv[2:7]
    causal = len(argv) > 7 and argv[7] == "causal"
    tol = float(argv[8]) if len(argv) > 8 else 1e-5
    q, k, v, o = (np.load(f) for f in (qf, kf, vf, of))
    if mods.get("layout") == "bhsd":  # [B, H, N, D] -> [B, N, H, D]
        q, k, v, o = (x.transpose(0, 2, 1, 3) for x in (q, k, v, o))
    want = q.shape
    if "vhd" in mods:
        dv = int(mods["vhd"])
        want = q.shape[:-1] + ((dv,) if q.ndim == 4 else (int(heads) * dv,))
    if o.dtype != np.float32 or o.shape != want:
        print(f"output has dtype {o.dtype} shape {o.shape}, expected float32 {want}")
        return 1
    # The oracle sees the data as rvattn did: float32.
    q, k, v = (x.astype(np.float32) for x in (q, k, v))
    ref, ref_lse = oracle(q, k, v, int(heads), causal, mods)
    err = np.abs(as3(o).astype(np.float64) - ref).max()
    if not np.isfinite(err) or err > tol:
        print(f"max abs error {err:.3g} > {tol:g}")
        return 1
    if "lse" in mods:
        got = np.load(mods["lse"])
        if got.dtype != np.float32 or got.shape != ref_lse.shape:
            print(f"lse has dtype {got.dtype} shape {got.shape}, expected float32 "
                  f"{ref_lse.shape}")
            return 1
        if not np.array_equal(np.isneginf(got), np.isneginf(ref_lse)):
            print("lse: -inf rows differ")
            return 1
        fin = np.isfinite(ref_lse)
        lerr = np.abs(got[fin].astype(np.float64) - ref_lse[fin]).max() if fin.any() else 0.0
        if not np.isfinite(lerr) or lerr > tol * 10:
            print(f"lse: max abs error {lerr:.3g} > {tol * 10:g}")
            return 1
    print(f"ok: max abs error {err:.3g} (tol {tol:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

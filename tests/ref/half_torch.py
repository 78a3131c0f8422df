#!/usr/bin/env python3
"""Fixtures for tests/test_half_torch.c: PyTorch's bf16 attention on bf16 inputs, so the
test can check that rvattn's bf16 path is no less accurate than PyTorch's on the same
inputs, without torch at test time.

For each case this script draws Q, K and V with NumPy from a fixed seed (uniform in
[-1.5, 1.5) for Q and K, [-2, 2) for V), rounds them to bfloat16 (torch's round to nearest
even) and runs torch.nn.functional.scaled_dot_product_attention on the bf16 tensors on the
CPU (PyTorch's CPU flash-attention kernel: fp32 accumulation, P rounded to bf16 for P.V,
the output rounded to bf16; the backend is forced: PyTorch's math backend would compute
bf16 in fp32 on the CPU, which is not its bf16 attention), scale 1/sqrt(head_dim). It
writes, under
tests/fixtures/half/<case>/:

  meta.npy   float32 [heads, kv_heads, head_dim, nq, nk, causal]
  q.npy      uint16  [nq, heads * head_dim]     bf16 bits (rvattn's row layout: token-major,
  k.npy      uint16  [nk, kv_heads * head_dim]  heads side by side; '<u2' is how rvattn
  v.npy      uint16  [nk, kv_heads * head_dim]  reads and writes bf16 .npy files)
  torch.npy  uint16  [nq, heads * head_dim]     PyTorch's bf16 output, bf16 bits

Causal cases have nq == nk (torch's is_causal is top-left aligned, rvattn's bottom-right:
the same mask when the lengths agree). GQA cases repeat each K/V head heads / kv_heads
times before the call, as transformer models do (query head h reads K/V head
h / (heads / kv_heads), as rvattn; enable_gqa=True is not served by the flash kernel in
2.6 and falls back to the fp32 math path). The float64 reference is not stored: the test
computes it with the independent oracle of tests/ref/ref_softmax.c from the same bf16
values.

Regenerate with the PyTorch 2.6 chroot of bench/torch26/setup.sh (not needed by the build
or the tests):

    cp tests/ref/half_torch.py /tmp/torch26-root/tmp/
    chroot /tmp/torch26-root /usr/bin/python3 /tmp/half_torch.py /tmp/half-fixtures
    cp -r /tmp/torch26-root/tmp/half-fixtures/. tests/fixtures/half/
"""
import os
import sys

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

CASES = [
    # name, heads, kv_heads, head_dim, nq, nk, causal, seed
    ("d64_h4_n128", 4, 4, 64, 128, 128, 0, 101),
    ("d64_h4_n128_causal", 4, 4, 64, 128, 128, 1, 102),
    ("d128_h4_kv2_n96_causal", 4, 2, 128, 96, 96, 1, 103),
    ("d80_h2_n48x130", 2, 2, 80, 48, 130, 0, 104),
    ("d3_h2_n64", 2, 2, 3, 64, 64, 0, 105),
    ("decode_d64_h8_kv2_k512", 8, 2, 64, 1, 512, 0, 106),
]


def bf16_bits(t):
    """uint16 bit patterns of a bf16 tensor."""
    return t.contiguous().view(torch.int16).numpy().view(np.uint16)


def main(out_dir):
    torch.set_num_threads(1)
    for name, H, KVH, D, nq, nk, causal, seed in CASES:
        rng = np.random.default_rng(seed)
        q = torch.from_numpy(rng.uniform(-1.5, 1.5, (nq, H * D)).astype(np.float32))
        k = torch.from_numpy(rng.uniform(-1.5, 1.5, (nk, KVH * D)).astype(np.float32))
        v = torch.from_numpy(rng.uniform(-2.0, 2.0, (nk, KVH * D)).astype(np.float32))
        qb, kb, vb = q.bfloat16(), k.bfloat16(), v.bfloat16()
        # [S, H*D] -> [1, H, S, D]
        q4 = qb.view(nq, H, D).permute(1, 0, 2).unsqueeze(0)
        k4 = kb.view(nk, KVH, D).permute(1, 0, 2).unsqueeze(0)
        v4 = vb.view(nk, KVH, D).permute(1, 0, 2).unsqueeze(0)
        if KVH != H:  # GQA as transformer models feed SDPA: K/V heads repeated
            k4 = k4.repeat_interleave(H // KVH, dim=1)
            v4 = v4.repeat_interleave(H // KVH, dim=1)
        with torch.no_grad(), sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            o4 = torch.nn.functional.scaled_dot_product_attention(
                q4, k4, v4, is_causal=bool(causal), scale=D ** -0.5)
        assert o4.dtype == torch.bfloat16
        out = o4.squeeze(0).permute(1, 0, 2).reshape(nq, H * D)
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "meta.npy"),
                np.array([H, KVH, D, nq, nk, causal], dtype=np.float32))
        np.save(os.path.join(d, "q.npy"), bf16_bits(qb))
        np.save(os.path.join(d, "k.npy"), bf16_bits(kb))
        np.save(os.path.join(d, "v.npy"), bf16_bits(vb))
        np.save(os.path.join(d, "torch.npy"), bf16_bits(out))
        print(name, "written")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/half")

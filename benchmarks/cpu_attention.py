"""Time one layer's attention on the CPU with each kernel that could serve the embedder.

Embedding one base subject (450 regions x 160 frames: 4500 tokens, 12 heads of 64) spends most
of its time in attention on a CPU (``bench_model.py --profile``). This script times one layer's
attention, ``(1, heads, tokens, head_dim)`` queries, keys and values, in float32 and bfloat16,
with:

* ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` as the encoder calls it
  (PyTorch picks its fused CPU flash-attention kernel);
* ``math``: the same call forced onto PyTorch's math backend;
* ``chunked``: a product per block of queries, with the softmax in float32 (``--chunk``);
* ``flex`` (with ``--flex``): ``flex_attention`` compiled by ``torch.compile``.

Prints one JSON line per kernel and dtype, with the machine, the versions and the command, the
milliseconds per call, the achieved TFLOP/s (4 * heads * tokens**2 * head_dim per call) and the
relative error against ``sdpa`` in float32.

Examples
--------
python benchmarks/cpu_attention.py                      # one base layer, 4500 tokens
python benchmarks/cpu_attention.py --flex --repeats 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F
from bench_model import device_name, significant  # the sibling script's helpers
from torch.nn.attention import SDPBackend, sdpa_kernel

import brainjepa_sk


def chunked_attention(query, key, value, chunk):
    """Attention computed per block of ``chunk`` queries, with a float32 softmax."""
    out = torch.empty_like(query)
    key_t = key.transpose(-1, -2)
    scale = query.shape[-1] ** -0.5
    for start in range(0, query.shape[-2], chunk):
        scores = torch.matmul(query[..., start:start + chunk, :] * scale, key_t)
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
        out[..., start:start + chunk, :] = torch.matmul(weights, value)
    return out


def math_attention(query, key, value):
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(query, key, value)


def time_call(function, repeats):
    """Seconds per call after one warm-up call, and the last output."""
    out = function()
    start = time.perf_counter()
    for _ in range(repeats):
        out = function()
    return (time.perf_counter() - start) / repeats, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4500)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--flex", action="store_true",
                        help="also time flex_attention under torch.compile (compiles first)")
    args = parser.parse_args(argv)

    generator = torch.Generator().manual_seed(0)
    shape = (1, args.heads, args.tokens, args.head_dim)
    query, key, value = (torch.randn(shape, generator=generator) for _ in range(3))
    reference = F.scaled_dot_product_attention(query, key, value)
    kernels = {
        "sdpa": F.scaled_dot_product_attention,
        "math": math_attention,
        "chunked": lambda q, k, v: chunked_attention(q, k, v, args.chunk),
    }
    if args.flex:
        from torch.nn.attention.flex_attention import flex_attention

        kernels["flex"] = torch.compile(flex_attention)
    tflop = 4 * args.heads * args.tokens**2 * args.head_dim / 1e12
    for dtype in (torch.float32, torch.bfloat16):
        inputs = [tensor.to(dtype) for tensor in (query, key, value)]
        for name, kernel in kernels.items():
            seconds, out = time_call(lambda kernel=kernel: kernel(*inputs), args.repeats)
            error = (out.float() - reference).norm() / reference.norm()
            print(json.dumps({
                "machine": device_name(torch.device("cpu")), "torch": torch.__version__,
                "brainjepa_sk": brainjepa_sk.__version__,
                "command": " ".join(["python", *sys.argv]), "kernel": name,
                "dtype": str(dtype).removeprefix("torch."), "tokens": args.tokens,
                "heads": args.heads, "head_dim": args.head_dim,
                "chunk": args.chunk if name == "chunked" else None,
                "ms_per_call": significant(seconds * 1e3),
                "tflops": significant(tflop / seconds),  # a tiny call is far below 1e-4
                "relative_error_vs_sdpa_fp32": round(float(error), 5),
            }), flush=True)


if __name__ == "__main__":
    main()

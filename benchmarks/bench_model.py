"""Time Brain-JEPA pretraining steps and embedding on random data; prints numbers only.

Examples
--------
python benchmarks/bench_model.py                                   # base, 450 x 160, both
python benchmarks/bench_model.py --what embed --compile
python benchmarks/bench_model.py --preset tiny --regions 100 --batch 4 --steps 3 --device cpu
"""

from __future__ import annotations

import argparse
import time

import torch

from brainjepa_sk.nn.masking import SpatiotemporalMaskSampler
from brainjepa_sk.nn.model import MODEL_PRESETS, BrainJEPA
from brainjepa_sk.train import make_optimizer, train_step


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="base", choices=sorted(MODEL_PRESETS))
    p.add_argument("--regions", type=int, default=450)
    p.add_argument("--frames", type=int, default=160)
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--batch", type=int, default=None, help="default: 16 (train), 32 (embed)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--steps", type=int, default=10, help="timed iterations")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--what", default="both", choices=["train", "embed", "both"])
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        model = "cpu"
    return f"{model}, {torch.get_num_threads()} threads"


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def encoder_flops(n_tokens, dim, depth, mlp_ratio=4.0):
    """Forward matmul FLOPs of ``depth`` blocks over ``n_tokens`` tokens (2 FLOPs per MAC)."""
    linear = 2 * n_tokens * dim * dim * (4 + 2 * mlp_ratio)  # qkv + proj + mlp
    attention = 4 * n_tokens * n_tokens * dim  # q @ k^T and attn @ v
    return depth * (linear + attention)


def train_flops(model, n_tokens, n_context, n_target):
    """Per-sample FLOPs of a step: target forward + 3x (context encoder + predictor)."""
    c = model.config
    target = encoder_flops(n_tokens, c["embed_dim"], c["depth"], c["mlp_ratio"])
    context = encoder_flops(n_context, c["embed_dim"], c["depth"], c["mlp_ratio"])
    pred = encoder_flops(
        n_context + n_target, c["predictor_embed_dim"], c["predictor_depth"], c["mlp_ratio"]
    )
    pred += 2 * c["embed_dim"] * c["predictor_embed_dim"] * (n_context + n_target)
    return target + 3 * (context + pred)


def report_memory(device):
    if device.type == "cuda":
        return f", peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
    return ""


def timed(fn, steps, warmup, device):
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        out = fn()
    synchronize(device)
    return (time.perf_counter() - start) / steps, out


def bench_train(args, model, device, autocast_dtype, n_patches):
    batch = args.batch or 16
    runner = torch.compile(model) if args.compile else model
    model.train()
    optimizer = make_optimizer(model)
    sampler = SpatiotemporalMaskSampler(args.regions, n_patches, seed=args.seed, device=device)
    x = torch.randn(batch, args.frames, args.regions, device=device)
    counts = []

    def step():
        masks = sampler.sample(batch)
        counts.append((masks.context_idx.shape[1], masks.target_idx.shape[1]))
        return train_step(runner, optimizer, x, masks, 0.996, autocast_dtype=autocast_dtype)

    seconds, loss = timed(step, args.steps, args.warmup, device)
    mask_seconds, _ = timed(lambda: sampler.sample(batch), args.steps, 1, device)
    n_ctx = sum(c for c, _ in counts) / len(counts)
    n_tgt = sum(t for _, t in counts) / len(counts)
    flops = batch * train_flops(model, args.regions * n_patches, n_ctx, n_tgt)
    print(
        f"train : {seconds * 1e3:.1f} ms/step, {batch / seconds:.2f} samples/s"
        f"{report_memory(device)}, loss {loss.item():.4f}"
    )
    print(
        f"        tokens/sample: {args.regions * n_patches} total, context {n_ctx:.0f} "
        f"({n_ctx / (args.regions * n_patches):.1%}), target {n_tgt:.0f} (means over steps); "
        f"mask sampling {mask_seconds * 1e3:.2f} ms/batch"
    )
    print(
        f"        ~{flops / 1e12:.2f} TFLOP/step (matmuls, estimate), "
        f"{flops / seconds / 1e12:.2f} TFLOP/s"
    )


def bench_embed(args, model, device, autocast_dtype, n_patches):
    batch = args.batch or 32
    encoder = model.target_encoder.eval()
    runner = torch.compile(encoder) if args.compile else encoder
    x = torch.randn(batch, args.frames, args.regions, device=device)
    autocast = torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)

    def embed():
        with torch.inference_mode(), autocast:
            return runner(x)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds, _ = timed(embed, args.steps, args.warmup, device)
    c = model.config
    flops = encoder_flops(args.regions * n_patches, c["embed_dim"], c["depth"], c["mlp_ratio"])
    print(
        f"embed : {seconds * 1e3:.1f} ms/batch of {batch}, {batch / seconds:.2f} subjects/s, "
        f"{seconds / batch:.3f} s/subject{report_memory(device)}"
    )
    print(
        f"        ~{flops / 1e12:.3f} TFLOP/subject (estimate), "
        f"{flops * batch / seconds / 1e12:.2f} TFLOP/s"
    )


def main(argv=None):
    args = parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if args.precision == "auto":
        args.precision = "bf16" if device.type == "cuda" else "fp32"
    autocast_dtype = torch.bfloat16 if args.precision == "bf16" else None
    if args.frames % args.patch_size:
        raise SystemExit(f"--frames {args.frames} is not a multiple of --patch-size")
    n_patches = args.frames // args.patch_size
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    model = BrainJEPA.from_preset(
        args.preset, torch.randn(args.regions, 30), patch_size=args.patch_size
    ).to(device)
    n_params = sum(p.numel() for p in model.encoder.parameters()) / 1e6
    print(
        f"torch {torch.__version__} | {device.type}: {device_name(device)} | preset {args.preset} "
        f"(encoder {n_params:.1f} M params) | {args.regions} regions x {args.frames} frames "
        f"(patch {args.patch_size}, {args.regions * n_patches} tokens) | {args.precision} | "
        f"compile={args.compile} | steps {args.steps}, warmup {args.warmup}"
    )
    if args.what in ("train", "both"):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        bench_train(args, model, device, autocast_dtype, n_patches)
    if args.what in ("embed", "both"):
        bench_embed(args, model, device, autocast_dtype, n_patches)


if __name__ == "__main__":
    main()

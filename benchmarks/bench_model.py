"""Time Brain-JEPA pretraining steps and embedding on random data, checking the results.

Prints one JSON line per measurement with the device ("card"), the versions and the command,
so that a line can be quoted on its own. Each measurement also checks correctness:

* ``train``: the loop's own path (``PretrainLoop`` steps with static-shape masks); the loss
  must be finite and fall over the run on a fixed set of windows;
* ``embed``: the target encoder over all tokens; on a GPU (or with bf16 on the CPU) its output
  is compared with the same encoder in float32 on the CPU (relative error reported and
  checked against a bf16 tolerance);
* ``finetune``: ``BrainJEPAClassifier`` (skorch) fine-tuning the whole encoder on windows of
  all tokens (``compile`` is skorch's ``compile=True``); the loss must be finite and fall over
  the epochs (labels that the windows carry), and on a GPU (or with bf16) the fine-tuned
  module's outputs are compared with the same module in float32 on the CPU.

FLOPs come from ``torch.utils.flop_counter`` (one forward, or one training step); with
``--peak`` the device's measured bf16 matmul rate is reported too, and the achieved fraction.

Examples
--------
python benchmarks/bench_model.py                                   # base, 450 x 160, both
python benchmarks/bench_model.py --what embed --batch 1 --steps 2 --device cpu
python benchmarks/bench_model.py --what train --compile --peak
python benchmarks/bench_model.py --preset tiny --regions 100 --batch 4 --steps 3 --device cpu
python benchmarks/bench_model.py --what train --sdpa-backend cudnn --profile train_profile.txt
python benchmarks/bench_model.py --what finetune --compile        # needs skorch
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import platform
import sys
import time

import torch
import torch.nn.attention
from torch.utils.flop_counter import FlopCounterMode

import brainjepa_sk
from brainjepa_sk.nn.masking import SpatiotemporalMaskSampler
from brainjepa_sk.nn.model import MODEL_PRESETS, BrainJEPA
from brainjepa_sk.train import (
    Callback,
    PretrainLoop,
    PretrainSchedule,
    ShuffleSampler,
    WindowDataset,
    train_step,
    window_loader,
)

#: Names of --sdpa-backend, resolved lazily (``None``: PyTorch chooses).
SDPA_BACKENDS = {"auto": None, "flash": "FLASH_ATTENTION", "cudnn": "CUDNN_ATTENTION",
                 "efficient": "EFFICIENT_ATTENTION", "math": "MATH"}

#: Largest relative error of bf16 embeddings against float32 that passes the check.
BF16_TOLERANCE = 0.05


def count_cpu_attention_flops():
    """Teach ``FlopCounterMode`` PyTorch's CPU flash-attention ops, which it does not count
    (the CUDA kernels it does): otherwise CPU FLOPs leave out attention, about half of them."""
    from torch.utils import flop_counter

    forward = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    backward = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu_backward",
                       None)
    if forward is not None and forward not in flop_counter.flop_registry:
        @flop_counter.register_flop_formula(forward)
        def _forward(query, key, value, *args, out_shape=None, **kwargs):
            return flop_counter.sdpa_flop_count(query, key, value)
    if backward is not None and backward not in flop_counter.flop_registry:
        @flop_counter.register_flop_formula(backward)
        def _backward(grad_out, query, key, value, *args, out_shape=None, **kwargs):
            return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="base", choices=sorted(MODEL_PRESETS))
    p.add_argument("--regions", type=int, default=450)
    p.add_argument("--frames", type=int, default=160)
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--batch", type=int, default=None,
                   help="default: 16 (train, finetune), 32 (embed)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--steps", type=int, default=10, help="timed iterations")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    p.add_argument("--compile", action="store_true", help="torch.compile the step / encoder")
    p.add_argument("--what", default="both", choices=["train", "embed", "both", "finetune"],
                   help="both: train and embed")
    p.add_argument("--peak", action="store_true",
                   help="also measure the bf16 and float32 matmul rates")
    p.add_argument("--peak-size", type=int, default=8192, help="matrix size for --peak")
    p.add_argument("--accumulation-steps", type=int, default=1,
                   help="train: micro-batches per step (gradient accumulation)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile-mode", default=None,
                   help="torch.compile mode with --compile (e.g. reduce-overhead: CUDA graphs)")
    p.add_argument("--sdpa-backend", default="auto", choices=sorted(SDPA_BACKENDS),
                   help="restrict scaled_dot_product_attention to one kernel")
    p.add_argument("--profile", default=None, metavar="FILE",
                   help="also profile 3 more iterations; write the top kernels to FILE")
    args = p.parse_args(argv)
    if args.batch is not None and args.batch < 1:
        p.error("--batch must be at least 1 (leave it out for the defaults)")
    if args.steps < 1 or args.warmup < 0 or args.accumulation_steps < 1:
        p.error("--steps and --accumulation-steps must be at least 1, --warmup at least 0")
    if args.compile_mode and not args.compile:
        p.error("--compile-mode has no effect without --compile")
    return args


def significant(value, digits=4):
    """``value`` to ``digits`` significant digits: a tiny model's rates on a CPU stay visible."""
    return float(f"{value:.{digits}g}")


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        model = platform.processor() or "cpu"
    return f"{model}, {torch.get_num_threads()} threads"


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gib(device):
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return None


def emit(args, device, **fields):
    record = {
        "card": device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "brainjepa_sk": brainjepa_sk.__version__,
        "command": " ".join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "preset": args.preset, "regions": args.regions, "frames": args.frames,
        "patch_size": args.patch_size, "precision": args.precision, "compile": args.compile,
        "compile_mode": args.compile_mode, "sdpa_backend": args.sdpa_backend,
        **fields,
    }
    print(json.dumps(record), flush=True)
    return record


def matmul_peak_tflops(device, size=8192, repeats=20, dtype=torch.bfloat16):
    """Measured matmul rate of the device (TFLOP/s) in ``dtype``."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12


def write_profile(args, device, what, run, n=3):
    """Profile ``n`` calls of ``run`` and append the top ops by self time to ``args.profile``."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for _ in range(n):
            run()
        synchronize(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    with open(args.profile, "a") as f:
        f.write(f"# {what}: {n} iterations, {' '.join(sys.argv)}\n")
        f.write(prof.key_averages().table(sort_by=key, row_limit=40, max_name_column_width=60))
        f.write("\n\n")


class StepTimer(Callback):
    """Times the steps after the warm-up ones (synchronising the device at the edges)."""

    def __init__(self, warmup, device):
        self.warmup, self.device, self.losses = warmup, device, []
        self.start = self.stop = None

    def on_train_begin(self, loop):
        if self.warmup == 0:
            synchronize(self.device)
            self.start = time.perf_counter()

    def on_step_end(self, loop, loss):
        # a copy (on the device, no host synchronisation): with CUDA graphs
        # (--compile-mode reduce-overhead) the loss is the graph's output memory, which the
        # next step's replay overwrites, and reading it after the run raises
        self.losses.append(loss.clone())
        if loop.step == self.warmup:
            synchronize(self.device)
            self.start = time.perf_counter()

    def on_train_end(self, loop):
        synchronize(self.device)
        self.stop = time.perf_counter()


def bench_train(args, model, device, autocast_dtype, n_patches):
    batch = args.batch or 16
    n_steps = args.warmup + args.steps
    generator = torch.Generator().manual_seed(args.seed)
    # a fixed set of windows, one batch per step: the loss must fall over the run
    windows = torch.randn(batch, args.frames, args.regions, generator=generator).numpy()
    loader = window_loader(WindowDataset(windows), batch, ShuffleSampler(batch, args.seed))
    masks = SpatiotemporalMaskSampler(args.regions, n_patches, seed=args.seed, device=device)
    schedule = PretrainSchedule.from_epochs(n_steps, 1, warmup_epochs=0, start_lr=1e-4,
                                            lr=1e-4, final_lr=1e-4)
    timer = StepTimer(args.warmup, device)
    compile_option = args.compile and ({"mode": args.compile_mode} if args.compile_mode else True)
    loop = PretrainLoop(model, loader, masks, schedule, n_steps, autocast_dtype=autocast_dtype,
                        callbacks=[timer], compile=compile_option,
                        accumulation_steps=args.accumulation_steps)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    loop.run()
    seconds = (timer.stop - timer.start) / args.steps
    losses = [float(v) for v in timer.losses]
    # FLOPs of one more step, counted (forward, backward and optimizer)
    x = torch.from_numpy(windows).to(device)
    sample = masks.sample(batch)
    with FlopCounterMode(display=False) as counter:  # eager: the counter sees every op
        train_step(model, loop.optimizer, x, sample, 0.996, autocast_dtype,
                   accumulation_steps=args.accumulation_steps)
    flops = counter.get_total_flops()
    if args.profile:
        write_profile(args, device, "train step (eager)", lambda: train_step(
            model, loop.optimizer, x, masks.sample(batch), 0.996, autocast_dtype,
            accumulation_steps=args.accumulation_steps))
    # the means of the first and last (up to) three steps, never overlapping
    n = max(1, min(3, len(losses) // 2))
    first, last = sum(losses[:n]) / n, sum(losses[-n:]) / n
    ok = all(math.isfinite(v) for v in losses) and last < first
    return emit(
        args, device, what="train", batch=batch, steps=args.steps, warmup=args.warmup,
        accumulation_steps=args.accumulation_steps,
        ms_per_step=round(seconds * 1e3, 2), samples_per_s=round(batch / seconds, 2),
        peak_memory_gib=peak_memory_gib(device), tokens=args.regions * n_patches,
        context_tokens=sample.context_idx.shape[1], target_tokens=sample.target_idx.shape[1],
        tflop_per_step=significant(flops / 1e12), tflops=significant(flops / seconds / 1e12),
        loss_first=round(first, 4), loss_last=round(last, 4), check_loss_finite_and_falling=ok,
    )


def bench_embed(args, model, device, autocast_dtype, n_patches):
    batch = args.batch or 32
    encoder = model.target_encoder.eval()
    options = {"mode": args.compile_mode} if args.compile_mode else {}
    runner = torch.compile(encoder, dynamic=False, **options) if args.compile else encoder
    generator = torch.Generator().manual_seed(args.seed + 1)
    x_cpu = torch.randn(batch, args.frames, args.regions, generator=generator)
    x = x_cpu.to(device)

    def embed():
        with torch.inference_mode(), torch.autocast(device.type, dtype=autocast_dtype,
                                                    enabled=autocast_dtype is not None):
            return runner(x)

    for _ in range(args.warmup):
        embed()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        out = embed()
    synchronize(device)
    seconds = (time.perf_counter() - start) / args.steps
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        encoder(x[:1])
    flops = counter.get_total_flops()
    if args.profile:
        write_profile(args, device, "embedding", embed)
    fields = {}
    if device.type == "cuda" or autocast_dtype is not None:
        # the reference: the same encoder in float32 on the CPU
        reference_encoder = model.target_encoder.to("cpu").float()
        every_backend = [getattr(torch.nn.attention.SDPBackend, name)  # for the CPU
                         for name in SDPA_BACKENDS.values() if name]
        with torch.inference_mode(), torch.nn.attention.sdpa_kernel(every_backend):
            reference = reference_encoder(x_cpu[:2])
        model.to(device)
        error = ((out[:2].float().cpu() - reference).norm() / reference.norm()).item()
        fields = {"relative_error_vs_cpu_fp32": round(error, 5),
                  "check_within_bf16_tolerance": error <= BF16_TOLERANCE}
    return emit(
        args, device, what="embed", batch=batch, steps=args.steps, warmup=args.warmup,
        ms_per_batch=round(seconds * 1e3, 2), subjects_per_s=round(batch / seconds, 2),
        s_per_subject=round(seconds / batch, 4), peak_memory_gib=peak_memory_gib(device),
        tokens=args.regions * n_patches, tflop_per_subject=significant(flops / 1e12),
        tflops=significant(flops * batch / seconds / 1e12), **fields,
    )


def bench_finetune(args, model, device, autocast_dtype, n_patches):
    """``BrainJEPAClassifier.fit`` timed per training batch (skorch's loop, whole encoder)."""
    from skorch.callbacks import Callback as SkorchCallback

    from brainjepa_sk import BrainJEPAClassifier

    batch = args.batch or 16
    batches_per_epoch = 4
    n_epochs = max(2, math.ceil((args.warmup + args.steps) / batches_per_epoch))
    generator = torch.Generator().manual_seed(args.seed + 2)
    n_subjects = batch * batches_per_epoch
    labels = torch.arange(n_subjects) % 2
    # one window per subject; the label shifts every region, so the loss falls within a few
    # epochs (a shift of a third of the regions took the tiny preset 30 epochs to learn)
    X = torch.randn(n_subjects, args.frames, args.regions, generator=generator)
    X += 2.0 * labels[:, None, None]

    class BatchTimer(SkorchCallback):
        def initialize(self):
            self.ends = []
            return self

        def on_train_begin(self, net, X=None, y=None, **kwargs):
            synchronize(device)
            self.ends.append(time.perf_counter())  # the start of the first batch's time

        def on_batch_end(self, net, batch=None, training=False, **kwargs):
            if training:
                synchronize(device)
                self.ends.append(time.perf_counter())

    timer = BatchTimer()
    compile_kwargs = {"compile": True} if args.compile else {}
    if args.compile and args.compile_mode:
        compile_kwargs["compile__mode"] = args.compile_mode
    clf = BrainJEPAClassifier(
        model, n_frames=args.frames, t_r=None, normalization="robust",
        precision=args.precision, device=str(device), batch_size=batch, max_epochs=n_epochs,
        lr=5e-4, drop_path_rate=0.1, verbose=0, random_state=args.seed,
        callbacks=[("timer", timer)], **compile_kwargs,
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    clf.fit(X.numpy(), labels.numpy())
    peak_memory = peak_memory_gib(device)  # of the fit, before the FLOP count's pass
    # the end of the warm-up (the fit's start without one) and the ends of the timed batches
    first = args.warmup
    steps = timer.ends[first:first + args.steps + 1]
    assert len(steps) == args.steps + 1, (len(timer.ends), args.warmup, args.steps)
    seconds = (steps[-1] - steps[0]) / (len(steps) - 1)
    losses = [float(epoch["train_loss"]) for epoch in clf.history_]
    ok = all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    module = getattr(clf.module_, "_orig_mod", clf.module_)
    x = torch.randn(batch, args.frames, args.regions, generator=generator).to(device)
    with FlopCounterMode(display=False) as counter, torch.autocast(
            device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        module.train()
        module(x).float().sum().backward()
    module.zero_grad(set_to_none=True)
    flops = counter.get_total_flops()
    fields = {}
    if device.type == "cuda" or autocast_dtype is not None:
        module.eval()
        with torch.inference_mode():
            with torch.autocast(device.type, dtype=autocast_dtype,
                                enabled=autocast_dtype is not None):
                out = module(x[:2]).float().cpu()  # eager: no graph for a batch of 2
            reference = copy.deepcopy(module).to("cpu").float()(x[:2].cpu())
        error = ((out - reference).norm() / reference.norm()).item()
        fields = {"relative_error_vs_cpu_fp32": round(error, 5),
                  "check_within_bf16_tolerance": error <= BF16_TOLERANCE}
    return emit(
        args, device, what="finetune", batch=batch, steps=len(steps) - 1, warmup=args.warmup,
        epochs=n_epochs, ms_per_step=round(seconds * 1e3, 2),
        samples_per_s=round(batch / seconds, 2), peak_memory_gib=peak_memory,
        tokens=args.regions * n_patches, tflop_per_step=significant(flops / 1e12),
        tflops=significant(flops / seconds / 1e12), loss_first=round(losses[0], 4),
        loss_last=round(losses[-1], 4), check_loss_finite_and_falling=ok, **fields,
    )


def main(argv=None):
    args = parse_args(argv)
    count_cpu_attention_flops()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise SystemExit(f"--device {args.device} is not a torch device: auto, cpu, cuda, "
                         "cuda:1, ...") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available here "
                         "(--device cpu, or auto, runs on the CPU)")
    if device.type == "cpu" and args.sdpa_backend in ("cudnn", "efficient"):
        raise SystemExit(f"--sdpa-backend {args.sdpa_backend} needs a CUDA device "
                         "(the CPU has only the flash and math kernels)")
    if args.precision == "auto":
        args.precision = "bf16" if device.type == "cuda" else "fp32"
    autocast_dtype = torch.bfloat16 if args.precision == "bf16" else None
    if args.frames % args.patch_size:
        raise SystemExit(f"--frames {args.frames} is not a multiple of --patch-size")
    n_patches = args.frames // args.patch_size
    torch.manual_seed(args.seed)
    model = BrainJEPA.from_preset(
        args.preset, torch.randn(args.regions, 30), patch_size=args.patch_size,
        n_patches=n_patches,
    ).to(device)
    records = []
    backend = SDPA_BACKENDS[args.sdpa_backend]
    with (torch.nn.attention.sdpa_kernel(getattr(torch.nn.attention.SDPBackend, backend))
          if backend else contextlib.nullcontext()):
        if args.what in ("train", "both"):
            records.append(bench_train(args, model, device, autocast_dtype, n_patches))
        if args.what in ("embed", "both"):
            records.append(bench_embed(args, model, device, autocast_dtype, n_patches))
        if args.what == "finetune":
            records.append(bench_finetune(args, model, device, autocast_dtype, n_patches))
    if args.peak:
        repeats = 20 if device.type == "cuda" else 3
        for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
            peak = matmul_peak_tflops(device, args.peak_size, repeats, dtype)
            fractions = {f"{r['what']}_fraction_of_peak": significant(r["tflops"] / peak, 3)
                         for r in records if r["precision"] == name}
            emit(args, device, what=f"peak_{name}_matmul", tflops=significant(peak),
                 matmul_size=args.peak_size, **fractions)


if __name__ == "__main__":
    main()

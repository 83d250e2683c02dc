"""Peak resident memory of pretraining on a corpus of files larger than memory would allow.

Writes a corpus of ``.npy`` subjects (float32, 450 regions x 490 frames: a UK Biobank scan) of
the requested size, then runs ``BrainJEPAPretrainer.fit`` on its glob in a fresh process (the
default ``GradientPositioner``, robust scaling, sliding windows, loader workers) for a fixed
number of steps, sampling the resident memory of that process and of its loader workers ten
times a second. Prints one JSON line per corpus size: the peak of the main process
(``ru_maxrss``), the peak of the proportional set size summed over the process and its
workers (pages they share counted once), the time spent before the first step
(checking the files, gradients, robust statistics) and the training throughput.

With ``--estimator classifier``, the fit is ``BrainJEPAClassifier`` fine-tuning a random encoder
of the same size (random labels, sliding windows, ``iterator_train__num_workers``) instead.

With ``--loader``, times only the reading: windows per second that the training loader
delivers from the corpus (no model), for 0, 1 and 2 workers.

Examples
--------
python benchmarks/stream_memory.py --gigabytes 1 4 --steps 60
python benchmarks/stream_memory.py --gigabytes 0.25 1 4 --estimator classifier
python benchmarks/stream_memory.py --gigabytes 0.25 --loader --keep --folder /tmp/corpus
python benchmarks/stream_memory.py --gigabytes 4 --folder /scratch/corpus --keep
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

N_REGIONS, N_TIMEPOINTS = 450, 490


def write_corpus(folder, gigabytes, seed=0):
    """Random-walk subjects, float32, until the folder holds ``gigabytes`` GB (10^9 bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    size = N_REGIONS * N_TIMEPOINTS * 4 + 128
    n_subjects = int(np.ceil(gigabytes * 1e9 / size))
    rng = np.random.default_rng(seed)
    existing = len(list(folder.glob("sub-*.npy")))
    for i in range(existing, n_subjects):
        steps = rng.standard_normal((N_TIMEPOINTS, N_REGIONS), dtype=np.float32)
        np.save(folder / f"sub-{i:06d}.npy", np.cumsum(steps, axis=0, dtype=np.float32))
    for stale in sorted(folder.glob("sub-*.npy"))[n_subjects:]:
        stale.unlink()
    return n_subjects


def _pss_bytes(pid):
    """Proportional set size: pages shared by n processes count 1/n in each, so the sum over
    the processes is the memory they hold together."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as status:
            for line in status:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _rss_now():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as file:
            return [int(c) for c in file.read().split()]
    except OSError:
        return []


class TreeMemory(threading.Thread):
    """Samples the summed proportional memory (PSS) of this process and its descendants."""

    def __init__(self, interval=0.1):
        super().__init__(daemon=True)
        self.interval, self.peak, self.running = interval, 0, True

    def run(self):
        while self.running:
            pids, total = [os.getpid()], 0
            while pids:
                pid = pids.pop()
                total += _pss_bytes(pid)
                pids.extend(_children(pid))
            self.peak = max(self.peak, total)
            time.sleep(self.interval)


class _StepTimer:
    """What both estimators' timing callbacks record: the time to the first step, then the
    throughput of ``args.steps`` steps after ``args.warmup``; raises ``stop`` after them."""

    def __init__(self, args, start, stop):
        self.args, self.start, self.stop = args, start, stop

    def begin(self, n_windows):
        _TIMES["seconds_before_first_step"] = round(time.perf_counter() - self.start, 1)
        _TIMES["n_windows"] = n_windows
        _TIMES["peak_rss_main_before_training_gib"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
        self.steps = 0
        if self.args.warmup == 0:
            self.timed = time.perf_counter()

    def step(self, loss):
        args = self.args
        self.steps += 1
        if self.steps == args.warmup:
            self.timed = time.perf_counter()
        if self.steps == args.warmup + args.steps:
            seconds = time.perf_counter() - self.timed
            _TIMES["windows_per_s"] = round(args.steps * args.batch / seconds, 2)
            _TIMES["final_loss"] = round(float(loss), 5)
            raise self.stop


def _machine(threads):
    """The CPU as every benchmark script names it (bench_model.py's ``device_name``: its
    model and ``threads``, the threads torch used for the work measured)."""
    import torch
    from bench_model import device_name

    torch.set_num_threads(threads)
    return device_name(torch.device("cpu"))


def child(args):
    """One fit on the corpus, in this (fresh) process."""
    import brainspace.gradient  # noqa: F401  (imported by fit anyway; counted as the baseline)
    import nilearn.connectome  # noqa: F401
    import torch

    from brainjepa_sk import BrainJEPAPretrainer
    from brainjepa_sk.train import Callback

    torch.set_num_threads(args.threads)

    class Stop(Exception):
        pass

    # fit copies its callbacks: this one writes its times into the module's _TIMES
    class Timer(Callback):
        def on_train_begin(self, loop):
            timer.begin(len(loop.loader.dataset))

        def on_step_end(self, loop, loss):
            timer.step(loss)

    _TIMES["rss_after_imports_gib"] = round(_rss_now() / 2**30, 3)
    memory = TreeMemory()
    memory.start()
    start = time.perf_counter()
    timer = _StepTimer(args, start, Stop)
    model_size = (json.loads(args.model_size) if args.model_size.startswith("{")
                  else args.model_size)
    corpus = str(Path(args.folder) / "sub-*.npy")
    try:
        if args.estimator == "classifier":
            _fine_tune(corpus, model_size, args, timer)
        else:
            BrainJEPAPretrainer(
                model_size=model_size, predictor_depth=args.predictor_depth, n_epochs=1,
                batch_size=args.batch, num_workers=args.workers, device="cpu", verbose=0,
                random_state=0, callbacks=[Timer()],
            ).fit(corpus)
    except Stop:
        pass
    memory.running = False
    memory.join()
    if "windows_per_s" not in _TIMES:
        raise SystemExit(f"one epoch of the corpus ({_TIMES.get('n_windows')} windows) ran out "
                         f"before --warmup {args.warmup} + --steps {args.steps} batches of "
                         f"{args.batch}: write a larger corpus or time fewer steps")
    print(json.dumps({
        "peak_rss_main_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        "peak_pss_tree_gib": round(memory.peak / 2**30, 3),
        "seconds_total": round(time.perf_counter() - start, 1),
        **_TIMES,
    }), flush=True)


_TIMES = {}


def _fine_tune(corpus, model_size, args, timer):
    """``BrainJEPAClassifier`` on the corpus, from a random encoder of ``model_size``."""
    import glob

    import torch
    from skorch.callbacks import Callback

    from brainjepa_sk import BrainJEPAClassifier
    from brainjepa_sk.nn import BrainJEPA

    class Timer(Callback):
        def on_train_begin(self, net, X=None, y=None, **kwargs):
            timer.begin(len(X))

        def on_batch_end(self, net, batch=None, training=False, **kwargs):
            if training:
                timer.step(kwargs["loss"])

    if isinstance(model_size, str):
        from brainjepa_sk.nn import MODEL_PRESETS
        model_size = MODEL_PRESETS[model_size]
    gradients = torch.randn(N_REGIONS, 30, generator=torch.Generator().manual_seed(0))
    encoder = BrainJEPA(gradients, patch_size=16, n_patches=10, predictor_depth=1,
                        **model_size)
    n_subjects = len(glob.glob(corpus))
    labels = np.random.default_rng(0).integers(0, 2, n_subjects)
    BrainJEPAClassifier(
        encoder, window="sliding", max_epochs=1, batch_size=args.batch,
        iterator_train__num_workers=args.workers, verbose=0, random_state=0,
        callbacks=[Timer()],
    ).fit(corpus, labels)


def loader_throughput(folder, args):
    """Windows per second read by the training loader (files -> normalised windows)."""
    import functools

    import torch

    from brainjepa_sk.preprocessing import Preprocessor
    from brainjepa_sk.train import LazyWindowDataset, ShuffleSampler, window_loader
    from brainjepa_sk.validation import validate_subjects

    subjects = validate_subjects(str(Path(folder) / "sub-*.npy"), lazy=True)
    prep = Preprocessor(160, window="sliding", stride=80, normalization="robust").fit(subjects)
    dataset = LazyWindowDataset(*prep.window_table(subjects.n_timepoints),
                                functools.partial(prep.read_window, subjects))
    torch.set_num_threads(1)
    for workers in (0, 1, 2):
        loader = window_loader(dataset, args.batch, ShuffleSampler(len(dataset), 0),
                               num_workers=workers)
        batches = iter(loader)
        next(batches)  # workers started
        start, n = time.perf_counter(), 0
        for _, batch in zip(range(args.steps), batches):
            n += len(batch)
        seconds = time.perf_counter() - start
        print(json.dumps({"benchmark": "loader", "workers": workers, "batch": args.batch,
                          "windows_per_s": round(n / seconds, 1), "n_subjects": len(subjects),
                          "machine": _machine(threads=1),
                          "command": " ".join(["python", *sys.argv])}), flush=True)


def phase_times(folder, args):
    """Seconds of the work before the first step, phase by phase: checking and hashing the
    files, the default gradients, the robust statistics; and parsing one subject as .tsv."""
    import pandas as pd
    import torch

    from brainjepa_sk import GradientPositioner
    from brainjepa_sk.files import read_subject_file
    from brainjepa_sk.preprocessing import Preprocessor
    from brainjepa_sk.validation import validate_subjects

    torch.set_num_threads(args.threads)
    times = {}
    start = time.perf_counter()
    subjects = validate_subjects(str(Path(folder) / "sub-*.npy"), lazy=True)
    times["checking_and_hashing_s"] = time.perf_counter() - start
    start = time.perf_counter()
    GradientPositioner(random_state=0).fit(subjects)
    times["gradients_s"] = time.perf_counter() - start
    start = time.perf_counter()
    Preprocessor(160, normalization="robust").fit(subjects)
    times["robust_statistics_s"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as scratch:
        tsv = Path(scratch) / "sub.tsv"
        pd.DataFrame(np.asarray(subjects[0]),
                     columns=[f"roi{r}" for r in range(subjects.n_regions)]).to_csv(
            tsv, sep="\t", index=False)
        start = time.perf_counter()
        read_subject_file(tsv)
        times["one_tsv_parse_s"] = time.perf_counter() - start
    print(json.dumps({"benchmark": "phases", "n_subjects": len(subjects),
                      **{k: round(v, 3) for k, v in times.items()}, "threads": args.threads,
                      "machine": _machine(args.threads),
                      "command": " ".join(["python", *sys.argv])}), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gigabytes", type=float, nargs="+", default=[1.0, 4.0],
                   help="corpus sizes, each measured in turn (--loader and --phases: the "
                        "largest)")
    p.add_argument("--folder", help="corpus folder (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the corpus afterwards")
    p.add_argument("--model-size", default='{"embed_dim": 96, "depth": 4, "num_heads": 3}',
                   help="a preset name or a JSON dict (embed_dim, depth, num_heads)")
    p.add_argument("--predictor-depth", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=2,
                   help="loader workers of the fit (--loader times 0, 1 and 2 in turn)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=40, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--estimator", choices=["pretrainer", "classifier"], default="pretrainer",
                   help="what to fit: pretraining, or fine-tuning a random encoder")
    p.add_argument("--loader", action="store_true", help="time the loader only")
    p.add_argument("--phases", action="store_true",
                   help="time checking, gradients and statistics only")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    folder = Path(args.folder or tempfile.mkdtemp(prefix="brainjepa-corpus-"))
    try:
        if args.loader:
            write_corpus(folder, max(args.gigabytes))
            return loader_throughput(folder, args)
        if args.phases:
            write_corpus(folder, max(args.gigabytes))
            return phase_times(folder, args)
        for gigabytes in sorted(args.gigabytes):
            start = time.perf_counter()
            n_subjects = write_corpus(folder, gigabytes)
            written = time.perf_counter() - start
            command = [sys.executable, __file__, "--child", "--folder", str(folder),
                       "--model-size", args.model_size,
                       "--predictor-depth", str(args.predictor_depth), "--batch", str(args.batch),
                       "--workers", str(args.workers), "--threads", str(args.threads),
                       "--steps", str(args.steps), "--warmup", str(args.warmup),
                       "--estimator", args.estimator]
            # the child's stderr (its traceback, should it fail) passes through
            result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
            record = json.loads(result.stdout.strip().splitlines()[-1])
            corpus_bytes = sum(f.stat().st_size for f in folder.glob("sub-*.npy"))
            print(json.dumps({
                "benchmark": "stream_memory", "estimator": args.estimator,
                "corpus_gb": float(f"{corpus_bytes / 1e9:.3g}"),  # a tiny one stays above 0
                "n_subjects": n_subjects, "regions": N_REGIONS, "timepoints": N_TIMEPOINTS,
                "model_size": args.model_size, "predictor_depth": args.predictor_depth,
                "batch": args.batch, "workers": args.workers,
                "threads": args.threads, "corpus_written_s": round(written, 1), **record,
                "machine": _machine(args.threads),  # the threads the child ran on
                "command": " ".join(["python", *sys.argv]),
            }), flush=True)
    finally:
        if not args.keep and not args.folder:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Time the saves of a fine-tuner's checkpoint files and the SHA-256 digests its run file keeps.

A fine-tuner's ``Checkpoint`` writes its files (weights, optimizer, criterion, history) beside
their targets, then renames them into place together, with the run file, which records the
digests of the files written and of the files they replace (so that a save cut off between
two renames is not resumed as a mix). This script makes such saves with the package's own
functions (``saving_together``, ``save_params_atomically``, ``save_run_fingerprint``),
``torch.save`` of random tensors standing in for skorch's, at a size set with ``--mib``
(weights a third, the optimizer's two moments two thirds, as AdamW's; ViT-B's are about
330 MiB and 660 MiB). ``--mode plain`` saves the same files without the run file (no digest),
the cost of the saves themselves. It prints one JSON line per save with the seconds, the
seconds spent hashing and the MiB hashed, the machine, the versions (the package's commit)
and the command. ``--resume`` also checks the files after each save as a resume does
(``check_saved_together``, which ``LoadInitState`` runs before loading them): its seconds, the
seconds spent hashing and the MiB hashed (``resume_s``, ``resume_digest_s``,
``resume_hashed_mib``).

The files replaced were written by the save before, so they are in the page cache of a
machine with the memory to hold them: the times are those of a hot cache.

Examples
--------
python benchmarks/checkpoint_digests.py
python benchmarks/checkpoint_digests.py --mib 1000 --saves 5 --folder /scratch/bench
python benchmarks/checkpoint_digests.py --mode plain
python benchmarks/checkpoint_digests.py --resume
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from bench_model import device_name  # the sibling script's machine description

import brainjepa_sk
import brainjepa_sk._skorch as skorch_glue


class DigestClock:
    """Wraps the package's ``_file_digest``: the seconds spent in it and the bytes hashed."""

    def __init__(self):
        self.seconds, self.bytes = 0.0, 0
        self._digest = skorch_glue._file_digest

    def __call__(self, path):
        start = time.perf_counter()
        try:
            digest = self._digest(path)
        finally:
            self.seconds += time.perf_counter() - start
        self.bytes += Path(path).stat().st_size
        return digest


def package_commit():
    """The commit of the package's checkout (to tell runs of two versions apart), or None."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True,
                              cwd=Path(brainjepa_sk.__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def fine_tuner_state(mib, generator):
    """Random tensors of about ``mib`` MiB: weights (a third) and two optimizer moments."""
    numbers = max(1, int(mib * 2**20 / 4 / 3))
    weights = {"weight": torch.randn(numbers, generator=generator)}
    optimizer = {"state": {0: {"exp_avg": torch.randn(numbers, generator=generator),
                               "exp_avg_sq": torch.rand(numbers, generator=generator)}},
                 "param_groups": [{"lr": 1e-3, "params": [0]}]}
    return weights, optimizer


#: A fine-tuner's ``Checkpoint``'s files (its default names), by skorch's ``f_*`` argument.
FILE_NAMES = {"f_params": "params.pt", "f_optimizer": "optimizer.pt",
              "f_criterion": "criterion.pt", "f_history": "history.json"}


def checkpoint_of(folder):
    """A stand-in for the ``Checkpoint`` saving into ``folder`` (what the run file needs)."""
    return SimpleNamespace(dirname=str(folder), fn_prefix="")


def save_once(folder, weights, optimizer, epoch, run_file):
    """One save as a fine-tuner's ``Checkpoint`` makes it (its default file names)."""
    states = {"f_params": weights, "f_optimizer": optimizer, "f_criterion": {},
              "f_history": [{"epoch": e + 1} for e in range(epoch)]}
    contents = {key: (folder / name, states[key]) for key, name in FILE_NAMES.items()}

    def save_params(**files):
        (key, part), = files.items()
        state = contents[key][1]
        if key == "f_history":
            Path(part).write_text(json.dumps(state))
        else:
            torch.save(state, part)

    with skorch_glue.saving_together():
        for key, (target, _) in contents.items():
            skorch_glue.save_params_atomically(save_params, {key: target})
        if run_file:
            skorch_glue.save_run_fingerprint(checkpoint_of(folder), {"epoch": epoch})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=400.0,
                        help="size of the weights and the optimizer's files together")
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--mode", choices=["digests", "plain"], default="digests")
    parser.add_argument("--folder", default=None,
                        help="where to save (a temporary folder in it; default the system's)")
    parser.add_argument("--resume", action="store_true",
                        help="also time the check of the files a resume makes after each save")
    args = parser.parse_args(argv)
    generator = torch.Generator().manual_seed(0)
    weights, optimizer = fine_tuner_state(args.mib, generator)
    clock, commit = DigestClock(), package_commit()
    skorch_glue._file_digest = clock
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        folder = Path(folder)
        for epoch in range(1, args.saves + 1):
            weights["weight"].add_(1.0)  # other bytes each save, as training makes them
            clock.seconds, clock.bytes = 0.0, 0
            start = time.perf_counter()
            save_once(folder, weights, optimizer, epoch, run_file=args.mode == "digests")
            seconds = time.perf_counter() - start
            files_mib = sum(path.stat().st_size for path in folder.iterdir()) / 2**20
            measured = {"save_s": round(seconds, 3), "digest_s": round(clock.seconds, 3),
                        "hashed_mib": round(clock.bytes / 2**20, 1)}
            if args.resume:
                clock.seconds, clock.bytes = 0.0, 0
                start = time.perf_counter()
                skorch_glue.check_saved_together(
                    checkpoint_of(folder), [folder / name for name in FILE_NAMES.values()])
                measured.update({"resume_s": round(time.perf_counter() - start, 3),
                                 "resume_digest_s": round(clock.seconds, 3),
                                 "resume_hashed_mib": round(clock.bytes / 2**20, 1)})
            print(json.dumps({
                "machine": device_name(torch.device("cpu")), "system": platform.platform(),
                "python": platform.python_version(), "torch": torch.__version__,
                "brainjepa_sk": brainjepa_sk.__version__, "commit": commit,
                "command": " ".join(["python", *sys.argv]), "mode": args.mode,
                "files_mib": round(files_mib, 1), "save": epoch, **measured,
            }), flush=True)


if __name__ == "__main__":
    main()

"""Time loading pretrained weights: ``load_checkpoint`` of a saved model of a preset size.

Saves a randomly initialised model of the preset (450 regions by default) with
``save_checkpoint`` into a temporary folder, then loads it ``--repeats`` times and prints one
JSON line per load with the machine, the versions and the command. Every fit with a
checkpoint as ``weights`` (each fold of a cross-validation) pays this once.

Examples
--------
python benchmarks/load_weights.py
python benchmarks/load_weights.py --preset tiny --repeats 5
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_model import device_name  # the sibling script's machine description

import brainjepa_sk
from brainjepa_sk.checkpoint import load_checkpoint, save_checkpoint
from brainjepa_sk.nn import BrainJEPA


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--regions", type=int, default=450)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        generator = torch.Generator().manual_seed(0)
        gradients = torch.randn(args.regions, 30, generator=generator)
        save_checkpoint(path, BrainJEPA.from_preset(args.preset, gradients))
        for repeat in range(args.repeats):
            start = time.perf_counter()
            load_checkpoint(path)
            seconds = time.perf_counter() - start
            print(json.dumps({
                "machine": device_name(torch.device("cpu")), "torch": torch.__version__,
                "brainjepa_sk": brainjepa_sk.__version__,
                "command": " ".join(["python", *sys.argv]), "preset": args.preset,
                "regions": args.regions, "file_mib": round(path.stat().st_size / 2**20, 1),
                "repeat": repeat, "load_s": round(seconds, 3),
            }), flush=True)


if __name__ == "__main__":
    main()

"""Time the synthetic-data generator ``make_brain_dynamics``; prints numbers only.

Examples
--------
python benchmarks/bench_synthetic.py                  # default size: 120 subjects x 200 x 100
python benchmarks/bench_synthetic.py --subjects 500 --regions 400 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from bench_model import device_name  # the sibling script's machine description

from brainjepa_sk.datasets import make_brain_dynamics


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subjects", type=int, default=120)
    p.add_argument("--timepoints", type=int, default=200)
    p.add_argument("--regions", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    times = []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        make_brain_dynamics(n_subjects=args.subjects, n_timepoints=args.timepoints,
                            n_regions=args.regions, random_state=repeat)
        times.append(time.perf_counter() - start)
    print(json.dumps({"benchmark": "make_brain_dynamics", **vars(args),
                      "seconds": [round(t, 3) for t in times], "best_s": round(min(times), 3),
                      "machine": device_name(torch.device("cpu"))}))


if __name__ == "__main__":
    main()

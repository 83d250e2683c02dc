"""Print a seeded random sample of the mutant names that ``mutmut run`` generated.

A full ``make mutation`` takes hours on a laptop; a sample estimates the killed fraction and
lists survivors in minutes. Run ``mutmut run`` once (it generates ``mutants/``), then::

    mutmut run $(python tools/mutmut_sample.py 400)

Names present in ``--also-in`` (another checkout's ``mutants/``) only are kept, so that two
versions of the test suite can be compared on the same mutants.
"""

import argparse
import json
import random
from pathlib import Path


def mutant_names(mutants_dir):
    """Return the sorted mutant names recorded in ``mutants_dir``'s ``.meta`` files."""
    names = set()
    for meta in Path(mutants_dir).rglob("*.meta"):
        names.update(json.loads(meta.read_text())["exit_code_by_key"])
    return sorted(names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", type=int, help="how many mutants to draw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mutants", default="mutants", help="mutmut's output folder")
    parser.add_argument("--also-in", help="keep only names also generated in this folder")
    args = parser.parse_args()
    names = mutant_names(args.mutants)
    if args.also_in:
        names = sorted(set(names) & set(mutant_names(args.also_in)))
    sample = random.Random(args.seed).sample(names, min(args.size, len(names)))
    print(" ".join(sorted(sample)))


if __name__ == "__main__":
    main()

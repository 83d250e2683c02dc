"""Token counts of the spatiotemporal masks: fixed (static shapes) against per-batch counts.

For each grid, prints one JSON line: the fixed context and target counts of
``SpatiotemporalMaskSampler(static_shapes=True)``, their fractions of all tokens, and the mean
per-batch counts of ``static_shapes=False`` (the research code's way: each batch keeps what its
draw of sizes allows), over 2000 batches.

    python benchmarks/mask_counts.py
"""

import argparse
import json

from brainjepa_sk.nn.masking import SpatiotemporalMaskSampler

GRIDS = {"paper (450 regions x 10 patches)": (450, 10), "demo (100 x 6)": (100, 6)}


def main(n_batches=2000):
    for name, (n_regions, n_patches) in GRIDS.items():
        n_tokens = n_regions * n_patches
        static = SpatiotemporalMaskSampler(n_regions, n_patches)
        research = SpatiotemporalMaskSampler(n_regions, n_patches, static_shapes=False, seed=1)
        sizes = [research.draw_sizes() for _ in range(n_batches)]
        context = sum(s["n_context"] for s in sizes) / n_batches
        target = sum(s["n_target"] for s in sizes) / n_batches
        print(json.dumps({
            "grid": name, "tokens": n_tokens,
            "static_context": static.n_context, "static_target": static.n_target,
            "static_context_fraction": round(static.n_context / n_tokens, 3),
            "static_target_fraction": round(static.n_target / n_tokens, 3),
            "per_batch_mean_context": round(context, 1), "per_batch_mean_target": round(target, 1),
            "per_batch_context_fraction": round(context / n_tokens, 3),
            "per_batch_target_fraction": round(target / n_tokens, 3),
        }))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000,
                        help="per-batch draws averaged for each grid")
    args = parser.parse_args()
    if args.batches < 1:
        parser.error("--batches must be at least 1")
    main(args.batches)

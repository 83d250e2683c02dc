"""Share of the targets' variance that is position at initialisation, the same for every window.

For each model size and patch initialisation, prints one JSON line: the fraction of the
variance of the layer-normalised target-encoder outputs explained by each token's mean over
windows (its position), on windows of white noise over ``--regions`` regions with random
gradients. The user guide quotes these numbers (pretraining, "positions first").

    python benchmarks/position_share.py
"""

import argparse
import json

import torch

from brainjepa_sk.nn import BrainJEPA
from brainjepa_sk.nn.model import MODEL_PRESETS

SIZES = {"tiny": MODEL_PRESETS["tiny"], "base": MODEL_PRESETS["base"],
         "one block, width 64": {"embed_dim": 64, "depth": 1, "num_heads": 2}}


def position_share(sizes, patch_embed_init, n_regions, n_frames, n_windows, seed):
    """Fraction of the target variance that the per-token mean over windows explains."""
    generator = torch.Generator().manual_seed(seed)
    gradients = torch.randn(n_regions, 30, generator=generator)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BrainJEPA(gradients, patch_size=16, n_patches=n_frames // 16,
                          predictor_embed_dim=min(384, sizes["embed_dim"]), predictor_depth=1,
                          patch_embed_init=patch_embed_init, **sizes).eval()
    windows = torch.randn(n_windows, n_frames, n_regions, generator=generator)
    with torch.no_grad():
        targets = model.target_encoder(windows)
        targets = torch.nn.functional.layer_norm(targets, targets.shape[-1:])
    total = targets.var(dim=(0, 1), unbiased=False).sum()
    return float(targets.mean(0).var(0, unbiased=False).sum() / total)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=100)
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--windows", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name, sizes in SIZES.items():
        for init in ("trunc_normal", "xavier"):
            share = position_share(sizes, init, args.regions, args.frames, args.windows,
                                   args.seed)
            print(json.dumps({"model": name, "patch_embed_init": init, "regions": args.regions,
                              "frames": args.frames, "windows": args.windows,
                              "position_share": round(share, 3)}), flush=True)


if __name__ == "__main__":
    main()

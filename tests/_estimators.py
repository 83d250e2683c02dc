"""Tiny configurations of the package's estimators, shared by the scikit-learn tests."""

import numpy as np
import torch

from brainjepa_sk import (
    BrainJEPAClassifier,
    BrainJEPAEmbedder,
    BrainJEPAPretrainer,
    BrainJEPARegressor,
    GradientPositioner,
)
from brainjepa_sk.nn import BrainJEPA

N_REGIONS = 8


def tiny_module(n_regions=N_REGIONS, seed=0, depth=1):
    """A small random BrainJEPA (patch 2, 8 frames per window, ``depth`` encoder blocks)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BrainJEPA(torch.randn(n_regions, 3, generator=generator), patch_size=2,
                         embed_dim=8, depth=depth, num_heads=2, predictor_embed_dim=8,
                         predictor_depth=1, n_patches=4)


def tiny_estimators(n_regions=N_REGIONS):
    """One instance of each estimator, small enough for the estimator checks."""
    gradients = np.random.default_rng(0).standard_normal((n_regions, 3))
    return [
        GradientPositioner(n_components=2, sparsity=0.5),
        BrainJEPAEmbedder(weights=tiny_module(n_regions), normalization=None, device="cpu"),
        BrainJEPAPretrainer(
            gradients=gradients, model_size=dict(embed_dim=8, depth=1, num_heads=2),
            patch_size=2, n_frames=8, predictor_depth=1, n_epochs=1, batch_size=4,
            device="cpu", verbose=0, random_state=0,
        ),
    ]


def tiny_supervised_estimators(n_regions=N_REGIONS, **params):
    """A tiny fine-tuning classifier and regressor (one epoch, silent, seeded)."""
    settings = dict(normalization=None, max_epochs=1, batch_size=4, verbose=0, random_state=0,
                    **params)
    return [BrainJEPAClassifier(tiny_module(n_regions), **settings),
            BrainJEPARegressor(tiny_module(n_regions), **settings)]


def make_subjects(n_subjects=8, n_timepoints=12, n_regions=N_REGIONS, seed=0):
    """Random-walk-like ROI series (n_subjects, n_timepoints, n_regions)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_subjects, n_timepoints, n_regions)).cumsum(axis=1)


def assert_same_module(module, reference):
    """``module`` has the weights, train/eval modes and ``requires_grad`` of ``reference``."""
    assert [m.training for m in module.modules()] == [m.training for m in reference.modules()]
    for (name, p), q in zip(module.state_dict(keep_vars=True).items(),
                            reference.state_dict(keep_vars=True).values()):
        assert torch.equal(p, q) and p.requires_grad == q.requires_grad, name


def safetensors_bytes(tensors):
    """The bytes of a safetensors file of float32 ``tensors`` (a dict by name), as
    ``safetensors.torch.save_file`` writes them (the package is no dependency): the length of
    a JSON header (8 bytes, little-endian), the header, then the tensors' bytes."""
    import json

    header, data = {}, b""
    for name, tensor in tensors.items():
        raw = tensor.to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensor.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    encoded = json.dumps(header).encode()
    return len(encoded).to_bytes(8, "little") + encoded + data

"""Devices, precision, random-number state and safe saving for training and inference."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import torch

__all__ = [
    "PRECISIONS",
    "atomic_save",
    "forked_rng",
    "global_rng_state",
    "resolve_autocast",
    "resolve_device",
    "set_global_rng_state",
]

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(device):
    """``"auto"`` -> CUDA if available, else CPU; anything else through ``torch.device``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was asked for but CUDA is not available")
    return device


def resolve_autocast(precision, device):
    """Autocast dtype for a precision setting: ``"auto"`` is bf16 on CUDA, fp32 (None) on CPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


@contextlib.contextmanager
def forked_rng(seed, device):
    """Seed torch's global generators for ``device`` inside the block only.

    Model initialisation and stochastic depth draw from the global generator; seeding a fork of
    it makes them follow ``random_state`` while the caller's random state (CPU, and the CUDA
    device used) is restored afterwards. Other CUDA devices are not touched.
    """
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        with torch.random.fork_rng(devices=[index]), torch.cuda.device(index):
            torch.default_generator.manual_seed(seed)
            torch.cuda.manual_seed(seed)
            yield
    else:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield


def global_rng_state(device):
    """States of the global generators used on ``device`` (for exact resume)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_global_rng_state(state, device):
    """Restore what :func:`global_rng_state` returned."""
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def atomic_save(obj, path):
    """``torch.save`` to a temporary file in the same folder, then rename it into place.

    An interrupted save never leaves a truncated file at ``path``.

    Parameters
    ----------
    obj : object
        What to save.
    path : str or path-like
        Destination; its folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

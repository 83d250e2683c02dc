"""Shared fixtures: the research-format test checkpoint and its reference vectors."""

import signal
from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).parent / "data"
OFFICIAL = DATA / "official_format"


@pytest.fixture(scope="session")
def official_dir():
    """Folder with the research-format checkpoint, its gradient CSV and reference outputs."""
    return OFFICIAL


@pytest.fixture(scope="session")
def reference():
    """The research code's inputs and outputs for the test checkpoint (float32, eager)."""
    with np.load(OFFICIAL / "vectors.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def research_model(official_dir):
    """The test checkpoint loaded with ``load_research_checkpoint`` (4 heads)."""
    from brainjepa_sk.checkpoint import load_research_checkpoint

    return load_research_checkpoint(
        official_dir / "checkpoint.pth.tar", gradients=official_dir / "gradient.csv", num_heads=4
    )


@pytest.fixture(autouse=True)
def _own_data_folder(tmp_path_factory, monkeypatch):
    """Every test downloads into an empty folder of its own (``BRAINJEPA_SK_DATA``), never
    into the home folder: files cached there by an earlier run (or by the user) would hide a
    download that was not made, or made to the wrong place."""
    monkeypatch.setenv("BRAINJEPA_SK_DATA", str(tmp_path_factory.mktemp("brainjepa_sk_data")))


@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler, as in an interactive session (a process started in the
    background, as CI may start the tests, ignores SIGINT)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def use_local_ukbiobank(monkeypatch, official_dir):
    """Make ``weights="ukbiobank"`` fetch the test checkpoint and gradients from local files
    (the gradient file pinned to the test file's hash, as the real one is to its own)."""
    from brainjepa_sk.datasets import _weights

    files = {
        "checkpoint": dict(_weights.UKBIOBANK_FILES["checkpoint"],
                           url=(official_dir / "checkpoint.pth.tar").as_uri()),
        "gradients": dict(_weights.UKBIOBANK_FILES["gradients"],
                          url=(official_dir / "gradient.csv").as_uri(),
                          sha256=_weights.sha256_of(official_dir / "gradient.csv")),
    }
    monkeypatch.setattr(_weights, "UKBIOBANK_FILES", files)
    # the test checkpoint stands in for the 450-region model with its own region count
    monkeypatch.setattr(_weights, "UKBIOBANK_N_REGIONS", len(np.loadtxt(
        official_dir / "gradient.csv", delimiter=",", ndmin=2)))


def pytest_collection_modifyitems(config, items):
    """Skip ``gpu``-marked tests when no CUDA device is present."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

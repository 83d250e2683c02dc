"""Our own checkpoint format: config + weights + preprocessing, readable with weights_only."""

import numpy as np
import pytest
import torch

from brainjepa_sk.checkpoint import load_checkpoint, save_checkpoint
from brainjepa_sk.gradients import load_gradients
from brainjepa_sk.nn import BrainJEPA


def _model():
    torch.manual_seed(0)
    return BrainJEPA(torch.randn(10, 4), patch_size=4, embed_dim=16, depth=1, num_heads=2,
                     predictor_embed_dim=8, predictor_depth=1, loss="smooth_l1", n_patches=3)


def test_round_trip(tmp_path):
    model = _model()
    preprocessing = {"t_r": 0.735, "normalization": "robust", "median": np.arange(10.0),
                     "window": {"n_frames": 12, "strategy": "center"}}
    path = tmp_path / "sub" / "model.pt"
    save_checkpoint(path, model, preprocessing=preprocessing, metadata={"history": [1.0, 0.5]})
    assert not list(path.parent.glob("*.tmp"))
    # The file is plain data: torch's safe loader reads it.
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "brainjepa_sk" and raw["config"] == model.config
    loaded = load_checkpoint(path)
    assert loaded.model.config == model.config
    assert not loaded.model.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    np.testing.assert_array_equal(loaded.preprocessing["median"], np.arange(10.0))
    assert loaded.preprocessing["window"] == {"n_frames": 12, "strategy": "center"}
    assert loaded.preprocessing["t_r"] == 0.735
    assert loaded.metadata == {"history": [1.0, 0.5]}
    x = torch.randn(2, 12, 10)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.target_encoder(x), model.target_encoder(x))


def test_wrong_files(tmp_path, official_dir):
    with pytest.raises(ValueError, match="load_research_checkpoint"):
        load_checkpoint(official_dir / "checkpoint.pth.tar")
    with pytest.raises(TypeError, match="BrainJEPA"):
        save_checkpoint(tmp_path / "x.pt", torch.nn.Linear(2, 2))


def test_load_gradients_formats(tmp_path, official_dir):
    csv = load_gradients(official_dir / "gradient.csv")
    assert csv.shape == (24, 30) and csv.dtype == np.float64
    np.save(tmp_path / "g.npy", csv)
    np.testing.assert_array_equal(load_gradients(tmp_path / "g.npy"), csv)
    header = tmp_path / "g_header.csv"
    header.write_text(",".join(f"g{i}" for i in range(30)) + "\n"
                      + (official_dir / "gradient.csv").read_text())
    np.testing.assert_allclose(load_gradients(header), csv)
    tsv = tmp_path / "g.tsv"
    np.savetxt(tsv, csv, delimiter="\t")
    np.testing.assert_allclose(load_gradients(tsv), csv)
    np.testing.assert_array_equal(load_gradients(torch.from_numpy(csv)), csv)
    with pytest.raises(ValueError, match="NaN"):
        load_gradients(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="2-D"):
        load_gradients(np.zeros(3))
    with pytest.raises(FileNotFoundError):
        load_gradients(tmp_path / "missing.csv")

"""Damaged or foreign files, through every entry point: a clear error that names the file."""

import io
import pickle
import re

import numpy as np
import pytest
import torch

from brainjepa_sk import BrainJEPAEmbedder, BrainJEPAPretrainer, GradientPositioner
from brainjepa_sk.checkpoint import (
    export_training_state,
    load_checkpoint,
    load_research_checkpoint,
    resolve_weights,
    save_checkpoint,
)
from brainjepa_sk.gradients import load_gradients
from brainjepa_sk.nn import BrainJEPA
from brainjepa_sk.train import Callback
from brainjepa_sk.train.runtime import tensor_checksum
from brainjepa_sk.validation import validate_subjects


class _Foreign:
    pass


def _model():
    torch.manual_seed(0)
    return BrainJEPA(torch.randn(8, 3), patch_size=4, embed_dim=16, depth=1, num_heads=2,
                     predictor_embed_dim=8, predictor_depth=1, n_patches=4)


@pytest.fixture
def files(tmp_path):
    """A good checkpoint and damaged or foreign variants of it."""
    good = tmp_path / "good.pt"
    save_checkpoint(good, _model(), preprocessing={"normalization": None, "n_frames": 16})
    raw = good.read_bytes()
    out = {"good": good}
    for name, data in {"half": raw[: len(raw) // 2], "empty": b"",
                       "text": b"epoch,loss\n1,0.5\n"}.items():
        out[name] = tmp_path / f"{name}.pt"
        out[name].write_bytes(data)
    # files passed by mistake: an array (a subject's series, gradients), a pickled object
    out["npy"] = tmp_path / "npy.pt"
    np.save(out["npy"], np.ones((4, 8)))
    out["npy"] = out["npy"].with_suffix(".pt.npy")
    out["plain-pickle"] = tmp_path / "plain-pickle.pt"
    out["plain-pickle"].write_bytes(pickle.dumps({"model": [1.0, 2.0]}, protocol=5))
    out["pickle"] = tmp_path / "pickle.pt"
    torch.save({"format": "brainjepa_sk", "x": _Foreign()}, out["pickle"])
    # one flipped byte inside a stored tensor: still a valid archive
    payload = torch.load(good, weights_only=True)
    payload["state_dict"]["encoder.patch_embed.proj.weight"][0, 0] += 1.0
    out["flipped"] = tmp_path / "flipped.pt"
    torch.save(payload, out["flipped"])
    return out


DAMAGES = {
    "half": "truncated or damaged",
    "empty": "is empty",
    "text": "it is a text file",
    "npy": r"it is a NumPy array file \(numpy.save\)",
    "plain-pickle": r"it is a Python pickle .* not unpickled here",
    "pickle": "holds Python objects",
    "flipped": "damaged: its contents do not match the checksum",
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_load_checkpoint_names_the_file_and_the_problem(files, damage):
    with pytest.raises(ValueError, match=rf"{damage}\.pt.*{DAMAGES[damage]}"):
        load_checkpoint(files[damage])


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_the_embedder_names_the_file_and_the_problem(files, damage):
    X = np.random.default_rng(0).standard_normal((2, 16, 8))
    with pytest.raises(ValueError, match=rf"{damage}\.pt.*{DAMAGES[damage]}"):
        BrainJEPAEmbedder(weights=files[damage], device="cpu").fit(X)


@pytest.mark.parametrize("damage", ["half", "empty", "text", "pickle"])
def test_load_research_checkpoint_names_the_file(files, damage, tmp_path):
    np.savetxt(tmp_path / "g.csv", np.random.default_rng(0).standard_normal((8, 3)), delimiter=",")
    with pytest.raises(ValueError, match=rf"{damage}\.pt.*{DAMAGES[damage]}"):
        load_research_checkpoint(files[damage], tmp_path / "g.csv")


def test_a_good_checkpoint_still_loads(files):
    loaded = load_checkpoint(files["good"])
    assert loaded.preprocessing["n_frames"] == 16


def test_a_file_that_cannot_be_read_is_not_called_damaged(files, monkeypatch):
    """No read permission (simulated: root reads every file) is an OSError naming the file,
    not a damaged checkpoint."""
    import errno

    def denied(path, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(torch, "load", denied)
    with pytest.raises(OSError, match=r"could not read .*good\.pt: Permission denied") as info:
        load_checkpoint(files["good"])
    assert info.value.errno == errno.EACCES


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".txt"])
def test_a_subject_file_that_cannot_be_read_is_not_called_non_numeric(tmp_path, monkeypatch,
                                                                        suffix):
    """No read permission (simulated) was a ValueError calling the file not a numeric table."""
    import builtins
    import errno

    path = tmp_path / f"sub-1{suffix}"
    path.write_text("")

    def denied(file, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(file))

    for module, name in ((np, "load"), (np, "loadtxt"), (builtins, "open")):
        monkeypatch.setattr(module, name, denied)
    with pytest.raises(PermissionError, match=r"could not read subject file .*sub-1\.\w+: "
                                              r"Permission denied") as info:
        validate_subjects([path], lazy=True)
    assert info.value.errno == errno.EACCES


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".txt", ".1D"])
@pytest.mark.parametrize("damage", ["binary", "gzip", "nul_tail", "cut"])
@pytest.mark.parametrize("lazy", [False, True])
def test_a_damaged_text_subject_file_is_named(tmp_path, suffix, damage, lazy):
    """A table damaged as copies and crashes damage files (random bytes, a compressed file
    under a text name, a write cut short and padded with NUL bytes, a row cut short) is
    refused naming the file, read at once or one file at a time."""
    rng = np.random.default_rng(0)
    good = tmp_path / "sub-0.npy"
    np.save(good, rng.standard_normal((30, 4)))
    lines = "\n".join(("," if suffix == ".csv" else "\t").join(f"{v:.6f}" for v in row)
                      for row in rng.standard_normal((30, 4))).encode() + b"\n"
    content = {"binary": rng.integers(0, 256, 300, dtype=np.uint8).tobytes(),
               "gzip": b"\x1f\x8b\x08\x00" + rng.integers(0, 256, 100, dtype=np.uint8).tobytes(),
               "nul_tail": lines[:200] + b"\x00" * 100,
               "cut": lines[: len(lines) // 2 + 7]}[damage]
    bad = tmp_path / f"sub-1{suffix}"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(bad))}"):
        validate_subjects([good, bad], lazy=lazy)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".csv.gz"])
def test_a_table_cut_short_in_its_last_cell_and_padded_with_nul_bytes_is_named(tmp_path, suffix):
    """A write cut short inside a row's last cell and padded with NUL bytes: pandas 2 read
    the cell up to the first NUL (-0.732 for -0.732385) and the table loaded, one value
    wrong; it is refused naming the file and the NUL bytes, the gradient table too."""
    import gzip

    rows = np.random.default_rng(0).standard_normal((30, 4))
    separator = "\t" if suffix == ".tsv" else ","
    lines = "\n".join(separator.join(f"{v:.6f}" for v in row) for row in rows).encode() + b"\n"
    cut = lines.index(b"\n", 150) - 3  # inside the last cell of a row
    content = lines[:cut] + b"\x00" * 100
    bad = tmp_path / f"sub-1{suffix}"
    bad.write_bytes(gzip.compress(content) if suffix.endswith(".gz") else content)
    message = rf"^{re.escape(str(bad))} .*NUL bytes \(a write cut short"
    with pytest.raises(ValueError, match=message):
        validate_subjects([bad])
    with pytest.raises(ValueError, match=message):
        load_gradients(bad)


@pytest.mark.parametrize("suffix", [".tsv.gz", ".csv.gz", ".txt.gz", ".1D.gz"])
@pytest.mark.parametrize("damage", ["cut", "corrupt", "not_gzip"])
@pytest.mark.parametrize("lazy", [False, True])
def test_a_damaged_gzipped_subject_file_is_named(tmp_path, suffix, damage, lazy):
    """A gzipped table cut short in a copy, with damaged compressed bytes, or not gzipped at
    all is refused naming the file and saying it does not decompress (zlib's error, which is
    no OSError, had escaped unnamed)."""
    import gzip

    rng = np.random.default_rng(0)
    good = tmp_path / "sub-0.npy"
    np.save(good, rng.standard_normal((30, 4)))
    lines = "\n".join(("," if suffix == ".csv.gz" else "\t").join(f"{v:.6f}" for v in row)
                      for row in rng.standard_normal((300, 4))).encode() + b"\n"
    packed = gzip.compress(lines)
    corrupt = bytearray(packed)
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 40] = bytes(40)
    content = {"cut": packed[: len(packed) // 2], "corrupt": bytes(corrupt),
               "not_gzip": lines}[damage]
    bad = tmp_path / f"sub-1{suffix}"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(bad))} is a damaged gzip file \(it "
                                         r"does not decompress: .*\); write it again"):
        validate_subjects([good, bad], lazy=lazy)


@pytest.mark.parametrize("suffix", [".csv.gz", ".tsv.gz", ".txt.gz"])
@pytest.mark.parametrize("damage", ["cut", "corrupt", "not_gzip"])
def test_a_damaged_gzipped_gradient_file_is_named(tmp_path, suffix, damage):
    """A gzipped gradient table that does not decompress is named as subject files are."""
    import gzip

    lines = "\n".join(("," if suffix == ".csv.gz" else "\t").join(f"{v:.6f}" for v in row)
                      for row in np.random.default_rng(0).standard_normal((300, 4))
                      ).encode() + b"\n"
    packed = gzip.compress(lines)
    corrupt = bytearray(packed)
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 40] = bytes(40)
    bad = tmp_path / f"gradients{suffix}"
    bad.write_bytes({"cut": packed[: len(packed) // 2], "corrupt": bytes(corrupt),
                     "not_gzip": lines}[damage])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(bad))} is a damaged gzip file \(it "
                                         r"does not decompress: .*\); write it again"):
        load_gradients(bad)


@pytest.mark.parametrize("keep, said", [
    (lambda raw: raw[:-8], r"its header announces 640 bytes of data, it holds 632"),
    (lambda raw: raw[: len(raw) // 2], r"its header announces 640 bytes of data, it holds \d+"),
    (lambda raw: raw[:50], r"it ends within its header \(50 bytes of 128\)"),
    (lambda raw: raw[:8], r"it ends within its header \(8 bytes of 10\)"),
])
def test_a_truncated_npy_file_is_called_truncated_naming_it(tmp_path, keep, said):
    """numpy's words for a cut file ("mmap length is greater than file size", "EOF: reading
    array header") did not say that the file was cut short."""
    good = tmp_path / "sub-0.npy"
    np.save(good, np.ones((20, 4)))  # 640 bytes of float64 after a 128-byte header
    cut = tmp_path / "sub-1.npy"
    cut.write_bytes(keep(good.read_bytes()))
    with pytest.raises(ValueError, match=r"sub-1\.npy is not a numeric .*the file is truncated "
                                         r"\(an interrupted copy or download\?\): " + said):
        validate_subjects([good, cut])
    with pytest.raises(ValueError, match=r"sub-1\.npy is not a readable \.npy.*truncated.*" + said):
        load_gradients(cut)


def test_a_damaged_but_whole_npy_header_is_not_called_truncated(tmp_path):
    path = tmp_path / "sub-1.npy"
    np.save(path, np.ones((20, 4)))
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"'shape': (20, 4)", b"'shape': (2?, 4)"))
    with pytest.raises(ValueError, match=r"sub-1\.npy is not a numeric") as info:
        validate_subjects([path])
    assert "truncated" not in str(info.value)


@pytest.mark.parametrize("lazy", [False, True])
def test_an_npy_file_of_python_objects_is_not_called_truncated(tmp_path, lazy):
    """Its pickled objects (small integers: 2 bytes each) take fewer bytes than 8 per item
    that its header's object dtype announces: it had been called truncated."""
    path = tmp_path / "sub-1.npy"
    np.save(path, np.ones((100, 30), dtype=int).astype(object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"sub-1\.npy is not a numeric.*Python objects|"
                                         r"sub-1\.npy is not a numeric.*allow_pickle") as info:
        validate_subjects([path], lazy=lazy)
    assert "truncated" not in str(info.value)


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"\x93NUM", r"the file is truncated .*: it ends within its header \(4 bytes\)"),
    (b"0.1\t0.2\n0.3\t0.4\n", "it does not start with NumPy's .npy header"),
    (b"\x80\x04\x95 a pickle", "it does not start with NumPy's .npy header"),
    # "PK" alone is no archive: numpy reads only "PK\x03\x04" and "PK\x05\x06" as one
    (b"PKG\t0.1\n0.2\t0.3\n", "it does not start with NumPy's .npy header"),
], ids=["empty", "cut-in-magic", "text", "pickle", "text-starting-pk"])
def test_a_file_that_is_no_npy_is_named_so_without_advice_to_unpickle_it(tmp_path, content,
                                                                         message):
    """numpy takes any file without its header for a pickle and suggests loading it unsafely
    (``allow_pickle``, ``pickle.load``), which neither the estimators nor a user with a
    damaged file should do."""
    path = tmp_path / "sub-1.npy"
    path.write_bytes(content)
    for read in (lambda: validate_subjects([path]), lambda: load_gradients(path)):
        with pytest.raises(ValueError, match=r"sub-1\.npy is not a .*" + message) as info:
            read()
        assert "allow_pickle" not in str(info.value) and "pickled" not in str(info.value)


def _damaged_header(good):
    """A byte of the second stored file's header changed: the archive itself still opens."""
    raw = bytearray(good.read_bytes())
    second = raw.find(b"PK\x03\x04", 10)
    raw[second + 1] ^= 0xFF
    return bytes(raw)


def _short_legacy_file(good):
    """The start of a file in torch's legacy (pre-1.6, not zip) format."""
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer, _use_new_zipfile_serialization=False)
    return buffer.getvalue()[:10]


def _four_junk_bytes(good):
    return b"ju\x00k"  # torch's legacy reader fails in struct.unpack (and it is no text)


def _legacy_file_with_a_damaged_storage_key(good):
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer, _use_new_zipfile_serialization=False)
    raw = bytearray(buffer.getvalue())
    key = raw.find(b"cpu") - 20  # a digit of the storage's key, which its table then lacks
    raw[key] = ord("x")
    return bytes(raw)


_NOT_A_STATE = r"is not a training state: it was not written by torch.save, or it is damaged"


@pytest.mark.parametrize(("make", "problem"), [
    (_damaged_header, r"is truncated or damaged: not a complete training state \(Pytorch"),
    (_short_legacy_file, _NOT_A_STATE + r" \(EOFError"),
    (_four_junk_bytes, _NOT_A_STATE + r" \(error"),
    (_legacy_file_with_a_damaged_storage_key, _NOT_A_STATE + r" \(AssertionError"),
], ids=["damaged-header", "short-legacy-file", "junk", "damaged-storage-key"])
def test_load_file_names_damage_that_torch_reports_in_other_ways(files, tmp_path, make, problem):
    from brainjepa_sk.train.runtime import load_file

    path = tmp_path / "state.pt"
    path.write_bytes(make(files["good"]))
    with pytest.raises(ValueError, match=rf"state\.pt {problem}"):
        load_file(path, what="training state")


def test_a_missing_file_is_named_with_what_it_should_be(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"brainjepa_sk checkpoint not found: .*nope\.pt"):
        load_checkpoint(tmp_path / "nope.pt")


def test_a_plain_pickle_is_refused_without_torchs_pickle_protocol_warning(tmp_path):
    import pickle
    import warnings

    from brainjepa_sk.train.runtime import load_file

    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"plain\.pt is not a torch file"):
            load_file(path)


def test_a_torchscript_archive_is_named_as_such_without_advice_to_load_unsafely(tmp_path):
    """torch refuses it under weights_only=True with advice to re-run with weights_only=False
    (which runs code), after a warning that it dispatches to torch.jit.load."""
    import warnings

    path = tmp_path / "scripted.pt"
    with warnings.catch_warnings():  # torch.jit is deprecated; such files are still around
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"scripted\.pt is not a brainjepa_sk checkpoint: "
                                             r"it is a TorchScript archive") as info:
            load_checkpoint(path)
    assert "weights_only" not in str(info.value)


def _robust_checkpoint(path):
    median, iqr = np.linspace(-1, 1, 8), np.linspace(1, 2, 8)
    save_checkpoint(path, _model(), preprocessing={
        "normalization": "robust", "n_frames": 16, "n_regions_": 8, "median_": median,
        "iqr_": iqr}, metadata={"region_names": [f"r{k}" for k in range(8)]})
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("damage", ["median", "n_frames", "region_name"])
def test_damage_outside_the_weights_is_caught_too(tmp_path, damage):
    """The checksum covers the preprocessing and metadata, not only the weights: one changed
    statistic used to go through and shift every embedding."""
    payload = _robust_checkpoint(tmp_path / "good.pt")
    if damage == "median":
        payload["preprocessing"]["median_"][3] += 1e-3
    elif damage == "n_frames":
        payload["preprocessing"]["n_frames"] = 20
    else:
        payload["metadata"]["region_names"][2] = "r9"
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad\.pt is damaged: its contents do not match"):
        load_checkpoint(tmp_path / "bad.pt")


def test_an_invalid_saved_window_is_named_with_its_file(tmp_path):
    """A window strategy this version does not know, read from a file, names the file and the
    strategy: not the "auto" that asked for it."""
    from brainjepa_sk.checkpoint import _checksum

    payload = _robust_checkpoint(tmp_path / "good.pt")
    payload["preprocessing"]["window"] = "middle"
    payload["checksum"] = _checksum(payload)
    torch.save(payload, tmp_path / "bad.pt")
    X = np.random.default_rng(0).standard_normal((2, 16, 8))
    for normalization in ("auto", "global_zscore"):  # with the saved statistics or not
        with pytest.raises(ValueError, match=r"bad\.pt holds an invalid preprocessing: window "
                                             r"'middle' is not one of \('center', 'first', "
                                             r"'sliding'\)"):
            BrainJEPAEmbedder(weights=tmp_path / "bad.pt", normalization=normalization).fit(X)
    # a window given explicitly does not take the saved one
    BrainJEPAEmbedder(weights=tmp_path / "bad.pt", window="first").fit(X)


def test_an_invalid_saved_normalization_is_named_with_its_file(tmp_path):
    """A normalization this version does not know, saved without statistics (a preprocessing
    given to save_checkpoint), had been refused as the Preprocessor's own parameter ("The
    'normalization' parameter of Preprocessor must be ..."), which the caller left 'auto'."""
    from brainjepa_sk.checkpoint import save_checkpoint

    module = BrainJEPA(torch.randn(8, 3), patch_size=2, embed_dim=8, depth=1, num_heads=2,
                       predictor_embed_dim=8, predictor_depth=1, n_patches=4)
    save_checkpoint(tmp_path / "model.pt", module, preprocessing={"normalization": "zscore"})
    X = np.random.default_rng(0).standard_normal((2, 16, 8))
    with pytest.raises(ValueError, match=r"model\.pt holds an invalid preprocessing: "
                                         r"normalization 'zscore' is not one of \("):
        BrainJEPAEmbedder(weights=tmp_path / "model.pt").fit(X)
    # a normalization given explicitly does not take the saved one
    BrainJEPAEmbedder(weights=tmp_path / "model.pt", normalization="roi_zscore").fit(X)


@pytest.mark.parametrize("change, problem", [
    (lambda p: p.__setitem__("iqr_", torch.full((8,), float("nan"))), "iqr_ holds NaN"),
    (lambda p: p.__setitem__("median_", torch.zeros(7)), r"median_ has shape \(7,\)"),
    (lambda p: p.pop("median_"), "normalization='robust' but the dict has no 'median_'"),
    (lambda p: p.__setitem__("n_regions_", [8]),
     r"n_regions_ must be a positive whole number, got \[8\]"),
    # a TypeError rather than a ValueError
    (lambda p: p.__setitem__("median_", {"a": 1}), r"float\(\) argument must be .*not .dict."),
])
def test_an_invalid_preprocessing_is_named_with_its_file(tmp_path, change, problem):
    """A file written with bad statistics (its checksum matching them) is refused, with the
    file's name, when an estimator applies its preprocessing (and only then)."""
    from brainjepa_sk.checkpoint import _checksum

    payload = _robust_checkpoint(tmp_path / "good.pt")
    change(payload["preprocessing"])
    payload["checksum"] = _checksum(payload)
    torch.save(payload, tmp_path / "bad.pt")
    X = np.random.default_rng(0).standard_normal((2, 16, 8))
    with pytest.raises(ValueError, match=rf"bad\.pt holds an invalid preprocessing: {problem}"):
        BrainJEPAEmbedder(weights=tmp_path / "bad.pt", device="cpu").fit(X)
    # another normalization does not use the saved statistics: the weights still serve
    BrainJEPAEmbedder(weights=tmp_path / "bad.pt", normalization="global_zscore").fit(X)


def test_a_format_2_checkpoint_still_loads_and_is_checked(tmp_path):
    """Files of format 2 carry a checksum of the gradients and weights only."""
    from brainjepa_sk.train.runtime import tensor_checksum

    payload = _robust_checkpoint(tmp_path / "good.pt")
    payload["format_version"] = 2
    payload["checksum"] = tensor_checksum({"gradients": payload["gradients"],
                                           "state_dict": payload["state_dict"]})
    torch.save(payload, tmp_path / "v2.pt")
    assert load_checkpoint(tmp_path / "v2.pt").preprocessing["n_regions_"] == 8
    payload["state_dict"]["encoder.patch_embed.proj.weight"][0, 0] += 1.0
    torch.save(payload, tmp_path / "v2.pt")
    with pytest.raises(ValueError, match="damaged: its weights do not match"):
        load_checkpoint(tmp_path / "v2.pt")


def _saved_run(tmp_path):
    """A tiny pretraining run saved in ``tmp_path / "run"``: its data, settings and state file."""
    X = np.random.default_rng(0).standard_normal((4, 32, 8))
    params = dict(gradients=np.random.default_rng(1).standard_normal((8, 3)), patch_size=4,
                  n_frames=16, model_size=dict(embed_dim=16, depth=1, num_heads=2),
                  predictor_depth=1, n_epochs=1, batch_size=4, device="cpu", verbose=0,
                  random_state=0, checkpoint_dir=tmp_path / "run")
    BrainJEPAPretrainer(**params).fit(X)
    (state_path,) = (tmp_path / "run").glob("run-*.pt")
    return X, params, state_path


@pytest.mark.parametrize("damage", ["half", "empty", "text", "pickle", "flipped_state",
                                    "flipped_optimizer_setting", "flipped_counter",
                                    "flipped_extra", "flipped_key"])
def test_resuming_from_a_damaged_state_names_it(tmp_path, files, damage):
    X, params, state_path = _saved_run(tmp_path)
    if damage == "flipped_state":
        state = torch.load(state_path, weights_only=True)
        next(iter(state["loop"]["model"].values())).view(-1)[0] += 1.0
        torch.save(state, state_path)
        expected = "damaged: its contents do not match the checksum"
    elif damage in ("flipped_optimizer_setting", "flipped_counter"):
        # values that are not tensors change the resumed run as much
        state = torch.load(state_path, weights_only=True)
        if damage == "flipped_optimizer_setting":
            group = state["loop"]["optimizer"]["param_groups"][0]
            group["betas"] = (group["betas"][0], 0.997)
        else:
            state["loop"]["step"] += 1
        torch.save(state, state_path)
        expected = "damaged: its contents do not match the checksum"
    elif damage == "flipped_extra":  # e.g. the preprocessing export_training_state writes
        state = torch.load(state_path, weights_only=True)
        state["extra"]["preprocessing"]["n_frames"] = 20
        torch.save(state, state_path)
        expected = "damaged: its run key and settings do not match the checksum"
    elif damage == "flipped_key":  # damaged, not another run's state to overwrite
        state = torch.load(state_path, weights_only=True)
        state["key"] = "0" * len(state["key"])
        torch.save(state, state_path)
        expected = "damaged: its run key and settings do not match the checksum"
    else:
        state_path.write_bytes(files[damage].read_bytes())
        expected = DAMAGES[damage].replace("checkpoint", "training state")
    with pytest.raises(ValueError, match=rf"run-\w+\.pt.*{expected}.*delete it to start"):
        BrainJEPAPretrainer(**params).fit(X)


@pytest.mark.parametrize("part", ["history", "optimizer"])
def test_a_state_lacking_a_part_is_named_before_any_of_it_is_resumed(tmp_path, part):
    """A state of consistent checksums without a part the loop needs (another version's, or
    one not written by Checkpoint.save) is named with the part, not a bare KeyError raised
    after the model was loaded."""
    X, params, state_path = _saved_run(tmp_path)
    state = torch.load(state_path, weights_only=True)
    del state["loop"][part]
    state["checksum"] = tensor_checksum(state["loop"], values=True)
    torch.save(state, state_path)
    saved = state_path.read_bytes()
    with pytest.raises(ValueError, match=rf"run-\w+\.pt.* has no \['{part}'\].*delete it to "
                                         "start"):
        BrainJEPAPretrainer(**params).fit(X)
    assert state_path.read_bytes() == saved
    if part == "history":  # what exporting the model needs too
        with pytest.raises(ValueError, match="incomplete training state"):
            export_training_state(state_path, tmp_path / "model.pt")


class _Steps(Callback):
    """Records the steps the runs it is copied into train (a class list: the pretrainer trains
    a copy of its callbacks)."""

    done = []

    def on_step_end(self, loop, loss):
        self.done.append(loop.step)


def test_a_folder_where_the_runs_state_is_saved_is_named_before_any_training(tmp_path):
    """A folder at the run's state path: the run had trained its first epoch, and then
    failed to save it (and warned about the folder it skipped as a shorter run)."""
    X = np.random.default_rng(0).standard_normal((4, 32, 8))
    params = dict(gradients=np.random.default_rng(1).standard_normal((8, 3)), patch_size=4,
                  n_frames=16, model_size=dict(embed_dim=16, depth=1, num_heads=2),
                  predictor_depth=1, n_epochs=1, batch_size=4, device="cpu", verbose=0,
                  random_state=0, checkpoint_dir=tmp_path)
    BrainJEPAPretrainer(**params).fit(X)
    (state_path,) = tmp_path.glob("run-*.pt")
    state_path.unlink()
    state_path.mkdir()
    _Steps.done.clear()
    with pytest.raises(ValueError, match=rf"^{re.escape(str(state_path))} is a folder, where "
                                         r"the run's state is to be saved: move it out"):
        BrainJEPAPretrainer(**params, callbacks=[_Steps()]).fit(X)
    assert _Steps.done == []
    state_path.rmdir()
    BrainJEPAPretrainer(**params, callbacks=[_Steps()]).fit(X)
    assert _Steps.done == [1, 2, 3] and state_path.is_file()  # 12 windows, 4 a step


@pytest.mark.parametrize("content, problem", [
    ("1,2,3\n4,x,6\n", "not a numeric gradient table"),
    ("1,2,3\n4,5\n", "not a numeric gradient table"),
])
@pytest.mark.parametrize("suffix", [".csv", ".txt"])
def test_load_gradients_names_the_text_file(tmp_path, content, problem, suffix):
    path = tmp_path / f"g{suffix}"
    path.write_text(content if suffix == ".csv" else content.replace(",", " "))
    with pytest.raises(ValueError, match=rf"g\{suffix} is {problem}"):
        load_gradients(path)


def test_a_folder_or_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "g.csv").mkdir()
    with pytest.raises(ValueError, match=r"g\.csv is a folder, not a gradient file"):
        load_gradients(tmp_path / "g.csv")
    (tmp_path / "m.pt").mkdir()
    with pytest.raises(ValueError, match=r"m\.pt is a folder, not a brainjepa_sk checkpoint"):
        load_checkpoint(tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"m\.pt is a folder, not a research checkpoint"):
        load_research_checkpoint(tmp_path / "m.pt", gradients=np.zeros((8, 3)))
    (tmp_path / "notes.txt").write_text("a file where a folder is asked for")
    model = BrainJEPAPretrainer(
        gradients=np.random.default_rng(0).standard_normal((8, 3)),
        model_size=dict(embed_dim=8, depth=1, num_heads=2), patch_size=2, n_frames=8,
        predictor_depth=1, n_epochs=1, batch_size=4, device="cpu", verbose=0, random_state=0,
    ).fit(np.random.default_rng(0).standard_normal((4, 16, 8)))
    with pytest.raises(OSError, match=r"could not save .*notes\.txt.model\.pt: cannot create "
                                      r"its folder"):
        model.save(tmp_path / "notes.txt" / "model.pt")


def test_load_gradients_names_a_damaged_npy(tmp_path):
    np.save(tmp_path / "g.npy", np.ones((8, 3)))
    raw = (tmp_path / "g.npy").read_bytes()
    (tmp_path / "g.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"g\.npy is not a readable \.npy"):
        load_gradients(tmp_path / "g.npy")
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"o\.npy is not a readable \.npy"):
        load_gradients(tmp_path / "o.npy")
    with open(tmp_path / "z.npy", "wb") as file:  # np.load reads it whatever its name
        np.savez(file, gradients=np.ones((8, 3)))
    with pytest.raises(ValueError, match=r"z\.npy is not a readable \.npy.*an \.npz archive"):
        load_gradients(tmp_path / "z.npy")
    (tmp_path / "z.npy").write_bytes((tmp_path / "z.npy").read_bytes()[:100])  # cut short
    with pytest.raises(ValueError, match=r"z\.npy is not a readable \.npy.*not a zip file"):
        load_gradients(tmp_path / "z.npy")


def test_a_gradient_text_file_with_a_byte_order_mark_keeps_its_first_region(tmp_path):
    """The mark made the first row a header, skipped: one region short, with no word why."""
    gradients = np.random.default_rng(2).standard_normal((8, 3))
    np.savetxt(tmp_path / "g.txt", gradients, encoding="utf-8-sig")
    np.testing.assert_allclose(load_gradients(tmp_path / "g.txt"), gradients, rtol=1e-15)


def test_wrong_gradient_rows_are_named_with_their_file(tmp_path):
    """A well-formed gradient file of the wrong shape is named, as a damaged one is (which of
    the atlas' files was given is the question to answer)."""
    path = tmp_path / "g.csv"
    np.savetxt(path, np.ones((5, 3)), delimiter=",")
    X = np.random.default_rng(0).standard_normal((4, 32, 8))
    with pytest.raises(ValueError, match=rf"the gradients \({re.escape(str(path))}\) have 5 "
                                         r"rows \(regions\) but X has 8 regions"):
        BrainJEPAPretrainer(gradients=path, n_frames=16, patch_size=4,
                            device="cpu", verbose=0).fit(X)
    with pytest.raises(ValueError, match=rf"reference \({re.escape(str(path))}\) has 5 rows but "
                                         "X has 8 regions"):
        GradientPositioner(n_components=2, sparsity=0.5, reference=path).fit(X)
    np.savetxt(path, np.ones((8, 1)), delimiter=",")
    with pytest.raises(ValueError, match=rf"reference \({re.escape(str(path))}\) has 1 columns, "
                                         "fewer than n_components=2"):
        GradientPositioner(n_components=2, sparsity=0.5, reference=path).fit(X)
    # given in memory, they are named as before
    with pytest.raises(ValueError, match=r"^the gradients have 5 rows"):
        BrainJEPAPretrainer(gradients=np.ones((5, 3)), n_frames=16, patch_size=4, device="cpu",
                            verbose=0).fit(X)


def test_weights_that_are_not_a_model_say_what_they_are(tmp_path):
    X = np.random.default_rng(0).standard_normal((4, 32, 8))
    BrainJEPAPretrainer(gradients=np.random.default_rng(1).standard_normal((8, 3)),
                        patch_size=4, n_frames=16, predictor_depth=1, n_epochs=1, batch_size=4,
                        model_size=dict(embed_dim=16, depth=1, num_heads=2), device="cpu",
                        verbose=0, random_state=0, checkpoint_dir=tmp_path / "run").fit(X)
    (state,) = (tmp_path / "run").glob("run-*.pt")
    with pytest.raises(ValueError, match=r"run-\w+\.pt is the saved state of a pretraining "
                                         r"run.*export_training_state"):
        BrainJEPAEmbedder(weights=state).fit(X)
    with pytest.raises(ValueError, match=r"run-\w+\.pt is the saved state of a pretraining "
                                         r"run.*export_training_state"):
        load_checkpoint(state)
    torch.save(_model().state_dict(), tmp_path / "bare.pt")  # a bare state dict
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    for name in ("bare", "tensor"):
        with pytest.raises(ValueError, match=rf"{name}\.pt is neither a brainjepa_sk checkpoint "
                                             "nor a research checkpoint"):
            BrainJEPAEmbedder(weights=tmp_path / f"{name}.pt").fit(X)
    with pytest.raises(ValueError, match="is a folder: pass the checkpoint file"):
        BrainJEPAEmbedder(weights=tmp_path / "run").fit(X)


def test_weights_that_are_a_state_dict_say_whose_and_how_to_save_a_model(tmp_path):
    from brainjepa_sk import BrainJEPAClassifier

    X = np.random.default_rng(0).standard_normal((4, 32, 8))
    net = BrainJEPAClassifier(_model(), max_epochs=1, batch_size=4, normalization=None,
                              verbose=0, random_state=0).fit(X, [0, 1, 0, 1])
    net.save_params(f_params=tmp_path / "params.pt")  # the module: its encoder and its head
    with pytest.raises(ValueError, match=r"params\.pt is neither .* it holds a fine-tuner's "
                                         r"parameters .* fine-tuner's save\(path\)"):
        BrainJEPAEmbedder(weights=tmp_path / "params.pt").fit(X)
    with pytest.raises(ValueError, match=r"params\.pt is not a brainjepa_sk checkpoint: it "
                                         r"holds a fine-tuner's parameters .* load_params"):
        load_checkpoint(tmp_path / "params.pt")
    torch.save(_model().state_dict(), tmp_path / "bare.pt")
    with pytest.raises(ValueError, match=r"bare\.pt is neither .* it holds a bare state_dict"):
        BrainJEPAEmbedder(weights=tmp_path / "bare.pt").fit(X)
    with pytest.raises(ValueError, match=r"bare\.pt is not a brainjepa_sk checkpoint: it holds "
                                         r"a bare state_dict"):
        load_checkpoint(tmp_path / "bare.pt")
    # the advice followed: the fine-tuned encoder loads
    net.save(tmp_path / "encoder.pt")
    BrainJEPAEmbedder(weights=tmp_path / "encoder.pt").fit(X)


def test_a_file_in_a_list_mixing_arrays_and_paths_is_named(tmp_path):
    from brainjepa_sk import GradientPositioner

    rng = np.random.default_rng(0)
    X = [rng.standard_normal((40, 8)) for _ in range(2)]
    bad = rng.standard_normal((40, 8))
    bad[3, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    np.save(tmp_path / "narrow.npy", rng.standard_normal((40, 7)))
    for name, problem in (("nan", "contains NaN"), ("narrow", "7 regions|7 features")):
        with pytest.raises(ValueError, match=rf"{name}\.npy: subject 2.*({problem})"):
            GradientPositioner(n_components=2).fit([*X, tmp_path / f"{name}.npy"])


@pytest.mark.parametrize("edit, problem", [
    (lambda payload: payload.__setitem__("preprocessing", [1, 2]),
     "is an inconsistent checkpoint: its preprocessing is a list"),
    (lambda payload: payload.__setitem__("metadata", [1]),
     "is an inconsistent checkpoint: its metadata is a list"),
    (lambda payload: payload.pop("state_dict"),
     r"is an incomplete checkpoint: it has no \['state_dict'\]"),
    (lambda payload: payload["config"].__setitem__("num_heads", 3),
     "is an incomplete or inconsistent checkpoint: num_heads=3 does not divide"),
    # a setting the model does not take (a TypeError from the constructor) is named too
    (lambda payload: payload["config"].__setitem__("n_layers", 3),
     r"holds model settings that this version of brainjepa_sk .* does not know: \['n_layers'\]"),
    # a weight left out would stay uninitialised memory: refused, not loaded partly
    (lambda payload: payload["state_dict"].pop("target_encoder.blocks.0.mlp.fc1.weight"),
     r"is an incomplete or inconsistent checkpoint: [\s\S]*target_encoder.blocks.0.mlp.fc1.weight"),
])
def test_consistent_checksums_over_inconsistent_contents_name_the_file(tmp_path, edit, problem):
    # as a file of another program, or of format 1 (no checksum), could hold them
    from brainjepa_sk.checkpoint import _checksum

    payload = _robust_checkpoint(tmp_path / "good.pt")
    edit(payload)
    payload["checksum"] = _checksum(payload)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=rf"bad\.pt {problem}"):
        load_checkpoint(tmp_path / "bad.pt")


def test_a_bad_file_of_a_glob_is_named_when_read_at_once(tmp_path):
    from brainjepa_sk.validation import validate_subjects

    rng = np.random.default_rng(0)
    bad = rng.standard_normal((20, 8))
    bad[4, 1] = np.nan
    np.save(tmp_path / "sub-00.npy", rng.standard_normal((20, 8)))
    np.save(tmp_path / "sub-01.npy", bad)
    with pytest.raises(ValueError, match=r"sub-01\.npy: subject 1\b.*NaN"):
        validate_subjects(str(tmp_path / "sub-*.npy"))  # lazy=False: every file read


def test_a_truncated_npy_file_of_format_version_2_is_called_truncated(tmp_path):
    """Version 2.0 (numpy's format for headers over 64 KiB) stores the header's length in 4
    bytes, not 2: the header's end is counted from after those 4."""
    good = tmp_path / "sub-0.npy"
    with open(good, "wb") as file:
        np.lib.format.write_array(file, np.ones((20, 4)), version=(2, 0))
    raw = good.read_bytes()
    header_end = 12 + int.from_bytes(raw[8:12], "little")
    cut = tmp_path / "sub-1.npy"
    cut.write_bytes(raw[: header_end - 1])
    with pytest.raises(ValueError, match=r"sub-1\.npy is not a readable \.npy.*truncated.*"
                                         rf"ends within its header \({header_end - 1} bytes "
                                         rf"of {header_end}\)"):
        load_gradients(cut)
    cut.write_bytes(raw[:-8])
    with pytest.raises(ValueError, match=r"sub-1\.npy.*truncated.*its header announces 640 "
                                         r"bytes of data, it holds 632"):
        load_gradients(cut)


@pytest.mark.parametrize("suffix", [".txt", ".1D"])
def test_a_two_gradient_text_file_with_a_byte_order_mark_keeps_its_first_region(tmp_path,
                                                                                 suffix):
    """With two columns, the mark glued to the first number leaves one cell of two a
    fraction: not more than half, so the first row had read as a header line."""
    gradients = np.random.default_rng(3).standard_normal((8, 2))
    np.savetxt(tmp_path / f"g{suffix}", gradients, encoding="utf-8-sig")
    np.testing.assert_allclose(load_gradients(tmp_path / f"g{suffix}"), gradients, rtol=1e-15)


def test_a_checkpoint_of_non_finite_weights_is_refused_naming_the_file(tmp_path, monkeypatch):
    """Saved and loaded without a word, it had given NaN embeddings at transform only, and a
    fine-tuning loss of NaN blamed on the learning rate."""
    from brainjepa_sk import BrainJEPAClassifier, checkpoint

    model = _model()
    with torch.no_grad():
        model.target_encoder.norm.weight[0] = float("nan")
    path = tmp_path / "diverged.pt"
    with pytest.raises(ValueError, match=r"model's target_encoder.norm.weight holds NaN or "
                                         r"infinite values .*nothing was written"):
        save_checkpoint(path, model)
    assert not path.exists()
    with monkeypatch.context() as patched:  # a file written anyway (by an older version, say)
        patched.setattr(checkpoint, "first_non_finite", lambda tensors: None)
        save_checkpoint(path, model)
    message = (rf"^{re.escape(str(path))}: its target_encoder.norm.weight holds NaN or "
               r"infinite values \(saved from a diverged model, or damaged\); use a checkpoint "
               r"saved before the model diverged \(.*export_training_state.*\), or pretrain "
               r"again with a lower lr$")
    with pytest.raises(ValueError, match=message):
        load_checkpoint(path)
    X = np.random.default_rng(0).standard_normal((4, 16, 8))
    with pytest.raises(ValueError, match=message):
        BrainJEPAEmbedder(weights=path, normalization=None, device="cpu").fit(X)
    with pytest.raises(ValueError, match=message):
        BrainJEPAClassifier(weights=path, normalization=None, max_epochs=1, verbose=0).fit(
            X, [0, 1, 0, 1])


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_a_legacy_torch_file_of_another_pickle_protocol_is_not_called_a_plain_pickle(
        tmp_path, protocol):
    """torch.save(..., _use_new_zipfile_serialization=False, pickle_protocol=3 or more) is
    a torch file (which the safe load may refuse), not one of pickle.dump's."""
    from brainjepa_sk.train.runtime import foreign_file_kind, load_file

    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False,
               pickle_protocol=protocol)
    assert foreign_file_kind(path) is None
    try:
        load_file(path)
    except ValueError as error:
        assert "Python pickle" not in str(error)


@pytest.mark.parametrize("length", [1, 2, 3])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_torch_file_cut_to_its_first_bytes_is_not_named_another_kind(tmp_path, legacy,
                                                                       length):
    """The first bytes of a torch file (a copy cut short at once) are no text, no pickle."""
    from brainjepa_sk.train.runtime import load_file

    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer, _use_new_zipfile_serialization=not legacy)
    path = tmp_path / "cut.pt"
    path.write_bytes(buffer.getvalue()[:length])
    with pytest.raises(ValueError, match=r"cut\.pt is not a torch file: it was not written by "
                                         r"torch\.save, or it is damaged"):
        load_file(path)


@pytest.mark.parametrize("name", ["model.safetensors", "model.pt"])
def test_a_safetensors_file_as_weights_or_gradients_is_named_with_how_to_convert_it(
        tmp_path, official_dir, name):
    """A safetensors file (by its bytes, whatever its name) was called not written by
    torch.save or damaged, or, named .safetensors, said to need the safetensors package; as
    gradients it was read as a text table ("can't decode byte")."""
    from _estimators import safetensors_bytes

    from brainjepa_sk.train.runtime import foreign_file_kind

    path = tmp_path / name
    path.write_bytes(safetensors_bytes({"gradients": torch.ones(24, 3)}))
    assert foreign_file_kind(path) == "a safetensors file"
    with pytest.raises(ValueError, match=re.escape(
            f"{path} is not a checkpoint: it is a safetensors file, not a file written by "
            "torch.save; brainjepa_sk reads torch.save files only (safetensors is none of its "
            "dependencies): convert it with torch.save(safetensors.torch.load_file(path), "
            "'converted.pt') and pass that file")):
        resolve_weights(path, gradients=official_dir / "gradient.csv")
    gradients = path.with_suffix(".safetensors")
    path.rename(gradients)
    with pytest.raises(ValueError, match=re.escape(
            f"{gradients} is a safetensors file, which brainjepa_sk does not read (safetensors "
            "is none of its dependencies): save its gradient tensor with torch.save("
            "safetensors.torch.load_file(path)[name], 'gradients.pt') and pass that file")):
        load_gradients(gradients)

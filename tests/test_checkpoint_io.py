"""Our own checkpoint format: config + weights + preprocessing, readable with weights_only."""

import enum
import warnings

import numpy as np
import pytest
import scipy.sparse
import torch

from brainjepa_sk.checkpoint import load_checkpoint, resolve_weights, save_checkpoint
from brainjepa_sk.gradients import load_gradients
from brainjepa_sk.nn import BrainEncoder, BrainJEPA
from brainjepa_sk.preprocessing import Preprocessor


def _model():
    torch.manual_seed(0)
    return BrainJEPA(torch.randn(10, 4), patch_size=4, embed_dim=16, depth=1, num_heads=2,
                     predictor_embed_dim=8, predictor_depth=1, loss="smooth_l1", n_patches=3)


def test_round_trip(tmp_path):
    model = _model()
    preprocessing = {"t_r": 0.735, "normalization": "robust", "median_": np.arange(10.0),
                     "window": "center", "n_frames": 12}
    path = tmp_path / "sub" / "model.pt"
    save_checkpoint(path, model, preprocessing=preprocessing,
                    metadata={"history": [1.0, 0.5], "window": {"n_frames": 12}})
    assert not list(path.parent.glob("*.tmp"))
    # The file is plain data: torch's safe loader reads it.
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "brainjepa_sk" and raw["config"] == model.config
    loaded = load_checkpoint(path)
    assert loaded.model.config == model.config
    assert not loaded.model.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    np.testing.assert_array_equal(loaded.preprocessing["median_"], np.arange(10.0))
    assert isinstance(loaded.preprocessing["median_"], np.ndarray)  # arrays come back as NumPy's
    assert loaded.preprocessing["window"] == "center"
    assert loaded.preprocessing["t_r"] == 0.735
    assert loaded.metadata == {"history": [1.0, 0.5], "window": {"n_frames": 12}}
    x = torch.randn(2, 12, 10)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.target_encoder(x), model.target_encoder(x))


def test_the_loaded_model_carries_its_own_copy_of_the_preprocessing(tmp_path):
    save_checkpoint(tmp_path / "m.pt", _model(), preprocessing={"median_": [0.0, 1.0]})
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.model.preprocessing == loaded.preprocessing
    loaded.preprocessing["median_"][0] = 99.0
    assert loaded.model.preprocessing == {"median_": [0.0, 1.0]}


def test_wrong_files(tmp_path, official_dir):
    with pytest.raises(ValueError, match="load_research_checkpoint"):
        load_checkpoint(official_dir / "checkpoint.pth.tar")
    with pytest.raises(TypeError, match="BrainJEPA"):
        save_checkpoint(tmp_path / "x.pt", torch.nn.Linear(2, 2))
    # a dictionary of another format, even with our sections, is not ours
    save_checkpoint(tmp_path / "m.pt", _model())
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["format"] = "another_library"
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt is not a brainjepa_sk checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


@pytest.mark.parametrize("gradients, message", [
    (None, r"^the gradients are None: give a gradient matrix"),
    ([[0.1, 0.2], [0.3]], r"^the gradient array has rows of different lengths: it must be a "
                          r"2-D \(n_regions, n_components\) matrix$"),
    (scipy.sparse.csr_matrix(np.eye(3)), r"^the gradient array is a sparse csr_matrix: pass "
                                         r"its dense values \(gradients.toarray\(\)\)$"),
])
def test_gradients_that_are_none_ragged_or_sparse_are_said_to_be_so(gradients, message):
    """They had been called "not numeric (dtype object)", or NumPy had spoken of an
    "inhomogeneous shape"."""
    with pytest.raises(ValueError, match=message):
        load_gradients(gradients)


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
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_gradients(np.array([[0.5, np.inf], [0.1, 0.2]]))
    overflowed = tmp_path / "overflowed.csv"
    overflowed.write_text("0.5,1e400\n0.1,0.2\n")
    with pytest.raises(ValueError, match="overflowed.csv holds NaN or infinite"):
        load_gradients(overflowed)
    with pytest.raises(FileNotFoundError):
        load_gradients(tmp_path / "missing.csv")
    # named as missing whatever the format (numpy's own error was read as a damaged .npy)
    for name in ("missing.npy", "missing.txt"):
        with pytest.raises(FileNotFoundError, match=rf"gradient file not found: .*{name}"):
            load_gradients(tmp_path / name)


@pytest.mark.parametrize("header", ["", "g0 g1 g2", "\n\ng0 g1 g2", "\n", "1 2 g3", "0 1 2"],
                         ids=["none", "names", "names after blank lines", "blank lines",
                              "names, the first ones numbers",
                              "integer names, as pandas' to_csv(sep=' ') writes"])
def test_whitespace_gradient_files_with_or_without_a_header_keep_every_row(tmp_path, header):
    gradients = np.random.default_rng(0).standard_normal((5, 3))
    path = tmp_path / "g.txt"
    np.savetxt(path, gradients, header=header, comments="")
    np.testing.assert_allclose(load_gradients(path), gradients)
    if header.strip():  # as np.savetxt writes a header by default: a "# " comment line
        np.savetxt(path, gradients, header=header)
        np.testing.assert_allclose(load_gradients(path), gradients)


def test_a_whitespace_gradient_file_with_a_table_index_is_refused(tmp_path):
    """pandas' to_csv(sep=" ") writes its index unless index=False: a column more than the
    header names, which had been loaded as a gradient (a .csv table is refused so too)."""
    import pandas as pd

    gradients = np.random.default_rng(0).standard_normal((5, 3))
    path = tmp_path / "g.txt"
    pd.DataFrame(gradients).to_csv(path, sep=" ")
    with pytest.raises(ValueError, match=r"g\.txt is not a numeric gradient table .*its header "
                                         r"line names 3 columns but its rows have 4 \(a table "
                                         r"index"):
        load_gradients(path)
    pd.DataFrame(gradients).to_csv(path, sep=" ", index=False)
    np.testing.assert_allclose(load_gradients(path), gradients)
    # names with spaces, quoted by pandas or not, are fewer columns than words
    named = pd.DataFrame(gradients, columns=["Gradient 1", "Gradient 2", "Gradient 3"])
    named.to_csv(path, sep=" ", index=False)
    np.testing.assert_allclose(load_gradients(path), gradients)
    named.to_csv(path, sep=" ")
    with pytest.raises(ValueError, match=r"names 3 columns but its rows have 4 \(a table"):
        load_gradients(path)
    np.savetxt(path, gradients, header="Gradient 1  Gradient 2  Gradient 3", comments="")
    np.testing.assert_allclose(load_gradients(path), gradients)
    # a comment line below the names is no row
    rows = "\n".join(" ".join(map(str, row)) for row in gradients)
    path.write_text("g0 g1 g2\n# note\n" + rows)
    np.testing.assert_allclose(load_gradients(path), gradients)
    path.write_text("# made by hand\ng0 g1 g2\n" + rows)  # names below a comment
    np.testing.assert_allclose(load_gradients(path), gradients)


def test_a_whitespace_gradient_file_of_integers_is_all_data(tmp_path):
    """Integers above integers are data (a header of integers stands above fractions)."""
    path = tmp_path / "g.txt"
    path.write_text("0 1\n2 3\n4 5\n")
    np.testing.assert_array_equal(load_gradients(path), [[0, 1], [2, 3], [4, 5]])


@pytest.mark.parametrize("suffix", [".NPY", ".Npy", ".CSV", ".TSV"])
def test_gradient_file_suffixes_are_read_whatever_their_case(tmp_path, suffix):
    """A .NPY file is read as .npy (not parsed as text), a .CSV one as comma-separated."""
    gradients = np.random.default_rng(0).standard_normal((6, 3))
    path = tmp_path / f"g{suffix}"
    if suffix.lower() == ".npy":
        with open(path, "wb") as file:  # np.save(path) would append ".npy"
            np.save(file, gradients)
    else:
        np.savetxt(path, gradients, delimiter="," if suffix.lower() == ".csv" else "\t")
    np.testing.assert_allclose(load_gradients(path), gradients)


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".npy"])
def test_a_single_gradient_is_one_column(tmp_path, suffix):
    gradient = np.random.default_rng(0).standard_normal((5, 1))
    path = tmp_path / f"g{suffix}"
    if suffix == ".npy":
        np.save(path, gradient)
    else:
        np.savetxt(path, gradient)
    np.testing.assert_allclose(load_gradients(path), gradient)


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_single_gradient_rising_by_a_constant_step_is_no_index(tmp_path, suffix):
    """An index column is beside the data: a one-column table has none. A one-component
    gradient that is a ramp (the regions in their order) had been refused as a table index,
    with the advice to remove its only column."""
    gradient = np.linspace(-1, 1, 6)[:, None]
    path = tmp_path / f"g{suffix}"
    np.savetxt(path, gradient, header="g0", comments="")
    np.testing.assert_allclose(load_gradients(path), gradient)


def test_gradient_arrays_load_as_float64_and_must_not_be_empty():
    loaded = load_gradients(np.arange(6).reshape(3, 2))
    assert loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, np.arange(6).reshape(3, 2))
    with pytest.raises(ValueError, match=r"non-empty 2-D.*\(0, 3\)"):
        load_gradients(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"non-empty 2-D.*\(2, 3, 4\)"):
        load_gradients(np.zeros((2, 3, 4)))
    # booleans and Python objects are no coordinates, even where float() would take them
    for array in (np.ones((3, 2), dtype=bool), np.ones((3, 2), dtype=object)):
        with pytest.raises(ValueError, match=rf"not numeric \(dtype {array.dtype}\)"):
            load_gradients(array)
    # complex values were cast to their real parts with only numpy's ComplexWarning
    with pytest.raises(ValueError, match=r"complex values \(dtype complex128\)"):
        load_gradients(np.array([[1 + 2j, 3], [4, 5j]]))


@pytest.mark.parametrize("separator, suffix", [(",", ".csv"), ("\t", ".tsv")])
def test_gradient_tables_written_by_pandas(tmp_path, separator, suffix):
    import pandas as pd

    gradients = np.random.default_rng(0).standard_normal((12, 3))
    path = tmp_path / f"g{suffix}"
    # pandas' default: integer column names (a header line), and no index written
    pd.DataFrame(gradients).to_csv(path, sep=separator, index=False)
    np.testing.assert_allclose(load_gradients(path), gradients)
    # with its index: refused, rather than read as a first gradient counting the rows
    pd.DataFrame(gradients).to_csv(path, sep=separator)
    with pytest.raises(ValueError, match=rf"{path.name}.*first column has no name.*index"):
        load_gradients(path)


def _same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_resolve_weights_copies_a_module_and_reads_its_window():
    model = _model()
    resolved = resolve_weights(model)
    assert resolved.encoder is not model.target_encoder
    assert _same_weights(resolved.encoder, model.target_encoder)
    assert (resolved.n_frames, resolved.model_t_r, resolved.preprocessing) == (12, None, None)
    encoder_only = resolve_weights(model.encoder)
    assert encoder_only.encoder is not model.encoder and encoder_only.n_frames is None
    with pytest.raises(TypeError, match="BrainJEPA or BrainEncoder"):
        resolve_weights(torch.nn.Linear(2, 2))


def test_resolve_weights_reads_what_an_encoder_carries_its_window_included():
    """An encoder carrying a preprocessing (a fine-tuner's ``module_.encoder``) gives it, its
    TR, region names and window length, as a BrainJEPA does; a bare encoder none."""
    encoder = _model().target_encoder
    assert encoder.preprocessing is None and encoder.region_names is None
    encoder.preprocessing = {"n_frames": 8, "target_t_r": 0.8, "normalization": "robust"}
    encoder.region_names = ["a", "b"]
    resolved = resolve_weights(encoder)
    assert resolved.preprocessing == encoder.preprocessing
    assert resolved.preprocessing is not encoder.preprocessing
    assert (resolved.n_frames, resolved.model_t_r, resolved.region_names) == (8, 0.8, ["a", "b"])


def test_resolve_weights_reads_our_checkpoint_with_its_preprocessing(tmp_path):
    model = _model()
    preprocessing = {"target_t_r": 0.8, "normalization": "robust", "n_frames": 12}
    save_checkpoint(tmp_path / "m.pt", model, preprocessing=preprocessing)
    resolved = resolve_weights(tmp_path / "m.pt")
    assert _same_weights(resolved.encoder, model.target_encoder)
    assert resolved.preprocessing == preprocessing
    assert (resolved.model_t_r, resolved.n_frames) == (0.8, 12)


def test_resolve_weights_needs_gradients_for_a_research_checkpoint(official_dir, research_model):
    path = official_dir / "checkpoint.pth.tar"
    with pytest.raises(ValueError, match="research checkpoint: pass the gradient matrix"):
        resolve_weights(path)
    resolved = resolve_weights(path, gradients=official_dir / "gradient.csv", num_heads=4)
    assert _same_weights(resolved.encoder, research_model.target_encoder)
    # the head count given is the one used (it is not in the weights)
    assert {block.attn.num_heads for block in resolved.encoder.blocks} == {4}
    config = research_model.config
    assert resolved.n_frames == config["n_patches"] * config["patch_size"]
    assert resolved.model_t_r is None and resolved.preprocessing is None
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        resolve_weights(official_dir / "missing.pt")
    with pytest.raises(TypeError, match="checkpoint path or a torch module"):
        resolve_weights(3)


def test_a_misspelt_model_name_is_told_the_one_name_there_is(tmp_path, monkeypatch):
    """``weights="ukbiobnak"`` had said only that no such file exists, as if a path was meant."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"weights file not found: ukbiobnak \(the one "
                                                r"model given by name is 'ukbiobank'"):
        resolve_weights("ukbiobnak")
    # a path (a folder or a file name's suffix) is a missing file only
    for missing in ("model.pt", str(tmp_path / "run" / "model")):
        with pytest.raises(FileNotFoundError, match=r"weights file not found: [^(]*$"):
            resolve_weights(missing)


def test_every_constructor_setting_survives_a_round_trip(tmp_path):
    torch.manual_seed(1)
    model = BrainJEPA(torch.randn(10, 4), patch_size=4, embed_dim=16, depth=1, num_heads=2,
                      predictor_embed_dim=8, predictor_depth=1, qkv_bias=False, mlp_ratio=2.0,
                      n_patches=3)
    save_checkpoint(tmp_path / "m.pt", model)
    loaded = load_checkpoint(tmp_path / "m.pt").model
    assert loaded.config == model.config
    assert loaded.encoder.blocks[0].attn.qkv.bias is None
    assert loaded.encoder.blocks[0].mlp.fc1.out_features == 32


def test_gradients_and_heads_given_with_weights_that_carry_their_own_are_reported(tmp_path):
    import warnings

    from _estimators import N_REGIONS, tiny_module

    model = tiny_module()
    with pytest.warns(UserWarning, match="gradients and num_heads are ignored: a module"):
        resolve_weights(model, gradients=np.zeros((N_REGIONS, 3)), num_heads=2)
    save_checkpoint(tmp_path / "m.pt", model)
    with pytest.warns(UserWarning, match="num_heads is ignored: a brainjepa_sk checkpoint"):
        resolve_weights(tmp_path / "m.pt", num_heads=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_weights(tmp_path / "m.pt")


def test_loading_weights_leaves_torchs_global_generator_alone(tmp_path, official_dir):
    from brainjepa_sk import BrainJEPAEmbedder
    from brainjepa_sk.checkpoint import load_research_checkpoint

    path = tmp_path / "model.pt"
    save_checkpoint(path, _model(), preprocessing={"normalization": "global_zscore",
                                                   "n_frames": 12, "window": "center"})
    X = np.random.default_rng(0).standard_normal((2, 20, 10))
    before = torch.get_rng_state()
    load_checkpoint(path)
    load_research_checkpoint(official_dir / "checkpoint.pth.tar",
                             official_dir / "gradient.csv", num_heads=4)
    BrainJEPAEmbedder(path, device="cpu").fit(X).transform(X)
    assert torch.equal(torch.get_rng_state(), before)


def test_loading_weights_does_not_initialise_what_it_loads(tmp_path, official_dir,
                                                           monkeypatch):
    """The random initialisation that loaded weights replace is skipped (seconds for the
    base model: it runs on the meta device, where it costs nothing); the loaded models equal
    the saved ones."""
    from brainjepa_sk.checkpoint import load_research_checkpoint

    model = _model()
    path = tmp_path / "model.pt"
    save_checkpoint(path, model)
    reference = load_research_checkpoint(official_dir / "checkpoint.pth.tar",
                                         official_dir / "gradient.csv", num_heads=4)

    initialised = []

    def recording(initialiser):
        def initialise(tensor, *args, **kwargs):
            initialised.append(tensor.device.type)
            return initialiser(tensor, *args, **kwargs)
        return initialise

    for name in ("trunc_normal_", "xavier_uniform_", "kaiming_uniform_", "zeros_", "ones_",
                 "constant_", "normal_", "uniform_"):
        monkeypatch.setattr(torch.nn.init, name, recording(getattr(torch.nn.init, name)))
    research = load_research_checkpoint(official_dir / "checkpoint.pth.tar",
                                        official_dir / "gradient.csv", num_heads=4)
    for loaded, expected in [(load_checkpoint(path).model, model), (research, reference)]:
        state, expected_state = loaded.state_dict(), expected.state_dict()
        assert state.keys() == expected_state.keys()
        for name, value in state.items():
            assert torch.equal(value, expected_state[name]), name
    assert initialised and set(initialised) == {"meta"}


def test_arrays_come_back_as_numpy_arrays_inside_lists_too(tmp_path):
    save_checkpoint(tmp_path / "m.pt", _model(), metadata={"folds": [np.arange(3), [np.ones(2)]]})
    folds = load_checkpoint(tmp_path / "m.pt").metadata["folds"]
    assert isinstance(folds[0], np.ndarray) and isinstance(folds[1][0], np.ndarray)
    np.testing.assert_array_equal(folds[0], np.arange(3))


def _resave_edited(source, path, edit):
    """Save ``source``'s payload to ``path`` after ``edit(payload)``, with its checksum
    recomputed: a file another version could have written."""
    from brainjepa_sk.checkpoint import _checksum

    payload = torch.load(source, weights_only=True)
    edit(payload)
    payload["checksum"] = _checksum(payload)
    torch.save(payload, path)


def test_a_checkpoint_of_a_newer_format_is_refused(tmp_path):
    from brainjepa_sk.checkpoint import FORMAT_VERSION

    save_checkpoint(tmp_path / "m.pt", _model())
    _resave_edited(tmp_path / "m.pt", tmp_path / "newer.pt",
                   lambda payload: payload.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match=rf"newer\.pt was written by a newer brainjepa_sk "
                                         rf"\(format {FORMAT_VERSION + 1}, this version .* reads "
                                         rf"up to {FORMAT_VERSION}\): upgrade brainjepa_sk"):
        load_checkpoint(tmp_path / "newer.pt")


def test_an_encoder_saved_alone_comes_back_as_an_encoder_with_what_it_carries(tmp_path):
    """A ``BrainEncoder`` (a fine-tuned one) saves alone, with the preprocessing and region
    names it carries, as format 4 (older readers ask for an upgrade); whole models stay 3."""
    model = _model()
    encoder = model.encoder.eval()
    encoder.preprocessing = {"n_frames": 8, "target_t_r": 0.8, "normalization": "robust",
                             "median_": np.arange(10.0), "iqr_": np.ones(10), "n_regions_": 10}
    encoder.region_names = [f"r{i}" for i in range(10)]
    save_checkpoint(tmp_path / "encoder.pt", encoder)
    save_checkpoint(tmp_path / "model.pt", model)
    payload = torch.load(tmp_path / "encoder.pt", weights_only=True)
    assert (payload["format_version"], payload["contents"]) == (4, "encoder")
    whole = torch.load(tmp_path / "model.pt", weights_only=True)
    assert whole["format_version"] == 3 and "contents" not in whole
    loaded = load_checkpoint(tmp_path / "encoder.pt")
    assert type(loaded.model) is BrainEncoder and not loaded.model.training
    assert _same_weights(loaded.model, encoder)
    x = torch.randn(2, 8, 10)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), encoder(x))
    np.testing.assert_array_equal(loaded.model.preprocessing["median_"], np.arange(10.0))
    assert loaded.model.region_names == loaded.metadata["region_names"] == encoder.region_names
    resolved = resolve_weights(tmp_path / "encoder.pt")
    assert _same_weights(resolved.encoder, encoder)
    assert (resolved.n_frames, resolved.model_t_r) == (8, 0.8)
    assert resolved.region_names == encoder.region_names
    _resave_edited(tmp_path / "encoder.pt", tmp_path / "other.pt",
                   lambda payload: payload.update(contents="predictor"))
    with pytest.raises(ValueError, match=r"other\.pt is an inconsistent checkpoint: it holds "
                                         r"'predictor', neither a whole model nor an encoder"):
        load_checkpoint(tmp_path / "other.pt")


def _fine_tuned_encoder(trained_n_patches):
    """``_model()``'s encoder as a fine-tuner leaves it: its window (8 frames, 2 patches of 4)
    in its preprocessing, the longest trained on recorded apart."""
    encoder = _model().encoder.eval()
    encoder.preprocessing = {"n_frames": 8, "normalization": None}
    encoder.trained_n_patches = trained_n_patches
    return encoder


def test_an_encoder_file_keeps_the_longest_window_its_positions_were_trained_on(tmp_path):
    """The longest window of an encoder's training (its pretraining's, longer than its
    fine-tuning windows) is saved apart from its preprocessing and read back: embedding
    windows up to it is silent."""
    from brainjepa_sk import BrainJEPAEmbedder

    save_checkpoint(tmp_path / "encoder.pt", _fine_tuned_encoder(3))
    payload = torch.load(tmp_path / "encoder.pt", weights_only=True)
    assert payload["format_version"] == 4 and payload["metadata"]["trained_n_patches"] == 3
    assert load_checkpoint(tmp_path / "encoder.pt").model.trained_n_patches == 3
    resolved = resolve_weights(tmp_path / "encoder.pt")
    assert (resolved.n_frames, resolved.trained_frames, resolved.fine_tuned) == (8, 12, True)
    X = np.random.default_rng(0).standard_normal((2, 24, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BrainJEPAEmbedder(weights=tmp_path / "encoder.pt", n_frames=12).fit(X)
    # whole models keep their window in their configuration, and their format
    save_checkpoint(tmp_path / "model.pt", _model(), metadata={"trained_n_patches": 9})
    assert torch.load(tmp_path / "model.pt", weights_only=True)["format_version"] == 3
    assert resolve_weights(tmp_path / "model.pt").trained_frames == 12


def test_an_encoder_file_of_an_earlier_version_loads_not_knowing_its_pretraining_windows(
        tmp_path):
    """A file that does not record the longest window (written before it was) loads as
    before, and windows past its fine-tuning windows are warned of without claiming that
    its pretraining did not see them."""
    from brainjepa_sk import BrainJEPAEmbedder

    save_checkpoint(tmp_path / "encoder.pt", _fine_tuned_encoder(None))
    assert "trained_n_patches" not in torch.load(tmp_path / "encoder.pt",
                                                 weights_only=True)["metadata"]
    X = np.random.default_rng(0).standard_normal((2, 24, 10))
    with pytest.warns(UserWarning) as caught:
        BrainJEPAEmbedder(weights=tmp_path / "encoder.pt", n_frames=12).fit(X)
    assert [str(warning.message) for warning in caught] == [
        "n_frames=12 is longer than the windows the model was fine-tuned on (8 frames; its "
        "weights do not record the windows of their pretraining, which may have been "
        "longer): the frames past the first 8 get time positions it was not fine-tuned on, "
        "which its pretraining may not have seen either. To cover longer scans with the "
        "positions it was fine-tuned on, keep n_frames=8 (n_frames='auto') with "
        "window='sliding'"]
    assert load_checkpoint(tmp_path / "encoder.pt").model.trained_n_patches is None


def test_an_encoder_file_keeps_that_its_fine_tuner_kept_it_frozen(tmp_path):
    """A linear probe's encoder (frozen) is recorded so, and read back; a fine-tuned one's
    file, as those written before it was recorded, lacks the key and loads as not frozen."""
    probed = _fine_tuned_encoder(3)
    probed.frozen_by_fine_tuner = True
    save_checkpoint(tmp_path / "probed.pt", probed)
    assert torch.load(tmp_path / "probed.pt",
                      weights_only=True)["metadata"]["frozen_by_fine_tuner"] is True
    assert load_checkpoint(tmp_path / "probed.pt").model.frozen_by_fine_tuner is True
    resolved = resolve_weights(tmp_path / "probed.pt")
    assert (resolved.fine_tuned, resolved.frozen_by_fine_tuner) == (True, True)
    save_checkpoint(tmp_path / "tuned.pt", _fine_tuned_encoder(3))
    assert "frozen_by_fine_tuner" not in torch.load(tmp_path / "tuned.pt",
                                                    weights_only=True)["metadata"]
    assert load_checkpoint(tmp_path / "tuned.pt").model.frozen_by_fine_tuner is False
    assert not resolve_weights(tmp_path / "tuned.pt").frozen_by_fine_tuner


@pytest.mark.parametrize("field, value, told", [
    *[("trained_n_patches", value, "not a positive whole number of time patches")
      for value in (0, 2.5, True, "3")],
    *[("frozen_by_fine_tuner", value, "not True or False") for value in (1, "yes")]])
def test_an_encoders_record_of_another_kind_is_refused(tmp_path, field, value, told):
    """A record of the encoder's trained window that is no count, or of its being frozen
    that is no bool: refused on saving (nothing written) and, in a file edited so, on
    loading."""
    encoder = _fine_tuned_encoder(3)
    setattr(encoder, field, value)
    with pytest.raises(ValueError, match=rf"^model's {field} is .*, {told}; nothing was "
                                         r"written$"):
        save_checkpoint(tmp_path / "bad.pt", encoder)
    assert not (tmp_path / "bad.pt").exists()
    save_checkpoint(tmp_path / "encoder.pt", _fine_tuned_encoder(3))
    _resave_edited(tmp_path / "encoder.pt", tmp_path / "edited.pt",
                   lambda payload: payload["metadata"].update({field: value}))
    with pytest.raises(ValueError, match=rf"edited\.pt is an inconsistent checkpoint: its "
                                         rf"metadata's {field} is .*, {told}"):
        load_checkpoint(tmp_path / "edited.pt")


@pytest.mark.parametrize(("embed_dim", "mlp_ratio"), [(28, 2.2), (44, 0.7), (16, 2.5)])
def test_an_encoder_saved_alone_loads_whatever_its_mlp_width(tmp_path, embed_dim, mlp_ratio):
    """The MLP width read back from the layers rebuilds the same blocks: 28 * (61 / 28) is
    60.99..., which the blocks' int() cut to 60 (a file that saved and never loaded)."""
    torch.manual_seed(0)
    encoder = BrainEncoder(torch.randn(10, 4), patch_size=4, embed_dim=embed_dim, depth=2,
                           num_heads=4, mlp_ratio=mlp_ratio).eval()
    save_checkpoint(tmp_path / "encoder.pt", encoder)
    loaded = load_checkpoint(tmp_path / "encoder.pt").model
    assert loaded.blocks[0].mlp.fc1.out_features == int(embed_dim * mlp_ratio)
    assert _same_weights(loaded, encoder)


def test_a_damaged_file_of_an_encoder_alone_is_refused(tmp_path):
    save_checkpoint(tmp_path / "encoder.pt", _model().target_encoder)
    payload = torch.load(tmp_path / "encoder.pt", weights_only=True)
    payload["state_dict"]["norm.weight"] += 1  # the checksum left as it was
    torch.save(payload, tmp_path / "damaged.pt")
    with pytest.raises(ValueError, match="damaged"):
        load_checkpoint(tmp_path / "damaged.pt")


@pytest.mark.parametrize("load", [load_checkpoint, resolve_weights])
def test_model_settings_of_another_version_are_named_with_the_file(tmp_path, load):
    """A configuration key this version's model does not take (renamed or added by another
    version) is named with the file, not as BrainJEPA.__init__'s TypeError."""
    def rename_width(payload):
        payload["config"]["embed_width"] = payload["config"].pop("embed_dim")

    save_checkpoint(tmp_path / "m.pt", _model())
    _resave_edited(tmp_path / "m.pt", tmp_path / "other version.pt", rename_width)
    with pytest.raises(ValueError, match=r"other version\.pt holds model settings that this "
                                         r"version of brainjepa_sk .* does not know: "
                                         r"\['embed_width'\].*load it with that version"):
        load(tmp_path / "other version.pt")


@pytest.mark.parametrize("load", [load_checkpoint, resolve_weights])
def test_a_configuration_lacking_a_setting_is_named_not_given_the_default(tmp_path, load):
    """The weights have the same shapes for any num_heads: a file lacking it had loaded with
    the default 12 heads, giving other embeddings without a word. Settings a wrong default of
    which the weights show, or that act on training only, may be absent (a pretraining
    run's state records no mlp_ratio)."""
    # 24 wide: 12 heads divide it too, so nothing but the configuration tells them apart
    model = BrainJEPA(torch.randn(10, 4), patch_size=4, embed_dim=24, depth=1, num_heads=2,
                      predictor_embed_dim=8, predictor_depth=1)
    def drop(*keys):
        return lambda payload: [payload["config"].pop(key) for key in keys]

    save_checkpoint(tmp_path / "m.pt", model)
    optional = ("patch_embed_init", "mlp_ratio", "qkv_bias", "drop_path_rate")
    _resave_edited(tmp_path / "m.pt", tmp_path / "older.pt", drop(*optional))
    assert _same_weights(load_checkpoint(tmp_path / "older.pt").model, model)
    _resave_edited(tmp_path / "older.pt", tmp_path / "edited.pt", drop("num_heads"))
    with pytest.raises(ValueError, match=r"edited\.pt: its model configuration lacks "
                                         r"\['num_heads'\].*Add it"):
        load(tmp_path / "edited.pt")


def test_map_location_is_passed_to_torch_load(tmp_path):
    model = _model()
    save_checkpoint(tmp_path / "m.pt", model)
    locations = []

    def where(storage, location):  # torch.load's callable form
        locations.append(location)
        return storage

    loaded = load_checkpoint(tmp_path / "m.pt", map_location=where)
    assert locations and set(locations) == {"cpu"}
    assert _same_weights(loaded.model, model)


@pytest.mark.parametrize("map_location, error, message", [
    (3, TypeError, r"^map_location must be a device .*, a dict or a function, as torch.load "
                   r"takes it; got 3$"),
    ("gpu9", ValueError, r"^map_location='gpu9' is not a device torch knows"),
])
def test_a_map_location_torch_cannot_take_is_refused_naming_it(tmp_path, map_location, error,
                                                                message):
    """torch failed with "'int' object is not callable", and an unknown device was taken for
    a damaged file ("m.pt could not be read as a brainjepa_sk checkpoint: don't know how to
    restore data location")."""
    save_checkpoint(tmp_path / "m.pt", _model())
    with pytest.raises(error, match=message):
        load_checkpoint(tmp_path / "m.pt", map_location=map_location)
    for location in ("cpu", torch.device("cpu"), {"cpu": "cpu"}, None):  # torch.load's kinds
        load_checkpoint(tmp_path / "m.pt", map_location=location)


def test_resolve_weights_gives_a_copy_of_a_modules_preprocessing():
    """Like the encoder, the preprocessing a module carries is copied: changing the resolved
    one leaves the caller's module as it was."""
    model = _model()
    model.preprocessing = {"target_t_r": 0.8, "window": {"n_frames": 12}}
    resolved = resolve_weights(model)
    assert resolved.preprocessing == model.preprocessing and resolved.model_t_r == 0.8
    resolved.preprocessing["window"]["n_frames"] = 99
    assert model.preprocessing == {"target_t_r": 0.8, "window": {"n_frames": 12}}


def test_resolve_weights_names_the_section_a_research_checkpoint_lacks(official_dir, tmp_path):
    """A file with some of the research sections is read as a research checkpoint that lacks
    the one the estimators read, not as a file of unknown kind (one without the predictor
    loads: see test_research_checkpoint)."""
    checkpoint = torch.load(official_dir / "checkpoint.pth.tar", weights_only=True)
    del checkpoint["target_encoder"]
    torch.save(checkpoint, tmp_path / "partial.pth.tar")
    with pytest.raises(ValueError, match=r"partial\.pth\.tar is a research checkpoint without "
                                         r"its 'target_encoder' section"):
        resolve_weights(tmp_path / "partial.pth.tar", gradients=official_dir / "gradient.csv",
                        num_heads=4)


def test_the_research_loader_names_the_loader_of_our_files(tmp_path):
    """Our checkpoint, or a pretraining run's state, given to load_research_checkpoint: the
    error says which file it is and what loads it, not only which sections it lacks."""
    from brainjepa_sk.checkpoint import load_research_checkpoint

    save_checkpoint(tmp_path / "m.pt", _model())
    with pytest.raises(ValueError, match=r"m\.pt is a brainjepa_sk checkpoint, not one of the "
                                         r"research code's: load it with load_checkpoint"):
        load_research_checkpoint(tmp_path / "m.pt", np.ones((10, 4)))
    torch.save({"key": "0123", "loop": {"step": 3}}, tmp_path / "run-0123.pt")
    with pytest.raises(ValueError, match=r"run-0123\.pt is the saved state of a pretraining "
                                         r"run .*export_training_state"):
        load_research_checkpoint(tmp_path / "run-0123.pt", np.ones((10, 4)))


def test_keys_tuples_and_tensors_in_metadata_come_back_as_plain_values(tmp_path):
    """NumPy's string keys become plain strings (a safe load would refuse them), tuples lists
    and tensors NumPy arrays: the file loads back. (Keys that are not strings are refused:
    test_saving's test_a_key_that_is_not_a_string_is_refused_naming_it.)"""
    save_checkpoint(tmp_path / "m.pt", _model(), metadata={
        "scores": {np.str_("roi0"): 1.0, "3": "x"}, "shape": (3, 4),
        "weights": torch.arange(3.0)})
    metadata = load_checkpoint(tmp_path / "m.pt").metadata
    assert metadata["scores"] == {"roi0": 1.0, "3": "x"}
    assert {type(key) for key in metadata["scores"]} == {str}
    assert metadata["shape"] == [3, 4]
    assert isinstance(metadata["weights"], np.ndarray)
    np.testing.assert_array_equal(metadata["weights"], [0.0, 1.0, 2.0])


class Site(str, enum.Enum):
    A = "site-a"


class Fold(enum.IntEnum):
    FIRST = 1


class Rate(float, enum.Enum):
    HALF = 0.5


def test_enum_members_in_metadata_are_stored_as_their_values(tmp_path):
    """A (str, Enum) key came back as its name ("Site.A", which str() gives), and an enum
    value (of str, int or float) was pickled as the enum, so that the safe load refused the
    whole file: both are stored as their plain values."""
    save_checkpoint(tmp_path / "m.pt", _model(), metadata={
        "scores": {Site.A: 1.0}, "site": Site.A, "fold": Fold.FIRST, "rates": [Rate.HALF]})
    metadata = load_checkpoint(tmp_path / "m.pt").metadata
    assert metadata["scores"] == {"site-a": 1.0}
    assert (metadata["site"], metadata["fold"], metadata["rates"]) == ("site-a", 1, [0.5])
    assert [type(metadata[key]) for key in ("site", "fold")] == [str, int]
    assert type(next(iter(metadata["scores"]))) is str and type(metadata["rates"][0]) is float


def test_a_format_1_checkpoint_without_a_checksum_still_loads(tmp_path):
    model = _model()
    save_checkpoint(tmp_path / "m.pt", model, preprocessing={"t_r": 0.8})
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    del payload["checksum"]
    payload["format_version"] = 1
    torch.save(payload, tmp_path / "v1.pt")
    loaded = load_checkpoint(tmp_path / "v1.pt")
    assert loaded.preprocessing == {"t_r": 0.8}
    assert _same_weights(loaded.model, model)


def test_a_model_saved_without_preprocessing_carries_none(tmp_path):
    """As a module built directly: ``preprocessing`` is None when there is none to apply."""
    save_checkpoint(tmp_path / "m.pt", _model())
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.preprocessing == {} and loaded.model.preprocessing is None
    assert loaded.model.region_names is None


def test_a_loaded_model_saved_again_keeps_its_preprocessing_and_region_names(tmp_path):
    """``save_checkpoint(path, loaded.model)`` used to write a file without the preprocessing
    and region names the module carried: the embedders given the file skipped both, while
    those given the module applied them."""
    names = [f"region {i}" for i in range(10)]
    save_checkpoint(tmp_path / "a.pt", _model(), preprocessing={"t_r": 0.8},
                    metadata={"region_names": names})
    save_checkpoint(tmp_path / "b.pt", load_checkpoint(tmp_path / "a.pt").model)
    again = load_checkpoint(tmp_path / "b.pt")
    assert again.preprocessing == again.model.preprocessing == {"t_r": 0.8}
    assert again.model.region_names == again.metadata["region_names"] == names
    # what is given still wins
    save_checkpoint(tmp_path / "c.pt", again.model, preprocessing={"t_r": 2.0},
                    metadata={"region_names": names[::-1]})
    other = load_checkpoint(tmp_path / "c.pt")
    assert other.preprocessing == {"t_r": 2.0} and other.model.region_names == names[::-1]


def test_gradients_given_as_a_tensor_that_requires_grad_load_as_its_values():
    tensor = torch.randn(6, 3, requires_grad=True)
    loaded = load_gradients(tensor)
    assert loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, tensor.detach().numpy())


def test_an_empty_preprocessing_given_wins_over_the_models_own(tmp_path):
    """Only ``preprocessing=None`` takes the model's own: an empty dict given saves none."""
    model = _model()
    model.preprocessing = {"t_r": 0.8}
    save_checkpoint(tmp_path / "m.pt", model, preprocessing={})
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.preprocessing == {} and loaded.model.preprocessing is None


@pytest.mark.parametrize("name, value", [("preprocessing", []), ("metadata", ""),
                                         ("metadata", 0)])
def test_preprocessing_and_metadata_that_are_empty_but_not_dicts_are_refused(tmp_path, name,
                                                                             value):
    with pytest.raises(TypeError, match=rf"{name} must be a dict, got"):
        save_checkpoint(tmp_path / "m.pt", _model(), **{name: value})
    assert not (tmp_path / "m.pt").exists()


def test_exporting_over_the_state_file_by_another_name_of_it_is_refused(tmp_path, monkeypatch):
    """The same file by a relative path (or a link) is the state file too: nothing is read
    or written."""
    from brainjepa_sk.checkpoint import export_training_state

    state = tmp_path / "run-1.pt"
    torch.save({"loop": {"model": {}, "history": [], "epoch": 0}}, state)
    saved = state.read_bytes()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link.pt").symlink_to(state)
    for other in ("run-1.pt", tmp_path / "link.pt"):
        with pytest.raises(ValueError, match="is the state file itself"):
            export_training_state(state, other)
    assert state.read_bytes() == saved


def test_a_state_whose_extra_lacks_the_configuration_is_named(tmp_path):
    """Extra settings without the model's configuration (a bare loop's own extra) cannot
    rebuild the model: named, not a KeyError."""
    from brainjepa_sk.checkpoint import export_training_state

    torch.save({"loop": {"model": {}, "history": [], "epoch": 0}, "key": "k",
                "extra": {"n_epochs": 2}}, tmp_path / "state.pt")
    with pytest.raises(ValueError, match=r"state\.pt does not record the model's configuration"):
        export_training_state(tmp_path / "state.pt", tmp_path / "model.pt")
    assert not (tmp_path / "model.pt").exists()


def test_resolve_weights_takes_the_target_encoder_of_a_module():
    """The target (EMA) encoder, not the context encoder, which differ after training."""
    model = _model()
    with torch.no_grad():
        for parameter in model.encoder.parameters():
            parameter.add_(1.0)
    resolved = resolve_weights(model)
    assert _same_weights(resolved.encoder, model.target_encoder)
    assert not _same_weights(resolved.encoder, model.encoder)


class _LoopState:
    """Stands in for a PretrainLoop in ``Checkpoint.save``: its state after one epoch."""

    def __init__(self, model):
        self.model = model

    def state_dict(self):
        return {"model": self.model.state_dict(), "history": [{"epoch": 0, "loss": 1.0}],
                "epoch": 1, "step": 3}


def test_exporting_a_damaged_training_state_names_it_and_writes_nothing(tmp_path):
    """The state's checksum is verified as on resuming: a model whose weights changed on the
    disk is not exported as if it were the run's."""
    from brainjepa_sk.checkpoint import export_training_state
    from brainjepa_sk.train import Checkpoint

    model = _model()
    state_path = tmp_path / "run-1.pt"
    Checkpoint(state_path, key="k", extra={"config": model.config}).save(_LoopState(model))
    exported = load_checkpoint(export_training_state(state_path, tmp_path / "intact.pt"))
    assert _same_weights(exported.model, model) and exported.metadata["epochs_completed"] == 1
    state = torch.load(state_path, weights_only=True)
    state["loop"]["model"]["target_encoder.patch_embed.proj.weight"][0, 0] += 1.0
    torch.save(state, state_path)
    with pytest.raises(ValueError, match=r"run-1\.pt is damaged: its contents do not match"):
        export_training_state(state_path, tmp_path / "model.pt")
    assert not (tmp_path / "model.pt").exists()


def test_exporting_a_state_of_model_settings_of_another_version_names_them(tmp_path):
    from brainjepa_sk.checkpoint import export_training_state
    from brainjepa_sk.train import Checkpoint

    model = _model()
    config = {**model.config, "embed_width": model.config["embed_dim"]}
    Checkpoint(tmp_path / "run-1.pt", key="k", extra={"config": config}).save(_LoopState(model))
    with pytest.raises(ValueError, match=r"run-1\.pt holds model settings .* does not know: "
                                         r"\['embed_width'\]"):
        export_training_state(tmp_path / "run-1.pt", tmp_path / "model.pt")
    assert not (tmp_path / "model.pt").exists()


def test_a_model_is_not_saved_over_a_training_state_named_from_the_home_folder(tmp_path,
                                                                               monkeypatch):
    """``~/run-1.pt`` is the state file in the home folder: the run is kept, as by its own
    path."""
    from brainjepa_sk.train import Checkpoint

    monkeypatch.setenv("HOME", str(tmp_path))
    model = _model()
    Checkpoint(tmp_path / "run-1.pt", key="k").save(_LoopState(model))
    saved = (tmp_path / "run-1.pt").read_bytes()
    with pytest.raises(ValueError, match="holds the saved state of a pretraining run"):
        save_checkpoint("~/run-1.pt", model)
    assert (tmp_path / "run-1.pt").read_bytes() == saved


def test_saving_a_module_other_than_a_brainjepa_or_an_encoder_is_refused_before_writing(
        tmp_path):
    """Another module (a head, a fine-tuner's whole module) is named by its type in a
    TypeError, as the docstring says, and no file is written."""
    from brainjepa_sk.nn import EncoderWithHead

    path = tmp_path / "model.pt"
    for module in (EncoderWithHead(_model().target_encoder, 2), torch.nn.Linear(2, 2)):
        with pytest.raises(TypeError, match=rf"^model must be a BrainJEPA or BrainEncoder "
                                            rf"module, got {type(module).__name__}$"):
            save_checkpoint(path, module)
    assert not path.exists()


def test_only_a_file_with_both_a_loop_and_a_key_is_taken_for_a_pretraining_state(
        official_dir, research_model, tmp_path):
    """A pretraining run's state holds both ``loop`` and ``key``; a research checkpoint that
    holds one of these names among its own entries is still read as one."""
    checkpoint = torch.load(official_dir / "checkpoint.pth.tar", weights_only=True)
    path = tmp_path / "research.pth.tar"
    torch.save({**checkpoint, "key": "run-0"}, path)
    resolved = resolve_weights(path, gradients=official_dir / "gradient.csv", num_heads=4)
    assert _same_weights(resolved.encoder, research_model.target_encoder)
    torch.save({**checkpoint, "loop": {}, "key": "run-0"}, path)
    with pytest.raises(ValueError, match="saved state of a pretraining run"):
        resolve_weights(path, gradients=official_dir / "gradient.csv", num_heads=4)


def test_a_preprocessing_key_no_preprocessor_has_is_refused_naming_it(tmp_path):
    """The estimators apply a saved preprocessing by its keys: another key (a misspelt
    ``"normalisation"``) was stored and then ignored when the model was used."""
    path = tmp_path / "m.pt"
    with pytest.raises(ValueError, match=r"^preprocessing has \['normalisation'\], which no "
                                         r"Preprocessor setting or statistic is: .* Its keys "
                                         r"are \['n_frames', 't_r', .*'median_', 'iqr_', "
                                         r"'n_regions_'\] \(those of Preprocessor.to_dict\(\)\)"):
        save_checkpoint(path, _model(), preprocessing={"t_r": 0.8, "normalisation": "robust"})
    assert not path.exists()
    # a model carrying one (loaded from a file of another version) is saved again as it is:
    # refusing it would leave that model unsavable
    model = _model()
    model.preprocessing = {"t_r": 0.8, "scale": 2.0}
    save_checkpoint(path, model)
    assert load_checkpoint(path).preprocessing == {"t_r": 0.8, "scale": 2.0}
    path.unlink()
    # every key of a Preprocessor's to_dict() is taken
    saved = Preprocessor(12, normalization="robust", constant_regions="zero").fit(
        [np.random.default_rng(0).standard_normal((20, 10))]).to_dict()
    save_checkpoint(path, _model(), preprocessing=saved)
    assert load_checkpoint(path).preprocessing.keys() == saved.keys()


def test_a_loaded_models_own_preprocessing_given_back_to_save_checkpoint_is_kept(tmp_path):
    """Passing a loaded model's own preprocessing explicitly (to add metadata beside it) keeps
    the keys of another version's file, as leaving ``preprocessing`` out does; a key the model
    does not carry is still refused."""
    model = _model()
    model.preprocessing = {"t_r": 0.8, "scale": 2.0}
    save_checkpoint(tmp_path / "a.pt", model)
    loaded = load_checkpoint(tmp_path / "a.pt")
    save_checkpoint(tmp_path / "b.pt", loaded.model, preprocessing=loaded.preprocessing,
                    metadata={**loaded.metadata, "note": "fine-tuned elsewhere"})
    again = load_checkpoint(tmp_path / "b.pt")
    assert again.preprocessing == {"t_r": 0.8, "scale": 2.0}
    assert again.metadata["note"] == "fine-tuned elsewhere"
    with pytest.raises(ValueError, match=r"^preprocessing has \['normalisation'\]"):
        save_checkpoint(tmp_path / "c.pt", loaded.model,
                        preprocessing={**loaded.preprocessing, "normalisation": "robust"})
    assert not (tmp_path / "c.pt").exists()


def test_exporting_a_state_whose_preprocessing_has_a_key_of_another_version_keeps_it(tmp_path):
    """The state's preprocessing is the run's own, not one given to save_checkpoint: a key this
    version does not know (a state of another version) is exported as it is, as a loaded
    model's is saved again, rather than refused as if the user had misspelt it."""
    from brainjepa_sk.checkpoint import export_training_state
    from brainjepa_sk.train import Checkpoint

    model = _model()
    saved = {"t_r": 0.8, "detrend": True}
    Checkpoint(tmp_path / "run-1.pt", key="k",
               extra={"config": model.config, "preprocessing": saved}).save(_LoopState(model))
    exported = load_checkpoint(export_training_state(tmp_path / "run-1.pt", tmp_path / "m.pt"))
    assert exported.preprocessing == saved

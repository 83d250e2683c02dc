"""BrainJEPAEmbedder: frozen features, exact against the research outputs, weights from anywhere."""

import copy
import errno
import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from _estimators import N_REGIONS, assert_same_module, make_subjects, tiny_module
from conftest import use_local_ukbiobank

from brainjepa_sk import BrainJEPAEmbedder, _base
from brainjepa_sk.checkpoint import save_checkpoint
from brainjepa_sk.datasets import _weights, fetch_ukbiobank_weights
from brainjepa_sk.preprocessing import Preprocessor, resample


def test_transform_equals_mean_of_research_target_tokens(research_model, reference):
    embedder = BrainJEPAEmbedder(weights=research_model, normalization=None)
    out = embedder.fit(reference["x_nilearn"]).transform(reference["x_nilearn"])
    expected = reference["target_encoder_tokens"].mean(axis=1)
    assert out.shape == (3, 64)
    assert np.abs(out - expected).max() <= 1e-5
    assert embedder.embedding_dim_ == 64 and embedder.n_features_in_ == 24


@pytest.mark.parametrize("part", ["model", "encoder"])
def test_the_callers_module_is_left_untouched(research_model, reference, part):
    """The embedder works on its own copy: the module passed in keeps its weights, its training
    mode and its trainable parameters, and later edits to it do not reach the fitted embedder."""
    X = reference["x_nilearn"]
    model = copy.deepcopy(research_model).train()  # as a user's module after some training
    module = model if part == "model" else model.encoder  # BrainJEPA, or a trainable encoder
    before = copy.deepcopy(module)
    frames = {} if part == "model" else {"n_frames": 40}  # an encoder does not know its window
    embedder = BrainJEPAEmbedder(weights=module, normalization=None, **frames).fit(X)
    out = embedder.transform(X)
    assert_same_module(module, before)
    assert embedder.encoder_ not in (model.encoder, model.target_encoder)
    with torch.no_grad():
        for param in module.parameters():
            param.mul_(0.5)
    np.testing.assert_array_equal(embedder.transform(X), out)
    assert embedder.get_params()["weights"] is module  # the parameter itself is kept as given


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_a_module_in_another_dtype_embeds_as_its_float32_copy(dtype):
    """A module cast to bf16 or float64 is copied in float32 (``precision`` sets the compute),
    so it embeds as the same weights in float32 do, and the caller's module keeps its dtype."""
    X = make_subjects()
    module = tiny_module().to(dtype)
    as_float32 = copy.deepcopy(module).float()
    for precision in ("fp32", "bf16"):
        out = BrainJEPAEmbedder(weights=module, normalization=None, device="cpu",
                                precision=precision).fit(X).transform(X)
        expected = BrainJEPAEmbedder(weights=as_float32, normalization=None, device="cpu",
                                     precision=precision).fit(X).transform(X)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, expected)
    assert {p.dtype for p in module.parameters()} == {dtype}


def test_subjects_of_different_lengths_are_averaged_over_their_own_windows(research_model):
    """Sliding windows: each subject's embedding is the mean over its own windows, whatever the
    other subjects in the call (here 1, 2 and 4 windows of 40 frames, stride 20)."""
    rng = np.random.default_rng(3)
    subjects = [rng.standard_normal((n, 24)) for n in (40, 60, 100)]
    embedder = BrainJEPAEmbedder(weights=research_model, normalization=None, window="sliding",
                                 stride=20).fit(subjects)
    together = embedder.transform(subjects)
    for i, x in enumerate(subjects):
        windows = np.stack([x[start:start + 40] for start in range(0, len(x) - 39, 20)])
        with torch.no_grad():
            tokens = research_model.target_encoder(torch.from_numpy(windows).float())
        expected = tokens.mean(1).mean(0).numpy()
        np.testing.assert_allclose(together[i], expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(embedder.transform([x])[0], together[i], rtol=1e-5, atol=1e-6)


def test_research_checkpoint_from_path_needs_gradients(official_dir, reference):
    X = reference["x_nilearn"]
    embedder = BrainJEPAEmbedder(
        weights=official_dir / "checkpoint.pth.tar", gradients=official_dir / "gradient.csv",
        num_heads=4, normalization=None,
    )
    out = embedder.fit(X).transform(X)
    assert np.abs(out - reference["target_encoder_tokens"].mean(axis=1)).max() <= 1e-5
    with pytest.raises(ValueError, match="gradients="):
        BrainJEPAEmbedder(weights=official_dir / "checkpoint.pth.tar").fit(X)


def test_gradients_indexed_by_region_names_are_checked_against_the_columns(official_dir,
                                                                             reference):
    """Gradients of a research checkpoint given as a DataFrame indexed by region names: X's
    columns in another order are refused (each region would take another's position)."""
    X = reference["x_nilearn"]
    gradients = np.loadtxt(official_dir / "gradient.csv", delimiter=",", ndmin=2)
    names = [f"roi{i}" for i in range(len(gradients))]
    frame = pd.DataFrame(gradients, index=names)
    params = dict(weights=official_dir / "checkpoint.pth.tar", num_heads=4, normalization=None)
    same = BrainJEPAEmbedder(gradients=frame, **params).fit([pd.DataFrame(x, columns=names)
                                                             for x in X])
    assert same.region_names_ == names
    reordered = [pd.DataFrame(x, columns=names)[names[::-1]] for x in X]
    with pytest.raises(ValueError, match="in another order"):
        BrainJEPAEmbedder(gradients=frame, **params).fit(reordered)


@pytest.mark.parametrize(
    "pooling, reduce, suffix", [("roi", np.mean, ""), ("roi_std", np.std, "_std")]
)
def test_region_poolings_values_and_names(research_model, reference, pooling, reduce, suffix):
    """``roi``: each region's mean over its time patches; ``roi_std``: their spread."""
    X = reference["x_nilearn"]
    tokens = reference["target_encoder_tokens"].reshape(3, 24, 10, 64)
    embedder = BrainJEPAEmbedder(weights=research_model, normalization=None, pooling=pooling)
    out = embedder.fit(X).transform(X)
    assert out.shape == (3, 24 * 64)
    assert np.abs(out - reduce(tokens, axis=2).reshape(3, -1)).max() <= 1e-5
    names = embedder.get_feature_names_out()
    assert names[0] == f"region0_embedding0{suffix}" and names[65] == f"region1_embedding1{suffix}"


def test_roi_pooling_pandas_output(research_model, reference):
    X = reference["x_nilearn"]
    embedder = BrainJEPAEmbedder(weights=research_model, normalization=None, pooling="roi")
    frames = [pd.DataFrame(x, columns=[f"roi{r}" for r in range(24)]) for x in X]
    embedder.set_output(transform="pandas")
    table = embedder.fit(frames).transform(frames)
    assert isinstance(table, pd.DataFrame) and table.columns[0] == "roi0_embedding0"
    mean = BrainJEPAEmbedder(weights=research_model, normalization=None).set_output(
        transform="pandas")
    assert list(mean.fit(X).transform(X).columns[:2]) == ["embedding0", "embedding1"]


def test_roi_std_needs_two_time_patches_and_keeps_the_fit(research_model, reference):
    X = reference["x_nilearn"]
    embedder = BrainJEPAEmbedder(weights=research_model, normalization=None, pooling="roi_std")
    out = embedder.fit(X).transform(X)
    with pytest.raises(ValueError, match="at least 2 time patches"):
        embedder.set_params(n_frames=4).fit(X)  # one patch of 4 frames per window
    assert np.array_equal(embedder.set_params(n_frames="auto").transform(X), out)


def test_final_norm_false_pools_the_tokens_before_the_last_layernorm(research_model, reference):
    """With one time patch per window, ``roi`` pooling returns each token itself: the encoder's
    final LayerNorm applied to the ``final_norm=False`` features gives the default ones."""
    X = reference["x_nilearn"]
    one_patch = dict(weights=research_model, normalization=None, pooling="roi", n_frames=4)
    normed = BrainJEPAEmbedder(**one_patch).fit(X).transform(X).reshape(3, 24, 64)
    raw = BrainJEPAEmbedder(**one_patch, final_norm=False).fit(X).transform(X).reshape(3, 24, 64)
    with torch.no_grad():
        renormed = research_model.target_encoder.norm(torch.from_numpy(raw)).numpy()
    assert np.abs(renormed - normed).max() <= 1e-5
    assert np.abs(raw - normed).max() > 0.1  # not the same features
    with pytest.raises(ValueError, match="'final_norm' parameter of BrainJEPAEmbedder"):
        BrainJEPAEmbedder(weights=research_model, final_norm="no").fit(X)


def test_preprocessing_is_applied(research_model, reference):
    X = reference["x_nilearn"] * 50 + 1000  # raw BOLD-like scale
    embedder = BrainJEPAEmbedder(weights=research_model, normalization="global_zscore")
    out = embedder.fit(X).transform(X)
    pre = Preprocessor(40, normalization="global_zscore").fit(list(X))
    windows, _ = pre.transform(list(X))
    with torch.no_grad():
        expected = research_model.target_encoder(torch.from_numpy(windows)).mean(1).numpy()
    assert np.abs(out - expected).max() <= 1e-5
    # longer series: the centre window is used; sliding windows are averaged
    long = np.concatenate([X, X[:, ::-1]], axis=1)
    sliding = BrainJEPAEmbedder(weights=research_model, window="sliding", stride=40)
    first_half = BrainJEPAEmbedder(weights=research_model, window="first")
    a = sliding.fit(long).transform(long)
    b = first_half.fit(long).transform(long)
    reversed_ = np.ascontiguousarray(X[:, ::-1])  # the second window of `long`
    c = BrainJEPAEmbedder(weights=research_model).fit(reversed_).transform(reversed_)
    assert np.abs(a - (b + c) / 2).max() <= 1e-5


def test_our_checkpoint_carries_its_preprocessing(tmp_path, research_model, reference):
    X = list(reference["x_nilearn"] * 3 + 7)
    pre = Preprocessor(40, normalization="robust").fit(X)
    path = tmp_path / "ours.pt"
    save_checkpoint(path, research_model, preprocessing=pre.to_dict())
    embedder = BrainJEPAEmbedder(weights=path).fit(X[:1])  # robust stats come from the file
    np.testing.assert_array_equal(embedder.preprocessor_.median_, pre.median_)
    windows, _ = pre.transform(X)
    with torch.no_grad():
        expected = research_model.target_encoder(torch.from_numpy(windows)).mean(1).numpy()
    assert np.abs(embedder.transform(X) - expected).max() <= 1e-5


def test_wrong_region_count_is_named(research_model, reference):
    X = reference["x_nilearn"]
    with pytest.raises(ValueError, match="24") as caught:
        BrainJEPAEmbedder(weights=research_model).fit(X[:, :, :20])
    # the advice to build the UK Biobank atlas is for the default weights only (found by
    # planting bugs: other weights were told to fetch the 450-region atlas)
    assert "fetch_atlas_brainjepa450" not in str(caught.value)
    # but they are told what to do: their atlas, or a model pretrained on this one
    assert "series extracted with that atlas (24 regions" in str(caught.value)
    assert "pretrain a model on this atlas with BrainJEPAPretrainer" in str(caught.value)
    # with what to pass: the pretrainer itself is refused as weights (not a path or module)
    assert str(caught.value).endswith("and pass the file its save(path) writes as weights")
    with pytest.raises(ValueError, match="transposed"):
        BrainJEPAEmbedder(weights=research_model).fit(X.transpose(0, 2, 1))


def test_a_connectivity_matrix_among_the_series_is_refused_naming_it(research_model,
                                                                      reference, tmp_path):
    """A 24 x 24 correlation matrix (a connectome saved next to the series) given as one
    subject was embedded as a 24-frame series without a word, at fit and at transform; files
    are named. A square series (as many frames as regions) is still embedded."""
    X = list(reference["x_nilearn"])
    connectome = np.corrcoef(np.concatenate(X).T)
    message = (r"subject 3 looks like a connectivity matrix, not a time series: it is square "
               r"\(24 x 24\) and symmetric with a unit diagonal.*BrainJEPAEmbedder takes")
    embedder = BrainJEPAEmbedder(weights=research_model, normalization=None)
    with pytest.raises(ValueError, match="^" + message):
        embedder.fit(X + [connectome])
    embedder.fit(X)
    with pytest.raises(ValueError, match="^" + message):
        embedder.transform(X + [connectome])
    paths = [tmp_path / f"sub-{i}.npy" for i in range(3)] + [tmp_path / "conn.npy"]
    for path, x in zip(paths, X + [connectome]):
        np.save(path, x)
    with pytest.raises(ValueError, match=f"^{re.escape(str(paths[3]))}: {message}"):
        embedder.transform(paths)
    with pytest.raises(ValueError, match=f"^{re.escape(str(paths[3]))}: {message}"):
        BrainJEPAEmbedder(weights=research_model, normalization=None).fit(paths)
    square = make_subjects(n_subjects=2, n_timepoints=N_REGIONS)  # 8 frames of 8 regions
    out = BrainJEPAEmbedder(weights=tiny_module(), normalization=None,
                            device="cpu").fit(square).transform(square)
    assert out.shape == (2, 8) and np.isfinite(out).all()


def test_bad_parameters(research_model, reference):
    X = reference["x_nilearn"]
    with pytest.raises(ValueError, match="pooling"):
        BrainJEPAEmbedder(weights=research_model, pooling="max").fit(X)
    with pytest.raises(ValueError, match="precision"):
        BrainJEPAEmbedder(weights=research_model, precision="fp8").fit(X).transform(X)
    with pytest.raises(TypeError, match="weights"):
        BrainJEPAEmbedder(weights=42).fit(X)
    with pytest.raises(ValueError, match="batch_size"):
        BrainJEPAEmbedder(weights=research_model, batch_size=0).fit(X)
    # refused at fit: transform would fail inside the batching with a TypeError of its own
    with pytest.raises(ValueError, match="'batch_size' parameter of BrainJEPAEmbedder"):
        BrainJEPAEmbedder(weights=research_model, batch_size=None).fit(X)
    with pytest.raises(ValueError, match="precision"):
        BrainJEPAEmbedder(weights=research_model, precision="fp16").fit(X)
    with pytest.raises(FileNotFoundError, match="weights file"):
        BrainJEPAEmbedder(weights="no/such/file.pt").fit(X)
    with pytest.raises(ValueError, match="'window' parameter of BrainJEPAEmbedder"):
        BrainJEPAEmbedder(weights=research_model, window="middle").fit(X)
    with pytest.warns(UserWarning, match="t_r=2.0 is ignored"):
        BrainJEPAEmbedder(weights=research_model, t_r=2.0).fit(X)
    for name in ("t_r", "model_t_r"):  # named as the embedder's, not its Preprocessor's
        with pytest.raises(ValueError, match=f"'{name}' parameter of BrainJEPAEmbedder"):
            BrainJEPAEmbedder(weights=research_model, **{name: 0.0}).fit(X)


def test_default_weights_are_fetched_once_then_used_offline(tmp_path, monkeypatch, official_dir,
                                                            reference):
    # The real source is the authors' Google Drive and repository; here local files stand in.
    use_local_ukbiobank(monkeypatch, official_dir)
    # the default cache is another, empty folder (this machine's may hold the files): fit finds
    # them only where data_dir says
    monkeypatch.setenv("BRAINJEPA_SK_DATA", str(tmp_path / "default_cache"))
    paths = fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    assert paths["checkpoint"].read_bytes() == (official_dir / "checkpoint.pth.tar").read_bytes()
    assert paths["gradients"].parent == tmp_path / "brainjepa_ukbiobank"
    # offline now: the cache is enough
    for spec in _weights.UKBIOBANK_FILES.values():
        spec["url"] = (tmp_path / "nowhere" / "file").as_uri()
    assert fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0) == paths
    X = reference["x_nilearn"]
    embedder = BrainJEPAEmbedder(data_dir=tmp_path, num_heads=4, normalization=None,
                                 model_t_r=None)
    out = embedder.fit(X).transform(X)
    assert np.abs(out - reference["target_encoder_tokens"].mean(axis=1)).max() <= 1e-5


def test_default_weights_get_the_research_models_preprocessing(tmp_path, monkeypatch,
                                                               official_dir, research_model):
    """``BrainJEPAEmbedder()`` embeds the way the UK Biobank model was trained: series
    resampled to its TR (every third frame at TR 0.735 s, so 2.205 s), the checkpoint's window
    length from the centre of the scan, and each window z-scored as a whole."""
    use_local_ukbiobank(monkeypatch, official_dir)  # the test checkpoint stands in for the weights
    rng = np.random.default_rng(7)
    t = np.arange(150)[:, None] * 0.735
    X = np.stack([np.sin(2 * np.pi * t / rng.uniform(20, 60, 24) + rng.uniform(0, 6, 24))
                  * 50 + 1000 + rng.standard_normal((150, 24)) for _ in range(3)])
    embedder = BrainJEPAEmbedder(data_dir=tmp_path, num_heads=4, t_r=0.735).fit(X)
    prep = embedder.preprocessor_
    assert prep.target_t_r == pytest.approx(2.205) and prep.t_r == 0.735
    assert (prep.n_frames, prep.window, prep.normalization) == (40, "center", "global_zscore")
    expected = []
    for x in X:
        series = resample(x, 0.735, 2.205)  # 150 frames -> 50
        start = (len(series) - 40) // 2
        window = series[start:start + 40]
        window = (window - window.mean()) / window.std()
        with torch.no_grad():
            tokens = research_model.target_encoder(torch.from_numpy(window[None]).float())
        expected.append(tokens.mean(1)[0].numpy())
    np.testing.assert_allclose(embedder.transform(X), np.stack(expected), rtol=1e-4, atol=1e-5)


def test_the_default_weights_carry_their_gradients_but_not_their_heads(tmp_path, monkeypatch,
                                                                       official_dir):
    """weights="ukbiobank" brings its own gradient file, so gradients set after fit change
    nothing (transform does not ask for a refit); its heads come from num_heads, which does."""
    use_local_ukbiobank(monkeypatch, official_dir)
    X = np.random.default_rng(0).standard_normal((2, 40, 24))
    embedder = BrainJEPAEmbedder(data_dir=tmp_path, num_heads=4, device="cpu").fit(X)
    before = embedder.transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embedder.set_params(gradients=np.ones((24, 3)))
        np.testing.assert_array_equal(embedder.transform(X), before)
    with pytest.warns(UserWarning, match=r"num_heads=1 \(fitted with 4\)"):
        embedder.set_params(num_heads=1).transform(X)


def test_the_atlas_check_of_the_default_weights_looks_at_subject_0s_length(
        tmp_path, monkeypatch, official_dir):
    """Before any download, subjects on another atlas than the default weights' are refused,
    saying they look transposed when subject 0's length is the weights' region count (not
    another subject's)."""
    use_local_ukbiobank(monkeypatch, official_dir)  # 24 regions stand in for the 450
    rng = np.random.default_rng(5)
    for lengths, transposed in (((24, 30), True), ((30, 24), False)):
        X = [rng.standard_normal((n, 10)) for n in lengths]
        with pytest.raises(ValueError, match=r"each subject must be \(n_timepoints, "
                                             r"n_regions\)") as caught:
            BrainJEPAEmbedder(data_dir=tmp_path, device="cpu").fit(X)
        assert ("(it looks transposed)" in str(caught.value)) is transposed
    assert not any(tmp_path.iterdir())  # refused before the download


def test_the_embedder_fetches_the_default_weights_into_its_data_dir(tmp_path, monkeypatch,
                                                                    official_dir):
    """data_dir reaches the fetch: the files land there, not in the folder of the environment
    variable (nor the home folder)."""
    use_local_ukbiobank(monkeypatch, official_dir)
    monkeypatch.setenv("BRAINJEPA_SK_DATA", str(tmp_path / "from_env"))
    X = np.random.default_rng(0).standard_normal((2, 40, 24))
    embedder = BrainJEPAEmbedder(data_dir=tmp_path / "given", num_heads=4, device="cpu").fit(X)
    assert embedder.get_params()["data_dir"] == tmp_path / "given"
    assert (tmp_path / "given" / "brainjepa_ukbiobank" / "jepa-ep300.pth.tar").is_file()
    assert not (tmp_path / "from_env").exists()


def test_environment_variable_names_the_cache(tmp_path, monkeypatch, official_dir):
    use_local_ukbiobank(monkeypatch, official_dir)
    monkeypatch.setenv("BRAINJEPA_SK_DATA", str(tmp_path))
    assert fetch_ukbiobank_weights(verbose=0)["checkpoint"].parent.parent == tmp_path


def test_the_cache_folder_expands_the_home_folder_and_passes_over_an_empty_variable(
        tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _weights.get_data_dir("~/cache") == tmp_path / "cache"
    monkeypatch.setenv("BRAINJEPA_SK_DATA", "~/from_env")
    assert _weights.get_data_dir() == tmp_path / "from_env"
    assert _weights.get_data_dir("~/cache") == tmp_path / "cache"  # the argument comes first
    monkeypatch.setenv("BRAINJEPA_SK_DATA", "")  # set but empty: not the current folder
    assert _weights.get_data_dir() == tmp_path / "brainjepa_sk_data"


def test_a_cache_folder_that_is_a_file_or_no_path_is_refused_naming_it(tmp_path, monkeypatch):
    """A file given as the folder had failed on a path under it (a weights fetch without
    download "is not in .../a.csv/brainjepa_ukbiobank", the atlas pathlib's "Not a
    directory"), and a number with os.fspath's "expected str, bytes or os.PathLike"."""
    (tmp_path / "a.csv").write_text("1,2\n")
    with pytest.raises(NotADirectoryError, match=r"^data_dir='.*a\.csv' is a file, not a folder"):
        fetch_ukbiobank_weights(data_dir=tmp_path / "a.csv", download=False, verbose=0)
    monkeypatch.setenv("BRAINJEPA_SK_DATA", str(tmp_path / "a.csv"))
    with pytest.raises(NotADirectoryError, match=r"^BRAINJEPA_SK_DATA='.*a\.csv' is a file"):
        _weights.get_data_dir()
    with pytest.raises(TypeError, match=r"^data_dir must be a folder's path .* got 3$"):
        _weights.get_data_dir(3)
    assert _weights.get_data_dir(tmp_path) == tmp_path  # a folder, as it was


def test_fetching_again_hashes_the_settled_cached_files_once_per_process(
        tmp_path, monkeypatch, official_dir):
    """Each fit with weights="ukbiobank" fetches: the cached files are hashed again only when
    they changed."""
    import os

    use_local_ukbiobank(monkeypatch, official_dir)
    paths = fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    for path in paths.values():  # settled long ago
        os.utime(path, (1_000_000_000, 1_000_000_000))
    reads = []
    monkeypatch.setattr(_weights, "_DIGESTS", {})
    real = _weights.sha256_of
    monkeypatch.setattr(_weights, "sha256_of", lambda p: reads.append(p) or real(p))
    assert fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0, download=False) == paths
    assert sorted(reads) == sorted(paths.values())
    assert fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0, download=False) == paths
    assert len(reads) == 2


@pytest.mark.parametrize("estimator", ["BrainJEPAEmbedder", "BrainJEPAClassifier"])
def test_the_default_weights_check_the_atlas_before_downloading(monkeypatch, estimator):
    """Data on another atlas than the UK Biobank model's 450 regions are refused before the
    checkpoint is fetched, with the atlas advice, and nothing is fetched."""
    import brainjepa_sk
    from brainjepa_sk import datasets

    def fetch(**kwargs):
        raise AssertionError("the weights were fetched before the region count was checked")

    monkeypatch.setattr(datasets, "fetch_ukbiobank_weights", fetch)
    X = np.random.default_rng(0).standard_normal((2, 200, 100))
    with pytest.raises(ValueError, match="expecting 450 features.*fetch_atlas_brainjepa450"):
        getattr(brainjepa_sk, estimator)(device="cpu").fit(X, [0, 1])


@pytest.mark.parametrize("estimator", ["BrainJEPAEmbedder", "BrainJEPAClassifier",
                                       "BrainJEPAPretrainer"])
def test_the_meta_device_is_refused_naming_device_before_any_work(estimator):
    """device='meta' (shapes without data) had failed inside fit with torch's 'unsupported
    scalarType' or 'META device type not an accelerator'; nothing is fitted."""
    import brainjepa_sk

    X = _subjects(4)
    settings = (dict(gradients=np.ones((N_REGIONS, 2)), n_frames=16, patch_size=4)
                if estimator == "BrainJEPAPretrainer" else dict(weights=tiny_module(N_REGIONS)))
    model = getattr(brainjepa_sk, estimator)(**settings, device="meta")
    with pytest.raises(ValueError, match="^device='meta' holds tensors' shapes without"):
        model.fit(X, [0, 1] * (len(X) // 2))
    assert not hasattr(model, "n_features_in_")


def test_offline_without_cache_says_where_to_put_the_files(tmp_path, monkeypatch, official_dir):
    use_local_ukbiobank(monkeypatch, official_dir)
    for spec in _weights.UKBIOBANK_FILES.values():
        spec["url"] = (tmp_path / "nowhere" / "file").as_uri()
    with pytest.raises(OSError, match="brainjepa_ukbiobank") as info:
        fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    assert "1LL3gM-i5SLDWCFyvj71M3peLeU6V2qMR" in str(info.value)
    assert not list((tmp_path / "brainjepa_ukbiobank").glob("*.part"))
    with pytest.raises(OSError, match="switched off"):
        fetch_ukbiobank_weights(data_dir=tmp_path / "other", download=False)


def test_offline_error_offers_the_files_by_path(tmp_path):
    # the route without the cache: the files by path, with the model's TR (which a checkpoint
    # given by path does not carry)
    with pytest.raises(OSError, match=re.escape(
            "Or pass the files by path: weights=<path to jepa-ep300.pth.tar>, "
            "gradients=<path to gradient_mapping_450.csv>, model_t_r=2.205.")):
        fetch_ukbiobank_weights(data_dir=tmp_path, download=False)


def test_files_in_the_cache_folder_itself_are_named_with_the_data_dir_to_set(tmp_path):
    # data_dir set to the folder that holds the files, not the cache folder above it: the
    # error points at the files already there instead of asking for them to be fetched again
    inner = tmp_path / "brainjepa_ukbiobank"
    inner.mkdir()
    (inner / "jepa-ep300.pth.tar").write_bytes(b"weights")
    with pytest.raises(OSError, match=re.escape(
            f"It is in {inner} itself: data_dir (or BRAINJEPA_SK_DATA) is the cache folder "
            f"that holds brainjepa_ukbiobank/, so set it to {tmp_path}.")):
        fetch_ukbiobank_weights(data_dir=inner, download=False)
    # a cache folder of another name: the file belongs in its subfolder
    other = tmp_path / "models"
    other.mkdir()
    (other / "jepa-ep300.pth.tar").write_bytes(b"weights")
    with pytest.raises(OSError, match=re.escape(
            "so move the file to " + str(other / "brainjepa_ukbiobank" / "jepa-ep300.pth.tar"))):
        fetch_ukbiobank_weights(data_dir=other, download=False)


def test_files_in_the_cache_folder_itself_are_not_downloaded_again(tmp_path, monkeypatch):
    # online, the checkpoint (~1 GB) was downloaded again into a nested
    # brainjepa_ukbiobank/brainjepa_ukbiobank/ (a failed download left that folder empty):
    # refused as offline, before any download or folder is made, whichever file lies there
    downloads = []
    monkeypatch.setattr(_weights, "_download", lambda *args, **kwargs: downloads.append(args))
    inner = tmp_path / "brainjepa_ukbiobank"
    inner.mkdir()
    (inner / "gradient_mapping_450.csv").write_text("0.1,0.2\n")
    with pytest.raises(OSError, match=re.escape(
            f"gradient_mapping_450.csv is not in {inner / 'brainjepa_ukbiobank'} and it is not "
            f"downloaded again. It is in {inner} itself: data_dir (or BRAINJEPA_SK_DATA) is the "
            f"cache folder that holds brainjepa_ukbiobank/, so set it to {tmp_path}.")):
        fetch_ukbiobank_weights(data_dir=inner, verbose=0)
    assert downloads == []
    assert sorted(p.name for p in inner.iterdir()) == ["gradient_mapping_450.csv"]


@pytest.mark.parametrize("content", [
    "<!DOCTYPE html><html>virus scan warning</html>",
    "\n  <!doctype html>\n<html>virus scan warning</html>",  # after blank space, in lower case
    "<html><head><title>Google Drive</title></head></html>",  # no doctype
])
def test_a_web_page_is_not_taken_for_the_weights(tmp_path, monkeypatch, official_dir, content):
    page = tmp_path / "page.html"
    page.write_text(content)
    use_local_ukbiobank(monkeypatch, official_dir)
    _weights.UKBIOBANK_FILES["checkpoint"]["url"] = page.as_uri()
    with pytest.raises(OSError, match="web page"):
        fetch_ukbiobank_weights(data_dir=tmp_path / "cache", verbose=0)


def test_the_published_files_are_checked_against_their_hashes(tmp_path, monkeypatch,
                                                             official_dir):
    """The gradient file must match its pinned SHA-256 (else it is not kept); the checkpoint,
    which has none published, is checked against the hash recorded at its first download."""
    # the real gradient file comes from the commit that last changed it, not a moving branch
    assert "/c476600dfb640bf85c0aa9b6b92e8bff257e3cd5/data/" in (
        _weights.UKBIOBANK_FILES["gradients"]["url"])
    use_local_ukbiobank(monkeypatch, official_dir)
    pinned = _weights.UKBIOBANK_FILES["gradients"]["sha256"]
    _weights.UKBIOBANK_FILES["gradients"]["sha256"] = "0" * 64  # another file is served
    folder = tmp_path / "brainjepa_ukbiobank"
    with pytest.raises(OSError, match="gradient_mapping_450.csv") as info:
        fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    assert pinned in str(info.value) and "0" * 64 in str(info.value)
    assert not (folder / "gradient_mapping_450.csv").exists()
    assert not list(folder.glob("*.part"))
    _weights.UKBIOBANK_FILES["gradients"]["sha256"] = pinned
    paths = fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    record = folder / "jepa-ep300.pth.tar.sha256"
    assert record.read_text().split()[0] == _weights.sha256_of(paths["checkpoint"])
    with open(paths["checkpoint"], "r+b") as f:  # the cached checkpoint changes afterwards
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(OSError, match="first download") as info:
        fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    assert "jepa-ep300.pth.tar" in str(info.value) and "delete it" in str(info.value)


def test_a_cached_gradient_file_is_checked_against_its_pinned_hash_at_every_call(
        tmp_path, monkeypatch, official_dir):
    use_local_ukbiobank(monkeypatch, official_dir)
    paths = fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    cached = paths["gradients"]
    cached.write_text(cached.read_text().replace("1", "2", 1))  # edited in the cache
    with pytest.raises(OSError, match="gradient_mapping_450.csv does not match the pinned hash"):
        fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0, download=False)
    # a record of the edited file's hash beside it (sha256sum's) does not replace the pin
    cached.with_name(cached.name + ".sha256").write_text(
        f"{_weights.sha256_of(cached)}  {cached.name}\n")
    with pytest.raises(OSError, match="gradient_mapping_450.csv does not match the pinned hash"):
        fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0, download=False)


def test_a_hash_record_whose_temporary_file_cannot_be_made_is_named(
        tmp_path, monkeypatch, official_dir):
    """The error names the record being written, not the hidden temporary file beside it."""
    import errno

    from brainjepa_sk.datasets import _weights

    use_local_ukbiobank(monkeypatch, official_dir)

    def refused(path):
        raise OSError(errno.ENOSPC, "No space left on device", f"{path}.host-1-abc.tmp")

    monkeypatch.setattr(_weights, "temporary_file_beside", refused)
    with pytest.raises(OSError, match=r"could not save .*jepa-ep300\.pth\.tar\.sha256: the "
                                      r"disk is full") as info:
        fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    assert ".tmp" not in str(info.value)


@pytest.mark.parametrize("code, message", [(errno.EACCES, "Permission denied"),
                                           (errno.ENOSPC, "the disk is full")])
def test_a_download_whose_temporary_file_cannot_be_made_names_the_file(
        tmp_path, monkeypatch, official_dir, code, message):
    """A cache folder that takes no new file (no permission, a full disk) is named through the
    file asked for, not the hidden ``.part`` file the download would have gone to."""
    import os

    use_local_ukbiobank(monkeypatch, official_dir)

    def refused(*args, dir=None, prefix="", suffix="", **kwargs):
        raise OSError(code, os.strerror(code), os.path.join(dir, f"{prefix}k3x9q{suffix}"))

    monkeypatch.setattr(_weights.tempfile, "mkstemp", refused)
    with pytest.raises(OSError, match=rf"the download failed \(\[Errno {code}\] could not save "
                                      rf".*brainjepa_ukbiobank/jepa-ep300\.pth\.tar: {message}"
                       ) as info:
        fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    assert ".part" not in str(info.value)


def test_a_full_disk_while_recording_the_hash_leaves_no_record_that_faults_the_checkpoint(
        tmp_path, monkeypatch, official_dir):
    """The checkpoint's hash record is written through a temporary file: a full disk leaves
    none (the next call records it), and a record cut short some other way is named as the
    damaged file, not taken for the hash of a damaged checkpoint."""
    import errno
    from pathlib import Path

    use_local_ukbiobank(monkeypatch, official_dir)
    write_text = Path.write_text

    def full_disk(self, text, *args, **kwargs):
        write_text(self, text[:10], *args, **kwargs)  # a short write, then no space left
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="disk is full"):
        fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    folder = tmp_path / "brainjepa_ukbiobank"
    assert not list(folder.glob("*.sha256*"))
    monkeypatch.setattr(Path, "write_text", write_text)
    paths = fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    record = folder / "jepa-ep300.pth.tar.sha256"
    assert record.read_text().split()[0] == _weights.sha256_of(paths["checkpoint"])
    for damaged in ["", record.read_text()[:10]]:
        record.write_text(damaged)
        with pytest.raises(OSError, match="sha256 is damaged: it holds no SHA-256") as info:
            fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0, download=False)
        assert str(record) in str(info.value)


@pytest.mark.parametrize("text, damaged", [
    ("{digest}  jepa-ep300.pth.tar\n", False),
    ("{upper}", False),  # sha256sum writes lower case; upper case is the same hash
    ("{digest}0", True),  # a hash and a digit more
    ("z" * 64, True),  # as long as a hash, but no hexadecimal
])
def test_a_hash_record_is_read_in_either_case_and_holds_exactly_one_sha256(
        tmp_path, monkeypatch, official_dir, text, damaged):
    """A record as sha256sum writes it, or in upper case, is the checkpoint's hash; a record
    whose first word is not exactly 64 hexadecimal digits is named as damaged (not taken for
    the hash of a damaged checkpoint)."""
    use_local_ukbiobank(monkeypatch, official_dir)
    paths = fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    record = paths["checkpoint"].with_name("jepa-ep300.pth.tar.sha256")
    digest = record.read_text().split()[0]
    record.write_text(text.format(digest=digest, upper=digest.upper()))
    if damaged:
        with pytest.raises(OSError, match="sha256 is damaged: it holds no SHA-256"):
            fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0, download=False)
    else:
        assert fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0, download=False) == paths


def test_downloaded_files_and_the_hash_record_get_the_permissions_of_the_umask(
        tmp_path, monkeypatch, official_dir):
    """As a plain write would make them, not mkstemp's 0600: a cache shared by a group
    (``BRAINJEPA_SK_DATA``) is readable by the others."""
    import os
    import stat

    use_local_ukbiobank(monkeypatch, official_dir)
    old = os.umask(0o022)
    try:
        paths = fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    finally:
        os.umask(old)
    files = sorted(paths["checkpoint"].parent.iterdir())
    assert [path.name for path in files] == [
        "gradient_mapping_450.csv", "jepa-ep300.pth.tar", "jepa-ep300.pth.tar.sha256"]
    assert [oct(stat.S_IMODE(path.stat().st_mode)) for path in files] == [oct(0o644)] * 3


def ukbiobank_cache(monkeypatch, tmp_path, official_dir):
    """The UK Biobank cache folder in ``tmp_path``, served from the test files, with their
    gradients in it (the checkpoint is the test's to put there, or not)."""
    use_local_ukbiobank(monkeypatch, official_dir)
    folder = tmp_path / "brainjepa_ukbiobank"
    folder.mkdir()
    (folder / "gradient_mapping_450.csv").write_bytes((official_dir / "gradient.csv").read_bytes())
    return folder


def test_a_read_only_cache_without_a_hash_record_loads_a_good_checkpoint_and_names_a_bad_one(
        tmp_path, monkeypatch, official_dir, reference):
    """A lab's shared data folder that the user cannot write to, holding a copy of the
    checkpoint but no hash record beside it (copied in by hand): fit loads the good copy,
    writing nothing there, and a damaged copy is still refused naming the file (not with an
    error about the record that could not be saved)."""
    import os

    folder = ukbiobank_cache(monkeypatch, tmp_path, official_dir)
    complete = (official_dir / "checkpoint.pth.tar").read_bytes()
    cached = folder / "jepa-ep300.pth.tar"
    X = reference["x_nilearn"]
    expected = reference["target_encoder_tokens"].mean(axis=1)
    for contents in [complete, complete[: len(complete) // 2]]:
        cached.write_bytes(contents)
        folder.chmod(0o555)
        try:
            if os.access(folder, os.W_OK):
                pytest.skip("this user writes to read-only folders (root; run it as root with "
                            "setpriv --bounding-set=-dac_override)")
            if contents is complete:
                embedder = BrainJEPAEmbedder(data_dir=tmp_path, num_heads=4,
                                             normalization=None).fit(X)
                assert np.abs(embedder.transform(X) - expected).max() <= 1e-5
            else:
                with pytest.raises(ValueError, match=re.escape(
                        f"The cached UK Biobank checkpoint is damaged (a download or copy cut "
                        f"short?): delete {cached}")):
                    BrainJEPAEmbedder(data_dir=tmp_path, num_heads=4).fit(X)
        finally:
            folder.chmod(0o755)
        assert sorted(path.name for path in folder.iterdir()) == [
            "gradient_mapping_450.csv", "jepa-ep300.pth.tar"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_an_unavailable_device_is_refused_at_fit_and_leaves_the_embedder_as_it_was():
    X = _subjects()
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        embedder.fit(X)
    assert not hasattr(embedder, "encoder_")
    before = embedder.set_params(device="cpu").fit(X).transform(X)
    with pytest.raises(ValueError, match="CUDA is not available"):
        embedder.set_params(device="cuda").fit(X[:2])
    np.testing.assert_array_equal(embedder.set_params(device="cpu").transform(X), before)


@pytest.mark.gpu
def test_cuda_transform_matches_cpu_and_pickles(research_model, reference):
    import pickle

    X = reference["x_nilearn"]
    cpu = BrainJEPAEmbedder(weights=research_model, normalization=None, device="cpu").fit(X)
    gpu = BrainJEPAEmbedder(weights=research_model, normalization=None, device="cuda",
                            precision="fp32").fit(X)
    np.testing.assert_allclose(gpu.transform(X), cpu.transform(X), atol=1e-4)
    restored = pickle.loads(pickle.dumps(gpu))
    assert next(restored.encoder_.parameters()).device.type == "cpu"
    bf16 = BrainJEPAEmbedder(weights=research_model, normalization=None, device="cuda").fit(X)
    np.testing.assert_allclose(bf16.transform(X), cpu.transform(X), atol=5e-2)


def test_no_tr_warning_without_an_input_tr(tmp_path):
    # t_r is unknown and so is the model's TR: nothing to resample, nothing to warn about
    module = tiny_module(N_REGIONS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BrainJEPAEmbedder(weights=module, device="cpu").fit(_subjects())
    with pytest.warns(UserWarning, match="t_r=0.8 is ignored"):
        BrainJEPAEmbedder(weights=module, device="cpu", t_r=0.8).fit(_subjects())


def test_region_feature_names_for_an_embedder_fitted_on_arrays():
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), pooling="roi", device="cpu")
    embedder.fit(_subjects())
    names = [f"roi{r}" for r in range(N_REGIONS)]
    out = embedder.get_feature_names_out(names)
    assert out[0] == "roi0_embedding0" and len(out) == N_REGIONS * embedder.embedding_dim_
    with pytest.raises(ValueError, match="do not match the regions"):
        embedder.get_feature_names_out(names[:-1])


@pytest.mark.parametrize("pooling, first", [
    ("roi", "L-Amygdala_embedding0"), ("roi_std", "L-Amygdala_embedding0_std"),
    ("connectivity", "L-Amygdala_R-Amygdala_connectivity"),
    ("lagged", "L-Amygdala_L-Amygdala_lag1"),
])
def test_fitted_on_arrays_the_feature_names_carry_the_regions_the_weights_recorded(pooling,
                                                                                   first):
    """Arrays carry no names, but the weights' record of their regions (region_names_) does:
    the readout's features are named by them, not region0, region1, ..., and input_features
    must be them."""
    names = ["L-Amygdala", "R-Amygdala", *(f"net{r}" for r in range(2, N_REGIONS))]
    module = tiny_module(N_REGIONS)
    module.region_names = names  # as a pretrainer's model_ or a loaded checkpoint's model
    embedder = BrainJEPAEmbedder(weights=module, pooling=pooling, device="cpu")
    embedder.fit(_subjects())
    assert embedder.region_names_ == names and not hasattr(embedder, "feature_names_in_")
    out = embedder.get_feature_names_out()
    assert out[0] == first and not any(name.startswith("region") for name in out)
    assert list(embedder.get_feature_names_out(names)) == list(out)
    with pytest.raises(ValueError, match="do not match the regions seen in fit"):
        embedder.get_feature_names_out(names[::-1])
    # without a record, region{r} as before
    plain = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), pooling=pooling, device="cpu")
    assert plain.fit(_subjects()).get_feature_names_out()[0].startswith("region0_")


def test_a_refit_on_arrays_forgets_the_region_names_of_dataframes():
    subjects = _subjects()
    names = [f"roi{r}" for r in range(N_REGIONS)]
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), pooling="roi", device="cpu")
    embedder.fit([pd.DataFrame(x, columns=names) for x in subjects])
    assert list(embedder.feature_names_in_) == names
    embedder.fit(subjects)
    assert not hasattr(embedder, "feature_names_in_")
    assert embedder.get_feature_names_out()[0] == "region0_embedding0"
    # fitted without names: other names are not compared with those of the first fit
    other = [pd.DataFrame(x, columns=[f"area{r}" for r in range(N_REGIONS)]) for x in subjects]
    np.testing.assert_array_equal(embedder.transform(other), embedder.transform(subjects))


def _subjects(n_subjects=3, n_timepoints=20):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((n_timepoints, N_REGIONS)) for _ in range(n_subjects)]


def _sliding_embedder_and_embeddings():
    """Five subjects of different lengths, an embedder fitted with sliding windows on them,
    and their embeddings in one transform."""
    rng = np.random.default_rng(4)
    subjects = [rng.standard_normal((n, N_REGIONS)) for n in (20, 9, 33, 16, 12)]
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), window="sliding", stride=4,
                                 device="cpu").fit(subjects)
    return subjects, embedder, embedder.transform(subjects)


def test_transform_in_chunks_of_subjects_gives_the_same_embeddings(monkeypatch):
    from brainjepa_sk import _base

    subjects, embedder, together = _sliding_embedder_and_embeddings()
    monkeypatch.setattr(_base, "SUBJECTS_PER_CHUNK", 2)
    np.testing.assert_allclose(embedder.transform(subjects), together, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk_size", [2, 3])
def test_token_series_in_chunks_of_subjects_are_those_of_one_transform(monkeypatch, chunk_size):
    """Each chunk's windows are indexed from the chunk's first subject: the series of a
    subject in a later chunk are its own (chunks of 3 of the 5 subjects start a chunk at a
    subject whose index is no multiple of the chunk's size)."""
    subjects, embedder, _ = _sliding_embedder_and_embeddings()
    embedder.set_params(pooling="tokens")
    together = embedder.transform(subjects)
    monkeypatch.setattr(_base, "SUBJECTS_PER_CHUNK", chunk_size)
    chunked = embedder.transform(subjects)
    assert [s.shape for s in chunked] == [s.shape for s in together]
    for ours, theirs in zip(chunked, together):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_processes_under_torchrun_share_the_subjects_each_embedding_each_subject_once(
        monkeypatch):
    subjects, embedder, together = _sliding_embedder_and_embeddings()
    shares = []  # what each of 3 processes hands to the gather: (first subject, embeddings)
    monkeypatch.setattr(_base, "all_gather_objects", lambda out: shares.extend(out) or out)
    # one process at a time here: no others to compare the subjects with
    monkeypatch.setattr(_base, "check_same_subjects", lambda subjects, method: None)
    for rank in range(3):
        monkeypatch.setattr(_base, "world", lambda rank=rank: (rank, 3))
        embedder.transform(subjects)
    embedded = [start + i for start, chunk in shares for i in range(len(chunk))]
    assert sorted(embedded) == list(range(len(subjects)))  # each subject once, none left out
    for start, chunk in shares:
        np.testing.assert_allclose(chunk, together[start:start + len(chunk)], rtol=1e-5,
                                   atol=1e-6)


def test_connectivity_pooling_is_the_correlation_of_the_regions_token_features():
    rng = np.random.default_rng(5)
    subjects = [rng.standard_normal((8, N_REGIONS)) for _ in range(3)]
    module = tiny_module(N_REGIONS)
    embedder = BrainJEPAEmbedder(weights=module, pooling="connectivity", normalization=None,
                                 device="cpu").fit(subjects)
    out = embedder.transform(subjects)
    assert out.shape == (3, N_REGIONS * (N_REGIONS - 1) // 2)
    rows, cols = np.triu_indices(N_REGIONS, k=1)
    for i, x in enumerate(subjects):
        with torch.no_grad():
            tokens = module.target_encoder(torch.from_numpy(x[None]).float())[0].numpy()
        signals = tokens.reshape(N_REGIONS, -1)  # region-major tokens: a region's features
        np.testing.assert_allclose(out[i], np.corrcoef(signals)[rows, cols], atol=1e-5)
    names = embedder.get_feature_names_out()
    assert names[0] == "region0_region1_connectivity" and len(names) == out.shape[1]


def test_token_series_feed_nilearns_tangent_connectivity():
    """Token series feed nilearn's tangent connectivity; they have no feature names, which
    get_feature_names_out says without telling to unset a pandas output never set."""
    from nilearn.connectome import ConnectivityMeasure
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(6)
    subjects = [rng.standard_normal((int(n), N_REGIONS)) for n in rng.integers(8, 20, 12)]
    y = np.arange(12) % 2
    module = tiny_module(N_REGIONS)
    embedder = BrainJEPAEmbedder(weights=module, pooling="tokens", window="sliding", stride=4,
                                 normalization=None, device="cpu").fit(subjects)
    series = embedder.transform(subjects)
    n_windows = np.bincount(embedder.preprocessor_.transform(subjects)[1])
    per_window = 4 * module.embed_dim  # n_patches * dim samples per window
    assert [s.shape for s in series] == [(n * per_window, N_REGIONS) for n in n_windows]
    with torch.no_grad():
        tokens = module.target_encoder(torch.from_numpy(subjects[0][None, :8]).float())[0]
    np.testing.assert_allclose(series[0][:per_window], tokens.reshape(N_REGIONS, -1).T.numpy(),
                               atol=1e-6)
    with pytest.raises(ValueError, match='pooling="tokens" gives one') as raised:
        embedder.get_feature_names_out()
    # no pandas output was set: the error does not tell to unset it
    assert "no feature names" in str(raised.value) and "set_output" not in str(raised.value)
    pipe = make_pipeline(embedder, ConnectivityMeasure(kind="tangent", vectorize=True),
                         LogisticRegression())
    scores = cross_val_score(pipe, subjects, y, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_connectivity_rebuilt_as_the_user_guide_says_is_nilearns_correlation_of_the_tokens():
    """The user guide's recipe: the features are the pairs of triu_indices in order, so the
    matrices rebuilt from them, vectorized by sym_matrix_to_vec, are nilearn's (empirical)
    correlation of the token series, column for column; the features themselves are in
    another order than nilearn's."""
    from nilearn.connectome import ConnectivityMeasure, sym_matrix_to_vec
    from sklearn.covariance import EmpiricalCovariance

    X = _subjects(n_timepoints=8)  # one window each: nothing averaged over windows
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), pooling="connectivity",
                                 normalization=None, device="cpu").fit(X)
    features = embedder.transform(X)
    nilearns = ConnectivityMeasure(kind="correlation", cov_estimator=EmpiricalCovariance(),
                                   vectorize=True, discard_diagonal=True).fit_transform(
        embedder.set_params(pooling="tokens").transform(X))
    rows, cols = np.triu_indices(N_REGIONS, k=1)
    matrices = np.ones((len(features), N_REGIONS, N_REGIONS), dtype=features.dtype)
    matrices[:, rows, cols] = matrices[:, cols, rows] = features
    np.testing.assert_allclose(sym_matrix_to_vec(matrices, discard_diagonal=True), nilearns,
                               atol=1e-5)
    assert not np.allclose(features, nilearns, atol=1e-2)


def test_a_pooling_set_after_fit_is_checked_at_transform():
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), n_frames=2, device="cpu")
    X = _subjects()
    embedder.fit(X)  # windows of one patch: "mean" works
    for pooling in ("roi_std", "lagged"):
        with pytest.raises(ValueError, match=f'pooling="{pooling}" needs at least 2 time'):
            embedder.set_params(pooling=pooling).transform(X)


def test_windows_that_do_not_cut_into_patches_are_refused_at_fit():
    with pytest.raises(ValueError, match="n_frames=7 is not a positive multiple of "
                                         "patch_size=2"):
        BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), n_frames=7, device="cpu").fit(
            _subjects())


def test_a_model_that_does_not_say_its_window_length_needs_n_frames():
    from brainjepa_sk.nn.model import BrainJEPA

    module = BrainJEPA(torch.randn(N_REGIONS, 3, generator=torch.Generator().manual_seed(0)),
                       patch_size=2, embed_dim=8, depth=1, num_heads=2, predictor_embed_dim=8,
                       predictor_depth=1)  # no n_patches: any window length
    with pytest.raises(ValueError, match="the model does not say its window length: set "
                                         "n_frames"):
        BrainJEPAEmbedder(weights=module, device="cpu").fit(_subjects())
    embedder = BrainJEPAEmbedder(weights=module, n_frames=8, device="cpu").fit(_subjects())
    assert embedder.preprocessor_.n_frames == 8


def test_another_window_than_the_checkpoints_does_not_inherit_its_stride_or_shortest_length(
        tmp_path):
    module = tiny_module(N_REGIONS)
    path = tmp_path / "model.pt"
    save_checkpoint(path, module, preprocessing=Preprocessor(
        8, window="sliding", stride=6, min_frames=8).fit(_subjects()).to_dict())
    embedder = BrainJEPAEmbedder(weights=path, n_frames=4, device="cpu").fit(_subjects())
    prep = embedder.preprocessor_
    assert (prep.n_frames, prep.min_frames, prep.stride) == (4, None, None)  # stride: a window
    longer = BrainJEPAEmbedder(weights=path, n_frames=12, device="cpu").fit(_subjects())
    assert longer.preprocessor_.stride is None
    kept = BrainJEPAEmbedder(weights=path, device="cpu").fit(_subjects())
    # the same window: the saved settings hold
    assert (kept.preprocessor_.min_frames, kept.preprocessor_.stride) == (8, 6)


def test_invalid_settings_given_are_not_blamed_on_the_checkpoint(tmp_path):
    """A stride longer than the window, min_frames longer than it, or a t_r too far from the
    model's TR to resample, set on the embedder, were reported as '<file> holds an invalid
    preprocessing: ...': the file was blamed for the caller's own setting (it looked
    damaged)."""
    module = tiny_module(N_REGIONS)
    path = tmp_path / "model.pt"
    save_checkpoint(path, module, preprocessing=Preprocessor(
        8, window="sliding", stride=4, normalization="robust").fit(_subjects()).to_dict())
    for params, problem in ((dict(stride=16), "stride=16 is longer than a window"),
                            (dict(min_frames=20), "min_frames=20 is longer than a window"),
                            (dict(t_r=0.01, model_t_r=2.0), "cannot resample from TR 0.01 s")):
        with pytest.raises(ValueError, match=problem) as caught:
            BrainJEPAEmbedder(weights=path, device="cpu", **params).fit(_subjects())
        assert "holds an invalid preprocessing" not in str(caught.value)
    # valid settings given explicitly still join the saved preprocessing
    prep = BrainJEPAEmbedder(weights=path, stride=2, min_frames=6, device="cpu").fit(
        _subjects()).preprocessor_
    assert (prep.stride, prep.min_frames, prep.normalization) == (2, 6, "robust")


def test_region_names_at_transform_follow_scikit_learns_rules():
    names = [f"roi{i}" for i in range(N_REGIONS)]
    arrays = _subjects()
    frames = [pd.DataFrame(x, columns=names) for x in arrays]
    named = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(frames)
    with pytest.warns(UserWarning, match="X does not have valid feature names, but "
                                         "BrainJEPAEmbedder was fitted with feature names"):
        named.transform(arrays)
    swapped = [x[[names[1], names[0], *names[2:]]] for x in frames]
    with pytest.raises(ValueError, match=r"differ from those seen in fit: column 0 is 'roi1' but "
                                         r"was 'roi0', column 1 is 'roi0' but was 'roi1' \(2 in"):
        named.transform(swapped)
    # the same regions in another order are told how to be put back in fit's order
    with pytest.raises(ValueError, match=r"\(2 in all\); they are the regions of fit in another "
                                         r"order: reorder each subject's columns as "
                                         r"feature_names_in_ lists them, "
                                         r"x\[est\.feature_names_in_\]$"):
        named.transform(swapped)
    renamed = [x.rename(columns={names[0]: "other"}) for x in frames]
    with pytest.raises(ValueError, match=r"column 0 is 'other' but was 'roi0' \(1 in all\)$"):
        named.transform(renamed)
    reordered = [x[named.feature_names_in_] for x in swapped]
    np.testing.assert_array_equal(named.transform(reordered), named.transform(frames))
    unnamed = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(arrays)
    with pytest.warns(UserWarning, match="X has feature names, but BrainJEPAEmbedder was "
                                         "fitted without feature names"):
        unnamed.transform(frames)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        named.transform(frames)
        unnamed.transform(arrays)


def test_the_default_weights_are_hashed_once_per_process_unless_they_change(
        tmp_path, monkeypatch):
    """Every fit with weights="ukbiobank" (each cross-validation fold) checks the files: a
    settled file is read for its hash once; a file changed since is read again."""
    import os

    from brainjepa_sk.datasets import _weights

    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x00" * 4096)
    old = 1_000_000_000
    os.utime(path, (old, old))
    reads = []
    monkeypatch.setattr(_weights, "_DIGESTS", {})
    real = _weights.sha256_of
    monkeypatch.setattr(_weights, "sha256_of", lambda p: reads.append(p) or real(p))
    first = _weights._sha256_once(path)
    assert _weights._sha256_once(path) == first and len(reads) == 1
    path.write_bytes(b"\x01" * 4096)  # same size, new contents, new time
    assert _weights._sha256_once(path) != first and len(reads) == 2
    # written just now: hashed again at every call, in case it changes within one timestamp
    assert _weights._sha256_once(path) and len(reads) == 3


def test_default_weights_replaced_under_their_old_time_are_hashed_again(tmp_path, monkeypatch):
    """The digest remembered for the default weights is of a file's size and modification
    time: a file replaced by one of another size that keeps the old time (``cp -p``,
    ``rsync -t``, an unpacked archive) is read again, not given the old file's hash."""
    import hashlib
    import os

    from brainjepa_sk.datasets import _weights

    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x00" * 4096)
    old = 1_000_000_000
    os.utime(path, (old, old))
    monkeypatch.setattr(_weights, "_DIGESTS", {})
    assert _weights._sha256_once(path) == hashlib.sha256(b"\x00" * 4096).hexdigest()
    path.write_bytes(b"\x00" * 2048)  # cut short, its time put back
    os.utime(path, (old, old))
    assert _weights._sha256_once(path) == hashlib.sha256(b"\x00" * 2048).hexdigest()


def test_the_encoder_copy_kept_on_another_device_is_released_by_a_cpu_transform():
    """transform keeps a copy of the encoder on its GPU between calls (the meta device stands
    in for one here); a later transform on the CPU lets it go."""
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(_subjects())
    copy_on_device = embedder._encoder_on(torch.device("meta"))
    assert copy_on_device is embedder._encoder_on(torch.device("meta"))  # kept between calls
    assert next(copy_on_device.parameters()).device.type == "meta"
    assert embedder._encoder_on(torch.device("cpu")) is embedder.encoder_
    assert "_device_cache" not in embedder.__dict__


def test_an_embedder_without_a_record_of_its_fit_settings_transforms_without_warning():
    """An embedder fitted without the record of its preprocessing settings (a pickle from a
    version before it) has nothing to compare: transform embeds without a warning or an
    error."""
    X = _subjects()
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(X)
    before = embedder.transform(X)
    del embedder._preprocessed_with_
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(embedder.set_params(stride=3).transform(X), before)


def test_window_chunks_of_a_plain_list_hold_each_chunks_own_subjects():
    """Subjects given as a plain list (no validated lengths) are cut a chunk at a time too,
    each chunk's windows those of its own subjects only."""
    subjects = _subjects(n_subjects=5)
    preprocessor = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS),
                                     device="cpu").fit(subjects).preprocessor_
    chunks = list(_base.window_chunks(subjects, preprocessor, chunk_size=2))
    assert [(start, n) for start, n, _, _ in chunks] == [(0, 2), (2, 2), (4, 1)]
    for start, n, windows, subject_index in chunks:
        expected, expected_index = preprocessor.transform(subjects[start:start + n])
        np.testing.assert_array_equal(windows, expected)
        np.testing.assert_array_equal(subject_index, expected_index)
        assert set(subject_index.tolist()) == set(range(n))


def test_lagged_feature_names_say_which_region_leads():
    # tokens where region b leads region a by one patch: a's patch t + 1 is b's patch t
    from brainjepa_sk.nn import TokenPooling

    n_patches, dim = 6, 8
    rng = torch.Generator().manual_seed(0)
    b = torch.randn(n_patches, dim, generator=rng)
    a = torch.cat([torch.randn(1, dim, generator=rng), b[:-1]])
    c = torch.randn(n_patches, dim, generator=rng)
    tokens = torch.cat([a, b, c])[None]  # region-major (1, 3 * n_patches, dim)
    pooled = TokenPooling("lagged", n_regions=3)(tokens)[0].numpy()
    X = [pd.DataFrame(np.random.default_rng(k).standard_normal((8, 3)), columns=["a", "b", "c"])
         for k in range(2)]
    embedder = BrainJEPAEmbedder(tiny_module(n_regions=3), pooling="lagged",
                                 normalization=None).fit(X)
    lagged = dict(zip(embedder.get_feature_names_out(), pooled))
    assert lagged["a_b_lag1"] > 0.7 > abs(lagged["b_a_lag1"])


def test_connectivity_names_follow_the_pairs_and_input_features_must_be_the_regions():
    rng = np.random.default_rng(0)
    regions = ["a", "b", "c", "d", "e"]
    X = [pd.DataFrame(rng.standard_normal((16, 5)), columns=regions) for _ in range(3)]
    module = tiny_module(n_regions=5)
    embedder = BrainJEPAEmbedder(module, pooling="connectivity", normalization=None).fit(X)
    names = embedder.get_feature_names_out()
    rows, cols = np.triu_indices(5, 1)  # the order of TokenPooling's upper triangle
    assert list(names) == [f"{regions[i]}_{regions[j]}_connectivity"
                           for i, j in zip(rows, cols)]
    # each named value is that pair's correlation of the regions' token signals
    tokens = embedder.set_params(pooling="tokens").transform(X[:1])[0]
    features = embedder.set_params(pooling="connectivity").transform(X[:1])[0]
    correlation = np.corrcoef(tokens.T)
    for name, value in zip(names, features):
        a, b = name.split("_")[:2]
        assert value == pytest.approx(correlation[regions.index(a), regions.index(b)], abs=1e-4)
    with pytest.raises(ValueError, match="do not match the regions"):
        embedder.get_feature_names_out(["v", "w", "x", "y", "z"])
    with pytest.raises(ValueError, match="do not match the regions"):
        embedder.get_feature_names_out(regions[::-1])
    assert list(embedder.get_feature_names_out(regions)) == list(names)


@pytest.mark.parametrize("pooling", ["mean", "roi", "roi_std", "connectivity", "lagged"])
def test_input_features_are_checked_against_the_regions_whatever_the_pooling(pooling):
    regions = [f"roi{r}" for r in range(N_REGIONS)]
    X = [pd.DataFrame(x, columns=regions) for x in _subjects()]
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), pooling=pooling,
                                 device="cpu").fit(X)
    names = embedder.get_feature_names_out()
    assert list(embedder.get_feature_names_out(regions)) == list(names)
    for wrong in (regions[:1], regions[::-1]):
        with pytest.raises(ValueError, match="do not match the regions seen in fit"):
            embedder.get_feature_names_out(wrong)
    # the message names the count, or the first names that differ (NumPy's as plain strings)
    with pytest.raises(ValueError, match=r"^input_features do not match the regions seen in "
                                         rf"fit: 1 names for {N_REGIONS} regions$"):
        embedder.get_feature_names_out(regions[:1])
    swapped = np.array([regions[1], regions[0], *regions[2:]])
    with pytest.raises(ValueError, match=r"^input_features do not match the regions seen in "
                                         r"fit: input_features\[0\] is 'roi1' but the region "
                                         r"was 'roi0', input_features\[1\] is 'roi0' but the "
                                         r"region was 'roi1' \(2 in all\)$"):
        embedder.get_feature_names_out(swapped)


def test_the_embedder_runs_the_encoder_in_eval_mode_without_stochastic_depth():
    """A module given in training mode (as built), with stochastic depth: the embeddings are
    the eval-mode encoder's, the same at every call."""
    module = tiny_module(N_REGIONS, depth=2)
    module.target_encoder.set_drop_path_rate(0.5)  # the second block's
    assert module.training
    X = _subjects()  # 20 frames: one centred window of 8 a subject
    embedder = BrainJEPAEmbedder(weights=module, normalization=None, device="cpu").fit(X)
    assert not any(m.training for m in embedder.encoder_.modules())
    out = embedder.transform(X)
    windows, _ = embedder.preprocessor_.transform(X)
    with torch.no_grad():
        tokens = copy.deepcopy(module.target_encoder).eval()(torch.from_numpy(windows))
    np.testing.assert_allclose(out, tokens.mean(1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(embedder.transform(X), out)


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_the_precision_setting_reaches_the_encoder_on_the_cpu(precision, dtype):
    X = _subjects()
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), normalization=None,
                                 device="cpu", precision=precision).fit(X)
    seen = []
    embedder.encoder_.blocks[0].attn.qkv.register_forward_hook(
        lambda module, inputs, out: seen.append(out.dtype))
    out = embedder.transform(X)
    assert seen and set(seen) == {dtype}
    assert out.dtype == np.float32 and np.isfinite(out).all()


def test_the_precision_values_the_estimators_take_are_those_the_runtime_resolves():
    """The parameter check and resolve_autocast, which reads the value at fit and transform,
    agree: a value only one of them took would pass one and fail the other."""
    from brainjepa_sk import BrainJEPAClassifier, BrainJEPAPretrainer, BrainJEPARegressor
    from brainjepa_sk.train.runtime import PRECISIONS, resolve_autocast

    for kind in (BrainJEPAEmbedder, BrainJEPAPretrainer, BrainJEPAClassifier,
                 BrainJEPARegressor):
        (options,) = kind._parameter_constraints["precision"]
        assert options.options == set(PRECISIONS), kind.__name__
    for precision in PRECISIONS:
        resolve_autocast(precision, torch.device("cpu"))


def test_a_failed_refit_leaves_the_fitted_embedder_as_it_was():
    names = [f"roi{r}" for r in range(N_REGIONS)]
    X = [pd.DataFrame(x, columns=names) for x in _subjects()]
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), pooling="roi",
                                 device="cpu").fit(X)
    before, state = embedder.transform(X), dict(vars(embedder))
    with pytest.raises(ValueError, match="X has 6 features"):  # the weights' 8 regions
        embedder.fit([x.iloc[:, :6].to_numpy() for x in X])
    assert vars(embedder).keys() == state.keys()
    assert all(vars(embedder)[name] is value for name, value in state.items())
    assert embedder.n_features_in_ == N_REGIONS and list(embedder.feature_names_in_) == names
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(embedder.transform(X), before)


def test_a_failed_first_fit_leaves_the_embedder_unfitted():
    """An attribute the failed fit had set (n_features_in_ from the input check) is removed:
    the embedder is not taken for fitted."""
    from sklearn.exceptions import NotFittedError

    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), pooling="roi_std", n_frames=2,
                                 device="cpu")
    params = dict(vars(embedder))
    with pytest.raises(ValueError, match="at least 2 time patches"):  # one patch of 2 frames
        embedder.fit(_subjects())
    assert vars(embedder) == params
    with pytest.raises(NotFittedError):
        embedder.transform(_subjects())


def test_an_embedder_used_before_fit_says_that_fit_loads_the_weights():
    """Given a saved model as weights, an embedder looks ready to use; scikit-learn's message
    only said to call fit, as if it had to be trained."""
    from sklearn.exceptions import NotFittedError

    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu")
    for use in (embedder.transform, embedder.get_feature_names_out):
        with pytest.raises(NotFittedError, match=r"BrainJEPAEmbedder instance is not fitted "
                                                 r"yet: its fit\(X\) loads the weights .*trains "
                                                 r"nothing"):
            use(_subjects()) if use == embedder.transform else use()


def test_a_normalization_given_explicitly_replaces_the_checkpoints(tmp_path):
    """The checkpoint's scaling (robust, with statistics of other data) is the default; a
    normalization given explicitly is used instead, learned from the fit's subjects."""
    module = tiny_module(N_REGIONS)
    X = _subjects()
    path = tmp_path / "model.pt"
    save_checkpoint(path, module, preprocessing=Preprocessor(8, normalization="robust").fit(
        [x * 40 + 500 for x in X]).to_dict())
    assert BrainJEPAEmbedder(weights=path, device="cpu").fit(X).preprocessor_.normalization == (
        "robust")
    for normalization in ("global_zscore", None):
        embedder = BrainJEPAEmbedder(weights=path, normalization=normalization,
                                     device="cpu").fit(X)
        assert embedder.preprocessor_.normalization == normalization
        windows, _ = Preprocessor(8, normalization=normalization).fit(X).transform(X)
        with torch.no_grad():
            expected = module.target_encoder(torch.from_numpy(windows)).mean(1).numpy()
        np.testing.assert_allclose(embedder.transform(X), expected, rtol=1e-5, atol=1e-6)


def test_naming_the_checkpoints_own_normalization_keeps_its_statistics(tmp_path):
    """normalization="robust" given explicitly for a robust checkpoint is "auto": the median
    and IQR are the pretraining data's, not relearned from the subjects given to fit."""
    X = _subjects()
    saved = Preprocessor(8, normalization="robust").fit([x * 40 + 500 for x in X])
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(N_REGIONS), preprocessing=saved.to_dict())
    embedder = BrainJEPAEmbedder(weights=path, normalization="robust", device="cpu").fit(X)
    np.testing.assert_array_equal(embedder.preprocessor_.median_, saved.median_)
    np.testing.assert_array_equal(embedder.preprocessor_.iqr_, saved.iqr_)


@pytest.mark.parametrize("estimator", ["embedder", "classifier"])
@pytest.mark.parametrize("scale, offset, warned", [(1.0, 0.0, False), (0.5, 2.0, False),
                                                   (1e4, 1e4, True), (1e-4, 1.0, False)])
def test_series_off_the_scale_of_a_robust_checkpoint_are_warned_of(tmp_path, estimator, scale,
                                                                   offset, warned):
    """A checkpoint's robust statistics are the pretraining data's, not refitted: series on
    a larger scale (raw BOLD where the pretraining series were standardized) reached the model
    blown up without a word. Tiny fluctuations are not warned of: pooled statistics leave
    some pretraining data so (see the raw-BOLD test below)."""
    from brainjepa_sk import BrainJEPAClassifier

    X = _subjects(n_subjects=4)
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(N_REGIONS), preprocessing=Preprocessor(
        8, normalization="robust").fit(X).to_dict())
    given = [x * scale + offset for x in X]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if estimator == "embedder":
            BrainJEPAEmbedder(weights=path, device="cpu").fit(given)
        else:
            BrainJEPAClassifier(path, max_epochs=1, verbose=0).fit(given, [0, 1, 0, 1])
    messages = [str(warning.message) for warning in caught
                if "on another scale than the data" in str(warning.message)]
    assert len(messages) == warned
    if warned:
        assert messages[0].startswith(f"the series are on another scale than the data {path} "
                                      "was pretrained on: its robust statistics")
        assert "normalization='global_zscore' or 'roi_zscore'" in messages[0]


def test_raw_bold_scaled_by_the_statistics_learned_from_it_is_not_warned_of(tmp_path):
    """Raw BOLD whose baselines differ between subjects (scanner gain, around 1000) with 1%
    fluctuations: robust statistics pooled over the subjects leave each one's fluctuations at
    about 0.01, on the very subjects they were learned from. The warning said they were on
    another scale than the pretraining data; only series far above unit scale are."""
    rng = np.random.default_rng(0)
    baselines = rng.lognormal(np.log(1000), 1.0, size=(6, 1, N_REGIONS))
    X = list(baselines * (1 + 0.01 * rng.standard_normal((6, 40, N_REGIONS))))
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(N_REGIONS), preprocessing=Preprocessor(
        8, normalization="robust").fit(X).to_dict())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embedder = BrainJEPAEmbedder(weights=path, device="cpu").fit(X)
        embedder.transform(X[:1])
        assert _scale_warnings(caught) == []
        embedder.transform([x * 1e4 for x in X[:1]])  # raw BOLD of another scanner's units
    assert len(_scale_warnings(caught)) == 1


def _scale_warnings(caught):
    return [str(warning.message) for warning in caught
            if "on another scale than the data" in str(warning.message)]


@pytest.mark.parametrize("estimator", ["embedder", "classifier"])
@pytest.mark.parametrize("scale, offset, warned", [(0.5, 2.0, False), (1e4, 1e4, True)])
def test_new_series_off_the_scale_of_a_robust_checkpoint_are_warned_of_at_transform(
        tmp_path, estimator, scale, offset, warned):
    """transform and predict apply the checkpoint's robust statistics to new series as fit
    does: series on another scale than the pretraining data reached the model silently there
    (fit, given data on the right scale, had not warned). One warning per call."""
    from brainjepa_sk import BrainJEPAClassifier

    X = _subjects(n_subjects=4)
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(N_REGIONS), preprocessing=Preprocessor(
        8, normalization="robust").fit(X).to_dict())
    if estimator == "embedder":
        fitted = BrainJEPAEmbedder(weights=path, device="cpu").fit(X)
        apply = fitted.transform
    else:
        fitted = BrainJEPAClassifier(path, max_epochs=1, verbose=0).fit(X, [0, 1, 0, 1])
        apply = fitted.predict
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply([x * scale + offset for x in X])
    messages = _scale_warnings(caught)
    assert len(messages) == warned
    if warned:
        assert messages[0].startswith(f"the series are on another scale than the data {path} "
                                      "was pretrained on: its robust statistics")


def test_new_series_off_the_scale_of_the_statistics_of_fit_are_warned_of_at_transform():
    """Robust statistics the embedder's own fit learned (weights that carry none) are applied
    to new series unchanged: the warning names the fit as where they came from."""
    X = _subjects(n_subjects=4)
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), n_frames=8,
                                 normalization="robust", device="cpu").fit(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embedder.transform(X)
        assert _scale_warnings(caught) == []
        embedder.transform([x * 1e4 + 1e4 for x in X])
    messages = _scale_warnings(caught)
    assert len(messages) == 1
    assert messages[0].startswith("the series are on another scale than the data this "
                                  "BrainJEPAEmbedder was fitted on: its robust statistics "
                                  "(normalization='robust', learned by fit and not refitted)")
    assert "Scale them as the data of fit were, or refit with" in messages[0]


@pytest.mark.parametrize("weights, normalization, estimator, origin", [
    ("file", "auto", "embedder", "the data {path} was pretrained on: its robust statistics "
                                 "(normalization='robust', learned at pretraining"),
    ("file", "auto", "classifier", "the data {path} was pretrained on: its robust statistics"),
    ("file", "robust", "embedder", "the data the statistics were learned from ({path}'s "
                                   "pretraining data, or the data this BrainJEPAEmbedder was "
                                   "fitted on: it was fitted before it recorded which): its "
                                   "robust statistics (normalization='robust', learned at "
                                   "pretraining or by fit and not refitted)"),
    ("carrying", "auto", "embedder", "the data the model was pretrained on: its robust"),
    ("bare", "robust", "embedder", "the data this BrainJEPAEmbedder was fitted on: its robust "
                                   "statistics (normalization='robust', learned by fit"),
    # statistics without their window length are not taken from a module: fit learns its own
    ("partial", "auto", "embedder", "the data this BrainJEPAEmbedder was fitted on: its robust "
                                    "statistics (normalization='robust', learned by fit"),
], ids=["file_auto", "file_auto_classifier", "file_robust", "carrying_module", "bare_module",
        "module_without_n_frames"])
def test_an_estimator_fitted_before_it_recorded_where_its_statistics_came_from_says_it_truly(
        tmp_path, weights, normalization, estimator, origin):
    """An embedder or fine-tuner pickled before it recorded where its robust statistics came
    from (here the record deleted) said they were learned by its fit, also where they were a
    checkpoint's: the settings of its fit tell (normalization='auto' takes a checkpoint's own,
    a module shows what it carries), and where they cannot, the message names both."""
    from brainjepa_sk import BrainJEPAClassifier

    X = _subjects(n_subjects=4)
    statistics = Preprocessor(8, normalization="robust").fit(X).to_dict()
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(N_REGIONS), preprocessing=statistics)
    module = tiny_module(N_REGIONS)
    if weights == "carrying":
        module.preprocessing = statistics
    elif weights == "partial":
        module.preprocessing = {k: v for k, v in statistics.items() if k != "n_frames"}
    given = {"file": path}.get(weights, module)
    settings = dict(normalization=normalization, n_frames=8)
    if estimator == "embedder":
        fitted = BrainJEPAEmbedder(weights=given, device="cpu", **settings).fit(X)
    else:
        fitted = BrainJEPAClassifier(given, max_epochs=1, verbose=0, **settings).fit(
            X, [0, 1, 0, 1])
    # as pickled before it was recorded
    vars(fitted.preprocessor_).pop("_statistics_source", None)
    fitted = pickle.loads(pickle.dumps(fitted))
    apply = fitted.transform if estimator == "embedder" else fitted.predict  # the unpickled
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply([x * 1e4 + 1e4 for x in X])
    messages = _scale_warnings(caught)
    assert len(messages) == 1
    assert messages[0].startswith("the series are on another scale than "
                                  + origin.format(path=path)), messages[0]


@pytest.mark.parametrize("estimator", ["embedder", "classifier"])
def test_an_estimator_fitted_before_it_recorded_its_statistics_origin_goes_by_its_fits_settings(
        tmp_path, estimator):
    """Told by its settings, an estimator pickled before it recorded where its robust
    statistics came from goes by those of its fit, not by a normalization set since: fitted
    with normalization='auto' on a checkpoint, they are the checkpoint's (an explicit 'robust'
    set after fit would have named both)."""
    from brainjepa_sk import BrainJEPAClassifier

    X = _subjects(n_subjects=4)
    statistics = Preprocessor(8, normalization="robust").fit(X).to_dict()
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(N_REGIONS), preprocessing=statistics)
    if estimator == "embedder":
        fitted = BrainJEPAEmbedder(weights=path, device="cpu", normalization="auto",
                                   n_frames=8).fit(X)
    else:
        fitted = BrainJEPAClassifier(path, max_epochs=1, verbose=0, normalization="auto",
                                     n_frames=8).fit(X, [0, 1, 0, 1])
    vars(fitted.preprocessor_).pop("_statistics_source", None)  # as pickled before
    fitted = pickle.loads(pickle.dumps(fitted))
    fitted.set_params(normalization="robust")  # not refitted: the fit's statistics stay
    apply = fitted.transform if estimator == "embedder" else fitted.predict
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply([x * 1e4 + 1e4 for x in X])
    messages = _scale_warnings(caught)
    assert len(messages) == 1
    assert messages[0].startswith(f"the series are on another scale than the data {path} was "
                                  "pretrained on: its robust statistics"), messages[0]


def test_default_weights_fitted_before_recording_their_statistics_origin_say_fit_learned_them(
        tmp_path, monkeypatch, official_dir):
    """The published weights carry no robust statistics: with normalization='robust' fit
    learned them, which an embedder pickled before it recorded so says."""
    use_local_ukbiobank(monkeypatch, official_dir)
    X = np.random.default_rng(0).standard_normal((2, 40, 24))
    fitted = BrainJEPAEmbedder(data_dir=tmp_path, num_heads=4, device="cpu",
                               normalization="robust").fit(X)
    vars(fitted.preprocessor_).pop("_statistics_source", None)  # as pickled before
    fitted = pickle.loads(pickle.dumps(fitted))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted.transform(X * 1e4 + 1e4)
    messages = _scale_warnings(caught)
    assert len(messages) == 1
    assert messages[0].startswith("the series are on another scale than the data this "
                                  "BrainJEPAEmbedder was fitted on: its robust statistics "
                                  "(normalization='robust', learned by fit"), messages[0]


def test_the_default_weights_use_num_heads_and_ignore_only_gradients(tmp_path, monkeypatch,
                                                                     official_dir, reference):
    """num_heads applies to the UK Biobank research checkpoint (it is not reported as ignored);
    gradients, which the fetched files carry, is."""
    use_local_ukbiobank(monkeypatch, official_dir)
    fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    X = reference["x_nilearn"]
    settings = dict(data_dir=tmp_path, num_heads=4, normalization=None, model_t_r=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embedder = BrainJEPAEmbedder(**settings).fit(X)
    expected = reference["target_encoder_tokens"].mean(axis=1)
    assert np.abs(embedder.transform(X) - expected).max() <= 1e-5
    with pytest.warns(UserWarning, match=r'^gradients is ignored: weights="ukbiobank" carries'):
        BrainJEPAEmbedder(**settings, gradients=official_dir / "gradient.csv").fit(X)


def test_pickles_leave_out_the_encoder_copy_kept_on_another_device():
    """The copy of the encoder that transform keeps on a GPU (the meta device stands in for
    one) is not pickled: the restored embedder holds only the CPU encoder, and embeds alike."""
    X = _subjects()
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(X)
    embedder._encoder_on(torch.device("meta"))
    assert "_device_cache" in vars(embedder)
    restored = pickle.loads(pickle.dumps(embedder))
    assert "_device_cache" not in vars(restored)
    assert "_device_cache" in vars(embedder)  # pickling leaves the live embedder's copy alone
    np.testing.assert_array_equal(restored.transform(X), embedder.transform(X))


def test_model_t_r_none_embeds_the_series_at_their_own_tr():
    """model_t_r=None says the model's TR is unknown: the series are not resampled, even to
    the TR the weights carry (what model_t_r="auto" takes), and t_r is reported as ignored."""
    module = tiny_module(N_REGIONS)
    X = _subjects(n_timepoints=40)
    module.preprocessing = Preprocessor(8, t_r=1.0, target_t_r=2.0, normalization=None).fit(
        X).to_dict()
    resampled = BrainJEPAEmbedder(weights=module, t_r=1.0, device="cpu").fit(X)
    assert resampled.preprocessor_.target_t_r == 2.0
    with pytest.warns(UserWarning, match="t_r=1.0 is ignored"):
        kept = BrainJEPAEmbedder(weights=module, t_r=1.0, model_t_r=None, device="cpu").fit(X)
    assert kept.preprocessor_.target_t_r is None
    windows = np.stack([x[16:24] for x in X]).astype(np.float32)  # the centre, not resampled
    with torch.no_grad():
        expected = module.target_encoder(torch.from_numpy(windows)).mean(1).numpy()
    np.testing.assert_allclose(kept.transform(X), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(resampled.transform(X), expected, atol=1e-3)


def test_a_tr_set_after_fit_is_no_change_only_when_it_resamples_as_fit_did():
    """None and the model's TR both leave series as they are: either set after fit for the
    other is no change, another TR is. Without a model TR (model_t_r=None) fit ignored t_r,
    but a refit would record the new one: a changed t_r is named all the same."""
    X = _subjects()
    module = tiny_module(N_REGIONS)
    embedder = BrainJEPAEmbedder(weights=module, model_t_r=2.0, device="cpu").fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embedder.set_params(t_r=2.0).transform(X)
    with pytest.warns(UserWarning, match=r"^t_r=1.0 \(fitted with None\): changed since fit"):
        embedder.set_params(t_r=1.0).transform(X)
    with pytest.warns(UserWarning, match="t_r=1.0 is ignored"):
        embedder = BrainJEPAEmbedder(weights=module, t_r=1.0, model_t_r=None,
                                     device="cpu").fit(X)
    with pytest.warns(UserWarning, match=r"^t_r=3.0 \(fitted with 1.0\): changed since fit"):
        embedder.set_params(t_r=3.0).transform(X)


def test_subjects_are_averaged_over_their_own_rows_and_one_without_rows_is_nan():
    """The helper behind transform and predict: each subject's mean row, and NaN for a subject
    that has no rows, even the last one."""
    values = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    with np.errstate(invalid="ignore"):
        out = _base.average_by_subject(values, np.array([0, 0, 1, 1]), 3)
    assert out.dtype == np.float32 and out.shape == (3, 2)
    np.testing.assert_array_equal(out[:2], [[2.0, 3.0], [3.0, 1.0]])
    assert np.isnan(out[2]).all()
    # predict_proba's float64 (a mean of float32 probabilities summed in float64)
    out = _base.average_by_subject(values[:2], np.array([0, 0]), 1, dtype=np.float64)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[2.0, 3.0]])


def test_a_window_of_no_frames_is_refused_as_not_cutting_into_patches():
    assert _base.check_window_patches(8, 4) == 2
    for n_frames in (0, 6):
        with pytest.raises(ValueError, match="not a positive multiple of patch_size=4"):
            _base.check_window_patches(n_frames, 4)


# -- round 13: what planted bugs in datasets/_weights.py showed the tests above let through ---


def test_the_hash_of_a_file_covers_every_block_not_only_the_first(tmp_path):
    """Files are hashed in 1 MiB blocks: damage past the first block changes the hash too."""
    import hashlib

    data = np.random.default_rng(0).integers(0, 256, 3 * (1 << 20) + 5, dtype=np.uint8)
    path = tmp_path / "big.bin"
    path.write_bytes(data.tobytes())
    assert _weights.sha256_of(path) == hashlib.sha256(data.tobytes()).hexdigest()
    data[-1] ^= 1
    path.write_bytes(data.tobytes())
    assert _weights.sha256_of(path) == hashlib.sha256(data.tobytes()).hexdigest()


@pytest.mark.parametrize("where", ["body", "status line"])
def test_a_download_that_breaks_off_is_an_oserror_naming_the_file_and_leaves_nothing(
        tmp_path, monkeypatch, official_dir, where):
    """http.client's errors (IncompleteRead in the body, BadStatusLine from the server's reply)
    are no OSError: they are turned into the usual missing-file error (where to put the file
    by hand), and no partial file is left in the cache."""
    import http.client
    import urllib.request

    use_local_ukbiobank(monkeypatch, official_dir)

    class _Broken:
        def __init__(self):
            if where == "status line":
                raise http.client.BadStatusLine("garbage")

        def read(self, *args):
            raise http.client.IncompleteRead(b"partial", 100)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: _Broken())
    with pytest.raises(OSError, match=r"jepa-ep300.pth.tar is not in .* the download failed "
                                      r"\(the download of .* broke off") as info:
        fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    # a link to open in a browser, not a file id alone
    assert ("Get it from the authors' Google Drive (https://drive.google.com/file/d/"
            "1LL3gM-i5SLDWCFyvj71M3peLeU6V2qMR/view, file id") in str(info.value)
    assert list((tmp_path / "brainjepa_ukbiobank").iterdir()) == []


@pytest.mark.parametrize("verbose", [0, 1])
def test_verbose_tells_each_download_and_quiet_says_nothing(tmp_path, monkeypatch, official_dir,
                                                           capsys, verbose):
    """A download of about 1 GB says so when it starts; verbose=0 prints nothing."""
    use_local_ukbiobank(monkeypatch, official_dir)
    fetch_ukbiobank_weights(data_dir=tmp_path, verbose=verbose)
    fetch_ukbiobank_weights(data_dir=tmp_path, verbose=verbose)  # cached: nothing to tell
    out = capsys.readouterr().out
    if verbose:
        folder = tmp_path / "brainjepa_ukbiobank"
        assert out.splitlines() == [f"Downloading jepa-ep300.pth.tar to {folder} ...",
                                    f"Downloading gradient_mapping_450.csv to {folder} ..."]
    else:
        assert out == ""


@pytest.mark.parametrize("part", ["model", "online encoder"])
def test_the_fitted_encoder_is_frozen_in_eval_mode(part):
    """encoder_ is a frozen feature extractor: no parameter asks for gradients (so using it
    in a larger model does not train it by accident), and it is in eval mode, even when the
    module given is a trainable encoder in train mode (which is left as it was)."""
    module = tiny_module(N_REGIONS)
    weights = module if part == "model" else module.encoder.train()
    embedder = BrainJEPAEmbedder(weights=weights, n_frames=8, device="cpu").fit(_subjects())
    assert all(p.requires_grad for p in module.encoder.parameters()) and module.encoder.training
    assert not any(p.requires_grad for p in embedder.encoder_.parameters())
    assert not any(m.training for m in embedder.encoder_.modules())


def test_transform_runs_the_encoder_batch_size_windows_at_a_time():
    """batch_size is the number of windows per forward pass (it bounds transform's memory):
    3 subjects x 4 sliding windows in passes of 5, 5 and 2; the embeddings do not depend on it."""
    X = _subjects(n_timepoints=20)
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), window="sliding", stride=4,
                                 batch_size=5, device="cpu").fit(X)
    seen = []
    embedder.encoder_.register_forward_hook(lambda module, args, kwargs, out: seen.append(
        len(args[0])), with_kwargs=True)
    out = embedder.transform(X)
    assert seen == [5, 5, 2]
    np.testing.assert_allclose(embedder.set_params(batch_size=12).transform(X), out, rtol=1e-5,
                               atol=1e-6)
    assert seen[3:] == [12]


def test_lagged_pooling_needs_two_time_patches_like_roi_std():
    """The lag-one correlation pairs each patch with the one before: windows of one time patch
    have no pair, so fit refuses them as it does for roi_std."""
    for pooling in ("lagged", "roi_std"):
        with pytest.raises(ValueError, match=f'pooling="{pooling}" needs at least 2 time patches'):
            BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), pooling=pooling, n_frames=2,
                              device="cpu").fit(_subjects())
        # two patches (of 2 frames) are enough
        out = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), pooling=pooling, n_frames=4,
                                device="cpu").fit_transform(_subjects())
        assert out.shape[0] == 3 and np.isfinite(out).all()


def test_a_subject_too_short_for_transform_is_named_before_any_chunk_is_embedded(monkeypatch):
    """transform checks every subject's length first: the error names the subject by its place
    in X (not in its chunk), and no chunk is embedded for nothing before it."""
    X = _subjects(n_timepoints=20)
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(X)
    monkeypatch.setattr(_base, "SUBJECTS_PER_CHUNK", 1)
    calls = []
    embedder.encoder_.register_forward_hook(lambda *args: calls.append(1))
    with pytest.raises(ValueError, match="^subject 2 is too short: 2 frames") as info:
        embedder.transform([X[0], X[1], X[2][:2]])
    assert calls == []
    # min_frames set on the fitted embedder is not applied: the cure is a new fit
    assert "fit the estimator with min_frames=2 or less" in str(info.value)


def test_subject_means_are_summed_in_double_precision():
    """Many windows of large features: a float32 running sum drops the small ones (2**24 + 1
    is 2**24 in float32), so the windows are summed in float64 before the float32 mean."""
    values = np.array([[2.0 ** 24], [1.0], [1.0], [1.0]], dtype=np.float32)
    out = _base.average_by_subject(values, np.zeros(4, dtype=np.int64), 1)
    assert out.dtype == np.float32
    assert out[0, 0] == np.float32((2.0 ** 24 + 3) / 4) != np.float32(2.0 ** 22)


def test_the_same_weights_file_given_as_a_path_object_is_not_a_change(tmp_path):
    """Paths are compared by their text: the file fitted with, given again as a Path (or a
    Path as a str), does not warn at transform; another file does."""
    X = _subjects()
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(N_REGIONS))
    embedder = BrainJEPAEmbedder(weights=str(path), device="cpu").fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embedder.set_params(weights=path).transform(X)
        embedder.fit(X).set_params(weights=str(path)).transform(X)
    with pytest.warns(UserWarning, match=r"^weights=.* \(fitted with .*fit again") as caught:
        embedder.set_params(weights=tmp_path / "other.pt").transform(X)
    # both files named in full, however long their paths
    message = str(caught[0].message)
    assert f"weights={str(tmp_path / 'other.pt')!r} (fitted with {str(path)!r})" in message


def test_the_same_weights_file_given_with_or_without_a_tilde_is_not_a_change(
        tmp_path, monkeypatch):
    """'~/model.pt' names the file that fit read from the home folder: given again spelled out
    (or the other way round) it is the same setting, so transform does not warn; another file
    in the home folder does."""
    monkeypatch.setenv("HOME", str(tmp_path))
    X = _subjects()
    save_checkpoint(tmp_path / "model.pt", tiny_module(N_REGIONS))
    embedder = BrainJEPAEmbedder(weights="~/model.pt", device="cpu").fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embedder.set_params(weights=str(tmp_path / "model.pt")).transform(X)
        embedder.fit(X).set_params(weights="~/model.pt").transform(X)
    with pytest.warns(UserWarning, match=r"^weights='~/other.pt' \(fitted with"):
        embedder.set_params(weights="~/other.pt").transform(X)


def test_values_that_cannot_be_compared_are_different_settings():
    """A ragged list is no array to compare with one, and an object whose == raises is not the
    same setting as another: both are changes, not errors."""
    assert not _base.same_setting(np.zeros(2), [[1.0], [2.0, 3.0]])

    class Uncomparable:
        def __eq__(self, other):
            raise TypeError("cannot compare")

    assert not _base.same_setting(Uncomparable(), Uncomparable())


def test_an_array_and_a_list_or_table_of_the_same_values_are_one_setting():
    """Gradients given as an array at fit and as the same values in a list or a DataFrame
    since (or the other way round) are the same setting, not a change to warn of."""
    values = np.arange(6.0).reshape(3, 2)
    for other in (values.tolist(), pd.DataFrame(values), torch.from_numpy(values)):
        assert _base.same_setting(values, other) and _base.same_setting(other, values)
    assert not _base.same_setting(values, (values + 1).tolist())


def test_transform_indexes_a_series_of_subjects_where_scikit_learn_would_not(monkeypatch):
    """scikit-learn before 1.7.2 kept the index of a DataFrame input only (emulated here):
    transform itself indexes the pandas output of a Series of subjects like it."""
    from sklearn.utils import _set_output

    # scikit-learn's private output adapters: skipped should a later release rename them
    manager = getattr(_set_output, "ADAPTERS_MANAGER", None)
    adapter = getattr(manager, "adapters", {}).get("pandas")
    if not hasattr(adapter, "create_container"):
        pytest.skip("scikit-learn's pandas output adapter is not where this test looks")
    create = adapter.create_container

    def before_1_7_2(X_output, X_original, columns, inplace=True):
        kept = X_original if isinstance(X_original, pd.DataFrame) else None
        return create(X_output, kept, columns, inplace=inplace)

    monkeypatch.setattr(adapter, "create_container", before_1_7_2)
    X = _subjects()
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(X)
    features = embedder.transform(X)
    series = pd.Series(X, index=["a", "b", "c"])
    table = embedder.set_output(transform="pandas").transform(series)
    assert list(table.index) == ["a", "b", "c"]
    np.testing.assert_array_equal(table.to_numpy(), features)


def test_the_pandas_output_of_a_series_or_an_array_of_subjects_is_indexed_like_them():
    """Under pandas output, a Series of subjects names the rows by its index (done by
    rows_indexed_like itself, as scikit-learn before 1.7.2 numbered them 0, 1, ...) with the
    feature names as columns; a 1-D object array of subjects has no index to keep."""
    X = _subjects()
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(X)
    features = embedder.transform(X)
    embedder.set_output(transform="pandas")
    series = pd.Series(X, index=["a", "b", "c"])
    table = _base.rows_indexed_like(series, features, embedder)
    assert list(table.index) == ["a", "b", "c"]
    assert list(table.columns) == list(embedder.get_feature_names_out())
    np.testing.assert_array_equal(table.to_numpy(), features)
    subjects = np.empty(len(X), dtype=object)
    subjects[:] = X
    assert _base.rows_indexed_like(subjects, features, embedder) is features
    out = embedder.transform(subjects)
    assert list(out.index) == [0, 1, 2]
    np.testing.assert_array_equal(out.to_numpy(), features)


@pytest.mark.parametrize("normalization", [None, "robust"])
def test_a_subject_too_short_for_a_window_is_refused_at_fit(normalization):
    """A training subject shorter than min_frames is named by fit (as the pretrainer does), not
    left to fail at the first transform, and a fitted embedder is left as it was."""
    X = _subjects(n_timepoints=20)
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), normalization=normalization,
                                 device="cpu")
    with pytest.raises(ValueError, match="^subject 1 is too short: 3 frames"):
        embedder.fit([X[0], X[1][:3], X[2]])
    assert not hasattr(embedder, "preprocessor_")


@pytest.mark.filterwarnings("ignore:n_frames=40 is longer than the windows")
def test_subjects_too_short_for_the_windows_at_fit_are_offered_windows_they_fill():
    """n_frames set longer than every scan was refused with leaving the subjects out or
    padding them as the only cures; the encoder takes shorter windows (of whole patches),
    which are offered too, as the pretrainer offers them (the weights' own windows, with
    n_frames="auto", are not: see the test below)."""
    X = _subjects(n_timepoints=20)
    module = tiny_module(N_REGIONS)  # patch_size=2
    with pytest.raises(ValueError, match=r"leave them out, or pass min_frames=9 or less to have "
                                         r"them padded, or pass n_frames=8 or less \(a multiple "
                                         r"of the model's patch_size=2, two patches or more\) "
                                         r"for windows they fill$"):
        BrainJEPAEmbedder(weights=module, n_frames=40, device="cpu").fit([x[:9] for x in X])
    # a min_frames of the user's longer than the windows offered is to be lowered with them
    with pytest.raises(ValueError, match=r"n_frames=8 or less \(.*two patches or more; "
                                         r"min_frames=30 lowered to that n_frames or less\)"):
        BrainJEPAEmbedder(weights=module, n_frames=40, min_frames=30, device="cpu").fit(
            [x[:9] for x in X])
    # a sliding stride of the windows offered is kept; a stride of no sliding window is none
    offered_alone = r"two patches or more\) for windows they fill$"
    with pytest.raises(ValueError, match=offered_alone):
        BrainJEPAEmbedder(weights=module, n_frames=40, window="sliding", stride=8,
                          device="cpu").fit([x[:9] for x in X])
    with pytest.raises(ValueError, match=offered_alone), pytest.warns(
            UserWarning, match="stride=30 is ignored"):
        BrainJEPAEmbedder(weights=module, n_frames=40, window="center", stride=30,
                          device="cpu").fit([x[:9] for x in X])
    # with fewer frames than two patches, none is offered; with two patches' frames, those
    with pytest.raises(ValueError, match=r"to have them padded$"):
        BrainJEPAEmbedder(weights=module, n_frames=40, device="cpu").fit([x[:3] for x in X])
    with pytest.raises(ValueError, match=r"or pass n_frames=4 or less \(a multiple"):
        BrainJEPAEmbedder(weights=module, n_frames=40, device="cpu").fit([x[:5] for x in X])
    # scans longer than the weights' 8-frame windows are offered those (10 frames were offered,
    # then warned of as time positions the model never saw)
    with pytest.raises(ValueError, match=r"or pass n_frames=8 or less \(a multiple"):
        BrainJEPAEmbedder(weights=module, n_frames=40, device="cpu").fit([x[:11] for x in X])


def test_chunks_gathered_from_processes_in_rank_order_come_back_in_subject_order(monkeypatch):
    """Under torchrun the gathered chunks arrive process after process (chunks 0, 2, 4 of
    process 0, then 1, 3 of process 1): transform puts them back in the subjects' order.
    Two processes are simulated: process 1's share is computed first, then handed to process 0's
    gather as torch.distributed would."""
    subjects, embedder, together = _sliding_embedder_and_embeddings()
    monkeypatch.setattr(_base, "SUBJECTS_PER_CHUNK", 1)
    # one process at a time here: no others to compare the subjects with
    monkeypatch.setattr(_base, "check_same_subjects", lambda subjects, method: None)
    shares = {}
    for rank in (1, 0):
        monkeypatch.setattr(_base, "world", lambda rank=rank: (rank, 2))
        monkeypatch.setattr(_base, "all_gather_objects", lambda out, rank=rank: (
            shares.__setitem__(rank, list(out)) or [*shares.get(0, []), *shares.get(1, [])]))
        out = embedder.transform(subjects)
    assert [start for start, _ in shares[0] + shares[1]] == [0, 2, 4, 1, 3]
    np.testing.assert_allclose(out, together, rtol=1e-5, atol=1e-6)


def test_a_pooling_set_after_fit_is_refused_in_a_process_without_subjects(monkeypatch):
    """Under torchrun a process whose share holds no subject never pools: it refuses a pooling
    set after fit that needs more time patches itself, before the gather, as the others do
    (otherwise it would wait in the gather for processes that had raised)."""
    X = _subjects(n_subjects=1)
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), n_frames=2,
                                 device="cpu").fit(X)
    monkeypatch.setattr(_base, "check_same_subjects", lambda subjects, method: None)
    monkeypatch.setattr(_base, "world", lambda: (1, 2))  # process 1 of 2: no chunk of its own

    def gather(out):
        raise AssertionError("reached the gather")

    monkeypatch.setattr(_base, "all_gather_objects", gather)
    with pytest.raises(ValueError, match='^pooling="roi_std" needs at least 2 time patches'):
        embedder.set_params(pooling="roi_std").transform(X)


def test_settings_carried_by_weights_count_again_once_the_weights_changed(tmp_path):
    """gradients set after fit change nothing while the weights that carry their own are the
    same; with other weights set too, a refit would use them, so both are named."""
    X = _subjects()
    for name, seed in (("a.pt", 0), ("b.pt", 1)):
        save_checkpoint(tmp_path / name, tiny_module(N_REGIONS, seed=seed))
    embedder = BrainJEPAEmbedder(weights=tmp_path / "a.pt", device="cpu").fit(X)
    assert "gradients" in embedder._carried_by_weights_
    gradients = np.ones((N_REGIONS, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embedder.set_params(gradients=gradients).transform(X)
    with pytest.warns(UserWarning, match=r"^weights=.*b\.pt' \(fitted with .*a\.pt'\), "
                                         r"gradients=<ndarray> \(fitted with None\)"):
        embedder.set_params(weights=tmp_path / "b.pt").transform(X)


@pytest.mark.parametrize("pooling", ["mean", "roi", "roi_std", "connectivity", "lagged"])
def test_there_is_one_feature_name_a_column_as_scikit_learn_gives_them(pooling):
    """get_feature_names_out names every column of transform's output, as an object array of
    str (scikit-learn's convention, which ColumnTransformer and set_output rely on)."""
    X = _subjects()
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), pooling=pooling,
                                 device="cpu").fit(X)
    names = embedder.get_feature_names_out()
    assert names.dtype == object and all(isinstance(name, str) for name in names)
    assert len(set(names)) == len(names) == embedder.transform(X).shape[1]


def test_auto_settings_set_to_what_fit_resolved_them_to_do_not_warn():
    """model_t_r, n_frames, window and normalization left at "auto" are resolved by fit:
    setting them to those values after fit changes nothing, so transform does not warn;
    another value does, with "auto" as the value of fit."""
    X = _subjects(n_timepoints=16)
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(X)
    before, fitted = embedder.transform(X), embedder.preprocessor_
    assert (fitted.target_t_r, fitted.n_frames, fitted.window, fitted.normalization) == (
        None, 8, "center", "global_zscore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = embedder.set_params(model_t_r=None, n_frames=8, window="center",
                                  normalization="global_zscore").transform(X)
    np.testing.assert_array_equal(out, before)
    with pytest.warns(UserWarning, match=r"^window='first' \(fitted with 'auto'\)"):
        embedder.set_params(window="first").transform(X)


def test_a_module_replaced_by_a_path_after_fit_is_named_by_each_value():
    """Only two modules are compared by identity (both read <BrainJEPA>); a module replaced by
    a file is named as the file, fitted with the module."""
    X = _subjects()
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(X)
    with pytest.warns(UserWarning, match=r"^weights='other\.pt' \(fitted with <BrainJEPA>\): "
                                         "changed since fit"):
        embedder.set_params(weights="other.pt").transform(X)


def test_token_series_under_pandas_output_say_how_to_keep_the_list():
    """scikit-learn wraps transform's output in a DataFrame named by get_feature_names_out,
    which a list of token series cannot be: the error says how to keep the list."""
    import sklearn

    X = make_subjects(3)
    embedder = BrainJEPAEmbedder(tiny_module(), pooling="tokens", normalization=None,
                                 device="cpu")
    expected = embedder.fit(X).transform(X)
    with sklearn.config_context(transform_output="pandas"):
        with pytest.raises(ValueError, match=r"set_output\(transform='default'\)"):
            embedder.transform(X)
        series = embedder.set_output(transform="default").transform(X)
    assert isinstance(series, list)
    for got, want in zip(series, expected):
        np.testing.assert_array_equal(got, want)


def test_a_stride_given_with_one_window_a_subject_is_said_to_be_ignored():
    """A stride given with window="center" or "first" (or "auto" resolving to one of them)
    had been dropped without a word; with sliding windows, or none given, nothing is said."""
    X = _subjects(n_timepoints=16)
    for window, chosen in (("center", "center"), ("first", "first"), ("auto", "center")):
        with pytest.warns(UserWarning, match=rf"^stride=4 is ignored: window='{chosen}' takes "
                                             r"one window per subject; set window='sliding'"):
            BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), window=window, stride=4,
                              device="cpu").fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for params in (dict(window="sliding", stride=4), dict(window="center")):
            BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu", **params).fit(X)


def test_stride_and_min_frames_set_to_the_defaults_fit_used_do_not_warn():
    """stride and min_frames left at None with n_frames given (weights without a saved
    preprocessing for that window) mean a whole window and half a window: setting them to those
    values after fit changes nothing (a refit gives the same embeddings), so transform does not
    warn; another value does."""
    X = _subjects(n_timepoints=16)
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), n_frames=8, window="sliding",
                                 normalization=None, device="cpu").fit(X)
    before = embedder.transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(embedder.set_params(stride=8, min_frames=4).transform(X),
                                      before)
    np.testing.assert_array_equal(embedder.fit(X).transform(X), before)  # the same settings
    embedder.set_params(stride=None, min_frames=None).fit(X)
    with pytest.warns(UserWarning, match=r"^stride=2 \(fitted with None\)"):
        embedder.set_params(stride=2).transform(X)
    with pytest.warns(UserWarning, match=r"^min_frames=6 \(fitted with None\)"):
        embedder.set_params(stride=None, min_frames=6).transform(X)


@pytest.mark.parametrize("name, value", [
    ("t_r", 0.72345), ("model_t_r", 1.5), ("n_frames", 4), ("window", "center"), ("stride", 2),
    ("min_frames", 6), ("normalization", "roi_zscore")])
def test_each_preprocessing_setting_changed_after_fit_is_warned_of(name, value):
    """Every setting that fit freezes into preprocessor_ is named when set_params changed it
    since, with both values in full (a TR of 0.72345 too), and transform still preprocesses as
    fit did: one left out of the list of frozen settings would change nothing without a word."""
    X = _subjects(n_timepoints=16)
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), t_r=None, model_t_r=None,
                                 n_frames=8, window="sliding", stride=4, min_frames=8,
                                 normalization=None, device="cpu").fit(X)
    before = embedder.transform(X)
    old = embedder.get_params()[name]
    with pytest.warns(UserWarning, match=rf"^{name}={value!r} \(fitted with {old!r}\): "
                                         "changed since fit"):
        out = embedder.set_params(**{name: value}).transform(X)
    np.testing.assert_array_equal(out, before)


@pytest.mark.parametrize("name, value", [("batch_size", 0), ("batch_size", 2.5),
                                         ("batch_size", "3"), ("final_norm", "no"),
                                         ("pooling", "flat"), ("precision", "fp16")])
def test_readout_settings_set_after_fit_are_checked_by_transform(name, value):
    """transform reads pooling, final_norm, batch_size, device and precision as they are now,
    so it checks them as fit does, naming the parameter: batch_size=2.5 and '3' were int()ed,
    final_norm='no' was bool()ed to True (the LayerNorm kept), and batch_size=0 failed in
    range(). The embedder stays usable once the setting is put back."""
    from sklearn.utils._param_validation import InvalidParameterError

    X = _subjects()
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(X)
    before = embedder.transform(X)
    default = embedder.get_params()[name]
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of "
                                                    "BrainJEPAEmbedder must be"):
        embedder.set_params(**{name: value}).transform(X)
    if name == "pooling":  # get_feature_names_out gave "roi"'s names for it
        with pytest.raises(InvalidParameterError, match="The 'pooling' parameter"):
            embedder.get_feature_names_out()
    np.testing.assert_array_equal(embedder.set_params(**{name: default}).transform(X), before)


@pytest.mark.parametrize("name, value", [
    ("device", torch.device("cpu")), ("weights", "model.pt"), ("gradients", "gradients.csv"),
    ("data_dir", "weights"), ("num_heads", None), ("model_t_r", None), ("normalization", None),
    ("stride", 3), ("min_frames", 4), ("n_frames", 8), ("t_r", 0.5)])
def test_the_documented_parameter_types_are_taken(tmp_path, name, value):
    """Each setting takes the types its docstring gives (a torch.device, a pathlib.Path for
    a file or folder, None where documented): the shared constraints had refused none of them
    only by chance of the values tried elsewhere."""
    if name in ("weights", "gradients", "data_dir"):
        value = tmp_path / value  # a Path, not only its text
    _base.check_parameters(BrainJEPAEmbedder(**{name: value}))
    if name == "device":  # and it runs there
        X = _subjects()
        out = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device=value).fit(X).transform(X)
        assert out.shape == (len(X), 8) and np.isfinite(out).all()


@pytest.mark.parametrize("name, value", [("t_r", 0), ("stride", 2.5), ("min_frames", 2.5),
                                         ("n_frames", 8.0), ("n_frames", 2.5)])
def test_counts_and_the_tr_out_of_range_are_refused_by_name(name, value):
    """A stride, shortest length or window length in frames is a whole number and the TR a
    positive one: fit refuses them by name (a fractional stride would have cut windows at
    fractional frames)."""
    from sklearn.utils._param_validation import InvalidParameterError

    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu",
                                 **{name: value})
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of "
                                                    "BrainJEPAEmbedder must be"):
        embedder.fit(_subjects())


def test_a_fitted_embedder_needs_no_weights_file(tmp_path):
    """Only fit reads the weights: with the file rewritten by another model, and then removed,
    the fitted embedder and its pickle (loaded as in another process) still embed as fitted."""
    X = _subjects()
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(N_REGIONS))
    embedder = BrainJEPAEmbedder(weights=path, device="cpu").fit(X)
    before = embedder.transform(X)
    save_checkpoint(path, tiny_module(N_REGIONS, seed=1))
    np.testing.assert_array_equal(embedder.transform(X), before)
    pickled = pickle.dumps(embedder)
    path.unlink()
    np.testing.assert_array_equal(pickle.loads(pickled).transform(X), before)
    # the refit reads the file again
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        embedder.fit(X)


@pytest.mark.parametrize("pooling", ["mean", "tokens"])
def test_embeddings_the_model_overflows_on_are_refused_naming_the_subject(pooling):
    """Values within the float32 range but far from unit scale (1e25 here, kept by
    normalization=None) overflow inside the encoder: transform returned NaN embeddings without
    a word; it names the subject and the cure."""
    X = _subjects()
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), normalization=None,
                                 pooling=pooling, device="cpu").fit(X)
    assert all(np.isfinite(e).all() for e in embedder.transform([X[1] * 1e3]))  # still fine
    with pytest.raises(ValueError, match=r"non-finite embeddings for 1 subject\(s\) \(first: "
                                         r"subject 1\).*normalization=None"):
        embedder.transform([X[0], X[1] * 1e25, X[2]])


def test_non_finite_embeddings_from_the_weights_are_blamed_on_them():
    """A module given as weights holding NaN had given NaN embeddings, and the message advised
    a per-window z-score that fit already used: fit refuses it, as a checkpoint file is
    refused, and transform names the first non-finite weight of an encoder changed after fit.
    Finite weights that overflow the encoder on z-scored windows are not told to z-score
    either."""
    X = _subjects()
    module = tiny_module(N_REGIONS)
    fitted = BrainJEPAEmbedder(weights=module, device="cpu").fit(X)
    before = fitted.transform(X)
    with torch.no_grad():
        module.target_encoder.patch_embed.proj.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"^weights: the module's patch_embed\.proj\.weight "
                                         r"holds NaN or infinite values"):
        fitted.fit(X)
    np.testing.assert_array_equal(fitted.transform(X), before)  # the failed fit kept it
    with torch.no_grad():  # changed in place after fit
        fitted.encoder_.patch_embed.proj.weight[0, 0] = float("nan")
    assert fitted.preprocessor_.normalization == "global_zscore"
    with pytest.raises(ValueError, match=r"subject 0\): the encoder's weights hold NaN or "
                                         r"infinite values \(first: patch_embed.proj.weight\)"):
        fitted.transform(X)
    with torch.no_grad():
        module.target_encoder.patch_embed.proj.weight.fill_(1e30)
    embedder = BrainJEPAEmbedder(weights=module, device="cpu").fit(X)
    with pytest.raises(ValueError, match=r"overflow in its attention and LayerNorms "
                                         r"\(float32\)$") as error:
        embedder.transform(X)
    assert "normalization='global_zscore')" in str(error.value)
    assert "fit with normalization" not in str(error.value)
    # under bf16 autocast the encoder does not compute in float32: the message says which
    # precision it ran in (bf16 has float32's range, so it overflows alike)
    with pytest.raises(ValueError, match=r"overflow in its attention and LayerNorms "
                                         r"\(bfloat16 autocast, with float32's range\)$"):
        embedder.set_params(precision="bf16").transform(X)


def test_an_embedding_non_finite_in_one_dimension_only_is_refused():
    """One non-finite dimension makes a subject's embedding unusable, its other dimensions
    finite or not: a final-norm scale made infinite after fit is refused and named (a token
    series with some values non-finite too)."""
    X = _subjects()
    fitted = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(X)
    with torch.no_grad():
        fitted.encoder_.norm.weight[0] = float("inf")
    for pooling in ("mean", "tokens"):
        with pytest.raises(ValueError, match=r"for 3 subject\(s\) \(first: subject 0\): the "
                                             r"encoder's weights .*\(first: norm\.weight\)"):
            fitted.set_params(pooling=pooling).transform(X)


def test_finite_weights_that_overflow_roi_zscored_windows_are_not_told_to_z_score():
    """Windows z-scored per region are at unit scale already: an encoder that overflows on them
    is not cured by a z-score, and the message does not advise one."""
    X = _subjects()
    module = tiny_module(N_REGIONS)
    with torch.no_grad():
        module.target_encoder.patch_embed.proj.weight.fill_(1e30)
    embedder = BrainJEPAEmbedder(weights=module, normalization="roi_zscore", device="cpu").fit(X)
    with pytest.raises(ValueError, match=r"\(normalization='roi_zscore'\) overflow in its "
                                         r"attention and LayerNorms \(float32\)$"):
        embedder.transform(X)


def test_a_series_of_subjects_gives_an_array_under_the_default_output():
    """A pandas Series of subjects gives the rows of the default output as an array, as a list
    of subjects does (its index is kept only under pandas output)."""
    X = _subjects()
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(X)
    out = embedder.transform(pd.Series(X, index=["a", "b", "c"]))
    assert type(out) is np.ndarray and out.dtype == np.float32
    np.testing.assert_array_equal(out, embedder.transform(X))


def test_a_pretrainer_given_as_weights_is_told_to_pass_its_model():
    """``BrainJEPAEmbedder(pretrainer)`` had been refused with the list of allowed types
    only; the message now says how to get from a pretrainer to its weights."""
    from sklearn.utils._param_validation import InvalidParameterError

    from brainjepa_sk import BrainJEPAClassifier, BrainJEPAPretrainer

    X = make_subjects()
    for estimator in (BrainJEPAEmbedder(weights=BrainJEPAPretrainer(), device="cpu"),
                      BrainJEPAClassifier(BrainJEPAPretrainer(), max_epochs=1, verbose=0)):
        with pytest.raises(InvalidParameterError,
                           match=rf"The 'weights' parameter of {type(estimator).__name__} "
                                 r".*Got a BrainJEPAPretrainer instead: pass a "
                                 r"fitted pretrainer's model, weights=pretrainer\.model_ "):
            estimator.fit(X, np.arange(len(X)) % 2)


def test_a_class_given_as_weights_is_told_to_fit_or_build_one_first():
    """``BrainJEPAEmbedder(weights=BrainJEPAPretrainer)``, the class for an instance, had been
    refused with scikit-learn's list of allowed types only, as the class of a module was,
    while a pretrainer instance is told how to get its weights."""
    from sklearn.utils._param_validation import InvalidParameterError

    from brainjepa_sk import BrainJEPAClassifier, BrainJEPAPretrainer
    from brainjepa_sk.nn import BrainJEPA

    X = make_subjects()
    for weights, hint in ((BrainJEPAPretrainer, r"the BrainJEPAPretrainer class instead: fit a "
                                                r"pretrainer first, pretrainer = "
                                                r"BrainJEPAPretrainer\(\.\.\.\)\.fit\(X\), and "
                                                r"pass weights=pretrainer\.model_"),
                          (BrainJEPA, r"the BrainJEPA class instead: pass a model, not its "
                                      r"class")):
        for estimator in (BrainJEPAEmbedder(weights=weights, device="cpu"),
                          BrainJEPAClassifier(weights, max_epochs=1, verbose=0)):
            with pytest.raises(InvalidParameterError,
                               match=rf"The 'weights' parameter of {type(estimator).__name__} "
                                     rf"must be .*Got {hint}"):
                estimator.fit(X, np.arange(len(X)) % 2)


def test_a_loaded_checkpoint_or_a_state_dict_given_as_weights_is_told_what_to_pass(tmp_path):
    """What load_checkpoint returns, a state dict or an array, had been refused with
    scikit-learn's message, which printed the whole module or every value and no way to the
    weights."""
    from sklearn.utils._param_validation import InvalidParameterError

    from brainjepa_sk import BrainJEPAClassifier
    from brainjepa_sk.checkpoint import load_checkpoint

    module = tiny_module(N_REGIONS)
    save_checkpoint(tmp_path / "model.pt", module)
    X = make_subjects()
    for weights, hint in ((load_checkpoint(tmp_path / "model.pt"),
                           r"a LoadedCheckpoint instead: pass its model, weights=checkpoint\.model "),
                          (module.state_dict(), r"an OrderedDict instead: a state dict or a loaded "
                                                r"file does not say the model's architecture"),
                          # a gradient matrix taken for weights: it had been printed, with no hint
                          (np.zeros((450, 30)), r"an ndarray instead: an array of shape \(450, 30\) "
                                                r"is no model; if it is the region gradients, "
                                                r"pass it as gradients=")):
        for estimator in (BrainJEPAEmbedder(weights=weights, device="cpu"),
                          BrainJEPAClassifier(weights, max_epochs=1, verbose=0)):
            with pytest.raises(InvalidParameterError,
                               match=rf"The 'weights' parameter of {type(estimator).__name__} "
                                     rf"must be .*Got {hint}") as error:
                estimator.fit(X, np.arange(len(X)) % 2)
            assert "tensor(" not in str(error.value) and len(str(error.value)) < 500


def test_a_gradient_positioner_as_gradients_of_the_embedder_says_which_gradients_it_needs():
    """The pretrainer takes a GradientPositioner as gradients=; the embedder and fine-tuners
    had refused one with scikit-learn's list of types only, not saying that a research
    checkpoint needs the gradients it was trained with."""
    from sklearn.utils._param_validation import InvalidParameterError

    from brainjepa_sk import BrainJEPAClassifier, GradientPositioner

    X = make_subjects()
    for estimator in (BrainJEPAEmbedder(gradients=GradientPositioner(), device="cpu"),
                      BrainJEPAClassifier(gradients=GradientPositioner(), max_epochs=1,
                                          verbose=0)):
        with pytest.raises(InvalidParameterError,
                           match=rf"The 'gradients' parameter of {type(estimator).__name__} "
                                 r"must be .*Got a GradientPositioner instead: with a research "
                                 r"checkpoint as weights, gradients= is the matrix it was "
                                 r"trained with .*not gradients computed anew"):
            estimator.fit(X, np.arange(len(X)) % 2)


def test_a_url_that_urllib_cannot_open_is_a_failed_download_saying_where_to_put_the_file(
        tmp_path, monkeypatch, official_dir):
    """urllib refuses a malformed address (a mistyped mirror) with a ValueError: it is told as
    a failed download, with where to put the file by hand, as an unreachable one is."""
    use_local_ukbiobank(monkeypatch, official_dir)
    _weights.UKBIOBANK_FILES["gradients"]["url"] = "mirror.example/gradient.csv"
    with pytest.raises(OSError, match=r"gradient_mapping_450\.csv is not in .* the download "
                                      r"failed \(unknown url type.*put it at"):
        fetch_ukbiobank_weights(data_dir=tmp_path, verbose=0)
    assert not list((tmp_path / "brainjepa_ukbiobank").glob("*.part"))


def test_threads_transforming_one_fitted_embedder_get_what_each_gets_alone(tmp_path,
                                                                            monkeypatch):
    """transform reads the fitted embedder without changing it (the encoder's mode, the
    preprocessing), and the warning filters it sets around reading a text file take turns:
    two reads made to overlap (as the threads may) had left one's filters in force."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    X = make_subjects(4, 12)
    paths = [tmp_path / f"subject{i}.txt" for i in range(len(X))]
    for path, series in zip(paths, X):
        np.savetxt(path, series)
    embedder = BrainJEPAEmbedder(weights=tiny_module(), normalization=None, device="cpu").fit(X)
    expected = embedder.transform(paths)
    loadtxt, inside, both_in = np.loadtxt, [], threading.Event()

    def overlapping_loadtxt(*args, **kwargs):
        inside.append(None)
        if len(inside) == 2:  # the second in leaves its block last: not the reverse order
            both_in.set()
            time.sleep(0.2)
        both_in.wait(timeout=0.5)  # the first in waits (a while at most) for the other thread
        return loadtxt(*args, **kwargs)

    monkeypatch.setattr(np, "loadtxt", overlapping_loadtxt)
    before = list(warnings.filters)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: embedder.transform(paths), range(8)))
    assert warnings.filters == before
    for result in results:
        np.testing.assert_array_equal(result, expected)


def test_a_t_r_in_milliseconds_is_warned_of_once_per_fit(tmp_path):
    """fMRI TRs are seconds: a t_r given in milliseconds is named once per fit, and the fit
    goes on; a model_t_r the weights record is not the user's, and is not warned of again."""
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(N_REGIONS).target_encoder,
                    preprocessing=Preprocessor(8, t_r=2000, target_t_r=2000).to_dict())
    for t_r, expected in ((2000, ["t_r=2000 s is long for fMRI: TRs are in seconds (2000 ms "
                                  "is 2.0 s)"]), (None, [])):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            embedder = BrainJEPAEmbedder(weights=path, device="cpu", t_r=t_r).fit(_subjects())
        assert [str(w.message) for w in caught if "long for fMRI" in str(w.message)] == expected
        assert embedder.preprocessor_.target_t_r == 2000


def test_subjects_too_short_for_the_weights_windows_are_not_offered_another_n_frames():
    """The window length is the weights' here (the pretrainer offers a shorter one): the
    cures are leaving the subjects out or padding them."""
    with pytest.raises(ValueError) as info:
        BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(
            _subjects(n_timepoints=3))
    assert str(info.value).endswith("leave them out, or pass min_frames=3 or less to have "
                                    "them padded")


def test_a_cut_short_cached_checkpoint_is_named_and_its_hash_not_kept(
        tmp_path, monkeypatch, official_dir, reference):
    """A half-copied checkpoint found in the cache is no good copy: fit names it and says to
    delete it, and the complete file put in its place afterwards loads (it was refused as a
    changed checkpoint, the hash of the half copy having been recorded)."""
    folder = ukbiobank_cache(monkeypatch, tmp_path, official_dir)
    complete = (official_dir / "checkpoint.pth.tar").read_bytes()
    cached = folder / "jepa-ep300.pth.tar"
    cached.write_bytes(complete[: len(complete) // 2])
    X = reference["x_nilearn"]
    with pytest.raises(ValueError, match=re.escape(
            f"The cached UK Biobank checkpoint is damaged (a download or copy cut short?): "
            f"delete {cached} to download it again")):
        BrainJEPAEmbedder(data_dir=tmp_path, num_heads=4).fit(X)
    assert not (folder / "jepa-ep300.pth.tar.sha256").exists()
    cached.write_bytes(complete)
    embedder = BrainJEPAEmbedder(data_dir=tmp_path, num_heads=4, normalization=None).fit(X)
    expected = reference["target_encoder_tokens"].mean(axis=1)
    assert np.abs(embedder.transform(X) - expected).max() <= 1e-5


@pytest.mark.parametrize("wrong", ["tensor", "ours", "fine_tuned"])
def test_a_cached_checkpoint_of_another_kind_is_named_and_its_hash_not_kept(
        tmp_path, monkeypatch, official_dir, reference, wrong):
    """A file that loads but is no research checkpoint (a tensor, a brainjepa_sk checkpoint)
    found in the cache under the checkpoint's name is no copy of it: fit names it, and the
    research checkpoint put in its place afterwards loads (it was refused as a changed
    checkpoint, the wrong file's hash having been recorded)."""
    folder = ukbiobank_cache(monkeypatch, tmp_path, official_dir)
    cached = folder / "jepa-ep300.pth.tar"
    if wrong == "tensor":
        torch.save(torch.zeros(3), cached)
        what = "no research checkpoint"
    elif wrong == "ours":
        save_checkpoint(cached, tiny_module(N_REGIONS))
        what = "a brainjepa_sk checkpoint (pass it as weights=<its path>)"
    else:  # a research file, which is no pretraining checkpoint (it was called none)
        encoder = torch.load(official_dir / "checkpoint.pth.tar",
                             weights_only=True)["target_encoder"]
        torch.save({"model": {"encoder." + key.removeprefix("module."): value
                              for key, value in encoder.items()}}, cached)
        what = ("a model the research code fine-tuned (pass it as weights=<its path>, with "
                "gradients=)")
    X = reference["x_nilearn"]
    with pytest.raises(ValueError, match=re.escape(
            f"{cached} is {what}, not the UK Biobank checkpoint the cache keeps there")):
        BrainJEPAEmbedder(data_dir=tmp_path, num_heads=4).fit(X)
    assert not (folder / "jepa-ep300.pth.tar.sha256").exists()
    cached.write_bytes((official_dir / "checkpoint.pth.tar").read_bytes())
    embedder = BrainJEPAEmbedder(data_dir=tmp_path, num_heads=4, normalization=None).fit(X)
    expected = reference["target_encoder_tokens"].mean(axis=1)
    assert np.abs(embedder.transform(X) - expected).max() <= 1e-5


@pytest.mark.parametrize("wrong", ["cut_short", "tensor"])
def test_a_bad_cached_checkpoint_is_named_where_its_hash_record_cannot_be_removed(
        tmp_path, monkeypatch, official_dir, reference, wrong):
    """In a cache the user may not write to (a lab's shared, read-only data_dir), removing the
    record failed: a PermissionError about the record replaced the error naming the file."""
    import pathlib

    folder = ukbiobank_cache(monkeypatch, tmp_path, official_dir)
    cached = folder / "jepa-ep300.pth.tar"
    if wrong == "tensor":
        torch.save(torch.zeros(3), cached)
        expected = f"{cached} is no research checkpoint, not the UK Biobank checkpoint"
    else:
        complete = (official_dir / "checkpoint.pth.tar").read_bytes()
        cached.write_bytes(complete[: len(complete) // 2])
        expected = "The cached UK Biobank checkpoint is damaged"
    X = reference["x_nilearn"]
    with pytest.raises(ValueError, match="jepa-ep300"):  # records the file's hash
        BrainJEPAEmbedder(data_dir=tmp_path, num_heads=4).fit(X)
    (folder / "jepa-ep300.pth.tar.sha256").write_text(
        _weights.sha256_of(cached) + "  jepa-ep300.pth.tar\n")
    unlink = pathlib.Path.unlink

    def read_only_records(path, *args, **kwargs):
        if path.name.endswith(".sha256"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return unlink(path, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "unlink", read_only_records)
    with pytest.raises(ValueError, match=re.escape(expected)):
        BrainJEPAEmbedder(data_dir=tmp_path, num_heads=4).fit(X)


@pytest.mark.parametrize("kind", ["safetensors", "numpy"])
def test_a_cached_checkpoint_of_a_foreign_format_is_not_called_cut_short(
        tmp_path, monkeypatch, official_dir, reference, kind):
    """A file of another format under the checkpoint's name (a safetensors conversion, a NumPy
    array) was called damaged, a download or copy cut short, beside the error saying what it
    is."""
    import io
    import json
    import struct

    folder = ukbiobank_cache(monkeypatch, tmp_path, official_dir)
    cached = folder / "jepa-ep300.pth.tar"
    if kind == "safetensors":
        header = json.dumps({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
        cached.write_bytes(struct.pack("<Q", len(header)) + header.encode() + bytes(4))
        what = "it is a safetensors file"
    else:
        buffer = io.BytesIO()
        np.save(buffer, np.zeros(3))
        cached.write_bytes(buffer.getvalue())
        what = "it is a NumPy array file"
    with pytest.raises(ValueError) as caught:
        BrainJEPAEmbedder(data_dir=tmp_path, num_heads=4).fit(reference["x_nilearn"])
    message = str(caught.value)
    assert what in message
    assert "cut short" not in message and "damaged" not in message
    assert (f"{cached} is not the UK Biobank checkpoint the cache keeps there: delete it to "
            "download the checkpoint again, or put the research checkpoint there") in message
    assert not (folder / "jepa-ep300.pth.tar.sha256").exists()

"""BrainJEPAPretrainer: self-supervised fit, history, gradients inside fit, resume, save."""

import contextlib
import copy
import math
import multiprocessing
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

from brainjepa_sk import BrainJEPAEmbedder, BrainJEPAPretrainer, GradientPositioner
from brainjepa_sk.checkpoint import export_training_state, load_checkpoint, save_checkpoint
from brainjepa_sk.datasets import get_data_dir
from brainjepa_sk.gradients import load_gradients
from brainjepa_sk.nn.masking import SpatiotemporalMaskSampler
from brainjepa_sk.preprocessing import resample
from brainjepa_sk.train import (
    Callback,
    CollapseMonitor,
    TrainingInterrupted,
    collapse_metrics,
)
from brainjepa_sk.train.runs import run_key
from brainjepa_sk.train.runtime import atomic_save, load_file
from brainjepa_sk.validation import validate_subjects

N_REGIONS = 16


def _data(n_subjects=10, n_timepoints=48, seed=0):
    """Smooth correlated series: a few shared slow sources mixed into the regions."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((4, N_REGIONS))
    X = []
    for _ in range(n_subjects):
        sources = rng.standard_normal((n_timepoints + 8, 4))
        kernel = np.exp(-np.arange(8) / 3.0)
        smooth = np.stack([np.convolve(s, kernel, "valid")[:n_timepoints] for s in sources.T], 1)
        X.append(smooth @ mixing + 0.3 * rng.standard_normal((n_timepoints, N_REGIONS)))
    return np.stack(X)


def _pretrainer(**kwargs):
    params = dict(
        gradients=np.random.default_rng(1).standard_normal((N_REGIONS, 4)),
        model_size=dict(embed_dim=32, depth=2, num_heads=2), patch_size=4, n_frames=32,
        predictor_depth=1, n_epochs=6, batch_size=8, lr=2e-3, device="cpu", verbose=0,
        random_state=0,
    )
    params.update(kwargs)
    return BrainJEPAPretrainer(**params)


@pytest.mark.parametrize("verbose", [0, 1])
def test_verbose_decides_whether_progress_is_shown(verbose, capfd):
    _pretrainer(n_epochs=1, verbose=verbose).fit(_data())
    out, err = capfd.readouterr()
    assert bool(out + err) is bool(verbose)


def test_the_progress_bar_names_the_run_file_it_resumes_or_returns(tmp_path, capfd):
    """A resumed run's bar starts part-way and a finished run's is full at once: each says
    which file it came from, and an extended run names the shorter run's file."""
    X = _data()
    with pytest.raises(KeyboardInterrupt):
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path,
                    callbacks=[_InterruptAfterEpoch(2)]).fit(X)
    (state_file,) = _state_files(tmp_path)
    capfd.readouterr()
    _pretrainer(n_epochs=2, checkpoint_dir=tmp_path, verbose=1).fit(X)
    assert f"pretraining, resumed from {state_file}" in capfd.readouterr().err
    _pretrainer(n_epochs=2, checkpoint_dir=tmp_path, verbose=1).fit(X)
    assert f"pretraining, finished run loaded from {state_file}" in capfd.readouterr().err
    with pytest.warns(UserWarning, match="extending the run"):
        _pretrainer(n_epochs=3, checkpoint_dir=tmp_path, verbose=1).fit(X)
    assert f"pretraining, extending {state_file}" in capfd.readouterr().err


def test_fit_trains_and_records_history():
    X = _data()
    model = _pretrainer().fit(X)
    history = model.history_
    assert [h["epoch"] for h in history] == list(range(6))
    assert set(history[0]) == {"epoch", "loss", "lr", "target_std", "effective_rank"}
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(np.isfinite(h["loss"]) for h in history)
    # the collapse monitors describe the target encoder's mean-pooled features of the training
    # windows (all 20 of them here; up to 64 are monitored)
    windows, _ = model.preprocessor_.transform(list(X))
    with torch.no_grad():
        features = model.model_.target_encoder(torch.from_numpy(windows)).mean(1)
    monitors = collapse_metrics(features)
    assert history[-1]["target_std"] == pytest.approx(monitors["std"], rel=1e-4)
    assert history[-1]["effective_rank"] == pytest.approx(monitors["effective_rank"], rel=1e-4)
    assert all(1 < h["effective_rank"] <= 20 and h["target_std"] > 0 for h in history)
    assert model.model_.training is False
    assert next(model.model_.parameters()).device.type == "cpu"
    assert model.transform(X).shape == (10, 32)
    assert model.embedding_dim_ == 32
    assert model.preprocessor_.normalization == "robust"
    # the learning-rate schedule was followed: warm-up then decay to final_lr
    assert history[-1]["lr"] < max(h["lr"] for h in history)


@contextlib.contextmanager
def _optimizer_steps():
    """Record every optimizer step of a fit: each group's hyper-parameters when it steps, and
    every parameter's value before the first step and after each step (keyed by ``id``)."""
    steps = []

    def before(optimizer, args, kwargs):
        if not steps:
            steps.append({"params": _values(optimizer)})  # the initial weights
        steps.append({"groups": [(g["lr"], g["weight_decay"]) for g in optimizer.param_groups]})

    def after(optimizer, args, kwargs):
        steps[-1]["params"] = _values(optimizer)

    handles = [register_optimizer_step_pre_hook(before), register_optimizer_step_post_hook(after)]
    try:
        yield steps
    finally:
        for handle in handles:
            handle.remove()


def _values(optimizer):
    return {id(p): p.detach().clone() for g in optimizer.param_groups for p in g["params"]}


# A run with 10 subjects x 2 windows, batch 8: 2 steps per epoch, 6 steps, warm-up 2 steps.
_RECIPE = dict(n_epochs=3, warmup_epochs=1, lr=2e-3, start_lr=1e-4, final_lr=1e-5,
               weight_decay=0.05, final_weight_decay=0.3, ema_momentum=0.5,
               final_ema_momentum=0.8)


def _scheduled(update, total=6, warmup=2, p=_RECIPE):
    """The documented recipe at an update (0-based), counted as the research code does: lr
    linear warm-up then cosine and weight decay cosine, both advanced before the update (so at
    ``update + 1``); EMA momentum linear from its start value (update 0) towards its final
    value (update total)."""
    step = update + 1
    if step < warmup:
        lr = p["start_lr"] + (p["lr"] - p["start_lr"]) * step / warmup
    else:
        progress = (step - warmup) / (total - warmup)
        lr = p["final_lr"] + (p["lr"] - p["final_lr"]) * (1 + math.cos(math.pi * progress)) / 2
    cosine = (1 + math.cos(math.pi * step / total)) / 2
    weight_decay = p["final_weight_decay"] + (p["weight_decay"] - p["final_weight_decay"]) * cosine
    momentum = p["ema_momentum"] + (p["final_ema_momentum"] - p["ema_momentum"]) * update / total
    return lr, weight_decay, momentum


def test_the_optimizer_steps_with_the_scheduled_learning_rate_and_weight_decay():
    X = _data()
    with _optimizer_steps() as steps:
        model = _pretrainer(**_RECIPE).fit(X)
    groups = [s["groups"] for s in steps[1:]]
    assert len(groups) == 6
    for step, (decayed, no_decay) in enumerate(groups):
        lr, weight_decay, _ = _scheduled(step)
        assert decayed == pytest.approx((lr, weight_decay), rel=1e-9)
        assert no_decay == pytest.approx((lr, 0.0), rel=1e-9)  # biases and norms: no decay
    assert [h["lr"] for h in model.history_] == pytest.approx(
        [_scheduled(step)[0] for step in (1, 3, 5)], rel=1e-9)  # at each epoch's last step


def test_the_target_encoder_is_the_scheduled_ema_of_the_online_encoder():
    """What ``transform`` uses, the target encoder, starts as a copy of the online encoder and
    after optimizer step k moves by ``T <- m_k T + (1 - m_k) E_k`` with the scheduled momentum."""
    X = _data()
    with _optimizer_steps() as steps:
        model = _pretrainer(**_RECIPE).fit(X)
    encoder = list(model.model_.encoder.parameters())
    online = [[s["params"][id(p)].double() for p in encoder] for s in steps]
    expected = online[0]
    for step in range(6):
        momentum = _scheduled(step)[2]
        expected = [momentum * t + (1 - momentum) * e for t, e in zip(expected, online[step + 1])]
    target = [p.double() for p in model.model_.target_encoder.parameters()]
    for t, e, start, end in zip(target, expected, online[0], online[-1]):
        torch.testing.assert_close(t, e, rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(t, s) for t, s in zip(target, online[0]))  # it moved
    assert any(not torch.allclose(t, e) for t, e in zip(target, online[-1]))  # not the online one
    # transform pools the target encoder's tokens of each window, averaged per subject
    windows, subject_index = model.preprocessor_.transform(list(X))
    with torch.no_grad():
        pooled = model.model_.target_encoder(torch.from_numpy(windows)).mean(1).numpy()
    expected = np.stack([pooled[subject_index == i].mean(0) for i in range(len(X))])
    np.testing.assert_allclose(model.transform(X), expected, rtol=1e-5, atol=1e-6)


def test_random_state_makes_fit_reproducible_and_leaves_global_rng_alone():
    X = _data()
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = _pretrainer(n_epochs=2).fit(X)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = _pretrainer(n_epochs=2).fit(X)
    for p, q in zip(a.model_.parameters(), b.model_.parameters()):
        assert torch.equal(p, q)
    c = _pretrainer(n_epochs=2, random_state=1).fit(X)
    assert not torch.equal(next(a.model_.parameters()), next(c.model_.parameters()))


class _FirstDraws(Callback):
    """The run's first masks and data order, drawn from copies of its generators."""

    def on_train_begin(self, loop):
        self.masks = copy.deepcopy(loop.mask_sampler).sample(8).context_idx
        self.order = list(copy.deepcopy(loop.loader.sampler))


def test_a_full_disk_while_pretraining_says_fitting_again_resumes(tmp_path, monkeypatch):
    """A checkpoint save that found the disk full named its file and kept the previous one, but
    did not say that the same fit, once there is space, resumes the run: it does, exactly."""
    import errno

    X, settings = _data(), dict(n_epochs=3, checkpoint_dir=tmp_path)
    uninterrupted = _pretrainer(n_epochs=3).fit(X)
    saves, real_save = [], torch.save

    def save(obj, f, *args, **kwargs):
        saves.append(f)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(OSError, match=r"the disk is full .*; free space and fit again: the "
                                      r"same fit resumes the run from its last saved state"
                       ) as info:
        _pretrainer(**settings).fit(X)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.setattr(torch, "save", real_save)
    resumed = _pretrainer(**settings).fit(X)
    for key, value in uninterrupted.model_.state_dict().items():
        assert torch.equal(resumed.model_.state_dict()[key], value), key


def test_a_random_state_instance_is_drawn_from_at_each_fit_as_in_scikit_learn():
    """Successive fits with one RandomState differ, a new one of the same seed repeats them,
    and a clone copies the instance where it stands (its fit is the original's next one)."""
    X = _data(n_subjects=4)
    settings = dict(model_size=dict(embed_dim=8, depth=1, num_heads=2), n_epochs=1)

    def weights(model):
        return next(model.fit(X).model_.parameters()).detach().clone()

    model = _pretrainer(**settings, random_state=np.random.RandomState(0))
    copied = clone(model)
    first, second = weights(model), weights(model)
    assert not torch.equal(first, second)
    torch.testing.assert_close(weights(copied), first, rtol=0, atol=0)
    again = _pretrainer(**settings, random_state=np.random.RandomState(0))
    torch.testing.assert_close(weights(again), first, rtol=0, atol=0)
    torch.testing.assert_close(weights(again), second, rtol=0, atol=0)
    # an int draws the seeds as a new RandomState of it does (reproducibility.rst says so)
    torch.testing.assert_close(weights(_pretrainer(**settings, random_state=0)), first,
                               rtol=0, atol=0)


def test_random_state_seeds_the_masks_and_the_data_order_too():
    # the weights alone would differ through the initialisation's seed
    def draws(seed):
        return _pretrainer(n_epochs=1, random_state=seed,
                           callbacks=[_FirstDraws()]).fit(_data()).callbacks_[0]

    first, again, other = draws(0), draws(0), draws(1)
    assert torch.equal(first.masks, again.masks) and first.order == again.order
    assert not torch.equal(first.masks, other.masks)
    assert first.order != other.order and sorted(first.order) == sorted(other.order)


def test_gradient_positioner_is_fitted_inside_fit():
    X = _data()
    positioner = GradientPositioner(n_components=3, sparsity=0.5)
    model = _pretrainer(gradients=positioner, n_epochs=1).fit(X)
    expected = clone(positioner).fit(X).gradients_
    np.testing.assert_array_equal(model.gradients_, expected)
    assert not hasattr(positioner, "gradients_")  # the parameter itself stays unfitted
    torch.testing.assert_close(model.model_.gradients.double(), torch.from_numpy(expected))


def test_a_positioner_fitted_on_other_subjects_warns_that_its_gradients_are_not_used():
    """A positioner fitted beforehand (on a larger corpus, say) is fitted again on X: its
    gradients_ were replaced without a word. Fitted on the same X, nothing is lost and
    nothing is said."""
    X = _data()
    positioner = GradientPositioner(n_components=3, sparsity=0.5).fit(_data(seed=1))
    with pytest.warns(UserWarning, match=r"fitted GradientPositioner whose gradients_ differ.*"
                                         r"gradients=positioner\.gradients_"):
        model = _pretrainer(gradients=positioner, n_epochs=1).fit(X)
    assert not np.array_equal(model.gradients_, positioner.gradients_)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _pretrainer(gradients=positioner.fit(X), n_epochs=1).fit(X)
        _pretrainer(gradients=positioner.gradients_, n_epochs=1).fit(_data(seed=2))


def test_a_positioner_fitted_on_named_regions_is_offered_for_use_by_name():
    """Its gradients_ follow the columns of the corpus it was fitted on: passed as an array to
    X with the regions in another order, each would take another region's position without a
    word. The advice passes them with their names, and they are then used in X's order."""
    names = [f"roi{i}" for i in range(N_REGIONS)]
    corpus = [pd.DataFrame(subject, columns=names) for subject in _data(seed=1)]
    positioner = GradientPositioner(n_components=3, sparsity=0.5).fit(corpus)
    order = np.random.default_rng(0).permutation(N_REGIONS)
    X = [pd.DataFrame(subject, columns=names).iloc[:, order] for subject in _data()]
    with pytest.warns(UserWarning, match=r"whose gradients_ differ.*pass them with their region "
                                         r"names, gradients=pandas\.DataFrame\(positioner\."
                                         r"gradients_, index=positioner\.feature_names_in_\)"):
        _pretrainer(gradients=positioner, n_epochs=1).fit(X)
    advised = pd.DataFrame(positioner.gradients_, index=positioner.feature_names_in_)
    model = _pretrainer(gradients=advised, n_epochs=1).fit(X)
    np.testing.assert_array_equal(model.gradients_, positioner.gradients_[order])


def test_a_positioner_fitted_on_another_atlas_is_named_as_such_not_offered_for_use():
    """A positioner fitted on another atlas had been told apart only as having "other"
    gradients_, with the advice to pass them (refused then: another region count); where its
    settings do not suit X's atlas, the error did not say it had been fitted on another."""
    other_atlas = _data()[:, :, :12]  # 12 regions against X's 16
    positioner = GradientPositioner(n_components=3, sparsity=0.5).fit(other_atlas)
    with pytest.warns(UserWarning) as record:
        model = _pretrainer(gradients=positioner, n_epochs=1).fit(_data())
    messages = [str(w.message) for w in record]
    assert any(re.search(r"GradientPositioner fitted on 12 regions, but X has 16: its "
                         r"gradients_ are of another atlas and are not used", m)
               for m in messages), messages
    assert not any("pass gradients=positioner.gradients_" in m for m in messages)
    assert model.gradients_.shape == (N_REGIONS, 3)
    few = GradientPositioner(n_components=3).fit([np.random.default_rng(0).standard_normal(
        (40, 30)) for _ in range(3)])  # sparsity 0.9 suits 30 regions, not 16
    with pytest.raises(ValueError, match=r"cannot be fitted on X's 16 regions \(it was fitted "
                                         r"on 30 regions, another atlas"):
        _pretrainer(gradients=few, n_epochs=1).fit(_data())


def test_a_connectivity_positioner_is_refused_naming_the_time_series():
    """The pretrainer fits its positioner on X, which is time series: kind='connectivity'
    read them as matrices and failed with numpy's 'inhomogeneous shape' (scans of different
    lengths) or, for square scans (as many frames as regions), 'connectivity matrix 0 is not
    symmetric': neither says that the positioner's kind is the problem."""
    X = _data()
    positioner = GradientPositioner(kind="connectivity", n_components=3, sparsity=0.5)
    ragged = [X[0], X[1][:40]]
    square = [x[:N_REGIONS] for x in X]  # 16 frames of 16 regions: square "matrices"
    for data in (ragged, square):
        with pytest.raises(ValueError, match="kind='connectivity'.*ROI time series.*gradients_"):
            _pretrainer(gradients=positioner, n_frames=16, n_epochs=1).fit(data)


def test_a_connectivity_matrix_among_the_series_is_refused_naming_it(tmp_path):
    """A correlation matrix saved next to the series, listed or globbed with them, trained as
    a square series without a word (only input made of matrices alone was refused); a square
    series (as many frames as regions) still trains."""
    X = list(_data(n_subjects=3))
    connectome = np.corrcoef(np.concatenate(X).T)  # (16, 16)
    with pytest.raises(ValueError, match=r"^subject 3 looks like a connectivity matrix, not a "
                                         r"time series: it is square \(16 x 16\) and symmetric "
                                         r"with a unit diagonal.*BrainJEPAPretrainer takes"):
        _pretrainer(n_frames=16, n_epochs=1).fit(X + [connectome])
    paths = [tmp_path / f"sub-{i}.npy" for i in range(3)]
    for path, x in zip(paths, X):
        np.save(path, x)
    np.save(tmp_path / "conn.npy", connectome)
    for files in (paths + [tmp_path / "conn.npy"], str(tmp_path / "*.npy")):  # conn.npy first
        with pytest.raises(ValueError, match=re.escape(str(tmp_path / "conn.npy")) +
                           r": subject \d looks like a connectivity matrix"):
            _pretrainer(n_frames=16, n_epochs=1).fit(files)
    square = _pretrainer(n_frames=16, n_epochs=1).fit([x[:N_REGIONS] for x in X])
    assert len(square.history_) == 1


def test_a_positioner_that_does_not_fit_the_atlas_is_named_as_the_pretrainers_gradients():
    """A positioner given whose settings do not suit X's regions is named as the ``gradients``
    given, with its settings, the atlas and the positioner's reason (the default positioner
    is named as the default: test_gradients.py)."""
    X = _data(n_subjects=4)
    positioner = GradientPositioner(n_components=20, sparsity=0.5)
    with pytest.raises(ValueError, match=r"^gradients=GradientPositioner\(n_components=20, "
                                         r"sparsity=0\.5\) cannot be fitted on X's 16 regions: "
                                         r"n_components=20 is too large.* Pass "
                                         r"gradients=GradientPositioner\(n_components=14, "
                                         r"sparsity=0\.5\) \(settings this atlas takes\), "
                                         r"or a gradient matrix$"):
        _pretrainer(gradients=positioner, n_epochs=1).fit(X)


def test_the_positioner_that_a_too_small_atlas_is_told_fits_it():
    """The refusal of settings too large for the atlas gave no settings that fit it ("Pass
    gradients=GradientPositioner(...) with settings for this atlas"): it gives the positioner
    with n_components and sparsity lowered as far as needed, which fits."""
    X = _data(n_subjects=4)  # 16 regions: at most 14 components, sparsity 0.87 keeps 2
    with pytest.raises(ValueError, match=r"Pass gradients=(GradientPositioner\(.*\)) "
                                         r"\(settings this atlas takes\)") as info:
        _pretrainer(gradients=GradientPositioner(n_components=30, random_state=1),
                    n_epochs=1).fit(X)
    told = re.search(r"Pass gradients=(GradientPositioner\(.*\)) \(", str(info.value)).group(1)
    assert told == "GradientPositioner(n_components=14, random_state=1, sparsity=0.87)"
    fitting = eval(told, {"GradientPositioner": GradientPositioner})
    assert _pretrainer(gradients=fitting, n_epochs=1).fit(X).gradients_.shape == (16, 14)
    # two regions: no setting of approach='dm' fits them (none is then offered); 'pca' does
    assert GradientPositioner(n_components=3)._for_atlas(2) is None
    assert GradientPositioner(n_components=3, approach="pca")._for_atlas(2).n_components == 1


@pytest.mark.parametrize("positioner, message", [
    (GradientPositioner(approach="xx"), r"The 'approach' parameter of GradientPositioner must "
                                        r"be a str among .* Got 'xx' instead$"),
    (GradientPositioner(sparsity=90), r"The 'sparsity' parameter .* Got 90 instead: sparsity "
                                      r"is a fraction, sparsity=0\.9 for 90%"),
])
def test_a_positioner_with_an_invalid_parameter_is_not_said_to_miss_the_atlas(positioner,
                                                                            message):
    """An invalid value of the positioner (one no atlas takes) had been reported as 'cannot
    be fitted on X's 16 regions: ... instead.. Pass gradients=GradientPositioner(...) with
    settings for this atlas'."""
    with pytest.raises(ValueError, match=r"^gradients=GradientPositioner\(.*\) has an invalid "
                                         r"parameter: " + message) as info:
        _pretrainer(gradients=positioner, n_epochs=1).fit(_data())
    assert "atlas" not in str(info.value) and ".." not in str(info.value)


@pytest.mark.parametrize("extra, message", [
    ({"mlp_ratio": -1}, r"mlp_ratio must be a finite number > 0, got -1"),
    ({"mlp_ratio": 0.01}, r"mlp_ratio=0\.01 leaves the MLP .* no hidden unit"),
    ({"qkv_bias": "no"}, r"qkv_bias must be True or False, got 'no'"),
])
def test_the_block_settings_of_model_size_are_checked_before_any_work(extra, message):
    """mlp_ratio and qkv_bias of a model_size dict were checked only when the model was built,
    after the gradients and the statistics were fitted (the positioner's error came first here),
    and without naming model_size."""
    too_many = GradientPositioner(n_components=100)  # refused for 16 regions, when fitted
    with pytest.raises(ValueError, match=r"^model_size: " + message):
        _pretrainer(gradients=too_many, n_epochs=1,
                    model_size=dict(embed_dim=32, depth=1, num_heads=2, **extra)).fit(_data())


def test_an_estimator_other_than_a_positioner_is_refused_by_name():
    """``gradients`` accepts any estimator (anything with ``fit``), but only a
    GradientPositioner is fitted: another (a Pipeline around a positioner, a PCA) was read as
    a gradient matrix and refused as 'the gradient array is not numeric (dtype object)'."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline

    X = _data()
    for estimator in (PCA(3), make_pipeline(GradientPositioner(n_components=3, sparsity=0.5))):
        with pytest.raises(ValueError, match="not a GradientPositioner"):
            _pretrainer(gradients=estimator, n_epochs=1).fit(X)


def test_the_positioner_class_given_for_an_instance_is_named_as_such():
    """``gradients=GradientPositioner`` (the class, parentheses forgotten) passes the parameter
    constraints, since the class has a ``fit``: ``fit`` called it 'an estimator but not a
    GradientPositioner', which it is, and sent the user looking for another estimator."""
    with pytest.raises(ValueError, match=r"^gradients=GradientPositioner is the class, not a "
                                         r"GradientPositioner instance: pass "
                                         r"gradients=GradientPositioner\(\)"):
        _pretrainer(gradients=GradientPositioner, n_epochs=1).fit(_data())


def test_gradients_indexed_by_region_names_follow_the_columns_of_X():
    """A gradient DataFrame indexed by X's region names, in another order, is put in the order
    of X's columns (never used row by row); other names warn."""
    X = _data(n_subjects=4)
    names = [f"roi{i}" for i in range(N_REGIONS)]
    frames = [pd.DataFrame(x, columns=names) for x in X]
    gradients = np.random.default_rng(2).standard_normal((N_REGIONS, 4))
    order = np.random.default_rng(3).permutation(N_REGIONS)
    shuffled = pd.DataFrame(gradients[order], index=[names[i] for i in order])
    model = _pretrainer(gradients=shuffled, n_epochs=1).fit(frames)
    np.testing.assert_array_equal(model.gradients_, gradients)
    other = pd.DataFrame(gradients, index=[f"other{i}" for i in range(N_REGIONS)])
    with pytest.warns(UserWarning, match="region names of gradients.*differ"):
        model = _pretrainer(gradients=other, n_epochs=1).fit(frames)
    np.testing.assert_array_equal(model.gradients_, gradients)


def test_gradients_indexed_by_numbers_warn_that_the_rows_are_not_matched_by_label():
    """Atlas label values as the index (and as X's columns) are not names (only strings are,
    as in scikit-learn): the rows are used in order, which silently put a label's gradients on
    another label's column when the two orders differed; now that says so. A default
    0, 1, ... index names nothing and is quiet."""
    X = _data(n_subjects=4)
    labels = np.arange(N_REGIONS, 0, -1)
    frames = [pd.DataFrame(x, columns=labels[::-1]) for x in X]
    gradients = np.random.default_rng(2).standard_normal((N_REGIONS, 4))
    message = r"index of gradients \(\[16, 15, 14\]\.\.\.\) is not read as region names"
    with pytest.warns(UserWarning, match=message):
        model = _pretrainer(gradients=pd.DataFrame(gradients, index=labels), n_epochs=1).fit(
            frames)
    np.testing.assert_array_equal(model.gradients_, gradients)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _pretrainer(gradients=pd.DataFrame(gradients), n_epochs=1).fit(frames)


def test_gradients_from_a_file(tmp_path):
    X = _data()
    gradients = np.random.default_rng(2).standard_normal((N_REGIONS, 5))
    np.savetxt(tmp_path / "g.csv", gradients, delimiter=",")
    model = _pretrainer(gradients=str(tmp_path / "g.csv"), n_epochs=1).fit(X)
    np.testing.assert_allclose(model.gradients_, gradients)
    with pytest.raises(ValueError, match="9 rows"):
        _pretrainer(gradients=gradients[:9]).fit(X)


def test_gradients_that_put_every_region_at_one_place_warn(tmp_path):
    """Rows all the same (a matrix broadcast from one row, a wrong column of a table) give
    every region one position: the model cannot tell the regions apart by where they are,
    which had trained without a word. A warning, since an ablation may mean it."""
    X = _data(n_subjects=4)
    same = np.tile(np.random.default_rng(2).standard_normal(4), (N_REGIONS, 1))
    with pytest.warns(UserWarning, match=rf"^the gradients give all {N_REGIONS} regions one "
                                         r"position \(every row is the same\)"):
        model = _pretrainer(gradients=same, n_epochs=1).fit(X)
    np.testing.assert_array_equal(model.gradients_, same)
    np.save(tmp_path / "g.npy", same)
    with pytest.warns(UserWarning, match=r"^the gradients \(.*g\.npy\) give all"):
        _pretrainer(gradients=tmp_path / "g.npy", n_epochs=1).fit(X)
    one_differs = same.copy()
    one_differs[3, 0] += 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _pretrainer(gradients=one_differs, n_epochs=1).fit(X)


def test_gradients_with_more_rows_than_regions_are_refused():
    """A matrix of another atlas is refused whichever way the counts differ: with more rows
    than X's regions, not only fewer."""
    gradients = np.random.default_rng(1).standard_normal((N_REGIONS + 2, 4))
    with pytest.raises(ValueError, match=f"the gradients have {N_REGIONS + 2} rows \\(regions\\) "
                                         f"but X has {N_REGIONS} regions"):
        _pretrainer(gradients=gradients).fit(_data(4))


def test_a_transposed_gradient_matrix_is_told_to_be_transposed():
    """A (n_components, n_regions) matrix was told "each subject must be (n_timepoints,
    n_regions)", blaming X, which was right."""
    gradients = np.random.default_rng(1).standard_normal((N_REGIONS, 4))
    with pytest.raises(ValueError, match=r"the gradients have 4 rows \(regions\) but X has "
                                         rf"{N_REGIONS} regions on its last axis; the gradients "
                                         r"look transposed: .* \(gradients\.T\)$"):
        _pretrainer(gradients=gradients.T).fit(_data(4))
    with pytest.raises(ValueError, match=r"9 rows .*; each subject must be") as info:
        _pretrainer(gradients=gradients[:9]).fit(_data(4))
    assert "transposed" not in str(info.value)


def test_save_then_embed_with_the_same_preprocessing(tmp_path):
    X = _data() * 100 + 500
    model = _pretrainer(n_epochs=2).fit(X)
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = load_checkpoint(path)
    assert loaded.preprocessing["normalization"] == "robust"
    assert [h["loss"] for h in loaded.metadata["history"]] == [h["loss"] for h in model.history_]
    # the file's preprocessing (sliding windows, robust statistics) is used without restating it
    embedder = BrainJEPAEmbedder(weights=path).fit(X[:2])
    ours, theirs = embedder.preprocessor_.to_dict(), model.preprocessor_.to_dict()
    for key in ("median_", "iqr_"):
        np.testing.assert_array_equal(ours.pop(key), theirs.pop(key))
    assert ours == theirs and ours["window"] == "sliding"
    np.testing.assert_allclose(embedder.transform(X), model.transform(X), atol=1e-6)
    # an explicit choice still wins
    centre = BrainJEPAEmbedder(weights=path, window="center").fit(X[:2])
    assert centre.preprocessor_.window == "center"


@pytest.mark.parametrize("scale, offset, warned", [(1.0, 0.0, False), (1e4, 1e4, True),
                                                   (1e-4, 1.0, False)])
def test_transform_warns_of_series_off_the_scale_of_the_robust_statistics_of_fit(scale, offset,
                                                                                warned):
    """transform scales new series with the robust statistics learned by fit: raw BOLD around
    1e4 reached the model blown up without a word. One warning per call; none for series on
    the scale of fit, nor for tiny fluctuations (pooled statistics leave some data of fit so)."""
    X = _data(n_subjects=4)
    model = _pretrainer(n_epochs=1).fit(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.transform([x * scale + offset for x in X])
    messages = [str(warning.message) for warning in caught
                if "on another scale than the data" in str(warning.message)]
    assert len(messages) == warned
    if warned:
        assert messages[0].startswith("the series are on another scale than the data this "
                                      "BrainJEPAPretrainer was fitted on")


def test_a_pretrainer_pickled_before_it_recorded_its_statistics_origin_says_fit_learned_them():
    """The pretrainer learns its robust statistics in its fit (it has no weights to take them
    from): one pickled before it recorded where they came from says so."""
    X = _data(n_subjects=4)
    model = _pretrainer(n_epochs=1).fit(X)
    vars(model.preprocessor_).pop("_statistics_source", None)  # as pickled before
    model = pickle.loads(pickle.dumps(model))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.transform([x * 1e4 + 1e4 for x in X])
    messages = [str(warning.message) for warning in caught
                if "on another scale than the data" in str(warning.message)]
    assert len(messages) == 1
    assert messages[0].startswith("the series are on another scale than the data this "
                                  "BrainJEPAPretrainer was fitted on: its robust statistics "
                                  "(normalization='robust', learned by fit"), messages[0]


def test_the_fitted_module_as_weights_preprocesses_as_the_saved_file(tmp_path):
    import pandas as pd

    from brainjepa_sk import BrainJEPAClassifier

    X = _data() * 100 + 500
    frames = [pd.DataFrame(x, columns=[f"roi{i}" for i in range(N_REGIONS)]) for x in X]
    model = _pretrainer(n_epochs=1, t_r=2.0).fit(frames)
    path = tmp_path / "model.pt"
    model.save(path)
    expected = model.transform(X)
    for weights in (model.model_, load_checkpoint(path).model):
        embedder = BrainJEPAEmbedder(weights=weights).fit(X[:2])
        assert embedder.preprocessor_.to_dict().keys() == model.preprocessor_.to_dict().keys()
        assert (embedder.preprocessor_.window, embedder.preprocessor_.target_t_r) == ("sliding", 2.0)
        np.testing.assert_allclose(embedder.preprocessor_.median_, model.preprocessor_.median_)
        np.testing.assert_allclose(embedder.transform(X), expected, atol=1e-6)
        assert embedder.region_names_ == [f"roi{i}" for i in range(N_REGIONS)]
    classifier = BrainJEPAClassifier(model.model_, max_epochs=1, batch_size=8, verbose=0,
                                     random_state=0).fit(X, np.arange(len(X)) % 2)
    assert classifier.preprocessor_.normalization == "robust"
    np.testing.assert_allclose(classifier.preprocessor_.iqr_, model.preprocessor_.iqr_)


def test_region_names_travel_with_the_model_and_their_order_is_checked(tmp_path):
    """Fitted on labelled regions, the checkpoint (and an exported training state) keeps their
    names; embedding or fine-tuning columns in another order is refused, other names warn."""
    import pandas as pd

    from brainjepa_sk import BrainJEPAClassifier
    from brainjepa_sk.checkpoint import export_training_state

    names = [f"7Networks_{i}" for i in range(N_REGIONS)]
    X = [pd.DataFrame(x, columns=names) for x in _data(n_subjects=4)]
    model = _pretrainer(n_epochs=1, checkpoint_dir=tmp_path / "run").fit(X)
    path = tmp_path / "model.pt"
    model.save(path)
    assert load_checkpoint(path).metadata["region_names"] == names
    (state,) = _state_files(tmp_path / "run")
    exported = export_training_state(state, tmp_path / "exported.pt")
    assert load_checkpoint(exported).metadata["region_names"] == names

    BrainJEPAEmbedder(weights=path).fit(X)  # the same order: fine
    BrainJEPAEmbedder(weights=path).fit([x.to_numpy() for x in X])  # no names: not checked
    swapped = [x[[names[1], names[0], *names[2:]]] for x in X]
    for estimator in (BrainJEPAEmbedder(weights=path),
                      BrainJEPAClassifier(path, max_epochs=1, verbose=0)):
        with pytest.raises(ValueError, match=r"another order \(column 0 is '7Networks_1' but "
                                             r"was '7Networks_0'.*2 in all\)"):
            estimator.fit(swapped, [0, 1, 0, 1])
    # fitted on arrays, the estimators still check named input against the weights' names
    arrays = [x.to_numpy() for x in X]
    embedder = BrainJEPAEmbedder(weights=path).fit(arrays)
    assert embedder.region_names_ == names
    classifier = BrainJEPAClassifier(path, max_epochs=1, verbose=0).fit(arrays, [0, 1, 0, 1])
    for call in (embedder.transform, classifier.predict,
                 lambda Z: classifier.partial_fit(Z, [0, 1, 0, 1])):
        with pytest.raises(ValueError, match="another order"):
            call(swapped)
    renamed = [x.set_axis([f"roi{i}" for i in range(N_REGIONS)], axis=1) for x in X]
    with pytest.warns(UserWarning, match="region names of X differ.*16 in all"):
        BrainJEPAEmbedder(weights=path).fit(renamed)
    # arrays pretrained: no names saved, nothing to check
    unnamed = tmp_path / "unnamed.pt"
    _pretrainer(n_epochs=1).fit(_data(n_subjects=4)).save(unnamed)
    assert "region_names" not in load_checkpoint(unnamed).metadata
    BrainJEPAEmbedder(weights=unnamed).fit(swapped)


class _InterruptAfterEpoch(Callback):
    """Stops the run after the steps of an epoch (1-based), before its checkpoint is saved."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, loop):
        if loop.epoch == self.epoch:
            raise KeyboardInterrupt


def test_interrupted_fit_resumes_from_its_checkpoint(tmp_path):
    X = _data()
    uninterrupted = _pretrainer(n_epochs=4).fit(X)

    interrupted = _pretrainer(n_epochs=4, checkpoint_dir=tmp_path, callbacks=[_InterruptAfterEpoch(3)])
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(X)
    assert not hasattr(interrupted, "model_")  # nothing half-done was kept
    (state_file,) = _state_files(tmp_path)
    assert torch.load(state_file, weights_only=True)["loop"]["epoch"] == 2
    interrupted.set_params(callbacks=None)  # callbacks observe the run: not part of its key
    resumed = interrupted.fit(X)
    assert [h["loss"] for h in resumed.history_] == [h["loss"] for h in uninterrupted.history_]
    for p, q in zip(resumed.model_.state_dict().values(),
                    uninterrupted.model_.state_dict().values()):
        assert torch.equal(p, q)


def _cosine_kernel(x):
    return x @ x.T / np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(x, axis=1))


def test_the_settings_a_run_keeps_do_not_hold_addresses(tmp_path):
    """A positioner with a callable kernel is written with the function's address, another in
    every process: the warning of an unfinished run named it as a setting that differs."""
    from brainjepa_sk.train import unfinished_runs

    X = _data()
    settings = dict(n_epochs=2, checkpoint_dir=tmp_path,
                    gradients=GradientPositioner(n_components=3, sparsity=0.5,
                                                 kernel=_cosine_kernel))
    with pytest.raises(KeyboardInterrupt):
        _pretrainer(callbacks=[_InterruptAfterEpoch(2)], **settings).fit(X)
    ((_, extra, _),) = unfinished_runs(tmp_path)
    assert " at 0x" not in extra["settings"]["gradients"]
    assert "kernel=<function _cosine_kernel>" in extra["settings"]["gradients"]


def test_unfinished_runs_lists_the_runs_stopped_before_their_last_epoch(tmp_path):
    from brainjepa_sk.train import unfinished_runs

    X = _data()
    with pytest.raises(KeyboardInterrupt):
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path,
                    callbacks=[_InterruptAfterEpoch(2)]).fit(X)
    ((path, extra, done),) = unfinished_runs(tmp_path)
    assert path == _state_files(tmp_path)[0] and extra["n_epochs"] == 2
    assert done == {"epoch": 1, "step": 2}
    _pretrainer(n_epochs=2, checkpoint_dir=tmp_path).fit(X)  # resumed and finished
    assert unfinished_runs(tmp_path) == []


def test_a_new_run_beside_an_unfinished_one_says_what_differs(tmp_path):
    """Fitting again after an interruption with a setting changed (or a subject added) starts
    another run from scratch: a warning names the unfinished run and what differs, which
    would otherwise go unnoticed. Finished runs, and the run resumed, are not warned of."""
    X = _data()
    with pytest.raises(KeyboardInterrupt):
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path,
                    callbacks=[_InterruptAfterEpoch(2)]).fit(X)
    (unfinished,) = _state_files(tmp_path)
    with pytest.warns(UserWarning, match="unfinished run") as record:
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path, lr=1e-3, batch_size=4).fit(X)
    (message,) = [str(w.message) for w in record if "unfinished run" in str(w.message)]
    assert str(unfinished) in message and "step 2, 1 of its n_epochs=2 epochs done" in message
    assert ("the same data but other settings (batch_size: 8 there, 4 now; lr: 0.002 there, "
            "0.001 now)") in message
    with pytest.warns(UserWarning, match=r"the same settings but other data \(10 subjects "
                                         r"there, 9 now"):
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path).fit(X[:9])
    with pytest.warns(UserWarning, match=r"other data \(10 subjects there, 10 now: .*another "
                                         r"order\)"):  # the same files, listed otherwise
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path).fit(X[::-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path).fit(X)  # resumed, now finished
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path, lr=5e-4).fit(X)


def test_a_new_run_beside_an_unfinished_one_names_a_model_setting_that_differs(tmp_path):
    """The model's settings (loss, ...) are in the run's key twice, through its
    configuration and its settings: the warning of a new run names such a setting as it
    names the others, not as "other gradients"."""
    X = _data()
    with pytest.raises(KeyboardInterrupt):
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path,
                    callbacks=[_InterruptAfterEpoch(2)]).fit(X)
    with pytest.warns(UserWarning, match=r"the same data but other settings \(loss: 'l2' there, "
                                         r"'smooth_l1' now\)"):
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path, loss="smooth_l1").fit(X)


def test_an_unfinished_run_of_another_state_format_is_named_as_such(tmp_path, monkeypatch):
    """After an upgrade that changes the state format, the same fit starts afresh: the warning
    says the unfinished run was saved by another version, not that it had other gradients
    and that a fit with its settings would resume it."""
    from brainjepa_sk import pretrain

    X = _data()
    with pytest.raises(KeyboardInterrupt):
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path,
                    callbacks=[_InterruptAfterEpoch(2)]).fit(X)
    (unfinished,) = _state_files(tmp_path)
    monkeypatch.setattr(pretrain, "_STATE_FORMAT", pretrain._STATE_FORMAT + 1)
    with pytest.warns(UserWarning, match="unfinished run") as record:
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path).fit(X)
    (message,) = [str(w.message) for w in record if "unfinished run" in str(w.message)]
    assert str(unfinished) in message and "other gradients" not in message
    assert (f"the same data and settings but saved by another version of brainjepa_sk (state "
            f"format {pretrain._STATE_FORMAT - 1} there, {pretrain._STATE_FORMAT} now), which "
            "only a version of its state format would resume") in message


def test_a_run_another_live_process_trains_is_not_warned_of_as_unfinished(tmp_path,
                                                                        monkeypatch):
    """Cross-validation folds or search candidates fitted in parallel share checkpoint_dir:
    the unfinished run of a fold being trained by another process was warned of, with the
    advice to delete its file. A run whose process has ended is still warned of."""
    from brainjepa_sk import pretrain

    X = _data()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        monkeypatch.setattr(pretrain, "_this_process",
                            lambda: {"host": socket.gethostname(), "pid": other.pid})
        with pytest.raises(KeyboardInterrupt):
            _pretrainer(n_epochs=2, checkpoint_dir=tmp_path,
                        callbacks=[_InterruptAfterEpoch(2)]).fit(X)
        monkeypatch.undo()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _pretrainer(n_epochs=2, checkpoint_dir=tmp_path, lr=1e-3).fit(X)
    finally:
        other.kill()
        other.wait()
    with pytest.warns(UserWarning, match="unfinished run"):  # its process gone
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path, lr=5e-4).fit(X)


class _StopAfterEpoch(Callback):
    """Asks the loop to stop after an epoch (1-based), through ``stop_training``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, loop):
        if loop.epoch == self.epoch:
            loop.stop_training = True


def test_a_callback_ends_a_fit_early_and_the_same_fit_again_goes_on(tmp_path):
    """A callback that sets ``stop_training`` ends ``fit`` without an error: a fitted model
    of the epochs trained. Its state saved, the same fit again (the callback is not part of
    the resume key) continues the run: the model of the uninterrupted fit."""
    X = _data()
    whole = _pretrainer(n_epochs=3).fit(X)
    stopped = _pretrainer(n_epochs=3, checkpoint_dir=tmp_path,
                          callbacks=[_StopAfterEpoch(1)]).fit(X)
    assert [h["loss"] for h in stopped.history_] == [whole.history_[0]["loss"]]
    assert stopped.transform(X).shape == whole.transform(X).shape
    (state_file,) = _state_files(tmp_path)
    assert torch.load(state_file, weights_only=True)["loop"]["epoch"] == 1
    resumed = stopped.set_params(callbacks=None).fit(X)
    assert [h["loss"] for h in resumed.history_] == [h["loss"] for h in whole.history_]
    for p, q in zip(resumed.model_.state_dict().values(), whole.model_.state_dict().values()):
        assert torch.equal(p, q)


class _StopAtStep(Callback):
    """Asks the loop to stop after a step (1-based), through ``stop_training``."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, loop, loss):
        if loop.step == self.step:
            loop.stop_training = True


def test_a_run_a_callback_stopped_is_not_warned_of_as_unfinished(tmp_path):
    """A run a callback ended on purpose (early stopping) was listed as unfinished, and every
    later run with other settings in the folder warned of it. It is saved as stopped, with
    the steps it trained (here inside its second epoch), and the same fit again continues it.
    Its ``history_`` holds the epoch it completed: the second one, cut short, has no record
    until the fit that finishes it."""
    from brainjepa_sk.train import unfinished_runs

    X = _data()
    stopped = _pretrainer(n_epochs=3, checkpoint_dir=tmp_path,
                          callbacks=[_StopAtStep(3)]).fit(X)  # 2 steps an epoch
    assert [h["epoch"] for h in stopped.history_] == [0]
    assert unfinished_runs(tmp_path) == []
    (state_file,) = _state_files(tmp_path)
    assert torch.load(state_file, weights_only=True)["loop"]["step"] == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _pretrainer(n_epochs=3, checkpoint_dir=tmp_path, lr=1e-3).fit(X)
    whole = _pretrainer(n_epochs=3).fit(X)
    resumed = _pretrainer(n_epochs=3, checkpoint_dir=tmp_path).fit(X)
    assert [h["loss"] for h in resumed.history_] == [h["loss"] for h in whole.history_]


def test_a_run_a_callback_stopped_as_sigterm_came_is_saved_as_stopped(tmp_path):
    """SIGTERM at the step where a callback stopped the run: the loop says a callback had
    stopped it, but the run was saved as unfinished and later runs warned of it."""
    from brainjepa_sk.train import unfinished_runs

    class StopAndSignal(_StopAtStep):
        def on_step_end(self, loop, loss):
            super().on_step_end(loop, loss)
            if loop.step == self.step:
                os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted, match="SIGTERM after step 1"):
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path, callbacks=[StopAndSignal(1)],
                    model_size=dict(embed_dim=32, depth=1, num_heads=2)).fit(_data())
    (state_file,) = _state_files(tmp_path)
    assert torch.load(state_file, weights_only=True)["loop"]["step"] == 1
    assert unfinished_runs(tmp_path) == []


def _state_files(folder):
    return sorted(Path(folder).glob("run-*.pt"))


class _CountSteps(Callback):
    """Counts training steps across every fit it is copied into (a class-level counter)."""

    steps = 0
    stop_at = None

    def on_step_end(self, loop, loss):
        type(self).steps += 1
        if type(self).steps == type(self).stop_at:
            raise KeyboardInterrupt


def test_each_run_keeps_its_own_state(tmp_path):
    X = _data()
    first = _pretrainer(n_epochs=1, checkpoint_dir=tmp_path).fit(X)
    other_settings = _pretrainer(n_epochs=2, lr=1e-3, checkpoint_dir=tmp_path).fit(X)
    assert len(other_settings.history_) == 2  # trained from scratch, not resumed
    # same shape, other subjects (another CV fold, say): a run of its own too
    _pretrainer(n_epochs=2, lr=1e-3, checkpoint_dir=tmp_path).fit(_data(seed=5))
    assert len(_state_files(tmp_path)) == 3
    # the first run is still there to resume: nothing is trained again
    _CountSteps.steps = 0
    again = _pretrainer(n_epochs=1, checkpoint_dir=tmp_path, callbacks=[_CountSteps()]).fit(X)
    assert _CountSteps.steps == 0 and again.history_ == first.history_
    # the transform-only pooling does not matter
    assert _pretrainer(n_epochs=1, checkpoint_dir=tmp_path, pooling="roi").fit(X).history_ == (
        first.history_)
    assert len(_state_files(tmp_path)) == 3
    with pytest.warns(UserWarning, match="not an int"):
        _pretrainer(n_epochs=1, checkpoint_dir=tmp_path / "p", random_state=None).fit(X)


@pytest.mark.parametrize("normalization", [None, "global_zscore"])
def test_other_subjects_are_a_run_of_their_own_without_robust_statistics_too(normalization,
                                                                             tmp_path):
    """The subjects themselves are in the run's key, not only the statistics learned from
    them: without robust statistics another fold is still another run."""
    _pretrainer(n_epochs=1, normalization=normalization, checkpoint_dir=tmp_path).fit(_data())
    _CountSteps.steps, _CountSteps.stop_at = 0, None
    other = _pretrainer(n_epochs=1, normalization=normalization, checkpoint_dir=tmp_path,
                        callbacks=[_CountSteps()]).fit(_data(seed=5))
    assert _CountSteps.steps == 2  # trained, not the first fold's run resumed
    assert other.history_ == _pretrainer(n_epochs=1, normalization=normalization).fit(
        _data(seed=5)).history_
    assert len(_state_files(tmp_path)) == 2


def test_a_run_saved_under_another_state_format_is_not_continued(tmp_path, monkeypatch):
    """The format is bumped when a saved run must not go on under the new code (format 4:
    loss="l2" became a sum over the features); a shorter run of the old format is not
    extended either (found by a review: it was, and its losses jumped dim-fold). Format 3 is
    the layout of the files saved before that change, which are on users' disks."""
    from brainjepa_sk import pretrain

    X = _data()
    monkeypatch.setattr(pretrain, "_STATE_FORMAT", 3)
    _pretrainer(n_epochs=1, checkpoint_dir=tmp_path).fit(X)
    monkeypatch.undo()
    _CountSteps.steps = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "extending the run saved in ..."
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path, callbacks=[_CountSteps()]).fit(X)
    assert _CountSteps.steps == 2 * 2  # both epochs trained (two steps each)
    assert len(_state_files(tmp_path)) == 2


def test_an_interrupted_cross_validation_resumes_fold_by_fold(tmp_path):
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold, cross_validate
    from sklearn.pipeline import make_pipeline

    X, y = _data(n_subjects=12), np.arange(12.0)
    folds = KFold(3)
    pipe = make_pipeline(_pretrainer(n_epochs=2, checkpoint_dir=tmp_path,
                                     callbacks=[_CountSteps()]), Ridge())
    _CountSteps.steps, _CountSteps.stop_at = 0, None
    expected = cross_validate(pipe, X, y, cv=folds)["test_score"]
    steps_per_fold = _CountSteps.steps // 3
    for path in _state_files(tmp_path):
        path.unlink()
    # killed in the second fold's second epoch
    _CountSteps.steps, _CountSteps.stop_at = 0, steps_per_fold + steps_per_fold // 2 + 1
    with pytest.raises(KeyboardInterrupt):
        cross_validate(pipe, X, y, cv=folds, error_score="raise")
    assert len(_state_files(tmp_path)) == 2  # the first fold's, and the second's first epoch
    _CountSteps.steps, _CountSteps.stop_at = 0, None
    resumed = cross_validate(pipe, X, y, cv=folds)["test_score"]
    # the first fold is not trained again, the second only in its last epoch
    assert _CountSteps.steps == steps_per_fold // 2 + steps_per_fold
    np.testing.assert_array_equal(resumed, expected)


def test_a_training_state_exports_a_model(tmp_path):
    X = _data()
    interrupted = _pretrainer(n_epochs=3, checkpoint_dir=tmp_path,
                              callbacks=[_InterruptAfterEpoch(2)])
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(X)
    (state_file,) = _state_files(tmp_path)  # holds the first epoch
    # the path is returned as a pathlib.Path, also when given as a string
    assert export_training_state(state_file, str(tmp_path / "model.pt")) == tmp_path / "model.pt"
    loaded = load_checkpoint(tmp_path / "model.pt")
    assert loaded.metadata["epochs_completed"] == 1 and len(loaded.metadata["history"]) == 1
    assert loaded.metadata["exported_from"] == str(state_file)
    state = torch.load(state_file, weights_only=True)["loop"]["model"]
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, state[key])
    # the preprocessing (with its learned statistics) comes along
    embedder = BrainJEPAEmbedder(weights=tmp_path / "model.pt", device="cpu").fit(X)
    assert embedder.preprocessor_.normalization == "robust"
    assert embedder.transform(X).shape == (len(X), 32)
    with pytest.raises(ValueError, match="does not record the model's configuration"):
        torch.save({"loop": {"model": {}, "history": [], "epoch": 0}}, tmp_path / "bare.pt")
        export_training_state(tmp_path / "bare.pt", tmp_path / "x.pt")
    # exported over itself (run-*.pt with_suffix(".pt") is the same file), the run would be lost
    saved = state_file.read_bytes()
    with pytest.raises(ValueError, match="is the state file itself"):
        export_training_state(state_file, state_file.with_suffix(".pt"))
    assert state_file.read_bytes() == saved
    # nor may a model be saved over it; a damaged file there may be replaced
    with pytest.raises(ValueError, match="holds the saved state of a pretraining run"):
        save_checkpoint(state_file, loaded.model)
    assert state_file.read_bytes() == saved
    (tmp_path / "damaged.pt").write_bytes(b"PK\x03\x04 cut short")
    save_checkpoint(tmp_path / "damaged.pt", loaded.model)
    assert load_checkpoint(tmp_path / "damaged.pt").model.config == loaded.model.config


def test_paths_starting_with_a_tilde_are_in_the_home_folder(tmp_path, monkeypatch):
    """``~/...`` means the home folder, as in nilearn and pandas, for every path the estimators
    take: X's files and globs, gradients, checkpoint_dir, weights, save and export. Before,
    checkpoint_dir="~/runs" made a folder named "~" in the working folder, and the others
    were not found."""
    home, elsewhere = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)
    X = _data(n_subjects=4)
    for i, subject in enumerate(X):
        np.save(home / f"sub-{i}.npy", subject)
    np.save(home / "gradients.npy", np.random.default_rng(1).standard_normal((N_REGIONS, 4)))
    settings = dict(gradients="~/gradients.npy", checkpoint_dir="~/runs")
    fitted = _pretrainer(n_epochs=1, **settings).fit("~/sub-*.npy")
    assert list(elsewhere.iterdir()) == []  # no "~" folder here
    (state_file,) = _state_files(home / "runs")
    # the saved run is found there: resumed (nothing trained again), and continued
    _CountSteps.steps, _CountSteps.stop_at = 0, None
    again = _pretrainer(n_epochs=1, callbacks=[_CountSteps()], **settings).fit("~/sub-*.npy")
    assert _CountSteps.steps == 0 and again.history_ == fitted.history_
    with pytest.warns(UserWarning, match=f"extending the run saved in {state_file}"):
        _pretrainer(n_epochs=2, **settings).fit("~/sub-*.npy")
    fitted.save("~/model.pt")
    embedder = BrainJEPAEmbedder(weights="~/model.pt", device="cpu").fit(
        [f"~/sub-{i}.npy" for i in range(4)])
    np.testing.assert_allclose(embedder.transform(X), fitted.transform(X), rtol=1e-5, atol=1e-6)
    assert export_training_state("~/runs/" + state_file.name, "~/exported.pt") == (
        home / "exported.pt")
    assert load_checkpoint("~/exported.pt").metadata["exported_from"] == str(state_file)
    saved = state_file.read_bytes()
    with pytest.raises(ValueError, match="is the state file itself"):
        export_training_state(state_file, "~/runs/" + state_file.name)
    assert state_file.read_bytes() == saved


def test_a_tilde_that_names_no_user_is_part_of_a_path_as_given(tmp_path, monkeypatch):
    """``~name`` where no user is called name stays as written, as in nilearn and pandas: a
    file ``~draft.npy`` in the working folder is read, a missing one named. pathlib's
    ``expanduser`` raised ``RuntimeError("Could not determine home directory.")`` instead."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("~draft-sub.npy", _data(n_subjects=1)[0])
    np.save("~draft-gradients.npy", rng.standard_normal((N_REGIONS, 4)))
    assert len(validate_subjects(["~draft-sub.npy"])) == 1
    assert len(validate_subjects("~draft-sub*.npy", lazy=True)) == 1
    assert load_gradients("~draft-gradients.npy").shape == (N_REGIONS, 4)
    atomic_save({"a": 1}, "~draft.pt")
    assert load_file("~draft.pt") == {"a": 1}
    missing = "~no-such-user-r16/model.pt"
    with pytest.raises(FileNotFoundError, match=f"weights file not found: {missing}"):
        BrainJEPAEmbedder(weights=missing, device="cpu").fit(_data(n_subjects=2))
    with pytest.raises(FileNotFoundError, match=missing):
        export_training_state(missing, "out.pt")
    assert get_data_dir("~no-such-user-r16/cache") == Path("~no-such-user-r16/cache")


# Every parameter that shapes a training run, with another value: each must stop a resume.
_RUN_CHANGES = {
    "gradients": np.random.default_rng(9).standard_normal((N_REGIONS, 4)),
    "model_size": dict(embed_dim=16, depth=2, num_heads=2),
    "patch_size": 8,
    "n_frames": 16,
    "predictor_embed_dim": 16,
    "predictor_depth": 2,
    "drop_path_rate": 0.1,
    "loss": "smooth_l1",
    "patch_embed_init": "xavier",
    "n_epochs": 2,
    "batch_size": 4,
    "lr": 1e-3,
    "start_lr": 1e-4,
    "final_lr": 1e-5,
    "warmup_epochs": 0.5,
    "weight_decay": 0.05,
    "final_weight_decay": 0.3,
    "ema_momentum": 0.99,
    "final_ema_momentum": 0.999,
    "masking": dict(min_keep=2),
    "t_r": 2.0,
    "model_t_r": 1.0,
    "window": "center",
    "stride": 8,
    "min_frames": 20,
    "normalization": "global_zscore",
    "precision": "bf16",
    "random_state": 1,
}
# Parameters that do not change what is trained: how it is embedded, shown, stored or placed.
_NOT_RUN_PARAMETERS = {"pooling": "roi", "final_norm": False, "verbose": 1, "device": "cpu",
                       "callbacks": [Callback()], "compile": False, "checkpoint_every": 1,
                       "num_workers": 1, "accumulation_steps": 2}


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """The training state of a one-epoch run."""
    folder = tmp_path_factory.mktemp("run")
    _pretrainer(n_epochs=1, checkpoint_dir=folder).fit(_data())
    (state_file,) = _state_files(folder)
    return state_file


def test_every_parameter_is_either_in_the_resume_key_or_known_not_to_shape_the_run():
    assert set(_RUN_CHANGES) | set(_NOT_RUN_PARAMETERS) | {"checkpoint_dir"} == set(
        BrainJEPAPretrainer().get_params())


@pytest.mark.parametrize("name", sorted(_RUN_CHANGES))
def test_a_run_with_another_setting_does_not_resume(name, saved_run, tmp_path):
    shutil.copy(saved_run, tmp_path / saved_run.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some settings warn about the tiny data
        _pretrainer(**{"n_epochs": 1, "checkpoint_dir": tmp_path, name: _RUN_CHANGES[name]}).fit(
            _data())
    # another run: a state of its own, and the saved run left as it was
    assert [p.name for p in _state_files(tmp_path)].count(saved_run.name) == 1
    assert len(_state_files(tmp_path)) == 2
    assert (tmp_path / saved_run.name).read_bytes() == saved_run.read_bytes()


def test_settings_that_do_not_shape_the_run_resume_it(saved_run, tmp_path):
    shutil.copy(saved_run, tmp_path / saved_run.name)
    saved = torch.load(saved_run, weights_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = _pretrainer(n_epochs=1, checkpoint_dir=tmp_path, **_NOT_RUN_PARAMETERS).fit(
            _data())
    assert model.history_ == saved["loop"]["history"]
    assert _state_files(tmp_path) == [tmp_path / saved_run.name]


def test_precision_auto_resumes_as_the_arithmetic_it_chose(saved_run, tmp_path):
    # "auto" trains in float32 on a CPU: the same run as precision="fp32"
    assert _pretrainer().precision == "auto"
    shutil.copy(saved_run, tmp_path / saved_run.name)
    saved = torch.load(saved_run, weights_only=True)
    model = _pretrainer(n_epochs=1, checkpoint_dir=tmp_path, precision="fp32").fit(_data())
    assert model.history_ == saved["loop"]["history"]
    assert _state_files(tmp_path) == [tmp_path / saved_run.name]


def test_masking_options_spelled_out_at_their_defaults_resume_the_run_without_them(saved_run,
                                                                                   tmp_path):
    """masking={"min_keep": 4, ...} draws the masks that masking=None draws: the same run."""
    shutil.copy(saved_run, tmp_path / saved_run.name)
    saved = torch.load(saved_run, weights_only=True)
    # as the sampler takes them: an int where the default is a float, an array for a tuple
    spelled_out = {"min_keep": 4, "count_quantile": 0.1, "alpha_region_scale": [0.45, 0.6],
                   "observation_scale": (0.84, 1), "alpha_time_scale": np.array([0.2, 0.6])}
    model = _pretrainer(n_epochs=1, checkpoint_dir=tmp_path, masking=spelled_out).fit(_data())
    assert model.history_ == saved["loop"]["history"]
    assert _state_files(tmp_path) == [tmp_path / saved_run.name]


@pytest.mark.parametrize("static_shapes", [False, True])
def test_count_quantile_is_part_of_the_run_only_with_static_shapes(static_shapes, tmp_path):
    """Without static_shapes the sampler keeps each batch's own counts and never uses
    count_quantile: a run interrupted, then fitted again with another one, resumes. With
    static_shapes the quantile sets the counts every batch keeps: another run."""
    X = _data()
    _CountSteps.steps, _CountSteps.stop_at = 0, None
    model = _pretrainer(n_epochs=2, checkpoint_dir=tmp_path,
                        masking=dict(static_shapes=static_shapes, count_quantile=0.1),
                        callbacks=[_InterruptAfterEpoch(2), _CountSteps()])
    with pytest.raises(KeyboardInterrupt):  # after the second epoch's steps, one epoch saved
        model.fit(X)
    steps_per_epoch, _CountSteps.steps = _CountSteps.steps // 2, 0
    model.set_params(callbacks=[_CountSteps()], masking__count_quantile=0.3)
    with (pytest.warns(UserWarning, match=r"count_quantile: 0.1 there, 0.3 now")
          if static_shapes else warnings.catch_warnings()):
        if not static_shapes:
            warnings.simplefilter("error")  # resumed: nothing to tell but the unused quantile
            warnings.filterwarnings("ignore", r"masking count_quantile=0\.3 is ignored")
        model.fit(X)
    assert len(model.history_) == 2
    if static_shapes:  # other counts kept: a run of its own, trained from the start
        assert _CountSteps.steps == 2 * steps_per_epoch
        assert len(_state_files(tmp_path)) == 2
    else:  # the same masks: the saved run goes on from its first epoch
        assert _CountSteps.steps == steps_per_epoch
        assert len(_state_files(tmp_path)) == 1


@pytest.mark.parametrize("saved, refitted", [(None, 0.11), (0.12, 0.13)])
def test_count_quantiles_that_keep_the_same_counts_are_the_same_run(saved, refitted, tmp_path,
                                                                   monkeypatch):
    """With static_shapes the quantile only chooses the token counts every batch keeps: a run
    fitted again with another quantile that gives the same counts draws the same masks and
    resumes (it had started afresh). A quantile with the default's counts is keyed as the
    default, so that runs saved with the default keep their key."""
    import brainjepa_sk.pretrain as pretrain_module

    grid = SpatiotemporalMaskSampler(N_REGIONS, 32 // 4)  # _pretrainer's regions x patches
    default = grid.count_quantile
    assert grid.counts_at(default if saved is None else saved) == grid.counts_at(refitted)
    assert (grid.counts_at(refitted) == grid.counts_at(default)) is (saved is None)
    keys = []

    def recorded(settings, *args, **kwargs):
        keys.append(copy.deepcopy(settings[0]["masking"]))
        return run_key(settings, *args, **kwargs)

    monkeypatch.setattr(pretrain_module, "run_key", recorded)
    X = _data()
    _CountSteps.steps, _CountSteps.stop_at = 0, None
    model = _pretrainer(n_epochs=2, checkpoint_dir=tmp_path,
                        masking=None if saved is None else dict(count_quantile=saved),
                        callbacks=[_InterruptAfterEpoch(2), _CountSteps()])
    with pytest.raises(KeyboardInterrupt):  # after the second epoch's steps, one epoch saved
        model.fit(X)
    steps_per_epoch, _CountSteps.steps = _CountSteps.steps // 2, 0
    model.set_params(callbacks=[_CountSteps()], masking=dict(count_quantile=refitted))
    model.fit(X)
    assert len(model.history_) == 2
    assert _CountSteps.steps == steps_per_epoch  # the saved run went on from its first epoch
    assert len(_state_files(tmp_path)) == 1
    if saved is None:  # the key a run saved with the default had before counts were keyed
        assert all(key.get("count_quantile") == default and "static_counts" not in key
                   for key in keys)


def test_numpy_settings_resume_as_the_python_numbers_they_equal(tmp_path):
    # np.logspace grids give numpy floats, np.arange numpy integers: a run saved with them is
    # the run of the same Python numbers, and loads (no numpy scalars in the saved state)
    numpy_settings = dict(lr=np.float64(1e-3), weight_decay=np.float64(0.04),
                          n_epochs=np.int64(1), batch_size=np.int64(4),
                          random_state=np.int64(0))
    sizes = dict(embed_dim=np.int64(32), depth=np.int64(2), num_heads=np.int64(2))
    first = _pretrainer(checkpoint_dir=tmp_path, model_size=sizes,
                        **numpy_settings).fit(_data())
    (state_file,) = _state_files(tmp_path)
    torch.load(state_file, weights_only=True)
    plain = {name: value.item() for name, value in numpy_settings.items()}
    plain["model_size"] = {name: value.item() for name, value in sizes.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = _pretrainer(checkpoint_dir=tmp_path, **plain).fit(_data())
    assert _state_files(tmp_path) == [state_file]
    assert again.history_ == first.history_
    for key, value in first.model_.state_dict().items():
        assert torch.equal(again.model_.state_dict()[key], value)


def test_accumulated_micro_batches_train_the_model_of_the_whole_batch():
    X = _data()
    whole = _pretrainer(n_epochs=2).fit(X)
    accumulated = _pretrainer(n_epochs=2, accumulation_steps=4).fit(X)
    assert [h["loss"] for h in accumulated.history_] == pytest.approx(
        [h["loss"] for h in whole.history_], rel=1e-4)
    for key, value in whole.model_.state_dict().items():
        torch.testing.assert_close(accumulated.model_.state_dict()[key], value,
                                   rtol=1e-3, atol=1e-5)


class _SeesTheLoop(Callback):
    """Records what the pretrainer's loop runs: the windows each forward pass gets, whether
    loader workers are alive during the steps, and the collapse monitor's windows."""

    def on_train_begin(self, loop):
        self.batch_sizes, self.workers_alive = [], []
        self.monitored = next(c.windows for c in loop.callbacks
                              if isinstance(c, CollapseMonitor)).cpu()
        self._hook = loop.model.register_forward_pre_hook(
            lambda module, args: self.batch_sizes.append(len(args[0])))

    def on_step_end(self, loop, loss):
        self.workers_alive.append(bool(multiprocessing.active_children()))

    def on_train_end(self, loop):
        self._hook.remove()


def test_accumulation_steps_splits_each_step_into_micro_batches():
    """Not only the same model: each step of 8 windows really runs as 4 forward passes of 2
    (the memory of a micro-batch)."""
    fit = _pretrainer(n_epochs=1, accumulation_steps=4, callbacks=[_SeesTheLoop()]).fit(_data())
    assert fit.callbacks_[0].batch_sizes == [2] * 4 * (20 // 8)


class _TargetEncoderBatches(Callback):
    """Records the number of windows of each pass through the target encoder."""

    def on_train_begin(self, loop):
        self.batch_sizes = []
        self._hook = loop.model.target_encoder.register_forward_pre_hook(
            lambda module, args: self.batch_sizes.append(len(args[0])))

    def on_train_end(self, loop):
        self._hook.remove()


@pytest.mark.parametrize("accumulation_steps", [1, 4])
def test_the_collapse_monitors_pass_a_micro_batch_of_windows_at_a_time(accumulation_steps):
    """The 20 monitored windows went through the target encoder at once at each epoch's end:
    more memory than a training step (several times over for a large atlas and batch_size
    far below 64). They go a micro-batch at a time, as the steps' windows do."""
    seen = _pretrainer(n_epochs=1, accumulation_steps=accumulation_steps,
                       callbacks=[_TargetEncoderBatches()]).fit(_data()).callbacks_[0]
    micro_batch = 8 // accumulation_steps
    assert max(seen.batch_sizes) == micro_batch
    assert sum(seen.batch_sizes) == 2 * 8 + 20  # the steps' windows, then the monitored ones


def test_num_workers_loads_the_windows_in_worker_processes():
    seen = _pretrainer(n_epochs=1, num_workers=1, callbacks=[_SeesTheLoop()]).fit(
        _data()).callbacks_[0]
    assert seen.workers_alive == [True] * (20 // 8)


def test_the_collapse_monitors_watch_windows_of_every_subject():
    """More training windows than the 64 monitored: these are spread over all the subjects,
    not the first windows (of the first few subjects)."""
    X = _data()
    fit = _pretrainer(n_epochs=1, stride=1, callbacks=[_SeesTheLoop()]).fit(X)
    windows, subject_index = fit.preprocessor_.transform(list(X))
    assert len(windows) == 10 * (48 - 32 + 1)  # 170 windows, 17 a subject
    monitored = fit.callbacks_[0].monitored.numpy()
    assert len(monitored) == 64
    matches = (monitored[:, None] == windows[None]).all(axis=(2, 3))  # (64, 170)
    assert (matches.sum(1) >= 1).all()
    assert set(subject_index[matches.argmax(1)]) == set(range(10))


def test_stochastic_depth_follows_random_state_and_resumes_exactly(tmp_path):
    X = _data()
    a = _pretrainer(n_epochs=3, drop_path_rate=0.3).fit(X)
    b = _pretrainer(n_epochs=3, drop_path_rate=0.3).fit(X)
    assert a.history_ == b.history_
    c = _pretrainer(n_epochs=3, drop_path_rate=0.3, checkpoint_dir=tmp_path,
                    callbacks=[_InterruptAfterEpoch(2)])
    with pytest.raises(KeyboardInterrupt):
        c.fit(X)
    c.set_params(callbacks=None)
    assert c.fit(X).history_ == a.history_


def test_input_tr_is_recorded_as_the_model_tr(tmp_path):
    X = _data(n_timepoints=64)
    model = _pretrainer(n_epochs=1, t_r=0.8).fit(X)
    assert model.preprocessor_.target_t_r == 0.8
    model.save(tmp_path / "m.pt")
    # data at half the TR are resampled to the model's TR by the embedder
    fast = np.repeat(X, 2, axis=1)
    embedder = BrainJEPAEmbedder(weights=tmp_path / "m.pt", t_r=0.4).fit(fast)
    assert embedder.preprocessor_.target_t_r == 0.8 and embedder.preprocessor_.t_r == 0.4


def test_weights_pretrained_on_resampled_series_warn_when_the_input_tr_is_not_set(tmp_path):
    """The input TR belongs to the data, so it is not taken from the checkpoint; leaving it
    unset for a model whose pretraining resampled would skip that resampling silently."""
    X = _data(n_timepoints=64)
    _pretrainer(n_epochs=1, t_r=1.0, model_t_r=2.0).fit(X).save(tmp_path / "m.pt")
    with pytest.warns(UserWarning, match=r"TR 1 s resampled to 2 s, but t_r is not set"):
        unset = BrainJEPAEmbedder(weights=tmp_path / "m.pt").fit(X)
    assert unset.preprocessor_.t_r is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        given = BrainJEPAEmbedder(weights=tmp_path / "m.pt", t_r=1.0).fit(X)
        BrainJEPAEmbedder(weights=tmp_path / "m.pt", t_r=2.0).fit(X)
    assert given.preprocessor_.t_r == 1.0 and given.preprocessor_.target_t_r == 2.0
    # a model whose pretraining did not resample has nothing to warn about: the same TR, or
    # TRs whose ratio is 1 within resample's denominators of at most 64
    _pretrainer(n_epochs=1, t_r=2.0).fit(X).save(tmp_path / "same.pt")
    _pretrainer(n_epochs=1, t_r=2.0, model_t_r=2.0002).fit(X).save(tmp_path / "near.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BrainJEPAEmbedder(weights=tmp_path / "same.pt").fit(X)
        BrainJEPAEmbedder(weights=tmp_path / "near.pt").fit(X)


def test_a_tr_set_after_fit_for_another_site_is_told_how_to_resample_without_refitting():
    """Another site's TR set after fit is ignored (the preprocessing is fit's); the warning
    had only said to fit again, which for the pretrainer means training anew. It now names the
    resampling that brings such series to the TR fit took its series at, and that advice gives
    the windows of series acquired at fit's TR."""
    X = _data(n_subjects=4, n_timepoints=64)
    model = _pretrainer(n_epochs=1, t_r=1.0, model_t_r=2.0).fit(X)
    other_site = [resample(x, 1.0, 0.5) for x in X]  # the same series, acquired at 0.5 s
    with pytest.warns(UserWarning, match=re.escape(
            "t_r=0.5 (fitted with 1.0): changed since fit") + r".*resample them to the TR fit "
            r"took its series at, 1 s, and leave t_r as fitted: brainjepa_sk\.preprocessing\."
            + re.escape("resample(x, t_r=0.5, target_t_r=1)")):
        model.set_params(t_r=0.5).transform(other_site)
    model.set_params(t_r=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        followed = model.transform([resample(x, 0.5, 1.0) for x in other_site])
    np.testing.assert_allclose(followed, model.transform(X), atol=0.05)
    # fit took its series as they were (no t_r): the model's TR is the one to resample to
    unset = _pretrainer(n_epochs=1, model_t_r=2.0).fit(X)
    with pytest.warns(UserWarning, match=re.escape("resample(x, t_r=0.5, target_t_r=2)")):
        unset.set_params(t_r=0.5).transform(X)


def test_a_tr_dropped_after_fit_is_a_change_where_it_set_the_model_tr():
    """Pretrained from scratch with model_t_r=None, the model's TR is t_r's: t_r=None set
    after fit resamples nothing, as 2.0 did not, yet a refit would record no TR, so it is
    named (no weights loaded, whose TR would stay)."""
    X = _data(n_subjects=4, n_timepoints=40)
    model = _pretrainer(n_epochs=1, t_r=2.0).fit(X)
    assert model.preprocessor_.target_t_r == 2.0
    with pytest.warns(UserWarning, match=r"^t_r=None \(fitted with 2.0\): changed since fit"):
        model.set_params(t_r=None).transform(X)


def test_robust_statistics_are_learned_on_the_series_resampled_to_the_model_tr():
    rng = np.random.default_rng(4)
    t = np.arange(120)[:, None]
    # a slow signal plus a fast alternation that resampling to a 3x longer TR removes
    X = [np.sin(2 * np.pi * t / 50 + rng.uniform(0, 6, N_REGIONS)) + 3.0 * (-1.0) ** t
         + rng.standard_normal((120, N_REGIONS)) * 0.1 for _ in range(4)]
    model = _pretrainer(n_epochs=1, t_r=0.7, model_t_r=2.1).fit(X)
    resampled = np.concatenate([resample(x, 0.7, 2.1) for x in X])
    np.testing.assert_allclose(model.preprocessor_.median_, np.median(resampled, axis=0))
    q25, q75 = np.percentile(resampled, [25, 75], axis=0)
    np.testing.assert_allclose(model.preprocessor_.iqr_, q75 - q25)


def test_a_failed_fit_keeps_the_previous_one():
    X = _data()
    model = _pretrainer(n_epochs=1).fit(X)
    before = model.transform(X)
    with pytest.raises(FloatingPointError, match="loss"):
        model.set_params(lr=1e30, start_lr=1e30).fit(X)
    np.testing.assert_array_equal(model.transform(X), before)


def test_a_run_that_diverges_at_its_last_step_is_an_error_not_nan_embeddings():
    # one step: its loss is computed before the update that breaks the weights
    X = np.random.default_rng(0).standard_normal((6, 24, N_REGIONS)).cumsum(1)
    model = _pretrainer(n_epochs=1).fit(X)
    before = model.transform(X)
    with pytest.raises(FloatingPointError, match="features became NaN or infinite in epoch 0"):
        model.set_params(n_frames=16, batch_size=64, lr=1e20, start_lr=1e20, final_lr=1e20,
                         warmup_epochs=0).fit(X)
    np.testing.assert_array_equal(model.set_params(n_frames=32).transform(X), before)


def test_a_run_whose_features_diverge_first_gets_the_loss_guards_error():
    # at this rate the monitored features overflow an epoch before the loss does: the collapse
    # monitor used to fail inside torch.linalg.svd
    with pytest.raises(FloatingPointError, match="lower lr"):
        _pretrainer(n_epochs=2, lr=1e5, start_lr=1e5, final_lr=1e5).fit(_data())


def test_a_transposed_corpus_padded_into_its_windows_is_warned_of():
    """Subjects stored (n_regions, n_timepoints), whose scans are longer than the atlas is
    large, read as short scans of one length on a large atlas: pretraining padded them into
    its windows without a word."""
    rng = np.random.default_rng(5)
    X = [rng.standard_normal((48, 20)) for _ in range(4)]  # 48 frames of 20 regions
    with pytest.warns(UserWarning, match=r"every subject has 20 timepoints, fewer than its 48 "
                                         r"regions \(last axis\), and is padded to windows of "
                                         r"n_frames=32: .*pass their transposes "
                                         r"\(\[x\.T for x in X\]\)"):
        _pretrainer(n_epochs=1, gradients=rng.standard_normal((48, 4))).fit([x.T for x in X])
    # not of the subjects as they are, nor of short scans whose transposes fill no window
    for subjects in (X, [x[:24].T for x in X]):  # (20, 24): transposed, still padded
        n_regions = subjects[0].shape[1]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _pretrainer(n_epochs=1, gradients=rng.standard_normal((n_regions, 4))).fit(subjects)
        assert not [w for w in caught if "transposes" in str(w.message)]


def test_dataframes_whose_columns_name_their_regions_are_not_warned_of_as_transposed():
    """Short scans on a large atlas as DataFrames of region names (20 frames of 48 named
    regions) were warned of as a transposed corpus: fit converts them to arrays before its
    length check, and their names said which axis holds the regions."""
    rng = np.random.default_rng(5)
    names = [f"region_{k}" for k in range(48)]
    X = [pd.DataFrame(rng.standard_normal((20, 48)), columns=names) for _ in range(4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _pretrainer(n_epochs=1, gradients=rng.standard_normal((48, 4))).fit(X)
    assert not [w for w in caught if "transposes" in str(w.message)]


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(model_size="huge"), "model_size"),
        (dict(model_size=dict(embed_dim=32)), "misses"),
        # without num_heads the model's own default (12 heads) would be taken silently
        (dict(model_size=dict(embed_dim=24, depth=1)), r"misses \['num_heads'\]"),
        # a misspelt key is named beside the missing ones, with the keys a dict takes
        (dict(model_size=dict(embed=32, depth=1, num_heads=2)),
         r"misses \['embed_dim'\] and has \['embed'\], which are not sizes: its keys are "
         r"\['embed_dim', 'depth', 'num_heads', 'mlp_ratio', 'qkv_bias'\]"),
        (dict(n_frames=30), "multiple of patch_size"),
        (dict(n_epochs=0), "n_epochs"),
        (dict(pooling="max"), "pooling"),
        (dict(normalization="minmax"), "normalization"),
        (dict(patch_embed_init="he"), "patch_embed_init"),
        # a rate of 1 would drop every residual branch: nothing would be learned
        (dict(drop_path_rate=1.0), "'drop_path_rate' parameter"),
        (dict(pooling="roi_std", n_frames=4), "at least 2 time patches"),
        (dict(accumulation_steps=3), r"batch_size=4 \(capped at the 4 training windows\).* accumulation_steps=3"),
    ],
)
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        _pretrainer(**params).fit(_data(n_subjects=2))


def test_a_batch_that_does_not_split_is_refused_before_the_corpus_is_read(monkeypatch):
    """The gradients and statistics of a large corpus take minutes: a batch_size that does not
    split into the processes' micro-batches is refused before them, not after."""
    def read_the_corpus(*args):
        raise AssertionError("the corpus was read before the batch was checked")

    monkeypatch.setattr(BrainJEPAPretrainer, "_fit_gradients", read_the_corpus)
    with pytest.raises(ValueError, match=r"batch_size=8, the global batch, is not a multiple "
                                         r"of the 1 process\(es\) x accumulation_steps=3; set "
                                         r"batch_size to a multiple of 3, such as 6$"):
        _pretrainer(gradients=None, accumulation_steps=3).fit(_data())
    # a batch smaller than the multiple, which the windows can fill
    with pytest.raises(ValueError, match=r"batch_size=2, .*; set batch_size to a multiple of "
                                         r"3, such as 3$"):
        _pretrainer(gradients=None, batch_size=2, accumulation_steps=3).fit(_data())
    # too few windows for any batch of the multiple
    with pytest.raises(ValueError, match=r"; the \d+ training windows cannot fill a batch of "
                                         r"64: lower accumulation_steps \(to at most \d+\)$"):
        _pretrainer(gradients=None, batch_size=64, accumulation_steps=64).fit(_data())


@pytest.mark.parametrize("world_size, accumulation_steps, advice", [
    # one process: there are no fewer to run
    (1, 8, "lower accumulation_steps (to at most 5)"),
    # accumulation_steps=1 cannot be lowered
    (8, 1, "run fewer processes (at most 5)"),
    (2, 4, "lower accumulation_steps (to at most 2), or run fewer processes (at most 1)"),
    # 8 processes do not fit 5 windows whatever accumulation_steps, nor do 8 micro-batches
    (8, 8, "lower accumulation_steps and run fewer processes (processes x "
           "accumulation_steps at most 5)"),
], ids=["one-process", "no-accumulation", "either", "both"])
def test_too_few_windows_for_the_micro_batches_name_only_the_levers_that_help(
        monkeypatch, world_size, accumulation_steps, advice):
    """5 windows and world_size x accumulation_steps micro-batches of at least one window:
    the advice names a lever only where pulling it alone is enough."""
    import brainjepa_sk.pretrain as pretrain

    monkeypatch.setattr(pretrain, "world", lambda: (0, world_size))
    pretrainer = _pretrainer(batch_size=64, accumulation_steps=accumulation_steps)
    with pytest.raises(ValueError, match=r"; the 5 training windows cannot fill a batch of "
                                         rf"{world_size * accumulation_steps}: "
                                         rf"{re.escape(advice)}$"):
        pretrainer._global_batch(5)


def test_a_capped_batch_is_told_to_stay_within_the_windows():
    """batch_size=9, a multiple of accumulation_steps=3, capped at 4 windows: the advice
    names the cap (a multiple of 3 alone was what the batch already was, and 12 fails as 9
    did), and the batch it suggests is accepted."""
    with pytest.raises(ValueError, match=r"batch_size=4 \(capped at the 4 training windows\)"
                                         r".*; set batch_size to a multiple of 3 of at most "
                                         r"the 4 training windows, such as 3$"):
        _pretrainer(batch_size=9, accumulation_steps=3)._global_batch(4)
    assert _pretrainer(batch_size=3, accumulation_steps=3)._global_batch(4) == 3


def test_patch_embed_init_and_roi_std_pooling():
    X = _data()
    frozen = dict(n_epochs=1, lr=0.0, start_lr=0.0, final_lr=0.0)  # weights stay at init
    model = _pretrainer(patch_embed_init="xavier", pooling="roi_std", **frozen).fit(X)
    weight = model.model_.target_encoder.patch_embed.proj.weight
    assert weight.std().item() == pytest.approx((2 / (4 + 32)) ** 0.5, rel=0.15)
    assert model.model_.config["patch_embed_init"] == "xavier"
    features = model.transform(X)
    assert features.shape == (len(X), N_REGIONS * 32) and (features >= 0).all()
    research = _pretrainer(**frozen).fit(X)
    assert research.model_.target_encoder.patch_embed.proj.weight.std().item() == pytest.approx(
        0.02, rel=0.15)


def test_final_norm_is_a_transform_setting(tmp_path):
    X = _data()
    model = _pretrainer(n_epochs=1, pooling="roi_std").fit(X)
    normed = model.transform(X)
    raw = model.set_params(final_norm=False).transform(X)
    assert raw.shape == normed.shape and not np.allclose(raw, normed)
    path = tmp_path / "model.pt"
    model.save(path)
    embedder = BrainJEPAEmbedder(weights=path, pooling="roi_std", final_norm=False).fit(X)
    np.testing.assert_allclose(embedder.transform(X), raw, atol=1e-5)
    fitted = model.model_
    with pytest.raises(ValueError, match="final_norm"):
        model.set_params(final_norm=None).fit(X)
    assert model.model_ is fitted  # the failed fit kept the fitted state


@pytest.mark.gpu
def test_cuda_fit_with_bf16_then_pickle_on_cpu():
    import pickle

    X = _data()
    model = _pretrainer(device="cuda", n_epochs=3).fit(X)
    assert next(model.model_.parameters()).device.type == "cpu"
    restored = pickle.loads(pickle.dumps(model))
    restored.set_params(device="cpu")
    np.testing.assert_allclose(restored.transform(X), model.transform(X), atol=5e-2)
    assert model.history_[-1]["loss"] < model.history_[0]["loss"]


class _CountingCallback(Callback):
    def __init__(self):
        self.steps, self.records = 0, []

    def on_step_end(self, loop, loss):
        self.steps += 1

    def on_epoch_end(self, loop):
        self.records.append(dict(loop.history[-1]))


def test_callbacks_run_as_copies_after_the_built_in_monitors():
    counter = _CountingCallback()
    model = _pretrainer(n_epochs=2, callbacks=[counter]).fit(_data())
    assert counter.steps == 0 and counter.records == []  # the parameter is left untouched
    (ran,) = model.callbacks_
    assert ran is not counter
    assert ran.steps == 2 * (20 // 8)  # 10 subjects x 2 windows, batches of 8
    assert ran.records == model.history_  # the monitors had filled each record already
    assert model.get_params()["callbacks"] == [counter]


class _CopiesEstimator(Callback):
    """Pickles and deep-copies ``estimator`` at each epoch's end (a hand-made checkpoint)."""

    def __init__(self, estimator):
        self.estimator = estimator
        self.pickles, self.copies = [], []

    def __deepcopy__(self, memo):  # the copy fit runs still refers to the live estimator
        return self

    def on_epoch_end(self, loop):
        self.pickles.append(pickle.dumps(self.estimator))
        self.copies.append(copy.deepcopy(self.estimator))


def test_a_copy_taken_during_fit_is_the_estimator_as_it_was():
    # during a refit on another atlas the estimator held the new regions (n_features_in_,
    # callbacks_) beside the last fit's model: a copy taken then embedded nothing
    X = _data(4)
    model = _pretrainer(n_epochs=1)
    recorder = _CopiesEstimator(model)
    model.set_params(callbacks=[recorder]).fit(X)
    (first,) = recorder.pickles
    with pytest.raises(NotFittedError):  # nothing was fitted yet: not a half-fitted one
        pickle.loads(first).transform(X)
    before = model.transform(X)
    model.set_params(gradients=model.gradients[:12]).fit(X[:, :, :12])
    for copied in (pickle.loads(recorder.pickles[-1]), recorder.copies[-1]):
        assert copied.n_features_in_ == N_REGIONS
        np.testing.assert_array_equal(copied.transform(X), before)
    assert "_before_fit" not in vars(model)
    assert model.n_features_in_ == 12 and model.transform(X[:, :, :12]).shape == before.shape


def test_a_copy_taken_during_a_refit_leaves_out_the_encoder_copy_kept_on_another_device():
    """A copy taken during fit is the estimator as it was before, less the copy of the encoder
    that transform kept on a GPU (the meta device stands in for one), as a pickle of the fitted
    estimator leaves it out."""
    X = _data(4)
    model = _pretrainer(n_epochs=1).fit(X)
    before = model.transform(X)
    model._encoder_on(torch.device("meta"))
    assert "_device_cache" in vars(model)
    recorder = _CopiesEstimator(model)
    model.set_params(callbacks=[recorder]).fit(X)
    for copied in (pickle.loads(recorder.pickles[-1]), recorder.copies[-1]):
        assert "_device_cache" not in vars(copied)
        np.testing.assert_array_equal(copied.transform(X), before)


def test_a_refit_releases_the_copy_of_the_old_encoder_kept_on_another_device():
    """The copy of the encoder that transform kept on a GPU (the meta device stands in for
    one) is let go by a refit, whose new encoder it no longer is, not held until the next
    transform."""
    X = _data(4)
    model = _pretrainer(n_epochs=1).fit(X)
    model._encoder_on(torch.device("meta"))
    assert "_device_cache" in vars(model)
    model.fit(X)
    assert "_device_cache" not in vars(model)


@pytest.mark.parametrize("callbacks", [Callback, [print], [Callback(), print], "progress"])
def test_callbacks_must_be_a_list_of_callback_instances(callbacks):
    # not a list at all: the parameter check; a list of something else (or with something
    # else among callbacks): its items' check
    with pytest.raises(ValueError, match="callbacks"):
        _pretrainer(n_epochs=1, callbacks=callbacks).fit(_data())


def test_a_preset_model_size_builds_the_presets_encoder():
    model = _pretrainer(model_size="tiny", n_epochs=1, predictor_embed_dim=24).fit(_data(4))
    encoder = model.model_.encoder
    assert model.embedding_dim_ == 192 and len(encoder.blocks) == 12
    assert encoder.blocks[0].attn.num_heads == 3


def test_precision_reaches_the_training_step():
    X = _data()
    # (with n_epochs=1 the two steps' bf16 differences happen to cancel in the epoch's mean)
    fp32 = _pretrainer(n_epochs=2).fit(X)
    bf16 = _pretrainer(n_epochs=2, precision="bf16").fit(X)  # bf16 autocast on the CPU
    assert math.isfinite(bf16.history_[0]["loss"])
    assert bf16.history_[0]["loss"] != fp32.history_[0]["loss"]
    assert bf16.history_[0]["loss"] == pytest.approx(fp32.history_[0]["loss"], rel=0.05)


def test_loss_is_the_objective_trained():
    """"l2" sums the squared distance over the 32 features; "smooth_l1" averages over them
    (and is linear beyond 1): its losses are dozens of times smaller."""
    X = _data()
    l2 = _pretrainer(n_epochs=1).fit(X)
    smooth_l1 = _pretrainer(n_epochs=1, loss="smooth_l1").fit(X)
    assert smooth_l1.model_.loss == "smooth_l1" and l2.model_.loss == "l2"
    assert 0 < smooth_l1.history_[0]["loss"] < l2.history_[0]["loss"] / 8


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_asking_for_cuda_without_it_is_an_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        _pretrainer(n_epochs=1, device="cuda").fit(_data())


class _SignalAt(Callback):
    """A signal to this process at an optimizer step (1-based): SIGTERM (a scheduler's
    pre-emption) by default, SIGINT (a real Ctrl-C)."""

    def __init__(self, step, signum=signal.SIGTERM):
        self.step = step
        self.signum = signum

    def on_step_end(self, loop, loss):
        if loop.step == self.step:
            os.kill(os.getpid(), self.signum)


def test_sigterm_inside_an_epoch_saves_and_the_next_fit_resumes_exactly(tmp_path):
    X = _data()  # 20 windows: 2 steps an epoch
    uninterrupted = _pretrainer(n_epochs=3, drop_path_rate=0.2).fit(X)
    run = _pretrainer(n_epochs=3, drop_path_rate=0.2, checkpoint_dir=tmp_path,
                      checkpoint_every=1, callbacks=[_SignalAt(3)])
    with pytest.raises(TrainingInterrupted, match="SIGTERM after step 3") as info:
        run.fit(X)
    assert not hasattr(run, "model_")
    (state_file,) = _state_files(tmp_path)
    # the message says where the run is, not what "the callbacks" did
    assert str(info.value) == (f"pretraining stopped by SIGTERM after step 3; its state is saved "
                               f"in {state_file} (step 3 of 6): the same fit again resumes it")
    assert torch.load(state_file, weights_only=True)["loop"]["step_in_epoch"] == 1
    resumed = run.set_params(callbacks=None).fit(X)
    assert resumed.history_ == uninterrupted.history_
    for p, q in zip(resumed.model_.state_dict().values(),
                    uninterrupted.model_.state_dict().values()):
        assert torch.equal(p, q)


def test_sigterm_without_checkpoint_dir_says_nothing_was_saved():
    with pytest.raises(TrainingInterrupted, match=r"SIGTERM after step 1; nothing was saved "
                                                  r"\(checkpoint_dir is not set\)"):
        _pretrainer(n_epochs=2, callbacks=[_SignalAt(1)]).fit(_data())


@pytest.mark.parametrize("settings, whose", [
    (dict(random_state=None), "random_state"),
    (dict(gradients=GradientPositioner(n_components=3, sparsity=0.5, random_state=None)),
     "GradientPositioner's random_state")])
def test_sigterm_of_an_unseeded_run_says_it_is_never_resumed(settings, whose, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning at once that it cannot be resumed
        with pytest.raises(TrainingInterrupted, match=(
                rf"SIGTERM after step 1; its state is in .*unseeded\.pt, but a run whose {whose} "
                rf"is not an int is never resumed: pass an int {whose}")):
            _pretrainer(n_epochs=2, checkpoint_dir=tmp_path, callbacks=[_SignalAt(1)],
                        **settings).fit(_data())


@pytest.mark.parametrize("every", [0, 1.5, "2"])
def test_checkpoint_every_is_checked(every, tmp_path):
    with pytest.raises(ValueError, match="'checkpoint_every' parameter of BrainJEPAPretrainer"):
        _pretrainer(checkpoint_dir=tmp_path, checkpoint_every=every).fit(_data())


_TORCHRUN_CTRL_C_SCRIPT = """
import os
import pathlib
import signal
import sys
import threading
import time
import numpy as np
import torch
from brainjepa_sk import BrainJEPAPretrainer

folder, rank = pathlib.Path(sys.argv[1]), os.environ["RANK"]
began = folder / "gradients-began"
# Python's own handler, as in a terminal (tests started in the background ignore SIGINT)
signal.signal(signal.SIGINT, signal.default_int_handler)
torch.set_num_threads(1)


def slow_gradients(self, subjects, n_regions):  # process 0's work, long
    began.touch()
    time.sleep(120)


def interrupt_once_waiting():  # kill -INT of process 1 alone, as it waits for the gradients
    while not began.exists():
        time.sleep(0.05)
    time.sleep(1)  # process 1 waits for the result by now
    (folder / "signalled").write_text(str(time.time()))
    os.kill(os.getpid(), signal.SIGINT)


BrainJEPAPretrainer._fit_gradients = slow_gradients
if rank == "1":
    threading.Thread(target=interrupt_once_waiting, daemon=True).start()
try:
    BrainJEPAPretrainer(
        model_size=dict(embed_dim=16, depth=1, num_heads=2), patch_size=4, n_frames=16,
        predictor_depth=1, n_epochs=1, batch_size=4, device="cpu", verbose=0, random_state=0,
    ).fit(np.random.default_rng(0).standard_normal((8, 16, 12)))
    (folder / f"raised-{rank}.txt").write_text("returned")
except BaseException as error:
    (folder / f"raised-{rank}.txt").write_text(f"{type(error).__name__}: {error}")
    (folder / f"at-{rank}").write_text(str(time.time()))
    raise
"""


@pytest.mark.slow  # about 20 s on 2 cores, most of it starting torchrun and its 2 processes
def test_ctrl_c_of_one_torchrun_process_waiting_for_the_gradients_stops_both_at_once(tmp_path):
    """SIGINT to process 1 while process 0 works out the gradients (120 s here): process 1 had
    waited in the broadcast of the result, where the signal acts only once it returns, so it
    stopped after process 0's work and process 0 then failed with gloo's "Connection closed by
    peer". Both now raise the same KeyboardInterrupt within seconds of the signal."""
    script = tmp_path / "fit.py"
    script.write_text(_TORCHRUN_CTRL_C_SCRIPT)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script), str(tmp_path)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300, capture_output=True)
    assert result.returncode != 0  # a fit stopped by Ctrl-C fails
    message = ("KeyboardInterrupt: stopped by Ctrl-C (SIGINT) in process 1, which waited for "
               "process 0 to run slow_gradients: every process stops")
    assert [(tmp_path / f"raised-{rank}.txt").read_text() for rank in (0, 1)] == 2 * [message]
    signalled = float((tmp_path / "signalled").read_text())
    for rank in (0, 1):
        assert float((tmp_path / f"at-{rank}").read_text()) - signalled < 10  # seconds


_TORCHRUN_SCRIPT = """
import os
import sys
import numpy as np
import torch
import torch.distributed as dist
from brainjepa_sk import BrainJEPAPretrainer

rng = np.random.default_rng(0)
X = rng.standard_normal((8, 48, 16))
# the gradients are worked out by process 0 and sent to the other
gradient_fits = []
real_fit_gradients = BrainJEPAPretrainer._fit_gradients
BrainJEPAPretrainer._fit_gradients = lambda self, *a: (gradient_fits.append(1)
                                                      or real_fit_gradients(self, *a))
model = BrainJEPAPretrainer(
    gradients=np.random.default_rng(1).standard_normal((16, 4)),
    model_size=dict(embed_dim=32, depth=1, num_heads=2), patch_size=4, n_frames=32,
    predictor_depth=1, n_epochs=2, batch_size=8, device="cpu", verbose=0, random_state=0,
    checkpoint_dir=sys.argv[1],
).fit(X)
# transform under torchrun: each process embeds its share of the subjects, all get the result
from brainjepa_sk import _base

embedded = []
real_embed = _base.embed_windows
_base.embed_windows = lambda encoder, windows, **kw: (embedded.append(len(windows))
                                                      or real_embed(encoder, windows, **kw))
shared = model.transform(X)
n_embedded = sum(embedded)
# one subject a chunk: each process gathers 4 chunks, which must come back in subject order
_base.SUBJECTS_PER_CHUNK = 1
shared_in_chunks = model.transform(X)
dist.destroy_process_group()
os.environ["WORLD_SIZE"] = "1"  # one process again: the reference
alone = model.transform(X)
torch.save({"history": model.history_, "state": model.model_.state_dict(),
            "world": dist.get_world_size() if dist.is_initialized() else 2,
            "shared": torch.from_numpy(shared), "alone": torch.from_numpy(alone),
            "shared_in_chunks": torch.from_numpy(shared_in_chunks), "embedded": n_embedded,
            "gradient_fits": len(gradient_fits)},
           f"{sys.argv[2]}/rank{os.environ['RANK']}.pt")
"""


def test_fit_under_torchrun_trains_one_model_with_distributed_data_parallel(tmp_path):
    script = tmp_path / "fit.py"
    script.write_text(_TORCHRUN_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script), str(tmp_path / "run"), str(tmp_path)],
        check=True, env=env, timeout=300, capture_output=True,
    )
    first, second = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert first["world"] == second["world"] == 2
    assert (first["gradient_fits"], second["gradient_fits"]) == (1, 0)
    assert first["history"] == second["history"]  # epoch losses are averaged over processes
    assert len(first["history"]) == 2 and all(math.isfinite(h["loss"]) for h in first["history"])
    for key, value in first["state"].items():
        assert torch.equal(value, second["state"][key])  # one model, EMA target included
    assert len(_state_files(tmp_path / "run")) == 1  # written by one process
    # 2 processes of 4 windows train like 1 process of batch 8: the same windows in every
    # global batch of every epoch, the same masks and schedules
    X, threads = np.random.default_rng(0).standard_normal((8, 48, 16)), torch.get_num_threads()
    torch.set_num_threads(1)  # as in the processes (OMP_NUM_THREADS=1)
    settings = dict(
        gradients=np.random.default_rng(1).standard_normal((16, 4)),
        model_size=dict(embed_dim=32, depth=1, num_heads=2), patch_size=4, n_frames=32,
        predictor_depth=1, batch_size=8, device="cpu", verbose=0, random_state=0)
    try:
        alone = BrainJEPAPretrainer(n_epochs=2, checkpoint_dir=tmp_path / "alone",
                                    **settings).fit(X)
        assert [h["loss"] for h in first["history"]] == pytest.approx(
            [h["loss"] for h in alone.history_], rel=1e-4)
        for key, value in alone.model_.state_dict().items():
            torch.testing.assert_close(first["state"][key], value, rtol=1e-4, atol=1e-5)
        # extended by one process to a third epoch, the 2-process run goes on as the 1-process
        # run does: the saved state does not depend on the number of processes
        extended = []
        for folder in ("run", "alone"):
            with pytest.warns(UserWarning, match="extending the run"):
                extended.append(BrainJEPAPretrainer(n_epochs=3, checkpoint_dir=tmp_path / folder,
                                                    **settings).fit(X).history_)
    finally:
        torch.set_num_threads(threads)
    assert len(extended[0]) == 3
    assert [h["loss"] for h in extended[0]] == pytest.approx(
        [h["loss"] for h in extended[1]], rel=1e-4)
    # transform: each process embedded half of the 8 subjects' windows (2 per subject: 48 frames,
    # windows of 32 every 16), and both returned the one-process result
    assert first["embedded"] == second["embedded"] == 4 * 2
    for result in (first, second):
        assert torch.equal(result["shared"], result["alone"])
        assert torch.equal(result["shared_in_chunks"], result["alone"])


def test_a_finished_run_is_extended_to_more_epochs_instead_of_restarted(tmp_path):
    X = _data()
    short = _pretrainer(n_epochs=2, checkpoint_dir=tmp_path).fit(X)
    _CountSteps.steps, _CountSteps.stop_at = 0, None
    with pytest.warns(UserWarning, match=r"extending the run .* \(n_epochs=2, 4 steps done\) "
                                         r"to n_epochs=3: the schedules follow n_epochs=3 "
                                         r"from step 4 on"):
        longer = _pretrainer(n_epochs=3, checkpoint_dir=tmp_path,
                             callbacks=[_CountSteps()]).fit(X)
    assert _CountSteps.steps == 2  # one more epoch of two steps, not three epochs
    assert longer.history_[:2] == short.history_ and len(longer.history_) == 3
    assert len(_state_files(tmp_path)) == 2  # the shorter run's state is kept
    # the longest earlier run is taken; another setting (lr) is another run, never extended
    _CountSteps.steps = 0
    with pytest.warns(UserWarning, match="n_epochs=3, 6 steps done"):
        _pretrainer(n_epochs=4, checkpoint_dir=tmp_path, callbacks=[_CountSteps()]).fit(X)
    assert _CountSteps.steps == 2
    _CountSteps.steps = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _pretrainer(n_epochs=3, lr=1e-3, checkpoint_dir=tmp_path,
                    callbacks=[_CountSteps()]).fit(X)
    assert _CountSteps.steps == 6


def test_looking_for_a_shorter_run_reads_only_the_states_of_its_own_lineage(tmp_path,
                                                                          monkeypatch):
    """In a folder shared by a grid search, another run's state (model and optimizer) is told
    apart without being read."""
    from brainjepa_sk.train import runs

    X = _data()
    _pretrainer(n_epochs=2, checkpoint_dir=tmp_path).fit(X)
    _pretrainer(n_epochs=2, lr=1e-3, checkpoint_dir=tmp_path).fit(X)
    read = []
    real_read = runs.read_training_state
    monkeypatch.setattr(runs, "read_training_state",
                        lambda path: read.append(path) or real_read(path))
    with pytest.warns(UserWarning, match="extending the run"):
        _pretrainer(n_epochs=3, checkpoint_dir=tmp_path).fit(X)
    (own,) = read  # the lr=2e-3 run's file only
    assert runs.peek_training_state(own)["extra"]["n_epochs"] == 2


def test_looking_for_a_shorter_run_does_not_read_the_longer_runs_of_its_lineage(tmp_path,
                                                                            monkeypatch):
    """A search over n_epochs leaves longer runs of the same settings in the folder: they cannot
    be continued to fewer epochs, so their states are passed over without being read."""
    from brainjepa_sk.train import runs

    X = _data()
    _pretrainer(n_epochs=3, checkpoint_dir=tmp_path).fit(X)
    _pretrainer(n_epochs=1, checkpoint_dir=tmp_path).fit(X)
    read = []
    real_read = runs.read_training_state
    monkeypatch.setattr(runs, "read_training_state",
                        lambda path: read.append(path) or real_read(path))
    with pytest.warns(UserWarning, match=r"extending the run .* \(n_epochs=1, 2 steps done\)"):
        _pretrainer(n_epochs=2, checkpoint_dir=tmp_path).fit(X)
    (own,) = read  # the one-epoch run's file only
    assert runs.peek_training_state(own)["extra"]["n_epochs"] == 1


def test_a_damaged_state_met_while_looking_for_a_shorter_run_is_named(tmp_path):
    X = _data()
    _pretrainer(n_epochs=2, checkpoint_dir=tmp_path).fit(X)
    (state,) = _state_files(tmp_path)
    state.write_bytes(state.read_bytes()[:100])
    _CountSteps.steps, _CountSteps.stop_at = 0, None
    with pytest.warns(UserWarning, match=rf"skipped while looking for a shorter run to "
                                         rf"continue: .*{state.name}.*truncated"):
        _pretrainer(n_epochs=3, checkpoint_dir=tmp_path, callbacks=[_CountSteps()]).fit(X)
    assert _CountSteps.steps == 6  # started afresh, and said why it could not continue


def test_a_state_whose_lineage_is_damaged_is_named_not_passed_over(tmp_path):
    """A damaged lineage cannot tell another run's state from the one to continue."""
    X = _data()
    _pretrainer(n_epochs=2, checkpoint_dir=tmp_path).fit(X)
    (path,) = _state_files(tmp_path)
    state = torch.load(path, weights_only=True)
    state["extra"]["lineage"] = "0" * 64
    torch.save(state, path)
    with pytest.warns(UserWarning, match=rf"skipped while looking for a shorter run to "
                                         rf"continue: .*{path.name}.*run key and settings"):
        _pretrainer(n_epochs=3, checkpoint_dir=tmp_path).fit(X)


def test_compile_given_as_a_numpy_bool_turns_compilation_on(monkeypatch):
    from brainjepa_sk import pretrain

    seen = {}

    class Stop(Exception):
        pass

    def spy(*args, compile=None, **kwargs):
        seen["compile"] = compile
        raise Stop

    monkeypatch.setattr(pretrain, "PretrainLoop", spy)
    for value, expected in ((np.True_, True), (np.False_, False), ("auto", False)):
        with pytest.raises(Stop):
            _pretrainer(compile=value).fit(_data(4))
        assert seen["compile"] is expected  # "auto": on CUDA only


@pytest.mark.parametrize("key", ["seed", "device", "n_regions", "n_patches"])
def test_masking_options_the_pretrainer_sets_are_refused_before_any_work(key, monkeypatch):
    def no_gradients(*args):
        raise AssertionError("the gradients were computed first")

    monkeypatch.setattr(BrainJEPAPretrainer, "_fit_gradients", no_gradients)
    with pytest.raises(ValueError, match=rf"masking may not set \['{key}'\]"):
        _pretrainer(masking={key: 1}).fit(_data(4))


@pytest.mark.parametrize(("params", "message"), [
    # the predictor's position code failed as "embed_dim must be a multiple of 4, got 12"
    (dict(predictor_embed_dim=12, model_size=dict(embed_dim=32, depth=1, num_heads=8)),
     r"predictor_embed_dim=12 must be a multiple of 4 .* and of the encoder's num_heads=8"),
    (dict(predictor_embed_dim=18), r"predictor_embed_dim=18 must be a multiple of 4"),
    # the default width, which the user never set, is named as the default
    (dict(model_size=dict(embed_dim=420, depth=1, num_heads=7)),
     r"predictor_embed_dim=384 must be .*num_heads=7, the predictor's too \(its default, "
     r"min\(384, embed_dim\)\)"),
    (dict(model_size=dict(embed_dim=12, depth=1, num_heads=5)),
     r"model_size\['embed_dim'\]=12 must be a multiple of 4 .*num_heads=5"),
    # a patch_size here was overridden by the parameter, without a word
    (dict(model_size=dict(embed_dim=32, depth=1, num_heads=2, patch_size=2)),
     r"model_size dict has \['patch_size'\], which are not sizes"),
    (dict(model_size=dict(embed_dim=32.0, depth=1, num_heads=2)),
     r"model_size\['embed_dim'\] must be a positive int, got 32\.0"),
    (dict(model_size=dict(embed_dim=32, depth=0, num_heads=2)),
     r"model_size\['depth'\] must be a positive int, got 0"),
    (dict(model_size=dict(embed_dim=32, depth=True, num_heads=2)),
     r"model_size\['depth'\] must be a positive int, got True"),
    # windows that do not cut into whole patches, named before the gradients are fitted
    (dict(n_frames=30), r"n_frames=30 is not a positive multiple of patch_size=4"),
])
def test_model_widths_that_cannot_be_built_are_named_before_any_work(params, message,
                                                                     monkeypatch):
    def no_gradients(*args):
        raise AssertionError("the gradients were computed first")

    monkeypatch.setattr(BrainJEPAPretrainer, "_fit_gradients", no_gradients)
    with pytest.raises(ValueError, match=message):
        _pretrainer(**params).fit(_data(4))


def test_an_unknown_masking_option_given_at_construction_is_named_before_any_work(monkeypatch):
    def no_gradients(*args):
        raise AssertionError("the gradients were computed first")

    monkeypatch.setattr(BrainJEPAPretrainer, "_fit_gradients", no_gradients)
    with pytest.raises(ValueError, match=r"Invalid masking option\(s\) \['min_kep'\].*min_keep"):
        _pretrainer(masking={"min_kep": 2}).fit(_data(4))


@pytest.mark.parametrize(("masking", "message"), [
    ({"min_kep": 2}, r"Invalid masking option\(s\) \['min_kep'\]"),
    ({"seed": 1}, r"masking may not set \['seed'\]"),
    ({"edge_fraction": 0.7}, r"^edge_fraction must be in \(0, 0\.5\], got 0\.7$"),
    ({"min_keep": 2.5}, r"^min_keep must be an int >= 1"),
    ({"alpha_region_scale": (0.6, 0.4)}, r"^alpha_region_scale must be \(low, high\)"),
])
def test_masking_options_are_checked_before_the_subjects_are_read(masking, message, tmp_path):
    """An option name, or a value out of its range, is wrong whatever the data: said before
    every file of a corpus is read (here a file that cannot be, which was reported instead)."""
    missing = tmp_path / "sub-01_timeseries.tsv"
    with pytest.raises(ValueError, match=message):
        _pretrainer(masking=masking).fit([missing])


def test_a_count_quantile_that_static_shapes_false_ignores_is_warned_of():
    """Without static shapes every batch keeps its own draw's counts: a grid over the quantile
    fitted the same masks for every value, without a word (as a stride without sliding
    windows is warned of)."""
    with pytest.warns(UserWarning, match=r"masking count_quantile=0\.5 is ignored with "
                                         r"static_shapes=False"):
        _pretrainer(n_epochs=1, masking={"count_quantile": 0.5, "static_shapes": False}).fit(
            _data(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _pretrainer(n_epochs=1, masking={"count_quantile": 0.5}).fit(_data(4))
        _pretrainer(n_epochs=1, masking={"static_shapes": False}).fit(_data(4))


def test_masks_that_cannot_be_drawn_on_a_small_grid_are_explained_in_the_estimators_terms():
    """The sampler's advice ("lower min_keep") names the estimator's masking option."""
    X = _data(4)[:, :, :2]  # 2 regions x 2 time patches: min_keep=4 keeps every token
    with pytest.raises(ValueError, match=r"keeping min_keep=4 .* on a 2 x 2 grid; lower "
                                         r"min_keep .*n_frames // patch_size time patches; set "
                                         r"the masking options it names as "
                                         r"masking=\{'<option>': \.\.\.\}"):
        _pretrainer(gradients=None, n_frames=8, masking={"min_keep": 4}).fit(X)
    # refused before training without static shapes too (it failed at a batch, after the
    # model was built)
    with pytest.raises(ValueError, match=r"min_keep=4 context tokens and a target are kept by "
                                         r"only 0\.00% .*; lower min_keep or widen the scales "
                                         r"\(the grid is"):
        _pretrainer(gradients=None, n_frames=8,
                    masking={"min_keep": 4, "static_shapes": False}).fit(X)
    # an option out of its range is no grid problem: its own message, as given
    with pytest.raises(ValueError, match=r"^edge_fraction must be in \(0, 0\.5\], got 0\.7$"):
        _pretrainer(masking={"edge_fraction": 0.7}).fit(_data(4))


def test_set_params_reaches_each_masking_option_without_touching_the_given_dict(monkeypatch):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from brainjepa_sk import pretrain

    given = {"min_keep": 2, "count_quantile": 0.2}
    pipe = make_pipeline(_pretrainer(masking=given), StandardScaler())
    pipe.set_params(brainjepapretrainer__masking__alpha_region_scale=(0.3, 0.45),
                    brainjepapretrainer__masking__min_keep=3)
    pretrainer = pipe.named_steps["brainjepapretrainer"]
    assert pretrainer.masking == {"min_keep": 3, "count_quantile": 0.2,
                                  "alpha_region_scale": (0.3, 0.45)}
    assert given == {"min_keep": 2, "count_quantile": 0.2}  # a new dict
    assert clone(pretrainer).masking == pretrainer.masking
    # masking= in the same call comes first, then the options
    pretrainer.set_params(masking__min_keep=5, masking=None)
    assert pretrainer.masking == {"min_keep": 5}
    assert BrainJEPAPretrainer().set_params(masking__min_keep=7).masking == {"min_keep": 7}
    # and fit builds its sampler with them

    class Stop(Exception):
        pass

    def spy(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    seen = {}
    monkeypatch.setattr(pretrain, "SpatiotemporalMaskSampler", spy)
    with pytest.raises(Stop):
        pretrainer.fit(_data(4))
    assert seen["min_keep"] == 5 and "alpha_region_scale" not in seen


def test_set_params_of_the_positioners_parameters_needs_a_positioner_as_gradients():
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    # scikit-learn had failed with "'NoneType' object has no attribute 'set_params'"
    pipe = Pipeline([("pretrainer", BrainJEPAPretrainer())])
    search = GridSearchCV(pipe, {"pretrainer__gradients__n_components": [2, 3]}, cv=2,
                          scoring=lambda estimator, X, y=None: 0.0)
    with pytest.raises(ValueError, match=r"^gradients__n_components sets a parameter of the "
                       r"GradientPositioner given as gradients, but gradients is None .*"
                       r"set gradients=GradientPositioner\(\) first"):
        search.fit(_data(4))
    fixed = BrainJEPAPretrainer(gradients=np.ones((8, 3)))
    with pytest.raises(ValueError, match="but gradients is of type ndarray, not a GradientPositioner"):
        fixed.set_params(gradients__kernel="cosine", n_epochs=3)
    assert fixed.n_epochs != 3  # nothing set
    # given in the same call, or before, the positioner takes them
    pretrainer = BrainJEPAPretrainer().set_params(gradients=GradientPositioner(),
                                                  gradients__n_components=2)
    assert pretrainer.set_params(gradients__kernel="cosine").gradients.get_params() == (
        GradientPositioner(n_components=2, kernel="cosine").get_params())
    assert clone(pretrainer).gradients.get_params() == pretrainer.gradients.get_params()


def test_set_params_refuses_positioner_settings_for_the_class_and_other_parameters():
    """The class given as gradients had been taken for a positioner (scikit-learn then called
    its unbound set_params: "missing 1 required positional argument: 'self'"), and
    pooling__<name> had failed with "'str' object has no attribute 'set_params'"; the masking
    options given in the same call are not set either."""
    pretrainer = BrainJEPAPretrainer()
    with pytest.raises(ValueError, match=r"^gradients__n_components sets a parameter of the "
                       r"GradientPositioner given as gradients, but gradients is the class "
                       r"GradientPositioner, not a GradientPositioner instance"):
        pretrainer.set_params(gradients=GradientPositioner, gradients__n_components=2)
    assert pretrainer.gradients is None
    with pytest.raises(ValueError, match=r"^pooling__x sets the parameter 'x' of the estimator "
                       r"given as pooling, but the pooling of BrainJEPAPretrainer is a str "
                       r"\('mean'\)"):
        pretrainer.set_params(masking__min_keep=5, n_epochs=3, pooling__x=1)
    assert pretrainer.masking is None and pretrainer.n_epochs != 3


def test_set_params_checks_the_masking_given_in_the_same_call_before_its_options():
    pretrainer = _pretrainer(masking={"min_keep": 2})
    with pytest.raises(TypeError, match="masking__<option> needs masking to be a dict or None, "
                                        "got str"):
        pretrainer.set_params(masking="min_keep=3", masking__count_quantile=0.2, lr=1.0)
    assert pretrainer.masking == {"min_keep": 2} and pretrainer.lr == 2e-3  # nothing set
    # a masking that is no dict is replaced by the one given in the same call, then the options
    pretrainer.masking = "min_keep=3"
    pretrainer.set_params(masking={"min_keep": 3}, masking__count_quantile=0.2)
    assert pretrainer.masking == {"min_keep": 3, "count_quantile": 0.2}


def test_set_params_without_masking_options_leaves_masking_as_it_is():
    """Only ``masking__<option>`` touches ``masking``: other parameters are set as in any
    estimator (a masking that is no dict is refused by fit, not by an unrelated set_params),
    and a masking given is kept as the object given."""
    pretrainer = _pretrainer(masking=None)
    assert pretrainer.set_params(lr=1.0).masking is None
    given = {"min_keep": 2}
    assert pretrainer.set_params(masking=given).masking is given
    pretrainer.set_params(masking="min_keep=3")
    assert pretrainer.set_params(lr=0.5).masking == "min_keep=3"
    with pytest.raises(ValueError, match="'masking' parameter"):
        pretrainer.fit(_data(4))


def test_the_mask_sampler_gets_the_regions_and_patches_of_the_data(monkeypatch):
    """The sampler's first arguments are X's regions and the window's time patches (32 frames
    of 4: 8 patches), in that order: swapped, the masks would cut regions as time. It draws
    them on the training device (on a GPU, masks drawn on the host would have to be copied
    over at every step)."""
    from brainjepa_sk import pretrain

    class Stop(Exception):
        pass

    def spy(*args, **kwargs):
        seen.append(args)
        devices.append(kwargs.get("device"))
        raise Stop

    seen, devices = [], []
    monkeypatch.setattr(pretrain, "SpatiotemporalMaskSampler", spy)
    with pytest.raises(Stop):
        _pretrainer().fit(_data(4))
    assert seen == [(N_REGIONS, 8)]
    assert devices == [torch.device("cpu")]


@pytest.mark.parametrize("key", ["seed", "not_an_option"])
def test_set_params_refuses_masking_options_that_do_not_exist_or_are_set_by_the_pretrainer(key):
    pretrainer = _pretrainer(masking={"min_keep": 2})
    with pytest.raises(ValueError, match=rf"Invalid masking option\(s\) \['{key}'\]"):
        pretrainer.set_params(**{f"masking__{key}": 1, "lr": 1.0})
    assert pretrainer.masking == {"min_keep": 2} and pretrainer.lr == 2e-3  # nothing set


def test_warnings_name_the_users_line_not_the_package():
    """However deep inside the package (through process 0's helper, the preprocessing, the
    weights), a warning is attributed to the line that called the estimator."""
    X = _data(4) * 1000
    with pytest.warns(UserWarning, match="far from unit scale") as record:
        model = _pretrainer(n_epochs=1, normalization=None).fit(X)
    assert {Path(w.filename).name for w in record} == {Path(__file__).name}
    with pytest.warns(UserWarning, match="is ignored") as record:
        BrainJEPAEmbedder(model.model_, gradients=np.ones((N_REGIONS, 2))).fit(X)
    assert {Path(w.filename).name for w in record} == {Path(__file__).name}


def test_transforms_scale_warning_names_the_users_line_not_scikit_learns_wrapper():
    """scikit-learn wraps ``transform`` in its output-container setter: the warning looks
    through that wrapper to the line that called ``transform``."""
    X = _data(4)
    model = _pretrainer(n_epochs=1).fit(X)
    with pytest.warns(UserWarning, match="on another scale") as record:
        model.transform(X * 1000)
    assert {Path(w.filename).name for w in record} == {Path(__file__).name}


def test_checkpoint_every_without_a_folder_is_warned_about():
    with pytest.warns(UserWarning, match="checkpoint_every=2 does nothing without checkpoint_dir"):
        _pretrainer(n_epochs=1, checkpoint_every=2).fit(_data(4))


def test_the_default_stride_is_half_a_window():
    """stride=None slides windows by half their length (48 frames: 5 windows of 16)."""
    model = _pretrainer(n_frames=16, n_epochs=1).fit(_data(n_subjects=4))
    assert model.preprocessor_.to_dict()["stride"] == 8
    subject_index, _ = model.preprocessor_.window_table([48])
    assert len(subject_index) == 5


def test_a_stride_given_with_one_window_a_subject_is_said_to_be_ignored():
    """window="first" or "center" takes one window a subject: a stride given with it had been
    dropped without a word, as if the windows slid."""
    with pytest.warns(UserWarning, match=r"^stride=8 is ignored: window='first' takes one "
                                         r"window per subject; set window='sliding'"):
        _pretrainer(n_frames=16, n_epochs=1, window="first", stride=8).fit(_data(n_subjects=4))


def test_seeded_fits_in_parallel_threads_are_those_of_sequential_fits():
    """Threads share torch's global generator (initialisation, stochastic depth): seeded fits
    in joblib's threading backend take turns for it, and give the sequential results."""
    from joblib import Parallel, delayed

    X = _data(n_subjects=6)

    def fit(seed):
        return _pretrainer(n_epochs=2, drop_path_rate=0.3, random_state=seed).fit(X).transform(X)

    sequential = [fit(seed) for seed in range(3)]
    threaded = Parallel(n_jobs=3, backend="threading")(delayed(fit)(seed) for seed in range(3))
    for one, other in zip(threaded, sequential):
        np.testing.assert_array_equal(one, other)


def test_short_warmups_and_single_windows_are_warned_about():
    """Two settings that leave a run less informative than it looks (found by a new-user
    review): a warm-up as long as the run, and collapse monitors with one window to measure."""
    X = _data(n_subjects=8)
    with pytest.warns(UserWarning, match=r"warmup_epochs=2 \(4 steps\) lasts the whole run "
                                         r"\(n_epochs=2, 4 steps\): .*never reaches its peak "
                                         r"lr=0.002"):
        _pretrainer(n_epochs=2, warmup_epochs=2).fit(X)
    with pytest.warns(UserWarning, match=r"warmup_epochs=0.9 \(4 steps\) lasts the whole run "
                                         r"\(n_epochs=1, 4 steps\)"):
        _pretrainer(n_epochs=1, warmup_epochs=0.9, batch_size=4).fit(X)  # rounded to the steps
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _pretrainer(n_epochs=2, warmup_epochs=1).fit(X)
        _pretrainer(n_epochs=2).fit(X)  # the default warm-up: 40/300 of the epochs
        _pretrainer(n_epochs=1, warmup_epochs=2, lr=0.0, start_lr=0.0).fit(X)  # nothing rises
    with pytest.warns(UserWarning, match="a single training window: .* are NaN"):
        model = _pretrainer(n_epochs=1, batch_size=1).fit(X[:1, :32])
    assert np.isnan(model.history_[0]["target_std"])


def test_the_model_is_built_with_the_architecture_parameters_given():
    """The architecture settings reach the module that is trained (its config says what was
    built): predictor width and depth, stochastic depth, and the encoder width as
    embedding_dim_ (found by planting bugs: drop_path_rate was not checked anywhere)."""
    X = _data(n_subjects=4)
    model = _pretrainer(n_epochs=1, model_size=dict(embed_dim=16, depth=1, num_heads=2),
                        predictor_embed_dim=24, predictor_depth=2, drop_path_rate=0.3).fit(X)
    config = model.model_.config
    assert (config["embed_dim"], config["predictor_embed_dim"]) == (16, 24)
    assert config["predictor_depth"] == 2 and len(model.model_.predictor.blocks) == 2
    assert config["drop_path_rate"] == 0.3
    assert model.embedding_dim_ == 16 and model.transform(X).shape == (4, 16)
    # the default predictor is as wide as a narrow encoder (384 only for wider ones)
    assert _pretrainer(n_epochs=1).fit(X).model_.config["predictor_embed_dim"] == 32
    # a model_size dict also sets the blocks' MLP width and query/key/value bias
    sizes = dict(embed_dim=16, depth=1, num_heads=2, mlp_ratio=2.0, qkv_bias=False)
    block = _pretrainer(n_epochs=1, model_size=sizes).fit(X).model_.encoder.blocks[0]
    assert block.attn.qkv.bias is None and block.mlp.fc1.out_features == 32


def test_stochastic_depth_changes_the_training():
    """drop_path_rate drops residual branches while training: the same seeded run without it
    has other losses."""
    X = _data(n_subjects=4)
    with_depth = _pretrainer(n_epochs=1, drop_path_rate=0.5).fit(X)
    without = _pretrainer(n_epochs=1).fit(X)
    assert with_depth.history_[0]["loss"] != without.history_[0]["loss"]


def test_saving_an_unfitted_pretrainer_is_a_not_fitted_error(tmp_path):
    """save before fit says so (scikit-learn's NotFittedError), and writes no file."""
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        _pretrainer().save(tmp_path / "model.pt")
    assert not (tmp_path / "model.pt").exists()


def test_a_refit_stopped_by_ctrl_c_keeps_the_previous_fit():
    """Ctrl-C (KeyboardInterrupt, not an Exception) in the middle of a refit undoes it like any
    error: the fitted attributes are the previous fit's objects, and transform gives the same."""
    X = _data(n_subjects=4)
    model = _pretrainer(n_epochs=1).fit(X)
    before, state = model.transform(X), dict(vars(model))
    model.set_params(n_epochs=2, callbacks=[_InterruptAfterEpoch(1)])
    with pytest.raises(KeyboardInterrupt):
        model.fit(X[:3])
    fitted = {name: value for name, value in state.items() if name.endswith("_")}
    assert fitted and all(vars(model)[name] is value for name, value in fitted.items())
    np.testing.assert_array_equal(model.transform(X), before)


def test_a_failed_first_fit_leaves_the_pretrainer_unfitted():
    """A first fit that fails part-way (here in a callback, after an epoch) leaves none of what
    it had set (n_features_in_ at the input check, callbacks_ before training): the estimator
    is as it was built."""
    from sklearn.exceptions import NotFittedError

    class Fail(Callback):
        def on_epoch_end(self, loop):
            raise RuntimeError("stop")

    model = _pretrainer(n_epochs=1, callbacks=[Fail()])
    params = dict(vars(model))
    with pytest.raises(RuntimeError, match="stop"):
        model.fit(_data(n_subjects=4))
    assert vars(model) == params
    with pytest.raises(NotFittedError):
        model.transform(_data(n_subjects=4))


def test_a_subject_too_short_for_a_window_is_named_before_the_gradients_are_fitted(monkeypatch):
    """The lengths are checked before the corpus is read for the gradients (with the default
    GradientPositioner, a pass over every subject): a short subject fails fast."""
    def no_gradients(*args):
        raise AssertionError("the gradients were computed first")

    monkeypatch.setattr(BrainJEPAPretrainer, "_fit_gradients", no_gradients)
    X = list(_data(n_subjects=3))
    X[2] = X[2][:5]
    with pytest.raises(ValueError, match="^subject 2 is too short: 5 frames"):
        _pretrainer(gradients=None).fit(X)


@pytest.mark.parametrize("as_files", [False, True])
def test_subjects_stored_regions_by_time_are_told_to_transpose_not_to_pad(as_files, tmp_path):
    """A (n_regions, n_timepoints) corpus is short series of many regions to the pretrainer:
    the message said only "leave the subject out, or pass min_frames=12 or less to have it
    padded", which would pretrain on the transposed data. It now says to transpose."""
    X = [x.T[:12] for x in _data(n_subjects=3)]  # 12 "frames" of 48 "regions"
    if as_files:
        for i, x in enumerate(X):
            np.save(tmp_path / f"sub-{i}.npy", x)
        X = str(tmp_path / "sub-*.npy")
    with pytest.raises(ValueError, match=r"^subject 0 (\(.*\) )?is too short: 12 frames.*It has "
                                         r"more regions \(last axis: 48\) than timepoints "
                                         r"\(12\): if it is stored \(n_regions, n_timepoints\), "
                                         r"pass its transpose \(x\.T\)"):
        _pretrainer(gradients=None).fit(X)
    # a short subject with fewer regions than frames gets no such hint
    with pytest.raises(ValueError, match="is too short") as info:
        _pretrainer(gradients=None).fit([x[:14, :8] for x in _data(n_subjects=3)])
    assert "transpose" not in str(info.value)


def test_short_scans_on_an_atlas_larger_than_a_window_are_not_told_to_transpose():
    """120 frames of a 200-region atlas with n_frames=320 were told to pass their transpose,
    which would give 200 frames, still too short: only min_frames is the cure there."""
    X = [x[:12] for x in np.concatenate([_data(n_subjects=3)] * 2, axis=2)[:, :, :24]]
    with pytest.raises(ValueError, match=r"^subject 0 is too short: 12 frames") as info:
        _pretrainer(gradients=None, n_frames=32).fit(X)  # 24 regions: no window transposed
    assert "transpose" not in str(info.value)


class _InterruptAtStep(Callback):
    """Ctrl-C after an optimizer step (1-based), before that step's checkpoint."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, loop, loss):
        if loop.step == self.step:
            raise KeyboardInterrupt


def test_checkpoint_every_saves_the_run_inside_an_epoch(tmp_path):
    """checkpoint_every=1 saves after every optimizer step, so a run killed inside an epoch
    (2 steps an epoch here; stopped before step 4 is saved) loses one step, not the epoch;
    without it, the last state saved is that of the last finished epoch."""
    X = _data()
    for every, saved_step in ((1, 3), (None, 2)):
        folder = tmp_path / str(every)
        run = _pretrainer(n_epochs=3, checkpoint_dir=folder, checkpoint_every=every,
                          callbacks=[_InterruptAtStep(4)])
        with pytest.raises(KeyboardInterrupt):
            run.fit(X)
        (state_file,) = _state_files(folder)
        assert torch.load(state_file, weights_only=True)["loop"]["step"] == saved_step


def test_ctrl_c_saves_the_run_so_that_fit_resumes_where_it_stopped(tmp_path, ctrl_c_raises):
    """Ctrl-C in a notebook or a terminal saves the state at the step it stopped (3, inside
    the second epoch of 2 steps), as SIGTERM does, instead of losing what was trained since
    the last epoch; the same fit again ends as an uninterrupted run."""
    X = _data()
    uninterrupted = _pretrainer(n_epochs=3).fit(X)
    run = _pretrainer(n_epochs=3, checkpoint_dir=tmp_path, callbacks=[_SignalAt(3, signal.SIGINT)])
    with pytest.raises(TrainingInterrupted, match="Ctrl-C after step 3") as info:
        run.fit(X)
    assert isinstance(info.value.__cause__, KeyboardInterrupt)
    (state_file,) = _state_files(tmp_path)
    assert torch.load(state_file, weights_only=True)["loop"]["step"] == 3
    _CountSteps.steps, _CountSteps.stop_at = 0, None
    resumed = run.set_params(callbacks=[_CountSteps()]).fit(X)
    assert _CountSteps.steps == 3  # steps 4 to 6 only
    assert resumed.history_ == uninterrupted.history_
    for p, q in zip(resumed.model_.state_dict().values(),
                    uninterrupted.model_.state_dict().values()):
        assert torch.equal(p, q)


class _DatasetSize(Callback):
    def on_train_begin(self, loop):
        self.n_windows = len(loop.loader.dataset)


@pytest.mark.parametrize("window, n_windows", [("sliding", 20), ("center", 10), ("first", 10)])
def test_window_decides_the_training_windows_and_those_of_transform(window, n_windows):
    """window picks the windows cut from each subject for training (48 frames: 2 sliding
    windows of 32 at the default stride of 16, one otherwise) and is kept for transform."""
    model = _pretrainer(n_epochs=1, window=window, callbacks=[_DatasetSize()]).fit(_data())
    assert model.callbacks_[0].n_windows == n_windows
    assert model.preprocessor_.window == window


@pytest.mark.parametrize("normalization", ["global_zscore", None])
def test_normalization_decides_the_scaling_fitted_and_saved(normalization):
    fit = _pretrainer(n_epochs=1, normalization=normalization).fit(_data(4))
    assert fit.preprocessor_.normalization == normalization
    assert fit.model_.preprocessing["normalization"] == normalization


def test_min_frames_sets_the_shortest_subject_accepted():
    """Subjects shorter than a window (32 frames) are padded down to min_frames: 18 frames
    train at the default (half a window) but are refused with min_frames=20."""
    X = list(_data(n_subjects=3))
    X[2] = X[2][:18]
    assert len(_pretrainer(n_epochs=1).fit(X).history_) == 1
    with pytest.raises(ValueError, match=r"^subject 2 is too short: .*min_frames=20"):
        _pretrainer(n_epochs=1, min_frames=20).fit(X)


@pytest.mark.parametrize("rank", [0, 1])
def test_under_torchrun_only_process_0_shows_progress_and_writes_the_checkpoint(rank, tmp_path,
                                                                                  monkeypatch):
    """With verbose=1 and a checkpoint_dir, process 0 alone draws the progress bar and saves
    the run (every process resumes from the file); the other processes stay silent. Two
    processes are simulated and the callbacks the loop would get are inspected."""
    from brainjepa_sk import pretrain
    from brainjepa_sk.train import Checkpoint, ProgressBar

    class Stop(Exception):
        pass

    seen = {}

    def spy(*args, callbacks=(), **kwargs):
        seen["callbacks"] = callbacks
        raise Stop

    monkeypatch.setattr(pretrain, "world", lambda: (rank, 2))
    monkeypatch.setattr(pretrain, "PretrainLoop", spy)
    with pytest.raises(Stop):
        _pretrainer(verbose=1, checkpoint_dir=tmp_path).fit(_data(4))
    (bar,) = [c for c in seen["callbacks"] if isinstance(c, ProgressBar)]
    assert bar.disable is (rank != 0)
    assert sum(isinstance(c, Checkpoint) for c in seen["callbacks"]) == (rank == 0)


def test_gradients_indexed_by_region_names_name_the_regions_of_a_fit_on_arrays(tmp_path):
    """Fitted on arrays, the model's regions are the rows of a gradient DataFrame indexed by
    names: the saved file records them, so that named input in another order is refused."""
    from brainjepa_sk import BrainJEPAEmbedder

    X = _data(n_subjects=4)
    names = [f"roi{i}" for i in range(N_REGIONS)]
    gradients = pd.DataFrame(np.random.default_rng(2).standard_normal((N_REGIONS, 4)),
                             index=names)
    model = _pretrainer(gradients=gradients, n_epochs=1).fit(X)
    assert model.model_.region_names == names
    model.save(tmp_path / "model.pt")
    reordered = [pd.DataFrame(x, columns=names)[names[::-1]] for x in X]
    for weights in (tmp_path / "model.pt", model.model_):
        with pytest.raises(ValueError, match="in another order"):
            BrainJEPAEmbedder(weights=weights).fit(reordered)


def test_the_pretrainer_checks_the_region_names_it_saved_as_the_embedder_does():
    """Fitted on arrays with a gradient DataFrame indexed by names, the pretrainer's own
    transform refuses those names in another order, as the embedder given its file does (it
    had embedded them, each region read as another one); a refit without names drops them."""
    X = _data(n_subjects=4)
    names = [f"roi{i}" for i in range(N_REGIONS)]
    gradients = pd.DataFrame(np.random.default_rng(2).standard_normal((N_REGIONS, 4)),
                             index=names)
    model = _pretrainer(gradients=gradients, n_epochs=1).fit(X)
    assert model.region_names_ == names
    reordered = [pd.DataFrame(x, columns=names)[names[::-1]] for x in X]
    with pytest.raises(ValueError, match="BrainJEPAPretrainer was pretrained on, in another"):
        model.transform(reordered)
    model.set_params(gradients=gradients.to_numpy()).fit(X)
    assert model.region_names_ is None
    with pytest.warns(UserWarning, match="fitted without feature names"):
        assert model.transform(reordered).shape == (4, 32)


@pytest.mark.parametrize("random_state", [None, np.random.RandomState(3)])
def test_under_torchrun_an_unseeded_fit_takes_the_seeds_of_process_0(random_state,
                                                                        monkeypatch):
    """Under torchrun a process not seeded by an int (None, or a RandomState, whose state may
    differ between processes) takes the seeds of process 0 (its masks and window order are
    those of the others). A process of rank 1 is simulated, process 0's seeds sent as
    [11, 22, 33]."""
    from brainjepa_sk import pretrain

    class Stop(Exception):
        pass

    def from_process_0(function, *args, **kwargs):
        return [11, 22, 33] if function is list else function(*args, **kwargs)

    def spy(*args, seed=None, **kwargs):
        seen["mask_seed"] = seed
        raise Stop

    seen = {}
    monkeypatch.setattr(pretrain, "world", lambda: (1, 2))
    monkeypatch.setattr(pretrain, "on_main_process", from_process_0)
    monkeypatch.setattr(pretrain, "SpatiotemporalMaskSampler", spy)
    with pytest.raises(Stop):
        _pretrainer(random_state=random_state).fit(_data(4))
    assert seen["mask_seed"] == 22


def test_the_pretrainers_feature_names_carry_the_region_names_of_its_gradients():
    """Fitted on arrays with a gradient DataFrame indexed by names, the pretrainer's readouts
    are named by those regions (region_names_), as the embedder given its file names them."""
    names = [f"area{i}" for i in range(N_REGIONS)]
    gradients = pd.DataFrame(np.random.default_rng(2).standard_normal((N_REGIONS, 4)),
                             index=names)
    model = _pretrainer(gradients=gradients, n_epochs=1, pooling="roi").fit(_data(n_subjects=4))
    out = model.get_feature_names_out()
    assert out[0] == "area0_embedding0" and out[-1] == f"area{N_REGIONS - 1}_embedding31"
    model.set_params(pooling="connectivity")
    assert model.get_feature_names_out()[0] == "area0_area1_connectivity"


def test_region_names_of_numpy_strings_are_saved_as_python_strings(tmp_path):
    """An index built from an array of labels (``list(atlas.labels)``) holds numpy strings:
    the names are recorded as Python strings, which the saved file (read with
    ``weights_only=True``) and the training state can hold."""
    names = [f"roi{i}" for i in range(N_REGIONS)]
    gradients = pd.DataFrame(np.random.default_rng(2).standard_normal((N_REGIONS, 4)),
                             index=list(np.array(names)))
    assert type(gradients.index[0]) is np.str_
    model = _pretrainer(gradients=gradients, n_epochs=1, checkpoint_dir=tmp_path / "runs").fit(
        _data(n_subjects=4))
    assert [type(n) for n in model.model_.region_names] == [str] * N_REGIONS
    model.save(tmp_path / "model.pt")
    assert load_checkpoint(tmp_path / "model.pt").metadata["region_names"] == names
    (state_file,) = _state_files(tmp_path / "runs")
    assert load_file(state_file)["extra"]["region_names"] == names


@pytest.mark.parametrize("params, message", [
    (dict(model_size=dict(embed_dim=6, depth=1, num_heads=2)), r"model_size\['embed_dim'\]=6"),
    (dict(n_frames=30), "n_frames=30 is not a positive multiple of patch_size=4"),
    (dict(pooling="roi_std", n_frames=4), 'pooling="roi_std" needs at least 2 time patches'),
    (dict(device="meta"), "device='meta'"),
    # the mask sampler named it after X was read, as 'n_patches=1', which is no parameter
    (dict(n_frames=4), r"^n_frames=4 is one time patch of patch_size=4 frames: .* use "
                       r"n_frames=8 or more"),
])
def test_the_settings_are_checked_before_x_is_read(params, message):
    """The model's sizes, the window, the pooling and the device were checked only after X
    had been validated (every file of a corpus read), and bad X hid them."""
    with pytest.raises(ValueError, match=message):
        _pretrainer(n_epochs=1, **params).fit(np.zeros((5, 3)))


# -- score: minus the held-out masked-prediction loss -----------------------------------------
@pytest.fixture(scope="module")
def trained():
    """A pretrainer trained for 10 epochs on 8 subjects, and 4 subjects it did not see (not
    to be changed: a test that sets parameters works on a copy)."""
    X = _data(n_subjects=12)
    return _pretrainer(n_epochs=10).fit(X[:8]), X[8:]


@contextlib.contextmanager
def _eval_steps(monkeypatch):
    """Record each call of the engine's eval_step made by score: its windows, masks, loss and
    whether any module of the model was in training mode."""
    from brainjepa_sk import pretrain
    from brainjepa_sk.train import eval_step

    calls = []

    def recording(model, x, masks, autocast_dtype=None):
        loss = eval_step(model, x, masks, autocast_dtype)
        calls.append({"x": x.clone(), "context": masks.context_idx, "target": masks.target_idx,
                      "loss": loss.item(), "training": any(m.training for m in model.modules())})
        return loss

    with monkeypatch.context() as patch:
        patch.setattr(pretrain, "eval_step", recording)
        yield calls


def _masks_of(calls):
    return (torch.cat([call["context"] for call in calls]),
            torch.cat([call["target"] for call in calls]))


def test_score_is_minus_the_mean_loss_of_the_model_on_the_windows_of_fit(trained, monkeypatch):
    """score runs the model's own loss (the engine's eval_step, targets from the EMA encoder) in
    eval mode over X's windows as fit cuts and scales them, batch_size windows at a time, and
    returns minus its mean over the windows."""
    model, X = copy.deepcopy(trained[0]).set_params(batch_size=3), trained[1]
    with _eval_steps(monkeypatch) as calls:
        score = model.score(X)
    windows, _ = model.preprocessor_.transform(X)  # the fitted statistics and windows
    assert [len(call["x"]) for call in calls] == [3, 3, 2]
    np.testing.assert_array_equal(torch.cat([call["x"] for call in calls]).numpy(), windows)
    assert not any(call["training"] for call in calls)
    with torch.no_grad():
        for call in calls:
            loss = model.model_(call["x"], call["context"], call["target"])["loss"]
            assert call["loss"] == pytest.approx(loss.item(), rel=1e-6)
    losses = np.array([call["loss"] for call in calls])
    assert score == pytest.approx(-(losses * [3, 3, 2]).sum() / 8, rel=1e-12)
    assert score < 0


def test_score_is_deterministic_and_leaves_the_estimator_and_the_random_states_alone(trained):
    model = copy.deepcopy(trained[0])
    X = trained[1]
    weights = {name: value.clone() for name, value in model.model_.state_dict().items()}
    history, attributes = copy.deepcopy(model.history_), set(vars(model))
    torch.manual_seed(123)
    np.random.seed(123)
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    first = model.score(X)
    assert model.score(X) == first
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state[1])
    after = model.model_.state_dict()
    assert after.keys() == weights.keys()
    assert all(torch.equal(after[name], value) for name, value in weights.items())
    assert not any(module.training for module in model.model_.modules())
    assert model.history_ == history and set(vars(model)) == attributes
    # a RandomState is not drawn from: the masks of a fixed seed, as for None
    generator = np.random.RandomState(7)
    state = generator.get_state()[1].copy()
    model.set_params(random_state=generator)
    assert model.score(X) == model.score(X) == model.set_params(random_state=None).score(X)
    np.testing.assert_array_equal(generator.get_state()[1], state)


def test_score_computes_in_eval_mode_and_gives_the_modules_their_modes_back():
    """With stochastic depth, a model put in training mode would score another number at every
    call (and draw from torch's global generator): score computes in eval mode, then gives
    each module its own mode back."""
    X = _data(n_subjects=4)
    model = _pretrainer(n_epochs=1, drop_path_rate=0.5).fit(X)
    in_eval = model.score(X)
    model.model_.train()
    model.model_.predictor.eval()  # modes of its own, given back as they were
    modes = [module.training for module in model.model_.modules()]
    assert model.score(X) == model.score(X) == in_eval
    assert [module.training for module in model.model_.modules()] == modes


def test_estimators_of_the_same_random_state_and_masking_are_scored_on_the_same_masks(
        trained, monkeypatch):
    """The masks depend on random_state and masking only: not on the training (another lr),
    nor on batch_size; another random_state or masking draws others."""
    model, X = trained
    untrained = _pretrainer(n_epochs=1, lr=0.0, start_lr=0.0, final_lr=0.0).fit(_data(8))

    def masks(estimator, **params):
        with _eval_steps(monkeypatch) as calls:
            copy.deepcopy(estimator).set_params(**params).score(X)
        return _masks_of(calls)

    reference = masks(model)
    for same in (masks(model, batch_size=3), masks(untrained)):
        assert all(torch.equal(a, b) for a, b in zip(reference, same))
    for other in (masks(model, random_state=1),
                  masks(model, masking={"alpha_region_scale": (0.2, 0.3)})):
        assert not all(a.shape == b.shape and torch.equal(a, b)
                       for a, b in zip(reference, other))


def test_a_trained_model_scores_higher_than_its_untrained_start(trained):
    """lr=start_lr=final_lr=0 leaves the initial weights (and the EMA target equal to them):
    the same start, untrained. Training lowers the loss on subjects it did not see too."""
    model, X = trained
    start = _pretrainer(n_epochs=1, lr=0.0, start_lr=0.0, final_lr=0.0).fit(_data(8))
    assert model.score(X) > start.score(X) + 5  # about -16 against -32
    assert model.score(_data(8)) > start.score(_data(8)) + 5


def test_the_pretrainer_is_scored_by_cross_validation_and_grid_search_without_scoring():
    from sklearn.model_selection import GridSearchCV, cross_val_score

    X = _data(n_subjects=9)
    scores = cross_val_score(_pretrainer(n_epochs=1), X, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all() and (scores < 0).all()
    untrained = {"lr": [0.0], "start_lr": [0.0], "final_lr": [0.0]}
    search = GridSearchCV(_pretrainer(n_epochs=10), [untrained, {"lr": [2e-3]}], cv=2,
                          refit=False).fit(X)
    assert search.best_params_ == {"lr": 2e-3}
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_the_l2_score_scales_with_the_width_and_the_smooth_l1_score_does_not():
    """The docs' example (pretraining.rst): loss="l2" sums the squared error over the
    features, so a model four times as wide scores about four times as low; "smooth_l1"
    averages over them. The page gives every setting of this test (its numbers depend on
    batch_size, say: -29/-59/-116 with the default 16)."""
    from brainjepa_sk.datasets import make_brain_dynamics

    settings = dict(predictor_embed_dim=32, predictor_depth=1, n_frames=96, t_r=2.0,
                    n_epochs=3, batch_size=8, random_state=0)
    page = " ".join((Path(__file__).parents[1] / "docs" / "user_guide"
                     / "pretraining.rst").read_text().split())
    for setting in ['model_size={"embed_dim": width, "depth": 1, "num_heads": 4}',
                    *(f"``{name}={value!r}``" for name, value in settings.items()),
                    "make_brain_dynamics(n_subjects=12, n_regions=21, random_state=0)",
                    "GradientPositioner(n_components=10)"]:
        assert setting in page
    X, _ = make_brain_dynamics(n_subjects=12, n_timepoints=200, n_regions=21, t_r=2.0,
                               random_state=0)
    scores = {}
    for loss in ("l2", "smooth_l1"):
        for width in (32, 128):
            pretrainer = BrainJEPAPretrainer(
                GradientPositioner(n_components=10, random_state=0),
                model_size={"embed_dim": width, "depth": 1, "num_heads": 4}, **settings,
                loss=loss, device="cpu", verbose=0,
            ).fit(X[:8])
            scores[loss, width] = pretrainer.score(X[8:])
    assert 3.5 < scores["l2", 128] / scores["l2", 32] < 4.5
    assert 0.9 < scores["smooth_l1", 128] / scores["smooth_l1", 32] < 1.1


def test_score_before_fit_is_refused():
    with pytest.raises(NotFittedError):
        _pretrainer().score(_data(n_subjects=2))


@pytest.mark.parametrize("bad", [
    lambda X: X[:, :, :-1],                                      # other regions
    lambda X: np.where(np.arange(48)[None, :, None] == 5, np.nan, X),  # not finite
    lambda X: X[:, :10],                                         # too short for a window
    lambda X: X[0],                                              # one subject, not a list
    lambda X: [],                                                # no subject
    # warned of, not refused: names the fit did not see, series off the fitted scale
    lambda X: [pd.DataFrame(x, columns=[f"r{i}" for i in range(N_REGIONS)]) for x in X],
    lambda X: X * 1e4 + 1e4,
], ids=["regions", "nan", "short", "2-D", "empty", "names", "scale"])
def test_score_refuses_or_warns_of_the_x_transform_refuses_or_warns_of(trained, bad):
    """score checks and scales X where transform does: the same errors and warnings."""
    model, X = trained
    outcomes = []
    for method in (model.transform, model.score):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                method(bad(X))
                error = None
            except Exception as raised:
                error = (type(raised), str(raised))
        outcomes.append((error, [str(warning.message) for warning in caught]))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] != (None, [])


def test_a_t_r_in_milliseconds_is_warned_of_once_per_fit():
    """fMRI TRs are seconds: t_r=2000 (2 s in milliseconds) fits, as it may be meant for other
    data, but says so once, naming the parameter; one up to 20 s says nothing."""
    X = _data(n_subjects=4)
    for settings, names in ((dict(t_r=2000), ["t_r"]),
                            (dict(t_r=720, model_t_r=720), ["t_r", "model_t_r"])):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pretrainer = _pretrainer(n_epochs=1, **settings).fit(X)
        long = [str(w.message) for w in caught if "long for fMRI" in str(w.message)]
        value = settings["t_r"]
        assert long == [f"{name}={value} s is long for fMRI: TRs are in seconds ({value} ms "
                        f"is {value / 1000} s)" for name in names]
        assert pretrainer.preprocessor_.target_t_r == value  # taken as given
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _pretrainer(n_epochs=1, t_r=20, model_t_r=20).fit(X)  # the longest taken
    assert not [w for w in caught if "long for fMRI" in str(w.message)]


def test_subjects_too_short_for_the_windows_are_offered_shorter_windows():
    """Padding was the only cure offered (60% made-up frames for 64-frame subjects with the
    default n_frames=160): the pretrainer's window length is the user's choice, so the
    longest n_frames the subjects fill is offered too (a multiple of patch_size); none where
    no window of two patches fits."""
    X = list(_data(n_subjects=4))
    X[1], X[3] = X[1][:10], X[3][:13]
    with pytest.raises(ValueError) as info:
        _pretrainer(gradients=None).fit(X)  # n_frames=32, patch_size=4, min_frames=16
    assert str(info.value).endswith(
        "leave them out, or pass min_frames=10 or less to have them padded, or pass n_frames=8 "
        "or less (a multiple of patch_size=4, two patches or more) for windows they fill")
    X[1] = X[1][:7]  # 7 frames: one patch of 4
    with pytest.raises(ValueError) as info:
        _pretrainer(gradients=None).fit(X)
    assert str(info.value).endswith("or pass min_frames=7 or less to have them padded")


def test_a_min_frames_longer_than_the_window_is_named_with_subjects_too_short():
    """The check of the lengths, which offers shorter windows, skipped the preprocessing's
    settings checks: min_frames=32 over windows of 8 frames was told 'subject 1 is too short
    ... at least min_frames=32 are needed', with cures that did not name the setting."""
    X = list(_data(n_subjects=4))
    X[1] = X[1][:5]
    with pytest.raises(ValueError, match=r"^min_frames=32 is longer than a window "
                                         r"\(n_frames=8\)"):
        _pretrainer(n_frames=8, min_frames=32).fit(X)


@pytest.mark.parametrize("setting", ["min_frames", "stride"])
def test_the_shorter_windows_offered_fit_when_followed(setting):
    """A min_frames (refusing padding, as the docs advise) or a stride of the window's length
    was left out of the offer: n_frames=12 alone was then refused as shorter than it."""
    X = list(_data(n_subjects=4))
    X[1], X[3] = X[1][:13], X[3][:15]
    with pytest.raises(ValueError) as info:
        _pretrainer(**{setting: 32}).fit(X)  # n_frames=32, patch_size=4
    assert str(info.value).endswith(
        f"or pass n_frames=12 or less (a multiple of patch_size=4, two patches or more; "
        f"{setting}=32 lowered to that n_frames or less) for windows they fill")
    # the advice, followed
    pretrainer = _pretrainer(n_epochs=1, n_frames=12, **{setting: 12}).fit(X)
    assert pretrainer.preprocessor_.n_frames == 12


def test_the_shorter_windows_offered_to_one_subject_are_worded_for_one():
    """One subject too short was offered 'windows it fill'."""
    X = list(_data(n_subjects=4))
    X[2] = X[2][:9]
    with pytest.raises(ValueError) as info:
        _pretrainer().fit(X)
    assert str(info.value).endswith("leave the subject out, or pass min_frames=9 or less to "
                                    "have it padded, or pass n_frames=8 or less (a multiple of "
                                    "patch_size=4, two patches or more) for windows it fills")


def test_fit_transforms_warnings_name_the_users_line_not_scikit_learns():
    """The pretrainer's ``fit_transform`` is scikit-learn's ``fit(X).transform(X)``: a warning
    of its fit (a TR in milliseconds) named that line of scikit-learn's."""
    with pytest.warns(UserWarning, match="long for fMRI") as record:
        _pretrainer(n_epochs=1, t_r=2000).fit_transform(_data(4))
    assert {Path(w.filename).name for w in record} == {Path(__file__).name}

"""Fine-tuning and linear probing: BrainJEPAClassifier and BrainJEPARegressor (skorch nets)."""

import copy
import errno
import functools
import hashlib
import inspect
import io
import json
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from _estimators import N_REGIONS, assert_same_module, tiny_module
from conftest import use_local_ukbiobank
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from skorch.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochScoring,
    LoadInitState,
    LRScheduler,
    PassthroughScoring,
    ProgressBar,
    TrainEndCheckpoint,
)
from skorch.dataset import ValidSplit

import brainjepa_sk
from brainjepa_sk import BrainJEPAClassifier, BrainJEPAEmbedder, BrainJEPARegressor
from brainjepa_sk.checkpoint import save_checkpoint
from brainjepa_sk.finetune import (
    SubjectValidSplit,
    SubjectWindows,
    WarmupCosineLR,
    WindowArray,
    _start_persistent_workers,
)
from brainjepa_sk.nn import EncoderWithHead
from brainjepa_sk.preprocessing import Preprocessor
from brainjepa_sk.train import layer_decay_groups, set_hyperparameters, warmup_cosine

#: Settings under which the tiny model learns within seconds.
FAST_MIN_LR = 1e-6  # the estimators' default
FAST = dict(normalization=None, layer_decay=1.0, drop_path_rate=0.0, lr=3e-2, max_epochs=30,
            batch_size=8, verbose=0, random_state=0)


def offset_subjects(levels, n_timepoints=16, seed=0):
    """Noisy subjects whose first four regions sit ``3 * level`` above the others."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((len(levels), n_timepoints, N_REGIONS))
    X[:, :, :4] += 3 * np.asarray(levels, dtype=float)[:, None, None]
    return X


def fast(**overrides):
    """``FAST`` with some settings changed."""
    return {**FAST, **overrides}


class Recorder(Callback):
    """Records what the net trains on and the learning rates it steps with."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.dataset_ = X
        self.lrs_, self.lr_scales_ = [], []

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training:
            groups = net.optimizer_.param_groups
            self.lrs_.append([group["lr"] for group in groups])
            self.lr_scales_.append([group["lr_scale"] for group in groups])


# -- learning ----------------------------------------------------------------------------------

def test_the_classifier_learns_the_labels_of_held_out_subjects():
    labels = np.array(["control", "patient"] * 12)
    X = offset_subjects(np.where(labels == "patient", 1.0, 0.0))
    clf = BrainJEPAClassifier(tiny_module(), **FAST).fit(X, labels)
    X_new = offset_subjects(np.where(labels == "patient", 1.0, 0.0), seed=1)
    assert clf.score(X_new, labels) >= 0.9
    assert set(clf.predict(X_new)) <= {"control", "patient"}
    np.testing.assert_array_equal(clf.classes_, ["control", "patient"])
    proba = clf.predict_proba(X_new)
    assert proba.shape == (24, 2) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert clf.history_[-1]["train_loss"] < clf.history_[0]["train_loss"]


@pytest.mark.parametrize("estimator", [BrainJEPAClassifier, BrainJEPARegressor])
def test_under_torchrun_the_fine_tuners_warn_that_each_process_fine_tunes_its_own_copy(
        estimator, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun's process 0, before any group is joined
    monkeypatch.setenv("RANK", "0")
    with pytest.warns(UserWarning, match=rf"{estimator.__name__} is not distributed: under "
                                         r"torchrun each of the 2 processes fine-tunes a copy"):
        estimator(tiny_module(), **fast(max_epochs=1)).fit(offset_subjects(np.arange(8) % 2),
                                                           np.arange(8) % 2)


def test_a_world_size_left_without_torchrun_gives_no_torchrun_warning(monkeypatch):
    """A WORLD_SIZE exported by a job script, without torchrun's RANK: one process."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(
            offset_subjects(np.arange(8) % 2), np.arange(8) % 2)
    assert not [w for w in record if "is not distributed" in str(w.message)]


def test_the_regressor_learns_a_continuous_target_in_its_units():
    rng = np.random.default_rng(0)
    levels = rng.uniform(-1, 1, 32)
    y = 60 + 10 * levels  # e.g. ages
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=25)).fit(
        offset_subjects(levels), y)
    levels_new = rng.uniform(-1, 1, 32)
    prediction = reg.predict(offset_subjects(levels_new, seed=1))
    assert prediction.shape == (32,)
    assert reg.score(offset_subjects(levels_new, seed=1), 60 + 10 * levels_new) > 0.7
    assert abs(prediction.mean() - 60) < 3  # in years, not in standardised units
    np.testing.assert_allclose(reg.target_mean_, [y.mean()])
    np.testing.assert_allclose(reg.target_scale_, [y.std()])


def test_several_targets_are_predicted_together():
    rng = np.random.default_rng(0)
    levels = rng.uniform(-1, 1, 16)
    y = np.stack([levels, -2 * levels], axis=1)
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=2)).fit(
        offset_subjects(levels), y)
    assert reg.predict(offset_subjects(levels)).shape == (16, 2)
    assert reg.module_.head.linear.out_features == 2


def test_several_labels_per_subject_are_told_to_use_multioutputclassifier():
    """The classifier fits one target: a y of several label columns had met scikit-learn's
    "y should be a 1d array" alone; it is told how several are fitted, which works."""
    from sklearn.multioutput import MultiOutputClassifier

    X, labels = offset_subjects(np.zeros(6)), np.array([[0, 1], [1, 0], [1, 1]] * 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1))
    for fit in (clf.fit, lambda X, y: clf.partial_fit(X, y, classes=[0, 1])):
        with pytest.raises(ValueError, match=r"^y has shape \(6, 2\): 2 targets, but "
                                             r"BrainJEPAClassifier fits one .*sklearn\.multioutput"
                                             r"\.MultiOutputClassifier\(BrainJEPAClassifier"):
            fit(X, labels)
    assert MultiOutputClassifier(clf).fit(X, labels).predict(X).shape == (6, 2)


def test_targets_indexed_by_the_files_subjects_in_another_order_are_refused(tmp_path):
    """A glob is read in sorted order (sub-10 before sub-2): a y from a participants table
    indexed by ID, in the table's order, was paired with other subjects' series silently."""
    ids = [f"sub-{k}" for k in range(1, 12)]
    X = offset_subjects(np.zeros(len(ids)))
    for subject, x in zip(ids, X):
        np.save(tmp_path / f"{subject}_timeseries.npy", x)
    y = pd.Series(["a", "b"] * 5 + ["a"], index=pd.Index(ids, name="participant_id"))
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1))
    with pytest.raises(ValueError, match=r"y's index names the subjects' files, but in another "
                                         r"order than X's: row 0 of y is 'sub-1', whose file is "
                                         r"number 2 of X \(sub-1_timeseries\.npy\), while X's "
                                         r"file 0 is sub-10_timeseries\.npy"):
        clf.fit(str(tmp_path / "*.npy"), y)
    assert not hasattr(clf, "module_")
    # the cures the message gives: the files in y's order, or y in the files' order
    files = [str(tmp_path / f"{subject}_timeseries.npy") for subject in y.index]
    clf.fit(files, y)
    # and scoring: its predictions had been compared with other subjects' labels
    with pytest.raises(ValueError, match=r"y's index names the subjects' files, but in another "
                                         r"order than X's"):
        clf.score(str(tmp_path / "*.npy"), y)
    assert 0 <= clf.score(files, y) <= 1
    in_file_order = y.loc[[path.name.split("_")[0] for path in sorted(tmp_path.glob("*.npy"))]]
    clf.fit(str(tmp_path / "*.npy"), in_file_order)
    # an index that is no names of the files is taken as given
    clf.fit(str(tmp_path / "*.npy"), y.reset_index(drop=True))
    clf.fit(str(tmp_path / "*.npy"), y.set_axis([f"p{k}" for k in range(len(ids))]))


def test_targets_indexed_by_the_files_paths_in_another_order_are_refused(tmp_path):
    """Only an index of IDs in the files' names was looked at: a y indexed by the files
    themselves (pathlib.Path objects, or their paths as strings) was paired with other
    subjects' series, and score did not look at X given as a pandas Series of paths."""
    from pathlib import Path

    ids = [f"sub-{k}" for k in range(1, 12)]
    files = [tmp_path / f"{subject}_timeseries.npy" for subject in ids]
    for file, x in zip(files, offset_subjects(np.zeros(len(ids)))):
        np.save(file, x)
    labels = ["a", "b"] * 5 + ["a"]
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1))
    in_glob_order = pd.Series(sorted(files))
    for index in (files, [str(file) for file in files], [Path(file.name) for file in files]):
        y = pd.Series(labels, index=index)
        message = (r"y's index names the subjects' files, but in another order than X's: row 0 "
                   rf"of y is '{re.escape(str(index[0]))}', whose file is number 2 of X "
                   r"\(sub-1_timeseries\.npy\), while X's file 0 is sub-10_timeseries\.npy")
        with pytest.raises(ValueError, match=message):
            clf.fit(str(tmp_path / "*.npy"), y)
        with pytest.raises(ValueError, match=message):
            clf.score(in_glob_order, y)  # told before anything is predicted
        with pytest.raises(ValueError, match=message):
            clf.score(in_glob_order.to_numpy(), y)
        assert not hasattr(clf, "module_")
    # in the files' order, and numbers (positions a split keeps, not IDs): taken as given
    clf.fit(files, pd.Series(labels, index=files))
    clf.fit(in_glob_order, pd.Series(labels, index=range(10, -1, -1)))


def test_targets_indexed_by_paths_of_files_of_one_name_say_which_files(tmp_path):
    """Files of one name in several folders (one per site) are told apart by their paths:
    the error named only their names, 'file number 1 of X (ts.npy), while X's file 0 is
    ts.npy', which says nothing of which is which."""
    files = []
    for site, x in zip(["site-a", "site-b", "site-c"], offset_subjects(np.zeros(3))):
        (tmp_path / site).mkdir()
        files.append(tmp_path / site / "ts.npy")
        np.save(files[-1], x)
    y = pd.Series([0, 1, 0], index=[str(files[k]) for k in (1, 0, 2)])
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1))
    message = (rf"row 0 of y is '{re.escape(str(files[1]))}', whose file is number 1 of X "
               rf"\({re.escape(str(files[1]))}\), while X's file 0 is "
               rf"{re.escape(str(files[0]))};")
    with pytest.raises(ValueError, match=message):
        clf.fit(files, y)


def test_targets_in_another_order_than_thousands_of_files_are_told_at_once():
    """Each row's ID was searched for in every file name: minutes before the error for a
    few thousand subjects (hours for a UK Biobank), where it now takes a fraction of a
    second."""
    import time
    from pathlib import Path
    from types import SimpleNamespace

    from brainjepa_sk.finetune import _check_targets_follow_files

    ids = [f"sub-{k}" for k in range(3000)]
    files = SimpleNamespace(paths=sorted(Path(f"data/{subject}_task-rest_bold.npy")
                                         for subject in ids))
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"row 1 of y is 'sub-1', whose file is number 1111 "
                                         r"of X \(sub-1_task-rest_bold\.npy\), while X's file 1 "
                                         r"is sub-1000_task-rest_bold\.npy"):
        _check_targets_follow_files(files, pd.Series(np.zeros(len(ids)), index=ids))
    assert time.perf_counter() - start < 5  # about 30 s before


def test_targets_indexed_by_bare_subject_numbers_in_another_order_are_refused():
    """A participants table indexed by the subjects' numbers alone ('2', not 'sub-2') names
    the files by a whole part of their names that follows a separator: in another order than
    a glob's sorted files, it is refused as an index of 'sub-2' is."""
    from pathlib import Path
    from types import SimpleNamespace

    from brainjepa_sk.finetune import _check_targets_follow_files

    ids = [str(k) for k in range(1, 12)]
    files = SimpleNamespace(paths=sorted(Path(f"data/sub-{k}_bold.npy") for k in ids))
    with pytest.raises(ValueError, match=r"row 0 of y is '1', whose file is number 2 of X "
                                         r"\(sub-1_bold\.npy\), while X's file 0 is "
                                         r"sub-10_bold\.npy"):
        _check_targets_follow_files(files, pd.Series(np.zeros(len(ids)), index=ids))
    # in the files' order: taken as given
    in_file_order = [path.name[len("sub-"):].split("_")[0] for path in files.paths]
    _check_targets_follow_files(files, pd.Series(np.zeros(len(ids)), index=in_file_order))


def test_classes_given_in_any_order_name_the_outputs_the_model_learns():
    """With classes=["patient", "control"], output 0 (the first column of predict_proba) is
    trained on the patients' windows; a warning says that scikit-learn's binary scorers would
    take "control" as the positive class."""
    recorder = Recorder()
    labels = np.array(["control", "patient", "patient"] * 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), classes=["patient", "control"],
                              callbacks=[recorder])
    with pytest.warns(UserWarning, match=r"classes=\['patient', 'control'\] is not sorted.*"
                                         r"classes_\[1\] as the positive class; pass "
                                         r"classes=\['control', 'patient'\]"):
        clf.fit(offset_subjects(np.zeros(6)), labels)
    np.testing.assert_array_equal(clf.classes_, ["patient", "control"])
    np.testing.assert_array_equal(clf.classes_[recorder.dataset_.y], labels)


def test_predictions_have_the_shape_of_the_fitted_targets():
    """A single target given as a column is predicted as a column, as given as a vector."""
    levels = np.linspace(-1, 1, 8)
    X, y = offset_subjects(levels), 60 + 10 * levels
    column = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, y[:, None])
    assert column.predict(X).shape == (8, 1)
    vector = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    assert vector.predict(X).shape == (8,)
    np.testing.assert_allclose(column.predict(X)[:, 0], vector.predict(X), rtol=1e-6)


# -- windows and subjects ----------------------------------------------------------------------

def test_every_window_is_a_training_sample_with_its_subjects_label():
    """Sliding 8-frame windows every 8 frames: subjects of 16, 24 and 8 frames give 2, 3 and 1
    windows, and every window carries its own subject's label."""
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((n, N_REGIONS)) for n in (16, 24, 8)]
    recorder = Recorder()
    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), window="sliding", stride=8,
                        callbacks=[recorder]).fit(X, ["a", "b", "a"])
    dataset = recorder.dataset_
    assert isinstance(dataset, SubjectWindows)
    np.testing.assert_array_equal(dataset.subject_index, [0, 0, 1, 1, 1, 2])
    np.testing.assert_array_equal(dataset.y, [0, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(dataset.X[2], X[1][:8].astype(np.float32))


@pytest.mark.parametrize("freeze_encoder", [False, True])
def test_a_subjects_prediction_is_the_mean_over_its_windows(freeze_encoder):
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((n, N_REGIONS)) for n in (24, 8, 16)]
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2), window="sliding",
                              stride=8, freeze_encoder=freeze_encoder).fit(X, [0, 1, 0])
    module = clf.module_.eval()
    for subject, proba in zip(X, clf.predict_proba(X)):
        windows, _ = clf.preprocessor_.transform([subject])
        with torch.no_grad():
            expected = module(torch.from_numpy(windows)).softmax(-1).mean(0).numpy()
        np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-6)


def test_predict_log_proba_is_the_log_of_the_subjects_mean_probabilities():
    """Columns in the order of classes_, the log of the mean over a subject's windows (not
    the mean of the windows' log probabilities)."""
    labels = np.array(["patient", "control"] * 4)
    X = offset_subjects(np.where(labels == "patient", 1.0, 0.0))
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=10), window="sliding",
                              stride=8).fit(X, labels)  # two windows a subject
    mixed = offset_subjects(np.zeros(4), seed=1)
    mixed[:, :8, :4] += 3.0  # a patient's first window, a control's second: they disagree
    log_proba = clf.predict_log_proba(mixed)
    assert log_proba.shape == (4, 2) and clf.classes_.tolist() == ["control", "patient"]
    np.testing.assert_allclose(log_proba, np.log(clf.predict_proba(mixed)), rtol=1e-12)
    module = clf.module_.eval()
    for subject, row in zip(mixed, log_proba):
        windows, _ = clf.preprocessor_.transform([subject])
        with torch.no_grad():
            expected = module(torch.from_numpy(windows)).softmax(-1).mean(0).log().numpy()
        np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(clf.classes_[log_proba.argmax(axis=1)], clf.predict(mixed))


def test_predict_log_proba_of_a_probability_that_underflowed_is_minus_inf_without_warning():
    X = offset_subjects(np.tile([0.0, 1.0], 3))
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, np.tile([0, 1], 3))
    with torch.no_grad():  # a logit gap that float32's softmax rounds to exactly 1 and 0
        clf.module_.head.linear.weight.zero_()
        clf.module_.head.linear.bias.copy_(torch.tensor([500.0, -500.0]))
    np.testing.assert_array_equal(clf.predict_proba(X), np.tile([1.0, 0.0], (6, 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_proba = clf.predict_log_proba(X)
    np.testing.assert_array_equal(log_proba, np.tile([0.0, -np.inf], (6, 1)))


def test_predict_log_proba_in_a_pipeline_and_cross_validation_with_log_loss():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    levels = np.tile([0.0, 1.0], 6)
    X, y = offset_subjects(levels), np.where(levels == 1.0, "b", "a")
    pipe = make_pipeline(FunctionTransformer(),
                         BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2))).fit(X, y)
    np.testing.assert_allclose(pipe.predict_log_proba(X), np.log(pipe.predict_proba(X)),
                               rtol=1e-12)
    # neg_log_loss scores predict_proba: on each held-out fold, the mean log probability of
    # the true class, which is what predict_log_proba of that fold's model gives
    folds = list(KFold(3).split(X))
    result = cross_validate(pipe, X, y, cv=folds, scoring="neg_log_loss",
                            return_estimator=True)
    for score, fitted, (_, test) in zip(result["test_score"], result["estimator"], folds):
        log_proba = fitted.predict_log_proba(X[test])
        true = np.searchsorted(fitted.classes_, y[test])
        np.testing.assert_allclose(score, log_proba[np.arange(len(test)), true].mean(),
                                   rtol=1e-5)
    np.testing.assert_allclose(cross_val_score(pipe, X, y, cv=folds, scoring="neg_log_loss"),
                               result["test_score"], rtol=1e-6)


def test_probabilities_sum_to_one_in_float64_so_that_log_loss_takes_them_silently():
    """The windows' softmax is float32, whose rows sum to 1 within its rounding (6e-8), over
    the float64 tolerance of scikit-learn's log_loss: neg_log_loss warned "The y_prob values
    do not sum to one" at each fold. A nonlinearity of one's own is left as it gives them."""
    from sklearn.metrics import log_loss

    levels = np.tile([0.0, 1.0, 2.0], 4)
    X, y = offset_subjects(levels), np.array(["a", "b", "c"])[levels.astype(int)]
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), window="sliding",
                              stride=4).fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_loss(y, proba, labels=clf.classes_)
        cross_val_score(clf, X, y, cv=KFold(2), scoring="neg_log_loss")
    windows, subject_index = clf.preprocessor_.transform(list(X))
    with torch.no_grad():
        logits = clf.module_.eval()(torch.from_numpy(windows)).numpy()
    logit_means = np.stack([logits[subject_index == i].mean(0) for i in range(len(X))])
    np.testing.assert_allclose(clf.set_params(predict_nonlinearity=None).predict_proba(X),
                               logit_means, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("freeze_encoder", [False, True])  # the probe has a BatchNorm head
def test_a_subjects_prediction_does_not_depend_on_the_other_subjects(freeze_encoder):
    X = offset_subjects(np.tile([0.0, 1.0], 6))
    y = np.tile([0, 1], 6)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2, batch_size=5),
                              freeze_encoder=freeze_encoder).fit(X, y)
    together = clf.predict_proba(X)
    order = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_allclose(clf.predict_proba(X[order]), together[order], atol=1e-6)
    for i in (0, 7):
        np.testing.assert_allclose(clf.predict_proba(X[i : i + 1])[0], together[i], atol=1e-6)
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=2),
                             freeze_encoder=freeze_encoder).fit(X, y.astype(float))
    np.testing.assert_allclose(reg.predict(X[3:4]), reg.predict(X)[3:4], atol=1e-6)


def test_a_torch_tensor_of_subjects_is_predicted_as_subjects():
    """After fit, a tensor is subjects to preprocess, cut and average like an array (only
    skorch's batch scoring passes tensors of windows, during fit)."""
    X, labels = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile(["a", "b"], 3)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2), window="sliding",
                              stride=8).fit(X, labels)  # two windows a subject
    tensor = torch.from_numpy(X)
    np.testing.assert_allclose(clf.predict_proba(tensor), clf.predict_proba(X), rtol=1e-6)
    np.testing.assert_array_equal(clf.predict(tensor), clf.predict(X))
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1), window="sliding",
                             stride=8).fit(X, np.arange(6.0))
    np.testing.assert_allclose(reg.predict(tensor), reg.predict(X), rtol=1e-6)


def test_targets_in_a_tensor_that_requires_grad_are_read_as_their_values():
    """X's tensors that require grad are read as their values; such a y failed with torch's
    RuntimeError ("Can't call numpy() on Tensor that requires grad") in fit, partial_fit
    and score."""
    X = offset_subjects(np.tile([0.0, 1.0], 2))
    for estimator, values in [(BrainJEPARegressor, np.arange(4.0)),
                              (BrainJEPAClassifier, np.tile([0.0, 1.0], 2))]:
        y = torch.tensor(values, requires_grad=True) * 1  # the result of autograd
        fitted = estimator(tiny_module(), **fast(max_epochs=1)).fit(X, y)
        expected = estimator(tiny_module(), **fast(max_epochs=1)).fit(X, values)
        np.testing.assert_array_equal(fitted.predict(X), expected.predict(X))
        assert fitted.score(X, y) == expected.score(X, values)
        fitted.partial_fit(X, y)
    assert y.requires_grad  # the caller's tensor is left as it was


def test_forward_of_subjects_runs_the_module_on_their_preprocessed_windows():
    """skorch's forward and forward_iter take what predict takes: subjects are preprocessed
    and cut into windows (skorch's own fed the raw series to the module, windows of another
    length, unscaled); a dataset of windows goes to the module as it is."""
    from skorch.dataset import Dataset

    X = 5 + 2 * offset_subjects(np.tile([0.0, 1.0], 3), n_timepoints=24)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, normalization="auto"),
                              window="sliding", stride=8).fit(X, np.tile([0, 1], 3))
    windows = np.concatenate([clf.preprocessor_.transform([subject])[0] for subject in X])
    assert len(windows) == 18  # three 8-frame windows a subject
    with torch.no_grad():
        expected = clf.module_.eval()(torch.from_numpy(windows))
    for given in (X, list(X)):
        torch.testing.assert_close(clf.forward(given), expected)
        torch.testing.assert_close(torch.cat(list(clf.forward_iter(given))), expected)
    torch.testing.assert_close(clf.forward(Dataset(windows)), expected)
    np.testing.assert_allclose(
        clf.forward(X).softmax(-1).reshape(6, 3, 2).mean(1).numpy(), clf.predict_proba(X),
        rtol=1e-5, atol=1e-6)
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, np.arange(6.0))
    np.testing.assert_allclose(
        reg.forward(X).numpy().ravel() * reg.target_scale_ + reg.target_mean_, reg.predict(X),
        rtol=1e-5)


def test_a_torch_dataset_as_x_is_refused_naming_what_to_pass_and_the_fit_kept():
    """skorch's nets take a Dataset as X; these take the subjects' series: a Dataset's items
    had been read as a subject's parts ("a sequence of parts of different shapes")."""
    from skorch.dataset import Dataset

    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    before = clf.predict_proba(X)
    for call in (lambda: clf.fit(Dataset(X, y), y), lambda: clf.predict(Dataset(X))):
        with pytest.raises(ValueError, match=r"got a Dataset, a torch Dataset as skorch's nets "
                                             r"take.*\[dataset\[i\]\[0\] for i in range"):
            call()
    np.testing.assert_array_equal(clf.predict_proba(X), before)


# -- the recipe --------------------------------------------------------------------------------

def test_layer_decay_groups_scale_each_layer_and_spare_biases_and_norms_from_decay():
    model = EncoderWithHead(tiny_module(depth=2).target_encoder.requires_grad_(True), 3)
    groups = layer_decay_groups(model, weight_decay=0.05, layer_decay=0.5)
    scale_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    decay_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    for name, param in model.named_parameters():
        if name.startswith(("encoder.patch_embed", "encoder.pos_embed")):
            expected = 0.5**3
        elif name.startswith("encoder.blocks.0."):
            expected = 0.5**2
        elif name.startswith("encoder.blocks.1."):
            expected = 0.5
        else:  # final norm and head
            expected = 1.0
        assert scale_of[id(param)] == expected, name
        assert decay_of[id(param)] == (0.0 if param.ndim == 1 else 0.05), name
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    # a loop that sets its schedule's values keeps each group's scale and decay
    optimizer = torch.optim.AdamW(groups)
    set_hyperparameters(optimizer, lr=1e-3, weight_decay=0.3)
    for group in optimizer.param_groups:
        assert group["lr"] == pytest.approx(1e-3 * group["lr_scale"])
        assert group["weight_decay"] == (0.0 if group.get("no_weight_decay") else 0.3)
    model.encoder.requires_grad_(False)
    frozen = layer_decay_groups(model, weight_decay=0.05, layer_decay=0.5)
    assert {id(p) for g in frozen for p in g["params"]} == {id(p)
                                                            for p in model.head.parameters()}


def test_the_learning_rate_warms_up_then_follows_a_cosine_per_batch_times_each_layers_scale():
    recorder = Recorder()
    X, y = offset_subjects(np.zeros(12)), np.tile([0, 1], 6)
    clf = BrainJEPAClassifier(
        tiny_module(), normalization=None, lr=1e-3, min_lr=1e-5, max_epochs=4, warmup_epochs=1,
        batch_size=4, layer_decay=0.5, verbose=0, random_state=0, callbacks=[recorder],
    ).fit(X, y)
    steps = 4 * 3  # 12 windows, batches of 4
    assert len(recorder.lrs_) == steps
    for step, (lrs, scales) in enumerate(zip(recorder.lrs_, recorder.lr_scales_)):
        expected = warmup_cosine(step, steps - 1, 3, 0.0, 1e-3, 1e-5)
        np.testing.assert_allclose(lrs, np.multiply(expected, scales), rtol=1e-12)
    assert sorted(set(recorder.lr_scales_[0])) == [0.25, 0.5, 1.0]  # embeddings, block, head
    assert recorder.lrs_[3][-1] == pytest.approx(1e-3)  # the end of the warm-up: the peak
    assert clf.history_[-1]["lr"] == pytest.approx(1e-5)  # min_lr at the last batch


def test_stochastic_depth_is_set_on_the_fine_tuned_encoder():
    clf = BrainJEPAClassifier(tiny_module(depth=3), **fast(max_epochs=1,
                                                                 drop_path_rate=0.2)).fit(offset_subjects(np.zeros(4)), [0, 1] * 2)
    assert [block.drop_path.p for block in clf.module_.encoder.blocks] == pytest.approx(
        [0.0, 0.1, 0.2])
    with pytest.raises(ValueError, match="drop_path_rate"):
        clf.module_.encoder.set_drop_path_rate(1.0)


def test_the_linear_probe_trains_only_a_batchnorm_linear_head():
    module = tiny_module()
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    probe = BrainJEPAClassifier(module, **FAST, freeze_encoder=True).fit(X, y)
    head = probe.module_.head
    assert isinstance(head.norm, torch.nn.BatchNorm1d) and not head.norm.affine
    assert_same_module_weights(probe.module_.encoder, module.target_encoder)
    assert not any(p.requires_grad for p in probe.module_.encoder.parameters())
    assert all(block.drop_path.p == 0 for block in probe.module_.encoder.blocks)
    assert not probe.module_.encoder.training
    tuned = BrainJEPAClassifier(module, **FAST).fit(X, y)
    assert isinstance(tuned.module_.head.norm, torch.nn.LayerNorm)
    changed = [not torch.equal(a, b) for a, b in zip(tuned.module_.encoder.parameters(),
                                                       module.target_encoder.parameters())]
    assert all(changed)


def test_the_linear_probe_gets_no_stochastic_depth_whatever_drop_path_rate():
    """drop_path_rate is the fine-tuned encoder's: the probe's frozen encoder keeps none, so
    that its features are the frozen model's, as the user guide says, in any mode."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    probe = BrainJEPAClassifier(tiny_module(depth=3), **fast(max_epochs=1, drop_path_rate=0.3),
                                freeze_encoder=True).fit(X, y)
    assert [block.drop_path.p for block in probe.module_.encoder.blocks] == [0.0] * 3
    tuned = BrainJEPAClassifier(tiny_module(depth=3),
                                **fast(max_epochs=1, drop_path_rate=0.3)).fit(X, y)
    assert [block.drop_path.p for block in tuned.module_.encoder.blocks] == pytest.approx(
        [0.0, 0.15, 0.3])


def test_the_fine_tuning_heads_layernorm_learns_its_scale_and_shift_at_the_full_rate():
    """The head's LayerNorm has affine parameters (the research fine-tuning head's): they are
    trained, in the head's layer (lr_scale 1) and without weight decay."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, layer_decay=0.5)).fit(X, y)
    norm = clf.module_.head.norm
    group_of = {id(p): g for g in clf.optimizer_.param_groups for p in g["params"]}
    for param, initial in ((norm.weight, 1.0), (norm.bias, 0.0)):
        group = group_of[id(param)]
        assert group["lr_scale"] == 1.0 and group["weight_decay"] == 0.0
        assert not torch.allclose(param, torch.full_like(param, initial))  # it learned


def assert_same_module_weights(module, reference):
    for (name, p), q in zip(module.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(p, q), name


def test_class_weights_and_label_smoothing_reach_the_loss():
    X, y = offset_subjects(np.zeros(8)), np.array([0, 0, 0, 0, 0, 0, 1, 1])
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), class_weight="balanced",
                              criterion__label_smoothing=0.1).fit(X, y)
    np.testing.assert_allclose(clf.criterion_.weight.numpy(),
                               compute_class_weight("balanced", classes=np.array([0, 1]), y=y))
    assert clf.criterion_.label_smoothing == 0.1
    clf.set_params(class_weight={1: 5.0}).fit(X, y)
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), [1.0, 5.0])
    assert clf.get_params()["criterion__label_smoothing"] == 0.1


def test_the_linear_probe_of_a_trainable_encoder_optimizes_the_head_only():
    """An encoder given trainable (a context encoder) is frozen by the probe: its parameters
    get no gradient and are not in the optimizer's groups (nor their weight decay)."""
    module = tiny_module()
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    probe = BrainJEPAClassifier(module.encoder, n_frames=8, **fast(max_epochs=1),
                                freeze_encoder=True).fit(X, y)
    assert not any(p.requires_grad for p in probe.module_.encoder.parameters())
    optimized = {id(p) for group in probe.optimizer_.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in probe.module_.head.parameters()}
    assert all(p.requires_grad for p in module.encoder.parameters())  # the caller's, as it was


def test_class_weights_follow_the_order_of_the_classes():
    X, y = offset_subjects(np.zeros(6)), np.array(["a", "b", "b", "b", "a", "b"])
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), classes=["b", "a"],
                              class_weight={"b": 3.0})
    with pytest.warns(UserWarning, match="is not sorted"):
        clf.fit(X, y)
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), [3.0, 1.0])
    with pytest.warns(UserWarning, match="is not sorted"):
        clf.set_params(class_weight="balanced").fit(X, y)
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), [6 / (2 * 4), 6 / (2 * 2)])


def test_balanced_class_weights_leave_classes_absent_from_the_fit_at_one():
    """A class named in classes but without windows in this fit weighs 1 (its weight still
    enters the label-smoothing term of the loss)."""
    X = offset_subjects(np.zeros(8))
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), class_weight="balanced",
                              criterion__label_smoothing=0.1)
    clf.partial_fit(X, [0] * 6 + [1] * 2, classes=[0, 1, 2])
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), [8 / (2 * 6), 8 / (2 * 2), 1.0])


def test_balanced_class_weights_go_to_the_present_classes_wherever_they_sit_in_classes():
    """A class of classes_ without windows between two that have some (a fold without any
    "b"): each present class gets its own balanced weight, the absent one 1."""
    X = offset_subjects(np.zeros(8))
    y = np.array(["a"] * 6 + ["c"] * 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), classes=["a", "b", "c"],
                              class_weight="balanced").fit(X, y)
    np.testing.assert_array_equal(clf.classes_, ["a", "b", "c"])
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), [8 / (2 * 6), 1.0, 8 / (2 * 2)])


def test_a_criterion_weight_given_is_kept_over_class_weight():
    X, y = offset_subjects(np.zeros(8)), np.array([0] * 6 + [1] * 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), class_weight="balanced",
                              criterion__weight=torch.tensor([1.0, 4.0])).fit(X, y)
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), [1.0, 4.0])


def test_a_criterion_weight_of_none_leaves_the_loss_to_class_weight():
    """criterion__weight=None (torch's default, and the only way set_params has to take back
    a weight given) counted as a weight given over class_weight: the loss was unweighted,
    silently."""
    X, y = offset_subjects(np.zeros(8)), np.array([0] * 6 + [1] * 2)
    balanced = [8 / (2 * 6), 8 / (2 * 2)]
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), class_weight="balanced",
                              criterion__weight=None).fit(X, y)
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), balanced)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), criterion__weight=[1, 4])
    clf.fit(X, y).set_params(criterion__weight=None, class_weight="balanced").fit(X, y)
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), balanced)
    assert clf.get_params()["criterion__weight"] is None


def test_a_criterion_setting_on_a_fitted_model_keeps_the_optimizer_moments():
    """skorch builds the optimizer anew after set_params(criterion__weight=...), for a loss
    with parameters of its own: a continued fit then lost Adam's moments, which the same
    weight given as class_weight kept."""
    X, y = offset_subjects(np.zeros(8)), np.array([0] * 6 + [1] * 2)
    first = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    by_criterion, by_class_weight = copy.deepcopy(first), copy.deepcopy(first)
    optimizer = by_criterion.optimizer_
    by_criterion.set_params(criterion__weight=torch.tensor([1.0, 4.0])).partial_fit(X, y)
    assert by_criterion.optimizer_ is optimizer
    by_class_weight.set_params(class_weight={1: 4.0}).partial_fit(X, y)
    np.testing.assert_array_equal(by_criterion.criterion_.weight, [1.0, 4.0])
    assert_same_module_weights(by_criterion.module_, by_class_weight.module_)


class ScaledLoss(torch.nn.CrossEntropyLoss):
    """A loss with a parameter to train, which the optimizer must hold."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.log_scale = torch.nn.Parameter(torch.zeros(()))

    def forward(self, logits, target):
        return super().forward(logits * self.log_scale.exp(), target)


@pytest.mark.parametrize("when", ["fit", "set_params", "continued_fit"])
def test_a_loss_with_parameters_to_train_is_refused(when):
    """The optimizer trains the model's layer-wise groups: a loss's own parameters were never
    trained, silently. A continued fit builds the loss again (for the class weights), without
    initialize: one set as an attribute on the fitted net had been trained with."""
    X, y = offset_subjects(np.zeros(8)), np.array([0] * 6 + [1] * 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1))
    if when != "fit":
        clf.fit(X, y)
    if when == "continued_fit":
        clf.criterion = ScaledLoss
        epochs = len(clf.history)
    before = pickle.dumps(clf)
    with pytest.raises(ValueError, match=r"^criterion=<class '.*ScaledLoss'> has parameters to "
                                         r"train \(log_scale\): the fine-tuners train the "):
        if when == "fit":
            clf.set_params(criterion=ScaledLoss).fit(X, y)
        elif when == "set_params":
            clf.set_params(criterion=ScaledLoss)
        else:
            clf.partial_fit(X, y)
    if when == "set_params":
        assert pickle.dumps(clf) == before
    elif when == "continued_fit":  # refused before its first epoch, the fitted loss kept
        assert type(clf.criterion_) is torch.nn.CrossEntropyLoss
        assert len(clf.history) == epochs


def test_a_loss_instance_keeps_its_own_settings_with_class_weight():
    """class_weight gave skorch the loss's weight as an argument, and skorch builds a new
    loss of an instance's class from the arguments given alone: the instance's
    label_smoothing and ignore_index were dropped silently. The loss is the instance's copy,
    weighted; the instance given is left as it was."""
    X, y = offset_subjects(np.zeros(8)), np.array([0] * 6 + [1] * 2)
    given = torch.nn.CrossEntropyLoss(label_smoothing=0.3, ignore_index=7)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), criterion=given,
                              class_weight="balanced").fit(X, y)
    loss = clf.criterion_
    assert (loss.label_smoothing, loss.ignore_index) == (0.3, 7)
    np.testing.assert_allclose(loss.weight.numpy(), [8 / (2 * 6), 8 / (2 * 2)])
    assert loss is not given and given.weight is None
    clf.set_params(class_weight={1: 5.0}).fit(X, y)
    assert clf.criterion_.label_smoothing == 0.3
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), [1.0, 5.0])


@pytest.mark.parametrize("criterion", [torch.nn.NLLLoss, torch.nn.NLLLoss(),
                                       functools.partial(torch.nn.NLLLoss, reduction="sum")])
def test_an_nllloss_criterion_is_refused_before_a_fit_naming_it(criterion):
    """skorch's classifier takes the log of the outputs for an NLLLoss: on the head's logits
    the loss was NaN, and the fit stopped as a diverging one, "lower lr". A fitted estimator
    is left as it was."""
    X, y = offset_subjects(np.zeros(8)), np.array([0, 1] * 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    before = copy.deepcopy(clf.module_)
    with pytest.raises(ValueError, match=r"criterion=NLLLoss takes probabilities.*"
                                         r"CrossEntropyLoss"):
        clf.set_params(criterion=criterion).fit(X, y)
    assert_same_module(clf.module_, before)


@pytest.mark.parametrize("criterion", [torch.nn.BCEWithLogitsLoss, torch.nn.BCELoss(),
                                       functools.partial(torch.nn.BCEWithLogitsLoss)])
def test_a_binary_cross_entropy_criterion_is_refused_naming_crossentropyloss(criterion):
    """BCEWithLogitsLoss, the usual binary loss, had failed inside torch on the shapes (two
    logits against one class index per window)."""
    X, y = offset_subjects(np.zeros(8)), np.array([0, 1] * 4)
    name = "BCELoss" if isinstance(criterion, torch.nn.BCELoss) else "BCEWithLogitsLoss"
    with pytest.raises(ValueError, match=rf"criterion={name} takes one output per target, but "
                                         r"BrainJEPAClassifier's module gives one logit per "
                                         r"class.*CrossEntropyLoss"):
        BrainJEPAClassifier(tiny_module(), criterion=criterion, **fast(max_epochs=1)).fit(X, y)


@pytest.mark.parametrize("estimator", [BrainJEPAClassifier, BrainJEPARegressor])
def test_an_optimizer_or_criterion_given_by_name_is_refused_before_a_fit_naming_a_class(
        estimator):
    """optimizer="adam" (as MLPClassifier's solver) and criterion="cross_entropy" failed once
    the preprocessing and the model were built, with Python's "'str' object is not
    callable"."""
    X, y = offset_subjects(np.zeros(8)), np.array([0, 1] * 4)
    with pytest.raises(ValueError, match=r"optimizer='adam' is not an optimizer class.*"
                                         r"torch\.optim\.Adam"):
        estimator(tiny_module(), optimizer="adam", **fast(max_epochs=1)).fit(X, y)
    example = "CrossEntropyLoss" if estimator is BrainJEPAClassifier else "HuberLoss"
    with pytest.raises(ValueError, match=rf"criterion='mse' is not a loss.*torch\.nn\.{example}"):
        estimator(tiny_module(), criterion="mse", **fast(max_epochs=1)).fit(X, y)
    built = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"an optimizer already built.*optimizer=torch\.optim\.SGD"):
        estimator(tiny_module(), optimizer=built, **fast(max_epochs=1)).fit(X, y)


def test_an_optimizer_setting_the_optimizer_does_not_take_is_refused_before_a_fit():
    """optimizer__momentum with the default AdamW failed in torch once the preprocessing and
    the model were built ("AdamW.__init__() got an unexpected keyword argument 'momentum'")."""
    X, y = offset_subjects(np.zeros(8)), np.array([0, 1] * 4)
    clf = BrainJEPAClassifier(tiny_module(), optimizer__momentum=0.9, **fast(max_epochs=1))
    with pytest.raises(TypeError, match=r"^optimizer__momentum: AdamW takes no such argument "
                                        r"\(it takes lr, betas, .*\); drop it, or set the "
                                        r"optimizer it belongs to \(optimizer=torch\.optim\.SGD "
                                        r"for optimizer__momentum\)"):
        clf.fit(X, y)
    assert not hasattr(clf, "module_")  # refused before anything was built
    partial = functools.partial(torch.optim.SGD, nesterov=False)
    with pytest.raises(TypeError, match=r"^optimizer__betas: SGD takes no such argument"):
        clf.set_params(optimizer=partial, optimizer__betas=(0.9, 0.9)).fit(X, y)
    sgd = BrainJEPAClassifier(tiny_module(), optimizer=torch.optim.SGD, optimizer__momentum=0.9,
                              **fast(max_epochs=1))
    assert sgd.fit(X, y).optimizer_.defaults["momentum"] == 0.9


@pytest.mark.parametrize("settings, message", [
    (dict(optimizer__betas=3), r"^optimizer__betas: AdamW refuses it: 'int' object is not "
                               r"subscriptable$"),
    (dict(optimizer__betas=(2.0, 0.9), optimizer__eps=1e-6),
     r"^optimizer__betas, optimizer__eps: AdamW refuses them: Invalid beta parameter"),
    (dict(optimizer=torch.optim.SGD, optimizer__momentum=-1),
     r"^optimizer__momentum: SGD refuses it: Invalid momentum value: -1"),
    (dict(optimizer=functools.partial(torch.optim.SGD, nesterov=True)),
     r"^optimizer=functools.partial\(.*SGD.*nesterov=True\): SGD refuses it: Nesterov"),
])
def test_optimizer_settings_torch_refuses_are_refused_before_the_model_is_built(settings,
                                                                                 message):
    """torch checks the values only when it builds the optimizer, once the preprocessing and
    the model were built: "'int' object is not subscriptable", not naming optimizer__betas."""
    X, y = offset_subjects(np.zeros(8)), np.array([0, 1] * 4)
    clf = BrainJEPAClassifier(tiny_module(), **settings, **fast(max_epochs=1))
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y)
    assert not clf.initialized_ and not hasattr(clf, "preprocessor_")


def test_an_optimizer_by_name_set_on_a_fitted_net_is_refused_leaving_it_as_it_was():
    X, y = offset_subjects(np.zeros(8)), np.array([0, 1] * 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    adamw = clf.optimizer_
    with pytest.raises(ValueError, match=r"optimizer='sgd' is not an optimizer class"):
        clf.set_params(optimizer="sgd")
    assert clf.optimizer is torch.optim.AdamW and clf.optimizer_ is adamw


@pytest.mark.parametrize("estimator, settings, message", [
    (BrainJEPAClassifier, dict(criterion__wieght=torch.ones(2)),
     r"^criterion__wieght: CrossEntropyLoss takes no such argument \(it takes weight, .*"
     r"label_smoothing\); drop it"),
    (BrainJEPARegressor, dict(criterion__delta=2.0),
     r"^criterion__delta: MSELoss takes no such argument \(it takes size_average, reduce, "
     r"reduction\)"),
])
def test_a_criterion_setting_the_loss_does_not_take_is_refused_before_anything_is_built(
        estimator, settings, message):
    """torch refused it once the preprocessing and the model were built ("__init__() got an
    unexpected keyword argument 'wieght'", not naming criterion__wieght)."""
    X, y = offset_subjects(np.zeros(8)), np.array([0, 1] * 4)
    net = estimator(tiny_module(), **settings, **fast(max_epochs=1))
    with pytest.raises(TypeError, match=message):
        net.fit(X, y)
    assert not net.initialized_ and not hasattr(net, "preprocessor_")


def test_a_criterion_setting_of_the_loss_given_is_taken():
    X, y = offset_subjects(np.zeros(8)), np.linspace(0, 1, 8)
    reg = BrainJEPARegressor(tiny_module(), criterion=torch.nn.HuberLoss, criterion__delta=2.0,
                             **fast(max_epochs=1)).fit(X, y)
    assert reg.criterion_.delta == 2.0


@pytest.mark.parametrize("loader", ["iterator_train", "iterator_valid"])
def test_a_data_loader_that_is_no_class_is_refused_before_anything_is_built(loader):
    """skorch called it once the preprocessing and the model were built: "'str' object is
    not callable"."""
    X, y = offset_subjects(np.zeros(8)), np.array([0, 1] * 4)
    clf = BrainJEPAClassifier(tiny_module(), **{loader: "DataLoader"}, **fast(max_epochs=1))
    with pytest.raises(ValueError, match=rf"^{loader}='DataLoader' is not a data loader class: "
                                         r"pass torch.utils.data.DataLoader"):
        clf.fit(X, y)
    assert not clf.initialized_ and not hasattr(clf, "preprocessor_")


@pytest.mark.parametrize("nonlinearity", ["softmax", 3])
def test_a_predict_nonlinearity_that_is_no_function_is_refused_before_training(nonlinearity):
    """skorch refused it only at the first predict ("predict_nonlinearity has to be a
    callable, 'auto' or None"), once the fit had trained."""
    X, y = offset_subjects(np.zeros(8)), np.array([0, 1] * 4)
    clf = BrainJEPAClassifier(tiny_module(), predict_nonlinearity=nonlinearity,
                              **fast(max_epochs=1))
    with pytest.raises(ValueError, match=rf"^predict_nonlinearity={nonlinearity!r} must be "
                                         r"'auto' \(the default\), None .* or a callable"):
        clf.fit(X, y)
    assert not clf.initialized_
    clf.set_params(predict_nonlinearity=functools.partial(torch.softmax, dim=-1)).fit(X, y)
    assert clf.predict_proba(X).sum(axis=1) == pytest.approx(1, rel=1e-5)


def test_one_callback_not_in_a_list_is_told_to_be_put_in_one():
    """skorch failed with "can only concatenate list (not "EarlyStopping") to list"."""
    X, y = offset_subjects(np.zeros(8)), np.array([0, 1] * 4)
    with pytest.raises(ValueError, match=r"callbacks=.*EarlyStopping.* is not a list.*"
                                         r"callbacks=\[EarlyStopping\(\.\.\.\)\]"):
        BrainJEPAClassifier(tiny_module(), callbacks=EarlyStopping(monitor="train_loss"),
                            **fast(max_epochs=1)).fit(X, y)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    with pytest.raises(ValueError, match="is not a list"):
        clf.set_params(callbacks=EarlyStopping(monitor="train_loss"))
    assert clf.callbacks is None
    clf.set_params(callbacks=[EarlyStopping(monitor="train_loss")]).fit(X, y)  # a list works
    clf.set_params(callbacks=()).fit(X, y)  # and an empty tuple, as skorch takes it
    with pytest.raises(ValueError, match="is not a list"):
        clf.set_params(callbacks=(EarlyStopping(monitor="train_loss"),))


@pytest.mark.parametrize("entry, refused", [
    (3, r"callbacks\[1\] holds an int \(3\), which is not a callback"),
    (("stop", "early"), r"callbacks\[1\] holds a str \('early'\), which is not a callback"),
    (("stop", EarlyStopping(), 3), r"callbacks\[1\]=\('stop', .*\) is not a \(name, callback\) "
                                   r"pair"),
])
def test_a_callbacks_list_holding_no_callback_is_refused_naming_the_entry(entry, refused):
    """skorch failed once the model was built: "'int' object has no attribute 'set_params'"
    (and "too many values to unpack" for a triple); set_params keeps the list it had."""
    X, y = offset_subjects(np.zeros(8)), np.array([0, 1] * 4)
    callbacks = [EarlyStopping(monitor="train_loss"), entry]
    clf = BrainJEPAClassifier(tiny_module(), callbacks=callbacks, **fast(max_epochs=1))
    with pytest.raises(ValueError, match=refused):
        clf.fit(X, y)
    assert not clf.initialized_
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    with pytest.raises(ValueError, match=refused):
        clf.set_params(callbacks=callbacks)
    assert clf.callbacks is None
    # a callback class, and a pair of a name and None, are skorch's to take
    clf.set_params(callbacks=[("record", Recorder), ("off", None)]).fit(X, y)
    assert "record" in dict(clf.callbacks_) and "off" not in dict(clf.callbacks_)


@pytest.mark.parametrize("fitted", [False, True])
@pytest.mark.parametrize("setting, refused", [
    (dict(callbacks__print_log=1), r"^callbacks__print_log=1 is not a callback: give a skorch "
                                   r"callback .* or callbacks__print_log=None to turn it off"),
    (dict(callbacks__train_loss="loss"), r"^callbacks__train_loss='loss' is not a callback"),
    (dict(callbacks__print_log__colour=1),
     r"^callbacks__print_log__colour: the callback 'print_log' \(PrintLog\) has no parameter "
     r"'colour'; its parameters are floatfmt, keys_ignored, sink, stralign, tablefmt$"),
    (dict(callbacks__print_log__sink__level=1),
     r"^callbacks__print_log__sink__level sets the parameter 'level' of the sink of the "
     r"callback 'print_log' \(PrintLog\), but that sink is a builtin_function_or_method, which "
     r"has no parameters: set callbacks__print_log__sink itself$"),
    (dict(callbacks__stop=EarlyStopping, callbacks__stop__patiense=2),
     r"^callbacks__stop__patiense: the callback 'stop' \(EarlyStopping\) has no parameter "
     r"'patiense'"),
])
def test_a_callback_setting_no_callback_takes_is_refused_naming_it(fitted, setting, refused):
    """skorch failed with "'int' object has no attribute 'set_params'" (a value that is no
    callback), scikit-learn's "Invalid parameter 'colour' for estimator <PrintLog object at
    0x...>" and "too many values to unpack": refused naming the setting, by set_params (the
    settings given with it not kept) and, given to the constructor, by fit before training."""
    X, y = offset_subjects(np.zeros(8)), np.array([0, 1] * 4)
    stop = [("stop", EarlyStopping(monitor="train_loss"))]
    clf = BrainJEPAClassifier(tiny_module(), callbacks=stop, **fast(max_epochs=1))
    if fitted:
        clf.fit(X, y)
    params, attributes = clf.get_params(), dict(vars(clf))
    names = set(clf._params_to_validate)
    with pytest.raises(ValueError, match=refused):
        clf.set_params(max_epochs=3, **setting)
    assert clf.max_epochs == 1 and clf._params_to_validate == names
    assert vars(clf).keys() == attributes.keys()
    assert clf.get_params().keys() == params.keys()
    given = BrainJEPAClassifier(tiny_module(), callbacks=stop, **fast(max_epochs=1), **setting)
    # get_params reports them (it had failed for a callback without get_params)
    assert all(given.get_params()[key] is value for key, value in setting.items())
    with pytest.raises(ValueError, match=refused):
        given.fit(X, y)
    assert not given.initialized_


class _Sink(BaseEstimator):
    """A print log's sink with a parameter of its own."""

    def __init__(self, prefix=""):
        self.prefix = prefix

    def __call__(self, text):
        self.lines_ = [*getattr(self, "lines_", []), self.prefix + text]


@pytest.mark.parametrize("fitted", [False, True])
def test_set_params_sets_a_parameter_of_an_estimator_a_callback_holds(fitted):
    """callbacks__<name>__<parameter>__<setting>, taken from the constructor, failed in
    set_params with skorch's "too many values to unpack"; a parameter the estimator has not
    is refused, leaving the net as it was."""
    X, y = offset_subjects(np.zeros(8)), np.array([0, 1] * 4)
    sink = _Sink()
    clf = BrainJEPAClassifier(tiny_module(), callbacks__print_log__sink=sink,
                              **fast(max_epochs=1, verbose=1))
    if fitted:
        clf.fit(X, y)
    clf.set_params(callbacks__print_log__sink__prefix="> ")
    assert clf.get_params()["callbacks__print_log__sink__prefix"] == "> "
    clf.fit(X, y)
    assert sink.lines_[-1].startswith("> ")
    names = set(clf._params_to_validate)
    with pytest.raises(ValueError, match="Invalid parameter 'suffix' for estimator _Sink"):
        clf.set_params(callbacks__print_log__sink__suffix="!")
    assert "callbacks__print_log__sink__suffix" not in vars(clf)
    assert clf._params_to_validate == names
    clf.fit(X, y)


@pytest.mark.parametrize("criterion", [torch.nn.MSELoss, torch.nn.L1Loss(),
                                       functools.partial(torch.nn.HuberLoss, delta=2.0)])
def test_a_regression_loss_is_refused_by_the_classifier_naming_the_regressor(criterion):
    """torch failed once the model was built, on the shapes ("The size of tensor a (2) must
    match the size of tensor b (8)")."""
    X, y = offset_subjects(np.zeros(8)), np.array([0, 1] * 4)
    with pytest.raises(ValueError, match=r"criterion=\w+Loss is a regression loss, but "
                                         r"BrainJEPAClassifier predicts classes.*"
                                         r"CrossEntropyLoss.*BrainJEPARegressor"):
        BrainJEPAClassifier(tiny_module(), criterion=criterion, **fast(max_epochs=1)).fit(X, y)


@pytest.mark.parametrize("criterion", [torch.nn.CrossEntropyLoss, torch.nn.NLLLoss(),
                                       torch.nn.BCEWithLogitsLoss, torch.nn.BCELoss])
def test_a_loss_of_classes_is_refused_by_the_regressor_naming_the_classifier(criterion):
    """A CrossEntropyLoss over the one output per target is 0 whatever the model does: the fit
    trained nothing, silently. With a BCE loss, skorch's predict gave two columns per output
    and failed after the whole fit ("array is not broadcastable to correct shape")."""
    X, y = offset_subjects(np.zeros(8)), np.array([0.0, 1.0] * 4)
    with pytest.raises(ValueError, match=r"criterion=\w+Loss is a loss of classes, but "
                                         r"BrainJEPARegressor's module gives one output per "
                                         r"target.*BrainJEPAClassifier"):
        BrainJEPARegressor(tiny_module(), criterion=criterion, standardize_targets=False,
                           **fast(max_epochs=1)).fit(X, y)
    # regression losses train
    reg = BrainJEPARegressor(tiny_module(), criterion=torch.nn.HuberLoss, **fast(max_epochs=1))
    assert reg.fit(X, y).history_[-1, "train_loss"] > 0


def test_a_refit_without_class_weight_drops_the_weights_of_the_previous_fit():
    """class_weight=None set after a weighted fit: the next fit's loss is unweighted, as a new
    estimator's would be."""
    X, y = offset_subjects(np.zeros(8)), np.array([0] * 6 + [1] * 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), class_weight="balanced")
    assert clf.fit(X, y).criterion_.weight is not None
    assert clf.set_params(class_weight=None).fit(X, y).criterion_.weight is None
    new = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), new.predict_proba(X))


class _LossWithoutWeight(torch.nn.Module):
    """Cross-entropy that takes no class weights (no ``weight`` argument)."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, logits, target):
        return torch.nn.functional.cross_entropy(logits, target, reduction=self.reduction)


def test_a_loss_without_weights_set_with_class_weight_none_after_a_weighted_fit():
    """set_params(class_weight=None, criterion=<a loss taking no weight>) on a net fitted with
    class weights: skorch builds the new loss at once, and it was given the previous fit's
    weights (PlainLoss.__init__() got an unexpected keyword argument 'weight')."""
    X, y = offset_subjects(np.zeros(8)), np.array([0] * 6 + [1] * 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), class_weight="balanced")
    clf.fit(X, y)
    clf.set_params(class_weight=None, criterion=_LossWithoutWeight)
    assert isinstance(clf.criterion_, _LossWithoutWeight)
    assert "weight" not in clf.get_params_for("criterion")
    clf.fit(X, y)
    assert isinstance(clf.criterion_, _LossWithoutWeight)

# -- skorch and scikit-learn -------------------------------------------------------------------


def test_skorch_prefixed_parameters_work_in_get_params_set_params_and_grid_search():
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                              optimizer__betas=(0.8, 0.95))
    assert clf.get_params()["optimizer__betas"] == (0.8, 0.95)
    clf.set_params(optimizer__eps=1e-6, max_epochs=2).fit(X, y)
    defaults = clf.optimizer_.defaults
    assert defaults["betas"] == (0.8, 0.95) and defaults["eps"] == 1e-6
    assert len(clf.history_) == 2
    assert clone(clf).get_params()["optimizer__eps"] == 1e-6
    search = GridSearchCV(clf, {"lr": [1e-3, 1e-2], "max_epochs": [1, 2]}, cv=2).fit(X, y)
    assert set(search.best_params_) == {"lr", "max_epochs"}
    scores = cross_val_score(BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)), X,
                             y.astype(float), cv=2)
    assert scores.shape == (2,) and np.isfinite(scores).all()


@pytest.mark.parametrize("estimator", [BrainJEPAClassifier, BrainJEPARegressor])
def test_the_repr_shows_the_parameters_set_as_scikit_learn_does(estimator):
    """repr names the parameters set away from their defaults, ours, skorch's and prefixed
    ones alike, fitted or not (skorch's repr named none before fit and listed every layer
    after; scikit-learn's printer took every parameter passed through **kwargs as set)."""
    assert repr(estimator()) == f"{estimator.__name__}()"
    net = estimator("model.pt", max_epochs=3, optimizer__betas=(0.8, 0.95), pooling="roi",
                    device="cpu", lr=6.25e-5)
    assert " ".join(repr(net).split()) == (
        f"{estimator.__name__}(max_epochs=3, optimizer__betas=(0.8, 0.95), pooling='roi', "
        "weights='model.pt')")
    # fitted: the same repr, not the module's layers
    net = estimator(tiny_module(), **fast(max_epochs=1))
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    unfitted = repr(net)
    assert repr(net.fit(X, y.astype(float) if estimator is BrainJEPARegressor else y)) \
        == unfitted
    pipeline = repr(make_pipeline(StandardScaler(), estimator(max_epochs=3)))
    assert f"{estimator.__name__.lower()}', {estimator.__name__}(max_epochs=3))" in pipeline


def test_the_constructors_signature_lists_every_parameter_with_its_default():
    """Each parameter (ours and skorch's, passed on through **kwargs) is in the signature with
    the value a default net holds: scikit-learn tells set parameters from it."""
    for estimator in (BrainJEPAClassifier, BrainJEPARegressor):
        signature = inspect.signature(estimator).parameters
        params = estimator().get_params(deep=False)
        assert set(params) <= set(signature)
        for name, value in params.items():
            assert repr(signature[name].default) == repr(value), name
        assert list(signature)[:2] == ["weights", "criterion"]
        assert signature["kwargs"].kind is inspect.Parameter.VAR_KEYWORD
    assert inspect.signature(BrainJEPAClassifier).parameters["train_split"].default is None
    assert "module" not in inspect.signature(BrainJEPAClassifier).parameters


def test_the_subject_splits_parameters_are_set_and_searched_as_train_split__():
    """set_params(train_split__fraction=...) and a grid search over it set the split's fraction
    (skorch had stored train_split__fraction on the net, and fit refused it as an unexpected
    argument); each fit of the search changes its own copy of the split."""
    held_out = []

    class HeldOut(Callback):
        def on_epoch_begin(self, net, dataset_valid=None, **kwargs):
            held_out.append((net.train_split.fraction, len(dataset_valid)))

    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    split = SubjectValidSplit(0.25, stratified=True, random_state=0)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), train_split=split,
                              callbacks=[HeldOut()])
    assert clf.get_params()["train_split__fraction"] == 0.25
    search = GridSearchCV(clf, {"train_split__fraction": [1 / 3, 0.5]}, cv=2).fit(X, y)
    assert list(search.cv_results_["param_train_split__fraction"]) == [1 / 3, 0.5]
    # 6 training subjects a fold: 2 or 3 held out; the refit on 12 holds out 4 or 6
    assert held_out[:4] == [(1 / 3, 2), (1 / 3, 2), (0.5, 3), (0.5, 3)]
    fraction = search.best_params_["train_split__fraction"]
    assert held_out[4:] == [(fraction, 12 * fraction)]
    assert clf.train_split is split and split.fraction == 0.25
    assert search.best_estimator_.train_split is not split
    held_out.clear()
    clf.set_params(train_split__fraction=0.5, max_epochs=1).fit(X, y)
    assert split.fraction == 0.5 and held_out == [(0.5, 6)]
    assert clone(clf).train_split is not split
    assert clone(clf).get_params()["train_split__fraction"] == 0.5


def test_a_train_split__parameter_the_split_lacks_is_refused_by_name():
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                              train_split=SubjectValidSplit(0.25))
    with pytest.raises(ValueError, match=r"^SubjectValidSplit has no parameter\(s\) 'fractoin' "
                                         r"\(given fractoin=0.5\); its parameters are fraction, "
                                         "stratified, random_state$"):
        clf.set_params(lr=0.5, train_split__fractoin=0.5)
    assert clf.lr == FAST["lr"] and clf.train_split.fraction == 0.25  # nothing set
    clf.set_params(train_split=None)
    with pytest.raises(ValueError, match=r"^train_split__fraction: train_split=None has no "
                                         "parameters to set; pass .*SubjectValidSplit"):
        clf.set_params(train_split__fraction=0.5)


def test_a_subclassed_split_is_cloned_with_its_own_settings():
    """clone copies the split, as it did before the split had get_params: a subclass's
    constructor need not take fraction, stratified and random_state."""

    class SiteOut(SubjectValidSplit):
        def __init__(self, site):
            super().__init__(0.5, random_state=0)
            self.site = site

    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), train_split=SiteOut("a"))
    copied = clone(clf).train_split
    assert type(copied) is SiteOut and copied is not clf.train_split
    assert (copied.site, copied.fraction, copied.random_state) == ("a", 0.5, 0)
    assert repr(copied) == "SubjectValidSplit(fraction=0.5, stratified=False, random_state=0)"
    unpickled = pickle.loads(pickle.dumps(SubjectValidSplit(0.3, random_state=1)))
    assert unpickled.get_params() == {"fraction": 0.3, "stratified": False, "random_state": 1}


def test_the_same_seed_gives_the_same_predictions_and_leaves_the_global_generator_alone():
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    settings = dict(FAST, max_epochs=2, drop_path_rate=0.3)
    before = torch.get_rng_state()
    first = BrainJEPAClassifier(tiny_module(), **settings).fit(X, y).predict_proba(X)
    assert torch.equal(torch.get_rng_state(), before)  # neither fit nor predict draws from it
    again = BrainJEPAClassifier(tiny_module(), **settings).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, again)
    other = BrainJEPAClassifier(tiny_module(), **dict(settings, random_state=1)).fit(X, y)
    assert not np.array_equal(other.predict_proba(X), first)
    # unseeded: torch's global generator is left alone too, and each fit differs
    unseeded = dict(settings, random_state=None)
    one = BrainJEPAClassifier(tiny_module(), **unseeded).fit(X, y).predict_proba(X)
    two = BrainJEPAClassifier(tiny_module(), **unseeded).fit(X, y).predict_proba(X)
    assert torch.equal(torch.get_rng_state(), before)
    assert not np.array_equal(one, two)


def test_the_heads_initial_weights_follow_random_state_not_torchs_global_generator():
    """The head is drawn inside the fit's seeded fork: with max_epochs=0 (nothing trained, so
    the epochs' own seeding plays no part) the same random_state builds the same head whatever
    state torch's global generator is in, and another random_state another head."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)

    def initial_head(random_state, global_seed):
        net = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=0, random_state=random_state))
        with torch.random.fork_rng(devices=[]):  # the other tests' generator left alone
            torch.manual_seed(global_seed)
            return net.fit(X, y).module_.head.linear.weight.detach().clone()

    same = initial_head(0, global_seed=1)
    torch.testing.assert_close(initial_head(0, global_seed=2), same, rtol=0, atol=0)
    assert not torch.equal(initial_head(1, global_seed=1), same)


def test_seeded_fits_in_parallel_threads_are_those_of_sequential_fits():
    """Threads share torch's global generator (the head's initialisation, stochastic depth,
    batch order): seeded fits in joblib's threading backend take turns for it."""
    from joblib import Parallel, delayed

    X, y = offset_subjects(np.tile([0.0, 1.0], 8)), np.tile([0, 1], 8)
    module = tiny_module()  # built here: its own seeding would race with the fits

    def fit(seed):
        return BrainJEPAClassifier(module, **fast(max_epochs=4, drop_path_rate=0.3, batch_size=4,
                                                  random_state=seed)).fit(X, y).predict_proba(X)

    sequential = [fit(seed) for seed in range(4)]
    threaded = Parallel(n_jobs=4, backend="threading")(delayed(fit)(seed) for seed in range(4))
    for one, other in zip(threaded, sequential):
        np.testing.assert_array_equal(one, other)


def test_pickling_and_cloning():
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.array(["a", "b"] * 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2)).fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(restored.classes_, ["a", "b"])
    fresh = clone(clf)
    assert not hasattr(fresh, "module_") and fresh.get_params()["lr"] == clf.lr
    np.testing.assert_array_equal(fresh.fit(X, y).predict_proba(X), clf.predict_proba(X))


def test_a_net_pickled_during_fit_by_skorchs_checkpoint_is_fitted_with_its_labels(tmp_path):
    """skorch's Checkpoint(f_pickle=...) pickles the net at the end of an epoch, inside fit,
    where skorch's classes_ are the encoded labels and the fit's own state is set: the
    unpickled net names its classes by the labels (classes set to them change nothing),
    continues training on them, and splits windows outside fit without rebuilding the
    criterion, as a net pickled after fit."""
    from skorch.callbacks import Checkpoint

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.array(["a", "b"] * 4)
    saved = Checkpoint(dirname=tmp_path, monitor=None, f_params=None, f_optimizer=None,
                       f_criterion=None, f_history=None, f_pickle="net.pkl")
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2, class_weight="balanced"),
                              callbacks=[saved]).fit(X, y)
    with open(tmp_path / "net.pkl", "rb") as file:
        restored = pickle.load(file)
    np.testing.assert_array_equal(restored.classes_, ["a", "b"])
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    windows, subject_index = restored.preprocessor_.transform(list(X))
    dataset = SubjectWindows(windows, np.tile([0, 1], 4)[subject_index], subject_index)
    criterion = restored.criterion_
    train, valid = restored.get_split_datasets(dataset)
    assert len(train) == len(windows) and valid is None and restored.criterion_ is criterion
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # classes set to the labels fit found change nothing
        restored.set_params(classes=["a", "b"]).predict(X)
    restored.set_params(warm_start=True, callbacks=[]).fit(X, y)
    assert len(restored.history_) == 4
    np.testing.assert_array_equal(restored.classes_, ["a", "b"])


@pytest.mark.parametrize("split", [SubjectValidSplit(0.25, random_state=0), ValidSplit(0.25)],
                         ids=["subjects", "skorch"])
def test_a_net_pickled_during_fit_keeps_none_of_the_fits_split(tmp_path, split):
    """The held-out subjects of the fit that skorch's Checkpoint(f_pickle=...) pickled the net
    in, and skorch's split seeded for that fit, are that fit's: the unpickled net set to
    train_split=None splits nothing, outside fit or in its next fit."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.array(["a", "b"] * 4)
    saved = Checkpoint(dirname=tmp_path, monitor=None, f_params=None, f_optimizer=None,
                       f_criterion=None, f_history=None, f_pickle="net.pkl")
    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), train_split=split,
                        callbacks=[saved]).fit(X, y)
    with open(tmp_path / "net.pkl", "rb") as file:
        restored = pickle.load(file).set_params(train_split=None, callbacks=[])
    windows, subject_index = restored.preprocessor_.transform(list(X))
    dataset = SubjectWindows(windows, np.tile([0, 1], 4)[subject_index], subject_index)
    train, valid = restored.get_split_datasets(dataset)
    assert len(train) == len(windows) and valid is None
    restored.fit(X, y)
    assert "valid_loss" not in restored.history_[-1]


def test_progress_is_shown_by_skorchs_print_log(capsys):
    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2, verbose=1)).fit(
        offset_subjects(np.zeros(4)), [0, 1, 0, 1])
    out = capsys.readouterr().out
    assert "train_loss" in out and "lr" in out and len(out.strip().splitlines()) == 4


def test_the_progress_table_shows_the_default_learning_rate_in_significant_digits(capsys):
    """skorch's 4 decimals printed the default rate (6.25e-5) as 0.0001 or 0.0000."""
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2, verbose=1, lr=6.25e-5,
                                                    warmup_epochs=1))
    clf.fit(offset_subjects(np.zeros(4)), [0, 1, 0, 1])
    header, _, *rows = capsys.readouterr().out.strip().splitlines()
    column = header.split().index("lr")
    shown = [float(row.split()[column]) for row in rows]
    np.testing.assert_allclose(shown, clf.history_[:, "lr"], rtol=1e-3)
    assert min(clf.history_[:, "lr"]) < 5e-5
    # a setting of the user's still wins
    clf.set_params(callbacks__print_log__floatfmt=".2f").fit(offset_subjects(np.zeros(4)),
                                                             [0, 1, 0, 1])
    assert "0.00" in capsys.readouterr().out


def test_the_progress_table_keeps_its_columns_aligned_over_epochs(capsys):
    """skorch tabulates each epoch's row alone: with 4 significant digits of no fixed width,
    a rate of 2.25 after 2.967, or a loss that grew a digit, shifted the columns after it."""
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=8, verbose=1, lr=3.0))
    clf.fit(offset_subjects(np.tile([0, 1], 8)), np.tile([0, 1], 8))
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line)  # the colour of each column's best value
             for line in capsys.readouterr().out.splitlines() if line]
    header, rule, *rows = lines
    assert len(rows) == 8 and len({len(line) for line in lines}) == 1
    column_ends = [match.end() for match in re.finditer(r"-+", rule)]
    for row in rows:  # every value ends where its column's rule ends (numbers align right)
        assert [match.end() for match in re.finditer(r"\S+", row)] == column_ends, row


def test_get_params_reports_a_default_callbacks_settings_as_set():
    """skorch's deep get_params read them from a fresh default callback (floatfmt '.4f')."""
    from sklearn.pipeline import make_pipeline

    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1))
    clf.set_params(callbacks__print_log__floatfmt=".2g", callbacks__lr_schedule=None)
    for estimator in (clf, clone(clf), clf.fit(offset_subjects(np.zeros(4)), [0, 1, 0, 1])):
        params = estimator.get_params()
        assert params["callbacks__print_log__floatfmt"] == ".2g"
        assert params["callbacks__lr_schedule"] is None
    assert dict(clf.callbacks_)["print_log"].floatfmt == ".2g"
    assert make_pipeline(clf).get_params()[
        "brainjepaclassifier__callbacks__print_log__floatfmt"] == ".2g"
    assert clf.get_params()["callbacks__print_log__sink"] is print  # the others as skorch's


def test_get_params_reports_the_default_callbacks_these_estimators_run():
    """skorch reports its own defaults: a PrintLog's 4 decimals ('.4f'), where the fine-tuners
    print 4 significant digits in a fixed width ('10.4g'), which set_params(**get_params())
    then replaced; and the learning-rate schedule only once the callbacks were initialized."""
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1))
    params = clf.get_params()
    assert params["callbacks__print_log__floatfmt"] == "10.4g"
    assert isinstance(params["callbacks__lr_schedule"], WarmupCosineLR)
    copy = clone(clf).set_params(**params).initialize_callbacks()
    assert dict(copy.callbacks_)["print_log"].floatfmt == "10.4g"
    assert clf.fit(offset_subjects(np.zeros(4)), [0, 1, 0, 1]).get_params().keys() == (
        params.keys())


def test_get_params_reports_the_settings_of_a_callback_given_in_a_defaults_place():
    """skorch reported a fresh default's: set back, they turned the given PrintLog's '.1f'
    into '.4f'."""
    from skorch.callbacks import PrintLog

    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                              callbacks__print_log=PrintLog(floatfmt=".1f"))
    for fitted in (False, True):
        if fitted:
            clf.fit(offset_subjects(np.zeros(4)), [0, 1, 0, 1])
        params = clf.get_params()
        assert params["callbacks__print_log__floatfmt"] == ".1f"
        copy = clone(clf).set_params(**params).initialize_callbacks()
        assert dict(copy.callbacks_)["print_log"].floatfmt == ".1f"
    clf.set_params(callbacks__print_log__floatfmt=".2g")  # a setting given stays first
    assert clf.get_params()["callbacks__print_log__floatfmt"] == ".2g"


def test_get_params_reports_a_callback_class_given_in_a_defaults_place_with_its_settings():
    """A callback class given by name is built at initialize with the settings given to it:
    get_params reported the replaced default's settings (PrintLog's keys_ignored, ...), which
    set_params(**get_params()) then gave to the class ("Invalid parameter 'keys_ignored' for
    estimator EarlyStopping")."""
    from skorch.callbacks import EarlyStopping

    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                              callbacks__print_log=EarlyStopping,
                              callbacks__print_log__monitor="train_loss")
    for fitted in (False, True):
        if fitted:
            clf.fit(offset_subjects(np.zeros(4)), [0, 1, 0, 1])
        params = clf.get_params()
        assert params["callbacks__print_log"] is EarlyStopping
        assert {key: value for key, value in params.items()
                if key.startswith("callbacks__print_log__")} == {
            "callbacks__print_log__monitor": "train_loss"}
        copy = clone(clf).set_params(**params).initialize_callbacks()
        built = dict(copy.callbacks_)["print_log"]
        assert isinstance(built, EarlyStopping) and built.monitor == "train_loss"


def test_warm_start_and_partial_fit_continue_from_the_current_model():
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2)).fit(X, y)
    module, preprocessor = clf.module_, clf.preprocessor_
    weights = copy.deepcopy(module.state_dict())
    clf.partial_fit(X, y)
    assert clf.module_ is module and clf.preprocessor_ is preprocessor
    assert len(clf.history_) == 4
    assert not torch.equal(module.state_dict()["head.linear.weight"],
                           weights["head.linear.weight"])
    clf.set_params(warm_start=True).fit(X, y)
    assert clf.module_ is module and len(clf.history_) == 6
    clf.set_params(warm_start=False).fit(X, y)
    assert clf.module_ is not module and len(clf.history_) == 2
    # the message says what to do (it had named the labels only)
    with pytest.raises(ValueError, match=r"not among the classes \[0, 1\]: the model's outputs "
                                         r"are those of its first fit.*classes=\[\.\.\.\].*"
                                         r"warm_start=False"):
        clf.partial_fit(X, np.tile([0, 2], 4))
    # later calls may repeat the classes, not change them (as scikit-learn's partial_fit)
    clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match=r"classes=\[0, 1, 2\] is not the same as in the first "
                                         r"fit, \[0, 1\]"):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert clf.classes_.tolist() == [0, 1] and len(clf.history_) == 4
    # classes given at the first call may include labels the first batch lacks
    fresh = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1))
    fresh.partial_fit(X, y, classes=[0, 1, 2])
    assert fresh.classes_.tolist() == [0, 1, 2] and fresh.predict_proba(X).shape == (8, 3)
    fresh.partial_fit(X, np.tile([0, 2], 4))


def test_labels_outside_the_classes_are_told_how_to_add_them():
    """The refusal had named the labels only, not where the classes came from."""
    X, y = offset_subjects(np.zeros(8)), np.tile([0, 2], 4)
    with pytest.raises(ValueError, match=r"classes parameter names the outputs: add them to it, "
                                         r"or set classes=None"):
        BrainJEPAClassifier(tiny_module(), classes=[0, 1], **fast(max_epochs=1)).fit(X, y)
    with pytest.raises(ValueError, match=r"pass every label of every partial_fit call as "
                                         r"classes="):
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match=r"needs at least 2 classes.*a first partial_fit call of "
                                         r"one class's subjects takes every label as classes="):
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).partial_fit(X, np.zeros(8))


def test_classes_given_to_partial_fit_are_sorted_as_in_scikit_learn():
    """partial_fit(classes=[1, 0]) kept that order as classes_, so scikit-learn's scorers, which
    take classes_[1] as the positive class, scored the probability of class 0 as the positives'
    (roc_auc came out as 1 - AUC); a repeated class gave a dead output. And with the classes
    parameter set, classes_ is that parameter (skorch), but the outputs followed the order given
    to partial_fit: every prediction was named by the other class."""
    from sklearn.metrics import get_scorer, roc_auc_score

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1))
    clf.partial_fit(X, y, classes=[1, 0, 1])
    assert clf.classes_.tolist() == [0, 1] and clf.predict_proba(X).shape == (8, 2)
    assert get_scorer("roc_auc")(clf, X, y) == roc_auc_score(y, clf.predict_proba(X)[:, 1])
    clf.partial_fit(X, y, classes=[1, 0])  # a repeat, in another order
    assert clf.classes_.tolist() == [0, 1]
    labels = np.array(["control", "patient"] * 4)
    recorder = Recorder()
    named = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), callbacks=[recorder],
                                classes=["patient", "control"])
    with pytest.warns(UserWarning, match="is not sorted"):
        named.partial_fit(X, labels, classes=["control", "patient"])
    np.testing.assert_array_equal(named.classes_, ["patient", "control"])
    np.testing.assert_array_equal(named.classes_[recorder.dataset_.y], labels)
    with (pytest.warns(UserWarning, match="is not sorted"),
          pytest.raises(ValueError, match="differs from the classes parameter")):
        clone(named).partial_fit(X, labels, classes=["control", "patient", "other"])
    with pytest.raises(ValueError, match=r"classes=\['control', 'patient', 'patient'\] repeats "
                                         "a label"):
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                            classes=["control", "patient", "patient"]).fit(X, labels)


def test_classes_set_after_fit_do_not_rename_the_outputs():
    """skorch's classes_ reads the classes parameter as it is now: set_params(classes=...)
    after fit renamed every prediction. classes_ stays what fit learned; predict warns, and a
    continued fit refuses the change."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.array(["a", "b"] * 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    predicted = clf.predict(X)
    clf.set_params(classes=["b", "a"])
    with pytest.warns(UserWarning, match=r"classes=\['b', 'a'\] \(fitted with None\): changed "
                                         "since fit"):
        np.testing.assert_array_equal(clf.predict(X), predicted)
    assert clf.classes_.tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="classes=.*a continued fit"):
        clf.partial_fit(X, y)
    assert clf.classes_.tolist() == ["a", "b"]
    # the classes fit found, in their order, change nothing: neither warned about nor refused
    clf.set_params(classes=["a", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(clf.predict(X), predicted)
        clf.partial_fit(X, y)
    assert clf.classes_.tolist() == ["a", "b"] and len(clf.history_) == 2


def test_the_training_windows_are_shuffled_every_epoch_unless_asked_not_to():
    seen = []

    class Targets(Callback):
        def on_batch_begin(self, net, batch=None, training=False, **kwargs):
            if training:
                seen.append(np.asarray(batch[1]).ravel().argsort().tolist())

    X, y = offset_subjects(np.zeros(16)), np.arange(16.0)
    settings = fast(max_epochs=3, batch_size=16, callbacks=[Targets()])
    reg = BrainJEPARegressor(tiny_module(), **settings)
    assert reg.get_params()["iterator_train__shuffle"] is True
    reg.fit(X, y)  # one batch an epoch: the argsort of its targets is its order
    in_order = list(range(16))
    assert all(order != in_order for order in seen) and seen[0] != seen[1]
    seen.clear()
    BrainJEPARegressor(tiny_module(), **settings, iterator_train__shuffle=False).fit(X, y)
    assert seen == [in_order] * 3
    # set on the fitted net, for a continued fit (skorch's set_params failed there with
    # "Something went wrong, please open an issue")
    seen.clear()
    reg.set_params(iterator_train__shuffle=False).partial_fit(X, y)
    assert seen == [in_order] * 3 and reg.get_params()["iterator_train__shuffle"] is False


def test_the_optimizer_of_a_fitted_net_may_be_changed_and_is_checked_at_once():
    """skorch's set_params failed on a fitted net with "Something went wrong, please open an
    issue" for another optimizer class; a continued fit now trains with the new one (its
    layer-wise groups), and a setting the new class refuses leaves the net as it was."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    n_groups = len(clf.optimizer_.param_groups)
    clf.set_params(optimizer=torch.optim.SGD, optimizer__momentum=0.5)
    assert isinstance(clf.optimizer_, torch.optim.SGD) and clf.optimizer is torch.optim.SGD
    assert len(clf.optimizer_.param_groups) == n_groups
    assert clf.optimizer_.defaults["momentum"] == 0.5
    clf.set_params(warm_start=True).fit(X, y)
    assert isinstance(clf.optimizer_, torch.optim.SGD) and len(clf.history_) == 2
    fitted = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                                 optimizer__betas=(0.8, 0.9)).fit(X, y)
    adamw = fitted.optimizer_
    settings = [{k: v for k, v in group.items() if k != "params"} for group in adamw.param_groups]
    assert all("lr" in group and "weight_decay" in group for group in settings)
    with pytest.raises(TypeError, match="betas"):  # SGD takes no betas
        fitted.set_params(optimizer=torch.optim.SGD)
    assert fitted.optimizer is torch.optim.AdamW and fitted.optimizer_ is adamw
    # nor are the settings given with it (they had been kept)
    with pytest.raises(TypeError, match="betas"):
        fitted.set_params(optimizer=torch.optim.SGD, max_epochs=7, iterator_train__shuffle=False)
    assert fitted.max_epochs == 1 and fitted.get_params()["iterator_train__shuffle"] is True
    assert fitted.optimizer is torch.optim.AdamW and fitted.optimizer_ is adamw
    # nor the rates and decays that skorch's setters of lr and optimizer__* write into the live
    # optimizer's groups (a continued fit had trained with them)
    with pytest.raises(TypeError, match="betas"):
        fitted.set_params(optimizer=torch.optim.SGD, lr=0.5, optimizer__weight_decay=0.3)
    assert [{k: v for k, v in group.items() if k != "params"}
            for group in fitted.optimizer_.param_groups] == settings
    assert fitted.lr == FAST["lr"] and "optimizer__weight_decay" not in fitted.get_params()
    # and a setting that skorch's setter adds to the groups (AdamW has no momentum) is taken
    # out of them again
    with pytest.raises(TypeError, match="betas"):
        fitted.set_params(optimizer=torch.optim.SGD, optimizer__momentum=0.5)
    assert [{k: v for k, v in group.items() if k != "params"}
            for group in fitted.optimizer_.param_groups] == settings


def test_optimizer_loader_and_compile_settings_set_before_fit_reach_the_fit():
    """On a net not yet fitted they are skorch's to set (there is no model to keep)."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1))
    clf.set_params(optimizer=torch.optim.SGD, optimizer__momentum=0.5, compile=False,
                   iterator_train__shuffle=False, iterator_valid__batch_size=4)
    assert clf.get_params()["iterator_valid__batch_size"] == 4
    clf.fit(X, y)
    assert isinstance(clf.optimizer_, torch.optim.SGD)
    assert clf.optimizer_.defaults["momentum"] == 0.5


def test_loader_settings_set_on_a_fitted_net_are_checked_as_skorch_checks_them():
    """skorch's check of its prefixed settings (here its warning that a shuffled validation
    loader shuffles the predictions) runs for those set on a fitted net too."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    # kept for the next fit (skorch's set_params had failed: "Something went wrong")
    clf.set_params(dataset__length=None)
    assert clf.get_params()["dataset__length"] is None
    with pytest.warns(UserWarning, match="iterator_valid__shuffle=True"):
        clf.set_params(iterator_valid__shuffle=True)
    assert clf.get_params()["iterator_valid__shuffle"] is True


def test_a_subject_too_short_to_predict_is_told_to_refit_with_a_lower_min_frames():
    """The message said "pass min_frames=3 or less to have it padded", which set on the fitted
    estimator changes nothing (predict preprocesses as in fit, and warns of the change)."""
    X, y = offset_subjects(np.zeros(8)), np.array([0, 1] * 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    message = (r"subject 0 is too short: 3 frames.*leave the subject out, or fit the estimator "
               r"with min_frames=3 or less to have it padded \(new series are preprocessed as "
               r"in fit, by its preprocessor_\)")
    with pytest.raises(ValueError, match=message):
        clf.predict([X[0][:3]])
    with pytest.warns(UserWarning, match="changed since fit"), \
            pytest.raises(ValueError, match=message):
        clf.set_params(min_frames=3).predict([X[0][:3]])
    assert clf.fit(X, y).predict([X[0][:3]]).shape == (1,)  # the cure the message gives


def test_predict_warns_that_model_settings_changed_since_fit_need_a_refit():
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    proba = clf.predict_proba(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # settings of training only change no prediction
        clf.set_params(lr=1e-3, drop_path_rate=0.3, layer_decay=0.5, weight_decay=0.0)
        clf.predict(X)
    for name, value in [("final_norm", False), ("freeze_encoder", True)]:
        fitted_with = clf.get_params()[name]
        clf.set_params(**{name: value})
        with pytest.warns(UserWarning, match=rf"{name}={value} \(fitted with {fitted_with}\)"):
            np.testing.assert_array_equal(clf.predict_proba(X), proba)  # the fitted model
        clf.set_params(**{name: fitted_with})


# -- validation split and early stopping -------------------------------------------------------

def test_a_split_that_cannot_be_made_names_the_split_and_the_subjects():
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    split = SubjectValidSplit(0.1, stratified=True, random_state=0)
    with pytest.raises(ValueError, match=r"SubjectValidSplit\(fraction=0.1, stratified=True, "
                                         r"random_state=0\) cannot split 8 subjects: .*classes"):
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, train_split=split)).fit(X, y)


@pytest.mark.parametrize("fraction, stratified, labels, advice", [
    (0.9, False, np.zeros(4), r"fraction=0.9 holds out 4 of 4 subjects, too few left to train "
                              r"on: hold out a smaller fraction"),
    (0.2, False, np.zeros(1), r"needs 2 subjects at least: .*train_split=None"),
    (0.2, True, np.array([0] * 10 + [1]), r"Give every class at least 2 subjects .*"
                                          r"stratified=False"),
    (0.1, True, np.tile([0, 1], 4), r"should be greater or equal to the number of classes = 2\. "
                                    r"Hold out a larger fraction"),
])
def test_a_split_that_cannot_be_made_advises_what_would_make_it(fraction, stratified, labels,
                                                                advice):
    """Every failed split had been told to hold out a larger fraction, also one that left no
    subject to train on (where a larger fraction cannot help) or a class of one subject."""
    split = SubjectValidSplit(fraction, stratified=stratified, random_state=0)
    with pytest.raises(ValueError, match=advice) as caught:
        split.split_subjects(labels)
    assert ".." not in str(caught.value)
    if "larger" not in advice:
        assert "larger fraction" not in str(caught.value)


def test_the_subject_split_keeps_each_subjects_windows_together():
    subject_index = np.repeat(np.arange(10), [1, 2, 3, 1, 2, 3, 1, 2, 3, 1])
    labels = np.array([0, 1] * 5)
    dataset = SubjectWindows(np.zeros((len(subject_index), 4, 2), np.float32),
                             labels[subject_index], subject_index)
    train, valid = SubjectValidSplit(0.4, stratified=True, random_state=0)(dataset)
    train_subjects = set(subject_index[train.indices])
    valid_subjects = set(subject_index[valid.indices])
    assert train_subjects.isdisjoint(valid_subjects)
    assert train_subjects | valid_subjects == set(range(10)) and len(valid_subjects) == 4
    assert sorted(labels[sorted(valid_subjects)]) == [0, 0, 1, 1]
    assert len(train.indices) + len(valid.indices) == len(subject_index)


def test_the_subject_split_holds_out_subjects_by_their_own_ids():
    # subject ids need not be 0 ... n - 1 (e.g. a subset of a study, or ids of one's own)
    ids = np.array([7, 7, 12, 30, 30, 30, 41, 55, 55, 63])
    dataset = SubjectWindows(np.zeros((len(ids), 4, 2), np.float32), np.zeros(len(ids)), ids)
    train, valid = SubjectValidSplit(0.5, random_state=0)(dataset)
    valid_subjects = set(ids[valid.indices])
    assert len(valid_subjects) == 3 and valid_subjects.isdisjoint(ids[train.indices])
    assert sorted(np.concatenate([train.indices, valid.indices])) == list(range(len(ids)))
    # all the windows of each held-out subject
    assert sorted(valid.indices) == sorted(np.flatnonzero(np.isin(ids, list(valid_subjects))))


def test_a_stratified_subject_split_keeps_the_class_proportions():
    labels = np.array([0] * 12 + [1] * 4)
    for seed in range(20):
        _, valid = SubjectValidSplit(0.25, stratified=True, random_state=seed).split_subjects(
            labels)
        assert sorted(labels[valid]) == [0, 0, 0, 1]
    # drawn without stratifying, some of the same draws are not
    plain = [sorted(labels[SubjectValidSplit(0.25, random_state=seed).split_subjects(labels)[1]])
             for seed in range(20)]
    assert any(draw != [0, 0, 0, 1] for draw in plain)


def test_early_stopping_on_a_subject_split():
    X, y = offset_subjects(np.tile([0.0, 1.0], 5)), np.tile([0, 1], 5)
    clf = BrainJEPAClassifier(
        tiny_module(), **fast(max_epochs=20, lr=0.0, min_lr=0.0),  # nothing learns: no improvement
        train_split=SubjectValidSplit(0.4, stratified=True, random_state=0),
        callbacks=[EarlyStopping(patience=2)],
    ).fit(X, y)
    assert len(clf.history_) == 3
    assert {"valid_loss", "valid_acc"} <= set(clf.history_[-1])
    reg = BrainJEPARegressor(
        tiny_module(), **fast(max_epochs=2), train_split=SubjectValidSplit(0.4, random_state=0),
        callbacks=[EpochScoring("r2", lower_is_better=False)],
    ).fit(X, y.astype(float))
    assert {"valid_loss", "r2"} <= set(reg.history_[-1])


@pytest.mark.parametrize("callback, key, advice", [
    (lambda tmp_path: EarlyStopping(), "'valid_loss'", r"'train_loss'$"),
    (lambda tmp_path: EarlyStopping(monitor="valid_acc", lower_is_better=False), "'valid_acc'",
     r"'train_loss'$"),
    # a Checkpoint's monitor is a flag such as train_loss_best, or None for every epoch
    (lambda tmp_path: Checkpoint(dirname=tmp_path), "'valid_loss_best'",
     r"'train_loss_best', or monitor=None to save after every epoch$"),
    (lambda tmp_path: LRScheduler("ReduceLROnPlateau", monitor="valid_loss"), "'valid_loss'",
     r"'train_loss'$"),
])
def test_a_callback_monitoring_a_validation_score_without_a_split_is_refused_before_training(
        callback, key, advice, tmp_path):
    """skorch failed at the first epoch's end (EarlyStopping with its bare KeyError, "Key
    'valid_loss' was not found in history"; the LRScheduler asking for a scoring callback
    placed before it; Checkpoint after the epoch was trained); the fit is refused before its first epoch, naming the callback,
    and a fitted estimator (fitted with a split, or continued) is left as it was."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 5)), np.tile([0, 1], 5)
    callback = callback(tmp_path)
    name = type(callback).__name__
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), callbacks=[callback],
                              callbacks__lr_schedule=None,
                              train_split=SubjectValidSplit(0.4, stratified=True)).fit(X, y)
    proba, history = clf.predict_proba(X), list(clf.history_)
    for warm_start in (False, True):
        with pytest.raises(ValueError, match=rf"callback '{name}' monitors {key}, a score of the "
                                             r"validation windows, but train_split=None gives "
                                             r"none: .*SubjectValidSplit\(0.2\), or "
                                             r"monitor a training score such as " + advice):
            clf.set_params(train_split=None, warm_start=warm_start).fit(X, y)
        np.testing.assert_array_equal(clf.predict_proba(X), proba)
        assert list(clf.history_) == history
    # max_epochs=0 runs no epoch, so no callback reads a score: it still builds the model
    assert len(clf.set_params(max_epochs=0, warm_start=False).fit(X, y).history_) == 0


def test_only_a_plateau_scheduler_stepped_per_epoch_reads_the_validation_score():
    """skorch's ReduceLROnPlateau stepped every batch reads its monitor from the last training
    batch's record, where no validation score is with or without a split: it is not one of
    the callbacks that a split would satisfy (asking for one would not help)."""
    from brainjepa_sk._skorch import validation_monitors

    scoring = ("valid_loss", PassthroughScoring("valid_loss"))
    per_epoch = LRScheduler("ReduceLROnPlateau", monitor="valid_loss")
    per_batch = LRScheduler("ReduceLROnPlateau", monitor="valid_loss", step_every="batch")
    assert validation_monitors([scoring, ("plateau", per_epoch)]) == [
        ("plateau", per_epoch, "valid_loss")]
    assert validation_monitors([scoring, ("plateau", per_batch)]) == []


def test_callbacks_monitoring_training_scores_need_no_validation_split():
    """A key is refused for what scores it, not for its name: a score of the training windows
    named valid_* is there without a split."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)
    on_train = EpochScoring("accuracy", name="valid_like", on_train=True, lower_is_better=False)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2), callbacks=[
        on_train, EarlyStopping(monitor="valid_like", lower_is_better=False),
        ("stop", EarlyStopping(monitor="train_loss"))]).fit(X, y)
    assert len(clf.history_) == 2 and "valid_like" in clf.history_[-1]


def test_a_validation_scoring_callback_without_a_split_is_warned_of():
    """skorch skips an EpochScoring of the validation windows (its default) when there are
    none: its column was missing from the table and history_ without a word."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                              callbacks=[EpochScoring("roc_auc", lower_is_better=False)])
    with pytest.warns(UserWarning, match=r"the callback 'roc_auc' scores the validation windows "
                                         r"\(on_train=False\), but train_split=None gives none.*"
                                         r"SubjectValidSplit.*on_train=True"):
        clf.fit(X, y)
    assert "roc_auc" not in clf.history_[-1]
    # none for one on the training windows, nor for skorch's own valid_loss and valid_acc
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.set_params(callbacks=[EpochScoring("roc_auc", on_train=True,
                                               lower_is_better=False)]).fit(X, y)
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    assert "roc_auc" in clf.history_[-1]


def test_a_continued_fit_that_holds_out_other_subjects_of_the_same_x_is_warned_of():
    """Without an integer seed each call of warm_start or partial_fit drew its own held-out
    subjects: the model validated on subjects it had trained on, without a word."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, random_state=None),
                              train_split=SubjectValidSplit(0.25), warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.fit(X, y)  # the first call: nothing trained before it
    for call in (clf.fit, clf.partial_fit):
        with pytest.warns(UserWarning, match=r"this continued fit \(\w+\) holds out other "
                                             r"subjects than the call before it on the same X.*"
                                             r"integer random_state"):
            call(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # other subjects (a partial_fit over batches of new ones) hold out none trained on
        clf.partial_fit(offset_subjects(np.tile([0.0, 1.0], 6), seed=1), y)
        # and an integer seed holds out the same subjects at every call
        clf.set_params(train_split__random_state=0)
        clf.fit(X, y)
        clf.fit(X, y)
        clf.set_params(train_split__random_state=None, random_state=0)
        clf.partial_fit(X, y)


def test_a_subject_split_learns_its_statistics_from_the_training_subjects_only(tmp_path):
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((16, N_REGIONS)) * (1 + k) + 10 * k for k in range(10)]
    y = 40 + 5 * np.arange(10.0)
    split = SubjectValidSplit(0.3, random_state=0)
    train, valid = split.split_subjects(y)
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1, normalization="robust"),
                             train_split=split).fit(X, y)
    # the held-out subjects' series and targets take no part in the scaling
    expected = Preprocessor(n_frames=reg.preprocessor_.n_frames, normalization="robust").fit(
        [X[k] for k in train])
    np.testing.assert_allclose(reg.preprocessor_.median_, expected.median_)
    np.testing.assert_allclose(reg.preprocessor_.iqr_, expected.iqr_)
    np.testing.assert_allclose(reg.target_mean_, [y[train].mean()])
    np.testing.assert_allclose(reg.target_scale_, [y[train].std()])
    assert not np.isclose(reg.target_mean_[0], y.mean())
    # the same from files
    paths = [tmp_path / f"sub-{k:02d}.npy" for k in range(10)]
    for path, series in zip(paths, X):
        np.save(path, series)
    from_files = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1, normalization="robust"),
                                    train_split=split).fit(paths, y)
    np.testing.assert_allclose(from_files.preprocessor_.median_, expected.median_)
    # the validation windows are the held-out subjects' (one window per subject here)
    datasets = {}

    class Splits(Callback):
        def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
            datasets.update(train=dataset_train, valid=dataset_valid)

    BrainJEPARegressor(tiny_module(), **fast(max_epochs=1), train_split=split,
                       callbacks=[Splits()]).fit(X, y)
    assert sorted(datasets["valid"].indices) == sorted(valid)
    assert sorted(datasets["train"].indices) == sorted(train)
    assert "_held_out_" not in vars(reg)  # this fit's draw is not kept (nor pickled)


def test_a_split_without_a_random_state_draws_with_the_estimators():
    """SubjectValidSplit(random_state=None) in an estimator with random_state=k holds out the
    subjects SubjectValidSplit(random_state=k) does: the same on every fit (it had drawn from
    NumPy's global generator, so random_state=0 did not fix the split nor the early stop)."""
    X, y = offset_subjects(np.zeros(12)), np.arange(12.0)
    held_out = []

    class Splits(Callback):
        def on_epoch_begin(self, net, dataset_valid=None, **kwargs):
            held_out.append(sorted(dataset_valid.indices))

    for seed in (0, 0, 1):
        BrainJEPARegressor(tiny_module(), **fast(max_epochs=1, random_state=seed),
                           train_split=SubjectValidSplit(0.25), callbacks=[Splits()]).fit(X, y)
    expected = [sorted(SubjectValidSplit(0.25, random_state=seed).split_subjects(y)[1])
                for seed in (0, 1)]
    assert expected[0] != expected[1]
    assert held_out == [expected[0], expected[0], expected[1]]
    # a subclass drawing its own way gets the seed as its random_state, on a copy
    seen = []

    class LastSubjectsOut(SubjectValidSplit):
        def split_subjects(self, labels):
            seen.append(self.random_state)
            return np.arange(9), np.arange(9, 12)

    split = LastSubjectsOut(0.25)
    BrainJEPARegressor(tiny_module(), **fast(max_epochs=1, random_state=3),
                       train_split=split).fit(X, y)
    assert seen == [3] and split.random_state is None


@pytest.mark.parametrize("stratified", [False, True])
def test_skorchs_split_of_a_fraction_without_a_random_state_draws_with_the_estimators(
        stratified):
    """skorch's ValidSplit(0.25) drew its held-out windows from NumPy's global generator, so
    random_state=0 on the estimator did not fix them nor the predictions; it draws on a copy
    given the estimator's seed, and the user's split is left as it was."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 12)), np.tile([0, 1], 12)
    split = ValidSplit(0.25, stratified=stratified)
    before = dict(vars(split))
    held_out, proba = [], []

    class Splits(Callback):
        def on_epoch_begin(self, net, dataset_valid=None, **kwargs):
            held_out.append(sorted(dataset_valid.indices.tolist()))

    for seed in (0, 0, 1):
        clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2, random_state=seed),
                                  train_split=split, callbacks=[Splits()]).fit(X, y)
        proba.append(clf.predict_proba(X))
    windows = SubjectWindows(X, y, np.arange(24))
    expected = [sorted(ValidSplit(0.25, stratified=stratified, random_state=seed)(
        windows, y)[1].indices.tolist()) for seed in (0, 1)]
    assert expected[0] != expected[1]
    assert held_out == [expected[0]] * 4 + [expected[1]] * 2  # two epochs a fit
    np.testing.assert_array_equal(proba[0], proba[1])
    assert vars(split) == before and split.random_state is None


def test_the_held_out_subjects_do_not_depend_on_the_order_of_the_classes():
    X, y = offset_subjects(np.zeros(12)), np.array([0, 1, 2] * 4)
    split = SubjectValidSplit(0.34, stratified=True, random_state=3)
    _, valid = split.split_subjects(y)
    held_out = {}

    class Splits(Callback):
        def on_epoch_begin(self, net, dataset_valid=None, **kwargs):
            held_out[tuple(net.classes)] = sorted(dataset_valid.indices)

    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), classes=[0, 1, 2],
                        train_split=split, callbacks=[Splits()]).fit(X, y)
    with pytest.warns(UserWarning, match="is not sorted") as caught:
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), classes=[2, 1, 0],
                            train_split=split, callbacks=[Splits()]).fit(X, y)
    assert sum("is not sorted" in str(w.message) for w in caught) == 1  # once per fit
    assert held_out[(0, 1, 2)] == held_out[(2, 1, 0)] == sorted(valid)


def test_a_subject_split_of_ones_own_is_used_as_it_is():
    class FirstSubjectsOut(SubjectValidSplit):  # e.g. a site held out
        def __call__(self, dataset, y=None, groups=None):
            in_valid = dataset.subject_index < 3
            return (torch.utils.data.Subset(dataset, np.flatnonzero(~in_valid)),
                    torch.utils.data.Subset(dataset, np.flatnonzero(in_valid)))

    held_out = []

    class Splits(Callback):
        def on_epoch_begin(self, net, dataset_valid=None, **kwargs):
            held_out.append(sorted(dataset_valid.indices))

    X, y = offset_subjects(np.zeros(8)), np.arange(8.0)
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1), train_split=FirstSubjectsOut(),
                             callbacks=[Splits()]).fit(X, y)
    assert held_out == [[0, 1, 2]]
    np.testing.assert_allclose(reg.target_mean_, [y.mean()])  # its own split: all subjects


def test_a_split_of_ones_own_may_give_subsets_of_subsets_of_the_windows():
    """A subclass that subsets the subject split further (here: the first subjects' windows on
    each side) gives windows of the fit: accepted, and the balanced class weights are counted
    over the training windows it gives."""
    class FirstOfEachSide(SubjectValidSplit):
        def __call__(self, dataset, y=None, groups=None):
            train, valid = super().__call__(dataset)
            return (torch.utils.data.Subset(train, np.arange(5)),
                    torch.utils.data.Subset(valid, np.arange(2)))

    X, y = offset_subjects(np.zeros(10)), np.array([0, 1] * 5)
    split = FirstOfEachSide(0.3, random_state=0)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), train_split=split,
                              class_weight="balanced").fit(X, y)
    assert "valid_loss" in clf.history_[-1]
    train, _ = SubjectValidSplit(0.3, random_state=0)(SubjectWindows(X, y, np.arange(10)))
    y_train = y[train.indices[:5]]
    assert sorted(set(y_train)) == [0, 1] and np.mean(y_train) != 0.5  # unbalanced: 5 windows
    np.testing.assert_allclose(clf.criterion_.weight.numpy(),
                               compute_class_weight("balanced", classes=np.array([0, 1]),
                                                    y=y_train))


def test_a_subject_split_given_groups_holds_out_whole_groups():
    """A family's (or a site's) subjects had been held out independently (SubjectValidSplit
    took no groups), so twins trained and validated on each other's side and the validation
    score that early stopping reads was optimistic."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6), n_timepoints=24), np.tile([0, 1], 6)
    families = np.repeat([10, 20, 30, 40], 3)
    held_out = []

    class Splits(Callback):
        def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
            subject_of = dataset_valid.dataset.subject_index
            held_out.append((subject_of[dataset_train.indices],
                             subject_of[dataset_valid.indices]))

    for seed in range(4):
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, random_state=seed),
                            train_split=SubjectValidSplit(0.25), callbacks=[Splits()]).fit(
            X, y, groups=families)
    for train, valid in held_out:  # a quarter of the families, each whole
        assert len(set(families[valid])) == 1 and len(set(valid)) == 3
        assert set(families[valid]).isdisjoint(families[train])
    with pytest.raises(ValueError, match=r"groups from the estimator's fit: pass fit\(X, y, "
                                         r"groups=groups\)"):  # skorch's call is refused
        SubjectValidSplit(0.25)(SubjectWindows(np.zeros((4, 8, 2), np.float32), np.zeros(4),
                                               np.arange(4)), groups=np.arange(4))
    # drawn without groups, some of the same draws split a family
    assert any(len(set(families[SubjectValidSplit(0.25, random_state=seed).split_subjects(y)[1]]))
               > 1 for seed in range(4))
    # and a cross-validation by family passes each fold's groups on to fit
    scores = cross_val_score(
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                            train_split=SubjectValidSplit(0.5, random_state=0)),
        X, y, groups=families, cv=GroupKFold(2), params={"groups": families},
        error_score="raise")
    assert scores.shape == (2,)


@pytest.mark.parametrize("split, groups, message", [
    (None, np.repeat([1, 2], 4), r"groups were passed to fit, but train_split=None does not "
                                 r"use them"),
    (SubjectValidSplit(0.25), np.repeat([1, 2], 3), r"groups has shape \(6,\), but fit was "
                                                    r"given 8 subjects"),
    (SubjectValidSplit(0.25), np.array([1, 1, 2, None, 3, 3, 4, 4], dtype=object),
     r"groups has a missing ID \(NaN or None\) for 1 subject\(s\), first subject 3"),
    (SubjectValidSplit(0.25, stratified=True), np.repeat([1, 2, 3, 4], 2),
     r"SubjectValidSplit\(fraction=0.25, stratified=True, random_state=None\) was given "
     r"groups, but a stratified split by groups is not supported"),
    (SubjectValidSplit(0.25), np.ones(8), r"cannot split 8 subjects: .* A split by groups "
                                          r"needs 2 groups at least"),
    # a column of family IDs with one typed as a number had failed in NumPy's sort
    (SubjectValidSplit(0.25), pd.Series(["f1", "f1", "f2", "f2", 3, 3, "f4", "f4"]),
     r"groups mixes IDs of several kinds \(subject 0 is 'f1', subject 4 is 3\), which cannot "
     r"be sorted: give IDs of one kind"),
])
def test_groups_a_split_cannot_use_are_refused_and_the_fit_kept(split, groups, message):
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    proba = clf.predict_proba(X)
    clf.set_params(train_split=split)
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y, groups=groups)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


def test_groups_indexed_by_the_files_subjects_in_another_order_are_refused(tmp_path):
    """A glob is read in sorted order (sub-10 before sub-2): family IDs from a participants
    table indexed by ID, in the table's order, were given to other subjects without a word,
    so that a family's subjects could train and validate; y was checked so, groups were not."""
    ids = [f"sub-{k}" for k in range(1, 12)]
    for subject, x in zip(ids, offset_subjects(np.zeros(len(ids)))):
        np.save(tmp_path / f"{subject}_timeseries.npy", x)
    pattern = str(tmp_path / "*.npy")
    in_file_order = [path.name.split("_")[0] for path in sorted(tmp_path.glob("*.npy"))]
    y = np.tile([0, 1], 6)[:len(ids)]  # in X's (the files') order: taken as given
    families = pd.Series(np.arange(len(ids)) // 2, index=pd.Index(ids, name="participant_id"))
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                              train_split=SubjectValidSplit(0.25, random_state=0))
    with pytest.raises(ValueError, match=r"groups' index names the subjects' files, but in "
                                         r"another order than X's: row 0 of groups is 'sub-1', "
                                         r"whose file is number 2 of X \(sub-1_timeseries\.npy\), "
                                         r"while X's file 0 is sub-10_timeseries\.npy .* the "
                                         r"groups would be given to other subjects"):
        clf.fit(pattern, y, groups=families)
    assert not hasattr(clf, "module_")
    # the cure the message gives: the groups in the files' order
    clf.fit(pattern, y, groups=families.loc[in_file_order])
    assert hasattr(clf, "module_")


@pytest.mark.parametrize("what", ["y", "groups"])
@pytest.mark.parametrize("as_glob", [True, False])
def test_the_order_error_explains_a_globs_sorted_order_only_for_a_glob(tmp_path, what, as_glob):
    """The error said 'a glob is read in sorted order' of a list of files too, which is in the
    order it was given: a glob had nothing to do with it."""
    ids = [f"sub-{k}" for k in range(1, 5)]
    for subject, x in zip(ids, offset_subjects(np.zeros(len(ids)))):
        np.save(tmp_path / f"{subject}_timeseries.npy", x)
    files = sorted(tmp_path.glob("*.npy"))
    X = str(tmp_path / "*.npy") if as_glob else [str(path) for path in files]
    reversed_ids = pd.Index([path.name.split("_")[0] for path in files][::-1])
    y = np.array([0, 1, 0, 1])
    families = pd.Series([0, 0, 1, 1], index=reversed_ids)
    if what == "y":
        y, groups = pd.Series(y, index=reversed_ids), None
    else:
        groups = families
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                              train_split=SubjectValidSplit(0.5, random_state=0))
    with pytest.raises(ValueError, match="index names the subjects' files") as error:
        clf.fit(X, y, **({} if groups is None else {"groups": groups}))
    message = str(error.value)
    assert ("(a glob is read in sorted order, 'sub-10' before 'sub-2')" in message) == as_glob
    assert ("(their names sorted)" in message) == as_glob
    assert f"while X's file 0 is sub-1_timeseries.npy{';' if not as_glob else ' (a glob'}" \
        in message


def test_the_subject_split_holds_out_a_fifth_of_the_subjects_unstratified_by_default():
    split = SubjectValidSplit(random_state=0)
    assert repr(split) == "SubjectValidSplit(fraction=0.2, stratified=False, random_state=0)"
    train, valid = split.split_subjects(np.zeros(20))
    assert (len(train), len(valid)) == (16, 4)


def test_a_split_that_holds_out_every_subject_of_a_class_is_warned_of():
    """A rare class whose subjects a SubjectValidSplit all held out trained on none of them,
    without a word (and class_weight="balanced" had no window of it to weigh)."""
    labels = np.array(["control"] * 6 + ["patient"] * 2)
    X = offset_subjects((labels == "patient").astype(float))
    seeds = {}  # a seed whose split trains on no patient (True), one that trains on one
    for seed in range(50):
        train, _ = SubjectValidSplit(0.5, random_state=seed).split_subjects(labels)
        seeds.setdefault("patient" not in labels[train], seed)
    assert set(seeds) == {True, False}
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), class_weight="balanced",
                              train_split=SubjectValidSplit(0.5, random_state=seeds[True]))
    with pytest.warns(UserWarning, match=r"held out every subject of the class\(es\) "
                                         r"\['patient'\] \(2 subjects\).*stratified=True"):
        clf.fit(X, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.set_params(train_split__random_state=seeds[False]).fit(X, labels)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.2])
def test_a_fraction_of_subjects_outside_zero_one_is_refused(fraction):
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
        SubjectValidSplit(fraction, random_state=0).split_subjects(np.zeros(10))


def test_a_number_of_folds_given_as_the_fraction_is_told_the_fraction_it_means():
    """skorch's ValidSplit(5) holds out one of 5 folds; SubjectValidSplit(5) said only that
    the fraction must be in (0, 1)."""
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\), got 5 \(a fraction of "
                                         r"the subjects, such as 0\.2; skorch's ValidSplit\(5\) "
                                         r"holds out one of 5 folds"):
        SubjectValidSplit(5, random_state=0).split_subjects(np.zeros(10))


@pytest.mark.parametrize("fraction", ["0.2", None])
def test_a_fraction_of_subjects_that_is_not_a_number_is_refused_by_name(fraction):
    with pytest.raises(ValueError, match=r"^SubjectValidSplit's fraction must be in \(0, 1\), "
                                         rf"got {re.escape(repr(fraction))}$"):
        SubjectValidSplit(fraction, random_state=0).split_subjects(np.zeros(10))


@pytest.mark.parametrize("random_state", [np.random.default_rng(0), -1, 2**32, 1.5, "0"])
def test_a_split_random_state_that_cannot_seed_is_refused_by_name(random_state):
    """Such a seed was reported as a split that 'cannot split 8 subjects', with the advice to
    hold out a larger fraction or give more subjects."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    split = SubjectValidSplit(0.5, random_state=random_state)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, train_split=split))
    with pytest.raises(ValueError, match=r"^SubjectValidSplit's random_state must be an int in "
                                         r"\[0, 2\*\*32 - 1\], a numpy.random.RandomState or "
                                         rf"None, got {re.escape(repr(random_state))}$"):
        clf.fit(X, y)
    assert not hasattr(clf, "module_")


@pytest.mark.parametrize("split", [0.2, KFold(3)])
def test_a_train_split_that_is_not_callable_is_refused_naming_what_to_pass(split):
    """A fraction or a CV object (skorch calls train_split) is named before any work, and a
    fitted estimator keeps its model; skorch had failed with "'float' object is not
    callable" once the model was built."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    before = clf.predict_proba(X)
    with pytest.raises(ValueError, match="train_split=.*SubjectValidSplit"):
        clf.set_params(train_split=split).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), before)


def test_false_and_zero_train_split_train_on_every_subject_as_in_skorch():
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    for split in (False, 0):
        clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, train_split=split))
        assert "valid_loss" not in clf.fit(X, y).history_[-1]


def test_the_subject_split_splits_the_windows_of_brainjepa_estimators_only():
    from skorch.dataset import Dataset

    windows = Dataset(np.zeros((4, 4, 2), np.float32), np.zeros(4))
    with pytest.raises(TypeError, match="windows of BrainJEPA estimators only"):
        SubjectValidSplit(0.5, random_state=0)(windows)


def test_skorchs_window_split_is_warned_about():
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((16, N_REGIONS)) for _ in range(10)]
    with pytest.warns(UserWarning, match="SubjectValidSplit"):
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), window="sliding",
                            stride=8, train_split=ValidSplit(2)).fit(X, np.tile([0, 1], 5))


# -- weights -----------------------------------------------------------------------------------

def test_weights_from_a_research_checkpoint_and_the_default_weights(
        official_dir, research_model, reference, tmp_path, monkeypatch):
    X = reference["x_nilearn"]
    y = np.arange(len(X)) % 2
    probe = BrainJEPAClassifier(
        official_dir / "checkpoint.pth.tar", gradients=official_dir / "gradient.csv",
        num_heads=4, freeze_encoder=True, max_epochs=1, verbose=0,
    ).fit(X, y)
    assert_same_module_weights(probe.module_.encoder, research_model.target_encoder)
    assert probe.preprocessor_.normalization == "global_zscore"  # the research default
    use_local_ukbiobank(monkeypatch, official_dir)  # the test checkpoint stands in
    default = BrainJEPARegressor(data_dir=tmp_path, num_heads=4, t_r=0.735, max_epochs=1,
                                 freeze_encoder=True, verbose=0)
    rng = np.random.default_rng(0)
    series = rng.standard_normal((4, 150, 24)) + 1000
    default.fit(series, rng.standard_normal(4))
    embedder = BrainJEPAEmbedder(data_dir=tmp_path, num_heads=4, t_r=0.735).fit(series)
    np.testing.assert_equal(default.preprocessor_.to_dict(), embedder.preprocessor_.to_dict())
    assert default.preprocessor_.target_t_r == pytest.approx(2.205)


def test_our_checkpoint_carries_its_preprocessing(tmp_path):
    model = tiny_module()
    X = offset_subjects(np.zeros(6)) * 5 + 3
    preprocessor = Preprocessor(n_frames=8, normalization="robust", window="first").fit(list(X))
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, preprocessing=preprocessor.to_dict())
    clf = BrainJEPAClassifier(path, **fast(max_epochs=1, normalization="auto")).fit(
        X[:4], [0, 1, 0, 1])
    np.testing.assert_equal(clf.preprocessor_.to_dict(), preprocessor.to_dict())


def test_the_callers_module_is_left_untouched():
    module = tiny_module().train()
    before = copy.deepcopy(module)
    clf = BrainJEPAClassifier(module, **FAST).fit(offset_subjects(np.zeros(4)), [0, 1, 0, 1])
    assert_same_module(module, before)
    assert clf.module_.encoder is not module.target_encoder
    assert clf.get_params()["weights"] is module


def test_a_bf16_module_is_fine_tuned_as_its_float32_copy():
    X, y = offset_subjects(np.zeros(4)), [0, 1, 0, 1]
    module = tiny_module().to(torch.bfloat16)
    clf = BrainJEPAClassifier(module, **FAST).fit(X, y)
    reference = BrainJEPAClassifier(copy.deepcopy(module).float(), **FAST).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), reference.predict_proba(X))
    assert {p.dtype for p in module.parameters()} == {torch.bfloat16}


# -- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("estimator", [BrainJEPAClassifier, BrainJEPARegressor])
def test_a_connectivity_matrix_among_the_series_is_refused_naming_it(estimator, tmp_path):
    """A correlation matrix (a connectome saved next to the series) given as one subject was
    fine-tuned on, and predicted, as an 8-frame series without a word; files are named. A
    square series (as many frames as regions) is still taken."""
    X, y = list(offset_subjects(np.tile([0.0, 1.0], 4))), np.tile([0, 1], 4)
    connectome = np.corrcoef(np.concatenate(X).T)  # (8, 8)
    with_connectome = X[:6] + [connectome] + X[7:]  # in subject 6's place
    message = (r"subject 6 looks like a connectivity matrix, not a time series: it is square "
               rf"\(8 x 8\) and symmetric with a unit diagonal.*{estimator.__name__} takes")
    with pytest.raises(ValueError, match="^" + message):
        estimator(tiny_module(), **fast(max_epochs=1)).fit(with_connectome, y)
    net = estimator(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    with pytest.raises(ValueError, match="^" + message):
        net.predict(with_connectome)
    paths = [tmp_path / f"sub-{i}.npy" for i in range(8)]
    paths[6] = tmp_path / "conn.npy"
    for path, x in zip(paths, with_connectome):
        np.save(path, x)
    with pytest.raises(ValueError, match=f"^{re.escape(str(paths[6]))}: {message}"):
        estimator(tiny_module(), **fast(max_epochs=1)).fit(paths, y)
    with pytest.raises(ValueError, match=f"^{re.escape(str(paths[6]))}: {message}"):
        net.predict(paths)
    square = offset_subjects(np.tile([0.0, 1.0], 4), n_timepoints=N_REGIONS)  # 8 x 8 each
    assert estimator(tiny_module(), **fast(max_epochs=1)).fit(square, y).predict(
        square).shape == (8,)


def test_bad_input_gets_clear_errors_and_a_failed_fit_changes_nothing():
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    module, proba = clf.module_, clf.predict_proba(X)
    with pytest.raises(ValueError, match="3 regions"):
        clf.fit(X[:, :, :3], y)
    with pytest.raises(ValueError, match="6 subjects but y has 5"):
        clf.fit(X, y[:5])
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(X, np.zeros(6))
    with pytest.raises(ValueError, match="BrainJEPAClassifier requires y to be passed"):
        clf.fit(X)
    bad = X.copy()
    bad[2, 3, 1] = np.nan
    embedder_error = pytest.raises(ValueError)
    with embedder_error as from_embedder:
        BrainJEPAEmbedder(tiny_module(), normalization=None).fit(bad)
    with pytest.raises(ValueError) as from_classifier:
        clf.fit(bad, y)
    assert str(from_classifier.value) == str(from_embedder.value).replace(
        "BrainJEPAEmbedder", "BrainJEPAClassifier")
    for setting, message in [(dict(pooling="tokens"), "tokens"),
                             (dict(layer_decay=0.0), "layer_decay"),
                             (dict(drop_path_rate=1.0), "drop_path_rate"),  # every block off
                             (dict(freeze_encoder="yes"), "freeze_encoder"),
                             (dict(precision="fp16"), "precision"),
                             (dict(optimizer__param_groups=[("head*", {"lr": 1.0})]),
                              "param_groups")]:
        with pytest.raises(ValueError, match=message):
            clone(clf).set_params(**setting).fit(X, y)
    # the module is built from weights: skorch would rebuild a fitted one for module__*
    with pytest.raises(ValueError, match="module__depth: .* takes no module__ settings"):
        clf.set_params(module__depth=2)
    with pytest.raises(ValueError, match="module__depth"):
        BrainJEPAClassifier(tiny_module(), module__depth=2).fit(X, y)
    assert "module__depth" not in clf.get_params()
    # nor another module (refused before fit, but a fitted net was rebuilt from weights)
    with pytest.raises(ValueError, match=r"module: .*\(nor another module\)"):
        clf.set_params(module=torch.nn.Linear)
    assert clf.module_ is module
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    with pytest.raises(ValueError, match="requires y"):
        BrainJEPARegressor(tiny_module()).fit(X, None)


@pytest.mark.parametrize("n_targets", [5, 7])
def test_a_regressors_targets_of_another_count_than_the_subjects_are_refused(n_targets):
    """As the classifier's labels: more targets than subjects were trained on silently (each
    window took its subject's row of y, the extra rows left out)."""
    X = offset_subjects(np.zeros(6))
    with pytest.raises(ValueError, match=f"X has 6 subjects but y has {n_targets} targets"):
        BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, np.arange(n_targets * 1.0))


@pytest.mark.parametrize("estimator", [BrainJEPAClassifier, BrainJEPARegressor])
def test_a_misspelt_argument_is_named_with_the_parameter_it_resembles(estimator):
    """skorch said "__init__() got unexpected argument(s) max_epoch. Either you made a typo,
    or you added new arguments in a subclass; ...", without the parameter meant."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    name = estimator.__name__
    with pytest.raises(ValueError, match=rf"^{name} got unexpected argument\(s\): freeze \(did "
                                         r"you mean freeze_encoder\?\), max_epoch \(did you mean "
                                         r"max_epochs\?\)\. Its parameters are its constructor's"):
        estimator(tiny_module(), max_epoch=2, freeze=True, **fast()).fit(X, y)
    with pytest.raises(ValueError, match=rf"^{name} got unexpected argument\(s\): "
                                         r"learning_rate\. Its parameters"):
        estimator(tiny_module(), learning_rate=1e-3, **fast()).fit(X, y)
    # the other fine-tuner's parameter is named as its, not taken for a misspelling (the
    # regressor's class_weight had been "did you mean weights?")
    other, key = ((BrainJEPARegressor, "standardize_targets") if estimator is BrainJEPAClassifier
                  else (BrainJEPAClassifier, "class_weight"))
    with pytest.raises(ValueError, match=rf"unexpected argument\(s\): {key} \(a parameter of "
                                         rf"{other.__name__}, not of {name}\)\. Its parameters"):
        estimator(tiny_module(), **{key: "balanced"}, **fast()).fit(X, y)
    # a prefixed one by its prefix
    with pytest.raises(ValueError, match=r"optimzer__betas \(did you mean optimizer__betas\?\)"):
        estimator(tiny_module(), optimzer__betas=(0.9, 0.99), **fast()).fit(X, y)
    # skorch's own advice on a prefix without its double underscore is kept
    with pytest.raises(ValueError, match=r"(?s)max_epoch \(did you mean max_epochs\?\).*\n"
                                         r"Got an unexpected argument iterator_train_shuffle, "
                                         r"did you mean iterator_train__shuffle\?"):
        estimator(tiny_module(), max_epoch=2, iterator_train_shuffle=True, **fast()).fit(X, y)


@pytest.mark.parametrize("estimator", [BrainJEPAClassifier, BrainJEPARegressor])
def test_a_negative_max_epochs_is_refused_and_the_fitted_model_kept(estimator):
    """skorch trains no epoch for max_epochs=-1 (PyTorch Lightning's "no limit"): the fit
    would replace the fitted model by an untrained one without a word."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)
    net = estimator(tiny_module(), **fast(max_epochs=2)).fit(X, y)
    prediction = net.predict(X)
    with pytest.raises(ValueError, match=r"'max_epochs' parameter .* range \[0, inf\). Got -1"):
        net.set_params(max_epochs=-1).fit(X, y)
    np.testing.assert_array_equal(net.predict(X), prediction)
    assert len(net.history_) == 2
    assert len(net.set_params(max_epochs=0).fit(X, y).history_) == 0  # builds, trains nothing


@pytest.mark.parametrize("parameter", ["warm_start", "compile"])
def test_warm_start_and_compile_are_refused_unless_true_or_false(parameter):
    """skorch took any value for its truth: warm_start="no" continued a fitted model's
    training, and compile="no" compiled the module (a fitted one at once, in set_params);
    refused before anything is trained or compiled, the fitted estimator left as it was."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, y.astype(float))
    prediction = reg.predict(X)
    allowed = r"a str among \{'auto'\} or an instance of 'bool'" if parameter == "compile" \
        else r"an instance of 'bool'"
    with pytest.raises(ValueError, match=rf"^The '{parameter}' parameter of BrainJEPARegressor "
                                         rf"must be {allowed}.* Got 'no' instead"):
        reg.set_params(**{parameter: "no"}).fit(X, y.astype(float))
    assert len(reg.history_) == 1
    np.testing.assert_array_equal(reg.predict(X), prediction)
    reg.set_params(**{parameter: np.False_}).fit(X, y.astype(float))  # a NumPy bool is one


@pytest.mark.parametrize("estimator", [BrainJEPAClassifier, BrainJEPARegressor])
def test_use_caching_is_checked_before_the_fit_not_when_predicting_after_it(estimator):
    """skorch checks it only when predicting: a whole fit had run before "Incorrect value for
    use_caching"."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    trained = []

    class Epochs(Callback):
        def on_epoch_end(self, net, **kwargs):
            trained.append(len(net.history_))

    net = estimator(tiny_module(), **fast(max_epochs=1), callbacks=[Epochs()])
    with pytest.raises(ValueError, match=rf"^The 'use_caching' parameter of {estimator.__name__} "
                                         r"must be a str among \{'auto'\} or an instance of "
                                         r"'bool'.* Got 'yes' instead"):
        net.set_params(use_caching="yes").fit(X, y)
    assert not trained
    net.set_params(use_caching=np.True_).fit(X, y).predict(X)  # a NumPy bool is one
    assert trained == [1]


@pytest.mark.parametrize("estimator", [BrainJEPAClassifier, BrainJEPARegressor])
def test_lr_and_batch_size_are_checked_by_name_and_numpy_integers_taken(estimator):
    """skorch passes lr and batch_size on unchecked: lr="1e-3" failed in the layer-wise decay
    with "can't multiply sequence by non-int of type 'float'", and a NumPy integer batch size
    (a grid of np.arange) in torch's DataLoader with "batch_size should be a positive integer
    value, but got batch_size=4". Both refused by name before anything is built, the fitted
    model kept; NumPy integers and skorch's -1 (one batch of all the windows) train."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)
    net = estimator(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    prediction = net.predict(X)
    for name, value in [("lr", "1e-3"), ("lr", -1.0), ("lr", None), ("batch_size", "8"),
                        ("batch_size", 0), ("batch_size", 2.5)]:
        with pytest.raises(ValueError, match=rf"The '{name}' parameter of {estimator.__name__}"):
            clone(net).set_params(**{name: value}).fit(X, y)
        with pytest.raises(ValueError, match=rf"The '{name}' parameter"):
            net.set_params(**{name: value}).fit(X, y)
        net.set_params(**fast(max_epochs=1))
        np.testing.assert_array_equal(net.predict(X), prediction)
    # optimizer__lr overrides lr, in the groups too
    for setting in ({"optimizer__lr": "1e-3"}, {"optimizer__lr": "1e-3", "warm_start": True}):
        with pytest.raises(ValueError, match=r"^optimizer__lr='1e-3' must be a non-negative"):
            clone(net).set_params(**setting).fit(X, y)
        with pytest.raises(ValueError, match=r"^optimizer__lr='1e-3' must be a non-negative"):
            net.set_params(**setting).fit(X, y)
        net.set_params(optimizer__lr=FAST["lr"], warm_start=False)
        np.testing.assert_array_equal(net.predict(X), prediction)
    # the loaders' own batch sizes too (torch: "... but got batch_size=4" for "4")
    for key in ("iterator_train__batch_size", "iterator_valid__batch_size"):
        for value in ("4", 0, 2.5):
            with pytest.raises(ValueError, match=rf"^{key}={value!r} must be an int >= 1"):
                clone(net).set_params(**{key: value}).fit(X, y)
        assert len(clone(net).set_params(**{key: np.int64(4)}).fit(X, y).history_) == 1
    for batch_size in [np.int64(4), np.int32(2), -1]:
        fitted = clone(net).set_params(batch_size=batch_size).fit(X, y)
        assert len(fitted.history_) == 1
        assert fitted.get_params()["batch_size"] is batch_size
    search = GridSearchCV(clone(net), {"batch_size": np.array([2, 4])}, cv=2,
                          error_score="raise").fit(X, y)
    assert search.best_params_["batch_size"] in (2, 4)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("epochs", [-1, 2.5, True])
def test_epochs_passed_to_fit_are_held_to_the_rule_of_max_epochs(method, epochs):
    """skorch's epochs argument of fit: -1 trained no epoch, so that fit replaced the fitted
    model by an untrained one without a word (2.5 failed with Python's message once the
    model was built). Refused first, naming it, and the fitted model kept; 0 still trains
    nothing."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)
    net = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2)).fit(X, y)
    proba = net.predict_proba(X)
    with pytest.raises(ValueError, match=rf"^epochs passed to {method} must be an int >= 0 "
                                         rf"\(or None for max_epochs\), got {epochs!r}$"):
        getattr(net, method)(X, y, epochs=epochs)
    np.testing.assert_array_equal(net.predict_proba(X), proba)
    assert len(net.history_) == 2
    net.partial_fit(X, y, epochs=0)
    np.testing.assert_array_equal(net.predict_proba(X), proba)


def test_a_continued_fit_refuses_another_number_of_targets():
    X = offset_subjects(np.linspace(-1, 1, 8))
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, np.arange(8.0))
    prediction = reg.predict(X)
    with pytest.raises(ValueError, match=r"y has 2 target column\(s\) but the model was fitted "
                                         r"on 1: a continued fit \(warm_start=True or "
                                         r"partial_fit\) takes the same targets; fit anew with "
                                         "warm_start=False"):
        reg.partial_fit(X, np.ones((8, 2)))
    assert len(reg.history_) == 1
    np.testing.assert_array_equal(reg.predict(X), prediction)
    reg.set_params(warm_start=False).fit(X, np.ones((8, 2)))  # as the message says
    assert reg.n_outputs_ == 2


@pytest.mark.parametrize("y, message", [
    (np.array(["a", "b"] * 4), r"y holds text, not numbers \(.*'a'.*\): BrainJEPARegressor "
                               "predicts numbers; for class labels use BrainJEPAClassifier"),
    (np.array(["low", 1.0] * 4, dtype=object), "y holds text, not numbers"),
    (np.arange(8).astype("datetime64[D]"), r"y holds dates or durations \(datetime64\[D\]\)"),
    (pd.Series(pd.to_timedelta(np.arange(8), unit="D")), "y holds dates or durations"),
    # a DataFrame has no dtype of its own: its column of dates had been fitted as nanoseconds
    (pd.DataFrame({"visit": pd.date_range("2020-01-01", periods=8)}),
     r"y holds dates or durations \(datetime64\[\w+\]\)"),
    (np.array([{"age": 30.0}] * 8, dtype=object),
     r"^y holds values that are not numbers \(.*dict.*\): BrainJEPARegressor predicts one "
     "number per target and subject$"),
    (np.array([]), r"^X has 8 subjects but y has 0 targets$"),
])
def test_a_regression_target_of_text_or_dates_is_refused_naming_y(y, message):
    """Text had given numpy's bare "could not convert string to float", dates had been
    trained on as their raw counts of days or nanoseconds, other objects had given float()'s
    bare TypeError, and an empty y scikit-learn's "Found array with 0 sample(s)", not naming
    y."""
    X = offset_subjects(np.linspace(-1, 1, 8))
    with pytest.raises(ValueError, match=message):
        BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, y)


@pytest.mark.parametrize("y", [
    np.array(["a", "b", np.nan, "b"] * 2, dtype=object),  # an empty cell of pandas.read_csv
    np.array(["a", "b", None, "b"] * 2, dtype=object),
    pd.array(["a", "b", None, "b"] * 2, dtype="string"),  # pandas.NA
    pd.Series(pd.Categorical(["a", "b", None, "b"] * 2)),
    np.array([0.0, 1.0, np.nan, 1.0] * 2),
], ids=["text_nan", "text_none", "pandas_na", "categorical", "float_nan"])
def test_a_missing_label_is_refused_naming_the_subject_and_the_fit_kept(y):
    """Text labels with one missing had failed in NumPy's sort ("'<' not supported between
    instances of 'float' and 'str'"), and numbers with a NaN said only "Input y contains NaN"."""
    X = offset_subjects(np.tile([0.0, 1.0], 4))
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, np.tile([0, 1], 4))
    proba = clf.predict_proba(X)
    for fit in (clf.fit, functools.partial(clf.partial_fit, classes=[0, 1])):
        with pytest.raises(ValueError, match=r"y has a missing label \(NaN or None\) for 2 "
                                             r"subject\(s\), first subject 2: .* out of both X "
                                             "and y"):
            fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


@pytest.mark.parametrize("classes, message", [
    ([0, 1, np.nan], r"classes \[0.0, 1.0, nan\] holds a missing value \(NaN or None\) at "
                     "position 2"),
    # two missing: the first is named
    ([np.nan, 0, 1, np.nan], r"classes \[nan, 0.0, 1.0, nan\] holds a missing value \(NaN or "
                             r"None\) at position 0:"),
    ([[0, 1]], r"classes must be a 1-D list of labels, one per output, got \[\[0, 1\]\] "
               r"\(2-D\)"),
    ("01", r"classes must be a 1-D list of labels, one per output, got '01' \(0-D\)"),
    (np.array([0, 1, "2"], dtype=object), r"classes \[0, 1, '2'\] mixes labels of types \['int', 'str'\]"),
])
def test_classes_that_are_no_list_of_labels_are_refused_by_name(classes, message):
    """A NaN class had been taken (an output that never trains), and the others had failed
    with Python's "unhashable type" or "len() of unsized object", or NumPy's sort error."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    with pytest.raises(ValueError, match=message):
        BrainJEPAClassifier(tiny_module(), classes=classes, **fast(max_epochs=1)).fit(X, y)
    with pytest.raises(ValueError, match=message.replace("classes", "partial_fit's classes")):
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).partial_fit(X, y, classes)


@pytest.mark.parametrize("y, message", [
    (["a", 1, "b", 0], r"y mixes labels of text and numbers \(subject 0 is 'a', subject 1 is "
                       r"1\), .* e\.g\. y\.astype\(str\)"),
    ([1, "a", 0, "b"], r"y mixes labels of text and numbers \(subject 1 is 'a', subject 0 is "
                       r"1\)"),
    ([0, 1, 0, 1], r"Unknown label type: y holds numbers as Python objects .* y\.astype\(int\)"),
    ([{"dx": 1}, {"dx": 0}] * 2, r"^y holds a dict for subject 0 \(\{'dx': 1\}\), which is no "
                                 r"class label: .* a number, a string or a bool"),
    (["a", "b", "a", {"b"}], r"^y holds a set for subject 3 \(\{'b'\}\), which is no class "
                             r"label"),
], ids=["text_first", "number_first", "numbers", "dicts", "a_set_after_text"])
def test_labels_of_several_kinds_are_refused_naming_the_subjects(y, message):
    """A column of labels read as objects with a number among text had failed with NumPy's
    "'<' not supported between instances of 'int' and 'str'", or scikit-learn's "Unknown label
    type: unknown ... continuous values", which it also said of numbers held as objects and of
    dicts (rows of a table given as y)."""
    X = offset_subjects(np.tile([0.0, 1.0], 2))
    with pytest.raises(ValueError, match=message):
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(
            X, pd.Series(y, dtype=object))


def test_continuous_targets_are_refused_pointing_to_the_regressor():
    """Ages given to the classifier said only scikit-learn's "Unknown label type: continuous":
    a new user learns there which estimator fits a continuous phenotype."""
    X = offset_subjects(np.tile([0.0, 1.0], 2))
    ages = pd.Series([23.0, 41.25, 35.0, 60.75], name="age")  # whole years first
    with pytest.raises(ValueError, match=r"^Unknown label type: continuous\. y holds continuous "
                                         r"values \(41\.25 for subject 1\), not class labels: "
                                         r"to predict them, use BrainJEPARegressor"):
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, ages)


def test_integer_valued_floats_beyond_int64_keep_scikit_learns_continuous_error():
    """Labels of 1e20 are "continuous" to scikit-learn (beyond int64) but have no fraction:
    the refusal naming a fraction failed there with an IndexError."""
    X = offset_subjects(np.tile([0.0, 1.0], 2))
    with pytest.raises(ValueError, match=r"^Unknown label type: continuous"):
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, [1e20, 2e20] * 2)


def test_score_names_a_missing_label_or_target_too():
    """Scoring held-out subjects whose text labels have one missing had failed in NumPy's sort,
    and a NaN target said only "Input contains NaN"."""
    X = offset_subjects(np.tile([0.0, 1.0], 2))
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, list("abab"))
    with pytest.raises(ValueError, match=r"y has a missing label \(NaN or None\) for 1 "
                                         r"subject\(s\), first subject 3"):
        clf.score(X, np.array(["a", "b", "a", np.nan], dtype=object))
    assert 0 <= clf.score(X, list("abab")) <= 1
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match=r"y has a missing target \(NaN or None\) for 1 "
                                         r"subject\(s\), first subject 0"):
        reg.score(X, [np.nan, 2.0, 3.0, 4.0])
    assert np.isfinite(reg.score(X, [1.0, 2.0, 3.0, 4.0]))


def test_score_names_a_y_of_another_length_as_fit_does():
    """scikit-learn's score said "Found input variables with inconsistent numbers of samples:
    [3, 4]"; the score itself is scikit-learn's (accuracy, R²), sample weights included."""
    X = offset_subjects(np.tile([0.0, 1.0], 2))
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, list("abab"))
    with pytest.raises(ValueError, match=r"^X has 4 subjects but y has 3 labels$"):
        clf.score(X, list("aba"))
    weights = np.array([1.0, 2.0, 3.0, 4.0])
    assert clf.score(X, list("abab"), sample_weight=weights) == accuracy_score(
        list("abab"), clf.predict(X), sample_weight=weights)
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match=r"^X has 4 subjects but y has 5 targets$"):
        reg.score(X, [1.0, 2.0, 3.0, 4.0, 5.0])
    assert reg.score(X, [1.0, 2.0, 3.0, 5.0], sample_weight=weights) == r2_score(
        [1.0, 2.0, 3.0, 5.0], reg.predict(X), sample_weight=weights)


@pytest.mark.parametrize("y, where", [
    (np.array([1.0, None, 2.0, 3.0] * 2, dtype=object), "first subject 1:"),
    (pd.DataFrame({"age": [1.0, 2.0, 3.0, 4.0] * 2, "iq": [1.0, 2.0, np.nan, 4.0] * 2}),
     r"first subject 2, column 'iq': .* keep = pandas\.notna\(y\)\.all\(axis=1\)"),
    # a participants table's column: the subject named by its ID too
    (pd.Series([1.0, 2.0, 3.0, None] * 2, dtype="Float64",
               index=[f"sub-{k:02d}" for k in range(8)]),
     r"first subject 3 \('sub-03' in y's index\):"),
    (pd.DataFrame({"age": [1.0, 2.0, 3.0, 4.0] * 2, "iq": [1.0, 2.0, np.nan, 4.0] * 2},
                  index=[f"sub-{k:02d}" for k in range(8)]),
     r"first subject 2 \('sub-02' in y's index\), column 'iq':"),
], ids=["objects", "table", "ids", "table_ids"])
def test_a_missing_regression_target_is_refused_naming_the_subject(y, where):
    """A pandas y's index (participant IDs) names the subject too; the advice for a table of
    targets had been numpy.isfinite(y), a 2-D mask that X[keep] cannot take."""
    X = offset_subjects(np.linspace(-1, 1, 8))
    with pytest.raises(ValueError, match=rf"y has a missing target \(NaN or None\) for 2 "
                                         rf"subject\(s\), {where}"):
        BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, y)


@pytest.mark.parametrize("y", [
    pd.Series([1.0, None, 3.0, 4.0], dtype="Float64"),
    pd.DataFrame({"age": [1.0, 2.0, 3.0, 4.0], "iq": [1.0, None, 3.0, 4.0]}, dtype="Float64"),
    np.array([1.0, np.nan, 3.0, 4.0]),
    np.array(["a", None, "b", "a"], dtype=object),
    np.array([1.0, np.inf, 3.0, 4.0]),
    np.array([[1.0, 1.0], [2.0, -np.inf], [3.0, 3.0], [4.0, 4.0]]),
    [1.0, None, 3.0, 4.0],
    ["a", None, "b", "a"],
], ids=["nullable", "nullable_table", "nan", "labels", "inf", "inf_table", "list",
        "list_labels"])
def test_the_advice_for_missing_targets_keeps_exactly_the_subjects_with_one(y):
    """The advice, run as written on X as a list of arrays (what nilearn's maskers and
    make_brain_dynamics give), keeps the subjects with a target in both X and y, and the fit
    then runs. It had been numpy.isfinite(y), whose <NA> on a nullable column (pandas'
    Float64) no mask can take and which, on such a table, .all(axis=1) skips, keeping the
    subject without a target; and then X[keep], y[keep], which raises TypeError for a list X
    (or y)."""
    labels = np.asarray(y, dtype=object).dtype == object and any(
        isinstance(value, str) for value in np.ravel(np.asarray(y, dtype=object)))
    estimator = BrainJEPAClassifier if labels else BrainJEPARegressor
    X = list(offset_subjects(np.ones(4)))
    with pytest.raises(ValueError, match=r"\(e\.g\. keep = .+\)$") as error:
        estimator(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    advice = re.search(r"\(e\.g\. (keep = .+)\)$", str(error.value)).group(1)
    namespace = {"numpy": np, "pandas": pd, "X": X, "y": y}
    exec(advice, namespace)  # as the message says
    np.testing.assert_array_equal(np.asarray(namespace["keep"], dtype=bool),
                                  [True, False, True, True])
    assert [x is X[i] for i, x in zip([0, 2, 3], namespace["X"])] == [True] * 3
    assert len(namespace["X"]) == len(namespace["y"]) == 3
    estimator(tiny_module(), **fast(max_epochs=1)).fit(namespace["X"], namespace["y"])


@pytest.mark.parametrize("y", [np.array([1.0, np.nan, 3.0, 4.0]), [1.0, None, 3.0, 4.0]],
                         ids=["array", "list"])
@pytest.mark.parametrize("pattern", [lambda folder: str(folder / "*.npy"),
                                     lambda folder: np.array([str(folder / f"sub-{k}.npy")
                                                              for k in range(4)])],
                         ids=["glob", "array_of_paths"])
def test_the_advice_for_missing_targets_runs_on_files_given_as_a_glob(tmp_path, y, pattern):
    """The advice, run as written on X given as a glob, keeps the files of the subjects with a
    target, in the order fit reads them; it had zipped the glob string, keeping its
    characters. An array of paths keeps the advice for a list."""
    for k, x in enumerate(offset_subjects(np.ones(4))):
        np.save(tmp_path / f"sub-{k}.npy", x)
    X = pattern(tmp_path)
    with pytest.raises(ValueError, match=r"\(e\.g\. .+\)$") as error:
        BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    advice = re.search(r"\(e\.g\. (.+)\)$", str(error.value)).group(1)
    namespace = {"brainjepa_sk": brainjepa_sk, "numpy": np, "pandas": pd, "X": X, "y": y}
    exec(advice, namespace)  # as the message says
    assert [os.fspath(x) for x in namespace["X"]] == [
        str(tmp_path / f"sub-{k}.npy") for k in (0, 2, 3)]
    assert len(namespace["y"]) == 3
    BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(namespace["X"], namespace["y"])


@pytest.mark.parametrize("estimator", [BrainJEPAClassifier, BrainJEPARegressor])
@pytest.mark.parametrize("y, message", [
    (np.array([0.0, 1.0, np.inf, 1.0] * 2), r"y has an infinite {what} for 2 subject\(s\), "
                                            r"first subject 2: every subject needs a finite"),
    (np.array([0.0, 1.0] * 4) + 1j, r"^y holds complex values: pass the real part or the "
                                    r"magnitude \(y.real or np.abs\(y\)\) as the {what}s$"),
    ([[0.0], [1.0, 2.0]] * 4, r"^y has rows of different lengths: give one {what} per subject"),
], ids=["inf", "complex", "ragged"])
def test_targets_that_are_infinite_complex_or_ragged_are_refused_in_one_line(estimator, y,
                                                                              message):
    """scikit-learn had said "Input y contains infinity" without where, printed every value of
    a complex y, and NumPy had spoken of an "inhomogeneous shape"."""
    X = offset_subjects(np.tile([0.0, 1.0], 4))
    what = "label" if estimator is BrainJEPAClassifier else "target"
    with pytest.raises(ValueError, match=message.format(what=what)):
        estimator(tiny_module(), **fast(max_epochs=1)).fit(X, y)


@pytest.mark.parametrize("pooling", ["roi_std", "lagged"])
def test_a_pooling_over_time_patches_needs_two_and_a_failed_refit_keeps_the_fit(pooling):
    """As for the embedder: with one time patch per window there is no spread nor lag to
    pool, and fit says so, with what to change, before training (not the pooling's bare error
    from the first batch), leaving the fitted model as it was."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), pooling=pooling).fit(X, y)
    module, proba = clf.module_, clf.predict_proba(X)
    began = []

    class Begins(Callback):
        def on_train_begin(self, net, **kwargs):
            began.append(True)

    with pytest.raises(ValueError, match=r"got 1 \(use longer windows, n_frames >= 2 \* patch_size"):
        # one patch of 2 frames per window
        clf.set_params(n_frames=2, callbacks=[Begins()]).fit(X, y)
    assert not began  # refused before training began
    assert clf.module_ is module and len(clf.history_) == 1
    np.testing.assert_array_equal(clf.set_params(n_frames="auto").predict_proba(X), proba)


def test_a_one_feature_pooling_under_the_layernorm_head_is_refused():
    """"connectivity" on 2 regions pools one feature per window, which a LayerNorm maps to its
    bias: the fine-tuned model predicted the same value for every subject. fit says so; the
    linear probe (a BatchNorm head) keeps the feature's spread and fits."""
    X = np.random.default_rng(0).standard_normal((4, 12, 2)).cumsum(axis=1)
    y = np.arange(4.0)
    reg = BrainJEPARegressor(tiny_module(2), **fast(max_epochs=1), pooling="connectivity")
    with pytest.raises(ValueError, match=r'pooling="connectivity" gives 1 feature per window '
                                         r"on 2 regions.*freeze_encoder=True"):
        reg.fit(X, y)
    probe = reg.set_params(freeze_encoder=True).fit(X, y).predict(X)
    assert np.ptp(probe) > 0


def _assert_refused_leaving_the_fit(net, X, y, settings, message, call="fit"):
    """``settings`` are refused by ``call`` with ``message``, on a new net before anything is
    built, and on the fitted ``net``, which is left as it was (its module, optimizer, history
    and predictions); they are then taken back."""
    fresh = clone(net).set_params(**settings)
    with pytest.raises(ValueError, match=message):
        getattr(fresh, call)(X, y)
    assert not fresh.initialized_ and not hasattr(fresh, "preprocessor_")
    module, optimizer = net.module_, net.optimizer_
    history, prediction = list(net.history_), net.forward(X)
    original = {key: vars(net)[key] for key in settings if key in vars(net)}
    for key, value in settings.items():  # as attributes: set_params may build at once
        setattr(net, key, value)
    with pytest.raises(ValueError, match=message):
        getattr(net, call)(X, y)
    assert net.module_ is module and net.optimizer_ is optimizer
    assert list(net.history_) == history
    for key in settings:
        if key in original:
            setattr(net, key, original[key])
        else:  # a prefixed setting the net did not hold
            delattr(net, key)
    torch.testing.assert_close(net.forward(X), prediction)


@pytest.mark.parametrize("key", ["iterator_train__collate_fn", "iterator_valid__collate_fn",
                                 "iterator_train__worker_init_fn"])
def test_a_loader_function_that_is_not_callable_is_refused_before_anything_is_built(key):
    """skorch passes the loaders' settings on unchecked: torch's DataLoader called
    collate_fn=3 only at the first batch, once the preprocessing and the model were built,
    with "'int' object is not callable"."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)
    net = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                              train_split=SubjectValidSplit(0.5)).fit(X, y)
    _assert_refused_leaving_the_fit(net, X, y, {key: 3},
                                    rf"^{key}=3 is not callable: the loader calls its")
    assert len(clone(net).set_params(**{key: None}).fit(X, y).history_) == 1  # torch's default


@pytest.mark.parametrize("returned, shown", [
    (lambda dataset: dataset, "a SubjectWindows"),
    (lambda dataset: (dataset, None, None), "3 items"),
    (lambda dataset: (None, dataset), "None for the training windows"),
])
def test_a_train_split_that_returns_no_pair_of_datasets_is_refused_saying_what_it_returned(
        returned, shown):
    """skorch unpacked a split of one's own with "too many values to unpack (expected 2)"
    (or failed later on a None), naming neither the split nor what it returned."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)

    def split(dataset, y=None):
        return returned(dataset)

    net = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    _assert_refused_leaving_the_fit(
        net, X, y, {"train_split": split},
        rf"^train_split=<function .*split.*> returned {shown}: a split of one's own .* returns "
        r"a pair, \(training windows, validation windows or None\)")


@pytest.mark.parametrize("settings, named", [
    (dict(dataset=torch.utils.data.TensorDataset), r"dataset=<class '.*TensorDataset'>"),
    (dict(dataset__length=3), r"dataset__length"),
])
def test_skorch_dataset_is_refused_as_the_fine_tuners_make_their_own(settings, named):
    """skorch's dataset wraps fit's X and y as samples; the fine-tuners cut the subjects into
    windows of their own dataset, which skorch takes as it is: dataset and its settings were
    accepted and never used, without a word."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, y.astype(float))
    _assert_refused_leaving_the_fit(
        reg, X, y.astype(float), settings,
        rf"^{named}: BrainJEPARegressor takes no dataset of skorch's: .*SubjectWindows")


@pytest.mark.parametrize("call", ["fit", "partial_fit"])
def test_a_criterion_weight_of_another_length_than_the_classes_is_refused_naming_them(call):
    """torch refused it at the first batch, once the preprocessing and the model were built:
    "weight tensor should be defined either for all 2 classes or no classes but got weight
    tensor of shape: [3]"."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.array(["a", "b"] * 3)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    for weight, count in [(torch.ones(3), "3 weights"),
                          (torch.ones(2, 1), r"shape \(2, 1\), not one weight per class")]:
        _assert_refused_leaving_the_fit(
            clf, X, y, {"criterion__weight": weight},
            rf"^criterion__weight has {count}, but the model has 2 classes, \['a', 'b'\]: give "
            "one weight per class", call=call)
    weighted = clone(clf).set_params(criterion__weight=torch.tensor([1.0, 3.0])).fit(X, y)
    assert weighted.criterion_.weight.tolist() == [1.0, 3.0]


def test_an_optimizer_that_takes_no_layer_wise_groups_is_refused_before_a_fit():
    """LBFGS, which takes no parameter groups, was refused only once the model was built."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)
    net = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    _assert_refused_leaving_the_fit(net, X, y, dict(optimizer=torch.optim.LBFGS),
                                    r"^optimizer=LBFGS: LBFGS refuses it: .*parameter groups")
    # the net's learning rate is the one checked: 0 is one AdamW takes
    assert len(clone(net).set_params(lr=0.0, min_lr=0.0, optimizer__betas=(0.8, 0.9)).fit(
        X, y).history_) == 1


def test_sparse_adam_is_refused_by_torch_for_dense_gradients_not_for_a_rate_never_set():
    """Given settings, SparseAdam was refused for "Invalid learning rate: 0.0" (the check built
    it at a rate of 0); it is built at the net's rate, and torch names what it cannot train at
    the first batch, a fitted net left as it was."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)
    net = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    module, history = net.module_, list(net.history_)
    net.set_params(optimizer=torch.optim.SparseAdam, optimizer__betas=(0.9, 0.99))
    with pytest.raises(RuntimeError, match="does not support dense gradients"):
        net.fit(X, y)
    assert net.module_ is module and list(net.history_) == history


@pytest.mark.parametrize("kind", ["list", "object array", "Series", "2-D list"])
def test_a_regressor_y_of_dicts_is_refused_by_fit_partial_fit_and_score_naming_the_subject(
        kind):
    """score failed with Python's bare "float() argument must be a string or a real number,
    not 'dict'"; fit and partial_fit said so without the subject."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0.0, 1.0], 3)
    values = [1.0, 2.0, {"age": 3}, 4.0, 5.0, 6.0]
    bad = {"list": values, "object array": np.array(values, dtype=object),
           "Series": pd.Series(values, index=[f"sub-{k}" for k in range(6)]),
           "2-D list": [[value, 0.0] for value in values]}[kind]
    message = (r"^y holds values that are not numbers \(.*'dict'\), first a dict for subject 2 "
               r"\(\{'age': 3\}\): BrainJEPARegressor predicts one number")
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    with pytest.raises(ValueError, match=message):
        reg.score(X, bad)
    for call in ("fit", "partial_fit"):
        _assert_refused_leaving_the_fit(reg, X, bad, {}, message, call=call)


@pytest.mark.gpu
def test_a_capturable_optimizer_trains_on_a_cuda_device():
    """capturable=True is a setting torch takes for CUDA parameters: the check builds the
    optimizer without stepping it."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)
    net = BrainJEPAClassifier(tiny_module(), optimizer__capturable=True,
                              **fast(max_epochs=1, device="cuda")).fit(X, y)
    assert net.optimizer_.defaults["capturable"] and len(net.history_) == 1


def test_the_optimizer_check_steps_unseen_by_global_optimizer_step_hooks():
    """The hooks registered for every optimizer's step see the net's optimizer only: the
    check of the optimizer builds one over parameters of its own, never stepped."""
    from torch.optim.optimizer import (
        register_optimizer_step_post_hook,
        register_optimizer_step_pre_hook,
    )
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)
    stepped = []
    handles = [register(lambda optimizer, args, kwargs: stepped.append(optimizer))
               for register in (register_optimizer_step_pre_hook,
                                register_optimizer_step_post_hook)]
    try:
        net = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    finally:
        for handle in handles:
            handle.remove()
    assert stepped and all(optimizer is net.optimizer_ for optimizer in stepped)


@pytest.mark.parametrize("weight", [[1, 3], (1.0, 3.0), np.array([1.0, 3.0]),
                                    torch.tensor([1, 3]), torch.tensor([1.0, 3.0],
                                                                       dtype=torch.float64)])
def test_a_criterion_weight_of_numbers_trains_as_float32_class_weights(weight):
    """A list or a NumPy array failed once the model was built (torch: "cannot assign 'list'
    object to buffer 'weight'"), a tensor of integers or float64 at the first batch
    ("expected scalar type Float but found Long")."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.array(["a", "b"] * 3)
    net = BrainJEPAClassifier(tiny_module(), criterion__weight=weight,
                              **fast(max_epochs=1)).fit(X, y)
    assert net.criterion_.weight.dtype == torch.float32
    assert net.criterion_.weight.tolist() == [1.0, 3.0] and len(net.history_) == 1
    assert net.get_params()["criterion__weight"] is weight  # the parameter as given


class _ScaledCrossEntropy(torch.nn.Module):
    """A loss of one's own whose ``weight`` is one number scaling the cross-entropy."""

    def __init__(self, weight=1.0):
        super().__init__()
        self.weight = weight

    def forward(self, logits, targets):
        return self.weight * torch.nn.functional.cross_entropy(logits, targets)


def test_a_criterion_weight_of_a_loss_of_ones_own_is_passed_to_it_unchecked():
    """The length check of criterion__weight holds for torch's losses that weigh classes;
    a loss of one's own may mean another thing by its weight."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.tile([0, 1], 3)
    net = BrainJEPAClassifier(tiny_module(), criterion=_ScaledCrossEntropy,
                              criterion__weight=2.0, **fast(max_epochs=1)).fit(X, y)
    assert net.criterion_.weight == 2.0 and len(net.history_) == 1


# -- the torch module --------------------------------------------------------------------------

@pytest.mark.parametrize("pooling", ["mean", "roi", "roi_std", "connectivity", "lagged"])
@pytest.mark.parametrize("freeze_encoder", [False, True])
def test_the_head_takes_every_pooling_and_a_frozen_encoder_gets_no_gradient(pooling,
                                                                            freeze_encoder):
    encoder = tiny_module().target_encoder.requires_grad_(True)
    model = EncoderWithHead(encoder, 3, pooling=pooling, freeze_encoder=freeze_encoder,
                            head="batchnorm" if freeze_encoder else "layernorm").train()
    windows = torch.randn(5, 8, N_REGIONS)
    assert model.forward_features(windows).shape[1] == model.pooling.n_features(8)
    model(windows).square().sum().backward()
    assert model.head.linear.weight.grad is not None
    encoder_grads = [p.grad is not None for p in model.encoder.parameters()]
    assert not any(encoder_grads) if freeze_encoder else all(encoder_grads)
    assert model.encoder.training is not freeze_encoder


@pytest.mark.parametrize("final_norm", [True, False])
def test_a_frozen_encoder_gives_the_embedders_features(final_norm):
    # the linear probe reads what BrainJEPAEmbedder returns, final norm or not
    X, y = offset_subjects(np.tile([0.0, 1.0], 2), n_timepoints=8), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), freeze_encoder=True,
                              pooling="roi_std", final_norm=final_norm).fit(X, y)
    with torch.no_grad():
        features = clf.module_.forward_features(torch.from_numpy(X).float()).numpy()
    embedder = BrainJEPAEmbedder(tiny_module(), pooling="roi_std", final_norm=final_norm,
                                 normalization=None).fit(X)
    np.testing.assert_allclose(features, embedder.transform(X), rtol=1e-5, atol=1e-6)
    other = embedder.set_params(final_norm=not final_norm).transform(X)
    assert np.abs(features - other).max() > 0.1


#: Preprocessing settings that differ from every default the embedder would fall back to.
_OWN_PREPROCESSING = dict(t_r=1.0, model_t_r=2.0, n_frames=8, window="sliding", stride=4,
                          normalization="robust")


def _named(X, names):
    return [pd.DataFrame(x, columns=names) for x in X]


def _assert_same_preprocessing(preprocessing, reference):
    """Two ``Preprocessor.to_dict()`` dicts are equal, their statistics included."""
    assert preprocessing.keys() == reference.keys()
    for key, value in reference.items():
        np.testing.assert_array_equal(preprocessing[key], value, err_msg=key)


def test_the_fine_tuned_encoder_embeds_with_the_fine_tuners_preprocessing():
    """``BrainJEPAEmbedder(weights=clf.module_.encoder)`` applies the fine-tuner's window,
    TR, scaling and robust statistics (not the embedder's defaults): its embeddings are the
    fine-tuned encoder's on the fine-tuner's own windows; a further fine-tuner starts from
    the same preprocessing."""
    names = [f"roi{i}" for i in range(N_REGIONS)]
    X = _named(offset_subjects(np.tile([0.0, 1.0], 3), n_timepoints=40) * 5 + 3, names)
    y = np.tile([0, 1], 3)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, **_OWN_PREPROCESSING)).fit(X, y)
    # the input's TR describes the data, so it is given again (it is never taken from weights)
    embedder = BrainJEPAEmbedder(weights=clf.module_.encoder, t_r=1.0).fit(X)
    own = clf.preprocessor_.to_dict()
    assert own["median_"] is not None  # statistics learned by the fine-tuner
    _assert_same_preprocessing(embedder.preprocessor_.to_dict(), own)
    assert embedder.region_names_ == names
    windows, subject_index = clf.preprocessor_.transform(X)
    assert len(windows) > len(X)  # sliding windows, at the model's TR
    encoder = copy.deepcopy(clf.module_.encoder).eval()
    with torch.no_grad():
        per_window = encoder(torch.from_numpy(windows)).mean(dim=1).numpy()
    expected = np.stack([per_window[subject_index == i].mean(axis=0) for i in range(len(X))])
    np.testing.assert_allclose(embedder.transform(X), expected, rtol=1e-5, atol=1e-6)
    again = BrainJEPARegressor(clf.module_.encoder, **fast(max_epochs=1, normalization="auto"),
                               t_r=1.0).fit(X, y.astype(float))
    _assert_same_preprocessing(again.preprocessor_.to_dict(), own)
    assert again.module_.encoder.region_names == names


def test_the_fine_tuned_encoders_regions_are_checked_as_a_checkpoints():
    """The fine-tuner's regions (X's column names) and statistics travel with its encoder,
    through a pickle of the fitted fine-tuner: other columns are refused by the embedder."""
    names = [f"roi{i}" for i in range(N_REGIONS)]
    X, y = _named(offset_subjects(np.tile([0.0, 1.0], 2)), names), np.tile([0, 1], 2)
    fitted = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, normalization="robust"))
    clf = pickle.loads(pickle.dumps(fitted.fit(X, y)))
    assert clf.module_.encoder.region_names == names
    _assert_same_preprocessing(clf.module_.encoder.preprocessing,
                               fitted.preprocessor_.to_dict())
    with pytest.raises(ValueError, match="roi0"):
        BrainJEPAEmbedder(weights=clf.module_.encoder).fit(_named(X, names[::-1]))
    # a continued fit keeps them; a refit with other settings carries the new ones
    clf.partial_fit(X, y)
    _assert_same_preprocessing(clf.module_.encoder.preprocessing, clf.preprocessor_.to_dict())
    clf.set_params(n_frames=8, normalization="roi_zscore").fit(X, y)
    assert clf.module_.encoder.preprocessing["normalization"] == "roi_zscore"
    assert clf.module_.encoder.preprocessing["n_frames"] == 8


def test_a_saved_fine_tuned_encoder_embeds_and_fine_tunes_as_the_module(tmp_path):
    """``save`` writes the fine-tuned encoder with the fit's preprocessing and regions: the
    file embeds as ``module_.encoder`` does and starts another fine-tuner from the same
    preprocessing."""
    from skorch.exceptions import NotInitializedError

    names = [f"roi{i}" for i in range(N_REGIONS)]
    X = _named(offset_subjects(np.tile([0.0, 1.0], 3), n_timepoints=40) * 5 + 3, names)
    y = np.tile([0, 1], 3)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, **_OWN_PREPROCESSING))
    with pytest.raises(NotInitializedError):
        clf.save(tmp_path / "encoder.pt")
    assert not (tmp_path / "encoder.pt").exists()
    clf.fit(X, y).save(tmp_path / "encoder.pt")
    from_file = BrainJEPAEmbedder(weights=tmp_path / "encoder.pt", t_r=1.0).fit(X)
    from_module = BrainJEPAEmbedder(weights=clf.module_.encoder, t_r=1.0).fit(X)
    _assert_same_preprocessing(from_file.preprocessor_.to_dict(), clf.preprocessor_.to_dict())
    assert from_file.region_names_ == names
    np.testing.assert_array_equal(from_file.transform(X), from_module.transform(X))
    again = BrainJEPAClassifier(tmp_path / "encoder.pt", **fast(max_epochs=1,
                                                                 normalization="auto"),
                                t_r=1.0).fit(X, y)
    _assert_same_preprocessing(again.preprocessor_.to_dict(), clf.preprocessor_.to_dict())
    assert again.region_names_ == names


def _warning_messages(fit):
    """The messages of the warnings ``fit()`` gives."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit()
    return [str(warning.message) for warning in caught]


def test_the_fine_tuned_encoders_tr_warnings_name_the_fine_tuning_not_the_pretraining(
        tmp_path):
    """The TR a fine-tuned encoder carries is its fine-tuner's: the embedder's warnings
    about it said the model was pretrained at it."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2), n_timepoints=40), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), t_r=1.0, model_t_r=2.0)
    clf.fit(X, y).save(tmp_path / "encoder.pt")
    for weights in (clf.module_.encoder, tmp_path / "encoder.pt"):
        unset = _warning_messages(lambda: BrainJEPAEmbedder(weights=weights).fit(X))
        assert unset == [
            "the model was fine-tuned on series at TR 1 s resampled to 2 s, but t_r is not "
            "set, so these series are used as if sampled at 2 s; set t_r to their TR (t_r=1 "
            "for data acquired like the fine-tuning data, t_r=2 to keep them as they are)"]
        other = _warning_messages(
            lambda: BrainJEPAEmbedder(weights=weights, t_r=1.0, model_t_r=3.0).fit(X))
        assert len(other) == 1 and other[0].startswith(
            "model_t_r=3 is not the TR the model was fine-tuned at (2 s, which its weights "
            "record): series are resampled to 3 s, so each time patch spans another duration "
            "than in fine-tuning;"), other


def test_a_fine_tuner_of_shorter_windows_keeps_the_pretraining_windows_positions(tmp_path):
    """An encoder fine-tuned on windows shorter than the pretraining's records the
    pretraining's (its preprocessing holds the fine-tuning's): embedding windows up to the
    pretraining's is silent (it warned that the positions past the fine-tuning windows were
    never seen), longer ones are told the longest trained; a frozen encoder (a linear probe)
    was not trained on its probe's longer windows."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2), n_timepoints=40), np.tile([0, 1], 2)
    pretrained = tiny_module()  # 4 patches of 2 frames
    clf = BrainJEPAClassifier(pretrained, **fast(max_epochs=1), n_frames=4).fit(X, y)
    clf.save(tmp_path / "encoder.pt")
    for weights in (clf.module_.encoder, tmp_path / "encoder.pt"):
        assert _warning_messages(
            lambda: BrainJEPAEmbedder(weights=weights, n_frames=8).fit(X)) == []
        assert BrainJEPAEmbedder(weights=weights).fit(X).preprocessor_.n_frames == 4
        longer = _warning_messages(lambda: BrainJEPAEmbedder(weights=weights, n_frames=10).fit(X))
        assert longer == [
            "n_frames=10 is longer than any window the fine-tuned model was trained on (at "
            "most 8 frames, in pretraining and fine-tuning): the frames past the first 8 get "
            "time positions it never saw. To cover longer scans with the positions it knows, "
            "use windows of at most 8 frames with window='sliding' (n_frames='auto' takes the "
            "fine-tuning windows, 4 frames)"]
    assert clf.module_.encoder.trained_n_patches == 4
    assert clf.module_.encoder.preprocessing["n_frames"] == 4
    # a further fine-tuner starts from the record, and adds its own longer windows
    with pytest.warns(UserWarning, match="n_frames=12 is longer than any window"):
        again = BrainJEPAClassifier(tmp_path / "encoder.pt", **fast(max_epochs=1),
                                    n_frames=12).fit(X, y)
    assert again.module_.encoder.trained_n_patches == 6
    with pytest.warns(UserWarning, match="n_frames=12 is longer than the windows"):
        probe = BrainJEPAClassifier(pretrained, **fast(max_epochs=1), n_frames=12,
                                    freeze_encoder=True).fit(X, y)
    assert probe.module_.encoder.trained_n_patches == 4


def test_series_off_the_scale_of_a_fine_tuned_encoders_statistics_do_not_blame_pretraining(
        tmp_path):
    """The robust statistics a fine-tuned encoder carries are its fine-tuner's (learned by
    its fit here, the pretrained model having none): the warning of series far above their
    scale said they were the pretraining data's, at fit, at transform and in a further
    fine-tuner's fit."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2), n_timepoints=40), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, normalization="robust"))
    clf.fit(X, y).save(tmp_path / "encoder.pt")
    off_scale = [x * 1e4 + 1e4 for x in X]
    for weights, named in [(clf.module_.encoder, "the model"),
                           (tmp_path / "encoder.pt", str(tmp_path / "encoder.pt"))]:
        expected = (
            f"the series are on another scale than the data the statistics of {named} were "
            "learned from (its fine-tuning data, or the pretraining data of the weights it was "
            "fine-tuned from): its robust statistics (normalization='robust', learned by its "
            "fine-tuner or at pretraining and not refitted) leave them at")
        fitted = _warning_messages(lambda: BrainJEPAEmbedder(weights=weights).fit(off_scale))
        assert len(fitted) == 1 and fitted[0].startswith(expected), fitted
        assert "Scale them as those data were, or set" in fitted[0]
        embedder = BrainJEPAEmbedder(weights=weights).fit(X)
        transformed = _warning_messages(lambda: embedder.transform(off_scale))
        assert len(transformed) == 1 and transformed[0].startswith(expected), transformed
        further = _warning_messages(lambda: BrainJEPAClassifier(
            weights, **fast(max_epochs=1, normalization="auto")).fit(off_scale, y))
        assert [message for message in further if message.startswith(expected)], further


def test_a_linear_probes_encoder_is_told_probed_not_fine_tuned(tmp_path):
    """A frozen encoder (freeze_encoder=True, a linear probe) carries its probe's
    preprocessing but the weights it was given: the embedder's TR, window and off-scale
    warnings said it was fine-tuned. Its file keeps that it was frozen; a fine-tuner of it
    that trains it makes it fine-tuned again."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2), n_timepoints=40), np.tile([0, 1], 2)
    probe = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, normalization="robust"),
                                t_r=1.0, model_t_r=2.0, n_frames=4, freeze_encoder=True)
    probe.fit(X, y).save(tmp_path / "encoder.pt")
    assert probe.module_.encoder.frozen_by_fine_tuner
    assert torch.load(tmp_path / "encoder.pt",
                      weights_only=True)["metadata"]["frozen_by_fine_tuner"] is True
    off_scale = [x * 1e4 + 1e4 for x in X]
    for weights, named in [(probe.module_.encoder, "the model"),
                           (tmp_path / "encoder.pt", str(tmp_path / "encoder.pt"))]:
        assert _warning_messages(lambda: BrainJEPAEmbedder(weights=weights).fit(X)) == [
            "the model was linearly probed on series at TR 1 s resampled to 2 s, but t_r is "
            "not set, so these series are used as if sampled at 2 s; set t_r to their TR "
            "(t_r=1 for data acquired like its linear probe's data, t_r=2 to keep them as "
            "they are)"]
        other = _warning_messages(
            lambda: BrainJEPAEmbedder(weights=weights, t_r=1.0, model_t_r=3.0).fit(X))
        assert len(other) == 1 and other[0].startswith(
            "model_t_r=3 is not the TR the model was linearly probed at (2 s, which its "
            "weights record): series are resampled to 3 s, so each time patch spans another "
            "duration than in its linear probe;"), other
        assert _warning_messages(
            lambda: BrainJEPAEmbedder(weights=weights, t_r=1.0, n_frames=10).fit(X)) == [
            "n_frames=10 is longer than any window the model was trained on before its "
            "linear probe, which left its weights frozen (at most 8 frames): the frames past "
            "the first 8 get time positions it never saw. To cover longer scans with the "
            "positions it knows, use windows of at most 8 frames with window='sliding' "
            "(n_frames='auto' takes the linear probe's windows, 4 frames)"]
        scaled = _warning_messages(
            lambda: BrainJEPAEmbedder(weights=weights, t_r=1.0).fit(off_scale))
        assert len(scaled) == 1 and scaled[0].startswith(
            f"the series are on another scale than the data the statistics of {named} were "
            "learned from (its linear probe's data, or the data of the weights it probed): "
            "its robust statistics (normalization='robust', learned by its linear probe or "
            "before it and not refitted) leave them at"), scaled
    trained = BrainJEPAClassifier(tmp_path / "encoder.pt", **fast(max_epochs=1), t_r=1.0)
    assert not trained.fit(X, y).module_.encoder.frozen_by_fine_tuner
    # a probe of weights that do not say their windows: only the probe's are known
    bare = BrainJEPAClassifier(tiny_module().target_encoder, **fast(max_epochs=1), n_frames=4,
                               freeze_encoder=True).fit(X, y)
    assert _warning_messages(lambda: BrainJEPAEmbedder(
        weights=bare.module_.encoder, n_frames=10).fit(X)) == [
        "n_frames=10 is longer than the windows of the model's linear probe (4 frames; its "
        "weights do not record the windows they were trained on, which may have been "
        "longer): the frames past the first 4 get time positions its probe did not see, "
        "which its training may not have seen either. To cover longer scans with the "
        "positions its probe saw, keep n_frames=4 (n_frames='auto') with window='sliding'"]


def test_bf16_precision_runs_the_model_under_autocast():
    seen = []
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), precision="bf16")
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf.fit(X, y)
    clf.module_.head.linear.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    proba = clf.predict_proba(X)
    assert seen and set(seen) == {torch.bfloat16}
    assert proba.dtype == np.float64 and np.isfinite(proba).all()


def test_skorchs_compile_option_compiles_the_module_and_predicts_as_eager():
    import torch._dynamo

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    eager = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2)).fit(X, y)
    torch._dynamo.reset()
    # aot_eager traces and compiles like inductor, without code generation: fast on a CPU
    compiled = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2), compile=True,
                                   compile__backend="aot_eager").fit(X, y)
    assert isinstance(compiled.module_, torch._dynamo.eval_frame.OptimizedModule)
    layered = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, layer_decay=0.5),
                                  compile=True, compile__backend="aot_eager").fit(X, y)
    scales = {group["lr_scale"] for group in layered.optimizer_.param_groups}
    assert scales == {0.25, 0.5, 1.0}  # the layers are found inside the compiled module
    np.testing.assert_allclose(compiled.predict_proba(X), eager.predict_proba(X), atol=1e-5)
    torch._dynamo.reset()


def test_compile_auto_compiles_on_cuda_only_as_the_pretrainers(monkeypatch):
    """compile="auto" was refused ("must be an instance of 'bool'") though the pretrainer
    takes it: it compiles on CUDA only, so a CPU fit trains the module eager."""
    import torch._dynamo

    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), compile="auto").fit(X, y)
    assert not isinstance(clf.module_, torch._dynamo.eval_frame.OptimizedModule)
    assert not isinstance(clf.criterion_, torch._dynamo.eval_frame.OptimizedModule)
    module = torch.nn.Linear(2, 1)
    assert clf.torch_compile(module, name="module") is module
    # on CUDA (the device as the net resolves it), the module is compiled (lazily: nothing
    # runs on the device here)
    monkeypatch.setattr(type(clf), "_torch_device", lambda self: torch.device("cuda"))
    compiled = clf.torch_compile(module, name="module")
    assert isinstance(compiled, torch._dynamo.eval_frame.OptimizedModule)
    assert compiled._orig_mod is module
    torch._dynamo.reset()


def test_a_net_compiled_by_auto_on_cuda_is_unpickled_eager_on_a_cpu(monkeypatch):
    """compile="auto" compiles on CUDA only. A net fitted where it compiled (CUDA, here the
    resolver's answer) and unpickled on a machine without CUDA (skorch moves it to the CPU)
    kept its compiled module and criterion: its first prediction compiled them anew for the
    CPU, which "auto" never does (with the default backend, a C++ build, which fails without
    a compiler). Unpickled, they are compiled as the setting says on the device the net lands
    on; compile=True still compiles there."""
    import torch._dynamo
    from torch._dynamo.eval_frame import OptimizedModule

    import brainjepa_sk.finetune as finetune

    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    monkeypatch.setattr(finetune, "resolve_compile", lambda compile, device: bool(compile))
    auto = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), compile="auto",
                               compile__backend="aot_eager").fit(X, y)
    assert isinstance(auto.module_, OptimizedModule)
    proba = auto.predict_proba(X)
    pickled = pickle.dumps(auto)
    monkeypatch.undo()  # unpickled where "auto" does not compile
    unpickled = pickle.loads(pickled)
    assert isinstance(unpickled.module_, EncoderWithHead)
    assert not isinstance(unpickled.criterion_, OptimizedModule)
    np.testing.assert_allclose(unpickled.predict_proba(X), proba, atol=1e-6)
    explicit = pickle.loads(pickle.dumps(auto.set_params(compile=True)))
    assert isinstance(explicit.module_, OptimizedModule)
    assert isinstance(explicit.module_._orig_mod, EncoderWithHead)
    np.testing.assert_allclose(explicit.predict_proba(X), proba, atol=1e-6)
    torch._dynamo.reset()


def test_compile_settings_set_on_a_fitted_net_keep_the_fine_tuned_model():
    """skorch rebuilt the module from weights for compile settings set on a fitted net: the
    fine-tuning was lost without a word, even by compile=False as it already was."""
    import torch._dynamo

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2)).fit(X, y)
    module, proba = clf.module_, clf.predict_proba(X)
    clf.set_params(compile=False)
    assert clf.module_ is module
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    torch._dynamo.reset()
    clf.set_params(compile=True, compile__backend="aot_eager")
    assert isinstance(clf.module_, torch._dynamo.eval_frame.OptimizedModule)
    assert clf.module_._orig_mod is module
    assert isinstance(clf.criterion_, torch._dynamo.eval_frame.OptimizedModule)
    np.testing.assert_allclose(clf.predict_proba(X), proba, atol=1e-5)
    compiled = clf.module_
    clf.set_params(compile__backend="eager")  # a compile__ setting alone compiles anew
    assert clf.module_ is not compiled and clf.module_._orig_mod is module
    clf.set_params(compile=False)
    assert clf.module_ is module
    assert not isinstance(clf.criterion_, torch._dynamo.eval_frame.OptimizedModule)
    torch._dynamo.reset()


@pytest.mark.gpu
def test_fine_tuning_on_cuda_with_bf16_autocast_agrees_with_its_model_on_the_cpu():
    X, y = offset_subjects(np.tile([0.0, 1.0], 8)), np.tile([0, 1], 8)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=3), device="cuda").fit(X, y)
    assert next(clf.module_.parameters()).is_cuda
    assert clf.history_[-1]["train_loss"] < clf.history_[0]["train_loss"]
    proba = clf.predict_proba(X)  # bf16 autocast ("auto" on CUDA)
    module = copy.deepcopy(clf.module_).cpu().eval()
    for subject, row in zip(X, proba):
        windows, _ = clf.preprocessor_.transform([subject])
        with torch.no_grad():
            expected = module(torch.from_numpy(windows)).softmax(-1).mean(0).numpy()
        np.testing.assert_allclose(row, expected, atol=0.02)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(restored.predict_proba(X), proba, atol=1e-6)


def test_the_probe_takes_a_last_batch_of_one_window():
    """9 windows in batches of 8: the probe's BatchNorm head trains on a batch of one."""
    X, y = offset_subjects(np.r_[np.tile([0.0, 1.0], 4), 0.0]), np.r_[np.tile([0, 1], 4), 0]
    probe = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2, batch_size=8),
                                freeze_encoder=True).fit(X, y)
    assert np.isfinite(probe.predict_proba(X)).all()


def test_optimizer_lr_sets_the_peak_learning_rate():
    recorder = Recorder()
    X, y = offset_subjects(np.zeros(8)), np.tile([0, 1], 4)
    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2, batch_size=4, lr=0.0),
                        optimizer__lr=1e-2, callbacks=[recorder]).fit(X, y)
    head = [lrs[-1] for lrs in recorder.lrs_]  # the head's group: scale 1
    assert head[0] == pytest.approx(1e-2)  # no warm-up: the peak at the first step
    assert head[-1] == pytest.approx(FAST_MIN_LR)  # min_lr at the last batch


class FailInSecondEpoch(Callback):
    """Raises in the second epoch of a continued fit, once armed."""

    armed = False

    def on_epoch_begin(self, net, **kwargs):
        if type(self).armed and len(net.history) == 4:
            type(self).armed = False
            raise RuntimeError("disk full")


def test_a_failed_continued_fit_leaves_the_model_as_it_was():
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2),
                              callbacks=[FailInSecondEpoch()]).fit(X, y)
    proba, n_epochs = clf.predict_proba(X), len(clf.history_)
    before = copy.deepcopy(clf.module_)  # in evaluation mode, as predict left it

    FailInSecondEpoch.armed = True
    with pytest.raises(RuntimeError, match="disk full"):
        clf.partial_fit(X, y)
    assert len(clf.history_) == n_epochs
    assert_same_module(clf.module_, before)  # weights, and the modes the fit had changed
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


def test_numpy_settings_leave_a_loadable_optimizer_state(tmp_path):
    # as a grid from np.logspace gives them: torch.load(weights_only=True) refuses numpy
    # scalars, so they must not reach the optimizer's groups
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, lr=np.float64(1e-2)),
                              weight_decay=np.float64(0.05),
                              optimizer__betas=(np.float64(0.9), np.float32(0.99))).fit(X, y)
    clf.set_params(lr=np.float32(1e-3))
    clf.save_params(f_optimizer=tmp_path / "optimizer.pt")
    clf.load_params(f_optimizer=tmp_path / "optimizer.pt")
    groups = clf.optimizer_.state_dict()["param_groups"]
    assert {type(group["lr"]) for group in groups} == {float}
    assert {tuple(map(type, group["betas"])) for group in groups} == {(float, float)}


def test_a_failed_load_params_leaves_the_net_as_it_was(tmp_path):
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2)).fit(X, y)
    other = BrainJEPAClassifier(tiny_module(seed=1), **fast(max_epochs=3)).fit(X, y)
    other.save_params(f_params=tmp_path / "params.pt", f_optimizer=tmp_path / "optimizer.pt",
                      f_history=tmp_path / "history.json")
    cut = tmp_path / "cut.pt"
    cut.write_bytes((tmp_path / "optimizer.pt").read_bytes()[:100])
    # a deeper model's weights: torch copies the tensors that fit before refusing the rest
    BrainJEPAClassifier(tiny_module(depth=2), **fast(max_epochs=1)).fit(X, y).save_params(
        f_params=tmp_path / "deeper.pt")
    proba, history = clf.predict_proba(X), clf.history_
    records = copy.deepcopy(list(history))
    module, optimizer = copy.deepcopy(clf.module_), copy.deepcopy(clf.optimizer_.state_dict())
    (tmp_path / "list.json").write_text("[1, 2]")  # JSON, but not a history
    (tmp_path / "dict.json").write_text('{"epoch": 1}')
    for files, damaged in [
        (dict(f_history=tmp_path / "history.json", f_params=tmp_path / "params.pt",
              f_optimizer=cut), cut),
        (dict(f_params=tmp_path / "deeper.pt"), tmp_path / "deeper.pt"),
        (dict(f_history=tmp_path / "list.json"), tmp_path / "list.json"),
        (dict(f_history=tmp_path / "dict.json"), tmp_path / "dict.json"),
        # the optimizer's state loads, then the history (loaded last) fails
        (dict(f_optimizer=tmp_path / "optimizer.pt", f_history=tmp_path / "list.json"),
         tmp_path / "list.json"),
    ]:
        with pytest.raises(ValueError, match=f"could not load {damaged}"):
            clf.load_params(**files)
        assert clf.history_ is history and list(history) == records
        assert_same_module(clf.module_, module)
        torch.testing.assert_close(clf.optimizer_.state_dict(), optimizer, rtol=0, atol=0)
        np.testing.assert_array_equal(clf.predict_proba(X), proba)


def test_load_params_of_a_foreign_file_or_a_folder_says_so_without_torchs_advice(tmp_path):
    """A file torch.load cannot read safely had been reported with torch's advice to load it
    with weights_only=False (which runs any code it holds) and to file an issue with PyTorch;
    a folder had been called damaged, with the advice to delete it."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    proba = clf.predict_proba(X)
    garbage = tmp_path / "params.pt"
    garbage.write_bytes(b"\xffnot a torch file at all")  # no text either: see below
    with pytest.raises(ValueError, match=rf"^could not load {re.escape(str(garbage))} "
                                         r"\(f_params\): it was not written by torch.save "
                                         r"\(save_params\), or it is damaged: delete it") as error:
        clf.load_params(f_params=garbage)
    assert "weights_only" not in str(error.value)
    with pytest.raises(ValueError, match=rf"^could not load {re.escape(str(tmp_path))} "
                                         r"\(f_optimizer\): it is a folder; give the file that "
                                         r"save_params\(\.\.\., f_optimizer=\) wrote$"):
        clf.load_params(f_optimizer=tmp_path)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


def test_load_params_of_a_file_of_another_kind_says_what_it_is_without_advice_to_delete_it(
        tmp_path):
    """An array, a pickled estimator or a text file given to load_params by mistake had been
    called damaged, with the advice to delete it: the user's data, or their fitted model."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    proba = clf.predict_proba(X)
    np.save(tmp_path / "subject.npy", X[0])
    (tmp_path / "net.pkl").write_bytes(pickle.dumps(clf))
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    for name, kind in [("subject.npy", r"a NumPy array file \(numpy\.save\)"),
                       ("net.pkl", r"a Python pickle \(pickle\.dump or joblib\.dump"),
                       ("table.csv", r"a text file")]:
        with pytest.raises(ValueError, match=rf"^could not load .*{re.escape(name)} "
                                             rf"\(f_params\): it is {kind}.* not a file that "
                                             r"save_params\(\.\.\., f_params=\) wrote$"):
            clf.load_params(f_params=tmp_path / name)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


def test_save_params_to_a_folder_says_so_and_keeps_the_other_files(tmp_path):
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    clf.save_params(f_params=tmp_path / "params.pt")
    saved = (tmp_path / "params.pt").read_bytes()
    (tmp_path / "history").mkdir()
    with pytest.raises(IsADirectoryError, match=r"could not save .*history: it is a folder; "
                                                "give the path of a file"):
        clf.save_params(f_params=tmp_path / "params.pt", f_history=tmp_path / "history")
    assert (tmp_path / "params.pt").read_bytes() == saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history", "params.pt"]


def test_save_params_writes_file_objects_as_given():
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2)).fit(X, y)
    other = BrainJEPAClassifier(tiny_module(seed=1), **fast(max_epochs=1)).fit(X, y)
    buffer = io.BytesIO()
    clf.save_params(f_params=buffer)
    buffer.seek(0)
    other.load_params(f_params=buffer)
    np.testing.assert_array_equal(other.predict_proba(X), clf.predict_proba(X))


def test_skorch_files_named_from_home_are_written_and_read_there(tmp_path, monkeypatch):
    """'~' in save_params and load_params (and in skorch's Checkpoint, which saves and loads
    through them, and its pickled net) is the home folder, as elsewhere in the package: skorch's
    own methods wrote such a path into a '~' folder of the working folder, or failed where there
    was none."""
    from skorch.callbacks import Checkpoint, LoadInitState

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2)).fit(X, y)
    files = dict(f_params="~/params.pt", f_optimizer="~/optimizer.pt",
                 f_history="~/history.json")
    clf.save_params(**files)
    assert sorted(p.name for p in home.iterdir()) == ["history.json", "optimizer.pt",
                                                      "params.pt"]
    assert list(work.iterdir()) == []
    other = BrainJEPAClassifier(tiny_module(seed=1), **fast(max_epochs=1)).fit(X, y)
    other.load_params(**files)
    np.testing.assert_array_equal(other.predict_proba(X), clf.predict_proba(X))
    assert len(other.history_) == 2
    saved = Checkpoint(dirname="~/run", monitor=None, f_pickle="net.pkl")
    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), callbacks=[saved]).fit(X, y)
    assert sorted(p.name for p in (home / "run").iterdir()) == [
        "criterion.pt", "history.json", "net.pkl", "optimizer.pt", "params.pt", "run.json"]
    assert not any((work / "~").rglob("*.*"))  # skorch makes its dirname as written: empty
    resumed = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2),
                                  callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    assert len(resumed.history_) == 2  # the saved epoch, and the one left


def test_explicit_files_override_the_checkpoints_in_load_params(tmp_path):
    from skorch.callbacks import Checkpoint

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), callbacks=[saved]).fit(X, y)
    other = BrainJEPAClassifier(tiny_module(seed=1), **fast(max_epochs=2)).fit(X, y)
    other.save_params(f_params=tmp_path / "other.pt")
    clf.load_params(checkpoint=saved, f_params=tmp_path / "other.pt")
    np.testing.assert_array_equal(clf.predict_proba(X), other.predict_proba(X))
    assert len(clf.history_) == 1  # the checkpoint's history


def test_load_params_loads_the_files_named_for_the_nets_components(tmp_path):
    """skorch's f_<component> keywords (f_module for module_) are loaded like f_params."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    other = BrainJEPAClassifier(tiny_module(seed=1), **fast(max_epochs=2)).fit(X, y)
    other.save_params(f_params=tmp_path / "other.pt")
    clf.load_params(f_module=tmp_path / "other.pt")
    np.testing.assert_array_equal(clf.predict_proba(X), other.predict_proba(X))


def test_resuming_from_skorchs_checkpoint_prints_no_nothing_to_load(tmp_path, capsys):
    """skorch's Checkpoint names no file for some states (f_pickle): they are skipped, not
    loaded as nothing (skorch prints "Nothing to load" for those)."""
    from skorch.callbacks import Checkpoint, LoadInitState

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), callbacks=[saved]).fit(X, y)
    capsys.readouterr()
    resumed = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2, verbose=1),
                                  callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    assert len(resumed.history_) == 2
    assert "Nothing to load" not in capsys.readouterr().out


def test_use_safetensors_saves_and_loads_safetensors_files(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2)).fit(X, y)
    clf.save_params(f_params=tmp_path / "params.safetensors", use_safetensors=True)
    saved = safetensors_torch.load_file(tmp_path / "params.safetensors")
    for name, value in clf.module_.state_dict().items():
        assert torch.equal(saved[name], value), name
    other = BrainJEPAClassifier(tiny_module(seed=1), **fast(max_epochs=1)).fit(X, y)
    other.load_params(f_params=tmp_path / "params.safetensors", use_safetensors=True)
    np.testing.assert_array_equal(other.predict_proba(X), clf.predict_proba(X))


def test_use_safetensors_without_the_library_is_refused_rather_than_ignored(tmp_path):
    """skorch's ImportError, not a pickle written (or read) in its place."""
    try:
        import safetensors  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("safetensors is installed")
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    with pytest.raises(ImportError):
        clf.save_params(f_params=tmp_path / "params.pt", use_safetensors=True)
    assert not (tmp_path / "params.pt").exists()
    clf.save_params(f_params=tmp_path / "params.pt")
    with pytest.raises(ImportError):
        clf.load_params(f_params=tmp_path / "params.pt", use_safetensors=True)


def test_modules_as_weights_in_set_params_and_grid_search():
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    first, second = tiny_module(seed=0), tiny_module(seed=1)
    clf = BrainJEPAClassifier(first, **fast(max_epochs=1)).fit(X, y)
    clf.set_params(weights=second)
    assert clf.get_params()["weights"] is second
    search = GridSearchCV(clf, {"weights": [first, second]}, cv=2).fit(X, y)
    assert search.best_params_["weights"] in (first, second)


def test_balanced_class_weights_count_windows_and_dicts_name_labels():
    rng = np.random.default_rng(0)
    # class "a": one subject of 3 windows; class "b": two subjects of 1 window each
    X = [rng.standard_normal((n, N_REGIONS)) for n in (24, 8, 8)]
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), window="sliding", stride=8,
                              class_weight="balanced").fit(X, ["a", "b", "b"])
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), [5 / (2 * 3), 5 / (2 * 2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.set_params(class_weight={"b": 3.0}).fit(X, ["a", "b", "b"])
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), [1.0, 3.0])
    # a label absent from this fit (a rare class missing from a fold, or a misspelt one) is
    # ignored, with a warning that names it
    with pytest.warns(UserWarning, match=r"class_weight names \['c'\].*misspelt"):
        clf.set_params(class_weight={"b": 3.0, "c": 2.0}).fit(X, ["a", "b", "b"])
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), [1.0, 3.0])


@pytest.mark.parametrize("weight", [-1.0, 0.0, np.nan, np.inf, "heavy"])
def test_class_weights_that_are_not_positive_and_finite_are_refused_naming_the_class(weight):
    """A negative weight had stopped the fit with "the loss became -inf ... lower lr", as a
    diverging fit; a zero weight makes a batch of that class's windows only NaN (the weighted
    mean has no weight). The fit is refused first, and the fitted estimator kept."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 3)), np.array(["a", "b"] * 3)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, batch_size=1)).fit(X, y)
    proba, history = clf.predict_proba(X), list(clf.history_)
    with pytest.raises(ValueError, match=rf"class_weight gives class 'b' the weight "
                                         rf"{re.escape(repr(weight))}: class weights must be "
                                         r"positive and finite .* drop its subjects"):
        clf.set_params(class_weight={"a": 2.0, "b": weight}).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    assert list(clf.history_) == history
    clf.set_params(class_weight={"a": 0.5, "b": 2}).fit(X, y)  # positive numbers of any type
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), [0.5, 2.0])


def test_balanced_class_weights_count_the_training_windows_only():
    X, y = offset_subjects(np.zeros(10)), np.array([0] * 6 + [1] * 4)
    split = SubjectValidSplit(0.3, random_state=0)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), train_split=split,
                              class_weight="balanced").fit(X, y)
    train, _ = split(SubjectWindows(X, y, np.arange(10)))
    y_train = y[train.indices]
    assert len(y_train) == 7
    np.testing.assert_allclose(clf.criterion_.weight.numpy(),
                               compute_class_weight("balanced", classes=np.array([0, 1]),
                                                    y=y_train))


def test_a_continued_fit_uses_the_class_weights_it_is_given():
    X = offset_subjects(np.zeros(8))
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, [0] * 6 + [1] * 2)
    assert clf.criterion_.weight is None
    clf.set_params(class_weight="balanced").partial_fit(X, [0] * 2 + [1] * 6)
    np.testing.assert_allclose(clf.criterion_.weight.numpy(), [2.0, 2 / 3])


@pytest.mark.parametrize("change", [dict(freeze_encoder=True), dict(pooling="roi"),
                                    dict(layer_decay=0.5), dict(weight_decay=0.0),
                                    dict(final_norm=False), dict(drop_path_rate=0.3),
                                    # the preprocessing fitted with the model
                                    dict(t_r=2.0), dict(model_t_r=1.0), dict(n_frames=4),
                                    dict(window="first"), dict(normalization="robust"),
                                    dict(weights=tiny_module(seed=1))])
def test_a_continued_fit_refuses_settings_the_model_was_built_from(change):
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    weights = copy.deepcopy(clf.module_.state_dict())
    name = next(iter(change))
    with pytest.raises(ValueError, match=f"{name}=.*fitted with.*warm_start=False"):
        clf.set_params(**change).partial_fit(X, y)
    assert len(clf.history_) == 1
    assert_same_module_weights(clf.module_, _loaded(clf.module_, weights))  # not trained
    clf.set_params(warm_start=False).fit(X, y)  # a new fit builds a new model with them
    assert len(clf.history_) == 1


def test_a_continued_fit_refusing_another_weights_module_says_modules_count_by_identity():
    """A copy of the weights module, of the same values, is another setting: the refusal read
    "weights=<BrainJEPA> (fitted with <BrainJEPA>)", two settings that looked the same."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    module = tiny_module()
    clf = BrainJEPAClassifier(module, **fast(max_epochs=1)).fit(X, y)
    with pytest.raises(ValueError, match=r"weights=<BrainJEPA> \(fitted with another "
                                         r"<BrainJEPA>: modules are compared by identity"):
        clf.set_params(weights=copy.deepcopy(module)).partial_fit(X, y)
    clf.set_params(weights=module).partial_fit(X, y)  # the module of fit itself continues
    assert len(clf.history_) == 2


@pytest.mark.parametrize("setting", [dict(lr=-0.1), dict(optimizer__lr=-0.1),
                                     dict(optimizer__betas=(2.0, 0.9)),
                                     dict(optimizer__eps=-1.0)])
def test_a_continued_fit_refuses_optimizer_settings_a_new_fit_refuses(setting):
    """warm_start and partial_fit keep the optimizer the first fit built, whose constructor
    alone checks its settings: a negative rate set since trained by gradient ascent, and
    betas or eps out of range trained too, all without a word."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    weights = copy.deepcopy(clf.module_.state_dict())
    # torch's "Invalid ..." or, for lr, the estimator's check of its parameters
    refused = r"Invalid|The 'lr' parameter of BrainJEPAClassifier"
    with pytest.raises(ValueError, match=refused):
        clf.set_params(**setting).partial_fit(X, y)
    with pytest.raises(ValueError, match=refused):
        clf.set_params(warm_start=True).fit(X, y)
    assert len(clf.history_) == 1
    assert_same_module_weights(clf.module_, _loaded(clf.module_, weights))  # not trained


def test_a_negative_optimizer_weight_decay_is_refused():
    """optimizer__weight_decay overrides weight_decay (checked non-negative) and goes into the
    parameter groups, where torch's constructors do not check it: a negative decay, which
    ``torch.optim.AdamW(weight_decay=-1)`` refuses, grew the weights silently."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    with pytest.raises(ValueError, match=r"optimizer__weight_decay=-1\.0 must be a non-negative"):
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                            optimizer__weight_decay=-1.0).fit(X, y)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    weights = copy.deepcopy(clf.module_.state_dict())
    with pytest.raises(ValueError, match="optimizer__weight_decay=-1.0 must be"):
        clf.set_params(optimizer__weight_decay=-1.0).partial_fit(X, y)
    assert len(clf.history_) == 1
    assert_same_module_weights(clf.module_, _loaded(clf.module_, weights))
    with pytest.raises(ValueError, match="optimizer__weight_decay=nan must be"):  # NaN weights
        clf.set_params(optimizer__weight_decay=float("nan")).partial_fit(X, y)


def test_a_continued_fit_takes_settings_set_to_what_auto_resolved_to():
    """n_frames, window and normalization left at "auto" and then set to the values fit chose
    change nothing: no refusal (found by a review)."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    resolved = clf.preprocessor_
    clf.set_params(n_frames=resolved.n_frames, window=resolved.window,
                   normalization=resolved.normalization).partial_fit(X, y)
    assert len(clf.history_) == 2


def test_a_continued_fit_takes_equal_settings_given_anew_as_unchanged(tmp_path):
    """The same file as a str or a Path, the same gradients re-read as another DataFrame."""
    import pandas as pd

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    save_checkpoint(tmp_path / "m.pt", tiny_module())
    clf = BrainJEPAClassifier(str(tmp_path / "m.pt"), **fast(max_epochs=1)).fit(X, y)
    clf.set_params(weights=tmp_path / "m.pt").partial_fit(X, y)
    gradients = pd.DataFrame(np.random.default_rng(0).standard_normal((N_REGIONS, 3)))
    module = tiny_module()
    probe = BrainJEPAClassifier(module.target_encoder, gradients=gradients, n_frames=8,
                                **fast(max_epochs=1))
    with pytest.warns(UserWarning, match="gradients"):  # ignored with a module, kept as set
        probe.fit(X, y)
        probe.set_params(gradients=gradients.copy()).partial_fit(X, y)
    assert len(clf.history_) == len(probe.history_) == 2


def test_gradients_and_num_heads_our_checkpoint_carries_are_no_change(tmp_path):
    """Our checkpoint carries its gradients and heads (a refit ignores those parameters), so
    set after fit they change neither predict, which does not warn, nor the model a continued
    fit trains, which takes them."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    save_checkpoint(tmp_path / "m.pt", tiny_module())
    clf = BrainJEPAClassifier(tmp_path / "m.pt", **fast(max_epochs=1)).fit(X, y)
    proba = clf.predict_proba(X)
    clf.set_params(gradients=np.ones((N_REGIONS, 3)), num_heads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(clf.predict_proba(X), proba)
        clf.partial_fit(X, y)
    assert len(clf.history_) == 2


def _loaded(module, state):
    reference = copy.deepcopy(module)
    reference.load_state_dict(state)
    return reference


def test_setting_the_weight_decay_of_a_fitted_model_spares_biases_and_norms():
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    clf.set_params(optimizer__weight_decay=0.3)
    groups = clf.optimizer_.param_groups
    assert {g["weight_decay"] for g in groups if g.get("no_weight_decay")} == {0.0}
    assert {g["weight_decay"] for g in groups if not g.get("no_weight_decay")} == {0.3}
    # kept as a parameter, as if given to the constructor: a refit and a clone use it too
    clf.set_params(optimizer__betas=(0.8, 0.9))
    assert clf.get_params()["optimizer__weight_decay"] == 0.3
    for refit in (clf.fit(X, y), clone(clf).fit(X, y)):
        groups = refit.optimizer_.param_groups
        assert {g["weight_decay"] for g in groups if not g.get("no_weight_decay")} == {0.3}
        assert {g["betas"] for g in groups} == {(0.8, 0.9)}
    # skorch's per-group settings change the live groups only: a refit builds them anew
    clf.set_params(optimizer__param_groups__0__lr=0.1)
    assert clf.optimizer_.param_groups[0]["lr"] == 0.1
    assert not any(k.startswith("optimizer__param_groups") for k in clf.get_params())
    clf.fit(X, y)


def test_setting_the_weight_decay_of_a_model_fitted_without_any_reaches_its_decayed_groups():
    """The groups that take weight decay are the weights (not biases and norms), whatever
    their decay was: 0 at fit here."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), weight_decay=0.0).fit(X, y)
    assert {g["weight_decay"] for g in clf.optimizer_.param_groups} == {0.0}
    clf.set_params(optimizer__weight_decay=0.3)
    for group in clf.optimizer_.param_groups:
        is_weight = all(param.ndim > 1 for param in group["params"])
        assert group["weight_decay"] == (0.3 if is_weight else 0.0)
    assert any(g["weight_decay"] == 0.3 for g in clf.optimizer_.param_groups)


def test_the_schedule_counts_the_batches_the_loader_gives():
    recorder = Recorder()
    X, y = offset_subjects(np.zeros(10)), np.tile([0, 1], 5)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=3, batch_size=4, lr=1e-3),
                              iterator_train__drop_last=True, callbacks=[recorder]).fit(X, y)
    assert len(recorder.lrs_) == 3 * 2  # 10 windows, full batches of 4
    assert clf.history_[-1]["lr"] == pytest.approx(FAST_MIN_LR)  # min_lr at the last batch
    # skorch's own loader keeps the last, smaller batch: 3 a pass, the cosine over all 9
    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=3, batch_size=4, lr=1e-3),
                        callbacks=[recorder]).fit(X, y)
    expected = [warmup_cosine(step, 8, 0, 0.0, 1e-3, FAST_MIN_LR) for step in range(9)]
    np.testing.assert_allclose([lrs[-1] for lrs in recorder.lrs_], expected, rtol=1e-12)


def test_validation_scores_without_skorchs_cache():
    X, y = offset_subjects(np.tile([0.0, 1.0], 5)), np.tile(["a", "b"], 5)
    clf = BrainJEPAClassifier(
        tiny_module(), **fast(max_epochs=2), use_caching=False,
        train_split=SubjectValidSplit(0.4, stratified=True, random_state=0),
    ).fit(X, y)
    assert 0.0 <= clf.history_[-1]["valid_acc"] <= 1.0
    np.testing.assert_array_equal(clf.classes_, ["a", "b"])


def test_accumulated_micro_batches_train_like_the_whole_batch():
    """accumulation_steps=2: each batch of 8 windows runs as 2 forward/backward passes of 4
    and one optimizer step, with the losses and the model of the whole batch (up to float
    rounding); a batch smaller than accumulation_steps still trains."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 8)), np.tile([0, 1], 8)
    whole = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=3)).fit(X, y)
    seen = []

    class BatchSizes(Callback):
        def on_train_begin(self, net, X=None, y=None, **kwargs):
            net.module_.register_forward_pre_hook(lambda module, args: seen.append(len(args[0])))

    accumulated = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=3), accumulation_steps=2,
                                      callbacks=[BatchSizes()]).fit(X, y)
    assert seen[:4] == [4, 4, 4, 4]  # two training batches of 8, as micro-batches of 4
    np.testing.assert_allclose(accumulated.history_[:, "train_loss"],
                               whole.history_[:, "train_loss"], rtol=1e-5)
    for key, value in whole.module_.state_dict().items():
        torch.testing.assert_close(accumulated.module_.state_dict()[key], value,
                                   rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(accumulated.predict_proba(X), whole.predict_proba(X),
                               rtol=1e-4, atol=1e-6)
    # more micro-batches than windows in a batch: the empty ones are skipped
    BrainJEPARegressor(tiny_module(), **fast(max_epochs=1, batch_size=3),
                       accumulation_steps=4).fit(X, np.arange(16.0))
    with pytest.raises(ValueError, match="accumulation_steps"):
        BrainJEPAClassifier(tiny_module(), **fast(), accumulation_steps=0).fit(X, y)


# -- found by mutation testing -----------------------------------------------------------------

def test_every_partial_fit_runs_the_whole_learning_rate_schedule_again():
    recorder = Recorder()
    X, y = offset_subjects(np.zeros(8)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2, batch_size=4, lr=1e-3),
                              warmup_epochs=1, callbacks=[recorder])
    clf.partial_fit(X, y)
    first = recorder.lrs_
    assert first[0][-1] == 0.0 and first[2][-1] == pytest.approx(1e-3)  # warm-up, peak
    clf.partial_fit(X, y)
    assert recorder.lrs_ == first  # warm-up and cosine again, not min_lr throughout
    assert clf.history_[-1]["lr"] == pytest.approx(FAST_MIN_LR)


def test_micro_batches_of_unequal_sizes_are_weighted_by_their_share_of_the_batch():
    """Batches of 9 windows in 2 micro-batches of 5 and 4: still the whole batch's mean."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 9)), np.tile([0, 1], 9)
    whole = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2, batch_size=9)).fit(X, y)
    accumulated = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2, batch_size=9),
                                      accumulation_steps=2).fit(X, y)
    np.testing.assert_allclose(accumulated.history_[:, "train_loss"],
                               whole.history_[:, "train_loss"], rtol=1e-5)
    for key, value in whole.module_.state_dict().items():
        torch.testing.assert_close(accumulated.module_.state_dict()[key], value,
                                   rtol=1e-4, atol=1e-5)


def test_accumulation_leaves_the_validation_loss_unweighted():
    X, y = offset_subjects(np.tile([0.0, 1.0], 8)), np.tile([0, 1], 8)
    split = SubjectValidSplit(0.25, stratified=True, random_state=0)
    whole = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2), train_split=split).fit(X, y)
    accumulated = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2), train_split=split,
                                      accumulation_steps=3).fit(X, y)
    np.testing.assert_allclose(accumulated.history_[:, "valid_loss"],
                               whole.history_[:, "valid_loss"], rtol=1e-4)


def test_validation_scores_of_the_regressor_are_on_windows_with_or_without_skorchs_cache():
    """skorch's scoring without its cache passes the held-out windows as an array: they are
    still scored as windows, not as subjects."""
    rng = np.random.default_rng(0)
    levels = rng.uniform(-1, 1, 12)
    reg = BrainJEPARegressor(
        tiny_module(), **fast(max_epochs=2), train_split=SubjectValidSplit(0.25, random_state=0),
        callbacks=[EpochScoring("r2", lower_is_better=False, name="r2_cached"),
                   EpochScoring("r2", lower_is_better=False, name="r2", use_caching=False)],
    ).fit(offset_subjects(levels), 60 + 10 * levels)
    np.testing.assert_allclose(reg.history_[:, "r2"], reg.history_[:, "r2_cached"], rtol=1e-5)


@pytest.mark.parametrize("use_caching", [True, False])
def test_the_regressors_validation_scores_are_in_the_units_of_y(use_caching):
    """skorch's scorers compare predict with the targets, as for its own regressors: both in
    the units of y (an MAE in years), not in the standardized units the model learns."""
    rng = np.random.default_rng(0)
    levels = rng.uniform(-1, 1, 12)
    X, y = offset_subjects(levels), 60 + 10 * levels
    split = SubjectValidSplit(0.25, random_state=0)
    reg = BrainJEPARegressor(
        tiny_module(), **fast(max_epochs=2), train_split=split,
        callbacks=[EpochScoring("neg_mean_absolute_error", name="valid_mae",
                                use_caching=use_caching)]).fit(X, y)
    _, valid = split.split_subjects(y)  # one window a subject: windows' scores are subjects'
    expected = -np.abs(reg.predict(X[valid]) - y[valid]).mean()
    np.testing.assert_allclose(reg.history_[-1, "valid_mae"], expected, rtol=1e-5)
    assert reg.target_scale_[0] > 3  # so that an MAE in standardized units would differ


def test_a_random_state_instance_seeds_the_fit_too():
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    settings = fast(max_epochs=1, drop_path_rate=0.3)
    first, again = (BrainJEPAClassifier(tiny_module(), **dict(
        settings, random_state=np.random.RandomState(0))).fit(X, y) for _ in range(2))
    np.testing.assert_array_equal(again.predict_proba(X), first.predict_proba(X))
    for key, value in first.module_.state_dict().items():
        assert torch.equal(again.module_.state_dict()[key], value), key
    # unlike the pretrainer's, an int is torch's seed itself, not a RandomState's first draw
    # (reproducibility.rst says so)
    seeded = BrainJEPAClassifier(tiny_module(), **dict(settings, random_state=0)).fit(X, y)
    assert not np.array_equal(seeded.predict_proba(X), first.predict_proba(X))


def test_a_continued_fit_keeps_training_with_the_optimizer_of_the_first_fit():
    """partial_fit and warm_start go on with the first fit's optimizer, its moments and step
    counts included: a new AdamW would start its moments from zero at every call."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, batch_size=4)).fit(X, y)
    optimizer, weight = clf.optimizer_, clf.module_.head.linear.weight
    moment = optimizer.state[weight]["exp_avg"].clone()
    assert int(optimizer.state[weight]["step"]) == 2  # 8 windows, batches of 4
    clf.partial_fit(X, y)
    assert clf.optimizer_ is optimizer and int(optimizer.state[weight]["step"]) == 4
    assert not torch.equal(optimizer.state[weight]["exp_avg"], moment)
    clf.set_params(warm_start=True).fit(X, y)
    assert clf.optimizer_ is optimizer and int(optimizer.state[weight]["step"]) == 6
    clf.set_params(warm_start=False).fit(X, y)  # a new fit: a new optimizer
    assert clf.optimizer_ is not optimizer
    assert int(clf.optimizer_.state[clf.module_.head.linear.weight]["step"]) == 2


def test_a_failed_continued_fit_leaves_the_optimizer_as_it_was():
    """The optimizer's moments are part of the model a continued fit trains: a continued fit
    after a failed one trains as if the failed one had not happened."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2),
                              callbacks=[FailInSecondEpoch()]).fit(X, y)
    before = copy.deepcopy(clf.optimizer_.state_dict())
    FailInSecondEpoch.armed = True
    with pytest.raises(RuntimeError, match="disk full"):
        clf.partial_fit(X, y)
    after = clf.optimizer_.state_dict()
    assert after["state"].keys() == before["state"].keys()
    for index, state in before["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(after["state"][index][name]),
                               torch.as_tensor(value)), (index, name)


def test_predictions_made_a_chunk_of_subjects_at_a_time_are_each_subjects_own(monkeypatch):
    from brainjepa_sk import _base

    rng = np.random.default_rng(0)
    X = [rng.standard_normal((n, N_REGIONS)) for n in (24, 8, 16, 8, 16)]
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), window="sliding",
                              stride=8).fit(X, [0, 1, 0, 1, 0])
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, np.arange(5.0))
    proba, prediction = clf.predict_proba(X), reg.predict(X)
    monkeypatch.setattr(_base, "SUBJECTS_PER_CHUNK", 2)
    np.testing.assert_allclose(clf.predict_proba(X), proba, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(reg.predict(X), prediction, rtol=1e-6, atol=1e-6)


def test_a_constant_target_is_predicted_rather_than_divided_by_zero():
    rng = np.random.default_rng(0)
    levels = rng.uniform(-1, 1, 8)
    y = np.stack([levels, np.full(8, 7.0)], axis=1)  # e.g. a site every subject shares
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=2)).fit(offset_subjects(levels), y)
    np.testing.assert_allclose(reg.target_scale_, [levels.std(), 1.0])
    prediction = reg.predict(offset_subjects(levels))
    assert np.isfinite(prediction).all()
    np.testing.assert_allclose(prediction[:, 1], 7.0, atol=1.0)


def test_a_continued_fit_keeps_the_target_scaling_of_the_first_fit():
    """The model's outputs are in the first fit's scaled units: a continued fit on subjects
    with other targets (here without learning anything) predicts what it predicted."""
    rng = np.random.default_rng(0)
    levels = rng.uniform(-1, 1, 8)
    X, y = offset_subjects(levels), 60 + 10 * levels
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=2)).fit(X, y)
    mean, scale, prediction = reg.target_mean_, reg.target_scale_, reg.predict(X)
    reg.set_params(lr=0.0, min_lr=0.0).partial_fit(X[:4], y[:4] + 20)
    np.testing.assert_array_equal(reg.target_mean_, mean)
    np.testing.assert_array_equal(reg.target_scale_, scale)
    np.testing.assert_allclose(reg.predict(X), prediction, rtol=1e-6)


def test_a_continued_fit_refuses_another_standardize_targets():
    """The model's outputs are the targets scaled as in the first fit: standardize_targets
    changed since was ignored by a continued fit without a word."""
    levels = np.random.default_rng(0).uniform(-1, 1, 8)
    X, y = offset_subjects(levels), 60 + 10 * levels
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    with pytest.raises(ValueError, match=r"standardize_targets=False \(fitted with True\): a "
                                         r"continued fit.*warm_start=False"):
        reg.set_params(standardize_targets=False).partial_fit(X, y)
    assert len(reg.history_) == 1
    reg.set_params(warm_start=False).fit(X, y)  # a new fit takes it
    np.testing.assert_array_equal(reg.target_scale_, [1.0])


def test_skorchs_split_is_not_warned_about_with_one_window_per_subject():
    rng = np.random.default_rng(0)
    X = [rng.standard_normal((16, N_REGIONS)) for _ in range(10)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), window="center",
                            train_split=ValidSplit(2)).fit(X, np.tile([0, 1], 5))


def test_an_interrupted_fit_leaves_the_fitted_estimator_as_it_was(monkeypatch):
    """Ctrl-C (KeyboardInterrupt) while a new fit cuts the windows undoes it like any error:
    the fitted model keeps its own preprocessing (skorch itself ends its training loop
    early on Ctrl-C, without raising)."""
    from brainjepa_sk import finetune

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    module, preprocessor, proba = clf.module_, clf.preprocessor_, clf.predict_proba(X)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(finetune, "training_windows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X * 10, y)
    assert clf.module_ is module and clf.preprocessor_ is preprocessor
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


def press_ctrl_c():
    """What pressing Ctrl-C does: SIGINT to this process (its handler raises
    KeyboardInterrupt; see ``ctrl_c_raises``)."""
    signal.raise_signal(signal.SIGINT)


class FailOnce(Callback):
    """Raises ``error`` (when set; "ctrl-c": presses it) at the end of the next training
    batch, once."""

    def __init__(self, error=None):
        self.error = error

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training and self.error is not None:
            error, self.error = self.error, None
            if error == "ctrl-c":
                press_ctrl_c()
            raise error


@pytest.mark.parametrize("error", [RuntimeError("disk full"), "ctrl-c"],
                         ids=["error", "ctrl-c"])
@pytest.mark.parametrize("how", ["fit", "partial_fit"])
def test_a_fit_stopped_inside_skorchs_loop_leaves_the_fitted_estimator_as_it_was(
        error, how, ctrl_c_raises):
    """An error or Ctrl-C in the middle of training (where skorch itself would swallow
    Ctrl-C and keep the half-trained model) restores the model, the optimizer, the history
    and the callbacks' state, and propagates."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    class Marks(Callback):  # a callback of one's own, which adds an attribute while training
        def on_batch_begin(self, net, **kwargs):
            self.seen_ = len(net.history_)

    fail, stop, marks = FailOnce(), EarlyStopping(patience=5, monitor="train_loss"), Marks()
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2, batch_size=4),
                              callbacks=[fail, stop]).fit(X, y)
    clf.callbacks_.append(("marks", marks))  # added after the fit: it had no attributes then
    module, history = clf.module_, clf.history_
    weights = copy.deepcopy(module.state_dict())
    optimizer = copy.deepcopy(clf.optimizer_.state_dict())
    records, proba = copy.deepcopy(clf.history_.to_list()), clf.predict_proba(X)
    stop_state = {key: getattr(stop, key) for key in ("misses_", "best_epoch_")}
    fail.error = error
    with pytest.raises(KeyboardInterrupt if error == "ctrl-c" else RuntimeError):
        getattr(clf, how)(X * 3, y)
    assert clf.module_ is module and clf.history_ is history
    for name, tensor in clf.module_.state_dict().items():
        assert torch.equal(tensor, weights[name]), name
    after = clf.optimizer_.state_dict()
    for key, value in optimizer["state"].items():
        for name, tensor in value.items():
            np.testing.assert_array_equal(after["state"][key][name], tensor)
    assert clf.history_.to_list() == records
    assert {key: getattr(stop, key) for key in stop_state} == stop_state
    assert not hasattr(marks, "seen_")
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


@pytest.mark.parametrize("how", ["fit", "partial_fit", "warm_start"])
def test_ctrl_c_while_fine_tuning_says_what_became_of_the_fit(how, ctrl_c_raises):
    """Ctrl-C inside skorch's loop had raised a bare KeyboardInterrupt, which said nothing;
    it says, as SIGTERM does, where it stopped, that the estimator is as it was, and whether
    the same call again resumes (only a fit of a new model resumes from a checkpoint)."""
    from brainjepa_sk.train import TrainingInterrupted

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    fail = FailOnce()
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2, batch_size=4),
                              callbacks=[fail])
    if how != "fit":
        clf.fit(X, y).set_params(warm_start=how == "warm_start")
    fail.error = "ctrl-c"
    after = (r"With skorch's Checkpoint and LoadInitState, the same fit again resumes"
             if how == "fit" else r"A continued fit \(partial_fit, or fit with "
             r"warm_start=True\) does not resume from a checkpoint")
    # (a bare KeyboardInterrupt fails the match, rather than stopping the tests)
    with pytest.raises(KeyboardInterrupt, match=rf"^stopped by Ctrl-C during epoch "
                                                rf"{1 if how == 'fit' else 3}; the estimator "
                                                rf"is left as it was before this call\. "
                                                rf"{after}") as info:
        getattr(clf, "partial_fit" if how == "partial_fit" else "fit")(X, y)
    assert isinstance(info.value, TrainingInterrupted)  # as the pretrainer's, and SIGTERM's
    assert len(clf.history_ or []) == (0 if how == "fit" else 2)  # as before the call


def test_sigterm_during_partial_fit_does_not_say_the_same_call_resumes(sigterm_fails_the_test):
    from brainjepa_sk.train import TrainingInterrupted

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, batch_size=4)).fit(X, y)
    clf.set_params(callbacks=[("term", SigtermAt(batch_of=2))])
    with pytest.raises(TrainingInterrupted, match=r"stopped by SIGTERM after a training batch "
                                                  r"of epoch 2; .* does not resume") as info:
        clf.partial_fit(X, y)
    assert "resumes" not in str(info.value)


@pytest.mark.parametrize("failing", ["save", "rename"])
def test_a_full_disk_during_save_params_names_the_file_and_keeps_the_previous_one(
        tmp_path, monkeypatch, failing):
    """skorch's save_params wrote every file in one call: a full disk surfaced as a bare
    "[Errno 28] No space left on device" that named no file (the pretrainer's saves name it
    and say the disk is full)."""
    import skorch.net

    from brainjepa_sk.train import runtime

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    files = dict(f_params=tmp_path / "params.pt", f_optimizer=tmp_path / "optimizer.pt")
    clf.save_params(**files)
    before = {name: path.read_bytes() for name, path in files.items()}
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if failing == "save":
        real_save = torch.save

        def save(obj, f, *args, **kwargs):
            if "optimizer.pt" in str(f):
                raise full
            return real_save(obj, f, *args, **kwargs)

        monkeypatch.setattr(skorch.net.torch, "save", save)
    else:
        def fsync(fd):
            raise full

        monkeypatch.setattr(runtime.os, "fsync", fsync)
    with torch.no_grad():
        clf.module_.head.linear.weight.add_(1.0)
    with pytest.raises(OSError, match=r"could not save .*(params|optimizer)\.pt: the disk is "
                                      r"full") as info:
        clf.save_params(**files)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    if failing == "save":  # nothing was renamed yet: every previous file is kept
        assert {name: path.read_bytes() for name, path in files.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optimizer.pt", "params.pt"]


def test_skorch_saves_are_atomic_and_a_damaged_file_is_named(tmp_path, monkeypatch):
    """A kill during skorch's in-place torch.save would leave the only copy cut short."""
    import skorch.net
    from skorch.callbacks import Checkpoint, LoadInitState

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                              callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    params = tmp_path / "params.pt"
    good = params.read_bytes()
    real_save = torch.save

    def killed_save(obj, f, *args, **kwargs):
        with open(f, "wb") as file:
            file.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(skorch.net.torch, "save", killed_save)
    with pytest.raises(KeyboardInterrupt):
        clf.save_params(f_params=params)
    monkeypatch.setattr(skorch.net.torch, "save", real_save)
    assert params.read_bytes() == good  # the previous file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["params.pt", "optimizer.pt", "criterion.pt", "history.json", "run.json"]
    )  # no leftovers
    # what a kill -9 mid-save leaves (another process's temporary file) goes at the next save
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"params.pt.{socket.gethostname()}.{dead.pid}.abc.tmp"
    stale.write_bytes(b"half a file")
    clf.save_params(f_params=params)
    assert not stale.exists()
    umask = os.umask(0)
    os.umask(umask)
    assert params.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() gives, not mkstemp's
    saved_weights = torch.load(params, weights_only=True)
    for name, value in clf.module_.state_dict().items():
        assert torch.equal(saved_weights[name], value)
    # a damaged file (as an older version's kill left it) is named, and the fit kept
    proba = clf.predict_proba(X)
    for damaged in (params, tmp_path / "history.json"):
        original = damaged.read_bytes()
        damaged.write_bytes(original[: len(original) // 2])
        again = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                                    callbacks=[saved, LoadInitState(saved)])
        with pytest.raises(ValueError, match=rf"could not load .*{damaged.name}.*damaged"):
            again.fit(X, y)
        damaged.write_bytes(original)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


@pytest.mark.parametrize("end", [False, True], ids=["Checkpoint", "TrainEndCheckpoint"])
def test_a_net_pickled_by_skorchs_checkpoint_replaces_the_previous_pickle_whole(
        tmp_path, monkeypatch, end):
    """skorch opens a Checkpoint's f_pickle for writing and pickles the net into it: a
    pickling cut off part-way had left half a pickle in place of the previous one. It keeps
    the previous pickle, loadable, and leaves no temporary file; the pickled net's checkpoint
    names its path, which the checkpoint keeps."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    kind, name = (TrainEndCheckpoint, "train_end_net.pkl") if end else (Checkpoint, "net.pkl")
    saved = kind(dirname=tmp_path, f_params=None, f_optimizer=None, f_criterion=None,
                 f_history=None, f_pickle="net.pkl", **({} if end else {"monitor": None}))
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), callbacks=[saved]).fit(X, y)
    pickled = tmp_path / name
    good, files, proba = pickled.read_bytes(), sorted(tmp_path.iterdir()), clf.predict_proba(X)
    real_dump, written = pickle.dump, []

    def cut_off_dump(obj, file, *args, **kwargs):
        if obj is not clf:  # (skorch pickles some of the net's state on its own)
            return real_dump(obj, file, *args, **kwargs)
        whole = io.BytesIO()
        real_dump(obj, whole, *args, **kwargs)
        written.append(whole.getvalue()[: len(whole.getvalue()) // 2])
        file.write(written[-1])
        raise RuntimeError("cut off")

    monkeypatch.setattr(pickle, "dump", cut_off_dump)
    with pytest.raises(RuntimeError, match="cut off"):
        clf.partial_fit(X, y)
    monkeypatch.undo()
    assert written and pickled.read_bytes() == good  # the previous pickle, whole
    assert sorted(tmp_path.iterdir()) == files  # no temporary file left
    with open(pickled, "rb") as file:
        restored = pickle.load(file)
    np.testing.assert_array_equal(restored.predict_proba(X), proba)
    [restored_checkpoint] = [callback for _, callback in restored.callbacks_
                             if isinstance(callback, kind)]
    assert (restored_checkpoint.checkpoint_ if end else restored_checkpoint).f_pickle == "net.pkl"
    assert (saved.checkpoint_ if end else saved).f_pickle == "net.pkl"


def test_an_interrupted_fine_tuning_continues_from_skorchs_checkpoint(tmp_path, ctrl_c_raises):
    """Ctrl-C propagates, what skorch's Checkpoint saved stays, and LoadInitState continues
    from it: the same fit again trains the epochs left, as the interrupted run would have."""
    from skorch.callbacks import Checkpoint, LoadInitState

    class CtrlC(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history_) == 2:
                press_ctrl_c()

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    reference = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=4)).fit(X, y)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    with pytest.raises(KeyboardInterrupt):  # as the user guide shows: nothing to load yet
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=4),
                            callbacks=[saved, LoadInitState(saved), CtrlC()]).fit(X, y)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    resumed = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=4),
                                  callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    losses = [record["train_loss"] for record in resumed.history_]
    assert len(losses) == 4  # the run's 4 epochs: the 2 saved ones, and the 2 left
    np.testing.assert_allclose(losses, [r["train_loss"] for r in reference.history_],
                               rtol=1e-6)
    # the optimizer went on from its saved state: two steps before, two after (one per epoch)
    steps = {int(value["step"]) for value in resumed.optimizer_.state_dict()["state"].values()}
    assert steps == {4}


#: A run that draws at every epoch: warm-up and cosine, shuffling, stochastic depth (of the
#: second of two blocks).
RESUMED_RUN = fast(max_epochs=4, batch_size=4, lr=1e-2, drop_path_rate=0.5, warmup_epochs=1)


def assert_same_run(net, reference):
    """The same epochs, learning rates, losses, checkpoint saves and weights, exactly."""
    keys = ["epoch", "lr", "train_loss", "train_loss_best", "event_cp"]
    if "valid_loss" in reference.history_[-1]:
        keys += ["valid_loss", "valid_loss_best", "valid_acc", "valid_acc_best"]
    for key in keys:
        assert net.history_[:, key] == reference.history_[:, key], key
    reference_weights = reference.module_.state_dict()
    for name, tensor in net.module_.state_dict().items():
        assert torch.equal(tensor, reference_weights[name]), name


class FailAtEpochEnd(Callback):
    """Raises at the end of epoch ``epoch`` (after the Checkpoint listed before it saved)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history_) == self.epoch:
            raise RuntimeError("the job was killed")


@pytest.mark.parametrize("step", ["check_resumed_run", "restore_early_stopping"])
def test_ctrl_c_while_a_fit_checks_the_run_it_resumes_stops_it(
        tmp_path, monkeypatch, ctrl_c_raises, step):
    """Ctrl-C while the fit checks the loaded run (its run file, EarlyStopping's best weights
    read back), before the first epoch: skorch swallowed it there, and the fit returned the
    checkpoint's half-trained model as if fitted. It propagates, the estimator left as it
    was."""
    from brainjepa_sk import finetune

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    script = dict(fast(max_epochs=4), callbacks=[saved, LoadInitState(saved)])
    with pytest.raises(RuntimeError, match="killed"):
        BrainJEPAClassifier(tiny_module(), **{
            **script, "callbacks": [*script["callbacks"], FailAtEpochEnd(2)]}).fit(X, y)
    fitted = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    proba, history = fitted.predict_proba(X), fitted.history_.to_list()
    monkeypatch.setattr(finetune, step, lambda *args: press_ctrl_c())
    with pytest.raises(KeyboardInterrupt):
        fitted.set_params(**script).fit(X, y)
    np.testing.assert_array_equal(fitted.predict_proba(X), proba)
    assert fitted.history_.to_list() == history
    monkeypatch.undo()
    assert len(fitted.fit(X, y).history_) == 4  # the run resumes


def test_the_same_fit_again_resumes_an_interrupted_run_and_ends_as_the_uninterrupted_one(
        tmp_path):
    """skorch's Checkpoint and LoadInitState, and the same script run again: the resumed fit
    trains the epochs left of max_epochs (it had trained max_epochs more), goes on with the
    warm-up and cosine where they were (they had started again from 0), draws its shuffling
    and stochastic depth as the uninterrupted run did (they had followed the fit's seed
    from the first resumed epoch on), and its scoring callbacks take the best loss from the
    loaded history (it had started again from infinity: the first resumed epoch was the
    best, and the Checkpoint saved it over the better one)."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 8)), np.tile([0, 1], 8)
    # skorch's default Checkpoint: it saves the epochs of the best validation loss so far (a
    # rate at which the validation loss rises again)
    run = dict(RESUMED_RUN, lr=0.1, train_split=SubjectValidSplit(0.25, stratified=True))
    saved = Checkpoint(dirname=tmp_path)
    reference = BrainJEPAClassifier(tiny_module(depth=2), **run, callbacks=[
        Checkpoint(dirname=tmp_path / "reference")]).fit(X, y)
    script = dict(callbacks=[saved, LoadInitState(saved)], **run)
    with pytest.raises(RuntimeError, match="killed"):
        BrainJEPAClassifier(tiny_module(depth=2), **{
            **script, "callbacks": [*script["callbacks"], FailAtEpochEnd(2)]}).fit(X, y)
    resumed = BrainJEPAClassifier(tiny_module(depth=2), **script).fit(X, y)
    # the checkpoint holds the best of the 2 epochs trained, and the history up to it: the
    # epochs after it are trained again, as they were; one of them is not a best
    saves = [record["epoch"] for record in reference.history_ if record["event_cp"]]
    kept = max(epoch for epoch in saves if epoch <= 2)
    assert not all(reference.history_[kept:, "valid_loss_best"])
    assert_same_run(resumed, reference)
    np.testing.assert_array_equal(resumed.predict_proba(X), reference.predict_proba(X))
    # the run saved up to its last best epoch: the same fit again trains the epochs after it
    # (none when it was the last), as they were
    again = BrainJEPAClassifier(tiny_module(depth=2), **script).fit(X, y)
    assert_same_run(again, reference)
    # fewer max_epochs than the loaded history holds: nothing trained, and said so
    with pytest.warns(UserWarning, match=f"holds {saves[-1]} epochs, more than "
                                         f"max_epochs={saves[-1] - 1}: no epoch"):
        shorter = BrainJEPAClassifier(tiny_module(depth=2),
                                      **{**script, "max_epochs": saves[-1] - 1}).fit(X, y)
    assert len(shorter.history_) == saves[-1]
    checkpoint = torch.load(tmp_path / "params.pt", weights_only=True)
    for name, tensor in shorter.module_.state_dict().items():
        assert torch.equal(tensor, checkpoint[name]), name
    # partial_fit (and warm_start) still train max_epochs more, with a schedule of their own
    partial = BrainJEPAClassifier(tiny_module(depth=2), **{**RESUMED_RUN, "max_epochs": 1},
                                  callbacks=[LoadInitState(saved)]).set_params(warmup_epochs=0)
    partial.partial_fit(X, y)
    assert len(partial.history_) == saves[-1] + 1
    assert partial.history_[-1]["lr"] == pytest.approx(FAST_MIN_LR)


@pytest.mark.parametrize("interrupted", [False, True], ids=["finished", "interrupted"])
def test_a_fold_sharing_a_checkpoint_refuses_the_run_of_another_fold(tmp_path, interrupted):
    """The folds of a cross-validation share their Checkpoint's dirname: each later fold's
    LoadInitState loaded the run of the one before and resumed it, trained on other subjects
    (its test subjects among them), without a word when that run was unfinished, and was that
    fold's model when it was finished. The run file saved with the checkpoint records its
    subjects: the later fold is refused, naming the folder, before anything is trained or
    saved, and a fitted estimator is left as it was; the same fit again still resumes."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    (first, _), (second, _) = KFold(2).split(X)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    callbacks = [saved, LoadInitState(saved), *([FailAtEpochEnd(1)] if interrupted else [])]
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2), callbacks=callbacks)
    if interrupted:
        with pytest.raises(RuntimeError, match="killed"):
            clone(clf).fit(X[first], y[first])
    else:
        clone(clf).fit(X[first], y[first])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "criterion.pt", "history.json", "optimizer.pt", "params.pt", "run.json"]
    files = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    refused = f"the checkpoint in {re.escape(str(tmp_path))} that LoadInitState loaded is of a " \
              "run on other subjects or targets than this fit's: it is not resumed"
    # a fitted estimator, fitted again on the other fold with the checkpoint: as it was
    fitted = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2)).fit(X[second], y[second])
    proba = fitted.predict_proba(X)
    fitted.set_params(callbacks=[saved, LoadInitState(saved)])
    with pytest.raises(ValueError, match=refused):
        fitted.fit(X[second], y[second])
    np.testing.assert_array_equal(fitted.predict_proba(X), proba)
    assert len(fitted.history_) == 2
    # other labels of the same subjects are another run too
    with pytest.raises(ValueError, match=refused):
        clone(clf).set_params(callbacks=[saved, LoadInitState(saved)]).fit(
            X[first], 1 - y[first])
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == files
    # the cross-validation: its first fold resumes the run (finishes it, if interrupted), its
    # second is refused
    with pytest.raises(ValueError, match=refused), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "the history loaded", UserWarning)  # (finished)
        cross_validate(clf, X, y, cv=KFold(2), error_score="raise")
    with open(tmp_path / "history.json") as file:
        assert len(json.load(file)) == 2
    # the fold's own fit again still resumes its run, finished, with a warning
    again = clone(clf).set_params(callbacks=[saved, LoadInitState(saved)])
    with pytest.warns(UserWarning, match="holds all max_epochs=2 epochs: no epoch"):
        again.fit(X[first], y[first])
    assert len(again.history_) == 2


def test_a_run_sharing_a_checkpoint_with_other_settings_is_refused_naming_them(tmp_path):
    """The candidates of a grid search share their Checkpoint's dirname and their data: each
    later candidate resumed the run of the one before, of other settings, as its own. The run
    file records the settings that shape the training: a resume with others is refused,
    naming them, while max_epochs (raised to train on), verbose and the callbacks may
    change."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    run = fast(max_epochs=2)
    BrainJEPAClassifier(tiny_module(), **run, callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    grid = GridSearchCV(
        BrainJEPAClassifier(tiny_module(), **run, callbacks=[saved, LoadInitState(saved)]),
        {"lr": [0.03, 0.01]}, cv=[(np.arange(8), np.arange(8))], refit=False,
        error_score="raise")
    with pytest.raises(ValueError, match=r"with other settings than this fit's \(lr=0\.03 "
                                         r"then, 0\.01 now\): it is not resumed"):
        # the first candidate's run is the finished one: returned as it is
        with pytest.warns(UserWarning, match="holds all max_epochs=2 epochs"):
            grid.fit(X, y)
    with pytest.raises(ValueError) as refused:
        BrainJEPAClassifier(tiny_module(seed=1), **fast(max_epochs=2, batch_size=4,
                                                        layer_decay=0.5),
                            callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    message = str(refused.value)
    assert f"the checkpoint in {tmp_path} " in message
    assert "batch_size=8 then, 4 now; layer_decay=1.0 then, 0.5 now; weights=" in message
    assert "call partial_fit instead" in message
    # partial_fit trains on from the checkpoint with settings of its own
    on = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, lr=0.01),
                             callbacks=[LoadInitState(saved)])
    on.partial_fit(X, y)
    assert len(on.history_) == 3
    # what does not shape the run may change: the run, trained to three epochs
    longer = BrainJEPAClassifier(
        tiny_module(), **{**run, "max_epochs": 3, "verbose": 1, "data_dir": tmp_path / "cache",
                          "iterator_train__num_workers": 0},
        callbacks=[saved, LoadInitState(saved), Recorder()]).fit(X, y)
    assert len(longer.history_) == 3
    # the one epoch left
    assert len(longer.callbacks[-1].lrs_) == len(longer.history_[-1]["batches"])


def test_a_weights_module_of_the_runs_architecture_with_other_values_resumes_with_a_warning(
        tmp_path):
    """A from-scratch control built at random again in a new process cannot give the values
    its run started from: LoadInitState loads the run's weights anyway, so the run resumes,
    with a warning (it had been refused, leaving no way to resume); a module of another
    architecture is another run, refused."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    run = fast(max_epochs=2)
    first = BrainJEPAClassifier(tiny_module(seed=0), **{**run, "max_epochs": 1},
                                callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    with pytest.warns(UserWarning, match=r"the weights module has other values than the one "
                                         r"the run .* started from"):
        resumed = BrainJEPAClassifier(tiny_module(seed=1), **run,
                                      callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    assert len(resumed.history_) == 2
    assert resumed.history_[0]["train_loss"] == first.history_[0]["train_loss"]
    # another architecture: LoadInitState refuses the run's files as another model's
    with pytest.raises(ValueError, match=r"could not load .* holds the state of another model"):
        BrainJEPAClassifier(tiny_module(depth=2), **{**run, "max_epochs": 3},
                            callbacks=[saved, LoadInitState(saved)]).fit(X, y)


def test_a_checkpoint_given_by_callback_name_saves_and_checks_the_run_file(tmp_path):
    """skorch takes a callback by name (callbacks__print_log=Checkpoint(...)) in place of the
    listed or default one: such a Checkpoint saved its files without the run file, and such a
    LoadInitState resumed a run of other targets without a word."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2)).set_params(
        callbacks__print_log=saved).fit(X, y)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "criterion.pt", "history.json", "optimizer.pt", "params.pt", "run.json"]
    resumed = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=3),
                                  callbacks__print_log=LoadInitState(saved))
    with pytest.raises(ValueError, match="is of a run on other subjects or targets"):
        resumed.fit(X, 1 - y)
    assert len(resumed.fit(X, y).history_) == 3


def test_a_resume_with_another_split_parameter_names_it(tmp_path):
    """The run file recorded the split by its repr, which the refusal cut short: another
    train_split__random_state (set_params on the fitted net) was named as train_split with the
    same text then and now. It names the split's parameter that differs."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2),
                              train_split=SubjectValidSplit(0.25, random_state=1),
                              callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    clf.set_params(train_split__random_state=2, max_epochs=3)
    with pytest.raises(ValueError, match=r"other settings than this fit's "
                                         r"\(train_split__random_state=1 then, 2 now\)"):
        clf.fit(X, y)
    assert len(clf.set_params(train_split__random_state=1).fit(X, y).history_) == 3


def test_a_resume_with_a_split_of_another_fraction_without_a_repr_is_refused(tmp_path):
    """skorch's ValidSplit has no repr of its own: the run file recorded ValidSplit(0.25) and
    ValidSplit(0.5) as the same setting, and a resume with the other fraction went on. It is
    recorded by its attributes."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    saved = Checkpoint(dirname=tmp_path, monitor=None)

    def resumed(fraction, max_epochs):
        return BrainJEPAClassifier(
            tiny_module(), **fast(max_epochs=max_epochs),
            train_split=ValidSplit(fraction, stratified=False, random_state=0),
            callbacks=[saved, LoadInitState(saved)])

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "train_split is skorch's ValidSplit", UserWarning)
        resumed(0.25, 2).fit(X, y)
        with pytest.raises(ValueError, match=r"other settings than this fit's \(train_split="):
            resumed(0.5, 3).fit(X, y)
        assert len(resumed(0.25, 3).fit(X, y).history_) == 3


def test_a_resume_with_weights_of_a_path_that_differs_at_its_end_shows_where(tmp_path):
    """The refusal cut each value's repr at its end: two weights files whose long paths differ
    only in their names (epoch_1.pt, epoch_2.pt) read the same then and now."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    folder = tmp_path / "pretrained_checkpoints_of_a_rather_long_experiment_name"
    save_checkpoint(folder / "epoch_1.pt", tiny_module())
    save_checkpoint(folder / "epoch_2.pt", tiny_module(seed=1))
    saved = Checkpoint(dirname=tmp_path / "run", monitor=None)
    BrainJEPAClassifier(str(folder / "epoch_1.pt"), **fast(max_epochs=2),
                        callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    with pytest.raises(ValueError) as refused:
        BrainJEPAClassifier(str(folder / "epoch_2.pt"), **fast(max_epochs=3),
                            callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    assert re.search(r"weights=\S*epoch_1\.pt' then, \S*epoch_2\.pt' now",
                     str(refused.value)), str(refused.value)


def test_a_resume_with_gradients_of_other_values_in_a_dataframe_is_refused(tmp_path):
    """The run file recorded a DataFrame of gradients by its repr, which leaves out the middle
    rows: gradients that differ there were the same setting, and the resume went on. It is
    recorded by its values (the same values read again are the same)."""
    import pandas as pd

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    # (ignored with a module, so of any length: as long as a parcellation's, pandas's repr
    # shows 10 of its rows)
    values = np.random.default_rng(0).standard_normal((450, 3))
    other = values.copy()
    other[200, 1] += 1.0
    saved = Checkpoint(dirname=tmp_path, monitor=None)

    def run(gradients, max_epochs):
        return BrainJEPAClassifier(tiny_module(), gradients=gradients, **fast(max_epochs=max_epochs),
                                   callbacks=[saved, LoadInitState(saved)])

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "gradients", UserWarning)
        run(pd.DataFrame(values), 2).fit(X, y)
        with pytest.raises(ValueError, match=r"other settings than this fit's \(gradients="):
            run(pd.DataFrame(other), 3).fit(X, y)
        assert len(run(pd.DataFrame(values.copy()), 3).fit(X, y).history_) == 3


def test_a_regressor_run_of_shifted_targets_is_refused(tmp_path):
    """The run file records the targets as given: standardized, y and y + 1 are the same
    targets, yet another run (another target scaling)."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.linspace(1.0, 8.0, 8)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    run = dict(fast(max_epochs=2), callbacks=[saved, LoadInitState(saved)])
    BrainJEPARegressor(tiny_module(), **run).fit(X, y)
    with pytest.raises(ValueError, match="is of a run on other subjects or targets"):
        BrainJEPARegressor(tiny_module(), **run).fit(X, y + 1)
    with pytest.warns(UserWarning, match="holds all max_epochs=2 epochs"):  # its own run
        BrainJEPARegressor(tiny_module(), **run).fit(X, y.tolist())


def test_a_run_that_held_out_other_subjects_is_refused(tmp_path):
    """A SubjectValidSplit seeded by a RandomState draws other subjects at each fit: the
    resumed fit validated on subjects the loaded model had trained on. The run file records
    the held-out subjects: with the same subjects and settings, such a resume is refused."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 8)), np.tile([0, 1], 8)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    split = SubjectValidSplit(0.25, stratified=True, random_state=np.random.RandomState(0))
    run = dict(fast(max_epochs=2, train_split=split), callbacks=[saved, LoadInitState(saved)])
    with pytest.raises(RuntimeError, match="killed"):
        BrainJEPAClassifier(tiny_module(), **{
            **run, "callbacks": [*run["callbacks"], FailAtEpochEnd(1)]}).fit(X, y)
    with pytest.raises(ValueError, match=f"the checkpoint in {re.escape(str(tmp_path))} that "
                                         "LoadInitState loaded is of a run that held out other "
                                         "subjects for validation"):
        BrainJEPAClassifier(tiny_module(), **run).fit(X, y)


def test_a_checkpoint_without_its_run_file_still_resumes(tmp_path):
    """A checkpoint saved before the run files were written (or by skorch's own nets, or
    without them) has none: it resumes as it did, exactly as the uninterrupted run goes on,
    and its next save writes one. A TrainEndCheckpoint writes its own, with its prefix."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 8)), np.tile([0, 1], 8)
    reference = BrainJEPAClassifier(tiny_module(depth=2), **RESUMED_RUN, callbacks=[
        Checkpoint(dirname=tmp_path / "reference", monitor=None)]).fit(X, y)
    saved = Checkpoint(dirname=tmp_path / "run", monitor=None)
    script = dict(callbacks=[saved, LoadInitState(saved)], **RESUMED_RUN)
    with pytest.raises(RuntimeError, match="killed"):
        BrainJEPAClassifier(tiny_module(depth=2), **{
            **script, "callbacks": [*script["callbacks"], FailAtEpochEnd(2)]}).fit(X, y)
    (tmp_path / "run" / "run.json").unlink()
    resumed = BrainJEPAClassifier(tiny_module(depth=2), **script).fit(X, y)
    assert_same_run(resumed, reference)
    with open(tmp_path / "run" / "run.json") as file:
        assert json.load(file)["settings"]["lr"] == RESUMED_RUN["lr"]
    end = TrainEndCheckpoint(dirname=tmp_path / "end")
    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), callbacks=[end]).fit(X, y)
    assert (tmp_path / "end" / "train_end_run.json").is_file()
    with pytest.raises(ValueError, match="other subjects or targets"):
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2),
                            callbacks=[LoadInitState(end)]).fit(X[:6], y[:6])


def test_a_run_file_written_before_constant_regions_existed_resumes_as_of_its_default(
        tmp_path):
    """Its record lacks the setting, added later: the run was one of constant_regions='error'
    (the behaviour then), so the same fit resumes it and one with 'zero' is refused."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 8)), np.tile([0, 1], 8)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    script = dict(callbacks=[saved, LoadInitState(saved)], **fast(max_epochs=2))
    with pytest.raises(RuntimeError, match="killed"):
        BrainJEPAClassifier(tiny_module(), **{
            **script, "callbacks": [*script["callbacks"], FailAtEpochEnd(1)]}).fit(X, y)
    with open(tmp_path / "run.json") as file:
        record = json.load(file)
    del record["settings"]["constant_regions"]
    with open(tmp_path / "run.json", "w") as file:
        json.dump(record, file)
    with pytest.raises(ValueError, match=r"constant_regions='error' then, 'zero' now"):
        BrainJEPAClassifier(tiny_module(), constant_regions="zero", **script).fit(X, y)
    resumed = BrainJEPAClassifier(tiny_module(), **script).fit(X, y)
    assert len(resumed.history) == 2


def test_a_partial_fit_on_a_loaded_history_keeps_its_best_scores_to_beat(tmp_path):
    """partial_fit's LoadInitState loads a history too, which it trains on after: skorch's
    scoring callbacks had started from infinity, so its first epoch, however bad, was the
    best, and a Checkpoint on train_loss_best saved it over the better one."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    saved = Checkpoint(dirname=tmp_path, monitor="train_loss_best")
    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=3),
                        callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    with open(tmp_path / "history.json") as file:  # up to the best epoch
        n_saved = len(json.load(file))
    params = torch.load(tmp_path / "params.pt", weights_only=True)
    diverging = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, lr=5.0),
                                    callbacks=[saved, LoadInitState(saved)])
    diverging.partial_fit(X, y)
    last = diverging.history_[-1]
    assert len(diverging.history_) == n_saved + 1
    assert last["train_loss"] > min(diverging.history_[:-1, "train_loss"])
    assert last["train_loss_best"] is False and last["event_cp"] is False
    for name, tensor in torch.load(tmp_path / "params.pt", weights_only=True).items():
        assert torch.equal(tensor, params[name]), name  # the best epoch's, kept


def test_a_resumed_fit_stops_where_early_stopping_stopped_the_uninterrupted_run(tmp_path):
    """skorch's EarlyStopping counted its patience afresh when a fit resumed: an interrupted
    run went on past the epoch the uninterrupted one stopped at, and a run it had stopped,
    fitted again, trained on (its first resumed epoch an improvement over infinity). Its
    patience is now replayed over the loaded history."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    run = fast(max_epochs=12, lr=0.3)

    def stopping():
        return EarlyStopping(monitor="train_loss", patience=2)

    reference = BrainJEPAClassifier(tiny_module(), **run, callbacks=[stopping()]).fit(X, y)
    stopped_at = len(reference.history_)
    assert 3 <= stopped_at < 12  # stopped early, after an epoch that missed
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    with pytest.raises(RuntimeError, match="killed"):
        BrainJEPAClassifier(tiny_module(), **run, callbacks=[
            saved, LoadInitState(saved), stopping(), FailAtEpochEnd(stopped_at - 1)]).fit(X, y)
    resumed = BrainJEPAClassifier(tiny_module(), **run,
                                  callbacks=[saved, LoadInitState(saved), stopping()]).fit(X, y)
    assert len(resumed.history_) == stopped_at
    assert_same_module(resumed.module_, reference.module_)
    # the finished run, fitted again: returned as it is, and said so
    with pytest.warns(UserWarning, match=f"EarlyStopping stopped its run \\(epoch {stopped_at}"
                                         r"\): no epoch is trained"):
        again = BrainJEPAClassifier(tiny_module(), **run, callbacks=[
            saved, LoadInitState(saved), stopping()]).fit(X, y)
    assert len(again.history_) == stopped_at
    assert_same_module(again.module_, reference.module_)
    # a patience lowered below the misses the history ends with stops it too (EarlyStopping
    # stops at misses == patience only: counting on from there, it would never stop)
    with pytest.warns(UserWarning, match="EarlyStopping stopped its run"):
        lower = BrainJEPAClassifier(tiny_module(), **run, callbacks=[
            saved, LoadInitState(saved), EarlyStopping(monitor="train_loss", patience=1)])
        lower.fit(X, y)
    assert len(lower.history_) == stopped_at


def test_a_loaded_history_gives_the_score_of_its_best_epoch_to_beat_not_its_last(tmp_path):
    """The score a resumed run must beat is that of the epoch marked best, also when later
    loaded epochs were worse: the last one's score would mark a worse epoch as the best."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    saved = Checkpoint(dirname=tmp_path, monitor=None)  # every epoch: the history holds both
    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2),
                        callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    path = tmp_path / "history.json"
    history = json.loads(path.read_text())
    history[0].update(train_loss=1e-9, train_loss_best=True)  # a best no epoch can beat
    history[1].update(train_loss=1e9, train_loss_best=False)  # then a far worse last epoch
    path.write_text(json.dumps(history))
    resumed = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                                  callbacks=[saved, LoadInitState(saved)])
    resumed.partial_fit(X, y)
    assert len(resumed.history_) == 3
    assert resumed.history_[-1]["train_loss_best"] is False


@pytest.mark.parametrize("scheduler", [
    dict(policy=torch.optim.lr_scheduler.LambdaLR, lr_lambda=functools.partial(pow, 0.5)),
    dict(policy=torch.optim.lr_scheduler.OneCycleLR, max_lr=0.05, total_steps=8,
         step_every="batch"),
    dict(policy="ReduceLROnPlateau", monitor="train_loss", patience=0, factor=0.5),
], ids=["LambdaLR", "OneCycleLR", "ReduceLROnPlateau"])
def test_a_resumed_fit_goes_on_with_skorchs_lr_scheduler_where_the_run_was(tmp_path, scheduler):
    """skorch's LRScheduler builds its scheduler when training begins, before LoadInitState
    loads the history: a resumed run's schedule started again from its first epoch (LambdaLR
    trained on at the first epochs' rates). It is stepped through the loaded epochs."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    run = dict(fast(max_epochs=4, lr=0.03), callbacks__lr_schedule=None)

    def callbacks(folder):
        saved = Checkpoint(dirname=folder, monitor=None)
        return [("schedule", LRScheduler(**scheduler)), saved, LoadInitState(saved)]

    reference = BrainJEPAClassifier(tiny_module(), **run,
                                    callbacks=callbacks(tmp_path / "reference")).fit(X, y)
    with pytest.raises(RuntimeError, match="killed"):
        BrainJEPAClassifier(tiny_module(), **run,
                            callbacks=[*callbacks(tmp_path), FailAtEpochEnd(2)]).fit(X, y)
    resumed = BrainJEPAClassifier(tiny_module(), **run, callbacks=callbacks(tmp_path)).fit(X, y)
    def rates(net):  # recorded each epoch, or each batch (step_every="batch")
        return [(record.get("event_lr"), [batch.get("event_lr") for batch in record["batches"]])
                for record in net.history_]

    assert rates(resumed) == rates(reference)
    if scheduler.get("step_every") == "batch":  # its count of the batches goes on too
        counts = [dict(net.callbacks_)["schedule"].batch_idx_ for net in (resumed, reference)]
        assert counts[0] == counts[1] == sum(reference.history_[:, "train_batch_count"])
    assert resumed.history_[:, "train_loss"] == reference.history_[:, "train_loss"]
    assert [group["lr"] for group in resumed.optimizer_.param_groups] == [
        group["lr"] for group in reference.optimizer_.param_groups]
    assert_same_module(resumed.module_, reference.module_)


@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_skorchs_lr_scheduler_added_to_a_fitted_net_starts_from_the_peak_rate(how):
    """A continued fit builds skorch's LRScheduler at the history's last epoch, which torch
    refused ("param 'initial_lr' is not specified") for an optimizer the built-in schedule
    drove: the groups start from lr times their layer-wise scale (not min_lr, where the
    cosine ended)."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(depth=2), **fast(max_epochs=2, lr=0.02,
                                                           layer_decay=0.5)).fit(X, y)
    clf.set_params(callbacks__lr_schedule=None, warm_start=how == "warm_start", callbacks=[
        LRScheduler(torch.optim.lr_scheduler.LambdaLR, lr_lambda=functools.partial(pow, 0.5))])
    clf.partial_fit(X, y) if how == "partial_fit" else clf.fit(X, y)
    # built at epoch 2, stepped once then and after epoch 3: epochs 3 and 4 at 0.5 ** 2, 3
    # (skorch records the first group's rate)
    groups = clf.optimizer_.param_groups
    assert clf.history_[2:, "event_lr"] == pytest.approx(
        [0.02 * groups[0]["lr_scale"] * 0.5 ** epoch for epoch in (2, 3)])
    assert len({group["lr_scale"] for group in groups}) > 1
    assert [group["lr"] for group in groups] == pytest.approx(
        [0.02 * group["lr_scale"] * 0.5 ** 4 for group in groups])


def test_a_resumed_fit_with_early_stopping_load_best_ends_with_the_best_epochs_weights(
        tmp_path):
    """EarlyStopping(load_best=True) keeps a copy of the best epoch's weights in memory only: a
    run resumed after its best epoch stopped where the uninterrupted one did, but kept the last
    epoch's weights where the uninterrupted run loads the best's. The copy is now read from the
    params file of a Checkpoint whose last save is that epoch; without one, a warning."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    run = fast(max_epochs=12, lr=0.3)

    def stopping():
        return EarlyStopping(monitor="train_loss", patience=3, load_best=True)

    first = stopping()
    reference = BrainJEPAClassifier(tiny_module(), **run, callbacks=[first]).fit(X, y)
    stopped_at, best = len(reference.history_), first.best_epoch_
    assert best < stopped_at - 1 < 12  # stopped early, then interrupted after the best epoch

    def resume(loaded, *others):
        """The net of a run interrupted after its next to last epoch, to resume."""
        callbacks = [loaded, LoadInitState(loaded), *others, stopping()]
        with pytest.raises(RuntimeError, match="killed"):
            BrainJEPAClassifier(tiny_module(), **run,
                                callbacks=[*callbacks, FailAtEpochEnd(stopped_at - 1)]).fit(X, y)
        return BrainJEPAClassifier(tiny_module(), **run, callbacks=callbacks)

    def checkpoint(name, monitor, **kwargs):
        return Checkpoint(dirname=tmp_path / name, monitor=monitor, **kwargs)

    # saved at the best epoch only: the resumed fit starts there
    resumed = resume(checkpoint("best", "train_loss_best")).fit(X, y)
    assert len(resumed.history_) == stopped_at
    assert_same_module(resumed.module_, reference.module_)
    # saved every epoch (the run resumes at its last), and at the best under its own event_name
    resumed = resume(checkpoint("every", None),
                     checkpoint("kept", "train_loss_best", event_name="kept")).fit(X, y)
    assert_same_module(resumed.module_, reference.module_)
    # saved every epoch under names that hold the epoch: the best epoch's file is still there
    # (it had warned, the run ending with the last epoch's weights)
    per_epoch = resume(checkpoint("per_epoch", None, f_params="params_{last_epoch[epoch]}.pt"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        per_epoch.fit(X, y)
    assert len(per_epoch.history_) == stopped_at
    assert_same_module(per_epoch.module_, reference.module_)
    # the finished run, fitted again: no epoch trained, the best epoch's weights too
    every = checkpoint("every", None)
    again = BrainJEPAClassifier(tiny_module(), **run, callbacks=[
        every, LoadInitState(every), checkpoint("kept", "train_loss_best", event_name="kept"),
        stopping()])
    with pytest.warns(UserWarning, match="EarlyStopping stopped its run .*: no epoch is trained"):
        again.fit(X, y)
    assert len(again.history_) == stopped_at
    assert_same_module(again.module_, reference.module_)
    # two others under one event_name, the history holding the later one's saves only (the
    # one saving every epoch was taken as holding the best epoch's weights), and saved every
    # epoch only: the best epoch's weights are not found, which is said
    shared = (checkpoint("run", None, event_name="run"), checkpoint("shared", None),
              checkpoint("shared_best", "train_loss_best"))
    for checkpoints in [shared, (checkpoint("only", None),)]:
        unkept = resume(*checkpoints)
        with pytest.warns(UserWarning, match=rf"EarlyStopping\(load_best=True\) found its best "
                                             rf"train_loss at epoch {best} of the history"):
            unkept.fit(X, y)
        assert len(unkept.history_) == stopped_at
        assert not torch.equal(unkept.module_.head.linear.weight,
                               reference.module_.head.linear.weight)


def test_a_resumed_fit_reads_the_best_epochs_weights_of_a_clone_and_no_unrecorded_save(tmp_path):
    """The Checkpoint whose file holds EarlyStopping(load_best=True)'s best epoch: sklearn's
    clone gives LoadInitState a copy of the net's Checkpoint, which had counted as a second
    Checkpoint of its event_name (a warning, the last epoch's weights); one listed after the
    Checkpoint whose history was loaded saved at its last epoch after that history was (its
    file was taken as the best epoch's); a file deleted since had stopped the fit."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    run = fast(max_epochs=12, lr=0.3)

    def fit(callbacks, interrupt_at=None):
        """A fit with ``callbacks``, killed after epoch ``interrupt_at``, if given."""
        if interrupt_at is None:
            return BrainJEPAClassifier(tiny_module(), **run, callbacks=callbacks).fit(X, y)
        with pytest.raises(RuntimeError, match="killed"):
            fit([*callbacks, FailAtEpochEnd(interrupt_at)])

    first = EarlyStopping(monitor="train_loss", patience=3, load_best=True)
    reference = fit([first])
    stopped_at, best = len(reference.history_), first.best_epoch_
    assert best < stopped_at - 1 < 12

    def best_only():
        checkpoint = Checkpoint(dirname=tmp_path / "best", monitor="train_loss_best")
        return [checkpoint, LoadInitState(checkpoint),
                EarlyStopping(monitor="train_loss", patience=3, load_best=True)]

    fit(best_only(), interrupt_at=stopped_at - 1)
    cloned = clone(BrainJEPAClassifier(tiny_module(), **run, callbacks=best_only()))
    assert cloned.callbacks[1].checkpoint is not cloned.callbacks[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cloned.fit(X, y)
    assert_same_module(cloned.module_, reference.module_)

    # EarlyStopping's threshold takes epoch 2 for no improvement, the "kept" Checkpoint (after
    # "every" in the callbacks, which saves the history) saves it as the best loss yet
    def kept_apart(name, **stopping):
        every = Checkpoint(dirname=tmp_path / f"{name}_every", monitor=None)
        kept = Checkpoint(dirname=tmp_path / f"{name}_kept", monitor="train_loss_best",
                          event_name="kept")
        return [every, LoadInitState(every), kept,
                EarlyStopping(monitor="train_loss", patience=3, load_best=True, **stopping)]

    callbacks = kept_apart("threshold", threshold=0.4)
    uninterrupted = fit(callbacks)
    assert callbacks[-1].best_epoch_ == 1 and uninterrupted.history_[1]["kept"] is True
    fit(kept_apart("threshold_run", threshold=0.4), interrupt_at=2)
    with pytest.warns(UserWarning, match=r"EarlyStopping\(load_best=True\) found its best "
                                         r"train_loss at epoch 1 of the history"):
        fit(kept_apart("threshold_run", threshold=0.4))
    # the best epoch's file deleted since
    fit(kept_apart("deleted"), interrupt_at=stopped_at - 1)
    os.remove(tmp_path / "deleted_kept" / "params.pt")
    with pytest.warns(UserWarning, match=rf"found its best train_loss at epoch {best} of the"):
        resumed = fit(kept_apart("deleted"))
    assert len(resumed.history_) == stopped_at


def test_resuming_without_an_integer_random_state_is_warned_of_its_new_draws(tmp_path):
    """random_state=None draws another seed for the resumed fit: its SubjectValidSplit holds
    out other subjects than the interrupted run did, some the loaded model trained on, and its
    epochs draw otherwise; it resumed without a word. A RandomState instance, whose state the
    interrupted fit drew from, is warned of too. An integer seed resumes silently."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 8)), np.tile([0, 1], 8)

    class HeldOut(Callback):
        def on_train_begin(self, net, **kwargs):
            self.held_out_ = sorted(net._held_out_)

    for name, random_state in [("none", None), ("instance", np.random.RandomState(0)),
                               ("int", 0)]:
        saved = Checkpoint(dirname=tmp_path / name, monitor=None)
        run = fast(max_epochs=3, random_state=random_state,
                   train_split=SubjectValidSplit(0.25, stratified=True))
        first = HeldOut()
        with pytest.raises(RuntimeError, match="killed"):
            BrainJEPAClassifier(tiny_module(), **run, callbacks=[
                saved, LoadInitState(saved), first, FailAtEpochEnd(1)]).fit(X, y)
        resumed = BrainJEPAClassifier(tiny_module(), **run,
                                      callbacks=[saved, LoadInitState(saved), HeldOut()])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            resumed.fit(X, y)
        messages = [str(warning.message) for warning in caught]
        assert len(resumed.history_) == 3
        if name != "int":
            assert any(f"resuming a run of 1 epoch(s) with random_state={random_state!r}"
                       in message and "pass an integer random_state" in message
                       for message in messages)
        else:
            assert not messages
            assert resumed.callbacks[-1].held_out_ == first.held_out_


@pytest.mark.parametrize("failure, epoch", [(SystemExit, 2), (OSError(28, "No space"), 4)],
                         ids=["killed", "disk-full"])
def test_a_checkpoint_saved_in_part_leaves_the_previous_one_to_resume_from(
        tmp_path, monkeypatch, failure, epoch):
    """skorch's Checkpoint saves its files one save_params call at a time (the history
    last), and catches a save's error (printed only with verbose) to go on with the others:
    a kill, or a full disk, while it saved the history had left the epoch's new weights
    beside the previous epoch's history, and the same fit again trained that epoch anew
    from them, to other weights. The files of one save are moved into place together, and
    a failed save is warned about: the previous checkpoint is kept whole, and the run
    resumes from it as the uninterrupted run went on."""
    import skorch.history

    X, y = offset_subjects(np.tile([0.0, 1.0], 8)), np.tile([0, 1], 8)
    reference = BrainJEPAClassifier(tiny_module(depth=2), **RESUMED_RUN, callbacks=[
        Checkpoint(dirname=tmp_path / "reference", monitor=None)]).fit(X, y)
    saved = Checkpoint(dirname=tmp_path / "run", monitor=None)
    to_file = skorch.history.History.to_file

    def failing_to_file(history, f):
        if len(history) == epoch:
            raise failure
        return to_file(history, f)

    monkeypatch.setattr(skorch.history.History, "to_file", failing_to_file)
    run = BrainJEPAClassifier(tiny_module(depth=2), **RESUMED_RUN,
                              callbacks=[saved, LoadInitState(saved)])
    if failure is SystemExit:  # a kill
        with pytest.raises(SystemExit):
            run.fit(X, y)
    else:
        with pytest.warns(UserWarning, match=r"could not save .*history\.json: the disk is "
                                             r"full.*not written either: the previous ones "
                                             r"are kept, whole"):
            run.fit(X, y)
    monkeypatch.undo()
    files = ["criterion.pt", "history.json", "optimizer.pt", "params.pt", "run.json"]
    # no temporary file left
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == files
    resumed = BrainJEPAClassifier(tiny_module(depth=2), **RESUMED_RUN,
                                  callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    assert_same_run(resumed, reference)
    np.testing.assert_array_equal(resumed.predict_proba(X), reference.predict_proba(X))


def test_a_checkpoint_folder_that_cannot_be_written_says_nothing_is_saved(
        tmp_path, monkeypatch):
    """Every save of a Checkpoint refused (a folder one may not write to): the warning said
    that "the previous ones are kept, whole" when none had been saved, as if the run could be
    resumed. It says there is nothing to resume from, and the fit still returns its model."""
    import skorch.net

    def denied(obj, f, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(f))

    monkeypatch.setattr(skorch.net.torch, "save", denied)
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    with pytest.warns(UserWarning, match=r"could not save .*\.pt: Permission denied.*none was "
                                         r"saved before, so there is no checkpoint to resume "
                                         r"from yet") as record:
        clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2),
                                  callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    assert not any("kept, whole" in str(warning.message) for warning in record)
    assert len(clf.history_) == 2 and clf.predict(X).shape == (8,)
    assert list(tmp_path.iterdir()) == []


def test_a_run_file_that_cannot_be_written_keeps_the_previous_checkpoint(
        tmp_path, monkeypatch):
    """The run file is saved with the checkpoint's files: when it cannot be written (a full
    disk), none of that epoch's files replaces the previous ones, with a warning, as when one
    of skorch's fails, and the run resumes from the previous epoch exactly."""
    import brainjepa_sk._skorch

    X, y = offset_subjects(np.tile([0.0, 1.0], 8)), np.tile([0, 1], 8)
    reference = BrainJEPAClassifier(tiny_module(depth=2), **RESUMED_RUN, callbacks=[
        Checkpoint(dirname=tmp_path / "reference", monitor=None)]).fit(X, y)
    saved = Checkpoint(dirname=tmp_path / "run", monitor=None)
    beside, calls = brainjepa_sk._skorch.temporary_file_beside, []

    def full_at_the_second_run_file(path):
        if path.name == "run.json":
            calls.append(path)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return beside(path)

    monkeypatch.setattr(brainjepa_sk._skorch, "temporary_file_beside",
                        full_at_the_second_run_file)
    script = dict(callbacks=[saved, LoadInitState(saved)], **RESUMED_RUN)
    with pytest.raises(RuntimeError, match="killed"):
        with pytest.warns(UserWarning, match=r"could not save .*run\.json: the disk is full.*"
                                             r"not written either"):
            BrainJEPAClassifier(tiny_module(depth=2), **{
                **script, "callbacks": [*script["callbacks"], FailAtEpochEnd(2)]}).fit(X, y)
    monkeypatch.undo()
    with open(tmp_path / "run" / "history.json") as file:
        assert len(json.load(file)) == 1
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "criterion.pt", "history.json", "optimizer.pt", "params.pt", "run.json"]
    resumed = BrainJEPAClassifier(tiny_module(depth=2), **script).fit(X, y)
    assert_same_run(resumed, reference)


@pytest.mark.parametrize("refused_rename", ["criterion.pt", "params.pt", None])
def test_a_save_cut_off_between_the_renames_of_its_files_is_not_resumed_as_a_mix(
        tmp_path, monkeypatch, refused_rename):
    """A save whose files are renamed into place one at a time, cut off after some (a rename
    refused, a crash, a kill), left new files beside old ones, which LoadInitState resumed
    as one run without a word. The run file, moved into place first, records the digests of
    both saves: files of one save resume exactly, files of two are refused, named by save; a
    run file written before the digests (an earlier version's) still resumes."""
    import brainjepa_sk._skorch

    X, y = offset_subjects(np.tile([0.0, 1.0], 8)), np.tile([0, 1], 8)
    reference = BrainJEPAClassifier(tiny_module(depth=2), **RESUMED_RUN, callbacks=[
        Checkpoint(dirname=tmp_path / "reference", monitor=None)]).fit(X, y)
    saved = Checkpoint(dirname=tmp_path / "run", monitor=None)
    script = dict(callbacks=[saved, LoadInitState(saved)], **RESUMED_RUN)
    move, renamed = brainjepa_sk._skorch.move_into_place, []

    def refused_in_the_second_save(part, target):
        renamed.append(target.name)
        if renamed.count("run.json") == 2 and target.name == refused_rename:
            raise PermissionError(errno.EACCES, "the file could not be replaced", str(target))
        return move(part, target)

    monkeypatch.setattr(brainjepa_sk._skorch, "move_into_place", refused_in_the_second_save)
    first = BrainJEPAClassifier(tiny_module(depth=2), **{
        **script, "callbacks": [*script["callbacks"], FailAtEpochEnd(2)]})
    with pytest.raises(PermissionError if refused_rename else RuntimeError):
        first.fit(X, y)
    monkeypatch.undo()
    # the run file first, then skorch's files (the order of its save)
    assert renamed[:5] == ["run.json", "criterion.pt", "optimizer.pt", "params.pt",
                           "history.json"]
    with open(tmp_path / "run" / "run.json") as file:
        record = json.load(file)
    assert sorted(record["files"]) == ["criterion.pt", "history.json", "optimizer.pt",
                                       "params.pt"]
    files = {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir()}
    resumed = BrainJEPAClassifier(tiny_module(depth=2), **script)
    if refused_rename == "params.pt":
        # the criterion and the optimizer replaced, the weights and the history not
        with pytest.raises(ValueError, match=(
                r"the files of the checkpoint in .*run are of two saves, which are not loaded "
                r"together: criterion\.pt, optimizer\.pt of the last save, history\.json, "
                r"params\.pt of the save before it \(run\.json records both\).*Delete the "
                r"folder's files to start the run afresh")):
            resumed.fit(X, y)
        # refused before anything is trained or saved: the files are left as they were
        assert {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir()} == files
        return
    # refused at its first file: the run file is the only one replaced, and the previous
    # epoch's files, which it records as replaced, resume
    resumed.fit(X, y)
    assert_same_run(resumed, reference)
    if refused_rename is None:
        # a run file of an earlier version, without the digests: resumed as it is
        del record["files"], record["replaced"]
        with open(tmp_path / "run" / "run.json", "w") as file:
            json.dump(record, file)
        with pytest.warns(UserWarning, match="holds all max_epochs=4 epochs"):
            again = BrainJEPAClassifier(tiny_module(depth=2), **script).fit(X, y)
        assert len(again.history_) == RESUMED_RUN["max_epochs"]
        assert_same_run(again, reference)


def test_a_checkpoint_records_its_digests_without_hashlib_file_digest(tmp_path, monkeypatch):
    """hashlib.file_digest is Python 3.11's, and the package supports 3.10: the digests of a
    checkpoint's files had failed there with an AttributeError, which failed every save
    (warned about, no file written)."""
    monkeypatch.delattr(hashlib, "file_digest", raising=False)  # as on Python 3.10
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2), callbacks=[
            Checkpoint(dirname=tmp_path, monitor=None)]).fit(X, y)
    assert not [w for w in record if "could not save" in str(w.message)]
    with open(tmp_path / "run.json") as file:
        record = json.load(file)
    assert record["files"] == {
        name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        for name in ["criterion.pt", "history.json", "optimizer.pt", "params.pt"]}
    assert sorted(record["replaced"]) == sorted(record["files"])


def test_a_checkpoint_file_on_another_drive_is_saved_and_loaded(tmp_path, monkeypatch):
    """On Windows, os.path.relpath raises ValueError for a path on another drive than the
    folder (a Checkpoint's f_params given as D:\\params.pt beside a dirname on C:): the run
    file, which records its files by their names in its folder, had failed every save with
    it (warned about, no file written), and load_params(checkpoint=) with it."""
    other_drive = tmp_path / "other_drive"
    relpath = os.path.relpath

    def relpath_of_one_drive(path, start=os.curdir):
        if os.fspath(path).startswith(os.fspath(other_drive)):
            raise ValueError("path is on mount 'D:', start on mount 'C:'")
        return relpath(path, start)

    monkeypatch.setattr(os.path, "relpath", relpath_of_one_drive)
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    saved = Checkpoint(dirname=tmp_path / "run", monitor=None,
                       f_params=os.fspath(other_drive / "params.pt"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2),
                                  callbacks=[saved]).fit(X, y)
    assert not [w for w in record if "could not save" in str(w.message)]
    assert (other_drive / "params.pt").is_file() and (tmp_path / "run" / "run.json").is_file()
    proba = clf.predict_proba(X)
    clf.load_params(checkpoint=saved)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


def test_load_params_of_a_checkpoint_refuses_files_of_two_saves_and_loads_ones_own(tmp_path):
    """load_params(checkpoint=...) checks the files too: those of two saves are refused, and
    the net is left as it was; a file replaced since by a save of one's own, of neither save
    the run file records, is loaded as it is."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2), callbacks=[saved]).fit(X, y)
    proba = clf.predict_proba(X)
    clf.load_params(checkpoint=saved)  # its own files: loaded
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    with open(tmp_path / "run.json") as file:
        record = json.load(file)
    # the history the last save replaced, back in place: the weights are of the last save
    history = (tmp_path / "history.json").read_text()
    (tmp_path / "history.json").write_text(
        json.dumps(json.loads(history)[:1], separators=(",", ":")))
    record["replaced"]["history.json"] = hashlib.sha256(
        (tmp_path / "history.json").read_bytes()).hexdigest()
    with open(tmp_path / "run.json", "w") as file:
        json.dump(record, file)
    with pytest.raises(ValueError, match=r"are of two saves, which are not loaded together: "
                                         r"criterion\.pt, optimizer\.pt, params\.pt of the "
                                         r"last save, history\.json of the save before it"):
        clf.load_params(checkpoint=saved)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    assert len(clf.history_) == 2
    (tmp_path / "history.json").write_text(history)
    other = BrainJEPAClassifier(tiny_module(seed=1), **fast(max_epochs=1)).fit(X, y)
    other.save_params(f_params=tmp_path / "params.pt")
    clf.load_params(checkpoint=saved)
    np.testing.assert_array_equal(clf.predict_proba(X), other.predict_proba(X))


@pytest.mark.parametrize("system", ["posix", "windows"])
def test_the_run_file_names_files_in_subfolders_alike_on_every_system(tmp_path, monkeypatch,
                                                                      system):
    """The run file names a checkpoint's files with '/' between folders, on Windows too, so
    that a folder saved on one system is checked on another; a name recorded with '\\' (an
    earlier version on Windows) is the same file on Windows, and elsewhere the name of a file
    with a backslash in it (as it is there)."""
    import ntpath
    import types
    from pathlib import PureWindowsPath

    from brainjepa_sk import _skorch

    if system == "windows":  # '\\' a separator of the names
        monkeypatch.setattr(_skorch, "PurePath", PureWindowsPath, raising=False)
        with monkeypatch.context() as windows:
            windows.setattr(_skorch, "os", types.SimpleNamespace(path=ntpath))
            assert _skorch._name_in("C:\\run", "C:\\run\\sub\\params.pt") == "sub/params.pt"
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    # files of two saves, under the names an earlier version recorded on Windows
    if system == "windows":
        params, history = tmp_path / "sub" / "params.pt", tmp_path / "sub" / "history.json"
        params.parent.mkdir()
    else:  # files with a backslash in their names
        params, history = tmp_path / "sub\\params.pt", tmp_path / "sub\\history.json"
    params.write_bytes(b"new weights")
    history.write_bytes(b"old history")
    digest = {content: hashlib.sha256(content).hexdigest()
              for content in (b"new weights", b"old weights", b"new history", b"old history")}
    (tmp_path / "run.json").write_text(json.dumps({
        "files": {"sub\\params.pt": digest[b"new weights"],
                  "sub\\history.json": digest[b"new history"]},
        "replaced": {"sub\\params.pt": digest[b"old weights"],
                     "sub\\history.json": digest[b"old history"]}}))
    between = "/" if system == "windows" else "\\"  # as the error names them
    with pytest.raises(ValueError, match=re.escape(f"sub{between}params.pt of the last save, "
                                                   f"sub{between}history.json of the save")):
        _skorch.check_saved_together(saved, [params, history])


@pytest.fixture
def sigterm_fails_the_test():
    """SIGTERM, which would end the test process, fails the test instead where the fit does
    not handle it; the handler is put back afterwards."""
    class Unhandled(BaseException):
        pass

    def unhandled(signum, frame):
        raise Unhandled("SIGTERM reached the test's handler, not the fit's")

    previous = signal.signal(signal.SIGTERM, unhandled)
    yield unhandled
    signal.signal(signal.SIGTERM, previous)


class SigtermAt(Callback):
    """Sends SIGTERM to this process, as a job scheduler's pre-emption does, at the end of the
    first training batch of epoch ``batch_of``, or at the end of epoch ``end_of`` (after the
    Checkpoint listed before it saved)."""

    def __init__(self, batch_of=None, end_of=None):
        self.batch_of, self.end_of = batch_of, end_of

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if (training and len(net.history_) == self.batch_of
                and not net.history_[-1]["batches"][1:]):
            signal.raise_signal(signal.SIGTERM)

    def on_epoch_end(self, net, **kwargs):
        if len(net.history_) == self.end_of:
            signal.raise_signal(signal.SIGTERM)


def test_sigterm_stops_the_fit_after_the_batch_and_the_same_fit_resumes(
        tmp_path, sigterm_fails_the_test):
    """A pre-emption (SIGTERM) had ended the process at once: it now stops the fit after the
    current batch with TrainingInterrupted (a KeyboardInterrupt, as for the pretrainer, so a
    cross-validation stops too), the estimator left as it was, and the checkpoint of the
    epochs before it resumes. One that arrives after the last batch stops the caller too,
    the whole run saved."""
    from brainjepa_sk.train import TrainingInterrupted

    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    reference = BrainJEPAClassifier(tiny_module(depth=2), **RESUMED_RUN,
                                    callbacks=[Checkpoint(dirname=tmp_path / "reference",
                                                          monitor=None)]).fit(X, y)
    for when, message, saved_epochs in [
            (dict(batch_of=3), "after a training batch of epoch 3", 2),
            (dict(end_of=2), "before epoch 3", 2),  # in the validation or the callbacks
            (dict(end_of=4), r"after the last epoch \(4\)", 4)]:
        saved = Checkpoint(dirname=tmp_path / str(when), monitor=None)  # after every epoch
        script = dict(callbacks=[saved, LoadInitState(saved)], **RESUMED_RUN)
        clf = BrainJEPAClassifier(tiny_module(depth=2), **{
            **script, "callbacks": [*script["callbacks"], SigtermAt(**when)]})
        with pytest.raises(TrainingInterrupted, match=f"stopped by SIGTERM {message}"):
            clf.fit(X, y)
        assert signal.getsignal(signal.SIGTERM) is sigterm_fails_the_test
        assert not hasattr(clf, "preprocessor_") and not clf.initialized_  # as it was
        with open(tmp_path / str(when) / "history.json") as file:
            assert len(json.load(file)) == saved_epochs
        resumed = BrainJEPAClassifier(tiny_module(depth=2), **script)
        if saved_epochs == 4:  # the run complete: returned as it was saved, and said so
            with pytest.warns(UserWarning, match="holds all max_epochs=4 epochs: no epoch"):
                resumed.fit(X, y)
        else:
            resumed.fit(X, y)
        assert_same_run(resumed, reference)


def test_a_fit_in_a_process_that_ignores_sigterm_is_not_stopped_by_it():
    """SIGTERM ignored (SIG_IGN, e.g. a shell's ``trap '' TERM``) stays ignored: the fit had
    stopped with TrainingInterrupted, which the process had asked not to be."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    from brainjepa_sk.train import TrainingInterrupted

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2),
                                  callbacks=[SigtermAt(batch_of=1)])
        try:  # a KeyboardInterrupt, which would end the test session
            clf.fit(X, y)
        except TrainingInterrupted as interrupted:
            pytest.fail(f"the ignored SIGTERM stopped the fit: {interrupted}")
        assert len(clf.history_) == 2
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_loader_workers_ignore_sigterm_so_a_preemption_stops_the_fit_cleanly(
        sigterm_fails_the_test):
    """A scheduler's SIGTERM reaches the loader workers too: one it ended made torch raise
    "DataLoader worker exited unexpectedly" in the batch being finished, a RuntimeError (which
    a cross-validation would have skipped past) instead of TrainingInterrupted."""
    import multiprocessing

    from brainjepa_sk.train import TrainingInterrupted

    class Preempted(Callback):  # SIGTERM to the job's processes, the workers' first
        def on_batch_end(self, net, batch=None, training=False, **kwargs):
            if training and len(net.history_) == 2:
                for worker in multiprocessing.active_children():
                    os.kill(worker.pid, signal.SIGTERM)
                signal.raise_signal(signal.SIGTERM)
                time.sleep(1.0)  # a worker that died is reported (torch's SIGCHLD handler)

    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=3, batch_size=4),
                              iterator_train__num_workers=1, callbacks=[Preempted()])
    with pytest.raises(TrainingInterrupted, match="after a training batch of epoch 2"):
        clf.fit(X, y)

    def own(worker_id):
        pass

    clf.set_params(iterator_train__worker_init_fn=own)
    assert clf.get_params_for("iterator_train")["worker_init_fn"] is own  # kept


class FailsInEpoch(Callback):
    """Raises RuntimeError("stop") in the second epoch: after its first training batch
    (``where="batch"``) or at its end (``where="epoch"``)."""

    def __init__(self, where):
        self.where = where

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if self.where == "batch" and training and len(net.history_) == 2:
            raise RuntimeError("stop")

    def on_epoch_end(self, net, **kwargs):
        if self.where == "epoch" and len(net.history_) == 2:
            raise RuntimeError("stop")


@pytest.mark.parametrize("where, loaders", [
    ("batch", {"iterator_train__num_workers": 1}),
    ("batch", {"iterator_train__num_workers": 1, "iterator_train__persistent_workers": True}),
    ("epoch", {"iterator_train__num_workers": 1, "iterator_train__persistent_workers": True}),
    ("epoch", {"iterator_valid__num_workers": 1, "iterator_valid__persistent_workers": True,
               "train_split": ValidSplit(3)}),
])
def test_a_failed_fit_stops_its_loader_workers(where, loaders):
    """A notebook keeps the traceback of an error, which holds the fit's frames: the
    suspended pass over a training loader, and skorch's loaders with their persistent
    workers. Those workers lived on with it, each holding a copy of the data (and a pytest
    run that kept them waited for ever on their exit, as they ignore SIGTERM)."""
    import multiprocessing

    before = {child.pid for child in multiprocessing.active_children()}
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=3, batch_size=4), **loaders,
                              callbacks=[FailsInEpoch(where)])
    with pytest.raises(RuntimeError, match="stop") as kept:  # its traceback held
        clf.fit(X, y)

    def workers_alive():
        return [child for child in multiprocessing.active_children()
                if child.pid not in before]

    deadline = time.monotonic() + 3.0  # a process ended is reaped asynchronously
    while workers_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not workers_alive()
    assert kept.traceback  # still held


def test_a_failed_prediction_stops_its_loader_workers():
    """The traceback of a failed predict (a Ctrl-C in a notebook, which keeps it) held
    skorch's prediction loader, and its persistent workers lived on with it."""
    import gc
    import multiprocessing

    before = {child.pid for child in multiprocessing.active_children()}
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, batch_size=4),
                              iterator_valid__num_workers=1,
                              iterator_valid__persistent_workers=True).fit(X, y)

    def fails(*args, **kwargs):
        raise RuntimeError("stop")

    def workers_alive():
        return [child for child in multiprocessing.active_children()
                if child.pid not in before]

    clf.module_.forward = fails
    with pytest.raises(RuntimeError, match="stop") as kept:  # its traceback held
        clf.predict(X)
    try:
        deadline = time.monotonic() + 3.0  # a process ended is reaped asynchronously
        while workers_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not workers_alive()
        assert kept.traceback  # still held
    finally:  # a worker left (the failure) ignores SIGTERM: pytest's exit would wait on it
        del kept
        gc.collect()


def test_a_callback_ending_training_with_keyboardinterrupt_keeps_what_was_trained(
        ctrl_c_raises):
    """skorch's callbacks (EarlyStopping among them) end training by raising
    KeyboardInterrupt: that is not Ctrl-C, and the fit ends normally."""
    class Stop(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history_) == 2:
                raise KeyboardInterrupt

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=5), callbacks=[Stop()]).fit(X, y)
    assert len(clf.history_) == 2 and clf.predict(X).shape == (8,)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_callback_ending_training_at_a_nan_loss_does_not_return_nan_weights():
    """A callback that ends training by raising KeyboardInterrupt inside an epoch (one that
    stops at a NaN loss, as Keras' TerminateOnNaN) skipped the epoch's loss guard: the fit
    returned NaN weights as fitted. It stops with FloatingPointError, the estimator left as it
    was."""
    class TerminateOnNaN(Callback):
        def on_batch_end(self, net, training=False, **kwargs):
            if training and not np.isfinite(net.history_[-1, "batches", -1, "train_loss"]):
                raise KeyboardInterrupt

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, batch_size=2)).fit(X, y)
    proba = clf.predict_proba(X)
    clf.set_params(lr=1e12, max_epochs=3, callbacks=[TerminateOnNaN()])
    with pytest.raises(FloatingPointError, match="loss became nan in epoch 1"):
        clf.fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    assert len(clf.history_) == 1


class StopInside(Callback):
    """Ends training as skorch's callbacks do (KeyboardInterrupt), once, inside epoch
    ``epoch``: when it begins, or after a training or a validation batch."""

    def __init__(self, epoch, where):
        self.epoch, self.where = epoch, where

    def on_epoch_begin(self, net, **kwargs):
        if self.where == "begin":
            self._stop(net)

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if self.where == ("training" if training else "validation"):
            self._stop(net)

    def _stop(self, net):
        if len(net.history_) == self.epoch:
            self.epoch = None
            raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["begin", "training", "validation"])
def test_an_epoch_a_callback_ends_inside_has_no_record_in_history(where, tmp_path,
                                                                  sigterm_fails_the_test):
    """skorch records an epoch when it begins: a callback that ended training inside one left
    a row with its number only (no train_loss, no valid_loss), which a TrainEndCheckpoint saved
    and a continued fit numbered on from. history_ holds completed epochs only, as the
    pretrainer's: the model keeps what it trained of the cut epoch. SIGTERM (as Ctrl-C) inside
    an epoch leaves the estimator as it was, its history_ that of the fits before."""
    from brainjepa_sk.train import TrainingInterrupted

    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    end = TrainEndCheckpoint(dirname=tmp_path)
    clf = BrainJEPAClassifier(
        tiny_module(), **fast(max_epochs=3, batch_size=4),
        train_split=SubjectValidSplit(0.34, random_state=0),
        callbacks=[("stop", StopInside(2, where)), ("end", end)]).fit(X, y)
    complete = {"epoch", "dur", "train_loss", "valid_loss", "valid_acc", "lr"}
    assert [record["epoch"] for record in clf.history_] == [1]
    assert complete <= set(clf.history_[0])
    with open(tmp_path / "train_end_history.json") as file:
        saved = json.load(file)
    # with the record of the cut epoch, when it trained a batch: the files are named after it
    assert [(record["epoch"], record.get("cut_short", False)) for record in saved] == (
        [(1, False)] if where == "begin" else [(1, False), (2, True)])
    clf.partial_fit(X, y)
    assert [record["epoch"] for record in clf.history_] == [1, 2, 3, 4]
    assert all(complete <= set(record) for record in clf.history_)
    clf.set_params(callbacks__stop=SigtermAt(batch_of=5))
    with pytest.raises(TrainingInterrupted, match="after a training batch of epoch 5"):
        clf.partial_fit(X, y)
    assert [record["epoch"] for record in clf.history_] == [1, 2, 3, 4]


@pytest.mark.parametrize("cut_epoch", [1, 2])
def test_the_end_of_training_sees_an_epoch_a_callback_cut_short(cut_epoch, tmp_path):
    """The record of an epoch a callback ends inside is dropped from history_, but the
    callbacks see it at the end of training, as skorch shows it: EarlyStopping(load_best=True)
    takes the cut epoch as the last, restoring its best epoch's weights (it had kept the cut
    epoch's, and failed on the empty history when the first epoch was cut), and a
    TrainEndCheckpoint names its files after it (it failed on the empty history). The history
    it saves holds the cut epoch's record marked "cut_short" (load_params names the files
    from it, and leaves it out); the history it pickles holds the completed epochs only."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    stopping = EarlyStopping(monitor="train_loss", patience=50, load_best=True)
    end = TrainEndCheckpoint(dirname=tmp_path, f_params="params_{last_epoch[epoch]}.pt",
                             f_pickle="net.pkl")
    clf = BrainJEPAClassifier(
        tiny_module(), **fast(max_epochs=3, batch_size=4, train_split=None),
        callbacks=[("stop", StopInside(cut_epoch, "training")), ("stopping", stopping),
                   ("end", end)]).fit(X, y)
    completed = list(range(1, cut_epoch))
    assert [record["epoch"] for record in clf.history_] == completed
    if cut_epoch > 1:
        assert stopping.best_epoch_ == 1
        best = stopping.best_model_weights_
        assert all(torch.equal(value, best[name])
                   for name, value in clf.module_.state_dict().items())
    assert (tmp_path / f"train_end_params_{cut_epoch}.pt").exists()
    with open(tmp_path / "train_end_history.json") as file:
        saved = json.load(file)
    assert [record["epoch"] for record in saved] == [*completed, cut_epoch]
    assert [record.get("cut_short", False) for record in saved] == [*(False for _ in completed),
                                                                    True]
    with open(tmp_path / "train_end_net.pkl", "rb") as file:
        assert [record["epoch"] for record in pickle.load(file).history_] == completed


def test_a_train_end_checkpoint_of_a_run_cut_short_resumes_from_files_named_after_the_cut(
        tmp_path):
    """A TrainEndCheckpoint names its files after the epoch a callback cut short (the
    callbacks see it at the end of training), but the history it saved held the completed
    epochs only: LoadInitState looked for params_1.pt, not the params_2.pt saved, and the fit
    started afresh without a word. The history saved holds the cut epoch's record too, marked
    "cut_short", from which load_params names the files; history_ holds the completed epochs
    only, and the resumed fit trains the cut epoch's batches left, from the weights saved."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    settings = fast(max_epochs=3, batch_size=4, train_split=None)
    end = TrainEndCheckpoint(dirname=tmp_path, f_params="params_{last_epoch[epoch]}.pt")
    cut = BrainJEPAClassifier(tiny_module(), **settings,
                              callbacks=[("stop", StopInside(2, "training")), ("end", end)])
    cut.fit(X, y)
    assert sorted(path.name for path in tmp_path.glob("*params*")) == ["train_end_params_2.pt"]
    with open(tmp_path / "train_end_history.json") as file:
        saved = json.load(file)
    assert [(record["epoch"], record.get("cut_short", False)) for record in saved] == [
        (1, False), (2, True)]
    loaded = BrainJEPAClassifier(tiny_module(seed=1), **{**settings, "max_epochs": 0})
    loaded.fit(X, y)
    loaded.load_params(checkpoint=end.checkpoint_)
    assert [record["epoch"] for record in loaded.history_] == [1]
    assert_same_module(loaded.module_, cut.module_)
    recorder = Recorder()
    resumed = BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
        ("end", end), ("load", LoadInitState(end)), ("record", recorder)]).fit(X, y)
    assert [record["epoch"] for record in resumed.history_] == [1, 2, 3]
    assert resumed.history_[0]["train_loss"] == cut.history_[0]["train_loss"]
    # epoch 2 after the batch it had trained, and epoch 3, of 3 batches each
    assert len(recorder.lrs_) == 2 + 3


class BatchRecorder(Callback):
    """Records each training batch's windows (a digest) and learning rates."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.batches_ = []

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training:
            windows = batch[0]["X"] if isinstance(batch[0], dict) else batch[0]
            self.batches_.append((hashlib.sha256(windows.numpy().tobytes()).hexdigest(),
                                  [group["lr"] for group in net.optimizer_.param_groups]))


class StopAfterBatches(Callback):
    """Ends training (KeyboardInterrupt) once, after ``batches`` training batches of epoch
    ``epoch``, or after the first validation batch of its epoch for ``batches=None``."""

    def __init__(self, epoch, batches):
        self.epoch, self.batches = epoch, batches

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if len(net.history_) != self.epoch:
            return
        trained = sum("train_loss" in record for record in net.history_[-1]["batches"])
        if (training and trained == self.batches) or (not training and self.batches is None):
            self.epoch = None
            raise KeyboardInterrupt


@pytest.mark.parametrize("batches", [2, None], ids=["training", "validation"])
def test_a_run_a_callback_cut_inside_an_epoch_resumes_at_the_batch_it_was_cut_after(
        batches, tmp_path):
    """A run cut inside an epoch (a callback's KeyboardInterrupt, its TrainEndCheckpoint
    saving the cut epoch's record) resumed with LoadInitState had trained the cut epoch again
    from its first batch, with the weights that had already seen part of it: the run did not
    end as the uninterrupted one. The resumed fit skips the batches the cut epoch trained
    (all of them when it was cut in its validation) and trains the others, with the same
    windows in the same order, the same learning rates and stochastic depth, from the saved
    optimizer state; the epoch is validated once, at its end."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 8)), np.tile([0, 1], 8)
    run = dict(RESUMED_RUN, lr=0.1, train_split=SubjectValidSplit(0.25, stratified=True))
    reference_batches = BatchRecorder()
    reference = BrainJEPAClassifier(tiny_module(depth=2), **run, callbacks=[
        ("record", reference_batches)]).fit(X, y)
    end = TrainEndCheckpoint(dirname=tmp_path)
    cut_batches, resumed_batches = BatchRecorder(), BatchRecorder()
    cut = BrainJEPAClassifier(tiny_module(depth=2), **run, callbacks=[
        ("record", cut_batches), ("stop", StopAfterBatches(2, batches)), ("end", end)])
    cut.fit(X, y)
    with open(tmp_path / "train_end_history.json") as file:
        assert json.load(file)[-1]["cut_short"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the batches loaded again are those the cut run trained
        resumed = BrainJEPAClassifier(tiny_module(depth=2), **run, callbacks=[
            ("record", resumed_batches), ("end", end), ("load", LoadInitState(end))]).fit(X, y)
    per_epoch = len(reference_batches.batches_) // run["max_epochs"]
    assert len(cut_batches.batches_) == per_epoch + (batches or per_epoch)
    assert cut_batches.batches_ + resumed_batches.batches_ == reference_batches.batches_
    for key in ["epoch", "lr", "train_loss", "train_loss_best", "valid_loss",
                "valid_loss_best", "valid_acc", "train_batch_count", "valid_batch_count"]:
        assert resumed.history_[:, key] == reference.history_[:, key], key
    assert_same_module_weights(resumed.module_, reference.module_)
    for name, state in reference.optimizer_.state_dict()["state"].items():
        for key, value in state.items():
            assert torch.equal(resumed.optimizer_.state_dict()["state"][name][key], value)


def test_a_run_cut_inside_an_epoch_resumed_with_skorchs_lr_scheduler_per_batch(tmp_path):
    """skorch's LRScheduler stepping every batch is stepped through the batches of the cut
    epoch that the resumed fit skips: its rates go on as the uninterrupted run's (they had
    started the cut epoch's batches left at its first batch's step)."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    run = dict(fast(max_epochs=3, batch_size=4, lr=0.03, train_split=None),
               callbacks__lr_schedule=None)

    def schedule():
        return ("schedule", LRScheduler(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.05,
                                        total_steps=9, step_every="batch"))

    reference_batches, cut_batches, resumed_batches = (BatchRecorder() for _ in range(3))
    reference = BrainJEPAClassifier(tiny_module(), **run, callbacks=[
        schedule(), ("record", reference_batches)]).fit(X, y)
    end = TrainEndCheckpoint(dirname=tmp_path)
    BrainJEPAClassifier(tiny_module(), **run, callbacks=[
        schedule(), ("record", cut_batches), ("stop", StopAfterBatches(2, 1)), ("end", end)]
    ).fit(X, y)
    resumed = BrainJEPAClassifier(tiny_module(), **run, callbacks=[
        schedule(), ("record", resumed_batches), ("load", LoadInitState(end))]).fit(X, y)
    assert len(cut_batches.batches_) == 3 + 1
    assert cut_batches.batches_ + resumed_batches.batches_ == reference_batches.batches_
    assert resumed.history_[:, "train_loss"] == reference.history_[:, "train_loss"]
    assert_same_module_weights(resumed.module_, reference.module_)


class PassCountingLoader(torch.utils.data.DataLoader):
    """A DataLoader class of one's own that counts its passes."""

    passes = 0

    def __iter__(self):
        type(self).passes += 1
        return super().__iter__()


@pytest.mark.parametrize("loader", [torch.utils.data.DataLoader, PassCountingLoader])
def test_a_run_cut_inside_an_epoch_resumed_with_persistent_loader_workers(loader, tmp_path):
    """With persistent_workers, the training loader starts its workers at its first epoch
    only, drawing their seed from torch's generator before the epoch's order: the resumed
    fit's first epoch drew its order after that seed, the uninterrupted run's same epoch
    without it, so the resumed fit skipped other windows than the cut run had trained (some
    trained twice in the epoch, others not at all). The workers start before the epoch's
    order is drawn, which every epoch then draws alike, once a fit, also in a DataLoader
    class of one's own."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    settings = fast(max_epochs=3, batch_size=4, train_split=None, iterator_train=loader,
                    iterator_train__num_workers=1, iterator_train__persistent_workers=True)
    reference_batches, cut_batches, resumed_batches = (BatchRecorder() for _ in range(3))
    reference = BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
        ("record", reference_batches)]).fit(X, y)
    end = TrainEndCheckpoint(dirname=tmp_path)
    BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
        ("record", cut_batches), ("stop", StopAfterBatches(2, 1)), ("end", end)]).fit(X, y)
    PassCountingLoader.passes = 0
    resumed = BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
        ("record", resumed_batches), ("load", LoadInitState(end))]).fit(X, y)
    assert len(cut_batches.batches_) == 3 + 1
    assert cut_batches.batches_ + resumed_batches.batches_ == reference_batches.batches_
    assert resumed.history_[:, "train_loss"] == reference.history_[:, "train_loss"]
    assert_same_module_weights(resumed.module_, reference.module_)
    if loader is PassCountingLoader:  # epochs 2 and 3, after the pass that starts the workers
        assert PassCountingLoader.passes == 1 + 2


def test_persistent_workers_started_for_a_fit_leave_each_pass_its_first_draw():
    """What the resumed fit's persistent workers rely on, checked on torch 2.13: a
    DataLoader with persistent_workers draws its workers' seed from torch's generator before
    the order of its first pass only; once started (and torch's generator put back), every
    pass draws its order first, so two passes from the same state give the same order. Fails
    if torch changes how (or whether) a pass starts the workers."""
    def passes():
        return torch.utils.data.DataLoader(range(8), batch_size=2, shuffle=True,
                                           num_workers=1, persistent_workers=True)

    def order(loader):
        torch.manual_seed(0)
        return [batch.tolist() for batch in loader]

    with torch.random.fork_rng(devices=[]):
        unstarted = passes()
        # unstarted, the first pass drew its order after the workers' seed
        assert order(unstarted) != order(unstarted)
        loader = passes()
        torch.manual_seed(1)
        state = torch.random.get_rng_state()
        _start_persistent_workers(loader)
        assert torch.equal(torch.random.get_rng_state(), state)
        assert order(loader) == order(loader)
        assert order(loader) == order(unstarted)


class ProgressRecorder(Callback):
    """Records, after each batch of the fit's first epoch, the count and the total of the
    bar of the ``ProgressBar`` named ``"progress"`` (listed before this callback)."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.epoch_, self.shown_ = None, []

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        self.epoch_ = self.epoch_ or len(net.history_)
        if len(net.history_) == self.epoch_:
            bar = dict(net.callbacks_)["progress"].pbar_
            self.shown_.append((bar.n, bar.total))


@pytest.mark.parametrize("batches_per_epoch", ["auto", 4])
def test_skorchs_progress_bar_counts_the_batches_a_resumed_epoch_skips(
        batches_per_epoch, tmp_path):
    """skorch's ProgressBar makes its bar for all the epoch's batches when the epoch begins:
    the epoch a run cut inside it resumes, which skips the batches it had trained, ended
    short of its total (3/4 for one skipped of 4). Its bar starts at the batches skipped."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 8)), np.tile([0, 1], 8)
    settings = fast(max_epochs=3, batch_size=4, lr=0.1,
                    train_split=SubjectValidSplit(0.25, stratified=True))

    def progress():
        return ("progress", ProgressBar(batches_per_epoch=batches_per_epoch))

    end = TrainEndCheckpoint(dirname=tmp_path)
    BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
        progress(), ("stop", StopAfterBatches(2, 1)), ("end", end)]).fit(X, y)
    recorder = ProgressRecorder()
    resumed = BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
        progress(), ("shown", recorder), ("load", LoadInitState(end))]).fit(X, y)
    assert resumed.history_[:, "train_batch_count"] == [3, 3, 3]
    # epoch 2, one of its 3 training batches skipped, then its validation batch
    assert recorder.epoch_ == 2
    assert recorder.shown_ == [(2, 4), (3, 4), (4, 4)]


def test_a_run_cut_in_its_validation_resumes_with_a_caching_training_scoring(tmp_path):
    """skorch's EpochScoring(on_train=True) scores the predictions it cached during the
    epoch's training batches: a run cut in an epoch's validation, resumed, trains no batch of
    that epoch, and the scoring failed the fit at the epoch's end ("need at least one array to
    concatenate"). It scores that epoch from predictions of the training windows instead;
    the epochs after it score as the uninterrupted run's."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 8)), np.tile([0, 1], 8)
    run = dict(RESUMED_RUN, lr=0.1, train_split=SubjectValidSplit(0.25, stratified=True))

    def scoring():
        return ("train_acc", EpochScoring("accuracy", on_train=True, name="train_acc"))

    reference = BrainJEPAClassifier(tiny_module(depth=2), **run, callbacks=[scoring()]).fit(X, y)
    end = TrainEndCheckpoint(dirname=tmp_path)
    BrainJEPAClassifier(tiny_module(depth=2), **run, callbacks=[
        scoring(), ("stop", StopAfterBatches(2, None)), ("end", end)]).fit(X, y)
    resumed = BrainJEPAClassifier(tiny_module(depth=2), **run, callbacks=[
        scoring(), ("load", LoadInitState(end))]).fit(X, y)
    assert resumed.history_[:, "epoch"] == [1, 2, 3, 4]
    assert 0 <= resumed.history_[1]["train_acc"] <= 1
    assert resumed.history_[2:, "train_acc"] == reference.history_[2:, "train_acc"]
    assert dict(resumed.callbacks_)["train_acc"].use_caching is True  # as it was


class UnsizedLoader:
    """A loader class of one's own without ``len`` (a DataLoader inside)."""

    def __init__(self, dataset, **kwargs):
        self.loader = torch.utils.data.DataLoader(dataset, **kwargs)

    def __iter__(self):
        return iter(self.loader)


class UnsizedSampler(torch.utils.data.Sampler):
    """A sampler without ``len`` (torch's samplers need not have one): in order."""

    def __init__(self, data_source):
        self.n_items = len(data_source)

    def __iter__(self):
        return iter(range(self.n_items))


class UnsizedSamplerLoader(torch.utils.data.DataLoader):
    """A DataLoader over an :class:`UnsizedSampler`: its ``len`` raises ``TypeError``."""

    def __init__(self, dataset, shuffle=False, **kwargs):
        super().__init__(dataset, sampler=UnsizedSampler(dataset), **kwargs)


@pytest.mark.parametrize("loader", [UnsizedLoader, UnsizedSamplerLoader])
def test_a_training_loader_without_len_fits_and_resumes_inside_an_epoch(loader, tmp_path):
    """Every epoch noted the training loader's length, for the record of an epoch cut short:
    a loader class without len (skorch iterates it, no more) failed every fit with "object
    of type 'UnsizedLoader' has no len()" when the warm-up and cosine (which counts its
    batches) was left out, and so did a DataLoader whose sampler has no len (its own len
    raises). Its length is recorded as unknown; a run cut inside an epoch resumes after the
    batches it trained."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    settings = fast(max_epochs=3, batch_size=4, train_split=None, iterator_train=loader,
                    callbacks__lr_schedule=None)
    reference_batches, cut_batches, resumed_batches = (BatchRecorder() for _ in range(3))
    reference = BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
        ("record", reference_batches)]).fit(X, y)
    assert reference.history_[:, "train_batch_count"] == [3, 3, 3]
    end = TrainEndCheckpoint(dirname=tmp_path)
    BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
        ("record", cut_batches), ("stop", StopAfterBatches(2, 1)), ("end", end)]).fit(X, y)
    with open(tmp_path / "train_end_history.json") as file:
        cut = json.load(file)[-1]
    assert (cut["batches_done"], cut["batches_per_epoch"]) == (1, None)
    resumed = BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
        ("record", resumed_batches), ("load", LoadInitState(end))]).fit(X, y)
    assert cut_batches.batches_ + resumed_batches.batches_ == reference_batches.batches_
    assert resumed.history_[:, "train_batch_count"] == [3, 3, 3]
    assert_same_module_weights(resumed.module_, reference.module_)


@pytest.mark.parametrize("loader", [UnsizedLoader, UnsizedSamplerLoader])
def test_the_lr_schedule_refuses_a_training_loader_without_len_before_training(loader):
    """The warm-up and cosine sets each batch's rate from the batches per epoch, which it
    takes from len() of the training loader: a loader without one failed the fit with
    "object of type 'UnsizedLoader' has no len()" from inside the callback (or torch's
    BatchSampler). Refused before any batch trains, naming iterator_train and the ways out."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    recorder = BatchRecorder()
    net = BrainJEPAClassifier(tiny_module(), **fast(
        max_epochs=2, batch_size=4, train_split=None, iterator_train=loader,
        callbacks=[("record", recorder)]))
    with pytest.raises(TypeError, match=r"the warm-up and cosine learning-rate schedule "
                                        r"\(callbacks__lr_schedule\) .* iterator_train gave an "
                                        rf"{loader.__name__} without a len\(\) .*give the "
                                        r"loader a __len__ .* callbacks__lr_schedule=None"):
        net.fit(X, y)
    assert recorder.batches_ == []


class MiscountedLoader(torch.utils.data.DataLoader):
    """A DataLoader whose len is ``miscount`` (of a subclass) off the batches it yields."""

    miscount = 0

    def __len__(self):
        return super().__len__() + self.miscount


@pytest.mark.parametrize("miscount", [-1, 0, 1])
def test_the_lr_schedule_warns_once_of_a_training_loader_whose_len_is_not_its_batches(
        miscount):
    """The warm-up and cosine places each batch's rate by len() of the training loader: one
    yielding 3 batches but saying 2 (or 4) per epoch silently ran another schedule (the rate
    never reaching min_lr, or the epochs' last batches taking the next epoch's rates). The
    first epoch that yields another count warns, once a fit; a right len does not warn."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    loader = type("MiscountedLoader", (MiscountedLoader,), {"miscount": miscount})
    net = BrainJEPAClassifier(tiny_module(), **fast(
        max_epochs=3, batch_size=4, train_split=None, iterator_train=loader))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net.fit(X, y)
    said = [str(warning.message) for warning in caught if "len()" in str(warning.message)]
    assert net.history_[:, "train_batch_count"] == [3, 3, 3]
    if not miscount:
        assert said == []
        return
    effect = ("the rate stops short of min_lr" if miscount > 0
              else "the batches past it take the rates of the next epoch's first ones")
    assert said == [
        f"the training loader's len() is {3 + miscount}, but it yielded 3 training batch(es) "
        "in epoch 1: the warm-up and cosine learning-rate schedule (callbacks__lr_schedule) "
        "places each batch's rate by that len, so the rates of this fit do not follow it "
        f"({effect}); give the loader (iterator_train) a __len__ that returns the batches it "
        "yields per epoch"]


def test_a_resume_with_a_generator_of_the_loaders_own_says_it_shuffles_otherwise(tmp_path):
    """A torch.Generator given to the training loader (iterator_train__generator) shuffles
    each epoch from where the previous one left it: a resumed fit's is where the script put
    it (a checkpoint does not hold it), so the resumed epochs were silently shuffled otherwise
    than the uninterrupted run's, and the cut epoch's remaining batches were those of another
    order (windows the cut run had trained in it trained again, others not at all). The
    resumed fit says so, for its epochs and, its batches loaded again not being those the cut
    run trained, for the cut epoch."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)

    def settings():
        return fast(max_epochs=3, batch_size=4, train_split=None,
                    iterator_train__generator=torch.Generator().manual_seed(5))

    end = TrainEndCheckpoint(dirname=tmp_path / "end")
    saved = Checkpoint(dirname=tmp_path / "epochs", monitor=None)
    cut_batches, resumed_batches = BatchRecorder(), BatchRecorder()
    BrainJEPAClassifier(tiny_module(), **settings(), callbacks=[
        ("record", cut_batches), ("stop", StopAfterBatches(2, 1)), ("end", end),
        ("saved", saved)]).fit(X, y)
    with pytest.warns(UserWarning) as caught:
        resumed = BrainJEPAClassifier(tiny_module(), **settings(), callbacks=[
            ("record", resumed_batches), ("load", LoadInitState(end))]).fit(X, y)
    messages = "\n".join(str(warning.message) for warning in caught)
    assert re.search(r"resuming a run of 1 epoch\(s\) whose training loader shuffles with a "
                     r"generator of its own \(iterator_train__generator\)", messages)
    assert re.search(r"epoch 2 of the run resumed was cut after 1 training batch\(es\), but "
                     r"this fit's training loader does not yield them again first: the "
                     r"training loader shuffles with a generator of its own.*its remaining 2 "
                     r"batch\(es\) are those after the first 1 of another order", messages)
    # the cut epoch's other batches, then the last epoch's
    assert len(resumed_batches.batches_) == 2 + 3
    assert resumed.history_[:, "train_batch_count"] == [3, 3, 3]
    # resumed after a completed epoch (the checkpoint of epoch 1): its epochs only
    with pytest.warns(UserWarning, match="resuming a run of 1 epoch") as caught:
        BrainJEPAClassifier(tiny_module(), **settings(), callbacks=[
            ("load", LoadInitState(saved))]).fit(X, y)
    assert len(caught) == 1


class StopAtEpochBegin(Callback):
    """Ends training (KeyboardInterrupt) once, as epoch ``epoch`` begins."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        if len(net.history_) == self.epoch:
            self.epoch = None
            raise KeyboardInterrupt


@pytest.mark.parametrize("second_cut, batches", [
    (lambda: StopAfterBatches(2, 2), [3 + 1, 1, 1 + 3]),
    (lambda: StopAtEpochBegin(2), [3 + 1, 0, 2 + 3]),
], ids=["after a batch", "as the epoch begins"])
def test_a_run_cut_twice_inside_the_same_epoch_resumes_as_the_uninterrupted_one(
        second_cut, batches, tmp_path):
    """A resumed cut epoch cut again records the digest of all the batches it trained, those
    it skipped (loaded again) with the others: resumed again, it is checked against the
    batches it loads again, found the same, and the run ends as the uninterrupted one. Cut
    again as the cut epoch begins (a callback's KeyboardInterrupt in its on_epoch_begin),
    before the batches it skips were loaded again, it had recorded the digest of no batch:
    resumed again, the batches it loaded again were taken for another order (a false
    warning). The cut keeps the digest it resumed."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    settings = fast(max_epochs=3, batch_size=4, train_split=None)
    recorders = [BatchRecorder() for _ in range(4)]
    reference = BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
        ("record", recorders[0])]).fit(X, y)
    end = TrainEndCheckpoint(dirname=tmp_path)
    BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
        ("record", recorders[1]), ("stop", StopAfterBatches(2, 1)), ("end", end)]).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
            ("record", recorders[2]), ("stop", second_cut()), ("end", end),
            ("load", LoadInitState(end))]).fit(X, y)
        resumed = BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
            ("record", recorders[3]), ("load", LoadInitState(end))]).fit(X, y)
    assert [len(recorder.batches_) for recorder in recorders[1:]] == batches
    assert sum((recorder.batches_ for recorder in recorders[1:]), []) == recorders[0].batches_
    assert_same_module_weights(resumed.module_, reference.module_)


@pytest.mark.parametrize("class_weight", ["balanced", {0: 2.0}])
def test_a_run_with_class_weights_cut_inside_an_epoch_resumes_as_the_uninterrupted_one(
        class_weight, tmp_path):
    """A new fit builds its loss before it counts the class weights, so its loss had no
    weights when skorch's LoadInitState loaded the checkpoint's, which held them: the resume
    failed, the checkpoint's criterion file called damaged or of another model. The fit
    loads them (and counts them again for its training windows, the same ones), and the run
    ends as the uninterrupted one."""
    X, y = offset_subjects(np.tile([0.0, 1.0, 1.0], 4)), np.tile([0, 1, 1], 4)
    settings = fast(max_epochs=3, batch_size=4, train_split=None, class_weight=class_weight)
    reference = BrainJEPAClassifier(tiny_module(), **settings).fit(X, y)
    end = TrainEndCheckpoint(dirname=tmp_path)
    BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
        ("stop", StopAfterBatches(2, 1)), ("end", end)]).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
            ("load", LoadInitState(end))]).fit(X, y)
    assert resumed.history_[:, "train_loss"] == reference.history_[:, "train_loss"]
    torch.testing.assert_close(resumed.criterion_.weight, reference.criterion_.weight)
    assert_same_module_weights(resumed.module_, reference.module_)


class PersistentInside:
    """A loader class of one's own with a DataLoader of persistent workers inside."""

    def __init__(self, dataset, **kwargs):
        self.loader = torch.utils.data.DataLoader(dataset, num_workers=1,
                                                  persistent_workers=True, **kwargs)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        return iter(self.loader)


def test_a_run_cut_inside_an_epoch_resumed_with_persistent_workers_out_of_sight_warns(
        tmp_path):
    """A DataLoader with persistent workers inside a loader class of one's own draws its
    workers' seed before the order of a fit's first pass, out of the fit's sight: the resumed
    fit silently skipped other batches of the cut epoch than the cut run had trained. It
    says that the epoch's order cannot be reproduced, and why."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    settings = fast(max_epochs=3, batch_size=4, train_split=None,
                    iterator_train=PersistentInside)
    end = TrainEndCheckpoint(dirname=tmp_path)
    BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
        ("stop", StopAfterBatches(2, 1)), ("end", end)]).fit(X, y)
    with pytest.warns(UserWarning, match=r"epoch 2 of the run resumed was cut after 1 training "
                                         r"batch.*the training loader, a PersistentInside, does "
                                         r"not draw each epoch's order.*its remaining 2 "
                                         r"batch\(es\) are those after the first 1 of another"):
        BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
            ("load", LoadInitState(end))]).fit(X, y)


def test_a_run_cut_inside_an_epoch_resumed_with_other_batches_trains_that_epoch_again(
        tmp_path):
    """Another batch_size is refused by the run file, as any other setting; without it (a
    checkpoint whose run file is gone), the batches the cut epoch trained cannot be told in
    the loader's: the epoch is trained again from its first batch, with a warning. So is it
    when the cut epoch's record does not say where it was cut."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    settings = fast(max_epochs=3, batch_size=4, train_split=None)
    end = TrainEndCheckpoint(dirname=tmp_path)
    BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
        ("stop", StopAfterBatches(2, 2)), ("end", end)]).fit(X, y)
    other = {**settings, "batch_size": 6}
    with pytest.raises(ValueError, match="batch_size=4 then, 6 now"):
        BrainJEPAClassifier(tiny_module(), **other,
                            callbacks=[("load", LoadInitState(end))]).fit(X, y)
    (tmp_path / "train_end_run.json").unlink()
    recorder = BatchRecorder()
    with pytest.warns(UserWarning, match=r"ends with epoch 2 cut short after 2 training "
                                         r"batch\(es\).*\(3 per epoch in batches of 4 then, 2 "
                                         r"of 6 now\): epoch 2 is trained again from its first"):
        resumed = BrainJEPAClassifier(tiny_module(), **other, callbacks=[
            ("record", recorder), ("load", LoadInitState(end))]).fit(X, y)
    assert len(recorder.batches_) == 2 * 2  # epochs 2 and 3, whole
    assert resumed.history_[:, "train_batch_count"] == [3, 2, 2]
    # a history saved before the cut row recorded where the epoch was cut
    with open(tmp_path / "train_end_history.json") as file:
        history = json.load(file)
    del history[-1]["batches_done"]
    with open(tmp_path / "train_end_history.json", "w") as file:
        json.dump(history, file)
    recorder = BatchRecorder()
    with pytest.warns(UserWarning, match="after 2 training batch.*does not record where the "
                                         "epoch was cut: epoch 2 is trained again"):
        BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
            ("record", recorder), ("load", LoadInitState(end))]).fit(X, y)
    assert len(recorder.batches_) == 2 * 3


def test_a_train_end_checkpoint_of_a_run_cut_inside_its_first_epoch_is_started_afresh(
        tmp_path):
    """Its history holds no completed epoch (the cut epoch's record alone, marked
    "cut_short"): LoadInitState failed with skorch's bare "list index out of range" (a file
    name is formatted from the history's last epoch, even one without a placeholder). There is
    no epoch to resume: the fit starts afresh, as without a checkpoint, and load_params says
    that the history holds no completed epoch."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    settings = fast(max_epochs=2, batch_size=4, train_split=None)
    BrainJEPAClassifier(tiny_module(), **settings, callbacks=[
        ("stop", StopInside(1, "training")), ("end", TrainEndCheckpoint(dirname=tmp_path))]
    ).fit(X, y)
    with open(tmp_path / "train_end_history.json") as file:
        assert [(record["epoch"], record["cut_short"]) for record in json.load(file)] == [
            (1, True)]
    end = TrainEndCheckpoint(dirname=tmp_path).initialize()
    fresh = BrainJEPAClassifier(tiny_module(), **settings).fit(X, y)
    history = fresh.history_
    with pytest.raises(FileNotFoundError, match=r"train_end_history.json holds no completed "
                       r"epoch"):
        fresh.load_params(checkpoint=end.checkpoint_)
    assert fresh.history_ is history
    clf = BrainJEPAClassifier(tiny_module(), **settings,
                              callbacks=[("end", end), ("load", LoadInitState(end))]).fit(X, y)
    assert [record["epoch"] for record in clf.history_] == [1, 2]
    np.testing.assert_array_equal(clf.predict_proba(X), fresh.predict_proba(X))


def _poison_loss(net):  # a loss gone NaN, as a far too large learning rate gives
    net.history_.record_batch("train_loss", float("nan"))


def _overflow_loss(net):  # a loss gone infinite, not NaN: stopped too
    net.history_.record_batch("train_loss", float("inf"))


def _break_weights(net):  # the last update diverges: its loss, computed before it, is finite
    with torch.no_grad():
        next(net.module_.parameters()).view(-1)[0] = float("nan")


@pytest.mark.parametrize("damage, message", [
    (_poison_loss, "loss became nan in epoch 2.*lower lr"),
    (_overflow_loss, "loss became inf in epoch 2"),
    (_break_weights, "weights became NaN or infinite in epoch 2"),
])
def test_a_non_finite_loss_or_weights_stop_the_fit_and_keep_the_fitted_model(damage, message):
    class Damage(Callback):
        active = False

        def on_batch_end(self, net, batch=None, training=False, **kwargs):
            if training and self.active:
                damage(net)

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    damaging = Damage()
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), callbacks=[damaging])
    proba = clf.fit(X, y).predict_proba(X)
    damaging.active = True
    with pytest.raises(FloatingPointError, match=message):
        clf.partial_fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    assert len(clf.history_) == 1


def test_targets_too_large_for_float32_are_refused():
    X = offset_subjects(np.zeros(4))
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(X, [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="y is too large for float32"):
        reg.partial_fit(X, [1e300, 2.0, 3.0, 4.0])
    # a first fit on targets whose spread overflows had trained on scaled targets all 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (NumPy's overflow warning was all that was said)
        with pytest.raises(ValueError, match=r"y is too large to standardize: the standard "
                                             r"deviation of column 0 overflows float64"):
            BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(
                X, [1e200, 2e200, 3e200, 4e200])


def test_a_failed_first_fit_leaves_the_estimator_unfitted():
    from sklearn.exceptions import NotFittedError

    class Fail(Callback):
        def on_epoch_begin(self, net, **kwargs):
            raise RuntimeError("disk full")

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), callbacks=[Fail()])
    with pytest.raises(RuntimeError, match="disk full"):
        clf.fit(X, y)
    assert not [name for name in vars(clf) if name.endswith("_") and not name.startswith("_")
                and name not in vars(clone(clf))]
    with pytest.raises(NotFittedError):
        clf.predict(X)


# -- what a skorch user does (from a walkthrough) ---------------------------------------------

class PredictsSubjects(Callback):
    """Predicts held-out subjects at the end of each epoch, as a monitoring callback would."""

    def __init__(self, X):
        self.X = X

    def on_epoch_end(self, net, **kwargs):
        self.predictions_ = net.predict(self.X)
        self.proba_ = net.predict_proba(self.X)


def test_skorchs_scoring_during_fit_does_not_depend_on_the_names_of_the_labels():
    """skorch scores the validation windows against their encoded labels, with the outputs
    that classes_ and a pos_label of 1 choose: with the labels as classes_ during fit, "f1"
    and "average_precision" failed for string labels ("pos_label=1 is not a valid label")
    and scored the column of label 1 for labels 1 and 2. predict of subjects from a callback
    gives the labels."""
    encoded = np.tile([0, 1], 6)
    X = offset_subjects(encoded.astype(float))
    scores = ("f1", "average_precision")
    histories = []
    for labels in (np.array([0, 1]), np.array([1, 2]), np.array(["a", "b"])):
        predicts = PredictsSubjects(X[:2])
        clf = BrainJEPAClassifier(
            tiny_module(), **fast(max_epochs=2),
            train_split=SubjectValidSplit(0.5, stratified=True, random_state=0),
            callbacks=[*(EpochScoring(score, lower_is_better=False, name=score)
                         for score in scores), predicts]).fit(X, labels[encoded])
        histories.append([[epoch[score] for score in scores] for epoch in clf.history_])
        assert set(predicts.predictions_.tolist()) <= set(labels.tolist())
    assert histories[1] == histories[0] and histories[2] == histories[0]


def test_callbacks_set_on_a_fitted_net_run_in_the_continued_fit():
    class Count(Callback):
        def initialize(self):
            self.epochs = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.epochs += 1

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2)).fit(X, y)
    clf.set_params(callbacks=[("count", Count())])
    clf.partial_fit(X, y)
    assert dict(clf.callbacks_)["count"].epochs == 2


def test_a_callback_replaced_or_removed_by_name_on_a_fitted_net_works_in_the_next_fit():
    """skorch put callbacks__<name> set on a fitted net into callbacks_ as given: None (the
    next fit failed with "vars() argument must have __dict__ attribute") or not initialized
    (PrintLog: "no attribute 'keys_ignored_'")."""
    from skorch.callbacks import PrintLog

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, lr=1e-2, layer_decay=0.5))
    clf.fit(X, y).set_params(callbacks__lr_schedule=None).fit(X, y)
    assert "lr_schedule" not in dict(clf.callbacks_) and "lr" not in clf.history_[-1]
    # without the schedule, each group learns at lr times its scale
    np.testing.assert_allclose([group["lr"] for group in clf.optimizer_.param_groups],
                               [1e-2 * group["lr_scale"] for group in clf.optimizer_.param_groups])
    lines = []
    clf.set_params(callbacks__print_log=PrintLog(sink=lines.append), verbose=1).partial_fit(X, y)
    assert len(lines) == 3  # the table's header, rule and one epoch
    clf.set_params(callbacks="disable", verbose=0).partial_fit(X, y)  # skorch's word for none
    assert clf.callbacks_ == [] and len(clf.history_) == 3


@pytest.mark.parametrize("estimator", [BrainJEPAClassifier, BrainJEPARegressor])
def test_a_callback_disabled_by_name_is_reported_as_none_and_can_be_given_again(estimator,
                                                                                capsys):
    """skorch disables a callback set to None by name. get_params had reported the settings of
    the default one it replaced (which set_params(**get_params()) then refused), and a callback
    given again by that name, or by a name no callback has, failed with "not enough values to
    unpack"."""
    from skorch.callbacks import PrintLog

    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0.0, 1.0], 2)
    recorder = Recorder()
    net = estimator(tiny_module(), **fast(max_epochs=1, verbose=1),
                    callbacks=[("record", recorder)])
    net.set_params(callbacks__print_log=None, callbacks__record=None)
    params = net.get_params()
    assert params["callbacks__print_log"] is None and params["callbacks__record"] is None
    assert not [key for key in params
                if key.startswith(("callbacks__print_log__", "callbacks__record__"))]
    copy = clone(net).set_params(**params).fit(X, y)
    assert {"print_log", "record"}.isdisjoint(dict(copy.callbacks_))
    assert capsys.readouterr().out == "" and not hasattr(recorder, "dataset_")
    lines = []
    copy.set_params(callbacks__print_log=PrintLog(sink=lines.append), callbacks__record=recorder)
    copy.set_params(callbacks__print_log__floatfmt=".2f").fit(X, y)
    assert len(lines) == 3 and len(recorder.dataset_) == 4  # header, rule, one epoch
    with pytest.raises(ValueError, match=r"^callbacks__record__x sets a parameter of the "
                       r"callback 'record', which callbacks__record=None disabled"):
        net.set_params(callbacks__record__x=1)
    with pytest.raises(ValueError, match=rf"^callbacks__printlog: {estimator.__name__} has no "
                       r"callback named 'printlog'; its callbacks are epoch_timer, .*print_log"):
        net.set_params(callbacks__printlog=None)
    net.set_params(callbacks="disable").set_params(callbacks__print_log=None)  # skorch failed
    assert net.fit(X, y).callbacks_ == []


def test_a_callback_with_settings_of_an_earlier_call_can_be_disabled_by_name(capsys):
    """skorch keeps callbacks__<name>__<parameter> for the callback of that name: disabling it
    by name in a later call failed with skorch's "Trying to set a parameter for callback
    print_log which does not exist" (a grid over callbacks__print_log=[None, ...] so too). The
    settings go with the callback, as a Pipeline step's with the step it replaces."""
    from skorch.callbacks import PrintLog

    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0.0, 1.0], 2)
    net = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, verbose=1))
    net.set_params(callbacks__print_log__floatfmt=".2f")
    net.set_params(callbacks__print_log=None)
    assert "callbacks__print_log__floatfmt" not in vars(net)
    assert net.get_params()["callbacks__print_log"] is None
    assert "print_log" not in dict(clone(net).fit(X, y).callbacks_)
    assert capsys.readouterr().out == ""
    lines = []
    net.set_params(callbacks__print_log=PrintLog(sink=lines.append, floatfmt=".1f")).fit(X, y)
    assert dict(net.callbacks_)["print_log"].floatfmt == ".1f" and len(lines) == 3


class _ExtraComponent(torch.nn.Module):
    def __init__(self, width=2):
        super().__init__()
        self.linear = torch.nn.Linear(width, width)


class _ClassifierWithAnExtraComponent(BrainJEPAClassifier):
    """skorch's way of adding a component: a module class as a parameter, initialized with
    its ``extra__<parameter>`` settings."""

    def __init__(self, weights="ukbiobank", *, extra=_ExtraComponent, **kwargs):
        super().__init__(weights, **kwargs)
        self.extra = extra

    def initialize_module(self):
        super().initialize_module()
        self.extra_ = self.initialized_instance(self.extra, self.get_params_for("extra"))
        return self


def test_a_subclass_component_takes_its_prefixed_settings_before_the_net_is_initialized():
    """A parameter a subclass adds is skorch's to route: its component, given as a class,
    takes <parameter>__<name> as skorch's own components do. The check of nested settings had
    refused extra__width until the fit registered the component, so that a grid over it (which
    sets it on an unfitted clone) failed; the fine-tuners' own parameters are still checked."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0.0, 1.0], 2)
    net = _ClassifierWithAnExtraComponent(tiny_module(), **fast(max_epochs=1))
    net = clone(net.set_params(extra__width=3))
    assert net.fit(X, y).extra_.linear.in_features == 3
    assert clone(net).set_params(extra__width=4).fit(X, y).extra_.linear.in_features == 4
    with pytest.raises(ValueError, match=r"^pooling__x sets the parameter 'x' of the estimator "
                                         r"given as pooling"):
        net.set_params(pooling__x=1)


@pytest.mark.parametrize("estimator", [BrainJEPAClassifier, BrainJEPARegressor])
@pytest.mark.parametrize("key", ["nonexistent__x", "masking__ratio", "optimzer__betas"])
def test_a_setting_of_a_prefix_that_is_no_parameter_is_refused_by_set_params(estimator, key):
    """skorch's set_params had kept <prefix>__<name> of a prefix that is neither a parameter
    nor one of its components, for fit to refuse as an unexpected argument; it is refused at
    once in scikit-learn's words, and nothing of the call is set. skorch's prefixes (module__
    is refused on its own) and a subclass's component still take theirs."""
    prefix = key.partition("__")[0]
    net = estimator(tiny_module(), **fast(max_epochs=1))
    with pytest.raises(ValueError, match=rf"^Invalid parameter {prefix!r} for estimator "
                                         rf"{estimator.__name__} \(given as {key}.*\)\. Valid "
                                         r"parameters are: \[.*'max_epochs'.*\], and settings "
                                         r"prefixed callbacks__, .*optimizer__"):
        net.set_params(max_epochs=3, **{key: 1})
    assert net.max_epochs == 1 and key not in net.get_params()
    if key == "optimzer__betas":
        with pytest.raises(ValueError, match=r"did you mean optimizer__betas\?"):
            net.set_params(**{key: 1})
    routed = dict(optimizer__betas=(0.8, 0.9), criterion__reduction="mean",
                  iterator_train__num_workers=0, iterator_valid__batch_size=2,
                  dataset__x=1, compile__mode="default", train_split__fraction=0.5,
                  callbacks__print_log__floatfmt=".2f")
    net.set_params(train_split=SubjectValidSplit(0.25), **routed)
    assert net.get_params_for("optimizer")["betas"] == (0.8, 0.9)
    assert net.train_split.fraction == 0.5
    assert net.get_params()["callbacks__print_log__floatfmt"] == ".2f"
    with pytest.raises(ValueError, match=r"takes no module__ settings"):
        net.set_params(module__x=1)


def test_an_unknown_prefix_is_told_the_parameters_not_the_prefixed_settings_given():
    """The parameters listed for a prefix that is no parameter are the estimator's own: a
    prefixed setting given to the constructor (skorch's get_params lists it) is not one."""
    net = BrainJEPAClassifier(tiny_module(), optimizer__betas=(0.8, 0.9), **fast(max_epochs=1))
    with pytest.raises(ValueError, match=r"Valid parameters are: \[.*'max_epochs'") as error:
        net.set_params(nonexistent__x=1)
    listed = str(error.value).partition("Valid parameters are: ")[2].partition("]")[0]
    assert "__" not in listed, listed


def test_a_prefix_given_to_the_constructor_is_taken_by_set_params_again():
    """A component a subclass registers at initialize without a parameter of its own takes
    its settings from the constructor, as skorch's own components do: a grid sets them again
    on an unfitted clone."""
    net = BrainJEPAClassifier(tiny_module(), extra__width=2, **fast(max_epochs=1))
    assert clone(net).set_params(extra__width=3).get_params()["extra__width"] == 3


class _ClassifierRegisteringAComponent(BrainJEPAClassifier):
    """skorch's documented way of adding a component without a parameter of its own:
    registered in ``initialize_module`` with its ``aux__<parameter>`` settings."""

    def initialize_module(self):
        super().initialize_module()
        self.aux_ = self.initialized_instance(_ExtraComponent, self.get_params_for("aux"))
        return self


def test_a_component_a_subclass_registers_at_initialize_takes_its_settings_unfitted():
    """set_params had refused aux__width on an unfitted net whose constructor was given no
    aux__ setting (the prefix is registered only when the fit initializes the net), so that
    a grid over it failed; skorch keeps it for the fit. A prefix no component takes is still
    refused once the net is initialized and its components are known."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    net = _ClassifierRegisteringAComponent(tiny_module(), **fast(max_epochs=1))
    assert clone(net).set_params(aux__width=3).fit(X, y).aux_.linear.in_features == 3
    search = GridSearchCV(net, {"aux__width": [3, 4]}, cv=2, error_score="raise",
                          scoring=lambda estimator, *_: estimator.aux_.linear.in_features)
    assert search.fit(X, y).best_params_ == {"aux__width": 4}
    with pytest.raises(ValueError, match=r"^Invalid parameter 'auxx' for estimator "
                                         r"_ClassifierRegisteringAComponent"):
        net.fit(X, y).set_params(auxx__width=3)


def test_a_callback_given_by_name_while_callbacks_are_disabled_is_kept_for_when_they_run():
    """callbacks="disable" turns every callback off, one given by name too (skorch's rule):
    such a callback is kept, as one given to the constructor then is, and runs once the
    callbacks are turned on again (skorch had failed with "not enough values to unpack"; it
    had then been refused, so that clone(net).set_params(**net.get_params()) failed: the
    clone holds a copy of it). A name no callback has is still refused."""
    from skorch.callbacks import PrintLog

    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0.0, 1.0], 2)
    lines = []
    callback = PrintLog(sink=lines.append)
    for calls in ([{"callbacks": "disable"}, {"callbacks__print_log": callback}],
                  [{"callbacks": "disable", "callbacks__print_log": callback, "verbose": 1}]):
        net = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, verbose=1))
        for params in calls:
            net.set_params(**params)
        assert net.get_params()["callbacks__print_log"] is callback
        assert net.fit(X, y).callbacks_ == [] and lines == []
    net = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, verbose=1),
                              callbacks="disable", callbacks__print_log=callback)
    clone(net).set_params(**net.get_params())  # had been refused: the clone holds a copy
    net.set_params(callbacks=None).fit(X, y)  # the callback given by name runs now
    assert dict(net.callbacks_)["print_log"] is callback and len(lines) == 3
    net.set_params(callbacks="disable", callbacks__print_log=None)  # none stays none
    assert net.fit(X, y).callbacks_ == []
    with pytest.raises(ValueError, match=r"^callbacks__printlog: BrainJEPAClassifier has no "
                                         r"callback named 'printlog'; its callbacks are "
                                         r"epoch_timer, .*print_log"):
        net.set_params(callbacks__printlog=callback)


@pytest.mark.parametrize("setting, message", [
    (dict(gradients__n_components=3),
     r"^gradients__n_components sets a parameter of an estimator given as gradients, but the "
     r"gradients of BrainJEPAClassifier are the gradient matrix"),
    (dict(pooling__x=1),
     r"^pooling__x sets the parameter 'x' of the estimator given as pooling, but the pooling "
     r"of BrainJEPAClassifier is a str \('mean'\)"),
    (dict(callbacks__printlog=None),
     r"^callbacks__printlog: BrainJEPAClassifier has no callback named 'printlog'; its "
     r"callbacks are epoch_timer, .*print_log"),
    (dict(callbacks__printlog__floatfmt=".2g"),
     r"^callbacks__printlog__floatfmt: BrainJEPAClassifier has no callback named 'printlog'"),
    (dict(callbacks__lr_schedule=None, callbacks__lr_schedule__x=1),
     r"^callbacks__lr_schedule__x sets a parameter of the callback 'lr_schedule', which "
     r"callbacks__lr_schedule=None disabled"),
])
def test_settings_set_params_refuses_are_refused_by_fit_as_constructor_arguments(setting,
                                                                                  message):
    """set_params refuses them; given to the constructor, fit had refused gradients__* as an
    "unexpected argument" once the model was built, and ignored callbacks__<a name no callback
    has> (a misspelt callbacks__printlog=None left the progress table on). fit refuses them
    with set_params' words, before anything is fitted: a fitted estimator is left as it was."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    with pytest.raises(ValueError, match=message):
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).set_params(**setting)
    with pytest.raises(ValueError, match=message):
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), **setting).fit(X, y)
    fitted = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    module, proba = fitted.module_, fitted.predict_proba(X)
    for key, value in setting.items():  # set as attributes, which set_params does not check
        setattr(fitted, key, value)
    with pytest.raises(ValueError, match=message):
        fitted.fit(X, y)
    assert fitted.module_ is module and len(fitted.history_) == 1
    np.testing.assert_array_equal(fitted.predict_proba(X), proba)


def test_the_settings_of_a_callback_a_new_callbacks_list_drops_go_with_it():
    """fit refuses settings of a name no callback has: those of a callback that a new
    callbacks list no longer holds are dropped with it, as no set_params could unset them."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                              callbacks=[("record", Recorder())])
    clf.set_params(callbacks__record=None, callbacks__print_log__floatfmt=".2g")
    clf.set_params(callbacks=[]).fit(X, y)
    params = clf.get_params()
    assert "callbacks__record" not in params and not hasattr(clf, "callbacks__record")
    assert params["callbacks__print_log__floatfmt"] == ".2g"  # a default callback's: kept


@pytest.mark.parametrize("fitted", [False, True])
def test_a_callbacks_setting_given_while_callbacks_are_disabled_is_kept_for_when_they_run(
        fitted):
    """After callbacks="disable" (skorch's word for none), set_params(callbacks__<name>__<
    parameter>=...) failed with skorch's "not enough values to unpack"; it was then refused,
    while the constructor and fit kept the same setting, so that
    BrainJEPAClassifier().set_params(**disabled.get_params()) failed. set_params keeps it,
    as the constructor does; get_params reports the settings the net holds, which apply once
    the callbacks run again. A setting the callback does not take is still refused."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), callbacks="disable",
                              callbacks__print_log__floatfmt=".2g")
    if fitted:
        clf.fit(X, y)
    clf.set_params(callbacks__print_log__floatfmt=".3g")
    params = clf.get_params()
    assert [key for key in params if key.count("__") > 1] == ["callbacks__print_log__floatfmt"]
    assert params["callbacks__print_log__floatfmt"] == ".3g"
    fresh = BrainJEPAClassifier(tiny_module()).set_params(**params)  # had been refused
    assert fresh.get_params()["callbacks__print_log__floatfmt"] == ".3g"
    clf.set_params(**params).fit(X, y)
    assert clf.callbacks_ == []
    with pytest.raises(ValueError, match=r"^callbacks__print_log__floatfmat: the callback "
                                         r"'print_log' \(PrintLog\) has no parameter "
                                         r"'floatfmat'"):
        clf.set_params(callbacks__print_log__floatfmat=".2f")
    lines = []
    clf.set_params(callbacks=None, callbacks__print_log__sink=lines.append, verbose=1).fit(X, y)
    assert dict(clf.callbacks_)["print_log"].floatfmt == ".3g" and len(lines) == 3


def test_a_grid_over_disabling_the_callbacks_takes_their_settings():
    """A grid setting callbacks="disable" with a callback's setting failed (set_params refused
    the setting while the callbacks were off); the setting is kept, and used where the grid
    turns the callbacks on."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    net = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1))
    search = GridSearchCV(net, {"callbacks": ["disable", None],
                                "callbacks__print_log__floatfmt": [".2f"]}, cv=2,
                          error_score="raise",
                          scoring=lambda estimator, *_: len(estimator.callbacks_))
    search.fit(X, y)
    assert search.best_params_["callbacks"] is None
    assert dict(search.best_estimator_.callbacks_)["print_log"].floatfmt == ".2f"


@pytest.mark.parametrize("replacement", ["class", "instance"])
def test_the_settings_of_a_callback_replaced_by_name_go_with_it(replacement):
    """callbacks__<name>=<another callback> replaces the callback, and the settings earlier
    calls gave the one it replaces go with it (as a Pipeline step's go with the step): they
    had been given to the new one, failing with EarlyStopping.__init__'s bare TypeError
    (a class) or scikit-learn's "Invalid parameter 'floatfmt'" (an instance) at fit. Those
    given in the same call are the new callback's."""
    from skorch.callbacks import EarlyStopping

    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    stopping = EarlyStopping if replacement == "class" else EarlyStopping()
    net = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1))
    net.set_params(callbacks__print_log__floatfmt=".2f")
    # no validation split: it monitors the training loss
    net.set_params(callbacks__print_log=stopping,
                   callbacks__print_log__monitor="train_loss").fit(X, y)
    assert dict(net.callbacks_)["print_log"].monitor == "train_loss"
    assert "callbacks__print_log__floatfmt" not in net.get_params()
    net.set_params(callbacks__print_log=stopping, callbacks__print_log__patience=2).fit(X, y)
    net.set_params(callbacks__print_log=stopping)  # the same callback again: no replacement
    assert net.fit(X, y).get_params()["callbacks__print_log__patience"] == 2
    assert dict(net.callbacks_)["print_log"].patience == 2


@pytest.mark.parametrize("fitted", [False, True])
def test_a_callbacks_list_refused_by_set_params_is_not_kept(fitted):
    """skorch initializes the callbacks a net has before it stores the new ones: a refused
    list (a name given twice) had been kept, and then refused every list set to replace it
    (and the fit), as a callback set by name that cannot be initialized had been; after
    callbacks="disable" (skorch's word for none), setting it again or a list failed, skorch
    finding no callbacks to set."""
    from skorch.callbacks import EarlyStopping

    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1))
    if fitted:
        clf.fit(X, y)
    with pytest.raises(ValueError, match="duplicate user-set callback name 'stop'"):
        clf.set_params(callbacks=[("stop", EarlyStopping()), ("stop", EarlyStopping())])
    assert clf.callbacks is None
    with pytest.raises(ValueError, match=r"callbacks__print_log=False is not a callback: .* "
                       r"or callbacks__print_log=None to turn it off"):
        clf.set_params(callbacks__print_log=False)  # meant to silence it: verbose=0 does
    clf.set_params(callbacks__print_log=None)  # had been refused for the False kept
    recorder = Recorder()
    clf.set_params(callbacks=[("record", recorder)]).fit(X, y)
    assert "record" in dict(clf.callbacks_) and len(recorder.dataset_) == 4
    clf.set_params(callbacks="disable").set_params(callbacks="disable")
    assert clf.callbacks_ == []
    clf.set_params(callbacks=[("record", recorder)])
    assert "record" in dict(clf.callbacks_)


def test_predict_from_a_callback_during_fit_treats_its_input_as_subjects():
    """Subjects given to predict during fit are preprocessed, windowed and averaged as after
    fit (not taken for the training windows that skorch's own scoring passes)."""
    labels = np.array(["a", "b"] * 4)
    X = offset_subjects(np.where(labels == "b", 1.0, 0.0), n_timepoints=24)
    held_out = [X[0], X[1][:20], X[2]]  # subjects of different lengths
    monitor = PredictsSubjects(held_out)
    clf = BrainJEPAClassifier(tiny_module(), callbacks=[monitor], window="sliding", stride=4,
                              **fast(max_epochs=1)).fit(X, labels)
    assert set(monitor.predictions_) <= {"a", "b"}
    np.testing.assert_allclose(monitor.proba_, clf.predict_proba(held_out), rtol=1e-6)


def test_a_tensor_of_subjects_predicted_from_a_callback_during_fit_is_subjects_too():
    """Only the batch tensor that skorch's BatchScoring passes is windows: a tensor of
    subjects given to predict during fit is preprocessed, cut and averaged (it had been run
    as windows: the classifier's encoded labels, the regressor's scaled targets)."""
    labels = np.array(["a", "b"] * 4)
    X = offset_subjects(np.where(labels == "b", 1.0, 0.0))
    held_out = torch.from_numpy(X[:3])
    monitor = PredictsSubjects(held_out)
    clf = BrainJEPAClassifier(tiny_module(), callbacks=[monitor], window="sliding", stride=4,
                              **fast(max_epochs=1)).fit(X, labels)
    assert set(monitor.predictions_) <= {"a", "b"}
    np.testing.assert_allclose(monitor.proba_, clf.predict_proba(held_out), rtol=1e-6)

    class Predicts(Callback):
        def on_epoch_end(self, net, **kwargs):
            self.predictions_ = net.predict(held_out)

    monitor = Predicts()
    reg = BrainJEPARegressor(tiny_module(), callbacks=[monitor], window="sliding", stride=4,
                             **fast(max_epochs=1)).fit(X, 50.0 + 10 * (labels == "b"))
    assert monitor.predictions_.shape == (3,)  # in the units of y, one a subject
    np.testing.assert_allclose(monitor.predictions_, reg.predict(held_out), rtol=1e-6)


def test_only_the_batch_tensor_of_the_batch_end_is_windows():
    """While the callbacks see a batch's end, a tensor of subjects predicted is still
    subjects; the batch's own tensor, kept by a callback, is subjects after fit."""

    class AtBatchEnd(Callback):
        def __init__(self, X):
            self.X = X

        def on_batch_begin(self, net, batch=None, training=False, **kwargs):
            self.at_begin_ = net.predict(batch[0])  # not yet the batch of a batch's end

        def on_batch_end(self, net, batch=None, training=False, **kwargs):
            self.batch_ = batch[0]
            self.predictions_ = net.predict(self.X)

    labels = np.array(["a", "b"] * 4)
    X = offset_subjects(np.where(labels == "b", 1.0, 0.0))
    monitor = AtBatchEnd(torch.from_numpy(X[:3]))
    clf = BrainJEPAClassifier(tiny_module(), callbacks=[monitor], **fast(max_epochs=1))
    clf.fit(X, labels)
    assert monitor.predictions_.shape == (3,) and set(monitor.predictions_) <= {"a", "b"}
    assert set(monitor.at_begin_) <= {"a", "b"}
    kept = monitor.batch_  # 8 windows: 8 subjects now
    assert clf.predict(kept).shape == (8,) and set(clf.predict(kept)) <= {"a", "b"}


def test_splitting_windows_outside_fit_leaves_the_loss_of_the_fit_alone():
    """skorch's get_split_datasets, called outside fit, splits without rebuilding the
    criterion (its class weights come from a fit's training windows)."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, class_weight="balanced"))
    criterion = clf.fit(X, y).criterion_
    windows, subject_index = clf.preprocessor_.transform(list(X))
    dataset = SubjectWindows(windows, y[subject_index], subject_index)
    train, valid = clf.get_split_datasets(dataset)
    assert len(train) == len(windows) and valid is None and clf.criterion_ is criterion


def test_a_validation_set_that_is_not_windows_of_the_fit_is_refused():
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    raw = Dataset(X.astype(np.float32), y)
    for valid in (raw, torch.utils.data.Subset(raw, np.arange(4))):  # nor a subset of them
        clf = BrainJEPAClassifier(tiny_module(), train_split=predefined_split(valid), **fast())
        with pytest.raises(ValueError, match="not windows of the subjects passed to fit"):
            clf.fit(X, y)
        assert not hasattr(clf, "preprocessor_")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
@pytest.mark.parametrize(("device", "message"), [("cuda", "CUDA is not available"),
                                                 ("auto", "has no 'auto'")])
def test_an_unavailable_device_is_named_before_any_work(device, message):
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    with pytest.raises(ValueError, match=message):
        BrainJEPAClassifier(tiny_module(), device=device, **fast()).fit(X, y)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    with pytest.raises(ValueError, match=message):
        clf.set_params(device=device).predict(X)


@pytest.mark.parametrize(("device", "message"), [
    ("gpu", r"device='gpu' is not a device torch knows: use 'cpu', 'cuda' or 'cuda:<index>'$"),
    ("meta", r"device='meta' .* cannot compute on it; use 'cpu' or 'cuda'$"),
])
def test_the_fine_tuners_device_errors_suggest_no_auto_which_they_refuse(device, message):
    """device='gpu' was answered "use 'auto', 'cpu', 'cuda' or 'cuda:<index>'", and
    device='auto' then with "takes skorch's device, which has no 'auto'"."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    for estimator in (BrainJEPAClassifier, BrainJEPARegressor):
        with pytest.raises(ValueError, match=message):
            estimator(tiny_module(), device=device, **fast()).fit(X, y)


def test_the_schedule_spans_the_epochs_passed_to_fit():
    recorder = Recorder()
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), callbacks=[recorder],
                              **fast(max_epochs=10, batch_size=4))
    clf.fit(X, y, epochs=2)
    lrs = [rates[0] for rates in recorder.lrs_]
    assert len(lrs) == 4 and lrs[0] == pytest.approx(FAST["lr"])
    assert lrs[-1] == pytest.approx(FAST_MIN_LR)  # reached at the last batch of 2 epochs
    clf.partial_fit(X, y, epochs=3)
    lrs = [rates[0] for rates in recorder.lrs_]
    assert len(lrs) == 6 and lrs[-1] == pytest.approx(FAST_MIN_LR)
    assert lrs[2] > 10 * FAST_MIN_LR  # not run out after the first two of three epochs


@pytest.mark.parametrize("name", ["lr", "optimizer__lr"])
def test_setting_the_learning_rate_after_fit_keeps_the_layer_wise_decay(name):
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, layer_decay=0.5)).fit(X, y)
    scales = [group["lr_scale"] for group in clf.optimizer_.param_groups]
    assert len(set(scales)) > 1
    clf.set_params(**{name: 1e-3})
    np.testing.assert_allclose([group["lr"] for group in clf.optimizer_.param_groups],
                               1e-3 * np.array(scales))
    assert clone(clf).get_params()[name] == 1e-3
    # the built-in schedule's peak is the new rate: the first epoch (4 batches of one
    # subject) warms up to 3/4 of it at its last batch
    clf.set_params(warmup_epochs=1, max_epochs=2, batch_size=1).partial_fit(X, y)
    assert clf.history_[-2]["lr"] == pytest.approx(0.75e-3)


def test_schedule_settings_that_contradict_each_other_are_caught():
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1))
    # a floor above the peak makes the cosine decay climb
    with pytest.warns(UserWarning, match=r"min_lr=0.1 is above the peak learning rate 0.001"):
        clf.set_params(lr=1e-3, min_lr=0.1).fit(X, y)
    with pytest.warns(UserWarning, match="min_lr=0.1 is above the peak learning rate 0.002"):
        clf.set_params(optimizer__lr=2e-3).fit(X, y)
    # a warm-up longer than the fit never reaches the peak
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.set_params(min_lr=1e-6).fit(X, y)
    with pytest.warns(UserWarning, match=r"warmup_epochs=5 is not less than the 2 epoch\(s\)"):
        clf.set_params(warmup_epochs=5, max_epochs=2).fit(X, y)
    with pytest.warns(UserWarning, match=r"warmup_epochs=5 is not less than the 3 epoch\(s\)"):
        clf.partial_fit(X, y, epochs=3)
    with pytest.warns(UserWarning, match=r"warmup_epochs=2 is not less than the 2 epoch\(s\)"):
        clf.set_params(warmup_epochs=2).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.set_params(warmup_epochs=1.5).fit(X, y)


def test_min_lr_equal_to_the_peak_is_a_constant_rate_without_a_warning():
    recorder = Recorder()
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2, batch_size=4, lr=1e-3),
                            min_lr=1e-3, callbacks=[recorder]).fit(X, y)
    np.testing.assert_allclose([lrs[-1] for lrs in recorder.lrs_], [1e-3] * 4, rtol=1e-12)


def test_a_warm_up_as_long_as_the_fit_warns_once_per_fit():
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=3), warmup_epochs=3)
    for call in (clf.fit, clf.partial_fit):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call(X, y)
        messages = [str(w.message) for w in caught if "warmup_epochs" in str(w.message)]
        assert len(messages) == 1, messages


def test_a_scheduler_of_the_users_beside_the_built_in_schedule_warns():
    from skorch.callbacks import LRScheduler

    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    step = LRScheduler("StepLR", step_size=1)
    with pytest.warns(UserWarning, match="callbacks__lr_schedule=None"):
        BrainJEPAClassifier(tiny_module(), callbacks=[step], **fast(max_epochs=1)).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BrainJEPAClassifier(tiny_module(), callbacks=[step], callbacks__lr_schedule=None,
                            **fast(max_epochs=1)).fit(X, y)


def test_set_params_of_a_scheduler_with_lr_schedule_none_together_does_not_warn():
    """skorch initialized the new callbacks list before it set callbacks__lr_schedule=None
    given with it: the warning said to pass what was passed. It waits for both now."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    fitted = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    for clf in (BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)), fitted):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            clf.set_params(callbacks__lr_schedule=None,
                           callbacks=[LRScheduler("StepLR", step_size=1)])
        assert not any(isinstance(callback, WarmupCosineLR) for _, callback in clf.callbacks_)
    # the list alone, the built-in schedule still on: warned of once the settings are made
    for clf in (BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)),
                BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)):
        with pytest.warns(UserWarning, match="callbacks__lr_schedule=None to use your"):
            clf.set_params(callbacks=[LRScheduler("StepLR", step_size=1)])


def test_restoring_before_fit_says_how():
    from skorch.exceptions import NotInitializedError

    clf = BrainJEPAClassifier(tiny_module(), **fast())
    with pytest.raises(NotInitializedError, match="LoadInitState"):
        clf.load_params(f_params="never_read.pt")
    with pytest.raises(AttributeError, match="max_epochs=0 and then call load_params"):
        clf.initialize()


def test_stratified_subject_split_of_a_regressor_says_the_targets_are_continuous():
    X, y = offset_subjects(np.linspace(0, 1, 12)), np.linspace(0, 1, 12)
    reg = BrainJEPARegressor(tiny_module(), train_split=SubjectValidSplit(0.25, stratified=True),
                             **fast(max_epochs=1))
    with pytest.raises(ValueError, match="stratified=True needs class labels"):
        reg.fit(X, y)


def test_stratified_subject_split_of_a_regressor_refuses_ages_in_whole_years_too():
    """The split sees the regressor's scaled targets: ages in whole years, read as they are,
    would pass for 6 classes of two subjects each, and the fit would stratify on them."""
    X, y = offset_subjects(np.linspace(0, 1, 12)), np.repeat(np.arange(40.0, 46.0), 2)
    reg = BrainJEPARegressor(tiny_module(), train_split=SubjectValidSplit(0.5, stratified=True),
                             **fast(max_epochs=1))
    with pytest.raises(ValueError, match="stratified=True needs class labels"):
        reg.fit(X, y)


@pytest.mark.parametrize("random_state", [None, 0])
def test_a_subject_split_is_named_as_given_not_with_the_seed_drawn_for_it(random_state):
    """A SubjectValidSplit without a random_state draws with a seeded copy; its messages
    named that copy, "SubjectValidSplit(fraction=0.25, stratified=True,
    random_state=999230131)", a seed the user never set."""
    X, y = offset_subjects(np.linspace(0, 1, 12)), np.linspace(0, 1, 12)
    given = SubjectValidSplit(0.25, stratified=True)
    reg = BrainJEPARegressor(tiny_module(), train_split=given,
                             **fast(max_epochs=1, random_state=random_state))
    with pytest.raises(ValueError) as info:
        reg.fit(X, y)
    assert str(info.value).startswith(f"{given!r}: stratified=True needs class labels")
    clf = BrainJEPAClassifier(tiny_module(), train_split=SubjectValidSplit(0.9, stratified=True),
                              **fast(max_epochs=1, random_state=random_state))
    with pytest.raises(ValueError) as info:
        clf.fit(X, np.tile([0, 1], 6))
    assert str(info.value).startswith("SubjectValidSplit(fraction=0.9, stratified=True, "
                                      "random_state=None) cannot split 12 subjects")
    assert given.random_state is None


def test_stratified_subject_split_refuses_several_continuous_targets_too():
    targets = np.column_stack([np.linspace(0, 1, 12), np.linspace(2, 5, 12)])
    with pytest.raises(ValueError, match="stratified=True needs class labels"):
        SubjectValidSplit(0.25, stratified=True).split_subjects(targets)


def test_a_subset_of_a_window_array_holds_the_windows_its_indices_name():
    windows = np.arange(10 * 4 * 2, dtype=np.float32).reshape(10, 4, 2)
    subset = WindowArray(windows, 4, 2)[[9, 3, 5, 1, 7]]
    nested = subset[np.array([4, 0, 2])]  # positions within the subset: windows 7, 9, 5
    assert isinstance(nested, WindowArray) and nested.shape == (3, 4, 2)
    for i, window in enumerate([7, 9, 5]):
        np.testing.assert_array_equal(nested[i], windows[window])
    np.testing.assert_array_equal(subset[1:4][-1], windows[1])  # a slice of the subset


def test_a_window_read_as_a_tensor_is_given_as_an_array():
    """Windows read from files are tensors; one window taken from the array is an array."""
    windows = [torch.full((4, 2), float(k)) for k in range(3)]
    window = WindowArray(windows, 4, 2)[[2, 0]][0]
    assert isinstance(window, np.ndarray)
    np.testing.assert_array_equal(window, np.full((4, 2), 2.0, dtype=np.float32))


def test_windows_targets_and_subject_indices_of_other_lengths_are_refused():
    windows = np.zeros((3, 4, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="3 windows, 3 targets and 2 subject indices"):
        SubjectWindows(windows, np.zeros(3), [0, 1])


def test_sample_weight_is_refused_with_what_to_use():
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    with pytest.raises(ValueError, match="class_weight"):
        BrainJEPAClassifier(tiny_module(), **fast()).fit(X, y, sample_weight=np.ones(4))


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_fit_params_other_than_epochs_are_refused_by_name_before_any_work(method):
    """skorch passes them to the module's forward, which takes none: torch's 'forward() got an
    unexpected keyword argument' came once the preprocessing and the model were built."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    for estimator, target in [(BrainJEPAClassifier(tiny_module(), **fast()), y),
                              (BrainJEPARegressor(tiny_module(), **fast()), y * 1.0)]:
        name = type(estimator).__name__
        with pytest.raises(TypeError, match=rf"^{name}.{method} got unexpected keyword "
                                            r"argument\(s\) 'mask', 'weights': it takes epochs "
                                            r"\(skorch's number of epochs\) and groups"):
            getattr(estimator, method)(X, target, mask=np.ones(4), weights=np.arange(4))
        assert not hasattr(estimator, "module_")
        before = estimator.fit(X, target, epochs=1).predict(X)
        with pytest.raises(TypeError, match="'mask'"):
            getattr(estimator, method)(X, target, mask=np.arange(4))
        np.testing.assert_array_equal(estimator.predict(X), before)


def test_skorchs_batch_scoring_scores_the_training_windows():
    """skorch's BatchScoring passes each batch's tensor of windows to predict during fit."""
    from skorch.callbacks import BatchScoring

    labels = np.array(["a", "b"] * 4)
    X = offset_subjects(np.where(labels == "b", 1.0, 0.0))
    clf = BrainJEPAClassifier(tiny_module(), callbacks=[
        BatchScoring("accuracy", on_train=True, name="batch_acc")], **fast(max_epochs=2))
    scores = clf.fit(X, labels).history_[:, "batch_acc"]
    assert len(scores) == 2 and all(0.0 <= score <= 1.0 for score in scores)
    levels = np.linspace(-1, 1, 8)
    reg = BrainJEPARegressor(tiny_module(), callbacks=[
        BatchScoring("neg_mean_squared_error", on_train=True, name="batch_mse")],
        **fast(max_epochs=2))
    history = reg.fit(offset_subjects(levels), 60 + 10 * levels).history_
    # in the units of y, as skorch's scorers compare predict with y: the loss (an MSE over
    # the same batches, on the scaled targets) times the scale squared
    np.testing.assert_allclose(history[:, "batch_mse"],
                               -np.asarray(history[:, "train_loss"]) * reg.target_scale_ ** 2,
                               rtol=1e-4)


@pytest.mark.parametrize("use_caching", [True, False])
def test_skorchs_epoch_scoring_on_train_scores_the_training_windows(use_caching):
    """Without a split, skorch scores the whole training dataset: its windows, one prediction
    each (without the cache, by the model as the last epoch left it)."""
    levels = np.tile([0.0, 1.0], 4)
    X, labels = offset_subjects(levels), np.where(levels == 1.0, "b", "a")
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2), window="sliding", stride=8,
                              callbacks=[EpochScoring("accuracy", on_train=True, name="train_acc",
                                                      use_caching=use_caching)]).fit(X, labels)
    accuracy = clf.history_[-1, "train_acc"]
    windows, subject_index = clf.preprocessor_.transform(list(X))  # two windows a subject
    assert len(windows) == 16
    with torch.no_grad():
        predicted = clf.module_.eval()(torch.from_numpy(windows)).argmax(-1).numpy()
    if not use_caching:
        assert accuracy == np.mean(predicted == (levels[subject_index] == 1.0))
    # with the cache, the score of the predictions made while training (no exact value):
    # what is checked is that skorch can score the windows at all


# -- the schedule, the weight decay, window averaging and target scaling ----------------------

def test_validation_batches_leave_the_learning_rate_schedule_alone():
    """With a validation split, each epoch's recorded rate is that of its last training batch:
    the validation batches do not step the schedule."""
    recorder = Recorder()
    X, y = offset_subjects(np.tile([0.0, 1.0], 6)), np.tile([0, 1], 6)
    clf = BrainJEPAClassifier(
        tiny_module(), **fast(max_epochs=3, batch_size=4, lr=1e-3, layer_decay=0.5),
        train_split=SubjectValidSplit(1 / 3, stratified=True, random_state=0),
        callbacks=[recorder]).fit(X, y)
    assert len(recorder.lrs_) == 3 * 2  # 8 training windows, batches of 4
    last_of_each_epoch = [recorder.lrs_[2 * epoch + 1][-1] for epoch in range(3)]
    np.testing.assert_allclose(clf.history_[:, "lr"], last_of_each_epoch, rtol=1e-12)
    np.testing.assert_allclose([group["lr"] for group in clf.optimizer_.param_groups],
                               recorder.lrs_[-1], rtol=1e-12)


def test_without_the_built_in_schedule_each_group_learns_at_lr_times_its_scale():
    recorder = Recorder()
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, batch_size=4, lr=1e-2,
                                              layer_decay=0.5),
                        callbacks=[recorder], callbacks__lr_schedule=None).fit(X, y)
    assert sorted(set(recorder.lr_scales_[0])) == [0.25, 0.5, 1.0]
    for lrs, scales in zip(recorder.lrs_, recorder.lr_scales_):
        np.testing.assert_allclose(lrs, 1e-2 * np.asarray(scales), rtol=1e-12)


def test_weight_decay_reaches_the_decayed_groups_only():
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), weight_decay=0.2).fit(X, y)
    groups = clf.optimizer_.param_groups
    assert {g["weight_decay"] for g in groups if g.get("no_weight_decay")} == {0.0}
    assert {g["weight_decay"] for g in groups if not g.get("no_weight_decay")} == {0.2}
    groups = clf.set_params(weight_decay=0.0).fit(X, y).optimizer_.param_groups
    assert {g["weight_decay"] for g in groups} == {0.0}


def test_a_fractional_warm_up_lasts_its_share_of_the_batches():
    """warmup_epochs=1.5 with 4 batches an epoch: 6 batches of warm-up, not 4."""
    recorder = Recorder()
    X, y = offset_subjects(np.zeros(8)), np.tile([0, 1], 4)
    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=3, batch_size=2, lr=1e-3),
                        warmup_epochs=1.5, callbacks=[recorder]).fit(X, y)
    head = [lrs[-1] for lrs in recorder.lrs_]  # the head's group: scale 1
    steps = 3 * 4
    expected = [warmup_cosine(step, steps - 1, 6, 0.0, 1e-3, FAST_MIN_LR) for step in range(steps)]
    np.testing.assert_allclose(head, expected, rtol=1e-12)
    assert head[5] < head[6] == pytest.approx(1e-3)  # the peak after 1.5 epochs
    recorder = Recorder()  # 0.7 of 4 batches: the nearest whole number of batches, 3
    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, batch_size=2, lr=1e-3),
                        warmup_epochs=0.7, callbacks=[recorder]).fit(X, y)
    head = [lrs[-1] for lrs in recorder.lrs_]
    assert len(head) == 4 and head[2] < head[3] == pytest.approx(1e-3)


def test_a_subjects_probabilities_are_the_mean_of_its_windows_not_of_their_logits():
    """A subject whose windows the model tells apart confidently (two of one class, one of the
    other): the mean of the probabilities, which a softmax of the mean logits is far from."""
    levels = np.tile([0.0, 1.0], 8)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=15), window="sliding",
                              stride=8).fit(offset_subjects(levels, n_timepoints=8),
                                            levels.astype(int))
    mixed = np.concatenate(offset_subjects([1.0, 1.0, 0.0], n_timepoints=8, seed=1))[None]
    windows, _ = clf.preprocessor_.transform(list(mixed))
    with torch.no_grad():
        logits = clf.module_.eval()(torch.from_numpy(windows))
    assert (logits.argmax(-1) == torch.tensor([1, 1, 0])).all()
    expected = logits.softmax(-1).mean(0).numpy()
    assert np.abs(expected - logits.mean(0).softmax(-1).numpy()).max() > 0.05
    np.testing.assert_allclose(clf.predict_proba(mixed)[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["regressor", "classifier with class weights"])
def test_a_net_loaded_memory_mapped_trains_on_without_torchs_read_only_warning(tmp_path, kind):
    """joblib.load(mmap_mode="r") gives read-only fitted arrays (the regressor's target
    statistics, the class weights of class_weight="balanced"), which the loss read with
    torch.as_tensor: torch warned that the array was not writable at the first batch of a
    partial_fit. A fresh process, as torch gives that warning once per process."""
    import joblib

    if kind == "regressor":
        X, y = offset_subjects(np.linspace(-1, 1, 6)), np.linspace(20, 70, 6)
        net = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1))
        read_only = "net.target_mean_"
    else:
        X, y = offset_subjects(np.tile([0.0, 0.0, 1.0], 2)), np.tile([0, 0, 1], 2)
        net = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), class_weight="balanced")
        read_only = "net._class_weights_"
    joblib.dump(net.fit(X, y), tmp_path / "fitted.joblib")
    np.savez(tmp_path / "data.npz", X=X, y=y)
    code = ("import sys, warnings, joblib, numpy as np\n"
            "warnings.filterwarnings('error', message='.*not writable')\n"
            "net = joblib.load(sys.argv[1] + '/fitted.joblib', mmap_mode='r')\n"
            f"assert not {read_only}.flags.writeable\n"
            "data = np.load(sys.argv[1] + '/data.npz')\n"
            "net.partial_fit(data['X'], data['y'])\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # this checkout's package
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr


def test_standardize_targets_false_trains_on_the_targets_as_given():
    recorder = Recorder()
    levels = np.linspace(-1, 1, 8)
    X, y = offset_subjects(levels), 60 + 10 * levels
    raw = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1), standardize_targets=False,
                             callbacks=[recorder]).fit(X, y)
    np.testing.assert_array_equal(raw.target_mean_, [0.0])
    np.testing.assert_array_equal(raw.target_scale_, [1.0])
    np.testing.assert_allclose(np.asarray(recorder.dataset_.y).ravel(), y, rtol=1e-6)
    windows, _ = raw.preprocessor_.transform(list(X))  # one window a subject
    with torch.no_grad():
        outputs = raw.module_.eval()(torch.from_numpy(windows)).numpy().ravel()
    np.testing.assert_allclose(raw.predict(X), outputs, rtol=1e-5)
    scaled = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1), callbacks=[recorder]).fit(
        X, y)
    # the windows hold y as given (skorch's scoring reads them); the loss scales them
    np.testing.assert_allclose(np.asarray(recorder.dataset_.y).ravel(), y, rtol=1e-6)
    outputs = torch.linspace(-2, 2, len(y))[:, None]
    np.testing.assert_allclose(
        scaled.get_loss(outputs, torch.from_numpy(y[:, None])).item(),
        np.mean((outputs.numpy().ravel() - (y - y.mean()) / y.std()) ** 2), rtol=1e-5)


def test_the_regressors_loss_asks_no_float64_of_the_outputs_device():
    """get_loss scales the targets in float64: on the outputs' device, which a device without
    float64 (Apple's MPS: "Cannot convert a MPS Tensor to float64 dtype") refused at the first
    batch, where the targets had come to it in float32. Such a device is emulated on 'meta'."""
    from torch.overrides import TorchFunctionMode

    class NoFloat64OnMeta(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if (isinstance(out, torch.Tensor) and out.device.type == "meta"
                    and out.dtype == torch.float64):
                raise TypeError("Cannot convert a meta Tensor to float64 dtype")
            return out

    levels = np.linspace(-1, 1, 8)
    reg = BrainJEPARegressor(tiny_module(), **fast(max_epochs=1)).fit(
        offset_subjects(levels), 60 + 10 * levels)
    reg.device = "meta"  # where skorch's get_loss puts the targets
    targets = torch.from_numpy(60 + 10 * levels[:, None])  # as the loader gives them
    with NoFloat64OnMeta():
        loss = reg.get_loss(torch.zeros((8, 1), device="meta"), targets)
    assert loss.device.type == "meta" and loss.dtype == torch.float32 and loss.ndim == 0


# -- round 13: planted bugs that the tests above let through -----------------------------------

def test_a_history_of_records_without_epochs_is_refused_and_the_net_kept(tmp_path):
    """A JSON list of dicts that are not epoch records (another tool's log) is not a history:
    skorch would take it, and a Checkpoint or a continued fit would then fail on it."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2)).fit(X, y)
    history, records = clf.history_, copy.deepcopy(list(clf.history_))
    log = tmp_path / "log.json"
    log.write_text('[{"train_loss": 0.5}, {"train_loss": 0.4}]')
    with pytest.raises(ValueError, match=f"could not load {log}"):
        clf.load_params(f_history=log)
    assert clf.history_ is history and list(history) == records


def test_a_failed_load_params_puts_back_the_device_skorch_fell_back_from(tmp_path, monkeypatch):
    """skorch sets device="cpu" when it loads a file for a net on a missing CUDA device: when
    the file then fails to load, the net keeps the device it was given."""
    from skorch.exceptions import DeviceWarning

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    damaged = tmp_path / "params.pt"
    damaged.write_bytes(b"half a file")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    clf.device = "cuda"  # e.g. a net unpickled on a machine without a GPU
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeviceWarning)
        with pytest.raises(ValueError, match=f"could not load {damaged}"):
            clf.load_params(f_params=damaged)
    assert clf.device == "cuda"


def test_get_params_lists_public_parameters_only_before_and_after_fit():
    """skorch's bookkeeping of its prefixed arguments is not a parameter: it would show in
    get_params (and so in GridSearchCV's and clone's view of the estimator)."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), optimizer__eps=1e-6)
    for estimator in (clf, clf.set_params(optimizer__betas=(0.8, 0.9)), clone(clf),
                      clf.fit(X, y)):
        private = [name for name in estimator.get_params(deep=False) if name.startswith("_")]
        assert private == []
    assert clone(clf).get_params()["optimizer__betas"] == (0.8, 0.9)


class _SGDWithoutDefaultRate(torch.optim.SGD):
    """An optimizer whose learning rate has no default (as many third-party ones)."""

    def __init__(self, params, lr, momentum=0.0):
        super().__init__(params, lr=lr, momentum=momentum)


def test_an_optimizer_without_a_default_rate_gets_lr_and_the_groups_their_scales():
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, layer_decay=0.5, lr=1e-2),
                              optimizer=_SGDWithoutDefaultRate, optimizer__momentum=0.9,
                              callbacks__lr_schedule=None).fit(X, y)
    assert clf.optimizer_.defaults["lr"] == 1e-2
    assert clf.optimizer_.defaults["momentum"] == 0.9
    for group in clf.optimizer_.param_groups:
        assert group["lr"] == pytest.approx(1e-2 * group["lr_scale"])


def test_a_numpy_integer_seed_is_the_same_seed_as_the_python_integer():
    """Seeds from np.arange (a grid, a loop over folds) are np.int64: the fit is the one that
    int seed gives, not one drawn from a generator seeded with it."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    settings = fast(max_epochs=2, drop_path_rate=0.3, batch_size=4)
    as_int = BrainJEPAClassifier(tiny_module(), **dict(settings, random_state=3)).fit(X, y)
    (seed,) = np.arange(3, 4)
    as_numpy = BrainJEPAClassifier(tiny_module(), **dict(settings, random_state=seed)).fit(X, y)
    np.testing.assert_array_equal(as_numpy.predict_proba(X), as_int.predict_proba(X))


@pytest.mark.parametrize("head", ["groupnorm", "LayerNorm", None])
def test_a_head_kind_that_does_not_exist_is_refused_with_the_kinds_there_are(head):
    """A clear ValueError, not a bare KeyError from the table of initial weights (after a
    BatchNorm was built for it)."""
    with pytest.raises(ValueError, match=r"kind must be one of \('layernorm', 'batchnorm'\)"):
        EncoderWithHead(tiny_module().target_encoder, 2, head=head)


def test_accumulated_micro_batches_give_skorch_the_predictions_of_the_whole_batch():
    """skorch's scoring callbacks read each training batch's predictions from train_step:
    with accumulation_steps, those of every micro-batch, in order, not of the last one."""
    from skorch.callbacks import BatchScoring

    rows = []

    class Rows(Callback):
        def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
            if training:
                rows.append((len(y_pred), len(batch[0])))

    levels = np.linspace(-1, 1, 16)
    reg = BrainJEPARegressor(tiny_module(), callbacks=[
        Rows(), BatchScoring("neg_mean_squared_error", on_train=True, name="batch_mse")],
        **fast(max_epochs=2), accumulation_steps=2)
    history = reg.fit(offset_subjects(levels), 60 + 10 * levels).history_
    assert rows == [(8, 8)] * 4
    # the loss is the mean over the whole batch, and so is the MSE of its predictions (in the
    # units of y: the scale squared times the loss's)
    np.testing.assert_allclose(history[:, "batch_mse"],
                               -np.asarray(history[:, "train_loss"]) * reg.target_scale_ ** 2,
                               rtol=1e-4)


def test_predict_checks_region_names_against_fit_and_changes_nothing():
    """Subjects given as DataFrames: predict refuses columns in another order and warns on
    arrays, as scikit-learn's estimators do, leaving what fit learned (feature_names_in_)."""
    import pandas as pd

    names = [f"roi{i}" for i in range(N_REGIONS)]
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    frames = [pd.DataFrame(x, columns=names) for x in X]
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(frames, y)
    swapped = [frame[[names[1], names[0], *names[2:]]] for frame in frames]
    with pytest.raises(ValueError, match="differ from those seen in fit: column 0 is 'roi1'"):
        clf.predict(swapped)
    # a continued fit checks them as predict does (it must not learn the new order as fit's)
    with pytest.raises(ValueError, match="differ from those seen in fit: column 0 is 'roi1'"):
        clf.partial_fit(swapped, y)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        clf.predict(X)
    np.testing.assert_array_equal(clf.feature_names_in_, names)
    assert clf.n_features_in_ == N_REGIONS


def test_the_region_names_of_the_checkpoint_are_kept_and_checked_at_predict(tmp_path):
    """region_names_ is what the checkpoint recorded: subjects given with those names in
    another order are refused at predict (every region would be read as another one)."""
    import pandas as pd

    names = [f"roi{i}" for i in range(N_REGIONS)]
    save_checkpoint(tmp_path / "m.pt", tiny_module(), metadata={"region_names": names})
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tmp_path / "m.pt", **fast(max_epochs=1)).fit(X, y)
    assert clf.region_names_ == names
    with pytest.raises(ValueError, match="another order"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # X has names, fit's arrays had none
        clf.predict([pd.DataFrame(x, columns=names[::-1]) for x in X])


# -- round 22: planted bugs that the tests above let through -----------------------------------

def test_a_continued_fit_trains_each_label_on_its_output_in_the_order_of_the_classes():
    """classes=["patient", "control"] (not sorted): a continued fit (partial_fit, or fit with
    warm_start) encodes the labels by the first fit's classes_, in that order; sorted, every
    window would train the other class's output."""
    recorder = Recorder()
    labels = np.array(["control", "patient", "patient"] * 2)
    X = offset_subjects(np.zeros(6))
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), classes=["patient", "control"],
                              callbacks=[recorder])
    with pytest.warns(UserWarning, match="is not sorted"):
        clf.fit(X, labels)
    clf.partial_fit(X, labels)
    np.testing.assert_array_equal(clf.classes_, ["patient", "control"])
    np.testing.assert_array_equal(clf.classes_[recorder.dataset_.y], labels)
    clf.set_params(warm_start=True).fit(X, labels)
    np.testing.assert_array_equal(clf.classes_[recorder.dataset_.y], labels)


class ScriptedScore(Callback):
    """Records ``scores[epoch - 1]`` as ``"score"`` at each epoch's end, and whether it is the
    lowest so far as ``"score_best"`` (a monitor whose course is known in advance)."""

    def __init__(self, scores):
        self.scores = scores

    def on_epoch_end(self, net, **kwargs):
        epoch = len(net.history_)
        net.history.record("score", self.scores[epoch - 1])
        net.history.record("score_best", self.scores[epoch - 1] < min(self.scores[:epoch - 1],
                                                                      default=np.inf))


def test_a_resumed_fit_replays_early_stoppings_patience_from_its_last_improvement(tmp_path):
    """A loaded history with a miss, then an improvement, then a miss: EarlyStopping's count
    starts again at the improvement, so the resumed run stops where the uninterrupted one
    does (counting the first miss too, it had stopped an epoch early)."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    scores = [1.0, 1.1, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]  # best at 1 and 3; patience 3: stop at 6
    run = fast(max_epochs=len(scores))

    def callbacks(*more):  # the score recorded before the Checkpoint saves the history
        return [ScriptedScore(scores), *more, EarlyStopping(monitor="score", patience=3)]

    reference = BrainJEPAClassifier(tiny_module(), **run, callbacks=callbacks()).fit(X, y)
    assert len(reference.history_) == 6
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    with pytest.raises(RuntimeError, match="killed"):
        BrainJEPAClassifier(tiny_module(), **run, callbacks=[
            *callbacks(saved, LoadInitState(saved)), FailAtEpochEnd(4)]).fit(X, y)
    resumed = BrainJEPAClassifier(tiny_module(), **run,
                                  callbacks=callbacks(saved, LoadInitState(saved))).fit(X, y)
    assert len(resumed.history_) == 6
    assert_same_module(resumed.module_, reference.module_)


def test_a_resumed_fit_with_load_best_trains_on_from_the_last_epoch_not_the_best(tmp_path):
    """EarlyStopping(load_best=True)'s copy of the best epoch's weights, read back from a
    Checkpoint's file when a run resumes, is only kept: the run trains on from the weights
    of its last epoch, as the uninterrupted one does (from the best epoch's, a later best
    epoch had other weights)."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    scores = [1.0, 0.5, 0.9, 0.8, 0.2, 0.9, 0.9, 0.9]  # best at 2, then at 5; stop at 8
    run = fast(max_epochs=len(scores))

    def callbacks(*more):
        return [ScriptedScore(scores), *more,
                Checkpoint(dirname=tmp_path, monitor="score_best", event_name="kept",
                           fn_prefix="best_"),
                EarlyStopping(monitor="score", patience=3, load_best=True)]

    reference = BrainJEPAClassifier(tiny_module(), **run, callbacks=callbacks()).fit(X, y)
    assert len(reference.history_) == 8
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    with pytest.raises(RuntimeError, match="killed"):  # after epoch 4: the best is epoch 2
        BrainJEPAClassifier(tiny_module(), **run, callbacks=[
            *callbacks(saved, LoadInitState(saved)), FailAtEpochEnd(4)]).fit(X, y)
    resumed = BrainJEPAClassifier(tiny_module(), **run,
                                  callbacks=callbacks(saved, LoadInitState(saved)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the best epoch's weights found in the "best_" file
        resumed.fit(X, y)
    assert len(resumed.history_) == 8
    assert_same_module(resumed.module_, reference.module_)  # epoch 5's


def test_a_run_early_stopping_ended_at_its_last_epoch_is_said_to_be_stopped_by_it(tmp_path):
    """EarlyStopping that stopped a run at epoch max_epochs: fitted again, the run is said to
    be EarlyStopping's (whose load_best gives the best epoch's weights), not merely one that
    holds all its epochs."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    saved = Checkpoint(dirname=tmp_path, monitor=None)

    def net():
        return BrainJEPAClassifier(tiny_module(), **fast(max_epochs=3), callbacks=[
            ScriptedScore([1.0, 1.1, 1.2]), saved, LoadInitState(saved),
            EarlyStopping(monitor="score", patience=2)])

    assert len(net().fit(X, y).history_) == 3  # two misses: stopped at the last epoch
    with pytest.warns(UserWarning, match=r"EarlyStopping stopped its run \(epoch 3\): no "
                                         "epoch is trained"):
        again = net().fit(X, y)
    assert len(again.history_) == 3


# -- session 30: mutants of the fine-tuners that the tests above let through -------------------

def test_predict_names_each_subject_by_its_most_probable_output_in_the_order_of_the_classes():
    """classes=["patient", "control"] (not sorted): predict gives classes_[k] for the column k
    of predict_proba that is largest; the labels sorted would name every prediction by the
    other class."""
    X = offset_subjects(np.zeros(6))
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1), classes=["patient", "control"])
    with pytest.warns(UserWarning, match="is not sorted"):
        clf.fit(X, np.array(["control", "patient", "patient"] * 2))
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.predict(X), np.array(["patient", "control"])[
        proba.argmax(axis=1)])


class GeneratorStates(Callback):
    """Records the state of torch's global generator (the fit's fork of it) as each training
    batch begins, after the net has seeded the batch's draws."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.states_ = []

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            self.states_.append(torch.default_generator.get_state().clone())


def test_each_training_batch_of_an_epoch_draws_its_stochastic_depth_from_a_seed_of_its_own():
    """Every training batch is seeded from random_state, the epoch's number and the batch's
    place in the epoch: seeded by the epoch alone, the batches of an epoch would all drop the
    same paths for the windows at the same place in them."""
    states = GeneratorStates()
    BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2, batch_size=2),
                        callbacks=[states]).fit(offset_subjects(np.zeros(6)), np.tile([0, 1], 3))
    assert len(states.states_) == 6  # 3 batches an epoch
    distinct = {bytes(state.numpy()) for state in states.states_}
    assert len(distinct) == 6


class WindowPredictions(Callback):
    """Records, at each epoch's end, predict and predict_proba of the training windows (as
    skorch's scoring callbacks call them)."""

    def on_epoch_end(self, net, dataset_train=None, **kwargs):
        self.predicted_ = net.predict(dataset_train)
        self.proba_ = net.predict_proba(dataset_train)


def test_predict_of_windows_during_a_fit_lacking_a_class_gives_the_outputs_codes():
    """classes=["a", "b", "c"] and a y of "a" and "c" only: skorch's own classes_inferred_ of
    the fit are then the codes 0 and 2, and predict of the training windows (skorch's scoring)
    gives the code of each window's most probable output, which the windows' targets hold, not
    classes_inferred_ indexed by it (which names output 1 by code 2 and fails on output 2)."""
    recorder = WindowPredictions()
    clf = BrainJEPAClassifier(tiny_module(), **FAST, classes=["a", "b", "c"],
                              callbacks=[recorder])
    clf.fit(offset_subjects(np.tile([0.0, 1.0], 3)), np.tile(["a", "c"], 3))
    codes = recorder.proba_.argmax(axis=1)
    assert 2 in codes  # the "c" windows' output, once trained
    np.testing.assert_array_equal(recorder.predicted_, codes)


def test_a_resume_with_a_split_of_another_class_of_the_same_parameters_is_refused(tmp_path):
    """The run file records a split with get_params by its class too: two splits of one's own
    with the same parameters that hold out other subjects (each in its own __call__) are other
    runs, and a resume with the other one is refused naming train_split."""
    class FirstSubjectsOut(SubjectValidSplit):
        def __call__(self, dataset, y=None, groups=None):
            in_valid = dataset.subject_index < 2
            return (torch.utils.data.Subset(dataset, np.flatnonzero(~in_valid)),
                    torch.utils.data.Subset(dataset, np.flatnonzero(in_valid)))

    class LastSubjectsOut(FirstSubjectsOut):
        def __call__(self, dataset, y=None, groups=None):
            valid, train = super().__call__(dataset)
            return train, valid

    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    saved = Checkpoint(dirname=tmp_path, monitor=None)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=2),
                              train_split=FirstSubjectsOut(0.25, random_state=1),
                              callbacks=[saved, LoadInitState(saved)]).fit(X, y)
    clf.set_params(train_split=LastSubjectsOut(0.25, random_state=1), max_epochs=3)
    with pytest.raises(ValueError, match=r"other settings than this fit's \(train_split=.*"
                                         r"FirstSubjectsOut' then, .*LastSubjectsOut' now\)"):
        clf.fit(X, y)


def test_a_pickled_fine_tuner_keeps_its_constant_regions_setting():
    """Unpickling gives a pickle of an older version, which lacks constant_regions, the
    then-behaviour ('error'); one that holds the setting keeps it, and predicts as before
    without a warning of settings changed since fit."""
    rng = np.random.default_rng(3)
    X = [rng.standard_normal((16, N_REGIONS)) for _ in range(4)]
    X[1][:, 2] = 5.0  # a region constant within the subject: taken as 0
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1),
                              constant_regions="zero").fit(X, [0, 1, 0, 1])
    restored = pickle.loads(pickle.dumps(clf))
    assert restored.get_params()["constant_regions"] == "zero"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("estimator", [BrainJEPAClassifier, BrainJEPARegressor])
def test_a_t_r_in_milliseconds_is_warned_of_once_per_fit(estimator):
    """fMRI TRs are seconds: each TR given in milliseconds (t_r, model_t_r) is named once per
    fit, and the fit goes on (it may be meant for other data)."""
    X, y = offset_subjects(np.arange(8) % 2), np.arange(8) % 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = estimator(tiny_module(), t_r=720, model_t_r=2205,
                           **fast(max_epochs=1)).fit(X, y)
    long = [str(w.message) for w in caught if "long for fMRI" in str(w.message)]
    assert long == ["t_r=720 s is long for fMRI: TRs are in seconds (720 ms is 0.72 s)",
                    "model_t_r=2205 s is long for fMRI: TRs are in seconds (2205 ms is 2.205 s)"]
    assert fitted.preprocessor_.target_t_r == 2205


def test_save_refuses_the_weights_file_it_was_fine_tuned_from(tmp_path, monkeypatch):
    """``save`` over the file ``weights`` names would replace the pretrained model (predictor
    included) with the fine-tuned encoder alone: refused, however the path is spelt, and
    nothing written; another file, existing or not, is written."""
    monkeypatch.setenv("HOME", str(tmp_path))
    pretrained = tmp_path / "pretrained.pt"
    save_checkpoint(pretrained, tiny_module())
    before = pretrained.read_bytes()
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier("~/pretrained.pt", **fast(max_epochs=1)).fit(X, y)
    (tmp_path / "sub").mkdir()
    for path in (pretrained, str(pretrained), tmp_path / "sub" / ".." / "pretrained.pt",
                 "~/pretrained.pt"):
        with pytest.raises(ValueError, match=re.escape(
                f"cannot save to {os.fspath(path)!r}: it is the weights file this "
                "BrainJEPAClassifier was fine-tuned from (weights='~/pretrained.pt')")):
            clf.save(path)
    assert pretrained.read_bytes() == before
    other = tmp_path / "other.pt"
    other.write_bytes(b"old")
    clf.save(other)
    clf.save(tmp_path / "new.pt")
    assert other.read_bytes() != b"old" and (tmp_path / "new.pt").is_file()


def test_load_params_of_a_plain_pickle_gives_no_torch_pickle_protocol_warning(tmp_path):
    """torch's weights-only reader warned of the pickle protocol ("please file an issue")
    before the file was refused and named: load_file silences it, load_params did not."""
    import warnings

    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    (tmp_path / "net.pkl").write_bytes(pickle.dumps({"model": [1.0, 2.0]}, protocol=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"net\.pkl \(f_params\): it is a Python pickle"):
            clf.load_params(f_params=tmp_path / "net.pkl")


def test_ctrl_c_while_fine_tuning_keeps_the_traceback_of_where_it_landed(ctrl_c_raises):
    """The TrainingInterrupted that Ctrl-C becomes shows where training was when it was
    pressed (what Ctrl-C is pressed to find in a fit that hangs), as the bare
    KeyboardInterrupt did."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 4)), np.tile([0, 1], 4)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1, batch_size=4),
                              callbacks=[FailOnce("ctrl-c")])
    with pytest.raises(KeyboardInterrupt, match="stopped by Ctrl-C") as info:
        clf.fit(X, y)
    assert "press_ctrl_c" in [entry.name for entry in info.traceback]


def test_load_params_of_a_saved_model_says_what_it_is_without_advice_to_delete_it(tmp_path):
    """A brainjepa_sk checkpoint (a user's model) given to load_params by mistake had been
    called damaged or of another model, with the advice to delete it."""
    from brainjepa_sk.checkpoint import save_checkpoint

    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    save_checkpoint(tmp_path / "model.pt", tiny_module())
    with pytest.raises(ValueError, match=r"model\.pt \(f_params\): it is a brainjepa_sk "
                                         r"checkpoint .* not a file that save_params\(\.\.\., "
                                         r"f_params=\) wrote$"):
        clf.load_params(f_params=tmp_path / "model.pt")


def test_load_params_of_a_research_fine_tuned_model_says_what_it_is_without_advice_to_delete_it(
        tmp_path):
    """A model the research code fine-tuned, saved with its arguments (an argparse.Namespace),
    had been called a file of Python objects, with the advice to delete it."""
    import argparse

    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    state = {"encoder.pos_embed_proj.emb_h": torch.zeros(4, 2),
             "encoder.patch_embed.proj.weight": torch.zeros(4, 1, 1, 2),
             "head.weight": torch.zeros(2, 4), "head.bias": torch.zeros(2)}
    torch.save({"model": state, "epoch": 0, "args": argparse.Namespace(blr=1e-3)},
               tmp_path / "checkpoint-0.pth")
    with pytest.raises(ValueError, match=r"checkpoint-0\.pth \(f_params\): it is a model that "
                                         r"the research Brain-JEPA code fine-tuned, not a file "
                                         r"that save_params\(\.\.\., f_params=\) wrote$"):
        clf.load_params(f_params=tmp_path / "checkpoint-0.pth")


def test_load_params_of_a_safetensors_file_asks_for_use_safetensors_not_to_delete_it(
        tmp_path):
    """A safetensors file (as save_params(..., use_safetensors=True) writes) loaded without
    use_safetensors had been called not written by torch.save or damaged, with the advice to
    delete it."""
    from _estimators import safetensors_bytes

    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    path = tmp_path / "params.safetensors"
    path.write_bytes(safetensors_bytes({"head.bias": torch.zeros(2)}))
    with pytest.raises(ValueError, match=r"params\.safetensors \(f_params\): it is a safetensors "
                                         r"file; pass use_safetensors=True to load it \(as "
                                         r"save_params\(\.\.\., use_safetensors=True\) wrote "
                                         r"it\)$"):
        clf.load_params(f_params=path)


def test_load_params_of_a_table_as_history_says_what_it_is_without_advice_to_delete_it(
        tmp_path):
    """A history is JSON text, so a text file given as f_history had been called damaged,
    with the advice to delete it, when it was no history at all (a table); a history cut
    short is still called damaged."""
    X, y = offset_subjects(np.tile([0.0, 1.0], 2)), np.tile([0, 1], 2)
    clf = BrainJEPAClassifier(tiny_module(), **fast(max_epochs=1)).fit(X, y)
    (tmp_path / "table.csv").write_text("epoch,loss\n1,0.5\n")
    with pytest.raises(ValueError, match=r"table\.csv \(f_history\): it is a text file .* not "
                                         r"a file that save_params\(\.\.\., f_history=\) "
                                         r"wrote$"):
        clf.load_params(f_history=tmp_path / "table.csv")
    clf.save_params(f_history=tmp_path / "history.json")
    history = (tmp_path / "history.json").read_text()
    (tmp_path / "history.json").write_text(history[:len(history) // 2])
    with pytest.raises(ValueError, match=r"history\.json \(f_history\): .* damaged"):
        clf.load_params(f_history=tmp_path / "history.json")

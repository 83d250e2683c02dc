"""The skorch pieces of the fine-tuning estimators: subjects' windows as skorch sees them.

- :class:`SubjectWindows`, the skorch ``Dataset`` of training windows that remembers each
  window's subject, and ``WindowArray``, its ``X`` (windows read from files when indexed);
- :class:`SubjectValidSplit`, a ``train_split`` that holds out whole subjects;
- :class:`WarmupCosineLR`, the per-batch learning-rate schedule as a skorch callback;
- ``layer_groups_setter``, skorch's ``optimizer__*`` setter that keeps the layer-wise groups;
- ``run_fingerprint`` and ``check_resumed_run``: the data and settings a ``Checkpoint`` saves
  a run's files with, checked when a fit resumes from them; ``check_saved_together``: the
  digests of the files it saved, which tell files of two saves apart.

:mod:`brainjepa_sk.finetune` builds the estimators from them; the public names are reachable
from there.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import hashlib
import json
import math
import numbers
import os
import pickle
import re
import struct
import types
import warnings
from pathlib import Path, PurePath

import numpy as np
import torch
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import make_constraint
from sklearn.utils.multiclass import type_of_target
from skorch.callbacks import (
    BatchScoring,
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochScoring,
    LoadInitState,
    LRScheduler,
    PassthroughScoring,
    TrainEndCheckpoint,
)
from skorch.dataset import Dataset
from skorch.setter import optimizer_setter
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import Subset

from ._warnings import catch_warnings, warn_user
from .files import is_path
from .nn._checks import type_with_article
from .train.runs import run_key
from .train.runtime import (
    SAFETENSORS_KIND,
    expand_home,
    foreign_file_kind,
    load_file,
    move_into_place,
    naming_save_errors,
    python_values,
    temporary_file_beside,
    tensor_checksum,
)
from .train.schedule import warmup_cosine
from .validation import subjects_digest

__all__ = ["SubjectValidSplit", "SubjectWindows", "WarmupCosineLR"]


class WindowArray:
    """Training windows, indexed like an array along the first axis.

    An integer gives one window as an array (read then, for windows read from files); an
    index array, list or slice gives another ``WindowArray`` over those windows. skorch takes
    the subsets of a dataset's ``X`` this way (scoring without its cache). Being of this type
    is what tells ``predict`` that it is given windows (skorch's scoring during ``fit``)
    rather than subjects.

    Parameters
    ----------
    windows : numpy.ndarray or sequence of torch.Tensor
        ``(n_windows, n_frames, n_regions)`` windows, in memory or read when indexed.
    n_frames, n_regions : int
        The shape of one window.
    positions : numpy.ndarray, optional
        Which of ``windows`` this array holds, in order (all of them by default).
    """

    def __init__(self, windows, n_frames, n_regions, positions=None):
        self.windows = windows
        self.positions = np.arange(len(windows)) if positions is None else positions
        self.shape = (len(self.positions), int(n_frames), int(n_regions))

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, tuple):  # array[key, ...]
            key = key[0]
        if isinstance(key, torch.Tensor):
            key = key.numpy()
        if np.ndim(key) == 0 and not isinstance(key, slice):
            window = self.windows[int(self.positions[int(key)])]
            return window.numpy() if isinstance(window, torch.Tensor) else window
        return WindowArray(self.windows, *self.shape[1:], positions=self.positions[key])


class SubjectWindows(Dataset):
    """skorch ``Dataset`` of windows that remembers which subject each window came from.

    Parameters
    ----------
    X : numpy.ndarray or object indexed like one
        ``(n_windows, n_frames, n_regions)`` float32 windows (files give windows read when
        indexed).
    y : numpy.ndarray
        One target per window (its subject's).
    subject_index : numpy.ndarray
        ``(n_windows,)`` index of each window's subject.
    """

    def __init__(self, X, y, subject_index):
        super().__init__(X, y, length=len(y))
        self.subject_index = np.asarray(subject_index)
        if not len(X) == len(y) == len(self.subject_index):
            raise ValueError(f"{len(X)} windows, {len(y)} targets and "
                             f"{len(self.subject_index)} subject indices")


def targets_of(dataset):
    """The targets of a ``SubjectWindows`` or of a ``Subset`` of one."""
    if isinstance(dataset, Subset):
        return np.asarray(targets_of(dataset.dataset))[np.asarray(dataset.indices)]
    return np.asarray(dataset.y)


def layer_groups_setter(net, param, value):
    """skorch's ``optimizer__*`` setter, except that the parameter groups keep their layer-wise
    learning rates (``optimizer__lr`` and ``lr`` are scaled by each group's ``"lr_scale"``)
    and ``optimizer__weight_decay`` leaves the groups without weight decay (biases and norms)
    alone.

    Unlike skorch's own setter, every value is also stored on the net, so that ``get_params``
    (hence ``clone``, a grid search, a refit) and the schedule's peak see it, as they see one
    given to the constructor (except skorch's ``optimizer__param_groups__*``, which only
    change the live optimizer's groups)."""
    constraints = getattr(type(net), "_parameter_constraints", {}).get("lr")
    if (param in ("lr", "optimizer__lr") and constraints is not None
            and not any(make_constraint(c).is_satisfied_by(value) for c in constraints)):
        # kept for fit to refuse, naming it (as for an unfitted net), the live optimizer left
        # alone: its groups took lr="1e-3" with Python's "can't multiply sequence by non-int
        # of type 'float'"
        setattr(net, param, value)
        if param != "lr":
            net._params_to_validate.add(param)
        return
    if not param.startswith("optimizer__param_groups__"):
        setattr(net, param, value)
        if param != "lr":
            net._params_to_validate.add(param)
    value = python_values(value)
    if param in ("lr", "optimizer__lr"):
        for group in net.optimizer_.param_groups:
            group["lr"] = value * group.get("lr_scale", 1.0)
        return
    if param == "optimizer__weight_decay":
        for group in net.optimizer_.param_groups:
            if not group.get("no_weight_decay", False):
                group["weight_decay"] = value
        return
    optimizer_setter(net, param, value, optimizer_attr="optimizer_", optimizer_name="optimizer")


class SubjectValidSplit:
    """skorch ``train_split`` that holds out whole subjects, with all their windows.

    skorch's own ``ValidSplit`` splits windows, so windows of one subject would land on both
    sides and the validation score would be optimistic. Use this one with early stopping.
    The held-out subjects are drawn before ``fit`` learns anything from the data: the
    regressor's target scaling and robust-scaling statistics come from the training subjects
    only.

    Subjects that are not independent (a family's, a site's, or several scans of one
    participant passed as separate subjects) are held out together when the estimator's
    ``fit`` is given their ``groups`` (one ID per subject): ``fraction`` is then the fraction
    of the groups held out, as in scikit-learn's ``GroupShuffleSplit``, and
    ``stratified=True`` is refused.

    Parameters
    ----------
    fraction : float, default=0.2
        Fraction of the subjects held out for validation.
    stratified : bool, default=False
        Keep the label proportions (classification). Without it a rare class's subjects may
        all be held out; the fine-tuning classifier then warns that it trains on none of them.
    random_state : int, RandomState instance or None, default=None
        Seed of the split. None: the fine-tuning estimator's ``random_state`` decides it (so
        ``random_state=0`` on the estimator gives the same split and the same early stop on
        every run); with the estimator's ``random_state=None`` too, or called by skorch
        directly, NumPy's global generator does, and the split changes from run to run.

    Examples
    --------
    >>> from skorch.callbacks import EarlyStopping
    >>> from brainjepa_sk import BrainJEPAClassifier
    >>> from brainjepa_sk.finetune import SubjectValidSplit
    >>> clf = BrainJEPAClassifier(train_split=SubjectValidSplit(0.2, stratified=True,
    ...                                                         random_state=0),
    ...                           callbacks=[EarlyStopping(patience=5, load_best=True)])
    """

    def __init__(self, fraction=0.2, stratified=False, random_state=None):
        self.fraction = fraction
        self.stratified = stratified
        self.random_state = random_state

    def __repr__(self):
        return (f"SubjectValidSplit(fraction={self.fraction!r}, stratified={self.stratified!r}, "
                f"random_state={self.random_state!r})")

    def get_params(self, deep=True):
        """The split's parameters, as scikit-learn's ``get_params``: a fine-tuning estimator
        lists them as ``train_split__fraction``, ... (for ``set_params`` and grid search).

        Parameters
        ----------
        deep : bool, default=True
            Ignored (the parameters hold no estimators).

        Returns
        -------
        dict
            ``fraction``, ``stratified`` and ``random_state``.
        """
        return {"fraction": self.fraction, "stratified": self.stratified,
                "random_state": self.random_state}

    def set_params(self, **params):
        """Set parameters, as scikit-learn's ``set_params`` (the fine-tuning estimators'
        ``set_params(train_split__fraction=0.3)`` calls it).

        Parameters
        ----------
        **params : dict
            ``fraction``, ``stratified`` or ``random_state`` and their values.

        Returns
        -------
        self
            The split.

        Raises
        ------
        ValueError
            For another name (no parameter is then set).
        """
        valid = self.get_params()
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no parameter(s) {', '.join(map(repr, unknown))} "
                f"(given {', '.join(f'{key}={params[key]!r}' for key in unknown)}); its "
                f"parameters are {', '.join(valid)}")
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def __sklearn_clone__(self):
        # a copy, as scikit-learn's clone made before the split had get_params: a subclass's
        # settings of its own are kept
        return copy.deepcopy(self)

    def split_subjects(self, labels, groups=None):
        """Draw the held-out subjects.

        Parameters
        ----------
        labels : numpy.ndarray of shape (n_subjects,) or (n_subjects, n_targets)
            One target per subject (used only with ``stratified=True``).
        groups : array-like of shape (n_subjects,), optional
            One group ID per subject (a family, a site, a participant): the subjects of a
            group are held out together, a ``fraction`` of the groups.

        Returns
        -------
        train, valid : numpy.ndarray
            Indices of the training and validation subjects.

        Raises
        ------
        ValueError
            When ``fraction`` is not a number in (0, 1), ``random_state`` cannot seed a
            ``RandomState``, ``stratified=True`` is given continuous targets or ``groups``,
            ``groups`` are not one ID per subject (or mix IDs that cannot be sorted, text
            and numbers), or the subjects cannot be split so (e.g. fewer validation subjects
            than classes).
        """
        if not (isinstance(self.fraction, numbers.Real) and 0.0 < self.fraction < 1.0):
            # skorch's ValidSplit(5) means 5 folds: say that this one takes a fraction only
            folds = (f" (a fraction of the subjects, such as {1 / self.fraction:.2g}; "
                     f"skorch's ValidSplit({self.fraction}) holds out one of {self.fraction} "
                     f"folds, which is a fraction of 1/{self.fraction})"
                     if isinstance(self.fraction, numbers.Integral)
                     and not isinstance(self.fraction, bool) and self.fraction >= 2 else "")
            raise ValueError(f"SubjectValidSplit's fraction must be in (0, 1), got "
                             f"{self.fraction!r}{folds}")
        try:
            check_random_state(self.random_state)
        except ValueError:
            # (the split's own error would have blamed the fraction or the subjects)
            raise ValueError(
                f"SubjectValidSplit's random_state must be an int in [0, 2**32 - 1], a "
                f"numpy.random.RandomState or None, got {self.random_state!r}") from None
        labels = np.asarray(labels)
        if self.stratified and type_of_target(labels).startswith("continuous"):
            raise ValueError(f"{self._given()}: stratified=True needs class labels, but the "
                             "targets are continuous (a regressor); use stratified=False")
        if groups is not None:
            groups = self._check_groups(groups, len(labels))
            splitter = GroupShuffleSplit
        else:
            splitter = StratifiedShuffleSplit if self.stratified else ShuffleSplit
        cv = splitter(n_splits=1, test_size=float(self.fraction), random_state=self.random_state)
        try:
            return next(cv.split(np.zeros(len(labels)), labels, groups))
        except ValueError as error:  # e.g. fewer validation subjects than classes
            raise ValueError(f"{self._given()} cannot split {len(labels)} subjects: "
                             f"{str(error).rstrip('.')}. {self._split_advice(labels, groups)}"
                             ) from error

    def _check_groups(self, groups, n_subjects):
        """``groups`` as a 1-D array of one ID per subject, or a clear error."""
        import pandas as pd  # (imported here: this module loads without pandas until used)

        if self.stratified:
            raise ValueError(f"{self._given()} was given groups, but a stratified split by "
                             "groups is not supported: pass stratified=False to hold out whole "
                             "groups, or no groups to stratify the subjects")
        array = np.asarray(groups, dtype=object)
        if array.ndim != 1 or len(array) != n_subjects:
            raise ValueError(f"groups has shape {array.shape}, but fit was given {n_subjects} "
                             "subjects: pass one group ID (a family, site or participant) per "
                             "subject of X, in X's order")
        missing = np.flatnonzero(np.asarray(pd.isna(array), dtype=bool))
        if missing.size:
            raise ValueError(f"groups has a missing ID (NaN or None) for {missing.size} "
                             f"subject(s), first subject {missing[0]}: give every subject a "
                             "group (a subject of its own: an ID no other subject has)")
        try:
            np.unique(array)  # as GroupShuffleSplit sorts them
        except TypeError:  # NumPy's "'<' not supported between instances of 'int' and 'str'"
            text = [isinstance(group, str) for group in array]
            other = next((i for i, is_text in enumerate(text) if is_text != text[0]), None)
            named = ("" if other is None else
                     f" (subject 0 is {array[0]!r}, subject {other} is {array[other]!r})")
            raise ValueError(
                f"groups mixes IDs of several kinds{named}, which cannot be sorted: give IDs "
                "of one kind, e.g. numpy.asarray(groups).astype(str)") from None
        return np.asarray(groups)

    def _given(self):
        """The split as the user gave it: a copy seeded by the estimator's ``random_state``
        (or drawn for a fit without one) is named without that seed."""
        return self.__dict__.get("_given_as_", repr(self))

    def _split_advice(self, labels, groups=None):
        """What would make a split of these subjects possible, in the order in which the
        splitters check (a larger fraction cannot help a split that leaves no subject to
        train on)."""
        if groups is not None:
            n_groups = len(np.unique(groups))
            if n_groups < 2:
                return ("A split by groups needs 2 groups at least: give more groups, or train "
                        "on every subject with train_split=None")
            return (f"The {n_groups} groups cannot be split so: choose a fraction that holds "
                    "out at least one group and leaves one to train on")
        n_valid = math.ceil(float(self.fraction) * len(labels))  # as ShuffleSplit rounds
        n_train = len(labels) - n_valid
        n_classes = min_count = None
        if self.stratified:  # rows of several targets are one class each, as in scikit-learn
            rows = [" ".join(row.astype(str)) for row in labels.reshape(len(labels), -1)]
            counts = np.unique(rows, return_counts=True)[1]
            n_classes, min_count = len(counts), counts.min()
        if len(labels) < 2:
            return ("A split needs 2 subjects at least: give more subjects, or train on this one "
                    "with train_split=None")
        if min_count is not None and min_count < 2:
            return ("Give every class at least 2 subjects (one to train on, one to hold out), "
                    "or pass stratified=False")
        if n_train < max(1, n_classes or 0):
            return (f"fraction={self.fraction!r} holds out {n_valid} of {len(labels)} subjects, "
                    "too few left to train on: hold out a smaller fraction of the subjects, or "
                    "give more subjects")
        return "Hold out a larger fraction of the subjects, or give more subjects"

    def __call__(self, dataset, y=None, groups=None):
        """Split a ``SubjectWindows`` into training and validation ``Subset``\\ s.

        The fine-tuning estimators do not call this: their ``fit`` draws once with
        :meth:`split_subjects` on the subjects' labels, before learning any statistics.

        Parameters
        ----------
        dataset : SubjectWindows
            The windows of the subjects passed to ``fit``.
        y
            Ignored (skorch passes it); the targets are the dataset's.
        groups : None
            Refused: the estimators' ``fit`` takes the subjects' ``groups``.

        Returns
        -------
        train, valid : torch.utils.data.Subset
            The windows of the training and of the held-out subjects.

        Raises
        ------
        TypeError
            When ``dataset`` is not the windows of a fine-tuning estimator (skorch's nets of
            one's own give other datasets).
        ValueError
            As :meth:`split_subjects`.
        """
        if not isinstance(dataset, SubjectWindows):
            raise TypeError("SubjectValidSplit splits the windows of BrainJEPA estimators only")
        if groups is not None:
            raise ValueError("SubjectValidSplit takes the subjects' groups from the estimator's "
                             "fit: pass fit(X, y, groups=groups), one group ID per subject")
        subjects, first_window = np.unique(dataset.subject_index, return_index=True)
        _, valid = self.split_subjects(np.asarray(dataset.y)[first_window])
        return split_windows(dataset, subjects[valid])


def draws_subjects(train_split):
    """Whether ``train_split`` is a ``SubjectValidSplit`` that splits by ``split_subjects``
    (a subclass may split otherwise in its own ``__call__``)."""
    return (isinstance(train_split, SubjectValidSplit)
            and type(train_split).__call__ is SubjectValidSplit.__call__)


def validation_monitors(callbacks):
    """The callbacks among ``callbacks`` (skorch's ``(name, callback)`` pairs, initialized)
    that read a validation score at every epoch's end, with the key they read.

    A callback counts when it is skorch's ``EarlyStopping``, ``Checkpoint`` or an
    ``LRScheduler`` of ``ReduceLROnPlateau`` stepped per epoch (subclasses included), and its
    ``monitor`` is a history key that only validation windows give: the name of a scoring
    callback that scores them (skorch's ``valid_loss``, the classifier's ``valid_acc``, an
    ``EpochScoring`` of one's own), or that name with ``_best``. Other callbacks are not
    looked at: what their ``monitor`` means, if they have one, is theirs.

    Returns
    -------
    list of tuple
        ``(name, callback, key)`` for each such callback, in order.
    """
    validation = set()
    for _, callback in callbacks:
        if isinstance(callback, (BatchScoring, EpochScoring, PassthroughScoring)) and (
                not callback.on_train):
            # EpochScoring and BatchScoring derive name_ from their scoring when initialized
            name = getattr(callback, "name_", callback.name)
            validation |= {name, f"{name}_best"}
    found = []
    for name, callback in callbacks:
        if isinstance(callback, LRScheduler):
            policy = callback.policy
            if isinstance(policy, str):  # skorch takes torch's schedulers by name too
                policy = getattr(torch.optim.lr_scheduler, policy, None)
            reads = (callback.step_every == "epoch" and isinstance(policy, type)
                     and issubclass(policy, ReduceLROnPlateau))
        else:
            reads = isinstance(callback, (EarlyStopping, Checkpoint))
        monitor = getattr(callback, "monitor", None)
        if reads and isinstance(monitor, str) and monitor in validation:
            found.append((name, callback, monitor))
    return found


def restore_best_scores(net):
    """Give skorch's scoring callbacks the best scores of the history a resumed fit loaded.

    Each takes the score of the last epoch its ``<name>_best`` marks. skorch's
    ``EpochScoring`` reads them when training begins, but before ``LoadInitState`` (one's own
    callback, called after the default ones) has loaded the history, and its
    ``PassthroughScoring`` (``train_loss``, ``valid_loss``) never does: the first resumed epoch
    counted as the best, and a ``Checkpoint`` on ``"valid_loss_best"`` saved it over a better
    one.

    Parameters
    ----------
    net : BrainJEPAClassifier or BrainJEPARegressor
        The net, its history loaded.
    """
    for _, callback in net.callbacks_:
        if not isinstance(callback, (BatchScoring, EpochScoring, PassthroughScoring)):
            continue
        name = getattr(callback, "name_", callback.name)
        for record in reversed(net.history_):
            if record.get(f"{name}_best") is True and name in record:
                callback.best_score_ = record[name]
                break


def set_initial_rates(net):
    """Give the optimizer's parameter groups the ``"initial_lr"`` that torch's schedulers
    start from, where none has it: the schedule's peak (``optimizer__lr`` if set, else
    ``lr``) times the group's ``"lr_scale"``, as a new optimizer's groups start.

    skorch's ``LRScheduler`` builds its scheduler at the history's last epoch when a fit
    continues (``warm_start``, ``partial_fit``), which torch refuses (``KeyError: param
    'initial_lr' is not specified``) for an optimizer that no scheduler of torch's has
    stepped, such as one the built-in warm-up and cosine drove.

    Parameters
    ----------
    net : BrainJEPAClassifier or BrainJEPARegressor
        The net, fitted.
    """
    peak = python_values(_peak_lr(net))
    for group in net.optimizer_.param_groups:
        group.setdefault("initial_lr", peak * group.get("lr_scale", 1.0))


def restore_lr_schedulers(net, extra_batches=0):
    """Put skorch's ``LRScheduler`` callbacks at the step the history a fit loaded had left
    them at.

    ``LRScheduler`` builds its torch scheduler when training begins, from the history it
    finds then: before ``LoadInitState`` (listed after it) loads one, so a resumed run's
    schedule started again from its first epoch (``LambdaLR``, ``OneCycleLR``) over the
    loaded optimizer's rates. Each is built anew from the groups' initial rates and stepped
    through the loaded epochs (its ``step_every="batch"``: their training batches),
    ``ReduceLROnPlateau`` given the scores its ``monitor`` recorded; the loaded rates are
    then kept. One with a callable ``monitor``, or a ``ReduceLROnPlateau`` stepped every
    batch, is left as it was (its scores are not in the history).

    Parameters
    ----------
    net : BrainJEPAClassifier or BrainJEPARegressor
        The net, its history and optimizer loaded.
    extra_batches : int, default=0
        Training batches trained after the history's epochs (those of an epoch cut short
        that the fit resumes), which a scheduler stepping every batch steps through too.
    """
    history = net.history_
    for _, callback in net.callbacks_:
        if (not isinstance(callback, LRScheduler)
                or getattr(callback, "lr_scheduler_", None) is None
                or "last_epoch" in callback.kwargs):  # a start of the user's own
            continue
        plateau = issubclass(callback.policy_, ReduceLROnPlateau)
        by_batch = callback.step_every == "batch"
        if plateau and (by_batch or callable(callback.monitor)):
            continue
        groups = net.optimizer_.param_groups
        if not plateau and any("initial_lr" not in group for group in groups):
            continue  # not a schedule's optimizer: nothing to start from
        loaded = [group["lr"] for group in groups]
        n_batches = extra_batches + sum(
            record.get("train_batch_count", len(record.get("batches", [])))
            for record in history)
        if not plateau:
            for group in groups:
                group["lr"] = group["initial_lr"]
        with catch_warnings():
            # torch's warning that the scheduler steps before the optimizer: it replays them
            warnings.simplefilter("ignore", UserWarning)
            scheduler = callback._get_scheduler(
                net, callback.policy_, **callback.kwargs,
                **({} if plateau else {"last_epoch": -1}))
            for step in range(n_batches if by_batch else len(history)):
                if plateau:
                    if callback.monitor not in history[step]:
                        break
                    scheduler.step(history[step][callback.monitor])
                else:
                    scheduler.step()
        for group, rate in zip(groups, loaded):
            group["lr"] = rate
        scheduler._last_lr = list(loaded)
        callback.lr_scheduler_ = scheduler
        callback.batch_idx_ = n_batches


def restore_early_stopping(net):
    """Give skorch's ``EarlyStopping`` callbacks the patience and best score the history a
    resumed fit loaded had left them with, and say whether one had stopped that run.

    ``EarlyStopping`` keeps them only in itself, counting afresh when training begins: a resumed
    run stopped later than the uninterrupted one, and a run it had stopped, fitted again, was
    trained on (its first resumed epoch counted as an improvement). Its epochs are replayed as
    its ``on_epoch_end`` saw them.

    With ``load_best=True`` it also keeps a copy of the best epoch's weights in memory, which
    it loads back when training ends: a resumed run whose best epoch was among the loaded ones
    ended with the last epoch's weights, not the best's as the uninterrupted run does. The
    copy is read back from the params file of a ``Checkpoint`` (of the net's callbacks, or the
    one ``LoadInitState`` loads) that saved that epoch and did not write the same file later in
    the loaded history (one saving every epoch, at the epoch the run was interrupted; one on
    the monitor's best, such as ``monitor="valid_loss_best"`` for ``EarlyStopping``'s
    ``"valid_loss"``; one whose file names hold the epoch, ``params_{last_epoch[epoch]}.pt``);
    a copy of one (sklearn's ``clone`` gives ``LoadInitState`` its own) is the same one, and
    the save at the last loaded epoch of one listed after the ``Checkpoint`` whose history was
    loaded, which that history does not record, is told from its monitor. Without one (or with its
    file deleted) it warns that the run may end with the last epoch's weights.

    Parameters
    ----------
    net : BrainJEPAClassifier or BrainJEPARegressor
        The net, its history loaded.

    Returns
    -------
    int or None
        The epoch at which an ``EarlyStopping`` had stopped the run (the history's last), else
        None.
    """
    stopped = None
    for _, callback in net.callbacks_:
        if not isinstance(callback, EarlyStopping):
            continue
        for record in net.history_:
            if callback.monitor not in record:  # as on_epoch_end, which would have raised
                break
            if callback._is_score_improved(record[callback.monitor]):
                callback.misses_ = 0
                callback.dynamic_threshold_ = callback._calc_new_threshold(
                    record[callback.monitor])
                callback.best_epoch_ = record["epoch"]
            else:
                callback.misses_ += 1
        if callback.load_best and callback.best_epoch_ >= 1:
            _restore_best_weights(net, callback)
        # at its patience it stops the run; past it (a patience lowered since), it would have
        # (and, counting on with ==, would never stop again)
        if len(net.history_) and callback.misses_ >= callback.patience:
            stopped = net.history_[-1]["epoch"]
    return stopped


def _writes(checkpoint):
    """What decides which params files a ``Checkpoint`` writes, and at which epochs: two
    alike (sklearn's ``clone`` gives ``LoadInitState`` a copy of the net's) are one."""
    dirname = checkpoint.dirname
    return (checkpoint.event_name, checkpoint.monitor, checkpoint.fn_prefix, checkpoint.f_params,
            os.fspath(dirname) if isinstance(dirname, os.PathLike) else dirname)


def _checkpoint_of_epoch(net, epoch):
    """A ``Checkpoint`` (of the net's callbacks, or the one a ``LoadInitState`` loads) whose
    params file still holds ``epoch``'s weights in the loaded history, and that file; or
    ``(None, None)``.

    A file is the epoch's when the checkpoint saved at ``epoch`` and no later save of the
    loaded history wrote the same file: a fixed name (``params.pt``) holds its last save's
    weights, a name formatted per epoch (``params_{last_epoch[epoch]}.pt``) every save's.
    """
    checkpoints = []
    for _, callback in net.callbacks_:
        callback = callback.checkpoint if isinstance(callback, LoadInitState) else callback
        if isinstance(callback, Checkpoint) and all(_writes(callback) != _writes(c)
                                                    for c in checkpoints):
            checkpoints.append(callback)
    last = net.history_[-1]
    for checkpoint in checkpoints:
        event = checkpoint.event_name
        # two Checkpoints of one event_name record their saves under one key, each writing
        # over the other's: neither's saves can be told; one new to this fit recorded none
        if (checkpoint.f_params is None or event is None
                or sum(c.event_name == event for c in checkpoints) > 1
                or not any(event in record for record in net.history_)):
            continue
        saves = [i for i, record in enumerate(net.history_) if record.get(event) is True]
        if event not in last:
            # listed after the Checkpoint whose history was loaded, it decided at the last
            # epoch after that history was saved: skorch's decision, from its monitor
            monitor = checkpoint.monitor
            if isinstance(monitor, str) and monitor in last:
                saved = bool(last[monitor])
            elif monitor is None:
                saved = True
            else:  # a callable's decision cannot be told
                continue
            saves += [len(net.history_) - 1] if saved else []
        at_epoch = [i for i in saves if net.history_[i]["epoch"] == epoch]
        if not at_epoch:
            continue
        try:
            # skorch's own formatting of the file name, as of the save at that history row
            names = {i: checkpoint._format_target(net, checkpoint.f_params, i) for i in saves}
        except (KeyError, IndexError, AttributeError):  # a template the history cannot fill
            continue
        name = names[at_epoch[-1]]
        if all(names[i] != name for i in saves if i > at_epoch[-1]):
            return checkpoint, name
    return None, None


def _restore_best_weights(net, callback):
    """Give ``EarlyStopping(load_best=True)`` the copy of its best epoch's weights (the
    loaded history's) that it would have kept in memory, from a checkpoint's params file."""
    epoch = callback.best_epoch_
    checkpoint, f_params = _checkpoint_of_epoch(net, epoch)
    if checkpoint is not None:
        kept = copy.deepcopy(net.module_.state_dict())
        try:
            # the net's own loading: the file's format (use_safetensors), device and
            # compiled module
            net.load_params(f_params=f_params, use_safetensors=checkpoint.use_safetensors)
        except FileNotFoundError:  # deleted since: as without one (the net is left as it was)
            checkpoint = None
        else:
            callback.best_model_weights_ = copy.deepcopy(net.module_.state_dict())
            net.module_.load_state_dict(kept)
    if checkpoint is None:
        warn_user(
            f"EarlyStopping(load_best=True) found its best {callback.monitor} at epoch {epoch} "
            "of the history loaded when fit began (skorch's LoadInitState), but the copy of "
            "that epoch's weights it kept in memory is lost and no Checkpoint's file still "
            "holds them: unless a later epoch is better, the run ends with its last "
            "epoch's weights, not the best's; add a Checkpoint on the monitor's best (e.g. "
            f"monitor='{callback.monitor}_best', with its own event_name) to keep them")


def split_windows(dataset, valid_subjects):
    """The training and validation ``Subset``\\ s of ``dataset`` (a ``SubjectWindows``)."""
    in_valid = np.isin(dataset.subject_index, valid_subjects)
    return (Subset(dataset, np.flatnonzero(~in_valid)),
            Subset(dataset, np.flatnonzero(in_valid)))


def _epochs_done(net):
    """The epochs of the run done before this call: those of the history a resumed ``fit``
    loaded (0 for any other call)."""
    return net.__dict__.get("_epochs_done_", 0)


def _peak_lr(net):
    """The schedule's peak: ``optimizer__lr`` if set, else ``lr``."""
    return net.get_params_for("optimizer").get("lr", net.lr)


class WarmupCosineLR(Callback):
    """Learning rate per batch: linear warm-up from 0, then cosine decay to ``min_lr``.

    The peak is the optimizer's learning rate (``optimizer__lr`` if set, else ``lr``); the
    callback reads it, ``min_lr``, ``warmup_epochs`` and ``max_epochs`` from the net at every
    call of ``fit`` (so ``set_params`` and grid search reach them), reaches ``min_lr`` at the
    last batch of ``max_epochs`` (of ``epochs`` when it is passed to ``fit`` or
    ``partial_fit``), and multiplies each parameter group's ``"lr_scale"`` (layer-wise decay)
    in. Every ``fit`` or ``partial_fit`` call runs the whole schedule over its own epochs, except
    a ``fit`` that resumes a run (its callbacks, skorch's ``LoadInitState``, loaded the run's
    history when training began): it goes on at the epoch that history ends, as the
    uninterrupted run would have. The rate of the epoch's last batch is recorded in the history
    as ``"lr"``.

    The fine-tuning estimators add it to skorch's callbacks as ``"lr_schedule"``:
    ``callbacks__lr_schedule=None`` turns it off (e.g. for a skorch ``LRScheduler``).

    It counts an epoch's training batches as ``len()`` of the training loader (skorch's
    ``iterator_train``), which it needs before the epoch's first batch: a loader without one
    is refused when the fit's first epoch begins, and one that yields another number of
    batches than its ``len()`` warns at the first epoch it does.
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Start counting this call's epochs (a resumed fit's go on after the loaded ones).

        Parameters
        ----------
        net : BrainJEPAClassifier or BrainJEPARegressor
            The net being trained.
        X, y : object, optional
            The training data (unused).
        **kwargs : dict
            Other arguments of skorch's hook (unused).

        Notes
        -----
        A ``min_lr`` above the peak rate warns: the cosine decay would raise the rate.
        """
        peak = _peak_lr(net)
        if net.min_lr > peak:
            warn_user(
                f"min_lr={net.min_lr} is above the peak learning rate {peak} (lr or "
                "optimizer__lr): the cosine decay raises the rate to min_lr instead of "
                "lowering it; set min_lr to at most the peak")
        self.epoch_ = 0
        self.miscounted_ = False  # warned that the loader's len is not what it yields

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Count the epoch's training batches (from the net's training loader).

        At the first epoch, a ``warmup_epochs`` as long as the fit's epochs or longer warns:
        the rate would never reach its peak.

        Parameters
        ----------
        net : BrainJEPAClassifier or BrainJEPARegressor
            The net being trained.
        dataset_train : torch.utils.data.Dataset
            The training windows of this epoch.
        dataset_valid : torch.utils.data.Dataset, optional
            The validation windows (unused).
        **kwargs : dict
            Other arguments of skorch's hook (unused).

        Raises
        ------
        TypeError
            When the training loader has no ``len()`` (a loader class of one's own without
            ``__len__``, or a ``DataLoader`` whose sampler has none), before any batch trains.
        """
        # the training loader's own count: drop_last, batch_size=-1 or a sampler included
        loader = net.get_iterator(dataset_train, training=True)
        try:
            self.loader_batches_ = len(loader)
        except TypeError as error:  # no __len__, or a DataLoader whose sampler has none
            raise TypeError(
                f"the warm-up and cosine learning-rate schedule (callbacks__lr_schedule) sets "
                f"each training batch's rate from the training batches per epoch, which it "
                f"takes from len() of the training loader, but iterator_train gave "
                f"{type_with_article(loader)} without a len() ({error}): give the loader a "
                "__len__ that returns the batches it yields per epoch, or turn the schedule "
                "off with callbacks__lr_schedule=None (e.g. for a skorch LRScheduler of your "
                "own)") from error
        self.batches_per_epoch_ = max(1, self.loader_batches_)
        # a resumed epoch cut short goes on after the batches it had trained (the net skips
        # them), whose last rate is the epoch's "lr" should it train no other
        self.batch_ = net.__dict__.get("_skip_batches_", 0)
        if self.batch_:
            self.lr_ = self._rate(net, self.batch_ - 1)
        epochs = net.__dict__.get("_epochs_run_", net.max_epochs)  # known once the loop runs
        if (self.epoch_ == 0 and _epochs_done(net) == 0 and net.warmup_epochs > 0
                and net.warmup_epochs >= epochs):
            warn_user(
                f"warmup_epochs={net.warmup_epochs} is not less than the {epochs} epoch(s) of "
                f"this fit: the rate rises for the whole fit and never reaches its peak "
                f"{_peak_lr(net)}")

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        """Set every parameter group's learning rate for this training batch.

        The rate is the schedule's, times the group's ``"lr_scale"`` (1 if it has none).
        Validation batches are left alone.

        Parameters
        ----------
        net : BrainJEPAClassifier or BrainJEPARegressor
            The net being trained.
        batch : object, optional
            The batch (unused).
        training : bool, default=False
            Whether the batch is a training batch.
        **kwargs : dict
            Other arguments of skorch's hook (unused).
        """
        if not training:
            return
        self.lr_ = self._rate(net, self.batch_)
        for group in net.optimizer_.param_groups:
            group["lr"] = self.lr_ * group.get("lr_scale", 1.0)
        self.batch_ += 1

    def _rate(self, net, batch):
        """The schedule's rate at training batch ``batch`` (from 0) of this call's epoch."""
        per_epoch = self.batches_per_epoch_
        # the last step's index as the schedule's length: min_lr is reached at the last batch
        return warmup_cosine(
            (_epochs_done(net) + self.epoch_) * per_epoch + batch,
            net.__dict__.get("_epochs_run_", net.max_epochs) * per_epoch - 1,
            round(net.warmup_epochs * per_epoch), 0.0, _peak_lr(net), net.min_lr,
        )

    def on_epoch_end(self, net, **kwargs):
        """Move to the next epoch; record the last batch's rate as ``"lr"`` in the history.

        The first epoch of the fit whose training batches are not as many as the training
        loader's ``len()`` warns: the rates were placed by that count.

        Parameters
        ----------
        net : BrainJEPAClassifier or BrainJEPARegressor
            The net being trained.
        **kwargs : dict
            Other arguments of skorch's hook (unused).
        """
        if self.batch_ != self.loader_batches_ and not self.miscounted_:
            self.miscounted_ = True
            effect = ("the rate stops short of min_lr" if self.batch_ < self.loader_batches_
                      else "the batches past it take the rates of the next epoch's first ones")
            warn_user(
                f"the training loader's len() is {self.loader_batches_}, but it yielded "
                f"{self.batch_} training batch(es) in epoch {len(net.history)}: the warm-up and "
                f"cosine learning-rate schedule (callbacks__lr_schedule) places each batch's "
                f"rate by that len, so the rates of this fit do not follow it ({effect}); give "
                "the loader (iterator_train) a __len__ that returns the batches it yields per "
                "epoch")
        self.epoch_ += 1
        if hasattr(self, "lr_"):
            net.history.record("lr", self.lr_)


def is_windows(X, net):
    """Whether ``X`` is training windows: skorch's own scoring during ``fit`` passes them back
    (as a dataset, or as its ``WindowArray`` when it does not cache the forward pass, or, in
    ``BatchScoring``, as the batch's own tensor, which the net notes while its callbacks see
    the batch's end), or a ``Subset`` of them, however nested (a split of one's own may subset
    skorch's). Anything else, even during ``fit`` (e.g. a tensor of subjects from a
    callback), is subjects."""
    if isinstance(X, torch.Tensor):
        return X is net.__dict__.get("_batch_windows_")
    while isinstance(X, Subset):  # a split of one's own may take a subset of a subset
        X = X.dataset
    return isinstance(X, (WindowArray, SubjectWindows))


#: Inside ``saving_together``: the (temporary file, target) pairs of its saves, moved into
#: place when it ends, and the first save that failed (None outside it).
_SAVED_TOGETHER = contextvars.ContextVar("saved_together", default=None)


@contextlib.contextmanager
def saving_together():
    """Move the files :func:`save_params_atomically` writes inside the block into place
    together, once the block ends; an error, or a save that failed inside it, leaves every
    previous file.

    skorch's ``Checkpoint`` saves the weights, the optimizer, the criterion and the history
    one call at a time: a kill between them had left new weights beside the previous epoch's
    history, which ``LoadInitState`` loads as a run other than the one saved. It also
    catches a save's error (printed only with ``verbose``) and goes on with the other files:
    such a failure is warned about here, and none of the block's files is moved into place.
    The renames at the end are one at a time: the run file, moved first, records the digests
    that tell the files of a save cut off between two renames apart (see
    :func:`save_run_fingerprint`).

    Yields
    ------
    dict
        The block's saves: ``"renames"``, the (temporary file, target) pairs written so far,
        and ``"pickles"``, those of the nets pickled (:func:`pickling_atomically`), moved into
        place after them: no resume loads them, so the run file does not record them.
    """
    group = {"renames": [], "pickles": [], "failed": None}
    token = _SAVED_TOGETHER.set(group)
    try:
        yield group
        _SAVED_TOGETHER.reset(token)
        token = None
        if group["failed"] is not None:
            targets = [group["failed_target"],
                       *(target for _, target in [*group["renames"], *group["pickles"]])]
            # a first save that fails (a folder one cannot write to) leaves nothing to resume
            kept = ("the previous ones are kept, whole"
                    if any(os.path.exists(target) for target in targets) else
                    "none was saved before, so there is no checkpoint to resume from yet")
            warn_user(f"{group['failed']}; the files saved with it (skorch's Checkpoint goes "
                      f"on after such an error) are not written either: {kept}")
            return
        for part, target in [*group["renames"], *group["pickles"]]:
            with naming_save_errors(target):
                move_into_place(part, target)
    finally:
        if token is not None:
            _SAVED_TOGETHER.reset(token)
        for part, _ in [*group["renames"], *group["pickles"]]:
            if os.path.exists(part):
                os.remove(part)


def _note_failed_save(group, target, error):
    """Record in a :func:`saving_together` block's ``group`` the first save that failed."""
    if group["failed"] is None:
        group["failed"] = (str(error) if str(target) in str(error) else
                           f"could not save {target}: {type(error).__name__}: {error}")
        group["failed_target"] = target


def save_params_atomically(save_params, files, **options):
    """Call skorch's ``save_params`` with every path in ``files`` swapped for a temporary file
    beside it, then rename each over its target.

    skorch writes in place: a kill during a save (e.g. by its ``Checkpoint`` at the end of an
    epoch) would leave the only copy cut short. Here each file is written and moved into
    place as :func:`~brainjepa_sk.train.runtime.atomic_save` does (the previous file stays
    until the new one is whole and on the disk; it gets the umask's permissions; temporary
    files left by killed saves are removed; its folder is created if needed). A path starting
    with ``~`` starts in the home folder, as everywhere in the package (skorch would write it
    to a ``~`` folder in the working folder).

    Parameters
    ----------
    save_params : callable
        The net's own (skorch's) ``save_params``.
    files : dict
        skorch's ``f_*`` arguments: paths, file objects (written as given) or None.
    **options
        Other arguments of ``save_params`` (``use_safetensors``).

    Inside :func:`saving_together`, the files are moved into place when it ends.
    """
    renames, together = [], _SAVED_TOGETHER.get()
    try:
        # one file at a time, so that an error names the file it was writing
        for key, target in files.items():
            if target is None:
                continue
            if not is_path(target):
                save_params(**{key: target}, **options)
                continue
            target = expand_home(target)
            with naming_save_errors(target):
                # skorch's Checkpoint makes its dirname as written, not the home one of '~'
                target.parent.mkdir(parents=True, exist_ok=True)
                part = temporary_file_beside(target)
                renames.append((part, target))
                save_params(**{key: part}, **options)
        if together is not None:  # moved (or removed) with the others when the block ends
            together["renames"].extend(renames)
            renames = []
        for part, target in renames:
            with naming_save_errors(target):
                move_into_place(part, target)
    except Exception as error:
        if together is not None:
            _note_failed_save(together, target, error)
        raise
    finally:
        for part, _ in renames:
            if os.path.exists(part):
                os.remove(part)


class _PickleFile:
    """The file a ``Checkpoint`` pickles the net into in place of its ``f_pickle`` path,
    while :func:`pickling_atomically` lends it: the net is written to a temporary file beside
    the path's target, moved into place when the :func:`saving_together` block ends.

    Pickled with the net (the checkpoint is among the net's callbacks), it is pickled as the
    ``f_pickle`` path it stands for.
    """

    def __init__(self, checkpoint, net, f_pickle):
        self.checkpoint, self.net, self.f_pickle = checkpoint, net, f_pickle
        self._file = self._target = None

    def write(self, data):
        if self._file is None:
            self._open()
        with naming_save_errors(self._target):  # a full disk, say, named
            return self._file.write(data)

    def _open(self):
        # skorch's own formatting of the name, as it would have opened it ('~' the home)
        target = expand_home(self.checkpoint._format_target(self.net, self.f_pickle, -1))
        with naming_save_errors(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            part = temporary_file_beside(target)
            # moved into place with the block's files, or removed when the block fails
            _SAVED_TOGETHER.get()["pickles"].append((part, target))
            self._file, self._target = open(part, "wb"), target

    def flush(self):
        if self._file is not None:
            self._file.flush()

    def close(self):
        if self._file is not None:
            file, self._file = self._file, None
            with naming_save_errors(self._target):
                file.close()

    def __reduce__(self):
        return type(self.f_pickle), (os.fspath(self.f_pickle),)


@contextlib.contextmanager
def pickling_atomically(callback, net):
    """Inside the block, a skorch ``Checkpoint`` (or ``TrainEndCheckpoint``) that pickles the
    net to a path (``f_pickle``) writes it to a temporary file beside it, moved into place
    when the enclosing :func:`saving_together` block ends (one is opened if none is).

    skorch opens that path for writing and pickles the net into it: a kill, or an error
    while pickling, had left a cut-short pickle in place of the previous one. Its ``f_pickle``
    is swapped for a file object for the block (skorch writes into a file object as given)
    and given back at its end. A path starting with ``~`` starts in the home folder, as for
    the checkpoint's other files.

    Parameters
    ----------
    callback : skorch.callbacks.Callback
        The callback whose hook runs in the block; other callbacks are left alone.
    net : skorch.NeuralNet
        The net the hook is given.

    Yields
    ------
    None
        Inside the block, the hook.
    """
    checkpoint = (callback.__dict__.get("checkpoint_") if isinstance(callback, TrainEndCheckpoint)
                  else callback)
    # what skorch opens itself (a file object it writes into as given)
    if not (isinstance(checkpoint, Checkpoint) and checkpoint.f_pickle
            and isinstance(checkpoint.f_pickle, (str, Path))):
        yield
        return
    f_pickle = checkpoint.f_pickle
    with saving_together() if _SAVED_TOGETHER.get() is None else contextlib.nullcontext():
        checkpoint.f_pickle = _PickleFile(checkpoint, net, f_pickle)
        try:
            yield
        finally:
            checkpoint.f_pickle = f_pickle


def load_params_naming_files(load_params, files, **options):
    """Call skorch's ``load_params`` one file at a time, so that a failure names its file.

    A path starting with ``~`` starts in the home folder, as in :func:`save_params_atomically`.

    Parameters
    ----------
    load_params : callable
        The net's own (skorch's) ``load_params``.
    files : dict
        skorch's ``f_*`` arguments: paths, file objects or None (skipped).
    **options
        Other arguments of ``load_params`` (``use_safetensors``).

    Raises
    ------
    FileNotFoundError
        As skorch raises it (skorch's ``LoadInitState`` starts afresh on it).
    ValueError
        Naming the file, when it is damaged or holds the state of another model.
    """
    for key, path in files.items():
        if path is None:
            continue
        if is_path(path):
            path = expand_home(path)
            if os.path.isdir(path):  # not damaged: "delete it" would be no advice
                raise ValueError(f"could not load {os.fspath(path)} ({key}): it is a folder; "
                                 f"give the file that save_params(..., {key}=) wrote")
        try:
            with catch_warnings():
                # torch's weights-only reader on a pickle of another protocol (a pickled
                # estimator, refused below), as load_file silences it
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                load_params(**{key: path}, **options)
        except FileNotFoundError:
            raise
        # IndexError, struct.error and AssertionError: torch's legacy (not zip) reader on
        # some bytes that are no torch file (a text table, say)
        except (OSError, EOFError, RuntimeError, ValueError, KeyError, IndexError,
                struct.error, AssertionError, pickle.UnpicklingError) as error:
            name = os.fspath(path) if is_path(path) else f"the {key} file object"
            kind = (foreign_file_kind(path) if is_path(path)
                    and "Unsupported global" not in str(error) else None)
            if kind == SAFETENSORS_KIND:
                if not options.get("use_safetensors"):
                    # a file save_params(..., use_safetensors=True) wrote: not to be deleted
                    raise ValueError(
                        f"could not load {name} ({key}): it is a safetensors file; pass "
                        "use_safetensors=True to load it (as save_params(..., "
                        "use_safetensors=True) wrote it)") from error
                kind = None  # the format asked for: damaged, or of another model
            if kind is None and is_path(path) and key != "f_history":
                kind = _saved_model_kind(path)
            # (the history is JSON text, a list, which a damaged one still begins)
            if kind is not None and not (key == "f_history" and kind.startswith("a text")
                                         and _begins_a_json_list(path)):
                # a file of another kind given by mistake (the data, a pickled estimator):
                # not damaged, and not to be deleted
                raise ValueError(f"could not load {name} ({key}): it is {kind}, not a file "
                                 f"that save_params(..., {key}=) wrote") from error
            reason = (f"{type(error).__name__}: {error}; the file is damaged (cut short, say) or "
                      "holds the state of another model")
            if isinstance(error, pickle.UnpicklingError):
                # not torch's advice to load it unsafely, nor to file an issue with PyTorch
                reason = ("it holds Python objects other than tensors and plain values, which "
                          "are not loaded (loading them could run code)"
                          if "Unsupported global" in str(error) else
                          "it was not written by torch.save (save_params), or it is damaged")
            raise ValueError(
                f"could not load {name} ({key}): {reason}: delete it to start afresh"
            ) from error


def _begins_a_json_list(path):
    """Whether the text file ``path`` begins as a JSON list does (a skorch history)."""
    try:
        with open(path, "rb") as file:
            return file.read(512).lstrip()[:1] == b"["
    except OSError:  # gone since: said of a history
        return True


def _saved_model_kind(path):
    """What a torch file that ``load_params`` cannot read is, when it is a model the package
    saves otherwise (a user's model, given by mistake: not to be deleted); else None."""
    from .checkpoint import _RESEARCH_GLOBALS, _payload_kind  # only on this error path

    try:
        payload = load_file(path, map_location="meta", safe_globals=_RESEARCH_GLOBALS)
    except (OSError, ValueError):
        return None
    return {
        "ours": "a brainjepa_sk checkpoint (save_checkpoint, or an estimator's save(path))",
        "training_state": "a pretraining run's saved state (from its checkpoint_dir)",
        "research": "a research Brain-JEPA checkpoint",
        "research_fine_tuned": "a model that the research Brain-JEPA code fine-tuned",
    }.get(_payload_kind(payload))


#: Settings added after the first run files were written, with the value that trains as the
#: versions before them did: a run file without one recorded a run of that value.
_ADDED_SETTINGS = {"constant_regions": "error"}

#: The file beside a ``Checkpoint``'s (named with its ``fn_prefix``) that records the data and
#: settings of the run its files are of.
RUN_FILE = "run.json"

#: The parameters that do not shape the run a checkpoint saves: the epochs to train (a resume
#: may raise them), where and how it runs, what is printed or saved, and the validation loader.
_NOT_OF_THE_RUN = frozenset({
    "max_epochs", "verbose", "callbacks", "device", "compile", "data_dir", "warm_start",
    "use_caching", "torch_load_kwargs", "predict_nonlinearity", "iterator_valid",
    "iterator_train__num_workers", "iterator_train__pin_memory",
    "iterator_train__prefetch_factor", "iterator_train__timeout",
})
_NOT_OF_THE_RUN_PREFIXES = ("callbacks__", "compile__", "iterator_valid__")


def run_file(checkpoint):
    """The path of the run file of a skorch ``Checkpoint`` or ``TrainEndCheckpoint``: in its
    ``dirname``, named with its ``fn_prefix`` (``"~"`` starting in the home folder)."""
    return expand_home(os.path.join(os.fspath(checkpoint.dirname or ""),
                                    f"{checkpoint.fn_prefix}{RUN_FILE}"))


def _setting(value, depth=0):
    """A parameter's value as JSON can hold it, the same from one process to the next: a
    module as a digest of its weights, an array as a digest of its values, a class or a
    function by its name, a pandas table of numbers by a digest of its values, an object
    without a ``repr`` of its own (skorch's ``ValidSplit``) by its class and its attributes,
    another object by its ``repr`` without memory addresses."""
    if isinstance(value, torch.nn.Module):
        state = value.state_dict()
        # the architecture apart, so that a module of the same architecture with other values
        # (built anew at random in the resuming process) can be told from another model
        layout = {name: (type(value).__qualname__, str(tensor.dtype), list(tensor.shape))
                  for name, tensor in state.items()}
        return {"module": run_key(layout), "weights": tensor_checksum(state)}
    if isinstance(value, torch.Tensor):
        return {"tensor": tensor_checksum(value)}
    if isinstance(value, np.ndarray):
        return {"array": run_key(None, arrays=[value])}
    if isinstance(value, np.generic):
        return python_values(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_setting(item, depth) for item in value]
    if isinstance(value, dict):
        return {str(key): _setting(item, depth) for key, item in value.items()}
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return f"{value.__module__}.{value.__qualname__}"
    if hasattr(value, "to_numpy") and hasattr(value, "shape"):
        # a pandas table (gradients) by its values: its repr leaves out the middle rows
        values = np.asarray(value.to_numpy())
        if values.dtype.kind in "biuf":
            return {"array": run_key(None, arrays=[values.astype(np.float64)])}
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))
    attributes = getattr(value, "__dict__", None)
    if (text == f"<{type(value).__module__}.{type(value).__qualname__} object>"
            and isinstance(attributes, dict) and depth < 2):
        # its repr names only its class: ValidSplit(0.2) and ValidSplit(0.3) were one setting
        return {"class": _setting(type(value)),
                "attributes": {str(key): _setting(item, depth + 1)
                               for key, item in attributes.items()}}
    return text


def run_fingerprint(net, subjects, y, held_out):
    """What a fit's checkpoints record of its run, to be checked when a fit resumes from them.

    Parameters
    ----------
    net : BrainJEPAClassifier or BrainJEPARegressor
        The net being fitted.
    subjects : list of numpy.ndarray or SubjectFiles
        The validated subjects passed to ``fit``.
    y : array-like
        Their targets as given (not as encoded: a regressor's standardized targets are the
        same for ``y`` and ``y + 1``).
    held_out : numpy.ndarray or None
        The indices of the subjects its ``SubjectValidSplit`` held out, if it drew them.

    Returns
    -------
    dict
        ``"subjects"``: a digest of the subjects and their targets;
        ``"held_out"``: a digest of the held-out subjects (or None); ``"settings"``: the
        parameters that shape the training (not ``max_epochs``, ``verbose``, ``callbacks``,
        ``device``, ``compile``, ...), as JSON values; a split with ``get_params`` (a
        ``SubjectValidSplit``) as its class and its ``train_split__*`` parameters.
    """
    y = np.asarray(y)
    # numbers by their values (labels 1 and 1.0 are one), other labels by their text
    numeric = y.dtype.kind in "biuf"
    labels = None if numeric else [str(label) for label in y.ravel().tolist()]
    params = net.get_params(deep=False)
    split = params.get("train_split")
    if hasattr(split, "get_params") and not isinstance(split, type):
        # the split by its class and its parameters one by one, as set_params takes them
        # (train_split__fraction): a refusal names the one that differs (its repr, cut
        # short, had shown the same text then and now for another random_state)
        params.update({"train_split": type(split),
                       **{f"train_split__{name}": value
                          for name, value in split.get_params(deep=False).items()}})
    settings = {name: _setting(value) for name, value in params.items()
                if name not in _NOT_OF_THE_RUN and not name.startswith(_NOT_OF_THE_RUN_PREFIXES)
                and not name.startswith("_")}  # (scikit-learn's own, e.g. its callback context)
    return {
        "subjects": run_key({"labels": labels, "shape": list(y.shape)},
                            digests=[subjects_digest(subjects)],
                            arrays=[y.astype(np.float64)] if numeric else []),
        "held_out": None if held_out is None else run_key(None, arrays=[np.asarray(held_out)]),
        # as the file gives them back (tuples as lists)
        "settings": json.loads(json.dumps(settings)),
    }


def _file_digest(path):
    """The SHA-256 of a file's bytes (hex), read in chunks (hashlib.file_digest is 3.11's)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _name_in(folder, path):
    """``path`` as the run file in ``folder`` records it: relative to the folder, so that a
    moved or copied folder is checked as it was saved, in POSIX form (``/`` between folders,
    on Windows too), so that a folder saved on one system is checked on another."""
    path = os.path.abspath(path)
    try:
        name = os.path.relpath(path, os.path.abspath(folder))
    except ValueError:  # on another drive than the folder (Windows): by its absolute path
        name = path
    return PurePath(name).as_posix()


def _recorded(names):
    """A run file's record by file name (its ``"files"``, say), the names in the POSIX form
    of :func:`_name_in`: the ``\\`` between folders of a name an earlier version recorded on
    Windows is a ``/`` there; elsewhere it is a character of a file's name, and kept."""
    if not isinstance(names, dict):
        return names
    return {PurePath(name).as_posix(): value for name, value in names.items()}


def _file_stat(stat):
    """What a run file records of a file's ``os.stat``, to know the file again unread (see
    :func:`_known_digest`)."""
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino,
            "device": stat.st_dev}


def _read_run_file(path):
    """The run file at ``path`` and its ``os.stat``, or ``(None, None)`` when it is missing,
    unreadable or damaged."""
    try:
        with open(path) as file:
            record = json.load(file)
            stat = os.fstat(file.fileno())
    except (OSError, ValueError):
        return None, None
    return (record, stat) if isinstance(record, dict) else (None, None)


def _known_digest(record, record_stat, name, path):
    """The digest that the run file ``record`` (of ``os.stat`` ``record_stat``) holds of the
    file at ``path`` (``name`` in its folder), when it is sure to be the file's still; else
    None, and the file is read.

    The run file records each written file's digest with its size, modification time (ns),
    inode and device, taken while it was a temporary file that only this process knew of: the
    rename that moves it into place keeps all four. The digest is taken as the file's when
    the four are unchanged and the file's time is before the run file's, on its device:

    * a write made once the file was in place (after the run file was written) sets a time
      at or past the run file's. Only a write within the same tick of the file system's clock
      (a few ms on ext4, 2 s on FAT) as the file's last one keeps its time, and such a file,
      timed not before the run file, is read (as ``git`` reads its "racily clean" files). On
      another device (another clock: a network share's) the file is read;
    * another file moved over it has another inode (two files alive at once do not share
      one). A file made after the one recorded was deleted may get its inode number back, but
      it has its size and its time to the nanosecond only as a copy that keeps the time of the
      file recorded (the same bytes) or of a file written in the same tick;
    * a clock set back, or a time set by hand (``os.utime``, ``touch -d``) to the one
      recorded, is not guarded against, as by ``make`` and ``rsync``.

    A file system without inode numbers (0) has its files read each time.
    """
    files = _recorded(record.get("files")) if record is not None else None
    stats = _recorded(record.get("stats")) if record is not None else None
    if not isinstance(files, dict) or not isinstance(stats, dict):
        return None  # none, or written before the stats were recorded
    digest, recorded = files.get(name), stats.get(name)
    if not isinstance(digest, str) or not isinstance(recorded, dict):
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    if (_file_stat(stat) != recorded or not stat.st_ino or stat.st_dev != record_stat.st_dev
            or stat.st_mtime_ns >= record_stat.st_mtime_ns):
        return None
    return digest


def _digests_of_group(folder, renames, previous=None, previous_stat=None):
    """The digests the run file records of a group of saves: ``"files"``, of each written
    temporary file (by its target's name), with its ``"stats"`` (:func:`_file_stat`), and
    ``"replaced"``, of each target it replaces (those that exist: a new one is absent).

    A target that the run file it replaces, ``previous`` (of ``os.stat`` ``previous_stat``),
    records as written, unchanged since (:func:`_known_digest`), is not read again: its
    digest is the one recorded. The written files are read back (they are in the page cache:
    the hash costs more than the read)."""
    files, stats, replaced = {}, {}, {}
    for part, target in renames:
        name = _name_in(folder, target)
        files[name] = _file_digest(part)
        stats[name] = _file_stat(os.stat(part))
        known = _known_digest(previous, previous_stat, name, target)
        if known is not None:
            replaced[name] = known
            continue
        with contextlib.suppress(OSError):  # none yet (or unreadable: then not vouched for)
            replaced[name] = _file_digest(target)
    return {"files": files, "stats": stats, "replaced": replaced}


def save_run_fingerprint(checkpoint, fingerprint):
    """Write ``fingerprint`` to the run file of ``checkpoint`` (:func:`run_file`), with the
    files the checkpoint saves in the current :func:`saving_together` block: it replaces the
    previous one with them, or not at all (a failure to write it, as a failed save of the
    checkpoint's, keeps the previous files and is warned about when the block ends).

    In a block, the run file also records the digests of the block's files (``"files"``) and
    of the files they replace (``"replaced"``), and it is moved into place first: a save cut
    off between the renames of its files (a crash, a kill, a file that could not be replaced)
    leaves some files of each save, which :func:`check_saved_together` then tells apart. It
    records the stats of the block's files too (``"stats"``), by which the next save knows
    them unread, unchanged, as the files it replaces (see :func:`_digests_of_group`)."""
    target = run_file(checkpoint)
    together = _SAVED_TOGETHER.get()
    part = None
    try:
        with naming_save_errors(target):
            record = fingerprint
            if together is not None:
                # the run file replaced names the files replaced, which are not read again
                # when it provably holds their digests
                record = {**fingerprint, **_digests_of_group(
                    target.parent, together["renames"], *_read_run_file(target))}
            part = temporary_file_beside(target)
            with open(part, "w") as file:
                json.dump(record, file, indent=1, sort_keys=True)
    except Exception as error:
        if part is not None and os.path.exists(part):
            os.remove(part)
        if together is None:
            raise
        # as a failed save of skorch's, which its Checkpoint goes on after: the block's
        # files are not moved into place, and it warns
        _note_failed_save(together, target, error)
        return
    if together is not None:
        # first: until it is in place, the files are the previous save's, which it records
        # as replaced; after it, each file is of one save or the other, until all are new
        together["renames"].insert(0, (part, target))
        return
    with naming_save_errors(target):
        move_into_place(part, target)


def check_saved_together(checkpoint, paths):
    """Refuse to load files of a checkpoint that are of two saves.

    The run file of ``checkpoint`` (see :func:`save_run_fingerprint`) records the digests
    of the files of its last save and of the files that save replaced. The files of ``paths``
    it records are refused when some are of that save and others of the one before (the save
    was cut off after some of its files were renamed into place). A file of the same bytes in
    both is of either; one of neither (replaced since by a save of one's own, or damaged) is
    left to the load, as are the files it does not record (another folder's, one named after
    another epoch), and all files without a run file or with one written before the digests
    were recorded. A file that the run file records as written, unchanged since, is not read
    (:func:`_known_digest`): its digest is the one recorded.

    Parameters
    ----------
    checkpoint : skorch.callbacks.Checkpoint
        The checkpoint the files are loaded from.
    paths : iterable of str, path-like or file
        The files to load (file objects and missing files are left to the load).

    Raises
    ------
    ValueError
        Naming the files of each save, when they are of two saves.
    """
    record = run_file(checkpoint)
    # none (or damaged: a resumed fit's check names it)
    saved, saved_stat = _read_run_file(record)
    files = _recorded(saved.get("files")) if saved is not None else None
    replaced = _recorded(saved.get("replaced")) if saved is not None else None
    if not isinstance(files, dict) or not isinstance(replaced, dict):
        return  # written before the digests were recorded
    digests = {}
    for path in paths:
        if not is_path(path):
            continue
        path = expand_home(path)
        name = _name_in(record.parent, path)
        if name in files and name not in digests:
            # A file with the size, time, inode and device recorded, timed before the run
            # file, is the file written by the save it records (see _known_digest, whose
            # reasons hold at a resume as at a save), so it is not read again (a ViT-B's
            # weights and optimizer are over 1 GB). What a resume meets besides:
            # * files of a save cut off between its renames: those left of the save before
            #   are other files than the ones recorded (other inodes: they were alive beside
            #   the temporary files the run file records), so they are read, and found of
            #   the save before; the mix is refused as when every file was read;
            # * a file copied or restored with its time kept: into another folder (cp -p,
            #   rsync -a), or put back by a rename (mv, rsync's temporary file), it is
            #   another inode, and is read. Copied over the file in place (cp -p onto it,
            #   rsync --inplace) it keeps the inode, but it has the recorded time to the ns
            #   and size only when its source had them: a copy of the file recorded, of
            #   its bytes (or a file written in the same tick, or timed by hand: as at a
            #   save, not guarded against). A copy from a backup of another save has that
            #   save's time, and is read;
            # * a folder restored whole with its times kept (run file too) is checked
            #   against the restored run file, its time that of its record: a copy is a new
            #   file (read), unless it landed on the recorded inode number of a file since
            #   deleted, with the recorded time and size: a copy of that file, so of its
            #   bytes.
            known = _known_digest(saved, saved_stat, name, path)
            if known is not None:
                digests[name] = known
                continue
            try:
                digests[name] = _file_digest(path)
            except OSError:  # missing (skorch's LoadInitState starts afresh) or unreadable
                continue
    # a file of the same bytes in both saves is of either; one of neither (replaced since,
    # or damaged) is left to the load, which names a damaged one
    last = sorted(name for name, digest in digests.items()
                  if digest == files[name] and digest != replaced.get(name))
    before = sorted(name for name, digest in digests.items()
                    if digest == replaced.get(name) and digest != files[name])
    if last and before:
        raise ValueError(
            f"the files of the checkpoint in {record.parent} are of two saves, which are not "
            f"loaded together: {', '.join(last)} of the last save, {', '.join(before)} of the "
            f"save before it ({record.name} records both): a save was cut off between the "
            "renames of its files (a crash, a kill, a file that could not be replaced), and "
            "loading them would mix the weights, optimizer and history of two epochs. Delete "
            "the folder's files to start the run afresh")


def _shown(then, now, limit=60):
    """The two values' reprs, each cut to about ``limit`` characters around where they first
    differ: cut at the end, two paths that differ in their last characters read the same."""
    texts = repr(then), repr(now)
    if max(map(len, texts)) <= limit:
        return texts
    first = next((i for i, (a, b) in enumerate(zip(*texts)) if a != b), min(map(len, texts)))
    start = max(0, min(first - limit // 3, max(map(len, texts)) - limit))
    return tuple(("..." if start else "") + text[start:start + limit]
                 + ("..." if start + limit < len(text) else "") for text in texts)


def _same_architecture(then, now):
    """Whether two recorded ``weights`` are modules of one architecture (other values)."""
    return (isinstance(then, dict) and isinstance(now, dict) and "module" in then
            and then.get("module") == now.get("module"))


def check_resumed_run(net, fingerprint):
    """Refuse to resume a run whose checkpoint is of other data or other settings.

    Each ``LoadInitState`` among the net's callbacks whose checkpoint folder holds a run file
    (see :func:`save_run_fingerprint`) is checked: fits that share a ``Checkpoint``'s
    ``dirname`` (the folds of a cross-validation, the candidates of a grid search) had resumed
    each other's runs without a word. Checkpoints without one (saved before the run files,
    or by skorch's own nets) are resumed as they are.

    Parameters
    ----------
    net : BrainJEPAClassifier or BrainJEPARegressor
        The net whose ``LoadInitState`` has loaded a history.
    fingerprint : dict
        This fit's, from :func:`run_fingerprint`.

    Raises
    ------
    ValueError
        Naming the folder, when the checkpoint's run is of other subjects or targets, had
        other settings (named, with their values then and now), or held out other subjects
        (with an integer ``random_state``: without one, the fit warns that it draws anew).
    """
    for _, callback in net.callbacks_:
        if not isinstance(callback, LoadInitState):
            continue
        path = run_file(callback.checkpoint)
        try:
            with open(path) as file:
                saved = json.load(file)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as error:
            raise ValueError(
                f"could not read {path}, the record of the run whose checkpoint LoadInitState "
                f"loaded: {type(error).__name__}: {error}; delete the folder's files to start "
                "the run afresh") from error
        if not isinstance(saved, dict) or not isinstance(saved.get("settings"), dict):
            raise ValueError(f"{path} is not the record of a run (a JSON object with its "
                             "settings); delete the folder's files to start the run afresh")
        # a record written before a setting existed: of the value that trained as it did then
        saved["settings"] = {**_ADDED_SETTINGS, **saved["settings"]}
        folder = path.parent
        shared = ("Fits that share a Checkpoint's dirname (the folds of a cross-validation, "
                  "the candidates of a grid search) load each other's runs: give each fit a "
                  "dirname of its own, or leave LoadInitState out of a cloned estimator")
        if saved.get("subjects") != fingerprint["subjects"]:
            raise ValueError(
                f"the checkpoint in {folder} that LoadInitState loaded is of a run on other "
                f"subjects or targets than this fit's: it is not resumed. {shared}; delete its "
                "files to start this run afresh there")
        settings = fingerprint["settings"]
        differ = sorted(name for name in set(saved["settings"]) | set(settings)
                        if saved["settings"].get(name) != settings.get(name))
        if differ == ["weights"] and _same_architecture(saved["settings"]["weights"],
                                                        settings["weights"]):
            # LoadInitState loads the run's weights over the module's: a module built at
            # random again (a from-scratch control in a new process) cannot give the same
            # values, and refusing it would leave no way to resume
            warn_user(
                f"the weights module has other values than the one the run in {folder} "
                "started from (the same architecture): the run is resumed from its "
                "checkpoint's weights. If this module is another pretrained model, give this "
                "fit a Checkpoint dirname of its own")
            differ = []
        if differ:
            changes = "; ".join(
                "{}={} then, {} now".format(name, *_shown(saved["settings"].get(name),
                                                          settings.get(name)))
                for name in differ)
            raise ValueError(
                f"the checkpoint in {folder} that LoadInitState loaded is of a run with other "
                f"settings than this fit's ({changes}): it is not resumed. Resume with the "
                f"run's settings; to train on from the checkpoint with these, call partial_fit "
                f"instead. {shared}")
        # without an integer random_state the split is drawn anew, which fit_loop warns of
        if (isinstance(net.random_state, numbers.Integral)
                and saved.get("held_out") != fingerprint["held_out"]):
            raise ValueError(
                f"the checkpoint in {folder} that LoadInitState loaded is of a run that held out "
                "other subjects for validation than this fit's split (of the same subjects and "
                f"settings): it is not resumed, as the loaded model trained on some of them. "
                f"{shared}")

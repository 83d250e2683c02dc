"""Fine-tuning and linear probing: ``BrainJEPAClassifier`` and ``BrainJEPARegressor``.

Both are skorch nets (subclasses of ``NeuralNetClassifier`` / ``NeuralNetRegressor``): skorch
runs the training loop, its callbacks (progress, early stopping, checkpoints) and its prefixed
parameters (``optimizer__betas``, ``callbacks__print_log__...``, ``iterator_train__...``). What
this module adds is what subjects' fMRI need:

- ``X`` is subjects' ROI time series, as for the other estimators; ``fit`` preprocesses them
  the way the weights expect, cuts them into windows and trains on every window with its
  subject's label; ``predict`` averages each subject's window outputs;
- the module is built from pretrained ``weights`` (the same options as
  :class:`~brainjepa_sk.BrainJEPAEmbedder`) plus a pooled head;
- the research fine-tuning recipe: layer-wise learning-rate decay, stochastic depth, AdamW
  with weight decay off for biases and norms, warm-up then cosine per batch.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import functools
import hashlib
import numbers
import os
import reprlib

import numpy as np
import torch
from sklearn import get_config
from sklearn.base import BaseEstimator
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import column_or_1d
from sklearn.utils._param_validation import Options, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metadata_routing import UNUSED, WARN
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _num_samples, check_is_fitted, check_random_state
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import (
    BatchScoring,
    Checkpoint,
    EpochScoring,
    LoadInitState,
    LRScheduler,
    ProgressBar,
    TrainEndCheckpoint,
)
from skorch.dataset import Dataset, ValidSplit, unpack_data
from skorch.exceptions import NotInitializedError
from skorch.utils import to_device

from . import preprocessing
from ._base import (
    COMPILE,
    EMBEDDING_CONSTRAINTS,
    NON_NEGATIVE,
    POSITIVE_INT,
    WEIGHTS_CONSTRAINTS,
    WEIGHTS_PARAMETERS,
    WEIGHTS_PREPROCESSING_PARAMETERS,
    FittedScaleCheck,
    Range,
    SubjectsInputMixin,
    _is_default_weights,
    average_by_subject,
    changed_settings,
    check_parameters,
    check_pooling,
    preprocessor_for_subjects,
    resolve_estimator_weights,
    restore_on_error,
    training_windows,
    warn_changed_preprocessing,
    window_chunks,
)
from ._skorch import (
    SubjectValidSplit,
    SubjectWindows,
    WarmupCosineLR,
    WindowArray,
    check_resumed_run,
    check_saved_together,
    draws_subjects,
    is_windows,
    layer_groups_setter,
    load_params_naming_files,
    pickling_atomically,
    restore_best_scores,
    restore_early_stopping,
    restore_lr_schedulers,
    run_fingerprint,
    save_params_atomically,
    save_run_fingerprint,
    saving_together,
    set_initial_rates,
    split_windows,
    targets_of,
    validation_monitors,
)
from ._skorch_params import SkorchParamsMixin, _constructor_signature, _named_arguments
from ._targets import (
    _check_classes,
    _check_targets_follow_files,
    _files_of,
    _is_glob,
    _refuse_continuous_labels,
    _refuse_labels_of_several_kinds,
    _refuse_missing_targets,
)
from ._warnings import check_array, warn_user
from .files import is_path
from .nn import POOLINGS, EncoderWithHead
from .nn._checks import type_with_article
from .train.data import loader_length, stop_persistent_workers
from .train.distributed import _launcher_world_size, world
from .train.loop import TrainingInterrupted
from .train.optim import layer_decay_groups
from .train.runtime import (
    all_finite,
    cpu_copy,
    expand_home,
    forked_rng,
    noting_ctrl_c,
    noting_sigterm,
    python_values,
    resolve_autocast,
    resolve_compile,
    resolve_device,
)
from .validation import (
    _host_tensor,
    subjects_digest,
    validate_subjects,
)

__all__ = ["BrainJEPAClassifier", "BrainJEPARegressor", "SubjectValidSplit", "WarmupCosineLR"]


#: How to restore a fine-tuned net, since ``initialize()`` cannot build one before ``fit``.
_BUILT_IN_FIT = (
    "call fit (its size comes from the weights and from y). To restore saved parameters, "
    "fit with skorch's LoadInitState callback, or fit with max_epochs=0 and then call "
    "load_params, or pickle the fitted estimator")


#: What the loaders call their callable settings with, for the message refusing another value.
_LOADER_CALLABLES = {"collate_fn": "with the list of a batch's (window, target) pairs",
                     "worker_init_fn": "in each worker process, with the worker's number"}


class _Interrupted(Exception):
    """Carries a ``KeyboardInterrupt`` (Ctrl-C's, or the ``TrainingInterrupted`` of a SIGTERM)
    through skorch's ``partial_fit``, which swallows it."""


def _seed_epoch(seed, epoch, device, batch=None):
    """Seed torch's global generators (the fit's fork of them) for epoch ``epoch`` (from 1),
    or for its training batch ``batch`` (from 1).

    The epoch's shuffling and loader worker seeds, and each batch's stochastic depth, then
    depend on the fit's seed and the epoch's (and batch's) number only, not on the draws
    before them: a fit that resumes a run from a checkpoint at epoch ``k``, or after batch
    ``b`` of it, draws as the uninterrupted run did."""
    keys = [int(seed), int(epoch), *(() if batch is None else (int(batch),))]
    value = int(np.random.SeedSequence(keys).generate_state(
        1, dtype=np.uint64)[0] >> np.uint64(1))  # 63 bits: any torch seed
    torch.default_generator.manual_seed(value)
    if device.type == "cuda":  # the fit's device, made current by forked_rng
        torch.cuda.manual_seed(value)


@contextlib.contextmanager
def _scoring_uncached(callback, net, method_name):
    """At an epoch's end, have skorch's ``EpochScoring(on_train=True)`` that caches the
    training batches' predictions and cached none predict the training windows instead.

    Only the epoch of a run cut in its validation that a fit resumes trains no batch (see
    ``fit_loop``): scored from its empty cache, it failed the fit ("need at least one array
    to concatenate"). The callback's ``use_caching`` (and the net's, when set) is put back
    after."""
    if (method_name != "on_epoch_end" or not isinstance(callback, EpochScoring)
            or not callback.on_train or getattr(callback, "y_preds_", None)
            or not (callback.use_caching if net.use_caching == "auto" else net.use_caching)):
        yield
        return
    settings = (callback.use_caching, net.use_caching)
    callback.use_caching = False
    if net.use_caching != "auto":
        net.use_caching = False
    try:
        yield
    finally:
        callback.use_caching, net.use_caching = settings


def _start_persistent_workers(loader):
    """Start the workers of a loader with ``persistent_workers``, leaving torch's global
    generator as it was; called at the first training pass of each fit (skorch makes one
    training loader per ``fit_loop``).

    Such a loader starts its workers at its first pass only, drawing their seed from torch's
    global generator just before the sampler draws the pass's order: a fit's first epoch drew
    its order after that seed, its later epochs without it, so a fit resuming a run at (or
    inside) an epoch drew another order for it than the uninterrupted run. Started here, the
    workers' seed and the batches they prefetch are drawn and thrown away, and every epoch's
    order is the first draw of its pass (one prefetch of loaded batches is lost per fit).

    torch has no public way to start the workers without a pass (checked on torch 2.13), nor
    to tell whether they are started: the fit remembers the loader it started instead of
    reading the loader's private iterator. Starting workers already started is harmless (the
    pass is reset: another prefetch thrown away)."""
    if (not isinstance(loader, torch.utils.data.DataLoader) or not loader.num_workers
            or not loader.persistent_workers):
        return
    state = torch.random.get_rng_state()
    iter(loader)
    torch.random.set_rng_state(state)


def _take_saved_unset_buffers(module, state_dict, prefix, *args):
    """A ``load_state_dict`` pre-hook: a buffer that is None in ``module`` (a loss's class
    weights, which a new fit counts after skorch's ``LoadInitState`` loaded its checkpoint)
    takes the saved one's shape, for torch to load it (it refused the saved tensor as an
    unexpected key)."""
    for name, buffer in module._buffers.items():
        if buffer is None and prefix + name in state_dict:
            module._buffers[name] = torch.empty_like(state_dict[prefix + name])


def _count_skipped_in_progress_bars(net, skipped):
    """Count the ``skipped`` batches of a resumed epoch in the bars of skorch's
    ``ProgressBar`` callbacks, made for the whole epoch when it began: the resumed epoch's
    bar ended short of its total by the batches skipped (2/3 for one skipped of 3).

    Counted as tqdm's ``initial`` counts them, so that the rate and the time left are those
    of the batches trained."""
    for _, callback in net.callbacks_:
        bar = getattr(callback, "pbar_", None) if isinstance(callback, ProgressBar) else None
        if bar is not None:
            bar.initial = bar.n = bar.last_print_n = skipped
            bar.refresh()


#: The bytes of each of a batch's items that its digest reads, at most (about): 256 float32
#: values spread over a window tell windows apart; the digest runs at every training batch
#: (0.56 ms for 32 windows of 450 x 160 on a CPU core, 2.7 ms with 16384 bytes).
_DIGESTED_PER_ITEM = 1024


def _sampled_bytes(values):
    """A strided sample of the bytes of each item of a tensor or an array (of each row along
    its first axis), ``_DIGESTED_PER_ITEM`` of them at most (about), as a NumPy array."""
    items = len(values) if values.ndim > 1 else 1
    if isinstance(values, torch.Tensor):
        raw = values.detach().contiguous().reshape(-1).view(torch.uint8).reshape(items, -1)
    else:
        raw = np.ascontiguousarray(values).reshape(-1).view(np.uint8).reshape(items, -1)
    raw = raw[:, ::max(1, raw.shape[1] // _DIGESTED_PER_ITEM)]  # on its device: less copied
    return np.ascontiguousarray(raw.cpu().numpy() if isinstance(raw, torch.Tensor) else raw)


def _digest_of_batch(batch):
    """A digest of a loader's batch: of its tensors' and arrays' shapes, types and values,
    a strided sample of each item's bytes (windows differ throughout: reading all of them
    took 20 ms for a batch of 32 windows of 450 regions by 160 frames on a CPU core, this
    sample 0.6 ms)."""
    digest = hashlib.blake2b(digest_size=16)
    pending = [batch]
    while pending:
        part = pending.pop()
        if isinstance(part, dict):
            pending.extend(part[key] for key in sorted(part, key=str))
        elif isinstance(part, (tuple, list)):
            pending.extend(part)
        elif isinstance(part, (torch.Tensor, np.ndarray)) and part.dtype != object:
            digest.update(f"{part.dtype}{tuple(part.shape)}".encode())
            if all(part.shape):  # values to read
                digest.update(_sampled_bytes(part))
    return digest.hexdigest()


def _digesting(batches, digests):
    """Yield ``batches``, appending the digest of each (:func:`_digest_of_batch`) to
    ``digests`` as it is yielded."""
    for batch in batches:
        digests.append(_digest_of_batch(batch))
        yield batch


def _digest_of_batches(digests):
    """One digest of batches' digests, in their order."""
    return hashlib.blake2b("".join(digests).encode(), digest_size=16).hexdigest()


def _why_another_order(loader):
    """Why a training loader yields another order of an epoch than a cut run's did."""
    if getattr(getattr(loader, "sampler", None), "generator", None) is not None:
        return ("the training loader shuffles with a generator of its own "
                "(iterator_train__generator), which a fit does not reseed (leave it out for "
                "the loader to shuffle from random_state)")
    if not isinstance(loader, torch.utils.data.DataLoader):
        return (f"the training loader, a {type(loader).__name__}, does not draw each epoch's "
                "order from torch's global generator as its pass begins (a DataLoader with "
                "persistent workers inside it draws its workers' seed first, at a fit's first "
                "pass only; a DataLoader, or a class of one's own derived from it, as "
                "iterator_train has its persistent workers started before)")
    return "the training loader does not draw the epoch's order as the cut run's did"


def _seed_of(random_state):
    """An int seed for torch from ``random_state`` (None: drawn from NumPy's global generator,
    as scikit-learn does, so that torch's global generator is never used)."""
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


#: Losses of numbers, which the classifier refuses (its targets are class indices).
_REGRESSION_LOSSES = (torch.nn.MSELoss, torch.nn.L1Loss, torch.nn.SmoothL1Loss,
                      torch.nn.HuberLoss)

#: torch's losses whose ``weight`` holds one weight per class.
_CLASS_WEIGHTED_LOSSES = (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss, torch.nn.MultiMarginLoss,
                          torch.nn.MultiLabelSoftMarginLoss)

#: Losses of classes, which the regressor refuses (one output per target, not per class).
_CLASSIFICATION_LOSSES = (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss,
                          torch.nn.BCEWithLogitsLoss, torch.nn.BCELoss)

#: ``max_epochs`` and skorch's ``epochs`` argument of ``fit`` and ``partial_fit``
_EPOCHS = Range(numbers.Integral, 0, None, closed="left")


def _seeded_split(split, seed):
    """A copy of ``split`` that draws with ``seed``, when it draws at random without a
    ``random_state`` of its own (a ``SubjectValidSplit``, or skorch's ``ValidSplit`` of a
    fraction); else ``split`` itself.

    The estimator's ``random_state`` then fixes the split (it drew from NumPy's global
    generator), and the parameter is left as it was."""
    if getattr(split, "random_state", 0) is not None:
        return split
    if isinstance(split, ValidSplit):
        cv = split.cv  # skorch's test of a fraction: a number that is not an integer
        if not (isinstance(cv, numbers.Number) and not float(cv).is_integer()):
            return split  # folds (an int) or a CV object of the user's: not drawn by the seed
    elif not draws_subjects(split):
        return split
    seeded = copy.copy(split)
    seeded.random_state = seed
    if isinstance(split, SubjectValidSplit):
        # its messages name the split as given, not with the seed drawn for it
        seeded._given_as_ = repr(split)
    return seeded


def _copy_of(owner):
    """A module's or an optimizer's state (and a module's train/eval modes), to put back.

    Copied to the CPU: a GPU would hold the model and its moments twice."""
    modes = ([module.training for module in owner.modules()]
             if isinstance(owner, torch.nn.Module) else None)
    return owner, cpu_copy(owner.state_dict()), modes


def _put_back(copies):
    """Restore what :func:`_copy_of` copied."""
    for owner, saved, modes in copies:
        owner.load_state_dict(saved)
        if modes is not None:  # a fit leaves the model in training mode
            for module, mode in zip(owner.modules(), modes):
                module.training = mode


@contextlib.contextmanager
def _showing_record(history, record):
    """``history`` with ``record`` appended while the block runs (as it was when None)."""
    if record is None:
        yield
        return
    history.append(record)
    try:
        yield
    finally:
        if history and history[-1] is record:
            del history[-1]


class _FineTuneBase(SkorchParamsMixin, SubjectsInputMixin):
    """What the classifier and the regressor share; see their docstrings."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls):
            cls.__init__.__signature__ = _constructor_signature(cls)

    # scikit-learn's repr (the parameters set away from their defaults, as for the other
    # estimators), not skorch's (the class and, once fitted, every layer of the module: those
    # are in module_)
    __repr__ = BaseEstimator.__repr__

    # skorch's own parameters are checked by skorch, except max_epochs: skorch trains no
    # epoch for a negative one (PyTorch Lightning's "no limit"); and lr and batch_size, which
    # skorch passes on unchecked (lr="1e-3" failed in the layer-wise decay with "can't multiply
    # sequence by non-int", batch_size="8" in torch's DataLoader with "got batch_size=8")
    _parameter_constraints = {
        **EMBEDDING_CONSTRAINTS,
        **WEIGHTS_CONSTRAINTS,
        "pooling": [StrOptions(set(POOLINGS))],  # a vector for the head: not "tokens"
        "device": [str, torch.device],  # skorch's device
        "freeze_encoder": ["boolean"],
        "drop_path_rate": [Range(numbers.Real, 0, 1, closed="left")],
        "layer_decay": [Range(numbers.Real, 0, 1, closed="right")],
        "weight_decay": NON_NEGATIVE,
        "warmup_epochs": NON_NEGATIVE,
        "min_lr": NON_NEGATIVE,
        "accumulation_steps": POSITIVE_INT,
        "random_state": ["random_state"],
        "max_epochs": [_EPOCHS],
        "lr": [*NON_NEGATIVE, torch.Tensor],
        # -1 is skorch's "one batch of all the windows"
        "batch_size": [*POSITIVE_INT, Options(numbers.Integral, {-1})],
        # skorch checks it only when predicting: after a whole fit
        "use_caching": [StrOptions({"auto"}), "boolean"],
        # skorch takes any value for its truth: warm_start="no" continued the fit, and
        # compile="no" compiled the module; compile="auto" as the pretrainer's (torch_compile)
        "warm_start": ["boolean"],
        "compile": COMPILE,
    }

    def __init__(
        self,
        weights="ukbiobank",
        *,
        criterion,
        gradients=None,
        num_heads=None,
        pooling="mean",
        final_norm=True,
        freeze_encoder=False,
        drop_path_rate=0.1,
        layer_decay=0.75,
        weight_decay=0.05,
        warmup_epochs=0,
        min_lr=1e-6,
        t_r=None,
        model_t_r="auto",
        n_frames="auto",
        window="auto",
        stride=None,
        min_frames=None,
        normalization="auto",
        constant_regions="error",
        precision="auto",
        accumulation_steps=1,
        random_state=None,
        data_dir=None,
        optimizer=torch.optim.AdamW,
        lr=6.25e-5,
        max_epochs=50,
        batch_size=16,
        train_split=None,
        iterator_train__shuffle=True,
        device="cpu",
        verbose=1,
        **kwargs,
    ):
        self.weights = weights
        self.gradients = gradients
        self.num_heads = num_heads
        self.pooling = pooling
        self.final_norm = final_norm
        self.freeze_encoder = freeze_encoder
        self.drop_path_rate = drop_path_rate
        self.layer_decay = layer_decay
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.min_lr = min_lr
        self.t_r = t_r
        self.model_t_r = model_t_r
        self.n_frames = n_frames
        self.window = window
        self.stride = stride
        self.min_frames = min_frames
        self.normalization = normalization
        self.constant_regions = constant_regions
        self.precision = precision
        self.accumulation_steps = accumulation_steps
        self.random_state = random_state
        self.data_dir = data_dir
        # set before skorch's __init__: afterwards skorch refuses torch modules as attributes
        super().__init__(
            module=EncoderWithHead, criterion=criterion, optimizer=optimizer, lr=lr,
            max_epochs=max_epochs, batch_size=batch_size, train_split=train_split,
            iterator_train__shuffle=iterator_train__shuffle, device=device, verbose=verbose,
            **kwargs,
        )

    # -- skorch hooks ----------------------------------------------------------------------

    #: What only a running fit holds (set in the loop, removed when it ends).
    _FIT_STATE = ("_training_", "_held_out_", "_seeded_split_", "_epochs_run_",
                  "_batch_windows_", "_loss_scale_", "_seed_", "_resumable_", "_epochs_done_",
                  "_sigterm_", "_new_model_", "_run_fingerprint_", "_epoch_open_",
                  "_cut_epoch_", "_shown_cut_epoch_", "_loaded_cut_epoch_", "_resume_cut_",
                  "_skip_batches_", "_epoch_loader_", "_started_loader_", "_batch_digests_",
                  "_skipped_digest_", "_pass_loaders_")

    def __getstate__(self):
        # a net pickled during fit (skorch's Checkpoint(f_pickle=...)) is kept as a fitted
        # one: without the running fit's state, which its later calls would take as theirs
        state = super().__getstate__()
        shown = self.__dict__.get("_shown_cut_epoch_")
        history = state.get("history_")
        if shown is not None and history and history[-1] is shown:
            # at the end of training (see _notify): the history of completed epochs
            state["history_"] = copy.copy(history)
            del state["history_"][-1]
        for name in self._FIT_STATE:
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        # pickled before constant_regions existed: a run of its then-behaviour, and a
        # parameter still (skorch takes the parameters from the instance's __dict__)
        super().__setstate__({"constant_regions": "error", **state})
        if "module_" in self.__dict__ and "criterion_" in self.__dict__:
            # as compile says on the device it lands on (skorch moves a net pickled on CUDA to
            # the CPU of a machine without): "auto", which compiled on CUDA, compiles no more
            self._compile_trained_modules()

    def __setattr__(self, name, value):
        # A module given as ``weights`` is a parameter, not a component of the net: skorch
        # would refuse it (set_params, grid search) once the net exists.
        if name == "weights":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def check_is_fitted(self, attributes=None, *args, **kwargs):
        """skorch's check (``NotInitializedError``), with how to restore a saved net.

        Parameters
        ----------
        attributes : iterable of str, optional
            The attributes a fitted net has (skorch's default: ``module_``).
        *args, **kwargs
            As in skorch's ``check_is_fitted``.

        Raises
        ------
        skorch.exceptions.NotInitializedError
            When the net is not fitted; the message says how to restore saved parameters.
        """
        try:
            super().check_is_fitted(attributes, *args, **kwargs)
        except NotInitializedError:
            raise NotInitializedError(
                f"This {type(self).__name__} is not fitted yet: {_BUILT_IN_FIT}") from None

    def _input_format(self):
        """The fit's preprocessing (``to_dict()``) and regions (``region_names_``, else X's
        column names), which the fine-tuned encoder carries."""
        names = getattr(self, "region_names_", None)
        if names is None:
            names = getattr(self, "feature_names_in_", None)
        return (self.preprocessor_.to_dict(),
                None if names is None else [str(name) for name in names])

    def _trained_n_patches(self, resolved, patch_size):
        """The most time patches per window the fine-tuned encoder's positions will have been
        trained on: the weights' (pretraining's) and, unless the encoder is frozen, the fit's;
        None when the weights do not say theirs (the fit's alone would claim too few)."""
        trained = resolved.trained_frames
        if trained is None:
            return None
        if not self.freeze_encoder:
            trained = max(trained, self.preprocessor_.n_frames)
        return int(trained) // patch_size

    def save(self, path):
        """Save the fine-tuned encoder with its gradients, preprocessing and region names.

        With them, the longest window its time positions were trained on (its pretraining's
        or its fine-tuning's, ``module_.encoder.trained_n_patches``), so that embedding
        windows up to the pretraining's is not warned of, and whether it was frozen
        (``freeze_encoder``, ``module_.encoder.frozen_by_fine_tuner``). The file holds the
        encoder alone (not the head, nor the optimizer: pickle the estimator to keep those).
        It loads as ``BrainJEPAEmbedder(weights=path)``, which embeds with the fine-tuner's
        preprocessing (``preprocessor_``, robust statistics included; the input's ``t_r`` is
        given again), as the weights of another fine-tuner, and with
        :func:`~brainjepa_sk.checkpoint.load_checkpoint` (as a ``BrainEncoder``).

        Parameters
        ----------
        path : str or path-like
            Destination file.

        Raises
        ------
        skorch.exceptions.NotInitializedError
            When the estimator is not fitted.
        ValueError
            When ``path`` is the file of ``weights``, holds the saved state of a pretraining
            run, or the encoder's weights hold NaN or infinite values (nothing is written).
        """
        from .checkpoint import save_checkpoint  # (it imports the modules this one does)

        self.check_is_fitted(["module_", "preprocessor_"])
        self._check_not_the_weights_file(path)
        preprocessing, region_names = self._input_format()
        save_checkpoint(path, self.module_.encoder, preprocessing=preprocessing,
                        metadata={"fine_tuned_by": type(self).__name__,
                                  **({"region_names": region_names}
                                     if region_names is not None else {})})

    def _check_not_the_weights_file(self, path):
        """Refuse to :meth:`save` over the file ``weights`` names: the encoder alone would
        replace the pretrained model (its predictor lost), and a refit would start from the
        fine-tuned weights. Other existing files are overwritten, as by ``save_checkpoint``."""
        weights = self.weights
        if not is_path(weights) or _is_default_weights(weights) or not is_path(path):
            return  # a module or the model fetched by name: no file of the user's
        try:
            same = os.path.samefile(expand_home(path), expand_home(weights))
        except (OSError, ValueError):  # either missing (nothing to lose), or no path at all
            return
        if same:
            raise ValueError(
                f"cannot save to {os.fspath(path)!r}: it is the weights file this "
                f"{type(self).__name__} was fine-tuned from (weights={os.fspath(weights)!r}); "
                "the fine-tuned encoder alone would replace the pretrained model, and a refit "
                "would start from the fine-tuned weights. Save to another path")

    def save_params(self, f_params=None, f_optimizer=None, f_criterion=None, f_history=None,
                    use_safetensors=False, **kwargs):
        """skorch's ``save_params``, each file written beside its target and renamed into place.

        A kill during a save (skorch's ``Checkpoint`` saves through this method) keeps the
        previous file whole instead of leaving it cut short. A missing folder is created.
        At the end of a fit that a callback cut short inside an epoch, when the callbacks see
        that epoch's record (a ``TrainEndCheckpoint`` names its files after it), the history
        saved holds it too, marked ``"cut_short": True``, for :meth:`load_params`.

        Parameters
        ----------
        f_params, f_optimizer, f_criterion, f_history : str, path-like or file, optional
            As in skorch; a path starting with ``~`` starts in the home folder.
        use_safetensors : bool, default=False
            As in skorch.
        **kwargs : dict
            Other ``f_*`` files, as in skorch.
        """
        files = dict(f_params=f_params, f_optimizer=f_optimizer, f_criterion=f_criterion,
                     f_history=f_history, **kwargs)
        # while the callbacks see an epoch cut short (_notify), the history saved holds its
        # record, marked "cut_short", as the files named after it are: load_params names
        # them from it, and leaves it out of history_
        save_params_atomically(super().save_params, files, use_safetensors=use_safetensors)

    def load_params(self, f_params=None, f_optimizer=None, f_criterion=None, f_history=None,
                    checkpoint=None, use_safetensors=False, **kwargs):
        """skorch's ``load_params``, one file at a time, so that a damaged file is named.

        When a file cannot be loaded, the net is left as it was: the files loaded before it
        are undone. A history that ends with the record of an epoch cut short (marked
        ``"cut_short"``, see :meth:`save_params`) names the files of ``checkpoint`` as it
        named them when they were saved, and is loaded without that record: ``history_``
        holds completed epochs only. A fit that resumes the run (skorch's ``LoadInitState``)
        trains the cut epoch's batches after those it had trained (see :meth:`fit_loop`).

        Parameters
        ----------
        f_params, f_optimizer, f_criterion, f_history : str, path-like or file, optional
            As in skorch; a path starting with ``~`` starts in the home folder.
        checkpoint : skorch.callbacks.Checkpoint, optional
            As in skorch: its files, formatted for this net (explicit ``f_*`` override them).
        use_safetensors : bool, default=False
            As in skorch.
        **kwargs : dict
            Other ``f_*`` files, as in skorch.

        Raises
        ------
        ValueError
            Naming the file, when it is damaged or holds the state of another model; naming
            the files of each save, when the files of ``checkpoint`` are of two saves (one
            cut off between the renames of its files), which its run file tells apart.
        FileNotFoundError
            As skorch raises it for a missing file (skorch's ``LoadInitState`` then starts
            afresh); also when the history of ``checkpoint`` holds no completed epoch (a fit
            that a callback cut short inside its first epoch saved it), so that there is no
            run to resume.
        """
        if not self.initialized_:  # skorch's own error (this estimator builds its model in fit)
            return super().load_params(f_params=f_params, f_optimizer=f_optimizer,
                                       f_criterion=f_criterion, f_history=f_history,
                                       checkpoint=checkpoint, use_safetensors=use_safetensors,
                                       **kwargs)
        # the files are loaded one by one (and torch copies the tensors that fit before it
        # refuses a state dict): a failure puts back what the earlier ones changed, copied
        # just before each file is loaded into it
        history, device, copies = self.history_, self.device, []
        cut = []  # the record of an epoch cut short that a loaded history ends with
        history_loaded = []

        def load(**files_and_options):
            for key in files_and_options:
                if not key.startswith("f_") or key == "f_history":  # the history is rebound
                    continue
                owner = getattr(self, "module_" if key == "f_params" else f"{key[2:]}_", None)
                if owner is not None and all(owner is not copied for copied, _, _ in copies):
                    copies.append(_copy_of(owner))
            criterion = getattr(self, "criterion_", None) if "f_criterion" in \
                files_and_options else None
            # (each of its modules: a compiled loss holds the loss)
            hooks = [part.register_load_state_dict_pre_hook(_take_saved_unset_buffers)
                     for part in criterion.modules()] if isinstance(
                criterion, torch.nn.Module) else []
            try:
                super(_FineTuneBase, self).load_params(**files_and_options)
            finally:
                for hook in hooks:
                    hook.remove()
            # skorch takes any JSON list (or a dict's keys) as the history
            if "f_history" in files_and_options and not all(
                    isinstance(record, dict) and "epoch" in record for record in self.history_):
                raise ValueError("it is not a history of epochs (a JSON list of records, "
                                 "as save_params writes it)")
            if "f_history" in files_and_options:
                history_loaded.append(True)
                cut.clear()
                if self.history_ and self.history_[-1].get("cut_short") is True:
                    # saved at the end of a fit that a callback cut short inside an epoch, for
                    # the file names formatted from it (see _notify): history_ holds
                    # completed epochs
                    cut.append(self.history_.pop())

        try:
            files = {}
            if checkpoint is not None:
                # the history first: the other files' names may be formatted from it
                if f_history is None and checkpoint.f_history is not None:
                    load_params_naming_files(load, {"f_history": checkpoint.f_history_},
                                             use_safetensors=use_safetensors)
                    if not len(self.history_):
                        # a fit cut inside its first epoch (its TrainEndCheckpoint saved the
                        # cut epoch's record alone, or none when it trained no batch): no
                        # epoch to resume (skorch named the files from the history's last
                        # epoch: "list index out of range"); LoadInitState starts afresh, as
                        # without a checkpoint
                        path = expand_home(checkpoint.f_history_)
                        raise FileNotFoundError(
                            errno.ENOENT,
                            f"{path} holds no completed epoch (a fit cut inside its first "
                            "epoch saved it): the checkpoint has no run to resume, and its "
                            "other files are named after an epoch; load them by their paths "
                            "(f_params=...) if you need them", os.fspath(path))
                # named from the history as it was saved: with the record of an epoch cut
                # short, that the files saved with it were named after
                with _showing_record(self.history_, cut[0] if cut else None):
                    files.update(checkpoint.get_formatted_files(self))
                if f_history is None:
                    files.pop("f_history", None)
            files.update(kwargs)
            explicit = dict(f_params=f_params, f_optimizer=f_optimizer,
                            f_criterion=f_criterion, f_history=f_history)
            files.update({key: value for key, value in explicit.items() if value})
            if checkpoint is not None:
                # before the other files are loaded: a save cut off between the renames of
                # its files left files of two saves (the history loaded is undone below)
                from_checkpoint = [*files.values()]
                if f_history is None and checkpoint.f_history is not None:
                    from_checkpoint.append(checkpoint.f_history_)
                check_saved_together(checkpoint, from_checkpoint)
            load_params_naming_files(load, files, use_safetensors=use_safetensors)
        except BaseException:
            self.history_, self.device = history, device  # skorch may fall back to the CPU
            _put_back(copies)
            raise
        if history_loaded:
            # for a fit that resumes this run to go on inside the cut epoch (see fit_loop)
            self.__dict__.pop("_loaded_cut_epoch_", None)
            if cut:
                self._loaded_cut_epoch_ = cut[0]

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """skorch's loop; the learning-rate schedule spans ``epochs`` when it is given.

        A ``fit`` that builds a new model and whose callbacks loaded a history when training
        began (skorch's ``LoadInitState`` of a ``Checkpoint``) resumes that run: the loaded
        epochs count towards ``max_epochs`` (or ``epochs``), only the rest are trained, the
        schedule goes on at the epoch the history ends, and skorch's scoring callbacks take
        their best scores from it (its ``EarlyStopping``, its patience: a run it had stopped
        trains no more; its ``LRScheduler``, the steps of the loaded epochs). A history that a
        ``TrainEndCheckpoint`` saved at the end of a fit a callback cut short inside an epoch
        (its record marked ``"cut_short"``) resumes inside that epoch: its batches trained
        are skipped (loaded again, then dropped; their records kept for the epoch's
        ``train_loss``) and the others trained, as the uninterrupted run trains them, the
        epoch validated once at its end; when the training loader yields another number or
        size of batches than the cut run's, the epoch is trained again from its first batch,
        with a warning; when the batches it loads again are not those the cut run trained (a
        digest of their windows, recorded with the cut), the epoch's order could not be drawn
        again (a generator of the loader's own, or persistent workers out of the fit's sight),
        and the fit warns that the batches it trains are those of another order. A run whose
        checkpoint records other data or other settings than this fit's (the run file its
        ``Checkpoint`` saved beside its files) is refused.

        SIGTERM (a job scheduler's pre-emption) stops the fit after the current batch with
        :class:`~brainjepa_sk.train.TrainingInterrupted` (in the main thread).

        Parameters
        ----------
        X : SubjectWindows
            The training windows.
        y : array-like, optional
            Their targets.
        epochs : int, optional
            Epochs to train; ``max_epochs`` by default.
        **fit_params : dict
            Passed to skorch's ``fit_loop``.

        Returns
        -------
        self
            The net, as skorch's ``fit_loop`` returns it.

        Raises
        ------
        ValueError
            When the checkpoint of the run it would resume is of other subjects or targets,
            or of other settings (named).
        """
        pressed, self._sigterm_ = {}, {}
        self.__dict__.pop("_cut_epoch_", None)  # an earlier fit's, had its end not come
        try:
            # the checks of a resumed run too: skorch's partial_fit swallows a Ctrl-C there
            with noting_ctrl_c(pressed), noting_sigterm(self._sigterm_):
                try:
                    epochs = self._epochs_to_train(epochs)
                    super().fit_loop(X, y, epochs=epochs, **fit_params)
                except KeyboardInterrupt as interrupt:
                    if pressed:
                        # skorch's partial_fit would swallow Ctrl-C too and keep the
                        # half-trained model; here it stops the fit like any error, which
                        # leaves the estimator as it was (said, as for SIGTERM: a bare
                        # KeyboardInterrupt told nothing of what became of the fit)
                        epoch = len(self.history_)
                        when = (f"during epoch {epoch}" if self.__dict__.get("_epoch_open_")
                                else f"after epoch {epoch}" if epoch else
                                "before the first epoch")
                        # with the traceback of where Ctrl-C landed: what it is pressed
                        # to find in a fit that hangs
                        raise _Interrupted from TrainingInterrupted(
                            self._interrupted_message("Ctrl-C", when)).with_traceback(
                                interrupt.__traceback__)
                    if not self._sigterm_:  # a callback's way to end training (EarlyStopping)
                        if len(self.history_):
                            # one that ends it inside an epoch skips that epoch's loss guard
                            self._refuse_non_finite()
                        if self.__dict__.pop("_epoch_open_", False):
                            # skorch records an epoch when it begins: one ended before its
                            # on_epoch_end has no record (no train_loss, no valid_loss), as
                            # the pretrainer's history holds completed epochs only
                            cut = self.history_.pop()
                            if cut.get("batches"):  # it trained (see _notify)
                                # a history saved while the callbacks see it holds it so
                                # (see load_params), with where the epoch was cut, for a
                                # resumed fit to go on from there (see on_epoch_begin)
                                cut["cut_short"] = True
                                cut["batches_done"] = sum(
                                    "train_loss" in batch for batch in cut["batches"])
                                cut["batches_per_epoch"], cut["loader_batch_size"] = \
                                    self.__dict__.get("_epoch_loader_", (None, None))
                                # which windows they were, for a resumed fit to check
                                # it loads them again (see run_single_epoch); a resumed
                                # epoch cut before its pass loaded them keeps the digest
                                # it resumed (None for a history without one)
                                digests = self.__dict__.get("_batch_digests_", [])
                                cut["batches_digest"] = (
                                    _digest_of_batches(digests[:cut["batches_done"]])
                                    if len(digests) >= cut["batches_done"]
                                    else self.__dict__.get("_skipped_digest_"))
                                self._cut_epoch_ = cut
                        raise
            # a SIGTERM after the last batch (during the last epoch's callbacks) still stops
            # the caller, as the pre-emption asked (the pretrainer's loop does the same)
            self._stop_on_sigterm(f"after the last epoch ({len(self.history_)})")
            return self
        finally:
            for loader in self.__dict__.pop("_pass_loaders_", ()):
                stop_persistent_workers(loader)
            for name in ("_epochs_run_", "_epochs_done_", "_sigterm_", "_epoch_open_",
                         "_resume_cut_", "_skip_batches_", "_epoch_loader_",
                         "_started_loader_", "_batch_digests_", "_skipped_digest_"):
                self.__dict__.pop(name, None)

    def _epochs_to_train(self, epochs):
        """The epochs ``fit_loop`` trains (skorch's ``epochs``): with a history loaded by
        ``LoadInitState`` when a new model's fit began, the run's epochs left, once the run is
        checked and the scoring callbacks have their best scores from it; also records the
        run's total (``_epochs_run_``) and its epochs done (``_epochs_done_``)."""
        total = self.max_epochs if epochs is None else epochs
        done = 0
        # the epoch cut short that a history loaded by LoadInitState ended with (load_params)
        cut = self.__dict__.pop("_loaded_cut_epoch_", None)
        if self.__dict__.get("_new_model_", False) and len(self.history_):
            # initialize() emptied the history: one here was loaded by a callback's
            # on_train_begin (LoadInitState), which skorch calls before this loop; its best
            # scores stay the best to beat, also for a partial_fit that trains on after it
            restore_best_scores(self)
            restore_lr_schedulers(self)
        if self.__dict__.get("_resumable_", False):
            done = len(self.history_)
            if done and self.__dict__.get("_run_fingerprint_") is not None:
                # before anything is trained or saved: the checkpoint is left as it was
                check_resumed_run(self, self._run_fingerprint_)
            stopped = restore_early_stopping(self)
            name = "max_epochs" if epochs is None else "epochs"
            if stopped is not None and done <= total:
                # a run EarlyStopping ended is finished, as one of max_epochs
                warn_user(
                    f"the history loaded when fit began (skorch's LoadInitState) ends where "
                    f"EarlyStopping stopped its run (epoch {stopped}): no epoch is trained, the "
                    "model is the checkpoint's (its best epoch's, for an EarlyStopping with "
                    "load_best=True that found them). Fits that share a Checkpoint's dirname (the "
                    "clones of a cross-validation or a grid search) load each other's runs: "
                    "leave LoadInitState out of a cloned estimator, or give each fit its own "
                    "dirname")
            elif done > total:
                warn_user(
                    f"the history loaded when fit began (skorch's LoadInitState) holds {done} "
                    f"epochs, more than {name}={total}: no epoch is trained; set {name} to the "
                    "run's total number of epochs to train it longer")
            elif done and done == total:
                # fits that share a Checkpoint's dirname (the clones of a cross-validation or
                # a grid search) load each other's run: the later ones would silently be the
                # first one's model, its validation data trained on
                warn_user(
                    f"the history loaded when fit began (skorch's LoadInitState) holds all "
                    f"{name}={total} epochs: no epoch is trained, the model is the checkpoint's. "
                    "Fits that share a Checkpoint's dirname (the clones of a cross-validation "
                    "or a grid search) load each other's runs: leave LoadInitState out of a "
                    "cloned estimator, or give each fit its own dirname")
            elif done and not isinstance(self.random_state, numbers.Integral):
                # the seed of the interrupted run is lost: a SubjectValidSplit without a
                # random_state of its own holds out other subjects, some the loaded model
                # trained on
                warn_user(
                    f"resuming a run of {done} epoch(s) with random_state="
                    f"{self.random_state!r}: this fit draws its shuffling, stochastic depth and "
                    "held-out subjects (a train_split without a random_state of its own) anew, "
                    "not as the interrupted run did, so it validates on subjects the loaded "
                    "model may have trained on; pass an integer random_state to resume a run "
                    "as it was")
            loader = self.get_params_for("iterator_train")
            if (done and done < total and stopped is None and loader.get("shuffle", False)
                    and loader.get("generator") is not None):
                warn_user(
                    f"resuming a run of {done} epoch(s) whose training loader shuffles with a "
                    "generator of its own (iterator_train__generator): a fit does not reseed "
                    "it, nor does a checkpoint save it, so the epochs this fit trains are not "
                    "shuffled as the interrupted run's would have been; leave it out for the "
                    "loader to shuffle from random_state")
            epochs = 0 if stopped is not None else max(total - done, 0)
            if epochs and cut is not None and cut.get("epoch") == done + 1:
                self._resume_cut_ = cut  # its first epoch goes on after the cut's batches
        self._epochs_run_, self._epochs_done_ = total, done
        return epochs

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Before the callbacks begin: on a fitted net with skorch ``LRScheduler`` callbacks,
        give the optimizer's groups the initial rates torch's schedulers start from.

        A continued fit (``warm_start``, ``partial_fit``) builds such a scheduler at the
        history's last epoch, which torch refuses for groups without ``"initial_lr"`` (those
        of a fit with the built-in warm-up and cosine): they start from the peak (``lr`` or
        ``optimizer__lr``) times their layer-wise scale, not from where the cosine ended.

        Parameters
        ----------
        net : BrainJEPAClassifier or BrainJEPARegressor
            This net.
        X, y, **kwargs
            As skorch passes them.
        """
        super().on_train_begin(net, X=X, y=y, **kwargs)
        if len(self.history_) and any(isinstance(callback, LRScheduler)
                                      for _, callback in self.callbacks_):
            set_initial_rates(self)

    def _stop_on_sigterm(self, when):
        """Stop the fit if SIGTERM arrived: :class:`TrainingInterrupted`, carried through
        skorch's ``partial_fit`` (which would swallow a ``KeyboardInterrupt``)."""
        if self.__dict__.get("_sigterm_"):
            raise _Interrupted from TrainingInterrupted(self._interrupted_message("SIGTERM",
                                                                                when))

    def _interrupted_message(self, signal_name, when):
        """What an interruption by ``signal_name`` (``"SIGTERM"``, ``"Ctrl-C"``) ``when`` (a
        place in the fit) did, and how the fit goes on: only ``fit`` of a new model resumes
        from skorch's ``Checkpoint``."""
        if self.__dict__.get("_resumable_", False):
            after = ("With skorch's Checkpoint and LoadInitState, the same fit again resumes "
                     "after the last epoch the checkpoint saved")
        else:
            after = ("A continued fit (partial_fit, or fit with warm_start=True) does not "
                     "resume from a checkpoint: called again, it trains its epochs from the "
                     "estimator as it was")
        return (f"stopped by {signal_name} {when}; the estimator is left as it was before "
                f"this call. {after}")

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Start the epoch's record (skorch), then seed the epoch's random draws.

        During ``fit``, torch's generators (the fit's fork of them) are seeded from
        ``random_state`` and the epoch's number in ``history_``, so that a fit resumed from a
        checkpoint shuffles and drops paths as the uninterrupted run did. A SIGTERM that
        arrived since the last batch stops the fit here, before the epoch starts.

        Parameters
        ----------
        net : BrainJEPAClassifier or BrainJEPARegressor
            This net.
        dataset_train, dataset_valid, **kwargs
            As skorch passes them.
        """
        self._stop_on_sigterm(f"before epoch {len(self.history_) + 1}")
        # the training loader's batches, which the record of an epoch cut short keeps (fit_loop)
        loader = self.get_iterator(dataset_train, training=True)
        # (a loader class of one's own may have no len, a DataLoader one that fails when its
        # sampler has none: skorch only iterates it)
        self._epoch_loader_ = (loader_length(loader), getattr(loader, "batch_size", None))
        resumed_cut = self.__dict__.pop("_resume_cut_", None)
        trained = self._batches_trained_before_cut(resumed_cut)
        if trained:
            # skorch's LRScheduler stepping per batch, also through the batches skipped
            restore_lr_schedulers(self, extra_batches=len(trained))
        super().on_epoch_begin(net, dataset_train=dataset_train, dataset_valid=dataset_valid,
                               **kwargs)
        self.__dict__["_epoch_open_"] = True  # until on_epoch_end: see fit_loop
        seed = self.__dict__.get("_seed_")
        if seed is not None:
            _seed_epoch(seed, len(self.history_), self._torch_device())
        if trained:
            # the records of the batches skipped, for the epoch's train_loss (and the batch
            # scores of skorch's BatchScoring); the batches after them count on from there
            self.history_[-1]["batches"] = trained
            self._skip_batches_ = len(trained)  # read by run_single_epoch and WarmupCosineLR
            # the cut run's, which the batches skipped are checked against (run_single_epoch)
            self._skipped_digest_ = resumed_cut.get("batches_digest")

    def _batches_trained_before_cut(self, cut):
        """The records of the training batches that the epoch cut short being resumed had
        trained (none when no epoch is resumed), once checked that the training loader
        yields the batches of the cut run (else none, with a warning)."""
        if cut is None:
            return []
        trained = [copy.deepcopy(batch) for batch in cut.get("batches", [])
                   if "train_loss" in batch]
        if not trained:  # cut before its first batch trained: nothing to skip
            return []
        done = cut.get("batches_done")
        loader = [cut.get("batches_per_epoch"), cut.get("loader_batch_size")]
        if done != len(trained):
            # a history of an earlier version, which did not record where the epoch was cut
            why = "the history does not record where the epoch was cut"
        elif loader != list(self._epoch_loader_):
            # a checkpoint without its run file (which refuses other settings)
            why = ("the training loader does not yield the batches that run trained ({} per "
                   "epoch in batches of {} then, {} of {} now)".format(*loader,
                                                                      *self._epoch_loader_))
        else:
            return trained
        warn_user(
            f"the history loaded when fit began (skorch's LoadInitState) ends with epoch "
            f"{cut.get('epoch')} cut short after {len(trained)} training batch(es), but {why}: "
            f"epoch {cut.get('epoch')} is trained again from its first batch, from weights "
            "that trained on part of it already")
        return []

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        """Start the batch's record (skorch), then seed the training batch's random draws.

        During ``fit``, torch's generators are seeded from ``random_state``, the epoch's
        number and the batch's (its place among the epoch's batches), so that a fit that
        resumes an epoch after its first batches draws the stochastic depth of the batches
        left as the uninterrupted run did.

        Parameters
        ----------
        net : BrainJEPAClassifier or BrainJEPARegressor
            This net.
        batch, training, **kwargs
            As skorch passes them.
        """
        super().on_batch_begin(net, batch=batch, training=training, **kwargs)
        seed = self.__dict__.get("_seed_")
        if training and seed is not None:
            _seed_epoch(seed, len(self.history_), self._torch_device(),
                        batch=len(self.history_[-1]["batches"]))

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """skorch's pass over ``iterator``; the training pass of a resumed epoch cut short
        skips the batches it had trained (see :meth:`fit_loop`).

        Parameters
        ----------
        iterator, training, prefix, step_fn, **fit_params
            As in skorch.
        """
        passes = self.__dict__.setdefault("_pass_loaders_", [])
        if iterator is not None and not any(loader is iterator for loader in passes):
            passes.append(iterator)  # whose persistent workers the fit stops as it ends
        if training and iterator is not self.__dict__.get("_started_loader_"):
            self._started_loader_ = iterator  # this fit's, at its first training pass
            _start_persistent_workers(iterator)
        skip = self.__dict__.pop("_skip_batches_", 0) if training else 0
        if not training or iterator is None:
            return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        # the digests of the epoch's training batches, for the record of an epoch cut short
        digests = self._batch_digests_ = []
        batches = _digesting(iterator, digests)
        try:
            if not skip:
                return super().run_single_epoch(batches, training, prefix, step_fn, **fit_params)
            # the epoch's order, drawn as the uninterrupted run drew it
            for _ in range(skip):  # loaded again, then dropped
                next(batches, None)
            recorded = self.__dict__.pop("_skipped_digest_", None)
            if recorded is not None and _digest_of_batches(digests) != recorded:
                left = ("its remaining batches" if self._epoch_loader_[0] is None
                        else f"its remaining {self._epoch_loader_[0] - skip} batch(es)")
                warn_user(
                    f"epoch {len(self.history_)} of the run resumed was cut after {skip} training "
                    f"batch(es), but this fit's training loader does not yield them again first: "
                    f"{_why_another_order(iterator)}. The epoch's order cannot be reproduced: "
                    f"{left} are those after the first {skip} of another order, so windows the "
                    f"cut run trained in epoch {len(self.history_)} are trained again and others "
                    "not at all in it, and the run does not end as the uninterrupted one")
            _count_skipped_in_progress_bars(self, skip)
            super().run_single_epoch(batches, training, prefix, step_fn, **fit_params)
            # the epoch's count, as the uninterrupted run records it
            key = f"{prefix}_batch_count"
            self.history.record(key, self.history[-1, key] + skip)
        finally:
            # a pass that an error ended: its traceback keeps this frame, and the suspended
            # generator kept the loader's iterator, whose workers lived on with it
            batches.close()

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        """Stop the fit after this training batch when SIGTERM arrived.

        Parameters
        ----------
        net : BrainJEPAClassifier or BrainJEPARegressor
            This net.
        batch, training, **kwargs
            As skorch passes them.
        """
        super().on_batch_end(net, batch=batch, training=training, **kwargs)
        if training:
            self._stop_on_sigterm(f"after a training batch of epoch {len(self.history_)}")

    def initialize_module(self):
        """Build the encoder (from ``weights``) with its pooled head.

        Unless ``freeze_encoder``, the encoder is made trainable and given ``drop_path_rate``.
        The head is ``"batchnorm"`` for a frozen encoder (linear probe), else ``"layernorm"``.

        Returns
        -------
        self
            The net, its ``module_`` set.

        Raises
        ------
        AttributeError
            Before ``fit`` has set the output size (``n_outputs_``).
        """
        if not hasattr(self, "n_outputs_"):
            raise AttributeError(f"{type(self).__name__} builds its module in fit: "
                                 f"{_BUILT_IN_FIT}")
        resolved = self.__dict__.pop("_resolved_", None) or self._resolve()
        encoder = resolved.encoder
        if not self.freeze_encoder:
            # a pretrained model's target encoder comes frozen (it was an EMA copy)
            encoder.requires_grad_(True).set_drop_path_rate(self.drop_path_rate)
        if getattr(self, "preprocessor_", None) is not None:
            # what its input must look like, as a pretrained BrainJEPA carries it: the
            # estimators given module_.encoder as weights preprocess as this fit did
            encoder.preprocessing, encoder.region_names = self._input_format()
            encoder.trained_n_patches = self._trained_n_patches(resolved, encoder.patch_size)
            encoder.frozen_by_fine_tuner = bool(self.freeze_encoder)
        self._built_with_ = self._build_settings()
        # a gradients or num_heads the weights carry their own of changes nothing since
        self._carried_by_weights_ = resolved.carried
        self.module_ = EncoderWithHead(
            encoder, self.n_outputs_, pooling=self.pooling,
            head="batchnorm" if self.freeze_encoder else "layernorm",
            final_norm=bool(self.final_norm), freeze_encoder=bool(self.freeze_encoder),
        )
        return self

    def initialize_optimizer(self, triggered_directly=None):
        """The optimizer over layer-wise learning-rate groups (see ``layer_decay``).

        Each group learns at the optimizer's ``lr`` times its ``"lr_scale"``; the decayed
        groups get ``optimizer__weight_decay`` if set, else ``weight_decay``.

        Parameters
        ----------
        triggered_directly : object, optional
            skorch's deprecated argument (unused).

        Returns
        -------
        self
            The net, its ``optimizer_`` set.

        Raises
        ------
        ValueError
            When ``optimizer__param_groups`` is set, ``optimizer__weight_decay`` is negative,
            or the optimizer's constructor refuses a setting (e.g. a negative ``lr``).
        """
        self.optimizer_ = self._build_optimizer()
        return self

    def _build_optimizer(self):
        """A new optimizer over the layer-wise groups, from the current settings (which the
        optimizer's constructor checks)."""
        self._check_optimizer()
        if "param_groups" in self.get_params_for("optimizer"):
            raise ValueError("optimizer__param_groups is not supported: the parameter groups "
                             "come from layer_decay (set layer_decay=1 to turn it off)")
        named = self.get_all_learnable_params()
        _, kwargs = self.get_params_for_optimizer("optimizer", named)
        # optimizer__weight_decay, if given, overrides the weight_decay parameter
        kwargs = python_values({"weight_decay": self.weight_decay, **kwargs})
        lr, weight_decay = kwargs.pop("lr"), kwargs.pop("weight_decay")
        # the decay goes into the groups, where torch's constructors do not check it
        if isinstance(weight_decay, numbers.Real) and not weight_decay >= 0:
            raise ValueError(f"optimizer__weight_decay={weight_decay!r} must be a non-negative "
                             "number (a negative decay would grow the weights)")
        # optimizer__lr overrides lr: a string failed in the groups with Python's "can't
        # multiply sequence by non-int of type 'float'"
        if not isinstance(lr, (numbers.Real, torch.Tensor)) or isinstance(lr, bool):
            name = "optimizer__lr" if "lr" in self.get_params_for("optimizer") else "lr"
            raise ValueError(f"{name}={lr!r} must be a non-negative number")
        module = getattr(self.module_, "_orig_mod", self.module_)  # compiled: the module inside
        groups = layer_decay_groups(module, weight_decay, self.layer_decay)
        for group in groups:
            group["lr"] = lr * group["lr_scale"]
        return self.optimizer(groups, lr=lr, **kwargs)

    def train_step_single(self, batch, **fit_params):
        """skorch's forward and backward of one training batch, in micro-batches.

        The batch is split into ``accumulation_steps`` micro-batches whose gradients add up
        (each loss weighted by its share of the batch); skorch's ``train_step`` then takes one
        optimizer step.

        Parameters
        ----------
        batch : tuple
            ``(X, y)`` tensors of the batch, from the training loader.
        **fit_params : dict
            Passed to skorch's ``train_step_single``.

        Returns
        -------
        dict
            ``"loss"``: the batch's loss (the sum of the weighted micro-batch losses);
            ``"y_pred"``: the module's outputs for the whole batch.
        """
        n_micro = int(self.accumulation_steps)
        if n_micro == 1:
            return super().train_step_single(batch, **fit_params)
        Xi, yi = unpack_data(batch)
        total, predictions = None, []
        parts = zip(torch.tensor_split(Xi, n_micro), torch.tensor_split(yi, n_micro))
        try:
            for X_part, y_part in parts:
                if not len(X_part):  # a batch smaller than accumulation_steps
                    continue
                self._loss_scale_ = len(X_part) / len(Xi)  # read by get_loss
                step = super().train_step_single((X_part, y_part), **fit_params)
                total = step["loss"] if total is None else total + step["loss"]
                predictions.append(step["y_pred"])
        finally:
            self.__dict__.pop("_loss_scale_", None)
        return {"loss": total, "y_pred": torch.cat(predictions)}

    def get_loss(self, y_pred, y_true, *args, **kwargs):
        """skorch's loss, weighted by the micro-batch's share of its batch when accumulating.

        Parameters
        ----------
        y_pred : torch.Tensor
            The module's outputs.
        y_true : torch.Tensor
            The targets.
        *args, **kwargs
            Passed to skorch's ``get_loss``.

        Returns
        -------
        torch.Tensor
            The scalar loss (skorch's, times the share when accumulating).
        """
        loss = super().get_loss(y_pred, y_true, *args, **kwargs)
        return loss * self.__dict__.get("_loss_scale_", 1.0)

    def infer(self, x, **fit_params):
        """Forward a batch of windows, under bf16 autocast where ``precision`` asks for it.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, n_frames, n_regions)`` windows.
        **fit_params : dict
            Passed to skorch's ``infer``.

        Returns
        -------
        torch.Tensor
            ``(batch, n_outputs)`` outputs, as float32.
        """
        device = torch.device(self.device)
        dtype = resolve_autocast(self.precision, device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = super().infer(x, **fit_params)
        return out.float()

    # -- subjects -> windows ---------------------------------------------------------------

    #: What the module, its optimizer groups and the fitted preprocessing are built from: a
    #: continued fit (``warm_start``, ``partial_fit``) keeps all three, so these may not
    #: change in between.
    #: What a prediction depends on among them (the others shape training only).
    _PREDICTION_PARAMETERS = (*WEIGHTS_PARAMETERS, "freeze_encoder", "pooling", "final_norm",
                              *WEIGHTS_PREPROCESSING_PARAMETERS)
    _BUILD_PARAMETERS = (*_PREDICTION_PARAMETERS, "drop_path_rate", "layer_decay",
                         "weight_decay")

    def _build_settings(self):
        return {name: getattr(self, name) for name in self._BUILD_PARAMETERS}

    def _check_build_settings(self):
        changed = changed_settings(self, getattr(self, "_built_with_", None),
                                   self._BUILD_PARAMETERS)
        if changed:
            raise ValueError(
                f"{', '.join(changed)}: a continued fit (warm_start=True or partial_fit) trains "
                "the model and optimizer built by the first fit, on series preprocessed as in "
                "that fit, so these settings cannot change; set them back, or fit with "
                "warm_start=False to build a new model")

    def _initialize_criterion(self, reason=None):
        super()._initialize_criterion(reason)
        self._refuse_trainable_criterion()
        return self

    def _refuse_trainable_criterion(self):
        """Refuse a ``criterion_`` with parameters to train."""
        criterion = getattr(self.criterion_, "_orig_mod", self.criterion_)
        trainable = [name for name, parameter in criterion.named_parameters()
                     if parameter.requires_grad]
        if trainable:
            # the optimizer, built over the model's layer-wise groups, would never train them
            raise ValueError(
                f"criterion={self.criterion!r} has parameters to train ({', '.join(trainable)}): "
                "the fine-tuners train the model's parameters only; make them buffers, or fixed "
                "(requires_grad=False)")

    def _initialize_optimizer(self, reason=None):
        optimizer = self.__dict__.get("optimizer_")
        if self.__dict__.get("_in_skorch_set_params_") and optimizer is not None:
            # skorch builds the optimizer anew after a criterion setting (criterion__weight,
            # say), for a loss with parameters to train; ours trains the module alone (a loss
            # with parameters is refused), and a continued fit lost Adam's moments, which
            # class_weight keeps
            return self
        super()._initialize_optimizer(reason)
        # skorch's setter would write optimizer__weight_decay into every group, the groups
        # of biases and norms included
        self.virtual_params_["optimizer__*"] = layer_groups_setter
        self.virtual_params_["lr"] = layer_groups_setter
        return self

    def get_split_datasets(self, X, y=None, **fit_params):
        """skorch's split into training and validation windows, then the class weights.

        During ``fit``, the class weights are counted over the training windows and the
        criterion is rebuilt with them.

        Parameters
        ----------
        X : SubjectWindows
            The windows passed to skorch's loop.
        y : array-like, optional
            Their targets.
        **fit_params : dict
            Passed to skorch's ``get_split_datasets`` (and its ``train_split``).

        Returns
        -------
        dataset_train : SubjectWindows or torch.utils.data.Subset
            The training windows.
        dataset_valid : torch.utils.data.Subset or None
            The validation windows; None without ``train_split``.

        Raises
        ------
        ValueError
            When ``train_split`` gives a validation set that is not windows of the subjects
            passed to ``fit``, or none while a callback monitors a validation score
            (skorch's ``EarlyStopping`` on ``valid_loss``, say): before the first epoch.
        """
        held_out = self.__dict__.get("_held_out_")
        seeded = self.__dict__.get("_seeded_split_")
        if held_out is not None:  # SubjectValidSplit's draw of this fit
            dataset_train, dataset_valid = split_windows(self.get_dataset(X, y), held_out)
        else:
            if seeded is not None:  # skorch's, with train_split's seeded copy
                datasets = seeded(self.get_dataset(X, y), *(() if y is None else (y,)),
                                  **fit_params)
            else:
                datasets = super().get_split_datasets(X, y, **fit_params)
            if not (isinstance(datasets, (tuple, list)) and len(datasets) == 2
                    and datasets[0] is not None):
                # skorch unpacked it: "too many values to unpack (expected 2)"
                pair = isinstance(datasets, (tuple, list)) and len(datasets) == 2
                shown = ("None for the training windows" if pair
                         else f"{len(datasets)} items" if isinstance(datasets, (tuple, list))
                         else type_with_article(datasets))
                raise ValueError(
                    f"train_split={self.train_split!r} returned {shown}: a split of one's own is "
                    "called with the training windows (and their targets) and returns a pair, "
                    "(training windows, validation windows or None), as "
                    "brainjepa_sk.finetune.SubjectValidSplit(0.2) does")
            dataset_train, dataset_valid = datasets
        if dataset_valid is not None and not is_windows(dataset_valid, self):
            raise ValueError(
                f"train_split={self.train_split!r} gave a validation set that is not windows of "
                "the subjects passed to fit (e.g. skorch's predefined_split): validation data "
                "must be preprocessed and cut into windows like the training data. Use "
                "train_split=SubjectValidSplit(...) to hold out subjects of X, or score held-out "
                "subjects from a callback with net.predict / net.score")
        if self.__dict__.get("_training_", False):
            if dataset_valid is None and self.__dict__.get("_epochs_run_") != 0:
                self._check_no_validation_monitored()
            self._set_class_weights(targets_of(dataset_train))
            self.initialize_criterion()
            # a continued fit builds it here alone (a loss set as an attribute since included)
            self._refuse_trainable_criterion()
            self.criterion_ = self.torch_compile(to_device(self.criterion_, self.device),
                                                 name="criterion")
        return dataset_train, dataset_valid

    def _check_no_validation_monitored(self):
        """Refuse, before the first epoch, callbacks that read a validation score when the fit
        has no validation windows: skorch would fail at the first epoch's end, EarlyStopping
        with a bare ``KeyError``, the LRScheduler asking for a scoring callback placed before
        it (see :func:`~brainjepa_sk._skorch.validation_monitors`)."""
        monitors = validation_monitors(self.callbacks_)
        if monitors:
            name, callback, key = monitors[0]
            kind = type(callback).__name__
            named = repr(name) if name == kind else f"{name!r} ({kind})"
            # a Checkpoint reads a flag of the history (a *_best key): 'train_loss' there, a
            # number, would save at every epoch by chance; monitor=None says so on purpose
            training_key = "train_loss_best" if key.endswith("_best") else "train_loss"
            every_epoch = (", or monitor=None to save after every epoch"
                           if isinstance(callback, Checkpoint) else "")
            raise ValueError(
                f"the callback {named} monitors {key!r}, a score "
                f"of the validation windows, but train_split={self.train_split!r} gives none: "
                "pass a validation split, e.g. train_split=SubjectValidSplit(0.2), or monitor "
                f"a training score such as {training_key!r}{every_epoch}")
        # a scoring callback of the user's on the validation windows is skipped by skorch
        # without a word: its column was missing from the progress table and history_
        defaults = {name for name, _ in self.get_default_callbacks()}
        for name, callback in self.callbacks_:
            if (name not in defaults and isinstance(callback, (EpochScoring, BatchScoring))
                    and not callback.on_train):
                key = getattr(callback, "name_", callback.name)  # its history key
                warn_user(
                    f"the callback {key!r} scores the validation windows (on_train=False), but "
                    f"train_split={self.train_split!r} gives none: it scores nothing and "
                    "history_ has no column for it; pass a validation split, e.g. "
                    "train_split=SubjectValidSplit(0.2), or on_train=True to score the "
                    "training windows")

    def _resolve(self, subjects=None):
        return resolve_estimator_weights(self, subjects)

    def _encode_targets(self, y, n_subjects, continuing, classes=None, fit_rows=None):
        """Check ``y`` and return one training target per subject (set output sizes): a
        class code, or the regressor's targets in the units of ``y`` (its loss scales them).

        Statistics of the targets (a regressor's scaling) come from the subjects
        ``fit_rows`` (all when None)."""
        raise NotImplementedError

    def _split_labels(self, targets):
        """What ``SubjectValidSplit`` stratifies on: the labels themselves (their codes follow
        ``classes``, whose order would change the draw)."""
        return targets

    def _warn_classes_held_out(self, targets, fit_rows):
        """Warn of classes whose subjects the validation split all held out (classifier)."""

    #: What one value of y is called in the messages ("label" for the classifier).
    _TARGET_WORD = "target"

    def _check_y_given(self, y, X=None):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None")
        _refuse_missing_targets(y, self._TARGET_WORD, X)

    def fit(self, X, y=None, **fit_params):
        """Fine-tune on subjects: every window of a subject is a sample with its target.

        Builds the model from ``weights`` and fits the preprocessing, unless ``warm_start``
        is set and the estimator is fitted: then training continues from the current model.
        A fit of a new model whose callbacks load a run's history when training begins
        (skorch's ``Checkpoint`` with ``LoadInitState``) resumes that run: it trains the epochs
        of ``max_epochs`` the history does not hold, the schedule going on where it stopped.
        A run whose checkpoint (its ``<fn_prefix>run.json``) records other subjects, targets or
        settings than this fit's is refused (see :meth:`fit_loop`).
        SIGTERM (a scheduler's pre-emption) stops it after the current batch with
        :class:`~brainjepa_sk.train.TrainingInterrupted`, leaving the estimator as it was;
        Ctrl-C during training raises it too, at once. Its message says where the fit stopped
        and whether the same call again resumes.

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions), list of 2-D arrays or files
            Subjects' ROI time series; lengths may differ.
            Files are a glob or a list of paths (see :mod:`brainjepa_sk.files`).
        y : array-like of shape (n_subjects,) (or (n_subjects, n_targets) for regression)
            One target per subject.
        **fit_params : dict
            ``epochs``, skorch's number of epochs to train (``max_epochs`` when None);
            ``groups``, one group ID per subject (a family, a site), in ``X``'s order (a
            glob's files sorted), which ``train_split=SubjectValidSplit(...)`` holds out
            whole (refused with another ``train_split``; a pandas Series whose index names
            the files in another order is refused, as ``y``); any other is refused with a
            ``TypeError``.

        Returns
        -------
        self : BrainJEPAClassifier or BrainJEPARegressor
            The fitted estimator.

        Raises
        ------
        ValueError
            Among others, for the constructor's settings that ``set_params`` refuses
            (``gradients__*``, ``callbacks__<name>`` of a name no callback has, ...), with its
            words; naming the folder, when the run its ``LoadInitState`` loads is of
            other subjects or targets, or of other settings (named); naming the first subject,
            when ``y`` has a missing value (NaN, None or ``pandas.NA``), or (the regressor's)
            one that is no number; for skorch's ``dataset`` other than its default, or
            ``dataset__*`` settings (the subjects are cut into windows of the estimator's own
            dataset); for a loader's ``collate_fn`` or ``worker_init_fn`` that is not callable;
            for a torch optimizer that takes no layer-wise groups (``LBFGS``) or refuses its
            settings; for the classifier's
            ``criterion__weight`` of another length than the classes (for torch's losses that
            weigh classes); for a ``train_split`` that returns no pair of datasets. The
            estimator is left as it was.
        """
        continuing = bool(self.warm_start) and self._is_fitted()
        return self._fit_subjects(X, y, continuing, fit_params, routing="fit")

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Train ``max_epochs`` more epochs, from the current model if fitted.

        SIGTERM (a scheduler's pre-emption) stops it after the current batch with
        :class:`~brainjepa_sk.train.TrainingInterrupted`, leaving the estimator as it was, as
        for ``fit``; Ctrl-C during training raises it too, at once. A continued fit is not
        resumed from a checkpoint: called again, it trains its epochs anew.

        Parameters
        ----------
        X, y
            As in ``fit``.
        classes : array-like, optional
            All the labels (classification), as in scikit-learn: needed only at the first
            call (``classes_`` is them sorted, or the ``classes`` parameter, in its order, when
            that is set: they must then be the same labels); a later call may repeat them, in
            any order, but not change them (a ``ValueError``).
        **fit_params : dict
            As in ``fit``.

        Returns
        -------
        self : BrainJEPAClassifier or BrainJEPARegressor
            The fitted estimator.
        """
        fit_params.pop("_routing_method", None)
        return self._fit_subjects(X, y, self._is_fitted(), fit_params, classes=classes,
                                  routing="partial_fit")

    def notify(self, method_name, **cb_kwargs):
        """skorch's dispatch to the net's and the callbacks' hooks.

        While the callbacks see the end of a batch, the batch's tensor of windows is noted:
        skorch's ``BatchScoring`` passes it to ``predict``, which then scores those windows;
        any other tensor given to ``predict`` is subjects. The files a skorch ``Checkpoint``
        (or ``TrainEndCheckpoint``) saves in one hook are moved into place together, once all
        are written.

        Parameters
        ----------
        method_name : str
            The hook, e.g. ``"on_batch_end"``.
        **cb_kwargs : dict
            Its arguments.
        """
        batch = cb_kwargs.get("batch")
        if method_name != "on_batch_end" or not isinstance(batch, (tuple, list)):
            return self._notify(method_name, cb_kwargs)
        self._batch_windows_ = unpack_data(batch)[0]
        try:
            return self._notify(method_name, cb_kwargs)
        finally:
            self.__dict__.pop("_batch_windows_", None)

    def _notify(self, method_name, cb_kwargs):
        """skorch's ``notify``, a checkpoint's files of one hook saved together: it saves
        them one ``save_params`` call at a time, and a kill between them had left new weights
        beside the previous epoch's history, which ``LoadInitState`` resumed as another run.
        With the files it saved, the run file that records the fit's data and settings is
        written (``<fn_prefix>run.json``), which a resumed fit checks."""
        # At the end of training, the callbacks see the record of an epoch one of them cut
        # short after a batch (fit_loop dropped it), as skorch shows it: the model holds what
        # it trained of that epoch, which EarlyStopping(load_best=True) takes as the last
        # (else it kept those weights, not its best epoch's) and a checkpoint names its files
        # after (else they failed on an empty history). A history saved then holds it,
        # marked "cut_short", for load_params to name those files from (and leave it out);
        # a pickled one leaves it out.
        cut = self.__dict__.pop("_cut_epoch_", None) if method_name == "on_train_end" else None
        if cut is None:
            return self._notify_hooks(method_name, cb_kwargs)
        self._shown_cut_epoch_ = cut
        try:
            with _showing_record(self.history_, cut):
                return self._notify_hooks(method_name, cb_kwargs)
        finally:
            self.__dict__.pop("_shown_cut_epoch_", None)

    def _notify_hooks(self, method_name, cb_kwargs):
        getattr(self, method_name)(self, **cb_kwargs)
        fingerprint = self.__dict__.get("_run_fingerprint_")
        for _, callback in self.callbacks_:
            together = isinstance(callback, (Checkpoint, TrainEndCheckpoint))
            with saving_together() if together else contextlib.nullcontext() as saves, \
                    pickling_atomically(callback, self), \
                    _scoring_uncached(callback, self, method_name):
                getattr(callback, method_name)(self, **cb_kwargs)
                if together and saves["renames"] and fingerprint is not None:
                    # the run the files are of, replaced with them
                    save_run_fingerprint(callback, fingerprint)

    def _refuse_sample_weight(self):
        hint = "weigh the classes with class_weight" if hasattr(self, "class_weight") else (
            "repeat subjects to weigh them")
        raise ValueError(f"{type(self).__name__} does not take sample_weight (skorch would "
                         f"pass it to the module): {hint}")

    def _refuse_requests(self, method, requests, taken):
        """Refuse metadata requested for ``method`` (routed to it: ``True`` or an alias) that
        it would refuse when a meta-estimator passes it, as ``fit`` refuses it."""
        if not get_config()["enable_metadata_routing"]:
            return  # skorch's error says to enable the routing
        routed = sorted(name for name, alias in requests.items()
                        if alias is True or (isinstance(alias, str)
                                             and alias not in (UNUSED, WARN)))
        if "sample_weight" in routed:
            self._refuse_sample_weight()
        unknown = [name for name in routed if name not in taken]
        if unknown:
            names = " and ".join([", ".join(taken[:-1]), taken[-1]] if len(taken) > 1 else taken)
            raise TypeError(f"{type(self).__name__}.{method} takes no metadata "
                            f"{', '.join(map(repr, unknown))}: only {names} may be routed to it")

    def set_fit_request(self, **kwargs):
        """Request metadata for ``fit`` (with ``sklearn.set_config(enable_metadata_routing=True)``),
        as skorch does, except what ``fit`` refuses.

        Parameters
        ----------
        **kwargs : dict
            ``param_name=alias``, ``alias`` one of True, False, None or a string. Only
            ``epochs`` and ``groups`` may be routed to ``fit`` (True or an alias).

        Returns
        -------
        self
            The estimator.

        Raises
        ------
        ValueError
            For ``sample_weight`` routed to ``fit``, which takes none (a meta-estimator would
            otherwise reach ``fit`` to be refused there).
        TypeError
            For other metadata routed to ``fit``, which takes ``epochs`` and ``groups`` only.
        """
        self._refuse_requests("fit", kwargs, ("epochs", "groups"))
        return super().set_fit_request(**kwargs)

    def set_partial_fit_request(self, **kwargs):
        """Request metadata for ``partial_fit``, as :meth:`set_fit_request` does for ``fit``
        (``classes`` may be routed too).

        Parameters
        ----------
        **kwargs : dict
            ``param_name=alias``, as in :meth:`set_fit_request`.

        Returns
        -------
        self
            The estimator.

        Raises
        ------
        ValueError
            For ``sample_weight`` routed to ``partial_fit``, which takes none.
        TypeError
            For metadata routed to ``partial_fit`` other than ``epochs``, ``classes`` and
            ``groups``.
        """
        self._refuse_requests("partial_fit", kwargs, ("epochs", "classes", "groups"))
        return super().set_partial_fit_request(**kwargs)

    def _is_fitted(self):
        return bool(getattr(self, "initialized_", False)) and hasattr(self, "preprocessor_")

    def score(self, X, y, sample_weight=None):
        """scikit-learn's score of the subjects' predictions: accuracy for the classifier,
        R² for the regressor.

        A ``y`` whose index names the files of ``X`` in another order than ``X``'s is refused,
        as in ``fit``.

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions), list of 2-D arrays or files
            Subjects' ROI time series.
        y : array-like of shape (n_subjects,) or (n_subjects, n_targets)
            Their true labels or targets.
        sample_weight : array-like of shape (n_subjects,), optional
            Weights of the subjects in the score.

        Returns
        -------
        float
            The score.

        Raises
        ------
        ValueError
            Naming the first subject, when ``y`` has a missing (NaN, None or ``pandas.NA``) or
            infinite label or target, as in ``fit``, or (the regressor's) one that is no
            number; when ``y``'s index names the files of ``X`` in another order; when ``y``
            has another length than ``X`` has subjects.
        """
        y = _host_tensor(y)  # a tensor that requires grad read as its values, as in fit
        self._check_y_given(y, X)
        _check_targets_follow_files(_files_of(X), y, globbed=_is_glob(X))
        y = self._scored_targets(y)
        predicted = self.predict(X)
        if _num_samples(y) != len(predicted):
            # scikit-learn's "Found input variables with inconsistent numbers of samples:
            # [3, 8]", as fit words it
            raise ValueError(f"X has {len(predicted)} subjects but y has {_num_samples(y)} "
                             f"{self._Y_WORD}")
        # scikit-learn's score (ClassifierMixin's, RegressorMixin's) of these predictions
        return self._SCORE(y, predicted, sample_weight=sample_weight)

    def _scored_targets(self, y):
        """``y`` as ``score`` compares it with the predictions, checked as ``fit`` checks its
        values (the regressor's: numbers)."""
        return y

    def torch_compile(self, module, name):
        """skorch's ``torch_compile``, with ``compile="auto"`` the pretrainer's: compile on
        CUDA only (skorch compiles for any true value, so "auto" on a CPU as well)."""
        if not resolve_compile(self.compile, self._torch_device()):
            return module
        return super().torch_compile(module, name)

    def _torch_device(self):
        """``device`` as a ``torch.device``, or a clear error before any work is done."""
        if isinstance(self.device, str) and self.device == "auto":
            raise ValueError(
                f"{type(self).__name__} takes skorch's device, which has no 'auto': pass "
                "device='cuda' for a GPU or device='cpu'")
        return resolve_device(self.device, auto=False)

    def _fit_subjects(self, X, y, continuing, fit_params, classes=None, routing="fit"):
        # a tensor y read as its values, as X's tensors are (NumPy refuses one that
        # requires grad)
        y = _host_tensor(y)
        check_parameters(self)
        self._check_values()
        epochs = fit_params.get("epochs")
        if epochs is not None and not _EPOCHS.is_satisfied_by(epochs):
            # skorch's argument, held to max_epochs' rule: skorch trains no epoch for a
            # negative one (a fitted model replaced by an untrained one) and fails on 2.5
            # only once the model is built
            raise ValueError(f"epochs passed to {routing} must be an int >= 0 (or None for "
                             f"max_epochs), got {epochs!r}")
        # the settings given to the constructor that set_params refuses (skorch refused
        # gradients__* only once the model was built, and ignored callbacks__<a name no
        # callback has>)
        given = self.get_params(deep=False)
        self._refuse_module_settings(given)
        self._check_nested_params(given, unknown_prefixes=False)
        self._check_callback_settings(given)
        # torchrun sets RANK with WORLD_SIZE; a WORLD_SIZE alone (a job script's export) is a
        # process on its own, as is_main_process takes it
        n_processes = max(world()[1], _launcher_world_size() if "RANK" in os.environ else 1)
        if n_processes > 1:
            warn_user(f"{type(self).__name__} is not distributed: under torchrun each of the "
                      f"{n_processes} processes fine-tunes a copy of its own on all the data "
                      "(with a Checkpoint, each writing the same files); run it in one process")
        device = self._torch_device()
        split = self.train_split
        if not (callable(split) or split is None
                or isinstance(split, numbers.Number) and split == 0):
            # skorch would call it only after the preprocessing and the model are built
            # (False and 0, which skorch takes as None, stay allowed)
            raise ValueError(
                f"train_split={self.train_split!r} is not a split skorch can call: pass None "
                "(train on every subject) or a callable such as "
                "brainjepa_sk.finetune.SubjectValidSplit(0.2), which holds out whole subjects "
                "(a fraction or a scikit-learn CV object is not one)")
        if "sample_weight" in fit_params:
            self._refuse_sample_weight()
        unknown = sorted(set(fit_params) - {"epochs", "sample_weight", "groups"})
        if unknown:
            # skorch passes them to the split and to the module's forward, which takes none:
            # torch's error came only once the preprocessing and the model were built
            raise TypeError(f"{type(self).__name__}.{routing} got unexpected keyword "
                            f"argument(s) {', '.join(map(repr, unknown))}: it takes epochs "
                            "(skorch's number of epochs) and groups (SubjectValidSplit's) and "
                            "no other")
        fit_params = dict(fit_params)
        groups = fit_params.pop("groups", None)  # the split's alone: skorch never sees them
        if groups is not None and not draws_subjects(self.train_split):
            raise ValueError(
                f"groups were passed to {routing}, but train_split={self.train_split!r} does "
                "not use them: they keep a group's subjects on one side of the validation "
                "split of train_split=SubjectValidSplit(...); without one, pass no groups")
        with restore_on_error(self):
            subjects = validate_subjects(X, estimator=self, reset=not continuing, lazy=True)
            self._check_y_given(y, X)  # its advice for missing targets runs on X as given
            _check_targets_follow_files(subjects, y, globbed=_is_glob(X))
            if groups is not None:
                _check_targets_follow_files(subjects, groups, "groups", globbed=_is_glob(X))
            targets = self._encode_targets(y, len(subjects), continuing, classes)
            fit_rows = held_out = None
            seed = _seed_of(self.random_state)
            # a split without a random_state of its own draws with the estimator's seed
            split = _seeded_split(self.train_split, seed)
            if draws_subjects(split):
                # drawn once, before anything is learned from the subjects: the statistics
                # (robust scaling, target scaling) come from the training subjects only
                # (a split of the user's that subclasses this one may take no groups)
                fit_rows, held_out = split.split_subjects(
                    self._split_labels(targets), **({} if groups is None else {"groups": groups}))
                if not continuing:
                    targets = self._encode_targets(y, len(subjects), continuing, classes,
                                                   fit_rows=fit_rows)
                self._warn_classes_held_out(targets, fit_rows)
                self._warn_held_out_drawn_anew(subjects, continuing, routing)
            scale_check = None
            if continuing:
                self._check_build_settings()
                # the kept optimizer never saw the settings changed since (set_params only
                # writes them into its groups): a new one, thrown away, has torch check them
                self._build_optimizer()
                n_patches = self.preprocessor_.n_frames // self.module_.encoder.patch_size
                check_pooling(self.pooling, n_patches)
            else:
                resolved = self._resolve(subjects)
                # the scale warning of a checkpoint's robust statistics is decided from the
                # first training subjects as the training windows scale them (it read them
                # once more for it); an error before decides it first, reading them
                with preprocessing._scale_check_deferred() as deferred:
                    self.preprocessor_, n_patches = preprocessor_for_subjects(
                        self, resolved, subjects, fit_rows=fit_rows)
                    check_pooling(self.pooling, n_patches)
                if deferred:
                    scale_check = FittedScaleCheck(self, len(subjects), rows=fit_rows)
                self._resolved_ = resolved
                self.region_names_ = resolved.region_names
            # files are read a window at a time by skorch's loader (in its workers with
            # iterator_train__num_workers) unless they are cheaper to cut at once
            windows, subject_index = training_windows(self.preprocessor_, subjects, scale_check)
            windows = WindowArray(windows, self.preprocessor_.n_frames, self.n_features_in_)
            dataset = SubjectWindows(windows, targets[subject_index], subject_index)
            if isinstance(self.train_split, ValidSplit) and len(subject_index) > len(subjects):
                warn_user(
                    "train_split is skorch's ValidSplit, which splits windows: windows of one "
                    "subject end up on both sides; use brainjepa_sk.finetune.SubjectValidSplit",
                )
            rng = forked_rng(seed, device)
            # what a fit changes in place on a fitted net, copied to undo a failure (the
            # attributes it rebinds are restored by restore_on_error)
            saved = self._in_place_state(continuing) if self._is_fitted() else None
            try:
                self._training_ = True
                self._held_out_ = held_out
                self._seed_ = seed  # each epoch's draws are seeded from it
                # only a fit of a new model resumes a run whose history LoadInitState loads
                self._resumable_ = routing == "fit" and not continuing
                self._new_model_ = not continuing
                if self._checkpointed():
                    # before the model is built or trained (a module given as weights counts
                    # by its values)
                    self._run_fingerprint_ = run_fingerprint(self, subjects, y, held_out)
                if split is not self.train_split and not draws_subjects(split):
                    self._seeded_split_ = split  # skorch's ValidSplit, seeded
                with rng:
                    if not continuing:
                        self.initialize()
                    super().partial_fit(dataset, dataset.y, _routing_method=routing,
                                        **fit_params)
            except _Interrupted as interrupted:  # Ctrl-C or SIGTERM, which skorch swallows
                if saved is not None:
                    self._restore_in_place_state(saved)
                raise interrupted.__cause__ from None
            except BaseException:
                if saved is not None:
                    self._restore_in_place_state(saved)
                raise
            finally:
                for name in ("_training_", "_held_out_", "_seeded_split_", "_seed_",
                             "_resumable_", "_new_model_", "_run_fingerprint_"):
                    self.__dict__.pop(name, None)
            self.__dict__.pop("_resolved_", None)
            self._after_fit()
        return self

    def _checkpointed(self):
        """Whether the callbacks include a skorch ``Checkpoint``, ``TrainEndCheckpoint`` or
        ``LoadInitState`` (instances or classes, named or not, also given by name as
        ``callbacks__<name>``): the fit's run is then fingerprinted."""
        kinds = (Checkpoint, TrainEndCheckpoint, LoadInitState)
        if isinstance(self.callbacks, str):  # "disable": no callback at all
            return False
        listed = self.callbacks if isinstance(self.callbacks, (list, tuple)) else []
        # a callback given by name (set_params(callbacks__print_log=Checkpoint(...))) replaces
        # the listed or default one of that name
        named = [value for key, value in vars(self).items()
                 if key.startswith("callbacks__") and "__" not in key[len("callbacks__"):]]
        for item in [*listed, *named]:
            callback = item[1] if isinstance(item, tuple) and len(item) == 2 else item
            if isinstance(callback, kinds) or (isinstance(callback, type)
                                               and issubclass(callback, kinds)):
                return True
        return False

    def _in_place_state(self, continuing):
        """Copies of what a fit changes in place: skorch clears ``history_`` and resets the
        callbacks; a continued fit also trains ``module_`` and ``optimizer_``."""
        # earlier epochs' records are never changed again: a list of them suffices
        state = {"history": (self.history_, list(self.history_)),
                 # callbacks rebind their attributes when reset: shallow copies suffice
                 "callbacks": [(callback, dict(vars(callback)))
                               for _, callback in getattr(self, "callbacks_", [])]}
        if continuing:
            state["trained"] = [_copy_of(getattr(self, f"{name}_"))
                                for name in (*self._modules, *self._criteria, *self._optimizers)]
        return state

    @staticmethod
    def _restore_in_place_state(state):
        history, records = state["history"]
        history[:] = records
        for callback, attributes in state["callbacks"]:
            vars(callback).clear()
            vars(callback).update(attributes)
        _put_back(state.get("trained", []))

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Stop the fit with ``FloatingPointError`` when the epoch's training loss is NaN or
        infinite (the estimator is then left as it was before the fit).

        Parameters
        ----------
        net : BrainJEPAClassifier or BrainJEPARegressor
            This net (skorch calls the net's own hooks before its callbacks').
        dataset_train, dataset_valid, **kwargs
            As skorch passes them.

        Raises
        ------
        FloatingPointError
            When a training batch's loss in ``history_[-1]`` is not finite.
        """
        # the epoch's batches have all run: it keeps its record whatever the callbacks do
        self.__dict__.pop("_epoch_open_", None)
        super().on_epoch_end(net, dataset_train=dataset_train, dataset_valid=dataset_valid,
                             **kwargs)
        self._refuse_non_finite()

    def _refuse_non_finite(self):
        """Raise ``FloatingPointError`` when a training batch's loss in the last epoch's
        record, or a weight, is NaN or infinite."""
        record = self.history_[-1]
        # the batches' losses: the epoch's mean is recorded by a callback that runs later
        bad = [batch["train_loss"] for batch in record.get("batches", [])
               if "train_loss" in batch and not np.isfinite(batch["train_loss"])]
        if bad:
            raise FloatingPointError(
                f"the fine-tuning loss became {bad[0]} in epoch {record['epoch']}: lower lr, "
                "or check the scaling of the input and of y; the estimator is left as it was "
                "before this fit")
        # the losses come before each update: a last update that diverged shows only here
        if not all_finite(self.module_.parameters()):
            raise FloatingPointError(
                f"the fine-tuned weights became NaN or infinite in epoch {record['epoch']}: "
                "lower lr, or check the scaling of the input and of y; the estimator is left "
                "as it was before this fit")

    def _after_fit(self):
        pass

    def _check_values(self):
        """Check what the parameter constraints do not (the values inside a parameter), and
        the torch components, which skorch calls only once the model is built."""
        self._check_optimizer()
        self._check_optimizer_settings()
        criterion = self.criterion
        if not callable(criterion):
            # skorch called it once the preprocessing and the model were built: "'str' object
            # is not callable"
            raise ValueError(
                f"criterion={criterion!r} is not a loss: pass a torch loss class, such as "
                f"criterion={self._CRITERION_EXAMPLE}, with its settings as criterion__* "
                "(criterion__reduction='mean')")
        self._check_criterion_settings()
        self._check_callbacks()
        for name in ("iterator_train", "iterator_valid"):
            loader = getattr(self, name)
            if not callable(loader):
                # skorch called it once the preprocessing and the model were built: "'int'
                # object is not callable"
                raise ValueError(
                    f"{name}={loader!r} is not a data loader class: pass "
                    "torch.utils.data.DataLoader (the default) or a class taking its "
                    f"arguments, with its settings as {name}__* ({name}__num_workers=2)")
        nonlinearity = self.predict_nonlinearity
        if not (nonlinearity is None or callable(nonlinearity)
                or (isinstance(nonlinearity, str) and nonlinearity == "auto")):
            # skorch refused it only at the first predict, once the fit was done
            raise ValueError(
                f"predict_nonlinearity={nonlinearity!r} must be 'auto' (the default), None "
                "(the module's outputs) or a callable applied to them")
        for key in ("iterator_train__batch_size", "iterator_valid__batch_size"):
            # the loaders' own batch sizes, which skorch passes on unchecked: torch's DataLoader
            # answered "8" with "batch_size should be a positive integer value, but got
            # batch_size=8"
            value = self.__dict__.get(key)
            if value is not None and not any(
                    constraint.is_satisfied_by(value)
                    for constraint in self._parameter_constraints["batch_size"]):
                raise ValueError(f"{key}={value!r} must be an int >= 1 (or -1: one batch of "
                                 "all the windows), as batch_size is")
        for name in ("iterator_train", "iterator_valid"):
            for setting in ("collate_fn", "worker_init_fn"):
                # passed on unchecked: torch's DataLoader called them only at the first batch
                # (once the preprocessing and the model were built), "'int' object is not
                # callable"
                key = f"{name}__{setting}"
                value = self.__dict__.get(key)
                if value is not None and not callable(value):
                    raise ValueError(
                        f"{key}={value!r} is not callable: the loader calls its {setting} "
                        f"({_LOADER_CALLABLES[setting]}); pass a function, or None for torch's "
                        "default")
        self._refuse_dataset()

    def _refuse_dataset(self):
        """Refuse skorch's ``dataset`` other than its default, and ``dataset__*`` settings.

        skorch's ``dataset`` wraps the ``X`` and ``y`` given to ``fit`` as samples; the
        fine-tuners' ``X`` are subjects, which they preprocess and cut into windows of a dataset
        of their own (:class:`~brainjepa_sk.finetune.SubjectWindows`), which skorch takes as
        it is: a ``dataset`` given was never used, without a word.
        """
        settings = sorted(key for key in vars(self) if key.startswith("dataset__"))
        if self.dataset is not Dataset:
            settings.insert(0, f"dataset={self.dataset!r}")
        if settings:
            raise ValueError(
                f"{', '.join(settings)}: {type(self).__name__} takes no dataset of skorch's: "
                "it preprocesses the subjects of X and cuts their series into windows, which "
                "make its own dataset (SubjectWindows), so skorch's dataset (which wraps X and "
                "y as samples) and its dataset__* settings would not be used; leave dataset at "
                "its default (skorch.dataset.Dataset), and set the preprocessing through the "
                "estimator's parameters")

    def _warn_held_out_drawn_anew(self, subjects, continuing, routing):
        """Warn when a continued fit on the same subjects holds out others than the call
        before it: the split draws anew at every call (no integer seed), so the model has
        trained on some of the subjects it now validates on. (Other subjects, as in a
        partial_fit over batches of new subjects, are not warned of.)"""
        own = self.train_split.random_state
        seed = self.random_state if own is None else own
        if isinstance(seed, numbers.Integral):  # the same subjects held out at every call
            self.__dict__.pop("_drawn_from_", None)
            return
        digest = subjects_digest(subjects)
        if continuing and self.__dict__.get("_drawn_from_") == digest:
            warn_user(
                f"this continued fit ({routing}) holds out other subjects than the call before "
                f"it on the same X: train_split={self.train_split!r} draws anew at every call "
                f"with random_state={self.random_state!r}, so the model has trained on some of "
                "the subjects it now validates on, and their scores (and an early stop on "
                "them) are optimistic. Give the estimator or the split an integer "
                "random_state to hold out the same subjects in every call")
        self._drawn_from_ = digest

    def _criterion_class(self):
        """The class of ``criterion`` (given as a class, an instance or a partial of one)."""
        criterion = self.criterion
        if isinstance(criterion, functools.partial):  # a class with arguments bound
            criterion = criterion.func
        return criterion if isinstance(criterion, type) else type(criterion)

    def _check_optimizer(self):
        """Refuse an ``optimizer`` that is no optimizer class (a name, a built optimizer)."""
        optimizer = self.optimizer
        if callable(optimizer):
            return
        if isinstance(optimizer, torch.optim.Optimizer):
            what = ("an optimizer already built over parameters: pass its class "
                    f"(optimizer=torch.optim.{type(optimizer).__name__}), which the net builds "
                    "over the encoder's layer-wise groups")
        else:
            what = "not an optimizer class: pass a torch optimizer class, such as " \
                   "optimizer=torch.optim.Adam (torch.optim.AdamW is the default)"
        # skorch called it once the model was built: "'str' object is not callable"
        raise ValueError(f"optimizer={optimizer!r} is {what}, with its settings as "
                         "optimizer__* (optimizer__betas=(0.9, 0.99))")

    def _check_optimizer_settings(self):
        """Refuse, before anything is built, ``optimizer__*`` settings that the optimizer class
        does not take, and, for torch's optimizers, values it refuses (``optimizer__betas=3``):
        torch refused them only once the preprocessing and the model were built
        (``AdamW.__init__() got an unexpected keyword argument 'momentum'``)."""
        optimizer = self.optimizer
        parameters = _named_arguments(optimizer)
        if parameters is None:  # torch's check at the build
            return
        # lr and weight_decay go into the parameter groups; param_groups is refused by name
        given = set(self.get_params_for("optimizer")) - {"lr", "weight_decay", "param_groups"}
        unknown = sorted(given - set(parameters))
        if unknown:
            kind = getattr(optimizer, "func", optimizer)  # a partial: its class
            name = getattr(kind, "__name__", repr(kind))
            takes = [key for key in parameters if key != "params"]
            owners = {"momentum": "torch.optim.SGD", "betas": "torch.optim.AdamW"}
            hint = "".join(f" (optimizer={owners[key]} for optimizer__{key})"
                           for key in unknown[:1] if key in owners)
            raise TypeError(
                f"{', '.join('optimizer__' + key for key in unknown)}: {name} takes no such "
                f"argument (it takes {', '.join(takes)}); drop it, or set the optimizer it "
                f"belongs to{hint}")
        kind = getattr(optimizer, "func", optimizer)  # a partial: its class
        if not (isinstance(kind, type) and kind.__module__.startswith("torch.optim")):
            return
        # torch checks the values when the optimizer is built, once the preprocessing and the
        # model were: "'int' object is not subscriptable" for optimizer__betas=3, and some
        # optimizers take no layer-wise groups (LBFGS). torch's own optimizers are built here
        # over two groups, as the layer-wise ones, at the net's learning rate, to check them
        # first. No step is taken: what only a step checks (capturable=True off CUDA, SparseAdam
        # and dense gradients) torch names at the first batch, which leaves a fitted net as it
        # was. (weight_decay goes into the groups, checked there; NumPy scalars are passed as
        # Python numbers, as _build_optimizer passes them)
        given = self.get_params_for("optimizer")
        lr = python_values({"lr": given.get("lr", self.lr)})["lr"]
        if not isinstance(lr, numbers.Real) or isinstance(lr, bool):
            return  # refused by name when the optimizer is built
        settings = python_values({key: value for key, value in given.items()
                                  if key not in ("param_groups", "lr", "weight_decay")})
        # on the net's device: torch checks there that a fused optimizer supports it
        device = self._torch_device()
        weight = torch.nn.Parameter(torch.zeros(2, 2, device=device))
        bias = torch.nn.Parameter(torch.zeros(2, device=device))
        groups = [{"params": [weight], "weight_decay": 0.0, "lr_scale": 1.0, "lr": lr},
                  {"params": [bias], "weight_decay": 0.0, "lr_scale": 1.0, "lr": lr,
                   "no_weight_decay": True}]
        named = [f"optimizer__{key}" for key in sorted(settings)]
        if "lr" in given:
            named.append("optimizer__lr")
        if optimizer is not kind:  # a partial's own settings too
            named.insert(0, f"optimizer={optimizer!r}")
        try:  # (the build passes lr, over a partial's own)
            optimizer(groups, lr=lr, **settings)
        except (TypeError, ValueError, RuntimeError) as error:
            if not named:
                named = [f"optimizer={kind.__name__}"]
            raise ValueError(f"{', '.join(named)}: {kind.__name__} refuses "
                             f"{'it' if len(named) == 1 else 'them'}: {error}") from error

    def _check_criterion_settings(self):
        """Refuse, before anything is built, ``criterion__*`` settings that the loss class does
        not take: torch refused them only once the preprocessing and the model were built
        (``CrossEntropyLoss.__init__() got an unexpected keyword argument 'wieght'``)."""
        criterion = self.criterion
        parameters = _named_arguments(criterion)
        if parameters is None:  # torch's check at the build
            return
        unknown = sorted(set(self.get_params_for("criterion")) - set(parameters))
        if unknown:
            kind = getattr(criterion, "func", criterion)  # a partial: its class
            name = getattr(kind, "__name__", repr(kind))
            raise TypeError(
                f"{', '.join('criterion__' + key for key in unknown)}: {name} takes no such "
                f"argument (it takes {', '.join(parameters) or 'none'}); drop it, or set the "
                "loss it belongs to")

    def _set_class_weights(self, window_targets):
        pass

    def forward_iter(self, X, training=False, device="cpu"):
        """The module's outputs, a batch of windows at a time, for subjects or for windows.

        Subjects (what ``predict`` takes) are preprocessed and cut into windows as
        ``predict`` does; a dataset (skorch's ``Dataset`` of windows, say) is passed to the
        module as it is, as in skorch.

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions), list of 2-D arrays, files or torch.utils.data.Dataset
            Subjects' ROI time series, or a dataset of ``(n_frames, n_regions)`` windows
            already preprocessed.
        training : bool, default=False
            Run the module in training mode (stochastic depth on), as in skorch.
        device : str or torch.device, default="cpu"
            Where the outputs are put, as in skorch.

        Yields
        ------
        torch.Tensor
            ``(batch, n_outputs)`` outputs of a batch of windows, before skorch's
            nonlinearity (logits; the regressor's in standardized units), the windows of the
            subjects in order.
        """
        if is_windows(X, self) or isinstance(X, torch.utils.data.Dataset):
            yield from self._batch_outputs(X, training, device)
            return
        # skorch's would feed the raw series to the module: not preprocessed, not windowed
        for _, windows, _ in self._subject_windows(X):
            yield from self._batch_outputs(windows, training, device)

    def _batch_outputs(self, X, training, device):
        """skorch's ``forward_iter`` of windows (its loader, its ``evaluation_step``), whose
        loader's persistent workers are stopped as it ends: after an error, the traceback
        (which a notebook keeps) held the loader, and its workers lived on."""
        loader = self.get_iterator(self.get_dataset(X), training=training)
        try:
            for batch in loader:
                yield to_device(self.evaluation_step(batch, training=training), device=device)
        finally:
            stop_persistent_workers(loader)

    def forward(self, X, training=False, device="cpu"):
        """The module's outputs for every window of the subjects (or of a dataset of windows).

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions), list of 2-D arrays, files or torch.utils.data.Dataset
            As in :meth:`forward_iter`.
        training : bool, default=False
            Run the module in training mode, as in skorch.
        device : str or torch.device, default="cpu"
            Where the outputs are put, as in skorch.

        Returns
        -------
        torch.Tensor of shape (n_windows, n_outputs)
            One row per window (one per subject when each has one window), the subjects'
            windows in order, before skorch's nonlinearity: ``predict_proba`` averages the
            softmax of each subject's rows.
        """
        return super().forward(X, training=training, device=device)

    def _subject_windows(self, X):
        """Yield ``(n_subjects_in_chunk, windows, subject_index)`` per chunk of the subjects
        ``X``, preprocessed as the fit's were, ``windows`` a ``WindowArray``."""
        check_is_fitted(self, "preprocessor_")
        self._torch_device()
        subjects = validate_subjects(X, estimator=self, reset=False, lazy=True)
        warn_changed_preprocessing(self, getattr(self, "_built_with_", None),
                                   self._PREDICTION_PARAMETERS)
        for _, n_chunk, windows, subject_index in window_chunks(
                subjects, self.preprocessor_, scale_check=FittedScaleCheck.of(self, subjects)):
            # a WindowArray, so that forward_iter takes them as windows, not as subjects
            yield n_chunk, WindowArray(windows, *windows.shape[1:]), subject_index

    def _subject_outputs(self, X):
        """The module's outputs (after skorch's nonlinearity) averaged over each subject."""
        out = []
        # a DataLoader draws a seed from torch's global generator: keep the caller's state
        # (and a fit's in another thread)
        with forked_rng(None, torch.device("cpu")):
            for n_chunk, windows, subject_index in self._subject_windows(X):
                per_window = super().predict_proba(windows)
                out.append(average_by_subject(per_window, subject_index, n_chunk,
                                              dtype=np.float64))
        return np.concatenate(out)


_SHARED_PARAMETERS = """weights : "ukbiobank", str, path-like or torch.nn.Module, default="ukbiobank"
        Where the encoder starts from, as in :class:`~brainjepa_sk.BrainJEPAEmbedder`: the UK
        Biobank research checkpoint (450 regions), a checkpoint of ours (it carries its
        gradients and preprocessing), a research checkpoint (with ``gradients``), or a
        ``BrainJEPA`` / ``BrainEncoder`` module (copied in float32; the module given is never
        changed), such as another fine-tuner's ``module_.encoder``, which carries that
        fine-tuner's preprocessing and region names.
        The target encoder of a pretrained model is the one fine-tuned.
    gradients, num_heads, data_dir
        As in :class:`~brainjepa_sk.BrainJEPAEmbedder`.
    pooling : {"mean", "roi", "roi_std", "connectivity", "lagged"}, default="mean"
        How the encoder's tokens become the head's input, as in the embedder (``"mean"`` is
        the research model's global average pooling). ``"connectivity"`` on 2 regions (one
        feature) needs ``freeze_encoder=True``: a LayerNorm would make it a constant.
    final_norm : bool, default=True
        Pool the encoder's output after its final LayerNorm (as the research model does).
    freeze_encoder : bool, default=False
        ``False``: fine-tuning; the head is pooled tokens -> ``LayerNorm`` -> linear, and the
        whole encoder learns. ``True``: the research code's linear probe (without the
        ``LayerNorm`` it keeps before the ``BatchNorm1d``); the encoder is frozen (eval mode,
        no stochastic depth) and the head is pooled tokens -> ``BatchNorm1d`` without affine
        parameters -> linear.
    drop_path_rate : float, default=0.1
        Stochastic depth of the last encoder block (0 for the first, linear in between), in
        training only.
    layer_decay : float, default=0.75
        Layer-wise learning-rate decay: block ``i`` of ``L`` (from 0) learns at
        ``layer_decay ** (L - i)`` times ``lr`` and the embeddings at ``layer_decay ** (L + 1)``
        times; the final norm and the head at ``lr``. 1 turns it off.
    weight_decay : float, default=0.05
        AdamW weight decay, none for biases and norms (``optimizer__weight_decay`` overrides).
    warmup_epochs : float, default=0
        Epochs of linear warm-up of the learning rate from 0 (the research scripts use 0).
        As many as the fit's epochs or more warns: the rate would never reach ``lr``. The
        schedule counts an epoch's batches as ``len()`` of the training loader: a loader of
        one's own (``iterator_train``) without one is refused, unless
        ``callbacks__lr_schedule=None`` turns the schedule off.
    min_lr : float, default=1e-6
        Learning rate reached by the cosine decay at the last batch of ``max_epochs``. Above
        ``lr`` warns: the decay would raise the rate.
    t_r, model_t_r, n_frames, window, stride, min_frames, normalization, constant_regions
        The preprocessing, as in :class:`~brainjepa_sk.BrainJEPAEmbedder`: ``"auto"`` repeats
        what the weights were pretrained with; ``constant_regions="zero"`` takes a region
        constant within a subject as 0 after normalization, instead of refusing it (and one
        constant within a window only as 0 in that window).
    precision : {"auto", "fp32", "bf16"}, default="auto"
        ``"auto"``: bf16 autocast on CUDA, float32 on CPU.
    accumulation_steps : int, default=1
        Gradient accumulation: each training batch of ``batch_size`` windows runs forward and
        backward in this many micro-batches (the activations of one in memory), their losses
        weighted by their share of the batch, then one optimizer step: the whole batch's
        gradient, exactly for an unweighted mean loss. The linear probe's BatchNorm sees
        micro-batches, and with ``class_weight`` the weighted mean is taken per micro-batch.
    random_state : int, RandomState instance or None, default=None
        Seeds the head's initialisation, the shuffling and the stochastic depth (in a fork of
        torch's global generator, which is left as it was; each epoch's draws are seeded from
        it and the epoch's number, so that a resumed fit draws as the uninterrupted run did),
        and the held-out subjects of a ``SubjectValidSplit`` that has no ``random_state`` of
        its own (the held-out windows of skorch's ``ValidSplit`` of a fraction without one too,
        drawn on a copy). The same int seed on CPU gives the same predictions (with the same
        PyTorch thread count, which can change the last digits); a RandomState instance is
        drawn from, so successive fits differ; None draws the seed from NumPy's global
        generator.
    optimizer : torch optimizer class, default=torch.optim.AdamW
        Built over the layer-decay parameter groups; ``optimizer__<name>`` sets its other
        arguments (e.g. ``optimizer__betas``).
    lr : float, default=6.25e-5
        Peak learning rate (the research scripts: base rate 1e-3 times batch size / 256).
    max_epochs : int, default=50
        Passes over the training windows. A ``fit`` that resumes a run (skorch's
        ``LoadInitState`` loaded its history) trains only those the history does not hold.
    batch_size : int, default=16
        Windows per step.
    train_split : callable or None, default=None
        skorch's validation split. None trains on everything; pass
        :class:`~brainjepa_sk.finetune.SubjectValidSplit` (which keeps each subject's windows
        together) for a validation loss and early stopping.
    iterator_train__shuffle : bool, default=True
        Shuffle the training windows every epoch.
    device : str or torch.device, default="cpu"
        skorch's device (``"cuda"`` for a GPU).
    verbose : int, default=1
        skorch's progress table after each epoch (0: silent).
    **kwargs
        Any other skorch ``NeuralNet`` parameter: ``callbacks`` (e.g. skorch's
        ``EarlyStopping``, ``ProgressBar``, ``Checkpoint``), ``warm_start``, ``compile``,
        ``iterator_train__num_workers``, ``callbacks__print_log__...``, ... ``compile``
        (default False) takes True, False or, as the pretrainer's, ``"auto"``: compile on
        CUDA only."""

_SHARED_HISTORY = """skorch's record of each completed epoch: ``epoch``, ``dur``, ``train_loss``,
        ``lr`` (the rate of its last batch) and, with a validation split, ``valid_loss`` and
        the scores. Completed epochs only, as the pretrainer's ``history_``: skorch starts an
        epoch's record when it begins, and one that a callback ends inside (raising
        ``KeyboardInterrupt`` before the epoch's end, as skorch's callbacks stop training)
        has none, the model keeping what it trained of it (the callbacks see its record at
        the end of training once it trained a batch, as skorch shows it:
        ``EarlyStopping(load_best=True)`` takes it as the last epoch, a ``TrainEndCheckpoint``
        names its files after it and saves it marked ``"cut_short"``, with the number of
        batches it trained, which ``load_params`` leaves out once it has named the files and
        a fit resuming the run goes on after); one a callback ends at its end (skorch's
        ``EarlyStopping``) keeps its record. SIGTERM and Ctrl-C stop the fit
        with the estimator, ``history_`` included, as it was before it."""

_SHARED_NOTES = """Every window of a subject is a training sample carrying its subject's target.
    Prediction runs the model (in eval mode) on each window and averages a subject's window
    outputs, so a subject's prediction does not depend on the other subjects passed with it.
    The learning rate follows :class:`~brainjepa_sk.finetune.WarmupCosineLR` per batch."""


class BrainJEPAClassifier(_FineTuneBase, NeuralNetClassifier):
    def __init__(self, weights="ukbiobank", *, criterion=torch.nn.CrossEntropyLoss,
                 class_weight=None, **kwargs):
        self.class_weight = class_weight
        super().__init__(weights, criterion=criterion, **kwargs)

    _CRITERION_EXAMPLE = "torch.nn.CrossEntropyLoss"
    _TARGET_WORD = "label"

    #: What score calls the entries of y, and the score it gives (scikit-learn's).
    _Y_WORD = "labels"
    _SCORE = staticmethod(accuracy_score)

    _parameter_constraints = {
        **_FineTuneBase._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    # skorch's classes parameter names the outputs: changed after fit, it would rename them
    _PREDICTION_PARAMETERS = (*_FineTuneBase._PREDICTION_PARAMETERS, "classes")
    _BUILD_PARAMETERS = (*_FineTuneBase._BUILD_PARAMETERS, "classes")

    @property
    def classes_(self):
        """The labels of the outputs, in their order, as fit learned them (skorch's reads the
        ``classes`` parameter as it is now).

        During ``fit`` (read from a callback) they are skorch's: the encoded labels, 0 to
        ``n_classes - 1`` in the order of the outputs, which the windows' targets hold. skorch's
        scoring (``EpochScoring("f1")``, ``"average_precision"``) compares those targets with
        the outputs chosen by ``classes_`` and a ``pos_label`` of 1: labels there would fail
        (``pos_label=1 is not a valid label``) or score another class's column. ``predict`` of
        subjects gives the labels then too."""
        if "classes_inferred_" in self.__dict__:
            return self.classes_inferred_
        return NeuralNetClassifier.classes_.fget(self)

    # listed here so that the API reference shows them with the class
    fit = _FineTuneBase.fit
    partial_fit = _FineTuneBase.partial_fit

    def __getstate__(self):
        state = super().__getstate__()
        if "_fit_classes_" in state:
            # pickled during fit: skorch's classes_inferred_ are then the encoded labels
            state["classes_inferred_"] = state.pop("_fit_classes_")
        return state

    def _settings_resolved_by_fit(self):
        # classes=None: the labels fit found, in the order of the outputs (classes set to
        # them since changes nothing)
        return ({"classes": self.classes_inferred_} if "classes_inferred_" in self.__dict__
                else {})

    def _refuse_several_targets(self, y):
        """Raise a clear error for a y of several label columns (scikit-learn's refusal, which
        column_or_1d just raised, says only that y should be 1-D)."""
        try:
            shape = np.asarray(y).shape  # through __array__: y may refuse np.shape
        except (TypeError, ValueError):  # ragged: column_or_1d's message says so
            return
        if len(shape) == 2 and shape[1] > 1:  # (n, 1) is taken as one target, with a warning
            name = type(self).__name__
            columns = getattr(y, "columns", None)
            named = f" ({', '.join(map(repr, columns[:5]))})" if columns is not None else ""
            raise ValueError(
                f"y has shape {tuple(shape)}: {shape[1]} targets{named}, but {name} fits one "
                f"(a 1-D y of labels). Fit one classifier per column of y with "
                f"sklearn.multioutput.MultiOutputClassifier({name}(...)), or pass one column")

    def _encode_targets(self, y, n_subjects, continuing, classes=None, fit_rows=None):
        try:
            y_1d = column_or_1d(y, warn=True)
        except ValueError:
            self._refuse_several_targets(y)
            raise
        y = y_1d
        if len(y) != n_subjects:
            raise ValueError(f"X has {n_subjects} subjects but y has {len(y)} labels")
        _refuse_labels_of_several_kinds(y)
        _refuse_continuous_labels(y)
        check_classification_targets(y)
        # (fit_rows: the second call of a fit whose split drew subjects; checked at the first)
        given = (None if continuing or fit_rows is not None or self.classes is None
                 else _check_classes(self.classes, "classes"))
        if classes is not None:
            classes = _check_classes(classes, "partial_fit's classes")
        if given is not None and len(np.unique(given)) < len(given):
            raise ValueError(f"classes={given.tolist()} repeats a label: each output is one "
                             "class, and a repeat's output would never train")
        if given is not None and not np.array_equal(given, np.unique(given)):
            warn_user(f"classes={given.tolist()} is not sorted: classes_ keeps this order (as "
                      "in skorch), while scikit-learn's scorers of binary problems (roc_auc, "
                      "average_precision, ...) take classes_[1] as the positive class; pass "
                      f"classes={np.unique(given).tolist()} to score with them")
        if continuing:
            # as scikit-learn's partial_fit: later calls may repeat the classes (in any
            # order), not change them
            if classes is not None and not np.array_equal(np.unique(classes),
                                                          np.unique(self.classes_)):
                raise ValueError(f"classes={np.asarray(classes).tolist()} is not the same as "
                                 f"in the first fit, {self.classes_.tolist()}; fit with "
                                 "warm_start=False to learn other classes")
            classes = self.classes_
        elif classes is None:
            classes = np.unique(y) if self.classes is None else np.asarray(self.classes)
        elif self.classes is not None:
            # skorch's classes_ is then the classes parameter, in its order: the outputs must
            # follow it, or every prediction would be named by another class
            if not np.array_equal(np.unique(classes), np.unique(self.classes)):
                raise ValueError(f"classes={np.asarray(classes).tolist()} given to partial_fit "
                                 f"differs from the classes parameter "
                                 f"{np.asarray(self.classes).tolist()}")
            classes = np.asarray(self.classes)
        else:
            # sorted and unique, as scikit-learn's partial_fit (its scorers take classes_[1]
            # as the positive class of a binary problem)
            classes = np.unique(classes)
        index = {label: k for k, label in enumerate(classes.tolist())}
        unknown = sorted({label for label in y.tolist() if label not in index}, key=str)
        if unknown:
            if continuing:
                hint = ("the model's outputs are those of its first fit, and a continued fit "
                        "(warm_start=True or partial_fit) cannot add one: give every label to "
                        "the first partial_fit call as classes=[...], or fit anew with "
                        "warm_start=False")
            elif self.classes is not None:
                hint = ("the classes parameter names the outputs: add them to it, or set "
                        "classes=None to take the labels of y")
            else:  # given to a first partial_fit call
                hint = "pass every label of every partial_fit call as classes=[...]"
            raise ValueError(f"y has labels {unknown} that are not among the classes "
                             f"{classes.tolist()}: {hint}")
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes, got "
                             f"{len(classes)} class: {classes.tolist()} (a first partial_fit "
                             "call of one class's subjects takes every label as classes=[...])")
        self._check_criterion_weight(classes)
        self.n_outputs_ = len(classes)
        self._fit_classes_ = classes
        return np.asarray([index[label] for label in y.tolist()], dtype=np.int64)

    def _split_labels(self, targets):
        return np.asarray(self._fit_classes_)[targets]

    def _warn_classes_held_out(self, targets, fit_rows):
        # a rare class can land wholly on the validation side of an unstratified split: the
        # model then trains on none of its subjects, which nothing else would say
        held_out = np.setdiff1d(np.unique(targets), np.unique(targets[fit_rows]))
        if held_out.size:
            labels = np.asarray(self._fit_classes_)[held_out].tolist()
            n_subjects = int(np.isin(targets, held_out).sum())
            warn_user(f"train_split={self.train_split!r} held out every subject of the class(es) "
                      f"{labels} ({n_subjects} subject{'s' if n_subjects > 1 else ''}): the "
                      "model trains on none of them; hold out a smaller fraction, or pass "
                      "stratified=True (without groups) to keep each class on both sides")

    def _check_criterion_weight(self, classes):
        """Refuse a ``criterion__weight`` of another length than ``classes`` for torch's
        losses that weigh classes, once the classes are known: torch refused it only at the
        first batch, once the preprocessing and the model were built ("weight tensor should be
        defined either for all 2 classes or no classes but got weight tensor of shape: [3]")."""
        # the weight given (class_weight's, added by get_params_for, follow the classes)
        weight = _FineTuneBase.get_params_for(self, "criterion").get("weight")
        if weight is None or not issubclass(self._criterion_class(), _CLASS_WEIGHTED_LOSSES):
            return  # a loss of one's own may mean another thing by its weight (one number)
        try:
            shape = tuple(np.shape(weight))
        except (TypeError, ValueError):  # ragged: torch says what it takes
            return
        if shape != (len(classes),):
            count = (f"{shape[0]} weights" if len(shape) == 1
                     else f"shape {shape}, not one weight per class")
            raise ValueError(
                f"criterion__weight has {count}, but the model has {len(classes)} classes, "
                f"{classes.tolist()}: give one weight per class, in that order (that of "
                "classes_), or class_weight={label: weight} to weigh classes by their labels")

    def _check_values(self):
        super()._check_values()
        kind = self._criterion_class()
        name = kind.__name__
        if issubclass(kind, _REGRESSION_LOSSES):
            # torch failed once the model was built, on the shapes ("The size of tensor a (2)
            # must match the size of tensor b (8)")
            raise ValueError(
                f"criterion={name} is a regression loss, but {type(self).__name__} predicts "
                "classes (one logit per class against class indices): use "
                "torch.nn.CrossEntropyLoss (the default), or BrainJEPARegressor to predict "
                "numbers")
        if issubclass(kind, (torch.nn.BCEWithLogitsLoss, torch.nn.BCELoss)):
            # it takes one output per label column and float targets: torch's shape error
            # did not say why
            raise ValueError(
                f"criterion={name} takes one output per target, but {type(self).__name__}'s "
                "module gives one logit per class and its targets are class indices: use "
                "torch.nn.CrossEntropyLoss (the default), which for two classes is the same "
                "logistic model")
        if issubclass(kind, torch.nn.NLLLoss):
            # skorch's classifier takes the log of the module's outputs for an NLLLoss (its
            # modules end in a softmax); the head's logits, negative ones among them, made the
            # loss NaN, and the fit stopped as a diverging one ("lower lr")
            raise ValueError(
                f"criterion={name} takes probabilities, of which skorch takes the log, but "
                f"{type(self).__name__}'s module outputs logits (its head is a linear layer): "
                "the loss would be NaN. Use torch.nn.CrossEntropyLoss (the default), the "
                "NLLLoss of the logits' log-softmax, with criterion__weight or "
                "criterion__label_smoothing as needed")
        # torch's weighted mean loss divides by the batch's weights: a negative weight lets
        # the loss fall without bound, and a batch of zero-weighted windows only makes it NaN
        # (both stopped the fit as a diverging one, "lower lr")
        if not isinstance(self.class_weight, dict):
            return
        for label, weight in self.class_weight.items():
            try:
                value = float(weight)
            except (TypeError, ValueError):
                value = np.nan
            if not (np.isfinite(value) and value > 0):
                raise ValueError(
                    f"class_weight gives class {label!r} the weight {weight!r}: class weights "
                    "must be positive and finite (the loss is averaged over the batch's "
                    "weights, so a negative one has it fall without bound and a batch of "
                    "zero-weighted windows only makes it NaN); to leave a class out, drop its "
                    "subjects")

    def _set_class_weights(self, window_targets):
        """The loss weights of the classes from ``class_weight`` and the training windows'
        (encoded) labels; classes absent from them weigh 1."""
        classes = self._fit_classes_
        if self.class_weight is None:
            self._class_weights_ = None
            return
        weights = np.ones(len(classes))
        if isinstance(self.class_weight, dict):
            # labels absent from this fit (e.g. from a cross-validation fold) are ignored,
            # with a warning, since a misspelt label is ignored the same way
            unknown = [label for label in self.class_weight if label not in set(classes.tolist())]
            if unknown:
                warn_user(f"class_weight names {unknown}, which are not among the classes of "
                          f"this fit {classes.tolist()}: ignored (labels absent from this "
                          "fit, or misspelt?)")
            for k, label in enumerate(classes.tolist()):
                weights[k] = float(self.class_weight.get(label, 1.0))
        else:  # "balanced", over the windows the loss sees
            present = np.unique(window_targets)
            weights[present] = compute_class_weight("balanced", classes=present,
                                                    y=window_targets)
        self._class_weights_ = weights

    def get_params_for(self, prefix):
        """skorch's prefixed parameters; the criterion also gets ``class_weight``.

        Parameters
        ----------
        prefix : str
            The component, e.g. ``"criterion"`` or ``"iterator_train"``.

        Returns
        -------
        dict
            skorch's keyword arguments for it; for ``"criterion"``, with ``class_weight`` set
            and no ``criterion__weight`` given (or None), also ``weight``: a float32 tensor
            of the class weights of the last fit (none while ``class_weight`` is None); a
            ``criterion__weight`` of numbers (a list, an array, a tensor of another dtype) of
            torch's losses that weigh classes as a float32 tensor.
        """
        params = super().get_params_for(prefix)
        given = params.get("weight") if prefix == "criterion" else None
        if given is not None and issubclass(self._criterion_class(), _CLASS_WEIGHTED_LOSSES):
            # torch takes a tensor of the logits' dtype alone: a list failed as the loss was
            # built ("cannot assign 'list' object to buffer 'weight'"), a tensor of integers at
            # the first batch ("expected scalar type Float but found Long")
            try:
                params["weight"] = torch.as_tensor(given, dtype=torch.float32)
            except (TypeError, ValueError, RuntimeError):  # ragged, text: torch says what
                pass
        # a fit's weights, while class_weight still asks for them: set_params(class_weight=None,
        # criterion=...) builds the new loss before a fit drops them
        weights = getattr(self, "_class_weights_", None) if self.class_weight is not None else None
        # (a weight of None is torch's default: set_params' way to take back one given)
        if prefix == "criterion" and weights is not None and params.get("weight") is None:
            # a copy: the weights may be read-only (joblib.load's mmap_mode), which torch warns
            # of when a tensor is made from them
            params["weight"] = torch.tensor(weights, dtype=torch.float32)
        return params

    def initialize_criterion(self):
        """skorch's loss; a loss instance of torch's losses that weigh classes, given with
        ``class_weight`` and no ``criterion__*`` settings, is copied and weighted.

        skorch builds a new loss of an instance's class from the arguments given alone: the
        class weights, the only argument, dropped the instance's own settings
        (``label_smoothing``, ``ignore_index``) silently. The instance given is left as it was.

        Returns
        -------
        self
            The net, its ``criterion_`` set.
        """
        criterion = self.criterion
        weight = self.get_params_for("criterion").get("weight")
        given = _FineTuneBase.get_params_for(self, "criterion")
        if (isinstance(criterion, _CLASS_WEIGHTED_LOSSES) and weight is not None
                and set(given) <= {"weight"} and given.get("weight") is None):  # class_weight's
            self.criterion_ = copy.deepcopy(criterion)
            self.criterion_.weight = weight
            return self
        return super().initialize_criterion()

    def _after_fit(self):
        # skorch recorded the encoded labels; the classes are the user's labels
        self.classes_inferred_ = self.__dict__.pop("_fit_classes_")

    def predict_proba(self, X):
        """Class probabilities of each subject: the mean of its windows' probabilities.

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions), list of 2-D arrays or files
            Subjects' ROI time series.
            Files are a glob or a list of paths (see :mod:`brainjepa_sk.files`).

        Returns
        -------
        numpy.ndarray of shape (n_subjects, n_classes)
            Each subject's mean of its windows' probabilities.
        """
        if is_windows(X, self):  # skorch's scoring during fit: one row per window
            return super().predict_proba(X)
        proba = self._subject_outputs(X)
        if self._outputs_softmax():
            # the windows' float32 softmax sums to 1 within its rounding (~6e-8), over the
            # float64 tolerance of scikit-learn's log_loss ("do not sum to one" at each score)
            proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def _outputs_softmax(self):
        """Whether skorch's nonlinearity is the softmax: ``"auto"`` with a cross-entropy loss
        (skorch's rule), rather than a nonlinearity of one's own or the module's outputs."""
        return (isinstance(self.predict_nonlinearity, str)
                and issubclass(self._criterion_class(), torch.nn.CrossEntropyLoss))

    def predict_log_proba(self, X):
        """Log of each subject's class probabilities: the log of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions), list of 2-D arrays or files
            Subjects' ROI time series.
            Files are a glob or a list of paths (see :mod:`brainjepa_sk.files`).

        Returns
        -------
        numpy.ndarray of shape (n_subjects, n_classes)
            The log of each subject's mean of its windows' probabilities (columns in the order
            of ``classes_``); ``-inf`` where that probability is 0.

        Notes
        -----
        It is the log of the mean of the windows' probabilities, not the mean of their log
        probabilities (the windows' log-softmax), which would be another, smaller, number: it
        is taken from :meth:`predict_proba`, so that the two agree.
        """
        proba = self.predict_proba(X)  # checks that the estimator is fitted first
        # a probability that underflowed to 0 (float32 softmax) is -inf, without numpy's
        # divide-by-zero warning
        with np.errstate(divide="ignore"):
            return np.log(proba)

    def predict(self, X):
        """Class of each subject (the most probable after averaging its windows).

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions), list of 2-D arrays or files
            Subjects' ROI time series.
            Files are a glob or a list of paths (see :mod:`brainjepa_sk.files`).

        Returns
        -------
        numpy.ndarray of shape (n_subjects,)
            The predicted labels (of ``classes_``).
        """
        proba = self.predict_proba(X)  # checks that the estimator is fitted first
        if is_windows(X, self):  # skorch's scoring during fit: the windows' encoded labels
            return proba.argmax(axis=1)
        # during fit (e.g. from a callback) skorch's classes_ are still the encoded labels
        classes = self.__dict__.get("_fit_classes_", self.classes_)
        return np.asarray(classes)[proba.argmax(axis=1)]


BrainJEPAClassifier.__doc__ = f"""Fine-tune a pretrained Brain-JEPA encoder to classify subjects.

    A skorch ``NeuralNetClassifier``: skorch's parameters, callbacks and ``history_`` work as
    usual, and the estimator works in scikit-learn pipelines, ``cross_val_score`` and
    ``GridSearchCV`` (e.g. over ``lr``, ``max_epochs`` or ``optimizer__betas``).

    Parameters
    ----------
    {_SHARED_PARAMETERS}
    criterion : torch loss class, default=torch.nn.CrossEntropyLoss
        Takes logits; ``criterion__label_smoothing=0.1`` smooths the labels. An ``NLLLoss``
        (skorch's default, which takes probabilities) is refused, and so are ``BCELoss`` and
        ``BCEWithLogitsLoss`` (one output per target; the head gives one logit per class) and
        the regression losses (``MSELoss``, ``L1Loss``, ``SmoothL1Loss``, ``HuberLoss``).
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, as in scikit-learn (``"balanced"``: inversely
        proportional to the classes' counts among the training windows; a dict: by label,
        1 for the classes it does not name; labels that are not classes of the fit are
        ignored, with a warning). A dict's weights must be positive and finite (a
        ``ValueError`` at ``fit``): zero, which scikit-learn takes as leaving a class out, is
        refused, since a batch of only that class's windows would have no weight to average
        its loss over. A loss instance given as ``criterion`` is weighted with its own
        settings (``label_smoothing``, ``ignore_index``) kept.

    Attributes
    ----------
    module_ : EncoderWithHead
        The fine-tuned model. Its ``encoder`` carries the fit's preprocessing
        (``preprocessor_.to_dict()``) and regions (``region_names_``, else the names of
        ``X``'s columns) as its ``preprocessing`` and ``region_names``: given as ``weights``
        to :class:`~brainjepa_sk.BrainJEPAEmbedder` or another fine-tuner, it is fed as here.
    preprocessor_ : Preprocessor
        The preprocessing (from the weights, fitted on the training subjects where it learns).
    classes_ : numpy.ndarray
        The labels.
    n_outputs_ : int
        Number of classes: the head's outputs.
    n_features_in_ : int
        Number of regions.
    feature_names_in_ : ndarray of str
        Region names, when fitted on DataFrames with string columns (or files with a header).
    region_names_ : list of str or None
        The regions the weights were pretrained on, when their checkpoint recorded them (or
        the index of a gradient DataFrame): input with names (DataFrames, files with a header)
        must have them in this order.
    history_ : skorch.History
        {_SHARED_HISTORY}

    Notes
    -----
    {_SHARED_NOTES}

    Examples
    --------
    Fine-tuning a model pretrained on simulated subjects, small enough for a CPU (``weights``
    takes the pretrainer's ``model_``, or the file its ``save`` writes):

    >>> from brainjepa_sk import BrainJEPAClassifier, BrainJEPAPretrainer, GradientPositioner
    >>> from brainjepa_sk.datasets import make_brain_dynamics
    >>> X, y = make_brain_dynamics(n_subjects=8, n_timepoints=64, n_regions=100, t_r=2.0,
    ...                            random_state=0)
    >>> pretrainer = BrainJEPAPretrainer(
    ...     gradients=GradientPositioner(n_components=10),
    ...     model_size=dict(embed_dim=32, depth=1, num_heads=2),
    ...     n_frames=32, t_r=2.0, n_epochs=1, verbose=0, random_state=0).fit(X)
    >>> clf = BrainJEPAClassifier(pretrainer.model_, lr=1e-3, max_epochs=2, verbose=0,
    ...                           random_state=0).fit(X, y["group"])
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """


def _first_object(y):
    """Where the first value of ``y`` that is neither a number nor text is, as ", first
    <kind> for subject <i> (<value>)", or "" when it cannot be told."""
    try:
        values = np.asarray(y, dtype=object)
    except (TypeError, ValueError):  # ragged
        return ""
    if values.ndim not in (1, 2):
        return ""
    for subject, row in enumerate(values.reshape(len(values), -1).tolist()):
        for value in row:
            if not isinstance(value, (numbers.Number, np.generic, str)):
                return (f", first {type_with_article(value)} for subject {subject} "
                        f"({reprlib.repr(value)})")
    return ""


class BrainJEPARegressor(_FineTuneBase, NeuralNetRegressor):
    def __init__(self, weights="ukbiobank", *, criterion=torch.nn.MSELoss,
                 standardize_targets=True, **kwargs):
        self.standardize_targets = standardize_targets
        super().__init__(weights, criterion=criterion, **kwargs)

    _CRITERION_EXAMPLE = "torch.nn.HuberLoss"

    #: What score calls the entries of y, and the score it gives (scikit-learn's).
    _Y_WORD = "targets"
    _SCORE = staticmethod(r2_score)

    _parameter_constraints = {
        **_FineTuneBase._parameter_constraints,
        "standardize_targets": ["boolean"],
    }

    # the outputs the model learns are the targets scaled as in the first fit
    _BUILD_PARAMETERS = (*_FineTuneBase._BUILD_PARAMETERS, "standardize_targets")

    def _check_values(self):
        super()._check_values()
        kind = self._criterion_class()
        if issubclass(kind, _CLASSIFICATION_LOSSES):
            # a CrossEntropyLoss over one output per target is 0 whatever the model does (the
            # fit trained nothing, silently), and for a BCE loss skorch's predict gave two
            # columns per output, failing only after the whole fit
            raise ValueError(
                f"criterion={kind.__name__} is a loss of classes, but "
                f"{type(self).__name__}'s module gives one output per target (column of y): "
                "use BrainJEPAClassifier for labels (its CrossEntropyLoss on two logits is the "
                "logistic model of a binary label), or a regression loss here, such as "
                "torch.nn.MSELoss (the default) or torch.nn.HuberLoss")

    # listed here so that the API reference shows them with the class
    fit = _FineTuneBase.fit
    partial_fit = _FineTuneBase.partial_fit

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y may be (n_subjects, n_targets)
        return tags

    def _encode_targets(self, y, n_subjects, continuing, classes=None, fit_rows=None):
        y = self._numeric_targets(y)
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        if len(y) != n_subjects:
            raise ValueError(f"X has {n_subjects} subjects but y has {len(y)} targets")
        table = y.reshape(len(y), -1)
        if not continuing:
            self.target_ndim_ = y.ndim
            self.n_outputs_ = table.shape[1]
            if self.standardize_targets:
                fitted = table if fit_rows is None else table[fit_rows]
                with np.errstate(over="ignore"):
                    scale = fitted.std(axis=0)
                if not np.isfinite(scale).all():
                    # beyond about 1e154 the squares overflow: an infinite scale had made every
                    # scaled target 0, and the model learned nothing, with NumPy's warning alone
                    raise ValueError(
                        f"y is too large to standardize: the standard deviation of column "
                        f"{int(np.flatnonzero(~np.isfinite(scale))[0])} overflows float64; "
                        "rescale y (e.g. y / 1e150)")
                self.target_mean_ = fitted.mean(axis=0)
                self.target_scale_ = np.where(scale > 0, scale, 1.0)
            else:
                self.target_mean_ = np.zeros(table.shape[1])
                self.target_scale_ = np.ones(table.shape[1])
        elif table.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {table.shape[1]} target column(s) but the model was fitted "
                             f"on {self.n_outputs_}: a continued fit (warm_start=True or "
                             "partial_fit) takes the same targets; fit anew with "
                             "warm_start=False to train on other targets")
        if not np.isfinite(self._scaled(table)).all():
            raise ValueError(
                "y is too large for float32 training once scaled (by target_mean_ and "
                "target_scale_ of the first fit when continuing): rescale y, or fit anew")
        # in the units of y, as skorch's scoring callbacks read them from the dataset (their
        # scores in those units, as predict's); get_loss scales them for the criterion
        return table

    def _scored_targets(self, y):
        return self._numeric_targets(y)

    def _numeric_targets(self, y):
        """``y`` as a float64 array, or a clear error for dates, text or other objects (fit's
        and score's): float() of a dict had failed in score with Python's bare "float()
        argument must be a string or a real number, not 'dict'"."""
        # a DataFrame's columns each have theirs (one of dates alone converts as an array does)
        dtypes = list(y.dtypes) if hasattr(y, "columns") else [getattr(y, "dtype", None)]
        dates = [str(dtype) for dtype in dtypes if getattr(dtype, "kind", None) in ("M", "m")]
        if dates:  # numpy would take dates and durations as their raw counts
            raise ValueError(f"y holds dates or durations ({', '.join(dates)}): convert them "
                             "to numbers in a unit of your choice (e.g. age in years) first")
        try:
            # (an empty y is told by the count checks of fit and score, against X's)
            y = check_array(y, ensure_2d=False, ensure_min_samples=0, dtype=np.float64,
                            input_name="y")
        except TypeError as error:  # float() of a dict, a list, ...
            raise ValueError(f"y holds values that are not numbers ({error}){_first_object(y)}: "
                             "BrainJEPARegressor predicts one number per target and "
                             "subject") from error
        except ValueError as error:
            if "convert string to float" not in str(error):
                raise
            raise ValueError(f"y holds text, not numbers ({error}): BrainJEPARegressor "
                             "predicts numbers; for class labels use BrainJEPAClassifier") from error
        return y

    def _scaled(self, targets):
        """``targets`` (in the units of ``y``) scaled as the model learns them, in float32."""
        with np.errstate(over="ignore"):
            return ((targets - self.target_mean_) / self.target_scale_).astype(np.float32)

    def _split_labels(self, targets):
        # scaled, as SubjectValidSplit has always seen them: stratified=True refuses
        # continuous targets, and ages in whole years would pass for classes
        return self._scaled(targets)

    def get_loss(self, y_pred, y_true, *args, **kwargs):
        """skorch's loss of the outputs against the targets scaled by ``target_mean_`` and
        ``target_scale_``: the model learns (and ``history_`` records the losses of) the
        scaled targets.

        Parameters
        ----------
        y_pred : torch.Tensor
            The module's outputs (in the scaled units).
        y_true : torch.Tensor or array-like
            The targets, in the units of ``y``.
        *args, **kwargs
            Passed to skorch's ``get_loss``.

        Returns
        -------
        torch.Tensor
            The scalar loss.
        """
        # in float64, then float32, as the targets were scaled before: on the host, where the
        # loader gives them, as the outputs' device may have no float64 (Apple's MPS)
        y_true = torch.as_tensor(y_true).detach().to("cpu", torch.float64)
        # copies: the statistics may be read-only (joblib.load's mmap_mode), which torch
        # warns of when a tensor shares their memory
        mean, scale = (torch.tensor(value, dtype=torch.float64)
                       for value in (self.target_mean_, self.target_scale_))
        y_true = ((y_true - mean) / scale).to(torch.float32).to(y_pred.device, y_pred.dtype)
        return super().get_loss(y_pred, y_true, *args, **kwargs)

    @available_if(lambda self: False)
    def predict_proba(self, X):
        """Not available: a regressor has no probabilities (skorch's ``predict_proba`` would
        run on windows, not subjects)."""

    def predict(self, X):
        """Target of each subject: the mean of its windows' outputs, in the units of ``y``.

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions), list of 2-D arrays or files
            Subjects' ROI time series.
            Files are a glob or a list of paths (see :mod:`brainjepa_sk.files`).

        Returns
        -------
        numpy.ndarray of shape (n_subjects,) or (n_subjects, n_targets)
            As ``y`` was shaped in ``fit``.
        """
        if is_windows(X, self):  # skorch's scoring during fit: one row per window
            # skorch's, on windows (hidden on the regressor), in the units of y as the
            # windows' targets that its scoring compares them with
            return super().predict_proba(X) * self.target_scale_ + self.target_mean_
        out = self._subject_outputs(X) * self.target_scale_ + self.target_mean_
        return out.ravel() if self.target_ndim_ == 1 else out


BrainJEPARegressor.__doc__ = f"""Fine-tune a pretrained Brain-JEPA encoder to predict continuous phenotypes.

    A skorch ``NeuralNetRegressor``: skorch's parameters, callbacks and ``history_`` work as
    usual, and the estimator works in scikit-learn pipelines, ``cross_val_score`` and
    ``GridSearchCV``.

    Parameters
    ----------
    {_SHARED_PARAMETERS}
    criterion : torch loss class, default=torch.nn.MSELoss
        Regression loss (e.g. ``torch.nn.HuberLoss``). The losses of classes
        (``CrossEntropyLoss``, ``NLLLoss``, ``BCELoss``, ``BCEWithLogitsLoss``) are refused:
        the head gives one output per target; labels are for
        :class:`~brainjepa_sk.BrainJEPAClassifier`.
    standardize_targets : bool, default=True
        Train on targets scaled to zero mean and unit variance (the head starts near 0, so
        raw ages or scores would take many epochs to reach); ``predict`` returns the units of
        ``y``. The losses in ``history_`` are on the scaled targets; skorch's scoring
        callbacks (``EpochScoring("neg_mean_absolute_error")``) score in the units of ``y``.

    Attributes
    ----------
    module_ : EncoderWithHead
        The fine-tuned model. Its ``encoder`` carries the fit's preprocessing
        (``preprocessor_.to_dict()``) and regions (``region_names_``, else the names of
        ``X``'s columns) as its ``preprocessing`` and ``region_names``: given as ``weights``
        to :class:`~brainjepa_sk.BrainJEPAEmbedder` or another fine-tuner, it is fed as here.
    preprocessor_ : Preprocessor
        The preprocessing.
    target_mean_, target_scale_ : numpy.ndarray
        The targets' scaling.
    n_outputs_ : int
        Number of targets (columns of ``y``): the head's outputs.
    target_ndim_ : int
        1 or 2, as ``y`` was: ``predict`` returns a 1-D array for a 1-D ``y``.
    n_features_in_ : int
        Number of regions.
    feature_names_in_ : ndarray of str
        Region names, when fitted on DataFrames with string columns (or files with a header).
    region_names_ : list of str or None
        The regions the weights were pretrained on, when their checkpoint recorded them (or
        the index of a gradient DataFrame): input with names (DataFrames, files with a header)
        must have them in this order.
    history_ : skorch.History
        {_SHARED_HISTORY}

    Notes
    -----
    {_SHARED_NOTES}
    """

"""``BrainJEPAPretrainer``: self-supervised Brain-JEPA pretraining as a scikit-learn transformer."""

from __future__ import annotations

import contextlib
import copy
import errno
import inspect
import json
import numbers
import os
import re
import socket
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.utils._param_validation import HasMethods, InvalidParameterError, StrOptions
from sklearn.utils.validation import check_is_fitted, check_random_state

from . import preprocessing
from ._base import (
    _READOUT_PARAMETERS,
    COMPILE,
    EMBEDDING_CONSTRAINTS,
    NON_NEGATIVE,
    OPTIONAL_PATH,
    POSITIVE,
    POSITIVE_INT,
    SUBJECTS_PER_CHUNK,
    EmbeddingTransformMixin,
    FittedScaleCheck,
    NestedParamsMixin,
    Range,
    check_parameters,
    check_pooling,
    check_same_subjects,
    check_window_patches,
    cut_for_transform,
    fit_then_transform,
    record_validated,
    restore_on_error,
    training_windows,
    window_chunks,
)
from ._warnings import warn_user
from .checkpoint import save_checkpoint, storable_values
from .gradients import (
    GradientPositioner,
    _GroupConnectivity,
    align_gradient_rows,
    gradient_region_names,
    load_gradients,
    named_gradients,
)
from .nn import LOSSES, MODEL_PRESETS, BrainJEPA
from .nn._checks import check_block_settings
from .nn.blocks import PATCH_EMBED_INITS
from .nn.masking import (
    MaskBatch,
    SpatiotemporalMaskSampler,
    UnsatisfiableMaskingError,
    _checked_options,
)
from .preprocessing import (
    NORMALIZATIONS,
    WINDOW_STRATEGIES,
    Preprocessor,
    subject_lengths,
    warn_ignored_stride,
    warn_long_t_r,
)
from .train import (
    Callback,
    Checkpoint,
    CollapseMonitor,
    NonFiniteLossGuard,
    PretrainLoop,
    PretrainSchedule,
    ProgressBar,
    ShuffleSampler,
    TrainingInterrupted,
    WindowDataset,
    eval_step,
    window_loader,
)
from .train.distributed import all_gather_objects, on_main_process, process_device, world
from .train.runs import find_shorter_run, plain_setting, run_key, unfinished_runs
from .train.runtime import (
    check_writable_folder,
    forked_rng,
    process_runs,
    python_values,
    resolve_autocast,
    resolve_compile,
    resolve_device,
)
from .validation import CheckedSeries, each_checked_file, subjects_digest, validate_subjects

__all__ = ["BrainJEPAPretrainer"]


_UNSEEDED_STATE_FILE = "unseeded.pt"
# 4: loss="l2" sums the squared distance over the features (it was their mean), so a run
# saved before is not continued under the other objective
_STATE_FORMAT = 4
_MONITOR_WINDOWS = 64
#: Subjects whose windows ``score`` masks with one draw (a seed of their own): a fixed number,
#: so that the masks do not depend on batch_size or on the number of torchrun processes.
_SCORE_SUBJECTS_PER_CHUNK = SUBJECTS_PER_CHUNK


def _monitor_indices(subject_index, n=_MONITOR_WINDOWS):
    """Up to ``n`` window indices spread evenly over the data (so over subjects)."""
    return np.unique(np.linspace(0, len(subject_index) - 1, min(n, len(subject_index))).round()
                     ).astype(np.int64)


#: Options of :class:`~brainjepa_sk.nn.masking.SpatiotemporalMaskSampler` that the pretrainer
#: sets itself (from the data, ``n_frames``, ``random_state`` and ``device``), not ``masking``.
MASKING_SET_BY_PRETRAINER = ("n_regions", "n_patches", "seed", "device")
# What ``masking`` may set: the sampler's other keyword arguments.
_MASKING_OPTIONS = tuple(sorted(set(inspect.signature(SpatiotemporalMaskSampler).parameters)
                                - set(MASKING_SET_BY_PRETRAINER)))
_COUNT_QUANTILE_DEFAULT = (inspect.signature(SpatiotemporalMaskSampler)
                           .parameters["count_quantile"].default)


# What a model_size dict may set: the encoder's sizes (and BrainJEPA's other architecture
# settings that no parameter of the pretrainer sets).
_MODEL_SIZE_KEYS = ("embed_dim", "depth", "num_heads", "mlp_ratio", "qkv_bias")


def _chunk_mask_state(seed, start):
    """The state of the generator that draws the masks of ``score``'s chunk of subjects from
    ``start``: from ``seed`` and ``start`` only, so a chunk gets its masks in any process."""
    drawn = np.random.SeedSequence([seed, start]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(drawn >> np.uint64(1))).get_state()


@contextlib.contextmanager
def _eval_mode(module):
    """``module`` in eval mode inside the block; each submodule's own mode restored after."""
    modes = [(submodule, submodule.training) for submodule in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for submodule, training in modes:
            submodule.training = training


def _modified(path):
    """A file's modification time; 0 for one gone since it was found."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _this_process():
    """Which process trains a run (kept with its state)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _trained_by_another_process(extra):
    """Whether the run of a state file's ``extra`` was last saved by another process of this
    machine that still runs (a parallel cross-validation fold or search candidate training it
    now); False where that cannot be told."""
    owner = extra.get("process")
    if not isinstance(owner, dict):
        return False
    pid = owner.get("pid")
    if (owner.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0
            or pid == os.getpid()):
        return False
    return bool(process_runs(pid))  # None on Windows: cannot be told


class BrainJEPAPretrainer(NestedParamsMixin, EmbeddingTransformMixin, BaseEstimator):
    """Pretrain Brain-JEPA on subjects' ROI time series; ``transform`` gives their embeddings.

    ``fit`` positions the regions on connectivity gradients (fitted on the training subjects
    when ``gradients`` is a :class:`GradientPositioner`, so cross-validation never leaks),
    preprocesses the series into windows, and trains encoder and predictor with spatiotemporal
    masking and an EMA target encoder, following the research recipe (AdamW, lr warm-up then
    cosine, cosine weight decay, linear EMA momentum), scaled to ``n_epochs``.

    ``X`` may also be files, one per subject (a glob or a list of paths; see
    :mod:`brainjepa_sk.files`): they are checked one at a time, the robust statistics come from
    a bounded sample of their frames, and the training windows are read when the loader needs
    them, so a corpus larger than memory trains with the memory of a few batches.

    Parameters
    ----------
    gradients : GradientPositioner, array-like, str or path-like, optional
        Region positions. A ``GradientPositioner`` (default: ``GradientPositioner()``) is cloned
        and fitted on the training ``X`` (one fitted beforehand on other data is fitted again,
        with a warning: pass its ``gradients_`` to use them); text files of ``X`` (where no
        ``.npy`` file is among them) are not parsed again for it, their connectivity computed
        as their check reads them; an array
        ``(n_regions, n_components)`` or the path of a gradient file (``.npy``, ``.csv``,
        ``.tsv`` or whitespace-separated text: see
        :func:`~brainjepa_sk.gradients.load_gradients`) is used as it is, its rows in the
        order of X's columns. A DataFrame indexed by X's region names is put in the order of
        X's columns (other names warn); with X without names, its index is saved as the region
        names of the model. Only string labels are names: an index of numbers (atlas label
        values; not the default 0, 1, ...) warns that its rows are used in order. Gradients whose rows are all the same (every
        region at one position) warn that the positions carry no information.
    model_size : {"tiny", "small", "base", "large"} or dict, default="tiny"
        Encoder size: a preset (``base`` is the paper's) or a dict with ``embed_dim``, ``depth``
        and ``num_heads`` (positive ints; ``embed_dim`` a multiple of 4 and of ``num_heads``,
        as ``predictor_embed_dim`` must be too), and optionally the blocks' ``mlp_ratio``
        (default 4.0) and ``qkv_bias`` (default True); other keys are refused.
    patch_size : int, default=16
        Frames per time patch.
    n_frames : int, default=160
        Frames per training window: a multiple of ``patch_size``, at least two time patches
        (masking hides some patches of a window and predicts them from the others).
    predictor_embed_dim : int, optional
        Predictor width; default 384, or the encoder width when that is smaller.
    predictor_depth : int, default=6
        Predictor blocks.
    drop_path_rate : float, default=0.0
        Stochastic depth of encoder and predictor.
    loss : {"l2", "smooth_l1"}, default="l2"
        Objective: the paper's squared L2 distance (summed over features, averaged over
        target tokens), or the research code's smooth L1 (averaged over both); see
        :func:`~brainjepa_sk.nn.jepa_loss`.
    patch_embed_init : {"trunc_normal", "xavier"}, default="trunc_normal"
        Initialisation of the patch embedding: the research code's (std 0.02, like every linear
        layer) or Xavier scaling (as MAE and timm), which makes the signal in a token as large
        as its position code. Small models trained briefly need ``"xavier"``: with std 0.02
        they first learn to predict the positions only (see the user guide on pretraining).
    n_epochs : int, default=100
        Passes over the training windows.
    batch_size : int, default=16
        Windows per optimizer step (capped at the number of windows); under ``torchrun``, the
        global batch, shared out among the processes. Also the windows per forward pass in
        :meth:`transform`.
    accumulation_steps : int, default=1
        Gradient accumulation: each process runs its share of a step's batch in this many
        micro-batches (forward and backward one at a time, gradients summed, one optimizer
        step), so a batch that does not fit in the device's memory still trains as that batch.
        ``batch_size`` must be a multiple of ``accumulation_steps`` times the number of
        processes. The data, masks and schedules do not depend on it (nor does the resume
        key): only the memory, the speed, float rounding and the stochastic depth draws do.
    lr, start_lr, final_lr : float, default=1e-3, 5e-5, 1e-6
        Peak, initial and final learning rate.
    warmup_epochs : float, optional
        Linear warm-up length; default 40/300 of ``n_epochs`` (the research ratio).
    weight_decay, final_weight_decay : float, default=0.04, 0.4
        Weight decay at the start and at the end (cosine).
    ema_momentum, final_ema_momentum : float, default=0.996, 1.0
        Target-encoder momentum at the start and at the end (linear).
    masking : dict, optional
        Keyword arguments of :class:`~brainjepa_sk.nn.masking.SpatiotemporalMaskSampler`
        (``alpha_region_scale``, ``min_keep``, ...). ``set_params`` and grid searches reach
        each option as ``masking__<option>``.
    t_r : float, optional
        TR of the input in seconds; with ``model_t_r``, series are resampled to ``model_t_r``.
        Over 20 s (milliseconds?), it is used with a warning, as is ``model_t_r``.
    model_t_r : float, optional
        TR of the model (saved with it and applied to new data).
    window : {"sliding", "center", "first"}, default="sliding"
        Which windows are cut from each subject, for training and for ``transform``
        (``"sliding"``: every ``stride`` frames; embeddings averaged per subject).
    stride : int, optional
        Step of sliding windows; default half a window.
    min_frames : int, optional
        Shortest series accepted (after resampling); shorter than a window is padded with each
        region's mean. Default: half a window.
    normalization : {"robust", "global_zscore", "roi_zscore"} or None, default="robust"
        Scaling of the windows (``"robust"``: per-region median / IQR learned in ``fit``, the
        research code's pretraining choice). Saved with the model. ``transform`` applies the
        statistics of ``fit`` to new series unchanged, and warns when they leave them far above
        unit scale (series scaled otherwise than those of ``fit``, e.g. raw BOLD).
    pooling : {"mean", "roi", "roi_std", "connectivity", "lagged", "tokens"}, default="mean"
        Token pooling of ``transform`` (see :class:`BrainJEPAEmbedder`).
    final_norm : bool, default=True
        Whether ``transform`` pools the encoder's output after its final LayerNorm (see
        :class:`BrainJEPAEmbedder`).
    device : str or torch.device, default="auto"
        ``"auto"``: CUDA if available, else CPU.
    precision : {"auto", "fp32", "bf16"}, default="auto"
        ``"auto"``: bf16 autocast on CUDA, float32 on CPU.
    compile : {"auto", True, False}, default="auto"
        Run the training forward pass through ``torch.compile`` (one graph for the whole run:
        the masks keep the same token counts in every batch). ``"auto"``: on CUDA only; on a
        CPU, compiling took longer than the short runs it would speed up (see the user guide
        on GPUs).
    random_state : int, RandomState instance or None, default=None
        Seeds model initialisation and stochastic depth (in a fork of torch's global
        generator, which is left as it was), masks and data order (generators of their own).
        An int gives the same fit every time (on the CPU, with the same thread count); a
        RandomState instance is drawn from, so successive fits differ; None draws the seeds
        from NumPy's global generator. A ``GradientPositioner`` given as ``gradients`` is
        seeded by its own ``random_state`` (0 by default), not by this one. Under
        ``torchrun``, every process uses the seeds drawn in process 0.
    checkpoint_dir : str or path-like, optional
        Folder where each run's training state is saved after every epoch
        (``run-<key>.pt``, the key a hash of the settings, the data and the seed); a later
        ``fit`` of the same run resumes from it, so cross-validation folds can share the
        folder. Raising ``n_epochs`` extends a saved run of fewer epochs (the schedules follow
        the new ``n_epochs`` from the step it continues at) instead of starting again. Other
        settings start another run, with a warning when the folder holds an unfinished run of
        the same data (or the same settings) that says what differs (a run that a callback
        stopped, ``stop_training``, is saved as stopped: not unfinished).
        See :func:`~brainjepa_sk.checkpoint.export_training_state` to keep the model of
        a run that will not be resumed. On SIGTERM (a scheduler's pre-emption) the current
        step finishes, the state is saved and ``fit`` raises
        :class:`~brainjepa_sk.train.TrainingInterrupted`; on Ctrl-C too, at the last step
        counted. Under ``torchrun``, the processes agree on either signal (a first Ctrl-C in
        any process) every 8 steps and all stop after the same step.
    checkpoint_every : int, optional
        With ``checkpoint_dir``, also save every ``checkpoint_every`` optimizer steps, so that
        a run killed inside a long epoch loses at most that many steps (it resumes exactly, at
        the step it was saved).
    callbacks : list of :class:`~brainjepa_sk.train.Callback`, optional
        Extra hooks into the training loop (:class:`~brainjepa_sk.train.PretrainLoop`), called
        after the built-in ones (non-finite-loss guard, collapse monitors) and before the
        progress bar and the checkpoint. They are copied at ``fit``; the copies that ran are in
        ``callbacks_``. They observe the run: they are not part of the resume key, so a callback
        that changes the training must not be combined with ``checkpoint_dir``.
    num_workers : int, default=0
        Processes that load the training windows (torch ``DataLoader`` workers). Worth it when
        ``X`` is files: they are then read while the model trains (see the user guide on
        scale).
    verbose : int, default=1
        0: silent; 1: a progress bar.

    Attributes
    ----------
    model_ : BrainJEPA
        The pretrained module (on the CPU, eval mode).
    gradients_ : ndarray of shape (n_regions, n_components)
        Region positions used.
    preprocessor_ : Preprocessor
        The fitted preprocessing (saved with the model).
    history_ : list of dict
        Per epoch: ``epoch``, ``loss`` (mean over steps), ``lr`` (at the epoch's last step),
        ``target_std`` and ``effective_rank`` (collapse monitors of the target encoder's
        pooled features on up to 64 training windows). Completed epochs only: a callback that
        stops the run inside an epoch (``stop_training``) leaves the model trained on that
        epoch's first steps, which have no record, as a run stopped by SIGTERM or Ctrl-C saves
        none for them; with ``checkpoint_dir``, the same ``fit`` again finishes that epoch and
        records it whole (its loss the mean over all its steps).
    embedding_dim_ : int
        Encoder width.
    callbacks_ : list of Callback
        The copies of ``callbacks`` that ran in the last ``fit``.
    n_features_in_ : int
        Number of regions.
    feature_names_in_ : ndarray of str
        Region names, when fitted on DataFrames with string columns.
    region_names_ : list of str or None
        The region names saved with the model: ``feature_names_in_``, or else the index of a
        gradient DataFrame indexed by region names. Input with names (DataFrames, files with a
        header) must have them in this order, as for the embedder given the saved file.
        ``get_feature_names_out`` names the regions by them.

    Examples
    --------
    A model small enough for a CPU (the presets are GPU-sized), on simulated subjects:

    >>> from brainjepa_sk import BrainJEPAPretrainer, GradientPositioner
    >>> from brainjepa_sk.datasets import make_brain_dynamics
    >>> X, y = make_brain_dynamics(n_subjects=8, n_timepoints=64, n_regions=100, t_r=2.0,
    ...                            random_state=0)
    >>> pretrainer = BrainJEPAPretrainer(
    ...     gradients=GradientPositioner(n_components=10),
    ...     model_size={"embed_dim": 32, "depth": 1, "num_heads": 2},
    ...     n_frames=32, t_r=2.0, n_epochs=1, verbose=0, random_state=0)
    >>> pretrainer.fit(X).transform(X).shape
    (8, 32)
    >>> bool(pretrainer.score(X) < 0)  # minus the masked-prediction loss: higher is better
    True
    """

    _parameter_constraints = {
        **EMBEDDING_CONSTRAINTS,
        "gradients": [HasMethods(["fit"]), "array-like", str, os.PathLike, None],
        "model_size": [StrOptions(set(MODEL_PRESETS)), dict],
        "patch_size": POSITIVE_INT,
        "n_frames": POSITIVE_INT,
        "predictor_embed_dim": [*POSITIVE_INT, None],
        "predictor_depth": POSITIVE_INT,
        "drop_path_rate": [Range(numbers.Real, 0, 1, closed="left")],
        "loss": [StrOptions(set(LOSSES))],
        "patch_embed_init": [StrOptions(set(PATCH_EMBED_INITS))],
        "n_epochs": POSITIVE_INT,
        "batch_size": POSITIVE_INT,
        "lr": NON_NEGATIVE,
        "start_lr": NON_NEGATIVE,
        "final_lr": NON_NEGATIVE,
        "warmup_epochs": [*NON_NEGATIVE, None],
        "weight_decay": NON_NEGATIVE,
        "final_weight_decay": NON_NEGATIVE,
        "ema_momentum": [Range(numbers.Real, 0, 1, closed="both")],
        "final_ema_momentum": [Range(numbers.Real, 0, 1, closed="both")],
        "masking": [dict, None],
        "t_r": [*POSITIVE, None],
        "model_t_r": [*POSITIVE, None],
        "window": [StrOptions(set(WINDOW_STRATEGIES))],
        "stride": [*POSITIVE_INT, None],
        "min_frames": [*POSITIVE_INT, None],
        "normalization": [StrOptions({n for n in NORMALIZATIONS if n}), None],
        "compile": COMPILE,
        "random_state": ["random_state"],
        "checkpoint_dir": OPTIONAL_PATH,
        "checkpoint_every": [*POSITIVE_INT, None],
        "callbacks": [list, tuple, None],
        "num_workers": [Range(numbers.Integral, 0, None, closed="left")],
        "accumulation_steps": POSITIVE_INT,
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        gradients=None,
        *,
        model_size="tiny",
        patch_size=16,
        n_frames=160,
        predictor_embed_dim=None,
        predictor_depth=6,
        drop_path_rate=0.0,
        loss="l2",
        patch_embed_init="trunc_normal",
        n_epochs=100,
        batch_size=16,
        lr=1e-3,
        start_lr=5e-5,
        final_lr=1e-6,
        warmup_epochs=None,
        weight_decay=0.04,
        final_weight_decay=0.4,
        ema_momentum=0.996,
        final_ema_momentum=1.0,
        masking=None,
        t_r=None,
        model_t_r=None,
        window="sliding",
        stride=None,
        min_frames=None,
        normalization="robust",
        pooling="mean",
        final_norm=True,
        device="auto",
        precision="auto",
        compile="auto",
        random_state=None,
        checkpoint_dir=None,
        checkpoint_every=None,
        callbacks=None,
        num_workers=0,
        accumulation_steps=1,
        verbose=1,
    ):
        self.gradients = gradients
        self.model_size = model_size
        self.patch_size = patch_size
        self.n_frames = n_frames
        self.predictor_embed_dim = predictor_embed_dim
        self.predictor_depth = predictor_depth
        self.drop_path_rate = drop_path_rate
        self.loss = loss
        self.patch_embed_init = patch_embed_init
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.start_lr = start_lr
        self.final_lr = final_lr
        self.warmup_epochs = warmup_epochs
        self.weight_decay = weight_decay
        self.final_weight_decay = final_weight_decay
        self.ema_momentum = ema_momentum
        self.final_ema_momentum = final_ema_momentum
        self.masking = masking
        self.t_r = t_r
        self.model_t_r = model_t_r
        self.window = window
        self.stride = stride
        self.min_frames = min_frames
        self.normalization = normalization
        self.pooling = pooling
        self.final_norm = final_norm
        self.device = device
        self.precision = precision
        self.compile = compile
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.callbacks = callbacks
        self.num_workers = num_workers
        self.accumulation_steps = accumulation_steps
        self.verbose = verbose

    def set_params(self, **params):
        """Set the parameters of this estimator, ``masking__<option>`` included.

        ``masking__<option>=value`` sets one option of the ``masking`` dict, so that a grid
        search can vary one option at a time (``masking__alpha_region_scale``,
        ``masking__count_quantile``, ...). It makes a new dict: the one passed as ``masking``
        is not modified. ``masking=`` given in the same call is applied first.

        ``gradients__<parameter>`` sets a parameter of the :class:`GradientPositioner` given as
        ``gradients`` (here or before); with any other ``gradients`` it raises a ``ValueError``,
        as does ``<parameter>__<name>`` for another parameter that holds no estimator
        (``pooling__<name>``, ``callbacks__<name>``, ...), before any parameter is set.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : BrainJEPAPretrainer
            The estimator, its parameters set.
        """
        options = {key.partition("__")[2]: params.pop(key) for key in list(params)
                   if key.startswith("masking__")}
        self._check_masking_options(options)
        masking = params.get("masking", self.masking)
        if options and not isinstance(masking, (dict, type(None))):
            raise TypeError(f"masking__<option> needs masking to be a dict or None, got "
                            f"{type(masking).__name__}")
        super().set_params(**params)
        if options:
            self.masking = {**(self.masking or {}), **options}
        return self

    def _fitted_encoder(self):
        return self.model_.target_encoder

    # -- pieces of fit -----------------------------------------------------------------------
    def _model_config(self):
        if isinstance(self.model_size, str):  # a preset (checked by check_parameters)
            sizes = dict(MODEL_PRESETS[self.model_size])
        else:
            missing = {"embed_dim", "depth", "num_heads"} - set(self.model_size)
            # the model's other settings are the pretrainer's parameters (a patch_size here
            # was overridden by the parameter without a word)
            unknown = sorted(set(self.model_size) - set(_MODEL_SIZE_KEYS), key=str)
            if missing:
                # a misspelt key ("embed") is named beside the missing one it stands for
                misspelt = (f" and has {unknown}, which are not sizes: its keys are "
                            f"{list(_MODEL_SIZE_KEYS)}" if unknown else "")
                raise ValueError(f"model_size dict misses {sorted(missing)}{misspelt}")
            if unknown:
                raise ValueError(f"model_size dict has {unknown}, which are not sizes: its keys "
                                 f"are {list(_MODEL_SIZE_KEYS)}")
            sizes = python_values(dict(self.model_size))  # saved with the run's state
            for key in ("embed_dim", "depth", "num_heads"):
                value = sizes[key]
                if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
                        or value < 1):
                    raise ValueError(f"model_size[{key!r}] must be a positive int, got "
                                     f"{value!r}")
        check_window_patches(self.n_frames, self.patch_size)
        predictor_dim = self.predictor_embed_dim
        if predictor_dim is None:
            predictor_dim = min(384, sizes["embed_dim"])
        # checked here, before any work, naming the parameter: the model would fail only after
        # the gradients and statistics were fitted, calling either width "embed_dim"
        # a default predictor width is named as such (the user set none)
        default = " (its default, min(384, embed_dim))" if self.predictor_embed_dim is None else ""
        for name, width, whose in (("model_size['embed_dim']", sizes["embed_dim"], ""),
                                   ("predictor_embed_dim", predictor_dim,
                                    f", the predictor's too{default}")):
            if width % 4 or width % sizes["num_heads"]:
                raise ValueError(
                    f"{name}={width} must be a multiple of 4 (the position code's four parts) "
                    f"and of the encoder's num_heads={sizes['num_heads']}{whose}")
        # the blocks' settings a dict may give, checked as the model checks them but before
        # the gradients and statistics are fitted, and named as model_size's
        block_defaults = inspect.signature(BrainJEPA).parameters
        try:
            check_block_settings(
                sizes.get("mlp_ratio", block_defaults["mlp_ratio"].default),
                sizes.get("qkv_bias", block_defaults["qkv_bias"].default),
                self.drop_path_rate, widths=(sizes["embed_dim"], predictor_dim))
        except ValueError as error:
            raise ValueError(f"model_size: {error}") from None
        return dict(
            sizes,
            patch_size=int(self.patch_size),
            predictor_embed_dim=int(predictor_dim),
            predictor_depth=int(self.predictor_depth),
            drop_path_rate=float(self.drop_path_rate),
            loss=self.loss,
            n_patches=int(self.n_frames // self.patch_size),
            patch_embed_init=self.patch_embed_init,
        )

    def _copy_callbacks(self):
        callbacks = [] if self.callbacks is None else self.callbacks
        if not isinstance(callbacks, (list, tuple)) or not all(
            isinstance(callback, Callback) for callback in callbacks
        ):
            raise ValueError(
                "callbacks must be a list of brainjepa_sk.train.Callback instances, got "
                f"{self.callbacks!r}"
            )
        return copy.deepcopy(list(callbacks))

    def _connectivity_of_check(self):
        """A :class:`~brainjepa_sk.gradients._GroupConnectivity` for the check of X's files
        to feed, where the gradients are fitted from X's connectivity (a plain
        ``GradientPositioner`` of time series, the default): X's files, where all are text
        files, are then parsed once less (with an ``.npy`` file among them, which the check
        gives no taker, all are read again). None elsewhere, and in the processes that do
        not fit the gradients under torchrun."""
        source = self.gradients
        fitted_on_x = source is None or (type(source) is GradientPositioner
                                          and source.kind == "timeseries")
        return _GroupConnectivity() if fitted_on_x and world()[0] == 0 else None

    def _series_kept_by_check(self):
        """A :class:`~brainjepa_sk.validation.CheckedSeries` for the check of X's files to
        fill, where the preprocessing fit learns from the values (``normalization="robust"``,
        and None's scale warning), with as many frames as its sample takes
        (``preprocessing.ROBUST_SAMPLE_FRAMES``): a corpus of text files of at most that
        many frames is then parsed once less (with an ``.npy`` file, all are read again).
        None elsewhere, and in the processes that do not fit the preprocessing under
        torchrun."""
        if self.normalization not in ("robust", None) or world()[0] != 0:
            return None
        return CheckedSeries(preprocessing.ROBUST_SAMPLE_FRAMES)

    def _fit_gradients(self, subjects, n_regions, connectivity=None):
        """The gradients of ``gradients``, fitted on ``subjects`` where it is a
        ``GradientPositioner``; ``connectivity``, from :meth:`_connectivity_of_check` fed
        by their check, gives its group connectivity without reading the files again where
        they all were checked with a stamp (a file whose stamp changed since is read: it
        raises, or reads as checked)."""
        source = GradientPositioner() if self.gradients is None else self.gradients
        if isinstance(source, GradientPositioner):
            if source.kind == "connectivity":
                # the positioner is fitted on the pretrainer's X, which is time series: read as
                # matrices they fail with numpy's 'inhomogeneous shape' or 'not symmetric'
                raise ValueError(
                    f"gradients={source!r} has kind='connectivity', but the pretrainer fits it "
                    "on X, the subjects' ROI time series: use kind='timeseries', or fit the "
                    "positioner on your connectivity matrices first and pass its gradients_ "
                    "(gradients=positioner.gradients_)")
            positioner = clone(source)
            fitted = getattr(source, "gradients_", None)
            # fitted beforehand on another atlas: its gradients_ cannot serve X at all
            other_atlas = fitted is not None and np.shape(fitted)[0] != n_regions
            what = ("the default gradients=GradientPositioner()" if self.gradients is None
                    else f"gradients={source!r}")
            try:  # the settings that depend on the atlas, named as the pretrainer's
                positioner._check_params(n_regions)
            except InvalidParameterError as error:
                # a value no atlas takes (approach='xx'): not one "for this atlas"
                raise InvalidParameterError(
                    f"{what} has an invalid parameter: {str(error).rstrip('.')}") from None
            except ValueError as error:
                fitted_on = (f" (it was fitted on {np.shape(fitted)[0]} regions, another atlas; "
                             "the pretrainer fits a clone of it on X)" if other_atlas else "")
                fitting = positioner._for_atlas(n_regions)
                settings = ("GradientPositioner(...) with settings for this atlas"
                            if fitting is None else f"{fitting!r} (settings this atlas takes)")
                raise ValueError(
                    f"{what} cannot be fitted on X's {n_regions} regions{fitted_on}: {error}. "
                    f"Pass gradients={settings}, or a gradient matrix") from None
            group = None if connectivity is None else connectivity.of_checked_files(subjects)
            if group is not None:
                gradients = positioner._fit_with_group(subjects, group).gradients_
            else:
                gradients = positioner.fit(subjects).gradients_
            if other_atlas:
                warn_user(
                    f"gradients={source!r} is a GradientPositioner fitted on "
                    f"{np.shape(fitted)[0]} regions, but X has {n_regions}: its gradients_ are "
                    "of another atlas and are not used; the pretrainer fits a clone of it on "
                    "X's regions")
            elif fitted is not None and not (np.shape(fitted) == gradients.shape
                                             and np.array_equal(fitted, gradients)):
                # fitted beforehand (on a larger corpus, say): its gradients were meant to be
                # used, and would otherwise be replaced without a word
                if getattr(source, "feature_names_in_", None) is not None:
                    # its rows follow the columns of the corpus it was fitted on, which X may
                    # hold in another order: a bare array would place them by position
                    use = ("pass them with their region names, gradients=pandas.DataFrame("
                           "positioner.gradients_, index=positioner.feature_names_in_), "
                           "which is matched to X's columns by name")
                else:
                    use = "pass gradients=positioner.gradients_ (or their file)"
                warn_user(
                    f"gradients={source!r} is a fitted GradientPositioner whose gradients_ "
                    "differ from those fitted on X: the pretrainer fits a clone of it on X (so "
                    "that a cross-validation does not leak) and does not use them; to use "
                    f"them, {use}")
        elif isinstance(source, type) and issubclass(source, GradientPositioner):
            # the class itself passes the constraints (it has a fit): not "not a
            # GradientPositioner", which would send the user looking for another estimator
            raise ValueError(
                f"gradients={source.__name__} is the class, not a {source.__name__} instance: "
                f"pass gradients={source.__name__}() (with its settings, e.g. "
                f"{source.__name__}(n_components=10))")
        elif hasattr(source, "fit"):
            # the constraints accept any estimator; only a GradientPositioner gives positions
            # (load_gradients would call it "not numeric (dtype object)")
            raise ValueError(
                f"gradients={source!r} is an estimator but not a GradientPositioner: gradients "
                "must be a GradientPositioner (fitted on X inside fit), a gradient matrix "
                "(n_regions, n_components) or the path of one")
        else:
            # a DataFrame indexed by region names is put in the order of X's columns
            gradients = align_gradient_rows(source, load_gradients(source),
                                            getattr(self, "feature_names_in_", None))
        if gradients.shape[0] != n_regions:
            # a (n_components, n_regions) matrix: BrainSpace's gradients_.T, or a table saved
            # one component per row
            hint = ("; the gradients look transposed: they must be (n_regions, n_components), "
                    "pass their transpose (gradients.T)"
                    if gradients.ndim == 2 and gradients.shape[1] == n_regions else
                    "; each subject must be (n_timepoints, n_regions)")
            raise ValueError(
                f"{named_gradients(self.gradients)} have {gradients.shape[0]} rows (regions) but "
                f"X has {n_regions} "
                f"regions on its last axis{hint}"
            )
        if not isinstance(source, GradientPositioner) and (gradients == gradients[0]).all():
            # a warning, not an error: an ablation without positions may be meant
            warn_user(
                f"{named_gradients(self.gradients)} give all {n_regions} regions one position "
                "(every row is the same): gradient positioning then tells the model nothing of "
                "which region a token comes from. Pass the regions' gradients (or "
                "gradients=GradientPositioner(), the default); if positions are left out on "
                "purpose, ignore this warning")
        return gradients

    def _unseeded_gradients(self):
        """Whether the gradients come from a GradientPositioner that is not seeded with an
        int: they differ from one fit to the next, and so does the run's key."""
        return (isinstance(self.gradients, GradientPositioner)
                and not isinstance(self.gradients.random_state, numbers.Integral))

    def _fingerprint(self, config, data_digest, preprocessor, gradients, device, mask_sampler,
                     with_n_epochs=True):
        """Key of a training run: settings, data and seed. ``None`` when it cannot resume.

        ``with_n_epochs=False``: the key of the run's lineage, shared by the same run asked for
        more or fewer epochs (a shorter one can be extended).
        """
        if not isinstance(self.random_state, numbers.Integral) or self._unseeded_gradients():
            return None  # an unseeded (or shared RandomState) run is not reproducible
        params = self._run_settings(device, mask_sampler, with_n_epochs)
        # the state format is part of the key: files of older layouts are not resumed
        # the subjects (their digest), not the windows: files are never all read at once
        return run_key([params, config, _STATE_FORMAT], digests=[data_digest],
                       arrays=(gradients, preprocessor.median_, preprocessor.iqr_))

    def _run_settings(self, device, mask_sampler, with_n_epochs=True):
        """The parameters that shape a run, as its key counts them."""
        ignored = ("verbose", "device", "compile", "checkpoint_dir", "checkpoint_every",
                   "callbacks", "gradients", "pooling", "final_norm", "num_workers",
                   "accumulation_steps",
                   *(() if with_n_epochs else ("n_epochs",)))
        params = {k: v for k, v in self.get_params(deep=False).items() if k not in ignored}
        # the masks drawn, not how they were asked for: the sampler's values, as it checked
        # and converted them (a default spelled out is the default; (0.84, 1) is (0.84, 1.0))
        params["masking"] = {name: getattr(mask_sampler, name) for name in _MASKING_OPTIONS}
        # count_quantile only chooses the token counts every batch keeps (static_shapes): a
        # quantile that gives the default's counts (or none, without static_shapes) counts as
        # the default, so that runs saved with it keep their key; another, as its counts
        if (not mask_sampler.static_shapes
                or (mask_sampler.n_context, mask_sampler.n_target)
                == mask_sampler.counts_at(_COUNT_QUANTILE_DEFAULT)):
            params["masking"]["count_quantile"] = _COUNT_QUANTILE_DEFAULT
        else:
            del params["masking"]["count_quantile"]
            params["masking"]["static_counts"] = [mask_sampler.n_context, mask_sampler.n_target]
        # the arithmetic, not how it was asked for ("auto" is "fp32" on a CPU)
        params["precision"] = "fp32" if resolve_autocast(self.precision, device) is None else "bf16"
        return params

    def _described_settings(self, device, mask_sampler):
        """The run's settings as plain values, one level deep (``masking__min_keep``), with the
        gradients as given: saved with its state, to tell a user who changed one of them."""
        params = self._run_settings(device, mask_sampler)
        # the options as the sampler took them (the key counts count_quantile by its counts)
        params["masking"] = {name: getattr(mask_sampler, name) for name in _MASKING_OPTIONS}
        gradients = self.gradients
        # a callable kernel's repr holds its address, another in every process
        params["gradients"] = (re.sub(r" at 0x[0-9a-fA-F]+", "", repr(gradients))
                               if isinstance(gradients, GradientPositioner)
                               else os.fspath(gradients) if isinstance(gradients, (str, os.PathLike))
                               else "an array" if gradients is not None else None)
        plain = json.loads(json.dumps(params, sort_keys=True, default=plain_setting))
        flat = {}
        for name, value in plain.items():
            if isinstance(value, dict) and name != "model_size":
                flat.update({f"{name}__{key}": item for key, item in value.items()})
            else:
                flat[name] = value
        return flat

    # -- fit ---------------------------------------------------------------------------------
    def fit_transform(self, X, y=None, **fit_params):
        """Fit to ``X``, then transform it.

        ``X`` is checked once, by ``fit``: its transform takes the subjects so checked (so a
        generator ``X``, which ``fit`` uses up, is transformed too), with the checks that
        ``transform`` makes against the fit, without reading files or converting arrays again
        for them. Files whose training windows the fit cut at once (text files, and ``.npy``
        files that are resampled; up to 2 GiB) are not read again to cut them: the transform
        embeds the fit's windows, unless, when it begins, a file's size or modification time
        has changed since its check (then every file is read, as by ``transform``); a file
        changed later, while the windows are embedded, is not read (the embeddings are those
        of the series checked). The errors are those of
        ``fit(X).transform(X)``, and so are the warnings, but for those of the check of ``X``
        itself, given once.

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions), list of 2-D arrays or files
            Subjects' ROI time series; any iterable of subjects, a generator included.
        y : None
            Ignored (self-supervised).
        **fit_params : dict
            Further parameters of ``fit``.

        Returns
        -------
        X_new : ndarray or list of ndarray
            What ``transform`` returns for ``X``.
        """
        with fit_then_transform():
            return super().fit_transform(X, y, **fit_params)

    def fit(self, X, y=None):
        """Pretrain on the subjects in ``X``.

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions), list of 2-D arrays or files
            Training subjects' ROI time series (nilearn orientation).
            Files are a glob or a list of paths (see :mod:`brainjepa_sk.files`).
        y : None
            Ignored (self-supervised).

        Returns
        -------
        self : BrainJEPAPretrainer
            The fitted estimator.
        """
        check_parameters(self)
        warn_long_t_r(t_r=self.t_r, model_t_r=self.model_t_r)
        if self.checkpoint_dir:
            # before any work: a folder that cannot be written would fail only after an epoch
            check_writable_folder(self.checkpoint_dir, "checkpoint_dir")
            if not isinstance(self.random_state, numbers.Integral):
                warn_user(
                    "checkpoint_dir is set but random_state is not an int: the run cannot be "
                    "reproduced, so its saved state will never be resumed; pass an int "
                    "random_state to make it resumable",
                )
            elif self._unseeded_gradients():
                warn_user(
                    f"checkpoint_dir is set but gradients={self.gradients!r} has a "
                    "random_state that is not an int: its gradients may differ (bit for bit) "
                    "at every fit, so the run cannot be reproduced and its saved state will "
                    "never be resumed; give the GradientPositioner an int random_state to make "
                    "it resumable",
                )
        elif self.checkpoint_every is not None:
            warn_user(f"checkpoint_every={self.checkpoint_every} does nothing without "
                      "checkpoint_dir: nothing is saved; set checkpoint_dir to save the run")
        with restore_on_error(self) as before:
            # what a copy taken during fit (a callback that pickles or deep-copies the estimator)
            # holds: the estimator as it was, not this fit's regions with the last fit's model
            self._before_fit = before
            try:
                subjects = self._fit(X)
            finally:
                del self._before_fit
        record_validated(self, X, subjects)  # for the transform of fit_transform
        return self

    def __getstate__(self):
        state = super().__getstate__()
        if "_before_fit" in state:  # pickled during fit: see fit
            state = dict(state["_before_fit"])
            state.pop("_device_cache", None)
        return state

    def _shorter_windows(self, n_timepoints):
        """The ``n_frames`` that subjects of ``n_timepoints`` frames fill, as advice
        (``"n_frames=64 or less"``), or None when no window of two time patches fits."""
        longest = n_timepoints // self.patch_size * self.patch_size
        if longest < 2 * self.patch_size:
            return None
        # a min_frames or stride of the user's longer than the shorter window is refused with it
        longer = [f"{name}={value}" for name, value in (
            ("min_frames", self.min_frames),
            ("stride", self.stride if self.window == "sliding" else None),
        ) if value is not None and value > longest]
        lowered = (f"; {' and '.join(longer)} lowered to that n_frames or less"
                   if longer else "")
        return (f"n_frames={longest} or less (a multiple of patch_size={self.patch_size}, "
                f"two patches or more{lowered})")

    def _fit(self, X):
        """:meth:`fit`'s work; returns ``X`` as it validated it."""
        # the settings first, before X is read (every file of a corpus on disk)
        config = self._model_config()
        check_pooling(self.pooling, config["n_patches"])
        if config["n_patches"] < 2:
            # the mask sampler would say so only after X is read, in its own terms (n_patches)
            raise ValueError(
                f"n_frames={self.n_frames} is one time patch of patch_size={self.patch_size} "
                "frames: pretraining predicts masked time patches from the others of a window, "
                f"so a window needs at least 2; use n_frames={2 * self.patch_size} or more, or "
                "a smaller patch_size")
        masking = self._checked_masking()
        if "count_quantile" in masking and not masking.get("static_shapes", True):
            # a grid over the quantile would otherwise fit the same masks for every value
            warn_user(f"masking count_quantile={masking['count_quantile']} is ignored with "
                      "static_shapes=False: each batch keeps the token counts of its own draw; "
                      "leave static_shapes at True for the counts of the quantile in every "
                      "batch")
        device = process_device(resolve_device(self.device))
        # the check parses every text file: the gradients' connectivity is computed from that
        # parse, and a corpus small enough for the robust statistics to take every frame is
        # kept (.npy files feed neither: see each_checked_file)
        connectivity, kept = self._connectivity_of_check(), self._series_kept_by_check()
        with each_checked_file(None if connectivity is None else connectivity.add,
                               None if kept is None else kept.add):
            subjects = validate_subjects(X, estimator=self, reset=True, lazy=True)
        check_same_subjects(subjects, "fit")
        rng = check_random_state(self.random_state)
        seeds = [int(s) for s in rng.randint(0, 2**31 - 1, size=3)]
        if world()[1] > 1 and not isinstance(self.random_state, numbers.Integral):
            # under torchrun every process must draw the same window order and masks: an
            # unseeded process would take other windows of each global batch than its share
            seeds = on_main_process(list, seeds)
        init_seed, mask_seed, data_seed = seeds
        # built before the model: bad masking options are reported before any real work
        mask_sampler = self._mask_sampler(config, mask_seed, device)

        self.callbacks_ = self._copy_callbacks()
        warn_ignored_stride(self.stride, self.window)
        preprocessor = Preprocessor(
            self.n_frames,
            t_r=self.t_r,
            # without a model TR, the model's TR is the input's: recorded for embedding later
            target_t_r=self.model_t_r if self.model_t_r is not None else self.t_r,
            window=self.window,
            stride=self.stride if self.stride is not None else max(self.n_frames // 2, 1),
            min_frames=self.min_frames,
            normalization=self.normalization,
        )
        # before reading the corpus for the gradients; the window length is the user's
        # choice here (not the weights'), so a shorter one is offered with padding
        preprocessor.check_lengths(subjects, window_cure=self._shorter_windows,
                                   region_names=getattr(self, "feature_names_in_", None))
        self._global_batch(len(preprocessor.window_table(subject_lengths(subjects))[0]))
        # under torchrun, process 0 fits the gradients (on the connectivity its check
        # computed, for files) and the statistics and sends them on: every process would
        # find the same
        gradients = on_main_process(self._fit_gradients, subjects, self.n_features_in_,
                                    connectivity)
        del connectivity  # its sums (and a chunk's series, where unused) are held no longer
        preprocessor = on_main_process(preprocessor.fit, subjects if kept is None
                                       else kept.subjects(subjects))
        del kept  # what the fit did not take (an error left it) is held no longer
        # inside fit_transform, the windows cut at once are kept for its transform, which
        # then embeds them rather than reading every file once more
        cut = cut_for_transform(self, preprocessor, subjects)
        windows, subject_index = (training_windows(preprocessor, subjects) if cut is None
                                  else cut)
        dataset = (WindowDataset(windows, subject_index) if isinstance(windows, np.ndarray)
                   else windows)  # a LazyWindowDataset: read by the loader's workers
        data_digest = subjects_digest(subjects)
        fingerprint = self._fingerprint(config, data_digest, preprocessor, gradients, device,
                                        mask_sampler)
        lineage = self._fingerprint(config, data_digest, preprocessor, gradients, device,
                                    mask_sampler, with_n_epochs=False)
        run = {"keys": (fingerprint, lineage), "data": data_digest,
               "n_subjects": len(subjects),
               "settings": self._described_settings(device, mask_sampler)}
        # Initialisation and stochastic depth use torch's global generator: a seeded fork of it,
        # so that random_state decides them and the caller's state is left alone.
        with forked_rng(init_seed, device):
            model = BrainJEPA(gradients, **config).to(device).train()
            history = self._train(model, dataset, config, device, mask_sampler, data_seed,
                                  run, preprocessor)

        self.model_ = model.cpu().eval()
        # so that weights=model_ preprocesses as the saved file does
        self.model_.preprocessing = preprocessor.to_dict()
        self.model_.region_names = self._region_names().get("region_names")
        # checked by transform as the embedder given the saved file checks them
        self.region_names_ = self.model_.region_names
        self.gradients_ = gradients
        self._set_preprocessor(preprocessor)
        self.history_ = history
        self.embedding_dim_ = config["embed_dim"]
        self.__dict__.pop("_device_cache", None)
        return subjects

    def _check_masking_options(self, options):
        """Raise a ``ValueError`` naming the keys of ``options`` that are no masking option."""
        unknown = sorted(set(options) - set(_MASKING_OPTIONS))
        if unknown:
            raise ValueError(f"Invalid masking option(s) {unknown} for {type(self).__name__}: "
                             f"the options are {list(_MASKING_OPTIONS)}")

    def _checked_masking(self):
        """``masking`` as a dict, refused when it names an option that is none or that the
        pretrainer sets itself, or gives one a value of the wrong kind or range (checked
        before X is read: none of this needs the data)."""
        masking = dict(self.masking or {})
        reserved = sorted(set(MASKING_SET_BY_PRETRAINER) & set(masking))
        if reserved:
            raise ValueError(
                f"masking may not set {reserved}: the pretrainer sets them (the regions and "
                "patches from the data and n_frames, the seed from random_state, the device "
                "from device)")
        self._check_masking_options(masking)
        # their values need no grid either (a scale out of range, a fractional min_keep)
        _checked_options(**masking)
        return masking

    def _mask_sampler(self, config, seed, device):
        masking = self._checked_masking()
        try:
            return SpatiotemporalMaskSampler(self.n_features_in_, config["n_patches"],
                                             seed=seed, device=device, **masking)
        except UnsatisfiableMaskingError as error:  # the sampler's advice, in our terms
            raise UnsatisfiableMaskingError(
                f"{error} (the grid is the regions x n_frames // patch_size time patches; "
                "set the masking options it names as masking={'<option>': ...} or "
                "set_params(masking__<option>=...))") from error

    def _global_batch(self, n_windows):
        """``batch_size`` capped at the ``n_windows`` training windows, refused unless it
        splits into the processes' shares of ``accumulation_steps`` micro-batches."""
        world_size = world()[1]
        global_batch = min(int(self.batch_size), n_windows)
        n_micro = int(self.accumulation_steps)
        if global_batch % (world_size * n_micro):
            # torchrun: batch_size is the global batch, shared out among the processes, each
            # share run in accumulation_steps micro-batches
            capped = (f" (capped at the {n_windows} training windows)"
                      if global_batch < int(self.batch_size) else "")
            multiple = world_size * n_micro
            if n_windows < multiple:
                # each lever named only where pulling it alone gives a batch the windows fill
                levers = []
                if world_size <= n_windows:  # (then accumulation_steps > 1)
                    levers.append(f"lower accumulation_steps (to at most "
                                  f"{n_windows // world_size})")
                if n_micro <= n_windows:  # (then more than one process)
                    levers.append(f"run fewer processes (at most {n_windows // n_micro})")
                advice = (f"the {n_windows} training windows cannot fill a batch of "
                          f"{multiple}: " + (", or ".join(levers) or (
                              "lower accumulation_steps and run fewer processes (processes x "
                              f"accumulation_steps at most {n_windows})")))
            else:
                # a batch_size above the windows is capped: a multiple of its own may not fit
                within = f" of at most the {n_windows} training windows" if capped else ""
                advice = (f"set batch_size to a multiple of {multiple}{within}, such as "
                          f"{max(global_batch // multiple, 1) * multiple}")
            raise ValueError(
                f"batch_size={global_batch}{capped}, the global batch, is not a multiple of "
                f"the {world_size} process(es) x accumulation_steps={n_micro}; {advice}"
            )
        return global_batch

    def _train(self, model, dataset, config, device, mask_sampler, data_seed, run,
               preprocessor):
        """Build the loop and its callbacks, and run it (resuming from ``checkpoint_dir``)."""
        fingerprint, lineage = run["keys"]
        rank, world_size = world()
        global_batch = self._global_batch(len(dataset))
        n_micro = int(self.accumulation_steps)
        # one sampler whatever the process count: the same windows in each global batch, and a
        # state that resumes under another count
        sampler = ShuffleSampler(len(dataset), data_seed, num_replicas=world_size, rank=rank,
                                 batch_size=global_batch)
        loader = window_loader(dataset, global_batch // world_size, sampler,
                               pin_memory=device.type == "cuda",
                               num_workers=int(self.num_workers))
        schedule = PretrainSchedule.from_epochs(
            self.n_epochs, len(loader), warmup_epochs=self.warmup_epochs,
            start_lr=self.start_lr, lr=self.lr, final_lr=self.final_lr,
            weight_decay=self.weight_decay, final_weight_decay=self.final_weight_decay,
            ema_momentum=self.ema_momentum, final_ema_momentum=self.final_ema_momentum,
        )
        # (a flat warm-up, start_lr == lr, as in a random-encoder control with both 0, is moot)
        if 0 < schedule.total_steps <= schedule.warmup_steps and self.start_lr != self.lr:
            warn_user(
                f"warmup_epochs={self.warmup_epochs} ({schedule.warmup_steps} steps) lasts the "
                f"whole run (n_epochs={self.n_epochs}, {schedule.total_steps} steps): the rate "
                f"rises for the whole fit and never reaches its peak lr={self.lr}")
        monitor = dataset.__getitems__(_monitor_indices(dataset.subject_index).tolist()).to(device)
        if len(monitor) < 2:
            warn_user("a single training window: the collapse monitors of history_ "
                      "(target_std, effective_rank) measure a spread across windows and are NaN")
        progress = ProgressBar(disable=not self.verbose or rank != 0)
        # the monitored windows go through the target encoder a micro-batch at a time: all 64
        # at once took more memory than the training steps (several times a step's for a
        # large atlas: 64 windows of 360 regions x 10 patches are 230,400 tokens)
        micro_batch = global_batch // world_size // int(self.accumulation_steps)
        callbacks = [NonFiniteLossGuard(), CollapseMonitor(monitor, batch_size=micro_batch),
                     *self.callbacks_, progress]
        checkpoint = None
        if self.checkpoint_dir:
            # one file per run (settings, data, seed): folds of a cross-validation sharing a
            # checkpoint_dir each resume their own run
            name = _UNSEEDED_STATE_FILE if fingerprint is None else f"run-{fingerprint[:16]}.pt"
            extra = {"config": config, "preprocessing": storable_values(preprocessor.to_dict()),
                     "lineage": lineage, "n_epochs": int(self.n_epochs),
                     # to tell a later fit that differs from this run in what (see
                     # _tell_of_unfinished_runs)
                     "data": run["data"], "n_subjects": run["n_subjects"],
                     "settings": run["settings"], "process": _this_process(),
                     "state_format": _STATE_FORMAT,
                     **self._region_names()}
            checkpoint = Checkpoint(Path(self.checkpoint_dir) / name, fingerprint, extra=extra,
                                    every_steps=self.checkpoint_every)
            if rank == 0:  # every process resumes from the file; one writes it
                callbacks.append(checkpoint)
        loop = PretrainLoop(model, loader, mask_sampler, schedule, self.n_epochs,
                            autocast_dtype=resolve_autocast(self.precision, device),
                            callbacks=callbacks, accumulation_steps=n_micro,
                            compile=resolve_compile(self.compile, device))
        if checkpoint is not None and checkpoint.restore(loop):
            # a bar that starts part-way (or full: the run was finished) says where from
            how = "finished run loaded" if loop.epoch >= loop.n_epochs else "resumed"
            progress.desc = f"pretraining, {how} from {checkpoint.path}"
        elif checkpoint is not None and lineage is not None:
            extended = self._extend_shorter_run(loop, lineage)
            if extended:
                progress.desc = f"pretraining, extending {extended}"
            elif rank == 0:
                self._tell_of_unfinished_runs(checkpoint.path, run)
        try:
            history = loop.run()
        except TrainingInterrupted as error:
            if loop.stop_training:  # SIGTERM or Ctrl-C came as a callback stopped the run
                self._save_as_stopped(checkpoint, loop, rank)
            # the loop's message speaks of callbacks; say what became of this run
            stopped = str(error).split(";")[0]
            if checkpoint is None:
                what = ("nothing was saved (checkpoint_dir is not set), so fitting again starts "
                        "from scratch: set checkpoint_dir to make a run resumable")
            elif fingerprint is None:
                whose = ("GradientPositioner's random_state" if self._unseeded_gradients()
                         and isinstance(self.random_state, numbers.Integral) else "random_state")
                what = (f"its state is in {checkpoint.path}, but a run whose {whose} is not an "
                        f"int is never resumed: pass an int {whose} to make it resumable")
            elif loop.epoch >= loop.n_epochs:
                what = (f"the run is complete and saved in {checkpoint.path}: the same fit again "
                        "returns it")
            else:
                what = (f"its state is saved in {checkpoint.path} (step {loop.step} of "
                        f"{loop.n_epochs * loop.steps_per_epoch}): the same fit again resumes it")
            raise TrainingInterrupted(f"pretraining {stopped}; {what}") from error
        except OSError as error:
            if error.errno != errno.ENOSPC or checkpoint is None or fingerprint is None:
                raise
            # a checkpoint's save found the disk full: the file it replaces is kept, so the run
            # is not lost (a run that cannot be resumed has nothing to add)
            raise OSError(errno.ENOSPC, f"{error.strerror}; free space and fit again: the same "
                                        "fit resumes the run from its last saved state") from error
        self._save_as_stopped(checkpoint, loop, rank)  # when it returned early
        return history

    @staticmethod
    def _save_as_stopped(checkpoint, loop, rank):
        """Save a run that a callback stopped on purpose (stop_training) before its last epoch
        as such, with the steps since the last save, so that unfinished_runs leaves it out."""
        if checkpoint is not None and rank == 0 and loop.epoch < loop.n_epochs:
            checkpoint.extra = {**checkpoint.extra, "stopped_by_callback": True}
            checkpoint.save(loop)

    def _extend_shorter_run(self, loop, lineage):
        """Continue the furthest saved run that differs from this one only by fewer epochs;
        return its file (None when there is none)."""
        best = find_shorter_run(self.checkpoint_dir, lineage, self.n_epochs)
        if best is None:
            return None
        path, state = best
        loop.load_state_dict(state["loop"])
        warn_user(
            f"extending the run saved in {path} (n_epochs={state['extra']['n_epochs']}, "
            f"{loop.step} steps done) to n_epochs={self.n_epochs}: the schedules follow "
            f"n_epochs={self.n_epochs} from step {loop.step} on",
        )
        return path

    def _tell_of_unfinished_runs(self, path, run):
        """Warn when ``checkpoint_dir`` holds an unfinished run that differs from this new one
        only by its settings or only by its data: a user resuming it with a setting or a file
        changed would otherwise see it start afresh without a word."""
        found = []
        for other, extra, done in unfinished_runs(self.checkpoint_dir):
            if other == path or "settings" not in extra or _trained_by_another_process(extra):
                # this run's own file, one saved before settings were kept, or one another
                # fit trains now (parallel cross-validation folds share checkpoint_dir)
                continue
            # files saved before the format was recorded in them are of format 4
            theirs_format = extra.get("state_format", 4)
            if (theirs_format != _STATE_FORMAT and extra.get("data") == run["data"]
                    and extra["settings"] == run["settings"]):
                what = (f"the same data and settings but saved by another version of "
                        f"brainjepa_sk (state format {theirs_format} there, {_STATE_FORMAT} "
                        "now)")
                found.append((_modified(other), other, extra, done, what,
                              "only a version of its state format"))
            elif extra.get("data") == run["data"]:
                theirs, ours = extra["settings"], run["settings"]
                changed = [f"{name}: {theirs.get(name)!r} there, {ours.get(name)!r} now"
                           for name in sorted(set(theirs) | set(ours))
                           if theirs.get(name) != ours.get(name)]
                what = ("the same data but other settings ("
                        + ("; ".join(changed) if changed else "other gradients") + ")")
                found.append((_modified(other), other, extra, done, what,
                              "a fit with its settings"))
            elif extra["settings"] == run["settings"]:
                what = (f"the same settings but other data ({extra.get('n_subjects')} subjects "
                        f"there, {run['n_subjects']} now: subjects added, removed, changed or put in another order)")
                found.append((_modified(other), other, extra, done, what,
                              "a fit on its data"))
        if not found:
            return
        _, other, extra, done, what, how = max(found, key=lambda item: item[0])
        more = f" (and {len(found) - 1} more such run(s))" if len(found) > 1 else ""
        warn_user(
            f"starting a new run from scratch in {path}: checkpoint_dir holds an unfinished "
            f"run, {other} (stopped at step {done['step']}, {done['epoch']} of its "
            f"n_epochs={extra['n_epochs']} epochs done){more}, with {what}, which {how} "
            "would resume; unless another fit (on another machine) trains it now, delete its "
            "file if you no longer need it",
        )

    def _region_names(self):
        names = getattr(self, "feature_names_in_", None)
        if names is None and not isinstance(self.gradients, GradientPositioner):
            # X without names: a gradient DataFrame indexed by region names names the rows,
            # used in order (the embedder then checks X's columns against them)
            names = gradient_region_names(self.gradients)
        return {} if names is None else {"region_names": [str(n) for n in names]}

    def score(self, X, y=None):
        """Negative mean masked-prediction loss of the fitted model on ``X`` (higher is better).

        The JEPA loss that ``fit`` minimises (``loss``, the model's predictions of its EMA
        target encoder's features at the masked tokens), of the model as it is, averaged over
        the windows of ``X``: scikit-learn's model selection (``GridSearchCV`` without
        ``scoring``, ``cross_val_score``) then compares pretraining settings by how well the
        model predicts the masked parts of held-out subjects, as ``KMeans.score`` compares
        clusterings by their inertia.

        ``X`` is checked, preprocessed and cut into windows as ``transform`` does it (the
        statistics and windows of ``fit``, the same errors and warnings), and run through the
        model ``batch_size`` windows at a time on ``device`` with ``precision``, in eval mode
        (no stochastic depth) and without gradients. The masks are drawn with the options of
        ``masking`` (as set now) from seeds fixed by an int ``random_state`` (0 for None or a
        ``RandomState``, which is not drawn from), one draw per 64 subjects: calling ``score``
        again gives the same number, and estimators with the same ``random_state`` and
        ``masking`` are scored on the same masks, whatever their ``batch_size`` or ``device``.
        Nothing of the estimator changes (weights, modes, ``history_``, random states).

        Under ``torchrun`` the processes share out the subjects (each must be given all of
        them, as for ``transform``) and every process returns the same score, that of one
        process.

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions), list of 2-D arrays or files
            Subjects' ROI time series (nilearn orientation), usually held out from ``fit``.
            Files are a glob or a list of paths (see :mod:`brainjepa_sk.files`).
        y : None
            Ignored (self-supervised).

        Returns
        -------
        float
            Minus the loss averaged over the windows of ``X`` (each window's loss averaged
            over its target tokens); NaN or -inf where the model gives non-finite losses.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        ValueError
            For ``X`` that ``transform`` refuses (other regions, non-finite values, a subject
            too short, ...), with its message.

        Notes
        -----
        Scores are comparable across settings that leave the masking task alone: the learning
        rate and its schedule, the model's depth and heads, ``n_epochs``, ``batch_size``, ...
        but not its width under ``loss="l2"`` (the default): that loss is summed over the
        ``embed_dim`` features of the targets, so a model twice as wide scores about twice as
        low for the same error per feature; divide each score by its model's ``embed_dim``, or
        train the candidates with ``loss="smooth_l1"`` (averaged over the features), to compare
        widths (``model_size`` presets or dicts). Settings that change the task are not
        compared by it: other ``masking`` options hide other
        tokens (larger targets, fewer context tokens: a harder task, a lower score for an
        equally good model), and ``loss``, ``n_frames`` and ``patch_size`` change what is
        measured. Nor do the preprocessing settings (``normalization``, ``window``, ...), which
        change the windows. A collapsed encoder (see ``history_``'s ``target_std`` and
        ``effective_rank``) gives targets that are easy to predict, and so a good score: check
        the monitors of the selected model.
        """
        check_is_fitted(self, msg=self._not_fitted_message)
        # read live, as transform reads them (and masking, random_state: the masks)
        check_parameters(self, (*_READOUT_PARAMETERS, "masking", "random_state"))
        subjects, device, autocast_dtype = self._fitted_call_input(X, "score")
        seed = 0
        if isinstance(self.random_state, numbers.Integral):
            check_random_state(self.random_state)  # an int numpy refuses, refused as in fit
            seed = int(self.random_state)
        n_patches = self.preprocessor_.n_frames // self.model_.patch_size
        # drawn on the CPU whatever the device: the same masks on any device
        sampler = self._mask_sampler({"n_patches": n_patches}, seed, "cpu")
        batch_size = int(self.batch_size)
        rank, n_processes = world()
        # the fitted module is kept on the CPU (pickles load anywhere): a copy computes on a GPU.
        # Made anew each call, not cached as transform caches its target encoder
        # (_encoder_on): score runs the whole model (both encoders and the predictor, 181M
        # parameters or 692 MiB in float32 for model_size="base"), which a cache would keep
        # on the GPU after the call, beside transform's copy, while model selection
        # (cross_val_score, GridSearchCV) scores each fitted estimator once. The copy costs
        # about 0.6 s for "base" (deepcopy on a CPU core) and its transfer, against a pass
        # over the held-out windows.
        model = self.model_ if device.type == "cpu" else copy.deepcopy(self.model_).to(device)
        chunk_losses = []
        with _eval_mode(model):
            for start, _, windows, _ in window_chunks(
                    subjects, self.preprocessor_, _SCORE_SUBJECTS_PER_CHUNK,
                    shard=(rank, n_processes), scale_check=FittedScaleCheck.of(self, subjects)):
                sampler.load_state_dict({"host": _chunk_mask_state(seed, start)})
                drawn = sampler.sample(len(windows))
                masks = MaskBatch(drawn.context_idx.to(device), drawn.target_idx.to(device),
                                  drawn.target_kind, drawn.sizes)
                total = 0.0
                for first in range(0, len(windows), batch_size):
                    part = slice(first, first + batch_size)
                    x = torch.from_numpy(np.ascontiguousarray(windows[part])).to(device)
                    # every window of a batch has as many target tokens: the batch's mean is
                    # the mean of its windows' losses
                    total += eval_step(model, x, masks.take(part), autocast_dtype).item() * len(x)
                chunk_losses.append((start, total, len(windows)))
        # summed in the order of the chunks, whichever process scored each: the score of one
        # process, to the last bit
        chunk_losses = sorted(all_gather_objects(chunk_losses))
        total = 0.0
        for _, chunk_total, _ in chunk_losses:
            total += chunk_total
        return -total / sum(n_windows for _, _, n_windows in chunk_losses)

    def save(self, path):
        """Save the pretrained model with its gradients and preprocessing.

        The file loads with :func:`~brainjepa_sk.checkpoint.load_checkpoint` and as
        ``BrainJEPAEmbedder(weights=path)``, which applies the same preprocessing.

        Parameters
        ----------
        path : str or path-like
            Destination file.

        Raises
        ------
        ValueError
            When ``path`` holds the saved state of a pretraining run (nothing is written).
        """
        check_is_fitted(self)
        save_checkpoint(
            path,
            self.model_,
            preprocessing=self.preprocessor_.to_dict(),
            # save_checkpoint adds model_.region_names (those of fit): embedding checks that X
            # has them in order
            metadata={"history": self.history_},
        )

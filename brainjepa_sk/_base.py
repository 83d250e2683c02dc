"""Helpers shared by the estimators: shared constraints, fit atomicity, weights against subjects,
windows, embedding loops and the transformer mixin."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import io
import numbers
import os
from collections.abc import Iterator

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils._param_validation import (
    StrOptions,
)
from sklearn.utils._set_output import _get_output_config

from . import preprocessing
from ._warnings import warn_user
from .files import SubjectFiles, file_stamp, is_path
from .nn._checks import check_time_patches as check_window_patches
from .nn.pooling import POOLINGS, TokenPooling, check_pooling_patches
from .preprocessing import (
    NORMALIZATIONS,
    WINDOW_STRATEGIES,
    Preprocessor,
    preprocessor_for_weights,
)
from .train.data import LazyWindowDataset
from .train.distributed import all_gather_objects, process_device, world
from .train.runtime import (
    PRECISIONS,
    expand_home,
    first_non_finite,
    resolve_autocast,
    resolve_device,
)
from .validation import (  # noqa: F401  (the estimators import the constraints from here)
    COMPILE,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    Range,
    check_n_regions,
    check_nested_params,
    check_parameters,
    check_region_names,
    name_differences,
    subject_rows,
    subjects_digest,
)

__all__ = ["check_parameters", "restore_on_error", "embed_windows"]

#: Subjects preprocessed and embedded together by ``transform`` (bounds its memory).
SUBJECTS_PER_CHUNK = 64


@contextlib.contextmanager
def restore_on_error(estimator):
    """Undo every attribute change made to ``estimator`` inside the block if it raises.

    A failed ``fit`` then leaves a previously fitted estimator exactly as it was.

    Parameters
    ----------
    estimator : object
        The estimator whose ``__dict__`` is saved (a shallow copy: objects changed in place
        are not restored).

    Yields
    ------
    dict
        The attributes as they were (not to be changed). On an exception in the block
        (``KeyboardInterrupt`` included) they are restored, and so is the state of a NumPy
        ``RandomState`` given as ``random_state`` (the fit's draws from it are undone), and
        the exception propagates.
    """
    saved = dict(estimator.__dict__)
    # a failed fit drew from the user's generator or not depending on where it failed (its
    # seeds are drawn after the input's checks): the next fit would then differ from the one
    # the user would have got without the failure
    generator = saved.get("random_state")
    generator_state = (generator.get_state() if isinstance(generator, np.random.RandomState)
                       else None)
    try:
        yield saved
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(saved)
        if generator_state is not None:
            generator.set_state(generator_state)
        raise


def embed_windows(
    encoder, windows, *, batch_size, device, autocast_dtype, pooling="mean", final_norm=True
):
    """Run a (target) encoder over windows and pool its tokens.

    Parameters
    ----------
    encoder : BrainEncoder
        Encoder on ``device``, in eval mode.
    windows : numpy.ndarray
        ``(n_windows, n_frames, n_regions)`` float32 windows.
    batch_size : int
        Windows per forward pass.
    device : torch.device
        Where to compute.
    autocast_dtype : torch.dtype or None
        Autocast dtype (``None``: full precision).
    pooling : str, default="mean"
        A :class:`~brainjepa_sk.nn.TokenPooling` mode (one vector per window), or
        ``"tokens"``: each window's token features as a ``(n_patches * dim, n_regions)``
        series, ``(n_windows, n_patches * dim, n_regions)``.
    final_norm : bool, default=True
        Pool the encoder's output (after its final LayerNorm); ``False``: the last block's
        tokens, before that LayerNorm.

    Returns
    -------
    numpy.ndarray
        Float32 pooled embeddings: ``(n_windows, n_features)``, or with ``"tokens"``
        ``(n_windows, n_patches * dim, n_regions)``.
    """
    n_regions = windows.shape[2]
    if pooling == "tokens":
        def pool(tokens):  # (batch, R * P, D) -> (batch, P * D, R): a region is a column
            return tokens.reshape(len(tokens), n_regions, -1).transpose(1, 2)
    else:
        pool = TokenPooling(pooling, n_regions=n_regions)
    out = []
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(windows[start : start + batch_size]))
            x = x.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                tokens = encoder(x, final_norm=final_norm)
            out.append(pool(tokens.float()).cpu())
    return torch.cat(out).numpy()


def check_same_subjects(subjects, method):
    """Under torchrun, raise in every process unless all were given the same subjects.

    The processes share out one corpus (``fit``: each takes its share of every global batch of
    one order; ``transform``: each embeds its share of the subjects), so each must hold all of
    it. Other subjects in one process would train on a mixture, or wait forever in a collective
    when the processes count other numbers of windows or subjects. A collective operation:
    every process must call it.

    Parameters
    ----------
    subjects : list of numpy.ndarray or SubjectFiles
        What :func:`~brainjepa_sk.validation.validate_subjects` returned in this process.
    method : str
        The method called, for the message (``"fit"``, ``"transform"``).

    Raises
    ------
    ValueError
        In every process, naming the processes whose subjects differ from process 0's.
    """
    if world()[1] == 1:
        return
    found = all_gather_objects([(len(subjects), subjects_digest(subjects))])
    others = [rank for rank, seen in enumerate(found) if seen != found[0]]
    if others:
        counts = sorted({found[rank][0] for rank in [0, *others]})
        what = (f"{counts[0]} subjects in each, with other values" if len(counts) == 1 else
                ", ".join(f"{found[rank][0]} subjects in process {rank}"
                          for rank in [0, *others]))
        raise ValueError(
            f"under torchrun every process must call {method} with the same X (the processes "
            f"share out one corpus), but process(es) {others} got other subjects than process "
            f"0 ({what}); give each process all the subjects, not a shard, and check that a "
            "glob matches the same files on every node"
        )


def window_chunks(subjects, preprocessor, chunk_size=None, shard=(0, 1), scale_check=None,
                  cut=None):
    """Preprocess subjects a chunk at a time, so that their windows never all sit in memory.

    Yields ``(start, n_subjects_in_chunk, windows, subject_index)`` per chunk (windows
    overlap, so all of them could take much more memory than the subjects).

    ``shard=(rank, n_processes)`` keeps every ``n_processes``-th chunk from ``rank`` on (each
    process of a torchrun group takes its share).

    A ``scale_check`` is decided from the first subjects as the chunks scale them, before
    the chunk that completes them is yielded; under torchrun, where they were shared out
    among the processes, after the last chunk (every process gathers them). A call that
    fails before they were all scaled (a subject too short, checked before any is read; one
    beyond float32 once scaled) has them read, so that the warning still comes before the
    error.

    Parameters
    ----------
    subjects : sequence of array-like
        Validated subjects (arrays or a :class:`~brainjepa_sk.files.SubjectFiles`).
    preprocessor : Preprocessor
        Fitted.
    chunk_size : int, optional
        Subjects per chunk (at least 1); ``SUBJECTS_PER_CHUNK`` by default.
    shard : tuple of int, default=(0, 1)
        ``(rank, n_processes)``.
    scale_check : FittedScaleCheck, optional
        The transform-time scale warning to decide (validated subjects only).
    cut : tuple, optional
        ``(windows, subject_index, scale)``: every window of ``subjects`` (files) as the fit
        of ``fit_transform`` cut them with this ``preprocessor``, each window's subject, and
        the :class:`FirstSubjectsScale` ``scale`` measured then (None without robust
        statistics). Used only where every file still has the stamp (size, modification
        time) of its check at the start (``SubjectFiles._unchanged``: one ``os.stat`` per
        file): ``scale`` then decides ``scale_check`` before the first chunk, and each chunk
        takes its windows from ``windows`` rather than reading them (the series as checked,
        also for a file changed while they are embedded). Otherwise every chunk is read, as
        without ``cut``.

    Yields
    ------
    start : int
        Index of the chunk's first subject in ``subjects``.
    n_subjects_in_chunk : int
        Subjects in the chunk.
    windows : numpy.ndarray of shape (n_windows, n_frames, n_regions)
        The chunk's windows, from ``preprocessor.transform``.
    subject_index : numpy.ndarray of shape (n_windows,)
        Each window's subject, counted from the chunk's first.

    Raises
    ------
    ValueError
        Before any chunk, when a subject is too short for a window.
    """
    # a subject too short for a window is named (with its file) before any chunk is embedded;
    # the estimator's min_frames set since its fit is not applied: the message says to refit
    preprocessor._validate_params()
    rank, n_processes = shard
    validated = getattr(subjects, "n_timepoints", None) is not None
    if scale_check is not None and not validated:
        raise TypeError("scale_check needs validated subjects, which are indexed from the "
                        f"first in every chunk, got {type(subjects).__name__}")
    try:
        preprocessor._check_lengths(subjects, range(len(subjects)), refit=True)
    except ValueError:
        if scale_check is not None and rank == 0:  # the process that warns
            scale_check.warn_reading(subjects, preprocessor)
        raise
    chunk_size = SUBJECTS_PER_CHUNK if chunk_size is None else max(1, int(chunk_size))
    scaled_to = None if scale_check is None else scale_check.keep
    if cut is not None and not all(subjects._unchanged(i) for i in range(len(subjects))):
        cut = None  # a file changed since the fit read it: read them all, as without cut
    if cut is not None:
        cut_windows, cut_subject_index, fit_scale = cut
        if scale_check is not None and fit_scale is not None and fit_scale.scale is not None:
            scale_check.warn_from_scale(*fit_scale.scale)
    for start in range(rank * chunk_size, len(subjects), chunk_size * n_processes):
        rows = range(start, min(start + chunk_size, len(subjects)))
        if cut is not None:
            # windows are cut subject after subject: the chunk's are one slice
            first, stop = np.searchsorted(cut_subject_index, [rows.start, rows.stop])
            windows = cut_windows[first:stop]
            subject_index = cut_subject_index[first:stop] - rows.start
        elif validated:  # an error names the subject by its index in subjects, and its file
            try:
                windows, subject_index = preprocessor._transform_one_at_a_time(
                    subjects, rows, scaled_to=scaled_to)
            except Exception:
                if scale_check is not None and rank == 0:  # the process that warns
                    scale_check.warn_reading(subjects, preprocessor)
                raise
        else:
            windows, subject_index = preprocessor.transform(subjects[start : rows.stop])
        if scale_check is not None:
            scale_check.warn_when_complete()
        yield start, len(rows), windows, subject_index
    if scale_check is not None and n_processes > 1 and chunk_size < scale_check.n_wanted:
        # the first chunk of process 0 (the one that warns) did not hold them all: every
        # process reaches this point, with the same chunk size, to share its own
        scale_check.warn_from(all_gather_objects(scale_check.kept()))


def training_windows(preprocessor, subjects, scale_check=None):
    """The windows to train on and each one's subject, from a fitted ``preprocessor``.

    A :class:`~brainjepa_sk.train.LazyWindowDataset` that reads each window when the loader
    asks, when ``preprocessor.streams(subjects)`` (files read a window at a time, or too many
    windows to hold); otherwise every window cut at once into one array. A subject too short
    for a window is named (with its file) before any is read.

    Parameters
    ----------
    preprocessor : Preprocessor
        Fitted.
    subjects : sequence of array-like
        Validated subjects (arrays or a :class:`~brainjepa_sk.files.SubjectFiles`).
    scale_check : FittedScaleCheck, optional
        Decided before this returns or raises: from the first subjects as they are scaled
        when the windows are cut at once, else (or on an error before they all were) by
        reading them.

    Returns
    -------
    windows : numpy.ndarray or LazyWindowDataset
        ``(n_windows, n_frames, n_regions)`` float32 windows, in memory or read when indexed.
    subject_index : numpy.ndarray of shape (n_windows,)
        Each window's subject.

    Raises
    ------
    ValueError
        When a subject is too short for a window.
    """
    if scale_check is None:
        return _cut_training_windows(preprocessor, subjects)

    def keep(i, scaled):  # decided as soon as the first subjects are scaled
        scale_check.keep(i, scaled)
        scale_check.warn_when_complete()

    try:
        cut = _cut_training_windows(preprocessor, subjects, keep)
    except Exception:
        scale_check.warn_reading(subjects, preprocessor)  # before the error, as fit did
        raise
    scale_check.warn_reading(subjects, preprocessor)  # windows read lazily: no series scaled
    return cut


def _cut_training_windows(preprocessor, subjects, scaled_to=None):
    """:func:`training_windows`, the robust scaled series of the subjects cut at once given
    to ``scaled_to(i, series)``."""
    preprocessor.check_lengths(subjects)
    if not preprocessor.streams(subjects):
        if scaled_to is None:
            return preprocessor.transform(subjects)
        preprocessor._validate_params()  # as transform does first
        return preprocessor._transform_one_at_a_time(subjects, scaled_to=scaled_to)
    subject_index, starts = preprocessor.window_table(subjects.n_timepoints)
    reader = functools.partial(preprocessor.read_window, subjects)
    return LazyWindowDataset(subject_index, starts, reader), subject_index


def average_by_subject(values, subject_index, n_subjects, dtype=np.float32):
    """Mean of the rows of ``values`` that belong to each subject (windows -> subjects).

    The rows are summed in float64 and the means returned as ``dtype``.

    Parameters
    ----------
    values : numpy.ndarray of shape (n_windows, n_features)
        One row per window.
    subject_index : numpy.ndarray of shape (n_windows,)
        Each row's subject, in ``range(n_subjects)``.
    n_subjects : int
        Number of subjects (rows of the result).
    dtype : numpy dtype, default=numpy.float32
        dtype of the result.

    Returns
    -------
    numpy.ndarray of shape (n_subjects, n_features)
        Each subject's mean row (NaN for a subject without rows).
    """
    sums = np.zeros((n_subjects, values.shape[1]), dtype=np.float64)
    np.add.at(sums, subject_index, values)
    counts = np.bincount(subject_index, minlength=n_subjects)[:, None]
    return (sums / counts).astype(dtype, copy=False)


#: What ``transform`` can return: a ``TokenPooling`` mode, or each subject's token series.
ESTIMATOR_POOLINGS = (*POOLINGS, "tokens")


# -- parameter checks ---------------------------------------------------------------------------
# The constraints and check_parameters live in validation.py (with the Preprocessor's
# users); these are the estimators' own.
PRECISION = [StrOptions(set(PRECISIONS))]  # the values resolve_autocast takes, from there
DEVICE = [str, torch.device, None]  # resolved (and CUDA checked) by resolve_device
OPTIONAL_PATH = [str, os.PathLike, None]


def _is_default_weights(weights):
    """Whether ``weights`` names the UK Biobank checkpoint (which needs the 450-region atlas)."""
    return isinstance(weights, str) and weights == "ukbiobank"


def resolve_estimator_weights(estimator, subjects=None):
    """An estimator's ``weights``, ``gradients``, ``num_heads`` and ``data_dir`` resolved.

    With the default UK Biobank weights and the subjects of a ``fit``, the subjects' region
    count is checked first: a wrong atlas is reported before the checkpoint is downloaded.

    Parameters
    ----------
    estimator : BrainJEPAEmbedder, BrainJEPAClassifier or BrainJEPARegressor
        The estimator (its ``n_features_in_`` set by the input check when ``subjects`` is
        given).
    subjects : SubjectFiles or ConvertedSubjects, optional
        The checked subjects of a ``fit``.

    Returns
    -------
    ResolvedWeights
        What :func:`~brainjepa_sk.checkpoint.resolve_weights` returns.
    """
    # imported here: the checkpoint module imports the gradients module, which imports this one
    from .checkpoint import resolve_weights
    from .datasets import _weights
    from .datasets._atlas import ATLAS_ADVICE

    if subjects is not None and _is_default_weights(estimator.weights):
        check_n_regions(estimator.n_features_in_, _weights.UKBIOBANK_N_REGIONS,
                        what="built for", n_timepoints=subjects.n_timepoints[0],
                        name=type(estimator).__name__, advice=ATLAS_ADVICE)
    return resolve_weights(estimator.weights, gradients=estimator.gradients,
                           num_heads=estimator.num_heads, data_dir=estimator.data_dir)


#: The parameters a ``fit`` freezes into ``preprocessor_``.
PREPROCESSING_PARAMETERS = ("t_r", "model_t_r", "n_frames", "window", "stride", "min_frames",
                            "normalization")
#: Those of the estimators that load weights, whose atlas is fixed (see ``validate_subjects``).
WEIGHTS_PREPROCESSING_PARAMETERS = (*PREPROCESSING_PARAMETERS, "constant_regions")


def same_setting(a, b):
    """Whether two parameter values are the same setting: strings and path-like objects by
    their text, or as :class:`pathlib.Path` objects with a leading ``~`` read as the home folder
    (as when they are opened: ``"~/a.pt"``, ``"/home/me/a.pt"`` and ``"/home/me//a.pt"`` are
    one file), array-likes (arrays, DataFrames, tensors) by value, modules by identity."""
    if a is b:
        return True
    if isinstance(a, torch.nn.Module) or isinstance(b, torch.nn.Module):
        return False
    if is_path(a) and is_path(b):
        return expand_home(a) == expand_home(b)
    if any(hasattr(v, "__array__") for v in (a, b)):
        try:
            return np.array_equal(np.asarray(a), np.asarray(b))
        except (TypeError, ValueError, RuntimeError):
            return False
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):
        return False


def _short_repr(value):
    if is_path(value):  # in full: the file is what tells two settings apart
        return repr(os.fspath(value))
    text = repr(value)
    return text if len(text) <= 60 else f"<{type(value).__name__}>"


#: The parameters that pick the weights an estimator loads at ``fit``.
WEIGHTS_PARAMETERS = ("weights", "gradients", "num_heads")

#: A fitted :class:`~brainjepa_sk.preprocessing.Preprocessor`'s attribute names where they
#: differ from those of the parameters they resolve (a stride or shortest length it keeps as
#: None is the default one, which a refit with that value given repeats).
_RESOLVED_AS = {"model_t_r": "target_t_r", "stride": "_stride", "min_frames": "_min_frames"}


def changed_settings(estimator, recorded, names=None):
    """The parameters of ``estimator`` that differ from the values ``recorded`` at ``fit``.

    A preprocessing parameter left to ``fit`` to resolve (``"auto"`` or None) and since set to
    what it resolved to (``preprocessor_``'s value; for ``stride`` and ``min_frames`` the one
    it uses, its default when it keeps None) is not a change, nor is another parameter
    left to ``fit`` and since set to what the estimator's ``_settings_resolved_by_fit()``
    says ``fit`` found (the classifier's ``classes``: the labels, in the outputs' order).
    Nor is, for the estimators that load ``weights`` (the same since ``fit``), a ``t_r`` that
    resamples to the model's TR as the one of ``fit`` did (None and the model's own TR:
    neither resamples), or a ``gradients`` or ``num_heads`` that those weights carry their own
    of (``_carried_by_weights_``, from ``ResolvedWeights.carried``: a refit ignores them).

    Parameters
    ----------
    estimator : estimator
        The fitted estimator, its parameters perhaps changed by ``set_params`` since.
    recorded : dict or None
        Parameter values saved by ``fit`` (None: nothing recorded, nothing changed).
    names : iterable of str, optional
        The parameters to compare (default: all of ``recorded``).

    Returns
    -------
    list of str
        ``"name=new (fitted with old)"`` for each changed parameter.
    """
    if recorded is None:
        return []
    names = recorded if names is None else [name for name in names if name in recorded]
    preprocessor = getattr(estimator, "preprocessor_", None)
    found = getattr(estimator, "_settings_resolved_by_fit", dict)()
    # what the weights of fit carry their own of (ResolvedWeights.carried): ignored, as long
    # as the weights are the same
    carried = (getattr(estimator, "_carried_by_weights_", ()) if "weights" in recorded
               and same_setting(recorded["weights"], estimator.weights) else ())

    def unchanged(name):
        old, new = recorded[name], getattr(estimator, name)
        if same_setting(old, new) or name in carried:
            return True
        if name == "t_r" and preprocessor is not None and "weights" in recorded:
            # the model's TR comes from the weights or model_t_r (the pretrainer's from t_r
            # when model_t_r is None: a refit would record another TR); without one a refit
            # ignores t_r (and says so), and a changed t_r still counts as a change
            return preprocessor.target_t_r is not None and preprocessor.resamples_as(new)
        if not (old is None or (isinstance(old, str) and old == "auto")):  # not left to fit
            return False
        if name in found:
            return same_setting(found[name], new)
        return (preprocessor is not None and name in PREPROCESSING_PARAMETERS
                and same_setting(getattr(preprocessor, _RESOLVED_AS.get(name, name)), new))

    def change(name):
        old, new = recorded[name], getattr(estimator, name)
        if isinstance(old, torch.nn.Module) and isinstance(new, torch.nn.Module):
            # both would read <BrainJEPA>; and a copy of the same values is another module
            return (f"{name}=<{type(new).__name__}> (fitted with another "
                    f"<{type(old).__name__}>: modules are compared by identity, so even a "
                    "copy of the same values is another setting)")
        return f"{name}={_short_repr(new)} (fitted with {_short_repr(old)})"

    return [change(name) for name in names if not unchanged(name)]


def warn_changed_preprocessing(estimator, recorded, names=None):
    """Warn when ``set_params`` changed a setting that ``fit`` froze.

    ``transform`` and ``predict`` preprocess new series with ``preprocessor_``, as in ``fit``,
    with the model that ``fit`` built or loaded: a changed ``t_r``, ``n_frames``, ``window``,
    ``weights``, ... takes effect only at the next ``fit``.

    Parameters
    ----------
    estimator : estimator
        The fitted estimator.
    recorded : dict or None
        Its parameter values at ``fit``.
    names : iterable of str, optional
        The parameters to compare (default: all of ``recorded``).
    """
    changed = changed_settings(estimator, recorded, names)
    if changed:
        warn_user(
            f"{', '.join(changed)}: changed since fit, but {type(estimator).__name__} "
            "preprocesses new series as in fit (preprocessor_) and uses the model fit built "
            f"or loaded; fit again to apply the new setting{_other_tr_hint(estimator, changed)}"
        )


def _other_tr_hint(estimator, changed):
    """How to give a fitted estimator series at another TR than fit's (a ``t_r`` set for
    another site's scans): resample them to the TR its ``preprocessor_`` takes, which a refit
    (a new training, for the pretrainer and the fine-tuners) is not needed for."""
    preprocessor = getattr(estimator, "preprocessor_", None)
    new = getattr(estimator, "t_r", None)
    if (preprocessor is None or not isinstance(new, numbers.Real) or isinstance(new, bool)
            or not any(item.startswith("t_r=") for item in changed)):
        return ""
    # the input TR of fit: its t_r, or the model's when fit took the series as they were
    fitted = preprocessor.t_r if preprocessor.t_r is not None else preprocessor.target_t_r
    if fitted is None:
        return ""
    return (f". To give series acquired at another TR without refitting, resample them to "
            f"the TR fit took its series at, {fitted:g} s, and leave t_r as fitted: "
            f"brainjepa_sk.preprocessing.resample(x, t_r={new:g}, target_t_r={fitted:g})")


def preprocessor_for_subjects(estimator, resolved, subjects, fit_rows=None):
    """Check resolved weights against the subjects of a ``fit``; build their preprocessing.

    The region count (with the atlas advice for the default weights, and for other weights
    the advice to use their atlas or pretrain on this one) and the region names
    the weights were pretrained on must match ``X``; the preprocessing is then built from
    the weights and the estimator's ``t_r``, ``model_t_r``, ``n_frames``, ``window``,
    ``stride``, ``min_frames``, ``normalization`` and ``constant_regions``, and its windows
    must cut into whole time patches, and every subject must be long enough for a window.

    Parameters
    ----------
    estimator : BrainJEPAEmbedder, BrainJEPAClassifier or BrainJEPARegressor
        The estimator being fitted (its ``n_features_in_`` set by the input check).
    resolved : ResolvedWeights
        What :func:`~brainjepa_sk.checkpoint.resolve_weights` returned.
    subjects : SubjectFiles or ConvertedSubjects
        The checked subjects.
    fit_rows : array-like of int, optional
        The subjects whose statistics the preprocessing learns (all when None), e.g. without
        those held out for validation.

    Returns
    -------
    preprocessor : Preprocessor
        Fitted.
    n_patches : int
        Time patches per window.
    """
    from .datasets._atlas import ATLAS_ADVICE  # the datasets package only where used

    name = type(estimator).__name__
    encoder = resolved.encoder
    # other weights: the encoder has one position per region of its pretraining atlas, so
    # the way out is data on that atlas or a model pretrained on this one
    other_atlas = (ATLAS_ADVICE if _is_default_weights(estimator.weights) else (
        "The weights' encoder has one position per region of the atlas it was pretrained on: "
        f"pass series extracted with that atlas ({encoder.n_regions} regions, in its order), "
        "or pretrain a model on this atlas with BrainJEPAPretrainer and pass the file its "
        "save(path) writes as weights"))
    check_n_regions(estimator.n_features_in_, encoder.n_regions, what="built for",
                    n_timepoints=subjects.n_timepoints[0], name=name, advice=other_atlas)
    check_region_names(getattr(estimator, "feature_names_in_", None), resolved.region_names,
                       name=name)
    fitted_on = subjects if fit_rows is None else subject_rows(subjects, fit_rows)
    preprocessor = preprocessor_for_weights(
        resolved, fitted_on, t_r=estimator.t_r, model_t_r=estimator.model_t_r,
        n_frames=estimator.n_frames, window=estimator.window, stride=estimator.stride,
        min_frames=estimator.min_frames, normalization=estimator.normalization,
        constant_regions=estimator.constant_regions,
    )
    # in fit, as the pretrainer does, rather than at the first transform; an n_frames set
    # (not the weights' own) is the user's choice, and shorter windows a cure, as there
    preprocessor.check_lengths(subjects, window_cure=None if estimator.n_frames == "auto" else (
        functools.partial(_shorter_windows, estimator, preprocessor.window, encoder.patch_size,
                          resolved.trained_frames)))
    return preprocessor, check_window_patches(preprocessor.n_frames, encoder.patch_size)


def _shorter_windows(estimator, window, patch_size, trained_frames, n_timepoints):
    """The ``n_frames`` that subjects of ``n_timepoints`` frames fill, as advice for a fit on
    weights (``"n_frames=144 or less ..."``), or None when no window of two time patches (what
    every pooling takes) fits: the encoder takes windows of any whole number of its patches,
    its shorter ones at time positions it was trained on. ``window``: the strategy fitted;
    ``trained_frames``: the longest window the weights trained on (None: unknown), offered
    in place of a longer one."""
    longest = n_timepoints // patch_size * patch_size
    if longest < 2 * patch_size:
        return None
    if trained_frames is not None and longest > trained_frames:
        # frames past those are at time positions the encoder never saw (warned of)
        longest = trained_frames
    # a min_frames or stride of the user's longer than the shorter window is refused with it
    longer = [f"{name}={value}" for name, value in (
        ("min_frames", estimator.min_frames),
        ("stride", estimator.stride if window == "sliding" else None),
    ) if value is not None and value > longest]
    lowered = f"; {' and '.join(longer)} lowered to that n_frames or less" if longer else ""
    return (f"n_frames={longest} or less (a multiple of the model's patch_size={patch_size}, "
            f"two patches or more{lowered})")


class FittedScaleCheck:
    """The warning that the robust statistics ``transform`` or ``predict`` apply unchanged to
    new subjects leave them far above unit scale, decided from the series the call scales.

    The statistics are a checkpoint's (learned at pretraining) or were learned by the
    estimator's ``fit``; either way new series on a larger scale reach the model blown up.
    One warning per call at most, from the first
    :data:`~brainjepa_sk.preprocessing.SAVED_SCALE_CHECK_SUBJECTS` subjects as
    :func:`window_chunks` scales them (:meth:`keep`): no read of its own, but for a call
    that fails before it scaled them all (:meth:`warn_reading`). An estimator pickled before
    it recorded where its statistics came from is told by its fit's settings, or says both.

    A fine-tuner's ``fit`` decides so the warning of a checkpoint's statistics from the
    first training subjects (``rows``) as its training windows scale them
    (:func:`training_windows`).

    Parameters
    ----------
    estimator : estimator
        Fitted, with its ``preprocessor_`` (``normalization="robust"``: see :meth:`of`).
    n_subjects : int
        The subjects of the call.
    rows : sequence of int, optional
        The subjects judged, the first ``SAVED_SCALE_CHECK_SUBJECTS`` of them (indices in
        the call's subjects, in this order); all by default.
    """

    def __init__(self, estimator, n_subjects, rows=None):
        self.origin = _statistics_origin(estimator, estimator.preprocessor_)
        # a fine-tuner's encoder's statistics (recorded at fit, as the origin is)
        self.fine_tuned = getattr(estimator.preprocessor_, "_statistics_fine_tuned", False)
        # of a linear probe's encoder (one that kept its weights frozen)
        self.probed = getattr(estimator.preprocessor_, "_statistics_probed", False)
        rows = range(int(n_subjects)) if rows is None else rows
        # the module's number, read when called (the tests lower it)
        self._wanted = {int(i): position for position, i in
                        enumerate(rows[:preprocessing.SAVED_SCALE_CHECK_SUBJECTS])}
        self.n_wanted = len(self._wanted)
        self._scaled, self._decided = {}, False

    @classmethod
    def of(cls, estimator, subjects):
        """The check of a call of ``estimator`` on ``subjects``; None where its preprocessing
        applies no robust statistics (nothing to warn of).

        Parameters
        ----------
        estimator : estimator
            Fitted, with its ``preprocessor_``.
        subjects : SubjectFiles or ConvertedSubjects
            The checked subjects.

        Returns
        -------
        FittedScaleCheck or None
            A new check, for one call.
        """
        if estimator.preprocessor_.normalization != "robust":
            return None
        return cls(estimator, len(subjects))

    def keep(self, i, scaled):
        """Keep subject ``i``'s scaled series if it is one of the first ones, until decided."""
        if i in self._wanted and not self._decided:
            self._scaled[i] = scaled

    def kept(self):
        """The ``(index, series)`` pairs kept so far."""
        return list(self._scaled.items())

    def warn_when_complete(self):
        """Decide once the first ``n_wanted`` subjects are all kept (once a call)."""
        if len(self._scaled) == self.n_wanted:
            self.warn_from(self.kept())

    def warn_reading(self, subjects, preprocessor):
        """Decide after an error of the call that came before the first subjects were all
        kept, reading and scaling those not kept with ``preprocessor`` (once a call).

        A chunk checks its subjects' lengths before it reads any, and a subject is scaled
        before its windows are checked: the warning came before such errors when the check
        read the first subjects itself. When one of them cannot be read, nothing is warned
        (that error, or the call's, is the one to see).
        """
        if self._decided:
            return
        n_regions = getattr(subjects, "n_regions", None)
        try:
            for i in self._wanted:
                if i not in self._scaled:
                    self._scaled[i] = preprocessor._robust_scaled(subjects, i, n_regions)
        except Exception:  # the call's own error goes on
            self._decided, self._scaled = True, {}
            return
        self.warn_from(self.kept())

    def warn_from(self, kept):
        """Decide from ``kept`` ``(index, series)`` pairs, those of every process under torchrun
        (once a call; not from none)."""
        if self._decided or not kept:
            return
        self.warn_from_scale(*Preprocessor._scale_of(
            [series for _, series in sorted(kept, key=lambda item: self._wanted[item[0]])]))

    def warn_from_scale(self, level, spread):
        """Decide from the ``(level, spread)`` that ``Preprocessor._scale_of`` measured of
        the first subjects as scaled elsewhere (by the fit of ``fit_transform``, which cut
        the windows that its transform embeds; once a call)."""
        if self._decided:
            return
        self._decided, self._scaled = True, {}  # the series are no longer held
        source, fitted_by = self.origin
        Preprocessor._warn_if_scale_off_the_saved_scale(level, spread, source,
                                                        fitted_by=fitted_by,
                                                        fine_tuned=self.fine_tuned,
                                                        probed=self.probed)


class FirstSubjectsScale:
    """The ``(level, spread)`` of the first ``SAVED_SCALE_CHECK_SUBJECTS`` subjects as the
    robust statistics scale them (``Preprocessor._scale_of``), measured as a fit cuts its
    training windows (:meth:`keep` is their ``scaled_to``), so that the transform of
    ``fit_transform``, which embeds those windows, decides its :class:`FittedScaleCheck`
    without reading the subjects. The series are held only until the last is scaled.

    Parameters
    ----------
    n_subjects : int
        The subjects of the fit.
    """

    def __init__(self, n_subjects):
        # the module's number, read when called (the tests lower it)
        self._n_wanted = min(int(n_subjects), preprocessing.SAVED_SCALE_CHECK_SUBJECTS)
        self._scaled = {}
        self.scale = None

    def keep(self, i, scaled):
        """Keep subject ``i``'s scaled series if it is one of the first; measure them once
        all are kept."""
        if self.scale is None and i < self._n_wanted:
            self._scaled[i] = scaled
            if len(self._scaled) == self._n_wanted:
                self.scale = Preprocessor._scale_of(
                    [self._scaled[k] for k in range(self._n_wanted)])
                self._scaled = {}


def _statistics_origin(estimator, preprocessor):
    """Where a fitted ``estimator``'s robust statistics come from, as
    ``_warn_if_scale_off_the_saved_scale`` takes it: ``(source, None)`` for a checkpoint's,
    ``(None, class name)`` for its fit's, and both where it cannot tell.

    Recorded at fit (``_statistics_source``: None where fit learned them); an embedder or
    fine-tuner pickled before it was recorded is told by the settings its fit used: the
    published model carries no statistics, a module those it carries (its ``preprocessing``),
    and a checkpoint file those it holds when ``normalization`` was ``"auto"`` (which takes
    "robust" from the file, with its statistics); an explicit "robust" with a file is either."""
    fitted_by = type(estimator).__name__
    if hasattr(preprocessor, "_statistics_source"):
        source = preprocessor._statistics_source
        return source, None if source else fitted_by
    params = estimator.get_params(deep=False)
    if "weights" not in params:  # the pretrainer learns its statistics in its fit
        return None, fitted_by
    # the settings of the fit (the embedder's record, the fine-tuners'), else the current
    recorded = (getattr(estimator, "_preprocessed_with_", None)
                or getattr(estimator, "_built_with_", None) or {})
    weights = recorded.get("weights", params["weights"])
    normalization = recorded.get("normalization", params["normalization"])
    if isinstance(weights, str) and weights == "ukbiobank":
        return None, fitted_by
    if isinstance(weights, torch.nn.Module):
        saved = getattr(weights, "preprocessing", None) or {}
        carried = (saved.get("normalization") == "robust" and "n_frames" in saved
                   and normalization in ("auto", "robust"))
        return ("the model", None) if carried else (None, fitted_by)
    source = os.fspath(expand_home(weights)) if is_path(weights) else "the model"
    return (source, None) if normalization == "auto" else (source, fitted_by)


def check_pooling(pooling, n_patches=None):
    """Check that ``"roi_std"`` and ``"lagged"`` have at least two time patches to use.

    Parameters
    ----------
    pooling : str
        The pooling mode.
    n_patches : int, optional
        Time patches per window; ``None`` skips the check.

    Raises
    ------
    ValueError
        When ``pooling`` is ``"roi_std"`` or ``"lagged"`` and ``n_patches`` is below 2.
    """
    if n_patches is not None:
        check_pooling_patches(pooling, n_patches)


def _non_finite_cause(encoder, preprocessor, autocast_dtype=None):
    """Why ``encoder`` gave non-finite embeddings, and the cure, for ``transform``'s error.

    Weights holding NaN or infinite values (a module given as ``weights``, or a diverged model)
    are named as such; otherwise the windows overflowed the encoder, computing in float32 or
    under ``autocast_dtype`` (bf16, which has float32's range), and a per-window z-score is
    advised unless ``fit`` already used one (advising it again would not help).
    """
    bad = first_non_finite(encoder.named_parameters())
    if bad is not None:
        return (f"the encoder's weights hold NaN or infinite values (first: {bad}); fit with "
                "finite weights")
    normalization = preprocessor.normalization
    compute = ("float32" if autocast_dtype is None else
               f"{str(autocast_dtype).removeprefix('torch.')} autocast, with float32's range")
    cause = (f"the windows (normalization={normalization!r}) overflow in its attention and "
             f"LayerNorms ({compute})")
    if normalization in ("global_zscore", "roi_zscore"):
        return cause
    return (f"{cause}, as series far from unit scale after preprocessing do long before the "
            "float32 range; rescale the series, or fit with normalization='global_zscore' or "
            "'roi_zscore', which scale each window")


#: The parameters ``transform`` reads when it runs, not frozen by ``fit``.
_READOUT_PARAMETERS = ("pooling", "final_norm", "batch_size", "device", "precision")

#: Constraints of the parameters the embedding estimators share.
EMBEDDING_CONSTRAINTS = {
    "pooling": [StrOptions(set(ESTIMATOR_POOLINGS))],
    "final_norm": ["boolean"],
    "device": DEVICE,
    "precision": PRECISION,
}

#: Constraints of the preprocessing settings of the estimators that load weights.
WEIGHTS_CONSTRAINTS = {
    "weights": [str, os.PathLike, torch.nn.Module],
    "gradients": ["array-like", str, os.PathLike, None],
    "num_heads": [*POSITIVE_INT, None],
    "t_r": [*POSITIVE, None],
    "model_t_r": [StrOptions({"auto"}), *POSITIVE, None],
    "n_frames": [StrOptions({"auto"}), *POSITIVE_INT],
    "window": [StrOptions({"auto", *WINDOW_STRATEGIES})],
    "stride": [*POSITIVE_INT, None],
    "min_frames": [*POSITIVE_INT, None],
    "normalization": [StrOptions({"auto", *(n for n in NORMALIZATIONS if n)}), None],
    "constant_regions": [StrOptions({"error", "zero"})],
    "data_dir": OPTIONAL_PATH,
}


def rows_indexed_like(X, features, estimator):
    """``features`` as a DataFrame indexed like ``X`` when ``X`` is a pandas Series of subjects
    and ``estimator``'s ``transform`` output is pandas, else ``features`` as they are.

    scikit-learn's pandas output keeps the index of such a Series from 1.7.2 on; before, the
    rows were numbered 0, 1, ... and the subjects' labels lost.
    """
    if getattr(X, "ndim", None) != 1 or not hasattr(X, "iloc"):
        return features
    if _get_output_config("transform", estimator)["dense"] != "pandas":
        return features
    import pandas as pd

    return pd.DataFrame(features, index=X.index, columns=estimator.get_feature_names_out())


class NestedParamsMixin:
    """``set_params`` that refuses ``<parameter>__<name>`` for a parameter holding no estimator.

    scikit-learn's ``set_params`` failed with "'str' object has no attribute 'set_params'"
    for ``weights__<name>``, ``pooling__<name>``, ... (see
    :func:`~brainjepa_sk.validation.check_nested_params`). Put before ``BaseEstimator`` in the
    bases; the fine-tuners, whose ``set_params`` is skorch's, call that check themselves.
    """

    def set_params(self, **params):
        """Set the parameters of this estimator.

        ``<parameter>__<name>`` sets a parameter of the estimator given as ``<parameter>``
        (as in a ``Pipeline``); for a parameter that holds no estimator (a string, None, an
        array, a torch module) it raises a ``ValueError`` naming it. ``gradients__<name>``
        needs a :class:`~brainjepa_sk.gradients.GradientPositioner` as ``gradients``, which
        only :class:`~brainjepa_sk.BrainJEPAPretrainer` takes.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : estimator
            The estimator, its parameters set.

        Raises
        ------
        ValueError
            For ``<parameter>__<name>`` where ``<parameter>`` holds no estimator, before any
            parameter is set; for a parameter the estimator does not have (scikit-learn's).
        """
        check_nested_params(self, params)
        return super().set_params(**params)


#: Inside :func:`fit_then_transform`: what the fit recorded with :func:`record_validated`.
_VALIDATED_BY_FIT = contextvars.ContextVar("validated_by_fit", default=None)


@contextlib.contextmanager
def fit_then_transform():
    """A ``fit_transform``'s block, whose ``transform`` takes the subjects its ``fit``
    validated (:func:`record_validated`, :func:`validated_by_fit`) rather than checking
    ``X`` again: every file read, every array converted, once more."""
    token = _VALIDATED_BY_FIT.set({})
    try:
        yield
    finally:
        _VALIDATED_BY_FIT.reset(token)


def record_validated(estimator, X, subjects):
    """Inside :func:`fit_then_transform`, keep what ``estimator``'s fit validated ``X`` into.

    Parameters
    ----------
    estimator : estimator
        The estimator being fitted.
    X : object
        What its ``fit`` was given.
    subjects : SubjectFiles or ConvertedSubjects
        ``X`` validated.
    """
    handoff = _VALIDATED_BY_FIT.get()
    if handoff is not None:
        handoff["fit"] = (estimator, X, subjects)


def cut_for_transform(estimator, preprocessor, subjects):
    """The training windows of ``estimator``'s fit, cut at once, for the transform of its
    ``fit_transform``, recorded for :func:`windows_cut_by_fit`; None (nothing recorded)
    outside :func:`fit_then_transform`, for subjects that are no files (nothing to read
    again), or where they stream (a window read at a time: not all in memory).

    Parameters
    ----------
    estimator : estimator
        The estimator being fitted.
    preprocessor : Preprocessor
        Fitted.
    subjects : SubjectFiles or ConvertedSubjects
        The subjects its fit validated.

    Returns
    -------
    tuple or None
        ``(windows, subject_index)``, as :func:`training_windows` returns them.
    """
    handoff = _VALIDATED_BY_FIT.get()
    if (handoff is None or not isinstance(subjects, SubjectFiles)
            or preprocessor.streams(subjects)):
        return None
    scale = (FirstSubjectsScale(len(subjects)) if preprocessor.normalization == "robust"
             else None)
    windows, subject_index = _cut_training_windows(preprocessor, subjects,
                                                   None if scale is None else scale.keep)
    handoff["windows"] = (estimator, subjects, (windows, subject_index, scale))
    return windows, subject_index


def windows_cut_by_fit(estimator, subjects):
    """The windows that ``estimator``'s fit recorded with :func:`cut_for_transform` for
    ``subjects``, the very object it validated, in the same :func:`fit_then_transform`
    block, as :func:`window_chunks` takes them (``cut``); None otherwise. Given once.

    Parameters
    ----------
    estimator : estimator
        The fitted estimator whose ``transform`` embeds ``subjects``.
    subjects : SubjectFiles or ConvertedSubjects
        The subjects of that call, as validated.

    Returns
    -------
    tuple or None
        ``(windows, subject_index, scale)``.
    """
    handoff = _VALIDATED_BY_FIT.get()
    recorded = None if handoff is None else handoff.pop("windows", None)
    if recorded is not None and recorded[0] is estimator and recorded[1] is subjects:
        return recorded[2]
    return None


def validated_by_fit(estimator, X):
    """``X`` as ``estimator``'s fit validated it just before, in the same
    :func:`fit_then_transform` block, where the call is given the very object the fit was
    given (a subclass's ``transform`` that converts ``X`` checks what it passes on); ``X``
    otherwise. Given once.

    Parameters
    ----------
    estimator : estimator
        The fitted estimator whose ``transform`` checks ``X``.
    X : object
        What that call was given.

    Returns
    -------
    object
        The validated subjects, or ``X``.
    """
    handoff = _VALIDATED_BY_FIT.get()
    recorded = None if handoff is None else handoff.pop("fit", None)
    if recorded is not None and recorded[0] is estimator and recorded[1] is X:
        return recorded[2]
    return X


class SubjectsInputMixin:
    """Tags of estimators whose ``X`` is subjects' series (3-D), not a 2-D feature table."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.requires_fit = True
        return tags


class SubjectsTransformerMixin(SubjectsInputMixin, TransformerMixin):
    """A transformer of subjects' series whose ``fit_transform`` reads ``X`` once.

    scikit-learn's ``fit_transform`` is ``fit(X).transform(X)``: with a generator (or any other
    iterator) as ``X``, ``fit`` would use it up and ``transform`` would find no subjects.
    """

    def fit_transform(self, X, y=None, **fit_params):
        """Fit to ``X``, then transform it (an iterator ``X`` is read into a list first).

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions), list of 2-D arrays or files
            Subjects' ROI time series; any iterable of subjects, a generator included.
        y : array-like of shape (n_subjects,), optional
            Passed to ``fit``.
        **fit_params : dict
            Further parameters of ``fit``.

        Returns
        -------
        X_new : ndarray or list of ndarray
            What ``transform`` returns for ``X``.
        """
        if isinstance(X, Iterator):
            X = list(X)
        return super().fit_transform(X, y, **fit_params)

    def _region_input_features(self, input_features):
        """``input_features`` of ``get_feature_names_out``, or None when it is only the name of
        the pandas Series of subjects ``fit`` was given (``ColumnTransformer`` passes a table's
        column so, and its name as the input feature), which names no region."""
        if (input_features is not None and len(input_features) == 1
                and input_features[0] == getattr(self, "_subjects_column_", None)):
            return None
        return input_features


#: The key under which a pickled estimator records its weights files (see
#: ``weights_file_identities``); read by nothing, left out when the pickle is loaded.
_WEIGHTS_FILES_KEY = "_weights_files_at_pickling"


def weights_file_identities(estimator):
    """The size and modification time of each file an estimator's ``weights`` or
    ``gradients`` names, as recorded in its pickles.

    ``joblib.hash``, which keys the cached fits of ``Pipeline(memory=...)``, pickles the
    estimator: a path would count by its text alone, and a checkpoint saved over it since would
    be served the fit cached with the old file. The published ``"ukbiobank"`` files are pinned
    by their hashes, so that name is left out.

    Parameters
    ----------
    estimator : BaseEstimator
        An estimator with ``weights`` and/or ``gradients`` parameters.

    Returns
    -------
    dict
        ``{parameter: (size in bytes, modification time in ns)}`` for each of them that names
        a file, ``None`` for a path with no file to read (its ``fit`` names it).
    """
    identities = {}
    for name in ("weights", "gradients"):
        value = getattr(estimator, name, None)
        if not is_path(value) or _is_default_weights(value):
            continue
        try:
            identities[name] = file_stamp(value)
        except (OSError, ValueError):  # no such file; a path with a NUL byte
            identities[name] = None
    return identities


def _cloudpickle_or_pickle():
    """The pickler of joblib's processes: cloudpickle (a dependency of joblib >= 1.6, bundled
    with it before), which pickles a module class defined in ``__main__`` or a lambda hook by
    value; ``pickle`` where neither is found, as joblib's own fallback."""
    try:
        import cloudpickle as pickle_module
    except ImportError:
        try:
            from joblib.externals import cloudpickle as pickle_module
        except ImportError:
            import pickle as pickle_module
    return pickle_module


class _SavedModule:
    """A module that pickles as the bytes of ``torch.save`` and loads back as the module.

    A plain pickle of a tensor records the memory address of its storage (PyTorch pickles a
    storage with its legacy ``torch.save``), so a module and its copy, or the same module in
    another process, pickle to other bytes: ``joblib.hash`` of an estimator holding it, the key
    of ``Pipeline(memory=...)``'s cached fits, would differ at every ``clone``. ``torch.save``'s
    own format numbers the storages instead, and gives the same bytes for the same module
    (in another process too, unless its class is defined in ``__main__``: cloudpickle saves
    such a class by value, under an identifier of the process).
    """

    def __init__(self, module):
        self.module = module

    def __reduce__(self):
        buffer = io.BytesIO()
        torch.save(self.module, buffer, pickle_module=_cloudpickle_or_pickle())
        return _module_from_saved_bytes, (buffer.getvalue(),)

    def __deepcopy__(self, memo):
        # copy.deepcopy of the estimator copies the module as deepcopy does (hooks and locally
        # defined classes that pickle refuses, and one copy of a module copied alongside)
        import copy

        return copy.deepcopy(self.module, memo)


def _module_from_saved_bytes(data):
    """The module that ``_SavedModule`` pickled (a pickle runs code anyway: the module's
    classes are loaded as ``pickle`` loads them)."""
    return torch.load(io.BytesIO(data), weights_only=False)


class EmbeddingTransformMixin(SubjectsTransformerMixin):
    """``transform`` / ``get_feature_names_out`` shared by the estimators that embed subjects.

    A ``TransformerMixin`` itself, so that scikit-learn's ``set_output`` wraps this ``transform``.

    The class using it provides ``_fitted_encoder()`` (the frozen encoder, kept on the CPU so that
    pickles load anywhere), ``preprocessor_``, and ``pooling``, ``final_norm``, ``batch_size``,
    ``device`` and ``precision`` with their ``_parameter_constraints`` (``transform`` checks
    them, as they are read when it runs). A copy of the encoder on the compute device is cached
    between calls and left out of pickles. ``_not_fitted_message``, where set, is the message
    of the ``NotFittedError`` of an estimator used before ``fit``.
    """

    _not_fitted_message = None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The model computes in float32 and transform returns float32 whatever the input dtype.
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    #: The parameters whose value at ``fit`` decides what ``transform`` computes, beyond the
    #: live readout settings; ``transform`` warns when ``set_params`` changed one since.
    _FROZEN_AT_FIT = PREPROCESSING_PARAMETERS

    def _set_preprocessor(self, preprocessor):
        """Keep a fit's preprocessing, and the values of ``_FROZEN_AT_FIT`` it was built
        with."""
        self.preprocessor_ = preprocessor
        self._preprocessed_with_ = {name: getattr(self, name) for name in self._FROZEN_AT_FIT}

    def _encoder_on(self, device):
        encoder = self._fitted_encoder()
        if device.type == "cpu":
            # a copy kept on a GPU by an earlier transform is released
            self.__dict__.pop("_device_cache", None)
            return encoder
        cached = getattr(self, "_device_cache", None)
        if cached is None or cached[0] != device or cached[1] is not encoder:
            import copy

            cached = (device, encoder, copy.deepcopy(encoder).to(device).eval())
            self._device_cache = cached
        return cached[2]

    def __getstate__(self):
        # a copy: object.__getstate__ returns the instance's own __dict__ (Python >= 3.11)
        state = dict(super().__getstate__())
        state.pop("_device_cache", None)
        # Pipeline(memory=...) keys a cached fit on joblib.hash of the unfitted estimator, a
        # pickle: with the files' identities in it, a file saved over the path is a new key
        files = weights_file_identities(self)
        if files:
            state[_WEIGHTS_FILES_KEY] = files
        # and a module as weights is pickled as the same bytes for its copies (clone copies it)
        module = state.get("weights")
        if isinstance(module, torch.nn.Module):
            saved = _SavedModule(module)
            state["weights"] = saved
            if "_preprocessed_with_" in state:
                # the same object, so that it loads as one module: transform compares the
                # weights with those of the fit by identity
                state["_preprocessed_with_"] = {
                    name: saved if value is module else value
                    for name, value in state["_preprocessed_with_"].items()}
        return state

    def __setstate__(self, state):
        state = dict(state)
        state.pop(_WEIGHTS_FILES_KEY, None)
        # copy.copy passes __getstate__'s state as it is, unpickled: the module itself
        if isinstance(state.get("weights"), _SavedModule):
            state["weights"] = state["weights"].module
        if isinstance(state.get("_preprocessed_with_"), dict):
            state["_preprocessed_with_"] = {
                name: value.module if isinstance(value, _SavedModule) else value
                for name, value in state["_preprocessed_with_"].items()}
        super().__setstate__(state)

    def _check_output_container(self):
        """Refuse ``pooling="tokens"`` with pandas output, as ``transform`` does before it
        reads a subject (``fit`` takes them: see ``BrainJEPAEmbedder.fit_transform``)."""
        if (self.pooling == "tokens"
                and _get_output_config("transform", self)["dense"] == "pandas"):
            # its error, which says how to keep the list: scikit-learn before 1.9 drops the
            # error of get_feature_names_out and fails on the list with pandas' own message
            self.get_feature_names_out()

    def _fitted_call_input(self, X, method):
        """Check the subjects given to a fitted estimator's ``method`` (``transform``,
        ``score``) as every such call checks them, and resolve where it computes.

        Parameters
        ----------
        X : array-like, list of 2-D arrays or files
            The call's subjects.
        method : str
            The method, for the messages.

        Returns
        -------
        subjects : SubjectFiles or ConvertedSubjects
            The validated subjects (regions and their names checked against ``fit``'s).
        device : torch.device
            This process's compute device.
        autocast_dtype : torch.dtype or None
            The autocast dtype of ``precision`` on that device.
        """
        from .validation import validate_subjects

        # X that this estimator's fit checked just before (fit_transform): the subjects it
        # checked are checked against the fit, without reading or converting them again
        subjects = validate_subjects(validated_by_fit(self, X), estimator=self, reset=False,
                                     lazy=True)
        warn_changed_preprocessing(self, getattr(self, "_preprocessed_with_", None))
        device = process_device(resolve_device(self.device))
        check_same_subjects(subjects, method)
        return subjects, device, resolve_autocast(self.precision, device)

    def transform(self, X):
        """Embed each subject.

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions), list of 2-D arrays or files
            Subjects' ROI time series (nilearn orientation); lengths may differ.
            Files are a glob or a list of paths (see :mod:`brainjepa_sk.files`).

        Returns
        -------
        numpy.ndarray of shape (n_subjects, n_features_out), float32, or list of numpy.ndarray
            One embedding per subject: the target encoder's tokens pooled per window
            (``pooling``), averaged over the subject's windows (the model computes in float32,
            whatever the input's dtype). With ``pooling="tokens"``: one float32
            ``(n_samples, n_regions)`` array per subject, its windows' token features with
            each region's ``n_patches * dim`` values per window as its signal (windows one
            after the other), the orientation nilearn's ``ConnectivityMeasure`` takes.

        Raises
        ------
        ValueError
            When the encoder gives NaN or infinite embeddings, naming the first subject: the
            weights hold such values, or the windows overflow the encoder (series far from unit
            scale, kept so by ``normalization="robust"`` or None).
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, msg=self._not_fitted_message)
        # read live (set_params after fit applies), so checked here as fit checks them: int()
        # and bool() took batch_size=2.5 or final_norm="no"; batch_size=0 failed in range()
        check_parameters(self, _READOUT_PARAMETERS)
        self._check_output_container()
        subjects, device, autocast_dtype = self._fitted_call_input(X, "transform")
        encoder = self._encoder_on(device)
        # pooling may have been changed by set_params since fit
        check_pooling(self.pooling, self.preprocessor_.n_frames // encoder.patch_size)
        # Under torchrun every process embeds its share of the chunks, and all get the result.
        rank, n_processes = world()
        chunk_size = min(SUBJECTS_PER_CHUNK, -(-len(subjects) // n_processes))
        out = []
        for start, n_chunk, windows, subject_index in window_chunks(
                subjects, self.preprocessor_, chunk_size, shard=(rank, n_processes),
                scale_check=FittedScaleCheck.of(self, subjects),
                cut=windows_cut_by_fit(self, subjects)):
            embeddings = embed_windows(
                encoder,
                windows,
                batch_size=int(self.batch_size),
                device=device,
                autocast_dtype=autocast_dtype,
                pooling=self.pooling,
                final_norm=bool(self.final_norm),
            )
            if self.pooling == "tokens":
                out.append((start, [np.concatenate(list(embeddings[subject_index == i]))
                                    for i in range(n_chunk)]))
            else:
                out.append((start, average_by_subject(embeddings, subject_index, n_chunk)))
        chunks = [chunk for _, chunk in sorted(all_gather_objects(out), key=lambda c: c[0])]
        if self.pooling == "tokens":
            result = [series for chunk in chunks for series in chunk]
            finite = [bool(np.isfinite(series).all()) for series in result]
        else:
            result = np.concatenate(chunks)
            finite = np.isfinite(result).all(axis=1)
        # checked after the gather, so that every process of a torchrun group raises alike
        bad = np.flatnonzero(~np.asarray(finite, dtype=bool))
        if bad.size:
            raise ValueError(
                f"the encoder gave non-finite embeddings for {bad.size} subject(s) (first: "
                f"subject {bad[0]}): "
                f"{_non_finite_cause(encoder, self.preprocessor_, autocast_dtype)}"
            )
        return rows_indexed_like(X, result, self)

    def get_feature_names_out(self, input_features=None):
        """Names of the embedding dimensions.

        Parameters
        ----------
        input_features : array-like of str, optional
            Region names to use in the feature names (not used by ``pooling="mean"``). They
            must have ``n_features_in_`` entries and equal the region names known to ``fit``
            when there were any (``feature_names_in_``, else ``region_names_``). The name of
            the pandas Series of subjects given to ``fit`` alone (what ``ColumnTransformer``
            passes for a table's column of series) names no region and is not used.

        Returns
        -------
        numpy.ndarray of str
            ``embedding{k}`` with ``pooling="mean"``; ``{region}_embedding{k}`` with
            ``pooling="roi"``, ``{region}_embedding{k}_std`` with ``pooling="roi_std"`` and
            ``{region_a}_{region_b}_connectivity`` with ``pooling="connectivity"``,
            ``{region_a}_{region_b}_lag1`` with ``pooling="lagged"``. The region names are
            ``feature_names_in_`` (DataFrame columns or file headers) when fitted on them, else
            ``region_names_`` (those the weights were pretrained on, when recorded), else
            ``region{r}``.

        Raises
        ------
        ValueError
            With ``pooling="tokens"`` (its output is not a table), or ``input_features`` that
            do not match the regions seen in ``fit``.
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, msg=self._not_fitted_message)
        check_parameters(self, ("pooling",))  # another value fell through to "roi"'s names
        dim = self._fitted_encoder().embed_dim
        if self.pooling == "tokens":
            series = ('pooling="tokens" gives one (n_samples, n_regions) series per subject, '
                      "not a table with named features")
            if _get_output_config("transform", self)["dense"] != "pandas":
                raise ValueError(f"{series}: it has no feature names")
            raise ValueError(
                f"{series}: under set_output(transform='pandas') or scikit-learn's "
                "transform_output='pandas', give this estimator set_output(transform='default')"
                " (its list of series cannot be a DataFrame)")
        # X's column names, else those the weights were pretrained on (a checkpoint's record,
        # a module's region_names, the index of a gradient DataFrame): X without names is read
        # in that order
        regions = getattr(self, "feature_names_in_", None)
        if regions is None:
            regions = getattr(self, "region_names_", None)
        input_features = self._region_input_features(input_features)
        if input_features is not None:  # checked whatever the pooling, as documented
            if len(input_features) != self.n_features_in_:
                raise ValueError(
                    f"input_features do not match the regions seen in fit: "
                    f"{len(input_features)} names for {self.n_features_in_} regions")
            if regions is not None and list(input_features) != list(regions):
                n_differences, examples = name_differences(
                    list(input_features), list(regions),
                    "input_features[{i}] is {own!r} but the region was {other!r}")
                raise ValueError(f"input_features do not match the regions seen in fit: "
                                 f"{examples} ({n_differences} in all)")
            regions = input_features
        if self.pooling == "mean":
            return np.asarray([f"embedding{k}" for k in range(dim)], dtype=object)
        if regions is None:
            regions = [f"region{r}" for r in range(self.n_features_in_)]
        if self.pooling == "lagged":
            return np.asarray([f"{a}_{b}_lag1" for a in regions for b in regions], dtype=object)
        if self.pooling == "connectivity":
            return np.asarray(
                [f"{a}_{b}_connectivity" for i, a in enumerate(regions) for b in regions[i + 1 :]],
                dtype=object,
            )
        suffix = "_std" if self.pooling == "roi_std" else ""
        return np.asarray(
            [f"{r}_embedding{k}{suffix}" for r in regions for k in range(dim)], dtype=object
        )

"""The one place that checks input: subjects' ROI time series in nilearn orientation.

``X`` is a 3-D array ``(n_subjects, n_timepoints, n_regions)`` or a list of 2-D
``(n_timepoints, n_regions)`` arrays or pandas DataFrames (columns = regions), whose lengths may
differ. Every estimator of the package validates its input here, so every bad input gets the same
clear error.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import hashlib
import math
import numbers
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import sparse
from sklearn import get_config
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import _get_feature_names

from ._warnings import check_array, warn_user
from .files import (
    _TABLE_KINDS,
    SubjectFiles,
    _file_type,
    _first_few,
    _is_bids_table,
    _is_number,
    check_index_column,
    expand_subject_paths,
    file_stamp,
    first_text_cell,
    is_path,
    read_subject_file,
    series_digest,
)
from .nn._checks import type_with_article, with_article
from .train.runtime import expand_home

__all__ = [
    "validate_subjects",
    "check_n_regions",
    "feature_names_of",
    "check_region_names",
    "subjects_digest",
    "subject_rows",
    "validate_connectivity",
    "warn_names_seen_once",
    "ConvertedSubjects",
]

_LAYOUT = (
    "X must be a 3-D array (n_subjects, n_timepoints, n_regions), a list of 2-D "
    "(n_timepoints, n_regions) arrays, DataFrames or files, or a glob of files"
)


# -- parameters ----------------------------------------------------------------------------------
# Each estimator (and the Preprocessor) declares its parameters' constraints once, in
# scikit-learn's style (``_parameter_constraints``), and checks them with
# :func:`check_parameters` before any work. What depends on the data or on other parameters
# (e.g. enough regions for the gradients, a stride within a window) is checked after it.

class Range(Interval):
    """scikit-learn's ``Interval`` constraint, without booleans (``True`` is no count or rate).

    Parameters
    ----------
    type : {numbers.Integral, numbers.Real, RealNotInt}
        The set of numbers the interval is taken in.
    left, right : float, int or None
        The bounds; None means unbounded on that side.
    closed : {"left", "right", "both", "neither"}
        Which bounds belong to the interval.
    """

    def is_satisfied_by(self, val):
        """Whether ``val`` is in the interval and is not a boolean.

        Parameters
        ----------
        val : object
            The value to check.

        Returns
        -------
        bool
            ``False`` for ``bool`` and ``numpy.bool_``, else ``Interval``'s answer (for a
            real number of another type, such as a ``Fraction``, on its float value).
        """
        if isinstance(val, (bool, np.bool_)):
            return False
        if isinstance(val, numbers.Real) and not isinstance(
                val, (numbers.Integral, float, np.floating)):
            val = float(val)  # e.g. a Fraction, on which scikit-learn's check calls np.isnan
        return super().is_satisfied_by(val)


#: Constraints shared by several estimators (finite: an unbounded right side open, as here,
#: refuses inf in scikit-learn's ``Interval``).
POSITIVE_INT = [Range(numbers.Integral, 1, None, closed="left")]
NON_NEGATIVE = [Range(numbers.Real, 0, None, closed="left")]
POSITIVE = [Range(numbers.Real, 0, None, closed="neither")]
#: ``torch.compile`` on or off, or ``"auto"``: on CUDA only (see ``resolve_compile``)
COMPILE = [StrOptions({"auto"}), "boolean"]


def _check_weights_type(estimator):
    """Refuse ``weights`` of a type that is no weights, saying how to get weights from it.

    scikit-learn's message prints the object given, which for a loaded checkpoint or a state
    dict is the whole module or every tensor, and does not say how to get from the one to the
    other.
    """
    from torch.nn import Module

    from .checkpoint import LoadedCheckpoint  # (checkpoint and pretrain import this module)
    from .pretrain import BrainJEPAPretrainer

    weights = estimator.weights
    if isinstance(weights, (str, os.PathLike, Module)):
        return
    if isinstance(weights, type) and issubclass(weights, (BrainJEPAPretrainer, Module)):
        # the class for an instance, a new user's slip
        what = f"the {weights.__name__} class"
        hint = ("fit a pretrainer first, pretrainer = BrainJEPAPretrainer(...).fit(X), and pass "
                "weights=pretrainer.model_ (or the file that pretrainer.save(path) wrote)"
                if issubclass(weights, BrainJEPAPretrainer) else
                "pass a model, not its class (a trained one: a pretrainer's model_, or a "
                "checkpoint's path)")
        raise InvalidParameterError(
            f"The 'weights' parameter of {type(estimator).__name__} must be 'ukbiobank', a "
            f"checkpoint path or a torch module. Got {what} instead: {hint}")
    if isinstance(weights, BrainJEPAPretrainer):
        hint = ("pass a fitted pretrainer's model, weights=pretrainer.model_ (it carries the "
                "preprocessing and region names), or the file that pretrainer.save(path) wrote")
    elif isinstance(weights, LoadedCheckpoint):
        hint = ("pass its model, weights=checkpoint.model (it carries the preprocessing and "
                "region names), or the path given to load_checkpoint")
    elif hasattr(weights, "shape") and hasattr(weights, "dtype"):
        # scikit-learn's message prints every value (a 450-region gradient matrix, say)
        hint = (f"an array of shape {tuple(weights.shape)} is no model; if it is the region "
                "gradients, pass it as gradients= (with a research checkpoint's path as "
                "weights=)")
    elif isinstance(weights, Mapping):
        hint = ("a state dict or a loaded file does not say the model's architecture and "
                "gradients: pass the module it was taken from, or the file written by "
                "BrainJEPAPretrainer.save or brainjepa_sk.checkpoint.save_checkpoint (a "
                "research checkpoint: its path, with gradients=)")
    else:
        return  # scikit-learn's message, which names what is allowed
    raise InvalidParameterError(
        f"The 'weights' parameter of {type(estimator).__name__} must be 'ukbiobank', a "
        f"checkpoint path or a torch module. Got {type_with_article(weights)} instead: {hint}")


def _check_gradients_type(estimator):
    """Refuse an estimator as the ``gradients`` of the estimators that take weights, saying
    which gradients they need: scikit-learn's message only listed the types allowed, while the
    pretrainer takes a GradientPositioner there."""
    gradients = estimator.gradients
    if not (hasattr(gradients, "fit") and hasattr(gradients, "get_params")):
        return
    raise InvalidParameterError(
        f"The 'gradients' parameter of {type(estimator).__name__} must be an array-like, a "
        f"path or None. Got {type_with_article(gradients)} instead: with a research "
        "checkpoint as weights, gradients= is the matrix it was trained with "
        "(gradient_mapping_450.csv for the published weights), not gradients computed anew; "
        "pass that matrix or its file (a GradientPositioner is BrainJEPAPretrainer's "
        "gradients=)")


def check_nested_params(estimator, params, routed=()):
    """Refuse ``<parameter>__<name>`` settings of a parameter that holds no estimator.

    scikit-learn's ``set_params`` passes ``<parameter>__<name>=value`` on to the
    ``set_params`` of the object given as ``<parameter>``, and failed with "'str' object has
    no attribute 'set_params'" where that is a string, None, an array or a torch module
    (``weights__<name>``, ``pooling__<name>``); skorch kept such a setting for ``fit`` to
    refuse as an unexpected argument. The object is the one given as ``<parameter>`` in the
    same call, if any (scikit-learn sets it first), else the estimator's.

    ``gradients__<parameter>`` keeps its own message: a
    :class:`~brainjepa_sk.gradients.GradientPositioner` given as ``gradients`` takes them, for
    the estimators whose ``_parameter_constraints`` allow an estimator there (the
    pretrainer's); the others' ``gradients`` is a gradient matrix or its file, which has no
    parameters, whatever is given.

    Parameters
    ----------
    estimator : estimator
        The estimator whose ``set_params`` is called.
    params : dict
        The parameters given to ``set_params``.
    routed : collection of str, default=()
        The prefixes that ``estimator`` routes itself, left alone (skorch's ``optimizer``,
        ``callbacks``, ``iterator_train``, ... for the fine-tuners).

    Raises
    ------
    ValueError
        For the first such setting in alphabetical order, naming it, the type of the value it
        would set a parameter of and what to set instead (before any parameter is set). A
        prefix that names no parameter and is not ``routed`` is refused as scikit-learn's
        ``set_params`` refuses it ("Invalid parameter ..."), naming the parameters there are
        (skorch's ``set_params`` had kept such a setting for ``fit`` to refuse).
    """
    plain = sorted(key for key in params if "__" not in key)
    nested = sorted(key for key in params
                    if "__" in key and key.partition("__")[0] not in routed)
    if not nested and not plain:
        return
    current = estimator.get_params(deep=False)
    for key in plain:
        if key not in current:
            # scikit-learn's message showed the estimator's repr, a torch module's whole
            # printout among its parameters
            _refuse_unknown_prefix(estimator, key, current, routed)
    for key in nested:
        prefix, _, name = key.partition("__")
        if prefix not in current:
            _refuse_unknown_prefix(estimator, key, current, routed)
        value = params.get(prefix, current[prefix])
        if prefix == "gradients":
            _check_gradients_setting(estimator, key, value)
        elif not hasattr(value, "set_params") or isinstance(value, type):
            if isinstance(value, type) and hasattr(value, "set_params"):
                # scikit-learn would call the class's set_params, unbound
                todo = (f"not an instance of it: give one, {prefix}={value.__name__}(), in "
                        "the same call or before")
            else:
                todo = (f"which has no parameters: set {prefix} itself "
                        f"(set_params({prefix}=...), or a grid over {prefix}); only a "
                        f"parameter that holds an estimator takes {prefix}__<parameter>")
            raise ValueError(
                f"{key} sets the parameter {name!r} of the estimator given as {prefix}, but "
                f"the {prefix} of {type(estimator).__name__} is {_described(value)}, {todo}")


def _refuse_unknown_prefix(estimator, key, current, routed):
    """Refuse ``key``, a parameter that ``estimator`` has not, or ``<prefix>__<name>`` of a
    prefix that is neither a parameter of ``estimator`` (``current``, its
    ``get_params(deep=False)``) nor ``routed``, in scikit-learn's words, naming a close
    parameter or prefix."""
    prefix, separator, name = key.partition("__")
    valid = sorted(name for name in current if "__" not in name)
    prefixes = sorted(routed)
    if separator:
        close = difflib.get_close_matches(prefix, [*valid, *prefixes], n=1, cutoff=0.6)
        given = f" (given as {key}{f'; did you mean {close[0]}__{name}?' if close else ''})"
    else:  # a parameter itself
        close = difflib.get_close_matches(prefix, valid, n=1, cutoff=0.6)
        given = f" (did you mean {close[0]}?)" if close else ""
    raise ValueError(
        f"Invalid parameter {prefix!r} for estimator {type(estimator).__name__}{given}. Valid "
        f"parameters are: {valid!r}" + (f", and settings prefixed "
                                        f"{', '.join(p + '__' for p in prefixes)}"
                                        if prefixes else "") + ".")


def _described(value):
    """``value`` in a message: its type, and itself where it is short (never a whole array)."""
    if value is None:
        return "None"
    if isinstance(value, type):
        return f"the class {value.__name__}"
    shown = repr(value) if isinstance(value, (str, numbers.Number, os.PathLike)) else ""
    if shown and len(shown) <= 60:
        return f"{type_with_article(value)} ({shown})"
    return type_with_article(value)


def _check_gradients_setting(estimator, key, gradients):
    """Refuse ``gradients__<parameter>`` (``key``) where nothing takes it, ``gradients`` being
    the value it would set a parameter of (see :func:`check_nested_params`)."""
    name = type(estimator).__name__
    takes_positioner = any(isinstance(constraint, HasMethods) for constraint in
                           estimator._parameter_constraints.get("gradients", ()))
    if not takes_positioner:
        raise ValueError(
            f"{key} sets a parameter of an estimator given as gradients, but the "
            f"gradients of {name} are the gradient matrix its weights were trained with (an "
            "array, its file or None), which has no parameters: set gradients itself (a "
            "GradientPositioner, whose parameters gradients__<parameter> sets, is "
            "BrainJEPAPretrainer's gradients=)")
    if not hasattr(gradients, "set_params") or isinstance(gradients, type):
        if gradients is None:
            what = "None (a GradientPositioner() made at fit)"
        elif isinstance(gradients, type):
            what = f"the class {gradients.__name__}, not a GradientPositioner instance"
        else:
            what = f"of type {type(gradients).__name__}, not a GradientPositioner"
        raise ValueError(
            f"{key} sets a parameter of the GradientPositioner given as gradients, "
            f"but gradients is {what}: set gradients=GradientPositioner() first (or in the "
            "same call), or vary gradients itself, e.g. a grid of "
            "[GradientPositioner(n_components=k) for k in (2, 3)]")


def check_parameters(estimator, names=None):
    """Check ``estimator``'s parameters against its ``_parameter_constraints``.

    Parameters
    ----------
    estimator : object
        An estimator (or the :class:`~brainjepa_sk.preprocessing.Preprocessor`) whose
        ``_parameter_constraints`` name its parameters.
    names : iterable of str, optional
        Check only these parameters (default: all of them).

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        A ``ValueError`` (and ``TypeError``) naming the parameter, the estimator, what is
        allowed and what was given.
    """
    constraints = estimator._parameter_constraints
    if names is not None:
        constraints = {name: constraints[name] for name in names}
    if "weights" in constraints:
        _check_weights_type(estimator)
        if "gradients" in constraints:
            _check_gradients_type(estimator)
    t_r = getattr(estimator, "t_r", None)
    several = (t_r.ndim > 0 and t_r.size > 1 if isinstance(t_r, np.ndarray)
               else (isinstance(t_r, (list, tuple)) or hasattr(t_r, "iloc")) and len(t_r) > 1)
    if "t_r" in constraints and several:
        # one TR per subject: scikit-learn's message would only say that it is no float
        raise InvalidParameterError(
            f"The 't_r' parameter of {type(estimator).__name__} must be a float in the range "
            f"(0.0, inf) or None. Got a sequence of {len(t_r)} instead: t_r is the "
            "one TR of every subject; resample subjects acquired at other TRs first, each with "
            "brainjepa_sk.preprocessing.resample(x, t_r=its_tr, target_t_r=common_tr), and "
            "pass t_r=common_tr")
    for name, constraint in constraints.items():  # one at a time, to know which failed
        value = getattr(estimator, name)
        try:
            validate_parameter_constraints(
                {name: constraint}, {name: value}, caller_name=type(estimator).__name__)
        except InvalidParameterError as error:
            close = _closest_option(value, constraint)
            if close is None:
                raise
            raise InvalidParameterError(f"{error} (did you mean {close!r}?)") from None


#: ``precision`` options by torch's names of the dtypes (``"float32"``: ``"fp32"``).
_DTYPE_ALIASES = {"float32": "fp32", "float": "fp32", "bfloat16": "bf16"}


def _closest_option(value, constraint):
    """The string option of ``constraint`` a string ``value`` resembles (``"Mean"``:
    ``"mean"``; a torch dtype by its name, ``torch.float32``: ``"fp32"``), or None."""
    if type(value).__module__ == "torch" and type(value).__name__ == "dtype":
        value = str(value)  # "torch.float32"
    if not isinstance(value, str):
        return None
    options = sorted({option for c in constraint if isinstance(c, StrOptions)
                      for option in c.options if isinstance(option, str)})
    by_case = [option for option in options if option.lower() == value.strip().lower()]
    if by_case:
        return by_case[0]
    # torch's names of the precisions, too far from their short forms for difflib
    alias = _DTYPE_ALIASES.get(value.strip().lower().removeprefix("torch."))
    if alias in options:
        return alias
    close = difflib.get_close_matches(value.lower(), options, n=1, cutoff=0.6)
    return close[0] if close else None


def feature_names_of(subject, index=None):
    """String column names of a DataFrame as an object array; ``None`` for anything else.

    Parameters
    ----------
    subject : object
        A subject's series, e.g. a DataFrame or an array.
    index : int, optional
        The subject's position in ``X``, named in the error.

    Returns
    -------
    numpy.ndarray of str or None
        The column names (dtype object), or ``None`` when ``subject`` has no ``columns``, has
        none, or none of them is a string.

    Raises
    ------
    TypeError
        Column names of mixed types (some strings), as scikit-learn's estimators raise.
    ValueError
        A column name that appears more than once (two regions of one name).
    """
    if getattr(subject, "columns", None) is None:
        return None
    counts = Counter(subject.columns)
    repeated = [(name, count) for name, count in counts.items() if count > 1]
    if repeated:
        name, count = repeated[0]
        where = "" if index is None else f"subject {index}: "
        raise ValueError(
            f"{where}the column {name!r} appears {count} times: every region needs a name of "
            f"its own ({len(repeated)} repeated name(s) in all)")
    try:
        return _get_feature_names(subject)  # scikit-learn's rule for feature names
    except TypeError as error:
        if index is None:
            raise
        raise TypeError(f"subject {index}: {error}") from None


_IMAGE_ADVICE = ("an image holds voxels, not region time series: extract them first, e.g. "
                 "nilearn.maskers.NiftiLabelsMasker(labels_img).fit_transform(img)")


def _is_image(obj):
    """Whether ``obj`` is a loaded NIfTI image (nibabel, ``nilearn.image.load_img``)."""
    return hasattr(obj, "affine") and hasattr(obj, "get_fdata")


def _only_array_protocol(obj):
    """Whether ``obj`` converts to an array but is not array-like itself (no ``ndim``)."""
    return hasattr(obj, "__array__") and not hasattr(obj, "ndim")


def _as_subject_list(X, estimator=None):
    """The subjects of ``X`` as a list, files read, and the path each came from (or None);
    ``estimator``, the one checking ``X``, for the message about one table."""
    if X is None:
        raise ValueError(f"{_LAYOUT}; got None")
    if isinstance(X, bytes):
        raise ValueError(f"{_LAYOUT}; got bytes")
    if is_path(X):  # a glob or a path: one file per subject
        paths = expand_subject_paths(X)
        return [read_subject_file(path) for path in paths], paths
    if sparse.issparse(X):
        raise ValueError(
            f"sparse input is not supported: {_LAYOUT} of dense values; got a sparse "
            f"{type(X).__name__} of shape {X.shape}"
        )
    if isinstance(X, Mapping):  # list(X) would give its keys, read as file names
        raise ValueError(
            f"{_LAYOUT}; got {type_with_article(X)}, whose keys would be taken for the subjects. "
            "Pass list(X.values()), or pandas.Series(X) to keep the keys as the subjects' labels"
        )
    if _is_image(X):  # its ndim and shape would be taken for an array's, "reshape" advised
        raise ValueError(
            f"{_LAYOUT}; got {type_with_article(X)} of shape {tuple(X.shape)}: {_IMAGE_ADVICE}, "
            "one array per subject: X = [masker.fit_transform(img) for img in images]"
        )
    if _is_torch_dataset(X):  # skorch's way to pass data: its items read as parts of a subject
        raise ValueError(
            f"{_LAYOUT}; got {type_with_article(X)}, a torch Dataset as skorch's nets take: these "
            "estimators take the subjects' series (and their targets as y), which they "
            "preprocess and cut into windows themselves. Pass the series, e.g. "
            "[dataset[i][0] for i in range(len(dataset))], and the targets as y"
        )
    if _only_array_protocol(X):
        X = np.asarray(X)
    if hasattr(X, "columns") or (hasattr(X, "ndim") and getattr(X, "ndim", 0) == 2):
        raise ValueError(one_table_message(X, estimator=estimator))
    if getattr(X, "ndim", None) == 1 and getattr(getattr(X, "dtype", None), "kind", None) == "O":
        X = list(X)  # subjects of different lengths, as np.load(..., allow_pickle=True) gives
    elif hasattr(X, "ndim") and X.ndim != 3:
        raise ValueError(
            f"{_LAYOUT}; got {with_article(f'{X.ndim}-D')} array of shape {X.shape}. "
            "Reshape your data to (n_subjects, n_timepoints, n_regions)"
        )
    try:
        subjects = list(X)
    except TypeError:
        raise ValueError(f"{_LAYOUT}; got {type(X).__name__}") from None
    if not subjects:
        raise ValueError("X is empty: expected at least one subject")
    sources = [x if is_path(x) else None for x in subjects]
    if any(sources):
        # before any file is read: a list that is not all paths would be read whole, eagerly
        blank = next((i for i, x in enumerate(subjects)
                      if sources[i] is None and _is_scalar(x)), None)
        if blank is not None:
            raise ValueError(
                f"X lists subject files, but subject {blank} is {subjects[blank]!r}, not a "
                "path (a subject without a file in a table of paths?): drop the subjects "
                "without a file, e.g. with pandas' dropna, and pass the paths of the others")
    return [read_subject_file(x) if is_path(x) else _host_tensor(x) for x in subjects], sources


def _is_scalar(x):
    """Whether ``x`` has no dimension (a ragged table has some: ``check_subject`` names it)."""
    try:
        return np.ndim(x) == 0
    except ValueError:  # NumPy's "inhomogeneous shape"
        return False


def _is_torch_dataset(X):
    """Whether ``X`` is a ``torch.utils.data.Dataset`` (skorch's ``Dataset`` included)."""
    from torch.utils.data import Dataset  # torch is loaded already by the estimators

    return isinstance(X, Dataset)


def _host_tensor(subject):
    """A torch tensor as data NumPy can read: detached from autograd (NumPy refuses a tensor
    that requires grad, with torch's RuntimeError) and on the CPU; anything else unchanged."""
    if not (hasattr(subject, "detach") and hasattr(subject, "requires_grad")
            and hasattr(subject, "device")):
        return subject
    subject = subject.detach()
    if subject.device.type == "cpu":
        return subject
    try:
        return subject.cpu()
    except (RuntimeError, NotImplementedError):  # e.g. a meta tensor: no data to copy
        return subject  # the check that follows refuses it as not numeric


def not_finite_message(subject):
    """The error for a subject holding NaN or infinite values that got past the input checks.

    Those checks, which say where the values are, are skipped under scikit-learn's
    ``assume_finite=True``; the preprocessing and the connectivity then meet the values.

    Parameters
    ----------
    subject : int
        The subject's index in ``X``.

    Returns
    -------
    str
        The message, naming the subject and ``assume_finite``.
    """
    return (f"subject {subject} holds NaN or infinite values (scikit-learn's "
            "assume_finite=True skips the check of the input that says where): remove or "
            "interpolate them")


def _where_not_finite(subject, names, first_frame=None):
    """Where a subject's first NaN or infinite value is, for an error message ("" if none);
    ``first_frame``: the subject is the frames of one window from there."""
    try:
        if hasattr(subject, "to_numpy"):  # pandas: its missing values (pd.NA) count as NaN
            values = subject.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = np.asarray(subject)
        if values.dtype.kind not in "fiub":
            values = values.astype(np.float64)  # e.g. numbers as objects
        bad = ~np.isfinite(values)
    except (ValueError, TypeError):
        return ""  # not (real) numbers: another message says so
    if bad.ndim != 2 or not bad.any():
        return ""
    regions = np.flatnonzero(bad.any(axis=0))
    first = int(regions[0])
    region = f"region {names[first]!r} (column {first})" if names is not None else (
        f"region {first} (column {first})")
    timepoint = int(np.flatnonzero(bad[:, first])[0]) + (first_frame or 0)
    where = ("in all" if first_frame is None
             else f"in frames {first_frame} to {first_frame + len(bad) - 1}")
    padding = ""
    rows = bad.all(axis=1)
    start = int(np.argmin(rows[::-1])) if not rows.all() else 0
    if first_frame is None and start >= 2 and not bad[:-start].any():
        # only whole frames at the end: the padding of a scan stacked with longer ones
        padding = (f". Timepoints {len(bad) - start} to {len(bad) - 1}, and only they, are NaN "
                   "in every region: a shorter scan padded to a common length? Scans may differ "
                   "in length: pass X as a list of arrays, each cut to its own length (here "
                   f"x[:{len(bad) - start}])")
    empty = ""
    missing = np.flatnonzero(np.isnan(values).all(axis=0)) if len(bad) >= 2 else []
    if first_frame is None and not padding and 0 < len(missing) < bad.shape[1]:
        # a whole column of NaN, beside regions with values: nothing was extracted there
        listed = [names[j] if names is not None else int(j) for j in missing[:5]]
        empty = (f". Region(s) {', '.join(map(repr, listed))}"
                 f"{f' ({len(missing)} in all)' if len(missing) > 5 else ''} are NaN at every "
                 "timepoint: no signal was extracted there (outside this scan's brain mask or "
                 "field of view?; XCP-D writes 'n/a' for such parcels). Leave the subject out, "
                 "or fill them with 0 (DataFrame.fillna(0), numpy.nan_to_num) and pass "
                 "constant_regions='zero' to BrainJEPAEmbedder or a fine-tuner, which take a "
                 "region without signal as 0")
    return (f" First at {region}, timepoint {timepoint}; {regions.size} region(s) and "
            f"{int(bad.sum())} value(s) {where}{padding}{empty}")


def ragged_message(i, subject):
    """Why subject ``i``, a sequence whose parts differ in shape, is not one table.

    Parameters
    ----------
    i : int
        The subject's position, for the message.
    subject : sequence
        Nested sequences that NumPy could not make into one array.

    Returns
    -------
    str
        The message, naming the first part whose shape differs from the first part's.
    """
    try:
        shapes = [np.shape(part) for part in subject]
    except ValueError:  # ragged deeper down
        shapes = []
    odd = next((k for k, shape in enumerate(shapes) if shape != shapes[0]), None)
    if odd is None:
        return (f"subject {i} holds nested sequences of different lengths, but each subject "
                "is one 2-D (n_timepoints, n_regions) table")
    if all(len(shape) <= 1 for shape in shapes):  # rows of a table, one of another length
        return (f"subject {i} is a table whose rows differ in length: row {odd} has "
                f"{shapes[odd][0] if shapes[odd] else 1} value(s) but row 0 has "
                f"{shapes[0][0] if shapes[0] else 1}; each subject is one 2-D "
                "(n_timepoints, n_regions) table")
    return (f"subject {i} is a sequence of parts of different shapes (part 0 {shapes[0]}, "
            f"part {odd} {shapes[odd]}), but each subject is one 2-D (n_timepoints, n_regions) "
            "table. To use a subject's runs together, concatenate them along time "
            "(numpy.concatenate(runs)); or give each run as its own subject")


def check_signal_values(i, subject):
    """Refuse values that are not a signal: booleans, text (numbers as strings included),
    numpy masked arrays with masked values and complex numbers, which would otherwise convert
    to float silently (the mask or the imaginary part lost).

    Parameters
    ----------
    i : int
        The subject's position, for the message.
    subject : array-like
        One subject's table: an array, a DataFrame, nested lists, a tensor, ...

    Raises
    ------
    TypeError
        Naming the subject and what its values are.
    ValueError
        For complex numbers (scikit-learn's error for them).
    """
    kinds = _value_kinds(subject)
    problem = _not_signal_values(subject, kinds)
    if problem:
        raise TypeError(f"subject {i} {problem}")
    if "c" in kinds:  # a ValueError, as scikit-learn raises it (without the whole table)
        raise ValueError(f"subject {i}: Complex data not supported; pass the real part or the "
                         "magnitude (x.real or np.abs(x))")


def _not_signal_values(subject, kinds):
    """Why a subject's values are not a signal ("" when they may be one)."""
    mask = np.ma.getmask(subject) if isinstance(subject, np.ma.MaskedArray) else np.ma.nomask
    if mask is not np.ma.nomask and mask.any():
        return (f"is a masked array with {int(mask.sum())} masked value(s), which the model "
                "would read as signal: fill or interpolate them, or drop those timepoints, and "
                "pass a plain array")
    if "b" in kinds:
        return "holds booleans, not signal values"
    if kinds & {"M", "m"}:  # NumPy's "could not be promoted" named neither column nor cure
        return "holds dates or times, not signal values" + _where_dates(subject)
    if kinds & {"U", "S"} or ("O" in kinds and any(
            isinstance(value, (str, bytes)) for value in np.asarray(subject, dtype=object).flat)):
        return ("holds text, not numbers (convert numbers read as text with astype(float))"
                + _where_text(subject))
    return ""


def _where_dates(subject):
    """Where a subject's first column of dates or durations is, for the message refusing it
    (a DataFrame's by its name: often a time column appended to the regions)."""
    dtypes = getattr(subject, "dtypes", None)
    if dtypes is None or not hasattr(subject, "columns"):
        return ""
    column = next(k for k, dtype in enumerate(dtypes) if getattr(dtype, "kind", None) in "Mm")
    name = subject.columns[column]
    return (f": column {name!r} (column {column}, {dtypes.iloc[column]}); drop it if it is "
            f"the time of each frame, not a region (x.drop(columns=[{name!r}]))")


#: Text that stands for a missing value (``pandas.read_csv``'s defaults, lower-cased, and "-"),
#: in a table whose other cells are numbers.
_MISSING_MARKERS = frozenset({
    "", "n/a", "na", "nan", "-nan", "null", "none", "#n/a", "#n/a n/a", "#na", "-1.#ind",
    "-1.#qnan", "1.#ind", "1.#qnan", "<na>", "-", "?",
})


def _is_missing_marker(value):
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    return text.strip().lower() in _MISSING_MARKERS


def _label_cell(subject, column):
    """The row and value of the first cell of ``column`` that is text, no number and no
    missing-value marker (a label's, as "rest" below an empty first cell), or None."""
    try:
        values = np.asarray(subject, dtype=object)[:, column]
    except (TypeError, ValueError, IndexError):
        return None
    for row, value in enumerate(values):
        if (isinstance(value, (str, bytes)) and not _is_number(value)
                and not _is_missing_marker(value)):
            return row, value
    return None


def _where_text(subject):
    """Where a subject's first text is, for the message that refuses it ("" if unknown)."""
    label = first_text_cell(subject, numbers_as_text=False)  # text that is no number
    cell = label or first_text_cell(subject)
    if cell is None:
        return ""
    column, name, row, value = cell
    if label is not None and _is_missing_marker(value):
        # a label column whose first cells are empty ("", BIDS' "n/a") is still one
        other = _label_cell(subject, column)
        if other is not None:
            row, value = other
    if label is not None and _is_missing_marker(value):
        # not a label column to drop: a region's missing value, written as pandas writes NaN
        where = (f"column {column}" if name is None or name == column else
                 f"column {name!r} (column {column})")
        return (f"; {value!r} at timepoint {row} in {where} marks a missing value: nothing is "
                "imputed, so remove the timepoints with missing values or interpolate them "
                "(as for NaN)")
    if name is None or label is None:
        where = f"column {column}" if name is None else f"column {name!r} (column {column})"
        return f"; first in {where}: {value!r} at timepoint {row}"
    # a DataFrame: often a label column (condition, site) appended to the regions
    return (f"; its first text column is {name!r} (column {column}; {value!r} at timepoint "
            f"{row}): drop it if it is no region (x.drop(columns=[{name!r}]))")


def _value_kinds(subject):
    """The numpy dtype kinds of a subject's values (one per DataFrame column)."""
    dtypes = getattr(subject, "dtypes", None)  # a DataFrame: one dtype per column
    if dtypes is not None:
        dtypes = list(dtypes) if hasattr(dtypes, "__iter__") else [dtypes]  # a Series: one
    elif isinstance(getattr(subject, "dtype", None), np.dtype):
        dtypes = [subject.dtype]
    else:  # nested lists, tensors, ...: what numpy makes of them
        try:
            dtypes = [np.asarray(subject).dtype]
        except (TypeError, ValueError, RuntimeError):  # ragged or on a GPU: checked later
            dtypes = []
    return {getattr(dtype, "kind", None) for dtype in dtypes}


def first_name_difference(subject_names, names):
    """Where a subject's column names first differ from those of the subjects before it.

    Parameters
    ----------
    subject_names : sequence of str
        The subject's column names.
    names : sequence of str
        The names they are compared with.

    Returns
    -------
    str
        E.g. ``"column 0 is 'roi2' where they have 'roi0'"``, or the two name counts; then the
        names that only one side has (a region a masker left out of one subject's table).
    """
    def some(missing):  # the first three names, quoted, and how many in all
        shown = ", ".join(repr(str(name)) for name in missing[:3])
        return shown + (f" ({len(missing)} in all)" if len(missing) > 3 else "")

    for column, (own, before) in enumerate(zip(subject_names, names)):
        if own != before:
            difference = f"column {column} is {own!r} where they have {before!r}"
            break
    else:
        difference = f"{len(subject_names)} names where they have {len(names)}"
    own_set, their_set = set(subject_names), set(names)
    lacks = [name for name in names if name not in own_set]
    extra = [name for name in subject_names if name not in their_set]
    if lacks:
        difference += (f"; it lacks {some(lacks)} (for example a region outside its brain "
                       "mask, which nilearn's maskers leave out)")
    if extra:
        difference += f"; it has {some(extra)}, which they do not"
    return difference


def name_differences(names, reference, example):
    """The positions where two equally long lists of names differ, and up to three of them.

    Parameters
    ----------
    names, reference : sequence of str
        The names compared, position by position.
    example : str
        Format of one difference, with the fields ``i`` (the position), ``own`` (the name in
        ``names``) and ``other`` (that in ``reference``).

    Returns
    -------
    n_differences : int
        How many positions differ.
    examples : str
        The first three differences, comma-separated.
    """
    def plain(name):  # NumPy's strings shown as str's (not np.str_('a'))
        return name.item() if isinstance(name, np.generic) else name

    moved = [i for i, (own, other) in enumerate(zip(names, reference)) if own != other]
    examples = ", ".join(example.format(i=i, own=plain(names[i]), other=plain(reference[i]))
                         for i in moved[:3])
    return len(moved), examples


def _refuse_other_names(i, own, names, item="subject", items="subjects"):
    """Refuse item ``i``'s column names where they differ from ``names``, those of the items
    before it (nothing to compare when either is None)."""
    if own is not None and names is not None and not np.array_equal(own, names):
        raise ValueError(f"{item} {i} has other region names (columns) than the {items} "
                         f"before it: {first_name_difference(own, names)}")


def _check_index_column_kept(i, names, array):
    """Refuse a subject whose first column is a table index or time column, as the files it
    is read from are: ``pandas.read_csv`` without ``index_col`` keeps ``to_csv``'s index as a
    column ``"Unnamed: 0"``, which would otherwise become one more region, and so does an
    array read from such a file (``numpy.loadtxt``, ``DataFrame.to_numpy``). A time or frame
    column appended last (``df["time"] = np.arange(n) * t_r``) is refused the same way."""
    first_name = None if names is None else names[0]
    if str(first_name).startswith("Unnamed: 0"):
        raise ValueError(
            f"subject {i}: its first column {first_name!r} had no name in its file: a table "
            "index (pandas' to_csv writes one unless index=False), not a region; remove it, "
            "or read the file with pandas.read_csv(..., index_col=0)")
    try:
        check_index_column(array, name=None if names is None else str(first_name), last=True,
                           last_name=None if names is None else str(names[-1]))
    except ValueError as error:
        raise ValueError(f"subject {i}: {error}") from None


def input_layout(input_name="X"):
    """What the input that holds the subjects must be, for the messages that describe it.

    Parameters
    ----------
    input_name : str, default="X"
        The input's name: ``"X"``, the estimators' (arrays, DataFrames, files or a glob), or
        that of a caller that takes arrays and DataFrames only (the
        :class:`~brainjepa_sk.preprocessing.Preprocessor`'s ``subjects``).

    Returns
    -------
    str
        A sentence without its final stop.
    """
    if input_name == "X":
        return _LAYOUT
    return (f"{input_name} must be a 3-D array (n_subjects, n_timepoints, n_regions) or a list "
            "of 2-D (n_timepoints, n_regions) arrays or DataFrames")


#: Column names (lower case) that name the subject of each row of a long table of frames.
_SUBJECT_COLUMN_NAMES = frozenset({
    "subject", "subjects", "subject_id", "subjectid", "subject id", "sub", "sub_id", "subid",
    "subj", "subj_id", "participant", "participant_id", "participantid", "participant id"})


def one_table_message(X, input_name="X", estimator=None):
    """Why one 2-D table is refused where the subjects were expected, and what to pass.

    Parameters
    ----------
    X : array-like or pandas.DataFrame
        The 2-D table given.
    input_name : str, default="X"
        The input's name (see :func:`input_layout`).
    estimator : estimator instance, optional
        The estimator given ``X``: one with a ``gradients`` parameter is told that gradients
        are given there, not as a pipeline step before it, unless it is fitted and the table
        has as many columns as it has regions (one subject, as at ``predict``).

    Returns
    -------
    str
        The message, with the advice to wrap a single subject in a list, or, for a table of
        one column of subjects, to pass that column.
    """
    shape = tuple(X.shape) if hasattr(X, "shape") else np.shape(X)
    if (len(shape) == 2 and shape[0] and shape[1] == 1
            and (hasattr(X, "iloc") or isinstance(X, np.ndarray))):
        first = X.iloc[0, 0] if hasattr(X, "iloc") else X[0, 0]
        if is_path(first) or getattr(first, "ndim", None) == 2:
            # e.g. ColumnTransformer's ["series"], which passes a table, where "series" passes
            # the column
            columns = getattr(X, "columns", None)
            if columns is None:
                return (f"{input_layout(input_name)}; got a table of shape {shape} whose one "
                        f"column holds the subjects: pass that column, {input_name}[:, 0]")
            name = columns[0]
            return (f"{input_layout(input_name)}; got a table of shape {shape} whose one "
                    f"column, {name!r}, holds the subjects: pass that column, "
                    f"{input_name}[{name!r}] (in a ColumnTransformer, select it as {name!r}, "
                    f"not [{name!r}])")
    columns = getattr(X, "columns", None)
    # every subject's frames stacked in one long table, a column naming the subject
    subject_column = next((name for name in (columns if columns is not None else ())
                           if isinstance(name, str)
                           and name.strip().lower() in _SUBJECT_COLUMN_NAMES), None)
    if subject_column is not None:
        return (f"{input_layout(input_name)}; got one 2-D table of shape {shape} whose column "
                f"{subject_column!r} names the subjects: a long table of every subject's "
                "frames? Split it, one table a subject: "
                f"[t.drop(columns={subject_column!r}) for _, t in "
                f"{input_name}.groupby({subject_column!r}, sort=False)], the subjects in the "
                "order they first appear (give y in that order)")
    message = (f"{input_layout(input_name)}; got one 2-D table of shape {shape}. For a "
               "single subject, pass [x].")
    # a GradientPositioner's output: one row per subject, columns "{region}_gradient{c}"
    from_positioner = columns is not None and len(columns) > 0 and all(
        isinstance(name, str) and re.search(r"_gradient\d+$", name) for name in columns)
    # a fitted estimator given one table of its own region count: one subject, the advice on
    # gradients would be noise
    one_subject = shape[1] == getattr(estimator, "n_features_in_", None)
    takes_gradients = (hasattr(estimator, "get_params") and not one_subject
                       and "gradients" in estimator.get_params(deep=False))
    if from_positioner or takes_gradients:
        # an array does not say where it came from: the advice is for the case it fits
        seen = ("Its columns ({region}_gradient{c}) are a GradientPositioner's output: g"
                if from_positioner else
                "If it is a GradientPositioner's output (a pipeline step before this one): g")
        message += (f" {seen}radients are given as the gradients= parameter of the Brain-JEPA "
                    "estimators (e.g. gradients=GradientPositioner()), not as a pipeline step "
                    "before them")
    return message


def check_subject(i, subject, names, n_regions, *, expected, name, min_timepoints, dtype,
                  allow_constant, first_length=None, first_source=None, min_regions=2,
                  first_frame=None, input_name="X", source=None, fixed_regions=False,
                  fitted_names=None):
    """Check subject ``i`` and return it as a 2-D float array: the one check of a subject.

    Parameters
    ----------
    i : int
        The subject's position, for the messages.
    subject : array-like or pandas.DataFrame
        One ``(n_timepoints, n_regions)`` table.
    names : numpy.ndarray of str or None
        Region names of the subjects before it, which a DataFrame's columns must match.
    n_regions : int or None
        Region count of the subjects before it.
    expected : int or None
        Region count the estimator was fitted with.
    name : str or None
        The estimator, for the message about ``expected``.
    min_timepoints : int
        Fewest frames accepted.
    dtype : numpy dtype or list of dtype
        As scikit-learn's ``check_array`` takes it.
    allow_constant : bool
        Whether a region with a constant signal is accepted.
    first_length, first_source : int or None, path-like or None, optional
        Subject 0's length and file, for the message about another region count.
    min_regions : int, default=2
        Fewest regions accepted (connectivity, gradients and Cross-ROI masking need two; the
        :class:`~brainjepa_sk.preprocessing.Preprocessor` alone takes one).
    first_frame : int or None, optional
        When ``subject`` holds one window's frames, the first one's index in the subject, so
        that a message places a NaN in the subject rather than in the window.
    input_name : str, default="X"
        The input the subject is part of, as the caller's user knows it (see
        :func:`input_layout`): the messages name it, as ``X[i]`` for instance.
    source : path-like or None, optional
        The file the subject was read from: a file holding several subjects (a 3-D array) is
        to be loaded first, not named in ``X``.
    fixed_regions : bool, "option" or "refit", default=False
        Whether the estimator's regions are set (by its weights, or by a ``fit``): a constant
        region cannot be removed then, and the message does not say to. ``"option"`` when the
        estimator takes ``constant_regions`` (the message points to ``"zero"``), ``"refit"``
        when it was set so since its ``fit``.
    fitted_names : numpy.ndarray of str or None, optional
        The region names the estimator was fitted with: a subject with names and another
        region count is told which names it lacks or adds.

    Returns
    -------
    numpy.ndarray of shape (n_timepoints, n_regions)
        The subject, of ``dtype``.

    Raises
    ------
    ValueError
        Naming subject ``i`` and what is wrong with it (a DataFrame's repeated column names
        and a sparse matrix included).
    TypeError
        When its values are not numbers, or a DataFrame's column names mix strings with
        other types.
    """
    if sparse.issparse(subject):  # scikit-learn's TypeError had it "not numeric"
        raise ValueError(f"subject {i} is a sparse {type(subject).__name__}: sparse input is not "
                         "supported; pass its dense values (x.toarray())")
    check_signal_values(i, subject)
    if _only_array_protocol(subject):
        subject = np.asarray(subject)
    try:
        np.ndim(subject)
    except ValueError:  # numpy's "inhomogeneous shape": runs or rows of different lengths
        raise ValueError(ragged_message(i, subject)) from None
    if isinstance(subject, numbers.Number) or np.ndim(subject) != 2:
        if source is not None:  # the path was X, or in it: "pass it as X" would be no advice
            several = (f" (a 3-D array holds several subjects: load the file first, "
                       f"{input_name} = numpy.load({str(source)!r}), and pass that array as "
                       f"{input_name}; or save one file per subject)")
        else:
            several = (f" (a 3-D array holds several subjects: pass it as {input_name} itself, "
                       "or its subjects in the list)")
        several = several if np.ndim(subject) == 3 else ""
        if _is_image(subject):  # as a path to one is told
            several = f" ({_IMAGE_ADVICE})"
        raise ValueError(
            f"subject {i} has {np.ndim(subject)} dimension(s) (shape {np.shape(subject)}), "
            f"but each subject is one 2-D (n_timepoints, n_regions) table{several}. "
            f"{input_layout(input_name)}"
        )
    subject_names = feature_names_of(subject, i)
    _refuse_other_names(i, subject_names, names)
    if expected is not None:
        named = (subject_names is not None and fitted_names is not None
                 and len(subject_names) != expected)
        check_n_regions(np.shape(subject)[1], expected, what="fitted with",
                        n_timepoints=np.shape(subject)[0], name=name,
                        advice=f"Subject {i}'s region names against those seen in fit: "
                               f"{first_name_difference(subject_names, fitted_names)}"
                        if named else _masked_region_hint(
                            i, np.shape(subject), expected, prefix="Subject ",
                            unnamed_fit=subject_names is not None))
    try:
        array = check_array(
            subject,
            dtype=dtype,
            ensure_all_finite=True,
            ensure_min_samples=1,
            ensure_min_features=min_regions,
            input_name=f"{input_name}[{i}]",
        )
    except ValueError as exc:
        where = _where_not_finite(subject, subject_names, first_frame)
        raise ValueError(f"subject {i}: {exc}{where}") from None
    except TypeError as exc:  # e.g. objects that are not numbers (scikit-learn's convention)
        raise TypeError(f"subject {i} is not numeric: {exc}") from None
    if array.shape[0] < min_timepoints:
        raise ValueError(
            f"subject {i} has {array.shape[0]} timepoint(s); at least {min_timepoints} are "
            "needed (expected (n_timepoints, n_regions))"
        )
    if first_frame is None:
        _check_index_column_kept(i, subject_names, array)
    if n_regions is not None and array.shape[1] != n_regions:
        first = f" ({first_source})" if first_source is not None else ""
        # either may be the transposed one: the first subject set the count
        looks = [f"subject {j}" for j, transposed in (
            (0, array.shape[1] == first_length), (i, array.shape[0] == n_regions)) if transposed]
        hint = (f" ({' or '.join(looks)} looks transposed)" if looks else
                # the one with fewer regions may have lost some to its brain mask
                _masked_region_hint(i, array.shape, n_regions, prefix="; subject ")
                or _masked_region_hint(0, (first_length, n_regions), array.shape[1],
                                       prefix="; subject "))
        raise ValueError(
            f"subject {i} has {array.shape[1]} regions (last axis) but subject 0{first} has "
            f"{n_regions}; every subject must be (n_timepoints, n_regions) on one atlas{hint}"
        )
    if not allow_constant:
        constant = np.flatnonzero(np.ptp(array, axis=0) == 0)
        if constant.size:
            said = (f"subject {i}: {constant.size} region(s) have a constant signal (indices "
                    f"{constant[:10].tolist()}{'...' if constant.size > 10 else ''}); ")
            background = [j for j in constant
                          if subject_names is not None and _is_background(subject_names[j])]
            if background:
                # the advice below (constant_regions='zero') would keep it: one region too many
                raise ValueError(
                    f"{said}column {background[0]} is named {subject_names[background[0]]!r}, "
                    "the label 0 (outside the brain) of nilearn's atlases, which "
                    "NiftiLabelsMasker does not extract: it is no region, leave it out of X "
                    "(and check that the other columns are named after their own regions, not "
                    "the one before)")
            raise ValueError(
                said
                + (f"{name or 'the estimator'} takes every region of its atlas, so a region "
                   "cannot be removed: fix the extraction, or leave the subject out"
                   # the advice of the estimators that take the option (not a GradientPositioner
                   # fitted on other subjects: its correlations need every region's signal)
                   + ("; a region without signal (outside the field of view, of this subject "
                      "or of every one) is taken as 0 after normalization with "
                      "constant_regions='zero'"
                      + (" (set since fit: fit again to apply it)"
                         if fixed_regions == "refit" else "")
                      if fixed_regions in ("option", "refit") else "")
                   if fixed_regions
                   # from this subject alone, they would make its region count another
                   else "remove them from every subject (all must keep the same regions), "
                        "leave the subject out, or fix the extraction")
            )
        if first_frame is None:  # a whole series, not one window of it
            _refuse_padded_end(i, array)
    return array


def _masked_region_hint(i, shape, n_regions, prefix, unnamed_fit=False):
    """Why subject ``i``, of ``shape``, may have a few regions fewer than ``n_regions``: some
    outside its brain mask, which nilearn's maskers leave out ("" if it has not, if it lacks
    more than a tenth of them, another atlas, or if it looks transposed); ``prefix`` is what
    comes before ``i`` ("; subject ", "Subject "); ``unnamed_fit``: the subject has region
    names, but the fit it is checked against had none to tell which it lacks."""
    missing = n_regions - shape[1]
    # an atlas of ten regions or more, and a tenth of them at most: lost regions, not another
    # atlas (nor a toy table)
    if not 0 < missing <= n_regions // 10 or shape[0] == n_regions:
        return ""
    which = ("fit had no region names to tell which: fit on the columns of the masker's "
             "pandas output, masker.set_output(transform='pandas'), to have them named"
             if unnamed_fit else "region names, the columns of the masker's pandas output, "
             "masker.set_output(transform='pandas'), tell which")
    return (f"{prefix}{i} lacks {missing} region(s): outside its brain mask, which "
            f"nilearn's maskers leave out? ({which})")


def _refuse_padded_end(i, array):
    """Refuse a series that ends with frames of zeros in every region: a shorter scan padded to
    the length of the others (to stack scans of different lengths into one 3-D array), whose
    padding the model would otherwise take for signal. No BOLD frame is 0 in every region."""
    n_timepoints, n_zero = len(array), 0
    while n_zero < n_timepoints and not array[n_timepoints - 1 - n_zero].any():
        n_zero += 1
    if 2 <= n_zero < n_timepoints:
        raise ValueError(
            f"subject {i} ends with {n_zero} frames that are 0 in every region (timepoints "
            f"{n_timepoints - n_zero} to {n_timepoints - 1}): a shorter scan padded to a common "
            "length? Scans may differ in length: pass X as a list of arrays, each cut to its "
            f"own length (here x[:{n_timepoints - n_zero}]); remove censored frames rather than "
            "zeroing them"
        )


def _names_files(X):
    """Whether ``X`` is a glob, a path, or a non-empty list of paths only."""
    if is_path(X):
        return True
    return isinstance(X, (list, tuple)) and len(X) > 0 and all(is_path(x) for x in X)


def _warn_repeated_files(X):
    """Warn when a list names one file twice: each entry is a subject of its own, so the
    subject would count twice (a glob pasted twice into a list, a path written two ways)."""
    if not isinstance(X, (list, tuple)):
        return
    seen = {}
    for i, path in enumerate(X):
        if not is_path(path):
            continue
        key = _file_identity(expand_home(path))
        if key in seen:
            j = seen[key]
            named = (f"({os.fspath(path)})" if os.fspath(X[j]) == os.fspath(path) else
                     f"({os.fspath(X[j])} and {os.fspath(path)})")
            warn_user(f"X[{j}] and X[{i}] are the same file {named}: each entry is a subject "
                      "of its own, so this one counts twice, with twice the weight; give each "
                      "file once")
            return
        seen[key] = i


def _warn_listed_tables(X):
    """Warn when a list names BIDS tables that hold no region series (fMRIPrep's confounds,
    a participants.tsv, as ``sorted(glob.glob("derivatives/**/*.tsv"))`` gives them): each
    entry is read as a subject, as given."""
    if not isinstance(X, (list, tuple)):
        return
    tables = [f"X[{i}] ({os.fspath(path)})" for i, path in enumerate(X)
              if is_path(path) and _is_bids_table(path)]
    if tables:
        warn_user(f"{_first_few(tables)}: named as BIDS tables that hold no region series "
                  f"({_TABLE_KINDS}), yet each entry of X is read as a subject's series; leave "
                  "them out of X")


def _file_identity(path):
    """What tells one file from another: its device and inode (a hard link, or another case
    of the name on a case-insensitive disk, is the same file), or its real path when it cannot
    be stat'ed (the read that follows names the missing file) or has no inode number (0 on
    some Windows file systems, which would make every file the same)."""
    try:
        stat = os.stat(path)
    except OSError:
        stat = None
    if stat is None or not stat.st_ino:
        return os.path.realpath(path)
    return stat.st_dev, stat.st_ino


def _paths_as_list(X):
    """A 1-D NumPy array or pandas Series of paths (``np.array(sorted(glob(...)))``, a
    DataFrame's column of file names) as a list of paths, so that the files are streamed as a
    list's are; anything else unchanged."""
    if getattr(X, "ndim", None) != 1 or not (isinstance(X, np.ndarray) or hasattr(X, "iloc")):
        return X
    values = X.tolist()
    if isinstance(X, np.ndarray) and X.dtype.kind == "S":
        values = [os.fsdecode(value) for value in values]
    return values if values and all(is_path(value) for value in values) else X


#: Inside :func:`each_checked_file`: what to call with each file's subject as checked.
_EACH_CHECKED_FILE = contextvars.ContextVar("each_checked_file", default=None)


@contextlib.contextmanager
def each_checked_file(*takers):
    """A block in which :func:`validate_subjects` of files calls each of ``takers`` with
    each text file's subject once its checks have passed, in order: the float array the
    check converted it into (of the check's ``dtype``), so that other passes over the
    subjects (the group connectivity of a GradientPositioner's fit, the pretrainer's robust
    statistics) need not parse every text file once more. A corpus that holds any ``.npy``
    file feeds none (a takers' count of subjects then falls short, and the pass reads every
    file): ``.npy`` files are memory-mapped, read again in a fraction of what a taker spends
    on them, and whatever a taker does as the check reads would only delay the errors found
    after the check (a subject too short for a window).

    Parameters
    ----------
    *takers : callable or None
        Each called with one ``(n_timepoints, n_regions)`` array; None are left out.
    """
    takers = [take for take in takers if take is not None]

    def take(series):
        for each in takers:
            each(series)

    token = _EACH_CHECKED_FILE.set(take if takers else None)
    try:
        yield
    finally:
        _EACH_CHECKED_FILE.reset(token)


class CheckedSeries:
    """The series of subjects as a check of their files read them (:func:`each_checked_file`
    gives :meth:`add`), kept for a later pass over the same subjects while they hold at most
    ``max_frames`` frames in all: past that, none are kept (the pass reads the files).

    Parameters
    ----------
    max_frames : int
        The most frames kept in all (the memory of ``max_frames`` frames of every region).
    """

    def __init__(self, max_frames):
        self.max_frames = int(max_frames)
        self.series, self.n_frames = [], 0

    def add(self, series):
        """Keep the next subject's series, if it fits.

        Parameters
        ----------
        series : numpy.ndarray of shape (n_timepoints, n_regions)
            The subject as its check converted it.
        """
        if self.series is None:
            return
        self.n_frames += len(series)
        if self.n_frames > self.max_frames:
            self.series = None  # too many to keep: the pass reads the files
        else:
            self.series.append(series)

    def subjects(self, files):
        """The checked files, giving the series kept rather than reading them.

        The series are no longer held here.

        Parameters
        ----------
        files : SubjectFiles
            The files whose check filled this.

        Returns
        -------
        SubjectsReadByCheck or SubjectFiles
            ``files`` with the series kept, or ``files`` itself where none were kept (too
            many frames), or not one per file.
        """
        series, self.series = self.series, None
        if series is None or not isinstance(files, SubjectFiles) or len(series) != len(files):
            return files
        return SubjectsReadByCheck(files, series)


class SubjectsReadByCheck(Sequence):
    """Checked files whose series their check read and kept (:class:`CheckedSeries`): a
    subject indexed is its kept series, given once (then no longer held), where its file
    still has the stamp (size, modification time) of its check; otherwise it is read from
    the file (which raises :class:`~brainjepa_sk.files.FileChangedError` if its series
    changed), as ``files[i]`` reads it.

    Parameters
    ----------
    files : SubjectFiles
        The files checked.
    series : list of numpy.ndarray
        Each file's series, as its check converted it.
    """

    def __init__(self, files, series):
        self.files = files
        self._series = list(series)

    def __len__(self):
        return len(self.files)

    @property
    def n_timepoints(self):
        """Each subject's length, from the check."""
        return self.files.n_timepoints

    @property
    def n_regions(self):
        """The regions of every subject, from the check."""
        return self.files.n_regions

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        series, self._series[index] = self._series[index], None
        if series is None or not self.files._unchanged(index):
            return self.files[index]
        return series


def _validate_files(X, check, reset=False):
    """Check every file one at a time, keeping only what :class:`SubjectFiles` records
    (``reset``: in ``fit``, where a region named "Background" is warned of)."""
    take = _EACH_CHECKED_FILE.get()
    # "~" expanded as the reads expand it, so that the stamps are taken
    paths = expand_subject_paths(X) if is_path(X) else [expand_home(x) for x in X]
    if any(_file_type(path) == ".npy" for path in paths):
        # .npy files feed no taker, and a taker that falls short of the corpus goes unused
        # (its pass reads every file): the text files beside them feed none either
        take = None
    digest = hashlib.sha256()
    lengths, n_regions, names, stamps, file_digests = [], None, None, [], []
    for i, path in enumerate(paths):
        # stamped before the read: a rewrite during it shows at the next read
        stamps.append(file_stamp(path) if os.path.isfile(path) else None)
        subject = read_subject_file(path)
        if names is None:  # the first header met (files without one have no names)
            names = feature_names_of(subject)
            if reset:
                _warn_background_name(names)
        try:
            array = check_subject(i, subject, names, n_regions, **check,
                                  first_length=lengths[0] if lengths else None,
                                  first_source=paths[0], source=path)
            _refuse_connectivity_subject(i, array, check["name"])
        except (ValueError, TypeError) as error:
            raise type(error)(f"{path}: {error}") from None
        n_regions = array.shape[1]
        lengths.append(array.shape[0])
        _update_digest(digest, array)
        # the series as read, to know it again in a file touched since (float64 converted
        # once where the check converted it)
        file_digests.append(series_digest(array if array.dtype == np.float64 else subject,
                                          getattr(subject, "columns", None)))
        if take is not None:
            take(array)
        del subject, array  # one subject in memory at a time
    return SubjectFiles(paths, lengths, n_regions, names, digest.hexdigest(),
                        dtype=check["dtype"], allow_constant=check["allow_constant"],
                        stamps=stamps, file_digests=file_digests,
                        checked_finite=not get_config()["assume_finite"])


def _update_digest(digest, array):
    digest.update(np.asarray(array.shape, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(array, dtype=np.float64))  # the buffer: no copy


class ConvertedSubjects(Sequence):
    """Validated in-memory subjects, converted to a 2-D float array each time one is indexed.

    What :func:`validate_subjects` returns for arrays with ``lazy=True``: a float32 corpus
    is then never copied to float64 all at once, only chunk by chunk where it is used.

    Parameters
    ----------
    subjects : list
        The subjects as given (arrays, DataFrames, nested lists), already checked.
    dtype : numpy dtype, default=numpy.float64
        dtype of the arrays indexing returns.
    allow_constant : bool, default=False
        Whether the check accepted constant regions (a stricter check later checks again).
    """

    def __init__(self, subjects, dtype=np.float64, allow_constant=False):
        self.subjects = subjects
        self.dtype = dtype
        self.allow_constant = allow_constant

    def __len__(self):
        return len(self.subjects)

    @property
    def n_timepoints(self):
        """Each subject's number of frames (rows), without converting it."""
        return [int(np.shape(subject)[0]) for subject in self.subjects]

    @property
    def n_regions(self):
        """The number of regions (columns), the same in every subject (checked)."""
        return int(np.shape(self.subjects[0])[1])

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        subject = self.subjects[index]
        if _only_array_protocol(subject):
            subject = np.asarray(subject)
        return check_array(subject, dtype=self.dtype, ensure_all_finite=False,
                           ensure_min_features=1, input_name=f"X[{index}]")


def _rows_in_column_order(matrix):
    """A DataFrame whose index names the regions of its columns in another order, with its rows
    put in the order of the columns (read by position, it is not symmetric)."""
    if not hasattr(matrix, "columns") or not hasattr(matrix, "index"):
        return matrix
    rows, columns = list(matrix.index), list(matrix.columns)
    if rows != columns and len(set(rows)) == len(rows) == len(columns) and set(rows) == set(
            columns):
        return matrix.loc[columns]
    return matrix


def record_subjects_column(estimator, X):
    """In ``fit``: record on ``estimator`` the name of ``X`` when it is a pandas Series of
    subjects (a table's column, as ``ColumnTransformer`` passes it) as ``_subjects_column_``,
    which ``get_feature_names_out`` takes for no region; else forget an earlier one.

    Parameters
    ----------
    estimator : estimator instance
        The estimator being fitted.
    X : object
        Its ``X`` as given.
    """
    column = X.name if getattr(X, "ndim", None) == 1 and hasattr(X, "iloc") else None
    if column is not None:
        estimator._subjects_column_ = column
    elif hasattr(estimator, "_subjects_column_"):
        del estimator._subjects_column_


def validate_connectivity(X):
    """Check connectivity matrices (``GradientPositioner(kind="connectivity")``'s input).

    Parameters
    ----------
    X : array-like of shape (n_subjects, n_regions, n_regions) or (n_regions, n_regions)
        Symmetric matrices (up to a rounding tolerance relative to the largest value). A
        DataFrame whose index names its columns' regions in another order is read with its rows
        in the order of the columns. A pandas Series (or 1-D object array) of matrices, a
        table's column, is read as their list.

    Returns
    -------
    matrices : numpy.ndarray of shape (n_subjects, n_regions, n_regions)
        Float64.
    names : numpy.ndarray or None
        Region names from DataFrame columns, as scikit-learn reads them.

    Raises
    ------
    ValueError
        Naming the problem: files (a glob or paths) instead of matrices, not numeric, not
        finite, wrong shape, matrices of different sizes, not square, not symmetric, or (a list
        of DataFrames) a matrix whose region names differ from those of the matrices before it.
    TypeError
        Column names of mixed types (some strings), as scikit-learn's estimators raise.
    """
    listed = _paths_as_list(X)
    if is_path(X) or (isinstance(listed, (list, tuple)) and listed
                      and all(is_path(item) for item in listed)):
        # read as numbers, paths gave "could not convert string to float: 'c0.npy'"
        raise ValueError(
            "with kind='connectivity', X must be the matrices themselves, not files (files are "
            "read as subjects' time series, with kind='timeseries'): load them first, e.g. "
            "numpy.stack([numpy.load(path) for path in sorted(glob.glob(pattern))])")
    if getattr(X, "ndim", None) == 1 and getattr(getattr(X, "dtype", None), "kind", None) == "O":
        # a Series or object array of matrices (a table's column): NumPy reads it as 1-D
        X = list(X)
    if isinstance(X, (list, tuple)):
        X = [_rows_in_column_order(matrix) for matrix in X]
    else:
        X = _rows_in_column_order(X)
    names = feature_names_of(X)
    if names is None and isinstance(X, list):  # one DataFrame per subject
        for i, matrix in enumerate(X):
            try:
                own = feature_names_of(matrix)
            except TypeError as error:  # column names of mixed types
                raise TypeError(f"matrix {i}: {error}") from None
            _refuse_other_names(i, own, names, item="matrix", items="matrices")
            names = own if names is None else names
    if X is None or isinstance(X, (str, bytes)):
        raise ValueError(
            "with kind='connectivity', X must be an array (n_subjects, n_regions, n_regions) or "
            f"one (n_regions, n_regions) matrix; got {type(X).__name__}"
        )
    try:
        array = check_array(
            X,
            dtype=np.float64,
            ensure_2d=False,
            allow_nd=True,
            ensure_all_finite=False,  # checked below, naming the matrix and the diagonal
            input_name="X",
        )
    except TypeError as exc:
        raise ValueError(f"X is not numeric: {exc}") from None
    except ValueError as exc:
        if "Complex data not supported" in str(exc):  # scikit-learn's message prints all of X
            raise ValueError("X holds complex values: pass the real part or the magnitude "
                             "(X.real or np.abs(X))") from None
        if "Found array with 0 sample(s)" in str(exc):
            raise ValueError("X is empty: expected at least one connectivity matrix") from None
        # matrices of several sizes (or subjects' time series of different lengths): numpy's
        # "inhomogeneous shape" says neither which nor what was expected
        if "setting an array element with a sequence" not in str(exc):
            raise
        shapes = []
        for matrix in X:
            try:
                shapes.append(np.shape(matrix))
            except ValueError:  # rows of different lengths
                shapes.append("not a table: rows of different lengths")
        odd = next((k for k, shape in enumerate(shapes) if shape != shapes[0]), None)
        which = "" if odd is None else (
            f" (matrix 0 is {shapes[0]}, matrix {odd} is {shapes[odd]})")
        raise ValueError(
            "with kind='connectivity', X must be connectivity matrices of one size, "
            f"(n_subjects, n_regions, n_regions); got matrices of different shapes{which}. "
            "For subjects' time series (of any lengths) use kind='timeseries'."
        ) from None
    if array.ndim == 2:
        array = array[np.newaxis]
    if not np.isfinite(array).all():
        if array.ndim != 3 or array.shape[1] != array.shape[2]:
            raise ValueError("X holds NaN or infinite values")
        bad = np.flatnonzero(~np.isfinite(array).reshape(len(array), -1).all(axis=1))[0]
        finite = np.isfinite(array[bad])
        np.fill_diagonal(finite, True)
        where = ("on its diagonal only (e.g. the infinite Fisher z of a correlation of 1, or a "
                 "diagonal set to NaN): set the diagonal to 1 with numpy.fill_diagonal"
                 if finite.all() else "off its diagonal")
        raise ValueError(f"connectivity matrix {bad} holds NaN or infinite values {where}")
    if array.ndim != 3 or array.shape[0] == 0:
        raise ValueError(
            "with kind='connectivity', X must be an array (n_subjects, n_regions, n_regions) or "
            f"one (n_regions, n_regions) matrix; got shape {np.shape(X)}"
        )
    n_rows, n_cols = array.shape[1:]
    if n_rows != n_cols:
        # nilearn's ConnectivityMeasure(vectorize=True) gives one row of n(n+1)/2 (or, without
        # the diagonal, n(n-1)/2) values per subject
        side = (math.isqrt(8 * n_cols + 1) - 1) // 2
        vectors = np.ndim(X) == 2 and n_cols > 1 and side * (side + 1) // 2 == n_cols
        # n(n-1)/2 values are also (n-1) regions with their diagonal: vec_to_sym_matrix reads
        # them so (wrong matrices, no error) unless it is given the diagonal
        advice = (" If the rows are vectorized matrices (a subject's lower triangle, as "
                  "ConnectivityMeasure(vectorize=True) gives), pass the matrices "
                  "(vectorize=False) or rebuild them with nilearn.connectome.vec_to_sym_matrix, "
                  f"which reads them as {side} regions with the diagonal; correlations without "
                  f"it (discard_diagonal=True) are {side + 1} regions' and need "
                  f"diagonal=numpy.ones((n_subjects, {side + 1})) / numpy.sqrt(2) (it scales a "
                  "diagonal by sqrt(2)). A BrainJEPAEmbedder's "
                  "pooling='connectivity' holds the pairs in another order (the user guide's "
                  "Embeddings section rebuilds its matrices)."
                  if vectors else "") + " For time series use kind='timeseries'."
        raise ValueError(
            f"connectivity matrices must be square (n_regions, n_regions); got {n_rows} rows and "
            f"{n_cols} columns.{advice}"
        )
    # Tolerance relative to the largest magnitude, so rounding in saved files passes.
    tolerance = 1e-6 * max(1.0, float(np.abs(array).max()))
    asymmetry = np.abs(array - array.transpose(0, 2, 1)).max(axis=(1, 2))
    bad = np.flatnonzero(asymmetry > tolerance)
    if bad.size:
        raise ValueError(
            f"connectivity matrix {bad[0]} is not symmetric (largest |C - C.T| = "
            f"{asymmetry[bad[0]]:.3g} > {tolerance:.3g})"
        )
    return array, names


def check_rows(rows, n_subjects):
    """``rows`` as a list of indices of ``n_subjects`` subjects.

    ``int()`` would take 1.7 as 1 and True as 1, and a negative index would name subject -1 in
    errors, or read past the end with a bare ``IndexError``: each row must be an int from 0.

    Parameters
    ----------
    rows : iterable of int
        Indices of subjects (NumPy ints are taken; bools are not).
    n_subjects : int
        Number of subjects the indices are into.

    Returns
    -------
    list of int
        The indices as Python ints, in the order given (empty when ``rows`` is).

    Raises
    ------
    TypeError
        When a row is not an int.
    IndexError
        When a row is not in ``[0, n_subjects)``.
    """
    checked = []
    for i in rows:
        if not isinstance(i, numbers.Integral) or isinstance(i, bool):
            raise TypeError(f"rows must hold ints (indices of subjects), got {i!r}")
        if not 0 <= i < n_subjects:
            raise IndexError(f"rows holds {i}, but the {n_subjects} subject(s) are indexed 0 "
                             f"to {n_subjects - 1}")
        checked.append(int(i))
    return checked


class _SubjectRows(Sequence):
    """Some of the checked subjects, read when indexed (see :func:`subject_rows`)."""

    def __init__(self, subjects, rows):
        self.subjects = subjects
        self.rows = check_rows(rows, len(subjects))

    def __len__(self):
        return len(self.rows)

    @property
    def n_timepoints(self):
        """Each of these subjects' number of frames, without reading them."""
        from .preprocessing import subject_lengths  # it imports this module

        lengths = subject_lengths(self.subjects)
        return [lengths[row] for row in self.rows]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self.subjects[self.rows[index]]


def subject_rows(subjects, rows):
    """The subjects ``rows`` of checked subjects, still read one at a time when indexed.

    Parameters
    ----------
    subjects : SubjectFiles, ConvertedSubjects or list of numpy.ndarray
        What :func:`validate_subjects` returned.
    rows : array-like of int
        The subjects to keep, in this order.

    Returns
    -------
    Sequence
        A view with ``n_timepoints``, as the preprocessing expects (empty when ``rows`` is:
        the preprocessing refuses it as it refuses no subjects).

    Raises
    ------
    TypeError
        ``rows`` holding anything but ints.
    IndexError
        ``rows`` holding a negative index or one past the last subject.
    """
    return _SubjectRows(subjects, rows)


def subjects_digest(subjects):
    """SHA-256 of validated subjects (their shapes and float64 values), without reading twice.

    Parameters
    ----------
    subjects : list of numpy.ndarray or SubjectFiles
        What :func:`validate_subjects` returned.

    Returns
    -------
    str
        The same hex digest for the same series, whether given as arrays or as files.
    """
    if isinstance(subjects, SubjectFiles):
        return subjects.digest
    digest = hashlib.sha256()
    for array in subjects:
        _update_digest(digest, array)
    return digest.hexdigest()


def _connectivity_kind(array):
    """What connectivity matrix a checked subject looks like, or ``None``.

    A matrix is square and symmetric, and has a constant diagonal (a correlation or partial
    correlation matrix: 1; Fisher-z values with the diagonal zeroed: 0) or is a covariance
    matrix (positive semi-definite, with a positive diagonal). A time series with as many
    frames as regions is practically never symmetric (``n * (n - 1) / 2`` coincidences), so
    symmetry is the sign, and the diagonal or the eigenvalues confirm it (a series built
    symmetric, such as sinusoids whose phase steps by the frame interval, has neither). A
    2 x 2 subject is too small to tell (one coincidence) and passes.
    """
    n_rows, n_columns = array.shape
    if n_rows != n_columns or n_rows < 3:
        return None
    tolerance = 1e-6 * max(float(np.abs(array).max()), 1.0)
    # the first row against the first column first: a series fails there, at O(n) cost
    if not (np.allclose(array[0], array[:, 0], rtol=0, atol=tolerance)
            and np.allclose(array, array.T, rtol=0, atol=tolerance)):
        return None
    diagonal = np.diagonal(array)
    if np.allclose(diagonal, 1.0, rtol=0, atol=tolerance):
        return "symmetric with a unit diagonal: a correlation matrix"
    if np.allclose(diagonal, diagonal[0], rtol=0, atol=tolerance):
        return f"symmetric with a constant diagonal (every value {diagonal[0]:.6g})"
    if (diagonal > 0).all() and (np.linalg.eigvalsh((array + array.T) / 2).min()
                                 >= -n_rows * tolerance):
        return "symmetric and positive semi-definite: a covariance matrix"
    return None


def _refuse_connectivity_subject(i, array, name):
    """Refuse subject ``i`` when it looks like a connectivity matrix (see
    :func:`_connectivity_kind`): as a time series it trains or transforms silently, into
    nothing meaningful (a connectome saved next to the series and globbed with them, say)."""
    kind = _connectivity_kind(array)
    if kind is not None:
        n = array.shape[0]
        name = name[0].upper() + name[1:]  # "the estimator" when none is named
        raise ValueError(
            f"subject {i} looks like a connectivity matrix, not a time series: it is square "
            f"({n} x {n}) and {kind}. {name} takes each subject's ROI time series, of shape "
            "(n_timepoints, n_regions): leave the matrix out of X (a connectome saved next to "
            "the series?) or give the subject's time series in its place. Connectivity "
            "matrices themselves are taken by GradientPositioner(kind='connectivity')"
        )


def validate_subjects(
    X,
    *,
    estimator=None,
    reset=True,
    min_timepoints=2,
    dtype=np.float64,
    allow_constant=False,
    lazy=False,
):
    """Check subjects' time series and return them as a list of 2-D float arrays.

    Parameters
    ----------
    X : array-like of shape (n_subjects, n_timepoints, n_regions) or list of 2-D arrays
        Subjects' ROI time series (nilearn orientation). DataFrames keep their column names.
    estimator : estimator instance, optional
        With ``reset=True``, ``n_features_in_`` (the number of regions) and, for DataFrames with
        string columns, ``feature_names_in_`` are set on it, and for a pandas Series of
        subjects (a table's column, as ``ColumnTransformer`` passes it) its name as
        ``_subjects_column_``. With ``reset=False`` the regions (and names) are checked against
        those it was fitted with.
    reset : bool, default=True
        Whether this call is a ``fit`` (records regions) or a later call (checks them).
    min_timepoints : int, default=2
        Fewest timepoints a subject may have.
    dtype : numpy dtype, default=numpy.float64
        Output dtype.
    allow_constant : bool, default=False
        Accept regions whose signal is constant within a subject (they carry no information and
        break z-scoring, so they are an error by default). They are accepted too where
        ``estimator`` takes them (its ``constant_regions="zero"``).
    lazy : bool, default=False
        When ``X`` names files only (a glob, or a list of paths), check them one at a time and
        return a :class:`~brainjepa_sk.files.SubjectFiles`, which reads each subject again when
        it is indexed, instead of holding them all in memory. Other input is checked the same
        way and returned as a :class:`ConvertedSubjects`, which converts each subject when it
        is indexed (no converted copy of the whole input).

    Returns
    -------
    list of numpy.ndarray, SubjectFiles or ConvertedSubjects
        One ``(n_timepoints, n_regions)`` array per subject (a sequence giving them one at a
        time with ``lazy=True``).

    Raises
    ------
    ValueError
        Empty or sparse ``X``, wrong dimensions, complex values, NaN or infinity, too few
        timepoints, fewer than two regions, constant regions, a scan ending in two or more
        frames of zeros (padding), a subject that looks like a connectivity matrix (square
        and symmetric, with a constant diagonal or positive semi-definite), regions that
        differ between subjects or from the fitted ones, a glob that matches no file, a
        missing entry in a list of paths, or a torch ``Dataset`` (skorch's way to pass data).
        The message names the subject and what was expected.
    TypeError
        Values that are not a signal: booleans, text (numbers written as strings included),
        a masked array with masked values, or objects that are not numbers (e.g. dicts in an
        object array), as in scikit-learn; also DataFrame columns of mixed types.
    FileNotFoundError
        A listed subject file that does not exist.
    """
    name = type(estimator).__name__ if estimator is not None else "the estimator"
    # A later call checks the region count first: a wrong count is the error to report, not the
    # constant signal that, say, a single remaining region may have.
    expected = None if reset or estimator is None else estimator.n_features_in_
    given = X
    X = _paths_as_list(X)
    if reset:  # in fit: a transform of a file twice gives its rows twice, as asked
        _warn_repeated_files(X)
        _warn_listed_tables(X)
    # the regions are set by the weights (embedder, fine-tuners) or by an earlier fit
    fixed_regions = estimator is not None and (not reset or hasattr(estimator, "weights"))
    if fixed_regions and getattr(estimator, "constant_regions", None) is not None:
        fixed_regions = "option"
        # taken as 0 (constant_regions="zero"): the parameter in fit, the preprocessing fit
        # froze afterwards (as the other preprocessing settings)
        setting = getattr(getattr(estimator, "preprocessor_", None) if not reset else None,
                          "constant_regions", estimator.constant_regions)
        allow_constant = allow_constant or setting == "zero"
        if estimator.constant_regions == "zero" and setting != "zero":
            fixed_regions = "refit"
    check = dict(expected=expected, name=name, min_timepoints=min_timepoints, dtype=dtype,
                 allow_constant=allow_constant, fixed_regions=fixed_regions,
                 fitted_names=None if expected is None else getattr(
                     estimator, "feature_names_in_", None))
    # checked already, at least as strictly: a lenient check let constant regions through
    # (asked of the checked kinds only: a DataFrame's column may be named allow_constant)
    as_strict = allow_constant or not (isinstance(X, (SubjectFiles, ConvertedSubjects))
                                       and X.allow_constant)
    checked_arrays = lazy and isinstance(X, ConvertedSubjects) and as_strict
    if (isinstance(X, SubjectFiles) and as_strict) or checked_arrays:
        # validated already (e.g. by the estimator holding this one): only what may differ
        # between the two checks, without reading or converting the subjects again
        if isinstance(X, SubjectFiles):
            out = X if X.dtype == dtype else SubjectFiles(
                X.paths, X.n_timepoints, X.n_regions, X.feature_names, X.digest, dtype,
                X.allow_constant, X.stamps, X.file_digests, X.checked_finite)
            n_regions, names = X.n_regions, X.feature_names
        else:
            out = X if X.dtype == dtype else ConvertedSubjects(X.subjects, dtype,
                                                                X.allow_constant)
            n_regions, names = X.n_regions, None
            for i, subject in enumerate(X.subjects):  # the first names met, as checked
                names = feature_names_of(subject, i)
                if names is not None:
                    break
        if expected is not None:
            check_n_regions(n_regions, expected, what="fitted with", name=name)
        lengths = np.asarray(X.n_timepoints)
        short = np.flatnonzero(lengths < min_timepoints)
        if short.size:
            where = f" ({X.paths[short[0]]})" if isinstance(X, SubjectFiles) else ""
            raise ValueError(
                f"subject {short[0]}{where} has {lengths[short[0]]} "
                f"timepoint(s); at least {min_timepoints} are needed"
            )
    elif isinstance(X, SubjectFiles):  # checked leniently: the files are checked again
        out = _validate_files(X.paths, check, reset)
        n_regions, names = out.n_regions, out.feature_names
    elif lazy and _names_files(X):
        out = _validate_files(X, check, reset)
        n_regions, names = out.n_regions, out.feature_names
    else:
        subjects, sources = _as_subject_list(X, estimator)
        names = None
        out = []
        n_regions = first_length = None
        for i, subject in enumerate(subjects):
            try:
                if names is None:  # the first names met, as when files are checked one by one
                    names = feature_names_of(subject, i)
                    if reset:
                        _warn_background_name(names)
                array = check_subject(i, subject, names, n_regions, **check,
                                      first_length=first_length, first_source=sources[0],
                                      source=sources[i])
                _refuse_connectivity_subject(i, array, name)
            except (ValueError, TypeError) as error:
                if sources[i] is None:
                    raise
                raise type(error)(f"{sources[i]}: {error}") from None
            n_regions = array.shape[1]
            first_length = array.shape[0] if first_length is None else first_length
            if not lazy:
                out.append(array)
        if lazy:  # converted again when used: never a converted copy of every subject at once
            out = ConvertedSubjects(subjects, dtype, allow_constant)

    if estimator is not None:
        if reset:
            estimator.n_features_in_ = n_regions
            if names is not None:
                estimator.feature_names_in_ = names
            elif hasattr(estimator, "feature_names_in_"):
                del estimator.feature_names_in_
            record_subjects_column(estimator, given)
        else:
            fitted_names = getattr(estimator, "feature_names_in_", None)
            estimator_name = type(estimator).__name__
            if fitted_names is not None and names is not None:
                if not np.array_equal(fitted_names, names):
                    moved = [i for i, (a, b) in enumerate(zip(names, fitted_names)) if a != b]
                    # the same regions in another order (a table rebuilt or read otherwise):
                    # say how to put them back
                    reordered = sorted(map(str, names)) == sorted(map(str, fitted_names))
                    raise ValueError(
                        "the region names (DataFrame columns or file headers) differ from "
                        "those seen in fit: " + ", ".join(
                            f"column {i} is {names[i]!r} but was {fitted_names[i]!r}"
                            for i in moved[:3]) + f" ({len(moved)} in all)" + (
                            "; they are the regions of fit in another order: reorder each "
                            "subject's columns as feature_names_in_ lists them, "
                            "x[est.feature_names_in_]" if reordered else ""))
            # the names the weights were pretrained on, when fit took them from a checkpoint
            check_region_names(names, getattr(estimator, "region_names_", None),
                               name=estimator_name)
            warn_names_seen_once(names, fitted_names, estimator_name)
    return out


def _is_background(name):
    """Whether a region is named "Background" (in any case, spaces around)."""
    return str(name).strip().lower() == "background"


def _warn_background_name(names):
    """Warn when a region is named "Background", the label nilearn's atlases give to label 0.

    ``NiftiLabelsMasker`` does not extract label 0, so a column of that name is most likely
    region names taken from an atlas's ``labels`` with its first entry left in (each column
    then carries the name of the region before it), or the background's own signal.

    Parameters
    ----------
    names : array-like of str or None
        The region names of ``X`` (DataFrame columns or file headers).
    """
    if names is None:
        return
    found = [i for i, name in enumerate(names) if _is_background(name)]
    if found:
        warn_user(
            f"column {found[0]} of X is named {names[found[0]]!r}, the name nilearn's atlases "
            "give to label 0 (outside the brain), which NiftiLabelsMasker does not extract: "
            "column names taken from an atlas's labels with it left in are each one region "
            "off (take the names of the masker's pandas output, "
            "masker.set_output(transform='pandas')), and a column of the background's signal "
            "is no region (leave it out)"
        )


def warn_names_seen_once(names, fitted_names, estimator_name):
    """Warn, as scikit-learn does, when only one of fit and transform had region names.

    Region names are DataFrame columns or file headers.

    Parameters
    ----------
    names : array-like of str or None
        The names of this input.
    fitted_names : array-like of str or None
        Those seen in fit (``feature_names_in_``).
    estimator_name : str
        How the warning names the estimator.
    """
    if fitted_names is not None and names is None:
        warn_user(f"X does not have valid feature names, but {estimator_name} was "
                  "fitted with feature names (region names)")
    elif fitted_names is None and names is not None:
        warn_user(f"X has feature names, but {estimator_name} was fitted without "
                  "feature names (region names)")


def check_region_names(names, trained_names, name="the model"):
    """Compare the input's region names with those the weights were pretrained on.

    The same names in another order raise a ``ValueError`` (the model would read every region
    as another one); other names warn (the same regions may be labelled differently). Nothing
    is checked when either side has no names.

    Parameters
    ----------
    names : array-like of str or None
        The input's region names (``feature_names_in_``).
    trained_names : array-like of str or None
        The names the weights were pretrained on (saved in our checkpoints).
    name : str, default="the model"
        The estimator, for the messages.
    """
    if names is None or trained_names is None:
        return
    names = [str(n) for n in names]
    trained_names = [str(n) for n in trained_names]
    if names == trained_names or len(names) != len(trained_names):
        return  # a different count is check_n_regions's error
    n_moved, examples = name_differences(names, trained_names,
                                         "column {i} is {own!r} but was {other!r}")
    if sorted(names) == sorted(trained_names):
        raise ValueError(
            f"X has the regions {name} was pretrained on, in another order ({examples}; "
            f"{n_moved} in all): the model would read each region as another one. Reorder "
            "the columns as at pretraining (listed by load_checkpoint(path).metadata"
            "['region_names'] for our checkpoints, by the index of the gradient DataFrame for "
            "a research checkpoint)"
        )
    warn_user(
        f"the region names of X differ from those {name} was pretrained on ({examples}; "
        f"{n_moved} in all): check that they are the same regions in the same order",
    )


def check_n_regions(n_regions, expected, what="built for", n_timepoints=None, name="the model",
                    advice=""):
    """Raise a ``ValueError`` naming both counts when a region count is not the expected one.

    The message starts the way scikit-learn's own feature-count errors do ("X has 3 features,
    but Name is expecting 4 features as input").

    Parameters
    ----------
    n_regions : int
        Regions found on the last axis of the input.
    expected : int
        Regions the estimator or model expects.
    what : str, default="built for"
        How the expectation came about, for the message.
    n_timepoints : int, optional
        Length of the first axis; when it equals ``expected`` the message says the input looks
        transposed.
    name : str, default="the model"
        What expects the regions (an estimator's class name), for the message.
    advice : str, default=""
        What to do, appended to the message.
    """
    if n_regions != expected:
        hint = " (it looks transposed)" if n_timepoints == expected else ""
        raise ValueError(
            f"X has {n_regions} features, but {name} is expecting {expected} features as "
            f"input: the subjects have {n_regions} regions (last axis) and it was {what} "
            f"{expected} regions; each subject must be (n_timepoints, n_regions){hint}"
            + (f". {advice}" if advice else "")
        )

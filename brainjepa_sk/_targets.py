"""Checks of the fine-tuners' targets, before anything is read or built.

``fit`` and ``partial_fit`` of :class:`~brainjepa_sk.BrainJEPAClassifier` and
:class:`~brainjepa_sk.BrainJEPARegressor` refuse here, with messages that name the subject
and say what to do: a ``y`` (or ``groups``) whose index names the subjects' files in another
order than ``X``'s, missing, infinite or complex targets, labels of several kinds, and
``classes`` that are no 1-D list of labels. They are kept apart from
:mod:`brainjepa_sk.finetune` so that the fine-tuners' module holds the estimators and their
fit and predict logic.
"""

from __future__ import annotations

import numbers
import os
import reprlib
from pathlib import Path, PurePath
from types import SimpleNamespace

import numpy as np

from .files import expand_subject_paths, is_path
from .nn._checks import type_with_article
from .train.runtime import expand_home
from .validation import _paths_as_list


def _check_targets_follow_files(subjects, y, name="y", globbed=False):
    """Refuse a ``y`` whose index names the subjects' files in another order than ``X``'s.

    A glob is read in sorted order (``sub-10`` before ``sub-2``): a ``y`` taken from a
    participants table indexed by participant ID, in the table's order, was paired with other
    subjects' series without a word. ``fit``'s ``groups`` are checked so too (``name``
    ``"groups"``): a family's subjects would have been split across the validation split.
    Only an index that names each of the files exactly once is looked at: one of strings,
    each the path of one file or a whole part of one file's name (``sub-1`` is not in
    ``sub-10_bold.npy``), or one of path objects (``pathlib.Path``), each one file's path or
    name. Anything else is taken as given, an index of numbers too (the
    positions of the rows of a table, which a split keeps, are no subject IDs).
    ``globbed``: ``X`` was a glob, whose sorted order the message then explains (a list of
    files is in the order it was given).
    """
    paths = getattr(subjects, "paths", None)
    index = y.index if hasattr(y, "iloc") else None  # a pandas Series or DataFrame's
    if paths is None or index is None or len(index) != len(paths):
        return
    values = list(index)
    as_paths = all(isinstance(value, PurePath) for value in values)
    if not as_paths and getattr(index, "inferred_type", None) != "string":
        return
    ids = [os.fspath(value) if as_paths else str(value) for value in values]
    names = [Path(path).name for path in paths]
    # by path first (a table indexed by the files' paths), then by name or part of one
    owners = _files_named([_absolute(i) for i in ids], [{_absolute(path)} for path in paths])
    if owners is None and as_paths:
        owners = _files_named([Path(i).name for i in ids], [{name} for name in names])
    elif owners is None:
        # every whole part of every name that is an ID: one look-up per row, where searching
        # every name for every row took minutes for thousands of subjects
        wanted = set(ids)
        owners = _files_named(ids, [_whole_parts(name) & wanted for name in names])
    if owners is None or owners == list(range(len(owners))):
        return
    row = next(k for k, owner in enumerate(owners) if owner != k)
    # files of one name in several folders (told apart by their paths) are named by them
    shown = names if len(set(names)) == len(names) else [str(path) for path in paths]
    paired = ("the targets would be paired with other subjects' series" if name == "y" else
              "the groups would be given to other subjects, and a group's subjects could be "
              "split between training and validation")
    of = f"{name}'" if name.endswith("s") else f"{name}'s"  # groups', y's
    why, order = ((" (a glob is read in sorted order, 'sub-10' before 'sub-2')",
                   " (their names sorted)") if globbed else ("", ""))
    raise ValueError(
        f"{of} index names the subjects' files, but in another order than X's: row {row} "
        f"of {name} is {ids[row]!r}, whose file is number {owners[row]} of X "
        f"({shown[owners[row]]}), while X's file {row} is {shown[row]}{why}; {paired}. Pass "
        f"X as the list of files in the order of {of} rows, or put {of} rows in the order "
        f"of X's files{order}")


def _is_glob(X):
    """Whether ``X`` names its files by one glob (or path), read in sorted order."""
    return is_path(_paths_as_list(X))


def _absolute(path):
    """``path`` as an absolute path string, ``~`` expanded, to compare with others."""
    return os.path.abspath(expand_home(path))


def _files_named(ids, keys):
    """The number of the file each of ``ids`` names, when each names exactly one file and no
    two name the same one; else None. ``keys``: per file, the set of ids that name it."""
    files_of = {}
    for k, file_keys in enumerate(keys):
        for key in file_keys:
            files_of.setdefault(key, set()).add(k)
    owners = []
    for subject in ids:
        found = files_of.get(subject, ())
        if len(found) != 1:  # the index does not name the files one to one
            return None
        owners.extend(found)
    return owners if len(set(owners)) == len(owners) else None


def _whole_parts(name):
    """The substrings of ``name`` that start at its start or after a character that is no
    ASCII letter or digit, and end at its end or before one (``sub-1`` of ``sub-1_bold.npy``,
    not of ``sub-10_bold.npy``)."""
    starts = [0] + [k + 1 for k, char in enumerate(name) if char not in _ALPHANUMERIC]
    ends = [k for k, char in enumerate(name) if char not in _ALPHANUMERIC] + [len(name)]
    return {name[start:end] for start in starts for end in ends if end > start}


_ALPHANUMERIC = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def _files_of(X):
    """``X``'s files as :func:`_check_targets_follow_files` takes them (an object with their
    ``paths``), when ``X`` is a glob, a path, or a list, 1-D array or Series of paths (as
    ``fit`` takes them); else None. Nothing is read."""
    X = _paths_as_list(X)
    if is_path(X):
        return SimpleNamespace(paths=expand_subject_paths(X))
    if isinstance(X, (list, tuple)) and X and all(is_path(x) for x in X):
        return SimpleNamespace(paths=[Path(os.fspath(x)) for x in X])
    return None


def _refuse_missing_targets(y, what, X=None):
    """Refuse a ``y`` with missing values (NaN, None, ``pandas.NA``) or infinite ones, naming
    where the first one is (by position, and by a pandas y's index: its participant ID), with
    advice that runs on ``X`` as given (a glob's files listed first):
    scikit-learn says only "Input y contains NaN", and labels that are text with one missing
    (as ``pandas.read_csv`` reads an empty cell) failed in NumPy's sort with "'<' not
    supported between instances of 'float' and 'str'"; also a ``y`` of rows of different
    lengths or of complex values; ``what`` is "label" or "target"."""
    import pandas as pd  # (imported here: this module loads without pandas until used)

    try:
        kind = np.asarray(y).dtype.kind
    except ValueError:  # NumPy's "inhomogeneous shape"
        raise ValueError(f"y has rows of different lengths: give one {what} per subject (a "
                         "1-D y, or a table of one row per subject)") from None
    except TypeError:  # not an array: the checks that follow say so
        return
    if kind == "c":  # scikit-learn's message prints every value of y
        raise ValueError(f"y holds complex values: pass the real part or the magnitude "
                         f"(y.real or np.abs(y)) as the {what}s")
    try:
        values = np.asarray(y, dtype=object)
        missing = np.asarray(pd.isna(values), dtype=bool)
    except (TypeError, ValueError):  # not an array: the checks that follow say so
        return
    if missing.ndim not in (1, 2):
        return
    # pandas.notna, not numpy.isfinite, for a missing value: on a nullable column (Float64)
    # isfinite gives <NA>, which X[keep] cannot take and .all(axis=1) skips
    problem, keep = f"a missing {what} (NaN or None)", "pandas.notna(y)"
    if not missing.any():
        if kind not in "fiu":
            return
        missing, problem = np.isinf(np.asarray(y, dtype=np.float64)), f"an infinite {what}"
        keep = "numpy.isfinite(y)"
        if not missing.any():
            return
    rows = np.flatnonzero(missing.reshape(len(missing), -1).any(axis=1))
    column = ""
    if missing.ndim == 2 and missing.shape[1] > 1:
        first = int(np.flatnonzero(missing[rows[0]])[0])
        columns = getattr(y, "columns", None)
        column = f", column {columns[first]!r}" if columns is not None else f", column {first}"
    index = y.index if hasattr(y, "iloc") else None  # a pandas y's: a table's participant IDs
    if index is not None and not index.equals(pd.RangeIndex(len(index))):
        column = f" ({index[rows[0]]!r} in y's index){column}"
    if missing.ndim == 2:
        keep += ".all(axis=1)"
    # X is most often a list of arrays (nilearn's maskers, make_brain_dynamics), which a
    # boolean mask cannot index (X[keep] raised TypeError); so is a list y
    kept_y = ("y = [t for t, k in zip(y, keep) if k]" if isinstance(y, (list, tuple))
              else "y = y[keep]")
    # a glob (or one path) is listed first, in the sorted order fit reads it: zip would have
    # walked the string's characters
    listed = ("X = brainjepa_sk.files.expand_subject_paths(X); "
              if _is_glob(X) else "")
    raise ValueError(
        f"y has {problem} for {rows.size} subject(s), first subject {rows[0]}{column}: every "
        f"subject needs a finite {what}. Leave the subjects without one out of both X and y "
        f"(e.g. {listed}keep = {keep}; X = [x for x, k in zip(X, keep) if k]; {kept_y})")


def _refuse_labels_of_several_kinds(y):
    """Refuse a ``y`` of labels held as objects that scikit-learn cannot classify, naming the
    subjects: labels of several kinds (numbers and text, as a spreadsheet column with one typo
    reads) failed with NumPy's bare "'<' not supported between instances of 'int' and 'str'"
    or scikit-learn's "Unknown label type: unknown ... continuous values", which it also says
    of numbers alone held as objects, and of other objects (a dict a subject) too."""
    if y.dtype != object:
        return
    kinds = {}  # kind of label: the first subject with one
    for i, label in enumerate(y.tolist()):
        if isinstance(label, str):
            kind = "text"
        elif isinstance(label, (numbers.Number, np.bool_)):
            kind = "numbers"
        else:
            raise ValueError(
                f"y holds {type_with_article(label)} for subject {i} ({reprlib.repr(label)}), "
                "which is no class label: a classifier's y holds one label a subject, a number, "
                "a string or a bool (e.g. a column of the participants table: "
                "y = participants['diagnosis'])")
        kinds.setdefault(kind, (i, label))
    if len(kinds) > 1:
        (i, first), (j, second) = kinds["text"], kinds["numbers"]
        raise ValueError(
            f"y mixes labels of text and numbers (subject {i} is {first!r}, subject {j} is "
            f"{second!r}), which cannot be sorted into classes: give labels of one kind, e.g. "
            "y.astype(str)")
    if "numbers" in kinds:
        raise ValueError(
            "Unknown label type: y holds numbers as Python objects (an array or Series of "
            "dtype object), which scikit-learn does not take as labels: convert them, e.g. "
            "y.astype(int) for whole numbers")


def _refuse_continuous_labels(y):
    """Refuse a classifier's ``y`` of continuous values (ages, scores) as scikit-learn does,
    "Unknown label type: continuous", naming a subject's value and the estimator that fits
    such a phenotype."""
    from sklearn.utils.multiclass import type_of_target

    if not type_of_target(y).startswith("continuous"):
        return
    values = np.asarray(y, dtype=float)
    fractions = np.flatnonzero(values != np.round(values))
    if not fractions.size:  # whole numbers beyond int64 (1e20): scikit-learn's message
        return
    first = int(fractions[0])
    raise ValueError(
        f"Unknown label type: continuous. y holds continuous values ({values[first]:g} for "
        f"subject {first}), not class labels: to predict them, use BrainJEPARegressor; to "
        "classify, give one label a subject (e.g. groups binned from them with pandas.cut)")


def _check_classes(classes, what):
    """``classes`` (the parameter, or the argument of ``partial_fit``, as ``what`` names it) as
    a 1-D array of labels: nested lists, a string, missing values or labels that cannot be
    sorted together had failed with Python's or NumPy's bare errors, or (NaN) given an output
    that never trains."""
    import pandas as pd

    try:
        labels = np.asarray(classes)
    except ValueError:  # ragged nested lists
        labels = np.asarray(classes, dtype=object)
    if labels.ndim != 1:
        raise ValueError(f"{what} must be a 1-D list of labels, one per output, got "
                         f"{classes!r} ({labels.ndim}-D)")
    missing = np.flatnonzero(np.asarray(pd.isna(labels.astype(object)), dtype=bool))
    if missing.size:
        raise ValueError(f"{what} {labels.tolist()} holds a missing value (NaN or None) at "
                         f"position {missing[0]}: a class is a label of y, whose subjects "
                         "all have one; remove it")
    try:
        np.unique(labels)
    except TypeError:
        kinds = sorted({type(label).__name__ for label in labels.tolist()})
        raise ValueError(f"{what} {labels.tolist()} mixes labels of types {kinds}, which "
                         "cannot be sorted together: give labels of one type") from None
    return labels

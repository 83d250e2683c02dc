"""Naming training runs, so that a saved run is resumed only by the same run.

A run's key is a digest of everything that decides its result: the settings, the data and
the seeds. :class:`~brainjepa_sk.train.Checkpoint` stores it with the state and resumes only a
state saved under the same key. A run's *lineage* is the key without the number of epochs:
the same run asked for more epochs can continue from a shorter one (:func:`find_shorter_run`).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from .._warnings import warn_user
from .callbacks import peek_training_state, read_training_state
from .runtime import expand_home, python_values

__all__ = ["find_shorter_run", "plain_setting", "run_key", "unfinished_runs"]


def run_key(settings, digests=(), arrays=()):
    """SHA-256 hex digest naming a training run.

    Parameters
    ----------
    settings : object
        Settings as JSON-serialisable values (others enter through their ``repr``), e.g.
        the estimator's parameters, the model configuration and a state-format version.
        Dict keys are sorted, so their order does not matter.
    digests : iterable of str, default=()
        Digests of the data (e.g. of the training subjects), which are not hashed again. They
        are joined without a separator, so give digests of one fixed length (e.g. SHA-256
        hexadecimal, as :func:`~brainjepa_sk.validation.subjects_digest` returns): ``("a", "bc")``
        and ``("ab", "c")`` would be one run.
    arrays : iterable of numpy.ndarray or None, default=()
        Arrays learned from the data (e.g. gradients, normalisation statistics), hashed with
        their shapes and dtypes. None marks an absent array and keeps its place: ``(a, None)``
        and ``(None, a)`` are other runs. None entries at the end add nothing (``(a, None)``
        is ``(a,)``).

    Returns
    -------
    str
        64 hexadecimal characters.
    """
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=plain_setting).encode())
    for text in digests:
        digest.update(str(text).encode())
    absent = 0
    for array in arrays:
        if array is None:
            absent += 1
            continue
        # an absent array before this one is hashed as a placeholder (no dtype string starts
        # with "N"), so that this one is not taken for it; trailing ones are not, so that keys
        # saved when every None was skipped stay the same where no array followed one
        digest.update(b"None" * absent)
        absent = 0
        array = np.ascontiguousarray(array)
        # the same bytes in another shape or dtype are other values
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def plain_setting(value):
    """A setting JSON cannot write, as :func:`run_key` counts it: a NumPy number as the Python
    number it equals, anything else as its ``repr``.

    Parameters
    ----------
    value : object
        A value ``json.dumps`` does not take.

    Returns
    -------
    object
        A value it takes.
    """
    # numpy integers and booleans as their Python values, so that n_epochs=np.int64(4) finds
    # the run of n_epochs=4 (np.float64 is a float already; np.float32(1e-3) is another number)
    return python_values(value) if isinstance(value, np.generic) else repr(value)


def unfinished_runs(folder, pattern="run-*.pt"):
    """The saved runs in ``folder`` that stopped before their last epoch.

    A run that a callback stopped on purpose (``stop_training``), which the pretrainer saves
    with ``"stopped_by_callback"`` in its ``extra``, is not one of them. Told without reading
    their tensors
    (:func:`~brainjepa_sk.train.callbacks.peek_training_state`); files that cannot be read so
    are left out.

    Parameters
    ----------
    folder : str or path-like
        Where :class:`~brainjepa_sk.train.Checkpoint` files are saved.
    pattern : str
        Glob of the state files in ``folder``; by default ``"run-*.pt"``, the pretrainer's.

    Returns
    -------
    list of (pathlib.Path, dict, dict)
        Each file, its ``extra`` and its ``{"epoch": ..., "step": ...}`` (epochs and optimizer
        steps done), for the files whose ``extra`` records an ``n_epochs`` they have not
        reached and that no callback stopped, in the order of their names.

    Raises
    ------
    TypeError
        When ``folder`` is not a str or path-like (None, a number, bytes).
    """
    found = []
    for path in sorted(expand_home(folder, "folder", "a folder's path").glob(pattern)):
        peeked = peek_training_state(path)
        if peeked is None:
            continue
        extra = peeked.get("extra") or {}
        loop = peeked["loop"] if isinstance(peeked["loop"], dict) else {}
        done = {"epoch": loop.get("epoch"), "step": loop.get("step")}
        if (isinstance(extra, dict) and isinstance(extra.get("n_epochs"), int)
                and not extra.get("stopped_by_callback")
                and isinstance(done["epoch"], int) and done["epoch"] < extra["n_epochs"]):
            found.append((path, extra, done))
    return found


def find_shorter_run(folder, lineage, n_epochs, pattern="run-*.pt"):
    """The furthest saved run of a lineage that was asked for fewer epochs.

    Parameters
    ----------
    folder : str or path-like
        Where :class:`~brainjepa_sk.train.Checkpoint` files are saved.
    lineage : str
        The run's key without its number of epochs, stored in each state's ``extra`` under
        ``"lineage"`` (with ``"n_epochs"``).
    n_epochs : int
        The epochs the run is asked for now.
    pattern : str
        Glob of the state files in ``folder``; by default ``"run-*.pt"``, the pretrainer's.

    Returns
    -------
    (pathlib.Path, dict) or None
        The file and its state (:func:`~brainjepa_sk.train.read_training_state`) with the most
        steps done (of files at the same step, the first by name), or None. Damaged files
        are skipped with a warning that names them (their lineage cannot be read, so one of
        them may have been the run to continue). The files of other runs are told apart
        without reading their tensors (:func:`~brainjepa_sk.train.callbacks.peek_training_state`).

    Raises
    ------
    TypeError
        When ``folder`` is not a str or path-like (None, a number, bytes).
    """
    best = None
    for path in sorted(expand_home(folder, "folder", "a folder's path").glob(pattern)):
        peeked = peek_training_state(path)
        if peeked is not None:
            extra = peeked.get("extra") or {}
            if extra.get("lineage") != lineage or extra.get("n_epochs", 0) >= n_epochs:
                continue  # another run: its tensors are never read
        try:
            state = read_training_state(path)
        except ValueError as error:
            warn_user(f"skipped while looking for a shorter run to continue: {error}")
            continue
        extra = state.get("extra") or {}
        if extra.get("lineage") != lineage or extra.get("n_epochs", 0) >= n_epochs:
            continue
        if best is None or state["loop"]["step"] > best[1]["loop"]["step"]:
            best = (path, state)
    return best

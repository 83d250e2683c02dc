"""Warnings that point at the user's code, however deep inside the package they are raised."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings

# held around every warnings.catch_warnings block of the package (see catch_warnings below)
_CATCH_LOCK = threading.RLock()


def _new_catch_lock():
    # a child forked while another thread held the lock would wait on it forever
    global _CATCH_LOCK
    _CATCH_LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_catch_lock)

_PACKAGE_DIRS = tuple({os.path.dirname(os.path.abspath(__file__)) + os.sep,
                       os.path.dirname(os.path.realpath(__file__)) + os.sep})


def _set_output_files():
    # scikit-learn wraps every transform of a TransformerMixin in a pass-through that sets the
    # output container: the line calling transform is the frame above it
    from sklearn.utils import _set_output

    return {_set_output.__file__, os.path.realpath(_set_output.__file__)}


def _pass_through_code():
    # scikit-learn's fit_transform, fit(X).transform(X), for the estimators that keep it: the
    # line calling fit_transform is the frame above it
    import inspect

    from sklearn.base import TransformerMixin

    return inspect.unwrap(TransformerMixin.fit_transform).__code__


def _skipped(filename, wrappers):
    return filename.startswith(_PACKAGE_DIRS) or filename in wrappers


def warn_user(message, category=UserWarning):
    """``warnings.warn`` attributed to the first caller outside this package.

    A fixed ``stacklevel`` names the right line for one call path only: the same warning
    reached through an estimator, a helper process or a pipeline would point inside the
    package. This one always names the line that called into it (or the library, such as
    scikit-learn's ``Pipeline``, that did), looking through scikit-learn's wrapper of
    ``transform`` that only sets the output container, and its ``fit_transform``, which only
    calls ``fit`` and ``transform``. Under ``torchrun``, only process 0 warns, also
    before it joins the process group: every process runs the same checks, and one warning
    per process would repeat each message.

    Parameters
    ----------
    message : str
        The warning.
    category : type, default=UserWarning
        Its class.
    """
    from .train.distributed import is_main_process  # here: train warns through this module

    if not is_main_process():
        return
    wrappers, fit_transform = _set_output_files(), _pass_through_code()
    frame, level = sys._getframe(1), 1  # level 1: the function calling warn_user
    while frame is not None and (_skipped(frame.f_code.co_filename, wrappers)
                                 or frame.f_code is fit_transform):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)  # + 1: this function's own frame


@contextlib.contextmanager
def catch_warnings(*, record=False):
    """``warnings.catch_warnings``, one block at a time across the threads of the process.

    Python's ``catch_warnings`` is not thread-safe: it saves the global warning filters on
    entry and restores them on exit, so two blocks overlapping in two threads (two threads
    calling ``transform`` on one fitted estimator) could leave a filter of one of them in
    force for the whole process, or warnings recorded into a list nobody reads. The package's
    own blocks take one lock, so they never overlap. A warning another thread raises while a
    block is active still sees that block's filters.

    Parameters
    ----------
    record : bool, default=False
        As ``warnings.catch_warnings``: yield the list the warnings of the block go to.

    Yields
    ------
    list of warnings.WarningMessage or None
        What ``warnings.catch_warnings`` yields.
    """
    with _CATCH_LOCK, warnings.catch_warnings(record=record) as caught:
        yield caught


def check_array(*args, **kwargs):
    """scikit-learn's ``check_array``, one call at a time with the package's warning blocks.

    ``check_array`` enters ``warnings.catch_warnings`` itself (to turn NumPy's ComplexWarning
    into an error): overlapping with another thread's block, of the package or of another
    ``check_array``, it restored the filters in the wrong order and left one's in force.

    Parameters
    ----------
    *args, **kwargs
        As ``sklearn.utils.check_array`` takes them.

    Returns
    -------
    object
        What ``sklearn.utils.check_array`` returns.
    """
    from sklearn.utils import check_array as sklearn_check_array  # the model layers need none

    with _CATCH_LOCK:
        return sklearn_check_array(*args, **kwargs)

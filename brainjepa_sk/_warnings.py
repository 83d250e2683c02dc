"""Warnings that point at the user's code, however deep inside the package they are raised."""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE_DIRS = tuple({os.path.dirname(os.path.abspath(__file__)) + os.sep,
                       os.path.dirname(os.path.realpath(__file__)) + os.sep})


def warn_user(message, category=UserWarning):
    """``warnings.warn`` attributed to the first caller outside this package.

    A fixed ``stacklevel`` names the right line for one call path only: the same warning
    reached through an estimator, a helper process or a pipeline would point inside the
    package. This one always names the line that called into it (or the library, such as
    scikit-learn's ``Pipeline``, that did). Under ``torchrun``, only process 0 warns, also
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
    frame, level = sys._getframe(1), 1  # level 1: the function calling warn_user
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIRS):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)  # + 1: this function's own frame

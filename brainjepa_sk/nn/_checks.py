"""The check of the counts the modules are built with (widths, depths, patch counts)."""

from __future__ import annotations

import numbers


def check_count(name, value, minimum=1):
    """Return ``value`` as an int of at least ``minimum``, or refuse it naming ``name``.

    ``int()`` would cut 2.5 to 2, take True as 1 and "3" as 3; a whole float (2.0) is refused
    too, so that every count is held to the same rule. NumPy ints are taken.

    Parameters
    ----------
    name : str
        The parameter, for the message.
    value : object
        The count given.
    minimum : int, default=1
        The smallest count accepted.

    Returns
    -------
    int
        ``value`` as a Python int.

    Raises
    ------
    ValueError
        When ``value`` is not an int (a bool is not one) or is below ``minimum``.
    """
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)

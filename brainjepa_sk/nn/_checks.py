"""The checks of the settings the modules are built with (widths, depths, patch counts, the
blocks' MLP ratio, qkv bias and stochastic depth)."""

from __future__ import annotations

import math
import numbers

import numpy as np


def type_with_article(value):
    """The name of ``value``'s type with its indefinite article, for messages: ``"a dict"``,
    ``"an OrderedDict"``, ``"an ndarray"``, ``"an SVC"`` (see :func:`with_article`)."""
    return with_article(type(value).__name__)


def with_article(words):
    """``words`` after their indefinite article, for messages: ``"a dict"``, ``"an SVC"``,
    ``"a 3-D"``, ``"an 8-D"``, ``"an 11-D"``, ``"a UserDict"``, ``"an UnboundLocalError"``.

    By how the first word is read out: a number by its name ("eight", "eleven", "eighteen",
    "eighty...", and the thousands of those); an initialism (``SVC``, ``ndarray``'s ``nd``)
    letter by letter, so by its first letter's name ("ess", "en"); any other word by its first
    sound (see :func:`_starts_with_vowel_sound`).
    """
    digits = len(words) - len(words.lstrip("0123456789"))
    if digits:
        number = int(words[:digits])
        while number >= 1000:  # 11000 is read "eleven thousand"
            number //= 1000
        vowel_sound = number in (11, 18) or str(number).startswith("8")
    elif words[:2].isupper() or words.startswith("nd"):
        vowel_sound = words[:1].upper() in "AEFHILMNORSX"
    else:
        vowel_sound = _starts_with_vowel_sound(words)
    return f"{'an' if vowel_sound else 'a'} {words}"


def _starts_with_vowel_sound(word):
    """Whether ``word`` (no number, no initialism) is read starting with a vowel sound.

    By its first letter (a letter alone by its name), except a "u" read "you" (``UserDict``,
    ``Unicode...``, ``uint8``, ``ufunc``: a "u" before one consonant and a vowel, "uni",
    "ui"), not "uh" (``Unbound...``, ``Uninitialized...``, ``unused``: the prefix "un", and
    "u" before two consonants), "eu" read "you" (``Euler``), and "one" read "won"
    (``OneHotEncoder``).
    """
    if len(word) == 1:  # a letter, read by its name
        return word.upper() in "AEFHILMNORSX"
    lower = word.lower()
    if lower.startswith("one") and (len(word) == 3 or not word[3].islower()):
        return False
    if lower.startswith("eu"):
        return False
    if not lower.startswith("u"):
        return lower[:1] in "aeiou"
    if lower.startswith(("unin", "unim")):  # uninitialized, unimplemented: "un-"
        return True
    if lower.startswith(("uni", "ui", "uu")):  # unicode, union, unit, uint8, uuid: "you"
        return False
    if lower.startswith("un"):  # unbound, unknown, unused, unordered: "un-"
        return True
    # user, usage, ufunc, utility: "you"; upper, ultra, update: "uh"
    return not (len(lower) > 2 and lower[1] not in "aeiou" and lower[2] in "aeiouy")


def check_time_patches(n_frames, patch_size):
    """Check that ``n_frames`` frames cut into whole time patches; return how many.

    The one rule for every window the model sees: the estimators check their windows with it
    before any training, the encoder checks each batch.

    Parameters
    ----------
    n_frames : int
        Window length (frames).
    patch_size : int
        Frames per time patch of the model.

    Returns
    -------
    int
        Time patches per window, ``n_frames // patch_size``.

    Raises
    ------
    ValueError
        When ``n_frames`` is 0 or not a multiple of ``patch_size``.
    """
    if n_frames % patch_size or n_frames <= 0:
        raise ValueError(
            f"n_frames={n_frames} is not a positive multiple of patch_size={patch_size} (the "
            "model's patch length): windows must cut into whole time patches"
        )
    return n_frames // patch_size


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


def check_block_settings(mlp_ratio, qkv_bias, drop_path_rate, widths=()):
    """Return the transformer blocks' settings as Python values, or refuse one naming it.

    ``float()`` would take "4" as an MLP ratio and ``bool()`` "no" as a qkv bias.

    Parameters
    ----------
    mlp_ratio : float
        MLP hidden width relative to the token width: a finite number > 0.
    qkv_bias : bool
        Bias on the qkv projections: True or False (NumPy bools are taken).
    drop_path_rate : float
        Stochastic-depth probability of the last block, in ``[0, 1)``.
    widths : tuple of int, default=()
        Token widths of the blocks: ``mlp_ratio`` must give each block's MLP a hidden unit.

    Returns
    -------
    tuple
        ``(float(mlp_ratio), bool(qkv_bias), float(drop_path_rate))``.

    Raises
    ------
    ValueError
        Naming the setting that is refused.
    """
    if not is_real(mlp_ratio) or not 0 < mlp_ratio < math.inf:
        raise ValueError(f"mlp_ratio must be a finite number > 0, got {mlp_ratio!r}")
    if widths and int(min(widths) * mlp_ratio) < 1:
        # an MLP of int(width * mlp_ratio) = 0 hidden units: blocks without a feed-forward part
        raise ValueError(
            f"mlp_ratio={mlp_ratio!r} leaves the MLP of the blocks of width {min(widths)} no "
            f"hidden unit (int({min(widths)} * mlp_ratio) = 0): use mlp_ratio >= "
            f"{1 / min(widths):g}")
    drop_path_rate = check_drop_path_rate(drop_path_rate)
    if not isinstance(qkv_bias, (bool, np.bool_)):
        raise ValueError(f"qkv_bias must be True or False, got {qkv_bias!r}")
    return float(mlp_ratio), bool(qkv_bias), drop_path_rate


def check_drop_path_rate(value, name="drop_path_rate"):
    """Return a stochastic-depth probability as a float, or refuse it naming ``name``.

    Parameters
    ----------
    value : float
        The probability: a number in ``[0, 1)`` (1 would drop every sample and divide by 0).
    name : str, default="drop_path_rate"
        The parameter, for the message.

    Returns
    -------
    float
        ``value`` as a Python float.

    Raises
    ------
    ValueError
        When ``value`` is not a number (a bool is not one) in ``[0, 1)``.
    """
    if not is_real(value) or not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def is_real(value):
    """Whether ``value`` is a real number, a bool not counted (``True`` is no ratio)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)

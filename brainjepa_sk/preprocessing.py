"""Temporal preprocessing of ROI time series: resampling, windowing, padding and scaling.

The same :class:`Preprocessor` is fitted with the model, stored in its checkpoint
(:meth:`Preprocessor.to_dict`) and applied unchanged at embedding time, so a series is always cut
and scaled the way the model saw it in training.

Order of operations for one subject ``(n_timepoints, n_regions)``:

1. resample from ``t_r`` to ``target_t_r`` (when both are given);
2. ``robust`` scaling of the whole series with the per-region median/IQR learned in ``fit``;
3. pad a series shorter than ``n_frames`` (but at least ``min_frames`` long) at the end with each
   region's mean;
4. cut windows of ``n_frames`` frames (``first``, ``center`` or ``sliding``);
5. ``global_zscore`` / ``roi_zscore`` of each window.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import numbers
import os
import sys
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly
from sklearn import get_config
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import StrOptions

from ._warnings import warn_user
from .files import FileChangedError, SubjectFiles
from .nn._checks import check_time_patches, type_with_article
from .validation import (
    POSITIVE,
    POSITIVE_INT,
    check_n_regions,
    check_parameters,
    check_rows,
    check_subject,
    not_finite_message,
    one_table_message,
)

#: dtypes of the arrays whose checks are only their shape and finiteness (not float128, whose
#: values may lie beyond float64's range).
_PLAIN_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

__all__ = [
    "NORMALIZATIONS",
    "WINDOW_STRATEGIES",
    "Preprocessor",
    "preprocessor_for_weights",
    "resample",
    "subject_lengths",
]

NORMALIZATIONS = ("global_zscore", "roi_zscore", "robust", None)
WINDOW_STRATEGIES = ("center", "first", "sliding")
#: What the Preprocessor does with a region constant within a window.
CONSTANT_REGIONS = ("keep", "zero")
#: A region whose values in a window spread over at most this fraction of their magnitude is
#: constant there: resampling a constant series leaves rounding errors of about 1e-16.
_CONSTANT_SPREAD = 1e-12
#: Unnormalised series whose typical magnitude exceeds this range, or whose spread falls
#: below it, get a warning.
UNIT_SCALE_RANGE = (1e-2, 1e2)
#: Subjects whose scale is compared with the robust statistics a checkpoint carries.
SAVED_SCALE_CHECK_SUBJECTS = 16

#: Most frames the robust statistics are learned from. Past it, subjects give evenly spaced
#: frames (see ``_sample_quotas``), so a corpus larger than memory is never concatenated.
ROBUST_SAMPLE_FRAMES = 100_000
#: Training windows of files that cannot be read a window at a time (text files, resampled
#: series) are cut in memory at once, one subject after another into one array, when they take
#: at most this many bytes (float32): reading them window by window would parse or resample
#: the whole file for every window of every epoch. Past it they are read by the loader anyway.
IN_MEMORY_WINDOW_BYTES = 2 * 2**30
# Regions whose percentiles are computed together (bounds the copy np.percentile makes).
_PERCENTILE_BLOCK = 64
_FLOAT32_MAX = float(np.finfo(np.float32).max)

# Largest denominator of the up/down resampling ratio: bounds the polyphase filter's cost while
# keeping the effective TR within a fraction of a percent of the requested one.
_MAX_DENOMINATOR = 64
#: Longest TR (seconds) taken without a warning: fMRI TRs are usually 0.3 to 3 s, rarely over
#: 10 s; one of hundreds or thousands is most likely in milliseconds.
LONGEST_PLAUSIBLE_T_R = 20.0


def _is_plain(x, n_regions=None):
    """Whether ``x`` is a plain 2-D float array of finite values (of ``n_regions`` columns
    when given), which needs no other check."""
    return (type(x) in (np.ndarray, np.memmap) and x.ndim == 2 and bool(x.size)
            and x.dtype in _PLAIN_FLOATS and n_regions in (None, x.shape[1])
            and bool(np.isfinite(x).all()))


class _CheckedSubject:
    """A subject that passed its check but is not a plain float array (a DataFrame, an
    integer array, nested lists): kept as given, with its checked shape, and converted again
    where it is used, so that float64 copies of such subjects are not all held at once."""

    def __init__(self, i, subject, shape, input_name):
        self.i, self.subject, self.shape, self.input_name = i, subject, shape, input_name

    def __len__(self):
        return self.shape[0]

    def as_float64(self):
        return Preprocessor._as_array(self.i, self.subject, self.shape[1],
                                      input_name=self.input_name)


def _as_float64(x):
    """A subject of :meth:`Preprocessor._as_arrays` as a float64 array."""
    return x.as_float64() if isinstance(x, _CheckedSubject) else np.asarray(x, dtype=np.float64)


class _BeyondFloat32Error(ValueError):
    """Preprocessed values too large for float32, the model's arithmetic (rescale the series,
    or normalize them), or not finite in the input (unchecked under ``assume_finite``)."""


_PARAM_NAMES = (
    "n_frames",
    "t_r",
    "target_t_r",
    "window",
    "stride",
    "min_frames",
    "normalization",
    "eps",
    "constant_regions",
)
_FITTED_NAMES = ("median_", "iqr_", "n_regions_")


def _input_name(subjects):
    """How the subjects' messages name them: validated subjects (files, or arrays converted
    when indexed) are an estimator's ``X``, named as the estimators name it; anything else is
    the Preprocessor's own input, ``subjects``."""
    return "X" if getattr(subjects, "n_timepoints", None) is not None else "subjects"


def _in_file(subjects, subject, error, checked):
    """``error``, raised for subject ``subject``, as it is raised: naming the file where
    ``subjects`` are files (:class:`~brainjepa_sk.files.SubjectFiles`), as changed after
    ``checked`` unless the values themselves are the cause or it names the change already."""
    paths = getattr(subjects, "paths", None)
    if paths is None or isinstance(error, FileChangedError):  # the latter names the file
        return error
    if isinstance(error, _BeyondFloat32Error):  # the values themselves, not a change
        named = _BeyondFloat32Error(f"{paths[subject]}: {error}")
    else:
        named = ValueError(f"{paths[subject]}: {error}; the file changed after {checked}")
    named.__cause__ = error
    return named


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_t_r(value, name):
    """Return ``value`` as a float (or None), raising for non-positive or non-finite TRs."""
    if value is None:
        return None
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (is_number and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of seconds or None, got {value!r}")
    return float(value)


def _resampling_ratio(t_r, target_t_r):
    """``(up, down)`` for :func:`scipy.signal.resample_poly`, or None when nothing is to be done."""
    t_r = _check_t_r(t_r, "t_r")
    target_t_r = _check_t_r(target_t_r, "target_t_r")
    if t_r is None or target_t_r is None or t_r == target_t_r:
        return None
    # New sampling rate / old one = (1 / target_t_r) / (1 / t_r) = t_r / target_t_r.
    exact = t_r / target_t_r
    ratio = Fraction(exact).limit_denominator(_MAX_DENOMINATOR)
    # upsampling is bounded as downsampling is: a TR given in milliseconds (720 for 0.72 s)
    # would otherwise multiply every series' length by hundreds. Beyond 1/64 and 64 the ratio
    # is refused as such: limit_denominator rounds one down to 1/128 up to 1/64 (1/100 would
    # have kept 1.56 times the frames asked for), and one up to 64 + 1/128 down to 64; 1e-9
    # spares float rounding of 1/64 and 64 themselves
    too_small = exact * _MAX_DENOMINATOR < 1 - 1e-9
    if too_small or exact > _MAX_DENOMINATOR * (1 + 1e-9):
        bound = (f"smaller than 1/{_MAX_DENOMINATOR}" if too_small
                 else f"larger than {_MAX_DENOMINATOR}")
        raise ValueError(
            f"cannot resample from TR {t_r} s to TR {target_t_r} s: the ratio is {bound} "
            "(TRs are in seconds: is one of them in milliseconds?)"
        )
    if ratio == 1:
        return None
    return ratio.numerator, ratio.denominator


def _same_sampling(t_r, target_t_r):
    """Whether :func:`resample` leaves series at ``t_r`` as they are at ``target_t_r`` (the
    ratio of the two TRs is 1 within its denominators); False for TRs it refuses."""
    try:
        return _resampling_ratio(t_r, target_t_r) is None
    except ValueError:
        return False


def warn_ignored_stride(stride, window):
    """Warn that a ``stride`` the user gave is not used by a ``window`` other than sliding.

    Parameters
    ----------
    stride : int or None
        The stride the user gave (None: not given, nothing to say).
    window : str
        The window strategy chosen (``"auto"`` resolved).
    """
    if stride is not None and window != "sliding":
        warn_user(f"stride={stride} is ignored: window={window!r} takes one window per "
                  "subject; set window='sliding' for windows every stride frames")


def warn_long_t_r(**trs):
    """Warn of each TR the user gave that is longer than fMRI's (given in milliseconds?).

    Not refused: such a TR may be deliberate for other data than fMRI.

    Parameters
    ----------
    **trs : float or None
        The TRs the user gave, by the name of their parameter (``t_r=2000``); None, and
        anything but a number (the parameter checks name it), is not given.
    """
    for name, value in trs.items():
        is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if is_number and math.isfinite(value) and value > LONGEST_PLAUSIBLE_T_R:
            warn_user(f"{name}={value:g} s is long for fMRI: TRs are in seconds "
                      f"({value:g} ms is {round(float(value) / 1000, 6)!r} s)")


def resample(x, t_r, target_t_r):
    """Resample time series from one repetition time (TR) to another.

    Uses :func:`scipy.signal.resample_poly`, whose polyphase filter is anti-aliased, with the
    up/down factors of ``fractions.Fraction(t_r / target_t_r).limit_denominator(64)``. The first
    output frame is at the time of the first input frame.

    Parameters
    ----------
    x : array-like or pandas.DataFrame of shape (n_timepoints, n_regions)
        Time series, time on the first axis.
    t_r : float or None
        Repetition time of ``x`` in seconds.
    target_t_r : float or None
        Repetition time wanted, in seconds.

    Returns
    -------
    numpy.ndarray or array-like
        The resampled series, ``ceil(n_timepoints * up / down)`` frames long. A DataFrame gives
        a DataFrame with the same columns (the region names that the estimators check) and a
        new default index. When either TR is None, or both give the same ratio of 1, ``x``
        itself is returned (not a copy).

    Raises
    ------
    ValueError
        When a TR is not a positive finite number, or ``t_r / target_t_r`` is below 1/64 or
        above 64 (a TR given in milliseconds, for instance); when ``x`` is not one subject's
        series (a 3-D stack of subjects, which would be resampled across subjects), or holds
        complex, NaN or infinite values (which the filter spreads over the whole region).
    TypeError
        When ``x`` holds booleans, text or other objects that are not numbers.

    Notes
    -----
    The signal is padded with its mean (``padtype="mean"``) for the filter rather than with zeros:
    BOLD series are often not demeaned, and zero padding would make the first and last frames ring
    towards zero.
    """
    ratio = _resampling_ratio(t_r, target_t_r)
    _check_series_shape(x)
    if ratio is None:
        return x
    up, down = ratio
    resampled = resample_poly(_series_values(x), up, down, axis=0, padtype="mean")
    pandas = sys.modules.get("pandas")  # not imported: x cannot be a DataFrame
    if pandas is not None and isinstance(x, pandas.DataFrame):
        # keep the region names: without them the estimators could no longer check the
        # columns' order against fit's, while the subjects left at the target TR keep theirs
        return pandas.DataFrame(resampled, columns=x.columns)
    return resampled


def _resample_subject(i, x, t_r, target_t_r):
    """:func:`resample` of subject ``i`` of an estimator's ``X``: NaN let through by
    scikit-learn's ``assume_finite=True`` is named for the subject (resample's message names
    an ``x`` the caller never passed)."""
    try:
        return resample(x, t_r, target_t_r)
    except ValueError:
        if not np.isfinite(x).all():  # checked here only on the way to the error
            raise ValueError(not_finite_message(i)) from None
        raise


def _check_series_shape(x):
    """Refuse what :func:`resample` cannot take as one subject's series, by its shape."""
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"x must be one subject's time series, an array (n_timepoints, "
                        f"n_regions); got {type(x).__name__}")
    try:
        ndim = np.ndim(x)
    except ValueError:  # NumPy's "inhomogeneous shape"
        raise ValueError("x must be one subject's time series, an array (n_timepoints, "
                         "n_regions); got rows of different lengths") from None
    if ndim == 3:
        raise ValueError(
            f"x has 3 dimensions (shape {np.shape(x)}), but resample takes one subject's "
            "series (n_timepoints, n_regions): time is its first axis, which in a stack of "
            "subjects counts the subjects. Resample each subject: [resample(x, t_r, "
            "target_t_r) for x in X]")
    if ndim not in (1, 2):
        raise ValueError(f"x must be one subject's time series, (n_timepoints, n_regions) or "
                         f"(n_timepoints,); got {ndim} dimension(s) (shape {np.shape(x)})")


def _series_values(x):
    """``x`` as float64 values for :func:`resample`, refusing those that are no signal."""
    values = x.to_numpy() if hasattr(x, "to_numpy") else np.asarray(x)
    if values.dtype.kind == "b":
        raise TypeError("x holds booleans, not signal values: resample a time series")
    if values.dtype.kind == "c":
        raise ValueError("x holds complex numbers: pass the real part or the magnitude "
                         "(x.real or np.abs(x))")
    try:
        values = values.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"x is not numeric ({error}): resample a time series of numbers") from None
    bad = ~np.isfinite(values)
    if bad.any():
        timepoint, *region = np.argwhere(bad)[0]
        where = f"timepoint {timepoint}" + (f", region {region[0]}" if region else "")
        raise ValueError(
            f"x holds {int(bad.sum())} NaN or infinite value(s), first at {where}: the filter "
            "would spread them over the whole region; interpolate them or drop those timepoints "
            "first")
    return values


def _sample_quotas(lengths, budget):
    """Frames each subject gives to the robust statistics' sample of at most ``budget`` frames.

    Every frame when the subjects have ``budget`` frames or fewer in all. Otherwise every
    subject gives ``min(length, q)`` frames, with ``q`` the largest share that keeps the total
    within ``budget``: short subjects give all their frames, long ones the same number each
    (at least one frame a subject, should there be more subjects than ``budget``).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.sum() <= budget:
        return lengths
    low, high = 1, int(lengths.max())
    while low < high:  # the largest q with sum(min(lengths, q)) <= budget
        middle = (low + high + 1) // 2
        if np.minimum(lengths, middle).sum() <= budget:
            low = middle
        else:
            high = middle - 1
    return np.minimum(lengths, low)


def _names_regions(subjects, names=None):
    """Whether ``names`` (the subjects' column names recorded before they were converted),
    else the first subject's columns, are region names (a DataFrame's string columns, a
    file's header of names that are not frame numbers), which say that the last axis holds
    the regions; read from no file."""
    names = names if names is not None else getattr(subjects, "feature_names", None)
    if names is None and getattr(subjects, "paths", None) is None and getattr(
            subjects, "n_timepoints", None) is None and len(subjects):
        names = getattr(subjects[0], "columns", None)
    return names is not None and any(
        isinstance(name, str) and not name.strip().isdigit() for name in names)


def _region_count(subjects, i):
    """Subject ``i``'s number of regions (last axis) without reading a file, or None."""
    n_regions = getattr(subjects, "n_regions", None)
    if n_regions is not None:
        return int(n_regions)
    if getattr(subjects, "paths", None) is not None:
        return None
    if getattr(subjects, "n_timepoints", None) is not None:
        # a sequence that knows its lengths reads a subject when indexed (subject_rows of
        # files): the view's subjects, if they say, else unknown
        inner, rows = getattr(subjects, "subjects", None), getattr(subjects, "rows", None)
        if inner is not None and rows is not None:
            return _region_count(inner, rows[i])
        return None
    try:
        shape = np.shape(subjects[i])
    except (ValueError, TypeError, IndexError):
        return None
    return int(shape[-1]) if len(shape) == 2 else None


def _checked_files(subjects):
    """The :class:`~brainjepa_sk.files.SubjectFiles` that ``subjects`` are, or are a view of
    (:func:`~brainjepa_sk.validation.subject_rows`), and the index in it of each subject;
    ``(None, None)`` for anything else."""
    rows = range(len(subjects))
    while not isinstance(subjects, SubjectFiles):
        inner, view_rows = getattr(subjects, "subjects", None), getattr(subjects, "rows", None)
        if inner is None or view_rows is None:
            return None, None
        subjects, rows = inner, [view_rows[i] for i in rows]
    return subjects, rows


#: What a Preprocessor given paths is told.
_ARRAYS_ONLY = ("a Preprocessor takes arrays; read each file with "
                "brainjepa_sk.files.read_subject_file (the estimators take the files "
                "themselves)")


def _iterable(value):
    """Whether ``iter(value)`` works: by ``__iter__``, or by index for a sequence that has
    ``__getitem__`` alone."""
    try:
        iter(value)
    except TypeError:
        return False
    return True


def subject_lengths(subjects):
    """Each subject's number of frames, without reading files.

    Parameters
    ----------
    subjects : sequence of array-like
        Arrays, or a sequence with an ``n_timepoints`` attribute (e.g.
        :class:`~brainjepa_sk.files.SubjectFiles`), which is used as it is.

    Returns
    -------
    list of int
        The number of rows of each subject; 0 for what is not an array (the checks name it).

    Raises
    ------
    TypeError
        When ``subjects`` is a path, a number or None, not a sequence of subjects (a path's
        characters had been counted as subjects of 0 rows).
    ValueError
        When ``subjects`` is one 2-D table (its rows had been counted as subjects).
    """
    counts = getattr(subjects, "n_timepoints", None)
    if counts is not None:
        return [int(n) for n in counts]
    if (subjects is None or isinstance(subjects, (str, bytes, os.PathLike))
            or not _iterable(subjects)):  # a number: "'int' object is not iterable"
        raise TypeError(
            f"subjects must be a sequence of (n_timepoints, n_regions) arrays, got "
            f"{type(subjects).__name__}; files are counted once checked: "
            "brainjepa_sk.validation.validate_subjects(paths, lazy=True).n_timepoints")
    if hasattr(subjects, "columns") or getattr(subjects, "ndim", None) == 2:
        raise ValueError(one_table_message(subjects, "subjects"))
    rows = []
    for subject in subjects:
        try:
            shape = np.shape(subject)
        except ValueError:  # ragged nested lists
            shape = ()
        rows.append(int(shape[0]) if shape else 0)
    return rows


class Preprocessor:
    """Resample, window, pad and scale subjects' ROI time series for the model.

    Parameters
    ----------
    n_frames : int
        Frames per window fed to the model (F).
    t_r : float, optional
        Repetition time of the input, in seconds.
    target_t_r : float, optional
        Repetition time of the model, in seconds. Series are resampled only when both ``t_r`` and
        ``target_t_r`` are given.
    window : {"center", "first", "sliding"}, default="center"
        ``"first"``: frames ``[0, F)``. ``"center"``: the middle F frames, starting at
        ``(n_timepoints - F) // 2``. ``"sliding"``: windows of F frames every ``stride`` frames
        from frame 0; when the stride does not land on the end of the series, one more window is
        aligned to its end, so every frame is in at least one window.
    stride : int, optional
        Step between sliding windows, at most ``n_frames``; defaults to ``n_frames``. Ignored by
        the other strategies.
    min_frames : int, optional
        Shortest series (after resampling) accepted. A series shorter than ``n_frames`` but at
        least ``min_frames`` long is padded at its end with each region's mean; a shorter one is
        an error. Defaults to ``max(1, n_frames // 2)``.
    normalization : {"global_zscore", "roi_zscore", "robust", None}, default="global_zscore"
        ``"global_zscore"``: each window minus the mean of all its values, over their standard
        deviation. ``"roi_zscore"``: the same per region, over time, within each window.
        ``"robust"``: per region, ``(x - median) / IQR`` with the median and interquartile range
        learned in :meth:`fit` from the training subjects' frames (after resampling: all of them
        up to ``ROBUST_SAMPLE_FRAMES``, else an evenly spaced sample of that many), applied to
        the whole series before windowing. None: values are left as they are.
    eps : float, default=1e-8
        Smallest scale divided by, so constant windows (or regions) give zeros rather than NaN.
    constant_regions : {"keep", "zero"}, default="keep"
        ``"keep"``: a region constant within a window is scaled as the others are (with
        ``"global_zscore"`` its value, say the 0 a masker writes outside the field of view,
        shifts and shrinks every other region of the window). ``"zero"``: it is 0 in that
        window after normalization (whatever it was before), and ``"global_zscore"`` takes its
        mean and standard deviation over the other regions only, so that the other regions
        come out as if the region were absent. For a region with no signal (outside the
        field of view) that a model's fixed atlas still needs.

    Attributes
    ----------
    median_ : numpy.ndarray of shape (n_regions,) or None
        Per-region median learned in :meth:`fit` (``normalization="robust"`` only).
    iqr_ : numpy.ndarray of shape (n_regions,) or None
        Per-region interquartile range (75th minus 25th percentile) learned in :meth:`fit`
        (``normalization="robust"`` only). Where it is zero, ``1.349 * std`` of the region
        (the IQR of a normal distribution with that spread) or 1 is used instead.
    n_regions_ : int
        Regions seen in :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> subjects = [rng.standard_normal((300, 10)), rng.standard_normal((280, 10))]
    >>> prep = Preprocessor(80, t_r=0.735, target_t_r=2.205, window="sliding")
    >>> windows, subject_index = prep.fit_transform(subjects)
    >>> windows.shape, subject_index.tolist()
    ((4, 80, 10), [0, 0, 1, 1])
    """

    # what a Preprocessor pickled before the option existed behaves as (its __dict__ lacks it)
    constant_regions = "keep"

    def __init__(
        self,
        n_frames,
        *,
        t_r=None,
        target_t_r=None,
        window="center",
        stride=None,
        min_frames=None,
        normalization="global_zscore",
        eps=1e-8,
        constant_regions="keep",
    ):
        self.n_frames = n_frames
        self.t_r = t_r
        self.target_t_r = target_t_r
        self.window = window
        self.stride = stride
        self.min_frames = min_frames
        self.normalization = normalization
        self.eps = eps
        self.constant_regions = constant_regions

    # ------------------------------------------------------------------ parameters

    _parameter_constraints = {
        "n_frames": POSITIVE_INT,
        "t_r": [*POSITIVE, None],
        "target_t_r": [*POSITIVE, None],
        "window": [StrOptions(set(WINDOW_STRATEGIES))],
        "stride": [*POSITIVE_INT, None],
        "min_frames": [*POSITIVE_INT, None],
        "normalization": [StrOptions({name for name in NORMALIZATIONS if name}), None],
        "eps": POSITIVE,
        "constant_regions": [StrOptions(set(CONSTANT_REGIONS))],
    }

    def _validate_params(self):
        check_parameters(self)
        _resampling_ratio(self.t_r, self.target_t_r)
        if self.window == "sliding" and self.stride is not None and self.stride > self.n_frames:
            raise ValueError(
                f"stride={self.stride} is longer than a window (n_frames={self.n_frames}): the "
                "frames between windows would never be seen; use stride <= n_frames")
        if self.min_frames is not None and self.min_frames > self.n_frames:
            raise ValueError(
                f"min_frames={self.min_frames} is longer than a window (n_frames="
                f"{self.n_frames}): use min_frames <= n_frames, or None"
            )

    @property
    def _min_frames(self):
        # n_frames // 2 is 0 for n_frames=1; a series needs at least one frame.
        return self.min_frames if self.min_frames is not None else max(1, self.n_frames // 2)

    @property
    def _stride(self):
        return self.stride if self.stride is not None else self.n_frames

    # ------------------------------------------------------------------ steps

    @staticmethod
    def _check_subjects(subjects):
        """Refuse what is no sequence of subjects (nothing, a path, a number, one subject's
        table), an empty one, and a list of paths."""
        if isinstance(subjects, (str, bytes, os.PathLike)):
            raise ValueError(
                f"subjects must be a list of (n_timepoints, n_regions) arrays, got a path "
                f"({subjects!r}): {_ARRAYS_ONLY}")
        if subjects is None or not hasattr(subjects, "__len__"):
            # len() of a number failed with "object of type 'int' has no len()"
            got = "None" if subjects is None else type_with_article(subjects)
            raise ValueError(
                f"subjects must be a list of (n_timepoints, n_regions) arrays, got {got}")
        if hasattr(subjects, "columns") or getattr(subjects, "ndim", None) == 2:
            # its rows (a DataFrame's column names) would be taken for the subjects
            raise ValueError(one_table_message(subjects, "subjects"))
        if not len(subjects):
            raise ValueError("subjects is empty: expected at least one subject")
        if isinstance(subjects, (list, tuple)):  # (a lazy sequence would read its files)
            for index, subject in enumerate(subjects):
                if isinstance(subject, (str, bytes, os.PathLike)):
                    # its characters had been taken for text values of the series
                    raise ValueError(f"subjects[{index}] is a path ({subject!r}), not an "
                                     f"array: {_ARRAYS_ONLY}")

    @staticmethod
    def _as_arrays(subjects):
        """The subjects checked, with the shape checks transform relies on, each as given, so
        that a corpus is not copied all at once (the caller converts one subject at a time,
        :func:`_as_float64`): a plain float array itself, any other subject as a
        :class:`_CheckedSubject`, its float64 copy dropped once checked."""
        Preprocessor._check_subjects(subjects)
        arrays, input_name = [], _input_name(subjects)
        for i, x in enumerate(subjects):
            n_regions = arrays[0].shape[1] if arrays else None
            if not _is_plain(x, n_regions):
                shape = Preprocessor._as_array(i, x, n_regions, input_name=input_name).shape
                x = _CheckedSubject(i, x, shape, input_name)
            arrays.append(x)
        return arrays

    @staticmethod
    def _as_array(i, x, n_regions=None, first_frame=None, input_name="subjects"):
        # A plain float array of finite values needs no more checks: this skips
        # scikit-learn's check_array, whose fixed cost (about 0.2 ms) is paid by every
        # streamed window. Anything else takes the one check, and gets its messages.
        if _is_plain(x, n_regions):
            return np.asarray(x, dtype=np.float64)
        # the estimators' check of a subject, taking one region and constant signals
        return check_subject(i, x, None, n_regions, expected=None, name=None, min_timepoints=1,
                             dtype=np.float64, allow_constant=True, min_regions=1,
                             first_frame=first_frame, input_name=input_name)

    def _robust_scale(self, x):
        return (x - self.median_) / np.maximum(self.iqr_, self.eps)

    def _pad(self, x, i, n_input):
        n_timepoints = x.shape[0]
        if n_timepoints >= self.n_frames:
            return x
        if n_timepoints < self._min_frames:
            raise ValueError(self._too_short_message(f"subject {i}", n_timepoints, n_input,
                                                     x.shape[1]))
        fill = np.broadcast_to(x.mean(axis=0), (self.n_frames - n_timepoints, x.shape[1]))
        return np.concatenate([x, fill], axis=0)

    def _too_short_message(self, subject, n_resampled, n_input, n_regions=None,
                           refit=False, others=None, one_length=True, window_cure=None):
        """Why ``subject`` is refused as too short, and the cures; ``others``: the other
        subjects too short, as ``(index, resampled length)`` pairs, counted and named too, so
        that they can be left out at once rather than met one error at a time;
        ``one_length``: whether every subject checked has the same number of frames;
        ``window_cure``: for a caller whose ``n_frames`` is the user's choice, a function
        of the shortest length giving the shorter windows to offer (``"n_frames=64 or
        less"``), or None when none fits."""
        # the frames as read, and as resampled where they were; fewer frames than regions is
        # also what a (n_regions, n_timepoints) array looks like, for which padding is no cure
        frames = (f"{n_resampled} frames"
                  if _resampling_ratio(self.t_r, self.target_t_r) is None else
                  f"{n_resampled} frames after resampling ({n_input} frames at "
                  f"t_r={self.t_r}, target_t_r={self.target_t_r})")
        others = others or []
        shortest = min([n_resampled, *(length for _, length in others)])
        if refit:
            # an estimator's predictions use the preprocessing of its fit: its min_frames set
            # afterwards is not applied (only warned of), so the cure is a new fit
            cure = (f", or fit the estimator with min_frames={shortest} or less to have "
                    f"{'them' if others else 'it'} padded (new series are preprocessed as in "
                    "fit, by its preprocessor_)")
        else:
            cure = (f", or pass min_frames={shortest} or less to have "
                    f"{'them' if others else 'it'} padded")
        cure = cure if shortest >= 1 else ""
        shorter_windows = window_cure(shortest) if window_cure is not None else None
        if shorter_windows:
            fill = "they fill" if others else "it fills"
            cure += f", or pass {shorter_windows} for windows {fill}"
        also = ""
        if others:
            named = ", ".join(f"subject {i} ({length})" for i, length in others[:10])
            also = (f"; so are {len(others)} more, with their frames: {named}"
                    f"{', ...' if len(others) > 10 else ''}")
        return (
            f"{subject} is too short: {frames}{also}; at least min_frames={self._min_frames} are "
            f"needed (windows have n_frames={self.n_frames} frames; series between the two are "
            f"padded with region means): leave {'them' if others else 'the subject'} out{cure}"
            + (f". It has more regions (last axis: {n_regions}) than timepoints ({n_input}): "
               "if it is stored (n_regions, n_timepoints), pass its transpose (x.T); every "
               "subject must be (n_timepoints, n_regions)"
               if self._looks_transposed(n_input, n_regions, one_length) else "")
        )

    def _looks_transposed(self, n_input, n_regions, one_length):
        """Whether a subject too short, of ``n_input`` frames and ``n_regions`` regions, is
        plausibly stored (n_regions, n_timepoints).

        More regions than frames is also a short scan on a large atlas (120 frames of 200
        regions), so the rule asks for more: where the regions the preprocessing was fitted
        with are known, the frames must be that many (transposed, the subject would have
        them); where they are not, transposed the subject must fill a whole window (else
        transposing is no cure either), and every subject must have one frame count (a
        transposed corpus reads its atlas size as every subject's length; transposed scans of
        several lengths are refused by the region check first).
        """
        if n_regions is None or not 0 < n_input < n_regions:
            return False
        fitted = getattr(self, "n_regions_", None)
        if fitted is not None:
            return n_input == fitted
        return one_length and self.resampled_length(n_regions) >= self.n_frames

    def check_lengths(self, subjects, window_cure=None, region_names=None):
        """Check that every subject is long enough for a window, without reading any.

        Parameters
        ----------
        subjects : sequence of array-like
            E.g. a :class:`~brainjepa_sk.files.SubjectFiles` (lengths from the file headers).
        window_cure : callable or None, default=None
            For a caller whose ``n_frames`` is the user's choice: a function of the shortest
            length giving the shorter windows to offer (``"n_frames=64 or less"``), or None
            when none fits.
        region_names : array-like of str or None, default=None
            The subjects' column names where they were converted to arrays (an estimator's
            ``feature_names_in_``): region names say the last axis holds the regions, and
            the subjects are not warned of as stored (n_regions, n_timepoints).

        Raises
        ------
        ValueError
            Naming the first subject too short (and its file), with the lengths involved, and
            the others too short with their lengths (the first ten).

        Warns
        -----
        UserWarning
            Where every subject has one length, is padded, and looks stored (n_regions,
            n_timepoints) (see the user guide's data page).
        """
        self._validate_params()
        self._check_lengths(subjects, range(len(subjects)), window_cure=window_cure)
        self._warn_of_a_transposed_corpus(subjects, region_names)

    def _warn_of_a_transposed_corpus(self, subjects, region_names=None):
        """Warn where every subject is long enough but padded, and looks stored (n_regions,
        n_timepoints) by the rule of :meth:`_looks_transposed`: a transposed corpus of scans
        longer than its atlas is large (200 frames of 100 regions) reads as short scans of
        one length on a large atlas, padded, without a word. Scans longer than a window are
        not warned of: they are short scans on a large atlas as often (300 frames of
        Schaefer-400); nor are subjects whose columns name their regions (150 frames of
        Schaefer-400 as DataFrames)."""
        lengths = subject_lengths(subjects)
        if not lengths or len(set(lengths)) != 1 or _names_regions(subjects, region_names):
            return
        n_input, n_regions = int(lengths[0]), _region_count(subjects, 0)
        n_resampled = self.resampled_length(n_input)
        if (n_resampled < self.n_frames
                and self._looks_transposed(n_input, n_regions, one_length=True)):
            # the frames padded are the resampled ones (300 at t_r=0.8 are 120 at 2.0)
            resampled = ("" if _resampling_ratio(self.t_r, self.target_t_r) is None else
                         f" ({n_resampled} frames after resampling: {n_input} frames at "
                         f"t_r={self.t_r}, target_t_r={self.target_t_r})")
            warn_user(
                f"every subject has {n_input} timepoints, fewer than its {n_regions} regions "
                f"(last axis), and is padded to windows of n_frames={self.n_frames}"
                f"{resampled}: if the subjects are stored (n_regions, n_timepoints), pass "
                "their transposes ([x.T for x in X]), which fill whole windows; every subject "
                "must be (n_timepoints, n_regions)")

    def _check_lengths(self, subjects, rows, refit=False, window_cure=None):
        """:meth:`check_lengths` of the subjects ``rows`` (named by their index in
        ``subjects``); ``refit``: the preprocessing is an estimator's, fitted, and a new fit
        is the way to another ``min_frames``; ``window_cure``: as in
        :meth:`_too_short_message`."""
        paths = getattr(subjects, "paths", None)
        lengths = subject_lengths(subjects)
        short = [(i, self.resampled_length(lengths[i])) for i in rows
                 if self.resampled_length(lengths[i]) < self._min_frames]
        if short:
            (i, length), others = short[0], short[1:]
            name = f"subject {i}" + ("" if paths is None else f" ({paths[i]})")
            raise ValueError(self._too_short_message(
                name, length, lengths[i], _region_count(subjects, i), refit=refit,
                others=others, one_length=len({int(lengths[k]) for k in rows}) == 1,
                window_cure=window_cure))

    def _window_starts(self, n_timepoints):
        last = n_timepoints - self.n_frames
        if self.window == "first":
            return np.array([0])
        if self.window == "center":
            return np.array([last // 2])
        starts = np.arange(0, last + 1, self._stride)
        if starts[-1] != last:
            starts = np.append(starts, last)
        return starts

    def _normalize_windows(self, windows):
        """Per-window z-scoring of ``(n_windows, n_frames, n_regions)``; with
        ``constant_regions="zero"``, the regions constant within a window 0 in it."""
        constant = None
        if self.constant_regions == "zero":
            spread = np.ptp(windows, axis=1, keepdims=True)
            constant = spread <= _CONSTANT_SPREAD * np.abs(windows).max(axis=1, keepdims=True)
        if self.normalization in ("global_zscore", "roi_zscore"):
            axes = (1, 2) if self.normalization == "global_zscore" else 1
            signal = True  # the statistics are over every value of the window (or region)
            if (self.normalization == "global_zscore" and constant is not None
                    and constant.any()):
                # over the other regions only, as if the constant ones were absent; a window
                # whose regions are all constant takes them all (it is zeroed below, and no
                # value at all would give NaN). A mask only then: NumPy sums under an all-True
                # one in another order than under where=True, changing the last bits
                signal = ~constant | constant.all(axis=2, keepdims=True)
            mean = windows.mean(axis=axes, keepdims=True, where=signal)
            std = windows.std(axis=axes, keepdims=True, where=signal)
            windows = (windows - mean) / np.maximum(std, self.eps)
        if constant is not None and constant.any():
            windows = np.where(constant, 0.0, windows)
        return windows

    # ------------------------------------------------------------------ API

    def fit(self, subjects):
        """Check the parameters and learn the robust-scaling statistics.

        Parameters
        ----------
        subjects : list of array-like of shape (n_timepoints, n_regions)
            Training subjects; lengths may differ.

        Returns
        -------
        Preprocessor
            This instance, fitted: ``n_regions_`` is set, and ``median_`` / ``iqr_`` when
            ``normalization="robust"`` (None otherwise).

        Notes
        -----
        ``"global_zscore"`` and ``"roi_zscore"`` learn nothing from the values: checked files
        (a :class:`~brainjepa_sk.files.SubjectFiles`, as the estimators' ``fit`` has them)
        unchanged since their check are not read again (their region count is known). A file
        changed since is read, to raise as a read of it does, and all are read where the
        series are resampled under scikit-learn's ``assume_finite=True``, or were checked
        under it and are fitted outside it (NaN let through the check is refused here).
        """
        self._validate_params()
        self._check_subjects(subjects)
        n_regions = self._regions_without_reading(subjects)
        if n_regions is not None:
            self.n_regions_, self.median_, self.iqr_ = n_regions, None, None
            return self
        # One subject at a time: ``subjects`` may read each from its file when indexed.
        n_regions, input_name = None, _input_name(subjects)

        def resampled():
            nonlocal n_regions
            for i in range(len(subjects)):
                x = self._as_array(i, subjects[i], n_regions, input_name=input_name)
                n_regions = x.shape[1]
                yield _resample_subject(i, x, self.t_r, self.target_t_r)

        lengths = [self.resampled_length(n) for n in subject_lengths(subjects)]
        self._fit_resampled(resampled(), lengths)
        return self

    def _regions_without_reading(self, subjects):
        """The region count that :meth:`fit` learns, taken from checked files without
        reading them; None where fit reads ``subjects``.

        Fit reads the subjects where their values make a difference: the robust statistics,
        the scale warning of None, and the errors of a read that the files' check cannot
        have raised:

        - a file changed since its check (its stamp), gone or unreadable since: such a file
          is read here, as fit reads it, and raises the read's error
          (:class:`~brainjepa_sk.files.FileChangedError`, ``OSError``);
        - NaN or infinite values, which scikit-learn's ``assume_finite=True`` lets through
          the check and which resampling refuses, naming the subject: fit reads every
          subject then (without the read, the transform that meets them would blame a change
          of the file); so it does for files checked under ``assume_finite=True`` when it
          is False now (the read refuses NaN).

        Subjects that are no checked files (arrays given to the Preprocessor itself, or the
        estimators' checked arrays, converted in memory), and files without a stamp of their
        check (no regular file then, or checked by an older version), are read as before.
        """
        if self.normalization not in ("global_zscore", "roi_zscore"):
            return None
        if (_resampling_ratio(self.t_r, self.target_t_r) is not None
                and get_config()["assume_finite"]):
            return None
        files, rows = _checked_files(subjects)
        if files is None or (not files.checked_finite and not get_config()["assume_finite"]):
            # checked under assume_finite=True, fitted outside it: NaN is refused here
            return None
        if not files._stamped(rows):
            return None  # a file without a stamp may read otherwise unnoticed: read them all
        # read as fit reads it: it raises, or gives the series checked (touched)
        files._read_changed(rows)
        return files.n_regions

    def _fit_resampled(self, resampled, lengths):
        """Learn the statistics from an iterable of resampled series of the given lengths,
        taking evenly spaced frames from each (:func:`_sample_quotas`)."""
        quotas = _sample_quotas(lengths, ROBUST_SAMPLE_FRAMES)
        frames, filled, unit_rows, not_finite = None, 0, 0, None
        for i, x in enumerate(resampled):
            if len(x) > quotas[i]:
                x = x[np.linspace(0, len(x) - 1, quotas[i]).round().astype(np.int64)]
            if not_finite is None and not np.isfinite(x).all():
                not_finite = i
            if frames is None:
                # room for the whole sample; the pages are only used as it fills
                frames = np.empty((int(quotas.sum()), x.shape[1]))
            frames[filled : filled + len(x)] = x
            filled += len(x)
            if i < 50:  # the scale warning looks at the first 50 subjects
                unit_rows = filled
        frames = frames[:filled]
        self.n_regions_ = int(frames.shape[1])
        if self.normalization == "robust":
            if not_finite is not None:  # statistics of NaN for every subject
                raise ValueError(not_finite_message(not_finite))
            q25, median, q75 = np.concatenate(
                [np.percentile(frames[:, block : block + _PERCENTILE_BLOCK], [25, 50, 75], axis=0)
                 for block in range(0, frames.shape[1], _PERCENTILE_BLOCK)],
                axis=1,
            )
            iqr = q75 - q25
            # Sparse, spiky or coarsely quantised regions can have a zero IQR without being
            # constant; dividing by eps would blow them up to ~1e8. Use the standard deviation
            # scaled to the IQR of a normal distribution instead (1 where that is zero too).
            degenerate = iqr <= self.eps
            if degenerate.any():
                fallback = 1.349 * frames[:, degenerate].std(axis=0)
                iqr[degenerate] = np.where(fallback > self.eps, fallback, 1.0)
            self.median_ = median
            self.iqr_ = iqr
        else:
            self.median_ = None
            self.iqr_ = None
        if self.normalization is None:
            self._warn_if_not_unit_scale([frames[:unit_rows]])

    @staticmethod
    def _warn_if_not_unit_scale(resampled):
        """Unscaled input far from unit scale: the model's features lose the signal."""
        sample = np.concatenate([x.ravel() for x in resampled[:50]])
        spread = float(np.median(np.abs(sample - np.median(sample))))
        level = float(np.median(np.abs(sample)))
        # A tiny spread loses the signal whatever the offset (e.g. 1 + 1e-4 * noise).
        if max(spread, level) > UNIT_SCALE_RANGE[1] or spread < UNIT_SCALE_RANGE[0]:
            warn_user(
                f"normalization=None passes the series to the model unscaled, but they are far "
                f"from unit scale (median |value| {level:.3g}, median absolute deviation "
                f"{spread:.3g}): the embeddings of different subjects become nearly identical "
                "and bf16 rounding dominates their differences. Use normalization='robust' or "
                "'global_zscore', or scale the series yourself.",
            )

    def _warn_if_off_the_saved_scale(self, subjects, source, *, fitted_by=None,
                                     fine_tuned=False, probed=False):
        """Series that robust statistics learned elsewhere (at pretraining, carried by a
        checkpoint, or by an estimator's ``fit``), not refitted, leave far above unit scale:
        scaled otherwise than the data they were learned from (raw BOLD against standardized
        series), which the model then sees blown up. Looks at the first
        ``SAVED_SCALE_CHECK_SUBJECTS`` subjects only.

        ``source`` names the checkpoint the statistics came from; ``fitted_by``, the class
        name of the estimator whose ``fit`` learned them, when they were learned so; both,
        where they came from one or the other (an estimator pickled before it recorded
        which). ``fine_tuned``: the checkpoint is a fine-tuner's encoder, whose statistics
        its fine-tuner learned or took from its own weights' pretraining; ``probed``, with
        it: that fine-tuner kept the weights frozen (a linear probe).

        Reads those subjects for the check alone: ``transform`` and ``predict``, which scale
        them anyway, decide from their own (``_base.FittedScaleCheck``).
        """
        n_regions, scaled = None, []
        for i in range(min(len(subjects), SAVED_SCALE_CHECK_SUBJECTS)):
            scaled.append(self._robust_scaled(subjects, i, n_regions))
            n_regions = scaled[-1].shape[1]
        self._warn_if_scale_off_the_saved_scale(*self._scale_of(scaled), source,
                                                fitted_by=fitted_by, fine_tuned=fine_tuned,
                                                probed=probed)

    def _robust_scaled(self, subjects, i, n_regions=None):
        """Subject ``i`` of ``subjects`` read, resampled and scaled by the robust statistics,
        as the scale check judges it (``n_regions``: the regions it must have, if known)."""
        x = self._as_array(i, subjects[i], n_regions, input_name=_input_name(subjects))
        return self._robust_scale(_resample_subject(i, x, self.t_r, self.target_t_r))

    @staticmethod
    def _scale_of(scaled):
        """``(level, spread)`` of ``scaled``, the first subjects' resampled series as the
        robust statistics scale them (before padding): the median absolute value, and the
        median over regions of each region's median absolute deviation over time. What
        :meth:`_warn_if_scale_off_the_saved_scale` judges, kept without the series."""
        level = float(np.median(np.abs(np.concatenate([x.ravel() for x in scaled]))))
        # each region's spread over time: an offset that the statistics leave (another one
        # in each region) is no spread
        spread = float(np.median(np.concatenate(
            [np.median(np.abs(x - np.median(x, axis=0)), axis=0) for x in scaled])))
        return level, spread

    @staticmethod
    def _warn_if_scale_off_the_saved_scale(level, spread, source, *, fitted_by=None,
                                           fine_tuned=False, probed=False):
        """:meth:`_warn_if_off_the_saved_scale`'s warning, decided from the
        ``(level, spread)`` of :meth:`_scale_of`: the first subjects' resampled series as
        the robust statistics scale them (before padding)."""
        # Too large only: the statistics are pooled over subjects, so that raw BOLD whose
        # baselines differ between subjects leaves each subject's own fluctuations at ~0.01 of
        # them, on the very data they were learned from; too small a spread is no sign here.
        if max(spread, level) > UNIT_SCALE_RANGE[1]:
            if fitted_by is None and fine_tuned and probed:
                # a linear probe's own, or those of the weights it was given
                origin, learned, advice = (
                    f"the statistics of {source} were learned from (its linear probe's data, "
                    "or the data of the weights it probed)", "by its linear probe or before it",
                    "Scale them as those data were, or set")
            elif fitted_by is None and fine_tuned:
                # a fine-tuner's own, or those it took from the weights it was fine-tuned from:
                # its preprocessing does not say which
                origin, learned, advice = (
                    f"the statistics of {source} were learned from (its fine-tuning data, or "
                    "the pretraining data of the weights it was fine-tuned from)",
                    "by its fine-tuner or at pretraining", "Scale them as those data were, or set")
            elif fitted_by is None:
                origin, learned, advice = (f"{source} was pretrained on", "at pretraining",
                                           "Scale them as the pretraining data were, or set")
            elif source is not None:
                origin, learned, advice = (
                    f"the statistics were learned from ({source}'s pretraining data, or the "
                    f"data this {fitted_by} was fitted on: it was fitted before it recorded "
                    "which)", "at pretraining or by fit",
                    "Scale them as those data were, or refit with")
            else:
                origin, learned, advice = (f"this {fitted_by} was fitted on", "by fit",
                                           "Scale them as the data of fit were, or refit with")
            warn_user(
                f"the series are on another scale than the data {origin}: its robust "
                f"statistics (normalization='robust', learned {learned} and not refitted) "
                f"leave them at median |value| {level:.3g}, median absolute deviation over "
                f"time {spread:.3g}, where the data they were learned from sat within a few "
                f"units (were they scaled otherwise, e.g. raw BOLD against standardized "
                f"series?). {advice} "
                "normalization='global_zscore' or 'roi_zscore', which scale each window",
            )

    def transform(self, subjects, *, rows=None):
        """Turn subjects into model-ready windows.

        Parameters
        ----------
        subjects : list of array-like of shape (n_timepoints, n_regions)
            Subjects to transform; lengths may differ.
        rows : sequence of int, optional
            Only these subjects of ``subjects`` (indices from 0, in this order; one repeated
            gives its windows again), which must be validated subjects (that know their
            lengths, e.g. a :class:`~brainjepa_sk.files.SubjectFiles`): errors name a subject
            by its index in ``subjects``, and its file. The estimators' ``transform`` takes a
            chunk of the subjects at a time so.

        Returns
        -------
        windows : numpy.ndarray of shape (n_windows_total, n_frames, n_regions), float32
            The windows of all subjects, subject after subject.
        subject_index : numpy.ndarray of shape (n_windows_total,), int64
            The subject (position in ``subjects``, or in ``rows`` when given) of each window;
            ``"sliding"`` gives several windows per subject, the other strategies one.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            ``normalization="robust"`` and the statistics have not been learned by :meth:`fit`.
        ValueError
            Bad parameters, one subject's 2-D table given as ``subjects`` (pass ``[x]``),
            region count other than the one seen in :meth:`fit`, a series shorter than
            ``min_frames`` after resampling, complex values, values beyond the float32 range
            after normalization, or a DataFrame whose column names repeat (as the estimators
            refuse it); a file of validated subjects that no longer reads as it was checked
            (with its path); empty ``rows``.
        TypeError
            Values that are not a signal (booleans, text or masked values), or a DataFrame
            whose column names mix strings with other types; ``rows`` with subjects that are
            not validated, or holding anything but ints.
        IndexError
            ``rows`` holding a negative index or one past the last subject.
        """
        self._validate_params()
        if getattr(subjects, "n_timepoints", None) is not None:
            # validated subjects (files, or arrays converted when indexed): one at a time
            return self._transform_one_at_a_time(subjects, rows)
        if rows is not None:
            raise TypeError("rows needs validated subjects, which know their lengths (e.g. a "
                            f"SubjectFiles), got {type(subjects).__name__}")
        return self._transform_checked(self._as_arrays(subjects))

    def _check_transformable(self, shape):
        """Fitted where it must be, and a subject of ``shape`` with the regions of fit."""
        if self.normalization == "robust" and getattr(self, "median_", None) is None:
            raise NotFittedError(
                "this Preprocessor uses normalization='robust', whose per-region median and IQR "
                "are learned in fit; call fit (or fit_transform) on training data first"
            )
        if getattr(self, "n_regions_", None) is not None:
            check_n_regions(
                shape[1], self.n_regions_, what="fitted with", n_timepoints=shape[0],
                name=type(self).__name__,
            )

    def _transform_one_at_a_time(self, subjects, rows=None, scaled_to=None):
        """:meth:`transform` of subjects that know their lengths (of ``rows`` of them), read
        and resampled one at a time into one float32 array: the memory of the windows plus
        one subject. ``scaled_to(i, series)``, when given, gets each subject's series as the
        robust statistics scale it (``normalization="robust"`` only), for the scale check."""
        if not len(subjects):
            self._as_arrays(subjects)  # raises the error that applies
        rows = range(len(subjects)) if rows is None else check_rows(rows, len(subjects))
        if not rows:  # subject_rows takes no rows (an empty view), transform does not
            raise ValueError("rows is empty: expected at least one subject")
        self._check_lengths(subjects, rows)
        lengths = subject_lengths(subjects)
        subject_index, _ = self.window_table([lengths[i] for i in rows])
        paths, n_regions = getattr(subjects, "paths", None), None
        if paths is not None:
            # the regions the files were checked with, before any is read: a file that reads
            # otherwise changed since
            n_regions = subjects.n_regions
            self._check_transformable((lengths[rows[0]], n_regions))
        windows, position, input_name = None, 0, _input_name(subjects)
        for i in rows:
            try:
                # files: compared with what their check recorded below, not as with subject
                # 0's regions ("subject 0 has 4 regions but subject 0 has 8" of subject 0)
                original = self._as_array(i, subjects[i], None if paths is not None else n_regions,
                                          input_name=input_name)
                if paths is not None and original.shape[1] != n_regions:
                    raise ValueError(f"subject {i} has {original.shape[1]} regions, not the "
                                     f"{n_regions} it had")
                if paths is not None and len(original) != lengths[i]:
                    raise ValueError(f"subject {i} has {len(original)} frames, not the "
                                     f"{lengths[i]} it had")
                if windows is None:
                    self._check_transformable(original.shape)
                    n_regions = original.shape[1]
                    windows = np.empty((len(subject_index), self.n_frames, n_regions),
                                       np.float32)
                x = self._subject_windows(
                    _resample_subject(i, original, self.t_r, self.target_t_r), i, len(original),
                    scaled_to=scaled_to)
            except ValueError as error:
                raise _in_file(subjects, i, error, "it was checked (rewritten while in use?)")
            windows[position : position + len(x)] = x
            position += len(x)
        return windows, subject_index

    def _transform_checked(self, arrays):
        """:meth:`transform` of checked in-memory subjects (:meth:`_as_arrays`), converted and
        resampled one at a time into one float32 array: the memory of the windows plus one
        subject, not of float64 copies of them all and a list of their windows."""
        n_regions = arrays[0].shape[1]
        # its own length, as given: a transposed subject has fit's region count in rows
        self._check_transformable(arrays[0].shape)
        # every subject too short named at once, as for validated subjects (not the first alone)
        self._check_lengths(arrays, range(len(arrays)))
        subject_index, _ = self.window_table([len(x) for x in arrays])
        windows = np.empty((len(subject_index), self.n_frames, n_regions), np.float32)
        position = 0
        for i, original in enumerate(arrays):
            x = _as_float64(original)
            w = self._subject_windows(_resample_subject(i, x, self.t_r, self.target_t_r), i,
                                      len(x))
            windows[position : position + len(w)] = w
            position += len(w)
        return windows, subject_index

    def _subject_windows(self, x, i, n_input, starts=None, scaled_to=None):
        """One resampled subject's windows (all, or those at ``starts``), float32; the robust
        scaled series goes to ``scaled_to(i, series)`` when given."""
        given = x
        if self.normalization == "robust":
            x = self._robust_scale(x)
            if scaled_to is not None:
                scaled_to(i, x)
        x = self._pad(x, i, n_input)
        if starts is None:
            starts = self._window_starts(x.shape[0])
        # Every window's frame offsets, added to its start to gather it in one indexing step.
        offsets = np.arange(self.n_frames)
        windows = self._normalize_windows(x[np.asarray(starts)[:, None] + offsets])
        with np.errstate(over="ignore"):  # an overflow is refused below, with its subject
            single = windows.astype(np.float32)
        # finite values beyond float32's range become infinite (then NaN in the model); the
        # extremes are checked without another copy of the windows
        if single.size and not (np.isfinite(single.max()) and np.isfinite(single.min())):
            if not np.isfinite(given).all():  # its values were not checked: not a scale
                raise _BeyondFloat32Error(not_finite_message(i))
            raise _BeyondFloat32Error(
                f"subject {i} reaches {float(np.abs(windows).max()):.3g} after preprocessing "
                f"(normalization={self.normalization!r}), beyond the float32 range "
                f"({_FLOAT32_MAX:.3g}) the model computes in: rescale the series or normalize "
                "them")
        return single

    # ------------------------------------------------------------------ windows read lazily

    def resampled_length(self, n_timepoints):
        """Frames of a series of ``n_timepoints`` after resampling (``resample_poly``'s).

        Parameters
        ----------
        n_timepoints : int
            Length of the series at ``t_r``.

        Returns
        -------
        int
            Its length at ``target_t_r``: ``ceil(n_timepoints * up / down)``, or
            ``n_timepoints`` when nothing is resampled.
        """
        ratio = _resampling_ratio(self.t_r, self.target_t_r)
        if ratio is None:
            return int(n_timepoints)
        up, down = ratio
        return -(-int(n_timepoints) * up // down)

    def resamples_as(self, t_r):
        """Whether series at ``t_r`` are resampled to ``target_t_r`` as those at ``t_r`` are.

        The same up/down factors (None and ``target_t_r`` itself leave series as they are):
        ``t_r`` could replace this preprocessor's without changing what it gives.

        Parameters
        ----------
        t_r : float or None
            A repetition time in seconds.

        Returns
        -------
        bool
            False for a ``t_r`` that :func:`resample` refuses (not a positive finite number, or
            too extreme a ratio to ``target_t_r``).
        """
        try:
            ratio = _resampling_ratio(t_r, self.target_t_r)
        except ValueError:
            return False
        return ratio == _resampling_ratio(self.t_r, self.target_t_r)

    def window_table(self, n_timepoints):
        """Where every window of every subject starts, without reading the subjects.

        Parameters
        ----------
        n_timepoints : array-like of int
            Each subject's length, before resampling.

        Returns
        -------
        subject_index : numpy.ndarray of shape (n_windows_total,), int64
            The subject of each window, in :meth:`transform`'s order.
        starts : numpy.ndarray of shape (n_windows_total,), int64
            Its first frame in the resampled (and padded) series.
        """
        subject_index, starts = [], []
        for i, n in enumerate(n_timepoints):
            length = self.resampled_length(n)
            if length < self._min_frames:
                raise ValueError(self._too_short_message(f"subject {i}", length, int(n)))
            window_starts = self._window_starts(max(length, self.n_frames))
            starts.append(window_starts)
            subject_index.append(np.full(len(window_starts), i, dtype=np.int64))
        return np.concatenate(subject_index), np.concatenate(starts).astype(np.int64)

    def reads_window_only(self, subjects):
        """Whether :meth:`read_window` reads at most a window's frames of every subject.

        That is the case for memory-mapped ``.npy`` files, without resampling.

        Parameters
        ----------
        subjects : sequence of array-like
            Validated subjects, e.g. a :class:`~brainjepa_sk.files.SubjectFiles`.

        Returns
        -------
        bool
            ``True`` when ``subjects`` are files (they have ``paths``), all ``.npy``, and no
            resampling is done; ``False`` otherwise (arrays included).
        """
        paths = getattr(subjects, "paths", None)
        # a subject shorter than a window (padded) is read whole: less than a window's frames
        return (paths is not None and _resampling_ratio(self.t_r, self.target_t_r) is None
                and all(str(path).lower().endswith(".npy") for path in paths))

    def streams(self, subjects):
        """Whether training should read ``subjects``' windows one at a time.

        One at a time means with :meth:`window_table` and :meth:`read_window`, rather than
        cutting them all at once.

        Arrays are cut at once (they are in memory already). Files stream when a window reads
        only its own frames, or when cutting them all would take more than
        ``IN_MEMORY_WINDOW_BYTES``.

        Parameters
        ----------
        subjects : sequence of array-like
            Validated subjects, e.g. a :class:`~brainjepa_sk.files.SubjectFiles`.

        Returns
        -------
        bool
            ``True`` when the windows should be read one at a time.
        """
        if getattr(subjects, "paths", None) is None:
            return False
        if self.reads_window_only(subjects):
            return True
        n_windows = len(self.window_table(subjects.n_timepoints)[0])
        return n_windows * self.n_frames * subjects.n_regions * 4 > IN_MEMORY_WINDOW_BYTES

    def read_window(self, subjects, subject, start):
        """One window of ``subjects[subject]``, exactly as :meth:`transform` would cut it.

        Without resampling or padding, only the window's frames are read (a memory-mapped
        ``.npy`` file gives just those); otherwise the whole series.

        Parameters
        ----------
        subjects : sequence of array-like
            The subjects, e.g. a :class:`~brainjepa_sk.files.SubjectFiles`.
        subject : int
            Which subject.
        start : int
            The window's first frame, from :meth:`window_table`.

        Returns
        -------
        numpy.ndarray of shape (n_frames, n_regions), float32
            The window, preprocessed as :meth:`transform` would.
        """
        try:
            return self._read_window(subjects, subject, start)
        except ValueError as error:
            raise _in_file(subjects, subject, error,  # checked when fit began
                           "fit checked it (rewritten while training?)")

    def _read_window(self, subjects, subject, start):
        frames = getattr(subjects, "frames", None)
        lengths = getattr(subjects, "n_timepoints", None)
        direct = (frames is not None and _resampling_ratio(self.t_r, self.target_t_r) is None
                  and lengths[subject] >= self.n_frames)
        if direct:
            x = frames(subject, start, start + self.n_frames)
            if np.shape(x)[0] < self.n_frames:
                raise ValueError(f"subject {subject} is shorter than the {lengths[subject]} "
                                 f"frames it had: frames {start} to "
                                 f"{start + self.n_frames - 1} are not all there")
            x = self._checked_window(subject, x, _input_name(subjects), first_frame=start)
            return self._subject_windows(x, subject, len(x), starts=[0])[0]
        original = subjects[subject]
        if lengths is not None and np.shape(original)[0] != lengths[subject]:
            raise ValueError(f"subject {subject} has {np.shape(original)[0]} frames, not the "
                             f"{lengths[subject]} it had")
        original = self._checked_window(subject, original, _input_name(subjects))
        x = _resample_subject(subject, original, self.t_r, self.target_t_r)
        return self._subject_windows(x, subject, len(original), starts=[start])[0]

    def _checked_window(self, subject, x, input_name, first_frame=None):
        x = self._as_array(subject, x, first_frame=first_frame, input_name=input_name)
        n_regions = getattr(self, "n_regions_", None)
        if n_regions is not None and x.shape[1] != n_regions:
            raise ValueError(f"subject {subject} has {x.shape[1]} regions, not the {n_regions} "
                             "of the fit")
        return x

    def fit_transform(self, subjects):
        """Fit on ``subjects`` and transform them (one subject at a time: the subjects are
        never copied to float64 all at once).

        Parameters
        ----------
        subjects : list of array-like of shape (n_timepoints, n_regions)
            Training subjects; lengths may differ.

        Returns
        -------
        windows : numpy.ndarray of shape (n_windows_total, n_frames, n_regions), float32
            See :meth:`transform`.
        subject_index : numpy.ndarray of shape (n_windows_total,), int64
            See :meth:`transform`.
        """
        self._validate_params()
        arrays = self._as_arrays(subjects)
        # resampled twice (here and for the windows) rather than kept, all of them, in memory
        self._fit_resampled(
            (_resample_subject(i, _as_float64(x), self.t_r, self.target_t_r)
             for i, x in enumerate(arrays)),
            [self.resampled_length(len(x)) for x in arrays])
        return self._transform_checked(arrays)

    def to_dict(self):
        """Return the parameters and fitted statistics as a plain dict, for a checkpoint.

        Returns
        -------
        dict
            The constructor parameters under their names (``constant_regions`` only when not
            ``"keep"``, what a dict without it means), plus ``"median_"`` and ``"iqr_"``
            (float64 NumPy arrays of shape (n_regions,), or None) and ``"n_regions_"`` (int, or
            None when not fitted). Values are ints, floats, strings, None or NumPy arrays.
        """
        d = {
            "n_frames": int(self.n_frames),
            "t_r": None if self.t_r is None else float(self.t_r),
            "target_t_r": None if self.target_t_r is None else float(self.target_t_r),
            "window": self.window,
            "stride": None if self.stride is None else int(self.stride),
            "min_frames": None if self.min_frames is None else int(self.min_frames),
            "normalization": self.normalization,
            "eps": float(self.eps),
        }
        if self.constant_regions != "keep":  # kept, as before the option: a file older
            d["constant_regions"] = self.constant_regions  # versions read too
        for name in ("median_", "iqr_"):
            value = getattr(self, name, None)
            d[name] = None if value is None else np.array(value, dtype=np.float64)
        n_regions = getattr(self, "n_regions_", None)
        d["n_regions_"] = None if n_regions is None else int(n_regions)
        return d

    @classmethod
    def from_dict(cls, d):
        """Rebuild a Preprocessor from :meth:`to_dict` output.

        Parameters
        ----------
        d : dict
            As returned by :meth:`to_dict` (array values may also be lists or CPU tensors).

        Returns
        -------
        Preprocessor
            With the same parameters; fitted when ``d`` holds ``n_regions_``.

        Raises
        ------
        ValueError
            Unknown keys (they could stand for a step this version does not apply), missing
            ``n_frames``, bad parameters, or statistics inconsistent with ``n_regions_``.
        """
        unknown = set(d) - set(_PARAM_NAMES) - set(_FITTED_NAMES)
        if unknown:
            raise ValueError(f"unknown Preprocessor keys: {sorted(unknown)}")
        if "n_frames" not in d:
            raise ValueError("the Preprocessor dict has no 'n_frames'")
        params = {name: d[name] for name in _PARAM_NAMES if name in d}
        n_frames = params.pop("n_frames")
        prep = cls(int(n_frames) if _is_int(n_frames) else n_frames, **params)
        prep._validate_params()

        n_regions = d.get("n_regions_")
        if n_regions is None:
            if d.get("median_") is not None or d.get("iqr_") is not None:
                raise ValueError("the Preprocessor dict has statistics but no 'n_regions_'")
            return prep
        # a region count that is not a whole number is refused, not truncated (as n_frames)
        if not (_is_int(n_regions) and n_regions >= 1):
            raise ValueError(f"n_regions_ must be a positive whole number, got {n_regions!r}")
        prep.n_regions_ = int(n_regions)
        for name in ("median_", "iqr_"):
            value = d.get(name)
            if value is not None:
                value = np.array(value, dtype=np.float64)
                if value.shape != (prep.n_regions_,):
                    raise ValueError(
                        f"{name} has shape {value.shape}, expected ({prep.n_regions_},)"
                    )
                if not np.isfinite(value).all():
                    raise ValueError(f"{name} holds NaN or infinite values")
            setattr(prep, name, value)
        if prep.normalization == "robust" and (prep.median_ is None or prep.iqr_ is None):
            raise ValueError("normalization='robust' but the dict has no 'median_'/'iqr_'")
        return prep

    def __repr__(self):
        args = [repr(self.n_frames)]
        defaults = Preprocessor.__init__.__kwdefaults__
        for name in _PARAM_NAMES[1:]:
            value = getattr(self, name)
            if value != defaults[name]:
                args.append(f"{name}={value!r}")
        return f"Preprocessor({', '.join(args)})"


#: Inside :func:`_scale_check_deferred`: the scale checks left undecided (None outside it).
_DEFERRED_SCALE_CHECKS = contextvars.ContextVar("deferred_scale_checks", default=None)


@contextlib.contextmanager
def _scale_check_deferred():
    """Leave the scale warning of a checkpoint's robust statistics, which
    :func:`preprocessor_for_weights` decides from the first subjects it is given (reading
    them), to a ``transform`` of the same subjects that follows (an embedder's
    ``fit_transform``): it decides it from the series it scales
    (``_base.FittedScaleCheck``), without that read.

    A fine-tuner's fit decides it so from its training windows, which scale the first
    training subjects (``_base.training_windows``).

    An error raised in the block decides the checks left undecided there before it goes on,
    reading the subjects, as a fit alone warns before its error; a check that cannot read
    them warns of nothing (the block's error is the one to see).

    Yields
    ------
    list of callable
        The checks left undecided in the block, each deciding one.
    """
    deferred = []
    token = _DEFERRED_SCALE_CHECKS.set(deferred)
    try:
        yield deferred
    except Exception:
        for check in deferred:
            with contextlib.suppress(Exception):
                check()
        raise
    finally:
        _DEFERRED_SCALE_CHECKS.reset(token)


def _warn_if_longer_than_trained(weights, n_frames):
    """Warn when windows of ``n_frames`` reach past the time positions the weights were
    trained on (``weights``: a :class:`~brainjepa_sk.checkpoint.ResolvedWeights`). Shorter
    windows use positions the model was trained on; longer ones, new ones."""
    trained = weights.trained_frames
    if not weights.fine_tuned:
        if trained is not None and n_frames > trained:
            warn_user(
                f"n_frames={n_frames} is longer than the windows the model was pretrained on "
                f"({trained} frames): the frames past the first {trained} get time positions "
                "it never saw. To cover longer scans with the positions it knows, keep "
                f"n_frames={trained} (n_frames='auto') with window='sliding'"
            )
        return
    fine_tuning = weights.n_frames  # the fine-tuner's windows, which its preprocessing holds
    if weights.frozen_by_fine_tuner:
        _warn_if_longer_than_probed(trained, fine_tuning, n_frames)
    elif trained is not None:
        if n_frames > trained:
            auto = ("" if fine_tuning is None or fine_tuning == trained
                    else f" (n_frames='auto' takes the fine-tuning windows, {fine_tuning} "
                         "frames)")
            warn_user(
                f"n_frames={n_frames} is longer than any window the fine-tuned model was "
                f"trained on (at most {trained} frames, in pretraining and fine-tuning): the "
                f"frames past the first {trained} get time positions it never saw. To cover "
                "longer scans with the positions it knows, use windows of at most "
                f"{trained} frames with window='sliding'{auto}"
            )
    elif fine_tuning is not None and n_frames > fine_tuning:
        # fine-tuned from weights that did not record their pretraining windows (a bare
        # encoder, or one fine-tuned before they were recorded): those may be longer
        warn_user(
            f"n_frames={n_frames} is longer than the windows the model was fine-tuned on "
            f"({fine_tuning} frames; its weights do not record the windows of their "
            "pretraining, which may have been longer): the frames past the first "
            f"{fine_tuning} get time positions it was not fine-tuned on, which its "
            "pretraining may not have seen either. To cover longer scans with the positions "
            f"it was fine-tuned on, keep n_frames={fine_tuning} (n_frames='auto') with "
            "window='sliding'"
        )


def _warn_if_longer_than_probed(trained, probed, n_frames):
    """:func:`_warn_if_longer_than_trained` for the encoder of a linear probe: its weights
    were frozen, so that the positions it was trained on are those of the weights it was
    given (``trained`` frames, if known), and its preprocessing's windows (``probed``
    frames) the probe's."""
    if trained is not None:
        if n_frames > trained:
            auto = ("" if probed is None or probed == trained
                    else f" (n_frames='auto' takes the linear probe's windows, {probed} frames)")
            warn_user(
                f"n_frames={n_frames} is longer than any window the model was trained on "
                f"before its linear probe, which left its weights frozen (at most {trained} "
                f"frames): the frames past the first {trained} get time positions it never "
                "saw. To cover longer scans with the positions it knows, use windows of at "
                f"most {trained} frames with window='sliding'{auto}"
            )
    elif probed is not None and n_frames > probed:
        # the weights it probed did not record the windows they were trained on (a bare
        # encoder, or one fine-tuned before they were recorded or from a bare one)
        warn_user(
            f"n_frames={n_frames} is longer than the windows of the model's linear probe "
            f"({probed} frames; its weights do not record the windows they were trained on, "
            f"which may have been longer): the frames past the first {probed} get time "
            "positions its probe did not see, which its training may not have seen either. "
            "To cover longer scans with the positions its probe saw, keep "
            f"n_frames={probed} (n_frames='auto') with window='sliding'"
        )


def preprocessor_for_weights(weights, subjects, *, t_r=None, model_t_r="auto", n_frames="auto",
                             window="auto", stride=None, min_frames=None,
                             normalization="auto", constant_regions="error"):
    """The fitted preprocessing that a model's weights expect, for the given subjects.

    Settings left at ``"auto"`` (or None) come from what the weights carry: our checkpoints
    record their whole preprocessing (with the statistics learned at pretraining), research
    checkpoints their window length (and the UK Biobank model its TR); a fine-tuner's encoder
    carries the fine-tuner's. So embedding or fine-tuning repeats the preprocessing the
    weights were trained with unless told otherwise.

    Parameters
    ----------
    weights : ResolvedWeights
        What :func:`~brainjepa_sk.checkpoint.resolve_weights` returned.
    subjects : list of numpy.ndarray
        Validated ``(n_timepoints, n_regions)`` series; statistics that are not carried by the
        weights are learned from them.
    t_r : float, optional
        TR of the input (seconds).
    model_t_r, n_frames, window, stride, min_frames, normalization, constant_regions
        As in :class:`~brainjepa_sk.BrainJEPAEmbedder` (``constant_regions="error"``, whose
        subjects have no constant region, gives a preprocessing that keeps them).

    Returns
    -------
    Preprocessor
        Fitted.

    Raises
    ------
    ValueError
        When ``n_frames="auto"`` and the weights do not say their window length, when a
        setting is invalid, or when the preprocessing our checkpoint carries is invalid.
    TypeError
        When ``weights`` is not what :func:`~brainjepa_sk.checkpoint.resolve_weights`
        returned (a module or a path, for instance).
    """
    from .checkpoint import ResolvedWeights  # (the checkpoint module imports this one)

    if not isinstance(weights, ResolvedWeights):
        raise TypeError(
            f"weights must be what brainjepa_sk.checkpoint.resolve_weights returned, got "
            f"{type_with_article(weights)}: pass resolve_weights(weights) (it takes a checkpoint "
            "path, a module or 'ukbiobank')")
    n_frames = weights.n_frames if n_frames == "auto" else n_frames
    if n_frames is None:
        raise ValueError("the model does not say its window length: set n_frames")
    # windows the model cannot cut are refused before a warning about their length
    check_time_patches(int(n_frames), weights.encoder.patch_size)
    _warn_if_longer_than_trained(weights, int(n_frames))
    # a fine-tuned encoder's TR is its fine-tuner's (a linear probe's, where it kept the
    # weights frozen), which may not be the pretraining's
    trained_as, training, training_data = (
        ("linearly probed", "its linear probe", "its linear probe's data")
        if weights.frozen_by_fine_tuner
        else ("fine-tuned", "fine-tuning", "the fine-tuning data") if weights.fine_tuned
        else ("pretrained", "pretraining", "the pretraining data"))
    saved_model_t_r = model_t_r == "auto"
    if (not saved_model_t_r and model_t_r is not None and weights.model_t_r is not None
            and not _same_sampling(weights.model_t_r, model_t_r)):
        # a TR the weights record, overridden: the data's TR given as the model's, perhaps
        warn_user(
            f"model_t_r={model_t_r:g} is not the TR the model was {trained_as} at "
            f"({weights.model_t_r:g} s, which its weights record): series are resampled to "
            f"{model_t_r:g} s, so each time patch spans another duration than in {training}; "
            "leave model_t_r='auto' to use the model's, and give your data's TR as t_r"
        )
    # those the user gave (once per fit: the estimators come here once); a model_t_r taken
    # from the weights was the pretraining's own choice, warned of there
    warn_long_t_r(t_r=t_r, **({} if saved_model_t_r else {"model_t_r": model_t_r}))
    model_t_r = weights.model_t_r if saved_model_t_r else model_t_r
    if t_r is not None and model_t_r is None:
        warn_user(
            f"t_r={t_r} is ignored: the model's TR is unknown, so the series are not "
            "resampled; set model_t_r to the TR the model was trained at",
        )
    saved = weights.preprocessing or {}
    source = getattr(weights, "source", None)
    where = f"{source} holds" if source else "the weights hold"
    saved_t_r = saved.get("t_r")
    try:  # the warning below quotes them: a text or negative TR there would make no sense
        _check_t_r(saved_t_r, "t_r")
        if saved_model_t_r:
            _check_t_r(model_t_r, "target_t_r")
    except ValueError as error:
        raise ValueError(f"{where} an invalid preprocessing: {error}") from error
    if (t_r is None and saved_t_r is not None and model_t_r is not None
            and not _same_sampling(saved_t_r, model_t_r)):
        # The input TR is the data's, not the model's, so it is not taken from the checkpoint;
        # but silently skipping the resampling the pretraining did would shift every feature.
        warn_user(
            f"the model was {trained_as} on series at TR {saved_t_r:g} s resampled to "
            f"{model_t_r:g} s, but t_r is not set, so these series are used as if sampled at "
            f"{model_t_r:g} s; set t_r to their TR (t_r={saved_t_r:g} for data acquired like "
            f"{training_data}, t_r={model_t_r:g} to keep them as they are)",
        )
    if normalization == "auto":
        normalization = saved.get("normalization", "global_zscore")
        if not (normalization is None or (isinstance(normalization, str)
                                          and normalization in NORMALIZATIONS)):
            # the Preprocessor's own check named normalization, which the caller left 'auto'
            raise ValueError(f"{where} an invalid preprocessing: normalization "
                             f"{normalization!r} is not one of {NORMALIZATIONS}")
    chosen_window = window if window != "auto" else saved.get("window", "center")
    if chosen_window not in WINDOW_STRATEGIES:
        if window == "auto":  # the saved one
            raise ValueError(f"{where} an invalid preprocessing: window {chosen_window!r} is "
                             f"not one of {WINDOW_STRATEGIES}")
        raise ValueError(f"window must be 'auto' or one of {WINDOW_STRATEGIES}, got {window!r}")
    warn_ignored_stride(stride, chosen_window)
    options = dict(
        n_frames=int(n_frames),
        t_r=t_r,
        target_t_r=model_t_r,
        window=chosen_window,
        # the saved stride and shortest length belong to the saved window length
        stride=stride if stride is not None else (
            saved.get("stride") if int(n_frames) == saved.get("n_frames") else None),
        min_frames=min_frames if min_frames is not None else (
            saved.get("min_frames") if int(n_frames) == saved.get("n_frames") else None),
        constant_regions="zero" if constant_regions == "zero" else "keep",
    )
    # The caller's own settings are checked as such first: joined with the saved
    # preprocessing, their errors would name the file as holding an invalid one.
    if stride is not None or min_frames is not None:
        Preprocessor(int(n_frames), window=chosen_window, stride=stride, min_frames=min_frames,
                     normalization=None)._validate_params()
    if t_r is not None and model_t_r is not None:
        try:
            _check_t_r(model_t_r, "target_t_r")
        except ValueError:
            pass  # a model_t_r given invalid is named below (a saved one was, above)
        else:
            _resampling_ratio(t_r, model_t_r)  # the input's TR too far from the model's
    if saved.get("normalization") == normalization and "n_frames" in saved:
        # our checkpoint's own scaling, with the statistics learned at pretraining
        try:
            preprocessor = Preprocessor.from_dict({**saved, **options})
        except (ValueError, TypeError) as error:
            raise ValueError(f"{where} an invalid preprocessing: {error}") from error
        if preprocessor.normalization == "robust":
            # kept, so that transform and predict name the checkpoint as fit does
            preprocessor._statistics_source = os.fspath(source) if source else "the model"
            preprocessor._statistics_fine_tuned = weights.fine_tuned
            preprocessor._statistics_probed = weights.frozen_by_fine_tuner
            # Reads the first subjects for the warning alone (the statistics are the
            # checkpoint's: nothing else here reads their values). A fit warns of its own
            # series, which a later transform may never see (fit on some, transform others),
            # and a fine-tuner's before it trains on them; only what scales these same
            # subjects right after decides it as well, from what it scales (the transform of
            # fit_transform, a fine-tuner's training windows: see _scale_check_deferred).
            check = functools.partial(preprocessor._warn_if_off_the_saved_scale, subjects,
                                      preprocessor._statistics_source,
                                      fine_tuned=weights.fine_tuned,
                                      probed=weights.frozen_by_fine_tuner)
            deferred = _DEFERRED_SCALE_CHECKS.get()
            if deferred is None:
                check()
            else:
                deferred.append(check)
        return preprocessor
    preprocessor = Preprocessor(normalization=normalization, **options).fit(subjects)
    preprocessor._statistics_source = None  # learned here: transform and predict say so
    return preprocessor

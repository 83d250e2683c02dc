"""Gradient coordinates of brain regions (the positions used by gradient positioning)."""

from __future__ import annotations

import math
import numbers
import os
import sys
import warnings

import numpy as np
import torch
from scipy import sparse
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import InvalidParameterError, StrOptions
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.validation import check_is_fitted

from ._base import (
    OPTIONAL_PATH,
    POSITIVE_INT,
    NestedParamsMixin,
    Range,
    SubjectsTransformerMixin,
    changed_settings,
    check_parameters,
    restore_on_error,
    rows_indexed_like,
)
from ._warnings import catch_warnings, warn_user
from .files import (
    _GZIP_ERRORS,
    SubjectFiles,
    _file_type,
    _is_number,
    _names_in,
    _open_text,
    _refuse_a_damaged_gzip,
    _uncommented,
    check_has_rows,
    check_index_column,
    has_header_line,
    is_path,
    load_npy,
    read_csv_table,
)
from .nn._checks import type_with_article
from .train.runtime import expand_home, is_safetensors_file, load_file
from .validation import (
    check_n_regions,
    each_checked_file,
    first_name_difference,
    name_differences,
    not_finite_message,
    record_subjects_column,
    validate_connectivity,
    validate_subjects,
    warn_names_seen_once,
)

__all__ = ["GradientPositioner", "load_gradients"]


def gradient_region_names(source):
    """Region names of a gradient DataFrame's rows: its index when every label is a string.

    Parameters
    ----------
    source : object
        Gradients as given (a DataFrame, an array, a path, ...).

    Returns
    -------
    list of str or None
        The index labels, or ``None`` for anything but a DataFrame indexed by strings (a
        default integer index names no region).
    """
    if not hasattr(source, "columns") or not hasattr(source, "index"):
        return None
    labels = list(source.index)
    if not labels or not all(isinstance(label, str) for label in labels):
        return None
    return labels


def _labelled_by_numbers(source):
    """Whether ``source`` is a DataFrame whose index is not strings nor the default 0, 1, ..."""
    if not hasattr(source, "columns") or not hasattr(source, "index"):
        return False
    labels = list(source.index)
    return (not all(isinstance(label, str) for label in labels)
            and labels != list(range(len(labels))))


def named_gradients(source, what="the gradients"):
    """How messages name gradients: ``what``, followed by the file's path when ``source`` is
    one (a matrix of the wrong shape is then found without guessing which file it was).

    Parameters
    ----------
    source : object
        The gradients as given: a path, an array, a DataFrame, ...
    what : str, default="the gradients"
        The words naming them.

    Returns
    -------
    str
        E.g. ``"the gradients (grads.csv)"``, or ``what`` for gradients given in memory.
    """
    return f"{what} ({os.fspath(source)})" if is_path(source) else what


def _largest_sparsity(n_regions):
    """The largest two-decimal sparsity that keeps 2 connections per region of ``n_regions``
    (as BrainSpace keeps them, float rounding checked); 0 for 2 regions or fewer."""
    suggestion = math.floor((1 - 2 / n_regions) * 100) / 100
    while suggestion > 0 and int(n_regions * (1 - suggestion)) < 2:
        suggestion = round(suggestion - 0.01, 2)
    return max(suggestion, 0)


def align_gradient_rows(source, gradients, region_names, what="gradients"):
    """Put the rows of gradients given as a DataFrame indexed by region names in X's order.

    Parameters
    ----------
    source : object
        The gradients as given; only a DataFrame indexed by strings carries region names.
    gradients : ndarray of shape (n_regions, n_components)
        ``load_gradients(source)``.
    region_names : array-like of str or None
        X's region names (``feature_names_in_``); ``None`` keeps the rows as they are.
    what : str, default="gradients"
        The parameter, for the messages.

    Returns
    -------
    ndarray of shape (n_regions, n_components)
        The rows reordered to ``region_names`` when the index holds the same regions in another
        order; else ``gradients`` itself (other names warn, and the rows are used in order).
    """
    own = gradient_region_names(source)
    if own is None and _labelled_by_numbers(source):
        # e.g. atlas label values: only strings name regions (scikit-learn's rule for X's
        # columns too), so these rows are not matched to X's columns by their labels
        labels = list(source.index)
        warn_user(f"the index of {what} ({labels[:3]!r}...) is not read as region names, since "
                  "only string labels are: its rows are used in order, as X's columns. To "
                  "match the rows to X's columns by name, give both string names (e.g. "
                  f"{what}.index.astype(str) and DataFrames with the same string columns); to use "
                  f"them in order without this warning, give {what} as an array "
                  f"({what}.to_numpy())")
    if own is None or region_names is None:
        return gradients
    names = [str(name) for name in region_names]
    if own == names or len(own) != len(names):
        return gradients  # a different count is the caller's error
    if len(set(own)) == len(own) and sorted(own) == sorted(names):
        row = {name: i for i, name in enumerate(own)}
        return gradients[[row[name] for name in names]]
    n_moved, examples = name_differences(own, names, "row {i} is {own!r} where X has {other!r}")
    warn_user(f"the region names of {what} (its index) differ from those of X ({examples}; "
              f"{n_moved} in all): its rows are used in order, as X's columns")
    return gradients


def _align(source, target):
    """BrainSpace's Procrustes alignment of ``source`` onto ``target`` (imported when used).

    BrainSpace and nilearn are imported lazily so that the model layer (``brainjepa_sk.nn``) and
    the other estimators import without them (e.g. on a bare GPU image).
    """
    from brainspace.gradient.alignment import procrustes

    return procrustes(source, target)


def _refuse_rows_named_by_regions(first_line, second_line):
    """Refuse a whitespace-separated gradient table whose rows start with names: the region
    names of a DataFrame's index, written by ``to_csv(sep=" ")`` (numpy had said "could not
    convert string" or, below a header of column names, advised its own ``usecols``)."""
    def named_row(cells):  # a name, then numbers
        return len(cells) > 1 and not _is_number(cells[0]) and all(map(_is_number, cells[1:]))

    first, second = first_line.split(), second_line.split()
    # column names of the gradients (0 1 2 ...) with the index unnamed, or all named
    header = (len(first) + 1 == len(second) and all(map(_is_number, first))
              or len(first) == len(second) and not any(map(_is_number, first)))
    if named_row(second) and (header or named_row(first)):
        header_read = "" if header else ", header=None"
        raise ValueError(
            f"its rows start with names ({(second if header else first)[0]!r}, ...), as the "
            "index that pandas' to_csv writes: region names, which a gradient file does not "
            "take: read it with "
            f"pandas.read_csv(path, sep=r'\\s+', index_col=0{header_read}) and pass that "
            "DataFrame as gradients (its index is matched to X's region names), or remove the "
            "column to use the rows in order")


def _tensor_values(tensor, name):
    """``tensor``'s values as a NumPy array, on the CPU: bfloat16, which NumPy has no type
    for, as float32; a sparse tensor refused (``name`` is the gradients', for the message)."""
    if tensor.layout != torch.strided:  # torch's bare TypeError, else
        raise ValueError(f"{name} is a sparse tensor: pass its dense values "
                         "(gradients.to_dense())")
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def load_gradients(source):
    """Load a region x component gradient matrix.

    Parameters
    ----------
    source : str, path-like or array-like
        A ``.npy`` file, a ``.pt`` or ``.pth`` file holding one tensor (``torch.save``), a
        text file (``.csv`` comma-separated, ``.tsv`` tab-separated,
        anything else whitespace-separated, what follows a ``#`` ignored, as ``numpy``
        ignores it: comment lines and a row's trailing comment; each may be gzipped, as
        ``.csv.gz``, ``.tsv.gz`` or ``.txt.gz``; an optional header line of
        names, or of integers above a line with fractions (pandas' column names), is skipped,
        a whitespace-separated one naming fewer columns than the rows hold is refused; in
        any text table a table index, as pandas' ``to_csv`` writes unless ``index=False``, is
        refused: with or without a header, a first column that rises by the same step on every
        row where no other column does (in a table of two columns or more), and in a ``.csv``
        or ``.tsv`` table an unnamed first column; so is a table without rows, a header line
        alone included), or an array of shape ``(n_regions, n_components)``. The research
        atlas file ``gradient_mapping_450.csv`` (450 rows, 30 columns, no header) loads as it
        is.

    Returns
    -------
    numpy.ndarray
        ``(n_regions, n_components)`` float64 array.

    Raises
    ------
    ValueError
        If the matrix is not numeric, holds complex values, is sparse (a SciPy matrix or a
        torch tensor), is not 2-D, is empty, or holds NaN or infinite values, if the file
        cannot be read as a numeric table (a table index or no rows included), if a gzipped
        file does not decompress (damaged or cut short), if the path is a folder, or if the
        file is a safetensors file (the message says how to convert it).
    FileNotFoundError
        If the path names no file.
    """
    if isinstance(source, (str, os.PathLike)):
        path = expand_home(source)
        if path.is_dir():
            raise ValueError(f"{path} is a folder, not a gradient file")
        if not path.is_file():
            raise FileNotFoundError(f"gradient file not found: {path}")
        if is_safetensors_file(path):  # else read as a text table, failing on its bytes
            raise ValueError(
                f"{path} is a safetensors file, which brainjepa_sk does not read (safetensors "
                "is none of its dependencies): save its gradient tensor with torch.save("
                "safetensors.torch.load_file(path)[name], 'gradients.pt') and pass that file")
        suffix = _file_type(path)  # ".tsv.gz" for a gzipped table, as for subject files
        if suffix == ".npy":
            try:
                array = load_npy(path)
            except (ValueError, OSError, EOFError) as error:
                raise ValueError(
                    f"{path} is not a readable .npy gradient matrix (truncated, damaged or "
                    f"holding Python objects): {error}"
                ) from error
        # the research checkpoint's own name ends in .pth.tar: given here by mistake, it was
        # read as a text table ("'utf-8' codec can't decode byte 0x80")
        elif suffix in (".pt", ".pth") or path.name.lower().endswith((".pt.tar", ".pth.tar")):
            # a tensor saved with torch.save (read as text, it failed on undecodable bytes)
            array = load_file(path, what="gradient tensor saved with torch.save")
            if not isinstance(array, torch.Tensor):
                # here: the checkpoint module imports this one
                from .checkpoint import _payload_kind

                if _payload_kind(array) != "other":
                    raise ValueError(f"{path} is a model checkpoint, not a gradient matrix: "
                                     "pass it as weights")
                raise ValueError(f"{path} holds {type_with_article(array)}, not a gradient "
                                 "tensor: save the (n_regions, n_components) tensor alone")
            array = _tensor_values(array, path)
        elif suffix in (".csv", ".tsv", ".csv.gz", ".tsv.gz"):  # as for subjects
            try:
                array = np.asarray(read_csv_table(path, column="gradient", last_column=False))
            except (ValueError, UnicodeDecodeError, *_GZIP_ERRORS) as error:
                if path.name.lower().endswith(".gz"):
                    _refuse_a_damaged_gzip(path, error)
                raise ValueError(f"{path} is not a numeric gradient table (one row per region, "
                                 f"one column per gradient; an optional header line): {error}"
                                 ) from error
        else:
            try:
                # blank and "#" lines (np.savetxt's header) count in skiprows, not as the
                # header; a byte-order mark is no header (it made the first region's row one).
                # What follows a '#' is dropped as numpy drops it: a row's trailing comment
                # (0.5 0.25 # r1) counted as cells, which made a data row a header
                with _open_text(path, encoding="utf-8-sig") as file:
                    found = ((n, line) for n, line in enumerate(map(_uncommented, file))
                             if line.strip())
                    (number, first_line), (_, second_line) = (next(found, (0, "")),
                                                              next(found, (0, "")))
                    # names, or integer column names above fractions (pandas'
                    # to_csv(sep=" ") writes 0 1 2 ...), are a header, as in a .csv table
                    header = has_header_line(first_line, second_line,
                                             later_lines=(line for _, line in found))
                skipped = number + 1 if header else 0
                _refuse_rows_named_by_regions(first_line, second_line)
                # before np.loadtxt, which reads no rows as shape (0, 1) with a warning
                check_has_rows(first_line, second_line, bool(skipped), comments=True)
                names = _names_in(first_line) if skipped else None
                n_cells = len(second_line.split())
                if skipped and n_cells > len(names):  # fewer names: unnamed columns before them
                    index = (" (a table index, which pandas' to_csv writes unless "
                             "index=False: remove it)" if len(names) + 1 == n_cells else "")
                    raise ValueError(f"its header line names {len(names)} columns but its rows "
                                     f"have {n_cells}{index}")
                with _open_text(path, encoding="utf-8-sig") as file:
                    array = np.loadtxt(file, ndmin=2, skiprows=skipped)
                # a named index (to_csv of a frame whose index has a name) or none named
                # (header=False) is a column as any other: refused as in a .csv table
                check_index_column(array, "gradient", names[0] if names else None)
            except (ValueError, UnicodeDecodeError, *_GZIP_ERRORS) as error:
                if path.name.lower().endswith(".gz"):
                    _refuse_a_damaged_gzip(path, error)
                raise ValueError(
                    f"{path} is not a numeric gradient table (one row per region, one column "
                    f"per gradient; an optional header line): {error}"
                ) from error
        name = str(path)
    else:
        name = "the gradient array"
        if source is None:
            raise ValueError("the gradients are None: give a gradient matrix (n_regions, "
                             "n_components) or the path of one")
        if sparse.issparse(source):  # NumPy makes an object scalar of it: "not numeric"
            raise ValueError(f"{name} is a sparse {type(source).__name__}: pass its dense "
                             "values (gradients.toarray())")
        if isinstance(source, torch.Tensor):
            source = _tensor_values(source, name)
        elif hasattr(source, "detach"):  # another library's tensor
            source = source.detach().cpu().numpy()
        try:
            array = np.asarray(source)
        except ValueError:  # NumPy's "inhomogeneous shape"
            raise ValueError(f"{name} has rows of different lengths: it must be a 2-D "
                             "(n_regions, n_components) matrix") from None
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} is not numeric (dtype {array.dtype})")
    if np.iscomplexobj(array):  # casting would drop the imaginary parts with only a warning
        raise ValueError(f"{name} holds complex values (dtype {array.dtype}); pass the real "
                         "part or the magnitude")
    # C order whatever the source: a DataFrame's values are Fortran-ordered (pandas 3), and
    # BrainSpace's alignment then rounded differently from the same values as an array
    array = np.array(array, dtype=np.float64, order="C")  # a copy, as astype made
    if array.ndim != 2 or array.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 2-D (n_regions, n_components) matrix, "
            f"got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return array


_APPROACHES = ("dm", "le", "pca")
_KERNELS = ("pearson", "spearman", "cosine", "normalized_angle", "gaussian")
_KINDS = ("timeseries", "connectivity")
# Correlations are clipped this far inside (-1, 1) before arctanh so that perfect correlations
# (the diagonal, duplicated regions) stay finite in Fisher-z space.
_Z_EPS = 1e-7
# Subjects whose connectivity is computed together: 16 x 450 x 450 float64 matrices are 26 MB,
# and a corpus of any size is read 16 subjects at a time.
CONNECTIVITY_CHUNK = 16

#: The settings of how gradients are computed: a subject's at transform as the group's at fit.
_METHOD_PARAMETERS = ("approach", "kernel", "sparsity", "kind")


def _check_correlations_finite(chunk, series, start):
    """Refuse subjects whose correlation matrix is not finite: values so large (or small)
    that their squares overflow (or underflow) in float64, which BrainSpace then reported as
    "Input contains NaN" of input that holds none. ``series`` are the chunk's subjects,
    the first of them subject ``start``."""
    bad = np.flatnonzero(~np.isfinite(chunk).reshape(len(chunk), -1).all(axis=1))
    for k in bad:
        if not np.isfinite(np.asarray(series[k], dtype=np.float64)).all():
            # let through unchecked by scikit-learn's assume_finite=True
            raise ValueError(not_finite_message(start + int(k)))
    if bad.size:
        i = start + int(bad[0])
        largest = float(np.abs(np.asarray(series[bad[0]], dtype=np.float64)).max())
        raise ValueError(
            f"subject {i}'s correlation matrix holds NaN or infinite values: its series (largest "
            f"|value| {largest:.3g}) are too large or too small to be standardized in float64; "
            "rescale them first (e.g. x / np.abs(x).max())")


def _correlations(series, start):
    """The correlation matrices (nilearn's ``ConnectivityMeasure``, Ledoit-Wolf shrunk) of
    ``series``, a chunk of subjects whose first is subject ``start``, as a float64
    ``(n, n_regions, n_regions)`` stack; subjects whose matrix is not finite are refused."""
    from nilearn.connectome import ConnectivityMeasure

    # one subject's correlation does not depend on the others: chunks change nothing
    measure = ConnectivityMeasure(kind="correlation")
    with catch_warnings():
        # nilearn 0.11 warns that its z-scoring divides by the population std, not the
        # sample's: a factor common to every region, which the correlation does not see
        warnings.filterwarnings("ignore", "The default strategy for standardize",
                                DeprecationWarning)
        chunk = measure.fit_transform(series)
    chunk = np.asarray(chunk, dtype=np.float64)
    _check_correlations_finite(chunk, series, start)
    return chunk


class _FisherZSum:
    """Sums of correlation matrices added a stack at a time, for their mean in Fisher-z
    space (:meth:`mean`)."""

    def __init__(self):
        self.z_sum = self.diagonal_sum = None
        self.count = 0

    def add(self, matrices):
        clipped = np.clip(matrices, -1.0 + _Z_EPS, 1.0 - _Z_EPS)
        z = np.arctanh(clipped).sum(axis=0)
        diagonal = np.diagonal(matrices, axis1=1, axis2=2).sum(axis=0)
        self.z_sum = z if self.z_sum is None else self.z_sum + z
        self.diagonal_sum = (diagonal if self.diagonal_sum is None
                             else self.diagonal_sum + diagonal)
        self.count += len(matrices)

    def mean(self):
        mean = np.tanh(self.z_sum / self.count)
        np.fill_diagonal(mean, self.diagonal_sum / self.count)
        return mean


def _fisher_z_mean(chunks):
    """Average correlation matrices in Fisher-z space; the diagonal is averaged plainly.

    ``chunks`` yields ``(n, n_regions, n_regions)`` stacks, so that the subjects of a large
    corpus never all sit in memory; one chunk gives exactly numpy's mean over it.
    """
    sums = _FisherZSum()
    for matrices in chunks:
        sums.add(matrices)
    return sums.mean()


class _GroupConnectivity:
    """The group connectivity that :class:`GradientPositioner`'s ``fit`` computes from time
    series, computed from subjects given one at a time as another pass reads them (the
    pretrainer's check of its files), so that the fit need not read them again.

    The subjects' correlation matrices are computed ``CONNECTIVITY_CHUNK`` subjects at a
    time, as the fit computes them, and summed: the memory of one chunk, whatever the
    number of subjects. An error of a chunk (a correlation that is not finite) is kept and
    raised by :meth:`group`, where the fit meets it.
    """

    def __init__(self):
        self._chunk, self._sums, self._error = [], _FisherZSum(), None
        self._first = None  # the first subject's matrix: the group of one subject
        self.n_subjects = 0
        #: the subjects the fit reads before it meets the error of a chunk (not finite):
        #: up to that chunk's last (None without an error met so far)
        self.n_read_by_fit = None

    def add(self, series):
        """Take the next subject's ``(n_timepoints, n_regions)`` series (float64)."""
        self.n_subjects += 1
        if self._error is None:
            self._chunk.append(series)
            if len(self._chunk) == CONNECTIVITY_CHUNK:
                self._add_chunk()

    def _add_chunk(self):
        chunk, self._chunk = self._chunk, []
        if not chunk or self._error is not None:
            return
        try:
            matrices = _correlations(chunk, self._sums.count)
            if self._first is None:
                self._first = matrices[0].copy()
            self._sums.add(matrices)
        except Exception as error:  # raised where the fit computes the group
            self._error = error
            self.n_read_by_fit = self._sums.count + len(chunk)

    def group(self):
        """The group connectivity of the subjects given, before symmetrization, as the fit
        computes it (a single subject's own matrix); raises the error of the first chunk
        that had one."""
        self._add_chunk()
        if self._error is not None:
            raise self._error
        if self._sums.count == 1:
            return self._first
        return self._sums.mean()

    def of_checked_files(self, subjects):
        """What :meth:`GradientPositioner._fit_with_group` takes for ``subjects``, whose
        check gave this every subject: a callable that gives :meth:`group` once every file
        whose stamp changed since is read again (a :class:`~brainjepa_sk.files.
        FileChangedError` where its series did, else the series checked). None where
        ``subjects`` are not files all checked with a stamp (a file without one may read
        otherwise since, unnoticed), or not all gave this their series: those are read."""
        if not (isinstance(subjects, SubjectFiles) and self.n_subjects == len(subjects)
                and subjects._stamped(range(len(subjects)))):
            return None

        def group():
            # a chunk's error comes before any file of the later chunks is read
            read = len(subjects) if self.n_read_by_fit is None else self.n_read_by_fit
            subjects._read_changed(range(read))
            return self.group()

        return group


def _off_diagonal_below_one(matrices):
    off_diagonal = ~np.eye(matrices.shape[1], dtype=bool)
    return bool((np.abs(matrices[:, off_diagonal]) < 1).all())


def _checked_kernel(kernel, n_regions):
    """``kernel`` as given to BrainSpace; a callable's output is checked to be the
    ``(n_regions, n_regions)`` affinity matrix of numbers (BrainSpace's errors for another
    shape, "too large for an affinity matrix of size 3" or "Array is not square", named no
    kernel)."""
    if not callable(kernel):
        return kernel

    def checked(connectivity):
        returned = kernel(connectivity)
        try:  # (BrainSpace takes no sparse matrix either: one is named as such)
            affinity = np.asarray(returned)
        except (TypeError, ValueError):  # ragged lists
            affinity = np.asarray(None)
        if affinity.dtype.kind not in "biuf":
            given = (type_with_article(returned) if affinity.ndim == 0 or affinity.dtype == object
                     else f"an array of {affinity.dtype}")
        elif affinity.shape != (n_regions, n_regions):
            given = f"an array of shape {affinity.shape}"
        else:
            return affinity
        name = getattr(kernel, "__qualname__", None) or repr(kernel)
        raise ValueError(
            f"kernel {name} returned {given} for {n_regions} regions: a kernel callable takes "
            f"the sparsified ({n_regions}, {n_regions}) connectivity and returns the "
            f"({n_regions}, {n_regions}) affinity between the regions, as numbers")

    return checked


def _module_named(filename):
    """The name of the imported module whose file is ``filename`` (what ``warnings.warn``
    filters by), or None (then ``warn_explicit`` takes the file name)."""
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return name
    return None


class GradientPositioner(NestedParamsMixin, SubjectsTransformerMixin, BaseEstimator):
    """Connectivity gradients of brain regions, for the group and for each subject.

    Gradient positioning (Brain-JEPA) places every region by its coordinates on the main axes of
    functional connectivity. ``fit`` computes those coordinates once for the group with
    BrainSpace's :class:`brainspace.gradient.GradientMaps` (diffusion map of a normalized-angle
    affinity of the group connectivity, by default); ``gradients_`` is then the
    ``(n_regions, n_components)`` matrix that a Brain-JEPA model takes as its region positions.
    ``transform`` computes each subject's own gradients the same way, rotates them onto the group
    gradients (Procrustes) and returns them flattened, region-major, as features.

    Parameters
    ----------
    n_components : int, default=30
        Number of gradients. With ``approach="dm"`` or ``"le"`` at most ``n_regions - 2``, with
        ``"pca"`` at most ``n_regions - 1``.
    approach : {"dm", "le", "pca"}, default="dm"
        Embedding: diffusion map, Laplacian eigenmaps or PCA (BrainSpace's names).
    kernel : {"normalized_angle", "cosine", "pearson", "spearman", "gaussian"}, callable or None, \
            default="normalized_angle"
        Affinity between regions' connectivity profiles (BrainSpace's ``kernel``). ``None`` uses
        the sparsified connectivity itself. A callable takes the sparsified
        ``(n_regions, n_regions)`` connectivity and returns the ``(n_regions, n_regions)``
        affinity as numbers (another output is refused, naming the kernel).
    sparsity : float or None, default=0.9
        Fraction of the weakest connections zeroed in each region's row before the kernel is
        applied. At least two connections per row must remain, i.e.
        ``int(n_regions * (1 - sparsity)) >= 2``. ``None`` or 0 keeps all.
    kind : {"timeseries", "connectivity"}, default="timeseries"
        What ``X`` holds. ``"timeseries"``: subjects' ROI time series, list of
        ``(n_timepoints, n_regions)`` arrays or DataFrames, a 3-D array, or files (a glob or a
        list of paths, one subject each; see :mod:`brainjepa_sk.files`); each subject's
        connectivity is nilearn's ``ConnectivityMeasure(kind="correlation")`` (Ledoit-Wolf
        shrunk). ``"connectivity"``: connectivity matrices, ``(n_subjects, n_regions, n_regions)``
        or a single ``(n_regions, n_regions)`` matrix (array or DataFrame; a DataFrame's rows
        are matched to its columns by name when its index names them). A subject given with
        ``"timeseries"`` that looks like a connectivity matrix (square and symmetric, with a
        constant diagonal or positive semi-definite) is refused, as by every estimator.
    reference : array-like of shape (n_regions, k) or path, default=None
        Gradients to align the group gradients to, with ``k >= n_components`` (only the first
        ``n_components`` columns are used), e.g. a published gradient file; loaded with
        :func:`~brainjepa_sk.gradients.load_gradients`. A DataFrame indexed by the region names
        of ``X`` is put in the order of its columns; given ``X`` without names (arrays), its
        rows are used in order, with a warning. ``None`` keeps the group gradients as computed.
    random_state : int, RandomState instance or None, default=0
        Seeds the starting vector of the eigen-solver. With ``"le"`` the result does not
        otherwise depend on it, nor with ``"pca"`` on up to 500 regions (on more, with fewer
        components than 80% of the regions, scikit-learn's PCA runs a randomized SVD, which it
        seeds: seeds 0 and 1 gave eigenvalues 1e-5 apart, relatively, with 30 components of 600
        synthetic regions); with ``"dm"`` it does, a little, because BrainSpace runs a symmetric
        eigen-solver on the non-symmetric diffusion operator (seeds 1 to 19 moved the
        eigenvalues from those of seed 0 by up to 1% on the first 21 regions of BrainSpace's HCP
        Schaefer-100 group matrix, and by up to 2% on those of its Schaefer-400 one, with 3, 10
        or 19 components). The solver's starting vector is drawn in region order, so with
        ``"dm"`` the same regions in another order give gradients (in that order) as different
        as another seed would. Pass an int for identical output across calls: :meth:`transform`
        then embeds each subject with the same seed as the group in :meth:`fit` (the group
        connectivity transforms to ``gradients_``); a RandomState instance or ``None`` gives one
        seed a call, shared by its subjects. Either way a subject's features do not depend on
        the other subjects of the call.

    Attributes
    ----------
    gradients_ : ndarray of shape (n_regions, n_components)
        Group gradients (float64), aligned to ``reference`` when one is given; column 0 is the
        principal gradient. Signs as BrainSpace gives them: the largest-magnitude value of each
        ``"dm"`` and ``"le"`` gradient is positive, ``"pca"`` keeps scikit-learn's PCA signs.
    lambdas_ : ndarray of shape (n_components,)
        Eigenvalues of the group embedding, in the order BrainSpace returns them: descending
        for ``"dm"`` (diffusion-map multipliers) and ``"pca"`` (explained variances), ascending
        for ``"le"`` (normalized Laplacian eigenvalues, the smallest first). After alignment
        to ``reference`` a column of ``gradients_`` is a rotation of several original gradients,
        so these no longer pair one-to-one with its columns.
    group_connectivity_ : ndarray of shape (n_regions, n_regions)
        Group connectivity the gradients were computed from: the Fisher-z mean of the subjects'
        correlation matrices (plain mean where an off-diagonal value has ``|value| >= 1``, for
        ``kind="connectivity"``), symmetrized.
    n_features_in_ : int
        Number of regions seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_regions,)
        Region names (DataFrame columns) seen in ``fit``. Defined only when they were all strings.

    See Also
    --------
    brainjepa_sk.gradients.load_gradients : Read a gradient matrix from a file.
    brainspace.gradient.GradientMaps : The embedding used underneath.

    Notes
    -----
    Defaults follow the Brain-JEPA paper: 30 components of a diffusion map with the
    normalized-angle kernel at 90% sparsity (Margulies et al., 2016). The transformed features
    are laid out region-major: column ``r * n_components + c`` is gradient ``c`` of region ``r``.
    """

    _parameter_constraints = {
        "n_components": POSITIVE_INT,
        "approach": [StrOptions(set(_APPROACHES))],
        "kernel": [StrOptions(set(_KERNELS)), callable, None],
        "sparsity": [Range(numbers.Real, 0, 1, closed="left"), None],
        "kind": [StrOptions(set(_KINDS))],
        "reference": ["array-like", *OPTIONAL_PATH],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components=30,
        approach="dm",
        kernel="normalized_angle",
        sparsity=0.9,
        kind="timeseries",
        reference=None,
        random_state=0,
    ):
        self.n_components = n_components
        self.approach = approach
        self.kernel = kernel
        self.sparsity = sparsity
        self.kind = kind
        self.reference = reference
        self.random_state = random_state

    def _check_params(self, n_regions=None):
        # the types and ranges first (BrainSpace would take an unknown approach for "dm"),
        # then what depends on the number of regions (unless None: not known yet)
        try:
            check_parameters(self)
        except InvalidParameterError as error:
            if (isinstance(self.sparsity, numbers.Real) and not isinstance(self.sparsity, bool)
                    and 1 < self.sparsity < 100):
                # the paper's "90% sparsity" given as a percentage
                raise InvalidParameterError(
                    f"{str(error).rstrip('.')}: sparsity is a fraction, "
                    f"sparsity={self.sparsity / 100:g} for {self.sparsity:g}% of each region's "
                    "connections removed") from None
            raise
        if n_regions is None:
            return
        # every limit that depends on the atlas at once: a small atlas often breaks several
        problems = []
        largest = self._most_components(n_regions)
        if self.n_components > largest:
            rule = (f"at most n_regions - {n_regions - largest} = {largest} with "
                    f"approach={self.approach!r}")
            if largest < 1 <= n_regions - 1:  # two regions: no n_components is a cure, "pca" is
                rule += f"; approach='pca' takes up to n_regions - 1 = {n_regions - 1}"
            problems.append(f"n_components={self.n_components} is too large for {n_regions} "
                            f"regions: {rule}")
        if self.sparsity is not None and self.sparsity > 0:
            # BrainSpace keeps int(n * (1 - sparsity)) entries per row; with one left, each row
            # keeps only its diagonal and the affinity carries no structure. In float, as
            # BrainSpace is given it: Fraction(9, 10) keeps 1 of 20 as 0.9 does, not 2.
            kept = int(n_regions * (1 - float(self.sparsity)))
            if kept < 2:
                suggestion = _largest_sparsity(n_regions)
                # with 2 regions only sparsity=0 (keep all) does; no value lies below it
                lower = (f"e.g. {suggestion:.2f} or less" if suggestion > 0
                         else "sparsity=0 or None keeps all")
                problems.append(
                    f"sparsity={self.sparsity} keeps {kept} connection(s) per region out of "
                    f"{n_regions} regions; at least 2 are needed. Lower sparsity ({lower})"
                )
        if problems:
            raise ValueError("; ".join(problems))

    def _most_components(self, n_regions):
        """The most gradients ``approach`` gives for ``n_regions`` regions: the eigen-solver of
        "dm"/"le" also computes the trivial first eigenvector."""
        return n_regions - 2 if self.approach in ("dm", "le") else n_regions - 1

    def _for_atlas(self, n_regions):
        """A copy of the positioner with ``n_components`` and ``sparsity`` lowered as far as
        ``n_regions`` regions need (the rest as set), or None when none fits them."""
        settings = {"n_components": min(self.n_components, self._most_components(n_regions))}
        if self.sparsity is not None and self.sparsity > 0:
            settings["sparsity"] = min(self.sparsity, _largest_sparsity(n_regions))
        fitting = clone(self).set_params(**settings)
        try:
            fitting._check_params(n_regions)
        except ValueError:
            return None
        return fitting

    def _connectivity_chunks(self, data):
        """Per-subject connectivity matrices, ``(n, n_regions, n_regions)`` stacks of up to
        ``CONNECTIVITY_CHUNK`` subjects (files are read one chunk at a time)."""
        if self.kind == "connectivity":
            yield data
            return
        for start in range(0, len(data), CONNECTIVITY_CHUNK):
            yield _correlations(data[start : start + CONNECTIVITY_CHUNK], start)

    def _embed(self, matrix, random_state, what="the group connectivity", passed_on=None):
        """Gradients and eigenvalues of ``matrix``, and whether its affinity graph came out
        disconnected; ``what`` names the matrix in the error for embeddings that are not
        finite. BrainSpace's other warnings are passed on, except those already in
        ``passed_on`` (a set, which those passed on are added to)."""
        from brainspace.gradient import GradientMaps

        maps = GradientMaps(
            n_components=self.n_components,
            approach=self.approach,
            kernel=_checked_kernel(self.kernel, matrix.shape[0]),
            random_state=random_state,
        )
        # BrainSpace takes a Python float only (a NumPy float or a Fraction fails in it)
        sparsity = None if self.sparsity is None else float(self.sparsity)
        with catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            maps.fit(matrix, sparsity=sparsity)
        # BrainSpace returns reversed views; C-contiguous copies make later BLAS products (and
        # so transform) bit-identical before and after pickling.
        gradients = np.ascontiguousarray(maps.gradients_, dtype=np.float64)
        lambdas = np.ascontiguousarray(maps.lambdas_, dtype=np.float64)
        finite = bool(np.isfinite(gradients).all() and np.isfinite(lambdas).all())
        disconnected = False
        for warning in caught:
            text = str(warning.message)
            if text.startswith("Affinity is not symmetric") and self.kernel is None:
                # sparsified by rows, then symmetrized as intended (an asymmetric affinity
                # from a callable kernel is the user's to hear of)
                continue
            if text.startswith("Graph is not fully connected"):
                disconnected = True  # told by the caller, once, in this package's words
            elif finite or not issubclass(warning.category, RuntimeWarning):
                # once a transform, not once a subject: Python's default filter would show
                # it once, but the catch_warnings above resets what it has shown
                seen = (text, warning.category, warning.filename, warning.lineno)
                if passed_on is not None:
                    if seen in passed_on:
                        continue
                    passed_on.add(seen)
                # under the module that warned, so that filters by module still apply
                warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                       warning.lineno, module=_module_named(warning.filename),
                                       source=warning.source)
        if not finite:
            raise ValueError(
                f"the gradients of {what} are not finite: with kernel={self.kernel!r} and "
                f"sparsity={self.sparsity}, its affinity graph falls apart into disconnected "
                f"parts{'' if disconnected else ' or is degenerate'}, where approach="
                f"{self.approach!r} is undefined. Use kernel='normalized_angle' (the default, "
                "never negative), a lower sparsity, or approach='pca'")
        return gradients, lambdas, disconnected

    def _warn_disconnected(self, what):
        warn_user(
            f"the affinity graph of {what} (kernel={self.kernel!r}, sparsity={self.sparsity}) "
            "falls apart into disconnected parts: the first gradients separate those parts "
            "instead of ordering the regions. Use kernel='normalized_angle' (the default, never "
            "negative), a lower sparsity, or approach='pca'")

    def fit(self, X, y=None):
        """Compute the group connectivity and its gradients.

        Parameters
        ----------
        X : list of array-like of shape (n_timepoints, n_regions), or array-like
            With ``kind="timeseries"``: subjects' ROI time series (list of 2-D arrays or
            DataFrames, a 3-D array ``(n_subjects, n_timepoints, n_regions)``, or files: a glob
            or a list of paths, read one at a time; text files, where no ``.npy`` file is
            among them, are parsed once, their connectivity computed as their check reads
            them). With
            ``kind="connectivity"``: ``(n_subjects, n_regions, n_regions)`` or one
            ``(n_regions, n_regions)`` matrix.
        y : None
            Ignored.

        Returns
        -------
        self : GradientPositioner
            The fitted estimator.

        Raises
        ------
        ValueError
            Invalid input or parameters, ``n_components`` too large for the number of regions,
            a ``reference`` whose shape does not fit, or gradients that are not finite (an
            affinity graph in disconnected parts, which a diffusion map cannot embed; such a
            graph is warned of where the embedding stays finite). A failed fit leaves the
            estimator as it was.
        """
        # A failed fit leaves the estimator as it was (validate_subjects records the regions
        # on it first).
        with restore_on_error(self):
            self._fit(X)
        return self

    def _fit_with_group(self, X, group_of_check):
        """:meth:`fit` on the time series ``X`` whose group connectivity is computed
        already: ``group_of_check()`` returns it (what :meth:`_GroupConnectivity.group`
        returns), called where fit would compute it from ``X``, which is not read for it."""
        with restore_on_error(self):
            self._fit(X, group_of_check)
        return self

    def _fit(self, X, group_of_check=None):
        self._check_params()  # before reading X, as scikit-learn's estimators check theirs
        if self.kind == "connectivity":
            data, names = validate_connectivity(X)
            n_regions = data.shape[1]
            record_subjects_column(self, X)  # validate_subjects does it for time series
        else:
            # text files: their group connectivity is computed as their check reads them,
            # rather than from a second parse (the pretrainer gives its own check's,
            # connectivity); a corpus with .npy files is read again (each_checked_file)
            checked = _GroupConnectivity() if group_of_check is None else None
            with each_checked_file(None if checked is None else checked.add):
                data = validate_subjects(X, estimator=self, reset=True, min_timepoints=3,
                                         lazy=True)
            if checked is not None:
                group_of_check = checked.of_checked_files(data)
            n_regions = self.n_features_in_
            names = getattr(self, "feature_names_in_", None)
        self._check_params(n_regions)
        reference = None
        if self.reference is not None:
            reference = align_gradient_rows(self.reference, load_gradients(self.reference),
                                            names, what="reference")
            named = named_gradients(self.reference, "reference")
            if reference.shape[0] != n_regions:
                raise ValueError(
                    f"{named} has {reference.shape[0]} rows but X has {n_regions} regions; "
                    "it must be (n_regions, n_components)"
                )
            if reference.shape[1] < self.n_components:
                raise ValueError(
                    f"{named} has {reference.shape[1]} columns, fewer than "
                    f"n_components={self.n_components}"
                )
            reference = reference[:, : self.n_components]
            labels = gradient_region_names(self.reference)
            if names is None and labels is not None:
                # nothing to match the names to, nor any later use for them (the pretrainer
                # keeps its own gradients' index as the model's region names)
                warn_user(
                    f"reference is indexed by region names ({labels[:3]!r}...) but X has none "
                    "(arrays, not DataFrames): its rows are used in order, as X's columns. To "
                    "match them by name, give X with those names (DataFrame columns); to use "
                    "them in order without this warning, give reference as an array "
                    "(reference.to_numpy())")

        if group_of_check is not None:
            group = group_of_check()
        elif len(data) == 1:
            group = next(self._connectivity_chunks(data))[0].copy()
        elif self.kind == "timeseries" or _off_diagonal_below_one(data):
            group = _fisher_z_mean(self._connectivity_chunks(data))
        else:
            group = data.mean(axis=0)
        group = (group + group.T) / 2

        gradients, lambdas, disconnected = self._embed(group,
                                                       check_random_state(self.random_state))
        if disconnected:
            self._warn_disconnected("the group connectivity")
        if reference is not None:
            gradients = _align(gradients, reference)

        self.gradients_ = gradients
        self.lambdas_ = lambdas
        self.group_connectivity_ = group
        self._fitted_with_ = {name: getattr(self, name) for name in _METHOD_PARAMETERS}
        self.n_features_in_ = n_regions
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def transform(self, X):
        """Each subject's gradients, aligned to the group gradients and flattened.

        Parameters
        ----------
        X : list of array-like of shape (n_timepoints, n_regions), or array-like
            Same layout as in :meth:`fit`, with the regions seen in ``fit``. Each subject's
            connectivity is symmetrized, as the group's is in ``fit``. A warning of
            BrainSpace's is passed on once a call, not once a subject.

        Returns
        -------
        ndarray of shape (n_subjects, n_regions * n_components)
            Float64 features, region-major: column ``r * n_components + c`` is gradient ``c`` of
            region ``r`` (see :meth:`get_feature_names_out`).

        Raises
        ------
        ValueError
            Invalid input, a region count or region names that differ from ``fit``, or
            ``n_components``, ``approach``, ``kernel``, ``sparsity`` or ``kind`` changed since
            ``fit`` (a subject's gradients are computed as the group's and aligned to them).
        """
        check_is_fitted(self, "gradients_")
        self._check_params(self.n_features_in_)  # invalid values named as such first
        n_fitted = self.gradients_.shape[1]
        if self.n_components != n_fitted:
            # each subject's gradients are aligned to the group's: they need as many columns
            raise ValueError(
                f"n_components={self.n_components} was set after fit, which computed {n_fitted} "
                "group gradients: fit again to use it"
            )
        changed = changed_settings(self, getattr(self, "_fitted_with_", None))
        if changed:
            # each subject's gradients are aligned to the group's: by the same method
            raise ValueError(
                f"{', '.join(changed)}: set after fit, which computed the group gradients "
                "with the other setting: fit again to use it")
        if self.kind == "connectivity":
            data, names = validate_connectivity(X)
            check_n_regions(data.shape[1], self.n_features_in_, what="fitted with",
                            name=type(self).__name__)
            fitted = getattr(self, "feature_names_in_", None)
            if names is not None and fitted is not None and not np.array_equal(names, fitted):
                raise ValueError(
                    "the region names (DataFrame columns) differ from those seen in fit: "
                    f"{first_name_difference(names, fitted)}"
                )
            warn_names_seen_once(names, fitted, type(self).__name__)
        else:
            data = validate_subjects(X, estimator=self, reset=False, min_timepoints=3,
                                     lazy=True)
        # Every subject is embedded with the same randomness, so that its features do not depend
        # on the rest of the batch: an int seeds a fresh generator per subject (BrainSpace
        # makes one of it), as the group's in fit, so that a subject whose connectivity is the
        # group's gets the group gradients; a RandomState instance or None gives one int a call.
        seed = (self.random_state if isinstance(self.random_state, numbers.Integral)
                else check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        features, n_disconnected, passed_on = [], 0, set()
        for matrices in self._connectivity_chunks(data):
            for matrix in matrices:
                # symmetrized as the group is in fit: a matrix is taken with rounding-level
                # asymmetry (a saved file's), which BrainSpace's row-wise sparsity would see
                matrix = (matrix + matrix.T) / 2
                gradients, _, disconnected = self._embed(
                    matrix, seed, f"subject {len(features)}", passed_on=passed_on)
                n_disconnected += disconnected
                features.append(_align(gradients, self.gradients_).ravel())
        if n_disconnected:
            self._warn_disconnected(f"{n_disconnected} of {len(features)} subjects")
        features = np.asarray(features, dtype=np.float64)
        one_frame = hasattr(X, "iloc") and getattr(X, "ndim", None) == 2
        if one_frame and _get_output_config("transform", self)["dense"] == "pandas":
            # One labelled matrix (or one subject's DataFrame) gives one row: scikit-learn's
            # pandas output would give it the frame's index (one label per region or timepoint),
            # so the frame is built here. A pandas Series of subjects keeps its index.
            import pandas as pd

            return pd.DataFrame(features, columns=self.get_feature_names_out())
        return rows_indexed_like(X, features, self)

    def get_feature_names_out(self, input_features=None):
        """Names of the transformed features: ``{region}_gradient{c}``, region-major.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Region names. ``None`` uses ``feature_names_in_`` when defined, else
            ``region0``, ``region1``, ... If given, must match ``feature_names_in_`` when that is
            defined and have ``n_features_in_`` entries. The name of the pandas Series of
            subjects given to ``fit`` alone (what ``ColumnTransformer`` passes for a table's
            column of series) names no region and is not used.

        Returns
        -------
        ndarray of str, dtype object, shape (n_regions * n_components,)
            ``"{region}_gradient{c}"`` with ``c`` counted from 0, in the column order of
            :meth:`transform`.
        """
        check_is_fitted(self, "gradients_")
        fitted = getattr(self, "feature_names_in_", None)
        input_features = self._region_input_features(input_features)
        if input_features is None:
            regions = (
                fitted if fitted is not None else [f"region{r}" for r in range(self.n_features_in_)]
            )
        else:
            regions = np.asarray(input_features, dtype=object)
            if len(regions) != self.n_features_in_:
                raise ValueError(
                    f"input_features has {len(regions)} names but {self.n_features_in_} regions "
                    "were seen in fit"
                )
            if fitted is not None and not np.array_equal(regions, fitted):
                n_differences, examples = name_differences(
                    list(regions), list(fitted),
                    "input_features[{i}] is {own!r} but feature_names_in_[{i}] is {other!r}")
                raise ValueError(f"input_features is not equal to feature_names_in_: "
                                 f"{examples} ({n_differences} in all)")
        n_components = self.gradients_.shape[1]
        return np.asarray(
            [f"{region}_gradient{c}" for region in regions for c in range(n_components)],
            dtype=object,
        )

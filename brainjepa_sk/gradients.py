"""Gradient coordinates of brain regions (the positions used by gradient positioning)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["load_gradients"]


def load_gradients(source):
    """Load a region x component gradient matrix.

    Parameters
    ----------
    source : str, path-like or array-like
        A ``.npy`` file, a text file (``.csv`` comma-separated, anything else whitespace- or
        tab-separated; an optional header line is skipped), or an array of shape
        ``(n_regions, n_components)``. The research atlas file ``gradient_mapping_450.csv``
        (450 rows, 30 columns, no header) loads as it is.

    Returns
    -------
    numpy.ndarray
        ``(n_regions, n_components)`` float64 array.

    Raises
    ------
    ValueError
        If the matrix is not 2-D, is empty, or holds NaN or infinite values.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"gradient file not found: {path}")
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            delimiter = "," if path.suffix == ".csv" else None
            try:
                array = np.loadtxt(path, delimiter=delimiter, ndmin=2)
            except ValueError:  # a header line
                array = np.loadtxt(path, delimiter=delimiter, ndmin=2, skiprows=1)
        name = str(path)
    else:
        if hasattr(source, "detach"):  # torch tensor
            source = source.detach().cpu().numpy()
        array = np.asarray(source)
        name = "the gradient array"
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} is not numeric (dtype {array.dtype})")
    array = array.astype(np.float64)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 2-D (n_regions, n_components) matrix, "
            f"got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return array

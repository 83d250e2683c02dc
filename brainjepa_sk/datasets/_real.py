"""Real fMRI data sets as ROI time series, through nilearn's fetchers.

:func:`load_development_fmri` parcellates nilearn's movie-watching development data set
(children and adults) with a Schaefer 2018 atlas; :func:`load_abide` reads the ROI time
series that the Preprocessed Connectomes Project computed for ABIDE I. Both return ``(X, y)``
like :func:`~brainjepa_sk.datasets.make_brain_dynamics`: ``X`` a list of
``(n_timepoints, n_regions)`` float arrays (nilearn orientation), ``y`` a pandas DataFrame of
phenotypes with one row per subject, in the order of ``X``.

The data are downloaded by nilearn on the first call and cached (``data_dir``, otherwise
nilearn's default, ``~/nilearn_data`` or the ``NILEARN_DATA`` environment variable); nothing is
fetched at import time. The fetchers are looked up on :mod:`nilearn.datasets` at call time.
"""

from __future__ import annotations

import numbers
import os
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Options, StrOptions, validate_params

from .._warnings import catch_warnings, warn_user
from ..validation import Range
from ._weights import checked_data_dir

__all__ = ["load_abide", "load_development_fmri"]

_SCHAEFER_N_ROIS = tuple(range(100, 1001, 100))
_SCHAEFER_NETWORKS = (7, 17)
_SCHAEFER_RESOLUTIONS = (1, 2)
_DEVELOPMENT_T_R = 2.0  # seconds; nilearn's fetcher reports it as ``t_r``

_ABIDE_PIPELINES = ("cpac", "ccs", "dparsf", "niak")
_ABIDE_ROI_DERIVATIVES = (
    "rois_aal",
    "rois_cc200",
    "rois_cc400",
    "rois_dosenbach160",
    "rois_ez",
    "rois_ho",
    "rois_tt",
)
_CONSTANT_REGIONS = ("keep", "drop_subjects", "drop_regions")

# Repetition time (s) of each ABIDE I site's resting-state scans, by SITE_ID. The PCP's ROI
# files carry no header; these are the TRs of the sites' images as their NIfTI headers give
# them, one value for every scan of a site (see load_abide's Notes for the sources).
_ABIDE_SITE_T_R = {
    "CALTECH": 2.0,
    "KKI": 2.5,
    "MAX_MUN": 3.0,
    "NYU": 2.0,
    "OHSU": 2.5,
    "OLIN": 1.5,
    "PITT": 1.5,
    "SBL": 2.2,
    "SDSU": 2.0,
    "STANFORD": 2.0,
    "TRINITY": 2.0,
    "UCLA_1": 3.0,
    "UCLA_2": 3.0,
    "UM_1": 2.0,
    "UM_2": 2.0,
    "USM": 2.0,
    "YALE": 2.0,
}
# CMU shared two samples scanned at different TRs; FILE_ID (its prefix) tells them apart.
_ABIDE_SAMPLE_T_R = {"CMU": {"CMU_a": 2.0, "CMU_b": 1.5}}
# Sites whose scans have no common TR (each Leuven image header gives its own, 1.650 to
# 1.670 s): NaN by design, documented rather than warned about.
_ABIDE_NO_SITE_T_R = ("LEUVEN_1", "LEUVEN_2")


# --- small helpers ---------------------------------------------------------------------------


def _nilearn_datasets():
    """``nilearn.datasets``, imported when a loader runs (not when this package is imported)."""
    try:
        from nilearn import datasets
    except ImportError as exc:  # pragma: no cover - nilearn is a dependency
        raise ImportError("the real-data loaders need nilearn (pip install nilearn)") from exc
    return datasets


_N_SUBJECTS = [Range(numbers.Integral, 1, None, closed="left"), None]


def _as_str(value):
    """A label or an identifier as ``str`` (old nilearn versions return bytes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _as_frame(table, what):
    """A phenotypic table (DataFrame, record array or dict of columns) as a DataFrame."""
    if table is None:
        raise ValueError(f"the {what} fetcher returned no phenotypic table")
    frame = table.copy() if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    frame = frame.reset_index(drop=True)
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].map(
                lambda v: v.decode("utf-8") if isinstance(v, bytes) else v
            )
    return frame


def _require_columns(frame, columns, what):
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"the {what} phenotypic table has no column(s) {missing}; it has {list(frame.columns)}"
        )


# --- development fMRI (nilearn's movie-watching data, Schaefer atlas) -----------------------


def _label_names(atlas):
    """Map each label value of the atlas image to its name (str), background excluded.

    nilearn >= 0.11 returns a look-up table ``lut`` (columns ``index`` and ``name``) and labels
    that start with ``"Background"``; older versions return only the region names (possibly
    bytes), the i-th name being label value ``i + 1``.
    """
    lut = atlas.get("lut") if hasattr(atlas, "get") else None
    if isinstance(lut, pd.DataFrame) and {"index", "name"} <= set(lut.columns):
        return {
            int(index): _as_str(name)
            for index, name in zip(lut["index"], lut["name"])
            if _as_str(name).lower() != "background"
        }
    labels = atlas.get("labels") if hasattr(atlas, "get") else None
    if labels is None:
        return {}
    names = [_as_str(name) for name in labels]
    if names and names[0].lower() == "background":
        return {value: name for value, name in enumerate(names) if value > 0}
    return {value + 1: name for value, name in enumerate(names)}


def _region_ids(masker, labels_img):
    """Label values of the masker's output columns, in order."""
    region_ids = getattr(masker, "region_ids_", None)  # nilearn >= 0.10.3
    if isinstance(region_ids, dict):
        return [int(v) for key, v in region_ids.items() if key != "background"]
    # Older nilearn: every non-background value of the atlas image, sorted.
    from nilearn.image import get_data, load_img

    values = np.unique(np.asarray(get_data(load_img(labels_img))))
    return [int(v) for v in values if v != masker.background_label]


def _read_confounds(path):
    """A confounds TSV (fMRIPrep style, with a header) as a float array without NaN.

    fMRIPrep writes ``n/a`` in the first rows of derivative columns (e.g. framewise
    displacement); as in :func:`nilearn.interfaces.fmriprep.load_confounds`, a missing value is
    replaced by the next available value of its column (then the previous one); columns without
    any value are dropped.
    """
    try:
        table = pd.read_csv(path, sep="\t")
    except ValueError as exc:  # pandas' messages (and a binary file's) name no file
        raise ValueError(f"the confounds file {path} does not read as a table "
                         f"({str(exc).strip()}): damaged in the download cache? Delete it to "
                         "download it again") from None
    table = table.apply(pd.to_numeric, errors="coerce").dropna(axis=1, how="all")
    if table.shape[1] == 0:
        raise ValueError(f"the confounds file {path} has no numeric column")
    return table.bfill().ffill().to_numpy(dtype=np.float64)


def _align_to_files(phenotypes, ids, paths):
    """Reorder phenotype rows so that row i belongs to ``paths[i]`` (matched by participant id).

    A path belongs to an id when the id is one of the ``_``/``.``-separated parts of its file
    name (``sub-pixar123_task-pixar_...``). When no file name contains an id, the fetcher's
    order is kept; a partial or ambiguous match is an error.
    """
    tokens = [set(re.split(r"[_.]", Path(str(path)).name)) for path in paths]
    matches = [[row for row, pid in enumerate(ids) if pid in parts] for parts in tokens]
    if all(not match for match in matches):
        return phenotypes
    if all(len(match) == 1 for match in matches) and len({m[0] for m in matches}) == len(paths):
        return phenotypes.iloc[[match[0] for match in matches]].reset_index(drop=True)
    unmatched = [str(paths[i]) for i, match in enumerate(matches) if len(match) != 1]
    counts = Counter(match[0] for match in matches if len(match) == 1)
    shared = [str(paths[i]) for i, match in enumerate(matches)
              if len(match) == 1 and counts[match[0]] > 1]
    problems = [f"no or several ids for {unmatched[:3]}"] if unmatched else []
    problems += [f"one id for several images: {shared[:3]}"] if shared else []
    raise ValueError(
        "cannot match the functional images to the phenotypic table by participant id "
        f"({'; '.join(problems)})"
    )


@validate_params(
    {
        "n_subjects": _N_SUBJECTS,
        "n_rois": [Options(numbers.Integral, set(_SCHAEFER_N_ROIS))],
        "yeo_networks": [Options(numbers.Integral, set(_SCHAEFER_NETWORKS))],
        # a Range, not Options: True == 1 would pass as a resolution
        "resolution_mm": [Range(numbers.Integral, *_SCHAEFER_RESOLUTIONS, closed="both")],
        "confounds": ["boolean"],
        "as_frames": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def load_development_fmri(
    n_subjects=None,
    n_rois=100,
    yeo_networks=7,
    resolution_mm=2,
    data_dir=None,
    confounds=True,
    verbose=0,
    *,
    as_frames=False,
):
    """Movie-watching fMRI of children and adults, parcellated with a Schaefer atlas.

    Fetches nilearn's development data set (:func:`nilearn.datasets.fetch_development_fmri`:
    155 subjects, 122 children aged 3-12 and 33 adults, watching a Pixar short; fMRIPrep
    preprocessing, 4 mm, TR 2 s, 168 frames) and the Schaefer 2018 atlas
    (:func:`nilearn.datasets.fetch_atlas_schaefer_2018`), and extracts each subject's regional
    mean time series with :class:`nilearn.maskers.NiftiLabelsMasker` (atlas resampled to the
    data, linear detrending, confound regression, z-scoring of each region).

    Parameters
    ----------
    n_subjects : int or None, default=None
        Number of subjects (all 155 with None). nilearn keeps the proportion of children and
        adults of the whole sample (one adult for 1, one of each for 2).
    n_rois : {100, 200, ..., 1000}, default=100
        Number of Schaefer regions.
    yeo_networks : {7, 17}, default=7
        Network order and names of the Schaefer regions.
    resolution_mm : {1, 2}, default=2
        Resolution of the atlas image (it is resampled to the 4 mm data either way).
    data_dir : str or path-like, optional
        Where nilearn caches the data and the atlas (nilearn's default when None).
    confounds : bool, default=True
        Regress each subject's fMRIPrep confounds (the reduced set nilearn provides: six motion
        parameters, framewise displacement, white matter, CSF and six aCompCor components) out
        of the region signals. Missing values (``n/a`` in the first frame of derivative
        columns) take the next frame's value.
    verbose : int, default=0
        Verbosity of nilearn's fetchers and masker.
    as_frames : bool, default=False
        Return each subject as a pandas DataFrame whose columns are the atlas region names
        (e.g. ``"7Networks_LH_Vis_1"``) instead of a numpy array.

    Returns
    -------
    X : list of ndarray of shape (n_timepoints, n_regions), or list of DataFrame
        One float64 array per subject, time on the first axis, each region z-scored over time
        (sample standard deviation). Regions are in atlas order; ``n_regions`` is ``n_rois``
        unless a region has no voxel on the data grid.
    y : pandas.DataFrame of shape (n_subjects, 4)
        ``"age"`` (float, years), ``"group"`` (int: 1 = child, 0 = adult; from nilearn's
        ``Child_Adult`` column), ``"sex"`` (``"M"`` or ``"F"``, from ``Gender``; only when
        the table has it) and ``"participant_id"`` (str). Row ``i`` describes ``X[i]``; the
        index is ``0 .. n_subjects - 1``.

    Raises
    ------
    ValueError
        For parameters outside the listed values, a fetcher result without the expected
        fields, confounds that cannot be read, a functional image of a single volume, or
        subjects whose extracted regions differ.
    TypeError
        When ``data_dir`` is not a path.
    NotADirectoryError
        When ``data_dir`` is a file.

    See Also
    --------
    load_abide : ROI time series of ABIDE (autism and controls).
    make_brain_dynamics : Synthetic subjects in the same format.

    Notes
    -----
    The extraction is ``NiftiLabelsMasker(labels_img=atlas.maps, standardize="zscore_sample",
    detrend=True, t_r=2.0)``, with ``fit_transform(func, confounds=...)`` per subject; nothing
    is filtered in frequency. The first call downloads the images of all requested subjects.

    Examples
    --------
    >>> from brainjepa_sk.datasets import load_development_fmri
    >>> X, y = load_development_fmri(n_subjects=10)  # doctest: +SKIP
    >>> X[0].shape, y["group"].tolist()  # doctest: +SKIP
    ((168, 100), [0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    """
    n_subjects = None if n_subjects is None else int(n_subjects)
    checked_data_dir(data_dir)  # a file or no path: nilearn's OSError named no parameter
    n_rois, yeo_networks, resolution_mm = int(n_rois), int(yeo_networks), int(resolution_mm)
    confounds, as_frames = bool(confounds), bool(as_frames)

    from nilearn.image import load_img
    from nilearn.maskers import NiftiLabelsMasker

    datasets = _nilearn_datasets()
    # The atlas first: it is small, and a problem with it should not wait for the fMRI download.
    atlas = datasets.fetch_atlas_schaefer_2018(
        n_rois=n_rois,
        yeo_networks=yeo_networks,
        resolution_mm=resolution_mm,
        data_dir=data_dir,
        verbose=verbose,
    )
    data = datasets.fetch_development_fmri(
        n_subjects=n_subjects, data_dir=data_dir, verbose=verbose
    )

    funcs = data.get("func")
    funcs = [] if funcs is None else list(funcs)
    if not funcs:
        raise ValueError("fetch_development_fmri returned no functional images")
    confound_paths = None
    if confounds:
        confound_paths = data.get("confounds")
        if confound_paths is None or len(confound_paths) != len(funcs):
            raise ValueError(
                f"fetch_development_fmri returned {len(funcs)} functional images but "
                f"{'no' if confound_paths is None else len(confound_paths)} confounds files; "
                "pass confounds=False to extract without them"
            )
    phenotypes = _as_frame(data.get("phenotypic"), "development fMRI")
    _require_columns(phenotypes, ["participant_id", "Age", "Child_Adult"], "development fMRI")
    if len(phenotypes) != len(funcs):
        raise ValueError(
            f"fetch_development_fmri returned {len(funcs)} functional images but "
            f"{len(phenotypes)} phenotypic rows"
        )
    ids = [_as_str(pid) for pid in phenotypes["participant_id"]]
    phenotypes = _align_to_files(phenotypes, ids, funcs)

    t_r = data.get("t_r")
    t_r = float(t_r) if t_r is not None else _DEVELOPMENT_T_R
    masker = NiftiLabelsMasker(
        labels_img=atlas.maps,
        standardize="zscore_sample",
        detrend=True,
        t_r=t_r,
        reports=False,
        verbose=verbose,
    )
    names = _label_names(atlas)

    X = []
    columns = None
    for i, func in enumerate(funcs):
        subject_confounds = _read_confounds(confound_paths[i]) if confounds else None
        with catch_warnings():
            # nilearn 0.11 warns of a mask_img applied before the extraction whenever
            # keep_masked_labels is left at its default (this masker has no mask_img), and that
            # its z-scoring of the confounds divides by the population std (a scale the
            # regression of the confounds does not see)
            warnings.filterwarnings("ignore", 'Applying "mask_img" before signal extraction',
                                    DeprecationWarning)
            warnings.filterwarnings("ignore", "The default strategy for standardize",
                                    DeprecationWarning)
            signals = masker.fit_transform(func, confounds=subject_confounds)
        signals = np.asarray(signals, dtype=np.float64)
        # a 3-D image (one volume): nilearn squeezes its signals to 1-D, nilearn 0.11 gave one
        # row of them
        if signals.ndim != 2 or len(load_img(func).shape) == 3:
            raise ValueError(
                f"subject {i} ({func}): the functional image is a single 3-D volume, not a "
                "time series"
            )
        region_ids = _region_ids(masker, atlas.maps)
        if len(region_ids) != signals.shape[1]:
            raise ValueError(
                f"subject {i}: the masker returned {signals.shape[1]} regions but the atlas "
                f"has {len(region_ids)} labels on the data grid"
            )
        if columns is None:
            columns = region_ids
        elif region_ids != columns:
            own, first = set(region_ids) - set(columns), set(columns) - set(region_ids)
            how = (f"labels only in subject {i}: {sorted(own)}, only in subject 0: "
                   f"{sorted(first)}" if own or first else "the same labels in another order")
            raise ValueError(
                f"subject {i} ({func}) has other atlas regions on its grid than subject 0 "
                f"({len(region_ids)} vs {len(columns)} regions; {how})"
            )
        X.append(np.ascontiguousarray(signals))

    if as_frames:
        region_names = [names.get(value, f"region_{value}") for value in columns]
        X = [pd.DataFrame(x, columns=region_names) for x in X]

    child_adult = phenotypes["Child_Adult"].map(lambda v: _as_str(v).strip().lower())
    unknown = sorted(set(child_adult) - {"child", "adult"})
    if unknown:
        raise ValueError(f"unexpected Child_Adult values {unknown}; expected 'child' or 'adult'")
    y = pd.DataFrame(
        {
            "age": pd.to_numeric(phenotypes["Age"], errors="coerce").astype(np.float64),
            "group": (child_adult == "child").astype(np.int64),
        }
    )
    if "Gender" in phenotypes.columns:
        y["sex"] = phenotypes["Gender"].map(
            lambda v: _as_str(v).strip().upper() if pd.notna(v) else np.nan
        )
    y["participant_id"] = [_as_str(pid) for pid in phenotypes["participant_id"]]
    y.index = pd.RangeIndex(len(X))
    return X, y


# --- ABIDE (Preprocessed Connectomes Project ROI time series) --------------------------------


def _as_series(entry, i):
    """One subject's ROI series from the fetcher: an array, or the path of a ``.1D`` file."""
    if isinstance(entry, (str, os.PathLike)):
        try:
            with catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # numpy warns on an empty file
                entry = np.loadtxt(entry, ndmin=2)
        except ValueError as exc:  # numpy's messages (and a binary file's) name no file
            raise ValueError(f"subject {i}: {os.fspath(entry)} is not a numeric table "
                             f"({str(exc).strip()}): damaged in the download cache? Delete it "
                             "to download it again") from None
    try:
        return np.asarray(entry, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"subject {i}: the ROI time series is not numeric ({exc})") from None


def _abide_repetition_times(sites, file_ids):
    """Each subject's TR in seconds (NaN where unknown) and which unknowns are unexpected.

    ``sites`` are stripped SITE_ID values; ``file_ids`` the FILE_ID values (None when the
    table has no such column), which tell CMU's two samples apart. Returns the float array
    of TRs and, per subject, the site or sample that has no TR in the tables, or None (known,
    or a Leuven site whose NaN is by design).
    """
    t_r = np.full(len(sites), np.nan)
    unknown = [None] * len(sites)
    for i, site in enumerate(sites):
        if site in _ABIDE_SITE_T_R:
            t_r[i] = _ABIDE_SITE_T_R[site]
        elif site in _ABIDE_SAMPLE_T_R:
            file_id = None if file_ids is None else _as_str(file_ids[i]).strip()
            sample = (file_id or "").rsplit("_", 1)[0]  # "CMU_a_0050642" -> "CMU_a"
            if sample in _ABIDE_SAMPLE_T_R[site]:
                t_r[i] = _ABIDE_SAMPLE_T_R[site][sample]
            else:
                unknown[i] = (f"{site} with FILE_ID {file_id}" if file_id
                              else f"{site} without FILE_ID")
        elif site not in _ABIDE_NO_SITE_T_R:
            unknown[i] = site
    return t_r, unknown


def _abide_labels(phenotypes):
    _require_columns(phenotypes, ["SUB_ID", "SITE_ID", "DX_GROUP", "AGE_AT_SCAN", "SEX"], "ABIDE")
    dx = pd.to_numeric(phenotypes["DX_GROUP"], errors="coerce")
    if not dx.isin([1, 2]).all():
        raise ValueError(
            f"unexpected DX_GROUP values {sorted(set(dx[~dx.isin([1, 2])]))}; "
            "expected 1 (autism) or 2 (control)"
        )
    sex_codes = pd.to_numeric(phenotypes["SEX"], errors="coerce")
    sites = phenotypes["SITE_ID"].map(lambda v: _as_str(v).strip())
    file_ids = phenotypes["FILE_ID"].tolist() if "FILE_ID" in phenotypes.columns else None
    t_r, unknown_t_r = _abide_repetition_times(sites.tolist(), file_ids)
    labels = pd.DataFrame(
        {
            "diagnosis": (dx == 1).astype(np.int64),
            "age": pd.to_numeric(phenotypes["AGE_AT_SCAN"], errors="coerce").astype(np.float64),
            "sex": sex_codes.map({1: "M", 2: "F"}),
            "site": pd.Categorical(sites, categories=sorted(set(sites))),
            "subject_id": pd.to_numeric(phenotypes["SUB_ID"]).astype(np.int64),
            "t_r": t_r,
        }
    )
    return labels, unknown_t_r


@validate_params(
    {
        "n_subjects": _N_SUBJECTS,
        "derivatives": [StrOptions(set(_ABIDE_ROI_DERIVATIVES)), list, tuple],
        "pipeline": [StrOptions(set(_ABIDE_PIPELINES))],
        "band_pass_filtering": ["boolean"],
        "global_signal_regression": ["boolean"],
        "quality_checked": ["boolean"],
        "constant_regions": [StrOptions(set(_CONSTANT_REGIONS))],
        "as_frames": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def load_abide(
    n_subjects=None,
    derivatives="rois_cc200",
    pipeline="cpac",
    band_pass_filtering=True,
    global_signal_regression=False,
    quality_checked=True,
    data_dir=None,
    verbose=0,
    *,
    constant_regions="keep",
    as_frames=False,
):
    """ROI time series of ABIDE I (autism and typical controls), preprocessed by the PCP.

    Fetches the regional mean time series that the Preprocessed Connectomes Project computed
    for the Autism Brain Imaging Data Exchange I (:func:`nilearn.datasets.fetch_abide_pcp`;
    multi-site, resting state) and their phenotypes.

    Parameters
    ----------
    n_subjects : int or None, default=None
        Number of subjects to fetch (the first ones of the phenotypic table after the quality
        filter; all with None). Subjects dropped afterwards (see ``constant_regions``) are not
        replaced, so fewer may be returned.
    derivatives : str, default="rois_cc200"
        Which ROI time series: ``"rois_cc200"`` (Craddock 200), ``"rois_cc400"``,
        ``"rois_aal"``, ``"rois_ho"`` (Harvard-Oxford), ``"rois_tt"`` (Talairach),
        ``"rois_ez"`` (Eickhoff-Zilles) or ``"rois_dosenbach160"``. A list with one of them is
        accepted too.
    pipeline : {"cpac", "ccs", "dparsf", "niak"}, default="cpac"
        Preprocessing pipeline.
    band_pass_filtering : bool, default=True
        The band-pass filtered (0.01-0.1 Hz) series. Unlike nilearn's fetcher, filtered by
        default.
    global_signal_regression : bool, default=False
        The series with the global signal regressed out.
    quality_checked : bool, default=True
        Only subjects that passed the PCP's quality control.
    data_dir : str or path-like, optional
        Where nilearn caches the files (nilearn's default when None).
    verbose : int, default=0
        Verbosity of nilearn's fetcher.
    constant_regions : {"keep", "drop_subjects", "drop_regions"}, default="keep"
        What to do with regions whose signal is constant within a subject (ABIDE's CC200 series
        of some subjects have all-zero regions, outside their field of view). Constant regions
        carry no information, and the estimators of this package reject them.

        - ``"keep"``: return them as they are, with a warning that counts the subjects
          concerned.
        - ``"drop_subjects"``: leave out every subject with a constant region.
        - ``"drop_regions"``: leave out, in every subject, each region that is constant in at
          least one subject (all subjects keep the same regions; with ``as_frames=True`` the
          column names say which).
    as_frames : bool, default=False
        Return each subject as a pandas DataFrame whose columns name the regions by their
        column in the PCP files, ``"roi_0"``, ``"roi_1"``, ...

    Returns
    -------
    X : list of ndarray of shape (n_timepoints, n_regions), or list of DataFrame
        One float64 array per subject, as the PCP computed it (not standardized). The number
        of frames varies between sites, and so does the repetition time, which the PCP files
        do not record (``y["t_r"]`` gives it).
    y : pandas.DataFrame of shape (n_subjects, 6)
        ``"diagnosis"`` (int: 1 = autism, 0 = control; ABIDE's ``DX_GROUP`` is 1 = autism,
        2 = control), ``"age"`` (float, ``AGE_AT_SCAN``), ``"sex"`` (``"M"`` or ``"F"``; ABIDE's
        ``SEX`` is 1 = male, 2 = female), ``"site"`` (categorical, ``SITE_ID``),
        ``"subject_id"`` (int, ``SUB_ID``) and ``"t_r"`` (float, the repetition time of the
        subject's scan in seconds, from its site; NaN for the two Leuven sites, whose scans
        have no common TR, and for a site missing from the table; see Notes). Row ``i``
        describes ``X[i]``; the index is ``0 .. n_subjects - 1``.

    Raises
    ------
    ValueError
        For parameters outside the listed values, a fetcher result without the expected
        fields, subjects with different numbers of regions, or no usable subject at all.
    TypeError
        When ``data_dir`` is not a path.
    NotADirectoryError
        When ``data_dir`` is a file.

    Warns
    -----
    UserWarning
        When subjects are left out because their series is empty, has fewer than two
        timepoints or non-finite values (always), or has constant regions
        (``constant_regions="drop_subjects"``); when regions are left out
        (``"drop_regions"``); when constant regions are kept (``"keep"``); and when the
        repetition time of a returned subject's site is not known (its ``"t_r"`` is NaN).

    See Also
    --------
    load_development_fmri : Children and adults, parcellated with a Schaefer atlas.
    brainjepa_sk.preprocessing.resample : Resample a subject's series to another TR.

    Notes
    -----
    The estimators take one ``t_r``: to pool sites, resample each subject from its
    ``y["t_r"]`` to one TR with :func:`~brainjepa_sk.preprocessing.resample`, then give the
    estimator that TR.

    ``"t_r"`` comes from a table of the ABIDE I sites' TRs (by ``SITE_ID``): 1.5 s for OLIN and
    PITT; 2.0 s for CALTECH, NYU, SDSU, STANFORD, TRINITY, UM_1, UM_2, USM and YALE; 2.2 s for
    SBL; 2.5 s for KKI and OHSU; 3.0 s for MAX_MUN, UCLA_1 and UCLA_2. CMU shared two samples,
    told apart by the phenotypic table's ``FILE_ID``: ``CMU_a`` at 2.0 s and ``CMU_b`` at
    1.5 s. Each Leuven scan has its own TR in its image header (LEUVEN_1 1.665 to 1.670 s,
    LEUVEN_2 1.650 to 1.667 s), which the PCP's ROI files do not keep: their ``"t_r"`` is NaN
    (all lie within 1% of 1.66 s, if that is close enough for your analysis).

    These are the TRs of the images' NIfTI headers: as tabulated for the PCP's C-PAC
    derivatives of all 1035 subjects (column ``dt`` of ``data/nii_cpac/shapes.json`` in
    https://github.com/stfxecutables/ABIDE-eig, commit e7ed370), and as read from the raw
    scans for the RAMP autism challenge (``data/fmri_repetition_time.csv`` in
    https://github.com/ramp-kits/autism, commit 1fe878c: ABIDE and other samples, sites
    anonymized, with one site mixing 1.5 and 2.0 s scans, two of 1.650 to 1.670 s and one of
    2.2 s).

    With ``pipeline="niak"`` the PCP removed the frames of excessive motion ("scrubbing",
    http://preprocessed-connectomes-project.org/abide/niak.html), so the remaining frames are
    not evenly spaced and resampling them at the site's TR is approximate.

    Examples
    --------
    >>> from brainjepa_sk.datasets import load_abide
    >>> X, y = load_abide(n_subjects=20, constant_regions="drop_subjects")  # doctest: +SKIP
    >>> X[0].shape, sorted(y.columns)  # doctest: +SKIP
    ((196, 200), ['age', 'diagnosis', 'sex', 'site', 'subject_id', 't_r'])
    """
    n_subjects = None if n_subjects is None else int(n_subjects)
    checked_data_dir(data_dir)  # a file or no path: nilearn's OSError named no parameter
    derivative = derivatives
    if isinstance(derivatives, (list, tuple)):  # nilearn's form: a list of one
        if len(derivatives) != 1 or derivatives[0] not in _ABIDE_ROI_DERIVATIVES:
            raise ValueError(f"derivatives must name one ROI time series of "
                             f"{list(_ABIDE_ROI_DERIVATIVES)}, got {list(derivatives)!r}")
        derivative = derivatives[0]
    band_pass_filtering = bool(band_pass_filtering)
    global_signal_regression = bool(global_signal_regression)
    quality_checked = bool(quality_checked)
    as_frames = bool(as_frames)

    data = _nilearn_datasets().fetch_abide_pcp(
        data_dir=data_dir,
        n_subjects=n_subjects,
        pipeline=pipeline,
        band_pass_filtering=band_pass_filtering,
        global_signal_regression=global_signal_regression,
        derivatives=[derivative],
        quality_checked=quality_checked,
        verbose=verbose,
    )
    entries = data.get(derivative)
    if entries is None:
        raise ValueError(f"fetch_abide_pcp returned no {derivative!r} time series")
    entries = list(entries)
    phenotypes = _as_frame(data.get("phenotypic"), "ABIDE")
    if len(phenotypes) != len(entries):
        raise ValueError(
            f"fetch_abide_pcp returned {len(entries)} time series but {len(phenotypes)} "
            "phenotypic rows"
        )
    labels, unknown_t_r = _abide_labels(phenotypes)

    series, keep, unusable = [], [], []
    n_regions = None
    for i, entry in enumerate(entries):
        x = _as_series(entry, i)
        if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1 or not np.isfinite(x).all():
            unusable.append(int(labels["subject_id"].iloc[i]))
            continue
        if n_regions is None:
            n_regions = x.shape[1]
        elif x.shape[1] != n_regions:
            raise ValueError(
                f"subject {labels['subject_id'].iloc[i]} has {x.shape[1]} regions but the "
                f"first subject has {n_regions}; the {derivative} files disagree"
            )
        series.append(np.ascontiguousarray(x))
        keep.append(i)
    if unusable:
        warn_user(
            f"left out {len(unusable)} subject(s) whose {derivative} series is empty, has fewer "
            f"than two timepoints or non-finite values (SUB_ID {unusable[:10]}"
            f"{'...' if len(unusable) > 10 else ''})",
        )
    if not series:
        raise ValueError(f"no subject has a usable {derivative} time series")

    constant = [np.ptp(x, axis=0) == 0 for x in series]
    with_constant = [k for k, flags in enumerate(constant) if flags.any()]
    regions = np.arange(n_regions)
    if with_constant and constant_regions == "keep":
        warn_user(
            f"{len(with_constant)} of {len(series)} subjects have constant regions (e.g. "
            f"SUB_ID {int(labels['subject_id'].iloc[keep[with_constant[0]]])}); the estimators "
            "of this package reject them: pass constant_regions='drop_subjects' or "
            "'drop_regions'",
        )
    elif with_constant and constant_regions == "drop_subjects":
        dropped = [int(labels["subject_id"].iloc[keep[k]]) for k in with_constant]
        warn_user(
            f"left out {len(dropped)} subject(s) with constant regions (SUB_ID {dropped[:10]}"
            f"{'...' if len(dropped) > 10 else ''})",
        )
        drop = set(with_constant)
        series = [x for k, x in enumerate(series) if k not in drop]
        keep = [i for k, i in enumerate(keep) if k not in drop]
        if not series:
            raise ValueError("every subject has constant regions; nothing is left")
    elif with_constant and constant_regions == "drop_regions":
        bad = np.logical_or.reduce(constant)
        regions = np.flatnonzero(~bad)
        if regions.size == 0:
            raise ValueError("every region is constant in some subject; nothing is left")
        warn_user(
            f"left out {int(bad.sum())} of {n_regions} regions, constant in at least one "
            f"subject (indices {np.flatnonzero(bad)[:10].tolist()}"
            f"{'...' if bad.sum() > 10 else ''})",
        )
        series = [np.ascontiguousarray(x[:, regions]) for x in series]

    if as_frames:
        columns = [f"roi_{r}" for r in regions]
        series = [pd.DataFrame(x, columns=columns) for x in series]
    y = labels.iloc[keep].reset_index(drop=True)
    unknown_t_r = Counter(unknown_t_r[i] for i in keep if unknown_t_r[i] is not None)
    if unknown_t_r:
        # A warning, not an error: the series and the other labels are sound, and one site
        # missing from the table (a later PCP release, say) should not stop the loading.
        warn_user(
            f"no repetition time is known for {sum(unknown_t_r.values())} subject(s) of "
            f"SITE_ID {sorted(unknown_t_r)}: their 't_r' is NaN; resample them only once you "
            "know their TR",
        )
    return series, y

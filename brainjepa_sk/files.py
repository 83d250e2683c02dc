"""Subjects' ROI time series from files: one file per subject, found by a list or a glob.

Formats, by extension:

* ``.npy``: a ``(n_timepoints, n_regions)`` array, memory-mapped;
* ``.tsv`` / ``.csv``: one row per timepoint, one column per region, with or without a header
  line of region names (fMRIPrep / XCP-D style ``*_timeseries.tsv``); a header gives the
  subject a DataFrame with those columns;
* ``.1D`` and ``.txt``: whitespace-separated numbers, lines starting with ``#`` ignored (the
  ABIDE Preprocessed Connectomes Project's ROI files);
* any of these text tables gzipped (``.tsv.gz``, ``.csv.gz``, ``.1D.gz``, ``.txt.gz``), as
  pipelines often write them: read as the table they hold, by the same rules.
"""

from __future__ import annotations

import csv
import glob
import gzip
import hashlib
import math
import os
import re
import shlex
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._warnings import catch_warnings
from .train.runtime import expand_home

__all__ = [
    "SUBJECT_FILE_SUFFIXES",
    "FileChangedError",
    "SubjectFiles",
    "expand_subject_paths",
    "file_stamp",
    "is_path",
    "read_subject_file",
    "series_digest",
]

#: The text tables, also read gzipped (``.tsv.gz``).
_TEXT_SUFFIXES = (".tsv", ".csv", ".1d", ".txt")
SUBJECT_FILE_SUFFIXES = (".npy", *_TEXT_SUFFIXES, *(suffix + ".gz" for suffix in _TEXT_SUFFIXES))
#: What a damaged gzip file raises while it is decompressed.
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def _file_type(path):
    """``path``'s subject file type, lower case: ``".tsv.gz"`` for a gzipped text table, its
    last suffix otherwise (``".npy"``, ``".1d"``, ``".gz"`` of an image ``.nii.gz``)."""
    name = Path(path).name.lower()
    return next((suffix + ".gz" for suffix in _TEXT_SUFFIXES if name.endswith(suffix + ".gz")),
                Path(name).suffix)


def _open_text(path, **options):
    """``open(path, **options)`` as text, decompressing a ``.gz`` file as it is read."""
    if str(path).lower().endswith(".gz"):
        return gzip.open(path, "rt", **options)
    return open(path, **options)


def is_path(obj):
    """Whether ``obj`` names a file (a string or a path-like object).

    Parameters
    ----------
    obj : object
        Anything.

    Returns
    -------
    bool
        ``True`` for a ``str`` or an ``os.PathLike`` (whether or not the file exists).
    """
    return isinstance(obj, (str, os.PathLike))


def expand_subject_paths(pattern):
    """The files a glob pattern (or a single path) names, sorted.

    Parameters
    ----------
    pattern : str or path-like
        A path, or a glob such as ``"derivatives/sub-*/func/*_timeseries.tsv"``.

    Returns
    -------
    list of pathlib.Path
        The matching files (folders left out), sorted, each once; ``[pattern]`` when it names
        a file.

    Raises
    ------
    TypeError
        When ``pattern`` is not a str or path-like (None, a number, bytes).
    ValueError
        When nothing matches, or ``pattern`` names a folder or matches folders and no
        subject file (folders only, or beside files of other types, as
        ``"derivatives/*"`` matches ``dataset_description.json``; the message suggests a
        glob of the folders' files, such as ``"corpus/*/*.npy"``), or files of other types
        or BIDS tables that hold no region series beside the subjects' files
        (``participants.tsv``, fMRIPrep's ``*_desc-confounds_timeseries.tsv``, XCP-D's
        ``*_motion.tsv``, atlas label tables ``*_dseg.tsv``), or BIDS tables only, or the
        series of several atlases (XCP-D's ``*_seg-<atlas>_stat-mean_timeseries.tsv``; the
        message suggests a glob of the subjects' files, of one atlas).
    """
    expand_home(pattern, "pattern", "a path or a glob")  # one that is no path, named
    pattern = os.path.expanduser(os.fspath(pattern))  # as expand_home, the glob kept a string
    if Path(pattern).is_file():  # a plain path, even one with glob characters in its name
        return [Path(pattern)]
    if Path(pattern).is_dir():
        # (of files in its subfolders, where they are); escaped: '[' in its name is literal
        offered, note = _glob_into(glob.escape(pattern))
        inside = glob.glob(os.path.join(glob.escape(pattern), "**", "*"), recursive=True)
        if not inside:  # a glob of its files would match nothing either
            raise ValueError(f"{pattern} is an empty folder, not a subject file: give the "
                             "subjects' files, or a glob of them")
        tables = _tables_note(inside, "its")
        images = ("" if offered is None or glob.glob(offered, recursive=True)
                  else _first_image_advice(inside))
        raise ValueError(
            f"{pattern} is a folder, not a subject file{tables}{'; ' if tables else ': '}"
            f"{_offer('give its files or a glob such as', offered, note)}{images}")
    # once each: two '**' match a file by each folder above it ('a/**/*/**/*.tsv')
    matched = set(glob.glob(pattern, recursive=True))
    paths = sorted(Path(p) for p in matched if Path(p).is_file())
    folders = sorted(p for p in matched if os.path.isdir(p))
    # 'corpus/*' over one folder per subject; 'derivatives/*' over a BIDS or fMRIPrep root
    # also matches files beside them that no subject is (dataset_description.json,
    # participants.tsv), and the reader had named the first of these as a subject's
    kinds = [_file_type(path) for path in paths]  # once each: a corpus may be 100,000 files
    others = [path for path, kind in zip(paths, kinds) if kind not in SUBJECT_FILE_SUFFIXES]
    tables = [path for path, kind in zip(paths, kinds) if _is_bids_table(path, kind)]
    if folders and len(others) + len(tables) == len(paths):
        kind, inside = ("folders", "the folders") if paths else ("folders only", "them")
        beside = (f" and {len(others)} file(s) of no subject file type ({_first_few(others)})"
                  if others else "")
        offered, note = _glob_into(pattern)
        images = _first_image_advice(others) or (
            "" if offered is None else _images_below(pattern, offered))
        raise ValueError(
            f"no subject files match {pattern!r}: it matches {kind} ({len(folders)}, "
            f"such as {folders[0]}){beside}{_tables_note(paths, 'the')}; "
            f"{_offer(f'give a glob of the files in {inside}, such as', offered, note)}{images}")
    if not paths:
        raise ValueError(
            f"no subject files match {pattern!r}: X may be a glob or a list of files (one per "
            f"subject; {', '.join(SUBJECT_FILE_SUFFIXES)}), or arrays{_stray_spaces(pattern)}"
            f"{_relative(pattern)}"
        )
    _check_only_subject_files(pattern, paths, others, tables)
    return paths


def _glob_into(pattern):
    """A glob of the subject files in the folders ``pattern`` matches, and a note on the
    atlas it keeps (or ""), or None and what to give instead where no glob matches the
    subjects' series alone: ``'corpus/*/*.npy'`` for files in them, ``'corpus/*/**/*.tsv'``
    for files in their subfolders (their most common type; ``.npy`` when they hold none),
    ``'corpus/*/*/**/*.tsv'`` for those in subfolders that outnumber the files beside them
    (a ``participants.tsv``), narrowed to the name ending of the subjects' files where it
    would match BIDS tables too (:func:`_narrowed`); None where they hold BIDS tables alone,
    and no image."""
    def subject_files(*levels):  # and BIDS tables, of the same types
        found = set(glob.glob(os.path.join(pattern, *levels, "*"), recursive=True))
        return [path for path in sorted(found)
                if _file_type(path) in SUBJECT_FILE_SUFFIXES and os.path.isfile(path)]

    top, below = subject_files(), subject_files("*", "**")
    series, series_below = ([path for path in files if not _is_bids_table(path)]
                            for files in (top, below))
    if series and len(series) >= len(series_below):
        levels, found = [], series
    elif series_below:
        # the subfolders' files only where files lie beside them too ('**' matches both)
        levels, found = (["*", "**"] if top else ["**"]), series_below
    elif (top or below) and not _images_below(pattern):
        # BIDS tables alone: a glob of '.npy' files would match nothing (one is offered for
        # the series to extract from images)
        return None, "no subject's region series is there, only BIDS tables"
    else:
        return os.path.join(pattern, "*.npy"), ""
    # the suffix as written: globs are case-sensitive, and '.NPY' files are read too
    suffix = Counter(path[-len(_file_type(path)):] for path in found).most_common(1)[0][0]
    offered = os.path.join(pattern, *levels, "*" + suffix)
    subjects, atlases = _one_atlas([path for path in found if path.endswith(suffix)])
    narrowed = _narrowed(offered, subjects)
    if narrowed is None:  # the BIDS tables' names end as theirs do ('participants.tsv')
        return None, ("no glob matches the subjects' series alone there: give a list of them"
                      f"{atlases}")
    return narrowed, atlases


def _offer(give, offered, note):
    """``give`` the glob ``offered`` and ``note`` after it, or ``note`` alone where no glob
    is offered (:func:`_glob_into`)."""
    return note if offered is None else f"{give} {offered!r}{note}"


#: The last part of the names of BIDS and BIDS-derivative tables that hold no subject's
#: region series: metadata, events and physiology, fMRIPrep's (old) confounds, XCP-D's
#: motion, outliers, design and QC tables, atlas label tables, connectivity matrices.
_TABLE_SUFFIXES = frozenset({
    "participants", "sessions", "scans", "events", "physio", "stim", "regressors", "motion",
    "outliers", "design", "qc", "dseg", "relmat", "conmat"})
#: Entities that mark a table named as a series or as data as none of a subject's: fMRIPrep's
#: confounds (``desc-confounds_timeseries.tsv``), XCP-D's one-row region statistics.
_TABLE_ENTITIES = frozenset({"desc-confounds", "stat-coverage", "stat-alff", "stat-reho"})
_TABLE_KINDS = "participants, confounds, motion, QC or atlas label tables"
#: The BIDS tables named by their suffix alone, at a dataset's top (``sessions.tsv`` and
#: ``scans.tsv`` are named after their subject and session, ``sub-01_sessions.tsv``).
_TOP_TABLES = frozenset({"participants"})
#: A BIDS entity, ``key-value`` (``sub-01``, ``seg-4S456Parcels``).
_BIDS_ENTITY = re.compile(r"[a-z]+-[a-zA-Z0-9]+")


def _name_parts(path):
    """The ``_``-separated parts of a file's name without its type."""
    name = os.path.basename(path)
    return name[:len(name) - len(_file_type(name))].split("_")


def _is_bids_table(path, kind=None):
    """Whether ``path`` is a text table that a BIDS or BIDS-derivative dataset names as one
    holding no subject's region series (``participants.tsv``, ``*_desc-confounds_timeseries
    .tsv``, ``*_motion.tsv``, ``*_dseg.tsv``), by its name's entities and suffix: a BIDS name
    alone, whose parts before the suffix are all ``key-value`` entities (a user's own
    ``patient_qc.csv`` or ``run_motion.txt`` is no BIDS table)."""
    kind = _file_type(path) if kind is None else kind  # (given: the type is known)
    if kind not in SUBJECT_FILE_SUFFIXES or kind == ".npy":
        return False
    name = os.path.basename(path)
    *entities, suffix = name[:len(name) - len(kind)].split("_")
    if not entities:
        return suffix.lower() in _TOP_TABLES
    if not all(map(_BIDS_ENTITY.fullmatch, entities)):
        return False
    return (suffix.lower() in _TABLE_SUFFIXES
            or not _TABLE_ENTITIES.isdisjoint(part.lower() for part in (*entities, suffix)))


def _tables_note(paths, whose):
    """``"; 3 of its 9 files are BIDS tables ..."`` (``"; its only file is a BIDS table ..."``,
    ``"1 of its 9 files is a BIDS table ..."``), naming the BIDS tables among ``paths``
    (:func:`_is_bids_table`), or ""."""
    files = sorted(str(path) for path in paths if os.path.isfile(path))
    tables = [path for path in files if _is_bids_table(path)]
    if not tables:
        return ""
    if len(files) == 1:
        which = f"{whose} only file is a BIDS table that holds"
    else:
        which = (f"{len(tables)} of {whose} {len(files)} files "
                 + ("is a BIDS table that holds" if len(tables) == 1
                    else "are BIDS tables that hold"))
    return f"; {which} no region series ({_TABLE_KINDS}): {_first_few(tables)}"


def _images_below(pattern, offered=None):
    """How to make region series of the first brain image in or below the folders ``pattern``
    matches (a tree of fMRIPrep's images and confounds), or "", also where the glob
    ``offered`` matches files."""
    if offered is not None and glob.glob(offered, recursive=True):
        return ""
    # one '**': a second below it lists each file once per folder above it
    below = ["*"] if os.path.basename(pattern) == "**" else ["**", "*"]
    return _first_image_advice(glob.glob(os.path.join(pattern, *below), recursive=True))


def _entity(path, *keys):
    """The first entity of a file's BIDS name with one of ``keys`` (``"sub"`` gives
    ``"sub-01"``), or None."""
    starts = tuple(f"{key}-" for key in keys)
    if not any(start in str(path) for start in starts):  # (most names: quickly)
        return None
    return next((part for part in _name_parts(path) if part.startswith(starts)), None)


def _atlas(path):
    """The ``seg-`` or ``atlas-`` entity of a file's BIDS name, or None."""
    return _entity(path, "seg", "atlas")


def _one_atlas(subjects):
    """``subjects``, of the most common atlas where their BIDS names give several (XCP-D
    writes one series per atlas, of different regions), and a note naming them, or ""; those
    whose names give no atlas are left out beside several named ones, kept beside one. The
    note names the subjects (``sub-`` entities) that no series of the atlas kept is of."""
    atlases = Counter(map(_atlas, subjects))
    named = [atlas for atlas in atlases if atlas is not None]
    if len(named) < 2:
        return subjects, ""
    kept = max(named, key=atlases.get)  # the first met of the most common
    unnamed = f", and {atlases[None]} of no atlas named" if None in atlases else ""
    of_kept = [path for path in subjects if _atlas(path) == kept]
    # a subject whose series are all of another atlas drops out of the glob without a word
    left_out = sorted({_subject(path) for path in subjects}
                      - {_subject(path) for path in of_kept} - {None})
    dropped = ("" if not left_out else
               f"; it leaves out {len(left_out)} subject(s) with no series of {kept}: "
               f"{_first_few(left_out)}")
    return of_kept, (
        f" ({kept} alone: the series are of {len(named)} atlases, "
        f"{', '.join(sorted(named))}{unnamed}, whose regions differ; a model takes one"
        f"{dropped})")


def _subject(path):
    """The ``sub-`` entity of a file's BIDS name, or None."""
    return _entity(path, "sub")


def _narrowed(pattern, subjects, candidates=()):
    """A glob that matches ``subjects`` alone: the first of ``candidates`` and ``pattern``
    that does, or ``pattern`` with its last part (or below it, where it is ``**``) made the
    shortest name ending that the subjects' names share (``'*_stat-mean_timeseries.tsv'``
    beside fMRIPrep's ``*_desc-confounds_timeseries.tsv``), or the one name they share
    (``'*/series.tsv'``); None where none does. It globs: on the way to an error only."""
    subjects = sorted(map(Path, subjects))
    names = [path.name.split("_") for path in subjects]
    shared = 0  # the trailing parts every name has
    while (shared < min(map(len, names), default=0)
           and len({name[-1 - shared] for name in names}) == 1):
        shared += 1
    # in place of the pattern's last part, or below it where it is '**' (which spans folders)
    folder = pattern if os.path.basename(pattern) == "**" else os.path.dirname(pattern)
    endings = [os.path.join(folder, "*_" + glob.escape("_".join(names[0][len(names[0]) - n:])))
               for n in range(1, shared + 1)]
    if len({path.name for path in subjects}) == 1:  # one name, in a folder per subject
        endings.append(os.path.join(folder, glob.escape(subjects[0].name)))
    # matched as the glob matches (its paths are normalized: './data/*' finds 'data/x.npy';
    # '**' spans folders)
    return next((candidate for candidate in [*candidates, pattern, *endings]
                 if sorted({Path(p) for p in glob.glob(candidate, recursive=True)
                            if os.path.isfile(p)}) == subjects), None)


def _first_image_advice(paths):
    """How to make region series of the first brain image among ``paths``, or ""."""
    return next(filter(None, (_image_advice(os.path.basename(path).lower())
                              for path in sorted(map(str, paths)))), "")


def _first_few(paths):
    """The first three of ``paths`` named, and how many more there are."""
    return ", ".join(str(path) for path in paths[:3]) + (
        f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def _check_only_subject_files(pattern, paths, others, tables):
    """Refuse a glob that matches subject files and others beside them (a model or a run's
    state saved in the data folder, a JSON sidecar, BIDS tables such as fMRIPrep's
    confounds), naming the others and a narrower glob, and one that matches BIDS tables and
    no subject file, or the series of several atlases; one that matches no subject file at
    all is left to the reader's advice (a NIfTI image). ``others`` and ``tables`` are the
    paths of no subject file type and the BIDS tables."""
    not_subjects = set(others).union(tables)
    subjects = [path for path in paths if path not in not_subjects]
    others = sorted(not_subjects)
    if tables and not subjects:
        raise ValueError(f"no subject files match {pattern!r}{_tables_note(paths, 'the')}"
                         f"{_images_below(os.path.dirname(pattern) or '.')}")
    kept, atlases = _one_atlas(subjects)
    if not (others and subjects) and not atlases:
        return
    kept_types = [_file_type(path) for path in subjects]
    common = max(SUBJECT_FILE_SUFFIXES, key=kept_types.count)
    # 'data/*' and 'data/*.*' narrowed to 'data/*.npy', where that matches the subjects only
    candidates = ([pattern[:-2] + common] if pattern.endswith(".*") else []) + (
        [pattern + common] if pattern.endswith("*") else [])
    narrower = _narrowed(pattern, kept, candidates)
    # (no glob tells 'alice.tsv' and 'bob.tsv' from 'participants.tsv': a list does)
    example = (f", e.g. {narrower!r}{atlases}" if narrower
               else f"{atlases}, or give a list of them where no glob matches them alone")
    if not others:
        raise ValueError(f"the glob {pattern!r} matches the series of several atlases: narrow "
                         f"it to one{example}")
    described = ("" if not tables else
                 f" ({len(tables)} BIDS table{'s that hold' if len(tables) > 1 else ' that holds'}"
                 f" no region series: {_TABLE_KINDS})")
    raise ValueError(
        f"the glob {pattern!r} matches {len(subjects)} subject file(s) but also {len(others)} "
        f"other file(s), which are not subjects{described}: {_first_few(others)}; narrow it "
        f"to the subjects' files{example} (subject files are "
        f"{', '.join(SUBJECT_FILE_SUFFIXES)})")


def _stray_spaces(path):
    """Advice for a missing path whose name without its surrounding spaces and line ends names
    a file or a folder (names read with ``readlines()`` keep their line ends); else ""."""
    name = os.fspath(path)
    if name == name.strip() or not os.path.exists(name.strip()):
        return ""
    return (f" (the name has spaces or a line end around it, {name!r}; without them it names "
            f"{name.strip()}: strip the names read from a file)")


def _relative(path):
    """Where a relative path was looked for (a script run from another folder than its data,
    a notebook started elsewhere); "" for an absolute one."""
    if os.path.isabs(os.fspath(path)):
        return ""
    try:
        folder = os.getcwd()
    except OSError:  # the current folder was deleted: relative paths find nothing
        return " (a relative path, and the current folder no longer exists)"
    return f" (a relative path, looked for from the current folder {folder})"


#: Cells that stand for a missing value (fMRIPrep writes ``n/a``): numbers, not names.
_MISSING = {"n/a", "na", "nan", ""}


def _cells(line, separator):
    return [cell.strip().strip("\"'") for cell in line.strip().split(separator)]


def _numbers(cells):
    """The cells as floats (missing ones as NaN), or None when one is not a number."""
    try:
        return [float("nan") if cell.lower() in _MISSING else float(cell) for cell in cells]
    except ValueError:
        return None


def _is_fraction(cell):
    """Whether a cell is a finite number that is not whole (as signals are, not labels)."""
    try:
        value = float(cell)
    except ValueError:
        return False
    return math.isfinite(value) and value != int(value)


#: The first bytes by which ``numpy.load`` takes a file for an ``.npz`` (zip) archive.
_ZIP_STARTS = (b"PK\x03\x04", b"PK\x05\x06")


def _first_bytes(path, n):
    """The first ``n`` bytes of the file at ``path`` (fewer for a shorter file)."""
    with open(path, "rb") as file:
        return file.read(n)


def _npy_truncation(path):
    """How an ``.npy`` file is shorter than its header says, or ``None`` (a whole file, or not
    an ``.npy`` file at all)."""
    with open(path, "rb") as file:
        try:
            version = np.lib.format.read_magic(file)
        except ValueError:  # no .npy magic string: not a cut .npy file
            return None
        readers = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:  # 3.0 (names in UTF-8) has no public reader
            return None
        size = os.fstat(file.fileno()).st_size
        start = file.tell()
        length_bytes = 2 if version == (1, 0) else 4  # the header's length, little-endian
        header_end = start + length_bytes + int.from_bytes(file.read(length_bytes), "little")
        if size < header_end:
            return f"it ends within its header ({size} bytes of {header_end})"
        file.seek(start)
        try:
            shape, _, dtype = readers[version](file)
        except ValueError:  # a damaged header, not a cut one: numpy's words say what it is
            return None
        if dtype.hasobject:  # pickled objects: their bytes are not the header's item count
            return None
        held = size - file.tell()
    announced = math.prod(shape) * dtype.itemsize
    if held >= announced:
        return None
    return f"its header announces {announced} bytes of data, it holds {held}"


def load_npy(path, mmap_mode=None):
    """One array from an ``.npy`` file (no pickles), refusing an ``.npz`` archive so named
    (``numpy.load`` reads one whatever its name).

    Parameters
    ----------
    path : path-like
        The file.
    mmap_mode : {None, "r"}, default=None
        As for :func:`numpy.load`.

    Returns
    -------
    numpy.ndarray
        The file's array (memory-mapped with ``mmap_mode="r"``).

    Raises
    ------
    ValueError
        For an ``.npz`` archive (also a damaged one), a file holding Python objects, an
        ``.npy`` file shorter than its header says (called truncated), an empty file, or one
        that does not start with NumPy's ``.npy`` header (text or a pickle so named).
    OSError, EOFError
        As :func:`numpy.load` raises them (an unreadable file, a header cut in a way its
        reader does not size).
    """
    try:
        array = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except zipfile.BadZipFile as error:  # starts as an .npz archive does, then is damaged
        raise ValueError(f"a damaged .npz archive: {error}") from error
    except (ValueError, EOFError) as error:
        magic = np.lib.format.MAGIC_PREFIX  # the first bytes of every .npy file
        start = _first_bytes(path, len(magic))
        if not start:
            raise ValueError("the file is empty") from error
        if len(start) < len(magic) and magic.startswith(start):
            raise ValueError(f"the file is truncated (an interrupted copy or download?): it "
                             f"ends within its header ({len(start)} bytes)") from error
        if not start.startswith((magic, *_ZIP_STARTS)):
            # numpy takes any other content for a pickle and suggests loading it unsafely
            raise ValueError(
                "it does not start with NumPy's .npy header: a damaged file, or text, a pickle "
                "or another format under an .npy name (numpy.save writes .npy files)"
            ) from error
        # numpy's words for a cut file ("mmap length is greater than file size") do not say so
        truncation = _npy_truncation(path)
        if truncation is None:
            raise
        raise ValueError(f"the file is truncated (an interrupted copy or download?): "
                         f"{truncation} ({error})") from error
    if not isinstance(array, np.ndarray):
        array.close()
        raise ValueError("it is an .npz archive of arrays, not one .npy array: save each "
                         "array with numpy.save")
    return array


def has_header_line(first_line, second_line, separator=None, later_lines=()):
    """Whether the first line of a numeric table holds names rather than numbers.

    A header is a line with a cell that is not a number (unless more than half of its cells
    are fractions: a data row with a damaged or non-numeric cell), or with only integers
    written as such (pandas' default column names, atlas labels, which may repeat across the
    hemispheres) above a line with fractions: the second, or, for two integers or more
    that count up by one as pandas' names do, a later one (a first frame censored and
    zero-filled, ``0.0,0.0,...``, has none). Numbers written with a decimal point or an
    exponent (``-1.0``, ``0.000e+00``: how NumPy and pandas write floats) are data, and so
    is one value in every cell (a first frame of zeros), as are integers above rows of whole
    numbers only, or above a second row of whole numbers where they do not count up by one
    or are one integer alone (raw units).

    Parameters
    ----------
    first_line, second_line : str
        The table's first two non-blank lines (``second_line`` may be ``""``).
    separator : str or None, default=None
        The cell separator; None splits on runs of whitespace.
    later_lines : iterable of str, default=()
        The lines below ``second_line``, read (an iterator: only as far as the first line
        with a fraction) where ``first_line`` holds two integers or more that count up by
        one and ``second_line`` no fraction.

    Returns
    -------
    bool
        True when ``first_line`` is a header line, to be skipped.
    """
    cells = _cells(first_line, separator)
    first = _numbers(cells)
    if first is None:
        # mostly fractions, a few cells of text: a data row with damaged or non-numeric
        # cells (a stray character, "None"), read as data so that the text is refused, naming
        # it, as in any later row; as a header it had silently dropped the first frame and
        # named the regions by the numbers
        fractions = sum(_is_fraction(cell) for cell in cells)
        return fractions <= len(cells) / 2
    written = [cell for cell, value in zip(cells, first) if value == value]  # NaN left out
    numbers = [value for value in first if value == value]
    constant = len(numbers) > 1 and len(set(numbers)) == 1
    integers = bool(written) and not constant and all(
        re.fullmatch(r"[+-]?\d+", cell) for cell in written)
    if not integers:
        return False
    if _has_fraction(second_line, separator):
        return True
    # further down, only names that count up by one (pandas' 0, 1, 2, ...) above a fraction:
    # a first frame of raw units written as whole numbers (%g of 100000 and more) never does
    # (one number counts up by nothing: one region's first value written whole is data)
    return (len(numbers) > 1 and bool(np.all(np.diff(numbers) == 1))
            and any(_has_fraction(line, separator) for line in later_lines))


def _has_fraction(line, separator):
    """Whether a line of numbers holds one that is not whole (False where a cell is text)."""
    # none written without a point or an exponent (three substring tests: a regular
    # expression's search took most of the time of a long all-integer table's scan)
    if "." not in line and "e" not in line and "E" not in line:
        return False
    numbers = _numbers(_cells(line, separator))
    return numbers is not None and any(
        math.isfinite(value) and value != int(value) for value in numbers)


def _counts_rows(column):
    """Whether a column rises by the same step on every row (frame numbers, times in seconds):
    an index when no other column does, as no measured signal is an exact ramp (a toy table
    such as 1,2 / 3,4 / 5,6 is all ramps). Three rows at least (two values are always one)."""
    if column.size < 3 or not np.isfinite(column).all():
        return False
    steps = np.diff(column)
    return bool(steps[0] > 0 and np.allclose(steps, steps[0], rtol=1e-6, atol=0))


def first_text_cell(table, numbers_as_text=True):
    """Where a 2-D table's first cell of text is, column by column.

    Parameters
    ----------
    table : array-like or pandas.DataFrame
        A table of numbers, e.g. one subject's ``(n_timepoints, n_regions)`` series.
    numbers_as_text : bool, default=True
        Whether a number written as text (``"1.5"``) counts; ``False`` finds the first cell
        that is no number at all, as a label column's (``"rest"``).

    Returns
    -------
    tuple or None
        ``(column, name, row, value)``: the column's position, its name (``None`` without a
        header), the row and the cell; ``None`` when no cell is text or ``table`` is not 2-D.
    """
    names = getattr(table, "columns", None)
    dtypes = list(getattr(table, "dtypes", [])) if names is not None else []
    try:
        values = np.asarray(table, dtype=object)
    except (TypeError, ValueError):  # ragged: another message says so
        return None
    if values.ndim != 2:
        return None
    for column in range(values.shape[1]):
        if column < len(dtypes) and getattr(dtypes[column], "kind", "O") in "biufcmM":
            continue  # a DataFrame's numeric column holds no text
        for row, value in enumerate(values[:, column]):
            if isinstance(value, (str, bytes)) and (numbers_as_text or not _is_number(value)):
                return column, None if names is None else names[column], row, value
    return None


def _is_number(text):
    """Whether a cell of text reads as a number (``"1.5"``, ``b"2"``, ``"nan"``)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


#: Header names of a column of times or frame numbers (``time``, ``t``, ``frame``, ``TR``,
#: ``onset``, ``time_s``, ``time (s)``), lower case, without the spaces around them.
_TIME_NAME = re.compile(
    r"(t|tr|times?|timestamps?|timepoints?|frames?|frame[ _-]?(n|no|nr|num|number|id|idx|index)"
    r"|volumes?|vol|onsets?|seconds?|secs?)([ _-]?(\(s\)|\[s\]|\(ms\)|\[ms\]|s|ms|sec))?")


def _rises_as_times(name, column):
    """Whether a column named as times or frame numbers (``_TIME_NAME``) rises on every row, by
    whatever steps (censored frames leave gaps in the frame numbers, recorded times jitter),
    over three rows at least: under such a name, no region's signal does."""
    if name is None or not _TIME_NAME.fullmatch(str(name).strip().lower()):
        return False
    return column.size >= 3 and bool(np.isfinite(column).all() and (np.diff(column) > 0).all())


def _pandas_line_without(position, options, trailing=False, renamed=None):
    """The ``pandas.read_csv(path, <options>)`` line that reads a subject file without its
    ``position`` (``"first"`` or ``"last"``) column; ``trailing``: its lines end with the
    separator (pandas reads an empty last column, dropped too); ``renamed``: the
    ``(name as read, name)`` of its first column (without numpy.savetxt's '# ')."""
    if position == "first":
        return (f"pandas.read_csv(path, {options}, index_col=0)"
                + (".iloc[:, :-1]" if trailing else ""))
    line = f"pandas.read_csv(path, {options}).iloc[:, :-{2 if trailing else 1}]"
    if renamed:
        line += f".rename(columns={{{renamed[0]!r}: {renamed[1]!r}}})"
    return line


def _read_without(position, read_with):
    """The advice to read a subject file without its first or last column, with the pandas
    line that does so; "" where ``read_with``, the file's ``(separator, header, spaced,
    trailing, renamed)`` (see :func:`check_index_column`), is None."""
    if read_with is None:
        return ""
    separator, header, spaced, trailing, renamed = read_with
    # spaces after the separator: skipped, as read_csv_table skips them (else names keep them
    # with their quotes, and a quoted name holding the separator is split)
    options = (f"sep={separator!r}" + (", skipinitialspace=True" if spaced else "")
               + ("" if header else ", header=None"))
    line = _pandas_line_without(position, options, trailing, renamed)
    return f", or read the file with {line} and pass that DataFrame"


def check_index_column(values, column="region", name=None, last=False, last_name=None,
                       read_with=None):
    """Raise when the first column of a numeric table is a table index or a time column, or,
    when asked, its last column.

    The first column is one when it rises by the same step on every row and no other column
    does (:func:`_counts_rows`); a table of one column has no index beside its data (a
    one-component gradient may be a ramp, the regions in their order). With ``last``, the
    last column is refused by the same rule: a time or frame column appended to a subject's
    series (``df["time"] = np.arange(n) * t_r``); the first and the last columns are then each
    compared with the columns between them, so that an index and a time column together are
    refused too. Gradient tables leave it out, as their last component may be a ramp. A first
    (or, with ``last``, last) column named as times or frame numbers (``time``, ``t``,
    ``frame``, ``TR``, ``onset``, ``time_s``, ...) is refused where it rises on every row (of
    three or more), whatever its steps: censored frames leave gaps in the frame numbers, and
    recorded times jitter.

    Parameters
    ----------
    values : numpy.ndarray of shape (n_rows, n_columns)
        The table's numbers.
    column : str, default="region"
        What a column is, for the message.
    name : str or None, default=None
        The first column's name in the header line, if the table has one.
    last : bool, default=False
        Whether the last column is checked too.
    last_name : str or None, default=None
        The last column's name in the header line, if the table has one.
    read_with : tuple or None, default=None
        For a subject file, its ``(separator, header, spaced, trailing, renamed)``: the cell
        separator, whether it has a header line, whether spaces follow its separators, whether
        its lines end with one, and, where pandas reads the first name otherwise than the file
        is read (with the '# ' of ``numpy.savetxt``), that name and the file's (else None),
        for the message's ``pandas.read_csv`` line that reads the file without the column.

    Raises
    ------
    ValueError
        When the first column, or with ``last`` the last one, counts the rows, or is named as
        times or frame numbers and rises on every row.
    """
    if values.shape[1] < 2:
        return
    # with ``last``, an index first and a time column last are two ramps beside regions that
    # are none: each is judged against the columns between them
    between = values[:, 1:-1] if last and values.shape[1] > 2 else None
    beside_first = values[:, 1:] if between is None else between

    def shown(index):  # a column's first values, for a message (formatted only to raise)
        return ", ".join(f"{v:g}" for v in values[:3, index])

    if _counts_rows(values[:, 0]) and not any(map(_counts_rows, beside_first.T)):
        named = f" {name!r}" if name is not None else ""
        raise ValueError(
            f"its first column{named} counts the rows ({shown(0)}, ...): a table index or time "
            f"column (pandas' to_csv writes the index unless index=False), not a {column}; "
            f"remove it{_read_without('first', read_with)}")
    if _rises_as_times(name, values[:, 0]):
        raise ValueError(
            f"its first column {name!r} rises on every row ({shown(0)}, ...): the time or "
            f"frame of each row, as its name says, not a {column}; remove it"
            f"{_read_without('first', read_with)}")
    if not last:
        return
    beside_last = values[:, :-1] if between is None else between
    position = values.shape[1] - 1
    named = f"{last_name!r} " if last_name is not None else ""
    if _counts_rows(values[:, -1]) and not any(map(_counts_rows, beside_last.T)):
        raise ValueError(
            f"its last column {named}(column {position}) counts the rows ({shown(-1)}, ...): a "
            f"time or frame column, not a {column}; remove it"
            f"{_read_without('last', read_with)}")
    if _rises_as_times(last_name, values[:, -1]):
        raise ValueError(
            f"its last column {named}(column {position}) rises on every row ({shown(-1)}, ...): "
            f"the time or frame of each row, as its name says, not a {column}; remove it"
            f"{_read_without('last', read_with)}")


def check_has_rows(first_line, second_line, header, comments=False):
    """Raise when a text table has no rows: an empty file, or a header line alone (pandas and
    NumPy read either as an empty table, NumPy with a warning).

    Parameters
    ----------
    first_line, second_line : str
        The table's first two lines that are neither blank nor, with ``comments``, ``#`` lines
        (``""`` where there are fewer).
    header : bool
        Whether ``first_line`` is a header line.
    comments : bool, default=False
        Whether ``#`` lines are comments, for the message.

    Raises
    ------
    ValueError
        When the table has no rows.
    """
    if not first_line.strip():
        skipped = "blank and '#' lines" if comments else "blank lines"
        raise ValueError(f"it has no rows: the file is empty or holds only {skipped}")
    if header and not second_line.strip():
        raise ValueError("it has a header line but no rows below it")


def _csv_cells(line, separator):
    """Cells of a line as pandas reads them (a quoted cell may hold the separator, also after
    the spaces that often follow a comma). NUL bytes (a write cut short and padded with them)
    are dropped: Python 3.10's csv module refuses a line holding one."""
    return next(csv.reader([line.rstrip("\r\n").replace("\0", "")], delimiter=separator,
                           skipinitialspace=True), [])


def _n_cells(line, separator):
    """The number of :func:`_csv_cells` of a line."""
    return len(_csv_cells(line, separator))


def _holds_nul(path):
    """Whether the text file ``path`` (decompressed, for a ``.gz`` file) holds a NUL byte."""
    with _open_text(path, encoding="utf-8-sig", errors="replace") as file:
        return any("\0" in chunk for chunk in iter(lambda: file.read(1 << 20), ""))


def _check_line_lengths(path, separator, column="region"):
    """Raise when a line has another number of cells than the first (a truncated line, or a
    header line short of names)."""
    with _open_text(path, encoding="utf-8-sig", newline="") as file:
        lines = [line.rstrip("\r\n") for line in file if line.strip()]
    # cells as pandas reads them: a quoted name may hold the separator ("Cingulate Gyrus,
    # anterior division" in the Harvard-Oxford atlas)
    lengths = [_n_cells(line, separator) for line in lines]
    short = [number for number, length in enumerate(lengths, 1) if length != lengths[0]]
    if short:
        line, length = lines[short[0] - 1], lengths[short[0] - 1]
        # (also followed by a space: cells each written with ", " after them)
        if length == lengths[0] + 1 and line.rstrip(" ").endswith(separator):
            raise ValueError(f"line {short[0]} ends with the separator {separator!r} (an empty "
                             "last cell) but line 1 does not: remove the trailing separators")
        if short == list(range(2, len(lengths) + 1)) and lengths[0] < min(lengths[1:]) == max(
                lengths[1:]):
            if lines[0].lstrip().startswith("#"):
                raise ValueError(
                    f"line 1 starts with '#' and has {lengths[0]} cells but every line below "
                    f"has {lengths[1]}: a comment line, which a .tsv or .csv table does not take "
                    "(.1D and .txt files skip '#' lines); remove it, or make it a header that "
                    f"names every {column} (numpy.savetxt's header=, written after '# ', is "
                    "read as one)")
            raise ValueError(
                f"line 1 has {lengths[0]} cells but every line below has {lengths[1]}: pandas "
                "would take the columns it does not name for a table index (as R's write.table "
                f"writes row names) and drop them; name every {column} in line 1, or remove "
                "the index")
        raise ValueError(f"line {short[0]} has {length} cells but line 1 has "
                         f"{lengths[0]} (a truncated or damaged line)")


def _starts_with_a_savetxt_hash(names):
    """Whether the first of a header's ``names`` carries the '#' that numpy.savetxt writes
    before its header line (``comments="# "``, or ``"#"`` before names that take none): not
    when every name starts with one, as regions named ``#1``, ``#2``, ... do."""
    first, others = names[0], names[1:]
    if not first.startswith("#") or not first[1:].strip():
        return False
    return first[1:2].isspace() or bool(others) and not any(
        name.startswith("#") for name in others)


# what a first column naming every row of a table is, and what to do, by what a column is
_ROW_LABEL_ADVICE = {
    # names of rows of series are names of regions: the table is region by time
    "region": ("if the rows are regions, the table is (n_regions, n_timepoints), transposed: "
               "read it with pandas.read_csv(path, sep={sep!r}, index_col=0{header}) and pass "
               "its transpose (.T), whose columns are the region names; else remove the "
               "column"),
    # a gradient DataFrame indexed by region names, saved as it is
    "gradient": ("region names, which a gradient file does not take: read it with "
                 "pandas.read_csv(path, sep={sep!r}, index_col=0{header}) and pass that "
                 "DataFrame as gradients (its index is matched to X's region names), or remove "
                 "the column to use the rows in order"),
}


def _row_labels(table):
    """The first names of a table's first column when it names every data row, else None.

    Every cell of the column is text that is no number, each a different one: row labels (a
    table index written with the table), not a column of per-frame labels (``"rest"``), which
    repeat. A header line read as data (its first cell empty) is let through.
    """
    labels = table.iloc[:, 0].dropna()
    if (len(labels) < max(2, len(table) - 1) or not labels.is_unique
            or not all(isinstance(label, str) and not _is_number(label) for label in labels)):
        return None
    return f"{labels.iloc[0]!r}, {labels.iloc[1]!r}, ..."


def read_csv_table(path, column="region", last_column=True):
    """A numeric ``.csv`` or ``.tsv`` table, with or without a header line of names.

    Parameters
    ----------
    path : path-like
        The file (tab-separated when it ends in ``.tsv``, else comma-separated), or the same
        gzipped (``.tsv.gz``, ``.csv.gz``).
    column : str, default="region"
        What a column is, for the error about an index column.
    last_column : bool, default=True
        Whether a last column that counts the rows is refused too (a subject's time column);
        ``False`` for a gradient table, whose last component may be a ramp.

    Returns
    -------
    numpy.ndarray or pandas.DataFrame
        A DataFrame when the file has a header line of names.

    Raises
    ------
    ValueError
        When a cell is not a number, a line has another number of cells than the first, the
        first column (or with ``last_column`` the last one) is an index or time column
        (:func:`check_index_column`), the table has no rows (an empty file, or a header
        line alone), or it holds NUL bytes (a write cut short and padded with them).
    UnicodeDecodeError
        When the file is not UTF-8 text.
    OSError
        When the file cannot be read.
    """
    import pandas as pd

    separator = "\t" if _file_type(path) in (".tsv", ".tsv.gz") else ","
    with _open_text(path, encoding="utf-8-sig") as file:  # a byte-order mark is no cell
        lines = (line for line in file if line.strip())  # pandas skips blank lines too
        first_line, second_line = next(lines, ""), next(lines, "")
        header = 0 if has_header_line(first_line, second_line, separator, lines) else None
    if not first_line.strip():  # pandas says "No columns to parse from file"
        check_has_rows(first_line, second_line, header=False)
    # pandas before 3 parses floats to within one unit in the last place by default: its
    # round-trip parser reads back the value written (the .npy file's, bit for bit)
    exact = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
    # skipinitialspace: a name quoted after ", " ("Left Amygdala", "Right Amygdala") is
    # unquoted as the first one is, rather than named with its quotes
    table = pd.read_csv(path, sep=separator, header=header, encoding="utf-8-sig",
                        na_values=["n/a"], skipinitialspace=True, **exact)
    if _holds_nul(path):
        # pandas before 3 reads a cell up to its first NUL: a last cell cut short and padded
        # with NULs (-0.732 of -0.732385) would load as a number, the table one value wrong
        raise ValueError("it holds NUL bytes (a write cut short and padded with them?): not a "
                         "complete table; write it again")
    # (also followed by a space, which skipinitialspace makes an empty cell, as the others)
    trailing = (first_line.rstrip("\r\n").rstrip(" ").endswith(separator)
                and table.iloc[:, -1].isna().all())
    if trailing:
        table = table.iloc[:, :-1]  # every line ends with the separator
    # spaces after the separator, for the pandas line that reads the file without a column
    spaced = any(separator + " " in line for line in (first_line, second_line))
    if header is not None and str(table.columns[0]).startswith("Unnamed: 0"):
        # a subject's file: the pandas line that reads it without the index (a gradient
        # DataFrame's index would be matched to the region names)
        read_with = (separator, True, spaced, trailing, None) if column == "region" else None
        raise ValueError(
            "its first column has no name: a table index (pandas' to_csv writes one "
            f"unless index=False), not a {column}; remove it"
            f"{_read_without('first', read_with)}")
    # ';' is the separator of spreadsheets saved where the decimal mark is a comma; the numbers
    # hold the mark too (a region name may: "Cingulate Gyrus, anterior division")
    numbers = second_line if header is not None and second_line.strip() else first_line
    other = next((mark for mark in ("\t", ",", ";") if mark != separator and mark in first_line
                  and mark in numbers and separator not in first_line), None)
    if table.shape[1] == 1 and other is not None:
        raise ValueError(
            f"it reads as one column: its cells are separated by {other!r}, not {separator!r} "
            "(a .tsv file is tab-separated, a .csv file comma-separated, with '.' as the decimal "
            "mark); rename it or save it so")
    # after that advice: one line of numbers separated by ';' reads as a header alone
    check_has_rows(first_line, second_line, header is not None)
    if header is not None and _n_cells(second_line, separator) > _n_cells(first_line, separator):
        # pandas made the cells the header does not name an index, and dropped them
        _check_line_lengths(path, separator, column)
    try:
        values = table.to_numpy(dtype=np.float64)  # a non-numeric cell fails here
    except ValueError:
        cell = first_text_cell(table, numbers_as_text=False)
        if cell is None:
            raise
        position, name, row, value = cell
        if position == 0 and str(value).lstrip().startswith("#"):
            raise ValueError(
                f"data row {row} starts with '#' ({value!r}): a comment line, which a .tsv or "
                ".csv table does not take (.1D and .txt files skip '#' lines); remove it"
            ) from None
        named = f"{str(name).strip()!r} (column {position})" if header is not None else position
        labels = _row_labels(table) if position == 0 else None
        # without a header line of ours, pandas would read the first line as one, unless it is
        # the header that to_csv writes over an unnamed index (its first cell empty)
        header_read = (", header=None" if header is None and not pd.isna(table.iloc[0, 0])
                       else "")
        if labels is not None:
            raise ValueError(
                f"column {named} holds text, not numbers ({value!r} in data row {row}); it names "
                f"every row ({labels}), as the index that pandas' to_csv writes: "
                + _ROW_LABEL_ADVICE[column].format(sep=separator, header=header_read)
            ) from None
        raise ValueError(
            f"column {named} holds text, not numbers ({value!r} in data row {row}): remove it "
            f"if it is no {column}") from None
    if np.isnan(values).any():  # missing cells, or a short line that pandas filled with NaN
        _check_line_lengths(path, separator, column)
    # names as written, without the spaces that often follow a comma, nor the '# ' that
    # numpy.savetxt writes before its header= line (else part of the first region's name)
    names = [str(name).strip() for name in table.columns] if header is not None else None
    renamed = None
    if names and _starts_with_a_savetxt_hash(names):
        names[0] = names[0][1:].strip()
        renamed = (str(table.columns[0]), names[0])
    # the pandas line that reads the file without such a column: a subject's (a gradient
    # DataFrame's index would be matched to the region names)
    check_index_column(values, column, names[0] if names else None, last=last_column,
                       last_name=names[-1] if names else None,
                       read_with=((separator, header is not None, spaced, trailing, renamed)
                                  if column == "region" else None))
    if header is None:
        return values
    return pd.DataFrame(values, columns=names)


class FileChangedError(ValueError):
    """A subject file changed after :class:`~brainjepa_sk.files.SubjectFiles` checked it."""


def file_stamp(path):
    """A file's ``(size, modification time in ns)``: it changes when the file is rewritten.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    tuple of int
        ``(st_size, st_mtime_ns)`` of :func:`os.stat`.

    Raises
    ------
    TypeError
        When ``path`` is not a str or path-like (None, a number, bytes); a file
        descriptor is not taken.
    """
    info = os.stat(expand_home(path, "path", "a file's path"))  # not a file descriptor
    return info.st_size, info.st_mtime_ns


def series_digest(values, names=None):
    """SHA-256 of one subject's series as read: its shape, float64 values and region names.

    The same for the same series, whatever bytes the file holds them in (a file copied over
    with the same contents, or written again by the same script).

    Parameters
    ----------
    values : array-like
        The series, as :func:`read_subject_file` returned it or converted to float64.
    names : sequence of str or None, default=None
        The region names of the file's header line, if it has one.

    Returns
    -------
    str
        A hex digest.
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    digest = hashlib.sha256(np.asarray(values.shape, dtype=np.int64).tobytes())
    digest.update(values)  # the buffer itself: no copy of the values
    if names is not None:  # a header changed is another file, though the values are the same
        digest.update("\0".join(map(str, names)).encode())
    return digest.hexdigest()


def _image_advice(name):
    """What to do with a brain image given as a subject file (a file name, lower case)."""
    if name.endswith(".ptseries.nii"):
        return (". A CIFTI parcellated series: nibabel.load(path).get_fdata() is its "
                "(n_timepoints, n_regions) array; pass that, or save it as .npy")
    if name.endswith((".nii", ".nii.gz", ".gii", ".gii.gz")):
        return (". An image holds voxels or vertices, not region time series: extract them "
                "first (for a NIfTI image, nilearn.maskers.NiftiLabelsMasker(labels_img)"
                ".fit_transform(path)) and pass them as arrays, or as .npy or .tsv files")
    return ""


def _first_cells_differ(path):
    """Whether the first cells of a whitespace-separated file's rows are all different, as
    names of regions are: per-frame labels repeat (``rest task rest``)."""
    try:
        with _open_text(path, encoding="utf-8-sig") as file:
            cells = [line.split()[0] for line in file
                     if line.strip() and not line.lstrip().startswith("#")]
    except (UnicodeDecodeError, OSError, *_GZIP_ERRORS):  # the caller's message says why
        return False
    return len(set(cells)) == len(cells)


def _uncommented(line):
    """A line of a whitespace-separated file as ``numpy.loadtxt`` reads it: what follows a
    ``#`` that starts a word dropped, also after numbers (``0.5 0.25 # r1``), but not a ``#``
    inside a name (``g#1``, or in double quotes, ``"Gradient #1"``, as pandas quotes a name
    with a space; a header line's, which numpy skips, as :func:`_names_in` reads it). An
    unmatched quote is a character."""
    return re.match(r'(?:[^#"]|"[^"]*"|"|(?<=\S)#)*', line).group()


def _names_in(header):
    """The names of a whitespace-separated header line, a quoted name as one ("Left Amygdala",
    as pandas quotes a name with a space)."""
    try:
        return shlex.split(header)
    except ValueError:  # an unmatched quote (an apostrophe in a name): plain words
        return header.split()


def _separated_by(cells, mark):
    """Whether a line split on whitespace into ``cells`` is one separated by ``mark`` instead:
    one cell holding it, or cells each ending with it but the last (``"0.5, 1.5, 2.5"``)."""
    return (len(cells) == 1 and mark in cells[0]
            or len(cells) > 1 and all(cell.endswith(mark) for cell in cells[:-1]))


def _time_named(names):
    """``(position, name)`` of the first or last of a header's ``names`` that is named as
    the time or frame of each row (``_TIME_NAME``), the first checked first; None without."""
    return next(((position, name) for position, name in (("first", names[0]),
                                                         ("last", names[-1]))
                 if _TIME_NAME.fullmatch(name.strip().lower())), None)


def _refuse_a_misread_whitespace_table(path):
    """Name what numpy misread in a whitespace-separated file: a first line of names, which
    such a file takes only as a '#' comment (numpy had said "could not convert string 'ROI_0'
    to float64"), cells separated by commas or semicolons, also followed by a space (numpy
    quoted a whole line, or a number with its comma, as one cell), rows that start with names
    of their own (a region-by-time table with its index), or a table index below a header of
    column names (numpy advised ``usecols``). The advice gives the ``pandas.read_csv`` line
    that reads the file where one does."""
    try:
        with _open_text(path, encoding="utf-8-sig") as file:
            raw, comments, ends = [], False, set()
            for line in file:  # the whole file, on the way to an error only
                if line.lstrip().startswith("#"):
                    comments = True  # the pandas line then takes comment='#'
                elif line.strip():
                    ends.add(line.rstrip()[-1])  # the last character of each line
                    if len(raw) < 2:
                        raw.append(line)
    except (UnicodeDecodeError, OSError, *_GZIP_ERRORS):  # the caller's message says why
        return
    lines = [line.split() for line in raw]
    comment = ", comment='#'" if comments else ""

    table = f"{path} is not a numeric (n_timepoints, n_regions) table"
    if len(lines) > 1 and not any(map(_is_number, lines[0])) and all(map(_is_number, lines[1])):
        names = _names_in(raw[0])
        header = (f"{table}: its first line holds names ({names[0]!r}, ...), a header, which a "
                  "whitespace-separated .txt or .1D file takes only as a comment")
        timed = _time_named(names)
        if timed is not None:  # '#' alone would leave the column among the regions
            position, name = timed
            line = _pandas_line_without(position, f"sep=r'\\s+'{comment}")
            raise ValueError(
                f"{header}, and its {position} column, {name!r}, is named as the time or frame "
                f"of each row, not a region: read it with {line} and pass that DataFrame, or "
                "remove the column and put '#' before the header")
        raise ValueError(
            f"{header}: put '#' before it, or save the table as .tsv, whose header line names "
            f"the regions, or read it with pandas.read_csv(path, sep=r'\\s+'{comment}) and "
            "pass that DataFrame")
    # ';' first: it separates cells where ',' is the decimal mark (0,5;1,25)
    separator, spaced = next(((mark, len(cells) > 1) for mark in (";", ",") for cells in lines
                              if _separated_by(cells, mark)), (None, False))
    if separator is not None:
        # the last line read is data (the first may be a header of names holding commas)
        decimal = separator == ";" and "," in raw[-1]
        # the header as pandas would take it, with '.' for the decimal mark
        numbers = [line.replace(",", ".") if decimal else line for line in (*raw, "")[:2]]
        header = has_header_line(*numbers, separator)
        options = (f"sep={separator!r}" + (", decimal=','" if decimal else "")
                   + (", skipinitialspace=True" if spaced else "")
                   + ("" if header else ", header=None") + comment)
        # every line ends with the separator: pandas reads an empty last column, left out (a
        # few ending so are missing values of the last region, which is kept)
        trailing = ends == {separator}
        # a column named as the time or frame of each row is left out, as for a .csv table
        # the names as pandas reads them: a quoted one may hold the separator ("Frontal, T")
        names = [name.strip().strip("'") for name in _csv_cells(raw[0].strip(), separator)][
            :-1 if trailing else None]
        timed = _time_named(names) if header else None
        line = (f"pandas.read_csv(path, {options})" + (".iloc[:, :-1]" if trailing else "")
                if timed is None else _pandas_line_without(timed[0], options, trailing))
        shown = separator + " " if spaced else separator
        point = ", with '.' as the decimal mark" if decimal else ""
        raise ValueError(
            f"{table}: its cells are separated by {shown!r}, but a .txt or .1D file is "
            f"whitespace-separated (spaces or tabs): read it with {line} and pass that "
            "DataFrame, or save it so (numpy.savetxt's default), or as a .csv"
            f"{' (comma-separated)' if separator == ',' else ''} or .tsv file{point}")
    if len(lines) > 1 and lines[0][0] != lines[1][0] and all(
            len(cells) > 1 and not _is_number(cells[0]) and all(map(_is_number, cells[1:]))
            for cells in lines) and _first_cells_differ(path):
        # to_csv(sep=" ", header=False) of a region-by-time table indexed by region names
        raise ValueError(
            f"{table}: its rows start with names ({lines[0][0]!r}, {lines[1][0]!r}, ...): if "
            "the rows are regions, the table is (n_regions, n_timepoints), transposed: read it "
            "with pandas.read_csv(path, sep=r'\\s+', index_col=0, header=None) and pass its "
            "transpose (.T); else remove the first column")
    # integers: pandas' default column names (fractions are a data row one cell short)
    if len(lines) > 1 and len(lines[1]) == len(lines[0]) + 1 and all(
            re.fullmatch(r"[+-]?\d+", cell) for cell in lines[0]):
        rows_named = not _is_number(lines[1][0])
        raise ValueError(
            f"{table}: its first line has {len(lines[0])} cells and the next one "
            f"{len(lines[1])}, a header of column names over rows that start with a table "
            "index, as pandas' to_csv(sep=' ') writes them unless index=False: save it with "
            "index=False and header=False"
            + (f" (the rows start with names, {lines[1][0]!r}, ...: if the rows are regions, "
               "the table is (n_regions, n_timepoints), transposed: save its transpose)"
               if rows_named else ""))


def _refuse_a_header_of_integers(path, array):
    """Refuse a whitespace-separated file whose first line is pandas' default column names
    (``0 1 2 ...``, as ``to_csv(sep=" ", index=False)`` writes them above fractions): numpy
    reads them as a first frame, which a header of names (refused, as numpy cannot read it)
    and a ``.csv`` table's (skipped, :func:`has_header_line`) never are. The file's first
    line is read again only where the first row read holds whole numbers that count up by
    one, as column names (and labels numbered in order) do, above rows with a fraction
    (not only the next one: a first frame censored and zero-filled has none): a first frame
    of signal written as whole numbers (raw scanner units of 100000 and more, with ``%g``)
    never counts up so."""
    # (one region: a first value written as a whole number is too likely data)
    first = array[0] if len(array) > 1 and array.shape[1] > 1 else None
    if (first is None or not np.all(np.isfinite(first)) or np.any(first != np.round(first))
            or np.any(np.diff(first) != 1)):
        return
    below = array[1:]
    if not np.any(np.isfinite(below) & (below != np.round(below))):
        return  # whole numbers throughout: a table of integers
    with _open_text(path, encoding="utf-8-sig") as file:
        first_line = next(line for line in map(_uncommented, file) if line.strip())
    names = first_line.split()
    # written as integers (pandas writes its float cells with a decimal point: data)
    if all(re.fullmatch(r"[+-]?\d+", name) for name in names):
        raise ValueError(
            f"its first line holds whole numbers ({', '.join(names[:3])}, ...) above rows of "
            "fractions: pandas' column names (to_csv writes them unless header=False), a "
            "header, which a whitespace-separated .txt or .1D file takes only as a comment "
            "(numpy read it as a first frame): put '#' before it, or save the table with "
            "header=False, or read it with pandas.read_csv(path, sep=r'\\s+') and pass that "
            "DataFrame")


def _refuse_a_damaged_gzip(path, error):
    """Name a gzip file that does not decompress, whatever error reading it met first: the
    garbage a damaged stream gives may fail the table's parsing before the decompressor sees
    the damage (read through once more to find out, on the way to an error only)."""
    if not isinstance(error, _GZIP_ERRORS):
        try:
            with gzip.open(path, "rb") as file:
                while file.read(2**20):
                    pass
        except _GZIP_ERRORS as damage:
            error = damage
        except OSError:  # it cannot be read: the caller's message says so
            return
        else:
            return
    raise ValueError(f"{path} is a damaged gzip file (it does not decompress: {error}); "
                     "write it again") from error


def read_subject_file(path):
    """One subject's ``(n_timepoints, n_regions)`` series from a file.

    Parameters
    ----------
    path : str or path-like
        A ``.npy``, ``.tsv``, ``.csv``, ``.1D`` or ``.txt`` file, or a gzipped text one
        (``.tsv.gz``, ``.csv.gz``, ``.1D.gz``, ``.txt.gz``), read whole.

    Returns
    -------
    numpy.ndarray or pandas.DataFrame
        A DataFrame when a text file has a header line of region names.

    Raises
    ------
    FileNotFoundError
        When there is no such file.
    OSError
        Naming the file, when it cannot be read (no permission, an I/O error).
    TypeError
        When ``path`` is not a str or path-like (None, a number, bytes).
    ValueError
        Naming the file: a folder, an unknown extension, contents that are not a numeric
        table, or a gzip file that does not decompress (damaged or cut short).
    """
    path = expand_home(path, "path", "a file's path")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a subject file: give its files or a glob")
    if not path.is_file():
        raise FileNotFoundError(
            f"subject file not found: {path}{_stray_spaces(path)}{_relative(path)}")
    suffix = _file_type(path)
    if suffix not in SUBJECT_FILE_SUFFIXES:
        shown = "".join(path.suffixes[-2:]) if suffix == ".gz" else path.suffix
        raise ValueError(
            f"{path}: unknown subject file type {shown!r}; expected one of "
            f"{', '.join(SUBJECT_FILE_SUFFIXES)}{_image_advice(path.name.lower())}"
        )
    try:
        if suffix == ".npy":
            return load_npy(path, mmap_mode="r")
        if suffix in (".tsv", ".csv", ".tsv.gz", ".csv.gz"):
            return read_csv_table(path, column="region")
        with catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # numpy warns on an empty file
            # a byte-order mark (Windows editors write one) is no number; a .gz file is
            # decompressed as it is read
            with _open_text(path, encoding="utf-8-sig") as file:
                array = np.loadtxt(file, comments="#", ndmin=2)
        if not array.size:  # read as shape (0, 1): named as a .csv without rows is
            check_has_rows("", "", header=False, comments=True)
        _refuse_a_header_of_integers(path, array)
        return array
    except (ValueError, OSError, UnicodeDecodeError, *_GZIP_ERRORS) as error:
        if suffix.endswith(".gz"):
            _refuse_a_damaged_gzip(path, error)
        if isinstance(error, ValueError) and suffix in (".txt", ".1d", ".txt.gz", ".1d.gz"):
            _refuse_a_misread_whitespace_table(path)
        if isinstance(error, OSError) and error.errno is not None:
            # no permission, an I/O error: the file could not be read, whatever it holds
            raise type(error)(error.errno, f"could not read subject file {path}: "
                                           f"{error.strerror}") from error
        raise ValueError(
            f"{path} is not a numeric (n_timepoints, n_regions) table: {error}"
        ) from error


class SubjectFiles(Sequence):
    """Validated subjects that stay in their files: each is read when it is indexed.

    :func:`~brainjepa_sk.validation.validate_subjects` returns one (with ``lazy=True``) after
    reading every file once to check it, keeping only what the estimators need to plan their
    work: each subject's length, the region count and names, and a digest of the contents.
    Indexing reads the file again (``.npy`` files memory-mapped), so a corpus larger than memory
    can be fitted and transformed: only the subjects in use are held.

    Parameters
    ----------
    paths : list of pathlib.Path
        One file per subject.
    n_timepoints : numpy.ndarray of shape (n_subjects,)
        Each subject's length.
    n_regions : int
        Regions of every subject (last axis).
    feature_names : numpy.ndarray of str or None
        Region names from the files' header lines, if any.
    digest : str
        SHA-256 of the subjects' float64 values and shapes, as
        :func:`~brainjepa_sk.validation.subjects_digest` computes it for arrays.
    dtype : numpy dtype, default=numpy.float64
        dtype of the arrays indexing returns.
    allow_constant : bool, default=False
        Whether the check accepted constant regions (a stricter check later checks again).
    stamps : sequence of tuple or None, default=None
        Each file's ``(size, modification time in ns)`` when it was checked, from
        :func:`file_stamp`; a read of a file whose stamp has changed since is refused with a
        :class:`FileChangedError` that says what changed, unless its ``file_digests`` entry
        shows the same series; so is a read of another shape than checked where the stamp is
        the same (a rewrite of the same size within the file system's timestamp resolution).
    file_digests : sequence of str or None, default=None
        Each file's :func:`series_digest` when it was checked: a file whose stamp changed
        (touched, or copied over with the same contents) is read when its series is the same,
        and its new stamp is kept, so that the series is compared once.
    checked_finite : bool, default=False
        Whether the check refused NaN and infinite values: False where it ran under
        scikit-learn's ``assume_finite=True``, which lets them through (or where unknown).
    """

    # for SubjectFiles pickled before these were recorded
    stamps = None
    file_digests = None
    allow_constant = False
    checked_finite = False

    def __init__(self, paths, n_timepoints, n_regions, feature_names, digest,
                 dtype=np.float64, allow_constant=False, stamps=None, file_digests=None,
                 checked_finite=False):
        self.paths = list(paths)
        self.n_timepoints = np.asarray(n_timepoints, dtype=np.int64)
        self.n_regions = int(n_regions)
        self.feature_names = feature_names
        self.digest = digest
        self.dtype = np.dtype(dtype)
        self.allow_constant = allow_constant
        self.stamps = None if stamps is None else list(stamps)
        self.file_digests = None if file_digests is None else list(file_digests)
        self.checked_finite = bool(checked_finite)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return np.asarray(self._read(index), dtype=self.dtype)

    def _read(self, index):
        """The file of subject ``index``, refused when it was rewritten after it was checked:
        its digest (which names a training run) and its length (which planned the windows)
        would be wrong, though a window of it may still pass every check."""
        path = self.paths[index]
        stamp = None if self.stamps is None else self.stamps[index]
        try:
            now = file_stamp(path)  # before the read: a rewrite during it shows next time
            changed = stamp is not None and now != stamp
        except OSError:  # gone: read_subject_file names it
            changed = False
        try:
            series = read_subject_file(path)
        except ValueError as error:  # rewritten into something unreadable: that is the news
            if changed:
                raise FileChangedError(
                    f"{path} changed after it was checked ({error}; rewritten while in use?): "
                    "pass the paths again, so that they are checked anew") from error
            raise
        if changed and self._same_series(index, series):
            # touched, or copied over with the same contents. In a DataLoader worker the new
            # stamp stays in the worker's copy: each worker compares the series once, and the
            # parent again if it reads the file
            self.stamps[index] = now
            changed = False
        checked = (int(self.n_timepoints[index]), self.n_regions)
        # rewritten in another shape of the same size within the file system's timestamp
        # resolution: the stamp does not show it, the shape does (no read of the values)
        reshaped = not changed and stamp is not None and np.shape(series) != checked
        if changed or reshaped:
            values = np.asarray(series)
            if values.shape != checked:
                now = (f"{values.shape[0]} timepoints x {values.shape[1]} regions"
                       if values.ndim == 2 else f"of shape {values.shape}")
                what = f"it is now {now}, checked as {checked[0]} x {checked[1]}"
            elif values.dtype.kind not in "biuf" or not np.isfinite(values).all():
                what = "it now holds values that are not finite numbers"
            else:
                what = "its size or modification time differ, not its shape"
            how = ("rewritten while in use, keeping its size and modification time?"
                   if reshaped else "rewritten while in use?")
            raise FileChangedError(
                f"{path} changed after it was checked ({what}; {how}): "
                "pass the paths again, so that they are checked anew")
        return series

    def _unchanged(self, index):
        """Whether subject ``index``'s file has the stamp (size, modification time) it had
        when it was checked, and may be read: a read then gives the series checked, as
        :meth:`_read` assumes. False where no stamp was recorded, or the file is gone or no
        longer readable (its permissions changed: not in the stamp); a read tells then."""
        stamp = None if self.stamps is None else self.stamps[index]
        if stamp is None:
            return False
        path = self.paths[index]
        try:
            return file_stamp(path) == stamp and os.access(path, os.R_OK)
        except OSError:
            return False

    def _stamped(self, rows):
        """Whether each file of ``rows`` was checked with a stamp (a file without one, no
        regular file then or checked by an older version, may read otherwise since,
        unnoticed)."""
        return self.stamps is not None and all(self.stamps[row] is not None for row in rows)

    def _read_changed(self, rows):
        """Read each file of ``rows`` whose stamp changed since its check
        (:meth:`_unchanged`): that raises a :class:`FileChangedError` where its series
        changed, and gives the series checked otherwise (a file touched, or copied over),
        so that the others need not be read."""
        for row in rows:
            if not self._unchanged(row):
                self[row]

    def _same_series(self, index, series):
        """Whether ``series``, read from subject ``index``'s file, is the series checked."""
        digest = None if self.file_digests is None else self.file_digests[index]
        values = np.asarray(series)
        if (digest is None or values.dtype.kind not in "iuf"
                or values.shape != (self.n_timepoints[index], self.n_regions)):
            return False
        return series_digest(values, getattr(series, "columns", None)) == digest

    def frames(self, index, start, stop):
        """Frames ``[start, stop)`` of subject ``index``; a ``.npy`` file reads only those.

        Other files are read whole, then sliced.

        Parameters
        ----------
        index : int
            Which subject.
        start, stop : int
            The frames, as a slice of the first axis.

        Returns
        -------
        numpy.ndarray of shape (n_selected, n_regions)
            A copy of the frames, of the ``dtype`` given at construction.
        """
        series = self._read(index)
        return np.array(series[start:stop] if isinstance(series, np.ndarray)
                        else np.asarray(series)[start:stop], dtype=self.dtype)

    def __repr__(self):
        return f"SubjectFiles({len(self)} subjects, {self.n_regions} regions)"

"""Fetching the published Brain-JEPA weights into a local cache, as nilearn's fetchers do."""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..train.runtime import (
    _link_target,
    expand_home,
    move_into_place,
    naming_save_errors,
    temporary_file_beside,
)

__all__ = ["get_data_dir", "fetch_ukbiobank_weights", "UKBIOBANK_FILES"]

#: Environment variable naming the cache folder (like nilearn's ``NILEARN_DATA``).
DATA_ENV = "BRAINJEPA_SK_DATA"

_DRIVE_ID = "1LL3gM-i5SLDWCFyvj71M3peLeU6V2qMR"

_GRADIENTS_COMMIT = "c476600dfb640bf85c0aa9b6b92e8bff257e3cd5"

#: The research UK Biobank checkpoint (ViT-base, 450 regions x 160 frames, 300 epochs) and its
#: gradient matrix: file name in the cache, where it comes from, how to get it by hand, and its
#: SHA-256 where one is known. The gradient file is pinned to the commit that last changed it;
#: the checkpoint has no published hash, so the hash of the first good copy is recorded beside
#: it (``<file>.sha256``, where the cache can be written) and later calls check the file
#: against it.
UKBIOBANK_FILES = {
    "checkpoint": {
        "filename": "jepa-ep300.pth.tar",
        "url": f"https://drive.usercontent.google.com/download?id={_DRIVE_ID}&export=download&confirm=t",
        "manual": (f"the authors' Google Drive (https://drive.google.com/file/d/{_DRIVE_ID}/view"
                   f", file id {_DRIVE_ID})"),
        "sha256": None,
    },
    "gradients": {
        "filename": "gradient_mapping_450.csv",
        "url": ("https://raw.githubusercontent.com/Eric-LRL/Brain-JEPA/"
                f"{_GRADIENTS_COMMIT}/data/gradient_mapping_450.csv"),
        "manual": ("data/gradient_mapping_450.csv in the authors' repository "
                   f"(https://github.com/Eric-LRL/Brain-JEPA/blob/{_GRADIENTS_COMMIT}/data/"
                   "gradient_mapping_450.csv)"),
        "sha256": "c9bc667e49aae442e12607bee8be86c31c330f2844cf72e7c84b16de312ed007",
    },
}

#: Regions the UK Biobank model takes (checked before the checkpoint is downloaded).
UKBIOBANK_N_REGIONS = 450

_SUBDIR = "brainjepa_ukbiobank"


def get_data_dir(data_dir=None):
    """Folder where downloaded files are cached.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Explicit folder. Otherwise the ``BRAINJEPA_SK_DATA`` environment variable, otherwise
        ``~/brainjepa_sk_data``.

    Returns
    -------
    pathlib.Path
        The folder (``~`` expanded); not created here.

    Raises
    ------
    TypeError
        When ``data_dir`` is not a path.
    NotADirectoryError
        When the folder given (or set in ``BRAINJEPA_SK_DATA``) is a file: the downloads
        had then failed on a path under it.
    """
    if data_dir is not None:
        return checked_data_dir(data_dir)
    if os.environ.get(DATA_ENV):
        return _no_file(expand_home(os.environ[DATA_ENV]), DATA_ENV)
    return Path.home() / "brainjepa_sk_data"


def checked_data_dir(data_dir):
    """``data_dir`` (``~`` expanded), refused naming it when it is no path or a file; None
    stays None (the loaders of nilearn's data sets then use nilearn's folder).

    Parameters
    ----------
    data_dir : str, path-like or None
        The folder a loader was given.

    Returns
    -------
    pathlib.Path or None
        The folder, not created here.

    Raises
    ------
    TypeError
        When ``data_dir`` is not a path.
    NotADirectoryError
        When it is a file: a fetch had failed on a path under it.
    """
    if data_dir is None:
        return None
    if not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be a folder's path (a str or path-like) or None, "
                        f"got {data_dir!r}")
    return _no_file(expand_home(data_dir), "data_dir")


def _no_file(folder, given):
    """``folder``, refused when it is a file (``given``: what set it, for the message)."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(
            f"{given}={os.fspath(folder)!r} is a file, not a folder: give the folder that "
            "holds (or is to hold) the downloaded files")
    return folder


def _looks_like_html(path):
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith(b"<!doctype html") or head.startswith(b"<html")


def sha256_of(path):
    """SHA-256 of a file, in hexadecimal.

    Parameters
    ----------
    path : str or path-like
        The file, read in blocks of 1 MiB.

    Returns
    -------
    str
        The 64-character hexadecimal digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: Digests already computed in this process, by (path, size, modification time): every fit
#: with the default weights (each fold of a cross-validation) checks the ~1 GB checkpoint,
#: and reading it again each time would cost seconds. A changed file is hashed again.
_DIGESTS = {}


def _sha256_once(path):
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        digest = sha256_of(path)
        # a file written moments ago may be written again within the same timestamp: only
        # a settled file is remembered (git's "racily clean" rule)
        if time.time() - stat.st_mtime > 2.0:
            _DIGESTS[key] = digest
    return digest


def _record_path(path):
    return path.with_name(path.name + ".sha256")


def _read_record(record, path):
    """The SHA-256 in ``record``; an ``OSError`` naming it when it holds none (the file
    itself is not blamed: only the record, which is rewritten once deleted, is damaged)."""
    words = record.read_text(errors="replace").lower().split()
    if not words or len(words[0]) != 64 or not set(words[0]) <= set("0123456789abcdef"):
        raise OSError(
            f"{record} is damaged: it holds no SHA-256 (an interrupted write?). Delete it: "
            f"the next call records the hash of {path.name} again")
    return words[0]


def _write_record(record, text):
    """Write ``record`` through a temporary file: a kill or a full disk leaves no part of it
    (a record cut short would fault the good file it describes)."""
    tmp = None
    try:
        with naming_save_errors(record):  # also when the temporary file cannot be made
            tmp = temporary_file_beside(record)
            tmp.write_text(text)
            move_into_place(tmp, record)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _check_hash(path, spec, actual=None):
    """Check ``path`` against its pinned hash, or the hash recorded at its first good copy.

    Raises
    ------
    OSError
        Naming the file, both hashes and what to do.
    """
    expected, source = spec.get("sha256"), "the pinned hash"
    record = _record_path(path)
    if expected is None and record.is_file():
        expected = _read_record(record, path)
        source = f"the hash recorded at its first download ({record})"
    actual = actual or _sha256_once(path)
    if expected is None:
        try:
            _write_record(record, f"{actual}  {path.name}\n")  # the first good copy: remember it
        except OSError as error:
            # a cache shared read-only (a lab's data folder): nothing is recorded, as the
            # first copy found is taken unchecked anyway (no hash is published) and the
            # loader refuses, naming it, a file that is no checkpoint
            if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
    elif actual != expected:
        raise OSError(
            f"{path} does not match {source}: SHA-256 {actual}, expected {expected}. The file "
            f"is damaged or not the published one; delete it (and {record.name} if present) "
            f"to download it again, or get it from {spec['manual']}."
        )


def _download(url, destination, timeout=60, sha256=None):
    """Download to ``destination`` through a temporary ``.part`` file (never a partial file).

    With ``sha256``, a download of other content is refused and not kept.
    """
    # A unique temporary name: concurrent first fetches (parallel CV jobs) do not collide.
    with naming_save_errors(destination):  # an error names the file asked for, not the .part
        # beside the file a symbolic link points to, which move_into_place replaces (the
        # rename cannot cross to another file system)
        fd, name = tempfile.mkstemp(dir=_link_target(destination).parent,
                                    prefix=destination.name, suffix=".part")
    part = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        if _looks_like_html(part):
            raise OSError(f"{url} returned a web page instead of the file")
        received = None if sha256 is None else sha256_of(part)
        if received != sha256:
            raise OSError(f"{url} sent a file whose SHA-256 is {received}, not the pinned "
                          f"{sha256}")
        move_into_place(part, destination)  # the umask's permissions, as a plain write
    except http.client.HTTPException as exc:  # e.g. IncompleteRead
        raise OSError(f"the download of {url} broke off ({exc})") from exc
    finally:
        if part.exists():
            part.unlink()


def fetch_ukbiobank_weights(data_dir=None, download=True, verbose=1):
    """Paths of the research UK Biobank checkpoint and its gradient file, fetched once.

    The files are looked for in ``<data_dir>/brainjepa_ukbiobank/`` and downloaded there when
    missing (through a temporary file: an interrupted download leaves nothing a later call
    trusts); afterwards everything works offline from that cache. Every call checks the files'
    SHA-256: the gradient file against its pinned hash (the authors' commit ``c476600``), the
    checkpoint, which has no published hash, against the hash recorded beside it
    (``jepa-ep300.pth.tar.sha256``) when it was first fetched or found. In a cache that
    cannot be written (a folder shared read-only) nothing is recorded: the checkpoint found
    there is taken as a first copy is, and the estimators refuse one that does not load as
    a research checkpoint, naming it.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Cache folder (see :func:`get_data_dir`).
    download : bool, default=True
        Download missing files; with ``False`` a missing file is an error.
    verbose : int, default=1
        Print what is downloaded.

    Returns
    -------
    dict
        ``{"checkpoint": Path, "gradients": Path}``.

    Raises
    ------
    OSError
        When a file is missing and cannot be downloaded (the message says where to put it by
        hand), or does not match its hash (the message says which file and what to do), or
        the checkpoint's hash record is damaged (the message names it).
    """
    from ..checkpoint import UKBIOBANK_T_R  # here: the checkpoint module imports this one

    # without the cache, the estimators take the files by path; the TR, which a checkpoint
    # given by path does not carry, is then given too (else they warn that it is unknown)
    by_path = (f"Or pass the files by path: weights=<path to "
               f"{UKBIOBANK_FILES['checkpoint']['filename']}>, gradients=<path to "
               f"{UKBIOBANK_FILES['gradients']['filename']}>, model_t_r={UKBIOBANK_T_R:.4g}.")
    return fetch_files(UKBIOBANK_FILES, get_data_dir(data_dir) / _SUBDIR, download=download,
                       verbose=verbose, alternative=by_path)


def _misplaced_hint(folder, filename):
    """What to do when ``filename`` lies in the cache folder itself, not in its ``folder``.

    A common slip: ``data_dir`` pointed at the folder that holds the files (such as
    ``brainjepa_ukbiobank`` itself), whereas it is the cache folder above that subfolder.
    ``None`` when the file is not there either.
    """
    data_dir = folder.parent
    if not (data_dir / filename).is_file():
        return None
    if data_dir.name == folder.name:
        return (f"It is in {data_dir} itself: data_dir (or {DATA_ENV}) is the cache folder "
                f"that holds {folder.name}/, so set it to {data_dir.parent}.")
    return (f"It is in {data_dir} itself: data_dir (or {DATA_ENV}) is the cache folder that "
            f"holds {folder.name}/, so move the file to {folder / filename}.")


def fetch_files(files, folder, download=True, verbose=1, alternative=None):
    """Paths of ``files`` in ``folder``: missing ones are downloaded, every one's hash checked.

    The fetching behind :func:`fetch_ukbiobank_weights` and
    :func:`~brainjepa_sk.datasets.fetch_atlas_brainjepa450`: each missing file is downloaded
    through a temporary ``.part`` file (an interrupted download leaves nothing a later call
    trusts), and every file, cached or new, is checked against its pinned SHA-256 or, without
    one, against the hash recorded beside it at its first fetch.

    Parameters
    ----------
    files : dict
        Specs by key, as in :data:`UKBIOBANK_FILES`: ``"filename"`` (in ``folder``),
        ``"url"``, ``"manual"`` (where to get it by hand, for the error message) and
        ``"sha256"`` (``None`` where no hash is published).
    folder : pathlib.Path
        The cache folder of these files, a subfolder of :func:`get_data_dir`; created when a
        file is downloaded.
    download, verbose
        As for :func:`fetch_ukbiobank_weights`.
    alternative : str, optional
        Another way to go without the files in the cache, added to the message of a missing
        file.

    Returns
    -------
    dict
        The path of each file, by the keys of ``files``.

    Raises
    ------
    OSError
        When a file is missing and cannot be downloaded (the message says where to put it by
        hand), or does not match its hash, or its hash record is damaged.
    """
    paths = {}
    for spec in files.values():
        hint = not (folder / spec["filename"]).is_file() and _misplaced_hint(
            folder, spec["filename"])
        if hint:
            # data_dir set to the files' own folder: refused before any file is downloaded
            # (again, ~1 GB for the checkpoint) or a nested folder is created
            problem = "it is not downloaded again" if download else "downloading is switched off"
            raise OSError(f"{spec['filename']} is not in {folder} and {problem}. {hint}")
    for key, spec in files.items():
        path = folder / spec["filename"]
        if not path.is_file():
            problem = "downloading is switched off"
            if download:
                folder.mkdir(parents=True, exist_ok=True)
                if verbose:
                    print(f"Downloading {spec['filename']} to {folder} ...")
                try:
                    _download(spec["url"], path, sha256=spec.get("sha256"))
                except (urllib.error.URLError, OSError, ValueError) as exc:
                    problem = f"the download failed ({exc})"
            if not path.is_file():
                raise OSError(
                    f"{spec['filename']} is not in {folder} and {problem}. Get it from "
                    f"{spec['manual']} and put it at {path} (or point data_dir / the "
                    f"{DATA_ENV} environment variable at a folder holding "
                    f"{folder.name}/{spec['filename']})."
                    + (f" {alternative}" if alternative else "")
                )
        _check_hash(path, spec)
        paths[key] = path
    return paths

"""Fetching the published Brain-JEPA weights into a local cache, as nilearn's fetchers do."""

from __future__ import annotations

import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["get_data_dir", "fetch_ukbiobank_weights", "UKBIOBANK_FILES"]

#: Environment variable naming the cache folder (like nilearn's ``NILEARN_DATA``).
DATA_ENV = "BRAINJEPA_SK_DATA"

_DRIVE_ID = "1LL3gM-i5SLDWCFyvj71M3peLeU6V2qMR"

#: The research UK Biobank checkpoint (ViT-base, 450 regions x 160 frames, 300 epochs) and its
#: gradient matrix: file name in the cache, where it comes from, and how to get it by hand.
UKBIOBANK_FILES = {
    "checkpoint": {
        "filename": "jepa-ep300.pth.tar",
        "url": f"https://drive.usercontent.google.com/download?id={_DRIVE_ID}&export=download&confirm=t",
        "manual": f"the authors' Google Drive, file id {_DRIVE_ID}",
    },
    "gradients": {
        "filename": "gradient_mapping_450.csv",
        "url": "https://raw.githubusercontent.com/Eric-LRL/Brain-JEPA/main/data/gradient_mapping_450.csv",
        "manual": "data/gradient_mapping_450.csv in the authors' repository (Eric-LRL/Brain-JEPA)",
    },
}

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
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path.home() / "brainjepa_sk_data"


def _looks_like_html(path):
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith(b"<!doctype html") or head.startswith(b"<html")


def _download(url, destination, timeout=60):
    """Download to ``destination`` through a temporary ``.part`` file (never a partial file)."""
    # A unique temporary name: concurrent first fetches (parallel CV jobs) do not collide.
    fd, name = tempfile.mkstemp(dir=destination.parent, prefix=destination.name, suffix=".part")
    part = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        if _looks_like_html(part):
            raise OSError(f"{url} returned a web page instead of the file")
        os.replace(part, destination)
    except http.client.HTTPException as exc:  # e.g. IncompleteRead
        raise OSError(f"the download of {url} broke off ({exc})") from exc
    finally:
        if part.exists():
            part.unlink()


def fetch_ukbiobank_weights(data_dir=None, download=True, verbose=1):
    """Paths of the research UK Biobank checkpoint and its gradient file, fetched once.

    The files are looked for in ``<data_dir>/brainjepa_ukbiobank/`` and downloaded there when
    missing; afterwards everything works offline from that cache.

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
        When a file is missing and cannot be downloaded. The message says where to put it by hand.
    """
    folder = get_data_dir(data_dir) / _SUBDIR
    paths = {}
    for key, spec in UKBIOBANK_FILES.items():
        path = folder / spec["filename"]
        if not path.is_file():
            problem = "downloading is switched off"
            if download:
                folder.mkdir(parents=True, exist_ok=True)
                if verbose:
                    print(f"Downloading {spec['filename']} to {folder} ...")
                try:
                    _download(spec["url"], path)
                except (urllib.error.URLError, OSError, ValueError) as exc:
                    problem = f"the download failed ({exc})"
            if not path.is_file():
                raise OSError(
                    f"{spec['filename']} is not in {folder} and {problem}. Get it from "
                    f"{spec['manual']} and put it at {path} (or point data_dir / the "
                    f"{DATA_ENV} environment variable at a folder holding "
                    f"{_SUBDIR}/{spec['filename']})."
                )
        paths[key] = path
    return paths

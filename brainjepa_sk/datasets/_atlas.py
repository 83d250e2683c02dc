"""The research model's 450-region atlas: Tian-S3 subcortex, then Schaefer-400 (17 networks)."""

from __future__ import annotations

import os
import tempfile
import zlib

import numpy as np
from sklearn.utils import Bunch

from ..train.runtime import _link_target, move_into_place, naming_save_errors
from ._weights import fetch_files, get_data_dir

__all__ = ["fetch_atlas_brainjepa450", "TIAN_S3_FILES", "ATLAS_ADVICE"]

_TIAN_COMMIT = "660ba570fef99e69507fc8c9beac24fbd8aa54d0"
_TIAN_BASE = (f"https://raw.githubusercontent.com/yetianmed/subcortex/{_TIAN_COMMIT}/"
              "Group-Parcellation/3T/Subcortex-Only/")

#: The Tian-S3 (3T) subcortical atlas in FSL's MNI152 space at 2 mm (50 regions) and its label
#: names, from the authors' public release, pinned to a commit and by SHA-256.
TIAN_S3_FILES = {
    "image": {
        "filename": "Tian_Subcortex_S3_3T.nii",
        "url": _TIAN_BASE + "Tian_Subcortex_S3_3T.nii",
        "manual": ("Group-Parcellation/3T/Subcortex-Only/Tian_Subcortex_S3_3T.nii in the "
                   f"repository yetianmed/subcortex (commit {_TIAN_COMMIT})"),
        "sha256": "df86741fedcf5814cf9c91817f794f19b92e149f057335a5568b5fc32bb17bc7",
    },
    "labels": {
        "filename": "Tian_Subcortex_S3_3T_label.txt",
        "url": _TIAN_BASE + "Tian_Subcortex_S3_3T_label.txt",
        "manual": ("Group-Parcellation/3T/Subcortex-Only/Tian_Subcortex_S3_3T_label.txt in the "
                   f"repository yetianmed/subcortex (commit {_TIAN_COMMIT})"),
        "sha256": "66f0415163459e4b9e8524efeff138b8889a04f635c6e053f663c93fbacb215d",
    },
}

_N_SUBCORTEX, _N_CORTEX = 50, 400
_SUBDIR = "brainjepa_atlas"
_IMAGE, _LABELS = "brainjepa450_2mm.nii.gz", "brainjepa450_labels.txt"

#: What to do when data do not have the research model's 450 regions (for error messages).
ATLAS_ADVICE = (
    "The UK Biobank model takes 450 regions: the 50 Tian-S3 subcortical regions, then "
    "Schaefer-400 in its 17-network order. Build that labels image with "
    "brainjepa_sk.datasets.fetch_atlas_brainjepa450() and extract the time series with "
    "nilearn's NiftiLabelsMasker(labels_img=atlas.maps)."
)


def _read_cached_labels(path):
    """The region names and overlap count of a cached label list, or None when it is not
    one (its header line and the 450 names)."""
    lines = path.read_text(errors="replace").splitlines()
    header = lines[0].split() if lines else []
    if (len(lines) != _N_SUBCORTEX + _N_CORTEX + 1 or not header or header[0] != "#"
            or not header[-1].isdigit()):
        return None
    return lines[1:], int(header[-1])


def _is_cached_image(path):
    """Whether the cached labels image reads whole and holds the labels 1..450: one cut short
    (its gzip stream ended early), emptied or with a header that no longer reads since it was
    cached is not."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    try:
        data = np.asarray(nib.load(path).dataobj)
    except (ImageFileError, HeaderDataError, EOFError, OSError, ValueError, zlib.error):
        return False
    values = set(np.unique(data).tolist()) - {0}
    return values == set(range(1, _N_SUBCORTEX + _N_CORTEX + 1))


def _region_values(data, n_regions, what):
    values = set(np.unique(data).tolist()) - {0}
    if values != set(range(1, n_regions + 1)):
        raise ValueError(f"the {what} atlas does not hold the labels 1..{n_regions} "
                         f"(found {len(values)} labels)")


def _schaefer_labels(labels):
    names = [label.decode() if isinstance(label, bytes) else str(label) for label in labels]
    if len(names) == _N_CORTEX + 1 and names[0].lower() == "background":
        names = names[1:]  # recent nilearn lists the background first
    if len(names) != _N_CORTEX:
        raise ValueError(f"nilearn's Schaefer-400 atlas came with {len(names)} labels, not 400")
    return names


def fetch_atlas_brainjepa450(data_dir=None, verbose=1):
    """The research model's 450-region parcellation as one labels image, in its order.

    Labels 1-50 are the Tian-S3 (3T) subcortical regions, in the order of their release;
    labels 51-450 the Schaefer-400 cortical regions in the 17-network order (Schaefer label
    ``k`` becomes ``k + 50``), so that ``NiftiLabelsMasker(labels_img=atlas.maps)`` returns
    the columns in the order of the UK Biobank checkpoint's gradient file. Both are in FSL's
    MNI152 space at 2 mm; the few voxels both atlases claim go to the subcortical region.

    Schaefer-400 comes through nilearn's fetcher (cached where nilearn caches, or in
    ``data_dir``); Tian-S3 from its authors' public release (``yetianmed/subcortex``, pinned to
    a commit and checked by SHA-256) into ``<data_dir>/brainjepa_atlas/``, where the combined
    image is cached too. A cached image or label list found damaged (cut short, emptied) is
    built again from the cached sources.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Cache folder (see :func:`get_data_dir`); also passed to nilearn's fetcher.
    verbose : int, default=1
        Print what is downloaded.

    Returns
    -------
    sklearn.utils.Bunch
        ``maps``: path of the labels image (int16, 0 outside the regions); ``labels``: the 450
        region names in label order; ``n_overlap``: voxels both atlases claimed.

    Raises
    ------
    OSError
        When a file cannot be downloaded (the message says where to get it) or does not match
        its hash, or when the atlas cannot be written to the cache (the message names the
        file).
    """
    import nibabel as nib
    from nilearn import datasets as nilearn_datasets
    from nilearn.image import load_img, resample_to_img

    folder = get_data_dir(data_dir) / _SUBDIR
    image_path, labels_path = folder / _IMAGE, folder / _LABELS
    if image_path.is_file() and labels_path.is_file():
        cached = _read_cached_labels(labels_path)
        if cached is not None and _is_cached_image(image_path):
            labels, overlap = cached
            return Bunch(maps=str(image_path), labels=labels, n_overlap=overlap)
        # a label list or an image damaged since it was cached (cut short, emptied): built
        # again, as a missing one is, from the cached sources (a cut image had failed later,
        # in nilearn, with gzip's 'Compressed file ended' and no file named)
    folder.mkdir(parents=True, exist_ok=True)
    tian = fetch_files(TIAN_S3_FILES, folder, verbose=verbose)
    schaefer = nilearn_datasets.fetch_atlas_schaefer_2018(
        n_rois=_N_CORTEX, yeo_networks=17, resolution_mm=2,
        data_dir=None if data_dir is None else str(data_dir), verbose=verbose,
    )
    cortex_img = load_img(schaefer.maps)
    subcortex_img = resample_to_img(load_img(tian["image"]), cortex_img,
                                    interpolation="nearest", force_resample=True,
                                    copy_header=True)
    cortex = np.rint(np.asarray(cortex_img.dataobj)).astype(np.int16)
    subcortex = np.rint(np.asarray(subcortex_img.dataobj)).astype(np.int16)
    _region_values(cortex, _N_CORTEX, "Schaefer-400")
    _region_values(subcortex, _N_SUBCORTEX, "Tian-S3")
    combined = np.where(cortex > 0, cortex + _N_SUBCORTEX, 0).astype(np.int16)
    overlap = int(((cortex > 0) & (subcortex > 0)).sum())
    combined[subcortex > 0] = subcortex[subcortex > 0]
    _region_values(combined, _N_SUBCORTEX + _N_CORTEX, "combined")
    names = tian["labels"].read_text().split()
    if len(names) != _N_SUBCORTEX:
        raise ValueError(f"{tian['labels']} lists {len(names)} regions, not 50")
    names += _schaefer_labels(schaefer.labels)
    image = nib.Nifti1Image(combined, cortex_img.affine)
    image.header.set_data_dtype(np.int16)
    # written through temporary files: an interrupted call leaves no half-written cache
    for path, write in ((image_path, lambda p: nib.save(image, p)),
                        (labels_path, lambda p: p.write_text(
                            "\n".join([f"# voxels in both atlases: {overlap}", *names]) + "\n"))):
        name = None
        try:
            with naming_save_errors(path):  # errors name the file, not the temporary one
                # beside the file a symbolic link points to, which move_into_place replaces
                fd, name = tempfile.mkstemp(
                    dir=_link_target(path).parent, prefix=path.name,
                    suffix=".part" + (".nii.gz" if path.suffix == ".gz" else ""))
                os.close(fd)
                write(type(path)(name))
                move_into_place(name, path)  # the umask's permissions, not mkstemp's 0600
        finally:
            if name is not None and os.path.exists(name):
                os.unlink(name)
    return Bunch(maps=str(image_path), labels=names, n_overlap=overlap)

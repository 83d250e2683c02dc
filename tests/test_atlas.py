"""The research atlas helper, on generated files (never the network)."""

import errno
import os
import stat
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import nibabel as nib
import numpy as np
import pytest
from sklearn.utils import Bunch

from brainjepa_sk.datasets import _atlas, _weights, fetch_atlas_brainjepa450

SHAPE = (10, 10, 10)
AFFINE = np.diag([-2.0, 2.0, 2.0, 1.0])


@pytest.fixture
def local_atlases(tmp_path, monkeypatch):
    """Tian-S3 and Schaefer-400 stand-ins on a 10 x 10 x 10 grid: Tian labels 1-50 in the first
    50 voxels, Schaefer labels 1-400 in voxels 49-448 (voxel 49 claimed by both), and Schaefer
    label 1 again in voxel 449."""
    source = tmp_path / "source"
    source.mkdir()
    tian = np.zeros(1000, np.float32)
    tian[:50] = np.arange(1, 51)
    schaefer = np.zeros(1000, np.int32)
    schaefer[49:449] = np.arange(1, 401)
    schaefer[449] = 1
    nib.save(nib.Nifti1Image(tian.reshape(SHAPE), AFFINE), source / "tian.nii")
    nib.save(nib.Nifti1Image(schaefer.reshape(SHAPE), AFFINE), source / "schaefer.nii.gz")
    (source / "tian.txt").write_text("\n".join(f"TIAN-{k}" for k in range(1, 51)) + "\n")
    files = {
        key: dict(spec, url=(source / name).as_uri(),
                  sha256=_weights.sha256_of(source / name))
        for (key, spec), name in zip(_atlas.TIAN_S3_FILES.items(), ["tian.nii", "tian.txt"])
    }
    monkeypatch.setattr(_atlas, "TIAN_S3_FILES", files)
    calls = []

    def fake_schaefer(n_rois, yeo_networks, resolution_mm, data_dir, verbose):
        calls.append((n_rois, yeo_networks, resolution_mm))
        labels = [b"Background"] + [f"17Networks_{k}".encode() for k in range(1, 401)]
        return Bunch(maps=str(source / "schaefer.nii.gz"), labels=labels)

    from nilearn import datasets

    monkeypatch.setattr(datasets, "fetch_atlas_schaefer_2018", fake_schaefer)
    return calls


def test_the_atlas_puts_the_subcortex_first_then_the_cortex(tmp_path, local_atlases):
    atlas = fetch_atlas_brainjepa450(data_dir=tmp_path / "cache", verbose=0)
    assert local_atlases == [(400, 17, 2)]  # Schaefer-400, 17 networks, 2 mm, via nilearn
    assert nib.load(atlas.maps).get_data_dtype() == np.int16  # labels stored as integers
    data = np.asarray(nib.load(atlas.maps).dataobj).ravel()
    np.testing.assert_array_equal(data[:49], np.arange(1, 50))  # Tian labels kept
    assert data[49] == 50  # claimed by both: the subcortical region
    np.testing.assert_array_equal(data[50:449], np.arange(2, 401) + 50)  # Schaefer k -> k + 50
    assert data[449] == 51
    assert set(np.unique(data)) == set(range(451)) and atlas.n_overlap == 1
    assert atlas.labels[:2] == ["TIAN-1", "TIAN-2"] and atlas.labels[50] == "17Networks_1"
    assert len(atlas.labels) == 450
    # cached: a second call fetches nothing
    again = fetch_atlas_brainjepa450(data_dir=tmp_path / "cache", verbose=0)
    assert local_atlases == [(400, 17, 2)] and again.labels == atlas.labels
    assert again.n_overlap == 1  # read back from the cached label list's header
    assert not list((tmp_path / "cache" / "brainjepa_atlas").glob("*.part*"))


@pytest.mark.parametrize("missing", ["brainjepa450_labels.txt", "brainjepa450_2mm.nii.gz"])
def test_a_cache_with_one_of_its_two_files_is_built_again(tmp_path, local_atlases, missing):
    # an interrupted call may leave the image without its labels (or a file may be deleted)
    first = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    (tmp_path / "brainjepa_atlas" / missing).unlink()
    again = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    assert len(local_atlases) == 2  # built again, from the cached Tian files
    assert again.labels == first.labels and again.n_overlap == 1
    data = np.asarray(nib.load(again.maps).dataobj)
    assert set(np.unique(data)) == set(range(451))


@pytest.mark.parametrize("damage", [lambda text: "", lambda text: text[: len(text) // 2],
                                    lambda text: text + "a line more\n",
                                    lambda text: text.replace("atlases: 1\n", "atlases: \n", 1)])
def test_a_cached_label_list_damaged_since_is_built_again(tmp_path, local_atlases, damage):
    """A label list emptied, cut short or grown in the cache, or whose header lost its count of
    shared voxels, is not read as the atlas's labels (nor fails on its missing header or count):
    it is built again, as a missing one is."""
    first = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    labels = tmp_path / "brainjepa_atlas" / "brainjepa450_labels.txt"
    labels.write_text(damage(labels.read_text()))
    again = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    assert len(local_atlases) == 2
    assert again.labels == first.labels and again.n_overlap == 1


def test_a_tian_file_with_another_hash_is_refused(tmp_path, local_atlases):
    _atlas.TIAN_S3_FILES["image"]["sha256"] = "0" * 64
    with pytest.raises(OSError, match="Tian_Subcortex_S3_3T.nii") as info:
        fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    assert "yetianmed/subcortex" in str(info.value)
    assert not (tmp_path / "brainjepa_atlas" / "Tian_Subcortex_S3_3T.nii").exists()


def test_a_cached_tian_file_changed_since_its_download_is_refused(tmp_path, local_atlases):
    fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    folder = tmp_path / "brainjepa_atlas"
    labels = folder / "Tian_Subcortex_S3_3T_label.txt"
    labels.write_text(labels.read_text().replace("TIAN-2\n", "TIAN-X\n"))
    for name in ("brainjepa450_2mm.nii.gz", "brainjepa450_labels.txt"):
        (folder / name).unlink()  # the combined atlas is built again from the cached files
    with pytest.raises(OSError, match="Tian_Subcortex_S3_3T_label.txt does not match"):
        fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    assert not (folder / "brainjepa450_labels.txt").exists()


def test_the_pipeline_from_nifti_files_to_the_region_order(tmp_path, local_atlases):
    """NiftiLabelsMasker on the combined atlas gives columns in label order: subcortex first."""
    from nilearn.maskers import NiftiLabelsMasker

    atlas = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    labels = np.asarray(nib.load(atlas.maps).dataobj)
    frames = np.stack([labels.astype(np.float32) * (t + 1) for t in range(3)], axis=-1)
    series = NiftiLabelsMasker(labels_img=atlas.maps).fit_transform(
        nib.Nifti1Image(frames, AFFINE))
    assert series.shape == (3, 450)
    np.testing.assert_allclose(series[0], np.arange(1, 451))  # column r is region r + 1
    np.testing.assert_allclose(series[2], 3 * np.arange(1, 451))


def test_data_on_another_atlas_get_told_what_to_do(tmp_path, monkeypatch, official_dir):
    from conftest import use_local_ukbiobank

    from brainjepa_sk import BrainJEPAClassifier, BrainJEPAEmbedder

    use_local_ukbiobank(monkeypatch, official_dir)  # the test checkpoint stands in (24 regions)
    X = np.random.default_rng(0).standard_normal((3, 60, 10))
    for estimator in (BrainJEPAEmbedder(data_dir=tmp_path, num_heads=4),
                      BrainJEPAClassifier(data_dir=tmp_path, num_heads=4, verbose=0)):
        with pytest.raises(ValueError, match="fetch_atlas_brainjepa450") as info:
            estimator.fit(X, [0, 1, 0])
        assert "10 regions" in str(info.value) and "NiftiLabelsMasker" in str(info.value)


@pytest.mark.network
def test_the_real_atlas_downloads_and_combines(tmp_path):
    """The real files (Tian-S3 from GitHub, Schaefer-400 through nilearn): network only."""
    atlas = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    assert len(atlas.labels) == 450 and atlas.labels[0] == "HIP-head-m-rh"
    data = np.asarray(nib.load(atlas.maps).dataobj)
    assert data.shape == (91, 109, 91) and set(np.unique(data)) == set(range(451))


def _replace_source(name, data, affine=AFFINE):
    """Overwrite a stand-in file of ``local_atlases`` (the Tian pins follow its new hash)."""
    tian_url = urlparse(_atlas.TIAN_S3_FILES["image"]["url"])
    path = Path(url2pathname(tian_url.path)).parent / name
    if name.endswith(".txt"):
        path.write_text(data)
    else:
        nib.save(nib.Nifti1Image(data, affine), path)
    for spec in _atlas.TIAN_S3_FILES.values():
        if spec["url"] == path.as_uri():
            spec["sha256"] = _weights.sha256_of(path)
    return path


def _tian(labels=range(1, 51)):
    data = np.zeros(1000, np.float32)
    data[:len(labels)] = list(labels)
    return data.reshape(SHAPE)


def _schaefer(labels=range(1, 401)):
    data = np.zeros(1000, np.int32)
    data[49:49 + len(labels)] = list(labels)
    data[449] = 1  # as in local_atlases: voxel 49 goes to Tian
    return data.reshape(SHAPE)


@pytest.mark.parametrize("name, data, atlas", [
    ("tian.nii", _tian(range(1, 50)), "Tian-S3"),  # a region missing
    ("tian.nii", _tian([*range(1, 50), 51]), "Tian-S3"),  # a label past 50
    ("schaefer.nii.gz", _schaefer(range(1, 400)), "Schaefer-400"),
    ("schaefer.nii.gz", _schaefer([*range(1, 400), 401]), "Schaefer-400"),
])
def test_an_atlas_without_exactly_its_labels_is_refused(tmp_path, local_atlases, name, data,
                                                        atlas):
    _replace_source(name, data)
    with pytest.raises(ValueError, match=rf"the {atlas} atlas does not hold the labels 1\.\."):
        fetch_atlas_brainjepa450(data_dir=tmp_path / "cache", verbose=0)
    assert not (tmp_path / "cache" / "brainjepa_atlas" / "brainjepa450_labels.txt").exists()


@pytest.mark.parametrize("n_names", [49, 51])
def test_a_tian_label_list_of_another_length_is_refused(tmp_path, local_atlases, n_names):
    _replace_source("tian.txt", "\n".join(f"TIAN-{k}" for k in range(1, n_names + 1)) + "\n")
    with pytest.raises(ValueError, match=f"lists {n_names} regions, not 50"):
        fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)


@pytest.mark.parametrize("n_names, background", [(400, False), (400, True), (399, False),
                                                 (401, False)])
def test_nilearns_schaefer_labels_with_or_without_the_background(
        tmp_path, local_atlases, monkeypatch, n_names, background):
    """Recent nilearn lists the background first, older releases do not: both give the 400
    region names; a list of another length is refused."""
    from nilearn import datasets

    fake = datasets.fetch_atlas_schaefer_2018
    names = [f"17Networks_{k}" for k in range(1, n_names + 1)]

    def schaefer(**kwargs):
        labels = (["Background"] if background else []) + names
        return Bunch(maps=fake(**kwargs).maps, labels=labels)

    monkeypatch.setattr(datasets, "fetch_atlas_schaefer_2018", schaefer)
    if n_names != 400:
        with pytest.raises(ValueError, match=f"came with {n_names} labels, not 400"):
            fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
        return
    atlas = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    assert atlas.labels[50:] == names


def test_data_dir_reaches_nilearn_and_verbose_tells_the_downloads(tmp_path, local_atlases,
                                                                  monkeypatch, capsys):
    from nilearn import datasets

    fake, data_dirs = datasets.fetch_atlas_schaefer_2018, []

    def schaefer(**kwargs):
        data_dirs.append(kwargs["data_dir"])
        return fake(**kwargs)

    monkeypatch.setattr(datasets, "fetch_atlas_schaefer_2018", schaefer)
    fetch_atlas_brainjepa450(data_dir=tmp_path / "cache", verbose=1)
    assert data_dirs == [str(tmp_path / "cache")]
    out = capsys.readouterr().out
    assert "Downloading Tian_Subcortex_S3_3T.nii" in out
    assert "Downloading Tian_Subcortex_S3_3T_label.txt" in out


def test_without_data_dir_the_atlas_is_cached_where_brainjepa_sk_data_says(tmp_path,
                                                                           local_atlases,
                                                                           monkeypatch):
    """The atlas shares the weights' cache folder: BRAINJEPA_SK_DATA, not the home folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BRAINJEPA_SK_DATA", str(tmp_path / "env"))
    atlas = fetch_atlas_brainjepa450(verbose=0)
    folder = tmp_path / "env" / "brainjepa_atlas"
    assert Path(atlas.maps) == folder / "brainjepa450_2mm.nii.gz"
    assert (folder / "Tian_Subcortex_S3_3T.nii").is_file()
    assert not (tmp_path / "home").exists()


def test_a_tian_url_that_cannot_be_opened_says_where_to_get_the_file(tmp_path, local_atlases):
    _atlas.TIAN_S3_FILES["labels"]["url"] = "no-scheme-Tian_Subcortex_S3_3T_label.txt"
    with pytest.raises(OSError, match="Get it from .*yetianmed/subcortex"):
        fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)


def test_a_tian_image_on_another_grid_is_resampled_to_nearest_labels(tmp_path, local_atlases):
    """Tian on a 1 mm grid shifted by 0.3 mm, each label in one voxel: nearest-neighbour
    resampling onto Schaefer's 2 mm grid keeps the labels whole (an interpolation would blend
    them with the zeros around); the combined image is on Schaefer's grid. Schaefer stored as
    floats a little off its integer labels is rounded to them."""
    fine = np.zeros((20, 20, 20), np.float32)
    coarse = _tian().reshape(-1)
    for flat in range(50):
        i, j, k = np.unravel_index(flat, SHAPE)
        fine[2 * i, 2 * j, 2 * k] = coarse[flat]
    affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [0.3, -0.3, -0.3]  # 2 mm voxel (i, j, k) falls on 1 mm voxel 2 * (i, j, k)
    _replace_source("tian.nii", fine, affine)
    schaefer = _schaefer().astype(np.float32)
    schaefer[schaefer > 0] -= 0.01  # e.g. scaled storage
    _replace_source("schaefer.nii.gz", schaefer)
    atlas = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    image = nib.load(atlas.maps)
    np.testing.assert_allclose(image.affine, AFFINE)
    assert image.shape == SHAPE
    data = np.asarray(image.dataobj).ravel()
    np.testing.assert_array_equal(data[:50], np.arange(1, 51))
    np.testing.assert_array_equal(data[50:449], np.arange(2, 401) + 50)
    assert atlas.n_overlap == 1


@pytest.mark.parametrize("cached", [_atlas._IMAGE, _atlas._LABELS])
@pytest.mark.parametrize("code, message", [(errno.EACCES, "Permission denied"),
                                           (errno.ENOSPC, "the disk is full")])
def test_a_cache_file_whose_temporary_file_cannot_be_made_is_named(
        tmp_path, local_atlases, monkeypatch, cached, code, message):
    """The error names the cache file being written, not the hidden temporary file beside it,
    and no temporary file is left."""
    real = _atlas.tempfile.mkstemp

    def refused(*args, dir=None, prefix="", suffix="", **kwargs):
        if prefix == cached:
            raise OSError(code, os.strerror(code), os.path.join(dir, f"{prefix}k3x9q{suffix}"))
        return real(*args, dir=dir, prefix=prefix, suffix=suffix, **kwargs)

    monkeypatch.setattr(_atlas.tempfile, "mkstemp", refused)
    with pytest.raises(OSError, match=rf"could not save .*brainjepa_atlas/{cached}: {message}"
                       ) as info:
        fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    assert ".part" not in str(info.value)
    assert not list((tmp_path / "brainjepa_atlas").glob("*.part*"))


def test_the_cached_files_get_the_permissions_of_the_umask(tmp_path, local_atlases):
    """As a plain write would make them, not mkstemp's 0600: a cache shared by a group is
    readable by the others."""
    old = os.umask(0o022)
    try:
        fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    finally:
        os.umask(old)
    files = sorted((tmp_path / "brainjepa_atlas").iterdir())
    assert len(files) == 4  # the two Tian files and the two built
    assert {oct(stat.S_IMODE(path.stat().st_mode)) for path in files} == {oct(0o644)}


@pytest.mark.parametrize("keep", [lambda raw: b"", lambda raw: raw[: len(raw) // 2],
                                  lambda raw: raw[:-20]],
                         ids=["emptied", "half", "end-cut"])
def test_a_cached_image_damaged_since_is_built_again(tmp_path, local_atlases, keep):
    """An image cut short in the cache (its header whole, its gzip stream ended early) or
    emptied is built again, as a damaged label list is: it had been returned as the atlas, to
    fail later in nilearn with gzip's 'Compressed file ended', no file named."""
    first = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    image = Path(first.maps)
    image.write_bytes(keep(image.read_bytes()))
    again = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    assert len(local_atlases) == 2  # built again, from the cached Tian files
    assert again.maps == first.maps and again.labels == first.labels
    data = np.asarray(nib.load(again.maps).dataobj)
    assert set(np.unique(data)) == set(range(451))
    fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    assert len(local_atlases) == 2  # the rebuilt cache is read as it is


def test_a_cached_image_that_lost_a_region_is_built_again(tmp_path, local_atlases):
    """An image that reads whole but no longer holds every label 1..450 (e.g. another labels
    image saved under its name) is not returned as the atlas: it is built again."""
    first = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    data = np.asarray(nib.load(first.maps).dataobj)
    nib.save(nib.Nifti1Image(np.where(data == 450, 0, data).astype(np.int16), AFFINE), first.maps)
    again = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    assert len(local_atlases) == 2  # built again, from the cached Tian files
    assert set(np.unique(np.asarray(nib.load(again.maps).dataobj))) == set(range(451))


# -- round 24: what planted bugs in datasets/_atlas.py showed the tests above let through -----


def test_a_cached_label_list_that_is_no_longer_text_is_built_again(tmp_path, local_atlases):
    """A label list overwritten with bytes that are not UTF-8 text is damaged like any other:
    built again, not failed on with a UnicodeDecodeError."""
    first = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    labels = tmp_path / "brainjepa_atlas" / "brainjepa450_labels.txt"
    labels.write_bytes(b"\xff\xfe\x00\x81" * 300)
    again = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    assert len(local_atlases) == 2  # built again, from the cached Tian files
    assert again.labels == first.labels and labels.read_text().count("\n") == 451


@pytest.mark.parametrize("offset, value", [(70, b"\x7f\x7f"), (108, b"\xff\xff\xff\x7f")],
                         ids=["datatype", "vox_offset"])
def test_a_cached_image_whose_header_was_damaged_is_built_again(tmp_path, local_atlases,
                                                                offset, value):
    """A cached image whose gzip stream is whole but whose header no longer reads (an unknown
    data type code: nibabel's HeaderDataError; a NaN data offset: a ValueError) is built again,
    as an image cut short is."""
    import gzip

    first = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    image = Path(first.maps)
    raw = gzip.decompress(image.read_bytes())
    image.write_bytes(gzip.compress(raw[:offset] + value + raw[offset + len(value):]))
    again = fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    assert len(local_atlases) == 2  # built again, from the cached Tian files
    assert set(np.unique(np.asarray(nib.load(again.maps).dataobj))) == set(range(451))


def test_a_cortical_region_all_inside_the_subcortex_is_refused(tmp_path, local_atlases):
    """Schaefer region 1 only in the voxel Tian claims too: the combined image would lack
    label 51, and is refused (not cached)."""
    schaefer = _schaefer().reshape(-1)
    schaefer[449] = 0  # region 1 keeps only voxel 49, which goes to the subcortex
    _replace_source("schaefer.nii.gz", schaefer.reshape(SHAPE))
    with pytest.raises(ValueError, match=r"the combined atlas does not hold the labels 1\.\.450 "
                                         r"\(found 449 labels\)"):
        fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    assert not (tmp_path / "brainjepa_atlas" / "brainjepa450_2mm.nii.gz").exists()


@pytest.mark.parametrize("cached", [_atlas._IMAGE, _atlas._LABELS])
def test_a_cache_file_that_cannot_be_moved_into_place_leaves_no_temporary_file(
        tmp_path, local_atlases, monkeypatch, cached):
    """The temporary file was written, then the rename fails (the disk full at its sync): the
    error names the cache file, and the written temporary file is removed."""
    real = _atlas.move_into_place

    def full(tmp, path):
        if Path(path).name == cached:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
        return real(tmp, path)

    monkeypatch.setattr(_atlas, "move_into_place", full)
    with pytest.raises(OSError, match=rf"could not save .*brainjepa_atlas/{cached}"):
        fetch_atlas_brainjepa450(data_dir=tmp_path, verbose=0)
    assert not list((tmp_path / "brainjepa_atlas").glob("*.part*"))
    assert not (tmp_path / "brainjepa_atlas" / cached).exists()


def test_a_cache_file_that_is_a_dangling_link_is_written_beside_its_target(tmp_path,
                                                                          local_atlases,
                                                                          monkeypatch):
    """The temporary file is made beside the file the link points to, which the rename
    replaces: made beside the link, the rename failed across file systems (EXDEV)."""
    cache, store = tmp_path / "cache" / "brainjepa_atlas", tmp_path / "store"
    cache.mkdir(parents=True)
    store.mkdir()
    names = ["brainjepa450_2mm.nii.gz", "brainjepa450_labels.txt"]
    for name in names:
        (cache / name).symlink_to(Path("..") / ".." / "store" / name)  # relative, dangling
    moved, move = [], _atlas.move_into_place
    monkeypatch.setattr(_atlas, "move_into_place",
                        lambda tmp, path: (moved.append(Path(tmp).parent), move(tmp, path)))
    atlas = fetch_atlas_brainjepa450(data_dir=tmp_path / "cache", verbose=0)
    assert moved == [store.resolve()] * 2
    assert all((cache / name).is_symlink() and (store / name).is_file() for name in names)
    assert len(atlas.labels) == 450


def test_a_download_to_a_dangling_link_is_written_beside_its_target(tmp_path, monkeypatch):
    """As the atlas's cache files: the rename had crossed from the link's folder to the
    target's (EXDEV across file systems)."""
    source, store, cache = tmp_path / "source.bin", tmp_path / "store", tmp_path / "cache"
    source.write_bytes(b"data")
    store.mkdir()
    cache.mkdir()
    (cache / "file.bin").symlink_to(Path("..") / "store" / "file.bin")
    moved, move = [], _weights.move_into_place
    monkeypatch.setattr(_weights, "move_into_place",
                        lambda tmp, path: (moved.append(Path(tmp).parent), move(tmp, path)))
    _weights._download(source.as_uri(), cache / "file.bin")
    assert moved == [store.resolve()]
    assert (cache / "file.bin").is_symlink() and (store / "file.bin").read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cache", "file.bin", "file.bin",
                                                           "source.bin", "store"]

"""The research atlas helper, on generated files (never the network)."""

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

"""Subjects from files: .npy, .tsv/.csv with or without a header, ABIDE .1D, lists and globs."""

import numpy as np
import pandas as pd
import pytest
from _estimators import N_REGIONS, tiny_module

from brainjepa_sk import BrainJEPAEmbedder
from brainjepa_sk.files import read_subject_file
from brainjepa_sk.validation import validate_subjects


@pytest.fixture
def series():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((n, N_REGIONS)) for n in (20, 24, 18, 22)]


def _write(folder, series):
    """One subject in each format, as the tools that make them write them."""
    names = [f"roi{r}" for r in range(N_REGIONS)]
    np.save(folder / "sub-01.npy", series[0])
    pd.DataFrame(series[1], columns=names).to_csv(folder / "sub-02_timeseries.tsv", sep="\t",
                                                  index=False)  # XCP-D style, with a header
    np.savetxt(folder / "sub-03.csv", series[2], delimiter=",")  # no header
    with open(folder / "sub-04_rois_cc200.1D", "w") as file:  # ABIDE PCP: a '#' header line
        file.write("\t".join(f"#{r + 2001}" for r in range(N_REGIONS)) + "\n")
        np.savetxt(file, series[3], delimiter="\t")
    return sorted(folder.iterdir())


def test_every_format_reads_back_its_series(tmp_path, series):
    paths = _write(tmp_path, series)
    read = [read_subject_file(path) for path in paths]
    for got, expected in zip(read, series):
        np.testing.assert_allclose(np.asarray(got, dtype=float), expected, rtol=1e-7)
    assert isinstance(read[0], np.memmap)  # .npy is memory-mapped
    assert list(read[1].columns) == [f"roi{r}" for r in range(N_REGIONS)]  # header -> names


def test_x_may_be_a_list_of_files_or_a_glob(tmp_path, series):
    paths = _write(tmp_path, series)
    from_list = validate_subjects([str(p) for p in paths])
    from_glob = validate_subjects(str(tmp_path / "sub-*"))
    for a, b, expected in zip(from_list, from_glob, series):
        np.testing.assert_allclose(a, expected, rtol=1e-7)
        np.testing.assert_array_equal(a, b)
    # mixed with arrays, and path objects
    mixed = validate_subjects([paths[0], series[1]])
    np.testing.assert_array_equal(mixed[1], series[1])


def test_an_embedder_fits_and_transforms_files(tmp_path, series):
    for i, x in enumerate(series):
        np.save(tmp_path / f"sub-{i}.npy", x)
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu")
    from_files = embedder.fit(str(tmp_path / "*.npy")).transform(str(tmp_path / "*.npy"))
    np.testing.assert_allclose(from_files, embedder.transform(series), rtol=1e-6)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="no subject files match .*nothing-\\*"):
        validate_subjects(str(tmp_path / "nothing-*"))
    (tmp_path / "bad.csv").write_text("1,2,3\n4,x,6\n")
    with pytest.raises(ValueError, match=r"bad\.csv is not a numeric"):
        validate_subjects([tmp_path / "bad.csv"])
    (tmp_path / "s.nii").write_text("")
    with pytest.raises(ValueError, match=r"s\.nii: unknown subject file type"):
        read_subject_file(tmp_path / "s.nii")
    with pytest.raises(FileNotFoundError, match="subject file not found"):
        validate_subjects([tmp_path / "absent.npy"])

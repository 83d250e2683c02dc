"""Subjects from files: .npy, .tsv/.csv with or without a header, ABIDE .1D, lists and globs."""

import multiprocessing
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from _estimators import N_REGIONS, tiny_module

from brainjepa_sk import BrainJEPAEmbedder
from brainjepa_sk.files import SubjectFiles, read_subject_file
from brainjepa_sk.gradients import load_gradients
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


def test_gzipped_text_tables_read_as_the_plain_ones(tmp_path, series):
    """fMRI pipelines write gzipped tables (*_timeseries.tsv.gz): they were refused as an
    unknown subject file type. Each reads as its plain file does, header and '#' lines
    included, in a glob too; only .npy is memory-mapped, so they are read whole."""
    import gzip

    plain = [path for path in _write(tmp_path, series) if path.suffix != ".npy"]
    zipped = tmp_path / "gz"
    zipped.mkdir()
    for path in plain:
        with open(path, "rb") as source, gzip.open(zipped / (path.name + ".gz"), "wb") as out:
            out.write(source.read())
    assert len(plain) == 3
    for path in plain:
        got, expected = read_subject_file(zipped / (path.name + ".gz")), read_subject_file(path)
        assert type(got) is type(expected)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
        if isinstance(expected, pd.DataFrame):  # the header names the regions
            assert list(got.columns) == list(expected.columns)
    read = validate_subjects(str(zipped / "sub-*"), lazy=True)
    assert isinstance(read, SubjectFiles) and len(read) == 3
    for k, expected in enumerate(series[1:]):
        np.testing.assert_allclose(read[k], expected, rtol=1e-7)
    # the checks of the plain tables apply inside: a comment line in a .tsv is named so
    bad = zipped / "sub-05.tsv.gz"
    with gzip.open(bad, "wt") as file:
        file.write("# made by a pipeline\n" + "\n".join(
            "\t".join(f"{v:.4f}" for v in row) for row in series[0]) + "\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(bad))} .*a comment line"):
        read_subject_file(bad)


def test_gzipped_gradient_files_read_as_the_plain_ones(tmp_path):
    """Gradient tables take the gzipped forms subject files take (they had been read as text
    undecompressed, "not a numeric gradient table"), header and '#' lines included."""
    import gzip

    gradients = np.random.default_rng(0).standard_normal((N_REGIONS, 3))
    names = ["g1", "g2", "g3"]
    pd.DataFrame(gradients, columns=names).to_csv(tmp_path / "g.csv", index=False)
    pd.DataFrame(gradients).to_csv(tmp_path / "g.tsv", sep="\t", index=False, header=False)
    np.savetxt(tmp_path / "g.txt", gradients, header=" ".join(names))
    np.savetxt(tmp_path / "g.1D", gradients)
    for name in ("g.csv", "g.tsv", "g.txt", "g.1D"):
        with gzip.open(tmp_path / (name + ".gz"), "wb") as out:
            out.write((tmp_path / name).read_bytes())
        got = load_gradients(tmp_path / (name + ".gz"))
        np.testing.assert_array_equal(got, load_gradients(tmp_path / name))
        np.testing.assert_allclose(got, gradients, rtol=1e-7)
    # the checks of the plain tables apply inside: a table index is refused
    indexed = tmp_path / "indexed.csv.gz"
    pd.DataFrame(gradients).to_csv(indexed, compression="gzip")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(indexed))} is not a numeric "
                                         r"gradient table.*table index"):
        load_gradients(indexed)


def test_upper_case_suffixes_are_read_as_their_formats(tmp_path, series):
    names = [f"roi{r}" for r in range(N_REGIONS)]
    pd.DataFrame(series[0], columns=names).to_csv(tmp_path / "sub-01.TSV", sep="\t",
                                                  index=False)  # tab-separated, as .tsv
    np.savetxt(tmp_path / "sub-02.CSV", series[1], delimiter=",")
    with open(tmp_path / "sub-03.NPY", "wb") as file:
        np.save(file, series[2])
    table = read_subject_file(tmp_path / "sub-01.TSV")
    assert list(table.columns) == names
    read = validate_subjects(str(tmp_path / "sub-*"))
    assert len(read) == 3
    for got, expected in zip(read, series):
        np.testing.assert_allclose(got, expected, rtol=1e-7)


def test_npy_files_are_mapped_read_only_so_the_data_cannot_be_overwritten(tmp_path, series):
    path = tmp_path / "sub-01.npy"
    np.save(path, series[0])
    mapped = read_subject_file(path)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        mapped[0, 0] = 1e6
    subjects = validate_subjects([path], lazy=True)
    with pytest.raises(ValueError, match="read-only"):
        subjects[0][0, 0] = 1e6  # float64 in the file: a view of the map, not a copy
    del mapped, subjects
    np.testing.assert_array_equal(np.load(path), series[0])


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
    # a NumPy array (np.array(sorted(glob(...)))) or a pandas Series of paths: streamed as a
    # list of paths is
    names = [str(p) for p in paths]
    for given in (np.array(names), np.array(names, dtype=object), pd.Series(names)):
        assert isinstance(validate_subjects(given, lazy=True), SubjectFiles)
        from_array = validate_subjects(given)
        assert len(from_array) == len(from_list)
        for a, b in zip(from_array, from_list):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA])
def test_a_list_of_paths_with_a_missing_entry_is_refused_before_any_file_is_read(
        tmp_path, missing):
    """A path column with a blank cell: every file would otherwise be read into memory, then
    the blank refused as a subject of 0 dimensions."""
    names = [str(tmp_path / f"absent-{i}.npy") for i in range(3)]  # never read
    X = pd.Series([*names[:2], missing, names[2]], index=[4, 7, 9, 12])
    with pytest.raises(ValueError, match=r"X lists subject files, but subject 2 is .*, not a "
                                         r"path .*drop the subjects without a file"):
        validate_subjects(X, lazy=True)


def test_a_ragged_table_in_a_list_of_paths_is_named_as_such(tmp_path, series):
    """Not a blank entry, and not NumPy's bare 'inhomogeneous shape' from looking for one."""
    np.save(tmp_path / "sub-01.npy", series[0])
    X = [str(tmp_path / "sub-01.npy"), [[1.0, 2.0], [3.0]]]
    with pytest.raises(ValueError, match=r"subject 1 is a table whose rows differ in length"):
        validate_subjects(X, lazy=True)


def test_an_array_of_paths_as_bytes_names_the_files(tmp_path, series):
    """As HDF5 files and np.char.encode give them."""
    paths = _write(tmp_path, series)
    encoded = np.array([str(path).encode() for path in paths])
    assert encoded.dtype.kind == "S"
    lazy = validate_subjects(encoded, lazy=True)
    assert isinstance(lazy, SubjectFiles) and lazy.paths == paths
    for got, expected in zip(validate_subjects(encoded), series):
        np.testing.assert_allclose(got, expected, rtol=1e-7)


def test_a_glob_gives_its_files_sorted_whatever_order_the_folder_lists(tmp_path, series,
                                                                         monkeypatch):
    import glob

    from brainjepa_sk.files import expand_subject_paths

    paths = _write(tmp_path, series)
    real_glob = glob.glob
    monkeypatch.setattr(glob, "glob", lambda *args, **kwargs: real_glob(*args, **kwargs)[::-1])
    assert expand_subject_paths(str(tmp_path / "sub-*")) == sorted(paths)


def test_an_embedder_fits_and_transforms_files(tmp_path, series):
    for i, x in enumerate(series):
        np.save(tmp_path / f"sub-{i}.npy", x)
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu")
    from_files = embedder.fit(str(tmp_path / "*.npy")).transform(str(tmp_path / "*.npy"))
    np.testing.assert_allclose(from_files, embedder.transform(series), rtol=1e-6)


def test_a_relative_path_not_found_names_the_current_folder(tmp_path, monkeypatch):
    """A script run from another folder than its data finds no files: the error says from
    which folder a relative glob or path was looked for (absolute ones need no such note)."""
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path / "data")
    with pytest.raises(ValueError, match=r"no subject files match 'data/\*\.npy'.*current "
                                         rf"folder {re.escape(str(tmp_path / 'data'))}\)"):
        validate_subjects("data/*.npy")
    with pytest.raises(FileNotFoundError, match=r"not found: data/sub-01\.npy .*current "
                                                rf"folder {re.escape(str(tmp_path / 'data'))}\)"):
        validate_subjects(["data/sub-01.npy"])
    with pytest.raises(ValueError, match="no subject files match") as info:
        validate_subjects(str(tmp_path / "nothing-*"))
    assert "current folder" not in str(info.value)


def test_a_relative_path_from_a_deleted_current_folder_is_still_named(tmp_path, monkeypatch):
    """With the current folder deleted (a notebook's temporary folder removed), looking it up
    for the note on relative paths failed: Python's bare "No such file or directory" replaced
    the error naming the glob or the file."""
    (tmp_path / "gone").mkdir()
    monkeypatch.chdir(tmp_path / "gone")
    (tmp_path / "gone").rmdir()
    with pytest.raises(ValueError, match=r"no subject files match 'data/\*\.npy'.*the current "
                                         r"folder no longer exists"):
        validate_subjects("data/*.npy")
    with pytest.raises(FileNotFoundError, match=r"not found: sub-01\.npy .*no longer exists"):
        read_subject_file("sub-01.npy")


def test_the_narrower_glob_is_suggested_for_globs_the_paths_do_not_spell(tmp_path,
                                                                          monkeypatch):
    """The glob's paths are normalized ('./data/*' finds 'data/sub-0.npy') and '**' spans
    folders: the narrower glob ('./data/*.npy', 'data/**/*.npy'), which matches the subjects
    alone, was left out, as matching none of them."""
    (tmp_path / "data" / "deeper").mkdir(parents=True)
    for i, folder in enumerate(["data", "data", "data/deeper"]):
        np.save(tmp_path / folder / f"sub-{i}.npy", np.zeros((20, 3)) + np.arange(3) * i)
    (tmp_path / "data" / "sub-0.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    for pattern, narrower in [("./data/*", "./data/*.npy"), ("./data/*.*", "./data/*.npy"),
                              ("data/**/*", "data/**/*.npy")]:
        with pytest.raises(ValueError, match=rf"e\.g\. {re.escape(repr(narrower))}"):
            validate_subjects(pattern)


def test_a_glob_matching_folders_only_names_one_and_a_glob_of_their_files(tmp_path):
    """'corpus/*' over one folder per subject said only "no subject files match", as if
    nothing were there: the folders are named, with a glob of the files in them."""
    for i in range(2):
        (tmp_path / "corpus" / f"sub-{i}").mkdir(parents=True)
        np.save(tmp_path / "corpus" / f"sub-{i}" / f"sub-{i}.npy",
                np.random.default_rng(i).standard_normal((20, 3)))
        (tmp_path / "deep" / f"sub-{i}" / "func").mkdir(parents=True)
        np.savetxt(tmp_path / "deep" / f"sub-{i}" / "func" / f"sub-{i}_timeseries.tsv",
                   np.zeros((20, 3)))
    pattern = str(tmp_path / "corpus" / "*")
    with pytest.raises(ValueError, match=(
            rf"^no subject files match {re.escape(repr(pattern))}: it matches folders only "
            rf"\(2, such as {re.escape(str(tmp_path / 'corpus' / 'sub-0'))}\); give a glob of "
            rf"the files in them, such as {re.escape(repr(pattern + '/*.npy'))}$")):
        validate_subjects(pattern)
    assert len(validate_subjects(pattern + "/*.npy")) == 2
    # files in subfolders only: a glob through them, of their most common type
    np.save(tmp_path / "deep" / "sub-0" / "func" / "stray.npy", np.zeros((20, 3)))
    (tmp_path / "deep" / "sub-0" / "func" / "sub-0_more.tsv").write_text("0\n")
    pattern = str(tmp_path / "deep" / "*")
    with pytest.raises(ValueError, match=rf"such as {re.escape(repr(pattern + '/**/*.tsv'))}$"):
        validate_subjects(pattern)
    # no subject file in them: the .npy example
    (tmp_path / "empty" / "sub-0").mkdir(parents=True)
    pattern = str(tmp_path / "empty" / "*")
    with pytest.raises(ValueError, match=rf"such as {re.escape(repr(pattern + '/*.npy'))}$"):
        validate_subjects(pattern)


def test_a_glob_into_folders_offers_their_files_as_many_as_those_below_them(tmp_path):
    """Folders holding as many subject files beside their subfolders as in them: the files
    beside them are offered (those below outnumber them to be offered instead)."""
    for i in range(2):
        (tmp_path / "corpus" / f"sub-{i}" / "extra").mkdir(parents=True)
        np.save(tmp_path / "corpus" / f"sub-{i}" / f"sub-{i}.npy", np.zeros((20, 3)))
        np.save(tmp_path / "corpus" / f"sub-{i}" / "extra" / "other.npy", np.zeros((20, 3)))
    pattern = str(tmp_path / "corpus" / "*")
    with pytest.raises(ValueError, match=rf"such as {re.escape(repr(pattern + '/*.npy'))}$"):
        validate_subjects(pattern)


def test_a_glob_into_folders_of_upper_case_suffixes_matches_their_files(tmp_path):
    """Subject files named in upper case (.NPY, read as .npy files) were offered the glob
    'corpus/*/*.npy', which matches none of them: globs are case-sensitive."""
    for i in range(2):
        (tmp_path / "corpus" / f"sub-{i}").mkdir(parents=True)
        path = tmp_path / "corpus" / f"sub-{i}" / f"sub-{i}.NPY"
        with open(path, "wb") as file:
            np.save(file, np.random.default_rng(i).standard_normal((20, 3)))
    pattern = str(tmp_path / "corpus" / "*")
    with pytest.raises(ValueError, match=rf"such as {re.escape(repr(pattern + '/*.NPY'))}$"):
        validate_subjects(pattern)
    assert len(validate_subjects(pattern + "/*.NPY")) == 2


def test_a_glob_matching_folders_and_files_of_other_types_names_both_and_a_glob(tmp_path):
    """'derivatives/*' over a BIDS or fMRIPrep root matches the subjects' folders and files
    beside them (dataset_description.json): the reader refused the .json as an unknown subject
    file type, not saying that the subjects' files lie in the folders matched."""
    root = tmp_path / "derivatives"
    for i in range(2):
        (root / f"sub-{i}" / "func").mkdir(parents=True)
        np.savetxt(root / f"sub-{i}" / "func" / f"sub-{i}_timeseries.tsv",
                   np.random.default_rng(i).standard_normal((20, 3)), delimiter="\t")
    (root / "dataset_description.json").write_text("{}")
    (root / "sub-0.html").write_text("<html></html>")
    pattern = str(root / "*")
    with pytest.raises(ValueError, match=(
            rf"^no subject files match {re.escape(repr(pattern))}: it matches folders \(2, such "
            rf"as {re.escape(str(root / 'sub-0'))}\) and 2 file\(s\) of no subject file type "
            rf"\({re.escape(str(root / 'dataset_description.json'))}, "
            rf"{re.escape(str(root / 'sub-0.html'))}\); give a glob of the files in the "
            rf"folders, such as {re.escape(repr(pattern + '/**/*.tsv'))}$")):
        validate_subjects(pattern)
    assert len(validate_subjects(pattern + "/**/*.tsv")) == 2
    # images beside the folders: the message says how to make region series of them too
    (root / "sub-0_bold.nii.gz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"and 3 file\(s\) of no subject file type .*, such "
                                         r"as '.*/\*\*/\*\.tsv'\. An image holds voxels or "
                                         r"vertices, not region time series: extract them"):
        validate_subjects(pattern)


def test_a_glob_matching_other_files_beside_the_subjects_names_them(tmp_path):
    """A model or a pretraining run saved in the data folder (checkpoint_dir set to it) made
    the next fit on its glob fail on that file as an unknown subject file type: the glob is
    named, with the other files and a narrower glob."""
    for i in range(2):
        np.save(tmp_path / f"sub-{i}.npy", np.random.default_rng(i).standard_normal((20, 3)))
    (tmp_path / "run-0123.pt").write_bytes(b"state")
    (tmp_path / "sub-0.json").write_text("{}")
    pattern = str(tmp_path / "*")
    with pytest.raises(ValueError, match=(
            rf"the glob {re.escape(repr(pattern))} matches 2 subject file\(s\) but also 2 other "
            rf"file\(s\), which are not subjects: .*run-0123\.pt, .*sub-0\.json; narrow it to "
            rf"the subjects' files, e\.g\. {re.escape(repr(pattern + '.npy'))}")):
        validate_subjects(pattern)
    assert len(validate_subjects(str(tmp_path / "*.npy"))) == 2
    # 'data/*.*' is narrowed to 'data/*.npy' (its + '.npy' matched nothing), and a glob whose
    # narrowing would not match the subjects alone gets no example
    with pytest.raises(ValueError, match=rf"e\.g\. {re.escape(repr(str(tmp_path / '*.npy')))}"):
        validate_subjects(str(tmp_path / "*.*"))
    (tmp_path / "sub-2.NPY").write_bytes((tmp_path / "sub-1.npy").read_bytes())
    with pytest.raises(ValueError, match=r"narrow it to the subjects' files, or give a list "
                                         r"of them where no glob matches them alone \(subject"):
        validate_subjects(pattern)
    (tmp_path / "sub-2.NPY").unlink()
    (tmp_path / "image.nii.gz").write_text("")  # no subject file at all: the reader's advice
    with pytest.raises(ValueError, match="unknown subject file type '.nii.gz'"):
        validate_subjects(str(tmp_path / "*.gz"))


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="no subject files match .*nothing-\\*"):
        validate_subjects(str(tmp_path / "nothing-*"))
    (tmp_path / "bad.csv").write_text("1,2,3\n4,x,6\n")
    with pytest.raises(ValueError, match=r"bad\.csv is not a numeric"):
        validate_subjects([tmp_path / "bad.csv"])
    (tmp_path / "short.csv").write_text("1,2,3\n4,5\n6,7,8\n")  # pandas fills NaN in
    with pytest.raises(ValueError, match=r"short\.csv .*line 2 has 2 cells but line 1 has 3"):
        validate_subjects([tmp_path / "short.csv"])
    # a truncated line that ends with the separator, and a header with a name too many
    for name, text in [("cut.csv", "1,2,3\n4,\n6,7,8\n"), ("names.csv", "a,b,c\n1.5,2.5\n3.5,4.5\n")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=r"line 2 has 2 cells but line 1 has 3 \(a trunc"):
            read_subject_file(tmp_path / name)
    # data lines that end with a tab, under a header that does not: not "damaged"
    (tmp_path / "trailing.tsv").write_text("a\tb\tc\n1.5\t2.5\t3.5\t\n4.5\t5.5\t6.5\t\n")
    with pytest.raises(ValueError, match=r"trailing\.tsv .*line 2 ends with the separator "
                                         r"'\\t' \(an empty last cell\) but line 1 does not"):
        validate_subjects([tmp_path / "trailing.tsv"])
    # the other way round pandas reads as it is: the empty last header cell is dropped
    (tmp_path / "header.csv").write_text("a,b,c,\n1.5,2.5,3.5\n4.5,5.5,6.5\n")
    np.testing.assert_array_equal(read_subject_file(tmp_path / "header.csv"),
                                  [[1.5, 2.5, 3.5], [4.5, 5.5, 6.5]])
    (tmp_path / "missing.csv").write_text("1,2,3\n4,5,\n6,7,8\n")  # a missing value
    with pytest.raises(ValueError, match=r"missing\.csv.*NaN. First at region 2 \(column 2\), "
                                         r"timepoint 1; 1 region\(s\) and 1 value\(s\)"):
        validate_subjects([tmp_path / "missing.csv"], lazy=True)
    (tmp_path / "named.csv").write_text("a,b,c\n1,2,3\n4,n/a,6\n6,n/a,8\n")
    with pytest.raises(ValueError, match=r"named\.csv.*NaN. First at region 'b' \(column 1\), "
                                         r"timepoint 1; 1 region\(s\) and 2 value\(s\)"):
        validate_subjects([tmp_path / "named.csv"], lazy=True)
    np.save(tmp_path / "several.npy", np.zeros((2, 30, 5)))
    with pytest.raises(ValueError, match=r"several\.npy: subject 0 has 3 dimension\(s\).*a "
                                         r"3-D array holds several subjects"):
        validate_subjects([tmp_path / "several.npy"], lazy=True)
    (tmp_path / "commas.tsv").write_text("1.5,2.5,3.5\n4.5,5.5,6.5\n")
    with pytest.raises(ValueError, match=r"commas\.tsv .*separated by ',', not '\\t'"):
        validate_subjects([tmp_path / "commas.tsv"])
    (tmp_path / "s.nii").write_text("")
    with pytest.raises(ValueError, match=r"s\.nii: unknown subject file type"):
        read_subject_file(tmp_path / "s.nii")
    with pytest.raises(FileNotFoundError, match="subject file not found"):
        validate_subjects([tmp_path / "absent.npy"])


@pytest.mark.parametrize("lazy", [False, True])
def test_one_file_of_all_subjects_given_as_x_is_told_to_be_loaded_first(tmp_path, lazy):
    """A .npy file of a 3-D array, named as X (or in it), had been told to be passed "as X
    itself", which its user had done: the advice is to load it and pass the array."""
    path = tmp_path / "all.npy"
    np.save(path, np.zeros((3, 30, 5)))
    for X in (str(path), [path]):
        with pytest.raises(ValueError, match=r"a 3-D array holds several subjects: load the file "
                                             r"first, X = numpy\.load\('.*all\.npy'\), and pass "
                                             r"that array as X") as error:
            validate_subjects(X, lazy=lazy)
        assert "as X itself" not in str(error.value)
    # in memory, the 3-D array given as a subject is still told to be X itself
    with pytest.raises(ValueError, match=r"pass it as X itself"):
        validate_subjects([np.load(path)], lazy=lazy)


def test_only_a_3d_subject_is_told_that_it_holds_several_subjects():
    with pytest.raises(ValueError, match=r"subject 0 has 4 dimension\(s\)") as error:
        validate_subjects([np.zeros((2, 3, 30, 5))])
    assert "holds several subjects" not in str(error.value)


def test_a_text_column_of_a_subject_file_is_named_by_its_header_and_position(tmp_path):
    """A .csv whose label column ('condition') follows the regions had been refused with
    pandas' "could not convert string to float: 'rest'", naming no column."""
    table = pd.DataFrame(np.random.default_rng(3).standard_normal((6, 3)), columns=["a", "b", "c"])
    table.insert(1, "condition", ["1.5", "2", "rest", "task", "rest", "task"])
    table.to_csv(tmp_path / "sub-1.csv", index=False)
    for lazy in (False, True):
        with pytest.raises(ValueError, match=r"sub-1\.csv is not a numeric \(n_timepoints, "
                                             r"n_regions\) table: column 'condition' \(column 1\) "
                                             r"holds text, not numbers \('rest' in data row 2\): "
                                             r"remove it if it is no region$"):
            validate_subjects([tmp_path / "sub-1.csv"], lazy=lazy)


def test_a_first_column_naming_every_row_of_a_subject_file_is_told_transposed(tmp_path):
    """A region-by-time table saved with its region names as the index (``to_csv`` of
    ``series.T``) was told "remove it if it is no region": removing the names left a table
    refused next as another atlas. A column of per-frame labels, which repeat, keeps the
    plain advice (the test above)."""
    names = [f"LH_Vis_{i}" for i in range(4)]
    series = pd.DataFrame(np.random.default_rng(3).standard_normal((9, 4)), columns=names)
    series.T.to_csv(tmp_path / "sub-1.tsv", sep="\t")
    with pytest.raises(ValueError, match=r"column 0 holds text, not numbers \('LH_Vis_0' in "
                                         r"data row 1\); it names every row \('LH_Vis_0', "
                                         r"'LH_Vis_1', \.\.\.\), .*the table is \(n_regions, "
                                         r"n_timepoints\), transposed: read it with "
                                         r"pandas\.read_csv\(path, sep='\\t', index_col=0\) "
                                         r"and pass its transpose"):
        read_subject_file(tmp_path / "sub-1.tsv")
    # the advice, followed, gives the series with its names
    read = pd.read_csv(tmp_path / "sub-1.tsv", sep="\t", index_col=0).T
    assert list(read.columns) == names
    np.testing.assert_allclose(read.to_numpy(), series.to_numpy())


def test_a_gradient_file_indexed_by_region_names_is_told_how_to_keep_them(tmp_path):
    """A gradient DataFrame indexed by region names (which the pretrainer matches to X's
    columns) saved with ``to_csv`` was told to remove its names ("remove it if it is no
    gradient"): the advice now reads it with its index, which keeps the match by name."""
    gradients = pd.DataFrame(np.random.default_rng(4).standard_normal((6, 3)),
                             index=[f"LH_Vis_{i}" for i in range(6)])
    gradients.to_csv(tmp_path / "gradients.csv")
    with pytest.raises(ValueError, match=r"it names every row \('LH_Vis_0', 'LH_Vis_1', "
                                         r"\.\.\.\), .*: region names, which a gradient file "
                                         r"does not take: read it with pandas\.read_csv\(path, "
                                         r"sep=',', index_col=0\) and pass that DataFrame"):
        load_gradients(tmp_path / "gradients.csv")
    read = pd.read_csv(tmp_path / "gradients.csv", index_col=0)
    assert list(read.index) == list(gradients.index)


@pytest.mark.parametrize("name, separator", [("sub-1.txt", ","), ("sub-1.1D", ";")])
def test_a_whitespace_file_separated_by_commas_is_named_as_such(tmp_path, name, separator):
    """numpy quoted the whole first line as one cell it could not convert to float64."""
    np.savetxt(tmp_path / name, np.random.default_rng(5).standard_normal((6, 3)),
               delimiter=separator)
    with pytest.raises(ValueError, match=rf"{re.escape(name)} is not a numeric \(n_timepoints, "
                                         rf"n_regions\) table: its cells are separated by "
                                         rf"'{separator}', but a \.txt or \.1D file is "
                                         r"whitespace-separated"):
        read_subject_file(tmp_path / name)


def test_a_whitespace_file_with_a_table_index_is_named_as_such(tmp_path):
    """pandas' ``to_csv(sep=" ")`` writes a header of column names and an index: numpy said
    "the number of columns changed from 3 to 4 at row 2; use `usecols` to select a subset",
    advice for numpy's own call. Names starting every row add that the table looks
    transposed."""
    series = np.random.default_rng(6).standard_normal((6, 3))
    pd.DataFrame(series).to_csv(tmp_path / "sub-1.txt", sep=" ")
    with pytest.raises(ValueError, match=r"its first line has 3 cells and the next one 4, a "
                                         r"header of column names over rows that start with a "
                                         r"table index, .*save it with index=False and "
                                         r"header=False$"):
        read_subject_file(tmp_path / "sub-1.txt")
    pd.DataFrame(series.T, index=["LH_A", "LH_B", "RH_A"]).to_csv(tmp_path / "sub-2.txt",
                                                                  sep=" ")
    with pytest.raises(ValueError, match=r"its first line has 6 cells and the next one 7, .*"
                                         r"\(the rows start with names, 'LH_A', \.\.\.: if the "
                                         r"rows are regions, the table is \(n_regions, "
                                         r"n_timepoints\), transposed"):
        read_subject_file(tmp_path / "sub-2.txt")


def test_a_whitespace_subject_file_with_rows_named_is_told_transposed(tmp_path):
    """``to_csv(sep=" ", header=False)`` of a region-by-time table indexed by region names:
    numpy had said "could not convert string 'LH_A' to float64"."""
    series = np.random.default_rng(7).standard_normal((8, 3))
    pd.DataFrame(series.T, index=["LH_A", "LH_B", "RH_A"]).to_csv(tmp_path / "sub-1.txt",
                                                                  sep=" ", header=False)
    with pytest.raises(ValueError, match=r"its rows start with names \('LH_A', 'LH_B', "
                                         r"\.\.\.\): if the rows are regions, the table is "
                                         r"\(n_regions, n_timepoints\), transposed: read it "
                                         r"with pandas\.read_csv\(path, sep=r'\\s\+', "
                                         r"index_col=0, header=None\) and pass its transpose"):
        read_subject_file(tmp_path / "sub-1.txt")
    read = pd.read_csv(tmp_path / "sub-1.txt", sep=r"\s+", index_col=0, header=None).T
    np.testing.assert_allclose(read.to_numpy(), series)


@pytest.mark.parametrize("header, read", [(True, ""), (False, ", header=None")])
def test_a_whitespace_gradient_file_indexed_by_region_names_is_told_how_to_keep_them(
        tmp_path, header, read):
    """``to_csv(sep=" ")`` of a gradient DataFrame indexed by region names: numpy had said
    "the number of columns changed from 3 to 4 at row 2; use `usecols`" below the header, or
    "could not convert string 'LH_Vis_0'" without one."""
    gradients = pd.DataFrame(np.random.default_rng(4).standard_normal((6, 3)),
                             index=[f"LH_Vis_{i}" for i in range(6)])
    gradients.to_csv(tmp_path / "gradients.txt", sep=" ", header=header)
    with pytest.raises(ValueError, match=r"its rows start with names \('LH_Vis_0', \.\.\.\), "
                                         r".*: region names, which a gradient file does not "
                                         r"take: read it with pandas\.read_csv\(path, "
                                         rf"sep=r'\\s\+', index_col=0{re.escape(read)}\) and "
                                         r"pass that DataFrame"):
        load_gradients(tmp_path / "gradients.txt")
    # the advice, followed, gives the gradients with their names
    kwargs = {} if header else {"header": None}
    read_back = pd.read_csv(tmp_path / "gradients.txt", sep=r"\s+", index_col=0, **kwargs)
    assert list(read_back.index) == list(gradients.index)
    np.testing.assert_allclose(read_back.to_numpy(), gradients.to_numpy())


def _table(path, rows, first=None, end="", bom=False, quote=False):
    """Write ``rows`` as a tab- or comma-separated table, as various tools do."""
    separator = "\t" if path.suffix == ".tsv" else ","
    cell = (lambda v: f'"{v!r}"') if quote else repr
    lines = ([first] if first is not None else []) + [
        separator.join(cell(float(v)) for v in row) + end for row in rows]
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("labels", [["0", "1", "2"], ["2001", "2002", "2003"], ["-1", "0", "1"],
                                    ["7"]])
def test_a_header_of_integer_labels_is_read_as_region_names(tmp_path, labels):
    rows = np.random.default_rng(0).standard_normal((5, len(labels)))
    path = tmp_path / "sub.tsv"
    pd.DataFrame(rows, columns=labels).to_csv(path, sep="\t", index=False)  # pandas' default
    table = read_subject_file(path)
    assert list(table.columns) == labels
    np.testing.assert_array_equal(table.to_numpy(), rows)
    # integer-valued series have no fractions to tell a header by: their first line is data
    whole = np.arange(15).reshape(5, 3)
    np.savetxt(tmp_path / "whole.tsv", whole, delimiter="\t", fmt="%d")
    np.testing.assert_array_equal(read_subject_file(tmp_path / "whole.tsv"), whole)


@pytest.mark.parametrize("zeroed", [[1], [1, 2]])
def test_integer_labels_are_a_header_above_a_first_row_with_some_whole_values(tmp_path, zeroed):
    rows = np.random.default_rng(6).standard_normal((5, 3))
    rows[0, zeroed] = 0.0  # e.g. zeroed (censored) values among the fractions, the first kept
    path = tmp_path / "sub.tsv"
    pd.DataFrame(rows, columns=["2001", "2002", "2003"]).to_csv(path, sep="\t", index=False)
    table = read_subject_file(path)
    assert list(table.columns) == ["2001", "2002", "2003"]
    np.testing.assert_array_equal(table.to_numpy(), rows)


@pytest.mark.parametrize("fmt", ["%g", "%.18e"])  # numpy.savetxt's default writes 0 as 0.0e+00
def test_a_first_frame_of_zeros_is_data_not_a_header_of_integer_labels(tmp_path, fmt):
    """A censored, zero-filled first frame was read as a header of integer labels: the frame
    was lost and the regions named '0', '0.1', '0.2' (labels are distinct)."""
    rows = np.random.default_rng(14).standard_normal((6, 3))
    rows[0] = 0.0
    np.savetxt(tmp_path / "sub.csv", rows, delimiter=",", fmt=fmt)
    read = read_subject_file(tmp_path / "sub.csv")
    assert isinstance(read, np.ndarray)
    np.testing.assert_allclose(read, rows, atol=1e-5)


@pytest.mark.parametrize("n_censored", [1, 3])
@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_pandas_column_names_above_censored_first_frames_are_a_header(tmp_path, suffix,
                                                                      n_censored):
    """pandas' default column names above first frames censored and zero-filled (written
    0.0,0.0,0.0: no fraction in the second line) were read as a first frame, silently: one
    row too many, the first [0, 1, 2]. The fractions of a later line count."""
    rows = np.random.default_rng(16).standard_normal((6, 3))
    rows[:n_censored] = 0.0
    path = tmp_path / f"sub{suffix}"
    separator = "\t" if suffix == ".tsv" else ","
    pd.DataFrame(rows).to_csv(path, sep=separator, index=False)
    assert path.read_text().splitlines()[:2] == [separator.join(["0", "1", "2"]),
                                                 separator.join(["0.0"] * 3)]
    table = read_subject_file(path)
    assert list(table.columns) == ["0", "1", "2"]
    np.testing.assert_array_equal(table.to_numpy(), rows)
    # a first frame of whole numbers (raw units) above whole numbers alone stays data, and
    # so does one above a later fraction (%g writes 100000 and more as whole numbers)
    whole = np.random.default_rng(16).integers(900, 1100, (6, 3))
    np.savetxt(path, whole, delimiter=separator, fmt="%d")
    np.testing.assert_array_equal(read_subject_file(path), whole)
    raw = np.array([[100123.0, 100456, 100789], [100321, 100654, 100987],
                    [99876.5, 100111, 100222], [100001, 100002, 100003]])
    np.savetxt(path, raw, delimiter=separator, fmt="%g")
    assert path.read_text().splitlines()[2].startswith("99876.5")
    np.testing.assert_array_equal(read_subject_file(path), raw)


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_first_frame_of_one_region_in_raw_units_above_a_later_fraction_is_data(tmp_path,
                                                                                suffix):
    """One whole number counts up by one vacuously: a one-region table of raw units (%g
    writes 100000 and more as whole numbers) lost its first frame as the region's name
    where a later frame, not the second, held a fraction (as a .txt file's one region, a
    first value written whole is data there)."""
    raw = np.array([[100001.0], [100002.0], [99876.5], [100003.0]])
    path = tmp_path / f"sub{suffix}"
    np.savetxt(path, raw, fmt="%g")
    assert path.read_text().splitlines()[:3] == ["100001", "100002", "99876.5"]
    read = read_subject_file(path)
    assert isinstance(read, np.ndarray)
    np.testing.assert_array_equal(read, raw)


@pytest.mark.parametrize("separator, suffix", [(",", ".csv"), (" ", ".txt")])
def test_pandas_column_names_above_a_first_region_of_zeros_are_a_gradient_header(
        tmp_path, separator, suffix):
    """A gradient table whose first region is all zeros (a background label, zero-filled)
    lost pandas' column names above it among the regions (0, 1, 2: one region too many)."""
    gradients = np.random.default_rng(17).standard_normal((7, 3))
    gradients[0] = 0.0
    path = tmp_path / f"gradients{suffix}"
    pd.DataFrame(gradients).to_csv(path, sep=separator, index=False)
    np.testing.assert_array_equal(load_gradients(path), gradients)


def test_integer_labels_repeated_across_the_hemispheres_are_a_header(tmp_path):
    """Labels that repeat but are not all one value are names: a rule refusing every repeated
    integer as a header read them as a first frame of data (1, 2, 3, 1, 2, 3)."""
    rows = np.random.default_rng(14).standard_normal((6, 4))
    path = _table(tmp_path / "sub.csv", rows, first="1,2,1,2")
    read = read_subject_file(path)
    assert isinstance(read, pd.DataFrame) and read.shape == (6, 4)
    np.testing.assert_allclose(read.to_numpy(), rows)


@pytest.mark.parametrize("fmt", ["%.1f", "%.18e"])
@pytest.mark.parametrize("n_columns", [1, 3])
def test_whole_numbers_written_as_floats_above_fractions_are_data(tmp_path, fmt, n_columns):
    """A first row of whole numbers written as floats (-1.0, 2.0e+00: as NumPy and pandas
    write them) is data, not integer labels; a one-column table (a gradient) included. Such a
    row had been taken for a header: the frame lost, or the file refused."""
    rows = np.random.default_rng(15).standard_normal((6, n_columns)).round(1)
    rows[0] = np.arange(-1, n_columns - 1)
    np.savetxt(tmp_path / "sub.csv", rows, delimiter=",", fmt=fmt)
    read = read_subject_file(tmp_path / "sub.csv")
    assert isinstance(read, np.ndarray)
    np.testing.assert_allclose(read, rows)
    np.testing.assert_allclose(load_gradients(tmp_path / "sub.csv"), rows)


@pytest.mark.parametrize("style", ["bom", "quoted", "trailing separator"])
def test_headerless_files_keep_their_first_timepoint(tmp_path, style):
    rows = np.random.default_rng(1).standard_normal((5, 3))
    path = _table(tmp_path / "sub.csv", rows, bom=style == "bom", quote=style == "quoted",
                  end="," if style == "trailing separator" else "")
    np.testing.assert_array_equal(read_subject_file(path), rows)


@pytest.mark.parametrize("bad", ["x0.7960867750951038", "None"])
@pytest.mark.parametrize("suffix", [".csv", ".txt"])
def test_a_bad_cell_among_fractions_in_the_first_row_is_refused_as_in_any_row(tmp_path, bad,
                                                                             suffix):
    """A headerless table whose first row had a damaged cell (a stray character, or "None"
    from a writer of its own) was read with that row as a header: the first frame lost, the
    regions named by the numbers, and no error. Now it is refused as the same cell in a later
    row is, with the same message, which names the file; a subject and a gradient file alike."""
    def errors(row):
        rows = np.random.default_rng(5).standard_normal((6, 4)).astype(str)
        rows[row, 0] = bad
        path = tmp_path / f"row{row}" / f"sub{suffix}"
        path.parent.mkdir()
        path.write_text("\n".join((" " if suffix == ".txt" else ",").join(line)
                                  for line in rows) + "\n")
        readers = [load_gradients] + ([lambda path: validate_subjects([path], lazy=True)]
                                      if suffix == ".csv" else [])
        messages = []
        for read in readers:
            with pytest.raises(ValueError, match=re.escape(str(path))) as caught:
                read(path)
            # the same message but for the row and the folder
            messages.append(re.sub(r"(row|timepoint) \d+", r"\1 k", str(caught.value)
                                   ).replace(f"row{row}", "rowk"))
        return messages

    assert errors(0) == errors(2)


def test_names_among_whole_labels_written_as_floats_stay_a_header(tmp_path):
    """A label image's values written as floats, after a name: the header rule that reads a
    first row of fractions with a text cell as data leaves this header one."""
    rows = np.random.default_rng(5).standard_normal((5, 4))
    path = _table(tmp_path / "labels.csv", rows, first="Background,1.0,2.0,3.0")
    assert list(read_subject_file(path).columns) == ["Background", "1.0", "2.0", "3.0"]


def test_missing_values_in_the_first_row_are_data_and_named_as_such(tmp_path):
    rows = np.random.default_rng(2).standard_normal((5, 3))
    path = _table(tmp_path / "sub.tsv", rows, first="n/a\t1.5\t2.5")
    assert read_subject_file(path).shape == (6, 3)
    with pytest.raises(ValueError, match=r"sub\.tsv.*NaN"):
        validate_subjects([path, path], lazy=True)


@pytest.mark.parametrize("line", [0, 1])
@pytest.mark.parametrize("value", ["inf", "-inf", "1e400"])
def test_infinities_in_the_first_rows_are_named_with_the_file(tmp_path, value, line):
    # the header sniffing looks at the first two lines, where int() would refuse infinities
    # (integer-valued rows: a first line of integers may be region labels)
    rows = np.random.default_rng(4).integers(-9, 9, (5, 3)).astype(str)
    rows[line, 0] = value
    path = tmp_path / "sub.csv"
    path.write_text("\n".join(",".join(row) for row in rows) + "\n")
    with pytest.raises(ValueError, match=r"sub\.csv.*infinit"):
        validate_subjects([path, path], lazy=True)
    with pytest.raises(ValueError, match=r"sub\.csv.*infinit"):
        load_gradients(path)


@pytest.mark.parametrize("name, shown, advice", [
    ("sub-01_bold.nii.gz", ".nii.gz", r"An image .*NiftiLabelsMasker\(labels_img\)"),
    ("sub-01.dtseries.nii", ".nii", r"An image .*NiftiLabelsMasker"),
    ("sub-01.func.gii", ".gii", r"An image .*NiftiLabelsMasker"),
    ("sub-01.ptseries.nii", ".nii", r"CIFTI parcellated series: nibabel\.load\(path\)"),
])
def test_a_brain_image_given_as_a_subject_file_is_told_to_be_parcellated_first(
        tmp_path, name, shown, advice):
    """A 4-D image (the first thing a neuroimaging user may pass) had been refused as of an
    unknown type '.gz', with no word of the region time series the estimators take."""
    (tmp_path / name).write_text("")
    with pytest.raises(ValueError, match=rf"{re.escape(name)}: unknown subject file type "
                                         rf"'{re.escape(shown)}'; .*{advice}"):
        validate_subjects([tmp_path / name])
    (tmp_path / "sub-01.mat").write_text("")  # other types: no advice about images
    with pytest.raises(ValueError, match=r"file type '\.mat'; expected one of [^A-Z]*$"):
        read_subject_file(tmp_path / "sub-01.mat")


def test_a_loaded_brain_image_given_as_a_subject_is_told_to_be_parcellated_first():
    """A NIfTI image in memory had been refused by its dimensions only, without the advice a
    path to the same image gets."""
    nib = pytest.importorskip("nibabel")
    image = nib.Nifti1Image(np.zeros((2, 2, 2, 5), dtype=np.float32), np.eye(4))
    with pytest.raises(ValueError, match=r"subject 0 has 4 dimension\(s\) \(shape \(2, 2, 2, 5\)\)"
                                         r".*table \(an image holds voxels, not region time "
                                         r"series: .*NiftiLabelsMasker\(labels_img\)"):
        validate_subjects([image])
    with pytest.raises(ValueError, match=r"4 dimension") as error:  # an array: no image advice
        validate_subjects([np.zeros((2, 2, 2, 5))])
    assert "image" not in str(error.value)


def test_a_loaded_brain_image_given_as_x_is_told_to_be_parcellated_not_reshaped():
    """One subject's 4-D image passed as X itself had been taken for a 4-D array and told to
    be reshaped to (n_subjects, n_timepoints, n_regions), voxels and all; a 3-D image (one
    volume) had been refused as "got Nifti1Image"."""
    nib = pytest.importorskip("nibabel")
    for shape in ((2, 2, 2, 5), (2, 2, 5)):
        image = nib.Nifti1Image(np.zeros(shape, dtype=np.float32), np.eye(4))
        with pytest.raises(ValueError, match=re.escape(f"got a Nifti1Image of shape {shape}: an "
                                                       "image holds voxels") + r".*NiftiLabels"
                                             r"Masker.*one array per subject") as error:
            validate_subjects(image)
        assert "Reshape" not in str(error.value)


def test_a_trailing_separator_adds_no_region_and_an_index_column_is_refused(tmp_path):
    rows = np.random.default_rng(3).standard_normal((5, 3))
    path = _table(tmp_path / "sub.tsv", rows, first="a\tb\tc\t", end="\t")
    assert list(read_subject_file(path).columns) == ["a", "b", "c"]
    indexed = tmp_path / "indexed.tsv"
    pd.DataFrame(rows, columns=["a", "b", "c"]).to_csv(indexed, sep="\t")  # index=True
    with pytest.raises(ValueError, match=r"indexed\.tsv.*first column has no name.*index=False"):
        read_subject_file(indexed)


def test_an_unnamed_index_column_is_refused_with_the_pandas_line_that_reads_the_file(tmp_path):
    rows = np.random.default_rng(4).standard_normal((6, 3))
    indexed = tmp_path / "sub-01.csv"
    pd.DataFrame(rows, columns=["a", "b", "c"]).to_csv(indexed)  # index=True, as by default
    with pytest.raises(ValueError, match="first column has no name") as error:
        read_subject_file(indexed)
    assert ("read the file with pandas.read_csv(path, sep=',', index_col=0) and pass that "
            "DataFrame") in str(error.value)
    # that line reads the subject without its index, names included
    table = pd.read_csv(indexed, sep=",", index_col=0)
    assert list(table.columns) == ["a", "b", "c"]
    np.testing.assert_allclose(table.to_numpy(), rows)


@pytest.mark.parametrize("index", [np.arange(5), 2.0 * np.arange(1, 6)])  # frames, seconds
@pytest.mark.parametrize("named", [True, False])
def test_a_first_column_that_counts_the_rows_is_refused_as_an_index(tmp_path, index, named):
    """A named index (to_csv of a frame whose index has a name) or a time column, with or
    without a header, was read as one more region."""
    rows = np.random.default_rng(3).standard_normal((5, 3))
    table = pd.DataFrame(rows, columns=["a", "b", "c"], index=pd.Index(index, name="frame"))
    path = tmp_path / "sub.csv"
    table.to_csv(path, header=named)
    name = "'frame' " if named else ""
    with pytest.raises(ValueError, match=rf"sub\.csv.*first column {name}counts the rows "
                                         r"\(\d+, \d+, \d+, \.\.\.\).*index=False"):
        validate_subjects([path], lazy=True)
    table.to_csv(path, header=named, index=False)  # the series alone are read
    np.testing.assert_array_equal(np.asarray(read_subject_file(path)), rows)


@pytest.mark.parametrize("lazy", [False, True])
def test_a_dataframe_read_from_such_a_table_is_refused_as_its_file_is(tmp_path, lazy):
    """``pandas.read_csv`` of a table with an index keeps it as a column, ``"Unnamed: 0"`` (or
    its name, ``"frame"``): passed as DataFrames rather than as their files, such tables were
    fitted with the index as one more region."""
    rng = np.random.default_rng(3)
    rows = [rng.standard_normal((5, 3)) for _ in range(2)]
    frames = [pd.DataFrame(x, columns=["a", "b", "c"]) for x in rows]
    for i, frame in enumerate(frames):
        frame.to_csv(tmp_path / f"sub{i}.tsv", sep="\t")  # index=True
    read = [pd.read_csv(tmp_path / f"sub{i}.tsv", sep="\t") for i in range(2)]
    with pytest.raises(ValueError, match=r"subject 0: its first column 'Unnamed: 0' .*"
                                         r"index=False.*index_col=0"):
        validate_subjects(read, lazy=lazy)
    timed = [frame.rename_axis("frame").reset_index() for frame in frames]
    with pytest.raises(ValueError, match=r"subject 0: its first column 'frame' counts the rows "
                                         r"\(0, 1, 2, \.\.\.\)"):
        validate_subjects(timed, lazy=lazy)
    # read as their index, or without it, the series alone are the regions
    indexed = [pd.read_csv(tmp_path / f"sub{i}.tsv", sep="\t", index_col=0) for i in range(2)]
    out = validate_subjects(indexed)
    # the frame's values (pandas before 3 parses them to within one unit in the last place)
    np.testing.assert_array_equal(out[1], indexed[1].to_numpy())


def test_a_first_column_named_as_a_repeated_unnamed_index_is_refused(tmp_path):
    """A table read without ``index_col`` and written again with its index gets a second
    index, which pandas reads back as ``"Unnamed: 0.1"`` first (the other ``"Unnamed: 0"``)."""
    frame = pd.DataFrame(np.random.default_rng(4).standard_normal((6, 3)), columns=["a", "b", "c"])
    frame.to_csv(tmp_path / "once.csv")
    pd.read_csv(tmp_path / "once.csv").to_csv(tmp_path / "twice.csv")
    twice = pd.read_csv(tmp_path / "twice.csv")
    assert list(twice.columns[:2]) == ["Unnamed: 0.1", "Unnamed: 0"]
    with pytest.raises(ValueError, match=r"subject 0: its first column 'Unnamed: 0\.1' had no "
                                         r"name in its file"):
        validate_subjects([twice])


@pytest.mark.parametrize("first", [
    np.zeros(5),  # a region outside the brain mask, zero-filled: no steps
    np.arange(5.0)[::-1],  # falling
    np.arange(5.0) * [1.0, 1.0, 1.001, 0.999, 1.0],  # a steady drift, not an exact ramp
    np.array([1e-10, 5e-10, 2e-9, 4e-9, 9e-9]),  # unscaled: tiny steps, not all the same
    None,  # two timepoints: any two values are a ramp
])
def test_a_first_region_that_only_looks_like_a_count_is_read(tmp_path, first):
    ramp = _table(tmp_path / "ramp.csv", np.arange(5.0)[:, None])  # a single region: no index
    np.testing.assert_array_equal(read_subject_file(ramp), np.arange(5.0)[:, None])
    rows = np.random.default_rng(16).standard_normal((5, 3))
    if first is None:
        rows = np.array([[1.0, 0.5, 0.25], [2.0, -0.5, -0.75]])
    else:
        rows[:, 0] = first
    path = _table(tmp_path / "sub.csv", rows)
    np.testing.assert_array_equal(read_subject_file(path), rows)


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
@pytest.mark.parametrize("times, shown", [(np.arange(5), "0, 1, 2"),  # frames
                                          (2.0 * np.arange(5), "0, 2, 4")])  # seconds, t_r=2
@pytest.mark.parametrize("named", [True, False])
def test_a_last_column_that_counts_the_rows_is_refused_as_a_time_column(tmp_path, suffix, times,
                                                                        shown, named):
    """A time or frame column appended last (``df["time"] = np.arange(n) * t_r``), with or
    without a header, was read as one more region."""
    rows = np.random.default_rng(3).standard_normal((5, 3))
    table = pd.DataFrame(rows, columns=["a", "b", "c"]).assign(time=times)
    path = tmp_path / f"sub{suffix}"
    table.to_csv(path, sep="\t" if suffix == ".tsv" else ",", header=named, index=False)
    name = "'time' " if named else ""
    message = (rf"sub\{suffix}.*last column {name}\(column 3\) counts the rows "
               rf"\({shown}, \.\.\.\): a time or frame column, not a region; remove it")
    with pytest.raises(ValueError, match=message):
        read_subject_file(path)
    with pytest.raises(ValueError, match=message):
        validate_subjects([path], lazy=True)
    table.drop(columns="time").to_csv(path, sep="\t" if suffix == ".tsv" else ",",
                                      header=named, index=False)  # the series alone are read
    np.testing.assert_array_equal(np.asarray(read_subject_file(path)), rows)


@pytest.mark.parametrize("lazy", [False, True])
def test_a_dataframe_with_a_time_column_appended_last_is_refused(lazy):
    """A subject's DataFrame given a time column (or a frame column) after its regions is
    refused, naming the subject, the column and its position, as its file would be."""
    rng = np.random.default_rng(3)
    frames = [pd.DataFrame(rng.standard_normal((6, 3)), columns=["a", "b", "c"])
              for _ in range(2)]
    timed = [frames[0].assign(time=np.arange(6) * 0.72), frames[1]]
    with pytest.raises(ValueError, match=r"subject 0: its last column 'time' \(column 3\) "
                                         r"counts the rows \(0, 0\.72, 1\.44, \.\.\.\): a time "
                                         r"or frame column, not a region"):
        validate_subjects(timed, lazy=lazy)
    framed = [frame.assign(frame=np.arange(1, 7)) for frame in frames]
    with pytest.raises(ValueError, match=r"subject 0: its last column 'frame' \(column 3\) "
                                         r"counts the rows \(1, 2, 3, \.\.\.\)"):
        validate_subjects(framed, lazy=lazy)
    np.testing.assert_array_equal(validate_subjects(frames, lazy=lazy)[1], frames[1])


@pytest.mark.parametrize("lazy", [False, True])
def test_arrays_and_npy_or_txt_files_with_an_index_or_time_column_are_refused(tmp_path, lazy):
    """Only DataFrames and .csv/.tsv files were checked: an array read from a pandas-written
    file (``numpy.loadtxt(..., skiprows=1)``, ``read_csv(...).to_numpy()``) kept the index as
    its first column, fitted as one more region, and so did a .npy or .txt file of it."""
    rng = np.random.default_rng(5)
    series = [rng.standard_normal((6, 3)) for _ in range(2)]
    indexed = np.column_stack([np.arange(6), series[1]])
    timed = np.column_stack([series[1], np.arange(6) * 0.72])
    np.save(tmp_path / "indexed.npy", indexed)
    np.savetxt(tmp_path / "timed.txt", timed)
    first = r"subject 1: its first column counts the rows \(0, 1, 2, \.\.\.\): a table index"
    last = (r"subject 1: its last column \(column 3\) counts the rows \(0, 0\.72, 1\.44, "
            r"\.\.\.\): a time or frame column")
    for subjects, message in [([series[0], indexed], first), ([series[0], timed], last),
                              ([series[0], tmp_path / "indexed.npy"], r"indexed\.npy.*" + first),
                              ([series[0], tmp_path / "timed.txt"], r"timed\.txt.*" + last)]:
        with pytest.raises(ValueError, match=message):
            validate_subjects(subjects, lazy=lazy)
    np.testing.assert_array_equal(validate_subjects(series, lazy=lazy)[1], series[1])


def test_an_index_first_and_a_time_column_last_are_refused_together(tmp_path):
    """Each ramp had excused the other (two ramps looked like a toy table): the table was read
    with both as regions."""
    rows = np.random.default_rng(6).standard_normal((6, 3))
    table = np.column_stack([np.arange(6), rows, np.arange(6) * 0.8])
    frame = pd.DataFrame(table, columns=["frame", "a", "b", "c", "time"])
    message = r"its first column 'frame' counts the rows \(0, 1, 2, \.\.\.\): a table index"
    with pytest.raises(ValueError, match=message):
        validate_subjects([frame])
    frame.to_csv(tmp_path / "sub.csv", index=False)
    with pytest.raises(ValueError, match=r"sub\.csv.*" + message):
        read_subject_file(tmp_path / "sub.csv")
    with pytest.raises(ValueError, match=r"subject 0: its last column \(column 3\) counts the "
                                         r"rows \(0, 0\.8, 1\.6, \.\.\.\)"):
        validate_subjects([table[:, 1:]])
    # a toy table of ramps between them is still read
    toy = table.copy()
    toy[:, 2] = np.arange(6) * 3.0
    np.testing.assert_array_equal(validate_subjects([toy])[0], toy)


@pytest.mark.parametrize("last", [
    np.zeros(5),  # a region outside the brain mask, zero-filled: no steps
    np.arange(5.0)[::-1],  # falling
    np.arange(5.0) * [1.0, 1.0, 1.001, 0.999, 1.0],  # a steady drift, not an exact ramp
    "toy",  # another column is a ramp too: a toy table, all ramps
    "single",  # a single region: nothing beside it
])
def test_a_last_region_that_only_looks_like_a_count_is_read(tmp_path, last):
    rows = np.random.default_rng(16).standard_normal((5, 3))
    if isinstance(last, str) and last == "single":
        rows = np.arange(5.0)[:, None]
    elif isinstance(last, str):
        rows[:, 1], rows[:, 2] = np.arange(5.0) / 2, np.arange(5.0)
    else:
        rows[:, -1] = last
    names = list("abc"[:rows.shape[1]])
    for first in (None, ",".join(names)):
        path = _table(tmp_path / "sub.csv", rows, first=first)
        np.testing.assert_array_equal(np.asarray(read_subject_file(path)), rows)
    if rows.shape[1] > 1:  # a subject needs two regions
        frame = pd.DataFrame(rows, columns=names)
        np.testing.assert_array_equal(validate_subjects([frame], allow_constant=True)[0], rows)


@pytest.mark.parametrize("suffix, separator", [(".csv", ","), (".tsv", "\t"), (".txt", " ")])
def test_a_gradient_table_whose_last_component_is_a_ramp_is_loaded(tmp_path, suffix, separator):
    """Only a subject's series is checked for a time column appended last: a gradient table
    (one row per region) may end in a ramp, the regions in their order along a component."""
    gradients = np.random.default_rng(4).standard_normal((6, 3))
    gradients[:, -1] = np.linspace(-1, 1, 6)
    path = tmp_path / f"g{suffix}"
    pd.DataFrame(gradients, columns=["g0", "g1", "g2"]).to_csv(path, sep=separator, index=False)
    np.testing.assert_allclose(load_gradients(path), gradients)


@pytest.mark.parametrize("first", ["b,c", '"b","c"'])
def test_a_header_line_short_of_names_is_refused_not_read_as_an_index(tmp_path, first):
    """pandas takes the cells a header does not name for an index: a header missing a name
    (or R's write.table row names) silently lost the first region."""
    rows = np.random.default_rng(3).standard_normal((5, 3))
    path = _table(tmp_path / "sub.csv", rows, first=first)
    with pytest.raises(ValueError, match=rf"sub\.csv.*line 1 has {len(first.split(','))} cells "
                                         r"but every line below has 3: .*name every region"):
        validate_subjects([path], lazy=True)


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
@pytest.mark.parametrize("first, line", [("# written by a tool", "line 1"),
                                         (None, "data row 2")])
def test_a_comment_line_in_a_table_is_named_as_one(tmp_path, suffix, first, line):
    """A '#' line, which .1D and .txt files skip, had been told apart from a header only as
    a header short of names (R's write.table row names, pandas' index), or as a damaged
    line."""
    rows = np.random.default_rng(3).standard_normal((5, 3))
    path = _table(tmp_path / f"sub{suffix}", rows, first=first)
    if first is None:  # a comment between the rows
        lines = path.read_text().splitlines()
        path.write_text("\n".join([*lines[:2], "# scanner restarted", *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match=rf"sub\{suffix}.*{line} starts with '#'.*: a "
                                         r"comment line, which a \.tsv or \.csv table does not "
                                         r"take \(\.1D and \.txt files skip '#' lines\)"):
        validate_subjects([path], lazy=True)


@pytest.mark.parametrize("suffix", [".txt", ".1D"])
def test_a_header_line_without_a_hash_in_a_whitespace_file_is_named_as_one(tmp_path, suffix):
    """A .txt or .1D file takes a header only as a '#' comment: a header line of names had
    been numpy's "could not convert string 'roi0' to float64 at row 0, column 1"."""
    rows = np.random.default_rng(5).standard_normal((6, 3))
    path = tmp_path / f"sub{suffix}"
    np.savetxt(path, rows, header="roi0 roi1 roi2", comments="")
    with pytest.raises(ValueError, match=rf"sub\{suffix} is not a numeric .*: its first line "
                                         r"holds names \('roi0', \.\.\.\), a header, which a "
                                         r"whitespace-separated \.txt or \.1D file takes only "
                                         r"as a comment: put '#' before it"):
        read_subject_file(path)
    np.savetxt(path, rows, header="roi0 roi1 roi2")  # after '# ', as numpy writes it
    np.testing.assert_allclose(read_subject_file(path), rows)
    path.write_text("1.0 oops 2.0\n" + "1.0 2.0 3.0\n")  # a damaged row is not a header
    with pytest.raises(ValueError, match=r"could not convert string 'oops'"):
        read_subject_file(path)
    path.write_bytes(b"\xff\xfe\x00 binary")  # not text: said as before
    with pytest.raises(ValueError, match=rf"sub\{suffix} is not a numeric .*codec"):
        read_subject_file(path)


@pytest.mark.parametrize("suffix, separator", [(".csv", ","), (".tsv", "\t")])
def test_a_header_written_by_numpy_savetxt_names_the_regions_without_its_hash(tmp_path, suffix,
                                                                            separator):
    """numpy.savetxt(header=...) writes its line after '# ': the first region had been named
    '# roi0', which no DataFrame of the same regions matches."""
    rows = np.random.default_rng(4).standard_normal((6, 3))
    names = ["roi0", "roi1", "roi2"]
    path = tmp_path / f"sub{suffix}"
    np.savetxt(path, rows, delimiter=separator, header=separator.join(names))
    table = read_subject_file(path)
    assert list(table.columns) == names
    np.testing.assert_allclose(table.to_numpy(), rows)
    embedder = BrainJEPAEmbedder(tiny_module(n_regions=3), n_frames=8).fit([path])
    assert list(embedder.feature_names_in_) == names
    embedder.transform([pd.DataFrame(rows, columns=names)])  # the same regions, named alike


@pytest.mark.parametrize("names, comments", [
    (["#1", "#2", "#3"], None), (["#1"], None), (["#1", "#2", "#3"], "# "), (["#1"], "# "),
    (["roi0", "roi1", "roi2"], "#")])
def test_regions_named_with_a_hash_keep_it(tmp_path, names, comments):
    """Only the '#' numpy.savetxt writes before its header line is dropped: regions named
    '#1', '#2', ... in a header line had the first named '1'."""
    rows = np.random.default_rng(5).standard_normal((6, len(names)))
    path = tmp_path / "sub.csv"
    if comments is None:  # pandas' header line
        pd.DataFrame(rows, columns=names).to_csv(path, index=False)
    else:
        np.savetxt(path, rows, delimiter=",", header=",".join(names), comments=comments)
    assert list(read_subject_file(path).columns) == names


@pytest.mark.parametrize("decimal", [".", ","])
def test_a_csv_separated_by_semicolons_is_named_as_such(tmp_path, decimal):
    """Spreadsheets where the decimal mark is a comma save ';'-separated .csv files: the
    error was a cell that is not a number, or pandas' index made of the decimal parts."""
    rows = np.random.default_rng(3).standard_normal((5, 3))
    lines = ["a;b;c"] + [";".join(f"{v:.4f}".replace(".", decimal) for v in row) for row in rows]
    (tmp_path / "sub.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"sub\.csv.*reads as one column: its cells are "
                                         r"separated by ';', not ','"):
        validate_subjects([tmp_path / "sub.csv"], lazy=True)
    if decimal == ".":  # one line only: the hint still reads the numbers
        (tmp_path / "one.csv").write_text(lines[1] + "\n")
        with pytest.raises(ValueError, match=r"one\.csv.*reads as one column: .*';', not ','"):
            read_subject_file(tmp_path / "one.csv")


def test_a_header_of_integer_labels_may_end_with_a_separator_too(tmp_path):
    rows = np.random.default_rng(10).standard_normal((5, 3))
    path = _table(tmp_path / "sub.csv", rows, first="2001,2002,2003,", end=",")
    table = read_subject_file(path)
    assert list(table.columns) == ["2001", "2002", "2003"]
    np.testing.assert_array_equal(table.to_numpy(), rows)


@pytest.mark.parametrize("first", ["a,b,c", "2001,2002,2003", None])
def test_blank_lines_before_the_table_are_skipped_as_pandas_does(tmp_path, first):
    """The header (or first timepoint) is the first line that is not blank."""
    rows = np.random.default_rng(11).standard_normal((5, 3))
    path = _table(tmp_path / "sub.csv", rows, first=first)
    path.write_text("\n \n" + path.read_text())
    table = read_subject_file(path)
    if first is None:
        assert isinstance(table, np.ndarray)
    else:
        assert list(table.columns) == first.split(",")
    np.testing.assert_array_equal(np.asarray(table), rows)


def test_frames_are_a_copy_that_leaves_the_file_alone(tmp_path, series):
    path = tmp_path / "sub-0.npy"
    np.save(path, series[0])
    files = validate_subjects([path], lazy=True)
    frames = files.frames(0, 2, 5)
    frames[:] = 0.0  # a copy: writeable, and the file keeps its values
    np.testing.assert_array_equal(np.load(path), series[0])


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])  # with a byte-order mark, as Excel
def test_quoted_names_holding_the_separator_do_not_make_a_missing_value_a_damaged_line(
        tmp_path, encoding):
    """Harvard-Oxford labels hold commas: pandas quotes them, and the line lengths counted
    them as several cells, calling a NaN a truncated line."""
    rows = np.random.default_rng(12).standard_normal((5, 3))
    rows[2, 1] = np.nan
    names = ["Cingulate Gyrus, anterior division", "Frontal Pole", "Insular Cortex"]
    pd.DataFrame(rows, columns=names).to_csv(tmp_path / "sub.csv", index=False, encoding=encoding)
    with pytest.raises(ValueError, match=r"sub\.csv.*NaN. First at region 'Frontal Pole' "
                                         r"\(column 1\), timepoint 2"):
        validate_subjects([tmp_path / "sub.csv"], lazy=True)


def test_a_path_with_a_line_end_says_so(tmp_path):
    """Names read with readlines() keep their line end, invisible in the message."""
    np.save(tmp_path / "sub-1.npy", np.random.default_rng(13).standard_normal((6, 3)))
    listed = str(tmp_path / "sub-1.npy") + "\n"
    with pytest.raises(FileNotFoundError, match=r"(?s)subject file not found: .*line end around "
                                                r"it, '.*sub-1\.npy\\n'.*strip the names"):
        validate_subjects([listed], lazy=True)
    with pytest.raises(ValueError, match=r"(?s)no subject files match .*line end around it"):
        validate_subjects(listed, lazy=True)  # one path, taken for a glob


def test_a_missing_last_value_in_the_first_row_is_no_trailing_separator(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_text("1.5,2.5,\n4.5,5.5,6.5\n7.5,8.5,9.5\n")  # the region is kept
    assert read_subject_file(path).shape == (3, 3)
    with pytest.raises(ValueError, match=r"sub\.csv.*NaN. First at region 2 \(column 2\), "
                                         r"timepoint 0; 1 region\(s\) and 1 value\(s\)"):
        validate_subjects([path])


def test_a_folder_and_a_path_with_glob_characters(tmp_path):
    with pytest.raises(ValueError, match="is a folder, not a subject file"):
        read_subject_file(tmp_path)
    # an empty one is said to be empty (it was offered '<folder>/*.npy', which matches nothing)
    with pytest.raises(ValueError, match=r"is an empty folder, not a subject file: give the "
                                         r"subjects' files, or a glob of them$"):
        validate_subjects(tmp_path, lazy=True)
    np.save(tmp_path / "sub-1.npy", np.random.default_rng(4).standard_normal((6, 3)))
    # X naming a folder of subject files was said to match no file
    with pytest.raises(ValueError, match=r"is a folder, not a subject file.*glob such as "
                                         r"'.*\*\.npy'"):
        validate_subjects(tmp_path, lazy=True)
    # one folder per subject: the glob offered reaches their files ('<folder>/*.npy' did not)
    nested = tmp_path / "corpus"
    for i in range(2):
        (nested / f"sub-{i}").mkdir(parents=True)
        np.savetxt(nested / f"sub-{i}" / "series.tsv",
                   np.random.default_rng(i).standard_normal((6, 3)), delimiter="\t")
    with pytest.raises(ValueError, match=r"is a folder, .* glob such as '.*corpus/\*\*/\*"
                                         r"\.tsv'$"):
        validate_subjects(nested, lazy=True)
    assert len(validate_subjects(str(nested / "**" / "*.tsv"), lazy=True)) == 2
    path = tmp_path / "sub[1].npy"
    np.save(path, np.random.default_rng(4).standard_normal((6, 3)))
    assert len(validate_subjects(str(path), lazy=True)) == 1


def test_a_folder_with_glob_characters_in_its_name_is_offered_a_glob_that_matches(tmp_path):
    """The glob offered for a folder given as X named it unescaped: 'data[1]/*.npy' matches
    the files of a folder 'data1', not those of 'data[1]'."""
    folder = tmp_path / "data[1]"
    folder.mkdir()
    for i in range(2):
        np.save(folder / f"sub-{i}.npy", np.random.default_rng(i).standard_normal((6, 3)))
    with pytest.raises(ValueError, match=r"is a folder, not a subject file") as info:
        validate_subjects(str(folder), lazy=True)
    offered = re.search(r"glob such as '(.*)'$", str(info.value)).group(1)
    assert len(validate_subjects(offered, lazy=True)) == 2


def test_a_folder_of_images_given_as_x_is_told_to_extract_region_series(tmp_path):
    """A folder of NIfTI images (one folder per subject, as BIDS lays them out) was offered
    '<folder>/*.npy', which matches nothing there, and no word on the images."""
    for i in range(2):
        (tmp_path / f"sub-{i}" / "func").mkdir(parents=True)
        (tmp_path / f"sub-{i}" / "func" / f"sub-{i}_bold.nii.gz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"is a folder, not a subject file.*An image holds "
                                         r"voxels.*NiftiLabelsMasker"):
        validate_subjects(tmp_path, lazy=True)


def test_a_folder_of_subject_folders_beside_a_table_of_its_own_is_offered_their_files(tmp_path):
    """A BIDS-like folder given as X, with participants.tsv beside one folder per subject, was
    offered '<folder>/*.tsv', which matches participants.tsv alone."""
    pd.DataFrame({"participant_id": ["sub-0", "sub-1", "sub-2"], "age": [21, 34, 27]}).to_csv(
        tmp_path / "participants.tsv", sep="\t", index=False)
    for i in range(3):
        (tmp_path / f"sub-{i}").mkdir()
        np.savetxt(tmp_path / f"sub-{i}" / "series.tsv",
                   np.random.default_rng(i).standard_normal((6, 3)), delimiter="\t")
    with pytest.raises(ValueError, match=r"is a folder, not a subject file") as info:
        validate_subjects(str(tmp_path), lazy=True)
    offered = re.search(r"glob such as '(.*)'$", str(info.value)).group(1)
    assert len(validate_subjects(offered, lazy=True)) == 3


def test_fine_tuning_on_files_names_a_bad_file(tmp_path, series):
    from brainjepa_sk import BrainJEPAClassifier

    series[2][3, 1] = np.nan
    for i, x in enumerate(series):
        np.save(tmp_path / f"sub-{i}.npy", x)
    with pytest.raises(ValueError, match=r"sub-2\.npy.*NaN"):
        BrainJEPAClassifier(tiny_module(), max_epochs=1, verbose=0).fit(
            str(tmp_path / "sub-*.npy"), [0, 1, 0, 1])


@pytest.mark.parametrize("missing", ["NA", "N/A", "NaN"])
def test_missing_values_in_any_spelling_in_the_first_row_are_data(tmp_path, missing):
    """pandas reads NA, N/A and NaN as missing too: a first row holding one is a timepoint,
    not a header of region names."""
    rows = np.random.default_rng(7).standard_normal((5, 3))
    path = _table(tmp_path / "sub.tsv", rows, first=f"{missing}\t1.5\t2.5")
    table = read_subject_file(path)
    assert isinstance(table, np.ndarray) and table.shape == (6, 3)
    np.testing.assert_array_equal(table[1:], rows)
    assert np.isnan(table[0, 0]) and list(table[0, 1:]) == [1.5, 2.5]


@pytest.mark.parametrize("content", ["", "\n  \n", "# written by hand\n\n# nothing\n"])
@pytest.mark.parametrize("suffix", [".1D", ".txt"])
def test_an_empty_text_file_is_named_without_a_warning_from_numpy(tmp_path, suffix, content):
    """NumPy reads a .1D or .txt file without rows as shape (0, 1): it had been
    scikit-learn's "Found array with 0 sample(s) (shape=(0, 1))"; said as for a .csv."""
    np.savetxt(tmp_path / f"sub-1{suffix}", np.random.default_rng(8).standard_normal((20, 3)))
    (tmp_path / f"sub-2{suffix}").write_text(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path))}/sub-2\{suffix} is "
                                             r"not a numeric \(n_timepoints, n_regions\) table: "
                                             r"it has no rows: the file is empty or holds only "
                                             r"blank and '#' lines$"):
            validate_subjects(str(tmp_path / f"sub-*{suffix}"), lazy=True)


@pytest.mark.parametrize("suffix", [".txt", ".1D"])
def test_text_files_may_start_with_a_byte_order_mark(tmp_path, suffix):
    """As .csv / .tsv files may (Windows editors write one): the mark was read as a cell."""
    rows = np.random.default_rng(8).standard_normal((6, 3))
    path = tmp_path / f"sub-1{suffix}"
    np.savetxt(path, rows, header="2001 2002 2003", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    np.testing.assert_allclose(validate_subjects([path], lazy=True)[0], rows, rtol=1e-15)


def test_an_npz_archive_named_npy_is_named_as_such(tmp_path):
    """np.load reads an archive whatever its name: it was called 'text, not numbers'."""
    path = tmp_path / "sub-1.npy"
    with open(path, "wb") as file:
        np.savez(file, x=np.random.default_rng(9).standard_normal((20, 3)))
    with pytest.raises(ValueError, match=r"sub-1\.npy .*an \.npz archive.*numpy\.save"):
        validate_subjects([path], lazy=True)
    path.write_bytes(path.read_bytes()[:100])  # cut short: zipfile's error named no file
    with pytest.raises(ValueError, match=r"sub-1\.npy is not a numeric.*not a zip file"):
        validate_subjects([path], lazy=True)


@pytest.mark.parametrize("damage", ["empty", "half"])
def test_a_damaged_npy_subject_file_is_named(tmp_path, damage):
    path = tmp_path / "sub-1.npy"
    np.save(path, np.random.default_rng(9).standard_normal((20, 3)))
    raw = path.read_bytes()
    path.write_bytes(b"" if damage == "empty" else raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"sub-1\.npy is not a numeric"):
        read_subject_file(path)


def test_a_first_row_of_missing_values_is_data(tmp_path):
    rows = np.random.default_rng(5).standard_normal((5, 3))
    path = _table(tmp_path / "sub.tsv", rows, first="n/a\tn/a\tn/a")
    assert read_subject_file(path).shape == (6, 3)


class _PathLike:
    """A path object that is not a pathlib path (e.g. from another file-system library)."""

    def __init__(self, path):
        self.path = str(path)

    def __fspath__(self):
        return self.path


def test_any_path_like_names_subject_and_gradient_files(tmp_path):
    import os

    from brainjepa_sk.gradients import load_gradients

    assert isinstance(_PathLike(tmp_path), os.PathLike)
    series = np.random.default_rng(0).standard_normal((20, N_REGIONS))
    np.save(tmp_path / "sub-01.npy", series)
    for X in ([_PathLike(tmp_path / "sub-01.npy")], _PathLike(tmp_path / "sub-*.npy")):
        for lazy in (False, True):
            np.testing.assert_array_equal(validate_subjects(X, lazy=lazy)[0], series)
    gradients = np.random.default_rng(1).standard_normal((N_REGIONS, 3))
    with open(tmp_path / "gradients.NPY", "wb") as file:  # an upper-case suffix
        np.save(file, gradients)
    np.testing.assert_array_equal(load_gradients(_PathLike(tmp_path / "gradients.NPY")),
                                  gradients)


def test_frames_of_every_format_are_the_frames_of_its_series(tmp_path, series):
    lazy = validate_subjects(_write(tmp_path, series), lazy=True)
    for i, expected in enumerate(series):
        frames = lazy.frames(i, 3, 9)
        assert frames.shape == (6, N_REGIONS) and frames.dtype == np.float64
        np.testing.assert_allclose(frames, expected[3:9], rtol=1e-15)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".1D"])
@pytest.mark.parametrize("header", [False, True])
def test_a_single_region_is_one_column(tmp_path, suffix, header):
    values = np.random.default_rng(7).standard_normal(6)
    path = tmp_path / f"sub{suffix}"
    path.write_text(("# roi1\n" if suffix == ".1D" else "roi1\n") * header
                    + "\n".join(repr(float(v)) for v in values) + "\n")
    table = read_subject_file(path)
    assert table.shape == (6, 1)
    np.testing.assert_array_equal(np.asarray(table)[:, 0], values)


@pytest.mark.parametrize("end", ["", "\t"])
@pytest.mark.parametrize("name", ["Cingulate Gyrus, anterior division",
                                  '"Cingulate Gyrus, anterior division"'])
def test_a_single_region_may_have_a_comma_in_its_name(tmp_path, name, end):
    """A .tsv of one region named as in the Harvard-Oxford atlas is that region, not a
    comma-separated file misnamed: its numbers hold no comma."""
    values = np.random.default_rng(14).standard_normal(4)
    path = tmp_path / "sub.tsv"
    path.write_text(name + end + "\n" + "".join(f"{float(v)!r}{end}\n" for v in values))
    table = read_subject_file(path)
    assert list(table.columns) == ["Cingulate Gyrus, anterior division"]
    np.testing.assert_array_equal(table.to_numpy()[:, 0], values)


def test_names_lose_the_spaces_after_the_separators(tmp_path):
    rows = np.random.default_rng(15).standard_normal((4, 3))
    path = _table(tmp_path / "sub.csv", rows, first="a, b,  c")
    assert list(read_subject_file(path).columns) == ["a", "b", "c"]


def test_names_quoted_after_a_comma_and_a_space_lose_their_quotes(tmp_path):
    """A header written with ", " between quoted names: every name after the first kept its
    quotes (pandas unquotes a cell only where the quote opens it), and a name holding a comma
    counted as two cells, so that a missing value was told a damaged line."""
    names = ["Left Amygdala", "Cingulate Gyrus, anterior division", "Frontal Pole"]
    rows = np.random.default_rng(16).standard_normal((5, 3))
    path = tmp_path / "sub.csv"
    header = ", ".join(f'"{name}"' for name in names)
    path.write_text(header + "\n" + "".join(", ".join(f"{v!r}" for v in row) + "\n"
                                            for row in rows.tolist()))
    table = read_subject_file(path)
    assert list(table.columns) == names
    np.testing.assert_array_equal(table.to_numpy(), rows)
    path.write_text(header + "\n" + "".join(", ".join("n/a" if (i, j) == (2, 1) else f"{v!r}"
                                                      for j, v in enumerate(row)) + "\n"
                                            for i, row in enumerate(rows.tolist())))
    with pytest.raises(ValueError, match=r"sub\.csv: subject 0: Input X\[0\] contains NaN"):
        validate_subjects([path], lazy=True)


def test_a_file_without_an_extension_is_refused_naming_it(tmp_path):
    path = tmp_path / "sub-01"
    path.write_text("1.5 2.5\n3.5 4.5\n")
    with pytest.raises(ValueError, match=r"sub-01: unknown subject file type ''"):
        read_subject_file(path)


def test_subject_files_index_slice_and_frame_in_their_dtype(tmp_path, series):
    paths = []
    for i, subject in enumerate(series[:3]):
        paths.append(tmp_path / f"sub-{i}.npy")
        np.save(paths[-1], subject)
    files = SubjectFiles(paths, [len(s) for s in series[:3]], N_REGIONS, None, "digest",
                         dtype=np.float32)
    assert files[1].dtype == np.float32 and files.frames(1, 0, 2).dtype == np.float32
    np.testing.assert_array_equal(files[1], series[1].astype(np.float32))
    for index in (slice(1, None), slice(None, None, -1), slice(-2, None)):
        expected = [s.astype(np.float32) for s in series[:3][index]]
        assert all(np.array_equal(a, b) for a, b in zip(files[index], expected, strict=True))
    table = tmp_path / "sub.csv"
    pd.DataFrame(series[0], columns=[f"roi{r}" for r in range(N_REGIONS)]).to_csv(
        table, index=False)
    from_table = SubjectFiles([table], [len(series[0])], N_REGIONS, None, "d", np.float32)
    assert from_table.frames(0, 3, 5).dtype == np.float32


def test_subject_files_built_by_hand_count_as_strictly_checked(tmp_path, series):
    """allow_constant defaults to False: a strict check trusts the files, reading none again."""
    from brainjepa_sk.validation import validate_subjects

    np.save(tmp_path / "sub-0.npy", series[0])
    files = SubjectFiles([tmp_path / "sub-0.npy"], [len(series[0])], N_REGIONS, None, "digest")
    assert validate_subjects(files, lazy=True) is files


def test_spaces_around_a_missing_name_are_pointed_out_only_when_they_hide_a_file(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        read_subject_file(str(tmp_path / "sub-9.npy") + " ")
    assert "without them it names" not in str(error.value)


def test_blank_lines_are_no_damaged_lines(tmp_path):
    rows = np.random.default_rng(8).standard_normal((5, 3))
    path = _table(tmp_path / "sub.tsv", rows, first="n/a\t1.5\t2.5")
    path.write_text(path.read_text() + "\n\n")  # blank lines at the end, as some editors leave
    table = read_subject_file(path)
    assert table.shape == (6, 3) and np.isnan(table[0, 0])
    np.testing.assert_array_equal(table[1:], rows)


def test_a_glob_leaves_folders_out_and_reaches_any_depth(tmp_path):
    from brainjepa_sk.files import expand_subject_paths

    np.save(tmp_path / "sub-01.npy", np.zeros((4, 2)))
    (tmp_path / "sub-02" / "func").mkdir(parents=True)  # a folder the glob matches too
    np.save(tmp_path / "sub-02" / "func" / "sub-02.npy", np.zeros((4, 2)))
    assert expand_subject_paths(tmp_path / "sub-*") == [tmp_path / "sub-01.npy"]
    assert expand_subject_paths(str(tmp_path / "**" / "*.npy")) == [
        tmp_path / "sub-01.npy", tmp_path / "sub-02" / "func" / "sub-02.npy"]


def test_subject_files_repr_names_subjects_then_regions(tmp_path, series):
    paths = [tmp_path / f"sub-{i}.npy" for i in range(2)]
    files = SubjectFiles(paths, [len(series[0])] * 2, N_REGIONS, None, "digest")
    assert repr(files) == f"SubjectFiles(2 subjects, {N_REGIONS} regions)"


def test_a_file_or_glob_under_a_tilde_is_read_from_the_home_folder(tmp_path, monkeypatch):
    from brainjepa_sk.files import expand_subject_paths

    monkeypatch.setenv("HOME", str(tmp_path))
    np.save(tmp_path / "sub-01.npy", np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(read_subject_file("~/sub-01.npy"),
                                  np.arange(6.0).reshape(3, 2))
    assert expand_subject_paths("~/sub-*.npy") == [tmp_path / "sub-01.npy"]
    assert expand_subject_paths("~/sub-01.npy") == [tmp_path / "sub-01.npy"]


def test_a_folder_name_with_a_line_end_is_pointed_out(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"without them it names .*strip the names"):
        read_subject_file(str(tmp_path) + "\n")


def test_a_gradient_table_short_of_names_asks_to_name_every_gradient(tmp_path):
    from brainjepa_sk.gradients import load_gradients

    path = tmp_path / "gradients.csv"
    path.write_text("g1,g2\n0,0.5,0.25\n1,-0.5,0.75\n2,0.1,0.2\n")  # R's row names
    with pytest.raises(ValueError, match=r"gradients\.csv .*name every gradient in line 1"):
        load_gradients(path)


@pytest.mark.parametrize("separator", [" ", "\t"])
def test_a_whitespace_gradient_file_whose_first_column_counts_the_rows_is_refused(tmp_path,
                                                                                 separator):
    """As in a .csv table: pandas' to_csv(sep=" ") of a frame whose index has a name (a header
    naming every column) or without a header wrote the index as a column that the header check
    cannot see, and it had been loaded as gradient 0."""
    gradients = np.random.default_rng(4).standard_normal((6, 3))
    path = tmp_path / "g.txt"
    pd.DataFrame(gradients).rename_axis("region").to_csv(path, sep=separator)
    with pytest.raises(ValueError, match=r"g\.txt is not a numeric gradient table.*first column "
                                         r"'region' counts the rows \(0, 1, 2, \.\.\.\).*"
                                         r"index=False\), not a gradient"):
        load_gradients(path)
    pd.DataFrame(gradients).to_csv(path, sep=separator, header=False)
    with pytest.raises(ValueError, match=r"g\.txt .*first column counts the rows \(0, 1, 2"):
        load_gradients(path)
    pd.DataFrame(gradients).to_csv(path, sep=separator, header=False, index=False)
    np.testing.assert_allclose(load_gradients(path), gradients)
    # the research atlas's format: plain floats, no header
    atlas = np.random.default_rng(5).uniform(-1, 1, (450, 30))
    np.savetxt(path, atlas, delimiter=separator)
    np.testing.assert_array_equal(load_gradients(path), atlas)
    # no index beside a single column, nor where another column is a ramp too (a toy table)
    ramp = np.linspace(-1, 1, 6)[:, None]
    np.savetxt(path, ramp, header="g0", comments="")
    np.testing.assert_allclose(load_gradients(path), ramp)
    ramps = np.column_stack([np.arange(6.0), np.arange(6.0) / 2 - 1, gradients[:, 0]])
    np.savetxt(path, ramps, delimiter=separator)
    np.testing.assert_allclose(load_gradients(path), ramps)


@pytest.mark.parametrize("suffix, separator", [(".txt", " "), (".csv", ","), (".tsv", "\t")])
def test_a_gradient_file_without_rows_says_so_without_a_warning_from_numpy(tmp_path, suffix,
                                                                          separator):
    """A header line alone had been read as a (0, n) table ("must be a non-empty 2-D ...
    matrix, got shape (0, 1)", after NumPy's "input contained no data" warning)."""
    path = tmp_path / f"g{suffix}"
    ignored = r"blank and '#' lines" if suffix == ".txt" else "blank lines"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for header in ("g0 g1 g2", "# written by hand\ng0 g1 g2\n# end"):
            if suffix != ".txt" and header.startswith("#"):
                continue  # '#' is no comment in a .csv or .tsv table
            path.write_text(header.replace(" ", separator) + "\n\n")
            with pytest.raises(ValueError, match=rf"g\{suffix} is not a numeric gradient table"
                                                 r".*: it has a header line but no rows"):
                load_gradients(path)
        contents = ["", "\n  \n"] + (["# g0 g1 g2\n", "# one\n\n# two\n"] if suffix == ".txt"
                                      else [])
        for content in contents:
            path.write_text(content)
            with pytest.raises(ValueError, match=rf"g\{suffix} .*: it has no rows: the file is "
                                                 rf"empty or holds only {ignored}$"):
                load_gradients(path)


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_subject_table_with_only_its_header_line_says_so(tmp_path, suffix):
    """Region names and no frames (a time series export that wrote nothing) had been
    scikit-learn's "Found array with 0 sample(s)"; the shared table reader now says why."""
    path = tmp_path / f"sub-01{suffix}"
    path.write_text("\t".join(["a", "b", "c"]).replace("\t", "," if suffix == ".csv" else "\t")
                    + "\n")
    with pytest.raises(ValueError, match=rf"sub-01\{suffix} is not a numeric \(n_timepoints, "
                                         r"n_regions\) table: it has a header line but no rows"):
        read_subject_file(path)


def test_a_gradient_header_below_comment_and_blank_lines_is_skipped_with_them(tmp_path):
    """In a whitespace-separated gradient file the lines above the header line (comments, as
    ``np.savetxt(header=...)`` writes, and blank ones) are skipped with it: skipping one line
    only read the header line as a region's row, and refused the file."""
    gradients = np.random.default_rng(3).standard_normal((6, 3))
    rows = "\n".join(" ".join(f"{value:.17g}" for value in row) for row in gradients)
    path = tmp_path / "gradients.txt"
    path.write_text(f"# computed with BrainSpace\n\n# dm, normalized_angle\ng1 g2 g3\n{rows}\n")
    np.testing.assert_array_equal(load_gradients(path), gradients)


@pytest.mark.parametrize("header", ["g1 g2 g3 # dm\n", ""])
def test_trailing_comments_of_a_gradient_file_are_no_cells(tmp_path, header):
    """What follows a '#' on a row of a whitespace-separated gradient file is dropped, as numpy
    drops it: counted as cells, it refused a header of three names above rows of three values
    as naming 3 columns of 5, and without a header took a first row of more words of comment
    than values as a header, dropping the first region."""
    gradients = np.random.default_rng(4).standard_normal((4, 3))
    path = tmp_path / "gradients.txt"
    path.write_text(header + "".join(
        " ".join(f"{value:.17g}" for value in row) + f" # region {number} of the atlas\n"
        for number, row in enumerate(gradients)))
    np.testing.assert_array_equal(load_gradients(path), gradients)


def test_a_hash_inside_a_quoted_gradient_name_is_no_comment(tmp_path):
    """pandas' to_csv(sep=" ") quotes a column name holding a space ("Gradient #1"): a '#'
    inside the quotes is part of the name, not a comment (cut there, the header named one
    column of two and the file was refused), while one after them still starts a comment."""
    gradients = np.random.default_rng(5).standard_normal((4, 2))
    path = tmp_path / "gradients.txt"
    pd.DataFrame(gradients, columns=["Gradient #1", "Gradient #2"]).to_csv(
        path, sep=" ", index=False, float_format="%.17g")
    assert path.read_text().startswith('"Gradient #1" "Gradient #2"\n')
    np.testing.assert_array_equal(load_gradients(path), gradients)
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + " # dm\n" + "\n".join(lines[1:]) + "\n")
    np.testing.assert_array_equal(load_gradients(path), gradients)
    # nor is one inside a name without quotes (cut there, the header named one column)
    pd.DataFrame(gradients, columns=["g#1", "g#2"]).to_csv(path, sep=" ", index=False,
                                                         float_format="%.17g")
    assert path.read_text().startswith("g#1 g#2\n")
    np.testing.assert_array_equal(load_gradients(path), gradients)


def test_a_first_line_of_as_many_names_as_fractions_is_a_header(tmp_path):
    """Only a first line of more than half fractions is a data row with text cells in it: one
    of half names, half fractions (here regions named by a coordinate) is a header."""
    from brainjepa_sk.files import has_header_line

    assert has_header_line("Amygdala,0.5", "0.1,0.2", ",")
    assert not has_header_line("x0.5,0.5,0.25", "0.1,0.2,0.3", ",")  # two of three: data
    rows = np.random.default_rng(3).standard_normal((5, 4))
    path = _table(tmp_path / "sub.csv", rows, first="Amygdala,Insula,0.5,1.5")
    table = read_subject_file(path)
    assert list(table.columns) == ["Amygdala", "Insula", "0.5", "1.5"]
    np.testing.assert_array_equal(table.to_numpy(), rows)


def test_infinite_and_nan_cells_of_a_first_line_with_text_count_as_no_fractions():
    """A first line with text in it is judged by its fractions, of which an infinite or NaN
    cell is none: it is neither counted nor an error (``int()`` of it fails)."""
    from brainjepa_sk.files import has_header_line

    assert has_header_line("rest,inf,-Infinity,nan,0.5", "0.1,0.2,0.3,0.4,0.5", ",")
    assert not has_header_line("x,inf,0.25,0.5,0.75", "0.1,0.2,0.3,0.4,0.5", ",")  # data


def test_an_index_and_a_time_column_around_one_region_are_refused(tmp_path):
    """With three columns the first and the last are each judged against the middle one alone:
    an index and a time column around a single region are both ramps, and had hidden each
    other."""
    n = 6
    values = np.column_stack([np.arange(n), np.random.default_rng(0).standard_normal(n),
                              np.arange(n) * 2.0])
    path = tmp_path / "sub.csv"
    pd.DataFrame(values, columns=["frame", "Amygdala", "time"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"sub\.csv.*first column 'frame' counts the rows"):
        read_subject_file(path)


@pytest.mark.parametrize("suffix", [".csv", ".txt"])
def test_a_table_of_one_row_without_a_header_is_read_as_that_row(tmp_path, suffix):
    """A lone line of numbers is a row (one region's gradients, one frame), not a header line
    with no rows below it."""
    row = np.random.default_rng(6).standard_normal(3)
    path = tmp_path / f"one{suffix}"
    path.write_text((" " if suffix == ".txt" else ",").join(repr(float(v)) for v in row) + "\n")
    np.testing.assert_array_equal(load_gradients(path), row[None])
    np.testing.assert_array_equal(read_subject_file(path), row[None])


def test_a_quoted_gradient_name_with_a_space_counts_as_one_name(tmp_path):
    """pandas quotes a name with a space in a whitespace-separated header ("Gradient 1"): a
    header naming two columns above rows of three (row labels first, as R's write.table writes
    them) is refused, not read with the labels as a first gradient."""
    rows = np.random.default_rng(7).standard_normal((4, 2))
    path = tmp_path / "gradients.txt"
    path.write_text('"Gradient 1" "Gradient 2"\n' + "".join(
        f"{label} {a!r} {b!r}\n" for label, (a, b) in zip([3, 7, 12, 20], rows.tolist())))
    with pytest.raises(ValueError, match=r"gradients\.txt.*its header line names 2 columns but "
                                         r"its rows have 3 \(a table index"):
        load_gradients(path)
    path.write_text('"Gradient 1" "Gradient 2"\n' + "".join(
        f"{a!r} {b!r}\n" for a, b in rows.tolist()))
    np.testing.assert_array_equal(load_gradients(path), rows)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="processes are not forked on this platform (Windows)")
def test_a_child_forked_while_another_thread_silences_warnings_still_reads_text_files(tmp_path):
    """Reading a text file silences NumPy's warning under the package's one lock for warning
    filters: a process forked (a loader worker) while another thread held it inherited it held
    by a thread that does not exist there, and waited for it forever."""
    import threading

    from brainjepa_sk._warnings import catch_warnings

    path = tmp_path / "subject.txt"
    np.savetxt(path, np.ones((4, 3)))
    held, release = threading.Event(), threading.Event()

    def hold():
        with catch_warnings():
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    try:
        child = multiprocessing.get_context("fork").Process(target=read_subject_file,
                                                             args=(path,))
        child.start()
        child.join(5)
        hung = child.is_alive()
        if hung:
            child.kill()
            child.join()
    finally:
        release.set()
        thread.join()
    assert not hung and child.exitcode == 0


@pytest.mark.parametrize("header", [True, False])
def test_the_advice_for_a_table_of_named_rows_reads_every_row(tmp_path, header):
    """A region-by-time table (or gradients) saved with its index but no header line
    (``to_csv(header=False)``): the advice's ``pandas.read_csv(path, index_col=0)`` took the
    first region's row for a header, and lost that region (``header=None`` reads it)."""
    names = [f"LH_Vis_{i}" for i in range(4)]
    series = pd.DataFrame(np.random.default_rng(8).standard_normal((9, 4)), columns=names)
    series.T.to_csv(tmp_path / "sub-1.csv", header=header)
    with pytest.raises(ValueError, match=r"read it with pandas\.read_csv\(path, sep=',', "
                                         r"index_col=0(, header=None)?\)") as info:
        read_subject_file(tmp_path / "sub-1.csv")
    # the advice, followed
    kwargs = {"header": None} if "index_col=0, header=None)" in str(info.value) else {}
    read = pd.read_csv(tmp_path / "sub-1.csv", index_col=0, **kwargs).T
    assert list(read.columns) == names
    np.testing.assert_allclose(read.to_numpy(), series.to_numpy())
    gradients = series.T.iloc[:, :3]
    gradients.to_csv(tmp_path / "gradients.csv", header=header)
    with pytest.raises(ValueError, match=r"pass that DataFrame") as info:
        load_gradients(tmp_path / "gradients.csv")
    kwargs = {"header": None} if "index_col=0, header=None)" in str(info.value) else {}
    read = pd.read_csv(tmp_path / "gradients.csv", index_col=0, **kwargs)
    assert list(read.index) == names
    np.testing.assert_allclose(read.to_numpy(), gradients.to_numpy())


def test_a_whitespace_file_separated_by_semicolons_with_decimal_commas_is_named_so(tmp_path):
    """A spreadsheet saved where ',' is the decimal mark separates cells by ';': the file was
    told separated by ',' (and to be saved as a comma-separated .csv)."""
    series = np.random.default_rng(9).standard_normal((6, 3))
    (tmp_path / "sub-1.txt").write_text("".join(
        ";".join(f"{value:.4f}".replace(".", ",") for value in row) + "\n" for row in series))
    with pytest.raises(ValueError, match=r"its cells are separated by ';', but a \.txt or \.1D "
                                         r"file is whitespace-separated .* or as a \.csv or "
                                         r"\.tsv file, with '\.' as the decimal mark$"):
        read_subject_file(tmp_path / "sub-1.txt")


def test_a_whitespace_subject_file_of_repeating_frame_labels_is_not_told_transposed(tmp_path):
    """Per-frame labels repeat, region names do not: labels that alternate (an event design)
    differed in the first two rows, which alone were compared, and were told 'its rows start
    with names' of a table transposed."""
    series = np.random.default_rng(10).standard_normal((8, 3))
    (tmp_path / "sub-1.txt").write_text("".join(
        f"{('fix', 'stim')[i % 2]} " + " ".join(f"{value:.4f}" for value in row) + "\n"
        for i, row in enumerate(series)))
    with pytest.raises(ValueError, match="could not convert string 'fix'") as info:
        read_subject_file(tmp_path / "sub-1.txt")
    assert "transposed" not in str(info.value)


def test_a_whitespace_subject_file_whose_first_row_is_short_is_not_told_indexed(tmp_path):
    """A first row of fractions one cell short of the next (a damaged row) was told 'a header
    of column names over rows that start with a table index', with the advice to save it
    with index=False: pandas' column names are integers."""
    series = np.random.default_rng(11).standard_normal((6, 4))
    (tmp_path / "sub-1.txt").write_text(" ".join(f"{value:.4f}" for value in series[0, :3])
                                        + "\n" + "".join(" ".join(f"{value:.4f}" for value in row)
                                                         + "\n" for row in series[1:]))
    with pytest.raises(ValueError, match=r"sub-1\.txt is not a numeric") as info:
        read_subject_file(tmp_path / "sub-1.txt")
    assert "table index" not in str(info.value) and "index=False" not in str(info.value)


def _assert_reads_as(read, rows):
    """The subject that the advice's pandas line read holds ``rows``: pandas 2's default float
    parser ("high" precision) may be off the correctly rounded values that pandas 3 and numpy
    read, for some values by thousands of units of the last place (seen: up to 1e-12
    relative, pandas 2.3.3, of values from 1e-8 to 1e6 as to_csv writes them); a wrong row or
    column is off by far more."""
    np.testing.assert_allclose(validate_subjects([read])[0], rows, rtol=1e-11, atol=0)


def test_the_check_of_what_an_advised_pandas_line_reads_takes_its_float_parser_and_no_other_rows(
        tmp_path):
    """The tests' check of what the advice's pandas line reads takes what pandas' default
    float parser reads from ``to_csv``'s shortest digits (with pandas 2, off by up to about
    1e-12 relative: 4.9e-13 here, beyond the 1e-14 it allowed), but no other row or column."""
    rows = np.random.default_rng(8).standard_normal((200, 3))
    pd.DataFrame(rows).to_csv(tmp_path / "sub.csv", index=False)
    read = pd.read_csv(tmp_path / "sub.csv")  # the advice's lines read with these defaults
    _assert_reads_as(read, rows)
    for other in (np.roll(rows, 1, axis=0), rows[:, ::-1], rows[:-1]):
        with pytest.raises(AssertionError):
            _assert_reads_as(read, other)


def _follow(advice, path):
    """The subject that the ``pandas.read_csv`` line an error gives reads from ``path``."""
    line = re.search(r"pandas\.read_csv\(path, [^)]*\)(\.iloc\[:, :-\d\])?"
                     r"(\.rename\(columns=\{[^}]*\}\))?", advice).group(0)
    return eval(line, {"pandas": pd, "path": path})  # the line as the user would run it


@pytest.mark.parametrize("separator, decimal", [(", ", "."), ("; ", ","), (";", ",")])
@pytest.mark.parametrize("header", [True, False])
def test_a_whitespace_file_separated_by_a_mark_and_a_space_is_told_how_to_read_it(
        tmp_path, separator, decimal, header):
    """A .txt file written with ", " between its cells had numpy's "could not convert string
    '0.1257,' to float64" (the commas were told only where no space followed them); the
    advice's pandas line reads it, header and '#' lines included."""
    rows = np.random.default_rng(17).standard_normal((6, 3)).round(4)
    names = ["Left Amygdala", "Right Amygdala", "Frontal Pole"]
    path = tmp_path / "sub-1.txt"
    path.write_text("# ROI signals\n" + (separator.join(names) + "\n" if header else "") + "".join(
        separator.join(f"{v:.4f}".replace(".", decimal) for v in row) + "\n" for row in rows))
    with pytest.raises(ValueError, match=rf"sub-1\.txt is not a numeric .*: its cells are "
                                         rf"separated by '{separator}', but a \.txt or \.1D file "
                                         r"is whitespace-separated .*: read it with "
                                         r"pandas\.read_csv\(path, ") as info:
        read_subject_file(path)
    read = _follow(str(info.value), path)
    np.testing.assert_array_equal(read.to_numpy(), rows)
    if header:
        assert list(read.columns) == names
    _assert_reads_as(read, rows)


@pytest.mark.parametrize("separator, position, trailing", [
    (",", "last", False), ("; ", "first", False),
    *[(separator, position, True) for separator in (",", "; ")
      for position in ("first", "last", None)]])
def test_a_txt_separated_by_a_mark_is_told_the_pandas_line_without_its_time_column(
        tmp_path, separator, position, trailing):
    """The pandas line told for a .txt file of cells separated by commas or semicolons kept a
    column named as the time of each row, which the estimators then refused as no region; and
    for lines that end with the separator (``trailing``, as a loop writing ``f"{value},"``
    leaves them), the empty last column pandas reads (NaN, refused), and a time column named
    in the header, as the empty name was checked."""
    rows = np.random.default_rng(23 if trailing else 19).standard_normal((6, 3)).round(4)
    names, times = ["a", "b", "c"], [f"{2.0 * i:.1f}" for i in range(len(rows))]
    cells = [[t, *map(str, row)] if position == "first" else [*map(str, row), t]
             if position == "last" else list(map(str, row)) for row, t in zip(rows, times)]
    header = (["time", *names] if position == "first" else [*names, "time"]
              if position == "last" else names)
    path = tmp_path / "sub-1.txt"
    end = separator.rstrip() if trailing else ""
    path.write_text("".join(separator.join(line) + end + "\n" for line in [header, *cells]))
    with pytest.raises(ValueError, match=r"separated by .*: read it with pandas\.read_csv"
                                         ) as info:
        read_subject_file(path)
    read = _follow(str(info.value), path)
    assert list(read.columns) == names
    _assert_reads_as(read, rows)


@pytest.mark.parametrize("text, names", [
    # only lines that all end with the separator have an empty last column to leave out:
    # the first two ending so are missing values of the last region
    ("a,b,c\n0.5,1.5,\n0.25,0.75,\n0.125,0.5,2.5\n", ["a", "b", "c"]),
    # a quoted region name holding the separator ("Frontal, T") was split there, and its
    # last part, 'T', taken for a time column, which the pandas line told then left out
    ('"a","b","Frontal, T"\n0.5,1.25,0.3\n0.75,1.5,0.1\n0.1,0.2,0.9\n',
     ["a", "b", "Frontal, T"]),
])
def test_the_line_told_for_a_txt_separated_by_a_mark_keeps_its_regions(tmp_path, text, names):
    """The pandas line told for a .txt separated by commas reads every region of it."""
    path = tmp_path / "sub-1.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"separated by ', ?', but .*: read it with "
                                         r"pandas") as info:
        read_subject_file(path)
    assert list(_follow(str(info.value), path).columns) == names


def test_a_whitespace_header_of_quoted_names_is_named_and_told_how_to_read_it(tmp_path):
    """pandas quotes a name with a space (``to_csv(sep=" ")``): the message named the first
    word of the first name ('"Left'), and its advice ('#', or save it as .tsv) lost the names
    or asked for another file; the pandas line reads them."""
    rows = np.random.default_rng(18).standard_normal((6, 3))
    names = ["Left Amygdala", "Right Amygdala", "Frontal Pole"]
    path = tmp_path / "sub-1.txt"
    pd.DataFrame(rows, columns=names).to_csv(path, sep=" ", index=False)
    with pytest.raises(ValueError, match=r"its first line holds names \('Left Amygdala', "
                                         r"\.\.\.\), a header, .*: put '#' before it, .* or read "
                                         r"it with pandas\.read_csv\(path, sep=r'\\s\+'\) and "
                                         r"pass that DataFrame$") as info:
        read_subject_file(path)
    read = _follow(str(info.value), path)
    assert list(read.columns) == names
    _assert_reads_as(read, rows)


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".tsv"])
@pytest.mark.parametrize("name, times, position", [
    ("time", [0, 2.001, 3.998, 6.002, 8.0, 9.999], "first"),  # recorded times jitter
    ("frame", [0, 1, 2, 5, 6, 9], "first"),  # censored frames leave gaps
    ("t", 0.72 * np.arange(6), "first"),  # an exact ramp, as before
    ("TR", [1, 2, 3, 4, 7, 8], "last"),
    ("time (s)", [0, 2.001, 3.998, 6.002, 8.0, 9.999], "last"),
])
def test_a_column_named_as_times_or_frames_is_refused_with_the_line_that_reads_without_it(
        tmp_path, suffix, name, times, position):
    """A first or last column of times or frame numbers under such a name was read as one
    more region unless it rose by one step on every row (censored frames, jittered times);
    one that did was told "remove it" only. The pandas line the error gives reads the file
    without it (a .txt file was told to put '#' before its header, which kept the column)."""
    rows = np.random.default_rng(19).standard_normal((6, 3))
    table = pd.DataFrame(rows, columns=["a", "b", "c"])
    table.insert(0 if position == "first" else 3, name, times)
    path = tmp_path / f"sub{suffix}"
    table.to_csv(path, sep={".csv": ",", ".tsv": "\t", ".txt": " "}[suffix], index=False)
    with pytest.raises(ValueError, match=rf"sub\{suffix} is not a numeric .*its {position} "
                                         rf"column,? {re.escape(repr(name))}.* not a region.*"
                                         r"read (it|the file) with pandas\.read_csv\(path, "
                                         r".* and pass that DataFrame") as info:
        validate_subjects([path], lazy=True)
    read = _follow(str(info.value), path)
    assert list(read.columns) == ["a", "b", "c"]
    _assert_reads_as(read, rows)
    # as a DataFrame, it is refused too
    with pytest.raises(ValueError, match=rf"subject 0: its {position} column "
                                         rf"{re.escape(repr(name))}"):
        validate_subjects([table])


def test_a_region_named_as_a_time_is_read_where_it_does_not_rise_on_every_row(tmp_path):
    """The name alone does not make a column times: a region's signal under it is read."""
    rows = np.random.default_rng(20).standard_normal((6, 3))
    rows[:, 0] = [0.5, 0.7, 0.6, 0.9, 1.1, 1.2]  # rises, though not on every row
    pd.DataFrame(rows, columns=["t", "b", "time"]).to_csv(tmp_path / "sub.csv", index=False)
    np.testing.assert_array_equal(validate_subjects([tmp_path / "sub.csv"])[0], rows)


def test_a_headerless_table_index_is_told_the_line_that_reads_without_it(tmp_path):
    """A first column counting the rows in a table without a header line: the advice's
    pandas line needs header=None, else it takes the first row for names."""
    rows = np.random.default_rng(21).standard_normal((6, 3))
    pd.DataFrame(rows).to_csv(tmp_path / "sub.csv", header=False)
    with pytest.raises(ValueError, match=r"its first column counts the rows .*pandas\.read_csv"
                                         r"\(path, sep=',', header=None, index_col=0\)") as info:
        read_subject_file(tmp_path / "sub.csv")
    read = _follow(str(info.value), tmp_path / "sub.csv")
    _assert_reads_as(read, rows)


@pytest.mark.parametrize("position", ["first", "last"])
def test_a_time_column_of_a_table_separated_by_a_comma_and_a_space_is_told_a_line_that_reads_it(
        tmp_path, position):
    """A .csv file with ", " between its cells and quoted names is read with its names
    unquoted (skipinitialspace): the pandas line that the refusal of its time column gave
    took the names with their spaces and quotes, and split a name holding a comma in two,
    so that the DataFrame it read had another region count than the file."""
    rows = np.random.default_rng(22).standard_normal((6, 3))
    names = ["Left Amygdala", "Cingulate Gyrus, anterior division", "Frontal Pole"]
    table = pd.DataFrame(rows, columns=names)
    table.insert(0 if position == "first" else 3, "time", 2.0 * np.arange(6))
    path = tmp_path / "sub.csv"
    path.write_text(", ".join(f'"{name}"' for name in table.columns) + "\n" + "".join(
        ", ".join(repr(v) for v in row) + "\n" for row in table.to_numpy().tolist()))
    with pytest.raises(ValueError, match=rf"its {position} column .*'time'.*: .* not a "
                                         r"region; .*read the file with pandas\.read_csv") as info:
        read_subject_file(path)
    read = _follow(str(info.value), path)
    assert list(read.columns) == names
    _assert_reads_as(read, rows)


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("position", ["first", "last"])
def test_a_time_column_of_a_table_whose_lines_end_with_the_separator_is_told_a_line_that_reads_it(
        tmp_path, position, header):
    """Lines that end with the separator are read without the empty last cell: the pandas
    line that the refusal of a time or index column gave kept it, an empty column, and for a
    last time column dropped it instead of the times."""
    rows = np.random.default_rng(23).standard_normal((6, 3))
    table = pd.DataFrame(rows, columns=["a", "b", "c"])
    table.insert(0 if position == "first" else 3, "time", 2.0 * np.arange(6))
    path = tmp_path / "sub.csv"
    path.write_text(("time,a,b,c,\n" if position == "first" else "a,b,c,time,\n") * header
                    + "".join(",".join(repr(v) for v in row) + ",\n"
                              for row in table.to_numpy().tolist()))
    with pytest.raises(ValueError, match=rf"its {position} column .*: .* not a region; .*read "
                                         r"the file with pandas\.read_csv") as info:
        read_subject_file(path)
    read = _follow(str(info.value), path)
    if header:
        assert list(read.columns) == ["a", "b", "c"]
    _assert_reads_as(read, rows)


def test_a_last_time_column_below_numpy_savetxts_header_is_told_a_line_that_names_the_regions(
        tmp_path):
    """numpy.savetxt writes '# ' before its header line, which the file is read without: the
    pandas line that the refusal of a last time column gave named the first region '# a'."""
    rows = np.random.default_rng(24).standard_normal((6, 3))
    path = tmp_path / "sub.csv"
    np.savetxt(path, np.column_stack([rows, 2.0 * np.arange(6)]), delimiter=",",
               header="a,b,c,time")
    with pytest.raises(ValueError, match=r"its last column 'time' .*read the file with "
                                         r"pandas\.read_csv") as info:
        read_subject_file(path)
    read = _follow(str(info.value), path)
    assert list(read.columns) == ["a", "b", "c"]
    _assert_reads_as(read, rows)


@pytest.mark.parametrize("header", [True, False])
def test_lines_that_end_with_a_comma_and_a_space_add_no_region(tmp_path, header):
    """Cells written each followed by ", " leave every line ending with a comma and a space:
    read with the spaces after the commas skipped, the empty last cells were a last region of
    NaN ('Unnamed: 3' holds NaN), where lines ending with the comma alone add none."""
    rows = np.random.default_rng(25).standard_normal((5, 3))
    path = tmp_path / "sub.csv"
    path.write_text("a, b, c, \n" * header + "".join(
        "".join(f"{v!r}, " for v in row) + "\n" for row in rows.tolist()))
    read = read_subject_file(path)
    if header:
        assert list(read.columns) == ["a", "b", "c"]
    np.testing.assert_array_equal(validate_subjects([path])[0], rows)


@pytest.mark.parametrize("rows_ending", ["all", "first"])
def test_data_lines_that_end_with_a_comma_and_a_space_under_a_header_are_told_so(
        tmp_path, rows_ending):
    """Data lines ending with ", " under a header that does not are told they end with the
    separator, as those ending with "," are: the trailing space hid it, so that one such
    line was "a truncated or damaged line", and all of them a header short of names."""
    rows = [", ".join(repr(v) for v in row) for row in
            np.random.default_rng(26).standard_normal((4, 3)).tolist()]
    ending = range(len(rows)) if rows_ending == "all" else [0]
    path = tmp_path / "sub.csv"
    path.write_text("a, b, c\n" + "".join(
        row + (", " if i in ending else "") + "\n" for i, row in enumerate(rows)))
    with pytest.raises(ValueError, match=r"sub\.csv .*line 2 ends with the separator ',' \(an "
                                         r"empty last cell\) but line 1 does not: remove the "
                                         r"trailing separators$"):
        validate_subjects([path])


@pytest.mark.parametrize("name", ["sub.txt", "sub.1D", "sub.txt.gz"])
def test_a_whitespace_table_under_pandas_default_column_names_is_refused(tmp_path, name):
    """pandas' to_csv(sep=" ", index=False) of a DataFrame without names writes "0 1 2" above
    the rows: numpy read it as a first frame of 0, 1, 2 (a header of names is refused, and a
    .csv table's is skipped)."""
    rows = np.random.default_rng(27).standard_normal((6, 3))
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, sep=" ", index=False)
    with pytest.raises(ValueError, match=r"sub\.(txt|1D)(\.gz)? is not a numeric .*its first "
                                         r"line holds whole numbers \(0, 1, 2, \.\.\.\) above "
                                         r"rows of fractions: pandas' column names"):
        validate_subjects([path])
    # whole numbers written as floats are data, as a .csv table's are
    (tmp_path / "data.txt").write_text("0.0 1.0 2.0\n" + "".join(
        " ".join(repr(v) for v in row) + "\n" for row in rows.tolist()))
    np.testing.assert_array_equal(read_subject_file(tmp_path / "data.txt"),
                                  np.vstack([[0, 1, 2], rows]))


def test_a_first_frame_of_whole_numbers_with_a_comment_after_it_is_data(tmp_path):
    """numpy drops what follows a '#' on a line, so the check of a header of integers reads
    the lines without it: a first frame of whole numbers above whole numbers, with a comment
    after it, is data (the comment's words made the line a header of names), and pandas'
    column names above a first row with a comment after it are refused as without one."""
    path = tmp_path / "sub.txt"
    path.write_text("0 1 2  # frame 0\n3 5 4\n7 6 8\n")
    np.testing.assert_array_equal(read_subject_file(path),
                                  [[0, 1, 2], [3, 5, 4], [7, 6, 8]])
    path.write_text("0 1 2\n0.5 -1.25 2.5  # frame 0\n1.5 0.25 -0.5\n")
    with pytest.raises(ValueError, match=r"its first line holds whole numbers \(0, 1, 2, "
                                         r"\.\.\.\) above rows of fractions"):
        read_subject_file(path)


def test_a_first_frame_of_raw_units_written_as_whole_numbers_is_data(tmp_path):
    """numpy.savetxt(fmt="%g") writes six significant digits: raw scanner units of 100000
    and more as whole numbers, a region that falls below 100000 with a fraction. Such a first
    frame is data, not a header of column names (those count up by one: 0 1 2 ...)."""
    series = np.array([100400.0, 152000.0, 181000.0]) + np.random.default_rng(3).normal(
        0, 500, (12, 3))
    series[0, 0], series[1, 0] = 100612.3, 99873.4  # region 0 crosses 100000
    path = tmp_path / "sub.1D"
    np.savetxt(path, series, fmt="%g")
    assert re.fullmatch(r"\d+ \d+ \d+", path.read_text().splitlines()[0])
    np.testing.assert_array_equal(read_subject_file(path), np.loadtxt(path))


def test_pandas_default_column_names_above_a_censored_first_frame_are_refused(tmp_path):
    """A first frame censored and zero-filled is written 0.0 0.0 0.0, a row without
    fractions: pandas' column names above it were read as a first frame all the same (the
    fractions of the rows below count)."""
    rows = np.random.default_rng(5).standard_normal((6, 3))
    rows[0] = 0.0
    path = tmp_path / "sub.txt"
    pd.DataFrame(rows).to_csv(path, sep=" ", index=False)
    assert path.read_text().splitlines()[:2] == ["0 1 2", "0.0 0.0 0.0"]
    with pytest.raises(ValueError, match=r"its first line holds whole numbers \(0, 1, 2, "
                                         r"\.\.\.\) above rows of fractions"):
        read_subject_file(path)
    # with a comment after the names, which numpy dropped
    path.write_text(path.read_text().replace("0 1 2\n", "0 1 2  # region 0, 1, 2\n", 1))
    with pytest.raises(ValueError, match=r"its first line holds whole numbers \(0, 1, 2, "
                                         r"\.\.\.\) above rows of fractions"):
        read_subject_file(path)

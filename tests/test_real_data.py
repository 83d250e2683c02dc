"""Tests of the real-data loaders ``load_development_fmri`` and ``load_abide``.

The default tests run the loaders' real code (nilearn's ``NiftiLabelsMasker`` included) on tiny
files written here, with nilearn's fetchers replaced by functions that return what nilearn's
return (``sklearn.utils.Bunch`` objects). The ``network`` tests download the real data and are
not part of the default run.
"""

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn import datasets as nilearn_datasets
from sklearn.utils import Bunch

from brainjepa_sk.datasets import load_abide, load_development_fmri
from brainjepa_sk.datasets._real import _read_confounds
from brainjepa_sk.validation import validate_subjects

# --- development fMRI: a 4-region atlas on a 6x6x6 grid, three subjects ----------------------

#: Label values in the (low-resolution) atlas; 3 is named in the atlas but absent from the image,
#: as a region lost when an atlas is resampled to coarse data.
REGION_VALUES = (1, 2, 4, 5)
ATLAS_NAMES = [
    "7Networks_LH_Vis_1",
    "7Networks_LH_Vis_2",
    "7Networks_LH_SomMot_1",  # label 3, not in the image
    "7Networks_RH_Vis_1",
    "7Networks_RH_Default_1",
]
EXPECTED_COLUMNS = [ATLAS_NAMES[v - 1] for v in REGION_VALUES]

#: (participant_id, Age, AgeGroup, Child_Adult, Gender, n_timepoints)
SUBJECTS = [
    ("sub-pixar001", 5.5, "5yo", "child", "F", 30),
    ("sub-pixar002", 25.0, "Adult", "adult", "M", 32),
    ("sub-pixar003", 8.25, "8-12yo", "child", "M", 34),
]
CONFOUND_GAIN = 3.0  # the confound's amplitude in every voxel (the signals have unit sd)


def _low_res_labels():
    labels = np.zeros((6, 6, 6), dtype=np.int16)
    labels[:3, :3, :] = 1
    labels[:3, 3:, :] = 2
    labels[3:, :3, :] = 4
    labels[3:, 3:, 3:] = 5  # labels[3:, 3:, :3] stays background
    return labels


def _residualize(signals, design):
    """``signals`` (T, k) with their least-squares fit on ``design`` (T, m) removed."""
    beta, *_ = np.linalg.lstsq(design, signals, rcond=None)
    return signals - design @ beta


def _zscore(x):
    return (x - x.mean(0)) / x.std(0, ddof=1)


def _corr(a, b):
    return np.corrcoef(a, b)[0, 1]


def _make_subject(folder, pid, n_timepoints, seed):
    """A 4-D image whose region means are known signals plus a confound in every voxel.

    Returns the image path, the confounds TSV path and the region signals ``(T, 4)``, built
    orthogonal to a constant, a linear trend and the (filled) confound columns, so that
    detrending and confound regression leave them intact.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_timepoints)
    confound = rng.standard_normal(n_timepoints)
    motion = np.abs(rng.standard_normal(n_timepoints)) * 0.1
    motion_filled = motion.copy()
    motion_filled[0] = motion[1]  # the loader fills the leading n/a with the next value
    design = np.column_stack([np.ones(n_timepoints), t, confound, motion_filled])
    signals = np.column_stack(
        [
            np.sin(2 * np.pi * (k + 1) * t / n_timepoints + 0.3 * k)
            for k in range(len(REGION_VALUES))
        ]
    )
    # orthonormal columns, all orthogonal to the design
    signals = _zscore(np.linalg.qr(_residualize(signals, design))[0])

    labels = _low_res_labels()
    data = 100.0 + CONFOUND_GAIN * confound + 0.05 * rng.standard_normal((6, 6, 6, n_timepoints))
    for k, value in enumerate(REGION_VALUES):
        data[labels == value] += signals[:, k]
    func = folder / f"{pid}_task-pixar_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([2.0, 2.0, 2.0, 1.0])), func)

    table = pd.DataFrame({"trans_x": confound, "framewise_displacement": motion})
    table.loc[0, "framewise_displacement"] = np.nan
    tsv = folder / f"{pid}_task-pixar_desc-reducedConfounds_regressors.tsv"
    table.to_csv(tsv, sep="\t", index=False, na_rep="n/a")
    return str(func), str(tsv), signals


@pytest.fixture(scope="module")
def development(tmp_path_factory):
    """Files of three subjects and an atlas, and the ground truth."""
    folder = tmp_path_factory.mktemp("development_fmri")
    funcs, confounds, truth = {}, {}, {}
    for seed, (pid, *_, n_timepoints) in enumerate(SUBJECTS):
        funcs[pid], confounds[pid], truth[pid] = _make_subject(folder, pid, n_timepoints, seed)
    # The atlas at twice the data's resolution (like Schaefer 2 mm on the 4 mm data).
    high = np.repeat(np.repeat(np.repeat(_low_res_labels(), 2, 0), 2, 1), 2, 2)
    atlas_path = folder / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(high, np.eye(4)), atlas_path)
    phenotypic = pd.DataFrame(
        [s[:5] + ("R",) for s in SUBJECTS],
        columns=["participant_id", "Age", "AgeGroup", "Child_Adult", "Gender", "Handedness"],
    )
    return {
        "funcs": funcs,
        "confounds": confounds,
        "truth": truth,
        "atlas": str(atlas_path),
        "phenotypic": phenotypic,
    }


def _atlas_bunch(development, style):
    if style == "lut":  # nilearn >= 0.11: labels with "Background", and a look-up table
        names = ["Background", *ATLAS_NAMES]
        lut = pd.DataFrame({"index": range(len(names)), "name": names, "color": "#000000"})
        return Bunch(maps=development["atlas"], labels=names, lut=lut, description="")
    # older nilearn: the region names only, as bytes
    return Bunch(maps=development["atlas"], labels=np.array([n.encode() for n in ATLAS_NAMES]))


@pytest.fixture
def fake_development(development, monkeypatch):
    """Replace nilearn's two fetchers; returns the list of calls they got."""
    calls = []
    state = {"atlas_style": "lut", "shuffle_phenotypic": False}

    def fetch_atlas_schaefer_2018(**kwargs):
        calls.append(("atlas", kwargs))
        return _atlas_bunch(development, state["atlas_style"])

    def fetch_development_fmri(n_subjects=None, **kwargs):
        calls.append(("fmri", {"n_subjects": n_subjects, **kwargs}))
        # as nilearn: participants sorted by Child_Adult (adults first), files in that order
        table = development["phenotypic"].iloc[: n_subjects or len(SUBJECTS)]
        table = table.sort_values(by=["Child_Adult"])
        ids = list(table["participant_id"])
        if state["shuffle_phenotypic"]:
            table = table.iloc[::-1]
        return Bunch(
            func=[development["funcs"][pid] for pid in ids],
            confounds=[development["confounds"][pid] for pid in ids],
            phenotypic=table,
            description="",
            t_r=2,
        )

    monkeypatch.setattr("nilearn.datasets.fetch_atlas_schaefer_2018", fetch_atlas_schaefer_2018)
    monkeypatch.setattr("nilearn.datasets.fetch_development_fmri", fetch_development_fmri)
    return calls, state


def _expected_order(n=None):
    subjects = SUBJECTS[: n or len(SUBJECTS)]
    return sorted(subjects, key=lambda s: s[3])  # adults first, stable


def test_development_extracts_known_region_signals(fake_development, development):
    calls, _ = fake_development
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no deprecated nilearn usage
        warnings.simplefilter("error", DeprecationWarning)
        X, y = load_development_fmri(data_dir="somewhere", verbose=0)

    order = _expected_order()
    assert isinstance(X, list) and len(X) == len(y) == 3
    assert list(y.columns) == ["age", "group", "sex", "participant_id"]
    assert list(y.index) == [0, 1, 2]
    assert y["participant_id"].tolist() == [s[0] for s in order]
    assert y["age"].dtype == np.float64 and y["age"].tolist() == [s[1] for s in order]
    assert y["group"].dtype == np.int64
    assert y["group"].tolist() == [1 if s[3] == "child" else 0 for s in order]
    assert y["sex"].tolist() == [s[4] for s in order]

    for x, (pid, *_, n_timepoints) in zip(X, order):
        assert isinstance(x, np.ndarray) and x.dtype == np.float64
        assert x.shape == (n_timepoints, len(REGION_VALUES))
        # z-scored with the sample standard deviation
        np.testing.assert_allclose(x.mean(0), 0, atol=1e-6)
        np.testing.assert_allclose(x.std(0, ddof=1), 1, atol=1e-4)
        truth = development["truth"][pid]
        for k in range(len(REGION_VALUES)):
            assert _corr(x[:, k], truth[:, k]) > 0.99  # the right voxels, confound removed
            others = [abs(_corr(x[:, k], truth[:, j])) for j in range(4) if j != k]
            assert max(others) < 0.1

    # the fetchers got the loader's arguments
    atlas_call = next(kwargs for kind, kwargs in calls if kind == "atlas")
    fmri_call = next(kwargs for kind, kwargs in calls if kind == "fmri")
    assert atlas_call == {
        "n_rois": 100,
        "yeo_networks": 7,
        "resolution_mm": 2,
        "data_dir": "somewhere",
        "verbose": 0,
    }
    assert fmri_call == {"n_subjects": None, "data_dir": "somewhere", "verbose": 0}


def test_development_without_confounds_keeps_the_confound(fake_development, development):
    X, y = load_development_fmri(confounds=False)
    for x, pid in zip(X, y["participant_id"]):
        truth = development["truth"][pid]
        # the confound, 3 times stronger than the signals, dominates every region
        assert max(abs(_corr(x[:, k], truth[:, k])) for k in range(4)) < 0.9
        assert np.isfinite(x).all()


@pytest.mark.parametrize("atlas_style", ["lut", "bytes"])
def test_development_as_frames_names_regions(fake_development, atlas_style):
    _, state = fake_development
    state["atlas_style"] = atlas_style
    X_frames, y = load_development_fmri(n_subjects=2, as_frames=True, n_rois=200)
    X_arrays, _ = load_development_fmri(n_subjects=2, n_rois=200)
    assert len(X_frames) == len(y) == 2
    for frame, array in zip(X_frames, X_arrays):
        assert isinstance(frame, pd.DataFrame)
        assert list(frame.columns) == EXPECTED_COLUMNS  # region 3 is absent: no shift
        np.testing.assert_array_equal(frame.to_numpy(), array)
    validate_subjects(X_frames)  # what the estimators accept


def test_development_n_subjects_and_alignment(fake_development):
    calls, state = fake_development
    X, y = load_development_fmri(n_subjects=2)
    assert calls[-1][1]["n_subjects"] == 2
    assert y["participant_id"].tolist() == [s[0] for s in _expected_order(2)]
    assert [len(x) for x in X] == [s[5] for s in _expected_order(2)]

    # phenotypic rows in another order than the files: matched by participant id
    state["shuffle_phenotypic"] = True
    X, y = load_development_fmri()
    lengths = {s[0]: s[5] for s in SUBJECTS}
    ages = {s[0]: s[1] for s in SUBJECTS}
    assert [len(x) for x in X] == [lengths[pid] for pid in y["participant_id"]]
    assert y["age"].tolist() == [ages[pid] for pid in y["participant_id"]]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_subjects": 0}, "n_subjects"),
        ({"n_subjects": 2.5}, "n_subjects"),
        ({"n_subjects": True}, "n_subjects"),
        ({"n_rois": 150}, "n_rois"),
        ({"yeo_networks": 8}, "yeo_networks"),
        ({"resolution_mm": 4}, "resolution_mm"),
        ({"confounds": "yes"}, "confounds"),
        ({"as_frames": 1}, "as_frames"),
        ({"resolution_mm": True}, "resolution_mm"),  # True == 1, but no resolution
    ],
)
def test_development_bad_parameters_fail_before_fetching(fake_development, kwargs, match):
    calls, _ = fake_development
    with pytest.raises(ValueError, match=match):
        load_development_fmri(**kwargs)
    assert calls == []


def test_development_bad_fetcher_results(fake_development, development, monkeypatch):
    import nilearn.datasets

    original = nilearn.datasets.fetch_development_fmri

    def missing_confounds(**kwargs):
        data = original(**kwargs)
        data.confounds = data.confounds[:-1]
        return data

    monkeypatch.setattr("nilearn.datasets.fetch_development_fmri", missing_confounds)
    with pytest.raises(ValueError, match="confounds files"):
        load_development_fmri()
    X, _ = load_development_fmri(confounds=False)  # still possible without them
    assert len(X) == 3

    def bad_group(**kwargs):
        data = original(**kwargs)
        data.phenotypic = data.phenotypic.assign(Child_Adult="teen")
        return data

    monkeypatch.setattr("nilearn.datasets.fetch_development_fmri", bad_group)
    with pytest.raises(ValueError, match="Child_Adult"):
        load_development_fmri()


def test_development_images_named_by_the_participant_id_alone(fake_development, tmp_path,
                                                              monkeypatch):
    # "sub-pixar001.nii.gz": the id ends at a dot, not at an underscore
    import shutil
    from pathlib import Path

    _, state = fake_development
    state["shuffle_phenotypic"] = True
    original = nilearn_datasets.fetch_development_fmri

    def bare_names(**kwargs):
        data = original(**kwargs)
        data.func = [shutil.copy(func, tmp_path / (Path(func).name.split("_")[0] + ".nii.gz"))
                     for func in data.func]
        return data

    monkeypatch.setattr("nilearn.datasets.fetch_development_fmri", bare_names)
    X, y = load_development_fmri()
    lengths = {s[0]: s[5] for s in SUBJECTS}
    assert sorted(y["participant_id"]) == sorted(lengths)
    assert [len(x) for x in X] == [lengths[pid] for pid in y["participant_id"]]


def test_development_images_that_name_one_participant_twice_are_refused(fake_development,
                                                                         monkeypatch):
    # each phenotypic row goes with one image: two images of one participant (and none of
    # another) cannot be matched, even though every image names exactly one participant
    original = nilearn_datasets.fetch_development_fmri

    def one_participant_twice(**kwargs):
        data = original(**kwargs)
        data.func = [data.func[0], *data.func[:-1]]
        data.confounds = [data.confounds[0], *data.confounds[:-1]]
        return data

    monkeypatch.setattr("nilearn.datasets.fetch_development_fmri", one_participant_twice)
    with pytest.raises(ValueError, match="cannot match the functional images") as info:
        load_development_fmri()
    # the two images of one participant are named
    twice = str(original().func[0])
    assert f"one id for several images: [{twice!r}, {twice!r}]" in str(info.value)


def test_missing_confound_values_take_the_next_frames_value_then_the_previous(tmp_path):
    tsv = tmp_path / "confounds.tsv"
    tsv.write_text("a\tb\tempty\n"
                   "n/a\t1\tn/a\n"
                   "2\tn/a\tn/a\n"
                   "3\t5\tn/a\n"
                   "4\tn/a\tn/a\n")
    np.testing.assert_array_equal(_read_confounds(tsv), [[2, 1], [2, 5], [3, 5], [4, 5]])


# --- ABIDE: PCP-like .1D text files ----------------------------------------------------------

N_ABIDE_REGIONS = 10
#: (SUB_ID, SITE_ID, DX_GROUP, AGE_AT_SCAN, SEX, n_timepoints, problem)
ABIDE_SUBJECTS = [
    (50001, "NYU", 1, 12.5, 1, 40, None),
    (50002, "NYU", 2, 30.0, 2, 40, None),
    (50003, "PITT", 1, 15.2, 1, 36, "constant"),  # region 3 all zero
    (50004, "PITT", 2, 22.0, 2, 0, "empty"),  # a file without data
    (50005, "UM_1", 2, 9.75, 1, 44, None),
]
#: Repetition times (s) of the fixture's sites, as ABIDE I's sites scanned them.
ABIDE_SITE_T_R = {"NYU": 2.0, "PITT": 1.5, "UM_1": 2.0}
CONSTANT_REGION = 3


@pytest.fixture(scope="module")
def abide_files(tmp_path_factory):
    """PCP-like ``.1D`` files (a commented header, then one row per frame) and the arrays."""
    folder = tmp_path_factory.mktemp("abide")
    rng = np.random.default_rng(0)
    paths, arrays = [], []
    header = "\t".join(f"#{2001 + r}" for r in range(N_ABIDE_REGIONS))
    for sub_id, site, *_, n_timepoints, problem in ABIDE_SUBJECTS:
        x = rng.standard_normal((n_timepoints, N_ABIDE_REGIONS)).round(6)
        if problem == "constant":
            x[:, CONSTANT_REGION] = 0.0
        path = folder / f"{site}_00{sub_id}_rois_cc200.1D"
        np.savetxt(path, x, delimiter="\t", header=header, comments="", fmt="%.6f")
        paths.append(str(path))
        arrays.append(x)
    phenotypic = pd.DataFrame(
        [
            (i, sub_id, f"{site}_00{sub_id}", site, dx, age, sex, 7.0)
            for i, (sub_id, site, dx, age, sex, *_) in enumerate(ABIDE_SUBJECTS)
        ],
        columns=["i", "SUB_ID", "FILE_ID", "SITE_ID", "DX_GROUP", "AGE_AT_SCAN", "SEX", "FIQ"],
    )
    return {"paths": paths, "arrays": arrays, "phenotypic": phenotypic}


@pytest.fixture
def fake_abide(abide_files, monkeypatch):
    """Replace nilearn's ABIDE fetcher; returns its calls and a switch for its output form."""
    calls = []
    state = {"as_paths": False, "series": None}

    def fetch_abide_pcp(data_dir=None, n_subjects=None, derivatives=None, **kwargs):
        calls.append(
            {"data_dir": data_dir, "n_subjects": n_subjects, "derivatives": derivatives, **kwargs}
        )
        n = n_subjects or len(ABIDE_SUBJECTS)
        paths = abide_files["paths"][:n]
        if state["series"] is not None:
            files = state["series"][:n]
        elif state["as_paths"]:
            files = paths
        else:  # as nilearn: the .1D files read with numpy
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # empty file
                files = [np.loadtxt(p) for p in paths]
        return Bunch(
            description="",
            phenotypic=abide_files["phenotypic"].iloc[:n],
            **{derivatives[0]: files},
        )

    monkeypatch.setattr("nilearn.datasets.fetch_abide_pcp", fetch_abide_pcp)
    return calls, state


def _messages(record):
    return [str(w.message) for w in record]


def _usable():
    return [s for s in ABIDE_SUBJECTS if s[6] != "empty"]


@pytest.mark.parametrize("as_paths", [False, True])
def test_abide_labels_series_and_empty_subjects(fake_abide, abide_files, as_paths):
    calls, state = fake_abide
    state["as_paths"] = as_paths
    with pytest.warns(UserWarning) as record:
        X, y = load_abide(data_dir="cache", verbose=1)
    messages = _messages(record)
    assert len(messages) == 2
    assert "left out 1 subject(s) whose rois_cc200 series is empty" in messages[0]
    assert "50004" in messages[0]
    assert "1 of 4 subjects have constant regions" in messages[1]  # kept, with a warning

    usable = _usable()
    assert list(y.columns) == ["diagnosis", "age", "sex", "site", "subject_id", "t_r"]
    assert list(y.index) == list(range(len(usable)))
    assert y["subject_id"].tolist() == [s[0] for s in usable]
    assert y["diagnosis"].dtype == np.int64
    assert y["diagnosis"].tolist() == [1 if s[2] == 1 else 0 for s in usable]
    assert y["age"].tolist() == [s[3] for s in usable]
    assert y["sex"].tolist() == ["M" if s[4] == 1 else "F" for s in usable]
    assert isinstance(y["site"].dtype, pd.CategoricalDtype)
    assert y["site"].tolist() == [s[1] for s in usable]
    assert y["t_r"].dtype == np.float64
    assert y["t_r"].tolist() == [ABIDE_SITE_T_R[s[1]] for s in usable]
    with pytest.raises(ValueError, match="constant signal"):  # kept: the estimators say so
        validate_subjects(X)

    arrays = [a for a, s in zip(abide_files["arrays"], ABIDE_SUBJECTS) if s[6] != "empty"]
    assert len(X) == len(usable)
    for x, expected, s in zip(X, arrays, usable):
        assert isinstance(x, np.ndarray) and x.dtype == np.float64
        assert x.shape == (s[5], N_ABIDE_REGIONS)
        np.testing.assert_allclose(x, expected)

    assert calls == [
        {
            "data_dir": "cache",
            "n_subjects": None,
            "derivatives": ["rois_cc200"],
            "pipeline": "cpac",
            "band_pass_filtering": True,
            "global_signal_regression": False,
            "quality_checked": True,
            "verbose": 1,
        }
    ]


def test_abide_drop_subjects_with_constant_regions(fake_abide):
    with pytest.warns(UserWarning) as record:
        X, y = load_abide(constant_regions="drop_subjects")
    messages = _messages(record)
    assert len(messages) == 2 and "empty" in messages[0]
    assert "left out 1 subject(s) with constant regions (SUB_ID [50003])" in messages[1]
    expected = [s for s in _usable() if s[6] is None]
    assert y["subject_id"].tolist() == [s[0] for s in expected]
    assert [x.shape for x in X] == [(s[5], N_ABIDE_REGIONS) for s in expected]
    assert all((np.ptp(x, axis=0) > 0).all() for x in X)
    validate_subjects(X)


def test_abide_drop_regions(fake_abide, abide_files):
    with pytest.warns(UserWarning) as record:
        X, y = load_abide(constant_regions="drop_regions", as_frames=True)
    messages = _messages(record)
    assert len(messages) == 2 and "empty" in messages[0]
    assert "left out 1 of 10 regions, constant in at least one subject" in messages[1]
    assert f"(indices [{CONSTANT_REGION}])" in messages[1]
    columns = [f"roi_{r}" for r in range(N_ABIDE_REGIONS) if r != CONSTANT_REGION]
    assert len(X) == len(y) == len(_usable())
    usable_arrays = [a for a, s in zip(abide_files["arrays"], ABIDE_SUBJECTS) if s[6] != "empty"]
    for frame, array in zip(X, usable_arrays):
        assert list(frame.columns) == columns
        np.testing.assert_allclose(frame.to_numpy(), np.delete(array, CONSTANT_REGION, axis=1))
    validate_subjects(X)


def test_abide_n_subjects_and_options_are_passed(fake_abide):
    calls, _ = fake_abide
    X, y = load_abide(
        n_subjects=2,
        derivatives=["rois_ho"],
        pipeline="dparsf",
        band_pass_filtering=False,
        global_signal_regression=True,
        quality_checked=False,
        as_frames=True,
    )
    assert len(X) == len(y) == 2
    assert list(X[0].columns) == [f"roi_{r}" for r in range(N_ABIDE_REGIONS)]
    assert calls[-1]["n_subjects"] == 2
    assert calls[-1]["derivatives"] == ["rois_ho"]
    assert calls[-1]["pipeline"] == "dparsf"
    assert calls[-1]["band_pass_filtering"] is False
    assert calls[-1]["global_signal_regression"] is True
    assert calls[-1]["quality_checked"] is False


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_subjects": -1}, "n_subjects"),
        ({"derivatives": "func_preproc"}, "derivatives"),
        ({"derivatives": ["rois_cc200", "rois_aal"]}, "one ROI time series"),
        ({"pipeline": "fsl"}, "pipeline"),
        ({"band_pass_filtering": None}, "band_pass_filtering"),
        ({"constant_regions": "drop"}, "constant_regions"),
    ],
)
def test_abide_bad_parameters_fail_before_fetching(fake_abide, kwargs, match):
    calls, _ = fake_abide
    with pytest.raises(ValueError, match=match):
        load_abide(**kwargs)
    assert calls == []


@pytest.mark.parametrize("loader", ["abide", "development"])
def test_a_data_dir_that_is_a_file_or_no_path_is_refused_naming_it(fake_abide, fake_development,
                                                                    tmp_path, loader):
    """As the package's own fetchers refuse it: nilearn's OSError ("tried to store the dataset
    in .../a.csv/ABIDE_pcp (Not a directory)") named no parameter."""
    load = load_abide if loader == "abide" else load_development_fmri
    (tmp_path / "a.csv").write_text("1,2\n")
    with pytest.raises(NotADirectoryError, match=r"^data_dir='.*a\.csv' is a file, not a folder"):
        load(data_dir=tmp_path / "a.csv")
    with pytest.raises(TypeError, match=r"^data_dir must be a folder's path .* got 3$"):
        load(data_dir=3)
    assert fake_abide[0] == [] and fake_development[0] == []  # refused before fetching


def test_abide_single_frame_and_non_finite_series_are_left_out(fake_abide):
    _, state = fake_abide
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((6, N_ABIDE_REGIONS)) for _ in ABIDE_SUBJECTS]
    arrays[1] = arrays[1][:1]  # a single frame
    arrays[2][3, 4] = np.inf
    state["series"] = arrays
    with pytest.warns(UserWarning) as record:
        X, y = load_abide()
    messages = _messages(record)
    assert len(messages) == 1
    assert "left out 2 subject(s)" in messages[0] and "SUB_ID [50002, 50003]" in messages[0]
    assert y["subject_id"].tolist() == [50001, 50004, 50005]
    for x, expected in zip(X, [arrays[0], arrays[3], arrays[4]], strict=True):
        np.testing.assert_array_equal(x, expected)


def test_abide_bad_fetcher_results(fake_abide, abide_files, monkeypatch):
    _, state = fake_abide
    arrays = [np.ones((5, N_ABIDE_REGIONS)) + np.arange(5)[:, None]] * len(ABIDE_SUBJECTS)
    arrays[1] = np.ones((5, N_ABIDE_REGIONS + 1))
    state["series"] = arrays
    with pytest.raises(ValueError, match="11 regions"):
        load_abide()

    state["series"] = [np.zeros((0, N_ABIDE_REGIONS))] * len(ABIDE_SUBJECTS)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no subject"):
        load_abide()

    state["series"] = [np.zeros((4, N_ABIDE_REGIONS))] * len(ABIDE_SUBJECTS)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="every subject"):
        load_abide(constant_regions="drop_subjects")

    state["series"] = None
    bad = abide_files["phenotypic"].assign(DX_GROUP=[1, 2, 3, 1, 2])
    monkeypatch.setitem(abide_files, "phenotypic", bad)
    with pytest.raises(ValueError, match="DX_GROUP"):
        load_abide()


# -- round 13: what planted bugs in datasets/_real.py showed the tests above let through -----


def test_development_atlas_labels_starting_with_background_without_a_table(fake_development,
                                                                           monkeypatch,
                                                                           development):
    """Labels that start with "Background" (and no look-up table): label value i is the i-th
    name, the background being 0."""
    names = ["Background", *ATLAS_NAMES]
    monkeypatch.setattr("nilearn.datasets.fetch_atlas_schaefer_2018",
                        lambda **kwargs: Bunch(maps=development["atlas"], labels=names))
    X, _ = load_development_fmri(n_subjects=1, as_frames=True)
    assert list(X[0].columns) == EXPECTED_COLUMNS


def test_development_images_without_participant_ids_keep_the_fetchers_order(fake_development,
                                                                             tmp_path,
                                                                             monkeypatch):
    """When no file name holds an id, row i of the table describes image i, as fetched."""
    import shutil

    original = nilearn_datasets.fetch_development_fmri

    def anonymous(**kwargs):
        data = original(**kwargs)
        data.func = [shutil.copy(func, tmp_path / f"run{i}.nii.gz")
                     for i, func in enumerate(data.func)]
        return data

    monkeypatch.setattr("nilearn.datasets.fetch_development_fmri", anonymous)
    X, y = load_development_fmri()
    order = _expected_order()
    assert y["participant_id"].tolist() == [s[0] for s in order]
    assert [len(x) for x in X] == [s[5] for s in order]


def test_development_more_phenotypic_rows_than_images_are_refused(fake_development,
                                                                 monkeypatch):
    original = nilearn_datasets.fetch_development_fmri

    def one_image_less(**kwargs):
        data = original(**kwargs)
        data.func, data.confounds = data.func[:-1], data.confounds[:-1]
        return data

    monkeypatch.setattr("nilearn.datasets.fetch_development_fmri", one_image_less)
    with pytest.raises(ValueError, match="returned 2 functional images but 3 phenotypic rows"):
        load_development_fmri()


def test_development_missing_sex_stays_missing(fake_development, monkeypatch):
    """A participant without Gender gets a missing value, not the text "NAN"."""
    original = nilearn_datasets.fetch_development_fmri

    def no_gender(**kwargs):
        data = original(**kwargs)
        data.phenotypic = data.phenotypic.assign(Gender=[" f", None, "m"])
        return data

    monkeypatch.setattr("nilearn.datasets.fetch_development_fmri", no_gender)
    _, y = load_development_fmri()
    assert y["sex"].iloc[0] == "F" and pd.isna(y["sex"].iloc[1]) and y["sex"].iloc[2] == "M"


def test_abide_more_phenotypic_rows_than_series_are_refused(fake_abide, abide_files):
    _, state = fake_abide
    state["series"] = [np.ones((5, N_ABIDE_REGIONS)) + np.arange(5)[:, None]] * (
        len(ABIDE_SUBJECTS) - 1)
    with pytest.raises(ValueError, match="returned 4 time series but 5 phenotypic rows"):
        load_abide()


def test_abide_drop_regions_when_every_region_is_constant_somewhere(fake_abide):
    _, state = fake_abide
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((6, N_ABIDE_REGIONS)) for _ in ABIDE_SUBJECTS]
    for i, x in enumerate(arrays):  # subject i has regions 2i and 2i + 1 constant
        x[:, 2 * i: 2 * i + 2] = 0.0
    state["series"] = arrays
    with pytest.raises(ValueError, match="every region is constant in some subject"):
        load_abide(constant_regions="drop_regions")


def test_abide_files_of_a_single_region_are_one_column(fake_abide, tmp_path):
    """A ``.1D`` file with one column is a series of one region, not a row of frames."""
    _, state = fake_abide
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((8, 1)) for _ in ABIDE_SUBJECTS]
    paths = []
    for i, x in enumerate(arrays):
        paths.append(str(tmp_path / f"sub{i}.1D"))
        np.savetxt(paths[-1], x, header="#2001", comments="")
    state["series"] = paths
    X, y = load_abide(constant_regions="drop_subjects")
    assert len(X) == len(y) == len(ABIDE_SUBJECTS)
    for x, expected in zip(X, arrays, strict=True):
        assert x.shape == (8, 1)
        np.testing.assert_allclose(x, expected, rtol=1e-6)


def test_abide_series_that_are_not_numbers_name_the_subject(fake_abide):
    _, state = fake_abide
    arrays = [np.ones((5, N_ABIDE_REGIONS)) + np.arange(5)[:, None]] * len(ABIDE_SUBJECTS)
    arrays = [*arrays[:2], np.full((5, N_ABIDE_REGIONS), "n/a"), *arrays[3:]]
    state["series"] = arrays
    with pytest.raises(ValueError, match=r"^subject 2: the ROI time series is not numeric"):
        load_abide()


def test_development_subjects_with_other_regions_on_their_grid_are_refused(fake_development,
                                                                          monkeypatch):
    """The same number of regions is not enough: columns must be the same atlas labels in every
    subject (here the second subject's grid loses label 4 and has label 3)."""
    from brainjepa_sk.datasets import _real

    labels = iter([[1, 2, 4, 5], [1, 2, 3, 5], [1, 2, 4, 5]])
    monkeypatch.setattr(_real, "_region_ids", lambda masker, labels_img: next(labels))
    with pytest.raises(ValueError, match=r"subject 1 \(.*\) has other atlas regions on its grid "
                                         r"than subject 0 \(4 vs 4 regions; labels only in "
                                         r"subject 1: \[3\], only in subject 0: \[4\]\)"):
        load_development_fmri()
    labels = iter([[1, 2, 4, 5], [1, 2, 5, 4]])
    monkeypatch.setattr(_real, "_region_ids", lambda masker, labels_img: next(labels))
    with pytest.raises(ValueError, match=r"\(4 vs 4 regions; the same labels in another order"):
        load_development_fmri()


def test_development_region_names_follow_the_look_up_tables_label_values(fake_development,
                                                                         monkeypatch,
                                                                         development):
    """With a look-up table, names go by its label values, not by their position in the list
    of labels (here the table has no row for the absent label 3)."""
    values = [0, *REGION_VALUES]
    names = ["Background", *EXPECTED_COLUMNS]
    lut = pd.DataFrame({"index": values, "name": names, "color": "#000000"})
    monkeypatch.setattr("nilearn.datasets.fetch_atlas_schaefer_2018",
                        lambda **kwargs: Bunch(maps=development["atlas"], labels=names, lut=lut))
    X, _ = load_development_fmri(n_subjects=1, as_frames=True)
    assert list(X[0].columns) == EXPECTED_COLUMNS


# --- the real data (downloads; not part of the default run) ----------------------------------


@pytest.mark.network
def test_development_fmri_real_download(tmp_path):
    X, y = load_development_fmri(n_subjects=2, data_dir=tmp_path, as_frames=True)
    assert len(X) == len(y) == 2
    assert X[0].shape == (168, 100)
    assert X[0].columns[0].startswith("7Networks_LH_Vis")
    assert sorted(y["group"].tolist()) == [0, 1]
    assert np.isfinite(X[0].to_numpy()).all()


@pytest.mark.network
def test_abide_real_download(tmp_path):
    X, y = load_abide(n_subjects=3, data_dir=tmp_path, constant_regions="drop_regions")
    assert 1 <= len(X) == len(y) <= 3
    assert X[0].ndim == 2 and X[0].shape[1] <= 200
    assert set(y["diagnosis"]) <= {0, 1}
    assert y["t_r"].dtype == np.float64
    assert y["t_r"].tolist() == [1.5] * len(y)  # the quality-checked table starts with PITT


def test_the_region_ids_of_an_older_masker_leave_out_its_background(tmp_path):
    """nilearn before 0.10.3 has no ``region_ids_``: the labels image's values are read, less
    the masker's background label."""
    from types import SimpleNamespace

    from brainjepa_sk.datasets._real import _region_ids

    labels = np.zeros((4, 4, 4), dtype=np.int16)
    labels[0], labels[1], labels[3] = 3, 1, 7
    path = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, np.eye(4)), path)
    assert _region_ids(SimpleNamespace(background_label=0), str(path)) == [1, 3, 7]


# -- round 16: what planted bugs in datasets/_real.py showed the tests above let through -----


def test_development_images_of_which_only_some_name_a_participant_are_refused(
        fake_development, tmp_path, monkeypatch):
    """A partial match is no match: the fetcher's order is kept only when no file name holds
    an id; otherwise the rows could describe other subjects' images."""
    import shutil

    _, state = fake_development
    state["shuffle_phenotypic"] = True
    original = nilearn_datasets.fetch_development_fmri

    def one_anonymous(**kwargs):
        data = original(**kwargs)
        data.func = [shutil.copy(data.func[0], tmp_path / "run0.nii.gz"), *data.func[1:]]
        return data

    monkeypatch.setattr("nilearn.datasets.fetch_development_fmri", one_anonymous)
    anonymous = str(tmp_path / "run0.nii.gz")
    with pytest.raises(ValueError, match="cannot match the functional images") as info:
        load_development_fmri()
    assert f"no or several ids for [{anonymous!r}]" in str(info.value)


@pytest.mark.filterwarnings("ignore:.*3D signal:UserWarning")  # nilearn's, on one volume
@pytest.mark.parametrize("as_one_row", [False, True])
def test_development_a_single_volume_image_is_refused_by_name(fake_development, tmp_path,
                                                               monkeypatch, as_one_row):
    """nilearn gives a 3-D image's region means as a 1-D array: one frame, not one region
    (nilearn 0.11 gave one row, 2-D: the image is still refused as a single volume, not
    returned as a series of one frame)."""
    from nilearn.maskers import NiftiLabelsMasker

    if as_one_row:
        real = NiftiLabelsMasker.fit_transform

        def one_row(self, imgs, *args, **kwargs):
            return np.atleast_2d(real(self, imgs, *args, **kwargs))

        monkeypatch.setattr(NiftiLabelsMasker, "fit_transform", one_row)
    original = nilearn_datasets.fetch_development_fmri

    def one_volume(**kwargs):
        data = original(**kwargs)
        path = tmp_path / (data.func[1].split("/")[-1].split("_")[0] + "_bold.nii.gz")
        nib.save(nib.load(data.func[1]).slicer[..., 0], path)
        data.func[1] = str(path)
        return data

    monkeypatch.setattr("nilearn.datasets.fetch_development_fmri", one_volume)
    with pytest.raises(ValueError, match=r"^subject 1 \(.*_bold\.nii\.gz\): the functional "
                                         r"image is a single 3-D volume, not a time series"):
        load_development_fmri(confounds=False)


def test_abide_constant_region_warnings_name_the_subject_after_an_unusable_one(fake_abide):
    """The subjects left out as unusable shift the positions of the others: the warnings must
    name the subject with constant regions, not the one at its position in the table."""
    _, state = fake_abide
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((6, N_ABIDE_REGIONS)) for _ in ABIDE_SUBJECTS]
    arrays[0] = arrays[0][:1]  # 50001: a single frame, left out
    arrays[2][:, CONSTANT_REGION] = 0.0  # 50003: a constant region
    state["series"] = arrays
    with pytest.warns(UserWarning) as record:
        _, y = load_abide()
    messages = _messages(record)
    assert "1 of 4 subjects have constant regions (e.g. SUB_ID 50003)" in messages[1]
    assert y["subject_id"].tolist() == [50002, 50003, 50004, 50005]
    with pytest.warns(UserWarning) as record:
        _, y = load_abide(constant_regions="drop_subjects")
    messages = _messages(record)
    assert "left out 1 subject(s) with constant regions (SUB_ID [50003])" in messages[1]
    assert y["subject_id"].tolist() == [50002, 50004, 50005]


# -- round 19: what planted bugs in the dataset helpers showed the tests above let through ----


def test_the_region_ids_of_an_atlas_without_background_voxels_are_every_region():
    """nilearn lists ``"background"`` in ``region_ids_`` only when the atlas has background
    voxels: an atlas covering its whole grid keeps its first region (not taken for the
    background by its place)."""
    from nilearn.maskers import NiftiLabelsMasker

    from brainjepa_sk.datasets._real import _region_ids

    labels = np.full((4, 4, 4), 2, dtype=np.int16)
    labels[2:] = 5
    atlas = nib.Nifti1Image(labels, np.eye(4))
    masker = NiftiLabelsMasker(labels_img=atlas, standardize="zscore_sample")
    data = np.random.default_rng(0).random((4, 4, 4, 5)).astype(np.float32)
    signals = masker.fit_transform(nib.Nifti1Image(data, np.eye(4)))
    assert signals.shape == (5, 2)
    assert _region_ids(masker, atlas) == [2, 5]


# -- round 24: what planted bugs in datasets/_real.py showed the tests above let through -----


@pytest.mark.filterwarnings("ignore:After resampling the label image:UserWarning")  # nilearn's
def test_the_region_ids_leave_out_a_label_lost_on_the_data_grid():
    """The ids are those of the masker's columns (its ``region_ids_``), not every label of the
    atlas image: a region with no voxel on the data grid has no column, and no id."""
    from nilearn.maskers import NiftiLabelsMasker

    from brainjepa_sk.datasets._real import _region_ids

    labels = np.zeros((8, 8, 8), dtype=np.int16)
    labels[:4], labels[4:] = 1, 2
    labels[1, 1, 1] = 3  # one voxel between the points of the 2 mm data grid
    atlas = nib.Nifti1Image(labels, np.eye(4))
    masker = NiftiLabelsMasker(labels_img=atlas, standardize="zscore_sample")
    data = np.random.default_rng(0).random((4, 4, 4, 5)).astype(np.float32)
    signals = masker.fit_transform(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])))
    assert signals.shape == (5, 2)
    assert _region_ids(masker, atlas) == [1, 2]


def test_a_confounds_file_without_a_numeric_column_is_refused(tmp_path):
    tsv = tmp_path / "confounds.tsv"
    tsv.write_text("name\tnote\nmotion\tn/a\nmotion\tn/a\n")
    with pytest.raises(ValueError, match="confounds.tsv has no numeric column"):
        _read_confounds(tsv)


@pytest.mark.parametrize("content", [b"", b"\x1f\x8b\x08\x00\x93\xfa\xe8", b"a\tb\n1\t2\n3\t4\t5\n"],
                         ids=["empty", "binary", "ragged"])
def test_a_damaged_file_of_the_download_cache_is_named(tmp_path, content):
    """A damaged ROI series or confounds file had been named by numpy's or pandas' message
    alone: which of hundreds of cached files was not said."""
    from brainjepa_sk.datasets._real import _as_series

    (tmp_path / "confounds.tsv").write_bytes(content)
    with pytest.raises(ValueError, match=r"the confounds file .*confounds\.tsv does not read "
                                         r"as a table .*Delete it to download it again"):
        _read_confounds(tmp_path / "confounds.tsv")
    (tmp_path / "sub-1_rois.1D").write_bytes(content + b"\n1 2\n3\n")
    with pytest.raises(ValueError, match=r"^subject 4: .*sub-1_rois\.1D is not a numeric "
                                         r"table .*Delete it to download it again"):
        _as_series(str(tmp_path / "sub-1_rois.1D"), 4)


def test_development_without_a_phenotypic_table_says_so(fake_development, monkeypatch):
    original = nilearn_datasets.fetch_development_fmri

    def no_table(**kwargs):
        data = original(**kwargs)
        data.phenotypic = None
        return data

    monkeypatch.setattr("nilearn.datasets.fetch_development_fmri", no_table)
    with pytest.raises(ValueError, match="the development fMRI fetcher returned no phenotypic "
                                         "table"):
        load_development_fmri()


def test_development_an_image_named_after_two_participants_is_refused(fake_development,
                                                                      tmp_path, monkeypatch):
    """An image whose name holds two participant ids is an ambiguous match, even when the
    other images name the other participant: not given to the first id it names."""
    import shutil
    from pathlib import Path

    original = nilearn_datasets.fetch_development_fmri

    def two_ids(**kwargs):
        data = original(**kwargs)
        first, second = (Path(func).name.split("_")[0] for func in data.func[:2])
        data.func = [shutil.copy(data.func[0], tmp_path / f"{first}_{second}_bold.nii.gz"),
                     *data.func[1:]]
        return data

    monkeypatch.setattr("nilearn.datasets.fetch_development_fmri", two_ids)
    with pytest.raises(ValueError, match="cannot match the functional images") as info:
        load_development_fmri()
    assert "no or several ids for [" in str(info.value) and "_bold.nii.gz" in str(info.value)


def test_development_the_atlas_options_reach_nilearn(fake_development):
    calls, _ = fake_development
    load_development_fmri(n_subjects=1, n_rois=400, yeo_networks=17, resolution_mm=1)
    atlas_call = next(kwargs for kind, kwargs in calls if kind == "atlas")
    assert atlas_call == {"n_rois": 400, "yeo_networks": 17, "resolution_mm": 1,
                          "data_dir": None, "verbose": 0}


def test_development_without_functional_images_says_so(fake_development, monkeypatch):
    original = nilearn_datasets.fetch_development_fmri

    def no_images(**kwargs):
        data = original(**kwargs)
        data.func, data.confounds = [], []
        data.phenotypic = data.phenotypic.iloc[:0]
        return data

    monkeypatch.setattr("nilearn.datasets.fetch_development_fmri", no_images)
    with pytest.raises(ValueError, match="fetch_development_fmri returned no functional images"):
        load_development_fmri()


def test_development_a_masker_whose_columns_are_not_the_labels_is_refused(fake_development,
                                                                          monkeypatch):
    """As many label ids as columns, or an error naming both counts: never columns named by
    other regions' labels."""
    from brainjepa_sk.datasets import _real

    monkeypatch.setattr(_real, "_region_ids", lambda masker, labels_img: [1, 2, 4])
    with pytest.raises(ValueError, match=r"^subject 0: the masker returned 4 regions but the "
                                         r"atlas has 3 labels on the data grid"):
        load_development_fmri()


def test_development_child_adult_is_read_whatever_its_case_and_padding(fake_development,
                                                                       monkeypatch):
    original = nilearn_datasets.fetch_development_fmri

    def capitalized(**kwargs):
        data = original(**kwargs)
        data.phenotypic = data.phenotypic.assign(
            Child_Adult=data.phenotypic["Child_Adult"].map({"child": " Child", "adult": "ADULT "}))
        return data

    monkeypatch.setattr("nilearn.datasets.fetch_development_fmri", capitalized)
    _, y = load_development_fmri()
    assert y["group"].tolist() == [1 if s[3] == "child" else 0 for s in _expected_order()]


def test_abide_series_given_as_path_objects_are_read(fake_abide, abide_files):
    from pathlib import Path

    _, state = fake_abide
    state["series"] = [Path(path) for path in abide_files["paths"]]
    with pytest.warns(UserWarning):  # the empty file and the constant region, as with str paths
        X, y = load_abide()
    usable = [a for a, s in zip(abide_files["arrays"], ABIDE_SUBJECTS) if s[6] != "empty"]
    assert len(X) == len(y) == len(usable)
    for x, expected in zip(X, usable):
        np.testing.assert_allclose(x, expected)


def test_abide_site_ids_are_read_without_their_padding_and_sorted(fake_abide, abide_files,
                                                                   monkeypatch):
    """The site categories are the stripped SITE_ID values in sorted order, not in the order
    the table lists them."""
    sites = [" UM_1 ", "UM_1", "NYU  ", "PITT", " NYU"]
    monkeypatch.setitem(abide_files, "phenotypic", abide_files["phenotypic"].assign(SITE_ID=sites))
    with pytest.warns(UserWarning):
        _, y = load_abide()
    assert y["site"].tolist() == ["UM_1", "UM_1", "NYU", "NYU"]  # 50004 (PITT) is left out
    assert list(y["site"].cat.categories) == ["NYU", "PITT", "UM_1"]
    assert y["t_r"].tolist() == [2.0, 2.0, 2.0, 2.0]  # the stripped names find their TR


#: ABIDE I's SITE_ID values, spelled as in the PCP phenotypic file that nilearn's fetcher reads
#: (Phenotypic_V1_0b_preprocessed1.csv).
ABIDE_I_SITE_IDS = ["CALTECH", "CMU", "KKI", "LEUVEN_1", "LEUVEN_2", "MAX_MUN", "NYU", "OHSU",
                    "OLIN", "PITT", "SBL", "SDSU", "STANFORD", "TRINITY", "UCLA_1", "UCLA_2",
                    "UM_1", "UM_2", "USM", "YALE"]


def _t_r_warnings(record):
    return [m for m in _messages(record) if "repetition time" in m]


def test_abide_t_r_of_each_site_and_cmu_sample_and_nan_for_leuven(fake_abide, abide_files,
                                                                   monkeypatch):
    """A subject's TR is its site's; CMU's two samples, told apart by FILE_ID, differ; the
    Leuven scans have no common TR: NaN, documented, without a warning. Unknown sites warn
    only for the subjects returned (50004, left out for its empty series, is not named)."""
    table = abide_files["phenotypic"].assign(
        SITE_ID=["SBL", "CMU", "CMU", "MARS", "LEUVEN_2"],
        FILE_ID=["SBL_0050001", "CMU_a_0050002", "CMU_b_0050003", "MARS_0050004",
                 "Leuven_2_0050005"],
    )
    monkeypatch.setitem(abide_files, "phenotypic", table)
    with pytest.warns(UserWarning) as record:
        _, y = load_abide()
    assert y["subject_id"].tolist() == [50001, 50002, 50003, 50005]
    assert y["t_r"].dtype == np.float64
    np.testing.assert_array_equal(y["t_r"], [2.2, 2.0, 1.5, np.nan])
    assert _t_r_warnings(record) == []


def test_abide_unknown_site_or_cmu_sample_gives_nan_and_a_warning(fake_abide, abide_files,
                                                                 monkeypatch):
    """A site missing from the table (or CMU without a FILE_ID to tell its samples apart)
    loads, with NaN and a warning naming the site, not an error: the series and the other
    labels are sound."""
    table = abide_files["phenotypic"].assign(SITE_ID=["NYU", "CMU", "PITT", "PITT", "MARS"])
    monkeypatch.setitem(abide_files, "phenotypic", table.drop(columns="FILE_ID"))
    with pytest.warns(UserWarning) as record:
        X, y = load_abide()
    assert len(X) == 4
    np.testing.assert_array_equal(y["t_r"], [2.0, np.nan, 1.5, np.nan])
    (message,) = _t_r_warnings(record)
    assert "no repetition time is known for 2 subject(s)" in message
    assert "SITE_ID ['CMU without FILE_ID', 'MARS']" in message
    assert "'t_r' is NaN" in message


def test_abide_t_r_table_covers_every_abide_i_site():
    from brainjepa_sk.datasets._real import _abide_repetition_times

    file_ids = [f"{site.title()}_0050001" for site in ABIDE_I_SITE_IDS]
    file_ids[ABIDE_I_SITE_IDS.index("CMU")] = "CMU_b_0050001"
    t_r, unknown = _abide_repetition_times(ABIDE_I_SITE_IDS, file_ids)
    assert unknown == [None] * len(ABIDE_I_SITE_IDS)
    nan_sites = [site for site, value in zip(ABIDE_I_SITE_IDS, t_r) if np.isnan(value)]
    assert nan_sites == ["LEUVEN_1", "LEUVEN_2"]
    assert dict(zip(ABIDE_I_SITE_IDS, t_r))["CMU"] == 1.5
    assert ((t_r[~np.isnan(t_r)] >= 1.5) & (t_r[~np.isnan(t_r)] <= 3.0)).all()


def test_abide_series_without_regions_or_of_one_dimension_are_left_out(fake_abide):
    """A series with no column is empty, and a 1-D one (nilearn's reading of a file of one
    row or one column) cannot tell frames from regions: both are left out with the warning,
    not taken for the first subject's shape nor failed on."""
    _, state = fake_abide
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((6, N_ABIDE_REGIONS)) for _ in ABIDE_SUBJECTS]
    arrays[0] = np.zeros((6, 0))
    arrays[2] = arrays[2][:, 0]
    state["series"] = arrays
    with pytest.warns(UserWarning) as record:
        X, y = load_abide()
    messages = _messages(record)
    assert len(messages) == 1 and "SUB_ID [50001, 50003]" in messages[0]
    assert y["subject_id"].tolist() == [50002, 50004, 50005]
    assert [x.shape for x in X] == [(6, N_ABIDE_REGIONS)] * 3


def test_abide_ten_unusable_subjects_are_all_named_without_an_ellipsis(fake_abide, abide_files,
                                                                       monkeypatch):
    """The warning names the first ten subjects left out, and adds "..." only when there are
    more."""
    _, state = fake_abide
    table = pd.concat([abide_files["phenotypic"]] * 3, ignore_index=True)
    table["SUB_ID"] = 50001 + np.arange(len(table))
    monkeypatch.setitem(abide_files, "phenotypic", table)
    rng = np.random.default_rng(6)
    state["series"] = [np.zeros((0, N_ABIDE_REGIONS))] * 10 + [
        rng.standard_normal((6, N_ABIDE_REGIONS)) for _ in range(len(table) - 10)]
    with pytest.warns(UserWarning) as record:
        _, y = load_abide(n_subjects=len(table))  # the fake fetcher's rows: all 15
    ids = list(range(50001, 50011))
    assert _messages(record)[0].endswith(f"(SUB_ID {ids})")
    assert y["subject_id"].tolist() == list(range(50011, 50016))


# -- session 28: what hand mutation of datasets/_real.py showed the tests above let through --


def test_abide_a_missing_diagnosis_is_refused_not_read_as_a_control(fake_abide, abide_files,
                                                                    monkeypatch):
    """A blank DX_GROUP is neither 1 (autism) nor 2 (control): refused, as another code is,
    rather than counted as a control."""
    bad = abide_files["phenotypic"].assign(DX_GROUP=[1, 2, np.nan, 1, 2])
    monkeypatch.setitem(abide_files, "phenotypic", bad)
    with pytest.raises(ValueError, match=r"unexpected DX_GROUP values \[nan\]"):
        load_abide()


def test_abide_derivatives_as_a_tuple_of_one_are_taken_as_a_list_of_one(fake_abide):
    """nilearn's form of ``derivatives``, a sequence of one name, is accepted as a tuple too."""
    calls, _ = fake_abide
    X, y = load_abide(derivatives=("rois_ho",), constant_regions="drop_subjects")
    assert calls[-1]["derivatives"] == ["rois_ho"]
    assert len(X) == len(y) > 0


def test_abide_a_region_varying_on_a_small_scale_is_not_constant(fake_abide):
    """Only a region whose values do not change at all is constant: one varying by 1e-6 (series
    in other units) is kept, with no warning."""
    _, state = fake_abide
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal((6, N_ABIDE_REGIONS)) for _ in ABIDE_SUBJECTS]
    arrays[1][:, 2] *= 1e-6
    state["series"] = arrays
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X, _ = load_abide(constant_regions="drop_regions")
    assert [x.shape for x in X] == [(6, N_ABIDE_REGIONS)] * len(ABIDE_SUBJECTS)
    np.testing.assert_array_equal(X[1], arrays[1])

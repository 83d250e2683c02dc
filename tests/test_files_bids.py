"""Subject files inside BIDS derivative trees (fMRIPrep, XCP-D): X given as the tree's folder
or an obvious glob of it. Beside the subjects' region series such trees hold tables that are
none (participants.tsv, fMRIPrep's confounds, XCP-D's motion and outliers, atlas label
tables), images, reports and logs."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from brainjepa_sk.validation import validate_subjects

SUBJECTS = ["sub-01", "sub-02", "sub-03"]
REGIONS = ["7Networks_LH_Vis_1", "7Networks_LH_SomMot_1", "7Networks_RH_Default_1",
           "Left-Thalamus"]
N_FRAMES = 40
SPACE = "space-MNI152NLin2009cAsym"


def _tsv(path, table):
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")  # as the BIDS tools write them


def _fmriprep(root, rng):
    """An fMRIPrep output folder: images, confounds, reports, no region series."""
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "fMRIPrep output", "BIDSVersion": "1.8.0", "DatasetType": "derivative"}))
    _tsv(root / "participants.tsv", pd.DataFrame({"participant_id": SUBJECTS,
                                                  "age": [21, 34, 27]}))
    _tsv(root / "desc-aseg_dseg.tsv", pd.DataFrame(
        {"index": [10, 49, 17], "name": ["Left-Thalamus", "Right-Thalamus", "Left-Hippocampus"]}))
    (root / "logs").mkdir()
    (root / "logs" / "CITATION.md").write_text("Results included in this manuscript ...")
    for subject in SUBJECTS:
        (root / f"{subject}.html").write_text("<html></html>")
        func = root / subject / "func"
        confounds = pd.DataFrame(rng.standard_normal((N_FRAMES, 4)), columns=[
            "global_signal", "csf", "trans_x", "framewise_displacement"])
        confounds.loc[0, "framewise_displacement"] = np.nan  # n/a in its first row
        _tsv(func / f"{subject}_task-rest_desc-confounds_timeseries.tsv", confounds)
        (func / f"{subject}_task-rest_desc-confounds_timeseries.json").write_text("{}")
        (func / f"{subject}_task-rest_{SPACE}_desc-preproc_bold.nii.gz").write_bytes(b"\x1f\x8b")


def _xcpd(root, rng, atlases=("4S456Parcels",)):
    """An XCP-D output folder: one series per subject and atlas, with a header of region
    names, beside motion and outlier tables and the atlases' label tables."""
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text("{}")
    (root / "logs").mkdir()
    (root / "logs" / "CITATION.md").write_text("Results included in this manuscript ...")
    for n, atlas in enumerate(atlases):
        folder = root / "atlases" / f"atlas-{atlas}"
        names = REGIONS + [f"extra{i}" for i in range(n)]  # the atlases' regions differ
        _tsv(folder / f"atlas-{atlas}_dseg.tsv", pd.DataFrame(
            {"index": range(1, len(names) + 1), "label": names}))
        (folder / f"atlas-{atlas}_{SPACE}_dseg.nii.gz").write_bytes(b"\x1f\x8b")
        for subject in SUBJECTS:
            _tsv(root / subject / "func" /
                 f"{subject}_task-rest_{SPACE}_seg-{atlas}_stat-mean_timeseries.tsv",
                 pd.DataFrame(rng.standard_normal((N_FRAMES, len(names))), columns=names))
    for subject in SUBJECTS:
        func = root / subject / "func"
        _tsv(func / f"{subject}_task-rest_motion.tsv", pd.DataFrame(
            rng.standard_normal((N_FRAMES, 3)), columns=["trans_x", "rot_z",
                                                         "framewise_displacement"]))
        _tsv(func / f"{subject}_task-rest_outliers.tsv", pd.DataFrame(
            {"framewise_displacement": rng.integers(0, 2, N_FRAMES)}))
        (func / f"{subject}_task-rest_{SPACE}_desc-denoised_bold.nii.gz").write_bytes(b"\x1f\x8b")


@pytest.fixture
def derivatives(tmp_path, monkeypatch):
    """derivatives/fmriprep and derivatives/xcp_d, paths given relative to tmp_path."""
    rng = np.random.default_rng(0)
    _fmriprep(tmp_path / "derivatives" / "fmriprep", rng)
    _xcpd(tmp_path / "derivatives" / "xcp_d", rng)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "derivatives"


def _offered(error):
    """The glob an error offers."""
    return re.search(r"(?:such as|e\.g\.) '([^']*)'", str(error)).group(1)


def _assert_the_series(subjects, n_regions=len(REGIONS)):
    """Subjects read from the XCP-D series, one per subject."""
    assert len(subjects) == len(SUBJECTS)
    assert all("_stat-mean_timeseries.tsv" in path.name for path in subjects.paths)
    assert list(subjects.feature_names) == (REGIONS + [f"extra{i}" for i in range(3)])[:n_regions]


@pytest.mark.parametrize("pattern", ["derivatives/xcp_d/**/*.tsv",
                                     "derivatives/xcp_d/sub-*/func/*.tsv"])
def test_a_glob_over_xcpd_names_its_motion_outlier_and_label_tables(derivatives, pattern):
    """'xcp_d/**/*.tsv' read the atlas label table as a subject (its label column refused as
    text), 'sub-*/func/*.tsv' read motion and outliers as subjects of other regions: the
    tables are named as such, with a glob of the series that works when pasted back."""
    with pytest.raises(ValueError, match=(
            rf"^the glob '{re.escape(pattern)}' matches 3 subject file\(s\) but also \d other "
            r"file\(s\), which are not subjects \(\d BIDS tables that hold no region series: "
            r"participants, confounds, motion, QC or atlas label tables\): .*sub-01_task-rest_"
            r"motion\.tsv, .*sub-01_task-rest_outliers\.tsv")) as info:
        validate_subjects(pattern, lazy=True)
    assert _offered(info.value) == pattern.replace("*.tsv", "*_timeseries.tsv")
    _assert_the_series(validate_subjects(_offered(info.value), lazy=True))


def test_fmriprep_confounds_beside_the_series_are_named_and_left_out_of_the_glob(derivatives):
    """'derivatives/**/*_timeseries.tsv' took fMRIPrep's confounds for subjects (hundreds of
    columns in a real run, read as regions; refused here for their 'n/a')."""
    pattern = "derivatives/**/*_timeseries.tsv"
    with pytest.raises(ValueError, match=(
            r"matches 3 subject file\(s\) but also 3 other file\(s\), which are not subjects "
            r"\(3 BIDS tables .*: derivatives/fmriprep/sub-01/func/sub-01_task-rest_desc-"
            r"confounds_timeseries\.tsv, ")) as info:
        validate_subjects(pattern, lazy=True)
    assert _offered(info.value) == "derivatives/**/*_stat-mean_timeseries.tsv"
    _assert_the_series(validate_subjects(_offered(info.value), lazy=True))


@pytest.mark.parametrize("given", ["derivatives/xcp_d", "derivatives", "derivatives/xcp_d/*",
                                   "derivatives/*"])
def test_a_derivatives_folder_is_offered_a_glob_of_the_series_alone(derivatives, given):
    """The folder given as X (or a glob of its folders) was offered 'xcp_d/**/*.tsv' and the
    like, which match the tables beside the series too; a folder's tables are counted and
    named."""
    with pytest.raises(ValueError, match=(
            r"^no subject files match" if "*" in given else
            rf"^{given} is a folder, not a subject file; \d+ of its \d+ files are BIDS tables "
            r"that hold no region series \(.*\): derivatives/.*_dseg\.tsv")) as info:
        validate_subjects(given, lazy=True)
    _assert_the_series(validate_subjects(_offered(info.value), lazy=True))


def test_a_glob_of_subject_folders_beside_a_logs_folder_offers_their_files(tmp_path):
    """The glob offered for 'data/*' was made from the first folder alphabetically, 'logs',
    whose files are no subject's: 'data/*/*.npy', which matches nothing."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "run.log").write_text("done")
    for i in range(2):
        (tmp_path / f"sub-{i}").mkdir()
        np.savetxt(tmp_path / f"sub-{i}" / "series.tsv",
                   np.random.default_rng(i).standard_normal((20, 3)), delimiter="\t")
    with pytest.raises(ValueError, match="it matches folders only") as info:
        validate_subjects(str(tmp_path / "*"), lazy=True)
    assert _offered(info.value) == str(tmp_path / "*" / "*.tsv")
    assert len(validate_subjects(_offered(info.value), lazy=True)) == 2


def test_a_tree_of_fmriprep_images_and_confounds_is_told_to_extract_region_series(derivatives):
    """fMRIPrep writes images: its folder, a glob of its folders and '**/*.tsv' found only
    tables to read as subjects (participants.tsv and the label table at its top, taken for
    subject files; the label table refused as text), and said nothing of the images."""
    extract = r"\. An image holds voxels or vertices, not region time series: extract them"
    with pytest.raises(ValueError, match=(
            r"^derivatives/fmriprep is a folder, not a subject file; 5 of its \d+ files are BIDS "
            r"tables that hold no region series \(.*\): derivatives/fmriprep/desc-aseg_dseg\.tsv"
            rf", derivatives/fmriprep/participants\.tsv, .* and 2 more; give .*{extract}")):
        validate_subjects("derivatives/fmriprep", lazy=True)
    with pytest.raises(ValueError, match=(
            r"^no subject files match 'derivatives/fmriprep/\*': it matches folders \(4, .*\) "
            r"and 4 file\(s\) of no subject file type \(.*\); 2 of the 6 files are BIDS tables "
            rf".*desc-aseg_dseg\.tsv, .*participants\.tsv; give .*{extract}")):
        validate_subjects("derivatives/fmriprep/*", lazy=True)
    with pytest.raises(ValueError, match=(
            r"^no subject files match 'derivatives/fmriprep/\*\*/\*\.tsv'; 5 of the 5 files are "
            rf"BIDS tables .*confounds_timeseries\.tsv and 2 more{extract}")):
        validate_subjects("derivatives/fmriprep/**/*.tsv", lazy=True)


def test_the_series_of_several_atlases_are_named_and_one_atlas_offered(tmp_path, monkeypatch):
    """XCP-D writes one series per subject and atlas: '**/*_timeseries.tsv' read them all as
    subjects, refused only at the first subject of other regions; the atlases are named, with
    a glob of one."""
    _xcpd(tmp_path / "xcp_d", np.random.default_rng(0), atlases=("4S156Parcels", "4S456Parcels"))
    monkeypatch.chdir(tmp_path)
    atlases = (r"\(seg-4S156Parcels alone: the series are of 2 atlases, seg-4S156Parcels, "
               r"seg-4S456Parcels, whose regions differ; a model takes one\)")
    with pytest.raises(ValueError, match=(
            r"^the glob 'xcp_d/\*\*/\*_timeseries\.tsv' matches the series of several atlases: "
            rf"narrow it to one, e\.g\. 'xcp_d/\*\*/\*_seg-4S156Parcels_stat-mean_timeseries"
            rf"\.tsv' {atlases}$")) as info:
        validate_subjects("xcp_d/**/*_timeseries.tsv", lazy=True)
    _assert_the_series(validate_subjects(_offered(info.value), lazy=True))
    for given in ["xcp_d", "xcp_d/**/*.tsv"]:
        with pytest.raises(ValueError, match=atlases) as info:
            validate_subjects(given, lazy=True)
        _assert_the_series(validate_subjects(_offered(info.value), lazy=True))
    # one atlas named: its series
    subjects = validate_subjects("xcp_d/**/*_seg-4S456Parcels_stat-mean_timeseries.tsv", lazy=True)
    _assert_the_series(subjects, n_regions=len(REGIONS) + 1)


def test_series_of_several_atlases_named_by_the_atlas_entity_are_told_apart(tmp_path):
    """XCP-D before 0.8 named the atlas with ``atlas-`` (``seg-`` since): the series of
    several atlases named so are told apart as those named with ``seg-`` are."""
    for subject in SUBJECTS:
        for n, atlas in enumerate(["Glasser", "Gordon"]):
            names = REGIONS + [f"extra{i}" for i in range(n)]
            _tsv(tmp_path / subject / f"{subject}_task-rest_atlas-{atlas}_timeseries.tsv",
                 pd.DataFrame(np.zeros((N_FRAMES, len(names))), columns=names))
    with pytest.raises(ValueError, match=(
            r"matches the series of several atlases: narrow it to one, e\.g\. "
            r"'.*\*_atlas-Glasser_timeseries\.tsv' \(atlas-Glasser alone: the series are of 2 "
            r"atlases, atlas-Glasser, atlas-Gordon,")):
        validate_subjects(str(tmp_path / "**" / "*.tsv"), lazy=True)


@pytest.mark.parametrize("lazy, given", [(False, list), (True, list), (True, tuple)])
def test_bids_tables_named_in_a_list_are_warned_of_and_read_as_given(derivatives, lazy, given):
    """A list, as cross-validation needs (sorted(glob.glob(...))), is read as given: tables
    in it were read as subjects without a word on what they are. They are named, and still
    read (never dropped from a list), so the reader's error follows."""
    import glob
    import warnings

    listed = given(sorted(glob.glob("derivatives/xcp_d/sub-*/func/*.tsv")))  # or a tuple
    with pytest.warns(UserWarning, match=(
            r"^X\[0\] \(derivatives/xcp_d/sub-01/func/sub-01_task-rest_motion\.tsv\), X\[1\] "
            r"\(.*sub-01_task-rest_outliers\.tsv\), X\[3\] \(.*sub-02_task-rest_motion\.tsv\) "
            r"and 3 more: named as BIDS tables that hold no region series \(participants, "
            r"confounds, motion, QC or atlas label tables\), yet each entry of X is read as a "
            r"subject's series; leave them out of X$")), \
            pytest.raises(ValueError, match=r"sub-01_task-rest_outliers\.tsv: subject 1 has "
                                            r"other region names"):
        validate_subjects(listed, lazy=lazy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        series = [path for path in listed if path.endswith("_timeseries.tsv")]
        _assert_the_series(validate_subjects(series, lazy=True))


@pytest.mark.parametrize("name", ["patient_qc.csv", "s01_rest_regressors.csv", "ctrl_design.tsv",
                                  "run_motion.txt", "motion.tsv", "sub01_desc-confounds.csv",
                                  "sessions.tsv", "scans.tsv", "sub-01_clean_motion.tsv"])
def test_a_users_own_files_named_with_a_table_suffix_are_subjects(tmp_path, name, recwarn):
    """Only BIDS names mark a table: files a user named 'patient_qc.csv' or 'run_motion.txt'
    (no 'key-value' entities before the suffix, or not all of them, 'sub-01_clean_motion')
    were refused in a glob and warned of in a list as BIDS tables."""
    separator = {".csv": ",", ".tsv": "\t", ".txt": " "}[name[name.rindex("."):]]
    rng = np.random.default_rng(0)
    for file in [tmp_path / name, tmp_path / f"other{name[name.rindex('.'):]}"]:
        np.savetxt(file, rng.standard_normal((20, 3)), delimiter=separator)
    assert len(validate_subjects(str(tmp_path / "*"), lazy=True)) == 2
    assert len(validate_subjects(sorted(map(str, tmp_path.iterdir())), lazy=True)) == 2
    assert not [w for w in recwarn if "BIDS" in str(w.message)]


@pytest.mark.parametrize("name", [
    "participants.tsv", "sub-01_sessions.tsv", "sub-01_task-rest_motion.tsv",
    "sub-01_ses-1_scans.tsv", "atlas-Schaefer400_dseg.tsv", "tpl-MNI_atlas-X_dseg.tsv",
    "desc-aseg_dseg.tsv", "sub-01_task-rest_desc-confounds_timeseries.tsv",
    "sub-01_task-rest_space-fsLR_seg-Glasser_stat-coverage_bold.tsv",
    "sub-01_task-rest_desc-confounds_regressors.tsv.gz", "sub-01_desc-confounds.tsv"])
def test_bids_named_tables_are_still_told_from_subjects(tmp_path, name):
    """A BIDS-named table beside a subject's series is still refused in a glob, named."""
    rng = np.random.default_rng(0)
    for file in [tmp_path / name, tmp_path / "sub-02_task-rest_stat-mean_timeseries.tsv"]:
        np.savetxt(file, rng.standard_normal((20, 3)), delimiter="\t")
    with pytest.raises(ValueError, match=rf"\(1 BIDS table that holds .*: .*{re.escape(name)}"):
        validate_subjects(str(tmp_path / "*"), lazy=True)


def test_series_of_no_atlas_named_beside_several_atlases_are_still_refused(tmp_path, monkeypatch):
    """A series whose name gives no atlas beside the series of two named atlases made the
    atlases go unjudged: 'xcp_d/**/*_timeseries.tsv' was read, and offered for the folder,
    with the series of both atlases in it."""
    _xcpd(tmp_path / "xcp_d", np.random.default_rng(0), atlases=("4S156Parcels", "4S456Parcels"))
    for subject in SUBJECTS:
        np.savetxt(tmp_path / "xcp_d" / subject / "func" /
                   f"{subject}_task-rest_{SPACE}_stat-mean_timeseries.tsv",
                   np.random.default_rng(1).standard_normal((N_FRAMES, 2)), delimiter="\t")
    monkeypatch.chdir(tmp_path)
    atlases = (r"\(seg-4S156Parcels alone: the series are of 2 atlases, seg-4S156Parcels, "
               r"seg-4S456Parcels, and 3 of no atlas named, whose regions differ; a model takes "
               r"one\)")
    for given in ["xcp_d/**/*_timeseries.tsv", "xcp_d", "xcp_d/**/*.tsv"]:
        with pytest.raises(ValueError, match=atlases) as info:
            validate_subjects(given, lazy=True)
        _assert_the_series(validate_subjects(_offered(info.value), lazy=True))


@pytest.mark.parametrize("given", ["subjects", "subjects/*", "subjects/*/*"])
def test_series_of_one_name_in_subject_folders_beside_tables_are_offered_a_glob(
        tmp_path, monkeypatch, given):
    """Each subject's series named alike ('series.tsv', one folder per subject) beside BIDS
    tables: the glob offered matched the tables too ('subjects/**/*.tsv'), or none was; the
    name they share is one ('subjects/*/series.tsv')."""
    rng = np.random.default_rng(0)
    for subject in SUBJECTS:
        _tsv(tmp_path / "subjects" / subject / "series.tsv",
             pd.DataFrame(rng.standard_normal((N_FRAMES, len(REGIONS))), columns=REGIONS))
        _tsv(tmp_path / "subjects" / subject / f"{subject}_task-rest_motion.tsv",
             pd.DataFrame(rng.standard_normal((N_FRAMES, 2)), columns=["trans_x", "rot_z"]))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"^(subjects is a folder|no subject files match|the "
                                         r"glob)") as info:
        validate_subjects(given, lazy=True)
    subjects = validate_subjects(_offered(info.value), lazy=True)
    assert [path.parent.name for path in subjects.paths] == SUBJECTS
    assert list(subjects.feature_names) == REGIONS


@pytest.mark.parametrize("given", ["subjects", "subjects/*"])
def test_series_whose_names_end_as_a_tables_do_are_asked_for_as_a_list(
        tmp_path, monkeypatch, given):
    """'alice.tsv' and 'bob.tsv' beside 'participants.tsv': no glob matches the series alone,
    yet the folder was offered 'subjects/**/*.tsv', refused when pasted back for the table."""
    rng = np.random.default_rng(0)
    for subject in ["alice", "bob"]:
        _tsv(tmp_path / "subjects" / "series" / f"{subject}.tsv",
             pd.DataFrame(rng.standard_normal((N_FRAMES, len(REGIONS))), columns=REGIONS))
    _tsv(tmp_path / "subjects" / "series" / "participants.tsv",
         pd.DataFrame({"participant_id": ["alice", "bob"]}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=(
            r"(participants\.tsv|such as subjects/series\)); no glob matches the subjects' "
            r"series alone there: give a list of them$")) as info:
        validate_subjects(given, lazy=True)
    assert not re.search(r"(such as|e\.g\.) '", str(info.value))  # no glob offered
    # a glob of the series and the table: told to narrow it, and how where no glob can
    with pytest.raises(ValueError, match=(
            r"narrow it to the subjects' files, or give a list of them where no glob matches "
            r"them alone \(subject files")):
        validate_subjects("subjects/series/*.tsv", lazy=True)


@pytest.mark.parametrize("given", ["tables", "tables/*"])
def test_a_tree_of_bids_tables_alone_is_offered_no_glob(tmp_path, monkeypatch, given):
    """A folder of XCP-D's motion and outlier tables and a participants.tsv, no series and no
    image: it was offered 'tables/*.npy' ('tables/*/*.npy'), which matches nothing."""
    rng = np.random.default_rng(0)
    _tsv(tmp_path / "tables" / "participants.tsv", pd.DataFrame({"participant_id": SUBJECTS}))
    for subject in SUBJECTS:
        for table in ["motion", "outliers"]:
            _tsv(tmp_path / "tables" / subject / f"{subject}_task-rest_{table}.tsv",
                 pd.DataFrame(rng.standard_normal((N_FRAMES, 2)), columns=["a", "b"]))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=(
            r"BIDS tables? that holds? no region series \(.*\): tables/participants\.tsv.*; no "
            r"subject's region series is there, only BIDS tables$")) as info:
        validate_subjects(given, lazy=True)
    assert not re.search(r"(such as|e\.g\.) '", str(info.value))  # no glob offered


def test_a_glob_that_names_a_file_twice_reads_it_once(derivatives):
    """Two '**' match a file by each of its folders: 'xcp_d/**/*/**/*_timeseries.tsv' read each
    subject twice, and was the glob offered for 'xcp_d/**/' (which matches folders only)."""
    _assert_the_series(validate_subjects(
        "derivatives/xcp_d/**/*/**/*_stat-mean_timeseries.tsv", lazy=True))
    with pytest.raises(ValueError, match="it matches folders only") as info:
        validate_subjects("derivatives/xcp_d/**/", lazy=True)
    _assert_the_series(validate_subjects(_offered(info.value), lazy=True))


def test_a_glob_ending_in_two_stars_is_offered_a_glob_of_the_series(derivatives):
    """'xcp_d/**' matches every file below it: the globs tried in its place were made beside
    '**' ('xcp_d/*_timeseries.tsv'), none matched the series, and none was offered."""
    with pytest.raises(ValueError, match="which are not subjects") as info:
        validate_subjects("derivatives/xcp_d/**", lazy=True)
    assert _offered(info.value) == "derivatives/xcp_d/**/*_timeseries.tsv"
    _assert_the_series(validate_subjects(_offered(info.value), lazy=True))


def test_the_bids_tables_among_files_are_counted_in_good_grammar(tmp_path, monkeypatch):
    """One BIDS table was told as '1 of the 1 files are BIDS tables'."""
    monkeypatch.chdir(tmp_path)
    _tsv(tmp_path / "data" / "participants.tsv",
         pd.DataFrame({"participant_id": SUBJECTS, "age": [21, 34, 27]}))
    with pytest.raises(ValueError, match=(
            r"^no subject files match 'data/\*\.tsv'; the only file is a BIDS table that holds "
            r"no region series \(.*\): data/participants\.tsv")):
        validate_subjects("data/*.tsv", lazy=True)
    for i in range(2):
        np.save(tmp_path / "data" / f"sub-{i}.npy", np.zeros((N_FRAMES, 3)))
    with pytest.raises(ValueError, match=(
            r"^data is a folder, not a subject file; 1 of its 3 files is a BIDS table that "
            r"holds no region series \(.*\): data/participants\.tsv")):
        validate_subjects("data", lazy=True)


def test_the_glob_of_one_atlas_names_the_subjects_it_leaves_out(tmp_path, monkeypatch):
    """A subject with only the other atlas's series dropped out of the glob of the most
    common atlas without a word."""
    root = tmp_path / "xcp_d"
    _xcpd(root, np.random.default_rng(0), atlases=("4S156Parcels", "4S456Parcels"))
    series = "{0}/func/{0}_task-rest_space-MNI152NLin2009cAsym_seg-{1}_stat-mean_timeseries.tsv"
    for subject, atlas in [("sub-01", "4S456Parcels"), ("sub-02", "4S456Parcels"),
                           ("sub-03", "4S156Parcels")]:
        (root / series.format(subject, atlas)).unlink()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=(
            r"\(seg-4S156Parcels alone: .*; a model takes one; it leaves out 1 subject\(s\) "
            r"with no series of seg-4S156Parcels: sub-03\)$")) as info:
        validate_subjects("xcp_d/**/*_timeseries.tsv", lazy=True)
    assert len(validate_subjects(_offered(info.value), lazy=True)) == 2
    with pytest.raises(ValueError, match=r"it leaves out 1 subject\(s\) .*: sub-03\)"):
        validate_subjects("xcp_d", lazy=True)


def test_one_bids_table_beside_the_subjects_is_told_in_good_grammar(tmp_path, monkeypatch):
    """A glob matching the subjects' series and one BIDS table told it as '1 BIDS tables that
    hold no region series'."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    _tsv(tmp_path / "data" / "participants.tsv",
         pd.DataFrame({"participant_id": SUBJECTS, "age": [21, 34, 27]}))
    for subject in SUBJECTS:
        _tsv(tmp_path / "data" / f"{subject}_timeseries.tsv",
             pd.DataFrame(rng.standard_normal((N_FRAMES, 2)), columns=["a", "b"]))
    with pytest.raises(ValueError, match=(
            r"^the glob 'data/\*\.tsv' matches 3 subject file\(s\) but also 1 other file\(s\), "
            r"which are not subjects \(1 BIDS table that holds no region series: .*\): "
            r"data/participants\.tsv; ")) as info:
        validate_subjects("data/*.tsv", lazy=True)
    assert len(validate_subjects(_offered(info.value), lazy=True)) == 3

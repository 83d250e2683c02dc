"""Corpora that stay on disk: files checked one at a time, windows read by the loader, robust
statistics from a bounded sample, connectivity accumulated a chunk of subjects at a time."""

import gc
import os
import pickle
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from _estimators import N_REGIONS, make_subjects, tiny_module
from sklearn.exceptions import NotFittedError

from brainjepa_sk import (
    BrainJEPAClassifier,
    BrainJEPAEmbedder,
    BrainJEPAPretrainer,
    GradientPositioner,
    files,
    preprocessing,
    validation,
)
from brainjepa_sk.files import FileChangedError, SubjectFiles
from brainjepa_sk.preprocessing import Preprocessor
from brainjepa_sk.train import Callback
from brainjepa_sk.validation import subjects_digest, validate_subjects


def _series(lengths=(40, 52, 14, 37), seed=0):
    """Subjects of different lengths, one shorter than a window (padded) and one not a
    whole number of strides long."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, N_REGIONS)).cumsum(axis=0) + 5 for n in lengths]


def _save(folder, series, kind="npy"):
    for i, x in enumerate(series):
        path = folder / f"sub-{i:02d}.{kind}"
        if kind == "npy":
            np.save(path, x.astype(np.float32))
        else:
            pd.DataFrame(x, columns=[f"roi{r}" for r in range(N_REGIONS)]).to_csv(
                path, sep="\t", index=False)
    return sorted(str(p) for p in folder.iterdir())


def _as_read(paths):
    """The arrays the files hold (float32 .npy values come back as float64)."""
    return [np.asarray(files.read_subject_file(p), dtype=np.float64) for p in paths]


def test_lazy_validation_keeps_no_series_and_digests_like_the_arrays(tmp_path):
    paths = _save(tmp_path, _series())
    lazy = validate_subjects(str(tmp_path / "*.npy"), lazy=True)
    assert isinstance(lazy, SubjectFiles) and len(lazy) == 4
    assert lazy.n_timepoints.tolist() == [40, 52, 14, 37] and lazy.n_regions == N_REGIONS
    assert not any(isinstance(v, np.ndarray) and v.ndim == 2 for v in vars(lazy).values())
    arrays = validate_subjects(paths)
    assert lazy.digest == subjects_digest(arrays)
    # the same values cut into other subjects are other data (another run to resume)
    whole = np.concatenate(arrays[:2])
    assert subjects_digest([whole, *arrays[2:]]) != subjects_digest(arrays)
    (tmp_path / "joined").mkdir()
    joined = validate_subjects(_save(tmp_path / "joined", [whole, *arrays[2:]]), lazy=True)
    assert joined.digest == subjects_digest([whole, *arrays[2:]]) != lazy.digest
    for i, expected in enumerate(arrays):
        np.testing.assert_array_equal(lazy[i], expected)
        np.testing.assert_array_equal(lazy.frames(i, 3, 9), expected[3:9])
    # headers give the region names, as with arrays
    (tmp_path / "tsv").mkdir()
    tsv = validate_subjects(_save(tmp_path / "tsv", _series(), "tsv"), lazy=True)
    assert list(tsv.feature_names) == [f"roi{r}" for r in range(N_REGIONS)]


def test_a_bad_file_is_named_before_any_training(tmp_path):
    series = _series()
    series[2][5, 1] = np.nan
    paths = _save(tmp_path, series)
    with pytest.raises(ValueError, match=r"sub-02\.npy.*NaN"):
        validate_subjects(paths, lazy=True)
    other = _series()
    other[3] = other[3][:, :5]
    paths = _save(tmp_path, other)
    with pytest.raises(ValueError, match=r"sub-03\.npy: subject 3 has 5 regions"):
        BrainJEPAPretrainer(n_epochs=1, verbose=0).fit(paths)


def _counting_correlations(monkeypatch):
    """The first subject of each chunk whose correlations are computed, in order, with
    chunks of one subject (each correlated as it is read)."""
    from brainjepa_sk import gradients

    correlated = []
    real_correlations = gradients._correlations
    monkeypatch.setattr(gradients, "_correlations",
                        lambda chunk, start: correlated.append(start)
                        or real_correlations(chunk, start))
    monkeypatch.setattr(gradients, "CONNECTIVITY_CHUNK", 1)
    return correlated


def test_a_file_too_short_for_a_window_is_named_before_the_corpus_is_read(tmp_path,
                                                                         monkeypatch):
    """Nor are the correlations of .npy files computed as their check reads them (as those
    of text files are, to spare a parse): they would delay this error for a read that a
    memory map makes cheap."""

    series = _series()
    series[1] = series[1][:5]  # windows of 16 frames need at least 8
    paths = _save(tmp_path, series)

    def no_gradients(*args):
        raise AssertionError("the gradients were computed first")

    correlated = _counting_correlations(monkeypatch)
    monkeypatch.setattr(BrainJEPAPretrainer, "_fit_gradients", no_gradients)
    with pytest.raises(ValueError, match=r"subject 1 \(.*sub-01\.npy\) is too short: 5 frames"):
        BrainJEPAPretrainer(n_frames=16, patch_size=4, n_epochs=1, verbose=0).fit(paths)
    assert correlated == []


def _save_mixed(folder, series, npy=".npy"):
    """Subjects saved as .npy files (odd ones, with the suffix ``npy``) and .tsv files (even
    ones), in order."""
    for i, x in enumerate(series):
        if i % 2:
            with open(folder / f"sub-{i:02d}{npy}", "wb") as file:  # numpy.save adds .npy
                np.save(file, x)
        else:
            pd.DataFrame(x, columns=[f"roi{r}" for r in range(N_REGIONS)]).to_csv(
                folder / f"sub-{i:02d}.tsv", sep="\t", index=False)
    return sorted(str(p) for p in folder.iterdir())


def test_a_corpus_mixing_npy_and_text_files_computes_nothing_as_its_check_reads_it(
        tmp_path, monkeypatch):
    """.npy files feed no taker of the check, so the takers of a corpus that mixes them with
    text files fall short of it, and the gradients and robust statistics read every file
    again: the correlations of its text files were computed as the check read them for
    nothing (each subject's twice), delaying the errors found after the check (a subject too
    short for a window). Such a corpus feeds no taker: each subject is correlated once, with
    the results of its arrays."""
    from sklearn.base import clone

    correlated = _counting_correlations(monkeypatch)
    series = _series(lengths=(40, 52, 24, 37))
    paths = _save_mixed(tmp_path, series)
    arrays = _as_read(paths)
    positioner = GradientPositioner(n_components=2, sparsity=0.5, random_state=0)
    expected = clone(positioner).fit(arrays).gradients_
    statistics = Preprocessor(16, normalization="robust").fit(arrays)
    correlated.clear()
    np.testing.assert_array_equal(clone(positioner).fit(paths).gradients_, expected)
    assert correlated == [0, 1, 2, 3]
    correlated.clear()
    fitted = _pretrainer(n_epochs=1, gradients=positioner, normalization="robust").fit(paths)
    assert correlated == [0, 1, 2, 3]
    np.testing.assert_array_equal(fitted.gradients_, expected)
    np.testing.assert_array_equal(fitted.preprocessor_.median_, statistics.median_)
    np.testing.assert_array_equal(fitted.preprocessor_.iqr_, statistics.iqr_)

    (tmp_path / "short").mkdir()
    series[3] = series[3][:5]  # windows of 16 frames need at least 8
    paths = _save_mixed(tmp_path / "short", series, npy=".NPY")  # .npy files too
    correlated.clear()
    with pytest.raises(ValueError, match=r"subject 3 \(.*sub-03\.NPY\) is too short: 5 frames"):
        _pretrainer(n_epochs=1, gradients=positioner).fit(paths)
    assert correlated == []


@pytest.mark.parametrize("estimator", ["BrainJEPAEmbedder", "BrainJEPAClassifier"])
def test_fit_names_a_file_too_short_for_a_window_and_keeps_the_fit(tmp_path, estimator):
    """The embedder and the fine-tuners refuse in fit, as the pretrainer does, what transform
    would refuse; the previous fit stays."""
    import brainjepa_sk

    params = {} if estimator == "BrainJEPAEmbedder" else dict(max_epochs=1, verbose=0)
    fitted = getattr(brainjepa_sk, estimator)(tiny_module(), device="cpu", **params)
    series, y = _series(lengths=(40,) * 4), [0, 1, 0, 1]
    output = fitted.transform if estimator == "BrainJEPAEmbedder" else fitted.predict_proba
    before = output(fitted.fit(series, y) and series)
    short = [*series[:2], series[2][:3], series[3]]  # windows of 8 frames need at least 4
    with pytest.raises(ValueError, match=r"subject 2 \(.*sub-02\.npy\) is too short: 3 frames"):
        fitted.fit(_save(tmp_path, short), y)
    np.testing.assert_array_equal(output(series), before)


def test_a_continued_fine_tuning_names_a_file_too_short_for_a_window(tmp_path):
    """partial_fit keeps the fitted preprocessing, and checks the lengths against it all the
    same: the short file is named before any window is read, and the fit stays."""
    clf = BrainJEPAClassifier(tiny_module(), device="cpu", max_epochs=1, verbose=0)
    series, y = _series(lengths=(40,) * 4), [0, 1, 0, 1]
    before = clf.fit(series, y).predict_proba(series)
    short = [*series[:2], series[2][:3], series[3]]  # windows of 8 frames need at least 4
    with pytest.raises(ValueError, match=r"subject 2 \(.*sub-02\.npy\) is too short: 3 frames"):
        clf.partial_fit(_save(tmp_path, short), y)
    assert len(clf.history_) == 1
    np.testing.assert_array_equal(clf.predict_proba(series), before)


def test_transform_names_a_file_too_short_before_embedding_any_chunk(tmp_path, monkeypatch):
    from brainjepa_sk import _base

    model = _pretrainer(n_epochs=1).fit(_series())
    series = _series(lengths=(40,) * 7)
    series[5] = series[5][:5]
    paths = _save(tmp_path, series)
    monkeypatch.setattr(_base, "SUBJECTS_PER_CHUNK", 2)
    embedded = []
    real_embed = _base.embed_windows
    monkeypatch.setattr(_base, "embed_windows",
                        lambda *args, **kwargs: embedded.append(1) or real_embed(*args, **kwargs))
    # the sixth subject, in the third chunk: its own index and file, not its place in the chunk
    with pytest.raises(ValueError, match=r"subject 5 \(.*sub-05\.npy\) is too short"):
        model.transform(paths)
    assert not embedded


@pytest.mark.parametrize("kind", ["npy", "tsv"])
@pytest.mark.parametrize("resampled", [False, True])
def test_read_window_cuts_exactly_the_windows_of_transform(tmp_path, kind, resampled):
    paths = _save(tmp_path, _series(), kind)
    subjects = validate_subjects(paths, lazy=True)
    prep = Preprocessor(16, window="sliding", stride=6, normalization="robust",
                        t_r=2.0 if resampled else None, target_t_r=1.5 if resampled else None)
    windows, subject_index = prep.fit_transform(_as_read(paths))
    table_subjects, starts = prep.window_table(subjects.n_timepoints)
    np.testing.assert_array_equal(table_subjects, subject_index)
    lazy = np.stack([prep.read_window(subjects, s, start)
                     for s, start in zip(table_subjects, starts)])
    np.testing.assert_array_equal(lazy, windows)
    # transform of the checked files (one subject at a time) resamples them as well
    streamed, streamed_index = prep.transform(subjects)
    np.testing.assert_array_equal(streamed, windows)
    np.testing.assert_array_equal(streamed_index, subject_index)


def test_robust_statistics_come_from_a_bounded_sample_of_every_subject(monkeypatch):
    series = _series(lengths=(40, 52, 30, 37))
    exact = Preprocessor(16, normalization="robust").fit(series)
    frames = np.concatenate(series)
    np.testing.assert_array_equal(exact.median_, np.percentile(frames, 50, axis=0))

    monkeypatch.setattr(preprocessing, "ROBUST_SAMPLE_FRAMES", 40)  # 10 frames per subject
    bounded = Preprocessor(16, normalization="robust").fit(series)
    sample = np.concatenate(
        [x[np.linspace(0, len(x) - 1, 10).round().astype(int)] for x in series])
    q25, median, q75 = np.percentile(sample, [25, 50, 75], axis=0)
    np.testing.assert_array_equal(bounded.median_, median)
    np.testing.assert_array_equal(bounded.iqr_, q75 - q25)
    assert not np.array_equal(bounded.median_, exact.median_)


def test_the_robust_sample_takes_short_subjects_whole_and_stays_within_its_budget(
        monkeypatch, tmp_path):
    series = [x.astype(np.float32).astype(np.float64)  # as the files will hold them
              for x in _series(lengths=(5, 6, 60, 70))]  # 141 frames
    frames = np.concatenate(series)
    monkeypatch.setattr(preprocessing, "ROBUST_SAMPLE_FRAMES", 141)  # enough: every frame
    exact = Preprocessor(16, normalization="robust").fit(series)
    np.testing.assert_array_equal(exact.median_, np.percentile(frames, 50, axis=0))
    # 40 frames: the short subjects give all theirs (11), the long ones 14 each (39 in all;
    # 15 each would make 41)
    monkeypatch.setattr(preprocessing, "ROBUST_SAMPLE_FRAMES", 40)
    bounded = Preprocessor(16, normalization="robust").fit(series)
    sample = np.concatenate([series[0], series[1]] + [
        x[np.linspace(0, len(x) - 1, 14).round().astype(int)] for x in series[2:]])
    q25, median, q75 = np.percentile(sample, [25, 50, 75], axis=0)
    np.testing.assert_array_equal(bounded.median_, median)
    np.testing.assert_array_equal(bounded.iqr_, q75 - q25)
    # the same sample whether the subjects are arrays, lazily converted arrays or files
    for subjects in (validate_subjects(series, lazy=True),
                     validate_subjects(_save(tmp_path, series), lazy=True)):
        lazy = Preprocessor(16, normalization="robust").fit(subjects)
        np.testing.assert_array_equal(lazy.median_, median)


@pytest.mark.parametrize("budget, share", [(41, 15), (129, 59)])
def test_a_robust_budget_met_exactly_is_filled(monkeypatch, budget, share):
    """The share of the long subjects is the largest that keeps within the budget, the budget
    itself included: 41 frames of (5, 6, 60, 70) are the short subjects' 11 and 15 of each
    long one (14 each would leave a frame of the budget unused); 129 are 59 of each, one
    frame fewer than the subject of 60 has, which is sampled too."""
    series = _series(lengths=(5, 6, 60, 70))
    monkeypatch.setattr(preprocessing, "ROBUST_SAMPLE_FRAMES", budget)
    bounded = Preprocessor(16, normalization="robust").fit(series)
    sample = np.concatenate([series[0], series[1]] + [
        x[np.linspace(0, len(x) - 1, share).round().astype(int)] for x in series[2:]])
    q25, median, q75 = np.percentile(sample, [25, 50, 75], axis=0)
    np.testing.assert_array_equal(bounded.median_, median)
    np.testing.assert_array_equal(bounded.iqr_, q75 - q25)


def test_more_subjects_than_the_robust_budget_give_a_frame_each(monkeypatch):
    """Past one frame a subject the budget is exceeded rather than a subject left out."""
    series = _series()
    monkeypatch.setattr(preprocessing, "ROBUST_SAMPLE_FRAMES", 3)  # 4 subjects
    bounded = Preprocessor(16, normalization="robust").fit(series)
    sample = np.stack([x[0] for x in series])  # one evenly spaced frame: the first
    q25, median, q75 = np.percentile(sample, [25, 50, 75], axis=0)
    np.testing.assert_array_equal(bounded.median_, median)
    np.testing.assert_array_equal(bounded.iqr_, q75 - q25)


def test_group_connectivity_accumulated_by_chunks_equals_the_stacked_mean(tmp_path,
                                                                          monkeypatch):
    from brainjepa_sk import gradients

    X = make_subjects(n_subjects=7, n_timepoints=30)
    whole = GradientPositioner(n_components=2, sparsity=0.5, random_state=0).fit(X)
    paths = _save(tmp_path, list(X))
    monkeypatch.setattr(gradients, "CONNECTIVITY_CHUNK", 3)
    chunked = GradientPositioner(n_components=2, sparsity=0.5, random_state=0).fit(paths)
    np.testing.assert_allclose(chunked.group_connectivity_, whole.group_connectivity_,
                               rtol=1e-5, atol=1e-6)  # float32 files, float64 arrays
    stacked = GradientPositioner(n_components=2, sparsity=0.5, random_state=0).fit(
        _as_read(paths))
    np.testing.assert_allclose(chunked.group_connectivity_, stacked.group_connectivity_,
                               rtol=1e-12, atol=1e-12)


def _rewritten_later(path):
    """Date ``path`` a second later: the file system's timestamps may be coarser than the time
    between the check and the rewrite in a test."""
    stamp = os.stat(path)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))


def _fitted_then_rewritten(tmp_path, kind, change, resampled):
    """Subjects saved as files and checked, a Preprocessor fitted on them and a window of
    sub-01 read, then sub-01 rewritten as ``change`` of its series."""
    paths = _save(tmp_path, _series(), kind)
    subjects = validate_subjects(paths, lazy=True)
    prep = Preprocessor(16, window="sliding", stride=6, normalization="robust",
                        t_r=1.0 if resampled else None,  # resampled: the whole series is read
                        target_t_r=1.5 if resampled else None).fit(subjects)
    prep.read_window(subjects, 1, 16)
    changed = change(_series()[1])
    if kind == "npy":
        np.save(paths[1], changed.astype(np.float32))
    else:
        pd.DataFrame(changed, columns=[f"roi{r}" for r in range(changed.shape[1])]).to_csv(
            paths[1], sep="\t", index=False)
    return paths, subjects, prep


@pytest.mark.parametrize("resampled", [False, True])
@pytest.mark.parametrize("kind", ["npy", "tsv"])
@pytest.mark.parametrize("change, problem", [
    (lambda x: np.where(np.arange(len(x))[:, None] == 20, np.nan, x),
     "it now holds values that are not finite numbers"),
    (lambda x: np.where(np.arange(len(x))[:, None] == 50, np.nan, x),  # outside the window
     "it now holds values that are not finite numbers"),
    (lambda x: x[:20], "it is now 20 timepoints x 8 regions, checked as 52 x 8"),
    (lambda x: np.concatenate([x, x[:30]]), "it is now 82 timepoints x 8 regions, checked as 52 x 8"),  # grown
    (lambda x: x[:, :-1], f"it is now 52 timepoints x {N_REGIONS - 1} regions, checked as 52 x {N_REGIONS}"),
    (lambda x: np.concatenate([x, x[:, :1]], axis=1),
     f"it is now 52 timepoints x {N_REGIONS + 1} regions, checked as 52 x {N_REGIONS}"),
])
def test_a_file_changed_while_its_windows_stream_is_named(tmp_path, kind, change, problem,
                                                          resampled):
    """Streamed windows are read long after fit checked the files: one rewritten since then
    gets an error that names it and says what changed (it used to name only a subject
    number, or give numpy's broadcasting error; a grown file, or a NaN outside the window
    read, had been taken)."""
    paths, subjects, prep = _fitted_then_rewritten(tmp_path, kind, change, resampled)
    _rewritten_later(paths[1])
    with pytest.raises(FileChangedError, match=rf"sub-01\.{kind} changed after it was checked "
                                               rf"\({problem}; rewritten while in use\?\)"):
        prep.read_window(subjects, 1, 16)
    with pytest.raises(FileChangedError, match=problem):  # transform reads it whole
        prep.transform(subjects)


@pytest.mark.parametrize("resampled", [False, True])
@pytest.mark.parametrize("kind", ["npy", "tsv"])
@pytest.mark.parametrize("change, problem", [
    (lambda x: np.where(np.arange(len(x))[:, None] == 20, np.nan, x),
     "contains NaN. First at region 0 .* timepoint 20; 8 region.s. and 8 value.s. in "
     "(all|frames 16 to 31)"),
    (lambda x: x[:, :-1], f"has {N_REGIONS - 1} regions, not the {N_REGIONS} of the fit"),
])
def test_a_change_its_stamp_does_not_show_is_named_by_the_window_checks(
        tmp_path, monkeypatch, kind, change, problem, resampled):
    """Where a rewrite leaves the size and modification time as they were (timestamps coarser
    than the time between two writes), the checks of the window read still name the file."""
    _, subjects, prep = _fitted_then_rewritten(tmp_path, kind, change, resampled)
    monkeypatch.setattr(subjects, "stamps", None)  # the change unseen by its stamp
    with pytest.raises(ValueError, match=rf"sub-01\.{kind}: subject 1\b.*({problem}).*the file "
                                         "changed after fit checked it"):
        prep.read_window(subjects, 1, 16)


@pytest.mark.parametrize("kind", ["npy", "tsv"])
def test_a_file_rewritten_with_the_same_shape_is_named(tmp_path, kind):
    """Other values of the same shape pass every check of a read: the file's size and
    modification time, recorded when it was checked, tell the change (training went on with
    the new values, under the digest of the old ones)."""
    paths = _save(tmp_path, _series(), kind)
    subjects = validate_subjects(paths, lazy=True)
    prep = Preprocessor(16, window="sliding", stride=6).fit(subjects)
    prep.read_window(subjects, 1, 16)
    subjects[0]  # unchanged files read as before
    _save(tmp_path, _series(seed=1), kind)  # every file rewritten, same shapes
    _rewritten_later(paths[1])
    message = (rf"sub-01\.{kind} changed after it was checked \(its size or modification time "
               r"differ, not its shape; rewritten while in use\?\): pass the paths again")
    with pytest.raises(FileChangedError, match=message):
        prep.read_window(subjects, 1, 16)
    with pytest.raises(FileChangedError, match=message):
        subjects[1]
    with pytest.raises(FileChangedError, match=message):
        subjects.frames(1, 0, 4)
    # rewritten into something that no longer reads as an array (a header without rows, for a
    # .tsv): named as a change too
    with open(paths[1], "w") as file:
        file.write("not a table")
    _rewritten_later(paths[1])
    problem = ("not a readable|not a numeric" if kind == "npy"
               else "not a numeric .*: it has a header line but no rows")
    with pytest.raises(FileChangedError, match=rf"sub-01\.{kind} changed after it was checked "
                                               rf"\(.*({problem})"):
        subjects[1]


def _rewritten_keeping_its_stamp(path, series, kind):
    """Write ``series`` over ``path`` with the size and modification time the file had, as a
    rewrite within the file system's timestamp resolution leaves them (a .tsv padded with
    blank lines, which a read skips)."""
    before = os.stat(path)
    if kind == "npy":
        np.save(path, series.astype(np.float32))
    else:
        pd.DataFrame(series, columns=[f"roi{r}" for r in range(series.shape[1])]).to_csv(
            path, sep="\t", index=False)
        with open(path, "a") as file:
            file.write("\n" * (before.st_size - os.path.getsize(path)))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert files.file_stamp(path) == (before.st_size, before.st_mtime_ns)


@pytest.mark.parametrize("subject", [0, 1])
@pytest.mark.parametrize("kind", ["npy", "tsv"])
def test_a_file_rewritten_in_another_shape_keeping_its_stamp_is_named(tmp_path, kind,
                                                                       subject):
    """A file rewritten in another shape with its size and modification time as they were
    (within the timestamp resolution) is refused by its shape, which the read gives: transform
    had said "subject 0 has 4 regions (last axis) but subject 0 has 8" of subject 0 (the count
    checked, not subject 0's file), and a GradientPositioner passed on nilearn's "All subjects
    must have the same number of features"."""
    paths = _save(tmp_path, _series(), kind)
    subjects = validate_subjects(paths, lazy=True)
    prep = Preprocessor(16).fit(subjects)
    positioner = GradientPositioner(n_components=2, sparsity=0.5, random_state=0).fit(subjects)
    checked = _series()[subject]
    reshaped = (checked.reshape(-1, N_REGIONS // 2) if kind == "npy"  # same bytes, same size
                else checked[:, : N_REGIONS // 2])
    _rewritten_keeping_its_stamp(paths[subject], reshaped, kind)
    now = f"{len(reshaped)} timepoints x {N_REGIONS // 2} regions"
    message = (rf"sub-0{subject}\.{kind} changed after it was checked \(it is now {now}, "
               rf"checked as {len(checked)} x {N_REGIONS}; rewritten while in use, keeping its "
               r"size and modification time\?\): pass the paths again")
    with pytest.raises(FileChangedError, match=message):
        prep.transform(subjects)
    with pytest.raises(FileChangedError, match=message):
        prep.read_window(subjects, subject, 0)
    with pytest.raises(FileChangedError, match=message):
        positioner.transform(subjects)
    with pytest.raises(FileChangedError, match=message):
        subjects[subject]


@pytest.mark.parametrize("kind", ["npy", "tsv"])
def test_a_file_touched_or_copied_over_with_the_same_series_is_read(tmp_path, kind):
    """A file touched, copied over without its times, or written again with the same series
    (in other bytes) after it was checked is read: its series is compared with the digest
    recorded at the check (a long fit had failed on a changed stamp alone). Checked as float32
    too (the digest is of the values read, not of the float32 ones), and as files checked
    already, given another dtype."""
    paths = _save(tmp_path, _series(), kind)
    subjects = validate_subjects(paths, lazy=True)
    as32 = validate_subjects(subjects, lazy=True, dtype=np.float32)
    checked32 = validate_subjects(paths, lazy=True, dtype=np.float32)
    prep = Preprocessor(16, window="sliding", stride=6).fit(subjects)
    expected = _as_read(paths)[1]
    copy = tmp_path / "copy"
    with open(paths[1], "rb") as source, open(copy, "wb") as target:
        target.write(source.read())
    as_written = _series()[1].astype(np.float32) if kind == "npy" else _series()[1]
    rewrites = {
        "touched": lambda: None,
        "copied": lambda: shutil.copyfile(copy, paths[1]),  # cp without -p
        # the same values in other bytes: float64 for float32, all 17 digits written
        "rewritten": lambda: (np.save(paths[1], as_written.astype(np.float64)) if kind == "npy"
                              else pd.DataFrame(as_written, columns=[
                                  f"roi{r}" for r in range(N_REGIONS)]).to_csv(
                                  paths[1], sep="\t", index=False, float_format="%.17g")),
    }
    for name, rewrite in rewrites.items():
        before = files.file_stamp(paths[1])
        rewrite()
        _rewritten_later(paths[1])
        assert files.file_stamp(paths[1]) != before, name  # the stamps tell a change
        np.testing.assert_array_equal(subjects[1], expected, err_msg=name)
        np.testing.assert_array_equal(subjects.frames(1, 2, 5), expected[2:5], err_msg=name)
        np.testing.assert_array_equal(as32[1], expected.astype(np.float32), err_msg=name)
        np.testing.assert_array_equal(checked32[1], expected.astype(np.float32), err_msg=name)
        prep.read_window(subjects, 1, 16)
        assert subjects.stamps[1] == files.file_stamp(paths[1]), name  # the new stamp kept
    # a rewrite with other values after that is still refused
    _save(tmp_path, _series(seed=1), kind)
    _rewritten_later(paths[1])
    with pytest.raises(FileChangedError, match=rf"sub-01\.{kind} changed after it was checked "
                                               r"\(its size or modification time differ"):
        subjects[1]


def test_a_file_rewritten_as_complex_numbers_of_the_same_series_is_refused(tmp_path):
    """Only numbers are compared with the digest of a file whose stamp changed: the series
    rewritten as complex numbers (its real part the same) is refused, not read as the series
    it had been with the imaginary part dropped."""
    paths = _save(tmp_path, _series())
    subjects = validate_subjects(paths, lazy=True)
    np.save(paths[1], _series()[1].astype(np.float32).astype(np.complex128))
    _rewritten_later(paths[1])
    with pytest.raises(FileChangedError, match=r"sub-01\.npy changed after it was checked \(it "
                                               r"now holds values that are not finite numbers"):
        subjects[1]


def test_a_touched_file_is_compared_with_its_digest_once(tmp_path, monkeypatch):
    """The series of a file whose stamp changed is compared once: its new stamp is kept, so
    the next reads (a window per batch) do not read the whole file again to digest it."""
    paths = _save(tmp_path, _series())
    subjects = validate_subjects(paths, lazy=True)
    digested = []
    digest = files.series_digest
    monkeypatch.setattr(files, "series_digest",
                        lambda *args, **kwargs: digested.append(1) or digest(*args, **kwargs))
    _rewritten_later(paths[1])
    for _ in range(3):
        subjects.frames(1, 0, 4)
        subjects[1]
    assert len(digested) == 1


def test_a_file_given_other_header_names_with_the_same_values_is_refused(tmp_path):
    """The digest a touched file is compared with holds the header's region names: a file whose
    values are the same but whose regions are named otherwise is not the file checked."""
    paths = _save(tmp_path, _series(), "tsv")
    subjects = validate_subjects(paths, lazy=True)
    pd.DataFrame(_series()[1], columns=[f"region{r}" for r in range(N_REGIONS)]).to_csv(
        paths[1], sep="\t", index=False)
    _rewritten_later(paths[1])
    with pytest.raises(FileChangedError, match=r"sub-01\.tsv changed after it was checked "
                                               r"\(its size or modification time differ"):
        subjects[1]


def test_series_digest_tells_the_same_values_in_another_shape_apart():
    """series_digest, a public helper, names the shape as well as the values: the same numbers
    transposed or cut into other rows are another series (SubjectFiles checks the shape
    before the digest, but a caller comparing digests alone would take them for the same)."""
    values = np.arange(24.0).reshape(4, 6)
    digest = files.series_digest(values)
    assert files.series_digest(values.copy()) == digest
    assert files.series_digest(values.astype(np.float32)) == digest  # values as float64
    assert files.series_digest(values.reshape(6, 4)) != digest
    assert files.series_digest(values.reshape(3, 8)) != digest
    assert files.series_digest(values.ravel()) != digest


def test_files_pickled_before_their_digests_were_recorded_still_read(tmp_path):
    """SubjectFiles pickled before the file digests were recorded read their files as before
    (the class has a default): an untouched file is read, a touched one refused."""
    paths = _save(tmp_path, _series())
    subjects = validate_subjects(paths, lazy=True)
    subjects.__dict__.pop("file_digests", None)  # as unpickled from an older version
    old = pickle.loads(pickle.dumps(subjects))
    np.testing.assert_array_equal(old[1], _as_read(paths)[1])
    _rewritten_later(paths[1])
    with pytest.raises(FileChangedError, match=r"sub-01\.npy changed after it was checked "
                                               r"\(its size or modification time differ"):
        old[1]


def test_files_named_from_the_home_folder_are_stamped_too(tmp_path, monkeypatch):
    """"~/sub-01.npy" read as the home folder's file had no stamp (its name is no file), so a
    rewrite of it was not seen."""
    monkeypatch.setenv("HOME", str(tmp_path))
    paths = _save(tmp_path, _series())
    subjects = validate_subjects([f"~/{os.path.basename(p)}" for p in paths], lazy=True)
    assert subjects.paths == [type(subjects.paths[0])(p) for p in paths]
    assert all(stamp is not None for stamp in subjects.stamps)
    np.save(paths[1], _series(seed=1)[1].astype(np.float32))
    _rewritten_later(paths[1])
    with pytest.raises(FileChangedError, match="sub-01.npy changed after it was checked"):
        subjects[1]


@pytest.mark.parametrize("kind", ["npy", "tsv"])
def test_a_file_grown_while_its_resampled_windows_stream_is_named(tmp_path, kind,
                                                                 monkeypatch):
    """A resampled series is read whole and checked against the length fit saw: one with
    frames appended since then no longer matches the window table, and is named (also where
    its stamp does not show the change)."""
    paths = _save(tmp_path, _series(), kind)
    subjects = validate_subjects(paths, lazy=True)
    monkeypatch.setattr(subjects, "stamps", None)
    prep = Preprocessor(16, window="sliding", stride=6, t_r=1.0, target_t_r=1.5).fit(subjects)
    longer = np.concatenate([_series()[1], _series()[0]])
    _save(tmp_path, [_series()[0], longer], kind)  # sub-01 rewritten 40 frames longer
    with pytest.raises(ValueError, match=rf"sub-01\.{kind}: subject 1 has 92 frames, not the "
                                         "52 it had; the file changed after fit checked it"):
        prep.read_window(subjects, 1, 0)


def test_a_file_cut_short_while_its_windows_stream_is_named(tmp_path, monkeypatch):
    """A .npy window is read by its frames alone: one that no longer has all of them (the file
    rewritten shorter, where its stamp does not show it) is named, not padded into a window
    (12 frames of 16 are more than min_frames)."""
    paths = _save(tmp_path, _series())
    subjects = validate_subjects(paths, lazy=True)
    monkeypatch.setattr(subjects, "stamps", None)
    prep = Preprocessor(16, window="sliding", stride=6).fit(subjects)
    assert prep.reads_window_only(subjects)
    _save(tmp_path, [_series()[0], _series()[1][:28]])  # sub-01: 28 of its 52 frames
    with pytest.raises(ValueError, match=r"sub-01\.npy: subject 1 is shorter than the 52 "
                                         r"frames it had: frames 16 to 31 are not all there"):
        prep.read_window(subjects, 1, 16)


@pytest.mark.parametrize("subject", [0, 1])
def test_a_file_given_other_regions_before_transform_is_refused_by_its_subject(tmp_path,
                                                                              subject):
    """transform reads files one at a time into one array: a file rewritten with other
    regions since it was checked gets the region error, not numpy's broadcasting error (also
    where its stamp does not show the change, as in files checked without stamps). The count
    is the one checked, not subject 0's: subject 0 was told "subject 0 has 7 regions (last
    axis) but subject 0 has 8"."""
    paths = _save(tmp_path, _series())
    subjects = validate_subjects(paths, lazy=True)
    subjects.stamps = None
    prep = Preprocessor(16).fit(subjects)
    np.save(paths[subject], _series()[subject][:, :-1].astype(np.float32))
    with pytest.raises(ValueError, match=rf"sub-0{subject}\.npy: subject {subject} has "
                                         rf"{N_REGIONS - 1} regions, not the {N_REGIONS} it had; "
                                         r"the file changed after it was checked"):
        prep.transform(subjects)


def test_files_checked_already_and_too_short_for_a_later_check_are_named(tmp_path):
    paths = _save(tmp_path, _series())  # subject 2 has 14 frames
    checked = validate_subjects(paths, lazy=True)
    assert validate_subjects(checked, min_timepoints=14, lazy=True) is checked
    with pytest.raises(ValueError, match=r"subject 2 \(.*sub-02\.npy\) has 14 timepoint\(s\); "
                                         r"at least 15 are needed"):
        validate_subjects(checked, min_timepoints=15, lazy=True)


def test_files_checked_leniently_are_checked_again_by_a_stricter_check(tmp_path):
    """As checked arrays are: files accepted with constant regions were taken as checked, so
    an estimator's default check let the constant regions through."""
    series = _series()
    series[1][:, 2] = 1.0
    paths = _save(tmp_path, series)
    lenient = validate_subjects(paths, lazy=True, allow_constant=True)
    assert validate_subjects(lenient, lazy=True, allow_constant=True) is lenient
    for lazy in (True, False):
        with pytest.raises(ValueError, match=r"sub-01\.npy: subject 1: 1 region\(s\) have a "
                                             r"constant signal \(indices \[2\]\)"):
            validate_subjects(lenient, lazy=lazy)
    strict = validate_subjects(paths[::2], lazy=True)
    assert validate_subjects(strict, lazy=True) is strict


def test_subjects_checked_already_with_other_regions_are_refused_at_transform(tmp_path):
    """Validated subjects (files or converted arrays) are not checked again, but their
    region count is still compared with the fitted one."""
    embedder = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(
        _series(lengths=(40, 52, 30, 37)))
    fewer = [x[:, :-1] for x in _series(lengths=(40, 52, 30, 37))]
    for checked in (validate_subjects(_save(tmp_path, fewer), lazy=True),
                    validate_subjects(fewer, lazy=True)):
        with pytest.raises(ValueError, match=rf"X has {N_REGIONS - 1} features, but "
                                             rf"BrainJEPAEmbedder is expecting {N_REGIONS}"):
            embedder.transform(checked)


def test_upper_case_npy_files_are_read_a_window_at_a_time(tmp_path):
    """``.NPY`` files are .npy files (memory-mapped): a window reads only its frames."""
    series = _series()
    for i, x in enumerate(series):
        with open(tmp_path / f"sub-{i:02d}.NPY", "wb") as file:
            np.save(file, x.astype(np.float32))
    subjects = validate_subjects(str(tmp_path / "sub-*"), lazy=True)
    prep = Preprocessor(16, window="sliding", stride=6).fit(subjects)
    assert prep.reads_window_only(subjects) and prep.streams(subjects)
    windows, _ = prep.transform(subjects)
    index, starts = prep.window_table(subjects.n_timepoints)
    for k in (0, len(index) - 1):
        np.testing.assert_array_equal(prep.read_window(subjects, index[k], starts[k]),
                                      windows[k])


def _pretrainer(**params):
    settings = dict(gradients=np.random.default_rng(1).standard_normal((N_REGIONS, 3)),
                    model_size=dict(embed_dim=16, depth=1, num_heads=2), patch_size=4,
                    n_frames=16, stride=8, predictor_depth=1, n_epochs=2, batch_size=4,
                    device="cpu", verbose=0, random_state=0, drop_path_rate=0.1)
    settings.update(params)
    return BrainJEPAPretrainer(**settings)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_pretraining_on_files_trains_exactly_as_on_their_arrays(tmp_path, num_workers):
    paths = _save(tmp_path, _series())
    arrays = _as_read(paths)
    from_arrays = _pretrainer().fit(arrays)
    from_files = _pretrainer(num_workers=num_workers).fit(str(tmp_path / "*.npy"))
    assert from_files.history_ == from_arrays.history_
    for key, value in from_arrays.model_.state_dict().items():
        assert torch.equal(from_files.model_.state_dict()[key], value), key
    np.testing.assert_array_equal(from_files.preprocessor_.median_,
                                  from_arrays.preprocessor_.median_)
    np.testing.assert_array_equal(from_files.transform(paths), from_arrays.transform(arrays))


@pytest.fixture
def spawned_workers():
    """Loader workers started as on macOS and Windows, by "spawn": what they are sent must
    pickle (no lambda, no local function) and what they run must import."""
    import multiprocessing

    previous = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("spawn", force=True)
    yield
    multiprocessing.set_start_method(previous, force=True)


def test_spawned_loader_workers_read_files_as_the_main_process_does(tmp_path, spawned_workers):
    """Pretraining and fine-tuning on files with a spawned worker train the model trained
    without workers."""
    paths = _save(tmp_path, _series())
    alone, spawned = (_pretrainer(n_epochs=1, num_workers=n).fit(paths) for n in (0, 1))
    for key, value in alone.model_.state_dict().items():
        assert torch.equal(spawned.model_.state_dict()[key], value), key
    alone, spawned = (
        BrainJEPAClassifier(tiny_module(), max_epochs=1, batch_size=4, verbose=0,
                            random_state=0, iterator_train__num_workers=n).fit(paths, [0, 1] * 2)
        for n in (0, 1))
    for key, value in alone.module_.state_dict().items():
        assert torch.equal(spawned.module_.state_dict()[key], value), key


def test_text_files_are_cut_in_memory_unless_their_windows_exceed_the_budget(tmp_path,
                                                                             monkeypatch):
    """A window of a text file costs a parse of the whole file: a corpus whose windows fit
    the budget is parsed a fixed number of times per fit, however many epochs; past the
    budget it streams (reads grow with the epochs), and both train the same model."""
    paths = _save(tmp_path, _series(), kind="tsv")
    reads = []
    original = files.read_subject_file
    for module in (files, validation):
        monkeypatch.setattr(module, "read_subject_file",
                            lambda path: reads.append(path) or original(path))
    runs, in_memory, streamed = {}, preprocessing.IN_MEMORY_WINDOW_BYTES, 0
    for budget in (in_memory, streamed):
        monkeypatch.setattr(preprocessing, "IN_MEMORY_WINDOW_BYTES", budget)
        for n_epochs in (1, 3):
            reads.clear()
            history = _pretrainer(n_epochs=n_epochs).fit(paths).history_
            runs[budget, n_epochs] = (len(reads), history)
    assert runs[in_memory, 1][0] == runs[in_memory, 3][0]
    assert runs[streamed, 3][0] > runs[streamed, 1][0] > runs[in_memory, 1][0]
    assert runs[in_memory, 3][1] == runs[streamed, 3][1]


def test_files_cut_in_memory_hold_the_windows_and_one_subject_at_a_time(tmp_path):
    """Long text files, one centred window each: transform holds the windows and one
    subject, not every subject's series (40 x 3000 x 8 float64 = 7.7 MB)."""
    import tracemalloc

    paths = _save(tmp_path, _series(lengths=[3000] * 40), kind="tsv")
    subjects = validate_subjects(paths, lazy=True)
    preprocessor = Preprocessor(32, window="center").fit(subjects)
    tracemalloc.start()
    try:
        windows, subject_index = preprocessor.transform(subjects)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert windows.shape == (40, 32, N_REGIONS) and subject_index.tolist() == list(range(40))
    assert windows.dtype == np.float32 and subject_index.dtype == np.int64  # as for arrays
    assert peak < 2e6, peak
    np.testing.assert_array_equal(windows, preprocessor.transform(_as_read(paths))[0])


def test_files_with_headers_are_checked_against_the_first_header_met(tmp_path):
    """A file without a header first: the headers after it must still agree."""
    x = _series(lengths=(20, 20, 20))
    np.save(tmp_path / "sub-00.npy", x[0])
    names = [f"roi{r}" for r in range(N_REGIONS)]
    pd.DataFrame(x[1], columns=names).to_csv(tmp_path / "sub-01.tsv", sep="\t", index=False)
    pd.DataFrame(x[2], columns=names[::-1]).to_csv(tmp_path / "sub-02.tsv", sep="\t",
                                                   index=False)
    paths = sorted(str(p) for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match="sub-02.tsv: subject 2 has other region names"):
        validate_subjects(paths, lazy=True)
    assert list(validate_subjects(paths[:2], lazy=True).feature_names) == names


def test_header_names_lose_the_spaces_around_them(tmp_path):
    path = tmp_path / "sub-01.csv"
    path.write_text("roi_a, roi_b , roi_c\n1, 2, 3\n4, 5, 6\n")
    table = files.read_subject_file(path)
    assert list(table.columns) == ["roi_a", "roi_b", "roi_c"]
    np.testing.assert_array_equal(table.to_numpy(), [[1, 2, 3], [4, 5, 6]])


def test_a_run_on_files_resumes_the_run_saved_on_their_arrays(tmp_path):
    """The resume key hashes the subjects, not how they were given."""
    data = tmp_path / "data"
    data.mkdir()
    paths = _save(data, _series())
    state = tmp_path / "state"
    _pretrainer(n_epochs=1, checkpoint_dir=state).fit(_as_read(paths))
    resumed = _pretrainer(n_epochs=1, checkpoint_dir=state).fit(paths)
    assert len(list(state.iterdir())) == 1 and len(resumed.history_) == 1


@pytest.mark.parametrize("kind, num_workers", [("npy", 0), ("npy", 2), ("tsv", 0)])
def test_fine_tuning_on_files_reads_windows_in_the_loader_and_trains_as_on_arrays(
        tmp_path, monkeypatch, kind, num_workers):
    """.npy windows are read by the loader (never all in memory); text files, whose every
    window would parse the whole file, are cut at once when they fit the memory budget. The
    fine-tuned model is bitwise the one trained on the arrays the files hold."""
    paths = _save(tmp_path, _series(lengths=(40, 52, 14, 37, 30, 21)), kind=kind)
    arrays = _as_read(paths)
    labels = [0, 1, 0, 1, 1, 0]

    def classifier(**params):
        return BrainJEPAClassifier(tiny_module(), window="sliding", stride=4, max_epochs=2,
                                   batch_size=4, lr=1e-2, verbose=0, random_state=0, **params)

    from_arrays = classifier().fit(arrays, labels)
    whole = []
    real_transform = Preprocessor.transform
    monkeypatch.setattr(Preprocessor, "transform",
                        lambda self, subjects, **kwargs: whole.append(len(subjects))
                        or real_transform(self, subjects, **kwargs))
    from_files = classifier(iterator_train__num_workers=num_workers).fit(paths, labels)
    # .npy: no subject was cut into windows up front; text: all at once
    assert whole == ([] if kind == "npy" else [len(paths)])
    np.testing.assert_array_equal(from_files.history_[:, "train_loss"],
                                  from_arrays.history_[:, "train_loss"])
    for key, value in from_arrays.module_.state_dict().items():
        assert torch.equal(from_files.module_.state_dict()[key], value), key
    np.testing.assert_array_equal(from_files.predict_proba(paths),
                                  from_arrays.predict_proba(arrays))


def test_fine_tuning_on_files_scores_a_subject_split_as_on_arrays(tmp_path, monkeypatch):
    """Validation scores (skorch's, with and without its cache) read the held-out windows,
    a batch at a time: never a whole split at once."""
    from brainjepa_sk.finetune import SubjectValidSplit
    from brainjepa_sk.train import LazyWindowDataset

    stacked = []
    real_getitems = LazyWindowDataset.__getitems__
    monkeypatch.setattr(LazyWindowDataset, "__getitems__",
                        lambda self, indices: stacked.append(len(indices))
                        or real_getitems(self, indices))
    paths = _save(tmp_path, _series(lengths=(40, 52, 24, 37, 30, 21, 33, 45)))
    arrays = _as_read(paths)
    labels = [0, 1, 0, 1, 1, 0, 0, 1]
    for use_caching in (True, False):
        runs = [BrainJEPAClassifier(
            tiny_module(), window="sliding", stride=4, max_epochs=2, batch_size=4, lr=1e-2,
            verbose=0, random_state=0, use_caching=use_caching,
            train_split=SubjectValidSplit(0.25, stratified=True, random_state=0),
        ).fit(X, labels) for X in (arrays, paths)]
        for key in ("train_loss", "valid_loss", "valid_acc"):
            np.testing.assert_array_equal(runs[1].history_[:, key], runs[0].history_[:, key])
    assert max(stacked, default=0) <= 4


def test_transform_reads_a_chunk_of_subjects_at_a_time(tmp_path, monkeypatch):
    from brainjepa_sk import _base, preprocessing, validation

    paths = _save(tmp_path, _series(lengths=(40, 52, 24, 37, 30)))
    pretrainer = _pretrainer(n_epochs=1).fit(paths)
    expected = pretrainer.transform(_as_read(paths))
    reads = []
    original = files.read_subject_file
    for module in (files, validation):
        monkeypatch.setattr(module, "read_subject_file",
                            lambda path: reads.append(str(path)) or original(path))
    monkeypatch.setattr(_base, "SUBJECTS_PER_CHUNK", 2)
    monkeypatch.setattr(preprocessing, "SAVED_SCALE_CHECK_SUBJECTS", 3)
    chunks = []
    real_transform = Preprocessor._transform_one_at_a_time
    monkeypatch.setattr(Preprocessor, "_transform_one_at_a_time",
                        lambda self, subjects, rows=None, **kwargs: chunks.append(
                            len(subjects if rows is None else rows))
                        or real_transform(self, subjects, rows, **kwargs))
    np.testing.assert_array_equal(pretrainer.transform(paths), expected)
    assert chunks == [2, 2, 1]
    # checked once, then read once, chunk by chunk: the first SAVED_SCALE_CHECK_SUBJECTS (3)
    # are compared with the robust statistics of fit as the chunks scale them
    assert reads == paths + paths


def _counting_reads(monkeypatch):
    """The paths ``files.read_subject_file`` reads from now on, in order."""
    reads, original = [], files.read_subject_file
    for module in (files, validation):
        monkeypatch.setattr(module, "read_subject_file",
                            lambda path: reads.append(str(path)) or original(path))
    return reads


def _scale_warnings(caught):
    return [str(warning.message) for warning in caught
            if "on another scale than the data" in str(warning.message)]


def _fitted_with_robust_statistics(estimator, series):
    """An embedder or a classifier fitted on ``series`` with robust statistics, and its
    output method (``transform``, ``predict_proba``)."""
    if estimator == "embedder":
        fitted = BrainJEPAEmbedder(tiny_module(), normalization="robust",
                                   device="cpu").fit(series)
        return fitted, fitted.transform
    fitted = BrainJEPAClassifier(tiny_module(), normalization="robust", max_epochs=1,
                                 verbose=0, random_state=0).fit(series, [0, 1, 0, 1, 1])
    return fitted, fitted.predict_proba


@pytest.mark.parametrize("chunk_size", [2, 64])
@pytest.mark.parametrize("estimator", ["embedder", "classifier"])
def test_transform_and_predict_read_each_text_file_once_and_warn_of_its_scale(
        tmp_path, monkeypatch, estimator, chunk_size):
    """The warning of robust statistics that leave the series far above unit scale is decided
    from the first SAVED_SCALE_CHECK_SUBJECTS subjects as transform and predict scale them:
    it read and parsed them once more for the check (a call of one text file parsed it
    twice). Still one warning a call, also when the first subjects span several chunks."""
    from brainjepa_sk import _base

    series = _series(lengths=(40, 52, 24, 37, 30))
    fitted, output = _fitted_with_robust_statistics(estimator, series)
    off_scale = [x * 1e4 + 1e4 for x in series]
    paths = _save(tmp_path, off_scale, kind="tsv")
    subjects = validate_subjects(paths, lazy=True)  # read here once, as the check reads them
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("ignore")
        expected = output(_as_read(paths))
    monkeypatch.setattr(_base, "SUBJECTS_PER_CHUNK", chunk_size)
    monkeypatch.setattr(preprocessing, "SAVED_SCALE_CHECK_SUBJECTS", 3)
    reads = _counting_reads(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.testing.assert_array_equal(output(subjects), expected)
        assert reads == paths
        one = output(paths[:1])  # checked (one read), then transformed (one more)
    assert reads == paths + paths[:1] * 2
    np.testing.assert_array_equal(one, expected[:1])
    messages = _scale_warnings(caught)
    assert len(messages) == 2  # one a call
    assert messages[0].startswith(f"the series are on another scale than the data this "
                                  f"{type(fitted).__name__} was fitted on")


@pytest.mark.parametrize("scale, warned", [(1.0, 0), (1e4, 1)])
def test_fit_transform_of_a_robust_checkpoint_reads_the_first_subjects_once_for_its_warning(
        tmp_path, monkeypatch, scale, warned):
    """An embedder's fit warns of series that a checkpoint's robust statistics leave far
    above unit scale, reading the first SAVED_SCALE_CHECK_SUBJECTS subjects for it (it reads
    no other values of theirs); fit_transform read them so, and then its transform scaled them
    and warned again. Its transform decides alone, from the series it scales: one read fewer
    of each, one warning; fit alone still warns."""
    from brainjepa_sk.checkpoint import save_checkpoint

    series = _series(lengths=(40, 52, 24, 37, 30))
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(), preprocessing=Preprocessor(
        8, normalization="robust").fit(series).to_dict())
    (tmp_path / "subjects").mkdir()
    paths = _save(tmp_path / "subjects", [x * scale + scale for x in series], kind="tsv")
    monkeypatch.setattr(preprocessing, "SAVED_SCALE_CHECK_SUBJECTS", 3)
    embedder = BrainJEPAEmbedder(weights=path, device="cpu")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("ignore")
        expected = BrainJEPAEmbedder(weights=path, device="cpu").fit(
            _as_read(paths)).transform(_as_read(paths))
    reads = _counting_reads(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.testing.assert_array_equal(embedder.fit_transform(paths), expected)
    # validated by fit (one read), transformed (one more): the transform takes the subjects
    # fit validated (it checked them again, reading every file once more)
    assert reads == paths * 2
    assert len(_scale_warnings(caught)) == warned
    reads.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        BrainJEPAEmbedder(weights=path, device="cpu").fit(paths)
    assert reads == paths + paths[:3]  # validated, then the first ones read for the warning
    assert len(_scale_warnings(caught)) == warned


def _fit_transform_against_fit_then_transform(monkeypatch, make_estimator, X):
    """``make_estimator().fit_transform(X)`` next to ``fit(X).transform(X)`` of another: the
    outputs (which must be equal), and the subjects each subject check saw in the first,
    with the reads and the warnings of each way, keyed ``"fit_transform"`` and
    ``"fit, transform"``."""
    reads, checked, caught, n_reads = _counting_reads(monkeypatch), [], {}, {}
    real_check = validation.check_subject
    monkeypatch.setattr(validation, "check_subject", lambda i, *args, **kwargs: checked.append(i)
                        or real_check(i, *args, **kwargs))
    outputs = {}
    for call in ("fit, transform", "fit_transform"):
        estimator = make_estimator()
        reads.clear()
        checked.clear()
        with warnings.catch_warnings(record=True) as caught[call]:
            warnings.simplefilter("always")
            if call == "fit_transform":
                outputs[call] = estimator.fit_transform(X)
            else:
                outputs[call] = estimator.fit(X).transform(X)
        n_reads[call] = len(reads)
    np.testing.assert_array_equal(outputs["fit_transform"], outputs["fit, transform"])
    messages = {call: [str(warning.message) for warning in found]
                for call, found in caught.items()}
    return checked, reads, n_reads, messages


@pytest.mark.parametrize("kind", ["tsv", "arrays"])
def test_fit_transform_checks_x_once_with_the_warnings_of_fit_then_transform(
        tmp_path, monkeypatch, kind):
    """fit_transform's transform checked X again after its fit had checked it: every text
    file parsed once more (arrays converted and checked once more). It takes the subjects
    its fit checked, with the checks of transform against the fit: the warnings of fit then
    transform, in their order (here the region names that differ from the weights', which
    both warn of)."""
    series = _series(lengths=(40, 52, 24, 37, 30))
    module = tiny_module()
    module.region_names = [f"net{r}" for r in range(N_REGIONS)]  # the files say roi0, ...
    if kind == "tsv":
        X = _save(tmp_path, series, kind="tsv")
    else:
        names = [f"roi{r}" for r in range(N_REGIONS)]
        X = [pd.DataFrame(x, columns=names) for x in series]
    checked, reads, n_reads, messages = _fit_transform_against_fit_then_transform(
        monkeypatch, lambda: BrainJEPAEmbedder(weights=module, n_frames=8, device="cpu"), X)
    assert checked == list(range(len(series)))  # fit_transform's: once each, by fit
    if kind == "tsv":  # each file read once less: by transform's check
        assert n_reads["fit_transform"] == n_reads["fit, transform"] - len(X)
        assert reads == X * (n_reads["fit_transform"] // len(X))
    assert len(messages["fit_transform"]) == 2
    assert all("differ from those BrainJEPAEmbedder was pretrained on" in message
               for message in messages["fit_transform"])
    assert messages["fit_transform"] == messages["fit, transform"]


def test_fit_transform_of_a_robust_checkpoint_that_fails_in_fit_still_warns_first(
        tmp_path, monkeypatch):
    """fit_transform leaves the scale warning to its transform; a fit that fails (a subject
    too short, checked after the preprocessing is built) warns before its error all the same,
    as fit alone does."""
    from brainjepa_sk.checkpoint import save_checkpoint

    series = _series(lengths=(40, 52, 24, 37, 30))
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(), preprocessing=Preprocessor(
        8, normalization="robust").fit(series).to_dict())
    off_scale = [x * 1e4 + 1e4 for x in series]
    off_scale[4] = off_scale[4][:2]
    monkeypatch.setattr(preprocessing, "SAVED_SCALE_CHECK_SUBJECTS", 3)
    for call in ("fit", "fit_transform"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(ValueError, match="subject 4 is too short"):
                getattr(BrainJEPAEmbedder(weights=path, device="cpu"), call)(off_scale)
        assert len(_scale_warnings(caught)) == 1, call


def test_fit_transform_of_a_robust_checkpoint_that_transform_refuses_still_warns_first(
        tmp_path, monkeypatch):
    """A fit_transform whose transform refuses before it scales a series (pooling="tokens"
    with pandas output, which fit takes) warns of the checkpoint's scale before that error,
    as fit followed by transform does: the transform that was to decide it never scaled."""
    from brainjepa_sk.checkpoint import save_checkpoint

    series = _series(lengths=(40, 52, 24, 37, 30))
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(), preprocessing=Preprocessor(
        8, normalization="robust").fit(series).to_dict())
    off_scale = [x * 1e4 + 1e4 for x in series]
    monkeypatch.setattr(preprocessing, "SAVED_SCALE_CHECK_SUBJECTS", 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embedder = BrainJEPAEmbedder(weights=path, device="cpu", pooling="tokens")
        with pytest.raises(ValueError, match='pooling="tokens" gives one'):
            embedder.set_output(transform="pandas").fit_transform(off_scale)
    assert len(_scale_warnings(caught)) == 1


@pytest.mark.parametrize("kind", ["tsv", "npy"])
@pytest.mark.parametrize("scale, warned", [(1.0, 0), (1e4, 1)])
def test_a_fine_tuners_fit_on_a_robust_checkpoint_reads_the_first_subjects_once_for_its_warning(
        tmp_path, monkeypatch, kind, scale, warned):
    """A fine-tuner's fit warned of series that a checkpoint's robust statistics leave far
    above unit scale reading the first SAVED_SCALE_CHECK_SUBJECTS subjects for it, which its
    training windows, cut at once from text files, then read and scaled again. It decides
    from the series the windows scale: one read fewer of each, the same warning, once. Files
    read a window at a time by the loader (.npy) are still read for it."""
    from brainjepa_sk.checkpoint import save_checkpoint

    series = _series(lengths=(40, 52, 24, 37, 30))
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(), preprocessing=Preprocessor(
        8, normalization="robust").fit(series).to_dict())
    (tmp_path / "subjects").mkdir()
    paths = _save(tmp_path / "subjects", [x * scale + scale for x in series], kind=kind)
    monkeypatch.setattr(preprocessing, "SAVED_SCALE_CHECK_SUBJECTS", 3)
    reads = _counting_reads(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        BrainJEPAClassifier(path, max_epochs=1, verbose=0, random_state=0).fit(
            paths, [0, 1, 0, 1, 1])
    if kind == "tsv":  # validated, then cut into windows
        assert reads == paths * 2
    else:  # validated, the first ones read for the warning, then windows read by the loader
        assert reads[:len(paths) + 3] == paths + paths[:3]
    messages = _scale_warnings(caught)
    assert len(messages) == warned
    if warned:
        assert messages[0].startswith(f"the series are on another scale than the data {path} "
                                      "was pretrained on: its robust statistics")


def test_a_fine_tuners_fit_judges_the_scale_of_its_first_training_subjects(
        tmp_path, monkeypatch):
    """With subjects held out for validation (SubjectValidSplit), the scale warning judges the
    first SAVED_SCALE_CHECK_SUBJECTS training subjects, in their order, as the check of fit
    did: subjects held out on another scale are not warned of."""
    from brainjepa_sk.checkpoint import save_checkpoint
    from brainjepa_sk.finetune import SubjectValidSplit

    series = _series(lengths=(40, 52, 24, 37, 30, 33))
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(), preprocessing=Preprocessor(
        8, normalization="robust").fit(series).to_dict())
    y = [0, 1, 0, 1, 0, 1]
    fit_rows, held_out = SubjectValidSplit(0.4, random_state=0).split_subjects(y)
    monkeypatch.setattr(preprocessing, "SAVED_SCALE_CHECK_SUBJECTS", 3)
    # here the first subjects of the corpus are mostly held out
    assert set(held_out) == {1, 2, 5} and set(fit_rows) == {0, 3, 4}
    for off_scale, warned in ((held_out, 0), (fit_rows, 1)):
        given = [x * 1e6 + 1e6 if i in set(off_scale) else x for i, x in enumerate(series)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            BrainJEPAClassifier(path, max_epochs=1, verbose=0, random_state=0,
                                train_split=SubjectValidSplit(0.4, random_state=0)).fit(given, y)
        assert len(_scale_warnings(caught)) == warned, off_scale


@pytest.mark.parametrize("problem", ["too short", "beyond float32"])
@pytest.mark.parametrize("estimator", ["embedder", "classifier"])
def test_an_error_before_the_first_subjects_are_scaled_keeps_the_scale_warning(
        monkeypatch, estimator, problem):
    """The subjects' lengths are checked before any is read, and a subject is scaled before
    its windows are checked: a subject too short (here past the first
    SAVED_SCALE_CHECK_SUBJECTS) or one blown beyond float32 (the second) failed the call
    without the scale warning, which came first when the check read the first subjects
    itself."""
    series = _series(lengths=(40, 52, 24, 37, 30))
    fitted, output = _fitted_with_robust_statistics(estimator, series)
    off_scale = [x * 1e4 + 1e4 for x in series]
    if problem == "too short":
        off_scale[4], match = off_scale[4][:2], "subject 4 is too short"
    else:
        off_scale[1], match = off_scale[1] * 1e36, "subject 1 reaches .* beyond the float32"
    monkeypatch.setattr(preprocessing, "SAVED_SCALE_CHECK_SUBJECTS", 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=match):
            output(off_scale)
    assert len(_scale_warnings(caught)) == 1


@pytest.mark.parametrize("change, problem", [
    (lambda x: np.where(np.arange(len(x))[:, None] == 3, np.nan, x),
     r"subject 3: Input X\[3\] contains NaN"),
    (lambda x: x[:, :-1], rf"subject 3 has {N_REGIONS - 1} regions"),
    (lambda x: x[:10], "subject 3 has 10 frames, not the 37 it had"),
])
def test_transform_names_a_file_changed_since_its_check_by_its_path(tmp_path, monkeypatch,
                                                                    change, problem):
    """transform embeds the files a chunk of subjects at a time; one rewritten after transform
    checked it, unseen by its size and modification time, is named by its path and its index
    among all the subjects (it was 'subject 1: Input subjects[1]', its place in its chunk)."""
    from brainjepa_sk import _base

    paths = _save(tmp_path, _series(lengths=(40, 52, 14, 37, 30)))
    subjects = validate_subjects(paths, lazy=True)
    embedder = BrainJEPAEmbedder(tiny_module(), device="cpu").fit(subjects)
    monkeypatch.setattr(_base, "SUBJECTS_PER_CHUNK", 2)
    np.save(paths[3], change(_as_read(paths)[3]).astype(np.float32))
    monkeypatch.setattr(subjects, "stamps", None)  # the change unseen by its stamp
    with pytest.raises(ValueError, match=rf"sub-03\.npy: {problem}.*; the file changed after "
                                         r"it was checked \(rewritten while in use\?\)"):
        embedder.transform(subjects)


def test_transform_names_a_subject_beyond_float32_by_its_index_among_all():
    """An overflow after preprocessing names the subject by its index in X, not in its chunk
    of SUBJECTS_PER_CHUNK subjects."""
    from brainjepa_sk import _base

    X = [x - x.mean() for x in _series(lengths=(40, 52, 14, 37, 30))]
    X[3] = X[3] * 1e39
    embedder = BrainJEPAEmbedder(tiny_module(), normalization=None, device="cpu").fit(X[:3])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_base, "SUBJECTS_PER_CHUNK", 2)
        with pytest.raises(ValueError, match=r"subject 3 reaches .* beyond the float32 range"):
            embedder.transform(X)


@pytest.mark.parametrize("given", ["arrays", "files"])
def test_rows_of_checked_subjects_are_transformed_as_those_subjects(tmp_path, given):
    """Preprocessor.transform(subjects, rows=...) cuts the windows of those subjects alone,
    as a list of them would be cut; rows needs checked subjects, and at least one row."""
    series = _series(lengths=(40, 52, 14, 37, 30))
    subjects = validate_subjects(_save(tmp_path, series) if given == "files" else series,
                                 lazy=True)
    prep = Preprocessor(16, window="sliding", stride=6).fit(subjects)
    windows, subject_index = prep.transform(subjects, rows=range(2, 4))
    expected, expected_index = prep.transform([subjects[2], subjects[3]])
    np.testing.assert_array_equal(windows, expected)
    np.testing.assert_array_equal(subject_index, expected_index)
    assert set(subject_index) == {0, 1}
    with pytest.raises(TypeError, match="rows needs validated subjects"):
        prep.transform(series, rows=[0])
    with pytest.raises(ValueError, match="rows is empty"):
        prep.transform(subjects, rows=[])
    # a repeated row gives its windows again, numbered by its place in rows
    windows, subject_index = prep.transform(subjects, rows=np.array([3, 3]))
    np.testing.assert_array_equal(windows, np.concatenate([expected[expected_index == 1]] * 2))
    assert set(subject_index) == {0, 1}
    # indices, not anything int() takes: 1.7 and True had been read as subject 1, -1 as the
    # last subject (named "subject -1" in errors), and 5 failed with a bare IndexError
    for rows, error, match in [([1.7], TypeError, "rows must hold ints"),
                               ([True], TypeError, "rows must hold ints"),
                               ([-1], IndexError, "rows holds -1, but the 5 subject"),
                               ([2, 5], IndexError, "rows holds 5, but the 5 subject.* 0 to 4")]:
        with pytest.raises(error, match=match):
            prep.transform(subjects, rows=rows)


@pytest.mark.parametrize("given", ["arrays", "files"])
def test_no_subjects_of_checked_ones_are_refused_as_empty(tmp_path, given):
    """An empty selection of checked subjects gets the error of an empty list, not numpy's."""
    from brainjepa_sk.validation import subject_rows

    X = _save(tmp_path, _series()) if given == "files" else _series()
    prep = Preprocessor(16).fit(_series())
    with pytest.raises(ValueError, match="subjects is empty: expected at least one subject"):
        prep.transform(subject_rows(validate_subjects(X, lazy=True), []))


@pytest.mark.parametrize("given", ["arrays", "files"])
def test_checked_subjects_are_refused_before_fit_or_with_other_regions_as_arrays_are(
        tmp_path, given):
    """Checked subjects, transformed one at a time, get the errors of a list of arrays."""
    series = _series()
    subjects = validate_subjects(_save(tmp_path, series) if given == "files" else series,
                                 lazy=True)
    with pytest.raises(NotFittedError, match="normalization='robust'.*call fit"):
        Preprocessor(16, normalization="robust").transform(subjects)
    fewer = Preprocessor(16).fit([x[:, :-1] for x in series])
    for X in (subjects, series):
        with pytest.raises(ValueError, match=rf"X has {N_REGIONS} features, but Preprocessor "
                                             rf"is expecting {N_REGIONS - 1} features"):
            fewer.transform(X)


def test_lazy_validation_of_arrays_converts_one_subject_at_a_time():
    X = make_subjects(n_subjects=5).astype(np.float32)
    lazy = validate_subjects(X, lazy=True)
    eager = validate_subjects(X)
    assert len(lazy) == 5 and all(np.shares_memory(s, X) for s in lazy.subjects)  # no copies
    for i in range(5):
        assert lazy[i].dtype == np.float64
        np.testing.assert_array_equal(lazy[i], eager[i])
    assert subjects_digest(lazy) == subjects_digest(eager)
    bad = X.copy()
    bad[3, 2, 1] = np.inf
    with pytest.raises(ValueError, match="subject 3"):
        validate_subjects(bad, lazy=True)  # checked up front, like the eager path


def test_subjects_checked_already_are_not_converted_again(monkeypatch):
    """The pretrainer hands its checked subjects to the GradientPositioner: checking them
    again converts nothing (a float32 corpus is never held again in float64)."""
    from brainjepa_sk import validation

    X = make_subjects(n_subjects=4).astype(np.float32)
    checked = validate_subjects(X, lazy=True)

    def no_conversion(self, index):
        raise AssertionError(f"subject {index} converted again")

    monkeypatch.setattr(validation.ConvertedSubjects, "__getitem__", no_conversion)
    assert validate_subjects(checked, lazy=True, min_timepoints=3) is checked
    with pytest.raises(ValueError, match="subject 0 has 12 timepoint"):
        validate_subjects(checked, lazy=True, min_timepoints=13)
    monkeypatch.undo()
    constant = list(X)
    constant[2] = constant[2].copy()
    constant[2][:, 1] = 1.0
    lenient = validate_subjects(constant, lazy=True, allow_constant=True)
    with pytest.raises(ValueError, match="subject 2"):  # a stricter check checks again
        validate_subjects(lenient, lazy=True)


def test_subjects_checked_lazily_come_back_as_arrays_when_checked_eagerly():
    """Only a lazy check keeps checked subjects as they are: an eager one gives its list of
    arrays, converted."""
    X = make_subjects(n_subjects=3).astype(np.float32)
    checked = validate_subjects(X, lazy=True)
    out = validate_subjects(checked)
    assert type(out) is list and len(out) == 3
    for array, x in zip(out, X):
        assert type(array) is np.ndarray and array.dtype == np.float64
        np.testing.assert_array_equal(array, x)


def test_the_transposed_hint_of_rows_of_files_looks_at_the_first_row_asked_for(tmp_path):
    """A region count other than the fit's says "looks transposed" by the length of the
    first subject transformed (rows[0]), not that of subject 0."""
    rng = np.random.default_rng(5)
    paths = [tmp_path / f"sub{i}.npy" for i in range(2)]
    for path, n_timepoints in zip(paths, (4, 30)):
        np.save(path, rng.standard_normal((n_timepoints, 6)))
    files = validate_subjects(paths, lazy=True)
    prep = Preprocessor(4, normalization=None).fit([rng.standard_normal((20, 4))])
    with pytest.raises(ValueError, match=r"has 6 features.*expecting 4.*\(it looks transposed\)"):
        prep.transform(files, rows=[0])
    with pytest.raises(ValueError, match=r"has 6 features.*expecting 4") as error:
        prep.transform(files, rows=[1])
    assert "transposed" not in str(error.value)


def test_dataframes_checked_already_keep_their_region_names():
    """An estimator handed checked DataFrames (as the pretrainer hands them to its
    GradientPositioner) records their columns as it records those of the DataFrames."""
    from types import SimpleNamespace

    names = [f"roi{r}" for r in range(N_REGIONS)]
    frames = [pd.DataFrame(x, columns=names) for x in make_subjects(n_subjects=3)]
    checked = validate_subjects(frames, lazy=True)
    for X in (frames, checked):
        estimator = SimpleNamespace()
        validate_subjects(X, estimator=estimator, lazy=True)
        assert estimator.n_features_in_ == N_REGIONS
        assert list(estimator.feature_names_in_) == names


def test_checked_subjects_keep_the_first_names_met_before_unnamed_arrays():
    """A DataFrame then arrays (no names, accepted after it): checked again, the subjects
    still have the DataFrame's names, not the last subject's lack of them."""
    from types import SimpleNamespace

    names = [f"roi{r}" for r in range(N_REGIONS)]
    X = make_subjects(n_subjects=3)
    subjects = [pd.DataFrame(X[0], columns=names), X[1], X[2]]
    checked = validate_subjects(subjects, lazy=True)
    for given in (subjects, checked):
        estimator = SimpleNamespace()
        validate_subjects(given, estimator=estimator, lazy=True)
        assert list(estimator.feature_names_in_) == names


def test_subjects_checked_already_come_back_in_the_dtype_asked_for():
    X = make_subjects(n_subjects=3)
    checked = validate_subjects(X, lazy=True)
    single = validate_subjects(checked, lazy=True, dtype=np.float32)
    assert len(single) == 3
    for i in range(3):
        assert single[i].dtype == np.float32
        np.testing.assert_array_equal(single[i], X[i].astype(np.float32))
    assert validate_subjects(checked, lazy=True, dtype=np.float64) is checked


def test_files_checked_already_come_back_in_the_dtype_asked_for(tmp_path):
    X = make_subjects(n_subjects=3)
    for i, x in enumerate(X):
        np.save(tmp_path / f"sub-{i}.npy", x)
    checked = validate_subjects(str(tmp_path / "sub-*.npy"), lazy=True)
    single = validate_subjects(checked, lazy=True, dtype=np.float32)
    assert single.paths == checked.paths and single.digest == checked.digest
    for i in range(3):
        assert single[i].dtype == single.frames(i, 0, 4).dtype == np.float32
        np.testing.assert_array_equal(single[i], X[i].astype(np.float32))
    assert checked.dtype == np.float64  # the caller's is left as it was
    assert validate_subjects(checked, lazy=True, dtype=np.float64) is checked


def test_scores_without_skorchs_cache_predict_the_held_out_windows_of_files(tmp_path):
    """skorch's scoring without its cache takes the held-out windows out of the windows read
    on demand and predicts each of them: exactly the windows, and outputs, of the arrays."""
    from skorch.callbacks import EpochScoring

    from brainjepa_sk.finetune import SubjectValidSplit

    paths = _save(tmp_path, _series(lengths=(20, 26, 14, 23, 17, 21)))
    labels = [0, 1, 0, 1, 1, 0]
    seen = {}

    def recorder(key):
        def scoring(net, X, y):
            seen[key] = net.predict_proba(X)
            return 0.0
        return scoring

    for key, X in (("arrays", _as_read(paths)), ("files", paths)):
        BrainJEPAClassifier(
            tiny_module(), window="sliding", stride=4, max_epochs=1, batch_size=4, lr=1e-2,
            verbose=0, random_state=0,
            train_split=SubjectValidSplit(0.34, stratified=True, random_state=0),
            callbacks=[EpochScoring(recorder(key), use_caching=False, name="recorded")],
        ).fit(X, labels)
    assert len(seen["files"]) == len(seen["arrays"]) > 0
    np.testing.assert_array_equal(seen["files"], seen["arrays"])


def test_files_stream_exactly_when_their_windows_exceed_the_memory_budget(tmp_path,
                                                                          monkeypatch):
    paths = _save(tmp_path, _series(), kind="tsv")
    subjects = validate_subjects(paths, lazy=True)
    prep = Preprocessor(16, window="sliding", stride=6).fit(subjects)
    size = prep.transform(_as_read(paths))[0].nbytes  # every window, float32
    monkeypatch.setattr(preprocessing, "IN_MEMORY_WINDOW_BYTES", size)
    assert not prep.streams(subjects)
    monkeypatch.setattr(preprocessing, "IN_MEMORY_WINDOW_BYTES", size - 1)
    assert prep.streams(subjects)
    assert not prep.streams(_as_read(paths))  # arrays are in memory already


def test_npy_files_mixed_with_text_files_are_cut_in_memory(tmp_path):
    """A window reads only its frames only when every file is a .npy file: one text file among
    them makes the corpus cut in memory (within the budget), with the windows of the arrays."""
    series = _series()
    paths = _save(tmp_path, series[:2]) + [str(tmp_path / "sub-02.tsv")]
    pd.DataFrame(series[2], columns=[f"roi{r}" for r in range(N_REGIONS)]).to_csv(
        paths[-1], sep="\t", index=False)
    subjects = validate_subjects(paths, lazy=True)
    prep = Preprocessor(16, window="sliding", stride=6).fit(subjects)
    assert not prep.reads_window_only(subjects) and not prep.streams(subjects)
    assert prep.reads_window_only(validate_subjects(paths[:2], lazy=True))
    windows, _ = prep.transform(subjects)
    np.testing.assert_array_equal(windows, prep.transform(_as_read(paths))[0])


def test_resampled_npy_files_are_cut_in_memory_rather_than_resampled_for_every_window(
        tmp_path):
    """A window of a resampled series needs the whole series resampled: such files, like text
    files, are read a window at a time only past the memory budget."""
    subjects = validate_subjects(_save(tmp_path, _series()), lazy=True)
    as_is = Preprocessor(16, window="sliding", stride=6).fit(subjects)
    assert as_is.reads_window_only(subjects) and as_is.streams(subjects)
    resampled = Preprocessor(16, window="sliding", stride=6, t_r=2.0,
                             target_t_r=1.5).fit(subjects)
    assert not resampled.reads_window_only(subjects) and not resampled.streams(subjects)


@pytest.mark.parametrize("given", ["arrays", "files"])
def test_statistics_of_some_subjects_read_only_those(tmp_path, given):
    """subject_rows, the view fine-tuning fits its statistics on (without held-out subjects),
    gives those subjects with their own lengths."""
    from brainjepa_sk.validation import subject_rows

    series = _series(lengths=(16, 24, 32, 40, 48, 56), seed=3)
    X = _save(tmp_path, series) if given == "files" else series
    subjects = validate_subjects(X, lazy=True)
    rows = [4, 1, 5]
    view = subject_rows(subjects, rows)
    assert len(view) == 3 and view.n_timepoints == [48, 24, 56]
    chosen = [np.asarray(subjects[k]) for k in rows]
    expected = Preprocessor(16, normalization="robust").fit(chosen)
    fitted = Preprocessor(16, normalization="robust").fit(view)
    np.testing.assert_array_equal(fitted.median_, expected.median_)
    np.testing.assert_array_equal(fitted.iqr_, expected.iqr_)


def test_subject_rows_refuses_the_rows_transform_refuses_with_its_messages():
    """subject_rows checks its rows as transform(rows=) does: int() had taken 1.7 and True as
    subject 1, and -1 as the last subject; an empty view is left to the preprocessing."""
    from brainjepa_sk.validation import subject_rows

    subjects = validate_subjects(_series(lengths=(16, 24, 32)), lazy=True)
    for rows, error, match in [([1.7], TypeError, "rows must hold ints"),
                               ([True], TypeError, "rows must hold ints"),
                               ([-1], IndexError, "rows holds -1, but the 3 subject"),
                               ([0, 3], IndexError, "rows holds 3, but the 3 subject.* 0 to 2")]:
        with pytest.raises(error, match=match):
            subject_rows(subjects, rows)
    assert subject_rows(subjects, np.array([2, 0])).n_timepoints == [32, 16]
    assert len(subject_rows(subjects, [])) == 0


def test_a_file_replaced_under_its_old_modification_time_is_told_by_its_size(tmp_path):
    """A file replaced by one of another length that carries the modification time checked
    (``cp -p`` and ``rsync -t`` keep the source's time; a coarse clock gives two writes one
    time): the size recorded with the time tells the change, and the read is refused."""
    paths = _save(tmp_path, _series())
    subjects = validate_subjects(paths, lazy=True)
    checked = os.stat(paths[1])
    np.save(paths[1], _series(lengths=(60,), seed=1)[0].astype(np.float32))
    os.utime(paths[1], ns=(checked.st_atime_ns, checked.st_mtime_ns))
    assert os.stat(paths[1]).st_size != checked.st_size
    with pytest.raises(FileChangedError, match=r"sub-01\.npy changed after it was checked "
                                               rf"\(it is now 60 timepoints x {N_REGIONS} regions, "
                                               rf"checked as 52 x {N_REGIONS}"):
        subjects[1]


def test_a_file_rewritten_while_it_was_checked_is_refused_at_its_next_read(tmp_path,
                                                                           monkeypatch):
    """A file's stamp is taken before the check reads it: a rewrite during that read (a
    writer still at work) shows at the next read, instead of the new series passing for the
    one checked (its length and digest are the old one's)."""
    from brainjepa_sk import validation

    paths = _save(tmp_path, _series(), "tsv")
    read = validation.read_subject_file

    def read_then_rewritten(path):
        series = read(path)
        if os.path.basename(path) == "sub-01.tsv":
            pd.DataFrame(_series(lengths=(60,), seed=1)[0],
                         columns=[f"roi{r}" for r in range(N_REGIONS)]).to_csv(
                path, sep="\t", index=False)
            _rewritten_later(path)
        return series

    monkeypatch.setattr(validation, "read_subject_file", read_then_rewritten)
    subjects = validate_subjects(paths, lazy=True)
    monkeypatch.undo()
    assert subjects.n_timepoints[1] == 52  # as it was read by the check
    with pytest.raises(FileChangedError, match=r"sub-01\.tsv changed after it was checked "
                                               r"\(it is now 60 timepoints"):
        subjects[1]


def test_a_file_whose_header_names_are_cut_otherwise_is_another_file(tmp_path):
    """A file written again with the same values under other region names is refused, even
    names that run together into the same letters ("a", "bc" and "ab", "c"): the digest that
    tells an unchanged series keeps the names apart."""
    values = _series(lengths=(20,))[0]
    rest = [f"roi{r}" for r in range(2, N_REGIONS)]
    path = tmp_path / "sub-00.tsv"
    pd.DataFrame(values, columns=["a", "bc", *rest]).to_csv(path, sep="\t", index=False)
    subjects = validate_subjects([str(path)], lazy=True)
    pd.DataFrame(values, columns=["ab", "c", *rest]).to_csv(path, sep="\t", index=False)
    _rewritten_later(path)
    with pytest.raises(FileChangedError, match=r"sub-00\.tsv changed after it was checked"):
        subjects[0]


@pytest.mark.parametrize("lazy", [False, True])
def test_a_file_named_twice_in_a_list_is_warned_of(tmp_path, lazy, monkeypatch):
    """One file twice in a list (a path written two ways, two globs' results joined) counted
    as two subjects without a word; a glob cannot name a file twice."""
    paths = _save(tmp_path, _series())
    monkeypatch.chdir(tmp_path)
    twice = [*paths, os.path.join(".", os.path.basename(paths[1]))]
    with pytest.warns(UserWarning, match=r"X\[1\] and X\[4\] are the same file \(.*sub-01\.npy "
                                         r"and \./sub-01\.npy\): each entry is a subject of its "
                                         r"own, so this one counts twice"):
        subjects = validate_subjects(twice, lazy=lazy)
    assert len(subjects) == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # outside fit (reset=False), a file twice gives its rows twice, as asked
        validate_subjects(twice, lazy=lazy, reset=False)
        validate_subjects(paths, lazy=lazy)
        validate_subjects(str(tmp_path / "sub-*.npy"), lazy=lazy)


def test_a_hard_link_in_a_list_is_the_same_file(tmp_path):
    """A hard link has a path of its own (its real path differs) but is the same file: the
    subject would count twice."""
    paths = _save(tmp_path, _series())
    link = tmp_path / "linked.npy"
    try:
        os.link(paths[2], link)
    except OSError as error:  # a file system without hard links
        pytest.skip(f"no hard links here: {error}")
    with pytest.warns(UserWarning, match=r"X\[2\] and X\[4\] are the same file"):
        validate_subjects([*paths, str(link)])


def test_files_without_inode_numbers_are_told_apart_by_path(tmp_path, monkeypatch):
    """Some Windows file systems give every file inode 0: files are then told apart by their
    real paths, not all taken for one."""
    paths = _save(tmp_path, _series())
    real_stat = os.stat

    def stat_without_inode(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        fields = list(result)
        fields[1] = 0  # st_ino
        return os.stat_result(fields)

    monkeypatch.setattr(os, "stat", stat_without_inode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_subjects(paths)
    with pytest.warns(UserWarning, match=r"X\[0\] and X\[4\] are the same file"):
        validate_subjects([*paths, paths[0]])


@pytest.mark.parametrize("chunk_size", [2, 64])
@pytest.mark.parametrize("off_scale, warned", [((0, 1, 2), 1), ((3, 4), 0)])
def test_transform_warns_of_the_scale_of_the_first_subjects_before_a_later_error(
        tmp_path, monkeypatch, off_scale, warned, chunk_size):
    """The scale warning of transform goes by the first SAVED_SCALE_CHECK_SUBJECTS subjects
    (by their index among all, across chunks), decided once they are scaled: an error of a
    later subject (its file changed since its check) does not lose it, also in the chunk of
    the first ones (it was decided once that chunk was done)."""
    from brainjepa_sk import _base

    series = _series(lengths=(40, 52, 24, 37, 30))
    embedder = BrainJEPAEmbedder(tiny_module(), normalization="robust",
                                 device="cpu").fit(series)
    paths = _save(tmp_path, [x * 1e4 + 1e4 if i in off_scale else x
                             for i, x in enumerate(series)])
    subjects = validate_subjects(paths, lazy=True)
    monkeypatch.setattr(_base, "SUBJECTS_PER_CHUNK", chunk_size)
    monkeypatch.setattr(preprocessing, "SAVED_SCALE_CHECK_SUBJECTS", 3)
    np.save(paths[4], _as_read(paths)[4][:10].astype(np.float32))
    monkeypatch.setattr(subjects, "stamps", None)  # the change unseen by its stamp
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="subject 4 has 10 frames, not the 30 it had"):
            embedder.transform(subjects)
    assert len(_scale_warnings(caught)) == warned


def _tiny_pretrainer(**params):
    return BrainJEPAPretrainer(
        gradients=np.random.default_rng(0).standard_normal((N_REGIONS, 3)),
        model_size=dict(embed_dim=8, depth=1, num_heads=2), patch_size=2, n_frames=8,
        predictor_depth=1, n_epochs=1, batch_size=4, device="cpu", verbose=0, random_state=0,
        **params)


@pytest.mark.parametrize("kind", ["tsv", "arrays"])
def test_a_pretrainers_fit_transform_checks_x_once_with_the_warnings_of_fit_then_transform(
        tmp_path, monkeypatch, kind):
    """The pretrainer's fit_transform was fit(X).transform(X): its transform checked X again,
    every text file parsed once more (arrays converted and checked once more). It takes the
    subjects its fit checked, with the checks of transform against the fit: the same output,
    and the warnings of fit then transform in their order (here one of fit, t_r over 20 s,
    and one of transform, the robust statistics of fit leaving subject 0, 1e4 times larger
    than the others, far above unit scale)."""
    series = _series(lengths=(40, 52, 24, 37, 30))
    series[0] = series[0] * 1e4 + 1e4
    if kind == "tsv":
        X = _save(tmp_path, series, kind="tsv")
    else:
        names = [f"roi{r}" for r in range(N_REGIONS)]
        X = [pd.DataFrame(x, columns=names) for x in series]
    monkeypatch.setattr(preprocessing, "SAVED_SCALE_CHECK_SUBJECTS", 1)
    checked, reads, n_reads, messages = _fit_transform_against_fit_then_transform(
        monkeypatch, lambda: _tiny_pretrainer(t_r=30, normalization="robust"), X)
    assert checked == list(range(len(series)))  # fit_transform's: once each, by fit
    if kind == "tsv":  # each file read twice less: by transform's check, and to cut its
        # windows, which the fit cut at once (see the test below)
        assert n_reads["fit_transform"] == n_reads["fit, transform"] - 2 * len(X)
        assert reads == X * (n_reads["fit_transform"] // len(X))
    assert len(messages["fit_transform"]) == 2
    assert messages["fit_transform"][0].startswith("t_r=30 s is long for fMRI")
    assert messages["fit_transform"][1].startswith("the series are on another scale")
    assert messages["fit_transform"] == messages["fit, transform"]


@pytest.mark.parametrize("normalization", ["robust", "global_zscore", "roi_zscore"])
def test_a_pretrainers_fit_transform_embeds_the_windows_its_fit_cut_from_files(
        tmp_path, monkeypatch, normalization):
    """Text files cut into training windows at once were read once more by the transform of
    fit_transform to cut the same windows: it embeds the fit's, and reads each file once by
    its check and once to cut the windows (the robust statistics of so small a corpus take
    the series of the check: see the test below). Where a file's
    stamp changed since its check (here touched between fit and transform), the transform
    reads them all, as before; a file rewritten is refused, as a read of it is."""
    from brainjepa_sk import _base

    series = _series(lengths=(40, 52, 24, 37, 30))
    paths = _save(tmp_path, series, kind="tsv")
    expected = _tiny_pretrainer(normalization=normalization).fit(paths).transform(paths)
    monkeypatch.setattr(_base, "SUBJECTS_PER_CHUNK", 2)
    reads = _counting_reads(monkeypatch)
    np.testing.assert_array_equal(
        _tiny_pretrainer(normalization=normalization).fit_transform(paths), expected)
    assert sorted(reads) == sorted(paths * 2)

    cut_by_fit = _base.windows_cut_by_fit

    def touched_first(estimator, subjects, path=paths[2]):
        modified = os.stat(path).st_mtime_ns + 10**9
        os.utime(path, ns=(modified, modified))
        return cut_by_fit(estimator, subjects)

    monkeypatch.setattr(_base, "windows_cut_by_fit", touched_first)
    reads.clear()
    np.testing.assert_array_equal(
        _tiny_pretrainer(normalization=normalization).fit_transform(paths), expected)
    # read again, all of them, as without the fit's windows
    assert sorted(reads) == sorted(paths * 3)

    def rewritten_first(estimator, subjects):
        pd.DataFrame(series[2][:20], columns=[f"roi{r}" for r in range(N_REGIONS)]).to_csv(
            paths[2], sep="\t", index=False)
        return cut_by_fit(estimator, subjects)

    monkeypatch.setattr(_base, "windows_cut_by_fit", rewritten_first)
    with pytest.raises(FileChangedError, match=r"sub-02\.tsv changed after it was checked"):
        _tiny_pretrainer(normalization=normalization).fit_transform(paths)


def test_a_pretrainers_fit_transform_stamps_each_file_once_to_embed_the_windows_its_fit_cut(
        tmp_path, monkeypatch):
    """The transform of fit_transform takes the windows its fit cut where no file's stamp
    changed since its check: it took every file's stamp (an os.stat) before its first chunk,
    and each again with its chunk. Once: the windows are those of the files as checked."""
    from brainjepa_sk import _base

    paths = _save(tmp_path, _series(lengths=(40, 52, 24, 37, 30)), kind="tsv")
    monkeypatch.setattr(_base, "SUBJECTS_PER_CHUNK", 2)
    stamped, chunking, stamp, chunks = [], [], files.file_stamp, _base.window_chunks
    monkeypatch.setattr(files, "file_stamp",
                        lambda path: (chunking and stamped.append(str(path))) or stamp(path))

    def watched(*args, **kwargs):
        chunking.append(True)
        try:
            yield from chunks(*args, **kwargs)
        finally:
            chunking.clear()

    monkeypatch.setattr(_base, "window_chunks", watched)
    embedded = _tiny_pretrainer().fit_transform(paths)
    assert sorted(stamped) == sorted(paths)
    np.testing.assert_array_equal(embedded, _tiny_pretrainer().fit(paths).transform(paths))


def test_a_pretrainers_fit_transform_embeds_the_series_checked_of_a_file_rewritten_during_it(
        tmp_path, monkeypatch):
    """The files are stamped once, when the transform of fit_transform begins: a file
    rewritten after its first chunk (here, the last subject, in the third chunk) is not read,
    and the embeddings are those of the series checked, as fit_transform's docstring and the
    user guide say (it raised FileChangedError while every chunk stamped its files again)."""
    from brainjepa_sk import _base

    series = _series(lengths=(40, 52, 24, 37, 30))
    paths = _save(tmp_path, series, kind="tsv")
    expected = _tiny_pretrainer().fit(paths).transform(paths)
    monkeypatch.setattr(_base, "SUBJECTS_PER_CHUNK", 2)
    chunks = _base.window_chunks

    def rewritten_after_the_first_chunk(*args, **kwargs):
        for number, chunk in enumerate(chunks(*args, **kwargs)):
            if number == 0:
                pd.DataFrame(series[4][:20] * 3, columns=[f"roi{r}" for r in range(N_REGIONS)]
                             ).to_csv(paths[4], sep="\t", index=False)
            yield chunk

    monkeypatch.setattr(_base, "window_chunks", rewritten_after_the_first_chunk)
    np.testing.assert_array_equal(_tiny_pretrainer().fit_transform(paths), expected)
    assert files.read_subject_file(paths[4]).shape == (20, N_REGIONS)  # rewritten indeed


@pytest.mark.parametrize("n_subjects", [1, 7])
def test_a_pretrainers_gradients_take_the_connectivity_of_the_check_of_its_files(
        tmp_path, monkeypatch, n_subjects):
    """A pretrainer that fits its GradientPositioner on X read every file once more for the
    group connectivity: it comes from the read of the check, a chunk of subjects at a time,
    and gives the gradients of the positioner fitted on the files, bit for bit. A file
    touched between the check and the gradients is read again (as checked, then used); one
    rewritten is refused; a subject whose correlation is not finite is named, as by the
    positioner."""
    from sklearn.base import clone

    from brainjepa_sk import gradients

    monkeypatch.setattr(gradients, "CONNECTIVITY_CHUNK", 3)
    series = _series(lengths=(40, 52, 24, 37, 30, 33, 45)[:n_subjects])
    paths = _save(tmp_path, series, kind="tsv")
    positioner = GradientPositioner(n_components=2, sparsity=0.5, random_state=0)
    expected = clone(positioner).fit(paths).gradients_
    reads = _counting_reads(monkeypatch)

    def fitted():
        return _pretrainer(n_epochs=1, gradients=positioner,
                           normalization="global_zscore").fit(paths)

    np.testing.assert_array_equal(fitted().gradients_, expected)
    assert sorted(reads) == sorted(paths * 2)  # checked, then cut into windows
    if n_subjects == 1:
        return
    real_fit_gradients = BrainJEPAPretrainer._fit_gradients

    def changed_first(change):
        def fit_gradients(self, *args):
            change()
            return real_fit_gradients(self, *args)
        monkeypatch.setattr(BrainJEPAPretrainer, "_fit_gradients", fit_gradients)

    changed_first(lambda: _rewritten_later(paths[4]))
    reads.clear()
    np.testing.assert_array_equal(fitted().gradients_, expected)
    assert sorted(reads) == sorted(paths * 2 + paths[4:5])

    def rewritten():
        pd.DataFrame(series[4][:20]).to_csv(paths[4], sep="\t", index=False)
        _rewritten_later(paths[4])

    changed_first(rewritten)
    with pytest.raises(FileChangedError, match=r"sub-04\.tsv changed after it was checked"):
        fitted()
    monkeypatch.setattr(BrainJEPAPretrainer, "_fit_gradients", real_fit_gradients)
    _save(tmp_path, [x * 1e200 if i == 4 else x for i, x in enumerate(series)], kind="tsv")
    for make in (lambda: clone(positioner).fit(paths), fitted):
        with pytest.raises(ValueError, match=r"^subject 4's correlation matrix holds NaN"):
            make()


@pytest.mark.parametrize("rewritten, error", [
    (2, r"sub-02\.tsv changed after it was checked"),  # in the chunk of subject 1
    (4, r"^subject 1's correlation matrix holds NaN"),  # in a chunk the fit never reads
])
def test_a_pretrainers_gradients_meet_the_errors_of_their_check_where_the_positioner_does(
        tmp_path, monkeypatch, rewritten, error):
    """The positioner's fit reads a chunk of subjects, then refuses a correlation that is
    not finite: a file rewritten in that chunk is refused first, one in a later chunk is
    never read. The connectivity of the check read every file changed since before its
    error was raised, so a later file rewritten came first."""
    from brainjepa_sk import gradients

    monkeypatch.setattr(gradients, "CONNECTIVITY_CHUNK", 3)
    series = _series(lengths=(40, 52, 24, 37, 30, 33, 45))
    series[1] = series[1] * 1e200
    paths = _save(tmp_path, series, kind="tsv")
    real_fit_gradients = BrainJEPAPretrainer._fit_gradients

    def fit_gradients(self, *args):
        pd.DataFrame(series[rewritten][:20]).to_csv(paths[rewritten], sep="\t", index=False)
        _rewritten_later(paths[rewritten])
        return real_fit_gradients(self, *args)

    monkeypatch.setattr(BrainJEPAPretrainer, "_fit_gradients", fit_gradients)
    positioner = GradientPositioner(n_components=2, sparsity=0.5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow, of 1e200 squared
        with pytest.raises((ValueError, FileChangedError), match=error):
            _pretrainer(n_epochs=1, gradients=positioner,
                        normalization="global_zscore").fit(paths)


def test_a_pretrainers_robust_statistics_take_the_series_its_check_read(tmp_path,
                                                                         monkeypatch):
    """The robust statistics read every file once more: a corpus of at most
    ROBUST_SAMPLE_FRAMES frames in all (each one sampled) is kept as its check reads it, and
    given to them a subject at a time; a larger one is read as before; the statistics are
    the same either way. A file touched between the check and the statistics is read again
    (as checked, then used), one rewritten is refused; so with normalization=None, whose
    scale warning reads them."""
    series = _series(lengths=(40, 52, 24, 37, 30))  # 183 frames
    paths = _save(tmp_path, series, kind="tsv")
    reads = _counting_reads(monkeypatch)

    def statistics(budget):
        monkeypatch.setattr(preprocessing, "ROBUST_SAMPLE_FRAMES", budget)
        expected = Preprocessor(16, normalization="robust").fit(_as_read(paths))
        reads.clear()
        fitted = _pretrainer(n_epochs=1, normalization="robust").fit(paths).preprocessor_
        np.testing.assert_array_equal(fitted.median_, expected.median_)
        np.testing.assert_array_equal(fitted.iqr_, expected.iqr_)
        return sorted(reads)

    assert statistics(183) == sorted(paths * 2)  # checked, then cut into windows
    assert statistics(182) == sorted(paths * 3)  # one frame too many to keep: read for them
    monkeypatch.setattr(preprocessing, "ROBUST_SAMPLE_FRAMES", 183)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # None warns of the scale of these series
        reads.clear()
        _pretrainer(n_epochs=1, normalization=None).fit(paths)
    assert sorted(reads) == sorted(paths * 2)

    real_fit = Preprocessor.fit

    def changed_first(change):
        def fit(self, subjects):
            change()
            return real_fit(self, subjects)
        monkeypatch.setattr(Preprocessor, "fit", fit)

    changed_first(lambda: _rewritten_later(paths[3]))
    assert statistics(183) == sorted(paths * 2 + paths[3:4])

    def rewritten():
        pd.DataFrame(series[3][:20]).to_csv(paths[3], sep="\t", index=False)
        _rewritten_later(paths[3])

    changed_first(rewritten)
    with pytest.raises(FileChangedError, match=r"sub-03\.tsv changed after it was checked"):
        _pretrainer(n_epochs=1, normalization="robust").fit(paths)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_a_pretrainers_robust_statistics_keep_no_npy_file_open(tmp_path):
    """A float64 .npy file is memory-mapped when read, and its check's array is a view of
    the map: series kept for the robust statistics held every file of the corpus open, and
    one of more files than the process may open (macOS allows 256) failed with 'Too many
    open files'. An .npy corpus is read again rather than kept: the fit runs with a few
    files open at a time."""
    resource = pytest.importorskip("resource")
    series = _series(lengths=(12,) * 48)
    for i, x in enumerate(series):
        np.save(tmp_path / f"sub-{i:02d}.npy", x)  # float64: read as a map of the file
    paths = sorted(str(p) for p in tmp_path.iterdir())
    expected = Preprocessor(16, normalization="robust").fit(_as_read(paths))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # fewer files than the corpus may be open beside those open now
    limit = len(os.listdir("/proc/self/fd")) + len(paths) // 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, soft), hard))
    try:
        fitted = _pretrainer(n_epochs=1, normalization="robust").fit(paths).preprocessor_
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    np.testing.assert_array_equal(fitted.median_, expected.median_)
    np.testing.assert_array_equal(fitted.iqr_, expected.iqr_)


class _ReadsHeldInTraining(Callback):
    """Records the objects holding what the check of X read that are alive as training
    begins."""

    def on_train_begin(self, loop):
        from brainjepa_sk.gradients import _GroupConnectivity

        gc.collect()
        self.held = [type(held).__name__ for held in gc.get_objects() if isinstance(
            held, (_GroupConnectivity, validation.CheckedSeries,
                   validation.SubjectsReadByCheck))]


def test_a_pretrainers_training_holds_nothing_of_what_its_check_read(tmp_path):
    """The group connectivity computed as the check read X's files, and the series it kept
    for the robust statistics, are used before training: the connectivity's sums (two
    n_regions x n_regions matrices) stayed held until the fit's end, with the series of a
    chunk where its files were read again."""
    paths = _save(tmp_path, _series(lengths=(40, 52, 24, 37, 30)), kind="tsv")
    fitted = _pretrainer(n_epochs=1, normalization="robust",
                         gradients=GradientPositioner(n_components=2, sparsity=0.5,
                                                      random_state=0),
                         callbacks=[_ReadsHeldInTraining()]).fit(paths)
    assert fitted.callbacks_[0].held == []


def test_a_pretrainers_fit_transform_refused_by_transform_after_fit_as_fit_then_transform():
    """A fit_transform whose transform refuses (pooling="tokens" with pandas output, which fit
    takes) raises transform's error after a fit that stays, as fit followed by transform."""
    series = _series(lengths=(40, 52, 24, 37, 30))
    for call in ("fit, transform", "fit_transform"):
        pretrainer = _tiny_pretrainer(pooling="tokens").set_output(transform="pandas")
        with pytest.raises(ValueError, match='pooling="tokens" gives one'):
            if call == "fit_transform":
                pretrainer.fit_transform(series)
            else:
                pretrainer.fit(series).transform(series)
        assert hasattr(pretrainer, "model_"), call


@pytest.mark.parametrize("normalization, values_read", [
    ("global_zscore", False), ("roi_zscore", False), ("robust", True), (None, True)])
def test_a_preprocessor_fit_reads_checked_files_only_where_it_learns_from_their_values(
        tmp_path, monkeypatch, normalization, values_read):
    """Preprocessor.fit read every subject whatever the normalization; the z-scores learn
    only the region count, which checked files know: they are not read (a fit of subject_rows
    of them, as fine-tuning's without its held-out subjects, neither). The robust statistics
    and the scale warning of None read them as before. Fitted alike either way."""
    from brainjepa_sk.validation import subject_rows

    series = _series(lengths=(40, 52, 24, 37, 30))
    paths = _save(tmp_path, series, kind="tsv")
    subjects = validate_subjects(paths, lazy=True)
    reads = _counting_reads(monkeypatch)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")  # None warns of the scale of these series
        fitted = Preprocessor(8, normalization=normalization).fit(subjects)
        assert reads == (paths if values_read else [])
        reads.clear()
        view = Preprocessor(8, normalization=normalization).fit(subject_rows(subjects, [3, 1]))
        assert reads == ([paths[3], paths[1]] if values_read else [])
        on_arrays = Preprocessor(8, normalization=normalization).fit(_as_read(paths))
    for found in (fitted, view):
        for name, value in on_arrays.to_dict().items():
            if name not in ("median_", "iqr_") or found is fitted:
                np.testing.assert_array_equal(found.to_dict()[name], value)


@pytest.mark.parametrize("estimator", ["embedder", "classifier", "pretrainer"])
def test_a_fit_with_a_zscore_normalization_reads_each_file_once_less(
        tmp_path, monkeypatch, estimator):
    """Every fit with normalization="global_zscore" read each file once more to fit the
    preprocessing: the embedder's twice (its check, the preprocessing), the fine-tuners'
    and the pretrainer's three times (and then the training windows). Once less now."""
    series = _series(lengths=(40, 52, 24, 37, 30))
    paths = _save(tmp_path, series, kind="tsv")
    reads = _counting_reads(monkeypatch)
    if estimator == "embedder":
        BrainJEPAEmbedder(tiny_module(), n_frames=8, device="cpu").fit(paths)
        expected = paths  # checked
    elif estimator == "classifier":
        BrainJEPAClassifier(tiny_module(), normalization="global_zscore", max_epochs=1,
                            verbose=0, random_state=0).fit(paths, [0, 1, 0, 1, 1])
        expected = paths + paths  # checked, then cut into training windows
    else:
        _tiny_pretrainer(normalization="global_zscore").fit(paths)
        expected = paths + paths
    assert reads == expected


def test_a_zscore_fit_on_checked_files_reads_those_changed_since_and_raises_as_their_read(
        tmp_path, monkeypatch):
    """Checked files unchanged since (their size and modification time) are not read by a
    z-scoring fit; one touched since is read (the same series: fitted), one rewritten still
    fails the fit with the FileChangedError that its read raised, leaving the estimator as
    it was, though the estimator's fit reads no file otherwise (X checked beforehand). Files
    checked without stamps are read and checked as before (a change had gone unnoticed)."""
    series = _series(lengths=(40, 52, 24, 37, 30))
    paths = _save(tmp_path, series, kind="tsv")
    subjects = validate_subjects(paths, lazy=True)
    modified = os.stat(paths[1]).st_mtime_ns
    os.utime(paths[1], ns=(modified + 10**9, modified + 10**9))  # touched
    reads = _counting_reads(monkeypatch)
    embedder = BrainJEPAEmbedder(tiny_module(), n_frames=8, device="cpu").fit(subjects)
    assert reads == [paths[1]]
    reads.clear()
    embedder.fit(subjects)
    assert reads == []  # its new stamp kept by that read
    pd.DataFrame(series[2][::-1], columns=[f"roi{r}" for r in range(N_REGIONS)]).to_csv(
        paths[2], sep="\t", index=False)
    os.utime(paths[2], ns=(modified + 2 * 10**9, modified + 2 * 10**9))
    fitted = embedder.preprocessor_
    with pytest.raises(FileChangedError, match=r"sub-02\.tsv changed after it was checked"):
        embedder.fit(subjects)
    assert embedder.preprocessor_ is fitted
    # files checked without stamps (by an older version) are read and checked as before
    pd.DataFrame(series[2][:, :-1]).to_csv(paths[2], sep="\t", index=False)
    subjects.stamps = None
    with pytest.raises(ValueError, match=r"subject 2 has \d+ regions .* but subject 0 has"):
        embedder.fit(subjects)
    assert embedder.preprocessor_ is fitted


def test_nan_in_files_let_through_by_assume_finite_fails_a_resampling_fit(tmp_path):
    """Under scikit-learn's assume_finite=True NaN in a file passes the check; a fit that
    resamples meets it when it reads the subjects for its preprocessing, and fails. A
    z-scoring fit reads them so for this alone: without the read, the fit would pass and its
    transform blame the file for a change ("the file changed after it was checked")."""
    import sklearn

    series = _series(lengths=(40, 52, 24, 37, 30))
    paths = _save(tmp_path, series, kind="tsv")
    bad = [x.copy() for x in series]
    bad[3][4, 2] = np.nan
    (tmp_path / "bad").mkdir()
    bad_paths = _save(tmp_path / "bad", bad, kind="tsv")
    embedder = BrainJEPAEmbedder(tiny_module(), n_frames=8, t_r=2.0, model_t_r=1.0,
                                 device="cpu").fit(paths)
    before = embedder.transform(paths)
    with sklearn.config_context(assume_finite=True):
        with pytest.raises(ValueError, match=r"^subject 3 holds NaN.*assume_finite=True"):
            embedder.fit(bad_paths)
    np.testing.assert_array_equal(embedder.transform(paths), before)  # still the first fit


@pytest.mark.parametrize("normalization", ["global_zscore", "roi_zscore"])
def test_nan_in_files_checked_under_assume_finite_fails_a_zscore_fit_outside_it(
        tmp_path, normalization):
    """Files checked under scikit-learn's assume_finite=True hold values never checked to be
    finite: a z-scoring fit outside it reads them, and names the NaN at fit (without the
    read, the fit would pass and its transform blame the file for a change)."""
    import sklearn

    series = _series(lengths=(40, 52, 24))
    series[1][4, 2] = np.nan
    paths = _save(tmp_path, series)
    with sklearn.config_context(assume_finite=True):
        unchecked = validate_subjects(paths, lazy=True)
    with pytest.raises(ValueError, match=r"subject 1: Input X\[1\] contains NaN"):
        Preprocessor(8, normalization=normalization).fit(unchecked)
    embedder = BrainJEPAEmbedder(tiny_module(), n_frames=8, normalization=normalization,
                                 device="cpu").fit(_series(lengths=(40, 52, 24), seed=1))
    fitted = embedder.preprocessor_
    with pytest.raises(ValueError, match=r"subject 1: Input X\[1\] contains NaN"):
        embedder.fit(unchecked)
    assert embedder.preprocessor_ is fitted


def test_files_checked_and_zscore_fitted_under_assume_finite_are_not_read(tmp_path,
                                                                         monkeypatch):
    """Files checked under assume_finite=True and fitted under it, at their TR: the fit's
    read would let NaN through as the check did, so a z-scoring fit reads none."""
    import sklearn

    paths = _save(tmp_path, _series(lengths=(40, 52, 24)))
    with sklearn.config_context(assume_finite=True):
        files = validate_subjects(paths, lazy=True)
        reads = _counting_reads(monkeypatch)
        assert Preprocessor(8, normalization="roi_zscore").fit(files).n_regions_ == N_REGIONS
    assert reads == []


@pytest.mark.parametrize("n_subjects", [1, 7])
def test_a_gradient_positioners_fit_on_files_reads_each_file_once(tmp_path, monkeypatch,
                                                                  n_subjects):
    """GradientPositioner().fit(files) read every file twice, for its check and then for the
    group connectivity: that comes from the check's read, a chunk of subjects at a time, as
    the pretrainer takes it, with the gradients of the same series given as arrays, bit for
    bit. A file touched between the check and the group is read again (as checked, then
    used); one rewritten is refused; a subject whose correlation is not finite is named
    where it was, after a reference that does not fit."""
    from sklearn.base import clone

    from brainjepa_sk import gradients

    monkeypatch.setattr(gradients, "CONNECTIVITY_CHUNK", 3)
    series = _series(lengths=(40, 52, 24, 37, 30, 33, 45)[:n_subjects])
    paths = _save(tmp_path, series, kind="tsv")
    positioner = GradientPositioner(n_components=2, sparsity=0.5, random_state=0)
    expected = clone(positioner).fit(_as_read(paths))
    reads = _counting_reads(monkeypatch)
    fitted = clone(positioner).fit(paths)
    for name in ("gradients_", "lambdas_", "group_connectivity_"):
        np.testing.assert_array_equal(getattr(fitted, name), getattr(expected, name))
    assert reads == paths
    if n_subjects == 1:
        return
    real_check_params = GradientPositioner._check_params

    def changed_after_the_check(change):
        def check_params(self, n_regions=None):
            if n_regions is not None:  # the second check, after X's
                change()
            return real_check_params(self, n_regions)
        monkeypatch.setattr(GradientPositioner, "_check_params", check_params)

    changed_after_the_check(lambda: _rewritten_later(paths[4]))
    reads.clear()
    np.testing.assert_array_equal(clone(positioner).fit(paths).gradients_, expected.gradients_)
    assert reads == paths + paths[4:5]

    def rewritten():
        pd.DataFrame(series[4][:20]).to_csv(paths[4], sep="\t", index=False)
        _rewritten_later(paths[4])

    changed_after_the_check(rewritten)
    with pytest.raises(FileChangedError, match=r"sub-04\.tsv changed after it was checked"):
        clone(positioner).fit(paths)
    monkeypatch.setattr(GradientPositioner, "_check_params", real_check_params)
    _save(tmp_path, [x * 1e200 if i == 4 else x for i, x in enumerate(series)], kind="tsv")
    with pytest.raises(ValueError, match=r"^subject 4's correlation matrix holds NaN"):
        clone(positioner).fit(paths)
    with pytest.raises(ValueError, match=r"^reference has 3 rows but X has"):
        clone(positioner).set_params(reference=np.ones((3, 2))).fit(paths)

"""Resampling, windowing, padding and scaling of ROI time series (brainjepa_sk.preprocessing)."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from brainjepa_sk.preprocessing import (
    NORMALIZATIONS,
    WINDOW_STRATEGIES,
    Preprocessor,
    resample,
    subject_lengths,
    warn_long_t_r,
)


def _arange_series(n_timepoints, n_regions=3):
    """Frame t of region r holds 100 * t + r, so a window's values tell which frames it holds."""
    return 100.0 * np.arange(n_timepoints)[:, None] + np.arange(n_regions)[None, :]


def _frames(window):
    """Frame numbers held by one window of an arange series (values as float32 are exact here)."""
    return (window[:, 0] / 100).round().astype(int).tolist()


def _iqr(x, axis):
    q25, q75 = np.percentile(x, [25, 75], axis=axis)
    return q75 - q25


# ---------------------------------------------------------------------- resample


def test_public_constants():
    assert NORMALIZATIONS == ("global_zscore", "roi_zscore", "robust", None)
    assert WINDOW_STRATEGIES == ("center", "first", "sliding")


def test_resample_length_ukbiobank_recipe():
    x = np.random.default_rng(0).standard_normal((300, 5))
    y = resample(x, 0.735, 2.205)
    assert y.shape == (100, 5)
    assert y.dtype == np.float64


def test_resample_upsampling_length():
    x = np.random.default_rng(0).standard_normal((50, 2))
    assert resample(x, 2.0, 1.0).shape == (100, 2)
    # 0.72 / 2.0 = 9 / 25: ceil(1200 * 9 / 25) frames.
    assert resample(np.zeros((1200, 2)), 0.72, 2.0).shape == (432, 2)


def test_resample_keeps_slow_sine():
    t_r, target_t_r, period = 0.735, 2.205, 60.0
    t_in = np.arange(300) * t_r
    # An offset as in raw BOLD, and two regions with different phases.
    x = 500.0 + np.stack([np.sin(2 * np.pi * t_in / period), np.cos(2 * np.pi * t_in / period)], 1)
    y = resample(x, t_r, target_t_r)
    t_out = np.arange(len(y)) * target_t_r
    expected = 500.0 + np.stack(
        [np.sin(2 * np.pi * t_out / period), np.cos(2 * np.pi * t_out / period)], 1
    )
    inner = slice(10, -10)
    np.testing.assert_allclose(y[inner], expected[inner], atol=0.05)
    # The offset does not make the edges ring towards zero.
    np.testing.assert_allclose(y, expected, atol=0.5)


def test_resample_removes_aliasing():
    # A 0.3 Hz oscillation is above the Nyquist frequency of TR 2.205 s (0.227 Hz): it must be
    # filtered out, not folded back as a slow wave as plain decimation would.
    t_in = np.arange(600) * 0.735
    x = np.sin(2 * np.pi * 0.3 * t_in)[:, None]
    y = resample(x, 0.735, 2.205)
    assert np.abs(y[10:-10]).max() < 0.05
    assert np.abs(x[::3][10:-10]).max() > 0.5


@pytest.mark.parametrize("t_r, target_t_r", [(None, 2.0), (2.0, None), (None, None), (2.0, 2.0),
                                            (2.0, 2.0002)])  # a ratio of 1 within 1/64
def test_resample_identity(t_r, target_t_r):
    x = np.random.default_rng(0).standard_normal((40, 3))
    assert resample(x, t_r, target_t_r) is x
    # x itself, whatever its type: not a float64 copy
    single = x.astype(np.float32)
    assert resample(single, t_r, target_t_r) is single


@pytest.mark.parametrize("t_r, up, down", [(0.72, 16, 49), (0.735, 1, 3), (0.8, 21, 58),
                                           (1.0, 29, 64), (0.74, 1, 3), (1.11, 1, 2)])
def test_resample_ratios_are_the_fractions_the_user_guide_gives(t_r, up, down):
    """To the UK Biobank model's 2.205 s, each TR becomes the fraction the user guide lists
    (a denominator of at most 64): a series of n frames comes out ceil(n * up / down) long."""
    n = 1000
    expected = -(-n * up // down)
    assert resample(np.zeros((n, 2)), t_r, 2.205).shape == (expected, 2)
    assert Preprocessor(16, t_r=t_r, target_t_r=2.205).resampled_length(n) == expected


@pytest.mark.parametrize("t_r, target_t_r", [(0.0, 2.0), (-1.0, 2.0), (2.0, 0), (2.0, -0.5),
                                             (np.inf, 2.0), (2.0, np.inf)])
def test_resample_rejects_non_positive_tr(t_r, target_t_r):
    with pytest.raises(ValueError, match="positive"):
        resample(np.zeros((10, 2)), t_r, target_t_r)


def test_resample_refuses_a_stack_of_subjects_rather_than_resampling_across_them():
    """A 3-D X had been resampled along its first axis, the subjects: twice as many
    "subjects", each a mix of two, which an estimator then took without a word."""
    X = np.random.default_rng(0).standard_normal((4, 10, 3))
    with pytest.raises(ValueError, match=r"x has 3 dimensions \(shape \(4, 10, 3\)\), but "
                                         r"resample takes one subject's series .*Resample each "
                                         r"subject: \[resample\(x, t_r, target_t_r\) for x in X\]"):
        resample(X, 2.0, 1.0)
    assert np.stack([resample(x, 2.0, 1.0) for x in X]).shape == (4, 20, 3)


@pytest.mark.parametrize("x, error, message", [
    (np.where(np.eye(10, 3) == 1, np.nan, 0.0), ValueError,
     "x holds 3 NaN or infinite value.s., first at timepoint 0, region 0: the filter would "
     "spread them over the whole region"),
    (np.ones((10, 3)) + 1j, ValueError, r"x holds complex numbers: pass the real part"),
    (np.ones((10, 3), dtype=bool), TypeError, "x holds booleans"),
    (np.array([["a", "b"]] * 5), TypeError, "x is not numeric"),
    (None, TypeError, "x must be one subject's time series, an array .* got NoneType"),
])
def test_resample_refuses_values_that_are_no_signal(x, error, message):
    """NaN had turned the whole region into NaN, complex numbers had lost their imaginary part
    and booleans had been resampled as 0 and 1, all without a word; None had failed in SciPy."""
    with pytest.raises(error, match=message):
        resample(x, 2.0, 1.0)


def test_one_tr_per_subject_is_told_to_resample_them_first():
    """A TR per subject (a pooled multi-site dataset) had been refused as "must be a float"
    only; the message now says how to bring the subjects to one TR."""
    from _estimators import tiny_module

    from brainjepa_sk import BrainJEPAEmbedder, BrainJEPAPretrainer

    subjects = [np.zeros((20, 8)), np.zeros((30, 8))]
    for estimator in (Preprocessor(8, t_r=[0.72, 2.0], target_t_r=2.0),
                      BrainJEPAEmbedder(tiny_module(), t_r=np.array([0.72, 2.0]), device="cpu"),
                      BrainJEPAPretrainer(t_r=(0.72, 2.0), device="cpu")):
        with pytest.raises(ValueError, match=rf"'t_r' parameter of {type(estimator).__name__} "
                                             r"must be a float .*Got a sequence of 2 instead: "
                                             r"t_r is the one TR of every subject; resample "):
            estimator.fit(subjects)


def test_resample_keeps_the_region_names_of_a_dataframe():
    """A resampled DataFrame had come back as a bare array: a site resampled to the common TR
    lost its region names, and with them the check of its columns' order against the other
    sites' DataFrames, so a table in another atlas order was taken without a word."""
    from _estimators import tiny_module

    from brainjepa_sk import BrainJEPAEmbedder

    rng = np.random.default_rng(0)
    names = ["a", "b", "c"]
    table = pd.DataFrame(rng.standard_normal((50, 3)), columns=names, index=np.arange(50) * 2.0)
    resampled = resample(table, 2.0, 1.0)
    assert isinstance(resampled, pd.DataFrame) and list(resampled.columns) == names
    assert resampled.index.equals(pd.RangeIndex(100))  # the frames' times changed
    np.testing.assert_array_equal(resampled.to_numpy(), resample(table.to_numpy(), 2.0, 1.0))

    site_a = [pd.DataFrame(rng.standard_normal((40, 3)), columns=names) for _ in range(2)]
    site_b = resample(table[["b", "a", "c"]], 2.0, 1.0)  # another column order
    embedder = BrainJEPAEmbedder(tiny_module(n_regions=3), device="cpu")
    with pytest.raises(ValueError, match="other region names"):
        embedder.fit([*site_a, site_b])


def test_resample_rejects_extreme_ratio():
    with pytest.raises(ValueError, match="ratio"):
        resample(np.zeros((10, 2)), 0.01, 2.0)
    # refused with the parameters, before any series: a saved preprocessing too
    with pytest.raises(ValueError, match="cannot resample from TR 0.01 s to TR 2.0 s"):
        Preprocessor.from_dict({**Preprocessor(10).to_dict(), "t_r": 0.01, "target_t_r": 2.0})
    # upsampling as much: a TR in milliseconds would make every series hundreds of times longer
    with pytest.raises(ValueError, match=r"from TR 720.0 s to TR 2.205 s: the ratio is larger than "
                                         r"64 \(TRs are in seconds: is one of them in millisec"):
        resample(np.zeros((10, 2)), 720, 2.205)
    assert resample(np.zeros((10, 2)), 2.0, 0.05).shape == (400, 2)  # 40 times: resampled


@pytest.mark.parametrize("t_r, target_t_r", [(1.0, 100.0), (1.0, 65.0), (0.02, 2.0)])
def test_a_ratio_between_1_128_and_1_64_is_refused_not_resampled_at_1_64(t_r, target_t_r):
    """limit_denominator(64) rounds such a ratio up to 1/64: resample(x, 1.0, 100.0) gave 4
    frames of 200 (not 2), where the docstring promises a ratio below 1/64 is refused."""
    with pytest.raises(ValueError, match=rf"from TR {t_r} s to TR {target_t_r} s: the ratio is "
                                         r"smaller than 1/64"):
        resample(np.zeros((200, 2)), t_r, target_t_r)
    with pytest.raises(ValueError, match="smaller than 1/64"):
        Preprocessor(10, t_r=t_r, target_t_r=target_t_r).fit([np.zeros((200, 2))])
    # 1/64 itself is a ratio taken, float rounding of it included
    assert resample(np.zeros((640, 2)), 1.0, 64.0).shape == (10, 2)
    assert resample(np.zeros((640, 2)), 0.03, 1.92).shape == (10, 2)


def test_a_ratio_just_above_64_is_refused_as_one_just_below_1_64_is():
    """limit_denominator(64) rounded a ratio up to 64 + 1/128 down to 64: 64.001 was taken,
    where the docstring refuses a ratio above 64 (and 1/64.001 is refused)."""
    with pytest.raises(ValueError, match=r"from TR 64.001 s to TR 1.0 s: the ratio is larger "
                                         r"than 64"):
        resample(np.zeros((10, 2)), 64.001, 1.0)
    with pytest.raises(ValueError, match="smaller than 1/64"):
        resample(np.zeros((10, 2)), 1.0, 64.001)
    # 64 itself is a ratio taken
    assert resample(np.zeros((10, 2)), 1.92, 0.03).shape == (640, 2)


def test_resamples_as_compares_the_resampling_factors_not_the_trs():
    """None and the model's TR both leave series as they are; a TR within the ratios'
    denominators of another resamples as it does; a refused TR is no match."""
    halving = Preprocessor(8, t_r=0.72, target_t_r=1.44)
    assert halving.resamples_as(0.72) and halving.resamples_as(0.72 + 1e-9)
    assert not halving.resamples_as(1.44) and not halving.resamples_as(None)
    assert not halving.resamples_as(-1.0) and not halving.resamples_as(1e-6)  # refused
    as_is = Preprocessor(8, t_r=None, target_t_r=1.44)
    assert as_is.resamples_as(None) and as_is.resamples_as(1.44) and as_is.resamples_as(1.44001)
    assert not as_is.resamples_as(0.72) and not as_is.resamples_as("1.44")


# ---------------------------------------------------------------------- windows


def test_window_first():
    windows, index = Preprocessor(4, window="first", normalization=None).fit_transform(
        [_arange_series(10)]
    )
    assert windows.shape == (1, 4, 3) and windows.dtype == np.float32
    assert _frames(windows[0]) == [0, 1, 2, 3]
    np.testing.assert_array_equal(windows[0], _arange_series(10)[:4])
    assert index.dtype == np.int64 and index.tolist() == [0]


@pytest.mark.parametrize("n_timepoints, first", [(10, 3), (11, 3), (4, 0), (5, 0)])
def test_window_center(n_timepoints, first):
    windows, _ = Preprocessor(4, window="center", normalization=None).fit_transform(
        [_arange_series(n_timepoints)]
    )
    # start = (T - F) // 2
    assert _frames(windows[0]) == list(range(first, first + 4))


def test_window_sliding_exact_stride():
    windows, index = Preprocessor(4, window="sliding", normalization=None).fit_transform(
        [_arange_series(12)]
    )
    assert [_frames(w) for w in windows] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert index.tolist() == [0, 0, 0]


def test_window_sliding_last_window_aligned_to_end():
    prep = Preprocessor(4, window="sliding", stride=3, normalization=None)
    windows, index = prep.fit_transform([_arange_series(12), _arange_series(4)])
    starts = [_frames(w)[0] for w in windows]
    # 0, 3, 6 by the stride, then 8 so that frames 10 and 11 are covered; a series of exactly
    # n_frames gives one window.
    assert starts == [0, 3, 6, 8, 0]
    assert index.tolist() == [0, 0, 0, 0, 1]


@pytest.mark.parametrize("n_timepoints", [8, 9, 10, 17, 23, 40])
@pytest.mark.parametrize("stride", [1, 3, 5, 8])
def test_window_sliding_covers_every_frame(n_timepoints, stride):
    n_frames = 8
    windows, _ = Preprocessor(
        n_frames, window="sliding", stride=stride, normalization=None
    ).fit_transform([_arange_series(n_timepoints)])
    covered = sorted({f for w in windows for f in _frames(w)})
    assert covered == list(range(n_timepoints))
    last = n_timepoints - n_frames
    expected = len(range(0, last + 1, stride)) + (last % stride != 0)
    assert len(windows) == expected
    for w in windows:  # each window is n_frames consecutive frames
        assert np.all(np.diff(_frames(w)) == 1)


def test_subject_index_with_several_subjects_of_different_lengths():
    subjects = [_arange_series(n) for n in (8, 20, 12)]
    _, index = Preprocessor(8, window="sliding", normalization=None).fit_transform(subjects)
    assert index.tolist() == [0, 1, 1, 1, 2, 2]
    for strategy in ("first", "center"):
        _, index = Preprocessor(8, window=strategy, normalization=None).fit_transform(subjects)
        assert index.tolist() == [0, 1, 2]


def test_resampling_happens_before_windowing():
    x = np.random.default_rng(0).standard_normal((300, 4))
    prep = Preprocessor(100, t_r=0.735, target_t_r=2.205, window="first", normalization=None)
    windows, _ = prep.fit_transform([x])
    np.testing.assert_allclose(windows[0], resample(x, 0.735, 2.205), rtol=1e-6, atol=1e-6)
    # Only one TR given: no resampling.
    windows, _ = Preprocessor(100, t_r=0.735, window="first", normalization=None).fit_transform([x])
    np.testing.assert_allclose(windows[0], x[:100], rtol=1e-6)


# ---------------------------------------------------------------------- padding


@pytest.mark.parametrize("window", WINDOW_STRATEGIES)
def test_padding_with_region_means(window):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 5)) + np.arange(5)
    windows, index = Preprocessor(
        10, window=window, min_frames=6, normalization=None
    ).fit_transform([x])
    assert windows.shape == (1, 10, 5) and index.tolist() == [0]
    np.testing.assert_allclose(windows[0, :7], x, rtol=1e-6)  # originals first, untouched
    np.testing.assert_allclose(windows[0, 7:], np.tile(x.mean(axis=0), (3, 1)), rtol=1e-6)


def test_default_min_frames_is_half_of_n_frames():
    prep = Preprocessor(10, normalization=None)
    windows, _ = prep.fit_transform([_arange_series(5)])  # 5 >= 10 // 2: padded
    assert windows.shape == (1, 10, 3)
    with pytest.raises(ValueError, match="4 frames"):
        prep.transform([_arange_series(4)])


def test_default_min_frames_rounds_half_of_an_odd_n_frames_down():
    prep = Preprocessor(7, normalization=None)  # min_frames = 7 // 2 = 3
    windows, _ = prep.fit_transform([_arange_series(3)])  # padded with the region means
    assert windows.shape == (1, 7, 3)
    np.testing.assert_array_equal(windows[0, 3:], np.broadcast_to([100.0, 101.0, 102.0], (4, 3)))
    with pytest.raises(ValueError, match=r"too short: 2 frames; at least min_frames=3"):
        prep.transform([_arange_series(2)])


def test_default_min_frames_of_a_one_frame_window_is_one_frame():
    # 1 // 2 is 0: a series of no frames must still be too short, not given a window
    prep = Preprocessor(1, normalization=None)
    message = r"subject 0 is too short: 0 frames; at least min_frames=1"
    with pytest.raises(ValueError, match=message):
        prep.check_lengths([np.zeros((0, 3))])
    with pytest.raises(ValueError, match=message):
        prep.window_table([0])


def test_min_frames_equal_to_n_frames_is_accepted_and_refuses_padding_altogether():
    """The user guide's way to refuse padding: ``min_frames=n_frames`` (only longer is refused)."""
    x = np.random.default_rng(0).standard_normal((8, 3))
    prep = Preprocessor(8, min_frames=8, normalization=None)
    windows, _ = prep.fit_transform([x])
    np.testing.assert_allclose(windows[0], x, rtol=1e-6)
    with pytest.raises(ValueError, match=r"too short: 7 frames; at least min_frames=8"):
        prep.transform([x[:7]])
    assert Preprocessor.from_dict(prep.to_dict()).min_frames == 8


def test_too_short_error_names_subject_lengths_and_trs():
    prep = Preprocessor(40, t_r=0.735, target_t_r=2.205, min_frames=30, normalization=None).fit(
        [np.random.default_rng(0).standard_normal((200, 3))]
    )
    with pytest.raises(ValueError) as info:
        prep.transform([np.ones((200, 3)), np.ones((60, 3))])
    message = str(info.value)
    assert "subject 1" in message
    assert "20 frames after resampling" in message  # 60 frames at TR 0.735 -> 20 at TR 2.205
    assert "60 frames" in message
    assert "0.735" in message and "2.205" in message
    assert "min_frames=30" in message


def test_check_lengths_counts_the_frames_left_after_resampling():
    prep = Preprocessor(16, t_r=0.5, target_t_r=2.0, min_frames=8)
    prep.check_lengths([np.zeros((32, 3))])  # 8 frames at TR 2 s: enough
    with pytest.raises(ValueError,
                       match=r"subject 1 is too short: 7 frames after resampling \(28 frames"):
        prep.check_lengths([np.zeros((32, 3)), np.zeros((28, 3))])


def test_the_window_table_and_read_window_name_both_lengths_of_a_short_series_as_transform():
    prep = Preprocessor(16, t_r=0.5, target_t_r=2.0, min_frames=8, normalization=None)
    message = r"subject 0 is too short: 7 frames after resampling \(28 frames at t_r=0.5"
    with pytest.raises(ValueError, match=message):
        prep.transform([np.zeros((28, 3))])
    with pytest.raises(ValueError, match=message):
        prep.window_table([28])
    with pytest.raises(ValueError, match=message):
        prep.read_window([np.zeros((28, 3))], 0, 0)


def test_check_lengths_refuses_bad_parameters_before_looking_at_the_lengths():
    # min_frames above n_frames is the error, not a subject "too short" for it
    with pytest.raises(ValueError, match=r"min_frames=10 is longer than a window"):
        Preprocessor(8, min_frames=10).check_lengths([np.zeros((9, 3))])
    with pytest.raises(ValueError, match=r"stride=9 is longer than a window"):
        Preprocessor(8, window="sliding", stride=9).check_lengths([np.zeros((20, 3))])


def test_subject_lengths_counts_rows_and_gives_zero_for_what_is_not_an_array():
    subjects = [np.zeros((7, 3)), [[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0]], "text", None]
    assert subject_lengths(subjects) == [7, 2, 0, 0, 0]


def test_every_subject_too_short_is_named_at_once_with_the_min_frames_that_pads_them_all():
    """Pooled sites with short scans: only the first subject too short had been named, with the
    min_frames that pads it alone, so the others were met one failed fit at a time."""
    from _estimators import tiny_module

    from brainjepa_sk import BrainJEPAEmbedder

    rng = np.random.default_rng(0)
    lengths = [40, 5, 40, 3, 6, *[4] * 11]
    subjects = [rng.standard_normal((n, 2)) for n in lengths]
    prep = Preprocessor(32, t_r=1.0, target_t_r=2.0)  # halves the lengths
    with pytest.raises(ValueError, match=re.escape(
            "subject 1 is too short: 3 frames after resampling (5 frames at t_r=1.0, "
            "target_t_r=2.0); so are 13 more, with their frames: subject 3 (2), subject 4 (3), "
            "subject 5 (2),") + ".*" + re.escape("subject 11 (2), subject 12 (2), ...; at least "
                                                 "min_frames=16 are needed") + ".*"
            + re.escape("leave them out, or pass min_frames=2 or less to have them padded")):
        prep.check_lengths(subjects)
    kept = [x for i, x in enumerate(subjects) if lengths[i] >= 32]
    prep.check_lengths(kept)
    Preprocessor(32, t_r=1.0, target_t_r=2.0, min_frames=2).check_lengths(subjects)
    # one too short: said as before, of the subject alone
    with pytest.raises(ValueError, match="leave the subject out, or pass min_frames=3 or less "
                                         "to have it padded$"):
        prep.check_lengths(subjects[:3])
    # an estimator's transform names them all too, with the cure a new fit
    embedder = BrainJEPAEmbedder(tiny_module(2), device="cpu").fit(subjects[:1])  # 8 frames
    with pytest.raises(ValueError, match=r"^subject 1 is too short: 3 frames; so are 1 more, "
                                         r"with their frames: subject 3 \(2\); at least "
                                         r"min_frames=4 .*fit the estimator with min_frames=2 or "
                                         r"less to have them padded"):
        embedder.transform([subjects[0], subjects[1][:3], subjects[2], subjects[1][:2]])


def test_the_window_table_takes_a_series_of_exactly_min_frames_as_transform_does():
    prep = Preprocessor(10, window="sliding", stride=8, min_frames=6, normalization=None)
    windows, index = prep.fit_transform([_arange_series(6), _arange_series(12)])
    subject_index, starts = prep.window_table([6, 12])
    assert subject_index.tolist() == index.tolist() == [0, 1, 1]
    assert starts.tolist() == [_frames(w)[0] for w in windows] == [0, 0, 2]
    with pytest.raises(ValueError, match="subject 1 is too short: 5 frames"):
        prep.window_table([6, 5])


# ---------------------------------------------------------------------- normalization


def _series(rng, n_timepoints=60, n_regions=6):
    # Regions with very different offsets and scales.
    return (
        rng.standard_normal((n_timepoints, n_regions)) * np.arange(1, n_regions + 1)
        + np.arange(n_regions) * 10
    )


def test_global_zscore():
    rng = np.random.default_rng(2)
    windows, _ = Preprocessor(20, window="sliding", normalization="global_zscore").fit_transform(
        [_series(rng), _series(rng, 45)]
    )
    for w in windows.astype(np.float64):
        assert abs(w.mean()) < 1e-5
        assert abs(w.std() - 1) < 1e-5
        # Global, not per region: the regions keep their different offsets.
        assert np.ptp(w.mean(axis=0)) > 1


def test_roi_zscore():
    rng = np.random.default_rng(3)
    windows, _ = Preprocessor(20, window="sliding", normalization="roi_zscore").fit_transform(
        [_series(rng), _series(rng, 45)]
    )
    w = windows.astype(np.float64)
    np.testing.assert_allclose(w.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(w.std(axis=1), 1, atol=1e-5)


def test_no_normalization_keeps_values():
    x = _series(np.random.default_rng(4))
    windows, _ = Preprocessor(60, normalization=None).fit_transform([x])
    np.testing.assert_allclose(windows[0], x, rtol=1e-6)


def test_robust_statistics_of_regions_in_several_percentile_blocks(monkeypatch):
    """The percentiles are computed a block of regions at a time: every region is in one."""
    from brainjepa_sk import preprocessing

    monkeypatch.setattr(preprocessing, "_PERCENTILE_BLOCK", 2)
    frames = _series(np.random.default_rng(5), 40)  # 6 regions: 3 blocks
    prep = Preprocessor(20, normalization="robust").fit([frames])
    np.testing.assert_allclose(prep.median_, np.median(frames, axis=0))
    np.testing.assert_allclose(prep.iqr_, _iqr(frames, axis=0))


def test_robust_learns_median_and_iqr_on_fit_data():
    rng = np.random.default_rng(5)
    train = [_series(rng, 40), _series(rng, 80)]
    prep = Preprocessor(20, window="sliding", normalization="robust").fit(train)
    frames = np.concatenate(train)
    np.testing.assert_allclose(prep.median_, np.median(frames, axis=0))
    np.testing.assert_allclose(prep.iqr_, _iqr(frames, axis=0))
    assert prep.median_.shape == prep.iqr_.shape == (6,) and prep.n_regions_ == 6

    # Lengths are multiples of n_frames and stride = n_frames: the windows hold every training
    # frame exactly once, so their pooled per-region median is 0 and IQR 1.
    windows, _ = prep.transform(train)
    pooled = windows.reshape(-1, 6).astype(np.float64)
    np.testing.assert_allclose(np.median(pooled, axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(_iqr(pooled, axis=0), 1, atol=1e-5)

    # New data is scaled with the training statistics, not its own.
    new = _series(rng, 20) * 3 + 7
    windows, _ = prep.transform([new])
    np.testing.assert_allclose(windows[0], (new - prep.median_) / prep.iqr_, rtol=1e-5, atol=1e-5)


def _with_fast_noise(rng, n_timepoints, n_regions=4):
    """Slow signal plus a strong frame-to-frame alternation that resampling filters out."""
    phases = rng.uniform(0, 2 * np.pi, n_regions)
    slow = np.sin(2 * np.pi * np.arange(n_timepoints)[:, None] / 60 + phases)
    return slow + 4.0 * (-1.0) ** np.arange(n_timepoints)[:, None] + 2


def _check_robust_statistics_of_resampled(entry, train, n_frames, t_r, target_t_r):
    """Fit (through ``entry``) and check the statistics against those of every resampled
    frame; returns the preprocessor and those frames."""
    prep = Preprocessor(n_frames, t_r=t_r, target_t_r=target_t_r, normalization="robust")
    getattr(prep, entry)(train)
    resampled = np.concatenate([resample(x, t_r, target_t_r) for x in train])
    np.testing.assert_allclose(prep.median_, np.median(resampled, axis=0))
    np.testing.assert_allclose(prep.iqr_, _iqr(resampled, axis=0))
    return prep, resampled


@pytest.mark.parametrize("entry", ["fit", "fit_transform"])
def test_robust_statistics_are_computed_after_resampling(entry):
    rng = np.random.default_rng(6)
    train = [_with_fast_noise(rng, 300), _with_fast_noise(rng, 240)]
    prep, _ = _check_robust_statistics_of_resampled(entry, train, 50, 0.735, 2.205)
    # the raw series' spread is far larger (the alternation): the order is visible
    assert (_iqr(np.concatenate(train), axis=0) > 2 * prep.iqr_).all()


@pytest.mark.parametrize("entry", ["fit", "fit_transform"])
def test_robust_statistics_take_every_frame_of_upsampled_series(entry):
    rng = np.random.default_rng(13)
    train = [_series(rng, 40), _series(rng, 30)]
    _, resampled = _check_robust_statistics_of_resampled(entry, train, 20, 2.0, 1.0)
    assert len(resampled) == 140  # twice the frames, all within the sample's budget


def test_robust_transform_before_fit():
    with pytest.raises(NotFittedError, match="fit"):
        Preprocessor(10, normalization="robust").transform([np.ones((20, 3))])


def test_stateless_normalizations_transform_without_fit():
    x = _series(np.random.default_rng(7), 30)
    windows, _ = Preprocessor(10, normalization="roi_zscore").transform([x])
    assert windows.shape == (1, 10, 6)


@pytest.mark.parametrize("normalization", ["global_zscore", "roi_zscore", "robust", None])
def test_constant_regions_zero_gives_the_others_as_if_the_region_were_absent(normalization):
    """A region constant within a window (outside the field of view, filled with 0 or any
    value) is 0 after normalization; global z-scoring leaves it out of the window's
    statistics, which a fill value of 1000 among unit signals had dominated."""
    rng = np.random.default_rng(3)
    subjects = [rng.standard_normal((40, 5)), rng.standard_normal((33, 5))]
    filled = [np.insert(x, 2, 1000.0, axis=1) for x in subjects]
    absent, _ = Preprocessor(16, window="sliding", normalization=normalization).fit_transform(
        subjects)
    zero = Preprocessor(16, window="sliding", normalization=normalization,
                        constant_regions="zero")
    windows, _ = zero.fit_transform(filled)
    assert (windows[:, :, 2] == 0).all()
    np.testing.assert_allclose(np.delete(windows, 2, axis=2), absent, rtol=1e-5, atol=1e-6)
    if normalization == "global_zscore":  # kept, the fill value crushes every other region
        kept, _ = Preprocessor(16, window="sliding").fit_transform(filled)
        assert np.delete(kept, 2, axis=2).std() < 0.01 < 0.9 < np.delete(windows, 2, 2).std()
    assert Preprocessor.from_dict(zero.to_dict()).constant_regions == "zero"
    older = {key: value for key, value in zero.to_dict().items() if key != "constant_regions"}
    assert Preprocessor.from_dict(older).constant_regions == "keep"  # as before the option
    assert "constant_regions" not in Preprocessor(16).to_dict()  # readable by older versions


def test_constant_regions_zero_acts_window_by_window():
    """As the embedder's docstring says: a region flat over part of the scan only is 0 in the
    windows within that part, and in those alone ("keep" scales it as the others)."""
    x = np.random.default_rng(4).standard_normal((64, 5))
    x[:24, 1] = 7.0
    zero = Preprocessor(16, window="sliding", stride=8, constant_regions="zero")
    windows, _ = zero.fit_transform([x])
    flat = (windows[:, :, 1] == 0).all(axis=1)
    np.testing.assert_array_equal(flat, zero._window_starts(64) + 16 <= 24)
    kept, _ = Preprocessor(16, window="sliding", stride=8).fit_transform([x])
    assert not (kept[:, :, 1] == 0).any()
    np.testing.assert_array_equal(windows[~flat], kept[~flat])


def _reference_zscores(windows, normalization, constant_regions, eps):
    """Window by window, region by region: the z-scores the Preprocessor documents."""
    out = np.empty_like(windows)
    for i, window in enumerate(windows):
        constant = np.zeros(window.shape[1], dtype=bool)
        if constant_regions == "zero":
            constant = window.max(axis=0) == window.min(axis=0)
        if normalization == "roi_zscore":
            for r in range(window.shape[1]):
                region = window[:, r]
                out[i, :, r] = (region - region.mean()) / max(region.std(), eps)
        else:
            # the regions that are not constant; all of them when none is left
            kept = window if constant.all() else window[:, ~constant]
            out[i] = (window - kept.mean()) / max(kept.std(), eps)
        out[i][:, constant] = 0.0
    return out


@pytest.mark.parametrize("constant", ["none", "some windows", "a whole window"])
@pytest.mark.parametrize("constant_regions", ["keep", "zero"])
@pytest.mark.parametrize("normalization", ["global_zscore", "roi_zscore"])
def test_zscores_match_a_window_by_window_reference(normalization, constant_regions, constant):
    """Global and per-region z-scores, with constant_regions='zero' leaving the constant
    regions out of a window's global statistics, match the plain computation of each
    window, and a window whose regions are all constant gives no NaN and no warning."""
    rng = np.random.default_rng(21)
    windows = 3.0 * rng.standard_normal((4, 16, 5)) + 2.0
    if constant != "none":
        windows[:2, :, 2] = 1000.0  # a fill value that would dominate the global statistics
        windows[1, :, 4] = 0.0
    if constant == "a whole window":
        windows[3] = np.arange(5.0)  # each region constant, at a value of its own
    prep = Preprocessor(16, normalization=normalization, constant_regions=constant_regions)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        normalized = prep._normalize_windows(windows)
    expected = _reference_zscores(windows, normalization, constant_regions, prep.eps)
    np.testing.assert_allclose(normalized, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("normalization", ["global_zscore", "roi_zscore", "robust"])
def test_constant_window_gives_zeros(normalization):
    x = np.full((20, 3), 0.1)
    prep = Preprocessor(10, window="sliding", normalization=normalization)
    windows, _ = prep.fit_transform([x])
    assert np.isfinite(windows).all()
    np.testing.assert_allclose(windows, 0, atol=1e-6)


def test_constant_region_with_roi_zscore_gives_zeros_there_only():
    x = _series(np.random.default_rng(8), 20, 3)
    x[:, 1] = 4.0
    windows, _ = Preprocessor(20, normalization="roi_zscore").fit_transform([x])
    assert np.isfinite(windows).all()
    np.testing.assert_allclose(windows[0, :, 1], 0, atol=1e-6)
    np.testing.assert_allclose(windows[0, :, [0, 2]].std(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("normalization", ["global_zscore", "roi_zscore"])
def test_eps_is_the_smallest_scale_divided_by_not_added_to_the_scale(normalization):
    x = np.random.default_rng(11).standard_normal((20, 3))
    axis = None if normalization == "global_zscore" else 0
    prep = Preprocessor(20, normalization=normalization, eps=0.5)
    # a spread well above eps: divided by the standard deviation itself
    wide, _ = prep.fit_transform([4 * x])
    np.testing.assert_allclose(wide[0].std(axis=axis), 1, atol=1e-5)
    # a spread below eps: centred, then divided by eps
    narrow = 0.01 * x
    windows, _ = prep.transform([narrow])
    expected = (narrow - narrow.mean(axis=axis, keepdims=True)) / 0.5
    np.testing.assert_allclose(windows[0], expected, rtol=1e-5, atol=1e-8)


def test_robust_scaling_divides_by_the_iqr_and_by_eps_only_where_the_iqr_is_smaller():
    x = 4 * np.random.default_rng(12).standard_normal((40, 3)) + 2
    prep = Preprocessor(20, window="first", normalization="robust", eps=0.5).fit([x])
    assert (prep.iqr_ > 0.5).all()
    windows, _ = prep.transform([x])
    np.testing.assert_allclose(windows[0], (x[:20] - prep.median_) / prep.iqr_, rtol=1e-5,
                               atol=1e-6)
    # a saved IQR below eps (e.g. learned with a smaller eps) is raised to eps
    saved = Preprocessor.from_dict({**prep.to_dict(), "iqr_": np.array([0.1, 1.0, 2.0])})
    windows, _ = saved.transform([x])
    np.testing.assert_allclose(windows[0], (x[:20] - prep.median_) / [0.5, 1.0, 2.0],
                               rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- serialization


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_to_dict_from_dict_round_trip(normalization):
    rng = np.random.default_rng(9)
    train = [rng.standard_normal((300, 5)) + 3, rng.standard_normal((250, 5))]
    prep = Preprocessor(
        32,
        t_r=0.735,
        target_t_r=2.205,
        window="sliding",
        stride=20,
        min_frames=20,
        normalization=normalization,
        eps=1e-6,
    ).fit(train)
    d = prep.to_dict()
    for key, value in d.items():
        assert value is None or isinstance(value, (np.ndarray, int, float, str)), key
    assert d["n_regions_"] == 5 and d["n_frames"] == 32 and d["window"] == "sliding"
    if normalization == "robust":
        assert isinstance(d["median_"], np.ndarray) and d["median_"].shape == (5,)
        assert isinstance(d["iqr_"], np.ndarray) and d["iqr_"].shape == (5,)

    again = Preprocessor.from_dict(d)
    assert again.to_dict().keys() == d.keys()
    assert again.n_regions_ == 5
    new = [rng.standard_normal((90, 5)) * 2, rng.standard_normal((70, 5))]
    expected = prep.transform(new)
    got = again.transform(new)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    # The stored statistics are copies: changing the dict later changes neither the model
    # rebuilt from it nor the one it came from.
    if normalization == "robust":
        d["median_"][:] = 1e6
        np.testing.assert_array_equal(again.transform(new)[0], expected[0])
        np.testing.assert_array_equal(prep.transform(new)[0], expected[0])


def test_repr_shows_the_parameters_set_and_rebuilds_the_preprocessor():
    assert repr(Preprocessor(16)) == "Preprocessor(16)"
    # values equal to the defaults are not shown, whichever objects hold them
    assert repr(Preprocessor(16, window="".join("center"), eps=float("1e-8"))) == (
        "Preprocessor(16)")
    prep = Preprocessor(16, t_r=0.72, target_t_r=2.205, window="sliding", stride=8,
                        min_frames=12, normalization=None, eps=1e-6)
    assert repr(prep) == ("Preprocessor(16, t_r=0.72, target_t_r=2.205, window='sliding', "
                          "stride=8, min_frames=12, normalization=None, eps=1e-06)")
    assert eval(repr(prep), {"Preprocessor": Preprocessor}).to_dict() == prep.to_dict()


def test_to_dict_gives_plain_numbers_for_parameters_of_numpy_types():
    """A checkpoint holds plain ints and floats (torch.load with weights_only refuses NumPy
    scalars), whatever types the parameters were given as."""
    prep = Preprocessor(np.int64(16), t_r=np.float32(0.75), target_t_r=np.float64(1.5),
                        window="sliding", stride=np.int64(8), min_frames=np.int32(12),
                        eps=np.float32(1e-6))
    d = prep.to_dict()
    assert [type(d[name]) for name in ("n_frames", "stride", "min_frames")] == [int] * 3
    assert [type(d[name]) for name in ("t_r", "target_t_r", "eps")] == [float] * 3
    assert (d["n_frames"], d["stride"], d["min_frames"], d["t_r"]) == (16, 8, 12, 0.75)


def test_from_dict_accepts_lists_as_saved_by_a_checkpoint():
    prep = Preprocessor(10, normalization="robust").fit([np.random.default_rng(0).random((30, 4))])
    d = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in prep.to_dict().items()}
    again = Preprocessor.from_dict(d)
    np.testing.assert_array_equal(again.median_, prep.median_)


def test_unfitted_to_dict_round_trip():
    d = Preprocessor(16, window="first").to_dict()
    assert d["n_regions_"] is None and d["median_"] is None and d["iqr_"] is None
    again = Preprocessor.from_dict(d)
    assert not hasattr(again, "n_regions_")
    assert again.n_frames == 16 and again.window == "first"


def test_from_dict_rejects_bad_dicts():
    d = Preprocessor(10).to_dict()
    with pytest.raises(ValueError, match="unknown"):
        Preprocessor.from_dict({**d, "detrend": True})
    with pytest.raises(ValueError, match="n_frames"):
        Preprocessor.from_dict({k: v for k, v in d.items() if k != "n_frames"})
    fitted = Preprocessor(10, normalization="robust").fit(
        [np.random.default_rng(0).random((30, 4))]
    )
    with pytest.raises(ValueError, match="shape"):
        Preprocessor.from_dict({**fitted.to_dict(), "iqr_": np.ones(3)})
    for n_regions in (0, -4, 4.7, True, "4", [4]):
        with pytest.raises(ValueError, match=r"n_regions_ must be a positive whole number, "
                                             rf"got {re.escape(repr(n_regions))}"):
            Preprocessor.from_dict({**fitted.to_dict(), "n_regions_": n_regions})
    assert Preprocessor.from_dict({**fitted.to_dict(), "n_regions_": np.int64(4)}).n_regions_ == 4
    # robust scaling needs both statistics; neither is dropped for want of the region count
    with pytest.raises(ValueError, match=r"normalization='robust' but the dict has no "
                                         r"'median_'/'iqr_'"):
        Preprocessor.from_dict({**fitted.to_dict(), "iqr_": None})
    with pytest.raises(ValueError, match="statistics but no 'n_regions_'"):
        Preprocessor.from_dict({**fitted.to_dict(), "n_regions_": None, "median_": None})
    with pytest.raises(ValueError, match="median_ holds NaN or infinite values"):
        Preprocessor.from_dict({**fitted.to_dict(), "median_": [0.0, np.inf, 0.0, 0.0]})
    # statistics are not dropped silently for want of their region count
    with pytest.raises(ValueError, match="statistics but no 'n_regions_'"):
        Preprocessor.from_dict({**fitted.to_dict(), "n_regions_": None})
    # a window length that is not a whole number is refused, not truncated
    with pytest.raises(ValueError, match=r"'n_frames' parameter of Preprocessor must be"):
        Preprocessor.from_dict({**d, "n_frames": 10.5})
    assert Preprocessor.from_dict({**d, "n_frames": np.int64(10)}).n_frames == 10


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_region_count_mismatch(normalization):
    prep = Preprocessor(10, normalization=normalization).fit(
        [np.random.default_rng(0).random((30, 4))]
    )
    with pytest.raises(ValueError, match=r"5 regions.*4 regions"):
        prep.transform([np.random.default_rng(1).random((30, 5))])


def test_subjects_with_different_region_counts():
    subjects = [np.ones((20, 4)), np.ones((20, 5))]
    with pytest.raises(ValueError, match="subject 1 has 5 regions"):
        Preprocessor(10).fit(subjects)
    # fit_transform and transform check every subject too, not only the first one
    with pytest.raises(ValueError, match="subject 1 has 5 regions"):
        Preprocessor(10).fit_transform(subjects)
    with pytest.raises(ValueError, match="subject 1 has 5 regions"):
        Preprocessor(10).fit(subjects[:1]).transform(subjects)


def test_one_region_is_taken_whatever_the_subjects_are():
    # the Preprocessor alone takes one region (a plain float array skips the check that other
    # inputs take: integers, nested lists and DataFrames must not be held to two regions)
    series = np.arange(12)[:, None]
    prep = Preprocessor(8, normalization=None)
    for subject in (series, series.tolist(), pd.DataFrame({"roi": series[:, 0]})):
        windows, _ = prep.fit_transform([subject])
        assert windows.shape == (1, 8, 1)
        assert _frames(100 * windows[0]) == list(range(2, 10))  # the centre 8 of 12 frames


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_frames": 0}, "n_frames"),
        ({"n_frames": 2.5}, "n_frames"),
        ({"n_frames": 10, "window": "last"}, "window"),
        ({"n_frames": 10, "stride": 0}, "stride"),
        ({"n_frames": 10, "stride": 1.5}, "stride"),
        ({"n_frames": 10, "min_frames": 11}, "min_frames"),
        ({"n_frames": 10, "min_frames": 0}, "min_frames"),
        ({"n_frames": 10, "normalization": "zscore"}, "normalization"),
        ({"n_frames": 10, "eps": 0.0}, "eps"),
        ({"n_frames": 10, "t_r": -2.0, "target_t_r": 2.0}, "t_r"),
        ({"n_frames": 10, "target_t_r": 0.0}, "target_t_r"),
        ({"n_frames": True}, "n_frames"),  # a bool is no count
        ({"n_frames": 10, "t_r": float("inf")}, "t_r"),
        ({"n_frames": 10, "eps": float("nan")}, "eps"),
    ],
)
def test_bad_parameters(params, match):
    prep = Preprocessor(**params)  # __init__ only stores
    x = [np.random.default_rng(0).random((30, 3))]
    with pytest.raises(ValueError, match=match):
        prep.fit(x)
    with pytest.raises(ValueError, match=match):
        prep.transform(x)


@pytest.mark.parametrize(
    "subjects, match",
    [
        ([], "empty"),
        ([np.ones(10)], "2-D"),
        ([np.full((20, 3), np.nan)], "NaN"),
        ([np.ones((20, 3)), np.ones((0, 3))], r"subject 1: Found array with 0 sample"),
        ([np.ones((20, 3)), np.ones((20, 4))], r"subject 1 has 4 regions .* subject 0 has 3"),
    ],
)
def test_bad_subjects(subjects, match):
    with pytest.raises(ValueError, match=match):
        Preprocessor(10).fit(subjects)


_SUBJECTS_LAYOUT = (r"subjects must be a 3-D array \(n_subjects, n_timepoints, n_regions\) or "
                    r"a list of 2-D \(n_timepoints, n_regions\) arrays or DataFrames")


def _with_nan(x, row, column):
    x = x.copy()
    x[row, column] = np.nan
    return x


@pytest.mark.parametrize("subjects, message", [
    ([np.ones(20)], rf"subject 0 has 1 dimension\(s\) \(shape \(20,\)\), but each subject is "
                    rf"one 2-D \(n_timepoints, n_regions\) table\. {_SUBJECTS_LAYOUT}$"),
    ([np.ones((2, 20, 3))], r"subject 0 has 3 dimension\(s\) .*a 3-D array holds several "
                            rf"subjects: pass it as subjects itself, .*{_SUBJECTS_LAYOUT}$"),
    ([np.ones((20, 3)), _with_nan(np.ones((20, 3)), 5, 1)],
     r"^subject 1: Input subjects\[1\] contains NaN\. First at region 1 \(column 1\), "
     r"timepoint 5"),
    # one subject's table: its rows had been taken for subjects of one dimension each
    (np.ones((20, 3)), rf"^{_SUBJECTS_LAYOUT}; got one 2-D table of shape \(20, 3\)\. For a "
                       r"single subject, pass \[x\]\.$"),
])
def test_bad_subjects_are_named_as_the_preprocessor_takes_them(subjects, message):
    """The Preprocessor shares the estimators' check of a subject, whose messages named X
    (which the Preprocessor has no parameter of) and offered files and globs (which it does
    not read): they name its subjects, and what those may be."""
    fitted = Preprocessor(10).fit([np.ones((20, 3))])
    for method in (Preprocessor(10).fit, Preprocessor(10).fit_transform, fitted.transform):
        with pytest.raises(ValueError, match=message) as error:
            method(subjects)
        assert "X" not in str(error.value) and "glob" not in str(error.value)


def test_a_window_read_names_the_subjects_it_was_given_or_the_estimators_x():
    from brainjepa_sk.validation import validate_subjects

    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((40, 3)) for _ in range(2)]
    prep = Preprocessor(10, window="sliding").fit(arrays)
    arrays[1][25, 2] = np.nan
    with pytest.raises(ValueError, match=r"^subject 1: Input subjects\[1\] contains NaN\. First "
                                         r"at region 2 \(column 2\), timepoint 25; 1 region\(s\) "
                                         r"and 1 value\(s\) in all$"):
        prep.read_window(arrays, 1, 20)
    # an estimator's validated X, changed after its check, is named as the estimators name it
    arrays[1][25, 2] = 0.0
    validated = validate_subjects(arrays, lazy=True)
    arrays[1][25, 2] = np.nan
    for read in (lambda: prep.read_window(validated, 1, 20), lambda: prep.transform(validated)):
        with pytest.raises(ValueError, match=r"^subject 1: Input X\[1\] contains NaN"):
            read()


def test_a_ragged_nested_list_is_named_as_the_estimators_name_it():
    """Not NumPy's "inhomogeneous shape": the subject and the row that differs."""
    table = np.ones((20, 3)).tolist()
    table[4] = table[4][:2]
    for method in ("fit", "fit_transform"):
        with pytest.raises(ValueError, match=r"subject 1 is a table whose rows differ in "
                                             r"length: row 4 has 2 value\(s\) but row 0 has 3"):
            getattr(Preprocessor(10), method)([np.ones((20, 3)), table])
    fitted = Preprocessor(10).fit([np.ones((20, 3))])
    with pytest.raises(ValueError, match="subject 0 is a table whose rows differ"):
        fitted.transform([table])


def test_input_is_not_modified():
    x = _series(np.random.default_rng(10), 30)
    before = x.copy()
    Preprocessor(20, window="sliding", normalization="robust").fit_transform([x])
    np.testing.assert_array_equal(x, before)


def test_robust_scaling_of_a_region_with_zero_iqr_but_some_spread():
    # A sparse, spiky region: mostly zeros, a few spikes. Its IQR is 0 but it is not constant;
    # dividing by eps would blow it up to ~1e8.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3))
    x[:, 0] = 0.0
    x[::40, 0] = 5.0
    x[:, 1] = 3.0  # constant: its scale is 1, so new values keep their distance to it
    pre = Preprocessor(n_frames=200, normalization="robust").fit([x])
    assert pre.iqr_[0] == pytest.approx(1.349 * x[:, 0].std())
    assert pre.iqr_[1] == 1.0 and pre.median_[1] == 3.0
    windows, _ = pre.transform([x])
    assert np.abs(windows).max() < 50
    shifted = x.copy()
    shifted[:, 1] = 5.0
    np.testing.assert_allclose(pre.transform([shifted])[0][0, :, 1], 2.0)


@pytest.mark.parametrize(("scale", "offset"), [(1e4, 1e4), (1e-4, 1e-4), (1e-4, 1.0),
                                               (1.0, 1e4)])
def test_unscaled_series_far_from_unit_scale_warn(scale, offset):
    # the third case: a unit offset does not hide a signal too small to survive; the last:
    # a unit spread does not make a large offset fine
    rng = np.random.default_rng(0)
    subjects = [rng.standard_normal((40, 6)) for _ in range(3)]
    with pytest.warns(UserWarning, match="normalization=None .* far from unit scale.*'robust'"):
        Preprocessor(16, normalization=None).fit([x * scale + offset for x in subjects])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Preprocessor(16, normalization=None).fit(subjects)  # unit scale: fine
        for normalization in ("robust", "global_zscore", "roi_zscore"):  # the series scaled
            Preprocessor(16, normalization=normalization).fit([x * scale for x in subjects])


def test_the_scale_warning_looks_past_the_first_subject():
    """The first 50 subjects are looked at, not the first one only."""
    rng = np.random.default_rng(0)
    subjects = [rng.standard_normal((40, 6)) * (1 if k == 0 else 1e4) for k in range(3)]
    with pytest.warns(UserWarning, match="far from unit scale"):
        Preprocessor(16, normalization=None).fit(subjects)
    # nor the first few: 10 at unit scale, then 40 far from it
    subjects = [rng.standard_normal((20, 2)) * (1 if k < 10 else 1e4) for k in range(50)]
    with pytest.warns(UserWarning, match="far from unit scale"):
        Preprocessor(16, normalization=None).fit(subjects)


def test_the_scale_warning_looks_at_the_first_50_subjects_only():
    rng = np.random.default_rng(1)
    # 50 short subjects at unit scale, then a long one far from it that would outweigh them
    subjects = [rng.standard_normal((2, 4)) for _ in range(50)]
    subjects.append(1e4 * rng.standard_normal((1000, 4)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Preprocessor(16, normalization=None).fit(subjects)
    subjects[49], subjects[50] = subjects[50], subjects[49]  # now among the first 50
    with pytest.warns(UserWarning, match="far from unit scale"):
        Preprocessor(16, normalization=None).fit(subjects)


def test_a_stride_longer_than_a_window_is_refused():
    with pytest.raises(ValueError, match=r"stride=15 is longer than a window \(n_frames=10\)"):
        Preprocessor(10, window="sliding", stride=15).fit([np.ones((40, 3))])
    Preprocessor(10, window="center", stride=15).fit([np.random.default_rng(0).random((40, 3))])


def test_the_preprocessor_refuses_booleans_and_masked_values_as_the_estimators_do():
    x = np.random.default_rng(0).random((40, 3))
    prep = Preprocessor(10, normalization=None).fit([x])
    with pytest.raises(TypeError, match="subject 1 holds booleans"):
        prep.transform([x, x > 0.5])
    with pytest.raises(TypeError, match="subject 0 is a masked array with 1 masked value"):
        prep.transform([np.ma.masked_array(x, mask=x == x.max())])
    with pytest.raises(ValueError, match="subject 1: Complex data not supported"):
        prep.transform([x, x * (1 + 1j)])  # numpy would drop the imaginary part with a warning
    np.testing.assert_array_equal(prep.transform([np.ma.masked_array(x)])[0],
                                  prep.transform([x])[0])  # nothing masked: a plain array


def test_saved_preprocessing_without_a_normalization_defaults_to_global_zscore():
    """A checkpoint's preprocessing dict written by hand (save_checkpoint takes any dict) may
    lack keys: the defaults apply instead of a KeyError."""
    from _estimators import tiny_module

    from brainjepa_sk.checkpoint import ResolvedWeights
    from brainjepa_sk.preprocessing import preprocessor_for_weights

    encoder = tiny_module().target_encoder
    subjects = [np.random.default_rng(0).standard_normal((32, encoder.n_regions))]
    resolved = ResolvedWeights(encoder, preprocessing={"n_frames": 16}, n_frames=16)
    preprocessor = preprocessor_for_weights(resolved, subjects)
    assert preprocessor.normalization == "global_zscore" and preprocessor.n_frames == 16
    # nor its window length: the saved window strategy is kept, the scaling is the default
    resolved = ResolvedWeights(encoder, preprocessing={"window": "first"}, n_frames=16)
    preprocessor = preprocessor_for_weights(resolved, subjects)
    assert (preprocessor.normalization, preprocessor.window) == ("global_zscore", "first")


def test_an_invalid_preprocessing_the_weights_hold_is_blamed_on_them():
    """A saved preprocessing that cannot be applied names the weights as holding it, whether
    the saved window, a saved TR or another saved setting is wrong."""
    from _estimators import tiny_module

    from brainjepa_sk.checkpoint import ResolvedWeights
    from brainjepa_sk.preprocessing import preprocessor_for_weights

    encoder = tiny_module().target_encoder
    subjects = [np.random.default_rng(0).standard_normal((32, encoder.n_regions))]
    for saved, problem in [({"window": "diagonal"}, "window 'diagonal' is not one of"),
                           ({"normalization": "global_zscore", "eps": -1.0}, "'eps' parameter"),
                           ({"normalization": None, "min_frames": 20},
                            "min_frames=20 is longer than a window"),
                           # the TR of the pretraining data, quoted when t_r is not given
                           ({"t_r": "2.0"}, "t_r must be a positive number of seconds"),
                           ({"t_r": -1.0}, "t_r must be a positive number of seconds"),
                           # the model's TR, quoted there too (it had crashed the warning)
                           ({"t_r": 1.0, "target_t_r": "2.0"},
                            "target_t_r must be a positive number of seconds"),
                           ({"t_r": 1.0, "target_t_r": -2.0},
                            "target_t_r must be a positive number of seconds")]:
        resolved = ResolvedWeights(encoder, preprocessing={"n_frames": 16, **saved},
                                   model_t_r=saved.get("target_t_r", 2.0), n_frames=16)
        with pytest.raises(ValueError, match=rf"^the weights hold an invalid preprocessing: "
                                             rf".*{problem}"):
            preprocessor_for_weights(resolved, subjects)


def test_a_model_t_r_other_than_the_one_the_weights_record_is_warned_of():
    """model_t_r given against the TR the weights record (the data's TR put in the wrong
    parameter, say) had resampled every series to it without a word."""
    from _estimators import tiny_module

    from brainjepa_sk.checkpoint import ResolvedWeights
    from brainjepa_sk.preprocessing import preprocessor_for_weights

    encoder = tiny_module().target_encoder
    subjects = [np.random.default_rng(0).standard_normal((32, encoder.n_regions))]
    resolved = ResolvedWeights(encoder, model_t_r=2.0, n_frames=8)
    with pytest.warns(UserWarning, match=r"^model_t_r=0\.8 is not the TR the model was "
                                         r"pretrained at \(2 s, which its weights record\)"):
        assert preprocessor_for_weights(resolved, subjects, t_r=0.8,
                                        model_t_r=0.8).target_t_r == 0.8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for model_t_r in ("auto", 2.0, 2.0002):  # the model's, within the resampling's ratios
            preprocessor_for_weights(resolved, subjects, t_r=0.8, model_t_r=model_t_r)
        # weights that record no TR: model_t_r is the only one there is
        preprocessor_for_weights(ResolvedWeights(encoder, n_frames=8), subjects, t_r=0.8,
                                 model_t_r=0.8)


def test_windows_longer_than_the_pretraining_windows_are_warned_of():
    """A window past the length the model was trained on gives time positions it never saw:
    said (it was taken silently); shorter windows, and weights that record no length, are
    taken silently."""
    from _estimators import tiny_module

    from brainjepa_sk.checkpoint import ResolvedWeights
    from brainjepa_sk.preprocessing import preprocessor_for_weights

    encoder = tiny_module().target_encoder
    subjects = [np.random.default_rng(0).standard_normal((32, encoder.n_regions))]
    resolved = ResolvedWeights(encoder, n_frames=8)
    with pytest.warns(UserWarning, match=r"^n_frames=16 is longer than the windows the model "
                                         r"was pretrained on \(8 frames\).*keep n_frames=8 "
                                         r"\(n_frames='auto'\) with window='sliding'$"):
        assert preprocessor_for_weights(resolved, subjects, n_frames=16).n_frames == 16
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for n_frames in ("auto", 8, 4):
            preprocessor_for_weights(resolved, subjects, n_frames=n_frames)
        preprocessor_for_weights(ResolvedWeights(encoder), subjects, n_frames=16)
    # windows that do not cut into whole patches are refused, without the warning first
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"^n_frames=17 is not a positive multiple of "
                                             rf"patch_size={encoder.patch_size}"):
            preprocessor_for_weights(resolved, subjects, n_frames=17)


def test_a_model_pretrained_on_resampled_series_warns_only_when_t_r_would_resample():
    """Without t_r, series are taken at the model's TR: said when the pretraining resampled
    its series, not when its input TR gives the same sampling as the model's."""
    from _estimators import tiny_module

    from brainjepa_sk.checkpoint import ResolvedWeights
    from brainjepa_sk.preprocessing import preprocessor_for_weights

    encoder = tiny_module().target_encoder
    subjects = [np.random.default_rng(0).standard_normal((32, encoder.n_regions))]

    def weights(saved_t_r):
        return ResolvedWeights(encoder, preprocessing={"t_r": saved_t_r, "target_t_r": 2.0},
                               model_t_r=2.0, n_frames=16)

    with pytest.warns(UserWarning, match=r"pretrained on series at TR 1 s resampled to 2 s"):
        preprocessor_for_weights(weights(1.0), subjects)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for saved_t_r in (2.0, 2.0002):  # the ratio 1 within the resampling's denominators
            preprocessor_for_weights(weights(saved_t_r), subjects)
    # a saved TR too far from the model's to resample from is not the model's sampling either
    with pytest.warns(UserWarning, match=r"pretrained on series at TR 0.01 s resampled to 2 s"):
        preprocessor_for_weights(weights(0.01), subjects)


def test_real_numbers_of_any_type_are_accepted_as_before():
    """NumPy numbers and fractions are real numbers: the parameter checks take their value."""
    from fractions import Fraction

    x = [np.random.default_rng(0).standard_normal((40, 3))]
    windows, _ = Preprocessor(np.int64(10), t_r=Fraction(1, 2), target_t_r=np.float32(1.0),
                              eps=Fraction(1, 10**8)).fit_transform(x)
    expected, _ = Preprocessor(10, t_r=0.5, target_t_r=1.0).fit_transform(x)
    np.testing.assert_allclose(windows, expected)
    with pytest.raises(ValueError, match="n_frames"):
        Preprocessor(Fraction(10, 1)).fit(x)  # not an integer type


def test_values_beyond_float32_after_preprocessing_are_refused_not_turned_into_nan(tmp_path):
    rng = np.random.default_rng(0)
    huge = [rng.standard_normal((40, 5)) * 1e39 for _ in range(3)]
    with pytest.warns(UserWarning, match="far from unit scale"), pytest.raises(
            ValueError, match=r"subject 0 reaches .*e\+39 .*normalization=None.*float32 range"):
        Preprocessor(8, window="first", normalization=None).fit_transform(huge)
    # beyond the range on the negative side only: refused too
    with pytest.warns(UserWarning, match="far from unit scale"), pytest.raises(
            ValueError, match=r"subject 0 reaches .*e\+39 .*float32 range"):
        Preprocessor(8, window="first", normalization=None).fit_transform(
            [-np.abs(x) for x in huge])
    # normalized first, the same series fit in float32
    windows, _ = Preprocessor(8, window="first", normalization="roi_zscore").fit_transform(huge)
    assert windows.dtype == np.float32 and np.isfinite(windows).all()
    # robust statistics learned on ordinary series leave these far too large
    robust = Preprocessor(8, window="first", normalization="robust").fit(
        [x / 1e39 for x in huge])
    with pytest.raises(ValueError, match="normalization='robust'"):
        robust.transform(huge)
    # read lazily from its file (as fit on files does): named, and not taken for a changed file
    from brainjepa_sk.validation import validate_subjects

    for k, x in enumerate(huge):
        np.save(tmp_path / f"s{k}.npy", x)
    files = validate_subjects(sorted(tmp_path.glob("s*.npy")), lazy=True)
    with pytest.raises(ValueError, match=r"s0\.npy: subject 0 reaches .*float32") as error:
        robust.read_window(files, 0, 0)
    assert "changed" not in str(error.value)


def test_dataframes_with_repeated_or_mixed_column_names_are_refused_as_by_the_estimators():
    """The Preprocessor checks a subject with the estimators' check: a DataFrame whose column
    names repeat, or mix strings with integers, is refused (its region names are ambiguous)."""
    import pandas as pd

    x = _series(np.random.default_rng(0), 30)[:, :3]
    Preprocessor(10).fit_transform([pd.DataFrame(x, columns=["a", "b", "c"])])
    with pytest.raises(ValueError, match=r"subject 0: the column 'a' appears 2 times"):
        Preprocessor(10).fit([pd.DataFrame(x, columns=["a", "a", "b"])])
    with pytest.raises(TypeError, match="Feature names"):  # scikit-learn's message
        Preprocessor(10).fit([pd.DataFrame(x, columns=[0, "a", "b"])])


def test_the_too_short_message_gives_the_min_frames_that_would_pad_the_subject():
    """The message said what was needed, not what to do; the min_frames it names is taken."""
    x = np.random.default_rng(0).normal(size=(7, 3))
    with pytest.raises(ValueError, match=r"leave the subject out, or pass min_frames=7 or less"):
        Preprocessor(16, min_frames=8, normalization=None).transform([x])
    windows = Preprocessor(16, min_frames=7, normalization=None).transform([x])
    assert windows[0].shape == (1, 16, 3)
    np.testing.assert_allclose(windows[0][0, :7], x, rtol=1e-6)  # float32 windows


def test_a_short_series_with_more_regions_than_frames_is_told_it_may_be_transposed():
    """Padding is no cure for a (n_regions, n_timepoints) array: the message says so."""
    prep = Preprocessor(16, min_frames=8, normalization=None)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"It has more regions \(last axis: 40\) than "
                                         r"timepoints \(6\): .* pass its transpose \(x\.T\)"):
        prep.transform([rng.standard_normal((6, 40))])
    with pytest.raises(ValueError, match="too short") as info:
        prep.transform([rng.standard_normal((6, 3))])
    assert "transpose" not in str(info.value)


@pytest.mark.parametrize("t_r", [None, 2.0])
def test_a_transposed_subject_of_a_fitted_preprocessor_is_told_so_also_when_resampled(t_r):
    """A transform subject of fit's region count in rows was told it looks transposed only
    without resampling: its resampled length, not its own, was held against that count."""
    rng = np.random.default_rng(0)
    prep = Preprocessor(8, t_r=t_r, target_t_r=t_r and 1.0).fit(
        [rng.standard_normal((60, 12)) for _ in range(3)])
    with pytest.raises(ValueError, match=r"fitted with 12 regions; .*\(it looks transposed\)$"):
        prep.transform([rng.standard_normal((12, 60))])


def test_the_length_check_of_a_view_of_files_reads_none(tmp_path, monkeypatch):
    """check_lengths reads no file: the transposed hint of a subject_rows view of files took
    its region count by indexing the view, which read the file (and one gone since raised
    FileNotFoundError instead of the too-short message)."""
    from brainjepa_sk.files import SubjectFiles
    from brainjepa_sk.validation import subject_rows, validate_subjects

    rng = np.random.default_rng(0)
    paths = [tmp_path / "sub-0.npy", tmp_path / "sub-1.npy"]
    for path in paths:  # short, of 20 regions: they may be transposed
        np.save(path, rng.standard_normal((5, 20)))
    files = validate_subjects([str(p) for p in paths], lazy=True)
    assert isinstance(files, SubjectFiles)
    paths[1].unlink()
    read = []
    monkeypatch.setattr(SubjectFiles, "_read", lambda self, i: read.append(i))
    prep = Preprocessor(16, min_frames=8, normalization=None)
    with pytest.raises(ValueError, match=r"subject 0 is too short: 5 frames.*It has more "
                                         r"regions \(last axis: 20\) than timepoints \(5\)"):
        prep.check_lengths(subject_rows(files, [1, 0]))  # its subject 0: the file gone
    assert read == []


def test_a_short_series_is_told_it_may_be_transposed_only_where_that_is_plausible():
    """More regions than frames is also a short scan on a large atlas (120 frames of 200
    regions, a usual case): 'pass its transpose' was said of every such subject. It is said
    where the regions the preprocessing was fitted with are the frames, or, they unknown,
    where the transposed subjects would fill a window and all have one frame count."""
    rng = np.random.default_rng(0)
    prep = Preprocessor(16, min_frames=8, normalization=None)

    def hinted(subjects, preprocessor=prep):
        with pytest.raises(ValueError, match="is too short") as info:
            preprocessor.check_lengths(subjects)
        return "pass its transpose (x.T)" in str(info.value)

    assert hinted([rng.standard_normal((6, 40))] * 2)  # transposed: 40 frames fill a window
    assert not hinted([rng.standard_normal((6, 12))])  # 12 frames would not fill one either
    # subjects of several lengths are scans (transposed, their regions would differ)
    assert not hinted([rng.standard_normal((6, 40)), rng.standard_normal((7, 40))])
    # fitted on 40 regions: a subject of 40 regions has them the right way round
    fitted = Preprocessor(16, min_frames=8, normalization="global_zscore").fit(
        [rng.standard_normal((30, 40))])
    assert not hinted([rng.standard_normal((6, 40))], fitted)
    fitted = Preprocessor(16, min_frames=8, normalization="global_zscore").fit(
        [rng.standard_normal((30, 6))])
    assert hinted([rng.standard_normal((6, 40))], fitted)


@pytest.mark.parametrize("t_r, target_t_r", [(None, None), (2.0, None), (2.0, 2.0)])
def test_a_short_series_that_was_not_resampled_is_not_said_to_be(t_r, target_t_r):
    """The message had read "15 frames after resampling (15 frames at t_r=None,
    target_t_r=None)" where nothing was resampled."""
    prep = Preprocessor(16, t_r=t_r, target_t_r=target_t_r, min_frames=8, normalization=None)
    with pytest.raises(ValueError) as info:
        prep.transform([np.zeros((7, 3))])
    assert str(info.value).startswith("subject 0 is too short: 7 frames; at least min_frames=8")
    assert "resampl" not in str(info.value) and "t_r" not in str(info.value)


def test_preprocessor_for_weights_given_a_module_says_to_resolve_it_first():
    """A module or a path had failed with "'BrainJEPA' object has no attribute 'n_frames'"."""
    from _estimators import tiny_module

    from brainjepa_sk.checkpoint import resolve_weights
    from brainjepa_sk.preprocessing import preprocessor_for_weights

    module, subjects = tiny_module(), [np.random.default_rng(0).standard_normal((16, 8))]
    for weights in (module, "weights.pt"):
        with pytest.raises(TypeError, match=r"weights must be what brainjepa_sk.checkpoint."
                                            rf"resolve_weights returned, got a "
                                            rf"{type(weights).__name__}: pass "
                                            r"resolve_weights\(weights\)"):
            preprocessor_for_weights(weights, subjects, normalization=None)
    assert preprocessor_for_weights(resolve_weights(module), subjects,
                                    normalization=None).n_frames == 8


@pytest.mark.parametrize("subjects, error, message", [
    (np.zeros((30, 4)), ValueError, r"got one 2-D table of shape \(30, 4\). For a single "
                                    r"subject, pass \[x\]"),
    ("sub-*.npy", TypeError, r"subjects must be a sequence .* got str; files are counted once "
                             r"checked"),
    (None, TypeError, "got NoneType"),
    (3, TypeError, r"subjects must be a sequence .* got int"),  # "'int' object is not iterable"
])
def test_subject_lengths_refuses_one_table_or_a_path_rather_than_counting_its_parts(
        subjects, error, message):
    """A table's rows had been counted as subjects (30 subjects of 4 frames), and a glob's
    characters as subjects of 0 frames."""
    from brainjepa_sk.preprocessing import subject_lengths

    with pytest.raises(error, match=message):
        subject_lengths(subjects)
    assert subject_lengths([np.zeros((30, 4)), np.zeros((20, 4))]) == [30, 20]


class _IndexedSubjects:
    """A sequence by ``__len__`` and ``__getitem__`` alone (Python iterates it by index)."""

    def __init__(self, arrays):
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays)

    def __getitem__(self, i):
        return self.arrays[i]


def test_a_sequence_iterated_by_index_is_counted_and_checked():
    """A sequence without ``__iter__`` (iterated by ``__getitem__``) was refused as if it were
    a number once subject_lengths refused what has no ``__iter__``: check_lengths and a
    robust fit failed with "subjects must be a sequence"."""
    from brainjepa_sk.preprocessing import subject_lengths

    arrays = [np.random.default_rng(i).standard_normal((30 + i, 4)) for i in range(3)]
    subjects = _IndexedSubjects(arrays)
    assert subject_lengths(subjects) == [30, 31, 32]
    Preprocessor(n_frames=16).check_lengths(subjects)
    robust = Preprocessor(n_frames=16, normalization="robust").fit(subjects)
    np.testing.assert_array_equal(robust.transform(subjects)[0],
                                  Preprocessor(n_frames=16, normalization="robust")
                                  .fit(arrays).transform(arrays)[0])


def test_transform_of_arrays_names_every_subject_too_short_as_check_lengths_does():
    """Preprocessor.transform (and fit_transform) of plain arrays named only the first subject
    too short, with the min_frames that pads it alone, where the guide promises them all."""
    rng = np.random.default_rng(0)
    subjects = [rng.standard_normal((n, 2)) for n in (12, 3, 12, 2)]
    message = (r"^subject 1 is too short: 3 frames; so are 1 more, with their frames: subject 3 "
               r"\(2\); .*leave them out, or pass min_frames=2 or less to have them padded")
    prep = Preprocessor(10, normalization=None).fit(subjects[:1])
    with pytest.raises(ValueError, match=message):
        prep.transform(subjects)
    with pytest.raises(ValueError, match=message):
        Preprocessor(10, normalization=None).fit_transform(subjects)


@pytest.mark.parametrize("method", ["fit", "fit_transform"])
@pytest.mark.parametrize("subjects, message", [
    (3, r"^subjects must be a list of \(n_timepoints, n_regions\) arrays, got an int$"),
    (None, r"^subjects must be a list of .* arrays, got None$"),
    ("sub-01.csv", r"^subjects must be a list of .* arrays, got a path \('sub-01.csv'\): a "
                   r"Preprocessor takes arrays; read each file with "
                   r"brainjepa_sk.files.read_subject_file"),
    ([np.ones((12, 2)), "sub-02.csv"], r"^subjects\[1\] is a path \('sub-02.csv'\), not an array: "
                                       r"a Preprocessor takes arrays"),
])
def test_a_preprocessor_refuses_what_is_no_list_of_arrays_naming_it(method, subjects, message):
    """A number had failed with len()'s "object of type 'int' has no len()", and a list of
    paths with "subject 0 holds text, not numbers" (the path's characters)."""
    with pytest.raises(ValueError, match=message):
        getattr(Preprocessor(8, normalization=None), method)(subjects)


def test_a_numpy_t_r_in_milliseconds_is_warned_of_in_plain_seconds():
    """A TR read as a NumPy scalar (from a table of scan parameters) was shown as
    'np.float64(2.0) s' in the warning's seconds."""
    with pytest.warns(UserWarning) as record:
        warn_long_t_r(t_r=np.float64(2000), model_t_r=np.float32(720))
    assert [str(w.message) for w in record] == [
        "t_r=2000 s is long for fMRI: TRs are in seconds (2000 ms is 2.0 s)",
        "model_t_r=720 s is long for fMRI: TRs are in seconds (720 ms is 0.72 s)"]


@pytest.mark.parametrize("kind", ["float32", "int32", "DataFrame"])
@pytest.mark.parametrize("method", ["transform", "fit_transform"])
def test_a_float32_corpus_is_cut_one_subject_at_a_time(method, kind):
    """transform and fit_transform of arrays held float64 copies of every subject (twice the
    float32 corpus), their resampled series and a list of their windows before joining them:
    several times the corpus for a long-scan corpus (HCP: 1200 frames). They hold the windows
    and one subject; the windows are those cut from each subject alone. Integer arrays and
    DataFrames were still checked into float64 copies of them all first."""
    import tracemalloc

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 400, 20)).astype(np.float32)  # 1.9 MB; float64 copies 3.8 MB
    if kind == "int32":
        X = list((X * 100).astype(np.int32))
    elif kind == "DataFrame":
        X = [pd.DataFrame(x) for x in X]
    settings = dict(t_r=0.72, target_t_r=2.205, window="center", normalization="robust")
    prep, fitted = Preprocessor(32, **settings), Preprocessor(32, **settings).fit(X)

    def peak_of(call):
        tracemalloc.start()
        try:
            return call(), tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # fit_transform also holds what fit holds: the robust statistics' sample (every frame
    # here, 60 x 131 x 20 float64) and its sorted copies
    _, fit_peak = peak_of(lambda: Preprocessor(32, **settings).fit(X))
    if method == "transform":
        prep, fit_peak = fitted, 0
    (windows, subject_index), peak = peak_of(lambda: getattr(prep, method)(X))
    assert windows.shape == (60, 32, 20) and windows.dtype == np.float32  # 0.15 MB
    assert subject_index.tolist() == list(range(60))
    assert peak < fit_peak + 1e6, (peak, fit_peak)
    np.testing.assert_array_equal(fitted.median_, prep.median_)
    for i in (0, 59):
        np.testing.assert_array_equal(windows[i], fitted.transform(X[i : i + 1])[0][0])


def test_the_transposed_corpus_warning_names_the_frames_after_resampling():
    """Under resampling the warning said "300 timepoints ... padded to windows of
    n_frames=160", which reads as a contradiction: the 300 frames at t_r=0.8 are 120 at
    target_t_r=2.0, and those are padded."""
    subjects = [np.zeros((300, 400))] * 3  # transposed: 400 frames of 300 regions
    with pytest.warns(UserWarning, match=r"every subject has 300 timepoints, fewer than its 400 "
                                         r"regions \(last axis\), and is padded to windows of "
                                         r"n_frames=160 \(120 frames after resampling: 300 "
                                         r"frames at t_r=0\.8, target_t_r=2\.0\): if"):
        Preprocessor(160, t_r=0.8, target_t_r=2.0).check_lengths(subjects)


def test_subjects_whose_columns_name_their_regions_are_not_warned_of_as_transposed():
    """150-frame scans of Schaefer-400 (as COBRE's) as DataFrames whose columns are the
    region names were warned of as possibly stored (n_regions, n_timepoints): the names say
    which axis holds the regions. Columns that are the frame numbers of a transposed table
    (``x.T`` of a DataFrame) still warn."""
    from brainjepa_sk.files import SubjectFiles

    names = [f"7Networks_LH_Vis_{k}" for k in range(400)]
    named = [pd.DataFrame(np.zeros((150, 400)), columns=names)] * 3
    # files whose header names the regions, as SubjectFiles record them (no file is read)
    files = SubjectFiles([f"sub-{i}.csv" for i in range(3)], [150] * 3, 400, names, "digest")
    for subjects in (named, files):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Preprocessor(160).check_lengths(subjects)
        assert not [w for w in caught if "transposes" in str(w.message)]
    transposed = [pd.DataFrame(np.zeros((400, 150)), columns=names[:150]).T] * 3
    numbered = SubjectFiles([f"sub-{i}.csv" for i in range(3)], [150] * 3, 400,
                            [str(k) for k in range(400)], "digest")  # a header of frames
    for subjects in (transposed, numbered):
        with pytest.warns(UserWarning, match=r"pass their transposes"):
            Preprocessor(160).check_lengths(subjects)

"""Tests of the synthetic data generator ``make_brain_dynamics``."""

import numpy as np
import pandas as pd
import pytest

from brainjepa_sk.datasets import load_group_connectivity, make_brain_dynamics


def _autocorrelation(x, lag):
    """Per-region autocorrelation of a (n_timepoints, n_regions) series at ``lag`` frames."""
    x = x - x.mean(axis=0)
    return (x[lag:] * x[:-lag]).sum(axis=0) / (x * x).sum(axis=0)


@pytest.fixture(scope="module")
def cohort():
    """60 subjects at the default size, with the ground truth."""
    return make_brain_dynamics(n_subjects=60, random_state=0, return_params=True)


def test_shapes_dtypes_and_columns():
    X, y = make_brain_dynamics(n_subjects=7, n_timepoints=40, n_regions=100, random_state=1)
    assert isinstance(X, list) and len(X) == 7
    for x in X:
        assert x.shape == (40, 100)
        assert x.dtype == np.float64
        assert np.isfinite(x).all()
        assert (x.std(axis=0) > 0).all()
    assert isinstance(y, pd.DataFrame)
    assert list(y.columns) == ["age", "group", "site"]
    assert len(y) == 7
    assert y["age"].dtype == np.float64
    assert y["age"].between(8, 80).all()
    assert set(y["group"].unique()) <= {0, 1}
    assert isinstance(y["site"].dtype, pd.CategoricalDtype)
    assert list(y["site"].cat.categories) == [0, 1, 2]


@pytest.mark.parametrize(
    "n_regions, atlas", [(8, 100), (37, 100), (100, 100), (150, 200), (400, 400)]
)
def test_regions_come_from_the_next_larger_atlas(n_regions, atlas):
    X, _, params = make_brain_dynamics(
        n_subjects=2, n_timepoints=20, n_regions=n_regions, random_state=0, return_params=True
    )
    assert X[0].shape == (20, n_regions)
    full = load_group_connectivity(atlas)
    np.testing.assert_allclose(params["group_connectivity"], full[:n_regions, :n_regions])
    np.testing.assert_allclose(np.diagonal(full), 1.0)


def test_same_seed_same_data_other_seed_other_data():
    X1, y1 = make_brain_dynamics(n_subjects=5, n_timepoints=30, random_state=3)
    X2, y2 = make_brain_dynamics(n_subjects=5, n_timepoints=30, random_state=3)
    X3, y3 = make_brain_dynamics(n_subjects=5, n_timepoints=30, random_state=4)
    for a, b in zip(X1, X2):
        np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(y1, y2)
    assert not any(np.allclose(a, c) for a, c in zip(X1, X3))
    assert not np.allclose(y1["age"], y3["age"])


def test_random_state_types():
    X_int, _ = make_brain_dynamics(n_subjects=2, n_timepoints=20, random_state=5)
    X_gen, _ = make_brain_dynamics(
        n_subjects=2, n_timepoints=20, random_state=np.random.default_rng(5)
    )
    np.testing.assert_array_equal(X_int[0], X_gen[0])
    X_rs1, _ = make_brain_dynamics(
        n_subjects=2, n_timepoints=20, random_state=np.random.RandomState(5)
    )
    X_rs2, _ = make_brain_dynamics(
        n_subjects=2, n_timepoints=20, random_state=np.random.RandomState(5)
    )
    np.testing.assert_array_equal(X_rs1[0], X_rs2[0])
    X_none, _ = make_brain_dynamics(n_subjects=2, n_timepoints=20, random_state=None)
    assert X_none[0].shape == (20, 100)
    with pytest.raises(ValueError, match="random_state"):
        make_brain_dynamics(n_subjects=2, n_timepoints=20, random_state="seed")


def test_connectivity_follows_the_hcp_group_matrix(cohort):
    X, _, params = cohort
    group = params["group_connectivity"]
    upper = np.triu_indices(group.shape[0], 1)
    correlations = np.array([np.corrcoef(x.T)[upper] for x in X])
    # Measured over seeds 0-9 (60 subjects): 0.70-0.83 for the mean, 0.30-0.54 per subject;
    # below 1 because of noise, site structure, phenotype patterns and subject heterogeneity.
    assert np.corrcoef(correlations.mean(0), group[upper])[0, 1] > 0.6
    per_subject = [np.corrcoef(c, group[upper])[0, 1] for c in correlations]
    assert np.median(per_subject) > 0.25
    # The true subject matrices are valid correlation matrices near the group one.
    truth = params["connectivity"]
    np.testing.assert_allclose(np.diagonal(truth, axis1=1, axis2=2), 1.0)
    assert (np.linalg.eigvalsh(truth)[:, 0] > 0).all()
    assert np.corrcoef(truth.mean(0)[upper], group[upper])[0, 1] > 0.9


def test_age_lengthens_the_timescales_of_the_age_regions(cohort):
    X, y, params = cohort
    # The haemodynamic response dominates the first lags, so look ~8 s ahead (4 frames at TR 2).
    lag = 4
    age_regions = params["age_regions"]
    others = np.setdiff1d(
        np.arange(X[0].shape[1]), np.union1d(age_regions, params["group_regions"])
    )
    acf = np.array([_autocorrelation(x, lag) for x in X])
    r_age = np.corrcoef(y["age"], acf[:, age_regions].mean(1))[0, 1]
    r_other = np.corrcoef(y["age"], acf[:, others].mean(1))[0, 1]
    # Measured over seeds 0-9 (60 subjects): 0.32-0.61.
    assert r_age > 0.25
    assert r_age > r_other
    # The ground truth itself: timescales of the age regions grow with age.
    r_true = np.corrcoef(y["age"], np.log(params["timescales"][:, age_regions]).mean(1))[0, 1]
    assert r_true > 0.8
    # And group lengthens the timescales of the group regions.
    group_acf = acf[:, params["group_regions"]].mean(1)
    assert group_acf[y["group"] == 1].mean() > group_acf[y["group"] == 0].mean()


@pytest.mark.parametrize("n_subjects", [1, 2, 51, 60])
def test_group_is_balanced(n_subjects):
    _, y = make_brain_dynamics(n_subjects=n_subjects, n_timepoints=10, random_state=0)
    counts = np.bincount(y["group"], minlength=2)
    assert abs(counts[0] - counts[1]) <= 1


def test_sites_and_phenotypes_vary(cohort):
    _, y, _ = cohort
    assert y["site"].nunique() == 3
    assert y["age"].std() > 10


@pytest.mark.parametrize("n_regions", [0, 7, 401, 1000, 100.0, True, "100"])
def test_bad_n_regions(n_regions):
    with pytest.raises(ValueError, match="n_regions"):
        make_brain_dynamics(n_subjects=2, n_timepoints=20, n_regions=n_regions)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_subjects": 0}, "n_subjects"),
        ({"n_timepoints": 7}, "n_timepoints"),
        ({"t_r": 0}, "t_r"),
        ({"t_r": float("nan")}, "t_r"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_brain_dynamics(**{"n_subjects": 2, "n_timepoints": 20, **kwargs})


def test_other_tr():
    X, _ = make_brain_dynamics(n_subjects=3, n_timepoints=100, t_r=0.72, random_state=0)
    X2, _ = make_brain_dynamics(n_subjects=3, n_timepoints=100, t_r=2.0, random_state=0)
    # Shorter TR, smoother series frame to frame.
    lag1 = np.mean([_autocorrelation(x, 1).mean() for x in X])
    lag1_slow = np.mean([_autocorrelation(x, 1).mean() for x in X2])
    assert lag1 > lag1_slow


def test_the_haemodynamic_response_is_the_same_in_seconds_at_any_tr():
    peaks = {}
    for t_r in (0.72, 2.0):
        *_, params = make_brain_dynamics(n_subjects=2, n_timepoints=40, t_r=t_r, random_state=0,
                                         return_params=True)
        hrf = params["hrf"]
        assert len(hrf) == pytest.approx(32.0 / t_r, abs=1)  # sampled every t_r seconds
        peaks[t_r] = np.argmax(hrf) * t_r
    assert peaks[0.72] == pytest.approx(5.0, abs=0.8) and peaks[2.0] == pytest.approx(5.0, abs=1.1)


@pytest.mark.parametrize("t_r", [0.5, 2.0])
def test_the_site_drift_decorrelates_in_seconds_at_any_tr(t_r):
    # Lag-one correlation 0.95 per second: 0.95 ** t_r per frame, with unit variance.
    *_, params = make_brain_dynamics(n_subjects=4, n_timepoints=2000, n_regions=8, t_r=t_r,
                                     random_state=0, return_params=True)
    drift = params["drift"]
    assert drift.shape == (4, 2000)
    lag1 = _autocorrelation(drift.T, 1).mean()
    assert lag1 == pytest.approx(0.95**t_r, abs=0.015)
    assert drift.var() == pytest.approx(1.0, abs=0.35)


def test_default_size():
    # its speed is measured by benchmarks/bench_synthetic.py, not here
    X, y = make_brain_dynamics(random_state=0)
    assert len(X) == 120 and X[0].shape == (200, 100) and len(y) == 120


@pytest.mark.parametrize("n_regions", [100, 150])
def test_the_group_connectivity_is_brainspaces_schaefer_matrix(n_regions):
    from brainspace.datasets import load_group_fc

    scale = 100 if n_regions <= 100 else 200
    matrix = load_group_fc("schaefer", scale=scale)[:n_regions, :n_regions]
    np.testing.assert_array_equal(load_group_connectivity(n_regions), (matrix + matrix.T) / 2)

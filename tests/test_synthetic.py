"""Tests of the synthetic data generator ``make_brain_dynamics``."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import gamma

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
    X_rs3, _ = make_brain_dynamics(  # the RandomState's own state seeds the data
        n_subjects=2, n_timepoints=20, random_state=np.random.RandomState(6)
    )
    assert not np.allclose(X_rs1[0], X_rs3[0])
    X_none, _ = make_brain_dynamics(n_subjects=2, n_timepoints=20, random_state=None)
    assert X_none[0].shape == (20, 100)
    with pytest.raises(ValueError, match="random_state"):
        make_brain_dynamics(n_subjects=2, n_timepoints=20, random_state="seed")
    with pytest.raises(ValueError, match="random_state"):  # a bool is no seed
        make_brain_dynamics(n_subjects=2, n_timepoints=20, random_state=True)


def test_random_state_none_draws_from_numpys_global_generator():
    """As scikit-learn's make_* functions: None takes its randomness from NumPy's global
    RandomState, so that np.random.seed before the call reproduces the data."""
    def draw():
        return make_brain_dynamics(n_subjects=2, n_timepoints=20, random_state=None)[0][0]

    state = np.random.get_state()
    try:
        np.random.seed(7)
        first, second = draw(), draw()
        np.random.seed(7)
        np.testing.assert_array_equal(draw(), first)
    finally:
        np.random.set_state(state)
    assert not np.array_equal(first, second)


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


def test_age_is_uniform_on_8_to_80_years():
    """The documented range: no subject younger than 8 (whose scaled age would be negative,
    and its effects reversed) or older than 80, and both ends reached."""
    _, y = make_brain_dynamics(n_subjects=400, n_timepoints=8, n_regions=8, random_state=0)
    age = y["age"].to_numpy()
    assert age.min() >= 8 and age.max() <= 80
    assert age.min() < 9 and age.max() > 79  # 1 year of 72 at each end, missed 4 in 1000
    assert np.mean(age) == pytest.approx(44, abs=3)  # sd of the mean: 72 / sqrt(12 * 400) ~ 1


def test_the_group_split_is_drawn_anew_for_each_seed():
    """The balanced split is a random one, not the subjects dealt out in turn: other seeds
    give other groups, and the subjects' order says nothing of their group."""
    splits = [tuple(make_brain_dynamics(n_subjects=20, n_timepoints=8, n_regions=8,
                                        random_state=seed)[1]["group"]) for seed in range(3)]
    assert len(set(splits)) == 3
    assert (0, 1) * 10 not in splits and (1, 0) * 10 not in splits


def test_sites_and_phenotypes_vary(cohort):
    _, y, _ = cohort
    assert y["site"].nunique() == 3
    assert y["age"].std() > 10
    assert (y["age"] % 1 != 0).all()  # uniform on [8, 80], not whole years
    # sites are drawn one subject at a time, not dealt out evenly as the groups are (20 each
    # of 60 has a chance of 1% under uniform draws)
    assert y["site"].value_counts().nunique() > 1


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
    # The same 600 s of the same subjects sampled every 0.5 s and every 2 s.
    acf = {}
    for t_r in (0.5, 2.0):
        X, _ = make_brain_dynamics(n_subjects=10, n_timepoints=int(600 / t_r), t_r=t_r,
                                   random_state=0)
        acf[t_r] = {lag: np.mean([_autocorrelation(x, round(lag / t_r)).mean() for x in X])
                    for lag in (0.5, 2.0, 6.0, 10.0) if lag >= t_r}
    # Shorter TR, smoother series frame to frame (measured over seeds 0-5: 0.036-0.054 higher;
    # the white measurement noise dominates the lag-one correlation at either TR).
    assert acf[0.5][0.5] > acf[2.0][2.0] + 0.02
    # Timescales are in seconds: the same correlation at the same lag in seconds. Measured
    # over seeds 0-3: within 0.006 (0.1 apart at 6 s when the AR(1) ignores the TR).
    for lag in (2.0, 6.0, 10.0):
        assert acf[0.5][lag] == pytest.approx(acf[2.0][lag], abs=0.03)


def test_the_haemodynamic_response_is_the_same_in_seconds_at_any_tr():
    peaks = {}
    for t_r in (0.72, 2.0):
        *_, params = make_brain_dynamics(n_subjects=2, n_timepoints=40, t_r=t_r, random_state=0,
                                         return_params=True)
        hrf = params["hrf"]
        assert len(hrf) == pytest.approx(32.0 / t_r, abs=1)  # sampled every t_r seconds
        # The documented double gamma (shapes 6 and 16, ratio 1/6), with unit energy.
        times = np.arange(len(hrf)) * t_r
        expected = gamma.pdf(times, 6.0) - gamma.pdf(times, 16.0) / 6.0
        np.testing.assert_allclose(hrf, expected / np.linalg.norm(expected), atol=1e-12)
        peaks[t_r] = np.argmax(hrf) * t_r
        # the AR(1) coefficients are those of the timescales at this TR
        np.testing.assert_allclose(params["phi"], np.exp(-t_r / params["timescales"]))
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


@pytest.mark.parametrize("n_regions", [8, 15, 24, 39, 40, 100])
def test_communities_and_principal_axis_are_as_documented(n_regions):
    *_, params = make_brain_dynamics(n_subjects=2, n_timepoints=10, n_regions=n_regions,
                                     random_state=0, return_params=True)
    group = params["group_connectivity"]
    # n_regions // 8 communities (2 to 7), numbered by size: A = 0 is the largest.
    n_networks = min(max(n_regions // 8, 2), 7)
    assert params["n_networks"] == n_networks
    sizes = np.bincount(params["networks"], minlength=n_networks)
    assert len(sizes) == n_networks and (np.diff(sizes) <= 0).all()
    assert params["age_networks"] == (0, 1)
    assert params["group_networks"] == (2 % n_networks, 3 % n_networks)
    # The principal axis is the second eigenvector, the first (visual) region at its negative end.
    axis = params["principal_axis"]
    values = np.linalg.eigvalsh(group)
    np.testing.assert_allclose(group @ axis, values[-2] * axis, atol=1e-8)
    assert axis[0] < 0
    # Each region's rank along the axis, from 0 (unimodal end) to 1 (transmodal end).
    np.testing.assert_allclose(params["axis_rank"],
                               np.argsort(np.argsort(axis)) / (n_regions - 1))
    # The timescale regions: a quarter at each end of the axis (rounded: 10 of 39).
    n_quarter = round(n_regions / 4)
    order = np.argsort(axis)
    np.testing.assert_array_equal(params["age_regions"], np.sort(order[-n_quarter:]))
    np.testing.assert_array_equal(params["group_regions"], np.sort(order[:n_quarter]))


def test_age_and_group_shift_the_documented_couplings(cohort):
    _, y, params = cohort
    networks = params["networks"]
    a, b = params["age_networks"]
    c, d = params["group_networks"]
    z = np.arctanh(np.clip(params["connectivity"], -0.999999, 0.999999))
    design = np.column_stack([np.ones(len(y)), (y["age"] - 8) / 72, y["group"]])

    def effects(k, m):
        """Slopes of the subjects' mean Fisher z between communities k and m on age and group."""
        pairs = np.outer(networks == k, networks == m)
        pairs = pairs | pairs.T
        np.fill_diagonal(pairs, False)
        return np.linalg.lstsq(design, z[:, pairs].mean(1), rcond=None)[0][1:]

    # The patterns are -0.25 within A, +0.25 between A and B (age), +0.15 between C and D and
    # -0.1 within D (group), but making each subject's matrix a valid correlation matrix (eigen-
    # clipping) takes part of them back: measured over seeds 0-3 (60 subjects), -0.17 to -0.2
    # within A, +0.01 to +0.05 between A and B, +0.07 to +0.1 between C and D, -0.05 to -0.08
    # within D, and no effect of the other phenotype (|slope| < 0.035).
    age_aa, group_aa = effects(a, a)
    age_ab, group_ab = effects(a, b)
    age_cd, group_cd = effects(c, d)
    age_dd, group_dd = effects(d, d)
    assert -0.25 <= age_aa < -0.12
    assert 0 < age_ab < 0.25
    assert 0.05 < group_cd <= 0.15
    assert -0.1 <= group_dd < -0.03
    for other in (group_aa, group_ab, age_cd, age_dd):
        assert abs(other) < 0.05
    # Within B, age acts only through the clipping: much less than within A.
    assert abs(effects(b, b)[0]) < abs(age_aa) / 2


def test_timescale_effects_have_the_documented_sizes(cohort):
    _, y, params = cohort
    # Baseline 2 s to 6 s along the principal axis, then log-normal jitter and the phenotypes.
    baseline = np.log(2.0) + params["axis_rank"] * np.log(3.0)
    residual = np.log(params["timescales"]) - baseline
    design = np.column_stack([np.ones(len(y)), (y["age"] - 8) / 72, y["group"]])
    age_regions, group_regions = params["age_regions"], params["group_regions"]
    others = np.setdiff1d(np.arange(residual.shape[1]), np.union1d(age_regions, group_regions))

    def effects(regions):
        return np.linalg.lstsq(design, residual[:, regions].mean(1), rcond=None)[0]

    # log tau += 0.9 from age 8 to 80 and += 0.55 in group 1; measured over seeds 0-3:
    # within 0.02 of them, and within 0.015 of 0 for the intercepts and the other regions.
    np.testing.assert_allclose(effects(age_regions), [0, 0.9, 0], atol=0.05)
    np.testing.assert_allclose(effects(group_regions), [0, 0, 0.55], atol=0.05)
    np.testing.assert_allclose(effects(others), [0, 0, 0], atol=0.05)
    assert residual[:, others].std() == pytest.approx(0.15, abs=0.015)  # the jitter
    # ... drawn per subject, not once per region (over subjects, seeds 0-3: 0.146-0.150)
    assert residual[:, others].std(0).mean() == pytest.approx(0.15, abs=0.015)


def test_each_region_signal_has_unit_variance_at_every_site(cohort):
    # X = gain * signal + sd_drift * drift * map + sd_noise * noise, the signal of unit variance
    # and the site map of unit mean square: take the drift and the noise out of each subject's
    # mean variance, and divide by the mean squared gain of its site.
    X, y, params = cohort
    sites = y["site"].to_numpy().astype(int)
    for k, (drift_sd, noise_sd) in enumerate(zip((0.4, 0.6, 0.5), (1.0, 1.2, 0.9))):
        subjects = np.flatnonzero(sites == k)
        assert len(subjects) >= 10
        variance = np.array([X[s].var(0, ddof=1).mean() for s in subjects])
        drift = drift_sd**2 * params["drift"][subjects].var(1, ddof=1)
        signal = (variance - drift - noise_sd**2) / (params["site_gain"][k] ** 2).mean()
        # Measured over seeds 0-3: 0.95-1.01 (a slow series' sample variance runs a little low).
        assert signal.mean() == pytest.approx(1.0, abs=0.1)


def test_the_signal_of_every_region_has_unit_variance_whatever_its_timescale(monkeypatch):
    """The BOLD signal is scaled to unit variance region by region (its filtered AR(1)
    variance grows with the timescale): without drift and noise, and divided by the site
    gain, each region's variance is 1, unrelated to its timescale."""
    from brainjepa_sk.datasets import _synthetic

    monkeypatch.setattr(_synthetic, "_SITE_NOISE", (0.0, 0.0, 0.0))
    monkeypatch.setattr(_synthetic, "_SITE_DRIFT", (0.0, 0.0, 0.0))
    X, y, params = make_brain_dynamics(n_subjects=6, n_regions=20, n_timepoints=3000,
                                       random_state=0, return_params=True)
    gains = params["site_gain"][y["site"].to_numpy().astype(int)]
    variance = np.stack([x / gain for x, gain in zip(X, gains)]).var(axis=1)
    # seed 0: 0.90-1.13, correlation with the log-timescale -0.03 (0.74-1.30 and 0.92 when
    # the signal is scaled by the mean variance over the regions)
    assert np.abs(variance - 1).max() < 0.2
    assert abs(np.corrcoef(variance.ravel(), np.log(params["timescales"]).ravel())[0, 1]) < 0.3


def test_the_site_drift_has_the_documented_size_at_each_site():
    # The drift enters each region through the site's spatial map (unit mean square) times the
    # site's standard deviation: regress the regions on the known drift, pooled over the site.
    X, y, params = make_brain_dynamics(n_subjects=60, n_timepoints=1000, n_regions=8,
                                       random_state=0, return_params=True)
    sites = y["site"].to_numpy().astype(int)
    drift = params["drift"] - params["drift"].mean(1, keepdims=True)
    for k, drift_sd in enumerate((0.4, 0.6, 0.5)):
        subjects = np.flatnonzero(sites == k)
        slopes = sum(X[s].T @ drift[s] for s in subjects) / (drift[subjects] ** 2).sum()
        # Measured over seeds 0-5: within 0.012 (0.05 or more off somewhere when the maps are
        # scaled over the sites instead of over the regions).
        assert np.sqrt((slopes**2).mean()) == pytest.approx(drift_sd, abs=0.03)
        # the map spreads the drift over the regions with their own signs and sizes, not
        # evenly (the relative slopes' spread, seed 0: 0.97-0.99; about 0.03 without a map)
        assert (slopes / drift_sd).std() > 0.5


def _documented_means(y, params):
    """Each subject's connectivity mean as documented, reconstructed independently: the group
    matrix shifted in Fisher z by the age and group patterns, eigenvalues clipped at 0.01,
    unit diagonal."""
    networks = params["networks"]
    (a, b), (c, d) = params["age_networks"], params["group_networks"]

    def block(k, m):
        pairs = np.outer(networks == k, networks == m)
        pairs = (pairs | pairs.T).astype(float)
        np.fill_diagonal(pairs, 0.0)
        return pairs

    p_age = -0.25 * block(a, a) + 0.25 * block(a, b)
    p_group = 0.15 * block(c, d) - 0.1 * block(d, d)
    z0 = np.arctanh(np.clip(params["group_connectivity"], -0.999, 0.999))
    np.fill_diagonal(z0, 0.0)
    means = []
    for age01, group in zip((y["age"] - 8) / 72, y["group"]):
        mean = np.tanh(z0 + age01 * p_age + group * p_group)
        np.fill_diagonal(mean, 1.0)
        values, vectors = np.linalg.eigh(mean)
        mean = (vectors * np.maximum(values, 0.01)) @ vectors.T
        scale = 1 / np.sqrt(np.diagonal(mean))
        means.append(mean * scale[:, None] * scale[None, :])
    return np.array(means)


def test_each_subjects_connectivity_is_a_wishart_draw_around_the_documented_mean(cohort):
    _, y, params = cohort
    networks = params["networks"]
    means = _documented_means(y, params)
    off = ~np.eye(len(networks), dtype=bool)
    residual = params["connectivity"][:, off] - means[:, off]
    # Unbiased around the mean: the residual averaged over subjects is noise only (root mean
    # square over the pairs, seeds 0-5: 0.007-0.009; 0.03 without the Fisher z of the group).
    assert np.sqrt((residual.mean(0) ** 2).mean()) < 0.015
    # Wishart with nu = max(200, R + 50) degrees of freedom: a sample correlation's standard
    # deviation is (1 - rho^2) / sqrt(nu) (standardized, seeds 0-5: 0.986-1.009).
    standardized = residual / (1 - means[:, off] ** 2) * np.sqrt(200)
    assert standardized.std() == pytest.approx(1.0, abs=0.06)


def test_the_eigenvalue_clipping_floor_is_a_hundredth():
    from brainjepa_sk.datasets._synthetic import _nearest_correlation

    rng = np.random.default_rng(0)
    vectors = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    matrix = (vectors * [-0.5, 0.2, 0.5, 1.0, 1.8, 3.0]) @ vectors.T
    expected = (vectors * [0.01, 0.2, 0.5, 1.0, 1.8, 3.0]) @ vectors.T
    scale = 1 / np.sqrt(np.diagonal(expected))
    np.testing.assert_allclose(_nearest_correlation(matrix),
                               expected * scale[:, None] * scale[None, :], atol=1e-12)


def test_site_gains_have_the_documented_levels_and_jitter(cohort):
    # gain (1.0, 0.85, 1.2) by site times a log-normal gain per site and region (sd 0.15);
    # measured over seeds 0-3: means within 0.025 and standard deviations within 0.02
    log_gain = np.log(cohort[2]["site_gain"])
    assert log_gain.shape == (3, 100)
    np.testing.assert_allclose(log_gain.mean(1), np.log([1.0, 0.85, 1.2]), atol=0.05)
    np.testing.assert_allclose(log_gain.std(1), 0.15, atol=0.03)


def test_subjects_have_their_own_noise_and_each_site_its_own_drift_map(cohort):
    X, y, params = cohort
    # independent subjects: no two consecutive subjects' series correlate (seeds 0-3: at most
    # 0.08; a shared measurement noise gives about 0.4)
    flat = [x.ravel() for x in X]
    assert max(abs(np.corrcoef(u, v)[0, 1]) for u, v in zip(flat, flat[1:])) < 0.2
    # each site's drift enters the regions through its own random map: the regions' slopes on
    # the drift do not correlate between sites (seeds 0-3: |r| <= 0.16 over 100 regions)
    sites = y["site"].to_numpy().astype(int)
    drift = params["drift"] - params["drift"].mean(1, keepdims=True)
    slopes = [sum(X[s].T @ drift[s] for s in np.flatnonzero(sites == k))
              / (drift[sites == k] ** 2).sum() for k in range(3)]
    assert np.abs(np.corrcoef(slopes)[np.triu_indices(3, 1)]).max() < 0.5


def test_the_site_drift_starts_at_its_steady_state():
    # unit variance from the first frame on, not an AR(1) started at zero (over 300 subjects
    # at frames 0-2, seeds 0-5: 0.89-1.05; 0.33 when the drift's burn-in is dropped)
    *_, params = make_brain_dynamics(n_subjects=300, n_timepoints=10, n_regions=8,
                                     random_state=0, return_params=True)
    assert params["drift"][:, :3].var(0).mean() > 0.7


def test_the_site_categories_are_the_three_sites_whichever_are_drawn():
    # one subject is at one site, but the column still has the documented categories 0, 1, 2
    _, y = make_brain_dynamics(n_subjects=1, n_timepoints=8, n_regions=8, random_state=0)
    assert y["site"].nunique() == 1
    assert list(y["site"].cat.categories) == [0, 1, 2]


# -- round 24: what planted bugs in datasets/_synthetic.py showed the tests above let through --


def test_the_wishart_degrees_of_freedom_grow_with_the_regions():
    """nu = max(200, R + 50): 250 degrees of freedom at 200 regions, not 200 nor R + 5. A
    subject's matrix whitened by its documented mean, M^-1 C_s, has the eigenvalues of a
    Wishart(I, nu) / nu, which spread with variance R / nu (Marchenko-Pastur): 0.8 here."""
    _, y, params = make_brain_dynamics(n_subjects=6, n_timepoints=8, n_regions=200,
                                       random_state=0, return_params=True)
    spreads = [np.linalg.eigvals(np.linalg.solve(mean, subject)).real.var()
               for mean, subject in zip(_documented_means(y, params), params["connectivity"])]
    # Measured over seeds 0-5 (mean of 6 subjects): 0.79-0.85; 0.96-1.05 with nu = R + 5
    # (205), 1 with nu = 200.
    assert np.mean(spreads) == pytest.approx(200 / 250, abs=0.08)


def test_the_first_frames_are_at_their_steady_state():
    """The frames before the haemodynamic response and the AR(1) settle are dropped (step 6):
    kept, the first frames of the response to sources that start at frame 0 are nearly
    silent (the response is 0 at lag 0), and their variance half that of later frames."""
    X, _ = make_brain_dynamics(n_subjects=20, n_timepoints=30, n_regions=16, random_state=0)
    X = np.stack(X)
    # seeds 0-5: 0.82-1.14; 0.48-0.66 with the first frames kept
    assert X[:, :2].var() / X[:, -10:].var() > 0.75

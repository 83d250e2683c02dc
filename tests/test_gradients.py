"""GradientPositioner: group gradients with BrainSpace, per-subject aligned gradients."""

import pickle
import re
import warnings
from fractions import Fraction
from pathlib import Path

import brainspace
import numpy as np
import pandas as pd
import pytest
from brainspace.gradient import GradientMaps
from nilearn.connectome import ConnectivityMeasure, vec_to_sym_matrix
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline

from brainjepa_sk.gradients import GradientPositioner

SCHAEFER_400 = (
    Path(brainspace.__file__).parent
    / "datasets"
    / "matrices"
    / "main_group"
    / "schaefer_400_mean_connectivity_matrix.csv"
)
N_REGIONS, N_TIMEPOINTS, N_SUBJECTS = 20, 100, 6
# 20 regions keep int(20 * 0.1) = 1 connection per row at the paper's sparsity of 0.9 (an error),
# so the small synthetic tests use 0.5.
SMALL = {"n_components": 3, "sparsity": 0.5}


def _abs_r(a, b):
    return abs(np.corrcoef(a, b)[0, 1])


def _subjects(n_subjects=N_SUBJECTS, n_regions=N_REGIONS, seed=0, loadings=None):
    """Time series from a rank-3 covariance plus independent noise."""
    rng = np.random.default_rng(seed)
    if loadings is None:
        loadings = rng.standard_normal((n_regions, 3)) * np.array([3.0, 2.0, 1.5])
    return np.stack(
        [
            rng.standard_normal((N_TIMEPOINTS, 3)) @ loadings.T
            + rng.standard_normal((N_TIMEPOINTS, n_regions))
            for _ in range(n_subjects)
        ]
    )


@pytest.fixture(scope="module")
def X():
    return _subjects()


@pytest.fixture(scope="module")
def fitted(X):
    return GradientPositioner(**SMALL).fit(X)


# --- BrainSpace's own HCP group matrix ------------------------------------------------------------


def test_matches_brainspace_on_hcp_schaefer400():
    if not SCHAEFER_400.is_file():
        pytest.skip(f"this brainspace install has no bundled matrix at {SCHAEFER_400}")
    matrix = np.loadtxt(SCHAEFER_400, delimiter=",")
    ours = GradientPositioner(kind="connectivity").fit(matrix)
    theirs = GradientMaps(
        n_components=30, approach="dm", kernel="normalized_angle", random_state=0
    ).fit(matrix, sparsity=0.9)
    assert ours.gradients_.shape == (400, 30)
    assert ours.gradients_.dtype == np.float64
    for c in range(3):
        assert _abs_r(ours.gradients_[:, c], theirs.gradients_[:, c]) >= 0.99
    np.testing.assert_allclose(ours.lambdas_, theirs.lambdas_, rtol=1e-8)
    np.testing.assert_allclose(ours.group_connectivity_, matrix)


@pytest.mark.parametrize("approach, kernel", [("dm", "cosine"), ("le", "normalized_angle"),
                                              ("pca", "gaussian"), ("pca", None)])
def test_approach_and_kernel_reach_brainspace(fitted, approach, kernel):
    # each setting gives BrainSpace's own result for it (the defaults would differ)
    matrix = fitted.group_connectivity_
    ours = GradientPositioner(kind="connectivity", approach=approach, kernel=kernel,
                              **SMALL).fit(matrix)
    theirs = GradientMaps(n_components=3, approach=approach, kernel=kernel,
                          random_state=0).fit(matrix, sparsity=0.5)
    np.testing.assert_allclose(ours.lambdas_, theirs.lambdas_, rtol=1e-6)
    for c in range(3):
        assert _abs_r(ours.gradients_[:, c], theirs.gradients_[:, c]) >= 0.999
    default = GradientPositioner(kind="connectivity", **SMALL).fit(matrix)
    assert not np.allclose(ours.lambdas_, default.lambdas_)


def _two_blocks(n=N_REGIONS):
    """A connectivity matrix of two unconnected halves."""
    matrix = np.zeros((n, n))
    matrix[: n // 2, : n // 2] = matrix[n // 2:, n // 2:] = 0.6
    np.fill_diagonal(matrix, 1.0)
    return matrix


def _smooth(n=N_REGIONS):
    """A connected connectivity matrix: one smooth axis."""
    position = np.linspace(0, 1, n)
    return np.exp(-np.subtract.outer(position, position) ** 2 / 0.1)


def test_kernel_none_lets_no_brainspace_warning_through():
    """The sparsified matrix is not symmetric by design; BrainSpace's warning that it symmetrizes
    it said nothing the user could act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = GradientPositioner(kind="connectivity", kernel=None, **SMALL).fit(_smooth())
        fitted.transform(_smooth())
    assert np.isfinite(fitted.gradients_).all()


def _row_normalized(x):
    """An affinity kernel that is not symmetric: each row of |x| divided by its sum."""
    return np.abs(x) / np.abs(x).sum(axis=1, keepdims=True)


def test_an_asymmetric_affinity_from_a_callable_kernel_is_warned_of():
    # only kernel=None makes an asymmetric affinity by design; a callable's is symmetrized by
    # BrainSpace, which says so
    with pytest.warns(UserWarning, match="Affinity is not symmetric"):
        GradientPositioner(kind="connectivity", kernel=_row_normalized, **SMALL).fit(_smooth())


def _first_rows(x):
    """A kernel that returns too few rows (a slice of the affinity)."""
    return np.abs(x)[:3, :3]


@pytest.mark.parametrize("kernel, returned", [
    (_first_rows, r"an array of shape \(3, 3\)"),
    (lambda x: np.abs(x).ravel(), r"an array of shape \(400,\)"),
    (lambda x: None, "a NoneType"),
    (lambda x: np.full(x.shape, "a"), "an array of <U1"),
], ids=["rows", "flat", "None", "text"])
def test_a_callable_kernel_returning_no_affinity_matrix_is_named(kernel, returned):
    """BrainSpace's errors named no kernel and misled: 'n_components=3 is too large for an
    affinity matrix of size 3', 'Array is not square', "'<' not supported between instances
    of 'NoneType' and 'int'"."""
    with pytest.raises(ValueError, match=rf"^kernel .*(_first_rows|<lambda>) returned "
                                         rf"{returned} for 20 regions: a kernel callable takes "
                                         r"the sparsified \(20, 20\) connectivity and returns "
                                         r"the \(20, 20\) affinity"):
        GradientPositioner(kind="connectivity", kernel=kernel, **SMALL).fit(_smooth())
    # an affinity of the right shape, as a list, is taken
    symmetric = GradientPositioner(kind="connectivity", **SMALL,
                                   kernel=lambda x: (np.abs(x) + np.abs(x).T).tolist())
    assert symmetric.fit(_smooth()).gradients_.shape == (20, 3)


def test_a_brainspace_warning_passed_on_is_shown_once_a_transform():
    """BrainSpace's asymmetry warning, passed on for a callable kernel, had been shown again
    for every subject transformed (thousands of lines for thousands of subjects), whatever the
    filter: each is shown once a call."""
    positioner = GradientPositioner(kind="connectivity", kernel=_row_normalized, **SMALL)
    with pytest.warns(UserWarning, match="Affinity is not symmetric"):
        positioner.fit(_smooth())
    for action in ("default", "always"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter(action)
            positioner.transform(np.stack([_smooth()] * 4))
        assert [str(w.message) for w in caught] == [
            "Affinity is not symmetric. Making symmetric."], action


def test_a_brainspace_warning_passed_on_is_still_filtered_by_its_module(monkeypatch):
    """The warnings of BrainSpace's fit, recorded to tell a disconnected graph, are passed on
    under BrainSpace's module name: a filter by module (``module="brainspace"``) had stopped
    applying to them."""
    import brainspace.gradient.gradient as brainspace_gradient

    fit = brainspace_gradient.GradientMaps.fit
    scope = {"__name__": brainspace_gradient.__name__, "warnings": warnings, "fit": fit}
    exec(compile("def warning_fit(self, *args, **kwargs):\n"
                 "    warnings.warn('said by brainspace', RuntimeWarning)\n"
                 "    return fit(self, *args, **kwargs)\n",
                 brainspace_gradient.__file__, "exec"), scope)
    monkeypatch.setattr(brainspace_gradient.GradientMaps, "fit", scope["warning_fit"])
    positioner = GradientPositioner(kind="connectivity", **SMALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="brainspace")
        positioner.fit(_smooth())
    assert not [w for w in caught if "said by brainspace" in str(w.message)]
    with pytest.warns(RuntimeWarning, match="said by brainspace"):  # shown without the filter
        positioner.fit(_smooth())


def test_a_disconnected_affinity_graph_is_named_not_returned_as_infinite_gradients():
    """A diffusion map of a graph in two parts gave infinite gradients with only BrainSpace's
    warnings; transform then failed in NumPy's SVD."""
    fitted = GradientPositioner(kind="connectivity", kernel=None, **SMALL).fit(_smooth())
    before = fitted.gradients_.copy()
    with pytest.raises(ValueError, match=r"gradients of the group connectivity are not finite: "
                                         r"with kernel=None .*disconnected parts"):
        fitted.fit(_two_blocks())
    np.testing.assert_array_equal(fitted.gradients_, before)  # the fitted one kept
    with pytest.raises(ValueError, match="gradients of subject 1 are not finite"):
        fitted.transform(np.stack([_smooth(), _two_blocks()]))
    # where the embedding stays finite, the split is warned of in this package's words, once
    laplacian = GradientPositioner(kind="connectivity", kernel=None, approach="le", **SMALL)
    with pytest.warns(UserWarning, match=r"group connectivity \(kernel=None, sparsity=0.5\) "
                                         r"falls apart into disconnected parts") as caught:
        laplacian.fit(_two_blocks())
    assert np.isfinite(laplacian.gradients_).all()
    assert not [w for w in caught if "Graph is not fully connected" in str(w.message)]
    laplacian.fit(_smooth())
    with pytest.warns(UserWarning, match="affinity graph of 2 of 3 subjects") as caught:
        laplacian.transform(np.stack([_two_blocks(), _smooth(), _two_blocks()]))
    assert len([w for w in caught if "affinity graph" in str(w.message)]) == 1


def test_threads_transforming_one_positioner_leave_the_warning_filters_as_they_were(monkeypatch):
    """Two threads calling transform on one fitted positioner: each records BrainSpace's
    warnings in a catch_warnings block, which swaps the process's filters; overlapping, the
    blocks restored each other's filters, leaving "always" in force for the whole process."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import brainspace.gradient.gradient as brainspace_gradient

    fit, inside, both_in = brainspace_gradient.GradientMaps.fit, [], threading.Event()

    def overlapping_fit(self, *args, **kwargs):
        inside.append(None)
        if len(inside) == 2:  # the second in leaves its block last: not the reverse order
            both_in.set()
            time.sleep(0.2)
        both_in.wait(timeout=0.5)  # the first in waits (a while at most) for the other thread
        return fit(self, *args, **kwargs)

    fitted = GradientPositioner(kind="connectivity", **SMALL).fit(_smooth())
    expected = fitted.transform(_smooth()[None])
    monkeypatch.setattr(brainspace_gradient.GradientMaps, "fit", overlapping_fit)
    before = list(warnings.filters)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: fitted.transform(_smooth()[None]), range(2)))
    assert warnings.filters == before
    for result in results:
        np.testing.assert_array_equal(result, expected)


# --- time-series path -----------------------------------------------------------------------------


def test_fitted_attributes(fitted):
    assert fitted.gradients_.shape == (N_REGIONS, 3)
    assert fitted.gradients_.dtype == np.float64
    assert fitted.lambdas_.shape == (3,)
    assert np.all(np.diff(fitted.lambdas_) <= 0)
    group = fitted.group_connectivity_
    assert group.shape == (N_REGIONS, N_REGIONS)
    np.testing.assert_array_equal(group, group.T)
    np.testing.assert_allclose(np.diag(group), 1.0)
    assert np.abs(group).max() <= 1.0
    assert fitted.n_features_in_ == N_REGIONS
    assert not hasattr(fitted, "feature_names_in_")


def test_group_is_fisher_z_mean_of_correlations(X, fitted):
    from nilearn.connectome import ConnectivityMeasure

    corr = ConnectivityMeasure(kind="correlation").fit_transform(list(X))
    off = ~np.eye(N_REGIONS, dtype=bool)
    expected = np.tanh(np.arctanh(corr[:, off]).mean(axis=0))
    np.testing.assert_allclose(fitted.group_connectivity_[off], expected, atol=1e-7)


def test_more_subjects_than_a_connectivity_chunk_all_count(monkeypatch):
    """Subjects are read a chunk at a time: with more of them than a chunk holds, every one
    still enters the group connectivity and gets its row of features (a chunk cut one short
    dropped a subject of each)."""
    from nilearn.connectome import ConnectivityMeasure

    from brainjepa_sk import gradients

    monkeypatch.setattr(gradients, "CONNECTIVITY_CHUNK", 4)
    X = _subjects(n_subjects=9)  # chunks of 4, 4 and 1
    positioner = GradientPositioner(**SMALL).fit(X)
    corr = ConnectivityMeasure(kind="correlation").fit_transform(list(X))
    off = ~np.eye(N_REGIONS, dtype=bool)
    expected = np.tanh(np.arctanh(corr[:, off]).mean(axis=0))
    np.testing.assert_allclose(positioner.group_connectivity_[off], expected, atol=1e-7)
    features = positioner.transform(X)
    assert features.shape == (9, N_REGIONS * SMALL["n_components"])
    # the last subject's row is its own, as when it is transformed alone
    np.testing.assert_allclose(features[-1], positioner.transform(X[-1:])[0], atol=1e-10)


def test_transform_aligned_to_group(X, fitted):
    features = fitted.transform(X)
    assert features.shape == (N_SUBJECTS, N_REGIONS * 3)
    assert features.dtype == np.float64
    per_subject = features.reshape(N_SUBJECTS, N_REGIONS, 3)  # region-major
    r_first = [_abs_r(g[:, 0], fitted.gradients_[:, 0]) for g in per_subject]
    # Observed: 0.994 to 0.999 on this data (second and third gradients >= 0.97).
    assert min(r_first) >= 0.98
    # Procrustes keeps the orientation of the group gradients, not only |r|.
    for g in per_subject:
        assert np.corrcoef(g[:, 0], fitted.gradients_[:, 0])[0, 1] > 0


def test_each_subjects_gradients_are_rotated_onto_the_group_gradients(X, fitted):
    # BrainSpace's Procrustes: the subject's own gradients times the orthogonal matrix closest
    # to the group gradients, with no centering or scaling
    from scipy.linalg import orthogonal_procrustes

    features = fitted.transform(X[:2]).reshape(2, N_REGIONS, 3)
    corr = ConnectivityMeasure(kind="correlation").fit_transform(list(X[:2]))
    for matrix, aligned in zip(corr, features):
        # the kernel named, as GradientPositioner does: BrainSpace 0.1.10's default is None;
        # random_state=0 seeds each subject as it seeded the group
        own = GradientMaps(n_components=3, kernel="normalized_angle", random_state=0)
        own = own.fit(matrix, sparsity=0.5)
        own = own.gradients_
        rotation, _ = orthogonal_procrustes(own, fitted.gradients_)
        np.testing.assert_allclose(aligned, own @ rotation, atol=1e-6)


def test_transform_does_not_depend_on_batch(X, fitted):
    features = fitted.transform(X)
    np.testing.assert_array_equal(fitted.transform([X[2]])[0], features[2])
    # A list of subjects of different lengths is accepted.
    ragged = fitted.transform([X[0], X[1][:60]])
    np.testing.assert_array_equal(ragged[0], features[0])


@pytest.mark.parametrize("approach", ["dm", "le", "pca"])
def test_the_group_connectivity_transforms_to_the_group_gradients(X, approach):
    # an int random_state seeds each subject's embedding as it seeded the group's in fit: the
    # diffusion map's eigen-solver starts from a random vector, and a different one moved
    # these gradients by up to 1% of their largest value
    corr = ConnectivityMeasure(kind="correlation").fit_transform(list(X))
    est = GradientPositioner(kind="connectivity", approach=approach, random_state=7,
                             **SMALL).fit(corr)
    group = est.transform([est.group_connectivity_])[0]
    np.testing.assert_allclose(group, est.gradients_.ravel(), rtol=0, atol=1e-12)
    # ... and a subject's features do not depend on the other subjects of the call
    alone = est.transform(corr[2:3])[0]
    np.testing.assert_array_equal(est.transform(corr)[2], alone)
    np.testing.assert_array_equal(
        est.transform([corr[0], est.group_connectivity_, corr[2]])[2], alone)
    np.testing.assert_array_equal(
        est.transform([corr[2], est.group_connectivity_])[1], group)


def test_a_subjects_matrix_is_symmetrized_as_the_group_is(X):
    # a matrix within the symmetry tolerance (as rounded in a saved file) is embedded as its
    # symmetric part in transform too: fitted alone, it transforms to the group gradients
    corr = ConnectivityMeasure(kind="correlation").fit_transform(list(X[:1]))[0]
    rounded = corr + np.triu(np.random.default_rng(0).uniform(-5e-7, 5e-7, corr.shape), 1)
    for approach in ("dm", "le", "pca"):
        est = GradientPositioner(kind="connectivity", approach=approach, **SMALL).fit(rounded)
        np.testing.assert_allclose(est.transform(rounded)[0], est.gradients_.ravel(), rtol=0,
                                   atol=1e-12)


def test_every_subject_of_a_call_gets_the_same_seed_from_a_random_state_instance(X):
    # a RandomState instance gives one seed a call, not one draw a subject: a subject's
    # features do not depend on its place in the batch
    est = GradientPositioner(**SMALL, random_state=np.random.RandomState(0)).fit(X)
    features = est.transform([X[2], X[2], X[2]])
    np.testing.assert_array_equal(features[1], features[0])
    np.testing.assert_array_equal(features[2], features[0])


def test_deterministic(X, fitted):
    again = GradientPositioner(**SMALL).fit(X)
    np.testing.assert_array_equal(again.gradients_, fitted.gradients_)
    np.testing.assert_array_equal(again.transform(X), fitted.transform(X))


def test_the_seed_moves_only_the_diffusion_map_and_only_a_little(X):
    # BrainSpace solves the non-symmetric diffusion operator with a symmetric eigen-solver, so
    # with "dm" the starting vector matters slightly (as documented); "le" and "pca" not at all
    def fit(approach, seed):
        return GradientPositioner(**SMALL, approach=approach, random_state=seed).fit(X)

    for approach in ("le", "pca"):
        np.testing.assert_allclose(fit(approach, 1).lambdas_, fit(approach, 0).lambdas_,
                                   rtol=1e-10)
    one, other = fit("dm", 0), fit("dm", 1)
    np.testing.assert_allclose(one.lambdas_, other.lambdas_, rtol=0.05)
    for c in range(3):
        assert _abs_r(one.gradients_[:, c], other.gradients_[:, c]) > 0.99


def test_lambdas_run_in_brainspaces_order_for_each_approach(fitted):
    # as documented: descending for "dm" and "pca", ascending for "le", column 0 principal
    matrix = fitted.group_connectivity_
    for approach, step_sign in (("dm", -1), ("pca", -1), ("le", 1)):
        est = GradientPositioner(kind="connectivity", approach=approach, **SMALL).fit(matrix)
        assert (np.sign(np.diff(est.lambdas_)) == step_sign).all(), approach
        if approach != "pca":
            gradients = est.gradients_
            largest = gradients[np.abs(gradients).argmax(axis=0), range(gradients.shape[1])]
            assert (largest > 0).all(), approach


def test_feature_names(X, fitted):
    names = fitted.get_feature_names_out()
    assert names.dtype == object
    assert len(names) == fitted.transform(X[:1]).shape[1] == N_REGIONS * 3
    assert list(names[:4]) == [
        "region0_gradient0",
        "region0_gradient1",
        "region0_gradient2",
        "region1_gradient0",
    ]
    assert names[-1] == f"region{N_REGIONS - 1}_gradient2"
    # set_output(transform="pandas") labels the columns with these names.
    frame = clone(fitted).set_output(transform="pandas").fit(X).transform(X)
    np.testing.assert_array_equal(frame.columns, names)
    np.testing.assert_array_equal(frame.to_numpy(), fitted.transform(X))
    # the names describe the fitted gradients, not an n_components set since
    np.testing.assert_array_equal(clone(fitted).fit(X).set_params(n_components=2)
                                  .get_feature_names_out(), names)


def test_input_features_of_a_fit_on_arrays_must_name_every_region(fitted):
    names = [f"roi_{i}" for i in range(N_REGIONS)]
    out = fitted.get_feature_names_out(names)
    assert len(out) == N_REGIONS * 3 and out[0] == "roi_0_gradient0"
    assert out[-1] == f"roi_{N_REGIONS - 1}_gradient2"
    with pytest.raises(ValueError, match=rf"input_features has {N_REGIONS - 1} names but "
                                         rf"{N_REGIONS} regions were seen in fit"):
        fitted.get_feature_names_out(names[:-1])


def test_feature_names_from_dataframes(X, fitted):
    columns = [f"roi_{i}" for i in range(N_REGIONS)]
    frames = [pd.DataFrame(x, columns=columns) for x in X]
    est = GradientPositioner(**SMALL).fit(frames)
    np.testing.assert_array_equal(est.feature_names_in_, columns)
    names = est.get_feature_names_out()
    assert list(names[:2]) == ["roi_0_gradient0", "roi_0_gradient1"]
    assert names[-1] == f"roi_{N_REGIONS - 1}_gradient2"
    np.testing.assert_array_equal(est.transform(frames), fitted.transform(X))
    np.testing.assert_array_equal(est.get_feature_names_out(columns), names)
    with pytest.raises(ValueError, match="feature_names_in_"):
        est.get_feature_names_out([f"x{i}" for i in range(N_REGIONS)])
    # the message names the first names that differ (NumPy's strings as plain ones), and a
    # wrong count as such
    swapped = np.array([columns[1], columns[0], *columns[2:]])
    with pytest.raises(ValueError, match=r"^input_features is not equal to feature_names_in_: "
                                         r"input_features\[0\] is 'roi_1' but "
                                         r"feature_names_in_\[0\] is 'roi_0', input_features"
                                         r"\[1\] is 'roi_0' but feature_names_in_\[1\] is "
                                         r"'roi_1' \(2 in all\)$"):
        est.get_feature_names_out(swapped)
    with pytest.raises(ValueError, match=rf"^input_features has 1 names but {N_REGIONS} "
                                         "regions were seen in fit$"):
        est.get_feature_names_out(columns[:1])
    renamed = [f.rename(columns={"roi_0": "other"}) for f in frames]
    with pytest.raises(ValueError, match="region names"):
        est.transform(renamed)
    # Refitting on plain arrays drops the names.
    assert not hasattr(est.fit(X), "feature_names_in_")


# --- errors ---------------------------------------------------------------------------------------


def test_wrong_region_count_in_transform(X, fitted):
    with pytest.raises(ValueError, match=rf"{N_REGIONS - 2} regions.*{N_REGIONS} regions"):
        fitted.transform(X[:, :, :-2])


def test_series_of_two_timepoints_are_refused_at_fit_and_transform(X, fitted):
    """Two frames correlate every pair of regions at +-1: no connectivity to embed."""
    with pytest.raises(ValueError, match="subject 0 has 2 timepoint.*at least 3"):
        GradientPositioner(**SMALL).fit(X[:, :2])
    with pytest.raises(ValueError, match="subject 0 has 2 timepoint.*at least 3"):
        fitted.transform(X[:, :2])


def test_parameters_set_after_fit_are_checked_at_transform(X, fitted):
    # BrainSpace itself would embed an unknown approach as "dm", and 0.99 keeps no connection
    with pytest.raises(ValueError, match="'approach' parameter of GradientPositioner"):
        clone(fitted).fit(X).set_params(approach="diffusion").transform(X[:1])
    with pytest.raises(ValueError, match=r"sparsity=0.99 keeps 0 connection"):
        clone(fitted).fit(X).set_params(sparsity=0.99).transform(X[:1])
    # other gradient counts than fitted: named, not BrainSpace's misaligned shapes
    for n_components in (fitted.n_components - 1, fitted.n_components + 1):
        with pytest.raises(ValueError, match=rf"n_components={n_components} was set after fit, "
                                             rf"which computed {fitted.n_components} group"):
            clone(fitted).fit(X).set_params(n_components=n_components).transform(X[:1])
    # another method than the group's: each subject's gradients would be computed otherwise
    for name, value in [("approach", "pca"), ("kernel", "cosine"), ("sparsity", 0.25),
                        ("kind", "connectivity")]:
        changed = clone(fitted).fit(X).set_params(**{name: value})
        with pytest.raises(ValueError, match=rf"^{name}={value!r} \(fitted with "
                                             rf"{getattr(fitted, name)!r}\): set after fit"):
            changed.transform(X[:1])
        np.testing.assert_array_equal(changed.set_params(**{name: getattr(fitted, name)})
                                      .transform(X[:1]), fitted.transform(X[:1]))


def test_too_many_components(X):
    with pytest.raises(ValueError, match=rf"n_components={N_REGIONS} is too large for "
                                         rf"{N_REGIONS} regions: at most n_regions - 1 = "
                                         rf"{N_REGIONS - 1} with approach='pca'$"):
        GradientPositioner(n_components=N_REGIONS, sparsity=0.5, approach="pca").fit(X)
    # The diffusion map also needs room for its trivial eigenvector.
    with pytest.raises(ValueError, match=rf"n_components={N_REGIONS - 1}.*{N_REGIONS - 2}"):
        GradientPositioner(n_components=N_REGIONS - 1, sparsity=0.5).fit(X)
    # with two regions it has room for none: no n_components is a cure, approach="pca" is
    for approach in ("dm", "le"):
        with pytest.raises(ValueError, match=rf"at most n_regions - 2 = 0 with approach="
                                             rf"'{approach}'; approach='pca' takes up to "
                                             r"n_regions - 1 = 1$"):
            GradientPositioner(n_components=1, sparsity=0, approach=approach).fit(X[:, :, :2])
    # one region (a 1 x 1 connectivity matrix) has no gradient with any approach: "pca" was
    # offered as the cure, "up to n_regions - 1 = 0", also to approach="pca" itself
    for approach in ("dm", "le", "pca"):
        with pytest.raises(ValueError, match=r"too large for 1 regions") as caught:
            GradientPositioner(n_components=1, sparsity=0, approach=approach,
                               kind="connectivity").fit(np.ones((3, 1, 1)))
        assert "approach='pca' takes" not in str(caught.value)


def test_sparsity_too_high_for_few_regions(X):
    # 20 regions keep int(20 * 0.1) = 1 connection at 0.9 (1 - 0.9 is just under 0.1 in
    # floating point), so 0.89 is the largest two-decimal value that keeps 2
    with pytest.raises(ValueError, match=r"sparsity=0.9 keeps 1 connection.*e\.g\. 0\.89 or less"):
        GradientPositioner(n_components=3).fit(X)
    assert GradientPositioner(n_components=3, sparsity=0.89).fit(X).gradients_.shape == (20, 3)
    with pytest.raises(ValueError, match=r"keeps 1 connection.*e\.g\. 0\.66 or less"):
        GradientPositioner(n_components=1, sparsity=0.7).fit(X[:, :, :6])
    # two regions keep two connections only at sparsity 0: no lower value is proposed
    with pytest.raises(ValueError, match=r"keeps 1 connection.*\(sparsity=0 or None keeps all\)$"):
        GradientPositioner(n_components=1, sparsity=0.3, approach="pca").fit(X[:, :, :2])
    assert GradientPositioner(n_components=1, sparsity=0, approach="pca").fit(
        X[:, :, :2]).gradients_.shape == (2, 1)
    # both limits at once, as the pretrainer's default positioner meets them on a small atlas
    with pytest.raises(ValueError, match=r"n_components=19 is too large.*at most n_regions - 2 "
                                         r"= 18.*; sparsity=0\.9 keeps 1 connection"):
        GradientPositioner(n_components=19).fit(X)


def test_the_pretrainers_default_gradients_on_a_small_atlas_say_what_to_change(X):
    from brainjepa_sk import BrainJEPAPretrainer

    with pytest.raises(ValueError, match=r"the default gradients=GradientPositioner\(\) cannot "
                                         r"be fitted on X's 20 regions: n_components=30.*= 18.*"
                                         r"sparsity=0\.9.*Pass gradients=GradientPositioner"):
        BrainJEPAPretrainer(n_frames=8, patch_size=4, device="cpu").fit(X)


def test_identical_regions_give_a_finite_group_connectivity(X):
    # two regions with the same series (nilearn's shrunk correlation keeps them below 1)
    duplicated = X.copy()
    duplicated[:, :, 1] = duplicated[:, :, 0]
    est = GradientPositioner(**SMALL).fit(duplicated)
    assert np.isfinite(est.group_connectivity_).all()
    assert est.group_connectivity_[0, 1] > 0.9
    assert np.isfinite(est.gradients_).all()


@pytest.mark.parametrize(
    "params, match",
    [
        ({"approach": "umap"}, "approach"),
        ({"kernel": "euclid"}, "kernel"),
        ({"kind": "matrix"}, "kind"),
        ({"sparsity": 1.0}, "sparsity"),
        ({"sparsity": True}, "'sparsity' parameter of GradientPositioner must be a float"),
        ({"sparsity": 90}, r"Got 90 instead: sparsity is a fraction, sparsity=0\.9 for 90% "),
        ({"approach": "le", "n_components": N_REGIONS - 1}, "at most n_regions - 2"),
        ({"n_components": 0}, "n_components"),
    ],
)
def test_bad_parameters(X, params, match):
    with pytest.raises(ValueError, match=match):
        GradientPositioner(**{**SMALL, **params}).fit(X)


@pytest.mark.parametrize("kind", ["timeseries", "connectivity"])
def test_parameters_are_checked_before_the_input_as_the_other_estimators_do(kind):
    """An invalid value was reported only after X had been validated (every file read, for a
    corpus on disk), and bad X then hid it; the pretrainer and the embedder check theirs
    first, as scikit-learn's estimators do."""
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="'approach' parameter of GradientPositioner"):
        GradientPositioner(approach="umap", kind=kind).fit(np.zeros((5, 3)))


def test_bad_connectivity():
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="square.*5 rows and 6 columns"):
        GradientPositioner(kind="connectivity", **SMALL).fit(rng.random((2, 5, 6)))
    asymmetric = rng.random((12, 12))
    with pytest.raises(ValueError, match="not symmetric"):
        GradientPositioner(kind="connectivity", **SMALL).fit(asymmetric)
    nan = np.eye(12)
    nan[0, 1] = nan[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        GradientPositioner(kind="connectivity", **SMALL).fit(nan)
    with pytest.raises(ValueError, match="n_regions, n_regions"):
        GradientPositioner(kind="connectivity", **SMALL).fit(np.ones((2, 2, 4, 4)))


def test_connectivity_files_are_told_to_be_loaded_first(tmp_path):
    """Files are subjects' time series: a glob or paths of matrices with kind='connectivity'
    failed with "could not convert string to float: '.../c0.npy'"."""
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"c{i}.npy")
        np.save(paths[-1], np.eye(6))
    positioner = GradientPositioner(kind="connectivity", n_components=2, sparsity=None)
    for X in (str(tmp_path / "*.npy"), paths, [str(p) for p in paths], np.array(paths, str)):
        with pytest.raises(ValueError, match=r"kind='connectivity', X must be the matrices "
                                             r"themselves, not files.*numpy\.load"):
            positioner.fit(X)


@pytest.mark.parametrize("X, message", [
    ([], r"^X is empty: expected at least one connectivity matrix$"),
    (np.zeros((0, 12, 12)), r"^X is empty: expected at least one connectivity matrix$"),
    (np.eye(12)[None] + 0j, r"^X holds complex values: pass the real part or the magnitude "
                            r"\(X.real or np.abs\(X\)\)$"),
])
def test_no_connectivity_matrix_or_complex_ones_are_said_so_in_a_line(X, message):
    """scikit-learn's messages had spoken of "0 sample(s)", and printed every value of the
    complex matrices (a 450-region atlas: 200,000 values a subject)."""
    with pytest.raises(ValueError, match=message):
        GradientPositioner(kind="connectivity", **SMALL).fit(X)


def test_connectivity_matrices_of_different_sizes_are_named():
    """Matrices of several sizes (or time series of different lengths given with
    kind='connectivity') raised numpy's 'setting an array element with a sequence ...
    inhomogeneous shape', which names neither the matrices nor what was expected."""
    rng = np.random.default_rng(0)
    matrices = [np.eye(6), np.eye(6), np.eye(5)]
    with pytest.raises(ValueError, match=r"different shapes \(matrix 0 is \(6, 6\), matrix 2 "
                       r"is \(5, 5\)\).*kind='timeseries'"):
        GradientPositioner(kind="connectivity", **SMALL).fit(matrices)
    as_objects = np.empty(3, dtype=object)  # as np.load(..., allow_pickle=True) gives them
    as_objects[:] = matrices
    with pytest.raises(ValueError, match="different shapes.*matrix 2 is"):
        GradientPositioner(kind="connectivity", **SMALL).fit(as_objects)
    series = [rng.standard_normal((20, 6)), rng.standard_normal((24, 6))]
    with pytest.raises(ValueError, match="different shapes.*use kind='timeseries'"):
        GradientPositioner(kind="connectivity", **SMALL).fit(series)


def test_reference_with_wrong_rows(X, fitted):
    reference = np.vstack([fitted.gradients_, fitted.gradients_[:1]])
    with pytest.raises(ValueError, match=rf"{N_REGIONS + 1} rows.*{N_REGIONS} regions"):
        GradientPositioner(**SMALL, reference=reference).fit(X)
    with pytest.raises(ValueError, match="2 columns, fewer than n_components=3"):
        GradientPositioner(**SMALL, reference=fitted.gradients_[:, :2]).fit(X)


def test_failed_fit_leaves_estimator_unchanged(X):
    est = GradientPositioner(**SMALL).fit(X)
    before = {k: v.copy() for k, v in vars(est).items() if k.endswith("_") and hasattr(v, "copy")}
    features = est.transform(X)
    bad = X.copy()
    bad[1, 5, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(bad)
    with pytest.raises(ValueError, match="regions"):
        est.set_params(n_components=N_REGIONS - 5).fit(X[:, :, :10])

    def failing_kernel(x):
        raise RuntimeError("kernel failed")

    with pytest.raises(RuntimeError, match="kernel failed"):  # fails inside BrainSpace, late
        est.set_params(n_components=3, kernel=failing_kernel).fit(X[:, :, :12])
    est.set_params(n_components=3, kernel="normalized_angle")
    for key, value in before.items():
        np.testing.assert_array_equal(getattr(est, key), value)
    assert est.n_features_in_ == N_REGIONS
    np.testing.assert_array_equal(est.transform(X), features)


# --- scikit-learn integration ---------------------------------------------------------------------


def test_clone_pickle_params(X, fitted):
    params = fitted.get_params()
    assert params == {
        "n_components": 3,
        "approach": "dm",
        "kernel": "normalized_angle",
        "sparsity": 0.5,
        "kind": "timeseries",
        "reference": None,
        "random_state": 0,
    }
    unfitted = clone(fitted)
    assert not hasattr(unfitted, "gradients_")
    np.testing.assert_array_equal(unfitted.fit(X).transform(X), fitted.transform(X))
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(X), fitted.transform(X))
    assert GradientPositioner().set_params(n_components=5).n_components == 5


def test_defaults_and_tags():
    est = GradientPositioner()
    assert (est.n_components, est.approach, est.kernel, est.sparsity) == (
        30,
        "dm",
        "normalized_angle",
        0.9,
    )
    tags = est.__sklearn_tags__()
    assert tags.input_tags.three_d_array
    assert not tags.input_tags.two_d_array
    assert tags.requires_fit
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        est.transform(np.zeros((1, 10, 40)))
    with pytest.raises(NotFittedError):
        est.get_feature_names_out()


def test_pipeline_cross_val_score():
    # Two groups with different rank-3 structure over 30 regions (enough for sparsity 0.9).
    rng = np.random.default_rng(7)
    scale = np.array([3.0, 2.0, 1.5])
    loadings = [rng.standard_normal((30, 3)) * scale for _ in range(2)]
    X = np.concatenate([_subjects(6, 30, seed=10 + k, loadings=loadings[k]) for k in range(2)])
    y = np.repeat([0, 1], 6)
    pipe = Pipeline([("g", GradientPositioner(n_components=3)), ("clf", LogisticRegression())])
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,)
    assert np.all((scores >= 0) & (scores <= 1))
    assert scores.mean() > 0.5


# --- connectivity input ---------------------------------------------------------------------------


def test_connectivity_kind(X, fitted):
    from nilearn.connectome import ConnectivityMeasure

    corr = ConnectivityMeasure(kind="correlation").fit_transform(list(X))
    est = GradientPositioner(kind="connectivity", **SMALL).fit(corr)
    # Same group matrix and gradients as from the time series (Fisher-z mean).
    np.testing.assert_allclose(est.group_connectivity_, fitted.group_connectivity_, atol=1e-12)
    np.testing.assert_allclose(est.gradients_, fitted.gradients_, atol=1e-8)
    np.testing.assert_allclose(est.transform(corr), fitted.transform(X), atol=1e-8)
    assert est.transform(corr[0]).shape == (1, N_REGIONS * 3)
    with pytest.raises(ValueError, match=rf"10 regions.*{N_REGIONS} regions"):
        est.transform(corr[:, :10, :10])
    # Values outside (-1, 1) are not correlations: plain mean.
    scaled = 3 * corr
    est = GradientPositioner(kind="connectivity", **SMALL).fit(scaled)
    expected = scaled.mean(axis=0)
    np.testing.assert_allclose(est.group_connectivity_, (expected + expected.T) / 2)
    # A single DataFrame matrix keeps its region names.
    names = [f"r{i}" for i in range(N_REGIONS)]
    est.fit(pd.DataFrame(corr[0], index=names, columns=names))
    np.testing.assert_array_equal(est.feature_names_in_, names)
    assert est.get_feature_names_out()[0] == "r0_gradient0"
    # a matrix with the same names transforms; other names, or none, are refused or accepted
    # as scikit-learn does: names must match those seen in fit
    frame = pd.DataFrame(corr[1], index=names, columns=names)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        unnamed = est.transform(corr[1])
    np.testing.assert_allclose(est.transform(frame), unnamed)
    renamed = frame.rename(columns={"r0": "other"})
    with pytest.raises(ValueError, match="region names .* differ"):
        est.transform(renamed)
    # the same regions in another order are refused too, not embedded as fitted regions
    order = np.random.default_rng(3).permutation(N_REGIONS)
    with pytest.raises(ValueError, match="region names .* differ"):
        est.transform(frame.iloc[order, order])


def test_one_subject_is_the_group_connectivity_as_it_is(X):
    # no Fisher-z round trip for a single subject: values within 1e-7 of 1 are kept as well
    matrix = ConnectivityMeasure(kind="correlation").fit_transform(list(X[:1]))[0]
    matrix = (matrix + matrix.T) / 2
    matrix[0, 1] = matrix[1, 0] = 1 - 1e-9
    est = GradientPositioner(kind="connectivity", **SMALL).fit(matrix)
    np.testing.assert_array_equal(est.group_connectivity_, matrix)


def test_one_subject_of_a_text_file_is_the_group_connectivity_as_it_is(X, tmp_path):
    # the connectivity the check of a text file computes: no Fisher-z round trip either, so
    # that the file gives what its series in memory give, bit for bit
    path = tmp_path / "sub-01.tsv"
    np.savetxt(path, X[0], delimiter="\t", fmt="%.17g")
    from_file = GradientPositioner(**SMALL).fit([path])
    from_memory = GradientPositioner(**SMALL).fit(X[:1])
    np.testing.assert_array_equal(from_file.group_connectivity_, from_memory.group_connectivity_)


def test_a_connectivity_refit_on_plain_matrices_forgets_the_region_names(X):
    corr = ConnectivityMeasure(kind="correlation").fit_transform(list(X))
    names = [f"r{i}" for i in range(N_REGIONS)]
    est = GradientPositioner(kind="connectivity", **SMALL).fit(
        pd.DataFrame(corr[0], index=names, columns=names))
    assert est.get_feature_names_out()[0] == "r0_gradient0"
    est.fit(corr)
    assert not hasattr(est, "feature_names_in_")
    assert est.get_feature_names_out()[0] == "region0_gradient0"
    # matrices labelled otherwise are not compared with the names of the earlier fit
    other = pd.DataFrame(corr[1], index=names[::-1], columns=names[::-1])
    # (a frame's values and the array may take other BLAS paths: 2.4e-7 apart in one setting)
    with pytest.warns(UserWarning, match="X has feature names, but GradientPositioner was "
                                         "fitted without"):
        named = est.transform(other)
    np.testing.assert_allclose(named, est.transform(corr[1]), rtol=1e-6)


def test_the_group_diagonal_is_the_plain_mean_of_the_subjects_diagonals(X):
    corr = ConnectivityMeasure(kind="correlation").fit_transform(list(X))
    est = GradientPositioner(kind="connectivity", **SMALL).fit(corr)
    np.testing.assert_array_equal(np.diag(est.group_connectivity_), 1.0)
    # half the subjects saved with a zeroed diagonal: their diagonals are averaged as they are
    zeroed = corr.copy()
    zeroed[::2, np.arange(N_REGIONS), np.arange(N_REGIONS)] = 0.0
    est = GradientPositioner(kind="connectivity", **SMALL).fit(zeroed)
    np.testing.assert_allclose(np.diag(est.group_connectivity_), 0.5)
    off = ~np.eye(N_REGIONS, dtype=bool)
    np.testing.assert_allclose(est.group_connectivity_[off],
                               np.tanh(np.arctanh(corr[:, off]).mean(axis=0)), atol=1e-12)


@pytest.mark.parametrize("value", [1.0, -1.0])
def test_an_off_diagonal_correlation_of_one_gives_the_plain_mean(X, value):
    # a value of exactly +-1 between two regions has no Fisher z: the matrices are averaged
    # plainly
    corr = ConnectivityMeasure(kind="correlation").fit_transform(list(X))
    corr[-1, 0, 1] = corr[-1, 1, 0] = value  # in the last subject only
    est = GradientPositioner(kind="connectivity", **SMALL).fit(corr)
    np.testing.assert_allclose(est.group_connectivity_, corr.mean(axis=0), atol=1e-12)


def test_correlations_just_below_one_keep_their_fisher_z(X):
    # only values within 1e-7 of +-1 are clipped before arctanh: 0.9999 is averaged as it is
    corr = ConnectivityMeasure(kind="correlation").fit_transform(list(X))
    corr[:, 0, 1] = corr[:, 1, 0] = [0.9999, 0.5, 0.5, 0.5, 0.5, 0.5]
    est = GradientPositioner(kind="connectivity", **SMALL).fit(corr)
    expected = np.tanh((np.arctanh(0.9999) + 5 * np.arctanh(0.5)) / 6)
    assert est.group_connectivity_[0, 1] == pytest.approx(expected, abs=1e-9)


def test_correlations_within_the_clip_of_minus_one_are_clipped_as_those_of_one(X):
    """The Fisher-z mean is odd: negating every off-diagonal correlation negates the group's,
    values within 1e-7 of -1 included (they are clipped as those of +1 are)."""
    corr = ConnectivityMeasure(kind="correlation").fit_transform(list(X))
    corr[:, 0, 1] = corr[:, 1, 0] = [1 - 1e-9, 1 - 1e-9, 0.5, 0.5, 0.5, 0.5]
    off = ~np.eye(N_REGIONS, dtype=bool)
    est = GradientPositioner(kind="connectivity", **SMALL).fit(corr)
    expected = np.tanh((2 * np.arctanh(1 - 1e-7) + 4 * np.arctanh(0.5)) / 6)
    assert est.group_connectivity_[0, 1] == pytest.approx(expected, abs=1e-12)
    negated = GradientPositioner(kind="connectivity", **SMALL).fit(np.where(off, -corr, corr))
    np.testing.assert_allclose(negated.group_connectivity_[off], -est.group_connectivity_[off],
                               rtol=0, atol=1e-12)


# --- reference alignment --------------------------------------------------------------------------


def test_reference_alignment(X, tmp_path):
    first = GradientPositioner(n_components=4, sparsity=0.5).fit(X)
    permutation, signs = [2, 0, 1, 3], np.array([-1.0, 1.0, -1.0, 1.0])
    reference = first.gradients_[:, permutation] * signs
    unaligned = GradientPositioner(n_components=3, sparsity=0.5).fit(X).gradients_
    aligned = GradientPositioner(n_components=3, sparsity=0.5, reference=reference[:, :3]).fit(X)
    for c in range(3):
        r = np.corrcoef(aligned.gradients_[:, c], reference[:, c])[0, 1]
        assert r > 0.999  # same orientation, sign included
    assert np.corrcoef(unaligned[:, 0], reference[:, 0])[0, 1] < 0.5  # alignment did something
    # Extra reference columns are ignored; a file path loads with load_gradients.
    wider = GradientPositioner(n_components=3, sparsity=0.5, reference=reference).fit(X)
    np.testing.assert_allclose(wider.gradients_, aligned.gradients_)
    path = tmp_path / "reference.csv"
    np.savetxt(path, reference, delimiter=",")
    from_file = GradientPositioner(n_components=3, sparsity=0.5, reference=str(path)).fit(X)
    np.testing.assert_allclose(from_file.gradients_, aligned.gradients_, atol=1e-10)
    # Subjects are aligned to the reference-oriented group gradients.
    per_subject = aligned.transform(X).reshape(N_SUBJECTS, N_REGIONS, 3)
    assert min(np.corrcoef(g[:, 0], reference[:, 0])[0, 1] for g in per_subject) > 0.9


def test_pandas_output_of_one_labelled_matrix_is_one_row(X):
    from nilearn.connectome import ConnectivityMeasure

    corr = ConnectivityMeasure(kind="correlation").fit_transform(list(X))
    names = [f"roi{r}" for r in range(N_REGIONS)]
    matrix = pd.DataFrame(corr[0], index=names, columns=names)
    est = GradientPositioner(kind="connectivity", **SMALL).fit(matrix)
    out = est.set_output(transform="pandas").transform(matrix)
    assert out.shape == (1, N_REGIONS * 3)
    assert list(out.columns) == list(est.get_feature_names_out())
    default = est.set_output(transform="default").transform(matrix)
    assert isinstance(default, np.ndarray)  # a frame only where pandas output is asked for
    np.testing.assert_allclose(out.to_numpy(), default)


def test_pandas_output_keeps_the_index_of_a_series_of_subjects(X):
    """A Series of subjects gives one row per subject under the Series' labels, as the embedder
    does, so that a FeatureUnion of the two aligns rows and yields no NaN."""
    names = [f"roi{r}" for r in range(N_REGIONS)]
    labels = [f"sub-{i:02d}" for i in range(N_SUBJECTS)]
    subjects = pd.Series([pd.DataFrame(x, columns=names) for x in X], index=labels)
    est = GradientPositioner(**SMALL).set_output(transform="pandas").fit(subjects)
    out = est.transform(subjects)
    assert list(out.index) == labels
    assert not out.isna().any().any()
    np.testing.assert_allclose(out.to_numpy(), GradientPositioner(**SMALL).fit(X).transform(X))


def test_connectivity_matrices_given_as_time_series_are_refused(X, tmp_path):
    """Correlation matrices are valid (n_regions x n_regions) 'time series', so they would be
    used silently; a subject square and symmetric with a constant diagonal (or positive
    semi-definite) is the sign."""
    from nilearn.connectome import ConnectivityMeasure

    corr = ConnectivityMeasure(kind="correlation").fit_transform(list(X))
    fitted = GradientPositioner(**SMALL).fit(X)
    before = fitted.gradients_.copy()
    with pytest.raises(ValueError, match="^subject 0 looks like a connectivity matrix.*"
                                         "GradientPositioner takes.*kind='connectivity'"):
        fitted.fit(corr)
    np.testing.assert_array_equal(fitted.gradients_, before)  # the fitted one kept
    # files are checked one at a time, the same way
    for k, matrix in enumerate(corr):
        np.save(tmp_path / f"sub-{k}.npy", matrix)
    with pytest.raises(ValueError, match=r"sub-0\.npy: subject 0 looks like a connectivity "
                                         "matrix"):
        GradientPositioner(**SMALL).fit(str(tmp_path / "sub-*.npy"))
    # a covariance matrix (symmetric, its diagonal 2) is one too
    with pytest.raises(ValueError, match="subject 0 looks like a connectivity matrix"):
        GradientPositioner(**SMALL).fit(corr * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GradientPositioner(kind="connectivity", **SMALL).fit(corr)
        GradientPositioner(**SMALL).fit(X)
        # square time series (as many timepoints as regions) are not matrices
        GradientPositioner(**SMALL).fit(X[:, :N_REGIONS])
        # nor is a square series with a unit diagonal that is not symmetric
        unit_diagonal = X[:, :N_REGIONS].copy()
        unit_diagonal[:, np.arange(N_REGIONS), np.arange(N_REGIONS)] = 1.0
        GradientPositioner(**SMALL).fit(unit_diagonal)  # not symmetric
        # nor one that is not square, whatever its diagonal (it has no transpose to match)
        long_unit_diagonal = X.copy()
        long_unit_diagonal[:, np.arange(N_REGIONS), np.arange(N_REGIONS)] = 1.0
        GradientPositioner(**SMALL).fit(long_unit_diagonal)


def test_connectivity_symmetry_is_checked_relative_to_the_largest_value():
    from brainjepa_sk.validation import validate_connectivity

    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (6, 6))
    matrix = (a + a.T) / 2
    nudged = matrix.copy()
    nudged[0, 1] += 1e-4  # saved with a typo, not rounding
    with pytest.raises(ValueError, match="connectivity matrix 0 is not symmetric"):
        validate_connectivity(nudged)
    rounded = matrix.copy()
    rounded[0, 1] += 1e-8  # rounding in a saved file
    validate_connectivity(rounded)
    scaled = matrix * 1e6
    scaled[0, 1] += 1e-1  # the same relative rounding at another scale
    validate_connectivity(scaled)


@pytest.mark.parametrize("sparsity", [np.float32(0.5), Fraction(1, 2)])
def test_sparsity_of_any_real_type_fits_as_the_float(X, fitted, sparsity):
    # the parameter check accepts any real; BrainSpace itself takes a Python float only
    other = GradientPositioner(**{**SMALL, "sparsity": sparsity}).fit(X)
    np.testing.assert_allclose(other.gradients_, fitted.gradients_)


@pytest.mark.parametrize("sparsity", [Fraction(9, 10), np.float32(0.9)])
def test_the_sparsity_limit_counts_the_connections_kept_of_the_float(X, sparsity):
    # BrainSpace keeps int(20 * (1 - float(sparsity))) connections a row: 1 for Fraction(9, 10)
    # (all its eigenvalues came out equal), as for 0.9; 2 for np.float32(0.9)
    if isinstance(sparsity, Fraction):
        with pytest.raises(ValueError, match=r"sparsity=9/10 keeps 1 connection"):
            GradientPositioner(n_components=3, sparsity=sparsity).fit(X)
    else:
        lambdas = GradientPositioner(n_components=3, sparsity=sparsity).fit(X).lambdas_
        assert np.ptp(lambdas) > 1e-3  # a structured affinity, not every row its diagonal


def test_a_list_of_connectivity_frames_keeps_and_checks_their_region_names():
    """One labelled matrix per subject: the names are kept as for one frame, a matrix with
    other names is refused, at fit and at transform."""
    rng = np.random.default_rng(0)
    names = [f"roi{i}" for i in range(8)]
    frames = [pd.DataFrame(np.corrcoef(rng.standard_normal((8, 40))), index=names,
                           columns=names) for _ in range(3)]
    positioner = GradientPositioner(kind="connectivity", **SMALL).fit(frames)
    assert positioner.feature_names_in_.tolist() == names
    assert positioner.get_feature_names_out()[0] == "roi0_gradient0"
    renamed = [*frames[:2], frames[2].set_axis([f"r{i}" for i in range(8)], axis=1)]
    with pytest.raises(ValueError, match="matrix 2 has other region names .* column 0 is 'r0' "
                                         "where they have 'roi0'"):
        clone(positioner).fit(renamed)
    with pytest.raises(ValueError, match="matrix 2 has other region names"):
        positioner.transform(renamed)
    other = [frame.set_axis([f"r{i}" for i in range(8)], axis=1) for frame in frames]
    with pytest.raises(ValueError, match="differ from those seen in fit: column 0 is 'r0' "
                                         "where they have 'roi0'"):
        positioner.transform(other)
    mixed = [frames[0], frames[1].set_axis([0, *names[1:]], axis=1)]
    with pytest.raises(TypeError, match="^matrix 1: "):
        clone(positioner).fit(mixed)


def test_an_unlabelled_matrix_among_connectivity_frames_keeps_the_first_names_met():
    """As for time series, the first names met stay the reference: a plain array between
    frames neither drops them nor lets a later frame with other names through."""
    rng = np.random.default_rng(1)
    names = [f"roi{i}" for i in range(8)]
    matrices = [np.corrcoef(rng.standard_normal((8, 40))) for _ in range(3)]
    first = pd.DataFrame(matrices[0], index=names, columns=names)
    positioner = GradientPositioner(kind="connectivity", **SMALL).fit([first, matrices[1]])
    assert positioner.feature_names_in_.tolist() == names
    renamed = pd.DataFrame(matrices[2], columns=[f"r{i}" for i in range(8)])
    with pytest.raises(ValueError, match="matrix 2 has other region names .* column 0 is 'r0' "
                                         "where they have 'roi0'"):
        clone(positioner).fit([first, matrices[1], renamed])


def test_connectivity_with_names_at_only_one_of_fit_and_transform_warns_as_time_series_do():
    """scikit-learn's warnings when only one of fit and transform had feature names."""
    rng = np.random.default_rng(2)
    names = [f"roi{i}" for i in range(8)]
    matrices = [np.corrcoef(rng.standard_normal((8, 40))) for _ in range(2)]
    frames = [pd.DataFrame(m, index=names, columns=names) for m in matrices]
    named = GradientPositioner(kind="connectivity", **SMALL).fit(frames)
    with pytest.warns(UserWarning, match="X does not have valid feature names, but "
                                         "GradientPositioner was fitted with feature names"):
        named.transform(matrices)
    plain = GradientPositioner(kind="connectivity", **SMALL).fit(matrices)
    with pytest.warns(UserWarning, match="X has feature names, but GradientPositioner was "
                                         "fitted without feature names"):
        plain.transform(frames)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        named.transform(frames)
        plain.transform(matrices)


def test_a_reference_indexed_by_region_names_follows_the_columns_of_X(X):
    names = [f"roi{i}" for i in range(N_REGIONS)]
    frames = [pd.DataFrame(x, columns=names) for x in X]
    reference = GradientPositioner(**SMALL).fit(X).gradients_
    order = np.random.default_rng(3).permutation(N_REGIONS)
    shuffled = pd.DataFrame(reference[order], index=[names[i] for i in order])
    aligned = GradientPositioner(**SMALL, reference=shuffled).fit(frames)
    expected = GradientPositioner(**SMALL, reference=reference).fit(frames)
    np.testing.assert_allclose(aligned.gradients_, expected.gradients_)


@pytest.mark.parametrize("discard_diagonal", [False, True])
def test_vectorized_connectivity_is_refused_naming_the_vectors(X, discard_diagonal):
    vectors = ConnectivityMeasure(kind="correlation", vectorize=True,
                                  discard_diagonal=discard_diagonal).fit_transform(list(X))
    with pytest.raises(ValueError, match="vectorize=False.*vec_to_sym_matrix") as error:
        GradientPositioner(**SMALL, kind="connectivity").fit(vectors)
    # the advice rebuilds the matrices (vec_to_sym_matrix alone reads vectors without the
    # diagonal as those of one region fewer)
    matrices = ConnectivityMeasure(kind="correlation").fit_transform(list(X))
    if discard_diagonal:
        assert (f"are {N_REGIONS} regions' and need diagonal=numpy.ones((n_subjects, "
                f"{N_REGIONS})) / numpy.sqrt(2)") in str(error.value)
        rebuilt = vec_to_sym_matrix(vectors, diagonal=np.ones((len(X), N_REGIONS)) / np.sqrt(2))
    else:
        assert f"reads them as {N_REGIONS} regions with the diagonal" in str(error.value)
        rebuilt = vec_to_sym_matrix(vectors)
    np.testing.assert_allclose(rebuilt, matrices, atol=1e-12)


def test_a_connectivity_frame_whose_rows_are_in_another_order_is_read_by_name(X):
    """Rows and columns both name the regions: the rows follow the columns (read by position,
    the matrix was refused as not symmetric)."""
    matrices = ConnectivityMeasure(kind="correlation").fit_transform(list(X))
    names = [f"roi{i}" for i in range(N_REGIONS)]
    frame = pd.DataFrame(matrices[0], index=names, columns=names)
    order = np.random.default_rng(3).permutation(N_REGIONS)
    expected = GradientPositioner(**SMALL, kind="connectivity").fit(frame)
    for shuffled in (frame.iloc[order], [frame.iloc[order]]):
        positioner = GradientPositioner(**SMALL, kind="connectivity").fit(shuffled)
        np.testing.assert_allclose(positioner.gradients_, expected.gradients_)
        np.testing.assert_array_equal(positioner.feature_names_in_, names)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_non_finite_diagonal_is_named_as_such(X, value):
    matrices = ConnectivityMeasure(kind="correlation").fit_transform(list(X[:2]))
    matrices[1][np.diag_indices(N_REGIONS)] = value
    with pytest.raises(ValueError, match="matrix 1 .*diagonal only.*fill_diagonal"):
        GradientPositioner(**SMALL, kind="connectivity").fit(matrices)
    matrices[1][0, 1] = matrices[1][1, 0] = value
    with pytest.raises(ValueError, match="matrix 1 .*off its diagonal"):
        GradientPositioner(**SMALL, kind="connectivity").fit(matrices)


def test_a_reference_indexed_by_labels_of_mixed_types_is_used_in_order(X):
    """Only an index of strings names regions; one with other labels too (say, an integer
    left in it) is read row by row, as an array, and says so (not a name-difference
    warning: its labels are not compared with X's names)."""
    names = [f"roi{i}" for i in range(N_REGIONS)]
    frames = [pd.DataFrame(x, columns=names) for x in X]
    reference = GradientPositioner(**SMALL).fit(X).gradients_
    mixed = pd.DataFrame(reference, index=[0, *names[:0:-1]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aligned = GradientPositioner(**SMALL, reference=mixed).fit(frames)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "index of reference ([0, 'roi19'" in messages[0]
    assert "is not read as region names" in messages[0]
    expected = GradientPositioner(**SMALL, reference=reference).fit(frames)
    np.testing.assert_allclose(aligned.gradients_, expected.gradients_)


def test_gradients_load_as_a_c_ordered_copy_whatever_their_source():
    """A DataFrame's values are Fortran-ordered under pandas 3: kept so, BrainSpace's alignment
    rounded them differently from the same values given as an array (1e-16 apart)."""
    from brainjepa_sk.gradients import load_gradients

    values = np.random.default_rng(0).standard_normal((12, 3))
    for source in (values, pd.DataFrame(values), np.asfortranarray(values), values.tolist()):
        loaded = load_gradients(source)
        assert loaded.flags.c_contiguous and loaded.dtype == np.float64
        assert not np.shares_memory(loaded, values)
        np.testing.assert_array_equal(loaded, values)


def test_a_reference_frame_with_the_default_index_is_used_in_order_without_a_warning(X):
    """``pd.DataFrame(gradients)`` (the 0, 1, ... index that pd.read_csv gives) names no region
    and holds no atlas labels: its rows are X's columns in order, silently, as an array's."""
    names = [f"roi{i}" for i in range(N_REGIONS)]
    frames = [pd.DataFrame(x, columns=names) for x in X]
    reference = GradientPositioner(**SMALL).fit(X).gradients_
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aligned = GradientPositioner(**SMALL, reference=pd.DataFrame(reference)).fit(frames)
    expected = GradientPositioner(**SMALL, reference=reference).fit(frames)
    np.testing.assert_array_equal(aligned.gradients_, expected.gradients_)


def test_a_reference_indexed_by_names_warns_that_its_rows_are_used_in_order_for_arrays(X):
    """X without names (arrays) leaves nothing to match a named reference to: its rows are used
    in order, as an array's, and a warning says its names went unused (silently, before).
    Named X, and an unnamed reference, stay silent; a refused row count does not warn."""
    names = [f"roi{i}" for i in range(N_REGIONS)]
    reference = GradientPositioner(**SMALL).fit(X).gradients_
    named = pd.DataFrame(reference, index=names)
    with pytest.warns(UserWarning) as caught:
        aligned = GradientPositioner(**SMALL, reference=named).fit(X)
    assert len(caught) == 1
    assert re.match(r"reference is indexed by region names \(\['roi0', 'roi1', 'roi2'\]\.\.\.\) "
                    r"but X has none .*used in order.*reference\.to_numpy\(\)",
                    str(caught[0].message))
    expected = GradientPositioner(**SMALL, reference=reference).fit(X)
    np.testing.assert_array_equal(aligned.gradients_, expected.gradients_)
    matrices = ConnectivityMeasure(kind="correlation").fit_transform(list(X))
    with pytest.warns(UserWarning, match="reference is indexed by region names"):
        GradientPositioner(**SMALL, kind="connectivity", reference=named).fit(matrices)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GradientPositioner(**SMALL, reference=named).fit(
            [pd.DataFrame(x, columns=names) for x in X])
        GradientPositioner(**SMALL, reference=reference).fit(X)
        with pytest.raises(ValueError, match=rf"{N_REGIONS - 1} rows.*{N_REGIONS} regions"):
            GradientPositioner(**SMALL, reference=named.iloc[1:]).fit(X)


def test_a_named_reference_of_another_row_count_is_refused_without_a_name_warning(X):
    names = [f"roi{i}" for i in range(N_REGIONS)]
    frames = [pd.DataFrame(x, columns=names) for x in X]
    reference = GradientPositioner(**SMALL).fit(X).gradients_
    shorter = pd.DataFrame(reference[1:], index=names[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the count is the error, not the names
        with pytest.raises(ValueError, match=rf"{N_REGIONS - 1} rows.*{N_REGIONS} regions"):
            GradientPositioner(**SMALL, reference=shorter).fit(frames)


def test_a_reference_indexed_by_other_names_warns_naming_its_row_then_xs_column(X):
    names = [f"roi{i}" for i in range(N_REGIONS)]
    frames = [pd.DataFrame(x, columns=names) for x in X]
    reference = GradientPositioner(**SMALL).fit(X).gradients_
    other = pd.DataFrame(reference, index=["other0", *names[1:]])
    with pytest.warns(UserWarning, match=r"index\) differ from those of X \(row 0 is 'other0' "
                                         r"where X has 'roi0'; 1 in all\)"):
        aligned = GradientPositioner(**SMALL, reference=other).fit(frames)
    expected = GradientPositioner(**SMALL, reference=reference).fit(frames)
    np.testing.assert_allclose(aligned.gradients_, expected.gradients_)


@pytest.mark.parametrize("scale", [1e200, 1e-300])
def test_series_too_large_or_small_for_a_correlation_name_the_subject_not_a_nan(scale):
    """Their squares overflow (or underflow) in float64, and BrainSpace had said "Input
    contains NaN" of input that holds none; a failed refit keeps the fit."""
    X = np.random.default_rng(0).standard_normal((3, 20, 8))
    positioner = GradientPositioner(n_components=2, sparsity=0.5).fit(X)
    gradients = positioner.gradients_.copy()
    bad = X.copy()
    bad[1] *= scale
    with pytest.raises(ValueError, match=r"^subject 1's correlation matrix holds NaN or "
                                         r"infinite values: .* rescale them first"):
        positioner.fit(bad)
    np.testing.assert_array_equal(positioner.gradients_, gradients)
    with pytest.raises(ValueError, match=r"^subject 1's correlation matrix"):
        positioner.transform(bad)


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
def test_a_gradient_tensor_saved_with_torch_save_loads(tmp_path, suffix, dtype):
    import torch

    from brainjepa_sk.gradients import load_gradients

    gradients = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
    path = tmp_path / f"gradients{suffix}"
    torch.save(gradients.to(getattr(torch, dtype)), path)
    loaded = load_gradients(path)
    assert loaded.dtype == np.float64 and loaded.shape == (4, 3)
    np.testing.assert_array_equal(loaded, gradients.to(getattr(torch, dtype)).double().numpy())


def test_a_torch_file_holding_no_tensor_is_refused_as_gradients(tmp_path):
    import torch

    from brainjepa_sk.gradients import load_gradients

    path = tmp_path / "gradients.pt"
    torch.save({"gradients": torch.zeros(4, 3)}, path)
    with pytest.raises(ValueError, match=re.escape(
            f"{path} holds a dict, not a gradient tensor: save the (n_regions, n_components) "
            "tensor alone")):
        load_gradients(path)


def test_a_bfloat16_gradient_tensor_in_memory_loads_as_from_a_file(tmp_path):
    """A .pt file's bfloat16 tensor loaded; the same tensor given itself raised NumPy's bare
    "Got unsupported ScalarType BFloat16"."""
    import torch

    from brainjepa_sk.gradients import load_gradients

    gradients = torch.linspace(-1, 1, 12).reshape(4, 3).bfloat16()
    torch.save(gradients, tmp_path / "gradients.pt")
    loaded = load_gradients(gradients)
    assert loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, load_gradients(tmp_path / "gradients.pt"))


@pytest.mark.parametrize("in_file", [False, True])
def test_a_sparse_gradient_tensor_is_refused_as_a_sparse_matrix_is(tmp_path, in_file):
    """torch's bare TypeError ("can't convert Sparse layout tensor to numpy") was raised,
    where a SciPy sparse matrix is refused with the advice to pass its dense values."""
    import torch

    from brainjepa_sk.gradients import load_gradients

    source = torch.eye(4, 3).to_sparse()
    name = "the gradient array"
    if in_file:
        torch.save(source, tmp_path / "gradients.pt")
        source = name = tmp_path / "gradients.pt"
    with pytest.raises(ValueError, match=re.escape(
            f"{name} is a sparse tensor: pass its dense values (gradients.to_dense())")):
        load_gradients(source)


@pytest.mark.parametrize("filename", ["jepa-ep300.pth.tar", "checkpoint.pth"])
def test_a_checkpoint_given_as_gradients_is_told_to_be_passed_as_weights(tmp_path, filename):
    """The research checkpoint (jepa-ep300.pth.tar) was read as a text table ("'utf-8' codec
    can't decode byte 0x80"), and one named .pth was told to be saved as a tensor alone."""
    import torch

    from brainjepa_sk.gradients import load_gradients

    path = tmp_path / filename
    torch.save({"encoder": {"w": torch.zeros(2)}, "target_encoder": {"w": torch.zeros(2)},
                "epoch": 300}, path)
    with pytest.raises(ValueError, match=re.escape(
            f"{path} is a model checkpoint, not a gradient matrix: pass it as weights")):
        load_gradients(path)


@pytest.mark.parametrize("approach", ["dm", "le", "pca"])
def test_regions_in_another_order_give_the_gradients_in_that_order(approach):
    """Exactly (up to rounding) with "le" and "pca"; nearly with "dm", whose eigen-solver
    starts from a vector drawn in region order (gradients.rst)."""
    from brainjepa_sk.datasets import load_group_connectivity

    connectivity = load_group_connectivity(100)
    order = np.random.default_rng(0).permutation(100)
    positioner = GradientPositioner(n_components=10, approach=approach, kind="connectivity")
    given = clone(positioner).fit(connectivity)
    reordered = clone(positioner).fit(connectivity[np.ix_(order, order)])
    if approach == "dm":
        # as gradients.rst measures it: eight orders, eigenvalues within 0.3% (0.1%, said
        # before, was passed by only five of them), each gradient correlated above 0.999
        for seed in range(8):
            order = np.random.default_rng(seed).permutation(100)
            reordered = clone(positioner).fit(connectivity[np.ix_(order, order)])
            np.testing.assert_allclose(reordered.lambdas_, given.lambdas_, rtol=3e-3)
            for column in range(10):
                assert np.corrcoef(reordered.gradients_[:, column],
                                   given.gradients_[order, column])[0, 1] > 0.999
    else:
        np.testing.assert_allclose(reordered.lambdas_, given.lambdas_, rtol=1e-7)
        np.testing.assert_allclose(reordered.gradients_, given.gradients_[order], atol=1e-7)

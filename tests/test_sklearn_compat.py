"""scikit-learn compatibility: its own estimator checks, and our 3-D versions of what they skip.

Our estimators take 3-D input (subjects x timepoints x regions) and say so in their tags, so
scikit-learn runs only the data-independent checks on them. To run its whole suite anyway, we
also check "2-D claiming" variants whose tags pretend to accept 2-D input: every check that then
feeds a 2-D ``X`` fails (by design, with our "X must be 3-D" error) and is listed below with its
reason; all the others must pass. The tests further down re-do the skipped checks with 3-D data.
"""

import copy
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from _estimators import N_REGIONS, make_subjects, tiny_estimators

_REASON = "feeds a 2-D X (n_samples, n_features); these estimators take 3-D subjects' series"
EXPECTED_2D_FAILURES = {
    name: _REASON
    for name in [
        "check_complex_data",
        "check_dict_unchanged",
        "check_dont_overwrite_parameters",
        "check_dtype_object",
        "check_estimator_sparse_array",
        "check_estimator_sparse_matrix",
        "check_estimator_sparse_tag",
        "check_estimators_dtypes",
        "check_estimators_empty_data_messages",
        "check_estimators_fit_returns_self",
        "check_estimators_nan_inf",
        "check_estimators_overwrite_params",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_fit2d_1feature",
        "check_fit2d_1sample",
        "check_fit2d_predict1d",
        "check_fit_check_is_fitted",
        "check_fit_idempotent",
        "check_fit_score_takes_y",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_n_features_in",
        "check_n_features_in_after_fitting",
        "check_pipeline_consistency",
        "check_positive_only_tag_during_fit",
        "check_readonly_memmap_input",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
    ]
}


def _claiming_2d(estimator):
    """Same estimator, with tags that claim 2-D input (so scikit-learn runs every check)."""
    base = type(estimator)

    class Claiming2D(base):
        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.two_d_array = True
            return tags

    Claiming2D.__name__ = Claiming2D.__qualname__ = base.__name__
    return Claiming2D(**estimator.get_params(deep=False))


@parametrize_with_checks(tiny_estimators())
def test_sklearn_checks(estimator, check):
    check(estimator)


@parametrize_with_checks(
    [_claiming_2d(e) for e in tiny_estimators()],
    expected_failed_checks=lambda estimator: EXPECTED_2D_FAILURES,
)
def test_sklearn_checks_with_2d_claim(estimator, check):
    check(estimator)


# -- our 3-D versions of the data-dependent checks --------------------------------------------
ESTIMATORS = tiny_estimators()
IDS = [type(e).__name__ for e in ESTIMATORS]


@pytest.fixture
def X():
    return make_subjects()


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_fit_returns_self_sets_n_features_and_keeps_params(estimator, X):
    estimator = clone(estimator)
    params = copy.deepcopy(estimator.get_params(deep=False))
    X_before = X.copy()
    assert estimator.fit(X) is estimator
    assert estimator.n_features_in_ == N_REGIONS
    np.testing.assert_array_equal(X, X_before)  # input untouched
    after = estimator.get_params(deep=False)
    for key, value in params.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value)
        elif key != "weights":  # a module: compared below by its weights
            assert after[key] == value, key
    # no public attribute set in fit that is not a fitted attribute (ending in "_")
    assert all(k.endswith("_") or k in params or k.startswith("_") for k in vars(estimator))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_not_fitted_and_wrong_regions(estimator, X):
    estimator = clone(estimator)
    with pytest.raises(NotFittedError):
        estimator.transform(X)
    estimator.fit(X)
    with pytest.raises(ValueError, match=f"{N_REGIONS}"):
        estimator.transform(X[:, :, :-1])


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_fit_idempotent_and_transform_deterministic(estimator, X):
    a = clone(estimator).fit(X).transform(X)
    b = clone(estimator).fit(X).transform(X)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    fitted = clone(estimator).fit(X)
    np.testing.assert_allclose(fitted.transform(X), fitted.fit(X).transform(X), atol=1e-6)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_subject_order_and_subset_invariance(estimator, X):
    fitted = clone(estimator).fit(X)
    full = fitted.transform(X)
    order = np.random.default_rng(1).permutation(len(X))
    np.testing.assert_allclose(fitted.transform(X[order]), full[order], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fitted.transform(X[2:5]), full[2:5], rtol=1e-5, atol=1e-5)
    assert fitted.transform([x for x in X]).shape == full.shape  # list input


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_pickle_and_clone(estimator, X):
    fitted = clone(estimator).fit(X)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(X), fitted.transform(X))
    fresh = clone(fitted)
    assert not hasattr(fresh, "n_features_in_")
    assert fresh.get_params(deep=False).keys() == fitted.get_params(deep=False).keys()
    fresh.set_params(**{"verbose": 0} if "verbose" in fresh.get_params() else {})


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_dtypes_memmap_and_contiguity(estimator, X, tmp_path):
    fitted = clone(estimator).fit(X)
    reference = fitted.transform(X)
    assert reference.dtype.kind == "f" and reference.ndim == 2
    np.testing.assert_allclose(fitted.transform(X.astype(np.float32)), reference, atol=1e-4)
    np.testing.assert_allclose(fitted.transform(np.asfortranarray(X)), reference, atol=1e-6)
    path = tmp_path / "X.npy"
    np.save(path, X)
    readonly = np.load(path, mmap_mode="r")
    np.testing.assert_allclose(clone(estimator).fit(readonly).transform(readonly), reference,
                               atol=1e-6)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda X: X[:0], "empty"),
        (lambda X: X[0], "single subject"),
        (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X), "NaN"),
        (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 7, np.inf, X), "infinity"),
        (lambda X: X.astype(complex), "[Cc]omplex"),
        (lambda X: np.full(X.shape, "a", dtype=object), "numeric|convert"),
        (lambda X: X[:, :1], "timepoint"),
        (lambda X: X * 0 + 1.0, "constant"),
        (lambda X: X[..., None], "3-D array|dimension"),
    ],
)
def test_bad_input_gets_a_clear_error_and_keeps_the_fit(estimator, X, bad, message):
    fitted = clone(estimator).fit(X)
    before = fitted.transform(X)
    with pytest.raises(ValueError, match=message):
        fitted.fit(bad(X))
    np.testing.assert_array_equal(fitted.transform(X), before)  # still the first fit

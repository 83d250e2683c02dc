"""scikit-learn compatibility: its own estimator checks, and our 3-D versions of what they skip.

Our estimators take 3-D input (subjects x timepoints x regions) and say so in their tags, so
scikit-learn runs only its data-independent checks on them (``test_sklearn_checks``). To run its
whole suite anyway, ``test_sklearn_checks_on_rows`` runs every check through an adapter that
turns each row of the checks' 2-D tables into one subject (see ``_sklearn_adapter``): the checks
then reach our validation, fitting and transform. All of them pass (sparse input is refused
with an error that says so, as scikit-learn asks), with two expected failures for the
skorch nets, listed with their reasons in ``EXPECTED_FAILURES``. The tests further down re-do the
data-dependent checks with real 3-D subjects.
"""

import copy
import inspect
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from _estimators import (
    N_REGIONS,
    assert_same_module,
    make_subjects,
    tiny_estimators,
    tiny_supervised_estimators,
)
from _sklearn_adapter import estimators_on_rows
from scipy import sparse
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_html_repr
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks
from skorch import NeuralNet

from brainjepa_sk.finetune import SubjectValidSplit

#: Checks the fine-tuning estimators fail, and why.
EXPECTED_FAILURES = {
    "check_no_attributes_set_in_init": (
        "skorch's NeuralNet.__init__ sets history_, initialized_ and virtual_params_ (its "
        "design: it tracks initialisation from __init__ on); the fine-tuning estimators are "
        "skorch nets and inherit it"
    ),
    "check_do_not_raise_errors_in_init_or_set_params": (
        "skorch's set_params builds the callbacks as soon as callbacks is set (so that a fitted "
        "net's callbacks_ follow), and a value that is no list of callbacks (-1, 'helloworld') "
        "raises there; scikit-learn reaches callbacks through the constructor's signature, "
        "which lists skorch's parameters so that repr shows only those set"
    ),
}


def expected_failures(estimator):
    """The expected failures of ``estimator`` (only the skorch nets have any)."""
    return EXPECTED_FAILURES if isinstance(estimator, NeuralNet) else {}


@parametrize_with_checks([*tiny_estimators(), *tiny_supervised_estimators()],
                         expected_failed_checks=expected_failures)
def test_sklearn_checks(estimator, check):
    check(estimator)


@parametrize_with_checks(estimators_on_rows(), expected_failed_checks=expected_failures)
def test_sklearn_checks_on_rows(estimator, check):
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
    given = estimator.get_params(deep=False)
    params = copy.deepcopy(given)
    X_before = X.copy()
    assert estimator.fit(X) is estimator
    assert estimator.n_features_in_ == N_REGIONS
    np.testing.assert_array_equal(X, X_before)  # input untouched
    after = estimator.get_params(deep=False)
    for key, value in params.items():
        assert after[key] is given[key], key  # the very objects passed in, not replacements
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value)
        elif isinstance(value, torch.nn.Module):  # its weights, modes and trainability
            assert_same_module(after[key], value)
        else:
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
        (lambda X: X.astype(complex), r"^subject 0: Complex data not supported; pass the "
                                      r"real part or the magnitude \(x.real or np.abs\(x\)\)$"),
        (lambda X: [torch.from_numpy(x.astype(complex)) for x in X], "Complex data"),
        (lambda X: np.full(X.shape, "a", dtype=object), "subject 0 holds text"),
        # numbers as text, booleans and masked values are not silently converted
        (lambda X: X.astype(str), r"subject 0 holds text, not numbers \(convert"),
        (lambda X: X > X.mean(), "subject 0 holds booleans"),
        (lambda X: [(x > x.mean()).tolist() for x in X], "subject 0 holds booleans"),
        (lambda X: [torch.from_numpy(x > x.mean()) for x in X], "subject 0 holds booleans"),
        (lambda X: [x.astype(str).tolist() for x in X], "subject 0 holds text"),
        (lambda X: np.ma.masked_array(X, mask=np.arange(X.size).reshape(X.shape) == 7),
         "subject 0 is a masked array with 1 masked value"),
        (lambda X: X[:, :1], "timepoint"),
        (lambda X: X * 0 + 1.0, "constant"),
        (lambda X: X[..., None], "3-D array|dimension"),
        (lambda X: X[:, :, :1], "1 feature.*minimum of 2"),
        (lambda X: X[0, :, 0], "1-D array.*Reshape your data"),
        (lambda X: sparse.csr_matrix(X[0]), "sparse input is not supported"),
        # a list of sparse subjects: scikit-learn's TypeError had them "not numeric"
        (lambda X: [sparse.csr_matrix(x) for x in X],
         r"subject 0 is a sparse csr_matrix: sparse input is not supported; pass its dense"),
        (lambda X: _object_array(X, {"a": 1}), "not numeric"),
        # a subject given as its runs of different lengths
        (lambda X: [[X[0], X[0][:-2]], *X[1:]], r"subject 0 is a sequence.*numpy.concatenate"),
        # nested lists with one row short
        (lambda X: [[*X[0][:3].tolist(), X[0][3][:-1].tolist(), *X[0][4:].tolist()], *X[1:]],
         r"subject 0 is a table whose rows differ in length: row 3 has"),
        # a dict's keys would be read as file names
        (lambda X: {f"sub-{i}": x for i, x in enumerate(X)}, r"got a dict.*pandas.Series\(X\)"),
        # skorch's way to pass data: its items had been read as the parts of a subject
        (lambda X: torch.utils.data.TensorDataset(torch.from_numpy(X)),
         r"got a TensorDataset, a torch Dataset.*dataset\[i\]\[0\]"),
    ],
)
def test_bad_input_gets_a_clear_error_and_keeps_the_fit(estimator, X, bad, message):
    fitted = clone(estimator).fit(X)
    before = fitted.transform(X)
    # non-numbers are a TypeError, as in scikit-learn; everything else a ValueError
    not_numbers = ("not numeric", "holds", "masked")
    with pytest.raises(TypeError if any(word in message for word in not_numbers) else ValueError,
                       match=message):
        fitted.fit(bad(X))
    np.testing.assert_array_equal(fitted.transform(X), before)  # still the first fit


@pytest.mark.parametrize("estimator", [*ESTIMATORS[1:], *tiny_supervised_estimators()],
                         ids=[*IDS[1:], "BrainJEPAClassifier", "BrainJEPARegressor"])
@pytest.mark.parametrize("normalization", [None, "robust"])
def test_nan_let_through_by_assume_finite_is_named_so(estimator, X, normalization):
    """scikit-learn's assume_finite=True skips the input checks: NaN then reached the model's
    preprocessing, whose error blamed subject 0 (robust statistics of NaN) or the series'
    scale ("reaches nan ... beyond the float32 range: rescale the series")."""
    bad = X.copy()
    bad[3, :, 2] = np.nan
    message = r"^subject 3 holds NaN or infinite values.*assume_finite=True.*interpolate them$"
    estimator = clone(estimator).set_params(normalization=normalization)
    fitted = _fit(estimator, X)
    with sklearn.config_context(assume_finite=True):
        with pytest.raises(ValueError, match=message):  # in fit, or where the data are used
            _output(_fit(estimator, bad), bad)
        with pytest.raises(ValueError, match=message):
            _output(fitted, bad)


def test_nan_let_through_by_assume_finite_is_named_so_by_the_positioner(X):
    """As above: BrainSpace's "Affinity matrix contains NaN or Inf values" named neither."""
    bad = X.copy()
    bad[3, 4, 2] = np.nan
    message = r"^subject 3 holds NaN or infinite values.*assume_finite=True.*interpolate them$"
    fitted = clone(ESTIMATORS[0]).fit(X)
    with sklearn.config_context(assume_finite=True):
        with pytest.raises(ValueError, match=message):
            clone(ESTIMATORS[0]).fit(bad)
        with pytest.raises(ValueError, match=message):
            fitted.transform(bad)


@pytest.mark.parametrize("estimator", [*ESTIMATORS[1:], *tiny_supervised_estimators()],
                         ids=[*IDS[1:], "BrainJEPAClassifier", "BrainJEPARegressor"])
def test_nan_let_through_by_assume_finite_is_named_so_when_resampling(estimator, X):
    """With t_r and model_t_r, NaN let through by assume_finite=True met resample first, whose
    message named an 'x' the user never passed and not the subject."""
    bad = X.copy()
    bad[3, :, 2] = np.nan
    message = r"^subject 3 holds NaN or infinite values.*assume_finite=True.*interpolate them$"
    estimator = clone(estimator).set_params(t_r=2.0, model_t_r=1.0)
    fitted = _fit(estimator, X)
    with sklearn.config_context(assume_finite=True):
        with pytest.raises(ValueError, match=message):
            _output(_fit(estimator, bad), bad)
        with pytest.raises(ValueError, match=message):
            _output(fitted, bad)


def _object_array(X, value):
    objects = X.astype(object)
    objects[1, 2, 3] = value
    return objects


class _OnlyArrayProtocol:
    """Data known only through ``__array__``, like scikit-learn's ``_NotAnArray``."""

    def __init__(self, data):
        self.data = data

    def __array__(self, dtype=None, copy=None):
        return self.data


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_objects_converting_to_arrays_and_region_count_first(estimator, X):
    fitted = clone(estimator).fit(_OnlyArrayProtocol(X))
    np.testing.assert_allclose(fitted.transform([_OnlyArrayProtocol(x) for x in X]),
                               clone(estimator).fit(X).transform(X), rtol=1e-6, atol=1e-6)
    # subjects of different lengths in an object array (np.load(..., allow_pickle=True))
    ragged = np.empty(len(X), dtype=object)
    ragged[:] = [x[: len(x) - i % 3] for i, x in enumerate(X)]
    np.testing.assert_array_equal(fitted.transform(ragged), fitted.transform(list(ragged)))
    # a wrong region count is reported as such, even where the data have other faults too
    with pytest.raises(ValueError, match=f"X has 1 features, but {type(estimator).__name__} is "
                                         f"expecting {N_REGIONS} features as input"):
        fitted.transform(X[:, :, :1] * 0)


def test_float64_default_dtype_builds_float32_models_and_is_kept(X, tmp_path):
    """A caller's ``torch.set_default_dtype(torch.float64)`` changes neither what the estimators
    compute (float32 models, the same initial weights from a seed) nor is it changed by them;
    it used to build float64 layers that refused the float32 windows."""
    def outputs():
        pretrainer = clone(ESTIMATORS[2]).fit(X)
        pretrainer.save(tmp_path / "model.pt")
        embedder = clone(ESTIMATORS[1]).set_params(weights=tmp_path / "model.pt").fit(X)
        classifier, regressor = supervised  # their weights are modules built beforehand
        return [pretrainer.transform(X), embedder.transform(X),
                clone(classifier).fit(X, y).predict_proba(X),
                clone(regressor).fit(X, y.astype(float)).predict(X)]

    supervised, y = tiny_supervised_estimators(), np.arange(len(X)) % 2
    reference = outputs()
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        in_float64 = outputs()
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(before)
    for got, expected in zip(in_float64, reference):
        np.testing.assert_array_equal(got, expected)


# -- what a scikit-learn user meets beyond the checks -----------------------------------------
ALL = [*tiny_estimators(), *tiny_supervised_estimators()]
ALL_IDS = [type(e).__name__ for e in ALL]


def _fit(estimator, X):
    """``estimator`` cloned and fitted on ``X`` (string labels or float targets if supervised)."""
    tags = estimator.__sklearn_tags__()
    y = (np.array(["ctl", "pat"] * (len(X) // 2)) if tags.estimator_type == "classifier"
         else np.linspace(0, 1, len(X)) if tags.estimator_type == "regressor" else None)
    return clone(estimator).fit(X, y)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_pandas_output_and_feature_names_through_a_pipeline(estimator, X):
    pipe = make_pipeline(clone(estimator), StandardScaler(), PCA(2)).set_output(
        transform="pandas")
    # a Series of subjects indexed by subject gives rows indexed by subject
    subjects = pd.Series(list(X), index=[f"sub-{i:02d}" for i in range(len(X))])
    out = pipe.fit(subjects).transform(subjects)
    assert list(out.columns) == ["pca0", "pca1"] and list(out.index) == list(subjects.index)
    names = pipe[0].get_feature_names_out()
    assert list(pipe[:-1].get_feature_names_out()) == list(names)
    assert list(pipe[:-1].transform(X).columns) == list(names)


@pytest.mark.parametrize("estimator", [e for e in ALL if "random_state" in e.get_params()],
                         ids=[i for e, i in zip(ALL, ALL_IDS) if "random_state" in e.get_params()])
def test_a_numpy_generator_as_random_state_is_refused_by_name(estimator, X):
    """As in scikit-learn, whose check_random_state cannot take a numpy Generator."""
    estimator = clone(estimator).set_params(random_state=np.random.default_rng(0))
    with pytest.raises(InvalidParameterError,
                       match=rf"'random_state' parameter of {type(estimator).__name__} must be"
                             r".*Got Generator\(PCG64\)"):
        _fit(estimator, X)
    assert not hasattr(estimator, "n_features_in_")


_MISSPELT = {"pooling": ("Mean", "mean"), "kernel": ("normalised_angle", "normalized_angle"),
             "window": ("centre", "center")}


@pytest.mark.parametrize("estimator", ALL, ids=ALL_IDS)
def test_a_misspelt_option_names_the_one_it_resembles(estimator, X):
    """scikit-learn's message lists the options; the one meant is named too."""
    params = estimator.get_params()
    name = next(name for name in _MISSPELT if name in params)
    given, meant = _MISSPELT[name]
    with pytest.raises(InvalidParameterError,
                       match=rf"'{name}' parameter .*Got '{given}' instead\. \(did you mean "
                             rf"'{meant}'\?\)$"):
        _fit(clone(estimator).set_params(**{name: given}), X)
    # a value like none of them gets the list alone
    with pytest.raises(InvalidParameterError, match=r"Got 'zzz' instead\.$"):
        _fit(clone(estimator).set_params(**{name: "zzz"}), X)


@pytest.mark.parametrize("estimator", [e for e in ALL if "precision" in e.get_params()],
                         ids=[i for e, i in zip(ALL, ALL_IDS) if "precision" in e.get_params()])
@pytest.mark.parametrize("given, meant", [("float32", "fp32"), ("torch.float32", "fp32"),
                                          (torch.float32, "fp32"), (torch.bfloat16, "bf16")])
def test_a_precision_given_by_torchs_name_names_the_option(estimator, X, given, meant):
    """torch's name of a dtype, or the dtype itself, is too far from its short option for
    difflib ("float32" and torch.bfloat16 got no suggestion)."""
    with pytest.raises(InvalidParameterError,
                       match=rf"Got '?{re.escape(str(given))}'? instead\. \(did you mean "
                             rf"'{meant}'\?\)$"):
        _fit(clone(estimator).set_params(precision=given), X)


def _output(fitted, X):
    """What ``fitted`` gives for ``X``: class probabilities, predictions or features."""
    kind = fitted.__sklearn_tags__().estimator_type
    return (fitted.predict_proba(X) if kind == "classifier" else fitted.predict(X)
            if kind == "regressor" else fitted.transform(X))


@pytest.mark.parametrize("estimator", ALL, ids=ALL_IDS)
def test_tags_and_html_repr(estimator, X):
    tags = estimator.__sklearn_tags__()
    kind = tags.estimator_type
    assert tags.input_tags.three_d_array and not tags.input_tags.two_d_array
    assert not (tags.input_tags.sparse or tags.input_tags.allow_nan)
    assert tags.requires_fit and not tags.non_deterministic
    assert tags.target_tags.required == (kind in ("classifier", "regressor"))
    assert (tags.transformer_tags is None) == (kind is not None)
    assert (tags.classifier_tags is not None) == (kind == "classifier")
    assert (tags.regressor_tags is not None) == (kind == "regressor")
    assert type(estimator).__name__ in estimator_html_repr(estimator)
    assert type(estimator).__name__ in _fit(estimator, X)._repr_html_()


def test_a_fresh_process_unpickles_fitted_estimators_that_give_the_same_outputs(X, tmp_path):
    fitted = [_fit(estimator, X) for estimator in ALL]
    with open(tmp_path / "fitted.pkl", "wb") as file:
        pickle.dump(fitted, file)
    np.save(tmp_path / "X.npy", X)
    code = inspect.getsource(_output) + (
        "import pickle, sys, numpy as np\n"
        "X = np.load(sys.argv[1] + '/X.npy')\n"
        "fitted = pickle.load(open(sys.argv[1] + '/fitted.pkl', 'rb'))\n"
        "np.savez(sys.argv[1] + '/out.npz', *[_output(f, X) for f in fitted])\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # this checkout's package
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=300,
                   env=env)
    with np.load(tmp_path / "out.npz") as out:
        for k, estimator in enumerate(fitted):
            np.testing.assert_array_equal(out[f"arr_{k}"], _output(estimator, X))


def test_sample_weight_routed_past_the_embedder_and_refused_by_the_fine_tuners(X):
    """The fine-tuners refuse sample_weight (or other metadata that fit refuses) when it is
    requested for fit or partial_fit: the request had been taken, and a cross-validation
    reached fit with it to be refused there."""
    y = np.arange(len(X)) % 2
    weights = np.linspace(0.5, 1.5, len(X))
    embedder = ESTIMATORS[1]
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(clone(embedder), LogisticRegression().set_fit_request(
            sample_weight=True)).fit(X, y, sample_weight=weights)
        expected = LogisticRegression().fit(clone(embedder).fit_transform(X), y,
                                            sample_weight=weights)
        np.testing.assert_array_equal(pipe[-1].coef_, expected.coef_)
        # refused when requested, not when a meta-estimator reaches fit with it
        for estimator in tiny_supervised_estimators():
            name = type(estimator).__name__
            for method in ("set_fit_request", "set_partial_fit_request"):
                for alias in (True, "weights"):
                    with pytest.raises(ValueError, match=rf"^{name} does not take "
                                                         "sample_weight"):
                        getattr(estimator, method)(sample_weight=alias)
            with pytest.raises(TypeError, match=rf"^{name}.fit takes no metadata 'mask': "
                                                "only epochs and groups may be routed to it$"):
                estimator.set_fit_request(mask=True)
            with pytest.raises(TypeError, match=rf"^{name}.partial_fit takes no metadata 'mask': "
                                                "only epochs, classes and groups may be routed "
                                                "to it$"):  # (not "epochs and classes and")
                estimator.set_partial_fit_request(mask=True)
            assert estimator.get_metadata_routing().consumes("fit", ["sample_weight"]) == set()
        classifier = clone(tiny_supervised_estimators()[0]).set_score_request(
            sample_weight=False)
        with pytest.raises(TypeError, match="not routed to any object"):
            cross_val_score(classifier, X, y, cv=2, params={"sample_weight": weights})
        # what fit takes is routed
        fits = cross_validate(classifier.set_fit_request(sample_weight=False, epochs=True), X,
                              y, cv=2, params={"epochs": 2}, return_estimator=True,
                              error_score="raise")
        assert [len(fitted.history_) for fitted in fits["estimator"]] == [2, 2]
        # and so are the groups of SubjectValidSplit, each fold's to its fit
        families = np.arange(len(X)) // 2
        grouped = clone(classifier).set_params(
            train_split=SubjectValidSplit(0.5, random_state=0)).set_fit_request(groups=True)
        scores = cross_val_score(grouped, X, y, cv=GroupKFold(2), params={"groups": families},
                                 error_score="raise")
        assert scores.shape == (2,)
    with pytest.raises(RuntimeError, match="enable_metadata_routing"):  # skorch's, unrouted
        tiny_supervised_estimators()[0].set_fit_request(sample_weight=True)


@pytest.mark.parametrize("estimator", [ESTIMATORS[1], *tiny_supervised_estimators()],
                         ids=["BrainJEPAEmbedder", "BrainJEPAClassifier", "BrainJEPARegressor"])
def test_gradients_settings_are_refused_where_gradients_is_a_matrix(estimator):
    """scikit-learn had failed with "'NoneType' object has no attribute 'set_params'" (the
    embedder), skorch had kept the setting for fit to refuse as an unexpected argument (the
    fine-tuners): their gradients is a matrix, a GradientPositioner the pretrainer's."""
    from brainjepa_sk import GradientPositioner

    estimator = clone(estimator)
    name = type(estimator).__name__
    pipe = make_pipeline(estimator)
    for gradients in ({}, {"gradients": np.ones((N_REGIONS, 3))},
                      {"gradients": GradientPositioner()}):
        with pytest.raises(ValueError, match=rf"^gradients__n_components sets a parameter of "
                           rf"an estimator given as gradients, but the gradients of {name} are "
                           r"the gradient matrix .* set gradients itself"):
            estimator.set_params(**gradients, gradients__n_components=2, batch_size=5)
        assert estimator.gradients is None and estimator.batch_size != 5  # nothing set
        assert "gradients__n_components" not in vars(estimator)
    step = f"{name.lower()}__gradients__kernel"
    with pytest.raises(ValueError, match=r"^gradients__kernel sets a parameter"):
        pipe.set_params(**{step: "cosine"})


#: Prefixes that the fine-tuners route as skorch does (train_split's to the split), or refuse
#: with messages of their own (module): no parameter of theirs that holds no estimator.
SKORCH_PREFIXES = {"callbacks", "compile", "criterion", "dataset", "iterator_train",
                   "iterator_valid", "module", "optimizer", "train_split"}


@pytest.mark.parametrize("estimator", ALL, ids=ALL_IDS)
def test_set_params_refuses_nested_settings_of_a_parameter_holding_no_estimator(estimator):
    """scikit-learn had failed with "'str' object has no attribute 'set_params'" (the
    embedder's weights__x and pooling__x, the pretrainer's pooling__x, the positioner's
    n_components__x, ...), and skorch had kept such a setting for fit to refuse (the
    fine-tuners): each is refused by name, with its value's type, before anything is set."""
    estimator = clone(estimator)
    name = type(estimator).__name__
    before = estimator.get_params(deep=False)
    # gradients__ and the pretrainer's masking__ have messages (and tests) of their own
    routed = {"gradients", "masking", *(SKORCH_PREFIXES if isinstance(estimator, NeuralNet)
                                        else ())}
    refused = [key for key, value in before.items() if "__" not in key
               and key not in routed and not hasattr(value, "set_params")]
    assert "pooling" in refused or {"n_components", "kernel"} <= set(refused)
    step = make_pipeline(estimator).steps[0][0]
    for key in refused:
        other = next(other for other in refused if other != key)
        value = before[key]
        kind = "None" if value is None else rf"an? {type(value).__name__}\b"
        message = (rf"^{key}__x sets the parameter 'x' of the estimator given as {key}, but "
                   rf"the {key} of {name} is {kind}.* set {key} itself")
        with pytest.raises(ValueError, match=message):
            estimator.set_params(**{other: object(), f"{key}__x": 1})
        after = estimator.get_params(deep=False)
        assert after.keys() == before.keys(), key  # nothing of the call set
        assert all(after[param] is before[param] for param in before), key
        with pytest.raises(ValueError, match=message):  # through a Pipeline, as a grid does
            make_pipeline(estimator).set_params(**{f"{step}__{key}__x": 1})
    # the value given in the same call is the one that would be set
    key = refused[0]
    with pytest.raises(ValueError, match=rf"the {key} of {name} is an int \(7\)"):
        estimator.set_params(**{key: 7, f"{key}__x": 1})
    assert estimator.get_params(deep=False)[key] is before[key]
    # an estimator class: scikit-learn had called its set_params, unbound
    from brainjepa_sk import GradientPositioner

    with pytest.raises(ValueError, match=rf"the {key} of {name} is the class "
                       r"GradientPositioner, not an instance of it: give one"):
        estimator.set_params(**{key: GradientPositioner, f"{key}__x": 1})
    assert estimator.get_params(deep=False)[key] is before[key]
    # a parameter that does not exist is refused in scikit-learn's words, by the fine-tuners
    # too (skorch had kept its setting for fit to refuse), through a Pipeline as well
    for where, key in ((estimator, "nonexistent__x"),
                       (make_pipeline(estimator), f"{step}__nonexistent__x")):
        with pytest.raises(ValueError, match=rf"^Invalid parameter 'nonexistent' for estimator "
                                             rf"{name}\b.*Valid parameters are: "
                                             rf"\[.*'{refused[0]}'"):
            where.set_params(**{key: 1})
    assert estimator.get_params(deep=False).keys() == before.keys()


@pytest.mark.parametrize("estimator", ALL, ids=ALL_IDS)
def test_set_params_refuses_a_parameter_there_is_not_briefly_naming_a_close_one(estimator):
    """scikit-learn's "Invalid parameter 'poolin' for estimator ..." showed the estimator's
    repr, with a module given as weights its whole printout (over 1000 characters), and named
    no close parameter; nothing of the call is set."""
    estimator = clone(estimator)
    name = type(estimator).__name__
    before = estimator.get_params(deep=False)
    close = next(key for key in ("pooling", "n_components") if key in before)
    typo = close[:-1]
    with pytest.raises(ValueError, match=rf"^Invalid parameter {typo!r} for estimator {name} "
                                         rf"\(did you mean {close}\?\)\. Valid parameters "
                                         rf"are: \[.*'{close}'.*\]") as refused:
        estimator.set_params(**{close: before[close], typo: 1, "batch_size"
                                if "batch_size" in before else "sparsity": 0.25})
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 1000
    after = estimator.get_params(deep=False)
    assert all(after[key] is before[key] for key in before)
    step = make_pipeline(estimator).steps[0][0]
    with pytest.raises(ValueError, match=rf"^Invalid parameter {typo!r} for estimator {name} "):
        make_pipeline(estimator).set_params(**{f"{step}__{typo}": 1})


def test_set_params_names_the_first_refused_nested_setting_in_alphabetical_order():
    """Of several refused settings, the one named is the first in alphabetical order, whatever
    the order they were given in."""
    from brainjepa_sk import BrainJEPAEmbedder

    for params in ({"weights__x": 1, "pooling__x": 1}, {"pooling__x": 1, "weights__x": 1}):
        with pytest.raises(ValueError, match=r"^pooling__x sets the parameter 'x'"):
            BrainJEPAEmbedder().set_params(**params)


@pytest.mark.parametrize("estimator", ALL, ids=ALL_IDS)
def test_set_params_keeps_routing_nested_settings_to_estimators(estimator):
    """The check of nested settings leaves alone those that reach an estimator: a Pipeline's
    steps, the pretrainer's positioner, and the fine-tuners' skorch prefixes."""
    from brainjepa_sk import GradientPositioner

    estimator = clone(estimator)
    params = estimator.get_params(deep=False)
    key = "batch_size" if "batch_size" in params else "n_components"
    pipe = make_pipeline(estimator)
    pipe.set_params(**{f"{pipe.steps[0][0]}__{key}": 3})
    assert getattr(estimator, key) == 3
    if type(estimator) is type(ALL[2]):  # the pretrainer, whose gradients may be a positioner
        estimator.set_params(gradients=GradientPositioner(), gradients__n_components=2)
        assert estimator.set_params(gradients__kernel="cosine").gradients.get_params() == (
            GradientPositioner(n_components=2, kernel="cosine").get_params())
    if isinstance(estimator, NeuralNet):
        estimator.set_params(optimizer__betas=(0.8, 0.9), iterator_valid__batch_size=2,
                             criterion__reduction="sum", train_split=SubjectValidSplit(),
                             train_split__fraction=0.3)
        params = estimator.get_params()
        assert params["train_split__fraction"] == 0.3
        assert params["optimizer__betas"] == (0.8, 0.9)
        assert params["iterator_valid__batch_size"] == 2
        assert params["criterion__reduction"] == "sum"


@pytest.mark.parametrize("make", [lambda: tiny_estimators()[2],
                                  lambda: tiny_supervised_estimators()[0],
                                  lambda: tiny_supervised_estimators()[1]],
                         ids=["pretrainer", "classifier", "regressor"])
def test_a_failed_fit_draws_nothing_from_a_random_state_given(make):
    # subjects too short for a window are refused after the seeds were drawn: without the
    # state put back, the next fit of the same RandomState would differ from the one the user
    # would have got had the bad fit never been tried
    random_state = np.random.RandomState(0)
    estimator = make().set_params(random_state=random_state)
    state = pickle.dumps(random_state.get_state())
    with pytest.raises(ValueError, match="too short"):
        estimator.fit(make_subjects(n_timepoints=3), np.array([0, 1] * 4))
    assert pickle.dumps(random_state.get_state()) == state

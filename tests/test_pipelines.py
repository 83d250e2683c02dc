"""The estimators inside scikit-learn tooling: Pipeline, FeatureUnion, CV by group, grid search."""

import copy
import os
import pickle
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest
from _estimators import (
    assert_same_module,
    make_subjects,
    tiny_estimators,
    tiny_module,
    tiny_supervised_estimators,
)
from nilearn.connectome import ConnectivityMeasure
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_score
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from brainjepa_sk import BrainJEPAEmbedder, BrainJEPAPretrainer, GradientPositioner
from brainjepa_sk.checkpoint import save_checkpoint
from brainjepa_sk.preprocessing import Preprocessor

N_REGIONS = 8


@pytest.fixture(scope="module")
def labelled():
    """24 subjects of 8 regions; the label sets the coupling of regions 0-3 and their slowness."""
    rng = np.random.default_rng(0)
    X, y = [], []
    for i in range(24):
        label = i % 2
        shared = rng.standard_normal((40, 1))
        x = 0.5 * rng.standard_normal((40, N_REGIONS))
        x[:, :4] += (1.5 if label else 0.3) * shared
        if label:
            x[:, :4] = np.cumsum(x[:, :4], axis=0) / 3
        X.append(x)
        y.append(label)
    groups = np.repeat(np.arange(12), 2)  # e.g. two sessions per participant
    return np.stack(X), np.array(y), groups


def _embedder(**kwargs):
    return BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu", **kwargs)


def _fold_by_fold(make_steps, X, y, groups):
    """The scores ``cross_val_score`` should give, computed fold by fold with fresh steps."""
    scores = []
    for train, test in GroupKFold(n_splits=3).split(X, y, groups):
        *transformers, final = make_steps()
        train_X, test_X = X[train], X[test]
        for step in transformers:
            train_X = step.fit_transform(train_X)
            test_X = step.transform(test_X)
        scores.append(final.fit(train_X, y[train]).score(test_X, y[test]))
    return np.array(scores)


def test_embedder_then_classifier_in_a_pipeline(labelled):
    X, y, groups = labelled

    def steps():
        return [_embedder(), StandardScaler(), LogisticRegression(max_iter=1000)]

    scores = cross_val_score(make_pipeline(*steps()), X, y, groups=groups,
                             cv=GroupKFold(n_splits=3))
    # each fold refits its own copy of the embedder on its training subjects only
    np.testing.assert_allclose(scores, _fold_by_fold(steps, X, y, groups))
    # The two-step pipeline the user asked for works as written.
    pipe = Pipeline([("embed", _embedder()), ("clf", LogisticRegression())]).fit(X, y)
    assert pipe.predict(X).shape == y.shape and pipe.named_steps["clf"].n_features_in_ == 8


def test_pretrainer_in_a_regression_pipeline_with_group_cv(labelled):
    X, y, groups = labelled

    def steps():
        pretrainer = BrainJEPAPretrainer(
            gradients=GradientPositioner(n_components=3, sparsity=0.5),
            model_size=dict(embed_dim=16, depth=1, num_heads=2), patch_size=4, n_frames=16,
            predictor_depth=1, n_epochs=2, batch_size=16, device="cpu", verbose=0,
            random_state=0,
        )
        return [pretrainer, StandardScaler(), RidgeCV()]

    y = y.astype(float)
    scores = cross_val_score(make_pipeline(*steps()), X, y, groups=groups,
                             cv=GroupKFold(n_splits=3))
    np.testing.assert_allclose(scores, _fold_by_fold(steps, X, y, groups), rtol=1e-6)


def test_grid_search_over_an_embedder_parameter(labelled):
    X, y, _ = labelled
    search = GridSearchCV(
        Pipeline([("embed", _embedder()), ("clf", LogisticRegression(max_iter=1000))]),
        {"embed__pooling": ["mean", "roi"], "embed__normalization": ["global_zscore", "robust"]},
        cv=3,
    )
    search.fit(X, y)
    results = search.cv_results_
    assert len(results["params"]) == 4 and np.isfinite(results["mean_test_score"]).all()
    # the refitted pipeline's embedder got the best settings and applies them
    best = search.best_estimator_.named_steps["embed"]
    assert {"embed__pooling": best.pooling, "embed__normalization": best.normalization} == (
        search.best_params_)
    assert best.preprocessor_.normalization == best.normalization
    width = 8 if best.pooling == "mean" else 8 * N_REGIONS
    assert search.best_estimator_.named_steps["clf"].n_features_in_ == width


def test_feature_union_with_tangent_connectivity(labelled):
    X, y, _ = labelled
    union = FeatureUnion([
        ("brainjepa", _embedder()),
        ("fc", ConnectivityMeasure(kind="tangent", vectorize=True, discard_diagonal=True)),
    ])
    features = union.fit_transform(list(X))
    assert features.shape == (24, 8 + N_REGIONS * (N_REGIONS - 1) // 2)
    pipe = make_pipeline(union, StandardScaler(), LogisticRegression(max_iter=1000))
    scores = cross_val_score(pipe, list(X), y, cv=3)
    # connectivity carries the label here, so the union must pick it up
    assert scores.mean() > 0.7


def test_a_column_of_subjects_in_a_column_transformer_gives_named_pandas_features(labelled):
    """A table with the subjects' series in one column and a confound in another: the
    embedder takes the column, and the ColumnTransformer's feature names and pandas output
    (which pass the column's name as input_features) carry the regions' names."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer

    X, _, _ = labelled
    names = [f"roi{r}" for r in range(N_REGIONS)]
    subjects = [pd.DataFrame(x, columns=names) for x in X[:6]]
    table = pd.DataFrame({"series": subjects, "age": np.arange(6.0)},
                         index=[f"sub-{i}" for i in range(6)])
    columns = ColumnTransformer([("jepa", _embedder(pooling="roi"), "series"),
                                 ("age", "passthrough", ["age"])])
    out = columns.set_output(transform="pandas").fit_transform(table)
    assert list(out.columns[:2]) == ["jepa__roi0_embedding0", "jepa__roi0_embedding1"]
    assert list(out.columns[-2:]) == ["jepa__roi7_embedding7", "age__age"]
    assert list(out.index) == list(table.index)
    np.testing.assert_array_equal(out.iloc[:, :-1].to_numpy(),
                                  columns.named_transformers_["jepa"].transform(subjects))


def test_a_column_of_subjects_in_a_column_transformer_gives_named_gradient_features(labelled):
    """As for the embedder: the positioner's feature names took the column's name, which
    ColumnTransformer passes as input_features, for one region name too few, and raised."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer

    X, _, _ = labelled
    names = [f"roi{r}" for r in range(N_REGIONS)]
    subjects = [pd.DataFrame(x, columns=names) for x in X[:6]]
    table = pd.DataFrame({"series": subjects, "age": np.arange(6.0)})
    columns = ColumnTransformer([("g", GradientPositioner(n_components=2, sparsity=0.5),
                                  "series"), ("age", "passthrough", ["age"])])
    out = columns.set_output(transform="pandas").fit_transform(table)
    assert list(out.columns[:3]) == ["g__roi0_gradient0", "g__roi0_gradient1",
                                     "g__roi1_gradient0"]
    assert list(out.columns[-1:]) == ["age__age"]
    positioner = columns.named_transformers_["g"]
    with pytest.raises(ValueError, match="input_features has 1 names but 8 regions"):
        positioner.get_feature_names_out(["age"])  # another single name is no column of it


def test_a_column_of_connectivity_matrices_in_a_column_transformer(labelled):
    """A table's column of matrices (a Series of 2-D arrays) was refused as 'matrices of
    different shapes' by GradientPositioner(kind='connectivity'), all of one shape."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer

    X, _, _ = labelled
    matrices = ConnectivityMeasure(kind="correlation").fit_transform(list(X[:6]))
    table = pd.DataFrame({"conn": list(matrices), "age": np.arange(6.0)})
    settings = dict(kind="connectivity", n_components=2, sparsity=0.5)
    columns = ColumnTransformer([("g", GradientPositioner(**settings), "conn"),
                                 ("age", "passthrough", ["age"])])
    out = columns.set_output(transform="pandas").fit_transform(table)
    assert list(out.columns[:3]) == ["g__region0_gradient0", "g__region0_gradient1",
                                     "g__region1_gradient0"]
    np.testing.assert_array_equal(
        out.iloc[:, :-1].to_numpy(), GradientPositioner(**settings).fit_transform(matrices))


def test_a_table_of_one_column_of_subjects_is_refused_saying_to_pass_the_column(labelled):
    """ColumnTransformer passes a one-column table for ["series"], the column for "series":
    the error says so, not that a single subject goes in a list."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer

    X, _, _ = labelled
    table = pd.DataFrame({"series": list(X[:4]), "age": np.arange(4.0)})
    columns = ColumnTransformer([("jepa", _embedder(), ["series"])])
    with pytest.raises(ValueError, match=r"one column, 'series', holds the subjects: pass that "
                                         r"column, X\['series'\] \(in a ColumnTransformer, "
                                         r"select it as 'series', not \['series'\]\)$"):
        columns.fit(table)
    with pytest.raises(ValueError, match=r"one column holds the subjects: pass that column, "
                                         r"X\[:, 0\]$"):
        _embedder().fit(table[["series"]].to_numpy())


def test_gradient_features_in_a_pipeline(labelled):
    X, y, _ = labelled
    pipe = make_pipeline(GradientPositioner(n_components=2, sparsity=0.5), StandardScaler(),
                         LogisticRegression(max_iter=1000))
    assert cross_val_score(pipe, X, y, cv=3).shape == (3,)


@pytest.mark.parametrize("index", range(3))  # positioner, embedder, pretrainer
def test_subjects_from_a_generator_are_fitted_and_transformed_alike(labelled, index):
    # fit(X).transform(X) read a generator twice: fit used it up and transform saw "X is empty"
    X, y, _ = labelled
    X, y = X[:8, :12], y[:8]

    def make():
        return tiny_estimators(N_REGIONS)[index]

    expected = make().fit(X).transform(X)
    np.testing.assert_allclose(make().fit_transform(x for x in X), expected, rtol=1e-6)
    pipe = Pipeline([("step", make()), ("clf", LogisticRegression())]).fit(iter(X), y)
    np.testing.assert_array_equal(pipe.predict(X), pipe.predict(x for x in X))


@pytest.fixture
def in_a_loky_worker():
    """The default start method as in joblib's loky workers, where cross_val_score(...,
    n_jobs=2) and GridSearchCV fit: "loky", whose processes cannot be torch's loader workers."""
    import multiprocessing

    import joblib.externals.loky.backend.context  # noqa: F401 (registers the "loky" method)

    previous = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("loky", force=True)
    assert multiprocessing.get_start_method() == "loky"
    yield
    multiprocessing.set_start_method(previous, force=True)


def test_loader_workers_start_where_the_default_start_method_is_lokys(in_a_loky_worker):
    """Every fit with loader workers failed in joblib's workers with "'Process' object has no
    attribute 'env'"; they now start with the platform's default method."""
    X, y = make_subjects(8, 12, N_REGIONS), np.array([0, 1] * 4)
    expected = tiny_estimators(N_REGIONS)[2].fit(X).transform(X)
    pretrainer = tiny_estimators(N_REGIONS)[2].set_params(num_workers=1).fit(X)
    np.testing.assert_allclose(pretrainer.transform(X), expected, rtol=1e-6)
    expected = tiny_supervised_estimators(N_REGIONS)[0].fit(X, y).predict_proba(X)
    classifier = tiny_supervised_estimators(N_REGIONS, iterator_train__num_workers=1)[0]
    np.testing.assert_allclose(classifier.fit(X, y).predict_proba(X), expected, rtol=1e-6)


def test_the_fine_tuners_loaders_get_the_default_context_unless_one_is_set(in_a_loky_worker):
    """Both loaders (the validation loader runs predict) get it; a context of one's own is
    kept."""
    import multiprocessing

    default = multiprocessing.get_all_start_methods()[0]
    clf = tiny_supervised_estimators(N_REGIONS)[0].set_params(
        iterator_train__num_workers=1, iterator_valid__num_workers=1)
    for prefix in ("iterator_train", "iterator_valid"):
        context = clf.get_params_for(prefix)["multiprocessing_context"]
        assert context.get_start_method() == default
    clf.set_params(iterator_train__multiprocessing_context="spawn")
    assert clf.get_params_for("iterator_train")["multiprocessing_context"] == "spawn"
    assert "multiprocessing_context" not in clf.set_params(
        iterator_valid__num_workers=0).get_params_for("iterator_valid")


@pytest.mark.slow
def test_loader_workers_start_inside_joblibs_workers():
    """The same, end to end: cross_val_score(..., n_jobs=2) with loader workers."""
    X, y = make_subjects(12, 12, N_REGIONS), np.array([0, 1] * 6)
    for estimator in (
        make_pipeline(tiny_estimators(N_REGIONS)[2].set_params(num_workers=1),
                      LogisticRegression()),
        tiny_supervised_estimators(N_REGIONS, iterator_train__num_workers=1)[0],
    ):
        in_parallel = cross_val_score(estimator, X, y, cv=2, n_jobs=2, error_score="raise")
        np.testing.assert_array_equal(in_parallel, cross_val_score(estimator, X, y, cv=2))


@pytest.mark.parametrize("index", range(4))
def test_transform_and_predict_warn_that_preprocessing_changed_since_fit_needs_a_refit(index):
    """set_params after fit: the fitted preprocessing stays (scikit-learn's rule), but a silent
    mismatch between the parameters and what transform does would mislead, so it warns."""
    import warnings

    from _estimators import make_subjects, tiny_estimators, tiny_supervised_estimators

    estimator = (tiny_estimators()[1:] + tiny_supervised_estimators())[index]
    X, y = make_subjects(n_timepoints=16), np.tile([0, 1], 4)
    estimator.fit(X, y)
    use = estimator.transform if hasattr(estimator, "transform") else estimator.predict
    before = use(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        estimator.set_params(batch_size=2)  # settings read live do not warn
        use(X)
    estimator.set_params(window="first", normalization="roi_zscore")
    with pytest.warns(UserWarning, match=r"window='first' \(fitted with .*normalization="
                                         r"'roi_zscore' \(fitted with .*fit again"):
        after = use(X)
    np.testing.assert_allclose(after, before, rtol=1e-5)  # still the fitted preprocessing
    estimator.fit(X, y)  # a new fit takes the settings, and the warning goes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        use(X)
    assert estimator.preprocessor_.normalization == "roi_zscore"
    if not hasattr(estimator, "transform"):  # a fine-tuner's head is built for its pooling
        with pytest.warns(UserWarning, match=r"pooling='roi' \(fitted with 'mean'\)"):
            estimator.set_params(pooling="roi").predict(X)


def test_the_embedder_warns_for_weights_changed_since_fit_but_not_for_auto_values_set():
    """Found by a review: a new weights was silently ignored by transform; and setting a
    parameter to what "auto" resolved to changes nothing, so it must not warn."""
    import warnings

    from _estimators import make_subjects

    X = make_subjects(n_timepoints=16)
    embedder = _embedder().fit(X)
    resolved = embedder.preprocessor_
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embedder.set_params(n_frames=resolved.n_frames, window=resolved.window,
                            normalization=resolved.normalization).transform(X)
    before = embedder.transform(X)
    embedder.set_params(weights=tiny_module(N_REGIONS, seed=1))
    with pytest.warns(UserWarning, match=r"weights=.*\(fitted with .*fit again"):
        np.testing.assert_array_equal(embedder.transform(X), before)
    assert not np.allclose(embedder.fit(X).transform(X), before)  # a refit takes them


def test_settings_left_to_the_weights_and_set_to_what_they_resolved_to_do_not_warn():
    """stride and min_frames left at None take the values the weights carry: setting them to
    those values afterwards changes nothing, so transform does not warn; another value does."""
    module = tiny_module(N_REGIONS)
    module.preprocessing = Preprocessor(8, window="sliding", stride=2, min_frames=6,
                                        normalization=None).to_dict()
    X = make_subjects(n_timepoints=16)
    embedder = BrainJEPAEmbedder(weights=module, device="cpu").fit(X)
    assert (embedder.preprocessor_.stride, embedder.preprocessor_.min_frames) == (2, 6)
    before = embedder.transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(embedder.set_params(stride=2, min_frames=6).transform(X),
                                      before)
    with pytest.warns(UserWarning, match=r"stride=4 \(fitted with None\)"):
        embedder.set_params(stride=4).transform(X)


def test_model_t_r_left_to_the_weights_and_set_to_their_tr_does_not_warn():
    """model_t_r="auto" takes the TR the weights carry (the fitted preprocessing's target_t_r):
    setting it to that TR afterwards changes nothing, so transform does not warn; another does."""
    module = tiny_module(N_REGIONS)
    module.preprocessing = Preprocessor(8, target_t_r=2.0, normalization=None).to_dict()
    X = make_subjects(n_timepoints=16)
    embedder = BrainJEPAEmbedder(weights=module, device="cpu").fit(X)
    assert embedder.preprocessor_.target_t_r == 2.0
    before = embedder.transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(embedder.set_params(model_t_r=2.0).transform(X), before)
    with pytest.warns(UserWarning, match=r"model_t_r=1.0 \(fitted with 'auto'\)"):
        embedder.set_params(model_t_r=1.0).transform(X)


def _research_embedder(official_dir, **kwargs):
    """An embedder of the research-format test checkpoint, whose gradients and num_heads are
    read from the parameters at fit (24 regions, 40-frame windows)."""
    gradients = np.loadtxt(official_dir / "gradient.csv", delimiter=",", ndmin=2)
    params = dict(gradients=gradients, num_heads=4, normalization=None, device="cpu")
    return BrainJEPAEmbedder(official_dir / "checkpoint.pth.tar", **{**params, **kwargs})


def test_the_same_gradients_given_as_a_list_are_not_a_change(official_dir, reference):
    """Array-likes are compared by value, whatever their type: the gradients fitted with, given
    again as nested lists, do not warn; other values do (a research checkpoint, which uses
    them)."""
    X = reference["x_nilearn"]
    embedder = _research_embedder(official_dir).fit(X)
    gradients = embedder.gradients
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embedder.set_params(gradients=gradients.tolist()).transform(X)
    with pytest.warns(UserWarning, match=r"gradients=.* \(fitted with"):
        embedder.set_params(gradients=(gradients + 1).tolist()).transform(X)


def test_weights_settings_left_to_none_and_set_after_fit_warn(official_dir, reference):
    """num_heads left at None is not preprocessing that fit resolved: giving it after fit warns
    that transform keeps the fitted model (rather than failing), as a refit with it embeds
    otherwise."""
    X = reference["x_nilearn"]
    with pytest.warns(UserWarning, match="not the width of a ViT size"):
        embedder = _research_embedder(official_dir, num_heads=None).fit(X)
    before = embedder.transform(X)
    with pytest.warns(UserWarning, match=r"num_heads=4 \(fitted with None\)"):
        np.testing.assert_array_equal(embedder.set_params(num_heads=4).transform(X), before)
    assert not np.allclose(embedder.fit(X).transform(X), before)


@pytest.mark.parametrize("kind", ["module", "checkpoint"])
def test_gradients_and_num_heads_the_weights_carry_are_no_change(tmp_path, kind):
    """Our checkpoints and modules carry their gradients and heads, so a refit ignores those
    parameters (it warns so) and embeds as before: set after fit, transform must not ask for
    one. With other weights set too, they are named."""
    X = make_subjects(n_timepoints=16)
    module = tiny_module(N_REGIONS)
    weights = module
    if kind == "checkpoint":
        save_checkpoint(tmp_path / "model.pt", module)
        weights = tmp_path / "model.pt"
    embedder = BrainJEPAEmbedder(weights, device="cpu").fit(X)
    before = embedder.transform(X)
    gradients = np.random.default_rng(0).standard_normal((N_REGIONS, 3))
    embedder.set_params(gradients=gradients, num_heads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(embedder.transform(X), before)
    with pytest.warns(UserWarning, match="gradients and num_heads are ignored"):
        np.testing.assert_array_equal(embedder.fit(X).transform(X), before)  # the refit
    # what other weights carry is not known before they are loaded: all are named
    embedder.set_params(weights=tiny_module(N_REGIONS, seed=1), gradients=None)
    with pytest.warns(UserWarning, match=r"weights=.*gradients=None \(fitted with <ndarray>"):
        embedder.transform(X)


def test_t_r_set_to_the_models_tr_is_no_change():
    """Fitted without t_r on a model of known TR, the series are not resampled; t_r set to that
    TR afterwards resamples nothing either, so transform does not ask for a refit (which embeds
    the same): a model pretrained at TR 0.72 s resampled to 1.44 s, whose fit warning itself
    offers t_r=1.44 to keep the series as they are. Another TR, or a TR for a model whose TR
    is unknown, still warns."""
    module = tiny_module(N_REGIONS)
    module.preprocessing = Preprocessor(8, t_r=0.72, target_t_r=1.44,
                                        normalization=None).to_dict()
    X = make_subjects(n_timepoints=16)
    with pytest.warns(UserWarning, match="t_r=1.44 to keep them as they are"):
        embedder = BrainJEPAEmbedder(weights=module, device="cpu").fit(X)
    before = embedder.transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(embedder.set_params(t_r=1.44).transform(X), before)
        refit = BrainJEPAEmbedder(weights=module, device="cpu", t_r=1.44).fit(X)
        np.testing.assert_array_equal(refit.transform(X), before)
    with pytest.warns(UserWarning, match=r"t_r=0.72 \(fitted with None\)"):
        embedder.set_params(t_r=0.72).transform(X)
    # fitted at the model's TR: None is no change either
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(refit.set_params(t_r=None).transform(X), before)
    unknown = BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), device="cpu").fit(X)
    with pytest.warns(UserWarning, match=r"t_r=1.44 \(fitted with None\)"):
        unknown.set_params(t_r=1.44).transform(X)


def _meta_estimators():
    """Meta-estimators around a fine-tuner (and an embedder pipeline), by name: what they are
    fitted on, and a check of the fitted one on subjects ``X``."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import StackingClassifier, VotingClassifier
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.multioutput import MultiOutputRegressor

    def pipeline():
        return make_pipeline(_embedder(normalization=None), LogisticRegression())

    def calibrated(fitted, X):
        np.testing.assert_allclose(fitted.predict_proba(X).sum(axis=1), 1, rtol=1e-6)
        assert len(fitted.calibrated_classifiers_) == 2

    def log_target(fitted, X):
        inner = fitted.regressor_.predict(X)
        np.testing.assert_allclose(fitted.predict(X), np.expm1(inner), rtol=1e-6)

    def stacked(fitted, X):
        assert fitted.final_estimator_.n_features_in_ == 2  # one probability per member
        assert fitted.predict(X).shape == (len(X),)

    def voted(fitted, X):
        probabilities = [member.predict_proba(X) for member in fitted.estimators_]
        np.testing.assert_allclose(fitted.predict_proba(X), np.mean(probabilities, axis=0),
                                   rtol=1e-5)

    def one_vs_rest(fitted, X):
        assert len(fitted.estimators_) == 3 and set(fitted.predict(X)) <= {0, 1, 2}

    def per_output(fitted, X):
        assert len(fitted.estimators_) == 2 and fitted.predict(X).shape == (len(X), 2)

    return {
        "calibrated": (lambda clf, reg: CalibratedClassifierCV(clf, cv=2), "binary", calibrated),
        "log_target": (lambda clf, reg: TransformedTargetRegressor(
            regressor=reg, func=np.log1p, inverse_func=np.expm1), "positive", log_target),
        "stacking": (lambda clf, reg: StackingClassifier([("ft", clf), ("emb", pipeline())],
                                                         cv=2), "binary", stacked),
        "voting": (lambda clf, reg: VotingClassifier([("ft", clf), ("emb", pipeline())],
                                                     voting="soft"), "binary", voted),
        "one_vs_rest": (lambda clf, reg: OneVsRestClassifier(clf), "three", one_vs_rest),
        "multi_output": (lambda clf, reg: MultiOutputRegressor(reg), "two_targets", per_output),
    }


@pytest.mark.parametrize("name", list(_meta_estimators()))
def test_meta_estimators_take_subjects_of_different_lengths(name):
    make, target, check = _meta_estimators()[name]
    X = [x[: 16 + 2 * (i % 3)] for i, x in enumerate(make_subjects(12, 20))]
    y = {"binary": np.arange(12) % 2, "three": np.arange(12) % 3,
         "positive": np.linspace(0, 2, 12),
         "two_targets": np.c_[np.linspace(0, 2, 12), np.linspace(1, -1, 12)]}[target]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny model's convergence and small-data warnings
        fitted = make(*tiny_supervised_estimators()).fit(X, y)
        check(fitted, X)


def _cached_step_makers(tmp_path, official_dir):
    """Builders of each kind of cacheable first step, with the subjects each fits on."""
    X = make_subjects(n_subjects=6, n_timepoints=12)
    X_research = np.random.default_rng(0).standard_normal((6, 40, 24)).cumsum(axis=1)
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(N_REGIONS))
    fine_tuner = tiny_supervised_estimators(N_REGIONS)[1].fit(X, np.arange(6.0))
    pretrainer = tiny_estimators(N_REGIONS)[2]
    return {
        "checkpoint path": (lambda: BrainJEPAEmbedder(weights=path, device="cpu"), X),
        "research path and gradients": (lambda: _research_embedder(official_dir), X_research),
        "BrainJEPA module": (_embedder, X),
        "fine-tuner's encoder": (
            lambda: BrainJEPAEmbedder(weights=fine_tuner.module_.encoder, device="cpu"), X),
        "pretrainer, GradientPositioner": (lambda: pretrainer.set_params(
            gradients=GradientPositioner(n_components=2, sparsity=0.5)), X),
        "pretrainer, array": (lambda: pretrainer, X),
    }


@pytest.fixture
def counted_fits(monkeypatch):
    """The estimators' fits, counted (their cached fits are not)."""
    fits = []
    for cls in (BrainJEPAEmbedder, BrainJEPAPretrainer):
        def counted(self, *args, _fit=cls.fit, **kwargs):
            fits.append(type(self).__name__)
            return _fit(self, *args, **kwargs)
        monkeypatch.setattr(cls, "fit", counted)
    return fits


@pytest.mark.parametrize("kind", ["checkpoint path", "research path and gradients",
                                  "BrainJEPA module", "fine-tuner's encoder",
                                  "pretrainer, GradientPositioner", "pretrainer, array"])
def test_a_pipeline_with_memory_fits_the_step_once_and_loads_it_after(
        tmp_path, official_dir, counted_fits, kind):
    # a module as weights missed the cache at every fit: a pickled tensor records its memory
    # address, and the pipeline hashes a clone, which copies the module
    make_step, X = _cached_step_makers(tmp_path, official_dir)[kind]
    y = np.arange(len(X), dtype=float)
    counted_fits.clear()
    memory = str(tmp_path / "cache")
    first = make_pipeline(make_step(), RidgeCV(), memory=memory).fit(X, y).predict(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the loaded step is the one fitted, no change since
        again = make_pipeline(make_step(), RidgeCV(), memory=memory).fit(X, y)
        np.testing.assert_array_equal(again.predict(X), first)
    assert len(counted_fits) == 1
    make_pipeline(make_step(), RidgeCV(), memory=memory).fit(X[:-1], y[:-1])
    assert len(counted_fits) == 2  # other subjects: a new fit


def test_a_pipeline_with_memory_refits_for_a_checkpoint_saved_over_the_path(tmp_path,
                                                                           counted_fits):
    # the path alone keyed the cache: the fit of the file saved there before was served
    X = make_subjects(n_subjects=6)
    y = np.arange(6.0)
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(N_REGIONS, seed=0))
    pipe = make_pipeline(BrainJEPAEmbedder(weights=path, device="cpu"), RidgeCV(),
                         memory=str(tmp_path / "cache"))
    old = pipe.fit(X, y)[:-1].transform(X)
    save_checkpoint(path, tiny_module(N_REGIONS, seed=1))
    new = pipe.fit(X, y)[:-1].transform(X)
    assert len(counted_fits) == 2
    np.testing.assert_allclose(new, BrainJEPAEmbedder(weights=path, device="cpu").fit_transform(X))
    assert not np.allclose(new, old)


def test_a_pipeline_with_memory_refits_for_another_module(tmp_path, counted_fits):
    X = make_subjects(n_subjects=6)
    y = np.arange(6.0)
    for seed in (0, 1):
        make_pipeline(BrainJEPAEmbedder(weights=tiny_module(N_REGIONS, seed=seed), device="cpu"),
                      RidgeCV(), memory=str(tmp_path / "cache")).fit(X, y)
    assert len(counted_fits) == 2


def test_a_pickled_embedder_of_a_module_loads_it_as_one_module_and_transforms_silently():
    # its weights and those it recorded at fit, pickled apart, loaded as two modules: transform
    # warned that the weights had changed since fit
    X = make_subjects(n_subjects=4)
    embedder = _embedder().fit(X)
    loaded = pickle.loads(pickle.dumps(embedder))
    assert_same_module(loaded.weights, embedder.weights)
    assert loaded.weights is loaded._preprocessed_with_["weights"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(loaded.transform(X), embedder.transform(X))


def test_the_cache_key_of_an_embedder_of_a_module_is_the_same_in_another_process():
    # pickled tensors recorded their memory addresses: a new key in every process
    script = ("import joblib; from sklearn.base import clone; from _estimators import tiny_module;"
              " from brainjepa_sk import BrainJEPAEmbedder;"
              " print(joblib.hash(clone(BrainJEPAEmbedder(tiny_module(), device='cpu'))))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    other = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert other == joblib.hash(clone(BrainJEPAEmbedder(tiny_module(), device="cpu")))


def test_a_pipeline_with_memory_refits_for_a_gradient_file_saved_over_the_path(
        tmp_path, official_dir, reference, counted_fits):
    X = reference["x_nilearn"]
    y = np.arange(len(X), dtype=float)
    gradients = np.loadtxt(official_dir / "gradient.csv", delimiter=",", ndmin=2)
    path = tmp_path / "gradients.csv"
    np.savetxt(path, gradients, delimiter=",")
    pipe = make_pipeline(_research_embedder(official_dir, gradients=path), RidgeCV(),
                         memory=str(tmp_path / "cache"))
    pipe.fit(X, y)
    np.savetxt(path, gradients[::-1], delimiter=",")
    pipe.fit(X, y)
    assert len(counted_fits) == 2


def test_a_pipeline_with_memory_keys_subject_files_by_their_paths_alone(tmp_path, counted_fits):
    # what the user guide warns of: joblib hashes X as given, which the estimators never see
    X = make_subjects(n_subjects=4)
    paths = [str(tmp_path / f"sub-{i}.npy") for i in range(len(X))]
    for path, series in zip(paths, X):
        np.save(path, series)
    y = np.arange(4.0)
    pipe = make_pipeline(_embedder(), RidgeCV(), memory=str(tmp_path / "cache"))
    old_coef = pipe.fit(paths, y)[-1].coef_
    np.save(paths[0], make_subjects(n_subjects=1, seed=1)[0])
    assert not np.allclose(_embedder().fit_transform(paths), _embedder().fit_transform(X))
    np.testing.assert_array_equal(pipe.fit(paths, y)[-1].coef_, old_coef)
    assert len(counted_fits) == 3  # the two embedders above; the pipeline's fit, once


def test_a_shallow_copy_of_an_embedder_of_a_module_holds_the_module():
    # copy.copy takes the pickled state without loading it: weights was the pickling wrapper,
    # which fit refused and transform took for weights changed since fit
    X = make_subjects(n_subjects=4)
    embedder = _embedder()
    assert copy.copy(embedder).weights is embedder.weights
    embedder.fit(X)
    shallow = copy.copy(embedder)
    assert shallow.weights is embedder.weights
    assert shallow._preprocessed_with_["weights"] is embedder.weights
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(shallow.transform(X), embedder.transform(X))
    np.testing.assert_array_equal(copy.copy(_embedder()).fit(X).transform(X),
                                  embedder.transform(X))


def test_a_deep_copy_of_an_embedder_copies_a_module_that_pickle_cannot_save():
    # deepcopy went through torch.save: a module with a lambda hook, which deepcopy copies, failed;
    # and the copy's module was not the copy of the same module copied alongside
    X = make_subjects(n_subjects=4)
    module = tiny_module(N_REGIONS)
    module.register_forward_pre_hook(lambda *args: None)
    embedder = BrainJEPAEmbedder(weights=module, device="cpu")
    copied = copy.deepcopy({"module": module, "embedder": embedder})
    assert copied["embedder"].weights is copied["module"]
    embedder.fit(X)
    fitted_copy = copy.deepcopy(embedder)
    assert fitted_copy.weights is fitted_copy._preprocessed_with_["weights"]
    assert_same_module(fitted_copy.weights, module)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(fitted_copy.transform(X), embedder.transform(X))


def test_cross_val_score_in_processes_takes_a_module_that_only_cloudpickle_can_pickle():
    # joblib's processes get the estimators through cloudpickle, which pickles a lambda hook;
    # the module pickled as torch.save's bytes, with pickle's own pickler, failed
    X, y = make_subjects(n_subjects=6), np.arange(6.0)
    module = tiny_module(N_REGIONS)
    module.register_forward_pre_hook(lambda *args: None)
    pipe = make_pipeline(BrainJEPAEmbedder(weights=module, device="cpu"), RidgeCV())
    in_parallel = cross_val_score(pipe, X, y, cv=2, n_jobs=2, error_score="raise")
    np.testing.assert_array_equal(in_parallel, cross_val_score(pipe, X, y, cv=2))

"""Property-based tests of the input contract (hypothesis).

Whatever subjects are generated (shapes, dtypes, NaN or infinity, constant regions, short and
long series, mixed lengths, DataFrames with odd columns, the wrong orientation, other regions at
transform), each call either works as documented or raises a ``ValueError`` / ``TypeError``
whose message says what is wrong. Nothing else may escape: no IndexError, no silent NaN.
"""

import collections
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from _estimators import tiny_module
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from brainjepa_sk import BrainJEPAEmbedder, GradientPositioner
from brainjepa_sk.preprocessing import Preprocessor
from brainjepa_sk.validation import (
    check_region_names,
    validate_connectivity,
    validate_subjects,
)

N_REGIONS = 6
SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
# What the messages must say something about (any of these words).
MESSAGE_WORDS = ("subject", "region", "timepoint", "NaN", "infin", "numeric", "dimension",
                 "constant", "empty", "sparse", "expect", "feature", "shape", "convert",
                 "finite", "column", "names", "frames", "too short", "X ")


@st.composite
def subject_lists(draw, regions=st.integers(1, 8)):
    """Lists of subjects, mostly valid, with one kind of damage drawn at random."""
    n_subjects = draw(st.integers(1, 4))
    n_regions = draw(regions)
    lengths = draw(st.lists(st.integers(0, 60), min_size=n_subjects, max_size=n_subjects))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    subjects = [rng.standard_normal((n, n_regions)) * draw(st.sampled_from([1e-3, 1.0, 1e4]))
                for n in lengths]
    damage = draw(st.sampled_from(["none", "none", "none", "nan", "inf", "constant", "transpose", "dtype",
                                   "int", "dataframe", "odd_columns", "regions", "3d", "object"]))
    if damage == "nan" and subjects[0].size:
        subjects[0][0, 0] = np.nan
    elif damage == "inf" and subjects[0].size:
        subjects[0][-1, -1] = np.inf
    elif damage == "constant" and subjects[0].size:
        subjects[0][:, 0] = 3.0
    elif damage == "transpose":
        subjects = [x.T for x in subjects]
    elif damage == "dtype":
        subjects = [x.astype(np.float32) for x in subjects]
    elif damage == "int":
        subjects = [np.round(x * 10).astype(np.int64) for x in subjects]
    elif damage == "dataframe":
        subjects = [pd.DataFrame(x, columns=[f"r{j}" for j in range(x.shape[1])])
                    for x in subjects]
    elif damage == "odd_columns":
        columns = draw(st.sampled_from([[0, "a"], ["x", "x"], [1.5, None]]))
        subjects = [pd.DataFrame(x[:, :2], columns=columns) if x.shape[1] >= 2 else x
                    for x in subjects]
    elif damage == "regions" and n_subjects > 1:
        subjects[-1] = rng.standard_normal((max(lengths[-1], 1), n_regions + 1))
    elif damage == "3d":
        subjects = [x[None] for x in subjects]
    elif damage == "object":
        subjects = [np.array([[{"a": 1}] * max(n_regions, 1)] * 3, dtype=object)]
    return subjects


def _is_clear(error):
    text = str(error)
    return len(text) > 20 and any(word.lower() in text.lower() for word in MESSAGE_WORDS)


@SETTINGS
@given(subject_lists())
def test_validation_works_or_explains(subjects):
    try:
        out = validate_subjects(subjects, min_timepoints=2)
    except (ValueError, TypeError) as error:
        assert _is_clear(error), repr(error)
        event(f"refused: {type(error).__name__}")
        return
    event("accepted")
    # what it accepts is what it documents: 2-D finite float arrays with equal region counts
    assert len(out) == len(subjects)
    assert all(x.ndim == 2 and x.dtype == np.float64 and np.isfinite(x).all() for x in out)
    assert len({x.shape[1] for x in out}) == 1 and out[0].shape[1] >= 2
    assert all(x.shape[0] >= 2 for x in out)


@SETTINGS
@given(subject_lists(), st.sampled_from(["robust", "global_zscore", "roi_zscore", None]),
       st.sampled_from(["center", "first", "sliding"]))
def test_preprocessing_works_or_explains(subjects, normalization, window):
    try:
        valid = validate_subjects(subjects, min_timepoints=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the unit-scale warning
            windows, index = Preprocessor(16, window=window, stride=8,
                                          normalization=normalization).fit_transform(valid)
    except (ValueError, TypeError) as error:
        assert _is_clear(error), repr(error)
        event(f"refused: {type(error).__name__}")
        return
    event("accepted")
    assert windows.shape[1:] == (16, valid[0].shape[1]) and windows.dtype == np.float32
    assert np.isfinite(windows).all()
    assert sorted(set(index.tolist())) == list(range(len(valid)))  # every subject has windows


@pytest.fixture(scope="module")
def embedder():
    rng = np.random.default_rng(0)
    return BrainJEPAEmbedder(weights=tiny_module(N_REGIONS), normalization="global_zscore",
                             device="cpu").fit([rng.standard_normal((20, N_REGIONS))])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(subject_lists(regions=st.sampled_from([N_REGIONS, N_REGIONS, N_REGIONS, 5, 7])))
def test_transform_works_or_explains(embedder, subjects):
    try:
        out = embedder.transform(subjects)
    except (ValueError, TypeError) as error:
        assert _is_clear(error), repr(error)
        event(f"refused: {type(error).__name__}")
        return
    event("accepted")
    assert out.shape == (len(subjects), embedder.embedding_dim_) and np.isfinite(out).all()


def test_column_names_of_mixed_types_are_refused_as_in_scikit_learn():
    rng = np.random.default_rng(0)
    good = pd.DataFrame(rng.standard_normal((10, 2)), columns=["b", "a"])
    mixed = pd.DataFrame(rng.standard_normal((10, 2)), columns=[0, "a"])
    with pytest.raises(TypeError, match="subject 0: Feature names are only supported if all"):
        validate_subjects([mixed, good])
    with pytest.raises(TypeError, match="subject 1: Feature names are only supported if all"):
        validate_subjects([good, mixed], lazy=True)


def test_the_first_bad_value_is_located_by_region_then_by_timepoint_in_that_region():
    rng = np.random.default_rng(1)
    good = rng.standard_normal((10, 5))
    x = rng.standard_normal((10, 5))
    x[1, 4] = np.nan  # earlier in time, in a later region
    x[6, 2] = np.inf
    with pytest.raises(ValueError, match=r"subject 1: .*First at region 2 \(column 2\), "
                                         r"timepoint 6; 2 region\(s\) and 2 value\(s\) in all"):
        validate_subjects([good, x])
    names = list("abcde")
    with pytest.raises(ValueError, match=r"subject 1: .*First at region 'c' \(column 2\), "
                                         r"timepoint 6"):
        validate_subjects([pd.DataFrame(good, columns=names), pd.DataFrame(x, columns=names)])
    # pandas' nullable floats: pd.NA is a missing value too (x's NaN becomes NA)
    nullable = pd.DataFrame(x, columns=names).astype("Float64")
    assert nullable.isna().to_numpy().sum() == 1
    with pytest.raises(ValueError, match=r"subject 1: .*First at region 'c' \(column 2\), "
                                         r"timepoint 6; 2 region\(s\) and 2 value\(s\)"):
        validate_subjects([pd.DataFrame(good, columns=names), nullable])


@pytest.mark.parametrize("lazy", [False, True])
def test_a_subject_of_exactly_min_timepoints_is_accepted_and_one_fewer_refused(lazy):
    rng = np.random.default_rng(2)
    subjects = [rng.standard_normal((5, 3)), rng.standard_normal((3, 3))]
    checked = validate_subjects(subjects, min_timepoints=3, lazy=lazy)
    assert [np.shape(checked[i]) for i in range(2)] == [(5, 3), (3, 3)]
    with pytest.raises(ValueError, match=r"subject 1 has 3 timepoint\(s\); at least 4 are"):
        validate_subjects(subjects, min_timepoints=4, lazy=lazy)
    if lazy:  # checked already: only the lengths are checked again
        assert validate_subjects(checked, min_timepoints=3, lazy=True) is checked
        with pytest.raises(ValueError, match=r"subject 1 has 3 timepoint\(s\); at least 4"):
            validate_subjects(checked, min_timepoints=4, lazy=True)


def test_a_table_with_a_short_row_names_that_row_and_the_first_rows_length():
    rows = [[0.0, 1.0, 2.0], [1.0, 0.0, 2.0], [2.0, 1.0], [0.5, 0.1, 0.3]]
    with pytest.raises(ValueError, match=r"subject 0 is a table whose rows differ in length: "
                                         r"row 2 has 2 value\(s\) but row 0 has 3"):
        validate_subjects([rows])


def test_region_names_of_another_count_are_left_to_the_region_count_check():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_region_names(["a", "b"], ["a", "b", "c"], name="BrainJEPAEmbedder")
        check_region_names(["b", "c", "a"], ["a", "b"], name="BrainJEPAEmbedder")
    with pytest.warns(UserWarning, match=r"column 2 is 'd' but was 'c'; 1 in all"):
        check_region_names(["a", "b", "d"], ["a", "b", "c"])


def test_names_of_the_same_set_but_other_counts_are_other_names_not_another_order():
    """Only the same names reordered are an error; "a" twice for "b" twice is other names."""
    with pytest.warns(UserWarning, match=r"column 1 is 'a' but was 'b'; 1 in all"):
        check_region_names(["a", "a", "b"], ["a", "b", "b"])
    with pytest.raises(ValueError, match="in another order"):
        check_region_names(["b", "a", "a"], ["a", "b", "a"])


def test_a_subject_given_transposed_at_transform_is_said_to_look_transposed(embedder):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, N_REGIONS))
    with pytest.raises(ValueError, match=rf"^X has 20 features, but BrainJEPAEmbedder "
                                         rf"is expecting {N_REGIONS}.*\(it looks transposed\)"):
        embedder.transform([x.T])
    with pytest.raises(ValueError, match=r"\(n_timepoints, n_regions\)$"):  # no hint: 5 rows
        embedder.transform([x[:5, :5]])


@pytest.mark.parametrize("as_bytes", [lambda x: x.astype("S"),
                                      lambda x: x.astype("S").astype(object),
                                      lambda x: x.astype(str).astype(object)],
                         ids=["bytes", "bytes_as_objects", "text_as_objects"])
def test_numbers_as_bytes_are_refused_as_text_not_converted(as_bytes):
    """float(b"1.5") and float("1.5") work: without the check, numbers read as bytes or as
    text (in an object array, as pandas reads them) would pass as a signal."""
    x = np.random.default_rng(4).standard_normal((10, 3))
    with pytest.raises(TypeError, match=r"subject 1 holds text, not numbers"):
        validate_subjects([x, as_bytes(x)])


def test_a_text_column_of_a_subject_is_named_by_its_header_and_position():
    """A label column appended to a subject's DataFrame (say, its condition) had been refused
    as text somewhere in the subject: the column is named, with where its first text is."""
    x = np.random.default_rng(4).standard_normal((10, 3))
    # text from timepoint 5 on (an object column)
    condition = pd.Series([1.5] * 5 + ["rest"] * 5, dtype=object)
    table = pd.DataFrame(x, columns=["r0", "r1", "r2"]).assign(condition=condition)
    with pytest.raises(TypeError, match=r"^subject 1 holds text, not numbers \(convert .*\); its "
                                        r"first text column is 'condition' \(column 3; 'rest' at "
                                        r"timepoint 5\): drop it if it is no region"):
        validate_subjects([x, table])
    # without names, the column's position
    text = x.astype(object)
    text[2, 1] = "rest"
    with pytest.raises(TypeError, match=r"^subject 0 holds text.*; first in column 1: 'rest' at "
                                        r"timepoint 2$"):
        validate_subjects([text])


@pytest.mark.parametrize("marker", ["n/a", "NA", "", "null", "-"])
@pytest.mark.parametrize("named", [False, True])
def test_a_missing_value_marker_in_a_region_is_named_as_missing_not_as_a_label(marker, named):
    """'n/a' in a region's column (an object DataFrame or array) was told "its first text
    column is 3 ...: drop it if it is no region (x.drop(columns=[3]))", as if the region were
    a label column; it is a missing value, refused as NaN is."""
    x = np.random.default_rng(4).standard_normal((10, 4)).astype(object)
    x[2, 1] = marker
    table = pd.DataFrame(x, columns=["r0", "r1", "r2", "r3"]) if named else x
    where = "column 'r1' \\(column 1\\)" if named else "column 1"
    with pytest.raises(TypeError, match=rf"^subject 0 holds text.*; '{re.escape(marker)}' at "
                                        rf"timepoint 2 in {where} marks a missing value: "
                                        r"nothing is imputed, so remove .* or interpolate them"
                                        ) as info:
        validate_subjects([table])
    assert "drop it" not in str(info.value)


@pytest.mark.parametrize("first", ["", "n/a", "-", "?"])
def test_a_label_column_whose_first_cell_is_empty_is_still_named_as_a_label_column(first):
    """A condition column starting with an empty cell (BIDS writes "n/a") was told "'' at
    timepoint 0 ... marks a missing value: ... remove the timepoints", not to drop the column:
    its other cells are labels."""
    x = pd.DataFrame(np.random.default_rng(4).standard_normal((10, 4)),
                     columns=["r0", "r1", "r2", "r3"])
    x["condition"] = [first] + ["rest", "task"] * 4 + ["rest"]
    with pytest.raises(TypeError, match=r"its first text column is 'condition' \(column 4; "
                                        r"'rest' at timepoint 1\): drop it") as info:
        validate_subjects([x])
    assert "missing value" not in str(info.value)


def test_a_masked_array_with_nothing_masked_is_taken_as_its_values():
    """A mask array all False (np.ma.masked_invalid of finite values gives one after NumPy 1.24,
    which gave nomask): nothing is lost."""
    x = np.random.default_rng(5).standard_normal((10, 3))
    masked = np.ma.MaskedArray(x, mask=np.zeros(x.shape, dtype=bool))
    assert masked.mask.shape == x.shape and not masked.mask.any()
    np.testing.assert_array_equal(validate_subjects([masked])[0], x)


def test_a_series_given_as_a_subject_is_said_to_be_one_dimensional():
    x = np.random.default_rng(6).standard_normal((10, 3))
    with pytest.raises(ValueError, match=r"subject 1 has 1 dimension\(s\) \(shape \(10,\)\)"):
        validate_subjects([x, pd.Series(x[:, 0])])


# -- round 13: what planted bugs in validation.py showed the tests above let through ---------


def test_raw_bytes_are_refused_as_bytes_not_read_one_byte_per_subject():
    """``x.tobytes()`` is a sequence of ints: without the check each byte became a subject."""
    x = np.random.default_rng(7).standard_normal((2, 10, 3))
    with pytest.raises(ValueError, match=r"or a glob of files; got bytes$"):
        validate_subjects(x.tobytes())


class _ColumnTable:
    """A table with ``columns`` but no ``ndim`` (as a polars DataFrame), iterating over its
    columns."""

    def __init__(self, values):
        self.values = values
        self.columns = [f"r{j}" for j in range(values.shape[1])]
        self.shape = values.shape

    def __iter__(self):
        return iter(self.values.T)


def test_one_table_given_as_x_is_refused_with_the_advice_to_wrap_it():
    """One subject's table as X would otherwise be read as one subject per column (a column
    named like an attribute of checked subjects, allow_constant, is not taken for one)."""
    x = np.random.default_rng(8).standard_normal((10, 3))
    for table in (pd.DataFrame(x, columns=list("abc")), _ColumnTable(x), x,
                  pd.DataFrame(x, columns=["a", "allow_constant", "c"])):
        for lazy in (False, True):
            with pytest.raises(ValueError, match=r"got one 2-D table of shape \(10, 3\)\. "
                                                 r"For a single subject, pass \[x\]"):
                validate_subjects(table, lazy=lazy)


@pytest.mark.parametrize("column", ["subject", "participant_id", "Subject_ID", "sub"])
def test_a_long_table_of_every_subjects_frames_is_told_how_to_split_it(column):
    """Every subject's frames stacked in one table, with a column naming the subject (as a
    study's concatenated export reads), had been told to wrap it as one subject, and of a
    GradientPositioner's output."""
    rng = np.random.default_rng(9)
    subjects = [rng.standard_normal((12, 4)) for _ in range(3)]
    long = pd.concat([pd.DataFrame(x, columns=list("abcd")).assign(**{column: f"s{i}"})
                      for i, x in enumerate(subjects)], ignore_index=True)
    with pytest.raises(ValueError) as error:
        BrainJEPAEmbedder(tiny_module(4)).fit(long)
    message = str(error.value)
    split = f"[t.drop(columns={column!r}) for _, t in X.groupby({column!r}, sort=False)]"
    assert (f"got one 2-D table of shape (36, 5) whose column {column!r} names the subjects: "
            f"a long table of every subject's frames? Split it, one table a subject: {split}, "
            "the subjects in the order they first appear (give y in that order)" in message)
    assert "GradientPositioner" not in message
    # the line it gives splits the table into the subjects, in their order
    for table, x in zip(eval(split, {"X": long}), subjects):
        np.testing.assert_array_equal(table.to_numpy(), x)


def test_a_gradient_positioner_as_a_pipeline_step_is_told_to_be_the_gradients_parameter():
    """GradientPositioner before a Brain-JEPA estimator in a Pipeline hands it one 2-D table
    (a row of gradients per subject): the refusal says where gradients go, besides [x]."""
    from sklearn.pipeline import make_pipeline

    from brainjepa_sk.gradients import GradientPositioner

    X = np.random.default_rng(8).standard_normal((4, 40, 10))
    pipeline = make_pipeline(GradientPositioner(n_components=3, sparsity=0), BrainJEPAEmbedder())
    with pytest.raises(ValueError, match=r"got one 2-D table of shape \(4, 30\)\. For a single "
                                         r"subject, pass \[x\]\. If it is a "
                                         r"GradientPositioner's output \(a pipeline step before "
                                         r"this one\): gradients are given as the gradients= "
                                         r"parameter .*not as a pipeline step"):
        pipeline.fit(X)
    # as DataFrames (pandas output), its columns tell it apart before any estimator
    positioner = GradientPositioner(n_components=3, sparsity=0).set_output(transform="pandas")
    table = positioner.fit_transform(list(X))
    for check in (validate_subjects, Preprocessor(n_frames=10).fit):
        with pytest.raises(ValueError, match=r"are a GradientPositioner's output: gradients are "
                                             r"given as the gradients= parameter"):
            check(table)
    # one subject's table, given to an estimator without gradients, keeps the plain advice
    with pytest.raises(ValueError, match=r"pass \[x\]\.$"):
        validate_subjects(X[0])
    # one subject's table, given to a fitted estimator of its region count (one new subject at
    # transform or predict), is not told about gradients
    embedder = BrainJEPAEmbedder(tiny_module(10), n_frames=8, device="cpu").fit(list(X))
    with pytest.raises(ValueError, match=r"got one 2-D table of shape \(40, 10\)\. For a single "
                                         r"subject, pass \[x\]\.$"):
        embedder.transform(X[0])


def test_an_array_of_more_than_three_dimensions_is_refused_as_a_whole():
    """A 4-D array is named as such, not taken apart into 3-D subjects."""
    x = np.random.default_rng(9).standard_normal((2, 10, 3, 1))
    with pytest.raises(ValueError, match=r"got a 4-D array of shape \(2, 10, 3, 1\)\. Reshape"):
        validate_subjects(x)
    with pytest.raises(ValueError, match=r"got an 8-D array of shape \(2, 10, 3(, 1){5}\)\. "):
        validate_subjects(x.reshape(2, 10, 3, 1, 1, 1, 1, 1))  # had read "a 8-D"


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("empty", [[], (), np.empty((0, 10, 3))], ids=["list", "tuple", "array"])
def test_no_subjects_at_all_is_said_to_be_empty(empty, lazy):
    """Said so, not an IndexError from looking at the first subject (nor, lazily, taken for
    a list of no files)."""
    with pytest.raises(ValueError, match=r"^X is empty: expected at least one subject$"):
        validate_subjects(empty, lazy=lazy)


def test_a_constant_region_is_not_said_to_be_removable_where_the_regions_are_set():
    """Weights, or a fit, set the regions: "remove them" had led to the region count's error
    (the published weights take all 450); there the subject is to be left out, or, for a
    region without signal, constant_regions='zero' given (also for this subject alone: the
    message had offered it for a region without signal in every subject only, where the option
    keeps a subject whose one region lies outside its field of view too). Before a fit,
    removing them from the one subject alone had led to that error too: they go from every
    subject, or the subject is left out."""
    from brainjepa_sk import GradientPositioner

    rng = np.random.default_rng(12)
    good, flat = rng.standard_normal((16, 8)), rng.standard_normal((16, 8))
    flat[:, 2] = 0.0
    fixed = (r"^subject 1: 1 region\(s\) have a constant signal \(indices \[2\]\); "
             r"{} takes every region of its atlas, so a region cannot be removed: fix the "
             r"extraction, or leave the subject out; a region without signal \(outside the field "
             r"of view, of this subject or of every one\) is taken as 0 after normalization "
             r"with constant_regions='zero'{}$")
    with pytest.raises(ValueError, match=fixed.format("BrainJEPAEmbedder", "")):
        BrainJEPAEmbedder(weights=tiny_module(), device="cpu").fit([good, flat])
    positioner = GradientPositioner(n_components=2, sparsity=0.5)
    with pytest.raises(ValueError, match=r"\(indices \[2\]\); remove them from every "
                                         r"subject \(all must keep the same regions\), leave "
                                         r"the subject out, or fix the extraction$"):
        positioner.fit([good, flat])  # before a fit, regions can go: from every subject
    # no such option, nor a model the embedder takes as weights: not pointed to it
    with pytest.raises(ValueError, match=r"^subject 1: 1 region\(s\) have a constant signal "
                                         r"\(indices \[2\]\); GradientPositioner takes every "
                                         r"region of its atlas, so a region cannot be removed: "
                                         r"fix the extraction, or leave the subject out$"):
        positioner.fit([good, good]).transform([good, flat])


@pytest.mark.parametrize("estimator", ["BrainJEPAEmbedder", "BrainJEPAClassifier"])
def test_constant_regions_zero_takes_a_region_without_signal_in_every_subject(estimator):
    """A region outside every scan's field of view, which the weights' atlas still needs: with
    constant_regions='zero' it is accepted, whatever value the extraction wrote there, and
    transform after fit takes it as fit did."""
    import brainjepa_sk

    rng = np.random.default_rng(13)
    X = [rng.standard_normal((16, 8)) for _ in range(4)]
    for x in X:
        x[:, 2] = 0.0
    params = {} if estimator == "BrainJEPAEmbedder" else dict(max_epochs=1, verbose=0)
    make = getattr(brainjepa_sk, estimator)
    with pytest.raises(ValueError, match=r"constant_regions='zero'$"):
        make(tiny_module(), device="cpu", **params).fit(X, [0, 1, 0, 1])
    fitted = make(tiny_module(), device="cpu", constant_regions="zero", **params)
    fitted.fit(X, [0, 1, 0, 1])
    assert fitted.preprocessor_.constant_regions == "zero"
    filled = [x.copy() for x in X]
    for x in filled:
        x[:, 2] = 1000.0  # another fill value: the same input to the model
    out = fitted.transform(X) if estimator == "BrainJEPAEmbedder" else fitted.predict_proba(X)
    again = (fitted.transform(filled) if estimator == "BrainJEPAEmbedder"
             else fitted.predict_proba(filled))
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, again)
    if estimator == "BrainJEPAEmbedder":  # set after a fit without it: a refit applies it
        refit = make(tiny_module(), device="cpu").fit([rng.standard_normal((16, 8))] * 2)
        refit.set_params(constant_regions="zero")
        with pytest.raises(ValueError, match=r"constant_regions='zero' \(set since fit: fit "
                                             r"again to apply it\)$"):
            refit.transform(X)


@pytest.mark.parametrize("estimator", ["BrainJEPAEmbedder", "BrainJEPAClassifier"])
def test_an_estimator_pickled_before_constant_regions_existed_predicts_as_it_did(estimator):
    """A pickle of an older version holds neither the estimator's constant_regions nor its
    preprocessor_'s: it had failed with AttributeError in transform, predict and get_params;
    it is one of the then-behaviour ('error', preprocessing 'keep')."""
    import pickle

    import brainjepa_sk

    rng = np.random.default_rng(14)
    X = [rng.standard_normal((16, 8)) for _ in range(4)]
    params = {} if estimator == "BrainJEPAEmbedder" else dict(max_epochs=1, verbose=0)
    fitted = getattr(brainjepa_sk, estimator)(tiny_module(), device="cpu", **params).fit(
        X, [0, 1, 0, 1])
    predict = "transform" if estimator == "BrainJEPAEmbedder" else "predict_proba"
    expected = getattr(fitted, predict)(X)

    def older(obj):  # what pickle.loads gives of a pickle without the attribute
        rebuild, args, state, *_ = obj.__reduce_ex__(2)
        state = {key: older(value) if isinstance(value, Preprocessor) else value
                 for key, value in state.items() if key != "constant_regions"}
        loaded = rebuild(*args)
        if hasattr(loaded, "__setstate__"):
            loaded.__setstate__(state)
        else:
            loaded.__dict__.update(state)
        return loaded

    old = older(pickle.loads(pickle.dumps(fitted)))
    assert "constant_regions" not in vars(old.preprocessor_)
    np.testing.assert_array_equal(getattr(old, predict)(X), expected)
    assert old.get_params()["constant_regions"] == "error"
    flat = [x.copy() for x in X]
    flat[1][:, 2] = 0.0  # refused as by an estimator of its own: no other class named
    with pytest.raises(ValueError, match=r"constant_regions='zero'$"):
        getattr(old, predict)(flat)


def test_a_dataframe_with_one_boolean_column_among_numbers_is_refused():
    """Each column's dtype counts: a boolean column after float ones is no signal either."""
    x = np.random.default_rng(10).standard_normal((10, 3))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1] > 0, "c": x[:, 2]})
    with pytest.raises(TypeError, match=r"^subject 1 holds booleans"):
        validate_subjects([pd.DataFrame(x, columns=list("abc")), frame])


def test_a_region_constant_over_time_is_named_by_its_index():
    """Constant means constant in time (a region's column), not across regions at one time."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((10, 4))
    x[:, 2] = 5.0
    with pytest.raises(ValueError, match=r"^subject 1: 1 region\(s\) have a constant signal "
                                         r"\(indices \[2\]\)"):
        validate_subjects([rng.standard_normal((10, 4)), x])
    same_time = rng.standard_normal((10, 4))
    same_time[3] = 1.0  # every region equal at one timepoint: a signal all the same
    assert validate_subjects([same_time])[0].shape == (10, 4)
    assert validate_subjects([x], allow_constant=True)[0][0, 2] == 5.0


def test_scans_padded_with_zeros_to_a_common_length_are_refused_not_taken_for_signal():
    """Scans of different lengths stacked into one 3-D array by padding the shorter ones with
    zeros had been taken as they were: the model embedded the padding as frames of signal.
    One frame of zeros at the end, or zeros inside a scan, is let through."""
    rng = np.random.default_rng(13)
    X = np.zeros((3, 60, 4))
    for i, n in enumerate((60, 40, 59)):
        X[i, :n] = rng.standard_normal((n, 4))
    with pytest.raises(ValueError, match=re.escape(
            "subject 1 ends with 20 frames that are 0 in every region (timepoints 40 to 59): a "
            "shorter scan padded to a common length? Scans may differ in length: pass X as a "
            "list of arrays, each cut to its own length (here x[:40])")):
        validate_subjects(X)
    lengths = (60, 40, 59)
    cut = validate_subjects([x[:n] for x, n in zip(X, lengths)])
    assert [len(x) for x in cut] == [60, 40, 59]
    assert len(validate_subjects(X[[0, 2]])) == 2  # subject 2 ends with one frame of zeros
    inside = rng.standard_normal((30, 4))
    inside[10:15] = 0.0  # zeros inside a scan: not the padding of a shorter one
    assert len(validate_subjects([inside])) == 1
    for estimator in (BrainJEPAEmbedder(tiny_module(4), device="cpu"),
                      GradientPositioner(n_components=2, sparsity=0.5)):
        with pytest.raises(ValueError, match="subject 1 ends with 20 frames that are 0"):
            estimator.fit(X)
    # padded with NaN instead: refused as NaN, and said to be padding
    X[1, 40:], X[2, 59:] = np.nan, np.nan
    with pytest.raises(ValueError, match=r"subject 1: .*contains NaN\. First at region 0 "
                                         r"\(column 0\), timepoint 40; 4 region\(s\) and 80 "
                                         r"value\(s\) in all\. Timepoints 40 to 59, and only "
                                         r"they, are NaN in every region: a shorter scan padded "
                                         r"to a common length\? .*\(here x\[:40\]\)$"):
        validate_subjects(X)
    with pytest.raises(ValueError, match=r"subject 1: .*in all$"):  # NaN before them too
        X[1, 3, 0] = np.nan
        validate_subjects(X)
    with pytest.raises(ValueError, match=r"subject 0: .*59; 4 region\(s\) and 4 value\(s\) "
                                         r"in all$"):  # one frame: no more than a NaN frame
        validate_subjects(X[2:])


def _connectivity_matrices(n_regions, seed):
    """Each kind of matrix a connectome file may hold, with how the refusal describes it."""
    rng = np.random.default_rng(seed)
    series = rng.standard_normal((200, n_regions))
    covariance = np.cov(series.T)
    correlation = np.corrcoef(series.T)
    precision = np.linalg.inv(covariance)
    partial = -precision / np.sqrt(np.outer(np.diag(precision), np.diag(precision)))
    np.fill_diagonal(partial, 1.0)  # as nilearn's "partial correlation" has it
    unit = "symmetric with a unit diagonal: a correlation matrix"
    return [
        (correlation, unit),
        (correlation.astype(np.float32), unit),  # saved in float32
        (partial, unit),
        (np.arctanh(correlation - np.eye(n_regions)),  # Fisher z, the diagonal zeroed
         "symmetric with a constant diagonal (every value 0)"),
        (covariance, "symmetric and positive semi-definite: a covariance matrix"),
    ]


@pytest.mark.parametrize("lazy", [False, True])
def test_a_subject_that_looks_like_a_connectivity_matrix_is_refused_among_series(tmp_path,
                                                                                lazy):
    """A connectome saved next to the series (and globbed or listed with them) is a valid
    square "series": only input made of correlation matrices alone was refused, so one among
    series was trained on silently. It is refused where it stands, naming the subject and its
    file, whatever kind of matrix it is."""
    rng = np.random.default_rng(30)
    series = [rng.standard_normal((30, N_REGIONS)) for _ in range(3)]
    for matrix, kind in _connectivity_matrices(N_REGIONS, seed=32):
        message = (rf"subject 2 looks like a connectivity matrix, not a time series: it is "
                   rf"square \(6 x 6\) and {re.escape(kind)}\. The estimator takes each "
                   r"subject's ROI time series, of shape \(n_timepoints, n_regions\): leave "
                   r"the matrix out of X")
        with pytest.raises(ValueError, match="^" + message):
            validate_subjects(series[:2] + [matrix] + series[2:], lazy=lazy)
        paths = [tmp_path / f"sub-{k}.npy" for k in range(3)] + [tmp_path / "conn.npy"]
        for path, x in zip(paths, series[:2] + [matrix] + series[2:]):
            np.save(path, x)
        with pytest.raises(ValueError, match=f"^{re.escape(str(paths[2]))}: {message}"):
            validate_subjects(paths, lazy=lazy)
        # a matrix alone, as subject 0, is refused the same way
        with pytest.raises(ValueError, match="^subject 0 looks like a connectivity matrix"):
            validate_subjects([matrix], lazy=lazy)


def test_square_series_are_not_taken_for_connectivity_matrices():
    """A series with as many frames as regions is practically never symmetric; one built
    symmetric (sinusoids whose phase steps by the frame interval, x[t, r] = sin(w (t + r)))
    has neither a constant diagonal nor a positive semi-definite shape, and is kept too."""
    rng = np.random.default_rng(31)
    frames = np.arange(N_REGIONS)
    symmetric = np.sin(0.7 * (frames[:, None] + frames[None, :]))
    np.testing.assert_array_equal(symmetric, symmetric.T)
    square = [rng.standard_normal((N_REGIONS, N_REGIONS)),
              rng.standard_normal((N_REGIONS, N_REGIONS)).cumsum(axis=0), symmetric]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checked = validate_subjects(square)
    for x, y in zip(checked, square):
        np.testing.assert_array_equal(x, y)


class _Fitted:
    """A bare estimator for validate_subjects(estimator=...)."""


def test_the_first_asymmetric_connectivity_matrix_is_named_and_one_matrix_is_one_subject():
    """The message points at the first bad matrix; one 2-D matrix (a DataFrame keeps its
    names) is one subject's."""
    matrices = np.stack([np.eye(3)] * 3)
    matrices[1, 0, 1] = matrices[2, 0, 1] = 0.5
    with pytest.raises(ValueError, match=r"^connectivity matrix 1 is not symmetric"):
        validate_connectivity(matrices)
    frame = pd.DataFrame(np.eye(3), columns=list("abc"))
    array, names = validate_connectivity(frame)  # one matrix, with its region names
    assert array.shape == (1, 3, 3) and names.tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(array[0], np.eye(3))


def test_a_later_subject_with_fewer_regions_is_refused_as_with_more():
    """Every subject must be on the first one's atlas, whichever way the count differs."""
    rng = np.random.default_rng(17)
    for n_regions in (3, 5):
        with pytest.raises(ValueError, match=rf"^subject 1 has {n_regions} regions \(last axis\) "
                                             r"but subject 0 has 4; every subject"):
            validate_subjects([rng.standard_normal((10, 4)), rng.standard_normal((10, n_regions))])


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize(("shapes", "looks"), [
    (((4, 12), (15, 4)), "subject 0"), (((12, 4), (4, 15)), "subject 1"),
    (((4, 12), (12, 4)), "subject 0 or subject 1")])
def test_a_transposed_subject_is_said_to_look_transposed_and_the_first_file_named(
        tmp_path, lazy, shapes, looks):
    """Subject 0 sets the region count: a transposed first file was not named, the error
    naming only the good file after it."""
    rng = np.random.default_rng(18)
    paths = [tmp_path / f"sub-{i}.npy" for i in range(2)]
    for path, shape in zip(paths, shapes):
        np.save(path, rng.standard_normal(shape))
    with pytest.raises(ValueError, match=r"sub-1\.npy: subject 1 has \d+ regions \(last axis\) "
                                         r"but subject 0 \(.*sub-0\.npy\) has \d+; .*atlas "
                                         rf"\({looks} looks transposed\)$"):
        validate_subjects(paths, lazy=lazy)
    with pytest.raises(ValueError, match=rf"^subject 1 .* but subject 0 has .*\({looks} looks"):
        validate_subjects([np.load(path) for path in paths], lazy=lazy)


@pytest.mark.parametrize("lazy", [False, True])
def test_the_transposed_hint_compares_with_subject_0s_own_length(lazy):
    """Subject 0 looks transposed when its length is the region count refused, not when the
    length of the subject just before the refused one is."""
    rng = np.random.default_rng(18)
    subjects = [rng.standard_normal(shape) for shape in ((4, 12), (6, 12), (15, 4))]
    with pytest.raises(ValueError, match=r"^subject 2 has 4 regions .*\(subject 0 looks "
                                         r"transposed\)$"):
        validate_subjects(subjects, lazy=lazy)
    subjects[1] = rng.standard_normal((4, 12))  # subject 1, not subject 0, has 4 timepoints
    subjects[0] = rng.standard_normal((5, 12))
    with pytest.raises(ValueError, match=r"^subject 2 has 4 regions .* on one atlas$"):
        validate_subjects(subjects, lazy=lazy)


def test_the_transposed_hint_of_files_compares_with_subject_0s_own_length(tmp_path):
    """Checked one file at a time, as above: subject 0's length, not the last file's."""
    rng = np.random.default_rng(19)
    paths = [tmp_path / f"sub-{i}.npy" for i in range(3)]
    for path, shape in zip(paths, ((4, 12), (6, 12), (15, 4))):
        np.save(path, rng.standard_normal(shape))
    with pytest.raises(ValueError, match=r"sub-2\.npy: subject 2 has 4 regions .*\(subject 0 "
                                         r"looks transposed\)$"):
        validate_subjects(paths, lazy=True)


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("as_files", [False, True], ids=["in_memory", "files"])
def test_names_after_an_unnamed_first_subject_must_agree_however_given(tmp_path, lazy,
                                                                       as_files):
    """The first names met are the reference for the subjects after them, whether the subjects
    are in memory or files, checked at once or one at a time: a table whose columns are in
    another order is refused, naming the first column that differs, and the names are those
    the estimator records."""
    rng = np.random.default_rng(18)
    x = [rng.standard_normal((20, 3)) for _ in range(3)]
    names = ["roi0", "roi1", "roi2"]
    subjects = [x[0], pd.DataFrame(x[1], columns=names),
                pd.DataFrame(x[2], columns=names[::-1])]
    if as_files:
        np.save(tmp_path / "sub-00.npy", x[0])
        for i in (1, 2):
            subjects[i].to_csv(tmp_path / f"sub-0{i}.tsv", sep="\t", index=False)
        subjects = sorted(str(p) for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match="subject 2 has other region names .* column 0 is "
                                         "'roi2' where they have 'roi0'"):
        validate_subjects(subjects, lazy=lazy)
    estimator = _Fitted()
    validate_subjects(subjects[:2], estimator=estimator, lazy=lazy)
    assert list(estimator.feature_names_in_) == names


@pytest.mark.parametrize("lazy", [False, True])
def test_a_region_one_subject_lacks_is_named(lazy):
    """A masker leaves out a region outside a subject's brain mask: the message had named only
    the first column that differs ('roi2' where they have 'roi1'), not the region missing, nor
    one that the other subjects do not have."""
    rng = np.random.default_rng(20)
    names = [f"roi{i}" for i in range(6)]
    full = pd.DataFrame(rng.standard_normal((20, 6)), columns=names)
    lacking = full.drop(columns=["roi1"])
    with pytest.raises(ValueError, match=re.escape(
            "subject 1 has other region names (columns) than the subjects before it: column 1 "
            "is 'roi2' where they have 'roi1'; it lacks 'roi1' (for example a region outside "
            "its brain mask, which nilearn's maskers leave out)") + "$"):
        validate_subjects([full, lacking], lazy=lazy)
    other = full.set_axis(["roi0", "a", "b", "c", "d", "roi5"], axis=1)
    with pytest.raises(ValueError, match=re.escape(
            "it lacks 'roi1', 'roi2', 'roi3' (4 in all) (for example a region outside its brain "
            "mask, which nilearn's maskers leave out); it has 'a', 'b', 'c' (4 in all), which "
            "they do not")):
        validate_subjects([full, other], lazy=lazy)
    with pytest.raises(ValueError, match="column 0 is 'roi5' where they have 'roi0'$"):
        validate_subjects([full, full[names[::-1]]], lazy=lazy)  # the same regions, reordered


@pytest.mark.parametrize("named", [False, True])
def test_a_region_nan_at_every_timepoint_is_named_as_never_extracted(named):
    """A region that a masker left NaN in one scan (outside its brain mask) was told only as
    its first NaN and a count of values: that the whole region is empty is said, by name where
    the subject has names; NaN in some frames only is not."""
    rng = np.random.default_rng(23)
    x = rng.standard_normal((30, 4))
    x[:, 2] = np.nan
    subject = pd.DataFrame(x, columns=["Vis", "SomMot", "DorsAttn", "Default"]) if named else x
    region = "'DorsAttn'" if named else "2"
    with pytest.raises(ValueError, match=re.escape(
            f"30 value(s) in all. Region(s) {region} are NaN at every timepoint: no signal was "
            "extracted there (outside this scan's brain mask or field of view?; XCP-D writes "
            "'n/a' for such parcels). Leave the subject out, or fill them with 0 "
            "(DataFrame.fillna(0), numpy.nan_to_num) and pass constant_regions='zero' to "
            "BrainJEPAEmbedder or a fine-tuner, which take a region without signal as 0")
            + "$"):
        validate_subjects([rng.standard_normal((30, 4)), subject])
    # the way told: filled with 0, the subject is taken where constant regions are
    filled = subject.fillna(0) if named else np.nan_to_num(subject)
    assert len(validate_subjects([rng.standard_normal((30, 4)), filled],
                                 allow_constant=True)) == 2
    x[0, 2] = 0.0  # NaN in most frames of the region, not all
    with pytest.raises(ValueError, match=r"29 value\(s\) in all$"):
        validate_subjects([x])


@pytest.mark.parametrize("lazy", [False, True])
def test_a_subject_a_few_regions_short_is_told_of_brain_masks(lazy):
    """Arrays of a subject whose masker left out a region outside its brain mask were refused
    by the counts alone ("subject 2 has 23 regions ... but subject 0 has 24"), without the
    likely cause the DataFrame message gives: named for the subject that lacks it, subject 0
    included, and at transform; not for another atlas (a tenth of the regions or more)."""
    rng = np.random.default_rng(22)
    full, short = rng.standard_normal((30, 24)), rng.standard_normal((30, 23))
    hint = ("lacks 1 region(s): outside its brain mask, which nilearn's maskers leave out? "
            "(region names, the columns of the masker's pandas output, "
            "masker.set_output(transform='pandas'), tell which)")
    with pytest.raises(ValueError, match=re.escape("on one atlas; subject 2 " + hint) + "$"):
        validate_subjects([full, full, short], lazy=lazy)
    with pytest.raises(ValueError, match=re.escape("on one atlas; subject 0 " + hint) + "$"):
        validate_subjects([short, full], lazy=lazy)
    with pytest.raises(ValueError, match=r"on one atlas$"):  # another atlas
        validate_subjects([full, rng.standard_normal((30, 20))], lazy=lazy)
    # 24 frames of 23 regions is what a transposed subject of 24 regions looks like: told so
    with pytest.raises(ValueError, match=r"on one atlas \(subject 1 looks transposed\)$"):
        validate_subjects([full, rng.standard_normal((24, 23))], lazy=lazy)
    # a tenth of the regions (24 // 10) lacking: still lost regions
    with pytest.raises(ValueError, match=re.escape(
            "on one atlas; subject 1 " + hint.replace("1 region(s)", "2 region(s)")) + "$"):
        validate_subjects([full, rng.standard_normal((30, 22))], lazy=lazy)
    estimator = _Fitted()
    validate_subjects([full, full], estimator=estimator)
    with pytest.raises(ValueError, match=re.escape(
            "each subject must be (n_timepoints, n_regions). Subject 1 " + hint) + "$"):
        validate_subjects([full, short], estimator=estimator, reset=False, lazy=lazy)
    # 24 rows, one region short of fit: transposed (regions as rows), not masked
    with pytest.raises(ValueError, match=r"\(it looks transposed\)$"):
        validate_subjects([rng.standard_normal((24, 23))], estimator=estimator, reset=False,
                          lazy=lazy)


@pytest.mark.parametrize("as_file", [False, True])
def test_a_named_subject_a_few_regions_short_of_an_unnamed_fit_is_not_told_names_tell_which(
        tmp_path, as_file):
    """After a fit on arrays, a table of named regions one short was told that region names
    tell which it lacks: its own names cannot, as fit had none to hold them against."""
    rng = np.random.default_rng(24)
    estimator = _Fitted()
    validate_subjects([rng.standard_normal((30, 24))] * 2, estimator=estimator)
    short = pd.DataFrame(rng.standard_normal((30, 23)), columns=[f"R{j}" for j in range(23)])
    if as_file:
        short.to_csv(tmp_path / "sub-0.tsv", sep="\t", index=False)
        short = str(tmp_path / "sub-0.tsv")
    with pytest.raises(ValueError, match=re.escape(
            "Subject 0 lacks 1 region(s): outside its brain mask, which nilearn's maskers leave "
            "out? (fit had no region names to tell which: fit on the columns of the masker's "
            "pandas output, masker.set_output(transform='pandas'), to have them named)") + "$"):
        validate_subjects([short], estimator=estimator, reset=False, lazy=as_file)


@pytest.mark.parametrize("as_files", [False, True])
def test_a_region_named_background_is_warned_of_in_fit(tmp_path, as_files):
    """Column names taken from a nilearn atlas's labels, whose first is "Background" (label 0,
    which NiftiLabelsMasker does not extract), name every column after the region before it:
    fit took them silently."""
    rng = np.random.default_rng(21)
    labels = ["Background", "Vis_1", "Vis_2", "SomMot_1"]
    subjects = [pd.DataFrame(rng.standard_normal((20, 3)), columns=labels[:-1])
                for _ in range(2)]
    if as_files:
        for i, subject in enumerate(subjects):
            subject.to_csv(tmp_path / f"sub-{i}.tsv", sep="\t", index=False)
        subjects = sorted(str(p) for p in tmp_path.iterdir())
    estimator = _Fitted()
    with pytest.warns(UserWarning, match=re.escape(
            "column 0 of X is named 'Background', the name nilearn's atlases give to label 0 "
            "(outside the brain), which NiftiLabelsMasker does not extract")) as record:
        validate_subjects(subjects, estimator=estimator, lazy=as_files)
    assert sum("Background" in str(w.message) for w in record) == 1  # once, not per subject
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the names were fit's: a transform does not repeat it
        validate_subjects(subjects, estimator=estimator, reset=False, lazy=as_files)
        renamed = [pd.DataFrame(rng.standard_normal((20, 3)), columns=labels[1:])] * 2
        validate_subjects(renamed, estimator=_Fitted())  # the regions' own names
    # as a labels text file may give it: another case, a trailing space
    padded = [pd.DataFrame(rng.standard_normal((20, 3)), columns=["background ", *labels[1:3]])]
    with pytest.warns(UserWarning, match=r"^column 0 of X is named 'background ', the name"):
        validate_subjects(padded * 2, estimator=_Fitted())


@pytest.mark.parametrize("as_files", [False, True])
def test_a_constant_column_named_background_is_told_to_be_left_out(tmp_path, as_files):
    """A "Background" column of zeros (label 0's signal, kept beside the regions) was refused
    as a constant region with constant_regions='zero' as the way forward, which kept it: one
    region too many for the model."""
    rng = np.random.default_rng(23)
    columns = ["Background", *(f"r{j}" for j in range(N_REGIONS))]
    subjects = [pd.DataFrame(np.c_[np.zeros(40), rng.standard_normal((40, N_REGIONS))],
                             columns=columns) for _ in range(2)]
    if as_files:
        for i, subject in enumerate(subjects):
            subject.to_csv(tmp_path / f"sub-{i}.tsv", sep="\t", index=False)
        subjects = str(tmp_path / "*.tsv")
    embedder = BrainJEPAEmbedder(tiny_module(N_REGIONS), device="cpu")
    with pytest.warns(UserWarning, match="named 'Background'"), pytest.raises(
            ValueError, match=re.escape(
                "subject 0: 1 region(s) have a constant signal (indices [0]); column 0 is named "
                "'Background', the label 0 (outside the brain) of nilearn's atlases, which "
                "NiftiLabelsMasker does not extract: it is no region, leave it out of X") + " "):
        embedder.fit(subjects)


def test_a_region_a_new_subject_lacks_is_named_at_transform():
    """After fit, a table without one of the regions fit saw had been refused by the region
    counts alone (24 features, expecting 25), without the region it lacks."""
    rng = np.random.default_rng(21)
    names = [f"roi{i}" for i in range(6)]
    train = [pd.DataFrame(rng.standard_normal((20, 6)), columns=names) for _ in range(2)]
    embedder = BrainJEPAEmbedder(tiny_module(6), device="cpu").fit(train)
    with pytest.raises(ValueError, match=re.escape(
            "X has 5 features, but BrainJEPAEmbedder is expecting 6 features as input") + ".*"
            + re.escape("Subject 0's region names against those seen in fit: column 3 is 'roi4' "
                        "where they have 'roi3'; it lacks 'roi3'")):
        embedder.transform([train[1].drop(columns=["roi3"])])
    with pytest.raises(ValueError, match=r"expecting 6 features as input: .*\(n_timepoints, "
                                         r"n_regions\)$"):  # arrays: no names to compare
        embedder.transform([train[1].drop(columns=["roi3"]).to_numpy()])


def test_checked_subjects_given_again_keep_the_first_names_met():
    """Subjects checked lazily, then given to an estimator, record the same names as when
    given directly, the first subject having none."""
    rng = np.random.default_rng(19)
    subjects = [rng.standard_normal((20, 3)),
                pd.DataFrame(rng.standard_normal((20, 3)), columns=["a", "b", "c"])]
    direct, again = _Fitted(), _Fitted()
    validate_subjects(subjects, estimator=direct)
    validate_subjects(validate_subjects(subjects, lazy=True), estimator=again, lazy=True)
    assert list(direct.feature_names_in_) == list(again.feature_names_in_) == ["a", "b", "c"]


def test_a_subject_with_more_named_columns_is_named_by_its_name_count():
    names = ["roi0", "roi1", "roi2"]
    rng = np.random.default_rng(0)  # (not np.eye: frames of zeros at the end are padding)
    subjects = [pd.DataFrame(rng.standard_normal((20, 3)), columns=names),
                pd.DataFrame(rng.standard_normal((20, 4)), columns=[*names, "roi3"])]
    with pytest.raises(ValueError, match="subject 1 has other region names .*: 4 names where "
                                         "they have 3"):
        validate_subjects(subjects)


def test_a_region_name_repeated_in_the_columns_is_refused_naming_it():
    """Two regions of one name: narwhals' bare DuplicateError (naming no subject) had come out
    of scikit-learn's feature-name check."""
    rng = np.random.default_rng(0)
    names = ["a", "b", "c", "a"]
    series = pd.DataFrame(rng.standard_normal((40, 4)), columns=names)
    with pytest.raises(ValueError, match=r"subject 1: the column 'a' appears 2 times"):
        validate_subjects([rng.standard_normal((40, 4)), series])
    matrix = pd.DataFrame(np.corrcoef(rng.standard_normal((4, 40))), index=names, columns=names)
    with pytest.raises(ValueError, match=r"the column 'a' appears 2 times"):
        validate_connectivity(matrix)


# -- round 15: what planted bugs in validation.py showed the tests above let through ---------


def test_a_dict_of_subjects_is_refused_with_the_advice_to_pass_its_values():
    """``list(X)`` of a dict gives its keys, which were read as file names."""
    x = np.random.default_rng(15).standard_normal((10, 3))
    with pytest.raises(ValueError, match=r"got a dict, whose keys would be taken for the "
                                         r"subjects\. Pass list\(X\.values\(\)\)"):
        validate_subjects({"sub-01": x, "sub-02": x + 1})
    # named with its article ("got a OrderedDict" had been said)
    with pytest.raises(ValueError, match=r"got an OrderedDict, whose keys would be taken"):
        validate_subjects(collections.OrderedDict({"sub-01": x, "sub-02": x + 1}))


def test_tensors_that_require_grad_are_read_as_their_values():
    """NumPy refuses them, and torch's RuntimeError had come from deep in the input check."""
    torch = pytest.importorskip("torch")
    X = torch.randn(3, 10, 4, dtype=torch.float64, requires_grad=True)
    expected = X.detach().numpy()
    for tensors, values in [(X, expected), (list(X), expected),
                          ([x * 2 for x in X], expected * 2)]:  # results of autograd
        for lazy in (False, True):
            subjects = validate_subjects(tensors, lazy=lazy)
            for i, subject in enumerate(values):
                np.testing.assert_array_equal(subjects[i], subject)
    assert X.requires_grad  # the caller's tensor is left as it was
    embedder = BrainJEPAEmbedder(tiny_module(n_regions=4), normalization=None, device="cpu")
    np.testing.assert_array_equal(embedder.fit(X).transform(X), embedder.transform(expected))


@pytest.mark.parametrize("time", [pd.date_range("2020-01-01", periods=10, freq="2s"),
                                  pd.to_timedelta(np.arange(10) * 2, unit="s")],
                         ids=["dates", "durations"])
def test_a_column_of_times_is_named_with_the_advice_to_drop_it(time):
    """NumPy's "DType could not be promoted" had named neither the column nor what to do."""
    x = pd.DataFrame(np.random.default_rng(0).standard_normal((10, 3)), columns=["a", "b", "c"])
    x["onset"] = time
    with pytest.raises(TypeError, match=r"^subject 1 holds dates or times, not signal values: "
                                        r"column 'onset' \(column 3, \w+64\[\w+\]\); drop it "
                                        r"if it is the time of each frame, not a region "
                                        r"\(x.drop\(columns=\['onset'\]\)\)$"):
        validate_subjects([x.drop(columns=["onset"]), x])
    with pytest.raises(TypeError, match=r"^subject 0 holds dates or times, not signal values$"):
        validate_subjects([np.tile(np.asarray(time)[:, None], (1, 3))])

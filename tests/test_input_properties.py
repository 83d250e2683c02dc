"""Property-based tests of the input contract (hypothesis).

Whatever subjects are generated (shapes, dtypes, NaN or infinity, constant regions, short and
long series, mixed lengths, DataFrames with odd columns, the wrong orientation, other regions at
transform), each call either works as documented or raises a ``ValueError`` / ``TypeError``
whose message says what is wrong. Nothing else may escape: no IndexError, no silent NaN.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from _estimators import tiny_module
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from brainjepa_sk import BrainJEPAEmbedder
from brainjepa_sk.preprocessing import Preprocessor
from brainjepa_sk.validation import check_region_names, validate_subjects

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
                                      lambda x: x.astype("S").astype(object)],
                         ids=["bytes", "bytes_as_objects"])
def test_numbers_as_bytes_are_refused_as_text_not_converted(as_bytes):
    """float(b"1.5") works: without the check, numbers read as bytes would pass as a signal."""
    x = np.random.default_rng(4).standard_normal((10, 3))
    with pytest.raises(TypeError, match=r"subject 1 holds text, not numbers"):
        validate_subjects([x, as_bytes(x)])


def test_a_masked_array_with_nothing_masked_is_taken_as_its_values():
    """np.ma.masked_invalid of finite values has a mask array, all False: nothing is lost."""
    x = np.random.default_rng(5).standard_normal((10, 3))
    masked = np.ma.masked_invalid(x)
    assert masked.mask.shape == x.shape and not masked.mask.any()
    np.testing.assert_array_equal(validate_subjects([masked])[0], x)


def test_a_series_given_as_a_subject_is_said_to_be_one_dimensional():
    x = np.random.default_rng(6).standard_normal((10, 3))
    with pytest.raises(ValueError, match=r"subject 1 has 1 dimension\(s\) \(shape \(10,\)\)"):
        validate_subjects([x, pd.Series(x[:, 0])])

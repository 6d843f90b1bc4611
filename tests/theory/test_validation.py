"""Input validation, typed results and oracles: the foundation every public function relies on."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.dummy import DummyClassifier

from invariance_tradeoffs.theory.oracles import (
    REJECT,
    FunctionOracle,
    TableOracle,
    is_reject,
    predict,
)
from invariance_tradeoffs.theory.results import (
    Quantity,
    bound,
    exact,
    mean_estimate,
    proportion_estimate,
)
from invariance_tradeoffs.theory.validation import (
    as_batch,
    as_labels,
    check_eps,
    check_n_classes,
    check_same_length,
)

# --------------------------------------------------------------------------- _validation


def test_as_batch_accepts_ints_and_bools():
    out = as_batch([[1, 2], [3, 4]])
    assert out.dtype == np.float64 and out.shape == (2, 2)
    assert as_batch(np.array([[True, False]])).tolist() == [[1.0, 0.0]]
    assert as_batch(np.zeros((0, 3)), allow_empty=True).shape == (0, 3)


@pytest.mark.parametrize(
    "x, kwargs, error, match",
    [
        ([1.0, 2.0], {}, ValueError, "X must be 2-D"),
        (np.zeros((1, 2, 2)), {}, ValueError, "X must be 2-D"),
        (np.zeros((0, 2)), {}, ValueError, "X is an empty batch"),
        (np.zeros((2, 0)), {}, ValueError, "X has zero features"),
        (np.zeros((2, 3)), {"n_features": 2}, ValueError, "X must have 2 features"),
        ([[np.nan, 1.0]], {}, ValueError, "X contains NaN or inf"),
        ([[-np.inf, 1.0]], {}, ValueError, "X contains NaN or inf"),
        ([["a", "b"]], {}, TypeError, "X must be a numeric array"),
        ([[None, 1.0]], {}, TypeError, "X must be a numeric array"),
    ],
)
def test_as_batch_rejects(x, kwargs, error, match):
    with pytest.raises(error, match=match):
        as_batch(x, **kwargs)


def test_as_batch_names_the_argument():
    with pytest.raises(ValueError, match="candidates must be 2-D"):
        as_batch([1.0], "candidates")


@pytest.mark.parametrize(
    "eps, error, match",
    [
        (-0.1, ValueError, "eps must be >= 0"),
        (float("nan"), ValueError, "eps must not be NaN"),
        (float("inf"), ValueError, "eps must be finite"),
        (True, TypeError, "eps must be a real number"),
        ("0.3", TypeError, "eps must be a real number"),
        (None, TypeError, "eps must be a real number"),
        (np.array([0.1, 0.2]), TypeError, "eps must be a real number"),
    ],
)
def test_check_eps_rejects(eps, error, match):
    with pytest.raises(error, match=match):
        check_eps(eps)


def test_check_eps_accepts_numpy_scalars_and_inf_when_allowed():
    assert check_eps(np.float32(0.5)) == 0.5
    assert check_eps(np.int64(2)) == 2.0
    assert math.isinf(check_eps(float("inf"), allow_inf=True))


@pytest.mark.parametrize("n, error", [(1, ValueError), (0, ValueError), (2.0, TypeError),
                                      (True, TypeError), ("3", TypeError)])
def test_check_n_classes_rejects(n, error):
    with pytest.raises(error, match="n_classes"):
        check_n_classes(n)


@pytest.mark.parametrize(
    "y, kwargs, error, match",
    [
        ([[0, 1]], {}, ValueError, "y must be 1-D"),
        ([0.5, 1.0], {}, TypeError, "y must hold integer labels"),
        ([0.0, np.nan], {}, TypeError, "y must hold integer labels"),
        (["a"], {}, TypeError, "y must hold integer labels"),
        ([0, 2], {"n_classes": 2}, ValueError, "y has labels out of range"),
        ([0, -1], {"n_classes": 2, "allow_reject": False}, ValueError, "out of range 0..1"),
        ([0, -2], {"n_classes": 2}, ValueError, r"out of range 0..1 or REJECT=-1: \[-2\]"),
        ([0, 1], {"length": 3}, ValueError, "y must have length 3"),
    ],
)
def test_as_labels_rejects(y, kwargs, error, match):
    with pytest.raises(error, match=match):
        as_labels(y, **kwargs)


def test_as_labels_accepts_integer_valued_floats_and_reject():
    assert as_labels([0.0, 1.0, -1.0], n_classes=2).tolist() == [0, 1, REJECT]


def test_check_same_length():
    assert check_same_length(a=np.zeros(3), b=np.zeros((3, 2))) == 3
    with pytest.raises(ValueError, match="a=3, b=2"):
        check_same_length(a=np.zeros(3), b=np.zeros(2))


# --------------------------------------------------------------------------- results


def test_quantity_kinds_and_strings():
    assert "exact" in str(exact(1.5, "closed form"))
    assert "<=" in str(bound(2.0, "upper", "search"))
    assert ">=" in str(bound(2.0, "lower", "search"))
    q = proportion_estimate(3, 10, "mc")
    assert "CI" in str(q) and q.n == 10 and float(q) == 0.3
    assert exact(math.inf, "none").to_dict()["value"] == "inf"


def test_quantity_rejects_bad_kind_and_side():
    with pytest.raises(ValueError, match="kind must be"):
        Quantity(1.0, "guess", "m")
    with pytest.raises(ValueError, match="a bound needs side"):
        Quantity(1.0, "bound", "m")
    with pytest.raises(ValueError, match="side"):
        bound(1.0, "sideways", "m")


@pytest.mark.parametrize(
    "args, match",
    [((1, 0), "n must be >= 1"), ((5, 4), r"successes must be in \[0, n=4\]"),
     ((-1, 4), "successes must be in"), ((1, 4, 1.0), "confidence must be in")],
)
def test_proportion_estimate_rejects(args, match):
    successes, n, *conf = args
    with pytest.raises(ValueError, match=match):
        proportion_estimate(successes, n, "m", *conf)


@given(n=st.integers(1, 500), frac=st.floats(0, 1), conf=st.sampled_from([0.9, 0.95, 0.99]))
def test_clopper_pearson_interval_contains_the_point_estimate(n, frac, conf):
    k = int(round(frac * n))
    q = proportion_estimate(k, n, "m", conf)
    assert 0.0 <= q.low <= q.value <= q.high <= 1.0
    assert q.confidence == conf


def test_mean_estimate():
    q = mean_estimate(np.array([1.0, 2.0, 3.0]), "m")
    assert q.value == 2.0 and q.low < 2.0 < q.high
    assert mean_estimate(np.ones(4), "m").low == 1.0
    with pytest.raises(ValueError, match="at least 2 values"):
        mean_estimate(np.ones(1), "m")
    with pytest.raises(ValueError, match="NaN or inf"):
        mean_estimate(np.array([1.0, np.nan]), "m")


# --------------------------------------------------------------------------- oracles


def test_function_oracle_validates_its_outputs():
    good = FunctionOracle(lambda X: (X[:, 0] > 0).astype(int), n_classes=2, n_features=1)
    assert good(np.array([[-1.0], [1.0]])).tolist() == [0, 1]
    with pytest.raises(ValueError, match="X must have 1 features"):
        good(np.zeros((1, 2)))
    out_of_range = FunctionOracle(lambda X: np.full(len(X), 5), n_classes=2)
    with pytest.raises(ValueError, match="oracle output has labels out of range"):
        out_of_range(np.zeros((2, 1)))
    wrong_length = FunctionOracle(lambda X: np.zeros(len(X) + 1, dtype=int), n_classes=2)
    with pytest.raises(ValueError, match="oracle output must have length 2"):
        wrong_length(np.zeros((2, 1)))
    with pytest.raises(TypeError, match="fn must be callable"):
        FunctionOracle(3, n_classes=2)
    with pytest.raises(ValueError, match="n_classes must be >= 2"):
        FunctionOracle(lambda X: X, n_classes=1)


def test_table_oracle_lookup_and_errors():
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    oracle = TableOracle(pts, [0, 1, REJECT], n_classes=2)
    assert oracle(pts[::-1]).tolist() == [REJECT, 1, 0]
    assert is_reject(oracle(pts)).tolist() == [False, False, True]
    assert oracle.index_of(np.array([[5.0, 5.0]])).tolist() == [-1]
    with pytest.raises(ValueError, match="outside the oracle's finite domain"):
        oracle(np.array([[5.0, 5.0]]))
    lenient = TableOracle(pts, [0, 1, 1], n_classes=2, outside=REJECT)
    assert lenient(np.array([[5.0, 5.0]])).tolist() == [REJECT]
    with pytest.raises(ValueError, match="points must be distinct"):
        TableOracle(np.zeros((2, 2)), [0, 1], n_classes=2)
    with pytest.raises(ValueError, match="labels must have length 3"):
        TableOracle(pts, [0, 1], n_classes=2)
    with pytest.raises(ValueError, match="labels has labels out of range"):
        TableOracle(pts, [0, 1, 2], n_classes=2)
    with pytest.raises(ValueError, match="outside must be None or REJECT"):
        TableOracle(pts, [0, 1, 1], n_classes=2, outside=0)
    with pytest.raises(ValueError, match="points must be 2-D"):
        TableOracle(np.zeros(3), [0, 1, 1], n_classes=2)


def test_predict_accepts_callables_and_sklearn_estimators():
    X = np.array([[0.0], [1.0], [2.0]])
    est = DummyClassifier(strategy="constant", constant=1).fit(X, [0, 1, 1])
    assert predict(est, X).tolist() == [1, 1, 1]
    assert predict(lambda Z: np.zeros(len(Z), dtype=int), X).tolist() == [0, 0, 0]
    with pytest.raises(TypeError, match="classifier must be callable"):
        predict(42, X)
    with pytest.raises(ValueError, match="classifier output has labels out of range"):
        predict(lambda Z: np.full(len(Z), 3), X, n_classes=2)
    with pytest.raises(ValueError, match="X must be 2-D"):
        predict(est, np.zeros(3))

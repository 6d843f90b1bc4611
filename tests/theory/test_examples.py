"""Sensitivity and invariance examples, and the robust-accuracy decomposition built on them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from invariance_tradeoffs.theory.distances import LpDistance
from invariance_tradeoffs.theory.examples import (
    find_examples,
    in_ball,
    is_invariance_example,
    is_sensitivity_example,
    resolve_exhaustive,
)
from invariance_tradeoffs.theory.margins import ceiling_from_margins, oracle_margin
from invariance_tradeoffs.theory.oracles import REJECT, FunctionOracle, TableOracle
from invariance_tradeoffs.theory.robust_accuracy import (
    invariance_robust_accuracy,
    real_robust_accuracy,
    robustness_report,
    sensitivity_robust_accuracy,
    standard_robust_accuracy,
)
from invariance_tradeoffs.theory.strategies import finite_worlds, scenarios

# Small worlds with a classifier and a radius (theory.strategies): tables, 1-NN, linear,
# robust and oracle-like classifiers; radii at every boundary of the world.
SCENARIOS = scenarios(finite_worlds(min_points=3, max_points=8))
LINE = np.arange(4.0)[:, None]


def definition_masks(inst, exclude_reject: bool = True):
    """Sensitivity/invariance masks straight from Definitions 1-2, pair by pair."""
    pts, o = inst.points, inst.oracle.labels
    f = np.asarray(inst.f(pts))
    n = pts.shape[0]
    sens = np.zeros((n, n), dtype=bool)
    inv = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(n):
            close = float(inst.distance(pts[i : i + 1], pts[j : j + 1])[0]) <= inst.eps
            sens[i, j] = close and o[j] == o[i] and f[j] != o[j]
            target_ok = o[j] != REJECT or not exclude_reject
            inv[i, j] = close and o[j] != o[i] and target_ok and f[j] == f[i]
    return sens, inv


def zero(X):
    return np.zeros(len(X), dtype=int)


# --------------------------------------------------------------------------- definitions


@given(inst=SCENARIOS)
def test_find_examples_matches_the_definitions(inst):
    res = find_examples(inst.points, inst.points, inst.oracle, inst.f, inst.distance, inst.eps)
    sens, inv = definition_masks(inst)
    assert res.exhaustive
    np.testing.assert_array_equal(res.sensitivity, sens)
    np.testing.assert_array_equal(res.invariance, inv)
    D = inst.distance.pairwise(inst.points, inst.points)
    for mask, idx, dist in ((sens, res.nearest_sensitivity, res.sensitivity_distance),
                            (inv, res.nearest_invariance, res.invariance_distance)):
        has = mask.any(axis=1)
        np.testing.assert_array_equal(idx >= 0, has)
        best = np.where(mask, D, np.inf).min(axis=1)
        np.testing.assert_array_equal(dist, best)
        assert np.all(mask[np.flatnonzero(has), idx[has]])


@given(inst=SCENARIOS)
def test_paired_predicates_match_find_examples(inst):
    n = inst.points.shape[0]
    ii, jj = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
    args = (inst.points[ii], inst.points[jj], inst.oracle, inst.f, inst.distance, inst.eps)
    res = find_examples(inst.points, inst.points, inst.oracle, inst.f, inst.distance, inst.eps)
    np.testing.assert_array_equal(is_sensitivity_example(*args).reshape(n, n), res.sensitivity)
    np.testing.assert_array_equal(is_invariance_example(*args).reshape(n, n), res.invariance)


def test_a_wrong_definition_is_detected():
    # Forgetting that REJECT is never the target of an invariance example changes the masks.
    pts = LINE
    oracle = TableOracle(pts, [0, REJECT, 1, 1], n_classes=2)
    inst = type("I", (), dict(points=pts, oracle=oracle, f=TableOracle(pts, [0] * 4, 2),
                              distance=LpDistance(1), eps=1.0))
    res = find_examples(pts, pts, oracle, inst.f, inst.distance, inst.eps)
    _, inv_right = definition_masks(inst)
    _, inv_wrong = definition_masks(inst, exclude_reject=False)
    np.testing.assert_array_equal(res.invariance, inv_right)
    assert not np.array_equal(res.invariance, inv_wrong)


def test_examples_on_the_line():
    oracle = FunctionOracle(lambda X: (X[:, 0] >= 2).astype(int), n_classes=2)
    f = FunctionOracle(lambda X: (X[:, 0] >= 3).astype(int), n_classes=2)
    d = LpDistance(1)
    x = np.array([[3.0], [3.0], [3.0], [0.0]])
    xp = np.array([[2.0], [1.0], [0.5], [2.0]])
    # 2 is class 1 but f says 0: a sensitivity example at 3 (distance 1).
    assert is_sensitivity_example(x, xp, oracle, f, d, 1.0).tolist() == [True, False, False, False]
    # From 0 (class 0, f=0): 2 is class 1 with f=0 -> invariance example within 2, not within 1.
    assert is_invariance_example(x, xp, oracle, f, d, 2.0).tolist() == [False, False, False, True]
    assert is_invariance_example(x, xp, oracle, f, d, 1.0).tolist() == [False] * 4


def test_invariance_at_a_rejected_input_and_no_reject_targets():
    oracle = TableOracle(LINE, [REJECT, 0, REJECT, 1], n_classes=2)
    res = find_examples(LINE, LINE, oracle, zero, LpDistance(1), 1.0)
    # At x=0 (rejected, f=0): x'=1 has class 0 != REJECT and f=0 -> invariance example.
    assert res.invariance[0].tolist() == [False, True, False, False]
    # At x=3 (class 1): the rejected x'=2 is never an invariance target.
    assert not res.invariance[3].any()


@given(inst=SCENARIOS, keep=st.integers(1, 11))
def test_partial_search_finds_a_subset(inst, keep):
    cand = inst.points[: min(keep, inst.points.shape[0] - 1)]
    full = find_examples(inst.points, inst.points, inst.oracle, inst.f, inst.distance, inst.eps)
    part = find_examples(inst.points, cand, inst.oracle, inst.f, inst.distance, inst.eps)
    assert full.exhaustive and not part.exhaustive
    m = cand.shape[0]
    assert not np.any(part.sensitivity & ~full.sensitivity[:, :m])
    assert not np.any(part.invariance & ~full.invariance[:, :m])
    assert np.all(part.sensitivity_distance >= full.sensitivity_distance)


def test_resolve_exhaustive():
    oracle = TableOracle(LINE, [0, 0, 1, 1], n_classes=2)
    assert resolve_exhaustive(oracle, LINE, None)
    assert not resolve_exhaustive(oracle, LINE[:2], None)
    assert not resolve_exhaustive(FunctionOracle(zero, 2), LINE, None)
    assert resolve_exhaustive(FunctionOracle(zero, 2), LINE, True)  # the caller's claim
    with pytest.raises(ValueError, match="exhaustive=True but candidates do not contain"):
        resolve_exhaustive(oracle, LINE[:2], True)
    with pytest.raises(TypeError, match="exhaustive must be a bool"):
        resolve_exhaustive(oracle, LINE, "yes")


def test_in_ball_boundary():
    assert in_ball(np.sqrt(2.0) ** 2, 2.0)
    assert not in_ball(2.0 + 1e-9, 2.0)
    assert in_ball(np.array([1.0, 3.0]), np.array([1.0, 2.0])).tolist() == [True, False]
    assert not in_ball(np.inf, 5.0)
    with pytest.raises(ValueError, match="dist contains NaN"):
        in_ball(np.nan, 1.0)
    with pytest.raises(ValueError, match="eps must be finite and >= 0"):
        in_ball(1.0, -1.0)
    with pytest.raises(ValueError, match="eps must be finite and >= 0"):
        in_ball(1.0, np.inf)


# --------------------------------------------------------------------------- robust accuracy


@given(inst=SCENARIOS)
def test_robust_accuracy_decomposition_and_ceiling(inst):
    n = inst.points.shape[0]
    w = np.full(n, 1.0 / n)
    args = (inst.points, inst.oracle, inst.f, inst.distance, inst.eps, inst.points, w)
    rep = robustness_report(*args)
    # Masks are nested as the definitions say.
    assert not np.any(rep.real_robust & ~rep.sensitivity_robust)
    assert not np.any(rep.real_robust & ~rep.invariance_robust)
    assert not np.any(rep.sensitivity_robust & ~rep.correct)
    # Corollary 2(a): standard-robust inputs have no sensitivity example.
    assert not np.any(rep.standard_robust & ~rep.no_sensitivity)
    # Corollary 2(b): standard- and real-robust inputs have r_O > eps.
    margins = oracle_margin(inst.points, inst.oracle, inst.distance, inst.points)
    assert not np.any(rep.robust_and_real & in_ball(margins.values, inst.eps))
    ceiling = ceiling_from_margins(margins, [inst.eps], w)[0]
    share = rep.share("robust_and_real")
    assert share.kind == ceiling.kind == "exact"
    assert share.value <= ceiling.value + 1e-12
    # The public functions agree with the report and are exact here.
    for fn, mask in ((real_robust_accuracy, "real_robust"),
                     (sensitivity_robust_accuracy, "sensitivity_robust"),
                     (invariance_robust_accuracy, "invariance_robust"),
                     (standard_robust_accuracy, "standard_robust")):
        q = fn(*args)
        assert q.kind == "exact" and np.isclose(q.value, w[getattr(rep, mask)].sum())


@given(inst=SCENARIOS, keep=st.integers(1, 11))
def test_partial_search_gives_upper_bounds(inst, keep):
    n = inst.points.shape[0]
    w = np.full(n, 1.0 / n)
    cand = inst.points[: min(keep, n - 1)]
    base = (inst.points, inst.oracle, inst.f, inst.distance, inst.eps)
    exact_q = real_robust_accuracy(*base, inst.points, w)
    upper = real_robust_accuracy(*base, cand, w)
    assert upper.kind == "bound" and upper.side == "upper"
    assert upper.value >= exact_q.value - 1e-12


def test_sample_shares_are_clopper_pearson_estimates():
    oracle = TableOracle(LINE, [0, 0, 1, 1], n_classes=2)
    q = real_robust_accuracy(LINE, oracle, zero, LpDistance(1), 1.0, LINE)
    assert q.kind == "estimate" and q.n == 4 and q.low <= q.value <= q.high
    q = real_robust_accuracy(LINE, oracle, zero, LpDistance(1), 1.0, LINE[:2])
    assert q.kind == "estimate" and "upper bound" in q.method


def test_real_robust_accuracy_alone_is_not_bounded_by_the_ceiling():
    # The naive claim "real robust accuracy <= P[r_O > eps]" fails: f = O reaches 1.
    oracle = TableOracle(LINE, [0, 0, 1, 1], n_classes=2)
    w = np.full(4, 0.25)
    ceiling = ceiling_from_margins(oracle_margin(LINE, oracle, "l1", LINE), [1.0], w)[0]
    real = real_robust_accuracy(LINE, oracle, oracle, "l1", 1.0, LINE, w)
    assert ceiling.value == 0.5 and real.value == 1.0
    # ... while the share that is standard-robust as well stays under the ceiling.
    rep = robustness_report(LINE, oracle, oracle, "l1", 1.0, LINE, w)
    assert rep.share("robust_and_real").value == 0.5


def test_a_wrong_margin_formula_breaks_the_ceiling_relation():
    # Counting REJECT inputs as "another class" shrinks margins and the ceiling below
    # what a constant classifier achieves, so the ceiling check catches the wrong formula.
    pts = np.arange(3.0)[:, None]
    oracle = TableOracle(pts, [0, REJECT, 0], n_classes=2)
    w = np.array([0.5, 0.0, 0.5])
    rep = robustness_report(pts, oracle, zero, "l1", 1.0, pts, w)
    right = oracle_margin(pts, oracle, "l1", pts).values
    wrong = np.abs(pts - pts.T).astype(float)
    wrong[np.eye(3, dtype=bool) | (oracle.labels[None, :] == oracle.labels[:, None])] = np.inf
    wrong = wrong.min(axis=1)
    share = rep.share("robust_and_real").value
    assert share <= ceiling_from_margins(right, [1.0], w, exact=True)[0].value
    assert share > ceiling_from_margins(wrong, [1.0], w, exact=True)[0].value


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def table():
    return TableOracle(LINE, [0, 0, 1, 1], n_classes=2)


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"eps": -1.0}, ValueError, "eps must be >= 0"),
        ({"eps": np.nan}, ValueError, "eps must not be NaN"),
        ({"eps": "1"}, TypeError, "eps must be a real number"),
        ({"x_prime": LINE[:2]}, ValueError, "x=4, x_prime=2"),
        ({"x": LINE[:, 0]}, ValueError, "x must be 2-D"),
        ({"x_prime": np.zeros((4, 2))}, ValueError, "x_prime must have 1 features"),
        ({"x": np.full((4, 1), np.inf)}, ValueError, "x contains NaN or inf"),
        ({"x": np.zeros((0, 1)), "x_prime": np.zeros((0, 1))}, ValueError, "x is an empty batch"),
        ({"distance": "l7x"}, ValueError, "distance: unknown norm 'l7x'"),
        ({"distance": 2}, TypeError, "distance must be"),
        ({"oracle": lambda X: X}, TypeError, "oracle must be callable with an integer n_classes"),
        ({"f": lambda X: np.full(len(X), 7)}, ValueError, "classifier output has labels out"),
        ({"f": "clf"}, TypeError, "classifier must be callable"),
    ],
)
def test_predicates_reject_bad_input(table, change, error, match):
    kwargs = dict(x=LINE, x_prime=LINE[::-1], oracle=table, f=zero, distance="l1", eps=1.0)
    kwargs.update(change)
    for predicate in (is_sensitivity_example, is_invariance_example):
        with pytest.raises(error, match=match):
            predicate(**kwargs)


def test_find_examples_and_reports_reject_bad_input(table):
    with pytest.raises(ValueError, match="candidates must have 1 features"):
        find_examples(LINE, np.zeros((2, 2)), table, zero, "l1", 1.0)
    with pytest.raises(ValueError, match="candidates is an empty batch"):
        find_examples(LINE, np.zeros((0, 1)), table, zero, "l1", 1.0)
    with pytest.raises(ValueError, match="outside the oracle's finite domain"):
        find_examples(np.array([[9.0]]), LINE, table, zero, "l1", 1.0)
    with pytest.raises(ValueError, match="weights must have shape"):
        robustness_report(LINE, table, zero, "l1", 1.0, LINE, [0.5, 0.5])
    with pytest.raises(ValueError, match="weights must be probabilities summing to 1"):
        robustness_report(LINE, table, zero, "l1", 1.0, LINE, [1.0] * 4)
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        robustness_report(LINE, table, zero, "l1", 1.0, LINE, [1.5, -0.5, 0.0, 0.0])
    with pytest.raises(ValueError, match="confidence must be in"):
        robustness_report(LINE, table, zero, "l1", 1.0, LINE, confidence=1.5)
    with pytest.raises(ValueError, match="mask must be one of"):
        robustness_report(LINE, table, zero, "l1", 1.0, LINE).share("accuracy")
    with pytest.raises(ValueError, match="eps must be >= 0"):
        real_robust_accuracy(LINE, table, zero, "l1", -0.5, LINE)

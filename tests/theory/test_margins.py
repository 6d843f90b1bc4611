"""Oracle margins, goodness, good radii and the ceiling, with their provenance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from invariance_tradeoffs.theory.distances import LpDistance
from invariance_tradeoffs.theory.examples import in_ball
from invariance_tradeoffs.theory.margins import (
    Margins,
    ceiling_from_margins,
    good_radius_from_margins,
    is_good,
    oracle_margin,
)
from invariance_tradeoffs.theory.oracles import REJECT, FunctionOracle, TableOracle
from invariance_tradeoffs.theory.strategies import finite_worlds, radii
from invariance_tradeoffs.theory.strategies.radii import world_radii

# Small worlds (theory.strategies): grid points, an oracle table with REJECT, D, a distance.
WORLDS = finite_worlds(min_points=3, max_points=8)
LINE = np.arange(5.0)[:, None]


def brute_force_margins(inst, reject_is_target: bool = False) -> np.ndarray:
    """r_O straight from Definition 3 on a finite domain (pair by pair)."""
    pts, o = inst.points, inst.oracle.labels
    out = np.full(pts.shape[0], np.inf)
    for i in range(pts.shape[0]):
        for j in range(pts.shape[0]):
            if o[j] != o[i] and (o[j] != REJECT or reject_is_target):
                out[i] = min(out[i], float(inst.distance(pts[i : i + 1], pts[j : j + 1])[0]))
    return out


def uniform(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


# --------------------------------------------------------------------------- margins


@given(inst=WORLDS)
def test_exhaustive_margins_are_exact_and_witnessed(inst):
    m = oracle_margin(inst.points, inst.oracle, inst.distance, inst.points)
    assert m.exact and m.kind == "exact" and len(m) == inst.points.shape[0]
    np.testing.assert_allclose(m.values, brute_force_margins(inst), rtol=1e-12)
    has = m.witness >= 0
    np.testing.assert_array_equal(has, np.isfinite(m.values))
    o = inst.oracle.labels
    w = m.witness[has]
    assert np.all((o[w] != o[has]) & (o[w] != REJECT))
    np.testing.assert_allclose(inst.distance(inst.points[has], inst.points[w]), m.values[has])
    assert m.quantity(0).kind == "exact"


def test_a_wrong_margin_formula_is_detected():
    oracle = TableOracle(LINE, [0, REJECT, 1, 1, 0], n_classes=2)
    inst = type("I", (), dict(points=LINE, oracle=oracle, distance=LpDistance(1)))
    m = oracle_margin(LINE, oracle, "l1", LINE).values
    np.testing.assert_array_equal(m, brute_force_margins(inst))
    assert not np.array_equal(m, brute_force_margins(inst, reject_is_target=True))


@given(inst=WORLDS, keep=st.integers(1, 11))
def test_partial_candidates_give_upper_bounds(inst, keep):
    cand = inst.points[: min(keep, inst.points.shape[0] - 1)]
    m = oracle_margin(inst.points, inst.oracle, inst.distance, cand)
    assert not m.exact and m.kind == "bound"
    q = m.quantity(0)
    assert q.kind == "bound" and q.side == "upper"
    assert np.all(m.values >= brute_force_margins(inst) - 1e-12)
    radius = good_radius_from_margins(m, uniform(len(m)))
    assert radius.kind == "bound" and radius.side == "upper"
    for q in ceiling_from_margins(m, [0.0, 1.0, 2.5], uniform(len(m))):
        assert q.kind == "bound" and q.side == "upper"


def test_function_oracle_margins_are_bounds_unless_declared():
    oracle = FunctionOracle(lambda X: (X[:, 0] >= 2).astype(int), n_classes=2)
    assert not oracle_margin(LINE, oracle, "l1", LINE).exact
    m = oracle_margin(LINE, oracle, "l1", LINE, exhaustive=True)
    assert m.exact and m.values.tolist() == [2.0, 1.0, 1.0, 2.0, 3.0]


def test_margin_is_infinite_without_another_class():
    oracle = TableOracle(LINE, [0, 0, REJECT, 0, 0], n_classes=2)
    m = oracle_margin(LINE, oracle, "l2", LINE)
    classed = oracle.labels != REJECT
    assert np.all(np.isinf(m.values[classed])) and np.all(m.witness[classed] == -1)
    # A rejected input is at distance 1 from class 0, which differs from REJECT.
    assert m.values[2] == 1.0 and m.witness[2] in (1, 3)
    w = classed / classed.sum()
    assert good_radius_from_margins(m, w).value == np.inf
    assert is_good(m, 1e6, w) and not is_good(m, 1.0)


# --------------------------------------------------------------------------- good radius


@given(inst=WORLDS)
def test_good_radius_and_goodness_on_a_finite_support(inst):
    m = oracle_margin(inst.points, inst.oracle, inst.distance, inst.points)
    w = inst.weights  # D: zero on the rejected points and possibly on some classed ones
    radius = good_radius_from_margins(m, w)
    assert radius.kind == "exact" and radius.value == m.values[w > 0].min()
    assert radius.value == inst.good_radius.value
    # Proposition 1(c): good iff eps < eps*; never good at eps = eps* (strictness). Every
    # radius where the answer can change, and either side of each margin.
    for eps in world_radii(inst):
        assert is_good(m, eps, w) == (eps < radius.value and not in_ball(radius.value, eps))
    if np.isfinite(radius.value):
        assert not is_good(m, radius.value, w)


def test_zero_weight_points_do_not_count():
    assert good_radius_from_margins([0.1, 2.0], [0.0, 1.0], exact=True).value == 2.0
    assert is_good([0.1, 2.0], 1.0, [0.0, 1.0], exact=True)
    assert not is_good([0.1, 2.0], 1.0, exact=True)


def test_good_radius_from_samples_is_an_upper_bound_with_a_mass_statement():
    pts = LINE
    oracle = TableOracle(pts, [0, 0, 0, 1, 1], n_classes=2)
    m = oracle_margin(pts, oracle, "l1", pts)
    p = np.array([0.05, 0.05, 0.3, 0.3, 0.3])
    truth = good_radius_from_margins(m, p).value
    rng = np.random.default_rng(0)
    for n in (1, 5, 50):
        idx = rng.choice(5, size=n, p=p)
        q = good_radius_from_margins(m.values[idx], exact=True, confidence=0.9)
        assert q.kind == "bound" and q.side == "upper" and q.value >= truth
        assert np.isclose(q.extra["mass_below"], 1 - 0.1 ** (1 / n))
    assert "mass_below" not in good_radius_from_margins(m.values, exact=False).extra


# --------------------------------------------------------------------------- ceiling


@given(inst=WORLDS, data=st.data())
def test_exact_ceiling_matches_definition_and_is_monotone(inst, data):
    grid = data.draw(st.lists(radii(inst), min_size=1, max_size=6), label="grid")
    m = oracle_margin(inst.points, inst.oracle, inst.distance, inst.points)
    w = inst.weights
    qs = ceiling_from_margins(m, grid, w)
    brute = brute_force_margins(inst)
    for eps, q in zip(grid, qs, strict=True):
        assert q.kind == "exact" and np.isclose(q.value, w[~in_ball(brute, eps)].sum())
        assert q.value == inst.ceiling(eps).value
    order = np.argsort(grid)
    values = np.array([q.value for q in qs])[order]
    assert np.all(np.diff(values) <= 1e-12)


def test_sample_ceiling_intervals_cover_the_exact_value():
    oracle = TableOracle(LINE, [0, 0, 0, 1, 1], n_classes=2)
    m = oracle_margin(LINE, oracle, "l1", LINE)
    p = np.array([0.1, 0.2, 0.3, 0.2, 0.2])
    truth = ceiling_from_margins(m, [1.0], p)[0].value  # margins 3,2,1,1,2
    assert np.isclose(truth, 0.1 + 0.2 + 0.2)
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(200):
        q = ceiling_from_margins(m.values[rng.choice(5, size=40, p=p)], [1.0], exact=True)[0]
        assert q.kind == "estimate" and q.n == 40
        covered += q.low <= truth <= q.high
    assert covered >= 0.9 * 200  # Clopper-Pearson 95% intervals are conservative
    q = ceiling_from_margins(m.values, [1.0], exact=False)[0]
    assert "upper bound" in q.method


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "margins, kwargs, error, match",
    [
        ([1.0, np.nan], {"exact": True}, ValueError, "margins contains NaN"),
        ([1.0, -1.0], {"exact": True}, ValueError, "margins must be >= 0"),
        ([[1.0]], {"exact": True}, ValueError, "margins must be a non-empty 1-D"),
        ([], {"exact": True}, ValueError, "margins must be a non-empty 1-D"),
        (["a"], {"exact": True}, TypeError, "margins must be a numeric array"),
        ([1.0], {}, ValueError, "exact must be given"),
        ([1.0], {"exact": "yes"}, TypeError, "exact must be a bool"),
        ([1.0, 2.0], {"exact": True, "weights": [1.0]}, ValueError, r"must have shape \(2,\)"),
        ([1.0, 2.0], {"exact": True, "weights": [0.7, 0.7]}, ValueError, "summing to 1"),
        ([1.0, 2.0], {"exact": True, "weights": [np.nan, 1.0]}, ValueError, "weights contains NaN"),
        ([1.0, 2.0], {"exact": True, "weights": ["a", "b"]}, TypeError,
         "weights must be a numeric array"),
        ([1.0], {"exact": True, "confidence": 0.0}, ValueError, "confidence must be in"),
    ],
)
def test_good_radius_rejects_bad_input(margins, kwargs, error, match):
    with pytest.raises(error, match=match):
        good_radius_from_margins(margins, **kwargs)


def test_exact_flag_cannot_upgrade_bounds():
    oracle = TableOracle(LINE, [0, 0, 0, 1, 1], n_classes=2)
    m = oracle_margin(LINE, oracle, "l1", LINE[:3])
    assert isinstance(m, Margins) and not m.exact
    with pytest.raises(ValueError, match="exact=True but the Margins are upper bounds"):
        good_radius_from_margins(m, exact=True)


@pytest.mark.parametrize(
    "grid, error, match",
    [([-1.0], ValueError, r"eps_grid must be >= 0, got \[-1.0\]"),
     ([np.inf], ValueError, "eps_grid contains NaN or inf"),
     ([], ValueError, "eps_grid must hold at least one radius"),
     ([[0.0, 1.0]], ValueError, "eps_grid must be a 1-D grid"),
     (["x"], TypeError, "eps_grid must be a numeric array")],
)
def test_ceiling_rejects_bad_grids(grid, error, match):
    with pytest.raises(error, match=match):
        ceiling_from_margins([1.0, 2.0], grid, exact=True)


def test_is_good_and_oracle_margin_reject_bad_input():
    with pytest.raises(ValueError, match="eps must be >= 0"):
        is_good([1.0], -0.1, exact=True)
    with pytest.raises(ValueError, match="eps must not be NaN"):
        is_good([1.0], np.nan, exact=True)
    oracle = TableOracle(LINE, [0, 0, 0, 1, 1], n_classes=2)
    with pytest.raises(ValueError, match="X must be 2-D"):
        oracle_margin(LINE[:, 0], oracle, "l1", LINE)
    with pytest.raises(ValueError, match="candidates must have 1 features"):
        oracle_margin(LINE, oracle, "l1", np.zeros((3, 2)))
    with pytest.raises(ValueError, match="distance: unknown norm"):
        oracle_margin(LINE, oracle, "taxicab", LINE)
    with pytest.raises(TypeError, match="oracle must be callable"):
        oracle_margin(LINE, "oracle", "l1", LINE)
    with pytest.raises(ValueError, match="X is an empty batch"):
        oracle_margin(np.zeros((0, 1)), oracle, "l1", LINE)

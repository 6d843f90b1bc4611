"""Exact linear geometry of sensitivity/invariance examples, against LP solvers and search."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog, minimize

from invariance_tradeoffs.simulations.experiments.toy.exact_linear import (
    halfspace_distance,
    linear_example_distances,
    linear_robust_accuracies,
    two_halfspace_distance,
)
from invariance_tradeoffs.theory.distances import LpDistance
from invariance_tradeoffs.theory.oracles import FunctionOracle
from invariance_tradeoffs.theory.robust_accuracy import robustness_report


def _reference(x: np.ndarray, G: np.ndarray, h: np.ndarray, norm: str) -> float:
    """min ||z||_p s.t. G (x + z) <= h, by linprog (l1, linf) or SLSQP (l2)."""
    d = x.size
    r = h - G @ x
    feas = linprog(np.zeros(d), A_ub=G, b_ub=r, bounds=[(None, None)] * d)
    if feas.status == 2:
        return np.inf
    if norm == "l1":
        res = linprog(np.ones(2 * d), A_ub=np.hstack([G, -G]), b_ub=r, bounds=[(0, None)] * (2 * d))
        return float(res.fun)
    if norm == "linf":
        A = np.vstack([np.hstack([G, np.zeros((2, 1))]),
                       np.hstack([np.eye(d), -np.ones((d, 1))]),
                       np.hstack([-np.eye(d), -np.ones((d, 1))])])
        res = linprog(np.r_[np.zeros(d), 1.0], A_ub=A, b_ub=np.r_[r, np.zeros(2 * d)],
                      bounds=[(None, None)] * (d + 1))
        return float(res.fun)
    cons = [{"type": "ineq", "fun": lambda z, k=k: r[k] - G[k] @ z, "jac": lambda z, k=k: -G[k]}
            for k in range(2)]
    res = minimize(lambda z: z @ z, feas.x, jac=lambda z: 2 * z, constraints=cons,
                   method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
    return float(np.sqrt(res.fun))


def matches_reference(dist_fn, X, G, h, norm: str, atol: float = 1e-5) -> bool:
    """Whether ``dist_fn`` agrees with the LP/SLSQP reference on every row."""
    got = dist_fn(X, G, h, norm)
    ref = np.array([_reference(X[i], G[i], h[i], norm) for i in range(len(X))])
    same_inf = np.array_equal(np.isinf(got), np.isinf(ref))
    fin = np.isfinite(ref)
    return bool(same_inf and np.allclose(got[fin], ref[fin], atol=atol, rtol=1e-6))


def _problem(seed: int, n: int, d: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    G = rng.normal(size=(n, 2, d))
    h = rng.normal(size=(n, 2))
    # some anti-parallel pairs (possibly empty polyhedra) and some zero normals
    G[: n // 4, 1] = -G[: n // 4, 0] * rng.uniform(0.5, 2.0, size=(n // 4, 1))
    G[n // 4: n // 4 + 2, 1] = 0.0
    return X, G, h


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 6), norm=st.sampled_from(["l1", "l2", "linf"]))
def test_two_halfspace_distance_matches_solvers(seed, d, norm):
    X, G, h = _problem(seed, 12, d)
    assert matches_reference(two_halfspace_distance, X, G, h, norm)


def test_check_catches_a_wrong_distance():
    # Broken: ignores the second constraint (distance to the first half-space only).
    def first_only(X, G, h, norm):
        r = h[:, 0] - np.einsum("nd,nd->n", G[:, 0], X)
        return halfspace_distance(X, G[:, 0], r, norm)

    X, G, h = _problem(3, 12, 3)
    for norm in ("l1", "l2", "linf"):
        assert matches_reference(two_halfspace_distance, X, G, h, norm)
        assert not matches_reference(first_only, X, G, h, norm)


def test_bad_input_is_named():
    X, G, h = _problem(0, 4, 2)
    with pytest.raises(ValueError, match="norm"):
        two_halfspace_distance(X, G, h, "l3")
    with pytest.raises(ValueError, match="G must have shape"):
        two_halfspace_distance(X, G[:, :1], h, "l2")
    with pytest.raises(ValueError, match="h must have shape"):
        two_halfspace_distance(X, G, h[:, :1], "l2")


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), norm=st.sampled_from(["l1", "l2", "linf"]),
       eps=st.floats(0.05, 1.5))
def test_exact_masks_agree_with_candidate_search(seed, norm, eps):
    """Every example a finite search finds is inside the exact region (search is sound),
    and a dense search in 2-D finds (almost) all of them."""
    rng = np.random.default_rng(seed)
    u, c = rng.normal(size=2), rng.normal() * 0.3
    w, b = rng.normal(size=2), rng.normal() * 0.3
    X = rng.normal(size=(40, 2))
    oracle = FunctionOracle(lambda Z: (Z @ u + c > 0).astype(int), n_classes=2, n_features=2)

    def f(Z):
        return (Z @ w + b > 0).astype(int)

    dist = linear_example_distances(X, w, b, u, c, norm)
    exact = linear_robust_accuracies(dist, eps)
    g = np.linspace(-4, 4, 161)
    cand = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    rep = robustness_report(X, oracle, f, LpDistance(norm), eps, cand)
    # sound: search can only miss examples, so its robust shares are >= the exact ones
    for mask in ("sensitivity_robust", "invariance_robust", "standard_robust", "real_robust"):
        assert getattr(rep, mask).mean() >= exact[mask] - 1e-12
        # and with a 0.05 grid it misses at most inputs within one grid step of the boundary
        assert getattr(rep, mask).mean() <= exact[mask] + 0.1
    assert exact["correct"] == pytest.approx(rep.correct.mean())


def test_oracle_as_classifier_has_no_examples():
    rng = np.random.default_rng(1)
    u = rng.normal(size=4)
    X = rng.normal(size=(200, 4))
    dist = linear_example_distances(X, u, 0.2, u, 0.2, "linf")
    acc = linear_robust_accuracies(dist, 10.0)
    assert acc["real_robust"] == 1.0
    assert acc["standard_robust"] < 1.0  # the oracle itself is not lp-robust at eps=10

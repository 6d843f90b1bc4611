"""The geometry distances carry (dual norm, steepest direction, ball projection), and the
Mahalanobis distance as the test case of "a norm added in one place works everywhere":
in the toy families, robust training, exact linear analysis and PGD."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from invariance_tradeoffs.theory.distances import (
    LpDistance,
    MahalanobisDistance,
    WeightedLpDistance,
)

MAHA = MahalanobisDistance(precision=[[2.0, 0.6, 0.0], [0.6, 1.0, 0.3], [0.0, 0.3, 0.5]])
DISTANCES = {
    "l1": LpDistance(1), "l2": LpDistance(2), "linf": LpDistance("linf"),
    "weighted-l2": WeightedLpDistance([1.0, 4.0, 0.5], p=2),
    "weighted-linf": WeightedLpDistance([1.0, 4.0, 0.5], p="linf"),
    "mahalanobis": MAHA,
}


def nearest_point_ok(project, d, eps: float, seed: int) -> bool:
    """``project(X0, X, eps)`` lands in the ball, is idempotent, and no sampled point of
    the ball is nearer (in l2) to ``X``: the Euclidean projection."""
    rng = np.random.default_rng(seed)
    X0 = rng.normal(size=(4, 3))
    X = X0 + 2 * rng.normal(size=(4, 3))
    P = project(X0, X, eps)
    ok = bool(np.all(d(X0, P) <= eps * (1 + 1e-7) + 1e-12))
    ok &= bool(np.allclose(project(X0, P, eps), P, atol=1e-9))
    for i in range(4):
        # points of the ball: random directions scaled onto / inside the sphere
        v = rng.normal(size=(600, 3))
        v *= (eps * rng.random((600, 1)) ** 0.3) / np.maximum(d.norm(v)[:, None], 1e-300)
        near = np.linalg.norm(X[i] - P[i])
        ok &= bool(np.all(np.linalg.norm(X[i] - (X0[i] + v), axis=1) >= near - 1e-7))
    return ok


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(sorted(DISTANCES)), eps=st.floats(0.05, 2.0),
       seed=st.integers(0, 1000))
def test_projection_is_the_nearest_point_of_the_ball(name, eps, seed):
    d = DISTANCES[name]
    assert nearest_point_ok(d.project, d, eps, seed)


def test_the_projection_check_fails_on_radial_scaling():
    # in the ball and idempotent, but not the nearest point of an ellipsoid
    def radial(X0, X, eps):
        delta = X - X0
        return X0 + delta * np.minimum(1.0, eps / MAHA.norm(delta))[:, None]

    assert nearest_point_ok(MAHA.project, MAHA, 0.5, 0)
    assert not nearest_point_ok(radial, MAHA, 0.5, 0)


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(sorted(DISTANCES)), seed=st.integers(0, 1000))
def test_steepest_direction_attains_the_dual_norm(name, seed):
    d = DISTANCES[name]
    G = np.random.default_rng(seed).normal(size=(5, 3))
    V = d.steepest(G)
    np.testing.assert_allclose(d.norm(V), 1.0, rtol=1e-9)
    np.testing.assert_allclose((G * V).sum(axis=1), d.dual_norm(G), rtol=1e-9)
    # no unit vector does better (the dual norm is the maximum)
    U = np.random.default_rng(seed + 1).normal(size=(500, 3))
    U /= d.norm(U)[:, None]
    assert np.all(G @ U.T <= d.dual_norm(G)[:, None] + 1e-9)


def test_distances_without_geometry_say_so():
    from invariance_tradeoffs.theory.distances import ClassifierInducedDistance

    d = ClassifierInducedDistance(LpDistance(2), lambda X: (X[:, 0] > 0).astype(int), lam=1.0)
    with pytest.raises(NotImplementedError, match="dual norm"):
        d.dual_norm(np.zeros((1, 2)))
    with pytest.raises(NotImplementedError, match="projection"):
        LpDistance(3).project(np.zeros((1, 2)), np.ones((1, 2)), 0.5)


# ----------------------------------------------------------------- Mahalanobis end to end
MAHA2 = MahalanobisDistance(precision=[[2.0, 0.5], [0.5, 1.0]])


def test_mahalanobis_in_the_toy_families():
    from invariance_tradeoffs.theory.toys import check_family, get_family

    fam = get_family("overly-robust")
    X, _ = fam.sample(20000, seed=0)
    m = fam.margin(X, MAHA2)
    good = fam.good_radius(MAHA2).value
    assert good == pytest.approx(m.min(), rel=1e-3)
    for eps in (0.1, 0.3, 0.5):
        assert fam.ceiling_curve(np.array([eps]), MAHA2)[0] == pytest.approx(
            (m > eps).mean(), abs=0.01)
    # the margin is the exact distance to the other class: the nearest point moves x1 to 0
    x = X[:1]
    target = np.array([[0.0, x[0, 1]]])
    direction = MAHA2.steepest(np.array([[-np.sign(x[0, 0]), 0.0]]))  # cheapest way down
    assert m[0] <= MAHA2(x, target)[0] + 1e-12
    assert np.isfinite(direction).all()
    with pytest.raises(ValueError, match="mahalanobis"):
        get_family("spheres").margin(np.zeros((1, 4)), MAHA2)
    assert check_family("overly-robust").passed


def test_mahalanobis_in_robust_training_and_exact_linear_analysis():
    from invariance_tradeoffs.simulations.experiments.toy.exact_linear import (
        two_halfspace_distance,
    )
    from invariance_tradeoffs.simulations.experiments.toy.training import (
        fit_robust_linear,
        worst_case_margin,
    )

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2)) + np.array([[1.5, 0.0]]) * rng.choice([-1, 1], (200, 1))
    y = (X[:, 0] > 0).astype(int)
    clf = fit_robust_linear(X, y, norm=MAHA2, eps=0.3)
    # the worst-case margin is the minimum over the ellipsoid (sampled boundary points)
    v = rng.normal(size=(4000, 2))
    v /= MAHA2.norm(v)[:, None]
    s = 2.0 * y[:5] - 1
    sampled = (s[:, None] * ((X[:5, None, :] + 0.3 * v[None]) @ clf.w + clf.b)).min(axis=1)
    exact = worst_case_margin(clf, X[:5], y[:5], MAHA2, 0.3)
    assert np.all(exact <= sampled + 1e-9) and np.allclose(exact, sampled, atol=2e-3)
    # exact distance to an intersection of two half-spaces, against a generic solver
    G = rng.normal(size=(3, 2, 2))
    h = rng.normal(size=(3, 2))
    ours = two_halfspace_distance(X[:3], G, h, MAHA2)
    for i in range(3):
        x0, g, r = X[i], G[i], h[i]
        cons = [{"type": "ineq", "fun": lambda z, g=g[k], r=r[k]: r - g @ z} for k in range(2)]
        res = minimize(lambda z, x0=x0: (z - x0) @ MAHA2.precision @ (z - x0), x0 + 0.1,
                       constraints=cons, method="SLSQP", options={"ftol": 1e-14})
        assert ours[i] == pytest.approx(np.sqrt(max(res.fun, 0.0)), abs=1e-5)


def test_mahalanobis_pgd_stays_in_the_ball_and_raises_the_loss():
    from invariance_tradeoffs.simulations.attacks.pgd import pgd

    w = np.array([1.0, -2.0])

    def loss_gradient(x, y):  # loss of a linear score, for the label 0: increase w.x
        return np.tile(w, (len(x), 1)), None

    x = np.zeros((3, 2))
    adv = pgd(loss_gradient, x, np.zeros(3, int), distance=MAHA2, eps=0.5, steps=20,
              step_size=0.1, clip=None)
    assert np.all(MAHA2(x, adv) <= 0.5 + 1e-9)
    # the best achievable increase of w.x on the ball is eps * ||w||_*; PGD with a fixed
    # step ends within 0.1% of it
    best = 0.5 * MAHA2.dual_norm(w[None])[0]
    assert np.all(adv @ w <= best + 1e-9)
    np.testing.assert_allclose(adv @ w, best, rtol=1e-3)

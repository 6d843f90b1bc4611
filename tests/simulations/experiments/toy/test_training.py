"""Robust training: exact worst-case margins, input gradients, projections, PGD."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from sklearn.neural_network import MLPClassifier

from invariance_tradeoffs.simulations.experiments.toy.exact_linear import linear_example_distances
from invariance_tradeoffs.simulations.experiments.toy.training import (
    LinearClassifier,
    fit_adversarial_mlp,
    fit_robust_linear,
    mlp_input_gradient,
    pgd_attack,
    worst_case_margin,
)
from invariance_tradeoffs.theory.distances import get_distance
from invariance_tradeoffs.theory.toys import get_family

NORMS = ["l1", "l2", "linf"]
P = {"l1": 1, "l2": 2, "linf": np.inf}


def margin_is_worst_case(margin_fn, clf, X, y, norm, eps, n_probe=300, seed=0) -> bool:
    """Check a claimed worst-case margin: no point of the ball has a smaller signed margin,
    and the vertex/direction that minimises it attains the claim."""
    rng = np.random.default_rng(seed)
    claimed = margin_fn(clf, X, y, norm, eps)
    s = 2.0 * y - 1.0
    d = X.shape[1]
    w = clf.w
    # the exact minimiser: move against s * w along the dual direction
    if norm == "linf":
        step = eps * np.sign(w)
    elif norm == "l2":
        step = eps * w / max(np.linalg.norm(w), 1e-300)
    else:
        step = np.zeros(d)
        i = int(np.argmax(np.abs(w)))
        step[i] = eps * np.sign(w[i])
    worst = X - s[:, None] * step[None, :]
    attained = np.allclose(s * clf.decision_function(worst), claimed, atol=1e-9)
    # random points of the ball never go below the claim
    g = rng.standard_normal((n_probe, d))
    g *= eps / np.linalg.norm(g, ord=P[norm], axis=1, keepdims=True)
    ok = True
    for i in range(X.shape[0]):
        vals = s[i] * clf.decision_function(X[i] + g)
        ok &= bool(np.all(vals >= claimed[i] - 1e-9))
    return bool(attained and ok)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), norm=st.sampled_from(NORMS), eps=st.floats(0.0, 2.0),
       d=st.integers(1, 5))
def test_worst_case_margin_is_the_minimum_over_the_ball(seed, norm, eps, d):
    rng = np.random.default_rng(seed)
    clf = LinearClassifier(rng.normal(size=d), float(rng.normal()))
    X = rng.normal(size=(6, d))
    y = rng.integers(0, 2, size=6)
    assert margin_is_worst_case(worst_case_margin, clf, X, y, norm, eps, seed=seed)


def test_worst_case_check_catches_the_wrong_dual_norm():
    def wrong(clf, X, y, norm, eps):  # uses ||w||_p instead of the dual ||w||_q
        s = 2.0 * y - 1.0
        return s * clf.decision_function(X) - eps * np.linalg.norm(clf.w, ord=P[norm])

    rng = np.random.default_rng(0)
    clf = LinearClassifier(rng.normal(size=4), 0.1)
    X, y = rng.normal(size=(6, 4)), rng.integers(0, 2, size=6)
    for norm in ("l1", "linf"):  # l2 is self-dual
        assert margin_is_worst_case(worst_case_margin, clf, X, y, norm, 0.5)
        assert not margin_is_worst_case(wrong, clf, X, y, norm, 0.5)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), norm=st.sampled_from(NORMS), eps=st.floats(0.01, 1.0))
def test_worst_case_margin_agrees_with_exact_distance_to_errors(seed, norm, eps):
    """Two independent exact computations: worst-case margin > 0 iff the lp distance to
    {f != f(x)} exceeds eps, at every correctly classified input."""
    rng = np.random.default_rng(seed)
    d = 3
    clf = LinearClassifier(rng.normal(size=d), float(rng.normal()))
    X = rng.normal(size=(50, d))
    y = clf.predict(X)  # every input correct
    dist = linear_example_distances(X, clf.w, clf.b, clf.w, clf.b, norm)
    m = worst_case_margin(clf, X, y, norm, eps)
    keep = np.abs(m) > 1e-9
    assert np.array_equal((m > 0)[keep], (dist.to_error > eps)[keep])


@pytest.mark.parametrize("norm", NORMS)
def test_robust_linear_training_minimises_the_worst_case_loss(norm):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    eps, alpha = 0.2, 1e-3
    clf = fit_robust_linear(X, y, norm=norm, eps=eps, alpha=alpha)

    def objective(theta):
        c = LinearClassifier(theta[:3], theta[3])
        return np.logaddexp(0, -worst_case_margin(c, X, y, norm, eps)).mean() + \
            0.5 * alpha * theta[:3] @ theta[:3]

    best = objective(np.r_[clf.w, clf.b])
    # a derivative-free optimiser started nearby finds nothing better
    res = minimize(objective, np.r_[clf.w, clf.b] + 0.05, method="Nelder-Mead",
                   options={"maxiter": 4000, "xatol": 1e-8, "fatol": 1e-12})
    assert best <= res.fun + 1e-6
    assert (clf(X) == y).mean() > 0.9


def test_robust_training_beyond_the_margins_collapses():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] > 0).astype(int)
    clf = fit_robust_linear(X, y, norm="linf", eps=5.0)
    assert np.allclose(clf.w, 0.0, atol=1e-6)


def test_bad_training_input_is_named():
    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match="norm"):
        fit_robust_linear(X, [0, 1, 0, 1], norm="l0")
    with pytest.raises(ValueError, match="y"):
        fit_robust_linear(X, [0, 1, 0, 2])
    with pytest.raises(ValueError, match="eps"):
        fit_robust_linear(X, [0, 1, 0, 1], eps=-1.0)


def gradient_matches_finite_differences(grad_fn, mlp, X, y, h=1e-6) -> bool:
    g = grad_fn(mlp, X, y)
    num = np.zeros_like(g)
    for j in range(X.shape[1]):
        e = np.zeros(X.shape[1])
        e[j] = h
        lp = -np.log(mlp.predict_proba(X + e)[np.arange(len(y)), y])
        lm = -np.log(mlp.predict_proba(X - e)[np.arange(len(y)), y])
        num[:, j] = (lp - lm) / (2 * h)
    return bool(np.allclose(g, num, atol=1e-5, rtol=1e-4))


@pytest.mark.parametrize("n_classes,activation", [(2, "relu"), (3, "relu"), (3, "tanh")])
def test_mlp_input_gradient_matches_finite_differences(n_classes, activation):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.digitize(X[:, 0], np.linspace(-0.5, 0.5, n_classes - 1))
    mlp = MLPClassifier((8, 5), activation=activation, max_iter=300, random_state=0).fit(X, y)
    assert gradient_matches_finite_differences(mlp_input_gradient, mlp, X[:6], y[:6])

    def wrong_label(m, X, y):
        return mlp_input_gradient(m, X, (y + 1) % n_classes)

    assert not gradient_matches_finite_differences(wrong_label, mlp, X[:6], y[:6])


def project_ball(X0, X, norm, eps):
    """The distance object's projection (the one every attack and training uses)."""
    return get_distance(norm).project(X0, X, eps)


def is_nearest_point_projection(proj_fn, norm: str, eps: float, seed: int) -> bool:
    """``proj_fn(X0, X, norm, eps)`` lands in the ball, is idempotent, and no random point
    of the ball is nearer to ``X`` in l2 (the Euclidean projection, for every ball)."""
    rng = np.random.default_rng(seed)
    X0 = rng.normal(size=(5, 4))
    X = X0 + 2 * rng.normal(size=(5, 4))
    Pj = proj_fn(X0, X, norm, eps)
    r = np.linalg.norm(Pj - X0, ord=P[norm], axis=1)
    ok = bool(np.all(r <= eps + 1e-9)) and np.allclose(proj_fn(X0, Pj, norm, eps), Pj)
    g = rng.standard_normal((400, 4))
    g *= (eps * rng.random((400, 1)) ** 0.25) / np.maximum(
        np.linalg.norm(g, ord=P[norm], axis=1, keepdims=True), 1e-300)
    for i in range(5):
        near = np.linalg.norm(X[i] - Pj[i])
        ok &= bool(np.all(np.linalg.norm(X[i] - (X0[i] + g), axis=1) >= near - 1e-9))
    return ok


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), norm=st.sampled_from(NORMS), eps=st.floats(0.0, 2.0))
def test_projection_is_the_nearest_point_of_the_ball(seed, norm, eps):
    assert is_nearest_point_projection(project_ball, norm, eps, seed)


def test_projection_check_catches_radial_scaling_in_l1():
    def radial(X0, X, norm, eps):  # in the ball and idempotent, but not the nearest point
        d = X - X0
        n = np.abs(d).sum(axis=1, keepdims=True)
        return X0 + d * np.minimum(1.0, eps / np.maximum(n, 1e-300))

    assert is_nearest_point_projection(project_ball, "l1", 0.5, 0)
    assert not is_nearest_point_projection(radial, "l1", 0.5, 0)


def test_pgd_finds_errors_of_a_nonrobust_model_and_stays_in_the_ball():
    fam = get_family("overly-robust")
    X, y = fam.sample(300, seed=0)
    mlp = fit_adversarial_mlp(X, y, norm="linf", eps=0.0, epochs=15, seed=0)
    Xa = pgd_attack(mlp, X, y, norm="linf", eps=1.5, steps=20, seed=0)
    assert np.all(np.abs(Xa - X).max(axis=1) <= 1.5 + 1e-12)
    assert (mlp.predict(Xa) == y).mean() < 0.5  # eps beyond |x2| = 1 breaks any model


def test_adversarial_training_is_seeded():
    fam = get_family("spheres")
    X, y = fam.sample(100, seed=0)
    a = fit_adversarial_mlp(X, y, norm="l2", eps=0.2, epochs=3, seed=3)
    b = fit_adversarial_mlp(X, y, norm="l2", eps=0.2, epochs=3, seed=3)
    for wa, wb in zip(a.coefs_, b.coefs_, strict=True):
        assert np.array_equal(wa, wb)

"""Tsipras et al. (2019): Bayes oracle, exact accuracies, and their Theorem 2.1."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from invariance_tradeoffs.theory.results import proportion_estimate
from invariance_tradeoffs.theory.toys import Tsipras, tsipras_bound
from proofs import checks_closed_forms as C  # noqa: E402

params = st.fixed_dictionaries({"d": st.integers(1, 30), "p": st.floats(0.51, 0.99),
                                "eta": st.floats(0.05, 1.5)})


def test_bound_statement():
    q = tsipras_bound(0.95, 0.01)
    assert q.kind == "bound" and q.side == "upper" and q.value == pytest.approx(0.19)
    assert tsipras_bound(0.9, 0.5).value == 1.0  # capped at 1
    with pytest.raises(ValueError, match="p must be"):
        tsipras_bound(0.3, 0.1)
    with pytest.raises(ValueError, match="delta must be"):
        tsipras_bound(0.9, 1.5)


def test_oracle_is_the_bayes_rule():
    fam = Tsipras(d=3, p=0.8, eta=0.7)
    X, o, y = fam.sample_with_latent(4000, seed=0)
    np.testing.assert_array_equal(X, fam.sample(4000, seed=0)[0])

    def loglik(s):  # log P(x | y = s) up to a constant shared by both classes
        x0 = np.where(X[:, 0] == s, np.log(fam.p), np.log(1 - fam.p))
        return x0 - 0.5 * ((X[:, 1:] - fam.eta * s) ** 2).sum(axis=1)

    np.testing.assert_array_equal(o, (loglik(1) > loglik(-1)).astype(int))
    # The Bayes rule beats the robust feature alone.
    assert np.mean(o == y) > np.mean((X[:, 0] > 0) == y)


@settings(max_examples=25, deadline=None)
@given(kw=params, seed=st.integers(0, 2**31 - 1), eps=st.floats(0, 1.0),
       # no subnormal weights: x @ v underflows to 0 in the Monte Carlo check itself
       v=arrays(float, 4, elements=st.floats(-2, 2, allow_subnormal=False)),
       c=st.floats(-1, 1, allow_subnormal=False))
def test_exact_accuracies_match_monte_carlo(kw, seed, eps, v, c):
    fam = Tsipras(d=3, p=kw["p"], eta=kw["eta"])
    std, rob = fam.linear_accuracies(v, c, eps)
    X, _, y = fam.sample_with_latent(3000, seed=seed)
    s = 2 * y - 1
    correct = ((X @ v + c > 0).astype(int) == y)
    # The worst l-inf perturbation of a linear classifier pushes against the true side.
    worst = X - eps * s[:, None] * np.sign(v)[None, :]
    robust = ((worst @ v + c > 0).astype(int) == y)
    for exact_q, hits in ((std, correct), (rob, robust)):
        est = proportion_estimate(int(hits.sum()), hits.size, "MC", confidence=0.9999)
        assert est.low - 1e-12 <= exact_q.value <= est.high + 1e-12


@settings(max_examples=40, deadline=None)
@given(kw=params, seed=st.integers(0, 1000), extra=st.floats(0, 1.0))
def test_theorem_2_1_holds_for_linear_classifiers(kw, seed, extra):
    fam = Tsipras(**kw)
    C.check_tsipras_theorem(fam, C.tsipras_classifiers(fam, n_random=5, seed=seed),
                            eps=2 * fam.eta + extra)
    res = fam.check_bound(fam.w, 0.0)
    assert res.applies and res.holds


def test_bound_is_tight_for_the_robust_feature_classifier():
    fam = Tsipras(d=16, p=0.9, eta=0.2)
    e0 = np.eye(fam.n_features)[0]
    res = fam.check_bound(e0, 0.0, eps=0.5)  # 2 eta <= eps < 1: x_0 cannot be flipped
    assert res.standard_accuracy == pytest.approx(0.9)
    assert res.robust_accuracy == pytest.approx(res.bound)  # p = p/(1-p) * (1-p)


def test_check_fails_below_2_eta_and_for_a_wrong_bound():
    fam = Tsipras(d=16, p=0.9, eta=0.5)
    # Outside the theorem's hypothesis (eps < 2 eta) the Bayes rule beats the "bound".
    res = fam.check_bound(fam.w, 0.0, eps=0.0)
    assert not res.applies and not res.holds
    with pytest.raises(AssertionError, match="exceeds the bound"):
        C.check_tsipras_theorem(fam, [(fam.w, 0.0)], eps=0.0)
    # A wrong bound (delta instead of p/(1-p) delta) is violated by sign(x_0).
    with pytest.raises(AssertionError, match="exceeds the bound"):
        C.check_tsipras_theorem(fam, C.tsipras_classifiers(fam), bound_fn=lambda p, d: d)


def test_ceiling_and_good_radius():
    fam = Tsipras()
    assert fam.good_radius("linf").value == 0.0 and fam.good_radius("l0").value == 1.0
    c = fam.ceiling_curve(np.array([0.0, 0.1, 10.0]), "linf")
    assert c[0] == pytest.approx(1.0) and c[2] < 1e-6 and 0 < c[1] < 1

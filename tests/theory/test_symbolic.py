"""The symbolic closed forms agree with the numeric families and with Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from invariance_tradeoffs.theory import symbolic
from invariance_tradeoffs.theory.toys import (
    ConcentricSpheres,
    LinearGaussian,
    OverlyRobustFeature,
    Tsipras,
    linear_margin,
)

GRID = np.linspace(0.0, 3.0, 41)


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 4), data=st.data(), norm=st.sampled_from(("l1", "l2", "linf")))
def test_linear_gaussian_ceiling_symbolic_equals_numeric(d, data, norm):
    w = data.draw(arrays(float, d, elements=st.floats(-2, 2)))
    if np.abs(w).max() < 1e-3:
        w[0] = 1.0
    fam = LinearGaussian(d=d, m=data.draw(st.floats(0, 3)), sigma=data.draw(st.floats(0.1, 3)),
                         prior=data.draw(st.floats(0.05, 0.95)), w=w,
                         b=data.draw(st.floats(-1, 1)))
    np.testing.assert_allclose(symbolic.family_ceiling(fam, norm)(GRID),
                               fam.ceiling_curve(GRID, norm), atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 50), p=st.floats(0.51, 0.99), eta=st.floats(0.05, 2.0),
       norm=st.sampled_from(("l1", "l2", "linf")))
def test_tsipras_ceiling_symbolic_equals_numeric(d, p, eta, norm):
    fam = Tsipras(d=d, p=p, eta=eta)
    np.testing.assert_allclose(symbolic.family_ceiling(fam, norm)(GRID),
                               fam.ceiling_curve(GRID, norm), atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(a=st.floats(0.01, 1.0), width=st.floats(0.01, 2.0), norm=st.sampled_from(("l1", "linf")))
def test_overly_robust_ceiling_symbolic_equals_numeric(a, width, norm):
    fam = OverlyRobustFeature(a=a, b=a + width, c=a + 1.0)
    np.testing.assert_allclose(symbolic.family_ceiling(fam, norm)(GRID),
                               fam.ceiling_curve(GRID, norm), atol=1e-12)


def test_sphere_forms_equal_numeric():
    fam = ConcentricSpheres(d=5, radii=(0.7, 2.1))
    np.testing.assert_array_equal(symbolic.family_ceiling(fam, "l2")(GRID),
                                  fam.ceiling_curve(GRID, "l2"))
    for norm in ("l0", "l1", "l2", "linf"):
        form = symbolic.sphere_good_radius(norm)
        assert float(form(0.7, 2.1, 5)) == pytest.approx(fam.good_radius(norm).value)
    X, _ = fam.sample(100, seed=0)
    rho = np.linalg.norm(X, axis=1)
    t = fam.thresholds[0]
    lo = np.where(rho > t, t, 0.0)
    hi = np.where(rho > t, np.inf, t)
    m = symbolic.sphere_l2_margin()(rho, lo, hi)
    np.testing.assert_allclose(m, fam.margin(X, "l2"), rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 3), data=st.data(), norm=st.sampled_from(("l1", "l2", "linf")))
def test_linear_margin_form_equals_numeric(d, data, norm):
    X = data.draw(arrays(float, (5, d), elements=st.floats(-3, 3)))
    w = data.draw(arrays(float, d, elements=st.floats(-2, 2)))
    if np.abs(w).max() < 1e-3:
        w[0] = 1.0
    b = data.draw(st.floats(-1, 1))
    form = symbolic.linear_margin(d, norm)
    got = form(*X.T, *w, b)
    np.testing.assert_allclose(got, linear_margin(X, w, b, norm), rtol=1e-10, atol=1e-12)


def test_overly_robust_margin_form():
    X = np.array([[-0.3, 1.0], [0.5, -1.0]])
    np.testing.assert_array_equal(symbolic.overly_robust_margin()(X[:, 0]),
                                  OverlyRobustFeature().margin(X, "linf"))


def test_ceiling_forms_match_monte_carlo():
    from invariance_tradeoffs.theory.results import proportion_estimate

    for fam, norm in ((LinearGaussian(d=3, w=[1, -1, 2], b=0.2, prior=0.3), "linf"),
                      (Tsipras(d=9, p=0.85, eta=0.3), "l2"),
                      (OverlyRobustFeature(a=0.1, b=0.9), "l1")):
        X, _ = fam.sample(20_000, seed=5)
        m = fam.margin(X, norm)
        for eps in (0.05, 0.3, 0.7):
            value = float(symbolic.family_ceiling(fam, norm)(np.array([eps]))[0])
            q = proportion_estimate(int((m > eps).sum()), m.size, "MC", confidence=0.9999)
            assert q.low <= value <= q.high, (fam.name, eps, value, q)


def test_tsipras_bound_form():
    form = symbolic.tsipras_bound()
    assert float(form(0.95, 0.01)) == pytest.approx(0.19)
    from invariance_tradeoffs.theory.toys import tsipras_bound

    assert float(form(0.8, 0.1)) == pytest.approx(tsipras_bound(0.8, 0.1).value)


def test_closed_form_api():
    form = symbolic.overly_robust_ceiling()
    fixed = form.subs(a=0.2, b=0.6)
    assert [str(s) for s in fixed.args] == ["eps"]
    np.testing.assert_allclose(fixed(np.array([0.0, 0.4, 1.0])), [1.0, 0.5, 0.0])
    assert "eps" in form.latex()
    with pytest.raises(ValueError, match="takes 3 arguments"):
        form(0.1)
    with pytest.raises(ValueError, match="no argument"):
        form.subs(zz=1)
    x = sp.Symbol("x")
    with pytest.raises(ValueError, match="not in args"):
        symbolic.ClosedForm("bad", x + sp.Symbol("y"), (x,))
    assert float(symbolic.linear_margin(2, "l0")(0, 0, 1, 1, 0)) == 1.0


def test_family_ceiling_unknown_raises():
    with pytest.raises(ValueError, match="no symbolic ceiling for family 'spheres' under norm"):
        symbolic.family_ceiling(ConcentricSpheres(), "linf")
    with pytest.raises(ValueError, match="no Tsipras ceiling form"):
        symbolic.tsipras_ceiling("l3")

"""The executable checks of proofs/closed_forms.md pass, and fail on deliberately wrong formulas."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from invariance_tradeoffs.theory import symbolic
from invariance_tradeoffs.theory.toys import ConcentricSpheres, LinearGaussian, OverlyRobustFeature
from proofs import checks_closed_forms as C  # noqa: E402


@pytest.mark.parametrize("fam", [OverlyRobustFeature(), LinearGaussian(d=3),
                                 ConcentricSpheres(d=3),
                                 ConcentricSpheres(d=4, radii=(1.0, 1.5, 3.0),
                                                   priors=(0.0, 0.5, 0.5))],
                         ids=lambda f: f"{f.name}-{f.n_features}-{f.n_classes}")
def test_good_radius_is_a_lower_bound_and_attained(fam):
    for norm in fam.norms:
        C.check_good_radius_attained(fam, norm, n=1500)


def test_attained_check_fails_for_wrong_sphere_radii():
    fam = ConcentricSpheres(d=4, radii=(1.0, 2.0))
    # Forgetting the 1/sqrt(d) for linf claims too much: samples fall below it.
    with pytest.raises(AssertionError, match="below good radius"):
        C.check_good_radius_attained(fam, "linf", good_radius=0.5, n=1500)
    # Claiming too little (linf value for l1) is caught by the attainment search.
    with pytest.raises(AssertionError, match="not attained"):
        C.check_good_radius_attained(fam, "l1", good_radius=0.25, n=1500)


def test_attained_check_fails_for_wrong_overly_robust_radius():
    with pytest.raises(AssertionError, match="not attained"):
        C.check_good_radius_attained(OverlyRobustFeature(a=0.2), "l2", good_radius=0.1)


def test_sympy_checks_pass():
    C.check_symbolic_gaussian_tail()
    C.check_symbolic_linear_l2_margin()
    C.check_symbolic_linear_linf_margin()
    C.check_symbolic_overly_robust_ceiling()


def test_sympy_gaussian_tail_check_fails_without_the_lower_tail():
    good = symbolic.abs_normal_mixture_tail(1)
    t, mu, s, pi = good.args
    wrong = symbolic.ClosedForm("upper tail only",
                                pi * (1 - symbolic.normal_cdf((t - mu) / s)), good.args)
    with pytest.raises(AssertionError, match="Gaussian tail"):
        C.check_symbolic_gaussian_tail(wrong)


def test_sympy_linear_margin_checks_fail_for_the_wrong_dual_norm():
    l1_form = symbolic.linear_margin(3, "l1")  # divides by ||w||_inf
    with pytest.raises(AssertionError, match="Lagrange"):
        C.check_symbolic_linear_l2_margin(l1_form)
    l2_form = symbolic.linear_margin(3, "l2")  # divides by ||w||_2, not ||w||_1
    with pytest.raises(AssertionError, match="attained distance"):
        C.check_symbolic_linear_linf_margin(l2_form)


def test_sympy_overly_robust_check_fails_for_a_wrong_ceiling():
    eps, a, b = symbolic.overly_robust_ceiling().args
    wrong = symbolic.ClosedForm("wrong", sp.Piecewise((1, eps <= a), ((b - eps) / b, eps < b),
                                                      (0, True)), (eps, a, b))
    with pytest.raises(AssertionError, match="uniform density"):
        C.check_symbolic_overly_robust_ceiling(wrong)


def test_glyph_support_enumeration_refuses_large_canvases():
    from invariance_tradeoffs.theory.toys import GlyphDigits

    with pytest.raises(ValueError, match="too large"):
        C.glyph_support(GlyphDigits())


def test_min_norm_polyhedron_known_values():
    x = np.zeros(2)
    A, c = np.array([[-1.0, -1.0]]), np.array([-2.0])  # z1 + z2 >= 2
    assert C.min_norm_polyhedron(x, A, c, "l1") == pytest.approx(2.0)
    assert C.min_norm_polyhedron(x, A, c, "linf") == pytest.approx(1.0)
    assert C.min_norm_polyhedron(x, A, c, "l2") == pytest.approx(np.sqrt(2.0))
    assert C.min_norm_polyhedron(x, A, np.array([-3.0]), "l2", 0.0, 1.0) == np.inf


@pytest.mark.slow
def test_run_all():
    out = C.run_all()
    assert len(out) > 50

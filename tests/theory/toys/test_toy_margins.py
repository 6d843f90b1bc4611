"""Closed-form margins equal generic-solver / exhaustive margins (hypothesis properties)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from invariance_tradeoffs.theory.strategies import family_instances
from invariance_tradeoffs.theory.toys import (
    ConcentricSpheres,
    GlyphDigits,
    LinearGaussian,
    OverlyRobustFeature,
    linear_margin,
)
from invariance_tradeoffs.theory.toys.glyphs import DIGIT_CODES
from invariance_tradeoffs.theory.toys.linear_gaussian import dual_norm
from proofs import checks_closed_forms as C  # noqa: E402

NORMS = ("l0", "l1", "l2", "linf")
coord = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


# ------------------------------------------------------------------------- linear oracles


@settings(max_examples=40, deadline=None)
@given(fam=family_instances("linear-gaussian"), data=st.data(), norm=st.sampled_from(NORMS))
def test_linear_margin_equals_solver(fam, data, norm):
    X = data.draw(arrays(float, (3, fam.d), elements=coord))
    C.check_margins(fam, X, norm)


@settings(max_examples=25, deadline=None)
@given(fam=family_instances("tsipras"), seed=st.integers(0, 1000),
       norm=st.sampled_from(("l1", "l2", "linf")))
def test_tsipras_margin_equals_solver(fam, seed, norm):
    X, _ = fam.sample(3, seed=seed)
    C.check_margins(fam, X, norm)


@settings(max_examples=30, deadline=None)
@given(X=arrays(float, (4, 2), elements=coord), norm=st.sampled_from(NORMS))
def test_overly_robust_margin_equals_solver(X, norm):
    C.check_margins(OverlyRobustFeature(), X, norm)


def test_linear_formula_check_and_its_failure_on_the_primal_norm():
    C.check_linear_margin_formula()

    def primal(X, w, b, norm):  # wrong: divides by ||w||_p instead of the dual ||w||_q
        if norm in ("l1", "linf"):
            return np.abs(X @ np.asarray(w) + b) / np.linalg.norm(
                w, ord=1 if norm == "l1" else np.inf)
        return linear_margin(X, w, b, norm)

    with pytest.raises(AssertionError, match="linear margin l1"):
        C.check_linear_margin_formula(primal)


def test_linear_margin_is_zero_exactly_on_the_boundary():
    fam = LinearGaussian(d=3, w=[2.0, 0.0, -1.0], b=1.0)
    X = np.array([[0.0, 5.0, 1.0], [1.0, -2.0, 3.0]])  # w.x + b = 0 exactly
    for norm in ("l1", "l2", "linf"):
        np.testing.assert_array_equal(fam.margin(X, norm), 0.0)
    np.testing.assert_array_equal(fam.oracle(X), 0)  # the boundary belongs to class 0
    np.testing.assert_array_equal(fam.margin(X, "l0"), 1.0)  # l0 margins are >= 1


def test_linear_margin_attained_by_dual_direction():
    fam = LinearGaussian(d=4, w=[1.0, -3.0, 0.5, 2.0], b=-0.5)
    X, _ = fam.sample(50, seed=1)
    for norm, step in (("l2", lambda w: w / np.linalg.norm(w) ** 2),
                       ("linf", lambda w: np.sign(w) / np.abs(w).sum()),
                       ("l1", lambda w: np.eye(4)[np.argmax(np.abs(w))] / w[np.argmax(np.abs(w))])):
        m = fam.margin(X, norm)
        score = X @ fam.w + fam.b
        # Move to the boundary along the direction attaining Hoelder's inequality.
        Z = X - score[:, None] * step(fam.w)[None, :]
        np.testing.assert_allclose(Z @ fam.w + fam.b, 0.0, atol=1e-9)
        p = {"l1": 1, "l2": 2, "linf": np.inf}[norm]
        np.testing.assert_allclose(np.linalg.norm(Z - X, ord=p, axis=1), m, rtol=1e-9)
        assert dual_norm(fam.w, norm) > 0


def test_overly_robust_margin_zero_on_boundary_and_feature_classifier_is_overly_robust():
    fam = OverlyRobustFeature(a=0.2, b=0.6, c=1.0)
    np.testing.assert_array_equal(fam.margin(np.array([[0.0, 1.0]]), "linf"), 0.0)
    X, y = fam.sample(400, seed=0)
    f = fam.feature_classifier()
    np.testing.assert_array_equal(f(X), y)  # standard accuracy 1
    Xp = fam.invariance_examples(X)
    # The oracle label flips, the classifier's does not, within distance 2|x1| <= 2b.
    assert np.all(fam.oracle(Xp) != y) and np.all(f(Xp) == f(X))
    assert np.all(np.abs(Xp - X).max(axis=1) <= 2 * fam.b)
    # Perturbations of size < c never change f: only x2 matters and |x2| = c.
    rng = np.random.default_rng(0)
    delta = rng.uniform(-1, 1, size=X.shape) * (fam.c - 1e-9)
    np.testing.assert_array_equal(f(X + delta), y)


# ------------------------------------------------------------------------------ spheres


@settings(max_examples=30, deadline=None)
@given(fam=family_instances("spheres"), data=st.data(), norm=st.sampled_from(NORMS))
def test_sphere_margins_equal_solver(fam, data, norm):
    X = data.draw(arrays(float, (3, fam.d), elements=st.floats(-4, 4)))
    C.check_margins(fam, X, norm)


def test_sphere_margins_on_the_spheres_and_on_the_boundary():
    fam = ConcentricSpheres(d=3, radii=(1.0, 2.0, 4.0))
    X, y = fam.sample(200, seed=0)
    np.testing.assert_allclose(fam.margin(X, "l2"), fam.class_margins_l2()[y], rtol=1e-12)
    boundary = np.array([[1.5, 0.0, 0.0], [0.0, 0.0, -3.0]])  # ||x|| = t_0 and t_1
    for norm in ("l1", "l2", "linf"):
        np.testing.assert_array_equal(fam.margin(boundary, norm), 0.0)
    np.testing.assert_array_equal(fam.oracle(boundary), [0, 1])  # boundary -> inner class


def test_sphere_margin_check_fails_for_wrong_linf_formula():
    fam = ConcentricSpheres(d=3, radii=(1.0, 2.0))
    X = np.array([[0.3, 0.5, 0.2], [1.5, 0.9, 0.4]])

    def l2_for_linf(X, norm):  # wrong: the l2 margin is not the linf margin in d > 1
        return fam.margin(X, "l2")

    with pytest.raises(AssertionError, match="differs from the solver"):
        C.check_margins(fam, X, "linf", margin_fn=l2_for_linf)


# ------------------------------------------------------------------------------- glyphs

TINY = GlyphDigits(7, 6, 1, levels=4)  # segments of 1-2 pixels, d = 42
TINIEST = GlyphDigits(7, 5, 1, levels=4)  # one pixel per segment, d = 35


@settings(max_examples=20, deadline=None)
@given(X=arrays(float, (2, TINY.n_features), elements=st.floats(0, 1)),
       norm=st.sampled_from(("l1", "l2", "linf")))
def test_glyph_margins_equal_lp_qp_solver(X, norm):
    C.check_margins(TINY, X, norm)


@settings(max_examples=20, deadline=None)
@given(X=arrays(float, (2, TINIEST.n_features),
                elements=st.sampled_from([0.0, 0.2, 0.45, 0.5, 0.55, 0.8, 1.0])))
def test_glyph_l0_margins_equal_enumeration(X):
    C.check_margins(TINIEST, X, "l0")


def test_glyph_margins_on_default_canvas_equal_lp_solver():
    fam = GlyphDigits()
    X, _ = fam.sample(3, seed=2)
    for norm in ("l1", "linf"):
        C.check_margins(fam, X, norm)


@pytest.mark.slow
def test_glyph_l2_margins_on_default_canvas_equal_qp_solver():
    fam = GlyphDigits()
    C.check_margins(fam, fam.sample(3, seed=2)[0], "l2")


def test_glyph_margin_zero_on_threshold():
    fam = GlyphDigits()
    x = fam.faintest([8])
    g = fam.segment_index[6]
    x[0, g] = fam.threshold  # segment g exactly at the threshold: still on, 8
    assert fam.oracle(x)[0] == 8
    for norm in ("l1", "l2", "linf"):
        assert fam.margin(x, norm)[0] == 0.0  # switching g off gives 0
    assert fam.margin(x, "l0")[0] == 1.0


def test_glyph_check_fails_when_flips_are_summed_under_linf():
    def summed(X, norm):  # wrong: l-inf budgets of disjoint segments do not add up
        costs = TINY.flip_costs(X, norm)
        flips = TINY.segment_state(X)[:, None, :] ^ DIGIT_CODES[None]
        per = np.where(flips, costs[:, None, :], 0).sum(axis=2)
        per[np.arange(10)[None, :] == TINY.oracle(X)[:, None]] = np.inf
        return per.min(axis=1)

    X = np.random.default_rng(0).uniform(size=(8, TINY.n_features))
    with pytest.raises(AssertionError, match="differs from the solver"):
        C.check_margins(TINY, X, "linf", margin_fn=summed)

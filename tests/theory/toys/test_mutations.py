"""Tests aimed at mutations that once passed the suite (issue 11, item 10).

Each test below fails when the code is broken in the way its comment names (checked by
applying the mutation, running the test and reverting):

* ``LemmaReport.holds`` made always true;
* a ceiling that counts ``r_O >= eps`` instead of ``r_O > eps`` (the overly-robust and
  linear l0 ceilings with ``eps <= 1``, the spheres ceiling with ``>=``): boundary tests at
  ``eps`` equal to a margin, for every registered family with a closed-form ceiling;
* a wrong good radius (0 where the margins are bounded away from 0) passing the family
  contract;
* the glyph l0 switch-off made non-strict (saturated segments: removing exactly the
  surplus ink leaves the segment at the threshold, still on);
* the glyph l2 margin summing segment costs instead of their root-sum-of-squares (inputs
  that need several segment flips: the all-zero image, whose nearest digit is 1).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from invariance_tradeoffs.theory.oracles import REJECT, TableOracle
from invariance_tradeoffs.theory.results import exact
from invariance_tradeoffs.theory.symbolic import family_ceiling
from invariance_tradeoffs.theory.theorem import tradeoff_lemma
from invariance_tradeoffs.theory.toys import FAMILIES, GlyphDigits, check_family, get_family
from invariance_tradeoffs.theory.toys.glyphs import DIGIT_CODES, SEGMENTS
from proofs import checks_closed_forms as C  # noqa: E402

# ------------------------------------------------------------------ LemmaReport.holds

LINE = np.arange(4.0)[:, None]


def test_lemma_holds_is_false_when_a_robust_row_is_not_robust():
    """Mutation: ``holds`` always true. A report whose robust, witnessed row claims the
    impossible case must not hold; a non-robust row with that case must not matter."""
    oracle = TableOracle(LINE, [0, 0, 1, 1], n_classes=2)
    robust = tradeoff_lemma(LINE, oracle, lambda X: np.zeros(len(X), int), "l1", 1.0, LINE)
    assert robust.holds and bool(np.all(robust.robust))
    i = int(np.flatnonzero(robust.applies & robust.robust)[0])
    forged = dataclasses.replace(robust, case=np.where(np.arange(4) == i, "not_robust",
                                                       robust.case))
    assert not forged.holds
    honest = tradeoff_lemma(LINE, oracle, oracle, "l1", 1.0, LINE)  # f = O: not robust at 1, 2
    assert set(honest.case[~honest.robust]) == {"not_robust"} and honest.holds


# ------------------------------------------------------------------ ceiling boundaries

#: Relative step just above a boundary radius (far above the closed ball's 1e-12 slack).
STEP = 1e-9


def _finite_boundaries(fam, norm):
    """Every distinct margin of the support, with P_D[r_O > eps] from brute-force margins."""
    pts, labels = fam.points, fam.labels
    metric = {"l0": "hamming", "l1": "cityblock", "l2": "euclidean", "linf": "chebyshev"}
    dist = cdist(pts, pts, metric[norm]) * (pts.shape[1] if norm == "l0" else 1.0)
    other = (labels[None, :] != labels[:, None]) & (labels[None, :] != REJECT)
    margins = np.where(other, dist, np.inf).min(axis=1)
    live = fam.probs > 0
    atoms = np.unique(margins[live])
    return [(float(m), float(fam.probs[live & (margins > m * (1 + 1e-9))].sum()))
            for m in atoms]


def boundary_cases(fam, norm) -> list[tuple[float, float]]:
    """``(eps, P_D[r_O(x) > eps])`` at radii equal to margins, computed here by hand."""
    g = fam.good_radius(norm).value
    if fam.name == "finite-domain":
        return _finite_boundaries(fam, norm)
    if fam.name == "spheres":  # sphere k has the constant l2 margin m_k
        cm = fam.class_margins_l2()
        return [(float(m), float(fam.priors[cm > m].sum())) for m in np.unique(cm)]
    if norm == "l0":  # linear oracles: every l0 margin is 1
        assert fam.name in ("overly-robust", "linear-gaussian", "tsipras") and g == 1.0
        return [(1.0, 0.0), (2.0, 0.0)]
    if fam.name == "overly-robust":  # |x1| ~ U[a, b]
        return [(fam.a, 1.0), (fam.b, 0.0)]
    assert fam.name in ("linear-gaussian", "tsipras") and g == 0.0  # Gaussian scores
    return [(0.0, 1.0)]


CEILINGS = [(name, norm) for name in sorted(FAMILIES)
            for norm in getattr(get_family(name), "ceiling_norms", ())]


def test_every_registered_family_with_a_ceiling_has_boundary_cases():
    with_ceiling = {name for name, _ in CEILINGS}
    assert with_ceiling == set(FAMILIES) - {"glyph-digits"}  # glyphs: no closed form


@pytest.mark.parametrize("name, norm", CEILINGS)
def test_ceiling_at_eps_equal_to_a_margin(name, norm):
    """Mutations: l0 ceilings with ``eps <= 1``, the spheres ceiling with ``>=``. At a
    radius equal to a margin the ceiling counts only margins strictly above it, so it
    equals its limit from above and the by-hand value ``P_D[r_O > eps]``."""
    fam = get_family(name)
    cases = boundary_cases(fam, norm)
    eps = np.array([e for e, _ in cases])
    expected = np.array([p for _, p in cases])
    at = fam.ceiling_curve(eps, norm)
    above = fam.ceiling_curve(eps + STEP * (1 + eps), norm)
    np.testing.assert_allclose(at, expected, atol=1e-9, err_msg=f"{name} {norm} at margins")
    np.testing.assert_allclose(at, above, atol=1e-6, err_msg=f"{name} {norm} just above")
    assert fam.ceiling(float(eps[0]), norm).value == pytest.approx(expected[0], abs=1e-9)


SYMBOLIC = [(n, m) for n, m in CEILINGS
            if (n in ("overly-robust", "linear-gaussian", "tsipras") and m != "l0")
            or (n, m) == ("spheres", "l2")]


@pytest.mark.parametrize("name, norm", SYMBOLIC)
def test_symbolic_ceiling_at_eps_equal_to_a_margin(name, norm):
    fam = get_family(name)
    eps = np.array([e for e, _ in boundary_cases(fam, norm)])
    np.testing.assert_allclose(family_ceiling(fam, norm)(eps), fam.ceiling_curve(eps, norm),
                               atol=1e-9)


# ------------------------------------------------------------------ the family contract


def _with_good_radius(fam, norm, value):
    """``fam`` with the good radius under ``norm`` replaced by ``value``."""
    honest = fam.good_radius

    def good_radius(n):
        return exact(value, "wrong on purpose") if n == norm else honest(n)

    fam.good_radius = good_radius
    return fam


GOOD_RADII = [(name, norm) for name in sorted(FAMILIES) for norm in get_family(name).norms]


@pytest.mark.parametrize("name, norm", GOOD_RADII)
def test_the_contract_refuses_a_wrong_good_radius(name, norm):
    """A good radius of 0 where margins are bounded away from 0 fails attainment; one
    above the least margin fails soundness (for every registered family and norm)."""
    g = get_family(name).good_radius(norm).value
    if g > 0:
        res = check_family(_with_good_radius(get_family(name), norm, 0.0))
        assert any(f"{norm}: " in f and "attain" in f for f in res.failures), res.failures
    X, _ = get_family(name).sample(4000, seed=0)
    median = float(np.median(get_family(name).margin(X, norm)))
    res = check_family(_with_good_radius(get_family(name), norm, max(median, 2 * g)))
    assert any(f"{norm}: " in f and "soundness" in f for f in res.failures), res.failures


# ------------------------------------------------------------------ glyph l0: switch-off


def saturated(fam: GlyphDigits, digits) -> np.ndarray:
    """Glyphs at full ink on a blank background: every segment pixel is 0 or 1."""
    digits = np.asarray(digits)
    zeros = np.zeros((digits.size, fam.n_features), dtype=int)
    return fam.render(digits, np.full(digits.size, fam.levels), zeros, zeros)


def test_glyph_l0_on_saturated_digits_by_hand():
    """Mutation: switch-off non-strict. A saturated segment of n pixels holds n units of ink
    against a threshold of n/2: removing n/2 pixels leaves it exactly at the threshold --
    still on -- so switching it off takes n/2 + 1 pixels (switching on takes n/2)."""
    fam = GlyphDigits()  # segments: a, d, g of 8 pixels; b, c, e, f of 6
    four = saturated(fam, [4])  # bcfg; nearest: 9 (+a +d: 4 + 4) or 1 (-f -g: 4 + 5)
    assert fam.oracle(four).tolist() == [4]
    costs = fam.flip_costs(four, "l0")[0]
    on = DIGIT_CODES[4]
    np.testing.assert_array_equal(costs[on], fam.segment_sizes[on] // 2 + 1)
    np.testing.assert_array_equal(costs[~on], fam.segment_sizes[~on] // 2)
    assert fam.margin(four, "l0")[0] == 8.0
    eight = saturated(fam, [8])  # one segment off: e (6 pixels) -> 9 at 4 pixels
    assert fam.margin(eight, "l0")[0] == 4.0


@pytest.mark.parametrize("fam", [GlyphDigits(9, 6, 1), GlyphDigits()],
                         ids=["two-pixel-segments", "default"])
@pytest.mark.parametrize("digit", range(10))
def test_glyph_l0_flip_costs_are_what_the_oracle_sees(fam, digit):
    """Per segment, two-sided and through the oracle: the ``c - 1`` pixels that can move
    the most ink, moved to the extreme, leave the segment as it is (no ``c - 1`` pixels
    can move more); ``c`` pixels flip it."""
    for x in (saturated(fam, [digit]), fam.faintest([digit])):
        state = fam.segment_state(x)[0]
        costs = fam.flip_costs(x, "l0")[0]
        for s, ix in enumerate(fam.segment_index):
            caps = np.where(state[s], x[0, ix], 1.0 - x[0, ix])
            order = ix[np.argsort(-caps, kind="stable")]
            c = int(costs[s])
            for k, flips in ((c - 1, False), (c, True)):
                z = x.copy()
                z[0, order[:k]] = 0.0 if state[s] else 1.0
                got = fam.segment_state(z)[0, s] != state[s]
                assert got == flips, (digit, SEGMENTS[s], k, c)


def _binary_patterns(fam: GlyphDigits) -> tuple[np.ndarray, np.ndarray]:
    """Every assignment of 0/1 to the segment pixels (background 0) and its label."""
    pix = np.concatenate(fam.segment_index)
    bits = (np.arange(2 ** pix.size)[:, None] >> np.arange(pix.size)) & 1
    images = np.zeros((bits.shape[0], fam.n_features))
    images[:, pix] = bits
    return images, fam.oracle(images)


def test_glyph_l0_margins_of_binary_images_equal_hamming_enumeration():
    """For an image with segment pixels in {0, 1} the l0 margin is the least Hamming
    distance to a binary image of another class (changed pixels may be taken in {0, 1});
    2^14 patterns of the two-pixel-segment canvas enumerate them all."""
    fam = GlyphDigits(9, 6, 1)
    images, labels = _binary_patterns(fam)
    rng = np.random.default_rng(0)
    rows = np.concatenate([[0, images.shape[0] - 1], rng.choice(images.shape[0], 60, False)])
    pix = np.concatenate(fam.segment_index)
    X = np.vstack([images[rows], saturated(fam, np.arange(10))])
    ham = cdist(X[:, pix], images[:, pix], "cityblock")
    label = fam.oracle(X)
    other = (labels[None, :] != label[:, None]) & (labels[None, :] != REJECT)
    np.testing.assert_array_equal(fam.margin(X, "l0"), np.where(other, ham, np.inf).min(1))


# ------------------------------------------------------------------ glyph l2: combination

TINY = GlyphDigits(7, 6, 1, levels=4)


def test_glyph_l2_margin_of_the_blank_image_by_hand():
    """Mutation: l2 flips summed. The blank image needs two segments switched on to be
    any digit (b and c make a 1, 12 pixels): each pixel gains 1/2 at least cost,
    ``r = sqrt(12 / 4) = sqrt(3)``; summing the two segments' costs would give
    ``2 sqrt(6 / 4) = sqrt(6)``."""
    fam = GlyphDigits()
    blank = np.zeros((1, fam.n_features))
    assert fam.oracle(blank).tolist() == [REJECT]
    assert fam.margin(blank, "l2")[0] == pytest.approx(np.sqrt(3.0), rel=1e-12)
    four = saturated(fam, [4])  # to a 1: f and g off, 6 and 8 pixels losing 1/2 each
    assert fam.margin(four, "l2")[0] == pytest.approx(np.sqrt(14 / 4), rel=1e-12)


@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
def test_glyph_margins_of_multi_flip_images_equal_the_solver(norm):
    """Deterministic inputs, most of whose targets need two or more segment flips (the
    blank image, saturated and faintest 4s, a quarter-inked canvas), against the LP/QP
    solver."""
    half = np.full((1, TINY.n_features), 0.25)
    X = np.vstack([np.zeros((1, TINY.n_features)), saturated(TINY, [4, 1]),
                   TINY.faintest([4, 7]), half])
    C.check_margins(TINY, X, norm)

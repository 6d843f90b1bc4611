"""GlyphDigits: layout, decoding, sampling, and the exact good radius (exhaustive support)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invariance_tradeoffs.theory.oracles import REJECT
from invariance_tradeoffs.theory.toys import GlyphDigits
from invariance_tradeoffs.theory.toys.glyphs import (
    DIGIT_CODES,
    DIGIT_SEGMENTS,
    decode_segments,
    segment_masks,
)
from proofs import checks_closed_forms as C  # noqa: E402


def test_seven_segment_table_is_injective_and_decodes():
    codes = {tuple(row) for row in DIGIT_CODES}
    assert len(codes) == 10
    np.testing.assert_array_equal(decode_segments(DIGIT_CODES), np.arange(10))
    assert DIGIT_SEGMENTS[1] == "bc" and DIGIT_SEGMENTS[8] == "abcdefg"
    # 128 on-sets: 10 digits, 118 rejected.
    all_sets = np.array([[(i >> s) & 1 for s in range(7)] for i in range(128)], dtype=bool)
    out = decode_segments(all_sets)
    assert np.sum(out != REJECT) == 10 and np.sum(out == REJECT) == 118


@settings(max_examples=30, deadline=None)
@given(h=st.integers(7, 20), w=st.integers(5, 14), t=st.integers(1, 3))
def test_segments_are_disjoint_nonempty_and_avoid_corners(h, w, t):
    try:
        seg, corners = segment_masks(h, w, t)
    except ValueError as exc:
        assert "too small" in str(exc)
        return
    assert seg.shape == (7, h, w) and np.all(seg.sum(axis=(1, 2)) > 0)
    assert seg.sum(axis=0).max() == 1, "segments must be disjoint"
    assert not np.any(seg.any(axis=0) & corners.any(axis=0))
    assert not seg[:, 0, :].any() and not seg[:, :, -1].any()  # one-pixel frame


def test_samples_decode_to_their_drawn_digit_and_are_quantised():
    fam = GlyphDigits()
    X, y = fam.sample(500, seed=0)
    assert set(np.unique(y)) == set(range(10))
    np.testing.assert_allclose(X * fam.levels, np.round(X * fam.levels), atol=1e-9)
    assert X.min() >= 0 and X.max() <= 1
    means = fam.segment_sums(X) / fam.segment_sizes
    lit = DIGIT_CODES[y]
    assert np.all(means[lit] >= (fam._ink_lo - fam._jit) / fam.levels - 1e-12)
    assert np.all(means[~lit] <= fam._jit / fam.levels + 1e-12)
    assert fam.to_images(X).shape == (500, 14, 10) and fam.image_shape == (14, 10)


def test_background_pixels_never_change_the_label():
    fam = GlyphDigits()
    X, y = fam.sample(50, seed=1)
    seg = np.zeros(fam.n_features, dtype=bool)
    seg[np.concatenate(fam.segment_index)] = True
    noisy = X.copy()
    noisy[:, ~seg] = np.random.default_rng(0).uniform(size=(50, int((~seg).sum())))
    np.testing.assert_array_equal(fam.oracle(noisy), y)
    for norm in fam.norms:
        np.testing.assert_allclose(fam.margin(noisy, norm), fam.margin(X, norm))


def test_faintest_images_are_samples_and_have_the_least_margins():
    fam = GlyphDigits()
    worst = fam.faintest()
    np.testing.assert_array_equal(fam.oracle(worst), np.arange(10))
    X, y = fam.sample(3000, seed=4)
    for norm in fam.norms:
        floor = fam.margin(worst, norm)
        assert np.all(fam.margin(X, norm) >= floor[y] - 1e-12)


def test_default_good_radii_are_what_the_geometry_says():
    fam = GlyphDigits()
    v = (fam._ink_lo - fam._jit) / fam.levels  # faintest stroke pixel: 0.65
    # Cheapest label change: switch off one 6-pixel vertical segment (e.g. 8 -> 9).
    assert fam.good_radius("linf").value == pytest.approx(v - 0.5)
    assert fam.good_radius("l1").value == pytest.approx(6 * (v - 0.5))
    assert fam.good_radius("l2").value == pytest.approx(np.sqrt(6) * (v - 0.5))
    # l0: k pixels set to 0 remove k v > 6 (v - 0.5) ink: k = 2.
    assert fam.good_radius("l0").value == 2.0


@pytest.mark.parametrize("params", [dict(levels=6, ink_low=0.8, jitter=0.2),
                                    dict(levels=4, ink_low=1.0, jitter=0.25),
                                    dict(levels=10, ink_low=0.9, jitter=0.1, threshold=0.6)])
def test_good_radius_equals_minimum_over_the_enumerated_support(params):
    fam = GlyphDigits(7, 5, 1, **params)
    for norm in fam.norms:
        C.check_good_radius_finite_support(fam, norm)


def test_support_check_fails_for_the_brightest_image():
    fam = GlyphDigits(7, 5, 1, levels=6, ink_low=0.8, jitter=0.2)
    brightest = fam.render(np.arange(10), np.full(10, fam.levels),
                           np.zeros((10, fam.n_features), int), np.zeros((10, fam.n_features), int))
    wrong = float(fam.margin(brightest, "linf").min())
    with pytest.raises(AssertionError, match="claimed good radius"):
        C.check_good_radius_finite_support(fam, "linf", good_radius=wrong)


def test_flip_costs_of_a_single_segment():
    fam = GlyphDigits()
    x = fam.faintest([8])
    costs = fam.flip_costs(x, "linf")[0]
    v = (fam._ink_lo - fam._jit) / fam.levels
    np.testing.assert_allclose(costs, v - 0.5)  # every segment of an 8 is lit
    x1 = fam.faintest([1])
    c1 = fam.flip_costs(x1, "l1")[0]
    off = ~DIGIT_CODES[1]
    u = fam._jit / fam.levels
    np.testing.assert_allclose(c1[off], (0.5 - u) * fam.segment_sizes[off])

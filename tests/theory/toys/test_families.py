"""Properties every toy family shares: registry, sampling, labels, margins, good radii, ceilings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invariance_tradeoffs.theory.oracles import REJECT
from invariance_tradeoffs.theory.strategies import family_instances, radii
from invariance_tradeoffs.theory.toys import FAMILIES, ToyFamily, family_defaults, get_family
from proofs import checks_closed_forms as C  # noqa: E402

NAMES = list(FAMILIES)


@pytest.fixture(scope="module", params=NAMES)
def family(request) -> ToyFamily:
    return get_family(request.param)


def test_registry_builds_every_family_with_defaults(family):
    assert isinstance(family, ToyFamily)
    assert set(family.ceiling_norms) <= set(family.norms)
    info = family.describe()
    assert info["family"] == family.name and info["exact_margin_norms"] == list(family.norms)


def test_get_family_accepts_underscores_and_overrides():
    fam = get_family("overly_robust", a=0.3, b=0.9)
    assert (fam.a, fam.b) == (0.3, 0.9)


@pytest.mark.parametrize("bad, match", [("nope", "unknown family 'nope'"),
                                        (3, "family must be a string")])
def test_get_family_rejects_unknown_names(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        get_family(bad)


def test_get_family_names_unknown_parameter():
    with pytest.raises(ValueError, match="unknown parameter.*bogus.*spheres"):
        get_family("spheres", bogus=1)


def test_family_defaults_match_params(family):
    defaults = family_defaults(family.name)
    assert set(family.params()) <= set(defaults) | {"n_points", "n_classes"}


def test_sampler_is_reproducible_and_seed_sensitive(family):
    X1, y1 = family.sample(50, seed=7)
    X2, y2 = family.sample(50, seed=7)
    X3, _ = family.sample(50, seed=8)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, X3)
    gen = family.sample(50, seed=np.random.default_rng(7))[0]
    np.testing.assert_array_equal(gen, X1)


def test_sample_shapes_and_labels(family):
    X, y = family.sample(200, seed=0)
    assert X.shape == (200, family.n_features) and y.shape == (200,)
    assert np.all((y >= 0) & (y < family.n_classes)), "D lives on inputs with a class"
    np.testing.assert_array_equal(family.oracle(X), y)
    np.testing.assert_array_equal(family(X), y)  # the family is itself an oracle


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_sample_rejects_bad_n(family, n):
    with pytest.raises((ValueError, TypeError), match="n must"):
        family.sample(n)


def test_sample_rejects_bad_seed(family):
    with pytest.raises(TypeError, match="seed"):
        family.sample(5, seed="x")
    with pytest.raises(ValueError, match="seed"):
        family.sample(5, seed=-1)


def test_margins_nonnegative_finite_and_good_radius_is_lower_bound(family):
    X, _ = family.sample(300, seed=1)
    for norm in family.norms:
        m = family.margin(X, norm)
        assert m.shape == (300,) and np.all(m >= 0) and np.all(np.isfinite(m))
        q = family.good_radius(norm)
        assert q.kind == "exact" and q.value >= 0
        assert np.all(m >= q.value - 1e-9), f"{family.name} {norm}: margin below good radius"
        if norm == "l0":
            assert np.all(m >= 1) and np.all(m == np.round(m))


def test_unknown_norm_is_named(family):
    X, _ = family.sample(3)
    with pytest.raises(ValueError, match="norm 'l7'.*" + family.name):
        family.margin(X, "l7")
    with pytest.raises(ValueError, match="norm 'cosine'"):
        family.good_radius("cosine")


def test_margin_validates_batch(family):
    with pytest.raises(ValueError, match="X must have"):
        family.margin(np.zeros((2, family.n_features + 1)), family.norms[0])
    with pytest.raises(ValueError, match="X must be 2-D"):
        family.margin(np.zeros(family.n_features), family.norms[0])


def test_ceiling_curve_shape_monotone_and_bounds(family):
    grid = np.linspace(0, 3, 31)
    for norm in family.ceiling_norms:
        c = family.ceiling_curve(grid, norm)
        assert c.shape == grid.shape and np.all((c >= 0) & (c <= 1))
        assert np.all(np.diff(c) <= 1e-12), "P[r > eps] is non-increasing in eps"
        gr = family.good_radius(norm).value
        below = grid[grid < gr]
        np.testing.assert_allclose(family.ceiling_curve(below, norm), 1.0, atol=1e-12)
        q = family.ceiling(0.2, norm)
        assert q.kind == "exact" and q.value == pytest.approx(c[2])


def test_ceiling_without_closed_form_raises_and_estimate_works():
    fam = get_family("glyph-digits")
    with pytest.raises(ValueError, match="no exact ceiling curve.*ceiling_estimate"):
        fam.ceiling_curve(np.array([0.1]), "linf")
    q = fam.ceiling_estimate(0.1, "linf", n=500, seed=0)
    assert q.kind == "estimate" and q.low <= q.value <= q.high
    # Every sample has linf margin >= the good radius 0.15 > 0.1.
    assert q.value == 1.0


@pytest.mark.parametrize("bad", [np.array([[0.1]]), np.array([-0.1]), np.array([np.nan]),
                                 np.array(["a"])])
def test_ceiling_curve_validates_grid(bad):
    with pytest.raises((ValueError, TypeError), match="eps"):
        get_family("overly-robust").ceiling_curve(bad, "l2")


def test_ceilings_agree_with_monte_carlo(family):
    for norm in family.ceiling_norms:
        C.check_ceiling_monte_carlo(family, norm, (0.05, 0.3, 0.9, 1.5), n=4000, seed=3)


def test_monte_carlo_check_rejects_a_wrong_ceiling():
    from invariance_tradeoffs.theory.toys.common import abs_normal_mixture_tail

    fam = get_family("linear-gaussian")

    def wrong(eps):
        # Wrong: ||w||_p instead of the dual norm (||w||_inf instead of ||w||_1 for linf).
        return abs_normal_mixture_tail(eps * np.abs(fam.w).max(), *fam.score_components())

    with pytest.raises(AssertionError, match="outside"):
        C.check_ceiling_monte_carlo(fam, "linf", (0.5, 1.0), ceiling_fn=wrong, n=4000)


@settings(max_examples=25, deadline=None)
@given(fam=family_instances(["overly-robust", "linear-gaussian", "spheres", "tsipras"]),
       seed=st.integers(0, 2**31 - 1), eps=radii(max_value=2.0))
def test_ceiling_estimate_interval_contains_closed_form(fam, seed, eps):
    for norm in fam.ceiling_norms:
        q = fam.ceiling_estimate(eps, norm, n=400, seed=seed, confidence=0.9999)
        assert q.low - 1e-12 <= fam.ceiling(eps, norm).value <= q.high + 1e-12


BAD_PARAMS = [
    ("overly-robust", {"a": 0.0}, "a must be >"),
    ("overly-robust", {"a": 0.5, "b": 0.4}, "b must be >"),
    ("overly-robust", {"c": 0.1}, "c must be >"),
    ("overly-robust", {"prior": 1.0}, "prior must be <"),
    ("linear-gaussian", {"d": 0}, "d must be an integer in \\[1, 1000000\\]"),
    # a typo such as d=10**11 is refused before any allocation (745 GiB otherwise)
    ("linear-gaussian", {"d": 10**11}, "d must be an integer in \\[1, 1000000\\]"),
    ("spheres", {"d": 10**7}, "d must be an integer in"),
    ("tsipras", {"d": 10**7}, "d must be an integer in"),
    ("linear-gaussian", {"sigma": 0.0}, "sigma must be >"),
    ("linear-gaussian", {"m": -1.0}, "m must be >="),
    ("linear-gaussian", {"w": [0.0, 0.0]}, "w must not be all zero"),
    ("linear-gaussian", {"w": [1.0, 2.0, 3.0]}, "w must be a 1-D vector of length 2"),
    ("linear-gaussian", {"b": float("nan")}, "b must be finite"),
    ("spheres", {"radii": [2.0, 1.0]}, "radii must be finite, >= 0 and strictly increasing"),
    ("spheres", {"radii": [1.0]}, "radii must list at least two"),
    ("spheres", {"priors": [0.2, 0.2]}, "priors must sum to 1"),
    ("spheres", {"d": 2.0}, "d must be an integer"),
    ("tsipras", {"p": 0.5}, "p must be >"),
    ("tsipras", {"eta": 0.0}, "eta must be >"),
    ("glyph-digits", {"thickness": 4}, "width=10 too small for thickness=4"),
    ("glyph-digits", {"height": 8}, "height=8 too small"),
    ("glyph-digits", {"ink_low": 0.55}, "ink_low - jitter must exceed threshold"),
    ("glyph-digits", {"jitter": 0.35, "threshold": 0.3}, "jitter must be below threshold"),
    ("glyph-digits", {"threshold": 1.0}, "threshold must be <"),
    ("finite-domain", {"rule": "parity"}, "unknown rule 'parity'"),
    ("finite-domain", {"height": 5, "width": 4}, "height \\* width must be <= 16"),
    ("finite-domain", {"beta": -1.0}, "beta must be >="),
]


@pytest.mark.parametrize("name, params, match", BAD_PARAMS)
def test_bad_parameters_are_named(name, params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        get_family(name, **params)


def test_samples_too_large_for_memory_are_refused_up_front():
    fam = get_family("linear-gaussian", d=1000)
    with pytest.raises(ValueError, match="exceed the 200,000,000 floats"):
        fam.sample(10**6)
    assert fam.sample(10, seed=0)[0].shape == (10, 1000)


def test_reject_label_is_never_sampled_for_finite_domain():
    fam = get_family("finite-domain", rule="majority", height=2, width=2)
    assert np.any(fam.labels == REJECT)
    _, y = fam.sample(500, seed=0)
    assert not np.any(y == REJECT)

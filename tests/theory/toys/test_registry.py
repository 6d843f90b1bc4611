"""The family registry and its contract check (scikit-learn's ``check_estimator`` in spirit)."""

from __future__ import annotations

import numpy as np
import pytest

from invariance_tradeoffs.theory.results import exact
from invariance_tradeoffs.theory.toys import (
    FAMILIES,
    OverlyRobustFeature,
    ToyBase,
    check_family,
    get_family,
    register_family,
    unregister_family,
)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_builtin_family_keeps_the_contract(name):
    res = check_family(name)
    assert res.passed, res.failures
    assert len(res.checks) >= 10


class _ZeroGoodRadius(OverlyRobustFeature):
    """A broken family: claims a good radius of 0 although every margin is >= a."""

    def _good_radius(self, norm):
        return exact(0.0, "wrong on purpose")


class _ClosedCeiling(OverlyRobustFeature):
    """A broken family: its ceiling counts margins >= eps instead of > eps (wrong at the
    boundary eps = a, where P[|x1| >= a] = 1 but P[|x1| > a] = 1 too -- so also shift it)."""

    def _ceiling(self, eps, norm):
        return np.clip((self.b - eps) / (self.b - self.a) + 0.2, 0.0, 1.0)


class _OpenMargins(OverlyRobustFeature):
    """A broken family: margins below the claimed good radius."""

    def _margin(self, X, norm):
        return 0.5 * super()._margin(X, norm)


@pytest.mark.parametrize("broken, failure", [
    (_ZeroGoodRadius(), "attainment"),
    (_ClosedCeiling(), "ceiling at eps"),
    (_OpenMargins(), "soundness"),
])
def test_the_check_catches_broken_families(broken, failure):
    res = check_family(broken)
    assert not res.passed and any(failure in f for f in res.failures), res.failures
    with pytest.raises(AssertionError, match=failure):
        check_family(broken, raise_on_failure=True)


class Halves(ToyBase):
    """x ~ U[-1, 1], O(x) = [x > 0]: margin |x|, good radius 0, ceiling 1 - eps."""

    name, n_features, n_classes = "halves", 1, 2
    norms = ceiling_norms = ("l1", "l2", "linf")

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def params(self):
        return {"scale": self.scale}

    def _draw(self, n, rng):
        return rng.uniform(-self.scale, self.scale, (n, 1))

    def _oracle(self, X):
        return (X[:, 0] > 0).astype(np.int64)

    def _margin(self, X, norm):
        return np.abs(X[:, 0])

    def _good_radius(self, norm):
        return exact(0.0, "ess inf of |x|")

    def _ceiling(self, eps, norm):
        return np.clip(1.0 - eps / self.scale, 0.0, 1.0)


def test_register_a_new_family():
    register_family("halves", Halves)
    try:
        assert "halves" in FAMILIES
        fam = get_family("halves", scale=2.0)
        assert fam.params() == {"scale": 2.0}
        assert check_family("halves").passed
        with pytest.raises(ValueError, match="already registered"):
            register_family("halves", Halves)
        register_family("halves", Halves, replace=True)
    finally:
        unregister_family("halves")
    assert "halves" not in FAMILIES
    with pytest.raises(ValueError, match="unknown family"):
        get_family("halves")


def test_register_refuses_bad_factories():
    with pytest.raises(TypeError, match="callable"):
        register_family("x", 3)
    with pytest.raises(ValueError, match="needs a default"):
        register_family("needs-arg", lambda d: Halves())
    with pytest.raises(ValueError, match="family name"):
        register_family("bad name!", Halves)
    with pytest.raises(ValueError, match="unknown family"):
        unregister_family("never-registered")

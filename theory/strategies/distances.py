"""Distances: lp (including the l0 count), weighted lp, Mahalanobis, transformation-invariant
(cyclic shifts) and the classifier-induced d_f of the theorem.

Parameters are small integers or simple fractions, so that distances on grid points are
exact or nearly so and a shrunk counterexample prints short numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from invariance_tradeoffs.theory.distances import (
    ClassifierInducedDistance,
    Distance,
    LpDistance,
    MahalanobisDistance,
    TransformInvariantDistance,
    WeightedLpDistance,
    cyclic_shifts,
)
from invariance_tradeoffs.theory.strategies.arguments import (
    check_choice,
    check_norms,
    check_radius_range,
    check_strategy,
)
from invariance_tradeoffs.theory.strategies.classifiers import linear_classifiers
from invariance_tradeoffs.theory.strategies.finite_world import printed_as_built
from invariance_tradeoffs.theory.validation import check_int

__all__ = [
    "DISTANCE_KINDS",
    "lp_distances",
    "weighted_lp_distances",
    "mahalanobis_distances",
    "transform_invariant_distances",
    "classifier_induced_distances",
    "distances",
]

#: What :func:`distances` can draw, in shrinking order.
DISTANCE_KINDS = ("lp", "weighted-lp", "mahalanobis", "shift-invariant", "classifier-induced")


def lp_distances(norms: Sequence[str] = ("l1", "l2", "linf", "l0")
                 ) -> SearchStrategy[LpDistance]:
    """lp distances named in ``norms`` (shrinks towards the first).

    Examples
    --------
    >>> from hypothesis import find
    >>> find(lp_distances(), lambda d: d.p == 0)
    LpDistance(l0)
    >>> lp_distances(["l2", "taxicab"])
    Traceback (most recent call last):
    ...
    ValueError: norms: unknown norm 'taxicab'; expected one of ('l0', 'l1', 'l2', 'linf')
    """
    return st.sampled_from([LpDistance(n) for n in check_norms(norms)])


def weighted_lp_distances(n_features: int, *, norms: Sequence[str] = ("l1", "l2", "linf"),
                          max_weight: float = 4.0) -> SearchStrategy[WeightedLpDistance]:
    """Weighted lp distances with weights in ``{1/4, 1/2, ..., max_weight}`` (shrinks to 1/4).

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(weighted_lp_distances(3))
    ... def test(d):
    ...     assert d.weights.shape == (3,) and d.weights.min() > 0
    >>> test()
    """
    d = check_int(n_features, "n_features", low=1)
    names = check_norms(norms)
    if "l0" in names:
        raise ValueError("norms: weighted l0 is not a distance of the package; use p >= 1")
    _, top = check_radius_range(0.25, max_weight, "1/4 (the least weight)", "max_weight")
    steps = st.integers(1, int(top * 4))
    return st.builds(lambda w, p: WeightedLpDistance(np.array(w) / 4, p),
                     st.lists(steps, min_size=d, max_size=d), st.sampled_from(names))


def mahalanobis_distances(n_features: int, *, max_entry: int = 2
                          ) -> SearchStrategy[MahalanobisDistance]:
    """Mahalanobis distances with matrix ``A A^T + I`` (``A`` with integer entries in
    ``[-max_entry, max_entry]``), given as a covariance or as a precision matrix.

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(mahalanobis_distances(2))
    ... def test(d):
    ...     assert np.all(np.linalg.eigvalsh(d.precision) > 0)
    >>> test()
    """
    d = check_int(n_features, "n_features", low=1)
    m = check_int(max_entry, "max_entry", low=0)
    spd = st.lists(st.integers(-m, m), min_size=d * d, max_size=d * d).map(
        lambda v: np.array(v, dtype=float).reshape(d, d) @ np.array(v, dtype=float).reshape(
            d, d).T + np.eye(d))
    return st.builds(lambda mat, as_precision: MahalanobisDistance(
        precision=mat) if as_precision else MahalanobisDistance(cov=mat), spd, st.booleans())


def transform_invariant_distances(shape: tuple[int, int], *,
                                  base: SearchStrategy[Distance] | None = None,
                                  max_shift: int | None = None
                                  ) -> SearchStrategy[TransformInvariantDistance]:
    """``min_t d(x, t(x'))`` over the cyclic shifts of ``h x w`` images (flattened) by up to
    ``max_shift`` (all shifts, a group, when ``None``); ``base`` defaults to lp distances.

    Examples
    --------
    >>> from hypothesis import given
    >>> x = np.array([[1.0, 0, 0, 0]])
    >>> @given(transform_invariant_distances((2, 2)))
    ... def test(d):  # a shifted image is at distance 0
    ...     assert d(x, np.roll(x, 1))[0] == 0 and d.is_metric
    >>> test()
    """
    h, w = (check_int(s, "shape", low=1) for s in shape)
    if max_shift is not None:
        check_int(max_shift, "max_shift", low=0)
    bases = lp_distances() if base is None else check_strategy(base, "base")
    shifts = cyclic_shifts((h, w), max_shift)
    return printed_as_built(bases, lambda d: TransformInvariantDistance(
        d, shifts, name=f"{d.name}-shift-invariant({h}x{w})"))


def classifier_induced_distances(base: SearchStrategy[Distance], classifier: SearchStrategy[Any],
                                 *, min_lam: float = 0.5, max_lam: float = 4.0
                                 ) -> SearchStrategy[ClassifierInducedDistance]:
    """The theorem's ``d_f(x, x') = d(x, x') + lam [f(x) != f(x')]`` with ``d`` from
    ``base``, ``f`` from ``classifier`` and ``lam`` a multiple of 1/2 in
    ``[min_lam, max_lam]`` (``min_lam > 0``).

    Examples
    --------
    >>> from hypothesis import given
    >>> from invariance_tradeoffs.theory.strategies.classifiers import linear_classifiers
    >>> @given(classifier_induced_distances(lp_distances(), linear_classifiers(2)))
    ... def test(d):
    ...     assert d.lam >= 0.5
    >>> test()
    """
    lo, hi = check_radius_range(min_lam, max_lam, "min_lam", "max_lam")
    if lo <= 0:
        raise ValueError(f"min_lam must be > 0, got {lo:g}")
    k_lo, k_hi = int(np.ceil(lo * 2)), int(np.floor(hi * 2))
    lams = (st.integers(k_lo, k_hi).map(lambda k: k / 2) if k_lo <= k_hi
            else st.floats(lo, hi))
    return st.builds(ClassifierInducedDistance, check_strategy(base, "base"),
                     check_strategy(classifier, "classifier"), lams)


def distances(n_features: int, *, kinds: Sequence[str] = DISTANCE_KINDS,
              norms: Sequence[str] = ("l1", "l2", "linf", "l0")) -> SearchStrategy[Distance]:
    """Any distance of the package on ``n_features``-dimensional inputs (shift-invariant:
    all cyclic shifts of 1-D signals; classifier-induced: over an lp base and a linear
    classifier). Shrinks towards the first kind, lp.

    Examples
    --------
    >>> from hypothesis import given
    >>> from invariance_tradeoffs.theory.theorem import check_metric_axioms_exhaustive
    >>> pts = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 1.0]])
    >>> @given(distances(2))
    ... def test(d):
    ...     assert check_metric_axioms_exhaustive(d, pts, allow_pseudo=True).holds
    >>> test()
    """
    n = check_int(n_features, "n_features", low=1)
    if isinstance(kinds, str) or not kinds:
        raise ValueError(f"kinds must be a non-empty sequence of {DISTANCE_KINDS}, got {kinds!r}")
    lp = lp_distances(norms)
    make = {
        "lp": lambda: lp,
        "weighted-lp": lambda: weighted_lp_distances(n),
        "mahalanobis": lambda: mahalanobis_distances(n),
        "shift-invariant": lambda: transform_invariant_distances((1, n), base=lp),
        "classifier-induced": lambda: classifier_induced_distances(lp, linear_classifiers(n)),
    }
    return st.one_of([make[check_choice(k, "kinds", DISTANCE_KINDS)]() for k in kinds])

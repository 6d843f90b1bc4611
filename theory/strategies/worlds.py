"""Finite worlds (points, metric, oracle with REJECT, D), the toy family they make, and
scenarios (a world, a classifier, a radius) -- the inputs of most claims of the theory."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from invariance_tradeoffs.theory.oracles import REJECT
from invariance_tradeoffs.theory.strategies.arguments import (
    check_choice,
    check_size_range,
    check_strategy,
)
from invariance_tradeoffs.theory.strategies.classifiers import classifiers, label_lists
from invariance_tradeoffs.theory.strategies.distances import lp_distances
from invariance_tradeoffs.theory.strategies.domains import SMALL_GRID, grid_points, kept
from invariance_tradeoffs.theory.strategies.finite_world import (
    FiniteWorld,
    Scenario,
    printed_as_built,
)
from invariance_tradeoffs.theory.strategies.oracles import region_oracles, support_weights
from invariance_tradeoffs.theory.strategies.radii import radii as radii_of
from invariance_tradeoffs.theory.toys.finite import FiniteDomain

__all__ = ["finite_worlds", "finite_domains", "scenarios", "two_classes"]

#: How :func:`finite_worlds` may label its points.
ORACLE_KINDS = ("regions", "table")

DistanceSource = SearchStrategy | Callable[[int], SearchStrategy] | None


def _distance_strategy(distances: DistanceSource) -> Callable[[int], SearchStrategy]:
    if distances is None:
        lp = lp_distances()
        return lambda d: lp
    if isinstance(distances, SearchStrategy):
        return lambda d: distances
    if callable(distances):
        return lambda d: check_strategy(distances(d), "distances(n_features)")
    raise TypeError("distances must be a strategy, a function n_features -> strategy, or "
                    f"None, got {type(distances).__name__}")


def two_classes(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``labels`` with the last classed point moved to the next class when every classed
    point has the same one (and there are two): a world of one class has no finite margin
    and no claim of the theory bites on it, yet Hypothesis, which likes repeated values,
    draws such label lists often. Shrinking then ends at ``[0, ..., 0, 1]``.

    Examples
    --------
    >>> two_classes(np.array([0, REJECT, 0]), 2).tolist()
    [0, -1, 1]
    """
    classed = np.flatnonzero(labels != REJECT)
    if classed.size >= 2 and np.all(labels[classed] == labels[classed[0]]):
        labels = labels.copy()
        labels[classed[-1]] = (labels[classed[-1]] + 1) % n_classes
    return labels


def finite_worlds(*, min_points: int = 1, max_points: int = 5, min_features: int = 1,
                  max_features: int = 2, low: int = 0, high: int = 3, min_classes: int = 2,
                  max_classes: int = 3, reject: bool = True, full_support: bool = False,
                  oracles: str = "any", distances: DistanceSource = None
                  ) -> SearchStrategy[FiniteWorld]:
    """Small finite worlds: grid points, a distance, an oracle table with REJECT, and D.

    Shrinks towards fewer points, lower dimension, fewer classes, labels 0 (REJECT
    last), uniform D and the first distance (l1 by default), so a counterexample reads
    at a glance (see :class:`FiniteWorld`'s ``repr``).

    Parameters
    ----------
    min_points, max_points : int
        Number of points (capped by the grid size in the drawn dimension).
    min_features, max_features : int
        Dimension of the points.
    low, high : int
        Integer coordinates are in ``[low, high]``.
    min_classes, max_classes : int
        Number of classes (>= 2); every world has at least one classed point.
    reject : bool
        Whether the oracle may reject points (label REJECT: no class).
    full_support : bool
        Whether D gives weight to every classed point (else some may get 0).
    oracles : {"any", "regions", "table"}
        How the oracle labels the points: regions (:func:`~.oracles.region_oracles`:
        classes on either side of a linear boundary through the points, a band of
        REJECT between them, the shape of the paper's examples), an arbitrary table (any
        label anywhere, :func:`~.classifiers.label_lists`), or either ("any").
    distances : strategy, or callable n_features -> strategy, optional
        Where the distance comes from; default :func:`lp_distances`.

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(finite_worlds(max_points=4))
    ... def test(world):  # D lives on the classed points; margins are exact
    ...     assert world.weights[~world.classed].sum() == 0
    ...     assert world.margins.exact and world.n_points <= 4
    >>> test()
    """
    lo_p, hi_p = check_size_range(min_points, max_points, "min_points", "max_points", low=1)
    lo_f, hi_f = check_size_range(min_features, max_features, "min_features", "max_features",
                                  low=1)
    lo_x, hi_x = check_size_range(low, high, "low", "high", low=-(2**31))
    lo_c, hi_c = check_size_range(min_classes, max_classes, "min_classes", "max_classes", low=2)
    side = hi_x - lo_x + 1
    if lo_p > side**hi_f:
        raise ValueError(f"min_points={lo_p} exceeds the {side**hi_f} points of the grid "
                         f"{{{low}..{high}}}^{hi_f}")
    kinds = {"any": ORACLE_KINDS, "regions": ("regions",), "table": ("table",)}[
        check_choice(oracles, "oracles", ("any", *ORACLE_KINDS))]
    distance_for = _distance_strategy(distances)

    n_flags = side**hi_f
    # Every strategy a world draws from is built here, once: building costs more than drawing.
    dims = [d for d in range(lo_f, hi_f + 1) if side**d >= lo_p]
    grids = {d: np.array(list(itertools.product(range(lo_x, hi_x + 1), repeat=d)), float)
             for d in dims} if n_flags <= SMALL_GRID else {}
    flag_lists = (st.lists(st.booleans(), min_size=n_flags, max_size=n_flags)
                  if n_flags <= SMALL_GRID else st.just(None))
    sparse_points = {d: grid_points(d, min_points=lo_p, max_points=min(hi_p, side**d),
                                    low=lo_x, high=hi_x) for d in dims if not grids}
    distance_st = {d: distance_for(d) for d in dims}
    dim_st, class_st, kind_st = (st.sampled_from(dims), st.integers(lo_c, hi_c),
                                 st.sampled_from(kinds))

    @st.composite
    def worlds(draw: Any) -> FiniteWorld:
        # On a small grid the points are keep/drop flags drawn before the dimension, one per
        # point of the largest grid: the first points of a grid, (0, ..., 0, k), read the
        # same flags in every dimension, so the shrinker can flatten a world onto a line.
        flags = draw(flag_lists)
        d = draw(dim_st)
        if flags is None:
            points = draw(sparse_points[d])
        else:
            points = grids[d][kept(flags[n_flags - side**d:], lo_p, min(hi_p, side**d))]
        n_classes = draw(class_st)
        if draw(kind_st) == "regions":
            labels = draw(region_oracles(points, n_classes, reject=reject)).labels
            assume(np.any(labels != REJECT))
        else:
            labels = draw(label_lists(len(points), n_classes, reject=reject, min_classed=1))
        labels = two_classes(labels, n_classes)
        weights = draw(support_weights(labels, full=full_support))
        distance = draw(distance_st[d])
        return FiniteWorld(points, labels, weights, distance, n_classes)

    return worlds()


def finite_domains(**world_options: Any) -> SearchStrategy[FiniteDomain]:
    """Finite-domain toy families (:class:`~theory.toys.FiniteDomain`) from
    :func:`finite_worlds` (same options); they answer for every lp norm.

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(finite_domains(max_points=4))
    ... def test(fam):
    ...     assert 0 <= fam.ceiling(1.0, "l1").value <= 1
    >>> test()
    """
    return printed_as_built(finite_worlds(**world_options), FiniteWorld.to_family)


def scenarios(worlds: SearchStrategy[FiniteWorld] | None = None, *,
              radii: Callable[[FiniteWorld], SearchStrategy[float]] | None = None,
              classifier: Callable[[FiniteWorld, float], SearchStrategy] | None = None
              ) -> SearchStrategy[Scenario]:
    """A world, then a radius for it, then a classifier for both.

    Parameters
    ----------
    worlds : strategy of FiniteWorld, optional
        Default :func:`finite_worlds`.
    radii : callable world -> strategy, optional
        Default :func:`~.radii.radii` of the world (its boundary radii first).
    classifier : callable (world, eps) -> strategy, optional
        Default :func:`~.classifiers.classifiers`; e.g. ``robust_classifiers`` for the
        tradeoff lemma's hypothesis.

    Examples
    --------
    >>> from hypothesis import given
    >>> from invariance_tradeoffs.theory.theorem import tradeoff_lemma
    >>> @given(scenarios())
    ... def test(s):
    ...     rep = tradeoff_lemma(s.points, s.oracle, s.f, s.distance, s.eps, s.points)
    ...     assert rep.check(s.oracle, s.f, s.distance)
    >>> test()
    """
    world_st = finite_worlds() if worlds is None else check_strategy(worlds, "worlds")
    radius_for = radii_of if radii is None else radii
    f_for = classifiers if classifier is None else classifier
    for name, fn in (("radii", radius_for), ("classifier", f_for)):
        if not callable(fn):
            raise TypeError(f"{name} must be a function returning a strategy")

    @st.composite
    def build(draw: Any) -> Scenario:
        world = draw(world_st)
        eps = draw(radius_for(world))
        return Scenario(world, draw(f_for(world, eps)), eps)

    return build()

"""Radii eps, with the exact boundary cases where the theory changes its answer: eps equal
to an oracle margin (a closed ball reaches the other class), to the good radius (goodness
is strict: ``eps < r_O``), and to the distances between points."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from invariance_tradeoffs.theory.examples import BALL_RTOL
from invariance_tradeoffs.theory.strategies.arguments import check_choice, check_radius_range
from invariance_tradeoffs.theory.strategies.finite_world import FiniteWorld

__all__ = ["radii", "boundary_radii", "world_radii", "step"]

SIDES = ("at", "below", "above", "around")


def step(value: float, direction: int) -> float:
    """``value`` moved just past the closed-ball tolerance of
    :func:`~theory.examples.in_ball` (4x its slack), up (``direction=1``) or down (``-1``).

    Examples
    --------
    >>> step(1.0, -1) < 1.0 < step(1.0, 1)
    True
    """
    return float(value + direction * 4 * BALL_RTOL * max(1.0, abs(value)))


def _finite_sorted(values: np.ndarray) -> list[float]:
    v = np.asarray(values, dtype=float).ravel()
    return sorted({float(x) for x in v[np.isfinite(v) & (v >= 0)]})


def boundary_radii(world: FiniteWorld, *, side: str = "at") -> SearchStrategy[float]:
    """The world's exact boundary radii: every finite oracle margin ``r_O(x)`` (the good
    radius among them), exactly (``side="at"``), just below or just above (beyond the
    package's closed-ball tolerance :data:`~theory.examples.BALL_RTOL`, which treats radii
    within it as equal), or any of the three (``"around"``). Shrinks towards the smallest.

    Examples
    --------
    >>> from hypothesis import find
    >>> world = FiniteWorld([[0], [1], [3]], [0, 1, 1], distance="l1")
    >>> find(boundary_radii(world), lambda eps: eps > 1)  # margins 1, 1, 3
    3.0
    """
    if not isinstance(world, FiniteWorld):
        raise TypeError(f"world must be a FiniteWorld, got {type(world).__name__}")
    side = check_choice(side, "side", SIDES)
    at = _finite_sorted(np.append(world.margins.values, world.good_radius.value))
    below = [v for v in (step(v, -1) for v in at) if v >= 0]
    above = [step(v, 1) for v in at]
    values = {"at": at, "below": below, "above": above,
              "around": sorted(set(at + below + above))}[side]
    if not values:  # a world with one class has no finite margin
        return st.just(0.0)
    return st.sampled_from(values)


def radii(world: FiniteWorld | None = None, *, min_value: float = 0.0,
          max_value: float | None = None) -> SearchStrategy[float]:
    """Radii ``eps >= 0``, shrinking towards smaller ones.

    For a world, every radius that can change an answer: on a finite domain a closed
    ball changes only at the distances between points, so the radii drawn are 0, every
    such distance (margins and the good radius among them), just either side of every
    margin (see :func:`step`), the midpoints between consecutive distances and one
    radius past the diameter -- a complete list of the cases, within
    ``[min_value, max_value]``. Without a world: multiples of 1/4, then any float, in
    ``[min_value, max_value]`` (default 4).

    Examples
    --------
    >>> from hypothesis import given
    >>> world = FiniteWorld([[0], [1], [3]], [0, 1, 1], distance="l1")
    >>> @given(radii(world))
    ... def test(eps):  # the ceiling is 1 below the good radius
    ...     assert world.ceiling(eps).value == 1.0 or eps >= world.good_radius.value
    >>> test()
    >>> radii(min_value=2, max_value=1)
    Traceback (most recent call last):
    ...
    ValueError: min_value=2 must be <= max_value=1
    """
    if world is not None and not isinstance(world, FiniteWorld):
        raise TypeError(f"world must be a FiniteWorld or None, got {type(world).__name__}")
    if world is None:
        lo, hi = check_radius_range(min_value, 4.0 if max_value is None else max_value)
        quarters = [k / 4 for k in range(int(np.ceil(lo * 4)), int(np.floor(hi * 4)) + 1)]
        grid = [st.sampled_from(quarters)] if quarters else []
        return st.one_of(*grid, st.floats(lo, hi))
    lo, hi = check_radius_range(min_value, np.inf if max_value is None else max_value,
                                allow_inf=True)
    cases = [v for v in world_radii(world) if lo <= v <= hi]
    if not cases:
        raise ValueError(f"no radius of the world lies in [min_value, max_value] = "
                         f"[{lo:g}, {hi:g}]")
    return st.sampled_from(cases)


def world_radii(world: FiniteWorld) -> list[float]:
    """The sorted radii :func:`radii` draws for ``world``.

    Examples
    --------
    >>> world = FiniteWorld([[0], [1], [3]], [0, 1, 1], distance="l1")
    >>> r = world_radii(world)  # margins 1, 1, 3; distances 1, 2, 3
    >>> [v for v in r if v == round(v, 6)], sum(abs(v - 1) < 1e-9 for v in r)
    ([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0], 3)
    """
    dist = _finite_sorted(world.distance.pairwise(world.points, world.points))
    margins = _finite_sorted(np.append(world.margins.values, world.good_radius.value))
    near = [v for v in (step(m, d) for m in margins for d in (-1, 1)) if v >= 0]
    mids = [(a + b) / 2 for a, b in zip(dist[:-1], dist[1:], strict=True)]
    past = [dist[-1] + 1.0] if dist else [1.0]
    return _finite_sorted(np.array([0.0, *dist, *margins, *near, *mids, *past]))

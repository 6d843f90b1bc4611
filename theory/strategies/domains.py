"""Finite domains: sets of distinct points of a small integer grid (a lattice), which is
where every quantity of the theory can be computed exhaustively."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from invariance_tradeoffs.theory.strategies.arguments import check_size_range
from invariance_tradeoffs.theory.validation import check_eps, check_int

__all__ = ["grid_points", "subsets", "kept", "SMALL_GRID"]

#: Grids with at most this many points are drawn as subsets (see :func:`grid_points`).
SMALL_GRID = 64


def grid_points(n_features: int = 1, *, min_points: int = 1, max_points: int = 5,
                low: int = 0, high: int = 3, scale: float = 1.0) -> SearchStrategy[np.ndarray]:
    """Distinct points of the grid ``scale * {low, ..., high}^n_features``.

    Integer coordinates keep every distance exact and every counterexample readable (a
    float grid, ``scale`` < 1, stays clear of subnormal coordinates, whose squares underflow
    and look like metric failures that are float artefacts). Shrinks towards fewer
    points and coordinates nearer 0 (on a grid of at most :data:`SMALL_GRID` points:
    towards the first points in lexicographic order; the rows come sorted).

    Parameters
    ----------
    n_features : int
        Dimension ``d`` of each point.
    min_points, max_points : int
        Bounds on the number of points ``m`` (``max_points`` at most the grid size).
    low, high : int
        Range of the integer coordinates.
    scale : float
        Grid spacing (``> 0``).

    Returns
    -------
    SearchStrategy[ndarray]
        Float arrays of shape ``(m, d)`` with distinct rows.

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(grid_points(2, max_points=4, high=2))
    ... def test(points):
    ...     assert points.shape[1] == 2 and 1 <= len(points) <= 4
    ...     assert len(np.unique(points, axis=0)) == len(points)
    >>> test()
    """
    d = check_int(n_features, "n_features", low=1)
    lo, hi = check_size_range(low, high, "low", "high", low=-(2**31))
    if check_eps(scale, "scale") == 0:
        raise ValueError("scale must be > 0")
    size = (hi - lo + 1) ** d
    min_points, max_points = check_size_range(min_points, max_points, "min_points",
                                              "max_points", low=1)
    if max_points > size:
        raise ValueError(f"max_points={max_points} exceeds the {size} points of the grid "
                         f"{{{lo}..{hi}}}^{d}")
    if size <= SMALL_GRID:
        # A keep/drop flag per grid point: always distinct, every point equally likely
        # (unique lists of drawn coordinates are often rejected on a small grid, which
        # skews them towards one or two points). Shrinks towards the first grid points.
        grid = np.array(list(itertools.product(range(lo, hi + 1), repeat=d)), dtype=float)
        masks = st.lists(st.booleans(), min_size=size, max_size=size)
        return masks.map(lambda keep: grid[kept(keep, min_points, max_points)] * float(scale))
    coords = st.tuples(*[st.integers(lo, hi)] * d)
    return st.lists(coords, min_size=min_points, max_size=max_points, unique=True).map(
        lambda rows: np.array(rows, dtype=float).reshape(len(rows), d) * float(scale))


def subsets(items: list[int], min_size: int, max_size: int) -> SearchStrategy[list[int]]:
    """Sorted subsets of ``items`` with a size in ``[min_size, max_size]``: a keep/drop
    flag per item (topped up with the first dropped items to ``min_size``, cut to the
    first ``max_size``). Hypothesis's unique lists favour one element; flags give every
    item an even chance. Shrinks towards the first ``min_size`` items.

    Examples
    --------
    >>> from hypothesis import find
    >>> find(subsets([3, 5, 8], 1, 3), lambda s: len(s) == 2)
    [3, 5]
    """
    arr = np.asarray(items, dtype=np.int64)
    return st.lists(st.booleans(), min_size=arr.size, max_size=arr.size).map(
        lambda keep: arr[kept(keep, min_size, max_size)].tolist())


def kept(keep: list[bool], min_size: int, max_size: int) -> np.ndarray:
    """Indices of the items whose flag is true -- flag ``i`` belongs to item ``n - 1 - i``,
    so that Hypothesis, which shrinks earlier flags to false first, drops later items
    first -- topped up with the first dropped items to ``min_size`` and cut to the first
    ``max_size``.

    Examples
    --------
    >>> kept([False, True, False], 2, 3).tolist(), kept([True, True, True], 0, 2).tolist()
    ([0, 1], [0, 1])
    """
    flags = np.asarray(keep, dtype=bool)[::-1]
    idx = np.flatnonzero(flags)
    if idx.size < min_size:
        idx = np.sort(np.concatenate([idx, np.flatnonzero(~flags)[: min_size - idx.size]]))
    return idx[:max_size]

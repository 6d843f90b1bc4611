"""The little worlds the strategies draw: a finite domain with a metric, an oracle (with
the reject label) and a distribution D on its classed points -- everything exact.

A :class:`FiniteWorld` prints as the call that rebuilds it, so a shrunk counterexample
reads at a glance and can be pasted into a regression test::

    FiniteWorld(points=[[0], [1], [2]], labels=[0, REJECT, 1], weights=[1/2, 0, 1/2],
                distance='l1', n_classes=2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from invariance_tradeoffs.theory.distances import Distance, LpDistance, get_distance
from invariance_tradeoffs.theory.margins import (
    Margins,
    ceiling_from_margins,
    check_weights,
    good_radius_from_margins,
    oracle_margin,
)
from invariance_tradeoffs.theory.oracles import REJECT, TableOracle
from invariance_tradeoffs.theory.results import Quantity
from invariance_tradeoffs.theory.validation import as_batch, as_labels, check_eps, check_n_classes

__all__ = ["FiniteWorld", "Scenario", "format_distance", "format_number", "printed_as_built"]


def printed_as_built(strategy: SearchStrategy, build: Callable[[Any], Any]) -> SearchStrategy:
    """``strategy.map(build)``, except that Hypothesis prints each result with its own
    ``repr`` (e.g. ``TableOracle(labels=[0, REJECT, 1], n_classes=2)``): for mapped values
    it prefers the call ``build(x)`` whenever that is shorter, which names internals.

    Examples
    --------
    >>> from hypothesis import strategies as st
    >>> from hypothesis import find
    >>> find(printed_as_built(st.integers(0, 3), lambda k: [k] * 2), lambda v: v[0] > 1)
    [2, 2]
    """
    return _built(strategy, build)


@st.composite
def _built(draw: Any, strategy: SearchStrategy, build: Callable[[Any], Any]) -> Any:
    # one composite for every call (decorating a new one per strategy costs ~1 ms)
    return build(draw(strategy))


def format_number(x: float) -> str:
    """``2`` for integral values, ``1/3`` for simple fractions, else ``repr`` (a float)."""
    x = float(x)
    if np.isfinite(x) and x == int(x):
        return str(int(x))
    frac = Fraction(x).limit_denominator(64)
    if np.isfinite(x) and float(frac) == x:
        return f"{frac.numerator}/{frac.denominator}"
    return repr(x)


def _format_array(a: np.ndarray) -> str:
    if a.ndim == 1:
        return "[" + ", ".join(format_number(v) for v in a) + "]"
    return "[" + ", ".join(_format_array(row) for row in a) + "]"


def format_distance(distance: Distance) -> str:
    """The distance as an expression: ``'l1'`` for an lp norm (what :class:`FiniteWorld`
    accepts), its ``repr`` otherwise."""
    return repr(distance.name) if type(distance) is LpDistance else repr(distance)


def _format_labels(labels: np.ndarray) -> str:
    return "[" + ", ".join("REJECT" if v == REJECT else str(int(v)) for v in labels) + "]"


@dataclass(frozen=True, eq=False)
class FiniteWorld:
    """A finite input space with a distance, an oracle table and a distribution D.

    Parameters
    ----------
    points : array_like, shape (m, d)
        The whole domain (distinct rows).
    labels : array_like, shape (m,)
        Oracle label of each point: a class ``0..n_classes-1`` or ``REJECT``.
    weights : array_like, shape (m,), optional
        D over the points: probabilities summing to 1, zero where the oracle rejects,
        positive somewhere. Default: uniform on the classed points.
    distance : Distance or str
        ``d``, or an lp norm name such as ``"l1"``.
    n_classes : int, optional
        Number of classes (default: ``max(2, largest label + 1)``).

    Every quantity is exact (the candidates are the whole domain): :attr:`margins`,
    :attr:`good_radius`, :meth:`ceiling`.

    Examples
    --------
    >>> world = FiniteWorld([[0], [1], [2]], [0, REJECT, 1], [0.5, 0, 0.5], "l1")
    >>> world
    FiniteWorld(points=[[0], [1], [2]], labels=[0, REJECT, 1], weights=[1/2, 0, 1/2], \
distance='l1', n_classes=2)
    >>> world.margins.values.tolist(), world.good_radius.value, world.ceiling(1.0).value
    ([2.0, 1.0, 2.0], 2.0, 1.0)
    """

    points: Any
    labels: Any
    weights: Any = None
    distance: Any = "l2"
    n_classes: Any = None

    def __post_init__(self) -> None:
        points = as_batch(self.points, "points")
        labels = as_labels(self.labels, "labels", length=points.shape[0])
        n_classes = check_n_classes(max(2, int(labels.max()) + 1) if self.n_classes is None
                                    else self.n_classes)
        as_labels(labels, "labels", n_classes=n_classes)  # classes in range or REJECT
        classed = labels != REJECT
        if not classed.any():
            raise ValueError("labels must give a class to at least one point (D lives on "
                             "the classed points)")
        weights = (classed / classed.sum() if self.weights is None
                   else check_weights(self.weights, points.shape[0]))
        if np.any(weights[~classed] > 0):
            raise ValueError("weights must be 0 on points the oracle rejects")
        distance = self.distance
        if not isinstance(distance, Distance):
            distance = get_distance(distance)
        for name, value in (("points", points), ("labels", labels), ("weights", weights),
                            ("distance", distance), ("n_classes", n_classes)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "oracle", TableOracle(points, labels, n_classes))

    # -- the world's parts --------------------------------------------------------------
    @property
    def n_points(self) -> int:
        """Number of points of the domain."""
        return int(self.points.shape[0])

    @property
    def n_features(self) -> int:
        """Dimension of the points."""
        return int(self.points.shape[1])

    @property
    def classed(self) -> np.ndarray:
        """Boolean mask of the points the oracle gives a class."""
        return self.labels != REJECT

    @property
    def support(self) -> np.ndarray:
        """Indices of the points with ``D(x) > 0``."""
        return np.flatnonzero(self.weights > 0)

    def labelled(self, indices: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(X, O(X))`` of the points at ``indices`` (e.g. a drawn labelled sample)."""
        idx = np.asarray(indices, dtype=np.int64)
        return self.points[idx], self.labels[idx]

    # -- exact quantities --------------------------------------------------------------
    @cached_property
    def margins(self) -> Margins:
        """Exact oracle margins ``r_O(x)`` of every point (exhaustive over the domain)."""
        return oracle_margin(self.points, self.oracle, self.distance, self.points)

    @cached_property
    def good_radius(self) -> Quantity:
        """Exact good radius: the least margin over the support of D."""
        return good_radius_from_margins(self.margins, self.weights)

    def ceiling(self, eps: float) -> Quantity:
        """Exact ceiling ``P_D[r_O(x) > eps]``."""
        return ceiling_from_margins(self.margins, [check_eps(eps)], self.weights)[0]

    def to_family(self) -> Any:
        """The world as a :class:`~invariance_tradeoffs.theory.toys.FiniteDomain` (points,
        oracle, D; the family answers for every lp norm, whatever this world's distance)."""
        from invariance_tradeoffs.theory.toys.finite import FiniteDomain

        return FiniteDomain(self.points, self.labels, self.weights, self.n_classes,
                            name="finite-world")

    # -- printing ----------------------------------------------------------------------
    def _fields(self) -> list[str]:
        return [f"points={_format_array(self.points)}", f"labels={_format_labels(self.labels)}",
                f"weights={_format_array(self.weights)}",
                f"distance={format_distance(self.distance)}", f"n_classes={self.n_classes}"]

    def __repr__(self) -> str:
        return f"FiniteWorld({', '.join(self._fields())})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        # Hypothesis's (IPython's) pretty printer: one field per line when it wraps.
        _pretty_call(p, "FiniteWorld", self._fields())


def _pretty_call(p: Any, name: str, fields: list[Any]) -> None:
    with p.group(4, f"{name}(", ")"):
        for i, field in enumerate(fields):
            if i:
                p.text(",")
                p.breakable()
            if isinstance(field, tuple):  # (keyword, object): pretty-print the object
                p.text(f"{field[0]}=")
                p.pretty(field[1])
            else:
                p.text(field)


@dataclass(frozen=True, eq=False)
class Scenario:
    """A world, a classifier ``f`` on it and a radius ``eps``: one instance of a claim.

    ``points``, ``oracle`` and ``distance`` are the world's.

    Examples
    --------
    >>> world = FiniteWorld([[0], [1]], [0, 1], distance="l1")
    >>> Scenario(world, TableOracle(world.points, [0, 0], 2), 1.0)
    Scenario(world=FiniteWorld(points=[[0], [1]], labels=[0, 1], weights=[1/2, 1/2], \
distance='l1', n_classes=2), f=TableOracle(labels=[0, 0], n_classes=2), eps=1)
    """

    world: FiniteWorld
    f: Any
    eps: float

    def __post_init__(self) -> None:
        if not isinstance(self.world, FiniteWorld):
            raise TypeError(f"world must be a FiniteWorld, got {type(self.world).__name__}")
        object.__setattr__(self, "eps", check_eps(self.eps))

    @property
    def points(self) -> np.ndarray:
        return self.world.points

    @property
    def oracle(self) -> TableOracle:
        return self.world.oracle

    @property
    def distance(self) -> Distance:
        return self.world.distance

    def __repr__(self) -> str:
        return f"Scenario(world={self.world!r}, f={self.f!r}, eps={format_number(self.eps)})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        _pretty_call(p, "Scenario", [("world", self.world), ("f", self.f),
                                     f"eps={format_number(self.eps)}"])

"""Classifiers to test claims against: arbitrary tables, 1-nearest-neighbour rules, linear
rules, classifiers constant on eps-balls (robust in the standard lp sense) and classifiers
equal to the oracle on the support.

The strategies that take a :class:`~.finite_world.FiniteWorld` return classifiers defined
on its points (tables print their labels; see :class:`~theory.oracles.TableOracle`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from scipy.sparse.csgraph import connected_components

from invariance_tradeoffs.theory.oracles import REJECT, TableOracle
from invariance_tradeoffs.theory.strategies.arguments import (
    check_choice,
    check_size_range,
    check_strategy,
)
from invariance_tradeoffs.theory.strategies.domains import subsets
from invariance_tradeoffs.theory.strategies.finite_world import (
    FiniteWorld,
    format_number,
    printed_as_built,
)
from invariance_tradeoffs.theory.theorem import NearestNeighbourRule
from invariance_tradeoffs.theory.toys.finite import eps_ball_graph
from invariance_tradeoffs.theory.validation import as_batch, check_eps, check_int

__all__ = [
    "LinearClassifier",
    "linear_classifiers",
    "label_lists",
    "labelled_samples",

    "table_classifiers",
    "nearest_neighbour_classifiers",
    "robust_classifiers",
    "oracle_classifiers",
    "classifiers",
]


def _check_world(world: object) -> FiniteWorld:
    if not isinstance(world, FiniteWorld):
        raise TypeError(f"world must be a FiniteWorld, got {type(world).__name__}")
    return world


class LinearClassifier:
    """A linear rule: ``[x . w + b > 0]`` for a weight vector ``w`` (two classes), else
    ``argmax(x W + b)`` (ties to the lowest class); inputs with a score gap of at most
    ``reject_band`` get :data:`REJECT` (which makes it usable as an oracle too).

    Examples
    --------
    >>> f = LinearClassifier([1.0, -1.0], 0.0)
    >>> f(np.array([[2.0, 1.0], [0.0, 1.0]])).tolist(), f
    ([1, 0], LinearClassifier(w=[1, -1], b=0))
    """

    def __init__(self, weights: Any, bias: Any, reject_band: float = 0.0) -> None:
        W = np.asarray(weights, dtype=float)
        if W.ndim not in (1, 2) or W.size == 0 or not np.all(np.isfinite(W)):
            raise ValueError(f"weights must be a finite 1-D or 2-D array, got shape {W.shape}")
        b = np.asarray(bias, dtype=float)
        if b.shape != (() if W.ndim == 1 else (W.shape[1],)) or not np.all(np.isfinite(b)):
            raise ValueError(f"bias must be finite with shape {() if W.ndim == 1 else W.shape[1:]}"
                             f", got shape {b.shape}")
        self.weights, self.bias = W, b
        self.reject_band = check_eps(reject_band, "reject_band")
        self.n_classes = 2 if W.ndim == 1 else int(W.shape[1])
        self.n_features = int(W.shape[0])

    def scores(self, X: Any) -> np.ndarray:
        """``x . w + b`` (shape ``(n,)``) or ``x W + b`` (shape ``(n, C)``)."""
        return as_batch(X, "X", n_features=self.n_features, allow_empty=True) @ self.weights \
            + self.bias

    def __call__(self, X: Any) -> np.ndarray:
        s = self.scores(X)
        if self.weights.ndim == 1:
            labels, gap = (s > 0).astype(np.int64), np.abs(s)
        else:
            labels = np.argmax(s, axis=1).astype(np.int64)
            top = np.sort(s, axis=1)
            gap = top[:, -1] - top[:, -2]
        if self.reject_band > 0:
            labels[gap <= self.reject_band] = REJECT
        return labels

    predict = __call__

    def __repr__(self) -> str:
        def fmt(a: np.ndarray) -> str:
            if a.ndim == 0:
                return format_number(a)
            return "[" + ", ".join(fmt(v) for v in a) + "]"

        band = f", reject_band={format_number(self.reject_band)}" if self.reject_band else ""
        key = "w" if self.weights.ndim == 1 else "W"
        return f"LinearClassifier({key}={fmt(self.weights)}, b={fmt(self.bias)}{band})"


def linear_classifiers(n_features: int, n_classes: int = 2, *, max_weight: int = 2,
                       reject_band: bool = False) -> SearchStrategy[LinearClassifier]:
    """Linear rules with small integer weights and biases (never all-zero weights).

    Parameters
    ----------
    n_features : int
        Input dimension.
    n_classes : int
        2 gives ``[x . w + b > 0]``; more gives ``argmax(x W + b)``.
    max_weight : int
        Weights and biases are integers in ``[-max_weight, max_weight]``.
    reject_band : bool
        Whether to draw a band ``|score gap| <= k/2`` (``k`` in 0..2) labelled REJECT.

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(linear_classifiers(3, n_classes=4))
    ... def test(f):
    ...     assert set(f(np.eye(3)).tolist()) <= {0, 1, 2, 3}
    >>> test()
    """
    d = check_int(n_features, "n_features", low=1)
    c = check_int(n_classes, "n_classes", low=2)
    m = check_int(max_weight, "max_weight", low=1)
    return _linear_classifiers(d, c, m, bool(reject_band))


@functools.lru_cache(maxsize=64)
def _linear_classifiers(d: int, c: int, m: int, reject_band: bool
                        ) -> SearchStrategy[LinearClassifier]:
    shape = (d,) if c == 2 else (d, c)
    ints = st.integers(-m, m)
    weights = st.lists(ints, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))).filter(
        any).map(lambda v: np.array(v, dtype=float).reshape(shape))
    bias = (ints.map(float) if c == 2 else
            st.lists(ints, min_size=c, max_size=c).map(lambda v: np.array(v, dtype=float)))
    band = st.integers(0, 2).map(lambda k: k / 2) if reject_band else st.just(0.0)
    return st.builds(LinearClassifier, weights, bias, band)


def label_lists(n: int, n_classes: int, *, reject: bool = True,
                min_classed: int = 0) -> SearchStrategy[np.ndarray]:
    """Label vectors of length ``n`` over ``0..n_classes-1`` (and REJECT when ``reject``),
    with at least ``min_classed`` classes among them; shrinks towards all-0 (REJECT last).

    Examples
    --------
    >>> from hypothesis import find
    >>> find(label_lists(3, 2), lambda y: REJECT in y).tolist()
    [0, 0, -1]
    """
    n = check_int(n, "n", low=0)
    c = check_int(n_classes, "n_classes", low=2)
    lo, _ = check_size_range(min_classed, n, "min_classed", "n")
    return _label_lists(n, c, bool(reject), lo)


@functools.lru_cache(maxsize=256)
def _label_lists(n: int, c: int, reject: bool, min_classed: int) -> SearchStrategy[np.ndarray]:
    # cached: worlds draw one per world, and building a strategy costs more than drawing it
    values = list(range(c)) + ([REJECT] if reject else [])
    labels = st.lists(st.sampled_from(values), min_size=n, max_size=n).map(_int_array)
    if min_classed:
        labels = labels.filter(lambda y: int(np.sum(y != REJECT)) >= min_classed)
    return labels


def _int_array(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def labelled_samples(world: FiniteWorld, *, min_size: int = 1,
                     max_size: int | None = None) -> SearchStrategy[list[int]]:
    """A labelled sample from the support of D: sorted indices of distinct support points
    (their labels are the oracle's: ``world.labelled(indices)``). Shrinks towards fewer,
    earlier points.

    Examples
    --------
    >>> from hypothesis import find
    >>> world = FiniteWorld([[0], [1], [2]], [0, REJECT, 1], distance="l1")
    >>> find(labelled_samples(world), lambda s: len(s) == 2)
    [0, 2]
    """
    support = _check_world(world).support.tolist()
    hi = len(support) if max_size is None else max_size
    lo, hi = check_size_range(min_size, hi, "min_size", "max_size", low=0, high=len(support))
    return subsets(support, lo, hi)


def table_classifiers(world: FiniteWorld, *, reject: bool = False) -> SearchStrategy[TableOracle]:
    """Arbitrary classifiers on the world's points: any label per point (REJECT too when
    ``reject``). Shrinks towards the constant 0.

    Examples
    --------
    >>> from hypothesis import find
    >>> world = FiniteWorld([[0], [1]], [0, 1], distance="l1")
    >>> find(table_classifiers(world), lambda f: f.labels[1] == 1)
    TableOracle(labels=[0, 1], n_classes=2)
    """
    w = _check_world(world)
    return printed_as_built(label_lists(w.n_points, w.n_classes, reject=reject),
                            lambda y: TableOracle(w.points, y, w.n_classes))


def nearest_neighbour_classifiers(world: FiniteWorld, distance: Any = None
                                  ) -> SearchStrategy[NearestNeighbourRule]:
    """The 1-NN rule (under ``distance``, default the world's) of a labelled sample drawn
    with :func:`labelled_samples`.

    Examples
    --------
    >>> from hypothesis import given
    >>> world = FiniteWorld([[0], [1], [3]], [0, 0, 1], distance="l1")
    >>> @given(nearest_neighbour_classifiers(world))
    ... def test(f):
    ...     assert set(f(world.points).tolist()) <= {0, 1}
    >>> test()
    """
    w = _check_world(world)
    d = w.distance if distance is None else distance
    return printed_as_built(labelled_samples(w), lambda idx: NearestNeighbourRule(
        *w.labelled(idx), d, n_classes=w.n_classes))


def robust_classifiers(world: FiniteWorld, eps: float, *, centres: str = "support"
                       ) -> SearchStrategy[TableOracle]:
    """Classifiers constant on ``B(x, eps)`` for every centre ``x`` (the hypothesis of the
    tradeoff lemma; what an lp certificate asserts): one label per connected component of
    the overlapping balls, any label on points outside every ball.

    Parameters
    ----------
    world : FiniteWorld
    eps : float
        The radius.
    centres : {"support", "classed", "all"}
        The points whose balls must be constant: the support of D, every classed point,
        or every point.

    Examples
    --------
    >>> from hypothesis import given
    >>> from invariance_tradeoffs.theory.examples import find_examples
    >>> world = FiniteWorld([[0], [1], [2], [3]], [0, 0, 1, 1], distance="l1")
    >>> @given(robust_classifiers(world, 1.0, centres="all"))
    ... def test(f):
    ...     res = find_examples(world.points, world.points, world.oracle, f, "l1", 1.0)
    ...     assert res.constant_on_ball.all()
    >>> test()
    """
    w = _check_world(world)
    eps = check_eps(eps)
    mask = {"support": w.weights > 0, "classed": w.classed,
            "all": np.ones(w.n_points, dtype=bool)}[check_choice(centres, "centres",
                                                                 ("support", "classed", "all"))]
    return _robust_tables(w, eps, np.flatnonzero(mask))


@st.composite
def _robust_tables(draw: Any, w: FiniteWorld, eps: float, centres: np.ndarray) -> TableOracle:
    # The ball graph is computed when a table is drawn, not when the strategy is built:
    # classifiers() builds one robust_classifiers per world and may draw another kind.
    adjacency, A = eps_ball_graph(w.points, centres, w.distance, eps)
    n_comp, comp = connected_components(adjacency, directed=False)
    # Each domain point in some ball takes the label of that ball's component.
    covered = A.tocoo()
    owner = np.full(w.n_points, -1)
    owner[covered.col] = comp[covered.row]
    inside = owner >= 0
    comp_labels = draw(label_lists(n_comp, w.n_classes, reject=False))
    free_labels = draw(label_lists(int((~inside).sum()), w.n_classes, reject=False))
    y = np.zeros(w.n_points, dtype=np.int64)
    y[inside] = comp_labels[owner[inside]]
    y[~inside] = free_labels
    return TableOracle(w.points, y, w.n_classes)


def oracle_classifiers(world: FiniteWorld, *, where: str = "support"
                       ) -> SearchStrategy[TableOracle]:
    """Classifiers equal to the oracle on the support of D (``where="support"``) or on
    every classed point (``"classed"``, the hypothesis of the d_f direction of the
    theorem); any class elsewhere.

    Examples
    --------
    >>> from hypothesis import given
    >>> world = FiniteWorld([[0], [1], [2]], [0, REJECT, 1], distance="l1")
    >>> @given(oracle_classifiers(world))
    ... def test(f):
    ...     assert f.labels[0] == 0 and f.labels[2] == 1
    >>> test()
    """
    w = _check_world(world)
    fixed = {"support": w.weights > 0, "classed": w.classed}[
        check_choice(where, "where", ("support", "classed"))]
    free = np.flatnonzero(~fixed)

    def build(free_labels: np.ndarray) -> TableOracle:
        y = w.labels.copy()
        y[free] = free_labels
        return TableOracle(w.points, y, w.n_classes)

    return printed_as_built(label_lists(free.size, w.n_classes, reject=False), build)


def classifiers(world: FiniteWorld, eps: float | None = None, *,
                extra: SearchStrategy | None = None) -> SearchStrategy[Any]:
    """Any of the classifiers above on ``world``: tables, 1-NN rules, linear rules, rules
    equal to the oracle on the support and (given ``eps``) rules constant on the
    eps-balls of the support; ``extra`` adds a strategy of your own.

    Examples
    --------
    >>> from hypothesis import given
    >>> world = FiniteWorld([[0, 0], [1, 2]], [0, 1], distance="linf")
    >>> @given(classifiers(world, eps=1.0))
    ... def test(f):
    ...     assert len(f(world.points)) == 2
    >>> test()
    """
    w = _check_world(world)
    options = [table_classifiers(w), oracle_classifiers(w), nearest_neighbour_classifiers(w),
               linear_classifiers(w.n_features, w.n_classes)]
    if eps is not None:
        options.insert(1, robust_classifiers(w, eps))
    if extra is not None:
        options.append(check_strategy(extra, "extra"))
    return st.one_of(options)

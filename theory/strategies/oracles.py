"""Oracles -- the true labelling, with the reject label for inputs of no class -- and the
distributions D they come with (weights on the classed points)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from invariance_tradeoffs.theory.oracles import REJECT, FunctionOracle, TableOracle
from invariance_tradeoffs.theory.strategies.classifiers import (
    LinearClassifier,
    label_lists,
    linear_classifiers,
)
from invariance_tradeoffs.theory.strategies.finite_world import printed_as_built
from invariance_tradeoffs.theory.validation import as_batch, as_labels, check_int

__all__ = ["table_oracles", "region_oracles", "function_oracles", "support_weights"]


def table_oracles(points: Any, n_classes: int = 2, *, reject: bool = True
                  ) -> SearchStrategy[TableOracle]:
    """Oracle tables on the given points: a class or (when ``reject``) REJECT per point,
    at least one class. Shrinks towards all-0.

    Examples
    --------
    >>> from hypothesis import find
    >>> pts = np.arange(3.0)[:, None]
    >>> find(table_oracles(pts), lambda O: (O.labels == REJECT).any() and O.labels.max() == 1)
    TableOracle(labels=[0, 1, REJECT], n_classes=2)
    """
    P = as_batch(points, "points")
    c = check_int(n_classes, "n_classes", low=2)
    return printed_as_built(label_lists(P.shape[0], c, reject=reject, min_classed=1),
                            lambda y: TableOracle(P, y, c))


def region_oracles(points: Any, n_classes: int = 2, *, reject: bool = True
                   ) -> SearchStrategy[TableOracle]:
    """Oracle tables whose classes are regions: a linear rule (small integer weights) whose
    decision boundary passes through one of the points, with the points within a band
    of 0, 1/2 or 1 around it rejected (when ``reject``) -- classes on either side, "no
    class" in between, the shape of the paper's examples. Shrinks towards a boundary
    through the middle point with only that point rejected.

    Examples
    --------
    >>> from hypothesis import find
    >>> pts = np.arange(3.0)[:, None]
    >>> find(region_oracles(pts), lambda O: True)
    TableOracle(labels=[0, REJECT, 1], n_classes=2)
    """
    P = as_batch(points, "points")
    c = check_int(n_classes, "n_classes", low=2)
    m, d = P.shape
    return _regions(P, _region_rules(m, d, c, bool(reject)), c)


@functools.lru_cache(maxsize=128)
def _region_rules(m: int, d: int, c: int, reject: bool) -> SearchStrategy[tuple]:
    bands = st.sampled_from([0.5, 0.0, 1.0] if reject else [0.0])
    # the boundary's anchor: an offset from the middle point (so it shrinks to the middle)
    anchors = st.integers(0, m - 1).map(lambda k: (m // 2 + k) % m)
    return st.tuples(linear_classifiers(d, c), anchors, bands)


@st.composite
def _regions(draw: Any, P: np.ndarray, rules: SearchStrategy[tuple], c: int) -> TableOracle:
    f, anchor, band = draw(rules)
    bias = -(P[anchor] @ f.weights)  # all class scores tie at the anchor: regions meet there
    return TableOracle(P, LinearClassifier(f.weights, bias, band)(P), c)


def function_oracles(n_features: int, n_classes: int = 2, *, reject: bool = True
                     ) -> SearchStrategy[FunctionOracle]:
    """Oracles on all of R^d: a linear rule whose inputs within a band around the decision
    boundary are rejected (when ``reject``) -- "no class" between the classes.

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(function_oracles(2))
    ... def test(O):
    ...     assert set(O(np.eye(2)).tolist()) <= {0, 1, REJECT}
    >>> test()
    """
    d = check_int(n_features, "n_features", low=1)
    c = check_int(n_classes, "n_classes", low=2)
    return printed_as_built(linear_classifiers(d, c, reject_band=reject),
                            lambda f: FunctionOracle(f, c, n_features=d, name=repr(f)))


def support_weights(labels: Any, *, full: bool = False) -> SearchStrategy[np.ndarray]:
    """A distribution D over points with these oracle labels: zero on REJECT, relative
    weights 1 (shrink target: uniform on the classed points), 2, 3 or (one time in four) 0;
    ``full`` keeps every classed point in the support. Always a probability vector.

    Examples
    --------
    >>> from hypothesis import find
    >>> find(support_weights([0, REJECT, 1]), lambda w: w[0] == 0).tolist()
    [0.0, 0.0, 1.0]
    """
    y = as_labels(labels, "labels")
    classed = y != REJECT
    if not classed.any():
        raise ValueError("labels must give a class to at least one point")
    return _weights(_relative_weights(y.size, bool(full)), classed)


@functools.lru_cache(maxsize=128)
def _relative_weights(n: int, full: bool) -> SearchStrategy[list[int]]:
    rel = st.sampled_from([1, 2, 3] if full else [0, 1, 2, 3])
    return st.lists(rel, min_size=n, max_size=n)


@st.composite
def _weights(draw: Any, relative: SearchStrategy[list[int]], classed: np.ndarray) -> np.ndarray:
    arr = np.array(draw(relative), dtype=float) * classed
    if arr.sum() == 0:  # every classed point drew 0: fall back to uniform
        arr = classed.astype(float)
    return arr / arr.sum()

"""Oracles (the "true" labelling, e.g. a human) and classifiers.

An oracle maps a batch of inputs of shape ``(n, d)`` to labels in
``{0, ..., n_classes - 1}`` or to :data:`REJECT`, the paper's bottom symbol for
inputs that belong to no class. Classifiers are any callables with the same
signature (numpy in, numpy out); scikit-learn estimators are accepted through
their ``predict`` method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from invariance_tradeoffs.theory.validation import REJECT, as_batch, as_labels, check_n_classes

__all__ = [
    "REJECT",
    "Oracle",
    "FunctionOracle",
    "TableOracle",
    "is_reject",
    "predict",
    "oracle_labels",
]


@runtime_checkable
class Oracle(Protocol):
    """Anything with ``n_classes`` and ``__call__(X) -> labels``."""

    n_classes: int

    def __call__(self, X: np.ndarray) -> np.ndarray: ...


def is_reject(labels: np.ndarray) -> np.ndarray:
    """Boolean mask of the labels equal to :data:`REJECT`."""
    return np.asarray(labels) == REJECT


class FunctionOracle:
    """Oracle defined by a vectorised function; its outputs are validated.

    Parameters
    ----------
    fn : callable
        Maps an ``(n, d)`` float array to ``n`` integer labels (or :data:`REJECT`).
    n_classes : int
        Number of classes ``C``.
    n_features : int, optional
        Input dimension, checked on every call when given.
    name : str
        Display name.

    Examples
    --------
    >>> import numpy as np
    >>> sign = FunctionOracle(lambda X: (X[:, 0] > 0).astype(int), n_classes=2, n_features=1)
    >>> sign(np.array([[-1.0], [2.0]])).tolist()
    [0, 1]
    """

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray],
        n_classes: int,
        n_features: int | None = None,
        name: str = "oracle",
    ) -> None:
        if not callable(fn):
            raise TypeError("fn must be callable")
        self.fn = fn
        self.n_classes = check_n_classes(n_classes)
        self.n_features = n_features
        self.name = name

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = as_batch(X, "X", n_features=self.n_features, allow_empty=True)
        return oracle_labels(self.fn(X), n_classes=self.n_classes, n=X.shape[0])

    def __repr__(self) -> str:
        return f"FunctionOracle(name={self.name!r}, n_classes={self.n_classes})"


class TableOracle:
    """Oracle given by an explicit table over a finite domain.

    Parameters
    ----------
    points : array_like, shape (m, d)
        The enumerated domain; rows must be distinct.
    labels : array_like, shape (m,)
        Oracle label of each point (a class or :data:`REJECT`).
    n_classes : int
        Number of classes.

    Inputs outside the table raise ``ValueError`` (an oracle is only defined on its
    domain); pass ``outside=REJECT`` to label them as "no class" instead.

    Examples
    --------
    >>> TableOracle(np.arange(3.0)[:, None], [0, REJECT, 1], n_classes=2)
    TableOracle(labels=[0, REJECT, 1], n_classes=2)
    """

    def __init__(
        self,
        points: np.ndarray,
        labels: np.ndarray,
        n_classes: int,
        outside: int | None = None,
    ) -> None:
        self.points = as_batch(points, "points")
        self.n_classes = check_n_classes(n_classes)
        self.labels = as_labels(labels, "labels", n_classes=self.n_classes,
                                length=self.points.shape[0])
        if outside is not None and outside != REJECT:
            raise ValueError(f"outside must be None or REJECT={REJECT}, got {outside}")
        self.outside = outside
        self._index = {key: i for i, key in enumerate(_row_keys(self.points))}
        if len(self._index) != self.points.shape[0]:
            raise ValueError("points must be distinct rows")

    @property
    def n_features(self) -> int:
        return int(self.points.shape[1])

    def index_of(self, X: np.ndarray) -> np.ndarray:
        """Row index of each input in the table, ``-1`` where absent."""
        X = as_batch(X, "X", n_features=self.n_features, allow_empty=True)
        return np.array([self._index.get(key, -1) for key in _row_keys(X)], dtype=np.int64)

    def covers(self, X: np.ndarray) -> bool:
        """Whether every point of the table is a row of ``X`` (``X`` holds the domain)."""
        found = self.index_of(X)
        return bool(np.isin(np.arange(self.points.shape[0]), found).all())

    def __repr__(self) -> str:
        # The labels say what the table is (its points are the caller's domain); REJECT by
        # name so that a shrunk counterexample reads at a glance.
        labels = ", ".join("REJECT" if v == REJECT else str(int(v)) for v in self.labels)
        outside = "" if self.outside is None else ", outside=REJECT"
        return f"TableOracle(labels=[{labels}], n_classes={self.n_classes}{outside})"

    def __call__(self, X: np.ndarray) -> np.ndarray:
        idx = self.index_of(X)
        missing = idx < 0
        if np.any(missing) and self.outside is None:
            raise ValueError(
                f"X has {int(missing.sum())} row(s) outside the oracle's finite domain"
            )
        out = np.full(idx.shape, REJECT, dtype=np.int64)
        out[~missing] = self.labels[idx[~missing]]
        return out


def _row_keys(X: np.ndarray) -> list[bytes]:
    """Hashable keys of the rows of a float64 batch, equal exactly for equal rows:
    ``-0.0`` is keyed as ``0.0`` (adding ``0.0`` maps ``-0.0`` to ``+0.0``), since the two
    compare equal and must get the same label."""
    return [row.tobytes() for row in np.asarray(X, dtype=np.float64) + 0.0]


def oracle_labels(
    labels: Any, *, n_classes: int, n: int, name: str = "oracle output"
) -> np.ndarray:
    """Validate labels returned by an oracle or classifier for a batch of ``n`` inputs."""
    return as_labels(labels, name, n_classes=n_classes, length=n, allow_reject=True)


def predict(f: Any, X: np.ndarray, *, n_classes: int | None = None) -> np.ndarray:
    """Labels of classifier ``f`` on batch ``X``.

    ``f`` may be a callable or an object with a ``predict`` method (scikit-learn).
    The output is checked to be one integer label per row.
    """
    X = as_batch(X, "X", allow_empty=True)
    if hasattr(f, "predict") and callable(f.predict):
        out = f.predict(X)
    elif callable(f):
        out = f(X)
    else:
        raise TypeError("classifier must be callable or have a predict method")
    return as_labels(out, "classifier output", n_classes=n_classes, length=X.shape[0])

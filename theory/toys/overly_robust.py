"""A distribution with an *overly robust* feature (the paper's Section 5 idea).

Geometry (2-D, classes 0 and 1, ``s = 2y - 1``)::

              x2
       +c  ·  |  ·  ·  ·  ·      class 1 samples: x1 in [a, b], x2 = +c
              |
     ---------+----------- x1    the oracle reads only x1: O(x) = 1 iff x1 > 0
              |
       -c  ·  ·  ·  ·  |         class 0 samples: x1 in [-b, -a], x2 = -c
          -b    -a  0  a     b

* ``x1`` is the feature the oracle (the human) reads: ``O(x) = [x1 > 0]``. Its
  distance to the decision line ``x1 = 0`` is at least ``a`` on D, so the good radius
  is ``a`` under every lp norm (p >= 1).
* ``x2 = s * c`` is perfectly predictive on D but ignored by the oracle. A classifier
  reading ``x2`` (:meth:`OverlyRobustFeature.feature_classifier`) has standard
  accuracy 1 and does not change its label within distance ``c > a`` of any sample --
  so it is robust beyond the good radius and, by the paper's tradeoff, *invariant to
  true label changes*: moving ``x1`` across 0 (distance ``|x1| <= b``) flips the oracle
  but not ``f``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from invariance_tradeoffs.theory.distances import Distance
from invariance_tradeoffs.theory.results import Quantity, exact
from invariance_tradeoffs.theory.toys.common import ToyBase, check_real

__all__ = ["OverlyRobustFeature"]


class OverlyRobustFeature(ToyBase):
    """Two features: one the oracle reads (``x1``), one it ignores but D correlates (``x2``).

    D: ``y ~ Bernoulli(prior)``, ``s = 2y - 1``, ``x1 = s * U[a, b]``, ``x2 = s * c``.
    Oracle: ``O(x) = 1`` if ``x1 > 0`` else ``0`` (on all of R^2).

    Parameters
    ----------
    a, b : float
        ``0 < a < b``: ``|x1|`` is uniform on ``[a, b]``; ``a`` is the good radius.
    c : float
        ``c > a``: the magnitude of the overly robust feature ``x2``.
    prior : float
        ``P[y = 1]`` in ``(0, 1)``.

    Examples
    --------
    >>> fam = OverlyRobustFeature(a=0.2, b=0.6, c=1.0)
    >>> fam.good_radius("linf").value
    0.2
    >>> round(float(fam.ceiling_curve(np.array([0.4]), "l2")[0]), 12)
    0.5
    """

    name = "overly-robust"
    n_features = 2
    n_classes = 2
    norms = ("l0", "l1", "l2", "linf")
    ceiling_norms = ("l0", "l1", "l2", "linf")
    any_norm = True

    def __init__(self, a: float = 0.2, b: float = 0.6, c: float = 1.0, prior: float = 0.5) -> None:
        self.a = check_real(a, "a", low=0.0, low_open=True)
        self.b = check_real(b, "b", low=self.a, low_open=True)
        self.c = check_real(c, "c", low=self.a, low_open=True)
        self.prior = check_real(prior, "prior", low=0.0, high=1.0, low_open=True, high_open=True)

    def params(self) -> dict:
        return {"a": self.a, "b": self.b, "c": self.c, "prior": self.prior}

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        s = np.where(rng.random(n) < self.prior, 1.0, -1.0)
        x1 = s * rng.uniform(self.a, self.b, size=n)
        return np.column_stack([x1, s * self.c])

    def _oracle(self, X: np.ndarray) -> np.ndarray:
        return (X[:, 0] > 0).astype(np.int64)

    def linear_oracle(self) -> tuple[np.ndarray, float]:
        return np.array([1.0, 0.0]), 0.0

    @staticmethod
    def _unit_cost(norm: Any) -> float:
        """``||e_1||_*``: the distance cost of a unit change of ``x1`` (1 for every lp)."""
        return float(norm.dual_norm(np.array([[1.0, 0.0]]))[0]) \
            if isinstance(norm, Distance) else 1.0

    def _margin(self, X: np.ndarray, norm: str) -> np.ndarray:
        if isinstance(norm, Distance):  # the nearest other-class point moves x1 to 0
            return np.abs(X[:, 0]) / self._unit_cost(norm)
        if norm == "l0":
            # Changing x1 alone reaches the other class; changing nothing does not.
            return np.ones(X.shape[0])
        # Only x1 has to move, to 0 (or just past it): every lp cost of a 1-coordinate
        # change equals that coordinate's change.
        return np.abs(X[:, 0])

    def _good_radius(self, norm: str) -> Quantity:
        if norm == "l0":
            return exact(1.0, "every input is one coordinate change (x1) from the other class")
        if isinstance(norm, Distance):
            return exact(self.a / self._unit_cost(norm),
                         "ess inf of |x1| / ||e_1||_* over D, |x1| ~ U[a, b]",
                         formula="a / ||e_1||_*")
        return exact(self.a, "ess inf of |x1| over D, |x1| ~ U[a, b]", formula="a")

    def _ceiling(self, eps: np.ndarray, norm: str) -> np.ndarray:
        if norm == "l0":
            return (eps < 1.0).astype(float)
        # P[|x1| > eps ||e_1||_*] for |x1| ~ U[a, b].
        eps = eps * self._unit_cost(norm)
        return np.clip((self.b - eps) / (self.b - self.a), 0.0, 1.0)

    # -- the overly robust classifier -------------------------------------------------
    def feature_classifier(self):
        """The classifier ``f(x) = [x2 > 0]`` that relies on the ignored feature.

        It agrees with the oracle on all of D and keeps its label within lp distance
        ``c`` of every sample, i.e. far beyond the good radius ``a``.
        """
        from invariance_tradeoffs.theory.oracles import FunctionOracle

        return FunctionOracle(lambda X: (X[:, 1] > 0).astype(np.int64), n_classes=2,
                              n_features=2, name="x2-classifier")

    def invariance_examples(self, X: np.ndarray) -> np.ndarray:
        """For each sample, the point ``(-x1, x2)``: the oracle label flips, ``x2`` does not.

        Its lp distance to ``x`` is ``2 |x1| <= 2 b``; the feature classifier labels it
        like ``x``, so it is an invariance example of that classifier at radius ``2|x1|``.
        """
        X = self.check_X(X)
        return np.column_stack([-X[:, 0], X[:, 1]])

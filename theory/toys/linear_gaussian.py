"""Gaussian mixture with a linear oracle ``O(x) = [w.x + b > 0]``.

Margins of a linear oracle (input space R^d, unbounded coordinates):

* lp, p >= 1: ``r_O(x) = |w.x + b| / ||w||_q`` with ``1/p + 1/q = 1`` (Hoelder's
  inequality, attained by moving along the dual direction of ``w``);
* l0: ``r_O(x) = 1`` for every ``x`` when ``w != 0`` -- one coordinate ``i`` with
  ``w_i != 0`` can move ``w.x + b`` to any value, and distance 0 keeps the label.

Under a Gaussian, ``w.x + b`` has a density that is positive at 0, so the good radius
(the essential infimum of the margin) is exactly 0 for every p >= 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from invariance_tradeoffs.theory.distances import Distance, dual_exponent
from invariance_tradeoffs.theory.results import Quantity, exact
from invariance_tradeoffs.theory.toys.common import (
    ToyBase,
    abs_normal_mixture_tail,
    canonical_norm,
    check_dimension,
    check_real,
    check_vector,
)
from invariance_tradeoffs.theory.validation import as_batch

__all__ = ["LinearGaussian", "linear_margin", "linear_oracle_labels", "dual_norm"]


def dual_norm(w: np.ndarray, norm: str | Distance) -> float:
    """``||w||_*``: for an lp name, ``||w||_q`` with ``q`` the dual exponent (p >= 1); for a
    :class:`Distance`, its :meth:`~Distance.dual_norm`."""
    if isinstance(norm, Distance):
        return float(norm.dual_norm(np.asarray(w, dtype=float)[None])[0])
    return float(np.linalg.norm(np.asarray(w, dtype=float), ord=dual_exponent(norm)))


def linear_oracle_labels(X: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """``1`` where ``w.x + b > 0``, else ``0`` (the boundary belongs to class 0)."""
    return (X @ w + b > 0).astype(np.int64)


def linear_margin(X: np.ndarray, w: Sequence[float] | np.ndarray, b: float,
                  norm: str) -> np.ndarray:
    """Exact margin of the linear oracle ``[w.x + b > 0]`` on R^d.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs.
    w : array_like, shape (d,)
        Normal vector, not all zero.
    b : float
        Offset.
    norm : str
        ``"l0"`` or an lp name with p >= 1 (``"l1"``, ``"l2"``, ``"linf"``, ``"l3"`` ...).

    Examples
    --------
    >>> X = np.array([[3.0, 4.0]])
    >>> linear_margin(X, [1.0, 1.0], -1.0, "l2").round(6).tolist()
    [4.242641]
    >>> linear_margin(X, [1.0, 1.0], -1.0, "linf").tolist()
    [3.0]
    """
    w = np.asarray(w, dtype=float)
    X = as_batch(X, "X", n_features=w.size)
    if not np.any(w != 0):
        raise ValueError("w must not be all zero (the oracle would be constant)")
    if not isinstance(norm, Distance):
        norm = canonical_norm(norm)
    if norm == "l0":
        return np.ones(X.shape[0])
    scale = float(np.abs(w).max())  # the margin is invariant to scaling (w, b) together
    return np.abs(X @ (w / scale) + b / scale) / dual_norm(w / scale, norm)


class LinearGaussian(ToyBase):
    """Two Gaussians ``N(+-m u, sigma^2 I_d)``, ``u = (1, ..., 1)/sqrt(d)``, linear oracle.

    Parameters
    ----------
    d : int
        Dimension.
    m : float
        Distance of each class mean from the origin (``>= 0``).
    sigma : float
        Per-coordinate standard deviation (``> 0``).
    prior : float
        ``P[class 1]`` in ``(0, 1)``; class 1 has mean ``+m u``.
    w : sequence of float, optional
        Oracle normal vector; default ``u`` (the Bayes direction).
    b : float
        Oracle offset; default 0.

    Notes
    -----
    Given the class, ``Z = w.x + b ~ N(+-m w.u + b, sigma^2 ||w||_2^2)``, hence the exact
    ceiling ``P[|Z| > eps ||w||_q]`` is a sum of four normal tail probabilities.

    Examples
    --------
    >>> fam = LinearGaussian(d=2, m=1.0, sigma=1.0)
    >>> fam.good_radius("l2").value
    0.0
    >>> round(float(fam.ceiling_curve(np.array([0.0]), "l2")[0]), 6)
    1.0
    """

    name = "linear-gaussian"
    n_classes = 2
    norms = ("l0", "l1", "l2", "linf")
    any_norm = True
    ceiling_norms = ("l0", "l1", "l2", "linf")

    def __init__(self, d: int = 2, m: float = 1.0, sigma: float = 1.0, prior: float = 0.5,
                 w: Sequence[float] | None = None, b: float = 0.0) -> None:
        self.d = check_dimension(d)
        self.n_features = self.d
        self.m = check_real(m, "m", low=0.0)
        self.sigma = check_real(sigma, "sigma", low=0.0, low_open=True)
        self.prior = check_real(prior, "prior", low=0.0, high=1.0, low_open=True, high_open=True)
        self.u = np.full(self.d, 1.0 / np.sqrt(self.d))
        self.w = self.u.copy() if w is None else check_vector(w, "w", self.d)
        if not np.any(self.w != 0):
            raise ValueError("w must not be all zero (the oracle would be constant)")
        self.b = check_real(b, "b")

    def params(self) -> dict:
        return {"d": self.d, "m": self.m, "sigma": self.sigma, "prior": self.prior,
                "w": self.w.tolist(), "b": self.b}

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        s = np.where(rng.random(n) < self.prior, 1.0, -1.0)
        return s[:, None] * self.m * self.u + self.sigma * rng.standard_normal((n, self.d))

    def _oracle(self, X: np.ndarray) -> np.ndarray:
        return linear_oracle_labels(X, self.w, self.b)

    def linear_oracle(self) -> tuple[np.ndarray, float]:
        return np.asarray(self.w, dtype=float), float(self.b)

    def _margin(self, X: np.ndarray, norm: str) -> np.ndarray:
        return linear_margin(X, self.w, self.b, norm)

    def _good_radius(self, norm: str) -> Quantity:
        if norm == "l0":
            return exact(1.0, "one coordinate with w_i != 0 reaches the other class")
        return exact(0.0, "ess inf of |w.x+b|/||w||_q: w.x+b is Gaussian, density > 0 at 0")

    def score_components(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Means, standard deviations and weights of the mixture law of ``w.x + b``."""
        shift = self.m * float(self.w @ self.u)
        sd = self.sigma * float(np.linalg.norm(self.w))
        return (np.array([shift + self.b, -shift + self.b]), np.array([sd, sd]),
                np.array([self.prior, 1.0 - self.prior]))

    def _ceiling(self, eps: np.ndarray, norm: str) -> np.ndarray:
        if norm == "l0":
            return (eps < 1.0).astype(float)
        return abs_normal_mixture_tail(eps * dual_norm(self.w, norm), *self.score_components())

"""Concentric spheres: class ``k`` is uniform on the sphere of radius ``r_k`` in R^d.

Oracle: the class of the nearest sphere by Euclidean norm, i.e. with midpoints
``t_k = (r_k + r_{k+1}) / 2``, ``O(x) = #{k : ||x||_2 > t_k}`` (the boundary sphere
``||x||_2 = t_k`` belongs to the inner class). Every input has a class (no REJECT).

For ``x`` of class ``k`` the other classes fill ``{||z||_2 <= t_{k-1}}`` (the inner ball,
absent for k = 0) and ``{||z||_2 > t_k}`` (the outer exterior, absent for the last
class), so ``r_O(x)`` is the smaller of two lp distances from ``x`` to a Euclidean ball
or its exterior. They have closed forms (proofs in ``proofs/closed_forms.md``), with
``a = |x|`` and ``rho = ||x||_2``:

* l2: inward ``rho - t``; outward ``t - rho``.
* l-inf: inward the ``delta`` with ``sum_i (a_i - delta)_+^2 = t^2``; outward the
  ``delta`` with ``sum_i (a_i + delta)^2 = t^2``.
* l1: inward ``sum_i (a_i - lam)_+`` with ``sum_i min(a_i, lam)^2 = t^2``; outward
  ``sqrt(t^2 - rho^2 + max_i a_i^2) - max_i a_i``.
* l0: inward the least ``m`` whose ``m`` largest ``a_i^2`` sum to ``>= rho^2 - t^2``;
  outward ``1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from invariance_tradeoffs.theory.results import Quantity, exact
from invariance_tradeoffs.theory.toys.common import (
    ToyBase,
    check_dimension,
    check_probabilities,
    water_level,
)

__all__ = ["ConcentricSpheres", "lp_distance_to_ball", "lp_distance_to_exterior"]


def lp_distance_to_ball(X: np.ndarray, t: np.ndarray, norm: str) -> np.ndarray:
    """``inf {||z - x||_p : ||z||_2 <= t}`` for rows with ``||x||_2 >= t`` (else 0).

    ``t`` has one entry per row. ``norm`` is one of ``"l0", "l1", "l2", "linf"``.
    """
    a = np.abs(X)
    rho2 = np.einsum("ij,ij->i", X, X)
    t = np.asarray(t, dtype=float)
    out = np.zeros(X.shape[0])
    rows = rho2 > t * t
    if not np.any(rows):
        return out
    a, rho2, t = a[rows], rho2[rows], t[rows]
    if norm == "l2":
        out[rows] = np.sqrt(rho2) - t
    elif norm == "l0":
        # Zero the largest coordinates first; m of them suffice iff their squares
        # remove at least rho^2 - t^2.
        top = np.cumsum(-np.sort(-a * a, axis=1), axis=1)
        need = rho2 - t * t
        out[rows] = 1 + (top < need[:, None] * (1 - 1e-12)).sum(axis=1)
    elif norm == "linf":
        out[rows] = _shrink_level(a, t)
    elif norm == "l1":
        # z_i = min(a_i, lam) with ||z||_2 = t maximises sum z_i inside the ball.
        lam = _clip_level(a, t)
        out[rows] = np.clip(a - lam[:, None], 0.0, None).sum(axis=1)
    else:  # pragma: no cover - guarded by ToyBase.check_norm
        raise ValueError(f"unsupported norm {norm!r}")
    return out


def lp_distance_to_exterior(X: np.ndarray, t: np.ndarray, norm: str) -> np.ndarray:
    """``inf {||z - x||_p : ||z||_2 > t}`` for rows with ``||x||_2 <= t`` (else 0)."""
    a = np.abs(X)
    rho2 = np.einsum("ij,ij->i", X, X)
    t = np.asarray(t, dtype=float)
    gap = np.clip(t * t - rho2, 0.0, None)
    d = X.shape[1]
    if norm == "l2":
        out = t - np.sqrt(rho2)
    elif norm == "l0":
        out = np.ones(X.shape[0])
    elif norm == "linf":
        # Move every coordinate outwards by delta: d delta^2 + 2 S delta - gap = 0.
        s = a.sum(axis=1)
        out = gap / (s + np.sqrt(s * s + d * gap)) if d else gap
        out = np.where(gap > 0, out, 0.0)
    elif norm == "l1":
        # The farthest point of an l1 ball is a vertex: spend all on the largest |x_i|.
        amax = a.max(axis=1)
        out = gap / (np.sqrt(gap + amax * amax) + amax)
        out = np.where(gap > 0, out, 0.0)
    else:  # pragma: no cover - guarded by ToyBase.check_norm
        raise ValueError(f"unsupported norm {norm!r}")
    return np.where(rho2 <= t * t, np.clip(out, 0.0, None), 0.0)


def _shrink_level(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``delta`` with ``sum_i (a_i - delta)_+^2 = t^2`` (rows with ``||a||_2 > t``)."""
    c = -np.sort(-a, axis=1)  # descending
    k = np.arange(1, c.shape[1] + 1)
    s = np.cumsum(c, axis=1)
    q = np.cumsum(c * c, axis=1)
    # Value of the left side at delta = c_j, using the j larger coordinates: increasing in j.
    at_break = q - 2 * c * s + k * c * c
    j = (at_break < (t * t)[:, None]).sum(axis=1)  # active coordinates: the j+1 largest ... j
    j = np.clip(j, 1, c.shape[1])
    rows = np.arange(c.shape[0])
    kk, ss, qq = j.astype(float), s[rows, j - 1], q[rows, j - 1]
    disc = np.clip(ss * ss - kk * (qq - t * t), 0.0, None)
    return (ss - np.sqrt(disc)) / kk


def _clip_level(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``lam`` with ``sum_i min(a_i, lam)^2 = t^2`` (rows with ``||a||_2 > t``)."""
    # Same water filling as water_level, applied to the squares.
    return np.sqrt(water_level(a * a, t * t))


class ConcentricSpheres(ToyBase):
    """Uniform distributions on concentric spheres, labelled by the nearest sphere.

    Parameters
    ----------
    d : int
        Dimension (>= 1; for ``d = 1`` a "sphere" is the pair ``{-r, r}``).
    radii : sequence of float
        Strictly increasing radii ``0 <= r_0 < r_1 < ...`` (at least two).
    priors : sequence of float, optional
        Class probabilities; uniform by default.

    Examples
    --------
    >>> fam = ConcentricSpheres(d=4, radii=(1.0, 2.0))
    >>> fam.good_radius("l2").value, fam.good_radius("linf").value
    (0.5, 0.25)
    """

    name = "spheres"
    norms = ("l0", "l1", "l2", "linf")
    ceiling_norms = ("l2",)

    def __init__(self, d: int = 2, radii: Sequence[float] = (1.0, 2.0),
                 priors: Sequence[float] | None = None) -> None:
        self.d = check_dimension(d)
        self.n_features = self.d
        r = np.asarray(radii, dtype=float) if not isinstance(radii, str) else np.array([np.nan])
        if r.ndim != 1 or r.size < 2:
            raise ValueError(f"radii must list at least two radii, got {radii!r}")
        if not np.all(np.isfinite(r)) or r[0] < 0 or np.any(np.diff(r) <= 0):
            raise ValueError(f"radii must be finite, >= 0 and strictly increasing, got {radii!r}")
        self.radii = r
        self.n_classes = int(r.size)
        self.priors = (np.full(r.size, 1.0 / r.size) if priors is None
                       else check_probabilities(priors, "priors", r.size))
        self.thresholds = (r[1:] + r[:-1]) / 2

    def params(self) -> dict:
        return {"d": self.d, "radii": self.radii.tolist(), "priors": self.priors.tolist()}

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.choice(self.n_classes, size=n, p=self.priors)
        g = rng.standard_normal((n, self.d))
        norms = np.linalg.norm(g, axis=1)
        g[norms == 0, 0], norms[norms == 0] = 1.0, 1.0  # probability-zero event
        return g / norms[:, None] * self.radii[k][:, None]

    def _oracle(self, X: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.thresholds, np.linalg.norm(X, axis=1), side="left")

    def _margin(self, X: np.ndarray, norm: str) -> np.ndarray:
        k = self._oracle(X)
        inner = np.concatenate([[0.0], self.thresholds])[k]
        outer = np.concatenate([self.thresholds, [np.inf]])[k]
        inward = np.where(k > 0, lp_distance_to_ball(X, inner, norm), np.inf)
        last = k == self.n_classes - 1
        outward = np.full(X.shape[0], np.inf)
        outward[~last] = lp_distance_to_exterior(X[~last], outer[~last], norm)
        return np.minimum(inward, outward)

    def class_margins_l2(self) -> np.ndarray:
        """The l2 margin of every point of sphere ``k`` (constant on the sphere)."""
        gaps = np.diff(self.radii) / 2
        return np.minimum(np.concatenate([[np.inf], gaps]), np.concatenate([gaps, [np.inf]]))

    def _good_radius(self, norm: str) -> Quantity:
        live = self.priors > 0
        if norm == "l0":
            return exact(1.0, "one coordinate suffices on a positive-measure cap of a sphere "
                         "(and the l0 margin is a positive integer)")
        m = float(self.class_margins_l2()[live].min())
        if norm == "linf":
            return exact(m / np.sqrt(self.d), "min half-gap / sqrt(d): ||v||_inf >= ||v||_2/"
                         "sqrt(d), attained at diagonal points")
        return exact(m, f"min half-gap between live radii ({norm}: attained at points on an "
                     "axis)" if norm == "l1" else "min half-gap between live radii")

    def _ceiling(self, eps: np.ndarray, norm: str) -> np.ndarray:
        # Sphere k has the constant l2 margin m_k.
        return (self.priors * (self.class_margins_l2() > eps[:, None])).sum(axis=1)

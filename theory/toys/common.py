"""Shared machinery of the toy families: parameter checks, norm names, a common base.

Every family derives from :class:`ToyBase`, which implements the validating parts of
:class:`~theory.toys.base.ToyFamily` (batch and norm checks, seeding, the Monte Carlo
ceiling estimate) and leaves the mathematics to ``_draw``, ``_oracle``, ``_margin``,
``_good_radius`` and ``_ceiling``.
"""

from __future__ import annotations

import numbers
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from invariance_tradeoffs.theory.distances import Distance, LpDistance, get_distance
from invariance_tradeoffs.theory.oracles import oracle_labels
from invariance_tradeoffs.theory.results import Quantity
from invariance_tradeoffs.theory.toys.base import ToyFamily
from invariance_tradeoffs.theory.validation import as_batch, check_eps, check_eps_grid, check_int

__all__ = [
    "ToyBase",
    "canonical_norm",
    "check_eps_grid",
    "MAX_DIMENSION",
    "MAX_SAMPLE_FLOATS",
    "check_dimension",
    "check_real",
    "check_probabilities",
    "check_seed",
    "abs_normal_mixture_tail",
    "water_level",
]


def canonical_norm(norm: object) -> str:
    """Canonical name (``"l0"``, ``"l1"``, ``"l2"``, ``"linf"``, ``"l3"``...) of a norm.

    Raises ``ValueError`` naming ``norm`` for names that are not lp norms.
    """
    return get_distance(norm).name  # type: ignore[arg-type]


def check_real(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float in the given (open or closed) interval."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    out = float(value)
    if not np.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    if low is not None and (out < low or (low_open and out == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {out}")
    if high is not None and (out > high or (high_open and out == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {out}")
    return out


#: Largest input dimension a family accepts: its parameter vectors are ``d`` floats and
#: its computations hold a few ``(n, d)`` batches, so a typo such as ``d=10**11`` is
#: refused up front instead of failing on a 745 GiB allocation.
MAX_DIMENSION = 1_000_000
#: Largest sample a family draws at once, in floats (``n * n_features``): 1.6 GB.
MAX_SAMPLE_FLOATS = 200_000_000


def check_dimension(d: object, name: str = "d") -> int:
    """An input dimension in ``[1, MAX_DIMENSION]``."""
    return check_int(d, name, low=1, high=MAX_DIMENSION)


def check_probabilities(p: object, name: str, length: int | None = None) -> np.ndarray:
    """Return a 1-D probability vector (entries >= 0 summing to 1 within 1e-9)."""
    arr = np.asarray(p, dtype=float) if not isinstance(p, str) else np.asarray([np.nan])
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D probability vector, got shape {arr.shape}")
    if length is not None and arr.size != length:
        raise ValueError(f"{name} must have {length} entries, got {arr.size}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must hold finite probabilities >= 0")
    if abs(arr.sum() - 1.0) > 1e-9:
        raise ValueError(f"{name} must sum to 1, got {arr.sum():.12g}")
    return arr / arr.sum()


def check_seed(seed: object) -> np.random.Generator:
    """A NumPy generator from an int seed, a Generator, or None."""
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"seed must be an int, a numpy Generator or None, got {type(seed).__name__}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(int(seed))


def check_vector(value: object, name: str, length: int) -> np.ndarray:
    """A finite float vector of the given length (a scalar is not broadcast)."""
    arr = np.asarray(value, dtype=float) if not isinstance(value, str) else np.asarray([np.nan])
    if arr.ndim != 1 or arr.size != length:
        raise ValueError(f"{name} must be a 1-D vector of length {length}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def abs_normal_mixture_tail(
    t: np.ndarray, means: Sequence[float], sds: Sequence[float], weights: Sequence[float]
) -> np.ndarray:
    """``P[|Z| > t]`` for ``Z`` a mixture of normals ``sum_j w_j N(mu_j, s_j^2)``.

    Vectorised over the thresholds ``t``; a component with ``s_j = 0`` is a point mass.
    """
    t = np.asarray(t, dtype=float)[..., None]
    mu = np.asarray(means, dtype=float)
    sd = np.asarray(sds, dtype=float)
    w = np.asarray(weights, dtype=float)
    safe = np.where(sd > 0, sd, 1.0)
    upper = np.where(sd > 0, stats.norm.sf((t - mu) / safe), (mu > t).astype(float))
    lower = np.where(sd > 0, stats.norm.cdf((-t - mu) / safe), (mu < -t).astype(float))
    return np.clip((w * (upper + lower)).sum(axis=-1), 0.0, 1.0)


def water_level(caps: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Solve ``sum_i min(caps_i, lam) = amount`` for ``lam`` row by row (water filling).

    ``caps`` has shape ``(n, m)`` with entries >= 0; ``amount`` shape ``(n,)`` with
    ``0 <= amount <= caps.sum(1)``. The left side is continuous and non-decreasing in
    ``lam``, piecewise linear with breakpoints at the caps, so the root is found by
    sorting: ``lam = (amount - P_j) / (m - j)`` on the piece ``[c_(j-1), c_(j)]``
    where ``P_j`` is the sum of the ``j`` smallest caps.
    """
    c = np.sort(caps, axis=1)
    n, m = c.shape
    prefix = np.concatenate([np.zeros((n, 1)), np.cumsum(c, axis=1)[:, :-1]], axis=1)
    at_break = prefix + (m - np.arange(m)) * c  # value of the left side at lam = c_(j)
    j = np.minimum((at_break < amount[:, None]).sum(axis=1), m - 1)
    rows = np.arange(n)
    lam = (amount - prefix[rows, j]) / (m - j)
    return np.clip(lam, 0.0, None)


class ToyBase(ToyFamily):
    """Validating base class shared by the toy families.

    Subclasses implement ``_draw(n, rng) -> X``, ``_oracle(X) -> labels``,
    ``_margin(X, norm)``, ``_good_radius(norm) -> Quantity`` and
    ``_ceiling(eps, norm)``, and set ``norms`` (exact margins and good radii) and
    ``ceiling_norms`` (exact ceiling curves).
    """

    #: Norms with an exact ceiling curve (a subset of ``norms``).
    ceiling_norms: tuple[str, ...] = ()

    # -- checks -------------------------------------------------------------------
    def check_norm(self, norm: object, allowed: Sequence[str] | None = None,
                   what: str = "exact margin") -> Any:
        """Canonical norm name; for families with ``any_norm``, also any other
        :class:`Distance` that has a dual norm (returned as is). Otherwise ``ValueError``
        naming ``norm`` and the family."""
        allowed = tuple(self.norms if allowed is None else allowed)
        if isinstance(norm, Distance) and not (isinstance(norm, LpDistance)
                                               and norm.name in allowed):
            if self.any_norm:
                try:
                    norm.dual_norm(np.zeros((1, self.n_features)))
                except NotImplementedError:
                    pass
                else:
                    return norm
            raise ValueError(f"distance {norm.name!r} has no {what} for family "
                             f"{self.name!r}; supported norms: {', '.join(allowed) or 'none'}"
                             + (" or any distance with a dual norm" if self.any_norm else ""))
        try:
            name = canonical_norm(norm)
        except (ValueError, TypeError):
            name = None
        if name not in allowed:
            raise ValueError(
                f"norm {norm!r} has no {what} for family {self.name!r}; "
                f"supported norms: {', '.join(allowed) or 'none'}"
            )
        return name

    def check_X(self, X: Any, name: str = "X") -> np.ndarray:
        """Validated batch of shape ``(n, n_features)``."""
        return as_batch(X, name, n_features=self.n_features)

    # -- the ToyFamily interface ----------------------------------------------------
    def sample(self, n: int, seed: int | np.random.Generator | None = 0
               ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` inputs ``X ~ D`` and their oracle labels ``O(X)`` (seeded)."""
        n = check_int(n, "n", low=1)
        if n * self.n_features > MAX_SAMPLE_FLOATS:
            raise ValueError(f"n = {n} inputs of dimension {self.n_features} exceed the "
                             f"{MAX_SAMPLE_FLOATS:,} floats a sample may hold; draw it in "
                             "smaller batches")
        X = self._draw(n, check_seed(seed))
        return X, self.oracle(X)

    def oracle(self, X: np.ndarray) -> np.ndarray:
        """Oracle labels of a batch: classes ``0..n_classes-1`` or ``REJECT``."""
        X = as_batch(X, "X", n_features=self.n_features, allow_empty=True)
        return oracle_labels(self._oracle(X), n_classes=self.n_classes, n=X.shape[0])

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """The family is itself an oracle (``n_classes`` + call), see :mod:`theory.oracles`."""
        return self.oracle(X)

    def margin(self, X: np.ndarray, norm: str) -> np.ndarray:
        """Exact oracle margin ``r_O(x)`` of each row under ``norm``."""
        norm = self.check_norm(norm)
        return self._margin(self.check_X(X), norm)

    def good_radius(self, norm: str) -> Quantity:
        """Exact good radius ``eps*(norm)``: the essential infimum of ``r_O`` over D."""
        return self._good_radius(self.check_norm(norm))

    def ceiling_curve(self, eps: np.ndarray, norm: str) -> np.ndarray:
        """Exact ``P_D[r_O(x) > eps]`` on a 1-D grid of radii."""
        norm = self.check_norm(norm, self.ceiling_norms, "exact ceiling curve (estimate it "
                               "by sampling: ceiling_estimate, or --estimate N in the CLI)")
        return np.clip(self._ceiling(check_eps_grid(eps), norm), 0.0, 1.0)

    def ceiling_estimate(self, eps: float, norm: str, n: int = 10_000,
                         seed: int | np.random.Generator | None = 0,
                         confidence: float = 0.95) -> Quantity:
        """Monte Carlo estimate of ``P_D[r_O(x) > eps]`` with a Clopper-Pearson interval.

        Uses the exact margins of ``n`` seeded samples, so it is available for every
        norm in ``norms`` (also those without a closed-form ceiling).
        """
        from invariance_tradeoffs.theory.margins import ceiling_from_margins

        eps = check_eps(eps)
        X, _ = self.sample(n, seed)
        return ceiling_from_margins(self.margin(X, norm), [eps], exact=True,
                                    confidence=confidence)[0]

    def describe(self) -> dict:
        """JSON-friendly summary: name, dimensions, exact norms and parameters."""
        return {
            "family": self.name,
            "n_features": int(self.n_features),
            "n_classes": int(self.n_classes),
            "exact_margin_norms": list(self.norms),
            "any_norm_with_dual": bool(self.any_norm),
            "exact_ceiling_norms": list(self.ceiling_norms),
            "params": self.params(),
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    # -- the mathematics, per family ------------------------------------------------
    @abstractmethod
    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` inputs drawn from D with ``rng``."""

    @abstractmethod
    def _oracle(self, X: np.ndarray) -> np.ndarray:
        """Oracle labels of a validated batch."""

    @abstractmethod
    def _margin(self, X: np.ndarray, norm: str) -> np.ndarray:
        """Exact margins of a validated batch under a supported norm."""

    @abstractmethod
    def _good_radius(self, norm: str) -> Quantity:
        """Exact good radius under a supported norm."""

    @abstractmethod
    def _ceiling(self, eps: np.ndarray, norm: str) -> np.ndarray:
        """Exact ceiling on a validated grid under a norm of ``ceiling_norms``."""

"""Typed results: every computed quantity says whether it is exact, a bound or an estimate.

The paper's quantities are sometimes available in closed form (exact), sometimes only
as an inequality (a bound), and sometimes only by sampling (an estimate with a
confidence interval). :class:`Quantity` carries that provenance with the number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
from scipy import stats

__all__ = ["Quantity", "exact", "bound", "proportion_estimate", "mean_estimate"]

Kind = Literal["exact", "bound", "estimate"]


@dataclass(frozen=True)
class Quantity:
    """A number together with how it was obtained.

    Attributes
    ----------
    value : float
        The number (for a bound, the bound itself; for an estimate, the point estimate).
    kind : {"exact", "bound", "estimate"}
        ``"exact"``: closed form or exhaustive computation (up to float rounding).
        ``"bound"``: a guaranteed inequality, see ``side``.
        ``"estimate"``: a sample estimate with the interval ``[low, high]``.
    method : str
        Short human-readable description of how the value was obtained.
    side : {"upper", "lower"} or None
        For bounds, whether ``value`` is an upper or lower bound of the true quantity.
    low, high : float or None
        Confidence interval for estimates.
    confidence : float or None
        Confidence level of ``[low, high]``.
    n : int or None
        Sample size behind an estimate.
    """

    value: float
    kind: Kind
    method: str
    side: Literal["upper", "lower"] | None = None
    low: float | None = None
    high: float | None = None
    confidence: float | None = None
    n: int | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("exact", "bound", "estimate"):
            raise ValueError(f"kind must be 'exact', 'bound' or 'estimate', got {self.kind!r}")
        if self.kind == "bound" and self.side not in ("upper", "lower"):
            raise ValueError("a bound needs side='upper' or side='lower'")

    def __float__(self) -> float:
        return float(self.value)

    def to_dict(self) -> dict:
        """JSON-friendly dictionary (infinities become the strings ``"inf"``/``"-inf"``)."""
        out = asdict(self)
        for key, val in list(out.items()):
            if isinstance(val, float) and math.isinf(val):
                out[key] = "inf" if val > 0 else "-inf"
        return out

    def __str__(self) -> str:
        if self.kind == "exact":
            return f"{self.value:.6g} (exact: {self.method})"
        if self.kind == "bound":
            rel = "<=" if self.side == "upper" else ">="
            return f"true value {rel} {self.value:.6g} (bound: {self.method})"
        pct = int(round(100 * (self.confidence or 0)))
        return (
            f"{self.value:.6g} (estimate, {pct}% CI [{self.low:.6g}, {self.high:.6g}],"
            f" n={self.n}: {self.method})"
        )


def exact(value: float, method: str, **extra: object) -> Quantity:
    """Shorthand for an exact :class:`Quantity`."""
    return Quantity(float(value), "exact", method, extra=dict(extra))


def bound(value: float, side: Literal["upper", "lower"], method: str, **extra: object) -> Quantity:
    """Shorthand for a bound."""
    return Quantity(float(value), "bound", method, side=side, extra=dict(extra))


def proportion_estimate(
    successes: int, n: int, method: str, confidence: float = 0.95, **extra: object
) -> Quantity:
    """Estimate of a probability from ``successes`` out of ``n`` Bernoulli trials.

    The interval is the exact Clopper-Pearson interval (``scipy.stats.binomtest``),
    which never under-covers.

    Examples
    --------
    >>> q = proportion_estimate(80, 100, "Monte Carlo")
    >>> round(q.value, 2), q.kind
    (0.8, 'estimate')
    """
    if n <= 0:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}], got {successes}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(
        confidence_level=confidence, method="exact"
    )
    return Quantity(
        successes / n,
        "estimate",
        method,
        low=float(ci.low),
        high=float(ci.high),
        confidence=confidence,
        n=int(n),
        extra=dict(extra),
    )


def mean_estimate(
    samples: np.ndarray, method: str, confidence: float = 0.95, **extra: object
) -> Quantity:
    """Estimate of a mean with a Student-t confidence interval."""
    arr = np.asarray(samples, dtype=float).ravel()
    if arr.size < 2:
        raise ValueError(f"samples must hold at least 2 values, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("samples contain NaN or inf")
    mean = float(arr.mean())
    sem = float(stats.sem(arr))
    if sem == 0.0:
        low = high = mean
    else:
        low, high = stats.t.interval(confidence, arr.size - 1, loc=mean, scale=sem)
    return Quantity(
        mean, "estimate", method, low=float(low), high=float(high),
        confidence=confidence, n=int(arr.size), extra=dict(extra),
    )

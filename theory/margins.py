"""Oracle margins, good distances, good radii and the robust-accuracy ceiling.

* The **oracle margin** of ``x`` under ``d`` is
  ``r_O(x) = inf { d(x, x') : O(x') is a class and O(x') != O(x) }``
  (``inf`` when no other class exists); inputs the oracle rejects are never targets.
* ``(d, eps)`` is **good** for ``(O, D)`` when ``eps < r_O(x)`` for D-almost every ``x``.
* The **good radius** ``eps*(d)`` is the essential infimum of ``r_O`` over ``D``.
* The **ceiling** at radius ``eps`` is ``P_D[r_O(x) > eps]``: no classifier that is
  constant on the eps-balls (robust in the standard lp sense) can be correct and free of
  invariance examples on more of ``D`` (:mod:`invariance_tradeoffs.theory.robust_accuracy`;
  ``proofs/lemma.md``, Corollary 2).

Margins computed over a finite candidate set are exact when the candidates are the
whole domain and otherwise **upper bounds** (a missed nearer point of another class can
only lower the infimum). Every number returned says which (:class:`~theory.results.Quantity`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from invariance_tradeoffs.theory.distances import Distance
from invariance_tradeoffs.theory.examples import (
    as_candidates,
    check_distance,
    check_oracle,
    in_ball,
    oracle_of,
    resolve_exhaustive,
    row_blocks,
)
from invariance_tradeoffs.theory.oracles import REJECT
from invariance_tradeoffs.theory.results import Quantity, bound, exact, proportion_estimate
from invariance_tradeoffs.theory.validation import (
    as_batch,
    as_real_vector,
    check_eps,
    check_eps_grid,
)

__all__ = [
    "Margins",
    "oracle_margin",
    "good_radius_from_margins",
    "is_good",
    "ceiling_from_margins",
]


@dataclass(frozen=True)
class Margins:
    """Oracle margins of a batch, with their provenance.

    Attributes
    ----------
    values : ndarray of float, shape (n,)
        ``r_O(x)`` (exact) or an upper bound on it; ``inf`` when no input of another
        class was found.
    witness : ndarray of int, shape (n,)
        Index into the candidates of a nearest input of another class (``-1`` if none).
    exact : bool
        Whether the candidates were the whole domain, making ``values`` exact.
    method : str
        How the margins were obtained.
    """

    values: np.ndarray
    witness: np.ndarray
    exact: bool
    method: str

    def __post_init__(self) -> None:
        # Checked once here, so every function taking Margins may trust them.
        values = check_margin_values(self.values, "values")
        witness = np.asarray(self.witness)
        if witness.ndim != 1 or not (witness.size == 0 or np.issubdtype(witness.dtype,
                                                                         np.integer)):
            raise TypeError(f"witness must be a 1-D integer array, got dtype {witness.dtype} "
                            f"shape {witness.shape}")
        if witness.shape != values.shape:
            raise ValueError(f"witness must have one entry per margin: values has "
                             f"{values.shape[0]}, witness {witness.shape[0]}")
        if np.any(witness < -1):
            raise ValueError("witness must hold candidate indices >= 0, or -1 for none")
        if not isinstance(self.exact, bool | np.bool_):
            raise TypeError(f"exact must be a bool, got {type(self.exact).__name__}")
        if not isinstance(self.method, str):
            raise TypeError(f"method must be a string, got {type(self.method).__name__}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "witness", witness.astype(np.int64, copy=False))
        object.__setattr__(self, "exact", bool(self.exact))

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.values, dtype=dtype)

    @property
    def kind(self) -> str:
        """``"exact"`` or ``"bound"`` (an upper bound per input)."""
        return "exact" if self.exact else "bound"

    def quantity(self, i: int) -> Quantity:
        """The margin of input ``i`` as a :class:`Quantity`."""
        value = float(self.values[i])
        if self.exact:
            return exact(value, self.method)
        return bound(value, "upper", self.method)


def oracle_margin(
    X: Any,
    oracle: Any,
    distance: Distance,
    candidates: Any,
    exhaustive: bool | None = None,
) -> Margins:
    """Oracle margins ``r_O(x)`` of each row of ``X`` over a finite candidate set.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs.
    oracle : Oracle
        The true labelling.
    distance : Distance
        ``d``; the margin is ``min d(x, x')`` over candidates ``x'`` whose oracle label
        is a class different from ``O(x)``.
    candidates : array_like, shape (m, d)
        Inputs searched for the nearest other class.
    exhaustive : bool, optional
        Whether ``candidates`` is the whole domain (default: detected for a
        :class:`~theory.oracles.TableOracle`). Exact margins need it; otherwise each
        value is an upper bound on ``r_O(x)``.

    Returns
    -------
    Margins

    Examples
    --------
    >>> from invariance_tradeoffs.theory.oracles import TableOracle
    >>> from invariance_tradeoffs.theory.distances import LpDistance
    >>> pts = np.arange(5.0)[:, None]
    >>> O = TableOracle(pts, [0, 0, -1, 1, 1], n_classes=2)
    >>> m = oracle_margin(pts, O, LpDistance(1), pts)
    >>> m.values.tolist(), m.kind
    ([3.0, 2.0, 1.0, 2.0, 3.0], 'exact')
    """
    check_oracle(oracle)
    distance = check_distance(distance)
    X = as_batch(X, "X")
    C = as_candidates(candidates, X.shape[1])
    is_exact = resolve_exhaustive(oracle, C, exhaustive)
    o_x, o_c = oracle_of(oracle, X), oracle_of(oracle, C)
    values = np.empty(X.shape[0])
    witness = np.empty(X.shape[0], dtype=np.int64)
    for rows in row_blocks(X.shape[0], C.shape[0]):
        other = (o_c[None, :] != o_x[rows, None]) & (o_c[None, :] != REJECT)
        dist = np.where(other, distance.pairwise(X[rows], C), np.inf)
        idx = np.argmin(dist, axis=1)
        values[rows] = dist[np.arange(dist.shape[0]), idx]
        witness[rows] = np.where(np.isfinite(values[rows]), idx, -1)
    how = "exhaustive" if is_exact else "upper bound from"
    method = f"{how} search over {C.shape[0]} candidates under {distance.name}"
    return Margins(values, witness, is_exact, method)


def _margin_values(margins: Any, exact_flag: bool | None) -> tuple[np.ndarray, bool]:
    if isinstance(margins, Margins):
        if exact_flag is not None and bool(exact_flag) and not margins.exact:
            raise ValueError("exact=True but the Margins are upper bounds (non-exhaustive)")
        return margins.values, margins.exact if exact_flag is None else bool(exact_flag)
    if exact_flag is None:
        raise ValueError(
            "exact must be given (True if the margins are exact, False if upper bounds) "
            "when margins is a plain array"
        )
    if not isinstance(exact_flag, bool | np.bool_):
        raise TypeError(f"exact must be a bool, got {type(exact_flag).__name__}")
    return check_margin_values(margins), bool(exact_flag)


def check_margin_values(values: Any, name: str = "margins") -> np.ndarray:
    """Margins as a non-empty 1-D float array: real, ``>= 0``, ``inf`` allowed, no NaN."""
    arr = as_real_vector(values, name, allow_inf=True)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0 (inf allowed), got {arr[arr < 0][:3].tolist()}")
    return arr


def check_weights(weights: Any, n: int) -> np.ndarray | None:
    """Probabilities of a finite support of ``n`` points (``None`` passes through)."""
    if weights is None:
        return None
    w = as_real_vector(weights, "weights", length=n)
    if np.any(w < 0):
        raise ValueError("weights must be finite and >= 0")
    if not np.isclose(w.sum(), 1.0, rtol=0, atol=1e-9):
        raise ValueError(f"weights must be probabilities summing to 1, got sum {w.sum():.12g}")
    return w


def good_radius_from_margins(
    margins: Margins | Any,
    weights: Any = None,
    exact: bool | None = None,
    confidence: float = 0.95,
) -> Quantity:
    """The good radius ``eps*(d)``: the essential infimum of ``r_O`` over ``D``.

    Parameters
    ----------
    margins : Margins or array_like, shape (n,)
        Margins of the support points (with ``weights``) or of samples from ``D``.
    weights : array_like, shape (n,), optional
        Probabilities of a finite support. Then the essential infimum is the minimum
        over positive-weight points: **exact** for exact margins, an **upper bound**
        for upper-bound margins.
    exact : bool, optional
        Whether the margin values are exact; required for plain arrays, read from
        :class:`Margins` otherwise.
    confidence : float
        Confidence level of the sample statement below.

    Returns
    -------
    Quantity
        Without ``weights`` the rows are taken as i.i.d. samples from ``D``; their
        minimum is an **upper bound** on ``eps*`` that holds almost surely (every
        sample's margin is at least the essential infimum). For exact margins,
        ``extra["mass_below"]`` is ``1 - (1 - confidence)^(1/n)``: with probability
        ``>= confidence`` the D-mass of ``{x : r_O(x) < value}`` is at most that.

    Examples
    --------
    >>> good_radius_from_margins([2.0, 0.5, 1.0], weights=[0.5, 0.0, 0.5], exact=True).value
    1.0
    """
    values, is_exact = _margin_values(margins, exact)
    w = check_weights(weights, values.shape[0])
    if w is not None:
        value = float(values[w > 0].min())
        if is_exact:
            return Quantity(value, "exact", "minimum of exact margins over the support")
        return bound(value, "upper", "minimum over the support of upper bounds on margins")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = values.shape[0]
    value = float(values.min())
    extra: dict = {"n": n}
    if is_exact:
        extra.update(mass_below=float(1 - (1 - confidence) ** (1 / n)), confidence=confidence)
    return bound(value, "upper", f"minimum margin of {n} samples from D (holds a.s.)", **extra)


def is_good(margins: Margins | Any, eps: float, weights: Any = None,
            exact: bool | None = None) -> bool:
    """Whether ``(d, eps)`` is good: ``eps < r_O(x)`` for every (positive-weight) point.

    With upper-bound margins a ``False`` is certain (some point provably has
    ``r_O(x) <= eps``), while ``True`` only means that no violation was found.

    Examples
    --------
    >>> is_good([2.0, 1.0], 0.5, exact=True), is_good([2.0, 1.0], 1.0, exact=True)
    (True, False)
    """
    # Exactness does not change the answer, only how certain it is.
    values, _ = _margin_values(margins, None if isinstance(margins, Margins) else bool(exact))
    eps = check_eps(eps)
    w = check_weights(weights, values.shape[0])
    support = values if w is None else values[w > 0]
    return bool(not np.any(in_ball(support, eps)))


def ceiling_from_margins(
    margins: Margins | Any,
    eps_grid: Any,
    weights: Any = None,
    exact: bool | None = None,
    confidence: float = 0.95,
) -> list[Quantity]:
    """The ceiling ``P_D[r_O(x) > eps]`` for each radius of ``eps_grid``.

    With ``weights`` (a finite support) the value is the weight of ``{r_O > eps}``:
    exact for exact margins, an upper bound for upper-bound margins. Without weights
    the rows are i.i.d. samples from ``D`` and each value is a proportion estimate with
    a Clopper-Pearson interval (for upper-bound margins: an estimate of an upper bound).

    Examples
    --------
    >>> qs = ceiling_from_margins([0.5, 1.0, 2.0], [0.0, 1.0], weights=[0.25, 0.25, 0.5],
    ...                           exact=True)
    >>> [(q.value, q.kind) for q in qs]
    [(1.0, 'exact'), (0.5, 'exact')]
    """
    values, is_exact = _margin_values(margins, exact)
    grid = check_eps_grid(eps_grid, "eps_grid", allow_scalar=True, allow_empty=False)
    w = check_weights(weights, values.shape[0])
    out: list[Quantity] = []
    for eps in grid:
        above = ~in_ball(values, float(eps))
        if w is not None:
            value = float(w[above].sum())
            method = f"weight of {{r_O > {eps:g}}} on the finite support"
            out.append(Quantity(value, "exact", method) if is_exact else
                       bound(value, "upper", method + " (margins are upper bounds)"))
        else:
            what = "P_D[r_O > eps]" if is_exact else "an upper bound on P_D[r_O > eps]"
            out.append(proportion_estimate(int(above.sum()), values.shape[0],
                                           f"sample estimate of {what}", confidence, eps=eps))
    return out

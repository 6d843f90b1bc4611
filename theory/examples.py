"""Sensitivity and invariance adversarial examples (Tramèr et al., ICML 2020, Defs. 1-2).

For a classifier ``f``, an oracle ``O``, a distance ``d`` and a radius ``eps``:

* a **sensitivity example** of ``f`` at ``x`` is an ``x'`` with ``d(x, x') <= eps``,
  ``O(x') = O(x)`` and ``f(x') != O(x')`` -- the true class did not move, the model did;
* an **invariance example** of ``f`` at ``x`` is an ``x'`` with ``d(x, x') <= eps``,
  ``O(x')`` a class different from ``O(x)`` (not :data:`~theory.oracles.REJECT`) and
  ``f(x') = f(x)`` -- the true class moved, the model did not.

The paper states both definitions at inputs ``x`` that have a class; we apply them
verbatim at every ``x``. At an ``x`` the oracle rejects this treats ``REJECT`` like the
input's own label but never as the target of an invariance example, which keeps the
tradeoff lemma (:mod:`invariance_tradeoffs.theory.theorem`) true there as well.

Balls are closed: ``d(x, x') <= eps``. All comparisons with a radius go through
:func:`in_ball`, which admits a relative slack of ``1e-12`` so that the row-wise and
pairwise distance kernels (which may differ in the last bits) agree on the boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from invariance_tradeoffs.theory.distances import Distance, get_distance
from invariance_tradeoffs.theory.oracles import REJECT, TableOracle, oracle_labels, predict
from invariance_tradeoffs.theory.validation import as_batch, check_eps, check_same_length

__all__ = [
    "in_ball",
    "is_sensitivity_example",
    "is_invariance_example",
    "find_examples",
    "ExampleSearch",
    "resolve_exhaustive",
]

#: Relative slack of the closed-ball test (see :func:`in_ball`).
BALL_RTOL = 1e-12
#: Target number of entries of one pairwise-distance block.
_BLOCK_ENTRIES = 2_000_000


def in_ball(dist: Any, eps: Any) -> np.ndarray:
    """Whether distances lie in the closed ball of radius ``eps``.

    ``dist <= eps + 1e-12 * max(1, eps)`` (``eps`` may be an array broadcasting with
    ``dist``); the slack absorbs float rounding only.
    Goodness ``eps < r_O(x)`` is tested as ``not in_ball(r_O(x), eps)`` everywhere,
    so that examples, margins and the theorem checks use one consistent boundary.

    Examples
    --------
    >>> in_ball(np.array([0.5, 1.0, 1.0 + 1e-15, 1.1]), 1.0).tolist()
    [True, True, True, False]
    """
    dist = np.asarray(dist, dtype=float)
    eps = np.asarray(eps, dtype=float)
    if np.any(np.isnan(dist)):
        raise ValueError("dist contains NaN")
    if np.any(~np.isfinite(eps)) or np.any(eps < 0):
        raise ValueError("eps must be finite and >= 0")
    return dist <= eps + BALL_RTOL * np.maximum(1.0, eps)


def check_oracle(oracle: Any) -> Any:
    """Check that ``oracle`` is callable and has an integer ``n_classes`` attribute."""
    if not callable(oracle) or not isinstance(getattr(oracle, "n_classes", None), int | np.integer):
        raise TypeError(
            "oracle must be callable with an integer n_classes attribute "
            f"(e.g. FunctionOracle/TableOracle), got {type(oracle).__name__}"
        )
    return oracle


def check_distance(distance: Any, name: str = "distance") -> Distance:
    """Return ``distance`` as a :class:`~invariance_tradeoffs.theory.distances.Distance`.

    Norm names such as ``"l2"`` are resolved with :func:`~theory.distances.get_distance`;
    unknown names raise ``ValueError``, other types ``TypeError``.
    """
    if isinstance(distance, str):
        try:
            return get_distance(distance)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    if not isinstance(distance, Distance):
        raise TypeError(
            f"{name} must be a invariance_tradeoffs.theory.distances.Distance or a norm name, "
            f"got {type(distance).__name__}"
        )
    return distance


def oracle_of(oracle: Any, X: np.ndarray) -> np.ndarray:
    """Validated oracle labels of the batch ``X``."""
    return oracle_labels(oracle(X), n_classes=int(oracle.n_classes), n=X.shape[0])


def classifier_of(f: Any, X: np.ndarray, oracle: Any) -> np.ndarray:
    """Validated labels of classifier ``f`` on ``X`` (classes of ``oracle`` or REJECT)."""
    return predict(f, X, n_classes=int(oracle.n_classes))


def as_candidates(candidates: Any, n_features: int) -> np.ndarray:
    """Validate the finite candidate set searched for examples and margins."""
    return as_batch(candidates, "candidates", n_features=n_features)


def resolve_exhaustive(oracle: Any, candidates: np.ndarray, exhaustive: bool | None) -> bool:
    """Decide whether ``candidates`` is the whole input domain.

    Only then are searches over ``candidates`` exact. With ``exhaustive=None`` the
    answer is ``True`` exactly when ``oracle`` is a :class:`~theory.oracles.TableOracle`
    whose domain (its points; no ``outside`` label) is contained in ``candidates``.
    ``exhaustive=True`` is checked against a table oracle's domain when possible and is
    otherwise the caller's claim.
    """
    if exhaustive is not None and not isinstance(exhaustive, bool | np.bool_):
        raise TypeError(f"exhaustive must be a bool or None, got {type(exhaustive).__name__}")
    covered = None
    if isinstance(oracle, TableOracle) and oracle.outside is None:
        covered = oracle.covers(candidates)
    if exhaustive is None:
        return bool(covered)
    if exhaustive and covered is False:
        raise ValueError(
            "exhaustive=True but candidates do not contain every point of the oracle's "
            "finite domain"
        )
    return bool(exhaustive)


def row_blocks(n_rows: int, n_cols: int) -> Iterator[slice]:
    """Slices of ``range(n_rows)`` so that each block of a pairwise matrix stays small."""
    step = max(1, _BLOCK_ENTRIES // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def _paired_labels(
    x: Any, x_prime: Any, oracle: Any, f: Any, distance: Any, eps: float
) -> tuple[np.ndarray, ...]:
    check_oracle(oracle)
    distance = check_distance(distance)
    eps = check_eps(eps)
    X = as_batch(x, "x")
    Xp = as_batch(x_prime, "x_prime", n_features=X.shape[1])
    check_same_length(x=X, x_prime=Xp)
    inside = in_ball(distance(X, Xp), eps)
    return inside, oracle_of(oracle, X), oracle_of(oracle, Xp), classifier_of(f, X, oracle), \
        classifier_of(f, Xp, oracle)


def is_sensitivity_example(
    x: Any, x_prime: Any, oracle: Any, f: Any, distance: Distance, eps: float
) -> np.ndarray:
    """Whether each ``x_prime[i]`` is a sensitivity example of ``f`` at ``x[i]`` within ``eps``.

    Parameters
    ----------
    x, x_prime : array_like, shape (n, d)
        Paired inputs and candidate perturbations.
    oracle : Oracle
        The true labelling ``O`` (classes or ``REJECT``).
    f : callable or estimator
        The classifier.
    distance : Distance or str
        The distance ``d`` (or a norm name for :func:`~theory.distances.get_distance`).
    eps : float
        Radius ``>= 0`` of the closed ball.

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
        ``d(x, x') <= eps and O(x') == O(x) and f(x') != O(x')``.

    Notes
    -----
    A misclassified input (``f(x) != O(x)``), or one the oracle rejects while ``f`` names a
    class, is its own sensitivity example at every radius, ``eps = 0`` included: ``x' = x``
    satisfies all three conditions. So "no sensitivity example" implies "correct", and
    the robust shares of :mod:`~invariance_tradeoffs.theory.robust_accuracy` count only
    correct inputs.

    Examples
    --------
    >>> from invariance_tradeoffs.theory.oracles import FunctionOracle
    >>> from invariance_tradeoffs.theory.distances import LpDistance
    >>> O = FunctionOracle(lambda X: (X[:, 0] > 0).astype(int), n_classes=2)
    >>> f = lambda X: (X[:, 0] > 0.5).astype(int)
    >>> is_sensitivity_example([[1.0]], [[0.3]], O, f, LpDistance(2), 1.0).tolist()
    [True]
    """
    inside, o_x, o_xp, _, f_xp = _paired_labels(x, x_prime, oracle, f, distance, eps)
    return inside & (o_xp == o_x) & (f_xp != o_xp)


def is_invariance_example(
    x: Any, x_prime: Any, oracle: Any, f: Any, distance: Distance, eps: float
) -> np.ndarray:
    """Whether each ``x_prime[i]`` is an invariance example of ``f`` at ``x[i]`` within ``eps``.

    Returns ``d(x, x') <= eps and O(x') not in {O(x), REJECT} and f(x') == f(x)``,
    shape ``(n,)``. Parameters as in :func:`is_sensitivity_example`.

    Examples
    --------
    >>> from invariance_tradeoffs.theory.oracles import FunctionOracle
    >>> from invariance_tradeoffs.theory.distances import LpDistance
    >>> O = FunctionOracle(lambda X: (X[:, 0] > 0).astype(int), n_classes=2)
    >>> always_one = lambda X: np.ones(len(X), dtype=int)
    >>> is_invariance_example([[1.0]], [[-0.5]], O, always_one, LpDistance(2), 2.0).tolist()
    [True]
    """
    inside, o_x, o_xp, f_x, f_xp = _paired_labels(x, x_prime, oracle, f, distance, eps)
    return inside & (o_xp != o_x) & (o_xp != REJECT) & (f_xp == f_x)


@dataclass(frozen=True)
class ExampleSearch:
    """Result of :func:`find_examples` over a finite candidate set.

    Attributes
    ----------
    sensitivity, invariance : ndarray of bool, shape (n, m)
        ``[i, j]`` is true when ``candidates[j]`` is a sensitivity (invariance) example
        of ``f`` at ``X[i]``.
    label_change : ndarray of bool, shape (n, m)
        ``candidates[j]`` is within ``eps`` of ``X[i]`` and ``f(candidates[j]) != f(X[i])``:
        a perturbation a standard (lp) robustness certificate forbids. ``f`` is constant
        on the candidate ball of ``X[i]`` iff row ``i`` is all false.
    nearest_sensitivity, nearest_invariance : ndarray of int, shape (n,)
        Index of the closest example of each kind, ``-1`` when there is none.
    sensitivity_distance, invariance_distance : ndarray of float, shape (n,)
        Its distance (``inf`` when there is none).
    oracle_x, f_x : ndarray of int, shape (n,)
        ``O(X)`` and ``f(X)``.
    eps : float
        The radius.
    exhaustive : bool
        Whether the candidates are the whole input domain. Only then does an empty row
        prove that no example exists; otherwise "none found" is all it says.
    """

    sensitivity: np.ndarray
    invariance: np.ndarray
    label_change: np.ndarray
    nearest_sensitivity: np.ndarray
    nearest_invariance: np.ndarray
    sensitivity_distance: np.ndarray
    invariance_distance: np.ndarray
    oracle_x: np.ndarray
    f_x: np.ndarray
    eps: float
    exhaustive: bool

    @property
    def has_sensitivity(self) -> np.ndarray:
        """Per input: a sensitivity example was found."""
        return self.nearest_sensitivity >= 0

    @property
    def has_invariance(self) -> np.ndarray:
        """Per input: an invariance example was found."""
        return self.nearest_invariance >= 0

    @property
    def constant_on_ball(self) -> np.ndarray:
        """Per input: ``f`` takes the value ``f(x)`` on every candidate within ``eps``."""
        return ~self.label_change.any(axis=1)

    @property
    def correct(self) -> np.ndarray:
        """Per input: ``f(x) == O(x)``."""
        return self.f_x == self.oracle_x


def _nearest(mask: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    masked = np.where(mask, dist, np.inf)
    idx = np.argmin(masked, axis=1) if masked.shape[1] else np.zeros(len(masked), dtype=int)
    best = masked[np.arange(len(masked)), idx] if masked.shape[1] else np.full(len(masked), np.inf)
    return np.where(np.isfinite(best), idx, -1).astype(np.int64), best


def find_examples(
    X: Any,
    candidates: Any,
    oracle: Any,
    f: Any,
    distance: Distance,
    eps: float,
    *,
    exhaustive: bool | None = None,
) -> ExampleSearch:
    """Search a finite candidate set for sensitivity and invariance examples of ``f``.

    The search is exact (an empty result proves that no example exists) when the
    candidates are the whole input domain, e.g. all points of a finite domain; see
    :func:`resolve_exhaustive`. ``f`` and ``oracle`` are evaluated once per candidate,
    and distances are computed in row blocks with ``distance.pairwise``. The result holds
    three ``(n, m)`` boolean masks, so memory grows as ``3 n m`` bytes.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs at which to look for examples.
    candidates : array_like, shape (m, d)
        The perturbations ``x'`` considered.
    oracle, f, distance, eps
        As in :func:`is_sensitivity_example`.
    exhaustive : bool, optional
        Whether ``candidates`` is the whole domain (default: detected for table oracles).

    Returns
    -------
    ExampleSearch

    Examples
    --------
    >>> from invariance_tradeoffs.theory.oracles import TableOracle
    >>> from invariance_tradeoffs.theory.distances import LpDistance
    >>> pts = np.arange(4.0)[:, None]
    >>> O = TableOracle(pts, [0, 0, 1, 1], n_classes=2)
    >>> zero = lambda X: np.zeros(len(X), dtype=int)
    >>> res = find_examples(pts, pts, O, zero, LpDistance(1), 1.0)
    >>> res.exhaustive, res.nearest_invariance.tolist()
    (True, [-1, 2, 1, -1])
    """
    check_oracle(oracle)
    distance = check_distance(distance)
    eps = check_eps(eps)
    X = as_batch(X, "X")
    C = as_candidates(candidates, X.shape[1])
    exhaustive = resolve_exhaustive(oracle, C, exhaustive)
    o_x, f_x = oracle_of(oracle, X), classifier_of(f, X, oracle)
    o_c, f_c = oracle_of(oracle, C), classifier_of(f, C, oracle)
    n, m = X.shape[0], C.shape[0]
    sens = np.zeros((n, m), dtype=bool)
    inv = np.zeros((n, m), dtype=bool)
    change = np.zeros((n, m), dtype=bool)
    idx_s, idx_i = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    dist_s, dist_i = np.empty(n), np.empty(n)
    for rows in row_blocks(n, m):
        dist = distance.pairwise(X[rows], C)
        inside = in_ball(dist, eps)
        same = o_c[None, :] == o_x[rows, None]
        sens[rows] = inside & same & (f_c[None, :] != o_c[None, :])
        inv[rows] = inside & ~same & (o_c[None, :] != REJECT) & (f_c[None, :] == f_x[rows, None])
        change[rows] = inside & (f_c[None, :] != f_x[rows, None])
        idx_s[rows], dist_s[rows] = _nearest(sens[rows], dist)
        idx_i[rows], dist_i[rows] = _nearest(inv[rows], dist)
    return ExampleSearch(sens, inv, change, idx_s, idx_i, dist_s, dist_i, o_x, f_x, eps, exhaustive)

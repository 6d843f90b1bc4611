"""Real robust accuracy and its decomposition.

At radius ``eps`` an input ``x ~ D`` counts as

* **correct** when ``f(x) == O(x)``;
* **sensitivity-robust** when it is correct and ``f`` has no sensitivity example at ``x``
  within ``eps``;
* **invariance-robust** when it is correct and ``f`` has no invariance example at ``x``
  within ``eps``;
* **standard-robust** when it is correct and ``f`` is constant on the eps-ball -- what an
  lp robustness certificate asserts;
* **real-robust** when it is correct, sensitivity-robust and invariance-robust.

The **real robust accuracy** is the D-share of real-robust inputs. It is *not* bounded
by the ceiling ``P_D[r_O(x) > eps]`` in general -- the oracle itself is real-robust
everywhere. What the ceiling bounds is the share of inputs that are standard-robust
*and* real-robust (``proofs/lemma.md``, Corollary 2); :func:`robustness_report` returns
that share as ``robust_and_real``.

Searches run over a finite candidate set. When the candidates are the whole domain
the masks are exact; otherwise "no example found" may be wrong, so every robust share is
an **upper bound** (over a weighted finite support) or an estimate of one (from samples).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from invariance_tradeoffs.theory.distances import Distance
from invariance_tradeoffs.theory.examples import ExampleSearch, find_examples
from invariance_tradeoffs.theory.margins import check_weights
from invariance_tradeoffs.theory.results import Quantity, bound, exact, proportion_estimate

__all__ = [
    "RobustnessReport",
    "robustness_report",
    "real_robust_accuracy",
    "sensitivity_robust_accuracy",
    "invariance_robust_accuracy",
    "standard_robust_accuracy",
]

#: Names of the per-input masks of :class:`RobustnessReport`.
MASKS = (
    "correct",
    "sensitivity_robust",
    "invariance_robust",
    "standard_robust",
    "real_robust",
    "robust_and_real",
)


@dataclass(frozen=True)
class RobustnessReport:
    """Per-input decomposition of robust accuracy at one radius.

    Attributes
    ----------
    correct : ndarray of bool, shape (n,)
        ``f(x) == O(x)``.
    no_sensitivity, no_invariance : ndarray of bool, shape (n,)
        No sensitivity (invariance) example of ``f`` at ``x`` was found within ``eps``.
    constant : ndarray of bool, shape (n,)
        ``f`` equals ``f(x)`` on every candidate within ``eps``.
    search : ExampleSearch
        The underlying example search (witnesses, exhaustiveness).
    weights : ndarray or None
        Probabilities of a finite support, or ``None`` for i.i.d. samples of ``D``.
    confidence : float
        Confidence level of sample estimates.
    """

    correct: np.ndarray
    no_sensitivity: np.ndarray
    no_invariance: np.ndarray
    constant: np.ndarray
    search: ExampleSearch
    weights: np.ndarray | None
    confidence: float = 0.95

    @property
    def sensitivity_robust(self) -> np.ndarray:
        """Correct and free of sensitivity examples."""
        return self.correct & self.no_sensitivity

    @property
    def invariance_robust(self) -> np.ndarray:
        """Correct and free of invariance examples."""
        return self.correct & self.no_invariance

    @property
    def standard_robust(self) -> np.ndarray:
        """Correct and constant on the eps-ball (what an lp certificate asserts)."""
        return self.correct & self.constant

    @property
    def real_robust(self) -> np.ndarray:
        """Correct and free of both kinds of examples."""
        return self.correct & self.no_sensitivity & self.no_invariance

    @property
    def robust_and_real(self) -> np.ndarray:
        """Standard-robust and free of invariance examples (bounded by the ceiling)."""
        return self.standard_robust & self.no_invariance

    def share(self, mask: str) -> Quantity:
        """D-share of one of the masks in :data:`MASKS`, with its provenance.

        ``"correct"`` needs no search and is exact (weighted) or an estimate (samples);
        the robust shares are exact/estimates only for exhaustive searches, and
        otherwise upper bounds (weighted) or estimates of an upper bound (samples).
        """
        if mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")
        values = getattr(self, mask)
        certain = mask == "correct" or self.search.exhaustive
        eps = self.search.eps
        if self.weights is not None:
            value = float(self.weights[values].sum())
            if certain:
                return exact(value, f"{mask} share on the finite support at eps={eps:g}")
            return bound(value, "upper", f"{mask} share at eps={eps:g}; candidate search "
                         "may miss examples")
        what = mask if certain else f"upper bound on the {mask} share (non-exhaustive search)"
        return proportion_estimate(int(values.sum()), values.shape[0],
                                   f"sample estimate of {what} at eps={eps:g}", self.confidence)


def robustness_report(
    X: Any,
    oracle: Any,
    f: Any,
    distance: Distance,
    eps: float,
    candidates: Any,
    weights: Any = None,
    *,
    exhaustive: bool | None = None,
    confidence: float = 0.95,
) -> RobustnessReport:
    """Decompose robust accuracy of ``f`` at radius ``eps`` input by input.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Support points of a finite ``D`` (with ``weights``) or i.i.d. samples of ``D``.
    oracle, f, distance, eps
        Oracle, classifier, distance and radius.
    candidates : array_like, shape (m, d)
        Perturbations searched (the whole domain for exact answers).
    weights : array_like, shape (n,), optional
        Probabilities of the support points (summing to 1).
    exhaustive : bool, optional
        Whether ``candidates`` is the whole domain (detected for table oracles).
    confidence : float
        Confidence level of Clopper-Pearson intervals for sample estimates.
    """
    search = find_examples(X, candidates, oracle, f, distance, eps, exhaustive=exhaustive)
    w = check_weights(weights, search.f_x.shape[0])
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return RobustnessReport(
        correct=search.correct,
        no_sensitivity=~search.has_sensitivity,
        no_invariance=~search.has_invariance,
        constant=search.constant_on_ball,
        search=search,
        weights=w,
        confidence=confidence,
    )


def _share_function(mask: str, summary: str, example: str = ""):  # noqa: ANN202
    """Build the public accuracy function for one mask of :class:`RobustnessReport`."""

    def share(*args: Any, **kwargs: Any) -> Quantity:
        return robustness_report(*args, **kwargs).share(mask)

    # Same parameters as robustness_report, returning a Quantity.
    share.__signature__ = inspect.signature(robustness_report).replace(  # type: ignore[attr-defined]
        return_annotation=Quantity)
    share.__name__ = share.__qualname__ = f"{mask}_accuracy"
    share.__doc__ = summary + """

    Parameters are those of :func:`robustness_report`.

    Returns
    -------
    Quantity
        Exact over a weighted finite support searched exhaustively; an upper bound
        when the candidate search may miss examples; a Clopper-Pearson estimate (of
        the share, or of an upper bound on it) for i.i.d. samples.
    """ + example
    return share


real_robust_accuracy = _share_function(
    "real_robust",
    """Real robust accuracy: D-share of ``x`` with ``f(x) == O(x)`` and neither a
    sensitivity nor an invariance example of ``f`` within ``eps``.""",
    """
    Examples
    --------
    >>> from invariance_tradeoffs.theory.oracles import TableOracle
    >>> from invariance_tradeoffs.theory.distances import LpDistance
    >>> pts = np.arange(4.0)[:, None]
    >>> O = TableOracle(pts, [0, 0, 1, 1], n_classes=2)
    >>> zero = lambda X: np.zeros(len(X), dtype=int)
    >>> q = real_robust_accuracy(pts, O, zero, LpDistance(1), 1.0, pts, [0.25] * 4)
    >>> q.value, q.kind
    (0.25, 'exact')
    """,
)
sensitivity_robust_accuracy = _share_function(
    "sensitivity_robust",
    "D-share of ``x`` where ``f`` is correct and has no sensitivity example within ``eps``.",
)
invariance_robust_accuracy = _share_function(
    "invariance_robust",
    "D-share of ``x`` where ``f`` is correct and has no invariance example within ``eps``.",
)
standard_robust_accuracy = _share_function(
    "standard_robust",
    "Standard (lp) robust accuracy: D-share of ``x`` where ``f`` is correct and constant on "
    "the eps-ball.",
)

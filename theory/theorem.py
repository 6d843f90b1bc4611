"""The tradeoff lemma and both directions of the theorem, constructively and checkably.

* **Tradeoff lemma.** If ``eps >= r_O(x)``, witnessed by an input ``x'`` of another
  class with ``d(x, x') <= eps``, then every classifier ``f`` that is constant on the
  eps-ball around ``x`` either misclassifies ``x`` or has ``x'`` as an invariance
  example. For arbitrary ``f`` the third possibility is ``f(x') != f(x)``: ``f`` is not
  robust at ``x``. :func:`tradeoff_lemma` returns the witness and the case.
* **Perfect classifier => good distance.** For a classifier ``f`` and ``lam > 0``,
  ``d_f(x, x') = d(x, x') + lam [f(x) != f(x')]``
  (:class:`~theory.distances.ClassifierInducedDistance`) is a metric when ``d`` is, and
  when ``f == O`` on every input that has a class, ``r_O(x) >= lam`` under ``d_f``: so
  ``(d_f, eps)`` is good for every ``eps < lam``. Check with :func:`check_good_at`.
* **Good distance => perfect classifier.** If ``(d, eps)`` is good on a labelled region
  (``eps < r_O(x)`` there) and a labelled sample from the region eps-covers it
  (covering radius ``<= eps``), then the 1-nearest-neighbour rule under ``d`` equals
  ``O`` on the region. No metric axiom is needed. Check with :func:`check_nn_direction`.

The proofs are in ``proofs/lemma.md`` and ``proofs/theorem.md``; ``proofs/checks_core.py``
verifies them exhaustively on small finite domains.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from invariance_tradeoffs.theory.distances import ClassifierInducedDistance, Distance
from invariance_tradeoffs.theory.examples import (
    as_candidates,
    check_distance,
    check_oracle,
    classifier_of,
    find_examples,
    in_ball,
    is_invariance_example,
    oracle_of,
    row_blocks,
)
from invariance_tradeoffs.theory.margins import Margins, check_weights, oracle_margin
from invariance_tradeoffs.theory.oracles import REJECT
from invariance_tradeoffs.theory.results import Quantity, exact
from invariance_tradeoffs.theory.validation import as_batch, as_labels, check_eps, check_same_length

__all__ = [
    "AxiomReport",
    "check_metric_axioms",
    "check_metric_axioms_exhaustive",
    "LEMMA_CASES",
    "LemmaReport",
    "tradeoff_lemma",
    "verify_lemma_case",
    "ClassifierInducedDistance",
    "GoodnessReport",
    "check_good_at",
    "nearest_sample",
    "covering_radius",
    "NearestNeighbourRule",
    "nearest_neighbour_rule",
    "NNDirectionReport",
    "check_nn_direction",
]

AXIOMS = ("non_negativity", "identity", "separation", "symmetry", "triangle")


# --------------------------------------------------------------------------- metric axioms


@dataclass(frozen=True)
class AxiomReport:
    """Which metric axioms a distance violated on the inputs checked.

    Attributes
    ----------
    counts : dict
        Number of violations per axiom in :data:`AXIOMS`: ``non_negativity``
        (``d >= 0``), ``identity`` (``d(x, x) = 0``), ``separation`` (``d(x, y) = 0``
        only for ``x = y``), ``symmetry`` and ``triangle``
        (``d(x, z) <= d(x, y) + d(y, z)``).
    examples : dict
        Up to ten offending index tuples per axiom.
    allow_pseudo : bool
        Whether separation failures are tolerated (pseudo-metrics, e.g.
        transformation-invariant distances, are zero on whole orbits).
    """

    counts: dict
    examples: dict
    allow_pseudo: bool = False

    @property
    def holds(self) -> bool:
        """No violation of the axioms required (separation only if not ``allow_pseudo``)."""
        return all(n == 0 for k, n in self.counts.items()
                   if not (self.allow_pseudo and k == "separation"))

    @property
    def pseudo(self) -> bool:
        """Only separation fails: a pseudo-metric."""
        return self.counts["separation"] > 0 and all(
            n == 0 for k, n in self.counts.items() if k != "separation")

    @property
    def violated(self) -> tuple[str, ...]:
        """Names of the violated axioms."""
        return tuple(k for k in AXIOMS if self.counts[k] > 0)


def _record(counts: dict, examples: dict, axiom: str, hits: np.ndarray) -> None:
    """Add offending index tuples (rows of ``hits``) to the report, keeping ten examples."""
    counts[axiom] += int(hits.shape[0])
    room = max(10 - len(examples[axiom]), 0)
    examples[axiom].extend(tuple(int(i) for i in h) for h in hits[:room])


def check_metric_axioms(
    distance: Distance, X: Any, Y: Any, Z: Any, *, atol: float = 1e-9, allow_pseudo: bool = False
) -> AxiomReport:
    """Check the metric axioms on paired triples ``(X[i], Y[i], Z[i])``.

    Every ordered pair and all six orderings of each triple are tested for symmetry and
    the triangle inequality, with tolerance ``atol * (1 + |d|)`` for rounding.

    Examples
    --------
    >>> from invariance_tradeoffs.theory.distances import LpDistance
    >>> rng = np.random.default_rng(0)
    >>> X, Y, Z = rng.normal(size=(3, 50, 4))
    >>> check_metric_axioms(LpDistance(2), X, Y, Z).holds
    True
    """
    distance = check_distance(distance)
    atol = check_eps(atol, "atol")
    X = as_batch(X, "X")
    Y = as_batch(Y, "Y", n_features=X.shape[1])
    Z = as_batch(Z, "Z", n_features=X.shape[1])
    check_same_length(X=X, Y=Y, Z=Z)
    pts = {"x": X, "y": Y, "z": Z}
    d = {(a, b): distance(pts[a], pts[b]) for a in pts for b in pts}
    counts = dict.fromkeys(AXIOMS, 0)
    examples: dict = {k: [] for k in AXIOMS}
    for (a, b), v in d.items():
        _record(counts, examples, "non_negativity", np.argwhere(v < 0))
        if a == b:
            _record(counts, examples, "identity", np.argwhere(np.abs(v) > atol))
        elif a < b:
            asym = np.abs(v - d[b, a]) > atol * (1 + np.abs(v))
            _record(counts, examples, "symmetry", np.argwhere(asym))
            distinct = np.any(pts[a] != pts[b], axis=1)
            _record(counts, examples, "separation", np.argwhere(distinct & (v == 0)))
    for a, b, c in itertools.permutations("xyz"):
        v = d[a, c]
        bad = v > d[a, b] + d[b, c] + atol * (1 + np.abs(v))
        _record(counts, examples, "triangle", np.argwhere(bad))
    return AxiomReport(counts, examples, allow_pseudo)


def check_metric_axioms_exhaustive(
    distance: Distance, points: Any, *, atol: float = 1e-9, allow_pseudo: bool = False
) -> AxiomReport:
    """Check the metric axioms on all pairs and triples of a finite set of distinct points.

    Uses one ``(m, m)`` pairwise matrix; the triangle inequality is tested for all
    ``m^3`` triples ``(i, j, k)`` one intermediate point ``j`` at a time. Examples
    are index tuples into ``points``.

    Examples
    --------
    >>> from invariance_tradeoffs.theory.distances import LpDistance
    >>> pts = np.array([[0.0], [1.0], [3.0]])
    >>> check_metric_axioms_exhaustive(LpDistance(1), pts).holds
    True
    """
    distance = check_distance(distance)
    atol = check_eps(atol, "atol")
    P = as_batch(points, "points")
    if np.unique(P, axis=0).shape[0] != P.shape[0]:
        raise ValueError("points must be distinct rows")
    D = distance.pairwise(P, P)
    counts = dict.fromkeys(AXIOMS, 0)
    examples: dict = {k: [] for k in AXIOMS}
    _record(counts, examples, "non_negativity", np.argwhere(D < 0))
    _record(counts, examples, "identity", np.argwhere(np.abs(np.diag(D)) > atol))
    off = ~np.eye(D.shape[0], dtype=bool)
    _record(counts, examples, "separation", np.argwhere(off & (D == 0)))
    asym = np.triu(np.abs(D - D.T) > atol * (1 + np.abs(D)), 1)
    _record(counts, examples, "symmetry", np.argwhere(asym))
    tol = atol * (1 + np.abs(D))
    for j in range(D.shape[0]):
        # All triples (i, j, k) with intermediate point j at once.
        hits = np.argwhere(D > D[:, j : j + 1] + D[j : j + 1, :] + tol)
        _record(counts, examples, "triangle", np.insert(hits, 1, j, axis=1))
    return AxiomReport(counts, examples, allow_pseudo)


# --------------------------------------------------------------------------- the lemma

#: Cases of :func:`tradeoff_lemma` per input.
LEMMA_CASES = ("no_witness", "misclassified", "invariance", "not_robust")


@dataclass(frozen=True)
class LemmaReport:
    """Outcome of the tradeoff lemma on a batch of inputs.

    Attributes
    ----------
    X, candidates : ndarray
        The inputs and the candidate set searched.
    eps : float
        The radius.
    margins : Margins
        Oracle margins over the candidates (exact when exhaustive, else upper bounds).
    applies : ndarray of bool, shape (n,)
        ``eps >= r_O(x)`` is witnessed by a candidate of another class within ``eps``.
    robust : ndarray of bool, shape (n,)
        ``f`` is constant on the candidate eps-ball around ``x`` (the lemma's hypothesis).
    witness : ndarray of int, shape (n,)
        Index into ``candidates`` of the witness ``x'`` (the nearest input of another
        class), ``-1`` where the lemma does not apply.
    case : ndarray of str, shape (n,)
        One of :data:`LEMMA_CASES`: ``"no_witness"`` (not applicable),
        ``"misclassified"`` (``f(x) != O(x)``), ``"invariance"`` (``x'`` is an invariance
        example) or ``"not_robust"`` (``f(x') != f(x)``, impossible when ``robust``).
    """

    X: np.ndarray
    candidates: np.ndarray
    eps: float
    margins: Margins
    applies: np.ndarray
    robust: np.ndarray
    witness: np.ndarray
    case: np.ndarray

    @property
    def holds(self) -> bool:
        """The lemma's claim: where it applies and ``f`` is robust, ``f`` errs or is invariant."""
        hyp = self.applies & self.robust
        return bool(np.all(np.isin(self.case[hyp], ("misclassified", "invariance"))))

    def witnesses(self) -> np.ndarray:
        """The witness inputs ``x'`` of the rows where the lemma applies, shape (k, d)."""
        return self.candidates[self.witness[self.applies]]

    def check(self, oracle: Any, f: Any, distance: Distance) -> bool:
        """Re-verify every case independently with :func:`verify_lemma_case`.

        Rows where the lemma applies must have a verified witness; rows marked
        ``"no_witness"`` must have a margin (over the candidates) larger than ``eps``.
        """
        ok = np.ones(self.X.shape[0], dtype=bool)
        rows = np.flatnonzero(self.applies)
        if rows.size:
            ok[rows] = verify_lemma_case(self.X[rows], self.candidates[self.witness[rows]],
                                         self.case[rows], oracle, f, distance, self.eps)
        none = ~self.applies
        ok[none] = (self.case[none] == "no_witness") & ~in_ball(self.margins.values[none],
                                                                  self.eps)
        return bool(np.all(ok)) and self.holds


def verify_lemma_case(
    x: Any, x_prime: Any, case: Any, oracle: Any, f: Any, distance: Distance, eps: float
) -> np.ndarray:
    """Independently verify claimed lemma cases for paired rows.

    For each row: the witness ``x'`` must have a class different from ``O(x)`` and lie
    within ``eps``; and the claimed case must be true -- ``"misclassified"``:
    ``f(x) != O(x)``; ``"invariance"``: :func:`~theory.examples.is_invariance_example`;
    ``"not_robust"``: ``f(x') != f(x)``.

    Returns
    -------
    ndarray of bool, shape (n,)
        Whether each claim is verified. A wrong witness gives ``False``.
    """
    check_oracle(oracle)
    distance = check_distance(distance)
    eps = check_eps(eps)
    X = as_batch(x, "x")
    Xp = as_batch(x_prime, "x_prime", n_features=X.shape[1])
    cases = np.asarray(case, dtype=str)
    if cases.shape != (X.shape[0],):
        raise ValueError(f"case must have shape ({X.shape[0]},), got {cases.shape}")
    unknown = set(cases.tolist()) - set(LEMMA_CASES[1:])
    if unknown:
        raise ValueError(f"case holds unknown or unverifiable names {sorted(unknown)}; "
                         f"expected {LEMMA_CASES[1:]}")
    o_x, o_xp = oracle_of(oracle, X), oracle_of(oracle, Xp)
    f_x, f_xp = classifier_of(f, X, oracle), classifier_of(f, Xp, oracle)
    witness_ok = in_ball(distance(X, Xp), eps) & (o_xp != o_x) & (o_xp != REJECT)
    claim = np.select(
        [cases == "misclassified", cases == "invariance", cases == "not_robust"],
        [f_x != o_x, is_invariance_example(X, Xp, oracle, f, distance, eps), f_xp != f_x],
        default=False,
    )
    return witness_ok & claim


def tradeoff_lemma(
    X: Any,
    oracle: Any,
    f: Any,
    distance: Distance,
    eps: float,
    candidates: Any,
    *,
    exhaustive: bool | None = None,
) -> LemmaReport:
    """Apply the tradeoff lemma at each row of ``X``, returning witnesses and cases.

    Where a candidate ``x'`` of another class lies within ``eps`` (so ``eps >= r_O(x)``),
    the nearest such ``x'`` is the witness, and exactly one case holds: ``f``
    misclassifies ``x``; or ``f(x') = f(x)`` and ``x'`` is an invariance example; or
    ``f(x') != f(x)`` and ``f`` is not robust at ``x``. For ``f`` constant on the
    eps-ball (certified robust) the last case is impossible: ``report.holds``.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs.
    oracle, f, distance, eps
        Oracle, classifier, distance and radius.
    candidates : array_like, shape (m, d)
        Inputs searched for witnesses and for changes of ``f`` in the ball.
    exhaustive : bool, optional
        Whether ``candidates`` is the whole domain (detected for table oracles); then
        "no_witness" proves ``eps < r_O(x)``.

    Examples
    --------
    >>> from invariance_tradeoffs.theory.oracles import TableOracle
    >>> from invariance_tradeoffs.theory.distances import LpDistance
    >>> pts = np.arange(4.0)[:, None]
    >>> O = TableOracle(pts, [0, 0, 1, 1], n_classes=2)
    >>> zero = lambda X: np.zeros(len(X), dtype=int)   # constant: robust at every radius
    >>> rep = tradeoff_lemma(pts, O, zero, LpDistance(1), 1.0, pts)
    >>> rep.case.tolist(), rep.holds, rep.check(O, zero, LpDistance(1))
    (['no_witness', 'invariance', 'misclassified', 'no_witness'], True, True)
    """
    X = as_batch(X, "X")
    C = as_candidates(candidates, X.shape[1])
    search = find_examples(X, C, oracle, f, distance, eps, exhaustive=exhaustive)
    margins = oracle_margin(X, oracle, distance, C, exhaustive=search.exhaustive)
    applies = in_ball(margins.values, search.eps)
    witness = np.where(applies, margins.witness, -1)
    f_w = np.full(X.shape[0], REJECT, dtype=np.int64)
    if applies.any():
        f_w[applies] = classifier_of(f, C[witness[applies]], oracle)
    case = np.select(
        [~applies, ~search.correct, f_w == search.f_x],
        ["no_witness", "misclassified", "invariance"],
        default="not_robust",
    ).astype("<U13")
    return LemmaReport(X, C, search.eps, margins, applies, search.constant_on_ball, witness, case)


# --------------------------------------------------------------------------- good distances


@dataclass(frozen=True)
class GoodnessReport:
    """Whether ``(d, eps)`` is good on a finite labelled region.

    Attributes
    ----------
    holds : bool
        ``eps < r_O(x)`` for every (positive-weight) region input, as far as the
        candidates show. Certain when ``certain`` is true; a ``False`` is always certain.
    certain : bool
        The candidates were the whole domain (margins exact).
    violations : ndarray of int
        Region rows with ``r_O(x) <= eps``.
    margins : Margins
        The margins of the region inputs.
    min_margin : Quantity
        Smallest margin over the region (exact, or an upper bound).
    """

    holds: bool
    certain: bool
    violations: np.ndarray
    margins: Margins
    min_margin: Quantity
    eps: float


def check_good_at(
    distance: Distance,
    oracle: Any,
    X: Any,
    candidates: Any,
    eps: float,
    *,
    weights: Any = None,
    exhaustive: bool | None = None,
) -> GoodnessReport:
    """Check goodness of ``(distance, eps)`` on the region ``X`` by computing margins.

    Use it with :class:`~theory.distances.ClassifierInducedDistance`: when ``f == O`` on
    every input with a class, ``d_f`` is good at every ``eps < lam``.

    Examples
    --------
    >>> from invariance_tradeoffs.theory.oracles import TableOracle
    >>> from invariance_tradeoffs.theory.distances import LpDistance, ClassifierInducedDistance
    >>> pts = np.arange(4.0)[:, None]
    >>> O = TableOracle(pts, [0, 0, 1, 1], n_classes=2)
    >>> check_good_at(LpDistance(1), O, pts, pts, 1.0).holds
    False
    >>> check_good_at(ClassifierInducedDistance(LpDistance(1), O, lam=5.0), O, pts, pts, 4.9).holds
    True
    """
    eps = check_eps(eps)
    margins = oracle_margin(X, oracle, distance, candidates, exhaustive=exhaustive)
    w = check_weights(weights, len(margins))
    support = np.ones(len(margins), dtype=bool) if w is None else w > 0
    violations = np.flatnonzero(support & in_ball(margins.values, eps))
    rows = np.flatnonzero(support)
    min_margin = margins.quantity(int(rows[np.argmin(margins.values[rows])]))
    return GoodnessReport(violations.size == 0, margins.exact, violations, margins,
                          min_margin, eps)


# --------------------------------------------------------------------------- good distance -> 1-NN


def nearest_sample(X: Any, X_sample: Any, distance: Distance) -> tuple[np.ndarray, np.ndarray]:
    """Index of and distance ``d(x, s)`` to the nearest sample point for each row of ``X``.

    Ties go to the lowest sample index.
    """
    distance = check_distance(distance)
    X = as_batch(X, "X")
    S = as_batch(X_sample, "X_sample", n_features=X.shape[1])
    idx = np.empty(X.shape[0], dtype=np.int64)
    dist = np.empty(X.shape[0])
    for rows in row_blocks(X.shape[0], S.shape[0]):
        D = distance.pairwise(X[rows], S)
        idx[rows] = np.argmin(D, axis=1)
        dist[rows] = D[np.arange(D.shape[0]), idx[rows]]
    return idx, dist


def covering_radius(X_region: Any, X_sample: Any, distance: Distance) -> Quantity:
    """Covering radius ``max_{x in region} min_{s in sample} d(x, s)`` (exact for finite sets).

    The sample eps-covers the region when this is ``<= eps``. ``extra["farthest"]`` is
    the index of a region point attaining the maximum.

    Examples
    --------
    >>> from invariance_tradeoffs.theory.distances import LpDistance
    >>> covering_radius(np.arange(5.0)[:, None], [[0.0], [4.0]], LpDistance(1)).value
    2.0
    """
    distance = check_distance(distance)
    _, dist = nearest_sample(as_batch(X_region, "X_region"), X_sample, distance)
    far = int(np.argmax(dist))
    return exact(float(dist[far]), f"max-min {distance.name} distance from region to sample",
                 farthest=far)


class NearestNeighbourRule:
    """The 1-nearest-neighbour rule under a distance: ``f(x) = y_s`` for the nearest ``s``.

    Ties go to the lowest sample index. Callable on ``(n, d)`` batches; ``predict`` is an
    alias for scikit-learn compatibility.
    """

    def __init__(self, X_sample: Any, y_sample: Any, distance: Distance,
                 n_classes: int | None = None) -> None:
        self.distance = check_distance(distance)
        self.X_sample = as_batch(X_sample, "X_sample")
        self.y_sample = as_labels(y_sample, "y_sample", n_classes=n_classes,
                                  length=self.X_sample.shape[0])

    def __call__(self, X: Any) -> np.ndarray:
        idx, _ = nearest_sample(X, self.X_sample, self.distance)
        return self.y_sample[idx]

    predict = __call__

    def __repr__(self) -> str:
        return f"NearestNeighbourRule(n={self.X_sample.shape[0]}, distance={self.distance.name})"


def nearest_neighbour_rule(
    X_sample: Any, y_sample: Any, distance: Distance
) -> NearestNeighbourRule:
    """Build the 1-NN rule of the labelled sample ``(X_sample, y_sample)`` under ``distance``."""
    return NearestNeighbourRule(X_sample, y_sample, distance)


@dataclass(frozen=True)
class NNDirectionReport:
    """Check of "good distance + eps-cover => 1-NN equals the oracle" on a region.

    Attributes
    ----------
    condition_met : bool
        ``covering_radius <= eps`` and ``eps < r(x)`` for every region input, where
        ``r(x)`` is the margin over the candidates together with the sample.
    covering_radius : Quantity
        Covering radius of the region by the sample.
    min_margin : float
        Smallest such margin over the region.
    errors : ndarray of int
        Region rows where the 1-NN rule differs from ``O``.
    pointwise : ndarray of bool
        Per input: the local condition ``d(x, nearest sample) < r(x)``, which already
        forces a correct 1-NN label at ``x``.
    """

    condition_met: bool
    covering_radius: Quantity
    min_margin: float
    eps: float
    errors: np.ndarray
    pointwise: np.ndarray
    rule: NearestNeighbourRule = field(repr=False)

    @property
    def holds(self) -> bool:
        """The theorem's claim and its pointwise form both hold on this instance."""
        global_ok = not self.condition_met or self.errors.size == 0
        return global_ok and not np.any(self.pointwise[self.errors])


def check_nn_direction(
    X_region: Any,
    oracle: Any,
    X_sample: Any,
    distance: Distance,
    eps: float,
    candidates: Any = None,
) -> NNDirectionReport:
    """Check that the 1-NN rule of an eps-covering sample equals ``O`` where ``d`` is good.

    The sample is labelled by the oracle and must consist of inputs with a class. Margins
    are computed over ``candidates`` together with the sample; since the proof only uses
    sample points as ``x'``, the check is exact even when ``candidates`` is not the whole
    domain (its margins are upper bounds on ``r_O``, so this condition is weaker than
    goodness and the checked statement is stronger than the theorem).

    Examples
    --------
    >>> from invariance_tradeoffs.theory.oracles import TableOracle
    >>> from invariance_tradeoffs.theory.distances import LpDistance
    >>> pts = np.arange(6.0)[:, None]
    >>> O = TableOracle(pts, [0, 0, 0, 1, 1, 1], n_classes=2)
    >>> rep = check_nn_direction(pts, O, pts[[1, 4]], LpDistance(1), 0.5)
    >>> rep.condition_met, rep.errors.tolist(), rep.holds
    (False, [], True)
    """
    check_oracle(oracle)
    eps = check_eps(eps)
    R = as_batch(X_region, "X_region")
    S = as_batch(X_sample, "X_sample", n_features=R.shape[1])
    y = oracle_of(oracle, S)
    if np.any(y == REJECT):
        raise ValueError("X_sample contains inputs the oracle rejects; the sample must be labelled")
    C = S if candidates is None else np.vstack([S, as_candidates(candidates, R.shape[1])])
    margins = oracle_margin(R, oracle, distance, C, exhaustive=False)
    rule = NearestNeighbourRule(S, y, distance)
    _, near = nearest_sample(R, S, distance)
    cover = covering_radius(R, S, distance)
    good = not np.any(in_ball(margins.values, eps))
    condition = bool(in_ball(cover.value, eps)) and good
    errors = np.flatnonzero(rule(R) != oracle_of(oracle, R))
    pointwise = ~in_ball(margins.values, near)
    return NNDirectionReport(condition, cover, float(margins.values.min()), eps, errors,
                             pointwise, rule)

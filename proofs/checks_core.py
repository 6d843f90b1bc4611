"""Executable checks of the claims proved in proofs/definitions.md, lemma.md and theorem.md.

Every check enumerates small finite domains completely -- all points, all pairs (or
triples) and, on the tiniest domain, *all* oracles and *all* classifiers -- runs the
library functions of :mod:`theory` on them, and compares against the claim. A false
claim raises ``AssertionError``; on success each check returns a summary dictionary
(counts of the instances covered, to show the checks are not vacuous).

Run all of them with ``python proofs/checks_core.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from invariance_tradeoffs.theory.distances import (
    ClassifierInducedDistance,
    Distance,
    LpDistance,
    TransformInvariantDistance,
    cyclic_shifts,
)
from invariance_tradeoffs.theory.examples import (
    find_examples,
    in_ball,
    is_invariance_example,
    is_sensitivity_example,
)
from invariance_tradeoffs.theory.margins import (
    ceiling_from_margins,
    good_radius_from_margins,
    oracle_margin,
)
from invariance_tradeoffs.theory.oracles import REJECT, TableOracle
from invariance_tradeoffs.theory.robust_accuracy import robustness_report
from invariance_tradeoffs.theory.theorem import (
    check_good_at,
    check_metric_axioms_exhaustive,
    check_nn_direction,
    tradeoff_lemma,
)

__all__ = [
    "binary_images",
    "line_domain",
    "count_oracle",
    "random_table_oracle",
    "SquaredL2",
    "check_definitions_exhaustive",
    "check_lemma_exhaustive",
    "check_lemma_images",
    "check_ceiling_exhaustive",
    "check_ceiling_not_attained",
    "check_df_metric",
    "check_df_good",
    "check_nn_direction_exhaustive",
    "search_nn_counterexamples",
    "run_all",
]

LABELS3 = (0, 1, REJECT)


# --------------------------------------------------------------------------- domains


def binary_images(h: int, w: int) -> np.ndarray:
    """All ``2^(h*w)`` binary ``h x w`` images, flattened row-major, shape ``(2^(hw), hw)``."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=h * w)))


def line_domain(k: int) -> np.ndarray:
    """The points ``0, 1, ..., k-1`` of the real line, shape ``(k, 1)``."""
    return np.arange(float(k))[:, None]


def count_oracle(points: np.ndarray, low: int = 3, high: int = 6) -> TableOracle:
    """Table oracle from a rule: class 0 if at most ``low`` pixels are on, class 1 if at
    least ``high`` are, REJECT (ambiguous image) in between."""
    n_on = points.sum(axis=1)
    labels = np.where(n_on <= low, 0, np.where(n_on >= high, 1, REJECT))
    return TableOracle(points, labels, n_classes=2)


def random_table_oracle(points: np.ndarray, n_classes: int, seed: int,
                        reject_share: float = 0.2) -> TableOracle:
    """Table oracle with i.i.d. uniform classes and a ``reject_share`` of REJECT labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=points.shape[0])
    labels[rng.random(points.shape[0]) < reject_share] = REJECT
    return TableOracle(points, labels, n_classes=n_classes)


class SquaredL2(Distance):
    """``||x - x'||_2^2``: symmetric and zero only on the diagonal, but it violates the
    triangle inequality. Used to show that the 1-NN direction needs no metric axiom and
    that the axiom checker flags non-metrics."""

    name = "squared-l2"
    is_metric = False

    def _rowwise(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return np.sum((X - Y) ** 2, axis=1)

    def _pairwise(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return LpDistance(2)._pairwise(X, Y) ** 2


def _all_tables(points: np.ndarray, labels: tuple[int, ...]) -> Iterator[TableOracle]:
    for labs in itertools.product(labels, repeat=points.shape[0]):
        yield TableOracle(points, np.array(labs), n_classes=2)


def _image_distances() -> dict[str, Distance]:
    return {
        "l0": LpDistance(0),
        "l2": LpDistance(2),
        "linf": LpDistance("linf"),
        "shift-l0": TransformInvariantDistance(LpDistance(0), cyclic_shifts((3, 3), 1)),
    }


def _image_classifiers(points: np.ndarray) -> dict[str, Any]:
    n_on = points.sum(axis=1)
    rng = np.random.default_rng(7)
    return {
        "constant-0": lambda X: np.zeros(len(X), dtype=int),
        "threshold-5": TableOracle(points, (n_on >= 5).astype(int), 2),
        "top-row": lambda X: (X[:, :3].sum(axis=1) >= 2).astype(int),
        "random": TableOracle(points, rng.integers(0, 2, points.shape[0]), 2),
        "oracle-or-0": TableOracle(points, np.where(n_on >= 6, 1, 0), 2),
    }


# --------------------------------------------------------------------------- definitions


def check_definitions_exhaustive(k: int = 3) -> dict:
    """On the line ``0..k-1``, for every oracle and classifier with labels in {0, 1, REJECT}
    and every radius: :func:`find_examples` equals the paired predicates on all pairs, the
    predicates equal the definitions, margins equal a brute-force minimum over all pairs,
    and the exact ceiling equals the weight of ``{r_O > eps}``."""
    pts = line_domain(k)
    d = LpDistance(1)
    ii, jj = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    Xi, Xj = pts[ii.ravel()], pts[jj.ravel()]
    dist = np.abs(Xi - Xj).ravel()
    n_cases = 0
    for oracle in _all_tables(pts, LABELS3):
        o = oracle.labels
        other = (o[jj] != o[ii]) & (o[jj] != REJECT)
        brute = np.where(other, np.abs(ii - jj), np.inf).min(axis=1)
        margins = oracle_margin(pts, oracle, d, pts)
        assert margins.exact and np.array_equal(margins.values, brute), (o, margins.values)
        weights = np.full(k, 1.0 / k)
        for eps in range(k):
            ceil = ceiling_from_margins(margins, [eps], weights)[0]
            assert ceil.kind == "exact" and np.isclose(ceil.value, np.mean(brute > eps))
        for f in _all_tables(pts, LABELS3):
            fl = f.labels
            for eps in range(k):
                res = find_examples(pts, pts, oracle, f, d, eps)
                sens = is_sensitivity_example(Xi, Xj, oracle, f, d, eps).reshape(k, k)
                inv = is_invariance_example(Xi, Xj, oracle, f, d, eps).reshape(k, k)
                inside = (dist <= eps).reshape(k, k)
                sens_def = inside & (o[jj] == o[ii]) & (fl[jj] != o[jj])
                inv_def = inside & other & (fl[jj] == fl[ii])
                assert np.array_equal(res.sensitivity, sens) and np.array_equal(sens, sens_def)
                assert np.array_equal(res.invariance, inv) and np.array_equal(inv, inv_def)
                n_cases += 1
    return {"domain_points": k, "oracle_classifier_eps_cases": n_cases}


# --------------------------------------------------------------------------- lemma


def check_lemma_exhaustive(k: int = 3) -> dict:
    """The tradeoff lemma for *every* oracle and classifier (labels in {0, 1, REJECT}) on
    the line ``0..k-1`` and every radius: each witness is verified independently, and
    wherever ``f`` is constant on the ball the case is a misclassification or an
    invariance example."""
    pts = line_domain(k)
    d = LpDistance(1)
    seen = dict.fromkeys(("misclassified", "invariance", "not_robust", "no_witness"), 0)
    robust_applicable = 0
    for oracle in _all_tables(pts, LABELS3):
        for f in _all_tables(pts, LABELS3):
            for eps in range(k):
                rep = tradeoff_lemma(pts, oracle, f, d, eps, pts)
                assert rep.margins.exact
                assert rep.check(oracle, f, d), (oracle.labels, f.labels, eps, rep.case)
                robust_applicable += int(np.sum(rep.applies & rep.robust))
                for case in seen:
                    seen[case] += int(np.sum(rep.case == case))
    assert robust_applicable > 0 and all(v > 0 for v in seen.values()), seen
    return {"cases": seen, "robust_and_applicable": robust_applicable}


def check_lemma_images(eps_grid: tuple[float, ...] = (1.0, 2.0, 3.0)) -> dict:
    """The tradeoff lemma on all 512 binary 3x3 images with the count-rule oracle, for
    several distances (incl. a shift-invariant one) and classifiers."""
    pts = binary_images(3, 3)
    oracle = count_oracle(pts)
    robust_applicable = 0
    for d in _image_distances().values():
        for f in _image_classifiers(pts).values():
            for eps in eps_grid:
                rep = tradeoff_lemma(pts, oracle, f, d, eps, pts)
                assert rep.margins.exact and rep.check(oracle, f, d), (d.name, eps)
                robust_applicable += int(np.sum(rep.applies & rep.robust))
    assert robust_applicable > 0
    return {"robust_and_applicable": robust_applicable}


# --------------------------------------------------------------------------- ceiling


def check_ceiling_exhaustive(k: int = 3) -> dict:
    """For every oracle and classifier on the line ``0..k-1`` (D uniform on the classed
    points): an input that is standard-robust and real-robust has ``r_O(x) > eps``, so
    that share is at most the ceiling ``P_D[r_O > eps]``. Also confirms that the *real*
    robust accuracy alone can exceed the ceiling (the oracle itself reaches 1)."""
    pts = line_domain(k)
    d = LpDistance(1)
    exceed = 0
    n_cases = 0
    for oracle in _all_tables(pts, LABELS3):
        classed = oracle.labels != REJECT
        if not classed.any():
            continue
        w = classed / classed.sum()
        margins = oracle_margin(pts, oracle, d, pts)
        for eps in range(k):
            ceil = ceiling_from_margins(margins, [eps], w)[0].value
            for f in _all_tables(pts, LABELS3):
                rep = robustness_report(pts, oracle, f, d, eps, pts, w)
                both = rep.robust_and_real
                assert not np.any(both & in_ball(margins.values, eps)), (oracle.labels, f.labels)
                assert rep.share("robust_and_real").value <= ceil + 1e-12
                exceed += int(rep.share("real_robust").value > ceil + 1e-12)
                n_cases += 1
            oracle_rep = robustness_report(pts, oracle, oracle, d, eps, pts, w)
            assert np.isclose(oracle_rep.share("real_robust").value, 1.0)
    assert exceed > 0
    return {"cases": n_cases, "real_robust_above_ceiling": exceed}


def check_ceiling_not_attained() -> dict:
    """The ceiling is an upper bound, not always attained: on ``{0, 1, 2}`` with
    ``O = (0, REJECT, 1)``, D uniform on ``{0, 2}`` and ``eps = 1`` the ceiling is 1, but
    the best of all 27 classifiers is standard- and real-robust on only half of D."""
    pts = line_domain(3)
    oracle = TableOracle(pts, np.array([0, REJECT, 1]), n_classes=2)
    w = np.array([0.5, 0.0, 0.5])
    d = LpDistance(1)
    ceil = ceiling_from_margins(oracle_margin(pts, oracle, d, pts), [1.0], w)[0].value
    best = max(robustness_report(pts, oracle, f, d, 1.0, pts, w).share("robust_and_real").value
               for f in _all_tables(pts, LABELS3))
    assert ceil == 1.0 and best == 0.5, (ceil, best)
    return {"ceiling": ceil, "best_over_all_classifiers": best}


# --------------------------------------------------------------------------- d_f


def check_df_metric(lams: tuple[float, ...] = (0.5, 2.0)) -> dict:
    """``d_f`` satisfies every metric axiom on all pairs/triples of the 64 binary 2x3
    images, for lp bases and classifiers; with a shift-invariant base it is a
    pseudo-metric (only separation fails). ``SquaredL2`` on ``{0, 1, 2}`` is flagged
    (triangle; on binary images it equals the Hamming distance, a metric)."""
    pts = binary_images(2, 3)
    rng = np.random.default_rng(3)
    classifiers = [
        TableOracle(pts, rng.integers(0, 3, pts.shape[0]), 3),
        lambda X: (X.sum(axis=1) >= 3).astype(int),
    ]
    checked = 0
    for base in (LpDistance(0), LpDistance(2), LpDistance("linf")):
        for f in classifiers:
            for lam in lams:
                rep = check_metric_axioms_exhaustive(ClassifierInducedDistance(base, f, lam), pts)
                assert rep.holds, (base.name, lam, rep.counts)
                checked += 1
    shift = TransformInvariantDistance(LpDistance(1), cyclic_shifts((2, 3), 1))
    rep = check_metric_axioms_exhaustive(ClassifierInducedDistance(shift, classifiers[1], 1.0),
                                         pts, allow_pseudo=True)
    assert rep.holds and rep.pseudo, rep.counts
    broken = check_metric_axioms_exhaustive(SquaredL2(), line_domain(3))
    assert not broken.holds and broken.violated == ("triangle",), broken.counts
    return {"metric_checks": checked + 1, "domain_points": pts.shape[0]}


def check_df_good(lams: tuple[float, ...] = (0.5, 1.0, 2.5)) -> dict:
    """With ``f == O`` on every classed input, ``d_f`` is good at every ``eps < lam`` on
    all 512 binary 3x3 images, for two oracles (count rule and a random table), even
    where the base distance itself is not good."""
    pts = binary_images(3, 3)
    checked = base_not_good = 0
    for oracle in (count_oracle(pts), random_table_oracle(pts, 3, seed=11)):
        for base in (LpDistance(0), LpDistance("linf")):
            for lam in lams:
                d_f = ClassifierInducedDistance(base, oracle, lam)
                margins = oracle_margin(pts, oracle, d_f, pts)
                classed = oracle.labels != REJECT
                assert margins.exact and np.all(margins.values[classed] >= lam)
                for eps in (0.0, lam / 2, np.nextafter(lam, 0)):
                    assert check_good_at(d_f, oracle, pts[classed], pts, eps).holds
                    base_rep = check_good_at(base, oracle, pts[classed], pts, eps)
                    base_not_good += int(not base_rep.holds)
                    checked += 1
    assert base_not_good > 0
    return {"goodness_checks": checked, "base_not_good": base_not_good}


# --------------------------------------------------------------------------- 1-NN direction


def _greedy_cover(D: np.ndarray, eps: float) -> np.ndarray:
    """Indices of a greedy eps-cover of the rows of the square distance matrix ``D``."""
    covers = in_ball(D, eps)
    uncovered = np.ones(D.shape[0], dtype=bool)
    chosen: list[int] = []
    while uncovered.any():
        best = int(np.argmax((covers & uncovered[:, None]).sum(axis=0)))
        chosen.append(best)
        uncovered &= ~covers[:, best]
    return np.array(chosen)


def check_nn_direction_exhaustive(n_random: int = 20, seed: int = 0) -> dict:
    """"Good at eps + eps-cover => 1-NN equals O" on the classed binary 3x3 images, for
    greedy covering samples and random samples, under metrics, a pseudo-metric and the
    non-metric squared l2. Asserts the theorem (and its pointwise form) on every
    instance and that the condition is met on some instances."""
    pts = binary_images(3, 3)
    oracle = count_oracle(pts)
    region = pts[oracle.labels != REJECT]
    rng = np.random.default_rng(seed)
    distances = dict(_image_distances(), sq_l2=SquaredL2())
    met = instances = 0
    for d in distances.values():
        D = d.pairwise(region, region)
        for eps in (1.0, 2.0):
            samples = [_greedy_cover(D, eps)] + [
                rng.choice(region.shape[0], size=int(rng.integers(2, 60)), replace=False)
                for _ in range(n_random)
            ]
            for idx in samples:
                rep = check_nn_direction(region, oracle, region[idx], d, eps, candidates=pts)
                assert rep.holds, (d.name, eps, rep.errors)
                met += int(rep.condition_met)
                instances += 1
    assert met > 0
    return {"instances": instances, "condition_met": met}


def search_nn_counterexamples(relax: str, n_trials: int = 400, seed: int = 0) -> list[dict]:
    """Random search on small line domains for failures of the 1-NN direction when one
    hypothesis is relaxed.

    Parameters
    ----------
    relax : {"none", "strict_margin", "cover"}
        ``"none"``: the theorem's hypotheses (``cover <= eps < r_O``) -- must find nothing;
        ``"strict_margin"``: allow ``r_O(x) = eps`` (``cover <= eps <= r_O``);
        ``"cover"``: drop the covering hypothesis (only ``eps < r_O``).

    Returns
    -------
    list of dict
        Instances (labels, sample, eps) where the relaxed hypotheses hold but 1-NN errs.
    """
    if relax not in ("none", "strict_margin", "cover"):
        raise ValueError(f"relax must be 'none', 'strict_margin' or 'cover', got {relax!r}")
    rng = np.random.default_rng(seed)
    d = LpDistance(1)
    found = []
    for _ in range(n_trials):
        k = int(rng.integers(3, 8))
        pts = line_domain(k)
        labels = rng.choice(LABELS3, size=k)
        classed = np.flatnonzero(labels != REJECT)
        if classed.size < 2:
            continue
        oracle = TableOracle(pts, labels, n_classes=2)
        sample = rng.choice(classed, size=int(rng.integers(1, classed.size + 1)), replace=False)
        eps = float(rng.integers(0, k))
        region = pts[classed]
        rep = check_nn_direction(region, oracle, pts[sample], d, eps, candidates=pts)
        margins = oracle_margin(region, oracle, d, pts).values
        covered = bool(in_ball(rep.covering_radius.value, eps))
        good = not np.any(in_ball(margins, eps))
        weakly_good = not np.any(margins < eps)
        hyp = {"none": covered and good, "strict_margin": covered and weakly_good,
               "cover": good}[relax]
        if hyp and rep.errors.size:
            found.append({"labels": labels.tolist(), "sample": sorted(sample.tolist()),
                          "eps": eps, "errors": classed[rep.errors].tolist()})
    return found


def run_all() -> dict:
    """Run every check; returns their summaries keyed by name."""
    results = {
        "definitions": check_definitions_exhaustive(),
        "lemma_line": check_lemma_exhaustive(),
        "lemma_images": check_lemma_images(),
        "ceiling": check_ceiling_exhaustive(),
        "ceiling_not_attained": check_ceiling_not_attained(),
        "df_metric": check_df_metric(),
        "df_good": check_df_good(),
        "nn_direction": check_nn_direction_exhaustive(),
    }
    assert search_nn_counterexamples("none") == []
    results["nn_counterexamples"] = {
        relax: len(search_nn_counterexamples(relax)) for relax in ("strict_margin", "cover")
    }
    assert all(n > 0 for n in results["nn_counterexamples"].values())
    # The good radius of the count-rule oracle on 3x3 images under l0 is exactly 3.
    pts = binary_images(3, 3)
    oracle = count_oracle(pts)
    classed = oracle.labels != REJECT
    margins = oracle_margin(pts[classed], oracle, LpDistance(0), pts)
    radius = good_radius_from_margins(margins, np.full(classed.sum(), 1 / classed.sum()))
    assert radius.kind == "exact" and radius.value == 3.0
    results["count_rule_good_radius_l0"] = radius.value
    return results


if __name__ == "__main__":
    import json
    import time

    start = time.perf_counter()
    print(json.dumps(run_all(), indent=2))
    print(f"all checks passed in {time.perf_counter() - start:.1f} s")

"""Experiments 3 and 4: classifiers trained robust at eps against the ceiling (the
trade-off curves), and the overly-robust feature (where robust linear models put their
weight; exact robust-optimal classifiers of finite domains)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from invariance_tradeoffs.simulations.experiments.toy.config import (
    ExperimentResult,
    ToyConfig,
    sweep,
)
from invariance_tradeoffs.simulations.experiments.toy.exact_linear import (
    linear_example_distances,
    linear_robust_accuracies,
)
from invariance_tradeoffs.simulations.experiments.toy.search import (
    attack_report,
)
from invariance_tradeoffs.simulations.experiments.toy.tables import Row
from invariance_tradeoffs.simulations.experiments.toy.training import (
    LinearClassifier,
    fit_adversarial_mlp,
    fit_robust_linear,
)
from invariance_tradeoffs.theory.distances import (
    LpDistance,
)
from invariance_tradeoffs.theory.examples import is_invariance_example
from invariance_tradeoffs.theory.robust_accuracy import MASKS, robustness_report
from invariance_tradeoffs.theory.toys import (
    ToyFamily,
    binary_images,
    get_family,
)


def linear_oracle(fam: ToyFamily) -> tuple[np.ndarray, float] | None:
    """``(u, c)`` with ``O(x) = [u.x + c > 0]`` when the family's oracle is linear
    (:meth:`ToyFamily.linear_oracle`), else None; checked against the oracle on a sample so
    that a wrong declaration cannot go unnoticed."""
    lin = fam.linear_oracle()
    if lin is None:
        return None
    u, c = np.asarray(lin[0], dtype=float), float(lin[1])
    X, y = fam.sample(500, seed=12345)
    if not np.array_equal((X @ u + c > 0).astype(int), y):
        raise RuntimeError(f"the linear oracle declared by {fam.name} disagrees with its oracle")
    return u, c


@dataclass(frozen=True)
class TradeoffSpec:
    """One trade-off curve: a family, a model kind, a norm and the largest radius."""

    family: str
    model: str  # "linear" (exact training + exact evaluation) or "mlp" (PGD + attack)
    norm: str
    eps_max: float
    params: tuple[tuple[str, Any], ...] = ()

    def build(self) -> ToyFamily:
        return get_family(self.family, **dict(self.params))


#: The curves of ``tradeoffs toy tradeoff``.
DEFAULT_TRADEOFFS: tuple[TradeoffSpec, ...] = (
    TradeoffSpec("overly-robust", "linear", "linf", 0.6),
    TradeoffSpec("overly-robust", "linear", "l2", 0.6),
    TradeoffSpec("tsipras", "linear", "linf", 1.2),
    TradeoffSpec("linear-gaussian", "linear", "l2", 1.0),
    TradeoffSpec("overly-robust", "mlp", "l2", 0.6),
    TradeoffSpec("spheres", "mlp", "l2", 0.8),
)


EXACT_METHOD = "exact per input (closed-form example regions); share over the test sample"


ATTACK_METHOD = ("attack (PGD restarts on f, model-free moves towards other-class "
                 "neighbours, axis and random ball probes): upper bounds per input; share "
                 "over the test sample")


def _ceiling_at(fam: ToyFamily, eps: float, norm: str, config: ToyConfig) -> tuple[float, str]:
    if norm in getattr(fam, "ceiling_norms", ()):
        return float(fam.ceiling_curve(np.array([eps]), norm)[0]), "exact"
    q = fam.ceiling_estimate(eps, norm, n=config.n_mc, seed=config.seed)
    return q.value, "estimate"


def _tradeoff_one(spec: TradeoffSpec, eps: float, config: ToyConfig) -> tuple[Row, Any]:
    fam = spec.build()
    X, y = fam.sample(config.n_train, seed=config.seed)
    Xt, yt = fam.sample(config.n_test, seed=config.seed + 1)
    row: Row = {"family": fam.name, "model": spec.model, "norm": spec.norm,
                "eps": float(eps), "n_test": config.n_test}
    if spec.model == "linear":
        lin = linear_oracle(fam)
        if lin is None:
            raise ValueError(f"family {fam.name!r} has no linear oracle; use model='mlp'")
        clf = fit_robust_linear(X, y, norm=spec.norm, eps=eps)
        dist = linear_example_distances(Xt, clf.w, clf.b, *lin, spec.norm)
        shares = linear_robust_accuracies(dist, eps)
        row["method"] = EXACT_METHOD
        model: Any = clf
    elif spec.model == "mlp":
        mlp = fit_adversarial_mlp(X, y, norm=spec.norm, eps=eps, hidden=(32, 32),
                                  epochs=config.mlp_epochs, seed=config.seed)
        pool, pool_y = fam.sample(config.n_pool, seed=config.seed + 2)
        rep = attack_report(mlp, Xt, fam, norm=spec.norm, eps=eps, pool=pool, pool_y=pool_y,
                            seed=config.seed)
        shares = {m: float(getattr(rep, m).mean()) for m in MASKS}
        row["method"] = ATTACK_METHOD
        model = None
    else:
        raise ValueError(f"model must be 'linear' or 'mlp', got {spec.model!r}")
    row.update(shares)
    row["ceiling"], row["ceiling_kind"] = _ceiling_at(fam, eps, spec.norm, config)
    row["good_radius"] = fam.good_radius(spec.norm).value
    row["robust_and_real_le_ceiling"] = bool(shares["robust_and_real"] <= row["ceiling"] + 0.05)
    return row, model


@threadpool_limits.wrap(limits=1)
def tradeoff(specs: Sequence[TradeoffSpec] | None = None,
             config: ToyConfig | None = None) -> ExperimentResult:
    """Experiment 3: the trade-off curve.

    For each spec and each radius ``eps`` of a grid from 0 to ``eps_max``: train a
    classifier robust at ``eps`` (exact worst-case training for ``linear``; PGD
    adversarial training of an MLP for ``mlp``), then measure on a test sample the shares
    of :data:`theory.robust_accuracy.MASKS` at the same ``eps`` -- exactly for linear
    models (the oracles are linear), by attack for MLPs (``method`` says which) -- next
    to the ceiling ``P_D[r_O > eps]`` and the good radius.

    The ceiling bounds ``robust_and_real`` (lp-robust and free of invariance examples)
    for the true D-shares; the column ``robust_and_real_le_ceiling`` checks it on the
    sample with a 0.05 allowance for sampling error.
    """
    config = config or ToyConfig()
    specs = tuple(specs or DEFAULT_TRADEOFFS)
    tasks = [(s, float(e), config) for s in specs
             for e in np.linspace(0.0, s.eps_max, config.n_eps)]
    results = sweep(_tradeoff_one, tasks, config, "trade-off")
    return ExperimentResult({"tradeoff": [r for r, _ in results]})


def _weight_row(fam: ToyFamily, clf: LinearClassifier, Xt: np.ndarray, eps: float,
                norm: str, lin: tuple[np.ndarray, float]) -> Row:
    l1 = float(np.abs(clf.w).sum())
    shares = linear_robust_accuracies(linear_example_distances(Xt, clf.w, clf.b, *lin, norm),
                                      eps)
    inv = shares["correct"] - shares["invariance_robust"]
    return {"family": fam.name, "norm": norm, "eps": float(eps),
            "w1": float(clf.w[0]), "w2": float(clf.w[1]), "b": clf.b,
            "weight_oracle_feature": abs(clf.w[0]) / l1 if l1 > 0 else 0.0,
            "weight_ignored_feature": abs(clf.w[1]) / l1 if l1 > 0 else 0.0,
            "invariance_share": inv, "n_with_invariance": int(round(inv * Xt.shape[0])),
            "n_test": int(Xt.shape[0]), **shares,
            "good_radius": fam.good_radius(norm).value}


def _finite_rows(label: str, fam: Any, norm: str, eps_grid: np.ndarray) -> list[Row]:
    rows = []
    dist = LpDistance(norm)
    sup = fam.points[fam.support]
    w = fam.probs[fam.support]
    ceil = fam.ceiling_curve(eps_grid, norm)
    good = fam.good_radius(norm).value
    for eps, c in zip(eps_grid, ceil, strict=True):
        opt = fam.robust_optimal(float(eps), norm)
        rep = robustness_report(sup, fam.table, opt.classifier, dist, float(eps), fam.points,
                                w, exhaustive=True)
        rows.append({
            "domain": label, "norm": norm, "eps": float(eps),
            "optimal_error": opt.error.value, "optimal_error_kind": opt.error.kind,
            "ceiling": float(c), "good_radius": good,
            "robust_and_real": rep.share("robust_and_real").value,
            "invariance_share": float(w[rep.correct & ~rep.no_invariance].sum()),
            "bounded_by_ceiling": bool(rep.share("robust_and_real").value <= c + 1e-12),
            "n_points": int(fam.points.shape[0]),
        })
    return rows


#: Finite domains of experiment 4: (label, kwargs of binary_images, l0 radii). The 3x4
#: grid stops at 3: the robust-optimal search squares the ball graph, which is nearly
#: complete (4096^2 entries) at larger radii, and the ceiling is already 0.05 there.
FINITE_DOMAINS: tuple[tuple[str, dict, tuple[int, ...]], ...] = (
    ("binary 3x3, orientation", {"height": 3, "width": 3, "rule": "orientation"},
     (0, 1, 2, 3, 4, 5)),
    ("binary 3x3, majority", {"height": 3, "width": 3, "rule": "majority"},
     (0, 1, 2, 3, 4, 5)),
    ("binary 3x4, orientation", {"height": 3, "width": 4, "rule": "orientation"},
     (0, 1, 2, 3)),
)


@threadpool_limits.wrap(limits=1)
def overly_robust(config: ToyConfig | None = None, *, norm: str = "linf",
                  picture_eps: Sequence[float] = (0.0, 0.15, 0.3, 0.5),
                  finite_domains: Sequence[tuple[str, dict, tuple[int, ...]]] = FINITE_DOMAINS
                  ) -> ExperimentResult:
    """Experiment 4: the overly-robust feature, seen; finite domains, exactly.

    Tables
    ------
    ``overly_robust``: per training radius, the robust linear model's weights, the share
    of weight on the oracle's feature ``x1`` and on the ignored feature ``x2``, and the
    exact share (and count) of test inputs that admit an invariance example.

    ``finite_domains``: per binary-image domain and l0 radius, the exact error of the
    robust-optimal classifier (least error among classifiers constant on every eps-ball
    of the support), the exact ceiling, and the exact share of D where that classifier
    is correct but has an invariance example.
    """
    config = config or ToyConfig()
    fam = get_family("overly-robust")
    lin = linear_oracle(fam)
    assert lin is not None
    X, y = fam.sample(config.n_train, seed=config.seed)
    Xt, _ = fam.sample(config.n_test, seed=config.seed + 1)
    grid = sorted(set(np.round(np.linspace(0.0, 0.6, max(config.n_eps, 4)), 6)) |
                  {float(e) for e in picture_eps})

    def one(eps: float) -> tuple[Row, LinearClassifier]:
        clf = fit_robust_linear(X, y, norm=norm, eps=eps)
        return _weight_row(fam, clf, Xt, eps, norm, lin), clf

    results = sweep(one, [(float(e),) for e in grid], config, "overly-robust")
    weights = [r for r, _ in results]
    classifiers = {e: (c.w, c.b) for e, (_, c) in zip(grid, results, strict=True)
                   if any(abs(e - p) < 1e-9 for p in picture_eps)}
    example = _invariance_arrow(fam, Xt, results[grid.index(max(picture_eps))][1],
                                max(picture_eps), norm)
    finite: list[Row] = []
    for label, kw, radii in finite_domains:
        finite += _finite_rows(label, binary_images(**kw), "l0", np.asarray(radii, float))
    return ExperimentResult(
        {"overly_robust": weights, "finite_domains": finite},
        {"X": Xt, "y": fam.oracle(Xt), "oracle_line": lin, "classifiers": classifiers,
         "example": example, "example_eps": max(picture_eps), "norm": norm},
    )


def _invariance_arrow(fam: ToyFamily, Xt: np.ndarray, clf: LinearClassifier, eps: float,
                      norm: str) -> tuple[np.ndarray, np.ndarray] | None:
    """An invariance example of ``clf`` within ``eps``: cross ``x1 = 0``, keep ``x2``.

    Takes the test input nearest ``eps / 2`` from the boundary and moves ``x1`` to
    ``-0.05 sign(x1)``; returned only if :func:`theory.examples.is_invariance_example`
    confirms it.
    """
    order = np.argsort(np.abs(np.abs(Xt[:, 0]) - eps / 2))
    for i in order[:20]:
        x = Xt[i:i + 1]
        xs = x.copy()
        xs[0, 0] = -0.05 * np.sign(x[0, 0])
        if is_invariance_example(x, xs, fam, clf, LpDistance(norm), eps)[0]:
            return x[0], xs[0]
    return None

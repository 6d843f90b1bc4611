"""Experiments 1 and 2 on the toy families: which norms and radii are good (exact next to
sample bounds and Monte Carlo), and good distance <=> perfect classifier (alignment and
the 1-NN rule)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from invariance_tradeoffs.simulations.experiments.toy.config import (
    ExperimentResult,
    ToyConfig,
    sweep,
)
from invariance_tradeoffs.simulations.experiments.toy.search import (
    invariance_candidates,
)
from invariance_tradeoffs.simulations.experiments.toy.tables import Row
from invariance_tradeoffs.theory.distances import (
    ClassifierInducedDistance,
    Distance,
    LpDistance,
    MahalanobisDistance,
    TransformInvariantDistance,
    cyclic_shifts,
)
from invariance_tradeoffs.theory.examples import in_ball
from invariance_tradeoffs.theory.margins import ceiling_from_margins, good_radius_from_margins
from invariance_tradeoffs.theory.oracles import predict
from invariance_tradeoffs.theory.theorem import check_nn_direction, covering_radius
from invariance_tradeoffs.theory.toys import (
    FAMILIES,
    FiniteDomain,
    ToyFamily,
    get_family,
)


def _eps_grid(margins: np.ndarray, good: float, norm: str, n: int) -> np.ndarray:
    finite = margins[np.isfinite(margins)]
    top = float(np.quantile(finite, 0.98)) if finite.size else 1.0
    top = max(top, 2.0 * good, 1e-3)
    if norm == "l0":
        return np.unique(np.round(np.linspace(0, np.ceil(top), n)))
    return np.linspace(0.0, top, n)


@threadpool_limits.wrap(limits=1)
def good_norms(families: Sequence[str] | None = None,
               config: ToyConfig | None = None) -> ExperimentResult:
    """Experiment 1: which norms and radii are good, exactly and by sampling.

    Tables
    ------
    ``good_radii``: family, norm, ``good_radius`` (exact), ``sampled_radius`` (the
    minimum exact margin of ``n_mc`` samples: an upper bound on the good radius that
    holds almost surely) and ``mass_below`` (with 95% confidence, D puts at most this
    mass below the sampled radius).

    ``ceilings``: family, norm, eps, ``exact`` (closed form; empty when the family has
    none for that norm), ``mc`` with ``mc_low``/``mc_high`` (Clopper-Pearson 95%), and
    ``exact_in_ci``.
    """
    config = config or ToyConfig()
    radii: list[Row] = []
    ceilings: list[Row] = []
    curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for name in families or list(FAMILIES):
        fam = get_family(name)
        X, _ = fam.sample(config.n_mc, seed=config.seed)
        for norm in fam.norms:
            m = fam.margin(X, norm)
            good = fam.good_radius(norm)
            sampled = good_radius_from_margins(m, exact=True)
            radii.append({"family": fam.name, "norm": norm, "good_radius": good.value,
                          "good_radius_kind": good.kind, "sampled_radius": sampled.value,
                          "sampled_kind": f"{sampled.kind} ({sampled.side})",
                          "mass_below": sampled.extra.get("mass_below"),
                          "n": config.n_mc, "method": good.method})
            grid = _eps_grid(m, good.value, norm, config.n_eps)
            mc = ceiling_from_margins(m, grid, exact=True)
            has_exact = norm in getattr(fam, "ceiling_norms", ())
            ex = fam.ceiling_curve(grid, norm) if has_exact else [None] * grid.size
            if has_exact:
                fine = np.linspace(0.0, float(grid[-1]), 400)
                curves[fam.name, norm] = (fine, fam.ceiling_curve(fine, norm))
            for eps, q, e in zip(grid, mc, ex, strict=True):
                ceilings.append({
                    "family": fam.name, "norm": norm, "eps": float(eps),
                    "exact": None if e is None else float(e), "mc": q.value,
                    "mc_low": q.low, "mc_high": q.high, "n": q.n,
                    "exact_in_ci": None if e is None else bool(q.low - 1e-12 <= e
                                                                <= q.high + 1e-12),
                })
    return ExperimentResult({"good_radii": radii, "ceilings": ceilings}, {"curves": curves})


def _image_shape(fam: ToyFamily) -> tuple[int, int]:
    if hasattr(fam, "image_shape"):
        return tuple(fam.image_shape)  # type: ignore[return-value]
    p = fam.params()
    if "height" in p and "width" in p:
        return (int(p["height"]), int(p["width"]))
    return (1, int(fam.n_features))


def _alignment_distances(fam: ToyFamily, S: np.ndarray, y_S: np.ndarray, lam: float,
                         seed: int) -> list[tuple[str, Distance, Any]]:
    """(label, distance, f) for every distance of experiment 2; ``f`` is set for d_f."""
    discrete = isinstance(fam, FiniteDomain) or hasattr(fam, "image_shape")
    norms = ("l0", "l1", "l2", "linf") if discrete else ("l1", "l2", "linf")
    out: list[tuple[str, Distance, Any]] = [(n, LpDistance(n), None) for n in norms]
    cov = np.cov(S, rowvar=False).reshape(S.shape[1], S.shape[1])
    cov += 1e-3 * (np.trace(cov) / S.shape[1] + 1e-12) * np.eye(S.shape[1])
    out.append(("mahalanobis", MahalanobisDistance(cov=cov), None))
    shape = _image_shape(fam)
    out.append(("shift-invariant l2",
                TransformInvariantDistance(LpDistance(2), cyclic_shifts(shape, 1)), None))
    classes = np.unique(y_S)
    models: list[tuple[str, Any]] = []
    if classes.size > 1:
        models.append(("logistic", LogisticRegression(max_iter=2000).fit(S, y_S)))
        models.append(("15-NN", KNeighborsClassifier(n_neighbors=min(15, len(S))).fit(S, y_S)))
    models.append(("oracle", fam))
    for label, f in models:
        out.append((f"d_f[l2, {label}]", ClassifierInducedDistance(LpDistance(2), f, lam), f))
    return out


def _alignment_one(name: str, config: ToyConfig, seed: int) -> list[Row]:
    fam = get_family(name)
    rng = np.random.default_rng(seed)
    weights = None
    if isinstance(fam, FiniteDomain):  # finite domain: the region is the whole support
        R = fam.points[fam.support]
        weights = fam.probs[fam.support]
        C = fam.points
        S, y_S = fam.sample(config.n_sample, seed=rng)
        S = np.unique(S, axis=0)
        y_S = fam.oracle(S)
    else:
        S, y_S = fam.sample(config.n_sample, seed=rng)
        R, _ = fam.sample(config.n_region, seed=rng)
        pool, pool_y = fam.sample(config.n_pool, seed=rng)
        # Margins are infima over the whole input space, not over D: add the points on the
        # segments from each region input to its nearest other-class pool inputs, where
        # the oracle's label changes (the margins stay upper bounds, but tight ones).
        C = np.vstack([pool, invariance_candidates(
            R, fam.oracle(R), pool, pool_y, norm="l2", eps=np.inf, k=2,
            fractions=tuple(np.round(np.arange(0.1, 1.0, 0.1), 2)))])
    y_R = fam.oracle(R)

    def share(mask: np.ndarray) -> float:  # D-weighted on finite domains, else a mean
        return float(mask.mean()) if weights is None else float(weights[mask].sum())

    lam = 4.0 * float(np.max(np.linalg.norm(np.vstack([S, R, C]), axis=1))) + 1.0
    rows: list[Row] = []
    for label, dist, f in _alignment_distances(fam, S, y_S, lam, seed):
        cover = covering_radius(R, S, dist).value
        rep = check_nn_direction(R, fam, S, dist, cover, candidates=C)
        # Margins of the region: exact for lp norms (closed form / exhaustive), otherwise
        # over the candidate pool plus the sample (upper bounds).
        if label in fam.norms:
            region_margin = float(fam.margin(R, label).min())
            good = fam.good_radius(label)
            margin_kind = "exact"
        else:
            region_margin = rep.min_margin
            good = None
            margin_kind = ("exact (whole domain searched)" if weights is not None
                           else "upper bound (candidate pool)")
        aligned = bool(not in_ball(region_margin, cover))
        nn_pred = rep.rule(R)
        nn_acc = share(nn_pred == y_R)
        row: Row = {
            "family": fam.name, "distance": label,
            "good_radius": None if good is None else good.value,
            "good_radius_kind": None if good is None else good.kind,
            "region_min_margin": region_margin, "margin_kind": margin_kind,
            "covering_radius": cover, "aligned": aligned, "covered": True,
            "nn_accuracy": nn_acc, "nn_perfect": bool(nn_acc >= 1.0 - 1e-12),
            "f_accuracy": None, "f_perfect": None,
            "theorem_holds": bool(rep.holds),
            "converse_holds": bool(aligned or nn_acc < 1.0 - 1e-12),
            "df_aligned_iff_f_perfect": None,
        }
        if f is not None:
            f_acc = share(predict(f, R) == y_R)
            row["f_accuracy"] = f_acc
            row["f_perfect"] = bool(f_acc >= 1.0 - 1e-12)
            row["df_aligned_iff_f_perfect"] = row["f_perfect"] == aligned
        row["n_sample"] = int(S.shape[0])
        row["n_region"] = int(R.shape[0])
        rows.append(row)
    return rows


@threadpool_limits.wrap(limits=1)
def alignment(families: Sequence[str] | None = None,
              config: ToyConfig | None = None) -> ExperimentResult:
    """Experiment 2: good norm <=> perfect classifier, empirically.

    For each family and distance (lp norms, Mahalanobis with the sample covariance,
    cyclic-shift-invariant l2, and ``d_f = l2 + lam [f(x) != f(x')]`` for logistic
    regression, 15-NN and the oracle, ``lam`` above the data diameter): the good
    radius, the covering radius of a labelled sample over a region, ``aligned``
    (``r_O(x) > covering radius`` on the whole region, i.e. the distance is good at the
    covering radius), the accuracy of the 1-NN rule on the region and of ``f``.

    The theorem (:func:`invariance_tradeoffs.theory.theorem.check_nn_direction`) guarantees
    ``aligned => 1-NN perfect`` (``theorem_holds``). The expected pattern also has the
    converse (``converse_holds``: a perfect 1-NN rule comes from an aligned distance)
    and, for ``d_f``, ``aligned <=> f perfect`` (``df_aligned_iff_f_perfect``); neither is
    a theorem, and rows where they fail are findings, reported as they are.

    Margins: exact for the lp norms (closed forms / exhaustive); for the other distances
    the minimum over a candidate set (upper bounds) -- the sample, a pool from D and the
    points on segments from each region input towards other-class pool inputs. For
    finite domains the region is the support of D, the candidates are the whole domain
    and accuracies are D-weighted (exact); otherwise the region is a sample of D.
    """
    config = config or ToyConfig()
    names = list(families or FAMILIES)
    tasks = [(n, config, config.seed + 101 * i) for i, n in enumerate(names)]
    parts = sweep(_alignment_one, tasks, config, "alignment")
    return ExperimentResult({"alignment": [r for part in parts for r in part]})

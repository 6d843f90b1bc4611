"""The five toy experiments. Each returns an :class:`ExperimentResult`: tidy tables plus
the arrays its figure needs.

1. :func:`good_norms` -- good radius per family and norm (exact next to a sample bound)
   and the ceiling ``P_D[r_O > eps]`` (exact next to Monte Carlo with its interval).
2. :func:`alignment` -- good distance <=> perfect classifier: per distance, the good
   radius, the covering radius of a labelled sample, alignment, the 1-NN accuracy and
   (for classifier-induced distances ``d_f``) the accuracy of ``f``.
3. :func:`tradeoff` -- classifiers trained robust at eps for a grid of eps, with their
   standard, sensitivity-robust, invariance-robust and real robust accuracy against the
   ceiling; exact for linear models under linear oracles, by attack otherwise.
4. :func:`overly_robust` -- the overly-robust feature seen: where a robust linear model
   puts its weight, the invariance examples it admits, and the exact robust-optimal
   classifier of finite domains against eps.
5. :func:`glyph_attacks` -- model-free invariance attacks on glyph digits, scored by the
   known oracle.

Sizes come from :class:`ToyConfig` (``ToyConfig.small()`` for tests). Sweeps run in
parallel with joblib (``n_jobs``) behind a tqdm progress bar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from invariance_tradeoffs.simulations.attacks.glyph import (
    l0_invariance_attack,
    linf_invariance_attack,
    score_attack,
)
from invariance_tradeoffs.simulations.experiments.toy.exact_linear import (
    linear_example_distances,
    linear_robust_accuracies,
)
from invariance_tradeoffs.simulations.experiments.toy.search import (
    attack_report,
    invariance_candidates,
)
from invariance_tradeoffs.simulations.experiments.toy.tables import Row
from invariance_tradeoffs.simulations.experiments.toy.training import (
    LinearClassifier,
    fit_adversarial_mlp,
    fit_robust_linear,
)
from invariance_tradeoffs.theory.distances import (
    ClassifierInducedDistance,
    Distance,
    LpDistance,
    MahalanobisDistance,
    TransformInvariantDistance,
    cyclic_shifts,
)
from invariance_tradeoffs.theory.examples import in_ball, is_invariance_example
from invariance_tradeoffs.theory.margins import ceiling_from_margins, good_radius_from_margins
from invariance_tradeoffs.theory.oracles import REJECT, predict
from invariance_tradeoffs.theory.results import proportion_estimate
from invariance_tradeoffs.theory.robust_accuracy import MASKS, robustness_report
from invariance_tradeoffs.theory.theorem import check_nn_direction, covering_radius
from invariance_tradeoffs.theory.toys import (
    FAMILIES,
    FiniteDomain,
    ToyFamily,
    binary_images,
    get_family,
)

__all__ = [
    "ToyConfig",
    "ExperimentResult",
    "TradeoffSpec",
    "DEFAULT_TRADEOFFS",
    "linear_oracle",
    "good_norms",
    "alignment",
    "tradeoff",
    "overly_robust",
    "glyph_attacks",
    "EXPERIMENTS",
]


@dataclass(frozen=True)
class ToyConfig:
    """Sizes and switches shared by the experiments.

    Attributes
    ----------
    seed : int
        Master seed; every sample and every training run derives from it.
    n_jobs : int
        joblib workers for parameter sweeps (``1``: in process; ``-1``: all cores).
    progress : bool
        Show tqdm progress bars.
    n_mc : int
        Monte Carlo samples per family for margins and ceilings.
    n_eps : int
        Radii per grid.
    n_sample, n_region, n_pool : int
        Labelled sample, region and candidate pool sizes (experiment 2 and attacks).
    n_train, n_test : int
        Training and test sizes of experiment 3.
    mlp_epochs : int
        Epochs of adversarial MLP training.
    n_glyph_train, n_glyph_attack : int
        Glyph training images and attacked sources.
    """

    seed: int = 0
    n_jobs: int = 1
    progress: bool = True
    n_mc: int = 4000
    n_eps: int = 9
    n_sample: int = 300
    n_region: int = 300
    n_pool: int = 2000
    n_train: int = 600
    n_test: int = 400
    mlp_epochs: int = 30
    n_glyph_train: int = 1500
    n_glyph_attack: int = 300

    @classmethod
    def small(cls, **overrides: Any) -> ToyConfig:
        """A configuration that runs every experiment in seconds (tests, smoke runs)."""
        base = cls(n_mc=600, n_eps=5, n_sample=80, n_region=80, n_pool=300, n_train=200,
                   n_test=120, mlp_epochs=12, n_glyph_train=300, n_glyph_attack=60,
                   progress=False)
        return replace(base, **overrides)


@dataclass
class ExperimentResult:
    """Tables (name -> tidy rows) and the arrays a figure needs."""

    tables: dict[str, list[Row]]
    figure_data: dict[str, Any] = field(default_factory=dict)


def _one_thread(fn: Callable[..., Any], *args: Any) -> Any:
    # Small matrices: BLAS threads only cost time (and fight the joblib workers).
    with threadpool_limits(limits=1):
        return fn(*args)


def _sweep(fn: Callable[..., Any], tasks: Sequence[tuple], config: ToyConfig,
           desc: str) -> list[Any]:
    """Run ``fn(*task)`` for each task with joblib, in order, behind a progress bar."""
    if config.n_jobs == 1:
        it: Iterable = (_one_thread(fn, *t) for t in tasks)
    else:
        it = Parallel(n_jobs=config.n_jobs, return_as="generator")(
            delayed(_one_thread)(fn, *t) for t in tasks)
    return list(tqdm(it, total=len(tasks), desc=desc, disable=not config.progress,
                     leave=False))


def _q(q: Any, prefix: str) -> Row:
    """Flatten a Quantity into ``prefix``, ``prefix_kind`` (and interval columns)."""
    row: Row = {prefix: q.value, f"{prefix}_kind": q.kind}
    if q.kind == "estimate":
        row[f"{prefix}_low"], row[f"{prefix}_high"] = q.low, q.high
    if q.kind == "bound":
        row[f"{prefix}_side"] = q.side
    return row


# --------------------------------------------------------------------------- experiment 1


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


# --------------------------------------------------------------------------- experiment 2


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
    parts = _sweep(_alignment_one, tasks, config, "alignment")
    return ExperimentResult({"alignment": [r for part in parts for r in part]})


# --------------------------------------------------------------------------- experiment 3


def linear_oracle(fam: ToyFamily) -> tuple[np.ndarray, float] | None:
    """``(u, c)`` with ``O(x) = [u.x + c > 0]`` when the family's oracle is linear, else None.

    Adapter over the families of :mod:`theory.toys` (their attributes differ), checked
    against the oracle on a sample so that a mismatch cannot go unnoticed.
    """
    from invariance_tradeoffs.theory.toys import LinearGaussian, OverlyRobustFeature, Tsipras

    if isinstance(fam, OverlyRobustFeature):
        u, c = np.array([1.0, 0.0]), 0.0
    elif isinstance(fam, Tsipras):
        u, c = fam.bayes_weights()
    elif isinstance(fam, LinearGaussian):
        u, c = np.asarray(fam.w, dtype=float), float(fam.b)
    else:
        return None
    X, y = fam.sample(500, seed=12345)
    if not np.array_equal((X @ u + c > 0).astype(int), y):
        raise RuntimeError(f"linear_oracle adapter disagrees with the oracle of {fam.name}")
    return np.asarray(u, dtype=float), float(c)


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
    results = _sweep(_tradeoff_one, tasks, config, "trade-off")
    return ExperimentResult({"tradeoff": [r for r, _ in results]})


# --------------------------------------------------------------------------- experiment 4


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

    results = _sweep(one, [(float(e),) for e in grid], config, "overly-robust")
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


# --------------------------------------------------------------------------- experiment 5


@threadpool_limits.wrap(limits=1)
def glyph_attacks(config: ToyConfig | None = None, *,
                  linf_radii: Sequence[float] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5),
                  l0_budgets: Sequence[int] = (2, 4, 6, 8, 12, 16, 24, 32),
                  robust_eps: float = 0.25, grid_eps: float = 0.3) -> ExperimentResult:
    """Experiment 5: invariance attacks on glyph digits, scored by the known oracle.

    Two models are attacked: a standard MLP and one adversarially trained at l-inf
    ``robust_eps`` (beyond the glyphs' l-inf good radius 0.15). For each l-inf radius
    and l0 budget, the model-free attacks of :mod:`simulations.attacks.glyph` are
    run on held-out glyphs; the table gives the shares (95% Clopper-Pearson) whose
    oracle label truly changed, changed to the attack's target, became no digit, and
    for which the model kept its label (invariance success = changed and kept). Also
    the exact margin of each source bounds the attack from below: ``distortion >=
    r_O(x)`` whenever the label changed (column ``below_margin`` counts violations).

    The second table, ``glyph_smallest``, is the search for the smallest change: per
    model and norm, the share of sources for which some radius of the grid gives an
    invariance example, and for those the smallest such radius next to the source's
    exact margin ``r_O(x)`` (no change below it can alter the digit).
    """
    config = config or ToyConfig()
    fam = get_family("glyph-digits")
    X, y = fam.sample(config.n_glyph_train, seed=config.seed)
    pool, pool_y = fam.sample(config.n_glyph_train, seed=config.seed + 3)
    src, src_y = fam.sample(config.n_glyph_attack, seed=config.seed + 4)
    models = _sweep(
        lambda eps: fit_adversarial_mlp(X, y, norm="linf", eps=eps, hidden=(64,),
                                        epochs=max(8, config.mlp_epochs // 2),
                                        clip=(0.0, 1.0), seed=config.seed),
        [(0.0,), (robust_eps,)], config, "glyph models")
    names = ["standard MLP", f"l-inf adv. trained MLP (eps={robust_eps:g})"]
    margins = {"linf": fam.margin(src, "linf"), "l0": fam.margin(src, "l0")}
    rows: list[Row] = []
    smallest_rows: list[Row] = []
    picture = None
    for norm, radii in (("linf", linf_radii), ("l0", l0_budgets)):
        smallest = np.full((len(models), src.shape[0]), np.inf)
        for r in sorted(radii):
            res = (linf_invariance_attack(src, src_y, pool, pool_y, float(r)) if norm == "linf"
                   else l0_invariance_attack(src, src_y, pool, pool_y, int(r)))
            for name, model in zip(names, models, strict=True):
                sc = score_attack(res, fam, model)
                changed = sc["masks"]["oracle_changed"]
                row: Row = {"model": name, "norm": norm, "radius": float(r), "n": sc["n"],
                            "mean_distortion": float(res["distortion"].mean()),
                            "model_accuracy_on_sources": float(
                                (model.predict(src) == src_y).mean())}
                for key in ("oracle_changed", "oracle_target", "oracle_reject", "model_kept",
                            "invariance"):
                    row.update(_q(sc[key], key))
                row["below_margin"] = int(np.sum(changed & (res["distortion"]
                                                            < margins[norm] - 1e-9)))
                rows.append(row)
                k = names.index(name)
                hit = sc["masks"]["invariance"] & np.isinf(smallest[k])
                smallest[k, hit] = float(r)
                if norm == "linf" and abs(r - grid_eps) < 1e-9 and name == names[1]:
                    picture = (res, sc)
        for k, name in enumerate(names):
            found = np.isfinite(smallest[k])
            q = _q(proportion_estimate(int(found.sum()), src.shape[0],
                                       "share of sources with an invariance example on the "
                                       "grid"), "found")
            smallest_rows.append({
                "model": name, "norm": norm, "n": int(src.shape[0]), **q,
                "median_smallest_radius": float(np.median(smallest[k, found]))
                if found.any() else None,
                "median_exact_margin": float(np.median(margins[norm][found]))
                if found.any() else None,
                "min_ratio_to_margin": float(np.min(smallest[k, found] / margins[norm][found]))
                if found.any() else None,
                "grid": " ".join(f"{r:g}" for r in sorted(radii)),
            })
    fig: dict[str, Any] = {"image_shape": fam.image_shape}
    if picture is not None:
        res, sc = picture
        o, f = sc["oracle_labels"], sc["model_labels"]
        order = np.argsort(~sc["masks"]["invariance"], kind="stable")[:12]
        fig.update(sources=res["sources"][order], examples=res["examples"][order],
                   captions=[_caption(int(res["source_labels"][i]), int(o[i]), int(f[i]))
                             for i in order], eps=grid_eps, model=names[1])
    return ExperimentResult({"glyph_attacks": rows, "glyph_smallest": smallest_rows}, fig)


def _caption(src: int, oracle: int, model: int) -> str:
    o = "none" if oracle == REJECT else str(oracle)
    return f"O: {src}->{o}, f: {model}"


#: Experiment name -> function, in the order ``tradeoffs toy all`` runs them.
EXPERIMENTS: dict[str, Callable[..., ExperimentResult]] = {
    "good-norms": good_norms,
    "alignment": alignment,
    "tradeoff": tradeoff,
    "overly-robust": overly_robust,
    "glyph-attacks": glyph_attacks,
}

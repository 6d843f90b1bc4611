"""How the toy computations scale: exact versus Monte Carlo, vectorised versus LP, finite domains.

Three measurements, each reported as seconds and as a ratio against a baseline measured in
the same run (so the numbers compare across machines):

1. ``ceiling``: the exact ceiling ``P_D[r_O > eps]`` (closed form, 50 radii) against its
   Monte Carlo estimate (``n`` samples, exact margins, Clopper-Pearson intervals) on
   ``LinearGaussian(d)``; baseline: the smallest ``(n, d)``.
2. ``linear-examples``: exact sensitivity/invariance example distances of a linear model
   (:func:`simulations.experiments.toy.exact_linear.linear_example_distances`, vectorised) against
   one :func:`scipy.optimize.linprog` per input and region (the reference it is tested
   against); ratio = LP seconds / vectorised seconds at the same ``(n, d)``.
3. ``finite-domain``: exhaustive margins and the robust-optimal classifier on all binary
   ``h x w`` images (``m = 2^(h w)`` points); baseline: the smallest domain; the fitted
   log-log slope gives the empirical exponent in ``m``.

Run: ``python benchmarks/toy_scaling.py [--quick] [--out results/bench/toy_scaling.json]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.optimize import linprog
from threadpoolctl import threadpool_limits

from invariance_tradeoffs.simulations.experiments.toy.exact_linear import linear_example_distances
from invariance_tradeoffs.theory.margins import ceiling_from_margins
from invariance_tradeoffs.theory.toys import LinearGaussian, binary_images


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Least wall-clock seconds over ``repeats`` runs (the least disturbed one)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_ceiling(ns: list[int], ds: list[int]) -> list[dict]:
    rows = []
    grid = np.linspace(0.0, 2.0, 50)
    for d in ds:
        fam = LinearGaussian(d=d)
        t_exact = best_of(lambda fam=fam: fam.ceiling_curve(grid, "l2"))
        for n in ns:
            X, _ = fam.sample(n, seed=0)
            m = fam.margin(X, "l2")
            t_sample = best_of(lambda fam=fam, n=n: fam.margin(fam.sample(n, seed=0)[0], "l2"))
            t_ci = best_of(lambda m=m: ceiling_from_margins(m, grid, exact=True))
            rows.append({"bench": "ceiling", "n": n, "d": d, "exact_s": t_exact,
                         "mc_sample_margins_s": t_sample, "mc_intervals_s": t_ci,
                         "mc_s": t_sample + t_ci})
    base = rows[0]["mc_sample_margins_s"]
    for r in rows:
        r["mc_over_exact"] = r["mc_s"] / r["exact_s"]
        r["sample_margins_vs_baseline"] = r["mc_sample_margins_s"] / base
    return rows


def _lp_distance(x: np.ndarray, G: np.ndarray, h: np.ndarray) -> float:
    d = x.size
    A = np.vstack([np.hstack([G, np.zeros((2, 1))]),
                   np.hstack([np.eye(d), -np.ones((d, 1))]),
                   np.hstack([-np.eye(d), -np.ones((d, 1))])])
    res = linprog(np.r_[np.zeros(d), 1.0], A_ub=A, b_ub=np.r_[h - G @ x, np.zeros(2 * d)],
                  bounds=[(None, None)] * (d + 1))
    return float(res.fun) if res.status == 0 else np.inf


def bench_linear(ns: list[int], ds: list[int], n_lp: int = 40) -> list[dict]:
    rows = []
    for d in ds:
        rng = np.random.default_rng(d)
        w, u = rng.normal(size=d), rng.normal(size=d)
        for n in ns:
            X = rng.normal(size=(n, d))
            t_vec = best_of(lambda X=X, w=w, u=u: linear_example_distances(X, w, 0.1, u, -0.1,
                                                                           "linf"))
            # LP reference: two regions per input; timed on n_lp inputs, scaled to n
            s = np.where(X[:n_lp] @ u - 0.1 > 0, 1.0, -1.0)

            def lp(Xs=X[:n_lp], s=s, w=w, u=u):
                for x, si in zip(Xs, s, strict=True):
                    _lp_distance(x, np.stack([-si * u, si * w]), np.array([si * -0.1,
                                                                           -si * 0.1]))
                    _lp_distance(x, np.stack([si * u, -si * w]), np.array([si * 0.1,
                                                                          si * 0.1]))

            t_lp = best_of(lp, repeats=1) * n / n_lp
            rows.append({"bench": "linear-examples", "n": n, "d": d, "vectorised_s": t_vec,
                         "linprog_s_extrapolated": t_lp, "linprog_over_vectorised": t_lp / t_vec})
    base = rows[0]["vectorised_s"]
    for r in rows:
        r["vectorised_vs_baseline"] = r["vectorised_s"] / base
    return rows


def bench_finite(shapes: list[tuple[int, int]]) -> list[dict]:
    rows = []
    for h, w in shapes:
        def margins(h=h, w=w):
            binary_images(h, w).domain_margins("l0")

        fam = binary_images(h, w)
        fam.domain_margins("l0")
        t_margin = best_of(margins)
        t_opt = best_of(lambda fam=fam: fam.robust_optimal(2.0, "l0"), repeats=1)
        rows.append({"bench": "finite-domain", "shape": f"{h}x{w}", "m": 2 ** (h * w),
                     "margins_s": t_margin, "robust_optimal_s": t_opt})
    for key in ("margins_s", "robust_optimal_s"):
        base = rows[0][key]
        for r in rows:
            r[key.replace("_s", "_vs_baseline")] = r[key] / base
        m = np.log([r["m"] for r in rows[1:]])
        t = np.log([r[key] for r in rows[1:]])
        slope = float(np.polyfit(m, t, 1)[0]) if len(rows) > 2 else float("nan")
        for r in rows:
            r[key.replace("_s", "_exponent")] = slope
    return rows


def _print(rows: list[dict]) -> None:
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v)
                                for v in r.values()) + " |")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (seconds)")
    parser.add_argument("--out", default=None, help="write all rows as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        ns, ds, shapes = [1000, 10000], [2, 16], [(2, 2), (2, 3), (3, 3)]
    else:
        # 4x4 (65536 images) is out of reach of the robust-optimal search: its ball graph
        # squared has ~1.6e8 entries at eps = 2.
        ns, ds, shapes = [1000, 10000, 100000], [2, 16, 128], [(2, 2), (2, 3), (3, 3),
                                                               (3, 4), (2, 7)]
    out = []
    with threadpool_limits(limits=1):  # single core: comparable, no oversubscription
        for rows in (bench_ceiling(ns, ds), bench_linear(ns, ds[:2] + [32]),
                     bench_finite(shapes)):
            _print(rows)
            out += rows
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

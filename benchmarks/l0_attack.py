"""Benchmark: the l0 attack's alignment search against random sampling of transforms.

For each source image (the first ``--n`` published sources), in one run:

* **project** -- :meth:`simulations.attacks.l0.attack.L0InvarianceAttack.align`: coarse
  Sobol transforms ranked through PCA lower bounds + exact matrix-product Hamming
  distances, an evolution strategy in the inverse frame, exact forward refinement;
* **random** -- the authors' search: transforms drawn uniformly from the same space
  (thickness: one of the precomputed levels), each compared (exact Hamming, inverse
  frame, one matrix product) with every training image of the same target classes,
  for **the same wall time** as the project's search on that source (and, with
  ``--factors``, for multiples of it; a batch of 256 transforms is never cut short, so
  random search gets at least that time); the 12 best
  (image, transform) pairs are then transformed forward exactly, as the project does.

Reported: the smallest exact binarised l0 between the source and an aligned training
image (the "full" edit before the cluster-subset step), per source and as medians, and
the ratio random / project. Both get the same target classes (all other classes).

Usage::

    python benchmarks/l0_attack.py [--n 20] [--factors 1,10] [--data-dir DIR]
                                   [--published-dir DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from invariance_tradeoffs.simulations.attacks.l0 import L0InvarianceAttack, warp
from invariance_tradeoffs.simulations.attacks.l0.judges import binarize
from invariance_tradeoffs.simulations.data.mnist import load_mnist
from invariance_tradeoffs.simulations.data.published import published_indices


def random_search(
    attack: L0InvarianceAttack,
    source: np.ndarray,
    classes: list[int],
    seconds: float,
    rng: np.random.Generator,
    batch: int = 256,
    n_exact: int = 12,
) -> tuple[int, int]:
    """Best exact l0 found by uniform random transforms within ``seconds``.

    Returns
    -------
    best_l0 : int
    n_transforms : int
        Transforms evaluated against the pool.
    """
    lo, hi = attack.search.space.lower[:7], attack.search.space.upper[:7]
    pools = [attack.searcher.pool(c) for c in classes]
    best = [np.full(len(p.indices), np.inf) for p in pools]
    best_p = [np.zeros((len(p.indices), 8)) for p in pools]
    levels = np.asarray(attack.search.coarse_levels)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        params = lo + (hi - lo) * rng.random((batch, 7))
        q = binarize(warp(source[None], params, inverse=True)).reshape(batch, -1)
        for k, pool in enumerate(pools):
            d = pool.hamming(q)  # (L, n, m)
            flat = d.transpose(1, 0, 2).reshape(d.shape[1], -1)
            arg = flat.argmin(axis=1)
            dmin = flat[np.arange(len(flat)), arg]
            better = dmin < best[k]
            lev, j = np.divmod(arg, batch)
            best[k][better] = dmin[better]
            best_p[k][better] = np.column_stack([params[j], levels[lev]])[better]
        n += batch
    rows = np.concatenate([p.indices for p in pools])
    allp = np.concatenate(best_p)
    top = np.argsort(np.concatenate(best), kind="stable")[:n_exact]
    _, exact = attack.searcher.exact(source, rows[top], allp[top])
    return int(exact.min()), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="published sources (default 20)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--published-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--factors", default="1", help="random search time as multiples of the project's"
    )
    args = parser.parse_args()

    train, test = load_mnist("train", args.data_dir), load_mnist("test", args.data_dir)
    idx = published_indices(args.published_dir)[: args.n]
    attack = L0InvarianceAttack(train.images, train.labels, random_state=args.seed)
    attack.prepare(test.labels[idx])
    factors = [float(f) for f in args.factors.split(",")]
    rng = np.random.default_rng(args.seed)
    rows = []
    head = " ".join(f"{'random x' + format(f, 'g'):>10s}" for f in factors)
    print(f"{'test index':>10s} {'class':>5s} {'project':>8s} {head} {'seconds':>7s}")
    for i in idx:
        src = test.images[i] / 255.0
        label = int(test.labels[i])
        classes = list(attack.targets[label])
        t0 = time.perf_counter()
        ours = attack.align(src, label, key=int(i), classes=classes)[0].l0
        spent = time.perf_counter() - t0
        theirs = [random_search(attack, src, classes, f * spent, rng)[0] for f in factors]
        rows.append((ours, *theirs, spent))
        cols = " ".join(f"{t:10d}" for t in theirs)
        print(f"{i:10d} {label:5d} {ours:8d} {cols} {spent:7.2f}", flush=True)
    table = np.array(rows, dtype=float)
    ours, spent = table[:, 0], table[:, -1]
    print(f"median best l0: project {np.median(ours):g}; mean search time {spent.mean():.2f} s")
    for k, f in enumerate(factors):
        theirs = table[:, 1 + k]
        print(
            f"random x{f:g} time: median {np.median(theirs):g} (ratio random/project "
            f"{np.median(theirs) / np.median(ours):.2f}); project better on "
            f"{int(np.sum(ours < theirs))}, equal on {int(np.sum(ours == theirs))}, worse on "
            f"{int(np.sum(ours > theirs))} of {len(ours)} sources"
        )


if __name__ == "__main__":
    main()

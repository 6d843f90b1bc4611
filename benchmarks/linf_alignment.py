"""Benchmark: step 1 of the l-inf invariance attack (aligned nearest-neighbour search).

Times, in one run and on the same source images,

* **baseline** -- a plain port of the method: for each source, 775 separate
  ``scipy.ndimage.rotate`` + ``shift`` calls, then one scikit-learn ``NearestNeighbors``
  (fitted once per class on the full training set) queried with all 775 transforms;
* **project** -- :func:`simulations.attacks.alignment.align_neighbours` (prefiltered
  transforms, float32 lower bounds, exact float64 search of the survivors),

checks that both return identical neighbours, classes and transforms, and prints the
per-source ratio. With ``--all`` it also times the project's search on all 100
published sources and counts how many of the 900 published aligned neighbours
(``all_nns.npy``) it reproduces.

Usage::

    python benchmarks/linf_alignment.py [--n-baseline 3] [--all] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy.ndimage import rotate, shift
from sklearn.neighbors import NearestNeighbors

from invariance_tradeoffs.simulations.attacks.alignment import (
    TRANSFORM_GRID,
    NeighbourIndex,
    align_neighbours,
)
from invariance_tradeoffs.simulations.data.mnist import load_mnist
from invariance_tradeoffs.simulations.data.published import find_published_dir, load_npy


def baseline_fit(train_images: np.ndarray, train_labels: np.ndarray) -> list:
    """One scikit-learn nearest-neighbour model per class (as a plain port would do)."""
    flat = train_images.reshape(len(train_images), -1)
    return [
        (
            NearestNeighbors(n_neighbors=1).fit(flat[train_labels == c]),
            np.flatnonzero(train_labels == c),
        )
        for c in range(10)
    ]


def baseline_align(models: list, train_images: np.ndarray, x: np.ndarray, y: int):
    """Plain port: per-transform scipy.ndimage, per-class kneighbors, argmin over transforms."""
    xs = np.asarray(
        [shift(rotate(x, r, reshape=False), (tx, ty)).reshape(784) for tx, ty, r in TRANSFORM_GRID]
    )
    nbrs, classes, trans = [], [], []
    for c in range(10):
        if c == y:
            continue
        model, members = models[c]
        dist, idx = model.kneighbors(xs, n_neighbors=1)
        best = int(np.argmin(dist.ravel()))
        tx, ty, r = -TRANSFORM_GRID[best]
        nb = train_images[members[idx.ravel()[best]]]
        nbrs.append(shift(rotate(nb, r, reshape=False), (tx, ty)))
        classes.append(c)
        trans.append(-TRANSFORM_GRID[best] + 0.0)
    return np.stack(nbrs), np.array(classes), np.stack(trans)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--published-dir", default=None)
    parser.add_argument("--n-baseline", type=int, default=3, help="sources timed for both")
    parser.add_argument("--all", action="store_true", help="also run all 100 published sources")
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args(argv)

    train = load_mnist("train", args.data_dir)
    test = load_mnist("test", args.data_dir)
    pub = find_published_dir(args.published_dir)[0]
    idx = load_npy(pub / "indexs.npy")
    sources, labels = test.images[idx], test.labels[idx]
    sel = np.arange(args.n_baseline)

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    models = baseline_fit(train.images, train.labels)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = [baseline_align(models, train.images, sources[i], int(labels[i])) for i in sel]
    t_base = (time.perf_counter() - t0) / len(sel)

    t0 = time.perf_counter()
    index = NeighbourIndex(train.images, train.labels)
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = align_neighbours(sources[sel], labels[sel], index=index)
    t_ours = (time.perf_counter() - t0) / len(sel)

    same = all(
        np.array_equal(b[0], ours.neighbours[k])
        and np.array_equal(b[1], ours.classes[k])
        and np.array_equal(b[2], ours.transforms[k])
        for k, b in enumerate(base)
    )
    print(f"sources timed: {len(sel)} (published indices {idx[sel].tolist()})")
    print(f"load average before/after (1 min): {load0:.1f} / {os.getloadavg()[0]:.1f}")
    print(f"baseline setup (NearestNeighbors.fit x10): {t_fit:.2f} s")
    print(f"project setup (NeighbourIndex):            {t_index:.2f} s")
    print(f"baseline per source: {t_base:.3f} s")
    print(f"project  per source: {t_ours:.3f} s")
    print(f"outputs identical: {same}")
    print(f"speed-up (per source): {t_base / t_ours:.1f}x")
    if not same:
        return 1
    if args.all:
        nns = load_npy(pub / "linf" / "all_nns.npy")
        t0 = time.perf_counter()
        full = align_neighbours(sources, labels, index=index, n_jobs=args.n_jobs)
        t_all = time.perf_counter() - t0
        match = int(np.all(full.neighbours == nns, axis=(2, 3)).sum())
        print(
            f"all {len(idx)} published sources: {t_all:.1f} s (n_jobs={args.n_jobs}); "
            f"aligned neighbours identical to all_nns.npy: {match} of {nns.shape[0] * nns.shape[1]}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

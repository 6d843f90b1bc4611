"""Benchmark: exact nearest training image of every class (issue 14), pruned vs brute force.

Times, in one run and on the same MNIST test images against all 60000 training images,

* **baseline** -- :func:`simulations.margins.search.brute_force_nearest`: every distance
  in numpy (int16 differences, chunks of 64 queries x ~80 training images), then the
  per-class minimum;
* **project** -- :meth:`simulations.margins.search.ExactSearch.nearest` for that metric
  alone (l1: float32 matrix product + the l1 >= l2^2/255 bound; l-inf: partial maxima
  with early abandoning, no matrix product);

checks that the distances are identical (and the indices for l0/l1/l2; for l-inf that the
reported image attains the distance), and prints the per-query ratio. Also times the l2
search against a bare float32 matrix product of the same size (the GEMM it is built on),
and all four distances together per query.

Usage::

    python benchmarks/margins_search.py [--n 100] [--metrics l1 linf l0 l2] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from invariance_tradeoffs.simulations.data.mnist import load_mnist
from invariance_tradeoffs.simulations.margins.search import (
    METRICS,
    ExactSearch,
    brute_force_nearest,
)


def attains(queries: np.ndarray, train: np.ndarray, indices: np.ndarray, metric: str,
            distances: np.ndarray) -> bool:
    """Whether every reported training image lies at the reported distance."""
    q = queries.reshape(len(queries), -1).astype(np.int64)
    x = train.reshape(len(train), -1).astype(np.int64)
    for i in range(len(q)):
        v = np.abs(x[indices[i]] - q[i])
        got = {"l1": v.sum(1), "l2": (v**2).sum(1), "linf": v.max(1),
               "l0": ((x[indices[i]] >= 128) != (q[i] >= 128)).sum(1)}[metric]
        if not np.array_equal(got, distances[i]):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n", type=int, default=100, help="test images timed for both")
    parser.add_argument("--metrics", nargs="+", default=["l1", "linf", "l0", "l2"],
                        choices=METRICS)
    args = parser.parse_args(argv)
    train, test = load_mnist("train", args.data_dir), load_mnist("test", args.data_dir)
    q = test.images[: args.n]
    print(f"{args.n} test images x 60000 training images; 1-min load average before: "
          f"{os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    search = ExactSearch(train.images, train.labels)
    print(f"project setup (ExactSearch): {time.perf_counter() - t0:.2f} s")
    search.nearest(q[:4])  # warm up (BLAS threads, page faults)
    ok = True
    for metric in args.metrics:
        t0 = time.perf_counter()
        ref = brute_force_nearest(q, train.images, train.labels, metric)
        t_base = (time.perf_counter() - t0) / len(q)
        t0 = time.perf_counter()
        got = search.nearest(q, [metric])[metric]
        t_ours = (time.perf_counter() - t0) / len(q)
        same_d = np.array_equal(got.distances, ref.distances)
        same_i = (attains(q, train.images, got.indices, metric, got.distances)
                  if metric == "linf" else np.array_equal(got.indices, ref.indices))
        ok &= same_d and same_i
        print(f"{metric:>4}: baseline {1e3 * t_base:7.2f} ms/query, project "
              f"{1e3 * t_ours:6.2f} ms/query, ratio {t_base / t_ours:5.1f}x; distances "
              f"identical: {same_d}; indices {'attain them' if metric == 'linf' else 'identical'}"
              f": {same_i}")
    # l2 against the bare GEMM it is built on (same shapes: batch x 784 @ 784 x 60000)
    batch = q[: search.batch].reshape(-1, 784)
    a = batch.astype(np.float32)
    b = train.images.reshape(-1, 784).astype(np.float32)
    t_gemm, t_l2 = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        _ = a @ b.T
        t_gemm.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        search.nearest(batch, ["l2"])
        t_l2.append(time.perf_counter() - t0)
    print(f"l2 search of {len(a)} queries: {min(t_l2):.3f} s; bare float32 GEMM "
          f"({len(a)}x784 @ 784x60000): {min(t_gemm):.3f} s; ratio {min(t_l2) / min(t_gemm):.2f}"
          " (best of 3 each)")
    t0 = time.perf_counter()
    search.nearest(q)
    t_all = (time.perf_counter() - t0) / len(q)
    print(f"all four distances together: {1e3 * t_all:.2f} ms/query "
          f"(projected 10000 test images: {10000 * t_all:.0f} s)")
    print(f"1-min load average after: {os.getloadavg()[0]:.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

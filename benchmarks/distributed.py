"""Benchmark: the l-inf and l0 invariance attacks on a Dask LocalCluster vs local joblib.

In one run, on the same MNIST test sources and the same batches (shards), times
:func:`~invariance_tradeoffs.simulations.attacks.runs.run_attack` with

* **joblib** -- today's local path: the batches one after the other in this process, each
  batch's sources spread over ``--n-jobs`` joblib processes (the attack's ``n_jobs``);
* **dask-1** -- ``scheduler="local:1"``: a LocalCluster of 1 worker process;
* **dask-2** -- ``scheduler="local:2"``: 2 worker processes (one thread each);

checks that the three runs are identical (every array, ``np.array_equal``; the l0
attack's wall-clock ``seconds`` excepted), and prints the throughput (sources per
second), its ratio to joblib, the cluster start-up time and the **scatter cost** (the
attack with its training set and neighbour index sent once to every worker; its pickled
size is printed too). From the per-source cost on one worker it projects the time of
``--indices all`` (10,000 sources) on N workers (an estimate: it assumes the workers
scale as the measured 1 -> 2 workers did, which a machine with free cores should beat).

Usage::

    python benchmarks/distributed.py [--linf-sources 40] [--l0-sources 6] [--n-jobs 2]
                                     [--batch-size 5] [--data-dir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

# This file's name shadows the `distributed` package when its folder is first on the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from invariance_tradeoffs.simulations.attacks.l0.attack import L0InvarianceAttack  # noqa: E402
from invariance_tradeoffs.simulations.attacks.linf import LinfInvarianceAttack  # noqa: E402
from invariance_tradeoffs.simulations.attacks.runs import run_attack  # noqa: E402
from invariance_tradeoffs.simulations.cli.attack import l0_batch  # noqa: E402
from invariance_tradeoffs.simulations.data.mnist import load_mnist  # noqa: E402
from invariance_tradeoffs.simulations.engine import (  # noqa: E402
    BuiltOnWorker,
    Engine,
    timed_share,
)

N_TEST = 10000


class LinfBatch:
    """The l-inf attack as a batch function (as ``tradeoffs mnist attack linf`` builds it)."""

    def __init__(self, attack, images, labels):
        self.attack, self.images, self.labels = attack, images, labels

    def __call__(self, idx):
        return self.attack.run(self.images[idx], self.labels[idx]).as_arrays()


class L0Batch(LinfBatch):
    """The l0 attack as a batch function (keys: the test indices, as the CLI)."""

    def __call__(self, idx):
        return self.attack.run(self.images[idx], self.labels[idx], keys=idx).as_arrays()


def _same(a, b) -> bool:
    return all(np.array_equal(v, b.arrays()[k], equal_nan=v.dtype.kind == "f")
               for k, v in a.arrays().items() if k != "seconds")


def measure(name: str, make_batch, idx: np.ndarray, n_jobs: int, batch_size: int,
            remote=None) -> dict:
    """Time the three configurations of one attack; returns a result dict.

    ``remote``: what the cluster runs instead of ``make_batch(1)`` (a
    :class:`BuiltOnWorker`); the scatter of ``make_batch(1)`` is then timed on its own."""
    rows = {}
    runs = {}
    with TemporaryDirectory() as tmp:
        batch = make_batch(n_jobs)
        start = time.perf_counter()
        runs["joblib"], _ = run_attack(batch, idx, Path(tmp) / "joblib", name, {},
                                       batch_size=batch_size, progress=False, grid=False)
        rows["joblib"] = {"seconds": time.perf_counter() - start, "workers": n_jobs}
        full = make_batch(1)  # on a cluster the batches are the parallel tasks
        size = len(pickle.dumps(full, protocol=pickle.HIGHEST_PROTOCOL))
        batch = full if remote is None else remote
        for workers in (1, 2):
            key = f"dask-{workers}"
            start = time.perf_counter()
            with Engine(f"local:{workers}") as engine:
                startup = time.perf_counter() - start
                _, scatter = timed_share(engine, batch)
                extra = {}
                if remote is not None:  # what sending the whole attack would cost
                    extra["scatter_whole_attack_seconds"] = timed_share(engine, full)[1]
                    engine._shared.clear()
                start = time.perf_counter()
                runs[key], _ = run_attack(batch, idx, Path(tmp) / key, name, {},
                                          batch_size=batch_size, progress=False, grid=False,
                                          scheduler=engine)
                rows[key] = {"seconds": time.perf_counter() - start, "workers": workers,
                             "startup_seconds": startup, "scatter_seconds": scatter, **extra}
    for row in rows.values():
        row["sources_per_second"] = len(idx) / row["seconds"]
        row["ratio_vs_joblib"] = rows["joblib"]["seconds"] / row["seconds"]
    identical = all(_same(runs["joblib"], runs[k]) for k in ("dask-1", "dask-2"))
    per_source = rows["dask-1"]["seconds"] / len(idx)
    speedup_2 = rows["dask-1"]["seconds"] / rows["dask-2"]["seconds"]
    return {"attack": name, "sources": len(idx), "batch_size": batch_size,
            "pickled_mb": size / 1e6, "identical": identical, "configs": rows,
            "seconds_per_source_1_worker": per_source,
            "speedup_2_workers_vs_1": speedup_2,
            "projected_hours_all_test": {
                str(n): N_TEST * per_source / n / 3600 for n in (1, 2, 16, 64, 256)}}


def report(res: dict) -> None:
    print(f"\n{res['attack']}: {res['sources']} sources, batches of {res['batch_size']}, "
          f"attack pickled {res['pickled_mb']:.1f} MB; identical runs: {res['identical']}")
    print("| configuration | wall s | sources/s | ratio vs joblib | start-up s | scatter s |")
    print("|---|---|---|---|---|---|")
    for key, r in res["configs"].items():
        print(f"| {key} ({r['workers']} worker(s)) | {r['seconds']:.2f} | "
              f"{r['sources_per_second']:.3f} | {r['ratio_vs_joblib']:.2f} | "
              f"{r.get('startup_seconds', float('nan')):.2f} | "
              f"{r.get('scatter_seconds', float('nan')):.2f} |")
    for r in res["configs"].values():
        if "scatter_whole_attack_seconds" in r:
            print(f"scatter of the whole pickled attack to {r['workers']} worker(s) (measured, "
                  f"not used: built on the workers): {r['scatter_whole_attack_seconds']:.2f} s")
    print(f"per source on 1 worker: {res['seconds_per_source_1_worker']:.3f} s; 2 workers vs 1: "
          f"{res['speedup_2_workers_vs_1']:.2f}x; projected hours for all 10,000 test images "
          "(linear in workers, estimate): "
          + ", ".join(f"{n} workers {h:.2f}" for n, h in res["projected_hours_all_test"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--linf-sources", type=int, default=40)
    parser.add_argument("--l0-sources", type=int, default=6)
    parser.add_argument("--n-jobs", type=int, default=2, help="joblib workers (baseline)")
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    train = load_mnist("train", args.data_dir)
    test = load_mnist("test", args.data_dir)
    # The first sources of a fixed random order (seed 0) of the test set.
    order = np.random.default_rng(0).permutation(N_TEST)
    results = []
    if args.linf_sources:
        idx = np.sort(order[: args.linf_sources])
        results.append(measure("linf_eps0.3", lambda jobs: LinfBatch(
            LinfInvarianceAttack(train.images, train.labels, eps=0.3, n_jobs=jobs),
            test.images, test.labels), idx, args.n_jobs, args.batch_size))
        report(results[-1])
    if args.l0_sources:
        idx = np.sort(order[: args.l0_sources])

        def l0(jobs: int) -> L0Batch:
            attack = L0InvarianceAttack(train.images, train.labels, n_jobs=jobs)
            attack.prepare(test.labels[idx])  # build the pools once, before pickling
            return L0Batch(attack, test.images, test.labels)

        # as `tradeoffs mnist attack l0 --scheduler`: each worker builds the attack
        remote = BuiltOnWorker(l0_batch, args.data_dir, budget="default", n_jobs=1)
        results.append(measure("l0_all", l0, idx, args.n_jobs,
                               max(1, min(args.batch_size, args.l0_sources // 2)), remote))
        report(results[-1])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

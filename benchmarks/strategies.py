"""How fast the public Hypothesis strategies draw, and how reliably they falsify folklore.

1. ``throughput``: examples per second of each default strategy of
   :mod:`invariance_tradeoffs.theory.strategies`, drawn by Hypothesis itself (``@given``,
   generation only, no database), against a baseline measured in the same run:
   ``hypothesis.extra.numpy.arrays`` of a ``(5, 2)`` integer array (the size of the largest
   default world). Ratio = baseline seconds per example / strategy seconds per example
   (1 = as fast as the baseline). Each example also builds the object (a ``FiniteWorld``
   validates its table, a ``robust_classifiers`` draw computes the ball graph).
2. ``--falsify N``: the two false claims of ``docs/properties.md`` run under ``N`` random
   seeds (``derandomize`` off, the default budget of 100 examples): how many runs falsify
   the claim and after how many examples.

Run: ``python benchmarks/strategies.py [--n 400] [--falsify 30] [--out FILE.json]``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from invariance_tradeoffs.theory import strategies as its

DOC = Path(__file__).resolve().parents[1] / "docs" / "properties.md"
WORLD = its.FiniteWorld([[0, 0], [0, 1], [1, 2], [2, 0], [3, 3]], [0, 0, -1, 1, 1],
                        distance="l2")
BASELINE = "arrays((5, 2), integers 0..3)"


def strategies() -> dict[str, st.SearchStrategy]:
    """The default strategies, and the baseline, by name."""
    return {
        BASELINE: arrays(np.int64, (5, 2), elements=st.integers(0, 3)),
        "finite_worlds()": its.finite_worlds(),
        "scenarios()": its.scenarios(),
        "finite_domains()": its.finite_domains(),
        "from_type(FiniteWorld)": st.from_type(its.FiniteWorld),
        "table_oracles(5 points)": its.table_oracles(WORLD.points),
        "region_oracles(5 points)": its.region_oracles(WORLD.points),
        "classifiers(world, eps=1)": its.classifiers(WORLD, eps=1.0),
        "robust_classifiers(world, 1)": its.robust_classifiers(WORLD, 1.0),
        "labelled_samples(world)": its.labelled_samples(WORLD),
        "radii(world)": its.radii(WORLD),
        "distances(2)": its.distances(2),
        "family_instances()": its.family_instances(),
    }


def examples_per_second(strategy: st.SearchStrategy, n: int) -> tuple[float, int]:
    """Examples per second of ``strategy`` under ``@given`` (generation phase only)."""
    calls = [0]

    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def draw(value: object) -> None:
        calls[0] += 1

    start = time.perf_counter()
    draw()
    return calls[0] / (time.perf_counter() - start), calls[0]


def bench_throughput(n: int) -> list[dict]:
    rows = []
    for name, strategy in strategies().items():
        rate, count = examples_per_second(strategy, n)
        rows.append({"bench": "throughput", "strategy": name, "examples": count,
                     "examples_per_s": rate})
    base = rows[0]["examples_per_s"]
    for row in rows:
        row["ratio_to_baseline"] = row["examples_per_s"] / base
    return rows


def doc_claims() -> dict:
    """The test functions defined by the code blocks of docs/properties.md."""
    scope: dict = {}
    for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S):
        exec(compile(block, "<docs/properties.md>", "exec"), scope)
    return scope


def first_failure(test: object, run_seed: int) -> int | None:
    """Examples until ``test`` (a doc claim) first fails under ``run_seed``; None if never."""
    inner = test.hypothesis.inner_test
    kwargs = test.hypothesis._given_kwargs
    state = {"calls": 0, "first": None}

    def counted(**args: object) -> None:
        state["calls"] += 1
        try:
            inner(**args)
        except AssertionError:
            if state["first"] is None:
                state["first"] = state["calls"]
            raise

    wrapped = seed(run_seed)(settings(max_examples=100, derandomize=False, database=None,
                                      deadline=None)(given(**kwargs)(counted)))
    try:
        wrapped()
    except AssertionError:
        pass
    return state["first"]


def bench_falsify(n_seeds: int) -> list[dict]:
    scope = doc_claims()
    rows = []
    for name in ("test_perfect_nearest_neighbour_means_a_good_distance",
                 "test_some_classifier_attains_the_ceiling"):
        start = time.perf_counter()
        firsts = [first_failure(scope[name], s) for s in range(n_seeds)]
        found = [f for f in firsts if f is not None]
        rows.append({"bench": "falsify", "claim": name, "seeds": n_seeds,
                     "falsified": len(found), "first_failure": firsts,
                     "median_first": float(np.median(found)) if found else None,
                     "max_first": max(found) if found else None,
                     "seconds": time.perf_counter() - start})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="examples per strategy (default 400)")
    ap.add_argument("--falsify", type=int, default=0, metavar="N",
                    help="also run the folklore claims under N random seeds")
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = ap.parse_args()
    if args.n < 1 or args.falsify < 0:
        ap.error("--n must be >= 1 and --falsify >= 0")
    rows = bench_throughput(args.n)
    print(f"{'strategy':34s} {'examples':>8s} {'examples/s':>11s} {'vs baseline':>11s}")
    for r in rows:
        print(f"{r['strategy']:34s} {r['examples']:8d} {r['examples_per_s']:11.0f} "
              f"{r['ratio_to_baseline']:11.2f}")
    if args.falsify:
        for r in bench_falsify(args.falsify):
            rows.append(r)
            print(f"{r['claim']}: falsified in {r['falsified']}/{r['seeds']} seeds, first "
                  f"failing example median {r['median_first']}, max {r['max_first']} "
                  f"({r['seconds']:.0f} s)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

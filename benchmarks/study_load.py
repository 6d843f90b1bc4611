"""Requests per second of the labelling-study server under 20 participants at once.

One uvicorn server process (``python -m invariance_tradeoffs.simulations.study serve``,
127.0.0.1, a free
port) serves a synthetic study (random 28x28 images: the content does not matter to the
server) of ``--examples`` examples, ``--labels-per-image`` labels each, spread over
``--participants`` participants with attention checks at rate 0.1. In the same run, with
the same number of concurrent keep-alive clients (threads of this process):

- **baseline**: static GETs of ``/`` (a constant page, no database), as many requests as
  the study flow makes;
- **study flow**: every participant opens the invite page, presses Start, and then for
  every image GETs its PNG and POSTs an answer (each answer committed to SQLite with
  ``synchronous=FULL`` before the reply) until finished.

Reported: requests/s of each and the ratio study/baseline, and the server process's CPU
time per request in each phase (``/proc``: the clients run in this process on the same
cores, so requests/s measure client and server together), per repeat and the median over
``--repeats`` (a fresh study and server each repeat). Every answer is checked to be in the
study file exactly once.

Run: ``python benchmarks/study_load.py [--repeats 3] [--out results/bench/study_load.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from invariance_tradeoffs.simulations.data.mnist import MNISTSplit
from invariance_tradeoffs.simulations.study import store
from invariance_tradeoffs.simulations.study.client import ServerProcess, StudyClient
from invariance_tradeoffs.simulations.study.design import Design, StudyItems, create_study


def synthetic_study(path: Path, n: int, participants: int, k: int, seed: int):
    rng = np.random.default_rng(seed)
    idx = np.arange(n, dtype=np.int64)
    items = StudyItems(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), idx, idx, idx % 10,
                       (idx + 1) % 10, None, "synthetic", "bench")
    test = MNISTSplit(rng.integers(0, 256, (1000, 28, 28), dtype=np.uint8),
                      (np.arange(1000) % 10).astype(np.uint8))
    return create_study(path, items, Design(participants, k, 0.1, seed), test)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def concurrently(clients: list[StudyClient], work: Callable[[StudyClient], None]) -> float:
    """Run ``work`` on every client in its own thread, started together; wall seconds."""
    barrier = threading.Barrier(len(clients) + 1)
    errors: list[BaseException] = []

    def run(c: StudyClient) -> None:
        barrier.wait()
        try:
            work(c)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    took = time.perf_counter() - start
    if errors:
        raise errors[0]
    return took


def one_repeat(tmp: Path, args: argparse.Namespace, seed: int) -> dict:
    study = synthetic_study(tmp / f"bench-{seed}.study", args.examples, args.participants,
                            args.labels_per_image, seed)
    n_trials = sum(len(s) for s in study.plan.sequences)
    with ServerProcess(study.path) as server:
        # the study flow
        pid = server.proc.pid
        clients = [StudyClient(server.url, t) for t in study.tokens]
        cpu0 = cpu_seconds(pid)
        flow_s = concurrently(clients, lambda c: c.label_all(lambda state, png: 3))
        flow_cpu = cpu_seconds(pid) - cpu0
        flow_requests = sum(c.requests for c in clients)
        # the baseline: the same number of requests, static GET /
        per_client = flow_requests // len(clients)
        statics = [StudyClient(server.url, t) for t in study.tokens]

        def get_static(c: StudyClient) -> None:
            for _ in range(per_client):
                if c.request("GET", "/").status != 200:
                    raise RuntimeError("static GET failed")

        cpu0 = cpu_seconds(pid)
        static_s = concurrently(statics, get_static)
        static_cpu = cpu_seconds(pid) - cpu0
        static_requests = sum(c.requests for c in statics)
    conn = store.connect(study.path)
    recorded = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    conn.close()
    if recorded != n_trials:
        raise RuntimeError(f"{recorded} answers recorded, expected {n_trials}")
    flow_rps, static_rps = flow_requests / flow_s, static_requests / static_s
    return {"answers": n_trials, "flow_requests": flow_requests, "flow_s": flow_s,
            "flow_rps": flow_rps, "answers_per_s": n_trials / flow_s,
            "static_requests": static_requests, "static_s": static_s,
            "static_rps": static_rps, "ratio": flow_rps / static_rps,
            "server_cpu_ms_per_request_flow": 1000 * flow_cpu / flow_requests,
            "server_cpu_ms_per_request_static": 1000 * static_cpu / static_requests}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=20)
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--labels-per-image", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            row = one_repeat(Path(tmp), args, seed=r)
            rows.append(row)
            print(f"repeat {r}: study flow {row['flow_requests']} requests in "
                  f"{row['flow_s']:.2f} s = {row['flow_rps']:.0f} req/s "
                  f"({row['answers_per_s']:.0f} answers/s); static GET / "
                  f"{row['static_requests']} in {row['static_s']:.2f} s = "
                  f"{row['static_rps']:.0f} req/s; ratio {row['ratio']:.3f}; server CPU "
                  f"per request {row['server_cpu_ms_per_request_flow']:.2f} ms (flow) vs "
                  f"{row['server_cpu_ms_per_request_static']:.2f} ms (static)", flush=True)
    summary = {key: statistics.median(r[key] for r in rows)
               for key in ("flow_rps", "answers_per_s", "static_rps", "ratio",
                           "server_cpu_ms_per_request_flow",
                           "server_cpu_ms_per_request_static")}
    print(f"median over {len(rows)}: study flow {summary['flow_rps']:.0f} req/s, static "
          f"{summary['static_rps']:.0f} req/s, ratio {summary['ratio']:.3f}; server CPU per "
          f"request {summary['server_cpu_ms_per_request_flow']:.2f} ms vs "
          f"{summary['server_cpu_ms_per_request_static']:.2f} ms")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"args": vars(args), "repeats": rows,
                                              "median": summary,
                                              "command": " ".join(sys.argv)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The execution engine on a real Dask LocalCluster (2 worker processes on 127.0.0.1).

One cluster is started for the module (and stopped at its end). Checked: results
identical to local runs (l-inf attack on 40 published sources, a toy sweep, the l0
attack on 3 sources), a worker killed by its pid mid-run, a rerun after the client was
stopped computing only the missing shards, the authors' release format round trip, and
the errors: unreachable address, workers lacking a distribution, dask missing.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("dask.distributed")
import cloudpickle  # noqa: E402 - installed with dask

from invariance_tradeoffs.simulations import engine as engine_mod  # noqa: E402
from invariance_tradeoffs.simulations.attacks.l0.attack import batch_attack  # noqa: E402
from invariance_tradeoffs.simulations.attacks.linf import LinfInvarianceAttack  # noqa: E402
from invariance_tradeoffs.simulations.attacks.runs import (  # noqa: E402
    load_run,
    parse_indices,
    run_attack,
    save_release,
)
from invariance_tradeoffs.simulations.data.mnist import load_mnist  # noqa: E402
from invariance_tradeoffs.simulations.data.published import (  # noqa: E402
    load_published_examples,
    published_indices,
)
from invariance_tradeoffs.simulations.engine import (  # noqa: E402
    REQUIRED_ON_WORKERS,
    ClusterLostError,
    Engine,
    WorkerError,
    check_workers,
    parse_scheduler,
    require_distributed,
)

N_TRAIN = 2000  # training images searched by the l-inf attack (speed only)
N_SHORT = 12  # sources of the interrupted runs (6 shards of 2)
PARAMS = {"attack": "linf", "eps": 0.3, "n_train": N_TRAIN}


# ---------------------------------------------------------------- picklable batch functions


class LinfBatch:
    """The l-inf attack as a batch function of test indices (as the CLI builds it)."""

    def __init__(self, attack, images, labels):
        self.attack, self.images, self.labels = attack, images, labels

    def __call__(self, idx):
        return self.attack.run(self.images[idx], self.labels[idx]).as_arrays()


class Slow:
    """``fn`` after a pause: the same output, but a run long enough to interrupt."""

    def __init__(self, fn, delay):
        self.fn, self.delay = fn, delay

    def __call__(self, idx):
        time.sleep(self.delay)
        return self.fn(idx)


class RefuseDone:
    """``fn``, failing if asked for a source that was already finished."""

    def __init__(self, fn, done):
        self.fn, self.done = fn, set(done)

    def __call__(self, idx):
        again = self.done & set(idx.tolist())
        if again:
            raise AssertionError(f"recomputed finished sources {sorted(again)}")
        return self.fn(idx)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def engine():
    # The workers cannot import this test module: send its classes by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with Engine("local:2") as eng:
            yield eng
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_mnist("train", mnist_dir), load_mnist("test", mnist_dir)


@pytest.fixture(scope="module")
def linf(mnist, published_dir):
    train, test = mnist
    attack = LinfInvarianceAttack(train.images[:N_TRAIN], train.labels[:N_TRAIN], eps=0.3)
    return LinfBatch(attack, test.images, test.labels), published_indices(published_dir)[:40]


@pytest.fixture(scope="module")
def linf_local(linf, tmp_path_factory):
    batch, idx = linf
    run, _ = run_attack(batch, idx, tmp_path_factory.mktemp("local"), "linf", PARAMS,
                        batch_size=5, progress=False, grid=False)
    return run


def _same(a, b, rows=slice(None)):
    """Every array of run ``a`` equals rows ``rows`` of run ``b`` (NaN marks a source
    without example), except the l0 attack's wall-clock ``seconds``."""
    assert list(a.arrays()) == list(b.arrays())
    for key, value in a.arrays().items():
        if key != "seconds":
            assert np.array_equal(value, b.arrays()[key][rows],
                                  equal_nan=value.dtype.kind == "f"), key
    assert a.params == b.params


def _parts(folder):
    return sorted(folder.glob("part-*.npz"))


# ---------------------------------------------------------------- parsing, errors


def test_parse_scheduler():
    assert parse_scheduler(None) is None and parse_scheduler("  ") is None
    assert parse_scheduler("local:3").n_workers == 3
    assert parse_scheduler("10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    assert parse_scheduler("tls://head.cluster:8786").address == "tls://head.cluster:8786"
    for bad in ("local:0", "local:x", "local:999", "tcp://host", "host:99999", "ftp://h:1"):
        with pytest.raises(ValueError, match="--scheduler"):
            parse_scheduler(bad)
    assert parse_indices("all").tolist() == list(range(10000))


def test_missing_dask_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(ImportError, match=r"invariance-tradeoffs\[distributed\]"):
        require_distributed()
    with pytest.raises(ImportError, match="pip install"):
        Engine("local:1")
    assert Engine(None).map(abs, [-2]) == [2]  # local work never needs dask


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_fails_fast_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from invariance_tradeoffs.simulations.cli import main

    address = f"tcp://127.0.0.1:{_closed_port()}"
    with pytest.raises(ConnectionError, match=f"no Dask scheduler answered at {address}"):
        Engine(address, connect_timeout=1).__enter__()
    monkeypatch.setattr(engine_mod, "CONNECT_TIMEOUT", 1.0)
    out = tmp_path / "never"
    code = main(["mnist", "attack", "linf", "--eps", "0.3", "--indices", "0:2", "--out",
                 str(out), "--scheduler", address, "--no-progress"])
    assert code == 2 and address in capsys.readouterr().err
    assert not out.exists()


def test_workers_lacking_a_distribution_are_named(engine):
    versions = check_workers(engine.client)
    assert len(versions) == 2 and all(set(v) == set(REQUIRED_ON_WORKERS)
                                       for v in versions.values())
    with pytest.raises(WorkerError, match="lacks no-such-distribution-15"):
        check_workers(engine.client, (*REQUIRED_ON_WORKERS, "no-such-distribution-15"))
    with pytest.raises(WorkerError, match=r"has numpy \S+ \(here 0\.0\)"):
        check_workers(engine.client, expected={"numpy": "0.0"})


# ---------------------------------------------------------------- identical results


def test_linf_on_40_published_sources_identical(engine, linf, linf_local, tmp_path):
    batch, idx = linf
    run, path = run_attack(batch, idx, tmp_path, "linf", PARAMS, batch_size=5,
                           progress=False, grid=False, scheduler=engine)
    _same(run, linf_local)
    _same(load_run(path), linf_local)
    assert not (tmp_path / "linf.parts").exists()


def test_release_format_round_trip(linf_local, mnist_dir, tmp_path):
    files = save_release(linf_local, tmp_path)
    assert [f.name for f in files] == ["attack_eps03.npy", "attack_eps03_labels.npy",
                                       "attack_eps03_indexs.npy"]
    sets = load_published_examples(tmp_path, data_dir=mnist_dir)
    got = sets["linf/attack_eps03"]
    assert got.norm == "linf" and got.radius == 0.3 and got.violations.size == 0
    np.testing.assert_array_equal(got.source_indices, linf_local.source_indices)
    np.testing.assert_array_equal(got.human_labels, linf_local.targets)  # the targets file
    np.testing.assert_array_equal(got.original_labels, linf_local.source_labels)
    # float32 on the 0..255 scale, as the authors' automated_eps03.npy
    stored = np.load(files[0], allow_pickle=False)
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, (linf_local.examples * 255).astype(np.float32))
    np.testing.assert_allclose(got.examples, linf_local.examples, rtol=0, atol=1e-6)


def test_toy_sweep_identical(engine):
    from invariance_tradeoffs.simulations.experiments.toy.config import ToyConfig
    from invariance_tradeoffs.simulations.experiments.toy.tradeoff import (
        TradeoffSpec,
        tradeoff,
    )

    small = ToyConfig.small()
    spec = [TradeoffSpec("overly-robust", "linear", "linf", 0.6)]
    local = tradeoff(spec, small).tables
    # by address: a second client of the module's cluster, through the joblib backend
    remote = tradeoff(spec, replace(small, scheduler=engine.cluster.scheduler_address)).tables
    assert local == remote and len(local["tradeoff"]) == small.n_eps


def test_l0_on_3_sources_identical(engine, mnist, tmp_path):
    train, test = mnist
    batch, params = batch_attack(train, test, n_train=1000, budget="fast", random_state=3)
    idx = np.array([0, 1, 2])
    local, _ = run_attack(batch, idx, tmp_path / "a", "l0", params, batch_size=1,
                          progress=False, grid=False)
    remote, _ = run_attack(batch, idx, tmp_path / "b", "l0", params, batch_size=1,
                           progress=False, grid=False, scheduler=engine)
    _same(local, remote)
    assert np.isfinite(local.distortion).any()  # the comparison covers found examples


# ---------------------------------------------------------------- failures


def _when_parts(folder, count, action, timeout=120.0):
    """Run ``action()`` in a thread once ``folder`` holds ``count`` parts; returns the
    thread and a dict with the parts present at that moment."""
    seen: dict = {}

    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(_parts(folder)) >= count:
                seen["parts"] = len(_parts(folder))
                action()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, seen


def test_worker_killed_mid_run_still_identical(engine, linf, linf_local, tmp_path):
    batch, idx = linf
    idx = idx[:N_SHORT]
    pids = engine.worker_pids()
    victim = sorted(pids.values())[0]
    thread, seen = _when_parts(tmp_path / "linf.parts", 2,
                               lambda: os.kill(victim, signal.SIGKILL))
    run, _ = run_attack(Slow(batch, 0.3), idx, tmp_path, "linf", PARAMS, batch_size=2,
                        progress=False, grid=False, scheduler=engine)
    thread.join()
    assert seen["parts"] < len(idx) // 2  # killed while shards were left
    _same(run, linf_local, slice(N_SHORT))
    engine.client.wait_for_workers(2, timeout=60)
    assert victim not in engine.worker_pids().values()  # the nanny started a new worker


def test_rerun_after_client_stopped_computes_only_missing_shards(engine, linf, linf_local,
                                                                 tmp_path):
    batch, idx = linf
    idx = idx[:N_SHORT]
    parts = tmp_path / "linf.parts"
    with Engine(engine.cluster.scheduler_address) as second:  # another client, by address
        thread, seen = _when_parts(parts, 3, second.close)
        with pytest.raises(ClusterLostError, match="rerun to compute only the missing"):
            run_attack(Slow(batch, 0.3), idx, tmp_path, "linf", PARAMS, batch_size=2,
                       progress=False, grid=False, scheduler=second)
        thread.join()
    kept = _parts(parts)
    done = [int(i) for p in kept for i in np.load(p)["source_indices"]]
    assert 3 <= len(kept) < len(idx) // 2 and not (tmp_path / "linf.npz").exists()
    run, _ = run_attack(RefuseDone(batch, done), idx, tmp_path, "linf", PARAMS,
                        batch_size=2, progress=False, grid=False, scheduler=engine)
    _same(run, linf_local, slice(N_SHORT))


# ---------------------------------------------------------------- the commands


def test_alignment_search_on_the_cluster_identical(engine, linf):
    from invariance_tradeoffs.simulations.attacks.alignment import align_neighbours

    batch, idx = linf
    src, lab = batch.images[idx[:3]], batch.labels[idx[:3]]
    local = align_neighbours(src, lab, index=batch.attack.index)
    remote = align_neighbours(src, lab, index=batch.attack.index, scheduler=engine)
    for key in ("neighbours", "classes", "train_indices", "transforms", "distances"):
        assert np.array_equal(getattr(local, key), getattr(remote, key)), key


@pytest.mark.slow  # about 11-15 s on the loaded 2-core box; the wiring is also checked
# by test_unreachable_scheduler_fails_fast_and_writes_nothing (main() with --scheduler)
def test_cli_attacks_with_scheduler(engine, mnist_dir, tmp_path, capsys):
    from invariance_tradeoffs.simulations.cli import main

    address = engine.cluster.scheduler_address
    common = ["--data-dir", str(mnist_dir), "--no-progress", "--batch-size", "1"]
    # l-inf: the attack scattered to the workers; the examples also in the release format
    assert main(["mnist", "attack", "linf", "--eps", "0.3", "--indices", "0:2", "--out",
                 str(tmp_path / "linf"), "--scheduler", address, *common]) == 0
    assert "release format" in capsys.readouterr().out
    got = load_published_examples(tmp_path / "linf" / "release", data_dir=mnist_dir)
    assert got["linf/attack_eps03"].source_indices.tolist() == [0, 1]
    # l0: each worker builds the attack from --data-dir; identical to the local command
    l0 = ["mnist", "attack", "l0", "--indices", "0:2", "--train-subset", "500", "--budget",
          "fast", *common]
    assert main([*l0, "--out", str(tmp_path / "local"), "--n-jobs", "1"]) == 0
    assert main([*l0, "--out", str(tmp_path / "remote"), "--scheduler", address]) == 0
    _same(load_run(tmp_path / "remote" / "l0_all.npz"),
          load_run(tmp_path / "local" / "l0_all.npz"))


@pytest.mark.slow  # training: about 14 s on the loaded 2-core box
def test_zoo_training_on_the_cluster_identical(engine, mnist_dir, tmp_path):
    torch = pytest.importorskip("torch")
    from invariance_tradeoffs.simulations.models.train_pool import TrainJob, train_missing
    from invariance_tradeoffs.simulations.models.zoo import load_or_train

    done = train_missing([TrainJob("zoo", "tiny-standard")], data_dir=mnist_dir,
                         cache_dir=tmp_path / "remote", progress=False, scheduler=engine)
    assert [d["job"] for d in done] == ["tiny-standard"]
    assert done[0]["pid"] in engine.worker_pids().values()  # trained on a worker
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a worker
    try:
        here = load_or_train("tiny-standard", data_dir=mnist_dir, cache_dir=tmp_path / "here")
    finally:
        torch.set_num_threads(threads)
    remote = load_or_train("tiny-standard", data_dir=mnist_dir, cache_dir=tmp_path / "remote",
                           train_if_missing=False)
    for a, b in zip(here.model.module.state_dict().values(),
                    remote.model.module.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow  # a reduced `tradeoffs reproduce --quick` twice: about 90 s
def test_reproduce_on_the_cluster_identical(engine, mnist_dir, published_dir, tmp_path):
    pytest.importorskip("torch")
    import json

    from invariance_tradeoffs.simulations.cli import main

    base = ["reproduce", "--quick", "--data-dir", str(mnist_dir), "--published-dir",
            str(published_dir), "--models", "tiny-logreg", "tiny-standard", "--n-sources", "3",
            "--n-test", "40", "--pgd-steps", "2", "--pgd-restarts", "1", "--l0-sources", "2",
            "--no-progress"]
    results = []
    for name, extra in (("local", []), ("dask", ["--scheduler",
                                                 engine.cluster.scheduler_address])):
        assert main([*base, "--out", str(tmp_path / name), "--cache-dir",
                     str(tmp_path / f"cache-{name}"), *extra]) == 0
        res = json.loads((tmp_path / name / "results.json").read_text())
        res["attack"].pop("alignment_seconds")  # a timing
        results.append(res)
    assert results[0]["evals"] == results[1]["evals"]  # trained and evaluated on workers
    assert results[0]["attack"] == results[1]["attack"]  # alignment search on workers


@pytest.mark.slow  # trains two tiny models (cached per test) and evaluates them twice
def test_evaluate_models_on_the_cluster_identical(engine, mnist_dir, published_dir, tmp_path):
    torch = pytest.importorskip("torch")
    from invariance_tradeoffs.simulations.evaluation.agreement import (
        PGDSettings,
        evaluate_models,
    )
    from invariance_tradeoffs.simulations.models.zoo import load_or_train

    sets = load_published_examples(published_dir, data_dir=mnist_dir)
    models = {n: load_or_train(n, data_dir=mnist_dir, cache_dir=tmp_path).model
              for n in ("tiny-logreg", "tiny-standard")}
    pgd = PGDSettings(steps=2, restarts=1, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as on a worker
    try:
        local = evaluate_models(models, sets, pgd=pgd)
    finally:
        torch.set_num_threads(threads)
    remote = evaluate_models(models, sets, pgd=pgd, scheduler=engine)
    assert local == remote and list(remote["models"]) == ["tiny-logreg", "tiny-standard"]

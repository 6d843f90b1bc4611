"""Training missing models in a process pool: what is missing, longest first, same weights."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from invariance_tradeoffs.simulations.data.mnist import load_mnist  # noqa: E402
from invariance_tradeoffs.simulations.models.train_pool import (  # noqa: E402
    TrainJob,
    job_cost,
    missing_jobs,
    train_missing,
)
from invariance_tradeoffs.simulations.models.zoo import get_config, load_or_train  # noqa: E402


def test_costs_order_the_zoo():
    cost = {n: job_cost(TrainJob("zoo", n)) for n in
            ("tiny-standard", "undefended", "pgd-0.3", "ibp-0.4", "knn")}
    assert cost["tiny-standard"] < cost["undefended"] < cost["pgd-0.3"]
    assert cost["undefended"] < cost["ibp-0.4"]
    assert job_cost(TrainJob("proxy", "proxy-tiny")) < job_cost(TrainJob("proxy", "proxy"))


def test_pool_trains_what_is_missing(mnist_dir, tmp_path):
    train = load_mnist("train", mnist_dir)
    names = ["tiny-standard", "tiny-ibp", "tiny-logreg"]
    jobs = missing_jobs(names, "proxy-tiny", train.images, train.labels, cache_dir=tmp_path)
    assert [j.label for j in jobs] == names + ["proxy-tiny[member 0]", "proxy-tiny[member 1]"]
    done = train_missing(jobs, data_dir=mnist_dir, cache_dir=tmp_path, n_jobs=2,
                         progress=False)
    assert sorted(d["job"] for d in done) == sorted(j.label for j in jobs)
    assert len({d["pid"] for d in done}) <= 2
    # everything is now cached: nothing is missing, loading does not train
    assert missing_jobs(names, "proxy-tiny", train.images, train.labels,
                        cache_dir=tmp_path) == []
    for name in names:
        assert load_or_train(name, data_dir=mnist_dir, cache_dir=tmp_path,
                             train_if_missing=False).loaded_from_cache
    # a worker (one torch thread) trains the same weights as this process with one thread
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = load_or_train("tiny-standard", data_dir=mnist_dir, cache_dir=tmp_path / "here")
    finally:
        torch.set_num_threads(threads)
    pooled = load_or_train("tiny-standard", data_dir=mnist_dir, cache_dir=tmp_path,
                           train_if_missing=False)
    for a, b in zip(here.model.module.state_dict().values(),
                    pooled.model.module.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert get_config("tiny-standard").name == pooled.config.name


def test_bad_n_jobs():
    with pytest.raises(ValueError, match="n_jobs"):
        train_missing([TrainJob("zoo", "tiny-standard")], n_jobs=0)

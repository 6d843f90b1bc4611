"""Training several cached models at once: zoo models and proxy members on local cores.

Training one small CNN does not keep two cores busy (torch's intra-op threads give about
1.4x on two cores for these networks); two trainings side by side, one thread each, give
close to 2x. :func:`train_missing` therefore runs every model missing from the cache as
one job of a joblib process pool, longest first (so the slow jobs do not end up last),
each worker with one torch thread. Each job writes its model into the cache atomically
(the zoo's own mechanism), so an interrupted pool loses at most the jobs in flight and a
rerun trains only what is still missing. Results are read back from the cache by the
caller; nothing large travels between processes.

Example
-------
>>> from invariance_tradeoffs.simulations.models.train_pool import TrainJob, job_cost
>>> job_cost(TrainJob("zoo", "undefended")) < job_cost(TrainJob("zoo", "pgd-0.3"))
True
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["TrainJob", "job_cost", "job_epochs", "missing_jobs", "train_missing"]

#: Relative cost per training image of one optimisation pass, by architecture.
_ARCH_COST = {"tiny_cnn": 0.1, "small_cnn": 1.0, "wide_cnn": 2.2, "medium_cnn": 6.0,
              "linear": 0.05, "proxy_cnn": 1.2}


@dataclass(frozen=True)
class TrainJob:
    """One model to train: a zoo configuration, or member ``member`` of a proxy."""

    kind: Literal["zoo", "proxy"]
    name: str
    member: int = 0

    @property
    def label(self) -> str:
        return self.name if self.kind == "zoo" else f"{self.name}[member {self.member}]"


def job_cost(job: TrainJob) -> float:
    """A rough relative cost, used only to start the longest jobs first."""
    if job.kind == "proxy":
        from invariance_tradeoffs.simulations.models.proxy import PROXY_CONFIGS

        cfg = PROXY_CONFIGS[job.name]
        width = cfg.width / 16
        return cfg.epochs * (cfg.n_train or 60000) * _ARCH_COST["proxy_cnn"] * width * 1.5
    from invariance_tradeoffs.simulations.models.zoo import get_config

    cfg = get_config(job.name)
    per_pass = {"standard": 1.0, "pgd": 1.0 + cfg.pgd_steps, "ibp": 3.5}.get(cfg.method)
    if per_pass is None:  # numpy models: seconds to a few minutes, not epoch-based
        return (cfg.n_train or 60000) * (0.5 if cfg.method == "knn" else 5.0)
    return cfg.epochs * (cfg.n_train or 60000) * per_pass * _ARCH_COST.get(cfg.arch, 1.0)


def missing_jobs(zoo_names: list[str] | tuple[str, ...], proxy: str | None, images: Any,
                 labels: Any, *, cache_dir: Any = None) -> list[TrainJob]:
    """The jobs whose models are not in the cache (``images``/``labels``: MNIST-train)."""
    from invariance_tradeoffs.simulations.models.proxy import PROXY_CONFIGS, proxy_member_cached
    from invariance_tradeoffs.simulations.models.zoo import get_config, is_cached

    jobs = [TrainJob("zoo", n) for n in zoo_names
            if not is_cached(get_config(n), images, labels, cache_dir=cache_dir)]
    if proxy is not None:
        jobs += [TrainJob("proxy", proxy, i) for i in range(PROXY_CONFIGS[proxy].n_members)
                 if not proxy_member_cached(proxy, i, images, labels, cache_dir=cache_dir)]
    return jobs


def job_epochs(job: TrainJob) -> int:
    """Progress units of a job: its epochs (1 for the numpy models)."""
    if job.kind == "proxy":
        from invariance_tradeoffs.simulations.models.proxy import PROXY_CONFIGS

        return PROXY_CONFIGS[job.name].epochs
    from invariance_tradeoffs.simulations.models.zoo import TORCH_METHODS, get_config

    cfg = get_config(job.name)
    return cfg.epochs if cfg.method in TORCH_METHODS else 1


def _run_job(job: TrainJob, data_dir: Any, cache_dir: Any, threads: int | None,
             report: Any = None) -> dict:
    """Train one job into the cache (in a worker process or in-process).

    ``report(label, epoch, epochs)`` (e.g. a queue's ``put`` through a lambda) is
    called after every epoch, so the parent can show progress inside long jobs.
    """
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    def on_epoch(epoch: int, epochs: int) -> None:
        if report is not None:
            report((job.label, epoch, epochs))

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    train = load_mnist("train", data_dir)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        metrics = _train_job(job, train, cache_dir, on_epoch)
    return {"job": job.label, "seconds": round(time.perf_counter() - start, 2),
            "train_seconds": metrics.get("train_seconds"), "pid": os.getpid(),
            "warnings": [str(w.message) for w in caught]}


def _run_job_task(where: tuple, job: TrainJob) -> dict:
    """:func:`_run_job` as an engine task (``where``: data and cache folders)."""
    return _run_job(job, *where, 1)


def _train_job(job: TrainJob, train: Any, cache_dir: Any, on_epoch: Any) -> dict:
    if job.kind == "zoo":
        from invariance_tradeoffs.simulations.models.zoo import get_config
        from invariance_tradeoffs.simulations.models.zoo import train as train_zoo

        trained = train_zoo(get_config(job.name), train.images, train.labels,
                            cache_dir=cache_dir, on_epoch=on_epoch)
        return dict(trained.metrics) if trained is not None else {}
    from invariance_tradeoffs.simulations.models.proxy import train_proxy_member

    return train_proxy_member(job.name, job.member, train.images, train.labels,
                              cache_dir=cache_dir, on_epoch=on_epoch)[1]


def train_missing(jobs: list[TrainJob], *, data_dir: Any = None, cache_dir: Any = None,
                  n_jobs: int = 1, progress: bool = True,
                  scheduler: str | None = None) -> list[dict]:
    """Train ``jobs`` into the cache, ``n_jobs`` at a time, longest first.

    Parameters
    ----------
    jobs : list of TrainJob
        Typically :func:`missing_jobs`.
    data_dir, cache_dir : paths, optional
        Where MNIST and the model cache are.
    n_jobs : int
        Worker processes (joblib's loky backend), each with one torch thread. ``1``
        trains in this process with the current torch thread setting.
    progress : bool
        A progress bar over finished jobs.
    scheduler : str, optional
        Train on a Dask cluster instead (``"local:N"`` or a scheduler address,
        :mod:`invariance_tradeoffs.simulations.engine`): one model per task, one torch
        thread each; the progress bar advances per finished model. The workers write
        into ``cache_dir``, so on a multi-machine cluster it must be a shared folder.

    Returns
    -------
    list of dict
        Per job, in completion order: ``job``, ``seconds`` (wall, including loading),
        ``train_seconds``, the worker's ``pid`` and the ``warnings`` it raised (printed).
    """
    import queue
    import threading

    from tqdm.auto import tqdm

    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be an integer >= 1, got {n_jobs!r}")
    if not jobs:
        return []
    ordered = sorted(jobs, key=job_cost, reverse=True)
    units = {job.label: job_epochs(job) for job in ordered}
    # One bar over every epoch of every job: a long job shows progress as it goes.
    bar = tqdm(total=sum(units.values()), unit="epoch", disable=not progress,
               desc=f"training {len(ordered)} model(s), {n_jobs} at a time")
    seen = dict.fromkeys(units, 0)
    lock = threading.Lock()  # the listener thread and this one both advance the bar

    def advance(label: str, epoch: int, epochs: int) -> None:
        with lock:
            bar.update(max(0, epoch - seen[label]))
            seen[label] = max(seen[label], epoch)
            bar.set_postfix_str(f"{label} epoch {epoch}/{epochs}")

    done: list[dict] = []

    def finished(res: dict) -> None:
        for text in res["warnings"]:  # e.g. over its time budget: one line, not a traceback
            bar.write(f"note: {text}")
        advance(res["job"], units[res["job"]], units[res["job"]])
        bar.set_postfix_str(f"{res['job']} done in {res['seconds']:.0f} s")
        done.append(res)

    try:
        if scheduler is not None:
            from invariance_tradeoffs.simulations.engine import session

            with session(scheduler) as engine:
                for _, res in engine.imap_unordered(_run_job_task, ordered,
                                                    (data_dir, cache_dir)):
                    finished(res)
            return done
        if n_jobs == 1:
            for job in ordered:
                finished(_run_job(job, data_dir, cache_dir, None,
                                  lambda msg: advance(*msg)))
            return done
        import multiprocessing

        from joblib import Parallel, delayed

        with multiprocessing.Manager() as manager:
            messages = manager.Queue()
            stop = threading.Event()

            def listen() -> None:
                while not stop.is_set():
                    try:
                        advance(*messages.get(timeout=0.2))
                    except queue.Empty:
                        continue
                    except (EOFError, OSError):  # manager gone
                        return

            listener = threading.Thread(target=listen, daemon=True)
            listener.start()
            try:
                with Parallel(n_jobs=min(n_jobs, len(ordered)), backend="loky",
                              return_as="generator_unordered") as pool:
                    for res in pool(delayed(_run_job)(job, data_dir, cache_dir, 1,
                                                      messages.put)
                                    for job in ordered):
                        finished(res)
            finally:
                stop.set()
                listener.join(timeout=5)
    finally:
        bar.close()
    return done

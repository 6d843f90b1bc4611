"""Sizes and seeds of the toy experiments (:class:`ToyConfig`), their result type and the
parallel sweep they share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from invariance_tradeoffs.simulations.engine import session
from invariance_tradeoffs.simulations.experiments.toy.tables import Row


@dataclass(frozen=True)
class ToyConfig:
    """Sizes and switches shared by the experiments.

    Attributes
    ----------
    seed : int
        Master seed; every sample and every training run derives from it.
    n_jobs : int
        joblib workers for parameter sweeps (``1``: in process; ``-1``: all cores).
    scheduler : str or None
        Run the sweeps on a Dask cluster instead: ``"local:N"`` or a scheduler address
        (:mod:`invariance_tradeoffs.simulations.engine`); same results as locally.
    progress : bool
        Show tqdm progress bars.
    n_mc : int
        Monte Carlo samples per family for margins and ceilings.
    n_eps : int
        Radii per grid.
    n_sample, n_region, n_pool : int
        Labelled sample, region and candidate pool sizes (experiment 2 and attacks).
    n_train, n_test : int
        Training and test sizes of experiment 3.
    mlp_epochs : int
        Epochs of adversarial MLP training.
    n_glyph_train, n_glyph_attack : int
        Glyph training images and attacked sources.
    """

    seed: int = 0
    n_jobs: int = 1
    scheduler: str | None = None
    progress: bool = True
    n_mc: int = 4000
    n_eps: int = 9
    n_sample: int = 300
    n_region: int = 300
    n_pool: int = 2000
    n_train: int = 600
    n_test: int = 400
    mlp_epochs: int = 30
    n_glyph_train: int = 1500
    n_glyph_attack: int = 300

    @classmethod
    def small(cls, **overrides: Any) -> ToyConfig:
        """A configuration that runs every experiment in seconds (tests, smoke runs)."""
        base = cls(n_mc=600, n_eps=5, n_sample=80, n_region=80, n_pool=300, n_train=200,
                   n_test=120, mlp_epochs=12, n_glyph_train=300, n_glyph_attack=60,
                   progress=False)
        return replace(base, **overrides)


@dataclass
class ExperimentResult:
    """Tables (name -> tidy rows) and the arrays a figure needs."""

    tables: dict[str, list[Row]]
    figure_data: dict[str, Any] = field(default_factory=dict)


def one_thread(fn: Callable[..., Any], *args: Any) -> Any:
    # Small matrices: BLAS threads only cost time (and fight the joblib workers).
    with threadpool_limits(limits=1):
        return fn(*args)


def sweep(fn: Callable[..., Any], tasks: Sequence[tuple], config: ToyConfig,
           desc: str) -> list[Any]:
    """Run ``fn(*task)`` for each task with joblib (on the engine of ``config.scheduler``:
    local processes or a Dask cluster), in order, behind a progress bar."""
    with session(config.scheduler, n_jobs=config.n_jobs) as engine, \
            engine.joblib() as n_jobs:
        if n_jobs == 1:
            it: Iterable = (one_thread(fn, *t) for t in tasks)
        else:
            it = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(one_thread)(fn, *t) for t in tasks)
        return list(tqdm(it, total=len(tasks), desc=desc, disable=not config.progress,
                         leave=False))


def quantity_columns(q: Any, prefix: str) -> Row:
    """Flatten a Quantity into ``prefix``, ``prefix_kind`` (and interval columns)."""
    row: Row = {prefix: q.value, f"{prefix}_kind": q.kind}
    if q.kind == "estimate":
        row[f"{prefix}_low"], row[f"{prefix}_high"] = q.low, q.high
    if q.kind == "bound":
        row[f"{prefix}_side"] = q.side
    return row

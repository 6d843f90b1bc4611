"""``tradeoffs reproduce``: the paper's experiments end to end, and ``REPORT.md``.

Stages (each writes ``<out>/stages/<stage>.json`` as soon as it finishes; a rerun with
the same configuration reuses finished stages, so an interrupted run resumes):

1. ``toy`` -- the toy experiments' summary: good radii and the trade-off curves
   (:mod:`simulations.experiments.toy.experiments`; ``ToyConfig.small()`` with ``--quick``);
2. ``published`` -- the published human-labelled sets found, their label-change rates
   (computed) beside the paper's (quoted), and the ceilings;
3. ``models`` -- the model zoo, loaded from the cache (trained when missing unless
   ``--no-train``); ``--quick`` uses only the ``tiny-*`` configurations;
4. ``proxy`` -- the human-proxy labeller and its validation against the human labels;
5. ``attack`` -- the project's l-inf invariance attack on the published source indices
   (all 100, or a subset with ``--quick``): agreement with the published examples,
   human labels where our example is identical to a published one, and the proxy
   estimate of the label-change rate;
6. ``eval-<model>`` -- per model: clean, PGD and certified accuracy on test images at
   0.3 and 0.4, and agreement with humans / provably-wrong counts on each published set;
7. figures and ``REPORT.md``; ``config.json`` holds the configuration and the command.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from invariance_tradeoffs.simulations.experiments.reproduce.config import (
    FULL,
    MAIN,
    PRESETS,
    PUBLISHED_RATES,
    QUICK,
    ReproduceConfig,
)
from invariance_tradeoffs.simulations.experiments.reproduce.figures import (
    example_grid,
    make_figures,
)
from invariance_tradeoffs.simulations.experiments.reproduce.report import render_report
from invariance_tradeoffs.simulations.experiments.reproduce.stages import (
    Stages,
    abs_config_of,
    attack_stage,
    evaluations,
    judges_stage,
    l0_stage,
    models_stage,
    published_stage,
    runs_stage,
    set_threads,
    toy_stage,
    train_stage,
)
from invariance_tradeoffs.simulations.io import atomic_write, write_json

__all__ = ["ReproduceConfig", "MAIN", "QUICK", "FULL", "PRESETS", "PUBLISHED_RATES",
           "run_reproduction"]


# --------------------------------------------------------------------------- driver
def run_reproduction(config: ReproduceConfig, out: str | os.PathLike, *,
                     data_dir: Any = None, published_dir: Any = None, cache_dir: Any = None,
                     n_jobs: int = -1, progress: bool = True, command: str = "",
                     threads: int | None = None, scheduler: str | None = None) -> dict:
    """Run every stage, write figures, ``config.json`` and ``REPORT.md`` under ``out``.

    ``n_jobs`` worker processes train the missing models (one torch thread each) and run
    the alignment search (joblib's convention: -1 is one per core). ``threads`` sets
    torch's intra-op threads in this process (default: the number of workers).
    ``scheduler`` (``"local:N"`` or a Dask scheduler address,
    :mod:`invariance_tradeoffs.simulations.engine`) runs the independent stages on a Dask
    cluster instead: model training (one model per task), the alignment search and the
    evaluations (one model per task); ``cache_dir`` must then be a folder the workers share.

    Returns the collected results (what the report is made of).
    """
    from invariance_tradeoffs.simulations.engine import session

    with session(scheduler):
        return _reproduce(config, out, data_dir=data_dir, published_dir=published_dir,
                          cache_dir=cache_dir, n_jobs=n_jobs, progress=progress,
                          command=command, threads=threads)


def _reproduce(config: ReproduceConfig, out: str | os.PathLike, *, data_dir: Any,
               published_dir: Any, cache_dir: Any, n_jobs: int, progress: bool,
               command: str, threads: int | None) -> dict:
    from joblib import effective_n_jobs

    from invariance_tradeoffs.simulations.attacks.runs import load_run
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.data.published import load_published_examples
    from invariance_tradeoffs.simulations.evaluation.proxy_validation import (
        ink_threshold_sweep,
        proxy_ranking,
        validate_proxy,
    )
    from invariance_tradeoffs.simulations.models.proxy import PROXY_CONFIGS, load_or_train_proxy

    for path in config.attack_runs:  # a damaged run file fails now, not after training
        load_run(path)
    if config.margins_dir is not None:  # likewise a missing margins folder
        from invariance_tradeoffs.simulations.margins.report import read_margins

        read_margins(config.margins_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_jobs = effective_n_jobs(n_jobs)
    set_threads(n_jobs if threads is None else threads)
    sets = load_published_examples(published_dir, data_dir=data_dir)
    folder, origin = sets.folder, sets.origin
    write_json(out / "config.json", {"command": command, "config": config.to_dict(),
                                      "published_dir": str(folder),
                                      "published_dir_origin": origin,
                                      "data_dir": None if data_dir is None else str(data_dir),
                                      "cache_dir": None if cache_dir is None else str(cache_dir)})
    stages = Stages(out, config, progress, ",".join(
        f"{n}:{s.n}" for n, s in sets.items()))
    res: dict[str, Any] = {}
    if config.toy != "none":
        res["toy"] = stages.run("toy", lambda: toy_stage(config, out))
    res["published"] = stages.run("published", lambda: published_stage(sets))
    start = time.perf_counter()
    trained = train_stage(config, data_dir, cache_dir, n_jobs, progress)
    stages.seconds["training"] = round(time.perf_counter() - start, 2)
    res["training"] = trained
    start = time.perf_counter()
    models, info = models_stage(config, data_dir, cache_dir, {t["job"] for t in trained})
    stages.seconds["models"] = round(time.perf_counter() - start, 2)
    res["models"] = info
    if not models:
        raise ValueError(f"no model of {list(config.models)} is available in the cache; "
                         "train them (drop --no-train) or choose others with --models")
    test = load_mnist("test", data_dir)
    start = time.perf_counter()
    proxy = load_or_train_proxy(config.proxy, data_dir=data_dir, cache_dir=cache_dir)
    stages.seconds["proxy training/loading"] = round(time.perf_counter() - start, 2)
    pcfg = PROXY_CONFIGS[config.proxy]
    res["proxy"] = stages.run("proxy", lambda: {
        "name": pcfg.name, "config": pcfg.to_dict(), "keys": proxy.keys,
        "description": (f"{pcfg.n_members} proxy_cnn members (width {pcfg.width}, seeds "
                        f"{pcfg.seed}..{pcfg.seed + pcfg.n_members - 1}), {pcfg.epochs} epochs "
                        f"on {pcfg.n_train or 60000} MNIST training images with rotation <= "
                        f"{pcfg.max_rotation:g} deg, scaling +-{pcfg.max_scale:g}, shifts <= "
                        f"{pcfg.max_shift:g} px, elastic deformation <= "
                        f"{pcfg.elastic_alpha:g} px; ink threshold {pcfg.ink_threshold:g} "
                        "at prediction; independent of the evaluated models and "
                        "of the l0 attack's judge (architecture, seeds, augmentation)."),
        "validation": validate_proxy(proxy, sets),
        "ranking": proxy_ranking(proxy, sets),
        "ink_threshold_sweep": ink_threshold_sweep(
            proxy, test.images[: config.n_test], test.labels[: config.n_test], sets=sets)},
        depends=f"proxy:{config.proxy}")
    # The attack's arrays are needed only for the report numbers, which the stage stores.
    res["attack"] = stages.run("attack", lambda: attack_stage(
        config, sets, proxy, res["proxy"]["validation"], data_dir, folder, n_jobs,
        cache_dir)[0])
    if config.l0_sources != 0:
        res["l0"] = stages.run("l0", lambda: l0_stage(
            config, out, proxy, res["proxy"]["validation"], data_dir, folder, n_jobs,
            progress))
    if config.l0_sources != 0:
        res["judges"] = stages.run("judges", lambda: judges_stage(
            config, sets, proxy, out / "runs" / "l0_all.npz", data_dir, cache_dir, progress),
            depends=f"judges:{abs_config_of(config)}:{config.proxy}:l0")
    if config.attack_runs:
        res["runs"] = stages.run("runs", lambda: runs_stage(
            config.attack_runs, proxy, res["proxy"]["validation"]))
    res["evals"] = evaluations(stages, models, info, sets, config, test, n_jobs, progress)
    start = time.perf_counter()
    grid = example_grid(sets, proxy, models)
    res["figures"] = make_figures(out, res["evals"], info, res["published"], res.get("toy"), grid)
    if config.margins_dir is not None:
        from invariance_tradeoffs.simulations.margins.report import margins_for_report

        res["margins"] = margins_for_report(config.margins_dir, out)
        res["figures"].append(res["margins"]["figure"])
    stages.seconds["figures"] = round(time.perf_counter() - start, 2)
    res["seconds"] = stages.seconds
    write_json(out / "results.json", res)
    report = render_report(out, command, config, res)

    atomic_write(out / "REPORT.md", lambda p: p.write_text(report))
    if progress:
        print(f"wrote {out / 'REPORT.md'}")
    return res

"""The stages of a reproduction run, each stored in ``<out>/stages/<stage>.json`` and reused
when its configuration digest matches (so an interrupted run resumes)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from invariance_tradeoffs.simulations.engine import distributed_engine
from invariance_tradeoffs.simulations.experiments.reproduce.config import (
    PUBLISHED_RATES,
    ReproduceConfig,
)
from invariance_tradeoffs.simulations.io import to_jsonable, write_json
from invariance_tradeoffs.theory.validation import check_int


class Stages:
    """Stage results on disk: reused when the stage's configuration digest matches."""

    def __init__(self, out: Path, config: ReproduceConfig, progress: bool,
                 sets: str = "") -> None:
        self.dir = out / "stages"
        self.config = config
        self.sets = sets
        self.progress = progress
        self.seconds: dict[str, float] = {}

    def _path_digest(self, name: str, depends: str | None) -> tuple[Path, str]:
        # Every stage reads the published sets: which ones were found is part of its key
        # (a fetch that adds a set invalidates what was computed without it).
        return (self.dir / f"{name.replace('/', '_')}.json",
                self.config.digest(f"{depends or name}|sets:{self.sets}"))

    def lookup(self, name: str, depends: str | None = None) -> dict | None:
        """The stored result of a finished stage with the same digest, else ``None``."""
        path, digest = self._path_digest(name, depends)
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None  # unreadable (e.g. edited by hand): recomputed and rewritten
        if isinstance(data, dict) and data.get("digest") == digest and "result" in data:
            self._say(f"{name}: reused {path}")
            self.seconds[name] = 0.0
            return data["result"]
        return None

    def store(self, name: str, result: Any, seconds: float,
              depends: str | None = None) -> dict:
        """Write a stage's result (atomically) and return it as stored."""
        path, digest = self._path_digest(name, depends)
        result = to_jsonable(result)
        self.seconds[name] = round(seconds, 2)
        write_json(path, {"digest": digest, "stage": name, "seconds": self.seconds[name],
                           "result": result})
        self._say(f"{name}: {self.seconds[name]:.1f} s -> {path}")
        return result

    def run(self, name: str, fn: Any, depends: str | None = None) -> dict:
        found = self.lookup(name, depends)
        if found is not None:
            return found
        start = time.perf_counter()
        result = fn()
        return self.store(name, result, time.perf_counter() - start, depends)

    def _say(self, msg: str) -> None:
        if self.progress:
            print(msg, flush=True)


# --------------------------------------------------------------------------- stages
def toy_stage(config: ReproduceConfig, out: Path) -> dict:
    from invariance_tradeoffs.simulations.experiments.toy.experiments import (
        DEFAULT_TRADEOFFS,
        ToyConfig,
        good_norms,
        tradeoff,
    )
    from invariance_tradeoffs.simulations.experiments.toy.tables import write_table

    toy = ToyConfig.small() if config.toy == "small" else ToyConfig(progress=False)
    toy = replace(toy, seed=config.seed, progress=False)
    # The linear specs are exact and fast; the MLP specs only in the full run.
    specs = [s for s in DEFAULT_TRADEOFFS if s.model == "linear" or config.toy == "default"]
    trade = tradeoff(specs, toy).tables["tradeoff"]
    goods = good_norms(config=toy).tables["good_radii"]
    write_table(trade, out / "toy", "tradeoff")
    write_table(goods, out / "toy", "good_radii")
    return {"toy_config": asdict(toy), "tradeoff": trade, "good_radii": goods}


def published_stage(sets: dict) -> dict:
    from invariance_tradeoffs.simulations.evaluation.agreement import ceiling

    rows = {}
    for name, s in sets.items():
        changed = s.human_changed
        quoted = PUBLISHED_RATES.get(name)
        rows[name] = {
            "n": s.n, "norm": s.norm, "radius": s.radius,
            "max_distortion": float(np.max(s.distortion)),
            "human_change_rate": share(changed, "human labels on the published examples "
                                                 "(computed from the release)"),
            "paper_rate": None if quoted is None else quoted[0],
            "paper_description": None if quoted is None else quoted[1],
            "ceiling": ceiling(s.human_labels, s.original_labels, radius=s.radius),
        }
    missing = {k: v for k, v in PUBLISHED_RATES.items() if k not in sets}
    return {"sets": rows, "folder": str(getattr(sets, "folder", "")),
            "missing": dict(getattr(sets, "missing", {})),
            "quoted_only": {k: {"paper_rate": v[0], "paper_description": v[1]}
                            for k, v in missing.items()}}


def share(mask: np.ndarray, method: str) -> Any:
    from invariance_tradeoffs.theory.results import proportion_estimate

    return proportion_estimate(int(np.sum(mask)), int(mask.size), method)


def trainable(config: ReproduceConfig, name: str) -> bool:
    # --quick never trains a full configuration (minutes); cached ones are used.
    return config.train_missing and (config.mode != "quick" or name.startswith("tiny-"))


def train_stage(config: ReproduceConfig, data_dir: Any, cache_dir: Any, n_jobs: int,
                 progress: bool) -> list[dict]:
    """Train every model and proxy member missing from the cache, ``n_jobs`` at a time."""
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.models.train_pool import missing_jobs, train_missing

    train = load_mnist("train", data_dir)
    names = [m for m in config.models if trainable(config, m)]
    proxy = config.proxy if config.train_missing else None
    jobs = missing_jobs(names, proxy, train.images, train.labels, cache_dir=cache_dir)
    if jobs and progress:
        print(f"training {len(jobs)} model(s) missing from the cache: "
              f"{', '.join(j.label for j in jobs)}", flush=True)
    return train_missing(jobs, data_dir=data_dir, cache_dir=cache_dir, n_jobs=n_jobs,
                         progress=progress, scheduler=distributed_engine())


def models_stage(config: ReproduceConfig, data_dir: Any, cache_dir: Any,
                  trained_now: set[str]) -> tuple[dict, dict]:
    from invariance_tradeoffs.simulations.models.zoo import get_config, load_or_train

    loaded, info = {}, {}
    for name in config.models:
        cfg = get_config(name)
        try:
            tm = load_or_train(name, data_dir=data_dir, cache_dir=cache_dir,
                               train_if_missing=trainable(config, name))
        except FileNotFoundError as exc:
            info[name] = {"status": "missing", "message": str(exc), "config": cfg.to_dict()}
            continue
        loaded[name] = tm.model
        trained = name in trained_now or not tm.loaded_from_cache
        info[name] = {"status": "trained" if trained else "cached",
                      "key": tm.key, "path": str(tm.path), "config": cfg.to_dict(),
                      "metrics": {k: v for k, v in tm.metrics.items() if k != "history"}}
    return loaded, info


def attack_stage(config: ReproduceConfig, sets: dict, proxy: Any, validation: dict,
                  data_dir: Any, published_dir: Any, n_jobs: int, cache_dir: Any = None
                  ) -> tuple[dict, dict]:
    from invariance_tradeoffs.simulations.attacks.alignment import align_neighbours_cached
    from invariance_tradeoffs.simulations.attacks.linf import (
        compare_with_published,
        examples_from_neighbours,
    )
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.data.published import load_npy, published_indices
    from invariance_tradeoffs.simulations.evaluation.proxy_validation import proxy_estimate
    from invariance_tradeoffs.simulations.models.zoo import default_cache_dir

    idx = published_indices(published_dir)
    if config.n_sources is not None:
        idx = idx[: config.n_sources]
    train = load_mnist("train", data_dir)
    test = load_mnist("test", data_dir)
    sources, labels = test.images[idx], test.labels[idx]
    start = time.perf_counter()
    # Step 1 (the alignment search) depends on the data only: memoised in the cache.
    memo = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    aligned = align_neighbours_cached(sources, labels, train.images, train.labels,
                                      cache_dir=memo / "alignment", n_jobs=n_jobs,
                                      scheduler=distributed_engine())
    align_seconds = time.perf_counter() - start
    out: dict[str, Any] = {"indices": idx.tolist(), "n_sources": len(idx),
                           "alignment_seconds": round(align_seconds, 2), "radii": {}}
    arrays: dict[str, Any] = {}
    for eps in config.attack_eps:
        res = examples_from_neighbours(sources, labels, aligned.neighbours, aligned.classes, eps)
        est = proxy_estimate(proxy, res.examples, labels, validation,
                             what=f"our l-inf invariance examples at eps={eps:g}")
        entry: dict[str, Any] = {"eps": eps, "max_distortion": float(res.distortion.max()),
                                 "proxy_label_change_rate": est["label_change_rate"]}
        match = [s for s in sets.values() if s.name.startswith("linf/automated")
                 and s.radius is not None and abs(s.radius - eps) < 1e-9]
        if match:
            pset = match[0]
            published = load_npy(Path(pset.files[0]))[: len(idx)]
            same = np.array([compare_with_published(res.examples[i:i + 1],
                                                    published[i:i + 1])["identical"] == 1
                             for i in range(len(idx))])
            human = pset.human_labels[: len(idx)]
            entry["published_set"] = pset.name
            entry["identical_to_published"] = int(same.sum())
            if same.any():
                entry["human_label_change_rate_on_identical"] = share(
                    human[same] != labels[same],
                    "human labels of the published examples identical to ours")
            entry["proxy_vs_human_on_these_sources"] = share(
                est["proxy_labels"] == human,
                "proxy label equals the human label of the published example "
                "(same source; identical example where counted above)")
        arrays[eps] = {"sources": sources, "examples": res.examples, "labels": labels,
                       "proxy": est["proxy_labels"]}
        out["radii"][f"{eps:g}"] = entry
    return out, arrays


def runs_stage(paths: tuple[str, ...], proxy: Any, validation: dict) -> dict:
    """Proxy estimates of the label-change rate of saved attack runs (any attack)."""
    from invariance_tradeoffs.simulations.attacks.runs import load_run
    from invariance_tradeoffs.simulations.evaluation.proxy_validation import proxy_estimate

    out = {}
    for path in paths:
        run = load_run(path)
        ok = np.asarray(run.targets) >= 0  # rows where the attack produced an example
        entry: dict[str, Any] = {"path": str(path), "attack": run.params.get("attack"),
                                 "params": run.params, "n_sources": run.n,
                                 "n_examples": int(ok.sum())}
        if ok.any():
            est = proxy_estimate(proxy, run.examples[ok], run.source_labels[ok], validation,
                                 what=f"examples of {Path(path).name}")
            entry["proxy_label_change_rate"] = est["label_change_rate"]
            entry["mean_distortion"] = float(np.mean(run.distortion[ok]))
        out[Path(path).name] = entry
    return out


def l0_stage(config: ReproduceConfig, out: Path, proxy: Any, validation: dict,
              data_dir: Any, published_dir: Any, n_jobs: int, progress: bool) -> dict:
    """The model-free l0 attack on the published sources (resumable run in ``out/runs``),
    its l0 sizes and the proxy's estimate of its label-change rate."""
    from invariance_tradeoffs.simulations.attacks.l0.attack import (
        batch_attack,
        run_medians,
        summarize_run,
    )
    from invariance_tradeoffs.simulations.attacks.runs import run_attack
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.data.published import published_indices

    idx = published_indices(published_dir)
    if config.l0_sources is not None:
        idx = idx[: config.l0_sources]
    batch, params = batch_attack(load_mnist("train", data_dir), load_mnist("test", data_dir),
                                 n_train=config.l0_train_subset, budget=config.l0_budget,
                                 random_state=config.seed, n_jobs=n_jobs)
    start = time.perf_counter()
    run, path = run_attack(batch, idx, out / "runs", "l0_all",
                           {**params, "indices": "published", "seed": None},
                           progress=progress)
    entry = runs_stage((str(path),), proxy, validation)[path.name]
    medians = run_medians(run)
    entry.update({"seconds": round(time.perf_counter() - start, 2),
                  "summary": summarize_run(run),
                  "median_l0_all": medians["median_l0_all"],
                  "median_l0_successes": medians["median_l0_successes"],
                  "n_failures": medians["n_failures"], "published_median_l0": 25})
    return entry


def abs_config_of(config: ReproduceConfig) -> str:
    """The ABS judge of a run: ``abs-tiny`` for ``--quick`` (seconds), else ``abs``."""
    return "abs-tiny" if config.mode == "quick" else "abs"


def judges_stage(config: ReproduceConfig, sets: dict, proxy: Any, l0_path: Path,
                 data_dir: Any, cache_dir: Any, progress: bool) -> dict:
    """Every judge (k-NN, ABS, the run's proxy, their mean) validated against the human
    labels of the published sets, and its verdict on the l0 run's examples (with a
    verdict grid ``<run>.judges.png`` beside it)."""
    from invariance_tradeoffs.simulations.attacks.l0.judges import (
        MeanJudge,
        MemoJudge,
        ProbabilityJudge,
        build_judge,
    )
    from invariance_tradeoffs.simulations.attacks.runs import load_run
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.evaluation.judge_validation import (
        judge_run,
        save_verdict_grid,
        validate_judges,
    )

    train = load_mnist("train", data_dir)
    abs_name = abs_config_of(config)
    judges: dict[str, Any] = {
        "knn": MemoJudge(build_judge("knn", train.images, train.labels)),
        "abs": MemoJudge(build_judge("abs", train.images, train.labels, abs_config=abs_name,
                                     cache_dir=cache_dir, progress=progress)),
        "proxy": MemoJudge(ProbabilityJudge(proxy))}
    judges["ensemble"] = MeanJudge(dict(judges))
    validation = validate_judges(judges, sets)
    run = load_run(l0_path)
    judged = judge_run(judges, run)
    grid = save_verdict_grid(l0_path.with_suffix(".judges.png"), run, judged["judges"],
                             title=f"{l0_path.stem}: source | example; judges' labels")
    return {"abs_config": abs_name, "abs_calibration": judges["abs"].calibration,
            "judges": {k: repr(v) for k, v in judges.items()},
            "validation": validation["judges"], "l0": judged["judges"],
            "l0_grid": str(grid.name)}


def eval_stage(name: str, model: Any, sets: dict, config: ReproduceConfig,
                test_images: np.ndarray, test_labels: np.ndarray) -> dict:
    from invariance_tradeoffs.simulations.evaluation.agreement import (
        AutoAttackSettings,
        PGDSettings,
        evaluate_models,
    )

    pgd = PGDSettings(steps=config.pgd_steps, restarts=config.pgd_restarts, seed=config.seed)
    aa = (AutoAttackSettings(n=config.n_test_autoattack, seed=config.seed)
          if config.n_test_autoattack else None)
    res = evaluate_models({name: model}, sets, pgd=pgd,
                          test_images=test_images[: config.n_test],
                          test_labels=test_labels[: config.n_test],
                          test_eps=tuple(config.eval_eps), test_pgd_n=config.n_test_pgd,
                          autoattack=aa, sources_autoattack=False)
    return res["models"][name]


def _timed_eval(name: str, model: Any, sets: dict, config: ReproduceConfig,
                images: np.ndarray, labels: np.ndarray, threads: int | None) -> tuple:
    if threads is not None:
        set_threads(threads)
    start = time.perf_counter()
    result = eval_stage(name, model, sets, config, images, labels)
    return name, result, time.perf_counter() - start


def evaluations(stages: Stages, models: dict, info: dict, sets: dict,
                 config: ReproduceConfig, test: Any, n_jobs: int, progress: bool) -> dict:
    """Evaluate every model (stages reused when finished), ``n_jobs`` models at a time."""
    from tqdm.auto import tqdm

    depends = {m: f"eval:{m}:{info[m].get('key')}" for m in models}
    out = {m: stages.lookup(f"eval-{m}", depends[m]) for m in models}
    todo = [m for m, r in out.items() if r is None]
    bar = tqdm(total=len(todo), desc="evaluation", disable=not progress or not todo)
    calls = [(m, models[m], sets, config, test.images, test.labels) for m in todo]
    engine = distributed_engine()
    if engine is not None:  # one model per task, one torch thread each; data sent once
        common = engine.share((sets, config, test.images, test.labels))
        results: Any = (r for _, r in engine.imap_unordered(
            _eval_task, [(m, models[m]) for m in todo], common))
    elif n_jobs == 1 or len(todo) < 2:
        results = (_timed_eval(*c, None) for c in calls)
    else:
        from joblib import Parallel, delayed

        # one torch thread per worker: two models side by side beat one model on two
        results = Parallel(n_jobs=min(n_jobs, len(todo)), backend="loky",
                           return_as="generator_unordered")(
            delayed(_timed_eval)(*c, 1) for c in calls)
    for name, result, seconds in results:
        out[name] = stages.store(f"eval-{name}", result, seconds, depends[name])
        bar.update()
    bar.close()
    return out


def _eval_task(common: tuple, model: tuple) -> tuple:
    """One model's evaluation on a worker (``common``: sets, config, test images, labels)."""
    return _timed_eval(*model, *common, 1)


def set_threads(threads: int) -> None:
    """Set torch's intra-op threads in this process (nothing to do without torch)."""
    from invariance_tradeoffs.simulations.optional import torch

    threads = check_int(threads, "threads", low=1)
    if torch is not None:
        torch.set_num_threads(threads)

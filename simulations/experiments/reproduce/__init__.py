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

import argparse
import hashlib
import json
import os
import shlex
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from invariance_tradeoffs.simulations.evaluation.agreement import _jsonable

__all__ = ["ReproduceConfig", "MAIN", "QUICK", "FULL", "PRESETS", "PUBLISHED_RATES",
           "run_reproduction", "add_parser"]

#: The paper's label-change rates (share of invariance examples whose human label
#: differs from the source's), quoted from Tramer et al. (2020), Section 4.
PUBLISHED_RATES: dict[str, tuple[float, str]] = {
    "linf/automated_eps03": (0.21, "automated l-inf attack, eps = 0.3"),
    "linf/automated_eps04": (0.37, "automated l-inf attack, eps = 0.4"),
    "linf/manual_eps04": (0.88, "manual l-inf attack, eps = 0.4"),
    "l0/automated": (0.55, "automated l0 attack"),
}

FULL_MODELS = ("undefended", "pgd-0.1", "pgd-0.2", "pgd-0.3", "pgd-0.4", "ibp-0.1", "ibp-0.3",
               "ibp-0.4", "logreg", "robust-linear-0.1", "robust-linear-0.3", "knn")
#: The models that carry the paper's claim, within the 10-minute budget of the main run
#: (pgd-0.3 is in the --full sweep: adding it costs about 8 more core-minutes).
MAIN_MODELS = ("undefended", "pgd-0.4", "ibp-0.4")
QUICK_MODELS = ("tiny-standard", "tiny-pgd", "tiny-ibp", "tiny-logreg", "tiny-robust-linear",
                "tiny-knn")


@dataclass(frozen=True)
class ReproduceConfig:
    """What a reproduction run does (all of it is written to ``config.json``).

    Attributes
    ----------
    mode : {"main", "quick", "full"}
        Which preset the run started from (:data:`MAIN`, :data:`QUICK`, :data:`FULL`).
    models : tuple of str
        Zoo configuration names (:data:`invariance_tradeoffs.simulations.models.zoo.CONFIGS`).
    proxy : str
        Proxy configuration name (:data:`simulations.models.proxy.PROXY_CONFIGS`).
    n_sources : int or None
        Published source images attacked (the first ``n_sources``; ``None``: all).
    attack_eps : tuple of float
        Radii of the l-inf invariance attack.
    n_test : int
        First ``n_test`` MNIST test images for clean and certified accuracy.
    n_test_pgd : int or None
        First ``n_test_pgd`` of those for PGD accuracy (``None``: all ``n_test``).
    eval_eps : tuple of float
        Radii of the sensitivity evaluation.
    pgd_steps, pgd_restarts : PGD used for empirical robust accuracy.
    toy : {"small", "default", "none"}
        Toy experiment sizes.
    train_missing : bool
        Train models missing from the cache (otherwise they are reported as missing).
    seed : int
    attack_runs : tuple of str
        Saved attack runs (``tradeoffs mnist attack ...`` output, e.g. the l0 attack) whose
        label-change rate the proxy estimates.
    l0_sources : int or None
        Published sources the model-free l0 attack runs on (the first ``l0_sources``;
        ``None``: all; ``0``: skip the l0 stage).
    l0_budget : {"default", "fast"}
        Search budget of the l0 attack (:data:`simulations.attacks.l0.attack.BUDGETS`).
    l0_train_subset : int or None
        The l0 attack aligns the first ``l0_train_subset`` training images (``None``: all).
    """

    mode: str = "full"
    models: tuple[str, ...] = FULL_MODELS
    proxy: str = "proxy"
    n_sources: int | None = None
    attack_eps: tuple[float, ...] = (0.3, 0.4)
    n_test: int = 10000
    n_test_pgd: int | None = 1000
    eval_eps: tuple[float, ...] = (0.3, 0.4)
    pgd_steps: int = 40
    pgd_restarts: int = 5
    toy: str = "default"
    train_missing: bool = True
    seed: int = 0
    attack_runs: tuple[str, ...] = ()
    l0_sources: int | None = None
    l0_budget: str = "default"
    l0_train_subset: int | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from invariance_tradeoffs.simulations.models.proxy import PROXY_CONFIGS
        from invariance_tradeoffs.simulations.models.zoo import CONFIGS

        if self.mode not in ("main", "quick", "full"):
            raise ValueError(f"mode must be 'main', 'quick' or 'full', got {self.mode!r}")
        if self.n_test_pgd is not None and self.n_test_pgd < 1:
            raise ValueError(f"n_test_pgd must be None or >= 1, got {self.n_test_pgd}")
        unknown = [m for m in self.models if m not in CONFIGS]
        if unknown or not self.models:
            raise ValueError(f"models must be zoo names, unknown: {unknown or '(none given)'}")
        if self.proxy not in PROXY_CONFIGS:
            raise ValueError(f"proxy must be one of {sorted(PROXY_CONFIGS)}, got {self.proxy!r}")
        if self.n_sources is not None and self.n_sources < 1:
            raise ValueError(f"n_sources must be >= 1, got {self.n_sources}")
        for name in ("n_test", "pgd_steps", "pgd_restarts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_test > 10000:
            raise ValueError(f"n_test must be <= 10000 (the MNIST test set), got {self.n_test}")
        if self.l0_sources is not None and self.l0_sources < 0:
            raise ValueError(f"l0_sources must be None or >= 0, got {self.l0_sources}")
        if self.l0_budget not in ("default", "fast"):
            raise ValueError(f"l0_budget must be 'default' or 'fast', got {self.l0_budget!r}")
        if self.l0_train_subset is not None and not 1 <= self.l0_train_subset <= 60000:
            raise ValueError(f"l0_train_subset must be None or in 1..60000, "
                             f"got {self.l0_train_subset}")
        if self.toy not in ("small", "default", "none"):
            raise ValueError(f"toy must be 'small', 'default' or 'none', got {self.toy!r}")
        for name in ("attack_eps", "eval_eps"):
            vals = getattr(self, name)
            if not vals or any(not 0 < float(e) <= 1 for e in vals):
                raise ValueError(f"{name} must hold radii in (0, 1], got {vals}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    def digest(self, stage: str) -> str:
        """Hash of the parts of the configuration a stage depends on."""
        d = self.to_dict()
        # Which models are listed (and whether missing ones get trained) changes no stage's
        # result: evaluation stages carry the model's name and cache key in their name.
        for key in ("extra", "models", "train_missing"):
            d.pop(key, None)
        return hashlib.sha256(json.dumps([stage, d], sort_keys=True).encode()).hexdigest()[:16]


#: The default run: the models that carry the paper's claim (undefended, PGD training at
#: 0.4, IBP at 0.4), the l-inf attack on all 100 published sources, clean and
#: certified accuracy on the whole test set, PGD-40 on its first 1000 images, the toy
#: curves; no l0 stage. Minutes from an empty cache (docs/performance.md).
MAIN = ReproduceConfig(mode="main", models=MAIN_MODELS, proxy="proxy-small",
                       n_test=10000, n_test_pgd=1000,
                       pgd_steps=40, pgd_restarts=1, toy="small", l0_sources=0)
#: ``--quick``: tiny models (seconds), 20 sources, 200 test images, PGD-10 x 2 (smoke run).
QUICK = ReproduceConfig(mode="quick", models=QUICK_MODELS, proxy="proxy-tiny", n_sources=20,
                        n_test=200, n_test_pgd=None, pgd_steps=10, pgd_restarts=2,
                        toy="small", l0_sources=3, l0_budget="fast", l0_train_subset=5000)
#: ``--full``: every zoo model, the l0 stage on all 100 sources, PGD-40 x 5 restarts, the
#: default toy sizes (training the zoo from an empty cache takes about an hour).
FULL = ReproduceConfig(mode="full")
PRESETS = {"main": MAIN, "quick": QUICK, "full": FULL}


# --------------------------------------------------------------------------- helpers
def _write_json(path: Path, data: Any) -> None:
    from invariance_tradeoffs.simulations.io import atomic_write

    text = json.dumps(_jsonable(data), indent=1, default=_default) + "\n"
    atomic_write(path, lambda p: p.write_text(text))


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class _Stages:
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
        result = _jsonable(result)
        self.seconds[name] = round(seconds, 2)
        _write_json(path, {"digest": digest, "stage": name, "seconds": self.seconds[name],
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
def _toy_stage(config: ReproduceConfig, out: Path) -> dict:
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


def _published_stage(sets: dict) -> dict:
    from invariance_tradeoffs.simulations.evaluation.agreement import ceiling

    rows = {}
    for name, s in sets.items():
        changed = s.human_changed
        quoted = PUBLISHED_RATES.get(name)
        rows[name] = {
            "n": s.n, "norm": s.norm, "radius": s.radius,
            "max_distortion": float(np.max(s.distortion)),
            "human_change_rate": _share(changed, "human labels on the published examples "
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


def _share(mask: np.ndarray, method: str) -> Any:
    from invariance_tradeoffs.theory.results import proportion_estimate

    return proportion_estimate(int(np.sum(mask)), int(mask.size), method)


def _trainable(config: ReproduceConfig, name: str) -> bool:
    # --quick never trains a full configuration (minutes); cached ones are used.
    return config.train_missing and (config.mode != "quick" or name.startswith("tiny-"))


def _train_stage(config: ReproduceConfig, data_dir: Any, cache_dir: Any, n_jobs: int,
                 progress: bool) -> list[dict]:
    """Train every model and proxy member missing from the cache, ``n_jobs`` at a time."""
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.models.train_pool import missing_jobs, train_missing

    train = load_mnist("train", data_dir)
    names = [m for m in config.models if _trainable(config, m)]
    proxy = config.proxy if config.train_missing else None
    jobs = missing_jobs(names, proxy, train.images, train.labels, cache_dir=cache_dir)
    if jobs and progress:
        print(f"training {len(jobs)} model(s) missing from the cache: "
              f"{', '.join(j.label for j in jobs)}", flush=True)
    return train_missing(jobs, data_dir=data_dir, cache_dir=cache_dir, n_jobs=n_jobs,
                         progress=progress)


def _models_stage(config: ReproduceConfig, data_dir: Any, cache_dir: Any,
                  trained_now: set[str]) -> tuple[dict, dict]:
    from invariance_tradeoffs.simulations.models.zoo import get_config, load_or_train

    loaded, info = {}, {}
    for name in config.models:
        cfg = get_config(name)
        try:
            tm = load_or_train(name, data_dir=data_dir, cache_dir=cache_dir,
                               train_if_missing=_trainable(config, name))
        except FileNotFoundError as exc:
            info[name] = {"status": "missing", "message": str(exc), "config": cfg.to_dict()}
            continue
        loaded[name] = tm.model
        trained = name in trained_now or not tm.loaded_from_cache
        info[name] = {"status": "trained" if trained else "cached",
                      "key": tm.key, "path": str(tm.path), "config": cfg.to_dict(),
                      "metrics": {k: v for k, v in tm.metrics.items() if k != "history"}}
    return loaded, info


def _attack_stage(config: ReproduceConfig, sets: dict, proxy: Any, validation: dict,
                  data_dir: Any, published_dir: Any, n_jobs: int, cache_dir: Any = None
                  ) -> tuple[dict, dict]:
    from invariance_tradeoffs.simulations.attacks.alignment import align_neighbours_cached
    from invariance_tradeoffs.simulations.attacks.linf import (
        compare_with_published,
        examples_from_neighbours,
    )
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.data.published import load_npy, published_indices
    from invariance_tradeoffs.simulations.models.proxy import proxy_estimate
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
                                      cache_dir=memo / "alignment", n_jobs=n_jobs)
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
                entry["human_label_change_rate_on_identical"] = _share(
                    human[same] != labels[same],
                    "human labels of the published examples identical to ours")
            entry["proxy_vs_human_on_these_sources"] = _share(
                est["proxy_labels"] == human,
                "proxy label equals the human label of the published example "
                "(same source; identical example where counted above)")
        arrays[eps] = {"sources": sources, "examples": res.examples, "labels": labels,
                       "proxy": est["proxy_labels"]}
        out["radii"][f"{eps:g}"] = entry
    return out, arrays


def _runs_stage(paths: tuple[str, ...], proxy: Any, validation: dict) -> dict:
    """Proxy estimates of the label-change rate of saved attack runs (any attack)."""
    from invariance_tradeoffs.simulations.attacks.runs import load_run
    from invariance_tradeoffs.simulations.models.proxy import proxy_estimate

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


def _l0_stage(config: ReproduceConfig, out: Path, proxy: Any, validation: dict,
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
    entry = _runs_stage((str(path),), proxy, validation)[path.name]
    medians = run_medians(run)
    entry.update({"seconds": round(time.perf_counter() - start, 2),
                  "summary": summarize_run(run),
                  "median_l0_all": medians["median_l0_all"],
                  "median_l0_successes": medians["median_l0_successes"],
                  "n_failures": medians["n_failures"], "published_median_l0": 25})
    return entry


def _eval_stage(name: str, model: Any, sets: dict, config: ReproduceConfig,
                test_images: np.ndarray, test_labels: np.ndarray) -> dict:
    from invariance_tradeoffs.simulations.evaluation.agreement import PGDSettings, evaluate_models

    pgd = PGDSettings(steps=config.pgd_steps, restarts=config.pgd_restarts, seed=config.seed)
    res = evaluate_models({name: model}, sets, pgd=pgd,
                          test_images=test_images[: config.n_test],
                          test_labels=test_labels[: config.n_test],
                          test_eps=tuple(config.eval_eps), test_pgd_n=config.n_test_pgd)
    return res["models"][name]


def _timed_eval(name: str, model: Any, sets: dict, config: ReproduceConfig,
                images: np.ndarray, labels: np.ndarray, threads: int | None) -> tuple:
    if threads is not None:
        _set_threads(threads)
    start = time.perf_counter()
    result = _eval_stage(name, model, sets, config, images, labels)
    return name, result, time.perf_counter() - start


def _evaluations(stages: _Stages, models: dict, info: dict, sets: dict,
                 config: ReproduceConfig, test: Any, n_jobs: int, progress: bool) -> dict:
    """Evaluate every model (stages reused when finished), ``n_jobs`` models at a time."""
    from tqdm.auto import tqdm

    depends = {m: f"eval:{m}:{info[m].get('key')}" for m in models}
    out = {m: stages.lookup(f"eval-{m}", depends[m]) for m in models}
    todo = [m for m, r in out.items() if r is None]
    bar = tqdm(total=len(todo), desc="evaluation", disable=not progress or not todo)
    calls = [(m, models[m], sets, config, test.images, test.labels) for m in todo]
    if n_jobs == 1 or len(todo) < 2:
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


# --------------------------------------------------------------------------- figures
def _training_eps(info: dict) -> float:
    cfg = info["config"]
    return float(cfg.get("eps", 0.0)) if cfg["method"] in ("pgd", "ibp", "robust_linear") \
        else 0.0


def _family(info: dict) -> str:
    m = info["config"]["method"]
    return {"standard": "CNN (PGD family, eps 0)", "pgd": "CNN, PGD training",
            "ibp": "CNN, IBP training", "logreg": "linear", "robust_linear": "linear",
            "knn": "kNN"}[m]


def _value(q: dict | None) -> float:
    return float("nan") if q is None else float(q["value"])


def _figures(out: Path, evals: dict, info: dict, published: dict, toy: dict | None,
             grid: dict | None) -> list[str]:
    from invariance_tradeoffs.simulations import plotting

    figs = out / "figures"
    written: list[Path] = []
    sets = list(published["sets"])
    # 1. agreement against training eps
    fig, axes = plotting._figure(1, max(1, len(sets)), width=3.4 * max(1, len(sets)),
                                 height_per_row=2.8)
    for ax, sname in zip(axes.ravel(), sets, strict=False):
        for fam, marker, colour in (("standard+pgd", "o", "C0"), ("ibp", "s", "C3"),
                                    ("linear", "^", "C2")):
            methods = {"standard+pgd": ("standard", "pgd"), "ibp": ("ibp",),
                       "linear": ("logreg", "robust_linear")}[fam]
            pts = sorted((_training_eps(info[m]), evals[m]["published"][sname])
                         for m in evals if info[m]["config"]["method"] in methods)
            if fam == "ibp":  # the undefended CNN is the eps = 0 point of both CNN families
                pts = sorted(pts + [(0.0, evals[m]["published"][sname]) for m in evals
                                    if info[m]["config"]["method"] == "standard"],
                             key=lambda p: p[0])
            if not pts:
                continue
            x = [p[0] for p in pts]
            ax.plot(x, [_value(p[1]["agreement_label_changed"]) for p in pts], "-",
                    marker=marker, color=colour, label=f"{fam}: on label-changed")
            ax.plot(x, [_value(p[1]["agreement"]) for p in pts], ":", marker=marker,
                    color=colour, label=f"{fam}: overall")
        ax.set_title(sname)
        ax.set_xlabel("training radius eps (l-inf)")
        ax.set_ylabel("agreement with human labels")
        ax.set_ylim(-0.03, 1.03)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    fig.suptitle("Agreement with humans on invariance examples against training eps")
    written += plotting.save_figure(fig, figs / "agreement_vs_eps")
    # 2. robust accuracy against agreement (the trade-off as a scatter)
    linf_sets = [s for s in sets if published["sets"][s]["norm"] == "linf"
                 and published["sets"][s]["radius"] is not None]
    if linf_sets:
        fig, axes = plotting._figure(1, len(linf_sets), width=3.4 * len(linf_sets),
                                     height_per_row=2.8)
        for ax, sname in zip(axes.ravel(), linf_sets, strict=False):
            radius = published["sets"][sname]["radius"]
            for m, e in evals.items():
                test = {round(t["eps"], 6): t for t in e.get("test", [])}
                t = test.get(round(radius, 6))
                y = _value(t and t["pgd_robust_accuracy"]) if t else float("nan")
                if not np.isfinite(y) and t:
                    y = _value(t["certified_robust_accuracy"])
                x = _value(e["published"][sname]["agreement_label_changed"])
                ax.scatter([x], [y], s=18)
                ax.annotate(m, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
            ceil = published["sets"][sname]["ceiling"]["value"]
            ax.axhline(ceil, color="k", ls=":", lw=1.2, label="ceiling (human labels)")
            ax.set_title(sname)
            ax.set_xlabel("agreement with humans on label-changed examples")
            ax.set_ylabel(f"PGD robust accuracy at eps={radius:g} (test)")
            ax.set_xlim(-0.03, 1.03)
            ax.set_ylim(-0.03, 1.03)
        handles, labels = axes.ravel()[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", frameon=False)
        fig.suptitle("Sensitivity robustness against invariance (agreement with humans)")
        written += plotting.save_figure(fig, figs / "robust_vs_agreement")
    # 3. example grid
    if grid is not None:
        written += plotting.plot_image_grid(
            np.asarray(grid["sources"]).reshape(len(grid["captions"]), -1),
            np.asarray(grid["examples"]).reshape(len(grid["captions"]), -1),
            grid["captions"], (28, 28), figs / "examples_grid", title=grid["title"])
    # 4. toy trade-off curve beside the MNIST one
    if toy is not None and evals:
        written += _side_by_side(figs / "toy_vs_mnist", toy, evals, info, published)
    return [str(p.relative_to(out)) for p in written if p.suffix == ".png"]


def _side_by_side(stem: Path, toy: dict, evals: dict, info: dict, published: dict) -> list:
    from invariance_tradeoffs.simulations import plotting

    fig, axes = plotting._figure(1, 2, width=7.6, height_per_row=3.0)
    rows = [r for r in toy["tradeoff"] if r["family"] == "overly-robust"
            and r["model"] == "linear" and r["norm"] == "linf"]
    rows.sort(key=lambda r: r["eps"])
    ax = axes[0, 0]
    eps = [r["eps"] for r in rows]
    for q in ("sensitivity_robust", "invariance_robust", "real_robust"):
        ax.plot(eps, [r[q] for r in rows], marker=".", color=plotting.COLORS[q],
                label=plotting.LABELS[q])
    ax.plot(eps, [r["ceiling"] for r in rows], ":", color="k", label="ceiling")
    ax.set_title("toy: overly-robust family, linear, l-inf (exact)")
    ax.set_xlabel("train = test radius eps")
    ax.set_ylabel("share of test inputs")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=6, frameon=False)
    ax = axes[0, 1]
    sname = next((s for s in published["sets"] if s == "linf/automated_eps04"),
                 next(iter(published["sets"])))
    radius = published["sets"][sname]["radius"] or 0.4
    pts = []
    for m, e in evals.items():
        if info[m]["config"]["method"] not in ("standard", "pgd", "ibp"):
            continue
        test = {round(t["eps"], 6): t for t in e.get("test", [])}
        t = test.get(round(radius, 6))
        pts.append((_training_eps(info[m]), m,
                    _value(t["pgd_robust_accuracy"]) if t else float("nan"),
                    _value(e["published"][sname]["agreement_label_changed"])))
    pts.sort()
    ax.plot([p[0] for p in pts], [p[2] for p in pts], "o", color=plotting.COLORS[
        "sensitivity_robust"], label=f"PGD robust acc. at {radius:g} (sensitivity)")
    ax.plot([p[0] for p in pts], [p[3] for p in pts], "s", color=plotting.COLORS[
        "invariance_robust"], label="agreement on label-changed (invariance)")
    for p in pts:
        ax.annotate(p[1], (p[0], p[2]), fontsize=5, xytext=(2, 2), textcoords="offset points")
    ax.axhline(published["sets"][sname]["ceiling"]["value"], color="k", ls=":",
               label="ceiling (human labels)")
    ax.set_title(f"MNIST: CNNs, {sname}")
    ax.set_xlabel("training radius eps (l-inf)")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=6, frameon=False)
    fig.suptitle("The trade-off: toy (exact) and MNIST (measured)")
    return plotting.save_figure(fig, stem)


def _example_grid(sets: dict, proxy: Any, models: dict, k: int = 12) -> dict | None:
    from invariance_tradeoffs.simulations.models.adapters import to_model_input

    pset = next((s for n, s in sets.items() if n.startswith("linf")), None)
    if pset is None or not models:
        return None
    changed = np.flatnonzero(pset.human_changed)
    pick = np.concatenate([changed, np.flatnonzero(~pset.human_changed)])[:k]
    x = to_model_input(pset.examples[pick])
    name = next((m for m in ("pgd-0.4", "pgd-0.3", "ibp-0.4", "tiny-pgd") if m in models),
                next(iter(models)))
    mlab = models[name].predict(x)
    plab = proxy.predict(x)
    captions = [f"H{h} P{p} M{m} (src {o})" for h, p, m, o in
                zip(pset.human_labels[pick], plab, mlab, pset.original_labels[pick],
                    strict=True)]
    src = np.asarray(pset.sources[pick], dtype=np.float64)
    ex = np.asarray(pset.examples[pick], dtype=np.float64)
    if src.max() > 1:
        src = src / 255.0
    if ex.max() > 1:
        ex = ex / 255.0
    return {"sources": src, "examples": ex, "captions": captions,
            "title": f"{pset.name}: H = human, P = proxy, M = {name}; label-changed first"}


# --------------------------------------------------------------------------- report
def _fmt(q: dict | None, pct: bool = False) -> str:
    if q is None:
        return "-"
    v = q["value"]
    if q.get("kind") == "estimate" and q.get("low") is not None:
        return f"{v:.3f} [{q['low']:.2f}, {q['high']:.2f}]"
    return f"{v:.3f}" if not float(v).is_integer() else f"{int(v)}"


def _report(out: Path, command: str, config: ReproduceConfig, res: dict) -> str:
    pub, info, evals = res["published"], res["models"], res["evals"]
    lines = [
        "# Reproduction report: Tramer et al. (ICML 2020) on MNIST and the toy families",
        "",
        f"Command: `{command}`  ",
        f"Configuration: `config.json` ({config.mode} run; stage "
        "results with their configuration digests in `stages/`).  ",
        "Every interval is a 95% Clopper-Pearson interval (estimate); counts are exact; "
        "PGD accuracy is an upper bound on the sample's robust accuracy, certified accuracy a "
        "lower bound (exact for linear models).",
        "",
    ]
    lines += _scope(config, res)
    lines += ["## Label-change rates of the invariance attacks", "",
              "| set | paper (quoted) | human labels of the release (computed) | "
              "ceiling on robust accuracy |", "|---|---|---|---|"]
    for name, r in pub["sets"].items():
        paper = "-" if r["paper_rate"] is None else f"{r['paper_rate']:.0%}"
        lines.append(f"| {name} | {paper} | {_fmt(r['human_change_rate'])} | "
                     f"{_fmt(r['ceiling'])} |")
    for name, r in pub["quoted_only"].items():
        lines.append(f"| {name} (not in the data folder) | {r['paper_rate']:.0%} (quoted) | "
                     "not available | - |")
    lines += ["", "The ceiling (\"maximal real robust accuracy\") is the share of sources whose "
              "human label did not change: no classifier can be correct and constant on a ball "
              "that holds a label-changed example, so it bounds the accuracy of every classifier "
              "that is robust (constant on the ball) at that radius -- upper bound on the "
              "sample; the interval is for the population. It does not bound a classifier "
              "that changes its label on the ball with the human (proofs/lemma.md, "
              "Corollary 2).", ""]
    lines += ["## Maximal real robust accuracy (ceiling) at each radius", ""]
    for name, r in pub["sets"].items():
        if r["radius"] is not None:
            c = r["ceiling"]
            lines.append(f"- eps = {r['radius']:g} ({name}): at most {c['value']:.2f} "
                         f"(95% CI [{c['low']:.3f}, {c['high']:.3f}], n = {c['n']}) -- "
                         "estimate from the human labels")
    lines += [""]
    lines += _direction(evals, info, list(pub["sets"]))
    lines += ["## Models: sensitivity and invariance", "",
              f"Clean and certified accuracy on the first {config.n_test} MNIST test images, "
              f"PGD-{config.pgd_steps} ({config.pgd_restarts} random restart(s)) on the first "
              f"{min(config.n_test_pgd or config.n_test, config.n_test)}. Agreement "
              "columns: all examples / label-changed examples of each published set; "
              "`prov. wrong` = certified at the source and human label changed (exact).", ""]
    sets = list(pub["sets"])
    head = ["model", "train eps", "clean"]
    for e in config.eval_eps:
        head += [f"PGD {e:g}", f"cert. {e:g}"]
    for s in sets:
        head += [f"agree {s}", f"agree chg {s}", f"prov. wrong {s}"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m, i in info.items():
        if m not in evals:
            row = [m, "-", f"{i['status']}: not evaluated"] + ["-"] * (len(head) - 3)
            lines.append("| " + " | ".join(row) + " |")
            continue
        e = evals[m]
        tests = e.get("test", [])
        row = [m, f"{_training_eps(i):g}", _fmt(tests[0]["clean_accuracy"]) if tests else "-"]
        for t in tests:
            row += [_fmt(t["pgd_robust_accuracy"]), _fmt(t["certified_robust_accuracy"])]
        for s in sets:
            p = e["published"][s]
            pw = p["provably_wrong"]
            row += [_fmt(p["agreement"]), _fmt(p["agreement_label_changed"]),
                    "-" if pw is None else f"{int(pw['value'])}/{p['n_label_changed']}"]
        lines.append("| " + " | ".join(row) + " |")
    prox = res["proxy"]
    lines += ["", "## The human-proxy labeller", "",
              f"`{prox['name']}`: {prox['description']}", "",
              "| set | agreement with humans | on label-changed | on unchanged | proxy "
              "change rate | human change rate |", "|---|---|---|---|---|---|"]
    for name, r in [*prox["validation"]["sets"].items(), ("pooled", prox["validation"]["pooled"])]:
        lines.append(f"| {name} | {_fmt(r['agreement'])} | {_fmt(r['agreement_label_changed'])}"
                     f" | {_fmt(r['agreement_unchanged'])} | {_fmt(r['proxy_change_rate'])} | "
                     f"{_fmt(r['human_change_rate'])} |")
    sweep = prox.get("ink_threshold_sweep") or []
    if sweep:
        from invariance_tradeoffs.simulations.models.proxy import select_ink_threshold

        rule = select_ink_threshold([{**r, "clean_accuracy": r["clean_accuracy"]["value"]}
                                     for r in sweep])
        lines += ["", f"Ink threshold (grey strokes of this intensity count as ink; "
                  f"configured: {prox['config']['ink_threshold']:g}; the label-free rule -- "
                  f"smallest threshold within 0.5 points of the clean accuracy at 1 -- picks "
                  f"{rule:g} on these {config.n_test} test images):", "",
                  "| ink threshold | clean accuracy | agreement (pooled) | on label-changed |",
                  "|---|---|---|---|"]
        for r in sweep:
            v = r["validation"]
            lines.append(f"| {r['ink_threshold']:g} | {_fmt(r['clean_accuracy'])} | "
                         f"{_fmt(v['agreement'])} | {_fmt(v['agreement_label_changed'])} |")
    ranking = prox.get("ranking")
    if ranking:
        lines += ["", "What limits the proxy: how well its score 1 - p(source) ranks the human "
                  "label changes (AUC, exact for the sample), the best agreement any threshold "
                  "on that score reaches on the same set (in-sample, optimistic: no rule of "
                  "this form does better here), and the agreement of the threshold fitted on "
                  "the other set(s) (out-of-sample):", "",
                  "| set | AUC | best-threshold agreement (in-sample) | threshold from the other "
                  "sets (out-of-sample) |", "|---|---|---|---|"]
        for name, r in ranking["sets"].items():
            tr = (ranking.get("transfer") or {}).get(name)
            auc = "-" if r["auc"] is None else f"{r['auc']:.3f}"
            lines.append(f"| {name} | {auc} | {_fmt(r['best_threshold_agreement'])} "
                         f"(threshold {r['best_threshold']:.3f}) | "
                         f"{'-' if tr is None else _fmt(tr['agreement'])} |")
    att = res["attack"]
    lines += ["", "## The project's l-inf invariance attack on the published sources", "",
              f"{att['n_sources']} sources (the first of `indexs.npy`); alignment "
              f"{att['alignment_seconds']:.1f} s.", "",
              "| eps | identical to published | human change rate (identical examples) | "
              "proxy estimate of the change rate | proxy = human label |",
              "|---|---|---|---|---|"]
    for e, r in att["radii"].items():
        ident = (f"{r['identical_to_published']}/{att['n_sources']}"
                 if "identical_to_published" in r else "no published set")
        lines.append(f"| {e} | {ident} | {_fmt(r.get('human_label_change_rate_on_identical'))}"
                     f" | {_fmt(r['proxy_label_change_rate'])} (proxy estimate) | "
                     f"{_fmt(r.get('proxy_vs_human_on_these_sources'))} |")
    for name, r in res.get("runs", {}).items():
        lines.append(f"- saved run `{name}` ({r['attack']}, {r['n_examples']} examples of "
                     f"{r['n_sources']} sources): label-change rate "
                     f"{_fmt(r.get('proxy_label_change_rate'))} (proxy estimate)")
    l0 = res.get("l0")
    if l0:
        succ = l0["median_l0_successes"]
        lines += ["", "## The project's l0 invariance attack on the published sources", "",
                  f"Model-free (edits taken from aligned training images, accepted by the "
                  f"k-NN judge): {l0['n_sources']} sources, {l0['params'].get('budget')} budget, "
                  f"{l0['params'].get('training_set')}; {l0['seconds']:.0f} s. Binarised "
                  f"pixels changed (exact counts): median **{l0['median_l0_all']:g}** over all "
                  f"sources (a failure counts as infinite), "
                  f"{'-' if succ is None else f'{succ:g}'} over the "
                  f"{l0['n_examples']} examples found, {l0['n_failures']} failures; the "
                  f"published l0 attack: median {l0['published_median_l0']} (quoted). "
                  f"Label-change rate: {_fmt(l0.get('proxy_label_change_rate'))} (proxy "
                  f"estimate; the paper's humans: 55% for its l0 set, quoted). Run: "
                  f"`runs/l0_all.npz` (+ `.png` grid)."]
    lines += ["", "Proxy estimates are the proxy's labels, not human labels; read them with the "
              "proxy's validated agreement above."]
    if res.get("toy"):
        lines += ["", "## Toy summary (exact where stated)", "",
                  "| family | norm | good radius | kind |", "|---|---|---|---|"]
        for r in res["toy"]["good_radii"]:
            lines.append(f"| {r['family']} | {r['norm']} | {r['good_radius']:.4g} | "
                         f"{r.get('good_radius_kind', '')} |")
        lines += ["", "Trade-off tables: `toy/tradeoff.csv`."]
    lines += ["", "## Figures", ""]
    lines += [f"![{Path(f).stem}]({f})" for f in res["figures"]]
    lines += ["", "## Provenance", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in res["seconds"].items()]
    lines += ["", "Models (zoo cache keys hash the full configuration and the training data):",
              ""]
    for m, i in info.items():
        lines.append(f"- `{m}`: {i['status']}" + (f", key `{i['key']}`" if "key" in i else ""))
    return "\n".join(lines) + "\n"


def _scope(config: ReproduceConfig, res: dict) -> list[str]:
    """What this run found and what it cannot show (the top of REPORT.md)."""
    pub = res["published"]
    found = [f"`{n}` ({r['n']} examples)" for n, r in pub["sets"].items()]
    lines = ["## What this run covers", "",
             f"- Published sets found in `{pub.get('folder', '?')}`: "
             + (", ".join(found) if found else "none") + "."]
    for name, why in pub.get("missing", {}).items():
        lines.append(f"- **Missing** `{name}`: {why}. Its paper rate is quoted below, not "
                     "recomputed; `tradeoffs mnist download` fetches the release.")
    trained = [t["job"] for t in res.get("training", [])]
    status = {m: i["status"] for m, i in res["models"].items()}
    lines.append("- Models: " + ", ".join(f"`{m}` ({s})" for m, s in status.items())
                 + (f"; trained in this run: {', '.join(trained)}" if trained else "") + ".")
    cannot = []
    if config.mode == "quick":
        cannot.append("**Quick run**: tiny models (800 training images, one epoch), a subset "
                      "of sources and test images, weak PGD. Its numbers exercise the pipeline "
                      "and say nothing about the paper's claims; `tradeoffs reproduce` (no "
                      "option) measures them.")
    if config.n_test_pgd is not None and config.n_test_pgd < config.n_test:
        cannot.append(f"PGD accuracy is measured on the first {config.n_test_pgd} test images "
                      f"only (clean and certified accuracy on {config.n_test}); "
                      "`--n-test-pgd 10000` for all.")
    if config.pgd_restarts < 5:
        cannot.append(f"PGD-{config.pgd_steps} with {config.pgd_restarts} restart(s): a "
                      "weaker upper bound on robust accuracy than the `--full` run's 5 "
                      "restarts (and than AutoAttack).")
    if config.l0_sources == 0:
        cannot.append("The l0 invariance attack is not run (`--full` or `--l0-sources N`).")
    if set(config.models) != set(FULL_MODELS) and config.mode != "quick":
        cannot.append("Only part of the zoo is evaluated: the trend over training radii "
                      "(0.1, 0.2, ...) and the linear and k-NN models need `--full`.")
    cannot.append("Human labels exist only for the published examples: every statement "
                  "about the package's own new invariance examples rests on the proxy "
                  "labeller (an estimate, validated below), not on people.")
    lines += ["", "What this run cannot show:", ""] + [f"- {c}" for c in cannot] + [""]
    return lines


def _direction(evals: dict, info: dict, sets: list[str]) -> list[str]:
    """The paper's direction: agreement on label-changed examples against training eps."""
    lines = ["## Direction of the paper's finding", "",
             "Agreement with humans on label-changed examples for the CNNs, by training "
             "radius (undefended = 0). The paper: the more robust the model, the less it agrees "
             "with humans on examples whose label changed. Point estimates; their intervals are "
             "in the table below (with 21 or 37 label-changed examples they are wide).", ""]
    for fam, methods in (("PGD", ("standard", "pgd")), ("IBP", ("standard", "ibp"))):
        names = sorted((m for m in evals if info[m]["config"]["method"] in methods),
                       key=lambda m: _training_eps(info[m]))
        if len(names) < 2:
            continue
        for sname in sets:
            vals = [_value(evals[m]["published"][sname]["agreement_label_changed"])
                    for m in names]
            if any(np.isnan(vals)):
                continue
            falls = all(b <= a for a, b in zip(vals, vals[1:], strict=False))
            seq = ", ".join(f"{m} {v:.2f}" for m, v in zip(names, vals, strict=True))
            lines.append(f"- {fam}, {sname}: {seq} -> "
                         f"{'non-increasing (as in the paper)' if falls else 'not monotone'}")
    return lines + [""]


# --------------------------------------------------------------------------- driver
def run_reproduction(config: ReproduceConfig, out: str | os.PathLike, *,
                     data_dir: Any = None, published_dir: Any = None, cache_dir: Any = None,
                     n_jobs: int = -1, progress: bool = True, command: str = "",
                     threads: int | None = None) -> dict:
    """Run every stage, write figures, ``config.json`` and ``REPORT.md`` under ``out``.

    ``n_jobs`` worker processes train the missing models (one torch thread each) and run
    the alignment search (joblib's convention: -1 is one per core). ``threads`` sets
    torch's intra-op threads in this process (default: the number of workers).

    Returns the collected results (what the report is made of).
    """
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.data.published import load_published_examples
    from invariance_tradeoffs.simulations.models.proxy import (
        PROXY_CONFIGS,
        ink_threshold_sweep,
        load_or_train_proxy,
        proxy_ranking,
        validate_proxy,
    )
    from joblib import effective_n_jobs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_jobs = effective_n_jobs(n_jobs)
    _set_threads(n_jobs if threads is None else threads)
    sets = load_published_examples(published_dir, data_dir=data_dir)
    folder, origin = sets.folder, sets.origin
    _write_json(out / "config.json", {"command": command, "config": config.to_dict(),
                                      "published_dir": str(folder),
                                      "published_dir_origin": origin,
                                      "data_dir": None if data_dir is None else str(data_dir),
                                      "cache_dir": None if cache_dir is None else str(cache_dir)})
    stages = _Stages(out, config, progress, ",".join(
        f"{n}:{s.n}" for n, s in sets.items()))
    res: dict[str, Any] = {}
    if config.toy != "none":
        res["toy"] = stages.run("toy", lambda: _toy_stage(config, out))
    res["published"] = stages.run("published", lambda: _published_stage(sets))
    start = time.perf_counter()
    trained = _train_stage(config, data_dir, cache_dir, n_jobs, progress)
    stages.seconds["training"] = round(time.perf_counter() - start, 2)
    res["training"] = trained
    start = time.perf_counter()
    models, info = _models_stage(config, data_dir, cache_dir, {t["job"] for t in trained})
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
    res["attack"] = stages.run("attack", lambda: _attack_stage(
        config, sets, proxy, res["proxy"]["validation"], data_dir, folder, n_jobs,
        cache_dir)[0])
    if config.l0_sources != 0:
        res["l0"] = stages.run("l0", lambda: _l0_stage(
            config, out, proxy, res["proxy"]["validation"], data_dir, folder, n_jobs,
            progress))
    if config.attack_runs:
        res["runs"] = stages.run("runs", lambda: _runs_stage(
            config.attack_runs, proxy, res["proxy"]["validation"]))
    res["evals"] = _evaluations(stages, models, info, sets, config, test, n_jobs, progress)
    start = time.perf_counter()
    grid = _example_grid(sets, proxy, models)
    res["figures"] = _figures(out, res["evals"], info, res["published"], res.get("toy"), grid)
    stages.seconds["figures"] = round(time.perf_counter() - start, 2)
    res["seconds"] = stages.seconds
    _write_json(out / "results.json", res)
    report = _report(out, command, config, res)
    from invariance_tradeoffs.simulations.io import atomic_write

    atomic_write(out / "REPORT.md", lambda p: p.write_text(report))
    if progress:
        print(f"wrote {out / 'REPORT.md'}")
    return res


def _set_threads(threads: int) -> None:
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(int(threads))


def _config_from_args(args: argparse.Namespace) -> ReproduceConfig:
    base = QUICK if args.quick else FULL if args.full else MAIN
    over: dict[str, Any] = {}
    if args.models:
        over["models"] = tuple(args.models)
    for name in ("n_sources", "n_test", "n_test_pgd", "pgd_steps", "pgd_restarts", "proxy",
                 "toy", "l0_sources", "l0_budget"):
        if getattr(args, name) is not None:
            over[name] = getattr(args, name)
    if args.no_train:
        over["train_missing"] = False
    if args.attack_run:
        over["attack_runs"] = tuple(str(Path(p).resolve()) for p in args.attack_run)
    over["seed"] = args.seed
    return replace(base, **over)


def _command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, rebuilt from the parsed options."""
    parts = ["tradeoffs", "reproduce", "--out", str(args.out)]
    if args.quick:
        parts.append("--quick")
    if args.full:
        parts.append("--full")
    for opt in ("data_dir", "published_dir", "cache_dir", "proxy", "n_sources", "n_test",
                "n_test_pgd", "pgd_steps", "pgd_restarts", "toy", "l0_sources", "l0_budget"):
        if getattr(args, opt) is not None:
            parts += [f"--{opt.replace('_', '-')}", str(getattr(args, opt))]
    if args.models:
        parts += ["--models", *args.models]
    if args.no_train:
        parts.append("--no-train")
    for run in args.attack_run or ():
        parts += ["--attack-run", run]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    return " ".join(shlex.quote(p) for p in parts)


def _cmd(args: argparse.Namespace) -> int:
    if args.n_jobs == 0:
        raise ValueError("--n-jobs must not be 0")
    if args.quick and args.full:
        raise ValueError("--quick and --full exclude each other")
    config = _config_from_args(args)
    run_reproduction(config, args.out, data_dir=args.data_dir, published_dir=args.published_dir,
                     cache_dir=args.cache_dir, n_jobs=args.n_jobs,
                     progress=not args.no_progress, command=_command_line(args),
                     threads=args.threads)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``tradeoffs reproduce``."""
    p = subparsers.add_parser(
        "reproduce",
        help="run the toy and MNIST experiments end to end and write REPORT.md",
        description="The paper's findings, measured: trains (or loads from the cache) the "
                    "models that carry its claim -- undefended CNN, PGD adversarial training "
                    "at 0.4, IBP at 0.4 --, runs the l-inf invariance attack on the "
                    "100 published sources, evaluates agreement with the human labels, "
                    "provably-wrong counts and ceilings on every published set found, the "
                    "toy trade-off curves, figures and REPORT.md. Fetches MNIST and the "
                    "authors' release into the cache on first use. About 10 minutes on 2 "
                    "cores from an empty cache, under a minute with cached models "
                    "(docs/performance.md). --quick: a smoke run with tiny models; --full: "
                    "every zoo model and the l0 attack on all 100 sources.")
    p.add_argument("--out", default="results", help="output folder (default: results)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: tiny models, 20 sources, 200 test images, weak PGD")
    p.add_argument("--full", action="store_true",
                   help="full sweep: every zoo model, the l0 attack on all 100 sources, "
                        "PGD-40 x 5 restarts, default toy sizes")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: "
                   "$INVARIANCE_TRADEOFFS_DATA, then the cache)")
    p.add_argument("--published-dir", default=None, help="folder of the published release")
    p.add_argument("--cache-dir", default=None, help="model cache (default: the zoo cache)")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME",
                   help="zoo models to evaluate (default: all full ones; tiny with --quick)")
    p.add_argument("--proxy", default=None, help="proxy configuration name")
    p.add_argument("--n-sources", type=int, default=None, help="published sources attacked")
    p.add_argument("--n-test", type=int, default=None,
                   help="first N test images for clean and certified accuracy (default 10000; "
                        "200 with --quick)")
    p.add_argument("--n-test-pgd", type=int, default=None, metavar="N",
                   help="first N of those for PGD accuracy (default 1000)")
    p.add_argument("--pgd-steps", type=int, default=None)
    p.add_argument("--pgd-restarts", type=int, default=None)
    p.add_argument("--toy", choices=("small", "default", "none"), default=None)
    p.add_argument("--l0-sources", type=int, default=None, metavar="N",
                   help="published sources for the l0 attack (default: all 100; 3 with "
                        "--quick; 0 skips it)")
    p.add_argument("--l0-budget", choices=("default", "fast"), default=None,
                   help="l0 attack search budget (default: default; fast with --quick)")
    p.add_argument("--no-train", action="store_true",
                   help="do not train models missing from the cache (report them as missing)")
    p.add_argument("--attack-run", action="append", default=None, metavar="RUN.npz",
                   help="a saved attack run (e.g. of the l0 attack) whose label-change rate "
                        "the proxy estimates; repeatable")
    p.add_argument("--n-jobs", type=int, default=-1,
                   help="worker processes for training and the alignment search (default -1: "
                        "one per CPU core)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads in the main process (default: as many as workers)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd)

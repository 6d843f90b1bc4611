"""``tradeoffs toy ...``: the toy experiments, their tables (CSV + JSON) and figures.

Subcommands: one per experiment (``good-norms``, ``alignment``, ``tradeoff``,
``overly-robust``, ``glyph-attacks``) writing that experiment's tables, ``figures``
writing every figure, and ``all`` writing every table and figure plus
``manifest.json`` (configuration, seconds per experiment, files).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from invariance_tradeoffs.simulations.cli.args import (
    add_deprecated_alias,
    add_jobs,
    add_out,
    add_progress,
    add_scheduler,
    add_seed,
    check_out_dir,
)
from invariance_tradeoffs.simulations.experiments.toy.experiments import (
    EXPERIMENTS,
    ExperimentResult,
    ToyConfig,
)
from invariance_tradeoffs.simulations.experiments.toy.tables import write_table

__all__ = ["add_parser", "run_experiments"]


def _config(args: argparse.Namespace) -> ToyConfig:
    base = ToyConfig.small() if args.quick else ToyConfig()
    return replace(base, seed=args.seed, n_jobs=args.n_jobs, scheduler=args.scheduler,
                   progress=not args.no_progress)


def run_experiments(names: list[str], config: ToyConfig, out: Path | None,
                    verbose: bool = True) -> tuple[dict[str, ExperimentResult], dict]:
    """Run experiments by name; write their tables to ``out`` (when given) as they finish."""
    results: dict[str, ExperimentResult] = {}
    manifest: dict = {"config": asdict(config), "seconds": {}, "tables": []}
    for name in names:
        start = time.perf_counter()
        res = EXPERIMENTS[name](config=config)
        manifest["seconds"][name] = round(time.perf_counter() - start, 2)
        results[name] = res
        if out is not None:
            for table, rows in res.tables.items():
                paths = write_table(rows, out, table)
                manifest["tables"] += [str(p.name) for p in paths]
        if verbose:
            print(f"{name}: {sum(len(r) for r in res.tables.values())} rows in "
                  f"{manifest['seconds'][name]:.1f} s")
    return results, manifest


def _handler(kind: str):  # noqa: ANN202 - returns an argparse handler
    def handle(args: argparse.Namespace) -> int:
        config = _config(args)
        out = check_out_dir(args.out)
        names = list(EXPERIMENTS) if kind in ("all", "figures") else [kind]
        start = time.perf_counter()
        results, manifest = run_experiments(names, config, None if kind == "figures" else out)
        if kind in ("all", "figures"):
            from invariance_tradeoffs.simulations.experiments.toy.figures import draw_figures

            t0 = time.perf_counter()
            files = draw_figures(results, out)
            manifest["seconds"]["figures"] = round(time.perf_counter() - t0, 2)
            manifest["figures"] = [p.name for p in files]
            print(f"figures: {len(files)} files in {manifest['seconds']['figures']:.1f} s")
        manifest["seconds"]["total"] = round(time.perf_counter() - start, 2)
        if kind == "all":
            out.mkdir(parents=True, exist_ok=True)
            (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        print(f"wrote {out}/ in {manifest['seconds']['total']:.1f} s")
        return 0

    return handle


def _common(p: argparse.ArgumentParser, default_out: str) -> None:
    add_out(p, default=default_out)
    add_seed(p, what="every experiment (sampling, training, attacks)")
    add_jobs(p, what="worker processes of the sweeps")
    add_scheduler(p)
    p.add_argument("--quick", action="store_true",
                   help="small sizes (seconds; a smoke run), not the documented run")
    add_deprecated_alias(p, "--small", "--quick", "quick", action="store_true")
    add_progress(p)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "toy", help="toy experiments: good norms, alignment, trade-off curves, figures",
        description="Run the theory as experiments on the toy families.")
    parser.set_defaults(_parser=parser)
    sub = parser.add_subparsers(dest="toy_command", metavar="SUBCOMMAND")
    docs = {
        "good-norms": "good radius and ceiling per family and norm (exact vs Monte Carlo)",
        "alignment": "good norm <=> perfect classifier: 1-NN rule per distance",
        "tradeoff": "accuracies of classifiers trained robust at eps, against eps",
        "overly-robust": "overly-robust feature model and finite domains",
        "glyph-attacks": "invariance attacks on glyph digits scored by the oracle",
    }
    for name, text in docs.items():
        p = sub.add_parser(name, help=text, description=text)
        _common(p, "results/toy")
        p.set_defaults(func=_handler(name))
    p = sub.add_parser("figures", help="run the experiments and write every figure",
                       description="Run the experiments and write every figure (PNG + PDF).")
    _common(p, "results/toy")
    p.set_defaults(func=_handler("figures"))
    p = sub.add_parser("all", help="every table (CSV + JSON) and figure, plus manifest.json",
                       description="Run every toy experiment; write tables, figures and "
                                   "manifest.json.")
    _common(p, "results/toy")
    p.set_defaults(func=_handler("all"))

"""``tradeoffs reproduce``: the options of a reproduction run."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

from invariance_tradeoffs.simulations.cli.args import (
    MAX_JOBS,
    add_jobs,
    add_out,
    add_progress,
    add_scheduler,
    add_seed,
    check_out_dir,
    int_in,
)
from invariance_tradeoffs.simulations.experiments.reproduce import (
    FULL,
    MAIN,
    QUICK,
    ReproduceConfig,
    run_reproduction,
)

__all__ = ["add_parser"]


def _config_from_args(args: argparse.Namespace) -> ReproduceConfig:
    base = QUICK if args.quick else FULL if args.full else MAIN
    over: dict[str, Any] = {}
    if args.models:
        over["models"] = tuple(args.models)
    for name in ("n_sources", "n_test", "n_test_pgd", "pgd_steps", "pgd_restarts", "proxy",
                 "toy", "l0_sources", "l0_budget", "n_test_autoattack"):
        if getattr(args, name) is not None:
            over[name] = getattr(args, name)
    if args.no_train:
        over["train_missing"] = False
    if args.attack_run:
        over["attack_runs"] = tuple(str(Path(p).resolve()) for p in args.attack_run)
    if args.margins:
        over["margins_dir"] = str(Path(args.margins).resolve())
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
                "n_test_pgd", "pgd_steps", "pgd_restarts", "toy", "l0_sources", "l0_budget",
                "n_test_autoattack"):
        if getattr(args, opt) is not None:
            flag = "--autoattack" if opt == "n_test_autoattack" else f"--{opt.replace('_', '-')}"
            parts += [flag, str(getattr(args, opt))]
    if args.models:
        parts += ["--models", *args.models]
    if args.no_train:
        parts.append("--no-train")
    for run in args.attack_run or ():
        parts += ["--attack-run", run]
    if args.margins:
        parts += ["--margins", str(args.margins)]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    return " ".join(shlex.quote(p) for p in parts)


def _cmd(args: argparse.Namespace) -> int:
    if args.quick and args.full:
        raise ValueError("--quick and --full exclude each other")
    config = _config_from_args(args)
    check_out_dir(args.out)  # before any work
    if config.n_test_autoattack:
        from invariance_tradeoffs.simulations.attacks.autoattack import require_torchattacks

        require_torchattacks()
    run_reproduction(config, args.out, data_dir=args.data_dir, published_dir=args.published_dir,
                     cache_dir=args.cache_dir, n_jobs=args.n_jobs,
                     progress=not args.no_progress, command=_command_line(args),
                     threads=args.threads, scheduler=args.scheduler)
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
    add_out(p, default="results")
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
                   help="zoo models to evaluate (default: undefended, pgd-0.4, ibp-0.4; "
                        "every full zoo model with --full; the tiny ones with --quick)")
    p.add_argument("--proxy", default=None,
                   help="proxy labeller configuration (default proxy-small; proxy with "
                        "--full, proxy-tiny with --quick)")
    p.add_argument("--n-sources", type=int_in(1, 100), default=None,
                   help="published sources attacked (default all 100; 20 with --quick)")
    p.add_argument("--n-test", type=int_in(1, 10000), default=None,
                   help="first N test images for clean and certified accuracy (default 10000; "
                        "200 with --quick)")
    p.add_argument("--n-test-pgd", type=int_in(1, 10000), default=None, metavar="N",
                   help="first N of those for PGD accuracy (default 1000)")
    p.add_argument("--pgd-steps", type=int_in(1), default=None,
                   help="PGD steps of the sensitivity evaluation (default 40; 10 with --quick)")
    p.add_argument("--pgd-restarts", type=int_in(1), default=None,
                   help="PGD random restarts (default 1; 5 with --full, 2 with --quick)")
    p.add_argument("--autoattack", type=int_in(0, 10000), default=None, metavar="N",
                   dest="n_test_autoattack",
                   help="AutoAttack (standard ensemble; needs torchattacks) on the first N "
                        "test images at each radius (default 0: not run; 200 with --full)")
    p.add_argument("--toy", choices=("small", "default", "none"), default=None,
                   help="toy experiment sizes (default small; default with --full)")
    p.add_argument("--l0-sources", type=int_in(0, 100), default=None, metavar="N",
                   help="published sources for the l0 attack (default 0: not run; all 100 "
                        "with --full; 3 with --quick)")
    p.add_argument("--l0-budget", choices=("default", "fast"), default=None,
                   help="l0 attack search budget (default: default; fast with --quick)")
    p.add_argument("--no-train", action="store_true",
                   help="do not train models missing from the cache (report them as missing)")
    p.add_argument("--attack-run", action="append", default=None, metavar="RUN.npz",
                   help="a saved attack run (e.g. of the l0 attack) whose label-change rate "
                        "the proxy estimates; repeatable")
    p.add_argument("--margins", default=None, metavar="DIR",
                   help="a folder written by `tradeoffs mnist margins`: add its table and "
                        "figure (margin bounds from the data, 1-NN accuracy) to the report")
    add_jobs(p, what="worker processes for training and the alignment search")
    add_scheduler(p)
    p.add_argument("--threads", type=int_in(1, MAX_JOBS), default=None, metavar="N",
                   help="torch threads in the main process (default: as many as workers)")
    add_seed(p, what="every sampling, training and attack of the run")
    add_progress(p)
    p.set_defaults(func=_cmd)

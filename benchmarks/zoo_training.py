"""Training cost of the model zoo, as ratios to standard training measured in the same run.

For every full torch configuration of :data:`simulations.models.zoo.CONFIGS` (and two
reference schedules the zoo used before: PGD-7 for 8 epochs on ``small_cnn`` and PGD-7 for
11 epochs on ``wide_cnn``), :func:`simulations.models.zoo.estimate_train_seconds` times
``--steps`` optimisation steps at the full training radius on real MNIST and extrapolates
to the whole schedule. The baseline is the ``undefended`` configuration timed in the same
run, so the ratios compare across machines; the minutes are for this machine and its
load, and are checked against each configuration's ``budget_minutes``.

Run: ``python benchmarks/zoo_training.py [--steps 20] [--threads 2] [--data-dir DIR]
[--out results/bench/zoo_training.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--data-dir", default=None, help="MNIST folder")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.threads < 1:
        parser.error("--steps and --threads must be >= 1")

    import torch

    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.models.zoo import (
        CONFIGS,
        TORCH_METHODS,
        estimate_train_seconds,
    )

    torch.set_num_threads(args.threads)
    train = load_mnist("train", args.data_dir)
    configs = {name: c for name, c in CONFIGS.items()
               if c.method in TORCH_METHODS and not name.startswith("tiny-")}
    pgd = CONFIGS["pgd-0.3"]
    configs["pgd-0.3 (PGD-7, 8 epochs, small_cnn; earlier)"] = replace(
        pgd, arch="small_cnn", epochs=8, lr_decay_epochs=(6,), pgd_steps=7)
    configs["pgd-0.3 (PGD-7, 11 epochs, wide_cnn; earlier)"] = replace(
        pgd, epochs=11, lr_decay_epochs=(8, 10), pgd_steps=7)
    base = estimate_train_seconds(CONFIGS["undefended"], train.images, train.labels,
                                  n_steps=args.steps)
    rows = []
    print(f"{'configuration':48s} {'arch':10s} {'minutes':>8s} {'x undefended':>13s} budget")
    for name, cfg in configs.items():
        sec = estimate_train_seconds(cfg, train.images, train.labels, n_steps=args.steps)
        within = None if cfg.budget_minutes is None else sec <= 60 * cfg.budget_minutes
        rows.append({"config": name, "arch": cfg.arch, "estimated_seconds": sec,
                     "ratio_to_undefended": sec / base, "budget_minutes": cfg.budget_minutes,
                     "within_budget": within})
        print(f"{name:48s} {cfg.arch:10s} {sec / 60:8.1f} {sec / base:13.1f} "
              f"{cfg.budget_minutes} min: {'ok' if within else 'OVER'}", flush=True)
    print(f"(load average at the end: {os.getloadavg()[0]:.2f}; {args.threads} torch threads; "
          f"estimates from {args.steps} steps at the full radius)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"steps": args.steps, "threads": args.threads,
                                              "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

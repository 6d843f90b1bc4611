"""The ``tradeoffs`` command.

Each subcommand lives in its own module that exposes ``add_parser(subparsers)``;
the module registers its handler with ``parser.set_defaults(func=...)``. Handlers
take the parsed namespace and return an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# (subcommand module, import path). Modules are imported lazily so that a missing
# optional dependency (e.g. torch) only affects its own subcommand.
SUBCOMMANDS: list[str] = [
    "invariance_tradeoffs.simulations.cli.theory",
    "invariance_tradeoffs.simulations.cli.toy",
    "invariance_tradeoffs.simulations.cli.mnist",
    "invariance_tradeoffs.simulations.experiments.reproduce",
    "invariance_tradeoffs.simulations.cli.study",
]


def build_parser(modules: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``tradeoffs`` parser with the subcommands of ``modules`` (default: all)."""
    parser = argparse.ArgumentParser(
        prog="tradeoffs",
        description=(
            "Compute and check the tradeoff between invariance and sensitivity to "
            "adversarial perturbations (Tramer et al., ICML 2020)."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for path in SUBCOMMANDS if modules is None else modules:
        importlib.import_module(path).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None, modules: Sequence[str] | None = None) -> int:
    """Run ``tradeoffs`` with ``argv``; ``modules`` limits the subcommands imported (a
    lighter start, e.g. ``python -m invariance_tradeoffs.simulations.study``)."""
    parser = build_parser(modules)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        # A group without a leaf subcommand: print that group's help.
        (getattr(args, "_parser", None) or parser).print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"tradeoffs: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

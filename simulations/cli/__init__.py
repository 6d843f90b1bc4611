"""The ``tradeoffs`` command.

Each subcommand lives in its own module of this package that exposes
``add_parser(subparsers)`` and registers its handler with
``parser.set_defaults(func=...)``; handlers take the parsed namespace and return an exit
code. Options shared by several commands are spelled and checked in :mod:`.args`.

:func:`main` is the one top-level handler: a usage error, a bad value or a missing file
is one line on stderr and exit status 2; Ctrl-C says how to resume (exit 130); a closed
output pipe (``tradeoffs ... | head``) ends quietly. A warning (e.g. a damaged partial
result that is discarded and recomputed) is one line, ``tradeoffs: warning: ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from invariance_tradeoffs.simulations.engine import ClusterLostError, WorkerError

# (subcommand module, import path). Modules are imported lazily so that a missing
# optional dependency (e.g. torch) only affects its own subcommand.
SUBCOMMANDS: list[str] = [
    "invariance_tradeoffs.simulations.cli.theory",
    "invariance_tradeoffs.simulations.cli.toy",
    "invariance_tradeoffs.simulations.cli.mnist",
    "invariance_tradeoffs.simulations.cli.reproduce",
    "invariance_tradeoffs.simulations.cli.study",
]


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line naming the option."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"tradeoffs: error: {message} (`{self.prog} --help` lists the "
                     "options)\n")


def build_parser(modules: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``tradeoffs`` parser with the subcommands of ``modules`` (default: all)."""
    parser = Parser(
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


def _format_warning(message: Warning | str, category: type[Warning], filename: str,
                    lineno: int, line: str | None = None) -> str:
    """``warnings.formatwarning`` of the command: one line, no source location."""
    return f"tradeoffs: warning: {message}\n"


def main(argv: Sequence[str] | None = None, modules: Sequence[str] | None = None) -> int:
    """Run ``tradeoffs`` with ``argv``; ``modules`` limits the subcommands imported (a
    lighter start, e.g. ``python -m invariance_tradeoffs.simulations.study``)."""
    # Only the display changes: warnings recorded by a caller (pytest.warns) stay recorded.
    previous, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        return _main(argv, modules)
    except KeyboardInterrupt:  # also while the subcommands are being imported
        print("\ntradeoffs: interrupted; rerun the same command to resume (finished work "
              "is kept)", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = previous


def _engine(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """The Dask cluster of ``--scheduler``, opened before the command does any work (an
    unreachable address fails before anything is written) and closed after it."""
    scheduler = getattr(args, "scheduler", None)
    if scheduler is None:
        return contextlib.nullcontext()
    from invariance_tradeoffs.simulations.engine import session

    return session(scheduler)


def _main(argv: Sequence[str] | None, modules: Sequence[str] | None) -> int:
    parser = build_parser(modules)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already reported
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    if not hasattr(args, "func"):
        # A group without a leaf subcommand: print that group's help.
        (getattr(args, "_parser", None) or parser).print_help()
        return 0 if args.command is None else 2
    try:
        with _engine(args):
            return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, without a second error when
        # Python flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError,
            PermissionError, IsADirectoryError, ImportError, ConnectionError,
            WorkerError, ClusterLostError) as exc:
        print(f"tradeoffs: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Options shared by every ``tradeoffs`` command, spelled and checked the same way.

One flag means one thing everywhere:

- ``--data-dir`` / ``--published-dir``: where MNIST and the authors' release are;
- ``--out``: the output folder (checked before any work: non-empty, creatable, writable);
- ``--seed``: the seed of every random choice the command makes;
- ``--n-jobs``: worker processes (joblib's convention; ``-1``, the default, is one per core);
- ``--scheduler``: run the work on a Dask cluster instead (``local:N`` or an address;
  :mod:`invariance_tradeoffs.simulations.engine`);
- ``--threads``: torch threads in the main process;
- ``--quick``: the small, fast variant (a smoke run, not the documented result);
- ``--no-progress``: no progress bars;
- ``--json``: machine-readable output.

Numbers are checked when parsed (:func:`int_in`, :func:`float_in`), so a bad value is a
one-line usage error naming the option, before any work. Renamed options keep their old
spelling for one release through :func:`add_deprecated_alias`.
"""

from __future__ import annotations

import argparse
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_JOBS",
    "add_data_args",
    "add_deprecated_alias",
    "add_jobs",
    "add_out",
    "add_progress",
    "add_scheduler",
    "add_seed",
    "add_threads",
    "check_out_dir",
    "check_out_file",
    "float_in",
    "int_in",
]

#: Upper bound on worker processes: more than this many per machine is a typo, and each
#: worker holds a copy of the data.
MAX_JOBS = 256


def int_in(low: int | None = None, high: int | None = None, *,
           allow: tuple[int, ...] = ()) -> Callable[[str], int]:
    """An argparse ``type`` parsing an integer in ``[low, high]`` (or one of ``allow``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value in allow:
            return value
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"in [{low if low is not None else '-inf'}, " \
                   f"{high if high is not None else 'inf'}]"
            extra = f" or {', '.join(map(str, allow))}" if allow else ""
            raise argparse.ArgumentTypeError(f"expected an integer {span}{extra}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


def float_in(low: float | None = None, high: float | None = None, *,
             low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` parsing a finite number in ``[low, high]`` (``(low, high]``
    with ``low_open``)."""
    import math

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            left = "(" if low_open else "["
            raise argparse.ArgumentTypeError(
                f"expected a number in {left}{low if low is not None else '-inf'}, "
                f"{high if high is not None else 'inf'}], got {text}")
        return value

    parse.__name__ = "number"
    return parse


class _DeprecatedAlias(argparse.Action):
    def __init__(self, *args: Any, new: str = "", **kwargs: Any) -> None:
        self.new = new
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        # Shown by the command as one line, "tradeoffs: warning: ..." (cli.main).
        warnings.warn(f"{option_string} is deprecated; use {self.new}", FutureWarning,
                      stacklevel=2)
        setattr(namespace, self.dest, True if self.nargs == 0 else values)


def add_deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str, dest: str,
                         **kwargs: Any) -> None:
    """Accept ``old`` as a hidden, deprecated spelling of ``new`` (stored in ``dest``)."""
    if kwargs.get("action") == "store_true":
        kwargs.pop("action")
        kwargs["nargs"] = 0
    parser.add_argument(old, dest=dest, action=_DeprecatedAlias, new=new,
                        help=argparse.SUPPRESS, **kwargs)


def add_data_args(parser: argparse.ArgumentParser, *, published: bool = True) -> None:
    """``--data-dir`` (and ``--published-dir``), falling back to the env var and cache."""
    parser.add_argument(
        "--data-dir", metavar="DIR", default=None,
        help="folder holding mnist/ (or the IDX files); default: $INVARIANCE_TRADEOFFS_DATA, "
        "then the per-user cache directory (fetched there on first use)")
    if published:
        parser.add_argument(
            "--published-dir", metavar="DIR", default=None,
            help="folder holding the authors' release (excessive-invariance/ or a checkout "
            "of their repository); default: $INVARIANCE_TRADEOFFS_DATA, then the per-user "
            "cache directory (fetched there on first use)")


def add_out(parser: argparse.ArgumentParser, *, default: str | None = None,
            help: str = "output folder") -> None:
    """``--out DIR`` (required unless a default is given)."""
    if default is None:
        parser.add_argument("--out", required=True, metavar="DIR", help=help)
    else:
        parser.add_argument("--out", default=default, metavar="DIR",
                            help=f"{help} (default: {default})")


def add_seed(parser: argparse.ArgumentParser, *, default: int = 0,
             what: str = "every random choice of the command") -> None:
    """``--seed S``: one seed for every random choice the command makes."""
    parser.add_argument("--seed", type=int_in(0, 2**32 - 1), default=default,
                        help=f"seed of {what} (default: {default})")


def add_jobs(parser: argparse.ArgumentParser, *, what: str = "worker processes") -> None:
    """``--n-jobs N`` (default -1: one per core)."""
    parser.add_argument(
        "--n-jobs", type=int_in(1, MAX_JOBS, allow=(-1,)), default=-1, metavar="N",
        help=f"{what} (joblib; -1: one per CPU core, the default; at most {MAX_JOBS})")


def add_scheduler(parser: argparse.ArgumentParser) -> None:
    """``--scheduler ADDRESS|local:N`` (default: local joblib processes, ``--n-jobs``)."""
    from invariance_tradeoffs.simulations.engine import INSTALL_HINT, parse_scheduler

    def parse(text: str) -> str | None:
        try:
            spec = parse_scheduler(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("--scheduler ")) from None
        return None if spec is None else str(spec)

    parse.__name__ = "scheduler"
    parser.add_argument(
        "--scheduler", type=parse, default=None, metavar="ADDRESS|local:N",
        help="run on a Dask cluster: 'local:N' starts N worker processes on this machine "
        "(stopped at the end), 'tcp://host:port' uses a running cluster; default: local "
        f"joblib processes (--n-jobs). Needs {INSTALL_HINT}")


def add_threads(parser: argparse.ArgumentParser, *, default: int | None = None) -> None:
    """``--threads N``: torch threads in the main process."""
    parser.add_argument(
        "--threads", type=int_in(1, MAX_JOBS), default=default, metavar="N",
        help="torch threads in this process (default: "
        + ("torch's choice" if default is None else str(default)) + ")")


def add_progress(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``."""
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def check_out_file(out: str | os.PathLike, flag: str = "--out", *,
                   must_not_exist: bool = False) -> Path:
    """An output file's path, its folder created; refused before any work when the file
    cannot be written there.

    Raises
    ------
    ValueError
        ``out`` is empty or a folder, exists while ``must_not_exist``, or its folder
        cannot be created or written.
    """
    text = os.fspath(out)
    if not text.strip():
        raise ValueError(f"{flag} must name a file, got an empty string")
    path = Path(text).expanduser()
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; name a file")
    if must_not_exist and path.exists():
        raise ValueError(f"{flag} {path} already exists; choose another")
    try:
        check_out_dir(path.parent)
    except ValueError as exc:
        raise ValueError(f"{flag} {path}: folder {str(exc).removeprefix('--out ')}") from None
    return path


def check_out_dir(out: str | os.PathLike) -> Path:
    """The output folder, created; refused before any work when it cannot be written.

    Raises
    ------
    ValueError
        ``out`` is empty, is an existing file, lies below a file, or is not writable.
    """
    text = os.fspath(out)
    if not text.strip():
        raise ValueError("--out must name a folder, got an empty string")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} exists and is not a folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--out {path}: {parent} is a file, not a folder")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {path} cannot be created: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"--out {path} is not writable")
    return path

"""Tidy tables: a list of flat records, written as CSV and JSON side by side.

Every experiment of :mod:`simulations.experiments.toy` returns a list of dictionaries, one per row,
whose values are numbers, strings, booleans or ``None``. :func:`write_table` writes it
atomically (a temporary file renamed into place), so that an interrupted run never
leaves a half-written table behind.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from invariance_tradeoffs.simulations.io import atomic_write

__all__ = ["Row", "clean_value", "clean_rows", "write_table", "read_table_json"]

Row = dict[str, object]


def clean_value(value: object) -> object:
    """A JSON-friendly scalar: numpy scalars to Python, infinities to ``"inf"``/``"-inf"``.

    Raises
    ------
    TypeError
        If ``value`` is a container or another non-scalar object (tables are flat).
    """
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    raise TypeError(f"table cells must be scalars, got {type(value).__name__}: {value!r}")


def clean_rows(rows: Iterable[Mapping[str, object]]) -> list[Row]:
    """Validate and clean a tidy table; every row must be a mapping with string keys."""
    out: list[Row] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"rows[{i}] must be a mapping, got {type(row).__name__}")
        out.append({str(k): clean_value(v) for k, v in row.items()})
    return out


def _columns(rows: list[Row]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        for key in row:
            if key not in cols:
                cols.append(key)
    return cols


def write_table(rows: Iterable[Mapping[str, object]], out_dir: str | Path,
                name: str) -> tuple[Path, Path]:
    """Write ``rows`` to ``out_dir/name.csv`` and ``out_dir/name.json``.

    Parameters
    ----------
    rows : iterable of mappings
        The tidy table (one flat record per row).
    out_dir : path
        Output directory, created when absent.
    name : str
        File stem (letters, digits, ``_`` and ``-`` only).

    Returns
    -------
    (csv_path, json_path)

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> c, j = write_table([{"eps": 0.1, "acc": 1.0}], d, "demo")
    >>> c.read_text().splitlines()
    ['eps,acc', '0.1,1.0']
    """
    if not name or not all(ch.isalnum() or ch in "_-" for ch in name):
        raise ValueError(f"name must be a non-empty file stem of [A-Za-z0-9_-], got {name!r}")
    table = clean_rows(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols = _columns(table)
    csv_path, json_path = out / f"{name}.csv", out / f"{name}.json"

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    text = buf.getvalue()
    atomic_write(csv_path, lambda p: p.write_text(text, newline=""))
    atomic_write(json_path, lambda p: p.write_text(json.dumps(table, indent=1) + "\n"))
    return csv_path, json_path


def read_table_json(path: str | Path) -> list[Row]:
    """Read a table written by :func:`write_table` (the JSON file), restoring infinities."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    for row in data:
        for key, val in row.items():
            if val in ("inf", "-inf"):
                row[key] = float(val)
    return data

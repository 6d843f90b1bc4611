"""Files the package writes: atomically, hashed, JSON-safe.

Shared by every layer above :mod:`theory` (data, models, attacks, experiments), so that
"never half-written" and "JSON of numpy values" are implemented once.

Example
-------
>>> import numpy as np
>>> hash_arrays(np.zeros(3)) == hash_arrays(np.zeros(3))
True
>>> hash_arrays(np.zeros(3)) == hash_arrays(np.zeros(3, dtype=np.float32))
False
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_write", "hash_arrays", "json_default", "to_jsonable", "write_json"]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *,
                 mode: int = 0o644) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    The rename is atomic on POSIX file systems: readers see the old file or the new one,
    never a half-written one; if ``write`` raises, the temporary file is removed. The file
    gets permissions ``mode`` (a temporary file is created private).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def hash_arrays(*arrays: np.ndarray, extra: str = "") -> str:
    """SHA256 (hex) of arrays' dtypes, shapes and bytes, and of an ``extra`` string."""
    h = hashlib.sha256(extra.encode())
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def json_default(obj: Any) -> Any:
    """``default=`` for :func:`json.dumps`: numpy scalars and arrays, paths, and objects
    with a ``to_dict()`` (e.g. :class:`~invariance_tradeoffs.theory.results.Quantity`)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if callable(getattr(obj, "to_dict", None)):
        return obj.to_dict()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_jsonable(obj: Any) -> Any:
    """``obj`` with every value made JSON-ready (recursively; dict keys become strings).

    Example
    -------
    >>> to_jsonable({1: (np.int64(2), np.float32(0.5))})
    {'1': [2, 0.5]}
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, str | bool | int | float):
        return obj
    return to_jsonable(json_default(obj))


def write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 1) -> None:
    """Write ``data`` (made JSON-ready) to ``path`` atomically, with a final newline."""
    text = json.dumps(to_jsonable(data), indent=indent) + "\n"
    atomic_write(path, lambda p: p.write_text(text))

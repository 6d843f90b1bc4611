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
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["atomic_write", "hash_arrays"]


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

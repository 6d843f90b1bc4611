"""Ways to damage real files in tests: truncation, one flipped byte, random bytes, an
empty file, and rewriting an ``.npz`` with its arrays changed (a valid zip file)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def truncate(path: Path, keep: float = 0.5) -> None:
    """Keep the first ``keep`` fraction of the file."""
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


def flip_byte(path: Path) -> None:
    """Flip the lowest bit of the middle byte."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def random_bytes(path: Path, n: int = 5000) -> None:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, n, np.uint8).tobytes())


def empty(path: Path) -> None:
    path.write_bytes(b"")


def rewrite_npz(path: Path, change: Callable[[dict], object], *,
                compress: bool = False) -> None:
    """Rewrite an ``.npz`` file with ``change(arrays)`` applied to its arrays."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    with open(path, "wb") as fh:
        (np.savez_compressed if compress else np.savez)(fh, **arrays)

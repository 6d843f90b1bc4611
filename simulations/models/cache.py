"""Files of the model cache: written with an integrity record, refused when damaged.

Every cached model (zoo ``.pt`` / ``.npz``, proxy member ``.pt``) and every training
checkpoint (``.partial.pt``) is written atomically and then recorded in a sidecar
``<file>.sha256.json`` (:func:`invariance_tradeoffs.simulations.io.write_record`: SHA256
and size of the file's bytes). Reading one back:

1. the file's bytes are checked against the record (before anything parses them);
2. it is parsed without pickle (``torch.load(..., weights_only=True)``,
   ``np.load(..., allow_pickle=False)``) and must hold the expected entries;
3. every floating-point weight must be finite;
4. the caller loads the weights into the architecture (:func:`load_weights`), which
   must fit exactly.

Any failure raises :class:`~invariance_tradeoffs.simulations.io.CorruptFileError` (a
``ValueError``): one line naming the file, what is wrong and how to rebuild it.

Files cached before records existed have none. A cache entry without a record is
accepted once -- when it passes steps 2-4 -- and its record is written then, with a
warning (:func:`adopt`): the hash protects it from then on. A training checkpoint
without a valid record is never trusted (``require_record=True``); training discards it
and starts again.

The threat model is damage and staleness (truncation, flipped bits, an interrupted
write, a file from another version), not an adversary who can write to the cache: such
a writer can rewrite the record too.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from invariance_tradeoffs.simulations.io import (
    CorruptFileError,
    atomic_savez,
    atomic_write,
    exception_reason,
    load_npz,
    read_record,
    record_path,
    write_record,
)
from invariance_tradeoffs.simulations.optional import require_torch, torch

__all__ = ["adopt", "load_npz_file", "load_torch_file", "load_weights", "nonfinite",
           "save_npz_file", "save_torch_file"]


def save_torch_file(path: str | os.PathLike, payload: dict) -> None:
    """``torch.save`` ``payload`` to ``path`` atomically, then record its hash."""
    atomic_write(path, lambda p: torch.save(payload, p))
    write_record(path)


def save_npz_file(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to the ``.npz`` file ``path`` atomically, then record its hash."""
    atomic_savez(path, arrays)
    write_record(path)


def nonfinite(obj: Any) -> list[str]:
    """Names of the floating-point arrays or tensors in ``obj`` (nested dicts, lists)
    holding a NaN or an infinity.

    Example
    -------
    >>> nonfinite({"w": np.ones(2), "b": [np.array([np.nan])], "n": np.arange(2)})
    ['b.0']
    """
    return [name for name, arr in _float_arrays(obj) if not _all_finite(arr)]


def load_torch_file(path: str | os.PathLike, *, what: str, remedy: str,
                    required: tuple[str, ...], require_record: bool = False) -> dict:
    """The dictionary saved in ``path`` by :func:`save_torch_file`, checked (steps 1-3).

    Parameters
    ----------
    path : path
    what : str
        What the file is, for messages (``"model file"``).
    remedy : str
        How to rebuild it, for messages.
    required : tuple of str
        Entries the dictionary must hold.
    require_record : bool
        Refuse a file without an integrity record (else accept it; see :func:`adopt`).

    Raises
    ------
    CorruptFileError
    """
    require_torch()
    path = _checked_bytes(path, what, remedy, require_record)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure of a damaged file
        raise CorruptFileError(path, exception_reason(exc), remedy, what=what) from exc
    return _checked_entries(blob, path, what, remedy, required)


def load_npz_file(path: str | os.PathLike, *, what: str, remedy: str,
                  required: tuple[str, ...], require_record: bool = False
                  ) -> dict[str, np.ndarray]:
    """The arrays saved in ``path`` by :func:`save_npz_file`, checked (steps 1-3); the
    parameters are those of :func:`load_torch_file`."""
    path = _checked_bytes(path, what, remedy, require_record)
    return _checked_entries(load_npz(path, what=what, remedy=remedy), path, what, remedy,
                            required)


def load_weights(net: Any, state_dict: Any, path: str | os.PathLike, *, what: str,
                 remedy: str) -> Any:
    """``net`` with ``state_dict`` loaded (strictly); a mismatch is a damaged file.

    Raises
    ------
    CorruptFileError
        The weights do not fit ``net`` (other architecture: names or shapes differ).
    """
    try:
        net.load_state_dict(state_dict)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptFileError(path, "its weights do not fit the architecture: "
                               + exception_reason(exc), remedy, what=what) from exc
    return net


def adopt(path: str | os.PathLike, what: str) -> None:
    """Record the hash of a cache file that has none, after it loaded cleanly.

    Files cached by versions without records are trusted once (they passed every
    structural check) and protected from then on. Warns; a read-only cache is left as it
    is.
    """
    path = Path(path)
    if record_path(path).exists():
        return
    warnings.warn(f"{what} {path} has no integrity record (cached by an older version); it "
                  "loaded cleanly with finite weights, so its SHA256 is recorded now",
                  RuntimeWarning, stacklevel=3)
    try:
        write_record(path)
    except OSError:
        pass


# --------------------------------------------------------------------------- checks
def _checked_bytes(path: str | os.PathLike, what: str, remedy: str,
                   require_record: bool) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if read_record(path, what=what, remedy=remedy) is None and require_record:
        raise CorruptFileError(path, f"no integrity record {record_path(path).name}", remedy,
                               what=what)
    return path


def _checked_entries(blob: Any, path: Path, what: str, remedy: str,
                     required: tuple[str, ...]) -> Any:
    if not isinstance(blob, dict):
        raise CorruptFileError(path, f"holds a {type(blob).__name__}, not a dictionary",
                               remedy, what=what)
    missing = [k for k in required if k not in blob]
    if missing:
        raise CorruptFileError(path, f"no {', '.join(missing)} entry", remedy, what=what)
    _check_finite(blob, path, what, remedy)
    return blob


def _check_finite(blob: Any, path: Path, what: str, remedy: str) -> None:
    bad = nonfinite(blob)
    if bad:
        raise CorruptFileError(path, f"non-finite weights in {', '.join(bad[:3])}", remedy,
                               what=what)


def _all_finite(arr: Any) -> bool:
    if isinstance(arr, np.ndarray):
        return bool(np.isfinite(arr).all())
    return bool(torch.isfinite(arr).all())


def _float_arrays(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(name, array)`` for every floating-point numpy array or torch tensor in ``obj``."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _float_arrays(value, f"{prefix}{key}.")
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            yield from _float_arrays(value, f"{prefix}{i}.")
    elif isinstance(obj, np.ndarray) and np.issubdtype(obj.dtype, np.floating):
        yield prefix.rstrip("."), obj
    elif torch is not None and isinstance(obj, torch.Tensor) and obj.is_floating_point():
        yield prefix.rstrip("."), obj

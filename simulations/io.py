"""Files the package writes: atomically, hashed, JSON-safe, checked when read back.

Shared by every layer above :mod:`theory` (data, models, attacks, experiments), so that
"never half-written", "JSON of numpy values" and "refuse a damaged file with a message
that names it" are implemented once.

Integrity records: :func:`write_record` stores the SHA256 and size of a finished file in
a sidecar ``<file>.sha256.json`` (written atomically, after the file); :func:`read_record`
checks the file against it before the file is parsed. A file whose bytes changed after
it was written (truncated, a flipped byte, replaced) raises :class:`CorruptFileError`.

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

__all__ = [
    "CorruptFileError",
    "atomic_write",
    "atomic_savez",
    "file_sha256",
    "hash_arrays",
    "json_default",
    "load_npz",
    "read_record",
    "exception_reason",
    "record_path",
    "remove_with_record",
    "to_jsonable",
    "write_json",
    "write_record",
]


class CorruptFileError(ValueError):
    """A file the package wrote earlier is damaged, stale or not what it should be.

    ``str(error)`` is one line: the file, what is wrong with it and how to rebuild it.

    Parameters
    ----------
    path : path
        The damaged file.
    reason : str
        What is wrong (e.g. ``"truncated: File is not a zip file"``).
    remedy : str
        What the user does about it (e.g. ``"delete it and rerun"``); may be empty.
    what : str
        What the file is, e.g. ``"model file"``.
    """

    def __init__(self, path: str | os.PathLike, reason: str, remedy: str = "", *,
                 what: str = "file") -> None:
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())  # one line, whatever the cause said
        self.remedy = remedy
        self.what = what
        message = f"{what} {self.path} is corrupt or invalid ({self.reason})"
        super().__init__(f"{message}; {remedy}" if remedy else message)


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


def atomic_savez(path: str | os.PathLike, arrays: dict[str, np.ndarray], *,
                 compress: bool = False) -> None:
    """Write ``arrays`` to the ``.npz`` file ``path`` atomically (:func:`atomic_write`)."""
    save = np.savez_compressed if compress else np.savez

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            save(fh, **arrays)

    atomic_write(path, write)


def load_npz(path: str | os.PathLike, *, what: str = "file",
             remedy: str = "") -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file ``path``, read with ``allow_pickle=False``.

    Raises
    ------
    CorruptFileError
        The file cannot be read as an ``.npz`` of plain arrays (truncated, damaged, not
        a zip file, pickled objects inside, ...); the message names it.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001 - any parse failure of a damaged file
        raise CorruptFileError(path, exception_reason(exc), remedy, what=what) from exc


def exception_reason(exc: BaseException, limit: int = 240) -> str:
    """``"Type: message"`` of an exception, on one line and at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or "no detail"
    name = type(exc).__name__
    if name == "error":  # zlib.error, struct.error, ...: name the module too
        name = f"{type(exc).__module__}.{name}"
    text = f"{name}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def file_sha256(path: str | os.PathLike) -> str:
    """SHA256 (hex) of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def record_path(path: str | os.PathLike) -> Path:
    """Where the integrity record of ``path`` is kept: ``<path>.sha256.json``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256.json")


def write_record(path: str | os.PathLike, **fields: Any) -> dict:
    """Record the SHA256 and size of the finished file ``path`` (and ``fields``).

    Call it after ``path`` was written (atomically); the record is written atomically
    too. Returns the record.

    Example
    -------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "a.bin"
    >>> _ = f.write_bytes(b"abc")
    >>> write_record(f, note="x")["size"]
    3
    >>> read_record(f)["note"]
    'x'
    >>> _ = f.write_bytes(b"abd")
    >>> read_record(f)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    invariance_tradeoffs.simulations.io.CorruptFileError: file ... is corrupt or invalid (...)
    """
    path = Path(path)
    record = {"file": path.name, "sha256": file_sha256(path), "size": path.stat().st_size,
              **fields}
    write_json(record_path(path), record)
    return record


def read_record(path: str | os.PathLike, *, what: str = "file",
                remedy: str = "") -> dict | None:
    """The integrity record of ``path``, checked against the file; ``None`` when absent.

    Raises
    ------
    CorruptFileError
        The record cannot be read, or the file's size or SHA256 differ from it.
    """
    path = Path(path)
    sidecar = record_path(path)
    if not sidecar.is_file():
        return None
    try:
        record = json.loads(sidecar.read_text())
        expected, size = str(record["sha256"]), int(record["size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptFileError(path, f"its integrity record {sidecar.name} is unreadable: "
                               f"{exception_reason(exc)}", remedy, what=what) from exc
    actual = path.stat().st_size
    if actual != size:
        raise CorruptFileError(path, f"{actual} bytes where {size} were written: truncated "
                               "or overwritten", remedy, what=what)
    if file_sha256(path) != expected:
        raise CorruptFileError(path, f"SHA256 differs from its record {sidecar.name}: the "
                               "file changed after it was written", remedy, what=what)
    return record


def remove_with_record(path: str | os.PathLike) -> None:
    """Delete ``path`` and its integrity record (either may be missing)."""
    Path(path).unlink(missing_ok=True)
    record_path(path).unlink(missing_ok=True)


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

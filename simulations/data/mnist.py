"""The MNIST database: locate, download (with checksum verification) and read the IDX files.

The four standard IDX files are looked up, in order, in

1. the ``data_dir`` argument (``--data-dir`` on the command line),
2. the environment variable ``INVARIANCE_TRADEOFFS_DATA``,
3. the per-user cache directory ``pooch.os_cache("invariance-tradeoffs")``.

Each location may be a *root* holding ``mnist/`` (and ``excessive-invariance/``) or the
MNIST folder itself. Files may be plain or gzip-compressed. Their **uncompressed**
content is checked against the canonical MD5 sums, so a corrupted or truncated file is
an error naming the file, never a silently partial array. Missing files are downloaded
from the usual public mirrors (through :mod:`pooch`) only into the cache directory,
unless ``download=True`` is passed; a download that fails verification is deleted.

Example
-------
>>> from invariance_tradeoffs.simulations.data.mnist import load_mnist
>>> images, labels = load_mnist("test")          # doctest: +SKIP
>>> images.shape, images.dtype, labels.shape       # doctest: +SKIP
((10000, 28, 28), dtype('uint8'), (10000,))
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "ENV_VAR",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MNIST_URL_ENV",
    "mnist_mirrors",
    "MNISTSplit",
    "cache_root",
    "data_root",
    "download_mnist",
    "find_mnist_dir",
    "load_mnist",
    "quiet_pooch",
    "to_unit",
]

ENV_VAR = "INVARIANCE_TRADEOFFS_DATA"

#: IDX base name -> (MD5 of the uncompressed content, magic number, shape).
MNIST_FILES: dict[str, tuple[str, int, tuple[int, ...]]] = {
    "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", 0x803, (60000, 28, 28)),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", 0x801, (60000,)),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", 0x803, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", 0x801, (10000,)),
}

_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: Public mirrors of the gzip-compressed files (tried in order).
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: Environment variable naming one mirror to use instead of :data:`MNIST_MIRRORS`.
MNIST_URL_ENV = "INVARIANCE_TRADEOFFS_MNIST_URL"

_HOW_TO_POINT = (
    f"point the package at a copy with --data-dir DIR or {ENV_VAR}=DIR "
    "(a folder holding mnist/ or the IDX files themselves)"
)


class MNISTSplit(NamedTuple):
    """One MNIST split: ``images`` (n, 28, 28) uint8 and ``labels`` (n,) uint8."""

    images: np.ndarray
    labels: np.ndarray


# (resolved path, mtime_ns, size) -> parsed read-only array. Verification (MD5 of the
# uncompressed content) happens once per process for each such key.
_VERIFIED: dict[tuple[str, int, int], np.ndarray] = {}


def cache_root() -> Path:
    """The per-user cache directory ``pooch.os_cache("invariance-tradeoffs")``."""
    import pooch

    return Path(pooch.os_cache("invariance-tradeoffs"))


def data_root(data_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Return the data root to use and a description of where it came from.

    Parameters
    ----------
    data_dir : path, optional
        Explicit directory; takes precedence over the environment and the cache.

    Returns
    -------
    root : Path
    origin : str
        ``"data_dir argument (--data-dir)"``, ``"$INVARIANCE_TRADEOFFS_DATA"`` or
        ``"cache directory"``.
    """
    if data_dir is not None:
        if not isinstance(data_dir, str | os.PathLike):
            raise TypeError(f"data_dir must be a path, got {type(data_dir).__name__}")
        return Path(data_dir).expanduser(), "data_dir argument (--data-dir)"
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser(), f"${ENV_VAR}"
    return cache_root(), "cache directory"


def _file_in(folder: Path, base: str) -> Path | None:
    for name in (base, base + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def find_mnist_dir(data_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Folder that holds (or should hold) the MNIST IDX files, and its origin.

    ``<root>/mnist`` is preferred; the root itself is used when it already holds IDX
    files (the variable or argument pointing straight at the MNIST folder).
    """
    root, origin = data_root(data_dir)
    for folder in (root / "mnist", root):
        if folder.is_dir() and any(_file_in(folder, b) for b in MNIST_FILES):
            return folder, origin
    return root / "mnist", origin


def _read_verified(path: Path, base: str) -> np.ndarray:
    """Read one IDX file, verifying it once per process per (path, mtime, size)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _VERIFIED:
        _VERIFIED[key] = _parse_idx(path, base)
    return _VERIFIED[key]


def _parse_idx(path: Path, base: str) -> np.ndarray:
    """Read one IDX file (plain or gzip), verify its uncompressed MD5, return the array."""
    md5, magic, shape = MNIST_FILES[base]
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"MNIST file {path} is corrupted or truncated: {exc}") from exc
    digest = hashlib.md5(raw).hexdigest()
    if digest != md5:
        raise ValueError(
            f"MNIST file {path} is corrupted or truncated: MD5 of its uncompressed content "
            f"is {digest}, expected {md5} (replace it with a good copy or delete it)"
        )
    ndim = len(shape)
    header = struct.unpack(f">I{ndim}I", raw[: 4 * (ndim + 1)])
    if header[0] != magic or tuple(header[1:]) != shape:  # pragma: no cover - MD5 matched
        raise ValueError(f"MNIST file {path} has an unexpected IDX header {header}")
    arr = np.frombuffer(raw, dtype=np.uint8, offset=4 * (ndim + 1)).reshape(shape)
    arr.flags.writeable = False
    return arr


def mnist_mirrors(url: str | None = None) -> tuple[str, ...]:
    """Mirrors to try: ``url``, else ``$INVARIANCE_TRADEOFFS_MNIST_URL``, else the public ones.

    Each ends with ``/``; the file ``<base>.gz`` is fetched from ``<mirror><base>.gz``.
    """
    if url is not None and not isinstance(url, str):
        raise TypeError(f"url must be a string, got {type(url).__name__}")
    chosen = url or os.environ.get(MNIST_URL_ENV)
    if not chosen:
        return MNIST_MIRRORS
    if not chosen.startswith(("http://", "https://", "ftp://")):
        raise ValueError(f"MNIST URL must start with http://, https:// or ftp://, got {chosen!r}")
    return (chosen if chosen.endswith("/") else chosen + "/",)


def _fetch(url: str, dest: Path, progress: bool = False) -> None:
    """Download ``url`` to the file ``dest`` with pooch (no hash: gzip bytes vary by mirror;
    the uncompressed content is verified by the caller)."""
    import pooch

    downloader = (pooch.HTTPDownloader(progressbar=progress, timeout=60)
                  if url.startswith("http") else pooch.FTPDownloader(progressbar=progress))
    with quiet_pooch():
        pooch.retrieve(url, known_hash=None, fname=dest.name, path=dest.parent,
                       downloader=downloader)


@contextlib.contextmanager
def quiet_pooch() -> Iterator[None]:
    """Silence pooch's informational log lines (the package prints its own summary)."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _download(base: str, folder: Path, mirrors: tuple[str, ...] = MNIST_MIRRORS,
              progress: bool = False) -> Path:
    """Download ``base``.gz into ``folder``, keeping it only if its content verifies."""
    folder.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=".download-", dir=folder))
    errors = []
    try:
        for mirror in mirrors:
            tmp = tmpdir / (base + ".gz")
            try:
                _fetch(mirror + base + ".gz", tmp, progress)
                _parse_idx(tmp, base)
            except Exception as exc:  # any failure: try the next mirror
                reason = " ".join(str(exc).split())
                errors.append(f"{mirror}{base}.gz: {type(exc).__name__}: {reason[:300]}")
                tmp.unlink(missing_ok=True)
                continue
            final = folder / (base + ".gz")
            os.replace(tmp, final)
            return final
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    raise OSError("; ".join(errors))


def _locate(
    bases: tuple[str, ...], data_dir: str | os.PathLike | None, download: bool | None,
    url: str | None = None, progress: bool = False,
) -> dict[str, Path]:
    folder, origin = find_mnist_dir(data_dir)
    if data_dir is not None and not Path(data_dir).expanduser().is_dir() and not download:
        what = "is a file, not a folder" if Path(data_dir).expanduser().exists() else \
            "does not exist"
        raise FileNotFoundError(f"data directory {data_dir} (--data-dir) {what}; "
                                f"{_HOW_TO_POINT}")
    found = {b: _file_in(folder, b) for b in bases}
    missing = [b for b, p in found.items() if p is None]
    if not missing:
        return found  # type: ignore[return-value]
    if download is None:
        download = origin == "cache directory"
    where = f"{folder} (from the {origin})"
    if not download:
        raise FileNotFoundError(
            f"MNIST file(s) missing: {', '.join(m + '[.gz]' for m in missing)}; looked in "
            f"{where}; {_HOW_TO_POINT}, or run `tradeoffs mnist download`"
        )
    mirrors = mnist_mirrors(url)
    for base in missing:
        try:
            found[base] = _download(base, folder, mirrors, progress)
        except OSError as exc:
            raise FileNotFoundError(
                f"MNIST file {base}.gz missing from {where} and its download failed: {exc}; "
                f"{_HOW_TO_POINT}"
            ) from None
    return found  # type: ignore[return-value]


def load_mnist(
    split: str, data_dir: str | os.PathLike | None = None, *, download: bool | None = None
) -> MNISTSplit:
    """Load one MNIST split as uint8 arrays after verifying the files' checksums.

    Parameters
    ----------
    split : {"train", "test"}
        ``"train"``: 60000 images; ``"test"``: the 10000 ``t10k`` images.
    data_dir : path, optional
        A root holding ``mnist/`` or the MNIST folder itself. Defaults to
        ``$INVARIANCE_TRADEOFFS_DATA``, then the per-user cache directory.
    download : bool, optional
        Download missing files from the public mirrors. Default: only when the files
        are looked up in the cache directory.

    Returns
    -------
    MNISTSplit
        ``images`` of shape (n, 28, 28) and ``labels`` of shape (n,), both uint8.
        Fresh writable copies: modifying them does not affect later loads.

    Raises
    ------
    FileNotFoundError
        Files missing and not downloadable: the message names the files, the folder
        searched and how to point the package at a copy.
    ValueError
        ``split`` unknown, or a file is corrupted or truncated (the message names it).
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    paths = _locate(_SPLITS[split], data_dir, download)
    images, labels = (_read_verified(paths[b], b) for b in _SPLITS[split])
    return MNISTSplit(images.copy(), labels.copy())


def download_mnist(data_dir: str | os.PathLike | None = None, *, url: str | None = None,
                   progress: bool = False) -> Path:
    """Make sure all four MNIST files are present and verified; return their folder.

    Missing files are downloaded from ``url`` (else :func:`mnist_mirrors`).
    """
    paths = _locate(tuple(MNIST_FILES), data_dir, True, url, progress)
    for base, path in paths.items():
        _read_verified(path, base)
    return next(iter(paths.values())).parent


def to_unit(images: np.ndarray) -> np.ndarray:
    """Scale uint8 pixel values (0..255) to float64 in [0, 1]."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 (0..255), got dtype {images.dtype}")
    return images.astype(np.float64) / 255.0

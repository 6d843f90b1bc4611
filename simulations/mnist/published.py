"""The authors' released invariance examples (Tramer et al., ICML 2020), with human labels.

The release (``invariance_examples/`` in the authors' repository) stores each set as a
pair ``<name>.npy`` (N, 28, 28) images + ``<name>_labels.npy`` (N,) human labels, and the
MNIST **test** indices of the source images in ``indexs.npy`` (manual set:
``manual_indexs.npy``). Known sets and the file names accepted for them:

=========================  =====  ======  ==============================================
set                        norm   radius  files (first existing stem wins)
=========================  =====  ======  ==============================================
``linf/automated_eps03``   linf   0.3     ``linf/automated_eps03``
``linf/automated_eps04``   linf   0.4     ``linf/automated_eps04``
``linf/manual_eps04``      linf   0.4     ``linf/manual_eps04``, ``linf/manual``,
                                          ``manual_eps04``; indices
                                          ``linf/manual_indexs.npy`` or
                                          ``manual_indexs.npy``
``l0/automated``           l0     --      ``l0/automated``, ``l0/automated_l0``,
                                          ``automated_l0``
=========================  =====  ======  ==============================================

Any other ``<stem>.npy`` + ``<stem>_labels.npy`` pair in the root or one folder below is
loaded too: its norm is the folder name (``linf``, ``l0``, ``l1``, ``l2``) or a token of
the stem, its radius is parsed from ``epsDD`` (``eps03`` -> 0.3), and its indices come
from ``<stem>_indexs.npy``, ``<first-token>_indexs.npy`` or ``indexs.npy`` (the first one
of matching length). Sets that are absent are simply not returned.

Pixel scale: uint8 images and float images with values above 1 are read as 0..255 and
divided by 255; float images within [0, 1] are taken as they are.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulations.mnist.data import ENV_VAR, data_root, load_mnist
from theory._validation import as_labels

__all__ = [
    "KNOWN_SETS",
    "PublishedSet",
    "find_published_dir",
    "load_npy",
    "load_published_examples",
    "published_indices",
]

#: canonical name -> (accepted stems, norm, radius, accepted index files).
KNOWN_SETS: dict[str, tuple[tuple[str, ...], str, float | None, tuple[str, ...]]] = {
    "linf/automated_eps03": (("linf/automated_eps03",), "linf", 0.3, ("indexs.npy",)),
    "linf/automated_eps04": (("linf/automated_eps04",), "linf", 0.4, ("indexs.npy",)),
    "linf/manual_eps04": (
        ("linf/manual_eps04", "linf/manual", "manual_eps04"),
        "linf",
        0.4,
        ("linf/manual_indexs.npy", "manual_indexs.npy"),
    ),
    "l0/automated": (
        ("l0/automated", "l0/automated_l0", "automated_l0"),
        "l0",
        None,
        ("indexs.npy", "l0/indexs.npy"),
    ),
}

_NORMS = ("linf", "l0", "l1", "l2")
_N_TEST = 10000
_HOW_TO_POINT = (
    f"point the package at the release with --published-dir DIR or {ENV_VAR}=DIR "
    "(a folder holding excessive-invariance/ or the files themselves)"
)


@dataclass(frozen=True)
class PublishedSet:
    """One published set of invariance examples with its human labels.

    Attributes
    ----------
    name : str
        Canonical name, e.g. ``"linf/automated_eps03"``.
    norm : str or None
        ``"linf"``, ``"l0"``, ... (None when it cannot be told from the file name).
    radius : float or None
        The stated radius eps (None when not stated, e.g. the l0 set).
    source_indices : ndarray (n,) int64
        Indices into the MNIST test set of the source images.
    sources, examples : ndarray (n, 28, 28) float64 in [0, 1]
        Source test images and the published invariance examples.
    original_labels, human_labels : ndarray (n,) int64
        MNIST label of the source, and the label a human assigned to the example.
    distortion : ndarray (n,) float64
        Distance from each example to its source in ``norm`` (linf when unknown;
        l0 counts changed pixels).
    violations : ndarray of int
        Positions ``i`` whose distortion exceeds ``radius + tol`` (empty without radius).
    tol : float
        Tolerance used for ``violations``.
    files : tuple of str
        The files the set was read from.
    """

    name: str
    norm: str | None
    radius: float | None
    source_indices: np.ndarray
    sources: np.ndarray
    examples: np.ndarray
    original_labels: np.ndarray
    human_labels: np.ndarray
    distortion: np.ndarray
    violations: np.ndarray
    tol: float
    files: tuple[str, ...]

    @property
    def n(self) -> int:
        """Number of examples."""
        return int(self.source_indices.shape[0])

    @property
    def human_changed(self) -> np.ndarray:
        """Boolean mask: the human label differs from the original label."""
        return self.human_labels != self.original_labels


def find_published_dir(root: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Folder holding the release (``indexs.npy`` and the set folders), and its origin.

    Looks in ``root`` (or ``$INVARIANCE_TRADEOFFS_DATA``, or the cache directory), in its
    ``excessive-invariance/`` or ``invariance_examples/`` subfolder or in itself.

    Raises
    ------
    FileNotFoundError
        No ``indexs.npy`` found; the message says where it looked.
    """
    base, origin = data_root(root)
    tried = [base / "excessive-invariance", base / "invariance_examples", base]
    for folder in tried:
        if (folder / "indexs.npy").is_file() or (folder / "linf" / "manual_indexs.npy").is_file():
            return folder, origin
    raise FileNotFoundError(
        f"published invariance examples not found: no indexs.npy in "
        f"{', '.join(str(t) for t in tried)} (from the {origin}); {_HOW_TO_POINT}"
    )


def load_npy(path: Path) -> np.ndarray:
    """``numpy.load`` with ``allow_pickle=False``; errors name the file."""
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc


def published_indices(root: str | os.PathLike | None = None) -> np.ndarray:
    """The 100 MNIST test indices of the published automated sets (``indexs.npy``)."""
    folder, _ = find_published_dir(root)
    return _indices(folder / "indexs.npy", None)


def _indices(path: Path, n: int | None) -> np.ndarray:
    idx = load_npy(path)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{path} must hold a 1-D integer array, got {idx.dtype} {idx.shape}")
    if n is not None and idx.shape[0] != n:
        raise ValueError(f"{path} holds {idx.shape[0]} indices, expected {n}")
    if idx.size and (idx.min() < 0 or idx.max() >= _N_TEST):
        raise ValueError(f"{path} has MNIST test indices outside 0..{_N_TEST - 1}")
    return idx.astype(np.int64)


def _to_unit(images: np.ndarray, path: Path) -> np.ndarray:
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{path} must have shape (n, 28, 28), got {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float64) / 255.0
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(f"{path} must hold uint8 or float images, got dtype {images.dtype}")
    out = images.astype(np.float64)
    if not np.all(np.isfinite(out)) or out.min() < 0 or out.max() > 255:
        raise ValueError(f"{path} has pixel values outside [0, 255] or NaN")
    return out / 255.0 if out.max() > 1 else out


def _distortion(examples: np.ndarray, sources: np.ndarray, norm: str | None) -> np.ndarray:
    diff = (examples - sources).reshape(len(examples), -1)
    if norm == "l0":
        return np.count_nonzero(np.abs(diff) > 1e-12, axis=1).astype(np.float64)
    order = {"l1": 1, "l2": 2}.get(norm or "", np.inf)
    return np.linalg.norm(diff, ord=order, axis=1)


def _parse_radius(stem: str) -> float | None:
    match = re.search(r"eps(\d+)", stem)
    if match is None:
        return None
    digits = match.group(1)
    return float(f"{digits[0]}.{digits[1:] or 0}")


def _guess_norm(stem: str) -> str | None:
    parts = Path(stem).parts
    if len(parts) > 1 and parts[-2] in _NORMS:
        return parts[-2]
    tokens = re.split(r"[_\-/]", stem)
    return next((t for t in tokens if t in _NORMS), None)


def _discover(folder: Path) -> list[str]:
    """All stems ``s`` (relative, without .npy) with ``s.npy`` and ``s_labels.npy``."""
    stems = []
    for sub in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        for f in sorted(sub.glob("*_labels.npy")):
            image_file = f.with_name(f.name[: -len("_labels.npy")] + ".npy")
            if image_file.is_file():
                stems.append(image_file.relative_to(folder).with_suffix("").as_posix())
    return stems


def _index_candidates(stem: str) -> list[str]:
    path = Path(stem)
    first = path.name.split("_")[0]
    cands = [f"{stem}_indexs.npy", (path.parent / f"{first}_indexs.npy").as_posix()]
    cands += [f"{first}_indexs.npy", (path.parent / "indexs.npy").as_posix(), "indexs.npy"]
    return list(dict.fromkeys(c.removeprefix("./") for c in cands))


def _load_set(
    folder: Path,
    name: str,
    stem: str,
    norm: str | None,
    radius: float | None,
    index_files: list[str],
    test_images: np.ndarray,
    test_labels: np.ndarray,
    tol: float,
) -> PublishedSet | None:
    image_path, label_path = folder / f"{stem}.npy", folder / f"{stem}_labels.npy"
    raw = load_npy(image_path)
    examples = _to_unit(raw, image_path)
    n = examples.shape[0]
    labels_raw = load_npy(label_path)
    try:
        human = as_labels(labels_raw, str(label_path), n_classes=10, length=n)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from exc
    for cand in index_files:
        path = folder / cand
        if path.is_file() and load_npy(path).shape == (n,):
            idx = _indices(path, n)
            break
    else:
        warnings.warn(
            f"published set {name}: no index file of length {n} among {index_files}; skipped",
            stacklevel=3,
        )
        return None
    sources = test_images[idx].astype(np.float64) / 255.0
    distortion = _distortion(examples, sources, norm)
    if radius is None:
        violations = np.zeros(0, dtype=np.int64)
    else:
        violations = np.flatnonzero(distortion > radius + tol)
    return PublishedSet(
        name=name,
        norm=norm,
        radius=radius,
        source_indices=idx,
        sources=sources,
        examples=examples,
        original_labels=test_labels[idx].astype(np.int64),
        human_labels=human,
        distortion=distortion,
        violations=violations,
        tol=tol,
        files=(str(image_path), str(label_path), str(path)),
    )


def load_published_examples(
    root: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    tol: float = 1e-6,
) -> dict[str, PublishedSet]:
    """Load every published invariance-example set found under ``root``.

    Parameters
    ----------
    root : path, optional
        The release folder (or a root holding ``excessive-invariance/``). Defaults to
        ``$INVARIANCE_TRADEOFFS_DATA``, then the cache directory.
    data_dir : path, optional
        Where MNIST is found (for the source images and original labels).
    tol : float
        Slack on the radius (in [0, 1] pixel units) when counting violations. The
        default only absorbs float rounding; uint8 storage can add up to 1/255.

    Returns
    -------
    dict of str to PublishedSet
        Keyed by canonical set name, known sets first. Absent sets are not returned.

    Raises
    ------
    FileNotFoundError
        The release folder or MNIST is not found.
    ValueError, TypeError
        A file has the wrong shape, dtype, label or index range (the message names it).
    """
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not tol >= 0:
        raise ValueError(f"tol must be a number >= 0, got {tol!r}")
    folder, _ = find_published_dir(root)
    test = load_mnist("test", data_dir)
    found: dict[str, PublishedSet] = {}
    used: set[str] = set()
    jobs = []
    for name, (stems, norm, radius, index_files) in KNOWN_SETS.items():
        stem = next((s for s in stems if (folder / f"{s}.npy").is_file()), None)
        if stem is not None and (folder / f"{stem}_labels.npy").is_file():
            jobs.append((name, stem, norm, radius, list(index_files)))
            used.add(stem)
    for stem in _discover(folder):
        if stem not in used:
            jobs.append(
                (stem, stem, _guess_norm(stem), _parse_radius(stem), _index_candidates(stem))
            )
    for name, stem, norm, radius, index_files in jobs:
        pset = _load_set(
            folder, name, stem, norm, radius, index_files, test.images, test.labels, tol
        )
        if pset is not None:
            found[name] = pset
    return found

"""The authors' released invariance examples (Tramer et al., ICML 2020), with human labels.

The release (``invariance_examples/`` in the authors' repository, located and verified by
:mod:`simulations.data.release`) stores each set as a pair ``<name>.npy`` (N, 28, 28)
images + ``<name>_labels.npy`` (N,) human labels, and the MNIST **test** indices of the
source images in ``indexs.npy`` (manual set: ``linf/manual_indexs.npy``). Known sets:

=========================  =====  ======  ==============================================
set                        norm   radius  files (paths under ``invariance_examples/``)
=========================  =====  ======  ==============================================
``linf/automated_eps03``   linf   0.3     ``linf/automated_eps03[_labels].npy``,
                                          ``indexs.npy``
``linf/automated_eps04``   linf   0.4     ``linf/automated_eps04[_labels].npy``,
                                          ``indexs.npy``
``linf/manual_eps04``      linf   0.4     ``linf/manual_eps04[_labels].npy``,
                                          ``linf/manual_indexs.npy``
``l0/automated``           l0     --      ``l0/automated[_labels].npy``, ``indexs.npy``
=========================  =====  ======  ==============================================

Their files are checked against the release's SHA256 before they are read. Any other
``<stem>.npy`` + ``<stem>_labels.npy`` pair in the release folder or one folder below is
loaded too (unverified: it is not part of the release): its norm is the folder name
(``linf``, ``l0``, ``l1``, ``l2``) or a token of the stem, its radius is parsed from
``epsDD`` (``eps03`` -> 0.3), and its indices come from ``<stem>_indexs.npy``,
``<first-token>_indexs.npy`` or ``indexs.npy`` (the first one of matching length).

Pixel scale: uint8 images and float images with values above 1 are read as 0..255 and
divided by 255; float images within [0, 1] are taken as they are.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from invariance_tradeoffs.simulations.data.mnist import load_mnist
from invariance_tradeoffs.simulations.data.release import (
    EXAMPLES_PREFIX,
    ReleaseFolder,
    fetch_release,
    find_release,
)
from invariance_tradeoffs.theory.validation import as_labels

__all__ = [
    "KNOWN_SETS",
    "KnownSet",
    "PublishedSet",
    "PublishedSets",
    "load_npy",
    "load_published_examples",
    "published_indices",
    "release_name",
]


class KnownSet(NamedTuple):
    """A set of the release: its files (release paths), norm and radius."""

    images: str
    labels: str
    indices: str
    norm: str
    radius: float | None


def _known(stem: str, norm: str, radius: float | None, indices: str = "indexs.npy") -> KnownSet:
    return KnownSet(f"{EXAMPLES_PREFIX}{stem}.npy", f"{EXAMPLES_PREFIX}{stem}_labels.npy",
                    f"{EXAMPLES_PREFIX}{indices}", norm, radius)


#: canonical name -> its files in the release, norm and radius.
KNOWN_SETS: dict[str, KnownSet] = {
    "linf/automated_eps03": _known("linf/automated_eps03", "linf", 0.3),
    "linf/automated_eps04": _known("linf/automated_eps04", "linf", 0.4),
    "linf/manual_eps04": _known("linf/manual_eps04", "linf", 0.4, "linf/manual_indexs.npy"),
    "l0/automated": _known("l0/automated", "l0", None),
}

_NORMS = ("linf", "l0", "l1", "l2")
_N_TEST = 10000


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


class PublishedSets(dict):
    """The published sets found (name -> :class:`PublishedSet`), and what is missing.

    A ``dict`` keyed by canonical set name (known sets first), with:

    Attributes
    ----------
    folder : Path
        The release folder the sets were read from.
    origin : str
        Where that folder came from (argument, environment variable or cache).
    missing : dict of str to str
        Known sets not loaded -> why (file missing, download failed).
    """

    def __init__(self, folder: Path, origin: str, missing: dict[str, str] | None = None):
        super().__init__()
        self.folder = folder
        self.origin = origin
        self.missing: dict[str, str] = dict(missing or {})


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """``numpy.load`` with ``allow_pickle=False``; errors name the file."""
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc


def _release(root: str | os.PathLike | None, download: bool | None,
             files: list[str]) -> tuple[ReleaseFolder, dict[str, str]]:
    """The release folder, after fetching missing ``files`` when downloading is on."""
    rel = find_release(root)
    failed: dict[str, str] = {}
    if any(f not in rel.present for f in files):
        if download is None:
            download = rel.origin == "cache directory"
        if download:
            report = fetch_release(root, files=[f for f in files if f not in rel.present],
                                   download=True)
            failed = report.failed
            rel = find_release(root)
    return rel, failed


def published_indices(root: str | os.PathLike | None = None, *,
                      download: bool | None = None) -> np.ndarray:
    """The 100 MNIST test indices of the published automated sets (``indexs.npy``).

    Fetched into the cache on first use when the release is looked up there.
    """
    relpath = KNOWN_SETS["linf/automated_eps03"].indices
    rel, _ = _release(root, download, [relpath])
    return _indices(rel.file(relpath), None)


def published_neighbours(root: str | os.PathLike | None = None, *,
                         download: bool | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The authors' aligned neighbours of the 100 published sources, verified.

    Returns
    -------
    neighbours : ndarray (100, 9, 28, 28) uint8
        ``linf/all_nns.npy``: per source, the aligned nearest training image of each
        other class.
    classes : ndarray (100, 9) int64
        ``linf/all_y_nns.npy``, checked to be valid labels 0..9.
    transforms : ndarray (100, 9, 3) float64
        ``linf/all_grids_nns.npy``: (shift-row, shift-col, rotation in degrees).
    """
    files = ["linf/all_nns.npy", "linf/all_y_nns.npy", "linf/all_grids_nns.npy"]
    rel, _ = _release(root, download, files)
    nns, ys, grids = (load_npy(rel.file(f)) for f in files)
    classes = as_labels(ys.reshape(-1), "linf/all_y_nns.npy", n_classes=10,
                        allow_reject=False).reshape(ys.shape)
    return nns, classes, grids


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


def _eps_token(eps: float) -> str:
    """``0.3 -> 'eps03'``, ``0.25 -> 'eps025'``: the release's spelling of a radius."""
    return "eps" + f"{eps:g}".replace(".", "")


def release_name(norm: str | None, eps: float | None, label: str = "study") -> str:
    """Name of a labelled set in the release format: ``<norm>/<label>[_eps<digits>]``.

    :func:`load_published_examples` reads the norm from the
    folder and the radius from ``epsDD`` back out of this name.

    >>> release_name("linf", 0.3)
    'linf/study_eps03'
    """
    stem = label if eps is None or "eps" in label else f"{label}_{_eps_token(eps)}"
    return f"{norm}/{stem}" if norm else stem


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


def _discover(folder: Path, rel: ReleaseFolder) -> list[tuple[Path, str]]:
    """Stems ``s`` (relative to ``folder``, without .npy) with ``s.npy`` and
    ``s_labels.npy`` that are not files of the release."""
    known = {p.resolve() for p in rel.present.values()}
    stems = []
    subs = [folder, *sorted(p for p in folder.iterdir()
                            if p.is_dir() and p.name != EXAMPLES_PREFIX.rstrip("/"))]
    for sub in subs:
        for f in sorted(sub.glob("*_labels.npy")):
            image_file = f.with_name(f.name[: -len("_labels.npy")] + ".npy")
            if image_file.is_file() and image_file.resolve() not in known:
                stems.append((folder, image_file.relative_to(folder).with_suffix("").as_posix()))
    return stems


def _index_candidates(stem: str) -> list[str]:
    path = Path(stem)
    first = path.name.split("_")[0]
    cands = [f"{stem}_indexs.npy", (path.parent / f"{first}_indexs.npy").as_posix()]
    cands += [f"{first}_indexs.npy", (path.parent / "indexs.npy").as_posix(), "indexs.npy"]
    return list(dict.fromkeys(c.removeprefix("./") for c in cands))


def _load_set(
    name: str,
    image_path: Path,
    label_path: Path,
    index_paths: list[Path],
    norm: str | None,
    radius: float | None,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    tol: float,
) -> PublishedSet | None:
    examples = _to_unit(load_npy(image_path), image_path)
    n = examples.shape[0]
    try:
        human = as_labels(load_npy(label_path), str(label_path), n_classes=10, length=n)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from exc
    for path in index_paths:
        if path.is_file() and load_npy(path).shape == (n,):
            idx = _indices(path, n)
            break
    else:
        warnings.warn(
            f"published set {name}: no index file of length {n} among "
            f"{[str(p) for p in index_paths]}; skipped",
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
    download: bool | None = None,
    verify: bool = True,
) -> PublishedSets:
    """Load every published invariance-example set found under ``root``.

    Parameters
    ----------
    root : path, optional
        A folder holding the release (its own layout or ``excessive-invariance/``; see
        :mod:`simulations.data.release`). Defaults to ``$INVARIANCE_TRADEOFFS_DATA``,
        then the cache directory.
    data_dir : path, optional
        Where MNIST is found (for the source images and original labels).
    tol : float
        Slack on the radius (in [0, 1] pixel units) when counting violations. The
        default only absorbs float rounding; uint8 storage can add up to 1/255.
    download : bool, optional
        Fetch the known sets' missing files (:func:`simulations.data.release.fetch_release`).
        Default: only when the release is looked up in the cache directory.
    verify : bool
        Check the known sets' files against the release's SHA256 (default). ``False``
        reads a modified copy laid out like the release (its numbers are then not the
        paper's).

    Returns
    -------
    PublishedSets
        A dict keyed by canonical set name, known sets first, with ``missing``: the known
        sets not found and why.

    Raises
    ------
    FileNotFoundError
        No set at all is found (the message says where it looked and how to fetch the
        release), or MNIST is not found.
    ValueError, TypeError
        A file fails its checksum, or has the wrong shape, dtype, label or index range
        (the message names it).
    """
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not tol >= 0:
        raise ValueError(f"tol must be a number >= 0, got {tol!r}")
    wanted = sorted({f for k in KNOWN_SETS.values() for f in (k.images, k.labels, k.indices)})
    rel, failed = _release(root, download, wanted)
    others = [s for d in rel.examples_dirs for s in _discover(d, rel)]
    if not rel.present and not others:
        raise FileNotFoundError(
            f"published invariance examples not found in {rel.path} (from the {rel.origin})"
            + (f"; download failed: {next(iter(failed.values()))}" if failed else "")
            + "; run `tradeoffs mnist download` to fetch the release, or point the package "
            "at a copy with --published-dir DIR or $INVARIANCE_TRADEOFFS_DATA")
    test = load_mnist("test", data_dir)
    found = PublishedSets(rel.path, rel.origin)
    for name, known in KNOWN_SETS.items():
        need = (known.images, known.labels, known.indices)
        absent = [f for f in need if f not in rel.present]
        if absent:
            fails = [failed[f] for f in absent if f in failed]
            found.missing[name] = fails[0] if fails else (
                "not in the release folder (" + ", ".join(
                    f.removeprefix(EXAMPLES_PREFIX) for f in absent) + ")")
            continue
        paths = [rel.file(f, verify=verify) for f in need]
        pset = _load_set(name, paths[0], paths[1], [paths[2]], known.norm, known.radius,
                         test.images, test.labels, tol)
        if pset is not None:
            found[name] = pset
    for folder, stem in others:
        pset = _load_set(stem, folder / f"{stem}.npy", folder / f"{stem}_labels.npy",
                         [folder / c for c in _index_candidates(stem)], _guess_norm(stem),
                         _parse_radius(stem), test.images, test.labels, tol)
        if pset is not None:
            found[stem] = pset
    return found

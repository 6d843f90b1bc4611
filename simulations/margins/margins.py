"""MNIST's oracle margin bounded from the data, 1-NN accuracy and separation.

A training image of another class is (up to label noise) an input of another oracle
class. So for a test image ``x`` and a distance ``d``, the distance from ``x`` to the
nearest training image labelled differently is an **upper bound on the oracle margin**
``r_O(x)`` -- conditional on the labels being right -- and the share of test images whose
bound exceeds ``eps`` is an **upper bound on the ceiling** ``P[r_O > eps]`` (the best
accuracy of any classifier robust at radius ``eps``), on the sample. The theorem's other
direction reads off the same arrays: a good distance makes 1-NN perfect, so 1-NN test
accuracy says how far each distance is from good.

Arrays (``.npz``, written atomically, computed in resumable parts with progress; see
:func:`nearest_arrays` and :func:`ti_arrays`), distances as exact integers:

* ``source_indices`` (m,), ``labels`` (m,), ``classes`` (C,);
* ``<metric>_distances`` (m, C) and ``<metric>_indices`` (m, C) for each metric of
  :data:`~invariance_tradeoffs.simulations.margins.search.METRICS` (l2 squared; l0 on
  images binarised at 128) and, in the transformation-invariant file, ``ti_l2_*``
  (squared l2 minimised over the 775 rotations and shifts of the query) and
  ``ti_l2_transforms`` (the transform's position in the grid).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from invariance_tradeoffs.simulations.io import CorruptFileError, atomic_savez, load_npz
from invariance_tradeoffs.simulations.margins.search import METRICS, ExactSearch, check_metrics
from invariance_tradeoffs.theory.results import Quantity, exact, proportion_estimate

__all__ = [
    "ALL_DISTANCES",
    "crossing_table",
    "load_arrays",
    "margin_summary",
    "nearest_arrays",
    "nearest_other",
    "one_nn",
    "separation_arrays",
    "share_above",
    "ti_arrays",
    "unit_distances",
]

#: The four exact distances and the transformation-invariant l2.
ALL_DISTANCES: tuple[str, ...] = (*METRICS, "ti_l2")

_REMEDY = "delete it and rerun `tradeoffs mnist margins` to rebuild it"


def _check_out(out_dir: str | os.PathLike) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {out_dir} exists and is not a directory")
    return out_dir


def _check_part_size(part_size: int) -> int:
    if isinstance(part_size, bool) or not isinstance(part_size, int | np.integer) \
            or part_size < 1:
        raise ValueError(f"part_size must be a positive integer, got {part_size!r}")
    return int(part_size)


def load_arrays(path: str | os.PathLike, names: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Read a margins array file (``allow_pickle=False``), checking ``names`` are present."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"margins file {path} does not exist; run "
                                "`tradeoffs mnist margins` first")
    arrays = load_npz(path, what="margins file", remedy=_REMEDY)
    missing = [k for k in ("source_indices", "labels", "classes", *names) if k not in arrays]
    if missing:
        raise CorruptFileError(path, f"no {', '.join(missing)} array", _REMEDY,
                               what="margins file")
    return arrays


def _finish(rows: dict, indices: np.ndarray, extra: dict, final: Path,
            parts_dir: Path) -> dict[str, np.ndarray]:
    keys = [k for k in rows[int(indices[0])] if k != "source_indices"]
    arrays = {"source_indices": indices, **extra,
              **{k: np.stack([rows[int(i)][k] for i in indices]) for k in keys}}
    atomic_savez(final, arrays, compress=True)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return arrays


def _resume(final: Path, indices: np.ndarray, names: Sequence[str]) -> dict | None:
    if not final.is_file():
        return None
    done = load_arrays(final, names)
    if not np.array_equal(done["source_indices"], indices):
        raise ValueError(f"{final} holds other images; delete it or choose another out_dir")
    return done


def nearest_arrays(
    queries: np.ndarray,
    query_labels: np.ndarray,
    search: ExactSearch,
    out_dir: str | os.PathLike,
    name: str,
    *,
    metrics: Sequence[str] = METRICS,
    part_size: int = 500,
    progress: bool = True,
    _separation: bool = False,
) -> tuple[dict[str, np.ndarray], Path]:
    """Exact nearest training image of every class for all ``queries``, saved resumably.

    Parameters
    ----------
    queries : ndarray (m, 28, 28) uint8
        E.g. the 10000 MNIST test images (or the training images, for separation).
    query_labels : ndarray (m,)
        Their labels.
    search : ExactSearch
        The training set.
    out_dir, name : path, str
        The result is ``<out_dir>/<name>.npz``; parts go to ``<out_dir>/<name>.parts/``
        (one checked part per ``part_size`` queries; an interrupted run resumes there).
    metrics : sequence of str
        Among :data:`~invariance_tradeoffs.simulations.margins.search.METRICS`.

    Returns
    -------
    arrays : dict
        See the module docstring.
    path : Path
    """
    from invariance_tradeoffs.simulations.margins.search import as_pixel_rows

    metrics = check_metrics(metrics)
    queries = as_pixel_rows(queries, "queries", search.d)
    labels = _check_labels(query_labels, len(queries), "query_labels")
    names = [f"{m}_{k}" for m in metrics for k in ("distances", "indices")]
    best = dict.fromkeys(metrics, np.iinfo(np.int64).max // 2)  # separation so far

    def compute(batch: np.ndarray) -> dict[str, np.ndarray]:
        own = search.classes[None, :] == labels[batch, None]
        caps = {m: np.where(own, 0, best[m] + 1) for m in metrics} if _separation else None
        res = search.nearest(queries[batch], metrics, below=caps)
        if _separation:
            for m, r in res.items():
                best[m] = min(best[m], int(np.where(own, best[m] + 1, r.distances).min()))
        return {"labels": labels[batch].astype(np.int64),
                **{f"{m}_distances": r.distances for m, r in res.items()},
                **{f"{m}_indices": r.indices for m, r in res.items()}}

    params = {"what": "separation" if _separation else "nearest", "metrics": list(metrics),
              "n_train": search.n, "queries_sha256": _digest(queries, labels)}
    return _resumable(compute, len(queries), out_dir, name, names, params, part_size,
                      progress, search.classes)


def separation_arrays(
    queries: np.ndarray,
    query_labels: np.ndarray,
    search: ExactSearch,
    out_dir: str | os.PathLike,
    name: str,
    *,
    metrics: Sequence[str] = METRICS,
    part_size: int = 2000,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], Path]:
    """Like :func:`nearest_arrays`, but only what the separation (the smallest distance
    between differently labelled images) needs: far cheaper under l1 and l-inf.

    Each batch searches only other classes (own-class columns: 0, index -1) and only
    distances below the smallest other-class distance found so far (plus one); larger
    ones are reported as that value with index -1. So the minimum over all rows of the
    other-class columns is the exact separation (every reported value is a real distance
    or a value above the final minimum), but rows are not each image's nearest other
    class. For the training set against itself (60000 x 60000).
    """
    return nearest_arrays(queries, query_labels, search, out_dir, name, metrics=metrics,
                          part_size=part_size, progress=progress, _separation=True)


def _check_labels(labels: object, n: int, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be integers of shape ({n},), got "
                         f"{labels.dtype} {labels.shape}")
    return labels


def _resumable(compute, n: int, out_dir: str | os.PathLike, name: str,
               names: Sequence[str], params: dict, part_size: int, progress: bool,
               classes: np.ndarray) -> tuple[dict[str, np.ndarray], Path]:
    """``<out_dir>/<name>.npz`` if already complete, else computed in checked parts."""
    from invariance_tradeoffs.simulations.attacks.runs import run_parts

    part_size = _check_part_size(part_size)
    out_dir = _check_out(out_dir)
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"name must be a plain file stem, got {name!r}")
    final = out_dir / f"{name}.npz"
    indices = np.arange(n, dtype=np.int64)
    done = _resume(final, indices, names)
    if done is not None:
        return done, final
    parts_dir = out_dir / f"{name}.parts"
    rows = run_parts(compute, indices, parts_dir, params, required=names,
                     batch_size=part_size, progress=progress, desc=name, unit="img")
    extra = {"classes": np.asarray(classes, np.int64)}
    return _finish(rows, indices, extra, final, parts_dir), final


def _digest(*arrays: np.ndarray) -> str:
    from invariance_tradeoffs.simulations.io import hash_arrays

    return hash_arrays(*arrays)


def ti_arrays(
    sources: np.ndarray,
    labels: np.ndarray,
    index,
    out_dir: str | os.PathLike,
    name: str,
    *,
    part_size: int = 50,
    progress: bool = True,
    grid: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], Path]:
    """Transformation-invariant l2: nearest training image of each class over the grid.

    ``d_TI(x, y) = min_g ||g(x) - y||_2`` over the transforms ``g`` of the l-inf attack's
    alignment grid (:data:`~invariance_tradeoffs.simulations.attacks.alignment.TRANSFORM_GRID`,
    775 rotations and shifts, uint8 images as stored); the search is
    :meth:`~invariance_tradeoffs.simulations.attacks.alignment.NeighbourIndex.nearest`
    (exact). Saved like :func:`nearest_arrays` (``ti_l2_distances`` squared, exact
    integers; ``ti_l2_indices``; ``ti_l2_transforms``: position in the grid).
    """
    from invariance_tradeoffs.simulations.attacks.alignment import (
        TRANSFORM_GRID,
        transformed_copies,
    )
    from invariance_tradeoffs.simulations.images import as_stored_pixels

    grid = TRANSFORM_GRID if grid is None else np.asarray(grid, dtype=np.float64)
    sources = as_stored_pixels(sources, "sources")
    labels = _check_labels(labels, len(sources), "labels")
    names = ["ti_l2_distances", "ti_l2_indices", "ti_l2_transforms"]

    def compute(batch: np.ndarray) -> dict[str, np.ndarray]:
        dist, idx, trans = [], [], []
        for i in batch:
            queries = transformed_copies(sources[i], grid).reshape(len(grid), -1)
            found = index.nearest(queries)
            dist.append([f[0] for f in found])
            trans.append([f[1] for f in found])
            idx.append([f[2] for f in found])
        return {"labels": labels[batch].astype(np.int64),
                "ti_l2_distances": np.asarray(dist, np.int64),
                "ti_l2_indices": np.asarray(idx, np.int64),
                "ti_l2_transforms": np.asarray(trans, np.int64)}

    params = {"what": "ti_l2", "grid_sha256": _digest(grid), "classes": index.classes.tolist(),
              "queries_sha256": _digest(sources, labels)}
    return _resumable(compute, len(sources), out_dir, name, names, params, part_size,
                      progress, index.classes)


# -- reading the arrays ---------------------------------------------------------------
def unit_distances(arrays: dict[str, np.ndarray], distance: str) -> np.ndarray:
    """``(m, C)`` distances of one kind rescaled to images in ``[0, 1]`` (l0: pixels)."""
    from invariance_tradeoffs.simulations.margins.search import to_unit

    if distance not in ALL_DISTANCES:
        raise ValueError(f"distance must be one of {ALL_DISTANCES}, got {distance!r}")
    key = f"{distance}_distances"
    if key not in arrays:
        raise ValueError(f"the arrays hold no {key!r} (computed: "
                         f"{sorted(k for k in arrays if k.endswith('_distances'))})")
    return to_unit(arrays[key], "l2" if distance == "ti_l2" else distance)


def _own(arrays: dict[str, np.ndarray]) -> np.ndarray:
    classes, labels = arrays["classes"], arrays["labels"]
    own = classes[None, :] == labels[:, None]
    if not np.all(own.sum(axis=1) == 1):
        raise ValueError("some labels are not among the training classes")
    return own


def nearest_other(arrays: dict[str, np.ndarray], distance: str) -> np.ndarray:
    """Per image: distance to the nearest training image of another class (in [0, 1]
    units) -- an upper bound on its oracle margin, if the labels are right."""
    dist = unit_distances(arrays, distance)
    return np.where(_own(arrays), np.inf, dist).min(axis=1)


def one_nn(arrays: dict[str, np.ndarray], distance: str) -> Quantity:
    """1-NN accuracy: share of images strictly nearer to their own class (ties: errors),
    with a Clopper-Pearson interval for the population.

    ``extra["ties"]`` counts images whose own class ties with another at the minimum and
    ``extra["if_ties_won"]`` is the accuracy were they all counted correct: any tie
    breaking gives an accuracy between ``value`` and it (l-inf distances tie often).
    """
    dist = unit_distances(arrays, distance)
    own_mask = _own(arrays)
    own = dist[own_mask]
    other = np.where(own_mask, np.inf, dist).min(axis=1)
    correct = int(np.sum(own < other))
    ties = int(np.sum(own == other))
    return proportion_estimate(
        correct, len(own), f"1-NN accuracy under {distance} against the MNIST training "
        "images (ties with another class count as errors)",
        ties=ties, if_ties_won=(correct + ties) / len(own))


def share_above(bounds: np.ndarray, eps: float, distance: str) -> Quantity:
    """Share of images whose margin bound exceeds ``eps``: an upper bound (on the sample,
    labels assumed right) on the ceiling ``P[r_O > eps]``; the interval is for the
    population."""
    bounds = np.asarray(bounds, dtype=np.float64)
    return proportion_estimate(
        int(np.sum(bounds > eps)), bounds.size,
        f"share of images whose nearest other-class training image under {distance} is "
        f"farther than {eps:g}: upper bound on P[r_O > eps] if the labels are right",
        side="upper", eps=float(eps))


def margin_summary(arrays: dict[str, np.ndarray], distance: str,
                   eps: Sequence[float] = ()) -> dict:
    """Separation (exact minimum, sample), quantiles of the margin bound, 1-NN accuracy and
    the bound's share above each ``eps``."""
    bounds = nearest_other(arrays, distance)
    i = int(np.argmin(bounds))
    return {
        "distance": distance,
        "n": int(bounds.size),
        "separation": exact(float(bounds[i]), f"smallest {distance} distance between an "
                            "image and a training image of another class (on these images)",
                            image=int(arrays["source_indices"][i])),
        "median_bound": float(np.median(bounds)),
        "one_nn": one_nn(arrays, distance),
        "share_above": {float(e): share_above(bounds, e, distance) for e in eps},
    }


def crossing_table(pset, arrays: dict[str, np.ndarray], distance: str) -> dict:
    """Which published invariance examples lie beyond their source's nearest other-class
    training image (under ``distance``), split by whether the human label changed.

    ``beyond[i]``: ``d(source, example) >= d(source, nearest other-class training image)``
    -- the attack travelled at least as far as the data's own separation at that source.
    """
    from invariance_tradeoffs.simulations.margins.search import BINARY_THRESHOLD

    pos = {int(s): k for k, s in enumerate(arrays["source_indices"])}
    missing = [int(s) for s in pset.source_indices if int(s) not in pos]
    if missing:
        raise ValueError(f"the arrays lack test images {missing[:5]} of {pset.name}")
    rows = np.array([pos[int(s)] for s in pset.source_indices])
    bound = nearest_other(arrays, distance)[rows]
    src = np.asarray(pset.sources, np.float64).reshape(pset.n, -1)
    ex = np.asarray(pset.examples, np.float64).reshape(pset.n, -1)
    if distance == "l0":
        on = BINARY_THRESHOLD / 255
        moved = np.count_nonzero((src >= on) != (ex >= on), axis=1).astype(np.float64)
    elif distance in ("l1", "l2", "linf"):
        diff = np.abs(src - ex)
        moved = {"l1": diff.sum(1), "l2": np.sqrt((diff**2).sum(1)),
                 "linf": diff.max(1)}[distance]
    else:
        raise ValueError(f"distance must be one of {METRICS}, got {distance!r}")
    beyond = moved >= bound
    changed = np.asarray(pset.human_changed, bool)
    return {
        "set": pset.name, "distance": distance, "n": int(pset.n),
        "beyond": int(beyond.sum()),
        "beyond_changed": int((beyond & changed).sum()),
        "beyond_unchanged": int((beyond & ~changed).sum()),
        "within_changed": int((~beyond & changed).sum()),
        "within_unchanged": int((~beyond & ~changed).sum()),
        "median_ratio": float(np.median(moved / bound)),
        "max_ratio": float(np.max(moved / bound)),
    }

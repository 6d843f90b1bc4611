"""Step 1 of the l-inf invariance attack: the aligned nearest training image of each class.

For a source test image ``x`` of class ``y`` and every other class ``c``, search the
grid of rotation + translation transforms of ``x`` for the training image of class
``c`` nearest in l2 to any transformed ``x``; keep the best (transform, neighbour) and
apply the inverse transform to the neighbour so that it is aligned with ``x``.

Conventions (the ones that reproduce the authors' released ``all_nns.npy`` exactly):

* images are transformed as stored (uint8) with ``scipy.ndimage.rotate(reshape=False)``
  followed by ``scipy.ndimage.shift`` (cubic spline, zero padding, uint8 output);
* the grid is the product (row shift, column shift, angle) of ``linspace(-3, 3, 5)``,
  ``linspace(-3, 3, 5)`` and ``linspace(-30, 30, 31)``, in that order (775 transforms);
* the training set is all 60000 MNIST training images, distances are squared l2 on the
  0..255 integer pixels (exact integers);
* ties are broken by the first transform in grid order, then the lowest training index;
* the neighbour is aligned by rotating by ``-angle`` then shifting by ``(-row, -col)``;
  :attr:`AlignmentResult.transforms` stores that inverse transform (as published).

Speed. The search is exact but avoids most of the 775 x 54000 x 784 work:

1. Transforms: each rotation is computed and spline-prefiltered once, then shifted 25
   times with ``prefilter=False`` -- the very code path ``scipy.ndimage.shift`` takes
   internally, so the result is bit-identical.
2. Lower bounds: with the top-``k`` principal directions ``V`` of a class (rows
   orthonormal) and the residual norm ``r(v) = ||v - V^T V v||``, the embedding
   ``e(v) = (V v, r(v))`` satisfies ``||e(q) - e(x)||^2 <= ||q - x||^2`` (Pythagoras on
   ``span V`` plus the reverse triangle inequality on its complement). These bounds for
   all (transform, training image) pairs are one float32 matrix product of width
   ``k + 3`` (norms folded in).
3. Exact search in order of increasing bound: training images are visited in chunks
   sorted by their smallest bound; a chunk's exact distances (float64 matrix product of
   0..255 integers, exact since every partial sum is an integer below 2**53) are
   computed only for the transforms whose bound can still beat the best distance found.
   The search stops when the next bound exceeds the best distance plus ``slack``, where
   ``slack`` is 2.5 times the worst-case float32 rounding error of the bound
   (``2 (gamma_{k+3} + 3u) (||q||^2 + ||x||^2)``, ``u = 2**-24``). Hence every pair whose
   exact distance is <= the minimum -- including exact ties -- is examined, and the
   result equals the exhaustive search (a test checks this against brute force).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from threadpoolctl import threadpool_limits

from invariance_tradeoffs.simulations.images import as_stored_pixels

__all__ = [
    "TRANSFORM_GRID",
    "AlignmentResult",
    "NeighbourIndex",
    "align_image",
    "align_neighbours",
    "align_neighbours_cached",
    "transform_grid",
    "transform_image",
    "transformed_copies",
]


def transform_grid(
    shifts: Sequence[float] | np.ndarray | None = None,
    angles: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Product grid of (row shift, column shift, angle in degrees), in that order.

    Defaults: shifts ``linspace(-3, 3, 5)`` per axis and angles ``linspace(-30, 30, 31)``,
    i.e. 775 transforms.
    """
    shifts = np.linspace(-3, 3, 5) if shifts is None else np.asarray(shifts, dtype=np.float64)
    angles = np.linspace(-30, 30, 31) if angles is None else np.asarray(angles, dtype=np.float64)
    if shifts.ndim != 1 or angles.ndim != 1 or not shifts.size or not angles.size:
        raise ValueError("shifts and angles must be non-empty 1-D sequences")
    r, c, a = np.meshgrid(shifts, shifts, angles, indexing="ij")
    return np.stack([r.ravel(), c.ravel(), a.ravel()], axis=1)


#: The default 775-transform grid (row shift, column shift, angle).
TRANSFORM_GRID: np.ndarray = transform_grid()
TRANSFORM_GRID.flags.writeable = False


def transform_image(
    image: np.ndarray, row_shift: float, col_shift: float, angle: float
) -> np.ndarray:
    """``shift(rotate(image, angle, reshape=False), (row_shift, col_shift))`` (scipy defaults)."""
    return ndimage.shift(ndimage.rotate(image, angle, reshape=False), (row_shift, col_shift))


def align_image(image: np.ndarray, transform: Sequence[float] | np.ndarray) -> np.ndarray:
    """Apply a stored inverse transform ``(row, col, angle)``: rotate by angle, then shift."""
    row, col, angle = (float(v) for v in transform)
    return transform_image(image, row, col, angle)


def _spline_coefficients(image: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Cubic-spline coefficients of ``rotate(image, a, reshape=False)`` for each angle.

    Exactly what ``scipy.ndimage.shift`` computes internally before interpolating
    (``spline_filter(..., output=float64, mode="constant")``; no pre-padding in that mode).
    """
    return np.stack(
        [
            ndimage.spline_filter(
                ndimage.rotate(image, float(a), reshape=False),
                3,
                output=np.float64,
                mode="constant",
            )
            for a in angles
        ]
    )


@functools.lru_cache(maxsize=64)
def _shift_operator(t: float, n: int) -> np.ndarray:
    """``(n, n)`` matrix of ``scipy.ndimage.shift`` by ``t`` on spline coefficients (1-D).

    Column ``k`` is the shift of the ``k``-th unit vector (``prefilter=False``, cubic,
    mode ``"constant"``), so the matrix follows scipy's boundary handling by construction.
    """
    eye = np.eye(n)
    return np.stack(
        [ndimage.shift(eye[k], t, prefilter=False, output=np.float64) for k in range(n)], axis=1
    )


@functools.lru_cache(maxsize=1)
def _separable_shift_ok() -> bool:
    """Check once that 2-D ``shift`` equals the product of the 1-D operators (to 1e-10)."""
    rng = np.random.default_rng(0)
    coef = rng.normal(scale=100.0, size=(28, 28))
    for t in ((-3.0, 1.5), (1.5, -1.5), (0.0, 3.0), (0.7, -2.2)):
        ref = ndimage.shift(coef, t, prefilter=False, output=np.float64)
        ours = _shift_operator(t[0], 28) @ coef @ _shift_operator(t[1], 28).T
        if not np.allclose(ref, ours, rtol=0, atol=1e-10):
            return False
    return True


# |computed - scipy's value| is below ~1e-12 (16-term sums of |coef| < 1e4 in float64);
# pixels whose interpolated value lies within this margin of a rounding boundary
# (k + 1/2) are recomputed with scipy itself so that the uint8 result is scipy's.
_ROUNDING_MARGIN = 1e-8


def transformed_copies(image: np.ndarray, grid: np.ndarray = TRANSFORM_GRID) -> np.ndarray:
    """All transforms of one image, shape ``(len(grid), 28, 28)``, same dtype as ``image``.

    Identical to ``[transform_image(image, *g) for g in grid]``. For uint8 images each
    distinct angle is rotated and spline-prefiltered once (with scipy); the shift, a
    separable linear map of the spline coefficients, is applied as two small matrix
    products whose matrices are scipy's own 1-D shifts of unit vectors; values are then
    rounded to uint8 as scipy does (``floor(v + 1/2)`` clipped to 0..255). Any image with
    a value within 1e-8 of a rounding boundary -- where float rounding differences
    could matter -- is recomputed with ``scipy.ndimage.shift``, as is everything when
    the image is not uint8 or the separability self-check fails.
    """
    image = np.asarray(image)
    grid = np.asarray(grid, dtype=np.float64)
    angles, angle_pos = np.unique(grid[:, 2], return_inverse=True)
    coeffs = _spline_coefficients(image, angles)
    out = np.empty((len(grid),) + image.shape, dtype=image.dtype)
    exact = np.ones(len(grid), dtype=bool)
    if image.dtype == np.uint8 and image.ndim == 2 and _separable_shift_ok():
        rows, row_pos = np.unique(grid[:, 0], return_inverse=True)
        cols, col_pos = np.unique(grid[:, 1], return_inverse=True)
        a_rows = np.stack([_shift_operator(float(t), image.shape[0]) for t in rows])
        a_cols = np.stack([_shift_operator(float(t), image.shape[1]) for t in cols])
        # values[g] = A_row[g] @ C[angle[g]] @ A_col[g]^T, as a few large matrix products
        n_a, h, w = coeffs.shape
        left = a_rows @ coeffs.transpose(1, 0, 2).reshape(h, n_a * w)  # (R, h, A*w)
        left = left.reshape(len(rows), h, n_a, w).transpose(2, 0, 1, 3).reshape(-1, w)
        full = (left @ a_cols.transpose(0, 2, 1)).reshape(len(cols), n_a, len(rows), h, w)
        values = full[col_pos, angle_pos, row_pos]
        values += 0.5
        rounded = np.floor(values)
        values -= rounded  # fractional part of value + 1/2: near 0 or 1 = near a boundary
        near = (values < _ROUNDING_MARGIN) | (values > 1 - _ROUNDING_MARGIN)
        exact = near.reshape(len(grid), -1).any(axis=1)
        np.clip(rounded, 0, 255, out=rounded)
        out[...] = rounded
    for i in np.flatnonzero(exact):
        ndimage.shift(coeffs[angle_pos[i]], grid[i, :2], output=out[i], prefilter=False)
    return out


def _gamma(n: int) -> float:
    u = 2.0**-24
    return n * u / (1 - n * u)


class NeighbourIndex:
    """The training set, split by class, with lower-bound embeddings for exact search.

    Parameters
    ----------
    images : ndarray (n, 28, 28) uint8
        Training images.
    labels : ndarray (n,)
        Their classes.
    n_components : int
        Number ``k`` of principal directions per class used for the lower bounds (only
        affects speed, never the result).
    chunk : int
        Training images per exact-distance block.
    """

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, *, n_components: int = 64, chunk: int = 128
    ) -> None:
        images = as_stored_pixels(images, "train_images")
        labels = np.asarray(labels)
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"train_labels must be integers of shape ({len(images)},), got {labels.shape}"
            )
        if isinstance(n_components, bool) or not 1 <= int(n_components) <= 784:
            raise ValueError(f"n_components must be in 1..784, got {n_components}")
        if int(chunk) < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.n_components = int(n_components)
        self.chunk = int(chunk)
        self.classes = np.unique(labels).astype(np.int64)
        flat = images.reshape(len(images), -1)
        k = self.n_components
        self._slack_factor = 2.5 * 2 * (_gamma(k + 3) + 3 * 2.0**-24)
        self._members, self._pixels, self._sqnorm = {}, {}, {}
        self._basis, self._emb = {}, {}
        for c in self.classes:
            members = np.flatnonzero(labels == c)
            x = flat[members]
            xd = x.astype(np.float64)
            sq = np.einsum("ij,ij->i", xd, xd)
            # Principal directions of the (uncentred) class, estimated on a subsample:
            # any orthonormal basis gives valid bounds, a good one gives tight bounds.
            sample = xd[:: max(1, len(xd) // 1500)]
            with threadpool_limits(1, user_api="blas"):  # small problems: threads only hurt
                if len(sample) < flat.shape[1]:
                    basis = np.linalg.svd(sample, full_matrices=False)[2][:k]
                else:
                    basis = np.linalg.eigh(sample.T @ sample)[1][:, ::-1][:, :k].T
            basis = np.ascontiguousarray(basis)
            proj = xd @ basis.T
            resid = np.sqrt(np.maximum(sq - np.einsum("ij,ij->i", proj, proj), 0.0))
            emb_sq = np.einsum("ij,ij->i", proj, proj) + resid**2
            emb = np.hstack([-2 * proj, -2 * resid[:, None], np.ones((len(x), 1)), emb_sq[:, None]])
            c = int(c)
            self._members[c], self._pixels[c], self._sqnorm[c] = members, x, sq
            self._basis[c], self._emb[c] = basis, emb.astype(np.float32)

    def nearest(
        self, queries: np.ndarray, classes: Sequence[int] | None = None
    ) -> list[tuple[int, int, int]]:
        """Exact nearest pair between ``queries`` and the training images of each class.

        Parameters
        ----------
        queries : ndarray (m, 784) uint8
            E.g. the transformed copies of a source image.
        classes : sequence of int, optional
            Classes searched (default: all).

        Returns
        -------
        list of (distance, query, train_index), one per class
            ``distance``: smallest squared l2 distance (0..255 pixels, an exact integer);
            ``query``: position of the query achieving it (first on ties);
            ``train_index``: index into the training set (lowest on ties for that query).
        """
        queries = np.asarray(queries)
        if queries.ndim != 2 or queries.shape[1] != 784 or queries.dtype != np.uint8:
            raise ValueError(
                f"queries must be uint8 of shape (m, 784), got {queries.dtype} {queries.shape}"
            )
        classes = [int(c) for c in (self.classes if classes is None else classes)]
        unknown = [c for c in classes if c not in self._members]
        if unknown:
            raise ValueError(f"no training image of class {unknown}")
        qd = queries.astype(np.float64)
        qq = np.einsum("ij,ij->i", qd, qd)
        # Projections on every searched class's basis in one matrix product.
        bases = np.concatenate([self._basis[c] for c in classes])
        proj_all = qd @ bases.T
        out, start = [], 0
        for c in classes:
            k = len(self._basis[c])
            out.append(self._nearest(qd, qq, proj_all[:, start : start + k], c))
            start += k
        return out

    def _nearest(
        self, qd: np.ndarray, qq: np.ndarray, proj: np.ndarray, cls: int
    ) -> tuple[int, int, int]:
        members, pixels, sq = self._members[cls], self._pixels[cls], self._sqnorm[cls]
        resid = np.sqrt(np.maximum(qq - np.einsum("ij,ij->i", proj, proj), 0.0))
        emb_sq = np.einsum("ij,ij->i", proj, proj) + resid**2
        a = np.hstack([proj, resid[:, None], emb_sq[:, None], np.ones((len(qd), 1))])
        # bound[j, i] <= ||q_i - x_j||^2 + slack (training images as rows: contiguous gathers)
        bound = self._emb[cls] @ a.astype(np.float32).T
        slack = self._slack_factor * (emb_sq.max() + sq.max())
        per_image = bound.min(axis=1)
        order = np.argsort(per_image, kind="stable")
        best = (math.inf, 0, 0)
        threshold = math.inf
        start, size = 0, max(1, min(32, self.chunk))
        while start < len(order) and per_image[order[start]] <= threshold:
            block = order[start : start + size]
            start, size = start + size, self.chunk
            block = block[per_image[block] <= threshold]
            if math.isinf(threshold):
                rows = np.arange(len(qd))
            else:
                rows = np.flatnonzero((bound[block] <= threshold).any(axis=0))
            xb = pixels[block].astype(np.float64)
            dist = qq[rows, None] + sq[None, block] - 2.0 * (qd[rows] @ xb.T)
            dmin = dist.min()
            if dmin <= best[0]:
                r, b = np.nonzero(dist == dmin)
                cand = min(zip(rows[r].tolist(), members[block[b]].tolist(), strict=True))
                best = min(best, (float(dmin), *cand))
                threshold = best[0] + slack
        return int(best[0]), int(best[1]), int(best[2])


@dataclass
class AlignmentResult:
    """Aligned nearest neighbours of each source, one per other class.

    Attributes
    ----------
    neighbours : ndarray (n, C-1, 28, 28) uint8
        Each neighbour after the inverse transform (aligned with the source).
    classes : ndarray (n, C-1) int64
        Class of each neighbour (all classes but the source's, ascending).
    train_indices : ndarray (n, C-1) int64
        Index of each neighbour in the training set.
    transforms : ndarray (n, C-1, 3) float64
        Inverse transform ``(row, col, angle)`` applied to the neighbour (the negated
        grid point at which the transformed source was nearest).
    distances : ndarray (n, C-1) int64
        Squared l2 distance between the transformed source and the neighbour.
    """

    neighbours: np.ndarray
    classes: np.ndarray
    train_indices: np.ndarray
    transforms: np.ndarray
    distances: np.ndarray


def _align_one(
    index: NeighbourIndex, source: np.ndarray, label: int, grid: np.ndarray
) -> tuple[np.ndarray, ...]:
    queries = transformed_copies(source, grid).reshape(len(grid), -1)
    others = [int(c) for c in index.classes if c != label]
    nbrs, tidx, trans, dists = [], [], [], []
    for c, (dist, q, t) in zip(others, index.nearest(queries, others), strict=True):
        inverse = -grid[q]
        pixels = index._pixels[c][np.searchsorted(index._members[c], t)]
        nbrs.append(align_image(pixels.reshape(28, 28), inverse))
        tidx.append(t)
        trans.append(inverse)
        dists.append(dist)
    return (
        np.stack(nbrs),
        np.asarray(others, dtype=np.int64),
        np.asarray(tidx, dtype=np.int64),
        np.stack(trans) + 0.0,  # normalise -0.0 to 0.0
        np.asarray(dists, dtype=np.int64),
    )


def _align_batch(
    index: NeighbourIndex,
    sources: np.ndarray,
    labels: np.ndarray,
    grid: np.ndarray,
    blas_threads: int | None,
) -> list[tuple[np.ndarray, ...]]:
    with threadpool_limits(blas_threads, user_api="blas"):
        return [_align_one(index, s, int(y), grid) for s, y in zip(sources, labels, strict=True)]


def _align_shared(index: NeighbourIndex, item: tuple) -> list[tuple[np.ndarray, ...]]:
    return _align_batch(index, *item)


def align_neighbours(
    sources: np.ndarray,
    labels: np.ndarray,
    train_images: np.ndarray | None = None,
    train_labels: np.ndarray | None = None,
    *,
    index: NeighbourIndex | None = None,
    grid: np.ndarray = TRANSFORM_GRID,
    n_components: int = 64,
    n_jobs: int | None = 1,
    blas_threads: int | None = 1,
    scheduler: object = None,
) -> AlignmentResult:
    """Aligned nearest training neighbour of every other class, for each source (step 1).

    Parameters
    ----------
    sources : ndarray (n, 28, 28) uint8
        Source images (MNIST test images as stored).
    labels : ndarray (n,)
        Their classes.
    train_images, train_labels : ndarray
        The training set searched (all 60000 images reproduce the published data).
        Not needed when ``index`` is given.
    index : NeighbourIndex, optional
        A prebuilt index (reuse it across calls).
    grid : ndarray (m, 3)
        Transforms ``(row shift, column shift, angle)``; default :data:`TRANSFORM_GRID`.
    n_components : int
        Lower-bound dimension when building the index (speed only).
    n_jobs : int or None
        joblib workers over sources (1: sequential; -1: all cores); sources are split
        into one batch per worker.
    blas_threads : int or None
        BLAS threads per worker during the search (None: the library default). The
        matrix products are small, so one thread per worker wastes least CPU; use
        ``n_jobs`` for parallelism.
    scheduler : str or Engine, optional
        Run on a Dask cluster instead (``"local:N"``, a scheduler address or an open
        :class:`~invariance_tradeoffs.simulations.engine.Engine`,
        :mod:`invariance_tradeoffs.simulations.engine`): the index is sent to every
        worker once, then batches of sources are tasks. Same result.

    Returns
    -------
    AlignmentResult
    """
    sources = as_stored_pixels(sources, "sources")
    labels = np.asarray(labels)
    if labels.shape != (len(sources),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({len(sources)},), got {labels.shape}")
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 2 or grid.shape[1] != 3 or not len(grid) or not np.all(np.isfinite(grid)):
        raise ValueError(f"grid must be a finite (m, 3) array, got shape {grid.shape}")
    if index is None:
        if train_images is None or train_labels is None:
            raise ValueError("give train_images and train_labels, or a prebuilt index")
        index = NeighbourIndex(train_images, train_labels, n_components=n_components)
    unknown = np.setdiff1d(labels, index.classes)
    if unknown.size:
        raise ValueError(f"labels has classes without training images: {unknown.tolist()}")
    if scheduler is not None:
        from invariance_tradeoffs.simulations.engine import session

        with session(scheduler) as engine:
            batches = np.array_split(np.arange(len(sources)), -(-len(sources) // 8))
            results = engine.map(_align_shared, [(sources[b], labels[b], grid, blas_threads)
                                                 for b in batches], engine.share(index))
        parts = [p for batch in results for p in batch]
    elif n_jobs in (1, None) or len(sources) == 1:
        parts = _align_batch(index, sources, labels, grid, blas_threads)
    else:
        from joblib import Parallel, delayed, effective_n_jobs

        n_batches = min(len(sources), effective_n_jobs(n_jobs))
        batches = np.array_split(np.arange(len(sources)), n_batches)
        results = Parallel(n_jobs=n_jobs)(
            delayed(_align_batch)(index, sources[b], labels[b], grid, blas_threads) for b in batches
        )
        parts = [p for batch in results for p in batch]
    return AlignmentResult(*(np.stack(p) for p in zip(*parts, strict=True)))


#: Version of the memo format of :func:`align_neighbours_cached` (part of its key).
_MEMO_VERSION = 1


def align_neighbours_cached(
    sources: np.ndarray,
    labels: np.ndarray,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    *,
    cache_dir: str | os.PathLike,
    n_jobs: int | None = 1,
    scheduler: object = None,
) -> AlignmentResult:
    """:func:`align_neighbours` against a whole training set, memoised on disk.

    The result is a pure function of the four arrays and the transform grid (exact
    search, deterministic ties), so it is stored under ``cache_dir`` as an ``.npz`` named
    by a SHA256 of them (written atomically with an integrity record, read with
    ``allow_pickle=False``); a second call with the same arrays reads it instead of
    searching again. A memo that differs from its record, is unreadable or lacks an array
    or a row is recomputed and replaced. ``n_jobs`` and ``scheduler`` (see
    :func:`align_neighbours`) change only the speed.
    """
    from invariance_tradeoffs.simulations.io import (
        CorruptFileError,
        atomic_savez,
        hash_arrays,
        load_npz,
        read_record,
        write_record,
    )

    arrays = [np.ascontiguousarray(a) for a in (sources, labels, train_images, train_labels)]
    key = hash_arrays(*arrays, TRANSFORM_GRID, extra=f"alignment-memo-{_MEMO_VERSION}")
    path = Path(cache_dir) / f"alignment-{key[:24]}.npz"
    names = ("neighbours", "classes", "train_indices", "transforms", "distances")
    if path.is_file():
        try:
            read_record(path)  # memos written before records: the zip CRCs only
            memo = load_npz(path)
            if all(np.shape(memo.get(k))[:1] == (len(arrays[0]),) for k in names):
                return AlignmentResult(*(memo[k] for k in names))
        except CorruptFileError:
            pass  # a damaged memo: recompute and replace it
    result = align_neighbours(*arrays, n_jobs=n_jobs, scheduler=scheduler)
    atomic_savez(path, {k: getattr(result, k) for k in names})
    write_record(path)
    return result

"""Exact nearest training image of every class, under l0, l1, l2 and l-inf, on uint8 pixels.

For each query image ``q`` and each class ``c`` of a training set, :class:`ExactSearch`
returns the distance from ``q`` to the nearest training image of class ``c`` and the
index of that image, for the distances

* ``"l0"``: number of differing pixels after binarising at half intensity (pixel >= 128);
* ``"l1"``, ``"l2"``, ``"linf"``: on the stored 0..255 integers.

Results are integers computed exactly (``l2`` as the *squared* distance), so "identical
to brute force" is an exact statement; :func:`to_unit` rescales them to images in
``[0, 1]`` (l1 / 255, sqrt(l2) / 255, linf / 255; l0 unchanged).

How it avoids brute force (each step exact):

1. **l2 and l0 by matrix products.** ``||q - x||^2 = ||q||^2 + ||x||^2 - 2 q.x`` with
   ``||x||^2 - 2 q.x`` from one float32 GEMM per batch of queries (``(-2q, 1)`` times
   ``(x, ||x||^2)``: no extra pass over the result). Binary dot products (l0) are
   integers <= d < 2**24, exact in float32. The uint8 products are not: the float32
   value ``D~`` of the squared distance ``D`` satisfies ``|D~ - D| <= E(q)`` with
   ``E(q) = 2.5 * 2 (gamma_{d+3} + 3u) (||q||^2 + max ||x||^2)``
   (:func:`gemm_error_bound`; ``u = 2**-24``, ``gamma_n = n u / (1 - n u)``; the standard
   dot-product bound on ``d + 1`` terms with ``2 q.x <= ||q||^2 + ||x||^2``, the
   rounding of ``||x||^2`` to float32 and of the final addition, times 2.5 for safety). So every
   minimiser has ``D~ <= min D~ + 2 E``; those few candidates get exact int64 distances.
2. **l1 from l2.** Pixel differences satisfy ``|v| <= 255``, so ``v^2 <= 255 |v|`` and
   ``||q - x||_1 >= ||q - x||_2^2 / 255`` (:func:`l1_lower_bound`) -- tight on MNIST,
   whose pixels are mostly 0 or 255; and ``min(a, b) <= sqrt(a b)`` gives
   ``||q - x||_1 >= sum q + sum x - 2 sqrt(q).sqrt(x)``, exact where either pixel is 0
   (a second GEMM, error bounded as above). The exact l1 distance of each class's
   l2-nearest image is an upper bound; only images whose two lower bounds do not exceed
   it are kept, then only those whose l1 distance between 2 x 2 block sums (a lower bound
   by the triangle inequality) does not exceed it either get exact l1 distances.
3. **l-inf by partial maxima with early abandoning** (no matrix product). Per query,
   the pixels are ordered most telling first (where many training images differ from the
   query by about 253 grey levels, the typical minimum). The running maximum of
   ``|q_p - x_p|`` over the pixels seen is a lower bound of the l-inf distance. After the
   first 32 pixels (all training images, uint8 in place), the 24 images of each class
   with the smallest running maximum get exact distances: per-class upper bounds ``U_c``.
   An image is dropped once its running maximum reaches ``U_c``; while many survive, more
   probes lower ``U_c``. Survivors of all pixels hold exact distances below ``U_c``; when
   none survive, a probed image attains the minimum.

Ties: the reported index is the lowest training index at the minimum distance, except
under l-inf when a probed image attains the minimum (then it is the lowest-indexed probed
one, which may not be the lowest-indexed minimiser). Distances never depend on tie
breaking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BINARY_THRESHOLD",
    "METRICS",
    "ExactSearch",
    "NearestByClass",
    "as_pixel_rows",
    "brute_force_nearest",
    "gemm_error_bound",
    "to_unit",
]

#: The distances computed (l0 on binarised images).
METRICS: tuple[str, ...] = ("l0", "l1", "l2", "linf")

#: A pixel is "on" for l0 when its value is >= 128 (intensity >= 0.5 after rounding).
BINARY_THRESHOLD = 128

_U = 2.0**-24

#: ``v^2 <= 255 |v|`` for pixel differences: the l1 lower bound ``D / 255``. Tests set it
#: lower (a broken bound) to show that the property test catches it.
_L1_PER_SQ = 255.0

#: The l1 square-root bound keeps pairs with bound <= upper + _L1_HELLINGER_SLACK (+ its
#: float32 error bound); 0 is exact (tests set -1, a broken bound).
_L1_HELLINGER_SLACK = 0

#: The l1 block-sum bound keeps pairs with bound <= upper + _L1_BLOCK_SLACK; 0 is exact
#: (tests set it to -1, a broken bound).
_L1_BLOCK_SLACK = 0

#: l-inf images are dropped when their partial maximum reaches ``bound - _LINF_SLACK``;
#: 0 is exact (tests set 1, a broken bound, to show that the property test catches it).
_LINF_SLACK = 0

#: Max-pooled blocks of the l-inf scan applied to all training images before gathering
#: survivors (then every pixel of the survivors).
_FIRST_BLOCKS = 16

#: Initial l-inf bound (no distance reaches it) and the typical other-class minimum that
#: orders the scan's pixels (speed only).
_NO_BOUND = 256
_TYPICAL_LINF = 253

#: While more l-inf candidates than this survive, probe _PROBES per class exactly.
_PROBE_ABOVE = 64
_PROBES = 24


def _gamma(n: int) -> float:
    return n * _U / (1 - n * _U)


def gemm_error_bound(query_term: np.ndarray, max_train_term: float, d: int) -> np.ndarray:
    """Bound on the float32 error of ``a(q) + b(x) - 2 f(q).f(x)`` from one GEMM of
    ``d + 1`` terms, where ``2 |f(q).f(x)| <= a(q) + b(x)``: the squared l2 distance
    (``f`` = pixels, ``a``, ``b`` = squared norms) and the l1 bound with ``f`` = square
    roots (``a``, ``b`` = pixel sums). See the module docs."""
    return 2.5 * 2 * (_gamma(d + 3) + 3 * _U) * (np.asarray(query_term, float)
                                                 + float(max_train_term))


def check_metrics(metrics: Iterable[str] | str, name: str = "metrics") -> tuple[str, ...]:
    """Validate a selection of :data:`METRICS` (order kept, duplicates refused)."""
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics or len(set(metrics)) != len(metrics):
        raise ValueError(f"{name} must be distinct names among {METRICS}, got {list(metrics)}")
    return metrics


def as_pixel_rows(images: object, name: str, d: int | None = None) -> np.ndarray:
    """``images`` as a contiguous ``(n, d)`` uint8 array (one flattened image per row)."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 pixel values 0..255, got dtype {arr.dtype}")
    if arr.ndim < 2 or arr.shape[0] == 0 or arr[0].size == 0:
        raise ValueError(f"{name} must be a non-empty batch of images (n, ...), got {arr.shape}")
    arr = np.ascontiguousarray(arr.reshape(len(arr), -1))
    if d is not None and arr.shape[1] != d:
        raise ValueError(f"{name} must have {d} pixels per image, got {arr.shape[1]}")
    return arr


def to_unit(raw: np.ndarray, metric: str) -> np.ndarray:
    """Rescale exact integer distances to images in ``[0, 1]`` (l2: ``sqrt(raw) / 255``)."""
    check_metrics([metric], "metric")
    raw = np.asarray(raw, dtype=np.float64)
    if metric == "l0":
        return raw
    return (np.sqrt(raw) if metric == "l2" else raw) / 255.0


@dataclass
class NearestByClass:
    """Nearest training image of every class for each query, under one distance.

    Attributes
    ----------
    metric : str
        One of :data:`METRICS`.
    classes : ndarray (C,) int64
        The training classes (columns).
    distances : ndarray (m, C) int64
        Exact distance (integer pixel units; squared for l2) to the nearest image of
        each class.
    indices : ndarray (m, C) int64
        Training index of an image at that distance (see the module docs for ties).
    """

    metric: str
    classes: np.ndarray
    distances: np.ndarray
    indices: np.ndarray


def _pair_distances(q: np.ndarray, x: np.ndarray, metric: str) -> np.ndarray:
    """Exact distances between rows ``q[k]`` and ``x[k]`` (uint8), int64."""
    if metric == "l0":
        return np.count_nonzero((q >= BINARY_THRESHOLD) != (x >= BINARY_THRESHOLD), axis=1)
    if metric in ("l1", "linf"):
        diff = np.maximum(q, x)
        diff -= np.minimum(q, x)  # |q - x| in uint8, without wider temporaries
        return diff.sum(axis=1, dtype=np.int64) if metric == "l1" else diff.max(axis=1)
    diff = np.abs(q.astype(np.int32) - x.astype(np.int32))
    if metric == "l2":
        return np.einsum("ij,ij->i", diff, diff, dtype=np.int64)
    return diff.max(axis=1).astype(np.int64)


def _pixel_blocks(d: int, side: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A partition of the pixels into blocks: (permutation, block starts in it).

    28 x 28 images: squares of ``side x side`` pixels; other sizes: runs of ``side**2``.
    """
    if d == 784 and 28 % side == 0:
        rows, cols = np.divmod(np.arange(d), 28)
        perm = np.argsort((rows // side) * (28 // side) + cols // side, kind="stable")
    else:
        perm = np.arange(d)
    return perm, np.arange(0, d, side * side)


def _count_ge(pixels_t: np.ndarray) -> np.ndarray:
    """``out[p, t]``: number of images with value >= t at pixel p (t = 0..256)."""
    hist = np.zeros((len(pixels_t), 257), np.int64)
    for p, row in enumerate(pixels_t):
        hist[p, :256] = np.bincount(row, minlength=256)
    return np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]


def _chunked_pairs(q: np.ndarray, rows: np.ndarray, x: np.ndarray, cols: np.ndarray,
                   metric: str, chunk: int = 4096) -> np.ndarray:
    """``_pair_distances(q[rows], x[cols])`` in chunks of pairs (bounded memory)."""
    out = np.empty(len(rows), np.int64)
    for s in range(0, len(rows), chunk):
        out[s:s + chunk] = _pair_distances(q[rows[s:s + chunk]], x[cols[s:s + chunk]], metric)
    return out


def _group_min(rows: np.ndarray, groups: np.ndarray, dist: np.ndarray, idx: np.ndarray,
               out_d: np.ndarray, out_i: np.ndarray) -> None:
    """For every (row, group) pair present: smallest ``dist``, then lowest ``idx``, into out."""
    if not len(rows):
        return
    order = np.lexsort((idx, dist, groups, rows))
    r, g = rows[order], groups[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (r[1:] != r[:-1]) | (g[1:] != g[:-1])
    sel = order[first]
    out_d[rows[sel], groups[sel]] = dist[sel]
    out_i[rows[sel], groups[sel]] = idx[sel]


class ExactSearch:
    """A training set prepared for exact nearest-neighbour search by class.

    Parameters
    ----------
    images : ndarray (n, ...) uint8
        Training images (flattened to rows), e.g. MNIST ``(60000, 28, 28)``.
    labels : ndarray (n,) int
        Their classes.
    batch : int
        Queries per matrix product (memory: about ``12 n batch`` bytes).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> train = rng.integers(0, 256, (50, 16), dtype=np.uint8)
    >>> search = ExactSearch(train, np.arange(50) % 3)
    >>> res = search.nearest(train[:2], ["linf"])["linf"]
    >>> int(res.distances[0, 0]), int(res.indices[0, 0])  # the query is training image 0
    (0, 0)
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, batch: int = 256) -> None:
        x = as_pixel_rows(images, "train_images")
        labels = np.asarray(labels)
        if labels.shape != (len(x),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"train_labels must be integers of shape ({len(x)},), got "
                f"{labels.dtype} {labels.shape}")
        if isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        self.batch = int(batch)
        self.n, self.d = x.shape
        # Training images sorted by class (stable: original order within a class), so
        # that a class is a contiguous block of columns.
        self.order = np.argsort(labels, kind="stable").astype(np.int64)
        sorted_labels = labels[self.order].astype(np.int64)
        self.classes, self.starts = np.unique(sorted_labels, return_index=True)
        self.col_class = np.searchsorted(self.classes, sorted_labels)
        self._class_sizes = np.diff([*self.starts, len(sorted_labels)])
        self.pixels = x[self.order]
        self.pixels_t = np.ascontiguousarray(self.pixels.T)  # pixel-major, for l-inf scans
        sq = np.einsum("ij,ij->i", self.pixels.astype(np.int64), self.pixels.astype(np.int64))
        sums = self.pixels.sum(axis=1, dtype=np.int64)
        self._summax = float(sums.max())
        self._sqrt_f32_sum = np.hstack([np.sqrt(self.pixels.astype(np.float64)),
                                        sums[:, None]]).astype(np.float32)  # (sqrt x, sum x)
        self._f32_sq = np.hstack([self.pixels.astype(np.float32),
                                  sq.astype(np.float32)[:, None]])  # (x, ||x||^2)
        self._sqmax = float(sq.max())
        on = self.pixels >= BINARY_THRESHOLD
        self._bin = on.astype(np.float32)
        self._bin_sum = on.sum(axis=1).astype(np.float32)
        # Max-pooled images for the l-inf scan's first stage: for any pixel block B,
        # max_B |q - x| >= |max_B q - max_B x| (the maximum is 1-Lipschitz), so pooled
        # differences are lower bounds that test 16 pixels at once.
        self._perm, self._pool_starts = _pixel_blocks(self.d)
        self.pooled_t = np.ascontiguousarray(
            np.maximum.reduceat(self.pixels[:, self._perm], self._pool_starts, axis=1).T)
        # Sums over 2 x 2 blocks for the l1 search's second bound (values <= 1020: int16).
        self._sum_perm, self._sum_starts = _pixel_blocks(self.d, side=2)
        self.block_sums = np.add.reduceat(self.pixels[:, self._sum_perm].astype(np.int16),
                                          self._sum_starts, axis=1)
        # Statistics that order the scan (speed only, never the result).
        self._count_ge = _count_ge(self.pixels_t)
        self._pool_count_ge = _count_ge(self.pooled_t)

    # -- public ---------------------------------------------------------------------
    def nearest(self, queries: np.ndarray, metrics: Sequence[str] = METRICS, *,
                below: dict[str, np.ndarray] | None = None,
                progress: Callable[[int], None] | None = None) -> dict[str, NearestByClass]:
        """Exact nearest training image of every class, for each query and metric.

        Parameters
        ----------
        queries : ndarray (m, ...) uint8
            Query images with as many pixels as the training images.
        metrics : sequence of str
            Among :data:`METRICS`.
        below : dict metric -> ndarray (m, C) of int, optional
            Only distances strictly below ``below[metric][i, c]`` are wanted: where the
            nearest image of class ``c`` is not below it, the distance is reported as that
            value and the index as -1. Far cheaper for l1 and l-inf when the values are
            small (e.g. a separation: 0 for the query's own class, the smallest distance
            found so far for the others).
        progress : callable, optional
            Called with the number of queries finished after each batch.

        Returns
        -------
        dict metric -> NearestByClass
        """
        metrics = check_metrics(metrics)
        q = as_pixel_rows(queries, "queries", self.d)
        m, n_c = len(q), len(self.classes)
        caps = self._check_below(below or {}, metrics, (m, n_c))
        out = {k: (np.empty((m, n_c), np.int64), np.empty((m, n_c), np.int64)) for k in metrics}
        for start in range(0, m, self.batch):
            sl = slice(start, min(m, start + self.batch))
            self._batch(q[sl], metrics, {k: (d[sl], i[sl]) for k, (d, i) in out.items()},
                        {k: c[sl] for k, c in caps.items()})
            if progress is not None:
                progress(sl.stop - sl.start)
        for k, cap in caps.items():
            d, i = out[k]
            hit = d >= cap
            d[hit], i[hit] = cap[hit], -1
        return {k: NearestByClass(k, self.classes.copy(), d,
                                  np.where(i < 0, -1, self.order[np.maximum(i, 0)]))
                for k, (d, i) in out.items()}

    @staticmethod
    def _check_below(below: dict, metrics: tuple[str, ...], shape: tuple[int, int]) -> dict:
        if not isinstance(below, dict):
            raise TypeError(f"below must be a dict metric -> array, got {type(below).__name__}")
        unknown = [k for k in below if k not in metrics]
        if unknown:
            raise ValueError(f"below has metrics {unknown} not among metrics {list(metrics)}")
        caps = {}
        for k, v in below.items():
            v = np.asarray(v)
            if v.shape != shape or not np.issubdtype(v.dtype, np.integer) or (v < 0).any():
                raise ValueError(f"below[{k!r}] must be non-negative integers of shape "
                                 f"{shape}, got {v.dtype} {v.shape}")
            caps[k] = v.astype(np.int64)
        return caps

    # -- internals --------------------------------------------------------------------
    def _batch(self, q: np.ndarray, metrics: tuple[str, ...], out: dict, caps: dict) -> None:
        if "l0" in metrics:
            self._l0(q, *out["l0"])
        if "linf" in metrics:  # needs no matrix product
            self._linf(q, *out["linf"], caps.get("linf"))
        if not {"l1", "l2"} & set(metrics):
            return
        if "l2" in metrics:
            l2_out = out["l2"]
        else:
            l2_out = (np.empty_like(out[metrics[0]][0]), np.empty_like(out[metrics[0]][0]))
        approx, err = self._l2(q, *l2_out, verify="l2" in metrics)
        # each class's (approximately, without l2 asked for) l2-nearest image: any image
        # gives a valid l1 upper bound, a near one a tight bound
        top = l2_out[1][:, :, None]
        if "l1" in metrics:
            self._l1(q, approx, err, top, *out["l1"], caps.get("l1"))

    def _class_min(self, dist: np.ndarray) -> np.ndarray:
        return np.minimum.reduceat(dist, self.starts, axis=1)

    def _blocks(self) -> list[slice]:
        bounds = [*self.starts, self.n]
        return [slice(bounds[c], bounds[c + 1]) for c in range(len(self.classes))]

    def _l0(self, q: np.ndarray, out_d: np.ndarray, out_i: np.ndarray) -> None:
        on = q >= BINARY_THRESHOLD
        ham = on.astype(np.float32) @ self._bin.T  # integers <= d: exact
        ham *= -2
        ham += self._bin_sum
        ham += on.sum(axis=1).astype(np.float32)[:, None]
        for c, block in enumerate(self._blocks()):
            j = ham[:, block].argmin(axis=1)  # first minimum = lowest training index
            out_d[:, c] = ham[np.arange(len(q)), block.start + j].astype(np.int64)
            out_i[:, c] = block.start + j

    def _l2(self, q: np.ndarray, out_d: np.ndarray, out_i: np.ndarray, verify: bool = True):
        qsq = np.einsum("ij,ij->i", q.astype(np.int64), q.astype(np.int64))
        # one GEMM gives ||x||^2 - 2 q.x (the factor -2 is exact, the norms ride along as
        # an extra coordinate); the error bound covers its d + 1 terms
        lhs = np.empty((len(q), self.d + 1), np.float32)
        lhs[:, :-1] = q
        lhs[:, :-1] *= -2
        lhs[:, -1] = 1
        approx = lhs @ self._f32_sq.T
        approx += qsq.astype(np.float32)[:, None]
        err = gemm_error_bound(qsq, self._sqmax, self.d)
        if not verify:  # only the float32 nearest image of each class is wanted
            for c, block in enumerate(self._blocks()):
                out_i[:, c] = block.start + approx[:, block].argmin(axis=1)
            return approx, err
        limit = self._class_min(approx) + 2 * err[:, None]
        rows, cols = self._below(approx, limit)
        exact = _chunked_pairs(q, rows, self.pixels, cols, "l2")
        _group_min(rows, self.col_class[cols], exact, cols, out_d, out_i)
        return approx, err

    def _below(self, values: np.ndarray, limit: np.ndarray,
               *more: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) pairs with ``values <= limit[row, class(column)]`` (and likewise
        for each further (values, limit) pair in ``more``)."""
        rows, cols = [], []
        tests = [(values, limit), *zip(more[::2], more[1::2], strict=True)]
        for c, block in enumerate(self._blocks()):
            mask = tests[0][0][:, block] <= tests[0][1][:, c:c + 1]
            for v, lim in tests[1:]:
                mask &= v[:, block] <= lim[:, c:c + 1]
            r, j = np.nonzero(mask)
            rows.append(r)
            cols.append(j + block.start)
        return np.concatenate(rows), np.concatenate(cols)

    def _upper(self, q: np.ndarray, cols: np.ndarray, metric: str):
        """Exact ``metric`` distances to the columns ``cols[i, c, :]``: (min, its column)."""
        n_q, n_c, k = cols.shape
        rows = np.repeat(np.arange(n_q), n_c * k)
        dist = _chunked_pairs(q, rows, self.pixels, cols.ravel(), metric).reshape(cols.shape)
        best_d = np.empty((n_q, n_c), np.int64)
        best_i = np.empty((n_q, n_c), np.int64)
        groups = np.tile(np.repeat(np.arange(n_c), k), n_q)
        _group_min(rows, groups, dist.ravel(), cols.ravel(), best_d, best_i)
        return best_d, best_i

    def _l1(self, q: np.ndarray, approx: np.ndarray, err: np.ndarray, top: np.ndarray,
            out_d: np.ndarray, out_i: np.ndarray, cap: np.ndarray | None) -> None:
        upper, _ = self._upper(q, top, "l1")
        out_d[...], out_i[...] = np.iinfo(np.int64).max, -1  # (always overwritten if exact)
        if cap is not None:  # only distances below the cap matter: nothing found = the cap
            upper = np.minimum(upper, cap - 1)
            out_d[...] = cap
        # candidates: lower bound (D~ - E) / 255 <= upper, i.e. D~ <= 255 upper + E
        # (float32 limit rounded up, so that no candidate is lost to rounding)
        limit = np.nextafter((_L1_PER_SQ * upper + err[:, None]).astype(np.float32), np.inf)
        # and min(a, b) <= sqrt(a b): ||q - x||_1 >= sum q + sum x - 2 sqrt(q).sqrt(x)
        # (exact where a pixel is 0 in either image, where the bound above is weakest)
        qsum = q.sum(axis=1, dtype=np.int64)
        lhs = np.empty((len(q), self.d + 1), np.float32)
        lhs[:, :-1] = np.sqrt(q.astype(np.float64))
        lhs[:, :-1] *= -2
        lhs[:, -1] = 1
        hell = lhs @ self._sqrt_f32_sum.T
        hell += qsum.astype(np.float32)[:, None]
        h_err = gemm_error_bound(qsum, self._summax, self.d)
        h_limit = np.nextafter((upper + _L1_HELLINGER_SLACK + h_err[:, None]).astype(np.float32),
                               np.inf)
        rows, cols = self._below(approx, limit, hell, h_limit)
        # second bound, on those pairs: l1 of the 2 x 2 block sums (triangle inequality)
        q_sums = np.add.reduceat(q[:, self._sum_perm].astype(np.int16), self._sum_starts,
                                 axis=1)
        keep = np.empty(len(rows), bool)
        for s in range(0, len(rows), 8192):
            r, c = rows[s:s + 8192], cols[s:s + 8192]
            lower = np.abs(self.block_sums[c] - q_sums[r]).sum(axis=1, dtype=np.int64)
            keep[s:s + 8192] = lower <= upper[r, self.col_class[c]] + _L1_BLOCK_SLACK
        rows, cols = rows[keep], cols[keep]
        exact = _chunked_pairs(q, rows, self.pixels, cols, "l1")
        _group_min(rows, self.col_class[cols], exact, cols, out_d, out_i)

    def _linf(self, q: np.ndarray, out_d: np.ndarray, out_i: np.ndarray,
              cap: np.ndarray | None) -> None:
        # _NO_BOUND is above every distance: the first probe sets real bounds
        out_d[...] = _NO_BOUND if cap is None else np.minimum(cap, _NO_BOUND)
        out_i[...] = -1
        for i in range(len(q)):
            self._linf_scan(q[i], out_d[i], out_i[i])

    @staticmethod
    def _order(qi: np.ndarray, threshold: int, count_ge: np.ndarray) -> np.ndarray:
        """Pixels by the number of training images that differ from ``qi`` by
        ``threshold`` or more there (most telling first; speed only)."""
        v = qi.astype(np.int64)
        hi = np.minimum(v + threshold, 256)
        lo = np.maximum(v - threshold + 1, 0)  # images with x_p <= v - threshold
        rows = np.arange(len(v))
        score = count_ge[rows, hi] + count_ge[rows, 0] - count_ge[rows, lo]
        return np.argsort(-score, kind="stable")

    def _linf_scan(self, qi: np.ndarray, out_d: np.ndarray, out_i: np.ndarray) -> None:
        """Exact l-inf search of one query, improving the per-class bounds ``out_d``.

        ``running`` is the largest ``|q_p - x_p|`` over the pixels seen so far: a lower
        bound of the l-inf distance; images whose bound reaches their class's bound cannot
        beat it and are dropped. Between blocks, a few survivors per class get their exact
        distance, which can lower that class's bound (MNIST has thousands of images tied
        near the minimum: one of them is enough to drop all others). Survivors at the end
        hold exact distances below the bounds.
        """
        pooled_q = np.maximum.reduceat(qi[self._perm], self._pool_starts)
        running = np.zeros(self.n, np.uint8)
        scratch = np.empty(self.n, np.uint8)
        blocks = self._order(pooled_q, _TYPICAL_LINF, self._pool_count_ge)
        for b in blocks[:_FIRST_BLOCKS]:  # all images, pooled: uint8, in place
            qb, xb = pooled_q[b], self.pooled_t[b]
            if qb == 0:  # |x - 0| = x
                np.maximum(running, xb, out=running)
                continue
            if qb == 255:  # |x - 255| = 255 - x
                np.subtract(255, xb, out=scratch)
            else:
                np.maximum(xb, qb, out=scratch)
                scratch -= np.minimum(xb, qb)
            np.maximum(running, scratch, out=running)
        pixels = self._order(qi, _TYPICAL_LINF, self._count_ge)
        bound = out_d.astype(np.int16)
        cand = np.flatnonzero(running < np.repeat(bound - _LINF_SLACK, self._class_sizes))
        running = running[cand]
        pos, size = 0, 16
        first = True
        while len(cand) and pos < self.d:
            if first or len(cand) > _PROBE_ABOVE:  # the first probe bounds every class
                first = False
                self._probe(qi, cand, running, bound, out_d, out_i)
                keep = running < (bound - _LINF_SLACK)[self.col_class[cand]]
                cand, running = cand[keep], running[keep]
            block = pixels[pos:pos + size]
            pos, size = pos + size, min(2 * size, 256)
            vals = self.pixels_t[np.ix_(block, cand)]
            qb = qi[block, None]
            part = np.maximum(vals, qb)
            part -= np.minimum(vals, qb)
            running = np.maximum(running, part.max(axis=0))
            keep = running < (bound - _LINF_SLACK)[self.col_class[cand]]
            cand, running = cand[keep], running[keep]
        if len(cand):
            _group_min(np.zeros(len(cand), np.int64), self.col_class[cand],
                       running.astype(np.int64), cand, out_d[None], out_i[None])

    def _probe(self, qi: np.ndarray, cand: np.ndarray, running: np.ndarray,
               bound: np.ndarray, out_d: np.ndarray, out_i: np.ndarray) -> None:
        """Exact distances of the candidates of smallest ``running`` in each class; lower
        ``bound`` (and the results) where they beat it."""
        classes = self.col_class[cand]  # cand is sorted, so classes are contiguous
        edges = np.searchsorted(classes, np.arange(len(self.classes) + 1))
        picks = []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            if hi - lo > _PROBES:
                picks.append(lo + np.argpartition(running[lo:hi], _PROBES - 1)[:_PROBES])
            else:
                picks.append(np.arange(lo, hi))
        cols = cand[np.concatenate(picks)]
        dist = _pair_distances(np.broadcast_to(qi, (len(cols), self.d)), self.pixels[cols],
                               "linf")
        best_d, best_i = out_d.copy(), out_i.copy()
        _group_min(np.zeros(len(cols), np.int64), self.col_class[cols], dist, cols,
                   best_d[None], best_i[None])
        improved = (best_d < out_d) | ((best_d == out_d) & (best_i < out_i))
        out_d[improved], out_i[improved] = best_d[improved], best_i[improved]
        bound[improved] = best_d[improved]


def brute_force_nearest(queries: np.ndarray, images: np.ndarray, labels: np.ndarray,
                        metric: str, *, chunk: int = 64) -> NearestByClass:
    """Reference: every distance computed in numpy, in chunks of queries x training images.

    Same output as :meth:`ExactSearch.nearest` (distances exact integers; the index is the
    lowest training index at the minimum). Slow: the baseline of the benchmark and tests.
    """
    check_metrics([metric], "metric")
    x = as_pixel_rows(images, "train_images")
    q = as_pixel_rows(queries, "queries", x.shape[1])
    labels = np.asarray(labels)
    if labels.shape != (len(x),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"train_labels must be integers of shape ({len(x)},)")
    classes = np.unique(labels)
    if metric == "l0":
        q, x = (q >= BINARY_THRESHOLD).astype(np.int16), (x >= BINARY_THRESHOLD).astype(np.int16)
    else:
        q, x = q.astype(np.int16), x.astype(np.int16)
    dist = np.empty((len(q), len(classes)), np.int64)
    idx = np.empty((len(q), len(classes)), np.int64)
    t_chunk = max(1, (1 << 22) // (chunk * x.shape[1]))
    for s in range(0, len(q), chunk):
        qs = q[s:s + chunk]
        full = np.empty((len(qs), len(x)), np.int64)
        for t in range(0, len(x), t_chunk):
            diff = np.abs(qs[:, None, :] - x[None, t:t + t_chunk, :])
            if metric in ("l0", "l1"):
                full[:, t:t + t_chunk] = diff.sum(axis=2, dtype=np.int64)
            elif metric == "l2":
                diff = diff.astype(np.int32)
                full[:, t:t + t_chunk] = np.einsum("ijk,ijk->ij", diff, diff, dtype=np.int64)
            else:
                full[:, t:t + t_chunk] = diff.max(axis=2)
        for c, cls in enumerate(classes):
            members = np.flatnonzero(labels == cls)
            j = full[:, members].argmin(axis=1)
            dist[s:s + chunk, c] = full[np.arange(len(qs)), members[j]]
            idx[s:s + chunk, c] = members[j]
    return NearestByClass(metric, classes.astype(np.int64), dist, idx)

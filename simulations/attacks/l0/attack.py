"""The model-free l0 invariance attack on MNIST (Tramer et al., ICML 2020, Section 5).

An *invariance example* for a source image ``x`` of class ``y`` is an image ``x*`` close
to ``x`` in l0 (few changed pixels) whose oracle (human) label is another class. The
paper builds them without any model:

1. binarise images at 0.5;
2. search over affine transforms (rotation, per-axis scaling, shear, translation) and a
   stroke-thickness change of the training images of other classes for the one whose
   binarised form differs from the binarised source in the fewest pixels;
3. the differing pixels are candidate edits; group them into connected clusters
   (DBSCAN on pixel coordinates, ``eps`` about 2 pixels);
4. try subsets of clusters and keep the smallest edit that makes the image read as the
   target class.

The paper's step 4 asks humans; here the decision is a pluggable *judge*
(:mod:`simulations.attacks.l0.judges`), by default a kNN vote over the binarised training
set, which is independent of every model the project evaluates.

Search (step 2). Transforming all 60000 training images for every candidate transform
is what a naive implementation does (the authors sampled transforms at random and
transformed the whole training set each time). Instead:

* **coarse stage** -- the *source* is warped by the inverse of ``n_coarse``
  quasi-random (scrambled Sobol) transforms and compared, as binary vectors, with every
  binarised training image of the target classes at a few precomputed stroke
  thicknesses: ``hamming(a, b) = |a| + |b| - 2 a.b``, first through a 64-dimensional PCA
  embedding whose distances are lower bounds of the Hamming distance (one small matrix
  product), then exactly (one matrix product) for the ``n_shortlist`` best images of
  each class;
* **local stage** -- an evolution strategy (shrinking Gaussian steps around the best
  transforms) in the same inverse frame, restricted to the ``n_keep`` most promising
  training images;
* **exact stage** -- all kept images are warped *forward* exactly (bilinear
  interpolation, then dilation/erosion blended by a continuous thickness level); the
  ``n_refine`` best are refined by an evolution strategy on the exact binarised l0;
* **edit stage** -- every kept alignment gets the cluster-subset search (steps 3-4),
  bounded by the best edits so far; the ``n_polish`` alignments with the smallest
  accepted edits are refined once more by an evolution strategy whose fitness *is* the
  size of the smallest accepted edit. If no alignment yields an accepted edit, the
  search is repeated once with ``n_keep_retry`` alignments.

With :class:`~simulations.attacks.l0.judges.KNNJudge` the subset search never forms the
edited images: :meth:`~simulations.attacks.l0.judges.KNNJudge.edits` gives the exact kNN
vote of every union of clusters from per-cluster distance contributions.

A target class the judge already reads the *source* as is not tried (an edit would get
credit for a change that was never made).

All randomness comes from ``numpy.random.default_rng([random_state, key])`` where
``key`` identifies the source (the MNIST test index in batch runs), so a source's result
does not depend on which other sources are attacked or in what order.

Example
-------
>>> from invariance_tradeoffs.simulations.data.mnist import load_mnist  # doctest: +SKIP
>>> train, test = load_mnist("train"), load_mnist("test")           # doctest: +SKIP
>>> attack = L0InvarianceAttack(train.images, train.labels)         # doctest: +SKIP
>>> res = attack.attack(test.images[159], int(test.labels[159]), key=159)  # doctest: +SKIP
>>> res.target, res.distortion                                      # doctest: +SKIP
"""

from __future__ import annotations

import heapq
import math
import numbers
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.stats import qmc

from invariance_tradeoffs.simulations.attacks.l0.judges import (
    Judge,
    KNNJudge,
    as_images,
    binarize,
    judge_probabilities,
    probabilities_read_as,
    reads_as,
)
from invariance_tradeoffs.simulations.attacks.linf import DEFAULT_TARGETS
from invariance_tradeoffs.theory.oracles import REJECT
from invariance_tradeoffs.theory.validation import as_labels

__all__ = [
    "BUDGETS",
    "PARAM_NAMES",
    "PUBLISHED_TARGETS",
    "Alignment",
    "L0InvarianceAttack",
    "L0Result",
    "L0Run",
    "SubsetSearch",
    "TransformSpace",
    "apply_edit",
    "summarize_run",
    "run_medians",
    "batch_attack",
    "candidate_clusters",
    "change_thickness",
    "l0_distance",
    "resolve_targets",
    "smallest_accepted_subset",
    "subsets_by_size",
    "transform_images",
    "warp",
]

#: Target classes tried for each source class by the authors' published l-inf attack
#: (the same table as :data:`invariance_tradeoffs.simulations.attacks.linf.DEFAULT_TARGETS`).
PUBLISHED_TARGETS: dict[int, tuple[int, ...]] = DEFAULT_TARGETS

#: Named search budgets (keyword arguments of :class:`L0InvarianceAttack`): ``"default"``
#: is the one measured in docs/mnist.md; ``"fast"`` is for smoke tests and quick looks.
BUDGETS: dict[str, dict[str, int]] = {
    "default": {},
    "fast": {
        "n_coarse": 64, "n_keep": 32, "n_keep_retry": 64, "es_rounds": 4, "n_refine": 4,
        "refine_rounds": 4, "n_polish": 2, "polish_rounds": 2,
    },
}

#: Components of a transform parameter vector (rows are image rows, cols image columns).
PARAM_NAMES: tuple[str, ...] = (
    "angle",
    "scale_row",
    "scale_col",
    "shear_row",
    "shear_col",
    "shift_row",
    "shift_col",
    "thickness",
)
_N_AFFINE = 7
_IDENTITY = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
_CENTRE = np.array([13.5, 13.5])
_CROSS = ndimage.generate_binary_structure(2, 1)[None]  # (1, 3, 3): per image


def _nonnegative_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)



# --------------------------------------------------------------------------- transforms


@dataclass(frozen=True)
class TransformSpace:
    """Ranges of the transform parameters searched by the attack.

    Parameters
    ----------
    angle : float
        Largest rotation in radians (searched in ``[-angle, angle]``).
    scale : (float, float)
        Range of the scale factor of each axis.
    shear : float
        Largest shear coefficient of each axis.
    shift : float
        Largest translation in pixels along each axis.
    thickness : float
        Largest stroke-thickness level: ``+1`` is a full 3x3-cross grey dilation,
        ``-1`` a full erosion, values in between blend with the unchanged image.
    """

    angle: float = 0.25
    scale: tuple[float, float] = (0.8, 1.2)
    shear: float = 0.2
    shift: float = 6.0
    thickness: float = 1.0

    def __post_init__(self) -> None:
        for name in ("angle", "shear", "shift", "thickness"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not 0 <= float(value) < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.thickness > 1:
            raise ValueError(f"thickness must be <= 1, got {self.thickness}")
        lo, hi = self.scale
        if not 0 < lo <= 1 <= hi < math.inf:
            raise ValueError(
                f"scale must be a range (lo, hi) with 0 < lo <= 1 <= hi, got {self.scale}"
            )

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds of the 8 parameters (see :data:`PARAM_NAMES`)."""
        s = self.scale[0]
        return np.array(
            [-self.angle, s, s, -self.shear, -self.shear, -self.shift, -self.shift,
             -self.thickness]
        )

    @property
    def upper(self) -> np.ndarray:
        """Upper bounds of the 8 parameters."""
        s = self.scale[1]
        return np.array(
            [self.angle, s, s, self.shear, self.shear, self.shift, self.shift, self.thickness]
        )

    def clip(self, params: np.ndarray) -> np.ndarray:
        """Clip parameter vectors (..., 8) into the space."""
        return np.clip(params, self.lower, self.upper)


def _as_params(params: object, name: str = "params") -> np.ndarray:
    arr = np.asarray(params, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in (_N_AFFINE, len(PARAM_NAMES)):
        raise ValueError(f"{name} must have shape (m, 7) or (m, 8), got {np.shape(params)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def affine_parts(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear parts ``(m, 2, 2)`` and translations ``(m, 2)`` of transform parameters.

    The transform maps pixel ``p`` (row, col) to ``M (p - c) + c + t`` with centre
    ``c = (13.5, 13.5)``, ``M = R(angle) @ [[1, shear_row], [shear_col, 1]] @
    diag(scale_row, scale_col)`` and ``t = (shift_row, shift_col)``.
    """
    p = _as_params(params)
    cos, sin = np.cos(p[:, 0]), np.sin(p[:, 0])
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shear = np.ones((len(p), 2, 2))
    shear[:, 0, 1], shear[:, 1, 0] = p[:, 3], p[:, 4]
    scale = np.zeros((len(p), 2, 2))
    scale[:, 0, 0], scale[:, 1, 1] = p[:, 1], p[:, 2]
    mat = rot @ shear @ scale
    if np.any(np.abs(np.linalg.det(mat)) < 1e-6):
        raise ValueError("params describe a singular (non-invertible) transform")
    return mat, p[:, 5:7].copy()


def warp(images: np.ndarray, params: np.ndarray, *, inverse: bool = False) -> np.ndarray:
    """Apply affine transforms (bilinear interpolation, zero outside the image).

    Parameters
    ----------
    images : ndarray (n, 28, 28)
        Images in [0, 1]; ``n`` equals the number of transforms ``m`` or is 1 (the same
        image under every transform).
    params : ndarray (m, 7) or (m, 8)
        Transform parameters (:data:`PARAM_NAMES`; a thickness column is ignored).
    inverse : bool
        Apply the inverse transforms instead.

    Returns
    -------
    ndarray (m, 28, 28)
    """
    images = np.asarray(images, dtype=np.float64)
    mat, shift = affine_parts(params)
    m = len(mat)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) not in (1, m):
        raise ValueError(f"images must have shape (1 or {m}, 28, 28), got {images.shape}")
    grid = np.indices((28, 28)).reshape(2, -1).T - _CENTRE  # (784, 2) output pixel - c
    if inverse:  # output p comes from input M (p - c) + c + t
        src = grid @ mat.transpose(0, 2, 1) + (_CENTRE + shift)[:, None, :]
    else:  # output p comes from input M^-1 (p - c - t) + c
        inv = np.linalg.inv(mat)
        src = (grid[None] - shift[:, None, :]) @ inv.transpose(0, 2, 1) + _CENTRE
    coords = src.reshape(-1, 2).T  # (2, m * 784)
    if len(images) == 1:
        out = ndimage.map_coordinates(images[0], coords, order=1, mode="constant", cval=0.0)
    else:
        which = np.repeat(np.arange(m, dtype=np.float64), 28 * 28)[None]
        out = ndimage.map_coordinates(
            images, np.concatenate([which, coords]), order=1, mode="constant", cval=0.0
        )
    return out.reshape(m, 28, 28)


def change_thickness(images: np.ndarray, levels: np.ndarray | float) -> np.ndarray:
    """Thicken (level > 0) or thin (level < 0) strokes by grey dilation / erosion.

    ``level`` in ``[-1, 1]`` blends the image with its 3x3-cross grey dilation
    (``level > 0``) or erosion (``level < 0``): ``x + |level| (morph(x) - x)``.
    """
    images = np.asarray(images, dtype=np.float64)
    levels = np.broadcast_to(np.asarray(levels, dtype=np.float64), (len(images),))
    if np.any(np.abs(levels) > 1):
        raise ValueError("thickness levels must be in [-1, 1]")
    out = images.copy()
    up, down = levels > 0, levels < 0
    if up.any():
        dil = ndimage.grey_dilation(images[up], footprint=_CROSS)
        out[up] += levels[up, None, None] * (dil - images[up])
    if down.any():
        ero = ndimage.grey_erosion(images[down], footprint=_CROSS)
        out[down] += -levels[down, None, None] * (ero - images[down])
    return out


def transform_images(images: np.ndarray, params: np.ndarray) -> np.ndarray:
    """The attack's forward transform: affine warp, then the stroke-thickness change."""
    p = _as_params(params)
    if p.shape[1] != len(PARAM_NAMES):
        raise ValueError(f"params must have shape (m, 8), got {p.shape}")
    return change_thickness(warp(images, p), p[:, 7])


def l0_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of pixels whose binarised (> 0.5) values differ, per image pair."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    diff = binarize(a) != binarize(b)
    return diff.reshape(diff.shape[0], -1).sum(axis=1) if diff.ndim == 3 else diff.sum()


# ------------------------------------------------------------------ clusters and subsets


def candidate_clusters(
    source: np.ndarray, proposal: np.ndarray, *, eps: float = 2.0, min_samples: int = 3
) -> np.ndarray:
    """Group the pixels where binarised ``source`` and ``proposal`` differ into clusters.

    DBSCAN (:class:`sklearn.cluster.DBSCAN`) on the (row, col) coordinates of the
    differing pixels. Pixels DBSCAN calls noise are not candidate edits (as in the
    authors' code): isolated boundary pixels do not change what a digit reads as.

    Returns
    -------
    ndarray (28, 28) int
        Cluster id ``0..k-1`` of every candidate edit, ``-1`` elsewhere.
    """
    from sklearn.cluster import DBSCAN

    source, proposal = np.asarray(source), np.asarray(proposal)
    if source.shape != (28, 28) or proposal.shape != (28, 28):
        raise ValueError(
            f"source and proposal must have shape (28, 28), got {source.shape}, {proposal.shape}"
        )
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int | np.integer) or (
        min_samples < 1
    ):
        raise ValueError(f"min_samples must be a positive integer, got {min_samples!r}")
    labels = np.full((28, 28), -1, dtype=np.int64)
    points = np.argwhere(binarize(source) != binarize(proposal))
    if len(points):
        labels[points[:, 0], points[:, 1]] = DBSCAN(eps=eps, min_samples=min_samples).fit(
            points
        ).labels_
    return labels


def subsets_by_size(sizes: Sequence[int] | np.ndarray) -> Iterator[tuple[int, tuple[int, ...]]]:
    """Yield every non-empty subset of items in non-decreasing total size.

    Lazy best-first enumeration (a heap over "extend with the next item" and "replace
    the last item with the next one" moves on the items sorted by size), so the first
    ``K`` subsets cost ``O(K log K)`` even when there are ``2**len(sizes)`` in all.

    Yields
    ------
    (total, subset) : (int, tuple of int)
        ``subset`` holds indices into ``sizes`` in increasing order.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.ndim != 1 or np.any(sizes < 0):
        raise ValueError("sizes must be a 1-D array of non-negative integers")
    order = np.argsort(sizes, kind="stable")
    w = sizes[order]
    if not len(w):
        return
    heap: list[tuple[int, int, tuple[int, ...]]] = [(int(w[0]), 0, (0,))]
    while heap:
        total, last, sub = heapq.heappop(heap)
        yield total, tuple(sorted(int(order[i]) for i in sub))
        if last + 1 < len(w):
            nxt = last + 1
            heapq.heappush(heap, (total + int(w[nxt]), nxt, (*sub, nxt)))
            heapq.heappush(heap, (total - int(w[last]) + int(w[nxt]), nxt, (*sub[:-1], nxt)))


def apply_edit(source: np.ndarray, proposal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The edited image: ``proposal`` on ``mask``, ``source`` elsewhere."""
    return np.where(mask, proposal, source)


@dataclass
class SubsetSearch:
    """Outcome of :func:`smallest_accepted_subset`.

    Attributes
    ----------
    subset : tuple of int
        Cluster ids of the accepted edit (empty when none was accepted).
    mask : ndarray (28, 28) bool
        Pixels edited.
    size : int
        ``mask.sum()``.
    accepted : bool
        Whether an accepted edit was found.
    tried : list of (tuple, int, bool)
        Every subset judged, with its size and verdict, in the order tried.
    """

    subset: tuple[int, ...]
    mask: np.ndarray
    size: int
    accepted: bool
    tried: list[tuple[tuple[int, ...], int, bool]] = field(default_factory=list)

    @property
    def n_tried(self) -> int:
        return len(self.tried)


def smallest_accepted_subset(
    clusters: np.ndarray,
    accept: Callable[[np.ndarray], np.ndarray],
    *,
    max_subsets: int = 4096,
    max_size: int | None = None,
    first_batch: int = 32,
) -> SubsetSearch:
    """Smallest union of clusters whose edit ``accept`` accepts, among those tried.

    Subsets are tried in non-decreasing number of edited pixels
    (:func:`subsets_by_size`), judged in geometrically growing batches, until one is
    accepted, ``max_subsets`` were tried, or the next subset would exceed ``max_size``.
    Every subset tried before the returned one is no larger and was rejected.

    Parameters
    ----------
    clusters : ndarray (28, 28) int
        Output of :func:`candidate_clusters` (``k`` clusters ``0..k-1``, ``-1`` elsewhere).
    accept : callable
        ``accept(Z) -> bool (m,)`` for a membership matrix ``Z (m, k)`` of bool (row
        ``i`` edits the clusters ``j`` with ``Z[i, j]``), e.g. "the judge reads the edited
        source as the target" (:meth:`L0InvarianceAttack.acceptor`).
    max_subsets : int
        Largest number of subsets judged.
    max_size : int, optional
        Only edits of at most this many pixels are tried.
    first_batch : int
        Size of the first batch of subsets judged together (then doubled, up to 1024).
    """
    clusters = np.asarray(clusters)
    if clusters.shape != (28, 28) or not np.issubdtype(clusters.dtype, np.integer):
        raise ValueError(
            f"clusters must be an integer array of shape (28, 28), got {clusters.shape}"
        )
    max_subsets = _positive_int(max_subsets, "max_subsets")
    k = int(clusters.max()) + 1
    sizes = np.bincount(clusters[clusters >= 0], minlength=k)
    tried: list[tuple[tuple[int, ...], int, bool]] = []
    gen = subsets_by_size(sizes)
    batch_size = _positive_int(first_batch, "first_batch")
    exhausted = False
    while not exhausted and len(tried) < max_subsets:
        batch: list[tuple[int, tuple[int, ...]]] = []
        while len(batch) < min(batch_size, max_subsets - len(tried)):
            nxt = next(gen, None)
            if nxt is None or (max_size is not None and nxt[0] > max_size):
                exhausted = True
                break
            batch.append(nxt)
        if not batch:
            break
        z = np.zeros((len(batch), k), dtype=bool)
        for i, (_, sub) in enumerate(batch):
            z[i, list(sub)] = True
        ok = np.asarray(accept(z), dtype=bool)
        if ok.shape != (len(batch),):
            raise ValueError(f"accept must return {len(batch)} booleans, got shape {ok.shape}")
        for (total, sub), verdict in zip(batch, ok, strict=True):
            tried.append((sub, total, bool(verdict)))
            if verdict:
                return SubsetSearch(sub, np.isin(clusters, sub), total, True, tried)
        batch_size = min(2 * batch_size, 1024)
    return SubsetSearch((), np.zeros((28, 28), bool), 0, False, tried)


# ----------------------------------------------------------------------- alignment search


@dataclass
class Alignment:
    """A training image of another class aligned to the source.

    Attributes
    ----------
    train_index : int
        Index of the training image.
    target : int
        Its class.
    params : ndarray (8,)
        Transform parameters (:data:`PARAM_NAMES`).
    proposal : ndarray (28, 28)
        The transformed training image, in [0, 1].
    l0 : int
        Binarised l0 distance between source and proposal (exact).
    """

    train_index: int
    target: int
    params: np.ndarray
    proposal: np.ndarray
    l0: int


def resolve_targets(
    targets: str | Mapping[int, Sequence[int]], n_classes: int = 10
) -> dict[int, tuple[int, ...]]:
    """Target classes to try for each source class.

    ``"published"`` is :data:`PUBLISHED_TARGETS`; ``"all"`` every other class; a mapping
    gives them explicitly (a source class missing from it gets every other class).
    """
    if isinstance(targets, str):
        if targets == "published":
            return dict(PUBLISHED_TARGETS)
        if targets == "all":
            return {c: tuple(t for t in range(n_classes) if t != c) for c in range(n_classes)}
        raise ValueError(f"targets must be 'published', 'all' or a mapping, got {targets!r}")
    if not isinstance(targets, Mapping):
        raise TypeError(f"targets must be 'published', 'all' or a mapping, got {type(targets)}")
    out = {c: tuple(t for t in range(n_classes) if t != c) for c in range(n_classes)}
    for src, tgts in targets.items():
        tg = tuple(int(t) for t in tgts)
        bad = [t for t in tg if t == int(src) or not 0 <= t < n_classes]
        if int(src) not in out or not tg or bad:
            raise ValueError(
                f"targets[{src!r}] must be a non-empty list of classes other than {src}, "
                f"got {tgts!r}"
            )
        out[int(src)] = tg
    return out


class _Pool:
    """Binarised training images of one class at a few stroke thicknesses.

    Besides the bits (for exact Hamming distances) each image keeps a PCA embedding
    ``[P(a - mu), |R(a - mu)|]`` (``P``: projection on the leading components, ``R``: on
    the rest), whose squared distance to another such embedding is a lower bound of the
    squared Euclidean = Hamming distance of the binary vectors.
    """

    def __init__(
        self,
        images: np.ndarray,
        indices: np.ndarray,
        levels: Sequence[float],
        basis: tuple[np.ndarray, np.ndarray],
    ) -> None:
        self.indices = indices
        n = len(images)
        stack = np.empty((len(levels), n, 784), dtype=bool)
        for j, level in enumerate(levels):
            for s in range(0, n, 4096):  # chunks keep the float64 temporaries small
                thick = change_thickness(images[s : s + 4096], level)
                stack[j, s : s + 4096] = binarize(thick).reshape(len(thick), -1)
        self.bins = stack
        self.norms = stack.sum(axis=2, dtype=np.float32)  # (L, n) ink per image
        self.emb = np.concatenate(  # chunks keep the float32 temporaries small
            [_embed(stack[:, s : s + 4096], basis) for s in range(0, n, 4096)], axis=1
        )
        self.emb_norms = np.sum(self.emb**2, axis=-1)

    def hamming(self, queries: np.ndarray) -> np.ndarray:
        """Hamming distances ``(L, n, m)`` between pool images and binary queries (m, 784)."""
        q = queries.astype(np.float32)
        if self.bins.dtype == np.float32:
            dots = _stacked_dot(self.bins, q)
        else:  # bool storage: convert in chunks of rows
            n = self.bins.shape[1]
            dots = np.concatenate(
                [_stacked_dot(self.bins[:, s : s + 2048].astype(np.float32), q)
                 for s in range(0, n, 2048)], axis=1,
            )
        return self.norms[:, :, None] + q.sum(axis=1)[None, None, :] - 2.0 * dots

    def lower_bounds(self, q_emb: np.ndarray) -> np.ndarray:
        """Lower bounds ``(L, n, m)`` of the Hamming distances to queries embedded as ``q_emb``."""
        q_norms = np.sum(q_emb**2, axis=-1)
        return self.emb_norms[:, :, None] + q_norms[None, None, :] - 2.0 * _stacked_dot(
            self.emb, q_emb
        )

    def take(self, rows: np.ndarray) -> _Pool:
        """The sub-pool of the given rows (copied once, for repeated products)."""
        sub = object.__new__(_Pool)
        sub.indices = self.indices[rows]
        sub.bins = self.bins[:, rows].astype(np.float32)
        sub.norms = self.norms[:, rows]
        sub.emb = np.ascontiguousarray(self.emb[:, rows])
        sub.emb_norms = self.emb_norms[:, rows]
        return sub


def _stacked_dot(stack: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``stack @ q.T`` for ``stack (L, n, d)`` as one 2-D product (numpy's stacked matmul
    is several times slower here)."""
    L, n, d = stack.shape
    return (np.ascontiguousarray(stack).reshape(L * n, d) @ q.T).reshape(L, n, len(q))


def _embed(bits: np.ndarray, basis: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``[P(a - mu), |R(a - mu)|]`` of binary vectors ``bits (..., 784)`` (float32)."""
    mean, comps = basis
    centred = bits.astype(np.float32) - mean
    proj = centred @ comps.T
    resid = np.sum(centred**2, axis=-1) - np.sum(proj**2, axis=-1)
    return np.concatenate([proj, np.sqrt(np.maximum(resid, 0))[..., None]], axis=-1)


@dataclass
class L0Result:
    """The l0 invariance example found for one source image.

    Attributes
    ----------
    source : ndarray (28, 28)
        The source image in [0, 1].
    source_label : int
    example : ndarray (28, 28)
        The invariance example in [0, 1] (the source when the attack failed).
    target : int
        The class the judge reads the example as, or ``REJECT`` (-1) on failure.
    distortion : int
        Binarised l0 distance between ``example`` and ``source`` (0 on failure).
    success : bool
    alignment : Alignment or None
        The aligned training image the edit was taken from.
    clusters : ndarray (28, 28) int
        Candidate clusters of that alignment (-1: not a candidate).
    subset : tuple of int
        Clusters edited.
    confidence : float
        Judge score of the target class on ``example``.
    n_judged : int
        Number of images the judge was asked about.
    seconds : float
        Wall time.
    source_reading : int
        The class the judge reads the *source* as (its largest score; ``REJECT`` when
        it gives no class any score). Target classes the judge already reads the source
        as are not tried.
    """

    source: np.ndarray
    source_label: int
    example: np.ndarray
    target: int
    distortion: int
    success: bool
    alignment: Alignment | None
    clusters: np.ndarray
    subset: tuple[int, ...]
    confidence: float
    n_judged: int
    seconds: float
    source_reading: int


@dataclass
class L0Run:
    """Results of :meth:`L0InvarianceAttack.run`, with the runner's array layout."""

    results: list[L0Result]

    def as_arrays(self) -> dict[str, np.ndarray]:
        """Arrays for :func:`simulations.attacks.runs.run_attack`, one row per source.

        Core: ``sources, source_labels, examples, targets, distortion`` (binarised l0;
        NaN where the attack failed, whose target is ``REJECT``); extras:
        ``neighbours`` (aligned training image), ``success``, ``train_indices``,
        ``transforms`` (n, 8), ``full_l0`` (l0 of the whole alignment), ``n_clusters``,
        ``confidence``, ``seconds`` and ``source_readings`` (the judge's class of the
        source).
        """
        res = self.results
        zero = np.zeros((28, 28))
        return {
            "sources": np.stack([r.source for r in res]),
            "source_labels": np.array([r.source_label for r in res], dtype=np.int64),
            "examples": np.stack([r.example for r in res]),
            "targets": np.array([r.target for r in res], dtype=np.int64),
            "distortion": np.array(
                [r.distortion if r.success else np.nan for r in res], dtype=np.float64
            ),
            "neighbours": np.stack(
                [r.alignment.proposal if r.alignment else zero for r in res]
            ),
            "success": np.array([r.success for r in res], dtype=bool),
            "train_indices": np.array(
                [r.alignment.train_index if r.alignment else -1 for r in res], dtype=np.int64
            ),
            "transforms": np.stack(
                [r.alignment.params if r.alignment else np.full(8, np.nan) for r in res]
            ),
            "full_l0": np.array(
                [r.alignment.l0 if r.alignment else -1 for r in res], dtype=np.int64
            ),
            "n_clusters": np.array([int(r.clusters.max()) + 1 for r in res], dtype=np.int64),
            "confidence": np.array([r.confidence for r in res], dtype=np.float64),
            "seconds": np.array([r.seconds for r in res], dtype=np.float64),
            "source_readings": np.array([r.source_reading for r in res], dtype=np.int64),
        }


#: An accepted edit: the alignment, its candidate clusters and the subset search result.
_Edit = tuple[Alignment, np.ndarray, SubsetSearch]


class L0InvarianceAttack:
    """Model-free l0 invariance attack (alignment search + cluster-subset edit).

    Parameters
    ----------
    train_images : array (n, 28, 28)
        Training images (uint8 0..255 or float in [0, 1]) the edits are taken from.
    train_labels : array (n,)
        Their classes.
    judge : callable, optional
        ``judge(images (m, 28, 28) in [0, 1]) -> probabilities (m, 10) or labels (m,)``
        deciding what an image reads as. Default: :class:`KNNJudge` (10 neighbours) on
        ``train_images``.
    targets : "all", "published" or mapping
        Target classes tried per source class (:func:`resolve_targets`). The authors'
        l0 search used every other class (the default); ``"published"`` is the table of
        their l-inf attack.
    space : TransformSpace, optional
        Parameter ranges of the transform search.
    n_coarse : int
        Quasi-random transforms of the coarse stage (each compared with every pool image).
    n_components : int
        Principal components of the coarse stage's lower bounds.
    n_shortlist : int
        Images per target class whose exact distances the coarse stage computes.
    coarse_levels : sequence of float
        Stroke-thickness levels precomputed for the coarse and local stages.
    n_keep : int
        Training images carried from the coarse to the local and exact stages (split
        evenly between the target classes).
    n_keep_retry : int
        When no kept alignment yields an accepted edit, the search is repeated once
        keeping this many (if larger).
    es_rounds, es_population, es_elites : int
        Local (inverse-frame) evolution strategy: rounds, offspring per elite, elites.
    n_refine : int
        Judge-accepted alignments refined with exact forward transforms.
    refine_rounds, refine_population : int
        Exact evolution strategy: rounds and offspring per alignment.
    n_polish, polish_rounds, polish_population : int
        Edit-aware refinement (:meth:`_polish`): the ``n_polish`` alignments with the
        smallest accepted edits get ``polish_rounds`` rounds of ``polish_population``
        perturbed transforms each, scored by the size of their smallest accepted edit.
    eps, min_samples : float, int
        DBSCAN parameters of :func:`candidate_clusters` (``min_samples=5`` as in the
        authors' code).
    max_subsets : int
        Largest number of cluster subsets judged per alignment.
    min_confidence : float
        Smallest judge score of the target for an image to read as the target.
    random_state : int
        Base seed; source ``key`` uses ``default_rng([random_state, key])``.
    n_jobs : int, optional
        Parallel workers of :meth:`run` (joblib); ``None`` or 1: sequential.
    """

    def __init__(
        self,
        train_images: np.ndarray,
        train_labels: np.ndarray,
        *,
        judge: Judge | None = None,
        targets: str | Mapping[int, Sequence[int]] = "all",
        space: TransformSpace | None = None,
        n_coarse: int = 256,
        n_components: int = 64,
        n_shortlist: int = 128,
        coarse_levels: Sequence[float] = (-1.0, -0.5, 0.0, 0.5, 1.0),
        n_keep: int = 128,
        n_keep_retry: int = 512,
        es_rounds: int = 10,
        es_population: int = 32,
        es_elites: int = 8,
        n_refine: int = 12,
        refine_rounds: int = 12,
        refine_population: int = 16,
        n_polish: int = 4,
        polish_rounds: int = 6,
        polish_population: int = 8,
        eps: float = 2.0,
        min_samples: int = 5,
        max_subsets: int = 1024,
        min_confidence: float = 0.5,
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.train_images = as_images(train_images, "train_images")
        self.train_labels = as_labels(
            train_labels, "train_labels", n_classes=10, allow_reject=False,
            length=len(self.train_images),
        )
        self.targets = resolve_targets(targets)
        self.space = TransformSpace() if space is None else space
        if not isinstance(self.space, TransformSpace):
            raise TypeError(f"space must be a TransformSpace, got {type(space).__name__}")
        self.n_coarse = _positive_int(n_coarse, "n_coarse")
        self.n_components = _positive_int(n_components, "n_components")
        self.n_shortlist = _positive_int(n_shortlist, "n_shortlist")
        self._pca: tuple[np.ndarray, np.ndarray] | None = None
        levels = tuple(float(v) for v in coarse_levels)
        if not levels or any(abs(v) > self.space.thickness for v in levels):
            raise ValueError(
                f"coarse_levels must be non-empty and within +-{self.space.thickness}, got {levels}"
            )
        self.coarse_levels = levels
        self.n_keep = _positive_int(n_keep, "n_keep")
        self.n_keep_retry = _positive_int(n_keep_retry, "n_keep_retry")
        self.es_rounds = _nonnegative_int(es_rounds, "es_rounds")
        self.es_population = _positive_int(es_population, "es_population")
        self.es_elites = _positive_int(es_elites, "es_elites")
        self.n_refine = _nonnegative_int(n_refine, "n_refine")
        self.n_polish = _nonnegative_int(n_polish, "n_polish")
        self.polish_rounds = _nonnegative_int(polish_rounds, "polish_rounds")
        self.polish_population = _positive_int(polish_population, "polish_population")
        self.refine_rounds = _nonnegative_int(refine_rounds, "refine_rounds")
        self.refine_population = _positive_int(refine_population, "refine_population")
        if not float(eps) > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.eps = float(eps)
        self.min_samples = _positive_int(min_samples, "min_samples")
        self.max_subsets = _positive_int(max_subsets, "max_subsets")
        if not 0 <= float(min_confidence) <= 1:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        self.min_confidence = float(min_confidence)
        if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
            raise TypeError(f"random_state must be an integer, got {random_state!r}")
        self.random_state = int(random_state)
        if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int)
                                   or n_jobs == 0):
            raise ValueError(f"n_jobs must be a non-zero integer or None, got {n_jobs!r}")
        self.n_jobs = n_jobs
        if judge is None:
            judge = KNNJudge(self.train_images, self.train_labels, n_neighbors=10)
        if not callable(judge):
            raise TypeError("judge must be callable")
        self.judge = judge
        self._pools: dict[int, _Pool] = {}

    # -- parameters (for run files) ----------------------------------------------------

    def get_params(self) -> dict[str, Any]:
        """JSON-serialisable parameters of the attack (the judge by its repr)."""
        return {
            "attack": "l0",
            "judge": repr(self.judge),
            "targets": {str(k): list(v) for k, v in self.targets.items()},
            "space": {
                "angle": self.space.angle, "scale": list(self.space.scale),
                "shear": self.space.shear, "shift": self.space.shift,
                "thickness": self.space.thickness,
            },
            **{
                k: getattr(self, k)
                for k in (
                    "n_coarse", "n_components", "n_shortlist", "n_keep", "n_keep_retry",
                    "es_rounds", "es_population", "es_elites",
                    "n_refine", "refine_rounds", "refine_population", "n_polish",
                    "polish_rounds", "polish_population", "min_samples",
                    "max_subsets", "min_confidence", "random_state",
                )
            },
            "dbscan_eps": self.eps,  # not "eps": that names an l-inf radius elsewhere
            "coarse_levels": list(self.coarse_levels),
            "n_train": len(self.train_images),
        }

    # -- the search --------------------------------------------------------------------

    def _pool(self, cls: int) -> _Pool:
        if cls not in self._pools:
            idx = np.flatnonzero(self.train_labels == cls)
            self._pools[cls] = _Pool(
                self.train_images[idx], idx, self.coarse_levels, self._basis()
            )
        return self._pools[cls]

    def _basis(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and leading principal axes of the binarised training images (float32)."""
        if self._pca is None:
            from sklearn.decomposition import PCA

            rng = np.random.default_rng(self.random_state)
            n = len(self.train_images)
            sample = rng.choice(n, size=min(n, 20000), replace=False)
            bits = binarize(self.train_images[np.sort(sample)]).reshape(-1, 784)
            n_comp = min(self.n_components, *bits.shape)
            pca = PCA(n_components=n_comp, svd_solver="randomized", random_state=self.random_state)
            pca.fit(bits.astype(np.float32))
            self._pca = (pca.mean_.astype(np.float32), pca.components_.astype(np.float32))
        return self._pca

    def _coarse(
        self,
        source: np.ndarray,
        classes: Sequence[int],
        rng: np.random.Generator,
        n_keep: int,
    ) -> tuple[list[tuple[int, np.ndarray]], np.ndarray, np.ndarray, np.ndarray]:
        """Coarse stage: best (level, transform) per kept pool image, inverse frame.

        Per class, the ``n_shortlist`` images with the smallest PCA lower bound over all
        (level, transform) pairs get exact Hamming distances; the best ``n_keep / len(
        classes)`` of them are kept.
        """
        lo, hi = self.space.lower, self.space.upper
        sobol = qmc.Sobol(_N_AFFINE, scramble=True, seed=rng).random(self.n_coarse)
        params = lo[:_N_AFFINE] + (hi - lo)[:_N_AFFINE] * sobol
        params[0] = _IDENTITY[:_N_AFFINE]
        queries = binarize(warp(source[None], params, inverse=True)).reshape(len(params), -1)
        q_emb = _embed(queries, self._basis())
        quota = math.ceil(n_keep / len(classes))
        kept: list[tuple[int, np.ndarray]] = []
        best_p, best_l, best_d = [], [], []
        for cls in classes:
            pool = self._pool(cls)
            bound = pool.lower_bounds(q_emb).min(axis=(0, 2))
            short = np.argsort(bound, kind="stable")[: max(self.n_shortlist, quota)]
            dist = pool.take(short).hamming(queries)  # (L, s, m)
            flat = dist.transpose(1, 0, 2).reshape(len(short), -1)
            arg = flat.argmin(axis=1)
            dmin = flat[np.arange(len(flat)), arg]
            top = np.argsort(dmin, kind="stable")[:quota]
            kept.append((cls, short[top]))
            level, j = np.divmod(arg[top], len(params))
            best_p.append(params[j])
            best_l.append(level)
            best_d.append(dmin[top])
        return kept, np.concatenate(best_p), np.concatenate(best_l), np.concatenate(best_d)

    def _local(
        self,
        source: np.ndarray,
        kept: list[tuple[int, np.ndarray]],
        params: np.ndarray,
        level: np.ndarray,
        dist: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        """Local stage (in place): ES around the elites' transforms, inverse frame."""
        lo, hi = self.space.lower[:_N_AFFINE], self.space.upper[:_N_AFFINE]
        sigma = 0.1 * (hi - lo)
        n_elite = min(self.es_elites, len(dist))
        bins = np.concatenate([self._pool(c).bins[:, r] for c, r in kept], axis=1)
        bins = bins.astype(np.float32)
        norms = bins.sum(axis=2)
        rows = np.arange(bins.shape[1])
        for _ in range(self.es_rounds):
            elites = np.argsort(dist, kind="stable")[:n_elite]
            cand = params[np.repeat(elites, self.es_population)]
            cand = np.clip(cand + sigma * rng.standard_normal(cand.shape), lo, hi)
            q = binarize(warp(source[None], cand, inverse=True)).reshape(len(cand), -1)
            q = q.astype(np.float32)
            d = norms[:, :, None] + q.sum(axis=1) - 2.0 * _stacked_dot(bins, q)  # (L, K, m)
            flat = d.transpose(1, 0, 2).reshape(len(rows), -1)
            arg = flat.argmin(axis=1)
            dmin = flat[rows, arg]
            better = dmin < dist
            lev, j = np.divmod(arg, len(cand))
            dist[better] = dmin[better]
            level[better] = lev[better]
            params[better] = cand[j[better]]
            sigma *= 0.75

    def _exact(
        self, source: np.ndarray, rows: np.ndarray, params: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Forward-transformed training images and their exact binarised l0 to ``source``."""
        props = transform_images(self.train_images[rows], params)
        return props, l0_distance(props, np.broadcast_to(source, props.shape))

    def _refine(
        self, source: np.ndarray, rows: np.ndarray, params: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact stage: ES on the exact l0 (all 8 parameters), one lineage per row."""
        lo, hi = self.space.lower, self.space.upper
        props, dist = self._exact(source, rows, params)
        params = params.copy()
        sigma = 0.04 * (hi - lo)
        lam = self.refine_population
        for _ in range(self.refine_rounds):
            cand = np.repeat(params, lam, axis=0)
            cand = np.clip(cand + sigma * rng.standard_normal(cand.shape), lo, hi)
            cp, cd = self._exact(source, np.repeat(rows, lam), cand)
            cd = cd.reshape(len(rows), lam)
            j = cd.argmin(axis=1)
            pick = np.arange(len(rows)) * lam + j
            better = cd[np.arange(len(rows)), j] < dist
            dist = np.where(better, cd[np.arange(len(rows)), j], dist)
            params[better] = cand[pick[better]]
            props[better] = cp[pick[better]]
            sigma *= 0.85
        return params, props, dist

    def align(
        self,
        source: np.ndarray,
        label: int,
        *,
        key: int = 0,
        classes: Sequence[int] | None = None,
        n_keep: int | None = None,
    ) -> list[Alignment]:
        """Training images of the target classes aligned to ``source``.

        Coarse and local stages in the inverse frame, then the exact forward l0 of the
        ``n_keep`` kept images; the ``n_refine`` best are refined by the exact evolution
        strategy.

        Parameters
        ----------
        source : array (28, 28)
        label : int
            Class of the source.
        key : int
            Seed key of the source.
        classes : sequence of int, optional
            Target classes (default: ``targets[label]``).
        n_keep : int, optional
            Training images kept from the coarse stage (default: ``self.n_keep``).

        Returns
        -------
        list of Alignment
            ``n_keep`` alignments (one per kept training image), sorted by exact l0.
        """
        source = self._check_source(source)
        label = self._check_label(label)
        classes = self.targets[label] if classes is None else tuple(int(c) for c in classes)
        if not classes or label in classes or any(not 0 <= c < 10 for c in classes):
            raise ValueError(f"classes must be classes other than the label {label}, got {classes}")
        rng = np.random.default_rng([self.random_state, int(key)])
        n_keep = self.n_keep if n_keep is None else _positive_int(n_keep, "n_keep")
        kept, params, level, dist = self._coarse(source, classes, rng, n_keep)
        self._local(source, kept, params, level, dist, rng)
        rows = np.concatenate([self._pool(c).indices[r] for c, r in kept])
        target = np.concatenate([np.full(len(r), c) for c, r in kept])
        full = np.concatenate([params, np.asarray(self.coarse_levels)[level][:, None]], axis=1)
        props, exact = self._exact(source, rows, full)
        top = np.argsort(exact, kind="stable")[: self.n_refine]
        if len(top) and self.refine_rounds:
            full[top], props[top], exact[top] = self._refine(source, rows[top], full[top], rng)
        order = np.argsort(exact, kind="stable")
        return [
            Alignment(int(rows[i]), int(target[i]), full[i], props[i], int(exact[i]))
            for i in order
        ]

    def acceptor(
        self,
        source: np.ndarray,
        alignment: Alignment,
        clusters: np.ndarray,
        max_size: int | None = None,
        edits: Any = None,
    ) -> Callable[[np.ndarray], np.ndarray]:
        """``accept(Z)`` for :func:`smallest_accepted_subset`: does the judge read the
        source edited by the clusters in each row of ``Z`` as ``alignment.target``?

        ``edits`` is the judge's per-source edit scorer when it has one (``judge.edits(
        source)``, e.g. :meth:`KNNJudge.edits`: exact and much faster); otherwise the
        edited images are formed and judged.
        """
        k = int(clusters.max()) + 1
        parts = clusters[None] == np.arange(k)[:, None, None]
        target, conf = alignment.target, self.min_confidence
        if edits is not None:
            scorer = edits.scorer(parts, max_flip=max_size)

            def accept(z: np.ndarray) -> np.ndarray:
                return probabilities_read_as(scorer(z), target, min_confidence=conf)

            return accept

        def accept_images(z: np.ndarray) -> np.ndarray:
            masks = np.tensordot(np.asarray(z, dtype=bool), parts, axes=1) > 0
            images = apply_edit(source[None], alignment.proposal[None], masks)
            return reads_as(self.judge, images, target, min_confidence=conf)

        return accept_images

    # -- checks --------------------------------------------------------------------------

    @staticmethod
    def _check_source(source: object) -> np.ndarray:
        arr = np.asarray(source)
        if arr.shape != (28, 28):
            raise ValueError(f"source must have shape (28, 28), got {arr.shape}")
        return as_images(arr[None], "source")[0]

    @staticmethod
    def _check_label(label: object) -> int:
        if isinstance(label, bool) or not isinstance(label, numbers.Integral):
            raise TypeError(f"label must be an integer class, got {label!r}")
        if not 0 <= int(label) < 10:
            raise ValueError(f"label must be a class in 0..9, got {label}")
        return int(label)

    # -- the attack ----------------------------------------------------------------------

    def _edit_of(
        self, source: np.ndarray, al: Alignment, edits: Any, bound: int | None
    ) -> tuple[_Edit | None, int]:
        """Smallest accepted cluster edit of one alignment (of at most ``bound`` pixels)."""
        clusters = candidate_clusters(
            source, al.proposal, eps=self.eps, min_samples=self.min_samples
        )
        if clusters.max() < 0 or (
            bound is not None and np.bincount(clusters[clusters >= 0]).min() > bound
        ):
            return None, 0
        found = smallest_accepted_subset(
            clusters, self.acceptor(source, al, clusters, bound, edits),
            max_subsets=self.max_subsets, max_size=bound,
        )
        return ((al, clusters, found) if found.accepted else None), found.n_tried

    def _best_edits(
        self, source: np.ndarray, alignments: Sequence[Alignment], edits: Any, n_best: int
    ) -> tuple[list[_Edit], int]:
        """The ``n_best`` smallest accepted edits over the alignments (smallest first).

        Each alignment's search is bounded by the ``n_best``-th smallest edit so far and
        by twice the smallest (larger edits are of no use to the refinement, and the
        bound keeps the judge's work small).
        """
        best: list[_Edit] = []
        n_judged = 0
        for al in alignments:
            bound = None
            if best:
                bound = 2 * best[0][2].size
                if len(best) == n_best:
                    bound = min(bound, best[-1][2].size - 1)
            edit, tried = self._edit_of(source, al, edits, bound)
            n_judged += tried
            if edit is not None:
                best = sorted([*best, edit], key=lambda e: e[2].size)[:n_best]
        return best, n_judged

    def _polish(
        self, source: np.ndarray, edits_found: list[_Edit], edits: Any, rng: np.random.Generator
    ) -> tuple[_Edit, int]:
        """Edit-aware refinement: an evolution strategy on the transform of each of the
        best alignments whose fitness is the size of its smallest accepted edit; a step
        is taken only when it beats the best edit found so far."""
        lo, hi = self.space.lower, self.space.upper
        best = edits_found[0]
        n_judged = 0
        for al, _, _ in edits_found:
            params = al.params
            sigma = 0.03 * (hi - lo)
            for _ in range(self.polish_rounds):
                cand = np.clip(
                    params + sigma * rng.standard_normal((self.polish_population, 8)), lo, hi
                )
                props, dist = self._exact(
                    source, np.full(len(cand), al.train_index), cand
                )
                for p, prop, d in zip(cand, props, dist, strict=True):
                    moved = Alignment(al.train_index, al.target, p, prop, int(d))
                    edit, tried = self._edit_of(source, moved, edits, best[2].size - 1)
                    n_judged += tried
                    if edit is not None:
                        best, params = edit, p
                sigma *= 0.8
        return best, n_judged

    def attack(self, source: np.ndarray, label: int, *, key: int = 0) -> L0Result:
        """Find the smallest l0 edit of ``source`` that the judge reads as a target class.

        Every kept alignment (smallest exact l0 first) gets a cluster-subset search
        bounded by the best edit found so far.

        Parameters
        ----------
        source : array (28, 28)
            Source image (uint8 or float in [0, 1]).
        label : int
            Its (oracle) class.
        key : int
            Identifies the source for seeding (e.g. its MNIST test index).
        """
        start = time.perf_counter()
        source = self._check_source(source)
        label = self._check_label(label)
        # A target the judge already reads the source as would credit an empty change.
        source_probs = judge_probabilities(self.judge, source[None])
        classes = [
            c for c in self.targets[label]
            if not probabilities_read_as(source_probs, c, min_confidence=self.min_confidence)[0]
        ]
        reading = int(source_probs[0].argmax()) if source_probs[0].max() > 0 else REJECT
        edits = self.judge.edits(source) if hasattr(self.judge, "edits") else None
        alignments: list[Alignment] = []
        found: list[_Edit] = []
        n_judged = 0
        for n_keep in (self.n_keep, self.n_keep_retry):
            if not classes or found or n_keep <= len(alignments):
                break
            alignments = self.align(source, label, key=key, classes=classes, n_keep=n_keep)
            found, tried = self._best_edits(source, alignments, edits, max(self.n_polish, 1))
            n_judged += tried
        best = found[0] if found else None
        if found and self.n_polish and self.polish_rounds:
            rng = np.random.default_rng([self.random_state, int(key), 1])
            best, tried = self._polish(source, found, edits, rng)
            n_judged += tried
        if best is None:
            return L0Result(
                source, label, source.copy(), REJECT, 0, False,
                alignments[0] if alignments else None, np.full((28, 28), -1), (), 0.0,
                n_judged + 1, time.perf_counter() - start, reading,
            )
        al, clusters, found = best
        example = apply_edit(source, al.proposal, found.mask)
        probs = judge_probabilities(self.judge, example[None])
        if not probabilities_read_as(probs, al.target, min_confidence=self.min_confidence)[0]:
            raise RuntimeError("the judge's edit_scorer disagrees with the judge itself")
        return L0Result(
            source, label, example, al.target, int(l0_distance(example, source)), True,
            al, clusters, found.subset, float(probs[0, al.target]), n_judged + 2,
            time.perf_counter() - start, reading,
        )

    def prepare(self, labels: Sequence[int] | np.ndarray) -> None:
        """Build the binarised pools of the target classes of ``labels`` (done lazily
        otherwise; call before pickling the attack to parallel workers)."""
        for lab in np.unique(np.asarray(labels)):
            for cls in self.targets[self._check_label(int(lab))]:
                self._pool(cls)

    def run(
        self,
        sources: np.ndarray,
        labels: np.ndarray,
        *,
        keys: Sequence[int] | np.ndarray | None = None,
        n_jobs: int | None = None,
    ) -> L0Run:
        """Attack every source (optionally in parallel with joblib).

        Parameters
        ----------
        sources : array (n, 28, 28)
        labels : array (n,)
        keys : array (n,) of int, optional
            Per-source seed keys (e.g. MNIST test indices); default ``0..n-1``.
        n_jobs : int, optional
            Overrides the constructor's ``n_jobs``.
        """
        sources = as_images(sources, "sources")
        labels = as_labels(labels, "labels", n_classes=10, allow_reject=False,
                           length=len(sources))
        keys = np.arange(len(sources)) if keys is None else np.asarray(keys)
        if keys.shape != (len(sources),) or not np.issubdtype(keys.dtype, np.integer):
            raise ValueError(f"keys must be {len(sources)} integers, got shape {keys.shape}")
        n_jobs = self.n_jobs if n_jobs is None else n_jobs
        self.prepare(labels)
        if n_jobs in (None, 1) or len(sources) == 1:
            results = [
                self.attack(s, int(y), key=int(k))
                for s, y, k in zip(sources, labels, keys, strict=True)
            ]
        else:
            from joblib import Parallel, delayed

            results = Parallel(n_jobs=n_jobs)(
                delayed(self.attack)(s, int(y), key=int(k))
                for s, y, k in zip(sources, labels, keys, strict=True)
            )
        return L0Run(list(results))


# ---------------------------------------------------------------------------------- CLI


def batch_attack(train: Any, test: Any, *, n_train: int | None = None, budget: str = "default",
                 **kwargs: Any) -> tuple[Callable[[np.ndarray], dict[str, np.ndarray]], dict]:
    """The l0 attack as a batch function for :func:`simulations.attacks.runs.run_attack`.

    ``train`` / ``test`` are MNIST splits (``.images``, ``.labels``); the attack aligns
    the first ``n_train`` training images (``None``: all) with the search budget
    ``budget`` (:data:`BUDGETS`); ``kwargs`` go to :class:`L0InvarianceAttack`. Returns
    ``(batch(test_indices) -> arrays, params)`` with the run's JSON parameters.
    """
    n_train = len(train.images) if n_train is None else n_train
    if not 1 <= n_train <= len(train.images):
        raise ValueError(f"n_train must be in 1..{len(train.images)}, got {n_train}")
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    attack = L0InvarianceAttack(train.images[:n_train], train.labels[:n_train],
                                **BUDGETS[budget], **kwargs)
    params = {**attack.get_params(), "budget": budget,
              "training_set": f"the first {n_train} MNIST training images"}

    def batch(idx: np.ndarray) -> dict[str, np.ndarray]:
        return attack.run(test.images[idx], test.labels[idx], keys=idx).as_arrays()

    return batch, params


def run_medians(run: Any) -> dict[str, Any]:
    """Exact l0 statistics of a run: median over all sources (a failure -- NaN distortion
    -- counts as infinite), median over the successes (``None`` without any), failures."""
    dist = np.asarray(run.distortion, dtype=np.float64)
    ok = np.isfinite(dist)
    return {"median_l0_all": float(np.median(np.where(ok, dist, np.inf))),
            "median_l0_successes": float(np.median(dist[ok])) if ok.any() else None,
            "n_successes": int(ok.sum()), "n_failures": int((~ok).sum())}


def summarize_run(run: Any) -> str:
    """One-line summary of an l0 run: medians of the binarised l0 and failures."""
    m = run_medians(run)
    succ = np.nan if m["median_l0_successes"] is None else m["median_l0_successes"]
    return (
        f"l0 (binarised pixels changed): median {m['median_l0_all']:g} over all "
        f"{m['n_successes'] + m['n_failures']} sources (a failure counts as infinite); "
        f"median {succ:g} over the {m['n_successes']} successes; {m['n_failures']} failures"
    )

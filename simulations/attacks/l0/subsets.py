"""Candidate edits of the l0 attack: clusters of the pixels where source and aligned
training image differ, and the search for the smallest accepted union of clusters."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from invariance_tradeoffs.simulations.attacks.l0.judges import binarize
from invariance_tradeoffs.theory.validation import check_int

__all__ = ["SubsetSearch", "apply_edit", "candidate_clusters", "smallest_accepted_subset",
           "subsets_by_size"]


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
    max_subsets = check_int(max_subsets, "max_subsets", low=1)
    k = int(clusters.max()) + 1
    sizes = np.bincount(clusters[clusters >= 0], minlength=k)
    tried: list[tuple[tuple[int, ...], int, bool]] = []
    gen = subsets_by_size(sizes)
    batch_size = check_int(first_batch, "first_batch", low=1)
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

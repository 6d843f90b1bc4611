"""Judges: model-free stand-ins for the human who says which digit an image shows.

An invariance attack must change the *oracle* (human) label of an input, not a
classifier's. A judge is any callable

``judge(images) -> probabilities or labels``

taking a batch of images of shape ``(n, 28, 28)`` with pixel values in ``[0, 1]`` and
returning either class probabilities of shape ``(n, n_classes)`` or integer labels of
shape ``(n,)`` (:data:`theory.oracles.REJECT` allowed). :func:`reads_as` turns either
form into the decision "image ``i`` reads as class ``c``".

The default judge, :class:`KNNJudge`, is a k-nearest-neighbour vote over the
*binarised* MNIST training set (Hamming distance), i.e. it depends on nothing the
project later evaluates (no trained network, no robust model).

Example
-------
>>> import numpy as np
>>> train = np.zeros((4, 28, 28)); train[2:, 10:18, 12:16] = 1.0
>>> judge = KNNJudge(train, np.array([0, 0, 1, 1]), n_neighbors=1)
>>> judge(train[[0, 3]]).argmax(axis=1).tolist()
[0, 1]
>>> reads_as(judge, train[[0, 3]], np.array([1, 1])).tolist()
[False, True]
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from invariance_tradeoffs.simulations.images import as_unit_images
from invariance_tradeoffs.theory.validation import as_labels, check_n_classes

__all__ = [
    "JUDGE_NAMES",
    "Judge",
    "KNNEdits",
    "KNNJudge",
    "MeanJudge",
    "MemoJudge",
    "ProbabilityJudge",
    "binarize",
    "build_judge",
    "judge_labels",
    "judge_probabilities",
    "probabilities_read_as",
    "reads_as",
]

#: A judge maps images (n, 28, 28) in [0, 1] to probabilities (n, C) or labels (n,).
Judge = Callable[[np.ndarray], np.ndarray]


def binarize(images: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Boolean images: pixel value strictly above ``threshold`` (the paper binarises at 0.5)."""
    return np.asarray(images) > threshold


def judge_probabilities(
    judge: Judge, images: np.ndarray, n_classes: int = 10
) -> np.ndarray:
    """Call ``judge`` and return its verdict as class probabilities ``(n, n_classes)``.

    Labels are turned into one-hot rows; :data:`~theory.oracles.REJECT` becomes an
    all-zero row (reads as no class).

    Raises
    ------
    ValueError
        The judge returned an array of the wrong shape, labels out of range, or
        probabilities outside ``[0, 1]``.
    """
    n_classes = check_n_classes(n_classes)
    n = len(images)
    out = np.asarray(judge(images))
    if out.ndim == 1:
        labels = as_labels(out, "judge output", n_classes=n_classes, length=n)
        probs = np.zeros((n, n_classes))
        ok = labels >= 0
        probs[np.nonzero(ok)[0], labels[ok]] = 1.0
        return probs
    if out.shape != (n, n_classes):
        raise ValueError(
            f"judge output must have shape ({n},) (labels) or ({n}, {n_classes}) "
            f"(probabilities), got {out.shape}"
        )
    probs = out.astype(np.float64)
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1:
        raise ValueError("judge probabilities must be finite and in [0, 1]")
    return probs


def judge_labels(judge: Judge, images: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """The judge's label of each image: its largest score (ties towards the lower class),
    or :data:`~theory.oracles.REJECT` when it gives no class any score; int64 ``(n,)``."""
    from invariance_tradeoffs.theory.oracles import REJECT

    probs = judge_probabilities(judge, images, n_classes)
    return np.where(probs.max(axis=1) > 0, probs.argmax(axis=1), REJECT).astype(np.int64)


def reads_as(
    judge: Judge,
    images: np.ndarray,
    targets: np.ndarray | int,
    *,
    min_confidence: float = 0.0,
    n_classes: int = 10,
) -> np.ndarray:
    """Whether each image reads as its target class to ``judge``.

    Image ``i`` reads as ``targets[i]`` when that class has the largest judge score
    (ties broken towards the lower class index) and a score of at least
    ``min_confidence``.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    probs = judge_probabilities(judge, images, n_classes)
    return probabilities_read_as(probs, targets, min_confidence=min_confidence)


def probabilities_read_as(
    probs: np.ndarray, targets: np.ndarray | int, *, min_confidence: float = 0.0
) -> np.ndarray:
    """:func:`reads_as` on class probabilities ``(n, n_classes)`` already computed."""
    probs = np.asarray(probs)
    n_classes = probs.shape[1]
    targets = np.broadcast_to(np.asarray(targets, dtype=np.int64), (len(probs),))
    if np.any((targets < 0) | (targets >= n_classes)):
        raise ValueError(f"targets must be classes in 0..{n_classes - 1}")
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
    score = probs[np.arange(len(probs)), targets]
    return (probs.argmax(axis=1) == targets) & (score >= min_confidence) & (score > 0)


class KNNJudge:
    """k-nearest-neighbour vote over binarised training images (Hamming distance).

    A model-free proxy for the human label: an image reads as the class most common
    among its ``n_neighbors`` nearest training images after binarisation at 0.5.

    On binary vectors the Hamming distance is ``|a| + |b| - 2 a.b``, so the distances to
    all training images are one float32 matrix product; ties are broken towards the
    lower training index, which makes the vote deterministic. The verdicts equal those of
    :class:`sklearn.neighbors.KNeighborsClassifier` (brute force, Euclidean) on the
    binarised pixels whenever the ``k``-th and ``(k+1)``-th distances differ (tested);
    this class exists because it is faster and because :meth:`edits` can judge many
    edits of one image without forming them.

    Parameters
    ----------
    train_images : array (n, 28, 28)
        Reference images (uint8 0..255 or float in [0, 1]), e.g. the MNIST training set.
    train_labels : array (n,)
        Their classes.
    n_neighbors : int
        Votes per image.
    n_classes : int
        Number of classes (columns of the output).
    chunk : int
        Images judged per matrix product (bounds memory: ``chunk * n`` floats).
    """

    def __init__(
        self,
        train_images: np.ndarray,
        train_labels: np.ndarray,
        *,
        n_neighbors: int = 10,
        n_classes: int = 10,
        chunk: int = 256,
    ) -> None:
        imgs = as_unit_images(train_images, "train_images")
        self.n_classes = check_n_classes(n_classes)
        self.labels = as_labels(
            train_labels, "train_labels", n_classes=self.n_classes, allow_reject=False,
            length=len(imgs),
        )
        if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int | np.integer):
            raise TypeError(f"n_neighbors must be an integer, got {type(n_neighbors).__name__}")
        if not 1 <= n_neighbors <= len(imgs):
            raise ValueError(f"n_neighbors must be in 1..{len(imgs)}, got {n_neighbors}")
        if isinstance(chunk, bool) or not isinstance(chunk, int | np.integer) or chunk < 1:
            raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
        self.n_neighbors = int(n_neighbors)
        self.chunk = int(chunk)
        #: (784, n) binarised training images, one column each, and their ink counts.
        self._bits = np.ascontiguousarray(binarize(imgs).reshape(len(imgs), -1).T, np.float32)
        self._ink = self._bits.sum(axis=0)
        self._bool = self._bits.astype(bool)  # the same, one byte per pixel, for gathers

    @property
    def n_train(self) -> int:
        return self._bits.shape[1]

    def _votes(self, dist: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """Vote fractions from integer distances (m, n') to training columns ``cols``."""
        n = self.n_train
        idx = np.arange(n) if cols is None else cols
        key = np.rint(dist).astype(np.int64) * n + idx  # unique keys: ties -> lower index
        k = self.n_neighbors
        nn = np.argpartition(key, k - 1, axis=1)[:, :k]
        labels = self.labels[idx[nn]]
        out = np.zeros((len(dist), self.n_classes))
        np.add.at(out, (np.repeat(np.arange(len(dist)), k), labels.ravel()), 1.0)
        return out / k  # exact fractions: a unanimous vote is 1.0

    def distances(self, images: np.ndarray) -> np.ndarray:
        """Hamming distances (m, n) between binarised ``images`` and the training set."""
        imgs = as_unit_images(images, "images")
        q = binarize(imgs).reshape(len(imgs), -1).astype(np.float32)
        dots = q @ self._bits
        return self._ink[None, :] + q.sum(axis=1)[:, None] - 2.0 * dots

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Vote fractions ``(m, n_classes)`` of the binarised ``images``."""
        imgs = as_unit_images(images, "images")
        return np.concatenate(
            [self._votes(self.distances(imgs[s : s + self.chunk]))
             for s in range(0, len(imgs), self.chunk)]
        )

    def edits(self, base: np.ndarray) -> KNNEdits:
        """Judge of many pixel-flip edits of one image (see :class:`KNNEdits`)."""
        return KNNEdits(self, base)

    def __repr__(self) -> str:
        return f"KNNJudge(n_neighbors={self.n_neighbors}, n_train={self.n_train})"


class KNNEdits:
    """Exact kNN votes for edits of one image that flip unions of disjoint pixel sets.

    For ``b = binarize(base)`` and disjoint boolean ``parts`` ``P_1..P_k``, the edit
    selected by a row ``z`` of a membership matrix ``Z (m, k)`` is ``b XOR (union of the
    P_j with z_j)``. Its Hamming distance to a training image ``a`` is
    ``d(b, a) + sum_j z_j (|P_j| - 2 |(a XOR b) & P_j|)``: the distances ``d(b, .)`` are
    computed once per base image, each set of parts costs a gather of its pixels'
    rows, and every edit a ``(k,)``-by-``(k, n)`` product. Only training images with
    ``d(b, a) <= theta + 2 F`` (``theta``: the k-th smallest ``d(b, .)``; ``F``: most
    pixels an edit flips) can be neighbours of an edit, so the vote is exact while
    looking at those alone.

    Parameters
    ----------
    judge : KNNJudge
    base : ndarray (28, 28)
        The image being edited, in [0, 1].
    """

    def __init__(self, judge: KNNJudge, base: np.ndarray) -> None:
        base = np.asarray(base)
        if base.shape != (28, 28):
            raise ValueError(f"base must have shape (28, 28), got {base.shape}")
        self.judge = judge
        self.bits = binarize(base).ravel()
        self.d0 = judge.distances(base[None])[0]
        k = judge.n_neighbors
        self.theta = float(np.partition(self.d0, k - 1)[k - 1])

    def scorer(
        self, parts: np.ndarray, max_flip: int | None = None
    ) -> Callable[[np.ndarray], np.ndarray]:
        """``scorer(Z (m, k) bool) -> vote fractions (m, n_classes)`` for these parts.

        Identical to calling the judge on the edited images. ``max_flip`` (default: all
        parts) bounds the pixels an edit may flip; larger edits raise ``ValueError``.
        """
        parts = np.asarray(parts, dtype=bool)
        if parts.ndim != 3 or parts.shape[1:] != (28, 28):
            raise ValueError(f"parts must have shape (k, 28, 28), got {parts.shape}")
        flat = parts.reshape(len(parts), -1)
        if flat.sum(axis=0).max(initial=0) > 1:
            raise ValueError("parts must be disjoint")
        sizes = flat.sum(axis=1)
        flip = int(sizes.sum()) if max_flip is None else min(int(max_flip), int(sizes.sum()))
        cols = np.flatnonzero(self.d0 <= self.theta + 2 * flip)
        owner, pix = np.nonzero(flat)  # pixels of each part, grouped by part
        # |(a XOR b) & P_j| for the candidate training images a, summed per part.
        differ = np.take(self.judge._bool[pix], cols, axis=1) != self.bits[pix][:, None]
        counts = np.zeros((len(parts), len(cols)), dtype=np.int32)
        nonempty = np.flatnonzero(sizes)
        if len(pix):
            starts = np.searchsorted(owner, nonempty)
            counts[nonempty] = np.add.reduceat(differ, starts, axis=0, dtype=np.int32)
        contrib = (sizes[:, None] - 2 * counts).astype(np.float32)
        base_d = self.d0[cols]

        def scorer(z: np.ndarray) -> np.ndarray:
            z = np.asarray(z)
            if z.ndim != 2 or z.shape[1] != len(parts):
                raise ValueError(f"Z must have shape (m, {len(parts)}), got {z.shape}")
            z = z.astype(np.float32)
            if np.any(z @ sizes > flip):
                raise ValueError(f"an edit flips more than max_flip={flip} pixels")
            return self.judge._votes(base_d[None, :] + z @ contrib, cols)

        return scorer


class ProbabilityJudge:
    """A labeller with ``predict_proba`` on model input ``(n, 1, 28, 28)`` float32 (e.g.
    the proxy ensemble, :class:`~simulations.models.proxy.ProxyLabeller`) as a judge."""

    def __init__(self, labeller: object, name: str | None = None) -> None:
        if not callable(getattr(labeller, "predict_proba", None)):
            raise TypeError("labeller must have a predict_proba method")
        self.labeller = labeller
        self.name = name or getattr(labeller, "name", type(labeller).__name__)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = as_unit_images(images, "images", channels=True, dtype=np.float32)
        return np.asarray(self.labeller.predict_proba(x), dtype=np.float64)

    def __repr__(self) -> str:
        return f"ProbabilityJudge({self.name!r})"


class MeanJudge:
    """Ensemble of judges: the mean of their probabilities (labels count as one-hot,
    a reject as an all-zero row), so an image reads as a class only as far as the
    members, on average, say so."""

    def __init__(self, judges: dict[str, Judge], n_classes: int = 10) -> None:
        if not judges or not all(callable(j) for j in judges.values()):
            raise ValueError("judges must be a non-empty dict of callables")
        self.judges = dict(judges)
        self.n_classes = check_n_classes(n_classes)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.mean([judge_probabilities(j, images, self.n_classes)
                        for j in self.judges.values()], axis=0)

    def __repr__(self) -> str:
        return f"MeanJudge({', '.join(map(repr, self.judges.values()))})"


class MemoJudge:
    """``judge`` remembering its verdict on the batches it has seen (keyed by the
    batch's bytes), so that judging the same images again -- e.g. by an ensemble that
    holds it, right after it judged them alone -- costs nothing. For evaluation, not for
    the attacks (whose batches are all new)."""

    def __init__(self, judge: Judge) -> None:
        if not callable(judge):
            raise TypeError("judge must be callable")
        self.judge = judge
        self._seen: dict[tuple, np.ndarray] = {}

    def __call__(self, images: np.ndarray) -> np.ndarray:
        imgs = as_unit_images(images, "images")
        key = (imgs.shape, hashlib.sha256(imgs.tobytes()).hexdigest())
        if key not in self._seen:
            self._seen[key] = np.asarray(self.judge(imgs))
        return self._seen[key].copy()

    def __getattr__(self, name: str) -> object:  # calibration, name, ... of the judge
        if name == "judge":
            raise AttributeError(name)
        return getattr(self.judge, name)

    def __repr__(self) -> str:
        return repr(self.judge)


#: Judges :func:`build_judge` knows: the k-NN vote, the analysis-by-synthesis VAEs, the
#: proxy CNN ensemble, and the mean of the three.
JUDGE_NAMES = ("knn", "abs", "proxy", "ensemble")


def build_judge(
    name: str,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    *,
    abs_config: str = "abs",
    proxy_config: str = "proxy-small",
    cache_dir: str | None = None,
    n_neighbors: int = 10,
    progress: bool = False,
) -> Judge:
    """The judge called ``name`` (:data:`JUDGE_NAMES`), built on MNIST training data.

    ``knn`` votes over ``train_images`` (as the l0 attack's search uses them); ``abs``
    (:mod:`~invariance_tradeoffs.simulations.models.abs_judge`) and ``proxy``
    (:mod:`~invariance_tradeoffs.simulations.models.proxy`) are trained on -- or loaded
    from the model cache ``cache_dir`` for -- the full ``train_images`` given, with
    their own held-out split; ``ensemble`` is the :class:`MeanJudge` of the three.

    Raises
    ------
    ValueError
        ``name`` is not a known judge (the message lists them).
    """
    if name not in JUDGE_NAMES:
        raise ValueError(f"judge must be one of {', '.join(JUDGE_NAMES)}, got {name!r}")
    if name == "knn":
        return KNNJudge(train_images, train_labels, n_neighbors=n_neighbors)
    if name == "abs":
        from invariance_tradeoffs.simulations.models.abs_judge import train_abs

        return train_abs(abs_config, train_images, train_labels, cache_dir=cache_dir,
                         progress=progress)
    if name == "proxy":
        from invariance_tradeoffs.simulations.models.proxy import train_proxy

        return ProbabilityJudge(train_proxy(proxy_config, train_images, train_labels,
                                            cache_dir=cache_dir, progress=progress))
    kw = {"abs_config": abs_config, "proxy_config": proxy_config, "cache_dir": cache_dir,
          "n_neighbors": n_neighbors, "progress": progress}
    return MeanJudge({m: build_judge(m, train_images, train_labels, **kw)
                      for m in ("knn", "abs", "proxy")})

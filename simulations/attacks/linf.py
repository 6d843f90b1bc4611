"""The model-free l-inf invariance attack on MNIST (Tramer et al., ICML 2020, Section 5).

An *invariance example* for a source ``x`` of class ``y`` is a point ``x'`` with
``||x' - x||_inf <= eps`` whose true (human) class differs from ``y``. The attack needs no
model:

1. **Alignment** (:mod:`simulations.attacks.alignment`): for each class ``c != y``, the
   nearest training image of class ``c`` to any rotation/translation of ``x``, aligned
   back onto ``x``.
2. **Projection** (:func:`project_linf`): move ``x`` towards the aligned neighbour ``n``
   inside the eps-ball -- where ``|n - x| <= eps`` and ``x > 0`` take ``n``'s value,
   where ``|n - x| > eps`` move by ``eps`` towards ``n``; clip to ``[x - eps, x + eps]``
   and ``[0, 1]``.
3. **Target choice** (:func:`select_targets`): among the candidates whose class a human
   could plausibly read the source as (:data:`DEFAULT_TARGETS`), keep the one that
   removes the least ink (sum of the positive part of ``x - x'``).

With eps = 0.3 on the authors' 100 test indices this reproduces their released
``automated_eps03`` examples exactly (see docs/mnist.md).

Example
-------
>>> from invariance_tradeoffs.simulations.data.mnist import load_mnist  # doctest: +SKIP
>>> train, test = load_mnist("train"), load_mnist("test")           # doctest: +SKIP
>>> attack = LinfInvarianceAttack(train.images, train.labels, eps=0.3)  # doctest: +SKIP
>>> result = attack.run(test.images[:5], test.labels[:5])             # doctest: +SKIP
>>> result.examples.shape, result.targets                             # doctest: +SKIP
((5, 28, 28), array([...]))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from invariance_tradeoffs.simulations.attacks.alignment import (
    TRANSFORM_GRID,
    AlignmentResult,
    NeighbourIndex,
    align_neighbours,
)
from invariance_tradeoffs.simulations.attacks.base import Attack, AttackResult, check_epsilons
from invariance_tradeoffs.simulations.data.mnist import to_unit
from invariance_tradeoffs.simulations.images import as_unit_images
from invariance_tradeoffs.theory.distances import LpDistance
from invariance_tradeoffs.theory.validation import as_labels, check_eps

__all__ = [
    "DEFAULT_TARGETS",
    "LinfAttackResult",
    "LinfInvarianceAttack",
    "check_radius",
    "check_targets",
    "examples_from_neighbours",
    "compare_with_published",
    "project_linf",
    "removed_ink",
    "select_targets",
]

#: Per source class, the classes a human could plausibly read an invariance example as
#: (the authors' table).
DEFAULT_TARGETS: dict[int, tuple[int, ...]] = {
    0: (4, 6, 8, 9),
    1: (4, 6, 7, 9),
    2: (8,),
    3: (8,),
    4: (8, 9),
    5: (3, 8),
    6: (0,),
    7: (2, 3),
    8: (3,),
    9: (3, 4, 5),
}

#: A selection rule scores ``(source, candidate)`` images in [0, 1]; lowest score wins.
Selection = str | Callable[[np.ndarray, np.ndarray], float]


def check_radius(eps: object, name: str = "eps") -> float:
    """Return ``eps`` as a float after checking ``0 < eps <= 1`` (pixels are in [0, 1])."""
    value = check_eps(eps, name)
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1] (pixel values are in [0, 1]), got {value}")
    return value


def project_linf(source: np.ndarray, neighbour: np.ndarray, eps: float) -> np.ndarray:
    """Step 2: move ``source`` towards ``neighbour`` inside the l-inf ``eps``-ball.

    Parameters
    ----------
    source, neighbour : ndarray, float in [0, 1], broadcastable shapes
        The source image ``x`` and the aligned neighbour ``n``.
    eps : float
        Radius in (0, 1].

    Returns
    -------
    ndarray (float64)
        ``x'`` with ``||x' - x||_inf <= eps`` and values in [0, 1]: ``n`` where
        ``|n - x| <= eps`` and ``x > 0``; ``x + eps * sign(n - x)`` where
        ``|n - x| > eps``; ``x`` elsewhere.
    """
    eps = check_radius(eps)
    x = np.asarray(source, dtype=np.float64)
    n = np.asarray(neighbour, dtype=np.float64)
    try:
        x, n = np.broadcast_arrays(x, n)
    except ValueError:
        raise ValueError(f"source and neighbour shapes differ: {x.shape} vs {n.shape}") from None
    d = n - x
    out = np.where((np.abs(d) <= eps) & (x > 0), n, x)
    out = np.where(np.abs(d) > eps, x + eps * np.sign(d), out)
    return np.clip(np.clip(out, x - eps, x + eps), 0.0, 1.0)


def removed_ink(source: np.ndarray, example: np.ndarray) -> np.ndarray:
    """Sum over the last two axes of the positive part of ``source - example``."""
    diff = np.asarray(source, dtype=np.float64) - np.asarray(example, dtype=np.float64)
    return np.maximum(diff, 0.0).sum(axis=(-2, -1))


def check_targets(targets: Mapping[int, Sequence[int]] | None, n_classes: int = 10) -> dict:
    """Validate a target table (source class -> plausible target classes).

    ``None`` means every other class is plausible.
    """
    if targets is None:
        return {c: tuple(t for t in range(n_classes) if t != c) for c in range(n_classes)}
    if not isinstance(targets, Mapping):
        raise TypeError(f"targets must be a mapping class -> classes, got {type(targets).__name__}")
    table = {}
    for key, vals in targets.items():
        c = int(key)
        vals = tuple(int(v) for v in vals)
        if not 0 <= c < n_classes:
            raise ValueError(f"targets has source class {key!r} outside 0..{n_classes - 1}")
        if not vals:
            raise ValueError(f"targets[{c}] is empty: no plausible target for class {c}")
        bad = [v for v in vals if not 0 <= v < n_classes or v == c]
        if bad:
            raise ValueError(f"targets[{c}] has invalid target classes {bad}")
        table[c] = vals
    return table


def _scores(sources: np.ndarray, candidates: np.ndarray, selection: Selection) -> np.ndarray:
    if selection == "least_ink":
        return removed_ink(sources[:, None], candidates)
    if callable(selection):
        return np.array(
            [
                [float(selection(s, c)) for c in cands]
                for s, cands in zip(sources, candidates, strict=True)
            ]
        )
    raise ValueError(f"selection must be 'least_ink' or a callable, got {selection!r}")


def select_targets(
    sources: np.ndarray,
    candidates: np.ndarray,
    candidate_classes: np.ndarray,
    source_labels: np.ndarray,
    targets: Mapping[int, Sequence[int]] | None = DEFAULT_TARGETS,
    selection: Selection = "least_ink",
) -> np.ndarray:
    """Step 3: position of the chosen candidate for each source.

    Among the candidates whose class is in ``targets[label]``, the one with the lowest
    score (default: least removed ink); ties go to the first in candidate order.

    Parameters
    ----------
    sources : ndarray (n, 28, 28) in [0, 1]
    candidates : ndarray (n, m, 28, 28) in [0, 1]
    candidate_classes : ndarray (n, m)
    source_labels : ndarray (n,)
    targets : mapping or None
        Plausible targets per source class (``None``: any other class).
    selection : "least_ink" or callable
        ``selection(source, candidate) -> score``; the lowest score is kept.

    Returns
    -------
    ndarray (n,) int64
        Index into the candidate axis.

    Raises
    ------
    ValueError
        A source has no plausible candidate.
    """
    table = check_targets(targets)
    scores = _scores(sources, candidates, selection)
    allowed = np.array(
        [
            [int(c) in table.get(int(y), ()) for c in row]
            for row, y in zip(candidate_classes, source_labels, strict=True)
        ]
    )
    none = np.flatnonzero(~allowed.any(axis=1))
    if none.size:
        raise ValueError(f"sources {none[:5].tolist()} have no candidate in the target table")
    return np.argmin(np.where(allowed, scores, np.inf), axis=1).astype(np.int64)


@dataclass
class LinfAttackResult:
    """Invariance examples of one l-inf attack batch (images in [0, 1]).

    Attributes
    ----------
    sources : ndarray (n, 28, 28)
    source_labels : ndarray (n,) int64
    examples : ndarray (n, 28, 28)
        The invariance examples ``x'``.
    targets : ndarray (n,) int64
        Class of the chosen neighbour (the intended human label).
    distortion : ndarray (n,)
        ``||x' - x||_inf``.
    neighbours : ndarray (n, 28, 28)
        The chosen aligned neighbour.
    alignment : AlignmentResult or None
        Step-1 output (all candidates), when computed here.
    """

    sources: np.ndarray
    source_labels: np.ndarray
    examples: np.ndarray
    targets: np.ndarray
    distortion: np.ndarray
    neighbours: np.ndarray
    alignment: AlignmentResult | None = None

    def as_arrays(self) -> dict[str, np.ndarray]:
        """Arrays for :func:`simulations.attacks.runs.run_attack` (core keys + extras)."""
        out = {
            "sources": self.sources,
            "source_labels": self.source_labels,
            "examples": self.examples,
            "targets": self.targets,
            "distortion": self.distortion,
            "neighbours": self.neighbours,
        }
        if self.alignment is not None:
            pick = np.flatnonzero((self.alignment.classes == self.targets[:, None]).ravel())
            out["neighbour_train_indices"] = self.alignment.train_indices.ravel()[pick]
            out["neighbour_transforms"] = self.alignment.transforms.reshape(-1, 3)[pick]
        return out


def examples_from_neighbours(
    sources: np.ndarray,
    source_labels: np.ndarray,
    neighbours: np.ndarray,
    neighbour_classes: np.ndarray,
    eps: float,
    *,
    targets: Mapping[int, Sequence[int]] | None = DEFAULT_TARGETS,
    selection: Selection = "least_ink",
) -> LinfAttackResult:
    """Steps 2-3 given aligned neighbours (e.g. the published ``all_nns.npy``).

    Parameters
    ----------
    sources : ndarray (n, 28, 28) uint8
    source_labels : ndarray (n,)
    neighbours : ndarray (n, m, 28, 28) uint8
        Aligned neighbours (candidates).
    neighbour_classes : ndarray (n, m)
    eps : float
        Radius in (0, 1].
    targets, selection
        See :func:`select_targets`.
    """
    eps = check_radius(eps)
    x = to_unit(np.asarray(sources))
    n = to_unit(np.asarray(neighbours))
    if x.ndim != 3 or n.shape[:1] + n.shape[2:] != x.shape or n.ndim != 4:
        raise ValueError(f"neighbours must have shape (n, m, 28, 28) matching sources {x.shape}")
    labels = as_labels(source_labels, "source_labels", n_classes=10, allow_reject=False,
                       length=len(x))
    classes = np.asarray(neighbour_classes)
    if classes.shape != n.shape[:2]:
        raise ValueError(f"neighbour_classes must have shape {n.shape[:2]} (one class per "
                         f"neighbour), got {classes.shape}")
    classes = as_labels(classes.reshape(-1), "neighbour_classes", n_classes=10,
                        allow_reject=False).reshape(classes.shape)
    candidates = project_linf(x[:, None], n, eps)
    pick = select_targets(x, candidates, classes, labels, targets, selection)
    rows = np.arange(len(x))
    examples = candidates[rows, pick]
    distortion = np.abs(examples - x).reshape(len(x), -1).max(axis=1)
    return LinfAttackResult(
        sources=x,
        source_labels=labels,
        examples=examples,
        targets=classes[rows, pick],
        distortion=distortion,
        neighbours=n[rows, pick],
    )


class LinfInvarianceAttack(Attack):
    """The full l-inf invariance attack with a reusable training-set index.

    ``attack(images, labels, epsilons=[0.3, 0.4])`` aligns the neighbours once and
    projects at every radius (:class:`~invariance_tradeoffs.simulations.attacks.base.Attack`);
    success means an example was made (always, with the default targets).

    Parameters
    ----------
    train_images : ndarray (N, 28, 28) uint8
        Training images searched for neighbours (all 60000 reproduce the published data).
    train_labels : ndarray (N,)
    eps : float, optional
        Radius in (0, 1] of :meth:`run` (batch runs); calls take ``epsilons`` instead.
    targets : mapping or None
        Plausible target classes per source class (default :data:`DEFAULT_TARGETS`).
    selection : "least_ink" or callable
        Target selection rule (lowest score wins).
    grid : ndarray (m, 3)
        Alignment transforms (default :data:`~simulations.attacks.alignment.TRANSFORM_GRID`).
    n_components : int
        Lower-bound dimension of the exact search (speed only).
    n_jobs : int
        joblib workers over sources.

    Examples
    --------
    >>> attack = LinfInvarianceAttack.from_mnist()                          # doctest: +SKIP
    >>> examples, success = attack(test_images, test_labels, epsilons=[0.3, 0.4])  # doctest: +SKIP
    """

    kind = "invariance"
    distance = LpDistance("linf")

    def __init__(
        self,
        train_images: np.ndarray,
        train_labels: np.ndarray,
        eps: float | None = None,
        *,
        targets: Mapping[int, Sequence[int]] | None = DEFAULT_TARGETS,
        selection: Selection = "least_ink",
        grid: np.ndarray = TRANSFORM_GRID,
        n_components: int = 64,
        n_jobs: int | None = 1,
    ) -> None:
        self.eps = None if eps is None else check_radius(eps)
        self.targets = check_targets(targets)
        if not (selection == "least_ink" or callable(selection)):
            raise ValueError(f"selection must be 'least_ink' or a callable, got {selection!r}")
        self.selection = selection
        self.grid = grid
        self.n_jobs = n_jobs
        self.index = NeighbourIndex(train_images, train_labels, n_components=n_components)

    @classmethod
    def from_mnist(cls, data_dir: str | None = None, **kwargs: object) -> LinfInvarianceAttack:
        """The attack on the whole MNIST training set (found or fetched like
        :func:`~invariance_tradeoffs.simulations.data.mnist.load_mnist`)."""
        from invariance_tradeoffs.simulations.data.mnist import load_mnist

        train = load_mnist("train", data_dir)
        return cls(train.images, train.labels, **kwargs)  # type: ignore[arg-type]

    def params(self) -> dict:
        return {"attack": "linf", "distance": "linf", "eps": self.eps,
                "targets": None if self.targets is None
                else {str(k): list(v) for k, v in self.targets.items()},
                "selection": self.selection if isinstance(self.selection, str) else "custom"}

    def align(self, sources: np.ndarray, labels: np.ndarray) -> AlignmentResult:
        """Step 1 for a batch of sources (uint8 ``(n, 28, 28)``)."""
        return align_neighbours(
            sources, labels, index=self.index, grid=self.grid, n_jobs=self.n_jobs
        )

    def __call__(self, images: np.ndarray, labels: np.ndarray, *,
                 epsilons: float | Sequence[float], model: object = None) -> AttackResult:
        """Invariance examples of ``images`` at every radius of ``epsilons``.

        ``images`` are MNIST images as stored (uint8) or as floats ``k / 255`` (any shape
        the package accepts); the alignment needs the stored pixels exactly.
        """
        self._require_model(model)
        radii = tuple(check_radius(e) for e in check_epsilons(epsilons))
        unit = as_unit_images(images, "images")
        pixels = np.rint(unit * 255.0)
        if np.max(np.abs(pixels - unit * 255.0), initial=0.0) > 1e-6:
            raise ValueError("images must be MNIST pixels: uint8, or floats that are multiples "
                             "of 1/255 (the alignment works on the stored values)")
        sources = pixels.astype(np.uint8)
        aligned = self.align(sources, labels)
        runs = [examples_from_neighbours(sources, labels, aligned.neighbours, aligned.classes,
                                         e, targets=self.targets, selection=self.selection)
                for e in radii]
        return AttackResult(
            epsilons=radii,
            examples=np.stack([r.examples for r in runs]),
            success=np.stack([r.targets >= 0 for r in runs]),
            distortion=np.stack([r.distortion for r in runs]),
            targets=np.stack([r.targets for r in runs]),
            extras={"neighbours": np.stack([r.neighbours for r in runs])},
        )

    def run(self, sources: np.ndarray, labels: np.ndarray,
            eps: float | None = None) -> LinfAttackResult:
        """Invariance examples at one radius (``eps``, else the constructor's) for a batch of
        uint8 sources: the batch function of resumable runs."""
        eps = self.eps if eps is None else check_radius(eps)
        if eps is None:
            raise ValueError("run needs a radius: eps= here or in the constructor")
        alignment = self.align(sources, labels)
        result = examples_from_neighbours(
            sources,
            labels,
            alignment.neighbours,
            alignment.classes,
            eps,
            targets=self.targets,
            selection=self.selection,
        )
        result.alignment = alignment
        return result


def compare_with_published(
    examples: np.ndarray,
    published: np.ndarray,
    *,
    targets: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
    candidate_classes: np.ndarray | None = None,
) -> dict[str, float]:
    """How close examples in [0, 1] come to published ones stored as 0..255 values.

    Each of ``examples`` is quantised the way the published array is stored (truncation
    to float32 for float files, rounding for uint8) and compared pixel by pixel.

    Parameters
    ----------
    examples : ndarray (n, 28, 28) in [0, 1]
    published : ndarray (n, 28, 28)
        The published array as stored (float32 0..255 or uint8).
    targets, candidates, candidate_classes : ndarray, optional
        Our target classes, and all candidate examples (n, m, 28, 28) in [0, 1] with
        their classes: the published example's target is inferred as the class of the
        candidate nearest to it (mean absolute difference), and compared with ours.

    Returns
    -------
    dict
        ``n``, ``identical`` (examples equal at storage precision), ``pixels_differing``
        (fraction), ``mean_abs_diff`` and ``max_abs_diff`` (grey levels), and, with
        candidates, ``same_target`` (count).
    """
    examples = np.asarray(examples, dtype=np.float64)
    published = np.asarray(published)
    if examples.shape != published.shape:
        raise ValueError(f"shapes differ: {examples.shape} vs {published.shape}")

    def quantise(a: np.ndarray) -> np.ndarray:
        if published.dtype == np.uint8:
            return np.floor(a * 255 + 0.5).astype(np.float64)
        return (a * 255).astype(published.dtype).astype(np.float64)

    ref = published.astype(np.float64)
    diff = np.abs(quantise(examples) - ref)
    out = {
        "n": float(len(examples)),
        "identical": float(np.all(diff == 0, axis=(1, 2)).sum()),
        "pixels_differing": float((diff > 0).mean()),
        "mean_abs_diff": float(diff.mean()),
        "max_abs_diff": float(diff.max()),
    }
    if targets is not None and candidates is not None and candidate_classes is not None:
        cand = np.abs(quantise(np.asarray(candidates)) - ref[:, None]).mean(axis=(2, 3))
        inferred = np.asarray(candidate_classes)[np.arange(len(ref)), cand.argmin(axis=1)]
        out["same_target"] = float((inferred == np.asarray(targets)).sum())
    return out

"""The alignment search of the l0 attack: training images of the target classes aligned to
a source by a coarse-to-fine search over transforms (see :mod:`.attack` for the method)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
from scipy.stats import qmc

from invariance_tradeoffs.simulations.attacks.l0.judges import binarize
from invariance_tradeoffs.simulations.attacks.l0.transforms import (
    IDENTITY,
    N_AFFINE,
    TransformSpace,
    change_thickness,
    l0_distance,
    transform_images,
    warp,
)
from invariance_tradeoffs.simulations.attacks.linf import DEFAULT_TARGETS
from invariance_tradeoffs.simulations.images import as_unit_images
from invariance_tradeoffs.theory.validation import as_labels, check_int

__all__ = ["BUDGETS", "PUBLISHED_TARGETS", "Alignment", "AlignmentSearch", "L0Search",
           "TrainingPool", "check_label", "check_source", "resolve_targets"]

#: Target classes tried for each source class by the authors' published l-inf attack
#: (the same table as :data:`invariance_tradeoffs.simulations.attacks.linf.DEFAULT_TARGETS`).
PUBLISHED_TARGETS: dict[int, tuple[int, ...]] = DEFAULT_TARGETS


@dataclass(frozen=True)
class L0Search:
    """How hard the alignment search of the l0 attack looks (its budget).

    Attributes
    ----------
    n_coarse : int
        Quasi-random transforms of the coarse stage (each compared with every pool image).
    n_components : int
        Principal components of the coarse stage's lower bounds.
    n_shortlist : int
        Images per target class whose exact distances the coarse stage computes.
    coarse_levels : tuple of float
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
        Edit-aware refinement: the ``n_polish`` alignments with the smallest accepted
        edits get ``polish_rounds`` rounds of ``polish_population`` perturbed transforms.
    space : TransformSpace
        Parameter ranges of the transforms.
    """

    n_coarse: int = 256
    n_components: int = 64
    n_shortlist: int = 128
    coarse_levels: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)
    n_keep: int = 128
    n_keep_retry: int = 512
    es_rounds: int = 10
    es_population: int = 32
    es_elites: int = 8
    n_refine: int = 12
    refine_rounds: int = 12
    refine_population: int = 16
    n_polish: int = 4
    polish_rounds: int = 6
    polish_population: int = 8
    space: TransformSpace = field(default_factory=TransformSpace)

    def __post_init__(self) -> None:
        for name in ("n_coarse", "n_components", "n_shortlist", "n_keep", "n_keep_retry",
                     "es_population", "es_elites", "refine_population", "polish_population"):
            check_int(getattr(self, name), name, low=1)
        for name in ("es_rounds", "n_refine", "refine_rounds", "n_polish", "polish_rounds"):
            check_int(getattr(self, name), name, low=0)
        if not isinstance(self.space, TransformSpace):
            raise TypeError(f"space must be a TransformSpace, got {type(self.space).__name__}")
        levels = tuple(float(v) for v in self.coarse_levels)
        if not levels or any(abs(v) > self.space.thickness for v in levels):
            raise ValueError(f"coarse_levels must be non-empty and within "
                             f"+-{self.space.thickness}, got {levels}")
        object.__setattr__(self, "coarse_levels", levels)

    def params(self) -> dict:
        """The budget as a JSON-ready dict (without the transform space)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self) if f.name != "space"}


#: Named budgets: ``"default"`` is the one measured in docs/mnist_l0.md; ``"fast"`` is
#: for smoke tests and quick looks.
BUDGETS: dict[str, L0Search] = {
    "default": L0Search(),
    "fast": L0Search(n_coarse=64, n_keep=32, n_keep_retry=64, es_rounds=4, n_refine=4,
                     refine_rounds=4, n_polish=2, polish_rounds=2),
}


def check_source(source: object) -> np.ndarray:
    """One source image as a (28, 28) float array in [0, 1]."""
    arr = np.asarray(source)
    if arr.shape != (28, 28):
        raise ValueError(f"source must have shape (28, 28), got {arr.shape}")
    return as_unit_images(arr[None], "source")[0]


def check_label(label: object) -> int:
    """A class label in 0..9."""
    if isinstance(label, bool) or not isinstance(label, numbers.Integral):
        raise TypeError(f"label must be an integer class, got {label!r}")
    if not 0 <= int(label) < 10:
        raise ValueError(f"label must be a class in 0..9, got {label}")
    return int(label)


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


class TrainingPool:
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
            [embed(stack[:, s : s + 4096], basis) for s in range(0, n, 4096)], axis=1
        )
        self.emb_norms = np.sum(self.emb**2, axis=-1)

    def hamming(self, queries: np.ndarray) -> np.ndarray:
        """Hamming distances ``(L, n, m)`` between pool images and binary queries (m, 784)."""
        q = queries.astype(np.float32)
        if self.bins.dtype == np.float32:
            dots = stacked_dot(self.bins, q)
        else:  # bool storage: convert in chunks of rows
            n = self.bins.shape[1]
            dots = np.concatenate(
                [stacked_dot(self.bins[:, s : s + 2048].astype(np.float32), q)
                 for s in range(0, n, 2048)], axis=1,
            )
        return self.norms[:, :, None] + q.sum(axis=1)[None, None, :] - 2.0 * dots

    def lower_bounds(self, q_emb: np.ndarray) -> np.ndarray:
        """Lower bounds ``(L, n, m)`` of the Hamming distances to queries embedded as ``q_emb``."""
        q_norms = np.sum(q_emb**2, axis=-1)
        return self.emb_norms[:, :, None] + q_norms[None, None, :] - 2.0 * stacked_dot(
            self.emb, q_emb
        )

    def take(self, rows: np.ndarray) -> TrainingPool:
        """The sub-pool of the given rows (copied once, for repeated products)."""
        sub = object.__new__(TrainingPool)
        sub.indices = self.indices[rows]
        sub.bins = self.bins[:, rows].astype(np.float32)
        sub.norms = self.norms[:, rows]
        sub.emb = np.ascontiguousarray(self.emb[:, rows])
        sub.emb_norms = self.emb_norms[:, rows]
        return sub


def stacked_dot(stack: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``stack @ q.T`` for ``stack (L, n, d)`` as one 2-D product (numpy's stacked matmul
    is several times slower here)."""
    L, n, d = stack.shape
    return (np.ascontiguousarray(stack).reshape(L * n, d) @ q.T).reshape(L, n, len(q))


def embed(bits: np.ndarray, basis: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``[P(a - mu), |R(a - mu)|]`` of binary vectors ``bits (..., 784)`` (float32)."""
    mean, comps = basis
    centred = bits.astype(np.float32) - mean
    proj = centred @ comps.T
    resid = np.sum(centred**2, axis=-1) - np.sum(proj**2, axis=-1)
    return np.concatenate([proj, np.sqrt(np.maximum(resid, 0))[..., None]], axis=-1)


class AlignmentSearch:
    """Training images of the target classes aligned to a source image (steps 1-2 of the
    l0 attack), searched with the budget ``search``.

    Parameters
    ----------
    train_images : array (n, 28, 28)
        Training images (uint8 0..255 or float in [0, 1]) the alignments are taken from.
    train_labels : array (n,)
        Their classes.
    targets : "all", "published" or mapping
        Target classes tried per source class (:func:`resolve_targets`).
    search : L0Search
        The budget.
    random_state : int
        Seed of the PCA sample; per-source randomness comes from the caller's generator.
    """

    def __init__(self, train_images: np.ndarray, train_labels: np.ndarray, *,
                 targets: str | Mapping[int, Sequence[int]] = "all",
                 search: L0Search | None = None, random_state: int = 0) -> None:
        self.train_images = as_unit_images(train_images, "train_images")
        self.train_labels = as_labels(
            train_labels, "train_labels", n_classes=10, allow_reject=False,
            length=len(self.train_images),
        )
        self.targets = resolve_targets(targets)
        self.search = L0Search() if search is None else search
        if not isinstance(self.search, L0Search):
            raise TypeError(f"search must be an L0Search, got {type(search).__name__}")
        if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
            raise TypeError(f"random_state must be an integer, got {random_state!r}")
        self.random_state = int(random_state)
        self._pca: tuple[np.ndarray, np.ndarray] | None = None
        self._pools: dict[int, TrainingPool] = {}

    def pool(self, cls: int) -> TrainingPool:
        if cls not in self._pools:
            idx = np.flatnonzero(self.train_labels == cls)
            self._pools[cls] = TrainingPool(
                self.train_images[idx], idx, self.search.coarse_levels, self.basis()
            )
        return self._pools[cls]

    def basis(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and leading principal axes of the binarised training images (float32)."""
        if self._pca is None:
            from sklearn.decomposition import PCA

            rng = np.random.default_rng(self.random_state)
            n = len(self.train_images)
            sample = rng.choice(n, size=min(n, 20000), replace=False)
            bits = binarize(self.train_images[np.sort(sample)]).reshape(-1, 784)
            n_comp = min(self.search.n_components, *bits.shape)
            pca = PCA(n_components=n_comp, svd_solver="randomized", random_state=self.random_state)
            pca.fit(bits.astype(np.float32))
            self._pca = (pca.mean_.astype(np.float32), pca.components_.astype(np.float32))
        return self._pca

    def coarse(
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
        lo, hi = self.search.space.lower, self.search.space.upper
        sobol = qmc.Sobol(N_AFFINE, scramble=True, seed=rng).random(self.search.n_coarse)
        params = lo[:N_AFFINE] + (hi - lo)[:N_AFFINE] * sobol
        params[0] = IDENTITY[:N_AFFINE]
        queries = binarize(warp(source[None], params, inverse=True)).reshape(len(params), -1)
        q_emb = embed(queries, self.basis())
        quota = math.ceil(n_keep / len(classes))
        kept: list[tuple[int, np.ndarray]] = []
        best_p, best_l, best_d = [], [], []
        for cls in classes:
            pool = self.pool(cls)
            bound = pool.lower_bounds(q_emb).min(axis=(0, 2))
            short = np.argsort(bound, kind="stable")[: max(self.search.n_shortlist, quota)]
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

    def local(
        self,
        source: np.ndarray,
        kept: list[tuple[int, np.ndarray]],
        params: np.ndarray,
        level: np.ndarray,
        dist: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        """Local stage (in place): ES around the elites' transforms, inverse frame."""
        lo, hi = self.search.space.lower[:N_AFFINE], self.search.space.upper[:N_AFFINE]
        sigma = 0.1 * (hi - lo)
        n_elite = min(self.search.es_elites, len(dist))
        bins = np.concatenate([self.pool(c).bins[:, r] for c, r in kept], axis=1)
        bins = bins.astype(np.float32)
        norms = bins.sum(axis=2)
        rows = np.arange(bins.shape[1])
        for _ in range(self.search.es_rounds):
            elites = np.argsort(dist, kind="stable")[:n_elite]
            cand = params[np.repeat(elites, self.search.es_population)]
            cand = np.clip(cand + sigma * rng.standard_normal(cand.shape), lo, hi)
            q = binarize(warp(source[None], cand, inverse=True)).reshape(len(cand), -1)
            q = q.astype(np.float32)
            d = norms[:, :, None] + q.sum(axis=1) - 2.0 * stacked_dot(bins, q)  # (L, K, m)
            flat = d.transpose(1, 0, 2).reshape(len(rows), -1)
            arg = flat.argmin(axis=1)
            dmin = flat[rows, arg]
            better = dmin < dist
            lev, j = np.divmod(arg, len(cand))
            dist[better] = dmin[better]
            level[better] = lev[better]
            params[better] = cand[j[better]]
            sigma *= 0.75

    def exact(
        self, source: np.ndarray, rows: np.ndarray, params: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Forward-transformed training images and their exact binarised l0 to ``source``."""
        props = transform_images(self.train_images[rows], params)
        return props, l0_distance(props, np.broadcast_to(source, props.shape))

    def refine(
        self, source: np.ndarray, rows: np.ndarray, params: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact stage: ES on the exact l0 (all 8 parameters), one lineage per row."""
        lo, hi = self.search.space.lower, self.search.space.upper
        props, dist = self.exact(source, rows, params)
        params = params.copy()
        sigma = 0.04 * (hi - lo)
        lam = self.search.refine_population
        for _ in range(self.search.refine_rounds):
            cand = np.repeat(params, lam, axis=0)
            cand = np.clip(cand + sigma * rng.standard_normal(cand.shape), lo, hi)
            cp, cd = self.exact(source, np.repeat(rows, lam), cand)
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
            Training images kept from the coarse stage (default: ``self.search.n_keep``).

        Returns
        -------
        list of Alignment
            ``n_keep`` alignments (one per kept training image), sorted by exact l0.
        """
        source = check_source(source)
        label = check_label(label)
        classes = self.targets[label] if classes is None else tuple(int(c) for c in classes)
        if not classes or label in classes or any(not 0 <= c < 10 for c in classes):
            raise ValueError(f"classes must be classes other than the label {label}, got {classes}")
        rng = np.random.default_rng([self.random_state, int(key)])
        n_keep = self.search.n_keep if n_keep is None else check_int(n_keep, "n_keep", low=1)
        kept, params, level, dist = self.coarse(source, classes, rng, n_keep)
        self.local(source, kept, params, level, dist, rng)
        rows = np.concatenate([self.pool(c).indices[r] for c, r in kept])
        target = np.concatenate([np.full(len(r), c) for c, r in kept])
        levels = np.asarray(self.search.coarse_levels)[level][:, None]
        full = np.concatenate([params, levels], axis=1)
        props, exact = self.exact(source, rows, full)
        top = np.argsort(exact, kind="stable")[: self.search.n_refine]
        if len(top) and self.search.refine_rounds:
            full[top], props[top], exact[top] = self.refine(source, rows[top], full[top], rng)
        order = np.argsort(exact, kind="stable")
        return [
            Alignment(int(rows[i]), int(target[i]), full[i], props[i], int(exact[i]))
            for i in order
        ]

"""Model-free invariance attacks on glyph digits, with the MNIST attacks' interface.

On MNIST, an invariance attack moves a source image towards an image of another class
within a small distortion budget, and humans then judge whether the true label changed.
On :class:`~theory.toys.glyphs.GlyphDigits` the oracle is known, so the same attacks can
be scored exactly. Both attacks here are *model-free and oracle-free* (like the MNIST
ones): they see only the source images, their labels and a labelled pool.

* :func:`linf_invariance_attack`: for each source, take the nearest (l2) pool image of
  another class (the *aligned other-class neighbour*; glyphs are aligned by
  construction, so the MNIST attack's alignment step is the identity) and move the
  source towards it within the l-inf ball with the MNIST attack's own projection step,
  :func:`invariance_tradeoffs.simulations.attacks.linf.project_linf`.
* :func:`l0_invariance_attack`: copy the ``k`` pixels where the neighbour differs most
  from the source (``k`` = the l0 budget).

Each returns the dictionary layout of :mod:`invariance_tradeoffs.simulations.attacks.runs` and
:meth:`invariance_tradeoffs.simulations.attacks.linf.LinfAttackResult.as_arrays` (``sources``,
``source_labels``, ``examples``, ``targets``, ``distortion``, ``neighbours`` -- the
neighbour images -- plus ``neighbour_indices`` into the pool; images flattened to
``(n, d)``), so a glyph run and an MNIST run can be compared field by field. The target
is the nearest other-class image, not the MNIST attack's table of plausible targets
(``DEFAULT_TARGETS`` describes handwritten digits, not seven-segment glyphs).
:func:`score_attack` then reads the oracle and a model on the examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist

from invariance_tradeoffs.simulations.attacks.base import Attack, AttackResult, check_epsilons
from invariance_tradeoffs.simulations.attacks.linf import check_radius, project_linf
from invariance_tradeoffs.theory.distances import LpDistance
from invariance_tradeoffs.theory.oracles import REJECT, predict
from invariance_tradeoffs.theory.results import proportion_estimate
from invariance_tradeoffs.theory.validation import as_batch, as_labels, check_int

__all__ = [
    "GlyphInvarianceAttack",
    "other_class_neighbours",
    "linf_invariance_attack",
    "l0_invariance_attack",
    "score_attack",
]


def other_class_neighbours(sources: np.ndarray, source_labels: np.ndarray, pool: np.ndarray,
                           pool_labels: np.ndarray) -> np.ndarray:
    """Index into ``pool`` of the nearest (l2) image whose label differs from the source's.

    Pool images labelled ``REJECT`` are never chosen. Raises ``ValueError`` when some
    source has no other-class image in the pool.
    """
    sources = as_batch(sources, "sources")
    pool = as_batch(pool, "pool", n_features=sources.shape[1])
    source_labels = as_labels(source_labels, "source_labels", length=sources.shape[0])
    pool_labels = as_labels(pool_labels, "pool_labels", length=pool.shape[0])
    out = np.full(sources.shape[0], -1, dtype=np.int64)
    for cls in np.unique(source_labels):
        rows = np.flatnonzero(source_labels == cls)
        cand = np.flatnonzero((pool_labels != cls) & (pool_labels != REJECT))
        if cand.size == 0:
            raise ValueError(f"pool has no image of a class other than {cls}")
        dist = cdist(sources[rows], pool[cand], "sqeuclidean")
        out[rows] = cand[np.argmin(dist, axis=1)]
    return out


def _result(sources: np.ndarray, source_labels: np.ndarray, examples: np.ndarray,
            pool: np.ndarray, pool_labels: np.ndarray, neighbours: np.ndarray,
            norm: str) -> dict[str, np.ndarray]:
    diff = examples - sources
    if norm == "linf":
        distortion = np.abs(diff).max(axis=1)
    else:
        distortion = np.count_nonzero(diff, axis=1).astype(float)
    return {
        "sources": sources,
        "source_labels": source_labels,
        "examples": examples,
        "targets": pool_labels[neighbours],
        "distortion": distortion,
        "neighbours": pool[neighbours],
        "neighbour_indices": neighbours,
    }


def linf_invariance_attack(sources: Any, source_labels: Any, pool: Any, pool_labels: Any,
                           eps: float) -> dict[str, np.ndarray]:
    """Move each source towards its nearest other-class pool image within l-inf ``eps``.

    Parameters
    ----------
    sources : array, shape (n, d)
        Source images, flattened.
    source_labels : array, shape (n,)
        Their labels (used only to pick other-class neighbours).
    pool, pool_labels : arrays
        Labelled images to move towards.
    eps : float
        l-inf budget in ``(0, 1]``.

    Returns
    -------
    dict
        ``sources, source_labels, examples, targets, distortion, neighbours``.

    Examples
    --------
    >>> import numpy as np
    >>> res = linf_invariance_attack(np.zeros((1, 2)), [0], np.array([[1.0, 0.5]]), [1], 0.3)
    >>> res["examples"].tolist(), res["targets"].tolist()
    ([[0.3, 0.3]], [1])
    """
    eps = check_radius(eps)
    sources = as_batch(sources, "sources")
    pool = as_batch(pool, "pool", n_features=sources.shape[1])
    source_labels = as_labels(source_labels, "source_labels", length=sources.shape[0])
    pool_labels = as_labels(pool_labels, "pool_labels", length=pool.shape[0])
    for name, arr in (("sources", sources), ("pool", pool)):
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"{name} must hold pixels in [0, 1]")
    nb = other_class_neighbours(sources, source_labels, pool, pool_labels)
    examples = project_linf(sources, pool[nb], eps)
    return _result(sources, source_labels, examples, pool, pool_labels, nb, "linf")


def l0_invariance_attack(sources: Any, source_labels: Any, pool: Any, pool_labels: Any,
                         k: int) -> dict[str, np.ndarray]:
    """Copy into each source the ``k`` pixels where its other-class neighbour differs most.

    Ties between equally different pixels go to the lower pixel index, so the attack is
    deterministic. ``distortion`` counts the pixels that actually changed (``<= k``).
    """
    k = check_int(k, "k", low=0)
    sources = as_batch(sources, "sources")
    pool = as_batch(pool, "pool", n_features=sources.shape[1])
    source_labels = as_labels(source_labels, "source_labels", length=sources.shape[0])
    pool_labels = as_labels(pool_labels, "pool_labels", length=pool.shape[0])
    nb = other_class_neighbours(sources, source_labels, pool, pool_labels)
    target = pool[nb]
    order = np.argsort(-np.abs(target - sources), axis=1, kind="stable")[:, : int(k)]
    examples = sources.copy()
    rows = np.arange(sources.shape[0])[:, None]
    examples[rows, order] = target[rows, order]
    return _result(sources, source_labels, examples, pool, pool_labels, nb, "l0")


class GlyphInvarianceAttack(Attack):
    """The glyph-digit invariance attacks as an
    :class:`~invariance_tradeoffs.simulations.attacks.base.Attack` over a labelled pool:
    ``examples, success = GlyphInvarianceAttack(pool, pool_labels, "linf")(X, y,
    epsilons=[0.3])``. ``norm`` is ``"linf"`` (:func:`linf_invariance_attack`) or ``"l0"``
    (:func:`l0_invariance_attack`, radii = numbers of pixels).

    Examples
    --------
    >>> import numpy as np
    >>> atk = GlyphInvarianceAttack(np.array([[1.0, 0.5]]), [1], "linf")
    >>> examples, success = atk(np.zeros((1, 2)), [0], epsilons=[0.3, 0.4])
    >>> examples[:, 0].tolist(), success.tolist()
    ([[0.3, 0.3], [0.4, 0.4]], [[True], [True]])
    """

    kind = "invariance"

    def __init__(self, pool: Any, pool_labels: Any, norm: str = "linf") -> None:
        if norm not in ("linf", "l0"):
            raise ValueError(f"norm must be 'linf' or 'l0', got {norm!r}")
        self.pool = as_batch(pool, "pool")
        self.pool_labels = as_labels(pool_labels, "pool_labels", length=self.pool.shape[0])
        self.norm = norm
        self.distance = LpDistance(norm)

    def __call__(self, images: np.ndarray, labels: np.ndarray, *,
                 epsilons: float | Sequence[float], model: Any = None) -> AttackResult:
        self._require_model(model)
        radii = check_epsilons(epsilons)
        runs = [linf_invariance_attack(images, labels, self.pool, self.pool_labels, e)
                if self.norm == "linf" else
                l0_invariance_attack(images, labels, self.pool, self.pool_labels,
                                     check_int(int(e), "epsilons (l0 pixels)", low=0))
                for e in radii]
        return AttackResult(
            epsilons=radii, examples=np.stack([r["examples"] for r in runs]),
            success=np.stack([r["targets"] >= 0 for r in runs]),
            distortion=np.stack([r["distortion"] for r in runs]),
            targets=np.stack([r["targets"] for r in runs]))


def score_attack(result: dict[str, np.ndarray], oracle: Any, model: Any,
                 confidence: float = 0.95) -> dict[str, object]:
    """Read the oracle and ``model`` on an attack's examples.

    Returns shares (with Clopper-Pearson intervals) of examples whose oracle label

    * ``oracle_changed``: is a class different from the source's (the true label changed);
    * ``oracle_target``: equals the attack's target class;
    * ``oracle_reject``: is no digit at all;

    and of ``model_kept`` (the model's label on the example equals its label on the
    source) and ``invariance`` (both changed and kept: an invariance example of the
    model). Also the per-example boolean arrays under ``"masks"``.
    """
    X = result["sources"]
    E = result["examples"]
    o_src = oracle(X)
    o_ex = oracle(E)
    f_src = predict(model, X)
    f_ex = predict(model, E)
    masks = {
        "oracle_changed": (o_ex != o_src) & (o_ex != REJECT),
        "oracle_target": o_ex == result["targets"],
        "oracle_reject": o_ex == REJECT,
        "model_kept": f_ex == f_src,
    }
    masks["invariance"] = masks["oracle_changed"] & masks["model_kept"]
    n = X.shape[0]
    out: dict[str, object] = {"n": n, "masks": masks, "oracle_labels": o_ex,
                              "model_labels": f_ex}
    for key, m in masks.items():
        q = proportion_estimate(int(m.sum()), n, f"share of attacks: {key}", confidence)
        out[key] = q
    return out

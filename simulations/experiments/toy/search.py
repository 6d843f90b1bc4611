"""Attack-based search for sensitivity and invariance examples of a non-linear model.

When neither the classifier nor the oracle has a closed form, the masks of
:func:`theory.robust_accuracy.robustness_report` are computed over a finite candidate set
built by two attacks:

* a **sensitivity attack**: PGD on the model's log-loss at the oracle label (and, to test
  whether ``f`` is constant on the ball, at its own prediction), with random restarts;
* an **invariance attack** (model-free): move ``x`` towards its ``k`` nearest inputs of
  another oracle class in a labelled pool, stopping at several fractions of the way and
  projecting into the eps-ball -- the same "move towards an aligned other-class
  neighbour within eps" step as the MNIST l-inf invariance attack;
* **ball probes** (model- and oracle-free): moves along each coordinate axis and random
  points on the ball's boundary, which find the examples that neither attack aims at
  (e.g. a change of the one feature the oracle reads, away from all data).

The toy oracle labels every candidate, so a candidate is an example exactly when
:mod:`theory.examples` says so. The search can miss examples: each robust share is an
estimate of an **upper bound** (``Quantity`` kind ``"estimate"``, method saying so).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.neural_network import MLPClassifier

from invariance_tradeoffs.simulations.attacks.pgd import project_to_threat_set
from invariance_tradeoffs.simulations.experiments.toy.training import check_train_norm, pgd_attack
from invariance_tradeoffs.theory.distances import LpDistance
from invariance_tradeoffs.theory.robust_accuracy import RobustnessReport, robustness_report
from invariance_tradeoffs.theory.validation import as_batch, as_labels, check_eps

__all__ = ["invariance_candidates", "ball_probes", "sensitivity_candidates", "attack_report"]

#: Fractions of the way to the other-class neighbour tried by the invariance attack.
FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def invariance_candidates(X: np.ndarray, y: np.ndarray, pool: np.ndarray, pool_y: np.ndarray,
                          *, norm: str, eps: float, k: int = 5,
                          fractions: tuple[float, ...] = FRACTIONS,
                          clip: tuple[float, float] | None = None) -> np.ndarray:
    """Move each ``x`` towards its ``k`` nearest pool inputs of another class, within eps.

    For each neighbour ``x_t`` and fraction ``a``, the candidate is the projection of
    ``x + a (x_t - x)`` onto ``B_p(x, eps)`` (and the box ``clip``). Neighbours are found
    under ``norm`` (l2 for l0/l1 searches). Returns an array of shape
    ``(n * k * len(fractions), d)`` (fewer rows when a class has fewer than ``k`` members).
    """
    eps = check_eps(eps, allow_inf=True)  # inf: keep the points on the segments
    X = as_batch(X, "X")
    pool = as_batch(pool, "pool", n_features=X.shape[1])
    y = as_labels(y, "y", length=X.shape[0])
    pool_y = as_labels(pool_y, "pool_y", length=pool.shape[0])
    metric = {"linf": "chebyshev", "l1": "cityblock"}.get(norm, "sqeuclidean")
    out = []
    for cls in np.unique(y):
        rows = np.flatnonzero(y == cls)
        others = pool[(pool_y != cls) & (pool_y >= 0)]
        if others.shape[0] == 0:
            continue
        kk = min(k, others.shape[0])
        dist = cdist(X[rows], others, metric)
        idx = np.argsort(dist, axis=1, kind="stable")[:, :kk]
        src = np.repeat(X[rows], kk, axis=0)
        tgt = others[idx.reshape(-1)]
        for a in fractions:
            out.append(project_to_threat_set(check_train_norm(norm), src, src + a * (tgt - src),
                                             eps, clip))
    return np.concatenate(out, axis=0) if out else np.empty((0, X.shape[1]))


def ball_probes(X: np.ndarray, *, norm: str, eps: float, n_random: int = 16,
                fractions: tuple[float, ...] = (0.5, 1.0),
                clip: tuple[float, float] | None = None, seed: int = 0) -> np.ndarray:
    """Axis moves ``x ± a eps e_i`` and ``n_random`` random points of the ball's boundary.

    Random boundary points are sign vectors times eps (l-inf corners), Gaussian
    directions scaled to eps (l2) or signed uniform points of the simplex times eps (l1).
    Shape
    ``(n * (2 d len(fractions) + n_random), d)``.
    """
    eps = check_eps(eps)
    X = as_batch(X, "X")
    n, d = X.shape
    rng = np.random.default_rng(seed)
    eye = np.eye(d)
    axis = np.concatenate([s * a * eps * eye for a in fractions for s in (1.0, -1.0)])
    out = [(X[:, None, :] + axis[None, :, :]).reshape(-1, d)]
    if n_random > 0:
        if norm == "linf":
            delta = eps * rng.choice([-1.0, 1.0], size=(n, n_random, d))
        elif norm == "l2":
            g = rng.standard_normal((n, n_random, d))
            delta = eps * g / np.linalg.norm(g, axis=2, keepdims=True)
        else:
            simplex = rng.dirichlet(np.ones(d), size=(n, n_random))
            delta = eps * simplex * rng.choice([-1.0, 1.0], size=(n, n_random, d))
        out.append((X[:, None, :] + delta).reshape(-1, d))
    cand = np.concatenate(out)
    return np.clip(cand, *clip) if clip is not None else cand


def sensitivity_candidates(model: MLPClassifier, X: np.ndarray, y: np.ndarray, *, norm: str,
                           eps: float, steps: int = 20, restarts: int = 2,
                           clip: tuple[float, float] | None = None,
                           seed: int = 0) -> np.ndarray:
    """PGD iterates against ``model`` at the labels ``y`` and at its own predictions.

    ``restarts`` random starts per label set plus one start at ``x``; shape
    ``((2 * (restarts + 1)) * n, d)``.
    """
    X = as_batch(X, "X")
    rng = np.random.default_rng(seed)
    pred = model.predict(X)
    out = []
    for labels in (y, pred):
        for r in range(restarts + 1):
            out.append(pgd_attack(model, X, labels, norm=norm, eps=eps, steps=steps,
                                  random_start=r > 0, clip=clip, seed=rng))
    return np.concatenate(out, axis=0)


def attack_report(model: MLPClassifier, X: np.ndarray, oracle: Any, *, norm: str, eps: float,
                  pool: np.ndarray, pool_y: np.ndarray, k: int = 5, steps: int = 20,
                  restarts: int = 2, clip: tuple[float, float] | None = None,
                  seed: int = 0) -> RobustnessReport:
    """The masks of :func:`~theory.robust_accuracy.robustness_report` over attack candidates.

    The candidate set is the union of :func:`sensitivity_candidates`,
    :func:`invariance_candidates`, :func:`ball_probes` and ``X`` itself; every candidate
    is checked against every input (a candidate built for one input may be an example
    for another).
    """
    eps = check_eps(eps)
    X = as_batch(X, "X")
    y = oracle(X)
    cands = [X]
    if eps > 0:
        cands.append(sensitivity_candidates(model, X, np.maximum(y, 0), norm=norm, eps=eps,
                                            steps=steps, restarts=restarts, clip=clip,
                                            seed=seed))
        cands.append(invariance_candidates(X, y, pool, pool_y, norm=norm, eps=eps, k=k,
                                           clip=clip))
        cands.append(ball_probes(X, norm=norm, eps=eps, clip=clip, seed=seed))
    return robustness_report(X, oracle, model, LpDistance(norm), eps,
                             np.concatenate(cands, axis=0), exhaustive=False)

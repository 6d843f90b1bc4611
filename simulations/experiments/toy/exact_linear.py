"""Exact sensitivity and invariance examples of a linear classifier under a linear oracle.

For a binary linear classifier ``f(x) = [w.x + b > 0]`` and a binary linear oracle
``O(x) = [u.x + c > 0]``, the inputs near ``x`` (with ``y = O(x)``) that are

* sensitivity examples form ``{O = y} ∩ {f != y}``, and
* invariance examples form ``{O != y} ∩ {f = y}``,

each the intersection of two half-spaces. A sensitivity (invariance) example exists in the
closed ball ``B_p(x, eps)`` iff the lp distance from ``x`` to that polyhedron is ``<= eps``
(the boundary case has probability zero under a continuous distribution). This module
computes that distance *exactly* and vectorised over a batch, for p in {1, 2, inf}:

* ``l2``: the minimum-norm point is the least-norm solution of one of the active sets
  {}, {1}, {2}, {1, 2}; the smallest feasible candidate is the optimum (KKT).
* ``l1``: a basic optimal solution of the LP has at most two non-zero coordinates, so
  single-coordinate and coordinate-pair moves are enumerated (``O(n d^2)``).
* ``linf``: by LP duality, ``dist = max_{lam >= 0, ||G^T lam||_1 <= 1} -lam.r``; along the
  segment of ``lam`` directions the dual norm is piecewise linear, so the linear-fractional
  objective is maximised at a breakpoint (``O(n d^2)``).

The three are checked against :func:`scipy.optimize.linprog` / a brute-force solver in the
tests.
"""

from __future__ import annotations

import numpy as np

from invariance_tradeoffs.theory.distances import Distance, LpDistance, get_distance
from invariance_tradeoffs.theory.examples import in_ball
from invariance_tradeoffs.theory.validation import as_batch, check_eps

__all__ = [
    "halfspace_distance",
    "two_halfspace_distance",
    "LinearExampleDistances",
    "linear_example_distances",
    "linear_robust_accuracies",
]

_TOL = 1e-9


def _check_norm(norm: str | Distance) -> Distance:
    """The distance: ``"l1"``, ``"l2"``, ``"linf"`` or a :class:`Distance` that is l1, l2,
    l-inf or ellipsoidal (weighted l2, Mahalanobis: reduced to l2 by its whitening)."""
    if isinstance(norm, str):
        if norm not in ("l1", "l2", "linf"):
            raise ValueError(f"norm must be 'l1', 'l2', 'linf' or a Distance for exact "
                             f"linear geometry, got {norm!r}")
        return get_distance(norm)
    if not isinstance(norm, Distance):
        raise TypeError(f"norm must be a norm name or a Distance, got {type(norm).__name__}")
    if isinstance(norm, LpDistance) and norm.p in (1, 2, np.inf):
        return norm
    if norm.whitening() is not None:
        return norm
    raise ValueError(f"exact linear geometry supports l1, l2, l-inf and ellipsoidal "
                     f"distances, got {norm.name}")


def _solver(distance: Distance, G: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Distance from 0 to ``{z : G z <= r}`` per row, by the solver of the distance."""
    if isinstance(distance, LpDistance):
        return {1.0: _dist_l1, 2.0: _dist_l2, np.inf: _dist_linf}[float(distance.p)](G, r)
    # ||z A||_2 with z = z' A^-1: the constraints become (G A^-T) z' <= r in l2.
    B = np.linalg.inv(distance.whitening())
    return _dist_l2(np.einsum("nkd,ed->nke", G, B), r)


def halfspace_distance(X: np.ndarray, g: np.ndarray, r: np.ndarray,
                       norm: str | Distance) -> np.ndarray:
    """lp distance from each row ``x`` to ``{x' : g.x' <= g.x + r}``, i.e. ``{z : g.z <= r}``.

    ``max(0, -r) / ||g||_q`` with ``q`` the dual exponent; ``inf`` when ``g = 0`` and ``r < 0``.
    ``g`` has shape ``(d,)`` or ``(n, d)``; ``r`` has shape ``(n,)``.
    """
    distance = _check_norm(norm)
    gn = distance.dual_norm(np.broadcast_to(g, X.shape))
    viol = np.maximum(0.0, -np.asarray(r, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(gn > 0, viol / np.where(gn > 0, gn, 1.0), np.where(viol > 0, np.inf, 0.0))
    return out


def _feasible(Z: np.ndarray, G: np.ndarray, r: np.ndarray) -> np.ndarray:
    # Z: (n, m, d) candidate moves; G: (n, 2, d); r: (n, 2) -> (n, m)
    lhs = np.einsum("nmd,nkd->nmk", Z, G)
    scale = 1.0 + np.abs(r)[:, None, :]
    return np.all(lhs <= r[:, None, :] + _TOL * scale, axis=2)


def _dist_l2(G: np.ndarray, r: np.ndarray) -> np.ndarray:
    n, _, d = G.shape
    cands = [np.zeros((n, d))]
    for k in range(2):
        g = G[:, k]
        gg = np.einsum("nd,nd->n", g, g)
        coef = np.where(gg > 0, np.minimum(r[:, k], 0.0) / np.where(gg > 0, gg, 1.0), 0.0)
        cands.append(coef[:, None] * g)
    gram = np.einsum("nkd,njd->nkj", G, G)
    det = gram[:, 0, 0] * gram[:, 1, 1] - gram[:, 0, 1] ** 2
    ok = det > 1e-12 * (gram[:, 0, 0] * gram[:, 1, 1] + 1e-300)
    safe = np.where(ok[:, None, None], gram, np.eye(2)[None])
    mu = np.linalg.solve(safe, r[:, :, None])[:, :, 0]
    both = np.einsum("nk,nkd->nd", mu, G)
    both[~ok] = np.nan
    cands.append(both)
    Z = np.stack(cands, axis=1)
    valid = _feasible(np.nan_to_num(Z, nan=0.0), G, r) & ~np.isnan(Z).any(axis=2)
    norms = np.linalg.norm(np.nan_to_num(Z, nan=0.0), axis=2)
    return np.where(valid, norms, np.inf).min(axis=1)


def _dist_l1(G: np.ndarray, r: np.ndarray) -> np.ndarray:
    n, _, d = G.shape
    a, b = G[:, 0], G[:, 1]
    best = np.where(np.all(r >= 0, axis=1), 0.0, np.inf)
    # Single coordinate moves z = t e_i: feasible t form an interval; take its point nearest 0.
    lo = np.full((n, d), -np.inf)
    hi = np.full((n, d), np.inf)
    for coef, rk in ((a, r[:, 0:1]), (b, r[:, 1:2])):
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = rk / coef
        pos, neg = coef > 0, coef < 0
        hi = np.where(pos, np.minimum(hi, bound), hi)
        lo = np.where(neg, np.maximum(lo, bound), lo)
        # coef == 0: the constraint is 0 <= r, all or nothing
        dead = (coef == 0) & (rk < 0)
        lo = np.where(dead, np.inf, lo)
    nonempty = lo <= hi + _TOL * (1 + np.abs(lo))
    t = np.clip(0.0, lo, hi)
    single = np.where(nonempty, np.abs(t), np.inf).min(axis=1)
    best = np.minimum(best, single)
    # Pairs (i, j) with both constraints active: [a_i a_j; b_i b_j] (t_i, t_j) = r.
    det = a[:, :, None] * b[:, None, :] - a[:, None, :] * b[:, :, None]
    ok = np.abs(det) > 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        ti = (r[:, 0, None, None] * b[:, None, :] - a[:, None, :] * r[:, 1, None, None]) / det
        tj = (a[:, :, None] * r[:, 1, None, None] - r[:, 0, None, None] * b[:, :, None]) / det
    pair = np.where(ok, np.abs(ti) + np.abs(tj), np.inf)
    best = np.minimum(best, np.nanmin(np.where(np.isnan(pair), np.inf, pair), axis=(1, 2)))
    return best


def _dist_linf(G: np.ndarray, r: np.ndarray) -> np.ndarray:
    # Dual: dist = max(0, sup_{s in [0,1]} N(s) / D(s)), N(s) = -((1-s) r1 + s r2),
    # D(s) = ||(1-s) g1 + s g2||_1 (piecewise linear in s; breakpoints where a coordinate
    # of (1-s) g1 + s g2 vanishes). Where D = 0 and N > 0 the polyhedron is empty.
    a, b = G[:, 0], G[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = a / (a - b)
    bp = np.where(np.isfinite(bp) & (bp > 0) & (bp < 1), bp, 0.0)
    S = np.concatenate([np.zeros((len(a), 1)), np.ones((len(a), 1)), bp], axis=1)  # (n, m)
    V = (1 - S)[:, :, None] * a[:, None, :] + S[:, :, None] * b[:, None, :]
    D = np.abs(V).sum(axis=2)
    N = -((1 - S) * r[:, 0:1] + S * r[:, 1:2])
    scale = np.abs(a).sum(axis=1, keepdims=True) + np.abs(b).sum(axis=1, keepdims=True)
    zero = D <= 1e-12 * (scale + 1e-300)
    empty = np.any(zero & (N > 1e-12 * (1 + np.abs(r).sum(axis=1, keepdims=True))), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(zero, -np.inf, N / np.where(zero, 1.0, D))
    out = np.maximum(0.0, ratio.max(axis=1))
    return np.where(empty, np.inf, out)


def two_halfspace_distance(X: np.ndarray, G: np.ndarray, h: np.ndarray, norm: str | Distance, *,
                           zero_width_empty: bool = False) -> np.ndarray:
    """Exact lp distance from each ``x`` to the polyhedron ``{x' : G[i] x' <= h[i]}``.

    Parameters
    ----------
    X : array, shape (n, d)
        Points.
    G : array, shape (n, 2, d)
        Two constraint normals per point (zero rows allowed: ``0 <= h`` is all or nothing).
    h : array, shape (n, 2)
        Right-hand sides.
    norm : {"l1", "l2", "linf"} or Distance
        The distance (l1, l2, l-inf or ellipsoidal).
    zero_width_empty : bool
        Treat a polyhedron of zero width (anti-parallel normals meeting in one
        hyperplane) as empty. Right when one of the two half-spaces is really open: the
        regions of a classifier that equals the oracle then do not touch.

    Returns
    -------
    array, shape (n,)
        ``min ||x' - x||_p`` over the polyhedron; ``0`` inside it, ``inf`` when it is empty.
    """
    distance = _check_norm(norm)
    X = as_batch(X, "X")
    G = np.asarray(G, dtype=float)
    h = np.asarray(h, dtype=float)
    if G.shape != (X.shape[0], 2, X.shape[1]):
        raise ValueError(f"G must have shape {(X.shape[0], 2, X.shape[1])}, got {G.shape}")
    if h.shape != (X.shape[0], 2):
        raise ValueError(f"h must have shape {(X.shape[0], 2)}, got {h.shape}")
    r = h - np.einsum("nkd,nd->nk", G, X)  # constraint on the move z = x' - x: G z <= r
    # A zero normal is "0 <= r_k": drop it when true (replace by a copy of the other
    # constraint), and make the set empty when false.
    zero = ~np.any(G != 0, axis=2)
    empty = np.any(zero & (r < 0), axis=1)
    G = G.copy()
    r = r.copy()
    for k in range(2):
        m = zero[:, k]
        G[m, k] = G[m, 1 - k]
        r[m, k] = r[m, 1 - k]
    both_zero = zero.all(axis=1)
    dist = _solver(distance, G, np.where(both_zero[:, None], 0.0, r))
    dist = np.where(both_zero, 0.0, dist)
    if zero_width_empty:
        empty |= _zero_width(G, r) & ~zero.any(axis=1)
    return np.where(empty, np.inf, dist)


def _zero_width(G: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Rows whose two constraints are ``g.z <= r1`` and ``-k g.z <= -k r1`` (k > 0)."""
    n1 = np.linalg.norm(G[:, 0], axis=1)
    n2 = np.linalg.norm(G[:, 1], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.einsum("nd,nd->n", G[:, 0], G[:, 1]) / (n1 * n2)
        gap = r[:, 0] / n1 + r[:, 1] / n2  # slab width along the first normal
    return (cos <= -1 + 1e-12) & (np.abs(gap) <= 1e-12 * (1 + np.abs(r[:, 0] / n1)))


class LinearExampleDistances:
    """Per-input distances to the three regions that decide robustness (see module doc).

    Attributes
    ----------
    y : array (n,)
        Oracle labels ``O(x)``.
    correct : array (n,) of bool
        ``f(x) == O(x)``.
    to_error : array (n,)
        Distance to ``{f != f(x)}`` (the usual lp robustness margin of ``f``).
    to_sensitivity : array (n,)
        Distance to ``{O = y} ∩ {f != y}``.
    to_invariance : array (n,)
        Distance to ``{O != y} ∩ {f = f(x)}``.
    """

    def __init__(self, y: np.ndarray, correct: np.ndarray, to_error: np.ndarray,
                 to_sensitivity: np.ndarray, to_invariance: np.ndarray) -> None:
        self.y = y
        self.correct = correct
        self.to_error = to_error
        self.to_sensitivity = to_sensitivity
        self.to_invariance = to_invariance


def linear_example_distances(X: np.ndarray, w: np.ndarray, b: float, u: np.ndarray, c: float,
                             norm: str | Distance) -> LinearExampleDistances:
    """Exact distances from each ``x`` to its sensitivity and invariance regions.

    Parameters
    ----------
    X : array, shape (n, d)
        Inputs.
    w, b : array (d,), float
        Classifier ``f(x) = [w.x + b > 0]``.
    u, c : array (d,), float
        Oracle ``O(x) = [u.x + c > 0]``.
    norm : {"l1", "l2", "linf"} or Distance
        Perturbation norm (l1, l2, l-inf, or ellipsoidal: weighted l2, Mahalanobis).
    """
    X = as_batch(X, "X")
    n, d = X.shape
    w = np.asarray(w, dtype=float).reshape(-1)
    u = np.asarray(u, dtype=float).reshape(-1)
    if w.shape != (d,) or u.shape != (d,):
        raise ValueError(f"w and u must have {d} entries, got {w.shape} and {u.shape}")
    y = (X @ u + c > 0).astype(np.int64)
    fx = (X @ w + b > 0).astype(np.int64)
    s = (2 * y - 1).astype(float)[:, None]  # oracle side of x
    t = (2 * fx - 1).astype(float)[:, None]  # classifier side of x
    # closures of: {O = y}: -s u.x <= s c      {O != y}: s u.x <= -s c
    #              {f != y}: s w.x <= -s b
    #              {f = f(x)}: -t w.x <= t b   {f != f(x)}: t w.x <= -t b
    o_same, o_same_h = -s * u, s[:, 0] * c
    o_diff, o_diff_h = s * u, -s[:, 0] * c
    f_not_y, f_not_y_h = s * w, -s[:, 0] * b
    f_keep, f_keep_h = -t * w, t[:, 0] * b
    f_move, f_move_h = t * w, -t[:, 0] * b
    to_error = halfspace_distance(X, f_move, f_move_h - np.einsum("nd,nd->n", f_move, X), norm)
    sens = two_halfspace_distance(X, np.stack([o_same, f_not_y], 1),
                                  np.stack([o_same_h, f_not_y_h], 1), norm,
                                  zero_width_empty=True)
    inv = two_halfspace_distance(X, np.stack([o_diff, f_keep], 1),
                                 np.stack([o_diff_h, f_keep_h], 1), norm,
                                 zero_width_empty=True)
    return LinearExampleDistances(y, fx == y, to_error, sens, inv)


def linear_robust_accuracies(dist: LinearExampleDistances, eps: float) -> dict[str, float]:
    """The shares of :data:`theory.robust_accuracy.MASKS` at radius ``eps`` (exact).

    Uses the same closed-ball convention as :func:`invariance_tradeoffs.theory.examples.in_ball`:

    * ``correct``: ``f(x) = O(x)``;
    * ``standard_robust``: correct and ``f`` constant on the ball (the usual lp robust
      accuracy);
    * ``sensitivity_robust`` / ``invariance_robust``: correct and no sensitivity
      (invariance) example in the ball;
    * ``real_robust``: correct and neither (``f = O`` on the whole ball);
    * ``robust_and_real``: standard-robust and no invariance example -- the share that
      the ceiling ``P_D[r_O(x) > eps]`` bounds.
    """
    eps = check_eps(eps)
    ok = dist.correct
    sens = ok & ~in_ball(dist.to_sensitivity, eps)
    inv = ok & ~in_ball(dist.to_invariance, eps)
    std = ok & ~in_ball(dist.to_error, eps)
    return {
        "correct": float(ok.mean()),
        "sensitivity_robust": float(sens.mean()),
        "invariance_robust": float(inv.mean()),
        "standard_robust": float(std.mean()),
        "real_robust": float((sens & inv).mean()),
        "robust_and_real": float((std & inv).mean()),
    }

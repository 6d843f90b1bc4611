"""The robust linear model: the exact l-inf worst-case loss of a linear classifier over
``B(x, eps) ∩ [0, 1]^d`` (convex; closed form per pixel), and its minimiser."""

from __future__ import annotations

import math

import numpy as np

from invariance_tradeoffs.simulations.certification import input_box, linear_worst_margins_box
from invariance_tradeoffs.simulations.models.adapters import N_PIXELS, LinearModel
from invariance_tradeoffs.theory.validation import as_labels

__all__ = ["flat_unit", "fit_robust_multiclass_linear", "robust_linear_loss"]


# --------------------------------------------------------------------------- linear, exact robust
def robust_linear_loss(params: np.ndarray, centre: np.ndarray, half: np.ndarray, y: np.ndarray,
                       n_classes: int, l2: float, smoothing: float = 0.0
                       ) -> tuple[float, np.ndarray]:
    """Exact worst-case cross-entropy of a linear model over l-inf boxes, and its gradient.

    For each sample the worst case of every margin ``z_y - z_j`` over the box with
    centre ``c`` and half-width ``r`` is ``g_j = (w_y - w_j) . c - |w_y - w_j| . r + b_y - b_j``
    (:func:`invariance_tradeoffs.simulations.certification.linear_worst_margins`); the loss is
    ``mean_n log(1 + sum_{j != y} exp(-g_j)) + l2 / 2 * ||W||^2``, which upper-bounds the
    worst-case cross-entropy and is convex in ``(W, b)``. With ``r = 0`` it is the
    multinomial logistic loss.

    With ``smoothing = s > 0`` every ``|t|`` becomes ``sqrt(t^2 + s^2) >= |t|``: a smooth
    convex function that still upper-bounds the worst-case cross-entropy (the exact loss
    has a kink wherever two rows of ``W`` share a coordinate, e.g. at ``W = 0``, where
    quasi-Newton methods stall).

    Parameters
    ----------
    params : array, shape (C * d + C,)
        ``W`` flattened row-major, then ``b``.
    centre, half : arrays, shape (n, d)
        Box of each sample (:func:`invariance_tradeoffs.simulations.certification.input_box`).
    y : int array, shape (n,)
    n_classes : int
    l2 : float
    smoothing : float, default 0
        ``0`` for the exact loss.

    Returns
    -------
    loss : float
    grad : array like ``params``
    """
    n, d = centre.shape
    w = params[: n_classes * d].reshape(n_classes, d)
    b = params[n_classes * d:]
    g = linear_worst_margins_box(w, b, centre, half, y, smoothing)
    neg = -g
    rows = np.arange(n)
    neg[rows, y] = 0.0  # the "1 +" term of log(1 + sum exp(-g_j))
    top = neg.max(axis=1, keepdims=True)
    ex = np.exp(neg - top)
    tot = ex.sum(axis=1, keepdims=True)
    loss = float(np.mean(top[:, 0] + np.log(tot[:, 0]))) + 0.5 * l2 * float(np.sum(w * w))
    a = -ex / tot / n  # d loss / d g_j
    a[rows, y] = 0.0
    gw = l2 * w
    gb = np.zeros(n_classes)
    for k in range(n_classes):
        m = y == k
        if not np.any(m):
            continue
        ak = a[m]  # (m, C)
        # d g_j / d w_k = c - sign(w_k - w_j) * r ; d g_j / d w_j = -(same)
        diff = w[k] - w
        slope = (diff / np.sqrt(diff ** 2 + smoothing ** 2) if smoothing > 0
                 else np.sign(diff))
        dk = ak.T @ centre[m] - slope * (ak.T @ half[m])  # (C, d)
        gw[k] += dk.sum(axis=0)
        gw -= dk
        colsum = ak.sum(axis=0)
        gb[k] += colsum.sum()
        gb -= colsum
    return loss, np.concatenate([gw.ravel(), gb])


def fit_robust_multiclass_linear(images: np.ndarray, labels: np.ndarray, eps: float, *,
                                 l2: float = 1e-4, max_iter: int = 200, n_classes: int = 10,
                                 smoothing: float = 1e-4) -> tuple[LinearModel, dict]:
    """Multiclass linear model minimising the exact worst-case loss over
    ``B_inf(x, eps) ∩ [0, 1]^d`` (:func:`robust_linear_loss`).

    The toy experiments' binary counterpart,
    :func:`invariance_tradeoffs.simulations.experiments.toy.training.fit_robust_linear`,
    solves a different problem: two classes, an unbounded ball of any norm with a dual
    norm (its worst case is one dual-norm penalty). Here the pixel box clips the ball,
    which only has a closed form per pixel for l-inf, and every pair of classes has its
    own worst case.

    Deterministic, in two L-BFGS-B stages (scipy; the problem is convex): from ``W = 0``
    on the smoothed loss (``smoothing``; the exact loss has a kink at ``W = 0`` where
    L-BFGS-B stops at iteration 0 for eps > 0), then on the exact loss from there. The
    stage with the lower *exact* loss is returned. ``images`` are uint8 ``(n, 28, 28)``
    or floats in ``[0, 1]``; ``max_iter`` bounds each stage.
    """
    from scipy.optimize import minimize

    x = flat_unit(images)
    y = as_labels(labels, "labels", n_classes=n_classes, length=x.shape[0], allow_reject=False)
    if not (math.isfinite(smoothing) and smoothing >= 0):
        raise ValueError(f"smoothing must be finite and >= 0, got {smoothing}")
    lo, hi = input_box(x, eps)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    params = np.zeros(n_classes * (x.shape[1] + 1))
    stages = []
    for s in ((smoothing, 0.0) if smoothing > 0 else (0.0,)):
        res = minimize(robust_linear_loss, params, jac=True,
                       args=(centre, half, y, n_classes, l2, s), method="L-BFGS-B",
                       options={"maxiter": max_iter})
        exact = res.fun if s == 0 else robust_linear_loss(res.x, centre, half, y, n_classes,
                                                          l2)[0]
        stages.append({"smoothing": s, "exact_loss": float(exact), "n_iter": int(res.nit),
                       "converged": bool(res.success), "message": str(res.message),
                       "x": res.x})
        params = res.x
    best = min(stages, key=lambda st: st["exact_loss"])
    w = best["x"][: n_classes * x.shape[1]].reshape(n_classes, x.shape[1])
    info = {"final_loss": best["exact_loss"], "n_iter": sum(st["n_iter"] for st in stages),
            "converged": bool(best["converged"]), "optimizer_message": best["message"],
            "stages": [{k: v for k, v in st.items() if k != "x"} for st in stages]}
    return LinearModel(w, best["x"][n_classes * x.shape[1]:]), info


def flat_unit(images: np.ndarray) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim < 2 or int(np.prod(arr.shape[1:])) != N_PIXELS:
        raise ValueError(f"images must hold 28x28 images, got shape {arr.shape}")
    x = arr.reshape(arr.shape[0], N_PIXELS)
    if x.dtype == np.uint8:
        return x.astype(np.float64) / 255.0
    x = x.astype(np.float64)
    if x.min() < 0 or x.max() > 1:
        raise ValueError("float images must lie in [0, 1]")
    return x

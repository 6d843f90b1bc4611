"""Certified robustness under l-inf: interval bounds for networks, exact for linear models.

A model is *certified* at ``(x, y)`` and radius ``eps`` when it provably predicts ``y``
on every input of the threat set ``B(x, eps) = {x' : ||x' - x||_inf <= eps} ∩ [0, 1]^d``.
Certified robust accuracy is therefore a guaranteed *lower* bound on the model's robust
accuracy on the same sample (PGD gives the matching upper bound).

- :func:`interval_bounds` / :func:`ibp_margin_upper` -- interval bound propagation
  (IBP; Gowal et al., 2018) through an ``nn.Sequential`` of Conv2d / Linear / ReLU /
  Flatten / pooling layers, with the last linear layer folded into the margin
  specification ("elision"), which is tighter than bounding the logits separately.
- :func:`linear_worst_margins` -- for ``argmax(W x + b)`` the minimum over ``B(x, eps)``
  of each margin ``z_y - z_j`` is separable per pixel and exact in closed form.
- :func:`check_bounds_sound` -- samples points of the box and counts logits that fall
  outside claimed bounds, to test any bound function (and catch broken ones).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from invariance_tradeoffs.simulations.models.adapters import (
    InputMap,
    LinearModel,
    PyTorchModel,
    as_images,
    batch_slices,
)
from invariance_tradeoffs.simulations.optional import F, nn, require_torch, torch
from invariance_tradeoffs.theory.validation import as_labels, check_eps

__all__ = [
    "input_box",
    "linear_worst_margins",
    "certify_linear",
    "flatten_sequential",
    "interval_bounds",
    "ibp_logit_bounds",
    "ibp_margin_upper",
    "certify_ibp",
    "certify",
    "check_bounds_sound",
]


def _per_sample_eps(eps: object, n: int, name: str = "eps") -> np.ndarray:
    """A scalar radius or one radius per sample, as a float64 vector of length ``n``."""
    if np.ndim(eps) == 0:
        value = eps.item() if isinstance(eps, np.ndarray) else eps
        return np.full(n, check_eps(value, name))
    arr = np.asarray(eps, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have shape ({n},), got {arr.shape}")
    for v in arr:
        check_eps(float(v), name)
    return arr


def input_box(x: np.ndarray, eps: object) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corners of ``B(x, eps) ∩ [0, 1]^d`` (float64, same shape as ``x``).

    ``eps`` is a scalar or one radius per sample (first axis of ``x``).
    """
    x = np.asarray(x, dtype=np.float64)
    e = _per_sample_eps(eps, x.shape[0]).reshape((-1,) + (1,) * (x.ndim - 1))
    return np.clip(x - e, 0.0, 1.0), np.clip(x + e, 0.0, 1.0)


# --------------------------------------------------------------------------- linear, exact
def linear_worst_margins(
    weight: np.ndarray, bias: np.ndarray, x: np.ndarray, y: np.ndarray, eps: object
) -> np.ndarray:
    """Exact ``min_{x' in B(x, eps) ∩ [0,1]^d} (z_y(x') - z_j(x'))`` for every class ``j``.

    For ``z = W x + b`` the margin ``(w_y - w_j) . x' + b_y - b_j`` is minimised pixel by
    pixel at a corner of the box ``[lo, hi]``: with centre ``c`` and half-width ``r``
    the minimum is ``(w_y - w_j) . c - |w_y - w_j| . r + b_y - b_j``.

    Parameters
    ----------
    weight : array, shape (C, d)
    bias : array, shape (C,)
    x : array, shape (n, d) or (n, 1, 28, 28) with values in [0, 1]
    y : int array, shape (n,)
    eps : float or array of shape (n,)

    Returns
    -------
    margins : array, shape (n, C)
        Column ``y[i]`` of row ``i`` is ``+inf`` (a class has no margin against itself).
        The model is robust at ``(x_i, y_i)`` iff every entry of row ``i`` is ``> 0``.
    """
    w = np.asarray(weight, dtype=np.float64)
    b = np.asarray(bias, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if w.ndim != 2 or w.shape[1] != x.shape[1]:
        raise ValueError(f"weight must have shape (C, {x.shape[1]}), got {w.shape}")
    if b.shape != (w.shape[0],):
        raise ValueError(f"bias must have shape ({w.shape[0]},), got {b.shape}")
    y = as_labels(y, "y", n_classes=w.shape[0], length=x.shape[0], allow_reject=False)
    lo, hi = input_box(x, eps)
    out = linear_worst_margins_box(w, b, (lo + hi) / 2.0, (hi - lo) / 2.0, y)
    out[np.arange(x.shape[0]), y] = np.inf
    return out


def linear_worst_margins_box(w: np.ndarray, b: np.ndarray, centre: np.ndarray,
                              half: np.ndarray, y: np.ndarray,
                              smoothing: float = 0.0) -> np.ndarray:
    """Unvalidated core of :func:`linear_worst_margins` on a box ``centre +- half``.

    Column ``y`` comes out as 0 (``-half . smoothing`` with smoothing). Grouping samples
    by label needs only ``|w_k - w_j|`` for the one row ``k = y``: O(n d C) work. With
    ``smoothing = s > 0`` every ``|t|`` is ``sqrt(t^2 + s^2)``: smooth lower bounds of the
    worst-case margins, for training (certification uses ``s = 0``).
    """
    logits = centre @ w.T + b
    rows = np.arange(centre.shape[0])
    out = logits[rows, y][:, None] - logits
    for k in np.unique(y):
        m = y == k
        diff = w[k] - w
        size = np.sqrt(diff ** 2 + smoothing ** 2) if smoothing > 0 else np.abs(diff)
        out[m] -= half[m] @ size.T
    return out


def certify_linear(model: LinearModel, x: np.ndarray, y: np.ndarray, eps: object) -> np.ndarray:
    """Exact l-inf certification of a :class:`LinearModel` (bool per sample).

    ``True`` iff the model predicts ``y`` on all of ``B(x, eps) ∩ [0,1]^784``
    (ties count as not robust).
    """
    x = as_images(x)
    return np.all(linear_worst_margins(model.weight, model.bias, x, y, eps) > 0, axis=1)


# --------------------------------------------------------------------------- IBP
_LINEAR_LAYERS: tuple = ()
_MONOTONE_LAYERS: tuple = ()
if nn is not None:
    _LINEAR_LAYERS = (nn.Linear, nn.Conv2d)
    # Elementwise non-decreasing maps: the image of a box is bounded by the images of
    # its corners. AvgPool has non-negative weights, so it is monotone too.
    _MONOTONE_LAYERS = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Flatten, nn.Identity)


def flatten_sequential(module: Any) -> list:
    """The layers of a (possibly nested) ``nn.Sequential``, checked to be IBP-supported.

    Raises
    ------
    TypeError
        Naming the first layer IBP cannot bound (e.g. BatchNorm in training mode,
        Conv2d with a non-zero padding mode, an arbitrary ``forward``).
    """
    require_torch()
    if isinstance(module, PyTorchModel):  # its input map (bounds, preprocessing) first
        head = [module.input_map] if module.input_map is not None else []
        return head + flatten_sequential(module.module)
    if not isinstance(module, nn.Sequential):
        raise TypeError(
            "interval bound propagation needs an nn.Sequential of Conv2d/Linear/ReLU/"
            f"Flatten/pooling layers, got {type(module).__name__}"
        )
    layers: list = []
    for layer in module:
        if isinstance(layer, nn.Sequential):
            layers.extend(flatten_sequential(layer))
        elif isinstance(layer, nn.Conv2d) and layer.padding_mode != "zeros":
            raise TypeError(f"Conv2d with padding_mode={layer.padding_mode!r} is not supported")
        elif isinstance(layer, _LINEAR_LAYERS + _MONOTONE_LAYERS + (InputMap,)):
            layers.append(layer)
        else:
            raise TypeError(f"interval bound propagation does not support layer {layer!r}")
    return layers


def _affine(layer: Any, centre: Any, radius: Any) -> tuple[Any, Any]:
    if isinstance(layer, nn.Linear):
        return F.linear(centre, layer.weight, layer.bias), F.linear(radius, layer.weight.abs())
    return (
        layer._conv_forward(centre, layer.weight, layer.bias),
        layer._conv_forward(radius, layer.weight.abs(), None),
    )


def interval_bounds(layers: Any, lower: Any, upper: Any) -> tuple[Any, Any]:
    """Propagate the box ``[lower, upper]`` through ``layers`` (torch tensors in and out).

    Affine layers map centre ``c`` and half-width ``r`` to ``W c + b`` and ``|W| r``;
    monotone layers (ReLU, pooling, the increasing input map of a ``PyTorchModel``) map
    the corners. The result contains the network's output for
    every input of the box (soundness up to float rounding). Differentiable, so it
    also serves IBP training.
    """
    if not isinstance(layers, list):
        layers = flatten_sequential(layers)
    for layer in layers:
        if isinstance(layer, _LINEAR_LAYERS):
            c, r = _affine(layer, (upper + lower) / 2, (upper - lower) / 2)
            lower, upper = c - r, c + r
        else:
            lower, upper = layer(lower), layer(upper)
    return lower, upper


def _torch_box(x: Any, eps: Any) -> tuple[Any, Any]:
    eps = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if eps.ndim == 1:
        eps = eps.view(-1, *([1] * (x.ndim - 1)))
    return (x - eps).clamp(0.0, 1.0), (x + eps).clamp(0.0, 1.0)


def ibp_logit_bounds(module: Any, x: Any, eps: Any) -> tuple[Any, Any]:
    """Interval bounds on the logits over ``B(x, eps) ∩ [0, 1]^d`` (torch tensors)."""
    lo, hi = _torch_box(x, eps)
    return interval_bounds(flatten_sequential(module), lo, hi)


def ibp_margin_upper(module: Any, x: Any, y: Any, eps: Any) -> Any:
    """Upper bounds on ``z_j - z_y`` over ``B(x, eps) ∩ [0, 1]^d`` for every class ``j``.

    The last ``nn.Linear`` is folded into the specification: the bound on
    ``(w_j - w_y) . h + b_j - b_y`` uses the exact image of the hidden box, so it is at
    least as tight as subtracting logit intervals. Column ``y`` is ``0``. The model is
    certified at ``(x, y)`` iff every other column is ``< 0``. Differentiable; these are
    the worst-case logits ``z_hat`` of Gowal et al.'s IBP loss.
    """
    layers = flatten_sequential(module)
    lo, hi = _torch_box(x, eps)
    last = layers[-1]
    if not isinstance(last, nn.Linear):
        l_out, u_out = interval_bounds(layers, lo, hi)
        upper = u_out - l_out.gather(1, y.view(-1, 1))
        return upper.scatter(1, y.view(-1, 1), 0.0)
    lo, hi = interval_bounds(layers[:-1], lo, hi)
    centre, radius = (hi + lo) / 2, (hi - lo) / 2
    w_diff = last.weight.unsqueeze(0) - last.weight[y].unsqueeze(1)  # (n, C, H)
    b_diff = last.bias.unsqueeze(0) - last.bias[y].unsqueeze(1)  # (n, C)
    upper = (
        torch.einsum("nch,nh->nc", w_diff, centre)
        + torch.einsum("nch,nh->nc", w_diff.abs(), radius)
        + b_diff
    )
    return upper.scatter(1, y.view(-1, 1), 0.0)


def _float32_up(values: np.ndarray) -> np.ndarray:
    """Cast radii to float32 rounding up, so the certified ball is never smaller."""
    v32 = values.astype(np.float32)
    return np.where(v32 < values, np.nextafter(v32, np.float32(np.inf)), v32)


def certify_ibp(model: Any, x: np.ndarray, y: np.ndarray, eps: object,
                batch_size: int = 500) -> np.ndarray:
    """IBP certification (bool per sample): ``True`` proves the prediction is ``y`` on the ball.

    ``False`` means "not proven" (the bound is not tight), not "not robust".
    """
    tm = model if isinstance(model, PyTorchModel) else PyTorchModel(model)
    x = as_images(x)
    y = as_labels(y, "y", n_classes=tm.n_classes, length=x.shape[0], allow_reject=False)
    e = _per_sample_eps(eps, x.shape[0])
    out = np.empty(x.shape[0], dtype=bool)
    with torch.no_grad():
        for sl in batch_slices(x.shape[0], batch_size):
            up = ibp_margin_upper(
                tm, torch.from_numpy(x[sl]), torch.from_numpy(y[sl]),
                torch.from_numpy(_float32_up(e[sl])),
            )
            up[torch.arange(up.shape[0]), torch.from_numpy(y[sl])] = -torch.inf
            out[sl] = (up < 0).all(dim=1).numpy()
    return out


def certify(model: Any, x: np.ndarray, y: np.ndarray, eps: object) -> tuple[np.ndarray, str] | None:
    """Certify any model if a method applies: exact for linear models, IBP for networks.

    Returns
    -------
    (certified, method) or None
        ``certified`` is a bool per sample; ``method`` is ``"exact (linear, closed form)"``
        or ``"IBP (sound, incomplete)"``. ``None`` when no certification method applies
        (e.g. kNN or an arbitrary callable).
    """
    if isinstance(model, LinearModel):
        return certify_linear(model, x, y, eps), "exact (linear, closed form)"
    if torch is not None and isinstance(model, PyTorchModel | nn.Module):
        try:
            flatten_sequential(model)
        except TypeError:
            return None
        return certify_ibp(model, x, y, eps), "IBP (sound, incomplete)"
    return None


# --------------------------------------------------------------------------- soundness check
def check_bounds_sound(
    bound_fn: Callable[[Any, Any, Any], tuple[Any, Any]],
    module: Any,
    x: Any,
    eps: float,
    n_samples: int = 64,
    seed: int = 0,
    atol: float = 1e-4,
) -> dict:
    """Count sampled logits that fall outside the bounds ``bound_fn(module, x, eps)``.

    Samples uniform points and box corners of ``B(x, eps) ∩ [0,1]^d`` for each input
    (corners are where a wrong bound on a piecewise-linear network is most often
    exceeded). A sound bound gives ``violations == 0``.

    Returns
    -------
    dict with ``violations`` (int), ``checked`` (int) and ``max_excess`` (float).
    """
    require_torch()
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        lower, upper = bound_fn(module, x, eps)
        lo, hi = _torch_box(x, eps)
        violations, checked, max_excess = 0, 0, 0.0
        for k in range(n_samples):
            u = torch.rand(x.shape, generator=g, dtype=x.dtype)
            if k % 2:  # a random corner of the box
                u = (u > 0.5).to(x.dtype)
            z = module(lo + u * (hi - lo))
            excess = torch.maximum(lower - z, z - upper)
            violations += int((excess > atol).sum())
            checked += z.numel()
            max_excess = max(max_excess, float(excess.max()))
    return {"violations": violations, "checked": checked, "max_excess": max_excess}

"""l-inf projected gradient descent (Madry et al., 2018) with random restarts.

PGD searches the threat set ``B(x, eps) ∩ [0, 1]^d`` for a *sensitivity* example: an
input the model labels differently from ``y``. Every iterate is projected back into
the set, so each returned point is a valid perturbation. PGD accuracy (the share of
samples on which no restart succeeds) is an *upper* bound on the model's robust
accuracy on that sample; certification (:mod:`simulations.certification`) gives the
lower bound.

:func:`pgd_torch` is the inner loop on torch tensors (also used for adversarial
training); :func:`pgd_attack` adds restarts, batching and numpy at the boundary;
:func:`pgd_robust_accuracy` turns the result into a :class:`theory.results.Quantity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from invariance_tradeoffs.simulations.models.adapters import (
    TorchModel,
    as_images,
    as_torch_model,
    batch_slices,
)
from invariance_tradeoffs.simulations.optional import F, require_torch, torch
from invariance_tradeoffs.theory.results import Quantity, proportion_estimate
from invariance_tradeoffs.theory.validation import as_labels, check_eps, check_int

__all__ = ["PGDResult", "default_step_size", "pgd_torch", "pgd_attack", "pgd_robust_accuracy"]


def default_step_size(eps: float, steps: int) -> float:
    """Madry et al.'s rule of thumb ``2.5 * eps / steps``: enough to cross the ball."""
    return 2.5 * eps / steps


def pgd_torch(
    forward: Any,
    x: Any,
    y: Any,
    eps: float,
    *,
    steps: int,
    step_size: float,
    random_start: bool = True,
    generator: Any = None,
    early_stop: bool = False,
) -> Any:
    """Maximise the cross-entropy of ``forward`` over ``B(x, eps) ∩ [0, 1]^d``.

    Parameters
    ----------
    forward : callable
        Maps a torch batch to logits (a module or :meth:`TorchModel.forward`).
    x : torch.Tensor, values in [0, 1]
    y : torch.LongTensor, shape (n,)
    eps : float
        l-inf radius.
    steps : int
        Signed-gradient ascent steps.
    step_size : float
    random_start : bool
        Start from a uniform point of the ball (clipped to [0, 1]) instead of ``x``.
    generator : torch.Generator, optional
        Source of the random start (pass one for reproducibility).
    early_stop : bool
        Freeze each sample at the first iterate the model misclassifies and stop
        computing gradients for it (evaluation: the attack's success is decided by the
        first sensitivity example found, and the work shrinks as samples break).
        Training keeps the default ``False``: every sample gets all ``steps``.

    Returns
    -------
    torch.Tensor
        Detached adversarial batch; ``|x_adv - x|_inf <= eps`` and ``0 <= x_adv <= 1``.
    """
    require_torch()
    lo = (x - eps).clamp(0.0, 1.0)
    hi = (x + eps).clamp(0.0, 1.0)
    if random_start:
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x_adv = lo + u * (hi - lo)
    else:
        x_adv = x.detach().clone()
    if not early_stop:
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(forward(x_adv), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_adv)
            with torch.no_grad():
                x_adv = torch.minimum(torch.maximum(x_adv + step_size * grad.sign(), lo), hi)
        return x_adv.detach()
    x_adv = x_adv.detach()
    active = torch.arange(x.shape[0], device=x.device)
    for _ in range(steps):
        xa = x_adv[active].requires_grad_(True)
        logits = forward(xa)
        keep = logits.argmax(dim=1) == y[active]  # not yet fooled: keep attacking
        if not bool(keep.any()):
            return x_adv
        loss = F.cross_entropy(logits[keep], y[active][keep], reduction="sum")
        (grad,) = torch.autograd.grad(loss, xa)
        active = active[keep]
        with torch.no_grad():
            step = xa[keep] + step_size * grad[keep].sign()
            x_adv[active] = torch.minimum(torch.maximum(step, lo[active]), hi[active])
    return x_adv


@dataclass(frozen=True)
class PGDResult:
    """Outcome of :func:`pgd_attack`.

    Attributes
    ----------
    x_adv : ndarray, float32 (n, 1, 28, 28)
        The point found for each sample: the first misclassified one over the restarts,
        else the last restart's final iterate (``x`` itself when already misclassified).
    success : ndarray of bool, (n,)
        Whether the model's label at ``x_adv`` differs from ``y``.
    eps, steps, step_size, restarts : the attack's parameters.
    """

    x_adv: np.ndarray
    success: np.ndarray
    eps: float
    steps: int
    step_size: float
    restarts: int

    @property
    def robust_accuracy(self) -> float:
        """Share of samples on which the attack failed."""
        return float(1.0 - self.success.mean())


def pgd_attack(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    eps: float,
    *,
    steps: int = 40,
    step_size: float | None = None,
    restarts: int = 10,
    seed: int = 0,
    batch_size: int = 500,
) -> PGDResult:
    """l-inf PGD with random restarts against any model that has gradients.

    Samples misclassified at ``x`` count as successes without attack; later restarts
    only attack samples not yet broken, and within a restart a sample stops at the first
    iterate the model misclassifies (:func:`pgd_torch` with ``early_stop``): success is
    decided by the first sensitivity example found, and the work shrinks as samples
    break. Deterministic for a given ``seed``.

    Parameters
    ----------
    model : TorchModel, LinearModel or torch.nn.Module
    x : array, (n, 1, 28, 28) in [0, 1]
    y : int array, (n,)
    eps : float
    steps : int
        Steps per restart (PGD-40 by default).
    step_size : float, optional
        Defaults to :func:`default_step_size`.
    restarts : int
        Random restarts per sample.
    seed : int
    batch_size : int

    Examples
    --------
    >>> import numpy as np
    >>> from invariance_tradeoffs.simulations.models.adapters import LinearModel
    >>> m = LinearModel(np.eye(10, 784), np.zeros(10))
    >>> x = np.zeros((1, 1, 28, 28), np.float32); x[0, 0, 0, 3] = 1.0
    >>> pgd_attack(m, x, np.array([3]), 0.6, steps=5, restarts=1).success.tolist()
    [True]
    """
    require_torch()
    tm: TorchModel = as_torch_model(model)
    x = as_images(x)
    y = as_labels(y, "y", n_classes=tm.n_classes, length=x.shape[0], allow_reject=False)
    eps = check_eps(eps)
    steps = check_int(steps, "steps", low=1)
    restarts = check_int(restarts, "restarts", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    step_size = default_step_size(eps, steps) if step_size is None else check_eps(
        step_size, "step_size")
    gen = torch.Generator().manual_seed(int(seed))

    x_adv = x.copy()
    success = tm.predict(x) != y
    for _ in range(restarts):
        todo = np.flatnonzero(~success)
        if todo.size == 0:
            break
        for sl in batch_slices(todo.size, batch_size):
            idx = todo[sl]
            xb = torch.from_numpy(x[idx])
            yb = torch.from_numpy(y[idx])
            adv = pgd_torch(tm.forward, xb, yb, eps, steps=steps, step_size=step_size,
                            generator=gen, early_stop=True)
            with torch.no_grad():
                fooled = (tm.forward(adv).argmax(dim=1) != yb).numpy()
            x_adv[idx] = adv.numpy()
            success[idx] = fooled
    return PGDResult(x_adv=x_adv, success=success, eps=eps, steps=steps,
                     step_size=float(step_size), restarts=restarts)


def pgd_robust_accuracy(model: Any, x: np.ndarray, y: np.ndarray, eps: float,
                        **attack: Any) -> Quantity:
    """Empirical robust accuracy under :func:`pgd_attack`, as an estimate with CI.

    On the given sample the value is an upper bound on the true robust accuracy (an
    attack can only miss sensitivity examples); the Clopper-Pearson interval describes
    sampling error over the data distribution.
    """
    res = pgd_attack(model, x, y, eps, **attack)
    n = res.success.size
    return proportion_estimate(
        int(n - res.success.sum()), n,
        f"PGD-{res.steps} l-inf eps={eps:g}, {res.restarts} restarts, step {res.step_size:.4g}",
        side_on_sample="upper bound on robust accuracy",
    )

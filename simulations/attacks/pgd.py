"""Projected gradient descent (Madry et al., 2018): the one PGD of the package.

PGD searches the threat set ``B_d(x, eps) ∩ box`` for a *sensitivity* example (an input
the model labels differently from ``y``) by signed-gradient ascent on the loss, each step
taken along :meth:`Distance.steepest <invariance_tradeoffs.theory.distances.Distance.steepest>`
and projected back with
:meth:`Distance.project <invariance_tradeoffs.theory.distances.Distance.project>`, so every
iterate is a valid perturbation for any norm the distance object supports (l-inf, l2, l1,
weighted, Mahalanobis).

- :func:`pgd` is the algorithm on numpy arrays, for any model given as a loss gradient
  (a torch network through :func:`torch_loss_gradient`, the toy MLPs through their own);
- :func:`uniform_start` / :func:`perturbed_start` are its two random starts;
- :func:`pgd_attack` adds restarts, batching and early stopping for evaluation on MNIST,
  :func:`pgd_robust_accuracy` turns it into a
  :class:`~invariance_tradeoffs.theory.results.Quantity`.

PGD accuracy (the share of samples on which no restart succeeds) is an *upper* bound on
the model's robust accuracy on that sample; certification gives the lower bound.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from invariance_tradeoffs.simulations.attacks.base import Attack, AttackResult, check_epsilons
from invariance_tradeoffs.simulations.models.adapters import (
    PyTorchModel,
    as_images,
    as_torch_model,
    batch_slices,
    to_model_input,
)
from invariance_tradeoffs.simulations.optional import F, require_torch, torch
from invariance_tradeoffs.theory.distances import Distance, LpDistance
from invariance_tradeoffs.theory.results import Quantity, proportion_estimate
from invariance_tradeoffs.theory.validation import as_labels, check_eps, check_int

__all__ = ["PGD", "LossGradient", "PGDResult", "default_step_size", "perturbed_start", "pgd",
           "project_to_threat_set",
           "pgd_attack", "pgd_robust_accuracy", "torch_loss_gradient", "uniform_start"]

#: ``loss_gradient(x, y) -> (gradient of the summed loss w.r.t. x, logits or None)``.
LossGradient = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]]

_LINF = LpDistance("linf")


def default_step_size(eps: float, steps: int) -> float:
    """Madry et al.'s rule of thumb ``2.5 * eps / steps``: enough to cross the ball."""
    return 2.5 * eps / steps


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(len(a), -1)


def project_to_threat_set(distance: Distance, x: np.ndarray, x_new: np.ndarray, eps: float,
             clip: tuple[float, float] | None) -> np.ndarray:
    """``x_new`` projected onto ``B_d(x, eps)`` row by row (any shape ``(n, ...)``), then
    clipped into the box ``clip`` (for l-inf the result stays in the ball)."""
    out = distance.project(_flat(x), _flat(x_new), eps).reshape(x.shape)
    return out if clip is None else np.clip(out, clip[0], clip[1])


def uniform_start(x: np.ndarray, eps: float, uniform: np.ndarray,
                  clip: tuple[float, float] | None = (0.0, 1.0)) -> np.ndarray:
    """A uniform point of the l-inf ball ``B(x, eps)`` intersected with the box ``clip``:
    ``lo + u * (hi - lo)`` for ``u = uniform`` in ``[0, 1)`` (the MNIST evaluation's start)."""
    lo, hi = x - eps, x + eps
    if clip is not None:
        lo, hi = np.clip(lo, clip[0], clip[1]), np.clip(hi, clip[0], clip[1])
    return lo + uniform * (hi - lo)


def perturbed_start(x: np.ndarray, noise: np.ndarray, distance: Distance, eps: float,
                    clip: tuple[float, float] | None = None) -> np.ndarray:
    """``x + noise`` projected onto ``B_d(x, eps)`` and clipped (Madry et al.'s start: for
    l-inf with ``noise`` uniform in ``[-eps, eps]`` the projection does nothing)."""
    return project_to_threat_set(distance, x, x + noise, eps, clip)


def pgd(loss_gradient: LossGradient, x: np.ndarray, y: np.ndarray, *,
        distance: Distance = _LINF, eps: float, steps: int, step_size: float,
        start: np.ndarray | None = None, clip: tuple[float, float] | None = (0.0, 1.0),
        early_stop: bool = False) -> np.ndarray:
    """Maximise the loss over ``B_d(x, eps) ∩ clip`` by projected steepest ascent.

    Parameters
    ----------
    loss_gradient : callable
        ``(x, y) -> (grad, logits)``: gradient of the summed loss with respect to the input
        batch, and the logits at that batch (needed with ``early_stop``; else may be None).
    x : ndarray (n, ...)
        The clean inputs (float32 or float64; the dtype is kept).
    y : int ndarray (n,)
    distance : Distance
        The threat model's distance (its ``steepest`` and ``project``); default l-inf.
    eps : float
        Radius.
    steps : int
    step_size : float
    start : ndarray, optional
        The first iterate (:func:`uniform_start`, :func:`perturbed_start`); default ``x``.
    clip : (float, float) or None
        Box of valid inputs.
    early_stop : bool
        Freeze each sample at the first iterate the model misclassifies and stop computing
        its gradient (evaluation: success is decided by the first sensitivity example
        found). Training keeps ``False``: every sample gets all ``steps``.

    Returns
    -------
    ndarray like ``x``
        The last iterates (the frozen ones with ``early_stop``).
    """
    x_adv = np.array(x if start is None else start, dtype=x.dtype, copy=True)
    if not early_stop:
        for _ in range(steps):
            grad, _ = loss_gradient(x_adv, y)
            step = distance.steepest(_flat(grad)).reshape(x.shape)
            x_adv = project_to_threat_set(distance, x, x_adv + step_size * step, eps, clip)
        return x_adv
    active = np.arange(len(x))
    for _ in range(steps):
        grad, logits = loss_gradient(x_adv[active], y[active])
        keep = np.argmax(logits, axis=1) == y[active]  # not yet fooled: keep attacking
        if not keep.any():
            return x_adv
        active = active[keep]
        step = distance.steepest(_flat(grad[keep])).reshape(grad[keep].shape)
        x_adv[active] = project_to_threat_set(distance, x[active],
                                              x_adv[active] + step_size * step, eps, clip)
    return x_adv


def torch_loss_gradient(forward: Any) -> LossGradient:
    """The summed cross-entropy gradient of a torch ``forward`` (a module or
    :meth:`TorchModel.forward`), numpy in and out: the bridge from :func:`pgd` to torch."""
    require_torch()

    def loss_gradient(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xt = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
        logits = forward(xt)
        loss = F.cross_entropy(logits, torch.from_numpy(np.asarray(y)), reduction="sum")
        (grad,) = torch.autograd.grad(loss, xt)
        return grad.numpy(), logits.detach().numpy()

    return loss_gradient


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
    iterate the model misclassifies (:func:`pgd` with ``early_stop``). Each restart starts
    from a uniform point of the ball within ``[0, 1]`` (:func:`uniform_start`, drawn from
    a torch generator seeded with ``seed``). Deterministic for a given ``seed``.

    Parameters
    ----------
    model : PyTorchModel, LinearModel or torch.nn.Module
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
    tm: PyTorchModel = as_torch_model(model)
    x = as_images(x)
    y = as_labels(y, "y", n_classes=tm.n_classes, length=x.shape[0], allow_reject=False)
    eps = check_eps(eps)
    steps = check_int(steps, "steps", low=1)
    restarts = check_int(restarts, "restarts", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    step_size = default_step_size(eps, steps) if step_size is None else check_eps(
        step_size, "step_size")
    gen = torch.Generator().manual_seed(int(seed))
    grad_fn = torch_loss_gradient(tm.forward)

    x_adv = x.copy()
    success = tm.predict(x) != y
    for _ in range(restarts):
        todo = np.flatnonzero(~success)
        if todo.size == 0:
            break
        for sl in batch_slices(todo.size, batch_size):
            idx = todo[sl]
            u = torch.rand(x[idx].shape, generator=gen, dtype=torch.float32).numpy()
            adv = pgd(grad_fn, x[idx], y[idx], eps=eps, steps=steps, step_size=step_size,
                      start=uniform_start(x[idx], eps, u), early_stop=True)
            x_adv[idx] = adv
            success[idx] = tm.predict(adv) != y[idx]
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


class PGD(Attack):
    """l-inf PGD as an :class:`~invariance_tradeoffs.simulations.attacks.base.Attack`:
    ``examples, success = PGD()(images, labels, epsilons=[0.3], model=model)``.

    Parameters are those of :func:`pgd_attack` (PGD-40 with one restart by default).

    Examples
    --------
    >>> import numpy as np
    >>> from invariance_tradeoffs.simulations.models.adapters import LinearModel
    >>> m = LinearModel(np.eye(10, 784), np.zeros(10))
    >>> x = np.zeros((1, 1, 28, 28), np.float32); x[0, 0, 0, 3] = 1.0
    >>> examples, success = PGD(steps=5)(x, np.array([3]), epsilons=[0.1, 0.6], model=m)
    >>> success.tolist()
    [[False], [True]]
    """

    kind = "sensitivity"
    distance = _LINF

    def __init__(self, *, steps: int = 40, step_size: float | None = None, restarts: int = 1,
                 seed: int = 0, batch_size: int = 500) -> None:
        self.steps = check_int(steps, "steps", low=1)
        self.step_size = None if step_size is None else check_eps(step_size, "step_size")
        self.restarts = check_int(restarts, "restarts", low=1)
        self.seed = int(seed)
        self.batch_size = check_int(batch_size, "batch_size", low=1)

    def params(self) -> dict:
        return {"attack": "pgd", "distance": "linf", "steps": self.steps,
                "step_size": self.step_size, "restarts": self.restarts, "seed": self.seed}

    def __call__(self, images: np.ndarray, labels: np.ndarray, *,
                 epsilons: float | Sequence[float], model: Any = None) -> AttackResult:
        self._require_model(model)
        radii = check_epsilons(epsilons)
        x = to_model_input(images)
        runs = [pgd_attack(model, x, labels, e, steps=self.steps, step_size=self.step_size,
                           restarts=self.restarts, seed=self.seed, batch_size=self.batch_size)
                for e in radii]
        return self._sensitivity_result(x, radii, runs)

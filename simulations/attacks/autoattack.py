"""AutoAttack (Croce & Hein, ICML 2020): the field's standard upper bound on robust accuracy.

Leaderboards (RobustBench) report robust accuracy under AutoAttack's *standard* ensemble --
APGD-CE, APGD-T (targeted DLR loss, 9 targets), FAB-T and Square (5000 queries) -- rather
than PGD. The package runs the implementation of the ``torchattacks`` package (a port of
the authors' code; ``version="standard"``), which works on the CPU with the project's torch;
it is an optional dependency (:func:`require_torchattacks` says how to install it).

The package does not take the ensemble's word for it: every returned example is checked to
lie in the l-inf ball and in ``[0, 1]`` (a violation is an error), and success is the
package's own model adapter disagreeing with the label. Robust accuracy under AutoAttack,
like under PGD, is an **upper bound** on the sample's robust accuracy; it is usually the
tighter one.

Examples
--------
>>> import numpy as np, torch                                       # doctest: +SKIP
>>> from invariance_tradeoffs.simulations.models.adapters import PyTorchModel
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)).eval()
>>> x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
>>> autoattack_robust_accuracy(PyTorchModel(net), x, np.zeros(4, int), 0.3).kind
'estimate'
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
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
from invariance_tradeoffs.simulations.optional import nn, require_torch, torch
from invariance_tradeoffs.theory.distances import LpDistance
from invariance_tradeoffs.theory.results import Quantity, proportion_estimate
from invariance_tradeoffs.theory.validation import as_labels, check_eps, check_int

__all__ = ["AutoAttack", "AutoAttackResult", "VERSIONS", "autoattack",
           "autoattack_robust_accuracy", "require_torchattacks"]

#: AutoAttack ensembles of ``torchattacks``: ``standard`` is the leaderboard's.
VERSIONS = ("standard", "plus", "rand")
# The threat set is the l-inf ball intersected with [0, 1]; float32 rounding allowance.
_TOLERANCE = 1e-6


def require_torchattacks() -> Any:
    """The ``torchattacks`` module, or an ``ImportError`` saying how to install it."""
    require_torch()
    try:
        return importlib.import_module("torchattacks")
    except ImportError:
        raise ImportError(
            "AutoAttack needs the torchattacks package: pip install --no-deps "
            "'torchattacks>=3.5,<4' (--no-deps: its declared torchvision and requests==2.25 "
            "pins are not used by AutoAttack, and would replace packages this one needs)"
        ) from None


class _Logits(nn.Module if nn is not None else object):  # type: ignore[misc]
    """The adapter as a module taking package images in [0, 1] (bounds, preprocessing)."""

    def __init__(self, model: PyTorchModel) -> None:
        super().__init__()
        self.model = model
        self.inner = model.module  # registered, so torchattacks finds device and mode

    def forward(self, x: Any) -> Any:
        return self.model.forward(x)


@dataclass(frozen=True)
class AutoAttackResult:
    """Examples and success of one AutoAttack run at one radius."""

    x_adv: np.ndarray
    success: np.ndarray
    eps: float
    version: str

    @property
    def robust_accuracy(self) -> float:
        return float(1.0 - self.success.mean()) if self.success.size else float("nan")


def autoattack(model: Any, x: np.ndarray, y: np.ndarray, eps: float, *,
               version: str = "standard", seed: int = 0,
               batch_size: int = 500) -> AutoAttackResult:
    """Run AutoAttack (l-inf) on images ``x`` (``(n, 1, 28, 28)`` in ``[0, 1]``).

    Samples the model already misclassifies count as successes without attack. The
    examples are checked to lie in the threat set; success is decided by the model adapter.
    Deterministic for a given ``seed`` (torch's generator and the ensemble's seed).
    """
    ta = require_torchattacks()
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
    tm: PyTorchModel = as_torch_model(model)
    x = as_images(x)
    y = as_labels(y, "y", n_classes=tm.n_classes, length=x.shape[0], allow_reject=False)
    eps = check_eps(eps)
    batch_size = check_int(batch_size, "batch_size", low=1)
    x_adv = x.copy()
    success = tm.predict(x) != y
    todo = np.flatnonzero(~success)
    if eps > 0 and todo.size:
        torch.manual_seed(int(seed))
        attack = ta.AutoAttack(_Logits(tm), norm="Linf", eps=float(eps), version=version,
                               n_classes=tm.n_classes, seed=int(seed))
        for sl in batch_slices(todo.size, batch_size):
            idx = todo[sl]
            xb = torch.from_numpy(x[idx]).to(tm.device)
            yb = torch.from_numpy(y[idx]).to(tm.device)
            x_adv[idx] = attack(xb, yb).detach().cpu().numpy().astype(np.float32)
        _check_threat_set(x, x_adv, eps)
        success[todo] = tm.predict(x_adv[todo]) != y[todo]
    return AutoAttackResult(x_adv=x_adv, success=success, eps=eps, version=version)


def _check_threat_set(x: np.ndarray, x_adv: np.ndarray, eps: float) -> None:
    dist = np.abs(x_adv - x).reshape(len(x), -1).max(axis=1) if len(x) else np.zeros(0)
    if np.any(dist > eps + _TOLERANCE) or x_adv.min() < -_TOLERANCE or \
            x_adv.max() > 1 + _TOLERANCE:
        raise RuntimeError(f"AutoAttack returned inputs outside the l-inf ball of radius "
                           f"{eps:g} in [0, 1] (largest distance {dist.max():.6g})")


def autoattack_robust_accuracy(model: Any, x: np.ndarray, y: np.ndarray, eps: float,
                               **attack: Any) -> Quantity:
    """Robust accuracy under :func:`autoattack`, as an estimate with a Clopper-Pearson
    interval; on the sample it is an upper bound on the robust accuracy."""
    res = autoattack(model, x, y, eps, **attack)
    n = res.success.size
    return proportion_estimate(
        int(n - res.success.sum()), n,
        f"AutoAttack ({res.version}: APGD-CE, APGD-T, FAB-T, Square; torchattacks) l-inf "
        f"eps={eps:g}",
        side_on_sample="upper bound on robust accuracy",
    )


class AutoAttack(Attack):
    """AutoAttack as an :class:`~invariance_tradeoffs.simulations.attacks.base.Attack`:
    ``examples, success = AutoAttack()(images, labels, epsilons=[0.3], model=model)``."""

    kind = "sensitivity"
    distance = LpDistance("linf")

    def __init__(self, *, version: str = "standard", seed: int = 0,
                 batch_size: int = 500) -> None:
        if version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
        self.version = version
        self.seed = int(seed)
        self.batch_size = check_int(batch_size, "batch_size", low=1)

    def params(self) -> dict:
        return {"attack": "autoattack", "distance": "linf", "version": self.version,
                "seed": self.seed}

    def __call__(self, images: np.ndarray, labels: np.ndarray, *,
                 epsilons: float | Sequence[float], model: Any = None) -> AttackResult:
        self._require_model(model)
        radii = check_epsilons(epsilons)
        x = to_model_input(images)
        runs = [autoattack(model, x, labels, e, version=self.version, seed=self.seed,
                           batch_size=self.batch_size) for e in radii]
        return self._sensitivity_result(x, radii, runs)

"""The zoo's configurations: every field of :class:`TrainConfig` determines a trained model
(and enters its cache key); :data:`CONFIGS` is the registry."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

__all__ = ["METHODS", "TORCH_METHODS", "PGD_TRAINING_RADII", "IBP_TRAINING_RADII",
           "TrainConfig", "CONFIGS", "get_config"]

METHODS = ("standard", "pgd", "ibp", "logreg", "robust_linear", "knn")


TORCH_METHODS = ("standard", "pgd", "ibp")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model (all of it enters the cache key).

    Attributes
    ----------
    name : str
        Registry name (e.g. ``"pgd-0.3"``).
    method : {"standard", "pgd", "ibp", "logreg", "robust_linear", "knn"}
    arch : str
        Network architecture (torch methods), see :data:`models.ARCHITECTURES`.
    n_train : int or None
        Use the first ``n_train`` training images (``None``: all 60000).
    epochs, batch_size, lr : optimisation (Adam) for torch methods.
    lr_schedule : {"step", "onecycle"}
        ``"step"``: ``lr`` multiplied by 0.1 at each of ``lr_decay_epochs``;
        ``"onecycle"``: the one-cycle policy (Smith & Topin, 2019; torch's ``OneCycleLR``)
        peaking at ``lr`` after 25% of the steps, which reaches the accuracy targets in
        fewer epochs.
    lr_decay_epochs : tuple of int
        Epochs (0-based, at their start) where the learning rate is multiplied by 0.1
        (``"step"`` schedule only).
    eps : float
        Training radius (l-inf) for pgd, ibp and robust_linear.
    pgd_steps, pgd_step_size : PGD used during training (step size at the full eps;
        it scales with the ramped eps).
    warmup_fraction, ramp_fraction : fractions of all optimisation steps spent at
        eps = 0 and then ramping eps (and IBP's kappa) linearly to their final values.
    kappa_final : float
        IBP: final weight of the clean loss.
    l2 : float
        Linear models: penalty ``l2 / 2 * ||W||^2`` on the mean loss.
    max_iter : int
        Linear models: optimiser iterations.
    k : int
        kNN: number of neighbours.
    seed : int
        Initialisation, shuffling and PGD random starts.
    budget_minutes : float or None
        Wall-clock budget on 2 CPU cores the configuration was designed for. Training
        records its time and warns when it is exceeded (it is never cut short, so the
        result does not depend on machine speed).
    """

    name: str
    method: Literal["standard", "pgd", "ibp", "logreg", "robust_linear", "knn"]
    arch: str = "small_cnn"
    n_train: int | None = None
    epochs: int = 1
    batch_size: int = 100
    lr: float = 1e-3
    lr_schedule: Literal["step", "onecycle"] = "step"
    lr_decay_epochs: tuple[int, ...] = ()
    eps: float = 0.0
    pgd_steps: int = 0
    pgd_step_size: float = 0.0
    warmup_fraction: float = 0.0
    ramp_fraction: float = 0.0
    kappa_final: float = 1.0
    l2: float = 0.0
    max_iter: int = 200
    k: int = 3
    seed: int = 0
    budget_minutes: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.n_train is not None and self.n_train < 1:
            raise ValueError(f"n_train must be None or >= 1, got {self.n_train}")
        for name in ("epochs", "batch_size", "max_iter", "k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"eps must be finite and >= 0, got {self.eps}")
        if self.method == "pgd" and (self.pgd_steps < 1 or self.pgd_step_size <= 0):
            raise ValueError("method 'pgd' needs pgd_steps >= 1 and pgd_step_size > 0")
        if not (0 <= self.warmup_fraction and 0 <= self.ramp_fraction
                and self.warmup_fraction + self.ramp_fraction <= 1):
            raise ValueError("warmup_fraction and ramp_fraction must be >= 0 and sum to <= 1")
        if not 0 <= self.kappa_final <= 1:
            raise ValueError(f"kappa_final must be in [0, 1], got {self.kappa_final}")
        if self.lr_schedule not in ("step", "onecycle"):
            raise ValueError(f"lr_schedule must be 'step' or 'onecycle', got "
                             f"{self.lr_schedule!r}")
        object.__setattr__(self, "lr_decay_epochs", tuple(int(e) for e in self.lr_decay_epochs))

    def to_dict(self) -> dict:
        """JSON-friendly dictionary (tuples become lists)."""
        out = asdict(self)
        out["lr_decay_epochs"] = list(self.lr_decay_epochs)
        return out

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise ``ValueError``."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{source}: unknown configuration keys {sorted(unknown)}")
        return cls(**data)


def _tiny(name: str, method: str, **kw: Any) -> TrainConfig:
    # For tests: hundreds of images, one epoch, the tiny CNN; seconds on one core.
    return TrainConfig(name=name, method=method, arch="tiny_cnn", n_train=800, epochs=1,
                       batch_size=10, lr=3e-3, budget_minutes=0.5, **kw)


#: Training radii of the PGD and IBP zoo entries (the paper's sweep over eps).
PGD_TRAINING_RADII = (0.1, 0.2, 0.3, 0.4)


IBP_TRAINING_RADII = (0.1, 0.3, 0.4)


def _pgd(eps: float) -> TrainConfig:
    # Madry et al. (2018) with a short schedule: PGD-5 with step eps / 3 (0.1 at eps =
    # 0.3) from a random start, radius ramped over the first 30% of steps, one-cycle
    # learning rate, 6 epochs of the wide CNN. Cheaper single-step schedules were tried
    # and rejected (docs/mnist_models.md): random-start FGSM (step 1.25 eps or eps) and
    # PGD-2 overfit catastrophically at 0.3 (PGD-40 accuracy 0.16 / 0.09 / collapse),
    # N-FGSM reached only 0.48, PGD-3 0.87.
    return TrainConfig(f"pgd-{eps}", "pgd", arch="wide_cnn", epochs=6, lr=1e-3,
                       lr_schedule="onecycle", eps=eps, pgd_steps=5,
                       pgd_step_size=round(eps / 3, 4), ramp_fraction=0.3, budget_minutes=10)


def _ibp(eps: float) -> TrainConfig:
    # Gowal et al. (2018): short warm-up at eps = 0, eps and kappa (1 -> 0.5) ramp over
    # 50% of the steps; 10 epochs with a one-cycle learning rate peaking at 2e-3 (the
    # earlier 20 epochs with step decays reached the same certified accuracy at 0.4).
    return TrainConfig(f"ibp-{eps}", "ibp", arch="small_cnn", epochs=10, lr=2e-3,
                       lr_schedule="onecycle", eps=eps, warmup_fraction=0.05,
                       ramp_fraction=0.5, kappa_final=0.5, budget_minutes=5)


#: The registry. Full configurations are designed for 2 CPU cores: the budget is
#: stated in ``budget_minutes`` and checked by :func:`estimate_train_seconds`.
CONFIGS: dict[str, TrainConfig] = {
    c.name: c
    for c in [
        _tiny("tiny-standard", "standard"),
        _tiny("tiny-pgd", "pgd", eps=0.3, pgd_steps=3, pgd_step_size=0.15,
              warmup_fraction=0.5, ramp_fraction=0.5),
        _tiny("tiny-ibp", "ibp", eps=0.4, warmup_fraction=0.5, ramp_fraction=0.5,
              kappa_final=0.5),
        TrainConfig("tiny-logreg", "logreg", n_train=800, l2=1e-3, max_iter=50,
                    budget_minutes=0.5),
        TrainConfig("tiny-robust-linear", "robust_linear", n_train=800, eps=0.1, l2=1e-3,
                    max_iter=50, budget_minutes=0.5),
        TrainConfig("tiny-knn", "knn", n_train=800, k=3, budget_minutes=0.1),
        TrainConfig("undefended", "standard", arch="wide_cnn", epochs=4, batch_size=128,
                    lr=3e-3, lr_schedule="onecycle", budget_minutes=2),
        *(_pgd(eps) for eps in PGD_TRAINING_RADII),
        *(_ibp(eps) for eps in IBP_TRAINING_RADII),
        TrainConfig("logreg", "logreg", l2=1e-4, max_iter=300, budget_minutes=5),
        # max_iter bounds each of the two stages of fit_robust_multiclass_linear.
        TrainConfig("robust-linear-0.1", "robust_linear", eps=0.1, l2=1e-4, max_iter=150,
                    budget_minutes=15),
        TrainConfig("robust-linear-0.3", "robust_linear", eps=0.3, l2=1e-4, max_iter=150,
                    budget_minutes=15),
        TrainConfig("knn", "knn", k=3, budget_minutes=1),
    ]
}


def get_config(name: str) -> TrainConfig:
    """The registered configuration called ``name``."""
    if name not in CONFIGS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(CONFIGS)}")
    return CONFIGS[name]

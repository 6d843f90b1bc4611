"""One interface for every attack, in Foolbox's spirit.

An attack is a callable object::

    examples, success = attack(images, labels, epsilons=[0.3, 0.4])           # invariance
    examples, success = attack(images, labels, epsilons=[0.3], model=model)    # sensitivity

returning an :class:`AttackResult` (which unpacks into ``examples, success``): one row
of examples per radius. *Invariance* attacks (l-inf, l0, glyph digits) need no model: they
move a source towards another class, and success means an example was produced within the
radius (whether its human label really changed is for a judge or people to say).
*Sensitivity* attacks (PGD) need the model, and success means its label changed.

Batch runs over many sources, written as they finish and resumable, are
:func:`invariance_tradeoffs.simulations.attacks.runs.run_attack`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from invariance_tradeoffs.theory.distances import Distance
from invariance_tradeoffs.theory.validation import check_eps_grid

__all__ = ["Attack", "AttackResult", "check_epsilons"]


def check_epsilons(epsilons: object, name: str = "epsilons") -> tuple[float, ...]:
    """A non-empty sequence of radii ``>= 0`` (a single number is one radius)."""
    return tuple(check_eps_grid(epsilons, name, allow_scalar=True, allow_inf=True,
                                allow_empty=False).tolist())


@dataclass(frozen=True)
class AttackResult:
    """What an attack found, per radius.

    Attributes
    ----------
    epsilons : tuple of float
    examples : ndarray (len(epsilons), n, ...)
        One candidate per radius and input (the input itself where nothing was found).
    success : ndarray of bool (len(epsilons), n)
    distortion : ndarray (len(epsilons), n)
        Distance of each example to its input under the attack's distance (NaN where
        nothing was found).
    targets : ndarray of int (len(epsilons), n) or None
        The class an invariance example was made to resemble (``-1``: none).
    extras : dict
        Attack-specific arrays.
    """

    epsilons: tuple[float, ...]
    examples: np.ndarray
    success: np.ndarray
    distortion: np.ndarray
    targets: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[np.ndarray]:
        """``examples, success = result``."""
        yield self.examples
        yield self.success

    def at(self, eps: float) -> AttackResult:
        """The rows of radius ``eps`` (one-element result)."""
        matches = [i for i, e in enumerate(self.epsilons) if abs(e - eps) <= 1e-12]
        if not matches:
            raise KeyError(f"no radius {eps} in {self.epsilons}")
        i = matches[0]
        return AttackResult((self.epsilons[i],), self.examples[i:i + 1],
                            self.success[i:i + 1], self.distortion[i:i + 1],
                            None if self.targets is None else self.targets[i:i + 1],
                            self.extras)

    @property
    def success_rate(self) -> np.ndarray:
        """Share of inputs with a successful example, per radius."""
        return self.success.mean(axis=1)


class Attack(ABC):
    """Base class: ``attack(images, labels, *, epsilons, model=None) -> AttackResult``."""

    #: ``"invariance"`` (model-free) or ``"sensitivity"`` (needs the model).
    kind: Literal["invariance", "sensitivity"] = "invariance"
    #: The distance the radii are measured in.
    distance: Distance

    @abstractmethod
    def __call__(self, images: np.ndarray, labels: np.ndarray, *,
                 epsilons: float | Sequence[float], model: Any = None) -> AttackResult:
        """Attack a batch at every radius of ``epsilons``."""

    def params(self) -> dict:
        """JSON-ready parameters (recorded with batch runs)."""
        return {"attack": type(self).__name__, "distance": self.distance.name}

    def _sensitivity_result(self, x: np.ndarray, radii: tuple[float, ...],
                            runs: Sequence[Any]) -> AttackResult:
        """The result of one run per radius, each with ``x_adv`` and ``success`` (images
        ``x`` flattened for the distance: the distortion is measured in ``self.distance``)."""
        flat = x.reshape(len(x), -1).astype(np.float64)
        return AttackResult(
            epsilons=radii,
            examples=np.stack([r.x_adv for r in runs]),
            success=np.stack([r.success for r in runs]),
            distortion=np.stack([
                self.distance(flat, r.x_adv.reshape(len(x), -1).astype(np.float64))
                if len(x) else np.zeros(0) for r in runs]),
        )

    def _require_model(self, model: Any) -> None:
        if self.kind == "sensitivity" and model is None:
            raise ValueError(f"{type(self).__name__} is a sensitivity attack: pass model=")
        if self.kind == "invariance" and model is not None:
            raise ValueError(f"{type(self).__name__} is model-free (an invariance attack); "
                             "it takes no model")

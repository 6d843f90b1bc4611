"""The interface every toy family implements.

A toy family is a data distribution D together with an exact oracle O, so that every
quantity of the theory (margins, good radii, the ceiling P_D[r_O(x) > eps]) can be
computed exactly or checked against sampling.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from invariance_tradeoffs.theory.results import Quantity

__all__ = ["ToyFamily"]


class ToyFamily(ABC):
    """A distribution with an exact oracle.

    Subclasses set ``name``, ``n_features``, ``n_classes`` and ``norms`` (the norm names
    for which :meth:`margin` is exact) and implement the abstract methods.
    """

    name: str = "toy"
    n_features: int
    n_classes: int
    #: Norm names (see :data:`invariance_tradeoffs.theory.distances.NORM_NAMES`) with exact margins.
    norms: tuple[str, ...] = ()
    #: Whether margins, good radius and ceiling are also exact for every other
    #: :class:`~invariance_tradeoffs.theory.distances.Distance` with a dual norm (true of
    #: families whose oracle is linear: ``r_O(x) = |u.x + c| / ||u||_*``).
    any_norm: bool = False

    @abstractmethod
    def sample(
        self, n: int, seed: int | np.random.Generator | None = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` inputs ``X ~ D`` (shape ``(n, d)``) and their oracle labels ``O(X)``."""

    @abstractmethod
    def oracle(self, X: np.ndarray) -> np.ndarray:
        """Oracle labels of a batch: classes ``0..n_classes-1`` or ``REJECT``."""

    @abstractmethod
    def margin(self, X: np.ndarray, norm: str) -> np.ndarray:
        """Exact oracle margin r_O(x) under ``norm`` for each row of ``X``.

        Raises ``ValueError`` naming ``norm`` when the family has no exact margin for it.
        """

    @abstractmethod
    def good_radius(self, norm: str) -> Quantity:
        """The good radius eps*(norm): the essential infimum of r_O over D."""

    @abstractmethod
    def ceiling_curve(self, eps: np.ndarray, norm: str) -> np.ndarray:
        """Exact P_D[r_O(x) > eps] for each eps of a 1-D grid (vectorised).

        It bounds the share of inputs on which a classifier is correct, constant on the
        eps-ball and free of invariance examples (proofs/lemma.md, Corollary 2); it is not
        a bound on real robust accuracy itself, which the oracle reaches at 1.
        Raises ``ValueError`` naming ``norm`` when no closed form is known.
        """

    def ceiling(self, eps: float, norm: str) -> Quantity:
        """P_D[r_O(x) > eps] at one radius, as an exact :class:`Quantity`."""
        from invariance_tradeoffs.theory.results import exact
        from invariance_tradeoffs.theory.validation import check_eps

        eps = check_eps(eps)
        value = float(self.ceiling_curve(np.array([eps]), norm)[0])
        return exact(value, f"closed form for {self.name} under {norm}")

    def params(self) -> dict:
        """Parameters of the family (JSON-friendly), for tables and caching keys."""
        return {}

    def attaining_inputs(self, norm: str) -> np.ndarray | None:
        """Inputs of the support (or its closure) whose margin is the good radius, when the
        family knows them (the good radius is then attained, not only approached), else
        ``None``. :func:`~invariance_tradeoffs.theory.toys.registry.check_family` uses them
        to check attainment exactly."""
        return None

    def linear_oracle(self) -> tuple[np.ndarray, float] | None:
        """``(u, c)`` when the oracle is ``O(x) = [u.x + c > 0]``, else ``None``.

        Experiments that are exact only for linear oracles (exact example regions of linear
        classifiers) ask every family this, so a new linear family needs nothing else.
        """
        return None

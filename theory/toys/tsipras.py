"""The distribution of Tsipras et al. (ICLR 2019), "Robustness may be at odds with accuracy".

D: ``y`` uniform on ``{-1, +1}``; ``x_0 = y`` with probability ``p`` and ``-y``
otherwise (a *robust*, moderately predictive feature); ``x_1, ..., x_d ~ N(eta y, 1)``
i.i.d. (many weakly predictive, *non-robust* features). Inputs have ``d + 1`` features.
Class ``1`` stands for ``y = +1`` and class ``0`` for ``y = -1``.

Oracle: the Bayes rule. Its log-likelihood ratio is linear,
``log P(x | +1) / P(x | -1) = log(p / (1 - p)) x_0 + 2 eta sum_i x_i``, so
``O(x) = [w.x > 0]`` with ``w = (log(p/(1-p)), 2 eta, ..., 2 eta)`` extended to all of
R^(d+1), and the margins are linear-oracle margins
(:func:`invariance_tradeoffs.theory.toys.linear_gaussian.linear_margin`).

Their Theorem 2.1: any classifier with standard accuracy ``>= 1 - delta`` (against the
generative label ``y``) has l-inf robust accuracy at most ``p / (1 - p) * delta`` against
an adversary with ``eps >= 2 eta``. :func:`tsipras_bound` states it;
:meth:`Tsipras.linear_accuracies` computes both accuracies of a linear classifier
exactly (normal CDFs) and :meth:`Tsipras.check_bound` compares them with the bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from invariance_tradeoffs.theory.results import Quantity, bound, exact
from invariance_tradeoffs.theory.toys.common import (
    ToyBase,
    abs_normal_mixture_tail,
    check_dimension,
    check_real,
    check_seed,
    check_vector,
)
from invariance_tradeoffs.theory.toys.linear_gaussian import (
    dual_norm,
    linear_margin,
    linear_oracle_labels,
)
from invariance_tradeoffs.theory.validation import check_int

__all__ = ["Tsipras", "TsiprasCheck", "tsipras_bound"]

#: Absolute slack when comparing an exact accuracy with the bound (float rounding).
BOUND_ATOL = 1e-12


def tsipras_bound(p: float, delta: float) -> Quantity:
    """Tsipras et al. (2019), Theorem 2.1: robust accuracy ``<= p / (1 - p) * delta``.

    Valid for every classifier with standard accuracy ``>= 1 - delta`` on their
    distribution with parameter ``p`` in ``[1/2, 1)``, against an l-inf adversary with
    ``eps >= 2 eta``.

    Examples
    --------
    >>> round(tsipras_bound(0.95, 0.01).value, 6)
    0.19
    """
    p = check_real(p, "p", low=0.5, high=1.0, high_open=True)
    delta = check_real(delta, "delta", low=0.0, high=1.0)
    return bound(min(1.0, p / (1.0 - p) * delta), "upper",
                 "Tsipras et al. 2019, Thm 2.1: robust acc <= p/(1-p) * delta (eps >= 2 eta)",
                 p=p, delta=delta)


@dataclass(frozen=True)
class TsiprasCheck:
    """Exact accuracies of one classifier compared with Theorem 2.1."""

    standard_accuracy: float
    robust_accuracy: float
    bound: float
    eps: float
    applies: bool  # eps >= 2 eta, the theorem's hypothesis

    @property
    def holds(self) -> bool:
        """Whether ``robust_accuracy <= bound`` (up to float rounding)."""
        return self.robust_accuracy <= self.bound + BOUND_ATOL

    def to_dict(self) -> dict:
        return {"standard_accuracy": self.standard_accuracy,
                "robust_accuracy": self.robust_accuracy, "bound": self.bound,
                "eps": self.eps, "applies": self.applies, "holds": self.holds}


def _prob_gt(mean: np.ndarray, sd: float, thr: float | np.ndarray) -> np.ndarray:
    """``P[N(mean, sd^2) > thr]``; a point mass when ``sd == 0``."""
    if sd > 0:
        return stats.norm.sf((thr - mean) / sd)
    return (np.asarray(mean) > thr).astype(float)


class Tsipras(ToyBase):
    """Tsipras et al. (2019): one robust feature ``x_0`` and ``d`` non-robust ones.

    Parameters
    ----------
    d : int
        Number of non-robust Gaussian features (inputs have ``d + 1`` features).
    p : float
        ``P[x_0 = y]`` in ``(1/2, 1)``.
    eta : float
        Mean shift ``eta > 0`` of the Gaussian features.

    Examples
    --------
    >>> fam = Tsipras(d=16, p=0.9, eta=0.5)
    >>> fam.check_bound(*fam.bayes_weights(), eps=1.0).holds
    True
    """

    name = "tsipras"
    n_classes = 2
    norms = ("l0", "l1", "l2", "linf")
    ceiling_norms = ("l0", "l1", "l2", "linf")

    def __init__(self, d: int = 16, p: float = 0.9, eta: float = 0.5) -> None:
        self.d = check_dimension(d)
        self.n_features = self.d + 1
        self.p = check_real(p, "p", low=0.5, high=1.0, low_open=True, high_open=True)
        self.eta = check_real(eta, "eta", low=0.0, low_open=True)
        self.w = np.concatenate([[np.log(self.p / (1 - self.p))], np.full(self.d, 2 * self.eta)])

    def params(self) -> dict:
        return {"d": self.d, "p": self.p, "eta": self.eta}

    def bayes_weights(self) -> tuple[np.ndarray, float]:
        """``(w, b)`` of the Bayes rule ``[w.x + b > 0]`` (the oracle); ``b = 0``."""
        return self.w.copy(), 0.0

    # -- sampling ------------------------------------------------------------------
    def sample_with_latent(self, n: int, seed: int | np.random.Generator | None = 0
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, O(X), y)`` where ``y`` is the generative class (1 for +1, 0 for -1).

        ``X`` equals ``sample(n, seed)[0]`` for the same seed.
        """
        n = check_int(n, "n", low=1)
        rng = check_seed(seed)
        X, s = self._draw_latent(n, rng)
        return X, self.oracle(X), (s > 0).astype(np.int64)

    def _draw_latent(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        s = np.where(rng.random(n) < 0.5, 1.0, -1.0)
        x0 = np.where(rng.random(n) < self.p, s, -s)
        xg = self.eta * s[:, None] + rng.standard_normal((n, self.d))
        return np.column_stack([x0, xg]), s

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self._draw_latent(n, rng)[0]

    # -- oracle and margins --------------------------------------------------------------
    def _oracle(self, X: np.ndarray) -> np.ndarray:
        return linear_oracle_labels(X, self.w, 0.0)

    def linear_oracle(self) -> tuple[np.ndarray, float]:
        u, c = self.bayes_weights()
        return np.asarray(u, dtype=float), float(c)

    def _margin(self, X: np.ndarray, norm: str) -> np.ndarray:
        return linear_margin(X, self.w, 0.0, norm)

    def _good_radius(self, norm: str) -> Quantity:
        if norm == "l0":
            return exact(1.0, "one coordinate with w_i != 0 reaches the other class")
        return exact(0.0, "ess inf of |w.x|/||w||_q: given x_0, w.x is Gaussian, density > 0 at 0")

    def score_components(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Law of ``|w.x|``: by symmetry that of ``L x_0 + 2 eta S`` given ``y = +1``."""
        lg = self.w[0]
        shift = 2 * self.eta * self.eta * self.d
        sd = 2 * self.eta * np.sqrt(self.d)
        return np.array([lg + shift, -lg + shift]), np.array([sd, sd]), np.array(
            [self.p, 1 - self.p])

    def _ceiling(self, eps: np.ndarray, norm: str) -> np.ndarray:
        if norm == "l0":
            return (eps < 1.0).astype(float)
        return abs_normal_mixture_tail(eps * dual_norm(self.w, norm), *self.score_components())

    # -- Theorem 2.1 -------------------------------------------------------------------------
    def linear_accuracies(self, v: Sequence[float] | np.ndarray, c: float = 0.0,
                          eps: float = 0.0) -> tuple[Quantity, Quantity]:
        """Exact standard and l-inf robust accuracy of ``f(x) = [v.x + c > 0]`` against ``y``.

        Given ``y`` and ``x_0``, ``v.x + c ~ N(v_0 x_0 + c + eta y sum(v_g), ||v_g||^2)``.
        The worst l-inf perturbation of size ``eps`` moves ``v.x`` by ``eps ||v||_1``
        towards the wrong side, so ``f`` is robustly correct at ``(x, +1)`` iff
        ``v.x + c - eps ||v||_1 > 0`` and at ``(x, -1)`` iff ``v.x + c + eps ||v||_1 <= 0``.
        """
        v = check_vector(v, "v", self.n_features)
        c = check_real(c, "c")
        eps = check_real(eps, "eps", low=0.0)
        scale = max(float(np.abs(v).max()), abs(c))
        if scale > 0:  # f is invariant to positive scaling; avoids under/overflow in ||v_g||
            v, c = v / scale, c / scale
        vg = v[1:]
        sd = float(np.linalg.norm(vg))
        slack = eps * float(np.abs(v).sum())
        accs = []
        for shift in (0.0, slack):
            acc = 0.0
            for s in (1.0, -1.0):
                for x0, px in ((s, self.p), (-s, 1 - self.p)):
                    mean = v[0] * x0 + c + self.eta * s * vg.sum()
                    if s > 0:
                        acc += 0.5 * px * float(_prob_gt(mean, sd, shift))
                    else:
                        acc += 0.5 * px * (1.0 - float(_prob_gt(mean, sd, -shift)))
            accs.append(acc)
        method = "normal CDFs of the linear score given (y, x_0)"
        return (exact(accs[0], "standard accuracy: " + method),
                exact(accs[1], f"l-inf robust accuracy at eps={eps}: " + method))

    def check_bound(self, v: Sequence[float] | np.ndarray, c: float = 0.0,
                    eps: float | None = None) -> TsiprasCheck:
        """Compare a linear classifier's exact accuracies with Theorem 2.1.

        ``eps`` defaults to ``2 eta``, the smallest radius where the theorem applies.
        ``holds`` may be False only when ``applies`` is False.
        """
        eps = 2 * self.eta if eps is None else check_real(eps, "eps", low=0.0)
        std, rob = self.linear_accuracies(v, c, eps)
        limit = tsipras_bound(self.p, 1.0 - std.value).value
        return TsiprasCheck(std.value, rob.value, limit, eps, eps >= 2 * self.eta)

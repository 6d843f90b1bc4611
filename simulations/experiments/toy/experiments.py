"""The five toy experiments. Each returns an :class:`ExperimentResult`: tidy tables plus
the arrays its figure needs.

1. :func:`good_norms` -- good radius per family and norm (exact next to a sample bound)
   and the ceiling ``P_D[r_O > eps]`` (exact next to Monte Carlo with its interval).
2. :func:`alignment` -- good distance <=> perfect classifier: per distance, the good
   radius, the covering radius of a labelled sample, alignment, the 1-NN accuracy and
   (for classifier-induced distances ``d_f``) the accuracy of ``f``.
3. :func:`tradeoff` -- classifiers trained robust at eps for a grid of eps, with their
   standard, sensitivity-robust, invariance-robust and real robust accuracy against the
   ceiling; exact for linear models under linear oracles, by attack otherwise.
4. :func:`overly_robust` -- the overly-robust feature seen: where a robust linear model
   puts its weight, the invariance examples it admits, and the exact robust-optimal
   classifier of finite domains against eps.
5. :func:`glyph_attacks` -- model-free invariance attacks on glyph digits, scored by the
   known oracle.

Sizes come from :class:`ToyConfig` (``ToyConfig.small()`` for tests). Sweeps run in
parallel with joblib (``n_jobs``) behind a tqdm progress bar.
"""

from __future__ import annotations

from collections.abc import Callable

from invariance_tradeoffs.simulations.experiments.toy.config import ExperimentResult, ToyConfig
from invariance_tradeoffs.simulations.experiments.toy.glyphs import glyph_attacks
from invariance_tradeoffs.simulations.experiments.toy.norms import alignment, good_norms
from invariance_tradeoffs.simulations.experiments.toy.tradeoff import (
    DEFAULT_TRADEOFFS,
    TradeoffSpec,
    linear_oracle,
    overly_robust,
    tradeoff,
)

__all__ = [
    "ToyConfig",
    "ExperimentResult",
    "TradeoffSpec",
    "DEFAULT_TRADEOFFS",
    "linear_oracle",
    "good_norms",
    "alignment",
    "tradeoff",
    "overly_robust",
    "glyph_attacks",
    "EXPERIMENTS",
]


# --------------------------------------------------------------------------- experiment 1


# --------------------------------------------------------------------------- experiment 2


# --------------------------------------------------------------------------- experiment 3


# --------------------------------------------------------------------------- experiment 4


# --------------------------------------------------------------------------- experiment 5


#: Experiment name -> function, in the order ``tradeoffs toy all`` runs them.
EXPERIMENTS: dict[str, Callable[..., ExperimentResult]] = {
    "good-norms": good_norms,
    "alignment": alignment,
    "tradeoff": tradeoff,
    "overly-robust": overly_robust,
    "glyph-attacks": glyph_attacks,
}

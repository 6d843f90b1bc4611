"""invariance-tradeoffs: the tradeoff between invariance and sensitivity to adversarial
perturbations (Tramer, Behrmann, Carlini, Papernot, Jacobsen, ICML 2020), computed and checked.

>>> import invariance_tradeoffs as it
>>> it.LpDistance("linf")
LpDistance(linf)
>>> sorted(n for n in it.__all__ if "Attack" in n)  # doctest: +NORMALIZE_WHITESPACE
['AttackResult', 'AutoAttack', 'AutoAttackSettings', 'GlyphInvarianceAttack',
 'L0InvarianceAttack', 'LinfInvarianceAttack']

The distribution installs two packages under this name: :mod:`invariance_tradeoffs.theory`
(the formal library) and :mod:`invariance_tradeoffs.simulations` (experiments, MNIST,
attacks, models, the ``tradeoffs`` command). This module re-exports the public API; names
are loaded on first use, so ``import invariance_tradeoffs`` imports neither torch nor sympy.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_S = "invariance_tradeoffs.simulations"
_T = "invariance_tradeoffs.theory"
#: Public name -> module that defines it.
_API: dict[str, str] = {
    # models: one adapter interface (images (n, 1, 28, 28) float32 in [0, 1])
    "PyTorchModel": f"{_S}.models.adapters",
    "LinearModel": f"{_S}.models.adapters",
    "NumpyModel": f"{_S}.models.adapters",
    "as_model": f"{_S}.models.adapters",
    "load_or_train": f"{_S}.models.zoo",
    # evaluation on the human-labelled invariance examples
    "evaluate": f"{_S}.evaluation.report",
    "EvaluationReport": f"{_S}.evaluation.report",
    "certify": f"{_S}.certification",
    # attacks: attack(images, labels, epsilons=[...], model=None) -> AttackResult
    "AttackResult": f"{_S}.attacks.base",
    "LinfInvarianceAttack": f"{_S}.attacks.linf",
    "L0InvarianceAttack": f"{_S}.attacks.l0",
    "L0Search": f"{_S}.attacks.l0",
    "GlyphInvarianceAttack": f"{_S}.attacks.glyph",
    "PGD": f"{_S}.attacks.pgd",
    "AutoAttack": f"{_S}.attacks.autoattack",
    "AutoAttackSettings": f"{_S}.evaluation.agreement",
    "PGDSettings": f"{_S}.evaluation.agreement",
    "run_attack": f"{_S}.attacks.runs",
    # data
    "load_mnist": f"{_S}.data.mnist",
    "load_published_examples": f"{_S}.data.published",
    "fetch_release": f"{_S}.data.release",
    # theory
    "REJECT": f"{_T}.oracles",
    "Quantity": f"{_T}.results",
    "LpDistance": f"{_T}.distances",
    "WeightedLpDistance": f"{_T}.distances",
    "MahalanobisDistance": f"{_T}.distances",
    "get_distance": f"{_T}.distances",
    "get_family": f"{_T}.toys",
    "register_family": f"{_T}.toys",
    "check_family": f"{_T}.toys",
    "oracle_margin": f"{_T}.margins",
    "tradeoff_lemma": f"{_T}.theorem",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    if name in ("theory", "simulations"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API) | {"theory", "simulations"})

"""invariance-tradeoffs: the tradeoff between invariance and sensitivity to adversarial
perturbations (Tramer, Behrmann, Carlini, Papernot, Jacobsen, ICML 2020), computed and checked.

The distribution installs two packages under this name: :mod:`invariance_tradeoffs.theory`
(the formal library) and :mod:`invariance_tradeoffs.simulations` (experiments, MNIST,
attacks, models, the ``tradeoffs`` command). This module re-exports the public API; names
are loaded on first use, so ``import invariance_tradeoffs`` imports neither torch nor sympy.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> module that defines it.
_API: dict[str, str] = {}

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

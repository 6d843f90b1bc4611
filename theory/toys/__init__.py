"""Toy distributions with exact oracles, margins, good radii and ceilings.

Every family implements :class:`~theory.toys.base.ToyFamily`. :data:`FAMILIES` maps a
family name (as used by ``tradeoffs theory --family NAME``) to a factory whose keyword
arguments are the family's parameters, all with defaults; :func:`get_family` builds one.

Examples
--------
>>> fam = get_family("overly-robust", a=0.1)
>>> fam.good_radius("linf").value
0.1
>>> sorted(FAMILIES)[:3]
['finite-domain', 'glyph-digits', 'linear-gaussian']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from invariance_tradeoffs.theory.toys.base import ToyFamily
from invariance_tradeoffs.theory.toys.finite import FiniteDomain, RobustOptimal, binary_images
from invariance_tradeoffs.theory.toys.glyphs import GlyphDigits
from invariance_tradeoffs.theory.toys.linear_gaussian import LinearGaussian, linear_margin
from invariance_tradeoffs.theory.toys.overly_robust import OverlyRobustFeature
from invariance_tradeoffs.theory.toys.spheres import ConcentricSpheres
from invariance_tradeoffs.theory.toys.tsipras import Tsipras, TsiprasCheck, tsipras_bound

__all__ = [
    "ToyFamily",
    "FAMILIES",
    "get_family",
    "family_defaults",
    "OverlyRobustFeature",
    "LinearGaussian",
    "ConcentricSpheres",
    "Tsipras",
    "TsiprasCheck",
    "tsipras_bound",
    "GlyphDigits",
    "FiniteDomain",
    "RobustOptimal",
    "binary_images",
    "linear_margin",
]

#: Family name -> factory (keyword arguments = parameters, all with defaults).
FAMILIES: dict[str, Callable[..., ToyFamily]] = {
    "overly-robust": OverlyRobustFeature,
    "linear-gaussian": LinearGaussian,
    "spheres": ConcentricSpheres,
    "tsipras": Tsipras,
    "glyph-digits": GlyphDigits,
    "finite-domain": binary_images,
}


def _lookup(name: object) -> Callable[..., ToyFamily]:
    if not isinstance(name, str):
        raise TypeError(f"family must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    if key not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[key]


def family_defaults(name: str) -> dict:
    """Parameter names of family ``name`` with their default values."""
    sig = inspect.signature(_lookup(name))
    return {k: p.default for k, p in sig.parameters.items()}


def get_family(name: str, **params: object) -> ToyFamily:
    """Build family ``name`` with ``params`` overriding its defaults.

    Raises ``ValueError`` naming an unknown family or parameter.
    """
    factory = _lookup(name)
    allowed = family_defaults(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for family {name!r}; "
                         f"expected some of {', '.join(allowed)}")
    return factory(**params)

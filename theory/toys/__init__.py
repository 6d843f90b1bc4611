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

from invariance_tradeoffs.theory.toys.base import ToyFamily
from invariance_tradeoffs.theory.toys.common import ToyBase
from invariance_tradeoffs.theory.toys.finite import FiniteDomain, RobustOptimal, binary_images
from invariance_tradeoffs.theory.toys.glyphs import GlyphDigits
from invariance_tradeoffs.theory.toys.linear_gaussian import LinearGaussian, linear_margin
from invariance_tradeoffs.theory.toys.overly_robust import OverlyRobustFeature
from invariance_tradeoffs.theory.toys.registry import (
    FAMILIES,
    FamilyCheck,
    check_family,
    family_defaults,
    get_family,
    register_family,
    unregister_family,
)
from invariance_tradeoffs.theory.toys.spheres import ConcentricSpheres
from invariance_tradeoffs.theory.toys.tsipras import Tsipras, TsiprasCheck, tsipras_bound

__all__ = [
    "ToyFamily",
    "ToyBase",
    "register_family",
    "unregister_family",
    "check_family",
    "FamilyCheck",
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

for _name, _factory in (("overly-robust", OverlyRobustFeature),
                       ("linear-gaussian", LinearGaussian),
                       ("spheres", ConcentricSpheres),
                       ("tsipras", Tsipras),
                       ("glyph-digits", GlyphDigits),
                       ("finite-domain", binary_images)):
    register_family(_name, _factory)

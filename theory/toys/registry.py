"""The registry of toy families: :func:`register_family` adds one, :func:`check_family`
checks that it keeps the :class:`~invariance_tradeoffs.theory.toys.base.ToyFamily`
contract (in the manner of scikit-learn's ``check_estimator``).

A new family subclasses :class:`~invariance_tradeoffs.theory.toys.common.ToyBase` (which
validates arguments and implements the interface from five small methods), registers a
factory whose keyword arguments all have defaults, and passes :func:`check_family`:

>>> import numpy as np
>>> from invariance_tradeoffs.theory.results import exact
>>> from invariance_tradeoffs.theory.toys.common import ToyBase
>>> class Halves(ToyBase):
...     '''x ~ U[-1, 1], O(x) = [x > 0]: margin |x|, good radius 0.'''
...     name, n_features, n_classes = "halves", 1, 2
...     norms = ceiling_norms = ("l1", "l2", "linf")
...     def _draw(self, n, rng): return rng.uniform(-1, 1, (n, 1))
...     def _oracle(self, X): return (X[:, 0] > 0).astype(np.int64)
...     def _margin(self, X, norm): return np.abs(X[:, 0])
...     def _good_radius(self, norm): return exact(0.0, "ess inf of |x|")
...     def _ceiling(self, eps, norm): return np.clip(1.0 - eps, 0.0, 1.0)
>>> _ = register_family("halves", Halves)
>>> check_family("halves").passed
True
>>> unregister_family("halves")
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from invariance_tradeoffs.theory.oracles import REJECT
from invariance_tradeoffs.theory.results import Quantity, proportion_estimate
from invariance_tradeoffs.theory.toys.base import ToyFamily

__all__ = ["FAMILIES", "FamilyCheck", "check_family", "family_defaults", "get_family",
           "register_family", "unregister_family"]

#: Family name -> factory (keyword arguments = parameters, all with defaults).
FAMILIES: dict[str, Callable[..., ToyFamily]] = {}


def _key(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"family must be a string, got {type(name).__name__}")
    return name.strip().lower().replace("_", "-")


def register_family(name: str, factory: Callable[..., ToyFamily], *,
                    replace: bool = False) -> Callable[..., ToyFamily]:
    """Add ``factory`` (a ToyFamily subclass or a function returning one) as ``name``.

    Every parameter of ``factory`` must have a default (``get_family(name)`` builds the
    default family). Raises ``ValueError`` when ``name`` is taken (unless ``replace``) or a
    parameter has no default, ``TypeError`` when ``factory`` is not callable.
    """
    key = _key(name)
    if not key or not all(c.isalnum() or c == "-" for c in key):
        raise ValueError(f"family name must be letters, digits and '-', got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {type(factory).__name__}")
    missing = [p for p, v in inspect.signature(factory).parameters.items()
               if v.default is inspect.Parameter.empty
               and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)]
    if missing:
        raise ValueError(f"every parameter of family {name!r} needs a default; "
                         f"missing for {', '.join(missing)}")
    if key in FAMILIES and not replace:
        raise ValueError(f"family {key!r} is already registered (pass replace=True)")
    FAMILIES[key] = factory
    return factory


def unregister_family(name: str) -> None:
    """Remove a registered family (``KeyError``-free: ``ValueError`` naming it if absent)."""
    key = _key(name)
    if key not in FAMILIES:
        raise ValueError(f"unknown family {name!r}")
    del FAMILIES[key]


def _lookup(name: object) -> Callable[..., ToyFamily]:
    key = _key(name)
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


@dataclass
class FamilyCheck:
    """What :func:`check_family` found: ``failures`` (empty when the contract holds)."""

    family: str
    checks: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def require(self, ok: bool, what: str) -> None:
        self.checks.append(what)
        if not ok:
            self.failures.append(what)


#: Step above the good radius at which the ceiling must already equal its value there
#: (relative; far above the closed ball's 1e-12 slack, far below any gap between atoms),
#: and the tolerance of that comparison (a continuous ceiling moves by ~density * step).
_BOUNDARY_STEP, _BOUNDARY_TOL = 1e-9, 1e-6


def _check_boundary(fam: ToyFamily, res: FamilyCheck, norm: str, g: float) -> None:
    """The ceiling at ``eps`` = the good radius equals its limit from above.

    The good radius is exact and is the least margin, an atom of ``r_O`` whenever the
    margins have atoms (every l0 margin, the spheres' constant margins, finite domains);
    sampled margins carry float error and cannot serve as exact boundary points.
    """
    at = np.array([g, g + _BOUNDARY_STEP * (1.0 + g)])
    on, after = (float(v) for v in fam.ceiling_curve(at, norm))
    res.require(abs(on - after) <= _BOUNDARY_TOL,
                f"{norm}: ceiling at eps = the good radius counts only margins > eps "
                f"(at eps={g:.6g}: {on:.6g}, just above: {after:.6g})")


def check_family(family: str | ToyFamily, *, n: int = 4000, seed: int = 0,
                 raise_on_failure: bool = False) -> FamilyCheck:
    """Check a family against the :class:`ToyFamily` contract on ``n`` seeded samples.

    Checked: sampling is seeded and returns finite inputs with labels in range (or
    REJECT); ``oracle`` reproduces the sampled labels; ``params()`` is JSON; for every norm
    of ``norms``: margins are non-negative, at least the good radius (soundness) and come
    close to it (attainment: the family's :meth:`attaining_inputs` have that margin, or
    else the smallest sampled margin is within 10% of the margins' spread above the good
    radius -- a good radius of 0 for a family whose margins are all large fails here), a
    norm outside ``norms`` is refused; for every norm of ``ceiling_norms``: the ceiling
    is in [0, 1], non-increasing, 1 below the good radius, at the good radius equal to the
    sampled share of margins above it within a 99.99% Clopper-Pearson interval, and the
    same at the median margin (the boundary and an interior point); and at ``eps`` equal to
    the good radius (an atom of the margins for l0, the spheres and finite domains) it
    equals its limit from above: ``P_D[r_O > eps]`` counts margins *strictly* above
    ``eps``, so it is right-continuous, and a ceiling counting ``r_O >= eps`` fails here.

    Returns
    -------
    FamilyCheck
        With ``raise_on_failure``, an ``AssertionError`` listing the failures instead.
    """
    fam = get_family(family) if isinstance(family, str) else family
    if not isinstance(fam, ToyFamily):
        raise TypeError(f"family must be a name or a ToyFamily, got {type(fam).__name__}")
    res = FamilyCheck(getattr(fam, "name", type(fam).__name__))
    X, y = fam.sample(n, seed=seed)
    X2, y2 = fam.sample(n, seed=seed)
    res.require(np.array_equal(X, X2) and np.array_equal(y, y2), "sampling is seeded")
    res.require(X.shape == (n, fam.n_features) and bool(np.all(np.isfinite(X))),
                "samples are finite with n_features columns")
    res.require(bool(np.all(((y >= 0) & (y < fam.n_classes)) | (y == REJECT))),
                "labels are classes or REJECT")
    res.require(np.array_equal(fam.oracle(X), y), "oracle reproduces the sampled labels")
    try:
        json.dumps(fam.params())
        res.require(True, "params() is JSON")
    except TypeError:
        res.require(False, "params() is JSON")
    for norm in fam.norms:
        m = np.asarray(fam.margin(X, norm), dtype=float)
        good = fam.good_radius(norm)
        res.require(isinstance(good, Quantity), f"{norm}: good_radius is a Quantity")
        g = float(good.value)
        finite = m[np.isfinite(m)]
        res.require(bool(np.all(m >= 0)), f"{norm}: margins >= 0")
        res.require(bool(np.all(m >= g - 1e-9 * (1 + abs(g)))),
                    f"{norm}: margins >= good radius (soundness)")
        witness = fam.attaining_inputs(norm)
        if witness is not None:  # exact attainment on the family's own support points
            wm = np.asarray(fam.margin(witness, norm), dtype=float)
            res.require(abs(float(wm.min()) - g) <= 1e-9 * (1 + abs(g)),
                        f"{norm}: the good radius is the margin of an attaining input")
        elif finite.size:
            spread = float(np.median(finite) - g)
            res.require(float(finite.min()) <= g + 0.10 * max(spread, 1e-12) + 1e-9,
                        f"{norm}: smallest margin near the good radius (attainment)")
        if norm in fam.ceiling_norms:
            grid = np.unique(np.concatenate([[0.0, g], np.quantile(finite, [0.25, 0.5, 0.75])
                                             if finite.size else [g]]))
            curve = np.asarray(fam.ceiling_curve(grid, norm), dtype=float)
            res.require(bool(np.all((curve >= 0) & (curve <= 1))), f"{norm}: ceiling in [0, 1]")
            res.require(bool(np.all(np.diff(curve) <= 1e-12)), f"{norm}: ceiling non-increasing")
            if g > 0:
                below = float(fam.ceiling_curve(np.array([g * 0.5]), norm)[0])
                res.require(abs(below - 1.0) <= 1e-9, f"{norm}: ceiling 1 below the good radius")
            _check_boundary(fam, res, norm, g)
            for eps in (g, float(np.median(finite)) if finite.size else g):
                # margins within float error of eps count as equal (the closed ball)
                k = int(np.sum(m > eps + 1e-9 * (1.0 + abs(eps))))
                q = proportion_estimate(k, n, "sampled margins", confidence=0.9999)
                lo, hi = q.low, q.high
                value = float(fam.ceiling_curve(np.array([eps]), norm)[0])
                res.require(lo - 1e-9 <= value <= hi + 1e-9,
                            f"{norm}: ceiling at eps={eps:.4g} matches the sample "
                            f"({value:.4f} vs {k / n:.4f})")
    bogus = "l7" if "l7" not in fam.norms else "l9"
    try:
        fam.margin(X[:1], bogus)
        refused = False
    except ValueError:
        refused = True
    res.require(refused, "a norm outside norms is refused with ValueError")
    if raise_on_failure and res.failures:
        raise AssertionError(f"family {res.family} fails: " + "; ".join(res.failures))
    return res


"""Valid instances of the registered toy families (:data:`~theory.toys.FAMILIES`).

Each built-in family has a strategy of valid parameters (kept small: low dimensions,
simple fractions); a family registered without one is drawn with its defaults, and
:func:`register_family_params` gives it one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from invariance_tradeoffs.theory.strategies.arguments import check_strategy
from invariance_tradeoffs.theory.toys import FAMILIES, ToyFamily, get_family
from invariance_tradeoffs.theory.toys.registry import family_defaults

__all__ = ["FAMILY_PARAMS", "register_family_params", "family_params", "family_instances"]


def _fractions(lo: int, hi: int, den: int) -> SearchStrategy[float]:
    """``k / den`` for ``k`` in ``[lo, hi]``: short to print, exact to compare."""
    return st.integers(lo, hi).map(lambda k: k / den)


def _overly_robust() -> SearchStrategy[dict]:
    # 0 < a < b and c > a: widths and offsets added to a.
    return st.builds(lambda a, db, dc, prior: {"a": a, "b": a + db, "c": a + dc, "prior": prior},
                     _fractions(1, 10, 20), _fractions(1, 10, 20), _fractions(1, 20, 20),
                     _fractions(1, 9, 10))


def _linear_gaussian() -> SearchStrategy[dict]:
    def params(d: int) -> SearchStrategy[dict]:
        w = st.lists(st.integers(-2, 2), min_size=d, max_size=d).filter(any).map(
            lambda v: [float(x) for x in v])
        return st.fixed_dictionaries({"d": st.just(d), "m": _fractions(0, 8, 4),
                                      "sigma": _fractions(1, 8, 4), "prior": _fractions(1, 9, 10),
                                      "w": st.one_of(st.none(), w), "b": _fractions(-4, 4, 4)})
    return st.integers(1, 3).flatmap(params)


def _spheres() -> SearchStrategy[dict]:
    def params(steps: list[int]) -> SearchStrategy[dict]:
        radii = (np.cumsum(steps) / 4).tolist()
        priors = st.lists(st.integers(1, 3), min_size=len(radii), max_size=len(radii)).map(
            lambda w: (np.array(w) / sum(w)).tolist())
        return st.fixed_dictionaries({"d": st.integers(1, 3), "radii": st.just(radii),
                                      "priors": st.one_of(st.none(), priors)})
    # radii >= 0, strictly increasing: cumulative sums of a start >= 0 and steps >= 1/4
    return st.tuples(st.integers(0, 8), st.lists(st.integers(1, 8), min_size=1, max_size=2)
                     ).map(lambda t: [t[0], *t[1]]).flatmap(params)


def _tsipras() -> SearchStrategy[dict]:
    return st.fixed_dictionaries({"d": st.integers(1, 6), "p": _fractions(11, 19, 20),
                                  "eta": _fractions(1, 20, 10)})


def _glyph_digits() -> SearchStrategy[dict]:
    return st.fixed_dictionaries({"height": st.integers(10, 16), "width": st.integers(7, 12),
                                  "thickness": st.integers(1, 2),
                                  "levels": st.sampled_from([20, 10]),
                                  "jitter": st.sampled_from([0.1, 0.0])})


def _finite_domain() -> SearchStrategy[dict]:
    return st.fixed_dictionaries({"height": st.integers(2, 3), "width": st.integers(2, 3),
                                  "rule": st.sampled_from(["orientation", "majority"]),
                                  "beta": _fractions(0, 8, 4)})


#: Family name -> function returning a strategy of valid keyword arguments.
FAMILY_PARAMS: dict[str, Callable[[], SearchStrategy[dict]]] = {
    "overly-robust": _overly_robust,
    "linear-gaussian": _linear_gaussian,
    "spheres": _spheres,
    "tsipras": _tsipras,
    "glyph-digits": _glyph_digits,
    "finite-domain": _finite_domain,
}


def _registered(name: object) -> str:
    key = name.strip().lower().replace("_", "-") if isinstance(name, str) else name
    if key not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; expected one of {', '.join(FAMILIES)}")
    return key


def register_family_params(name: str, params: Callable[[], SearchStrategy[dict]]) -> None:
    """Give a registered family (:func:`~theory.toys.register_family`) a strategy of
    valid parameters: ``params()`` returns a strategy of keyword-argument dicts.

    Examples
    --------
    >>> from hypothesis import find
    >>> from invariance_tradeoffs.theory.toys import OverlyRobustFeature, register_family
    >>> from invariance_tradeoffs.theory.toys import unregister_family
    >>> _ = register_family("wide-gap", OverlyRobustFeature)
    >>> register_family_params("wide-gap", lambda: st.builds(dict, a=st.just(0.5),
    ...                                                      b=st.just(1.0)))
    >>> find(family_instances("wide-gap"), lambda fam: True).good_radius("l2").value
    0.5
    >>> unregister_family("wide-gap"); del FAMILY_PARAMS["wide-gap"]
    """
    key = _registered(name)
    if not callable(params):
        raise TypeError(f"params must be a function returning a strategy, got "
                        f"{type(params).__name__}")
    FAMILY_PARAMS[key] = params


def family_params(name: str) -> SearchStrategy[dict]:
    """Valid parameters of family ``name`` (its defaults, ``{}``, when it has no strategy).

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(family_params("overly-robust"))
    ... def test(p):
    ...     assert 0 < p["a"] < p["b"] and p["c"] > p["a"]
    >>> test()
    """
    key = _registered(name)
    if key not in FAMILY_PARAMS:
        return st.just({})
    strategy = check_strategy(FAMILY_PARAMS[key](), f"FAMILY_PARAMS[{key!r}]()")
    allowed = set(family_defaults(key))
    return strategy.map(lambda p: _known(p, allowed, key))


def _known(params: dict, allowed: set, name: str) -> dict:
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"parameter strategy of {name!r} drew unknown names {sorted(unknown)}")
    return params


def family_instances(names: str | Sequence[str] | None = None) -> SearchStrategy[ToyFamily]:
    """Instances of the toy families ``names`` (default: every registered family) with
    parameters from :func:`family_params`; shrinks towards the first name.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10)
    ... @given(family_instances("overly-robust"))
    ... def test(fam):
    ...     assert fam.good_radius("linf").value == fam.a
    >>> test()
    """
    chosen = list(FAMILIES) if names is None else [names] if isinstance(names, str) else names
    if not chosen:
        raise ValueError("names must name at least one family")
    keys = [_registered(n) for n in chosen]

    def build(key: str) -> SearchStrategy[ToyFamily]:
        return family_params(key).map(lambda p: get_family(key, **p))

    return st.sampled_from(keys).flatmap(build)

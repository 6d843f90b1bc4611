"""Eager checks of strategy arguments: bad sizes, empty ranges and unknown norms raise
when the strategy is built, naming the argument, as Hypothesis's own strategies do.

Built on :mod:`invariance_tradeoffs.theory.validation` (integers, radii) and
:func:`~invariance_tradeoffs.theory.distances.get_distance` (norm names).
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis.strategies import SearchStrategy

from invariance_tradeoffs.theory.distances import NORM_NAMES, get_distance
from invariance_tradeoffs.theory.validation import check_eps, check_int

__all__ = ["check_size_range", "check_radius_range", "check_norms", "check_strategy",
           "check_choice"]


def check_size_range(min_value: object, max_value: object, min_name: str, max_name: str,
                     *, low: int = 0, high: int | None = None) -> tuple[int, int]:
    """Return ``(min_value, max_value)`` as ints with ``low <= min <= max (<= high)``.

    Examples
    --------
    >>> check_size_range(1, 4, "min_points", "max_points")
    (1, 4)
    >>> check_size_range(5, 3, "min_points", "max_points")
    Traceback (most recent call last):
    ...
    ValueError: min_points=5 must be <= max_points=3
    """
    lo = check_int(min_value, min_name, low=low, high=high)
    hi = check_int(max_value, max_name, low=low, high=high)
    if lo > hi:
        raise ValueError(f"{min_name}={lo} must be <= {max_name}={hi}")
    return lo, hi


def check_radius_range(min_value: object, max_value: object, min_name: str = "min_value",
                       max_name: str = "max_value", *, allow_inf: bool = False
                       ) -> tuple[float, float]:
    """Return ``(min_value, max_value)`` as floats with ``0 <= min <= max`` (``max`` may be
    ``inf`` when ``allow_inf``)."""
    lo = check_eps(min_value, min_name)
    hi = check_eps(max_value, max_name, allow_inf=allow_inf)
    if lo > hi:
        raise ValueError(f"{min_name}={lo:g} must be <= {max_name}={hi:g}")
    return lo, hi


def check_norms(norms: object, name: str = "norms") -> tuple[str, ...]:
    """Canonical names of a non-empty sequence of lp norm names (``"l0"``, ``"l2"``...).

    Examples
    --------
    >>> check_norms(["l2", "linf"])
    ('l2', 'linf')
    >>> check_norms(["l2", "taxicab"])
    Traceback (most recent call last):
    ...
    ValueError: norms: unknown norm 'taxicab'; expected one of ('l0', 'l1', 'l2', 'linf')
    """
    if isinstance(norms, str) or not isinstance(norms, Sequence):
        raise TypeError(f"{name} must be a sequence of norm names such as {NORM_NAMES}, "
                        f"got {norms!r}")
    if len(norms) == 0:
        raise ValueError(f"{name} must name at least one norm")
    out = []
    for norm in norms:
        try:
            out.append(get_distance(norm).name)
        except (ValueError, TypeError) as err:
            raise type(err)(f"{name}: {err}") from None
    return tuple(out)


def check_choice(value: object, name: str, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``, else ``ValueError`` naming ``name``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return str(value)


def check_strategy(value: object, name: str) -> SearchStrategy:
    """``value`` if it is a Hypothesis strategy, else ``TypeError`` naming ``name``."""
    if not isinstance(value, SearchStrategy):
        raise TypeError(f"{name} must be a Hypothesis strategy, got {type(value).__name__}")
    return value

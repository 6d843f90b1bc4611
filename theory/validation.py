"""Input validation shared by every public function of the package (scikit-learn's
``sklearn.utils.validation`` in spirit).

Each check raises ``ValueError`` or ``TypeError`` that names the offending argument, so
that bad input never broadcasts silently into a wrong answer. This module sits below
every other one (it imports nothing from the package), so any layer may use it.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "REJECT",
    "as_batch",
    "as_labels",
    "as_real_vector",
    "check_eps_grid",
    "check_eps",
    "check_int",
    "check_n_classes",
    "check_same_length",
]


#: The oracle's reject label (the paper's bottom symbol): "no class", e.g. an input that
#: is not a digit. Defined here, below every module that checks labels, and re-exported by
#: :mod:`invariance_tradeoffs.theory.oracles`.
REJECT: int = -1


def check_int(value: object, name: str, *, low: int | None = None,
              high: int | None = None) -> int:
    """Return ``value`` as an ``int`` after checking it is an integer in ``[low, high]``.

    Examples
    --------
    >>> check_int(3, "steps", low=1)
    3
    >>> check_int(0, "steps", low=1)
    Traceback (most recent call last):
    ...
    ValueError: steps must be an integer >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            span = f">= {low}"
        elif low is None:
            span = f"<= {high}"
        else:
            span = f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {span}, got {value}")
    return value


def as_batch(
    x: object,
    name: str = "X",
    *,
    n_features: int | None = None,
    allow_empty: bool = False,
    dtype: type = np.float64,
) -> np.ndarray:
    """Return ``x`` as a finite 2-D float array of shape ``(n, d)``.

    Parameters
    ----------
    x : array_like
        A batch of inputs, one row per input.
    name : str
        Argument name used in error messages.
    n_features : int, optional
        Required number of columns ``d``.
    allow_empty : bool
        Whether ``n == 0`` is accepted.
    dtype : numpy dtype
        Output dtype.

    Raises
    ------
    TypeError
        If ``x`` is not numeric or is complex (a complex input has no real distance;
        casting it would silently drop the imaginary part).
    ValueError
        If ``x`` is not 2-D, has the wrong width, is empty, or holds NaN/inf.
    """
    arr = _real_array(x, name, allow_bool=True)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D with shape (n, d), got shape {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is an empty batch (shape {arr.shape})")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has zero features (shape {arr.shape})")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} must have {n_features} features per row, got shape {arr.shape}")
    arr = arr.astype(dtype, copy=False)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _real_array(x: object, name: str, *, allow_bool: bool) -> np.ndarray:
    """``np.asarray(x)`` after checking its dtype is real: integer, float (or bool when
    ``allow_bool``); object, string and complex arrays raise ``TypeError`` naming ``name``."""
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number)
        or (allow_bool and np.issubdtype(arr.dtype, np.bool_))
    ):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr


def as_real_vector(x: object, name: str, *, length: int | None = None,
                   allow_inf: bool = False) -> np.ndarray:
    """Return ``x`` as a non-empty 1-D float array of real numbers, never NaN.

    Parameters
    ----------
    x : array_like
        The values (integer or float; not bool, complex or object).
    name : str
        Argument name used in error messages.
    length : int, optional
        Required length.
    allow_inf : bool
        Whether ``+-inf`` is accepted (e.g. margins of inputs with no other class).

    Examples
    --------
    >>> as_real_vector([1, 2.5], "margins").tolist()
    [1.0, 2.5]
    >>> as_real_vector([1, float("nan")], "margins")
    Traceback (most recent call last):
    ...
    ValueError: margins contains NaN
    """
    arr = _real_array(x, name, allow_bool=False).astype(float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length},), got {arr.shape}")
    if np.any(np.isnan(arr)):
        raise ValueError(f"{name} contains NaN")
    if not allow_inf and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains inf")
    return arr


def check_eps(eps: object, name: str = "eps", *, allow_inf: bool = False) -> float:
    """Return ``eps`` as a float after checking it is a real number >= 0."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real | np.floating | np.integer):
        raise TypeError(f"{name} must be a real number, got {type(eps).__name__}")
    value = float(eps)
    if np.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    if np.isinf(value) and not allow_inf:
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def check_eps_grid(eps: object, name: str = "eps", *, allow_scalar: bool = False,
                   allow_inf: bool = False, allow_empty: bool = True) -> np.ndarray:
    """Return a 1-D float array of radii, each ``>= 0`` (and finite unless
    ``allow_inf``); with ``allow_scalar`` a single number is a grid of one radius, and
    ``allow_empty=False`` refuses a grid without radii (an attack needs one).

    Examples
    --------
    >>> check_eps_grid([0, 0.3]).tolist()
    [0.0, 0.3]
    >>> check_eps_grid(0.3, allow_scalar=True).tolist()
    [0.3]
    """
    if isinstance(eps, str | bytes):
        raise TypeError(f"{name} must be a sequence of radii, got {type(eps).__name__}")
    arr = np.asarray(eps)
    if arr.dtype == np.bool_ or arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a numeric array of radii, got dtype {arr.dtype}")
    if arr.ndim == 0 and allow_scalar:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D grid of radii, got shape {arr.shape}")
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} must hold at least one radius")
    arr = arr.astype(float)
    if np.any(np.isnan(arr)) or (not allow_inf and not np.all(np.isfinite(arr))):
        raise ValueError(f"{name} contains NaN{'' if allow_inf else ' or inf'}")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0, got {arr[arr < 0][:3].tolist()}")
    return arr


def check_n_classes(n_classes: object, name: str = "n_classes") -> int:
    """Return the number of classes after checking it is an integer >= 2."""
    if isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(n_classes).__name__}")
    if int(n_classes) < 2:
        raise ValueError(f"{name} must be >= 2, got {n_classes}")
    return int(n_classes)


def as_labels(
    y: object,
    name: str = "y",
    *,
    n_classes: int | None = None,
    allow_reject: bool = True,
    length: int | None = None,
) -> np.ndarray:
    """Return ``y`` as a 1-D int64 label array, checking the label range.

    Labels are classes ``0 .. n_classes - 1`` or, when ``allow_reject``,
    the reject value :data:`REJECT` (the paper's bottom symbol).
    """
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(
            arr == np.round(arr)
        ):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name} must have length {length}, got {arr.shape[0]}")
    if n_classes is not None and arr.size:
        ok = (arr >= 0) & (arr < n_classes)
        if allow_reject:
            ok |= arr == REJECT
        if not np.all(ok):
            bad = arr[~ok][:5].tolist()
            allowed = f"0..{n_classes - 1}" + (f" or REJECT={REJECT}" if allow_reject else "")
            raise ValueError(f"{name} has labels out of range {allowed}: {bad}")
    return arr


def check_same_length(**arrays: np.ndarray) -> int:
    """Check that all given arrays share their first dimension; return it."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise ValueError(f"arguments must have the same number of rows: {detail}")
    return next(iter(lengths.values()))

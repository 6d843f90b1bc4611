"""MNIST image batches at the package's boundaries, checked and converted in one place.

Two representations travel through the package:

- **stored pixels**: ``uint8`` ``(n, 28, 28)`` in ``0..255``, as in the IDX files (the
  alignment search works on them exactly, as the authors' attack did);
- **unit images**: floats in ``[0, 1]``, either ``(n, 28, 28)`` (attacks, judges) or
  ``(n, 1, 28, 28)`` float32 (the model input of every adapter, Foolbox-style).

:func:`as_unit_images` turns either representation into unit images of the requested
layout and dtype (``uint8`` is divided by 255); :func:`as_stored_pixels` insists on stored
pixels. Nothing is reshaped silently: a flat ``(n, 784)`` batch or a transposed array is
an error naming the argument.

Example
-------
>>> import numpy as np
>>> x = as_unit_images(np.full((2, 28, 28), 255, np.uint8), channels=True, dtype=np.float32)
>>> x.shape, x.dtype, float(x.max())
((2, 1, 28, 28), dtype('float32'), 1.0)
"""

from __future__ import annotations

import numpy as np

__all__ = ["IMAGE_HW", "as_stored_pixels", "as_unit_images"]

#: Height and width of an MNIST image.
IMAGE_HW: tuple[int, int] = (28, 28)


def _numeric(images: object, name: str) -> np.ndarray:
    arr = np.asarray(images)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr


def as_unit_images(images: object, name: str = "images", *, channels: bool = False,
                   dtype: type = np.float64, allow_empty: bool = False,
                   strict: bool = False) -> np.ndarray:
    """A batch of MNIST images as floats in ``[0, 1]``.

    Parameters
    ----------
    images : array_like
        ``(n, 28, 28)`` or ``(n, 1, 28, 28)``; ``uint8`` (read as 0..255) or floats in
        ``[0, 1]``.
    name : str
        Argument name used in error messages.
    channels : bool
        Return ``(n, 1, 28, 28)`` (the model input layout) instead of ``(n, 28, 28)``.
    dtype : numpy dtype
        Output dtype (float32 for models, float64 elsewhere).
    allow_empty : bool
        Whether ``n == 0`` is accepted.
    strict : bool
        Accept only the returned layout and floats (no uint8, no layout change): the check
        of an input that must already be in the model format.

    Raises
    ------
    TypeError
        Non-numeric input (or, with ``strict``, not floats).
    ValueError
        Wrong shape, an empty batch, NaN/inf, or float values outside ``[0, 1]``.
    """
    arr = _numeric(images, name)
    want = "(n, 1, 28, 28)" if channels else "(n, 28, 28)"
    if arr.ndim == 4 and arr.shape[1:] == (1, *IMAGE_HW) and not (strict and not channels):
        arr = arr if channels else arr[:, 0]
    elif arr.ndim == 3 and arr.shape[1:] == IMAGE_HW and not (strict and channels):
        arr = arr[:, None] if channels else arr
    else:
        accepted = want if strict else "(n, 28, 28) or (n, 1, 28, 28)"
        raise ValueError(f"{name} must have shape {accepted}, got {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is an empty batch (shape {arr.shape})")
    if arr.dtype == np.uint8 and not strict:
        return arr.astype(dtype) / dtype(255.0)
    out = np.ascontiguousarray(arr, dtype=dtype)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} contains NaN or inf")
    if out.size and (out.min() < 0 or out.max() > 1):
        raise ValueError(
            f"{name} must hold values in [0, 1]" + ("" if strict else " (or be uint8 0..255)")
            + f", got range [{out.min():g}, {out.max():g}]")
    return out


def as_stored_pixels(images: object, name: str = "images") -> np.ndarray:
    """A batch of MNIST images as stored: ``uint8`` ``(n, 28, 28)``, returned as is.

    Raises
    ------
    ValueError
        Wrong shape.
    TypeError
        Not ``uint8`` (floats would be rounded differently from the stored pixels).
    """
    arr = _numeric(images, name)
    if arr.ndim != 3 or arr.shape[1:] != IMAGE_HW:
        raise ValueError(f"{name} must have shape (n, 28, 28), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 pixel values 0..255, got dtype {arr.dtype}")
    return arr

"""Transforms of binarised MNIST digits searched by the l0 attack: affine warps (rotation,
per-axis scale, shear, shift) and a continuous stroke-thickness change, and the binarised
l0 distance."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from invariance_tradeoffs.simulations.attacks.l0.judges import binarize

__all__ = ["IDENTITY", "N_AFFINE", "PARAM_NAMES", "TransformSpace", "affine_parts",
           "change_thickness", "l0_distance", "transform_images", "warp"]

#: Components of a transform parameter vector (rows are image rows, cols image columns).
PARAM_NAMES: tuple[str, ...] = (
    "angle",
    "scale_row",
    "scale_col",
    "shear_row",
    "shear_col",
    "shift_row",
    "shift_col",
    "thickness",
)


N_AFFINE = 7


IDENTITY = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])


_CENTRE = np.array([13.5, 13.5])


_CROSS = ndimage.generate_binary_structure(2, 1)[None]  # (1, 3, 3): per image


@dataclass(frozen=True)
class TransformSpace:
    """Ranges of the transform parameters searched by the attack.

    Parameters
    ----------
    angle : float
        Largest rotation in radians (searched in ``[-angle, angle]``).
    scale : (float, float)
        Range of the scale factor of each axis.
    shear : float
        Largest shear coefficient of each axis.
    shift : float
        Largest translation in pixels along each axis.
    thickness : float
        Largest stroke-thickness level: ``+1`` is a full 3x3-cross grey dilation,
        ``-1`` a full erosion, values in between blend with the unchanged image.
    """

    angle: float = 0.25
    scale: tuple[float, float] = (0.8, 1.2)
    shear: float = 0.2
    shift: float = 6.0
    thickness: float = 1.0

    def __post_init__(self) -> None:
        for name in ("angle", "shear", "shift", "thickness"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not 0 <= float(value) < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.thickness > 1:
            raise ValueError(f"thickness must be <= 1, got {self.thickness}")
        lo, hi = self.scale
        if not 0 < lo <= 1 <= hi < math.inf:
            raise ValueError(
                f"scale must be a range (lo, hi) with 0 < lo <= 1 <= hi, got {self.scale}"
            )

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds of the 8 parameters (see :data:`PARAM_NAMES`)."""
        s = self.scale[0]
        return np.array(
            [-self.angle, s, s, -self.shear, -self.shear, -self.shift, -self.shift,
             -self.thickness]
        )

    @property
    def upper(self) -> np.ndarray:
        """Upper bounds of the 8 parameters."""
        s = self.scale[1]
        return np.array(
            [self.angle, s, s, self.shear, self.shear, self.shift, self.shift, self.thickness]
        )

    def clip(self, params: np.ndarray) -> np.ndarray:
        """Clip parameter vectors (..., 8) into the space."""
        return np.clip(params, self.lower, self.upper)


def _as_params(params: object, name: str = "params") -> np.ndarray:
    arr = np.asarray(params, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in (N_AFFINE, len(PARAM_NAMES)):
        raise ValueError(f"{name} must have shape (m, 7) or (m, 8), got {np.shape(params)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def affine_parts(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear parts ``(m, 2, 2)`` and translations ``(m, 2)`` of transform parameters.

    The transform maps pixel ``p`` (row, col) to ``M (p - c) + c + t`` with centre
    ``c = (13.5, 13.5)``, ``M = R(angle) @ [[1, shear_row], [shear_col, 1]] @
    diag(scale_row, scale_col)`` and ``t = (shift_row, shift_col)``.
    """
    p = _as_params(params)
    cos, sin = np.cos(p[:, 0]), np.sin(p[:, 0])
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shear = np.ones((len(p), 2, 2))
    shear[:, 0, 1], shear[:, 1, 0] = p[:, 3], p[:, 4]
    scale = np.zeros((len(p), 2, 2))
    scale[:, 0, 0], scale[:, 1, 1] = p[:, 1], p[:, 2]
    mat = rot @ shear @ scale
    if np.any(np.abs(np.linalg.det(mat)) < 1e-6):
        raise ValueError("params describe a singular (non-invertible) transform")
    return mat, p[:, 5:7].copy()


def warp(images: np.ndarray, params: np.ndarray, *, inverse: bool = False) -> np.ndarray:
    """Apply affine transforms (bilinear interpolation, zero outside the image).

    Parameters
    ----------
    images : ndarray (n, 28, 28)
        Images in [0, 1]; ``n`` equals the number of transforms ``m`` or is 1 (the same
        image under every transform).
    params : ndarray (m, 7) or (m, 8)
        Transform parameters (:data:`PARAM_NAMES`; a thickness column is ignored).
    inverse : bool
        Apply the inverse transforms instead.

    Returns
    -------
    ndarray (m, 28, 28)
    """
    images = np.asarray(images, dtype=np.float64)
    mat, shift = affine_parts(params)
    m = len(mat)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) not in (1, m):
        raise ValueError(f"images must have shape (1 or {m}, 28, 28), got {images.shape}")
    grid = np.indices((28, 28)).reshape(2, -1).T - _CENTRE  # (784, 2) output pixel - c
    if inverse:  # output p comes from input M (p - c) + c + t
        src = grid @ mat.transpose(0, 2, 1) + (_CENTRE + shift)[:, None, :]
    else:  # output p comes from input M^-1 (p - c - t) + c
        inv = np.linalg.inv(mat)
        src = (grid[None] - shift[:, None, :]) @ inv.transpose(0, 2, 1) + _CENTRE
    coords = src.reshape(-1, 2).T  # (2, m * 784)
    if len(images) == 1:
        out = ndimage.map_coordinates(images[0], coords, order=1, mode="constant", cval=0.0)
    else:
        which = np.repeat(np.arange(m, dtype=np.float64), 28 * 28)[None]
        out = ndimage.map_coordinates(
            images, np.concatenate([which, coords]), order=1, mode="constant", cval=0.0
        )
    return out.reshape(m, 28, 28)


def change_thickness(images: np.ndarray, levels: np.ndarray | float) -> np.ndarray:
    """Thicken (level > 0) or thin (level < 0) strokes by grey dilation / erosion.

    ``level`` in ``[-1, 1]`` blends the image with its 3x3-cross grey dilation
    (``level > 0``) or erosion (``level < 0``): ``x + |level| (morph(x) - x)``.
    """
    images = np.asarray(images, dtype=np.float64)
    levels = np.broadcast_to(np.asarray(levels, dtype=np.float64), (len(images),))
    if np.any(np.abs(levels) > 1):
        raise ValueError("thickness levels must be in [-1, 1]")
    out = images.copy()
    up, down = levels > 0, levels < 0
    if up.any():
        dil = ndimage.grey_dilation(images[up], footprint=_CROSS)
        out[up] += levels[up, None, None] * (dil - images[up])
    if down.any():
        ero = ndimage.grey_erosion(images[down], footprint=_CROSS)
        out[down] += -levels[down, None, None] * (ero - images[down])
    return out


def transform_images(images: np.ndarray, params: np.ndarray) -> np.ndarray:
    """The attack's forward transform: affine warp, then the stroke-thickness change."""
    p = _as_params(params)
    if p.shape[1] != len(PARAM_NAMES):
        raise ValueError(f"params must have shape (m, 8), got {p.shape}")
    return change_thickness(warp(images, p), p[:, 7])


def l0_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of pixels whose binarised (> 0.5) values differ, per image pair."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    diff = binarize(a) != binarize(b)
    return diff.reshape(diff.shape[0], -1).sum(axis=1) if diff.ndim == 3 else diff.sum()

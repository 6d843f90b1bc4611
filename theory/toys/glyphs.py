"""GlyphDigits: seven-segment digits on a small pixel canvas -- a toy MNIST with an exact oracle.

Canvas ``height x width``, pixel values in ``[0, 1]``, images flattened row-major to
``d = height * width`` features (:attr:`GlyphDigits.image_shape`). Seven disjoint
rectangular pixel sets ``S_a .. S_g`` (the segments' *core regions*, thickness
``thickness``) are laid out like a seven-segment display; the corner blocks where
segments meet and the one-pixel frame belong to no segment::

      . . . . . . . . . .          a: top      b: upper right   c: lower right
      . + + a a a a + + .          d: bottom   e: lower left    f: upper left
      . f f . . . . b b .          g: middle   +: corner (drawn, not read)
      . + + g g g g + + .
      . e e . . . . c c .
      . + + d d d d + + .
      . . . . . . . . . .

Oracle: segment ``s`` is *on* iff the mean ink over ``S_s`` is ``>= threshold``; the on-set
is decoded with the standard seven-segment table (:data:`DIGIT_SEGMENTS`; 6 with its top
bar, 7 as ``abc``, 9 with its bottom bar). An on-set that is no digit gets ``REJECT``.
Pixels outside the segments never change the label *within the box*.

Domain: the box ``[0, 1]^d``. An input with a pixel outside it is no image and gets
``REJECT`` (a pixel at ``-1`` would otherwise pull a segment's mean ink below the threshold
with a single changed pixel, an 8 becoming a 6 at l0 distance 1 -- cheaper than any change
inside the box). So every input of another class lies in the box, which is what the
closed forms below assume; :meth:`GlyphDigits.margin` and :meth:`GlyphDigits.flip_costs`
refuse inputs outside it.

Exact margins. Because the segments are disjoint and the oracle reads each segment only
through its sum, changing the label to digit ``k`` means flipping exactly the segments in
``state(x) XOR code(k)``, each independently. Flipping one segment costs (``caps`` = how
far each pixel can move: ``v`` to switch off, ``1 - v`` to switch on; ``A`` = ink that
must leave or enter)

* l1: ``A``;  l-inf: the water level ``lam`` with ``sum min(caps, lam) = A``;
* l2: ``sqrt(sum min(caps, lam)^2)`` for the same ``lam`` (water filling);
* l0: the least number of the largest caps whose sum exceeds (switch off) or reaches
  (switch on) ``A``;

and the flips combine by ``max`` (l-inf), sum (l1, l0) or root-sum-of-squares (l2);
``r_O(x)`` is the minimum over the digits ``k != O(x)``. Proofs: ``proofs/closed_forms.md``.

Sampling is quantised to ``levels`` grey levels, so D has finite support; every sample
has its segment pixels on the correct side of the threshold, and the good radius is the
exact margin of the "faintest" image in the support (proof by monotonicity).
"""

from __future__ import annotations

import math

import numpy as np

from invariance_tradeoffs.theory.oracles import REJECT
from invariance_tradeoffs.theory.results import Quantity, exact
from invariance_tradeoffs.theory.toys.common import ToyBase, check_real, water_level
from invariance_tradeoffs.theory.validation import check_int

__all__ = ["GlyphDigits", "DIGIT_SEGMENTS", "SEGMENTS", "segment_masks", "decode_segments"]

#: Segment names in index order.
SEGMENTS = "abcdefg"

#: The standard seven-segment table (digit -> lit segments).
DIGIT_SEGMENTS: dict[int, str] = {
    0: "abcdef", 1: "bc", 2: "abdeg", 3: "abcdg", 4: "bcfg",
    5: "acdfg", 6: "acdefg", 7: "abc", 8: "abcdefg", 9: "abcdfg",
}

#: Each digit as a boolean row over the segments, shape (10, 7).
DIGIT_CODES = np.array([[s in DIGIT_SEGMENTS[k] for s in SEGMENTS] for k in range(10)])

# Lookup: 7-bit on-set (bit i = segment i) -> digit or REJECT.
_DECODE = np.full(128, REJECT, dtype=np.int64)
_DECODE[DIGIT_CODES @ (1 << np.arange(7))] = np.arange(10)

#: Absolute slack (in summed ink) of the oracle's threshold test: float sums of
#: quantised pixels are not exact, and margins use the very same test.
SUM_SLACK = 1e-9


def decode_segments(state: np.ndarray) -> np.ndarray:
    """Digit (or ``REJECT``) of each boolean on-set row of shape ``(n, 7)``."""
    state = np.asarray(state, dtype=bool)
    return _DECODE[state.astype(np.int64) @ (1 << np.arange(7))]


def segment_masks(height: int, width: int, thickness: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the seven segments and of the corner blocks.

    Returns ``(segments, corners)`` of shapes ``(7, height, width)`` and
    ``(6, height, width)``; ``corners`` lists top-left, top-right, middle-left,
    middle-right, bottom-left, bottom-right. Raises ``ValueError`` naming the parameter
    when a segment would be empty.
    """
    h, w, t = height, width, thickness
    top, bottom, left, right = 1, h - 1, 1, w - 1
    mid = (top + bottom - t) // 2
    if right - left - 2 * t < 1:
        raise ValueError(f"width={w} too small for thickness={t}: need width >= {2 * t + 3}")
    if mid - (top + t) < 1 or (bottom - t) - (mid + t) < 1:
        raise ValueError(f"height={h} too small for thickness={t}: need height >= {3 * t + 4}")
    seg = np.zeros((7, h, w), dtype=bool)
    cols_h = slice(left + t, right - t)
    rows_up, rows_lo = slice(top + t, mid), slice(mid + t, bottom - t)
    cols_l, cols_r = slice(left, left + t), slice(right - t, right)
    rows_a, rows_g, rows_d = slice(top, top + t), slice(mid, mid + t), slice(bottom - t, bottom)
    seg[0][rows_a, cols_h] = True  # a
    seg[1][rows_up, cols_r] = True  # b
    seg[2][rows_lo, cols_r] = True  # c
    seg[3][rows_d, cols_h] = True  # d
    seg[4][rows_lo, cols_l] = True  # e
    seg[5][rows_up, cols_l] = True  # f
    seg[6][rows_g, cols_h] = True  # g
    corners = np.zeros((6, h, w), dtype=bool)
    for i, (rows, cols) in enumerate([(rows_a, cols_l), (rows_a, cols_r), (rows_g, cols_l),
                                      (rows_g, cols_r), (rows_d, cols_l), (rows_d, cols_r)]):
        corners[i][rows, cols] = True
    return seg, corners


# Segments touching each corner block (for drawing connected strokes only).
_CORNER_SEGMENTS = [("a", "f"), ("a", "b"), ("f", "e", "g"), ("b", "c", "g"), ("d", "e"),
                    ("d", "c")]


class GlyphDigits(ToyBase):
    """Seven-segment digits with stroke thickness and grey-level jitter.

    Parameters
    ----------
    height, width : int
        Canvas size; ``image_shape = (height, width)``.
    thickness : int
        Stroke thickness in pixels (>= 1).
    levels : int
        Grey levels ``L``: every sampled pixel is a multiple of ``1/L``.
    ink_low : float
        Lowest stroke intensity: a glyph's ink level is uniform on the grid
        ``[ink_low, 1]``.
    jitter : float
        Per-pixel jitter: stroke pixels lose, and background pixels get, a uniform
        ``j/L`` with ``j in {0, ..., round(jitter * L)}``.
    threshold : float
        Mean ink in ``(0, 1)`` from which a segment counts as on.

    Raises
    ------
    ValueError
        Naming the parameter, when a segment would be empty or when a sample could fall
        on the wrong side of ``threshold`` (``ink_low - jitter <= threshold`` or
        ``jitter >= threshold`` after quantisation).

    Examples
    --------
    >>> fam = GlyphDigits()
    >>> fam.image_shape, fam.n_features
    ((14, 10), 140)
    >>> round(fam.good_radius("linf").value, 12)
    0.15
    """

    name = "glyph-digits"
    n_classes = 10
    norms = ("l0", "l1", "l2", "linf")
    ceiling_norms = ()

    def __init__(self, height: int = 14, width: int = 10, thickness: int = 2, levels: int = 20,
                 ink_low: float = 0.8, jitter: float = 0.15, threshold: float = 0.5) -> None:
        self.height = check_int(height, "height", low=1)
        self.width = check_int(width, "width", low=1)
        self.thickness = check_int(thickness, "thickness", low=1)
        self.levels = check_int(levels, "levels", low=1)
        self.ink_low = check_real(ink_low, "ink_low", low=0.0, high=1.0)
        self.jitter = check_real(jitter, "jitter", low=0.0, high=1.0)
        self.threshold = check_real(threshold, "threshold", low=0.0, high=1.0, low_open=True,
                                    high_open=True)
        seg, corners = segment_masks(self.height, self.width, self.thickness)
        self.n_features = self.height * self.width
        self.segment_index = [np.flatnonzero(m.ravel()) for m in seg]
        self.segment_sizes = np.array([ix.size for ix in self.segment_index])
        self._corner_index = [np.flatnonzero(m.ravel()) for m in corners]
        self._ink_lo = math.ceil(self.ink_low * self.levels - 1e-9)
        self._jit = round(self.jitter * self.levels)
        if (self._ink_lo - self._jit) / self.levels <= self.threshold:
            raise ValueError(
                f"ink_low - jitter must exceed threshold after quantisation: "
                f"({self._ink_lo} - {self._jit})/{self.levels} <= {self.threshold}")
        if self._jit / self.levels >= self.threshold:
            raise ValueError(f"jitter must be below threshold: {self._jit}/{self.levels} >= "
                             f"{self.threshold}")

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(height, width)``; rows of ``X`` are images flattened row-major."""
        return (self.height, self.width)

    def params(self) -> dict:
        return {"height": self.height, "width": self.width, "thickness": self.thickness,
                "levels": self.levels, "ink_low": self.ink_low, "jitter": self.jitter,
                "threshold": self.threshold}

    # -- sampling ----------------------------------------------------------------------
    def render(self, digits: np.ndarray, ink: np.ndarray, stroke_jitter: np.ndarray,
               background: np.ndarray) -> np.ndarray:
        """Draw glyphs from integer grey levels (the sampler's deterministic part).

        ``digits`` (n,), ``ink`` (n,) and the per-pixel integers ``stroke_jitter`` and
        ``background`` (n, d) give stroke pixels ``(ink - stroke_jitter)/L`` and all other
        pixels ``background/L``.
        """
        lit = np.zeros((digits.size, self.n_features), dtype=bool)
        for s, ix in enumerate(self.segment_index):
            lit[np.ix_(DIGIT_CODES[digits, s], ix)] = True
        for ix, names in zip(self._corner_index, _CORNER_SEGMENTS, strict=True):
            touch = DIGIT_CODES[digits][:, [SEGMENTS.index(s) for s in names]].any(axis=1)
            lit[np.ix_(touch, ix)] = True
        levels = np.where(lit, ink[:, None] - stroke_jitter, background)
        return levels / self.levels

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        digits = rng.integers(0, 10, size=n)
        ink = rng.integers(self._ink_lo, self.levels + 1, size=n)
        jit = rng.integers(0, self._jit + 1, size=(2, n, self.n_features))
        return self.render(digits, ink, jit[0], jit[1])

    def faintest(self, digits: np.ndarray | None = None) -> np.ndarray:
        """The support image of each digit with every segment nearest the threshold.

        Stroke pixels at ``(ink_lo - jitter)/L``, all other pixels at ``jitter/L``. It has
        positive probability under D, and its margin is the least among its digit's
        samples (the good radius is the minimum over digits).
        """
        digits = np.arange(10) if digits is None else np.asarray(digits)
        full = np.full((digits.size, self.n_features), self._jit)
        return self.render(digits, np.full(digits.size, self._ink_lo), full, full)

    # -- the oracle -----------------------------------------------------------------------
    def segment_sums(self, X: np.ndarray) -> np.ndarray:
        """Summed ink of each segment, shape ``(n, 7)``."""
        return np.column_stack([X[:, ix].sum(axis=1) for ix in self.segment_index])

    def segment_state(self, X: np.ndarray) -> np.ndarray:
        """Which segments are on (mean ink ``>= threshold``), shape ``(n, 7)``."""
        return self.segment_sums(X) >= self.threshold * self.segment_sizes - SUM_SLACK

    @staticmethod
    def in_box(X: np.ndarray) -> np.ndarray:
        """Per row: every pixel in ``[0, 1]`` (the family's domain)."""
        return np.all((X >= 0.0) & (X <= 1.0), axis=1)

    def check_in_box(self, X: np.ndarray, name: str = "X") -> np.ndarray:
        """Validated batch whose rows all lie in ``[0, 1]^d`` (``ValueError`` otherwise)."""
        X = self.check_X(X, name)
        outside = ~self.in_box(X)
        if np.any(outside):
            raise ValueError(
                f"{name} has {int(outside.sum())} row(s) with pixels outside [0, 1] (first: "
                f"row {int(np.argmax(outside))}); the glyph oracle rejects them and exact "
                "margins are defined on the box [0, 1]^d only")
        return X

    def _oracle(self, X: np.ndarray) -> np.ndarray:
        labels = decode_segments(self.segment_state(X))
        labels[~self.in_box(X)] = REJECT  # no image: see the module docstring
        return labels

    # -- margins -------------------------------------------------------------------------
    def flip_costs(self, X: np.ndarray, norm: str) -> np.ndarray:
        """Least ``norm`` change flipping each segment alone, shape ``(n, 7)``.

        For l-inf, l1 and l0 this is the infimum over images with that segment flipped;
        for l2 it is the root of the least sum of squares. Rows must lie in the box.
        """
        X = self.check_in_box(X)
        norm = self.check_norm(norm)
        cut = self.threshold * self.segment_sizes
        out = np.empty((X.shape[0], 7))
        for s, ix in enumerate(self.segment_index):
            v = X[:, ix]
            total = v.sum(axis=1)
            on = total >= cut[s] - SUM_SLACK
            caps = np.where(on[:, None], v, 1.0 - v)
            # Ink that must leave (on: strictly more than this) or enter (off: this much).
            amount = np.abs(total - cut[s])
            if norm == "l1":
                out[:, s] = amount
            elif norm == "l0":
                # The same slack as segment_state: an on segment goes off once more than
                # amount + slack leaves; an off one goes on once amount - slack enters.
                top = np.cumsum(-np.sort(-caps, axis=1), axis=1)
                short = np.where(on[:, None], top <= (amount + SUM_SLACK)[:, None],
                                 top < (amount - SUM_SLACK)[:, None])
                out[:, s] = 1 + short.sum(axis=1)
            else:
                lam = water_level(caps, amount)
                if norm == "linf":
                    out[:, s] = lam
                else:
                    out[:, s] = np.sqrt((np.minimum(caps, lam[:, None]) ** 2).sum(axis=1))
        return out

    def _margin(self, X: np.ndarray, norm: str) -> np.ndarray:
        costs = self.flip_costs(X, norm)
        state = self.segment_state(X)
        flips = state[:, None, :] ^ DIGIT_CODES[None, :, :]  # (n, 10, 7)
        c = np.where(flips, costs[:, None, :], 0.0)
        if norm == "linf":
            per_target = c.max(axis=2)
        elif norm == "l2":
            per_target = np.sqrt((c * c).sum(axis=2))
        else:
            per_target = c.sum(axis=2)
        label = decode_segments(state)
        per_target[np.arange(10)[None, :] == label[:, None]] = np.inf
        return per_target.min(axis=1)

    def _good_radius(self, norm: str) -> Quantity:
        worst = self.faintest()
        m = self._margin(worst, norm)
        k = int(np.argmin(m))
        return exact(float(m[k]), "margin of the faintest support image (monotone in every "
                     "segment's distance to the threshold), minimised over digits", digit=k)

    def attaining_inputs(self, norm: str) -> np.ndarray:
        """The faintest support image of every digit (the good radius is their minimum)."""
        self.check_norm(norm)
        return self.faintest()

    def _ceiling(self, eps: np.ndarray, norm: str) -> np.ndarray:  # pragma: no cover
        raise ValueError("glyph-digits has no closed-form ceiling; use ceiling_estimate")

    def to_images(self, X: np.ndarray) -> np.ndarray:
        """Rows of ``X`` as images of shape ``(n, height, width)``."""
        return self.check_X(X).reshape(-1, self.height, self.width)

"""Distances d(x, x') on inputs: lp norms, weighted lp, Mahalanobis,
transformation-invariant distances and the classifier-induced distance d_f.

Every distance offers two vectorised forms:

* ``d(X, Y)`` -- row-wise distances between paired rows, shape ``(n,)``;
* ``d.pairwise(X, Y)`` -- all pairs, shape ``(n, m)``.

Pairwise lp computations are delegated to :func:`scipy.spatial.distance.cdist`.

Distances that are norms of ``x - x'`` also carry the geometry that attacks, robust
training and exact linear analysis need, so a new norm is added in one place and works
everywhere:

* ``d.norm(V)`` -- ``d(V, 0)`` row-wise;
* ``d.dual_norm(W)`` -- ``max_{d(v, 0) <= 1} w . v`` (the worst case of a linear score
  over a ball of radius 1: ``w . x - eps * dual_norm(w)``);
* ``d.steepest(G)`` -- a maximiser of ``g . v`` over ``d(v, 0) <= 1`` (PGD's step);
* ``d.project(X0, X, eps)`` -- the Euclidean projection of each ``X[i]`` onto the closed
  ball ``{x : d(x, X0[i]) <= eps}`` (exact);
* ``d.whitening()`` -- a matrix ``A`` with ``d(x, y) = ||(x - y) A||_2`` when one exists.

A distance without one of these raises ``NotImplementedError`` naming it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist

from invariance_tradeoffs.theory.validation import as_batch, check_eps, check_same_length

__all__ = [
    "Distance",
    "LpDistance",
    "WeightedLpDistance",
    "MahalanobisDistance",
    "TransformInvariantDistance",
    "ClassifierInducedDistance",
    "cyclic_shifts",
    "TransformSet",
    "get_distance",
    "NORM_NAMES",
    "dual_exponent",
]

#: Names accepted by :func:`get_distance`.
NORM_NAMES = ("l0", "l1", "l2", "linf")


def _parse_p(p: object) -> float:
    if isinstance(p, str):
        key = p.lower().lstrip("l")
        if key in ("inf", "infty"):
            return np.inf
        try:
            p = float(key)
        except ValueError:
            raise ValueError(
                f"unknown norm {p!r}; expected one of {NORM_NAMES} or a number"
            ) from None
    if isinstance(p, bool):
        raise TypeError("p must be a number or a norm name")
    p = float(p)  # type: ignore[arg-type]
    if np.isnan(p) or (p != 0 and p < 1):
        raise ValueError(f"p must be 0 (counting 'norm'), >= 1, or inf; got {p}")
    return p


def dual_exponent(p: float | str) -> float:
    """Dual exponent q with 1/p + 1/q = 1 (p=1 -> inf, p=inf -> 1).

    Examples
    --------
    >>> dual_exponent(2), dual_exponent("linf"), dual_exponent(1)
    (2.0, 1.0, inf)
    """
    p = _parse_p(p)
    if p == 0:
        raise ValueError("l0 has no dual norm")
    if p == 1:
        return np.inf
    if np.isinf(p):
        return 1.0
    return p / (p - 1.0)


class Distance(ABC):
    """Base class: a distance between inputs of dimension ``d``."""

    #: Short name used in tables and the CLI.
    name: str = "distance"
    #: Whether the function satisfies the metric axioms (identity may hold only
    #: up to the equivalence the distance is invariant to; see subclasses).
    is_metric: bool = True

    def __call__(self, X: Any, Y: Any) -> np.ndarray:
        """Row-wise distance ``d(X[i], Y[i])``; ``X`` and ``Y`` must have equal shapes."""
        X = as_batch(X, "X", allow_empty=True)
        Y = as_batch(Y, "Y", n_features=X.shape[1], allow_empty=True)
        check_same_length(X=X, Y=Y)
        return self._rowwise(X, Y)

    def pairwise(self, X: Any, Y: Any) -> np.ndarray:
        """All distances ``d(X[i], Y[j])``, shape ``(len(X), len(Y))``."""
        X = as_batch(X, "X", allow_empty=True)
        Y = as_batch(Y, "Y", n_features=X.shape[1], allow_empty=True)
        return self._pairwise(X, Y)

    @abstractmethod
    def _rowwise(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray: ...

    def _pairwise(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        # Generic fallback: one row-wise call per row of X (subclasses vectorise).
        out = np.empty((X.shape[0], Y.shape[0]))
        for i in range(X.shape[0]):
            out[i] = self._rowwise(np.repeat(X[i : i + 1], Y.shape[0], axis=0), Y)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"

    # -- geometry (norm-induced distances) ---------------------------------------------
    def _unsupported(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"the {self.name} distance has no {what}")

    def norm(self, V: Any) -> np.ndarray:
        """``d(V[i], 0)`` for each row."""
        V = as_batch(V, "V", allow_empty=True)
        return self._rowwise(V, np.zeros_like(V))

    def dual_norm(self, W: Any) -> np.ndarray:
        """``max_{d(v, 0) <= 1} W[i] . v`` for each row (norm-induced distances only)."""
        raise self._unsupported("dual norm")

    def steepest(self, G: Any) -> np.ndarray:
        """A maximiser of ``G[i] . v`` over ``d(v, 0) <= 1``, row by row."""
        raise self._unsupported("steepest-ascent direction")

    def project(self, X0: Any, X: Any, eps: float) -> np.ndarray:
        """The point of the closed ball ``B_d(X0[i], eps)`` nearest (in l2) to ``X[i]``."""
        raise self._unsupported("projection onto its balls")

    def whitening(self) -> np.ndarray | None:
        """``A`` with ``d(x, y) = ||(x - y) A||_2``, or ``None`` when there is none."""
        return None

    def _pair(self, X0: Any, X: Any, eps: float) -> tuple[np.ndarray, np.ndarray, float]:
        dtype = _float_dtype(X0, X)
        X0 = as_batch(X0, "X0", allow_empty=True, dtype=dtype)
        X = as_batch(X, "X", n_features=X0.shape[1], allow_empty=True, dtype=dtype)
        check_same_length(X0=X0, X=X)
        return X0, X, check_eps(eps, allow_inf=True)


def _float_dtype(*arrays: Any) -> type:
    """float32 when every array is float32 (kept, so float32 attacks stay float32), else
    float64."""
    return np.float32 if all(np.asarray(a).dtype == np.float32 for a in arrays) \
        else np.float64


def _project_l1_ball(V: np.ndarray, eps: float) -> np.ndarray:
    """Euclidean projection of each row onto the l1 ball of radius ``eps`` (sort-based,
    Duchi et al., 2008)."""
    a = np.abs(V)
    inside = a.sum(axis=1) <= eps
    if eps == 0:
        return np.zeros_like(V)
    mu = -np.sort(-a, axis=1)
    cs = np.cumsum(mu, axis=1)
    k = np.arange(1, V.shape[1] + 1)
    cond = mu - (cs - eps) / k > 0
    cond[:, 0] = True  # k = 1 always qualifies (mu_1 - (mu_1 - eps) = eps), even in floats
    rho = V.shape[1] - 1 - np.argmax(cond[:, ::-1], axis=1)
    theta = (cs[np.arange(len(V)), rho] - eps) / (rho + 1)
    proj = np.sign(V) * np.maximum(a - theta[:, None], 0.0)
    return np.where(inside[:, None], V, proj)


def _project_ellipsoid(V: np.ndarray, eps: float, eigvals: np.ndarray,
                       eigvecs: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row ``v`` onto ``{z : z P z <= eps^2}`` where
    ``P = eigvecs diag(eigvals) eigvecs^T`` (positive definite): ``z = (I + lam P)^-1 v``
    with ``lam >= 0`` found by bisection on the monotone constraint (to float precision)."""
    U = V @ eigvecs  # coordinates in the eigenbasis
    quad = (U**2 * eigvals).sum(axis=1)
    out = V.copy()
    outside = quad > eps**2
    if not outside.any() or eps == np.inf:
        return out
    if eps == 0:
        out[outside] = 0.0
        return out
    Uo = U[outside]
    lo = np.zeros(len(Uo))
    hi = np.sqrt((Uo**2 / eigvals).sum(axis=1)) / eps  # f(hi) <= eps^2 at this lam
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        f = (eigvals * Uo**2 / (1.0 + mid[:, None] * eigvals) ** 2).sum(axis=1)
        big = f > eps**2
        lo = np.where(big, mid, lo)
        hi = np.where(big, hi, mid)
        if np.all(hi - lo <= 1e-15 * np.maximum(hi, 1.0)):
            break
    Z = Uo / (1.0 + hi[:, None] * eigvals)  # hi: on the feasible side
    out[outside] = Z @ eigvecs.T
    return out


class LpDistance(Distance):
    """The lp distance ``||x - x'||_p`` for p in {0, 1, 2, inf} or any real p >= 1.

    ``p = 0`` counts the coordinates that differ (the l0 "norm"; a metric, not a norm).

    Examples
    --------
    >>> import numpy as np
    >>> LpDistance("linf")(np.array([[0.0, 0.0]]), np.array([[0.3, -0.5]])).tolist()
    [0.5]
    """

    def __init__(self, p: float | str = 2) -> None:
        self.p = _parse_p(p)
        self.name = "linf" if np.isinf(self.p) else f"l{self.p:g}"

    def _rowwise(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        diff = X - Y
        if self.p == 0:
            return np.count_nonzero(diff, axis=1).astype(float)
        return np.linalg.norm(diff, ord=self.p, axis=1)

    def _pairwise(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        if X.shape[0] == 0 or Y.shape[0] == 0:
            return np.zeros((X.shape[0], Y.shape[0]))
        if self.p == 0:
            return cdist(X, Y, "hamming") * X.shape[1]
        if np.isinf(self.p):
            return cdist(X, Y, "chebyshev")
        if self.p == 1:
            return cdist(X, Y, "cityblock")
        if self.p == 2:
            return cdist(X, Y, "euclidean")
        return cdist(X, Y, "minkowski", p=self.p)

    def dual_norm(self, W: Any) -> np.ndarray:
        if self.p == 0:
            raise self._unsupported("dual norm (l0 is not a norm)")
        W = as_batch(W, "W", allow_empty=True)
        return np.linalg.norm(W, ord=dual_exponent(self.p), axis=1)

    def steepest(self, G: Any) -> np.ndarray:
        G = as_batch(G, "G", allow_empty=True, dtype=_float_dtype(G))
        if np.isinf(self.p):
            return np.sign(G)
        if self.p == 2:
            return G / np.maximum(np.linalg.norm(G, axis=1, keepdims=True), 1e-300)
        if self.p == 1:  # move the largest-gradient coordinate of each row
            out = np.zeros_like(G)
            rows = np.arange(len(G))
            idx = np.argmax(np.abs(G), axis=1)
            out[rows, idx] = np.sign(G[rows, idx])
            return out
        if self.p == 0:
            raise self._unsupported("steepest-ascent direction (l0 is not a norm)")
        q = dual_exponent(self.p)
        scale = np.maximum(np.linalg.norm(G, ord=q, axis=1, keepdims=True), 1e-300)
        return np.sign(G) * (np.abs(G) / scale) ** (q - 1)

    def project(self, X0: Any, X: Any, eps: float) -> np.ndarray:
        X0, X, eps = self._pair(X0, X, eps)
        if np.isinf(self.p):
            # clip(x, x0 - eps, x0 + eps): the same floats as clamping to the box
            return np.clip(X, X0 - eps, X0 + eps)
        delta = X - X0
        if self.p == 2:
            nrm = np.linalg.norm(delta, axis=1, keepdims=True)
            return X0 + delta * np.minimum(1.0, eps / np.maximum(nrm, 1e-300))
        if self.p == 1:
            return X0 + _project_l1_ball(delta, eps)
        if self.p == 0:  # keep the floor(eps) largest changes
            k = int(np.floor(eps)) if np.isfinite(eps) else delta.shape[1]
            if k >= delta.shape[1]:
                return X.copy()
            order = np.argsort(-np.abs(delta), axis=1, kind="stable")
            keep = np.zeros_like(delta, dtype=bool)
            np.put_along_axis(keep, order[:, :k], True, axis=1)
            return X0 + np.where(keep, delta, 0.0)
        raise self._unsupported(f"exact projection onto its balls (p = {self.p:g})")

    def whitening(self) -> np.ndarray | None:
        return None  # identity for l2 (handled by callers via whitening_or_identity)


class WeightedLpDistance(Distance):
    """Weighted lp distance ``(sum_i w_i |x_i - x'_i|^p)^(1/p)`` (``max_i w_i |.|`` for inf).

    Weights must be strictly positive so that the result is a metric.

    Examples
    --------
    >>> WeightedLpDistance([1.0, 4.0], p=1)
    WeightedLpDistance([1.0, 4.0], p='l1')
    """

    def __init__(self, weights: Sequence[float] | np.ndarray, p: float | str = 2) -> None:
        w = np.asarray(weights, dtype=float)
        if w.ndim != 1 or w.size == 0:
            raise ValueError(f"weights must be a non-empty 1-D array, got shape {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError("weights must be finite and > 0")
        self.weights = w
        self.p = _parse_p(p)
        if self.p == 0:
            raise ValueError("weighted l0 is not supported; use p >= 1")
        self.name = f"weighted-{'linf' if np.isinf(self.p) else f'l{self.p:g}'}"

    def __repr__(self) -> str:
        return f"WeightedLpDistance({self.weights.tolist()}, p={self.name[9:]!r})"

    def _scale(self) -> np.ndarray:
        # Weighted lp = plain lp after scaling coordinates by w^(1/p) (by w for inf).
        return self.weights if np.isinf(self.p) else self.weights ** (1.0 / self.p)

    def _check(self, X: np.ndarray) -> None:
        if X.shape[1] != self.weights.size:
            raise ValueError(
                f"inputs have {X.shape[1]} features but weights has {self.weights.size}"
            )

    def _rowwise(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        self._check(X)
        s = self._scale()
        return LpDistance(self.p)._rowwise(X * s, Y * s)

    def _pairwise(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        self._check(X)
        s = self._scale()
        return LpDistance(self.p)._pairwise(X * s, Y * s)

    # ||v||_w = ||s * v||_p: the geometry of lp in the coordinates z = s * v.
    def dual_norm(self, W: Any) -> np.ndarray:
        W = as_batch(W, "W", allow_empty=True)
        self._check(W)
        return LpDistance(self.p).dual_norm(W / self._scale())

    def steepest(self, G: Any) -> np.ndarray:
        G = as_batch(G, "G", allow_empty=True)
        self._check(G)
        s = self._scale()
        return LpDistance(self.p).steepest(G / s) / s

    def project(self, X0: Any, X: Any, eps: float) -> np.ndarray:
        X0, X, eps = self._pair(X0, X, eps)
        self._check(X0)
        s = self._scale()
        if np.isinf(self.p):  # a box with half-widths eps / w_i
            return np.clip(X, X0 - eps / s, X0 + eps / s)
        if self.p == 2:  # an axis-aligned ellipsoid
            return X0 + _project_ellipsoid(X - X0, eps, s**2, np.eye(s.size))
        raise self._unsupported(f"exact projection onto its balls (p = {self.p:g})")

    def whitening(self) -> np.ndarray | None:
        return np.diag(self._scale()) if self.p == 2 else None


class MahalanobisDistance(Distance):
    """Mahalanobis distance ``sqrt((x - x')^T P (x - x'))`` with precision matrix P.

    Give either ``cov`` (symmetric positive definite) or ``precision``.
    """

    name = "mahalanobis"

    def __init__(self, cov: np.ndarray | None = None, precision: np.ndarray | None = None) -> None:
        if (cov is None) == (precision is None):
            raise ValueError("give exactly one of cov or precision")
        mat = np.asarray(cov if cov is not None else precision, dtype=float)
        arg = "cov" if cov is not None else "precision"
        if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
            raise ValueError(f"{arg} must be a square matrix, got shape {mat.shape}")
        if not np.all(np.isfinite(mat)) or not np.allclose(mat, mat.T):
            raise ValueError(f"{arg} must be finite and symmetric")
        try:
            chol = np.linalg.cholesky(mat)
        except np.linalg.LinAlgError:
            raise ValueError(f"{arg} must be positive definite") from None
        if cov is not None:
            # P = cov^-1 = L^-T L^-1, so ||L^-1 (x - x')||_2 is the distance.
            self._transform = np.linalg.inv(chol).T
        else:
            # P = L L^T, so ||L^T (x - x')||_2 is the distance.
            self._transform = chol
        self.precision = self._transform @ self._transform.T

    def __repr__(self) -> str:
        return f"MahalanobisDistance(precision={self.precision.tolist()})"

    def whiten(self, X: np.ndarray) -> np.ndarray:
        """Map inputs so that Mahalanobis distance becomes Euclidean distance."""
        X = as_batch(X, "X", allow_empty=True)
        if X.shape[1] != self._transform.shape[0]:
            raise ValueError(
                f"X has {X.shape[1]} features but the matrix is {self._transform.shape[0]}-D"
            )
        return X @ self._transform

    def _rowwise(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return np.linalg.norm(self.whiten(X) - self.whiten(Y), axis=1)

    def _pairwise(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return LpDistance(2)._pairwise(self.whiten(X), self.whiten(Y))

    def _eig(self) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "_eigh"):
            self._eigh = np.linalg.eigh(self.precision)
        return self._eigh

    def dual_norm(self, W: Any) -> np.ndarray:
        # max over v P v^T <= 1 of w . v is sqrt(w P^-1 w^T)
        W = as_batch(W, "W", n_features=self.precision.shape[0], allow_empty=True)
        Z = np.linalg.solve(self._transform, W.T).T  # w T^-T: ||.||_2 = sqrt(w P^-1 w)
        return np.linalg.norm(Z, axis=1)

    def steepest(self, G: Any) -> np.ndarray:
        G = as_batch(G, "G", n_features=self.precision.shape[0], allow_empty=True)
        V = np.linalg.solve(self.precision, G.T).T  # P^-1 g
        scale = np.sqrt(np.maximum(np.einsum("ij,ij->i", G, V), 1e-300))
        return V / scale[:, None]

    def project(self, X0: Any, X: Any, eps: float) -> np.ndarray:
        X0, X, eps = self._pair(X0, X, eps)
        if X0.shape[1] != self.precision.shape[0]:
            raise ValueError(f"inputs have {X0.shape[1]} features but the matrix is "
                             f"{self.precision.shape[0]}-D")
        vals, vecs = self._eig()
        return X0 + _project_ellipsoid(X - X0, eps, vals, vecs)

    def whitening(self) -> np.ndarray | None:
        return self._transform


Transform = Callable[[np.ndarray], np.ndarray]


class TransformSet(list):
    """A list of transforms that knows whether it is closed under composition and inverse.

    ``is_group`` is what makes the induced transformation-invariant distance a
    pseudo-metric; it is computed by the constructors below, never assumed.
    """

    def __init__(self, transforms: Sequence[Transform], is_group: bool) -> None:
        super().__init__(transforms)
        self.is_group = bool(is_group)


def cyclic_shifts(shape: tuple[int, int], max_shift: int | None = None) -> TransformSet:
    """Cyclic pixel shifts of images of ``shape`` (flattened row-major) by up to ``max_shift``.

    With ``max_shift=None`` all ``h * w`` shifts are returned: the group Z_h x Z_w, which
    acts by isometries of every lp norm, so the induced transformation-invariant distance
    is a pseudo-metric (a metric on orbits). A smaller ``max_shift`` gives a set that is a
    group only when ``2 * max_shift + 1 >= max(h, w)``; otherwise the triangle inequality
    can fail (e.g. length-5 signals with shifts -1..1), and ``is_group`` says so.

    Examples
    --------
    >>> cyclic_shifts((3, 3), 1).is_group, cyclic_shifts((1, 5), 1).is_group
    (True, False)
    """
    h, w = (int(s) for s in shape)
    if h < 1 or w < 1:
        raise ValueError(f"shape must be positive, got {shape}")
    if max_shift is None:
        row_shifts, col_shifts = range(h), range(w)
        is_group = True
    else:
        if int(max_shift) < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        m = int(max_shift)
        # Distinct residues only: shifts by k and k + h are the same map.
        row_shifts = sorted({k % h for k in range(-m, m + 1)})
        col_shifts = sorted({k % w for k in range(-m, m + 1)})
        is_group = len(row_shifts) == h and len(col_shifts) == w
    transforms: list[Transform] = []
    for dr in row_shifts:
        for dc in col_shifts:
            def shift(X: np.ndarray, dr: int = dr, dc: int = dc) -> np.ndarray:
                imgs = X.reshape(X.shape[0], h, w)
                return np.roll(imgs, (dr, dc), axis=(1, 2)).reshape(X.shape[0], h * w)

            shift.__name__ = f"shift({dr},{dc})"
            transforms.append(shift)
    return TransformSet(transforms, is_group)


class TransformInvariantDistance(Distance):
    """``d_T(x, x') = min_{t in T} d(x, t(x'))`` over a finite set of transforms T.

    When T is a group of isometries of ``base`` (e.g. all cyclic shifts for lp) the
    result is symmetric and satisfies the triangle inequality; it is zero on whole
    orbits, i.e. a pseudo-metric. For other transform sets the axioms may fail.
    ``is_metric`` comes from ``group`` when given, else from ``transforms.is_group``
    (set by :func:`cyclic_shifts`), else it is ``False``.
    """

    def __init__(self, base: Distance, transforms: Sequence[Transform],
                 group: bool | None = None, name: str | None = None) -> None:
        if not isinstance(base, Distance):
            raise TypeError("base must be a Distance")
        if len(transforms) == 0:
            raise ValueError("transforms must not be empty")
        self.base = base
        self.transforms = list(transforms)
        if group is None:
            group = bool(getattr(transforms, "is_group", False))
        self.is_metric = bool(group)
        self.name = name or f"{base.name}-invariant"

    def _rowwise(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return np.min([self.base._rowwise(X, t(Y)) for t in self.transforms], axis=0)

    def _pairwise(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return np.min([self.base._pairwise(X, t(Y)) for t in self.transforms], axis=0)


class ClassifierInducedDistance(Distance):
    """The theorem's distance ``d_f(x, x') = d(x, x') + lam * [f(x) != f(x')]``.

    It is a metric whenever ``d`` is (the indicator term is a pseudo-metric), and
    when ``f`` equals the oracle on the labelled region, ``(d_f, eps)`` is good for
    every ``eps < lam``: a change of true class costs at least ``lam``.

    Parameters
    ----------
    base : Distance
        The underlying distance ``d``.
    classifier : callable
        ``f``, mapping ``(n, d)`` inputs to ``n`` labels.
    lam : float
        Penalty ``lam > 0`` paid for crossing ``f``'s decision boundary.
    """

    def __init__(self, base: Distance, classifier: Callable[[np.ndarray], np.ndarray],
                 lam: float) -> None:
        if not isinstance(base, Distance):
            raise TypeError("base must be a Distance")
        if not callable(classifier) and not hasattr(classifier, "predict"):
            raise TypeError("classifier must be callable or have a predict method")
        self.base = base
        self.classifier = classifier
        self.lam = check_eps(lam, "lam")
        if self.lam == 0:
            raise ValueError("lam must be > 0")
        self.is_metric = base.is_metric
        self.name = f"d_f[{base.name}]"

    def _labels(self, X: np.ndarray) -> np.ndarray:
        from invariance_tradeoffs.theory.oracles import predict

        return predict(self.classifier, X)

    def _rowwise(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        jump = self._labels(X) != self._labels(Y)
        return self.base._rowwise(X, Y) + self.lam * jump

    def _pairwise(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        jump = self._labels(X)[:, None] != self._labels(Y)[None, :]
        return self.base._pairwise(X, Y) + self.lam * jump


def get_distance(name: str | Distance) -> Distance:
    """Distance from a name in :data:`NORM_NAMES` (or a number p as ``"l3"``).

    Raises ``ValueError`` naming the argument for unknown names.
    """
    if isinstance(name, Distance):
        return name
    if not isinstance(name, str):
        raise TypeError(f"norm must be a string or Distance, got {type(name).__name__}")
    try:
        return LpDistance(name)
    except ValueError:
        raise ValueError(f"unknown norm {name!r}; expected one of {NORM_NAMES}") from None

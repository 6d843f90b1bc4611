"""Robust training on the toy families.

Two ways to train a classifier robust at radius ``eps``:

* :func:`fit_robust_linear` — *exact* worst-case training of a binary linear model. For
  ``f(x) = w.x + b`` the worst-case logistic loss over the lp ball of radius ``eps`` is the
  loss at the margin ``s (w.x + b) - eps ||w||_q`` (``s = ±1`` the signed label, ``q`` the
  dual exponent), so robust training is a smooth (or linearly constrained) minimisation
  solved with :func:`scipy.optimize.minimize`.
* :func:`fit_adversarial_mlp` — adversarial training (Madry et al.) of a scikit-learn
  :class:`~sklearn.neural_network.MLPClassifier`: each mini-batch is replaced by PGD
  perturbations whose input gradients are computed from the network's ``coefs_``, then
  passed to ``partial_fit``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from invariance_tradeoffs.simulations.attacks.pgd import (
    perturbed_start,
    pgd,
)
from invariance_tradeoffs.theory.distances import Distance, LpDistance, get_distance
from invariance_tradeoffs.theory.validation import as_batch, as_labels, check_eps, check_same_length

__all__ = [
    "LinearClassifier",
    "fit_robust_linear",
    "worst_case_margin",
    "mlp_input_gradient",
    "check_train_norm",
    "pgd_attack",
    "fit_adversarial_mlp",
]

#: Norm names accepted besides :class:`Distance` objects.
TRAIN_NORMS = ("l1", "l2", "linf")


def check_train_norm(norm: str | Distance) -> Distance:
    """The threat model's distance: a name of :data:`TRAIN_NORMS` or a :class:`Distance`
    that is a norm with a dual norm, a steepest direction and a ball projection (lp for
    p in {1, 2, inf}, weighted l2 / l-inf, Mahalanobis)."""
    if isinstance(norm, Distance):
        return norm
    if norm not in TRAIN_NORMS:
        raise ValueError(f"norm must be one of {TRAIN_NORMS} or a Distance, got {norm!r}")
    return get_distance(norm)


def _kind(distance: Distance) -> str:
    """Which solver of :func:`fit_robust_linear` the dual norm calls for."""
    if isinstance(distance, LpDistance) and np.isinf(distance.p):
        return "l1-dual"  # dual of l-inf: a sum of |w_i|
    if isinstance(distance, LpDistance) and distance.p == 1:
        return "linf-dual"  # dual of l1: max |w_i|
    if isinstance(distance, LpDistance) and distance.p == 2 or distance.whitening() is not None:
        return "ellipsoidal"  # dual norm sqrt(w K w): smooth away from w = 0
    raise ValueError(f"fit_robust_linear supports l1, l-inf and ellipsoidal (l2, weighted "
                     f"l2, Mahalanobis) threat models, got {distance.name}")


@dataclass(frozen=True)
class LinearClassifier:
    """Binary linear classifier ``f(x) = [w.x + b > 0]`` (labels 0 and 1).

    Examples
    --------
    >>> import numpy as np
    >>> f = LinearClassifier(np.array([1.0, 0.0]), 0.0)
    >>> f(np.array([[2.0, 5.0], [-1.0, 5.0]])).tolist()
    [1, 0]
    """

    w: np.ndarray
    b: float

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        X = as_batch(X, "X", n_features=self.w.shape[0], allow_empty=True)
        return X @ self.w + self.b

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(np.int64)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.predict(X)


def worst_case_margin(clf: LinearClassifier, X: np.ndarray, y: np.ndarray,
                      norm: str | Distance, eps: float) -> np.ndarray:
    """``s (w.x + b) - eps ||w||_*``: the smallest signed margin over ``B_d(x, eps)``
    (exact; ``||.||_*`` is the distance's dual norm)."""
    distance = check_train_norm(norm)
    eps = check_eps(eps)
    y = as_labels(y, "y", n_classes=2, allow_reject=False)
    s = 2.0 * y - 1.0
    return s * clf.decision_function(X) - eps * distance.dual_norm(clf.w[None])[0]


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def fit_robust_linear(X: np.ndarray, y: np.ndarray, *, norm: str | Distance = "l2",
                      eps: float = 0.0, alpha: float = 1e-3) -> LinearClassifier:
    """Minimise the exact worst-case logistic loss of a binary linear model over balls.

    ``mean softplus(-(s_i (w.x_i + b) - eps ||w||_*)) + alpha/2 ||w||^2`` with ``||.||_*``
    the dual norm of the threat model's distance (for multiclass linear models under
    l-inf within ``[0, 1]^d`` see
    :func:`invariance_tradeoffs.simulations.models.robust_linear.fit_robust_multiclass_linear`).

    Parameters
    ----------
    X : array, shape (n, d)
        Training inputs.
    y : array, shape (n,)
        Labels in {0, 1}.
    norm : {"l1", "l2", "linf"} or Distance
        The threat model (:func:`check_train_norm`); the penalty uses its dual norm.
    eps : float
        Training radius.
    alpha : float
        Ridge penalty keeping ``w`` finite on separable data.

    Returns
    -------
    LinearClassifier

    Notes
    -----
    ``linf`` (``q = 1``) is solved smoothly with ``w = p - m``, ``p, m >= 0`` (L-BFGS-B):
    the objective increases with ``sum(p + m)`` at fixed ``w``, so the split is tight at the
    optimum. ``l1`` (``q = inf``) uses the epigraph ``|w_i| <= t`` (SLSQP). Ellipsoidal
    norms (l2, weighted l2, Mahalanobis; dual ``sqrt(w K w)`` with ``K`` the inverse of
    the precision) are smooth away from ``w = 0`` (L-BFGS-B on ``sqrt(w K w + 1e-12)``).
    """
    distance = check_train_norm(norm)
    kind = _kind(distance)
    eps = check_eps(eps)
    X = as_batch(X, "X")
    y = as_labels(y, "y", n_classes=2, allow_reject=False, length=X.shape[0])
    alpha = check_eps(alpha, "alpha")
    n, d = X.shape
    s = 2.0 * y - 1.0
    sX = s[:, None] * X

    def data_term(w: np.ndarray, b: float, pen: float) -> tuple[float, np.ndarray, float, float]:
        m = sX @ w + s * b - eps * pen
        loss = _softplus(-m).mean()
        g = -expit(-m) / n  # d loss / d m_i
        return loss, sX.T @ g, float(g @ s), float(-eps * g.sum())  # grads: w, b, pen

    if kind == "l1-dual":
        def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
            p, mneg, b = theta[:d], theta[d:2 * d], theta[-1]
            w = p - mneg
            loss, gw, gb, gpen = data_term(w, b, float(p.sum() + mneg.sum()))
            loss += 0.5 * alpha * (p @ p + mneg @ mneg)
            return loss, np.concatenate([gw + gpen + alpha * p, -gw + gpen + alpha * mneg, [gb]])

        bounds = [(0, None)] * (2 * d) + [(None, None)]
        res = minimize(fun, np.zeros(2 * d + 1), jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-9})
        w, b = res.x[:d] - res.x[d:2 * d], res.x[-1]
    elif kind == "ellipsoidal":
        A = distance.whitening()  # d(x, y) = ||(x - y) A||_2, dual norm sqrt(w (A A^T)^-1 w)
        if A is not None and A.shape[0] != d:
            raise ValueError(f"X has {d} features but the distance is {A.shape[0]}-D")
        K = None if A is None else np.linalg.inv(A @ A.T)

        def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:d], theta[-1]
            Kw = w if K is None else K @ w
            nw = np.sqrt(w @ Kw + 1e-12)
            loss, gw, gb, gpen = data_term(w, b, nw)
            loss += 0.5 * alpha * (w @ w)
            return loss, np.concatenate([gw + gpen * Kw / nw + alpha * w, [gb]])

        res = minimize(fun, np.zeros(d + 1), jac=True, method="L-BFGS-B",
                       options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-9})
        w, b = res.x[:d], res.x[-1]
    else:  # l1 perturbations, dual norm l-inf: epigraph variable t >= |w_i|
        def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b, t = theta[:d], theta[d], theta[d + 1]
            loss, gw, gb, gpen = data_term(w, b, t)
            loss += 0.5 * alpha * (w @ w)
            return loss, np.concatenate([gw + alpha * w, [gb, gpen]])

        eye = np.eye(d)
        A = np.vstack([np.hstack([-eye, np.zeros((d, 1)), np.ones((d, 1))]),
                       np.hstack([eye, np.zeros((d, 1)), np.ones((d, 1))])])
        cons = {"type": "ineq", "fun": lambda th: A @ th, "jac": lambda th: A}
        res = minimize(fun, np.zeros(d + 2), jac=True, method="SLSQP", constraints=[cons],
                       options={"maxiter": 1000, "ftol": 1e-12})
        w, b = res.x[:d], res.x[d]
    return LinearClassifier(np.asarray(w, dtype=float), float(b))


# --------------------------------------------------------------------------- MLP + PGD


def mlp_input_gradient(mlp: MLPClassifier, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of the log-loss of a fitted ReLU/tanh/logistic ``MLPClassifier`` w.r.t. inputs.

    ``y`` holds indices into ``mlp.classes_``. Back-propagation through ``coefs_``.
    """
    X = as_batch(X, "X")
    y = as_labels(y, "y", n_classes=len(mlp.classes_), allow_reject=False, length=X.shape[0])
    acts = [X]
    pre = []
    for i, (W, c) in enumerate(zip(mlp.coefs_, mlp.intercepts_, strict=True)):
        z = acts[-1] @ W + c
        pre.append(z)
        if i < len(mlp.coefs_) - 1:
            acts.append(_activate(z, mlp.activation))
    z_out = pre[-1]
    if mlp.out_activation_ == "logistic":
        delta = expit(z_out) - y[:, None]
    else:
        p = np.exp(z_out - z_out.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1.0
        delta = p
    for i in range(len(mlp.coefs_) - 1, 0, -1):
        delta = (delta @ mlp.coefs_[i].T) * _activate_grad(pre[i - 1], acts[i], mlp.activation)
    return delta @ mlp.coefs_[0].T


def _activate(z: np.ndarray, name: str) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "logistic":
        return expit(z)
    if name == "identity":
        return z
    raise ValueError(f"unsupported MLP activation {name!r}")


def _activate_grad(z: np.ndarray, a: np.ndarray, name: str) -> np.ndarray:
    if name == "relu":
        return (z > 0).astype(float)
    if name == "tanh":
        return 1.0 - a**2
    if name == "logistic":
        return a * (1.0 - a)
    return np.ones_like(z)


def pgd_attack(mlp: MLPClassifier, X: np.ndarray, y: np.ndarray, *,
               norm: str | Distance, eps: float, steps: int = 10,
               step_size: float | None = None, random_start: bool = True,
               clip: tuple[float, float] | None = None,
               seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """PGD (:func:`invariance_tradeoffs.simulations.attacks.pgd.pgd`) on the MLP's loss at
    labels ``y`` inside ``B_d(x, eps)``, any distance with a projection and a steepest
    direction (``norm``: a name or a :class:`Distance`).

    ``y`` holds indices into ``mlp.classes_``. The random start perturbs ``x`` uniformly
    in ``[-eps, eps]`` per coordinate, then projects (Madry et al.). Returns the last
    iterate. With ``eps == 0`` the input is returned unchanged.
    """
    distance = check_train_norm(norm)
    eps = check_eps(eps)
    X = as_batch(X, "X")
    if eps == 0 or steps <= 0:
        return X.copy()
    rng = np.random.default_rng(seed)
    step = step_size if step_size is not None else 2.5 * eps / steps
    start = (perturbed_start(X, rng.uniform(-eps, eps, size=X.shape), distance, eps, clip)
             if random_start else None)
    return pgd(lambda xa, ya: (mlp_input_gradient(mlp, xa, ya), None), X, np.asarray(y),
               distance=distance, eps=eps, steps=steps, step_size=step, start=start, clip=clip)


def fit_adversarial_mlp(X: np.ndarray, y: np.ndarray, *, norm: str | Distance = "l2",
                        eps: float = 0.0,
                        hidden: tuple[int, ...] = (32,), epochs: int = 40,
                        batch_size: int = 128, attack_steps: int = 7, ramp: int = 10,
                        learning_rate: float = 3e-3, clip: tuple[float, float] | None = None,
                        seed: int = 0) -> MLPClassifier:
    """Adversarially train an ``MLPClassifier`` at radius ``eps`` (PGD, ``attack_steps`` steps).

    The training radius ramps linearly from 0 to ``eps`` over the first ``ramp`` epochs,
    which avoids the collapse to a constant classifier at large ``eps``. ``eps = 0`` is
    standard training with the same schedule. Labels ``y`` must be ``0..C-1``.
    """
    norm = check_train_norm(norm)
    eps = check_eps(eps)
    X = as_batch(X, "X")
    y = as_labels(y, "y", allow_reject=False, length=X.shape[0])
    check_same_length(X=X, y=y)
    classes = np.unique(y)
    if classes.size < 2 or not np.array_equal(classes, np.arange(classes.size)):
        raise ValueError(f"y must use the labels 0..C-1 with C >= 2, got {classes.tolist()}")
    rng = np.random.default_rng(seed)
    mlp = MLPClassifier(hidden_layer_sizes=hidden, learning_rate_init=learning_rate,
                        random_state=seed, batch_size="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # scikit-learn's MLP swallows Ctrl-C (it warns and returns a half-trained model):
        # the warning becomes an error here and the interrupt is raised again below, so an
        # interrupted run stops instead of keeping that model.
        warnings.filterwarnings("error", message="Training interrupted by user")
        try:
            _train_epochs(mlp, X, y, classes, rng, norm=norm, eps=eps, epochs=epochs,
                          ramp=ramp, batch_size=batch_size, attack_steps=attack_steps,
                          clip=clip)
        except UserWarning as exc:
            if "interrupted by user" in str(exc):
                raise KeyboardInterrupt from None
            raise
    return mlp


def _train_epochs(mlp: MLPClassifier, X: np.ndarray, y: np.ndarray, classes: np.ndarray,
                  rng: np.random.Generator, *, norm: str, eps: float, epochs: int, ramp: int,
                  batch_size: int, attack_steps: int,
                  clip: tuple[float, float] | None) -> None:
    mlp.partial_fit(X[:batch_size], y[:batch_size], classes=classes)
    for epoch in range(epochs):
        eps_e = eps * min(1.0, (epoch + 1) / max(ramp, 1))
        order = rng.permutation(X.shape[0])
        for start in range(0, X.shape[0], batch_size):
            idx = order[start:start + batch_size]
            Xb = pgd_attack(mlp, X[idx], y[idx], norm=norm, eps=eps_e, steps=attack_steps,
                            clip=clip, seed=rng)
            mlp.partial_fit(Xb, y[idx])

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

from invariance_tradeoffs.theory.validation import as_batch, as_labels, check_eps, check_same_length

__all__ = [
    "LinearClassifier",
    "fit_robust_linear",
    "worst_case_margin",
    "mlp_input_gradient",
    "project_ball",
    "pgd_attack",
    "fit_adversarial_mlp",
]

TRAIN_NORMS = ("l1", "l2", "linf")


def _check_train_norm(norm: str) -> str:
    if norm not in TRAIN_NORMS:
        raise ValueError(f"norm must be one of {TRAIN_NORMS}, got {norm!r}")
    return norm


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


def worst_case_margin(clf: LinearClassifier, X: np.ndarray, y: np.ndarray, norm: str,
                      eps: float) -> np.ndarray:
    """``s (w.x + b) - eps ||w||_q``: the smallest signed margin over ``B_p(x, eps)`` (exact)."""
    norm = _check_train_norm(norm)
    eps = check_eps(eps)
    y = as_labels(y, "y", n_classes=2, allow_reject=False)
    s = 2.0 * y - 1.0
    q = {"l1": np.inf, "l2": 2, "linf": 1}[norm]
    return s * clf.decision_function(X) - eps * np.linalg.norm(clf.w, ord=q)


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def fit_robust_linear(X: np.ndarray, y: np.ndarray, *, norm: str = "l2", eps: float = 0.0,
                      alpha: float = 1e-3) -> LinearClassifier:
    """Minimise the exact worst-case logistic loss of a linear model over lp balls.

    ``mean softplus(-(s_i (w.x_i + b) - eps ||w||_q)) + alpha/2 ||w||^2``

    Parameters
    ----------
    X : array, shape (n, d)
        Training inputs.
    y : array, shape (n,)
        Labels in {0, 1}.
    norm : {"l1", "l2", "linf"}
        The perturbation norm (the penalty uses its dual ``q``).
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
    optimum. ``l1`` (``q = inf``) uses the epigraph ``|w_i| <= t`` (SLSQP). ``l2`` is smooth
    away from ``w = 0`` (L-BFGS-B on ``sqrt(||w||^2 + 1e-12)``).
    """
    norm = _check_train_norm(norm)
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

    if norm == "linf":
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
    elif norm == "l2":
        def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:d], theta[-1]
            nw = np.sqrt(w @ w + 1e-12)
            loss, gw, gb, gpen = data_term(w, b, nw)
            loss += 0.5 * alpha * (w @ w)
            return loss, np.concatenate([gw + gpen * w / nw + alpha * w, [gb]])

        res = minimize(fun, np.zeros(d + 1), jac=True, method="L-BFGS-B",
                       options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-9})
        w, b = res.x[:d], res.x[-1]
    else:  # l1 perturbations, dual norm linf: epigraph variable t >= |w_i|
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


def project_ball(X0: np.ndarray, X: np.ndarray, norm: str, eps: float,
                 clip: tuple[float, float] | None = None) -> np.ndarray:
    """Project each row of ``X`` onto ``B_p(X0[i], eps)`` (then into the box ``clip``).

    ``linf`` and ``l2`` projections are exact; for ``l1`` the exact sort-based projection
    onto the l1 ball (Duchi et al., 2008) is used. Box clipping afterwards keeps the point
    inside the ball for ``linf`` (a box) and shrinks the move otherwise.
    """
    norm = _check_train_norm(norm)
    eps = check_eps(eps, allow_inf=True)
    delta = X - X0
    if norm == "linf":
        delta = np.clip(delta, -eps, eps)
    elif norm == "l2":
        nrm = np.linalg.norm(delta, axis=1, keepdims=True)
        delta = delta * np.minimum(1.0, eps / np.maximum(nrm, 1e-300))
    else:
        delta = _project_l1(delta, eps)
    out = X0 + delta
    if clip is not None:
        out = np.clip(out, clip[0], clip[1])
    return out


def _project_l1(V: np.ndarray, eps: float) -> np.ndarray:
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


def _steepest(grad: np.ndarray, norm: str) -> np.ndarray:
    """Unit-lp-norm steepest ascent direction of a gradient."""
    if norm == "linf":
        return np.sign(grad)
    if norm == "l2":
        return grad / np.maximum(np.linalg.norm(grad, axis=1, keepdims=True), 1e-300)
    # l1: move the largest-gradient coordinate of each row
    out = np.zeros_like(grad)
    idx = np.argmax(np.abs(grad), axis=1)
    out[np.arange(len(grad)), idx] = np.sign(grad[np.arange(len(grad)), idx])
    return out


def pgd_attack(mlp: MLPClassifier, X: np.ndarray, y: np.ndarray, *, norm: str, eps: float,
               steps: int = 10, step_size: float | None = None, random_start: bool = True,
               clip: tuple[float, float] | None = None,
               seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Projected gradient ascent on the MLP's loss at labels ``y`` inside ``B_p(x, eps)``.

    ``y`` holds indices into ``mlp.classes_``. Returns the perturbed batch (the last
    iterate). With ``eps == 0`` the input is returned unchanged.
    """
    norm = _check_train_norm(norm)
    eps = check_eps(eps)
    X = as_batch(X, "X")
    if eps == 0 or steps <= 0:
        return X.copy()
    rng = np.random.default_rng(seed)
    step = step_size if step_size is not None else 2.5 * eps / steps
    Xa = X.copy()
    if random_start:
        Xa = project_ball(X, X + rng.uniform(-eps, eps, size=X.shape), norm, eps, clip)
    for _ in range(steps):
        g = mlp_input_gradient(mlp, Xa, y)
        Xa = project_ball(X, Xa + step * _steepest(g, norm), norm, eps, clip)
    return Xa


def fit_adversarial_mlp(X: np.ndarray, y: np.ndarray, *, norm: str = "l2", eps: float = 0.0,
                        hidden: tuple[int, ...] = (32,), epochs: int = 40,
                        batch_size: int = 128, attack_steps: int = 7, ramp: int = 10,
                        learning_rate: float = 3e-3, clip: tuple[float, float] | None = None,
                        seed: int = 0) -> MLPClassifier:
    """Adversarially train an ``MLPClassifier`` at radius ``eps`` (PGD, ``attack_steps`` steps).

    The training radius ramps linearly from 0 to ``eps`` over the first ``ramp`` epochs,
    which avoids the collapse to a constant classifier at large ``eps``. ``eps = 0`` is
    standard training with the same schedule. Labels ``y`` must be ``0..C-1``.
    """
    norm = _check_train_norm(norm)
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
        mlp.partial_fit(X[:batch_size], y[:batch_size], classes=classes)
        for epoch in range(epochs):
            eps_e = eps * min(1.0, (epoch + 1) / max(ramp, 1))
            order = rng.permutation(X.shape[0])
            for start in range(0, X.shape[0], batch_size):
                idx = order[start:start + batch_size]
                Xb = pgd_attack(mlp, X[idx], y[idx], norm=norm, eps=eps_e, steps=attack_steps,
                                clip=clip, seed=rng)
                mlp.partial_fit(Xb, y[idx])
    return mlp

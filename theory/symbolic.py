"""Closed forms of the toy families as SymPy expressions in their parameters.

Each function returns a (cached, immutable) :class:`ClosedForm`: a SymPy expression,
the ordered symbols it is a function of, and a vectorised NumPy evaluation
(``sympy.lambdify``, with ``erf`` from SciPy). The numeric families in
:mod:`invariance_tradeoffs.theory.toys` and these expressions are two independent routes to the same
numbers; the tests check they agree, and agree with Monte Carlo, and
``proofs/checks_closed_forms.py`` re-derives several of them (Lagrange conditions,
``sympy.stats``, integration of densities).

Examples
--------
>>> form = overly_robust_ceiling()
>>> form.args
(eps, a, b)
>>> form(np.array([0.1, 0.4, 0.7]), 0.2, 0.6).round(12).tolist()
[1.0, 0.5, 0.0]
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import sympy as sp

from invariance_tradeoffs.theory.distances import dual_exponent

__all__ = [
    "ClosedForm",
    "normal_cdf",
    "dual_norm_expr",
    "linear_margin",
    "abs_normal_mixture_tail",
    "linear_gaussian_ceiling",
    "overly_robust_margin",
    "overly_robust_ceiling",
    "sphere_l2_margin",
    "sphere_good_radius",
    "tsipras_bound",
    "tsipras_ceiling",
    "family_ceiling",
]


@dataclass(frozen=True)
class ClosedForm:
    """A SymPy expression with its ordered arguments and a NumPy evaluation.

    Calling the form evaluates it numerically, broadcasting NumPy arrays over the
    arguments in the order of ``args``.
    """

    name: str
    expr: sp.Expr
    args: tuple[sp.Symbol, ...]
    _fn: Callable[..., Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        free = self.expr.free_symbols - set(self.args)
        if free:
            raise ValueError(
                f"{self.name}: expression has symbols not in args: {sorted(map(str, free))}")
        fn = sp.lambdify(self.args, self.expr, modules=["scipy", "numpy"])
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *values: Any) -> np.ndarray:
        if len(values) != len(self.args):
            raise ValueError(f"{self.name} takes {len(self.args)} arguments "
                             f"({', '.join(map(str, self.args))}), got {len(values)}")
        out = self._fn(*values)  # type: ignore[misc]
        shape = np.broadcast(*[np.asarray(v, dtype=float) for v in values]).shape
        return np.broadcast_to(np.asarray(out, dtype=float), shape).copy()

    def subs(self, **values: Any) -> ClosedForm:
        """The form with some arguments fixed (by symbol name).

        Each value must be a real number or a SymPy expression. Strings are refused:
        ``sympy.sympify`` would evaluate them as Python code.

        Examples
        --------
        >>> overly_robust_ceiling().subs(a=sp.Rational(1, 5), b=0.6).args
        (eps,)
        """
        names = {str(s): s for s in self.args}
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"{self.name} has no argument(s) {unknown}")
        expr = self.expr.subs({names[k]: _as_sympy(v, k) for k, v in values.items()})
        return ClosedForm(self.name, expr, tuple(s for s in self.args if str(s) not in values))

    def latex(self) -> str:
        return sp.latex(self.expr)


def _as_sympy(value: Any, name: str) -> sp.Basic:
    """``value`` as a SymPy object: a SymPy expression as is, a real number (``int``,
    ``float``, NumPy scalar) as an exact Integer or a Float. Anything else -- notably a
    string, which ``sympy.sympify`` would evaluate as code -- raises ``TypeError``."""
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number or a SymPy expression, "
                        f"got {type(value).__name__}")
    if isinstance(value, numbers.Integral):
        return sp.Integer(int(value))
    if not np.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value}")
    return sp.Float(float(value))


def normal_cdf(z: sp.Expr) -> sp.Expr:
    """The standard normal CDF ``Phi(z) = (1 + erf(z / sqrt 2)) / 2``."""
    return (1 + sp.erf(z / sp.sqrt(2))) / 2


def dual_norm_expr(w: tuple[sp.Symbol, ...], norm: str) -> sp.Expr:
    """``||w||_q`` with ``q`` the dual exponent of the lp norm ``norm`` (p >= 1)."""
    q = dual_exponent(norm)
    if np.isinf(q):
        return sp.Max(*[sp.Abs(wi) for wi in w])
    if q == 1:
        return sp.Add(*[sp.Abs(wi) for wi in w])
    if q == 2:
        return sp.sqrt(sp.Add(*[wi**2 for wi in w]))
    qq = sp.nsimplify(q)
    return sp.Add(*[sp.Abs(wi) ** qq for wi in w]) ** (1 / qq)


@cache
def linear_margin(d: int, norm: str) -> ClosedForm:
    """``|w.x + b| / ||w||_q`` (``1`` for l0): margin of the oracle ``[w.x + b > 0]``.

    Arguments ``(x_0..x_{d-1}, w_0..w_{d-1}, b)``.
    """
    x = sp.symbols(f"x0:{d}", real=True)
    w = sp.symbols(f"w0:{d}", real=True)
    b = sp.Symbol("b", real=True)
    if norm == "l0":
        expr: sp.Expr = sp.Integer(1)
    else:
        score = sum(wi * xi for wi, xi in zip(w, x, strict=True)) + b
        expr = sp.Abs(score) / dual_norm_expr(w, norm)
    return ClosedForm(f"linear margin ({norm})", expr, (*x, *w, b))


@cache
def abs_normal_mixture_tail(k: int) -> ClosedForm:
    """``P[|Z| > t]`` for ``Z ~ sum_j pi_j N(mu_j, s_j^2)``.

    Arguments ``(t, mu_1..mu_k, s_1..s_k, pi_1..pi_k)``.
    """
    t = sp.Symbol("t", nonnegative=True)
    mu = sp.symbols(f"mu1:{k + 1}", real=True)
    s = sp.symbols(f"s1:{k + 1}", positive=True)
    pi = sp.symbols(f"pi1:{k + 1}", nonnegative=True)
    expr = sum(p * (1 - normal_cdf((t - m) / sd) + normal_cdf((-t - m) / sd))
               for m, sd, p in zip(mu, s, pi, strict=True))
    return ClosedForm(f"P[|Z| > t], mixture of {k} normals", expr, (t, *mu, *s, *pi))


@cache
def linear_gaussian_ceiling() -> ClosedForm:
    """Ceiling ``P[|w.x + b| > eps ||w||_q]`` of :class:`~theory.toys.LinearGaussian`.

    Arguments ``(eps, m, sigma, prior, b, wu, w2, wq)`` with ``wu = w.u``,
    ``w2 = ||w||_2`` and ``wq = ||w||_q``: given the class, ``w.x + b`` is
    ``N(+-m wu + b, sigma^2 w2^2)``.
    """
    eps, m, sigma, prior, wq, w2 = sp.symbols("eps m sigma prior wq w2", positive=True)
    b, wu = sp.symbols("b wu", real=True)
    tail = abs_normal_mixture_tail(2)
    t, mu1, mu2, s1, s2, p1, p2 = tail.args
    expr = tail.expr.subs({t: eps * wq, mu1: m * wu + b, mu2: -m * wu + b,
                           s1: sigma * w2, s2: sigma * w2, p1: prior, p2: 1 - prior})
    return ClosedForm("linear-gaussian ceiling", expr, (eps, m, sigma, prior, b, wu, w2, wq))


@cache
def overly_robust_margin() -> ClosedForm:
    """``|x1|``: the lp margin (p >= 1) of the oracle ``[x1 > 0]`` on R^2."""
    x1 = sp.Symbol("x1", real=True)
    return ClosedForm("overly-robust margin", sp.Abs(x1), (x1,))


@cache
def overly_robust_ceiling() -> ClosedForm:
    """``P[|x1| > eps]`` for ``|x1| ~ U[a, b]``; arguments ``(eps, a, b)``."""
    eps, a, b = sp.symbols("eps a b", positive=True)
    expr = sp.Piecewise((1, eps <= a), ((b - eps) / (b - a), eps < b), (0, True))
    return ClosedForm("overly-robust ceiling", expr, (eps, a, b))


@cache
def sphere_l2_margin() -> ClosedForm:
    """``min(rho - t_in, t_out - rho)``: l2 margin between the spheres' midpoint radii."""
    rho, t_in, t_out = sp.symbols("rho t_in t_out", nonnegative=True)
    return ClosedForm("sphere l2 margin", sp.Min(rho - t_in, t_out - rho), (rho, t_in, t_out))


@cache
def sphere_good_radius(norm: str) -> ClosedForm:
    """Good radius of two spheres ``r1 < r2`` in R^d: ``(r2 - r1)/2``, over ``sqrt(d)`` for
    l-inf, ``1`` for l0; arguments ``(r1, r2, d)``."""
    r1, r2, d = sp.symbols("r1 r2 d", positive=True)
    half = (r2 - r1) / 2
    expr = {"l0": sp.Integer(1), "l1": half, "l2": half, "linf": half / sp.sqrt(d)}[norm]
    return ClosedForm(f"spheres good radius ({norm})", expr, (r1, r2, d))


@cache
def tsipras_bound() -> ClosedForm:
    """Tsipras et al. (2019), Thm 2.1: robust accuracy ``<= p / (1 - p) * delta``."""
    p, delta = sp.symbols("p delta", positive=True)
    return ClosedForm("Tsipras et al. bound", p / (1 - p) * delta, (p, delta))


@cache
def tsipras_ceiling(norm: str) -> ClosedForm:
    """Ceiling ``P[|w.x| > eps ||w||_q]`` of the Bayes oracle of :class:`~theory.toys.Tsipras`.

    With ``L = log(p/(1-p))``, given ``y = +1`` and ``x_0 = +-1`` the score ``w.x`` is
    ``N(+-L + 2 eta^2 d, 4 eta^2 d)`` (``y = -1`` is its mirror image). Arguments
    ``(eps, p, eta, d)``.
    """
    eps, p, eta, d = sp.symbols("eps p eta d", positive=True)
    lg = sp.log(p / (1 - p))
    w = (lg, 2 * eta)  # the d Gaussian coordinates share 2 eta
    q = dual_exponent(norm)
    if np.isinf(q):
        wq = sp.Max(sp.Abs(w[0]), w[1])
    elif q == 1:
        wq = sp.Abs(w[0]) + d * w[1]
    elif q == 2:
        wq = sp.sqrt(w[0] ** 2 + d * w[1] ** 2)
    else:
        raise ValueError(f"norm {norm!r} has no Tsipras ceiling form; use l1, l2 or linf")
    tail = abs_normal_mixture_tail(2)
    t, mu1, mu2, s1, s2, p1, p2 = tail.args
    shift, sd = 2 * eta**2 * d, 2 * eta * sp.sqrt(d)
    expr = tail.expr.subs({t: eps * wq, mu1: lg + shift, mu2: -lg + shift, s1: sd, s2: sd,
                           p1: p, p2: 1 - p})
    return ClosedForm(f"tsipras ceiling ({norm})", expr, (eps, p, eta, d))


def family_ceiling(family: Any, norm: str) -> Callable[[np.ndarray], np.ndarray]:
    """The symbolic ceiling of a toy family as a function of a grid of radii.

    Supported: ``overly-robust`` (l1, l2, linf), ``linear-gaussian`` (l1, l2, linf),
    ``spheres`` with two classes (l2), ``tsipras`` (l1, l2, linf). Raises ``ValueError``
    naming the family and norm otherwise.
    """
    from invariance_tradeoffs.theory.toys.linear_gaussian import dual_norm

    name = getattr(family, "name", type(family).__name__)
    if name == "overly-robust" and norm in ("l1", "l2", "linf"):
        form = overly_robust_ceiling()
        return lambda eps: form(np.asarray(eps, float), family.a, family.b)
    if name == "linear-gaussian" and norm in ("l1", "l2", "linf"):
        form = linear_gaussian_ceiling()
        fixed = (family.m, family.sigma, family.prior, family.b, float(family.w @ family.u),
                 float(np.linalg.norm(family.w)), dual_norm(family.w, norm))
        return lambda eps: form(np.asarray(eps, float), *fixed)
    if name == "tsipras" and norm in ("l1", "l2", "linf"):
        form = tsipras_ceiling(norm)
        return lambda eps: form(np.asarray(eps, float), family.p, family.eta, family.d)
    if name == "spheres" and norm == "l2" and family.n_classes == 2:
        eps_s = sp.Symbol("eps", nonnegative=True)
        r1, r2, d = sphere_good_radius("l2").args
        # Both spheres have the same constant margin (r2 - r1)/2.
        form = ClosedForm("spheres ceiling (l2)",
                          sp.Piecewise((1, eps_s < sphere_good_radius("l2").expr), (0, True)),
                          (eps_s, r1, r2, d))
        return lambda eps: form(np.asarray(eps, float), *family.radii, family.d)
    raise ValueError(f"no symbolic ceiling for family {name!r} under norm {norm!r}")

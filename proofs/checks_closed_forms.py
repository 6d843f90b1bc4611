"""Executable checks of the closed forms proved in proofs/closed_forms.md.

Every closed form of :mod:`theory.toys` and :mod:`theory.symbolic` is compared with a
route that does not use it:

* margins -- generic optimisation solvers (``scipy.optimize.linprog`` for l1/l-inf,
  SLSQP for l2, vertex enumeration plus ``brentq`` for the non-convex "outside a ball"
  problems), exhaustive enumeration (l0, finite domains);
* good radii -- exhaustive search over a finite support, or sampled margins plus a
  numerical minimisation that finds a point attaining the claimed value;
* ceilings -- Monte Carlo with Clopper-Pearson intervals, ``sympy.stats`` and symbolic
  integration of densities;
* the robust-optimal classifier of a finite domain -- enumeration of *all* classifiers;
* Tsipras et al.'s Theorem 2.1 -- exact accuracies of linear classifiers.

Each check takes the formula under test as an argument (default: the library's), raises
``AssertionError`` with a message when the claim is false, and otherwise returns a small
summary dict (counts of the cases covered). The tests feed each check a deliberately
wrong formula and assert that it raises.

Run all of them with ``python proofs/checks_closed_forms.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp
from scipy import optimize

from invariance_tradeoffs.theory import symbolic
from invariance_tradeoffs.theory.oracles import REJECT
from invariance_tradeoffs.theory.toys import (
    ConcentricSpheres,
    FiniteDomain,
    GlyphDigits,
    LinearGaussian,
    OverlyRobustFeature,
    ToyFamily,
    Tsipras,
    tsipras_bound,
)
from invariance_tradeoffs.theory.toys.glyphs import DIGIT_CODES
from invariance_tradeoffs.theory.toys.linear_gaussian import linear_margin

__all__ = [
    "min_norm_polyhedron",
    "reference_margin",
    "check_margins",
    "check_linear_margin_formula",
    "check_good_radius_finite_support",
    "check_good_radius_attained",
    "check_ceiling_monte_carlo",
    "check_symbolic_gaussian_tail",
    "check_symbolic_linear_l2_margin",
    "check_symbolic_linear_linf_margin",
    "check_symbolic_overly_robust_ceiling",
    "check_robust_optimal_bruteforce",
    "check_tsipras_theorem",
    "glyph_support",
    "random_line_domain",
    "tsipras_classifiers",
    "run_all",
]

MarginFn = Callable[[np.ndarray, str], np.ndarray]


# --------------------------------------------------------------------- reference solvers


def min_norm_polyhedron(x: np.ndarray, A: np.ndarray, c: np.ndarray, norm: str,
                        lower: float | None = None, upper: float | None = None) -> float:
    """``min ||z - x||_p`` subject to ``A z <= c`` and ``lower <= z <= upper``.

    l1 and l-inf are linear programs (HiGHS); l2 is a convex QP solved by SLSQP. Returns
    ``inf`` when the polyhedron is empty.
    """
    A = np.atleast_2d(A)
    used = np.any(A != 0, axis=0)
    if not np.all(used):
        # Coordinates in no constraint stay put at the optimum (if they are in the box).
        inside = (lower is None or np.all(x[~used] >= lower)) and (
            upper is None or np.all(x[~used] <= upper))
        if inside:
            return min_norm_polyhedron(x[used], A[:, used], c, norm, lower, upper)
    d = x.size
    zb = [(lower, upper)] * d
    if norm == "linf":  # variables (z, t): min t, |z_i - x_i| <= t
        cost = np.r_[np.zeros(d), 1.0]
        eye = np.eye(d)
        A_ub = np.vstack([np.c_[eye, -np.ones(d)], np.c_[-eye, -np.ones(d)],
                          np.c_[A, np.zeros(A.shape[0])]])
        b_ub = np.r_[x, -x, c]
        res = optimize.linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=zb + [(0, None)],
                               method="highs")
    elif norm == "l1":  # variables (z, u): min sum u, |z_i - x_i| <= u_i
        cost = np.r_[np.zeros(d), np.ones(d)]
        eye = np.eye(d)
        A_ub = np.vstack([np.c_[eye, -eye], np.c_[-eye, -eye], np.c_[A, np.zeros_like(A)]])
        b_ub = np.r_[x, -x, c]
        res = optimize.linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=zb + [(0, None)] * d,
                               method="highs")
    elif norm == "l2":
        feas = optimize.linprog(np.zeros(d), A_ub=A, b_ub=c, bounds=zb, method="highs")
        if feas.status == 2:
            return np.inf
        res = optimize.minimize(
            lambda z: np.sum((z - x) ** 2), feas.x, jac=lambda z: 2 * (z - x), method="SLSQP",
            bounds=zb, constraints=[{"type": "ineq", "fun": lambda z: c - A @ z,
                                     "jac": lambda z: -A}],
            options={"ftol": 1e-14, "maxiter": 500})
        return float(np.sqrt(max(res.fun, 0.0)))
    else:
        raise ValueError(f"min_norm_polyhedron supports l1, l2, linf; got {norm!r}")
    if res.status == 2:
        return np.inf
    assert res.status == 0, f"linprog failed: {res.message}"
    return float(res.fun)


def _ref_linear(x: np.ndarray, w: np.ndarray, b: float, norm: str) -> float:
    """Margin of ``[w.z + b > 0]`` at ``x`` by a generic solver (l0: single-coordinate moves)."""
    side = 1.0 if w @ x + b > 0 else -1.0
    if norm == "l0":
        # One coordinate i can reach the other side iff w_i != 0 (solve for that coordinate).
        return 1.0 if np.any(w != 0) else np.inf
    # Other class: side * (w.z + b) <= 0 (the closure of the open half-space).
    return min_norm_polyhedron(x, side * w, np.array([-side * b]), norm)


def _ball_exterior_ref(x: np.ndarray, t: float, norm: str) -> float:
    """``inf{||v||_p : ||x + v||_2 > t}`` by maximising ||x + v||_2 over the vertices."""
    if np.linalg.norm(x) > t:
        return 0.0
    d = x.size
    if norm == "l0":
        return 1.0  # any single coordinate can be moved arbitrarily far
    if norm == "l2":
        verts = None
    elif norm == "linf":
        verts = np.array(list(itertools.product([-1.0, 1.0], repeat=d)))
    else:
        verts = np.vstack([np.eye(d), -np.eye(d)])

    def excess(delta: float) -> float:
        if verts is None:
            return np.linalg.norm(x) + delta - t
        return float(np.max(np.linalg.norm(x + delta * verts, axis=1))) - t

    return float(optimize.brentq(excess, 0.0, 2 * t + 1.0, xtol=1e-14))


def _ball_interior_ref(x: np.ndarray, t: float, norm: str) -> float:
    """``min{||v||_p : ||x + v||_2 <= t}``: convex; SLSQP (l1, l-inf, l2), subsets (l0)."""
    d = x.size
    if norm == "l0":
        for m in range(d + 1):
            for subset in itertools.combinations(range(d), m):
                keep = np.delete(x, list(subset))
                if keep @ keep <= t * t * (1 + 1e-12):
                    return float(m)
        return np.inf  # pragma: no cover - m = d always works
    if norm == "l2":
        return max(np.linalg.norm(x) - t, 0.0)  # projection onto a Euclidean ball
    # Epigraph form over v = (z, u): minimise sum(u) with S u >= |z - x| coordinatewise
    # (S = all-ones column for l-inf, identity for l1) and ||z||_2 <= t.
    S = np.ones((d, 1)) if norm == "linf" else np.eye(d)
    k = S.shape[1]
    G = np.vstack([np.c_[-np.eye(d), S], np.c_[np.eye(d), S]])
    h = np.r_[-x, x]
    z0 = x * min(1.0, t / max(np.linalg.norm(x), 1e-300))
    u0 = np.abs(z0 - x).max(keepdims=True) if k == 1 else np.abs(z0 - x)
    ball = {"type": "ineq", "fun": lambda v: t * t - v[:d] @ v[:d],
            "jac": lambda v: np.r_[-2 * v[:d], np.zeros(k)]}
    box = {"type": "ineq", "fun": lambda v: G @ v - h, "jac": lambda v: G}
    res = optimize.minimize(lambda v: v[d:].sum(), np.r_[z0, u0],
                            jac=lambda v: np.r_[np.zeros(d), np.ones(k)], method="SLSQP",
                            constraints=[ball, box], options={"ftol": 1e-14, "maxiter": 1000})
    return float(res.fun)


def _ref_spheres(fam: ConcentricSpheres, x: np.ndarray, norm: str) -> float:
    k = int(fam.oracle(x[None])[0])
    best = np.inf
    if k > 0:
        best = min(best, _ball_interior_ref(x, fam.thresholds[k - 1], norm))
    if k < fam.n_classes - 1:
        best = min(best, _ball_exterior_ref(x, fam.thresholds[k], norm))
    return best


def _ref_glyph(fam: GlyphDigits, x: np.ndarray, norm: str) -> float:
    label = int(fam.oracle(x[None])[0])
    if norm == "l0":
        # Changed pixels may be taken in {0, 1} (pushing a segment's sum to an extreme
        # never hurts), so candidates are x with each segment pixel in {x_i, 0, 1}.
        pix = np.concatenate(fam.segment_index)
        choices = np.stack([x[pix], np.zeros(pix.size), np.ones(pix.size)])
        combos = np.array(list(itertools.product(range(3), repeat=pix.size)))
        Z = np.repeat(x[None], combos.shape[0], axis=0)
        Z[:, pix] = choices[combos, np.arange(pix.size)]
        lab = fam.oracle(Z)
        other = (lab != label) & (lab != REJECT)
        return float(np.count_nonzero(Z[other] != x, axis=1).min())
    best = np.inf
    tau = fam.threshold
    for k in range(10):
        if k == label:
            continue
        rows, rhs = [], []
        for s, ix in enumerate(fam.segment_index):
            row = np.zeros(fam.n_features)
            row[ix] = 1.0
            if DIGIT_CODES[k, s]:  # on: sum >= tau n_s
                rows.append(-row)
                rhs.append(-tau * ix.size)
            else:  # off: sum <= tau n_s (closure of "<")
                rows.append(row)
                rhs.append(tau * ix.size)
        best = min(best, min_norm_polyhedron(x, np.array(rows), np.array(rhs), norm, 0.0, 1.0))
    return best


def _ref_finite(fam: FiniteDomain, x: np.ndarray, norm: str) -> float:
    p = {"l0": 0, "l1": 1, "l2": 2, "linf": np.inf}[norm]
    label = int(fam.oracle(x[None])[0])
    best = np.inf
    for z, lz in zip(fam.points, fam.labels, strict=True):
        if lz != REJECT and lz != label:
            diff = z - x
            dist = np.count_nonzero(diff) if p == 0 else np.linalg.norm(diff, ord=p)
            best = min(best, float(dist))
    return best


def reference_margin(family: ToyFamily, X: np.ndarray, norm: str) -> np.ndarray:
    """Margins of each row computed without the family's closed forms."""
    X = np.asarray(X, dtype=float)
    if isinstance(family, OverlyRobustFeature):
        return np.array([_ref_linear(x, np.array([1.0, 0.0]), 0.0, norm) for x in X])
    if isinstance(family, LinearGaussian | Tsipras):
        w = family.w
        b = family.b if isinstance(family, LinearGaussian) else 0.0
        return np.array([_ref_linear(x, w, b, norm) for x in X])
    if isinstance(family, ConcentricSpheres):
        return np.array([_ref_spheres(family, x, norm) for x in X])
    if isinstance(family, GlyphDigits):
        return np.array([_ref_glyph(family, x, norm) for x in X])
    if isinstance(family, FiniteDomain):
        return np.array([_ref_finite(family, x, norm) for x in X])
    raise TypeError(f"no reference margin for {type(family).__name__}")


# --------------------------------------------------------------------------- margins


def check_margins(family: ToyFamily, X: np.ndarray, norm: str,
                  margin_fn: MarginFn | None = None, rtol: float = 1e-6) -> dict:
    """Closed-form margins (``margin_fn`` or ``family.margin``) equal the reference."""
    X = np.asarray(X, dtype=float)
    got = np.asarray((margin_fn or family.margin)(X, norm), dtype=float)
    ref = reference_margin(family, X, norm)
    tol = 1e-7 + rtol * np.abs(ref)
    with np.errstate(invalid="ignore"):  # inf - inf when no other class exists
        same = (got == ref) | (np.abs(got - ref) <= tol)
    bad = np.flatnonzero(~same)
    assert bad.size == 0, (
        f"{family.name} {norm}: closed-form margin differs from the solver at rows "
        f"{bad[:5].tolist()}: got {got[bad[:5]].tolist()}, reference {ref[bad[:5]].tolist()}")
    assert np.all(got >= 0), f"{family.name} {norm}: negative margin"
    return {"family": family.name, "norm": norm, "n": int(X.shape[0])}


def check_linear_margin_formula(margin_fn: Callable[..., np.ndarray] = linear_margin,
                                d: int = 3, n_cases: int = 30, seed: int = 0) -> dict:
    """``|w.x + b| / ||w||_q`` (and 1 for l0) against the LP/QP solver on random cases."""
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        w, x, b = rng.normal(size=d), rng.normal(size=d) * 2, float(rng.normal())
        for norm in ("l0", "l1", "l2", "linf"):
            got = float(margin_fn(x[None], w, b, norm)[0])
            ref = _ref_linear(x, w, b, norm)
            assert abs(got - ref) <= 1e-7 + 1e-6 * ref, (
                f"linear margin {norm}: got {got}, solver {ref} (w={w}, b={b}, x={x})")
    return {"cases": n_cases, "norms": 4}


# -------------------------------------------------------------------------- good radii


def glyph_support(fam: GlyphDigits) -> np.ndarray:
    """Every support image of a tiny :class:`GlyphDigits` (background pixels at 0).

    Only segment pixels matter to the oracle and the margins; they range over
    ``(ink - j)/L`` (lit) and ``j/L`` (unlit) for every ink level and jitter vector.
    """
    pix = np.concatenate(fam.segment_index)
    seg_of = np.concatenate([np.full(ix.size, s) for s, ix in enumerate(fam.segment_index)])
    size = (fam._jit + 1) ** pix.size * 10 * (fam.levels - fam._ink_lo + 1)
    if size > 200_000:
        raise ValueError(f"glyph support too large for exhaustive enumeration ({size} "
                         "images); use a tiny canvas")
    jit = np.array(list(itertools.product(range(fam._jit + 1), repeat=pix.size)))
    rows = []
    for digit in range(10):
        lit = DIGIT_CODES[digit][seg_of]
        for ink in range(fam._ink_lo, fam.levels + 1):
            img = np.zeros((jit.shape[0], fam.n_features))
            img[:, pix] = np.where(lit, ink - jit, jit) / fam.levels
            rows.append(img)
    return np.vstack(rows)


def check_good_radius_finite_support(family: FiniteDomain | GlyphDigits, norm: str,
                                     good_radius: float | None = None) -> dict:
    """The good radius equals the least margin over the (enumerated) finite support."""
    claimed = family.good_radius(norm).value if good_radius is None else good_radius
    if isinstance(family, FiniteDomain):
        support = family.points[family.probs > 0]
        margins = reference_margin(family, support, norm)
    else:
        support = glyph_support(family)
        margins = family.margin(support, norm)
    least = float(margins.min())
    assert claimed == least or abs(claimed - least) <= 1e-9 * max(1.0, least), (
        f"{family.name} {norm}: claimed good radius {claimed}, least support margin {least}")
    return {"family": family.name, "norm": norm, "support": int(support.shape[0]),
            "good_radius": least}


def _sphere_minimiser(fam: ConcentricSpheres, norm: str, starts: np.ndarray) -> float:
    """Least margin found by Nelder-Mead on the live spheres (direction parameterised)."""
    best = np.inf
    for x0 in starts:
        r = np.linalg.norm(x0)

        def f(g: np.ndarray, r: float = r) -> float:
            x = r * g / max(np.linalg.norm(g), 1e-300)
            return float(fam.margin(x[None], norm)[0])

        res = optimize.minimize(f, x0, method="Nelder-Mead",
                                options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000})
        best = min(best, float(res.fun))
    return best


def check_good_radius_attained(family: ToyFamily, norm: str, good_radius: float | None = None,
                               n: int = 4000, seed: int = 0) -> dict:
    """The good radius is a lower bound on sampled margins and is (nearly) attained.

    Lower bound: every one of ``n`` sampled margins is ``>= value``. Attainment: the
    least sampled margin (refined by local minimisation on the spheres) comes within
    a family-specific tolerance of ``value``.
    """
    claimed = family.good_radius(norm).value if good_radius is None else good_radius
    X, _ = family.sample(n, seed)
    margins = family.margin(X, norm)
    assert np.all(margins >= claimed - 1e-9), (
        f"{family.name} {norm}: sampled margin {margins.min()} below good radius {claimed}")
    least = float(margins.min())
    if isinstance(family, ConcentricSpheres) and norm != "l0":
        starts = X[np.argsort(margins)[:3]]
        # Refinement from the best samples and from the axis and diagonal directions.
        r = family.radii[family.priors > 0]
        extra = [rr * np.eye(family.d)[0] for rr in r]
        extra += [rr * np.ones(family.d) / np.sqrt(family.d) for rr in r]
        least = min(least, _sphere_minimiser(family, norm, np.vstack([starts, *extra])))
        tol = 1e-6
    elif isinstance(family, OverlyRobustFeature) and norm != "l0":
        tol = 20 * (family.b - family.a) / n  # gap of the least of n uniforms
    elif isinstance(family, LinearGaussian | Tsipras) and norm != "l0":
        tol = 20 * float(np.max(margins)) / n
    else:
        tol = 1e-9
    assert least <= claimed + tol, (
        f"{family.name} {norm}: good radius {claimed} not attained (least margin {least})")
    return {"family": family.name, "norm": norm, "n": n, "least_margin": least}


# ---------------------------------------------------------------------------- ceilings


def check_ceiling_monte_carlo(family: ToyFamily, norm: str, eps_grid: Sequence[float],
                              ceiling_fn: Callable[[np.ndarray], np.ndarray] | None = None,
                              n: int = 20_000, seed: int = 1,
                              confidence: float = 0.999) -> dict:
    """Closed-form ceiling inside the Clopper-Pearson interval of a Monte Carlo estimate."""
    eps = np.asarray(eps_grid, dtype=float)
    values = (ceiling_fn(eps) if ceiling_fn is not None else family.ceiling_curve(eps, norm))
    for e, v in zip(eps, np.asarray(values, dtype=float), strict=True):
        q = family.ceiling_estimate(float(e), norm, n=n, seed=seed, confidence=confidence)
        assert q.low - 1e-12 <= v <= q.high + 1e-12, (
            f"{family.name} {norm} eps={e}: closed form {v} outside the {confidence:.1%} "
            f"interval [{q.low:.5f}, {q.high:.5f}] of {n} samples")
    return {"family": family.name, "norm": norm, "radii": int(eps.size), "n": n}


def _numeric_equal(a: sp.Expr, b: sp.Expr, symbols: Sequence[sp.Symbol],
                   points: list[dict], tol: float = 1e-10) -> bool:
    for point in points:
        va = complex(sp.N(a.subs({s: point[str(s)] for s in symbols}), 30))
        vb = complex(sp.N(b.subs({s: point[str(s)] for s in symbols}), 30))
        if abs(va - vb) > tol * max(1.0, abs(vb)):
            return False
    return True


def check_symbolic_gaussian_tail(form: symbolic.ClosedForm | None = None) -> dict:
    """``P[|Z| > t]`` for one normal component, against ``sympy.stats``."""
    from sympy.stats import Normal, cdf

    form = form or symbolic.abs_normal_mixture_tail(1)
    t, mu, s, pi = form.args
    F = cdf(Normal("Z", mu, s))  # sympy integrates the normal density
    derived = 1 - F(t) + F(-t)
    points = [{"t": tv, "mu1": m, "s1": sd, "pi1": 1.0}
              for tv, m, sd in [(0.3, 0.2, 1.0), (1.5, -0.7, 0.5), (0.0, 2.0, 3.0),
                                (2.2, 2.0, 0.8)]]
    expr = form.expr.subs(pi, 1)
    assert _numeric_equal(expr, derived, (t, mu, s), points), (
        "Gaussian tail form disagrees with 1 - F(t) + F(-t), F the sympy.stats normal CDF")
    return {"points": len(points)}


def check_symbolic_linear_l2_margin(form: symbolic.ClosedForm | None = None, d: int = 3) -> dict:
    """``|w.x + b| / ||w||_2`` re-derived with Lagrange multipliers (projection onto a plane)."""
    form = form or symbolic.linear_margin(d, "l2")
    x, w, b = form.args[:d], form.args[d:2 * d], form.args[2 * d]
    z = sp.symbols(f"z0:{d}", real=True)
    lam = sp.Symbol("lam", real=True)
    lagr = sum((zi - xi) ** 2 for zi, xi in zip(z, x, strict=True)) + lam * (
        sum(wi * zi for wi, zi in zip(w, z, strict=True)) + b)
    sol = sp.solve([sp.diff(lagr, v) for v in (*z, lam)], (*z, lam), dict=True)
    assert len(sol) == 1, "the projection onto a hyperplane should be unique"
    dist2 = sp.simplify(sum((sol[0][zi] - xi) ** 2 for zi, xi in zip(z, x, strict=True)))
    assert sp.simplify(dist2 - form.expr**2) == 0, (
        f"l2 linear margin^2 {form.expr**2} differs from the Lagrange distance^2 {dist2}")
    return {"d": d}


def check_symbolic_linear_linf_margin(form: symbolic.ClosedForm | None = None,
                                      d: int = 3) -> dict:
    """``|w.x + b| / ||w||_1`` for l-inf: Hoelder lower bound and an attaining point.

    With ``w > 0`` and ``s = w.x + b > 0`` (other cases by symmetry), the point
    ``z = x - s/||w||_1 (1, ..., 1)`` lies on the plane at l-inf distance ``s/||w||_1``,
    and ``|w.(z - x)| <= ||w||_1 ||z - x||_inf`` shows nothing closer reaches it.
    """
    form = form or symbolic.linear_margin(d, "linf")
    x, b = form.args[:d], form.args[2 * d]
    w = sp.symbols(f"w0:{d}", positive=True)
    expr = form.expr.subs(dict(zip(form.args[d:2 * d], w, strict=True)))
    s = sum(wi * xi for wi, xi in zip(w, x, strict=True)) + b
    step = s / sum(w)
    z = [xi - step for xi in x]
    assert sp.simplify(sum(wi * zi for wi, zi in zip(w, z, strict=True)) + b) == 0
    # The closed form must equal the attained distance |s| / ||w||_1 exactly.
    assert sp.simplify(expr - sp.Abs(step)) == 0, (
        f"l-inf linear margin {expr} differs from the attained distance {sp.Abs(step)}")
    return {"d": d}


def check_symbolic_overly_robust_ceiling(form: symbolic.ClosedForm | None = None) -> dict:
    """``P[|x1| > eps]`` by integrating the uniform density of ``|x1|`` on ``[a, b]``."""
    form = form or symbolic.overly_robust_ceiling()
    eps, a, b = form.args
    u = sp.Symbol("u", real=True)
    derived = sp.Piecewise((1, eps <= a),
                           (sp.integrate(1 / (b - a), (u, eps, b)), eps < b), (0, True))
    points = [{"eps": e, "a": 0.2, "b": 0.6} for e in (0.0, 0.1, 0.2, 0.35, 0.59, 0.6, 0.9)]
    points += [{"eps": e, "a": 1.0, "b": 3.0} for e in (0.5, 1.5, 2.5, 3.5)]
    assert _numeric_equal(form.expr, derived, (eps, a, b), points), (
        "overly-robust ceiling disagrees with the integral of the uniform density")
    return {"points": len(points)}


# ------------------------------------------------------------ robust-optimal classifier


def check_robust_optimal_bruteforce(fam: FiniteDomain, eps: float, norm: str,
                                    robust_optimal: Callable[..., Any] | None = None) -> dict:
    """Over *all* classifiers of a tiny domain: the least error of the eps-robust ones.

    A classifier is eps-robust when it is constant on ``B(x, eps)`` for every support
    point ``x``. The returned classifier must be eps-robust and its error must equal
    the enumerated minimum.
    """
    m, C = fam.points.shape[0], fam.n_classes
    if C**m > 2**16:
        raise ValueError(f"too many classifiers to enumerate: {C}^{m}")
    result = (robust_optimal or fam.robust_optimal)(eps, norm)
    preds = np.array(list(itertools.product(range(C), repeat=m)))
    p = {"l0": 0, "l1": 1, "l2": 2, "linf": np.inf}[norm]
    robust = np.ones(preds.shape[0], dtype=bool)
    for i in np.flatnonzero(fam.probs > 0):
        diff = fam.points - fam.points[i]
        dist = (np.count_nonzero(diff, axis=1) if p == 0
                else np.linalg.norm(diff, ord=p, axis=1))
        ball = np.flatnonzero(dist <= eps + 1e-12 * max(1.0, eps))
        robust &= np.all(preds[:, ball] == preds[:, [i]], axis=1)
    errors = (preds != fam.labels[None, :]) @ fam.probs
    best = float(errors[robust].min())
    f_labels = np.asarray(result.classifier.labels)
    assert fam.is_robust(f_labels, eps, norm) and robust[
        int(np.ravel_multi_index(f_labels, (C,) * m))], (
        f"the returned classifier is not constant on every {eps}-ball ({norm})")
    assert abs(result.error.value - best) <= 1e-12, (
        f"claimed least robust error {result.error.value}, enumeration gives {best}")
    assert abs(fam.error_of(f_labels) - best) <= 1e-12, "returned classifier's error differs"
    return {"classifiers": int(preds.shape[0]), "robust": int(robust.sum()), "error": best}


def random_line_domain(k: int, seed: int, n_classes: int = 2,
                       reject_rate: float = 0.2) -> FiniteDomain:
    """The points ``0..k-1`` of the line with random labels (some REJECT) and random D."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=k)
    labels[rng.random(k) < reject_rate] = REJECT
    if np.all(labels == REJECT):
        labels[0] = 0
    probs = rng.random(k) * (rng.random(k) < 0.7) * (labels != REJECT)
    if probs.sum() == 0:
        probs[np.flatnonzero(labels != REJECT)[0]] = 1.0
    return FiniteDomain(np.arange(float(k))[:, None], labels, probs / probs.sum(), n_classes,
                        name="line-domain", family_params={"k": k, "seed": seed})


# -------------------------------------------------------------------------- Tsipras


def check_tsipras_theorem(fam: Tsipras, classifiers: Sequence[tuple[np.ndarray, float]],
                          eps: float | None = None,
                          bound_fn: Callable[[float, float], Any] = tsipras_bound) -> dict:
    """Theorem 2.1 on exact accuracies: robust <= bound(p, 1 - standard) at ``eps >= 2 eta``."""
    eps = 2 * fam.eta if eps is None else eps
    for v, c in classifiers:
        std, rob = fam.linear_accuracies(v, c, eps)
        limit = float(getattr(bound_fn(fam.p, 1.0 - std.value), "value",
                              bound_fn(fam.p, 1.0 - std.value)))
        assert rob.value <= limit + 1e-12, (
            f"robust accuracy {rob.value:.6g} exceeds the bound {limit:.6g} "
            f"(standard accuracy {std.value:.6g}, eps={eps}, p={fam.p}, eta={fam.eta})")
    return {"classifiers": len(classifiers), "eps": eps}


def tsipras_classifiers(fam: Tsipras, n_random: int = 20, seed: int = 0
                        ) -> list[tuple[np.ndarray, float]]:
    """The Bayes rule, the robust-feature rule ``sign(x_0)``, the averaging rule and random ones."""
    rng = np.random.default_rng(seed)
    e0 = np.zeros(fam.n_features)
    e0[0] = 1.0
    avg = np.r_[0.0, np.ones(fam.d)]
    out = [(fam.w.copy(), 0.0), (e0, 0.0), (avg, 0.0)]
    out += [(rng.normal(size=fam.n_features), float(rng.normal())) for _ in range(n_random)]
    return out


# ----------------------------------------------------------------------------- run all


def run_all() -> dict:
    """Run every check on default-sized instances; returns their summaries."""
    out: dict[str, Any] = {}
    out["linear_formula"] = check_linear_margin_formula()
    rng = np.random.default_rng(0)
    fams: list[tuple[ToyFamily, np.ndarray, tuple[str, ...]]] = [
        (OverlyRobustFeature(), rng.normal(size=(10, 2)), ("l0", "l1", "l2", "linf")),
        (LinearGaussian(d=3, w=[1.0, -2.0, 0.5], b=0.3), rng.normal(size=(10, 3)),
         ("l0", "l1", "l2", "linf")),
        (Tsipras(d=4, p=0.8, eta=0.6), rng.normal(size=(10, 5)), ("l1", "l2", "linf")),
        (ConcentricSpheres(d=3, radii=(0.5, 1.5, 2.5)), rng.normal(size=(12, 3)) * 1.2,
         ("l0", "l1", "l2", "linf")),
        (GlyphDigits(7, 6, 1, levels=4), rng.uniform(size=(6, 42)), ("l1", "l2", "linf")),
        (GlyphDigits(7, 5, 1, levels=4), rng.uniform(size=(6, 35)), ("l0",)),
    ]
    for fam, X, norms in fams:
        for norm in norms:
            out[f"margins/{fam.name}/{norm}/{fam.n_features}"] = check_margins(fam, X, norm)
    glyph = GlyphDigits(7, 5, 1, levels=6, ink_low=0.8, jitter=0.2)
    for norm in glyph.norms:
        out[f"good_radius/glyph/{norm}"] = check_good_radius_finite_support(glyph, norm)
    from invariance_tradeoffs.theory.toys import binary_images

    fin = binary_images(3, 3)
    for norm in fin.norms:
        out[f"good_radius/finite/{norm}"] = check_good_radius_finite_support(fin, norm)
    for fam in (OverlyRobustFeature(), LinearGaussian(d=3), ConcentricSpheres(d=3),
                ConcentricSpheres(d=4, radii=(1.0, 1.5, 3.0))):
        for norm in fam.norms:
            out[f"attained/{fam.name}/{norm}"] = check_good_radius_attained(fam, norm)
    for fam, grid in ((OverlyRobustFeature(), (0.1, 0.3, 0.5)),
                      (LinearGaussian(d=3, w=[1.0, -2.0, 0.5], b=0.3), (0.1, 0.5, 1.0)),
                      (Tsipras(d=8), (0.05, 0.2)), (ConcentricSpheres(), (0.3, 0.6)),
                      (fin, (0.5, 1.0, 1.5))):
        for norm in fam.ceiling_norms:
            out[f"ceiling/{fam.name}/{norm}"] = check_ceiling_monte_carlo(fam, norm, grid)
    out["sympy_gaussian_tail"] = check_symbolic_gaussian_tail()
    out["sympy_linear_l2"] = check_symbolic_linear_l2_margin()
    out["sympy_linear_linf"] = check_symbolic_linear_linf_margin()
    out["sympy_overly_robust_ceiling"] = check_symbolic_overly_robust_ceiling()
    tiny = binary_images(2, 2, rule="majority", beta=0.5)
    for eps in (0.0, 1.0, 1.5, 2.0):
        for norm in ("l0", "l2"):
            out[f"robust_optimal/images/{eps}/{norm}"] = check_robust_optimal_bruteforce(
                tiny, eps, norm)
    for seed in range(5):
        line = random_line_domain(9, seed, n_classes=3 if seed % 2 else 2)
        if line.n_classes ** 9 > 2**16:
            line = random_line_domain(8, seed, n_classes=2)
        for eps in (0.5, 1.0, 2.0):
            out[f"robust_optimal/line{seed}/{eps}"] = check_robust_optimal_bruteforce(
                line, eps, "l1")
    ts = Tsipras(d=10, p=0.9, eta=0.4)
    out["tsipras"] = check_tsipras_theorem(ts, tsipras_classifiers(ts))
    return out


if __name__ == "__main__":
    import json
    import time

    start = time.perf_counter()
    print(json.dumps(run_all(), indent=2, default=float))
    print(f"all checks passed in {time.perf_counter() - start:.1f} s")

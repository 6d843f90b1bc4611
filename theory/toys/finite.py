"""Finite domains: an explicit oracle table, a probability vector, exhaustive exact answers.

The input space is a finite set of points (e.g. every binary ``h x w`` image). The oracle
is a table (:class:`theory.oracles.TableOracle`), D a probability vector over the table,
and every quantity is computed by exhaustive search over the whole domain:

* margins ``r_O(x) = min{d(x, z) : z in domain, O(z) a class != O(x)}`` (pairwise
  distances from :meth:`invariance_tradeoffs.theory.distances.Distance.pairwise`, in blocks);
* the good radius ``min{r_O(x) : D(x) > 0}`` and the ceiling
  ``sum{D(x) : r_O(x) > eps}``;
* the *robust-optimal classifier* (:meth:`FiniteDomain.robust_optimal`): among the
  classifiers constant on ``B(x, eps)`` for every support point ``x``, one with the
  least error ``P_D[f(x) != O(x)]``, from the connected components of the graph linking
  support points whose balls share a domain point.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from invariance_tradeoffs.theory.distances import Distance, get_distance
from invariance_tradeoffs.theory.examples import in_ball, row_blocks
from invariance_tradeoffs.theory.margins import (
    ceiling_from_margins,
    good_radius_from_margins,
    oracle_margin,
)
from invariance_tradeoffs.theory.oracles import REJECT, TableOracle
from invariance_tradeoffs.theory.results import Quantity, exact
from invariance_tradeoffs.theory.toys.common import (
    ToyBase,
    check_probabilities,
    check_real,
)
from invariance_tradeoffs.theory.validation import (
    as_batch,
    as_labels,
    check_eps,
    check_int,
    check_n_classes,
)

__all__ = ["FiniteDomain", "RobustOptimal", "binary_images", "eps_ball_graph", "BINARY_RULES"]

@dataclass(frozen=True)
class RobustOptimal:
    """The least-error eps-robust classifier of a finite domain.

    Attributes
    ----------
    classifier : TableOracle
        ``f`` on the whole domain: the component's majority class inside the eps-balls
        of the support, the oracle's class (or 0 when it rejects) elsewhere.
    error : Quantity
        Exact ``P_D[f(x) != O(x)]``, the least error of any classifier constant on
        every eps-ball of a support point.
    components : numpy.ndarray
        Component index of each support point.
    support : numpy.ndarray
        Domain indices of the support points (``D(x) > 0``).
    """

    classifier: TableOracle
    error: Quantity
    components: np.ndarray
    support: np.ndarray


class FiniteDomain(ToyBase):
    """A finite input space with a table oracle and a distribution over it.

    Parameters
    ----------
    points : array_like, shape (m, d)
        The whole domain (distinct rows).
    labels : array_like, shape (m,)
        Oracle label of each point: a class or ``REJECT``.
    probs : array_like, shape (m,)
        D over the domain; ``REJECT`` points must have probability 0.
    n_classes : int
        Number of classes.
    name : str
        Family name used in messages.
    family_params : dict, optional
        Parameters reported by :meth:`params` (e.g. those of :func:`binary_images`).
    """

    norms = ("l0", "l1", "l2", "linf")
    ceiling_norms = ("l0", "l1", "l2", "linf")

    def __init__(self, points: np.ndarray, labels: np.ndarray, probs: np.ndarray,
                 n_classes: int, name: str = "finite-domain",
                 family_params: dict | None = None) -> None:
        self.n_classes = check_n_classes(n_classes)
        self.table = TableOracle(points, labels, self.n_classes)
        self.points = self.table.points
        self.labels = self.table.labels
        self.n_features = int(self.points.shape[1])
        self.probs = check_probabilities(probs, "probs", self.points.shape[0])
        if np.any(self.probs[self.labels == REJECT] > 0):
            raise ValueError("probs must be 0 on points the oracle rejects (D lives on classes)")
        self.support = np.flatnonzero(self.probs > 0)
        self.name = name
        self._family_params = dict(family_params or {})
        self._margin_cache: dict[str, np.ndarray] = {}

    def params(self) -> dict:
        return dict(self._family_params) or {"n_points": int(self.points.shape[0]),
                                              "n_classes": self.n_classes}

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.points[rng.choice(self.points.shape[0], size=n, p=self.probs)]

    def _oracle(self, X: np.ndarray) -> np.ndarray:
        return self.table(X)

    def index_of(self, X: np.ndarray) -> np.ndarray:
        """Domain index of each row; ``ValueError`` for rows outside the domain."""
        idx = self.table.index_of(X)
        if np.any(idx < 0):
            raise ValueError(f"X has {int((idx < 0).sum())} row(s) outside the finite domain")
        return idx

    def domain_margins(self, norm: str) -> np.ndarray:
        """Exact margin of every domain point (exhaustive; cached per norm)."""
        norm = self.check_norm(norm)
        if norm not in self._margin_cache:
            m = oracle_margin(self.points, self.table, get_distance(norm), self.points)
            if not m.exact:  # pragma: no cover - the candidates are the whole table
                raise RuntimeError("exhaustive margins were not recognised as exact")
            self._margin_cache[norm] = m.values
        return self._margin_cache[norm]

    def _margin(self, X: np.ndarray, norm: str) -> np.ndarray:
        return self.domain_margins(norm)[self.index_of(X)]

    def _good_radius(self, norm: str) -> Quantity:
        q = good_radius_from_margins(self.domain_margins(norm), weights=self.probs, exact=True)
        return exact(q.value, "exhaustive minimum of the margin over the support")

    def _ceiling(self, eps: np.ndarray, norm: str) -> np.ndarray:
        qs = ceiling_from_margins(self.domain_margins(norm), eps, weights=self.probs, exact=True)
        return np.array([q.value for q in qs])

    # -- robust-optimal classifier ----------------------------------------------------------
    def ball_graph(self, eps: float, norm: str) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        """Adjacency over the support: ``x ~ x'`` iff some domain ``z`` is within eps of both.

        Returns ``(adjacency, A)`` with ``A = [d(x, z) <= eps]`` (support x domain,
        sparse; row ``i`` is the ball of ``support[i]``) and adjacency ``A A^T > 0``.
        """
        return eps_ball_graph(self.points, self.support, get_distance(self.check_norm(norm)),
                              eps)

    def robust_optimal(self, eps: float, norm: str) -> RobustOptimal:
        """The least-error classifier constant on every eps-ball of a support point.

        Each connected component of :meth:`ball_graph` must get one label; the least
        error labels it with its probability-weighted majority class.
        """
        adjacency, A = self.ball_graph(eps, norm)
        n_comp, comp = connected_components(adjacency, directed=False)
        sup_labels = self.labels[self.support]
        mass = np.zeros((n_comp, self.n_classes))
        np.add.at(mass, (comp, sup_labels), self.probs[self.support])
        best = mass.argmax(axis=1)
        error = float(self.probs[self.support][best[comp] != sup_labels].sum())
        table = np.where(self.labels == REJECT, 0, self.labels)
        covered = A.tocoo()
        table[covered.col] = best[comp[covered.row]]
        f = TableOracle(self.points, table, self.n_classes)
        return RobustOptimal(
            f,
            exact(error, f"majority class per connected component of the eps-ball graph "
                  f"({n_comp} components)", eps=float(eps), norm=norm),
            comp, self.support.copy())

    def error_of(self, f: TableOracle | np.ndarray) -> float:
        """``P_D[f(x) != O(x)]`` for a table classifier or a label vector over the domain."""
        pred = f.labels if isinstance(f, TableOracle) else as_labels(
            f, "f", n_classes=self.n_classes, length=self.points.shape[0])
        return float(self.probs[pred != self.labels].sum())

    def is_robust(self, f: TableOracle | np.ndarray, eps: float, norm: str) -> bool:
        """Whether ``f`` is constant on ``B(x, eps)`` for every support point ``x``."""
        pred = f.labels if isinstance(f, TableOracle) else as_labels(
            f, "f", n_classes=self.n_classes, length=self.points.shape[0])
        _, A = self.ball_graph(eps, norm)
        coo = A.tocoo()
        return bool(np.all(pred[coo.col] == pred[self.support[coo.row]]))


def eps_ball_graph(points: np.ndarray, centres: np.ndarray, distance: Distance,
                   eps: float) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Which eps-balls of a finite domain overlap: the constraint graph of robustness.

    A classifier constant on ``B(x, eps)`` for every centre ``x`` must give one label to
    each connected component of the adjacency returned here.

    Parameters
    ----------
    points : ndarray, shape (m, d)
        The whole domain.
    centres : ndarray of int, shape (k,)
        Domain indices of the ball centres (e.g. the support of D).
    distance : Distance
        ``d``; balls are closed (:func:`~theory.examples.in_ball`).
    eps : float
        The radius.

    Returns
    -------
    adjacency : sparse (k, k)
        ``x ~ x'`` iff some domain point lies in both balls.
    A : sparse (k, m)
        ``A[i, z] = [d(points[centres[i]], points[z]) <= eps]``: row ``i`` is a ball.

    Examples
    --------
    >>> from invariance_tradeoffs.theory.distances import LpDistance
    >>> adj, A = eps_ball_graph(np.arange(3.0)[:, None], np.array([0, 2]), LpDistance(1), 1.0)
    >>> adj.toarray().astype(int).tolist(), A.toarray().tolist()
    ([[1, 1], [1, 1]], [[1, 1, 0], [0, 1, 1]])
    """
    eps = check_eps(eps)
    centres = np.asarray(centres, dtype=np.int64)
    blocks = [sparse.csr_matrix((0, points.shape[0]), dtype=np.int64)]
    for rows in row_blocks(centres.size, points.shape[0]):
        d = distance.pairwise(points[centres[rows]], points)
        blocks.append(sparse.csr_matrix(in_ball(d, eps)))
    A = sparse.vstack(blocks).astype(np.int64).tocsr()
    return (A @ A.T > 0).tocsr(), A


def _rule_orientation(imgs: np.ndarray) -> np.ndarray:
    rows = imgs.all(axis=2).any(axis=1)
    cols = imgs.all(axis=1).any(axis=1)
    return np.where(rows & ~cols, 0, np.where(cols & ~rows, 1, REJECT))


def _rule_majority(imgs: np.ndarray) -> np.ndarray:
    ink = imgs.reshape(imgs.shape[0], -1).sum(axis=1)
    half = imgs[0].size / 2
    return np.where(ink > half, 1, np.where(ink < half, 0, REJECT))


#: Labelling rules of :func:`binary_images`.
BINARY_RULES = {
    "orientation": _rule_orientation,  # 0: a full row and no full column; 1: the reverse
    "majority": _rule_majority,  # 1: more ink than half the pixels; 0: less; REJECT: tie
}


def binary_images(height: int = 3, width: int = 3, rule: str = "orientation",
                  beta: float = 1.0) -> FiniteDomain:
    """Every binary ``height x width`` image, labelled by ``rule``.

    D gives each classed image probability proportional to ``exp(-beta * k)``, ``k`` the
    number of pixels by which it differs from its class's nearest prototype (full rows
    for class 0 and full columns for class 1 under ``"orientation"``; the blank and the
    full image under ``"majority"``). Rejected images get probability 0.

    Examples
    --------
    >>> fam = binary_images(3, 3)
    >>> fam.points.shape, fam.good_radius("l0").value
    ((512, 9), 2.0)
    """
    height, width = check_int(height, "height", low=1), check_int(width, "width", low=1)
    if height * width > 16:
        raise ValueError(f"height * width must be <= 16 (2^16 images), got {height * width}")
    if rule not in BINARY_RULES:
        raise ValueError(f"unknown rule {rule!r}; expected one of {sorted(BINARY_RULES)}")
    beta = check_real(beta, "beta", low=0.0)
    d = height * width
    points = np.array(list(itertools.product([0.0, 1.0], repeat=d)))
    imgs = points.reshape(-1, height, width).astype(bool)
    labels = BINARY_RULES[rule](imgs)
    if rule == "orientation":
        protos = {0: [np.repeat(np.eye(height, dtype=bool)[i][:, None], width, 1).ravel()
                      for i in range(height)],
                  1: [np.repeat(np.eye(width, dtype=bool)[j][None, :], height, 0).ravel()
                      for j in range(width)]}
    else:
        protos = {0: [np.zeros(d, dtype=bool)], 1: [np.ones(d, dtype=bool)]}
    weights = np.zeros(points.shape[0])
    flat = points.astype(bool)
    for c, plist in protos.items():
        k = np.min([(flat != p).sum(axis=1) for p in plist], axis=0)
        weights[labels == c] = np.exp(-beta * k[labels == c])
    if not np.any(labels != REJECT):
        raise ValueError(f"rule {rule!r} labels no {height}x{width} image with a class")
    params = {"height": height, "width": width, "rule": rule, "beta": beta}
    return FiniteDomain(as_batch(points, "points"), labels, weights / weights.sum(), 2,
                        name="finite-domain", family_params=params)

"""Finite domains: exhaustive margins, good radius, ceiling and the robust-optimal classifier."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components

from invariance_tradeoffs.theory.oracles import REJECT, TableOracle
from invariance_tradeoffs.theory.results import exact
from invariance_tradeoffs.theory.strategies import finite_domains, radii
from invariance_tradeoffs.theory.toys import FiniteDomain, RobustOptimal, binary_images
from proofs import checks_closed_forms as C  # noqa: E402

NORMS = ("l0", "l1", "l2", "linf")


# Finite domains on a line of up to 9 points (theory.strategies): random labels or regions
# with REJECT between them, some classed points outside the support.
LINES = finite_domains(min_points=2, max_points=9, max_features=1, high=8)


@settings(max_examples=30, deadline=None)
@given(fam=LINES, norm=st.sampled_from(NORMS))
def test_margins_good_radius_ceiling_equal_loops(fam, norm):
    C.check_margins(fam, fam.points, norm)
    C.check_good_radius_finite_support(fam, norm)
    ref = C.reference_margin(fam, fam.points, norm)
    for eps in (0.0, 0.5, 1.0, 2.0):
        expected = fam.probs[ref > eps].sum()
        assert fam.ceiling(eps, norm).value == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("rule", ["orientation", "majority"])
def test_binary_image_margins_equal_loops(rule):
    fam = binary_images(3, 3, rule=rule)
    idx = np.random.default_rng(0).choice(fam.points.shape[0], 40, replace=False)
    for norm in NORMS:
        C.check_margins(fam, fam.points[idx], norm)
        C.check_good_radius_finite_support(fam, norm)


def test_binary_images_labels_and_distribution():
    fam = binary_images(3, 3, rule="orientation", beta=1.0)
    assert fam.points.shape == (512, 9) and fam.probs.sum() == pytest.approx(1.0)
    row = np.array([[1, 1, 1, 0, 0, 0, 0, 0, 0.0]])
    col = np.array([[1, 0, 0, 1, 0, 0, 1, 0, 0.0]])
    cross = np.array([[1, 1, 1, 1, 0, 0, 1, 0, 0.0]])
    assert fam.oracle(row)[0] == 0 and fam.oracle(col)[0] == 1 and fam.oracle(cross)[0] == REJECT
    # Prototypes get the largest probability; rejected images none.
    assert fam.probs[fam.index_of(row)[0]] == fam.probs.max()
    assert np.all(fam.probs[fam.labels == REJECT] == 0)


def test_outside_points_and_bad_tables_are_rejected():
    fam = binary_images(2, 2)
    with pytest.raises(ValueError, match="outside the finite domain"):
        fam.margin(np.array([[0.5, 0, 0, 0]]), "l2")
    pts = np.arange(3.0)[:, None]
    with pytest.raises(ValueError, match="probs must be 0 on points the oracle rejects"):
        FiniteDomain(pts, [0, REJECT, 1], [0.3, 0.3, 0.4], 2)
    with pytest.raises(ValueError, match="probs must sum to 1"):
        FiniteDomain(pts, [0, 1, 1], [0.3, 0.3, 0.3], 2)
    with pytest.raises(ValueError, match="points must be distinct"):
        FiniteDomain(np.zeros((2, 1)), [0, 1], [0.5, 0.5], 2)


def test_ball_graph_links_points_whose_balls_share_a_domain_point():
    # Support {2 (class 0), 4 (class 1)}: d = 2 > eps = 1, yet B(2,1) and B(4,1) share 3.
    pts = np.arange(7.0)[:, None]
    probs = np.array([0, 0, 0.6, 0, 0.4, 0, 0])
    fam = FiniteDomain(pts, [0, 0, 0, REJECT, 1, 1, 1], probs, 2)
    adjacency, _ = fam.ball_graph(1.0, "l1")
    assert connected_components(adjacency, directed=False)[0] == 1
    best = fam.robust_optimal(1.0, "l1")
    assert best.error.value == pytest.approx(0.4) and best.error.kind == "exact"
    assert fam.is_robust(best.classifier, 1.0, "l1")
    # Below eps = 1 the balls are disjoint and the oracle itself is robust and exact.
    assert fam.robust_optimal(0.9, "l1").error.value == 0.0


@settings(max_examples=40, deadline=None)
@given(fam=finite_domains(min_points=2, max_points=8, max_features=1, high=7, max_classes=2),
       eps=radii(max_value=3), norm=st.sampled_from(("l1", "l0")))
def test_robust_optimal_equals_enumeration_of_all_classifiers(fam, eps, norm):
    C.check_robust_optimal_bruteforce(fam, eps, norm)


@pytest.mark.parametrize("eps", [0.0, 1.0, 1.5, 2.0])
def test_robust_optimal_on_binary_images_equals_enumeration(eps):
    fam = binary_images(2, 2, rule="majority", beta=0.3)
    C.check_robust_optimal_bruteforce(fam, eps, "l0")


def _direct_only(fam: FiniteDomain):
    """Wrong: links support points only when one lies in the other's ball."""

    def robust_optimal(eps, norm):
        sup = fam.support
        d = np.abs(fam.points[sup] - fam.points[sup].T)
        n_comp, comp = connected_components(d <= eps, directed=False)
        mass = np.zeros((n_comp, fam.n_classes))
        np.add.at(mass, (comp, fam.labels[sup]), fam.probs[sup])
        table = np.where(fam.labels == REJECT, 0, fam.labels)
        table[sup] = mass.argmax(axis=1)[comp]
        err = float(mass.sum() - mass.max(axis=1).sum())
        return RobustOptimal(TableOracle(fam.points, table, fam.n_classes),
                             exact(err, "wrong graph"), comp, sup)

    return robust_optimal


def test_bruteforce_check_fails_for_the_direct_neighbour_graph():
    pts = np.arange(7.0)[:, None]
    fam = FiniteDomain(pts, [0, 0, 0, REJECT, 1, 1, 1], [0, 0, 0.6, 0, 0.4, 0, 0], 2)
    C.check_robust_optimal_bruteforce(fam, 1.0, "l1")
    with pytest.raises(AssertionError):
        C.check_robust_optimal_bruteforce(fam, 1.0, "l1", robust_optimal=_direct_only(fam))


def test_robust_optimal_error_is_zero_below_half_the_good_radius_gap():
    fam = binary_images(3, 3)
    # eps = 0: balls are single points, the oracle is robust and exact.
    assert fam.robust_optimal(0.0, "l0").error.value == 0.0
    # Large eps: one component, error = minority class mass.
    big = fam.robust_optimal(9.0, "l0")
    minority = min(fam.probs[fam.labels == 0].sum(), fam.probs[fam.labels == 1].sum())
    assert big.error.value == pytest.approx(minority)
    assert fam.is_robust(big.classifier, 9.0, "l0")

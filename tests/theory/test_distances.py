"""Metric axioms of every distance in theory.distances, the axiom checker itself, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from invariance_tradeoffs.theory.distances import (
    ClassifierInducedDistance,
    Distance,
    LpDistance,
    MahalanobisDistance,
    TransformInvariantDistance,
    WeightedLpDistance,
    cyclic_shifts,
    dual_exponent,
    get_distance,
)
from invariance_tradeoffs.theory.strategies import (
    classifier_induced_distances,
    distances,
    grid_points,
    linear_classifiers,
    lp_distances,
    mahalanobis_distances,
    transform_invariant_distances,
    weighted_lp_distances,
)
from invariance_tradeoffs.theory.theorem import check_metric_axioms, check_metric_axioms_exhaustive

D = 4  # input dimension of the property tests


class FunctionDistance(Distance):
    """A 'distance' given by a row-wise function -- used to build deliberately broken ones."""

    def __init__(self, fn, name: str) -> None:
        self.fn = fn
        self.name = name

    def _rowwise(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return self.fn(X, Y)


# Exhaustive axiom checks over all pairs and triples of up to 8 points. A small integer grid
# makes coincident coordinates common; a fine grid (step 1/80) stands in for real inputs
# while staying clear of subnormal coordinates (which would underflow in squared norms and
# look like separation failures that are float artefacts).
def small_grid(width: int = D):
    return grid_points(width, min_points=2, max_points=8, low=-2, high=2)


def fine_grid(width: int = D):
    return grid_points(width, min_points=2, max_points=8, low=-400, high=400, scale=1 / 80)


# --------------------------------------------------------------------------- metrics


@given(points=small_grid(), d=lp_distances(["l0", "l1", "l2", "l3", "linf"]))
def test_lp_distances_are_metrics(points, d):
    assert check_metric_axioms_exhaustive(d, points).holds


@given(points=fine_grid(), d=weighted_lp_distances(D, norms=["l1", "l2", "l3", "linf"]))
def test_weighted_lp_is_metric(points, d):
    assert check_metric_axioms_exhaustive(d, points).holds


@given(points=fine_grid(), d=mahalanobis_distances(D))
def test_mahalanobis_is_metric(points, d):
    assert check_metric_axioms_exhaustive(d, points).holds


@given(points=small_grid(width=9), d=transform_invariant_distances((3, 3), max_shift=1))
def test_cyclic_shift_invariant_distance_is_pseudo_metric(points, d):
    # On 3x3 images, shifts by -1..1 are the whole group Z3 x Z3.
    report = check_metric_axioms_exhaustive(d, points, allow_pseudo=True)
    assert report.holds
    assert report.counts["separation"] == 0 or report.pseudo


def test_shift_invariant_distance_vanishes_on_orbits():
    img = np.arange(9.0)[None, :]
    shifted = np.roll(img.reshape(1, 3, 3), (1, -1), axis=(1, 2)).reshape(1, 9)
    d = TransformInvariantDistance(LpDistance(2), cyclic_shifts((3, 3), 1))
    assert d(img, shifted)[0] == 0.0
    report = check_metric_axioms(d, img, shifted, img)
    assert not report.holds and report.pseudo
    assert check_metric_axioms(d, img, shifted, img, allow_pseudo=True).holds


def test_shift_set_that_is_not_a_group_breaks_the_triangle_inequality():
    # Shifts by -1..1 of length-5 signals miss the shifts by +-2 (not a group):
    # d(x, z) = 4 > d(x, y) + d(y, z) = 1 + 2. The checker catches it.
    d = TransformInvariantDistance(LpDistance(1), cyclic_shifts((1, 5), 1))
    x, y, z = (np.array([v], dtype=float) for v in ([0, 1, 1, 1, 0], [0, 0, 0, 1, 1],
                                                    [1, 0, 0, 0, 1]))
    report = check_metric_axioms(d, x, y, z, allow_pseudo=True)
    assert not report.holds and "triangle" in report.violated


@given(points=small_grid(), d=classifier_induced_distances(
    lp_distances(), linear_classifiers(D, n_classes=3), min_lam=0.5, max_lam=10))
def test_classifier_induced_distance_is_metric(points, d):
    assert check_metric_axioms_exhaustive(d, points).holds


def test_classifier_induced_distance_adds_lam_across_the_boundary():
    def f(X):
        return (X[:, 0] > 0).astype(int)

    d = ClassifierInducedDistance(LpDistance(2), f, lam=3.0)
    X = np.array([[-1.0, 0.0], [-1.0, 0.0]])
    Y = np.array([[1.0, 0.0], [-2.0, 0.0]])
    np.testing.assert_allclose(d(X, Y), [2.0 + 3.0, 1.0])
    np.testing.assert_allclose(d.pairwise(X, Y), [[5.0, 1.0], [5.0, 1.0]])


@given(X=fine_grid(width=3), d=distances(3))
def test_pairwise_matches_rowwise(X, d):
    Y = X[::-1] * 0.5
    P = d.pairwise(X, Y)
    np.testing.assert_allclose(np.diag(P), d(X, Y), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- the checker can fail


@pytest.mark.parametrize(
    "fn, axiom",
    [
        (lambda X, Y: np.sum((X - Y) ** 2, axis=1), "triangle"),            # squared l2
        (lambda X, Y: np.sum(np.maximum(X - Y, 0), axis=1), "symmetry"),    # one-sided
        (lambda X, Y: np.sum(X - Y, axis=1), "non_negativity"),              # signed
        (lambda X, Y: np.sum(np.abs(X - Y), axis=1) + 1.0, "identity"),      # shifted
        (lambda X, Y: np.abs(X[:, 0] - Y[:, 0]), "separation"),              # first coord only
    ],
)
def test_axiom_checker_flags_non_metrics(fn, axiom):
    broken = FunctionDistance(fn, axiom)
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 1.0], [0.0, 3.0]])
    rowwise = check_metric_axioms(broken, pts[[0, 1, 2]], pts[[1, 2, 3]], pts[[2, 0, 0]])
    exhaustive = check_metric_axioms_exhaustive(broken, pts)
    for report in (rowwise, exhaustive):
        assert not report.holds
        assert axiom in report.violated
        assert report.examples[axiom]


def test_exhaustive_checker_reports_the_violating_triple():
    sq = FunctionDistance(lambda X, Y: np.sum((X - Y) ** 2, axis=1), "sq")
    report = check_metric_axioms_exhaustive(sq, np.array([[0.0], [1.0], [2.0]]))
    assert report.violated == ("triangle",)
    assert (0, 1, 2) in report.examples["triangle"]  # d(0,2)=4 > d(0,1)+d(1,2)=2
    assert report.counts["triangle"] == 2            # and (2, 1, 0)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "X, Y, match",
    [
        (np.zeros(3), np.zeros((1, 3)), "X must be 2-D"),
        (np.zeros((1, 3)), np.zeros((1, 2)), "Y must have 3 features"),
        (np.zeros((2, 3)), np.zeros((3, 3)), "same number of rows"),
        (np.array([[np.nan, 0.0]]), np.zeros((1, 2)), "X contains NaN"),
        (np.zeros((1, 2)), np.array([[np.inf, 0.0]]), "Y contains NaN or inf"),
        (np.zeros((1, 0)), np.zeros((1, 0)), "X has zero features"),
    ],
)
def test_distance_rejects_bad_batches(X, Y, match):
    with pytest.raises(ValueError, match=match):
        LpDistance(2)(X, Y)


def test_distance_rejects_non_numeric():
    with pytest.raises(TypeError, match="X must be a numeric array"):
        LpDistance(2)([["a", "b"]], [[0.0, 1.0]])
    with pytest.raises(TypeError, match="Y must be a numeric array"):
        LpDistance(2).pairwise([[0.0, 1.0]], [[None, 1.0]])


@pytest.mark.parametrize("name", ["l7x", "manhattan", "", "l0.5"])
def test_unknown_norm_names(name):
    with pytest.raises(ValueError, match="norm|p must be"):
        get_distance(name)


def test_bad_norm_arguments():
    with pytest.raises(TypeError, match="norm must be a string"):
        get_distance(2)
    with pytest.raises(TypeError, match="p must be"):
        LpDistance(True)
    with pytest.raises(ValueError, match="p must be"):
        LpDistance(0.5)
    with pytest.raises(ValueError, match="l0 has no dual"):
        dual_exponent("l0")


@pytest.mark.parametrize(
    "weights, p, match",
    [
        ([1.0, -1.0], 2, "weights must be finite and > 0"),
        ([1.0, 0.0], 2, "weights must be finite and > 0"),
        ([1.0, np.nan], 2, "weights must be finite"),
        ([[1.0, 1.0]], 2, "weights must be a non-empty 1-D"),
        ([], 2, "weights must be a non-empty 1-D"),
        ([1.0, 1.0], 0, "weighted l0"),
    ],
)
def test_weighted_lp_bad_weights(weights, p, match):
    with pytest.raises(ValueError, match=match):
        WeightedLpDistance(weights, p)


def test_weighted_lp_dimension_mismatch():
    with pytest.raises(ValueError, match="weights has 2"):
        WeightedLpDistance([1.0, 2.0])(np.zeros((1, 3)), np.zeros((1, 3)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one of cov or precision"),
        ({"cov": np.eye(2), "precision": np.eye(2)}, "exactly one"),
        ({"cov": np.ones((2, 3))}, "cov must be a square"),
        ({"cov": np.array([[1.0, 0.5], [0.0, 1.0]])}, "cov must be finite and symmetric"),
        ({"precision": np.array([[1.0, 2.0], [2.0, 1.0]])}, "precision must be positive definite"),
        ({"cov": np.array([[np.nan, 0.0], [0.0, 1.0]])}, "cov must be finite"),
    ],
)
def test_mahalanobis_bad_matrices(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MahalanobisDistance(**kwargs)


def test_mahalanobis_dimension_mismatch():
    with pytest.raises(ValueError, match="X has 3 features but the matrix is 2-D"):
        MahalanobisDistance(cov=np.eye(2))(np.zeros((1, 3)), np.zeros((1, 3)))


def test_transform_invariant_and_shift_bad_input():
    with pytest.raises(TypeError, match="base must be a Distance"):
        TransformInvariantDistance("l2", cyclic_shifts((2, 2)))
    with pytest.raises(ValueError, match="transforms must not be empty"):
        TransformInvariantDistance(LpDistance(2), [])
    with pytest.raises(ValueError, match="shape must be positive"):
        cyclic_shifts((0, 3))
    with pytest.raises(ValueError, match="max_shift must be >= 0"):
        cyclic_shifts((3, 3), -1)


def test_classifier_induced_distance_bad_input():
    def f(X):
        return np.zeros(len(X), dtype=int)

    with pytest.raises(TypeError, match="base must be a Distance"):
        ClassifierInducedDistance("l2", f, 1.0)
    with pytest.raises(TypeError, match="classifier must be callable"):
        ClassifierInducedDistance(LpDistance(2), 3, 1.0)
    with pytest.raises(ValueError, match="lam must be > 0"):
        ClassifierInducedDistance(LpDistance(2), f, 0.0)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        ClassifierInducedDistance(LpDistance(2), f, -1.0)
    with pytest.raises(ValueError, match="lam must be finite"):
        ClassifierInducedDistance(LpDistance(2), f, np.inf)
    bad = ClassifierInducedDistance(LpDistance(2), lambda X: np.zeros(len(X) + 1), 1.0)
    with pytest.raises(ValueError, match="classifier output must have length 2"):
        bad(np.zeros((2, 2)), np.ones((2, 2)))


def test_axiom_checker_bad_input():
    with pytest.raises(TypeError, match="distance must be"):
        check_metric_axioms(lambda X, Y: 0, np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="same number of rows"):
        check_metric_axioms(LpDistance(2), np.zeros((2, 2)), np.zeros((1, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="Z must have 2 features"):
        check_metric_axioms(LpDistance(2), np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="atol must be >= 0"):
        check_metric_axioms(LpDistance(2), *(np.zeros((1, 2)),) * 3, atol=-1.0)
    with pytest.raises(ValueError, match="points must be distinct"):
        check_metric_axioms_exhaustive(LpDistance(2), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="points is an empty batch"):
        check_metric_axioms_exhaustive(LpDistance(2), np.zeros((0, 2)))

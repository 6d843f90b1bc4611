"""The tradeoff lemma, both directions of the theorem, and the executable proofs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from invariance_tradeoffs.theory.distances import ClassifierInducedDistance
from invariance_tradeoffs.theory.examples import in_ball
from invariance_tradeoffs.theory.margins import oracle_margin
from invariance_tradeoffs.theory.oracles import REJECT, TableOracle
from invariance_tradeoffs.theory.strategies import (
    FiniteWorld,
    finite_worlds,
    robust_classifiers,
    scenarios,
    subsets,
)
from invariance_tradeoffs.theory.strategies.radii import world_radii
from invariance_tradeoffs.theory.theorem import (
    LEMMA_CASES,
    check_good_at,
    check_nn_direction,
    covering_radius,
    nearest_neighbour_rule,
    tradeoff_lemma,
    verify_lemma_case,
)
from proofs import checks_core  # noqa: E402

WORLDS = finite_worlds(min_points=3, max_points=8)
SCENARIOS = scenarios(WORLDS)
LINE = np.arange(4.0)[:, None]


def const(label: int):
    return lambda X: np.full(len(X), label)


# --------------------------------------------------------------------------- executable proofs


@pytest.mark.parametrize(
    "check, kwargs",
    [
        (checks_core.check_definitions_exhaustive, {}),
        (checks_core.check_lemma_exhaustive, {}),
        (checks_core.check_lemma_images, {"eps_grid": (2.0,)}),
        (checks_core.check_ceiling_exhaustive, {}),
        (checks_core.check_ceiling_not_attained, {}),
        (checks_core.check_df_metric, {}),
        (checks_core.check_df_good, {}),
        (checks_core.check_nn_direction_exhaustive, {"n_random": 4}),
    ],
)
def test_executable_proofs(check, kwargs):
    summary = check(**kwargs)
    assert isinstance(summary, dict) and summary


@pytest.mark.slow
def test_executable_proofs_full():
    results = checks_core.run_all()
    assert results["count_rule_good_radius_l0"] == 3.0
    # Every oracle and classifier on a 4-point line, every radius.
    assert checks_core.check_lemma_exhaustive(k=4)["robust_and_applicable"] > 0
    assert checks_core.check_ceiling_exhaustive(k=4)["real_robust_above_ceiling"] > 0


def test_nn_hypotheses_are_each_necessary():
    assert checks_core.search_nn_counterexamples("none") == []
    assert checks_core.search_nn_counterexamples("strict_margin")
    assert checks_core.search_nn_counterexamples("cover")
    with pytest.raises(ValueError, match="relax must be"):
        checks_core.search_nn_counterexamples("triangle")


# --------------------------------------------------------------------------- lemma


@given(inst=SCENARIOS)
def test_lemma_witnesses_are_verified(inst):
    rep = tradeoff_lemma(inst.points, inst.oracle, inst.f, inst.distance, inst.eps, inst.points)
    assert rep.check(inst.oracle, inst.f, inst.distance)
    margins = oracle_margin(inst.points, inst.oracle, inst.distance, inst.points)
    np.testing.assert_array_equal(rep.applies, in_ball(margins.values, inst.eps))
    assert set(rep.case.tolist()) <= set(LEMMA_CASES)
    assert rep.witnesses().shape == (int(rep.applies.sum()), inst.points.shape[1])


@given(inst=scenarios(WORLDS, classifier=lambda world, eps: robust_classifiers(
    world, eps, centres="all")))
def test_lemma_for_certified_robust_classifiers(inst):
    # A classifier constant on every eps-ball (certified robust): wherever eps >= r_O(x) it
    # must misclassify x or have an invariance example, so errors+invariance >= P[r_O <= eps].
    f = inst.f
    rep = tradeoff_lemma(inst.points, inst.oracle, f, inst.distance, inst.eps, inst.points)
    assert rep.robust.all() and rep.holds and rep.check(inst.oracle, f, inst.distance)
    assert np.all(np.isin(rep.case[rep.applies], ("misclassified", "invariance")))


def test_lemma_for_constant_classifiers():
    # The simplest certified-robust classifiers, at every radius of a small world.
    world = FiniteWorld([[0], [1], [2], [3]], [0, REJECT, 1, 1], distance="l1")
    for label in (0, 1):
        for eps in world_radii(world):
            rep = tradeoff_lemma(world.points, world.oracle, const(label), "l1", eps,
                                 world.points)
            assert rep.robust.all() and rep.holds


def test_lemma_cases_on_the_line():
    oracle = TableOracle(LINE, [0, 0, 1, 1], n_classes=2)
    step = TableOracle(LINE, [0, 0, 1, 1], n_classes=2)  # f = O: follows the oracle
    rep = tradeoff_lemma(LINE, oracle, step, "l1", 1.0, LINE)
    assert rep.case.tolist() == ["no_witness", "not_robust", "not_robust", "no_witness"]
    assert not rep.robust[1:3].any() and rep.holds  # hypothesis fails there: no claim
    assert rep.check(oracle, step, "l1")


def test_a_wrong_witness_or_case_is_rejected():
    oracle = TableOracle(LINE, [0, 0, 1, 1], n_classes=2)
    f = const(0)
    rep = tradeoff_lemma(LINE, oracle, f, "l1", 1.0, LINE)
    i = 1  # x=1 (class 0), witness x'=2 (class 1), f constant -> invariance example
    assert rep.case[i] == "invariance" and rep.witness[i] == 2
    x = LINE[[i]]
    assert verify_lemma_case(x, LINE[[2]], ["invariance"], oracle, f, "l1", 1.0).tolist() == [True]
    same_class, too_far = LINE[[0]], LINE[[3]]
    assert not verify_lemma_case(x, same_class, ["invariance"], oracle, f, "l1", 1.0)[0]
    assert not verify_lemma_case(x, too_far, ["invariance"], oracle, f, "l1", 1.0)[0]
    assert not verify_lemma_case(x, LINE[[2]], ["misclassified"], oracle, f, "l1", 1.0)[0]
    assert not verify_lemma_case(x, LINE[[2]], ["not_robust"], oracle, f, "l1", 1.0)[0]
    # A tampered report fails its own check and, on robust rows, the lemma's claim.
    tampered = dataclasses.replace(rep, case=np.where(rep.applies, "not_robust", rep.case))
    assert not tampered.holds and not tampered.check(oracle, f, "l1")
    moved = dataclasses.replace(rep, witness=np.where(rep.applies, 0, -1))
    assert not moved.check(oracle, f, "l1")


# --------------------------------------------------------------------------- d_f direction


@given(inst=SCENARIOS, lam=st.floats(0.1, 10))
def test_df_is_good_below_lam_when_f_is_the_oracle(inst, lam):
    d_f = ClassifierInducedDistance(inst.distance, inst.oracle, lam)
    classed = inst.oracle.labels != REJECT
    if not classed.any():
        return
    for eps in (0.0, lam / 3, np.nextafter(lam, 0)):
        rep = check_good_at(d_f, inst.oracle, inst.points[classed], inst.points, eps)
        assert rep.holds and rep.certain and rep.min_margin.value >= lam


@given(inst=SCENARIOS, lam=st.floats(0.1, 10), data=st.data())
def test_df_goodness_check_catches_an_imperfect_classifier(inst, lam, data):
    # Make f agree across one oracle boundary: f(x') = f(x) with O(x') != O(x).
    o = inst.oracle.labels
    pairs = [(i, j) for i in range(len(o)) for j in range(len(o))
             if o[i] != REJECT and o[j] != REJECT and o[i] != o[j]]
    if not pairs:
        return
    i, j = data.draw(st.sampled_from(pairs), label="pair")
    broken = TableOracle(inst.points, np.where(np.arange(len(o)) == j, o[i], o),
                         inst.world.n_classes)
    d = float(inst.distance(inst.points[[i]], inst.points[[j]])[0])
    lam = d + lam  # so that the failure happens at a radius below lam
    rep = check_good_at(ClassifierInducedDistance(inst.distance, broken, lam), inst.oracle,
                        inst.points, inst.points, d)
    assert not rep.holds and i in rep.violations


# --------------------------------------------------------------------------- 1-NN direction


@given(inst=SCENARIOS, data=st.data())
def test_nn_direction_on_random_instances(inst, data):
    classed = np.flatnonzero(inst.oracle.labels != REJECT)
    if classed.size == 0:
        return
    sample = data.draw(subsets(classed.tolist(), 1, classed.size), label="sample")
    region = inst.points[classed]
    rep = check_nn_direction(region, inst.oracle, inst.points[sample], inst.distance,
                             inst.eps, candidates=inst.points)
    assert rep.holds
    if rep.condition_met:
        assert rep.errors.size == 0
    # The whole region as sample covers it at radius 0, where distinct points are good.
    full = check_nn_direction(region, inst.oracle, region, inst.distance, 0.0)
    assert full.condition_met and full.errors.size == 0


def test_nn_fails_without_strict_goodness():
    pts = np.array([[0.0], [1.0]])
    oracle = TableOracle(pts, [1, 0], n_classes=2)
    rep = check_nn_direction(pts, oracle, pts[[1]], "l1", 1.0)
    assert rep.covering_radius.value == 1.0 and not rep.condition_met
    assert rep.errors.tolist() == [0] and rep.holds  # no claim is violated
    assert rep.rule(pts).tolist() == [0, 0]


def test_nn_fails_without_covering():
    pts = np.arange(3.0)[:, None]
    oracle = TableOracle(pts, [0, 0, 1], n_classes=2)
    rep = check_nn_direction(pts, oracle, pts[[0]], "l1", 0.0)
    assert rep.covering_radius.value == 2.0 and not rep.condition_met
    assert rep.errors.tolist() == [2]
    # With a covering sample the same distance gives a perfect rule.
    good = check_nn_direction(pts, oracle, pts[[0, 2]], "l1", 1.0 - 1e-9)
    assert good.covering_radius.value == 1.0 and not good.condition_met
    assert check_nn_direction(pts, oracle, pts, "l1", 0.5).condition_met


def test_nn_report_detects_a_violated_claim():
    # If the 1-NN rule were wrong where the condition holds, holds would be False.
    pts = np.arange(3.0)[:, None]
    oracle = TableOracle(pts, [0, 0, 1], n_classes=2)
    rep = check_nn_direction(pts, oracle, pts, "l1", 0.5)
    assert rep.condition_met and rep.holds
    assert not dataclasses.replace(rep, errors=np.array([2])).holds


@given(inst=SCENARIOS, k=st.integers(1, 12))
def test_covering_radius_and_nearest_neighbour(inst, k):
    sample = inst.points[: min(k, inst.points.shape[0])]
    D = inst.distance.pairwise(inst.points, sample)
    q = covering_radius(inst.points, sample, inst.distance)
    assert q.kind == "exact" and q.value == D.min(axis=1).max()
    assert D[q.extra["farthest"]].min() == q.value
    labels = np.arange(sample.shape[0])
    rule = nearest_neighbour_rule(sample, labels, inst.distance)
    np.testing.assert_array_equal(rule(inst.points), np.argmin(D, axis=1))  # lowest index on ties
    np.testing.assert_array_equal(rule.predict(inst.points), rule(inst.points))


# --------------------------------------------------------------------------- bad input


def test_theorem_functions_reject_bad_input():
    oracle = TableOracle(LINE, [0, 0, 1, REJECT], n_classes=2)
    f = const(0)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        tradeoff_lemma(LINE, oracle, f, "l1", -1.0, LINE)
    with pytest.raises(ValueError, match="candidates must have 1 features"):
        tradeoff_lemma(LINE, oracle, f, "l1", 1.0, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="X contains NaN"):
        tradeoff_lemma(np.array([[np.nan]]), oracle, f, "l1", 1.0, LINE)
    with pytest.raises(ValueError, match="unknown or unverifiable"):
        verify_lemma_case(LINE[:1], LINE[1:2], ["no_witness"], oracle, f, "l1", 1.0)
    with pytest.raises(ValueError, match=r"case must have shape \(1,\)"):
        verify_lemma_case(LINE[:1], LINE[1:2], ["invariance"] * 2, oracle, f, "l1", 1.0)
    with pytest.raises(ValueError, match="x_prime must have 1 features"):
        verify_lemma_case(LINE[:1], np.zeros((1, 2)), ["invariance"], oracle, f, "l1", 1.0)
    with pytest.raises(ValueError, match="weights must have shape"):
        check_good_at("l1", oracle, LINE, LINE, 0.5, weights=[1.0])
    with pytest.raises(ValueError, match="eps must be finite"):
        check_good_at("l1", oracle, LINE, LINE, np.inf)
    with pytest.raises(ValueError, match="X_sample is an empty batch"):
        covering_radius(LINE, np.zeros((0, 1)), "l1")
    with pytest.raises(ValueError, match="X_sample must have 1 features"):
        covering_radius(LINE, np.zeros((2, 2)), "l1")
    with pytest.raises(ValueError, match="X_region must be 2-D"):
        covering_radius(LINE[:, 0], LINE, "l1")
    with pytest.raises(ValueError, match="y_sample must have length 4"):
        nearest_neighbour_rule(LINE, [0, 1], "l1")
    with pytest.raises(TypeError, match="y_sample must hold integer labels"):
        nearest_neighbour_rule(LINE, [0.5, 1, 1, 1], "l1")
    with pytest.raises(TypeError, match="distance must be"):
        nearest_neighbour_rule(LINE, [0, 1, 1, 1], None)
    with pytest.raises(ValueError, match="X_sample contains inputs the oracle rejects"):
        check_nn_direction(LINE[:3], oracle, LINE, "l1", 1.0)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        check_nn_direction(LINE[:3], oracle, LINE[:3], "l1", -0.5)

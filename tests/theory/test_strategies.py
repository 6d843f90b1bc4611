"""The public Hypothesis strategies (theory.strategies): what they draw is valid, they shrink
to small readable worlds, bad arguments raise when a strategy is built, and the package's
types resolve with st.from_type (also through the ``hypothesis`` entry point)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from invariance_tradeoffs.theory import strategies as its
from invariance_tradeoffs.theory.distances import (
    ClassifierInducedDistance,
    Distance,
    LpDistance,
    MahalanobisDistance,
    TransformInvariantDistance,
    WeightedLpDistance,
)
from invariance_tradeoffs.theory.examples import find_examples, in_ball
from invariance_tradeoffs.theory.oracles import REJECT, FunctionOracle, Oracle, TableOracle
from invariance_tradeoffs.theory.strategies import FiniteWorld, Scenario
from invariance_tradeoffs.theory.strategies.radii import step, world_radii
from invariance_tradeoffs.theory.theorem import NearestNeighbourRule, check_metric_axioms_exhaustive
from invariance_tradeoffs.theory.toys import FAMILIES, FiniteDomain, ToyFamily

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- worlds


@given(its.finite_worlds(min_points=2, max_points=6, max_features=3, max_classes=4))
def test_worlds_are_valid_and_within_their_bounds(world):
    assert 2 <= world.n_points <= 6 and 1 <= world.n_features <= 3
    assert 2 <= world.n_classes <= 4
    assert len(np.unique(world.points, axis=0)) == world.n_points
    assert np.all((world.points >= 0) & (world.points <= 3))
    assert world.classed.any() and np.isclose(world.weights.sum(), 1.0)
    assert np.all(world.weights[~world.classed] == 0) and len(world.support) >= 1
    assert world.margins.exact
    np.testing.assert_array_equal(world.oracle(world.points), world.labels)


@given(its.finite_worlds(full_support=True, reject=False))
def test_full_support_and_no_reject(world):
    assert np.all(world.labels != REJECT) and np.all(world.weights > 0)


def test_worlds_shrink_to_two_neighbouring_points_of_two_classes():
    world = find(its.finite_worlds(), lambda w: w.n_points >= 2)
    assert world.n_points == 2 and world.n_classes == 2 and world.distance.name == "l1"
    assert world.labels.tolist() == [0, 1] and world.weights.tolist() == [0.5, 0.5]
    assert world.distance(world.points[:1], world.points[1:])[0] == 1.0
    line = find(its.finite_worlds(max_features=1), lambda w: w.n_points >= 2)
    assert repr(line) == ("FiniteWorld(points=[[0], [1]], labels=[0, 1], weights=[1/2, 1/2], "
                          "distance='l1', n_classes=2)")


def test_world_repr_rebuilds_the_world():
    world = find(its.finite_worlds(), lambda w: (~w.classed).any() and w.n_points >= 3)
    again = eval(repr(world), {"FiniteWorld": FiniteWorld, "REJECT": REJECT})
    for name in ("points", "labels", "weights"):
        np.testing.assert_array_equal(getattr(again, name), getattr(world, name))
    assert again.distance.name == world.distance.name


@pytest.mark.parametrize("kwargs, error, match", [
    ({"points": [[0.0], [0.0]], "labels": [0, 1]}, ValueError, "points must be distinct"),
    ({"points": [[0.0], [1.0]], "labels": [REJECT, REJECT]}, ValueError, "at least one point"),
    ({"points": [[0.0], [1.0]], "labels": [0, REJECT], "weights": [0.5, 0.5]}, ValueError,
     "weights must be 0 on points the oracle rejects"),
    ({"points": [[0.0], [1.0]], "labels": [0, 1], "weights": [0.7, 0.7]}, ValueError,
     "summing to 1"),
    ({"points": [[0.0], [1.0]], "labels": [0, 2], "n_classes": 2}, ValueError, "out of range"),
    ({"points": [[0.0], [1.0]], "labels": [0, 1], "distance": "taxicab"}, ValueError,
     "unknown norm"),
])
def test_finite_world_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        FiniteWorld(**kwargs)


@given(its.finite_domains(max_points=4))
def test_finite_domains_agree_with_their_world(fam):
    assert isinstance(fam, FiniteDomain)
    assert 0 <= fam.good_radius("l1").value
    assert fam.ceiling(0.0, "linf").value == 1.0  # margins of distinct points are > 0


@given(its.scenarios())
def test_scenarios_hold_a_world_a_classifier_and_a_radius(s):
    assert isinstance(s, Scenario) and s.eps >= 0
    assert s.f(s.points).shape == (s.world.n_points,)
    assert s.eps in world_radii(s.world)


# --------------------------------------------------------------------------- oracles


@given(st.data())
def test_region_oracles_put_reject_between_the_classes(data):
    pts = data.draw(its.grid_points(1, min_points=3, max_points=4))
    oracle = data.draw(its.region_oracles(pts))
    classed = oracle.labels[oracle.labels != REJECT]
    # along a line a linear rule is monotone: the classes never alternate
    assert np.all(np.diff(classed) >= 0) or np.all(np.diff(classed) <= 0)


def test_region_oracles_shrink_to_a_rejected_middle():
    pts = np.arange(3.0)[:, None]
    assert find(its.region_oracles(pts), lambda oracle: True).labels.tolist() == [0, REJECT, 1]


@given(its.function_oracles(2, n_classes=3))
def test_function_oracles_label_the_plane(oracle):
    assert isinstance(oracle, FunctionOracle)
    X = np.array([[0.0, 0.0], [1.0, -1.0], [3.0, 2.0]])
    assert set(oracle(X).tolist()) <= {0, 1, 2, REJECT}


@given(st.data())
def test_support_weights_are_distributions_on_the_classed_points(data):
    labels = data.draw(its.label_lists(5, 3, min_classed=1))
    w = data.draw(its.support_weights(labels))
    assert np.isclose(w.sum(), 1.0) and np.all(w[labels == REJECT] == 0) and w.max() > 0


# --------------------------------------------------------------------------- classifiers

WORLDS = its.finite_worlds(max_points=5)


@given(st.data())
def test_robust_classifiers_are_constant_on_every_centre_ball(data):
    world = data.draw(WORLDS)
    eps = data.draw(its.radii(world))
    centres = data.draw(st.sampled_from(["support", "classed", "all"]))
    f = data.draw(its.robust_classifiers(world, eps, centres=centres))
    X = world.points[{"support": world.weights > 0, "classed": world.classed,
                      "all": np.ones(world.n_points, bool)}[centres]]
    res = find_examples(X, world.points, world.oracle, f, world.distance, eps)
    assert res.constant_on_ball.all()


def test_the_robustness_check_fails_on_arbitrary_tables():
    # the companion: tables are not robust in general, and the check above notices
    world = FiniteWorld([[0], [1], [2]], [0, 0, 1], distance="l1")

    def constant(f):
        return find_examples(world.points, world.points, world.oracle, f, "l1",
                             1.0).constant_on_ball.all()

    assert not constant(find(its.table_classifiers(world), lambda f: not constant(f)))


@given(st.data())
def test_oracle_classifiers_equal_the_oracle_where_asked(data):
    world = data.draw(WORLDS)
    where = data.draw(st.sampled_from(["support", "classed"]))
    f = data.draw(its.oracle_classifiers(world, where=where))
    mask = world.weights > 0 if where == "support" else world.classed
    np.testing.assert_array_equal(f.labels[mask], world.labels[mask])
    assert np.all(f.labels != REJECT)


@given(st.data())
def test_nearest_neighbour_classifiers_are_the_rule_of_a_support_sample(data):
    world = data.draw(WORLDS)
    f = data.draw(its.nearest_neighbour_classifiers(world))
    assert isinstance(f, NearestNeighbourRule)
    assert set(map(tuple, f.X_sample)) <= set(map(tuple, world.points[world.support]))
    np.testing.assert_array_equal(f(f.X_sample), f.y_sample)  # each sample point is nearest


@given(st.data())
def test_labelled_samples_are_sorted_support_subsets(data):
    world = data.draw(WORLDS)
    sample = data.draw(its.labelled_samples(world, min_size=1))
    assert sample == sorted(set(sample)) and set(sample) <= set(world.support.tolist())


@given(its.linear_classifiers(3, n_classes=3, reject_band=True))
def test_linear_classifiers_label_every_row(f):
    assert set(f(np.eye(3)).tolist()) <= {0, 1, 2, REJECT}
    assert np.any(f.weights != 0)


@given(st.data())
def test_classifiers_cover_every_kind_and_label_the_world(data):
    world = data.draw(WORLDS)
    f = data.draw(its.classifiers(world, eps=1.0))
    labels = np.asarray(f(world.points))
    assert labels.shape == (world.n_points,)


# --------------------------------------------------------------------------- distances


@given(st.data())
def test_every_distance_is_a_metric_on_grid_points(data):
    d = data.draw(st.integers(1, 3))
    pts = data.draw(its.grid_points(d, min_points=2, max_points=min(6, 5**d), low=-2, high=2))
    dist = data.draw(its.distances(d))
    rep = check_metric_axioms_exhaustive(dist, pts, allow_pseudo=True)
    assert rep.holds, (dist, rep.counts)


@given(its.transform_invariant_distances((2, 2)))
def test_shift_invariant_distances_vanish_on_shifts(d):
    x = np.array([[1.0, 2.0, 0.0, 0.0]])
    assert isinstance(d, TransformInvariantDistance) and d(x, np.roll(x, 2))[0] == 0.0


# --------------------------------------------------------------------------- radii


@given(st.data())
def test_boundary_radii_sit_on_either_side_of_the_margins(data):
    world = data.draw(WORLDS)
    margins = world.margins.values[np.isfinite(world.margins.values)]
    assert world_radii(world)[0] == 0.0
    eps = data.draw(its.boundary_radii(world, side="at"))
    assert np.any(eps == margins) or eps == world.good_radius.value or margins.size == 0
    if margins.size:
        below = data.draw(its.boundary_radii(world, side="below"))
        above = data.draw(its.boundary_radii(world, side="above"))
        # past the closed-ball tolerance on both sides: one counts as outside, one inside
        assert not in_ball(step(below, 1) - 1e-300, below) or below < step(below, 1)
        assert in_ball(np.nextafter(step(above, -1), np.inf), above)


def test_radii_include_every_margin_and_the_good_radius():
    world = FiniteWorld([[0], [1], [3]], [0, REJECT, 1], distance="l1")
    r = world_radii(world)
    assert {0.0, 1.0, 2.0, 3.0, world.good_radius.value} <= set(r)
    assert step(3.0, -1) in r and step(3.0, 1) in r and r == sorted(r)


@given(its.radii(min_value=0.5, max_value=2.0))
def test_radii_without_a_world_stay_in_range(eps):
    assert 0.5 <= eps <= 2.0


# --------------------------------------------------------------------------- families


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(its.family_instances())
def test_family_instances_are_valid(fam):
    assert isinstance(fam, ToyFamily)
    X, y = fam.sample(40, seed=0)
    np.testing.assert_array_equal(fam.oracle(X), y)
    norm = fam.norms[0]
    assert np.all(fam.margin(X, norm) >= fam.good_radius(norm).value - 1e-9)


def test_every_registered_family_has_parameters_and_unknown_names_are_refused():
    for name in FAMILIES:
        assert isinstance(find(its.family_instances(name), lambda fam: True), ToyFamily)
    with pytest.raises(ValueError, match="unknown family 'nope'"):
        its.family_instances("nope")
    with pytest.raises(ValueError, match="unknown family"):
        its.register_family_params("nope", lambda: st.just({}))


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("build, error, match", [
    (lambda: its.finite_worlds(min_points=-1), ValueError, "min_points must be an integer >= 1"),
    (lambda: its.finite_worlds(min_points=4, max_points=2), ValueError,
     "min_points=4 must be <= max_points=2"),
    (lambda: its.finite_worlds(min_classes=1), ValueError, "min_classes must be an integer >= 2"),
    (lambda: its.finite_worlds(max_features=0), ValueError, "max_features must be an integer"),
    (lambda: its.finite_worlds(min_points=20, max_points=20), ValueError, "exceeds the 16"),
    (lambda: its.finite_worlds(oracles="voronoi"), ValueError, "oracles must be one of"),
    (lambda: its.finite_worlds(distances=3), TypeError, "distances must be a strategy"),
    (lambda: its.finite_worlds(max_points=2.5), TypeError, "max_points must be an integer"),
    (lambda: its.grid_points(2, max_points=10, high=1), ValueError, "max_points=10 exceeds"),
    (lambda: its.grid_points(1, scale=0), ValueError, "scale must be > 0"),
    (lambda: its.lp_distances(["l2", "taxicab"]), ValueError, "norms: unknown norm 'taxicab'"),
    (lambda: its.lp_distances([]), ValueError, "norms must name at least one norm"),
    (lambda: its.lp_distances("l2"), TypeError, "norms must be a sequence"),
    (lambda: its.weighted_lp_distances(2, norms=["l0"]), ValueError, "weighted l0"),
    (lambda: its.weighted_lp_distances(0), ValueError, "n_features must be an integer >= 1"),
    (lambda: its.mahalanobis_distances(2, max_entry=-1), ValueError, "max_entry"),
    (lambda: its.transform_invariant_distances((0, 2)), ValueError, "shape"),
    (lambda: its.classifier_induced_distances(its.lp_distances(), "f"), TypeError,
     "classifier must be a Hypothesis strategy"),
    (lambda: its.classifier_induced_distances(its.lp_distances(), its.linear_classifiers(1),
                                              min_lam=0), ValueError, "min_lam must be > 0"),
    (lambda: its.distances(2, kinds=["lp", "cosine"]), ValueError, "kinds must be one of"),
    (lambda: its.radii(min_value=-1), ValueError, "min_value must be >= 0"),
    (lambda: its.radii(min_value=3, max_value=1), ValueError, "min_value=3 must be <= max_value=1"),
    (lambda: its.radii("world"), TypeError, "world must be a FiniteWorld"),
    (lambda: its.boundary_radii(FiniteWorld([[0.0]], [0]), side="inside"), ValueError,
     "side must be one of"),
    (lambda: its.linear_classifiers(2, n_classes=1), ValueError, "n_classes must be"),
    (lambda: its.label_lists(-2, 2), ValueError, "n must be an integer >= 0"),
    (lambda: its.label_lists(2, 2, min_classed=3), ValueError, "min_classed=3 must be <= n=2"),
    (lambda: its.table_oracles(np.zeros(3)), ValueError, "points must be 2-D"),
    (lambda: its.support_weights([REJECT]), ValueError, "at least one point"),
    (lambda: its.table_classifiers("world"), TypeError, "world must be a FiniteWorld"),
    (lambda: its.robust_classifiers(FiniteWorld([[0.0]], [0]), -1.0), ValueError,
     "eps must be >= 0"),
    (lambda: its.robust_classifiers(FiniteWorld([[0.0]], [0]), 1.0, centres="everywhere"),
     ValueError, "centres must be one of"),
    (lambda: its.oracle_classifiers(FiniteWorld([[0.0]], [0]), where="nowhere"), ValueError,
     "where must be one of"),
    (lambda: its.labelled_samples(FiniteWorld([[0.0]], [0]), max_size=2), ValueError,
     "max_size must be an integer in"),
    (lambda: its.scenarios(worlds=[1]), TypeError, "worlds must be a Hypothesis strategy"),
    (lambda: its.family_instances([]), ValueError, "names must name at least one family"),
])
def test_bad_arguments_raise_when_the_strategy_is_built(build, error, match):
    with pytest.raises(error, match=match):
        build()


# --------------------------------------------------------------------------- type resolution

TYPES = [FiniteWorld, Scenario, FiniteDomain, TableOracle, FunctionOracle, Oracle,
         its.LinearClassifier, NearestNeighbourRule, Distance, LpDistance, WeightedLpDistance,
         MahalanobisDistance, TransformInvariantDistance, ClassifierInducedDistance, ToyFamily]


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.__name__)
def test_from_type_draws_the_package_types(cls):
    @settings(max_examples=5, deadline=None)
    @given(st.from_type(cls))
    def draws(value):
        assert isinstance(value, cls)

    draws()


def _hook_registered() -> bool:
    eps = importlib.metadata.entry_points(group="hypothesis")
    return any(e.value == "invariance_tradeoffs.theory.strategies.registry:"
                          "_hypothesis_setup_hook" for e in eps)


def test_the_entry_point_registers_the_types_without_importing_the_strategies():
    if not _hook_registered():
        if os.environ.get("CI"):
            pytest.fail("the installed metadata has no 'hypothesis' entry point; "
                        "pip install -e . should have written it")
        pytest.skip("installed metadata predates the entry point: pip install -e .")
    code = ("from hypothesis import find, strategies as st\n"
            "from invariance_tradeoffs.theory.oracles import TableOracle\n"
            "print(find(st.from_type(TableOracle), lambda O: len(O.labels) >= 2))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout
    assert out.strip() == "TableOracle(labels=[0, 1], n_classes=2)"


@pytest.mark.parametrize("first", ["invariance_tradeoffs.theory.strategies", "hypothesis"])
def test_the_types_resolve_whichever_is_imported_first(first):
    # With the entry point installed, importing the strategies first imports Hypothesis,
    # which calls the hook while the strategies are half imported: it must wait for them.
    code = (f"import {first}\n"
            "from hypothesis import find, strategies as st\n"
            "from invariance_tradeoffs.theory.strategies import FiniteWorld\n"
            "print(find(st.from_type(FiniteWorld), lambda w: w.n_points >= 2))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("FiniteWorld(") and "labels=[0, 1]" in out.stdout


def test_the_entry_point_is_declared_and_importable():
    import tomllib

    from invariance_tradeoffs.theory.strategies import registry

    table = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    module, func = table["hypothesis"]["invariance_tradeoffs"].split(":")
    assert module == registry.__name__ and callable(getattr(registry, func))


def test_every_public_strategy_has_a_docstring_example():
    missing = [name for name in its.__all__ if callable(getattr(its, name))
               and "Examples" not in (getattr(its, name).__doc__ or "")]
    assert not missing, missing

"""Type resolution: ``st.from_type(FiniteWorld)``, ``st.from_type(TableOracle)``,
``st.from_type(Distance)``... draw from this package's strategies.

:func:`_hypothesis_setup_hook` is the package's ``hypothesis`` entry point
(``[project.entry-points.hypothesis]`` in ``pyproject.toml``): Hypothesis calls it when it
is imported, so the types resolve without importing the strategies first. Importing
:mod:`invariance_tradeoffs.theory.strategies` registers them as well.
"""

from __future__ import annotations

import sys

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

__all__ = ["type_strategies", "register_type_strategies"]

def type_strategies() -> dict[type, SearchStrategy]:
    """The strategy registered for each type of the package (small defaults)."""
    # Imported here, not at the top: Hypothesis may load this module (its entry point)
    # while the strategies package is still being imported -- it imports Hypothesis.
    from invariance_tradeoffs.theory.distances import (
        ClassifierInducedDistance,
        Distance,
        LpDistance,
        MahalanobisDistance,
        TransformInvariantDistance,
        WeightedLpDistance,
    )
    from invariance_tradeoffs.theory.oracles import FunctionOracle, Oracle, TableOracle
    from invariance_tradeoffs.theory.strategies.classifiers import (
        LinearClassifier,
        linear_classifiers,
        nearest_neighbour_classifiers,
    )
    from invariance_tradeoffs.theory.strategies.distances import (
        classifier_induced_distances,
        distances,
        lp_distances,
        mahalanobis_distances,
        transform_invariant_distances,
        weighted_lp_distances,
    )
    from invariance_tradeoffs.theory.strategies.families import family_instances
    from invariance_tradeoffs.theory.strategies.finite_world import FiniteWorld, Scenario
    from invariance_tradeoffs.theory.strategies.oracles import function_oracles
    from invariance_tradeoffs.theory.strategies.worlds import (
        finite_domains,
        finite_worlds,
        scenarios,
    )
    from invariance_tradeoffs.theory.theorem import NearestNeighbourRule
    from invariance_tradeoffs.theory.toys import FiniteDomain, ToyFamily

    DIMS = st.integers(1, 3)
    worlds = finite_worlds()
    return {
        FiniteWorld: worlds,
        Scenario: scenarios(),
        FiniteDomain: finite_domains(),
        TableOracle: worlds.map(lambda w: w.oracle),
        FunctionOracle: DIMS.flatmap(function_oracles),
        Oracle: st.one_of(worlds.map(lambda w: w.oracle), DIMS.flatmap(function_oracles)),
        LinearClassifier: DIMS.flatmap(linear_classifiers),
        NearestNeighbourRule: worlds.flatmap(nearest_neighbour_classifiers),
        Distance: DIMS.flatmap(distances),
        LpDistance: lp_distances(),
        WeightedLpDistance: DIMS.flatmap(weighted_lp_distances),
        MahalanobisDistance: DIMS.flatmap(mahalanobis_distances),
        TransformInvariantDistance: st.sampled_from([(1, 4), (2, 2), (2, 3)]).flatmap(
            transform_invariant_distances),
        ClassifierInducedDistance: DIMS.flatmap(lambda d: classifier_induced_distances(
            lp_distances(), linear_classifiers(d))),
        ToyFamily: family_instances(),
    }


def register_type_strategies() -> None:
    """Register :func:`type_strategies` with ``st.register_type_strategy`` (idempotent).

    Examples
    --------
    >>> from hypothesis import given
    >>> from invariance_tradeoffs.theory.strategies import FiniteWorld
    >>> register_type_strategies()
    >>> @given(st.from_type(FiniteWorld))
    ... def test(world):
    ...     assert world.labels.shape == (world.n_points,)
    >>> test()
    """
    for cls, strategy in type_strategies().items():
        st.register_type_strategy(cls, strategy)


def _hypothesis_setup_hook() -> None:
    """Hypothesis's entry point: register the package's types (see the module doc)."""
    if not hasattr(sys.modules.get(__package__), "register_type_strategies"):
        # The strategies package is being imported and has just imported Hypothesis, which
        # calls this hook; the package registers the types itself once it is complete.
        return
    register_type_strategies()

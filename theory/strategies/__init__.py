"""Hypothesis strategies for the objects of the theory: state a claim about the tradeoff,
test it on many small worlds, get a minimal counterexample when it is false.

Like ``hypothesis.extra.numpy`` for arrays, this module draws the package's objects:

* **worlds** -- :func:`finite_worlds` (grid points, a distance, an oracle table with the
  reject label, a distribution D; a :class:`FiniteWorld` prints as the call that rebuilds
  it), :func:`finite_domains` (as toy families), :func:`grid_points`,
  :func:`scenarios` (a world, a classifier, a radius);
* **oracles** -- :func:`table_oracles`, :func:`region_oracles` (classes on either side
  of a linear boundary, REJECT between), :func:`function_oracles` (the same on R^d),
  :func:`support_weights` (D), :func:`labelled_samples` (training sets from D);
* **classifiers** -- :func:`table_classifiers`, :func:`nearest_neighbour_classifiers`,
  :func:`linear_classifiers`, :func:`robust_classifiers` (constant on eps-balls),
  :func:`oracle_classifiers` (equal to the oracle on the support), :func:`classifiers`;
* **distances** -- :func:`lp_distances` (l0 too), :func:`weighted_lp_distances`,
  :func:`mahalanobis_distances`, :func:`transform_invariant_distances`,
  :func:`classifier_induced_distances` (the theorem's d_f), :func:`distances`;
* **radii** -- :func:`radii` and :func:`boundary_radii` (eps equal to a margin, to the
  good radius, and just either side); :func:`world_radii` lists every radius at which a
  finite world can change its answers;
* **toy families** -- :func:`family_instances`, :func:`family_params`.

Sizes are bounded by arguments with small defaults; everything shrinks towards fewer
points, fewer classes and smaller radii. Bad arguments raise when the strategy is built.
Importing this module (or, once the package is installed, importing Hypothesis: the
``hypothesis`` entry point) registers the package's types for ``st.from_type``.
See ``docs/properties.md`` for worked examples. Needs ``hypothesis`` (the ``dev`` extra).

Examples
--------
>>> from hypothesis import given
>>> from invariance_tradeoffs.theory.theorem import tradeoff_lemma
>>> @given(scenarios(classifier=robust_classifiers))
... def test_tradeoff_lemma(s):
...     rep = tradeoff_lemma(s.points, s.oracle, s.f, s.distance, s.eps, s.points)
...     assert rep.holds
>>> test_tradeoff_lemma()
"""

from invariance_tradeoffs.theory.strategies.classifiers import (
    LinearClassifier,
    classifiers,
    label_lists,
    labelled_samples,
    linear_classifiers,
    nearest_neighbour_classifiers,
    oracle_classifiers,
    robust_classifiers,
    table_classifiers,
)
from invariance_tradeoffs.theory.strategies.distances import (
    DISTANCE_KINDS,
    classifier_induced_distances,
    distances,
    lp_distances,
    mahalanobis_distances,
    transform_invariant_distances,
    weighted_lp_distances,
)
from invariance_tradeoffs.theory.strategies.domains import grid_points, subsets
from invariance_tradeoffs.theory.strategies.families import (
    FAMILY_PARAMS,
    family_instances,
    family_params,
    register_family_params,
)
from invariance_tradeoffs.theory.strategies.finite_world import FiniteWorld, Scenario
from invariance_tradeoffs.theory.strategies.oracles import (
    function_oracles,
    region_oracles,
    support_weights,
    table_oracles,
)
from invariance_tradeoffs.theory.strategies.radii import boundary_radii, radii, world_radii
from invariance_tradeoffs.theory.strategies.registry import register_type_strategies
from invariance_tradeoffs.theory.strategies.worlds import finite_domains, finite_worlds, scenarios

__all__ = [
    "FiniteWorld",
    "Scenario",
    "grid_points",
    "subsets",
    "finite_worlds",
    "finite_domains",
    "scenarios",
    "table_oracles",
    "region_oracles",
    "function_oracles",
    "support_weights",
    "labelled_samples",
    "label_lists",
    "LinearClassifier",
    "linear_classifiers",
    "table_classifiers",
    "nearest_neighbour_classifiers",
    "robust_classifiers",
    "oracle_classifiers",
    "classifiers",
    "DISTANCE_KINDS",
    "lp_distances",
    "weighted_lp_distances",
    "mahalanobis_distances",
    "transform_invariant_distances",
    "classifier_induced_distances",
    "distances",
    "radii",
    "boundary_radii",
    "world_radii",
    "FAMILY_PARAMS",
    "family_params",
    "family_instances",
    "register_family_params",
    "register_type_strategies",
]

register_type_strategies()

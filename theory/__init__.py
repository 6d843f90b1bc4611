"""Formal library for the invariance/sensitivity tradeoff (Tramer et al., ICML 2020)."""

from invariance_tradeoffs.theory.distances import (
    ClassifierInducedDistance,
    Distance,
    LpDistance,
    MahalanobisDistance,
    TransformInvariantDistance,
    WeightedLpDistance,
    cyclic_shifts,
    get_distance,
)
from invariance_tradeoffs.theory.examples import (
    ExampleSearch,
    find_examples,
    is_invariance_example,
    is_sensitivity_example,
)
from invariance_tradeoffs.theory.margins import (
    Margins,
    ceiling_from_margins,
    good_radius_from_margins,
    is_good,
    oracle_margin,
)
from invariance_tradeoffs.theory.oracles import (
    REJECT,
    FunctionOracle,
    Oracle,
    TableOracle,
    is_reject,
    predict,
)
from invariance_tradeoffs.theory.results import Quantity
from invariance_tradeoffs.theory.robust_accuracy import (
    RobustnessReport,
    invariance_robust_accuracy,
    real_robust_accuracy,
    robustness_report,
    sensitivity_robust_accuracy,
    standard_robust_accuracy,
)
from invariance_tradeoffs.theory.theorem import (
    NearestNeighbourRule,
    check_good_at,
    check_metric_axioms,
    check_metric_axioms_exhaustive,
    check_nn_direction,
    covering_radius,
    nearest_neighbour_rule,
    tradeoff_lemma,
    verify_lemma_case,
)

__all__ = [
    "REJECT",
    "Oracle",
    "FunctionOracle",
    "TableOracle",
    "is_reject",
    "predict",
    "Quantity",
    "Distance",
    "LpDistance",
    "WeightedLpDistance",
    "MahalanobisDistance",
    "TransformInvariantDistance",
    "ClassifierInducedDistance",
    "cyclic_shifts",
    "get_distance",
    "ExampleSearch",
    "find_examples",
    "is_sensitivity_example",
    "is_invariance_example",
    "Margins",
    "oracle_margin",
    "good_radius_from_margins",
    "is_good",
    "ceiling_from_margins",
    "RobustnessReport",
    "robustness_report",
    "real_robust_accuracy",
    "sensitivity_robust_accuracy",
    "invariance_robust_accuracy",
    "standard_robust_accuracy",
    "tradeoff_lemma",
    "verify_lemma_case",
    "check_good_at",
    "covering_radius",
    "NearestNeighbourRule",
    "nearest_neighbour_rule",
    "check_nn_direction",
    "check_metric_axioms",
    "check_metric_axioms_exhaustive",
]

# Toy families with exact oracles (theory/toys); the SymPy layer stays in theory.symbolic so
# that importing the theory does not import SymPy.
from invariance_tradeoffs.theory.toys import FAMILIES, ToyFamily, get_family  # noqa: E402

__all__ += ["FAMILIES", "ToyFamily", "get_family"]

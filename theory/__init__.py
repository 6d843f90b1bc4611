"""Formal library for the invariance/sensitivity tradeoff (Tramer et al., ICML 2020)."""

from theory.distances import (
    ClassifierInducedDistance,
    Distance,
    LpDistance,
    MahalanobisDistance,
    TransformInvariantDistance,
    WeightedLpDistance,
    cyclic_shifts,
    get_distance,
)
from theory.oracles import REJECT, FunctionOracle, Oracle, TableOracle, is_reject, predict
from theory.results import Quantity

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
]

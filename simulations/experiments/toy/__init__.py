"""The theory run as experiments on the toy families (``tradeoffs toy ...``).

Modules: :mod:`~invariance_tradeoffs.simulations.experiments.toy.training` (exact robust linear training, adversarial MLP
training), :mod:`~invariance_tradeoffs.simulations.experiments.toy.exact_linear` (exact example regions of a linear model
under a linear oracle), :mod:`~invariance_tradeoffs.simulations.experiments.toy.search` (example searches for other
models), :mod:`~invariance_tradeoffs.simulations.attacks.glyph` (invariance attacks on glyph digits),
:mod:`~invariance_tradeoffs.simulations.experiments.toy.experiments` (the five experiments, each returning a tidy table),
:mod:`~invariance_tradeoffs.simulations.experiments.toy.tables` (CSV/JSON output) and :mod:`~invariance_tradeoffs.simulations.cli.toy`.
"""

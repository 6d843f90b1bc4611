"""The theory run as experiments on the toy families (``tradeoffs toy ...``).

Modules: :mod:`~simulations.experiments.toy.training` (exact robust linear training, adversarial MLP
training), :mod:`~simulations.experiments.toy.exact_linear` (exact example regions of a linear model
under a linear oracle), :mod:`~simulations.experiments.toy.search` (example searches for other
models), :mod:`~simulations.attacks.glyph` (invariance attacks on glyph digits),
:mod:`~simulations.experiments.toy.experiments` (the five experiments, each returning a tidy table),
:mod:`~simulations.experiments.toy.tables` (CSV/JSON output) and :mod:`~simulations.cli.toy`.
"""

"""The theory run as experiments on the toy families (``tradeoffs toy ...``).

Modules: :mod:`~simulations.toy.training` (exact robust linear training, adversarial MLP
training), :mod:`~simulations.toy.exact_linear` (exact example regions of a linear model
under a linear oracle), :mod:`~simulations.toy.attacks` (example searches for other
models), :mod:`~simulations.toy.glyph_attack` (invariance attacks on glyph digits),
:mod:`~simulations.toy.experiments` (the five experiments, each returning a tidy table),
:mod:`~simulations.toy.tables` (CSV/JSON output) and :mod:`~simulations.toy.cli`.
"""

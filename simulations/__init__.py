"""Experiments built on :mod:`theory`: toy simulations, the MNIST instance, figures and the CLI."""

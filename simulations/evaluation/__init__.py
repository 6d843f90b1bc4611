"""Evaluation of models on human-labelled invariance examples: agreement with the human
labels, provably-wrong counts, ceilings and sensitivity-side robust accuracy."""

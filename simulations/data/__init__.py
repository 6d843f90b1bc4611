"""Data: MNIST (:mod:`.mnist`), the authors' release (:mod:`.release`) and its human-labelled
invariance examples (:mod:`.published`), located, fetched and verified."""

"""Experiments: the theory run on toy families (:mod:`.toy`) and the end-to-end reproduction
of the paper (:mod:`.reproduce`)."""

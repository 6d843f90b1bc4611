"""Attacks: sensitivity (PGD) and invariance (l-inf, l0, glyph digits) attacks, and resumable
batch runs of them (:mod:`.runs`)."""

"""Synthetic training data for the model tests (learnable in one epoch, seconds)."""

from __future__ import annotations

import numpy as np


def fake_mnist(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable synthetic digits: class k lights up row block k (plus noise)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 2 * k + 4: 2 * k + 6, 4:24] = 220
    return images, labels

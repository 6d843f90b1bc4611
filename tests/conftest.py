"""Shared fixtures: locations of the reference data beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _mnist_dir() -> Path | None:
    env = os.environ.get("INVARIANCE_TRADEOFFS_DATA")
    for cand in ([Path(env) / "mnist", Path(env)] if env else []) + [SHARED_DATA / "mnist"]:
        if (cand / "train-images-idx3-ubyte.gz").exists() or (
            cand / "train-images-idx3-ubyte"
        ).exists():
            return cand
    return None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Directory with the real MNIST IDX files; skips the test when absent."""
    path = _mnist_dir()
    if path is None:
        pytest.skip("real MNIST not found (set INVARIANCE_TRADEOFFS_DATA or place ../shared/data)")
    return path


@pytest.fixture(scope="session")
def published_dir() -> Path:
    """Directory laid out like the authors' excessive-invariance release; skips when absent."""
    path = SHARED_DATA / "excessive-invariance"
    if not (path / "indexs.npy").exists():
        pytest.skip("published invariance examples not found at ../shared/data")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch in one thread for a test module (restored after it): on a busy 2-core machine
    torch's default two threads are several times slower than one. Nothing without torch."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

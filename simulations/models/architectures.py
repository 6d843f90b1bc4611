"""Network architectures of the zoo: plain ``nn.Sequential`` stacks of Conv2d / Linear /
ReLU / Flatten, so interval bound propagation applies to all of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from invariance_tradeoffs.simulations.optional import nn, require_torch, torch
from invariance_tradeoffs.theory.validation import check_n_classes

__all__ = ["ARCHITECTURES", "build_architecture"]

N_PIXELS = 28 * 28


# --------------------------------------------------------------------------- architectures
def _tiny_cnn(n_classes: int) -> Any:
    # For tests: 2 conv layers, a few thousand parameters.
    return nn.Sequential(
        nn.Conv2d(1, 4, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(4, 8, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 7 * 7, 32), nn.ReLU(), nn.Linear(32, n_classes),
    )


def _small_cnn(n_classes: int) -> Any:
    # The "small" network of Wong & Kolter (2018) / Gowal et al. (2018): two strided
    # conv layers and one hidden dense layer; cheap enough for PGD training on 2 cores.
    return nn.Sequential(
        nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 100), nn.ReLU(), nn.Linear(100, n_classes),
    )


def _wide_cnn(n_classes: int) -> Any:
    # The small network at twice the width (32/64 channels, 200 hidden units): adversarial
    # training needs capacity (Madry et al. 2018); about 1.7x the small network's cost.
    return nn.Sequential(
        nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 200), nn.ReLU(), nn.Linear(200, n_classes),
    )


def _medium_cnn(n_classes: int) -> Any:
    # Gowal et al. (2018) "medium": four conv layers, two dense layers.
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, stride=1, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=1, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU(),
        nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, n_classes),
    )


def _linear(n_classes: int) -> Any:
    return nn.Sequential(nn.Flatten(), nn.Linear(N_PIXELS, n_classes))


#: Architecture name -> builder ``(n_classes) -> nn.Sequential``. Every architecture is
#: a plain ``nn.Sequential`` of Conv2d / Linear / ReLU / Flatten, so interval bound
#: propagation applies to all of them.
ARCHITECTURES: dict[str, Callable[[int], Any]] = {
    "tiny_cnn": _tiny_cnn,
    "small_cnn": _small_cnn,
    "wide_cnn": _wide_cnn,
    "medium_cnn": _medium_cnn,
    "linear": _linear,
}


def build_architecture(arch: str, n_classes: int = 10, seed: int = 0) -> Any:
    """Build a freshly initialised network; the initialisation is fixed by ``seed``.

    Examples
    --------
    >>> net = build_architecture("tiny_cnn", seed=0)  # doctest: +SKIP
    """
    require_torch()
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    n_classes = check_n_classes(n_classes)
    # fork_rng keeps the caller's global RNG untouched while fixing the init.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return ARCHITECTURES[arch](n_classes)

"""PyTorch, an optional dependency, imported in one place.

``torch``, ``nn`` and ``F`` (``torch.nn.functional``) are the modules when PyTorch is
installed and ``None`` otherwise; code that needs them calls :func:`require_torch` first,
which raises an ``ImportError`` saying how to install it. The numpy parts of the package
never need it.
"""

from __future__ import annotations

from typing import Any

try:
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812 - the conventional name
except ImportError:  # pragma: no cover - exercised only without torch
    torch = nn = F = None

__all__ = ["F", "nn", "require_torch", "torch"]


def require_torch() -> Any:
    """Return the ``torch`` module, or raise ``ImportError`` saying how to get it."""
    if torch is None:
        raise ImportError(
            "this part of invariance_tradeoffs needs PyTorch; install it with "
            "pip install 'invariance-tradeoffs[torch]'"
        )
    return torch

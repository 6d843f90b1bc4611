"""PNG grids of MNIST images for a quick look at an attack run (matplotlib, no display)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["save_grid", "save_run_grid"]


def save_grid(
    path: str | os.PathLike,
    columns: Sequence[tuple[str, np.ndarray]],
    *,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
    dpi: int = 80,
) -> Path:
    """Save images as a grid: one row per source, one column per ``(title, images)``.

    Parameters
    ----------
    path : path
        Output ``.png`` file.
    columns : sequence of (str, ndarray)
        Column title and images of shape (n, 28, 28) in [0, 1]; all columns share ``n``.
    row_labels : sequence of str, optional
        One label per row, printed left of the row.
    title : str, optional
        Figure title.
    dpi : int
        Resolution (the default keeps a 10-row grid well under 100 KB).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not columns:
        raise ValueError("columns must not be empty")
    n = len(columns[0][1])
    if n == 0:
        raise ValueError("columns hold no image")
    for name, imgs in columns:
        if np.asarray(imgs).shape != (n, 28, 28):
            raise ValueError(f"column {name!r} must have shape ({n}, 28, 28)")
    if row_labels is not None and len(row_labels) != n:
        raise ValueError(f"row_labels must have {n} entries, got {len(row_labels)}")
    ncol = len(columns)
    fig = Figure(figsize=(1.1 * ncol + (1.4 if row_labels else 0), 1.1 * n + 0.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, ncol, squeeze=False)
    for j, (name, imgs) in enumerate(columns):
        for i in range(n):
            ax = axes[i, j]
            ax.imshow(np.asarray(imgs[i]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
            if j == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[i], fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def save_run_grid(run, path: str | os.PathLike, *, max_rows: int = 10) -> Path:
    """Grid of the first ``max_rows`` sources of an :class:`~simulations.mnist.runner.AttackRun`.

    Columns: source, invariance example and, when the run has it, the aligned target
    neighbour (``extras["neighbours"]``). Rows are labelled ``#index y->target``.
    """
    k = min(max_rows, run.n)
    cols = [("source", run.sources[:k]), ("example", run.examples[:k])]
    if "neighbours" in run.extras:
        cols.append(("target neighbour", run.extras["neighbours"][:k]))
    labels = [
        f"#{int(i)} {int(y)}->{int(t)}\nd={d:.3g}"
        for i, y, t, d in zip(
            run.source_indices[:k],
            run.source_labels[:k],
            run.targets[:k],
            run.distortion[:k],
            strict=True,
        )
    ]
    params = run.params if isinstance(run.params, dict) else {}
    title = " ".join(f"{k}={params[k]}" for k in ("attack", "eps") if k in params)
    return save_grid(path, cols, row_labels=labels, title=title or None)

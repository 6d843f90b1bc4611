"""The one plotting module: every figure of the package is drawn here (matplotlib, Agg).

Each ``plot_*`` function takes plain data (a tidy table -- a list of flat dicts -- or
arrays), draws one figure at paper size (at most 7 inches wide, labelled axes, legends)
and writes it as PNG and PDF with :func:`save_figure`. Output is deterministic: no
timestamps in the PDF metadata, fixed DPI, fixed style.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless, deterministic; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = [
    "STYLE",
    "save_pair_grid",
    "save_figure",
    "plot_good_radii",
    "plot_ceiling_curves",
    "plot_tradeoff_curves",
    "plot_overly_robust",
    "plot_finite_domain",
    "plot_image_grid",
    "save_grid",
    "plot_norm_alignment",
]

#: rcParams used for every figure (paper size, readable fonts).
STYLE: dict[str, object] = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.3,
    "lines.markersize": 4,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,
    "svg.hashsalt": "invariance-tradeoffs",
}

#: One colour per quantity, the same in every figure.
COLORS = {
    "correct": "#1f77b4",
    "sensitivity_robust": "#ff7f0e",
    "invariance_robust": "#2ca02c",
    "real_robust": "#d62728",
    "standard_robust": "#9467bd",
    "robust_and_real": "#8c564b",
    "ceiling": "black",
}
LABELS = {
    "correct": "standard accuracy",
    "sensitivity_robust": "sensitivity-robust acc.",
    "invariance_robust": "invariance-robust acc.",
    "real_robust": "real robust acc.",
    "standard_robust": "lp-robust acc. (f const. on ball)",
    "robust_and_real": "lp-robust and no invariance ex.",
    "ceiling": "ceiling P[r_O > eps] (exact)",
}
NORM_UNITS = {
    "l0": "coordinates changed",
    "l1": "l1 distance",
    "l2": "l2 distance",
    "linf": "l-inf distance",
}


def save_figure(fig: plt.Figure, stem: str | Path, dpi: int = 110) -> list[Path]:
    """Write ``fig`` to ``stem.png`` and ``stem.pdf`` deterministically and close it.

    Returns the two paths. The PDF carries no creation date, so the same data and seed
    give byte-identical files.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    with plt.rc_context(STYLE):
        fig.savefig(png, dpi=dpi, metadata={"Software": None})
        fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": None,
                                   "Creator": None})
    plt.close(fig)
    return [png, pdf]


def _figure(nrows: int, ncols: int, width: float = 7.0, height_per_row: float = 1.9,
            **kw: object) -> tuple[plt.Figure, np.ndarray]:
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, max(1.6, height_per_row * nrows)),
                                 squeeze=False, layout="constrained", **kw)
    for ax in axes.ravel():
        ax.spines["top"].set_visible(False)
        ax.spines["right"].set_visible(False)
    return fig, axes


def _unique(rows: Sequence[Mapping], key: str) -> list:
    seen: list = []
    for row in rows:
        if row[key] not in seen:
            seen.append(row[key])
    return seen


def _select_rows(rows: Sequence[Mapping], **match: object) -> list[Mapping]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def _num(value: object) -> float:
    if value is None:
        return np.nan
    if value in ("inf", "-inf"):
        return float(value)  # type: ignore[arg-type]
    return float(value)  # type: ignore[arg-type]


def _require(rows: Sequence[Mapping], keys: Sequence[str], what: str) -> None:
    if len(rows) == 0:
        raise ValueError(f"{what}: the table is empty")
    missing = [k for k in keys if k not in rows[0]]
    if missing:
        raise ValueError(f"{what}: table lacks columns {missing}")


def plot_good_radii(rows: Sequence[Mapping], stem: str | Path) -> list[Path]:
    """Good radius per norm per family: exact (filled) next to the sample bound (hollow).

    ``rows`` need ``family``, ``norm``, ``good_radius`` (exact) and ``sampled_radius``
    (the minimum margin over a sample: an upper bound). One panel per norm, since the
    norms have different units.
    """
    _require(rows, ["family", "norm", "good_radius", "sampled_radius"], "plot_good_radii")
    norms = _unique(rows, "norm")
    families = _unique(rows, "family")
    fig, axes = _figure(1, len(norms), height_per_row=0.35 * len(families) + 1.0, sharey=True)
    ypos = {fam: i for i, fam in enumerate(families)}
    for ax, norm in zip(axes[0], norms, strict=True):
        sub = _select_rows(rows, norm=norm)
        y = np.array([ypos[r["family"]] for r in sub])
        ex = np.array([_num(r["good_radius"]) for r in sub])
        sm = np.array([_num(r["sampled_radius"]) for r in sub])
        ax.hlines(y, 0, ex, color="0.8", lw=0.8)
        ax.plot(ex, y, "o", color="C0", label="exact eps*")
        ax.plot(sm, y, "x", color="C3", label="min margin of sample (upper bound)")
        ax.set_title(norm)
        ax.set_xlabel(f"eps* ({norm})")
        ax.set_xlim(left=0)
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_yticks(range(len(families)), families)
    axes[0, 0].set_ylim(-0.6, len(families) - 0.4)
    axes[0, 0].invert_yaxis()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    fig.suptitle("Good radius eps*(d) = ess inf r_O(x): largest radius with no class change")
    return save_figure(fig, stem)


def plot_ceiling_curves(rows: Sequence[Mapping], stem: str | Path,
                        curves: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]]
                        | None = None) -> list[Path]:
    """Ceiling P_D[r_O(x) > eps]: exact lines, Monte Carlo points with 95% intervals.

    ``rows`` need ``family``, ``norm``, ``eps``, ``exact``, ``mc``, ``mc_low``,
    ``mc_high``. Families are rows of the grid, norms are columns. ``curves`` maps
    ``(family, norm)`` to a fine grid ``(eps, exact)`` drawn instead of joining the
    table's exact values.
    """
    _require(rows, ["family", "norm", "eps", "exact", "mc", "mc_low", "mc_high"],
             "plot_ceiling_curves")
    families, norms = _unique(rows, "family"), _unique(rows, "norm")
    fig, axes = _figure(len(families), len(norms), height_per_row=1.25)
    for i, fam in enumerate(families):
        for j, norm in enumerate(norms):
            ax = axes[i, j]
            sub = sorted(_select_rows(rows, family=fam, norm=norm), key=lambda r: _num(r["eps"]))
            if not sub:
                ax.axis("off")
                continue
            eps = np.array([_num(r["eps"]) for r in sub])
            if curves is not None and (fam, norm) in curves:
                ax.plot(*curves[fam, norm], "-", color="k", label="exact")
            else:
                ax.plot(eps, [_num(r["exact"]) for r in sub], "-", color="k", label="exact")
            mc = np.array([_num(r["mc"]) for r in sub])
            lo = mc - np.array([_num(r["mc_low"]) for r in sub])
            hi = np.array([_num(r["mc_high"]) for r in sub]) - mc
            ax.errorbar(eps, mc, yerr=[lo, hi], fmt="o", color="C1", ms=2.5, elinewidth=0.8,
                        label="Monte Carlo (95% CI)")
            ax.set_ylim(-0.03, 1.03)
            if i == 0:
                ax.set_title(norm)
            if j == 0:
                ax.set_ylabel(f"{fam}\nP[r_O > eps]")
            ax.set_xlabel(f"eps ({NORM_UNITS.get(norm, norm)})", labelpad=1)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    fig.suptitle("Ceiling P_D[r_O(x) > eps] on lp-robust accuracy free of invariance "
                 "examples (no exact line: no closed form)")
    return save_figure(fig, stem, dpi=100)


def plot_tradeoff_curves(rows: Sequence[Mapping], stem: str | Path,
                         quantities: Sequence[str] = ("correct", "sensitivity_robust",
                                                      "invariance_robust", "real_robust",
                                                      "standard_robust")) -> list[Path]:
    """The trade-off: accuracies of classifiers trained robust at eps, against eps.

    ``rows`` need ``family``, ``model``, ``norm``, ``eps``, ``ceiling``, ``good_radius``
    and each of ``quantities``. One panel per (family, model, norm); the good radius is a
    vertical dotted line; the exact ceiling is black and dashed.
    """
    _require(rows, ["family", "model", "norm", "eps", "ceiling", "good_radius", *quantities],
             "plot_tradeoff_curves")
    panels = []
    for r in rows:
        key = (r["family"], r["model"], r["norm"])
        if key not in panels:
            panels.append(key)
    ncols = min(3, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = _figure(nrows, ncols, height_per_row=2.2)
    for ax, (fam, model, norm) in zip(axes.ravel(), panels, strict=False):
        sub = sorted(_select_rows(rows, family=fam, model=model, norm=norm),
                     key=lambda r: _num(r["eps"]))
        eps = np.array([_num(r["eps"]) for r in sub])
        for q in quantities:
            style = "--" if q == "standard_robust" else "-"
            ax.plot(eps, [_num(r[q]) for r in sub], style, marker=".", color=COLORS[q],
                    label=LABELS[q])
        ax.plot(eps, [_num(r["ceiling"]) for r in sub], ":", color="k", lw=1.6,
                label=LABELS["ceiling"])
        g = _num(sub[0]["good_radius"])
        if np.isfinite(g):
            ax.axvline(g, color="0.4", lw=0.9, ls="-.")
            ax.annotate("eps*", (g, 0.02), xytext=(2, 0), textcoords="offset points",
                        fontsize=7, color="0.3")
        ax.set_ylim(-0.03, 1.03)
        how = "attack" if str(sub[0].get("method", "")).startswith("attack") else "exact"
        ax.set_title(f"{fam}\n{model} classifier, {how}")
        ax.set_xlabel(f"train = test radius eps ({norm})")
        ax.set_ylabel("share of test inputs")
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)
    return save_figure(fig, stem)


def plot_overly_robust(X: np.ndarray, y: np.ndarray, oracle_line: tuple[np.ndarray, float],
                       classifiers: Mapping[float, tuple[np.ndarray, float]],
                       example: tuple[np.ndarray, np.ndarray] | None,
                       weight_rows: Sequence[Mapping], stem: str | Path,
                       feature_names: tuple[str, str] = ("x1 (oracle's feature)",
                                                          "x2 (ignored by the oracle)"),
                       example_eps: float | None = None) -> list[Path]:
    """The overly-robust feature model in 2-D, and where a robust classifier puts its weight.

    Left: data coloured by oracle label, the oracle boundary ``u.x + c = 0``, the
    classifier boundaries ``w.x + b = 0`` for several training radii and one invariance
    example as an arrow ``x -> x*``. Right: ``|w_1| / ||w||_1`` and ``|w_2| / ||w||_1``
    against eps, with the share of test inputs that admit an invariance example.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X must have shape (n, 2) for the 2-D picture, got {X.shape}")
    _require(weight_rows, ["eps", "weight_oracle_feature", "weight_ignored_feature",
                           "invariance_share"], "plot_overly_robust")
    fig, axes = _figure(1, 2, height_per_row=3.0)
    ax = axes[0, 0]
    y = np.asarray(y)
    for cls, marker in ((0, "o"), (1, "s")):
        pts = X[y == cls]
        ax.scatter(pts[:, 0], pts[:, 1], s=5, marker=marker, alpha=0.35, color=f"C{cls}",
                   label=f"O(x) = {cls}", linewidths=0)
    lo, hi = np.percentile(X, [0.5, 99.5], axis=0)
    pad = 0.15 * (hi - lo)
    xlim, ylim = (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])
    _draw_line(ax, *oracle_line, xlim, ylim, color="k", lw=2.0, label="oracle boundary")
    cmap = plt.get_cmap("viridis")
    for k, (eps, (w, b)) in enumerate(sorted(classifiers.items())):
        color = cmap(k / max(1, len(classifiers) - 1))
        _draw_line(ax, np.asarray(w, dtype=float), float(b), xlim, ylim, color=color, ls="--",
                   lw=1.2, label=f"f trained at eps={eps:g}")
    if example is not None:
        x0, x1 = (np.asarray(v, dtype=float) for v in example)
        ax.annotate("", xy=x1, xytext=x0,
                    arrowprops={"arrowstyle": "->", "color": "C3", "lw": 1.8})
        ax.plot(*x0, "o", color="C3", ms=5)
        txt = "invariance example" + (f" (eps={example_eps:g})" if example_eps else "")
        ax.annotate(txt, x1, xytext=(0, -12), textcoords="offset points", color="C3",
                    fontsize=7, ha="center")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(feature_names[0])
    ax.set_ylabel(feature_names[1])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False,
              fontsize=6)
    ax.set_title("(a) data, oracle, robust boundaries")

    ax = axes[0, 1]
    rows = sorted(weight_rows, key=lambda r: _num(r["eps"]))
    eps = [_num(r["eps"]) for r in rows]
    ax.plot(eps, [_num(r["weight_oracle_feature"]) for r in rows], "-o", ms=3,
            label="|w1| / ||w||1 (oracle's feature)")
    ax.plot(eps, [_num(r["weight_ignored_feature"]) for r in rows], "-s", ms=3,
            label="|w2| / ||w||1 (ignored feature)")
    ax.plot(eps, [_num(r["invariance_share"]) for r in rows], "-^", ms=3, color="C3",
            label="share of inputs with an invariance ex.")
    if "good_radius" in rows[0] and np.isfinite(_num(rows[0]["good_radius"])):
        ax.axvline(_num(rows[0]["good_radius"]), color="0.4", ls="-.", lw=0.9, label="eps*")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("training = test radius eps")
    ax.set_ylabel("weight share / share of inputs")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False,
              fontsize=6)
    ax.set_title("(b) weight moves to the ignored feature")
    return save_figure(fig, stem)


def _draw_line(ax: plt.Axes, w: np.ndarray, b: float, xlim: tuple, ylim: tuple,
               **kw: object) -> None:
    """Draw ``w.x + b = 0`` clipped to the axes box (nothing when ``w = 0``)."""
    if abs(w[1]) > 1e-12:
        xs = np.array(xlim)
        ax.plot(xs, -(w[0] * xs + b) / w[1], **kw)
    elif abs(w[0]) > 1e-12:
        ax.plot([-b / w[0]] * 2, list(ylim), **kw)
    else:  # constant classifier: no boundary; still list it in the legend
        ax.plot([], [], **kw)


def plot_finite_domain(rows: Sequence[Mapping], stem: str | Path) -> list[Path]:
    """Finite domains: the exact robust-optimal classifier's error against eps.

    ``rows`` need ``domain``, ``norm``, ``eps``, ``optimal_error`` (exact, D-weighted)
    and ``ceiling``; with ``invariance_share`` (D-share where the classifier is correct
    but has an invariance example) the sum of the two is drawn too: the ceiling theorem
    says it never goes below ``1 - ceiling``.
    """
    _require(rows, ["domain", "norm", "eps", "optimal_error", "ceiling"], "plot_finite_domain")
    panels = []
    for r in rows:
        if (r["domain"], r["norm"]) not in panels:
            panels.append((r["domain"], r["norm"]))
    ncols = min(4, len(panels))
    fig, axes = _figure(int(np.ceil(len(panels) / ncols)), ncols, height_per_row=2.6)
    for ax, (dom, norm) in zip(axes.ravel(), panels, strict=False):
        sub = sorted(_select_rows(rows, domain=dom, norm=norm), key=lambda r: _num(r["eps"]))
        eps = [_num(r["eps"]) for r in sub]
        ax.step(eps, [_num(r["optimal_error"]) for r in sub], where="post", marker=".",
                color="C3", label="error of robust-optimal f (exact)")
        if "invariance_share" in sub[0]:
            ax.step(eps, [_num(r["optimal_error"]) + _num(r["invariance_share"]) for r in sub],
                    where="post", marker="^", ms=3, ls="--", color="C2",
                    label="error + share with an invariance ex. (exact)")
        ax.step(eps, [1 - _num(r["ceiling"]) for r in sub], where="post", ls=":", color="k",
                label="1 - ceiling (exact; a lower bound on the line above)")
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"{dom}\n{norm}")
        ax.set_xlabel(f"eps ({NORM_UNITS.get(norm, norm)})")
        ax.set_ylabel("error on D")
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=1, frameon=False)
    return save_figure(fig, stem)


def plot_image_grid(sources: np.ndarray, examples: np.ndarray, captions: Sequence[str],
                    image_shape: tuple[int, int], stem: str | Path,
                    title: str = "") -> list[Path]:
    """Pairs of images: each source next to its example, with a caption under the example.

    ``sources`` and ``examples`` have shape ``(k, h*w)``; ``captions`` has ``k`` strings.
    """
    sources = np.asarray(sources, dtype=float)
    examples = np.asarray(examples, dtype=float)
    h, w = (int(s) for s in image_shape)
    if sources.shape != examples.shape or sources.ndim != 2 or sources.shape[1] != h * w:
        raise ValueError(f"sources and examples must both have shape (k, {h * w}), got "
                         f"{sources.shape} and {examples.shape}")
    if len(captions) != sources.shape[0]:
        raise ValueError(f"captions must have {sources.shape[0]} entries, got {len(captions)}")
    k = sources.shape[0]
    ncols = min(6, k)
    nrows = int(np.ceil(k / ncols))
    fig, axes = _figure(2 * nrows, ncols, width=min(7.0, 1.15 * ncols),
                        height_per_row=1.05 * h / w + 0.1)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(k):
        r, c = divmod(i, ncols)
        for row, img, lab in ((2 * r, sources[i], "source"), (2 * r + 1, examples[i],
                                                                captions[i])):
            ax = axes[row, c]
            ax.imshow(img.reshape(h, w), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(lab, fontsize=6, pad=2)
    if title:
        fig.suptitle(title)
    return save_figure(fig, stem)


def plot_norm_alignment(rows: Sequence[Mapping], stem: str | Path) -> list[Path]:
    """Good norm vs perfect classifier: 1-NN accuracy per distance, marked by alignment.

    ``rows`` need ``family``, ``distance``, ``aligned`` (bool), ``covered`` (bool) and
    ``nn_accuracy``. Filled markers: aligned and covered (the theorem predicts 1.0).
    """
    _require(rows, ["family", "distance", "aligned", "covered", "nn_accuracy"],
             "plot_norm_alignment")
    families = _unique(rows, "family")
    ncols = min(3, len(families))
    nrows = int(np.ceil(len(families) / ncols))
    fig, axes = _figure(nrows, ncols, height_per_row=2.1)
    for ax, fam in zip(axes.ravel(), families, strict=False):
        sub = _select_rows(rows, family=fam)
        names = [str(r["distance"]) for r in sub]
        acc = [_num(r["nn_accuracy"]) for r in sub]
        good = [bool(r["aligned"]) and bool(r["covered"]) for r in sub]
        for i, (a, g) in enumerate(zip(acc, good, strict=True)):
            ax.plot(a, i, "o" if g else "x", color="C2" if g else "C3", ms=5)
        ax.set_yticks(range(len(names)), names, fontsize=6)
        ax.set_xlim(min(0.4, min(acc) - 0.05), 1.02)
        ax.axvline(1.0, color="0.7", lw=0.8)
        ax.invert_yaxis()
        ax.set_xlabel("accuracy of the 1-NN rule")
        ax.set_title(fam)
    for ax in axes.ravel()[len(families):]:
        ax.axis("off")
    axes[0, 0].plot([], [], "o", color="C2", label="aligned and covered")
    axes[0, 0].plot([], [], "x", color="C3", label="not aligned or not covered")
    axes[0, 0].legend(loc="lower left", frameon=False, fontsize=6)
    return save_figure(fig, stem)


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


def save_pair_grid(
    path: str | os.PathLike,
    sources: np.ndarray,
    examples: np.ndarray,
    captions: Sequence[str],
    *,
    per_row: int = 10,
    title: str | None = None,
    dpi: int = 80,
) -> Path:
    """Compact grid of (source | example) pairs, ``per_row`` pairs a row, each captioned.

    Each cell shows the source and its example side by side, separated by a grey bar,
    under a caption (e.g. the index, the attack's target and each judge's verdict), so
    that a person can check a whole run by eye.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sources, examples = np.asarray(sources), np.asarray(examples)
    n = len(sources)
    if n == 0 or sources.shape != (n, 28, 28) or examples.shape != (n, 28, 28):
        raise ValueError(f"sources and examples must both have shape (n, 28, 28) with n >= 1, "
                         f"got {sources.shape} and {examples.shape}")
    if len(captions) != n:
        raise ValueError(f"captions must have {n} entries, got {len(captions)}")
    if isinstance(per_row, bool) or not isinstance(per_row, int) or per_row < 1:
        raise ValueError(f"per_row must be a positive integer, got {per_row!r}")
    cols = min(per_row, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(1.55 * cols, 1.2 * rows + (0.4 if title else 0.1)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    bar = np.full((28, 2), 0.5)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k < n:
            ax.imshow(np.hstack([sources[k], bar, examples[k]]), cmap="gray", vmin=0, vmax=1)
            ax.set_title(captions[k], fontsize=6, pad=2)
    if title:
        fig.suptitle(title, fontsize=9)
    # leave the top strip to the title (about 0.3 inch)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight() if title else 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def plot_margin_bounds(bounds: Mapping[str, np.ndarray],
                       one_nn: Mapping[str, tuple[float, float, float]],
                       stem: str | Path, *,
                       marks: Mapping[str, float] | None = None,
                       ceilings: Sequence[tuple[str, float, float, float, float]] = (),
                       separations: Mapping[str, float] | None = None) -> list[Path]:
    """Share of images whose margin bound exceeds eps, per distance, and 1-NN accuracy.

    Parameters
    ----------
    bounds : mapping distance -> array
        Per image, the distance to the nearest training image of another class (an
        upper bound on its oracle margin).
    one_nn : mapping distance -> (value, low, high)
        1-NN accuracy and its interval.
    marks : mapping distance -> radius, optional
        A good radius to mark on each panel (e.g. the glyph toy's).
    ceilings : sequence of (name, radius, value, low, high)
        Human-label ceilings, drawn on the l-inf panel.
    separations : mapping name -> value, optional
        Reported l-inf separations (vertical lines on the l-inf panel).
    """
    names = list(bounds)
    ncols = 3
    nrows = -(-(len(names) + 1) // ncols)
    fig, axes = _figure(nrows, ncols, height_per_row=2.3)
    flat = axes.ravel()
    for ax, m in zip(flat, names, strict=False):
        b = np.sort(np.asarray(bounds[m], dtype=float))
        eps = np.linspace(0, float(b.max()) * 1.05 if b.size else 1.0, 400)
        ax.plot(eps, 1 - np.searchsorted(b, eps, side="right") / max(b.size, 1),
                color="C0", label="bound (nearest other class)")
        if marks and m in marks:
            ax.axvline(marks[m], color="C2", ls="--", lw=1, label="glyph good radius")
        if m == "linf":
            for k, (name, radius, v, lo, hi) in enumerate(ceilings):
                ax.errorbar([radius], [v], yerr=[[v - lo], [hi - v]], fmt="o", ms=3,
                            color=f"C{3 + k}", label=f"human ceiling {name}")
            for k, (name, v) in enumerate((separations or {}).items()):
                ax.axvline(v, color="grey", ls=":" if k else "-.", lw=1, label=name)
        unit = "pixels" if m == "l0" else "[0, 1] images"
        ax.set_xlabel(f"eps ({m}, {unit})")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{m} (n={b.size})", fontsize=8)
        ax.legend(fontsize=5, loc="lower left")
    flat[0].set_ylabel("share with bound > eps\n(>= P[r_O > eps])")
    ax = flat[len(names)]
    vals = np.array([one_nn[m][0] for m in names])
    err = np.array([[one_nn[m][0] - one_nn[m][1], one_nn[m][2] - one_nn[m][0]]
                    for m in names]).T
    ax.bar(range(len(names)), vals, yerr=err, color="C1", capsize=3)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(max(0.0, float(vals.min()) - 0.05), 1.0)
    ax.set_title("1-NN accuracy (95% CI)", fontsize=8)
    for extra in flat[len(names) + 1:]:
        extra.set_visible(False)
    return save_figure(fig, stem)

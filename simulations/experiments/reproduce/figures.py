"""Figures of a reproduction run: agreement against training radius, robustness against
agreement, an example grid, and the toy trade-off beside the MNIST one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


# --------------------------------------------------------------------------- figures
def training_eps(info: dict) -> float:
    cfg = info["config"]
    return float(cfg.get("eps", 0.0)) if cfg["method"] in ("pgd", "ibp", "robust_linear") \
        else 0.0


def value_of(q: dict | None) -> float:
    return float("nan") if q is None else float(q["value"])


def make_figures(out: Path, evals: dict, info: dict, published: dict, toy: dict | None,
             grid: dict | None) -> list[str]:
    from invariance_tradeoffs.simulations import plotting

    figs = out / "figures"
    written: list[Path] = []
    sets = list(published["sets"])
    # 1. agreement against training eps
    fig, axes = plotting._figure(1, max(1, len(sets)), width=3.4 * max(1, len(sets)),
                                 height_per_row=2.8)
    for ax, sname in zip(axes.ravel(), sets, strict=False):
        for fam, marker, colour in (("standard+pgd", "o", "C0"), ("ibp", "s", "C3"),
                                    ("linear", "^", "C2")):
            methods = {"standard+pgd": ("standard", "pgd"), "ibp": ("ibp",),
                       "linear": ("logreg", "robust_linear")}[fam]
            pts = sorted((training_eps(info[m]), evals[m]["published"][sname])
                         for m in evals if info[m]["config"]["method"] in methods)
            if fam == "ibp":  # the undefended CNN is the eps = 0 point of both CNN families
                pts = sorted(pts + [(0.0, evals[m]["published"][sname]) for m in evals
                                    if info[m]["config"]["method"] == "standard"],
                             key=lambda p: p[0])
            if not pts:
                continue
            x = [p[0] for p in pts]
            ax.plot(x, [value_of(p[1]["agreement_label_changed"]) for p in pts], "-",
                    marker=marker, color=colour, label=f"{fam}: on label-changed")
            ax.plot(x, [value_of(p[1]["agreement"]) for p in pts], ":", marker=marker,
                    color=colour, label=f"{fam}: overall")
        ax.set_title(sname)
        ax.set_xlabel("training radius eps (l-inf)")
        ax.set_ylabel("agreement with human labels")
        ax.set_ylim(-0.03, 1.03)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    fig.suptitle("Agreement with humans on invariance examples against training eps")
    written += plotting.save_figure(fig, figs / "agreement_vs_eps")
    # 2. robust accuracy against agreement (the trade-off as a scatter)
    linf_sets = [s for s in sets if published["sets"][s]["norm"] == "linf"
                 and published["sets"][s]["radius"] is not None]
    if linf_sets:
        fig, axes = plotting._figure(1, len(linf_sets), width=3.4 * len(linf_sets),
                                     height_per_row=2.8)
        for ax, sname in zip(axes.ravel(), linf_sets, strict=False):
            radius = published["sets"][sname]["radius"]
            for m, e in evals.items():
                test = {round(t["eps"], 6): t for t in e.get("test", [])}
                t = test.get(round(radius, 6))
                y = value_of(t and t["pgd_robust_accuracy"]) if t else float("nan")
                if not np.isfinite(y) and t:
                    y = value_of(t["certified_robust_accuracy"])
                x = value_of(e["published"][sname]["agreement_label_changed"])
                ax.scatter([x], [y], s=18)
                ax.annotate(m, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
            ceil = published["sets"][sname]["ceiling"]["value"]
            ax.axhline(ceil, color="k", ls=":", lw=1.2, label="ceiling (human labels)")
            ax.set_title(sname)
            ax.set_xlabel("agreement with humans on label-changed examples")
            ax.set_ylabel(f"PGD robust accuracy at eps={radius:g} (test)")
            ax.set_xlim(-0.03, 1.03)
            ax.set_ylim(-0.03, 1.03)
        handles, labels = axes.ravel()[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", frameon=False)
        fig.suptitle("Sensitivity robustness against invariance (agreement with humans)")
        written += plotting.save_figure(fig, figs / "robust_vs_agreement")
    # 3. example grid
    if grid is not None:
        written += plotting.plot_image_grid(
            np.asarray(grid["sources"]).reshape(len(grid["captions"]), -1),
            np.asarray(grid["examples"]).reshape(len(grid["captions"]), -1),
            grid["captions"], (28, 28), figs / "examples_grid", title=grid["title"])
    # 4. toy trade-off curve beside the MNIST one
    if toy is not None and evals:
        written += _side_by_side(figs / "toy_vs_mnist", toy, evals, info, published)
    return [str(p.relative_to(out)) for p in written if p.suffix == ".png"]


def _side_by_side(stem: Path, toy: dict, evals: dict, info: dict, published: dict) -> list:
    from invariance_tradeoffs.simulations import plotting

    fig, axes = plotting._figure(1, 2, width=7.6, height_per_row=3.0)
    rows = [r for r in toy["tradeoff"] if r["family"] == "overly-robust"
            and r["model"] == "linear" and r["norm"] == "linf"]
    rows.sort(key=lambda r: r["eps"])
    ax = axes[0, 0]
    eps = [r["eps"] for r in rows]
    for q in ("sensitivity_robust", "invariance_robust", "real_robust"):
        ax.plot(eps, [r[q] for r in rows], marker=".", color=plotting.COLORS[q],
                label=plotting.LABELS[q])
    ax.plot(eps, [r["ceiling"] for r in rows], ":", color="k", label="ceiling")
    ax.set_title("toy: overly-robust family, linear, l-inf (exact)")
    ax.set_xlabel("train = test radius eps")
    ax.set_ylabel("share of test inputs")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=6, frameon=False)
    ax = axes[0, 1]
    sname = next((s for s in published["sets"] if s == "linf/automated_eps04"),
                 next(iter(published["sets"])))
    radius = published["sets"][sname]["radius"] or 0.4
    pts = []
    for m, e in evals.items():
        if info[m]["config"]["method"] not in ("standard", "pgd", "ibp"):
            continue
        test = {round(t["eps"], 6): t for t in e.get("test", [])}
        t = test.get(round(radius, 6))
        pts.append((training_eps(info[m]), m,
                    value_of(t["pgd_robust_accuracy"]) if t else float("nan"),
                    value_of(e["published"][sname]["agreement_label_changed"])))
    pts.sort()
    ax.plot([p[0] for p in pts], [p[2] for p in pts], "o", color=plotting.COLORS[
        "sensitivity_robust"], label=f"PGD robust acc. at {radius:g} (sensitivity)")
    ax.plot([p[0] for p in pts], [p[3] for p in pts], "s", color=plotting.COLORS[
        "invariance_robust"], label="agreement on label-changed (invariance)")
    for p in pts:
        ax.annotate(p[1], (p[0], p[2]), fontsize=5, xytext=(2, 2), textcoords="offset points")
    ax.axhline(published["sets"][sname]["ceiling"]["value"], color="k", ls=":",
               label="ceiling (human labels)")
    ax.set_title(f"MNIST: CNNs, {sname}")
    ax.set_xlabel("training radius eps (l-inf)")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=6, frameon=False)
    fig.suptitle("The trade-off: toy (exact) and MNIST (measured)")
    return plotting.save_figure(fig, stem)


def example_grid(sets: dict, proxy: Any, models: dict, k: int = 12) -> dict | None:
    from invariance_tradeoffs.simulations.models.adapters import to_model_input

    pset = next((s for n, s in sets.items() if n.startswith("linf")), None)
    if pset is None or not models:
        return None
    changed = np.flatnonzero(pset.human_changed)
    pick = np.concatenate([changed, np.flatnonzero(~pset.human_changed)])[:k]
    x = to_model_input(pset.examples[pick])
    name = next((m for m in ("pgd-0.4", "pgd-0.3", "ibp-0.4", "tiny-pgd") if m in models),
                next(iter(models)))
    mlab = models[name].predict(x)
    plab = proxy.predict(x)
    captions = [f"H{h} P{p} M{m} (src {o})" for h, p, m, o in
                zip(pset.human_labels[pick], plab, mlab, pset.original_labels[pick],
                    strict=True)]
    src = np.asarray(pset.sources[pick], dtype=np.float64)
    ex = np.asarray(pset.examples[pick], dtype=np.float64)
    if src.max() > 1:
        src = src / 255.0
    if ex.max() > 1:
        ex = ex / 255.0
    return {"sources": src, "examples": ex, "captions": captions,
            "title": f"{pset.name}: H = human, P = proxy, M = {name}; label-changed first"}

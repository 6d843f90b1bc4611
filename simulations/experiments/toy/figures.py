"""Which figure is drawn from which experiment (the drawing is in :mod:`simulations.plotting`)."""

from __future__ import annotations

from pathlib import Path

from invariance_tradeoffs.simulations import plotting
from invariance_tradeoffs.simulations.experiments.toy.experiments import ExperimentResult

__all__ = ["FIGURES", "draw_figures"]

#: Figure stem -> (experiment name, one-line description).
FIGURES: dict[str, tuple[str, str]] = {
    "good_radii": ("good-norms", "good radius per norm per family, exact vs sample bound"),
    "ceilings": ("good-norms", "ceiling curves, exact lines with Monte Carlo points"),
    "alignment": ("alignment", "1-NN accuracy per distance, aligned or not"),
    "tradeoff": ("tradeoff", "accuracies of eps-robust classifiers against eps"),
    "overly_robust": ("overly-robust", "2-D picture of the overly-robust feature model"),
    "finite_domains": ("overly-robust", "robust-optimal classifier error on finite domains"),
    "glyph_examples": ("glyph-attacks", "grid of glyph invariance examples"),
}


def draw_figures(results: dict[str, ExperimentResult], out_dir: str | Path) -> list[Path]:
    """Draw every figure whose experiment is in ``results``; return the files written."""
    out = Path(out_dir)
    written: list[Path] = []
    if "good-norms" in results:
        t = results["good-norms"].tables
        written += plotting.plot_good_radii(t["good_radii"], out / "good_radii")
        written += plotting.plot_ceiling_curves(t["ceilings"], out / "ceilings",
                                                results["good-norms"].figure_data.get("curves"))
    if "alignment" in results:
        written += plotting.plot_norm_alignment(results["alignment"].tables["alignment"],
                                                out / "alignment")
    if "tradeoff" in results:
        written += plotting.plot_tradeoff_curves(results["tradeoff"].tables["tradeoff"],
                                                 out / "tradeoff")
    if "overly-robust" in results:
        res = results["overly-robust"]
        fd = res.figure_data
        written += plotting.plot_overly_robust(
            fd["X"], fd["y"], fd["oracle_line"], fd["classifiers"], fd["example"],
            res.tables["overly_robust"], out / "overly_robust", example_eps=fd["example_eps"])
        written += plotting.plot_finite_domain(res.tables["finite_domains"],
                                               out / "finite_domains")
    if "glyph-attacks" in results:
        fd = results["glyph-attacks"].figure_data
        if "sources" in fd:
            written += plotting.plot_image_grid(
                fd["sources"], fd["examples"], fd["captions"], fd["image_shape"],
                out / "glyph_examples",
                title=f"l-inf invariance attack at eps={fd['eps']:g} against f = {fd['model']}\n"
                      "caption: O = oracle label of source -> of example; f = model's label "
                      "of the example")
    return written

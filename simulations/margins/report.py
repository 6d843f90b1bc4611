"""``tradeoffs mnist margins``: the whole computation, its summary, table and figure.

:func:`run_margins` computes, on real MNIST,

* the exact nearest training image of every class for all 10000 test images under l0
  (binarised), l1, l2 and l-inf (``nearest_test.npz``), and the train-train separation
  over the 60000 training images (``separation_train.npz``, see
  :func:`~invariance_tradeoffs.simulations.margins.margins.separation_arrays`);
* the transformation-invariant l2 for the first ``n_ti`` test images
  (``ti_test_<n>.npz``);

and writes ``margins.json`` (every number tagged exact / bound / estimate) and the figure
``margins.png``: the share of test images whose margin bound exceeds ``eps`` against
``eps`` per distance, with the human-label ceilings of the published l-inf sets and the
good radii of MNIST-sized glyph digits marked, and the 1-NN accuracy per distance.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from invariance_tradeoffs.simulations.margins.margins import (
    ALL_DISTANCES,
    crossing_table,
    margin_summary,
    nearest_arrays,
    nearest_other,
    separation_arrays,
    ti_arrays,
)
from invariance_tradeoffs.simulations.margins.search import METRICS, ExactSearch

__all__ = [
    "YANG_SEPARATION",
    "glyph_radii",
    "human_ceilings",
    "margins_figure",
    "margins_for_report",
    "margins_table",
    "read_margins",
    "run_margins",
]

#: l-inf separation of MNIST reported by Yang et al. (NeurIPS 2020, "A Closer Look at
#: Accuracy vs. Robustness", Table 1): minimum distance between differently labelled
#: training images, and between a test image and a training image of another class.
YANG_SEPARATION: dict[str, float] = {"train-train": 0.737, "test-train": 0.812}

#: The glyph family drawn on MNIST's 28 x 28 canvas (strokes 4 pixels thick): its good
#: radii are exact and comparable in scale with MNIST distances.
GLYPH_PARAMS: dict = {"height": 28, "width": 28, "thickness": 4}

#: Radii at which the summary reads the bound's share, per distance (l0 in pixels, the
#: others in [0, 1] pixel units); the glyph good radius is added to each.
EPS_MARKS: dict[str, tuple[float, ...]] = {
    "l0": (10.0, 20.0, 40.0), "l1": (10.0, 20.0, 40.0), "l2": (2.0, 3.0, 4.0),
    "linf": (0.3, 0.4, 0.8), "ti_l2": (2.0, 3.0, 4.0)}


def glyph_radii() -> dict[str, float]:
    """Exact good radius of MNIST-sized glyph digits under each norm (pixel units in [0, 1])."""
    from invariance_tradeoffs.theory.toys.glyphs import GlyphDigits

    fam = GlyphDigits(**GLYPH_PARAMS)
    return {n: float(fam.good_radius(n).value) for n in METRICS}


def human_ceilings(sets) -> dict[str, dict]:
    """Ceiling (share of sources whose human label is unchanged) of each published l-inf
    set, computed by :func:`~invariance_tradeoffs.simulations.evaluation.agreement.ceiling`."""
    from invariance_tradeoffs.simulations.evaluation.agreement import ceiling

    return {name: {"radius": s.radius,
                   "ceiling": ceiling(s.human_labels, s.original_labels, radius=s.radius)}
            for name, s in sets.items() if s.norm == "linf" and s.radius is not None}


def run_margins(
    out_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    published_dir: str | os.PathLike | None = None,
    n_ti: int = 1000,
    train_separation: bool = True,
    n_test: int = 10000,
    progress: bool = True,
) -> dict:
    """Compute everything of the module docstring in ``out_dir`` (resumable); return the
    summary also written to ``<out_dir>/margins.json``.

    Parameters
    ----------
    n_ti : int
        Test images (the first ones) for the transformation-invariant l2 (0: skip).
    train_separation : bool
        Also search all 60000 training images (train-train separation; about six times
        the test run).
    n_test : int
        Test images (the first ones) for the four exact distances (10000: all).
    """
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.io import write_json
    from invariance_tradeoffs.theory.validation import check_int

    n_ti = check_int(n_ti, "n_ti", low=0, high=10000)
    n_test = check_int(n_test, "n_test", low=1, high=10000)
    out_dir = Path(out_dir)
    train, test = load_mnist("train", data_dir), load_mnist("test", data_dir)
    times: dict[str, float] = {}
    start = time.perf_counter()
    search = ExactSearch(train.images, train.labels)
    times["index"] = time.perf_counter() - start
    start = time.perf_counter()
    suffix = "" if n_test == 10000 else f"_{n_test}"
    arrays, _ = nearest_arrays(test.images[:n_test], test.labels[:n_test], search, out_dir,
                               f"nearest_test{suffix}", progress=progress)
    times["test"] = time.perf_counter() - start
    results: dict = {"n_test": n_test, "n_ti": n_ti, "seconds": times,
                     "glyph_radii": glyph_radii(), "glyph_params": GLYPH_PARAMS,
                     "yang_separation": YANG_SEPARATION}
    radii = results["glyph_radii"]
    summaries = {m: margin_summary(arrays, m, (*EPS_MARKS[m], radii[m])) for m in METRICS}
    if train_separation:
        start = time.perf_counter()
        tr_arrays, _ = separation_arrays(train.images, train.labels, search, out_dir,
                                         "separation_train", progress=progress)
        times["train"] = time.perf_counter() - start
        for m in METRICS:
            bounds = nearest_other(tr_arrays, m)
            i = int(np.argmin(bounds))
            summaries[m]["train_separation"] = {
                "value": float(bounds[i]), "kind": "exact", "image": i,
                "method": f"smallest {m} distance between differently labelled training "
                          "images (all 60000)"}
    del search
    if n_ti:
        from invariance_tradeoffs.simulations.attacks.alignment import NeighbourIndex

        start = time.perf_counter()
        ti, _ = ti_arrays(test.images[:n_ti], test.labels[:n_ti],
                          NeighbourIndex(train.images, train.labels), out_dir,
                          f"ti_test_{n_ti}", progress=progress)
        times["ti"] = time.perf_counter() - start
        summaries["ti_l2"] = margin_summary(ti, "ti_l2", (*EPS_MARKS["ti_l2"], radii["l2"]))
        # the exact distances on the same images, for a like-for-like 1-NN comparison
        same = {k: v[:n_ti] for k, v in arrays.items() if k != "classes"}
        same["classes"] = arrays["classes"]
        results["one_nn_first_ti"] = {m: margin_summary(same, m)["one_nn"] for m in METRICS}
    results["distances"] = summaries
    try:
        from invariance_tradeoffs.simulations.data.published import load_published_examples

        sets = load_published_examples(published_dir, data_dir=data_dir)
        results["human_ceilings"] = human_ceilings(sets)
        results["crossing"] = {name: {m: crossing_table(s, arrays, m) for m in METRICS}
                               for name, s in sets.items()
                               if s.norm == "linf" and int(s.source_indices.max()) < n_test}
    except FileNotFoundError as exc:
        results["human_ceilings"], results["crossing"] = {}, {}
        results["published_missing"] = str(exc)
    write_json(out_dir / "margins.json", results)
    bounds = {m: nearest_other(arrays, m) for m in METRICS}
    if n_ti:
        bounds["ti_l2"] = nearest_other(ti, "ti_l2")
    margins_figure(out_dir / "margins.png", bounds, results)
    return results


def _val(q) -> float:
    return float(q["value"] if isinstance(q, dict) else q.value)


def _ci(q) -> tuple[float, float]:
    d = q if isinstance(q, dict) else q.to_dict()
    return float(d["low"]), float(d["high"])


def margins_figure(path: str | os.PathLike, bounds: dict[str, np.ndarray],
                   results: dict) -> Path:
    """P[bound > eps] against eps per distance (human ceilings, glyph radii and Yang et
    al.'s separations marked) and the 1-NN accuracy per distance; PNG (and PDF)."""
    from invariance_tradeoffs.simulations.plotting import plot_margin_bounds

    names = [m for m in ALL_DISTANCES if m in bounds]
    one_nn = {m: (_val(q), *_ci(q)) for m in names
              if (q := results["distances"][m]["one_nn"]) is not None}
    glyph = results.get("glyph_radii", {})
    ceilings = [(name, h["radius"], _val(h["ceiling"]), *_ci(h["ceiling"]))
                for name, h in sorted(results.get("human_ceilings", {}).items())]
    separations = {f"Yang et al. {k}": v for k, v in results.get("yang_separation", {}).items()}
    path = Path(path)
    plot_margin_bounds({m: bounds[m] for m in names}, one_nn, path.with_suffix(""),
                       marks={m: glyph["l2" if m == "ti_l2" else m] for m in names
                              if ("l2" if m == "ti_l2" else m) in glyph},
                       ceilings=ceilings, separations=separations)
    return path.with_suffix(".png")


def margins_table(results: dict) -> str:
    """Markdown table of the summary (one row per distance)."""
    head = ("| distance | n | 1-NN accuracy (95% CI) | test-train separation (exact) | "
            "train-train separation (exact) | median bound | share of test images with "
            "bound > eps (upper bound on P[r_O > eps]) |")
    lines = [head, "|" + "---|" * 7]
    for m, s in results["distances"].items():
        q = s["one_nn"]
        lo, hi = _ci(q)
        extra = q["extra"] if isinstance(q, dict) else q.extra
        ties = (f" ({extra['ties']} ties; {extra['if_ties_won']:.4f} if won)"
                if extra.get("ties") else "")
        tt = s.get("train_separation")
        train_sep = "-" if tt is None else f"{tt['value']:.4g}"
        shares = {float(k): v for k, v in s.get("share_above", {}).items()}
        cells = ", ".join(f"{e:g}: {_val(v):.4f}" for e, v in sorted(shares.items()))
        lines.append(
            f"| {m} | {s['n']} | {_val(q):.4f} [{lo:.4f}, {hi:.4f}]{ties} | "
            f"{_val(s['separation']):.4g} | {train_sep} | {s['median_bound']:.4g} | "
            f"{cells} |")
    return "\n".join(lines)


def read_margins(folder: str | os.PathLike) -> dict:
    """``margins.json`` of a ``tradeoffs mnist margins`` folder (its figure must exist)."""
    import json

    folder = Path(folder)
    summary, figure = folder / "margins.json", folder / "margins.png"
    for f in (summary, figure):
        if not f.is_file():
            raise FileNotFoundError(f"margins folder {folder} has no {f.name}; run "
                                    f"`tradeoffs mnist margins --out {folder}` first")
    try:
        return json.loads(summary.read_text())
    except ValueError as exc:
        from invariance_tradeoffs.simulations.io import CorruptFileError

        raise CorruptFileError(summary, str(exc), "rerun `tradeoffs mnist margins`",
                               what="margins summary") from exc


def margins_for_report(folder: str | os.PathLike, out: str | os.PathLike) -> dict:
    """The REPORT.md section of a margins folder: its figure copied to ``out`` and the
    table, human ceilings and the comparison with Yang et al. as markdown lines."""
    import shutil

    res = read_margins(folder)
    figure = Path(out) / "figures" / "margins.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(folder) / "margins.png", figure)
    lines = ["", "## Oracle-margin bounds from the data (`tradeoffs mnist margins`)", "",
             f"From `{folder}` ({res['n_test']} test images; transformation-invariant l2 "
             f"on the first {res['n_ti']}). The distance from a test image to the nearest "
             "training image of another class is an upper bound on its oracle margin "
             "(if the labels are right); the share above eps is an upper bound on the "
             "ceiling P[r_O > eps]. Separations are exact minima on the sample; 1-NN "
             "accuracy is an estimate (95% Clopper-Pearson).", "",
             margins_table(res), ""]
    for name, h in sorted(res.get("human_ceilings", {}).items()):
        lines.append(f"- human-label ceiling {name} (l-inf {h['radius']:g}): "
                     f"{_val(h['ceiling']):.2f} [{_ci(h['ceiling'])[0]:.2f}, "
                     f"{_ci(h['ceiling'])[1]:.2f}]")
    linf = res["distances"].get("linf", {})
    yang = res.get("yang_separation", {})
    if linf and yang:
        tt = linf.get("train_separation")
        train_sep = "not computed" if tt is None else f"{tt['value']:.4f}"
        lines.append(f"- l-inf separation: test-train {_val(linf['separation']):.4f} "
                     f"(Yang et al. report {yang['test-train']}), train-train {train_sep} "
                     f"(Yang et al. report {yang['train-train']})")
    return {"figure": "figures/margins.png", "lines": lines, "summary": res}

"""Experiment 5: model-free invariance attacks on glyph digits, scored by the known oracle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from invariance_tradeoffs.simulations.attacks.glyph import (
    l0_invariance_attack,
    linf_invariance_attack,
    score_attack,
)
from invariance_tradeoffs.simulations.experiments.toy.config import (
    ExperimentResult,
    ToyConfig,
    quantity_columns,
    sweep,
)
from invariance_tradeoffs.simulations.experiments.toy.tables import Row
from invariance_tradeoffs.simulations.experiments.toy.training import (
    fit_adversarial_mlp,
)
from invariance_tradeoffs.theory.oracles import REJECT
from invariance_tradeoffs.theory.results import proportion_estimate
from invariance_tradeoffs.theory.toys import (
    get_family,
)


@threadpool_limits.wrap(limits=1)
def glyph_attacks(config: ToyConfig | None = None, *,
                  linf_radii: Sequence[float] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5),
                  l0_budgets: Sequence[int] = (2, 4, 6, 8, 12, 16, 24, 32),
                  robust_eps: float = 0.25, grid_eps: float = 0.3) -> ExperimentResult:
    """Experiment 5: invariance attacks on glyph digits, scored by the known oracle.

    Two models are attacked: a standard MLP and one adversarially trained at l-inf
    ``robust_eps`` (beyond the glyphs' l-inf good radius 0.15). For each l-inf radius
    and l0 budget, the model-free attacks of :mod:`simulations.attacks.glyph` are
    run on held-out glyphs; the table gives the shares (95% Clopper-Pearson) whose
    oracle label truly changed, changed to the attack's target, became no digit, and
    for which the model kept its label (invariance success = changed and kept). Also
    the exact margin of each source bounds the attack from below: ``distortion >=
    r_O(x)`` whenever the label changed (column ``below_margin`` counts violations).

    The second table, ``glyph_smallest``, is the search for the smallest change: per
    model and norm, the share of sources for which some radius of the grid gives an
    invariance example, and for those the smallest such radius next to the source's
    exact margin ``r_O(x)`` (no change below it can alter the digit).
    """
    config = config or ToyConfig()
    fam = get_family("glyph-digits")
    X, y = fam.sample(config.n_glyph_train, seed=config.seed)
    pool, pool_y = fam.sample(config.n_glyph_train, seed=config.seed + 3)
    src, src_y = fam.sample(config.n_glyph_attack, seed=config.seed + 4)
    models = sweep(
        lambda eps: fit_adversarial_mlp(X, y, norm="linf", eps=eps, hidden=(64,),
                                        epochs=max(8, config.mlp_epochs // 2),
                                        clip=(0.0, 1.0), seed=config.seed),
        [(0.0,), (robust_eps,)], config, "glyph models")
    names = ["standard MLP", f"l-inf adv. trained MLP (eps={robust_eps:g})"]
    margins = {"linf": fam.margin(src, "linf"), "l0": fam.margin(src, "l0")}
    rows: list[Row] = []
    smallest_rows: list[Row] = []
    picture = None
    for norm, radii in (("linf", linf_radii), ("l0", l0_budgets)):
        smallest = np.full((len(models), src.shape[0]), np.inf)
        for r in sorted(radii):
            res = (linf_invariance_attack(src, src_y, pool, pool_y, float(r)) if norm == "linf"
                   else l0_invariance_attack(src, src_y, pool, pool_y, int(r)))
            for name, model in zip(names, models, strict=True):
                sc = score_attack(res, fam, model)
                changed = sc["masks"]["oracle_changed"]
                row: Row = {"model": name, "norm": norm, "radius": float(r), "n": sc["n"],
                            "mean_distortion": float(res["distortion"].mean()),
                            "model_accuracy_on_sources": float(
                                (model.predict(src) == src_y).mean())}
                for key in ("oracle_changed", "oracle_target", "oracle_reject", "model_kept",
                            "invariance"):
                    row.update(quantity_columns(sc[key], key))
                row["below_margin"] = int(np.sum(changed & (res["distortion"]
                                                            < margins[norm] - 1e-9)))
                rows.append(row)
                k = names.index(name)
                hit = sc["masks"]["invariance"] & np.isinf(smallest[k])
                smallest[k, hit] = float(r)
                if norm == "linf" and abs(r - grid_eps) < 1e-9 and name == names[1]:
                    picture = (res, sc)
        for k, name in enumerate(names):
            found = np.isfinite(smallest[k])
            q = quantity_columns(proportion_estimate(int(found.sum()), src.shape[0],
                                       "share of sources with an invariance example on the "
                                       "grid"), "found")
            smallest_rows.append({
                "model": name, "norm": norm, "n": int(src.shape[0]), **q,
                "median_smallest_radius": float(np.median(smallest[k, found]))
                if found.any() else None,
                "median_exact_margin": float(np.median(margins[norm][found]))
                if found.any() else None,
                "min_ratio_to_margin": float(np.min(smallest[k, found] / margins[norm][found]))
                if found.any() else None,
                "grid": " ".join(f"{r:g}" for r in sorted(radii)),
            })
    fig: dict[str, Any] = {"image_shape": fam.image_shape}
    if picture is not None:
        res, sc = picture
        o, f = sc["oracle_labels"], sc["model_labels"]
        order = np.argsort(~sc["masks"]["invariance"], kind="stable")[:12]
        fig.update(sources=res["sources"][order], examples=res["examples"][order],
                   captions=[_caption(int(res["source_labels"][i]), int(o[i]), int(f[i]))
                             for i in order], eps=grid_eps, model=names[1])
    return ExperimentResult({"glyph_attacks": rows, "glyph_smallest": smallest_rows}, fig)


def _caption(src: int, oracle: int, model: int) -> str:
    o = "none" if oracle == REJECT else str(oracle)
    return f"O: {src}->{o}, f: {model}"

"""``REPORT.md`` of a reproduction run: ``report_template.md`` filled with its results."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template

import numpy as np

from invariance_tradeoffs.simulations.evaluation.proxy_validation import select_ink_threshold
from invariance_tradeoffs.simulations.experiments.reproduce.config import (
    FULL_MODELS,
    ReproduceConfig,
)
from invariance_tradeoffs.simulations.experiments.reproduce.figures import training_eps, value_of


# --------------------------------------------------------------------------- report
def fmt(q: dict | None, pct: bool = False) -> str:
    if q is None:
        return "-"
    v = q["value"]
    if q.get("kind") == "estimate" and q.get("low") is not None:
        return f"{v:.3f} [{q['low']:.2f}, {q['high']:.2f}]"
    return f"{v:.3f}" if not float(v).is_integer() else f"{int(v)}"


def _block(lines: list[str]) -> str:
    """Lines as a template block: each ends with a newline, so an empty block vanishes."""
    return "".join(f"{line}\n" for line in lines)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(r) + " |" for r in rows)]


def render_report(out: Path, command: str, config: ReproduceConfig, res: dict) -> str:
    """``REPORT.md``: ``report_template.md`` (the fixed prose and layout) filled with the
    run's results, section by section."""
    pub, info, evals, prox, att = (res["published"], res["models"], res["evals"],
                                   res["proxy"], res["attack"])
    sets = list(pub["sets"])
    fields = {
        "command": command, "mode": config.mode,
        "scope": _block(_scope(config, res)),
        "rate_rows": _block(_rate_rows(pub)),
        "ceiling_rows": _block(_ceiling_rows(pub)),
        "direction": _block(_direction(evals, info, sets)),
        "n_test": config.n_test, "pgd_steps": config.pgd_steps,
        "pgd_restarts": config.pgd_restarts,
        "n_test_pgd": min(config.n_test_pgd or config.n_test, config.n_test),
        "autoattack_note": (
            f", AutoAttack (standard ensemble: APGD-CE, APGD-T, FAB-T, Square) on the first "
            f"{min(config.n_test_autoattack, config.n_test)}" if config.n_test_autoattack
            else ""),
        "model_table": _block(_model_table(config, info, evals, sets)),
        "proxy_name": prox["name"], "proxy_description": prox["description"],
        "proxy_rows": _block(_proxy_rows(prox)),
        "proxy_sweep": _block(_proxy_sweep(prox, config)),
        "proxy_ranking": _block(_proxy_ranking(prox)),
        "n_sources": att["n_sources"], "alignment_seconds": f"{att['alignment_seconds']:.1f}",
        "attack_rows": _block(_attack_rows(att)),
        "saved_runs": _block(_saved_runs(res.get("runs", {}))),
        "l0": _block(_l0(res.get("l0")) + _judges(res.get("judges"))),
        "toy": _block(_toy(res.get("toy"))),
        "margins": _block(res["margins"]["lines"] if res.get("margins") else []),
        "figures": _block([f"![{Path(f).stem}]({f})" for f in res["figures"]]),
        "seconds": _block([f"| {k} | {v} |" for k, v in res["seconds"].items()]),
        "model_keys": _block([f"- `{m}`: {i['status']}"
                              + (f", key `{i['key']}`" if "key" in i else "")
                              for m, i in info.items()]),
    }
    return _TEMPLATE.substitute(fields)


_TEMPLATE = Template((resources.files(__package__) / "report_template.md").read_text())


def _rate_rows(pub: dict) -> list[str]:
    lines = []
    for name, r in pub["sets"].items():
        paper = "-" if r["paper_rate"] is None else f"{r['paper_rate']:.0%}"
        lines.append(f"| {name} | {paper} | {fmt(r['human_change_rate'])} | "
                     f"{fmt(r['ceiling'])} |")
    for name, r in pub["quoted_only"].items():
        lines.append(f"| {name} (not in the data folder) | {r['paper_rate']:.0%} (quoted) | "
                     "not available | - |")
    return lines


def _ceiling_rows(pub: dict) -> list[str]:
    return [f"- eps = {r['radius']:g} ({name}): at most {r['ceiling']['value']:.2f} "
            f"(95% CI [{r['ceiling']['low']:.3f}, {r['ceiling']['high']:.3f}], "
            f"n = {r['ceiling']['n']}) -- estimate from the human labels"
            for name, r in pub["sets"].items() if r["radius"] is not None]


def _model_table(config: ReproduceConfig, info: dict, evals: dict, sets: list[str]
                 ) -> list[str]:
    head = ["model", "train eps", "clean"]
    aa = bool(config.n_test_autoattack)
    for e in config.eval_eps:
        head += [f"PGD {e:g}", *([f"AA {e:g}"] if aa else []), f"cert. {e:g}"]
    for s in sets:
        head += [f"agree {s}", f"agree chg {s}", f"prov. wrong {s}"]
    rows = []
    for m, i in info.items():
        if m not in evals:
            rows.append([m, "-", f"{i['status']}: not evaluated"] + ["-"] * (len(head) - 3))
            continue
        e = evals[m]
        tests = e.get("test", [])
        row = [m, f"{training_eps(i):g}", fmt(tests[0]["clean_accuracy"]) if tests else "-"]
        for t in tests:
            row += [fmt(t["pgd_robust_accuracy"]),
                    *([fmt(t.get("autoattack_robust_accuracy"))] if aa else []),
                    fmt(t["certified_robust_accuracy"])]
        for s in sets:
            p = e["published"][s]
            pw = p["provably_wrong"]
            row += [fmt(p["agreement"]), fmt(p["agreement_label_changed"]),
                    "-" if pw is None else f"{int(pw['value'])}/{p['n_label_changed']}"]
        rows.append(row)
    return _table(head, rows)


def _proxy_rows(prox: dict) -> list[str]:
    v = prox["validation"]
    return [f"| {name} | {fmt(r['agreement'])} | {fmt(r['agreement_label_changed'])}"
            f" | {fmt(r['agreement_unchanged'])} | {fmt(r['proxy_change_rate'])} | "
            f"{fmt(r['human_change_rate'])} |"
            for name, r in [*v["sets"].items(), ("pooled", v["pooled"])]]


def _proxy_sweep(prox: dict, config: ReproduceConfig) -> list[str]:
    sweep = prox.get("ink_threshold_sweep") or []
    if not sweep:
        return []
    rule = select_ink_threshold([{**r, "clean_accuracy": r["clean_accuracy"]["value"]}
                                 for r in sweep])
    intro = (f"Ink threshold (grey strokes of this intensity count as ink; "
             f"configured: {prox['config']['ink_threshold']:g}; the label-free rule -- "
             f"smallest threshold within 0.5 points of the clean accuracy at 1 -- picks "
             f"{rule:g} on these {config.n_test} test images):")
    rows = [[f"{r['ink_threshold']:g}", fmt(r["clean_accuracy"]),
             fmt(r["validation"]["agreement"]), fmt(r["validation"]["agreement_label_changed"])]
            for r in sweep]
    return ["", intro, "", *_table(["ink threshold", "clean accuracy", "agreement (pooled)",
                                    "on label-changed"], rows)]


def _proxy_ranking(prox: dict) -> list[str]:
    ranking = prox.get("ranking")
    if not ranking:
        return []
    intro = ("What limits the proxy: how well its score 1 - p(source) ranks the human "
             "label changes (AUC, exact for the sample), the best agreement any threshold "
             "on that score reaches on the same set (in-sample, optimistic: no rule of "
             "this form does better here), and the agreement of the threshold fitted on "
             "the other set(s) (out-of-sample):")
    rows = []
    for name, r in ranking["sets"].items():
        tr = (ranking.get("transfer") or {}).get(name)
        rows.append([name, "-" if r["auc"] is None else f"{r['auc']:.3f}",
                     f"{fmt(r['best_threshold_agreement'])} (threshold "
                     f"{r['best_threshold']:.3f})", "-" if tr is None else fmt(tr["agreement"])])
    return ["", intro, "", *_table(["set", "AUC", "best-threshold agreement (in-sample)",
                                    "threshold from the other sets (out-of-sample)"], rows)]


def _attack_rows(att: dict) -> list[str]:
    lines = []
    for e, r in att["radii"].items():
        ident = (f"{r['identical_to_published']}/{att['n_sources']}"
                 if "identical_to_published" in r else "no published set")
        lines.append(f"| {e} | {ident} | {fmt(r.get('human_label_change_rate_on_identical'))}"
                     f" | {fmt(r['proxy_label_change_rate'])} (proxy estimate) | "
                     f"{fmt(r.get('proxy_vs_human_on_these_sources'))} |")
    return lines


def _saved_runs(runs: dict) -> list[str]:
    return [f"- saved run `{name}` ({r['attack']}, {r['n_examples']} examples of "
            f"{r['n_sources']} sources): label-change rate "
            f"{fmt(r.get('proxy_label_change_rate'))} (proxy estimate)"
            for name, r in runs.items()]


def _l0(l0: dict | None) -> list[str]:
    if not l0:
        return []
    succ = l0["median_l0_successes"]
    return ["", "## The project's l0 invariance attack on the published sources", "",
            f"Model-free (edits taken from aligned training images, accepted by the "
            f"k-NN judge): {l0['n_sources']} sources, {l0['params'].get('budget')} budget, "
            f"{l0['params'].get('training_set')}; {l0['seconds']:.0f} s. Binarised "
            f"pixels changed (exact counts): median **{l0['median_l0_all']:g}** over all "
            f"sources (a failure counts as infinite), "
            f"{'-' if succ is None else f'{succ:g}'} over the "
            f"{l0['n_examples']} examples found, {l0['n_failures']} failures; the "
            f"published l0 attack: median {l0['published_median_l0']} (quoted). "
            f"Label-change rate: {fmt(l0.get('proxy_label_change_rate'))} (proxy "
            f"estimate; the paper's humans: 55% for its l0 set, quoted). Run: "
            f"`runs/l0_all.npz` (+ `.png` grid)."]


def _judges(judges: dict | None) -> list[str]:
    if not judges:
        return []
    val, l0 = judges["validation"], judges["l0"]
    rows = [[j, s, f"{r['n']} ({r['n_label_changed']})", fmt(r["agreement"]),
             fmt(r["agreement_label_changed"]), fmt(r["agreement_unchanged"]),
             fmt(r["reject_rate"])]
            for j, res in val.items()
            for s, r in [*res["sets"].items(), ("pooled", res["pooled"])]]
    return ["", "## Judges: agreement with the human labels, and their reading of the l0 "
            "examples", "",
            f"k-NN vote (10 neighbours, binarised training set), analysis-by-synthesis VAEs "
            f"(`{judges['abs_config']}`, reject label), the proxy above, and their mean "
            "(docs/judges.md). Fitted on MNIST training data only; a reject never agrees "
            "with these human labels.", "",
            *_table(["judge", "set", "n (changed)", "agreement", "on label-changed",
                     "on unchanged", "rejected"], rows), "",
            "Judged label-change rate of the l0 run's examples (a failure counts as "
            "unchanged; a reject as changed); verdict grid `runs/" + judges["l0_grid"] + "`:",
            "", *_table(["judge", "changed", "reads as the target", "rejected"],
                        [[j, fmt(r["changed"]), fmt(r["reads_as_target"]),
                          fmt(r["rejected"])] for j, r in l0.items()])]


def _toy(toy: dict | None) -> list[str]:
    if not toy:
        return []
    rows = [[r["family"], r["norm"], f"{r['good_radius']:.4g}", r.get("good_radius_kind", "")]
            for r in toy["good_radii"]]
    return ["", "## Toy summary (exact where stated)", "",
            *_table(["family", "norm", "good radius", "kind"], rows),
            "", "Trade-off tables: `toy/tradeoff.csv`."]


def _scope(config: ReproduceConfig, res: dict) -> list[str]:
    """What this run found and what it cannot show (the top of REPORT.md)."""
    pub = res["published"]
    found = [f"`{n}` ({r['n']} examples)" for n, r in pub["sets"].items()]
    lines = ["## What this run covers", "",
             f"- Published sets found in `{pub.get('folder', '?')}`: "
             + (", ".join(found) if found else "none") + "."]
    for name, why in pub.get("missing", {}).items():
        lines.append(f"- **Missing** `{name}`: {why}. Its paper rate is quoted below, not "
                     "recomputed; `tradeoffs mnist download` fetches the release.")
    trained = [t["job"] for t in res.get("training", [])]
    status = {m: i["status"] for m, i in res["models"].items()}
    lines.append("- Models: " + ", ".join(f"`{m}` ({s})" for m, s in status.items())
                 + (f"; trained in this run: {', '.join(trained)}" if trained else "") + ".")
    cannot = []
    if config.mode == "quick":
        cannot.append("**Quick run**: tiny models (800 training images, one epoch), a subset "
                      "of sources and test images, weak PGD. Its numbers exercise the pipeline "
                      "and say nothing about the paper's claims; `tradeoffs reproduce` (no "
                      "option) measures them.")
    if config.n_test_pgd is not None and config.n_test_pgd < config.n_test:
        cannot.append(f"PGD accuracy is measured on the first {config.n_test_pgd} test images "
                      f"only (clean and certified accuracy on {config.n_test}); "
                      "`--n-test-pgd 10000` for all.")
    if config.pgd_restarts < 5:
        cannot.append(f"PGD-{config.pgd_steps} with {config.pgd_restarts} restart(s): a "
                      "weaker upper bound on robust accuracy than the `--full` run's 5 "
                      "restarts (and than AutoAttack).")
    if not config.n_test_autoattack:
        cannot.append("Robust accuracy under AutoAttack (the leaderboards' standard upper "
                      "bound, usually tighter than PGD's) is not measured (`--autoattack N`: "
                      "about 0.3-0.9 s per robust test image and radius on one core).")
    if config.l0_sources == 0:
        cannot.append("The l0 invariance attack is not run (`--full` or `--l0-sources N`).")
    if set(config.models) != set(FULL_MODELS) and config.mode != "quick":
        cannot.append("Only part of the zoo is evaluated: the trend over training radii "
                      "(0.1, 0.2, ...) and the linear and k-NN models need `--full`.")
    cannot.append("Human labels exist only for the published examples: every statement "
                  "about the package's own new invariance examples rests on the proxy "
                  "labeller (an estimate, validated below), not on people.")
    lines += ["", "What this run cannot show:", ""] + [f"- {c}" for c in cannot] + [""]
    return lines


def _direction(evals: dict, info: dict, sets: list[str]) -> list[str]:
    """The paper's direction: agreement on label-changed examples against training eps."""
    lines = ["## Direction of the paper's finding", "",
             "Agreement with humans on label-changed examples for the CNNs, by training "
             "radius (undefended = 0). The paper: the more robust the model, the less it agrees "
             "with humans on examples whose label changed. Point estimates; their intervals are "
             "in the table below (with 21 or 37 label-changed examples they are wide).", ""]
    for fam, methods in (("PGD", ("standard", "pgd")), ("IBP", ("standard", "ibp"))):
        names = sorted((m for m in evals if info[m]["config"]["method"] in methods),
                       key=lambda m: training_eps(info[m]))
        if len(names) < 2:
            continue
        for sname in sets:
            vals = [value_of(evals[m]["published"][sname]["agreement_label_changed"])
                    for m in names]
            if any(np.isnan(vals)):
                continue
            falls = all(b <= a for a, b in zip(vals, vals[1:], strict=False))
            seq = ", ".join(f"{m} {v:.2f}" for m, v in zip(names, vals, strict=True))
            lines.append(f"- {fam}, {sname}: {seq} -> "
                         f"{'non-increasing (as in the paper)' if falls else 'not monotone'}")
    return lines + [""]

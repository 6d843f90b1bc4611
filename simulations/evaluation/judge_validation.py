"""How far each judge can stand in for people: agreement with the published human labels.

A *judge* (:mod:`invariance_tradeoffs.simulations.attacks.l0.judges`) decides what an image
reads as -- the l0 attack's acceptance test and the package's stand-in for the oracle.
This module measures every judge the same way on every published human-labelled set
(:func:`~invariance_tradeoffs.simulations.data.published.load_published_examples`):
agreement with the human label overall, on the examples whose human label differs from
the source's MNIST label (*label-changed*) and on the others (*unchanged*), each an
estimate with a 95% Clopper-Pearson interval, plus the share of examples the judge
rejects (reads as no class; a reject never agrees with a human label in these sets,
whose people always named a digit). The human labels are only compared with, never
fitted to: every judge's parameters come from MNIST training data.

Example
-------
>>> from invariance_tradeoffs.simulations.data.published import load_published_examples
>>> sets = load_published_examples()                        # doctest: +SKIP
>>> res = validate_judges({"knn": knn_judge}, sets)         # doctest: +SKIP
>>> print(validation_table(res))                            # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np

from invariance_tradeoffs.simulations.attacks.l0.judges import Judge, judge_labels
from invariance_tradeoffs.simulations.evaluation.agreement import agreement_stats
from invariance_tradeoffs.theory.oracles import REJECT
from invariance_tradeoffs.theory.results import Quantity, proportion_estimate

__all__ = ["judge_run", "judged_change_rate", "run_table", "save_verdict_grid",
           "validate_judges", "validation_table"]

_KEEP = ("n", "n_label_changed", "agreement", "agreement_label_changed", "agreement_unchanged")


def _rates(pred: np.ndarray, human: np.ndarray, orig: np.ndarray, judge: str) -> dict:
    stats = agreement_stats(pred, human, orig)
    out = {k: stats[k] for k in _KEEP}
    out["reject_rate"] = proportion_estimate(
        int(np.sum(pred == REJECT)), len(pred), f"share of examples judge {judge} rejects")
    out["judged_change_rate"] = proportion_estimate(
        int(np.sum(pred != orig)), len(pred),
        f"share judge {judge} labels differently from the source (a reject counts)")
    out["human_change_rate"] = proportion_estimate(
        int(np.sum(human != orig)), len(pred), "human labels: share changed")
    return out


def validate_judges(judges: dict[str, Judge], sets: dict[str, Any]) -> dict:
    """Agreement of each judge with the human labels of each published set.

    Parameters
    ----------
    judges : dict of name -> Judge
        Callables on ``(n, 28, 28)`` images in [0, 1] returning probabilities or labels.
    sets : dict of name -> PublishedSet

    Returns
    -------
    dict
        ``judges.<judge>.sets.<set>`` and ``judges.<judge>.pooled``: ``n``,
        ``n_label_changed`` (exact), ``agreement``, ``agreement_label_changed``,
        ``agreement_unchanged``, ``reject_rate``, ``judged_change_rate``,
        ``human_change_rate`` (estimates with 95% Clopper-Pearson intervals); ``labels``:
        each judge's labels per set (int64, ``REJECT`` = -1).
    """
    if not judges:
        raise ValueError("judges must hold at least one judge")
    if not sets:
        raise ValueError("sets must hold at least one published set")
    out: dict[str, Any] = {"sets": list(sets), "judges": {}, "labels": {}}
    for jname, judge in judges.items():
        res: dict[str, Any] = {"sets": {}}
        preds, humans, origs = [], [], []
        out["labels"][jname] = {}
        for sname, pset in sets.items():
            pred = judge_labels(judge, pset.examples)
            out["labels"][jname][sname] = pred
            res["sets"][sname] = _rates(pred, pset.human_labels, pset.original_labels, jname)
            preds.append(pred)
            humans.append(np.asarray(pset.human_labels))
            origs.append(np.asarray(pset.original_labels))
        res["pooled"] = _rates(np.concatenate(preds), np.concatenate(humans),
                               np.concatenate(origs), jname)
        out["judges"][jname] = res
    return out


def judged_change_rate(judge: Judge, examples: np.ndarray, original_labels: np.ndarray,
                       targets: np.ndarray | None = None, *, what: str = "examples") -> dict:
    """Judged label-change rate of invariance ``examples`` (estimates with 95% CI).

    ``changed``: the judge's label differs from the source's (a reject counts as a
    change, as "no digit" is not the source); ``reads_as_target`` (with ``targets``):
    the judge reads the example as the attack's target class; ``rejected``: the judge
    reads it as no class.
    """
    labels = judge_labels(judge, examples)
    orig = np.asarray(original_labels, dtype=np.int64)
    if orig.shape != labels.shape:
        raise ValueError(f"original_labels must have shape {labels.shape}, got {orig.shape}")
    n = len(labels)
    out = {"n": n, "labels": labels,
           "changed": proportion_estimate(int(np.sum(labels != orig)), n,
                                          f"judged label-change rate of {what}"),
           "rejected": proportion_estimate(int(np.sum(labels == REJECT)), n,
                                           f"judged reject rate of {what}")}
    if targets is not None:
        t = np.asarray(targets, dtype=np.int64)
        if t.shape != labels.shape:
            raise ValueError(f"targets must have shape {labels.shape}, got {t.shape}")
        out["reads_as_target"] = proportion_estimate(
            int(np.sum(labels == t)), n, f"share of {what} judged as the target class")
    return out


def judge_run(judges: dict[str, Judge], run: Any) -> dict:
    """Every judge's verdict on the examples of an attack run
    (:class:`~invariance_tradeoffs.simulations.attacks.runs.AttackRun`).

    A source without an example (NaN distortion: the attack failed) is not an invariance
    example: it counts as *unchanged* for every judge (its "example" is the source), so
    the rates are over all sources of the run. Returns ``judges.<name>``: the output of
    :func:`judged_change_rate` (with ``reads_as_target`` against the run's targets), and
    ``n_failures``.
    """
    found = np.isfinite(np.asarray(run.distortion, dtype=np.float64))
    orig = np.asarray(run.source_labels, dtype=np.int64)
    out: dict[str, Any] = {"n": int(run.n), "n_failures": int((~found).sum()), "judges": {}}
    for name, judge in judges.items():
        res = judged_change_rate(judge, run.examples, orig, run.targets,
                                 what=f"the run's {run.n} sources' examples")
        res["labels"] = np.where(found, res["labels"], orig)  # failures: no change
        n = len(orig)
        changed = int(np.sum(res["labels"] != orig))
        res["changed"] = proportion_estimate(
            changed, n, f"judged label-change rate ({name}) over all {n} sources "
            "(a failure counts as unchanged)")
        res["rejected"] = proportion_estimate(
            int(np.sum(res["labels"] == REJECT)), n,
            f"share of the {n} sources whose example {name} rejects")
        res["reads_as_target"] = proportion_estimate(
            int(np.sum(found & (res["labels"] == run.targets))), n,
            f"share of the {n} sources whose example {name} reads as the attack's target")
        out["judges"][name] = res
    return out


def save_verdict_grid(path: Any, run: Any, verdicts: dict, *, per_row: int = 10,
                      title: str | None = None) -> Any:
    """PNG of every (source | example) pair of ``run`` captioned with the index, the
    source class -> the attack's target, the l0 / distortion, and each judge's label
    (``verdicts``: the ``judges`` of :func:`judge_run`; ``R`` = reject)."""
    from invariance_tradeoffs.simulations.plotting import save_pair_grid

    def lab(v: int) -> str:
        return "R" if v == REJECT else str(int(v))

    captions = []
    for i in range(run.n):
        d = run.distortion[i]
        head = (f"#{int(run.source_indices[i])} {int(run.source_labels[i])}>"
                f"{lab(run.targets[i])} " + ("fail" if not np.isfinite(d) else f"d={d:.3g}"))
        captions.append(head + "\n" + " ".join(f"{k[:3]}:{lab(v['labels'][i])}"
                                               for k, v in verdicts.items()))
    return save_pair_grid(path, run.sources, run.examples, captions, per_row=per_row,
                          title=title)


def _ci(q: Quantity | None) -> str:
    """``value [low, high]`` of an estimate (as REPORT.md prints them)."""
    return "-" if q is None else f"{q.value:.3f} [{q.low:.2f}, {q.high:.2f}]"


def validation_table(result: dict) -> str:
    """Markdown table of :func:`validate_judges` (one row per judge and set, then pooled)."""
    rows = ["| judge | set | n (changed) | agreement | on label-changed | on unchanged "
            "| rejected |", "|---|---|---|---|---|---|---|"]
    for jname, res in result["judges"].items():
        for sname, r in [*res["sets"].items(), ("pooled", res["pooled"])]:
            rows.append(
                f"| {jname} | {sname} | {r['n']} ({r['n_label_changed']}) | "
                f"{_ci(r['agreement'])} | {_ci(r['agreement_label_changed'])} | "
                f"{_ci(r['agreement_unchanged'])} | {_ci(r['reject_rate'])} |")
    return "\n".join(rows)


def run_table(rows: list[tuple[str, Any, dict]]) -> str:
    """Markdown table of attack runs judged by :func:`judge_run`: one row per run
    (``(name, run, judged)``) with the median distortion over all sources (a failure
    counts as infinite), failures, the summed per-source attack time when recorded, and
    per judge the judged label-change rate (95% CI)."""
    if not rows:
        raise ValueError("rows must hold at least one run")
    judges = list(rows[0][2]["judges"])
    head = ["run", "median distortion (all)", "failures", "attack time (s, summed)",
            *(f"changed: {j}" for j in judges)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, run, judged in rows:
        dist = np.asarray(run.distortion, dtype=np.float64)
        med = float(np.median(np.where(np.isfinite(dist), dist, np.inf)))
        secs = run.extras.get("seconds")
        cells = [name, f"{med:.3g}", str(judged["n_failures"]),
                 "-" if secs is None else f"{float(np.sum(secs)):.0f}",
                 *(_ci(judged["judges"][j]["changed"]) for j in judges)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

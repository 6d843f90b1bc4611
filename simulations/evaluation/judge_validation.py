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

__all__ = ["judged_change_rate", "validate_judges", "validation_table"]

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


def _ci(q: Quantity | None) -> str:
    from invariance_tradeoffs.simulations.experiments.reproduce.report import fmt

    return fmt(None if q is None else q.to_dict())


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

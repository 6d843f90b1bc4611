"""How far the human-proxy labeller (:mod:`invariance_tradeoffs.simulations.models.proxy`)
can stand in for people: its agreement with the human labels of the published sets, how
well its score ranks the label changes, its estimates of label-change rates, and the ink
threshold chosen without human labels."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from invariance_tradeoffs.simulations.evaluation.agreement import agreement_stats
from invariance_tradeoffs.simulations.models.adapters import as_model, to_model_input
from invariance_tradeoffs.simulations.models.proxy import PROXY_METHOD, ProxyLabeller
from invariance_tradeoffs.theory.results import Quantity, proportion_estimate
from invariance_tradeoffs.theory.validation import as_labels

__all__ = ["INK_THRESHOLDS", "ink_threshold_sweep", "proxy_estimate", "proxy_ranking",
           "select_ink_threshold", "threshold_rule_labels", "validate_proxy"]


# --------------------------------------------------------------------------- validation
def _summary(stats: dict) -> dict:
    keep = ("n", "n_label_changed", "agreement", "agreement_label_changed",
            "agreement_unchanged")
    return {k: stats[k] for k in keep}


def validate_proxy(proxy: Any, sets: dict[str, Any]) -> dict:
    """Agreement of the proxy with the human labels of published sets.

    Parameters
    ----------
    proxy : ProxyLabeller or any model adapter / callable on ``(n, 1, 28, 28)``
    sets : dict of name -> :class:`invariance_tradeoffs.simulations.data.published.PublishedSet`

    Returns
    -------
    dict
        ``sets.<name>``: ``n``, ``n_label_changed``, ``agreement``,
        ``agreement_label_changed``, ``agreement_unchanged`` (estimates with 95%
        Clopper-Pearson intervals), ``proxy_change_rate`` (share of examples the proxy
        labels differently from the source's MNIST label) next to ``human_change_rate``;
        ``pooled``: the same over all sets together.
    """

    if not sets:
        raise ValueError("sets must hold at least one published set")
    model = as_model(proxy) if not isinstance(proxy, ProxyLabeller) else proxy
    out: dict[str, Any] = {"proxy": getattr(proxy, "name", "proxy"), "sets": {}}
    preds, humans, origs = [], [], []
    for name, pset in sets.items():
        pred = model.predict(to_model_input(pset.examples, f"{name} examples"))
        out["sets"][name] = _rates(pred, pset.human_labels, pset.original_labels)
        preds.append(pred)
        humans.append(np.asarray(pset.human_labels))
        origs.append(np.asarray(pset.original_labels))
    out["pooled"] = _rates(np.concatenate(preds), np.concatenate(humans), np.concatenate(origs))
    return out


def threshold_rule_labels(proba: np.ndarray, original_labels: np.ndarray,
                          threshold: float) -> np.ndarray:
    """Labels of the rule "the source's label unless ``1 - p(source) > threshold``".

    Above the threshold the rule answers the most probable *other* class. ``threshold =
    0.5`` is close to (but not always the same as) the argmax; a larger threshold asks
    for more evidence before calling a label changed.
    """
    proba = np.asarray(proba, dtype=np.float64)
    orig = as_labels(original_labels, "original_labels", n_classes=proba.shape[1],
                     length=proba.shape[0], allow_reject=False)
    rows = np.arange(proba.shape[0])
    other = proba.copy()
    other[rows, orig] = -np.inf
    changed = 1.0 - proba[rows, orig] > threshold
    return np.where(changed, other.argmax(axis=1), orig).astype(np.int64)


def _best_threshold(score: np.ndarray, proba: np.ndarray, orig: np.ndarray,
                    human: np.ndarray) -> tuple[float, int]:
    # Every distinct score (and "never changed") is a candidate cut; ties keep the
    # smallest threshold so the result is deterministic.
    best_t, best_hits = 1.0, int(np.sum(orig == human))
    for t in np.unique(score):
        hits = int(np.sum(threshold_rule_labels(proba, orig, float(t)) == human))
        if hits > best_hits:
            best_t, best_hits = float(t), hits
    return best_t, best_hits


def proxy_ranking(proxy: Any, sets: dict[str, Any]) -> dict:
    """What limits the proxy: how well its evidence *ranks* the human label changes.

    The score of an example is the proxy's probability that it is *not* the source's
    class, ``1 - p(source)``. Per set:

    - ``auc``: area under the ROC curve of that score against "the human label changed"
      (exact for the sample; 0.5 is chance, 1 a perfect ranking);
    - ``best_threshold`` / ``best_threshold_agreement``: the rule of
      :func:`threshold_rule_labels` with the threshold that agrees most with the humans
      *on this same set* -- an in-sample, optimistic estimate: no threshold on this
      score does better on this sample, so a proxy built on it cannot reach more;
    - ``transfer``: with two or more sets, agreement on each set of the threshold that
      was best on the *other* sets pooled (out-of-sample).

    Human labels outside ``{source, the proxy's most likely other class}`` count as
    disagreements for every threshold (``n_third_class`` says how many there are).
    """
    from sklearn.metrics import roc_auc_score

    if not sets:
        raise ValueError("sets must hold at least one published set")
    data = {}
    for name, pset in sets.items():
        x = to_model_input(pset.examples, f"{name} examples")
        proba = np.asarray(proxy.predict_proba(x), dtype=np.float64)
        orig = np.asarray(pset.original_labels, dtype=np.int64)
        human = np.asarray(pset.human_labels, dtype=np.int64)
        score = 1.0 - proba[np.arange(len(orig)), orig]
        data[name] = (proba, orig, human, score)
    out: dict[str, Any] = {"score": "1 - p(source class)", "sets": {}}
    for name, (proba, orig, human, score) in data.items():
        changed = human != orig
        auc = (float(roc_auc_score(changed, score)) if 0 < changed.sum() < len(changed)
               else None)
        t, hits = _best_threshold(score, proba, orig, human)
        third = int(np.sum(changed & (human != threshold_rule_labels(proba, orig, -1.0))))
        out["sets"][name] = {
            "n": len(orig), "n_label_changed": int(changed.sum()), "auc": auc,
            "best_threshold": t,
            "best_threshold_agreement": proportion_estimate(
                hits, len(orig), "in-sample best threshold on the proxy score (optimistic)"),
            "n_third_class": third}
    if len(data) >= 2:
        out["transfer"] = {}
        for name, (proba, orig, human, _) in data.items():
            rest = [v for k, v in data.items() if k != name]
            t, _ = _best_threshold(*(np.concatenate([r[i] for r in rest])
                                     for i in (3, 0, 1, 2)))
            hits = int(np.sum(threshold_rule_labels(proba, orig, t) == human))
            out["transfer"][name] = {
                "threshold_from_other_sets": t,
                "agreement": proportion_estimate(
                    hits, len(orig), "threshold fitted on the other sets (out-of-sample)")}
    return out


def _rates(pred: np.ndarray, human: np.ndarray, orig: np.ndarray) -> dict:
    res = _summary(agreement_stats(pred, human, orig))
    res["proxy_change_rate"] = proportion_estimate(
        int(np.sum(pred != orig)), len(pred),
        f"{PROXY_METHOD}: share labelled differently from the source")
    res["human_change_rate"] = proportion_estimate(
        int(np.sum(human != orig)), len(pred), "human labels: share changed")
    return res


def proxy_estimate(proxy: Any, examples: np.ndarray, original_labels: np.ndarray,
                   validation: dict, *, what: str = "examples") -> dict:
    """Proxy estimate of the label-change rate of new invariance ``examples``.

    Returns ``{"label_change_rate": Quantity, "proxy_labels": array}``; the quantity's
    ``method`` says "proxy estimate" and its ``extra`` carries the proxy's validated
    pooled agreement with humans (overall and on label-changed examples, with
    intervals), so the number never travels without its validation.
    """
    if "pooled" not in validation:
        raise ValueError("validation must be the output of validate_proxy (no 'pooled' key)")
    x = to_model_input(examples, "examples")
    orig = as_labels(original_labels, "original_labels", n_classes=10, length=x.shape[0],
                     allow_reject=False)
    pred = proxy.predict(x)
    pooled = validation["pooled"]
    extra = {"what": what,
             "proxy": getattr(proxy, "name", "proxy"),
             "validation_agreement": _q(pooled["agreement"]),
             "validation_agreement_label_changed": _q(pooled["agreement_label_changed"]),
             "validation_n": pooled["n"]}
    rate = proportion_estimate(int(np.sum(pred != orig)), x.shape[0],
                               f"{PROXY_METHOD}: share of {what} whose proxy label differs "
                               "from the source's MNIST label", **extra)
    return {"label_change_rate": rate, "proxy_labels": pred}


def _q(q: Quantity | dict | None) -> dict | None:
    return q.to_dict() if isinstance(q, Quantity) else q


#: Thresholds tried by :func:`ink_threshold_sweep`.
INK_THRESHOLDS = (1.0, 0.7, 0.5, 0.4, 0.3, 0.2)


def ink_threshold_sweep(proxy: ProxyLabeller, test_images: np.ndarray, test_labels: np.ndarray,
                        thresholds: tuple[float, ...] = INK_THRESHOLDS, *,
                        sets: dict[str, Any] | None = None) -> list[dict]:
    """Clean accuracy (and, with ``sets``, validation) of ``proxy`` per ``ink_threshold``.

    The registered ``proxy`` uses the rule of :func:`select_ink_threshold`, which reads
    only the clean accuracies -- no human label.
    """
    rows = []
    y = as_labels(test_labels, "test_labels", n_classes=10, allow_reject=False)
    for t in thresholds:
        p = ProxyLabeller([m.module for m in proxy.members],
                          replace(proxy.config, ink_threshold=float(t)))
        acc = proportion_estimate(int(np.sum(p.label_images(test_images) == y)), len(y),
                                  "clean accuracy of the proxy on MNIST test images")
        row: dict[str, Any] = {"ink_threshold": float(t), "clean_accuracy": acc}
        if sets:
            row["validation"] = validate_proxy(p, sets)["pooled"]
        rows.append(row)
    return rows


def select_ink_threshold(rows: list[dict], tolerance: float = 0.005) -> float:
    """The smallest threshold whose clean accuracy is within ``tolerance`` of ``t = 1``'s.

    A rule that uses clean MNIST accuracy only (no human label): make grey strokes count
    as ink as far as the proxy still reads ordinary digits as well as before.
    """
    base = next((r for r in rows if r["ink_threshold"] == 1.0), None)
    if base is None:
        raise ValueError("rows must include ink_threshold = 1.0")
    ok = [r["ink_threshold"] for r in rows
          if float(r["clean_accuracy"]) >= float(base["clean_accuracy"]) - tolerance]
    return min(ok)

"""Agreement of models with human labels on published invariance examples, and robustness.

The paper's MNIST experiment (Tramer et al., ICML 2020, Section 4): an *invariance
example* ``x'`` lies within radius eps of a test image ``x`` (the *source*) but a human
gives it another label. A model that is robust at ``x`` at that radius keeps its label
on ``x'`` and so disagrees with the human whenever the label changed.

For every model and every published set this module reports

- **agreement** with the human label on the examples: overall, on the examples whose
  human label differs from the source's MNIST label (*label-changed*), and on the others
  (*unchanged*) -- estimates with Clopper-Pearson intervals;
- the **provably-wrong count** (exact): examples whose source the model is *certified*
  at -- it predicts the original label on the whole ball around the source, with radius
  at least the example's distance -- while the human label changed. Certification
  proves the model outputs the original label on the example, so it is wrong there;
- the **ceiling**: the share of sources whose human label did not change. Where the
  label changed, no classifier can be both correct and constant on the ball, so this is
  an upper bound on the accuracy of any model that is robust (constant on the ball)
  at that radius on these sources -- the paper's maximal robust accuracy
  (estimate with Clopper-Pearson interval for the population);
- the sensitivity side at the set's radius: clean accuracy, PGD robust accuracy (an
  upper bound on the sample's robust accuracy) and certified robust accuracy (a lower
  bound) on the sources; :func:`sensitivity_report` gives the same on any images.

Examples
--------
>>> import numpy as np
>>> r = agreement_stats(np.array([1, 2, 3]), np.array([1, 5, 3]), np.array([1, 2, 4]))
>>> r["agreement"].value, r["n_label_changed"], r["agreement_label_changed"].value
(0.6666666666666666, 2, 0.5)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from invariance_tradeoffs.simulations.io import to_jsonable
from invariance_tradeoffs.simulations.models.adapters import ModelAdapter, as_model, to_model_input
from invariance_tradeoffs.theory.results import Quantity, exact, proportion_estimate
from invariance_tradeoffs.theory.validation import (
    as_labels,
    check_eps,
    check_int,
    check_same_length,
)

__all__ = [
    "CERTIFY_SLACK",
    "AutoAttackSettings",
    "PGDSettings",
    "agreement_stats",
    "ceiling",
    "certify_at_sources",
    "evaluate_set",
    "sensitivity_report",
    "evaluate_models",
    "summary_table",
]

#: Added to each certification radius so float rounding of a stored example can never
#: put it outside the certified ball (enlarging the ball only makes certificates harder).
CERTIFY_SLACK = 1e-6


@dataclass(frozen=True)
class PGDSettings:
    """PGD used for empirical robust accuracy (defaults: PGD-40, 10 random restarts)."""

    steps: int = 40
    restarts: int = 10
    step_size: float | None = None
    seed: int = 0

    def kwargs(self) -> dict:
        return {"steps": self.steps, "restarts": self.restarts, "step_size": self.step_size,
                "seed": self.seed}


@dataclass(frozen=True)
class AutoAttackSettings:
    """AutoAttack (:mod:`~invariance_tradeoffs.simulations.attacks.autoattack`) for
    empirical robust accuracy beside PGD: on the first ``n`` images of each sample
    (``None``: all), ensemble ``version`` (``"standard"``: the leaderboards')."""

    n: int | None = None
    version: str = "standard"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n is not None:
            check_int(self.n, "autoattack n", low=1)


def _share(mask: np.ndarray, of: np.ndarray, method: str) -> Quantity | None:
    """Share of ``mask`` among the rows selected by ``of`` (None when none selected)."""
    n = int(of.sum())
    return None if n == 0 else proportion_estimate(int((mask & of).sum()), n, method)


def ceiling(human_labels: np.ndarray, original_labels: np.ndarray, *,
            radius: float | None = None) -> Quantity:
    """Share of sources whose human label did not change, with Clopper-Pearson CI.

    On the sample it is an upper bound on the accuracy of every classifier that is
    robust (constant on the ball) at ``radius``; the interval is for the population the
    sources were drawn from. It does not bound real robust accuracy, which a classifier
    that follows the human label inside the ball can exceed (proofs/lemma.md).
    """
    human = as_labels(human_labels, "human_labels", n_classes=10)
    orig = as_labels(original_labels, "original_labels", n_classes=10, allow_reject=False,
                     length=human.shape[0])
    return proportion_estimate(
        int(np.sum(human == orig)), human.shape[0],
        "share of sources whose human label is unchanged (upper bound on real robust "
        "accuracy at this radius on the sample)",
        radius=radius,
    )


def agreement_stats(predictions: np.ndarray, human_labels: np.ndarray,
                    original_labels: np.ndarray, certified: np.ndarray | None = None, *,
                    radius: float | None = None) -> dict:
    """The agreement arithmetic on one set, from labels alone.

    Parameters
    ----------
    predictions : int array (n,)
        The model's labels on the invariance examples.
    human_labels : int array (n,)
        Human labels of the examples (``REJECT`` allowed: "no digit").
    original_labels : int array (n,)
        MNIST labels of the sources.
    certified : bool array (n,), optional
        Whether the model is certified to predict the original label on the whole ball
        around each source (radius at least the example's distance). ``None``: no
        certification method applies.
    radius : float, optional
        The set's radius, recorded with the ceiling.

    Returns
    -------
    dict
        ``n``, ``n_label_changed`` (exact counts); ``agreement``,
        ``agreement_label_changed``, ``agreement_unchanged`` (estimates, ``None`` on an
        empty subset); ``certified_at_source`` and ``provably_wrong`` (exact counts or
        ``None``); ``certificate_violations``: provably-wrong examples on which the model
        nevertheless agrees with the human -- nonzero only if a certificate is unsound;
        ``ceiling``.
    """
    pred = as_labels(predictions, "predictions", n_classes=10)
    n = pred.shape[0]
    human = as_labels(human_labels, "human_labels", n_classes=10, length=n)
    orig = as_labels(original_labels, "original_labels", n_classes=10, allow_reject=False,
                     length=n)
    agree = pred == human
    changed = human != orig
    everyone = np.ones(n, dtype=bool)
    out: dict[str, Any] = {
        "n": n,
        "n_label_changed": int(changed.sum()),
        "agreement": _share(agree, everyone, "agreement with human labels"),
        "agreement_label_changed": _share(agree, changed,
                                          "agreement on label-changed examples"),
        "agreement_unchanged": _share(agree, ~changed, "agreement on unchanged examples"),
        "certified_at_source": None,
        "provably_wrong": None,
        "certificate_violations": None,
        "ceiling": ceiling(human, orig, radius=radius),
    }
    if certified is not None:
        cert = np.asarray(certified)
        if cert.dtype != bool or cert.shape != (n,):
            raise ValueError(f"certified must be a bool array of shape ({n},), got "
                             f"{cert.dtype} {cert.shape}")
        wrong = cert & changed
        out["certified_at_source"] = exact(
            int(cert.sum()), "sources where the model is certified to keep the original label")
        out["provably_wrong"] = exact(
            int(wrong.sum()), "certified at the source and human label changed")
        out["certificate_violations"] = int((wrong & agree).sum())
    return out


def certify_at_sources(model: ModelAdapter, sources: np.ndarray, original_labels: np.ndarray,
                       radii: np.ndarray) -> tuple[np.ndarray, str] | None:
    """Certify ``model`` at each source with its label, at radius ``radii[i]`` (l-inf).

    Returns ``(certified, method)`` or ``None`` when no certification method applies.
    """
    from invariance_tradeoffs.simulations.certification import certify

    return certify(model, to_model_input(sources, "sources"), original_labels, radii)


def _has_gradients(model: ModelAdapter) -> bool:
    """Whether gradient attacks (PGD, AutoAttack) apply: a torch model or convertible."""
    from invariance_tradeoffs.simulations.models.adapters import as_torch_model

    try:
        as_torch_model(model)
    except (TypeError, ImportError):
        return False
    return True


def _pgd_accuracy(model: ModelAdapter, x: np.ndarray, y: np.ndarray, eps: float,
                  pgd: PGDSettings) -> Quantity | None:
    from invariance_tradeoffs.simulations.attacks.pgd import pgd_robust_accuracy

    if not _has_gradients(model):
        return None
    return pgd_robust_accuracy(model, x, y, eps, **pgd.kwargs())


def _autoattack_accuracy(model: ModelAdapter, x: np.ndarray, y: np.ndarray, eps: float,
                         aa: AutoAttackSettings) -> Quantity | None:
    from invariance_tradeoffs.simulations.attacks.autoattack import autoattack_robust_accuracy

    if not _has_gradients(model):
        return None
    m = len(x) if aa.n is None else min(aa.n, len(x))
    return autoattack_robust_accuracy(model, x[:m], y[:m], eps, version=aa.version,
                                      seed=aa.seed)


def sensitivity_report(model: Any, images: np.ndarray, labels: np.ndarray, eps: float, *,
                      pgd: PGDSettings | None = PGDSettings(), pgd_n: int | None = None,
                      autoattack: AutoAttackSettings | None = None) -> dict:
    """Sensitivity side at radius ``eps`` (l-inf) on ``images`` with true ``labels``.

    ``pgd_n`` runs PGD on the first ``pgd_n`` images only, ``autoattack`` AutoAttack on
    the first ``autoattack.n`` (clean and certified accuracy use all of them; each
    quantity records its own ``n``).

    Returns
    -------
    dict
        ``eps``; ``clean_accuracy``; ``pgd_robust_accuracy`` (upper bound on the sample's
        robust accuracy; ``None`` without gradients or when ``pgd`` is None);
        ``autoattack_robust_accuracy`` (upper bound, usually the tighter one; ``None``
        without gradients or when ``autoattack`` is None);
        ``certified_robust_accuracy`` (lower bound; exact for linear models; ``None``
        when no certification applies) and ``certification_method``.
    """
    from invariance_tradeoffs.simulations.certification import certify

    model = as_model(model)
    x = to_model_input(images)
    y = as_labels(labels, "labels", n_classes=model.n_classes, length=x.shape[0],
                  allow_reject=False)
    eps = check_eps(eps)
    n = x.shape[0]
    if pgd_n is not None and (isinstance(pgd_n, bool) or not isinstance(pgd_n, int)
                              or pgd_n < 1):
        raise ValueError(f"pgd_n must be None or an integer >= 1, got {pgd_n!r}")
    m = n if pgd_n is None else min(pgd_n, n)
    correct = model.predict(x) == y
    cert = certify(model, x, y, eps)
    certified = None
    if cert is not None:
        side = ("exact robust accuracy on the sample" if cert[1].startswith("exact")
                else "lower bound on robust accuracy on the sample")
        certified = proportion_estimate(int(cert[0].sum()), n,
                                        f"certified robust accuracy, {cert[1]}",
                                        side_on_sample=side)
    return {
        "eps": eps,
        "n": n,
        "clean_accuracy": proportion_estimate(int(correct.sum()), n, "clean accuracy"),
        "pgd_robust_accuracy": None if pgd is None else _pgd_accuracy(model, x[:m], y[:m],
                                                                      eps, pgd),
        "autoattack_robust_accuracy": None if autoattack is None else _autoattack_accuracy(
            model, x, y, eps, autoattack),
        "certified_robust_accuracy": certified,
        "certification_method": None if cert is None else cert[1],
    }


def evaluate_set(model: Any, pset: Any, *, pgd: PGDSettings | None = PGDSettings(),
                 autoattack: AutoAttackSettings | None = None) -> dict:
    """All invariance- and sensitivity-side numbers of one model on one published set.

    ``pset`` is a :class:`simulations.data.published.PublishedSet` (or anything with
    its attributes ``name, norm, radius, sources, examples, original_labels,
    human_labels, distortion``). Certification and PGD apply to l-inf sets only.
    """
    model = as_model(model)
    check_same_length(sources=pset.sources, examples=pset.examples,
                      original_labels=pset.original_labels, human_labels=pset.human_labels,
                      distortion=pset.distortion)
    preds = model.predict(to_model_input(pset.examples, "examples"))
    certified, method = None, None
    radius = pset.radius
    if pset.norm == "linf":
        dist = np.asarray(pset.distortion, dtype=np.float64)
        radii = np.maximum(dist if radius is None else np.maximum(dist, radius), 0.0)
        res = certify_at_sources(model, pset.sources, pset.original_labels,
                                 radii + CERTIFY_SLACK)
        if res is not None:
            certified, method = res
    stats = agreement_stats(preds, pset.human_labels, pset.original_labels, certified,
                            radius=radius)
    out: dict[str, Any] = {
        "set": pset.name,
        "norm": pset.norm,
        "radius": radius,
        "max_distortion": float(np.max(pset.distortion)),
        **stats,
        "certification_method": method,
        "certification_radius": None if certified is None else
        "per source: max(radius, distance to its example) + 1e-6",
    }
    if pset.norm == "linf" and radius is not None:
        out["sensitivity_on_sources"] = sensitivity_report(
            model, pset.sources, pset.original_labels, radius, pgd=pgd, autoattack=autoattack)
    else:
        out["sensitivity_on_sources"] = None
    return out


def evaluate_models(models: dict[str, Any], sets: dict[str, Any], *,
                    pgd: PGDSettings | None = PGDSettings(), test_images: np.ndarray | None = None,
                    test_labels: np.ndarray | None = None,
                    test_eps: tuple[float, ...] = (), test_pgd_n: int | None = None,
                    autoattack: AutoAttackSettings | None = None,
                    sources_autoattack: bool = True, scheduler: Any = None) -> dict:
    """Evaluate every model on every published set (and optionally on test images; PGD on
    the first ``test_pgd_n`` of them, see :func:`sensitivity_report`). ``autoattack``
    adds AutoAttack on the test images and, with ``sources_autoattack``, on the sources
    of each published l-inf set. ``scheduler`` (``"local:N"``, a Dask scheduler address
    or an open engine, :mod:`invariance_tradeoffs.simulations.engine`) evaluates one
    model per task on a Dask cluster (one torch thread each; the sets sent once).

    Returns a JSON-ready dictionary (every :class:`Quantity` converted with ``to_dict``);
    its keys are documented in ``docs/mnist.md``.
    """
    out: dict[str, Any] = {
        "sets": {name: {"n": int(s.human_labels.shape[0]), "norm": s.norm, "radius": s.radius,
                        "n_label_changed": int(np.sum(s.human_labels != s.original_labels)),
                        "ceiling": ceiling(s.human_labels, s.original_labels, radius=s.radius)}
                 for name, s in sets.items()},
        "models": {},
    }
    options = {"pgd": pgd, "test_images": test_images, "test_labels": test_labels,
               "test_eps": test_eps, "test_pgd_n": test_pgd_n, "autoattack": autoattack,
               "sources_autoattack": sources_autoattack}
    if scheduler is None:
        for mname, m in models.items():
            out["models"][mname] = _model_entry(mname, m, sets, **options)
    else:
        from invariance_tradeoffs.simulations.engine import session

        with session(scheduler) as engine:
            names = list(models)
            entries = engine.map(_model_task, [(n, models[n]) for n in names],
                                 engine.share((sets, options)))
        out["models"] = dict(zip(names, entries, strict=True))
    return to_jsonable(out)


def _model_entry(mname: str, m: Any, sets: dict[str, Any], *, pgd: PGDSettings | None,
                 test_images: np.ndarray | None, test_labels: np.ndarray | None,
                 test_eps: tuple[float, ...], test_pgd_n: int | None,
                 autoattack: AutoAttackSettings | None, sources_autoattack: bool) -> dict:
    """One model's entry of :func:`evaluate_models`."""
    adapter = as_model(m, name=mname)
    entry: dict[str, Any] = {"published": {
        name: evaluate_set(adapter, s, pgd=pgd,
                           autoattack=autoattack if sources_autoattack else None)
        for name, s in sets.items()}}
    if test_images is not None and test_eps:
        entry["test"] = [sensitivity_report(adapter, test_images, test_labels, e, pgd=pgd,
                                           pgd_n=test_pgd_n, autoattack=autoattack)
                         for e in test_eps]
    return entry


def _model_task(common: tuple, model: tuple) -> dict:
    """:func:`_model_entry` on a Dask worker, with one torch thread."""
    from invariance_tradeoffs.simulations.optional import torch

    if torch is not None:
        torch.set_num_threads(1)
    sets, options = common
    return _model_entry(*model, sets, **options)


def _fmt(q: dict | None) -> str:
    return "-" if q is None else f"{q['value']:.3f}"


def summary_table(result: dict) -> str:
    """Plain-text table of an :func:`evaluate_models` result, one row per model and set.

    Columns: agreement overall / on label-changed / on unchanged examples, the
    provably-wrong count over the number of label-changed examples, the ceiling, and on
    the sources at the set's radius clean, PGD and certified robust accuracy.
    """
    head = (f"{'model':20s} {'set':22s} {'agree':>6s} {'chg':>6s} {'unchg':>6s} "
            f"{'prov.wrong':>10s} {'ceiling':>7s} {'clean':>6s} {'PGD':>6s} {'AA':>6s} "
            f"{'cert':>6s}")
    lines = [head, "-" * len(head)]
    for mname, entry in result["models"].items():
        for sname, r in entry["published"].items():
            pw = r["provably_wrong"]
            wrong = "-" if pw is None else f"{int(pw['value'])}/{r['n_label_changed']}"
            sens = r["sensitivity_on_sources"] or {}
            lines.append(
                f"{mname[:20]:20s} {sname[:22]:22s} {_fmt(r['agreement']):>6s} "
                f"{_fmt(r['agreement_label_changed']):>6s} {_fmt(r['agreement_unchanged']):>6s} "
                f"{wrong:>10s} {_fmt(r['ceiling']):>7s} {_fmt(sens.get('clean_accuracy')):>6s} "
                f"{_fmt(sens.get('pgd_robust_accuracy')):>6s} "
                f"{_fmt(sens.get('autoattack_robust_accuracy')):>6s} "
                f"{_fmt(sens.get('certified_robust_accuracy')):>6s}"
            )
    return "\n".join(lines)

"""Evaluate one model on the human-labelled invariance examples: :func:`evaluate` and its
typed result, :class:`EvaluationReport`.

>>> import invariance_tradeoffs as it                                    # doctest: +SKIP
>>> report = it.evaluate(it.PyTorchModel(my_net))                        # doctest: +SKIP
>>> print(report.table())                                                # doctest: +SKIP
>>> report.agreement("linf/automated_eps04", changed=True)               # doctest: +SKIP
Quantity(0.351..., estimate, CI [0.20, 0.53])

Every number is a :class:`~invariance_tradeoffs.theory.results.Quantity` that says
whether it is exact (counts), a bound or an estimate with its Clopper-Pearson interval.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from invariance_tradeoffs.simulations.evaluation.agreement import (
    AutoAttackSettings,
    PGDSettings,
    evaluate_set,
)
from invariance_tradeoffs.simulations.io import to_jsonable
from invariance_tradeoffs.simulations.models.adapters import as_model
from invariance_tradeoffs.theory.results import Quantity

__all__ = ["DEFAULT_PGD", "EvaluationReport", "SetEvaluation", "evaluate"]

#: PGD of :func:`evaluate` on the sources: PGD-40, one random restart.
DEFAULT_PGD = PGDSettings(steps=40, restarts=1)


@dataclass(frozen=True)
class SetEvaluation:
    """A model on one published set.

    Attributes
    ----------
    name, norm, radius : the set.
    n, n_label_changed : int
        Examples, and examples whose human label differs from the source's (exact).
    agreement, agreement_label_changed, agreement_unchanged : Quantity or None
        Share of examples where the model's label equals the human label (estimates with
        intervals; ``None`` on an empty subset).
    provably_wrong : Quantity or None
        Examples whose human label changed although the model is certified to keep the
        source's label on a ball containing them (exact count; ``None`` when no
        certification applies to the model).
    ceiling : Quantity
        Share of sources whose human label did not change: an upper bound on the accuracy
        of any classifier constant on the balls (estimate with interval).
    certification_method : str or None
    clean_accuracy, pgd_robust_accuracy, autoattack_robust_accuracy, \
certified_robust_accuracy : Quantity or None
        Sensitivity side on the set's sources at its radius (l-inf sets): PGD and
        AutoAttack accuracy are upper bounds on the sample's robust accuracy, certified
        accuracy a lower bound (``None``: not run or not applicable).
    """

    name: str
    norm: str | None
    radius: float | None
    n: int
    n_label_changed: int
    agreement: Quantity | None
    agreement_label_changed: Quantity | None
    agreement_unchanged: Quantity | None
    provably_wrong: Quantity | None
    ceiling: Quantity
    certification_method: str | None
    clean_accuracy: Quantity | None = None
    pgd_robust_accuracy: Quantity | None = None
    autoattack_robust_accuracy: Quantity | None = None
    certified_robust_accuracy: Quantity | None = None

    @classmethod
    def from_result(cls, res: Mapping[str, Any]) -> SetEvaluation:
        """From :func:`~invariance_tradeoffs.simulations.evaluation.agreement.evaluate_set`."""
        sens = res.get("sensitivity_on_sources") or {}
        return cls(
            name=res["set"], norm=res["norm"], radius=res["radius"], n=int(res["n"]),
            n_label_changed=int(res["n_label_changed"]), agreement=res["agreement"],
            agreement_label_changed=res["agreement_label_changed"],
            agreement_unchanged=res["agreement_unchanged"],
            provably_wrong=res["provably_wrong"], ceiling=res["ceiling"],
            certification_method=res["certification_method"],
            clean_accuracy=sens.get("clean_accuracy"),
            pgd_robust_accuracy=sens.get("pgd_robust_accuracy"),
            autoattack_robust_accuracy=sens.get("autoattack_robust_accuracy"),
            certified_robust_accuracy=sens.get("certified_robust_accuracy"),
        )


def _cell(q: Quantity | None) -> str:
    if q is None:
        return "-"
    if q.kind == "estimate" and q.low is not None:
        return f"{q.value:.3f} [{q.low:.2f}, {q.high:.2f}]"
    return f"{q.value:g}"


@dataclass(frozen=True)
class EvaluationReport:
    """One model evaluated on every published set found.

    Attributes
    ----------
    model : str
        The model's name.
    sets : dict of str to SetEvaluation
        In the order the sets were found (known sets first).
    missing : dict of str to str
        Known sets that were not found, and why.
    """

    model: str
    sets: dict[str, SetEvaluation]
    missing: dict[str, str] = field(default_factory=dict)

    def _set(self, name: str) -> SetEvaluation:
        if name not in self.sets:
            raise KeyError(f"no published set {name!r} in this report; sets: "
                           f"{', '.join(self.sets) or 'none'}"
                           + (f"; missing: {', '.join(self.missing)}" if self.missing else ""))
        return self.sets[name]

    def agreement(self, name: str, changed: bool | None = None) -> Quantity | None:
        """Agreement with the human labels on set ``name``: all examples
        (``changed=None``), the label-changed ones (``True``) or the unchanged ones."""
        s = self._set(name)
        if changed is None:
            return s.agreement
        return s.agreement_label_changed if changed else s.agreement_unchanged

    def provably_wrong(self, name: str) -> Quantity | None:
        """Exact count of examples of set ``name`` the model is provably wrong on."""
        return self._set(name).provably_wrong

    def ceiling(self, name: str) -> Quantity:
        """Upper bound on the accuracy of a classifier constant on the balls of ``name``."""
        return self._set(name).ceiling

    def table(self) -> str:
        """The report as a Markdown table, one row per set."""
        head = ["set", "n", "label changed", "agreement", "on label-changed", "on unchanged",
                "provably wrong", "ceiling", "PGD acc. (sources, upper bound)",
                "AutoAttack acc. (sources, upper bound)", "certified (sources, lower bound)"]
        lines = [f"Model `{self.model}` on the published invariance examples (95% "
                 "Clopper-Pearson intervals; counts exact).", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for s in self.sets.values():
            pw = "-" if s.provably_wrong is None else \
                f"{int(s.provably_wrong.value)}/{s.n_label_changed}"
            lines.append("| " + " | ".join([
                s.name, str(s.n), str(s.n_label_changed), _cell(s.agreement),
                _cell(s.agreement_label_changed), _cell(s.agreement_unchanged), pw,
                _cell(s.ceiling), _cell(s.pgd_robust_accuracy),
                _cell(s.autoattack_robust_accuracy),
                _cell(s.certified_robust_accuracy)]) + " |")
        for name, why in self.missing.items():
            lines.append(f"| {name} | missing: {why} |" + " |" * (len(head) - 2))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dictionary (every Quantity as its ``to_dict()``)."""
        return to_jsonable({"model": self.model, "missing": self.missing,
                            "sets": {k: vars(v) for k, v in self.sets.items()}})


def evaluate(model: Any, sets: Mapping[str, Any] | None = None, *,
             published_dir: str | os.PathLike | None = None,
             data_dir: str | os.PathLike | None = None,
             pgd: PGDSettings | None = DEFAULT_PGD,
             autoattack: AutoAttackSettings | None = None,
             name: str | None = None) -> EvaluationReport:
    """Evaluate ``model`` on every published human-labelled set.

    Parameters
    ----------
    model : model adapter, ``torch.nn.Module``, linear model or callable
        Anything :func:`~invariance_tradeoffs.simulations.models.adapters.as_model`
        accepts; a bare ``torch.nn.Module`` is wrapped as a ``PyTorchModel`` taking images
        in ``[0, 1]``.
    sets : mapping of name to PublishedSet, optional
        Default: every set found by
        :func:`~invariance_tradeoffs.simulations.data.published.load_published_examples`
        (fetched into the cache on first use).
    published_dir, data_dir : paths, optional
        Where the release and MNIST are (default: the environment variable, then the
        cache).
    pgd : PGDSettings or None
        PGD for the sensitivity side on the sources (PGD-40, one restart, by default;
        ``None`` skips it).
    autoattack : AutoAttackSettings or None
        AutoAttack on the sources as well (the field's standard upper bound; needs the
        ``torchattacks`` package; off by default: about 0.3-0.9 s per robust source and
        radius on one CPU core, docs/performance.md).
    name : str, optional
        The model's name in the report.

    Returns
    -------
    EvaluationReport
    """
    from invariance_tradeoffs.simulations.data.published import load_published_examples

    adapter = as_model(model, name=name)
    missing: dict[str, str] = {}
    if sets is None:
        sets = load_published_examples(published_dir, data_dir=data_dir)
        missing = dict(sets.missing)
    results = {n: SetEvaluation.from_result(evaluate_set(adapter, s, pgd=pgd,
                                                         autoattack=autoattack))
               for n, s in sets.items()}
    return EvaluationReport(model=name or getattr(adapter, "name", type(model).__name__),
                            sets=results, missing=missing)

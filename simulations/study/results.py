"""What the participants said: counts, majority labels, agreement, attention checks.

Everything is computed from the study file's responses (:class:`StudyData`), after the
exclusion rule (:class:`ExclusionRule`) has removed the participants who failed the
attention checks:

- the **counts matrix** (CIFAR-10H style): one row per example, columns ``0..9`` and a
  last column for :data:`invariance_tradeoffs.theory.oracles.REJECT` ("not a digit / can't tell");
- the **majority label** of each example: the label with the most votes; on a tie, the
  source label when it is among the tied labels (a change of label is only claimed
  with a strict majority), else REJECT (the participants agree on no class);
- per example, the share of REJECT answers and the share agreeing with the source label;
- the **label-change rate** (majority label differs from the source's MNIST label, REJECT
  counting as a change, as in the paper) with a Clopper-Pearson interval
  (:func:`theory.results.proportion_estimate`); likewise the rate at which the majority
  is the attack's target, and the agreement with the published human labels;
- **Fleiss' kappa** (:func:`statsmodels.stats.inter_rater.fleiss_kappa`) over the examples
  that have the most common number of labels (Fleiss' kappa needs the same number of
  raters per subject), 11 categories;
- **attention checks**: per participant, checks answered and correct.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from invariance_tradeoffs.simulations.study.data import NO_REFERENCE, StudyData
from invariance_tradeoffs.theory.oracles import REJECT
from invariance_tradeoffs.theory.results import Quantity, proportion_estimate
from invariance_tradeoffs.theory.validation import as_labels

__all__ = [
    "N_COLUMNS",
    "REJECT_COLUMN",
    "ExclusionRule",
    "Kappa",
    "Majority",
    "StudyResults",
    "counts_matrix",
    "exclusions",
    "fleiss_kappa",
    "majority_vote",
    "summarise",
]

#: Columns of a counts matrix: digits 0..9, then REJECT.
N_COLUMNS = 11
REJECT_COLUMN = 10


def counts_matrix(item_ids: np.ndarray, labels: np.ndarray, n_items: int) -> np.ndarray:
    """Label counts per item: ``(n_items, 11)``, column ``c < 10`` counts label ``c``,
    column 10 counts REJECT.

    >>> counts_matrix(np.array([0, 0, 1]), np.array([3, -1, 3]), 2)[:, [3, 10]]
    array([[1, 1],
           [1, 0]])
    """
    labels = as_labels(labels, "labels", n_classes=10)
    items = np.asarray(item_ids)
    if items.shape != labels.shape:
        raise ValueError(f"item_ids and labels must have the same shape, got {items.shape} "
                         f"and {labels.shape}")
    if items.size and (not np.issubdtype(items.dtype, np.integer) or items.min() < 0
                       or items.max() >= n_items):
        raise ValueError(f"item_ids must be integers in 0..{n_items - 1}")
    out = np.zeros((n_items, N_COLUMNS), dtype=np.int64)
    np.add.at(out, (items.astype(np.int64), np.where(labels == REJECT, REJECT_COLUMN, labels)), 1)
    return out


def column_label(column: np.ndarray) -> np.ndarray:
    """Counts-matrix column -> label (10 -> REJECT)."""
    return np.where(column == REJECT_COLUMN, REJECT, column)


def label_column(labels: np.ndarray) -> np.ndarray:
    """Label -> counts-matrix column (REJECT -> 10)."""
    return np.where(labels == REJECT, REJECT_COLUMN, labels)


@dataclass(frozen=True)
class Majority:
    """Majority labels of a counts matrix.

    Attributes
    ----------
    label : ndarray (n,) int64
        The majority label (tie rule in the module docstring); REJECT for unlabelled rows.
    n : ndarray (n,) int64
        Labels per row.
    tie : ndarray (n,) bool
        The top count was shared (the tie rule decided).
    """

    label: np.ndarray
    n: np.ndarray
    tie: np.ndarray

    @property
    def labelled(self) -> np.ndarray:
        """Rows with at least one label."""
        return self.n > 0


def majority_vote(counts: np.ndarray, source_labels: np.ndarray) -> Majority:
    """Majority label of each row of a counts matrix (ties: source label, else REJECT)."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[1] != N_COLUMNS:
        raise ValueError(f"counts must have shape (n, {N_COLUMNS}), got {counts.shape}")
    src = as_labels(source_labels, "source_labels", n_classes=10, allow_reject=False,
                    length=counts.shape[0])
    top = counts.max(axis=1)
    winners = counts == top[:, None]
    n = counts.sum(axis=1)
    tie = (winners.sum(axis=1) > 1) & (n > 0)
    label = column_label(counts.argmax(axis=1))
    source_tied = winners[np.arange(len(src)), src]
    label = np.where(tie, np.where(source_tied, src, REJECT), label)
    label = np.where(n > 0, label, REJECT)
    return Majority(label.astype(np.int64), n.astype(np.int64), tie)


@dataclass(frozen=True)
class Kappa:
    """Fleiss' kappa and what it was computed on (``value`` None when undefined)."""

    value: float | None
    n_items: int
    n_raters: int
    note: str

    def to_dict(self) -> dict:
        return {"value": self.value, "n_items": self.n_items, "n_raters": self.n_raters,
                "note": self.note, "kind": "estimate (no interval)"}


def fleiss_kappa(counts: np.ndarray) -> Kappa:
    """Fleiss' kappa (statsmodels) over the rows with the most common number of labels.

    Fleiss' kappa assumes every subject has the same number of raters; rows with another
    number of labels (after exclusions, or unfinished) are left out, and the result says
    how many rows were used. Needs at least 2 labels per row.
    """
    from statsmodels.stats.inter_rater import fleiss_kappa as _fleiss

    counts = np.asarray(counts)
    n = counts.sum(axis=1)
    rated = n[n >= 2]
    if rated.size == 0:
        return Kappa(None, 0, 0, "undefined: no example has 2 or more labels")
    values, freq = np.unique(rated, return_counts=True)
    m = int(values[freq == freq.max()].max())
    table = counts[n == m]
    p_cat = table.sum(axis=0) / table.sum()
    if np.isclose((p_cat**2).sum(), 1.0):
        return Kappa(None, int(table.shape[0]), m,
                     "undefined: every label falls in one category (no chance-corrected "
                     "agreement)")
    note = (f"over the {table.shape[0]} examples with {m} labels each"
            + (f" ({int((n > 0).sum() - table.shape[0])} labelled examples with another "
               "number of labels left out)" if table.shape[0] < (n > 0).sum() else ""))
    return Kappa(float(_fleiss(table, method="fleiss")), int(table.shape[0]), m, note)


@dataclass(frozen=True)
class ExclusionRule:
    """Which participants count.

    When the study has attention checks, a participant is kept only if they answered at
    least one check and labelled at least ``min_check_accuracy`` of their answered checks
    with the check's MNIST label (REJECT counts as wrong). A study without attention
    checks excludes nobody.
    """

    min_check_accuracy: float = 0.75

    def __post_init__(self) -> None:
        v = self.min_check_accuracy
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
            raise ValueError(f"--min-check-accuracy must be a number in [0, 1], got {v!r}")

    def describe(self) -> str:
        return (f"A participant is kept only if they answered at least one attention check "
                f"(a clean MNIST test image) and labelled at least "
                f"{self.min_check_accuracy:.0%} of their answered checks with its MNIST "
                f"label (\"not a digit / can't tell\" counts as wrong); all their answers "
                f"are left out otherwise. A study without attention checks excludes nobody.")


def exclusions(answered: np.ndarray, correct: np.ndarray, rule: ExclusionRule,
               has_checks: bool) -> tuple[np.ndarray, list[str]]:
    """Apply ``rule`` to per-participant check counts; return (kept mask, reasons).

    ``reasons[i]`` is ``""`` for a kept participant.
    """
    answered = np.asarray(answered, dtype=np.int64)
    correct = np.asarray(correct, dtype=np.int64)
    if answered.shape != correct.shape or np.any(correct > answered) or np.any(correct < 0):
        raise ValueError("correct must be in 0..answered, element-wise")
    if not has_checks:
        return np.ones(answered.shape, dtype=bool), [""] * answered.size
    kept, reasons = [], []
    for a, c in zip(answered.tolist(), correct.tolist(), strict=True):
        if a == 0:
            kept.append(False)
            reasons.append("no attention check answered")
        elif c < rule.min_check_accuracy * a - 1e-12:
            kept.append(False)
            reasons.append(f"{c} of {a} attention checks correct "
                           f"(< {rule.min_check_accuracy:.0%})")
        else:
            kept.append(True)
            reasons.append("")
    return np.array(kept, dtype=bool), reasons


def _rate(k: int, n: int, method: str) -> Quantity | None:
    return proportion_estimate(int(k), int(n), method) if n > 0 else None


def _qdict(q: Quantity | None) -> dict | None:
    return None if q is None else q.to_dict()


@dataclass(frozen=True)
class StudyResults:
    """The results of a study (see the module docstring); ``to_dict`` is the JSON."""

    data: StudyData = field(repr=False)
    rule: ExclusionRule
    example_ids: np.ndarray
    counts: np.ndarray
    majority: Majority
    kappa: Kappa
    checks_answered: np.ndarray
    checks_correct: np.ndarray
    kept: np.ndarray
    reasons: list[str]
    label_change: Quantity | None
    majority_reject: Quantity | None
    majority_target: Quantity | None
    agree_reference: Quantity | None
    reference_change: Quantity | None
    label_agree_source: Quantity | None
    check_pass: Quantity | None
    n_responses: int
    n_responses_kept: int

    @property
    def source_labels(self) -> np.ndarray:
        return self.data.source_label[self.example_ids]

    @property
    def changed(self) -> np.ndarray:
        """Per example: labelled and the majority label differs from the source label."""
        return self.majority.labelled & (self.majority.label != self.source_labels)

    def per_example(self) -> list[dict]:
        """One dict per example (position order): counts, majority, shares."""
        d = self.data
        rows = []
        for k, i in enumerate(self.example_ids.tolist()):
            n = int(self.majority.n[k])
            src = int(d.source_label[i])
            ref = int(d.reference_label[i])
            rows.append({
                "position": int(d.item_position[i]),
                "source_index": int(d.source_index[i]),
                "source_label": src,
                "target": None if d.target[i] < 0 else int(d.target[i]),
                "published_label": None if ref == NO_REFERENCE else ref,
                "n": n,
                "counts": self.counts[k].tolist(),
                "majority": int(self.majority.label[k]) if n else None,
                "tie": bool(self.majority.tie[k]),
                "changed": bool(self.changed[k]) if n else None,
                "share_rejected": self.counts[k, REJECT_COLUMN] / n if n else None,
                "agreement_with_source": self.counts[k, src] / n if n else None,
            })
        return rows

    def participants(self) -> list[dict]:
        d = self.data
        answered = np.bincount(np.searchsorted(d.participant_id, d.resp_participant),
                               minlength=d.participant_id.size)
        return [{
            "participant": int(pid), "origin": str(d.participant_origin[j]),
            "assigned": int(d.assigned[j]), "answered": int(answered[j]),
            "finished": bool(np.isfinite(d.finished_at[j])),
            "checks_answered": int(self.checks_answered[j]),
            "checks_correct": int(self.checks_correct[j]),
            "kept": bool(self.kept[j]), "excluded_because": self.reasons[j] or None,
        } for j, pid in enumerate(d.participant_id.tolist())]

    def to_dict(self) -> dict:
        return {
            "study": {k: self.data.meta.get(k) for k in (
                "title", "origin", "release_name", "design", "n_examples", "n_checks",
                "quantisation", "created_at")},
            "exclusion_rule": self.rule.describe(),
            "min_check_accuracy": self.rule.min_check_accuracy,
            "participants_kept": int(self.kept.sum()),
            "participants_excluded": int((~self.kept).sum()),
            "responses": self.n_responses,
            "responses_kept": self.n_responses_kept,
            "examples_labelled": int(self.majority.labelled.sum()),
            "label_change_rate": _qdict(self.label_change),
            "majority_reject_rate": _qdict(self.majority_reject),
            "majority_is_target_rate": _qdict(self.majority_target),
            "agreement_with_published_labels": _qdict(self.agree_reference),
            "published_label_change_rate": _qdict(self.reference_change),
            "label_agreement_with_source": _qdict(self.label_agree_source),
            "attention_check_pass_rate": _qdict(self.check_pass),
            "fleiss_kappa": self.kappa.to_dict(),
            "participants": self.participants(),
            "examples": self.per_example(),
            "computed_at": time.time(),
        }


def summarise(data: StudyData, rule: ExclusionRule | None = None) -> StudyResults:
    """All the study's results under ``rule`` (default :class:`ExclusionRule`)."""
    rule = rule or ExclusionRule()
    is_check = data.item_kind[data.resp_item] == "check"
    correct = is_check & (data.resp_label == data.source_label[data.resp_item])
    slot = np.searchsorted(data.participant_id, data.resp_participant)
    n_p = data.participant_id.size
    answered = np.bincount(slot[is_check], minlength=n_p)
    right = np.bincount(slot[correct], minlength=n_p)
    has_checks = bool(data.meta.get("n_checks", 0)) or bool((data.item_kind == "check").any())
    kept, reasons = exclusions(answered, right, rule, has_checks)

    use = kept[slot] & ~is_check
    example_ids = np.flatnonzero(data.is_example)
    row_of = np.full(data.n_items, -1, dtype=np.int64)
    row_of[example_ids] = np.arange(example_ids.size)
    counts = counts_matrix(row_of[data.resp_item[use]], data.resp_label[use], example_ids.size)
    src = data.source_label[example_ids]
    maj = majority_vote(counts, src)
    lab = maj.labelled
    n_lab = int(lab.sum())
    tgt = data.target[example_ids]
    ref = data.reference_label[example_ids]
    has_tgt, has_ref = lab & (tgt >= 0), lab & (ref != NO_REFERENCE)
    n_kept_labels = int(counts.sum())
    return StudyResults(
        data=data, rule=rule, example_ids=example_ids, counts=counts, majority=maj,
        kappa=fleiss_kappa(counts),
        checks_answered=answered, checks_correct=right, kept=kept, reasons=reasons,
        label_change=_rate(int((maj.label[lab] != src[lab]).sum()), n_lab,
                           "majority label != source MNIST label (REJECT counts as changed), "
                           "labelled examples, kept participants"),
        majority_reject=_rate(int((maj.label[lab] == REJECT).sum()), n_lab,
                              "majority label is REJECT, labelled examples"),
        majority_target=_rate(int((maj.label[has_tgt] == tgt[has_tgt]).sum()),
                              int(has_tgt.sum()),
                              "majority label == attack target, labelled examples with a "
                              "target"),
        agree_reference=_rate(int((maj.label[has_ref] == ref[has_ref]).sum()),
                              int(has_ref.sum()),
                              "majority label == published human label"),
        reference_change=_rate(int((ref[has_ref] != src[has_ref]).sum()), int(has_ref.sum()),
                               "published human label != source label, same examples"),
        label_agree_source=_rate(int(counts[np.arange(src.size), src].sum()), n_kept_labels,
                                 "single labels == source label (labels treated as "
                                 "independent)"),
        check_pass=_rate(int(right.sum()), int(answered.sum()),
                         "attention-check answers == MNIST label, all participants"),
        n_responses=int(data.resp_label.size),
        n_responses_kept=int(kept[slot].sum()),
    )


def _fmt(q: Quantity | None) -> str:
    if q is None:
        return "n/a (no data)"
    return f"{q.value:.3f} [{q.low:.3f}, {q.high:.3f}] ({round(q.value * q.n)}/{q.n})"


def _label(v: int | None) -> str:
    return "-" if v is None else ("reject" if v == REJECT else str(v))


def report(res: StudyResults) -> str:
    """The results as a Markdown report (every example and participant listed)."""
    d = res.to_dict()
    s = d["study"]
    design = s.get("design") or {}
    kap = res.kappa
    lines = [
        f"# Labelling study: {s.get('title')}",
        "",
        f"Examples: {s.get('n_examples')} from {s.get('origin')}; attention-check images: "
        f"{s.get('n_checks')}. Design: {design.get('labels_per_image')} labels per image, "
        f"{design.get('n_participants')} invited participants, attention rate "
        f"{design.get('attention_rate')}, seed {design.get('seed')}. Images shown as 8-bit "
        f"grey levels (largest change from the given images: "
        f"{float(s.get('quantisation') or 0):.4f} in [0, 1] units).",
        "",
        "## Exclusion rule",
        "",
        res.rule.describe(),
        "",
        f"Participants kept: {d['participants_kept']}, excluded: "
        f"{d['participants_excluded']}. Responses: {d['responses']} "
        f"({d['responses_kept']} from kept participants).",
        "",
        "## Summary",
        "",
        "Rates are estimates with 95% Clopper-Pearson intervals (successes/n); the kappa "
        "is a point estimate.",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| examples labelled (by kept participants) | {d['examples_labelled']} of "
        f"{res.example_ids.size} |",
        f"| label-change rate (majority != source label) | {_fmt(res.label_change)} |",
        f"| majority is reject | {_fmt(res.majority_reject)} |",
        f"| majority is the attack's target | {_fmt(res.majority_target)} |",
        f"| majority agrees with the published human label | {_fmt(res.agree_reference)} |",
        f"| published label-change rate, same examples | {_fmt(res.reference_change)} |",
        f"| single labels agreeing with the source label | {_fmt(res.label_agree_source)} |",
        f"| attention-check pass rate (all participants) | {_fmt(res.check_pass)} |",
        f"| Fleiss' kappa (11 categories) | "
        f"{kap.note if kap.value is None else f'{kap.value:.3f} ({kap.note})'} |",
        "",
        "## Participants",
        "",
        "| participant | origin | answered / assigned | checks correct / answered | kept |",
        "|---|---|---|---|---|",
    ]
    for p in d["participants"]:
        kept = "yes" if p["kept"] else f"no: {p['excluded_because']}"
        lines.append(f"| {p['participant']} | {p['origin']} | {p['answered']} / "
                     f"{p['assigned']} | {p['checks_correct']} / {p['checks_answered']} | "
                     f"{kept} |")
    lines += [
        "",
        "## Examples",
        "",
        "Counts of each label from kept participants (CIFAR-10H style; `R` = not a digit / "
        "can't tell). `maj` is the majority label (`*`: decided by the tie rule), "
        "`src` the source's MNIST label, `pub` the published human label.",
        "",
        "| pos | MNIST idx | src | target | pub | n | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 "
        "| R | maj | changed | agree src |",
        "|" + "---|" * 20,
    ]
    for e in d["examples"]:
        counts = " | ".join(str(c) for c in e["counts"])
        maj = _label(e["majority"]) + ("*" if e["tie"] else "")
        agree = "-" if e["agreement_with_source"] is None else f"{e['agreement_with_source']:.2f}"
        changed = "-" if e["changed"] is None else ("yes" if e["changed"] else "no")
        lines.append(f"| {e['position']} | {e['source_index']} | {e['source_label']} | "
                     f"{_label(e['target'])} | {_label(e['published_label'])} | {e['n']} | "
                     f"{counts} | {maj} | {changed} | {agree} |")
    return "\n".join(lines) + "\n"


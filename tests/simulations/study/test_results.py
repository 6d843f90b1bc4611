"""Statistics of a labelling study: counts matrix, majority vote, Fleiss' kappa against a
published example, the exclusion rule, and the whole summary on a real study file.

Each hypothesis property is written as a checker and shown to fail on a deliberately
broken input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("statsmodels")

from invariance_tradeoffs.simulations.study import data as study_data  # noqa: E402
from invariance_tradeoffs.simulations.study import store  # noqa: E402
from invariance_tradeoffs.simulations.study.results import (  # noqa: E402
    REJECT_COLUMN,
    ExclusionRule,
    counts_matrix,
    exclusions,
    fleiss_kappa,
    majority_vote,
    report,
    summarise,
)
from invariance_tradeoffs.theory.oracles import REJECT  # noqa: E402
from tests.study_helpers import answer_through_store, make_study  # noqa: E402

# Fleiss' kappa worked example (10 subjects, 14 raters, 5 categories; Fleiss 1971 as
# reproduced in the Wikipedia article "Fleiss' kappa"): P-bar = 0.378, P-bar_e = 0.213,
# kappa = 0.210.
FLEISS_TABLE = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])

responses = st.integers(1, 8).flatmap(lambda n: st.tuples(
    st.just(n),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(-1, 9)), max_size=60)))


def counts_consistent(counts: np.ndarray, items: np.ndarray, labels: np.ndarray) -> bool:
    """Row sums are the labels per item, and each cell counts its (item, label) pairs."""
    if not np.array_equal(counts.sum(axis=1), np.bincount(items, minlength=len(counts))):
        return False
    for i, lab in {(int(i), int(lab)) for i, lab in zip(items, labels, strict=True)}:
        col = REJECT_COLUMN if lab == REJECT else lab
        if counts[i, col] != int(((items == i) & (labels == lab)).sum()):
            return False
    return True


@given(responses)
def test_counts_matrix_property(data):
    n, pairs = data
    items = np.array([p[0] for p in pairs], dtype=np.int64)
    labels = np.array([p[1] for p in pairs], dtype=np.int64)
    counts = counts_matrix(items, labels, n)
    assert counts.shape == (n, 11)
    assert counts_consistent(counts, items, labels)
    # order of the responses does not matter
    perm = np.random.default_rng(0).permutation(len(items))
    np.testing.assert_array_equal(counts_matrix(items[perm], labels[perm], n), counts)


def test_counts_checker_catches_a_broken_matrix():
    items, labels = np.array([0, 0, 1]), np.array([3, REJECT, 3])
    counts = counts_matrix(items, labels, 2)
    assert counts_consistent(counts, items, labels)
    broken = counts.copy()
    broken[0, 3] += 1  # a label moved from one column to another
    broken[0, REJECT_COLUMN] -= 1
    assert not counts_consistent(broken, items, labels)
    assert not counts_consistent(np.roll(counts, 1, axis=1), items, labels)


@pytest.mark.parametrize("items, labels, message", [
    ([0, 3], [1, 1], "item_ids must be integers in 0..2"),
    ([0], [10], "labels"),
    ([0, 1], [1], "same shape"),
])
def test_counts_matrix_refuses_bad_input(items, labels, message):
    with pytest.raises((ValueError, TypeError), match=message):
        counts_matrix(np.array(items), np.array(labels), 3)


def majority_ok(counts: np.ndarray, src: np.ndarray, maj) -> bool:
    """The majority is a top-count label; a unique top wins; ties follow the rule."""
    for row, s, lab, tie in zip(counts, src, maj.label, maj.tie, strict=True):
        if row.sum() == 0:
            if lab != REJECT or tie:
                return False
            continue
        top = np.flatnonzero(row == row.max())
        labels = [REJECT if c == REJECT_COLUMN else c for c in top]
        if len(top) == 1 and (tie or lab != labels[0]):
            return False
        if len(top) > 1 and (not tie or lab != (s if s in labels else REJECT)):
            return False
    return True


@given(st.lists(st.tuples(st.lists(st.integers(0, 4), min_size=11, max_size=11),
                          st.integers(0, 9)), min_size=1, max_size=20))
def test_majority_property(rows):
    counts = np.array([r[0] for r in rows])
    src = np.array([r[1] for r in rows])
    maj = majority_vote(counts, src)
    assert majority_ok(counts, src, maj)
    np.testing.assert_array_equal(maj.n, counts.sum(axis=1))


def test_majority_rule_by_hand_and_checker_catches_breakage():
    counts = np.zeros((4, 11), dtype=np.int64)
    counts[0, [3, 5]] = [2, 1]          # unique: 3
    counts[1, [3, 7]] = [2, 2]          # tie incl. source 7 -> 7
    counts[2, [3, 5]] = [2, 2]          # tie without source 7 -> REJECT
    counts[3, REJECT_COLUMN] = 3        # reject majority
    src = np.array([7, 7, 7, 7])
    maj = majority_vote(counts, src)
    assert maj.label.tolist() == [3, 7, REJECT, REJECT]
    assert maj.tie.tolist() == [False, True, True, False]
    broken = type(maj)(np.array([3, 3, REJECT, REJECT]), maj.n, maj.tie)
    assert not majority_ok(counts, src, broken)


def test_fleiss_kappa_published_example():
    kap = fleiss_kappa(FLEISS_TABLE)
    assert kap.value == pytest.approx(0.210, abs=5e-4)
    assert (kap.n_items, kap.n_raters) == (10, 14)


def test_fleiss_kappa_uses_rows_with_the_common_rater_count():
    extra = np.zeros((3, 5), dtype=np.int64)
    extra[:, 0] = [3, 1, 0]  # fewer raters: left out
    kap = fleiss_kappa(np.vstack([FLEISS_TABLE, extra]))
    assert kap.value == pytest.approx(0.210, abs=5e-4) and kap.n_items == 10
    assert "left out" in kap.note


@given(st.lists(st.integers(0, 10), min_size=2, max_size=15), st.integers(2, 6))
def test_fleiss_kappa_perfect_agreement_is_one(cats, raters):
    counts = np.zeros((len(cats), 11), dtype=np.int64)
    counts[np.arange(len(cats)), cats] = raters
    kap = fleiss_kappa(counts)
    if len(set(cats)) == 1:
        assert kap.value is None and "one category" in kap.note
    else:
        assert kap.value == pytest.approx(1.0)
        # the check fails once one rater disagrees
        counts[0, cats[0]] -= 1
        counts[0, (cats[0] + 1) % 11] += 1
        assert fleiss_kappa(counts).value < 1.0


def test_fleiss_kappa_undefined_without_two_labels():
    counts = np.zeros((3, 11), dtype=np.int64)
    counts[:, 2] = 1
    assert fleiss_kappa(counts).value is None


def rule_ok(answered, correct, kept, threshold) -> bool:
    expected = [(a > 0 and c >= threshold * a) for a, c in zip(answered, correct, strict=True)]
    return list(kept) == expected


@given(st.lists(st.integers(0, 10).flatmap(lambda a: st.tuples(st.just(a), st.integers(0, a))),
                min_size=1, max_size=12),
       st.sampled_from([0.0, 0.5, 0.75, 0.8, 1.0]))
def test_exclusion_rule_property(pairs, threshold):
    answered = np.array([p[0] for p in pairs])
    correct = np.array([p[1] for p in pairs])
    kept, reasons = exclusions(answered, correct, ExclusionRule(threshold), True)
    assert rule_ok(answered, correct, kept, threshold)
    assert all((r == "") == k for r, k in zip(reasons, kept, strict=True))
    # a stricter threshold never keeps more participants
    stricter, _ = exclusions(answered, correct, ExclusionRule(1.0), True)
    assert not np.any(stricter & ~kept)
    # without attention checks nobody is excluded
    assert exclusions(answered, correct, ExclusionRule(threshold), False)[0].all()


def test_exclusion_rule_by_hand_and_checker_catches_breakage():
    kept, reasons = exclusions(np.array([4, 4, 2, 0]), np.array([3, 2, 2, 0]),
                               ExclusionRule(0.75), True)
    assert kept.tolist() == [True, False, True, False]
    assert reasons[1] == "2 of 4 attention checks correct (< 75%)"
    assert reasons[3] == "no attention check answered"
    assert not rule_ok([4, 4], [3, 2], [True, True], 0.75)
    with pytest.raises(ValueError, match="--min-check-accuracy"):
        ExclusionRule(1.5)
    with pytest.raises(ValueError, match="correct must be in 0..answered"):
        exclusions(np.array([1]), np.array([2]), ExclusionRule(), True)


def test_summary_of_a_real_study_file(tmp_path):
    study = make_study(tmp_path / "s.study", n=12, participants=3, k=3, rate=0.2)
    tokens = study.tokens
    # participants 1 and 2 answer checks right and examples with the published label;
    # participant 3 fails every check and always says 0
    for t in tokens[:2]:
        answer_through_store(study.path, t, lambda kind, src, ref: src if kind == "check"
                             else ref)
    answer_through_store(study.path, tokens[2], lambda kind, src, ref: (src + 1) % 10)
    conn = store.connect(study.path)
    res = summarise(study_data.read_study(conn))
    conn.close()
    assert res.kept.tolist() == [True, True, False]
    assert res.reasons[2].startswith("0 of ")
    assert res.counts.sum() == 2 * 12 and (res.majority.n == 2).all()
    # synthetic reference labels == source labels: no change, full agreement
    assert res.label_change.value == 0 and res.label_change.n == 12
    assert res.agree_reference.value == 1.0
    assert res.kappa.value == pytest.approx(1.0) and res.kappa.n_raters == 2
    assert res.majority_target.value == 0.0
    text = report(res)
    assert "no: 0 of" in text and "at least 75%" in text
    d = res.to_dict()
    assert d["participants_excluded"] == 1 and len(d["examples"]) == 12
    # with no exclusion the third participant's labels count: ties -> source label
    loose = summarise(study_data.read_study(store.connect(study.path)), ExclusionRule(0.0))
    assert loose.kept.all() and loose.counts.sum() == 36
    assert loose.label_change.value == 0.0


def test_summary_reject_and_change(tmp_path):
    study = make_study(tmp_path / "s.study", n=10, participants=2, k=2, rate=0.2)
    for t in study.tokens:
        answer_through_store(study.path, t, lambda kind, src, ref: src if kind == "check"
                             else (REJECT if src < 5 else src))
    res = summarise(study_data.read_study(store.connect(study.path)))
    assert res.label_change.value == pytest.approx(0.5)
    assert res.majority_reject.value == pytest.approx(0.5)
    ex = res.per_example()
    assert ex[0]["share_rejected"] == 1.0 and ex[0]["majority"] == REJECT
    assert ex[7]["agreement_with_source"] == 1.0 and ex[7]["changed"] is False

"""Small studies for the labelling-study tests: synthetic images, a fake MNIST test split,
answering through the store as a participant would."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from invariance_tradeoffs.simulations.data.mnist import MNISTSplit
from invariance_tradeoffs.simulations.study import store
from invariance_tradeoffs.simulations.study.design import (
    CreatedStudy,
    Design,
    StudyItems,
    create_study,
)


def synthetic_items(n: int = 12, seed: int = 0, *, reference: bool = True) -> StudyItems:
    """``n`` random uint8 images with sources 0..n-1 of label ``i % 10``."""
    rng = np.random.default_rng(seed)
    idx = np.arange(n, dtype=np.int64)
    return StudyItems(
        images=rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8),
        positions=idx.copy(),
        source_indices=idx.copy(),
        source_labels=idx % 10,
        targets=(idx + 1) % 10,
        reference_labels=(idx % 10) if reference else None,
        origin="synthetic",
        name="linf/study_eps03",
    )


def fake_test_split(n: int = 200, seed: int = 1) -> MNISTSplit:
    """A stand-in for the MNIST test split (random images, labels ``i % 10``)."""
    rng = np.random.default_rng(seed)
    return MNISTSplit(rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8),
                      (np.arange(n) % 10).astype(np.uint8))


def make_study(path: Path, n: int = 12, *, participants: int = 3, k: int = 2,
               rate: float = 0.2, seed: int = 0) -> CreatedStudy:
    return create_study(path, synthetic_items(n), Design(participants, k, rate, seed),
                        fake_test_split())


def item_of_nonce(conn, nonce: str) -> tuple[int, str, int, int]:
    """(item id, kind, source label, reference label or -2) of an assignment nonce."""
    row = conn.execute(
        "SELECT i.id, i.kind, i.source_label, COALESCE(i.reference_label, -2) "
        "FROM assignments a JOIN items i ON i.id = a.item_id WHERE a.nonce = ?",
        (nonce,)).fetchone()
    return int(row[0]), row[1], int(row[2]), int(row[3])


def answer_through_store(path: Path, token: str,
                         choose: Callable[[str, int, int], int], limit: int | None = None
                         ) -> int:
    """Claim ``token``'s invite and answer its trials with ``choose(kind, source_label,
    reference_label)``; returns the number of answers."""
    conn = store.connect(path)
    try:
        who = store.find_participant(conn, token)
        store.claim(conn, None, who, None)
        done = 0
        while (trial := store.current_trial(conn, who.id)) is not None:
            if limit is not None and done >= limit:
                break
            _, kind, src, ref = item_of_nonce(conn, trial.nonce)
            store.record_answer(conn, None, who.id, trial.nonce, choose(kind, src, ref), None)
            done += 1
        return done
    finally:
        conn.close()


def read_links(path: Path) -> tuple[list[str], str]:
    """(participant tokens, admin token) from a links CSV written by ``study create``."""
    rows = list(csv.DictReader(path.open()))
    return ([r["token"] for r in rows if r["role"] == "participant"],
            next(r["token"] for r in rows if r["role"] == "admin"))

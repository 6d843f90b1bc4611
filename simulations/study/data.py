"""Reading a study back: its items and answers as arrays (:class:`StudyData`), the stored
images, per-item progress, and answers imported from Label Studio."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from invariance_tradeoffs.simulations.study.store import (
    IMAGE_SHAPE,
    new_token,
    read_meta,
    transaction,
)


# --------------------------------------------------------------------------------------
# reading a whole study (results, exports, admin page)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyData:
    """Everything a study holds except the images, as arrays.

    Items (``n_items`` rows, indexed by item id): ``item_ref``, ``item_kind``
    (``'example'``/``'check'``), ``item_position``, ``source_index`` (-1 when unknown),
    ``source_label``, ``target`` (-1 when unknown), ``reference_label`` (-2 when unknown,
    since -1 is REJECT).

    Participants: ``participant_id``, ``participant_origin``, ``started_at``,
    ``finished_at`` (NaN when not), ``assigned`` (number of assignments).

    Responses (one row each): ``resp_participant``, ``resp_item``, ``resp_label``,
    ``resp_position``, ``resp_time`` (unix seconds), ``resp_rt_ms`` (-1 when not sent),
    ``resp_origin``.
    """

    meta: dict
    item_ref: np.ndarray
    item_kind: np.ndarray
    item_position: np.ndarray
    source_index: np.ndarray
    source_label: np.ndarray
    target: np.ndarray
    reference_label: np.ndarray
    participant_id: np.ndarray
    participant_origin: np.ndarray
    started_at: np.ndarray
    finished_at: np.ndarray
    assigned: np.ndarray
    resp_participant: np.ndarray
    resp_item: np.ndarray
    resp_label: np.ndarray
    resp_position: np.ndarray
    resp_time: np.ndarray
    resp_rt_ms: np.ndarray
    resp_origin: np.ndarray

    @property
    def n_items(self) -> int:
        return int(self.item_kind.shape[0])

    @property
    def is_example(self) -> np.ndarray:
        """Boolean mask over items: invariance examples (not attention checks)."""
        return self.item_kind == "example"


#: Missing reference label (REJECT = -1 is a label).
NO_REFERENCE = -2


def _column(rows: list[tuple], j: int, dtype: type, missing: object = None) -> np.ndarray:
    vals = [missing if r[j] is None else r[j] for r in rows]
    return np.array(vals, dtype=dtype) if vals else np.zeros(0, dtype=dtype)


def read_study(conn: sqlite3.Connection) -> StudyData:
    """Read the study's items, participants and responses (one consistent snapshot)."""
    conn.execute("BEGIN")
    try:
        items = conn.execute(
            "SELECT ref, kind, position, source_index, source_label, target, "
            "reference_label FROM items ORDER BY id").fetchall()
        parts = conn.execute(
            "SELECT p.id, p.origin, p.started_at, p.finished_at, "
            "(SELECT COUNT(*) FROM assignments a WHERE a.participant_id = p.id) "
            "FROM participants p ORDER BY p.id").fetchall()
        resps = conn.execute(
            "SELECT a.participant_id, a.item_id, r.label, a.position, r.answered_at, "
            "r.rt_ms, r.origin FROM responses r JOIN assignments a "
            "ON a.id = r.assignment_id ORDER BY r.answered_at, r.assignment_id").fetchall()
        meta = read_meta(conn)
    finally:
        conn.execute("COMMIT")
    return StudyData(
        meta=meta,
        item_ref=_column(items, 0, object),
        item_kind=_column(items, 1, object),
        item_position=_column(items, 2, np.int64, -1),
        source_index=_column(items, 3, np.int64, -1),
        source_label=_column(items, 4, np.int64),
        target=_column(items, 5, np.int64, -1),
        reference_label=_column(items, 6, np.int64, NO_REFERENCE),
        participant_id=_column(parts, 0, np.int64),
        participant_origin=_column(parts, 1, object),
        started_at=_column(parts, 2, np.float64, np.nan),
        finished_at=_column(parts, 3, np.float64, np.nan),
        assigned=_column(parts, 4, np.int64),
        resp_participant=_column(resps, 0, np.int64),
        resp_item=_column(resps, 1, np.int64),
        resp_label=_column(resps, 2, np.int64),
        resp_position=_column(resps, 3, np.int64),
        resp_time=_column(resps, 4, np.float64),
        resp_rt_ms=_column(resps, 5, np.int64, -1),
        resp_origin=_column(resps, 6, object),
    )


def item_images(conn: sqlite3.Connection, item_ids: Sequence[int]) -> np.ndarray:
    """The ``(n, 28, 28)`` ``uint8`` images of ``item_ids``, as shown to participants."""
    out = np.zeros((len(item_ids), *IMAGE_SHAPE), dtype=np.uint8)
    for k, i in enumerate(item_ids):
        row = conn.execute("SELECT pixels FROM items WHERE id = ?", (int(i),)).fetchone()
        if row is None:
            raise ValueError(f"item {i} is not in the study")
        out[k] = np.frombuffer(row[0], dtype=np.uint8).reshape(IMAGE_SHAPE)
    return out


def item_pngs(conn: sqlite3.Connection) -> list[tuple[int, str, bytes]]:
    """``(id, ref, png)`` of every item, by id."""
    return [(int(i), r, bytes(p))
            for i, r, p in conn.execute("SELECT id, ref, png FROM items ORDER BY id")]


# --------------------------------------------------------------------------------------
# imported annotations (Label Studio)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportedAnswer:
    """One answer from outside the web app: annotator name, item ref, label, origin tag."""

    annotator: str
    item_ref: str
    label: int
    origin: str
    answered_at: float


def add_imported_answers(conn: sqlite3.Connection, answers: Sequence[ImportedAnswer]
                         ) -> tuple[int, int]:
    """Record imported answers in one transaction; return (added, already present).

    Each annotator becomes a participant with origin ``annotator`` (created on first
    sight); an answer to an item that annotator already answered is skipped (so
    importing the same export twice adds nothing). Unknown item refs raise
    ``ValueError`` and nothing is written.
    """
    added = skipped = 0
    with transaction(conn):
        refs = dict(conn.execute("SELECT ref, id FROM items"))
        for ans in answers:
            if ans.item_ref not in refs:
                raise ValueError(f"{ans.origin}: item {ans.item_ref!r} is not in this study")
            row = conn.execute("SELECT id FROM participants WHERE origin = ?",
                               (ans.annotator,)).fetchone()
            pid = row[0] if row else conn.execute(
                "INSERT INTO participants (origin, started_at) VALUES (?, ?)",
                (ans.annotator, ans.answered_at)).lastrowid
            item = refs[ans.item_ref]
            if conn.execute("SELECT 1 FROM assignments WHERE participant_id = ? AND "
                            "item_id = ?", (pid, item)).fetchone():
                skipped += 1
                continue
            pos = conn.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM assignments "
                               "WHERE participant_id = ?", (pid,)).fetchone()[0]
            aid = conn.execute(
                "INSERT INTO assignments (participant_id, position, item_id, nonce) "
                "VALUES (?, ?, ?, ?)", (pid, pos, item, new_token())).lastrowid
            conn.execute("INSERT INTO responses VALUES (?, ?, ?, NULL, ?)",
                         (aid, int(ans.label), ans.answered_at, ans.origin))
            added += 1
    return added, skipped


def item_progress(conn: sqlite3.Connection) -> list[dict]:
    """Per item: id, kind, position, MNIST index, answers planned and received."""
    rows = conn.execute(
        "SELECT i.id, i.kind, i.position, i.source_index, COUNT(a.id), COUNT(r.assignment_id) "
        "FROM items i LEFT JOIN assignments a ON a.item_id = i.id "
        "LEFT JOIN responses r ON r.assignment_id = a.id GROUP BY i.id ORDER BY i.id")
    return [{"id": i, "kind": k, "position": p, "source_index": s, "planned": n,
             "received": m} for i, k, p, s, n, m in rows]

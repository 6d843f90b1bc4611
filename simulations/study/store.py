"""The study file: one SQLite database (write-ahead log) holding everything a study is.

Tables
------
``meta``
    key -> JSON value: schema version, study name, design, origin, creation time.
``items``
    The images to label, stored in the database (784 raw ``uint8`` pixels and a PNG):
    ``kind`` is ``'example'`` (an invariance example) or ``'check'`` (a clean MNIST test
    image whose label is known, for attention checks); ``ref`` is a random opaque name
    (used by Label Studio exports, reveals nothing); ``source_label`` is the source's
    MNIST label (or the check's label), ``target`` the attack's target class and
    ``reference_label`` the published human label, when known. Participants never
    receive any of these columns, only the PNG.
``participants``
    One row per invite (``origin='invite'``) or imported annotator
    (``origin='labelstudio:<user>'``). Invite tokens and browser sessions are stored as
    SHA-256 hashes only.
``assignments``
    The plan: participant, position in that participant's sequence, item, and a random
    per-assignment ``nonce`` that the participant's answer must quote.
``responses``
    At most one answer per assignment (the primary key), a label in 0..9 or
    :data:`invariance_tradeoffs.theory.oracles.REJECT`.
``admin``
    The hash of the admin token.

Every write is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) with
``synchronous=FULL``: when :func:`record_answer` returns, the answer is on disk. Refusals
(:class:`Refused`) roll back, so a refused request writes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from invariance_tradeoffs.theory.oracles import REJECT

__all__ = [
    "SCHEMA_VERSION",
    "Refused",
    "Trial",
    "connect",
    "hash_token",
    "new_token",
    "png_bytes",
]

SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of a study file ("ITST"), so any other SQLite file is refused.
APPLICATION_ID = 0x49545354
IMAGE_SHAPE = (28, 28)

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    ref TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('example', 'check')),
    position INTEGER,
    source_index INTEGER,
    source_label INTEGER NOT NULL CHECK (source_label BETWEEN 0 AND 9),
    target INTEGER CHECK (target BETWEEN 0 AND 9),
    reference_label INTEGER CHECK (reference_label BETWEEN -1 AND 9),
    pixels BLOB NOT NULL CHECK (length(pixels) = 784),
    png BLOB NOT NULL
) STRICT;
CREATE TABLE participants (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    token_hash TEXT UNIQUE,
    session_hash TEXT,
    started_at REAL,
    finished_at REAL
) STRICT;
CREATE TABLE assignments (
    id INTEGER PRIMARY KEY,
    participant_id INTEGER NOT NULL REFERENCES participants(id),
    position INTEGER NOT NULL,
    item_id INTEGER NOT NULL REFERENCES items(id),
    nonce TEXT NOT NULL UNIQUE,
    UNIQUE (participant_id, position),
    UNIQUE (participant_id, item_id)
) STRICT;
CREATE TABLE responses (
    assignment_id INTEGER PRIMARY KEY REFERENCES assignments(id),
    label INTEGER NOT NULL CHECK (label BETWEEN -1 AND 9),
    answered_at REAL NOT NULL,
    rt_ms INTEGER,
    origin TEXT NOT NULL
) STRICT;
CREATE TABLE admin (id INTEGER PRIMARY KEY CHECK (id = 1), token_hash TEXT NOT NULL) STRICT;
"""


class Refused(Exception):
    """A request that must be refused, with nothing written.

    Attributes
    ----------
    status : int
        The HTTP status that says why (404 unknown, 409 conflict, ...).
    message : str
        A sentence for the participant or researcher.
    retry_state : bool
        The client should fetch its state again and carry on (the answer was already
        recorded, or the participant has moved on).
    """

    def __init__(self, status: int, message: str, *, retry_state: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_state = retry_state


def new_token() -> str:
    """A fresh random token (``secrets.token_urlsafe``, 192 bits)."""
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a token: tokens are stored and looked up by hash only."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def png_bytes(image: np.ndarray) -> bytes:
    """Encode one ``(28, 28)`` ``uint8`` image as an 8-bit greyscale PNG."""
    from PIL import Image

    if image.dtype != np.uint8 or image.shape != IMAGE_SHAPE:
        raise ValueError(f"image must be uint8 {IMAGE_SHAPE}, got {image.dtype} {image.shape}")
    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# --------------------------------------------------------------------------------------
# opening
# --------------------------------------------------------------------------------------
def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA synchronous = FULL")


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    """Open an existing study file (write-ahead log mode), checking that it is one.

    Parameters
    ----------
    path : path
        The study file written by :func:`simulations.study.design.create_study`.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        ``path`` is not a study file of this schema version (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study file {path} not found")
    uri = f"file:{path.resolve().as_posix()}?mode=rw"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id != APPLICATION_ID:
            raise ValueError(f"{path} is not a labelling study file (tradeoffs study create)")
        version = _meta_value(conn, "schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"study file {path} has schema version {version}, this "
                             f"version of the package reads {SCHEMA_VERSION}")
        _configure(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ValueError(f"{path} is not a labelling study file: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _meta_value(conn: sqlite3.Connection, key: str) -> object:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else json.loads(row[0])


def read_meta(conn: sqlite3.Connection) -> dict:
    """The ``meta`` table as a dict (JSON values decoded)."""
    return {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}


@contextmanager
def transaction(conn: sqlite3.Connection, lock: threading.Lock | None = None) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; any exception (a :class:`Refused` too) rolls back.

    ``lock`` serialises writers of one process (so they never spin on SQLite's busy
    handler); other processes are kept out by SQLite's own lock.
    """
    if lock is not None:
        lock.acquire()
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        if lock is not None:
            lock.release()


# --------------------------------------------------------------------------------------
# writing a new study
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewItem:
    """One image row of a new study (see the module docstring for the columns)."""

    kind: str
    position: int | None
    source_index: int | None
    source_label: int
    target: int | None
    reference_label: int | None
    pixels: np.ndarray


def write_study(
    path: str | os.PathLike,
    meta: dict,
    items: Sequence[NewItem],
    sequences: Sequence[Sequence[int]],
) -> tuple[list[str], str]:
    """Write a new study file atomically; return the participant tokens and admin token.

    Parameters
    ----------
    path : path
        Where the study file goes; must not exist yet.
    meta : dict
        JSON-serialisable study description (stored in ``meta``).
    items : sequence of NewItem
        The images; item ``i`` gets id ``i``.
    sequences : sequence of sequences of int
        Per participant, the item ids in the order they are shown.

    Returns
    -------
    tokens : list of str
        Invite token of participant ``p`` (id ``p + 1``) at position ``p``.
    admin_token : str
    """
    path = Path(path)
    if path.exists():
        raise ValueError(f"study file {path} already exists; choose another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tokens = [new_token() for _ in sequences]
    admin_token = new_token()
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        os.chmod(tmp, 0o600)  # answers and token hashes: the researcher's only
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA journal_mode = WAL")
        _configure(conn)
        conn.executescript(_SCHEMA)
        with transaction(conn):
            rows = {**meta, "schema_version": SCHEMA_VERSION}
            conn.executemany("INSERT INTO meta VALUES (?, ?)",
                             [(k, json.dumps(v)) for k, v in rows.items()])
            refs = set()
            for i, item in enumerate(items):
                ref = secrets.token_hex(8)
                while ref in refs:  # pragma: no cover - 64 random bits
                    ref = secrets.token_hex(8)
                refs.add(ref)
                conn.execute(
                    "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (i, ref, item.kind, item.position, item.source_index,
                     item.source_label, item.target, item.reference_label,
                     item.pixels.tobytes(), png_bytes(item.pixels)))
            for p, (token, seq) in enumerate(zip(tokens, sequences, strict=True)):
                conn.execute("INSERT INTO participants (id, origin, token_hash) VALUES (?, ?, ?)",
                             (p + 1, "invite", hash_token(token)))
                conn.executemany(
                    "INSERT INTO assignments (participant_id, position, item_id, nonce) "
                    "VALUES (?, ?, ?, ?)",
                    [(p + 1, pos, int(item), new_token()) for pos, item in enumerate(seq)])
            conn.execute("INSERT INTO admin VALUES (1, ?)", (hash_token(admin_token),))
        conn.close()
        os.replace(tmp, path)
    except BaseException:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        raise
    return tokens, admin_token


# --------------------------------------------------------------------------------------
# participants (the web application's queries)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Participant:
    """An invited participant, as the web application sees them."""

    id: int
    session_hash: str | None
    finished: bool


@dataclass(frozen=True)
class Trial:
    """The participant's current image: its position and the nonce an answer must quote."""

    assignment_id: int
    position: int
    nonce: str


def find_participant(conn: sqlite3.Connection, token: str) -> Participant:
    """The invited participant holding ``token``; :class:`Refused` (404) when none does."""
    row = conn.execute(
        "SELECT id, session_hash, finished_at IS NOT NULL FROM participants "
        "WHERE token_hash = ?", (hash_token(token),)).fetchone()
    if row is None:
        raise Refused(404, "unknown invite link: check the link, or ask the researcher "
                           "for a new one")
    return Participant(int(row[0]), row[1], bool(row[2]))


def claim(conn: sqlite3.Connection, lock: threading.Lock | None, participant: Participant,
          session: str | None) -> str | None:
    """Bind the invite to one browser session (the first one to start).

    Returns the new session secret when the invite is claimed now, ``None`` when
    ``session`` already holds it. :class:`Refused` (409) when another browser holds it.
    """
    if participant.session_hash is not None:
        check_session(participant, session)
        return None
    fresh = new_token()
    with transaction(conn, lock):
        cur = conn.execute(
            "UPDATE participants SET session_hash = ?, started_at = ? "
            "WHERE id = ? AND session_hash IS NULL",
            (hash_token(fresh), time.time(), participant.id))
        if cur.rowcount != 1:
            raise Refused(409, "this invite link is already in use in another browser")
    return fresh


def check_session(participant: Participant, session: str | None) -> None:
    """:class:`Refused` unless ``session`` is the browser session holding the invite."""
    if participant.session_hash is None:
        raise Refused(403, "this invite link has not been started: open it and press Start")
    if session is None or not secrets.compare_digest(hash_token(session),
                                                     participant.session_hash):
        raise Refused(409, "this invite link is already in use in another browser; ask "
                           "the researcher for a new link")


def current_trial(conn: sqlite3.Connection, participant_id: int) -> Trial | None:
    """The first unanswered assignment of the participant (``None`` when finished)."""
    row = conn.execute(
        "SELECT a.id, a.position, a.nonce FROM assignments a "
        "WHERE a.participant_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM responses r WHERE r.assignment_id = a.id) "
        "ORDER BY a.position LIMIT 1", (participant_id,)).fetchone()
    return None if row is None else Trial(int(row[0]), int(row[1]), row[2])


def progress(conn: sqlite3.Connection, participant_id: int) -> tuple[int, int]:
    """(answered, assigned) for one participant."""
    row = conn.execute(
        "SELECT COUNT(r.assignment_id), COUNT(*) FROM assignments a "
        "LEFT JOIN responses r ON r.assignment_id = a.id WHERE a.participant_id = ?",
        (participant_id,)).fetchone()
    return int(row[0]), int(row[1])


def trial_png(conn: sqlite3.Connection, participant_id: int, nonce: str) -> bytes:
    """The PNG of the participant's *current* image named by ``nonce``.

    Any other nonce (answered, not yet due, another participant's, unknown) is refused
    with 404, so a participant sees one image at a time and nothing else.
    """
    trial = current_trial(conn, participant_id)
    if trial is None or not secrets.compare_digest(trial.nonce, nonce):
        raise Refused(404, "no such image is waiting for you")
    row = conn.execute("SELECT i.png FROM assignments a JOIN items i ON i.id = a.item_id "
                       "WHERE a.id = ?", (trial.assignment_id,)).fetchone()
    return bytes(row[0])


def record_answer(
    conn: sqlite3.Connection,
    lock: threading.Lock | None,
    participant_id: int,
    nonce: str,
    label: int,
    rt_ms: int | None,
) -> None:
    """Commit one answer to the participant's current image, or refuse with nothing written.

    Refusals: 404 the nonce is not one of this participant's assignments; 409 it was
    already answered (a replay or duplicate) or is not the current image.
    """
    if not (label == REJECT or 0 <= label <= 9):
        raise Refused(422, f"label must be 0-9 or {REJECT} (not a digit / can't tell)")
    with transaction(conn, lock):
        row = conn.execute(
            "SELECT a.id, a.participant_id, "
            "EXISTS (SELECT 1 FROM responses r WHERE r.assignment_id = a.id) "
            "FROM assignments a WHERE a.nonce = ?", (nonce,)).fetchone()
        if row is None or int(row[1]) != participant_id:
            raise Refused(404, "this image is not assigned to you")
        if row[2]:
            raise Refused(409, "this image was already answered (duplicate submission)",
                          retry_state=True)
        trial = current_trial(conn, participant_id)
        if trial is None or trial.assignment_id != int(row[0]):
            raise Refused(409, "this is not your current image", retry_state=True)
        now = time.time()
        conn.execute("INSERT INTO responses VALUES (?, ?, ?, ?, 'web')",
                     (trial.assignment_id, int(label), now, rt_ms))
        if current_trial(conn, participant_id) is None:
            conn.execute("UPDATE participants SET finished_at = ? WHERE id = ?",
                         (now, participant_id))


# --------------------------------------------------------------------------------------
# admin
# --------------------------------------------------------------------------------------
def check_admin(conn: sqlite3.Connection, token: str) -> None:
    """:class:`Refused` (403) unless ``token`` is the admin token."""
    row = conn.execute("SELECT token_hash FROM admin WHERE id = 1").fetchone()
    if row is None or not secrets.compare_digest(hash_token(token), row[0]):
        raise Refused(403, "admin token required")


def reissue_tokens(conn: sqlite3.Connection, participant_ids: Sequence[int]) -> dict[int, str]:
    """New invite tokens for ``participant_ids`` (old tokens and browser claims dropped;
    answers kept, so the participant resumes where they were)."""
    fresh = {int(p): new_token() for p in participant_ids}
    with transaction(conn):
        for pid, token in fresh.items():
            cur = conn.execute(
                "UPDATE participants SET token_hash = ?, session_hash = NULL "
                "WHERE id = ? AND origin = 'invite'", (hash_token(token), pid))
            if cur.rowcount != 1:
                raise ValueError(f"--participant {pid}: no invited participant with this id")
    return fresh


def reissue_admin_token(conn: sqlite3.Connection) -> str:
    """A new admin token (the old one stops working)."""
    token = new_token()
    with transaction(conn):
        conn.execute("UPDATE admin SET token_hash = ? WHERE id = 1", (hash_token(token),))
    return token



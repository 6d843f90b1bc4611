"""A study's labels in other formats: the authors' release, CSV, Label Studio.

- :func:`export_release`: ``<name>.npy`` (the images as shown, ``uint8``),
  ``<name>_labels.npy`` (majority labels, REJECT = -1 allowed) and
  ``<name>_indexs.npy`` (MNIST test indices of the sources), so that
  ``load_published_examples(folder)`` reads the study as one more labelled set
  (and ``tradeoffs mnist evaluate --published-dir folder`` measures models on it).
- :func:`responses_csv`, :func:`counts_csv`: raw responses, and the counts matrix.
- :func:`labelstudio_tasks` / :data:`LABELSTUDIO_CONFIG`: the study's images as a Label
  Studio import (tasks JSON, images inline as PNG data URIs; attention checks included,
  indistinguishable from examples), and :func:`read_labelstudio_export`, which reads
  Label Studio's JSON export back into the study (:func:`import_labelstudio`).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from invariance_tradeoffs.simulations.study.data import (
    ImportedAnswer,
    add_imported_answers,
    item_images,
    item_pngs,
)
from invariance_tradeoffs.simulations.study.results import N_COLUMNS, StudyResults
from invariance_tradeoffs.theory.oracles import REJECT

__all__ = [
    "LABELSTUDIO_CONFIG",
    "REJECT_CHOICE",
    "ReleaseExport",
    "counts_csv",
    "export_release",
    "import_labelstudio",
    "labelstudio_tasks",
    "read_labelstudio_export",
    "responses_csv",
    "write_file",
]

#: The Label Studio choice (and the web app's button) for REJECT.
REJECT_CHOICE = "not a digit / can't tell"
#: Largest Label Studio export read (bytes): refuses a wrong file before parsing it.
MAX_LABELSTUDIO_BYTES = 512 * 1024 * 1024

#: Label Studio labelling configuration for the tasks of :func:`labelstudio_tasks`.
LABELSTUDIO_CONFIG = (
    '<View>\n'
    '  <Image name="image" value="$image" zoom="false" width="280px"/>\n'
    '  <Choices name="label" toName="image" choice="single-radio" required="true" '
    'showInline="true">\n'
    + "".join(f'    <Choice value="{d}" hotkey="{d}"/>\n' for d in range(10))
    + f'    <Choice value="{REJECT_CHOICE}" hotkey="x"/>\n'
    '  </Choices>\n'
    '</View>\n'
)


def write_file(path: str | os.PathLike, write: Callable[[io.BufferedIOBase], None]) -> Path:
    """Write ``path`` through a temporary file in its folder, then rename (never half
    written); ``write`` gets a binary file object. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _text(text: str) -> Callable[[io.BufferedIOBase], None]:
    return lambda fh: fh.write(text.encode("utf-8"))


@dataclass(frozen=True)
class ReleaseExport:
    """What :func:`export_release` wrote: the three files, the examples written, and
    the examples left out because no kept participant labelled them."""

    files: tuple[Path, Path, Path]
    n_written: int
    n_left_out: int


def export_release(conn: sqlite3.Connection, res: StudyResults, folder: str | os.PathLike,
                   name: str | None = None, *, partial: bool = False) -> ReleaseExport:
    """Write the labelled examples in the authors' release format under ``folder``.

    Parameters
    ----------
    conn : sqlite3.Connection
        The open study (for the images).
    res : StudyResults
        The results whose majority labels are written.
    folder : path
        Output folder; files go to ``folder/<name>.npy`` etc.
    name : str, optional
        Set name, e.g. ``linf/study_eps03`` (default: the study's ``release_name``); the
        folder part is the norm and ``epsDD`` the radius for the loader.
    partial : bool
        Write the labelled examples when some have no label from a kept participant
        (default: refuse, naming how many).
    """
    from invariance_tradeoffs.simulations.study.design import check_set_name

    name = check_set_name(name or res.data.meta.get("release_name") or "study", "--name")
    lab = res.majority.labelled
    missing = int((~lab).sum())
    if missing and not partial:
        raise ValueError(f"{missing} of {lab.size} examples have no label from a kept "
                         "participant; finish the study, or pass --partial to export the "
                         f"{int(lab.sum())} labelled ones")
    if not lab.any():
        raise ValueError("no example has a label from a kept participant: nothing to export")
    ids = res.example_ids[lab]
    images = item_images(conn, ids)
    labels = res.majority.label[lab].astype(np.int64)
    indices = res.data.source_index[ids].astype(np.int64)
    if (indices < 0).any():
        raise ValueError("some examples have no MNIST source index; the release format "
                         "needs one per example")
    base = Path(folder) / name
    files = tuple(write_file(base.with_name(base.name + suffix),
                             lambda fh, a=arr: np.save(fh, a, allow_pickle=False))
                  for suffix, arr in ((".npy", images), ("_labels.npy", labels),
                                      ("_indexs.npy", indices)))
    return ReleaseExport(files, int(lab.sum()), missing)  # type: ignore[arg-type]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds")


def responses_csv(res: StudyResults) -> str:
    """Every response, one row each, in answer order, with the item's provenance and
    whether the participant is kept under the results' exclusion rule."""
    d = res.data
    slot = np.searchsorted(d.participant_id, d.resp_participant)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["participant", "participant_origin", "participant_kept", "trial_position",
                "item_kind", "item_position", "mnist_test_index", "source_label", "target",
                "label", "answered_at_utc", "response_time_ms", "response_origin"])
    for r in range(d.resp_label.size):
        i, j = int(d.resp_item[r]), int(slot[r])
        w.writerow([int(d.resp_participant[r]), d.participant_origin[j], int(res.kept[j]),
                    int(d.resp_position[r]), d.item_kind[i],
                    "" if d.item_position[i] < 0 else int(d.item_position[i]),
                    int(d.source_index[i]), int(d.source_label[i]),
                    "" if d.target[i] < 0 else int(d.target[i]), int(d.resp_label[r]),
                    _iso(float(d.resp_time[r])),
                    "" if d.resp_rt_ms[r] < 0 else int(d.resp_rt_ms[r]), d.resp_origin[r]])
    return buf.getvalue()


def counts_csv(res: StudyResults) -> str:
    """The counts matrix (kept participants), one row per example: position, MNIST
    index, source label, counts of 0..9 and of reject, majority label."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["position", "mnist_test_index", "source_label",
                *[str(c) for c in range(N_COLUMNS - 1)], "reject", "majority"])
    for k, i in enumerate(res.example_ids.tolist()):
        n = int(res.majority.n[k])
        w.writerow([int(res.data.item_position[i]), int(res.data.source_index[i]),
                    int(res.data.source_label[i]), *res.counts[k].tolist(),
                    int(res.majority.label[k]) if n else ""])
    return buf.getvalue()


# --------------------------------------------------------------------------------------
# Label Studio
# --------------------------------------------------------------------------------------
def labelstudio_tasks(conn: sqlite3.Connection) -> list[dict]:
    """One Label Studio task per study image (examples and attention checks, in a seeded
    shuffle so checks are not grouped): ``{"data": {"image": <PNG data URI>, "item":
    <opaque ref>}}``. Use with :data:`LABELSTUDIO_CONFIG`."""
    rows = item_pngs(conn)
    seed = conn.execute("SELECT value FROM meta WHERE key = 'design'").fetchone()
    order = np.random.default_rng(json.loads(seed[0])["seed"]).permutation(len(rows))
    return [{"data": {"image": "data:image/png;base64,"
                      + base64.b64encode(rows[k][2]).decode("ascii"),
                      "item": rows[k][1]}} for k in order.tolist()]


def _choice_label(choice: object, where: str) -> int:
    if choice == REJECT_CHOICE:
        return REJECT
    if isinstance(choice, str) and len(choice) == 1 and choice.isdigit():
        return int(choice)
    raise ValueError(f"{where}: choice {choice!r} is not a digit 0-9 or {REJECT_CHOICE!r}")


def _annotator(completed_by: object, where: str) -> str:
    # Label Studio writes the user id; some versions write {"id": .., "email": ..}.
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("id", completed_by.get("email"))
    if isinstance(completed_by, bool) or not isinstance(completed_by, int | str):
        raise ValueError(f"{where}: 'completed_by' must name the annotator, got "
                         f"{completed_by!r}")
    return f"labelstudio:{completed_by}"


def _answered_at(annotation: dict) -> float:
    stamp = annotation.get("created_at")
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return datetime.now(timezone.utc).timestamp()


def read_labelstudio_export(path: str | os.PathLike) -> tuple[list[ImportedAnswer], int]:
    """Answers in a Label Studio JSON export of :func:`labelstudio_tasks` tasks.

    Each non-cancelled annotation with a ``choices`` result from the ``label`` control
    gives one answer of annotator ``labelstudio:<completed_by>``; cancelled (skipped)
    annotations are counted and left out.

    Returns
    -------
    answers : list of ImportedAnswer
    n_cancelled : int

    Raises
    ------
    ValueError
        Not JSON, not a list of tasks, a task of another study (no ``data.item``), or a
        choice that is not a label (the message names the file and task).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Label Studio export {path} not found")
    if path.stat().st_size > MAX_LABELSTUDIO_BYTES:
        raise ValueError(f"Label Studio export {path} is larger than "
                         f"{MAX_LABELSTUDIO_BYTES} bytes")
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"Label Studio export {path} is not JSON: {exc}") from exc
    if not isinstance(tasks, list):
        raise ValueError(f"Label Studio export {path} must be a JSON list of tasks")
    answers, cancelled = [], 0
    for t, task in enumerate(tasks):
        where = f"{path}: task {task.get('id', t) if isinstance(task, dict) else t}"
        data = task.get("data") if isinstance(task, dict) else None
        ref = data.get("item") if isinstance(data, dict) else None
        if not isinstance(ref, str):
            raise ValueError(f"{where} has no data.item: not a task of a study export")
        for annotation in task.get("annotations") or []:
            if not isinstance(annotation, dict):
                raise ValueError(f"{where}: annotations must be objects")
            if annotation.get("was_cancelled"):
                cancelled += 1
                continue
            chosen = [r for r in annotation.get("result") or []
                      if isinstance(r, dict) and r.get("type") == "choices"
                      and r.get("from_name") == "label"]
            if len(chosen) != 1:
                raise ValueError(f"{where}: annotation {annotation.get('id')} must hold "
                                 f"exactly one 'label' choice, found {len(chosen)}")
            choices = (chosen[0].get("value") or {}).get("choices")
            if not isinstance(choices, list) or len(choices) != 1:
                raise ValueError(f"{where}: annotation {annotation.get('id')} must choose "
                                 f"exactly one label, got {choices!r}")
            answers.append(ImportedAnswer(
                annotator=_annotator(annotation.get("completed_by"), where),
                item_ref=ref, label=_choice_label(choices[0], where),
                origin=f"labelstudio:annotation:{annotation.get('id')}",
                answered_at=_answered_at(annotation)))
    return answers, cancelled


@dataclass(frozen=True)
class LabelStudioImport:
    """What :func:`import_labelstudio` did."""

    added: int
    already_present: int
    cancelled: int
    annotators: int


def import_labelstudio(conn: sqlite3.Connection, path: str | os.PathLike) -> LabelStudioImport:
    """Read a Label Studio JSON export into the study (one transaction; importing the
    same export again adds nothing)."""
    answers, cancelled = read_labelstudio_export(path)
    added, present = add_imported_answers(conn, answers)
    return LabelStudioImport(added, present, cancelled, len({a.annotator for a in answers}))


"""A labelling study's design: the images, who labels which, in which order; creating it.

A study labels ``n`` invariance examples (from an attack run or a published set) with
``labels_per_image = k`` labels each, spread over ``n_participants = P`` invited
participants (``k <= P``), plus attention checks: clean MNIST test images whose label
is known.

Assignment (:func:`assign_examples`): the examples are put in a seeded random order
``pi``; example ``pi[j]`` goes to participants ``(j k + r) mod P`` for ``r = 0..k-1``.
The ``k`` participants of an example are therefore distinct, every example gets exactly
``k`` labels, and every participant gets ``floor(n k / P)`` or ``ceil(n k / P)`` examples.

Attention checks (:func:`n_checks`): ``attention_rate`` is the share of each
participant's trials that are checks: a participant with ``m`` examples gets
``round(rate m / (1 - rate))`` checks, at least one when the rate is positive. Check
images are drawn (seeded, per participant, without repetition) from the MNIST test
images that are not the source of any example of the study, so no participant sees the
clean source of an example.

Order: each participant's examples and checks are shuffled with that participant's own
seeded generator (``numpy.random.SeedSequence(seed).spawn``): the same seed gives the
same plan. Tokens and nonces are not seeded: they come from :mod:`secrets`.

Images are shown as 8-bit greyscale, as the release stores them: examples given as
floats in [0, 1] are rounded to the nearest grey level (``round(255 x)``), and the
largest change this makes is recorded (``quantisation``) and reported.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from invariance_tradeoffs.simulations.attacks.runs import AttackRun, parse_indices
from invariance_tradeoffs.simulations.data.mnist import MNISTSplit
from invariance_tradeoffs.simulations.data.published import PublishedSet, release_name
from invariance_tradeoffs.simulations.study.store import NewItem, write_study
from invariance_tradeoffs.theory.oracles import REJECT
from invariance_tradeoffs.theory.validation import as_labels

__all__ = [
    "CreatedStudy",
    "Design",
    "Plan",
    "StudyItems",
    "assign_examples",
    "check_set_name",
    "create_study",
    "items_from_published",
    "items_from_run",
    "make_plan",
    "n_checks",
    "release_name",
    "select_items",
    "to_grey_levels",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def check_set_name(name: str, what: str = "set name") -> str:
    """``name`` if it is a safe labelled-set name (``<norm>/<stem>`` or ``<stem>``: letters,
    digits, ``_ - .``, no ``..``, at most one ``/``), else ``ValueError`` naming ``what``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{what} {name!r} must be letters, digits, '_', '-', '.' with at "
                         "most one '/' (e.g. linf/study_eps03)")
    return name


@dataclass(frozen=True)
class StudyItems:
    """The invariance examples a study labels.

    Attributes
    ----------
    images : ndarray (n, 28, 28) uint8
        The images as shown to participants.
    positions : ndarray (n,) int64
        Index of each example in its run or published set.
    source_indices : ndarray (n,) int64
        MNIST test index of each example's source.
    source_labels : ndarray (n,) int64
        MNIST label of the source.
    targets : ndarray (n,) int64
        The attack's target class, ``-1`` when unknown (published sets).
    reference_labels : ndarray (n,) int64 or None
        The published human label (published sets), else None.
    origin : str
        What the examples were read from.
    name : str
        Default name of the labelled set in the release format (see :func:`release_name`).
    quantisation : float
        Largest ``|shown - given|`` pixel change in [0, 1] units (0 for uint8 input).
    """

    images: np.ndarray
    positions: np.ndarray
    source_indices: np.ndarray
    source_labels: np.ndarray
    targets: np.ndarray
    reference_labels: np.ndarray | None
    origin: str
    name: str
    quantisation: float = 0.0

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.dtype != np.uint8 or self.images.shape[1:] != (28, 28):
            raise ValueError(f"images must be uint8 (n, 28, 28), got {self.images.dtype} "
                             f"{self.images.shape}")
        arrays = {"positions": self.positions, "source_indices": self.source_indices,
                  "source_labels": self.source_labels, "targets": self.targets}
        if self.reference_labels is not None:
            arrays["reference_labels"] = self.reference_labels
        for key, arr in arrays.items():
            if arr.shape != (n,):
                raise ValueError(f"{key} must have shape ({n},), got {arr.shape}")
        if n == 0:
            raise ValueError(f"{self.origin}: no example to label")
        check_set_name(self.name, "set name (--name)")

    @property
    def n(self) -> int:
        """Number of examples."""
        return int(self.images.shape[0])


def to_grey_levels(images: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """Images in [0, 1] as the nearest 8-bit grey levels, and the largest change made.

    Raises
    ------
    ValueError
        Values outside [0, 1] or NaN (the message names ``name``).
    """
    arr = np.asarray(images, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or arr.min(initial=0) < 0 or arr.max(initial=0) > 1:
        raise ValueError(f"{name} must hold pixel values in [0, 1]")
    grey = np.rint(arr * 255.0)
    change = float(np.abs(grey / 255.0 - arr).max(initial=0.0))
    return grey.astype(np.uint8), change


def items_from_run(run: AttackRun, origin: str) -> tuple[StudyItems, int]:
    """The examples of an attack run; sources for which the attack found no example
    (target ``-1`` or NaN distortion) are left out.

    Returns
    -------
    items : StudyItems
    n_without_example : int
        How many sources were left out.
    """
    found = (run.targets >= 0) & np.isfinite(run.distortion)
    if not found.any():
        raise ValueError(f"run file {origin}: the attack found no example for any source")
    images, change = to_grey_levels(run.examples[found], f"run file {origin}: examples")
    labels = as_labels(run.source_labels, f"run file {origin}: source_labels", n_classes=10,
                       allow_reject=False)
    targets = as_labels(run.targets, f"run file {origin}: targets", n_classes=10)
    attack = str(run.params.get("attack", "")) or None
    eps = run.params.get("eps")
    items = StudyItems(
        images=images,
        positions=np.flatnonzero(found).astype(np.int64),
        source_indices=np.asarray(run.source_indices, dtype=np.int64)[found],
        source_labels=labels[found],
        targets=targets[found],
        reference_labels=None,
        origin=f"attack run {origin}",
        name=release_name(attack, float(eps) if eps is not None else None),
        quantisation=change,
    )
    return items, int((~found).sum())


def items_from_published(pset: PublishedSet) -> StudyItems:
    """The examples of a published set, with its human labels as reference labels."""
    images, change = to_grey_levels(pset.examples, f"published set {pset.name}")
    stem = pset.name.rsplit("/", 1)[-1]
    return StudyItems(
        images=images,
        positions=np.arange(pset.n, dtype=np.int64),
        source_indices=pset.source_indices.astype(np.int64),
        source_labels=pset.original_labels.astype(np.int64),
        targets=np.full(pset.n, REJECT, dtype=np.int64),
        reference_labels=pset.human_labels.astype(np.int64),
        origin=f"published set {pset.name} ({pset.files[0]})",
        name=release_name(pset.norm, None,
                          stem if stem.startswith("study") else f"study_{stem}"),
        quantisation=change,
    )


def select_items(items: StudyItems, spec: str | None, seed: int | None) -> StudyItems:
    """The examples at positions ``spec`` (``'A:B'``, ``'random:N'`` with ``seed``,
    ``'i,j,k'``; see :func:`simulations.attacks.runs.parse_indices`); all when None."""
    if spec is None:
        return items
    try:
        keep = parse_indices(spec, n_test=items.n, seed=seed)
    except ValueError as exc:
        raise ValueError(str(exc).replace("--indices", "--items").replace(
            "test indices", "positions").replace("test images", "examples")) from None
    ref = None if items.reference_labels is None else items.reference_labels[keep]
    return StudyItems(items.images[keep], items.positions[keep], items.source_indices[keep],
                      items.source_labels[keep], items.targets[keep], ref, items.origin,
                      items.name, items.quantisation)


@dataclass(frozen=True)
class Design:
    """How a study is run.

    Parameters
    ----------
    n_participants : int
        Number of invited participants (``--participants``), >= 1.
    labels_per_image : int
        Labels each example gets (``--labels-per-image``), 1 <= k <= n_participants.
    attention_rate : float
        Share of each participant's trials that are attention checks
        (``--attention-rate``), in [0, 0.5].
    seed : int
        Seed of the assignment, the check images and every participant's order.
    """

    n_participants: int
    labels_per_image: int = 3
    attention_rate: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for key, flag in (("n_participants", "--participants"),
                          ("labels_per_image", "--labels-per-image"), ("seed", "--seed")):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"{flag} must be an integer, got {value!r}")
        if self.n_participants < 1:
            raise ValueError(f"--participants must be >= 1, got {self.n_participants}")
        if not 1 <= self.labels_per_image <= self.n_participants:
            raise ValueError(f"--labels-per-image must be in 1..{self.n_participants} "
                             f"(at most --participants), got {self.labels_per_image}")
        if self.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {self.seed}")
        rate = self.attention_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 0.5:
            raise ValueError(f"--attention-rate must be a number in [0, 0.5], got {rate!r}")

    def to_dict(self) -> dict:
        return {"n_participants": int(self.n_participants),
                "labels_per_image": int(self.labels_per_image),
                "attention_rate": float(self.attention_rate), "seed": int(self.seed)}


def assign_examples(n_examples: int, design: Design) -> list[np.ndarray]:
    """Per participant, the example indices they label (before shuffling with checks).

    Every example goes to exactly ``labels_per_image`` distinct participants; loads differ
    by at most one (see the module docstring).
    """
    if n_examples < 1:
        raise ValueError(f"n_examples must be >= 1, got {n_examples}")
    k, p = design.labels_per_image, design.n_participants
    order = np.random.default_rng(np.random.SeedSequence(design.seed)).permutation(n_examples)
    slots = np.arange(n_examples * k)
    owner = slots % p
    example = order[slots // k]
    return [np.sort(example[owner == q]) for q in range(p)]


def n_checks(n_examples: int, rate: float) -> int:
    """Attention checks for a participant with ``n_examples`` examples (module docstring)."""
    if rate <= 0 or n_examples == 0:
        return 0
    return max(1, int(round(rate * n_examples / (1.0 - rate))))


@dataclass(frozen=True)
class Plan:
    """A study's plan: the examples, the check images and each participant's sequence.

    ``sequences[p]`` lists item ids in showing order: ``0..n-1`` are the examples,
    ``n + c`` is check image ``c`` (MNIST test index ``check_indices[c]``).
    """

    items: StudyItems
    design: Design
    check_indices: np.ndarray
    check_images: np.ndarray
    check_labels: np.ndarray
    sequences: list[np.ndarray] = field(repr=False)


def make_plan(items: StudyItems, design: Design, test: MNISTSplit | None) -> Plan:
    """Assign examples, draw attention checks from ``test`` and order each participant's trials.

    ``test`` (the MNIST test split) is needed only when ``design.attention_rate > 0``.
    """
    per_participant = assign_examples(items.n, design)
    if min(len(ex) for ex in per_participant) == 0:
        raise ValueError(f"--participants {design.n_participants} is more than the "
                         f"{items.n * design.labels_per_image} labels to give "
                         f"({items.n} examples x --labels-per-image "
                         f"{design.labels_per_image}): some would label nothing")
    counts = [n_checks(len(ex), design.attention_rate) for ex in per_participant]
    if sum(counts) and test is None:
        raise ValueError("attention checks need the MNIST test images (--data-dir), or use "
                         "--attention-rate 0")
    eligible = np.zeros(0, dtype=np.int64)
    if sum(counts):
        mask = np.ones(len(test.labels), dtype=bool)
        mask[items.source_indices[(items.source_indices >= 0)
                                  & (items.source_indices < len(mask))]] = False
        eligible = np.flatnonzero(mask)
        if max(counts) > eligible.size:
            raise ValueError(f"--attention-rate {design.attention_rate} asks for "
                             f"{max(counts)} checks per participant, but only "
                             f"{eligible.size} clean test images are eligible")
    streams = np.random.SeedSequence(design.seed).spawn(design.n_participants + 1)[1:]
    chosen: dict[int, int] = {}  # MNIST test index -> check number
    sequences = []
    for examples, m, stream in zip(per_participant, counts, streams, strict=True):
        rng = np.random.default_rng(stream)
        picks = rng.choice(eligible, size=m, replace=False) if m else []
        checks = [items.n + chosen.setdefault(int(t), len(chosen)) for t in picks]
        sequences.append(rng.permutation(np.concatenate([examples, checks]).astype(np.int64)))
    check_indices = np.array(list(chosen), dtype=np.int64)
    if check_indices.size:
        check_images, check_labels = test.images[check_indices], test.labels[check_indices]
    else:
        check_images = np.zeros((0, 28, 28), np.uint8)
        check_labels = np.zeros(0, np.int64)
    return Plan(items, design, check_indices, np.asarray(check_images, dtype=np.uint8),
                np.asarray(check_labels, dtype=np.int64), sequences)


def _new_items(plan: Plan) -> list[NewItem]:
    it = plan.items
    ref = it.reference_labels
    rows = [NewItem("example", int(it.positions[i]), int(it.source_indices[i]),
                    int(it.source_labels[i]), int(it.targets[i]) if it.targets[i] >= 0 else None,
                    None if ref is None else int(ref[i]), it.images[i])
            for i in range(it.n)]
    rows += [NewItem("check", None, int(t), int(lab), None, None, img)
             for t, lab, img in zip(plan.check_indices, plan.check_labels, plan.check_images,
                                    strict=True)]
    return rows


@dataclass(frozen=True)
class CreatedStudy:
    """A study just written: where, its plan, and the tokens (shown only now)."""

    path: Path
    plan: Plan
    tokens: list[str]
    admin_token: str

    def links(self) -> list[tuple[str, str, str, str]]:
        """``(role, participant id, token, path)`` rows: invite and admin paths."""
        rows = [("participant", str(p + 1), t, f"/p/{t}") for p, t in enumerate(self.tokens)]
        return rows + [("admin", "", self.admin_token, f"/admin/{self.admin_token}")]


def create_study(
    path: str | os.PathLike,
    items: StudyItems,
    design: Design,
    test: MNISTSplit | None = None,
    *,
    title: str | None = None,
) -> CreatedStudy:
    """Plan a study and write it to a new study file.

    Parameters
    ----------
    path : path
        The study file to create (must not exist).
    items : StudyItems
        The examples (:func:`items_from_run`, :func:`items_from_published`).
    design : Design
    test : MNISTSplit, optional
        The MNIST test split, for attention checks.
    title : str, optional
        Shown to nobody but the researcher (admin page, report); default: the set name.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> items = StudyItems(np.zeros((4, 28, 28), np.uint8), np.arange(4), np.arange(4),
    ...                    np.arange(4), np.full(4, -1), None, "demo", "demo")
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "demo.study"
    >>> study = create_study(out, items, Design(n_participants=2, labels_per_image=2,
    ...                      attention_rate=0))
    >>> [len(s) for s in study.plan.sequences]
    [4, 4]
    """
    plan = make_plan(items, design, test)
    meta = {
        "title": title or items.name,
        "release_name": items.name,
        "origin": items.origin,
        "design": design.to_dict(),
        "n_examples": items.n,
        "n_checks": int(plan.check_indices.size),
        "quantisation": items.quantisation,
        "created_at": time.time(),
    }
    tokens, admin = write_study(path, meta, _new_items(plan), plan.sequences)
    return CreatedStudy(Path(path), plan, tokens, admin)


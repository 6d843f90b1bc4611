"""Batch runs of an invariance attack over MNIST test images: incremental, resumable.

Every attack (l-inf, l0, ...) produces one :class:`AttackRun` per run, saved as one
``.npz`` holding

``sources`` (n, 28, 28) float64 in [0, 1], ``source_indices`` (n,) int64 (MNIST test),
``source_labels`` (n,) int64, ``examples`` (n, 28, 28) float64 in [0, 1],
``targets`` (n,) int64 (target class; REJECT = -1 when none), ``distortion`` (n,)
float64 (in the attack's norm), ``params`` (JSON string, a 0-d unicode array), plus any
attack-specific extras (e.g. ``neighbours``) under their own names,

and a PNG grid (source / example / target neighbour) beside it (see
:mod:`invariance_tradeoffs.simulations.plotting`). All arrays load with ``allow_pickle=False``.

:func:`run_attack` drives an attack over source indices in batches, writes each batch
to ``<out>/<name>.parts/`` as soon as it is done (atomically), shows a tqdm progress
bar, and on restart skips the sources already finished, provided the parameters match.

Shards. Each batch is one shard. With ``scheduler=`` (``"local:N"`` or a Dask scheduler
address, :mod:`invariance_tradeoffs.simulations.engine`) the shards are tasks of a Dask
cluster: the attack (with its training set and neighbour index) is scattered to every
worker once, and each shard is written here as soon as it comes back, in whatever order
they finish. A worker killed mid-shard has its shards recomputed by the others (Dask
retries them); a stopped client or cluster loses only the shards in flight, and a rerun
computes only the missing ones. Every source's result depends only on its own test index
(exact search; per-source seeds), so the final run is identical to a local one.
:func:`save_release` writes a run in the authors' release format.

Integrity. Every part ``part-NNNNN.npz`` gets a record ``part-NNNNN.npz.sha256.json``
(:func:`invariance_tradeoffs.simulations.io.write_record`): the SHA256 and size of its
bytes, the SHA256 of the run's parameters, its rows and the dtype and shape of every
array. Before anything is recomputed, every part is checked against its record; a part
without one (left by an interrupted or older run), written under other parameters,
changed after it was written, unreadable, or lacking an array, is discarded with a
warning naming it, and its sources are recomputed. A finished run file that cannot be
read (truncated, damaged: the zip CRC of every array is checked) or lacks an array is
refused with a :class:`~invariance_tradeoffs.simulations.io.CorruptFileError` that names
it and says to delete it and rerun.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from invariance_tradeoffs.simulations.engine import ClusterLostError, Engine
from invariance_tradeoffs.simulations.io import (
    CorruptFileError,
    atomic_savez,
    atomic_write,
    hash_arrays,
    json_default,
    load_npz,
    read_record,
    remove_with_record,
    write_record,
)

__all__ = [
    "CORE_KEYS",
    "AttackRun",
    "load_run",
    "parse_indices",
    "run_attack",
    "run_parts",
    "save_release",
    "save_run",
]

#: Arrays every run holds (besides ``params``).
CORE_KEYS: tuple[str, ...] = (
    "sources",
    "source_indices",
    "source_labels",
    "examples",
    "targets",
    "distortion",
)

#: An attack maps a batch of MNIST test indices to arrays keyed like :data:`CORE_KEYS`
#: (``source_indices`` may be omitted) plus optional extras, one row per index.
AttackFn = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass
class AttackRun:
    """The result of one attack run (see the module docstring for the layout)."""

    sources: np.ndarray
    source_indices: np.ndarray
    source_labels: np.ndarray
    examples: np.ndarray
    targets: np.ndarray
    distortion: np.ndarray
    params: dict
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.source_indices)
        for key in CORE_KEYS:
            if len(getattr(self, key)) != n:
                raise ValueError(
                    f"run array {key!r} has {len(getattr(self, key))} rows, expected {n}"
                )
        for key, arr in self.extras.items():
            if len(arr) != n:
                raise ValueError(f"run extra {key!r} has {len(arr)} rows, expected {n}")

    @property
    def n(self) -> int:
        """Number of sources in the run."""
        return len(self.source_indices)

    def arrays(self) -> dict[str, np.ndarray]:
        """All arrays (core then extras), keyed by name."""
        return {**{k: getattr(self, k) for k in CORE_KEYS}, **self.extras}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict) -> AttackRun:
        missing = [k for k in CORE_KEYS if k not in arrays]
        if missing:
            raise ValueError(f"run is missing arrays {missing}")
        extras = {k: v for k, v in arrays.items() if k not in CORE_KEYS and k != "params"}
        return cls(**{k: arrays[k] for k in CORE_KEYS}, params=params, extras=extras)


def params_json(params: dict) -> str:
    """Canonical JSON text of a parameter dict (sorted keys)."""
    return json.dumps(params, sort_keys=True, default=json_default)


#: What to do about a damaged run file.
RUN_REMEDY = "delete it and rerun the attack that wrote it to rebuild it"


def save_run(path: str | os.PathLike, run: AttackRun) -> Path:
    """Write ``run`` to the ``.npz`` file ``path`` atomically; return the path."""
    path = Path(path)
    atomic_savez(path, {**run.arrays(), "params": np.array(params_json(run.params))},
                 compress=True)
    return path


def _read_params(path: Path, arrays: dict[str, np.ndarray]) -> dict:
    if "params" not in arrays:
        raise CorruptFileError(path, "no 'params' entry", RUN_REMEDY, what="run file")
    try:
        params = json.loads(str(arrays.pop("params")))
    except ValueError as exc:
        raise CorruptFileError(path, f"its 'params' entry is not JSON: {exc}", RUN_REMEDY,
                               what="run file") from exc
    if not isinstance(params, dict):
        raise CorruptFileError(path, "its 'params' entry is not a JSON object", RUN_REMEDY,
                               what="run file")
    return params


def load_run(path: str | os.PathLike) -> AttackRun:
    """Read a run written by :func:`save_run` (``allow_pickle=False``).

    Raises
    ------
    CorruptFileError
        (a ``ValueError``) The file is unreadable (truncated, damaged), lacks an array or
        its parameters, or its arrays disagree in length; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"run file {path} does not exist")
    arrays = load_npz(path, what="run file", remedy=RUN_REMEDY)
    params = _read_params(path, arrays)
    try:
        return AttackRun.from_arrays(arrays, params)
    except ValueError as exc:
        raise CorruptFileError(path, str(exc), RUN_REMEDY, what="run file") from exc


def parse_indices(
    spec: str,
    *,
    n_test: int = 10000,
    seed: int | None = None,
    published: Callable[[], np.ndarray] | None = None,
) -> np.ndarray:
    """Turn an ``--indices`` value into MNIST test indices.

    Parameters
    ----------
    spec : str
        ``"all"`` (the whole test set), ``"published"`` (the 100 indices of the authors'
        automated sets), ``"A:B"``
        (``range(A, B)``), ``"random:N"`` (N distinct indices drawn with ``seed``) or a
        comma-separated list ``"3,17,42"``.
    n_test : int
        Size of the MNIST test set.
    seed : int, optional
        Seed for ``random:N`` (required there).
    published : callable, optional
        Returns the published indices (required for ``"published"``).

    Raises
    ------
    ValueError
        Unknown syntax, indices outside ``0..n_test-1``, duplicates, or an empty set.
    """
    spec = str(spec).strip()
    if spec == "all":
        idx = np.arange(n_test, dtype=np.int64)
    elif spec == "published":
        if published is None:
            raise ValueError("--indices published needs the published examples directory")
        idx = np.asarray(published(), dtype=np.int64)
    elif spec.startswith("random:"):
        count = spec.split(":", 1)[1]
        if not count.isdigit() or int(count) == 0:
            raise ValueError(f"--indices random:N needs a positive integer N, got {spec!r}")
        if seed is None:
            raise ValueError("--indices random:N needs --seed")
        if int(count) > n_test:
            raise ValueError(f"--indices {spec}: only {n_test} test images")
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(n_test, size=int(count), replace=False)).astype(np.int64)
    elif ":" in spec:
        start, _, stop = spec.partition(":")
        try:
            idx = np.arange(int(start or 0), int(stop if stop else n_test), dtype=np.int64)
        except ValueError:
            raise ValueError(f"--indices range must be A:B with integers, got {spec!r}") from None
    else:
        try:
            idx = np.array([int(s) for s in spec.split(",") if s.strip()], dtype=np.int64)
        except ValueError:
            raise ValueError(
                f"unknown --indices {spec!r}: use 'all', 'published', 'A:B', 'random:N' or "
                "'i,j,k'"
            ) from None
    if idx.size == 0:
        raise ValueError(f"--indices {spec!r} selects no test image")
    bad = idx[(idx < 0) | (idx >= n_test)]
    if bad.size:
        raise ValueError(
            f"--indices {spec!r}: test indices outside 0..{n_test - 1}: {bad[:5].tolist()}"
        )
    if np.unique(idx).size != idx.size:
        raise ValueError(f"--indices {spec!r} repeats test indices")
    return idx


_PART = re.compile(r"part-(\d+)\.npz")


def _part_fields(arrays: dict[str, np.ndarray], params_text: str) -> dict:
    """What a part's integrity record states besides its bytes' hash."""
    return {"params_sha256": hash_arrays(extra=params_text),
            "rows": len(arrays["source_indices"]),
            "arrays": {k: [np.asarray(v).dtype.str, list(np.shape(v))]
                       for k, v in sorted(arrays.items())}}


def _save_part(path: Path, arrays: dict[str, np.ndarray], params_text: str) -> None:
    """Write a part, then its integrity record (a part without one is never trusted)."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    atomic_savez(path, arrays, compress=True)
    write_record(path, **_part_fields(arrays, params_text))


def _check_part(path: Path, params_text: str,
                required: Sequence[str] = CORE_KEYS) -> dict[str, np.ndarray]:
    """The arrays of a part, after checking it against its integrity record.

    Raises
    ------
    CorruptFileError
        No record, a record of other parameters, bytes changed since the record was
        written, unreadable, or arrays other than those recorded.
    """
    record = read_record(path, what="part")
    if record is None:
        raise CorruptFileError(path, "no integrity record (left by an interrupted or older "
                               "run)", what="part")
    if record.get("params_sha256") != hash_arrays(extra=params_text):
        raise CorruptFileError(path, "written by a run with other parameters", what="part")
    arrays = load_npz(path, what="part")
    missing = [k for k in ("source_indices", *required) if k not in arrays]
    if missing:
        raise CorruptFileError(path, f"no {', '.join(missing)} array", what="part")
    found = _part_fields(arrays, params_text)
    if found != {k: record.get(k) for k in found}:
        raise CorruptFileError(path, "arrays differ from its record (names, dtypes or "
                               "shapes)", what="part")
    if any(np.shape(v)[:1] != (found["rows"],) for v in arrays.values()):
        raise CorruptFileError(path, "arrays of different lengths", what="part")
    return arrays


def _load_parts(parts_dir: Path, params: dict,
                required: Sequence[str] = CORE_KEYS) -> dict[int, dict[str, np.ndarray]]:
    """Finished sources in ``parts_dir`` (test index -> row arrays).

    The parameters are checked first (other parameters: refused, the partial run is left
    alone); then every part is checked against its integrity record; a part that fails
    is deleted with a warning naming it, so its sources are recomputed.
    """
    meta = parts_dir / "params.json"
    text = params_json(params)
    if meta.is_file() and meta.read_text() != text:
        raise ValueError(
            f"{parts_dir} holds a partial run with different parameters; "
            "delete it or choose another --out to start afresh"
        )
    rows: dict[int, dict[str, np.ndarray]] = {}
    for part in sorted(parts_dir.glob("part-*.npz")):
        try:
            arrays = _check_part(part, text, required)
        except CorruptFileError as exc:
            warnings.warn(f"discarding {part}: {exc.reason}; its sources will be recomputed",
                          RuntimeWarning, stacklevel=3)
            remove_with_record(part)
            continue
        for i, src in enumerate(arrays["source_indices"]):
            rows.setdefault(int(src), {k: v[i] for k, v in arrays.items()})
    return rows


def _next_part(parts_dir: Path) -> int:
    """One past the highest part number present (never overwrites a part)."""
    numbers = [int(m.group(1)) for p in parts_dir.glob("part-*.npz")
               if (m := _PART.fullmatch(p.name))]
    return max(numbers, default=-1) + 1


def _attack_batch(attack: AttackFn, batch: np.ndarray) -> tuple[np.ndarray, dict]:
    """One shard: ``attack`` over ``batch``, with the batch's indices (run on a worker)."""
    arrays = dict(attack(batch))
    arrays["source_indices"] = batch
    return batch, arrays


def run_attack(
    attack: AttackFn,
    indices: Sequence[int] | np.ndarray,
    out_dir: str | os.PathLike,
    name: str,
    params: dict,
    *,
    batch_size: int = 25,
    progress: bool = True,
    grid: bool = True,
    scheduler: str | Engine | None = None,
) -> tuple[AttackRun, Path]:
    """Run ``attack`` over MNIST test ``indices`` in batches, resumably.

    Parameters
    ----------
    attack : callable
        ``attack(batch_indices) -> dict`` of arrays with one row per index, holding at
        least ``sources, source_labels, examples, targets, distortion``.
    indices : sequence of int
        MNIST test indices, distinct (see :func:`parse_indices`).
    out_dir : path
        Output folder; the run is ``<out_dir>/<name>.npz`` (+ ``.png``).
    name : str
        File stem of the run, e.g. ``"linf_eps0.3"``.
    params : dict
        JSON-serialisable parameters; a resumed run must have identical ones.
    batch_size : int
        Sources per batch (one part file per batch).
    progress : bool
        Show a tqdm progress bar.
    grid : bool
        Also write the PNG grid.
    scheduler : str or Engine, optional
        Where the batches run (:mod:`invariance_tradeoffs.simulations.engine`): ``None``
        in this process, one after the other; ``"local:N"`` or a Dask scheduler address
        (or an open :class:`~invariance_tradeoffs.simulations.engine.Engine`): one task
        per batch, ``attack`` sent to every worker once, each batch written as it
        finishes. A stopped cluster or client loses only the batches in flight.

    Returns
    -------
    run : AttackRun
    path : Path
        The final ``.npz``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"name must be a plain file stem, got {name!r}")
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1 or indices.size == 0 or np.unique(indices).size != indices.size:
        raise ValueError("indices must be a non-empty 1-D sequence of distinct test indices")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} exists and is not a directory")
    final = out_dir / f"{name}.npz"
    parts_dir = out_dir / f"{name}.parts"
    text = params_json(params)  # fails early on unserialisable parameters
    if final.is_file():
        done = load_run(final)
        if params_json(done.params) == text and np.array_equal(done.source_indices, indices):
            if grid and not final.with_suffix(".png").is_file():
                save_run_grid(done, final.with_suffix(".png"))
            return done, final
        raise ValueError(
            f"{final} already holds a run with other parameters or indices; "
            "delete it or choose another --out"
        )
    rows = run_parts(attack, indices, parts_dir, params, batch_size=batch_size,
                     progress=progress, desc=name, unit="src", scheduler=scheduler)
    keys = list(rows[int(indices[0])])
    stacked = {k: np.stack([rows[int(i)][k] for i in indices]) for k in keys}
    run = AttackRun.from_arrays(stacked, params)
    save_run(final, run)
    if grid:
        save_run_grid(run, final.with_suffix(".png"))
    shutil.rmtree(parts_dir)
    return run, final


def run_parts(
    compute: Callable[[np.ndarray], dict[str, np.ndarray]],
    indices: np.ndarray,
    parts_dir: str | os.PathLike,
    params: dict,
    *,
    required: Sequence[str] = CORE_KEYS,
    batch_size: int = 25,
    progress: bool = True,
    desc: str = "",
    unit: str = "item",
    scheduler: str | Engine | None = None,
) -> dict[int, dict[str, np.ndarray]]:
    """Compute rows for ``indices`` in batches, each saved as a checked part; resume.

    The engine of :func:`run_attack`, for any computation keyed by integer indices:
    ``compute(batch) -> dict`` of arrays with one row per index, holding ``required``;
    each batch becomes ``<parts_dir>/part-NNNNN.npz`` with its integrity record (see the
    module docstring) as soon as it is done. Rows of parts written earlier with the same
    ``params`` are reused; damaged or foreign parts are discarded with a warning and
    recomputed. ``scheduler``: where the batches run, as in :func:`run_attack`.

    Returns
    -------
    dict
        index -> {array name -> row}, for every index in ``indices``.

    Raises
    ------
    ClusterLostError
        The cluster went away: the finished parts are kept, a rerun computes the rest.
    """
    from tqdm.auto import tqdm

    from invariance_tradeoffs.simulations.engine import session

    parts_dir = Path(parts_dir)
    text = params_json(params)
    rows = _load_parts(parts_dir, params, required)  # every part checked before any work
    parts_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(parts_dir / "params.json", lambda p: p.write_text(text))
    todo = np.array([i for i in indices if int(i) not in rows], dtype=np.int64)
    next_part = _next_part(parts_dir)
    batches = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    with session(scheduler, n_jobs=1) as engine, tqdm(
        total=len(indices), initial=len(indices) - len(todo), disable=not progress,
        desc=desc or None, unit=unit,
    ) as bar:
        # Each batch is one shard: written as soon as it comes back, in any order.
        try:
            for _, (batch, arrays) in engine.imap_unordered(_attack_batch, batches,
                                                            engine.share(compute)):
                missing = [k for k in required if k not in arrays]
                if missing:
                    raise ValueError(f"{desc or 'the computation'} returned no {missing}")
                _save_part(parts_dir / f"part-{next_part:05d}.npz", arrays, text)
                next_part += 1
                for i, src in enumerate(batch):
                    rows[int(src)] = {k: np.asarray(v)[i] for k, v in arrays.items()}
                bar.update(len(batch))
        except ClusterLostError as exc:
            raise ClusterLostError(f"{exc}; the {len(rows)} rows finished are kept in "
                                   f"{parts_dir}: rerun to compute only the missing ones"
                                   ) from exc
    lost = [int(i) for i in indices if int(i) not in rows]
    if lost:  # e.g. a cluster that went away: never return a result with holes
        raise ClusterLostError(f"{len(lost)} rows were not computed (first: {lost[:5]}); the "
                               f"finished parts are in {parts_dir}: rerun to complete the run")
    return rows


def save_release(run: AttackRun, folder: str | os.PathLike, *,
                 label: str = "attack") -> tuple[Path, Path, Path]:
    """Write a run in the authors' release format, readable by
    :func:`~invariance_tradeoffs.simulations.data.published.load_published_examples`.

    Under ``folder``: ``<norm>/<label>[_epsDD].npy`` the examples (uint8 when every pixel
    is a grey level ``k / 255``, else float32 on the 0..255 scale, as the authors'
    ``automated_eps03.npy``), ``..._labels.npy`` the attack's **target** classes (REJECT
    = -1 where no example was found; in the release this file holds human labels: these
    are what the examples are meant to show, until people label them) and
    ``..._indexs.npy`` the MNIST test indices of the sources. Each file is written
    atomically. ``<norm>`` and the radius come from the run's parameters (``attack``,
    ``eps``). Returns the three paths.

    Loading the folder back (``load_published_examples(folder)``, or
    ``--published-dir folder``) gives the set ``<norm>/<label>[_epsDD]``.
    """
    from invariance_tradeoffs.simulations.data.published import release_name

    norm = run.params.get("attack")
    if norm not in ("linf", "l0", "l1", "l2"):
        raise ValueError(f"run parameters name no known norm as 'attack' (got {norm!r})")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", str(label)):
        raise ValueError(f"label must be letters, digits, '_' or '-', got {label!r}")
    eps = run.params.get("eps") if norm != "l0" else None
    name = release_name(norm, eps, label)
    pixels = np.asarray(run.examples, dtype=np.float64) * 255.0
    grey = np.rint(pixels)
    images = grey.astype(np.uint8) if np.array_equal(grey, pixels) else pixels.astype(np.float32)
    base = Path(folder) / name
    paths = []
    for suffix, arr in ((".npy", images), ("_labels.npy", run.targets.astype(np.int64)),
                        ("_indexs.npy", run.source_indices.astype(np.int64))):
        path = base.with_name(base.name + suffix)

        def write(tmp: Path, arr: np.ndarray = arr) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.save would append ".npy"
                np.save(fh, arr, allow_pickle=False)

        atomic_write(path, write)
        paths.append(path)
    return tuple(paths)  # type: ignore[return-value]


def save_run_grid(run: AttackRun, path: str | os.PathLike, *, max_rows: int = 10) -> Path:
    """Grid of the first ``max_rows`` sources of an :class:`~simulations.attacks.runs.AttackRun`.

    Columns: source, invariance example and, when the run has it, the aligned target
    neighbour (``extras["neighbours"]``). Rows are labelled ``#index y->target``.
    """
    k = min(max_rows, run.n)
    cols = [("source", run.sources[:k]), ("example", run.examples[:k])]
    if "neighbours" in run.extras:
        cols.append(("target neighbour", run.extras["neighbours"][:k]))
    labels = [
        f"#{int(i)} {int(y)}->{int(t)}\nd={d:.3g}"
        for i, y, t, d in zip(
            run.source_indices[:k],
            run.source_labels[:k],
            run.targets[:k],
            run.distortion[:k],
            strict=True,
        )
    ]
    params = run.params if isinstance(run.params, dict) else {}
    title = " ".join(f"{k}={params[k]}" for k in ("attack", "eps") if k in params)
    from invariance_tradeoffs.simulations.plotting import save_grid

    return save_grid(path, cols, row_labels=labels, title=title or None)


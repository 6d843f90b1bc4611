"""Damaged, stale and tampered attack-run files (issue 11, items 1 and 2).

Every damage is done to real files in ``tmp_path``: truncation, one flipped byte, an
array missing, random bytes, a missing or foreign integrity record, rewritten contents.
A finished run file that is damaged is refused with a one-line error naming it, before
any work; a damaged part is discarded with a warning naming it, before any work, and
only its sources are recomputed, so the result equals an uninterrupted run.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from invariance_tradeoffs.simulations.attacks.runs import load_run, run_attack
from invariance_tradeoffs.simulations.cli import main
from invariance_tradeoffs.simulations.io import CorruptFileError, record_path, write_record
from tests.damage import empty, flip_byte, random_bytes, rewrite_npz, truncate

IDX = np.array([5, 3, 9, 1, 7, 2])


def _attack(calls: list):
    """A deterministic stand-in attack (one row per source index), logging its batches."""

    def attack(batch: np.ndarray) -> dict[str, np.ndarray]:
        calls.append(batch.tolist())
        src = np.repeat((batch % 256)[:, None, None] / 255.0, 28, 1).repeat(28, 2)
        return {"sources": src, "source_labels": batch % 10,
                "examples": np.clip(src + 0.1, 0, 1), "targets": (batch + 1) % 10,
                "distortion": np.full(len(batch), 0.1), "neighbours": 1 - src}

    return attack


def _interrupted(folder: Path, params: dict | None = None, n_batches: int = 2) -> None:
    """Leave a partial run (``n_batches`` parts of 2 sources) in ``folder``."""
    calls: list = []
    attack = _attack(calls)

    def stop(batch):
        if len(calls) == n_batches:
            raise KeyboardInterrupt
        return attack(batch)

    with pytest.raises(KeyboardInterrupt):
        run_attack(stop, IDX, folder, "run", params or {"a": 1}, batch_size=2, progress=False)


def _clean(tmp_path: Path):
    return run_attack(_attack([]), IDX, tmp_path / "clean", "run", {"a": 1}, batch_size=2,
                      progress=False)[0]


def _same(run, other) -> None:
    assert run.params == other.params
    for key, arr in other.arrays().items():
        np.testing.assert_array_equal(run.arrays()[key], arr)


# ---------------------------------------------------------------- damage, on real files
def _rewrite(path: Path, change) -> None:
    rewrite_npz(path, change, compress=True)


def _drop_examples(path: Path) -> None:
    _rewrite(path, lambda arrays: arrays.pop("examples"))


def _zero_examples(path: Path) -> None:
    """Rewrite the file with every example zeroed (a valid file with other contents)."""
    _rewrite(path, lambda arrays: arrays["examples"].fill(0))


DAMAGE = {"truncated": truncate, "byte flipped": flip_byte, "random bytes": random_bytes,
          "empty": empty, "key missing": _drop_examples}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_run_file_is_refused_before_any_work(tmp_path, damage):
    _clean(tmp_path)
    final = tmp_path / "clean" / "run.npz"
    DAMAGE[damage](final)
    calls: list = []
    with pytest.raises(CorruptFileError) as err:
        run_attack(_attack(calls), IDX, tmp_path / "clean", "run", {"a": 1}, progress=False)
    message = str(err.value)
    assert str(final) in message and "delete it and rerun" in message
    assert "\n" not in message and calls == []  # nothing recomputed, one line
    with pytest.raises(CorruptFileError, match="run.npz"):
        load_run(final)


def test_a_run_file_with_bad_params_is_refused(tmp_path):
    path = tmp_path / "clean" / "run.npz"
    _clean(tmp_path)
    for params, msg in [("{not json", "not JSON"), ("[1, 2]", "not a JSON object")]:
        _rewrite(path, lambda arrays, text=params: arrays.update(params=np.array(text)))
        with pytest.raises(CorruptFileError, match=msg):
            load_run(path)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_run(tmp_path / "missing.npz")


TAMPER = {**DAMAGE, "rewritten with zeroed examples": _zero_examples,
          "record deleted": lambda p: record_path(p).unlink(),
          "record unreadable": lambda p: record_path(p).write_text("{"),
          "record of other parameters": lambda p: write_record(p, params_sha256="0" * 64)}


@pytest.mark.parametrize("damage", sorted(TAMPER))
def test_a_damaged_part_is_discarded_before_work_and_recomputed(tmp_path, damage):
    folder = tmp_path / "partial"
    _interrupted(folder)
    part = folder / "run.parts" / "part-00001.npz"  # sources 9 and 1
    TAMPER[damage](part)
    calls: list = []
    attack = _attack(calls)
    seen: list = []

    def checked_first(batch):
        seen.append(len(caught))  # warnings emitted before this batch was computed
        return attack(batch)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run, _ = run_attack(checked_first, IDX, folder, "run", {"a": 1}, batch_size=2,
                            progress=False)
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert len(messages) == 1 and "part-00001.npz" in messages[0]
    assert "recomputed" in messages[0] and seen[0] == 1
    assert calls == [[9, 1], [7, 2]]  # the discarded part's sources, then the rest
    _same(run, _clean(tmp_path))


def test_stale_parts_without_a_record_are_not_mixed_in(tmp_path):
    """The issue's scenario: parts left without the run's parameter record, then an
    interrupted run with other parameters, then a rerun."""
    folder = tmp_path / "run"
    _interrupted(folder, {"a": 0})  # a run with other parameters...
    (folder / "run.parts" / "params.json").unlink()  # ...whose parameter record is lost
    for part in (folder / "run.parts").glob("part-*.npz"):
        _zero_examples(part)  # stale rows that differ from this run's
        record_path(part).unlink()  # as written by a version without records
    with pytest.warns(RuntimeWarning, match="no integrity record"):
        _interrupted(folder, {"a": 1}, n_batches=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the parts now present are this run's, all valid
        run, _ = run_attack(_attack([]), IDX, folder, "run", {"a": 1}, batch_size=2,
                            progress=False)
    _same(run, _clean(tmp_path))


def test_parts_of_other_parameters_are_discarded(tmp_path):
    folder = tmp_path / "run"
    _interrupted(folder, {"a": 0})
    (folder / "run.parts" / "params.json").unlink()
    calls: list = []
    with pytest.warns(RuntimeWarning, match="other parameters"):
        run, _ = run_attack(_attack(calls), IDX, folder, "run", {"a": 1}, batch_size=2,
                            progress=False)
    assert calls == [[5, 3], [9, 1], [7, 2]]
    _same(run, _clean(tmp_path))


def test_new_parts_never_overwrite_existing_ones(tmp_path):
    folder = tmp_path / "run"
    _interrupted(folder)
    parts = folder / "run.parts"
    (parts / "part-00000.npz").unlink()  # a gap: part 1 must not be overwritten
    record_path(parts / "part-00000.npz").unlink()
    _interrupted(folder, n_batches=1)  # recomputes sources 5 and 3 into a new part
    assert sorted(p.name for p in parts.glob("part-*.npz")) == [
        "part-00001.npz", "part-00002.npz"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run, _ = run_attack(_attack([]), IDX, folder, "run", {"a": 1}, progress=False)
    _same(run, _clean(tmp_path))


def test_a_part_record_states_hash_rows_and_arrays(tmp_path):
    _interrupted(tmp_path, n_batches=1)
    part = tmp_path / "run.parts" / "part-00000.npz"
    record = json.loads(record_path(part).read_text())
    assert record["rows"] == 2 and record["size"] == part.stat().st_size
    assert len(record["sha256"]) == 64 and len(record["params_sha256"]) == 64
    assert record["arrays"]["examples"] == ["<f8", [2, 28, 28]]
    assert set(record["arrays"]) == {"sources", "source_indices", "source_labels",
                                     "examples", "targets", "distortion", "neighbours"}


# ---------------------------------------------------------------- the command
class _FakeLinf:
    """Stands in for the l-inf attack in the command (the runner is what is tested)."""

    batches: list = []
    stop_after: int | None = None

    def __init__(self, images, labels, *, eps, n_jobs=1):
        self.eps = eps

    def run(self, images, labels):
        if _FakeLinf.stop_after is not None and len(_FakeLinf.batches) == _FakeLinf.stop_after:
            raise KeyboardInterrupt
        _FakeLinf.batches.append(len(images))
        src = images / 255.0
        arrays = {"sources": src, "source_labels": labels.astype(np.int64),
                  "examples": np.clip(src + self.eps, 0, 1),
                  "targets": (labels.astype(np.int64) + 1) % 10,
                  "distortion": np.full(len(images), self.eps)}
        return SimpleNamespace(as_arrays=lambda: arrays)


@pytest.fixture
def fake_linf(monkeypatch):
    import invariance_tradeoffs.simulations.attacks.linf as linf

    monkeypatch.setattr(linf, "LinfInvarianceAttack", _FakeLinf)
    _FakeLinf.batches, _FakeLinf.stop_after = [], None
    return _FakeLinf


def _attack_cli(mnist_dir: Path, out: Path) -> int:
    return main(["mnist", "attack", "linf", "--eps", "0.3", "--indices", "0:40",
                 "--batch-size", "5", "--data-dir", str(mnist_dir), "--out", str(out),
                 "--no-progress"])


@pytest.mark.parametrize("damage", ["truncated", "byte flipped", "key missing"])
def test_cli_reports_a_damaged_run_file_in_one_line(tmp_path, mnist_dir, fake_linf, capsys,
                                                    damage):
    assert _attack_cli(mnist_dir, tmp_path) == 0
    DAMAGE[damage](tmp_path / "linf_eps0.3.npz")
    fake_linf.batches.clear()
    capsys.readouterr()
    assert _attack_cli(mnist_dir, tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("tradeoffs: error: run file ") and err.count("\n") == 1
    assert "linf_eps0.3.npz" in err and "delete it" in err and fake_linf.batches == []


@pytest.mark.parametrize("damage", ["truncated", "byte flipped", "key missing"])
def test_cli_recomputes_a_damaged_part(tmp_path, mnist_dir, fake_linf, capsys, damage):
    fake_linf.stop_after = 3
    assert _attack_cli(mnist_dir, tmp_path / "a") == 130  # interrupted after 3 parts
    DAMAGE[damage](tmp_path / "a" / "linf_eps0.3.parts" / "part-00001.npz")
    fake_linf.stop_after, fake_linf.batches = None, []
    with pytest.warns(RuntimeWarning, match="discarding .*part-00001.npz"):
        assert _attack_cli(mnist_dir, tmp_path / "a") == 0
    assert fake_linf.batches == [5] * 6  # part 1's five sources, then the last five parts
    assert _attack_cli(mnist_dir, tmp_path / "b") == 0
    _same(*(load_run(tmp_path / d / "linf_eps0.3.npz") for d in "ab"))


def test_reproduce_refuses_a_damaged_attack_run_before_any_work(tmp_path, capsys):
    run = tmp_path / "run.npz"
    run.write_bytes(b"PK\x03\x04 truncated")
    out = tmp_path / "results"
    code = main(["reproduce", "--quick", "--out", str(out), "--attack-run", str(run),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("tradeoffs: error: run file ") and str(run) in err
    assert err.count("\n") == 1 and not (out / "config.json").exists()


@pytest.mark.slow
def test_real_attack_resumes_past_a_damaged_part(tmp_path, mnist_dir, monkeypatch):
    """The l-inf attack itself (no stand-in): interrupted, one part damaged, resumed."""
    import invariance_tradeoffs.simulations.attacks.linf as linf

    real_run = linf.LinfInvarianceAttack.run
    calls: list = []

    def stop_second(self, images, labels):
        calls.append(len(images))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run(self, images, labels)

    args = ["mnist", "attack", "linf", "--eps", "0.3", "--indices", "0:10", "--batch-size",
            "5", "--data-dir", str(mnist_dir), "--no-progress", "--out"]
    with monkeypatch.context() as mp:
        mp.setattr(linf.LinfInvarianceAttack, "run", stop_second)
        assert main([*args, str(tmp_path / "a")]) == 130
    flip_byte(tmp_path / "a" / "linf_eps0.3.parts" / "part-00000.npz")
    with pytest.warns(RuntimeWarning, match="part-00000.npz"):
        assert main([*args, str(tmp_path / "a")]) == 0
    assert main([*args, str(tmp_path / "b")]) == 0
    _same(*(load_run(tmp_path / d / "linf_eps0.3.npz") for d in "ab"))


# ---------------------------------------------------------------- the alignment memo
@pytest.mark.parametrize("damage", ["truncated", "byte flipped", "random bytes",
                                    "key missing"])
def test_a_damaged_alignment_memo_is_recomputed(tmp_path, mnist_dir, damage):
    """The memo of the alignment search (a pure function's result, cached beside the
    models) is recomputed when damaged, never a traceback, never believed."""
    from invariance_tradeoffs.simulations.attacks.alignment import align_neighbours_cached
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    train, test = load_mnist("train", mnist_dir), load_mnist("test", mnist_dir)
    args = (test.images[:2], test.labels[:2], train.images[:300], train.labels[:300])
    first = align_neighbours_cached(*args, cache_dir=tmp_path)
    (memo,) = tmp_path.glob("alignment-*.npz")
    drop = {"key missing": lambda p: _rewrite(p, lambda arrays: arrays.pop("distances"))}
    {**DAMAGE, **drop}[damage](memo)
    again = align_neighbours_cached(*args, cache_dir=tmp_path)
    for name in ("neighbours", "classes", "train_indices", "transforms", "distances"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name))
    assert align_neighbours_cached(*args, cache_dir=tmp_path).classes.shape == \
        first.classes.shape  # the replaced memo reads back

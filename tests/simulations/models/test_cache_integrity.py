"""Damaged model-cache files (issue 11, item 3): zoo models, proxy members, checkpoints.

Every damage is done to real cache files in ``tmp_path``: empty, random bytes, truncated,
one flipped byte, NaN weights, another architecture, a missing or unreadable integrity
record. A damaged model is refused with a one-line error naming the file and how to
rebuild it (never retrained silently, never believed); a damaged training checkpoint is
discarded with a warning and training restarts from scratch.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from invariance_tradeoffs.simulations.io import CorruptFileError, record_path, write_record
from invariance_tradeoffs.simulations.models import zoo
from invariance_tradeoffs.simulations.models.adapters import to_model_input
from invariance_tradeoffs.simulations.models.zoo import get_config, load_saved, train
from tests.damage import empty, flip_byte, random_bytes, rewrite_npz, truncate
from tests.model_helpers import fake_mnist

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


IMAGES, LABELS = fake_mnist()
TORCH_CFG = replace(get_config("tiny-standard"), n_train=300)
NUMPY_CFG = replace(get_config("tiny-logreg"), n_train=300)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A cache holding a torch and a numpy zoo model, trained once for the module."""
    cache = tmp_path_factory.mktemp("pristine")
    train(TORCH_CFG, IMAGES, LABELS, cache_dir=cache)
    train(NUMPY_CFG, IMAGES, LABELS, cache_dir=cache)
    return cache


@pytest.fixture
def cache(pristine, tmp_path) -> Path:
    shutil.copytree(pristine, tmp_path / "cache")
    return tmp_path / "cache"


def _file(cache: Path, config) -> Path:
    return zoo.cached_path(config, IMAGES, LABELS, cache_dir=cache)[0]


@pytest.fixture
def no_training(monkeypatch):
    """A damaged entry must be reported, not silently retrained."""
    def boom(*a, **k):
        raise AssertionError("retrained instead of reporting the damaged file")

    monkeypatch.setattr(zoo, "train_torch", boom)
    monkeypatch.setattr(zoo, "train_numpy", boom)


# --------------------------------------------------------------------------- damage
def _truncate_third(path: Path) -> None:
    truncate(path, keep=2 / 3)


def _rewrite_torch(path: Path, change, *, record: bool = True) -> None:
    blob = torch.load(path, weights_only=True)
    change(blob)
    torch.save(blob, path)
    if record:  # as if written so (e.g. a diverged run cached by an older version)
        write_record(path)
    else:
        record_path(path).unlink(missing_ok=True)


def _nan_weights(blob: dict) -> None:
    first = next(iter(blob["state_dict"]))
    blob["state_dict"][first][...] = float("nan")


def _other_architecture(blob: dict) -> None:
    from invariance_tradeoffs.simulations.models.architectures import build_architecture

    blob["state_dict"] = build_architecture("small_cnn", seed=0).state_dict()


TORCH_DAMAGE = {
    "empty": (empty, "EOFError|RuntimeError|bytes"),
    "random bytes": (random_bytes, "bytes"),
    "truncated": (_truncate_third, "bytes"),
    # one low-order bit of a stored weight: the file still loads with torch (its zip
    # reader checks no CRC), so before records this was believed
    "one byte flipped": (flip_byte, "SHA256"),
    "NaN weights, recorded": (lambda p: _rewrite_torch(p, _nan_weights), "non-finite"),
    "NaN weights, no record": (
        lambda p: _rewrite_torch(p, _nan_weights, record=False), "non-finite"),
    "other architecture": (
        lambda p: _rewrite_torch(p, _other_architecture), "do not fit the architecture"),
    "empty, no record": (lambda p: (empty(p), record_path(p).unlink()), "EOFError|Runtime"),
    "random bytes, no record": (
        lambda p: (random_bytes(p), record_path(p).unlink()), "Unpickling|RuntimeError"),
    "record unreadable": (lambda p: record_path(p).write_text("{oops"), "record"),
}


def _assert_one_line(message: str, path: Path) -> None:
    assert "\n" not in message and str(path) in message
    assert "delete it and rerun" in message, message


NUMPY_DAMAGE = {
    "truncated": (_truncate_third, "bytes"),
    "one byte flipped": (flip_byte, "SHA256"),
    "random bytes, no record": (
        lambda p: (random_bytes(p), record_path(p).unlink()), "pickled|BadZipFile"),
}


def _rewrite_npz(path: Path, change) -> None:
    """Rewrite a numpy model with ``change(arrays)`` applied, and record it so."""
    rewrite_npz(path, change)
    write_record(path)


def _nan_weight(arrays: dict) -> None:
    arrays["weight"][0, 0] = np.nan


NUMPY_DAMAGE["NaN weights"] = (lambda p: _rewrite_npz(p, _nan_weight), "non-finite")
NUMPY_DAMAGE["weight missing"] = (lambda p: _rewrite_npz(p, lambda a: a.pop("weight")),
                                  "weight")


MODEL_DAMAGE = [(TORCH_CFG, TORCH_DAMAGE, d) for d in sorted(TORCH_DAMAGE)] + [
    (NUMPY_CFG, NUMPY_DAMAGE, d) for d in sorted(NUMPY_DAMAGE)]


@pytest.mark.parametrize(("cfg", "table", "damage"), MODEL_DAMAGE,
                         ids=[f"{c.method}: {d}" for c, _, d in MODEL_DAMAGE])
def test_a_damaged_model_is_refused_with_its_name(cache, no_training, cfg, table, damage):
    path = _file(cache, cfg)
    change, reason = table[damage]
    change(path)
    with pytest.raises(CorruptFileError, match=reason) as err:
        train(cfg, IMAGES, LABELS, cache_dir=cache)
    _assert_one_line(str(err.value), path)
    with pytest.raises(CorruptFileError, match=reason):
        load_saved(path)  # an explicit file (`--model FILE`) is checked the same way


def test_the_record_states_the_files_hash(cache):
    for cfg in (TORCH_CFG, NUMPY_CFG):
        path = _file(cache, cfg)
        record = json.loads(record_path(path).read_text())
        assert record["file"] == path.name and record["size"] == path.stat().st_size
        assert len(record["sha256"]) == 64


@pytest.mark.parametrize("cfg", [TORCH_CFG, NUMPY_CFG], ids=["torch", "numpy"])
def test_a_cache_entry_without_record_is_accepted_once_and_recorded(cache, no_training, cfg):
    """Models cached by versions without records: loaded after every other check, then
    recorded (with a warning) and protected from then on."""
    path = _file(cache, cfg)
    record_path(path).unlink()
    with pytest.warns(RuntimeWarning, match="no integrity record"):
        first = train(cfg, IMAGES, LABELS, cache_dir=cache)
    assert first.loaded_from_cache and record_path(path).is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = train(cfg, IMAGES, LABELS, cache_dir=cache)
    x = to_model_input(IMAGES[:20])
    np.testing.assert_array_equal(again.model.predict(x), first.model.predict(x))
    flip_byte(path)
    with pytest.raises(CorruptFileError, match="SHA256"):
        train(cfg, IMAGES, LABELS, cache_dir=cache)


def test_an_explicit_file_without_record_is_checked_but_not_recorded(cache):
    path = _file(cache, TORCH_CFG)
    record_path(path).unlink()
    assert load_saved(path).loaded_from_cache and not record_path(path).exists()


def test_a_diverged_training_is_not_cached(tmp_path, monkeypatch):
    def diverged(config, images, labels):
        model, metrics, arrays = real(config, images, labels)
        return model, metrics, {**arrays, "weight": arrays["weight"] * np.nan}

    real = zoo.train_numpy
    monkeypatch.setattr(zoo, "train_numpy", diverged)
    with pytest.raises(ValueError, match="diverged: non-finite weights in weight"):
        train(NUMPY_CFG, IMAGES, LABELS, cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- checkpoints
CKPT_CFG = replace(get_config("tiny-standard"), n_train=200, epochs=2)

CKPT_DAMAGE = {
    "random bytes": random_bytes,
    "empty": empty,
    "truncated": _truncate_third,
    "one byte flipped": flip_byte,
    "no record": lambda p: record_path(p).unlink(),
    "NaN weights": lambda p: _rewrite_torch(p, _nan_weights),
    "other architecture": lambda p: _rewrite_torch(p, _other_architecture),
    "optimizer state missing": lambda p: _rewrite_torch(p, lambda b: b.pop("optimizer")),
}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return train(CKPT_CFG, IMAGES, LABELS, cache_dir=tmp_path_factory.mktemp("full"))


@pytest.mark.parametrize("damage", sorted(CKPT_DAMAGE))
def test_a_damaged_checkpoint_is_discarded_and_training_restarts(tmp_path, uninterrupted,
                                                                 damage):
    assert train(CKPT_CFG, IMAGES, LABELS, cache_dir=tmp_path, _stop_after_epochs=1) is None
    (ckpt,) = tmp_path.glob("*.partial.pt")
    assert record_path(ckpt).is_file()
    CKPT_DAMAGE[damage](ckpt)
    with pytest.warns(RuntimeWarning, match="discarding the training checkpoint") as caught:
        resumed = train(CKPT_CFG, IMAGES, LABELS, cache_dir=tmp_path)
    assert ckpt.name in str(caught[0].message) and "restarts from scratch" in str(
        caught[0].message)
    assert not ckpt.exists() and not record_path(ckpt).exists()
    # from scratch: the same model, and both epochs' history, as an uninterrupted run
    assert resumed.metrics["history"] == uninterrupted.metrics["history"]
    x = to_model_input(IMAGES[:20])
    np.testing.assert_array_equal(resumed.model.logits(x), uninterrupted.model.logits(x))


def test_an_intact_checkpoint_still_resumes(tmp_path, uninterrupted):
    assert train(CKPT_CFG, IMAGES, LABELS, cache_dir=tmp_path, _stop_after_epochs=1) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = train(CKPT_CFG, IMAGES, LABELS, cache_dir=tmp_path)
    assert resumed.metrics["history"] == uninterrupted.metrics["history"]
    assert not list(tmp_path.glob("*.partial.pt*"))  # checkpoint and record removed


# --------------------------------------------------------------------------- proxy members
def _member(cache: Path):
    from invariance_tradeoffs.simulations.models.proxy import train_proxy_member, with_overrides

    cfg = with_overrides("proxy-tiny", n_train=40, batch_size=20, n_members=1)
    return train_proxy_member(cfg, 0, IMAGES, LABELS, cache_dir=cache)


def _proxy_arch(blob: dict) -> None:
    from invariance_tradeoffs.simulations.models.proxy import build_proxy_cnn

    blob["state_dict"] = build_proxy_cnn(width=8).state_dict()  # proxy-tiny has width 4


MEMBER_DAMAGE = {
    "random bytes": (random_bytes, "bytes"),
    "truncated": (_truncate_third, "bytes"),
    "one byte flipped": (flip_byte, "SHA256"),
    "NaN weights": (lambda p: _rewrite_torch(p, _nan_weights), "non-finite"),
    "other width": (lambda p: _rewrite_torch(p, _proxy_arch), "do not fit the architecture"),
    "empty, no record": (lambda p: (empty(p), record_path(p).unlink()), "EOFError|Runtime"),
}


@pytest.fixture(scope="module")
def member_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("proxy")
    _member(cache)
    return cache


@pytest.mark.parametrize("damage", sorted(MEMBER_DAMAGE))
def test_a_damaged_proxy_member_is_refused_with_its_name(member_cache, tmp_path, monkeypatch,
                                                         damage):
    import invariance_tradeoffs.simulations.models.proxy as proxy_mod

    cache = Path(shutil.copytree(member_cache, tmp_path / "cache"))
    (path,) = cache.glob("*.pt")
    change, reason = MEMBER_DAMAGE[damage]
    change(path)
    monkeypatch.setattr(proxy_mod, "_train_member", lambda *a, **k: pytest.fail("retrained"))
    with pytest.raises(CorruptFileError, match=reason) as err:
        _member(cache)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "delete it and rerun to retrain the member" in message


# --------------------------------------------------------------------------- the command
def test_cli_reports_a_damaged_cached_model_in_one_line(mnist_dir, published_dir, tmp_path,
                                                        capsys):
    from invariance_tradeoffs.simulations.cli import main

    trained = zoo.load_or_train("tiny-standard", data_dir=mnist_dir, cache_dir=tmp_path)
    common = ["mnist", "evaluate", "--data-dir", str(mnist_dir), "--published-dir",
              str(published_dir), "--no-pgd", "--no-progress"]
    for damage in (flip_byte, _truncate_third):
        damage(trained.path)
        for model in (["--model", "tiny-standard", "--cache-dir", str(tmp_path)],
                      ["--model", str(trained.path)]):
            assert main([*common, *model]) == 2
            err = capsys.readouterr().err
            assert err.startswith("tradeoffs: error: model file ") and err.count("\n") == 1
            assert str(trained.path) in err and "delete it and rerun (with --train)" in err

"""MNIST loader: directory resolution, checksum verification, download path (faked), errors."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from invariance_tradeoffs.simulations.data import mnist as data
from invariance_tradeoffs.simulations.data.mnist import MNIST_FILES, load_mnist, to_unit

LABELS = "t10k-labels-idx1-ubyte"


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch, tmp_path):
    """Isolate every test: empty verification cache, cache dir under tmp, no env var."""
    monkeypatch.setattr(data, "_VERIFIED", {})
    monkeypatch.setattr(data, "cache_root", lambda: tmp_path / "cache")
    monkeypatch.delenv(data.ENV_VAR, raising=False)


def _link_all(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for base in MNIST_FILES:
        found = data._file_in(src, base)
        (dst / found.name).symlink_to(found.resolve())
    return dst


def test_load_real_splits(mnist_dir):
    train = load_mnist("train", mnist_dir)
    test = load_mnist("test", mnist_dir)
    assert train.images.shape == (60000, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (10000, 28, 28) and test.labels.dtype == np.uint8
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert np.bincount(test.labels).tolist()[:3] == [980, 1135, 1032]
    # returned arrays are fresh copies: modifying them does not leak into later loads
    test.images[0] = 7
    assert not np.all(load_mnist("test", mnist_dir).images[0] == 7)


def test_resolution_order(mnist_dir, tmp_path, monkeypatch):
    root = tmp_path / "root"
    _link_all(mnist_dir, root / "mnist")
    # environment variable pointing at a root holding mnist/ ...
    monkeypatch.setenv(data.ENV_VAR, str(root))
    assert data.find_mnist_dir() == (root / "mnist", f"${data.ENV_VAR}")
    assert load_mnist("test").labels.shape == (10000,)
    # ... or straight at the MNIST folder
    monkeypatch.setenv(data.ENV_VAR, str(root / "mnist"))
    assert data.find_mnist_dir()[0] == root / "mnist"
    # an explicit argument wins over the environment
    other = _link_all(mnist_dir, tmp_path / "other")
    assert data.find_mnist_dir(other) == (other, "data_dir argument (--data-dir)")
    # without either, the cache directory
    monkeypatch.delenv(data.ENV_VAR)
    assert data.find_mnist_dir()[1] == "cache directory"


def test_plain_idx_files_accepted(mnist_dir, tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    for base in ("t10k-images-idx3-ubyte", LABELS):
        with gzip.open(data._file_in(mnist_dir, base)) as fh:
            (folder / base).write_bytes(fh.read())
    test = load_mnist("test", folder)
    assert test.images.shape == (10000, 28, 28)


def test_verification_is_cached_per_path_mtime_size(mnist_dir, tmp_path, monkeypatch):
    folder = _link_all(mnist_dir, tmp_path / "m")
    calls = []
    real = data._parse_idx
    monkeypatch.setattr(data, "_parse_idx", lambda p, b: calls.append(p) or real(p, b))
    load_mnist("test", folder)
    load_mnist("test", folder)
    assert len(calls) == 2  # images + labels, verified once
    # a changed file (new mtime/size) is verified again
    lab = folder / f"{LABELS}.gz"
    lab.unlink()
    shutil.copy(data._file_in(mnist_dir, LABELS), lab)
    load_mnist("test", folder)
    assert len(calls) == 3


def _corrupt_copy(mnist_dir: Path, folder: Path, how: str) -> Path:
    _link_all(mnist_dir, folder)
    target = folder / f"{LABELS}.gz"
    raw = gzip.open(data._file_in(mnist_dir, LABELS)).read()
    target.unlink()
    if how == "truncated-gzip":
        target.write_bytes(gzip.compress(raw)[:-200])
    elif how == "flipped-byte":
        bad = bytearray(raw)
        bad[100] ^= 1
        target.write_bytes(gzip.compress(bytes(bad)))
    elif how == "short-content":
        target.write_bytes(gzip.compress(raw[:-10]))
    elif how == "not-gzip":
        target.write_bytes(b"this is not a gzip file")
    return target


@pytest.mark.parametrize("how", ["truncated-gzip", "flipped-byte", "short-content", "not-gzip"])
def test_corrupted_file_is_an_error_naming_it(mnist_dir, tmp_path, how):
    target = _corrupt_copy(mnist_dir, tmp_path / "bad", how)
    with pytest.raises(ValueError, match="corrupted or truncated") as err:
        load_mnist("test", tmp_path / "bad")
    assert str(target) in str(err.value)


def test_missing_files_offline_message(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as err:
        load_mnist("train", empty)
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and "train-labels-idx1-ubyte" in msg
    assert str(empty / "mnist") in msg and "--data-dir" in msg and data.ENV_VAR in msg
    assert "\n" not in msg
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist("train", tmp_path / "nowhere")


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation")


def test_download_falls_back_across_mirrors(mnist_dir, tmp_path, monkeypatch):
    """Real HTTP on 127.0.0.1: a corrupting mirror, a half-sending one, then a good one."""
    from tests.loopback import LoopbackServer

    with LoopbackServer() as server:
        for base in ("t10k-images-idx3-ubyte", LABELS):
            good = data._file_in(mnist_dir, base).read_bytes()
            raw = bytearray(gzip.open(data._file_in(mnist_dir, base)).read())
            raw[-1] ^= 0xFF
            server.serve(f"bad/{base}.gz", gzip.compress(bytes(raw)))
            server.serve(f"half/{base}.gz", good, mode="truncate")
            server.serve(f"good/{base}.gz", good)
        mirrors = tuple(server.url + m + "/" for m in ("bad", "half", "good"))
        monkeypatch.setattr(data, "MNIST_MIRRORS", mirrors)
        test = load_mnist("test")  # cache directory: downloads by default
        assert test.images.shape == (10000, 28, 28)
        cache = tmp_path / "cache" / "mnist"
        assert sorted(p.name for p in cache.iterdir()) == [
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ]
        assert [r.split("/")[1] for r in server.requests] == ["bad", "half", "good"] * 2
        load_mnist("test")  # a second load finds the files: no further request
        assert len(server.requests) == 6
        # every mirror failing: nothing partial or unverified is left behind
        monkeypatch.setattr(data, "MNIST_MIRRORS", mirrors[:2])
        with pytest.raises(FileNotFoundError, match="download failed") as err:
            load_mnist("train")
        assert "train-images-idx3-ubyte" in str(err.value) and "--data-dir" in str(err.value)
        assert sorted(p.name for p in cache.iterdir()) == [
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ]


def test_to_unit():
    img = np.array([[0, 255, 51]], dtype=np.uint8)
    np.testing.assert_allclose(to_unit(img), [[0.0, 1.0, 0.2]])
    with pytest.raises(TypeError, match="uint8"):
        to_unit(img.astype(float))

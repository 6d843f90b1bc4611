"""Loader of the authors' released invariance examples: real sets, aliases, unknown sets, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulations.mnist import data
from simulations.mnist.published import (
    find_published_dir,
    load_published_examples,
    published_indices,
)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch, tmp_path):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setattr(data, "cache_root", lambda: tmp_path / "cache")


def test_real_release(published_dir, mnist_dir):
    sets = load_published_examples(published_dir, data_dir=mnist_dir)
    assert list(sets)[:2] == ["linf/automated_eps03", "linf/automated_eps04"]
    e3, e4 = sets["linf/automated_eps03"], sets["linf/automated_eps04"]
    for s in (e3, e4):
        assert s.n == 100 and s.norm == "linf"
        assert s.examples.shape == s.sources.shape == (100, 28, 28)
        assert 0 <= s.examples.min() and s.examples.max() <= 1
        np.testing.assert_array_equal(s.source_indices, published_indices(published_dir))
    # published human-success rates: 21% at 0.3 and 37% at 0.4
    assert e3.human_changed.mean() == pytest.approx(0.21)
    assert e4.human_changed.mean() == pytest.approx(0.37)
    # reported, not tuned: eps03 respects its radius; every eps04 example exceeds 0.4 by
    # exactly one grey level (103/255), within uint8 storage resolution
    assert e3.radius == 0.3 and len(e3.violations) == 0
    assert e4.radius == 0.4 and len(e4.violations) == 100
    assert np.allclose(e4.distortion, 103 / 255)
    loose = load_published_examples(published_dir, data_dir=mnist_dir, tol=1 / 255 + 1e-9)
    assert len(loose["linf/automated_eps04"].violations) == 0


def _fake_release(root: Path, mnist_dir: Path) -> dict[str, np.ndarray]:
    """A release laid out like the authors' (with the sets absent from ../shared/data)."""
    test = data.load_mnist("test", mnist_dir)
    rng = np.random.default_rng(0)
    (root / "linf").mkdir(parents=True)
    (root / "l0").mkdir()
    idx = np.arange(0, 70, 7, dtype=np.int64)
    np.save(root / "indexs.npy", idx)
    src = test.images[idx].astype(np.float64)
    # automated eps03 as float32 in [0, 255], within 0.3 of the source
    ex = np.clip(src + rng.uniform(-76, 76, src.shape), 0, 255).astype(np.float32)
    np.save(root / "linf" / "automated_eps03.npy", ex)
    np.save(root / "linf" / "automated_eps03_labels.npy", test.labels[idx].astype(np.int64))
    # manual set under an alias name, uint8, own indices
    midx = np.array([3, 1, 4, 1, 5], dtype=np.int64)
    msrc = test.images[midx].astype(np.float64)
    man = np.clip(msrc + rng.uniform(-100, 100, msrc.shape), 0, 255).astype(np.uint8)
    np.save(root / "linf" / "manual.npy", man)
    np.save(root / "linf" / "manual_labels.npy", np.array([0, 1, 2, 3, 4]))
    np.save(root / "linf" / "manual_indexs.npy", midx)
    # l0 set: a few pixels changed arbitrarily
    l0 = test.images[idx].copy()
    l0[:, 10, 10:15] = 255 - l0[:, 10, 10:15]
    np.save(root / "l0" / "automated.npy", l0)
    np.save(root / "l0" / "automated_labels.npy", np.full(10, 3))
    # an unknown set: radius from the name, own index file, one radius violation
    cidx = np.array([11, 12, 13], dtype=np.int64)
    csrc = test.images[cidx].astype(np.float64) / 255
    cus = np.clip(csrc + 0.2, 0, 1)
    cus[2, 0, 0] = 0.9  # the corner pixel is 0 in MNIST: distortion 0.9 > 0.2
    np.save(root / "linf" / "custom_eps02.npy", cus)
    np.save(root / "linf" / "custom_eps02_labels.npy", np.array([1, 2, 3]))
    np.save(root / "linf" / "custom_eps02_indexs.npy", cidx)
    return {"idx": idx, "midx": midx}


def test_aliases_and_unknown_sets(tmp_path, mnist_dir):
    info = _fake_release(tmp_path / "excessive-invariance", mnist_dir)
    # a root holding excessive-invariance/ is accepted
    sets = load_published_examples(tmp_path, data_dir=mnist_dir)
    assert set(sets) == {
        "linf/automated_eps03",
        "linf/manual_eps04",
        "l0/automated",
        "linf/custom_eps02",
    }
    man = sets["linf/manual_eps04"]
    np.testing.assert_array_equal(man.source_indices, info["midx"])
    assert man.radius == 0.4 and man.norm == "linf" and man.files[0].endswith("linf/manual.npy")
    assert len(man.violations) == 0  # |noise| <= 100/255 < 0.4
    l0 = sets["l0/automated"]
    assert l0.norm == "l0" and l0.radius is None and len(l0.violations) == 0
    assert np.all(l0.distortion <= 5) and l0.distortion.max() > 0
    cus = sets["linf/custom_eps02"]
    assert cus.norm == "linf" and cus.radius == pytest.approx(0.2)
    assert cus.violations.tolist() == [2]
    assert sets["linf/automated_eps03"].original_labels.shape == (10,)


def test_absent_sets_are_not_returned(tmp_path, mnist_dir):
    root = tmp_path / "rel"
    _fake_release(root, mnist_dir)
    for f in (root / "l0").iterdir():
        f.unlink()
    assert "l0/automated" not in load_published_examples(root, data_dir=mnist_dir)


def test_environment_variable(tmp_path, mnist_dir, monkeypatch):
    _fake_release(tmp_path / "excessive-invariance", mnist_dir)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    assert find_published_dir()[0] == tmp_path / "excessive-invariance"


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("object-array", "cannot read"),
        ("wrong-shape", "must have shape"),
        ("label-range", "out of range"),
        ("label-length", "length"),
        ("index-range", "outside"),
    ],
)
def test_invalid_files(tmp_path, mnist_dir, breakage, message):
    root = tmp_path / "rel"
    _fake_release(root, mnist_dir)
    lab = root / "linf" / "automated_eps03_labels.npy"
    img = root / "linf" / "automated_eps03.npy"
    if breakage == "object-array":
        np.save(img, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif breakage == "wrong-shape":
        np.save(img, np.zeros((10, 28, 27), dtype=np.uint8))
    elif breakage == "label-range":
        np.save(lab, np.full(10, 12))
    elif breakage == "label-length":
        np.save(lab, np.zeros(9, dtype=np.int64))
    elif breakage == "index-range":
        np.save(root / "indexs.npy", np.arange(10) + 9995)
    with pytest.raises(ValueError, match=message):
        load_published_examples(root, data_dir=mnist_dir)


def test_missing_release(tmp_path):
    with pytest.raises(FileNotFoundError, match="--published-dir"):
        load_published_examples(tmp_path)
    with pytest.raises(ValueError, match="tol"):
        load_published_examples(tmp_path, tol=-1)

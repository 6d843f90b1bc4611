"""Loader of the authors' released invariance examples: real sets, both layouts, checksums,
missing sets, unknown sets, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from invariance_tradeoffs.simulations.data import mnist as data
from invariance_tradeoffs.simulations.data import release
from invariance_tradeoffs.simulations.data.published import (
    KNOWN_SETS,
    load_published_examples,
    published_indices,
    published_neighbours,
)
from invariance_tradeoffs.simulations.data.release import RELEASE_FILES, find_release


@pytest.fixture(autouse=True)
def _no_env(monkeypatch, tmp_path):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.delenv(release.RELEASE_URL_ENV, raising=False)
    monkeypatch.setattr(data, "cache_root", lambda: tmp_path / "cache")
    monkeypatch.setattr(release, "_VERIFIED", set())


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
    # the sets ../shared/data lacks are reported as missing, never silently absent
    for name in KNOWN_SETS:
        assert (name in sets) != (name in sets.missing)


def _release_layout(published_dir: Path, root: Path) -> Path:
    """The shared files laid out as in the authors' repository (symlinks)."""
    for relpath in RELEASE_FILES:
        for variant in release._variants(relpath):
            src = published_dir / variant
            if src.is_file():
                dst = root / relpath
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.symlink_to(src.resolve())
                break
    return root


def test_authors_layout_and_neighbours(published_dir, mnist_dir, tmp_path):
    root = _release_layout(published_dir, tmp_path / "checkout")
    assert (root / "invariance_examples" / "indexs.npy").is_file()
    assert (root / "linf" / "all_nns.npy").is_file()
    for where in (root, root / "invariance_examples"):  # a checkout, or its example folder
        sets = load_published_examples(where, data_dir=mnist_dir)
        assert {"linf/automated_eps03", "linf/automated_eps04"} <= set(sets)
        assert sets.folder == root
    nns, classes, grids = published_neighbours(root)
    assert nns.shape == (100, 9, 28, 28) and classes.shape == (100, 9)
    assert grids.shape == (100, 9, 3) and classes.dtype == np.int64
    # each source's neighbours cover the 9 other classes
    assert all(len(set(c)) == 9 for c in classes.tolist())


def test_flipped_bit_is_refused(published_dir, mnist_dir, tmp_path):
    root = tmp_path / "copy" / "excessive-invariance"
    shutil.copytree(published_dir, root)
    lab = root / "linf" / "automated_eps03_labels.npy"
    raw = bytearray(lab.read_bytes())
    raw[-1] ^= 1  # the last label changes: 22% instead of 21% if it were believed
    lab.chmod(0o644)
    lab.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="automated_eps03_labels.npy is corrupted") as err:
        load_published_examples(tmp_path / "copy", data_dir=mnist_dir)
    assert RELEASE_FILES["invariance_examples/linf/automated_eps03_labels.npy"].sha256 \
        in str(err.value)
    assert lab.exists()  # a user's file is reported, never deleted
    # a truncated file is refused by its size
    nns = root / "linf" / "all_nns.npy"
    nns.chmod(0o644)
    nns.write_bytes(nns.read_bytes()[:1000])
    with pytest.raises(ValueError, match="all_nns.npy is corrupted or truncated"):
        published_neighbours(tmp_path / "copy")


def _fake_release(root: Path, mnist_dir: Path) -> dict[str, np.ndarray]:
    """A release laid out like the authors' with made-up content (so: unverifiable), with
    the sets absent from ../shared/data."""
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
    # manual set, uint8, own indices
    midx = np.array([3, 1, 4, 1, 5], dtype=np.int64)
    msrc = test.images[midx].astype(np.float64)
    man = np.clip(msrc + rng.uniform(-100, 100, msrc.shape), 0, 255).astype(np.uint8)
    np.save(root / "linf" / "manual_eps04.npy", man)
    np.save(root / "linf" / "manual_eps04_labels.npy", np.array([0, 1, 2, 3, 4]))
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


def test_all_known_formats_and_unknown_sets(tmp_path, mnist_dir):
    info = _fake_release(tmp_path / "excessive-invariance", mnist_dir)
    # made-up content at the release's paths fails the checksums ...
    with pytest.raises(ValueError, match="corrupted"):
        load_published_examples(tmp_path, data_dir=mnist_dir)
    # ... and is read, as the release's format, only when verification is switched off
    sets = load_published_examples(tmp_path, data_dir=mnist_dir, verify=False)
    assert set(sets) == {
        "linf/automated_eps03",
        "linf/manual_eps04",
        "l0/automated",
        "linf/custom_eps02",
    }
    assert sets.missing.keys() == {"linf/automated_eps04"}
    man = sets["linf/manual_eps04"]
    np.testing.assert_array_equal(man.source_indices, info["midx"])
    assert man.radius == 0.4 and man.norm == "linf"
    assert man.files[0].endswith("linf/manual_eps04.npy")
    assert len(man.violations) == 0  # |noise| <= 100/255 < 0.4
    l0 = sets["l0/automated"]
    assert l0.norm == "l0" and l0.radius is None and len(l0.violations) == 0
    assert np.all(l0.distortion <= 5) and l0.distortion.max() > 0
    cus = sets["linf/custom_eps02"]
    assert cus.norm == "linf" and cus.radius == pytest.approx(0.2)
    assert cus.violations.tolist() == [2]
    assert sets["linf/automated_eps03"].original_labels.shape == (10,)


def test_absent_sets_are_reported_missing(tmp_path, mnist_dir):
    root = tmp_path / "rel"
    _fake_release(root, mnist_dir)
    for f in (root / "l0").iterdir():
        f.unlink()
    sets = load_published_examples(root, data_dir=mnist_dir, verify=False)
    assert "l0/automated" not in sets
    assert "not in the release folder (l0/automated.npy" in sets.missing["l0/automated"]


def test_environment_variable(tmp_path, mnist_dir, monkeypatch):
    _fake_release(tmp_path / "excessive-invariance", mnist_dir)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    rel = find_release()
    assert rel.path == tmp_path / "excessive-invariance"
    assert rel.origin == f"${data.ENV_VAR}"


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
        load_published_examples(root, data_dir=mnist_dir, verify=False)


def test_invalid_neighbour_classes(published_dir, tmp_path):
    root = tmp_path / "excessive-invariance"
    shutil.copytree(published_dir, root)
    ys = np.load(published_dir / "linf" / "all_y_nns.npy")
    ys[0, 0] = 77
    target = root / "linf" / "all_y_nns.npy"
    target.chmod(0o644)
    np.save(target, ys)
    with pytest.raises(ValueError, match="all_y_nns"):
        published_neighbours(tmp_path, download=False)


def test_missing_release(tmp_path):
    with pytest.raises(FileNotFoundError, match="tradeoffs mnist download"):
        load_published_examples(tmp_path)
    with pytest.raises(ValueError, match="tol"):
        load_published_examples(tmp_path, tol=-1)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        load_published_examples(a_file)

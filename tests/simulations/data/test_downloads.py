"""Fetching MNIST and the authors' release over real HTTP, from a server on 127.0.0.1.

No mock of pooch or of the network: the package's own download code talks to
:class:`tests.loopback.LoopbackServer`, which serves the files of ../shared/data laid out
like the authors' repository and the MNIST mirrors, and misbehaves on demand (corrupted
bytes, truncated responses, 404, a stalled transfer interrupted by killing the client).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from invariance_tradeoffs.simulations.cli import main
from invariance_tradeoffs.simulations.data import mnist as data
from invariance_tradeoffs.simulations.data import release
from invariance_tradeoffs.simulations.data.published import (
    load_published_examples,
    published_neighbours,
)
from invariance_tradeoffs.simulations.data.release import RELEASE_FILES, fetch_release, find_release
from tests.loopback import LoopbackServer

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Empty per-test cache, no data variable, fresh verification memos."""
    monkeypatch.setattr(data, "cache_root", lambda: tmp_path / "cache")
    monkeypatch.setattr(data, "_VERIFIED", {})
    monkeypatch.setattr(release, "_VERIFIED", set())
    for var in (data.ENV_VAR, data.MNIST_URL_ENV, release.RELEASE_URL_ENV):
        monkeypatch.delenv(var, raising=False)


def _shared_file(published_dir: Path, relpath: str) -> Path | None:
    for variant in release._variants(relpath):
        if (published_dir / variant).is_file():
            return published_dir / variant
    return None


@pytest.fixture
def mirror(published_dir, mnist_dir):
    """A loopback server holding every release file present in ../shared/data (at the
    authors' paths) and the four MNIST files under mnist/."""
    with LoopbackServer() as server:
        for relpath in RELEASE_FILES:
            src = _shared_file(published_dir, relpath)
            if src is not None:
                server.serve(relpath, src.read_bytes())
        for base in data.MNIST_FILES:
            server.serve(f"mnist/{base}.gz", data._file_in(mnist_dir, base).read_bytes())
        yield server


def _available(published_dir: Path) -> list[str]:
    return [p for p in RELEASE_FILES if _shared_file(published_dir, p) is not None]


def test_good_fetch_into_the_cache(mirror, published_dir, mnist_dir, tmp_path):
    have = _available(published_dir)
    report = fetch_release(url=mirror.url)
    assert report.folder == tmp_path / "cache" / "excessive-invariance"
    assert sorted(report.fetched) == sorted(have)
    # files of the table that the source does not serve are reported, naming file and URL
    assert set(report.failed) == set(RELEASE_FILES) - set(have)
    for relpath, why in report.failed.items():
        assert mirror.url + relpath in why and "404" in why
    for relpath in have:  # in the authors' layout, byte-identical to the source
        dest = report.folder / relpath
        assert dest.read_bytes() == _shared_file(published_dir, relpath).read_bytes()
    # nothing but the verified files (no temporary names) in the cache
    files = sorted(p.relative_to(report.folder).as_posix()
                   for p in report.folder.rglob("*") if p.is_file())
    assert files == sorted(have)
    # a second fetch downloads nothing
    n = len(mirror.requests)
    again = fetch_release(url=mirror.url)
    assert again.fetched == [] and sorted(again.present) == sorted(have)
    assert len(mirror.requests) == n + len(RELEASE_FILES) - len(have)  # only the absent
    sets = load_published_examples(data_dir=mnist_dir)
    assert {"linf/automated_eps03", "linf/automated_eps04"} <= set(sets)
    assert sets.origin == "cache directory"


def test_first_use_fetches_on_its_own(mirror, mnist_dir, monkeypatch):
    # No fetch command: loading from the cache directory downloads what is missing.
    monkeypatch.setenv(release.RELEASE_URL_ENV, mirror.url)
    nns, classes, grids = published_neighbours()
    assert nns.shape == (100, 9, 28, 28)
    assert any(r.endswith("linf/all_nns.npy") for r in mirror.requests)
    sets = load_published_examples(data_dir=mnist_dir)
    assert sets["linf/automated_eps03"].human_changed.mean() == pytest.approx(0.21)
    assert "linf/manual_eps04" in sets.missing and "404" in sets.missing["linf/manual_eps04"]


def test_corrupted_file_is_rejected_and_deleted(mirror, published_dir):
    relpath = "invariance_examples/linf/automated_eps03_labels.npy"
    body = bytearray(_shared_file(published_dir, relpath).read_bytes())
    body[-1] ^= 1
    mirror.serve(relpath, bytes(body))
    report = fetch_release(url=mirror.url, files=[relpath])
    assert not report.ok and "hash" in report.failed[relpath].lower()
    assert mirror.url + relpath in report.failed[relpath]
    folder = find_release().path
    assert not any(p.is_file() for p in folder.rglob("*")) if folder.exists() else True


def test_corrupted_cache_file_is_replaced(mirror, published_dir):
    relpath = "invariance_examples/indexs.npy"
    fetch_release(url=mirror.url, files=[relpath])
    dest = find_release().path / relpath
    dest.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="corrupted"):
        find_release().file(relpath)
    report = fetch_release(url=mirror.url, files=[relpath])
    assert report.fetched == [relpath]
    assert dest.read_bytes() == _shared_file(published_dir, relpath).read_bytes()


def test_truncated_response(mirror, published_dir):
    relpath = "linf/all_nns.npy"
    mirror.serve(relpath, _shared_file(published_dir, relpath).read_bytes(), mode="truncate")
    report = fetch_release(url=mirror.url, files=[relpath])
    assert relpath in report.failed and mirror.url + relpath in report.failed[relpath]
    folder = find_release().path
    assert not (folder / relpath).exists()
    assert not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))


def test_404_names_file_and_url(mirror, tmp_path, capsys):
    code = main(["mnist", "download", "--release-url", mirror.url + "nowhere/",
                 "--mnist-url", mirror.url + "mnist/", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"missing invariance_examples/indexs.npy: download of {mirror.url}nowhere/" \
           f"invariance_examples/indexs.npy failed" in out
    assert "404" in out
    assert "MIT licence" in out and "@inproceedings{tramer2020fundamental" in out


def test_download_command_fetches_everything(mirror, published_dir, tmp_path, capsys):
    code = main(["mnist", "download", "--release-url", mirror.url,
                 "--mnist-url", mirror.url + "mnist/", "--no-progress"])
    out = capsys.readouterr().out
    have = _available(published_dir)
    assert code == (0 if len(have) == len(RELEASE_FILES) else 1)
    assert f"{len(have)} of {len(RELEASE_FILES)} files verified (SHA256)" in out
    assert str(tmp_path / "cache" / "mnist") in out
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(
        f"{b}.gz" for b in data.MNIST_FILES)
    assert data.load_mnist("test").images.shape == (10000, 28, 28)


def test_mnist_download_rejects_corrupted_content(mirror, mnist_dir, tmp_path, monkeypatch):
    import gzip

    base = "t10k-labels-idx1-ubyte"
    raw = bytearray(gzip.open(data._file_in(mnist_dir, base)).read())
    raw[100] ^= 1
    mirror.serve(f"mnist/{base}.gz", gzip.compress(bytes(raw)))
    monkeypatch.setenv(data.MNIST_URL_ENV, mirror.url + "mnist/")
    with pytest.raises(FileNotFoundError) as err:
        data.load_mnist("test")  # cache directory: downloads by default
    assert "download failed" in str(err.value) and "MD5" in str(err.value)
    cache = tmp_path / "cache" / "mnist"
    # the good images file is kept, the corrupted labels file is not
    assert sorted(p.name for p in cache.iterdir()) == ["t10k-images-idx3-ubyte.gz"]


def test_no_download_outside_cache_unless_asked(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(data.MNIST_URL_ENV, mirror.url + "mnist/")
    folder = tmp_path / "mine"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="tradeoffs mnist download"):
        data.load_mnist("test", folder)
    assert mirror.requests == []
    report = fetch_release(folder, url=mirror.url)
    assert report.fetched == [] and len(report.failed) == len(RELEASE_FILES)
    assert mirror.requests == []


_CHILD = """
import sys
from invariance_tradeoffs.simulations.data import mnist as data, release
from pathlib import Path
data.cache_root = lambda: Path(sys.argv[1])
print("started", flush=True)
release.fetch_release(url=sys.argv[2], files=["linf/all_nns.npy"])
"""


def test_interrupted_download_leaves_nothing_readable(mirror, published_dir, tmp_path,
                                                      monkeypatch):
    relpath = "linf/all_nns.npy"
    body = _shared_file(published_dir, relpath).read_bytes()
    mirror.serve(relpath, body, mode="stall")
    cache = tmp_path / "child-cache"
    env = {k: v for k, v in os.environ.items()
           if k not in (release.RELEASE_URL_ENV, data.ENV_VAR)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(cache), mirror.url],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 30
        folder = cache / "excessive-invariance" / "linf"
        # wait until the transfer has started writing, then kill the client mid-file
        while time.monotonic() < deadline and not (
                folder.is_dir() and any(p.stat().st_size > 0 for p in folder.iterdir())):
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        child.stdout.close()
    leftovers = [p for p in folder.iterdir()] if folder.is_dir() else []
    assert all(p.name != "all_nns.npy" for p in leftovers)  # only pooch's temporary name
    monkeypatch.setattr(data, "cache_root", lambda: cache)
    rel = find_release()
    assert relpath not in rel.present  # a later run does not read the partial file
    mirror.serve(relpath, body)  # the source recovers: the rerun completes
    report = fetch_release(url=mirror.url, files=[relpath])
    assert report.fetched == [relpath]
    assert np.load(rel.path / relpath, allow_pickle=False).shape == (100, 9, 28, 28)

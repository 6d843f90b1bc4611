"""The published neighbour labels (``linf/all_y_nns.npy``) must be digits 0..9 (issue 11,
item 8): a release holding class 77 is refused where it is loaded -- by its pinned SHA256
and, independently of the hash, by the label check -- and by the attack that reads it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from invariance_tradeoffs.simulations.attacks.linf import examples_from_neighbours
from invariance_tradeoffs.simulations.cli import main
from invariance_tradeoffs.simulations.data import release
from invariance_tradeoffs.simulations.data.published import published_neighbours


@pytest.fixture(autouse=True)
def _fresh_verification(monkeypatch):
    # Every path is hashed anew (the record of verified files is process-wide).
    monkeypatch.setattr(release, "_VERIFIED", set())


@pytest.fixture
def release_with_class_77(published_dir, tmp_path):
    """A copy of the release whose first neighbour label is 77."""
    root = tmp_path / "excessive-invariance"
    shutil.copytree(published_dir, root)
    target = root / "linf" / "all_y_nns.npy"
    ys = np.load(target)
    ys[0, 0] = 77
    target.chmod(0o644)
    np.save(target, ys)
    return root


def test_the_hash_refuses_the_tampered_labels(release_with_class_77):
    with pytest.raises(ValueError, match=r"all_y_nns\.npy is corrupted: SHA256"):
        published_neighbours(release_with_class_77, download=False)


def test_the_label_check_refuses_class_77_without_the_hash(release_with_class_77,
                                                           monkeypatch):
    monkeypatch.setattr(release, "verify_release_file", lambda path, relpath: None)
    with pytest.raises(ValueError, match=r"linf/all_y_nns\.npy has labels out of range "
                                         r"0\.\.9: \[77\]"):
        published_neighbours(release_with_class_77, download=False)


def test_reproduce_linf_ends_in_one_line_naming_the_file(release_with_class_77, mnist_dir,
                                                         monkeypatch, capsys):
    args = ["mnist", "reproduce-linf", "--published-dir", str(release_with_class_77),
            "--data-dir", str(mnist_dir), "--eps", "0.3"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "all_y_nns.npy" in err and len(err.splitlines()) == 1, err
    monkeypatch.setattr(release, "verify_release_file", lambda path, relpath: None)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "out of range 0..9: [77]" in err and len(err.splitlines()) == 1, err


def test_the_attack_refuses_neighbour_classes_that_are_not_digits():
    sources = np.zeros((2, 28, 28), dtype=np.uint8)
    neighbours = np.full((2, 3, 28, 28), 255, dtype=np.uint8)
    classes = np.array([[1, 2, 3], [4, 5, 77]])
    with pytest.raises(ValueError, match=r"neighbour_classes has labels out of range "
                                         r"0\.\.9: \[77\]"):
        examples_from_neighbours(sources, [0, 0], neighbours, classes, 0.3)
    with pytest.raises(ValueError, match="neighbour_classes must have shape"):
        examples_from_neighbours(sources, [0, 0], neighbours, classes[:, :2], 0.3)
    with pytest.raises(ValueError, match="source_labels has labels out of range"):
        examples_from_neighbours(sources, [0, 12], neighbours, classes % 10, 0.3)
    res = examples_from_neighbours(sources, [0, 0], neighbours, classes % 10, 0.3,
                                   targets=None)
    assert res.targets.tolist() == [1, 4]

"""Study design and creation: assignment, attention checks, seeded orders, the study file,
the ``tradeoffs study create`` command and its errors."""

from __future__ import annotations

import os
import sqlite3
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from invariance_tradeoffs.simulations.attacks.runs import AttackRun, save_run
from invariance_tradeoffs.simulations.cli import main
from invariance_tradeoffs.simulations.study import data as study_data
from invariance_tradeoffs.simulations.study import store
from invariance_tradeoffs.simulations.study.design import (
    Design,
    assign_examples,
    create_study,
    items_from_run,
    make_plan,
    n_checks,
    release_name,
    select_items,
    to_grey_levels,
)
from tests.study_helpers import fake_test_split, read_links, synthetic_items


def assignment_ok(per: list[np.ndarray], n: int, design: Design) -> bool:
    """Every example has exactly k distinct participants; loads differ by at most 1."""
    owners = Counter()
    for ex in per:
        if len(set(ex.tolist())) != len(ex):
            return False
        owners.update(ex.tolist())
    loads = [len(ex) for ex in per]
    return (set(owners) == set(range(n)) and set(owners.values()) == {design.labels_per_image}
            and max(loads) - min(loads) <= 1)


@given(st.integers(1, 60), st.integers(1, 12).flatmap(
    lambda p: st.tuples(st.just(p), st.integers(1, p))), st.integers(0, 2**32))
def test_assignment_property(n, pk, seed):
    p, k = pk
    design = Design(p, k, 0.0, seed)
    per = assign_examples(n, design)
    assert len(per) == p and assignment_ok(per, n, design)
    assert all(np.array_equal(a, b) for a, b in zip(per, assign_examples(n, design),
                                                    strict=True))


def test_assignment_checker_catches_breakage():
    design = Design(3, 2, 0.0, 0)
    per = assign_examples(6, design)
    assert assignment_ok(per, 6, design)
    broken = [np.append(per[0], per[0][0]), *per[1:]]  # one participant twice on an image
    assert not assignment_ok(broken, 6, design)
    assert not assignment_ok([per[0], per[1], per[2][:-1]], 6, design)


@pytest.mark.parametrize("m, rate, expected", [(10, 0.0, 0), (10, 0.1, 1), (36, 0.1, 4),
                                               (9, 0.5, 9), (1, 0.05, 1)])
def test_n_checks(m, rate, expected):
    assert n_checks(m, rate) == expected


@pytest.mark.parametrize("kwargs, message", [
    ({"n_participants": 0}, "--participants must be >= 1"),
    ({"n_participants": 2, "labels_per_image": 3}, "--labels-per-image must be in 1..2"),
    ({"n_participants": 3, "attention_rate": 0.7}, "--attention-rate"),
    ({"n_participants": 3, "seed": -1}, "--seed must be >= 0"),
])
def test_design_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Design(**kwargs)
    with pytest.raises(TypeError, match="--participants must be an integer"):
        Design(n_participants=2.0)  # type: ignore[arg-type]


def test_plan_checks_orders_and_reproducibility():
    items, test = synthetic_items(20), fake_test_split()
    design = Design(4, 2, 0.2, seed=5)
    plan = make_plan(items, design, test)
    again = make_plan(items, design, test)
    for a, b in zip(plan.sequences, again.sequences, strict=True):
        np.testing.assert_array_equal(a, b)
    other = make_plan(items, Design(4, 2, 0.2, seed=6), test)
    assert any(not np.array_equal(a, b) for a, b in zip(plan.sequences, other.sequences,
                                                        strict=True))
    for seq in plan.sequences:
        n_ex = int((seq < items.n).sum())
        assert n_ex == 10 and int((seq >= items.n).sum()) == n_checks(n_ex, 0.2)
    # checks never show the clean source of an example of the study, and carry its label
    assert not set(plan.check_indices.tolist()) & set(items.source_indices.tolist())
    np.testing.assert_array_equal(plan.check_labels, test.labels[plan.check_indices])
    np.testing.assert_array_equal(plan.check_images, test.images[plan.check_indices])


def test_plan_errors():
    items = synthetic_items(4)
    with pytest.raises(ValueError, match="attention checks need the MNIST test images"):
        make_plan(items, Design(2, 1, 0.1), None)
    with pytest.raises(ValueError, match="some would label nothing"):
        make_plan(items, Design(9, 1, 0.0), None)


def test_study_file_contents(tmp_path):
    items = synthetic_items(8)
    study = create_study(tmp_path / "s.study", items, Design(3, 2, 0.2, 1), fake_test_split())
    assert oct(os.stat(study.path).st_mode & 0o777) == "0o600"
    conn = store.connect(study.path)
    data = study_data.read_study(conn)
    assert data.is_example.sum() == 8 and data.meta["design"]["seed"] == 1
    np.testing.assert_array_equal(study_data.item_images(conn, range(8)), items.images)
    # only hashes of the tokens are stored
    dump = "\n".join(conn.iterdump())
    assert all(t not in dump for t in [*study.tokens, study.admin_token])
    assert store.find_participant(conn, study.tokens[1]).id == 2
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    with pytest.raises(ValueError, match="already exists"):
        create_study(study.path, items, Design(3, 2, 0.0), None)


def test_not_a_study_file(tmp_path):
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(ValueError, match="not a labelling study file"):
        store.connect(other)
    junk = tmp_path / "junk.study"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ValueError, match="not a labelling study file"):
        store.connect(junk)
    with pytest.raises(FileNotFoundError, match="not found"):
        store.connect(tmp_path / "missing.study")


def test_grey_levels_and_names():
    grey, change = to_grey_levels(np.array([[0.0, 0.3, 1.0]]), "x")
    assert grey.tolist() == [[0, 76, 255]] and change == pytest.approx(abs(76 / 255 - 0.3))
    with pytest.raises(ValueError, match="x must hold pixel values in"):
        to_grey_levels(np.array([1.5]), "x")
    assert release_name("linf", 0.3) == "linf/study_eps03"
    assert release_name("l0", None) == "l0/study"
    assert release_name("linf", 0.25, "study") == "linf/study_eps025"


def _run(n: int = 6) -> AttackRun:
    rng = np.random.default_rng(0)
    targets = np.arange(n) % 10
    targets[1] = -1  # no example for this source
    dist = np.full(n, 0.3)
    dist[2] = np.nan  # nor this one
    return AttackRun(sources=rng.random((n, 28, 28)), source_indices=np.arange(100, 100 + n),
                     source_labels=(np.arange(n) + 3) % 10, examples=rng.random((n, 28, 28)),
                     targets=targets, distortion=dist, params={"attack": "linf", "eps": 0.3})


def test_items_from_run_and_selection():
    items, dropped = items_from_run(_run(), "r.npz")
    assert dropped == 2 and items.n == 4 and items.name == "linf/study_eps03"
    assert items.positions.tolist() == [0, 3, 4, 5]
    assert items.source_indices.tolist() == [100, 103, 104, 105]
    assert 0 < items.quantisation <= 0.5 / 255 + 1e-12
    sub = select_items(items, "1:3", None)
    assert sub.positions.tolist() == [3, 4]
    with pytest.raises(ValueError, match="--items"):
        select_items(items, "0:9", None)


def test_cli_create_from_run(tmp_path, capsys):
    run = save_run(tmp_path / "linf_eps0.3.npz", _run())
    out = tmp_path / "s.study"
    code = main(["study", "create", "--run", str(run), "--participants", "2",
                 "--labels-per-image", "2", "--attention-rate", "0", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "2 sources of" in text and "4 examples" in text
    tokens, admin = read_links(tmp_path / "s.study.links.csv")
    assert len(tokens) == 2 and f"/admin/{admin}" in text
    assert oct(os.stat(tmp_path / "s.study.links.csv").st_mode & 0o777) == "0o600"
    # a second create never overwrites the study or its links
    assert main(["study", "create", "--run", str(run), "--participants", "2",
                 "--out", str(out)]) == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--run", "missing.npz", "--participants", "2"], "--run missing.npz: file not found"),
    (["--run", "RUN", "--participants", "0"], "--participants must be >= 1"),
    (["--run", "RUN", "--participants", "2", "--labels-per-image", "3"],
     "--labels-per-image must be in 1..2"),
    (["--run", "RUN", "--participants", "2", "--items", "7:9"], "--items"),
    (["--run", "RUN", "--participants", "2", "--name", "../x"], "set name"),
])
def test_cli_create_errors(tmp_path, capsys, args, message):
    run = str(save_run(tmp_path / "r.npz", _run()))
    args = [run if a == "RUN" else a for a in args]
    code = main(["study", "create", *args, "--attention-rate", "0", "--out",
                 str(tmp_path / "s.study")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("tradeoffs: error:") and message in err
    assert not (tmp_path / "s.study").exists()


def test_cli_create_from_published_set(tmp_path, capsys, published_dir, mnist_dir):
    out = tmp_path / "s.study"
    code = main(["study", "create", "--published", "linf/automated_eps03", "--published-dir",
                 str(published_dir), "--data-dir", str(mnist_dir.parent), "--participants",
                 "3", "--items", "0:9", "--out", str(out)])
    assert code == 0
    data = study_data.read_study(store.connect(out))
    assert data.is_example.sum() == 9 and (~data.is_example).sum() >= 3
    ex = data.is_example
    assert (data.reference_label[ex] >= -1).all()  # the published human labels
    assert data.meta["release_name"] == "linf/study_automated_eps03"
    assert main(["study", "create", "--published", "linf/nope", "--published-dir",
                 str(published_dir), "--data-dir", str(mnist_dir.parent), "--participants",
                 "3", "--out", str(tmp_path / "t.study")]) == 2
    assert "no such set" in capsys.readouterr().err

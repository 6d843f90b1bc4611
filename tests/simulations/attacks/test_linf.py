"""The l-inf invariance attack: exact alignment search, projection, target choice,
reproduction of the published examples, the shared runner and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invariance_tradeoffs.simulations.attacks import alignment
from invariance_tradeoffs.simulations.attacks import linf as linf_attack
from invariance_tradeoffs.simulations.attacks import runs as runner
from invariance_tradeoffs.simulations.attacks.alignment import (
    TRANSFORM_GRID,
    NeighbourIndex,
    align_neighbours,
    transform_image,
    transformed_copies,
)
from invariance_tradeoffs.simulations.attacks.linf import (
    DEFAULT_TARGETS,
    LinfInvarianceAttack,
    check_targets,
    compare_with_published,
    examples_from_neighbours,
    project_linf,
    select_targets,
)
from invariance_tradeoffs.simulations.attacks.runs import (
    AttackRun,
    load_run,
    parse_indices,
    run_attack,
    save_run,
)
from invariance_tradeoffs.simulations.cli import main
from invariance_tradeoffs.simulations.data.mnist import load_mnist
from invariance_tradeoffs.simulations.data.published import load_npy

# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_mnist("train", mnist_dir), load_mnist("test", mnist_dir)


@pytest.fixture(scope="module")
def published(published_dir):
    lin = published_dir / "linf"
    return {
        "indexs": load_npy(published_dir / "indexs.npy"),
        "all_nns": load_npy(lin / "all_nns.npy"),
        "all_y_nns": load_npy(lin / "all_y_nns.npy"),
        "all_grids_nns": load_npy(lin / "all_grids_nns.npy"),
        "eps03": load_npy(lin / "automated_eps03.npy"),
        "eps04": load_npy(lin / "automated_eps04.npy"),
    }


@pytest.fixture(scope="module")
def full_index(mnist):
    train, _ = mnist
    return NeighbourIndex(train.images, train.labels)


def _published_sources(mnist, published, sel=slice(None)):
    _, test = mnist
    idx = published["indexs"][sel]
    return test.images[idx], test.labels[idx]


def _reproduced(examples: np.ndarray, published_eps03: np.ndarray) -> int:
    """How many examples equal the published float32 [0, 255] images exactly."""
    ours = (examples * 255).astype(np.float32)
    return int(sum(np.array_equal(a, b) for a, b in zip(ours, published_eps03, strict=True)))


# ---------------------------------------------------------------- transforms


def _matches_scipy(fn, image: np.ndarray, grid: np.ndarray) -> bool:
    ref = np.stack([transform_image(image, *g) for g in grid])
    return np.array_equal(fn(image, grid), ref)


def test_transformed_copies_identical_to_scipy(mnist):
    _, test = mnist
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(28, 28), dtype=np.uint8)
    for image in (test.images[0], test.images[1234], noise):
        assert _matches_scipy(transformed_copies, image, TRANSFORM_GRID)
    # an off-grid transform set (non-half-integer shifts) too
    odd = np.array([[0.3, -2.7, 13.0], [1.1, 0.0, -29.5], [-3.0, 3.0, 0.0]])
    assert _matches_scipy(transformed_copies, test.images[7], odd)


def test_transform_check_catches_a_wrong_rounding(mnist):
    _, test = mnist

    def truncating(image, grid):  # the same interpolation, truncated instead of rounded
        coef = alignment._spline_coefficients(image, np.unique(grid[:, 2]))
        pos = np.searchsorted(np.unique(grid[:, 2]), grid[:, 2])
        return np.stack(
            [
                np.clip(
                    alignment.ndimage.shift(coef[p], g[:2], prefilter=False, output=np.float64),
                    0,
                    255,
                ).astype(np.uint8)
                for p, g in zip(pos, grid, strict=True)
            ]
        )

    assert not _matches_scipy(truncating, test.images[0], TRANSFORM_GRID[::40])


def test_transform_fallback_paths(mnist, monkeypatch):
    _, test = mnist
    grid = TRANSFORM_GRID[::13]
    # every value "near a rounding boundary": all recomputed with scipy
    monkeypatch.setattr(alignment, "_ROUNDING_MARGIN", 1.0)
    assert _matches_scipy(transformed_copies, test.images[3], grid)
    monkeypatch.undo()
    # separability self-check failing: the plain scipy path
    monkeypatch.setattr(alignment, "_separable_shift_ok", lambda: False)
    assert _matches_scipy(transformed_copies, test.images[3], grid)


# ---------------------------------------------------------------- exact search


def _brute_force(queries: np.ndarray, images: np.ndarray, labels: np.ndarray, cls: int):
    """Exhaustive search: lexicographic minimum of (distance, query, train index)."""
    q = queries.astype(np.int64)
    members = np.flatnonzero(labels == cls)
    x = images.reshape(len(images), -1)[members].astype(np.int64)
    d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    qi, xi = np.nonzero(d == d.min())
    return min(zip(d[qi, xi].tolist(), qi.tolist(), members[xi].tolist(), strict=True))


def _search_errors(index: NeighbourIndex, queries, images, labels) -> int:
    got = index.nearest(queries)
    want = [_brute_force(queries, images, labels, int(c)) for c in index.classes]
    return sum(tuple(g) != tuple(w) for g, w in zip(got, want, strict=True))


def _random_problem(seed: int, n_train: int, n_query: int, dup: bool):
    rng = np.random.default_rng(seed)
    proto = rng.integers(0, 256, size=(4, 28, 28))
    images = np.clip(
        proto[rng.integers(0, 4, n_train)] + rng.integers(-60, 61, (n_train, 28, 28)), 0, 255
    ).astype(np.uint8)
    labels = rng.integers(0, 3, n_train)
    labels[:3] = [0, 1, 2]
    queries = np.clip(
        proto[rng.integers(0, 4, n_query)] + rng.integers(-60, 61, (n_query, 28, 28)), 0, 255
    ).astype(np.uint8)
    if dup:  # exact ties: repeated training images and queries
        images[-1] = images[0]
        labels[-1] = labels[0]
        queries[-1] = queries[0]
    return images, labels, queries.reshape(n_query, -1)


@settings(max_examples=25)
@given(
    seed=st.integers(0, 10_000),
    n_train=st.integers(3, 60),
    n_query=st.integers(1, 12),
    k=st.integers(1, 40),
    chunk=st.integers(1, 9),
    dup=st.booleans(),
)
def test_search_equals_exhaustive_search(seed, n_train, n_query, k, chunk, dup):
    images, labels, queries = _random_problem(seed, n_train, n_query, dup)
    index = NeighbourIndex(images, labels, n_components=k, chunk=chunk)
    assert _search_errors(index, queries, images, labels) == 0


def test_search_check_catches_an_invalid_bound():
    """With a negative slack the pruning is unsound; the same check then reports errors."""
    errors = 0
    for seed in range(12):
        images, labels, queries = _random_problem(seed, 60, 8, False)
        index = NeighbourIndex(images, labels, n_components=1, chunk=1)
        index._slack_factor = -0.05
        errors += _search_errors(index, queries, images, labels)
    assert errors > 0


def test_alignment_reproduces_published_subset(mnist, published, full_index):
    sel = slice(0, 3)
    src, lab = _published_sources(mnist, published, sel)
    res = align_neighbours(src, lab, index=full_index)
    np.testing.assert_array_equal(res.neighbours, published["all_nns"][sel])
    np.testing.assert_array_equal(res.classes, published["all_y_nns"][sel])
    np.testing.assert_array_equal(res.transforms, published["all_grids_nns"][sel])
    assert res.distances.dtype == np.int64 and np.all(res.distances > 0)


@pytest.mark.slow
def test_alignment_reproduces_all_published_neighbours(mnist, published, full_index):
    src, lab = _published_sources(mnist, published)
    res = align_neighbours(src, lab, index=full_index, n_jobs=2)
    same = np.all(res.neighbours == published["all_nns"], axis=(2, 3))
    assert same.sum() == 900
    np.testing.assert_array_equal(res.transforms, published["all_grids_nns"])
    ex = examples_from_neighbours(src, lab, res.neighbours, res.classes, 0.3)
    assert _reproduced(ex.examples, published["eps03"]) == 100


def test_alignment_input_validation(full_index):
    img = np.zeros((1, 28, 28), dtype=np.uint8)
    with pytest.raises(TypeError, match="uint8"):
        align_neighbours(img.astype(float), [0], index=full_index)
    with pytest.raises(ValueError, match="labels"):
        align_neighbours(img, [0, 1], index=full_index)
    with pytest.raises(ValueError, match="grid"):
        align_neighbours(img, [0], index=full_index, grid=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="without training images"):
        align_neighbours(img, [11], index=full_index)
    with pytest.raises(ValueError, match="train_images"):
        align_neighbours(img, [0])


# ---------------------------------------------------------------- steps 2-3


def test_steps_2_3_reproduce_automated_eps03(mnist, published):
    src, lab = _published_sources(mnist, published)
    res = examples_from_neighbours(src, lab, published["all_nns"], published["all_y_nns"], 0.3)
    assert _reproduced(res.examples, published["eps03"]) == 100
    assert all(int(t) in DEFAULT_TARGETS[int(y)] for t, y in zip(res.targets, lab, strict=True))
    np.testing.assert_allclose(res.distortion, 0.3)


def _broken_no_source_condition(source, neighbour, eps):
    x, n = np.broadcast_arrays(np.asarray(source, float), np.asarray(neighbour, float))
    out = np.where(np.abs(n - x) <= eps, n, x + eps * np.sign(n - x))
    return np.clip(out, 0, 1)


def test_reproduction_check_catches_variants(mnist, published, monkeypatch):
    src, lab = _published_sources(mnist, published)
    args = (src, lab, published["all_nns"], published["all_y_nns"])
    # (a) projection without the "x > 0" condition
    monkeypatch.setattr(linf_attack, "project_linf", _broken_no_source_condition)
    assert _reproduced(examples_from_neighbours(*args, 0.3).examples, published["eps03"]) < 100
    monkeypatch.undo()
    # (b) another target selection rule (most ink removed)
    worst = examples_from_neighbours(
        *args, 0.3, selection=lambda s, c: -float(np.maximum(s - c, 0).sum())
    )
    assert _reproduced(worst.examples, published["eps03"]) < 100
    # (c) another radius
    assert _reproduced(examples_from_neighbours(*args, 0.31).examples, published["eps03"]) == 0


def test_default_pipeline_at_eps04_is_valid_but_not_the_published_variant(mnist, published):
    src, lab = _published_sources(mnist, published)
    res = examples_from_neighbours(src, lab, published["all_nns"], published["all_y_nns"], 0.4)
    assert np.all(res.distortion <= 0.4 + 1e-12)
    ours = np.floor(res.examples * 255 + 0.5).astype(np.uint8)
    identical = np.all(ours == published["eps04"], axis=(1, 2))
    assert identical.sum() < 100  # the authors' 0.4 variant was not released


def _projection_violations(fn, x, n, eps) -> int:
    """Pixels outside the eps-ball or [0, 1], or not taking n where the rule says so."""
    out = fn(x, n, eps)
    bad = (np.abs(out - x) > eps + 1e-12) | (out < 0) | (out > 1)
    take = (np.abs(n - x) <= eps) & (x > 0)
    bad |= take & (np.abs(out - n) > 1e-12)
    return int(bad.sum())


@given(
    seed=st.integers(0, 2**32 - 1),
    eps=st.floats(0.01, 1.0),
)
def test_projection_properties(seed, eps):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (3, 28, 28)) / 255.0
    x[:, :5] = 0.0  # background
    n = rng.integers(0, 256, (3, 28, 28)) / 255.0
    assert _projection_violations(project_linf, x, n, eps) == 0
    assert np.array_equal(project_linf(x, x, eps), x)


def test_projection_check_catches_a_missing_clip():
    x = np.full((1, 28, 28), 0.9)
    n = np.zeros((1, 28, 28))

    def unclipped(x, n, eps):
        return n.copy()  # jumps to the neighbour however far it is

    assert _projection_violations(unclipped, x, n, 0.3) > 0
    assert _projection_violations(project_linf, x, n, 0.3) == 0


@pytest.mark.parametrize("eps", [0, -0.1, 1.5, float("nan"), "0.3", True])
def test_projection_rejects_bad_eps(eps):
    with pytest.raises((ValueError, TypeError)):
        project_linf(np.zeros((28, 28)), np.zeros((28, 28)), eps)


def test_target_table_validation():
    assert check_targets(None)[3] == (0, 1, 2, 4, 5, 6, 7, 8, 9)
    assert check_targets(DEFAULT_TARGETS) == DEFAULT_TARGETS
    for bad, msg in [({2: ()}, "empty"), ({2: (2,)}, "invalid"), ({11: (1,)}, "outside")]:
        with pytest.raises(ValueError, match=msg):
            check_targets(bad)
    with pytest.raises(TypeError):
        check_targets([(0, 1)])


def test_select_targets_least_ink_and_ties():
    src = np.ones((1, 28, 28)) * 0.5
    c = np.stack([src[0] - 0.2, src[0] - 0.1, src[0] - 0.1, src[0] - 0.4])[None]
    classes = np.array([[1, 2, 3, 4]])
    assert select_targets(src, c, classes, [0], {0: (1, 2, 3, 4)}).tolist() == [1]
    assert select_targets(src, c, classes, [0], {0: (3, 4)}).tolist() == [2]
    score = lambda s, cand: float(np.abs(s - cand).max())  # noqa: E731
    assert select_targets(src, c, classes, [0], {0: (1, 4)}, selection=score).tolist() == [0]
    with pytest.raises(ValueError, match="no candidate"):
        select_targets(src, c, classes, [0], {0: (7,)})
    with pytest.raises(ValueError, match="selection"):
        select_targets(src, c, classes, [0], None, selection="most_ink")


def test_attack_on_a_small_training_set(mnist):
    train, test = mnist
    keep = np.concatenate([np.flatnonzero(train.labels == c)[:30] for c in range(10)])
    attack = LinfInvarianceAttack(train.images[keep], train.labels[keep], eps=0.25)
    res = attack.run(test.images[:2], test.labels[:2])
    assert res.examples.shape == (2, 28, 28)
    assert np.all(res.distortion <= 0.25 + 1e-12) and res.examples.min() >= 0
    arrays = res.as_arrays()
    assert set(runner.CORE_KEYS) - {"source_indices"} <= set(arrays)
    # indices refer to the training set given to the attack
    assert np.all(train.labels[keep][arrays["neighbour_train_indices"]] == res.targets)
    with pytest.raises(ValueError, match="eps"):
        LinfInvarianceAttack(train.images[keep], train.labels[keep], eps=0)


# ---------------------------------------------------------------- runner


def _fake_attack(calls: list):
    def attack(batch):
        calls.append(batch.tolist())
        n = len(batch)
        src = np.repeat((batch % 256)[:, None, None] / 255.0, 28, 1).repeat(28, 2)
        return {
            "sources": src,
            "source_labels": batch % 10,
            "examples": np.clip(src + 0.1, 0, 1),
            "targets": (batch + 1) % 10,
            "distortion": np.full(n, 0.1),
            "neighbours": 1 - src,
        }

    return attack


def test_runner_writes_incrementally_and_resumes(tmp_path):
    calls: list = []
    attack = _fake_attack(calls)
    idx = np.array([5, 3, 9, 1, 7])

    def failing(batch):
        if len(calls) == 2:
            raise KeyboardInterrupt  # simulated interruption after two batches
        return attack(batch)

    with pytest.raises(KeyboardInterrupt):
        run_attack(failing, idx, tmp_path, "run", {"a": 1}, batch_size=2, progress=False)
    parts = sorted(p.name for p in (tmp_path / "run.parts").iterdir())
    assert parts == ["params.json", "part-00000.npz", "part-00000.npz.sha256.json",
                     "part-00001.npz", "part-00001.npz.sha256.json"]  # parts and records
    assert not (tmp_path / "run.npz").exists()
    # a different parameter set must not reuse the partial results
    with pytest.raises(ValueError, match="different parameters"):
        run_attack(attack, idx, tmp_path, "run", {"a": 2}, progress=False)
    run, path = run_attack(attack, idx, tmp_path, "run", {"a": 1}, batch_size=2, progress=False)
    assert calls == [[5, 3], [9, 1], [7]]  # only the unfinished source was redone
    assert path == tmp_path / "run.npz" and not (tmp_path / "run.parts").exists()
    assert (tmp_path / "run.png").stat().st_size < 200_000
    np.testing.assert_array_equal(run.source_indices, idx)
    # identical to an uninterrupted run
    fresh, _ = run_attack(_fake_attack([]), idx, tmp_path / "b", "run", {"a": 1}, progress=False)
    for key, arr in fresh.arrays().items():
        np.testing.assert_array_equal(arr, run.arrays()[key])
    # rerunning a finished run does nothing; other parameters are refused
    again, _ = run_attack(attack, idx, tmp_path, "run", {"a": 1}, progress=False)
    assert len(calls) == 3 and again.params == {"a": 1}
    with pytest.raises(ValueError, match="already holds"):
        run_attack(attack, idx, tmp_path, "run", {"a": 3}, progress=False)


def test_run_file_roundtrip_and_validation(tmp_path):
    arrays = _fake_attack([])(np.arange(3))
    arrays["source_indices"] = np.arange(3)
    run = AttackRun.from_arrays(arrays, {"eps": 0.3, "note": np.int64(2)})
    path = save_run(tmp_path / "r.npz", run)
    back = load_run(path)
    assert back.params == {"eps": 0.3, "note": 2}
    assert set(back.extras) == {"neighbours"}
    with np.load(path, allow_pickle=False) as f:
        assert {"sources", "source_indices", "examples", "targets", "distortion", "params"} <= set(
            f.files
        )
    with pytest.raises(ValueError, match="rows"):
        AttackRun.from_arrays({**arrays, "targets": np.zeros(2)}, {})
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.npz"):
        load_run(tmp_path / "junk.npz")
    with pytest.raises(TypeError, match="serialisable"):
        run_attack(_fake_attack([]), [1], tmp_path, "x", {"f": object()}, progress=False)


def test_parse_indices():
    pub = lambda: np.array([4, 2])  # noqa: E731
    assert parse_indices("published", published=pub).tolist() == [4, 2]
    assert parse_indices("3:6").tolist() == [3, 4, 5]
    assert parse_indices("7,1").tolist() == [7, 1]
    r1 = parse_indices("random:5", seed=1)
    assert len(r1) == 5 and r1.tolist() == parse_indices("random:5", seed=1).tolist()
    assert r1.tolist() != parse_indices("random:5", seed=2).tolist()
    for bad, msg in [
        ("random:5", "seed"),
        ("random:x", "positive"),
        ("9990:10001", "outside"),
        ("1,1", "repeats"),
        ("5:5", "no test image"),
        ("abc", "unknown"),
        ("published", "published"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_indices(bad)


# ---------------------------------------------------------------- CLI


def test_cli_errors(tmp_path, capsys):
    cases = [
        (["--eps", "0"], "argument --eps: expected a number in (0, 1], got 0"),
        (["--eps", "1.5"], "argument --eps: expected a number in (0, 1], got 1.5"),
        (["--eps", "0.3", "--batch-size", "0"], "argument --batch-size"),
        (["--eps", "0.3", "--n-jobs", "100000"], "argument --n-jobs"),
        (["--eps", "0.3", "--out", ""], "--out must name a folder"),
        # explicit indices: the default ("published") would look for the release first
        (["--eps", "0.3", "--indices", "0:5", "--data-dir", str(tmp_path)],
         "MNIST file(s) missing"),
        (["--eps", "0.3", "--indices", "0:10001"], "outside"),
        (["--eps", "0.3", "--indices", "random:0"], "random"),
    ]
    for extra, msg in cases:
        code = main(["mnist", "attack", "linf", "--out", str(tmp_path / "o"), *extra])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("tradeoffs: error:") and msg in err, (extra, err)
        assert err.count("\n") == 1


def test_cli_corrupted_file(tmp_path, mnist_dir, capsys):
    import gzip

    folder = tmp_path / "mnist"
    folder.mkdir()
    for f in mnist_dir.iterdir():
        (folder / f.name).symlink_to(f.resolve())
    bad = folder / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.open(bad).read()
    bad.unlink()
    bad.write_bytes(gzip.compress(raw[:-5]))
    code = main(["mnist", "attack", "linf", "--eps", "0.3", "--data-dir", str(tmp_path),
                 "--indices", "0", "--out", str(tmp_path / "o")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "t10k-labels-idx1-ubyte.gz" in err and "corrupted" in err


def test_cli_linf_end_to_end(tmp_path, mnist_dir, published_dir, published, capsys):
    out = tmp_path / "out"
    code = main(["mnist", "attack", "linf", "--eps", "0.3", "--indices", "159",
                 "--data-dir", str(mnist_dir), "--published-dir", str(published_dir),
                 "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    run = load_run(out / "linf_eps0.3.npz")
    assert (out / "linf_eps0.3.png").is_file()
    assert run.params["eps"] == 0.3 and run.source_indices.tolist() == [159]
    # index 159 is the first published source: the example is the published one
    assert _reproduced(run.examples, published["eps03"][:1]) == 1
    assert "1 invariance examples" in capsys.readouterr().out
    code = main(["mnist", "published", "--published-dir", str(published_dir),
                 "--data-dir", str(mnist_dir)])  # fmt: skip
    table = capsys.readouterr().out
    assert code == 0 and "linf/automated_eps03" in table and "21.00%" in table
    code = main(["mnist", "reproduce-linf", "--published-dir", str(published_dir),
                 "--data-dir", str(mnist_dir)])  # fmt: skip
    report = capsys.readouterr().out
    assert code == 0 and "eps=0.3 vs linf/automated_eps03: identical 100/100" in report
    assert "eps=0.4 vs linf/automated_eps04: identical" in report


def test_compare_with_published():
    rng = np.random.default_rng(0)
    pub8 = rng.integers(0, 256, (4, 28, 28)).astype(np.uint8)
    ours = pub8 / 255.0
    rep = compare_with_published(ours, pub8)
    assert rep["identical"] == 4 and rep["mean_abs_diff"] == 0
    ours[1, 0, 0] = (float(pub8[1, 0, 0]) + 3) / 255.0 if pub8[1, 0, 0] < 250 else 0.0
    rep = compare_with_published(ours, pub8)
    assert rep["identical"] == 3 and rep["max_abs_diff"] >= 3
    pub32 = (ours * 255).astype(np.float32)
    cands = np.stack([ours, 1 - ours], axis=1)
    rep = compare_with_published(
        ours, pub32, targets=[5, 5, 6, 5], candidates=cands, candidate_classes=[[5, 6]] * 4
    )
    assert rep["identical"] == 4 and rep["same_target"] == 3
    with pytest.raises(ValueError, match="shapes"):
        compare_with_published(ours[:2], pub8)

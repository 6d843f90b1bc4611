"""Tests of the model-free l0 invariance attack and its judges (real MNIST when present)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from invariance_tradeoffs.simulations.attacks.l0 import (
    BUDGETS,
    PUBLISHED_TARGETS,
    L0InvarianceAttack,
    L0Search,
    TransformSpace,
    apply_edit,
    candidate_clusters,
    change_thickness,
    l0_distance,
    resolve_targets,
    smallest_accepted_subset,
    subsets_by_size,
    transform_images,
    warp,
)
from invariance_tradeoffs.simulations.attacks.l0.judges import (
    KNNJudge,
    binarize,
    judge_probabilities,
    reads_as,
)
from invariance_tradeoffs.simulations.images import as_unit_images

N_TRAIN = 3000  # small training subset: the default run stays fast
# Small search budgets for the fast tests (the defaults are for the full runs).
FAST = BUDGETS["fast"]


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    train = load_mnist("train", mnist_dir)
    test = load_mnist("test", mnist_dir)
    return train.images[:N_TRAIN], train.labels[:N_TRAIN], test.images, test.labels


@pytest.fixture(scope="module")
def attack(mnist):
    x, y, _, _ = mnist
    return L0InvarianceAttack(x, y, random_state=3, search=FAST)


@pytest.fixture(scope="module")
def results(attack, mnist):
    _, _, xt, yt = mnist
    idx = np.array([0, 1, 2, 3])
    return idx, attack.run(xt[idx], yt[idx], keys=idx).results


# ---------------------------------------------------------------------------- transforms


def test_warp_matches_scipy_affine_transform():
    rng = np.random.default_rng(0)
    imgs = ndimage.gaussian_filter(rng.random((3, 28, 28)), (0, 2, 2))
    params = np.array(
        [[0.2, 1.1, 0.9, 0.1, -0.1, 2, -1], [0, 1, 1, 0, 0, 0, 0], [-0.1, 0.8, 1.2, 0, 0.2, -3, 4]]
    )
    centre = np.array([13.5, 13.5])
    for img, p, out in zip(imgs, params, warp(imgs, params), strict=True):
        a, sr, sc, hr, hc, tr, tc = p
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        mat = rot @ np.array([[1, hr], [hc, 1]]) @ np.diag([sr, sc])
        inv = np.linalg.inv(mat)
        ref = ndimage.affine_transform(img, inv, offset=centre - inv @ (centre + [tr, tc]), order=1)
        np.testing.assert_allclose(out, ref, atol=1e-12)
    # the inverse of a pure shift undoes it exactly
    shift = np.array([[0, 1, 1, 0, 0, 3, -2]])
    moved = warp(imgs[:1], shift)
    np.testing.assert_allclose(moved[0, 3:, :-2], imgs[0, :-3, 2:], atol=1e-12)
    np.testing.assert_allclose(warp(moved, shift, inverse=True)[0, 3:-3, 2:-2],
                               imgs[0, 3:-3, 2:-2], atol=1e-12)


def test_thickness_changes_ink_monotonically(mnist):
    img = as_unit_images(mnist[0][:1])
    ink = [binarize(change_thickness(img, lv)).sum() for lv in (-1, -0.5, 0, 0.5, 1)]
    assert ink == sorted(ink) and ink[0] < ink[2] < ink[4]
    ident = np.array([[0, 1, 1, 0, 0, 0, 0, 0.0]])
    np.testing.assert_allclose(transform_images(img, ident), img, atol=1e-12)


def test_bad_transform_inputs_raise():
    with pytest.raises(ValueError, match="params"):
        warp(np.zeros((1, 28, 28)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="singular"):
        warp(np.zeros((1, 28, 28)), np.array([[0, 0, 1, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="images"):
        warp(np.zeros((3, 28, 28)), np.zeros((2, 7)) + [0, 1, 1, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="thickness"):
        change_thickness(np.zeros((1, 28, 28)), 2.0)
    with pytest.raises(ValueError, match="scale"):
        TransformSpace(scale=(1.2, 1.5))


def _bound_holds(embed, bits_a, bits_b) -> bool:
    ea, eb = embed(bits_a), embed(bits_b)
    bound = ((ea[:, None, :] - eb[None, :, :]) ** 2).sum(-1)
    hamming = (bits_a[:, None, :] != bits_b[None, :, :]).sum(-1)
    return bool(np.all(bound <= hamming + 1e-3))


@given(st.integers(0, 2**31 - 1))
def test_pca_embedding_gives_hamming_lower_bounds(attack, seed):
    """Squared distances of the coarse stage's embeddings never exceed the Hamming
    distance; the check fails for a wrong embedding (projection scaled by 1.5)."""
    from invariance_tradeoffs.simulations.attacks.l0.search import embed

    rng = np.random.default_rng(seed)
    src = binarize(as_unit_images(attack.train_images[rng.choice(N_TRAIN, 20)]))
    a = src.reshape(20, -1) ^ (rng.random((20, 784)) < 0.05)
    b = binarize(as_unit_images(attack.train_images[rng.choice(N_TRAIN, 15)])).reshape(15, -1)
    basis = attack.searcher.basis()
    assert _bound_holds(lambda x: embed(x, basis), a, b)
    wrong = (basis[0], 1.5 * basis[1])
    assert not _bound_holds(lambda x: embed(x, wrong), a, b)


def test_pool_hamming_is_exact(attack):
    pool = attack.searcher.pool(3)
    rng = np.random.default_rng(0)
    q = rng.random((5, 784)) < 0.2
    d = pool.hamming(q)
    ref = (pool.bins[:, :, None, :] != q[None, None]).sum(-1)
    np.testing.assert_array_equal(d, ref)
    np.testing.assert_array_equal(pool.take(np.array([4, 1])).hamming(q), ref[:, [4, 1]])


# ---------------------------------------------------------------------- clusters, subsets


def test_candidate_clusters_are_differing_pixels():
    src = np.zeros((28, 28))
    prop = src.copy()
    prop[2:5, 2:5] = 1  # blob 1
    prop[20:24, 20:23] = 1  # blob 2, far away
    prop[12, 25] = 1  # isolated pixel: DBSCAN noise, not a candidate
    lab = candidate_clusters(src, prop, eps=2.0, min_samples=3)
    assert lab.max() == 1
    assert set(np.unique(lab[2:5, 2:5])) == {lab[2, 2]} and lab[2, 2] >= 0
    assert lab[12, 25] == -1
    assert np.all(binarize(src)[lab >= 0] != binarize(prop)[lab >= 0])
    with pytest.raises(ValueError, match="source and proposal"):
        candidate_clusters(src[:5], prop)
    with pytest.raises(ValueError, match="min_samples"):
        candidate_clusters(src, prop, min_samples=0)


@given(st.lists(st.integers(0, 9), min_size=0, max_size=7))
def test_subsets_by_size_enumerates_every_subset_in_order(sizes):
    out = list(subsets_by_size(sizes))
    totals = [t for t, _ in out]
    assert totals == sorted(totals)
    subs = [s for _, s in out]
    assert len(subs) == len(set(subs)) == 2 ** len(sizes) - 1
    assert all(t == sum(sizes[i] for i in s) for t, s in out)


def _cluster_map(sizes: list[int]) -> np.ndarray:
    lab = np.full(28 * 28, -1)
    start = 0
    for j, s in enumerate(sizes):
        lab[start : start + s] = j
        start += s + 1
    return lab.reshape(28, 28)


def _check_minimal(found, sizes, accept_set) -> bool:
    """The returned subset is accepted, every subset tried before it was rejected and no
    larger, and no accepted subset is smaller (brute force over all subsets)."""
    if not found.accepted:
        return not accept_set
    if found.subset not in accept_set or found.size != sum(sizes[i] for i in found.subset):
        return False
    if any(v or t > found.size for s, t, v in found.tried[:-1]):
        return False
    return found.size == min(sum(sizes[i] for i in s) for s in accept_set)


@given(
    st.lists(st.integers(1, 12), min_size=1, max_size=6),
    st.integers(0, 2**31 - 1),
    st.floats(0.05, 0.6),
)
def test_subset_search_returns_smallest_accepted(sizes, seed, p_accept):
    rng = np.random.default_rng(seed)
    k = len(sizes)
    every = [tuple(s) for r in range(1, k + 1) for s in itertools.combinations(range(k), r)]
    accept_set = {s for s in every if rng.random() < p_accept}

    def accept(z: np.ndarray) -> np.ndarray:
        return np.array([tuple(np.flatnonzero(r)) in accept_set for r in z])

    found = smallest_accepted_subset(_cluster_map(sizes), accept, max_subsets=2**k,
                                     first_batch=3)
    assert _check_minimal(found, sizes, accept_set)
    assert found.mask.sum() == found.size
    # the check can fail: a search that keeps the *largest* accepted subset is caught
    if len(accept_set) > 1 and len({sum(sizes[i] for i in s) for s in accept_set}) > 1:
        largest = max(accept_set, key=lambda s: sum(sizes[i] for i in s))
        broken = type(found)(largest, found.mask, sum(sizes[i] for i in largest), True, [])
        assert not _check_minimal(broken, sizes, accept_set)


def test_always_yes_judge_yields_smallest_cluster():
    sizes = [7, 3, 5]
    found = smallest_accepted_subset(_cluster_map(sizes), lambda z: np.ones(len(z), bool))
    assert found.subset == (1,) and found.size == 3 and found.n_tried >= 1


def test_subset_search_respects_budget_and_bound():
    lab = _cluster_map([2, 3, 4, 5])
    never = smallest_accepted_subset(lab, lambda z: np.zeros(len(z), bool), max_subsets=5)
    assert not never.accepted and never.n_tried == 5
    bounded = smallest_accepted_subset(lab, lambda z: np.zeros(len(z), bool), max_size=5)
    assert all(t <= 5 for _, t, _ in bounded.tried)
    with pytest.raises(ValueError, match="accept"):
        smallest_accepted_subset(lab, lambda z: np.ones(1, bool), first_batch=4)


# -------------------------------------------------------------------------------- judges


def test_knn_judge_agrees_with_sklearn_when_untied(mnist):
    from sklearn.neighbors import KNeighborsClassifier

    x, y, xt, _ = mnist
    judge = KNNJudge(x, y, n_neighbors=5)
    ours = judge(xt[:200])
    flat = binarize(as_unit_images(x)).reshape(len(x), -1).astype(np.float32)
    ref = KNeighborsClassifier(5, algorithm="brute").fit(flat, y).predict_proba(
        binarize(as_unit_images(xt[:200])).reshape(200, -1).astype(np.float32)
    )
    d = np.sort(judge.distances(xt[:200]), axis=1)
    untied = d[:, 4] != d[:, 5]
    assert untied.sum() > 30
    np.testing.assert_allclose(ours[untied], ref[untied])
    assert np.mean(ours.argmax(1) == mnist[3][:200]) > 0.8


@given(st.integers(0, 2**31 - 1), st.integers(1, 5))
def test_knn_edit_scorer_equals_judging_the_edited_images(seed, k):
    rng = np.random.default_rng(seed)
    train = (rng.random((300, 28, 28)) < 0.2).astype(float)
    judge = KNNJudge(train, rng.integers(0, 10, 300), n_neighbors=k)
    base = (rng.random((28, 28)) < 0.2).astype(float)
    owner = rng.integers(-1, 4, (28, 28))
    parts = owner[None] == np.arange(4)[:, None, None]
    z = rng.random((12, 4)) < 0.5
    edited = np.stack([np.where(np.any(parts[r], axis=0), 1 - base, base) for r in z])
    scorer = judge.edits(base).scorer(parts)
    np.testing.assert_allclose(scorer(z), judge(edited))
    # the comparison can fail: scoring edits against the wrong base disagrees
    wrong = judge.edits(1 - base).scorer(parts)
    assert not np.allclose(wrong(z), judge(edited))


def test_judge_outputs_are_checked():
    imgs = np.zeros((2, 28, 28))
    assert reads_as(lambda x: np.array([3, -1]), imgs, 3).tolist() == [True, False]
    probs = judge_probabilities(lambda x: np.array([3, -1]), imgs)
    assert probs.sum(axis=1).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="judge output"):
        judge_probabilities(lambda x: np.zeros((2, 3)), imgs)
    with pytest.raises(ValueError, match="judge output"):
        judge_probabilities(lambda x: np.array([11, 0]), imgs)
    with pytest.raises(ValueError, match="images"):
        as_unit_images(np.zeros((2, 27, 28)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        as_unit_images(np.full((1, 28, 28), 2.0))
    with pytest.raises(ValueError, match="train_labels"):
        KNNJudge(np.zeros((3, 28, 28)), np.array([0, 1]))


# ---------------------------------------------------------------------------- the attack


def test_attack_examples_are_valid(results, attack):
    idx, res = results
    assert sum(r.success for r in res) >= 3
    for r in res:
        if not r.success:
            assert r.target == -1 and np.array_equal(r.example, r.source)
            continue
        # reported distortion is the binarised l0 distance
        assert r.distortion == l0_distance(r.example, r.source) > 0
        # the judge reads the example as the target, a class other than the source's
        assert r.target != r.source_label
        assert reads_as(attack.judge, r.example[None], r.target, min_confidence=0.5)[0]
        # only pixels of the chosen candidate clusters changed, to the proposal's values
        changed = r.example != r.source
        assert np.all(r.clusters[changed] >= 0)
        assert np.array_equal(changed, np.isin(r.clusters, r.subset))
        np.testing.assert_array_equal(r.example[changed], r.alignment.proposal[changed])
        # the alignment's l0 is exact
        assert r.alignment.l0 == l0_distance(r.alignment.proposal, r.source)
        # the alignment really is the transformed training image
        np.testing.assert_allclose(
            transform_images(attack.train_images[r.alignment.train_index][None],
                             r.alignment.params[None])[0],
            r.alignment.proposal, atol=1e-12,
        )


def test_attack_is_reproducible(attack, results, mnist):
    idx, res = results
    _, _, xt, yt = mnist
    again = attack.attack(xt[idx[0]], int(yt[idx[0]]), key=int(idx[0]))
    np.testing.assert_array_equal(again.example, res[0].example)
    assert again.distortion == res[0].distortion and again.target == res[0].target
    arrays = attack.run(xt[idx[:1]], yt[idx[:1]], keys=idx[:1]).as_arrays()
    np.testing.assert_array_equal(arrays["examples"][0], res[0].example)


def test_parallel_run_equals_sequential(attack, results, mnist):
    idx, res = results
    _, _, xt, yt = mnist
    par = attack.run(xt[idx[:2]], yt[idx[:2]], keys=idx[:2], n_jobs=2).results
    for a, b in zip(par, res[:2], strict=True):
        np.testing.assert_array_equal(a.example, b.example)
        assert (a.target, a.distortion) == (b.target, b.distortion)


def test_always_yes_judge_gives_smallest_edit_and_the_real_judge_notices(mnist, attack):
    """A broken judge that accepts everything yields a one-cluster edit; checking that
    example with the real judge fails, so the validity check above can fail."""
    x, y, xt, yt = mnist
    label, target = int(yt[0]), (int(yt[0]) + 1) % 10

    def always_yes(imgs: np.ndarray) -> np.ndarray:
        # reads the untouched source as its label and *any* change as the target
        same = np.all(imgs.reshape(len(imgs), -1) == as_unit_images(xt[:1]).reshape(1, -1), axis=1)
        return np.where(same, label, target)

    yes = L0InvarianceAttack(x, y, judge=always_yes, targets={label: (target,)},
                             random_state=3, search=FAST)
    r = yes.attack(xt[0], int(yt[0]), key=0)
    sizes = np.bincount(r.clusters[r.clusters >= 0])
    assert r.success and len(r.subset) == 1 and r.distortion == sizes.min()
    assert not reads_as(attack.judge, r.example[None], r.target, min_confidence=0.5)[0]


def test_targets_skip_classes_the_source_already_reads_as(mnist):
    x, y, xt, yt = mnist
    # a judge that reads everything as 8: target 8 is never credited
    always8 = L0InvarianceAttack(x, y, judge=lambda imgs: np.full(len(imgs), 8),
                                 targets={3: (8,)}, search=FAST)
    i = int(np.flatnonzero(yt == 3)[0])
    r = always8.attack(xt[i], 3, key=i)
    assert not r.success and r.source_reading == 8 and r.target == -1


def test_resolve_targets():
    assert resolve_targets("published") == PUBLISHED_TARGETS
    every = resolve_targets("all")
    assert every[3] == (0, 1, 2, 4, 5, 6, 7, 8, 9)
    assert resolve_targets({1: [7]})[1] == (7,) and resolve_targets({1: [7]})[2] == every[2]
    with pytest.raises(ValueError, match="targets"):
        resolve_targets("some")
    with pytest.raises(ValueError, match=r"targets\[1\]"):
        resolve_targets({1: [1]})


def test_bad_attack_inputs_raise(mnist, attack):
    x, y, xt, yt = mnist
    with pytest.raises(ValueError, match="train_images"):
        L0InvarianceAttack(x[:, :27], y)
    with pytest.raises(ValueError, match="train_labels"):
        L0InvarianceAttack(x, y[:-1])
    with pytest.raises(ValueError, match="n_keep"):
        L0Search(n_keep=0)
    with pytest.raises(ValueError, match="search must be"):
        L0InvarianceAttack(x, y, search="slow")
    with pytest.raises(ValueError, match="source"):
        attack.attack(xt[0][:, :20], 1)
    with pytest.raises(ValueError, match="label"):
        attack.attack(xt[0], 12)
    with pytest.raises(ValueError, match="sources"):
        attack.run(xt[:2, :10], yt[:2])
    with pytest.raises(ValueError, match="labels"):
        attack.run(xt[:2], yt[:3])
    with pytest.raises(ValueError, match="keys"):
        attack.run(xt[:2], yt[:2], keys=[1])
    with pytest.raises(ValueError, match="classes"):
        attack.align(xt[0], int(yt[0]), classes=[int(yt[0])])


def test_apply_edit_and_l0_distance():
    a = np.zeros((28, 28))
    b = np.ones((28, 28))
    mask = np.zeros((28, 28), bool)
    mask[:2, :3] = True
    assert l0_distance(apply_edit(a, b, mask), a) == 6
    with pytest.raises(ValueError, match="same shape"):
        l0_distance(a, b[:3])


# ------------------------------------------------------------------------------- the CLI


def test_cli_l0_writes_run_and_resumes(mnist_dir, tmp_path, capsys):
    from invariance_tradeoffs.simulations.attacks.runs import load_run
    from invariance_tradeoffs.simulations.cli import main

    data_root = mnist_dir.parent if mnist_dir.name == "mnist" else mnist_dir
    argv = ["mnist", "attack", "l0", "--indices", "0:2", "--out", str(tmp_path),
            "--data-dir", str(data_root), "--train-subset", "2000", "--no-progress",
            "--budget", "fast"]
    assert main(argv) == 0
    runs = list(tmp_path.glob("*.npz"))
    assert len(runs) == 1 and runs[0].with_suffix(".png").is_file()
    run = load_run(runs[0])
    assert run.source_indices.tolist() == [0, 1]
    ok = run.targets >= 0
    assert np.array_equal(np.isfinite(run.distortion), ok)
    assert np.array_equal(
        run.distortion[ok], l0_distance(run.examples[ok], run.sources[ok]).astype(float)
    )
    assert "median" in capsys.readouterr().out
    mtime = runs[0].stat().st_mtime_ns
    assert main(argv) == 0  # resumed: the finished run is returned, not recomputed
    assert runs[0].stat().st_mtime_ns == mtime
    assert main(argv[:4] + ["20000:20001"] + argv[5:]) == 2
    assert "indices" in capsys.readouterr().err


# ------------------------------------------------------------------------------ slow run


@pytest.mark.slow
def test_published_sources_full_run(mnist_dir, published_dir):
    """The 100 published sources with the default attack: median l0 <= 25 (paper: 25)."""
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    train, test = load_mnist("train", mnist_dir), load_mnist("test", mnist_dir)
    idx = np.load(published_dir / "indexs.npy", allow_pickle=False)
    res = L0InvarianceAttack(train.images, train.labels).run(
        test.images[idx], test.labels[idx], keys=idx
    ).results
    dist = np.array([r.distortion if r.success else np.inf for r in res])
    assert np.median(dist) <= 25

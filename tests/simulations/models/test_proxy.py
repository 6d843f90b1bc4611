"""The human-proxy labeller: configuration, augmentation, caching and validation arithmetic."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from invariance_tradeoffs.simulations.evaluation.proxy_validation import (
    proxy_estimate,
    proxy_ranking,
    threshold_rule_labels,
    validate_proxy,
)
from invariance_tradeoffs.simulations.models.adapters import NumpyModel
from invariance_tradeoffs.simulations.models.proxy import (
    PROXY_CONFIGS,
    PROXY_METHOD,
    ProxyConfig,
    with_overrides,
)
from invariance_tradeoffs.simulations.models.zoo import config_key


def _fake_set(name, human, orig, seed=0):
    rng = np.random.default_rng(seed)
    n = len(human)
    ex = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
    # Pixel (0, 0) encodes the row so that a lookup "model" can find each example.
    ex[:, 0, 0] = np.arange(n, dtype=np.uint8)
    return SimpleNamespace(name=name, examples=ex, human_labels=np.asarray(human),
                           original_labels=np.asarray(orig))


def _lookup_model(table):
    """A model answering table[row] for the example whose pixel (0,0) encodes ``row``."""
    table = np.asarray(table)
    return NumpyModel(lambda x: table[np.rint(x[:, 0, 0, 0] * 255).astype(int)], name="lookup")


HUMAN = [1, 2, 3, 4, 5, 6, 7, 8]
ORIG = [1, 2, 3, 4, 0, 0, 0, 0]  # last four: human label changed


def test_validation_of_a_proxy_that_copies_the_humans_is_perfect():
    sets = {"a": _fake_set("a", HUMAN, ORIG)}
    v = validate_proxy(_lookup_model(HUMAN), sets)
    r = v["sets"]["a"]
    assert r["agreement"].value == 1 and r["agreement_label_changed"].value == 1
    assert r["n_label_changed"] == 4
    assert r["proxy_change_rate"].value == r["human_change_rate"].value == 0.5


def test_validation_of_a_proxy_that_never_changes_labels():
    sets = {"a": _fake_set("a", HUMAN, ORIG)}
    v = validate_proxy(_lookup_model(ORIG), sets)
    r = v["sets"]["a"]
    assert r["agreement"].value == 0.5
    assert r["agreement_label_changed"].value == 0.0
    assert r["agreement_unchanged"].value == 1.0
    assert r["proxy_change_rate"].value == 0.0
    # Clopper-Pearson interval of 0/4 is [0, 0.602]
    assert r["agreement_label_changed"].low == 0
    assert r["agreement_label_changed"].high == pytest.approx(0.6024, abs=1e-3)


def test_pooled_validation_adds_the_counts_of_the_sets():
    sets = {"a": _fake_set("a", HUMAN, ORIG), "b": _fake_set("b", [3, 3], [3, 4], seed=1)}
    model = NumpyModel(lambda x: np.full(x.shape[0], 3), name="const3")
    v = validate_proxy(model, sets)
    pooled = v["pooled"]
    assert pooled["n"] == 10 and pooled["n_label_changed"] == 5
    assert pooled["agreement"].value == pytest.approx(3 / 10)  # a: row 2; b: both rows
    assert pooled["agreement_label_changed"].value == pytest.approx(1 / 5)


def test_validation_rejects_no_sets_and_mismatched_labels():
    with pytest.raises(ValueError, match="at least one"):
        validate_proxy(_lookup_model(HUMAN), {})
    bad = _fake_set("a", HUMAN, ORIG[:-1])
    with pytest.raises(ValueError):
        validate_proxy(_lookup_model(HUMAN), {"a": bad})


def test_proxy_estimate_carries_its_validation_and_is_labelled_a_proxy_estimate():
    sets = {"a": _fake_set("a", HUMAN, ORIG)}
    v = validate_proxy(_lookup_model(HUMAN), sets)
    new = _fake_set("new", [0] * 8, [0] * 8, seed=3)
    est = proxy_estimate(_lookup_model([0, 0, 0, 1, 1, 1, 1, 1]), new.examples,
                         new.original_labels, v, what="new examples")
    q = est["label_change_rate"]
    assert q.value == pytest.approx(5 / 8) and q.kind == "estimate"
    assert q.method.startswith(PROXY_METHOD) and "proxy estimate" in q.method
    assert q.extra["validation_agreement"]["value"] == 1.0
    assert q.extra["validation_n"] == 8
    with pytest.raises(ValueError, match="validate_proxy"):
        proxy_estimate(_lookup_model(HUMAN), new.examples, new.original_labels, {})


def test_config_validation_and_label_preservation_limits():
    with pytest.raises(ValueError, match="n_members"):
        ProxyConfig("x", n_members=0)
    with pytest.raises(ValueError, match="max_scale"):
        ProxyConfig("x", max_scale=1.5)
    with pytest.raises(ValueError, match="preserve"):
        ProxyConfig("x", max_rotation=90)  # a 6 would become a 9
    with pytest.raises(ValueError, match="unknown proxy"):
        with_overrides("nope")
    assert {"proxy", "proxy-tiny"} <= set(PROXY_CONFIGS)


def test_member_keys_are_distinct_and_depend_on_every_field():
    cfg = PROXY_CONFIGS["proxy"]
    keys = {config_key(cfg.member(i), "data") for i in range(cfg.n_members)}
    assert len(keys) == cfg.n_members
    base = config_key(cfg.member(0), "data")
    for change in ({"width": 8}, {"epochs": 5}, {"max_rotation": 5.0}, {"elastic_alpha": 0.0},
                   {"seed": 7}, {"n_train": 100}):
        assert config_key(with_overrides(cfg, **change).member(0), "data") != base, change
    assert config_key(cfg.member(0), "other data") != base
    with pytest.raises(ValueError, match="member index"):
        cfg.member(cfg.n_members)


# --------------------------------------------------------------------------- torch parts
def test_augment_is_seeded_bounded_and_identity_without_deformation():
    torch = pytest.importorskip("torch")
    from invariance_tradeoffs.simulations.models.proxy import augment

    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    cfg = PROXY_CONFIGS["proxy"]
    a = augment(x, cfg, torch.Generator().manual_seed(1))
    b = augment(x, cfg, torch.Generator().manual_seed(1))
    c = augment(x, cfg, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0 and float(a.max()) <= 1 + 1e-6
    still = with_overrides(cfg, max_rotation=0.0, max_scale=0.0, max_shift=0.0,
                           elastic_alpha=0.0)
    same = augment(x, still, torch.Generator().manual_seed(1))
    assert torch.allclose(same, x, atol=1e-5)
    # ... and the identity check does fail on a real deformation.
    assert not torch.allclose(a, x, atol=1e-5)


def test_augment_moves_ink_by_at_most_a_few_pixels():
    torch = pytest.importorskip("torch")
    from invariance_tradeoffs.simulations.models.proxy import augment

    x = torch.zeros(50, 1, 28, 28)
    x[:, :, 12:16, 12:16] = 1.0  # a centred blob
    cfg = PROXY_CONFIGS["proxy"]
    y = augment(x, cfg, torch.Generator().manual_seed(0))
    grid = torch.arange(28.0)

    def centre(img):
        m = img[:, 0]
        tot = m.sum(dim=(1, 2))
        return (m.sum(2) @ grid) / tot, (m.sum(1) @ grid) / tot

    (r0, c0), (r1, c1) = centre(x), centre(y)
    shift = torch.sqrt((r1 - r0) ** 2 + (c1 - c0) ** 2)
    # translation <= 2*sqrt(2), elastic <= 1.5, rotation/scale about the centre: small
    assert float(shift.max()) <= 2 * 2 ** 0.5 + 1.5 + 0.5
    assert float(y.sum()) > 0.5 * float(x.sum())  # the digit does not leave the frame


def test_tiny_proxy_trains_caches_and_never_retrains(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import invariance_tradeoffs.simulations.models.proxy as proxy_mod

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(900, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, size=900)
    cfg = with_overrides("proxy-tiny", n_train=60, batch_size=20)
    p1 = proxy_mod.train_proxy(cfg, images, labels, cache_dir=tmp_path)
    assert len(p1.members) == cfg.n_members and len(set(p1.keys)) == cfg.n_members
    assert len(list(tmp_path.glob("proxy-tiny-m*.pt"))) == cfg.n_members

    def boom(*a, **k):
        raise AssertionError("retrained a cached member")

    monkeypatch.setattr(proxy_mod, "_train_member", boom)
    p2 = proxy_mod.train_proxy(cfg, images, labels, cache_dir=tmp_path)
    x = rng.random((5, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(p1.predict_proba(x), p2.predict_proba(x))
    assert all(m["loaded_from_cache"] for m in p2.metrics)
    probs = p2.predict_proba(x)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert p2.label_images(images[:3]).shape == (3,)


def test_training_is_deterministic_across_caches(tmp_path):
    pytest.importorskip("torch")
    from invariance_tradeoffs.simulations.models.proxy import train_proxy

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(60, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, size=60)
    cfg = with_overrides("proxy-tiny", n_train=40, batch_size=20, n_members=1)
    a = train_proxy(cfg, images, labels, cache_dir=tmp_path / "a")
    b = train_proxy(cfg, images, labels, cache_dir=tmp_path / "b")
    x = rng.random((4, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))


def test_tiny_proxy_on_the_published_sets(mnist_dir, published_dir, tmp_path):
    pytest.importorskip("torch")
    from invariance_tradeoffs.simulations.data.published import load_published_examples
    from invariance_tradeoffs.simulations.models.proxy import load_or_train_proxy

    sets = load_published_examples(published_dir, data_dir=mnist_dir)
    proxy = load_or_train_proxy("proxy-tiny", data_dir=mnist_dir, cache_dir=tmp_path)
    v = validate_proxy(proxy, sets)
    for name, r in v["sets"].items():
        assert r["n"] == sets[name].n
        assert r["n_label_changed"] == int(sets[name].human_changed.sum())
        assert 0 <= r["agreement"].low <= r["agreement"].value <= r["agreement"].high <= 1
    assert v["pooled"]["n"] == sum(s.n for s in sets.values())


def test_ink_threshold_is_prediction_only_and_validated():
    cfg = PROXY_CONFIGS["proxy"]
    assert config_key(with_overrides(cfg, ink_threshold=1.0).member(0), "d") == \
        config_key(cfg.member(0), "d")
    with pytest.raises(ValueError, match="ink_threshold"):
        ProxyConfig("x", ink_threshold=0.0)


def test_select_ink_threshold_reads_clean_accuracy_only():
    from invariance_tradeoffs.simulations.evaluation.proxy_validation import select_ink_threshold

    rows = [{"ink_threshold": 1.0, "clean_accuracy": 0.99},
            {"ink_threshold": 0.5, "clean_accuracy": 0.987},
            {"ink_threshold": 0.4, "clean_accuracy": 0.985},
            {"ink_threshold": 0.3, "clean_accuracy": 0.98}]
    assert select_ink_threshold(rows) == 0.4
    assert select_ink_threshold(rows, tolerance=0.0) == 1.0
    with pytest.raises(ValueError, match="1.0"):
        select_ink_threshold(rows[1:])


def test_ink_threshold_shows_grey_strokes_as_ink(tmp_path):
    torch = pytest.importorskip("torch")
    from invariance_tradeoffs.simulations.evaluation.proxy_validation import ink_threshold_sweep
    from invariance_tradeoffs.simulations.models.proxy import ProxyLabeller, build_proxy_cnn

    net = build_proxy_cnn(4, seed=0)
    plain = ProxyLabeller([net], with_overrides("proxy-tiny", ink_threshold=1.0))
    grey = ProxyLabeller([net], with_overrides("proxy-tiny", ink_threshold=0.4))
    rng = np.random.default_rng(0)
    x = (rng.random((6, 1, 28, 28)) * 0.6).astype(np.float32)
    np.testing.assert_allclose(grey.predict_proba(x),
                               plain.predict_proba(np.clip(x / 0.4, 0, 1)), rtol=1e-5)
    assert not np.allclose(grey.predict_proba(x), plain.predict_proba(x))
    imgs = (rng.random((10, 28, 28)) * 255).astype(np.uint8)
    rows = ink_threshold_sweep(plain, imgs, rng.integers(0, 10, 10), (1.0, 0.5))
    assert [r["ink_threshold"] for r in rows] == [1.0, 0.5]
    assert all(0 <= r["clean_accuracy"].value <= 1 for r in rows)
    del torch


class _ScoreProxy:
    """predict_proba giving the example in row r the probability 1 - s[r] for its source
    class and s[r] for the human label (or class 9 when the human kept the label)."""

    def __init__(self, scores, orig, human):
        self.scores, self.orig, self.human = map(np.asarray, (scores, orig, human))

    def predict_proba(self, x):
        rows = np.rint(x[:, 0, 0, 0] * 255).astype(int)
        p = np.zeros((len(rows), 10))
        for i, r in enumerate(rows):
            other = self.human[r] if self.human[r] != self.orig[r] else 9
            p[i, self.orig[r]] = 1 - self.scores[r]
            p[i, other] = self.scores[r]
        return p


def test_threshold_rule_keeps_the_source_until_the_evidence_exceeds_the_threshold():
    proba = np.array([[0.7, 0.3] + [0] * 8, [0.2, 0.1, 0.7] + [0] * 7])
    assert threshold_rule_labels(proba, [0, 0], 0.5).tolist() == [0, 2]
    assert threshold_rule_labels(proba, [0, 0], 0.25).tolist() == [1, 2]
    assert threshold_rule_labels(proba, [0, 0], 0.9).tolist() == [0, 0]


@pytest.mark.parametrize("reverse", [False, True])
def test_proxy_ranking_on_a_perfect_and_a_reversed_score(reverse):
    # Perfect: the changed examples (last four) score higher than every unchanged one.
    # Reversed (the broken input): AUC 0, and no threshold beats "never changed".
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    if reverse:
        scores = scores[::-1]
    sets = {"a": _fake_set("a", HUMAN, ORIG), "b": _fake_set("b", HUMAN, ORIG, seed=1)}
    r = proxy_ranking(_ScoreProxy(scores, ORIG, HUMAN), sets)
    a = r["sets"]["a"]
    assert a["auc"] == (0.0 if reverse else 1.0)
    assert a["best_threshold_agreement"].value == (0.5 if reverse else 1.0)
    assert a["n_third_class"] == 0 and a["n_label_changed"] == 4
    assert r["transfer"]["a"]["agreement"].value == (0.5 if reverse else 1.0)

"""The analysis-by-synthesis judge: scoring on real MNIST, the reject label, caching, input
checks (a tiny configuration trained in seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from invariance_tradeoffs.simulations.attacks.l0.judges import judge_labels, reads_as
from invariance_tradeoffs.simulations.io import CorruptFileError
from invariance_tradeoffs.theory.oracles import REJECT

torch = pytest.importorskip("torch")

from invariance_tradeoffs.simulations.models import abs_judge as abs_mod  # noqa: E402
from invariance_tradeoffs.simulations.models.abs_judge import (  # noqa: E402
    ABS_CONFIGS,
    ABSConfig,
    get_abs_config,
    split_training,
    train_abs,
    with_overrides,
)

# torch scoring and training in one thread (see tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")

@pytest.fixture(scope="module")
def mnist(mnist_dir):
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    return load_mnist("train", mnist_dir), load_mnist("test", mnist_dir)


@pytest.fixture(scope="module")
def tiny(mnist, tmp_path_factory):
    train, _ = mnist
    cache = tmp_path_factory.mktemp("abs-cache")
    return train_abs("abs-tiny", train.images, train.labels, cache_dir=cache), cache


def test_tiny_judge_reads_real_test_digits(tiny, mnist):
    judge, _ = tiny
    _, test = mnist
    x, y = test.images[:300], test.labels[:300]
    bounds = judge.log_bounds(x)
    assert bounds.shape == (300, 10) and np.all(np.isfinite(bounds))
    pred = judge.predict(x)
    # 100 training images per class, seconds of training: far above chance (0.1)
    assert np.mean(pred == y) >= 0.6
    assert np.mean(pred == REJECT) <= 0.25  # thresholds from 50 held-out images per class
    proba = judge.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    assert np.array_equal(proba.argmax(axis=1), bounds.argmax(axis=1))
    assert judge.calibration["holdout_reject_rate"] <= 0.05
    assert judge.temperature in abs_mod.TEMPERATURES


def test_reject_on_uniform_noise_and_blank_images(tiny):
    judge, _ = tiny
    rng = np.random.default_rng(0)
    noise = rng.random((20, 28, 28))
    blank = np.zeros((3, 28, 28))
    for imgs in (noise, blank):
        assert np.all(judge.predict(imgs) == REJECT)
        assert np.all(judge(imgs) == 0)  # as a judge: reads as no class
        assert np.all(judge_labels(judge, imgs) == REJECT)
        for c in range(10):
            assert not reads_as(judge, imgs, c).any()


def test_an_image_scores_the_same_alone_and_in_a_batch(tiny, mnist):
    judge, _ = tiny
    _, test = mnist
    batch = judge.log_bounds(test.images[:40])
    alone = np.concatenate([judge.log_bounds(test.images[i:i + 1]) for i in (0, 17, 39)])
    np.testing.assert_allclose(batch[[0, 17, 39]], alone, rtol=1e-5, atol=1e-3)


def test_cached_vaes_are_loaded_never_retrained_and_damage_is_refused(tiny, mnist,
                                                                      monkeypatch):
    judge, cache = tiny
    train, test = mnist
    files = sorted(cache.glob("abs-tiny-c*.pt"))
    assert len(files) == 10 and all(f.with_name(f.name + ".sha256.json").exists()
                                    for f in files)

    def boom(*a, **k):
        raise AssertionError("retrained a cached class VAE")

    monkeypatch.setattr(abs_mod, "_train_class", boom)
    again = train_abs("abs-tiny", train.images, train.labels, cache_dir=cache)
    assert all(m["loaded_from_cache"] for m in again.metrics)
    np.testing.assert_array_equal(again.log_bounds(test.images[:5]),
                                  judge.log_bounds(test.images[:5]))
    damaged = cache / "damaged"
    damaged.mkdir()
    for f in files:
        for src in (f, f.with_name(f.name + ".sha256.json")):
            (damaged / src.name).write_bytes(src.read_bytes())
    bad = damaged / files[3].name
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=files[3].name):
        train_abs("abs-tiny", train.images, train.labels, cache_dir=damaged)


def test_bad_inputs_name_the_argument(tiny):
    judge, _ = tiny
    with pytest.raises(ValueError, match="images"):
        judge.predict(np.zeros((2, 784)))
    with pytest.raises(ValueError, match="images"):
        judge.predict(np.full((2, 28, 28), 2.0))
    with pytest.raises(TypeError, match="images"):
        judge.predict(np.array([["a"]]))
    with pytest.raises(ValueError, match="unknown ABS judge 'nope'"):
        get_abs_config("nope")
    for field, value in [("latent", 0), ("epochs", 1.5), ("n_samples", 0), ("lr", -1.0),
                         ("reject_quantile", 0.5), ("ink_threshold", 0.0), ("n_train", 3)]:
        with pytest.raises((TypeError, ValueError), match=field):
            ABSConfig("x", **{field: value})
    with pytest.raises(ValueError, match="holdout_labels must include every class"):
        abs_mod.ABSJudge(judge.vaes, judge.config, np.zeros((4, 28, 28)), np.zeros(4, int))
    with pytest.raises(ValueError, match="images must be uint8"):
        split_training(judge.config, np.zeros((600, 28, 28)), np.zeros(600, int))


def test_cache_keys_depend_on_training_fields_only():
    fp = "0" * 64
    base = get_abs_config("abs")

    def key(cfg, c=0):
        return abs_mod._class_file(cfg, c, fp, "/tmp")[1]

    assert key(base) != key(base, 1)
    assert key(base) != key(with_overrides(base, epochs=base.epochs + 1))
    assert key(base) != key(with_overrides(base, seed=base.seed + 1))
    # scoring fields do not retrain
    for field, value in [("n_samples", 1), ("reject_quantile", 0.01), ("ink_threshold", 0.5)]:
        assert key(base) == key(with_overrides(base, **{field: value}))
    assert {"abs", "abs-tiny"} <= set(ABS_CONFIGS)


@pytest.mark.slow
def test_default_judge_reads_mnist_test_digits_and_rejects_noise(mnist, tmp_path):
    """Trains the ten `abs` VAEs (1.5-4 minutes on 2 cores; docs/judges.md: test
    accuracy 0.954 [0.950, 0.958] on all 10000 test images)."""
    train, test = mnist
    judge = train_abs("abs", train.images, train.labels, cache_dir=tmp_path)
    pred = judge.predict(test.images[:2000])
    # measured 0.9395 on these 2000 (a reject counts as an error); 0.971 on the accepted
    assert np.mean(pred == test.labels[:2000]) >= 0.93
    ok = pred != REJECT
    assert np.mean(pred[ok] == test.labels[:2000][ok]) >= 0.96
    assert np.mean(pred == REJECT) <= 0.03
    rng = np.random.default_rng(1)
    assert np.all(judge.predict(rng.random((50, 28, 28))) == REJECT)
    assert judge.calibration["holdout_accuracy"] >= 0.96

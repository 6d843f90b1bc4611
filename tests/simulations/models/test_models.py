"""Models, adapter, certification (IBP and exact linear), PGD and the model zoo."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from invariance_tradeoffs.simulations.certification import (
    certify_linear,
    input_box,
    linear_worst_margins,
)
from invariance_tradeoffs.simulations.models import zoo
from invariance_tradeoffs.simulations.models.adapters import (
    LinearModel,
    NumpyModel,
    as_images,
    as_model,
    to_model_input,
)
from invariance_tradeoffs.simulations.models.zoo import (
    CONFIGS,
    TrainConfig,
    config_key,
    data_fingerprint,
    eps_schedule,
    fit_robust_multiclass_linear,
    get_config,
    load_saved,
    robust_linear_loss,
    train,
)
from tests.model_helpers import fake_mnist as _fake_mnist


@pytest.fixture(autouse=True)
def _one_thread():
    """The CI machine has 2 shared cores: oversubscribed BLAS threads are 5-10x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 28, 28)).astype(np.float32)


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    return load_mnist("train", mnist_dir), load_mnist("test", mnist_dir)


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    """One model cache for the real-data tests, so each tiny model trains once."""
    return tmp_path_factory.mktemp("zoo-cache")


# --------------------------------------------------------------------------- adapter
def test_as_images_validates_shape_range_and_type():
    assert as_images(_images(2)).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="x must have shape"):
        as_images(np.zeros((2, 784)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        as_images(np.full((1, 1, 28, 28), 2.0))
    with pytest.raises(ValueError, match="NaN"):
        as_images(np.full((1, 1, 28, 28), np.nan))
    with pytest.raises(TypeError, match="numeric"):
        as_images(np.array([["a"]]))
    with pytest.raises(ValueError, match="empty"):
        as_images(np.zeros((0, 1, 28, 28)))


def test_to_model_input_scales_uint8_and_adds_channel():
    u = np.full((3, 28, 28), 255, dtype=np.uint8)
    x = to_model_input(u)
    assert x.shape == (3, 1, 28, 28) and x.dtype == np.float32 and np.all(x == 1.0)
    with pytest.raises(ValueError, match="images must have shape"):
        to_model_input(np.zeros((3, 784), dtype=np.uint8))


def test_numpy_model_labels_and_scores():
    x = _images(4)
    assert NumpyModel(lambda b: np.full(len(b), 7)).predict(x).tolist() == [7] * 4
    scores = NumpyModel(lambda b: b.reshape(len(b), -1)[:, :10], output="scores")
    assert np.array_equal(scores.predict(x), np.argmax(x.reshape(4, -1)[:, :10], axis=1))
    with pytest.raises(ValueError, match="scores must have shape"):
        NumpyModel(lambda b: np.zeros((len(b), 3)), output="scores").predict(x)
    with pytest.raises(ValueError, match="out of range"):
        NumpyModel(lambda b: np.full(len(b), 10)).predict(x)
    with pytest.raises(ValueError, match="length"):
        NumpyModel(lambda b: np.zeros(1, int)).predict(x)


def test_as_model_wraps_estimators_callables_and_refuses_others():
    from sklearn.linear_model import LogisticRegression

    x = _images(40)
    y = np.arange(40) % 10
    est = LogisticRegression(max_iter=50).fit(x.reshape(40, -1), y)
    m = as_model(est)
    assert np.array_equal(m.predict(x), est.predict(x.reshape(40, -1)))
    assert as_model(lambda b: np.zeros(len(b), int)).predict(x).sum() == 0
    lm = LinearModel(np.zeros((10, 784)), np.arange(10.0))
    assert as_model(lm) is lm
    with pytest.raises(TypeError, match="cannot use"):
        as_model(3)


def test_linear_model_validates_and_predicts_argmax():
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(10, 784)), rng.normal(size=10)
    m = LinearModel(w, b)
    x = _images(5)
    assert np.array_equal(m.predict(x), np.argmax(x.reshape(5, -1) @ w.T + b, axis=1))
    with pytest.raises(ValueError, match="weight must have shape"):
        LinearModel(np.zeros((10, 783)), np.zeros(10))
    with pytest.raises(ValueError, match="bias must have shape"):
        LinearModel(np.zeros((10, 784)), np.zeros(9))


# --------------------------------------------------------------------------- exact linear
def _brute_worst_margins(w, b, x, y, eps):
    """Minimum of z_y - z_j over the corners of the box (the exact minimum for linear z)."""
    lo, hi = input_box(x[None], eps)
    best = np.full(w.shape[0], np.inf)
    for bits in itertools.product((0, 1), repeat=x.size):
        corner = np.where(np.array(bits, bool), hi[0], lo[0])
        z = w @ corner + b
        best = np.minimum(best, z[y] - z)
    best[y] = np.inf
    return best


def _broken_worst_margins(w, b, x, y, eps):
    """Deliberately wrong: forgets that pixels are clipped to [0, 1]."""
    v = w[y] - w
    out = v @ x + b[y] - b - np.abs(v) @ np.full(x.size, eps)
    out[y] = np.inf
    return out


@given(seed=st.integers(0, 10_000), d=st.integers(1, 6), c=st.integers(2, 4),
       eps=st.floats(0.0, 0.6))
def test_linear_worst_margins_are_exact(seed, d, c, eps):
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=(c, d)), rng.normal(size=c)
    x = rng.random(d) * (rng.random(d) < 0.7)  # many zero pixels, as in MNIST
    y = int(rng.integers(c))
    got = linear_worst_margins(w, b, x[None], np.array([y]), eps)[0]
    np.testing.assert_allclose(got, _brute_worst_margins(w, b, x, y, eps), atol=1e-9)


def test_exactness_check_catches_a_broken_formula():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    x, y, eps = np.array([0.0, 0.05, 1.0, 0.5]), 1, 0.3
    assert not np.allclose(_broken_worst_margins(w, b, x, y, eps),
                           _brute_worst_margins(w, b, x, y, eps))


def test_certify_linear_is_the_sign_of_the_worst_margins():
    rng = np.random.default_rng(3)
    m = LinearModel(rng.normal(size=(10, 784)) * 0.05, rng.normal(size=10))
    x = (rng.random((30, 1, 28, 28)) < 0.2).astype(np.float32)
    y = m.predict(x)
    cert = certify_linear(m, x, y, 0.01)
    margins = linear_worst_margins(m.weight, m.bias, x, y, 0.01)
    assert np.array_equal(cert, np.all(margins > 0, axis=1))
    assert np.all(certify_linear(m, x, y, 0.0))  # every prediction is robust at eps = 0...
    assert not np.any(certify_linear(m, x, (y + 1) % 10, 0.0))  # ...and only for its label


@given(seed=st.integers(0, 10_000), eps=st.floats(0.0, 0.5))
def test_robust_linear_loss_upper_bounds_cross_entropy_in_the_box(seed, eps):
    rng = np.random.default_rng(seed)
    n, d, c = 5, 8, 3
    x = rng.random((n, d))
    y = rng.integers(0, c, n)
    lo, hi = input_box(x, eps)
    params = rng.normal(size=c * d + c)
    loss, _ = robust_linear_loss(params, (lo + hi) / 2, (hi - lo) / 2, y, c, 0.0)
    w, b = params[: c * d].reshape(c, d), params[c * d:]
    for _ in range(20):
        xp = lo + rng.random((n, d)) * (hi - lo)
        z = xp @ w.T + b
        ce = np.mean(np.log(np.exp(z - z.max(1, keepdims=True)).sum(1))
                     + z.max(1) - z[np.arange(n), y])
        assert ce <= loss + 1e-9


def test_robust_linear_loss_gradient_matches_central_differences():
    rng = np.random.default_rng(0)
    n, d, c = 25, 30, 4
    x = rng.random((n, d))
    y = rng.integers(0, c, n)
    lo, hi = input_box(x, 0.2)
    args = ((lo + hi) / 2, (hi - lo) / 2, y, c, 0.01)
    p = rng.normal(size=c * d + c) * 0.3
    _, grad = robust_linear_loss(p, *args)
    for i in rng.choice(p.size, 25, replace=False):
        e = np.zeros_like(p)
        e[i] = 1e-6
        num = (robust_linear_loss(p + e, *args)[0] - robust_linear_loss(p - e, *args)[0]) / 2e-6
        assert abs(num - grad[i]) < 1e-6


def test_robust_linear_at_eps0_is_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    images, labels = _fake_mnist(200)
    lam = 1e-2
    ours, info = fit_robust_multiclass_linear(images, labels, 0.0, l2=lam, max_iter=500)
    x = images.reshape(200, -1) / 255.0
    sk = LogisticRegression(C=1 / (lam * 200), max_iter=1000, tol=1e-8).fit(x, labels)
    assert info["converged"]
    np.testing.assert_allclose(ours.weight, sk.coef_, atol=2e-3)
    # Softmax is invariant to a common shift of the biases: compare centred biases.
    np.testing.assert_allclose(ours.bias - ours.bias.mean(), sk.intercept_ - sk.intercept_.mean(),
                               atol=2e-3)


# --------------------------------------------------------------------------- configs, cache
def test_configs_are_valid_and_budgets_stated():
    for name, cfg in CONFIGS.items():
        assert cfg.name == name and cfg.budget_minutes is not None
    assert get_config("pgd-0.3").budget_minutes <= 15
    assert {"tiny-standard", "tiny-pgd", "tiny-ibp"} <= set(CONFIGS)
    for cfg in (c for c in CONFIGS.values() if c.name.startswith("tiny")):
        assert cfg.epochs == 1 and cfg.n_train <= 1000
    with pytest.raises(ValueError, match="unknown model"):
        get_config("nope")
    with pytest.raises(ValueError, match="method"):
        TrainConfig("x", "magic")
    with pytest.raises(ValueError, match="pgd_steps"):
        TrainConfig("x", "pgd", eps=0.3)
    with pytest.raises(ValueError, match="warmup_fraction"):
        TrainConfig("x", "ibp", warmup_fraction=0.8, ramp_fraction=0.5)
    with pytest.raises(ValueError, match="unknown configuration keys"):
        TrainConfig.from_dict({"name": "x", "method": "knn", "colour": 1})


def test_config_round_trips_through_json():
    cfg = get_config("ibp-0.4")
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_key_depends_on_every_field_and_on_the_data():
    images, labels = _fake_mnist(50)
    fp = data_fingerprint(images, labels)
    base = get_config("tiny-pgd")
    keys = {config_key(base, fp)}
    for change in [dict(seed=1), dict(eps=0.2), dict(lr=1e-2), dict(pgd_steps=4),
                   dict(n_train=700), dict(name="other"), dict(lr_schedule="onecycle")]:
        keys.add(config_key(replace(base, **change), fp))
    images2 = images.copy()
    images2[0, 0, 0] ^= 1
    keys.add(config_key(base, data_fingerprint(images2, labels)))
    assert len(keys) == 9
    # the default step schedule leaves keys as they were before the field existed
    legacy = {"format": 1, "config": {k: v for k, v in base.to_dict().items()
                                      if k != "lr_schedule"}, "data": fp}
    import hashlib

    assert config_key(base, fp) == hashlib.sha256(
        json.dumps(legacy, sort_keys=True).encode()).hexdigest()[:20]


def test_eps_schedule_warmup_then_linear_ramp():
    sched = [eps_schedule(s, 100, 0.4, 0.1, 0.5) for s in range(100)]
    assert sched[:10] == [0.0] * 10
    assert sched[59:] == [0.4] * 41
    assert np.all(np.diff(sched) >= 0)
    assert eps_schedule(0, 10, 0.3, 0.0, 0.0) == 0.3


def test_numpy_models_train_save_and_cache_hit_never_retrains(tmp_path, monkeypatch):
    images, labels = _fake_mnist(300)
    for name in ("tiny-logreg", "tiny-robust-linear", "tiny-knn"):
        cfg = replace(get_config(name), n_train=300)
        first = train(cfg, images, labels, cache_dir=tmp_path)
        assert not first.loaded_from_cache and first.path.suffix == ".npz"
        with np.load(first.path, allow_pickle=False) as npz:  # no pickled objects inside
            meta = json.loads(str(npz["meta"]))
        assert meta["config"]["name"] == name and meta["key"] == first.key
        x = to_model_input(images[:50])
        assert np.mean(first.model.predict(x) == labels[:50]) > 0.9

        def boom(*a, **k):
            raise AssertionError("retrained on a cache hit")

        with monkeypatch.context() as mp:
            mp.setattr(zoo, "train_numpy", boom)
            again = train(cfg, images, labels, cache_dir=tmp_path)
        assert again.loaded_from_cache and again.key == first.key
        assert np.array_equal(again.model.predict(x), first.model.predict(x))


def test_load_saved_rejects_foreign_files(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(ValueError, match="x.npz"):
        load_saved(bad)
    with pytest.raises(FileNotFoundError):
        load_saved(tmp_path / "missing.npz")
    images, labels = _fake_mnist(100)
    good = train(replace(get_config("tiny-knn"), n_train=100), images, labels,
                 cache_dir=tmp_path)
    with pytest.raises(ValueError, match="key"):
        load_saved(good.path, expected_key="0" * 20)


def test_train_rejects_bad_images():
    with pytest.raises(ValueError, match="uint8"):
        train(get_config("tiny-knn"), np.zeros((900, 28, 28)), np.zeros(900, int))
    with pytest.raises(ValueError, match="needs n_train=800"):
        train(get_config("tiny-knn"), *_fake_mnist(100))


# --------------------------------------------------------------------------- torch adapter
def test_torch_model_gradient_matches_linear_closed_form():
    _torch()
    rng = np.random.default_rng(0)
    lm = LinearModel(rng.normal(size=(10, 784)) * 0.1, rng.normal(size=10))
    tm = lm.to_torch()
    x = _images(6)
    y = np.arange(6)
    np.testing.assert_allclose(tm.logits(x), lm.logits(x), rtol=1e-4, atol=1e-4)
    z = lm.logits(x)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(6), y] -= 1
    expected = (p @ lm.weight).reshape(x.shape)
    np.testing.assert_allclose(tm.loss_gradient(x, y), expected, rtol=1e-3, atol=1e-4)


def test_build_architecture_is_seeded_and_checked():
    torch = _torch()
    from invariance_tradeoffs.simulations.models.adapters import PyTorchModel
    from invariance_tradeoffs.simulations.models.architectures import (
        ARCHITECTURES,
        build_architecture,
    )

    for arch in ARCHITECTURES:
        a, b = build_architecture(arch, seed=5), build_architecture(arch, seed=5)
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(),
                                                    strict=True))
        assert PyTorchModel(a.eval()).logits(_images(2)).shape == (2, 10)
    with pytest.raises(ValueError, match="arch must be one of"):
        build_architecture("resnet")
    with pytest.raises(TypeError, match="nn.Module"):
        PyTorchModel(lambda x: x)


# --------------------------------------------------------------------------- IBP
def _random_net(seed: int, conv: bool):
    torch = _torch()
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    h = int(rng.integers(2, 7))
    if conv:
        return nn.Sequential(nn.Conv2d(1, h, 3, stride=1, padding=1), nn.ReLU(),
                             nn.Conv2d(h, 3, 3, stride=2, padding=1), nn.ReLU(),
                             nn.Flatten(), nn.Linear(3 * 3 * 3, h), nn.ReLU(), nn.Linear(h, 4))
    return nn.Sequential(nn.Flatten(), nn.Linear(25, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                         nn.Linear(h, 4))


def _naive_bounds(module, x, eps):
    """Deliberately broken IBP: propagates the radius through W instead of |W|."""
    import torch
    from torch.nn import functional as F

    from invariance_tradeoffs.simulations.certification import flatten_sequential

    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    for layer in flatten_sequential(module):
        if isinstance(layer, torch.nn.Linear):
            c, r = F.linear((lo + hi) / 2, layer.weight, layer.bias), F.linear((hi - lo) / 2,
                                                                               layer.weight)
            lo, hi = torch.minimum(c - r, c + r), torch.maximum(c - r, c + r)
        else:
            lo, hi = layer(lo), layer(hi)
    return lo, hi


@given(seed=st.integers(0, 10_000), conv=st.booleans(), eps=st.floats(0.0, 0.5))
def test_ibp_logit_bounds_are_sound(seed, conv, eps):
    torch = _torch()
    from invariance_tradeoffs.simulations.certification import check_bounds_sound, ibp_logit_bounds

    net = _random_net(seed, conv)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((3, 1, 5, 5) if conv else (3, 25), generator=g)
    report = check_bounds_sound(ibp_logit_bounds, net, x, eps, n_samples=32, seed=seed)
    assert report["violations"] == 0, report


def test_soundness_check_catches_a_broken_bound():
    torch = _torch()
    from invariance_tradeoffs.simulations.certification import check_bounds_sound

    net = _random_net(0, conv=False)
    x = torch.rand((8, 25), generator=torch.Generator().manual_seed(0))
    assert check_bounds_sound(_naive_bounds, net, x, 0.2, n_samples=64)["violations"] > 0


@given(seed=st.integers(0, 10_000), eps=st.floats(0.0, 0.3))
def test_ibp_margin_bound_is_sound_and_tighter_than_logit_intervals(seed, eps):
    torch = _torch()
    from invariance_tradeoffs.simulations.certification import ibp_logit_bounds, ibp_margin_upper

    net = _random_net(seed, conv=True)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((4, 1, 5, 5), generator=g)
    y = torch.randint(0, 4, (4,), generator=g)
    with torch.no_grad():
        up = ibp_margin_upper(net, x, y, eps)
        lo, hi = ibp_logit_bounds(net, x, eps)
        loose = hi - lo.gather(1, y.view(-1, 1))
        assert torch.all(up <= loose.scatter(1, y.view(-1, 1), 0.0) + 1e-5)
        xl, xh = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
        for _ in range(30):
            z = net(xl + torch.rand(x.shape, generator=g) * (xh - xl))
            assert torch.all(z - z.gather(1, y.view(-1, 1)) <= up + 1e-5)


def test_ibp_is_exact_on_linear_models():
    _torch()
    from invariance_tradeoffs.simulations.certification import certify, certify_ibp

    rng = np.random.default_rng(2)
    lm = LinearModel(rng.normal(size=(10, 784)) * 0.02, rng.normal(size=10) * 0.5)
    x = (rng.random((40, 1, 28, 28)) < 0.15).astype(np.float32)
    y = lm.predict(x)
    for eps in (0.005, 0.02, 0.05):
        exact = certify_linear(lm, x, y, eps)
        assert 0 < exact.sum() < 40 or eps != 0.02
        assert np.array_equal(certify_ibp(lm.to_torch(), x, y, eps), exact)
    cert, method = certify(lm, x, y, 0.02)
    assert method.startswith("exact")
    assert certify(NumpyModel(lambda b: np.zeros(len(b), int)), x, y, 0.02) is None


def test_ibp_rejects_unsupported_layers():
    torch = _torch()
    from invariance_tradeoffs.simulations.certification import certify, flatten_sequential

    with pytest.raises(TypeError, match="BatchNorm"):
        flatten_sequential(torch.nn.Sequential(torch.nn.BatchNorm1d(3)))
    with pytest.raises(TypeError, match="nn.Sequential"):
        flatten_sequential(torch.nn.Linear(3, 3))
    assert certify(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Tanh(),
                                       torch.nn.Linear(784, 10)), _images(1), [0], 0.1) is None


# --------------------------------------------------------------------------- PGD
@pytest.mark.parametrize("eps", [0.0, 0.05, 0.3])
def test_pgd_stays_in_the_ball_and_the_unit_cube(eps):
    _torch()
    from invariance_tradeoffs.simulations.attacks.pgd import pgd_attack
    from invariance_tradeoffs.simulations.models.adapters import PyTorchModel
    from invariance_tradeoffs.simulations.models.architectures import build_architecture

    m = PyTorchModel(build_architecture("tiny_cnn", seed=0).eval())
    x = _images(16, seed=1)
    x[:, :, :5] = 0.0
    x[:, :, -5:] = 1.0  # clipped regions on both sides
    res = pgd_attack(m, x, m.predict(x), eps, steps=5, restarts=2, seed=3)
    assert np.abs(res.x_adv - x).max() <= eps + 1e-6
    assert res.x_adv.min() >= 0.0 and res.x_adv.max() <= 1.0
    again = pgd_attack(m, x, m.predict(x), eps, steps=5, restarts=2, seed=3)
    assert np.array_equal(res.x_adv, again.x_adv)  # same seed, same output
    if eps == 0.0:
        assert not res.success.any()


def test_pgd_is_bracketed_by_exact_robust_accuracy_on_linear_models():
    _torch()
    from invariance_tradeoffs.simulations.attacks.pgd import pgd_attack, pgd_robust_accuracy

    images, labels = _fake_mnist(300)
    lm, _ = fit_robust_multiclass_linear(images, labels, 0.0, l2=1e-3, max_iter=200)
    x, y = to_model_input(images[:100]), labels[:100].astype(np.int64)
    for eps in (0.05, 0.1, 0.2):
        exact = certify_linear(lm, x, y, eps)
        res = pgd_attack(lm, x, y, eps, steps=20, restarts=2)
        assert not np.any(res.success & exact)  # PGD never breaks a certified sample
        assert np.mean(res.success | exact) >= 0.95  # and finds almost all others
        # every PGD success is a genuine sensitivity example
        assert np.all(lm.predict(res.x_adv[res.success]) != y[res.success])
    q = pgd_robust_accuracy(lm, x, y, 0.1, steps=10, restarts=1)
    assert q.kind == "estimate" and q.low <= q.value <= q.high


def test_pgd_refuses_models_without_gradients():
    _torch()
    from invariance_tradeoffs.simulations.attacks.pgd import pgd_attack

    with pytest.raises(TypeError, match="gradients"):
        pgd_attack(NumpyModel(lambda b: np.zeros(len(b), int)), _images(2), [0, 0], 0.1)
    with pytest.raises(ValueError, match="steps"):
        pgd_attack(LinearModel(np.zeros((10, 784)), np.zeros(10)), _images(2), [0, 0], 0.1,
                   steps=0)


# --------------------------------------------------------------------------- torch zoo
def test_torch_training_caches_with_weights_only_and_never_retrains(tmp_path, monkeypatch):
    torch = _torch()
    images, labels = _fake_mnist(300)
    cfg = replace(get_config("tiny-standard"), n_train=300)
    first = train(cfg, images, labels, cache_dir=tmp_path)
    blob = torch.load(first.path, weights_only=True)
    assert set(blob) == {"format", "key", "config", "metrics", "state_dict"}
    assert blob["config"]["name"] == "tiny-standard"
    assert blob["metrics"]["steps"] == 30 and blob["metrics"]["within_budget"] in (True, False)

    def boom(*a, **k):
        raise AssertionError("retrained on a cache hit")

    monkeypatch.setattr(zoo, "train_torch", boom)
    again = train(cfg, images, labels, cache_dir=tmp_path)
    x = to_model_input(images[:40])
    assert again.loaded_from_cache
    np.testing.assert_array_equal(again.model.logits(x), first.model.logits(x))


@pytest.mark.parametrize("name", ["tiny-pgd", "tiny-ibp"])
def test_robust_training_runs_and_is_deterministic(tmp_path, name):
    _torch()
    images, labels = _fake_mnist(200)
    cfg = replace(get_config(name), n_train=200)
    a = train(cfg, images, labels, cache_dir=tmp_path / "a")
    b = train(cfg, images, labels, cache_dir=tmp_path / "b")
    x = to_model_input(images[:20])
    np.testing.assert_array_equal(a.model.logits(x), b.model.logits(x))
    assert np.isfinite(a.metrics["final_loss"])
    assert a.metrics["history"][-1]["eps"] == cfg.eps  # the ramp reached the training radius


@pytest.mark.parametrize("schedule", ["step", "onecycle"])
def test_interrupted_training_resumes_to_the_same_model(tmp_path, schedule):
    _torch()
    images, labels = _fake_mnist(200)
    cfg = replace(get_config("tiny-pgd"), n_train=200, epochs=2, lr_schedule=schedule)
    full = train(cfg, images, labels, cache_dir=tmp_path / "full")
    assert train(cfg, images, labels, cache_dir=tmp_path / "r", _stop_after_epochs=1) is None
    assert len(list((tmp_path / "r").glob("*.partial.pt"))) == 1
    resumed = train(cfg, images, labels, cache_dir=tmp_path / "r")
    assert not list((tmp_path / "r").glob("*.partial.pt"))
    x = to_model_input(images[:20])
    np.testing.assert_array_equal(resumed.model.logits(x), full.model.logits(x))
    assert resumed.metrics["history"] == full.metrics["history"]


def test_estimate_train_seconds():
    _torch()
    images, labels = _fake_mnist(300)
    cfg = replace(get_config("tiny-ibp"), n_train=300)
    est = zoo.estimate_train_seconds(cfg, images, labels, n_steps=2)
    assert est is not None and est > 0
    assert zoo.estimate_train_seconds(get_config("tiny-knn"), images, labels) is None


# --------------------------------------------------------------------------- real MNIST
def test_tiny_models_learn_real_mnist(mnist, real_cache):
    train_split, test_split = mnist
    x, y = to_model_input(test_split.images[:500]), test_split.labels[:500]
    names = ["tiny-logreg", "tiny-robust-linear", "tiny-knn"]
    try:
        _torch()
        names += ["tiny-standard"]
    except pytest.skip.Exception:
        pass
    for name in names:
        m = train(get_config(name), train_split.images, train_split.labels, cache_dir=real_cache)
        assert np.mean(m.model.predict(x) == y) > 0.6, name


def test_robust_linear_is_more_robust_than_logreg_on_real_mnist(mnist, real_cache):
    train_split, test_split = mnist
    x, y = to_model_input(test_split.images[:300]), test_split.labels[:300]
    cert = {}
    for name in ("tiny-logreg", "tiny-robust-linear"):
        m = train(get_config(name), train_split.images, train_split.labels, cache_dir=real_cache)
        cert[name] = certify_linear(m.model, x, y, 0.1).mean()
    assert cert["tiny-robust-linear"] > cert["tiny-logreg"] + 0.1


@pytest.mark.parametrize("smoothing", [1e-4, 0.0])
def test_robust_linear_at_eps03_leaves_the_zero_start_on_real_mnist(mnist, smoothing):
    # At eps = 0.3 the exact loss has a kink at W = 0 in every direction that L-BFGS-B
    # cannot leave (it stops at iteration 0 with the uniform model, loss log 10). The
    # smoothed first stage must move away from it and certify some test images; the
    # unsmoothed fit is the broken input that shows the check can fail.
    train_split, test_split = mnist
    lm, info = fit_robust_multiclass_linear(train_split.images[:1000],
                                            train_split.labels[:1000], 0.3, l2=1e-3,
                                            max_iter=60, smoothing=smoothing)
    x, y = to_model_input(test_split.images[:500]), test_split.labels[:500]
    moved = info["final_loss"] < np.log(10) - 1e-3 and certify_linear(lm, x, y, 0.3).mean() > 0.05
    assert moved == (smoothing > 0), info

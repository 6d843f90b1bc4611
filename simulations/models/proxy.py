"""A human-proxy labeller for new invariance examples, validated against human labels.

Humans cannot label examples inside a test or a reproduction run. This module builds a
stand-in -- an ensemble of differently seeded small CNNs trained on MNIST with
label-preserving augmentation (small random affine maps and elastic deformations) --
and *validates* it on the authors' published invariance examples, whose human labels
are known: agreement with the humans overall and on the label-changed examples, with
Clopper-Pearson intervals. Every number the proxy produces carries that validation
(:func:`proxy_estimate`), and is called a **proxy estimate**, never a human label.

Independence (what makes it a proxy rather than another evaluated model):

- **architecture**: ``proxy_cnn`` (3x3 convolutions with max pooling, width
  ``ProxyConfig.width``) is used by no zoo model (those use strided 4x4 convolutions:
  ``tiny_cnn``, ``small_cnn``, ``medium_cnn``) nor by the l0 attack's judge
  (:mod:`invariance_tradeoffs.simulations.attacks.l0.judges`, a k-NN vote on binarised pixels);
- **seeds**: members use seeds ``ProxyConfig.seed + i`` (default base 1000), disjoint
  from the zoo's seed 0;
- **training data view**: every member sees augmented images (rotation, scaling, shift,
  elastic deformation); no zoo model does; no member is adversarially trained;
- **labels**: trained on MNIST training labels only -- the published human labels are
  used for validation, never for training or model selection.

Members are cached like zoo models (:func:`simulations.models.zoo.config_key` of the
member configuration and the training data; ``torch.save`` of the ``state_dict`` with
configuration and metrics, loaded with ``weights_only=True``, checked against an
integrity record by :mod:`invariance_tradeoffs.simulations.models.cache`); a cache hit
never retrains, a damaged member is refused with a one-line error naming its file, and
an interrupted ensemble resumes at the first missing member.

Examples
--------
>>> from invariance_tradeoffs.simulations.models.proxy import (  # doctest: +SKIP
...     load_or_train_proxy, validate_proxy)
>>> proxy = load_or_train_proxy("proxy-tiny")                               # doctest: +SKIP
>>> report = validate_proxy(proxy, load_published_examples())               # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from invariance_tradeoffs.simulations.io import CorruptFileError
from invariance_tradeoffs.simulations.models.adapters import (
    PyTorchModel,
    to_model_input,
)
from invariance_tradeoffs.simulations.models.cache import (
    adopt,
    load_torch_file,
    load_weights,
    save_torch_file,
)
from invariance_tradeoffs.simulations.models.training import select_training, training_tensors
from invariance_tradeoffs.simulations.models.zoo import (
    config_key,
    data_fingerprint,
    default_cache_dir,
)
from invariance_tradeoffs.simulations.optional import F, nn, require_torch, torch

__all__ = [
    "PROXY_FORMAT",
    "PROXY_METHOD",
    "ProxyConfig",
    "PROXY_CONFIGS",
    "ProxyLabeller",
    "augment",
    "build_proxy_cnn",
    "train_proxy",
    "train_proxy_member",
    "proxy_member_cached",
    "load_or_train_proxy",
    "PREDICTION_FIELDS",
]

#: Bumped whenever proxy training changes results; part of every member's cache key.
PROXY_FORMAT = 1
#: How every number produced by the proxy is labelled.
PROXY_METHOD = "proxy estimate (ensemble of augmented CNNs standing in for human labels)"


@dataclass(frozen=True)
class ProxyConfig:
    """Everything that determines the proxy ensemble (all of it enters the cache keys).

    Attributes
    ----------
    name : str
    n_members : int
        Ensemble size; member ``i`` uses seed ``seed + i``.
    width : int
        Channels of the first convolution of ``proxy_cnn`` (the second has twice as many).
    n_train : int or None
        First ``n_train`` training images (``None``: all 60000).
    epochs, batch_size, lr : Adam optimisation; the learning rate drops x0.1 for the
        last epoch when ``epochs >= 2``.
    max_rotation : float
        Degrees; rotations uniform in ``[-max_rotation, max_rotation]``.
    max_scale : float
        Scaling uniform in ``[1 - max_scale, 1 + max_scale]``.
    max_shift : float
        Pixels; translations uniform in ``[-max_shift, max_shift]`` per axis.
    elastic_alpha, elastic_sigma : float
        Elastic deformation (Simard et al., 2003): a uniform random displacement field
        smoothed by a Gaussian of width ``elastic_sigma`` pixels, scaled to at most
        about ``elastic_alpha`` pixels. ``elastic_alpha = 0`` disables it.
    seed : int
        Base seed (initialisation, shuffling and augmentation of member ``i`` use
        ``seed + i``).
    budget_minutes : float or None
        Designed wall-clock budget for the whole ensemble on 2 CPU cores (recorded,
        never enforced).
    ink_threshold : float in (0, 1]
        Prediction only: images are shown to the members as ``clip(x / ink_threshold, 0,
        1)``, so a grey stroke of intensity ``ink_threshold`` counts as full ink, as it
        does for a human looking at the image. ``1`` leaves images unchanged. It does not
        change the trained weights and so is not part of the members' cache keys.
    """

    name: str
    n_members: int = 4
    width: int = 16
    n_train: int | None = None
    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3
    max_rotation: float = 12.0
    max_scale: float = 0.1
    max_shift: float = 2.0
    elastic_alpha: float = 1.5
    elastic_sigma: float = 3.0
    seed: int = 1000
    budget_minutes: float | None = None
    ink_threshold: float = 1.0

    def __post_init__(self) -> None:
        for name in ("n_members", "width", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.n_train is not None and self.n_train < 1:
            raise ValueError(f"n_train must be None or >= 1, got {self.n_train}")
        for name in ("lr", "elastic_sigma"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be finite and > 0, got {getattr(self, name)}")
        for name in ("max_rotation", "max_shift", "elastic_alpha"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {getattr(self, name)}")
        if not 0 < self.ink_threshold <= 1:
            raise ValueError(f"ink_threshold must be in (0, 1], got {self.ink_threshold}")
        if not 0 <= self.max_scale < 1:
            raise ValueError(f"max_scale must be in [0, 1), got {self.max_scale}")
        # Label preservation: large rotations turn 6 into 9, large shifts crop digits.
        if self.max_rotation > 30 or self.max_shift > 4:
            raise ValueError("max_rotation must be <= 30 degrees and max_shift <= 4 pixels "
                             "(larger maps do not preserve the digit's label)")

    def to_dict(self) -> dict:
        """JSON-friendly dictionary."""
        return asdict(self)

    def member(self, i: int) -> _Member:
        """Configuration of member ``i`` (what its cache key hashes)."""
        if not 0 <= i < self.n_members:
            raise ValueError(f"member index must be in [0, {self.n_members}), got {i}")
        return _Member(self, i)


@dataclass(frozen=True)
class _Member:
    config: ProxyConfig
    index: int

    @property
    def seed(self) -> int:
        return self.config.seed + self.index

    def to_dict(self) -> dict:  # used by zoo.config_key: the training fields only
        train = {k: v for k, v in self.config.to_dict().items() if k not in PREDICTION_FIELDS}
        return {"proxy_format": PROXY_FORMAT, **train, "member": self.index,
                "arch": "proxy_cnn"}


#: ProxyConfig fields used only at prediction time (not in the members' cache keys).
PREDICTION_FIELDS = ("ink_threshold",)


#: Registered proxies. ``proxy`` is the validated ensemble used in reports;
#: ``proxy-tiny`` (800 images, one epoch, 2 members) only exercises the pipeline.
PROXY_CONFIGS: dict[str, ProxyConfig] = {
    c.name: c
    for c in [
        ProxyConfig("proxy", n_members=4, width=16, epochs=3, budget_minutes=15,
                    ink_threshold=0.4),
        # The main run's proxy: half the ensemble, two epochs (about a quarter of the cost);
        # its agreement with the human labels is measured in every report.
        ProxyConfig("proxy-small", n_members=2, width=16, epochs=2, budget_minutes=3,
                    ink_threshold=0.4),
        ProxyConfig("proxy-tiny", n_members=2, width=4, n_train=800, epochs=1, batch_size=10,
                    lr=3e-3, budget_minutes=0.5, ink_threshold=0.4),
    ]
}


def _get_config(config: ProxyConfig | str) -> ProxyConfig:
    if isinstance(config, ProxyConfig):
        return config
    if config not in PROXY_CONFIGS:
        raise ValueError(f"unknown proxy {config!r}; registered: {', '.join(PROXY_CONFIGS)}")
    return PROXY_CONFIGS[config]


# --------------------------------------------------------------------------- network
def build_proxy_cnn(width: int = 16, n_classes: int = 10, seed: int = 0) -> Any:
    """``proxy_cnn``: conv3x3(w)-ReLU-maxpool, conv3x3(2w)-ReLU-maxpool, dense 128, dense 10.

    An architecture no zoo model uses (max pooling, 3x3 kernels); initialised from
    ``seed`` without touching the global RNG.
    """
    require_torch()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * 7 * 7, 128), nn.ReLU(),
            nn.Linear(128, n_classes),
        )


# --------------------------------------------------------------------------- augmentation
def _gaussian_kernel(sigma: float) -> Any:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def augment(x: Any, config: ProxyConfig, generator: Any) -> Any:
    """Label-preserving random deformation of a batch ``x`` of shape ``(n, 1, 28, 28)``.

    A random affine map (rotation, isotropic scaling, translation) composed with an
    elastic displacement field, applied by bilinear resampling
    (``torch.nn.functional.grid_sample``, zero padding). All randomness comes from
    ``generator``: the same generator state gives the same output.
    """
    n, _, h, w = x.shape

    def uniform(*shape: int) -> Any:
        return torch.rand(*shape, generator=generator) * 2 - 1

    angle = uniform(n) * math.radians(config.max_rotation)
    scale = 1 + uniform(n) * config.max_scale
    shift = uniform(n, 2) * config.max_shift * 2 / w  # pixels -> normalised coordinates
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if config.elastic_alpha > 0:
        field = uniform(n * 2, 1, h, w)
        k = _gaussian_kernel(config.elastic_sigma)
        pad = k.numel() // 2
        field = F.conv2d(F.pad(field, (pad, pad, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        field = F.conv2d(F.pad(field, (0, 0, pad, pad), mode="reflect"), k.view(1, 1, -1, 1))
        # Normalise so the largest displacement in the batch is elastic_alpha pixels.
        field = field / field.abs().amax().clamp_min(1e-12) * config.elastic_alpha * 2 / w
        grid = grid + field.view(n, 2, h, w).permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# --------------------------------------------------------------------------- ensemble
class ProxyLabeller:
    """The proxy: mean softmax of the members; ``predict`` is its argmax.

    It follows the model adapter interface (:class:`simulations.models.adapters.ModelAdapter`:
    float32 ``(n, 1, 28, 28)`` in ``[0, 1]``) so it can label anything a model can, and
    :meth:`label_images` accepts uint8 ``(n, 28, 28)`` images.
    """

    n_classes = 10

    def __init__(self, members: list[Any], config: ProxyConfig, metrics: list[dict] | None = None,
                 keys: list[str] | None = None) -> None:
        if not members:
            raise ValueError("members must hold at least one network")
        self.members = [PyTorchModel(m.eval(), name=f"{config.name}[{i}]")
                        for i, m in enumerate(members)]
        self.config = config
        self.name = config.name
        self.metrics = metrics or []
        self.keys = keys or []

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Mean of the members' softmax probabilities, shape ``(n, 10)``."""
        t = self.config.ink_threshold
        if t < 1:
            x = np.clip(np.asarray(x, dtype=np.float32) / np.float32(t), 0, 1)
        probs = []
        for m in self.members:
            z = m.logits(x)
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            probs.append(e / e.sum(axis=1, keepdims=True))
        return np.mean(probs, axis=0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Proxy labels (argmax of :meth:`predict_proba`), int64 ``(n,)``."""
        return self.predict_proba(x).argmax(axis=1).astype(np.int64)

    def label_images(self, images: np.ndarray) -> np.ndarray:
        """Proxy labels of uint8 ``(n, 28, 28)`` images (or floats in [0, 1])."""
        return self.predict(to_model_input(images, "images"))

    def __repr__(self) -> str:
        return f"ProxyLabeller({self.name!r}, {len(self.members)} members)"


def _train_member(member: _Member, images: np.ndarray, labels: np.ndarray,
                  progress: bool, on_epoch: Any = None) -> tuple[Any, dict]:
    from tqdm.auto import tqdm

    cfg = member.config
    x_all, y_all = training_tensors(images, labels)
    n = x_all.shape[0]
    net = build_proxy_cnn(cfg.width, seed=member.seed)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(member.seed)
    start = time.perf_counter()
    history = []
    net.train()
    for epoch in range(cfg.epochs):
        lr = cfg.lr * (0.1 if cfg.epochs >= 2 and epoch == cfg.epochs - 1 else 1.0)
        for group in opt.param_groups:
            group["lr"] = lr
        perm = torch.randperm(n, generator=gen)
        total, correct, count = 0.0, 0, 0
        bar = tqdm(range(0, n, cfg.batch_size), disable=not progress, leave=False,
                   desc=f"{cfg.name} member {member.index + 1}/{cfg.n_members} "
                        f"epoch {epoch + 1}/{cfg.epochs}")
        for s in bar:
            idx = perm[s:s + cfg.batch_size]
            xb = augment(x_all[idx], cfg, gen)
            logits = net(xb)
            loss = F.cross_entropy(logits, y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y_all[idx]).sum())
            count += len(idx)
        if on_epoch is not None:
            on_epoch(epoch + 1, cfg.epochs)
        history.append({"epoch": epoch + 1, "loss": total / count,
                        "augmented_train_accuracy": correct / count, "lr": lr})
    net.eval()
    return net, {"train_seconds": time.perf_counter() - start, "history": history,
                 "torch_threads": torch.get_num_threads()}


def _member_file(config: ProxyConfig, i: int, fingerprint: str,
                 cache_dir: str | os.PathLike | None) -> tuple[Path, str]:
    key = config_key(config.member(i), fingerprint)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return cache / f"{config.name}-m{i}-{key}.pt", key


def train_proxy_member(config: ProxyConfig | str, i: int, images: np.ndarray,
                       labels: np.ndarray, *, cache_dir: str | os.PathLike | None = None,
                       progress: bool = False, on_epoch: Any = None
                       ) -> tuple[Any, dict, str]:
    """Member ``i`` of ``config``: loaded from the cache, or trained and saved there.

    Returns ``(net, metrics, key)``; ``metrics["loaded_from_cache"]`` says which.
    ``on_epoch(epoch, epochs)`` is called after each training epoch.
    """
    require_torch()
    config = _get_config(config)
    # select_training wants a zoo TrainConfig only for n_train and the name.
    images, labels = select_training(_Selector(config.name, config.n_train), images, labels)
    path, key = _member_file(config, i, data_fingerprint(images, labels), cache_dir)
    member = config.member(i)
    if path.exists():
        net, metrics = _load_member(path, key, config, member)
        return net, metrics, key
    net, m = _train_member(member, images, labels, progress, on_epoch)
    payload = {"format": PROXY_FORMAT, "key": key, "config": member.to_dict(),
               "metrics": m, "state_dict": net.state_dict()}
    save_torch_file(path, payload)
    return net, dict(m, loaded_from_cache=False), key


#: How to rebuild a damaged proxy member (said in every error about one).
MEMBER_REMEDY = "delete it and rerun to retrain the member"


def _load_member(path: Path, key: str, config: ProxyConfig, member: _Member
                 ) -> tuple[Any, dict]:
    """A cached member's network and metrics, checked
    (:mod:`~invariance_tradeoffs.simulations.models.cache`)."""
    what = "proxy member file"
    blob = load_torch_file(path, what=what, remedy=MEMBER_REMEDY,
                           required=("format", "key", "metrics", "state_dict"))
    if blob["key"] != key or blob["format"] != PROXY_FORMAT:
        raise CorruptFileError(path, f"key/format {blob['key']}/{blob['format']}, expected "
                               f"{key}/{PROXY_FORMAT}", MEMBER_REMEDY, what=what)
    if not isinstance(blob["metrics"], dict):
        raise CorruptFileError(path, "its metrics are not a dictionary", MEMBER_REMEDY,
                               what=what)
    net = build_proxy_cnn(config.width, seed=member.seed)
    load_weights(net, blob["state_dict"], path, what=what, remedy=MEMBER_REMEDY)
    adopt(path, what)
    return net.eval(), dict(blob["metrics"], loaded_from_cache=True)


def proxy_member_cached(config: ProxyConfig | str, i: int, images: np.ndarray,
                        labels: np.ndarray, *, cache_dir: str | os.PathLike | None = None
                        ) -> bool:
    """Whether member ``i`` of ``config`` is in the cache (nothing is loaded)."""
    config = _get_config(config)
    images, labels = select_training(_Selector(config.name, config.n_train), images, labels)
    return _member_file(config, i, data_fingerprint(images, labels), cache_dir)[0].exists()


def train_proxy(config: ProxyConfig | str, images: np.ndarray, labels: np.ndarray, *,
                cache_dir: str | os.PathLike | None = None,
                progress: bool = False) -> ProxyLabeller:
    """Train (or load from the cache) every member of ``config`` on MNIST-train.

    Members are saved one by one (``<name>-m<i>-<key>.pt``), so an interrupted run
    resumes at the first missing member; a cached member is never retrained.
    """
    config = _get_config(config)
    nets, metrics, keys = [], [], []
    for i in range(config.n_members):
        net, m, key = train_proxy_member(config, i, images, labels, cache_dir=cache_dir,
                                         progress=progress)
        nets.append(net)
        metrics.append(m)
        keys.append(key)
    return ProxyLabeller(nets, config, metrics, keys)


@dataclass(frozen=True)
class _Selector:  # the two fields zoo.select_training reads
    name: str
    n_train: int | None


def load_or_train_proxy(config: ProxyConfig | str = "proxy", *,
                        data_dir: str | os.PathLike | None = None,
                        cache_dir: str | os.PathLike | None = None,
                        progress: bool = False) -> ProxyLabeller:
    """The proxy ``config`` trained on MNIST-train (found with ``data_dir``), cached."""
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    train = load_mnist("train", data_dir)
    return train_proxy(config, train.images, train.labels, cache_dir=cache_dir,
                       progress=progress)


def with_overrides(config: ProxyConfig | str, **overrides: Any) -> ProxyConfig:
    """A copy of a registered proxy configuration with some fields changed."""
    return replace(_get_config(config), **overrides)

"""An analysis-by-synthesis judge: one small VAE per class, with a reject label.

Schott, Rauber, Bethge and Brendel (ICLR 2019, "Towards the first adversarially robust
neural network model on MNIST") classify an image by *which class-conditional generative
model explains it best*: one variational autoencoder (VAE) per digit class, each scoring
the image by a lower bound on its log-likelihood. This module builds that reader as a
stand-in for the human who labels invariance examples (the oracle of Tramer et al., ICML
2020), with the oracle's :data:`~invariance_tradeoffs.theory.oracles.REJECT` label for
images no class explains well.

Scoring. Class ``c``'s VAE (:func:`build_class_vae`: an MLP encoder to a ``latent``-
dimensional diagonal Gaussian, an MLP decoder to Bernoulli pixel probabilities; grey
values are the Bernoulli targets) gives the importance-weighted bound (Burda et al.,
2016) with ``n_samples`` samples

``log p_c(x) >= log (1/K) sum_k p_c(x | z_k) p(z_k) / q_c(z_k | x)``, ``z_k = mu + sigma eps_k``.

The noise ``eps_1..eps_K`` is drawn once from the configuration's seed and shared by
every image and class (common random numbers), so an image's score does not depend on
the batch it is scored in: same image, same bound. ``K = 1`` is the ordinary ELBO.

Decision (nothing here sees a human label):

- ``predict``: the class ``c*`` with the largest bound, or ``REJECT`` when that bound is
  below the class's **reject threshold** ``t_c*`` -- the ``reject_quantile`` quantile of
  the bounds that *held-out MNIST training images of class c** get from their own
  class's VAE (images the VAEs were not trained on) -- or when the image's ink (sum of
  pixel values) is below the same quantile of those images' ink (a likelihood alone
  calls a blank image a typical 1). With the default 0.005, about 1% of ordinary
  held-out digits are rejected, by construction;
- ``predict_proba``: ``softmax(bounds / T)``, the temperature ``T`` chosen to minimise
  the cross-entropy of the held-out training labels (a grid of :data:`TEMPERATURES`);
- as a :data:`~invariance_tradeoffs.simulations.attacks.l0.judges.Judge`, the judge
  returns ``predict_proba`` with the rows of rejected images set to zero (read as no
  class).

Caching follows the proxy (:mod:`invariance_tradeoffs.simulations.models.proxy`): each
class VAE is a ``torch.save`` of its ``state_dict`` under a key hashing the training
fields of the configuration, the class and the training data, loaded with
``weights_only=True`` and checked against its SHA256 record
(:mod:`invariance_tradeoffs.simulations.models.cache`); an interrupted training resumes at
the first missing class. The calibration (thresholds and temperature) is recomputed from
the held-out images at every load: it takes about a second.

Examples
--------
>>> from invariance_tradeoffs.simulations.data.mnist import load_mnist
>>> train = load_mnist("train")                                            # doctest: +SKIP
>>> judge = train_abs("abs-tiny", train.images, train.labels)              # doctest: +SKIP
>>> judge.predict(train.images[-3:]), judge.predict(np.zeros((1, 28, 28))) # doctest: +SKIP
(array([5, 6, 8]), array([-1]))
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from invariance_tradeoffs.simulations.images import as_unit_images
from invariance_tradeoffs.simulations.io import CorruptFileError
from invariance_tradeoffs.simulations.models.cache import (
    adopt,
    load_torch_file,
    load_weights,
    save_torch_file,
)
from invariance_tradeoffs.simulations.models.zoo import (
    config_key,
    data_fingerprint,
    default_cache_dir,
)
from invariance_tradeoffs.simulations.optional import F, nn, require_torch, torch
from invariance_tradeoffs.theory.oracles import REJECT
from invariance_tradeoffs.theory.validation import as_labels, check_int

__all__ = ["ABS_CONFIGS", "ABS_FORMAT", "ABSConfig", "ABSJudge", "TEMPERATURES",
           "build_class_vae", "get_abs_config", "split_training",
           "train_abs", "with_overrides"]

#: Bumped whenever training changes results; part of every class VAE's cache key.
ABS_FORMAT = 1
#: Temperatures (nats) tried for ``predict_proba`` on the held-out training images.
TEMPERATURES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
#: ABSConfig fields used only when scoring (not in the class VAEs' cache keys).
SCORING_FIELDS = ("n_samples", "reject_quantile", "ink_threshold", "budget_minutes")


@dataclass(frozen=True)
class ABSConfig:
    """Everything that determines the judge (training fields enter the cache keys).

    Attributes
    ----------
    name : str
    latent, hidden : int
        Latent dimension and hidden width of each class's MLP VAE.
    n_train : int or None
        First ``n_train`` MNIST training images the VAEs are fitted on (``None``: all
        but the held-out ones).
    n_holdout : int
        The *last* ``n_holdout`` training images: never trained on, used only to
        calibrate the reject thresholds and the temperature.
    epochs, batch_size, lr : Adam optimisation of each class VAE.
    seed : int
        Class ``c`` initialises and shuffles with ``seed + c``; the scoring noise uses
        ``seed``.
    n_samples : int
        Importance samples ``K`` of the bound (1: the ELBO).
    reject_quantile : float in [0, 0.5)
        Quantile of the held-out own-class bounds (and ink) below which an image is
        rejected.
    ink_threshold : float in (0, 1]
        Scoring only: images are scored as ``clip(x / ink_threshold, 0, 1)``, so a grey
        stroke of that intensity counts as full ink (as for the proxy,
        :class:`~invariance_tradeoffs.simulations.models.proxy.ProxyConfig`).
    budget_minutes : float or None
        Designed wall-clock training budget on 2 CPU cores (recorded, never enforced).
    """

    name: str
    latent: int = 8
    hidden: int = 256
    n_train: int | None = None
    n_holdout: int = 5000
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 2000
    n_samples: int = 8
    reject_quantile: float = 0.005
    ink_threshold: float = 1.0
    budget_minutes: float | None = None

    def __post_init__(self) -> None:
        for name in ("latent", "hidden", "n_holdout", "epochs", "batch_size", "n_samples"):
            check_int(getattr(self, name), name, low=1)
        if self.n_train is not None:
            check_int(self.n_train, "n_train", low=10)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be finite and > 0, got {self.lr}")
        if not 0 <= self.reject_quantile < 0.5:
            raise ValueError(f"reject_quantile must be in [0, 0.5), got {self.reject_quantile}")
        if not 0 < self.ink_threshold <= 1:
            raise ValueError(f"ink_threshold must be in (0, 1], got {self.ink_threshold}")

    def to_dict(self) -> dict:
        """JSON-friendly dictionary."""
        return asdict(self)

    def training_dict(self, cls: int) -> dict:
        """What the cache key of class ``cls``'s VAE hashes."""
        train = {k: v for k, v in self.to_dict().items()
                 if k not in SCORING_FIELDS and k != "name"}
        return {"abs_format": ABS_FORMAT, **train, "class": int(cls), "arch": "mlp_vae"}


#: Registered judges: ``abs`` is the validated one; ``abs-tiny`` (1000 training and 500
#: held-out images) only exercises the pipeline in tests and ``--quick`` runs.
ABS_CONFIGS: dict[str, ABSConfig] = {
    c.name: c
    for c in [
        ABSConfig("abs", budget_minutes=5),
        ABSConfig("abs-tiny", latent=4, hidden=64, n_train=1000, n_holdout=500, epochs=10,
                  batch_size=32, lr=3e-3, n_samples=2, budget_minutes=0.2),
    ]
}


def get_abs_config(config: ABSConfig | str) -> ABSConfig:
    """A registered configuration by name (or ``config`` itself)."""
    if isinstance(config, ABSConfig):
        return config
    if config not in ABS_CONFIGS:
        raise ValueError(f"unknown ABS judge {config!r}; registered: {', '.join(ABS_CONFIGS)}")
    return ABS_CONFIGS[config]


# --------------------------------------------------------------------------- network
def build_class_vae(hidden: int = 256, latent: int = 8, seed: int = 0) -> Any:
    """One class's VAE: encoder 784-hidden-(2 x latent), decoder latent-hidden-784 logits.

    Initialised from ``seed`` without touching the global RNG.
    """
    require_torch()

    class ClassVAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(),
                                         nn.Linear(hidden, hidden), nn.ReLU(),
                                         nn.Linear(hidden, 2 * latent))
            self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(),
                                         nn.Linear(hidden, hidden), nn.ReLU(),
                                         nn.Linear(hidden, 784))

        def log_bound(self, x: Any, eps: Any) -> Any:
            """Importance-weighted bound ``(n,)`` of flat images ``x (n, 784)`` with the
            standard-normal noise ``eps (K, latent)`` (shared by all images)."""
            mu, logvar = self.encoder(x).chunk(2, dim=1)
            std = torch.exp(0.5 * logvar)
            z = mu[None] + std[None] * eps[:, None, :]  # (K, n, latent)
            logits = self.decoder(z)
            log_px = -F.binary_cross_entropy_with_logits(
                logits, x.expand_as(logits), reduction="none").sum(-1)
            log_pz = -0.5 * (z ** 2).sum(-1)
            log_qz = -0.5 * (eps ** 2).sum(-1)[:, None] - 0.5 * logvar.sum(-1)[None]
            w = log_px + log_pz - log_qz  # the 2*pi terms cancel
            return torch.logsumexp(w, dim=0) - math.log(eps.shape[0])

        def elbo(self, x: Any, gen: Any) -> Any:
            mu, logvar = self.encoder(x).chunk(2, dim=1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
            rec = F.binary_cross_entropy_with_logits(self.decoder(z), x,
                                                     reduction="none").sum(-1)
            kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(-1)
            return -(rec + kl)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return ClassVAE()


# --------------------------------------------------------------------------- judge
class ABSJudge:
    """Analysis-by-synthesis reader of MNIST digits with a reject label.

    Parameters
    ----------
    vaes : list of 10 ClassVAE
        Class ``c``'s VAE at position ``c``.
    config : ABSConfig
    holdout_images, holdout_labels : arrays
        Held-out MNIST *training* images (never trained on) that calibrate the reject
        thresholds and the temperature.
    metrics : list of dict, optional
        Training metrics per class (recorded in reports).
    chunk : int
        Images scored per forward pass (bounds memory).
    """

    n_classes = 10

    def __init__(self, vaes: list[Any], config: ABSConfig, holdout_images: np.ndarray,
                 holdout_labels: np.ndarray, metrics: list[dict] | None = None,
                 chunk: int = 512) -> None:
        require_torch()
        if len(vaes) != self.n_classes:
            raise ValueError(f"vaes must hold {self.n_classes} class VAEs, got {len(vaes)}")
        self.vaes = [v.eval() for v in vaes]
        self.config = config
        self.name = config.name
        self.metrics = metrics or []
        self.chunk = int(chunk)
        gen = torch.Generator().manual_seed(config.seed)
        self._eps = torch.randn((config.n_samples, config.latent), generator=gen)
        self.calibrate(holdout_images, holdout_labels)

    # -- scoring ---------------------------------------------------------------------
    def log_bounds(self, images: np.ndarray) -> np.ndarray:
        """Lower bounds on ``log p_c(image)`` (nats), shape ``(n, 10)``.

        ``images``: ``(n, 28, 28)`` or ``(n, 1, 28, 28)``, uint8 or floats in [0, 1].
        """
        x = self._scored(images)
        out = np.empty((len(x), self.n_classes))
        flat = torch.from_numpy(np.ascontiguousarray(x.reshape(len(x), -1)))
        with torch.no_grad():
            for s in range(0, len(x), self.chunk):
                xb = flat[s:s + self.chunk]
                for c, vae in enumerate(self.vaes):
                    out[s:s + len(xb), c] = vae.log_bound(xb, self._eps).numpy()
        return out

    def _scored(self, images: np.ndarray) -> np.ndarray:
        """Images as scored: unit floats, ``clip(x / ink_threshold, 0, 1)``."""
        x = as_unit_images(images, "images", dtype=np.float32, allow_empty=True)
        t = self.config.ink_threshold
        return x if t == 1 else np.clip(x / np.float32(t), 0, 1)

    def ink(self, images: np.ndarray) -> np.ndarray:
        """Ink of each image as scored (sum of pixel values), ``(n,)``."""
        return self._scored(images).reshape(len(images), -1).sum(axis=1, dtype=np.float64)

    def calibrate(self, images: np.ndarray, labels: np.ndarray) -> None:
        """Reject thresholds and temperature from held-out *training* images.

        ``thresholds[c]``: the ``reject_quantile`` quantile of the bounds class-``c``
        held-out images get from VAE ``c``; ``temperature``: the value of
        :data:`TEMPERATURES` minimising their cross-entropy under ``softmax(bounds/T)``.
        """
        images = as_unit_images(images, "holdout_images")
        labels = as_labels(labels, "holdout_labels", n_classes=10, allow_reject=False,
                           length=len(images))
        missing = sorted(set(range(self.n_classes)) - set(np.unique(labels).tolist()))
        if missing:
            raise ValueError(f"holdout_labels must include every class; missing {missing}")
        bounds = self.log_bounds(images)
        own = bounds[np.arange(len(labels)), labels]
        q = self.config.reject_quantile
        self.thresholds = np.array([np.quantile(own[labels == c], q)
                                    for c in range(self.n_classes)])
        ink = self.ink(images)
        self.min_ink = np.array([np.quantile(ink[labels == c], q) for c in range(self.n_classes)])
        nll = [float(-_log_softmax(bounds / t)[np.arange(len(labels)), labels].mean())
               for t in TEMPERATURES]
        self.temperature = float(TEMPERATURES[int(np.argmin(nll))])
        pred = bounds.argmax(axis=1)
        self.calibration = {
            "n_holdout": len(labels),
            "holdout_accuracy": float(np.mean(pred == labels)),
            "holdout_reject_rate": float(np.mean(~self._accepted(bounds, ink))),
            "thresholds": self.thresholds.tolist(),
            "min_ink": self.min_ink.tolist(),
            "temperature": self.temperature,
            "rule": (f"reject when the best class's bound, or the image's ink, is below "
                     f"the {q:g} quantile of the same quantity over that class's held-out "
                     "training images (bounds under their own class's VAE)"),
        }

    def _accepted(self, bounds: np.ndarray, ink: np.ndarray) -> np.ndarray:
        """A likelihood can call a blank image a typical 1 (simple images are likely
        under every model); the ink test rejects it."""
        best = bounds.argmax(axis=1)
        return ((bounds[np.arange(len(bounds)), best] >= self.thresholds[best])
                & (ink >= self.min_ink[best]))

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """``softmax(bounds / temperature)``, shape ``(n, 10)`` (rows sum to 1)."""
        return np.exp(_log_softmax(self.log_bounds(images) / self.temperature))

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The best-explaining class, or ``REJECT`` (-1) when it explains the image worse
        than its reject threshold; int64 ``(n,)``."""
        bounds = self.log_bounds(images)
        ok = self._accepted(bounds, self.ink(images))
        return np.where(ok, bounds.argmax(axis=1), REJECT).astype(np.int64)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """As a judge: :meth:`predict_proba` with rejected images' rows set to zero."""
        bounds = self.log_bounds(images)
        probs = np.exp(_log_softmax(bounds / self.temperature))
        probs[~self._accepted(bounds, self.ink(images))] = 0.0
        return probs

    def label_images(self, images: np.ndarray) -> np.ndarray:
        """Alias of :meth:`predict` (the labeller interface of the proxy)."""
        return self.predict(images)

    def __repr__(self) -> str:
        return (f"ABSJudge({self.name!r}, K={self.config.n_samples}, "
                f"reject_quantile={self.config.reject_quantile:g})")


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


# --------------------------------------------------------------------------- training
def split_training(config: ABSConfig, images: np.ndarray, labels: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_images, train_labels, holdout_images, holdout_labels)``: the last
    ``n_holdout`` images are held out; the VAEs see the first ``n_train`` of the rest."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 of shape (n, 28, 28), got {images.dtype} {images.shape}")
    labels = as_labels(labels, "labels", n_classes=10, length=len(images), allow_reject=False)
    n_fit = len(images) - config.n_holdout
    if config.n_train is not None:
        n_fit = min(n_fit, config.n_train)
    if n_fit < 10:
        raise ValueError(f"config {config.name!r} holds out {config.n_holdout} of "
                         f"{len(images)} images, leaving {n_fit} to train on (need >= 10)")
    hold = slice(len(images) - config.n_holdout, None)
    return images[:n_fit], labels[:n_fit], images[hold], labels[hold]


def _train_class(config: ABSConfig, cls: int, images: np.ndarray) -> tuple[Any, dict]:
    seed = config.seed + cls
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    net = build_class_vae(config.hidden, config.latent, seed=seed)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    history = []
    net.train()
    for epoch in range(config.epochs):
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for s in range(0, len(x), config.batch_size):
            xb = x[perm[s:s + config.batch_size]]
            loss = -net.elbo(xb, gen).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(xb)
        history.append({"epoch": epoch + 1, "neg_elbo": total / len(x)})
    net.eval()
    return net, {"class": cls, "n_train": len(x), "train_seconds": time.perf_counter() - start,
                 "history": history, "torch_threads": torch.get_num_threads()}


#: How to rebuild a damaged class VAE (said in every error about one).
VAE_REMEDY = "delete it and rerun to retrain that class's VAE"


def _class_file(config: ABSConfig, cls: int, fingerprint: str,
                cache_dir: str | os.PathLike | None) -> tuple[Path, str]:
    key = config_key(_KeyOf(config.training_dict(cls)), fingerprint)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return cache / f"{config.name}-c{cls}-{key}.pt", key


@dataclass(frozen=True)
class _KeyOf:  # what zoo.config_key reads: to_dict() (and no method)
    content: dict

    def to_dict(self) -> dict:
        return dict(self.content)


def _load_class(path: Path, key: str, config: ABSConfig, cls: int) -> tuple[Any, dict]:
    what = "ABS class VAE file"
    blob = load_torch_file(path, what=what, remedy=VAE_REMEDY,
                           required=("format", "key", "metrics", "state_dict"))
    if blob["key"] != key or blob["format"] != ABS_FORMAT:
        raise CorruptFileError(path, f"key/format {blob['key']}/{blob['format']}, expected "
                               f"{key}/{ABS_FORMAT}", VAE_REMEDY, what=what)
    net = build_class_vae(config.hidden, config.latent, seed=config.seed + cls)
    load_weights(net, blob["state_dict"], path, what=what, remedy=VAE_REMEDY)
    adopt(path, what)
    return net.eval(), dict(blob["metrics"], loaded_from_cache=True)


def train_abs(config: ABSConfig | str, images: np.ndarray, labels: np.ndarray, *,
              cache_dir: str | os.PathLike | None = None,
              progress: bool = False) -> ABSJudge:
    """Train (or load from the cache) the ten class VAEs of ``config`` and calibrate.

    ``images`` / ``labels``: MNIST training images (uint8) and labels; the split is
    :func:`split_training`. Each class VAE is saved as soon as it is trained
    (``<name>-c<k>-<key>.pt``), so an interrupted run resumes; a cached one is never
    retrained.
    """
    from tqdm.auto import tqdm

    require_torch()
    config = get_abs_config(config)
    x, y, hold_x, hold_y = split_training(config, images, labels)
    fingerprint = data_fingerprint(x, y)
    vaes, metrics = [], []
    for cls in tqdm(range(10), disable=not progress, desc=f"{config.name} class VAEs"):
        own = x[y == cls]
        if len(own) == 0:
            raise ValueError(f"no training image of class {cls} in the first {len(x)}")
        path, key = _class_file(config, cls, fingerprint, cache_dir)
        if path.exists():
            net, m = _load_class(path, key, config, cls)
        else:
            net, m = _train_class(config, cls, own)
            save_torch_file(path, {"format": ABS_FORMAT, "key": key,
                                   "config": config.training_dict(cls), "metrics": m,
                                   "state_dict": net.state_dict()})
            m = dict(m, loaded_from_cache=False)
        vaes.append(net)
        metrics.append(m)
    return ABSJudge(vaes, config, hold_x, hold_y, metrics)


def with_overrides(config: ABSConfig | str, **overrides: Any) -> ABSConfig:
    """A copy of a registered configuration with some fields changed."""
    return replace(get_abs_config(config), **overrides)

"""The MNIST model zoo: training configurations, training loops and a model cache.

Methods (``TrainConfig.method``):

- ``"standard"`` -- cross-entropy training of a CNN (the undefended model).
- ``"pgd"`` -- l-inf PGD adversarial training (Madry et al., 2018): each batch is
  replaced by PGD examples at the current radius; the radius ramps up linearly.
- ``"ibp"`` -- certified training with interval bound propagation (Gowal et al.,
  2018): loss ``kappa * CE(z) + (1 - kappa) * CE(z_hat)`` where ``z_hat`` are the IBP
  worst-case margins; after a warm-up at eps = 0, eps ramps linearly from 0 to the
  training radius while kappa ramps from 1 to ``kappa_final``.
- ``"logreg"`` -- multinomial logistic regression (scikit-learn), a linear model.
- ``"robust_linear"`` -- the linear model minimising the *exact* worst-case
  cross-entropy over ``B(x, eps) ∩ [0,1]^784`` (closed form, convex; L-BFGS).
- ``"knn"`` -- k-nearest neighbours (scikit-learn) on raw pixels.

Trained models are cached under a key that hashes the full configuration, the
training data and the zoo's format version; a cache hit loads and never retrains.
Networks are saved with ``torch.save`` as a dict of the ``state_dict``, the
configuration and the training metrics and loaded with ``torch.load(...,
weights_only=True)``; numpy models are saved as ``.npz`` and loaded with
``allow_pickle=False``. Files are written atomically, each with an integrity record
(SHA256 of its bytes, :mod:`invariance_tradeoffs.simulations.models.cache`) checked on
load together with finite weights and the architecture; a damaged entry is refused
with a one-line error naming it (delete it and rerun with ``--train``). A long torch
run checkpoints after every epoch and resumes from the checkpoint.

Examples
--------
>>> from invariance_tradeoffs.simulations.models.zoo import get_config, load_or_train
>>> trained = load_or_train("tiny-standard")          # doctest: +SKIP
>>> trained.model.predict(x)                           # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from invariance_tradeoffs.simulations.io import (
    CorruptFileError,
    hash_arrays,
    remove_with_record,
)
from invariance_tradeoffs.simulations.models.adapters import (
    LinearModel,
    ModelAdapter,
    PyTorchModel,
)
from invariance_tradeoffs.simulations.models.architectures import build_architecture
from invariance_tradeoffs.simulations.models.cache import (
    adopt,
    load_npz_file,
    load_torch_file,
    load_weights,
    nonfinite,
    save_npz_file,
    save_torch_file,
)
from invariance_tradeoffs.simulations.models.configs import (
    CONFIGS,
    IBP_TRAINING_RADII,
    METHODS,
    PGD_TRAINING_RADII,
    TORCH_METHODS,
    TrainConfig,
    get_config,
)
from invariance_tradeoffs.simulations.models.robust_linear import (
    fit_robust_multiclass_linear,
    robust_linear_loss,
)
from invariance_tradeoffs.simulations.models.training import (
    check_budget,
    eps_schedule,
    estimate_train_seconds,
    knn_model,
    select_training,
    train_numpy,
    train_torch,
)
from invariance_tradeoffs.simulations.optional import require_torch

__all__ = [
    "ZOO_FORMAT",
    "METHODS",
    "TORCH_METHODS",
    "PGD_TRAINING_RADII",
    "IBP_TRAINING_RADII",
    "TrainConfig",
    "TrainedModel",
    "CONFIGS",
    "get_config",
    "config_key",
    "data_fingerprint",
    "default_cache_dir",
    "eps_schedule",
    "train",
    "load_or_train",
    "load_saved",
    "cached_path",
    "is_cached",
    "estimate_train_seconds",
    "fit_robust_multiclass_linear",
    "robust_linear_loss",
]

#: Bumped whenever training code changes in a way that changes results; part of the key.
ZOO_FORMAT = 1
#: Per-method training-code versions, also part of the key (a method missing here is at
#: version 1), so a change to one method's training does not invalidate the others'.
METHOD_VERSIONS = {"robust_linear": 2}  # 2: smoothed first stage (no stall at W = 0)
#: How to rebuild a damaged zoo file (said in every error about one).
REMEDY = "delete it and rerun (with --train) to retrain it"


# --------------------------------------------------------------------------- keys and files
def data_fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of the training images and labels (dtype, shape and bytes)."""
    return hash_arrays(images, labels)


def config_key(config: TrainConfig, fingerprint: str) -> str:
    """Cache key: hash of the zoo format, the full configuration and the data fingerprint."""
    cfg = config.to_dict()
    if cfg.get("lr_schedule") == "step":  # added later: keys of step-schedule configs stay
        del cfg["lr_schedule"]
    content = {"format": ZOO_FORMAT, "config": cfg, "data": fingerprint}
    version = METHOD_VERSIONS.get(getattr(config, "method", None), 1)
    if version != 1:  # keeps the keys of methods at version 1 unchanged
        content["method_version"] = version
    payload = json.dumps(content, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def default_cache_dir() -> Path:
    """``<pooch.os_cache("invariance-tradeoffs")>/models``."""
    from invariance_tradeoffs.simulations.data.mnist import cache_root

    return cache_root() / "models"


def _model_path(cache_dir: Path, config: TrainConfig, key: str) -> Path:
    suffix = ".pt" if config.method in TORCH_METHODS else ".npz"
    return cache_dir / f"{config.name}-{key}{suffix}"


@dataclass
class TrainedModel:
    """A trained zoo model: the adapter plus its provenance."""

    config: TrainConfig
    model: ModelAdapter
    metrics: dict
    key: str
    path: Path | None = None
    loaded_from_cache: bool = False
    extra: dict = field(default_factory=dict)


def train(config: TrainConfig, images: np.ndarray, labels: np.ndarray, *,
          cache_dir: str | os.PathLike | None = None, progress: bool = False,
          on_epoch: Callable[[int, int], None] | None = None,
          _stop_after_epochs: int | None = None) -> TrainedModel | None:
    """Train ``config`` on ``images``/``labels`` (uint8 ``(n,28,28)``, all of MNIST-train
    typically; the config's ``n_train`` selects a prefix), or load it from the cache.

    A file already in the cache under the same key is loaded, never retrained. The new
    model is saved there atomically. Torch runs checkpoint after every epoch and resume.
    """
    images, labels = select_training(config, images, labels)
    key = config_key(config, data_fingerprint(images, labels))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = _model_path(cache, config, key)
    if path.exists():
        return load_saved(path, expected_key=key)
    if config.method in TORCH_METHODS:
        require_torch()
        ckpt = path.with_suffix(".partial.pt")
        out = train_torch(config, images, labels, checkpoint=ckpt, progress=progress,
                           on_epoch=on_epoch, _stop_after_epochs=_stop_after_epochs)
        if out is None:
            return None
        net, metrics = out
        check_budget(config, metrics)
        _refuse_nonfinite(config, net.state_dict())
        payload = {"format": ZOO_FORMAT, "key": key, "config": config.to_dict(),
                   "metrics": metrics, "state_dict": net.state_dict()}
        save_torch_file(path, payload)
        remove_with_record(ckpt)
        model: ModelAdapter = PyTorchModel(net.eval(), name=config.name)
    else:
        model, metrics, arrays = train_numpy(config, images, labels)
        check_budget(config, metrics)
        _refuse_nonfinite(config, arrays)
        meta = json.dumps({"format": ZOO_FORMAT, "key": key, "config": config.to_dict(),
                           "metrics": metrics})
        save_npz_file(path, {"meta": np.array(meta), **arrays})
    return TrainedModel(config, model, metrics, key, path, loaded_from_cache=False)


def _refuse_nonfinite(config: TrainConfig, weights: dict) -> None:
    bad = nonfinite(weights)
    if bad:
        raise ValueError(f"training {config.name!r} diverged: non-finite weights in "
                         f"{', '.join(bad[:3])}; nothing was cached")


def load_saved(path: str | os.PathLike, expected_key: str | None = None) -> TrainedModel:
    """Load a model file written by :func:`train` (``.pt`` or ``.npz``), without pickle.

    The file is checked against its integrity record (SHA256 of its bytes), its weights
    must be finite and fit the architecture. A cache file without a record (cached by an
    older version) is accepted when it passes the other checks and, when
    ``expected_key`` is given (a cache load), its record is written then, with a warning.

    Raises
    ------
    CorruptFileError
        (a ``ValueError``) The file is damaged (bytes differ from the record, truncated,
        unreadable, non-finite or misfitting weights), is not a zoo model, has another
        format version, or its key differs from ``expected_key``; the message names the
        file and says how to rebuild it.
    FileNotFoundError
        ``path`` does not exist.
    """
    path = Path(path)
    if path.suffix == ".pt":
        blob = load_torch_file(path, what="model file", remedy=REMEDY,
                               required=("format", "key", "config", "metrics", "state_dict"))
        meta = {k: blob[k] for k in ("format", "key", "config", "metrics")}
    else:
        blob = load_npz_file(path, what="model file", remedy=REMEDY, required=("meta",))
        try:
            meta = json.loads(str(blob["meta"]))
            meta = {k: meta[k] for k in ("format", "key", "config", "metrics")}
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptFileError(path, f"its 'meta' entry is not a zoo record: {exc}",
                                   REMEDY, what="model file") from exc
    if meta["format"] != ZOO_FORMAT:
        raise CorruptFileError(path, f"format {meta['format']}, expected {ZOO_FORMAT}", REMEDY,
                               what="model file")
    if expected_key is not None and meta["key"] != expected_key:
        raise CorruptFileError(path, f"key {meta['key']}, expected {expected_key}", REMEDY,
                               what="model file")
    try:
        config = TrainConfig.from_dict(meta["config"], source=str(path))
        model = _model_from_blob(config, blob, path)
    except CorruptFileError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptFileError(path, str(exc), REMEDY, what="model file") from exc
    if expected_key is not None:
        adopt(path, "model file")
    return TrainedModel(config, model, meta["metrics"], meta["key"], path, loaded_from_cache=True)


def _model_from_blob(config: TrainConfig, blob: dict, path: Path) -> ModelAdapter:
    """The adapter of a loaded model file (weights already checked finite)."""
    if config.method in TORCH_METHODS:
        net = build_architecture(config.arch, seed=config.seed)
        load_weights(net, blob["state_dict"], path, what="model file", remedy=REMEDY)
        return PyTorchModel(net.eval(), name=config.name)
    if config.method == "knn":
        return knn_model(blob["train_images"], blob["train_labels"], config.k, config.name)
    return LinearModel(blob["weight"], blob["bias"], name=config.name)


def cached_path(config: TrainConfig, images: np.ndarray, labels: np.ndarray, *,
                cache_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Where ``config`` trained on ``images``/``labels`` is (or would be) cached, and its key."""
    key = config_key(config, data_fingerprint(*select_training(config, images, labels)))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _model_path(cache, config, key), key


def is_cached(config: TrainConfig, images: np.ndarray, labels: np.ndarray, *,
              cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether ``config`` trained on ``images``/``labels`` is in the cache."""
    return cached_path(config, images, labels, cache_dir=cache_dir)[0].exists()


def load_or_train(config: TrainConfig | str, *, data_dir: str | os.PathLike | None = None,
                  cache_dir: str | os.PathLike | None = None, train_if_missing: bool = True,
                  progress: bool = False) -> TrainedModel:
    """The trained model for ``config`` (a :class:`TrainConfig` or registry name).

    Loads MNIST-train with :func:`simulations.data.mnist.load_mnist` to compute the
    key. With ``train_if_missing=False`` a cache miss raises ``FileNotFoundError``.
    """
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    if isinstance(config, str):
        config = get_config(config)
    images, labels = load_mnist("train", data_dir)
    if not train_if_missing:
        path, key = cached_path(config, images, labels, cache_dir=cache_dir)
        if not path.exists():
            raise FileNotFoundError(
                f"model {config.name!r} is not trained (no {path}); train it first, e.g. with "
                "train_if_missing=True (command line: --train)")
        return load_saved(path, expected_key=key)
    out = train(config, images, labels, cache_dir=cache_dir, progress=progress)
    assert out is not None  # only _stop_after_epochs returns None
    return out



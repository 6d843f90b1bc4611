"""Training loops of the zoo: torch (standard, PGD, IBP) with checkpoints and resume, and
the numpy models (logistic regression, robust linear, k-NN)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from invariance_tradeoffs.simulations.io import (
    CorruptFileError,
    exception_reason,
    remove_with_record,
)
from invariance_tradeoffs.simulations.models.adapters import (
    N_PIXELS,
    LinearModel,
    ModelAdapter,
    NumpyModel,
)
from invariance_tradeoffs.simulations.models.architectures import build_architecture
from invariance_tradeoffs.simulations.models.cache import (
    load_torch_file,
    load_weights,
    save_torch_file,
)
from invariance_tradeoffs.simulations.models.configs import TORCH_METHODS, TrainConfig
from invariance_tradeoffs.simulations.models.robust_linear import (
    fit_robust_multiclass_linear,
    flat_unit,
)
from invariance_tradeoffs.simulations.optional import F, require_torch, torch
from invariance_tradeoffs.theory.validation import as_labels

__all__ = ["check_budget", "eps_schedule", "estimate_train_seconds", "knn_model",
           "select_training", "train_numpy", "train_step", "train_torch", "training_tensors"]


# --------------------------------------------------------------------------- schedules
def eps_schedule(step: int, total_steps: int, eps: float, warmup_fraction: float,
                 ramp_fraction: float) -> float:
    """Radius used at optimisation ``step``: 0 during warm-up, then linear up to ``eps``.

    Examples
    --------
    >>> [round(eps_schedule(s, 10, 0.4, 0.2, 0.5), 2) for s in (0, 1, 2, 3, 6, 9)]
    [0.0, 0.0, 0.08, 0.16, 0.4, 0.4]
    """
    warm = warmup_fraction * total_steps
    ramp = ramp_fraction * total_steps
    if step < warm:
        return 0.0
    if ramp <= 0:
        return float(eps)
    return float(eps * min(1.0, (step - warm + 1) / ramp))


# --------------------------------------------------------------------------- torch training
def training_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)).float().div_(255.0)
    return x.unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def train_step(net: Any, config: TrainConfig, xb: Any, yb: Any, eps_t: float,
                gen: Any) -> tuple[Any, Any]:
    """Loss of one batch for the config's method at radius ``eps_t``; also the clean logits."""
    from invariance_tradeoffs.simulations.attacks.pgd import (
        pgd,
        torch_loss_gradient,
        uniform_start,
    )
    from invariance_tradeoffs.simulations.certification import ibp_margin_upper

    if config.method == "pgd" and eps_t > 0:
        step_size = config.pgd_step_size * eps_t / config.eps
        x, y = xb.numpy(), yb.numpy()
        u = torch.rand(xb.shape, generator=gen, dtype=xb.dtype).numpy()
        adv = pgd(torch_loss_gradient(net), x, y, eps=eps_t, steps=config.pgd_steps,
                  step_size=step_size, start=uniform_start(x, eps_t, u))
        xb = torch.from_numpy(adv)
        logits = net(xb)
        return F.cross_entropy(logits, yb), logits
    logits = net(xb)
    loss = F.cross_entropy(logits, yb)
    if config.method == "ibp":
        progress = eps_t / config.eps if config.eps > 0 else 1.0
        kappa = 1.0 - (1.0 - config.kappa_final) * progress
        if kappa < 1.0:
            z_hat = ibp_margin_upper(net, xb, yb, eps_t)
            loss = kappa * loss + (1.0 - kappa) * F.cross_entropy(z_hat, yb)
    return loss, logits


def train_torch(config: TrainConfig, images: np.ndarray, labels: np.ndarray, *,
                 checkpoint: Path | None = None, progress: bool = False,
                 on_epoch: Callable[[int, int], None] | None = None,
                 _stop_after_epochs: int | None = None) -> tuple[Any, dict] | None:
    """Run the config's torch training; resume from ``checkpoint`` when it exists.

    A checkpoint that does not match its integrity record (or has none), does not load,
    or does not fit the run is discarded with a warning, and training starts again.

    Returns ``(net, metrics)``, or ``None`` when stopped early by ``_stop_after_epochs``
    (used to test resuming).
    """
    from tqdm.auto import tqdm

    x_all, y_all = training_tensors(images, labels)
    n = x_all.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = steps_per_epoch * config.epochs
    net, opt, sched, gen = _fresh_run(config, total)
    state: dict[str, Any] = {"epoch": 0, "elapsed": 0.0, "history": []}
    if checkpoint is not None and checkpoint.exists():
        try:
            state = _resume(checkpoint, config, net, opt, sched, gen)
        except Exception as exc:  # noqa: BLE001 - a damaged checkpoint only costs epochs
            reason = exc.reason if isinstance(exc, CorruptFileError) else exception_reason(exc)
            warnings.warn(f"discarding the training checkpoint {checkpoint} ({reason}); "
                          f"training {config.name!r} restarts from scratch", RuntimeWarning,
                          stacklevel=2)
            remove_with_record(checkpoint)
            # a failed resume may have loaded part of the state into the old objects
            net, opt, sched, gen = _fresh_run(config, total)
    net.train()
    for epoch in range(state["epoch"], config.epochs):
        start = time.perf_counter()
        if sched is None:
            lr = config.lr * 0.1 ** sum(epoch >= e for e in config.lr_decay_epochs)
            for group in opt.param_groups:
                group["lr"] = lr
        else:
            lr = opt.param_groups[0]["lr"]  # at the epoch's start
        perm = torch.randperm(n, generator=gen)
        loss_sum, correct = 0.0, 0
        bar = tqdm(range(steps_per_epoch), disable=not progress, leave=False,
                   desc=f"{config.name} epoch {epoch + 1}/{config.epochs}")
        for i in bar:
            idx = perm[i * config.batch_size:(i + 1) * config.batch_size]
            xb, yb = x_all[idx], y_all[idx]
            eps_t = eps_schedule(epoch * steps_per_epoch + i, total, config.eps,
                                 config.warmup_fraction, config.ramp_fraction)
            loss, logits = train_step(net, config, xb, yb, eps_t, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
        state["epoch"] = epoch + 1
        state["elapsed"] += time.perf_counter() - start
        state["history"].append({"epoch": epoch + 1, "loss": loss_sum / n,
                                 "train_accuracy": correct / n, "eps": eps_t, "lr": lr})
        if checkpoint is not None and state["epoch"] < config.epochs:
            ck = {"state_dict": net.state_dict(), "optimizer": opt.state_dict(),
                  "generator": gen.get_state(), **state}
            if sched is not None:
                ck["scheduler"] = sched.state_dict()
            save_torch_file(checkpoint, ck)
        if on_epoch is not None:
            on_epoch(state["epoch"], config.epochs)
        if _stop_after_epochs is not None and state["epoch"] >= _stop_after_epochs \
                and state["epoch"] < config.epochs:
            return None
    net.eval()
    metrics = {"train_seconds": state["elapsed"], "steps": total, "history": state["history"],
               "final_loss": state["history"][-1]["loss"],
               "final_train_accuracy": state["history"][-1]["train_accuracy"],
               "torch_threads": torch.get_num_threads()}
    return net, metrics


def _fresh_run(config: TrainConfig, total: int) -> tuple[Any, Any, Any, Any]:
    """Network, optimiser, learning-rate schedule (or None) and generator at step 0."""
    net = build_architecture(config.arch, seed=config.seed)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total,
                                                 pct_start=0.25)
             if config.lr_schedule == "onecycle" else None)
    return net, opt, sched, torch.Generator().manual_seed(config.seed)


def _resume(checkpoint: Path, config: TrainConfig, net: Any, opt: Any, sched: Any,
            gen: Any) -> dict[str, Any]:
    """Load a checkpoint written by :func:`train_torch` into the run's objects.

    The checkpoint must match its integrity record (one without a record is refused),
    hold finite weights that fit the architecture, and be of an unfinished run.
    """
    what = "training checkpoint"
    ck = load_torch_file(checkpoint, what=what, remedy="", require_record=True,
                         required=("state_dict", "optimizer", "generator", "epoch",
                                   "elapsed", "history"))
    load_weights(net, ck["state_dict"], checkpoint, what=what, remedy="")
    opt.load_state_dict(ck["optimizer"])
    if sched is not None:
        sched.load_state_dict(ck["scheduler"])
    gen.set_state(ck["generator"])
    state = {"epoch": int(ck["epoch"]), "elapsed": float(ck["elapsed"]),
             "history": list(ck["history"])}
    if not 0 < state["epoch"] < config.epochs or len(state["history"]) != state["epoch"]:
        raise ValueError(f"epoch {state['epoch']} of {config.epochs} with "
                         f"{len(state['history'])} epochs of history")
    return state


def knn_model(train_images: np.ndarray, train_labels: np.ndarray, k: int,
               name: str) -> NumpyModel:
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=k, algorithm="brute")
    knn.fit(flat_unit(train_images).astype(np.float32), train_labels.astype(np.int64))
    return NumpyModel(lambda x: knn.predict(x.reshape(x.shape[0], N_PIXELS)), name=name)


def train_numpy(config: TrainConfig, images: np.ndarray, labels: np.ndarray
                 ) -> tuple[ModelAdapter, dict, dict]:
    """Train a numpy model; return (adapter, metrics, arrays to save)."""
    start = time.perf_counter()
    if config.method == "knn":
        model = knn_model(images, labels, config.k, config.name)
        arrays = {"train_images": np.asarray(images, np.uint8),
                  "train_labels": np.asarray(labels, np.int64)}
        metrics: dict = {}
    elif config.method == "logreg":
        from sklearn.linear_model import LogisticRegression

        x = flat_unit(images)
        # sklearn minimises C * sum(loss) + ||W||^2 / 2, i.e. mean loss + ||W||^2 / (2 C n).
        clf = LogisticRegression(C=1.0 / (config.l2 * x.shape[0]), max_iter=config.max_iter)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clf.fit(x, labels)
        model = LinearModel(clf.coef_, clf.intercept_, name=config.name)
        arrays = {"weight": model.weight, "bias": model.bias}
        metrics = {"n_iter": int(np.max(clf.n_iter_)),
                   "converged": not any("converge" in str(w.message) for w in caught)}
    else:  # robust_linear
        model, metrics = fit_robust_multiclass_linear(images, labels, config.eps, l2=config.l2,
                                           max_iter=config.max_iter)
        model.name = config.name
        arrays = {"weight": model.weight, "bias": model.bias}
    metrics["train_seconds"] = time.perf_counter() - start
    if config.method != "knn":
        metrics["final_train_accuracy"] = float(np.mean(
            np.argmax(flat_unit(images) @ model.weight.T + model.bias, axis=1) == labels))
    return model, metrics, arrays


# --------------------------------------------------------------------------- public API
def select_training(config: TrainConfig, images: np.ndarray, labels: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 of shape (n, 28, 28), got {images.dtype} {images.shape}")
    labels = as_labels(labels, "labels", n_classes=10, length=images.shape[0],
                       allow_reject=False)
    if config.n_train is not None:
        if config.n_train > images.shape[0]:
            raise ValueError(f"config {config.name!r} needs n_train={config.n_train} images,"
                             f" got {images.shape[0]}")
        images, labels = images[: config.n_train], labels[: config.n_train]
    return images, labels


def check_budget(config: TrainConfig, metrics: dict) -> None:
    budget = config.budget_minutes
    metrics["budget_minutes"] = budget
    metrics["within_budget"] = None if budget is None else metrics["train_seconds"] <= 60 * budget
    if metrics["within_budget"] is False:
        warnings.warn(f"training {config.name!r} took {metrics['train_seconds']:.0f} s, over its "
                      f"budget of {budget} min", RuntimeWarning, stacklevel=3)


def estimate_train_seconds(config: TrainConfig, images: np.ndarray, labels: np.ndarray,
                           n_steps: int = 3) -> float | None:
    """Extrapolated wall-clock training time: time ``n_steps`` optimisation steps at the
    full training radius (the costliest phase) and scale to the whole run.

    Returns ``None`` for the numpy methods. Uses the current ``torch`` thread setting.
    """
    if config.method not in TORCH_METHODS:
        return None
    require_torch()
    images, labels = select_training(config, images, labels)
    x_all, y_all = training_tensors(images[: config.batch_size * n_steps],
                               labels[: config.batch_size * n_steps])
    net = build_architecture(config.arch, seed=config.seed)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    times = []
    for i in range(n_steps + 1):  # the first step warms up and is not timed
        sl = slice((i % n_steps) * config.batch_size, (i % n_steps + 1) * config.batch_size)
        start = time.perf_counter()
        loss, _ = train_step(net, config, x_all[sl], y_all[sl], config.eps, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    steps = math.ceil(images.shape[0] / config.batch_size) * config.epochs
    return float(np.median(times[1:]) * steps)

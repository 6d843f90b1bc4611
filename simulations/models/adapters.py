"""MNIST classifiers and the one adapter interface every model is evaluated through.

Any model -- the zoo's CNNs, a user's ``torch.nn.Module``, a linear model, a
scikit-learn estimator or any numpy callable -- enters evaluation as a
:class:`ModelAdapter`: an object with ``n_classes`` and ``predict(x)``, where ``x`` is
a float32 batch of images in ``[0, 1]`` of shape ``(n, 1, 28, 28)`` and the result is
one int64 label per image (in the spirit of Foolbox's model wrappers).

Adapters that can do more say so by type:

- :class:`PyTorchModel` wraps a ``torch.nn.Module`` and also exposes logits and
  input gradients, which PGD (:mod:`invariance_tradeoffs.simulations.attacks.pgd`) and interval
  bound propagation (:mod:`invariance_tradeoffs.simulations.certification`) need.
- :class:`LinearModel` is ``argmax(W x + b)`` on the flattened image; it needs no
  torch, is certified *exactly* under l-inf, and converts to a :class:`PyTorchModel`
  for PGD.
- :class:`NumpyModel` wraps any callable returning labels or class scores (kNN,
  scikit-learn pipelines, hand-written rules); it supports prediction only.

PyTorch is optional: the numpy adapters work without it, and the torch parts raise
an ``ImportError`` that says how to install it.

Examples
--------
>>> import numpy as np
>>> x = np.zeros((2, 1, 28, 28), dtype=np.float32)
>>> NumpyModel(lambda b: np.full(len(b), 7)).predict(x).tolist()
[7, 7]
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from invariance_tradeoffs.simulations.images import as_unit_images
from invariance_tradeoffs.simulations.optional import nn, require_torch, torch
from invariance_tradeoffs.theory.validation import as_labels, check_int, check_n_classes

__all__ = [
    "IMAGE_SHAPE",
    "N_PIXELS",
    "ModelAdapter",
    "InputMap",
    "PyTorchModel",
    "TorchModel",
    "LinearModel",
    "NumpyModel",
    "as_images",
    "to_model_input",
    "as_model",
    "as_torch_model",
    "batch_slices",
    "require_torch",
]

#: Shape of one model input (channels, height, width).
IMAGE_SHAPE: tuple[int, int, int] = (1, 28, 28)
#: Number of pixels of one image.
N_PIXELS: int = 28 * 28


def as_images(x: object, name: str = "x", *, allow_empty: bool = False) -> np.ndarray:
    """Check a batch already in the model format: float ``(n, 1, 28, 28)`` in ``[0, 1]``
    (numpy or a torch tensor); returned as contiguous float32.

    Raises ``TypeError`` (not numeric) or ``ValueError`` (shape, NaN/inf, range); see
    :func:`invariance_tradeoffs.simulations.images.as_unit_images`.
    """
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return as_unit_images(x, name, channels=True, dtype=np.float32, allow_empty=allow_empty,
                          strict=True)


def to_model_input(images: object, name: str = "images") -> np.ndarray:
    """Convert MNIST images to the model format: the one conversion at the boundary.

    Accepts uint8 images in ``0..255`` (divided by 255) or float images already in
    ``[0, 1]``, of shape ``(n, 28, 28)`` or ``(n, 1, 28, 28)``. Nothing else is
    reshaped: a flat ``(n, 784)`` batch is rejected so that a transposed or
    mis-shaped array cannot slip through.
    """
    if torch is not None and isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    return as_unit_images(images, name, channels=True, dtype=np.float32)


# --------------------------------------------------------------------------- protocol
@runtime_checkable
class ModelAdapter(Protocol):
    """What evaluation needs from a model.

    ``predict`` maps a float32 batch in ``[0, 1]`` of shape ``(n, 1, 28, 28)`` to ``n``
    int64 labels in ``0 .. n_classes - 1``.
    """

    n_classes: int
    name: str

    def predict(self, x: np.ndarray) -> np.ndarray: ...


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive slices of at most ``batch_size`` covering ``range(n)``."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


# --------------------------------------------------------------------------- numpy
class NumpyModel:
    """Adapter for any numpy callable.

    Parameters
    ----------
    fn : callable
        Maps a float32 batch ``(n, 1, 28, 28)`` in ``[0, 1]`` to labels ``(n,)``
        (``output="labels"``) or to class scores ``(n, n_classes)`` (``output="scores"``,
        the label is the argmax).
    n_classes : int
        Number of classes.
    output : {"labels", "scores"}
        What ``fn`` returns.
    name : str
        Display name.

    Examples
    --------
    >>> import numpy as np
    >>> m = NumpyModel(lambda b: b.reshape(len(b), -1)[:, :10], output="scores")
    >>> x = np.zeros((1, 1, 28, 28), dtype=np.float32); x[0, 0, 0, 3] = 1
    >>> m.predict(x).tolist()
    [3]
    """

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray],
        n_classes: int = 10,
        output: Literal["labels", "scores"] = "labels",
        name: str = "numpy-model",
    ) -> None:
        if not callable(fn):
            raise TypeError("fn must be callable")
        if output not in ("labels", "scores"):
            raise ValueError(f"output must be 'labels' or 'scores', got {output!r}")
        self.fn = fn
        self.n_classes = check_n_classes(n_classes)
        self.output = output
        self.name = name

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = as_images(x, allow_empty=True)
        out = np.asarray(self.fn(x))
        if self.output == "scores":
            if out.shape != (x.shape[0], self.n_classes):
                raise ValueError(
                    f"{self.name}: scores must have shape {(x.shape[0], self.n_classes)},"
                    f" got {out.shape}"
                )
            out = np.argmax(out, axis=1)
        return as_labels(out, f"{self.name} output", n_classes=self.n_classes,
                         length=x.shape[0], allow_reject=False)

    def __repr__(self) -> str:
        return f"NumpyModel(name={self.name!r}, output={self.output!r})"


class LinearModel:
    """The linear classifier ``argmax(W x + b)`` on the flattened image.

    Parameters
    ----------
    weight : array_like, shape (n_classes, 784)
    bias : array_like, shape (n_classes,)
    name : str

    Notes
    -----
    Its worst case over an l-inf ball intersected with ``[0, 1]^784`` has a closed
    form (:func:`simulations.certification.linear_worst_margins`), so its robust
    accuracy is known exactly, not bounded.
    """

    def __init__(self, weight: object, bias: object, name: str = "linear") -> None:
        w = np.asarray(weight, dtype=np.float64)
        b = np.asarray(bias, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != N_PIXELS:
            raise ValueError(f"weight must have shape (n_classes, {N_PIXELS}), got {w.shape}")
        if b.shape != (w.shape[0],):
            raise ValueError(f"bias must have shape ({w.shape[0]},), got {b.shape}")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise ValueError("weight and bias must be finite")
        self.weight = w
        self.bias = b
        self.n_classes = check_n_classes(w.shape[0], "weight.shape[0]")
        self.name = name

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Class scores ``W x + b``, shape ``(n, n_classes)``, float64."""
        x = as_images(x, allow_empty=True)
        return x.reshape(x.shape[0], N_PIXELS).astype(np.float64) @ self.weight.T + self.bias

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.logits(x), axis=1).astype(np.int64)

    def to_torch(self) -> PyTorchModel:
        """The same classifier as a :class:`PyTorchModel` (float32), e.g. for PGD."""
        require_torch()
        lin = nn.Linear(N_PIXELS, self.n_classes)
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(self.weight, dtype=torch.float32))
            lin.bias.copy_(torch.as_tensor(self.bias, dtype=torch.float32))
        return PyTorchModel(nn.Sequential(nn.Flatten(), lin).eval(), n_classes=self.n_classes,
                          name=self.name)

    def __repr__(self) -> str:
        return f"LinearModel(name={self.name!r}, n_classes={self.n_classes})"


# --------------------------------------------------------------------------- torch
class InputMap(nn.Module if nn is not None else object):  # type: ignore[misc]
    """The elementwise increasing affine map from package images (values in ``[0, 1]``) to
    the module's input: ``((lo + x (hi - lo)) - mean) / std``.

    A layer of its own, so interval bound propagation (certification) goes through it
    like through any other layer.
    """

    def __init__(self, scale: Any, shift: Any) -> None:
        super().__init__()
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, x: Any) -> Any:
        return x * self.scale + self.shift


def _input_map(bounds: Any, preprocessing: Any, dtype: Any) -> InputMap | None:
    """:class:`InputMap` for Foolbox-style ``bounds`` and ``preprocessing``, or None when it
    is the identity."""
    try:
        lo, hi = (float(v) for v in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be a pair (low, high), got {bounds!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"bounds must be finite with low < high, got {bounds!r}")
    scale = torch.tensor(hi - lo, dtype=dtype)
    shift = torch.tensor(lo, dtype=dtype)
    if preprocessing is not None:
        if not isinstance(preprocessing, dict) or not set(preprocessing) <= {"mean", "std",
                                                                               "axis"}:
            raise ValueError("preprocessing must be a dict with keys mean, std and "
                             f"optionally axis, got {preprocessing!r}")
        axis = int(preprocessing.get("axis", -3))
        mean = torch.as_tensor(np.asarray(preprocessing.get("mean", 0.0), dtype=np.float64),
                               dtype=dtype)
        std = torch.as_tensor(np.asarray(preprocessing.get("std", 1.0), dtype=np.float64),
                              dtype=dtype)
        if not bool(torch.all(std > 0)):
            raise ValueError("preprocessing std must be > 0")
        if mean.ndim == 1:  # per channel: put the values on ``axis`` of (n, c, h, w)
            shape = [1, 1, 1, 1]
            shape[axis] = -1
            mean, std = mean.view(shape), std.view(shape)
        scale, shift = scale / std, (shift - mean) / std
    if bool(torch.all(scale == 1)) and bool(torch.all(shift == 0)):
        return None
    return InputMap(scale, shift)


class PyTorchModel:
    """A ``torch.nn.Module`` classifier as a model adapter (Foolbox's ``PyTorchModel`` in
    spirit).

    The package hands every model images as float32 ``(n, 1, 28, 28)`` in ``[0, 1]``;
    ``bounds`` and ``preprocessing`` say what the module expects instead, and the adapter
    maps the images there (differentiably, and through certification).

    Parameters
    ----------
    module : torch.nn.Module
        Maps a batch to logits ``(n, n_classes)``.
    bounds : (float, float)
        The input range the module was trained on (e.g. ``(0, 255)``); images in ``[0, 1]``
        are mapped linearly onto it.
    preprocessing : dict, optional
        ``{"mean": m, "std": s, "axis": -3}`` applied after ``bounds``: the module sees
        ``(x - m) / s`` (per channel when ``m``/``s`` are sequences).
    device : str or torch.device, optional
        Where inputs are sent (default: the device of the module's parameters).
    n_classes : int
    batch_size : int
        Images per forward pass.
    name : str

    Notes
    -----
    The module is used as it is: a module left in training mode (dropout, batch-norm
    statistics) gets a warning, not a silent ``eval()``.

    Examples
    --------
    >>> import torch                                                   # doctest: +SKIP
    >>> model = PyTorchModel(net.eval(), bounds=(0, 1),                # doctest: +SKIP
    ...                      preprocessing=dict(mean=0.1307, std=0.3081))
    """

    def __init__(self, module: Any, *, bounds: tuple[float, float] = (0.0, 1.0),
                 preprocessing: dict | None = None, device: Any = None, n_classes: int = 10,
                 batch_size: int = 1000, name: str = "torch-model") -> None:
        require_torch()
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if module.training:
            warnings.warn(f"{name}: the module is in training mode (dropout and batch-norm "
                          "behave differently); call module.eval() before evaluating it",
                          UserWarning, stacklevel=2)
        self.module = module
        self.bounds = (float(bounds[0]), float(bounds[1])) if bounds is not None else None
        self.preprocessing = preprocessing
        self.n_classes = check_n_classes(n_classes)
        self.batch_size = check_int(batch_size, "batch_size", low=1)
        self.name = name
        p = next(module.parameters(), None)
        self.device = torch.device(device) if device is not None else (
            p.device if p is not None else torch.device("cpu"))
        self.input_map = _input_map(bounds, preprocessing, torch.float32)
        if self.input_map is not None:
            self.input_map = self.input_map.to(self.device)

    def forward(self, x: Any) -> Any:
        """Logits of a torch batch of package images, with gradient tracking left to the
        caller."""
        if self.input_map is not None:
            x = self.input_map(x)
        out = self.module(x)
        if out.ndim != 2 or out.shape[1] != self.n_classes:
            raise ValueError(
                f"{self.name}: module must return logits of shape (n, {self.n_classes}),"
                f" got {tuple(out.shape)}"
            )
        return out

    def layers(self) -> list:
        """The network as a list of layers, the input map first (for interval bounds)."""
        inner = list(self.module) if isinstance(self.module, nn.Sequential) else [self.module]
        return ([self.input_map] if self.input_map is not None else []) + inner

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits as a float32 array of shape ``(n, n_classes)``."""
        x = as_images(x, allow_empty=True)
        out = np.empty((x.shape[0], self.n_classes), dtype=np.float32)
        with torch.no_grad():
            for sl in batch_slices(x.shape[0], self.batch_size):
                xb = torch.from_numpy(x[sl]).to(self.device)
                out[sl] = self.forward(xb).cpu().numpy()
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.logits(x), axis=1).astype(np.int64)

    def loss_gradient(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Gradient of the summed cross-entropy loss with respect to the input."""
        x = as_images(x)
        y = as_labels(y, "y", n_classes=self.n_classes, length=x.shape[0], allow_reject=False)
        grad = np.empty_like(x)
        for sl in batch_slices(x.shape[0], self.batch_size):
            xb = torch.from_numpy(x[sl]).to(self.device).requires_grad_(True)
            loss = nn.functional.cross_entropy(
                self.forward(xb), torch.from_numpy(y[sl]).to(self.device), reduction="sum"
            )
            (g,) = torch.autograd.grad(loss, xb)
            grad[sl] = g.cpu().numpy()
        return grad

    def __repr__(self) -> str:
        extra = "" if self.input_map is None else f", bounds={self.bounds}, " \
            f"preprocessing={self.preprocessing}"
        return f"PyTorchModel(name={self.name!r}, module={type(self.module).__name__}{extra})"


#: The earlier name of :class:`PyTorchModel`.
TorchModel = PyTorchModel


# --------------------------------------------------------------------------- conversion
def as_model(obj: object, n_classes: int = 10, name: str | None = None) -> ModelAdapter:
    """Wrap anything that classifies images as a :class:`ModelAdapter`.

    - an adapter (``n_classes`` + ``predict``) is returned unchanged;
    - a ``torch.nn.Module`` becomes a :class:`PyTorchModel` (inputs in ``[0, 1]``);
    - an object with a ``predict`` method but no ``n_classes`` (a scikit-learn
      estimator) is fed flattened ``(n, 784)`` rows;
    - any other callable becomes a :class:`NumpyModel` returning labels.
    """
    if isinstance(obj, PyTorchModel | LinearModel | NumpyModel):
        return obj
    if torch is not None and isinstance(obj, nn.Module):
        return PyTorchModel(obj, n_classes=n_classes, name=name or type(obj).__name__)
    if hasattr(obj, "n_classes") and callable(getattr(obj, "predict", None)):
        return obj  # type: ignore[return-value]
    if callable(getattr(obj, "predict", None)):
        est = obj
        return NumpyModel(lambda x: est.predict(x.reshape(x.shape[0], N_PIXELS)),
                          n_classes=n_classes, name=name or type(obj).__name__)
    if callable(obj):
        return NumpyModel(obj, n_classes=n_classes, name=name or getattr(obj, "__name__", "fn"))
    raise TypeError(
        f"cannot use {type(obj).__name__} as a model: expected a ModelAdapter, a "
        "torch.nn.Module, an object with predict(), or a callable"
    )


def as_torch_model(model: object) -> PyTorchModel:
    """Return a :class:`PyTorchModel` for ``model`` or raise ``TypeError``.

    Gradient-based attacks and interval bounds need this; a :class:`LinearModel` is
    converted, a prediction-only model is refused with an explanation.
    """
    if isinstance(model, PyTorchModel):
        return model
    if isinstance(model, LinearModel):
        return model.to_torch()
    if torch is not None and isinstance(model, nn.Module):
        return PyTorchModel(model)
    raise TypeError(
        f"model {getattr(model, 'name', type(model).__name__)!r} exposes no gradients "
        "(a PyTorchModel, LinearModel or torch.nn.Module is needed)"
    )



"""Datasets for vision tasks, as in-memory tensors ``x [M, C_img, H, W]`` and ``y [M]``.

* ``digits`` (default): scikit-learn's bundled 8x8 handwritten digits; no download.
* ``file``: a user's ``.pt`` (a dict) or ``.npz`` with arrays ``x`` and ``y`` (and optionally
  ``x_test`` / ``y_test``; else a stratified split is made).
* ``mnist`` / ``cifar10``: torchvision datasets, for users with a network (tests never need
  them).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

__all__ = ["ImageData", "DATASETS", "load_data", "iterate_batches"]


@dataclass
class ImageData:
    x_train: Tensor  # (M, C_img, H, W) float
    y_train: Tensor  # (M,) long
    x_test: Tensor
    y_test: Tensor
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)


def _standardise(x_train: Tensor, x_test: Tensor) -> tuple[Tensor, Tensor]:
    dims = (0, 2, 3)
    mean = x_train.mean(dims, keepdim=True)
    std = x_train.std(dims, keepdim=True).clamp_min(1e-6)
    return (x_train - mean) / std, (x_test - mean) / std


def _make(x_tr, y_tr, x_te, y_te) -> ImageData:
    x_tr, x_te = (torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in (x_tr, x_te))
    y_tr, y_te = (torch.as_tensor(np.asarray(a)).long() for a in (y_tr, y_te))
    x_tr, x_te = _standardise(x_tr, x_te)
    return ImageData(x_tr, y_tr, x_te, y_te, int(max(y_tr.max(), y_te.max())) + 1)


def _digits(cfg: Any) -> ImageData:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    x_tr, x_te, y_tr, y_te = _split(x, d.target, cfg.test_fraction, cfg.split_seed)
    return _make(x_tr, y_tr, x_te, y_te)


def _file(cfg: Any) -> ImageData:
    if not cfg.path:
        raise ValueError("task=file needs a data file: set task.path=/path/to/data.pt (or "
                         ".npz) holding arrays 'x' [M, H, W] or [M, C, H, W] and labels 'y' [M].")
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Data file not found: {path}. Set task.path to an existing "
                                f".pt or .npz file with 'x' and 'y'.")
    if path.suffix == ".npz":
        with np.load(path) as f:
            data = {k: f[k] for k in f.files}
    elif path.suffix in (".pt", ".pth"):
        data = torch.load(path, map_location="cpu", weights_only=True)
        data = {k: (v.numpy() if isinstance(v, Tensor) else np.asarray(v)) for k, v in data.items()}
    else:
        raise ValueError(f"Unsupported data file '{path.name}': expected a .pt or .npz file.")
    missing = [k for k in ("x", "y") if k not in data]
    if missing:
        raise ValueError(f"Data file {path} lacks {missing}; it has {sorted(data)}. Save "
                         f"images as 'x' and integer labels as 'y'.")

    def images(a: np.ndarray, key: str) -> np.ndarray:
        a = np.asarray(a, dtype=np.float32)
        if a.ndim == 3:
            a = a[:, None]
        if a.ndim != 4:
            raise ValueError(f"Expected '{key}' of shape [M, H, W] or [M, C, H, W], got "
                             f"{list(a.shape)} in {path}.")
        return a

    x, y = images(data["x"], "x"), np.asarray(data["y"])
    if len(x) != len(y):
        raise ValueError(f"'x' has {len(x)} samples but 'y' has {len(y)} in {path}.")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError(f"Expected non-negative integer class labels in 'y' (got dtype "
                         f"{y.dtype}, min {y.min()}) in {path}.")
    if "x_test" in data and "y_test" in data:
        return _make(x, y, images(data["x_test"], "x_test"), data["y_test"])
    x_tr, x_te, y_tr, y_te = _split(x, y, cfg.test_fraction, cfg.split_seed)
    return _make(x_tr, y_tr, x_te, y_te)


def _torchvision(name: str) -> Callable[[Any], ImageData]:
    def load(cfg: Any) -> ImageData:
        try:
            import torchvision
        except ImportError as e:
            raise ImportError(f"task={name} needs torchvision: pip install torchvision "
                              f"(and a network to download the data once).") from e
        cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10}[name]
        parts = []
        for train in (True, False):
            ds = cls(root=cfg.root, train=train, download=cfg.download)
            x = np.asarray(ds.data, dtype=np.float32) / 255.0
            x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # (M, C, H, W)
            parts += [x, np.asarray(ds.targets)]
        return _make(*parts)

    return load


DATASETS: dict[str, Callable[[Any], ImageData]] = {
    "digits": _digits, "file": _file, "mnist": _torchvision("mnist"),
    "cifar10": _torchvision("cifar10")}


def load_data(cfg: Any) -> ImageData:
    """Load the dataset named by ``cfg.name`` (see :data:`DATASETS`)."""
    if cfg.name not in DATASETS:
        raise ValueError(f"Unknown task '{cfg.name}'. Choices: {', '.join(DATASETS)}. "
                         f"Pick one with task=<name>.")
    return DATASETS[cfg.name](cfg)


def iterate_batches(x: Tensor, y: Tensor, batch_size: int, shuffle: bool = False,
                    generator: torch.Generator | None = None):
    """Yield ``(x, y)`` mini-batches of in-memory tensors."""
    order = torch.randperm(len(x), generator=generator) if shuffle else torch.arange(len(x))
    for i in range(0, len(x), batch_size):
        idx = order[i:i + batch_size]
        yield x[idx], y[idx]

"""Data sets, as in-memory tensors ``x [M, ...]`` and labels ``y [M]`` (the ``data`` config
group).

Two kinds of samples, and the task says which it reads (:attr:`colgraph.tasks.Task.modality`):

* ``image``: ``x [M, C, H, W]`` (a ``[M, H, W]`` array gets one channel).
* ``sequence``: ``x [M, C, L]`` (a ``[M, L]`` array gets one channel).

Data sets:

* ``digits`` (default, images): scikit-learn's bundled 8x8 handwritten digits; no download.
* ``file``: a user's ``.pt`` (a dict) or ``.npz`` with arrays ``x`` and ``y`` (and optionally
  ``x_test`` / ``y_test``; else a stratified split is made); images or sequences, as the
  task reads them.
* ``mnist`` / ``cifar10`` (images): torchvision data sets, for users with a network (tests
  never need them).

Every kind is standardised per channel with the training split's statistics.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

__all__ = ["Data", "DATASETS", "MODALITIES", "load_data", "iterate_batches"]

MODALITIES = {"image": "[M, C, H, W] (or [M, H, W])", "sequence": "[M, C, L] (or [M, L])"}


@dataclass
class Data:
    """A train / test split: ``x`` standardised per channel, ``y`` integer labels."""

    x_train: Tensor  # (M, C, H, W) images or (M, C, L) sequences, float
    y_train: Tensor  # (M,) long
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    modality: str  # "image" | "sequence"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(C, H, W)`` or ``(C, L)``."""
        return tuple(self.x_train.shape[1:])


class Raw:
    """Arrays as a loader found them, before shaping for a task's modality."""

    def __init__(self, x_train, y_train, x_test, y_test, modality: str | None,
                 source: str) -> None:
        self.arrays = (x_train, y_train, x_test, y_test)
        self.modality, self.source = modality, source  # modality None: the file decides


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y,
                                              random_state=seed)
    return x_tr, y_tr, x_te, y_te


def _standardise(x_train: Tensor, x_test: Tensor) -> tuple[Tensor, Tensor]:
    dims = tuple(d for d in range(x_train.dim()) if d != 1)  # all but the channel
    mean = x_train.mean(dims, keepdim=True)
    std = x_train.std(dims, keepdim=True).clamp_min(1e-6)
    return (x_train - mean) / std, (x_test - mean) / std


def _shape(a: np.ndarray, modality: str, key: str, source: str) -> np.ndarray:
    """Add the channel dimension a modality's bare arrays lack; refuse other shapes."""
    a = np.asarray(a, dtype=np.float32)
    ndim = {"image": 4, "sequence": 3}[modality]
    if a.ndim == ndim - 1:
        a = a[:, None]
    if a.ndim != ndim:
        raise ValueError(f"Expected '{key}' of shape {MODALITIES[modality]} for a {modality} "
                         f"task, got {list(a.shape)} in {source}.")
    return a


def _digits(cfg: Any) -> Raw:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    return Raw(*_split(x, d.target, cfg.test_fraction, cfg.split_seed), "image",
               "data=digits")


def _file(cfg: Any) -> Raw:
    if not cfg.path:
        raise ValueError("data=file needs a data file: set data.path=/path/to/data.pt (or "
                         ".npz) holding samples 'x' ([M, H, W] / [M, C, H, W] images or "
                         "[M, L] / [M, C, L] sequences) and labels 'y' [M].")
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Data file not found: {path}. Set data.path to an existing "
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
                         f"samples as 'x' and integer labels as 'y'.")
    x, y = data["x"], np.asarray(data["y"])
    if len(x) != len(y):
        raise ValueError(f"'x' has {len(x)} samples but 'y' has {len(y)} in {path}.")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError(f"Expected non-negative integer class labels in 'y' (got dtype "
                         f"{y.dtype}, min {y.min()}) in {path}.")
    if "x_test" in data and "y_test" in data:
        return Raw(x, y, data["x_test"], data["y_test"], None, str(path))
    return Raw(*_split(x, y, cfg.test_fraction, cfg.split_seed), None, str(path))


def _torchvision(name: str) -> Callable[[Any], Raw]:
    def load(cfg: Any) -> Raw:
        try:
            import torchvision
        except ImportError as e:
            raise ImportError(f"data={name} needs torchvision: pip install torchvision "
                              f"(and a network to download the data once).") from e
        cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10}[name]
        parts = []
        for train in (True, False):
            ds = cls(root=cfg.root, train=train, download=cfg.download)
            x = np.asarray(ds.data, dtype=np.float32) / 255.0
            x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # (M, C, H, W)
            parts += [x, np.asarray(ds.targets)]
        return Raw(*parts, "image", f"data={name}")

    return load


DATASETS: dict[str, Callable[[Any], Raw]] = {
    "digits": _digits, "file": _file, "mnist": _torchvision("mnist"),
    "cifar10": _torchvision("cifar10")}


def load_data(cfg: Any, modality: str = "image") -> Data:
    """Load the data set named by ``cfg.name`` (see :data:`DATASETS`) as ``modality``
    samples (``image`` or ``sequence``: what the task reads)."""
    if cfg.name not in DATASETS:
        raise ValueError(f"Unknown data set '{cfg.name}'. Choices: {', '.join(DATASETS)}. "
                         f"Pick one with data=<name>.")
    if modality not in MODALITIES:
        raise ValueError(f"Unknown modality '{modality}'. Choices: {', '.join(MODALITIES)}.")
    raw = DATASETS[cfg.name](cfg)
    if raw.modality is not None and raw.modality != modality:
        raise ValueError(f"data={cfg.name} holds {raw.modality}s but the task reads "
                         f"{modality}s. Pick a {modality} task (task=...) or a {modality} "
                         f"data set.")
    x_tr, y_tr, x_te, y_te = raw.arrays
    x_tr, x_te = (torch.from_numpy(_shape(a, modality, k, raw.source))
                  for a, k in ((x_tr, "x"), (x_te, "x_test")))
    y_tr, y_te = (torch.as_tensor(np.asarray(a)).long() for a in (y_tr, y_te))
    x_tr, x_te = _standardise(x_tr, x_te)
    return Data(x_tr, y_tr, x_te, y_te, int(max(y_tr.max(), y_te.max())) + 1, modality)


def iterate_batches(x: Tensor, y: Tensor, batch_size: int, shuffle: bool = False,
                    generator: torch.Generator | None = None):
    """Yield ``(x, y)`` mini-batches of in-memory tensors."""
    order = torch.randperm(len(x), generator=generator) if shuffle else torch.arange(len(x))
    for i in range(0, len(x), batch_size):
        idx = order[i:i + batch_size]
        yield x[idx], y[idx]

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
* ``waves`` (sequences): a built-in synthetic 1-D set generated offline (:func:`waves`):
  class templates placed at random shifts, scaled, in noise; translation matters.

Every kind is standardised per channel with the training split's statistics.
"""
from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from .checkpoint import _LEGACY_GLOBALS, _unsafe_global, objects_refused
from .registry import Registry
from .validation import Checks

__all__ = ["DataSplits", "DATASETS", "MODALITIES", "load_data", "iterate_batches", "waves",
           "Augment", "npz_keys", "fixed_split_conflict"]

MODALITIES = {"image": "[M, C, H, W] (or [M, H, W])", "sequence": "[M, C, L] (or [M, L])"}
# name -> loader(cfg) -> Raw; register(name, settings=(...)): the data.* keys it reads
DATASETS = Registry("data set", hint="Pick one with data=<name>.")


@dataclass
class DataSplits:
    """The train and test splits of a data set: ``x`` standardised per channel, ``y`` integer
    labels (what :func:`load_data` returns; not a PyG ``Data``, which is one graph)."""

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


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, source: str,
           other: str = ""):
    from sklearn.model_selection import train_test_split

    try:
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y,
                                                  random_state=seed)
    except ValueError as e:  # too few test (or training) samples for every class
        raise ValueError(f"Cannot split the {len(y)} samples of {source} with "
                         f"data.test_fraction={test_fraction}: {e}. A stratified split puts "
                         f"every class in both parts: change data.test_fraction{other}.") from None
    return x_tr, y_tr, x_te, y_te


def _standardise(x_train: Tensor, x_test: Tensor) -> tuple[Tensor, Tensor]:
    dims = tuple(d for d in range(x_train.dim()) if d != 1)  # all but the channel
    mean = x_train.mean(dims, keepdim=True)
    std = x_train.std(dims, keepdim=True).clamp_min(1e-6)
    return (x_train - mean) / std, (x_test - mean) / std


def _samples(a: Any, key: str, source: str) -> np.ndarray:
    """Samples as a float32 array, refusing what a cast would silently change: complex
    values (imaginary part dropped), non-numbers, a bare number, samples of no values,
    values beyond float32's range (they would become inf)."""
    a = np.asarray(a)
    if a.dtype.kind == "c":
        raise ValueError(f"'{key}' in {source} holds complex numbers ({a.dtype}): casting "
                         f"them to float would drop the imaginary part. Store real samples "
                         f"(e.g. np.abs(x), or real and imaginary parts as two channels).")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"'{key}' in {source} is not a numeric array (dtype {a.dtype}). "
                         f"Save samples as a float array.")
    if a.ndim == 0:
        raise ValueError(f"'{key}' in {source} is a single number ({a.item()!r}), not an array "
                         f"of samples [M, ...]. Save the samples array itself.")
    if a.size == 0 and len(a):
        raise ValueError(f"'{key}' in {source} has shape {list(a.shape)}: its samples hold no "
                         f"values. Save samples with at least one value each.")
    if a.dtype.kind == "f" and a.dtype.itemsize > 4:
        big = np.isfinite(a) & (np.abs(a) > np.finfo(np.float32).max)
        if big.any():
            i = tuple(int(j) for j in np.unravel_index(int(np.argmax(big)), a.shape))
            raise ValueError(f"{key}{list(i)} = {a[i]:.3g} in {source} is beyond float32's "
                             f"range (+-3.4e38), which colgraph computes in. Rescale the "
                             f"samples.")
    return a.astype(np.float32, copy=False)


def _shape(a: np.ndarray, modality: str, key: str, source: str) -> np.ndarray:
    """Add the channel dimension a modality's bare arrays lack; refuse other shapes."""
    a = _samples(a, key, source)
    ndim = {"image": 4, "sequence": 3}[modality]
    if a.ndim == ndim - 1:
        a = a[:, None]
    if a.ndim != ndim:
        raise ValueError(f"Expected '{key}' of shape {MODALITIES[modality]} for a {modality} "
                         f"task, got {list(a.shape)} in {source}.")
    return a


def _labels(y: Any, key: str, source: str) -> np.ndarray:
    """Integer class labels ``[M]`` (integral floats accepted), or a clear error naming the
    first bad entry."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"Expected '{key}' as one label per sample [M], got shape "
                         f"{list(y.shape)} in {source}.")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"Labels must be integers: {key}[{i}] = {y[i]} in {source}. "
                             f"Store class ids 0 .. K-1.")
    elif y.dtype.kind not in "iu":
        raise ValueError(f"Expected integer class labels in '{key}', got dtype {y.dtype} in "
                         f"{source}. Store class ids 0 .. K-1 (names or other values: "
                         f"y = np.unique(y, return_inverse=True)[1]).")
    if len(y) and y.min() < 0:
        i = int(np.argmax(y < 0))
        raise ValueError(f"Labels must be >= 0: {key}[{i}] = {y[i]} in {source}. Store class "
                         f"ids 0 .. K-1.")
    if len(y) and y.max() >= 2 ** 62:  # not a class id, and would not survive int64
        i = int(np.argmax(y))
        raise ValueError(f"{key}[{i}] = {y[i]} in {source} is not a class id: labels are "
                         f"0 .. K-1. Remap them: y = np.unique(y, return_inverse=True)[1].")
    return y.astype(np.int64)


def _num_classes(y: np.ndarray, source: str) -> int:
    """``K`` = the largest training label + 1, once every class 0 .. K-1 is known to occur;
    never allocates anything of size ``K`` (a label of 10^12 is refused, not met by a 7 TB
    class-count array)."""
    present = np.unique(y)
    k = int(present[-1]) + 1
    if len(present) < k:
        starts = np.flatnonzero(np.diff(np.r_[-1, present]) > 1)[:5]  # gaps before these
        absent = [c for i in starts for c in range(int(present[i - 1]) + 1 if i else 0,
                                                    int(present[i]))[:5]][:5]
        raise ValueError(f"Training labels skip {k - len(present)} of the classes 0 .. {k - 1} "
                         f"(e.g. {absent}) in {source}: labels must be 0 .. K-1. Remap them, "
                         f"e.g. y = np.unique(y, return_inverse=True)[1].")
    return k


def _check_split(x: np.ndarray, y: np.ndarray, kx: str, ky: str, source: str) -> None:
    """One split: samples present, as many labels as samples, every value finite."""
    if len(x) == 0:
        raise ValueError(f"'{kx}' in {source} holds no samples. A data set needs at least one "
                         f"training and one test sample.")
    if len(x) != len(y):
        raise ValueError(f"'{kx}' has {len(x)} samples but '{ky}' has {len(y)} labels in "
                         f"{source}: give one label per sample.")
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(1)
    if bad.any():
        raise ValueError(f"'{kx}' in {source} holds non-finite values (NaN / inf) in "
                         f"{int(bad.sum())} sample(s), the first at index {int(np.argmax(bad))}. "
                         f"Remove or fill them before training.")


@DATASETS.register("digits", settings=("test_fraction", "split_seed"))
def _digits(cfg: Any) -> Raw:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    return Raw(*_split(x, d.target, cfg.test_fraction, cfg.split_seed, "data=digits"), "image",
               "data=digits")


FILE_KEYS = ("x", "y", "x_test", "y_test")
_SAVE_HINT = ("Save plain tensors, torch.save({'x': torch.as_tensor(x), 'y': torch.as_tensor(y)}, "
              "path), or numpy arrays with np.savez(path, x=x, y=y)")


def npz_keys(path: str | os.PathLike) -> set[str] | None:
    """The array names of an ``.npz`` file, from its archive's member names (no array is
    read); ``None`` when ``path`` is not a readable ``.npz`` (loading it says why)."""
    path = Path(path).expanduser()
    if path.suffix != ".npz":
        return None
    try:
        with zipfile.ZipFile(path) as z:
            return {n[:-4] if n.endswith(".npy") else n for n in z.namelist()}
    except (OSError, zipfile.BadZipFile, ValueError):
        return None


def fixed_split_conflict(cfg: Any, keys: set[str], source: str) -> str | None:
    """The problem when ``cfg`` (the ``data`` config) moves ``data.test_fraction`` /
    ``data.split_seed`` from their defaults for a data file whose arrays ``keys`` hold
    their own test split: no split is made, so they cannot take effect."""
    from .config import DataConfig

    if not {"x_test", "y_test"} <= set(keys):
        return None
    moved = [f"data.{k}={getattr(cfg, k)}" for k in ("test_fraction", "split_seed")
             if getattr(cfg, k) != getattr(DataConfig, k)]
    if not moved:
        return None
    return (f"{' and '.join(moved)} cannot take effect: {source} has its own test split "
            f"('x_test' / 'y_test'), used as it is (no split is made). Drop "
            f"{' and '.join(m.split('=')[0] for m in moved)}, or remove 'x_test' / 'y_test' "
            f"from the file to have 'x' / 'y' split.")


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # a platform without sysconf
        return None


def _check_size(shape: tuple[int, ...], key: str, path: Path) -> None:
    """Refuse an array whose declared shape needs more memory (as float32) than the machine
    has, before it is read: a small compressed file or an expanded tensor can declare
    terabytes."""
    count = int(np.prod([int(d) for d in shape], dtype=object)) if shape else 1
    memory = _memory_bytes()
    if memory is not None and 4 * count > memory:
        raise ValueError(f"'{key}' in {path} has shape {list(shape)}: {4 * count / 2**30:.3g} "
                         f"GiB as float32, more than this machine's memory "
                         f"({memory / 2**30:.3g} GiB). Use fewer or smaller samples.")


def _unreadable(path: Path, error: Exception) -> ValueError:
    """The error for a data file its reader failed on: damage when the file is a zip archive
    (what ``np.savez`` and ``torch.save`` write) the reader tripped over, else a file of
    another kind."""
    text = str(error).split("\n\nCheck the documentation")[0].strip()  # torch's advice
    lines = text.splitlines() or ["no details"]
    detail = (lines[-1] if isinstance(error, pickle.UnpicklingError) else lines[0])
    detail = detail.strip().split(". ")[0][:200]  # its first sentence: not torch's advice
    writer = "np.savez" if path.suffix == ".npz" else "torch.save"
    with open(path, "rb") as f:
        archive = f.read(4) == b"PK\x03\x04"  # a zip's first record, even in a cut file
    if archive:
        return ValueError(f"Data file {path} is damaged (cut short, or bytes changed): the "
                          f"reader failed with {type(error).__name__}: {detail}. Copy it again "
                          f"from its source, or write it again with {writer}.")
    return ValueError(f"Cannot read data file {path} ({type(error).__name__}: {detail}). "
                      f"Expected {'an' if writer[0] == 'n' else 'a'} {writer} file of a dict "
                      f"with 'x' and 'y'.")


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``, each header read first: object arrays (pickles) and
    arrays larger than memory are refused before their data is read."""
    from numpy.lib import format as npy

    try:  # allow_pickle stays False: no object arrays, no code
        f = np.load(path)
    except Exception as e:  # numpy / zipfile each raise their own kinds
        raise _unreadable(path, e) from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise _unreadable(path, TypeError(f"a single {type(f).__name__}, not an archive"))
    with f:
        members = set(f.zip.namelist())
        out = {}
        for key in f.files:
            try:
                with f.zip.open(key + ".npy" if key + ".npy" in members else key) as fh:
                    version = npy.read_magic(fh)
                    read = {(1, 0): npy.read_array_header_1_0,
                            (2, 0): npy.read_array_header_2_0}.get(version)
                    if read is None:
                        raise ValueError(f"'{key}' is in .npy format {version}, which holds "
                                         f"no plain numeric array")
                    shape, _, dtype = read(fh)
            except Exception as e:
                raise _unreadable(path, e) from None
            if dtype.hasobject:
                raise objects_refused(path, ValueError(f"'{key}' is an object array"),
                                      _SAVE_HINT)
            _check_size(shape, key, path)
            try:
                out[key] = f[key]
            except Exception as e:  # a truncated or damaged member
                raise _unreadable(path, e) from None
    return out


def _pt_arrays(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a ``torch.save``'d dict as numpy arrays; nothing in the file runs."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 (zipfile / torch / a damaged pickle: any kind)
        raise _pt_refused(path, e) from None
    if not isinstance(data, dict):
        raise ValueError(f"Data file {path} holds a {type(data).__name__}, not a dict: save "
                         f"{{'x': samples, 'y': labels}} (optionally 'x_test', 'y_test').")
    out = {}
    for key, v in data.items():
        key = str(key)
        if isinstance(v, Tensor):
            if v.layout != torch.strided:
                raise ValueError(f"'{key}' in {path} is a {v.layout} tensor: save a dense "
                                 f"one (x.to_dense()).")
            _check_size(tuple(v.shape), key, path)
            try:
                v = v.float() if v.dtype == torch.bfloat16 else v  # numpy has no bfloat16
                out[key] = v.detach().numpy()
            except (RuntimeError, TypeError) as e:  # meta, quantized, ... tensors
                raise ValueError(f"'{key}' in {path} is a {v.dtype} tensor on {v.device} that "
                                 f"holds no plain values ({str(e).splitlines()[0][:120]}). "
                                 f"{_SAVE_HINT}.") from None
            continue
        try:
            a = np.asarray(v)
        except ValueError as e:  # ragged nested lists
            raise ValueError(f"'{key}' in {path} is not an array ({e}). {_SAVE_HINT}.") from None
        if a.dtype.hasobject:
            raise ValueError(f"'{key}' in {path} is a {type(v).__name__}, not an array of "
                             f"numbers. {_SAVE_HINT}.")
        out[key] = a
    return out


def _pt_refused(path: Path, error: Exception) -> ValueError:
    """Why ``torch.load(weights_only=True)`` refused a ``.pt`` data file: Python objects that
    could run code, told apart from damage (a flipped opcode, a garbled name, a cut file) by
    the checkpoint reader's own scan of the pickle (:func:`colgraph.checkpoint._unsafe_global`).
    That scan lets numpy arrays pass (old checkpoints hold one): in a data file they are
    objects too, named as torch refused them."""
    if not isinstance(error, pickle.UnpicklingError):
        return _unreadable(path, error)
    found = re.search(r"GLOBAL (\S+) was not an allowed global", str(error))
    refused = found.group(1) if found else None
    if zipfile.is_zipfile(path):
        what = _unsafe_global(path) or (refused if refused in _NUMPY_GLOBALS else None)
    else:  # a bare pickle (or torch's legacy format, whose data is past the first pickle)
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("data.pkl", path.read_bytes())
        what = _unsafe_global(archive) or refused
    return objects_refused(path, error, _SAVE_HINT, what) if what else _unreadable(path, error)


_NUMPY_GLOBALS = {f"{g.__module__}.{g.__qualname__}" for g in _LEGACY_GLOBALS}


@DATASETS.register("file", settings=("path", "test_fraction", "split_seed"))
def _file(cfg: Any) -> Raw:
    if not cfg.path:
        raise ValueError("data=file needs a data file: set data.path=/path/to/data.pt (or "
                         ".npz) holding samples 'x' ([M, H, W] / [M, C, H, W] images or "
                         "[M, L] / [M, C, L] sequences) and labels 'y' [M].")
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Data file not found: {path}. Set data.path to an existing "
                                f".pt or .npz file with 'x' and 'y'.")
    if path.suffix not in (".npz", ".pt", ".pth"):
        raise ValueError(f"Unsupported data file '{path.name}': expected a .pt or .npz file.")
    data = _npz_arrays(path) if path.suffix == ".npz" else _pt_arrays(path)
    missing = [k for k in ("x", "y") if k not in data]
    if missing:
        raise ValueError(f"Data file {path} lacks {missing}; it has {sorted(data)}. Save "
                         f"samples as 'x' and integer labels as 'y'.")
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise ValueError(f"Data file {path} holds {unknown}, which data=file does not read: "
                         f"it reads {', '.join(FILE_KEYS)} (x_test / y_test: a fixed test "
                         f"split). Remove or rename them so nothing in the file is ignored.")
    if ("x_test" in data) != ("y_test" in data):
        have, lack = ("x_test", "y_test") if "x_test" in data else ("y_test", "x_test")
        raise ValueError(f"Data file {path} has '{have}' but no '{lack}': give both for a "
                         f"fixed test split, or neither (a data.test_fraction split is made).")
    source = str(path)
    with Checks() as check:  # a .pt's keys are known only now; an .npz's were checked before
        conflict = fixed_split_conflict(cfg, set(data), source)
        check.unread(conflict is not None, conflict or "")
    x, y = _samples(data["x"], "x", source), _labels(data["y"], "y", source)
    if len(x) != len(y) or len(x) == 0:  # before the split; load_data checks the rest
        raise ValueError(f"'x' has {len(x)} samples and 'y' {len(y)} labels in {path}: give "
                         f"one label per sample, and at least one sample.")
    if "x_test" in data:
        return Raw(x, y, _samples(data["x_test"], "x_test", source),
                   _labels(data["y_test"], "y_test", source), None, source)
    _num_classes(y, source)  # before a class is counted or split
    classes, counts = np.unique(y, return_counts=True)
    rare = classes[counts < 2]
    if len(rare):
        raise ValueError(f"Class {int(rare[0])} has a single sample in {path}: a stratified "
                         f"train / test split needs >= 2 per class. Add samples, or give "
                         f"'x_test' / 'y_test' yourself.")
    return Raw(*_split(x, y, cfg.test_fraction, cfg.split_seed, source,
                       ", or give 'x_test' / 'y_test' yourself"), None, source)


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


DATASETS.register("mnist", settings=("root", "download"))(_torchvision("mnist"))
DATASETS.register("cifar10", settings=("root", "download"))(_torchvision("cifar10"))


def waves(samples: int = 3000, length: int = 64, classes: int = 8, width: int = 16,
          noise: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic 1-D classification set: ``x [samples, length]``, ``y [samples]``.

    Each class is a smooth template of ``width`` samples (two or three Gaussian bumps of
    random sign, fixed for all seeds); a sample places its class's template at a uniformly
    random shift, scales it by a factor in [0.5, 1.5] and adds Gaussian noise of standard
    deviation ``noise``. Where the template sits carries no information: a model has to
    recognise a shape wherever it appears. Classes are balanced.
    """
    if not (1 <= width <= length and classes >= 2 and samples >= classes and noise >= 0):
        raise ValueError(f"waves needs 1 <= width <= length, classes >= 2, samples >= classes "
                         f"and noise >= 0 (got width={width}, length={length}, classes="
                         f"{classes}, samples={samples}, noise={noise}).")
    templates = np.random.default_rng(12345)  # the same classes whatever the seed
    t = np.linspace(-1, 1, width)
    shapes = []
    for _ in range(classes):
        k = templates.integers(2, 4)
        mu, sd = templates.uniform(-0.7, 0.7, k), templates.uniform(0.12, 0.35, k)
        a = templates.choice([-1, 1], k) * templates.uniform(0.5, 1, k)
        f = (a[:, None] * np.exp(-0.5 * ((t[None] - mu[:, None]) / sd[:, None]) ** 2)).sum(0)
        shapes.append(f / np.abs(f).max())
    rng = np.random.default_rng(seed)
    y = np.arange(samples) % classes
    rng.shuffle(y)
    shift = rng.integers(0, length - width + 1, samples)
    amp = rng.uniform(0.5, 1.5, samples)
    x = rng.normal(0.0, noise, (samples, length)).astype(np.float32)
    rows = np.arange(samples)[:, None]
    x[rows, shift[:, None] + np.arange(width)] += (amp[:, None] * np.stack(shapes)[y])
    return x, y


@DATASETS.register("waves", settings=("samples", "length", "classes", "width", "noise",
                                       "seed", "test_fraction", "split_seed"))
def _waves(cfg: Any) -> Raw:
    x, y = waves(cfg.samples, cfg.length, cfg.classes, cfg.width, cfg.noise, cfg.seed)
    return Raw(*_split(x[:, None], y, cfg.test_fraction, cfg.split_seed, "data=waves"),
               "sequence", "data=waves")


def load_data(cfg: Any, modality: str = "image") -> DataSplits:
    """Load the data set named by ``cfg.name`` (see :data:`DATASETS`) as ``modality``
    samples (``image`` or ``sequence``: what the task reads)."""
    load = DATASETS.lookup(cfg.name)
    if modality not in MODALITIES:
        raise ValueError(f"Unknown modality '{modality}'. Choices: {', '.join(MODALITIES)}.")
    raw = load(cfg)
    if raw.modality is not None and raw.modality != modality:
        raise ValueError(f"data={cfg.name} holds {raw.modality}s but the task reads "
                         f"{modality}s. Pick a {modality} task (task=...) or a {modality} "
                         f"data set.")
    x_tr, y_tr, x_te, y_te = raw.arrays
    x_tr, x_te = (_shape(a, modality, k, raw.source) for a, k in ((x_tr, "x"), (x_te, "x_test")))
    y_tr, y_te = _labels(y_tr, "y", raw.source), _labels(y_te, "y_test", raw.source)
    _check_split(x_tr, y_tr, "x", "y", raw.source)
    _check_split(x_te, y_te, "x_test", "y_test", raw.source)
    if x_te.shape[1:] != x_tr.shape[1:]:
        raise ValueError(f"Test samples have shape {list(x_te.shape[1:])} but training samples "
                         f"{list(x_tr.shape[1:])} in {raw.source}: both splits must hold "
                         f"samples of one shape.")
    num_classes = _num_classes(y_tr, raw.source)
    unseen = y_te >= num_classes
    if unseen.any():
        i = int(np.argmax(unseen))
        raise ValueError(f"y_test[{i}] = {y_te[i]} is a class the training labels never use "
                         f"(they are 0 .. {num_classes - 1}) in {raw.source}.")
    x_tr, x_te = _standardise(torch.from_numpy(x_tr), torch.from_numpy(x_te))
    return DataSplits(x_tr, torch.from_numpy(y_tr), x_te, torch.from_numpy(y_te), num_classes,
                modality)


def iterate_batches(x: Tensor, y: Tensor, batch_size: int, shuffle: bool = False,
                    generator: torch.Generator | None = None, start: int = 0):
    """Yield ``(x, y)`` mini-batches of in-memory tensors, from batch ``start`` on (the
    same order as from 0: a run resumed mid-epoch sees the rest of that epoch)."""
    order = torch.randperm(len(x), generator=generator) if shuffle else torch.arange(len(x))
    for i in range(start * batch_size, len(x), batch_size):
        idx = order[i:i + batch_size]
        yield x[idx], y[idx]


class Augment:
    """Random training-time transformations of a batch (never applied in evaluation).

    * ``shift``: translate each sample by up to ``shift`` pixels / samples along each spatial
      axis (independently per sample), filling with zeros (the mean, after standardisation):
      random crops of a zero-padded sample.
    * ``flip``: mirror images left-right (or reverse sequences) with probability 1/2.
    * ``scale``: multiply each sample by a factor drawn uniformly in ``[1 - scale, 1 + scale]``.

    Random numbers come from torch's global generator, whose state checkpoints keep, so a
    resumed run draws what an uninterrupted one would.
    """

    def __init__(self, shift: int = 0, flip: bool = False, scale: float = 0.0) -> None:
        if shift < 0 or not 0.0 <= scale < 1.0:
            raise ValueError(f"data.augment.shift must be >= 0 and data.augment.scale in "
                             f"[0, 1) (got shift={shift}, scale={scale}).")
        self.shift, self.flip, self.scale = int(shift), bool(flip), float(scale)

    @property
    def enabled(self) -> bool:
        return bool(self.shift or self.flip or self.scale)

    def __call__(self, x: Tensor) -> Tensor:
        B = x.size(0)
        spatial = x.dim() - 2  # 2 for images [B, C, H, W], 1 for sequences [B, C, L]
        if self.shift:
            x = self._shift(x, spatial)
        if self.flip:
            flipped = torch.rand(B, device=x.device) < 0.5
            x = torch.where(flipped.view(B, *[1] * (x.dim() - 1)), x.flip(-1), x)
        if self.scale:
            factor = 1 + self.scale * (2 * torch.rand(B, device=x.device) - 1)
            x = x * factor.view(B, *[1] * (x.dim() - 1))
        return x

    def _shift(self, x: Tensor, spatial: int) -> Tensor:
        S, B = self.shift, x.size(0)
        padded = torch.nn.functional.pad(x, (S, S) * spatial)
        batch = torch.arange(B, device=x.device)
        index = []
        for axis in range(spatial):  # per sample: where its window starts in the padding
            size = x.size(2 + axis)
            start = torch.randint(0, 2 * S + 1, (B,), device=x.device)
            index.append(start[:, None] + torch.arange(size, device=x.device))  # (B, size)
        if spatial == 1:
            out = padded.transpose(1, 2)[batch[:, None], index[0]]  # (B, L, C)
            return out.transpose(1, 2)
        rows, cols = index
        out = padded.permute(0, 2, 3, 1)[batch[:, None, None], rows[:, :, None],
                                         cols[:, None, :]]  # (B, H, W, C)
        return out.permute(0, 3, 1, 2).contiguous()

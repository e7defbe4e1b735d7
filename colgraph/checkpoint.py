"""Checkpoint files: written atomically and durably, read without running any code.

A checkpoint is a plain nested ``dict`` of tensors, numbers, strings, lists and dicts (no
Python objects), written by ``torch.save``. Reading it:

* **No code runs.** ``torch.load(weights_only=True)`` unpickles only tensors and plain
  containers; anything else (a pickled payload planted in the file, or a class torch does
  not know) is refused before a single object is built.
* **Corruption is caught.** Every tensor's SHA-256 (over its dtype, shape and bytes) is
  stored in the file (``checksums``) and checked on load: a flipped byte inside a tensor
  names the tensor. Damage elsewhere fails the zip / pickle reader, which is reported as a
  corrupted file.
* **A crash never costs the last good checkpoint.** The new file is written to
  ``<name>.tmp``, flushed to disk (``fsync``) and only then renamed over the old one
  (``os.replace`` is atomic); the directory is synced so the rename itself survives a
  power cut.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator

import torch

from . import __version__

__all__ = ["CHECKPOINT_NAME", "CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint",
           "tensor_digest", "first_nonfinite", "objects_refused"]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 4  # bump when the checkpoint layout changes incompatibly
# format 3 (before checksums; numpy RNG state as an array) still loads, with a warning
READABLE_FORMATS = (3, 4)


def tensor_digest(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes (hex)."""
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    data = t.detach().cpu().contiguous().reshape(-1)
    if data.numel():
        h.update(memoryview(data.view(torch.uint8).numpy()))
    return h.hexdigest()


def _tensors(obj: Any, path: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in a nested dict / list, with its path (``model/columnformer.blocks.0...``)."""
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{path}/{k}" if path else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{path}[{i}]")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. a platform without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (a plain nested dict) to ``path`` with per-tensor checksums,
    atomically and durably (see the module docstring)."""
    path = Path(path)
    state = {**state, "checksums": {k: tensor_digest(t) for k, t in _tensors(state)
                                    if k.split("/")[0] != "checksums"}}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def remove_stale_tmp(path: str | os.PathLike) -> bool:
    """Delete ``<checkpoint>.tmp`` left by a crash mid-write; whether there was one."""
    tmp = Path(str(path) + ".tmp")
    if tmp.is_file():
        tmp.unlink()
        return True
    return False


def objects_refused(path: str | os.PathLike, error: Exception,
                    fix: str = "colgraph never writes such files") -> ValueError:
    """The error for a torch file whose pickle holds Python objects that
    ``torch.load(weights_only=True)`` refused (they could run code when loaded); ``fix`` says
    what to do instead of trusting the file."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    what = next((ln for ln in lines if "Unsupported" in ln), lines[-1] if lines else "")
    what = what.split(" was not an allowed global")[0].split("WeightsUnpickler error: ")[-1]
    return ValueError(f"Refusing to load {path}: it holds Python objects other than tensors "
                      f"and plain containers, which could run code when loaded "
                      f"({what[:200]}). {fix}; only load it by hand, with "
                      f"torch.load(weights_only=False), if you trust its source.")


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file (or ``RUN_DIR/checkpoint.pt``): nothing in it runs, and a
    file that is not a colgraph checkpoint, is damaged, or fails its checksums is refused
    with the reason."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}. Pass train.resume=<run dir> or "
                                f"<run dir>/{CHECKPOINT_NAME} of an earlier run.")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes), not a checkpoint. A crash before "
                         f"colgraph wrote it? Point to another run's {CHECKPOINT_NAME}.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a colgraph checkpoint: not a torch.save zip archive "
                         f"(text, an old pickle or a truncated file?).")
    try:
        with torch.serialization.safe_globals(_LEGACY_GLOBALS):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise objects_refused(path, e) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError) as e:
        raise ValueError(f"{path} is corrupted (damaged or truncated): {e}. Use the run's "
                         f"last good checkpoint or retrain.") from None
    if not isinstance(state, dict) or "colgraph_version" not in state:
        raise ValueError(f"{path} is not a colgraph checkpoint (no 'colgraph_version' key).")
    fmt = state.get("checkpoint_format")
    if fmt not in READABLE_FORMATS:
        raise ValueError(f"{path} was written by colgraph {state['colgraph_version']} in "
                         f"checkpoint format {fmt}; this colgraph ({__version__}) reads format "
                         f"{CHECKPOINT_FORMAT}. Load it with the colgraph version that wrote "
                         f"it, or retrain.")
    _verify(path, state)
    state["path"] = str(path)
    return state


def _verify(path: Path, state: dict[str, Any]) -> None:
    sums = state.pop("checksums", None)
    if sums is None:
        if state["checkpoint_format"] >= 4:
            raise ValueError(f"{path} has no checksums: it was not written by "
                             f"colgraph.save_checkpoint, or was edited. Refusing it.")
        warnings.warn(f"{path} is in checkpoint format {state['checkpoint_format']} (before "
                      f"checksums): its tensors cannot be verified.", stacklevel=3)
        return
    found = dict(_tensors(state))
    if set(found) != set(sums):
        missing = sorted(set(sums) - set(found))[:3]
        extra = sorted(set(found) - set(sums))[:3]
        raise ValueError(f"{path} does not match its checksums: tensors missing {missing}, "
                         f"unexpected {extra}. The file was edited or damaged.")
    for key, t in found.items():
        if tensor_digest(t) != sums[key]:
            raise ValueError(f"{path} is corrupted: tensor '{key}' {list(t.shape)} fails its "
                             f"SHA-256 checksum. Use the run's last good checkpoint or "
                             f"retrain.")


def _legacy_globals() -> list:
    """Exactly what format-3 checkpoints need beyond tensors: numpy's RNG state array (a
    uint32 ndarray). Data-only types: none of them can run code."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype,
            type(np.dtype(np.uint32))]


_LEGACY_GLOBALS = _legacy_globals()


def first_nonfinite(named: Any) -> str | None:
    """Name of the first tensor with a NaN / inf among ``(name, tensor)`` pairs."""
    for name, t in named:
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(
                torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            return f"{name} ({bad} of {t.numel()} values non-finite)"
    return None

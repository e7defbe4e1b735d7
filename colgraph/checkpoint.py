"""Checkpoint files: written atomically and durably, read without running any code.

A checkpoint is a plain nested ``dict`` of tensors, numbers, strings, lists and dicts (no
Python objects), written by ``torch.save``. Reading it:

* **No code runs.** ``torch.load(weights_only=True)`` unpickles only tensors and plain
  containers; anything else (a pickled payload planted in the file, or a class torch does
  not know) is refused before a single object is built.
* **Corruption is caught, everywhere in the file.** Every tensor's SHA-256 (over its dtype,
  shape and bytes) is stored in the file (``checksums``), and so is the SHA-256 of every
  top-level entry as a whole (``key_checksums``: the config, the counters ``epoch`` /
  ``batch`` / ``step``, the RNG and plasticity state, ...; over a canonical serialisation of
  its plain values, each tensor by its own SHA-256). Both are checked on load: a flipped
  byte inside a tensor names the tensor, one in the config or a counter names that entry,
  and an entry added or removed is refused. Damage the pickle reader trips over (a flipped
  opcode, a cut file) is reported as damage; only a reference to a Python object that could
  run code is reported as such. The checksums catch damage and naive edits (a counter
  changed with ``torch.load`` / ``torch.save``), not a forger who recomputes them: the values
  are validated again where they are used.
* **A crash never costs the last good checkpoint.** The new file is written to
  ``<name>.tmp``, flushed to disk (``fsync``) and only then renamed over the old one
  (``os.replace`` is atomic); the directory is synced so the rename itself survives a
  power cut. A write that fails (disk full, read-only file system, no permission) removes
  the partial file and raises :class:`CheckpointWriteError` saying what happened and that
  the previous checkpoint is intact.
"""
from __future__ import annotations

import errno
import hashlib
import os
import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator

import torch

from . import __version__

__all__ = ["CHECKPOINT_NAME", "CHECKPOINT_FORMAT", "CheckpointWriteError", "save_checkpoint",
           "load_checkpoint", "require_keys", "ensure_writable", "write_error", "tensor_digest",
           "first_nonfinite", "objects_refused"]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 5  # bump when the checkpoint layout changes incompatibly
# format 3 (before checksums; numpy RNG state as an array) and format 4 (checksums over
# tensors only) still load, each with a warning saying what cannot be verified
READABLE_FORMATS = (3, 4, 5)
INTEGRITY_KEYS = ("checksums", "key_checksums")  # what save_checkpoint adds to a state


class CheckpointWriteError(OSError):
    """A checkpoint (or a run directory) could not be written: the disk is full, the file
    system is read-only, permission is denied, ... The message says which, and whether an
    earlier checkpoint is intact; ``errno`` and ``filename`` are the operating system's."""

    def __str__(self) -> str:
        return str(self.args[0])


def tensor_digest(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes (hex)."""
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    data = t.detach().cpu().contiguous().reshape(-1)
    if data.numel():
        h.update(memoryview(data.view(torch.uint8).numpy()))
    return h.hexdigest()


def _feed(h: Any, obj: Any, path: str, tensors: dict[str, str]) -> None:
    """Add ``obj`` to the hash ``h`` in a canonical form (dicts and sets in sorted order,
    every value tagged with its type, each tensor by its digest, recorded in ``tensors``
    under its path ``model/columnformer.blocks.0...``)."""
    if isinstance(obj, torch.Tensor):
        digest = tensors[path] = tensor_digest(obj)
        h.update(b"T" + digest.encode())
    elif isinstance(obj, dict):
        h.update(b"{%d:" % len(obj))
        for key, value in sorted(obj.items(), key=lambda kv: _token(kv[0])):
            _feed(h, key, "", {})
            _feed(h, value, f"{path}/{key}" if path else str(key), tensors)
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"%s%d:" % (b"[" if isinstance(obj, list) else b"(", len(obj)))
        for i, value in enumerate(obj):
            _feed(h, value, f"{path}[{i}]", tensors)
        h.update(b"]")
    elif isinstance(obj, (set, frozenset)):  # in sorted order: iteration order is hash order
        h.update(b"<%s%d:" % (type(obj).__name__.encode(), len(obj)))
        for token in sorted(map(_token, obj)):
            h.update(token)
        h.update(b">")
    else:
        h.update(_token(obj))


def _token(obj: Any) -> bytes:
    """A plain value as bytes: its type and ``repr`` (exact for floats, NaN included),
    length-prefixed so no two values run together."""
    text = f"{type(obj).__module__}.{type(obj).__qualname__}:{obj!r}".encode(
        "utf-8", "surrogatepass")
    return b"%d:%s" % (len(text), text)


def _digests(state: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """``(checksums, key_checksums)`` of a state: each tensor's SHA-256 by its path, and each
    top-level entry's SHA-256 (its name and whole value, tensors by their digests) by its
    key."""
    tensors: dict[str, str] = {}
    keys = {}
    for key, value in state.items():
        if key in INTEGRITY_KEYS:
            continue
        h = hashlib.sha256(_token(key))  # the name too: a renamed entry fails
        _feed(h, value, str(key), tensors)
        keys[str(key)] = h.hexdigest()
    return tensors, keys


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


class _RecordingWriter:
    """A file for ``torch.save`` that keeps the first OS error of a write: torch's zip
    writer turns it into an opaque ``RuntimeError`` ("unexpected pos ...")."""

    def __init__(self, f: Any) -> None:
        self.f, self.error = f, None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        self.f.flush()


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (a plain nested dict with string keys) to ``path`` in checkpoint
    format :data:`CHECKPOINT_FORMAT` (``checkpoint_format`` is set to it), with the checksums
    of every tensor and every entry, atomically and durably (see the module docstring). A
    state from :func:`load_checkpoint` can be written back as it is (its ``path`` entry is
    not stored): that is how to change a stored value on purpose.

    Raises:
        CheckpointWriteError: the file could not be written (disk full, read-only file
            system, permission denied, ...); the partial file is removed and an existing
            checkpoint at ``path`` is left as it was.
    """
    path = Path(path)
    bad = [k for k in state if not isinstance(k, str)]
    if bad:
        raise TypeError(f"save_checkpoint needs string keys at the top level of the state "
                        f"(got {bad[:3]}).")
    # a loaded state's checksums and 'path' (where it was read from) are not written back
    state = {k: v for k, v in state.items() if k not in (*INTEGRITY_KEYS, "path")}
    state["checkpoint_format"] = CHECKPOINT_FORMAT
    checksums, key_checksums = _digests(state)
    state.update(checksums=checksums, key_checksums=key_checksums)
    tmp = path.with_name(path.name + ".tmp")
    writer = None
    try:
        with open(tmp, "wb") as f:
            writer = _RecordingWriter(f)
            torch.save(state, writer)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        cause = e if isinstance(e, OSError) else getattr(writer, "error", None)
        if cause is None:  # not the file system's doing
            raise
        _remove(tmp)
        raise write_error(cause, f"Could not write the checkpoint {path}", path.parent,
                           path) from None
    _fsync_dir(path.parent)


def _remove(path: Path) -> None:
    """Delete a partial file if it is there and can be deleted (not on a read-only disk)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _exists(path: Path) -> bool:
    try:
        return path.exists() or path.is_symlink()
    except OSError:
        return False


def write_error(e: OSError, what: str, where: Path, checkpoint: Path | None = None,
                setting: str = "hydra.run.dir") -> CheckpointWriteError:
    """``what`` failed with ``e`` in the directory ``where``: the reason in words, the fix
    (naming ``setting``, the key that moves the run), and (given the ``checkpoint`` being
    written, or the run's last one) whether the last one is intact."""
    reasons = {
        errno.ENOSPC: ("the disk is full (no space left on device)",
                       f"Free space on the disk holding {where}"),
        errno.EDQUOT: ("the disk quota is exceeded", f"Free space in your quota for {where}"),
        errno.EROFS: ("the file system is read-only",
                      f"Write the run to a writable directory ({setting}=...)"),
        errno.EACCES: ("permission denied: the directory is not writable by this user",
                       f"Make {where} writable (chmod u+w), or write the run elsewhere "
                       f"({setting}=...)"),
    }
    reasons[errno.EPERM] = reasons[errno.EACCES]
    reason, fix = reasons.get(e.errno, (e.strerror or str(e), "Check the disk and the run "
                                        "directory"))
    text = f"{what}: {reason} ({type(e).__name__}, errno {e.errno})."
    if checkpoint is None:
        text += f" {fix}."
    elif _exists(checkpoint):
        text += (f" The last good checkpoint, {checkpoint}, is intact. {fix}, then resume "
                 f"from it with train.resume={checkpoint.parent}.")
    else:
        text += f" No checkpoint was written before this one. {fix}, then run again."
    err = CheckpointWriteError(text)
    err.errno, err.filename = e.errno, e.filename
    return err


def ensure_writable(directory: str | os.PathLike, create: bool = True,
                    setting: str = "hydra.run.dir") -> Path:
    """Create ``directory`` if needed and check that files can be written in it, before a
    run does any work: a read-only file system, a directory without write permission or a
    full disk is refused with :class:`CheckpointWriteError` (its fix names ``setting``).
    With ``create=False`` nothing is made: the nearest existing directory on its path, where
    ``directory`` would be made, is checked instead."""
    directory = Path(directory)
    what = f"Cannot write the run directory {directory}"
    where = directory if create else next(
        p for p in (directory, *directory.parents) if _exists(p))
    if not create and not where.is_dir():
        raise CheckpointWriteError(f"{what}: {where} is a file, so no directory can be made "
                                   f"there. Write the run elsewhere ({setting}=...).")
    probe = where / f".colgraph-write-test-{os.getpid()}"
    try:
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"colgraph")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as e:
        _remove(probe)
        raise write_error(e, what, where, setting=setting) from None
    return directory


def remove_stale_tmp(path: str | os.PathLike) -> bool:
    """Delete ``<checkpoint>.tmp`` left by a crash mid-write; whether there was one."""
    tmp = Path(str(path) + ".tmp")
    if tmp.is_file():
        tmp.unlink()
        return True
    return False


def objects_refused(path: str | os.PathLike, error: Exception,
                    fix: str = "colgraph never writes such files",
                    what: str | None = None) -> ValueError:
    """The error for a torch file whose pickle holds Python objects that
    ``torch.load(weights_only=True)`` refused (they could run code when loaded); ``fix`` says
    what to do instead of trusting the file; ``what``: the object, when known (else read
    from ``error``)."""
    if what is None:
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
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 (a damaged pickle fails in any of a dozen ways)
        unsafe = _unsafe_global(path) if isinstance(e, pickle.UnpicklingError) else None
        if unsafe is not None:
            raise objects_refused(path, e, what=unsafe) from None
        # torch wraps an unpickling error in advice on weights_only: keep its own words
        text = str(e).split("\n\nCheck the documentation")[0].strip()
        reason = (text.splitlines() or [""])[-1][:200]
        raise ValueError(f"{path} is corrupted (damaged or truncated): the reader failed with "
                         f"{type(e).__name__}{': ' + reason if reason else ''}. Use the "
                         f"run's last good checkpoint or retrain.") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a colgraph checkpoint: it holds a "
                         f"{type(state).__name__}, not a dict.")
    try:
        _check(path, state)
    except RecursionError:
        raise ValueError(f"{path} is not a colgraph checkpoint: its contents are nested too "
                         f"deeply to check.") from None
    state["path"] = str(path)
    return state


def _check(path: Path, state: dict[str, Any]) -> None:
    """Refuse a state that is not a readable colgraph checkpoint or fails its checksums
    (which are removed)."""
    fmt = state.get("checkpoint_format")
    if isinstance(state.get("key_checksums"), dict) and (
            "colgraph_version" not in state or fmt not in READABLE_FORMATS):
        _verify(path, dict(state), CHECKPOINT_FORMAT)  # a damaged header is named as such
    if "colgraph_version" not in state:
        raise ValueError(f"{path} is not a colgraph checkpoint (no 'colgraph_version' key).")
    if fmt not in READABLE_FORMATS:
        raise ValueError(f"{path} was written by colgraph {state['colgraph_version']} in "
                         f"checkpoint format {fmt!r}; this colgraph ({__version__}) reads "
                         f"format {CHECKPOINT_FORMAT} (and the older "
                         f"{', '.join(map(str, READABLE_FORMATS[:-1]))}). Load it with the "
                         f"colgraph version that wrote it, or retrain.")
    _verify(path, state, fmt)


def _verify(path: Path, state: dict[str, Any], fmt: int) -> None:
    """Check (and remove) the checksums of a state in checkpoint format ``fmt``."""
    sums, key_sums = state.pop("checksums", None), state.pop("key_checksums", None)
    if sums is None or (key_sums is None and fmt >= 5):
        damaged = [k for k in state if isinstance(k, str) and any(
            _near(k, name) for name in INTEGRITY_KEYS)]
        if damaged:
            raise ValueError(f"{path} is corrupted: its checksums are stored under the damaged "
                             f"name {damaged[0]!r}. Use the run's last good checkpoint or "
                             f"retrain.")
        if fmt >= 4:
            raise ValueError(f"{path} has no checksums: it was not written by "
                             f"colgraph.save_checkpoint, or was edited. Refusing it.")
        warnings.warn(f"{path} is in checkpoint format {fmt} (before checksums): its "
                      f"tensors, config and counters cannot be verified.", stacklevel=3)
        return
    for name, sums_ in (("checksums", sums), ("key_checksums", key_sums)):
        if sums_ is not None and not (isinstance(sums_, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in sums_.items())):
            raise ValueError(f"{path} is corrupted: its '{name}' are damaged (not a table of "
                             f"SHA-256 digests). Use the run's last good checkpoint or "
                             f"retrain.")
    found, keys = _digests(state)
    if set(found) != set(sums):
        missing = sorted(set(sums) - set(found))[:3]
        extra = sorted(set(found) - set(sums))[:3]
        raise ValueError(f"{path} does not match its checksums: tensors missing {missing}, "
                         f"unexpected {extra}. The file was edited or damaged.")
    for name, digest in found.items():
        if digest != sums[name]:
            t = dict(_tensors(state)).get(name)
            shape = f" {list(t.shape)}" if t is not None else ""
            raise ValueError(f"{path} is corrupted: tensor '{name}'{shape} fails its SHA-256 "
                             f"checksum. Use the run's last good checkpoint or retrain.")
    if key_sums is None:
        warnings.warn(f"{path} is in checkpoint format {fmt}: its tensors are verified, but "
                      f"not its config, counters (epoch, batch, step) and other plain values "
                      f"(written before colgraph checksummed them).", stacklevel=3)
        return
    if set(keys) != set(key_sums):
        missing, extra = sorted(set(key_sums) - set(keys)), sorted(set(keys) - set(key_sums))
        raise ValueError(f"{path} does not match its checksums: "
                         + "; ".join(f"{what} {', '.join(map(repr, ks))}" for what, ks in (
                             ("missing entry", missing), ("unexpected entry", extra)) if ks)
                         + ". The file was edited or damaged: use the run's last good "
                           "checkpoint or retrain.")
    bad = [k for k in keys if keys[k] != key_sums[k]]
    if bad:
        raise ValueError(f"{path} is corrupted: its {', '.join(map(repr, bad))} "
                         f"{'fails' if len(bad) == 1 else 'fail'} the SHA-256 checksum "
                         f"written with it (the file was damaged, or edited after colgraph "
                         f"wrote it). Use the run's last good checkpoint or retrain.")


def _tensors(obj: Any, path: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in a nested dict / list, with its checksum path."""
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{path}/{k}" if path else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{path}[{i}]")


def require_keys(state: dict[str, Any], keys: tuple[str, ...], use: str) -> None:
    """Refuse a checkpoint that lacks an entry ``use`` (e.g. "resume a run") reads."""
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"{state.get('path', 'The checkpoint')} lacks "
                         f"{', '.join(map(repr, missing))}: it cannot {use}. Was it written by "
                         f"colgraph (a training run, or export_model for a model)?")


def _allowed_globals() -> set[str]:
    """The globals a weights-only load builds (torch's own list, where this torch exposes
    it, and the legacy numpy ones)."""
    names = {f"{g.__module__}.{g.__qualname__}" for g in _LEGACY_GLOBALS}
    names |= {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2"}
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        names |= set(_get_allowed_globals())
    except (ImportError, AttributeError):
        pass
    return names


def _unsafe_global(path: Path) -> str | None:
    """The first Python object (``module.name``) the checkpoint's pickle refers to that a
    weights-only load does not build and that is not a damaged spelling of one it does:
    what could run code. ``None`` when there is none: the refusal came from damage (a
    flipped opcode, a garbled name)."""
    try:
        with zipfile.ZipFile(path) as z:
            member = next(n for n in z.namelist() if n.endswith("data.pkl"))
            data = z.read(member)
    except (StopIteration, OSError, zipfile.BadZipFile, RuntimeError, ValueError, KeyError):
        return None
    allowed = _allowed_globals()
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(data):
            if isinstance(arg, str):
                strings.append(arg)
            name = None
            if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                name = arg.replace(" ", ".", 1)
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                name = f"{strings[-2]}.{strings[-1]}"
            if name is not None and name not in allowed and _well_formed(name) and not any(
                    _near(name, ok) for ok in allowed):
                return name
    except Exception:  # noqa: BLE001 (the damage that made torch refuse it)
        pass
    return None


def _well_formed(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def _near(a: str, b: str) -> bool:
    """Same length and at most two characters apart: a name damaged by a byte or two."""
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b)) <= 2


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

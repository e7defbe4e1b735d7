"""Sharded checkpoints of a column-sharded sheet, in torch.distributed.checkpoint's format.

Each process writes its own rows (its columns' rows of every per-column tensor, its edges'
rows of every per-edge tensor and of the edge list, and the same rows of the optimizer's
moments) as a chunk of the whole tensor: a ``ShardedTensor`` with its global offsets,
which ``torch.distributed.checkpoint`` (DCP) stores with a metadata file. Loading asks for
any rows: a sheet saved on ``P`` processes loads on ``P'`` processes (each reads the rows of
its new range) or whole on one process. The sheet is never gathered on one process to save.

Nothing loaded runs code. DCP reads its metadata file with ``pickle.load``, which would run
whatever the file asks for; :class:`SafeReader` reads it with an unpickler that admits only
DCP's own metadata classes, torch sizes and dtypes, and refuses metadata that declares a
non-tensor entry (DCP loads those with ``torch.load(weights_only=False)``). Tensors are read
with ``torch.load(weights_only=True)`` by DCP itself. Every file the save wrote is listed
with its SHA-256 in :func:`save_shards`' result, which the caller keeps in its own
(checksummed) checkpoint; :func:`check_files` verifies them before anything is read.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .shard import collective_device
from .state import COLUMN, EDGE, EDGE_LIST, _optimizer_kinds, row_kinds

__all__ = ["save_shards", "load_shards", "check_files", "SafeReader", "ShardsDamaged",
           "whole_part", "optimizer_whole_part", "save_run_shards", "load_run_shards",
           "remove_old_shards"]


class ShardsDamaged(ValueError):
    """A sharded checkpoint's files were changed, cut short or lost, or its metadata asks
    for something other than DCP's own classes."""


# the only globals a DCP metadata file may name (torch 2.4 - 2.13 write these)
_META = "torch.distributed.checkpoint.metadata"
ALLOWED_GLOBALS = {
    (_META, name) for name in ("Metadata", "MetadataIndex", "ChunkStorageMetadata",
                               "TensorStorageMetadata", "TensorProperties", "StorageMeta",
                               "_MEM_FORMAT_ENCODING")
} | {("torch.distributed.checkpoint.filesystem", "_StorageInfo"), ("torch", "Size"),
     ("torch.serialization", "_get_layout"), ("pathlib", "PosixPath"),
     ("pathlib", "WindowsPath"), ("pathlib", "PurePosixPath")} | {
    ("torch", str(d).split(".")[-1]) for d in (
        torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32,
        torch.int16, torch.int8, torch.uint8, torch.bool)}


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise ShardsDamaged(f"The sharded checkpoint's metadata names {module}.{name}, "
                                f"which is not one of DCP's own metadata classes: it could "
                                f"run code when loaded, so it is refused. colgraph never "
                                f"writes such files; use a checkpoint you trust.")
        return super().find_class(module, name)


def read_metadata(path: str | Path):
    """A DCP metadata file, read without running code (see the module docstring)."""
    from torch.distributed.checkpoint.metadata import Metadata, TensorStorageMetadata

    try:
        metadata = _MetadataUnpickler(io.BytesIO(Path(path).read_bytes())).load()
    except ShardsDamaged:
        raise
    except Exception as e:  # a cut or changed pickle
        raise ShardsDamaged(f"The sharded checkpoint's metadata {path} is damaged ({e}).") from e
    if not isinstance(metadata, Metadata):
        raise ShardsDamaged(f"{path} is not a DCP metadata file (it holds a "
                            f"{type(metadata).__name__}).")
    other = [k for k, v in metadata.state_dict_metadata.items()
             if not isinstance(v, TensorStorageMetadata)]
    if other:
        raise ShardsDamaged(f"The sharded checkpoint's metadata {path} declares non-tensor "
                            f"entries ({other[:3]}), which DCP would unpickle as objects: "
                            f"colgraph stores tensors only, so the file was changed. Refused.")
    return metadata


def _reader_class():
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import StorageMeta

    class SafeReader(FileSystemReader):
        """DCP's file reader, reading the metadata with :func:`read_metadata`."""

        def read_metadata(self, *args: Any, **kwargs: Any):
            metadata = read_metadata(self._get_metadata_path(kwargs.get("rank")))
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    return SafeReader


def SafeReader(path: str | Path):  # noqa: N802 (a class, built lazily: DCP is imported late)
    """A ``torch.distributed.checkpoint`` storage reader for ``path`` that runs no code."""
    return _reader_class()(str(path))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def check_files(directory: str | Path, digests: dict[str, str]) -> None:
    """Every file of a sharded checkpoint is there with the SHA-256 it was written with
    (``digests``: file name -> hex digest), and there is no other."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ShardsDamaged(f"The sharded checkpoint's directory {directory} is missing: the "
                            f"checkpoint cannot be loaded. Was it moved without its run "
                            f"directory?")
    present = {p.name for p in directory.iterdir()}
    missing, extra = sorted(set(digests) - present), sorted(present - set(digests))
    if missing or extra:
        raise ShardsDamaged(f"{directory} does not hold the files the checkpoint lists "
                            f"(missing {missing[:3]}, unexpected {extra[:3]}).")
    bad = [n for n, d in digests.items() if _sha256(directory / n) != d]
    if bad:
        raise ShardsDamaged(f"{directory}: {', '.join(bad[:3])} changed since it was written "
                            f"(checksum mismatch): the file is damaged. Use an earlier "
                            f"checkpoint.")


def _sharded(t: Tensor, offset: int, total: int, axis: int, shard) -> Any:
    from torch.distributed._shard.sharded_tensor import Shard, ShardMetadata, \
        init_from_local_shards

    offsets, sizes, shape = [0] * t.dim(), list(t.shape), list(t.shape)
    offsets[axis], shape[axis] = offset, total
    meta = ShardMetadata(shard_offsets=offsets, shard_sizes=sizes,
                         placement=f"rank:{shard.rank}/{t.device}")
    return init_from_local_shards([Shard(t.contiguous(), meta)], shape,
                                  process_group=shard.group)


def _rows(model: nn.Module, optimizer: torch.optim.Optimizer | None
          ) -> tuple[dict[str, tuple[Tensor, str]], Any]:
    """Every tensor this process holds rows of, by DCP key, with its row kind."""
    by_key, _, edges = row_kinds(model)
    state = model.state_dict()
    out = {f"model.{k}": (state[k], kind) for k, kind in by_key.items()}
    if optimizer is not None:
        kinds = _optimizer_kinds(model, optimizer)
        for i, entry in optimizer.state_dict()["state"].items():
            kind = kinds[int(i)]
            for name, v in entry.items():
                if kind is not None and isinstance(v, Tensor) and v.dim():
                    out[f"optimizer.{i}.{name}"] = (v, kind)
    return out, edges


def save_shards(directory: str | Path, model: nn.Module,
                optimizer: torch.optim.Optimizer | None = None,
                extra: dict[str, Tensor] | None = None) -> dict[str, Any]:
    """Write this process's rows of ``model`` (and ``optimizer``'s moments) into
    ``directory`` with DCP. A collective over the sheet's column group: call it on every
    process of ONE group (the data-parallel replicas hold the same rows). ``extra``: more
    per-edge tensors by name (a plasticity schedule's statistics). Returns, on every
    process, what loading needs: the files' SHA-256 digests (on the first process) and the
    sheet's edge pointer (``edge_ptr [N + 1]``: where each column's incoming edges start in
    the whole edge list, so that any range of columns finds its edge rows)."""
    import torch.distributed.checkpoint as dcp

    rows, edges = _rows(model, optimizer)
    rows.update({f"extra.{name}": (t, EDGE) for name, t in (extra or {}).items()})
    shard = edges.shard
    per_process = shard.sizes(edges.num_edges)
    offsets = {COLUMN: shard.lo, EDGE: sum(per_process[:shard.rank])}
    totals = {COLUMN: shard.num_columns, EDGE: sum(per_process)}
    state = {}
    for key, (t, kind) in rows.items():
        base = COLUMN if kind == COLUMN else EDGE
        state[key] = _sharded(t, offsets[base], totals[base], 1 if kind == EDGE_LIST else 0,
                              shard)
    directory = Path(directory)
    dcp.save(state, storage_writer=dcp.FileSystemWriter(str(directory)),
             process_group=shard.group)
    dist.barrier(group=shard.group)  # every file written before any is read back
    # each column's in-degree, gathered: the edge rows of any range of columns
    device = collective_device(shard.group)
    degree = torch.bincount(edges.index[1] - shard.lo, minlength=shard.num_owned).to(device)
    longest = int(shard.bounds.diff().max())
    pieces = [degree.new_zeros(longest) for _ in range(shard.parts)]
    dist.all_gather(pieces, torch.cat([degree, degree.new_zeros(longest - degree.numel())]),
                    group=shard.group)
    degree = torch.cat([p[:n] for p, n in zip(pieces, shard.bounds.diff().tolist())]).cpu()
    ptr = torch.cat([degree.new_zeros(1), degree.cumsum(0)])
    digests = ({p.name: _sha256(p) for p in sorted(directory.iterdir())}
               if shard.rank == 0 else None)  # one process reads the files back
    moments = sorted(k for k in rows if k.startswith("optimizer."))
    return {"files": digests, "edge_ptr": ptr, "moments": moments,
            "extra": sorted(extra or {})}


def load_shards(directory: str | Path, info: dict[str, Any], model: nn.Module,
                optimizer: torch.optim.Optimizer | None = None, extra: bool = False
                ) -> dict[str, Tensor] | None:
    """Fill ``model``'s rows from a sharded checkpoint for the columns this process owns
    now (any number of processes, one included: a whole sheet); with ``optimizer``, fill
    its moments instead (load the model first, build the optimizer on it, load its whole
    state, then its moments). ``info``: :func:`save_shards`' result. Files are checked
    against their digests first; nothing read runs code. ``extra=True``: return the
    extra per-edge tensors :func:`save_shards` was given (this process's rows) instead."""
    import torch.distributed.checkpoint as dcp

    check_files(directory, info["files"])
    _, _, edges = row_kinds(model)
    shard = edges.shard
    ptr = info["edge_ptr"]
    if ptr.numel() != shard.num_columns + 1:
        raise ShardsDamaged(f"The sharded checkpoint holds {ptr.numel() - 1} columns; this "
                            f"sheet has {shard.num_columns}.")
    first, last = int(ptr[shard.lo]), int(ptr[shard.hi])
    if extra:
        wanted = {f"extra.{name}": EDGE for name in info.get("extra", ())}
        like = {k: edges.length for k in wanted}
    elif optimizer is None:
        wanted = {f"model.{k}": kind for k, kind in row_kinds(model)[0].items()}
        like = {f"model.{k}": t for k, t in model.state_dict().items()}
    else:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        kinds = _optimizer_kinds(model, optimizer)
        wanted = {k: kinds[int(k.split(".")[1])] for k in info["moments"]}
        like = {k: params[int(k.split(".")[1])].detach() for k in wanted}
    state = {}
    for key, kind in wanted.items():  # this process's rows NOW
        base = COLUMN if kind == COLUMN else EDGE
        axis = 1 if kind == EDGE_LIST else 0
        offset, total = ((shard.lo, shard.num_columns) if base == COLUMN
                         else (first, int(ptr[-1])))
        shape = list(like[key].shape)
        shape[axis] = shard.num_owned if base == COLUMN else last - first
        target = torch.empty(shape, dtype=like[key].dtype, device=like[key].device)
        state[key] = _sharded(target, offset, total, axis, shard) if shard.enabled else target
    with warnings.catch_warnings():  # one process: DCP warns that it guesses so (it is)
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, storage_reader=SafeReader(directory),
                 process_group=shard.group if shard.enabled else None,
                 no_dist=not shard.enabled)
    loaded = {k: (v.local_shards()[0].tensor if shard.enabled else v) for k, v in state.items()}
    if extra:
        return {k[len("extra."):]: v for k, v in loaded.items()}
    if optimizer is None:
        model.load_state_dict({k[len("model."):]: v for k, v in loaded.items()}, strict=False)
        return
    for key, v in loaded.items():
        _, i, name = key.split(".", 2)
        optimizer.state[params[int(i)]][name] = v


# ---------------------------------------------------------------------- in a run's checkpoint
SHARDS_GLOB = "checkpoint-step*.shards"


def whole_part(model: nn.Module, state: dict[str, Any]) -> dict[str, Any]:
    """The entries of a ``state_dict`` that are not rows of columns or edges (what a
    checkpoint keeps beside its shards: encoders, readouts, the step embedding, buffers)."""
    rows = row_kinds(model)[0]
    return {k: v for k, v in state.items() if k not in rows}


def optimizer_whole_part(model: nn.Module, optimizer: torch.optim.Optimizer
                         ) -> dict[str, Any]:
    """The optimizer's ``state_dict`` without the moments of row tensors (in the shards):
    its step counts, the moments of whole parameters and its param groups."""
    osd = optimizer.state_dict()
    kinds = _optimizer_kinds(model, optimizer)
    state = {i: {k: v for k, v in entry.items()
                 if kinds[int(i)] is None or not (isinstance(v, Tensor) and v.dim())}
             for i, entry in osd["state"].items()}
    return {**osd, "state": state}


def save_run_shards(run_dir: Path, step: int, model: nn.Module,
                    optimizer: torch.optim.Optimizer, data_rank: int,
                    extra: dict[str, Tensor] | None = None) -> dict[str, Any] | None:
    """The shards of a run's checkpoint at ``step``: written into
    ``RUN_DIR/checkpoint-step<step>.shards`` by the processes of data group 0 (the others
    hold the same rows); returns, on rank 0, the ``shards`` entry for the checkpoint file.
    Written under a temporary name and renamed when complete, so a crash leaves the last
    complete shards (which the last checkpoint file names) as they were."""
    shard = row_kinds(model)[2].shard
    name = f"checkpoint-step{step:09d}.shards"
    final, tmp = run_dir / name, run_dir / (name + ".tmp")
    info = None
    if data_rank == 0:
        if shard.rank == 0 and tmp.exists():
            import shutil

            shutil.rmtree(tmp)
        dist.barrier(group=shard.group)
        try:
            info = save_shards(tmp, model, optimizer, extra)
            if shard.rank == 0:
                import shutil

                if final.exists():  # the same step saved again (Ctrl-C at an epoch's end)
                    shutil.rmtree(final)
                tmp.rename(final)
        except OSError as e:
            from ..checkpoint import CHECKPOINT_NAME, write_error

            raise write_error(e, f"Could not write the checkpoint's shards {tmp}", run_dir,
                              run_dir / CHECKPOINT_NAME) from None
    return None if info is None or shard.rank != 0 else {"dir": name, **info}


def remove_old_shards(run_dir: Path, keep: str) -> None:
    """Delete shard directories other than ``keep`` (after the checkpoint that names it
    is on disk), partial ones included."""
    import shutil

    for path in run_dir.glob(SHARDS_GLOB + "*"):
        if path.name != keep:
            shutil.rmtree(path, ignore_errors=True)


def load_run_shards(checkpoint: dict[str, Any], model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, extra: bool = False
                    ) -> dict[str, Tensor] | None:
    """Fill ``model`` (or ``optimizer``'s moments, or return the extra tensors) from the
    shards a checkpoint names, for the columns this process owns (see :func:`load_shards`)."""
    info = checkpoint["shards"]
    directory = Path(checkpoint["path"]).parent / info["dir"]
    return load_shards(directory, info, model, optimizer, extra)

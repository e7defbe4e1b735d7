"""Data-parallel training with PyTorch's own engine: ``torchrun`` sets the environment,
``torch.distributed`` (gloo on CPU, NCCL on CUDA) moves the gradients, and
``DistributedDataParallel`` averages them during backward.

How colgraph shards the data: every rank draws the SAME permutation of the training set
each epoch (seeded by ``train.seed`` and the epoch) and takes its contiguous share of each
global batch of ``train.batch_size`` samples. Averaged gradients then equal the gradient of
the global batch (exactly for equal shares, up to float order), so a run on K processes
follows a one-process run with the same ``train.batch_size`` as long as nothing random
happens per sample (no dropout, no augmentation), and a checkpoint (which stores the
position in global batches) resumes at any world size. Every rank builds the same initial
model from ``train.seed``; then each rank other than 0 draws its own dropout and
augmentation masks (:meth:`Distributed.reseed`), so the ranks' shares of a batch are not
masked alike (rank 0 keeps the one-process stream). Only rank 0 evaluates, logs,
shows progress and writes checkpoints / connectome snapshots; metrics are reduced across
ranks.

``Distributed.from_env()`` is a no-op without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``), so
the same code runs in one process.
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["Distributed"]


class Distributed:
    """This process's place in a multi-process job (``world == 1``: a single process).

    The ``world`` processes form a ``data x columns`` mesh (row-major: the ``columns``
    processes of one sheet have consecutive ranks, so a node's fast links carry the halo):
    ``columns`` processes share each sheet (:mod:`colgraph.parallel`; 1 = every process
    holds the whole sheet) and the ``data`` groups split each batch.
    """

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0,
                 owns_group: bool = False, columns: int = 1,
                 device: torch.device | None = None) -> None:
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.columns = columns
        self.data_world, self.data_rank = world // columns, rank // columns
        self.column_rank = rank % columns
        # collectives run on tensors of the backend's device (NCCL: CUDA only)
        self.device = device if device is not None and device.type == "cuda" else \
            torch.device("cpu")
        self._owns_group = owns_group
        self.column_group = self.data_group = None
        if world > 1 and columns > 1:
            from torch.distributed.device_mesh import init_device_mesh

            mesh = init_device_mesh(self.device.type, (self.data_world, columns),
                                    mesh_dim_names=("data", "columns"))
            self.column_group, self.data_group = (mesh.get_group("columns"),
                                                  mesh.get_group("data"))

    @classmethod
    def from_env(cls, device: torch.device, columns: int = 1) -> "Distributed":
        """Join the process group ``torchrun`` describes in the environment (``RANK``,
        ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` / ``MASTER_PORT``); a single process
        without them. ``columns``: processes per sheet (``parallel.columns``), which must
        divide the world size (checked on every process before any collective)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if columns > 1 and world == 1:
            raise ValueError(f"parallel.columns={columns} splits each sheet over {columns} "
                             f"processes, but this run is one process: launch it with "
                             f"torchrun --nproc_per_node={columns} -m colgraph train ... (or a "
                             f"multiple of {columns} processes), or set parallel.columns=1.")
        if columns < 1 or world % columns:
            raise ValueError(f"parallel.columns={columns} processes per sheet do not divide the "
                             f"{world} processes of this run (WORLD_SIZE={world}): start a "
                             f"multiple of {columns} processes (torchrun --nproc_per_node="
                             f"{columns * max(1, world // columns)}), or set parallel.columns to "
                             f"a divisor of {world}.")
        if world <= 1:
            return cls(device=device)
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":  # before the group starts: NCCL binds to it
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        owns = not dist.is_initialized()
        if owns:
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend, rank=rank, world_size=world)
        return cls(rank, world, local, owns, columns, device)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def column_shard(self, bounds: torch.Tensor, order: torch.Tensor | None = None):
        """This process's :class:`~colgraph.parallel.ColumnShard` of a sheet split at
        ``bounds`` over its column group (``order``: the columns' original ids)."""
        from .parallel import ColumnShard

        return ColumnShard(bounds, self.column_rank, self.column_group, order)

    def shard(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """This data group's contiguous share of a global batch (shares differ by at most
        one; the processes of one sheet take the same share)."""
        if self.data_world == 1:
            return tensors
        return tuple(torch.tensor_split(t, self.data_world)[self.data_rank] for t in tensors)

    def reseed(self, seed: int, step: int = 0) -> None:
        """Give this data group its own torch random stream (dropout, augmentation) from
        ``seed``, its data rank and ``step`` (a resumed run restores rank 0's generators on
        every rank: call it after). Data rank 0 keeps its stream, so one process is
        unchanged; call it after the model is built, so every rank starts from the same
        parameters. The processes of one sheet share the stream: they see the same batch
        (each draws its own columns' dropout masks, see ``ColumnShard.own_random``)."""
        import numpy as np

        if self.data_rank:
            torch.manual_seed(int(np.random.SeedSequence([seed, self.data_rank, step])
                                  .generate_state(1)[0]))

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in DistributedDataParallel over its data group (gradients averaged in
        backward); the model itself when one data group holds it. Data rank 0's parameters
        and buffers are broadcast to its group here, so wrap again after the model's
        parameters change shape (edges pruned and grown, columns added)."""
        if self.data_world == 1:
            return model
        device_ids = [model_device(model).index] if model_device(model).type == "cuda" else None
        # buffers (edges, positions) are the same on every rank by construction: not
        # broadcast again at every forward
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids,
                                                   broadcast_buffers=False,
                                                   process_group=self.data_group)

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """Sum of each value over the data groups (one all-reduce; the processes of one
        sheet hold the same values: the task reduces its loss and statistics over them)."""
        if self.data_world == 1 or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64,
                         device=self.device)
        dist.all_reduce(t, group=self.data_group)
        return dict(zip(keys, t.tolist()))

    def mean_tensor(self, t: torch.Tensor) -> torch.Tensor:
        """The mean of ``t`` over the ranks (a new tensor, on the backend's device)."""
        if not self.enabled:
            return t
        out = t.to(self.device, copy=True)
        dist.all_reduce(out)
        return out.div_(self.world).to(t.device)

    def data_mean(self, t: torch.Tensor) -> torch.Tensor:
        """The mean of ``t`` over the data groups (the processes that hold the same columns:
        e.g. their edges' attention statistics); ``t`` itself when there is one."""
        if self.data_world == 1:
            return t
        out = t.to(self.device, copy=True)
        dist.all_reduce(out, group=self.data_group)
        return out.div_(self.data_world).to(t.device)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (a picklable value, e.g. a metrics dict)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device

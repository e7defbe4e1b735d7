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
    """This process's place in a data-parallel job (``world == 1``: a single process)."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0,
                 owns_group: bool = False) -> None:
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self._owns_group = owns_group

    @classmethod
    def from_env(cls, device: torch.device) -> "Distributed":
        """Join the process group ``torchrun`` describes in the environment (``RANK``,
        ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` / ``MASTER_PORT``); a single process
        without them."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        owns = not dist.is_initialized()
        if owns:
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend, rank=rank, world_size=world)
        return cls(rank, world, local, owns)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """This rank's contiguous share of a global batch (shares differ by at most one)."""
        if not self.enabled:
            return tensors
        return tuple(torch.tensor_split(t, self.world)[self.rank] for t in tensors)

    def reseed(self, seed: int, step: int = 0) -> None:
        """Give this rank its own torch random stream (dropout, augmentation) from ``seed``,
        its rank and ``step`` (a resumed run restores rank 0's generators on every rank:
        call it after). Rank 0 keeps its stream, so one process is unchanged; call it after
        the model is built, so every rank starts from the same parameters."""
        if self.rank:
            import numpy as np

            torch.manual_seed(int(np.random.SeedSequence([seed, self.rank, step])
                                  .generate_state(1)[0]))

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in DistributedDataParallel (gradients averaged in backward); the model
        itself in one process. Rank 0's parameters and buffers are broadcast to every rank
        here, so wrap again after the model's parameters change shape (edges pruned and
        grown, columns added)."""
        if not self.enabled:
            return model
        device_ids = [model_device(model).index] if model_device(model).type == "cuda" else None
        # buffers (edges, positions) are the same on every rank by construction: not
        # broadcast again at every forward
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids,
                                                   broadcast_buffers=False)

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """Sum of each value over the ranks (one all-reduce)."""
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
        dist.all_reduce(t)
        return dict(zip(keys, t.tolist()))

    def mean_tensor(self, t: torch.Tensor) -> torch.Tensor:
        """The mean of ``t`` over the ranks (a new tensor)."""
        if not self.enabled:
            return t
        t = t.clone()
        dist.all_reduce(t)
        return t.div_(self.world)

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

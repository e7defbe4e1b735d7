"""Column sharding: one sheet split across the processes of a group (model parallelism).

Symbols: ``P`` processes of the column group, ``N`` columns, ``n`` columns this process
owns, ``h`` halo columns (other processes' columns its edges read), ``E`` its edges.

Untied parameters grow as ``N x`` (per-column size), so the sheet, not the batch, is what
outgrows a device. A column-sharded sheet is split like a partitioned graph in DistDGL or
PyG's distributed package, and a colgraph sheet is the easy case of it:

* **Ownership.** Columns are renumbered (:mod:`colgraph.parallel.partition`) so that
  process ``p`` owns the contiguous range ``bounds[p]:bounds[p + 1]``. It holds the rows of
  every per-column tensor for those columns, the edges INTO them (edges are stored with
  their target, sorted by target: a contiguous slice of the sheet's edge list) with every
  per-edge tensor, and the states of its columns.
* **Halo.** Attention at a target reads the keys and values of its sources, computed by the
  SOURCE column's own projections. Sources owned elsewhere form the halo. A
  :class:`HaloPlan` lists, per peer, the columns this process receives (the sorted unique
  remote sources of its edges: known locally) and the columns it sends (learned from the
  peers with one ``all_to_all`` when the plan is built, i.e. after every edge edit).
  :func:`exchange` sends what peers need once per step (one ``all_to_all_single``); its
  backward sends the halo's gradients back to their owners, which add them in.
* **One loss everywhere.** Sums over columns (readouts over the output area, objectives,
  metrics, activity statistics) are all-reduced with :meth:`ColumnShard.sum`, whose
  backward is also an all-reduce, so every process computes the same global loss. Each
  process back-propagates ``loss / P`` (:meth:`ColumnShard.loss`): then the gradient of a
  column's own parameters is the one-process gradient, and a parameter every process holds
  a copy of (encoders, readout heads, the step embedding, shared weights) gets partial
  gradients whose sum over the group (:meth:`ColumnShard.sync_replicated`) is the
  one-process gradient.
* **One process** is ``P = 1`` of the same code: no group, the halo is empty, the sums are
  identities and nothing is renumbered.

Collectives run on tensors of the group's device (gloo: CPU, NCCL: CUDA), and every
process must reach every collective in the same order, backward included. The autograd
engine runs a backward in the reverse order of the forward's node creation, so the rule is:
every process records the same sequence of collective autograd nodes. Code on a sharded
sheet must therefore never branch on what a process owns (a process without output columns
still pools an empty tensor, see :meth:`ColumnShard.amax`), and every input of a
differentiable collective must require grad on all processes or on none.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["ColumnShard", "HaloPlan", "exchange"]


class ColumnShard:
    """This process's share of a column-sharded sheet.

    Args:
        bounds: ``[P + 1]`` increasing column ids: process ``p`` owns columns
            ``bounds[p]:bounds[p + 1]`` (after renumbering).
        rank: this process's rank in ``group``.
        group: the column group (``None``: the default group when ``P > 1``).
        order: ``[N]`` the original id of each (renumbered) column, when the sheet was
            renumbered by a partition: whatever is drawn at random over columns (plasticity's
            choices, the smoothness loss's partners) is drawn in the original ids, so a run
            does not depend on how its sheet is split.

    ``ColumnShard.whole(N)`` is one process owning every column.
    """

    def __init__(self, bounds: Tensor | Iterable[int], rank: int = 0,
                 group: dist.ProcessGroup | None = None, order: Tensor | None = None) -> None:
        bounds = torch.as_tensor(bounds, dtype=torch.long).cpu()
        if (bounds.dim() != 1 or bounds.numel() < 2 or int(bounds[0]) != 0
                or bool((bounds.diff() < 1).any())):
            raise ValueError(f"Expected column bounds [0, b1, ..., N], strictly increasing "
                             f"(every process owns at least one column), got "
                             f"{bounds.tolist()[:10]}.")
        parts = bounds.numel() - 1
        if not 0 <= rank < parts:
            raise ValueError(f"rank {rank} is outside the {parts} parts of the sheet.")
        self.bounds, self.rank, self.group = bounds, rank, group
        self.lo, self.hi = int(bounds[rank]), int(bounds[rank + 1])
        if order is not None and order.shape != (int(bounds[-1]),):
            raise ValueError(f"Expected the columns' original ids as an order of shape "
                             f"[{int(bounds[-1])}], got {list(order.shape)}.")
        self.order = None if order is None else order.long().cpu()
        self.inverse = None if order is None else torch.argsort(self.order)

    @classmethod
    def whole(cls, num_columns: int, order: Tensor | None = None) -> "ColumnShard":
        """One process that owns all ``num_columns`` columns (``order``: see above)."""
        return cls([0, num_columns], order=order)

    @property
    def parts(self) -> int:
        return self.bounds.numel() - 1

    @property
    def enabled(self) -> bool:
        return self.parts > 1

    @property
    def num_columns(self) -> int:
        return int(self.bounds[-1])

    @property
    def num_owned(self) -> int:
        return self.hi - self.lo

    def owner(self, ids: Tensor) -> Tensor:
        """The rank that owns each column id."""
        return torch.searchsorted(self.bounds.to(ids.device), ids, right=True) - 1

    def owned(self, ids: Tensor) -> tuple[Tensor, Tensor | None]:
        """Of the column ids ``ids`` (e.g. an area, in its order): the local rows of those
        this process owns, and their positions in ``ids`` (``None`` when it owns all)."""
        if not self.enabled:
            return ids, None
        slots = ((ids >= self.lo) & (ids < self.hi)).nonzero().flatten()
        return ids[slots] - self.lo, slots

    @contextlib.contextmanager
    def own_random(self, device: torch.device | None = None) -> Iterator[None]:
        """Within: this process's own random stream, for what is drawn per column (dropout
        masks in the sheet), seeded from ONE draw of the default stream and the rank; after
        it, the default stream goes on alike on every process of the group. Whatever is
        drawn for the whole batch (masked-patch masks, augmentation) comes from the default
        stream, which the group shares, so every process sees the same batch. Nothing
        changes on one process. (The model enters it only when its forward draws: without
        dropout the shared stream advances exactly as on one process.)"""
        if not self.enabled:
            yield
            return
        import numpy as np

        shared = int(torch.randint(0, 2**62, (1,)))  # the same on every process
        own = int(np.random.SeedSequence([shared, self.rank]).generate_state(1, np.uint64)[0])
        devices = [device] if device is not None and device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(own)
            yield

    # ------------------------------------------------------------------ reductions
    def sum(self, t: Tensor) -> Tensor:
        """``t`` summed over the group, differentiably (the backward all-reduces the
        gradient too: see the module docstring). ``t`` itself on one process."""
        return t if not self.enabled else _AllReduce.apply(t, self.group)

    def mean(self, t: Tensor) -> Tensor:
        """The mean of all elements of ``t`` over the group's columns (``t.mean()`` on one
        process; the group's ``t`` are same-shaped but for the column dimension)."""
        if not self.enabled:
            return t.mean()
        total = self.sum(torch.stack([t.sum(), t.new_tensor(float(t.numel()))]))
        return total[0] / total[1]

    def mean_over(self, t: Tensor, dim: int, count: int) -> Tensor:
        """The mean of ``t`` over its column dimension ``dim`` (``count`` entries there over
        the whole group): ``t.mean(dim)`` on one process."""
        return t.mean(dim) if not self.enabled else self.sum(t.sum(dim)) / count

    def amax(self, t: Tensor, dim: int) -> Tensor:
        """The maximum of ``t`` over its column dimension ``dim`` across the group,
        differentiable: the gradient reaches the process (the first, on ties) that holds
        the maximum. ``t.amax(dim)`` on one process."""
        if not self.enabled:
            return t.amax(dim)
        # a -inf entry, so that a process without columns here computes the same graph
        # (every process must record the same collectives: see the module docstring)
        pad = t.new_full(t.shape[:dim] + (1,) + t.shape[dim + 1:], float("-inf"))
        local = torch.cat([t, pad], dim).amax(dim)
        every = t.new_empty(self.parts * local.numel())
        dist.all_gather_into_tensor(every, local.detach().reshape(-1), group=self.group)
        every = every.view((self.parts,) + local.shape)
        first = every.argmax(0) == self.rank  # argmax returns the first maximum
        return self.sum(torch.where(first, local, torch.zeros_like(local)))

    def total(self, n: int) -> int:
        """An integer summed over the group (not differentiable)."""
        if not self.enabled:
            return n
        t = torch.tensor([n], dtype=torch.long, device=collective_device(self.group))
        dist.all_reduce(t, group=self.group)
        return int(t)

    def sizes(self, n: int) -> list[int]:
        """Every process's ``n`` (e.g. how many edges it holds), in rank order."""
        if not self.enabled:
            return [n]
        device = collective_device(self.group)
        out = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(self.parts)]
        dist.all_gather(out, torch.tensor([n], device=device), group=self.group)
        return [int(v) for v in out]

    def gather(self, t: Tensor, dim: int = 0) -> Tensor | None:
        """Every process's ``t`` concatenated along ``dim`` in rank order (its columns' or
        edges' rows: the whole sheet's) on the group's first process, ``None`` on the
        others; ``t`` itself on one process. The shapes may differ along ``dim`` only."""
        if not self.enabled:
            return t
        sizes = self.sizes(t.size(dim))
        pad = list(t.shape)
        pad[dim] = max(sizes) - t.size(dim)
        padded = torch.cat([t, t.new_zeros(pad)], dim).contiguous() if pad[dim] else \
            t.contiguous()
        pieces = [torch.empty_like(padded) for _ in sizes] if self.rank == 0 else None
        dist.gather(padded, pieces, group=self.group, group_dst=0)
        if self.rank:
            return None
        return torch.cat([p.narrow(dim, 0, n) for p, n in zip(pieces, sizes)], dim)

    def loss(self, loss: Tensor) -> Tensor:
        """What this process back-propagates of the group's (equal) ``loss``:
        ``loss / P``, so gradients summed over the group equal one process's."""
        return loss if not self.enabled else _Scale.apply(loss, 1.0 / self.parts)

    def replicated(self, module: nn.Module) -> list[nn.Parameter]:
        """``module``'s parameters every process holds whole (not rows of columns or edges)."""
        from ..nn import SheetEdges

        owned: set[int] = set()
        for m in module.modules():
            if isinstance(m, SheetEdges):
                owned.update(id(t) for t in m.sharded_tensors())
        return [p for p in module.parameters() if id(p) not in owned]

    def sync_replicated(self, module: nn.Module) -> None:
        """Sum the gradients of ``module``'s replicated parameters over the group (one
        all-reduce of one flat buffer), after backward."""
        if not self.enabled:
            return
        grads = [p.grad for p in self.replicated(module) if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, group=self.group)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def all_to_all(self, values: Tensor, send_counts: list[int], recv_counts: list[int]
                   ) -> Tensor:
        """Rows of ``values`` split by ``send_counts`` go to each peer; rows from each peer
        (``recv_counts``) come back, in rank order."""
        out = values.new_empty((sum(recv_counts),) + tuple(values.shape[1:]))
        dist.all_to_all_single(out, values.contiguous(), recv_counts, send_counts,
                               group=self.group)
        return out

    def __repr__(self) -> str:
        return (f"ColumnShard(rank={self.rank}, parts={self.parts}, "
                f"columns={self.lo}:{self.hi} of {self.num_columns})")


def collective_device(group: dist.ProcessGroup | None = None) -> torch.device:
    """Where a tensor made for a collective of ``group`` must live: the current CUDA device
    under NCCL (which takes CUDA tensors only), else the CPU."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class _AllReduce(torch.autograd.Function):
    """Sum over the group; the backward sums the gradients over the group too (every
    process's loss depends on every process's ``t``). Written here because torch's own
    (``torch.distributed.nn.functional.all_reduce``) is deprecated."""

    @staticmethod
    def forward(ctx, t: Tensor, group) -> Tensor:
        ctx.group = group
        t = t.clone()
        dist.all_reduce(t, group=group)
        return t

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class _Scale(torch.autograd.Function):
    """Identity forward, gradient times ``scale``."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad * ctx.scale, None


@dataclass(frozen=True)
class HaloPlan:
    """Who sends which columns to whom, for one process and the current edges.

    Attributes:
        local_index: ``[2, E]`` this process's edges in local coordinates: targets
            ``0 .. n-1`` (own columns), sources ``0 .. n-1`` own, ``n .. n+h-1`` halo.
        recv: ``[h]`` global ids of the halo columns (sorted: grouped by owner).
        recv_counts: halo columns received from each rank.
        send: ``[s]`` local rows of own columns sent, grouped by receiving rank.
        send_counts: own columns sent to each rank.
    """

    local_index: Tensor
    recv: Tensor
    recv_counts: list[int]
    send: Tensor
    send_counts: list[int]

    @property
    def num_halo(self) -> int:
        return self.recv.numel()

    @classmethod
    def build(cls, index: Tensor, shard: ColumnShard) -> "HaloPlan":
        """The plan for edges ``index [2, E]`` (global ids, targets owned by this process).
        Collective on a sharded sheet (every process builds its plan at once)."""
        src, dst = index
        if not shard.enabled:
            empty = index.new_empty(0)
            return cls(index, empty, [0], empty, [0])
        lo, n = shard.lo, shard.num_owned
        remote = (src < lo) | (src >= shard.hi)
        recv = torch.unique(src[remote])  # sorted, so grouped by owner
        recv_counts = torch.bincount(shard.owner(recv), minlength=shard.parts)
        local_src = torch.where(remote, n + torch.searchsorted(recv, src), src - lo)
        local_index = torch.stack([local_src, dst - lo])
        # tell each owner which of its columns this process needs (one count exchange,
        # then the ids themselves)
        send_counts = shard.all_to_all(recv_counts, [1] * shard.parts, [1] * shard.parts)
        rc, sc = recv_counts.tolist(), send_counts.tolist()
        requested = shard.all_to_all(recv, rc, sc)
        return cls(local_index, recv, rc, requested - lo, sc)


class _Halo(torch.autograd.Function):
    """``[own rows | halo rows]`` of each tensor: see :func:`exchange`."""

    @staticmethod
    def forward(ctx, plan: HaloPlan, shard: ColumnShard, *tensors: Tensor):
        ctx.plan, ctx.shard = plan, shard
        ctx.shapes = [t.shape for t in tensors]
        n = tensors[0].size(0)
        flat = [t.reshape(n, -1) for t in tensors]
        widths = [f.size(1) for f in flat]
        packed = torch.cat([f.index_select(0, plan.send) for f in flat], 1)  # (s, sum widths)
        halo = shard.all_to_all(packed, plan.send_counts, plan.recv_counts)  # (h, sum widths)
        ctx.widths = widths
        return tuple(torch.cat([t, h.view((plan.num_halo,) + t.shape[1:])])
                     for t, h in zip(tensors, halo.split(widths, 1)))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads: Tensor):
        plan, shard = ctx.plan, ctx.shard
        n = grads[0].size(0) - plan.num_halo
        halo = torch.cat([g[n:].reshape(plan.num_halo, -1) for g in grads], 1)
        back = shard.all_to_all(halo, plan.recv_counts, plan.send_counts)  # (s, sum widths)
        out = []
        for g, b, shape in zip(grads, back.split(ctx.widths, 1), ctx.shapes):
            own = g[:n].reshape(n, -1).index_add(0, plan.send, b)
            out.append(own.view(shape))
        return (None, None, *out)


def exchange(plan: HaloPlan, shard: ColumnShard, *tensors: Tensor) -> tuple[Tensor, ...]:
    """Each of ``tensors`` (``[n, ...]``, one row per own column) extended with the rows of
    the halo columns from their owners: ``[n + h, ...]``, in the order of
    ``plan.local_index``'s sources. One ``all_to_all_single`` for all tensors; the backward
    returns the halo rows' gradients to their owners (added to the rows they sent).
    The tensors themselves on one process."""
    if not shard.enabled:
        return tensors
    return _Halo.apply(plan, shard, *tensors)


"""A column-sharded sheet's state: this process's rows of a whole sheet's state dicts, and
whole state dicts moved into another column order. (Sharded checkpoints, which never
gather the sheet: :mod:`colgraph.parallel.checkpoint`.)

Which rows a process holds follows from the sheet's one edge owner
(:class:`~colgraph.nn.SheetEdges`): every registered per-column tensor holds the rows of its
columns (a contiguous range of the renumbered columns), every registered per-edge tensor and
the edge list the edges into those columns (a contiguous slice of the canonical,
target-sorted edge list); everything else (positions, encoders, readouts, shared weights) is
whole on every process.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["owned_state", "owned_optimizer_state", "renumber_state", "renumber_optimizer_state",
           "rows_for", "owned_edge_rows"]

COLUMN, EDGE, EDGE_LIST = "column", "edge", "edge list"


def _sheets(model: nn.Module):
    from ..nn import SheetEdges

    return [(name + "." if name else "", m) for name, m in model.named_modules()
            if isinstance(m, SheetEdges)]


def _sharded(model: nn.Module) -> bool:
    return any(edges.shard.enabled for _, edges in _sheets(model))


def row_kinds(model: nn.Module) -> tuple[dict[str, str], dict[int, str], Any]:
    """``(by state-dict key, by tensor id, edges)``: which tensors hold rows of columns
    (``"column"``) or of edges (``"edge"``, ``"edge list"`` for the ``[2, E]`` index) of the
    model's sheet, and the sheet's edge owner."""
    sheets = _sheets(model)
    if len(sheets) != 1:
        raise ValueError(f"Expected a model with one sheet, found {len(sheets)}.")
    prefix, edges = sheets[0]
    by_id = {id(e.get()): COLUMN for e in edges._columns}
    by_id.update({id(e.get()): EDGE for e in edges._registry})
    by_key = {key: by_id[id(t)] for key, t in model.state_dict(keep_vars=True).items()
              if id(t) in by_id}
    by_key[prefix + "index"] = EDGE_LIST
    return by_key, by_id, edges


def _narrow(t: Tensor, kind: str, columns: tuple[int, int], edges: tuple[int, int]) -> Tensor:
    lo, hi = columns if kind == COLUMN else edges
    return t.narrow(1 if kind == EDGE_LIST else 0, lo, hi - lo)


def _edge_range(edges, whole_index: Tensor) -> tuple[int, int]:
    target = whole_index[1]
    first, last = torch.searchsorted(
        target, torch.tensor([edges.shard.lo, edges.shard.hi], device=target.device)).tolist()
    return first, last


def owned_state(model: nn.Module, whole: dict[str, Tensor]) -> dict[str, Tensor]:
    """The part of a whole sheet's ``state_dict`` that ``model`` (built on this process's
    :class:`~colgraph.parallel.ColumnShard`) holds: its columns' rows of per-column tensors,
    its edges' rows of per-edge tensors and of the edge list, everything else whole.
    ``whole`` itself on one process."""
    if not _sharded(model):
        return whole
    by_key, _, edges = row_kinds(model)
    index_key = next(k for k, kind in by_key.items() if kind == EDGE_LIST)
    ranges = (edges.shard.lo, edges.shard.hi), _edge_range(edges, whole[index_key])
    return {k: _narrow(t, by_key[k], *ranges) if k in by_key and isinstance(t, Tensor) else t
            for k, t in whole.items()}


def _optimizer_kinds(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str | None]:
    """The row kind of each parameter of ``optimizer``, in its ``state_dict`` index order."""
    _, by_id, _ = row_kinds(model)
    return [by_id.get(id(p)) for group in optimizer.param_groups for p in group["params"]]


def _map_optimizer(osd: dict[str, Any], kinds: list[str | None], fn) -> dict[str, Any]:
    state = {}
    for i, entry in osd["state"].items():
        kind = kinds[int(i)]
        state[i] = {k: fn(v, kind) if kind is not None and isinstance(v, Tensor) and v.dim()
                    else v for k, v in entry.items()}
    return {**osd, "state": state}


def owned_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer,
                          whole: dict[str, Any], whole_index: Tensor) -> dict[str, Any]:
    """This process's rows of a whole sheet's optimizer ``state_dict`` (``whole_index``:
    the whole sheet's edge list, for the edge rows)."""
    if not _sharded(model):
        return whole
    _, _, edges = row_kinds(model)
    ranges = (edges.shard.lo, edges.shard.hi), _edge_range(edges, whole_index)
    return _map_optimizer(whole, _optimizer_kinds(model, optimizer),
                          lambda v, kind: _narrow(v, kind, *ranges))


def _edge_permutation(index: Tensor, order: Tensor) -> tuple[Tensor, Tensor]:
    """Edges ``index`` (ids of the state's order) renumbered by ``order`` (new id -> old id):
    the new ``[2, E]`` edge list in canonical order, and which old row each new row takes."""
    inverse = torch.argsort(order.to(index.device))
    src, dst = inverse[index]
    perm = torch.argsort(dst * order.numel() + src)
    return torch.stack([src, dst])[:, perm], perm


def renumber_state(model: nn.Module, whole: dict[str, Tensor], order: Tensor
                   ) -> dict[str, Tensor]:
    """A whole sheet's ``state_dict`` in the column order ``model`` is built in: column
    ``i`` of ``model`` is row ``order[i]`` of ``whole`` (e.g. a one-process checkpoint
    resumed on a partitioned sheet; :func:`rows_for` gives ``order``). Rows of per-column and per-edge tensors move; the
    buffers a model derives from its geometry (positions, areas, column ids of readouts)
    are the model's own."""
    by_key, _, _ = row_kinds(model)
    index_key = next(k for k, kind in by_key.items() if kind == EDGE_LIST)
    index, perm = _edge_permutation(whole[index_key], order)
    params = {k for k, _ in model.named_parameters()}
    own = model.state_dict()
    out = {}
    for key, t in whole.items():
        kind = by_key.get(key)
        if kind == COLUMN:
            out[key] = t[order.to(t.device)]
        elif kind == EDGE:
            out[key] = t[perm.to(t.device)]
        elif kind == EDGE_LIST:
            out[key] = index
        else:
            out[key] = t if key in params else own.get(key, t)
    return out


def renumber_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer,
                             whole: dict[str, Any], index: Tensor, order: Tensor
                             ) -> dict[str, Any]:
    """A whole sheet's optimizer ``state_dict`` in ``model``'s column order (see
    :func:`renumber_state`; ``index``: the whole sheet's edges in the state's order)."""
    _, perm = _edge_permutation(index, order)

    def move(v: Tensor, kind: str) -> Tensor:
        return v[(order if kind == COLUMN else perm).to(v.device)]

    return _map_optimizer(whole, _optimizer_kinds(model, optimizer), move)


def rows_for(saved: Tensor | None, wanted: Tensor | None) -> Tensor | None:
    """The saved row of each column of a model built in the column order ``wanted`` (new id
    -> original id; ``None``: the original order), from a state saved in the order
    ``saved``; ``None`` when the orders are the same (nothing moves)."""
    if saved is None and wanted is None:
        return None
    if saved is not None and wanted is not None and torch.equal(saved, wanted):
        return None
    n = (saved if saved is not None else wanted).numel()
    inverse = torch.argsort(saved) if saved is not None else torch.arange(n)
    return inverse[wanted] if wanted is not None else inverse


def owned_edge_rows(model: nn.Module, t: Tensor, whole_index: Tensor,
                    order: Tensor | None = None) -> Tensor:
    """This process's rows of a whole sheet's per-edge tensor ``t`` (rows in the order of
    ``whole_index``), moved into ``model``'s column order first when ``order`` is given
    (see :func:`renumber_state`): e.g. a plasticity schedule's statistics."""
    if order is not None:
        whole_index, perm = _edge_permutation(whole_index, order)
        t = t[perm.to(t.device)]
    if not _sharded(model):
        return t
    _, _, edges = row_kinds(model)
    first, last = _edge_range(edges, whole_index)
    return t[first:last]

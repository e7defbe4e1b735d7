"""Training objectives beyond the task loss: the wiring cost."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch_geometric.utils import scatter

__all__ = ["wiring_length", "wiring_cost"]


def wiring_length(attention: Sequence[Tensor], edge_index: Tensor, edge_length: Tensor,
                  p: float = 1.0) -> Tensor:
    """Mean attention-weighted ``length^p`` of a column's inputs, in geometry units.

    Args:
        attention: per-step edge attention, each ``[E, H]`` (batch mean), as returned by
            :class:`~colgraph.Columnformer`.
        edge_index: ``[2, E]`` edges (row 1 = target).
        edge_length: ``[E]`` edge lengths.
        p: exponent on the length.

    A column's attention over its incoming edges sums to one per head, so
    ``sum_e attention[e] * length[e]^p`` over one column's edges is the expected
    ``length^p`` of what it reads. The result averages that over columns (with incoming
    edges), heads and steps.
    """
    att = torch.stack(list(attention))  # (T, E, H)
    num_targets = torch.unique(edge_index[1]).numel()
    total = (att * edge_length.pow(p).unsqueeze(-1)).sum(1)  # (T, H)
    return total.mean() / max(num_targets, 1)


def wiring_cost(attention: Sequence[Tensor], edge_index: Tensor, edge_length: Tensor,
                p: float = 1.0) -> Tensor:
    """Wiring cost relative to uniform attention; its weight means the same on any sheet.

    ``wiring_length(attention) / wiring_length(uniform attention)``: 1.0 means the sheet
    spends as much wire as attending uniformly over its candidate edges; below 1.0 it
    prefers short edges. A ratio of per-column averages, so it does not grow with the
    number of columns and does not depend on the length unit.

    Example:
        >>> from colgraph.geometry import grid, knn
        >>> geo = grid(4, wiring=knn(k=4))
        >>> uniform = torch.full((geo.num_edges, 1), 0.25)
        >>> round(float(wiring_cost([uniform], geo.edge_index, geo.edge_length)), 4)
        1.0
    """
    lp = edge_length.pow(p)
    dst = edge_index[1]
    uniform = scatter(lp, dst, 0, dim_size=int(dst.max()) + 1 if dst.numel() else 0,
                      reduce="mean")  # (N,)
    has_input = torch.bincount(dst, minlength=uniform.numel()) > 0
    scale = uniform[has_input].mean().clamp_min(1e-12)
    return wiring_length(attention, edge_index, edge_length, p) / scale

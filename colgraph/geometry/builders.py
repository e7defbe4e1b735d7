"""Geometry builders: pure functions of their arguments (and a seed), returning a Geometry."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .base import Geometry, pairwise_length
from .wiring import Wiring, knn

__all__ = ["from_positions", "grid", "torus", "stack"]


def from_positions(pos: torch.Tensor, wiring: Wiring, areas: dict | None = None,
                   period: torch.Tensor | None = None, name: str = "custom") -> Geometry:
    """Wire columns at ``pos`` with a wiring rule and measure edge lengths."""
    pos = torch.as_tensor(pos, dtype=torch.float32)
    if pos.dim() != 2:
        raise ValueError(f"Expected 'pos' to have shape [N, D] (got {list(pos.shape)}).")
    if not torch.isfinite(pos).all():
        bad = (~torch.isfinite(pos)).any(1).nonzero().flatten()[:5].tolist()
        raise ValueError(f"Expected finite column positions, but 'pos' has NaN/inf at columns "
                         f"{bad}. Fix or drop those columns before wiring.")
    edge_index = wiring(pos, period)
    length = pairwise_length(pos, edge_index[0], edge_index[1], period)
    return Geometry(pos, edge_index, length, areas or {}, period=period, name=name)


def _grid_pos(width: int, height: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=1).float()  # row-major (N, 2)


def grid(width: int, height: int | None = None, wiring: Wiring | None = None,
         wrap: bool = False) -> Geometry:
    """A flat ``width x height`` sheet with unit spacing; ``wrap=True`` makes it a torus.

    All columns form the area ``sheet``, aliased as ``input`` and ``output``.

    Example:
        >>> from colgraph.geometry import grid, knn
        >>> geo = grid(16, wiring=knn(k=8), wrap=True)
        >>> float(geo.edge_length.max())   # wrapped: no edge crosses the sheet
        1.4142135381698608
    """
    height = width if height is None else height
    if width < 1 or height < 1:
        raise ValueError(f"grid needs width, height >= 1 (got {width} x {height}).")
    pos = _grid_pos(width, height)
    everything = torch.arange(width * height)
    areas = {"sheet": everything, "input": everything, "output": everything}
    period = torch.tensor([float(width), float(height)]) if wrap else None
    kind = "torus" if wrap else "grid"
    return from_positions(pos, wiring or knn(8), areas, period, f"{kind}({width}x{height})")


def torus(width: int, height: int | None = None, wiring: Wiring | None = None) -> Geometry:
    """A ``grid`` whose edges wrap around (distances measured on the torus)."""
    return grid(width, height, wiring, wrap=True)


def stack(widths: Sequence[int], spacing: float = 2.0, wiring: Wiring | None = None) -> Geometry:
    """Square areas of the given widths stacked ``spacing`` apart along a third axis.

    Area ``i`` is a ``widths[i] x widths[i]`` grid at height ``z = i * spacing``, stretched to
    cover the same square as the first area (a retinotopic hierarchy: column ``(r, c)`` of
    every area looks at the same part of the visual field). Areas are named ``area0``,
    ``area1``, ... with ``input`` = first and ``output`` = last. Columns are numbered area by
    area, row-major inside each area.

    Example:
        >>> from colgraph.geometry import stack, knn
        >>> geo = stack([8, 6, 4], spacing=2.0, wiring=knn(k=16))
        >>> geo.num_columns, geo.area("output").numel()
        (116, 16)
    """
    widths = list(widths)
    if not widths or any(int(w) < 1 for w in widths):
        raise ValueError(f"stack needs a non-empty list of positive widths (got {widths}), "
                         f"e.g. geometry.widths=[8,6,4].")
    extent = max(widths[0] - 1, 1)
    pos, areas, start = [], {}, 0
    for i, w in enumerate(widths):
        p = _grid_pos(w, w) * (extent / max(w - 1, 1))
        if w == 1:
            p = p + extent / 2
        z = torch.full((w * w, 1), i * float(spacing))
        pos.append(torch.cat([p, z], dim=1))
        areas[f"area{i}"] = torch.arange(start, start + w * w)
        start += w * w
    areas["input"], areas["output"] = areas["area0"], areas[f"area{len(widths) - 1}"]
    return from_positions(torch.cat(pos), wiring or knn(16), areas,
                          name=f"stack({widths}, spacing={spacing})")



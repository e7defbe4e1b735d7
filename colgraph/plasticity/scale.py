"""Scale the sheet: add columns during training (refine a geometry), then keep training.

Symbols: ``N`` columns before, ``M`` new columns, ``D`` spatial dimensions.

A new column is a copy of its nearest existing column (its parent): every untied parameter
row and the optimizer's moments for it are cloned, so the function the sheet computes
barely changes at the moment of growth; its edges come from the geometry's wiring rule
applied to the refined positions (edges into and out of new columns; existing edges stay).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..geometry import Wiring, knn
from ..geometry.wiring import position_tree

__all__ = ["add_columns", "refine_grid"]


def _columnformer(model, who: str):
    """The Columnformer of ``model`` (itself, or ``model.columnformer``), or a clear error."""
    from ..model import Columnformer

    cf = getattr(model, "columnformer", model)
    if not isinstance(cf, Columnformer):
        raise TypeError(f"{who}: expected a Columnformer or a model holding one "
                        f"(.columnformer), got {type(model).__name__}.")
    return cf


def add_columns(model, pos: Tensor, wiring: Wiring | None = None,
                areas: dict[str, Tensor] | None = None,
                optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """Add columns at ``pos [M, D]`` to a model's sheet; returns counts of what changed.

    Args:
        model: a :class:`~colgraph.Columnformer` or a model holding one (``.columnformer``).
        pos: positions of the new columns (not already taken).
        wiring: the rule that wires them, applied to all positions; only edges into or out
            of new columns are added (default: ``knn`` with the sheet's median in-degree).
        areas: area name -> indices into ``pos`` of the new columns joining it. Default:
            each new column joins its parent's areas, except the input area (whose size the
            task's encoder fixes).
        optimizer: its state for per-column and per-edge parameters is extended in step.

    Example:
        >>> from colgraph import Columnformer
        >>> from colgraph.geometry import grid, knn
        >>> model = Columnformer(grid(4, wiring=knn(4)), channels=8, steps=4)
        >>> add_columns(model, torch.tensor([[0.5, 0.5], [1.5, 0.5]]))["columns"]
        18
    """
    cf = _columnformer(model, "add_columns")
    edges = cf.edges
    edges.check()
    N = edges.num_columns
    pos = edges.check_new_positions(pos)
    if wiring is not None and not callable(wiring):
        raise ValueError(f"add_columns: expected 'wiring' to be a wiring rule such as "
                         f"colgraph.geometry.knn(k=8), or None (got {type(wiring).__name__}).")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"add_columns: expected 'optimizer' to be a torch.optim.Optimizer or "
                         f"None (got {type(optimizer).__name__}).")
    if areas is not None:  # checked here: nothing may change before every input is right
        if not isinstance(areas, dict):
            raise ValueError(f"add_columns: expected 'areas' to be a dict area name -> indices "
                             f"into pos (got {type(areas).__name__}).")
        for name, idx in areas.items():
            if name not in edges.areas:
                raise ValueError(f"add_columns: unknown area {name!r}. This sheet has areas: "
                                 f"{', '.join(sorted(edges.areas))}.")
            idx = torch.as_tensor(idx)
            if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool or \
                    idx.dim() > 1:
                raise ValueError(f"add_columns: area {name!r}: expected a 1-D list of integer "
                                 f"indices into pos (got {list(idx.shape)} {idx.dtype}).")
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= pos.size(0)):
                raise ValueError(f"add_columns: area {name!r}: indices into pos must be in "
                                 f"[0, {pos.size(0) - 1}] (got min {int(idx.min())}, max "
                                 f"{int(idx.max())}).")
    tree, _ = position_tree(edges.pos, edges.period)
    query = pos.detach().cpu().double().numpy()
    if edges.period is not None:
        query = np.mod(query, edges.period.double().cpu().numpy())
    dist, parent = tree.query(query)
    parent = torch.as_tensor(np.asarray(parent), dtype=torch.long)
    if areas is None:
        member = {name: torch.isin(parent, idx.cpu()).nonzero().flatten()
                  for name, idx in edges.areas.items() if name != cf.config.input_area}
        areas = {k: v for k, v in member.items() if v.numel()}
    elif cf.config.input_area in areas:
        raise ValueError(f"New columns cannot join the input area '{cf.config.input_area}': "
                         f"the task feeds it one token per column. Add them to other areas.")
    new_ids = edges.add_columns(pos, parent.to(edges.pos.device), areas, optimizer)
    if wiring is None:
        k = int(edges.in_degree()[:N].float().median())
        wiring = knn(k=max(1, min(k, edges.num_columns - 1)))
    all_edges = wiring(edges.pos.detach().cpu(), edges.period).to(edges.index.device)
    touches = (all_edges[0] >= N) | (all_edges[1] >= N)
    add = all_edges[:, touches]
    n_all = edges.num_columns
    present = torch.sort(edges.index[1] * n_all + edges.index[0]).values
    key = add[1] * n_all + add[0]
    if present.numel():
        at = torch.searchsorted(present, key).clamp(max=present.numel() - 1)
        add = add[:, present[at] != key]
    add = add[:, add[0] != add[1]]
    edit = edges.edit(add=add, optimizer=optimizer)
    cf.geometry.check_reachable(cf.config.input_area, cf.config.output_area, cf.config.steps)
    return {"columns": edges.num_columns, "added_columns": int(new_ids.numel()),
            "added_edges": edit.num_added, "edges": edges.num_edges}


def refine_grid(model, area: str, factor: int = 2) -> Tensor:
    """Positions that make a lattice area ``factor`` times denser along each axis.

    The area's columns must lie on a regular lattice (grid, torus, or a ``stack`` area);
    the result lists the lattice points at ``spacing / factor`` over the area's bounding box
    that no column occupies yet. Pass them to :func:`add_columns`.

    Example:
        >>> from colgraph import Columnformer
        >>> from colgraph.geometry import grid, knn
        >>> model = Columnformer(grid(3, wiring=knn(4)), channels=8, steps=4)
        >>> refine_grid(model, "sheet").shape    # 5 x 5 lattice minus the 9 columns
        torch.Size([16, 2])
    """
    cf = _columnformer(model, "refine_grid")
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 2:
        raise ValueError(f"factor must be an integer >= 2 (got {factor!r}).")
    pos = cf.edges.pos.detach().cpu()[cf.edges.area(area).cpu()].double()  # (n, D)
    lo, hi = pos.min(0).values, pos.max(0).values
    axes, spacing = [], None
    for d in range(pos.size(1)):
        values = torch.unique(pos[:, d])
        if values.numel() == 1:
            axes.append(values)  # flat along this axis (e.g. a stack area's z)
            continue
        step = float(torch.diff(values).min())
        spacing = step if spacing is None else min(spacing, step)
        count = round(float(hi[d] - lo[d]) / step * factor) + 1
        axes.append(torch.linspace(float(lo[d]), float(hi[d]), count, dtype=torch.double))
    if spacing is None:
        raise ValueError(f"Area '{area}' has a single column: nothing to refine.")
    lattice = torch.cartesian_prod(*axes) if len(axes) > 1 else axes[0].unsqueeze(1)
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(pos.numpy()).query(lattice.numpy())  # nearest column of each point
    taken = torch.from_numpy(dist < 1e-6 * spacing)
    return lattice[~taken].float()


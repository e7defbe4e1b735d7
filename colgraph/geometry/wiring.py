"""Wiring rules: which directed edges ``source -> target`` a geometry offers.

A rule is a callable ``rule(pos, period) -> edge_index [2, E]``. Neighbour search uses
``scipy.spatial.cKDTree`` (``boxsize`` gives toroidal wrap), never an ``N x N`` matrix, so
building the wiring of large sheets stays ``O(N k log N)``; ``pyg-lib`` is not needed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["Wiring", "knn", "radius", "full", "WIRINGS", "get_wiring"]

FULL_MAX_COLUMNS = 4096


def _tree(pos: Tensor, period: Tensor | None):
    """A k-d tree over the positions; with ``period`` the space wraps (torus)."""
    from scipy.spatial import cKDTree

    x = pos.detach().cpu().double().numpy()
    if period is None:
        return cKDTree(x), x
    box = period.detach().cpu().double().numpy()
    x = np.mod(x, box)  # cKDTree wants wrapped coordinates inside [0, box)
    return cKDTree(x, boxsize=box), x


def _self_loops(edge_index: Tensor, n: int, self_loops: bool) -> Tensor:
    if not self_loops:
        return edge_index
    loops = torch.arange(n).repeat(2, 1)
    return torch.cat([edge_index, loops], dim=1)


@dataclass(frozen=True)
class Wiring:
    """Base class of wiring rules; subclasses implement :meth:`__call__`."""

    self_loops: bool = False

    def __call__(self, pos: Tensor, period: Tensor | None = None) -> Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class KNN(Wiring):
    """Each column receives edges from its ``k`` nearest other columns."""

    k: int = 16

    def __call__(self, pos: Tensor, period: Tensor | None = None) -> Tensor:
        n = pos.size(0)
        if not 1 <= self.k <= n - 1:
            raise ValueError(f"knn(k={self.k}) needs 1 <= k <= N - 1 = {n - 1} for a sheet "
                             f"of {n} columns. Lower geometry.wiring.k.")
        tree, x = _tree(pos, period)
        _, nbr = tree.query(x, k=self.k + 1)  # (N, k + 1), usually self first
        nbr = torch.from_numpy(np.asarray(nbr, dtype=np.int64))
        target = torch.arange(n).unsqueeze(1).expand_as(nbr)
        keep = nbr != target
        # drop self (or, if k + 1 points tie at distance 0, the farthest extra neighbour)
        extra = keep.sum(1) > self.k
        keep[extra, -1] = False
        edge_index = torch.stack([nbr[keep], target[keep]])
        return _self_loops(edge_index, n, self.self_loops)


@dataclass(frozen=True)
class Radius(Wiring):
    """Each column receives edges from every other column within distance ``r``."""

    r: float = 1.5

    def __call__(self, pos: Tensor, period: Tensor | None = None) -> Tensor:
        if self.r <= 0:
            raise ValueError(f"radius(r={self.r}) needs r > 0. Set geometry.wiring.r.")
        tree, _ = _tree(pos, period)
        pairs = torch.from_numpy(tree.query_pairs(self.r, output_type="ndarray").astype(np.int64))
        edge_index = torch.cat([pairs.t(), pairs.t().flip(0)], dim=1)  # both directions
        return _self_loops(edge_index, pos.size(0), self.self_loops)


@dataclass(frozen=True)
class Full(Wiring):
    """All-to-all wiring: ``N (N - 1)`` edges. For small sheets and dense references only."""

    def __call__(self, pos: Tensor, period: Tensor | None = None) -> Tensor:
        n = pos.size(0)
        if n > FULL_MAX_COLUMNS:
            raise ValueError(f"full() wiring on {n} columns would make {n * (n - 1):,} edges "
                             f"(limit {FULL_MAX_COLUMNS} columns). Use knn(k) or radius(r).")
        src, dst = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="xy")
        keep = src != dst
        edge_index = torch.stack([src[keep], dst[keep]])
        return _self_loops(edge_index, n, self.self_loops)


def knn(k: int = 16, self_loops: bool = False) -> KNN:
    """Wiring rule: ``k`` nearest-neighbour incoming edges per column.

    Example:
        >>> from colgraph.geometry import grid, knn
        >>> grid(4, wiring=knn(k=3)).in_degree().tolist()[:4]
        [3, 3, 3, 3]
    """
    return KNN(k=k, self_loops=self_loops)


def radius(r: float, self_loops: bool = False) -> Radius:
    """Wiring rule: edges between all columns closer than ``r`` (both directions)."""
    return Radius(r=r, self_loops=self_loops)


def full(self_loops: bool = False) -> Full:
    """Wiring rule: every column receives an edge from every other column."""
    return Full(self_loops=self_loops)


WIRINGS = {"knn": knn, "radius": radius, "full": full}


def get_wiring(rule: str | Wiring, **kwargs) -> Wiring:
    """Look up a wiring rule by name (``knn``, ``radius``, ``full``) or pass one through."""
    if isinstance(rule, Wiring):
        return rule
    if rule not in WIRINGS:
        raise ValueError(f"Unknown wiring rule '{rule}'. Choices: {', '.join(WIRINGS)}.")
    fn = WIRINGS[rule]
    import inspect

    accepted = inspect.signature(fn).parameters
    return fn(**{k: v for k, v in kwargs.items() if k in accepted})

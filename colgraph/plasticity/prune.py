"""Pruning: score every edge, then remove the weakest without stranding a column.

Symbols: ``N`` columns, ``E`` edges (canonical order: sorted by target), ``T`` steps.

Scores are "how much the sheet needs this edge" (higher = keep). Criteria:

* ``attention``: the running (EMA) attention mass the edge carries;
* ``bias``: the prior weight ``softmax(edge_bias)`` over the target's inputs (mean over heads
  and sheets). The bias is a logit, so its magnitude says nothing about importance: a bias of
  0 is a column's STRONGEST input under the length prior, not its weakest. The prior weight
  is the magnitude criterion that means something for softmax attention;
* ``wiring``: attention per unit of wire, ``attention / length^p``: long edges must carry
  proportionally more attention to survive (the wiring-aware criterion);
* ``random``: uniform scores (the SET-style control).

:func:`select_prune` removes the lowest scores but always keeps each column's
``min_in_degree`` strongest inputs and any protected edges (e.g. :func:`reachability_edges`).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import softmax

from ..geometry import hops_from, rank_within_target

__all__ = ["PRUNE_CRITERIA", "prune_scores", "select_prune", "reachability_edges",
           "rank_within_target"]

PRUNE_CRITERIA = ("attention", "bias", "wiring", "random")


def prune_scores(criterion: str, edge_index: Tensor, num_columns: int, *,
                 bias: Tensor | None = None, attention: Tensor | None = None,
                 length: Tensor | None = None, p: float = 1.0,
                 generator: torch.Generator | None = None) -> Tensor:
    """Keep-scores ``[E]`` of the edges under ``criterion`` (higher = more needed).

    Args:
        criterion: one of :data:`PRUNE_CRITERIA`.
        edge_index: ``[2, E]`` current edges.
        num_columns: ``N``.
        bias: ``[E, H]`` or ``[S, E, H]`` edge biases (``bias``).
        attention: ``[E]`` running attention mass (``attention``, ``wiring``).
        length: ``[E]`` edge lengths (``wiring``).
        p: exponent on the length (``wiring``).
        generator: for ``random``.
    """
    E = edge_index.size(1)
    if criterion == "attention":
        return _need(attention, "attention", criterion).float()
    if criterion == "wiring":
        att = _need(attention, "attention", criterion).float()
        ln = _need(length, "length", criterion).float()
        return att / ln.clamp_min(1e-12).pow(p)  # self-loops (length 0) are never pruned
    if criterion == "bias":
        b = _need(bias, "bias", criterion).float()
        b = b.reshape(-1, E, b.size(-1)) if b.dim() == 3 else b.unsqueeze(0)  # (S, E, H)
        prior = softmax(b, edge_index[1], num_nodes=num_columns, dim=1)  # (S, E, H)
        return prior.mean((0, 2))
    if criterion == "random":
        return torch.rand(E, generator=generator).to(edge_index.device)
    raise ValueError(f"Unknown prune criterion '{criterion}'. Choices: "
                     f"{', '.join(PRUNE_CRITERIA)}.")


def _need(t: Tensor | None, name: str, criterion: str) -> Tensor:
    if t is None:
        raise ValueError(f"Prune criterion '{criterion}' needs '{name}'.")
    return t


def select_prune(score: Tensor, edge_index: Tensor, num_columns: int, n: int,
                 min_in_degree: int = 1, protect: Tensor | None = None) -> Tensor:
    """Keep mask ``[E]`` that removes the ``n`` lowest-scoring removable edges.

    An edge is removable unless it is among its target's ``min_in_degree`` highest-scoring
    inputs or ``protect`` marks it. Fewer than ``n`` edges go if fewer are removable.

    Example:
        >>> ei = torch.tensor([[1, 2, 0, 2], [0, 0, 1, 1]])
        >>> select_prune(torch.tensor([0.9, 0.1, 0.5, 0.4]), ei, 3, n=3).tolist()
        [True, False, True, False]
    """
    E = edge_index.size(1)
    if n < 0:
        raise ValueError(f"Cannot prune a negative number of edges (got n={n}).")
    removable = rank_within_target(edge_index[1], score, num_columns) >= min_in_degree
    if protect is not None:
        removable &= ~protect
    keep = torch.ones(E, dtype=torch.bool, device=edge_index.device)
    candidates = removable.nonzero().flatten()
    if n and candidates.numel():
        weakest = torch.argsort(score[candidates], stable=True)[:n]
        keep[candidates[weakest]] = False
    return keep


def reachability_edges(edge_index: Tensor, num_columns: int, sources: Tensor,
                       sinks: Tensor, score: Tensor) -> Tensor:
    """Mask ``[E]`` of a shortest-path tree that keeps every sink as close to the sources.

    For each column on a shortest path from ``sources`` to a ``sinks`` column, the
    highest-scoring input from a column one hop closer is marked, walking back from the
    sinks. Keeping these edges keeps every sink's hop distance (so a model with ``T`` steps
    stays able to route input to output) while leaving every other edge free to prune.
    ``O(E)``; never an ``N x N`` matrix.
    """
    hops = hops_from(edge_index, num_columns, sources).to(edge_index.device)  # (N,)
    src, dst = edge_index
    tree = (hops[src] >= 0) & (hops[dst] == hops[src] + 1)  # edges one hop outward
    # per target, its best tree edge: highest score among tree edges into it
    masked = torch.where(tree, score.float(), torch.full_like(score.float(), -float("inf")))
    best = rank_within_target(dst, masked, num_columns) == 0
    parent = torch.full((num_columns,), -1, dtype=torch.long, device=src.device)
    chosen = (best & tree).nonzero().flatten()
    parent[dst[chosen]] = chosen  # column -> its chosen tree edge
    keep = torch.zeros(edge_index.size(1), dtype=torch.bool, device=src.device)
    frontier = sinks[hops[sinks] > 0]
    while frontier.numel():
        e = parent[frontier]
        e = e[e >= 0]
        keep[e] = True
        frontier = torch.unique(src[e])
        frontier = frontier[hops[frontier] > 0]
    return keep

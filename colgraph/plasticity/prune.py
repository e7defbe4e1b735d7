"""Pruning: score every edge, then remove the weakest without stranding a column.

Symbols: ``N`` columns, ``E`` edges (canonical order: sorted by target), ``T`` steps, ``S``
blocks (one per step when depth is untied), ``H`` heads.

Scores are "how much the sheet needs this edge" (higher = keep). Criteria (the registry
:data:`PRUNE_CRITERIA`; add one with :func:`register_prune`):

* ``attention``: the running (EMA) attention mass the edge carries;
* ``bias``: the prior weight ``softmax(edge_bias)`` over the target's inputs (mean over heads
  and blocks). The bias is a logit, so its magnitude says nothing about importance: a bias of
  0 is a column's STRONGEST input under the length prior, not its weakest. The prior weight
  is the magnitude criterion that means something for softmax attention;
* ``wiring``: attention per unit of wire, ``attention / length^p``: long edges must carry
  proportionally more attention to survive (the wiring-aware criterion);
* ``random``: uniform scores (the SET-style control).

The contract of a criterion: ``criterion(inputs: PruneInputs, *, <settings>) -> Tensor [E]``,
one float keep-score per current edge (higher = keep), on the edges' device, changing
nothing. Its keyword-only parameters are its settings, filled from the
:class:`~colgraph.plasticity.PlasticityConfig` fields of the same names (``p``).

:func:`select_prune` removes the lowest scores but always keeps each column's
``min_in_degree`` strongest inputs and any protected edges (e.g. :func:`reachability_edges`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch_geometric.utils import softmax

from ..geometry import hops_from, rank_within_target
from .registry import RuleRegistry

__all__ = ["PRUNE_CRITERIA", "PruneInputs", "register_prune", "prune_scores", "select_prune",
           "reachability_edges", "rank_within_target", "check_count", "check_edge_index",
           "check_per_edge", "check_columns"]

# ------------------------------------------------------------------ boundary checks
# The operators are public: what they are given is checked here, with errors that say what
# was expected, what arrived and how to fix it (never an IndexError deep inside).
def check_count(value, name: str, who: str, low: int = 0) -> int:
    """``value`` as an int ``>= low`` (an int, a numpy int or a 0-d integer tensor)."""
    if isinstance(value, Tensor) and value.dim() == 0 and not value.is_floating_point() \
            and value.dtype != torch.bool:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{who}: expected '{name}' to be an integer >= {low} (got {value!r}).")
    return int(value)


def check_edge_index(edge_index, num_columns, who: str) -> int:
    """Check ``edge_index [2, E]`` (integer, values in ``[0, num_columns)``); returns ``E``."""
    check_count(num_columns, "num_columns", who, low=1)
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        shape = list(edge_index.shape) if isinstance(edge_index, Tensor) else \
            type(edge_index).__name__
        raise ValueError(f"{who}: expected 'edge_index' to be a tensor of shape [2, E] (got "
                         f"{shape}). Pass the sheet's edges (model.edges.index) or transpose "
                         f"your edge list.")
    if edge_index.is_floating_point() or edge_index.is_complex() or edge_index.dtype == torch.bool:
        raise ValueError(f"{who}: expected 'edge_index' to hold integer column ids (got "
                         f"{edge_index.dtype}). Use edge_index.long().")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_columns):
        raise ValueError(f"{who}: expected 'edge_index' values in [0, {num_columns - 1}] for "
                         f"num_columns={num_columns} (got min {int(edge_index.min())}, max "
                         f"{int(edge_index.max())}). Pass the number of columns of the sheet "
                         f"the edges belong to.")
    return edge_index.size(1)


def check_per_edge(values, E: int, name: str, who: str, dtype: str = "real") -> Tensor:
    """Check a per-edge tensor ``[E]``: ``dtype`` ``"real"`` (floating or integer, no NaN) or
    ``"bool"``."""
    if not isinstance(values, Tensor) or values.shape != (E,):
        shape = list(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"{who}: expected '{name}' to be a tensor of shape [{E}] (one value "
                         f"per edge of edge_index), got {shape}.")
    if dtype == "bool":
        if values.dtype != torch.bool:
            raise ValueError(f"{who}: expected '{name}' to be a bool mask (got {values.dtype}).")
        return values
    if values.dtype == torch.bool or values.is_complex():
        raise ValueError(f"{who}: expected real-valued '{name}' (got {values.dtype}).")
    if values.is_floating_point() and torch.isnan(values).any():
        bad = torch.isnan(values).nonzero().flatten()
        raise ValueError(f"{who}: '{name}' holds NaN at {bad.numel()} edge(s) (e.g. edge "
                         f"{int(bad[0])}): the ranking would be arbitrary. A NaN comes from a "
                         f"diverged model or NaN inputs of the criterion.")
    return values


def check_columns(ids, num_columns: int, name: str, who: str) -> Tensor:
    """Check a non-empty 1-D integer tensor of column ids in ``[0, num_columns)``."""
    if not isinstance(ids, Tensor) or ids.dim() != 1 or ids.numel() == 0 or \
            ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        got = f"{list(ids.shape)} {ids.dtype}" if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(f"{who}: expected '{name}' to be a non-empty 1-D integer tensor of "
                         f"column ids (got {got}), e.g. model.input_index.")
    if int(ids.min()) < 0 or int(ids.max()) >= num_columns:
        raise ValueError(f"{who}: expected '{name}' in [0, {num_columns - 1}] for "
                         f"num_columns={num_columns} (got min {int(ids.min())}, max "
                         f"{int(ids.max())}).")
    return ids


PRUNE_CRITERIA = RuleRegistry("prune criterion")  # name -> Rule
register_prune = PRUNE_CRITERIA.register


@dataclass(frozen=True)
class PruneInputs:
    """What a prune criterion may read about the current edges (canonical order).

    Attributes:
        edge_index: ``[2, E]`` current edges.
        num_columns: ``N``.
        bias: ``[E, H]`` or ``[S, E, H]`` edge biases.
        attention: ``[E]`` running attention mass.
        length: ``[E]`` edge lengths.
        generator: random numbers for stochastic criteria.
    """

    edge_index: Tensor
    num_columns: int
    bias: Tensor | None = None
    attention: Tensor | None = None
    length: Tensor | None = None
    generator: torch.Generator | None = None

    def need(self, name: str, criterion: str) -> Tensor:
        """The input ``name``, or a clear error if the caller did not give it."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"Prune criterion '{criterion}' needs '{name}'.")
        return value


def prune_scores(criterion: str | Callable[..., Tensor], edge_index: Tensor, num_columns: int,
                 *, bias: Tensor | None = None, attention: Tensor | None = None,
                 length: Tensor | None = None, generator: torch.Generator | None = None,
                 **settings) -> Tensor:
    """Keep-scores ``[E]`` of the edges under ``criterion`` (higher = more needed).

    Args:
        criterion: a name in :data:`PRUNE_CRITERIA` or a criterion function.
        edge_index: ``[2, E]`` current edges.
        num_columns: ``N``.
        bias: ``[E, H]`` or ``[S, E, H]`` edge biases (``bias``).
        attention: ``[E]`` running attention mass (``attention``, ``wiring``).
        length: ``[E]`` edge lengths (``wiring``).
        generator: for ``random``.
        **settings: the criterion's settings (``p``: exponent on the length for ``wiring``).

    Example:
        >>> ei = torch.tensor([[1, 2, 0], [0, 0, 1]])
        >>> prune_scores("wiring", ei, 3, attention=torch.tensor([0.5, 0.5, 1.0]),
        ...              length=torch.tensor([1.0, 2.0, 1.0]), p=1.0).tolist()
        [0.5, 0.25, 1.0]
    """
    rule = PRUNE_CRITERIA.lookup(criterion)
    who = f"prune_scores('{rule.name}')"
    E = check_edge_index(edge_index, num_columns, who)
    for name, value in (("attention", attention), ("length", length)):
        if value is not None:
            check_per_edge(value, E, name, who)
    if bias is not None and (not isinstance(bias, Tensor) or bias.dim() not in (2, 3)
                             or bias.size(-2) != E):
        shape = list(bias.shape) if isinstance(bias, Tensor) else type(bias).__name__
        raise ValueError(f"{who}: expected 'bias' of shape [E, H] or [S, E, H] with E = {E} "
                         f"(got {shape}).")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"{who}: expected 'generator' to be a torch.Generator (got "
                         f"{type(generator).__name__}).")
    inputs = PruneInputs(edge_index, num_columns, bias, attention, length, generator)
    score = rule(inputs, **settings)
    if not isinstance(score, Tensor) or score.shape != (E,):
        got = list(score.shape) if isinstance(score, Tensor) else type(score).__name__
        raise ValueError(f"The prune criterion '{rule.name}' returned {got}; a criterion must "
                         f"return one keep-score per edge, a tensor of shape [{E}].")
    return check_per_edge(score, E, "score", who)


@register_prune("attention")
def attention_score(inputs: PruneInputs) -> Tensor:
    """The running attention mass."""
    return inputs.need("attention", "attention").float()


@register_prune("bias")
def bias_score(inputs: PruneInputs) -> Tensor:
    """The prior weight ``softmax(edge_bias)`` over each target's inputs, mean over blocks and
    heads."""
    E = inputs.edge_index.size(1)
    b = inputs.need("bias", "bias").float()
    b = b.reshape(-1, E, b.size(-1)) if b.dim() == 3 else b.unsqueeze(0)  # (S, E, H)
    prior = softmax(b, inputs.edge_index[1], num_nodes=inputs.num_columns, dim=1)  # (S, E, H)
    return prior.mean((0, 2))


@register_prune("wiring")
def wiring_score(inputs: PruneInputs, *, p: float = 1.0) -> Tensor:
    """Attention per unit of wire, ``attention / length^p``."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not np.isfinite(p):
        raise ValueError(f"Prune criterion 'wiring': p must be a finite number (got {p!r}).")
    att = inputs.need("attention", "wiring").float()
    ln = inputs.need("length", "wiring").float()
    return att / ln.clamp_min(1e-12).pow(p)  # self-loops (length 0) are never pruned


@register_prune("random")
def random_score(inputs: PruneInputs) -> Tensor:
    """Uniform scores (SET's control)."""
    E = inputs.edge_index.size(1)
    return torch.rand(E, generator=inputs.generator).to(inputs.edge_index.device)


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
    who = "select_prune"
    E = check_edge_index(edge_index, num_columns, who)
    check_per_edge(score, E, "score", who)
    n = check_count(n, "n", who)
    if n > E:
        raise ValueError(f"select_prune: cannot prune n={n} edges from {E} (n counts edges to "
                         f"remove, at most E).")
    min_in_degree = check_count(min_in_degree, "min_in_degree", who)
    if protect is not None:
        check_per_edge(protect, E, "protect", who, dtype="bool")
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
    who = "reachability_edges"
    E = check_edge_index(edge_index, num_columns, who)
    check_columns(sources, num_columns, "sources", who)
    check_columns(sinks, num_columns, "sinks", who)
    check_per_edge(score, E, "score", who)
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

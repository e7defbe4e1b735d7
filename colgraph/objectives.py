"""Training objectives beyond the task loss, and the measures they move.

* **Wiring cost**: attention x edge length (relative to uniform attention).
* **Feature smoothness**: a local contrastive loss over the sheet's geometry: a column's
  response across a batch should resemble its neighbours' (edges no longer than ``radius``)
  more than those of random distant columns (InfoNCE with temperature ``temperature``).
  :func:`topographic_smoothness` measures the result: response correlation of neighbours
  minus that of random pairs, and correlation against distance for figures.
* **Activation sparsity**: :class:`colgraph.model.Activity` (computed in every forward):
  the scale-free L1 penalty ``mean|x| / RMS(x)`` of the states after each step, the
  fraction of silent units and the mean number of active columns per step.

All of them cost O(E) or O(N) per step, never O(N^2): pairs come from the edges or from a
fixed number of random partners per column.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from .parallel.shard import ColumnShard, HaloPlan, exchange

WHOLE = ColumnShard.whole(1)  # one process: every reduction is the identity

__all__ = ["total_loss", "wiring_length", "wiring_cost", "column_responses", "column_activity",
           "smoothness_loss",
           "topographic_smoothness", "distant_pairs", "measure_topography"]


def total_loss(cfg: Any, loss: Tensor, out: Any, edges: Any, radius: float) -> Tensor:
    """The training loss: the task's ``loss`` plus every objective the config weights.

    Args:
        cfg: the run's config; reads ``wiring_cost.weight`` / ``wiring_cost.p``,
            ``smoothness.*`` (feature smoothness) and ``sparsity.weight`` (activation
            sparsity). A weight of 0 leaves its term out (nothing computed).
        loss: the task's scalar loss.
        out: the sheet's :class:`~colgraph.ColumnformerOutput` (states, per-step attention,
            activity).
        edges: the sheet's edge owner (:class:`~colgraph.nn.SheetEdges`): index, lengths,
            positions and metric.
        radius: the smoothness loss's neighbourhood (edges no longer than this).

    The terms are added one by one in this order (wiring, smoothness, sparsity), each
    scaled by its weight.
    """
    w = cfg.wiring_cost
    if w.weight:
        loss = loss + w.weight * wiring_cost(out.attention, edges.index, edges.length, w.p,
                                             shard=edges.shard)
    s = cfg.smoothness
    if s.weight:
        loss = loss + s.weight * smoothness_loss(
            out.state, edges.index, edges.length, edges.pos, radius, s.temperature,
            s.negatives, period=edges.period, metric=edges.metric, shard=edges.shard)
    if cfg.sparsity.weight:
        loss = loss + cfg.sparsity.weight * out.activity.l1
    return loss


def wiring_length(attention: Sequence[Tensor], edge_index: Tensor, edge_length: Tensor,
                  p: float = 1.0, shard: ColumnShard | None = None) -> Tensor:
    """Mean attention-weighted ``length^p`` of a column's inputs, in geometry units.

    Args:
        attention: per-step edge attention, each ``[E, H]`` (batch mean), as returned by
            :class:`~colgraph.Columnformer`.
        edge_index: ``[2, E]`` edges (row 1 = target).
        edge_length: ``[E]`` edge lengths.
        p: exponent on the length.
        shard: on a column-sharded sheet, this process's :class:`ColumnShard` (its
            edges are the edges into its columns): the result is the whole sheet's.

    A column's attention over its incoming edges sums to one per head, so
    ``sum_e attention[e] * length[e]^p`` over one column's edges is the expected
    ``length^p`` of what it reads. The result averages that over columns (with incoming
    edges), heads and steps.
    """
    shard = shard or WHOLE
    att = torch.stack(list(attention))  # (T, E, H)
    num_targets = shard.total(torch.unique(edge_index[1]).numel())
    total = shard.sum((att * edge_length.pow(p).unsqueeze(-1)).sum(1))  # (T, H)
    return total.mean() / max(num_targets, 1)


def wiring_cost(attention: Sequence[Tensor], edge_index: Tensor, edge_length: Tensor,
                p: float = 1.0, shard: ColumnShard | None = None) -> Tensor:
    """Wiring cost relative to uniform attention; its weight means the same on any sheet.

    ``wiring_length(attention) / wiring_length(uniform attention)``: 1.0 means the sheet
    spends as much wire as attending uniformly over its candidate edges; below 1.0 it
    prefers short edges. A ratio of per-column averages, so it does not grow with the
    number of columns and does not depend on the length unit. ``shard``: as in
    :func:`wiring_length`.

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
    shard = shard or WHOLE
    scale = shard.mean(uniform[has_input]).clamp_min(1e-12)
    return wiring_length(attention, edge_index, edge_length, p, shard) / scale


def column_responses(state: Tensor) -> Tensor:
    """``[N, B * C]``: each column's response over a batch (states ``[B, N, C]``), centred
    over the batch and scaled to unit norm, so a dot product is a correlation."""
    z = state.transpose(0, 1)  # (N, B, C)
    z = (z - z.mean(1, keepdim=True)).flatten(1)  # (N, B*C)
    return z / z.norm(dim=1, keepdim=True).clamp_min(1e-8)


def column_activity(state: Tensor) -> Tensor:
    """``[B, N]``: each column's scalar response to each sample, the RMS over channels of
    its state (states ``[B, N, C]``): how strongly the column is driven, the quantity whose
    spread :class:`~colgraph.model.Activity` reads (a signed channel mean of the residual
    stream could cancel to 0 for a strongly driven column). Class selectivity
    (:func:`colgraph.connectome.class_selectivity`) is measured on it."""
    return torch.linalg.vector_norm(state, dim=-1) / state.size(-1) ** 0.5


def distant_pairs(pos: Tensor, num: int, radius: float, generator: torch.Generator | None,
                  period: Tensor | None = None, metric: str = "euclidean") -> Tensor:
    """``[2, P]`` pairs (anchor, partner): ``num`` random partners per column, kept only if
    farther than ``radius`` (so fewer than ``N * num`` pairs near a small sheet's edge)."""
    from .geometry import measure

    n = pos.size(0)
    anchor = torch.arange(n, device=pos.device).repeat_interleave(num)
    partner = torch.randint(0, n, (n * num,), generator=generator).to(pos.device)
    length = measure(pos, partner, anchor, metric, period)
    keep = length > radius
    return torch.stack([anchor[keep], partner[keep]])


def smoothness_loss(state: Tensor, edge_index: Tensor, edge_length: Tensor, pos: Tensor,
                    radius: float, temperature: float = 0.1, negatives: int = 8,
                    generator: torch.Generator | None = None, period: Tensor | None = None,
                    metric: str = "euclidean", shard: ColumnShard | None = None) -> Tensor:
    """Local contrastive loss on column responses (InfoNCE over the sheet).

    For every column ``a`` with neighbours (its incoming edges no longer than ``radius``)::

        loss_a = -log( sum_pos exp(r_a . r_p / tau) /
                       (sum_pos exp(r_a . r_p / tau) + sum_neg exp(r_a . r_n / tau)) )

    with responses ``r`` from :func:`column_responses` and ``negatives`` random partners per
    column farther than ``radius``. Neighbours that respond identically while distant
    columns respond oppositely give a loss near 0; a sheet whose responses ignore position
    gives about ``log(1 + negatives / neighbours)`` or more. Mean over columns with
    neighbours. ``shard``: on a column-sharded sheet, this process's
    :class:`~colgraph.parallel.ColumnShard` (``state`` and the edges are its columns'; the
    partners' responses come from their owners): the result is the whole sheet's.

    Example:
        >>> from colgraph.geometry import line, knn
        >>> geo = line(2, wiring=knn(k=1))  # two neighbouring columns, nothing distant
        >>> same = torch.randn(32, 1, 4).expand(32, 2, 4)  # identical responses
        >>> float(smoothness_loss(same, geo.edge_index, geo.edge_length, geo.pos, radius=1.0))
        0.0
    """
    from torch_geometric.utils import scatter

    shard = shard or WHOLE
    z = column_responses(state)  # (N, D)
    near = edge_length <= radius
    src, dst = edge_index[0, near], edge_index[1, near]
    if shard.total(src.numel()) == 0:
        raise ValueError(f"smoothness.radius={radius} is shorter than every edge of the sheet, "
                         f"so no column has neighbours. Raise smoothness.radius (the shortest "
                         f"edge is {float(-shard.amax(-edge_length.view(1, -1), 1)):.3g}).")
    neg = _random_pairs(pos, shard, lambda p: distant_pairs(p, negatives, radius, generator,
                                                            period, metric))
    anchor, partner = torch.cat([dst, neg[0]]), torch.cat([src, neg[1]])
    z, partner, anchor = _partners(z, partner, anchor, shard)
    logit = (z[anchor] * z[partner]).sum(1) / temperature  # (P,)
    n = shard.num_owned if shard.enabled else z.size(0)
    is_pos = torch.arange(anchor.numel(), device=anchor.device) < src.numel()  # edges first
    # (a process's edges all end at its own columns: its pairs start with them)
    top = scatter(logit.detach(), anchor, 0, dim_size=n, reduce="max")  # stable logsumexp
    e = (logit - top[anchor]).exp()
    all_sum = scatter(e, anchor, 0, dim_size=n, reduce="sum")
    pos_sum = scatter(e * is_pos, anchor, 0, dim_size=n, reduce="sum")
    has = pos_sum > 0
    return shard.mean(all_sum[has].log() - pos_sum[has].log())


def _random_pairs(pos: Tensor, shard: ColumnShard, draw) -> Tensor:
    """``draw(pos)``'s random column pairs ``[2, P]``, drawn in the columns' original ids
    on a renumbered sheet (``shard.order``) and returned in its ids, so that the pairs do
    not depend on how the sheet is split."""
    if shard.order is None:
        return draw(pos)
    inverse = shard.inverse.to(pos.device)
    return inverse[draw(pos[inverse])]


def _partners(z: Tensor, partner: Tensor, anchor: Tensor, shard: ColumnShard
              ) -> tuple[Tensor, Tensor, Tensor]:
    """Pairs ``partner -> anchor`` (column ids) of this process's anchors, with the rows of
    ``z`` they read: on a column-sharded sheet the pairs whose anchor it owns, ``z`` extended
    with the partners' rows from their owners (one plan + one exchange, differentiable) and
    the ids made local; everything as it is on one process."""
    if not shard.enabled:
        return z, partner, anchor
    mine = (anchor >= shard.lo) & (anchor < shard.hi)
    plan = HaloPlan.build(torch.stack([partner[mine], anchor[mine]]), shard)
    (z,) = exchange(plan, shard, z)
    return z, plan.local_index[0], plan.local_index[1]


@torch.no_grad()
def topographic_smoothness(state: Tensor, edge_index: Tensor, edge_length: Tensor, pos: Tensor,
                           radius: float | None = None, pairs: int = 8,
                           generator: torch.Generator | None = None,
                           period: Tensor | None = None, metric: str = "euclidean",
                           shard: ColumnShard | None = None) -> dict[str, Tensor | float]:
    """How topographic the sheet's responses are.

    Returns ``smoothness`` = mean response correlation of neighbours (edges no longer than
    ``radius``, default: all edges) minus that of ``pairs`` random partners per column
    (0: no topography; up to 2), and the raw ``distance`` / ``correlation`` of every pair
    used (edges and random pairs) for a correlation-vs-distance figure. ``shard``: as in
    :func:`smoothness_loss` (``smoothness`` is the whole sheet's; the pairs are this
    process's anchors').
    """
    from .geometry import measure

    shard = shard or WHOLE
    z = column_responses(state)
    near = edge_length <= (radius if radius is not None else float("inf"))
    src, dst = edge_index[0, near], edge_index[1, near]
    def draw(p: Tensor) -> Tensor:  # the whole sheet's: every process draws the same pairs
        n = p.size(0)
        anchor = torch.arange(n, device=z.device).repeat_interleave(pairs)
        partner = torch.randint(0, n, (n * pairs,), generator=generator).to(z.device)
        keep = partner != anchor
        return torch.stack([anchor[keep], partner[keep]])

    anchor, partner = _random_pairs(pos, shard, draw)
    d_rand = measure(pos, partner, anchor, metric, period)
    if shard.enabled:
        d_rand = d_rand[(anchor >= shard.lo) & (anchor < shard.hi)]
    count = shard.total(src.numel())
    zs, partner, anchor = _partners(z, torch.cat([src, partner]), torch.cat([dst, anchor]),
                                    shard)
    corr = (zs[anchor] * zs[partner]).sum(1)
    c_near, c_rand = corr[:src.numel()], corr[src.numel():]
    return {"smoothness": float(shard.mean(c_near) - shard.mean(c_rand)) if count else 0.0,
            "distance": torch.cat([edge_length[near], d_rand]),
            "correlation": torch.cat([c_near, c_rand])}


@torch.no_grad()
def measure_topography(model: Any, x: Tensor, batch_size: int = 256, radius: float | None = None,
                       pairs: int = 8, seed: int = 0) -> dict[str, Any]:
    """:func:`topographic_smoothness` of a task model (``model.sheet(x)``) over a data set:
    the sample-weighted mean ``smoothness`` and every pair's ``distance`` / ``correlation``
    (numpy arrays, pairs of all batches) for :func:`colgraph.connectome.figures.plot_topography`.
    """
    import numpy as np

    was = model.training
    model.eval()
    edges = model.columnformer.edges
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    total, n, dist, corr = 0.0, 0, [], []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device)
        m = topographic_smoothness(model.sheet(xb).state, edges.index, edges.length, edges.pos,
                                   radius, pairs, gen, edges.period, edges.metric)
        total += m["smoothness"] * len(xb)
        n += len(xb)
        dist.append(m["distance"].cpu().numpy())
        corr.append(m["correlation"].cpu().numpy())
    model.train(was)
    return {"smoothness": total / max(n, 1), "distance": np.concatenate(dist),
            "correlation": np.concatenate(corr)}

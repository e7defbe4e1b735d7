"""Growth: propose edges that do not exist yet, score them, add the best.

Symbols: ``N`` columns, ``E`` edges, ``P`` candidate edges, ``F = B * C`` recorded features
per step.

Rules (the registry :data:`GROW_RULES`; add one with :func:`register_grow`):

* ``random``: targets and sources uniformly at random among non-edges (SET);
* ``geometric``: uniform targets, sources drawn by the exponential distance rule
  ``P(length) ~ exp(-length / lam)`` (the wiring rule of cortex);
* ``gradient``: RigL for attention. For column ``t``'s softmax over its inputs,
  ``d out_t / d logit_e = alpha_e (v_s - out_t)``, so a candidate edge ``s -> t`` would
  receive the logit gradient ``alpha (g_t . (v_s - out_t))`` with ``g_t = dL / d out_t``.
  Its score is ``-g_t . (v_s - out_t)`` summed over the batch and steps: positive when
  adding the edge lowers the loss. A pool of candidates (half uniform, half
  exponential-distance-rule sources per column) is scored with ONE sampled dense-dense
  product over the pool's CSR pattern, never an ``N x N`` matrix;
* ``gradient_distance``: the gradient score discounted by length, ``score * exp(-l / lam)``
  for helpful candidates (``score * exp(+l / lam)`` for harmful ones, so they stay last);
* ``homophily`` (:mod:`.homophily`): the generative wiring model of connectome research,
  candidates drawn with probability ``~ length^eta * K^gamma``, ``K`` the matching index
  of the current wiring.

The contract of a grow rule: ``rule(inputs: GrowInputs, n: int, *, <settings>) -> Tensor
[2, <= n]``: at most ``n`` new edges ``source -> target`` (long, on the edges' device), none
in ``inputs.edge_index``, no self-edges, no repeats, drawing randomness only from
``inputs.rng``. Its keyword-only parameters are its settings, filled from the
:class:`~colgraph.plasticity.PlasticityConfig` fields of the same names (``lam``, ``pool``);
a rule registered with ``records=True`` reads ``inputs.records``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..geometry import canonical_order
from ..geometry.wiring import edge_keys, edr_sources, position_tree, sample_sources
from ..nn import EdgeCSR, sddmm
from .prune import check_count, check_edge_index
from .registry import RuleRegistry

__all__ = ["GROW_RULES", "GrowInputs", "register_grow", "MAX_CANDIDATES", "check_pool",
           "sample_candidates", "gradient_scores", "grow_edges", "candidate_pool"]

GROW_RULES = RuleRegistry("grow rule")  # name -> Rule
register_grow = GROW_RULES.register
MAX_CANDIDATES = 50_000_000  # gradient pools larger than this per update are refused


def check_pool(pool: int, num_columns: int) -> None:
    """Refuse a gradient candidate pool that is empty or too large to score (O(N^2))."""
    if isinstance(pool, bool) or not isinstance(pool, (int, np.integer)):
        raise ValueError(f"The candidate pool must be an integer >= 1 per column (got "
                         f"{pool!r}).")
    if pool < 1:
        raise ValueError(f"The candidate pool must be >= 1 per column (got {pool}).")
    count = min(pool, num_columns - 1) * num_columns
    if count > MAX_CANDIDATES:
        raise ValueError(f"plasticity.pool={pool} would score {count:,} candidate edges per "
                         f"update on {num_columns:,} columns (limit {MAX_CANDIDATES:,}). Lower "
                         f"plasticity.pool (e.g. 8).")


def _check_pos(pos, who: str) -> int:
    """Check column positions ``[N, D]`` (floating, finite, N, D >= 1); returns ``N``."""
    if not isinstance(pos, Tensor) or pos.dim() != 2 or pos.size(0) < 1 or pos.size(1) < 1 \
            or not pos.is_floating_point():
        got = f"{list(pos.shape)} {pos.dtype}" if isinstance(pos, Tensor) else type(pos).__name__
        raise ValueError(f"{who}: expected 'pos' to be a floating tensor of shape [N, D] (one "
                         f"row of coordinates per column), got {got}. Pass model.edges.pos.")
    if not torch.isfinite(pos).all():
        bad = (~torch.isfinite(pos)).any(1).nonzero().flatten()
        raise ValueError(f"{who}: 'pos' holds NaN/inf at {bad.numel()} column(s) (e.g. "
                         f"{bad[:5].tolist()}).")
    return pos.size(0)


def _check_sheet(edge_index, pos, rng, period, who: str) -> int:
    """Check the sheet a grow operator reads: positions, edges, rng, period; returns ``N``."""
    N = _check_pos(pos, who)
    check_edge_index(edge_index, N, who)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{who}: expected 'rng' to be a numpy Generator (got "
                         f"{type(rng).__name__}), e.g. rng=np.random.default_rng(0).")
    if period is not None and (not isinstance(period, Tensor) or period.shape != (pos.size(1),)
                               or not torch.isfinite(period).all() or (period <= 0).any()):
        got = period.tolist() if isinstance(period, Tensor) else period
        raise ValueError(f"{who}: expected 'period' to hold one finite box size > 0 per "
                         f"dimension ({pos.size(1)}), got {got!r}; None for a sheet that does "
                         f"not wrap.")
    return N


def _check_lam(lam, who: str) -> None:
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not np.isfinite(lam) \
            or lam <= 0:
        raise ValueError(f"{who}: lam must be a finite number > 0 (got {lam!r}): the length "
                         f"scale of the exponential distance rule (plasticity.lam).")


def sample_candidates(edge_index: Tensor, pos: Tensor, need: np.ndarray, sources: str,
                      rng: np.random.Generator, lam: float = 1.0,
                      period: Tensor | None = None, tree=None) -> Tensor:
    """Up to ``need[t]`` new distinct sources for each target ``t``: ``[2, P]``, canonical.

    Args:
        edge_index: ``[2, E]`` existing edges (never proposed again; no self-edges either).
        pos: ``[N, D]`` column positions.
        need: ``[N]`` candidates wanted per target (integers >= 0). A target has at most
            ``N - 1`` sources: a larger count is clamped to that (never allocated), and a
            target gets fewer where edges exist or the draws fall short.
        sources: ``"uniform"`` or ``"edr"`` (exponential distance rule with scale ``lam``).
        rng: numpy random generator.
        tree: an optional cached ``cKDTree`` over the positions (for ``"edr"``).
    """
    who = "sample_candidates"
    n = _check_sheet(edge_index, pos, rng, period, who)
    need = np.asarray(need)
    if need.shape != (n,) or need.dtype.kind not in "iu" or (need < 0).any():
        raise ValueError(f"{who}: expected 'need' to be {n} integers >= 0 (new sources wanted "
                         f"per target column; at most N - 1 = {n - 1} can exist), got shape "
                         f"{list(need.shape)} {need.dtype}" + (
                             f", min {need.min()}" if need.size and need.dtype.kind in "iuf"
                             else "") + ".")
    if sources == "edr":
        _check_lam(lam, who)
    need = np.minimum(need, n - 1)  # every other column: more cannot exist
    taken = edge_keys(edge_index, n)
    if sources == "uniform":
        def draw(t: np.ndarray) -> np.ndarray:
            return rng.integers(0, n, t.size)
    elif sources == "edr":
        tree_x = tree if tree is not None else position_tree(pos, period)

        def draw(t: np.ndarray) -> np.ndarray:
            return edr_sources(tree_x[0], tree_x[1], t, lam, rng, period)
    else:
        raise ValueError(f"Unknown candidate sources '{sources}'. Choices: uniform, edr.")
    keys = sample_sources(n, need, draw, taken)
    out = torch.stack([torch.from_numpy(keys % n), torch.from_numpy(keys // n)])
    return out.long().to(edge_index.device)


def _all_non_edges(edge_index: Tensor, n: int) -> Tensor:
    """Every absent edge (no self-edges): for small sheets, where a pool would cover them."""
    present = torch.zeros(n * n, dtype=torch.bool, device=edge_index.device)
    present[edge_index[1] * n + edge_index[0]] = True
    present[torch.arange(n, device=edge_index.device) * (n + 1)] = True
    keys = (~present).nonzero().flatten()
    return torch.stack([keys % n, keys // n])


@torch.no_grad()
def gradient_scores(records: Sequence[dict[str, Tensor]], candidates: Tensor,
                    num_columns: int) -> Tensor:
    """RigL-style scores ``[P]`` of candidate edges from recorded attention calls.

    ``records``: what :meth:`ColumnAttention.stop_recording` returned after a forward and
    backward pass (every step of every sheet), each with ``v``, ``out`` and ``grad``
    ``[N, F]``. ``candidates`` must be in canonical order. Score of ``s -> t``:
    ``sum over records of g_t . out_t - g_t . v_s`` (higher = adding it lowers the loss).
    """
    if not records:
        raise ValueError("No attention records: run a forward pass with recording on "
                         "(ColumnAttention.start_recording()) and a backward pass first.")
    check_edge_index(candidates, num_columns, "gradient_scores")
    for i, r in enumerate(records):
        if not isinstance(r, dict) or not {"v", "out", "grad"} <= set(r):
            raise ValueError(f"gradient_scores: expected each record to be a dict with 'v', "
                             f"'out' and 'grad' (what ColumnAttention.stop_recording() "
                             f"returns), record {i} is {type(r).__name__}"
                             + (f" with keys {sorted(r)}" if isinstance(r, dict) else "") + ".")
        shapes = {k: tuple(r[k].shape) for k in ("v", "out", "grad")
                  if isinstance(r[k], Tensor)}
        if r["grad"] is not None and (len(shapes) < 3 or len(set(shapes.values())) > 1 or
                                      len(shapes["v"]) != 2 or shapes["v"][0] != num_columns):
            raise ValueError(f"gradient_scores: expected record {i}'s 'v', 'out' and 'grad' to "
                             f"be tensors of one shape [N, F] with N = {num_columns} (got "
                             f"{shapes}).")
    block = EdgeCSR(candidates, num_columns).block(1)
    score = torch.zeros(candidates.size(1), device=candidates.device)
    own = torch.zeros(num_columns, device=candidates.device)
    for r in records:
        if r["grad"] is None:
            raise ValueError("Attention records hold no gradient: call loss.backward() after "
                             "the recorded forward pass.")
        g = r["grad"].float()
        own += (g * r["out"].float()).sum(1)  # (N,)
        score -= sddmm(block, g.contiguous(), r["v"].float().contiguous())  # (P,)
    return score + own[candidates[1]]


@dataclass(frozen=True)
class GrowInputs:
    """What a grow rule may read about the sheet at one update.

    Attributes:
        edge_index: ``[2, E]`` edges that exist (and may not be proposed).
        pos: ``[N, D]`` column positions.
        rng: numpy random generator (the rule's only source of randomness).
        period: box sizes for toroidal sheets.
        length_fn: ``(source, target) -> length`` in the geometry's metric.
        records: attention records of a recorded forward + backward pass.
        tree: a cached ``cKDTree`` over the positions (see ``position_tree``).
    """

    edge_index: Tensor
    pos: Tensor
    rng: np.random.Generator
    period: Tensor | None = None
    length_fn: Callable[[Tensor, Tensor], Tensor] | None = None
    records: Sequence[dict[str, Tensor]] | None = None
    tree: Any = None


def grow_edges(rule: str | Callable[..., Tensor], n: int, edge_index: Tensor, pos: Tensor, *,
               rng: np.random.Generator, period: Tensor | None = None, length_fn=None,
               records: Sequence[dict[str, Tensor]] | None = None, tree=None,
               **settings) -> Tensor:
    """``[2, <= n]`` new edges (absent from ``edge_index``) chosen by ``rule``.

    Args:
        rule: a name in :data:`GROW_RULES` or a grow-rule function.
        n: how many edges to add, at most (an integer >= 0: a Python or numpy int, or a 0-d
            integer tensor). A rule may find fewer (crowded columns). A sheet has room for
            ``N (N - 1)`` edges (no self-edges) less those in ``edge_index``: a larger ``n``
            is clamped to that room, never allocated. ``n`` >= the room asks for every
            absent edge: ``random`` and ``geometric`` return them all, the gradient rules
            their whole candidate pool.
        edge_index: ``[2, E]`` edges that exist (and may not be proposed).
        pos: ``[N, D]`` positions.
        rng: numpy random generator.
        period: box sizes for toroidal sheets.
        length_fn: ``(source, target) -> length`` in the geometry's metric
            (``gradient_distance``).
        records: attention records (``gradient``, ``gradient_distance``).
        tree: a cached ``cKDTree`` over the positions.
        **settings: the rule's settings: ``lam``, the exponential-distance-rule length
            scale (``geometric``, the gradient rules' pools and discount); ``pool``,
            candidate sources per column for the gradient rules (``pool >= N - 1`` scores
            every absent edge).

    Example:
        >>> from colgraph.geometry import grid, knn
        >>> geo = grid(6, wiring=knn(4))
        >>> add = grow_edges("geometric", 10, geo.edge_index, geo.pos,
        ...                  rng=np.random.default_rng(0), lam=2.0)
        >>> add.shape
        torch.Size([2, 10])
    """
    entry = GROW_RULES.lookup(rule)
    who = f"grow_edges('{entry.name}')"
    n = check_count(n, "n", who)
    N = _check_sheet(edge_index, pos, rng, period, who)
    n = min(n, _room(edge_index, N))
    if length_fn is not None and not callable(length_fn):
        raise ValueError(f"{who}: expected 'length_fn' to be a function (source, target) -> "
                         f"length, e.g. model.edges.measure (got {type(length_fn).__name__}).")
    if n == 0:
        return edge_index.new_empty(2, 0)
    if entry.records and records is None:
        raise ValueError(f"Grow rule '{entry.name}' needs attention records (a recorded forward "
                         f"and backward pass).")
    inputs = GrowInputs(edge_index, pos, rng, period, length_fn, records, tree)
    add = entry(inputs, n, **settings)
    if not isinstance(add, Tensor) or add.dim() != 2 or add.size(0) != 2 or add.size(1) > n:
        got = list(add.shape) if isinstance(add, Tensor) else type(add).__name__
        raise ValueError(f"The grow rule '{entry.name}' returned {got}; a grow rule must return "
                         f"at most n = {n} new edges, a tensor of shape [2, <= {n}].")
    if add.numel():
        check_edge_index(add, N, f"the edges grow rule '{entry.name}' returned")
        if (add[0] == add[1]).any():
            raise ValueError(f"The grow rule '{entry.name}' returned self-edges (e.g. column "
                             f"{int(add[0][add[0] == add[1]][0])}); a grow rule proposes "
                             f"edges between different columns.")
    return add


def _room(edge_index: Tensor, num_columns: int) -> int:
    """How many edges a sheet can still grow: ``N (N - 1)`` less its edges (self-edges
    aside; the edges are distinct, the canonical invariant)."""
    return num_columns * (num_columns - 1) - int((edge_index[0] != edge_index[1]).sum())


def _uniform_targets(inputs: GrowInputs, n: int, sources: str, lam: float = 1.0) -> Tensor:
    N = inputs.pos.size(0)
    if n >= _room(inputs.edge_index, N):  # every absent edge: no draw would find them all
        return _all_non_edges(inputs.edge_index, N)
    need = np.bincount(inputs.rng.integers(0, N, n), minlength=N)  # uniform targets
    return sample_candidates(inputs.edge_index, inputs.pos, need, sources, inputs.rng, lam,
                             inputs.period, inputs.tree)


@register_grow("random")
def grow_random(inputs: GrowInputs, n: int) -> Tensor:
    """Uniform targets, uniform sources (SET)."""
    return _uniform_targets(inputs, n, "uniform")


@register_grow("geometric")
def grow_geometric(inputs: GrowInputs, n: int, *, lam: float = 1.0) -> Tensor:
    """Uniform targets, sources by the exponential distance rule with scale ``lam``."""
    _check_lam(lam, "grow rule 'geometric'")
    return _uniform_targets(inputs, n, "edr", lam)


def candidate_pool(inputs: GrowInputs, pool: int, lam: float, who: str) -> Tensor:
    """The candidates a scoring grow rule ranks, ``[2, P]`` canonical: ``pool`` new
    sources per column, half uniform, half by the exponential distance rule with scale
    ``lam``; every absent edge when ``pool >= N - 1``."""
    edge_index, pos, rng, period, tree = (inputs.edge_index, inputs.pos, inputs.rng,
                                          inputs.period, inputs.tree)
    N = pos.size(0)
    check_pool(pool, N)
    _check_lam(lam, who)
    if pool >= N - 1:
        cand = _all_non_edges(edge_index, N)
    else:
        half = max(1, pool // 2)
        uni = sample_candidates(edge_index, pos, np.full(N, pool - half), "uniform", rng,
                                lam, period, tree) if pool - half else edge_index.new_empty(2, 0)
        edr = sample_candidates(torch.cat([edge_index, uni], 1), pos, np.full(N, half), "edr",
                                rng, lam, period, tree)
        cand = torch.cat([uni, edr], 1)
        cand = cand[:, canonical_order(cand, N)]
    return cand


def _gradient_growth(inputs: GrowInputs, n: int, lam: float, pool: int,
                     discount: Callable[[Tensor, Tensor], Tensor] | None = None) -> Tensor:
    """The ``n`` best of a candidate pool by gradient score (``discount(cand, score)``
    rescoring them if given)."""
    cand = candidate_pool(inputs, pool, lam, "the gradient grow rules")
    N = inputs.pos.size(0)
    if cand.size(1) == 0:
        return cand
    score = gradient_scores(inputs.records, cand, N)
    if discount is not None:
        score = discount(cand, score)
    best = torch.topk(score, min(n, score.numel())).indices
    return cand[:, best]


@register_grow("gradient", records=True)
def grow_gradient(inputs: GrowInputs, n: int, *, lam: float = 1.0, pool: int = 8) -> Tensor:
    """RigL for attention: the candidates whose logit gradient says the loss would fall."""
    return _gradient_growth(inputs, n, lam, pool)


@register_grow("gradient_distance", records=True)
def grow_gradient_distance(inputs: GrowInputs, n: int, *, lam: float = 1.0,
                           pool: int = 8) -> Tensor:
    """The gradient score discounted by length: short helpful edges first."""
    def discount(cand: Tensor, score: Tensor) -> Tensor:
        if inputs.length_fn is None:
            raise ValueError("Grow rule 'gradient_distance' needs edge lengths (length_fn).")
        decay = inputs.length_fn(cand[0], cand[1]).float() / lam
        return torch.where(score > 0, score * torch.exp(-decay), score * torch.exp(decay))

    return _gradient_growth(inputs, n, lam, pool, discount)

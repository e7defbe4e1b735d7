"""Migration: columns that move on the sheet during training to shorten their wiring.

Plasticity decides WHICH edges exist; migration decides WHERE columns sit. Every ``every``
optimizer steps between ``start`` and ``stop``, :class:`Migration` weighs each edge by its
running attention (an EMA over steps, like plasticity's), finds a better placement of the
columns over their own places (:func:`colgraph.connectome.placement.migration_step`:
pairwise swaps, greedy or annealed, or a quadratic placement refined by swaps; pinned areas
stay, ``within_area`` keeps areas where they are) and applies it with ONE
:meth:`SheetEdges.move <colgraph.nn.SheetEdges.move>`: positions change, and with them every
edge length (derived from positions) and so the wiring cost, the length priors of grown
edges and geometric growth's k-d tree; parameters and edges stay with their columns, so the
network computes exactly what it did before the move.

Cost per migration at 10^5 columns x 16 edges: one swap sweep takes about a second and a
quadratic placement about 8 s (BENCHMARKS.md), so ``every`` of a few hundred steps keeps
migration a small share of training.

Decisions are the first process's (the whole sheet's statistics, gathered on a
column-sharded sheet), broadcast to every process, which applies the same move: one
placement, whatever the number of processes. Random draws use ``seed`` and the step only,
so a resumed run makes the decisions the uninterrupted run made.
"""
from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

import torch
from torch import Tensor

from ..objectives import wiring_length
from ..validation import Checks, check_types
from .schedule import _uniform_share, attention_mass

__all__ = ["MigrateConfig", "Migration", "METHODS"]

METHODS = ("greedy", "anneal", "quadratic")


@dataclass
class MigrateConfig:
    """When and how columns migrate (the ``migrate`` config group; ``every=0``: never).

    ``temperature`` (``anneal``) is relative: the temperature at ``start`` in units of the
    mean wire per edge (``weight x length^p``), decaying geometrically to a thousandth of it
    at ``stop``.
    """

    every: int = 0  # optimizer steps between migrations (0: columns never move)
    start: int = 0  # first step that may migrate
    stop: int | None = None  # last step that may migrate; default 3/4 of training
    method: str = "greedy"  # greedy | anneal (pairwise swaps) | quadratic (+ swaps)
    sweeps: int = 2  # swap sweeps per migration (one proposal per movable column each)
    temperature: float = 0.05  # anneal: start temperature / mean wire per edge
    pinned: list[str] = field(default_factory=list)  # areas whose columns never move
    within_area: bool = False  # swaps only between columns of the same area(s)
    neighbours: int = 8  # candidate places per swap proposal (the nearest sites)
    cost_power: float = 1.0  # the wire minimised: attention x length^p
    ema: float = 0.9  # decay of the running attention per step
    seed: int = 0

    def __post_init__(self) -> None:
        check_types(self, "migrate")
        with Checks() as check:
            check.refuse(self.method not in METHODS,
                         f"Unknown migrate.method '{self.method}'. Choices: "
                         f"{', '.join(METHODS)}.")
            check.refuse(self.every < 0, f"migrate.every must be >= 0 steps (0: off), got "
                                         f"{self.every}.")
            check.refuse(self.start < 0 or (self.stop is not None and self.stop < self.start),
                         f"migrate.start ({self.start}) must be >= 0 and <= migrate.stop "
                         f"({self.stop}).")
            check.refuse(self.sweeps < 1 or self.neighbours < 1,
                         f"migrate.sweeps and migrate.neighbours must be >= 1 (got "
                         f"{self.sweeps}, {self.neighbours}).")
            check.refuse(not (0.0 <= self.ema < 1.0), f"migrate.ema must be in [0, 1) (got "
                                                      f"{self.ema}).")
            for key in ("temperature", "cost_power"):
                v = getattr(self, key)
                check.refuse(not (math.isfinite(v) and v > 0),
                             f"migrate.{key} must be a finite number > 0 (got {v}).")
            check.refuse(self.within_area and self.method == "quadratic",
                         "migrate.method=quadratic places columns anywhere, across areas: with "
                         "migrate.within_area=true use migrate.method=greedy or anneal.")
            check.refuse(not all(isinstance(a, str) and a for a in self.pinned),
                         f"migrate.pinned must list area names (got {self.pinned!r}).")
            if check.errors:
                return
            if not self.enabled:  # off: every setting moved from its default is unread
                moved = [f.name for f in fields(self) if f.name != "every" and getattr(
                    self, f.name) != (f.default if f.default is not MISSING
                                      else f.default_factory())]
                check.unread(bool(moved), f"migrate.{', migrate.'.join(moved)} has no effect: "
                                          f"migration is off (migrate.every=0). Set "
                                          f"migrate.every > 0 or remove the override.")
                return
            check.unread(self.method != "anneal" and self.temperature != 0.05,
                         f"migrate.temperature={self.temperature} is read by "
                         f"migrate.method=anneal only (got method={self.method}): set "
                         f"migrate.method=anneal or drop migrate.temperature.")

    @property
    def enabled(self) -> bool:
        return self.every > 0


class Migration:
    """Moves a Columnformer's columns on a schedule (see the module docstring).

    Args:
        model: a :class:`~colgraph.Columnformer` (or a model holding one as
            ``.columnformer``).
        config: a :class:`MigrateConfig` (``every > 0``).
        total_steps: the length of training (default ``stop`` = 3/4 of it).
        ranks: the processes of a multi-process run (:class:`colgraph.distributed.Distributed`).

    Example:
        >>> from colgraph import Columnformer
        >>> from colgraph.geometry import grid, knn
        >>> model = Columnformer(grid(6, wiring=knn(k=6)), channels=8, steps=4,
        ...                      input_area="input", output_area="output")
        >>> to = torch.randperm(36, generator=torch.Generator().manual_seed(0))
        >>> _ = model.edges.move(to)                       # a scrambled sheet
        >>> migration = Migration(model, MigrateConfig(every=1, method="quadratic"), 10)
        >>> stats = migration.maybe_update(step=1)
        >>> stats["wire_after"] < 0.8 * stats["wire_before"]
        True
    """

    def __init__(self, model: Any, config: MigrateConfig, total_steps: int,
                 ranks: Any = None) -> None:
        self.model = getattr(model, "columnformer", model)
        self.config, self.ranks = config, ranks
        self.edges = self.model.edges
        self.stop = config.stop if config.stop is not None else int(0.75 * total_steps)
        for name in config.pinned:  # an unknown area fails now, not at the first move
            self.edges.area(name)
        pinned = self._pinned()
        if bool(pinned.all()):
            raise ValueError(f"migrate.pinned={config.pinned} pins all {pinned.numel()} "
                             f"columns: nothing can move. Pin fewer areas.")
        self.last_update = -1
        deg = self.edges.in_degree().clamp_min(1).float()
        self.attention = (1.0 / deg)[self.edges.index[1]]  # (E,) running attention
        self.edges.register(self, "attention", init=_uniform_share)

    def close(self) -> None:
        """Stop editing the running attention with the model's edges."""
        self.edges.unregister(self)

    # ------------------------------------------------------------------ schedule
    def is_update_step(self, step: int) -> bool:
        c = self.config
        return (c.enabled and c.start <= step <= self.stop and step > 0
                and (step - c.start) % c.every == 0)

    def temperature(self, step: int) -> float:
        """``anneal``: this step's temperature relative to the mean wire per edge."""
        c = self.config
        progress = min(1.0, max(0.0, (step - c.start) / max(1, self.stop - c.start)))
        return c.temperature * 1e-3 ** progress

    @torch.no_grad()
    def observe(self, attention: list[Tensor]) -> None:
        """Fold one step's per-edge attention (``T`` tensors ``[E, H]``) into the EMA."""
        ema = self.config.ema
        self.attention.mul_(ema).add_(attention_mass(attention, self.ranks), alpha=1 - ema)

    def maybe_update(self, step: int) -> dict[str, float] | None:
        """Migrate if ``step`` is a migration step; return what moved, else ``None``."""
        if not self.is_update_step(step) or step == self.last_update:
            return None
        return self.update(step)

    # ------------------------------------------------------------------ update
    @torch.no_grad()
    def update(self, step: int) -> dict[str, float]:
        """One migration (see the module docstring); returns statistics."""
        edges = self.edges
        shard = edges.shard
        distributed = self.ranks is not None and self.ranks.enabled
        # the whole sheet's statistics on the first process of the first data group (a
        # gather within each column-sharded sheet's group); its decision goes to every rank
        if not distributed or self.ranks.data_rank == 0:
            index, attention = shard.gather(edges.index, 1), shard.gather(self.attention)
        to = self._decide(step, index, attention) if not distributed or self.ranks.is_main \
            else None
        if distributed:
            to = self.ranks.broadcast(to)
        before = self._wire()
        move = edges.move(to.to(edges.pos.device))
        self.last_update = step
        N = edges.num_columns
        return {"step": step, "wire_before": before, "wire_after": self._wire(),
                "moved_fraction": move.num_moved / max(N, 1),
                "mean_displacement": float(move.displacement.mean()) if move.num_moved
                else 0.0,
                "temperature": self.temperature(step) if self.config.method == "anneal"
                else 0.0}

    def _decide(self, step: int, index: Tensor, attention: Tensor) -> Tensor:
        """``to [N]``: the place (current column id) each column moves to, decided in the
        columns' original ids on a renumbered sheet (a partition, ``edges.shard.order``),
        so the placement does not depend on how the sheet is split."""
        from ..connectome.placement import migration_step

        c, edges = self.config, self.edges
        order, inverse = edges.shard.order, edges.shard.inverse
        N = edges.num_columns
        index, pinned = index.cpu(), self._pinned()
        rows = torch.arange(N) if order is None else inverse  # original id j -> its row
        ids = torch.arange(N) if order is None else order  # row r -> its original id
        pos = edges.pos.detach().double().cpu()[rows]
        weight = attention.detach().double().cpu()
        temperature = None
        if c.method == "anneal":
            length = edges.measure(index[0], index[1]).double().cpu()
            per_edge = float((weight * length.pow(c.cost_power)).mean()) or 1.0
            temperature = self.temperature(step) * per_edge
        placement = migration_step(
            ids[index], weight.numpy(), pos.numpy(), edges.metric,
            None if edges.period is None else edges.period.double().cpu().numpy(),
            {k: ids[v.cpu()] for k, v in edges.areas.items()},
            pinned=pinned[rows].numpy(), within="area" if c.within_area else None,
            method=c.method, sweeps=c.sweeps, temperature=temperature,
            cost_power=c.cost_power, neighbours=c.neighbours,
            seed=(c.seed * 1_000_003 + step) % 2**32)
        site = torch.as_tensor(placement.site, dtype=torch.long)  # in original ids
        return rows[site[ids]]

    def _pinned(self) -> Tensor:
        mask = torch.zeros(self.edges.num_columns, dtype=torch.bool)
        for name in self.config.pinned:
            mask[self.edges.area(name).cpu()] = True
        return mask

    def _wire(self) -> float:
        """The attention-weighted mean edge length of the whole sheet now."""
        e = self.edges
        return float(wiring_length([self.attention.unsqueeze(1)], e.index, e.length,
                                   shard=e.shard))

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "attention": self.attention.detach().cpu(),
                "last_update": self.last_update}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        att = state["attention"]
        if att.numel() != self.edges.num_edges:
            raise ValueError(f"The migration state holds {att.numel()} edges but the model "
                             f"has {self.edges.num_edges}: load the model's state first.")
        self.attention = att.to(self.attention)
        self.last_update = int(state["last_update"])

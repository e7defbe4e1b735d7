"""Plasticity during training: prune and grow edges on a schedule (SET, RigL, wiring-aware).

Symbols: ``N`` columns, ``E`` edges, ``E0`` edges when plasticity starts.

Every ``every`` optimizer steps between ``start`` and ``stop``, :class:`Plasticity` drops a
fraction of the edges (annealed from ``drop_fraction`` to 0, cosine by default) chosen by a
prune criterion and grows new ones by a grow rule, then applies both with ONE call to
:meth:`SheetEdges.edit` (edges, every per-edge parameter, gradients, Adam moments). The
budget keeps ``E`` constant or anneals it to ``target_density * E0`` at ``stop``.

The training loop calls, per step::

    record = plasticity.wants_record(step)   # gradient growth: record attention this step
    ... forward, backward, optimizer.step() ...
    plasticity.observe(out.attention)        # running attention mass (EMA)
    stats = plasticity.maybe_update(step)    # None, or what changed (for logging)
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..geometry.wiring import position_tree
from ..objectives import wiring_length
from ..validation import Checks, unread_settings
from .grow import GROW_RULES, check_pool, grow_edges
from .prune import PRUNE_CRITERIA, prune_scores, reachability_edges, select_prune
from .registry import Rule

__all__ = ["PlasticityConfig", "Plasticity", "PRESETS", "PRESET_FIELDS"]

ANNEALS = ("cosine", "linear", "constant")
BUDGETS = ("constant", "anneal")
NEW_BIAS = ("prior", "mean")
PRESETS = ("none", "set", "rigl", "wiring", "custom")
# what each preset sets (configs/plasticity/<name>.yaml holds the same; a test checks it)
PRESET_FIELDS: dict[str, dict[str, Any]] = {
    "set": {"every": 25, "drop_fraction": 0.3, "prune": "bias", "grow": "random"},
    "rigl": {"every": 25, "drop_fraction": 0.3, "prune": "attention", "grow": "gradient"},
    "wiring": {"every": 25, "drop_fraction": 0.5, "prune": "wiring",
               "grow": "gradient_distance"},
}


@dataclass
class PlasticityConfig:
    """Prune / grow schedule (the ``plasticity`` config group).

    ``name`` labels the preset (``none`` turns plasticity off); the other fields decide what
    happens. In Python, :meth:`preset` fills them as the YAML presets do:
    ``PlasticityConfig.preset("rigl", every=50)``. ``prune`` and ``grow`` name entries of
    :data:`PRUNE_CRITERIA` and :data:`GROW_RULES`; a rule's settings (``p``, ``lam``,
    ``pool``, ``homophily_eta``, ``homophily_gamma``) are the fields named like its
    keyword-only parameters, and setting one that the chosen rule does not read is refused.
    """

    name: str = "none"  # none | set | rigl | wiring | custom
    every: int = 50  # optimizer steps between updates
    start: int = 0  # first step that may update
    stop: int | None = None  # last step that may update; default 3/4 of training
    drop_fraction: float = 0.3  # fraction of edges replaced at the first update
    anneal: str = "cosine"  # how the drop fraction decays to 0 at stop: cosine | linear | constant
    prune: str = "attention"  # a PRUNE_CRITERIA name: attention | bias | wiring | random
    grow: str = "gradient"  # a GROW_RULES name: random | geometric | gradient |
    # gradient_distance | homophily
    budget: str = "constant"  # constant: E fixed; anneal: E -> target_density * E0 at stop
    target_density: float = 1.0  # budget=anneal: edges at stop / edges at start
    min_in_degree: int = 1  # never leave a column with fewer inputs
    keep_reachable: bool = True  # never cut the input -> output paths the model needs
    lam: float | None = None  # EDR length scale (geometric, pools, discount); default 2x spacing
    p: float = 1.0  # prune=wiring: attention / length^p
    pool: int = 8  # gradient rules, homophily: candidate sources scored per column
    homophily_eta: float = -2.0  # grow=homophily: P ~ length^eta * matching^gamma
    homophily_gamma: float = 1.0  # grow=homophily: exponent of the matching index
    ema: float = 0.9  # decay of the running attention mass per step
    new_bias: str = "prior"  # new edges' bias: prior (length prior) | mean (target's mean)
    seed: int = 0

    def __post_init__(self) -> None:
        with Checks() as check:
            checks = [("name", PRESETS), ("anneal", ANNEALS), ("prune", PRUNE_CRITERIA),
                      ("grow", GROW_RULES), ("budget", BUDGETS), ("new_bias", NEW_BIAS)]
            for key, choices in checks:
                check.refuse(getattr(self, key) not in choices,
                             f"Unknown plasticity.{key} '{getattr(self, key)}'. Choices: "
                             f"{', '.join(choices)}.")
            for key in ("drop_fraction", "ema"):
                v = getattr(self, key)
                check.refuse(not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0),
                             f"plasticity.{key} must be a fraction in [0, 1] (got {v!r}).")
            check.refuse(not (self.target_density > 0 and math.isfinite(self.target_density)),
                         f"plasticity.target_density must be > 0 (got {self.target_density}): "
                         f"it is the edge count at stop relative to the start.")
            check.refuse(self.every < 1,
                         f"plasticity.every must be >= 1 step (got {self.every}).")
            check.refuse(self.start < 0 or (self.stop is not None and self.stop < self.start),
                         f"plasticity.start ({self.start}) must be >= 0 and <= "
                         f"plasticity.stop ({self.stop}).")
            check.refuse(self.min_in_degree < 1,
                         f"plasticity.min_in_degree must be >= 1 (got {self.min_in_degree}): "
                         f"a column without inputs has an undefined attention softmax.")
            check.refuse(self.lam is not None and not self.lam > 0,
                         f"plasticity.lam must be > 0 (got {self.lam}).")
            check.refuse(self.pool < 1, f"plasticity.pool must be >= 1 (got {self.pool}).")
            for key in ("homophily_eta", "homophily_gamma"):
                v = getattr(self, key)
                check.refuse(isinstance(v, bool) or not isinstance(v, (int, float))
                             or not math.isfinite(v),
                             f"plasticity.{key} must be a finite number (got {v!r}), e.g. "
                             f"plasticity.{key}={-2.0 if key.endswith('eta') else 1.0}.")
            if check.errors:  # the settings below assume valid values
                return
            if not self.enabled:  # off: every setting moved from its default is unread
                on = [f.name for f in fields(self) if f.name != "name"]
                unread_settings(check, self, "plasticity", "plasticity", "none",
                                {"none": (), **{n: on for n in PRESETS[1:]}},
                                f"Plasticity is off: choose a schedule (plasticity="
                                f"{' | '.join(PRESETS[1:])}) or remove the override.")
                return
            for key, registry in (("prune", PRUNE_CRITERIA), ("grow", GROW_RULES)):
                unread_settings(check, self, "plasticity", f"plasticity.{key}",
                                getattr(self, key), {name: rule.settings
                                                     for name, rule in registry.items()})
            unread_settings(check, self, "plasticity", "plasticity.budget", self.budget,
                            {"constant": (), "anneal": ("target_density",)})
            check.unread(self.drop_fraction == 0 and self.budget == "constant",
                         f"plasticity.drop_fraction=0 with plasticity.budget=constant replaces "
                         f"no edge: plasticity={self.name} would do nothing. Set "
                         f"plasticity.drop_fraction > 0, anneal the edge count "
                         f"(plasticity.budget=anneal), or use plasticity=none.")
            first = self.start if self.start > 0 else self.every
            check.unread(self.stop is not None and first > self.stop,
                         f"plasticity.stop={self.stop} ends the schedule before its first "
                         f"update (step {first}: plasticity.start={self.start}, "
                         f"plasticity.every={self.every}): no edge would change. Raise "
                         f"plasticity.stop or lower plasticity.every.")

    def check_room(self, num_columns: int, num_edges: int, self_loops: int = 0) -> None:
        """Refuse a schedule the sheet has no room for: grown edges are new pairs (no
        self-edges, none that exist or were just dropped), so a sheet holding ``E`` of the
        ``N (N - 1)`` possible edges can grow at most ``N (N - 1) - E`` at the first update.
        With ``budget=constant`` that must cover the edges it drops
        (``drop_fraction * E``), else the edge count falls; with ``budget=anneal`` the
        target ``target_density * E`` must fit in the sheet."""
        if not self.enabled:
            return
        possible = num_columns * (num_columns - 1)
        room = possible - (num_edges - self_loops)
        drop = round(self.drop_fraction * num_edges)
        with Checks() as check:
            check.unread(self.budget == "constant" and drop > room,
                         f"plasticity.budget=constant cannot keep the edge count on this "
                         f"sheet: it holds {num_edges} of the {possible} possible edges "
                         f"between its {num_columns} columns, so at most {room} can grow, but "
                         f"the first update drops {drop} (plasticity.drop_fraction="
                         f"{self.drop_fraction}): the edge count would fall. Lower "
                         f"plasticity.drop_fraction to <= {room / max(num_edges, 1):.3g}, "
                         f"or wire the sheet more sparsely (e.g. a smaller "
                         f"geometry.wiring.k).")
            target = round(self.target_density * num_edges)
            check.unread(self.budget == "anneal" and target > possible + self_loops,
                         f"plasticity.target_density={self.target_density} asks for "
                         f"{target} edges at plasticity.stop, but the sheet's {num_columns} "
                         f"columns have room for {possible}: set plasticity.target_density "
                         f"<= {possible / max(num_edges, 1):.3g}.")

    @property
    def enabled(self) -> bool:
        return self.name != "none"

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "PlasticityConfig":
        """The preset ``name`` (``none``, ``set``, ``rigl``, ``wiring``, ``custom``) with
        ``overrides``; the same settings as ``plasticity=<name>`` in a config."""
        if name not in PRESETS:
            raise ValueError(f"Unknown plasticity preset '{name}'. Choices: "
                             f"{', '.join(PRESETS)}.")
        return cls(**{"name": name, **PRESET_FIELDS.get(name, {}), **overrides})


class Plasticity:
    """Prunes and grows a Columnformer's edges on a schedule.

    Args:
        model: a :class:`~colgraph.Columnformer` (or a model holding one as
            ``.columnformer``).
        config: a :class:`PlasticityConfig`.
        total_steps: the length of training (default ``stop`` = 3/4 of it).
        optimizer: the optimizer whose per-edge state is edited with the edges.
        ranks: the processes of a multi-process run (:class:`colgraph.distributed.Distributed`).

    On a renumbered sheet (a partition, :mod:`colgraph.parallel`; ``edges.shard.order``)
    decisions are made in the columns' original ids, so the learned wiring does not depend
    on how the sheet is split.

    Example:
        >>> from colgraph import Columnformer
        >>> from colgraph.geometry import grid, knn
        >>> model = Columnformer(grid(6, wiring=knn(k=6)), channels=8, steps=6,
        ...                      input_area="input", output_area="output")
        >>> cfg = PlasticityConfig.preset("set", prune="random", every=1)
        >>> plasticity = Plasticity(model, cfg, total_steps=10)
        >>> stats = plasticity.maybe_update(step=1)
        >>> stats["removed"] == stats["added"], model.edges.num_edges
        (True, 216)
    """

    def __init__(self, model: Any, config: PlasticityConfig, total_steps: int,
                 optimizer: torch.optim.Optimizer | None = None, ranks: Any = None) -> None:
        self.model = getattr(model, "columnformer", model)
        self.config, self.optimizer = config, optimizer
        # data-parallel ranks (colgraph.distributed.Distributed): attention statistics are
        # averaged over them and rank 0's prune / grow decision is applied on every rank
        self.ranks = ranks
        self.edges = self.model.edges
        self.edges.check()
        self.prune_rule: Rule = PRUNE_CRITERIA.lookup(config.prune)
        self.grow_rule: Rule = GROW_RULES.lookup(config.grow)
        if "pool" in self.grow_rule.settings:  # a scored candidate pool: refuse O(N^2) now,
            check_pool(config.pool, self.edges.num_columns)  # before any training step
        self.stop = config.stop if config.stop is not None else int(0.75 * total_steps)
        length = self.edges.length
        _warn_if_lengths_are_not_metric(self.edges)
        self._tree, self._tree_version = None, None
        self.lam = config.lam or self._column_spacing() * 2.0
        self.initial_edges = self.edges.shard.total(self.edges.num_edges)  # the whole sheet's
        self.rng = np.random.default_rng(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.last_update = -1
        # running attention mass per edge, edited in lockstep with the edges
        deg = self.edges.in_degree().clamp_min(1).float()
        self.attention = (1.0 / deg)[self.edges.index[1]].to(length.device)  # (E,)
        self.edges.register(self, "attention", init=_uniform_share)

    def close(self) -> None:
        """Stop editing the attention statistics with the model's edges (unregister them).

        A dropped schedule leaves the edge registry by itself (it is held weakly); ``close``
        (or leaving a ``with Plasticity(...) as plasticity:`` block) does it at once.
        """
        self.edges.unregister(self)

    def __enter__(self) -> "Plasticity":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ schedule
    def is_update_step(self, step: int) -> bool:
        c = self.config
        return (c.enabled and c.start <= step <= self.stop and step > 0
                and (step - c.start) % c.every == 0)

    def wants_record(self, step: int) -> bool:
        """Whether the optimizer step that brings the count to ``step`` needs attention
        records (gradient growth scores candidates from that step's forward + backward)."""
        return self.is_update_step(step) and self.grow_rule.records

    def drop_fraction(self, step: int) -> float:
        c = self.config
        progress = min(1.0, max(0.0, (step - c.start) / max(1, self.stop - c.start)))
        if c.anneal == "cosine":
            return c.drop_fraction * 0.5 * (1 + math.cos(math.pi * progress))
        if c.anneal == "linear":
            return c.drop_fraction * (1 - progress)
        return c.drop_fraction

    def target_edges(self, step: int, current: int) -> int:
        """The sheet's edge budget at ``step`` (``current``: its edges now)."""
        c = self.config
        if c.budget == "constant":
            return current
        progress = min(1.0, max(0.0, (step - c.start) / max(1, self.stop - c.start)))
        return round(self.initial_edges * (1 + (c.target_density - 1) * progress))

    # ------------------------------------------------------------------ hooks
    def start_recording(self) -> None:
        for block in self.model.blocks:
            block.attn.start_recording()

    def stop_recording(self) -> list[dict[str, Tensor]]:
        return [r for block in self.model.blocks for r in block.attn.stop_recording()]

    @torch.no_grad()
    def observe(self, attention: list[Tensor]) -> None:
        """Fold one step's per-edge attention (``T`` tensors ``[E, H]``) into the EMA."""
        if not self.config.enabled:
            return
        ema = self.config.ema
        self.attention.mul_(ema).add_(attention_mass(attention, self.ranks), alpha=1 - ema)

    # ------------------------------------------------------------------ update
    def maybe_update(self, step: int, records: list[dict[str, Tensor]] | None = None
                     ) -> dict[str, float] | None:
        """Prune and grow if ``step`` is an update step; return what changed, else None."""
        if not self.is_update_step(step) or step == self.last_update:
            return None
        return self.update(step, records)

    @torch.no_grad()
    def update(self, step: int, records: list[dict[str, Tensor]] | None = None
               ) -> dict[str, float]:
        """One prune + grow update (see the module docstring); returns statistics."""
        edges = self.edges
        edges.check()
        if self.ranks is None or not self.ranks.enabled:
            return self._apply(step, *self._decide_whole(step, *self._whole(records)))
        # rank 0 decides for the whole sheet (its random draws and, for gradient rules, its
        # records; on a column-sharded sheet, from every process's rows of the statistics);
        # every process applies the same edit to its own edges, so the wiring is the one a
        # single process would have
        whole = self._whole(records) if self.ranks.data_rank == 0 else None
        keep, add = self.ranks.broadcast(self._decide_whole(step, *whole)
                                         if self.ranks.is_main else None)
        keep, add = keep.to(edges.index.device), add.to(edges.index.device)
        shard = edges.shard
        if shard.enabled:  # this process's part of the edit: its edges, its columns' inputs
            first = sum(shard.sizes(edges.num_edges)[:shard.rank])
            keep = keep[first:first + edges.num_edges]
            add = add[:, (add[1] >= shard.lo) & (add[1] < shard.hi)]
        return self._apply(step, keep, add)

    def _whole(self, records: list[dict[str, Tensor]] | None) -> tuple:
        """What a decision reads, of the whole sheet: ``(records, index, attention, biases,
        length)``, gathered on the first process of a column-sharded sheet's group
        (``None`` for each on the others)."""
        shard, edges = self.edges.shard, self.edges
        gathered = [shard.gather(edges.index, 1), shard.gather(self.attention),
                    shard.gather(self._biases(), 1), shard.gather(edges.length)]
        if records is not None and shard.enabled:
            records = [{k: None if v is None else shard.gather(v) for k, v in r.items()}
                       for r in records]
        return (records, *gathered)

    def _decide_whole(self, step: int, records: list[dict[str, Tensor]] | None,
                      index: Tensor, attention: Tensor, biases: Tensor, length: Tensor
                      ) -> tuple[Tensor, Tensor]:
        """:meth:`_decide` for the whole sheet, in the columns' original ids when the sheet
        was renumbered (then translated back: ``keep`` in this sheet's edge order, ``add``
        in its ids)."""
        edges = self.edges
        inputs, outputs = self.model.input_index, self.model.output_index
        if edges.shard.order is None:
            return self._decide(step, records, index, attention, biases, length, edges.pos,
                                inputs, outputs, edges.measure, self._position_tree())
        order = edges.shard.order.to(index.device)
        inverse = edges.shard.inverse.to(index.device)
        original = order[index]
        perm = torch.argsort(original[1] * edges.num_columns + original[0])  # canonical
        pos = edges.pos[inverse.to(edges.pos.device)]  # original column j at row j
        if records is not None:
            records = [{k: None if v is None else v[inverse.to(v.device)] for k, v in r.items()}
                       for r in records]
        keep, add = self._decide(
            step, records, original[:, perm], attention[perm], biases[:, perm], length[perm],
            pos, order[inputs], order[outputs],
            lambda s, t: edges.measure(inverse[s], inverse[t]),
            self._position_tree(pos))
        mine = torch.empty_like(keep)
        mine[perm] = keep
        return mine, inverse[add]

    def _decide(self, step: int, records: list[dict[str, Tensor]] | None, index: Tensor,
                attention: Tensor, biases: Tensor, length: Tensor, pos: Tensor,
                inputs: Tensor, outputs: Tensor, length_fn: Any, tree: Any
                ) -> tuple[Tensor, Tensor]:
        """Which edges of the whole sheet ``index [2, E]`` stay (``keep [E]``) and which are
        added (``add [2, A]``), from their ``attention`` statistics, ``biases [S, E, H]``
        and ``length``; columns at ``pos``, input / output areas ``inputs`` / ``outputs``,
        new edges measured with ``length_fn``, ``tree`` a KD-tree over ``pos``."""
        c, edges = self.config, self.edges
        E, N = index.size(1), edges.num_columns
        n_drop = round(self.drop_fraction(step) * E)
        target = self.target_edges(step, E)
        n_drop = max(n_drop, E - target)  # shrinking budget: drop the excess too
        score = prune_scores(self.prune_rule, index, N, bias=biases,
                             attention=attention, length=length,
                             generator=self.generator, **self._settings(self.prune_rule))
        protect = None
        if c.keep_reachable:
            protect = reachability_edges(index, N, inputs, outputs, score)
        keep = select_prune(score, index, N, n_drop, c.min_in_degree, protect)
        dropped = int((~keep).sum())
        n_grow = max(0, target - (E - dropped))
        add = index.new_empty(2, 0)
        for _ in range(3):  # samplers may fall short on crowded columns: draw the rest again
            more = grow_edges(self.grow_rule, n_grow - add.size(1), torch.cat([index, add], 1),
                              pos, rng=self.rng, period=edges.period,
                              length_fn=length_fn, records=records,
                              tree=tree, **self._settings(self.grow_rule))
            add = torch.cat([add, more], 1)
            if add.size(1) >= n_grow or more.size(1) == 0:
                break
        return keep, add

    def _apply(self, step: int, keep: Tensor, add: Tensor) -> dict[str, float]:
        c, edges = self.config, self.edges
        new_rows = self._target_mean_bias(keep, add) if c.new_bias == "mean" else None
        edit = edges.edit(keep, add, optimizer=self.optimizer, min_in_degree=c.min_in_degree,
                          new_rows=new_rows)
        self.last_update = step
        shard = edges.shard  # the whole sheet's statistics (sums over a sharded sheet)
        wl = float(wiring_length([self.attention.unsqueeze(1)], edges.index, edges.length,
                                 shard=shard))
        added = shard.total(edit.num_added)
        grown = edges.length[edit.added_position]
        return {"step": step, "removed": shard.total(edit.num_removed), "added": added,
                "edges": shard.total(edges.num_edges), "drop_fraction": self.drop_fraction(step),
                "mean_edge_length": float(shard.mean(edges.length)),
                "added_mean_length": float(grown.mean() if not shard.enabled else
                                           shard.sum(grown.sum()) / added)
                if added else float("nan"),
                "attention_weighted_length": wl}

    def _settings(self, rule: Rule) -> dict[str, Any]:
        """``rule``'s settings from the config (``lam`` resolved: the config's, or twice the
        column spacing when the schedule started)."""
        values = {**asdict(self.config), "lam": self.lam}
        return {k: values[k] for k in rule.settings if k in values}

    def _position_tree(self, pos: Tensor | None = None):
        """A KD-tree over the current positions (cached until the sheet grows or its
        columns move), or over ``pos`` (the columns in their original order, see
        ``order``)."""
        if pos is not None:
            return position_tree(pos, self.edges.period)
        version = (self.edges.num_columns, self.edges.positions_version)
        if self._tree is None or self._tree_version != version:
            self._tree, self._tree_version = position_tree(self.edges.pos,
                                                           self.edges.period), version
        return self._tree

    def _column_spacing(self) -> float:
        """Mean distance from a column to its nearest other column (the sheet's local scale,
        whatever its wiring): the default exponential-distance-rule scale is twice this."""
        if self.edges.num_columns < 2:
            return 1.0
        tree, x = self._position_tree()
        dist, _ = tree.query(x, k=2)
        return float(np.mean(dist[:, 1])) or 1.0

    def _biases(self) -> Tensor:
        return torch.stack([s.attn.edge_bias.detach() for s in self.model.blocks])  # (S, E, H)

    def _target_mean_bias(self, keep: Tensor, add: Tensor) -> dict[Tensor, Tensor]:
        """``new_bias=mean``: each block's bias rows for the added edges, the mean of the
        kept biases into their target (for :meth:`SheetEdges.edit`'s ``new_rows``)."""
        from torch_geometric.utils import scatter

        dst = self.edges.index[1][keep]
        out = {}
        for s in self.model.blocks:
            b = s.attn.edge_bias.detach()[keep]  # (K, H)
            mean = scatter(b, dst, 0, dim_size=self.edges.num_columns, reduce="mean")
            out[s.attn.edge_bias] = mean[add[1]]  # (A, H)
        return out

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "attention": self.attention.detach().cpu(),
                "generator": self.generator.get_state(), "last_update": self.last_update,
                "rng": _rng_state(self.rng), "initial_edges": self.initial_edges,
                "lam": self.lam}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        att = state["attention"]
        if att.numel() != self.edges.num_edges:
            raise ValueError(f"The plasticity state holds {att.numel()} edges but the model "
                             f"has {self.edges.num_edges}: load the model's state first.")
        self.attention = att.to(self.attention)
        self.generator.set_state(state["generator"])
        self.last_update = int(state["last_update"])
        self.initial_edges = int(state["initial_edges"])
        self.lam = float(state["lam"])  # from the wiring when plasticity started, not now
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = _rng_from(state["rng"])


def _warn_if_lengths_are_not_metric(edges) -> None:
    """Grown edges between sites the geometry did not join are measured with the metric;
    say so when the sheet's own lengths came from elsewhere (a mesh's surface paths, a
    file's 'length' attribute)."""
    given = edges.given_lengths
    if edges.num_edges == 0 or given is None or len(given) <= 0.01 * edges.num_edges:
        return
    warnings.warn(f"{100 * min(1.0, len(given) / edges.num_edges):.0f}% of this sheet's edge "
                  f"lengths differ from its '{edges.metric}' metric (lengths from a mesh's "
                  f"surface or a file?). Edges grown by plasticity between columns the "
                  f"geometry did not join are measured with the metric, so their lengths and "
                  f"length priors are on a different scale: give the geometry matching "
                  f"lengths (e.g. from_mesh(..., geodesic=False)) or grow with "
                  f"new_bias=mean.", stacklevel=3)


def attention_mass(attention: list[Tensor], ranks: Any = None) -> Tensor:
    """One step's attention per edge ``[E]`` (float32): the mean over the ``T`` steps'
    ``[E, H]`` tensors and the heads, and over the global batch of a data-parallel run
    (``ranks``)."""
    current = torch.stack([a.detach() for a in attention]).mean((0, 2))  # (E,)
    if ranks is not None and ranks.enabled:
        current = ranks.data_mean(current)  # the whole global batch's attention
    return current.float()


def _uniform_share(edges, index: Tensor, length: Tensor) -> Tensor:
    """New edges start with their target's uniform attention share (neither strong nor weak)."""
    deg = edges.in_degree().clamp_min(1).float()
    return 1.0 / (deg[index[1]] + 1.0)



def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """numpy's PCG64 state as plain ints (loadable with ``weights_only=True``)."""
    st = rng.bit_generator.state
    return {"state": str(st["state"]["state"]), "inc": str(st["state"]["inc"]),
            "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"])}


def _rng_from(d: dict[str, Any]) -> dict[str, Any]:
    return {"bit_generator": "PCG64", "state": {"state": int(d["state"]), "inc": int(d["inc"])},
            "has_uint32": int(d["has_uint32"]), "uinteger": int(d["uinteger"])}

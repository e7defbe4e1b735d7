"""SheetEdges: the ONE owner of a sheet's current edges and of everything stored per edge.

Symbols: ``N`` columns, ``D`` spatial dimensions, ``E`` current edges, ``A`` added edges.

A sheet's wiring changes during training (plasticity prunes and grows edges), so the edges
cannot live in the construction-time :class:`~colgraph.geometry.Geometry`. This module owns:

* ``index [2, E]``: the current edges in canonical order (sorted by target, then source;
  no duplicates), so the edge list doubles as a CSR matrix over targets;
* ``length [E]``: their lengths, DERIVED from the columns' positions ``pos [N, D]`` (never
  stored, so never out of step with them): the geometry's metric (Euclidean, wrapped on a
  torus, or great-circle on a sphere), or the distance the geometry gave the two columns'
  sites where it gave one (a mesh's surface path, a file's length:
  :class:`~colgraph.geometry.SiteLengths`);
* the CSR cache the sparse attention kernels use;
* a registry of every other per-edge tensor (each sheet's ``edge_bias``, plasticity
  statistics, ...) with the rule that initialises it for new edges. The registry holds its
  owners weakly: an owner that is dropped (e.g. a discarded plasticity schedule) drops out;
* the columns' positions, the current areas, and a registry of per-column tensors (every
  untied layer's ``[N, ...]`` parameters), so the sheet itself can grow
  (:meth:`SheetEdges.add_columns`).

:meth:`SheetEdges.edit` is the one function that changes edges: it applies a keep mask and
a list of new edges to the index, every registered tensor, their gradients and
the optimizer state (Adam moments), atomically, and returns what it did;
:meth:`SheetEdges.add_columns` does the same for new columns (rows cloned from a parent).
"""
from __future__ import annotations

import inspect
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..geometry import Geometry, SiteLengths, canonical_order, measure
from ..parallel.shard import ColumnShard, HaloPlan
from .sparse import EdgeCSR

__all__ = ["SheetEdges", "EdgeEdit", "ColumnMove", "EdgeInit"]

# init(edges, new_index [2, A], new_length [A]) -> the registered tensor's rows for new edges
EdgeInit = Callable[["SheetEdges", Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class EdgeEdit:
    """What :meth:`SheetEdges.edit` did.

    Attributes:
        removed: ``[2, R]`` edges that were removed.
        added: ``[2, A]`` edges that were added (in the order given).
        kept_position: ``[E_old]`` new position of each old edge, ``-1`` if removed.
        added_position: ``[A]`` position of each added edge in the new order.
    """

    removed: Tensor
    added: Tensor
    kept_position: Tensor
    added_position: Tensor

    @property
    def num_removed(self) -> int:
        return self.removed.size(1)

    @property
    def num_added(self) -> int:
        return self.added.size(1)


@dataclass(frozen=True)
class ColumnMove:
    """What :meth:`SheetEdges.move` did.

    Attributes:
        moved: ``[M]`` ids of the columns whose position changed.
        displacement: ``[M]`` how far each of them moved, in the geometry's metric.
    """

    moved: Tensor
    displacement: Tensor

    @property
    def num_moved(self) -> int:
        return self.moved.numel()


class _Entry:
    """A registered tensor: ``getattr(owner, name)`` with one row per edge (or column).

    The owner (and an ``init`` that is the owner's own method) is held weakly, so
    registering never keeps it alive: once the owner is gone, the entry is dead and the
    registry forgets it. Deep copies and pickles carry the owner along.
    """

    def __init__(self, owner: Any, name: str, init: EdgeInit | None) -> None:
        self._owner = weakref.ref(owner) if owner is not None else lambda: None
        self.name = name
        # the owner's own method (e.g. layer.bias_prior) weakly: it would keep the owner alive
        own = inspect.ismethod(init) and init.__self__ is owner
        self._init = weakref.WeakMethod(init) if own else lambda: init

    @property
    def owner(self) -> Any:
        return self._owner()

    @property
    def init(self) -> EdgeInit | None:
        return self._init()

    def __getstate__(self) -> dict[str, Any]:
        return {"owner": self.owner, "name": self.name, "init": self.init}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["owner"], state["name"], state["init"])

    def get(self) -> Tensor:
        return getattr(self.owner, self.name)

    def new_rows(self, edges: "SheetEdges", index: Tensor, length: Tensor) -> Tensor:
        """Rows for new edges: ``init``'s, broadcast over trailing dims (default zeros)."""
        t = self.get()
        shape = (index.size(1),) + tuple(t.shape[1:])
        init = self.init
        if init is None:
            return t.new_zeros(shape)
        rows = init(edges, index, length).to(t)
        if rows.dim() == 1 and t.dim() > 1:
            rows = rows.view(-1, *([1] * (t.dim() - 1)))
        return rows.expand(shape).clone()

    def set(self, value: Tensor) -> tuple[nn.Parameter, nn.Parameter] | None:
        """Store ``value``; a Parameter is REPLACED by a new one, returned as ``(old, new)``.

        Why not ``param.data = value``: autograd caches a parameter's gradient accumulator
        with its shape while any graph that used it is alive (e.g. the last step's outputs
        still referenced), and a backward through a new shape then fails. A fresh Parameter
        has a fresh accumulator; :meth:`SheetEdges.edit` moves optimizer references to it.
        """
        if self.owner is None:  # dropped while the edit was computed: nothing to update
            return None
        current = self.get()
        if isinstance(current, nn.Parameter):
            new = nn.Parameter(value, requires_grad=current.requires_grad)
            setattr(self.owner, self.name, new)
            return current, new
        setattr(self.owner, self.name, value)  # a module buffer or a plain attribute
        return None

    def label(self) -> str:
        return f"{type(self.owner).__name__}.{self.name}"


def _entry(owner: Any, name: str, rows: int, what: str, init: EdgeInit | None) -> _Entry:
    tensor = getattr(owner, name)
    if not isinstance(tensor, Tensor) or tensor.dim() == 0 or tensor.size(0) != rows:
        shape = list(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
        raise ValueError(f"Per-{what} tensor {type(owner).__name__}.{name} must have one row "
                         f"per {what} ({rows}), got {shape}.")
    return _Entry(owner, name, init)


class _Rewrite:
    """A planned change of every registered tensor, its gradient and optimizer state, computed
    in full before :meth:`commit` touches anything (so a failure leaves the sheet as it was).

    ``extend(old, new_rows)`` builds the new tensor from the old one; new rows come from
    ``value_rows`` (values), zeros (gradients) and ``state_rows`` (optimizer state).
    """

    def __init__(self, entries: list[_Entry], rows: int, extend, value_rows, state_rows,
                 optimizer: torch.optim.Optimizer | None) -> None:
        self.optimizer = optimizer
        self.values = [(e, extend(e.get().detach(), value_rows(e))) for e in entries]
        self.grads, self.states = [], []
        for e in entries:
            t = e.get()
            if not isinstance(t, nn.Parameter):
                continue
            if t.grad is not None:
                self.grads.append((t, extend(t.grad, torch.zeros_like(state_rows(t.grad)))))
            if optimizer is not None and t in optimizer.state:
                st = optimizer.state[t]
                for k, v in st.items():
                    if isinstance(v, Tensor) and v.dim() > 0 and v.size(0) == rows:
                        self.states.append((st, k, extend(v, state_rows(v))))

    def commit(self) -> None:
        replaced = dict(r for e, value in self.values if (r := e.set(value)) is not None)
        for p, g in self.grads:
            replaced.get(p, p).grad = g
        for st, k, v in self.states:
            st[k] = v
        if self.optimizer is not None:
            _swap_in_optimizer(self.optimizer, replaced)


class SheetEdges(nn.Module):
    """The current edges of a sheet: index, lengths, CSR cache and per-edge registry.

    Args:
        geometry: the construction-time geometry (positions, edges, lengths, metric, areas).

    Example:
        >>> from colgraph.geometry import grid, knn
        >>> edges = SheetEdges(grid(4, wiring=knn(k=4)))
        >>> edges.num_edges
        64
        >>> keep = torch.ones(64, dtype=torch.bool); keep[0] = False
        >>> edit = edges.edit(keep, add=torch.tensor([[15], [0]]))
        >>> edit.num_removed, edit.num_added, edges.num_edges
        (1, 1, 64)
    """

    def __init__(self, geometry: Geometry, shard: "ColumnShard | None" = None) -> None:
        super().__init__()
        N = geometry.num_columns
        self.shard = shard if shard is not None else ColumnShard.whole(N)
        if self.shard.num_columns != N:
            raise ValueError(f"The column shard covers {self.shard.num_columns} columns but the "
                             f"geometry has {N}: partition this geometry.")
        # the edges into this process's columns: a contiguous slice of the canonical order
        first, last = torch.searchsorted(geometry.edge_index[1],
                                         torch.tensor([self.shard.lo, self.shard.hi])).tolist()
        self.register_buffer("index", geometry.edge_index[:, first:last].clone())  # (2, E)
        # distances the geometry gave pairs of sites that its metric does not (or None)
        self._given = SiteLengths.of(geometry)
        self._length: Tensor | None = None  # derived from pos when asked for (see length)
        self._site: Tensor | None = None  # each column's site, when self._given needs it
        # of the whole sheet at construction (length scale of the edge-bias prior)
        length = geometry.edge_length.float()
        self.initial_mean_length = float(length.mean()) if length.numel() else None
        self.register_buffer("pos", geometry.pos.clone().float())  # (N, D)
        period = None if geometry.period is None else geometry.period.clone().float()
        self.register_buffer("period", period, persistent=False)
        self.metric = geometry.metric
        # the construction geometry's name and labels (not the geometry: its edge list would
        # be a second copy of index / length, 320 MB at 10^6 columns x 16 inputs)
        self._name, self._labels = geometry.name, geometry.labels
        self._input_map = None if geometry.input_map is None else geometry.input_map.clone()
        self._faces = geometry.faces  # a mesh's triangles (never edited: columns keep ids)
        self._edge_entries: list[_Entry] = []  # per-edge tensors (see _registry)
        self._column_entries: list[_Entry] = []  # per-column tensors (rows = columns)
        self._areas = {k: v.clone() for k, v in geometry.areas.items()}  # current areas
        self._csr: EdgeCSR | None = None
        self._halo: HaloPlan | None = None
        self._geometry: Geometry | None = None  # built from the buffers when asked for
        self.positions_version = 0  # +1 per move: caches keyed on positions compare it

    # ------------------------------------------------------------------ views
    @property
    def num_edges(self) -> int:
        return self.index.size(1)

    @property
    def num_columns(self) -> int:
        return self.pos.size(0)

    @property
    def num_owned(self) -> int:
        """Columns this process owns (all of them unless the sheet is column-sharded):
        the rows of every per-column tensor."""
        return self.shard.num_owned

    def in_degree(self) -> Tensor:
        return torch.bincount(self.index[1], minlength=self.num_columns)

    def halo(self) -> HaloPlan:
        """The halo plan of the current edges (cached until the edges or the device change):
        collective on a column-sharded sheet, see :mod:`colgraph.parallel.shard`."""
        if self._halo is None:
            self._halo = HaloPlan.build(self.index, self.shard)
        return self._halo

    @property
    def local_index(self) -> Tensor:
        """The edges in this process's coordinates (``index`` itself on one process):
        targets are rows of its own columns, sources rows of ``[own | halo]`` columns."""
        return self.halo().local_index

    @property
    def num_sources(self) -> int:
        """Rows of the attention's source side: own columns plus the halo."""
        return self.num_owned + self.halo().num_halo

    def csr(self) -> EdgeCSR:
        """The CSR view of the current edges in local coordinates (cached until the edges
        or the device change)."""
        if self._csr is None:
            self._csr = EdgeCSR(self.local_index, self.num_owned, self.num_sources)
        return self._csr

    @property
    def length(self) -> Tensor:
        """Length ``[E]`` of each current edge between its columns where they are now
        (derived from ``pos`` by :meth:`measure`; cached until the edges or positions
        change)."""
        if self._length is None:
            self._length = self.measure(self.index[0], self.index[1])
        return self._length

    @property
    def given_lengths(self) -> SiteLengths | None:
        """The distances the geometry gave pairs of sites that its metric does not (a mesh's
        surface paths, a file's lengths), or ``None``."""
        return self._given

    def measure(self, source: Tensor, target: Tensor) -> Tensor:
        """Length of edges ``source -> target`` between the columns where they are now: the
        distance the geometry gave their two sites if it gave one, else the metric's."""
        out = measure(self.pos, source, target, self.metric, self.period)
        if self._given is None:
            return out
        if self._site is None:
            self._site = self._given.site_of(self.pos)
        return self._given.lengths(self._site, source, target, out)

    @property
    def areas(self) -> dict[str, Tensor]:
        """Current areas: name -> column indices."""
        return dict(self._areas)

    def area(self, name: str) -> Tensor:
        """Current column indices of area ``name`` (new columns may have joined it)."""
        if name not in self._areas:
            raise KeyError(f"Unknown area '{name}'. This sheet has areas: "
                           f"{', '.join(sorted(self._areas)) or '(none)'}.")
        return self._areas[name]

    def geometry(self) -> Geometry:
        """The CURRENT sheet as a :class:`Geometry`: positions, edges, lengths and areas now
        (the construction geometry's name, period, labels and input map; added columns are
        labelled ``added0``, ``added1``, ... and receive no patch, ``-1``)."""
        if self._geometry is None:
            self._geometry = self.as_geometry(self.index, self.length)
        return self._geometry

    def as_geometry(self, index: Tensor, length: Tensor) -> Geometry:
        """The sheet as a :class:`Geometry` with the edges ``index`` / ``length`` (e.g. the
        whole sheet's, gathered from the processes of a column-sharded one)."""
        labels, input_map = self._labels, self._input_map
        if labels is not None and len(labels) < self.num_columns:
            labels = list(labels) + [f"added{i}" for i in range(self.num_columns - len(labels))]
        if input_map is not None and input_map.numel() < self.num_columns:
            input_map = torch.cat([input_map, input_map.new_full(
                (self.num_columns - input_map.numel(),), -1)])
        return Geometry(self.pos.detach().cpu(), index.cpu(), length.detach().cpu(),
                        areas={k: v.cpu() for k, v in self._areas.items()},
                        period=None if self.period is None else self.period.cpu(),
                        name=self._name, labels=labels, metric=self.metric,
                        input_map=input_map, faces=self._faces)

    def _invalidate(self) -> None:
        self._csr, self._halo, self._geometry = None, None, None
        self._length, self._site = None, None

    def _apply(self, fn, recurse=True):  # device / dtype moves invalidate the CSR cache
        self._csr, self._halo, self._length = None, None, None
        out = super()._apply(fn, recurse)
        self._areas = {k: fn(v) for k, v in self._areas.items()}  # index tensors: device only
        return out

    def get_extra_state(self) -> dict[str, Any]:
        return {"areas": {k: v.detach().cpu() for k, v in self._areas.items()}}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        device = self.index.device
        self._areas = {k: v.to(device) for k, v in state["areas"].items()}
        self._invalidate()

    # ------------------------------------------------------------------ registry
    @property
    def _registry(self) -> list[_Entry]:
        """The registered per-edge tensors whose owners are alive (dead entries dropped)."""
        self._edge_entries = [e for e in self._edge_entries if e.owner is not None]
        return self._edge_entries

    @property
    def _columns(self) -> list[_Entry]:
        """The registered per-column tensors whose owners are alive (dead entries dropped)."""
        self._column_entries = [e for e in self._column_entries if e.owner is not None]
        return self._column_entries

    def register(self, owner: Any, name: str, init: EdgeInit | None = None) -> None:
        """Register ``getattr(owner, name)`` (rows in edge order) to be edited in lockstep.

        ``init(edges, new_index, new_length)`` gives the rows of new edges (default: zeros).
        The owner is held weakly: once nothing else holds it, its tensors leave the registry
        (:meth:`unregister` forgets them at once).
        """
        self._edge_entries.append(_entry(owner, name, self.num_edges, "edge", init))

    def register_columns(self, owner: Any, name: str) -> None:
        """Register ``getattr(owner, name)`` (one row per owned column) to grow with the
        sheet."""
        self._column_entries.append(_entry(owner, name, self.num_owned, "column", None))

    def sharded_tensors(self) -> list[Tensor]:
        """Every registered per-column and per-edge tensor: what a column-sharded process
        holds only its own rows of."""
        return [e.get() for e in self._columns + self._registry]

    def unregister(self, owner: Any) -> None:
        """Forget every per-edge tensor of ``owner`` (e.g. a plasticity schedule that ended)."""
        self._edge_entries = [e for e in self._registry if e.owner is not owner]

    def per_edge(self) -> dict[str, Tensor]:
        """Every registered per-edge tensor by a readable name (``ColumnAttention.edge_bias``...)."""
        out: dict[str, Tensor] = {}
        for entry in self._registry:
            key, i = entry.label(), 1
            while key in out:
                i += 1
                key = f"{entry.label()}#{i}"
            out[key] = entry.get()
        return out

    def check(self) -> None:
        """Raise if any per-edge tensor is out of step with the edges (e.g. edited by hand)."""
        E = self.num_edges
        for entry in self._registry:
            t = entry.get()
            if t.size(0) != E:
                raise RuntimeError(
                    f"{entry.label()} has {t.size(0)} rows but the sheet has {E} edges: it was "
                    f"changed outside SheetEdges.edit, so per-edge tensors are out of step. "
                    f"Rebuild the model, or edit edges only with model.edges.edit(...).")
        for entry in self._columns:
            if entry.get().size(0) != self.num_owned:
                raise RuntimeError(f"{entry.label()} has {entry.get().size(0)} rows but the "
                                   f"sheet has {self.num_owned} columns: it was changed "
                                   f"outside SheetEdges.add_columns.")
        ei = self.index
        if E and (ei.min() < 0 or ei.max() >= self.num_columns):
            raise RuntimeError("edges.index holds column ids outside the sheet.")
        key = ei[1] * self.num_columns + ei[0]
        if E > 1 and (key[1:] <= key[:-1]).any():
            raise RuntimeError("edges.index is not in canonical order (sorted by target, then "
                               "source, no duplicates): it was changed outside "
                               "SheetEdges.edit. Edit edges only with model.edges.edit(...).")

    # ------------------------------------------------------------------ the edit
    def edit(self, keep: Tensor | None = None, add: Tensor | None = None,
             optimizer: torch.optim.Optimizer | None = None, min_in_degree: int = 1,
             new_rows: Mapping[Tensor, Tensor] | None = None) -> EdgeEdit:
        """Keep the edges where ``keep`` is True and add the edges ``add``, everywhere at once.

        Args:
            keep: ``[E]`` bool mask of edges to keep (default: all).
            add: ``[2, A]`` new edges ``source -> target`` (not already kept, no repeats).
            optimizer: its per-parameter state (e.g. Adam's ``exp_avg`` / ``exp_avg_sq``) of
                registered parameters is edited too: kept rows unchanged, new rows zero.
            min_in_degree: refuse an edit that leaves a column with fewer inputs (than this,
                or than it had if it had fewer).
            new_rows: registered tensor -> its rows ``[A, ...]`` for the added edges (in the
                order of ``add``), instead of the rows its ``init`` would give, for this
                edit only (e.g. ``{layer.edge_bias: rows}``).

        Kept edges keep their parameters, gradients and optimizer moments bit for bit (and
        their lengths, derived from positions: :attr:`length`); new edges get rows from
        ``new_rows`` or each
        tensor's ``init``; canonical order is restored. Everything is checked before
        anything changes.
        Per-edge parameters are replaced by new ``Parameter`` objects (see ``_Entry.set``);
        ``optimizer``'s param groups and state move to them, so pass every optimizer that
        holds them.
        """
        E, N = self.num_edges, self.num_columns
        device = self.index.device
        keep = self._check_keep(keep, E, device)
        add = self._check_add(add, keep, N, device)
        kept_index = self.index[:, keep]
        merged = torch.cat([kept_index, add], dim=1)  # (2, K + A)
        deg = torch.bincount(merged[1], minlength=N)
        floor = self.in_degree().clamp(max=min_in_degree)  # columns never had more: fine
        if (deg < floor).any():
            cols = (deg < floor).nonzero().flatten()
            raise ValueError(f"This edit leaves {cols.numel()} column(s) (e.g. "
                             f"{cols[:5].tolist()}) with fewer than {min_in_degree} incoming "
                             f"edge(s). Prune fewer edges (plasticity.drop_fraction) or keep "
                             f"plasticity.min_in_degree >= 1.")
        perm = canonical_order(merged, N)
        new_length = self.measure(add[0], add[1])  # what each tensor's init sees

        def apply(old: Tensor, new_rows: Tensor) -> Tensor:
            return torch.cat([old[keep], new_rows.to(old)], dim=0)[perm]

        # compute everything first: an error below leaves the sheet as it was
        A = add.size(1)
        given = self._check_new_rows(new_rows, A)

        def rows(e: _Entry) -> Tensor:
            t = e.get()
            return given[id(t)] if id(t) in given else e.new_rows(self, add, new_length)

        rewrite = _Rewrite(self._registry, E, apply, rows,
                           lambda v: v.new_zeros((A,) + v.shape[1:]), optimizer)
        new_index = merged[:, perm].contiguous()
        position = torch.empty_like(perm)
        position[perm] = torch.arange(perm.numel(), device=device)
        kept_position = torch.full((E,), -1, dtype=torch.long, device=device)
        kept_position[keep] = position[:kept_index.size(1)]
        record = EdgeEdit(removed=self.index[:, ~keep], added=add, kept_position=kept_position,
                          added_position=position[kept_index.size(1):])
        # commit
        self.index = new_index
        rewrite.commit()
        self._invalidate()
        return record

    def _check_keep(self, keep: Tensor | None, E: int, device) -> Tensor:
        if keep is None:
            return torch.ones(E, dtype=torch.bool, device=device)
        keep = torch.as_tensor(keep, device=device)
        if keep.dtype != torch.bool or keep.shape != (E,):
            raise ValueError(f"Expected 'keep' to be a bool mask of shape [{E}] (one entry per "
                             f"current edge), got {keep.dtype} {list(keep.shape)}.")
        return keep

    def _check_new_rows(self, new_rows: Mapping[Tensor, Tensor] | None, A: int
                        ) -> dict[int, Tensor]:
        """``new_rows`` keyed by ``id`` of the registered tensor, every shape checked."""
        if not new_rows:
            return {}
        registered = {id(e.get()): e for e in self._registry}
        out = {}
        for tensor, rows in new_rows.items():
            entry = registered.get(id(tensor))
            if entry is None:
                raise ValueError(f"'new_rows' names a tensor of shape {list(tensor.shape)} that "
                                 f"is not registered with these edges (registered: "
                                 f"{', '.join(self.per_edge()) or 'none'}). Key it by the "
                                 f"registered tensor itself, e.g. layer.edge_bias.")
            shape = (A,) + tuple(tensor.shape[1:])
            if tuple(rows.shape) != shape:
                raise ValueError(f"Expected new_rows for {entry.label()} of shape {list(shape)} "
                                 f"(one row per added edge), got {list(rows.shape)}.")
            out[id(tensor)] = rows
        return out

    def _check_add(self, add: Tensor | None, keep: Tensor, N: int, device) -> Tensor:
        if add is None:
            return self.index.new_empty(2, 0)
        add = torch.as_tensor(add, device=device)
        if add.dim() != 2 or add.size(0) != 2 or add.dtype.is_floating_point or add.dtype == torch.bool:
            raise ValueError(f"Expected 'add' to be an integer tensor of shape [2, A] (row 0 = "
                             f"source, row 1 = target), got {add.dtype} {list(add.shape)}.")
        add = add.long()
        if add.numel() and (add.min() < 0 or add.max() >= N):
            raise ValueError(f"Expected new edges between columns in [0, {N - 1}], got ids from "
                             f"{int(add.min())} to {int(add.max())}.")
        key = add[1] * N + add[0]
        if key.unique().numel() != key.numel():
            raise ValueError("'add' lists the same edge more than once. Pass unique edges.")
        kept = self.index[:, keep]
        kept_key = torch.sort(kept[1] * N + kept[0]).values
        if kept_key.numel() and key.numel():
            pos = torch.searchsorted(kept_key, key).clamp(max=kept_key.numel() - 1)
            dup = kept_key[pos] == key
            if dup.any():
                s, t = add[:, dup.nonzero()[0, 0]].tolist()
                raise ValueError(f"New edge {s} -> {t} already exists ({int(dup.sum())} such). "
                                 f"Grow only edges that are absent (or removed in the same "
                                 f"edit).")
        return add

    # ------------------------------------------------------------------ moves
    def move(self, to: Tensor | None = None, pos: Tensor | None = None) -> ColumnMove:
        """Move columns on the sheet: a permutation of the columns over their places
        (``to``) or new positions (``pos``).

        A move changes WHERE columns are, never what they compute: parameters, edges,
        areas and input patches stay with their columns (ids are unchanged, so the edge
        list, its canonical order, the CSR cache and a sharded sheet's halo are too).
        Positions change and, derived from them, every edge's length (:attr:`length`: the
        metric's, or the distance the geometry gave the two new sites); caches keyed on
        positions see :attr:`positions_version` change. Every process of a column-sharded
        or data-parallel run must apply the same move (the whole sheet's positions live on
        each).

        Args:
            to: ``[N]`` a permutation: column ``i`` moves to where column ``to[i]`` is now
                (swapping ``a`` and ``b``: ``to[a] = b``, ``to[b] = a``).
            pos: ``[N, D]`` every column's new position, finite and distinct; on a sheet
                whose geometry gave distances to pairs of its sites (a mesh's surface
                paths) each must be one of the sites.

        Example:
            >>> from colgraph.geometry import grid, knn
            >>> edges = SheetEdges(grid(3, wiring=knn(k=4)))
            >>> to = torch.arange(9); to[[0, 8]] = torch.tensor([8, 0])  # swap two corners
            >>> m = edges.move(to)
            >>> m.moved.tolist(), [round(float(d), 3) for d in m.displacement]
            ([0, 8], [2.828, 2.828])
        """
        new = self._check_move(to, pos)
        old = self.pos
        moved = (new != old).any(1).nonzero().flatten()
        both = torch.cat([old[moved], new[moved]])
        ids = torch.arange(moved.numel(), device=moved.device)
        displacement = measure(both, ids, ids + moved.numel(), self.metric, self.period)
        self.pos = new  # commit: a new tensor, so no one's old reference changes under it
        self._length, self._site, self._geometry = None, None, None  # the CSR, halo: by id
        self.positions_version += 1
        return ColumnMove(moved=moved, displacement=displacement)

    def _check_move(self, to: Tensor | None, pos: Tensor | None) -> Tensor:
        """The columns' positions after the move ``to`` / ``pos``, or a clear error (before
        anything changes)."""
        N, D = self.pos.shape
        if (to is None) == (pos is None):
            raise ValueError("Pass exactly one of 'to' (a permutation [N] of the columns over "
                             "their places) or 'pos' (new positions [N, D]).")
        if to is not None:
            to = torch.as_tensor(to, device=self.pos.device)
            if to.dtype.is_floating_point or to.dtype == torch.bool or to.shape != (N,):
                raise ValueError(f"Expected 'to' to be an integer tensor of shape [{N}] (one "
                                 f"place per column), got {to.dtype} {list(to.shape)}.")
            to = to.long()
            if N and (to.min() < 0 or to.max() >= N or
                      (torch.bincount(to, minlength=N) != 1).any()):
                raise ValueError(f"Expected 'to' to be a permutation of 0..{N - 1} (each "
                                 f"column moves to a different column's place), got ids from "
                                 f"{int(to.min())} to {int(to.max())} with repeats.")
            return self.pos[to].clone()
        new = torch.as_tensor(pos, dtype=self.pos.dtype, device=self.pos.device)
        if new.shape != (N, D):
            raise ValueError(f"Expected new positions of shape [{N}, {D}] (every column), "
                             f"got {list(new.shape)}.")
        if not torch.isfinite(new).all():
            bad = (~torch.isfinite(new)).any(1).nonzero().flatten()[:5].tolist()
            raise ValueError(f"New positions contain NaN/inf (columns {bad}...).")
        if torch.unique(new, dim=0).size(0) != N:
            raise ValueError("New positions must be distinct (two columns at one place).")
        if self._given is not None and (self._given.site_of(new) < 0).any():
            raise ValueError(f"This sheet's geometry gave {len(self._given)} pairs of its "
                             f"sites their own distances (a mesh's surface paths, a file's "
                             f"lengths), so its columns can only move between sites: pass a "
                             f"permutation 'to', or positions that are all sites.")
        return new.clone()

    # ------------------------------------------------------------------ new columns
    def check_new_positions(self, pos) -> Tensor:
        """``pos`` as a float ``[M, D]`` tensor on this sheet's device, or a clear error."""
        D = self.pos.size(1)
        pos = torch.as_tensor(pos, dtype=self.pos.dtype, device=self.pos.device)
        if pos.dim() != 2 or pos.size(1) != D or pos.size(0) == 0:
            raise ValueError(f"Expected new column positions of shape [M, {D}] with M > 0 "
                             f"(got {list(pos.shape)}).")
        if not torch.isfinite(pos).all():
            raise ValueError("New column positions contain NaN/inf.")
        return pos

    def add_columns(self, pos: Tensor, parent: Tensor, areas: dict[str, Tensor] | None = None,
                    optimizer: torch.optim.Optimizer | None = None) -> Tensor:
        """Append columns at ``pos [M, D]``, each a copy of its ``parent`` column.

        Every registered per-column tensor gets the parent's rows (an untied column's
        weights start as its parent's), and so does ``optimizer``'s state for them (Adam
        moments); gradients of new rows are zero. ``areas`` maps an area name to the NEW
        columns (indices into ``pos``) that join it. Existing columns keep their ids; the
        new ones are ``N .. N + M - 1`` (returned). New columns have no edges yet: add them
        with :meth:`edit` (e.g. :func:`colgraph.plasticity.add_columns` does both).
        """
        N = self.num_columns
        if self.shard.enabled:
            raise NotImplementedError(
                "Columns cannot be added to a column-sharded sheet (parallel.columns > 1): "
                "the partition would have to move. Add them on one process, or turn "
                "scale.* off.")
        pos = self.check_new_positions(pos)
        parent = torch.as_tensor(parent, dtype=torch.long, device=self.pos.device).flatten()
        if parent.numel() != pos.size(0) or (parent.numel() and (parent.min() < 0 or
                                                                 parent.max() >= N)):
            raise ValueError(f"Expected one parent column in [0, {N - 1}] per new column "
                             f"({pos.size(0)}), got {parent.tolist()[:5]}...")
        all_pos = torch.cat([self.pos, pos])
        if torch.unique(all_pos, dim=0).size(0) != all_pos.size(0):
            raise ValueError("New columns must have positions of their own (a new position "
                             "repeats an existing or another new one).")
        new_ids = torch.arange(N, N + pos.size(0), device=self.pos.device)
        joined = {}
        for name, idx in (areas or {}).items():
            idx = torch.as_tensor(idx, dtype=torch.long, device=self.pos.device).flatten()
            if idx.numel() and (idx.min() < 0 or idx.max() >= pos.size(0)):
                raise ValueError(f"Area '{name}': new-column indices must be in "
                                 f"[0, {pos.size(0) - 1}].")
            old = self._areas.get(name, idx.new_empty(0))
            joined[name] = torch.cat([old, new_ids[idx]]).unique()
        # compute, then commit
        rewrite = _Rewrite(self._columns, N, lambda old, rows: torch.cat([old, rows.to(old)]),
                           lambda e: e.get().detach()[parent], lambda v: v[parent], optimizer)
        self.pos = all_pos
        order = self.shard.order  # new columns keep their ids as their original ones
        self.shard = ColumnShard.whole(self.num_columns, None if order is None else torch.cat(
            [order, torch.arange(N, self.num_columns)]))
        rewrite.commit()
        for e in self._columns:
            if isinstance(getattr(e.owner, "columns", None), int):
                e.owner.columns = self.num_columns
        self._areas.update(joined)
        self._invalidate()
        return new_ids

    # ------------------------------------------------------------------ checkpoints
    def resize_for(self, state_dict: dict[str, Tensor], prefix: str) -> None:
        """Before loading ``state_dict``, resize every per-edge (and, if the sheet grew,
        per-column) tensor to its size there.

        Called by the model's load hook, so a checkpoint whose wiring was edited during
        training loads into a freshly built model (whose edges are the geometry's). Per-edge
        parameters are replaced by new ones: build the optimizer AFTER loading the model.
        """
        pos = state_dict.get(prefix + "pos")
        if pos is not None and pos.shape != self.pos.shape:
            n = pos.size(0)
            self.pos = self.pos.new_empty(pos.shape)
            order = self.shard.order  # a grown sheet is never sharded
            self.shard = ColumnShard.whole(n, None if order is None else torch.cat(
                [order, torch.arange(order.numel(), n)]))
            for entry in self._columns:
                t = entry.get()
                entry.set(t.detach().new_empty((n,) + t.shape[1:]))
                if isinstance(getattr(entry.owner, "columns", None), int):
                    entry.owner.columns = n
            self._invalidate()
        key = prefix + "index"
        if key not in state_dict:
            return
        E = state_dict[key].size(1)
        if E == self.num_edges:
            return
        self.index = self.index.new_empty(2, E)
        for entry in self._registry:
            t = entry.get()
            entry.set(t.detach().new_empty((E,) + t.shape[1:]))
        self._invalidate()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints before lengths were derived from positions stored them: derived now
        state_dict.pop(prefix + "length", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._invalidate()
        self.positions_version += 1  # loaded positions may be a moved sheet's

    def extra_repr(self) -> str:
        return (f"columns={self.num_columns}, edges={self.num_edges}, metric={self.metric!r}, "
                f"per_edge={len(self._registry)}")


def _swap_in_optimizer(optimizer: torch.optim.Optimizer,
                       replaced: dict[nn.Parameter, nn.Parameter]) -> None:
    """Point ``optimizer``'s param groups and per-parameter state at the new Parameters."""
    for group in optimizer.param_groups:
        group["params"] = [replaced.get(p, p) for p in group["params"]]
    for old, new in replaced.items():
        if old in optimizer.state:
            optimizer.state[new] = optimizer.state.pop(old)

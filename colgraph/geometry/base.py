"""The :class:`Geometry` of a sheet: where columns are and which edges may carry attention.

Symbols: ``N`` columns, ``D`` spatial dimensions, ``E`` directed edges.

Edges are directed ``source -> target`` (row 0 = source, row 1 = target: the target attends
to the source) and kept in ONE canonical order: sorted by target, then by source, without
duplicates. Every per-edge tensor (length, learned bias, ...) follows that order, so the
edge list doubles as a CSR matrix over targets.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = ["Geometry", "canonical_order", "pairwise_length", "great_circle_length", "measure",
           "SiteLengths", "hops_from", "rank_within_target", "plane_axes", "METRICS"]


def canonical_order(edge_index: Tensor, num_columns: int) -> Tensor:
    """Return the permutation that sorts ``edge_index`` by target, then source."""
    key = edge_index[1] * num_columns + edge_index[0]
    return torch.argsort(key, stable=True)


def pairwise_length(pos: Tensor, source: Tensor, target: Tensor,
                    period: Tensor | None = None) -> Tensor:
    """Euclidean length of the edges ``source -> target``.

    With ``period`` (one box size per dimension, ``inf`` for open dimensions) distances wrap
    around, as on a torus.
    """
    delta = (pos[target] - pos[source]).abs()  # (E, D)
    if period is not None:
        period = period.to(pos)
        delta = torch.minimum(delta, period - delta)
    return delta.pow(2).sum(-1).sqrt()


def great_circle_length(pos: Tensor, source: Tensor, target: Tensor) -> Tensor:
    """Great-circle length of ``source -> target`` on the sphere through ``pos`` (centred at
    the origin; radius = the mean distance of the columns from it)."""
    r = pos.norm(dim=1).mean()
    u = pos / pos.norm(dim=1, keepdim=True)
    cos = (u[source] * u[target]).sum(1).clamp(-1.0, 1.0)
    return r * torch.arccos(cos)


METRICS = ("euclidean", "sphere")


def hops_from(edge_index: Tensor, num_columns: int, sources: Tensor) -> Tensor:
    """Fewest edges from any column in ``sources`` to every column (``-1``: unreachable).

    Breadth-first search over the directed edges (``O(E)``, scipy's csgraph).
    """
    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.csgraph import shortest_path

    n = num_columns
    src, dst = edge_index.cpu().numpy()
    # a virtual node n feeds every source column; hops from it minus one
    rows = np.concatenate([src, np.full(sources.numel(), n)])
    cols = np.concatenate([dst, sources.cpu().numpy()])
    adj = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n + 1, n + 1))
    dist = shortest_path(adj, unweighted=True, indices=n)[:n] - 1
    dist[~np.isfinite(dist)] = -1
    return torch.from_numpy(dist.astype(np.int64))


def rank_within_target(target: Tensor, score: Tensor, num_columns: int) -> Tensor:
    """Rank ``[E]`` of each edge among its target's inputs, 0 = highest score (ties: the
    earlier edge first). ``rank < k`` selects each column's ``k`` strongest inputs."""
    order = torch.argsort(-score, stable=True)  # strongest first ...
    order = order[torch.argsort(target[order], stable=True)]  # ... within each target
    start = torch.cat([target.new_zeros(1),
                       torch.bincount(target, minlength=num_columns).cumsum(0)[:-1]])
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=target.device) - start[target[order]]
    return rank


def plane_axes(pos) -> list[int]:
    """The (at most) two coordinate axes along which points ``[n, D]`` spread most, in
    axis order: the plane a flat area (a stack's layer) lies in, axis-aligned so that
    drawing or mapping it involves no rotation."""
    spread = torch.as_tensor(pos, dtype=torch.float64)
    spread = spread.amax(0) - spread.amin(0)
    return sorted(torch.argsort(spread, descending=True, stable=True)[:2].tolist())


def measure(pos: Tensor, source: Tensor, target: Tensor, metric: str = "euclidean",
            period: Tensor | None = None) -> Tensor:
    """Length of the edges ``source -> target`` between columns at ``pos`` in ``metric``."""
    if metric == "euclidean":
        return pairwise_length(pos, source, target, period)
    if metric == "sphere":
        return great_circle_length(pos, source, target)
    raise ValueError(f"Unknown metric '{metric}'. Choices: {', '.join(METRICS)}.")


class SiteLengths:
    """The distances a geometry gives pairs of its SITES that its metric does not: a mesh's
    paths along the surface (:func:`~colgraph.geometry.from_mesh` with ``geodesic=True``), a
    file's ``length`` attribute. A distance between two places on the sheet, not a property
    of an edge: wherever two columns sit, the length of an edge between them is the given
    distance between their sites if the geometry gave one, else the metric's
    (:meth:`lengths`), so lengths stay derived from positions when columns move.

    Built by :meth:`of` from a geometry (``None`` when the metric gives every edge its
    length, as for every builder's sheet): the sites are the geometry's column positions,
    the pairs its edges whose given length differs from the metric's. Sorted ``int64`` keys
    ``source_site * S + target_site`` with ``float32`` values: 12 bytes per given pair,
    looked up by binary search. A pair that was not an edge of the geometry (a column moved
    or an edge grew between sites the geometry did not join) is measured with the metric: on
    a mesh that is the straight chord, shorter than the surface path, a shortest path on the
    mesh per new pair being too costly at 10^5 columns (state this scale difference when
    growth or migration mixes the two; see the plasticity warning).
    """

    def __init__(self, sites: Tensor, keys: Tensor, values: Tensor) -> None:
        self.sites, self.keys, self.values = sites, keys, values

    @classmethod
    def of(cls, geometry: "Geometry") -> "SiteLengths | None":
        ei = geometry.edge_index
        off = geometry.measure(ei[0], ei[1]) != geometry.edge_length
        if not bool(off.any()):
            return None
        key = ei[0, off] * geometry.num_columns + ei[1, off]
        order = torch.argsort(key)
        return cls(geometry.pos.clone(), key[order], geometry.edge_length[off][order].clone())

    def __len__(self) -> int:
        return self.keys.numel()

    def site_of(self, pos: Tensor) -> Tensor:
        """The site ``[N]`` each column at ``pos`` sits on, ``-1`` off every site (a column
        added during training, a continuous move)."""
        pos = pos.detach().cpu().to(self.sites.dtype)
        if pos.shape == self.sites.shape and torch.equal(pos, self.sites):
            return torch.arange(pos.size(0))
        from scipy.spatial import cKDTree

        dist, idx = cKDTree(self.sites.numpy()).query(pos.numpy(), k=1)
        idx = torch.from_numpy(idx).long()
        return torch.where(torch.from_numpy(dist == 0), idx, torch.full_like(idx, -1))

    def lengths(self, site: Tensor, source: Tensor, target: Tensor, measured: Tensor) -> Tensor:
        """The given distance of each edge ``source -> target`` (column ids) whose columns'
        sites (``site [N]``, from :meth:`site_of`) the geometry joined, ``measured`` (the
        metric's lengths) elsewhere."""
        if source.numel() == 0:
            return measured
        a, b = site[source.cpu()], site[target.cpu()]
        key = a * self.sites.size(0) + b
        at = torch.searchsorted(self.keys, key).clamp(max=self.keys.numel() - 1)
        hit = (self.keys[at] == key) & (a >= 0) & (b >= 0)
        out = measured.clone()
        out[hit.to(out.device)] = self.values[at[hit]].to(out)
        return out


def _indices(value: Any, what: str) -> Tensor:
    """Integer indices as ``long``; refuses fractional values (``2.5`` would be truncated
    silently) and booleans."""
    t = torch.as_tensor(value)
    if t.dtype == torch.bool:
        raise TypeError(f"Expected integer column indices in {what}, got a boolean tensor "
                        f"(use mask.nonzero().flatten() for the selected columns).")
    if t.is_floating_point() or t.is_complex():
        frac = ~torch.isfinite(t) | (t != t.round()) if t.is_floating_point() else t.imag != 0
        if frac.any():
            v = t.flatten()[frac.flatten().nonzero()[0, 0]].item()
            raise ValueError(f"Expected integer column indices in {what}, got {v}: indices "
                             f"name columns 0 .. N-1.")
    return t.to(torch.long)


@dataclass
class Geometry:
    """Positions, directed edges, edge lengths and named areas of a sheet of columns.

    Args:
        pos: column positions, shape ``[N, D]``.
        edge_index: directed edges, shape ``[2, E]``; row 0 = source, row 1 = target.
        edge_length: length of each edge, shape ``[E]``.
        areas: named sets of columns (``input``, ``output``, ``area0``, ...), each a 1-D tensor
            of column indices.
        period: box size per dimension for wrapped (toroidal) distances, ``inf`` where open;
            ``None`` for plain Euclidean space.
        name: a short description, e.g. ``"stack(widths=[8, 6, 4])"``.
        labels: optional node labels (any hashable), one per column, e.g. from
            :func:`~colgraph.geometry.from_networkx`; exported connectomes use them.
        metric: how :meth:`measure` gives the length of an edge between two columns:
            ``"euclidean"`` (wrapped by ``period`` on a torus) or ``"sphere"`` (great circle).
            ``edge_length`` may differ from the metric (a mesh's surface paths, a file): it
            is then the distance between those two columns' sites, which a sheet keeps
            (:class:`SiteLengths`) and its edges derive their lengths from, wherever
            columns move; other pairs are measured with the metric.
        input_map: optional ``[N]`` patch index (row-major in the task's patch grid, or
            window index for sequences) that each input-area column receives, ``-1`` for
            other columns: an explicit retinotopic map instead of the one fitted from
            positions (see :class:`colgraph.tasks.InputMap`).
        faces: optional ``[F, 3]`` column indices of the triangles of the mesh the sheet was
            built from (:func:`~colgraph.geometry.from_mesh`, :func:`~colgraph.geometry.
            from_surface` keep them), for operators that need the surface itself, such as
            the Laplace-Beltrami eigenmodes of :func:`colgraph.connectome.geometric_modes`.
            Kept in checkpoints (:meth:`state_dict`), not in GraphML / GML / CSV geometry
            files (read the surface again with ``from_surface``).

    Edges are put in canonical order (by target, then source) on construction and
    :meth:`validate` runs, so a ``Geometry`` that exists is a valid one.

    Example:
        >>> from colgraph.geometry import grid, knn
        >>> geo = grid(8, wiring=knn(k=8))
        >>> geo.num_columns, geo.num_edges
        (64, 512)
    """

    pos: Tensor
    edge_index: Tensor
    edge_length: Tensor
    areas: dict[str, Tensor] = field(default_factory=dict)
    period: Tensor | None = None
    name: str = "custom"
    labels: list | None = None
    metric: str = "euclidean"
    input_map: Tensor | None = None
    faces: Tensor | None = None

    def __post_init__(self) -> None:
        self.pos = torch.as_tensor(self.pos, dtype=torch.float32)
        self.edge_index = _indices(self.edge_index, "edge_index")
        self.edge_length = torch.as_tensor(self.edge_length, dtype=torch.float32)
        self.areas = {k: _indices(v, f"area '{k}'").flatten() for k, v in self.areas.items()}
        if self.period is not None:
            self.period = torch.as_tensor(self.period, dtype=torch.float32)
        if self.labels is not None:
            self.labels = list(self.labels)
        if self.input_map is not None:
            self.input_map = _indices(self.input_map, "input_map").flatten()
        if self.faces is not None:
            self.faces = _indices(self.faces, "faces")
        self.validate()
        perm = canonical_order(self.edge_index, self.num_columns)
        self.edge_index = self.edge_index[:, perm].contiguous()
        self.edge_length = self.edge_length[perm].contiguous()
        self._check_duplicates()

    # ------------------------------------------------------------------ properties
    @property
    def num_columns(self) -> int:
        return self.pos.size(0)

    @property
    def num_edges(self) -> int:
        return self.edge_index.size(1)

    @property
    def dim(self) -> int:
        return self.pos.size(1)

    def area(self, name: str) -> Tensor:
        """Column indices of the area called ``name`` (with a helpful error if missing)."""
        if name not in self.areas:
            raise KeyError(f"Unknown area '{name}'. This geometry has areas: "
                           f"{', '.join(sorted(self.areas)) or '(none)'}. Choose one of them "
                           f"(e.g. model.input_area=...).")
        return self.areas[name]

    def column_areas(self) -> list[str]:
        """Each column's area names, comma-separated (``"area0,input"``), as files store them."""
        member: list[list[str]] = [[] for _ in range(self.num_columns)]
        for name, idx in self.areas.items():
            for i in idx.tolist():
                member[i].append(name)
        return [",".join(m) for m in member]

    def measure(self, source: Tensor, target: Tensor) -> Tensor:
        """Length of the edges ``source -> target`` in this geometry's metric."""
        return measure(self.pos, source, target, self.metric, self.period)

    def in_degree(self) -> Tensor:
        return torch.bincount(self.edge_index[1], minlength=self.num_columns)

    # ------------------------------------------------------------------ checks
    def validate(self) -> "Geometry":
        """Check shapes, ranges and values; raise ``ValueError`` that says how to fix it."""
        pos, ei, length = self.pos, self.edge_index, self.edge_length
        if pos.dim() != 2 or pos.size(0) == 0:
            raise ValueError(f"Expected 'pos' to have shape [N, D] with N > 0 (got "
                             f"{list(pos.shape)}). Pass one row of coordinates per column.")
        if not torch.isfinite(pos).all():
            bad = (~torch.isfinite(pos)).any(1).nonzero().flatten()[:5].tolist()
            raise ValueError(f"Expected finite column positions, but 'pos' has NaN/inf at "
                             f"columns {self._named(bad)}. Fix or drop those columns before "
                             f"building the geometry.")
        if ei.dim() != 2 or ei.size(0) != 2:
            raise ValueError(f"Expected 'edge_index' to have shape [2, E] (got "
                             f"{list(ei.shape)}). Build it with colgraph.geometry.knn(...) "
                             f"or transpose your edge list.")
        n = pos.size(0)
        if ei.numel() and (ei.min() < 0 or ei.max() >= n):
            raise ValueError(f"Expected 'edge_index' values in [0, {n - 1}] for {n} columns "
                             f"(got min {int(ei.min())}, max {int(ei.max())}). Every edge "
                             f"must connect existing columns.")
        if length.shape != (ei.size(1),):
            raise ValueError(f"Expected 'edge_length' to have shape [{ei.size(1)}] (one "
                             f"length per edge), got {list(length.shape)}.")
        if not torch.isfinite(length).all() or (length < 0).any():
            bad = (~torch.isfinite(length) | (length < 0)).nonzero().flatten()[:5].tolist()
            raise ValueError(f"Expected finite, non-negative 'edge_length' values (bad at edges "
                             f"{bad}). Compute lengths with "
                             f"colgraph.geometry.pairwise_length(pos, src, dst).")
        zero = (length == 0) & (ei[0] != ei[1])
        if zero.any():
            s, t = ei[:, zero.nonzero()[0, 0]].tolist()
            raise ValueError(f"Edge {self._named([s, t], ' -> ')} joins two different columns "
                             f"but has length 0 ({int(zero.sum())} such edges). Only "
                             f"self-loops may have zero length: give the columns distinct "
                             f"positions or the edge a positive length.")
        self._check_unique_positions()
        missing = torch.ones(n, dtype=torch.bool)
        missing[ei[1]] = False
        if missing.any():
            cols = missing.nonzero().flatten()
            raise ValueError(f"{cols.numel()} column(s) have no incoming edges (e.g. "
                             f"{self._named(cols[:5].tolist())}): attention over their inputs "
                             f"is undefined. Use a wiring that gives every column inputs "
                             f"(knn, or self_loops=true), or drop those columns.")
        if self.metric not in METRICS:
            raise ValueError(f"Unknown metric '{self.metric}'. Choices: {', '.join(METRICS)}.")
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"Expected one label per column ({n}), got {len(self.labels)}.")
        if self.input_map is not None and (self.input_map.shape != (n,)
                                           or (self.input_map < -1).any()):
            raise ValueError(f"Expected 'input_map' to hold one patch index >= 0 (or -1 for "
                             f"none) per column ({n}), got shape {list(self.input_map.shape)}, "
                             f"min {int(self.input_map.min()) if self.input_map.numel() else '-'}.")
        faces = self.faces
        if faces is not None and (faces.dim() != 2 or faces.size(1) != 3 or (faces.numel() and (
                faces.min() < 0 or faces.max() >= n))):
            rng = (f", values {int(faces.min())} .. {int(faces.max())}" if faces.numel() else "")
            raise ValueError(f"Expected 'faces' of shape [F, 3] with column indices in [0, "
                             f"{n - 1}] (got shape {list(faces.shape)}{rng}): one row of three "
                             f"columns per triangle of the sheet's mesh, or None.")
        if self.period is not None and self.period.shape != (pos.size(1),):
            raise ValueError(f"Expected 'period' to have one entry per dimension "
                             f"({pos.size(1)}), got {list(self.period.shape)}.")
        for name, idx in self.areas.items():
            if idx.numel() == 0:
                raise ValueError(f"Area '{name}' is empty. Give it at least one column.")
            if idx.min() < 0 or idx.max() >= n:
                raise ValueError(f"Area '{name}' names columns outside [0, {n - 1}] (got "
                                 f"min {int(idx.min())}, max {int(idx.max())}) for a sheet "
                                 f"of {n} columns. Fix the area's column indices.")
            uniq, counts = torch.unique(idx, return_counts=True)
            if (counts > 1).any():
                raise ValueError(f"Area '{name}' lists column {int(uniq[counts > 1][0])} "
                                 f"{int(counts.max())} times: each column belongs to an area "
                                 f"once (an input area listing a column twice would add its "
                                 f"token twice).")
        return self

    def _named(self, cols: list[int], sep: str | None = None) -> str:
        """Column indices as an error shows them, with their labels when the geometry has
        them: ``[0, 3] (nodes 'a', 'd')``; with ``sep`` an edge: ``0 -> 3 ('a' -> 'd')``."""
        text = sep.join(map(str, cols)) if sep else str(cols)
        if self.labels is None or len(self.labels) != self.num_columns:
            return text
        names = (sep or ", ").join(repr(self.labels[i]) for i in cols)
        return f"{text} ({names})" if sep else f"{text} (nodes {names})"

    def _check_unique_positions(self) -> None:
        pos = self.pos
        if pos.size(0) < 2:
            return
        _, inverse, counts = torch.unique(pos, dim=0, return_inverse=True, return_counts=True)
        if (counts > 1).any():
            dup = (counts[inverse] > 1).nonzero().flatten()[:5].tolist()
            raise ValueError(f"Columns {self._named(dup)} share a position: every column needs "
                             f"its own place on the sheet. Remove duplicates or jitter them.")

    def _check_duplicates(self) -> None:
        key = self.edge_index[1] * self.num_columns + self.edge_index[0]
        if key.numel() > 1 and (key[1:] == key[:-1]).any():
            i = int((key[1:] == key[:-1]).nonzero()[0])
            s, t = self.edge_index[:, i].tolist()
            raise ValueError(f"Duplicate edge {self._named([s, t], ' -> ')} in 'edge_index'. "
                             f"Edges must be unique; remove repeats "
                             f"(torch_geometric.utils.coalesce).")

    def with_wiring(self, *rules) -> "Geometry":
        """This sheet with more edges: its own edges (lengths kept, e.g. a mesh's geodesic
        paths) plus those of each wiring rule (``knn``, ``exponential``, ... ; random rules
        avoid the edges already there), measured in the geometry's metric. Columns, areas,
        labels and the input map are unchanged.

        Example: a cortical mesh that keeps its mesh edges and gains exponential-distance-rule
        long-range inputs:

            >>> from colgraph.geometry import grid, knn, exponential
            >>> geo = grid(10, wiring=knn(4)).with_wiring(exponential(m=2, lam=3.0))
            >>> geo.in_degree().unique().tolist()
            [6]
        """
        from .wiring import Wiring

        bad = [r for r in rules if not isinstance(r, Wiring)]
        if not rules or bad:
            raise TypeError(f"with_wiring expects wiring rules (colgraph.geometry.knn(8), "
                            f"exponential(m=4, lam=6.0), ...), got "
                            f"{type(bad[0]).__name__ if bad else 'none'}.")
        edges, lengths = self.edge_index, self.edge_length
        for rule in rules:
            new = rule(self.pos, self.period, exclude=edges)
            key = edges[1] * self.num_columns + edges[0]
            fresh = ~torch.isin(new[1] * self.num_columns + new[0], key)  # knn ignores exclude
            new = new[:, fresh]
            edges = torch.cat([edges, new], 1)
            lengths = torch.cat([lengths, self.measure(new[0], new[1])])
        names = "+".join(type(r).__name__.lower() for r in rules)
        return Geometry(self.pos, edges, lengths, dict(self.areas), self.period,
                        f"{self.name}+{names}", self.labels, self.metric, self.input_map,
                        self.faces)

    def hops_from(self, sources: Tensor) -> Tensor:
        """Fewest edges from any column in ``sources`` to every column (``-1``: unreachable)."""
        return hops_from(self.edge_index, self.num_columns, sources)

    def check_reachable(self, input_area: str, output_area: str, steps: int) -> int:
        """Raise unless every ``output_area`` column is within ``steps`` hops of the input.

        Returns the number of hops needed (information moves one edge per step).
        """
        hops = self.hops_from(self.area(input_area))[self.area(output_area)]
        if (hops < 0).any():
            raise ValueError(f"{int((hops < 0).sum())} column(s) of output area "
                             f"'{output_area}' cannot be reached from input area "
                             f"'{input_area}' along the edges at all. Add wiring between them "
                             f"(e.g. geometry.wiring.long_range=4, or a larger k).")
        need = int(hops.max())
        if need > steps:
            raise ValueError(f"Output area '{output_area}' is {need} hops from input area "
                             f"'{input_area}', but the model runs {steps} steps, so input "
                             f"cannot reach it. Set model.steps={need} or more, or add "
                             f"long-range wiring (geometry.wiring.long_range=4).")
        return need

    def summary(self) -> str:
        """Counts, in-degree and edge-length statistics, overall and per area."""
        deg = self.in_degree().float()
        dst = self.edge_index[1]
        lines = [repr(self), f"{'area':<12}{'columns':>8}{'in-edges':>10}{'deg min/mean/max':>20}"
                 f"{'length min/mean/max':>24}"]
        groups = {"(all)": torch.arange(self.num_columns), **self.areas}
        for name, idx in groups.items():
            mask = torch.zeros(self.num_columns, dtype=torch.bool)
            mask[idx] = True
            emask = mask[dst]
            d, ln = deg[idx], self.edge_length[emask]
            lstats = (f"{float(ln.min()):.3g}/{float(ln.mean()):.3g}/{float(ln.max()):.3g}"
                      if ln.numel() else "-")
            lines.append(f"{name:<12}{idx.numel():>8}{int(emask.sum()):>10}"
                         f"{f'{int(d.min())}/{float(d.mean()):.1f}/{int(d.max())}':>20}"
                         f"{lstats:>24}")
        return "\n".join(lines)

    def plot(self, ax=None, edges: bool = True, max_edges: int = 5000, path=None):
        """Scatter of the columns coloured by area, with (a sample of) the edges.

        2D and 1D sheets are drawn flat, 3D ones in 3D. Returns the matplotlib axes;
        ``path`` also saves the figure.
        """
        import matplotlib

        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.collections import LineCollection

        pos = self.pos.detach().cpu()
        if pos.size(1) == 1:
            pos = torch.cat([pos, torch.zeros_like(pos)], 1)
        three_d = pos.size(1) >= 3
        if ax is None:
            fig = plt.figure(figsize=(7, 6))
            ax = fig.add_subplot(projection="3d" if three_d else None)
        if edges and self.num_edges:
            g = torch.Generator().manual_seed(0)
            pick = torch.randperm(self.num_edges, generator=g)[:max_edges]
            seg = torch.stack([pos[self.edge_index[0, pick]], pos[self.edge_index[1, pick]]], 1)
            if three_d:
                from mpl_toolkits.mplot3d.art3d import Line3DCollection

                ax.add_collection3d(Line3DCollection(seg[..., :3].numpy(), colors="0.6",
                                                     linewidths=0.3, alpha=0.4))
            else:
                ax.add_collection(LineCollection(seg[..., :2].numpy(), colors="0.6",
                                                 linewidths=0.3, alpha=0.4))
        # colour by the most specific area: aliases (input/output/sheet) drawn last as rings
        aliases = {"input", "output", "sheet"}
        plain = [a for a in self.areas if a not in aliases] or [a for a in self.areas]
        member = torch.zeros(self.num_columns, dtype=torch.bool)
        for name in plain:
            member[self.areas[name]] = True
        if not member.all():  # columns in no (plain) area are columns too: grey dots
            anywhere = member.clone()
            for idx in self.areas.values():
                anywhere[idx] = True
            none = int((~anywhere).sum())
            p = pos[~member]
            ax.scatter(*p[:, :3 if three_d else 2].t().numpy(), s=10, c="0.45",
                       label=f"no area ({none})" if none else "input / output only")
        for name in plain:
            p = pos[self.areas[name]]
            ax.scatter(*p[:, :3 if three_d else 2].t().numpy(), s=10, label=name)
        for name, marker in (("input", "s"), ("output", "D")):
            if name in self.areas and plain != list(self.areas):
                p = pos[self.areas[name]]
                ax.scatter(*p[:, :3 if three_d else 2].t().numpy(), s=40, facecolors="none",
                           edgecolors="k", marker=marker, linewidths=0.6, label=name)
        ax.set_title(self.name)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        if self.areas or not member.all():
            ax.legend(loc="best", fontsize=8)
        if not three_d:
            ax.set_aspect("equal", adjustable="datalim")
            ax.autoscale_view()
        if path is not None:
            ax.figure.tight_layout()
            ax.figure.savefig(path, dpi=120)
        return ax

    def to_networkx(self):
        """This geometry as a ``networkx.DiGraph``: nodes are the labels (or column ids) with
        ``pos`` and ``area`` (and ``input_map``) attributes, edges carry ``length``; the
        inverse of :func:`colgraph.geometry.from_networkx`."""
        from .io import networkx_graph

        return networkx_graph(self)

    def to_pyg(self):
        """This geometry as a ``torch_geometric.data.Data``: ``pos``, ``edge_index``,
        ``edge_length`` (also ``edge_attr [E, 1]``), a mask ``area_<name>`` per area,
        ``input_map`` when set; the inverse of :func:`colgraph.geometry.from_pyg`."""
        from .io import pyg_data

        return pyg_data(self)

    # ------------------------------------------------------------------ (de)serialisation
    def to(self, device: torch.device | str) -> "Geometry":
        """A copy of this geometry with every tensor on ``device``."""
        state = self.state_dict()
        moved = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in state.items()}
        moved["areas"] = {k: v.to(device) for k, v in self.areas.items()}
        return Geometry.from_state_dict(moved)

    def state_dict(self) -> dict[str, Any]:
        return {"pos": self.pos, "edge_index": self.edge_index,
                "edge_length": self.edge_length, "areas": dict(self.areas),
                "period": self.period, "name": self.name, "labels": self.labels,
                "metric": self.metric, "input_map": self.input_map, "faces": self.faces}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "Geometry":
        return cls(**state)

    def fingerprint(self) -> str:
        """A short hash of positions, edges and areas: equal sheets have equal prints."""
        h = hashlib.sha1()
        for t in (self.pos, self.edge_index):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        for k in sorted(self.areas):
            h.update(k.encode())
            h.update(self.areas[k].cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        areas = ", ".join(f"{k}={v.numel()}" for k, v in self.areas.items())
        return (f"Geometry({self.name}, columns={self.num_columns}, edges={self.num_edges}, "
                f"dim={self.dim}, areas=[{areas}])")

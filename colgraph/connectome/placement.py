"""Optimal placement of a connectome: where should each column sit to save wire?

Cherniak's "save wire" principle, made testable (Chen, Hall & Chklovskii, PNAS 2006,
predicted neuron positions from the C. elegans connectome by minimising wiring cost): given
the weighted graph alone, find the positions that minimise the wire

    cost = sum_ij w_ij * len_ij ** p        (over directed edges i != j)

with ``len`` in the sheet's metric (Euclidean, wrapped on a torus by ``period``, great
circle on a sphere: :func:`colgraph.geometry.measure`), and compare the columns' actual
placement with it and with random placements.

* :func:`quadratic_placement`: the closed-form optimum of the QUADRATIC wire
  ``sum_ij w_ij ||x_i - x_j||^2`` with some columns pinned: ONE sparse linear solve of the
  Laplacian system on the free columns (``O(E)`` memory, a sparse LU), then, with ``sites``,
  a scalable one-to-one snap of the columns onto sites (:func:`assign_sites`).
* :func:`swap_placement`: pairwise swaps of columns over sites on the TRUE cost (any ``p``,
  any metric), greedy or annealed; each swap's cost change comes from the two columns'
  incident edges only, and many conflict-free swaps are applied at once, so a sweep
  (one proposal per movable column) costs ``O(E)``.
* :func:`placement_report`: actual vs best-found vs random wire, overall and per area,
  JSON-ready; :func:`plot_placement` draws the migration.

Symbols: ``N`` columns, ``S >= N`` sites, ``D`` dimensions, ``E`` edges.

Measured once on a shared 2-core machine (one thread), 10^5 random columns with ``knn(16)``
(1.6 x 10^6 edges), 4 pinned: :func:`quadratic_placement` with sites 8.1 s (7.3 s the
sparse LU solve, 0.8 s :func:`assign_sites`); :func:`swap_placement` with one sweep 1.2 s
(set-up and both cost evaluations included), three sweeps 2.0 s.

Why here and not in :mod:`colgraph.geometry`: the inputs are connectomes (networkx graphs
with ``pos`` / ``area`` node attributes and ``metric`` / ``period_*`` graph attributes, read
by :func:`colgraph.connectome.arrays.arrays`), and the report is a connectome analysis. The
array core (:class:`_Wire`, :func:`assign_sites`) imports nothing of the connectome, so the
training-time migration can move it under the edge owner when it comes.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Placement", "quadratic_placement", "assign_sites", "swap_placement", "placement_wire",
           "migration_step", "placement_report", "plot_placement", "LEAF"]

#: columns per leaf of the recursive bisection of :func:`assign_sites`, each leaf solved
#: exactly by ``scipy.optimize.linear_sum_assignment`` (``O(LEAF^3)`` per leaf)
LEAF = 64


@dataclass
class Placement:
    """The result of :func:`swap_placement`.

    Attributes:
        pos: ``[N, D]`` final column positions (rows of the sites).
        site: ``[N]`` the site index of each column.
        cost: the wire before the first sweep, then after each sweep.
        accepted: swaps applied in each sweep.
        temperature: the temperature of each sweep (``0`` for greedy).
    """

    pos: np.ndarray
    site: np.ndarray
    cost: list[float]
    accepted: list[int]
    temperature: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------- inputs
@dataclass
class _Graph:
    n: int
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    pos: np.ndarray | None  # (N, D) or None: the graph has no positions
    metric: str
    period: np.ndarray | None
    areas: dict[str, np.ndarray]
    nodes: list


def _has_positions(graph: Any) -> bool:
    """Whether every column of ``graph`` has a position, as the placement functions need:
    a :class:`~colgraph.geometry.Geometry` always has; a networkx graph when every node
    has ``pos``; :class:`~colgraph.connectome.arrays.EdgeArrays` when its positions vary
    (``arrays`` fills zeros where a graph has none); a weight matrix never."""
    from ..geometry.base import Geometry
    from .arrays import EdgeArrays

    if isinstance(graph, Geometry):
        return True
    if isinstance(graph, EdgeArrays):
        return graph.pos.ndim == 2 and bool(np.ptp(graph.pos, axis=0).any())
    import networkx as nx

    if not isinstance(graph, nx.Graph):
        return False
    return all(d.get("pos") is not None for _, d in graph.nodes(data=True))


def _graph(graph: Any, what: str) -> _Graph:
    """A networkx graph, a :class:`~colgraph.geometry.Geometry`, an
    :class:`~colgraph.connectome.arrays.EdgeArrays` or a square (sparse) weight matrix as
    edge arrays; weights checked finite and >= 0. An undirected graph counts each edge
    once."""
    import scipy.sparse as sp

    from ..geometry.base import Geometry
    from .arrays import EdgeArrays, arrays

    if isinstance(graph, Geometry):
        src, dst = graph.edge_index.numpy()
        return _Graph(graph.num_columns, src, dst, np.ones(src.size), graph.pos.double().numpy(),
                      graph.metric, None if graph.period is None else graph.period.double().numpy(),
                      {k: v.numpy() for k, v in graph.areas.items()},
                      list(graph.labels or range(graph.num_columns)))
    if isinstance(graph, EdgeArrays):
        a = graph
        has_pos = _has_positions(a)
        w = np.asarray(a.weight, float)
        if not np.isfinite(w).all() or (w < 0).any():
            i = int(np.flatnonzero(~np.isfinite(w) | (w < 0))[0])
            raise ValueError(f"Expected finite edge weights >= 0 for {what}, but edge "
                             f"{a.nodes[a.src[i]]!r} -> {a.nodes[a.dst[i]]!r} has {w[i]}: wire "
                             f"is a sum of weight x length, a negative weight would reward "
                             f"long edges. Pass |w| or drop those edges.")
        return _Graph(a.n, a.src, a.dst, w, a.pos if has_pos else None, a.metric, a.period,
                      a.areas, a.nodes)
    if sp.issparse(graph) or isinstance(graph, np.ndarray):
        W = sp.coo_matrix(graph)
        if W.shape[0] != W.shape[1]:
            raise ValueError(f"Expected a square [N, N] weight matrix for {what}, got shape "
                             f"{list(W.shape)}. Pass the adjacency of the connectome "
                             f"(e.g. colgraph.connectome.adjacency(G)).")
        w = W.data.astype(float)
        if not np.isfinite(w).all() or (w < 0).any():
            i = int(np.flatnonzero(~np.isfinite(w) | (w < 0))[0])
            raise ValueError(f"Expected finite weights >= 0 in the weight matrix for {what}, "
                             f"but W[{W.row[i]}, {W.col[i]}] = {w[i]}: wire is a sum of "
                             f"weight x length. Pass abs(W) or zero those entries.")
        return _Graph(W.shape[0], W.row.astype(np.int64), W.col.astype(np.int64), w, None,
                      "euclidean", None, {}, list(range(W.shape[0])))
    import networkx as nx

    if not isinstance(graph, nx.Graph):
        raise TypeError(f"Expected a networkx graph, a Geometry, EdgeArrays or an [N, N] "
                        f"weight matrix for {what}, got {type(graph).__name__}.")
    undirected = not graph.is_directed()
    with warnings.catch_warnings():  # both directions of an undirected edge: halved below
        warnings.simplefilter("ignore", UserWarning)
        try:
            a = arrays(graph)
        except ValueError as e:
            raise ValueError(f"{e} (placement: {what})") from None
    has_pos = _has_positions(graph)
    w = a.weight / 2 if undirected else a.weight
    return _Graph(a.n, a.src, a.dst, w, a.pos if has_pos else None, a.metric, a.period,
                  a.areas, a.nodes)


def _positions(pos: Any, n: int | None, what: str, fix: str) -> np.ndarray:
    x = np.asarray(pos, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or (n is not None and x.shape[0] != n) or x.shape[0] == 0:
        expect = f"[{n}, D]" if n is not None else "[S, D]"
        raise ValueError(f"Expected {what} of shape {expect}, got {list(x.shape)}. {fix}")
    if not np.isfinite(x).all():
        i = int(np.flatnonzero(~np.isfinite(x).all(1))[0])
        raise ValueError(f"Expected finite {what}, but row {i} is {x[i].tolist()} (NaN/inf in "
                         f"{int((~np.isfinite(x).all(1)).sum())} rows). Fix or drop those "
                         f"columns first.")
    return x


def _pinned(pinned: Any, g: _Graph) -> np.ndarray:
    """Boolean ``[N]`` mask of pinned columns from ``None``, area name(s), column indices
    or a boolean mask."""
    n = g.n
    mask = np.zeros(n, bool)
    if pinned is None:
        return mask
    names = [pinned] if isinstance(pinned, str) else (
        list(pinned) if isinstance(pinned, (list, tuple)) and pinned
        and all(isinstance(p, str) for p in pinned) else None)
    if names is not None:
        for name in names:
            if name not in g.areas:
                raise ValueError(f"Unknown area '{name}' in pinned. The graph has areas: "
                                 f"{', '.join(sorted(g.areas)) or '(none)'}. Pin one of them, "
                                 f"or pass column indices.")
            mask[g.areas[name]] = True
        return mask
    p = np.asarray(pinned)
    if p.dtype == bool:
        if p.shape != (n,):
            raise ValueError(f"Expected a boolean pinned mask of shape [{n}], got "
                             f"{list(p.shape)}.")
        return p.copy()
    if p.size == 0:
        return mask
    if not np.issubdtype(p.dtype, np.integer):
        raise TypeError(f"Expected pinned as column indices (ints), a boolean mask, or area "
                        f"name(s), got {p.dtype} values (e.g. {p.flatten()[0]!r}).")
    p = p.flatten()
    if p.min() < 0 or p.max() >= n:
        bad = p[(p < 0) | (p >= n)][:5].tolist()
        raise ValueError(f"Expected pinned column indices in [0, {n - 1}] for {n} columns, got "
                         f"{bad}. Index columns in graph node order (list(G.nodes)).")
    mask[p] = True
    return mask


def _power(p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.number)) or not (
            math.isfinite(p) and p > 0):
        raise ValueError(f"cost_power must be a finite number > 0 (got {p!r}): the wire is "
                         f"sum w * length ** p, p = 1 (length) or 2 (squared length).")
    return float(p)


def _check_movable(pin: np.ndarray) -> None:
    if pin.all():
        raise ValueError(f"All {pin.size} columns are pinned: nothing can move. Pin fewer "
                         f"columns (e.g. a few corners or one area).")


def _integer(name: str, value: Any, low: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low} (got {value!r}): {what}.")
    return int(value)


# ---------------------------------------------------------------------- quadratic placement
def _symmetric(g: _Graph):
    """``(A + A^T) / 2`` without self-loops, CSR ``[N, N]``."""
    import scipy.sparse as sp

    keep = g.src != g.dst
    A = sp.csr_matrix((g.weight[keep], (g.src[keep], g.dst[keep])), shape=(g.n, g.n))
    W = ((A + A.T) * 0.5).tocsr()
    W.eliminate_zeros()
    return W


def quadratic_placement(W_or_graph: Any, pos: Any = None, pinned: Any = None,
                        sites: Any = None) -> np.ndarray:
    """Positions minimising ``sum_ij w_ij ||x_i - x_j||^2`` with ``pinned`` columns fixed.

    Symmetrises ``W = (A + A^T) / 2`` and solves the Laplacian system of the free columns
    ``L_ff x_f = W_fp x_p`` once (sparse LU of ``L_ff``, one back-substitution per
    dimension): each free column lands at the weighted mean of its neighbours. With
    ``sites`` (``[S, D]``, ``S >= N``) the solution is then snapped one-to-one onto sites by
    :func:`assign_sites` (pinned columns keep the site nearest their position).

    Args:
        W_or_graph: a networkx graph (``weight``, default 1; node ``pos``), a
            :class:`~colgraph.geometry.Geometry`, or an ``[N, N]`` (sparse) weight matrix.
        pos: ``[N, D]`` positions; only the pinned rows are used. Default: the graph's.
        pinned: column indices, a boolean mask or area name(s) (node attribute ``area``).
            Every connected component needs a pinned column, otherwise its position is
            undetermined (the system is singular) and the call is refused.
        sites: optional ``[S, D]`` site positions to snap to.

    Returns:
        ``[N, D]`` positions (rows of ``sites`` when given).

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> W = sp.diags([1.0] * 4, 1, shape=(5, 5))   # a path 0 - 1 - 2 - 3 - 4
        >>> pos = np.array([[0.0], [9], [9], [9], [4]])  # ends at 0 and 4
        >>> quadratic_placement(W, pos, pinned=[0, 4]).ravel().round(6).tolist()
        [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    g = _graph(W_or_graph, "quadratic_placement")
    if pos is None and g.pos is None:
        raise ValueError("quadratic_placement needs positions of the pinned columns: the graph "
                         "has no node 'pos'. Pass pos=[N, D] (only the pinned rows are used).")
    x = _positions(g.pos if pos is None else pos, g.n, "positions 'pos'",
                   "Pass one row of coordinates per column.")
    pin = _pinned(pinned, g)
    if not pin.any():
        raise ValueError("quadratic_placement needs at least one pinned column: without one the "
                         "optimum collapses every column onto one point (the Laplacian is "
                         "singular). Pass pinned=[...] (e.g. a few corner columns or an area).")
    _check_movable(pin)
    site_pos = None
    if sites is not None:
        site_pos = _check_sites(sites, g.n, x.shape[1])
    W = _symmetric(g)
    _check_components(W, pin)
    x = _solve(W, x, pin)
    if site_pos is not None:
        x = site_pos[assign_sites(x, site_pos, pinned=pin)]
    return x


def _check_sites(sites: Any, n: int, dim: int | None) -> np.ndarray:
    s = _positions(sites, None, "sites", "Pass one row of coordinates per site.")
    if s.shape[0] < n:
        raise ValueError(f"Expected at least as many sites as columns ({n}), got {s.shape[0]} "
                         f"sites: each column needs a site of its own. Pass more sites, or "
                         f"sites=None to place on the columns' own positions.")
    if dim is not None and s.shape[1] != dim:
        raise ValueError(f"Expected sites of dimension {dim} (as the positions), got "
                         f"{s.shape[1]}.")
    return s


def _check_components(W, pin: np.ndarray) -> None:
    from scipy.sparse.csgraph import connected_components

    k, label = connected_components(W, directed=False)
    has_pin = np.zeros(k, bool)
    has_pin[label[pin]] = True
    if not has_pin.all():
        free = np.flatnonzero(~has_pin[label])
        raise ValueError(f"{int((~has_pin).sum())} of the graph's {k} connected components "
                         f"have no pinned column ({free.size} columns, e.g. {free[:5].tolist()}): "
                         f"their position is undetermined (the Laplacian system is singular). "
                         f"Pin one column of each component, or drop them (isolated columns "
                         f"included).")


def _solve(W, x: np.ndarray, pin: np.ndarray) -> np.ndarray:
    """``x_f = L_ff^-1 W_fp x_p``: one sparse LU of the free block (symmetric positive
    definite once every component has a pinned column), one solve per dimension."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    free = np.flatnonzero(~pin)
    deg = np.asarray(W.sum(1)).ravel()
    L = (sp.diags(deg) - W).tocsr()
    Lff = L[free][:, free].tocsc()
    rhs = -(L[free][:, np.flatnonzero(pin)] @ x[pin])  # W_fp x_p
    out = x.copy()
    out[free] = splu(Lff, permc_spec="COLAMD").solve(np.ascontiguousarray(rhs))
    return out


# ---------------------------------------------------------------------- snapping to sites
def assign_sites(pos: Any, sites: Any, pinned: Any = None, leaf: int = LEAF) -> np.ndarray:
    """A one-to-one assignment of columns at ``pos`` ``[N, D]`` to ``sites`` ``[S, D]``
    (``S >= N``) with small total squared displacement: the site index of each column.

    ``scipy.optimize.linear_sum_assignment`` is exact but dense, ``O(N^3)`` (the input map
    of :mod:`colgraph.tasks` stops using it above 4096 patches); so, for any ``N``:
    recursive bisection (Gordian-style partitioning placement): split the columns at
    their median along the sites' widest axis, and the sites so that each half holds as
    many sites as columns (``S = N``: a split by RANK) or, with spare sites, at the
    columns' median coordinate (each half keeping at least as many sites as columns), recurse down to
    leaves of ``leaf`` columns, each solved exactly by ``linear_sum_assignment`` on squared
    distances after matching the columns' spread to the sites' (``O(N log^2 N)`` sorting +
    ``O(N leaf^2)``). Ranks, not distances, decide the splits, which is why it is used rather
    than a greedy nearest free site: a quadratic placement with few pins collapses most
    columns into a small region, where nearest free sites would spiral out and lose the
    columns' relative order; the bisection keeps it. A swap refinement on the true cost
    (:func:`swap_placement`) fixes what the leaf boundaries cost. ``pinned`` columns
    (mask or indices) take the site nearest their position first.

    Example:
        >>> import numpy as np
        >>> sites = np.array([[0.0, 0], [1, 0], [2, 0], [3, 0]])
        >>> assign_sites(np.array([[0.1, 0.0], [0.2, 0], [0.15, 0], [0.05, 0]]), sites).tolist()
        [1, 3, 2, 0]
    """
    from scipy.spatial import cKDTree

    x = _positions(pos, None, "positions 'pos'", "Pass one row of coordinates per column.")
    s = _check_sites(sites, x.shape[0], x.shape[1])
    leaf = _integer("leaf", leaf, 2, "columns per exactly solved block, e.g. 64")
    n = x.shape[0]
    out = np.full(n, -1, np.int64)
    free_site = np.ones(s.shape[0], bool)
    if pinned is not None:
        pin = np.zeros(n, bool)
        pin[np.asarray(pinned)] = True
        if pin.any():
            _, near = cKDTree(s).query(x[pin])
            if np.unique(near).size < near.size:
                raise ValueError("Two pinned columns are nearest the same site: give pinned "
                                 "columns distinct sites (pin columns that sit on sites).")
            out[pin] = near
            free_site[near] = False
    cols = np.flatnonzero(out < 0)
    stack = [(cols, np.flatnonzero(free_site))]
    while stack:
        c, st = stack.pop()
        if c.size == 0:
            continue
        if c.size <= leaf:
            out[c] = st[_leaf(x[c], s[st])]
            continue
        axis = int(np.argmax(np.ptp(s[st], axis=0)))
        c = c[np.argsort(x[c, axis], kind="stable")]
        st = st[np.argsort(s[st, axis], kind="stable")]
        n1 = c.size // 2
        # as many sites as columns on each side when S = N; with spare sites, the sites
        # below the columns' median (each side keeping enough sites for its columns)
        cut = 0.5 * (x[c[n1 - 1], axis] + x[c[n1], axis])
        m1 = int(np.searchsorted(s[st, axis], cut))
        m1 = min(max(m1, n1), st.size - (c.size - n1))
        stack += [(c[:n1], st[:m1]), (c[n1:], st[m1:])]
    return out


def _leaf(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Exact min squared-displacement assignment of a leaf, after an affine match of the
    columns' spread to the sites' (per axis)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    sx, ss = x.std(0), s.std(0)
    scale = np.where(sx > 1e-12 * (1 + np.abs(x).max()), ss / np.maximum(sx, 1e-300), 1.0)
    y = (x - x.mean(0)) * scale + s.mean(0)
    rows, cols = linear_sum_assignment(cdist(y, s, "sqeuclidean"))
    out = np.empty(x.shape[0], np.int64)
    out[rows] = cols
    return out


# ---------------------------------------------------------------------- the true wire
class _Wire:
    """Wire of columns over sites: undirected pairs ``i < j`` weighing ``w_ij + w_ji``, a
    CSR of each column's incident pairs, and lengths between sites in the metric
    (:func:`colgraph.geometry.measure`)."""

    def __init__(self, g: _Graph, sites: np.ndarray, p: float) -> None:
        import scipy.sparse as sp
        import torch

        keep = g.src != g.dst
        A = sp.csr_matrix((g.weight[keep], (g.src[keep], g.dst[keep])), shape=(g.n, g.n))
        S = (A + A.T).tocsr()
        S.eliminate_zeros()
        S.sort_indices()
        self.csr = S
        upper = sp.triu(S, k=1).tocoo()
        self.i, self.j, self.w = upper.row.astype(np.int64), upper.col.astype(np.int64), upper.data
        self.p, self.n = p, g.n
        self.metric = g.metric
        self.sites = torch.as_tensor(sites, dtype=torch.float64)
        self.period = None if g.period is None else torch.as_tensor(g.period, dtype=torch.float64)
        if self.metric == "sphere":  # radius and unit vectors once, not per call
            self._r = float(self.sites.norm(dim=1).mean())
            self._unit = (self.sites / self.sites.norm(dim=1, keepdim=True)).numpy()

    def length(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Length between sites ``a`` and ``b`` (arrays of site indices) in the metric."""
        import torch

        from ..geometry.base import measure

        if self.metric == "sphere":  # the same formula as measure's great_circle_length
            cos = np.clip((self._unit[a] * self._unit[b]).sum(1), -1.0, 1.0)
            return self._r * np.arccos(cos)
        return measure(self.sites, torch.from_numpy(a), torch.from_numpy(b), self.metric,
                       self.period).numpy()

    def cost(self, site: np.ndarray, pairs: np.ndarray | None = None) -> float:
        i, j, w = (self.i, self.j, self.w) if pairs is None else (
            self.i[pairs], self.j[pairs], self.w[pairs])
        return float((w * self.length(site[i], site[j]) ** self.p).sum())

    def incident(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For columns ``cols`` ``[m]``: (proposal index, neighbour, weight) of every
        incident pair, flattened."""
        ptr = self.csr.indptr
        start, count = ptr[cols], ptr[cols + 1] - ptr[cols]
        owner = np.repeat(np.arange(cols.size), count)
        offset = np.arange(owner.size) - np.repeat(np.cumsum(count) - count, count)
        flat = np.repeat(start, count) + offset
        return owner, self.csr.indices[flat].astype(np.int64), self.csr.data[flat]

    def deltas(self, site: np.ndarray, a: np.ndarray, b: np.ndarray, s: np.ndarray,
               t: np.ndarray):
        """Cost change of moving each column ``a`` from site ``s`` to ``t`` while ``b``
        (``-1``: the site is empty) moves from ``t`` to ``s``; only incident pairs are
        read (the pair ``a - b`` keeps its length). Also returns the touched columns per
        proposal (owner, column) for conflict checks."""
        m, p = a.size, self.p
        delta = np.zeros(m)
        owners, touched = [], []
        for cols, here, there, other in ((a, s, t, b), (b, t, s, a)):
            real = np.flatnonzero(cols >= 0)
            own, u, w = self.incident(cols[real])
            own = real[own]
            moved = u != other[own]
            at = site[u]
            d = self.length(there[own], at) ** p - self.length(here[own], at) ** p
            delta += np.bincount(own, w * d * moved, minlength=m)
            owners.append(own)
            touched.append(u)
        return delta, np.concatenate(owners), np.concatenate(touched)


def placement_wire(graph: Any, pos: Any = None, cost_power: float = 1.0) -> float:
    """The wire ``sum_ij w_ij * len_ij ** p`` of a connectome at positions ``pos``
    (default: the graph's node ``pos``), lengths measured in the graph's metric from the
    positions (:func:`~colgraph.connectome.wiring` sums the edges' stored ``length``).

    Example:
        >>> from colgraph.geometry import grid, knn
        >>> from colgraph.geometry import grid, radius
        >>> placement_wire(grid(3, wiring=radius(1.01)))   # 24 directed edges of length 1
        24.0
    """
    p = _power(cost_power)
    g = _graph(graph, "placement_wire")
    x = _require_pos(g, pos, "placement_wire")
    return _Wire(g, x, p).cost(np.arange(g.n))


def _require_pos(g: _Graph, pos: Any, what: str) -> np.ndarray:
    if pos is None and g.pos is None:
        raise ValueError(f"{what} needs column positions, but the graph has no node 'pos'. "
                         f"Give every node a 'pos' tuple, or pass pos=[N, D].")
    return _positions(g.pos if pos is None else pos, g.n, "positions 'pos'",
                      "Pass one row of coordinates per column.")


# ---------------------------------------------------------------------- swaps
def _near_sites(sites: np.ndarray, period: np.ndarray | None, k: int) -> np.ndarray:
    """The ``k`` nearest sites of every site ``[S, k]`` (k-d tree; wrapped on a torus; on a
    sphere the chord has the great circle's order)."""
    from scipy.spatial import cKDTree

    x, box = sites - sites.min(0), None
    if period is not None and np.isfinite(period).any():
        box = np.where(np.isfinite(period), period, 2 * np.ptp(x, axis=0) + 1.0)
        x = np.mod(x, box)
    k = min(k, sites.shape[0] - 1)
    _, idx = cKDTree(x, boxsize=box).query(x, k + 1)
    return idx[:, 1:].reshape(sites.shape[0], k)


def _keep_disjoint(n: int, a: np.ndarray, b: np.ndarray, t: np.ndarray, owner: np.ndarray,
                   touched: np.ndarray, rng) -> np.ndarray:
    """Which of the accepted proposals to apply together: each proposal gets a random key;
    a proposal is kept when it holds the smallest key at both its columns among all
    proposals whose closed neighbourhood ({a, b} and their neighbours) contains them. Then
    no kept proposal moves a column another kept one reads, so their deltas add up exactly.
    Moves onto the same empty site: the smallest key."""
    m = a.size
    key = rng.permutation(m).astype(np.int64)
    low = np.full(n, m, np.int64)
    verts = np.concatenate([a, b[b >= 0], touched])
    keys = np.concatenate([key, key[b >= 0], key[owner]])
    np.minimum.at(low, verts, keys)
    keep = (low[a] == key) & ((b < 0) | (low[np.maximum(b, 0)] == key))
    empty = np.flatnonzero(keep & (b < 0))
    if empty.size:
        order = empty[np.argsort(key[empty])]
        _, first = np.unique(t[order], return_index=True)
        keep[empty] = False
        keep[order[first]] = True
    return keep


def swap_placement(graph: Any, sites: Any = None, start: Any = None, cost_power: float = 1.0,
                   pinned: Any = None, within: Any = None, method: str = "greedy",
                   sweeps: int = 20, temperature: Any = None, neighbours: int = 8,
                   batches: int = 8, seed: int = 0) -> Placement:
    """Pairwise swaps of columns over sites that lower the true wire
    ``sum_ij w_ij * len_ij ** p`` (``len`` in the graph's metric: Euclidean, torus,
    sphere).

    Each sweep proposes one swap per movable column, in ``batches`` vectorised batches: a
    column at site ``s`` proposes a site ``t`` among the ``neighbours`` nearest sites of
    ``s`` (k-d tree) and trades places with its occupant (or moves there, if empty). The
    cost change of a swap comes from the two columns' incident edges only (``O(E)`` per
    sweep); the accepted swaps (``greedy``: those that lower the cost; ``anneal``:
    Metropolis at the sweep's temperature) are applied together where they are disjoint
    (no two share a column or read each other's columns: random priorities; the rest wait
    for a later batch).

    Local swaps from a random layout stop in a local optimum (about half the scrambled
    excess remains on a scrambled k-NN grid); start from :func:`quadratic_placement`
    for the global layout, as :func:`placement_report` does. The placement returned is the
    best seen at the end of a sweep (annealing may end above it); ``cost`` lists every
    sweep.

    Args:
        graph: a networkx graph (``weight``, node ``pos``, ``metric`` / ``period_*`` graph
            attributes), a :class:`~colgraph.geometry.Geometry` or ``EdgeArrays``.
        sites: ``[S, D]`` site positions, ``S >= N``; default: the columns' own positions
            (columns permute among them).
        start: ``[N]`` the site index of each column to start from; default: the site
            nearest each column's position (one-to-one, :func:`assign_sites`).
        cost_power: ``p > 0``.
        pinned: columns that do not move (indices, boolean mask or area name(s)).
        within: swaps only between columns of the same label: ``"area"`` (the node
            attribute, comma-separated names taken whole) or ``[N]`` labels. Moves onto
            empty sites are then not proposed.
        method: ``"greedy"`` or ``"anneal"``.
        sweeps: number of sweeps.
        temperature: ``anneal`` only: ``T0`` or ``(T0, T_end)``, geometric from ``T0`` at the
            first sweep to ``T_end`` at the last; default ``T0`` = the median cost increase
            of the first batch's uphill proposals, ``T_end = T0 / 1000``.
        neighbours: candidate sites per proposal.
        batches: batches per sweep (more: fewer conflicts, less vectorisation).
        seed: the random seed.

    Example:
        >>> import numpy as np
        >>> from colgraph.geometry import grid, knn
        >>> geo = grid(8, wiring=knn(8))
        >>> start = np.random.default_rng(0).permutation(64)   # scrambled
        >>> out = swap_placement(geo, start=start, sweeps=10)
        >>> out.cost[-1] < 0.75 * out.cost[0]   # local swaps alone: a local optimum
        True
    """
    p = _power(cost_power)
    if method not in ("greedy", "anneal"):
        raise ValueError(f"Unknown method '{method}'. Choices: greedy, anneal.")
    sweeps = _integer("sweeps", sweeps, 0, "the number of passes over the columns, e.g. 20")
    neighbours = _integer("neighbours", neighbours, 1, "candidate sites per swap, e.g. 8")
    batches = _integer("batches", batches, 1, "batches per sweep, e.g. 8")
    seed = _integer("seed", seed, 0, "the random seed")
    t0, t1 = _schedule(temperature, method)
    g = _graph(graph, "swap_placement")
    if sites is None:
        site_pos = _require_pos(g, None, "swap_placement with sites=None")
    else:
        site_pos = _check_sites(sites, g.n, None if g.pos is None else g.pos.shape[1])
    pin = _pinned(pinned, g)
    _check_movable(pin)
    label = _labels(within, g)
    site = _start(start, g, site_pos, pin)
    return _swaps(g, site_pos, site, p, pin, label, method, sweeps, (t0, t1), neighbours,
                  batches, np.random.default_rng(seed))


def _schedule(temperature: Any, method: str) -> tuple[float | None, float | None]:
    if temperature is None:
        return None, None
    if method != "anneal":
        raise ValueError("temperature is read by method='anneal' only; drop it or set "
                         "method='anneal'.")
    t = (temperature, temperature / 1000) if isinstance(temperature, (int, float)) \
        and not isinstance(temperature, bool) else tuple(temperature) \
        if isinstance(temperature, (tuple, list)) else ()
    if len(t) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                              and math.isfinite(v) and v > 0 for v in t):
        raise ValueError(f"temperature must be T0 > 0 or (T0, T_end) with both > 0 (got "
                         f"{temperature!r}), in units of wire.")
    return float(t[0]), float(t[1])


def _labels(within: Any, g: _Graph) -> np.ndarray | None:
    if within is None:
        return None
    if isinstance(within, str):
        if within != "area":
            raise ValueError(f"within must be None, 'area' or [N] labels (got {within!r}).")
        if not g.areas:
            raise ValueError("within='area' needs the node attribute 'area', but no node has "
                             "one. Pass within=[N] labels, or within=None.")
        member: list[list[str]] = [[] for _ in range(g.n)]
        for name in sorted(g.areas):
            for i in g.areas[name]:
                member[i].append(name)
        within = [",".join(m) for m in member]
    lab = np.asarray(within)
    if lab.shape != (g.n,):
        raise ValueError(f"Expected within to hold one label per column ({g.n}), got shape "
                         f"{list(lab.shape)}.")
    return np.unique(lab, return_inverse=True)[1].astype(np.int64)


def _start(start: Any, g: _Graph, sites: np.ndarray, pin: np.ndarray) -> np.ndarray:
    if start is None:
        x = _require_pos(g, None, "swap_placement with start=None")
        return assign_sites(x, sites, pinned=pin)
    st = np.asarray(start)
    if st.shape != (g.n,) or not np.issubdtype(st.dtype, np.integer):
        raise ValueError(f"Expected start as [{g.n}] integer site indices, got shape "
                         f"{list(st.shape)} of {st.dtype}.")
    if st.min() < 0 or st.max() >= sites.shape[0] or np.unique(st).size != st.size:
        raise ValueError(f"Expected start to give each column its own site in [0, "
                         f"{sites.shape[0] - 1}] (got values {st.min()} .. {st.max()}, "
                         f"{st.size - np.unique(st).size} repeated).")
    return st.astype(np.int64)


def _swaps(g: _Graph, sites: np.ndarray, site: np.ndarray, p: float, pin: np.ndarray,
           label: np.ndarray | None, method: str, sweeps: int, temps, neighbours: int,
           batches: int, rng) -> Placement:
    W = _Wire(g, sites, p)
    near = _near_sites(sites, g.period, neighbours)
    site = site.copy()
    occupant = np.full(sites.shape[0], -1, np.int64)
    occupant[site] = np.arange(g.n)
    movable = np.flatnonzero(~pin)
    cost, accepted, temperature = [W.cost(site)], [], []
    best = site.copy()
    t0, t1 = temps
    tol = 1e-12 * max(cost[0], 1e-300)
    for sweep in range(sweeps):
        applied = 0
        T = 0.0
        if method == "anneal" and t0 is not None:
            T = t0 * (t1 / t0) ** (sweep / max(sweeps - 1, 1))
        for a in np.array_split(rng.permutation(movable), batches):
            if a.size == 0:
                continue
            s = site[a]
            t = near[s, rng.integers(near.shape[1], size=a.size)]
            b = occupant[t]
            ok = (b < 0) | ~pin[np.maximum(b, 0)]
            if label is not None:
                ok &= (b >= 0) & (label[a] == label[np.maximum(b, 0)])
            a, s, t, b = a[ok], s[ok], t[ok], b[ok]
            delta, owner, touched = W.deltas(site, a, b, s, t)
            if method == "anneal":
                if t0 is None:  # default start: the median uphill step of the first batch
                    up = delta[delta > tol]
                    t0 = float(np.median(up)) if up.size else 1.0
                    t1 = t0 / 1000
                    T = t0
                go = (delta < -tol) | (rng.random(a.size) < np.exp(-np.maximum(delta, 0)
                                                                    / max(T, 1e-300)))
            else:
                go = delta < -tol
            idx = np.flatnonzero(go)
            sel = np.isin(owner, idx)
            remap = np.full(a.size, -1, np.int64)
            remap[idx] = np.arange(idx.size)
            keep = _keep_disjoint(g.n, a[idx], b[idx], t[idx], remap[owner[sel]],
                                  touched[sel], rng)
            idx = idx[keep]
            a, b, s, t = a[idx], b[idx], s[idx], t[idx]
            site[a] = t
            occupant[t] = a
            has = b >= 0
            site[b[has]] = s[has]
            occupant[s] = np.where(has, b, -1)
            applied += idx.size
        cost.append(W.cost(site))
        accepted.append(int(applied))
        temperature.append(float(T))
        if cost[-1] < min(cost[:-1]):
            best = site.copy()
    return Placement(sites[best], best, cost, accepted, temperature)


# ---------------------------------------------------------------------- one migration step
def migration_step(index: Any, weight: Any, pos: Any, metric: str = "euclidean",
                   period: Any = None, areas: dict | None = None, pinned: Any = None,
                   within: Any = None, method: str = "greedy", sweeps: int = 2,
                   temperature: float | None = None, cost_power: float = 1.0,
                   neighbours: int = 8, seed: int = 0) -> Placement:
    """Where one migration step moves a sheet's columns: its edges ``index [2, E]`` weighted
    by ``weight [E]`` (e.g. the running attention), the columns' current positions ``pos
    [N, D]`` as both the sites and the start (columns permute among their own places).

    ``greedy`` / ``anneal``: :func:`swap_placement` from where the columns are (``anneal``
    at the constant ``temperature``, in units of wire); ``quadratic``: also greedy swaps
    from the snapped :func:`quadratic_placement` (pinned: ``pinned``, else the extreme
    columns along each axis; one more per unpinned connected component), keeping whichever
    ends with less wire. The result is never worse than staying (``Placement.site[i]``: the
    place column ``i`` moves to, i.e. where column ``site[i]`` is now; ``cost[0]`` the wire
    before). Array inputs, no networkx: the training loop calls it on the whole sheet
    (:class:`colgraph.plasticity.Migration`).
    """
    import torch

    ei = torch.as_tensor(index).cpu().numpy()
    x = _positions(pos, None, "positions 'pos'", "Pass one row of coordinates per column.")
    n = x.shape[0]
    w = np.asarray(weight, dtype=float).ravel()
    if ei.ndim != 2 or ei.shape[0] != 2 or w.shape != (ei.shape[1],):
        raise ValueError(f"Expected index [2, E] and weight [E], got {list(ei.shape)} and "
                         f"{list(w.shape)}.")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("Expected finite weights >= 0 (the wire is a sum of weight x "
                         "length).")
    g = _Graph(n, ei[0].astype(np.int64), ei[1].astype(np.int64), w, x, metric,
               None if period is None else np.asarray(period, dtype=float),
               {k: np.asarray(v) for k, v in (areas or {}).items()}, list(range(n)))
    if method not in ("greedy", "anneal", "quadratic"):
        raise ValueError(f"Unknown method '{method}'. Choices: greedy, anneal, quadratic.")
    p = _power(cost_power)
    pin = _pinned(pinned, g)
    _check_movable(pin)
    label = _labels(within, g)
    if label is not None and method == "quadratic":
        raise ValueError("method='quadratic' places columns anywhere on the sheet, across "
                         "areas; with within='area' use method='greedy' or 'anneal'.")
    rng = np.random.default_rng(seed)
    swap = "anneal" if method == "anneal" else "greedy"
    temps = (temperature, temperature) if method == "anneal" and temperature else (None, None)
    here = np.arange(n)
    best = _swaps(g, x, here, p, pin, label, swap, sweeps, temps, neighbours, 8, rng)
    if method == "quadratic":
        W = _symmetric(g)
        if W.nnz:
            qpin, _ = _auto_pins(g, W, pin)
            q_site = assign_sites(_solve(W, x, qpin), x, pinned=qpin)
            q = _swaps(g, x, q_site, p, pin, label, "greedy", sweeps, (None, None),
                       neighbours, 8, rng)
            if min(q.cost) < min(best.cost):
                q.cost = [best.cost[0], *q.cost]  # the wire before the step, then q's
                best = q
    return best


# ---------------------------------------------------------------------- the report
def _auto_pins(g: _Graph, W, pin: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Pins for the report: the given ones, or else the columns with the smallest and
    largest coordinate along each axis; plus the strongest column of each connected
    component without a pin (its own position: the quadratic solve needs one)."""
    from scipy.sparse.csgraph import connected_components

    notes = []
    pin = pin.copy()
    if not pin.any():
        extremes = np.unique(np.concatenate([g.pos.argmin(0), g.pos.argmax(0)]))
        pin[extremes] = True
        notes.append(f"pinned: none given; the {extremes.size} columns at the smallest and "
                     f"largest coordinate along each axis")
    k, label = connected_components(W, directed=False)
    has = np.zeros(k, bool)
    has[label[pin]] = True
    if not has.all():
        strength = np.asarray(W.sum(1)).ravel()
        order = np.lexsort((-strength, label))  # strongest first within each component
        first = order[np.unique(label[order], return_index=True)[1]]
        extra = first[~has[label[first]]]
        pin[extra] = True
        notes.append(f"pinned: {extra.size} connected component(s) without a pinned column "
                     f"(isolated columns included) each keep their strongest column in place")
    return pin, notes


def _compare(actual: float, quadratic: float, optimal: float, random: np.ndarray,
             what: str, notes: list[str]) -> dict[str, Any]:
    mean, std = float(random.mean()), float(random.std(ddof=1)) if random.size > 1 else None
    z = (actual - mean) / std if std else None
    if std is not None and not std:
        notes.append(f"{what}: z undefined: every random placement has the same wire")
    span = mean - optimal
    excess = (actual - optimal) / span if span > 0 else None
    return {"actual": actual, "quadratic": quadratic, "optimal": optimal,
            "random_mean": mean, "random_std": std, "z": z,
            "actual_over_optimal": actual / optimal if optimal > 0 else None,
            "excess": excess}


def placement_report(G: Any, n_random: int = 20, method: str = "greedy", pinned: Any = None,
                     cost_power: float = 1.0, sweeps: int = 20, seed: int = 0,
                     return_placement: bool = False):
    """How close is a connectome's placement to the wire-saving optimum?

    The wire ``sum w * len ** p`` of the columns where they are (``actual``), of the best
    placement found over the same sites (the columns' own positions): quadratic placement
    (:func:`quadratic_placement`, snapped) refined by :func:`swap_placement` (``method``,
    ``sweeps``), and swaps from the actual placement too, the lower of the two is
    ``optimal`` (an upper bound of the true optimum), and of ``n_random`` random
    placements of the columns over the sites. Overall and per area (node attribute
    ``area``, comma-separated: each named area's internal edges, under the same global
    placements).

    Returns a JSON-ready dict: ``wire`` and ``areas[name]`` each hold ``actual``,
    ``quadratic`` (the snapped quadratic placement, before swaps), ``optimal``,
    ``random_mean``, ``random_std``, ``z = (actual - random_mean) / random_std`` (negative:
    less wire than chance), ``actual_over_optimal`` and ``excess = (actual - optimal) /
    (random_mean - optimal)`` (0: as good as the best found, 1: as bad as random); ``None``
    where undefined, with a line in ``notes``. Also ``sweeps`` (the cost per sweep of both
    swap runs), the settings and ``pinned`` (how many, and how chosen: by default the
    extreme columns along each axis). With ``return_placement``: ``(report, Placement)``,
    the best placement, e.g. for :func:`plot_placement`.

    Example:
        >>> from colgraph.geometry import grid, knn
        >>> r = placement_report(grid(8, wiring=knn(8)), n_random=5, sweeps=5)
        >>> r["wire"]["actual"] == r["wire"]["optimal"], r["wire"]["z"] < -10
        (True, True)
    """
    p = _power(cost_power)
    n_random = _integer("n_random", n_random, 2, "random placements for the null, e.g. 20")
    sweeps = _integer("sweeps", sweeps, 0, "swap sweeps, e.g. 20")
    seed = _integer("seed", seed, 0, "the random seed")
    if method not in ("greedy", "anneal"):
        raise ValueError(f"Unknown method '{method}'. Choices: greedy, anneal.")
    g = _graph(G, "placement_report")
    sites = _require_pos(g, None, "placement_report")
    pin = _pinned(pinned, g)
    _check_movable(pin)
    W = _symmetric(g)
    if W.nnz == 0:
        raise ValueError(f"placement_report needs edges between different columns; the graph "
                         f"of {g.n} columns has none, so every placement has zero wire.")
    pin, notes = _auto_pins(g, W, pin)
    _check_movable(pin)
    rng = np.random.default_rng(seed)
    wire_of = _Wire(g, sites, p)
    actual_site = np.arange(g.n)
    q_site = assign_sites(_solve(W, sites, pin), sites, pinned=pin)
    runs = {name: _swaps(g, sites, start, p, pin, None, method, sweeps, (None, None), 8, 8, rng)
            for name, start in (("from_quadratic", q_site), ("from_actual", actual_site))}
    best_name = min(runs, key=lambda k: min(runs[k].cost))
    best = runs[best_name]
    randoms = [rng.permutation(sites.shape[0])[:g.n] for _ in range(n_random)]
    scopes = {"wire": None}
    scopes.update({name: idx for name, idx in sorted(g.areas.items())})
    out: dict[str, Any] = {"cost_power": p, "metric": g.metric, "method": method,
                           "sweeps": {k: r.cost for k, r in runs.items()},
                           "best_start": best_name, "n_random": n_random,
                           "n_columns": g.n, "n_pairs": int(wire_of.i.size),
                           "pinned": int(pin.sum()), "areas": {}}
    for name, idx in scopes.items():
        if idx is None:
            pairs = None
        else:
            member = np.zeros(g.n, bool)
            member[idx] = True
            pairs = np.flatnonzero(member[wire_of.i] & member[wire_of.j])
            if pairs.size == 0:
                out["areas"][name] = {k: None for k in ("actual", "quadratic", "optimal",
                                                        "random_mean", "random_std", "z",
                                                        "actual_over_optimal", "excess")}
                notes.append(f"area {name}: no edges within the area")
                continue
        values = _compare(wire_of.cost(actual_site, pairs), wire_of.cost(q_site, pairs),
                          wire_of.cost(best.site, pairs),
                          np.array([wire_of.cost(r, pairs) for r in randoms]),
                          "wire" if idx is None else f"area {name}", notes)
        if idx is None:
            out["wire"] = values
        else:
            out["areas"][name] = values
    out["notes"] = notes
    return (out, best) if return_placement else out


# ---------------------------------------------------------------------- the figure
def _colours(pos: np.ndarray) -> np.ndarray:
    """An RGB colour per column from where it is drawn (``[N, 2]``, or the first two main
    axes of ``[N, 3]``): red grows along x, blue along y, green with neither, so every
    region of the sheet has its own colour."""
    from ..geometry.base import plane_axes

    xy = pos[:, plane_axes(pos)] if pos.shape[1] > 2 else pos
    if xy.shape[1] == 1:
        xy = np.concatenate([xy, np.zeros_like(xy)], 1)
    lo, span = xy.min(0), np.ptp(xy, axis=0)
    u = (xy - lo) / np.where(span > 0, span, 1.0)
    return np.clip(np.stack([u[:, 0], 1 - 0.5 * (u[:, 0] + u[:, 1]), u[:, 1]], 1), 0, 1)


def _areas_arg(areas: Any, n: int) -> dict[str, np.ndarray]:
    """``areas`` of :func:`plot_placement` as name -> column indices, checked."""
    if areas is None:
        return {}
    if not isinstance(areas, dict):
        raise TypeError(f"Expected areas as a dict of area name -> column indices (e.g. "
                        f"colgraph.connectome.arrays.arrays(G).areas or geometry.areas), got "
                        f"{type(areas).__name__}.")
    out = {}
    for name, idx in areas.items():
        i = np.asarray(idx).reshape(-1)
        if i.size and (not np.issubdtype(i.dtype, np.integer) or i.min() < 0 or i.max() >= n):
            raise ValueError(f"Expected the columns of area '{name}' as integer indices in "
                             f"[0, {n - 1}] (one per row of before_pos), got {i[:5].tolist()}"
                             f"{' ...' if i.size > 5 else ''}. Index columns in node order.")
        out[str(name)] = i.astype(np.int64)
    return out


def plot_placement(before_pos: Any, after_pos: Any, path: Any, cost: Any = None,
                   title: str | None = None, areas: Any = None, colour_by: Any = None,
                   cost_label: str = "sweep") -> None:
    """Draw a placement: the columns before and after, each coloured by its ORIGINAL
    position (``before_pos``, or ``colour_by`` ``[N, D]``, e.g. the sheet as built when
    ``before_pos`` is a scrambled start; red along x, blue along y, as drawn), so where a
    colour lands on the right shows where those columns migrated; with ``cost`` (e.g.
    ``Placement.cost``, or a run's length at each migration), a third panel with the wire
    over ``cost_label`` steps. Writes a PNG to ``path``.

    The sheet is drawn as the connectome's sheet figures draw it
    (:func:`~colgraph.connectome.figures.layout`): 1-D / 2-D sheets as they are, a 3-D
    sheet of flat ``areas`` (name -> column indices, e.g. a stack's layers:
    ``colgraph.connectome.arrays.arrays(G).areas`` or ``geometry.areas``) area by area side
    by side, other 3-D sheets in 3-D. Each position after is drawn in the frame of the area
    whose column is nearest to it (the sites of :func:`placement_report` are the columns'
    own positions).

    Example:
        >>> import numpy as np, tempfile, os
        >>> before = np.random.default_rng(0).random((50, 2))
        >>> path = os.path.join(tempfile.mkdtemp(), "placement.png")
        >>> plot_placement(before, before[::-1], path, cost=[3.0, 2.0, 1.5])
        >>> os.path.exists(path)
        True
    """
    from .figures import _axes, _label_sheet, _layout, _plt
    from .flow import plain_areas

    before = _positions(before_pos, None, "before_pos", "Pass one row per column.")
    after = _positions(after_pos, before.shape[0], "after_pos",
                       "Pass one row per column, in the order of before_pos.")
    if after.shape[1] != before.shape[1]:
        raise ValueError(f"Expected after_pos of dimension {before.shape[1]} (as before_pos), "
                         f"got {after.shape[1]}.")
    areas = _areas_arg(areas, before.shape[0])
    drawn = {}
    drawn["before"], kind = _layout(before, areas)
    drawn["after"], _ = _layout(before, areas, at=after)
    if colour_by is None:
        colour = _colours(drawn["before"])
    else:
        original = _positions(colour_by, before.shape[0], "colour_by",
                              "Pass one row per column, in the order of before_pos.")
        colour = _colours(_layout(original, areas)[0])
    names = plain_areas(areas)
    plt = _plt()
    panels = 3 if cost is not None else 2
    fig = plt.figure(figsize=((6.0 if kind == "areas" else 4.2) * panels, 4.0))
    size = max(2.0, min(30.0, 4000.0 / before.shape[0]))
    for i, name in enumerate(("before", "after")):
        ax = _axes(fig, kind, 1, panels, i + 1)
        xy = drawn[name]
        ax.scatter(*xy.T, c=colour, s=size, linewidths=0, rasterized=before.shape[0] > 5000)
        ax.set_title(f"{name} (colour: position {'before' if colour_by is None else 'as built'})")
        # area names where the areas' places are (columns may have moved between areas)
        _label_sheet(ax, areas, drawn["before"], names, kind)
    if cost is not None:
        ax = fig.add_subplot(1, panels, 3)
        c = np.asarray(cost, dtype=float)
        ax.plot(np.arange(c.size), c, marker="o", ms=3)
        ax.set_xlabel(cost_label)
        ax.set_ylabel("wire")
        ax.set_title(f"wire over {cost_label.split(' (')[0]}s")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""Edge arrays of a connectome graph and the null models the analysis compares with.

Everything here is numpy / scipy.sparse over edge arrays (``O(E)`` per pass); see
:mod:`colgraph.connectome.analysis` for how directedness and weights are handled.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["EdgeArrays", "arrays", "check_analysable", "check_settings", "ALIASES"]


ALIASES = ("input", "output", "sheet")


@dataclass
class EdgeArrays:
    nodes: list
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    length: np.ndarray
    pos: np.ndarray  # (N, D)
    areas: dict[str, np.ndarray]
    weight_name: str = "weight"  # what the weights are (the graph's 'weight' description)
    notes: tuple[str, ...] = ()  # what was done to the graph to analyse it (undirected)
    metric: str = "euclidean"  # how lengths between positions are measured (the geometry's)
    period: np.ndarray | None = None  # (D,) box size per dimension on a torus, inf if open

    @property
    def n(self) -> int:
        return len(self.nodes)


UNDIRECTED_NOTE = ("the graph is undirected: each edge u - v is analysed as u -> v and "
                   "v -> u (G.to_directed()), so reciprocity is 1 and density counts both "
                   "directions; pass a DiGraph to give the directions yourself")


def _directed(G):
    """``G`` as a simple directed graph: an undirected graph gets both directions (with a
    warning); parallel edges of a multigraph are refused."""
    import networkx as nx

    if not isinstance(G, nx.Graph):
        raise TypeError(f"Expected a networkx graph (e.g. colgraph.connectome.to_networkx(run) "
                        f"or read_connectome(path)), got {type(G).__name__}.")
    notes: tuple[str, ...] = ()
    if not G.is_directed():
        warnings.warn(f"The connectome {G.graph.get('name', '')!r}: {UNDIRECTED_NOTE}.",
                      UserWarning, stacklevel=4)
        G, notes = G.to_directed(), (UNDIRECTED_NOTE,)
    if G.is_multigraph():
        pairs = [(u, v) for u, v, k in G.edges(keys=True) if k != next(iter(G[u][v]))]
        if pairs:
            u, v = pairs[0]
            raise ValueError(f"Expected one edge per (source, target) pair, but the "
                             f"{type(G).__name__} has {len(pairs)} parallel edge(s) (e.g. "
                             f"{u!r} -> {v!r} {len(G[u][v])} times). Merge them first "
                             f"(e.g. into one edge whose weight is their sum), or pass "
                             f"nx.DiGraph(G) to keep one of each.")
        G = nx.DiGraph(G)
    return G, notes


def _attribute(e: list, key: str, default: float) -> np.ndarray:
    """Edge attribute ``key`` as floats: every edge has it, or none (then ``default``)."""
    values = [d.get(key) for _, _, d in e]
    missing = sum(v is None for v in values)
    if missing == len(values):
        return np.full(len(values), default)
    if missing:
        i = next(i for i, v in enumerate(values) if v is None)
        raise ValueError(f"Expected every edge or none to have a '{key}', but {missing} of "
                         f"{len(values)} edges have none (e.g. {e[i][0]!r} -> {e[i][1]!r}). "
                         f"Give every edge a '{key}'" + (" (or none: every edge then weighs "
                                                         "1)." if key == "weight" else "."))
    bad = next((i for i, v in enumerate(values) if isinstance(v, (str, bytes, bool))
                or not isinstance(v, (int, float, np.integer, np.floating))), None)
    if bad is not None:
        v = values[bad]
        raise TypeError(f"Expected numeric edge '{key}' values, but edge {e[bad][0]!r} -> "
                        f"{e[bad][1]!r} has {v!r} ({type(v).__name__}). Convert them, e.g. "
                        f"d['{key}'] = float(d['{key}']) for each edge's data d.")
    x = np.array(values, dtype=float)
    bad_values = ~np.isfinite(x) | (x < 0)
    if bad_values.any():
        i = int(np.flatnonzero(bad_values)[0])
        raise ValueError(f"Expected finite edge '{key}' values >= 0, but {int(bad_values.sum())} "
                         f"are not (e.g. {e[i][0]!r} -> {e[i][1]!r}: {float(x[i])}). Drop or "
                         f"fix those edges" + (" (NaN weights come from a diverged model)."
                                              if key == "weight" else "."))
    return x


def _positions(G, nodes: list) -> np.ndarray:
    """Node ``pos`` as an ``(N, D)`` float array: every node has one of the same size, or none
    (then zeros ``(N, 1)``)."""
    pos = [G.nodes[v].get("pos") for v in nodes]
    missing = [v for v, p in zip(nodes, pos) if p is None]
    if len(missing) == len(nodes):
        return np.zeros((len(nodes), 1))
    if missing:
        raise ValueError(f"Expected every node or none to have a 'pos', but {len(missing)} of "
                         f"{len(nodes)} have none (e.g. {missing[0]!r}).")
    for v, p in zip(nodes, pos):
        if (isinstance(p, (str, bytes)) or not hasattr(p, "__len__") or len(p) != len(pos[0])
                or not all(isinstance(c, (int, float, np.integer, np.floating))
                           and not isinstance(c, bool) for c in p)):
            raise ValueError(f"Expected each node's 'pos' to be a tuple of numbers, all of one "
                             f"length, but node {v!r} has {p!r} (node {nodes[0]!r}: "
                             f"{pos[0]!r}).")
    x = np.array(pos, dtype=float)
    if not np.isfinite(x).all():
        v = nodes[int(np.flatnonzero(~np.isfinite(x).all(1))[0])]
        raise ValueError(f"Expected finite node positions, but node {v!r} has "
                         f"{G.nodes[v]['pos']!r}. Fix or drop it.")
    return x


def arrays(G) -> EdgeArrays:
    """Edge and node arrays of a connectome graph, checked: ``weight`` (default 1) and
    ``length`` (default none: NaN) numbers >= 0 on every edge or none, node ``pos`` of one
    size on every node or none; an undirected graph is analysed with both directions of
    each edge (with a warning), a multigraph's parallel edges are refused."""
    G, notes = _directed(G)
    nodes = list(G.nodes)
    index = {v: i for i, v in enumerate(nodes)}
    e = list(G.edges(data=True))
    src = np.fromiter((index[s] for s, _, _ in e), np.int64, len(e))
    dst = np.fromiter((index[t] for _, t, _ in e), np.int64, len(e))
    weight = _attribute(e, "weight", 1.0)
    length = _attribute(e, "length", np.nan)
    pos = _positions(G, nodes)
    areas: dict[str, list[int]] = {}
    for i, v in enumerate(nodes):
        for a in str(G.nodes[v].get("area", "") or "").split(","):
            if a:
                areas.setdefault(a, []).append(i)
    metric, period = _metric(G, pos.shape[1])
    return EdgeArrays(nodes, src, dst, weight, length, pos,
                      {k: np.array(v) for k, v in areas.items()},
                      str(G.graph.get("weight", "weight")), notes, metric, period)


def _metric(G, dims: int) -> tuple[str, np.ndarray | None]:
    """The sheet's metric from the graph attributes :func:`to_networkx` writes: ``metric``
    (``euclidean`` / ``sphere``) and ``period_x``, ``period_y``, ... (a torus)."""
    from ..geometry.base import METRICS

    metric = G.graph.get("metric", "euclidean")
    if metric not in METRICS:
        raise ValueError(f"The graph's 'metric' attribute is {metric!r}; expected one of "
                         f"{', '.join(METRICS)} (or none: euclidean).")
    keys = [f"period_{c}" for c in "xyz"[:dims]]
    if not any(k in G.graph for k in keys):
        return metric, None
    try:
        period = np.array([float(G.graph.get(k, np.inf)) for k in keys])
    except (TypeError, ValueError):
        period = np.array([np.nan])
    if np.isnan(period).any() or (period <= 0).any():
        raise ValueError(f"The graph's period attributes ({', '.join(keys)}) must be > 0 "
                         f"(inf for an open dimension), got {period.tolist()}.")
    return metric, period


def check_analysable(a: EdgeArrays) -> EdgeArrays:
    """Refuse a graph no network measure is defined on: fewer than 2 columns, no edge
    between two different columns, or no weight on those edges (``a`` checked as
    :func:`arrays` checks a graph's values, for arrays built by hand)."""
    n = a.n
    if a.src.shape != a.dst.shape or a.weight.shape != a.src.shape or \
            a.length.shape != a.src.shape:
        raise ValueError(f"Expected src, dst, weight and length of one shape [E] (got "
                         f"{a.src.shape}, {a.dst.shape}, {a.weight.shape}, {a.length.shape}).")
    if a.src.size and (min(a.src.min(), a.dst.min()) < 0 or max(a.src.max(), a.dst.max()) >= n):
        raise ValueError(f"Expected src / dst in [0, {n - 1}] for {n} nodes (got "
                         f"{min(a.src.min(), a.dst.min())} .. {max(a.src.max(), a.dst.max())}).")
    if not (np.isfinite(a.weight) & (a.weight >= 0)).all():
        raise ValueError("Expected finite edge weights >= 0 (some are NaN, inf or negative).")
    between = a.src != a.dst
    if n < 2 or not between.any():
        raise ValueError(f"Cannot analyse a connectome of {n} column(s) and "
                         f"{int(between.sum())} edge(s) between different columns (plus "
                         f"{int((~between).sum())} self-loop(s)): degrees, paths, modules and "
                         f"the rest need at least 2 columns and 1 edge between them. Export "
                         f"with a lower threshold / larger top_k, or check the graph's source.")
    if not a.weight[between].sum() > 0:
        raise ValueError(f"Cannot analyse a connectome whose {int(between.sum())} edge(s) "
                         f"between different columns all have weight 0 (weight = "
                         f"{a.weight_name}): strengths, modularity and reciprocity divide by "
                         f"the total weight. Use another weight (e.g. the 'bias' prior) or a "
                         f"graph with weights > 0.")
    return a


def check_settings(n_null: Any = 0, edge_fraction: Any = 0.5, n_sources: Any = 1,
                   seed: Any = 0) -> None:
    """Refuse analysis settings out of range, before any work: ``n_null`` an int >= 0,
    ``edge_fraction`` in (0, 1], ``n_sources`` an int >= 1, ``seed`` an int >= 0."""
    def integer(name: str, value: Any, low: int, what: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low} (got {value!r}): {what}.")

    integer("n_null", n_null, 0, "the number of degree-preserving null models, e.g. 3")
    integer("n_sources", n_sources, 1, "BFS sources sampled for path lengths, e.g. 500")
    integer("seed", seed, 0, "the seed of the null models and Louvain")
    if isinstance(edge_fraction, bool) or not isinstance(edge_fraction, (int, float, np.number)) \
            or not 0.0 < edge_fraction <= 1.0:
        raise ValueError(f"edge_fraction must be in (0, 1] (got {edge_fraction!r}): the share "
                         f"of the strongest symmetrised edges kept, e.g. 0.5.")


def _a(G_or_arrays) -> EdgeArrays:
    a = G_or_arrays if isinstance(G_or_arrays, EdgeArrays) else arrays(G_or_arrays)
    return check_analysable(a)


def _summary(x: np.ndarray) -> dict[str, float]:
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()),
            "max": float(x.max())} if x.size else {}


def _config_model_directed(a: EdgeArrays, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed configuration model: shuffle targets; keeps every in- and out-degree."""
    dst = rng.permutation(a.dst)
    key = a.src * a.n + dst
    _, first = np.unique(key, return_index=True)
    keep = np.zeros(key.size, bool)
    keep[first] = True
    keep &= a.src != dst
    return a.src[keep], dst[keep], a.weight[keep]


def _symmetric(n: int, src, dst, w):
    import scipy.sparse as sp

    W = sp.csr_matrix((w, (src, dst)), shape=(n, n))
    return (W + W.T).tocsr()


def _threshold(S, edge_fraction: float):
    """Binary undirected graph of the strongest ``edge_fraction`` of symmetric edges."""
    import scipy.sparse as sp

    check_settings(edge_fraction=edge_fraction)
    upper = sp.triu(S, k=1).tocoo()
    keep = max(1, int(round(edge_fraction * upper.nnz)))
    top = np.argsort(-upper.data, kind="stable")[:keep]
    r, c = upper.row[top], upper.col[top]
    A = sp.csr_matrix((np.ones(r.size), (r, c)), shape=S.shape)
    return (A + A.T).tocsr()


def _random_undirected(A, rng):
    """Degree-preserving random graph (configuration model, simple graph)."""
    import scipy.sparse as sp

    deg = np.asarray(A.sum(1)).ravel().astype(np.int64)
    stubs = rng.permutation(np.repeat(np.arange(A.shape[0]), deg))
    if stubs.size % 2:
        stubs = stubs[:-1]
    r, c = stubs[0::2], stubs[1::2]
    ok = r != c
    R = sp.csr_matrix((np.ones(ok.sum()), (r[ok], c[ok])), shape=A.shape)
    R = R + R.T
    R.data[:] = 1.0
    return R.tocsr()

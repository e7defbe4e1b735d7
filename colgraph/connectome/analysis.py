"""Network-neuroscience analysis of a connectome (a ``DiGraph`` with ``weight``, ``length``
edge attributes and ``pos``, ``area`` node attributes, as :func:`to_networkx` makes).

Choices, explicit because networkx's small-world and rich-club functions reject directed
graphs and ignore weights:

* **Weighted, directed** where definitions exist: strengths, weighted reciprocity
  (``sum min(w_ij, w_ji) / sum w_ij``), directed weighted clustering (Fagiolo),
  area-to-area flow, wiring cost, EDR fit, receptive fields, weight-distance correlation.
* **Symmetrised and weighted** for modularity: ``w_ij + w_ji``, Louvain (networkx, seeded),
  compared with degree-preserving null models (directed configuration model: targets of
  the edges shuffled, weights travel with their edges; self-loops / repeats dropped).
* **Symmetrised, thresholded to a density, binary** for clustering, path length,
  small-world sigma / omega and the rich club: the strongest ``edge_fraction`` of the
  symmetrised edges is kept. References: a degree-preserving random graph (configuration
  model) for ``C_rand`` / ``L_rand`` and the normalised rich club; a ring lattice with the
  same mean degree ``k`` for ``C_latt = 3 (k - 2) / (4 (k - 1))``. Path lengths are
  averaged over BFS from up to ``n_sources`` sampled columns (exact for small graphs).

Everything runs on edge arrays with numpy / scipy.sparse (``O(E)`` per pass): a 10^4
column connectome is analysed in seconds (see BENCHMARKS.md).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["EdgeArrays", "arrays", "degree_stats", "reciprocity", "edr_fit", "wiring",
           "weighted_clustering",
           "area_flow", "disjoint_areas", "modularity", "small_world", "rich_club", "weight_distance",
           "receptive_fields", "node_metrics", "analyze", "ALIASES"]

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

    @property
    def n(self) -> int:
        return len(self.nodes)


def arrays(G) -> EdgeArrays:
    """Edge and node arrays of a connectome graph (``weight`` defaults to 1)."""
    nodes = list(G.nodes)
    index = {v: i for i, v in enumerate(nodes)}
    e = list(G.edges(data=True))
    src = np.fromiter((index[s] for s, _, _ in e), np.int64, len(e))
    dst = np.fromiter((index[t] for _, t, _ in e), np.int64, len(e))
    weight = np.fromiter((d.get("weight", 1.0) for _, _, d in e), float, len(e))
    length = np.fromiter((d.get("length", np.nan) for _, _, d in e), float, len(e))
    pos = np.array([G.nodes[v].get("pos", (0.0,)) for v in nodes], dtype=float)
    areas: dict[str, list[int]] = {}
    for i, v in enumerate(nodes):
        for a in str(G.nodes[v].get("area", "") or "").split(","):
            if a:
                areas.setdefault(a, []).append(i)
    return EdgeArrays(nodes, src, dst, weight, length, pos,
                      {k: np.array(v) for k, v in areas.items()},
                      str(G.graph.get("weight", "weight")))


def _a(G_or_arrays) -> EdgeArrays:
    return G_or_arrays if isinstance(G_or_arrays, EdgeArrays) else arrays(G_or_arrays)


def _summary(x: np.ndarray) -> dict[str, float]:
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()),
            "max": float(x.max())} if x.size else {}


# ---------------------------------------------------------------------- degrees
def degree_stats(G) -> dict[str, Any]:
    """In / out degree and strength (sum of weights) distributions."""
    a = _a(G)
    out = {}
    for name, idx in (("in", a.dst), ("out", a.src)):
        out[f"{name}_degree"] = _summary(np.bincount(idx, minlength=a.n).astype(float))
        out[f"{name}_strength"] = _summary(np.bincount(idx, a.weight, minlength=a.n))
    return out


def reciprocity(G) -> dict[str, float]:
    """Fraction of edges whose reverse exists, and the weighted version
    ``sum_ij min(w_ij, w_ji) / sum_ij w_ij``."""
    a = _a(G)
    key = a.src * a.n + a.dst
    rkey = a.dst * a.n + a.src
    order = np.argsort(key)
    pos = np.searchsorted(key[order], rkey)
    pos = np.minimum(pos, key.size - 1)
    has = key[order][pos] == rkey
    w_rev = np.where(has, a.weight[order][pos], 0.0)
    return {"reciprocity": float(has.mean()) if key.size else 0.0,
            "weighted_reciprocity": float(np.minimum(a.weight, w_rev).sum() / a.weight.sum())}


# ---------------------------------------------------------------------- lengths
def edr_fit(G, bins: int = 30) -> dict[str, Any]:
    """Fit the exponential distance rule to the weight-weighted edge-length distribution.

    ``P(length) ~ exp(-(length - l_min) / lambda)``: ``lambda`` by weighted maximum
    likelihood (``weighted mean - l_min``); goodness of fit as the Kolmogorov-Smirnov
    distance between the weighted empirical and fitted CDFs, and R^2 of the straight-line
    fit to the log density histogram.
    """
    a = _a(G)
    ok = np.isfinite(a.length) & (a.length > 0) & (a.weight > 0)
    ln, w = a.length[ok], a.weight[ok]
    if ln.size < 2:
        return {"lambda": float("nan"), "ks": float("nan"), "r2": float("nan")}
    l_min = float(ln.min())
    lam = max(float(np.average(ln, weights=w)) - l_min, 1e-12)
    order = np.argsort(ln)
    cdf = np.cumsum(w[order]) / w.sum()
    fitted = 1 - np.exp(-(ln[order] - l_min) / lam)
    ks = float(np.abs(cdf - fitted).max())
    density, edges = np.histogram(ln, bins=bins, weights=w, density=True)
    centres = (edges[:-1] + edges[1:]) / 2
    nz = density > 0
    r2 = float("nan")
    if nz.sum() > 2:
        y = np.log(density[nz])
        coef = np.polyfit(centres[nz], y, 1)
        resid = y - np.polyval(coef, centres[nz])
        r2 = float(1 - resid.var() / max(y.var(), 1e-12))
    return {"lambda": lam, "l_min": l_min, "ks": ks, "r2": r2,
            "mean_length": float(np.average(ln, weights=w)),
            "hist_density": density.tolist(), "hist_edges": edges.tolist()}


def wiring(G) -> dict[str, float]:
    """Total and mean-per-column wiring cost ``sum_e weight_e * length_e``."""
    a = _a(G)
    ok = np.isfinite(a.length)
    total = float((a.weight[ok] * a.length[ok]).sum())
    return {"wiring_total": total, "wiring_per_column": total / max(a.n, 1)}


def weight_distance(G) -> dict[str, float]:
    """Spearman correlation between edge weight and edge length."""
    from scipy.stats import spearmanr

    a = _a(G)
    ok = np.isfinite(a.length)
    if ok.sum() < 3 or np.ptp(a.weight[ok]) == 0 or np.ptp(a.length[ok]) == 0:
        return {"weight_distance_rho": float("nan"), "weight_distance_p": float("nan")}
    rho, p = spearmanr(a.weight[ok], a.length[ok])
    return {"weight_distance_rho": float(rho), "weight_distance_p": float(p)}


def receptive_fields(G) -> np.ndarray:
    """Receptive-field size per column: weight-averaged length of its incoming edges."""
    a = _a(G)
    ok = np.isfinite(a.length)
    num = np.bincount(a.dst[ok], a.weight[ok] * a.length[ok], minlength=a.n)
    den = np.bincount(a.dst[ok], a.weight[ok], minlength=a.n)
    return np.divide(num, den, out=np.full(a.n, np.nan), where=den > 0)


def node_metrics(G, community: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-column measures in node order (column order for colgraph's connectomes):
    ``in_degree``, ``out_degree``, ``in_strength``, ``out_strength`` (summed attention),
    ``receptive_field`` (:func:`receptive_fields`) and, with ``community``, the Louvain
    module of each column (``0`` = the largest; see :func:`modularity`).

    Write them next to a surface with :func:`colgraph.geometry.write_vertex_data`, or as
    node attributes with :func:`colgraph.connectome.write_connectome`.
    """
    a = _a(G)
    out = {"in_degree": np.bincount(a.dst, minlength=a.n).astype(float),
           "out_degree": np.bincount(a.src, minlength=a.n).astype(float),
           "in_strength": np.bincount(a.dst, a.weight, minlength=a.n),
           "out_strength": np.bincount(a.src, a.weight, minlength=a.n),
           "receptive_field": receptive_fields(a)}
    if community:
        out["community"] = np.asarray(modularity(a, n_null=0, seed=seed)["communities"],
                                      dtype=float)
    return out


def weighted_clustering(G) -> dict[str, float]:
    """Directed, weighted clustering (Fagiolo 2007), the definition ``nx.clustering`` uses
    for weighted DiGraphs, computed with sparse matrices: weights normalised by the largest,
    ``C_i = [(W + W^T)^3]_ii / (2 (d_i (d_i - 1) - 2 d_i^<->))`` with ``W = w^(1/3)``, ``d``
    the total degree and ``d^<->`` the reciprocated degree."""
    import scipy.sparse as sp

    a = _a(G)
    keep = a.src != a.dst
    src, dst, w = a.src[keep], a.dst[keep], a.weight[keep]
    if src.size == 0:
        return {"weighted_clustering": 0.0}
    W = sp.csr_matrix((np.cbrt(w / w.max()), (src, dst)), shape=(a.n, a.n))
    S = (W + W.T).tocsr()
    num = np.asarray((S @ S).multiply(S).sum(1)).ravel()
    A = sp.csr_matrix((np.ones(src.size), (src, dst)), shape=(a.n, a.n))
    d_tot = np.asarray(A.sum(0)).ravel() + np.asarray(A.sum(1)).ravel()
    d_bi = np.asarray(A.multiply(A.T).sum(1)).ravel()
    den = 2 * (d_tot * (d_tot - 1) - 2 * d_bi)
    c = np.divide(num, den, out=np.zeros(a.n), where=den > 0)
    return {"weighted_clustering": float(c.mean())}


# ---------------------------------------------------------------------- areas
def plain_areas(a: EdgeArrays) -> list[str]:
    """Areas that are not aliases of another (``input`` = ``area0`` is drawn once)."""
    names = list(a.areas)
    sets = {k: frozenset(v.tolist()) for k, v in a.areas.items()}
    keep = [k for k in names if not (k in ALIASES and any(
        sets[o] == sets[k] for o in names if o != k and o not in ALIASES))]
    return keep


def _hops_from(a: EdgeArrays, sources: np.ndarray) -> np.ndarray:
    import scipy.sparse as sp
    from scipy.sparse.csgraph import shortest_path

    rows = np.concatenate([a.src, np.full(sources.size, a.n)])
    cols = np.concatenate([a.dst, sources])
    adj = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(a.n + 1, a.n + 1))
    return shortest_path(adj, unweighted=True, indices=a.n)[: a.n] - 1


def disjoint_areas(a: EdgeArrays, names: list[str]) -> tuple[list[str], list[str]]:
    """A set of pairwise disjoint areas among ``names``, smallest first (a column counted in
    two areas would be its own source and target): ``(kept, dropped)``. On a sheet whose
    ``sheet`` area holds every column and ``input`` / ``output`` are parts of it, the parts
    are kept and ``sheet`` is dropped."""
    sets = {k: set(a.areas[k].tolist()) for k in names}
    kept: list[str] = []
    taken: set[int] = set()
    for k in sorted(names, key=lambda k: (len(sets[k]), names.index(k))):
        if not sets[k] & taken:
            kept.append(k)
            taken |= sets[k]
    kept = [k for k in names if k in kept]  # the given order
    return kept, [k for k in names if k not in kept]


def area_flow(G, order: list[str] | None = None) -> dict[str, Any]:
    """Area-to-area flow and the feedforward-vs-feedback index, over DISJOINT areas.

    ``flow[i][j]``: the share of area ``j``'s incoming weight that comes from area ``i``
    (columns sum to 1 when all of ``j``'s inputs lie in the listed areas). Overlapping
    areas are reduced to a disjoint set (:func:`disjoint_areas`; ``dropped`` says which were
    left out and ``coverage`` how many columns the kept ones hold). Areas are ordered by
    their mean hop distance from the ``input`` area (``area0 < area1 < ...`` for a stack)
    unless ``order`` is given. ``ff_index = (FF - FB) / (FF + FB)``, with ``FF`` the weight
    on edges from a lower to a higher area and ``FB`` the reverse: +1 is purely
    feedforward, -1 purely feedback; ``None`` (with ``note`` saying why) with fewer than
    two disjoint areas or no weight between them.
    """
    a = _a(G)
    names, dropped = disjoint_areas(a, order or plain_areas(a))
    if order is None and "input" in a.areas and len(names) > 1:
        hops = _hops_from(a, a.areas["input"])
        depth = {k: float(np.nanmean(np.where(np.isfinite(hops[a.areas[k]]),
                                              hops[a.areas[k]], np.nan))) for k in names}
        names = sorted(names, key=lambda k: (depth[k], k))
    label = np.full(a.n, -1)
    for i, k in enumerate(names):
        label[a.areas[k]] = i
    s, t = label[a.src], label[a.dst]
    ok = (s >= 0) & (t >= 0)
    m = len(names)
    flow = np.zeros((m, m))
    np.add.at(flow, (s[ok], t[ok]), a.weight[ok])
    into = np.bincount(t[t >= 0], a.weight[t >= 0], minlength=m)
    share = flow / np.maximum(into, 1e-12)[None, :]
    ff = float(a.weight[ok][s[ok] < t[ok]].sum())
    fb = float(a.weight[ok][s[ok] > t[ok]].sum())
    index = (ff - fb) / (ff + fb) if m > 1 and ff + fb > 0 else None
    covered = int((label >= 0).sum())
    note = None
    if m < 2:
        note = (f"n/a: fewer than two disjoint areas ({', '.join(names) or 'none'}"
                + (f"; {', '.join(dropped)} overlap them" if dropped else "") + ")")
    elif index is None:
        note = "n/a: no attention weight between different areas"
    elif dropped:
        note = (f"over disjoint areas {', '.join(names)} ({covered} of {a.n} columns); "
                f"{', '.join(dropped)} overlap them and are left out")
    return {"areas": names, "flow": share.tolist(), "flow_mass": flow.tolist(),
            "feedforward": ff, "feedback": fb, "ff_index": index, "dropped": dropped,
            "coverage": covered / a.n, "note": note}


# ---------------------------------------------------------------------- nulls and graphs
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

    if not 0.0 < edge_fraction <= 1.0:
        raise ValueError(f"edge_fraction must be in (0, 1] (got {edge_fraction}): the share of "
                         f"the strongest symmetrised edges kept, e.g. 0.5.")
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


def _clustering(A) -> float:
    """Average local clustering of a binary undirected graph (triangles via sparse matmul)."""
    deg = np.asarray(A.sum(1)).ravel()
    tri = np.asarray((A @ A).multiply(A).sum(1)).ravel() / 2
    possible = deg * (deg - 1) / 2
    c = np.divide(tri, possible, out=np.zeros_like(tri), where=possible > 0)
    return float(c.mean())


def _path_length(A, n_sources: int, rng) -> float:
    """Mean shortest-path length over reachable pairs, BFS from sampled sources."""
    from scipy.sparse.csgraph import shortest_path

    n = A.shape[0]
    idx = np.arange(n) if n <= n_sources else rng.choice(n, n_sources, replace=False)
    d = shortest_path(A, unweighted=True, directed=False, indices=idx)
    finite = np.isfinite(d) & (d > 0)
    return float(d[finite].mean()) if finite.any() else float("inf")


# ---------------------------------------------------------------------- topology
def _louvain(n: int, src, dst, w, seed: int, resolution: float):
    """Louvain on the symmetrised weighted graph: ``(Q, communities)``."""
    import networkx as nx

    S = _symmetric(n, src, dst, w).tocoo()
    H = nx.Graph()
    H.add_nodes_from(range(n))
    up = S.row < S.col
    H.add_weighted_edges_from(zip(S.row[up].tolist(), S.col[up].tolist(), S.data[up].tolist()))
    comms = nx.community.louvain_communities(H, weight="weight", resolution=resolution,
                                             seed=seed)
    return nx.community.modularity(H, comms, weight="weight", resolution=resolution), comms


def modularity(G, n_null: int = 3, seed: int = 0, resolution: float = 1.0,
               workers: int | None = None) -> dict[str, Any]:
    """Louvain modularity of the symmetrised weighted graph against degree-preserving nulls.

    Returns ``Q``, the number of modules, the null models' ``Q`` (mean, std) and the
    z-score ``(Q - mean) / std``; ``communities`` lists the module of every node. Louvain
    (networkx, pure Python) dominates the cost on large graphs, so the real graph and the
    nulls run in parallel processes (``workers``, default: all cores) when the graph has
    more than 20,000 edges.
    """
    if n_null < 0:
        raise ValueError(f"n_null must be >= 0 (got {n_null}).")
    a = _a(G)
    rng = np.random.default_rng(seed)
    jobs = [(a.src, a.dst, a.weight)] + [_config_model_directed(a, rng) for _ in range(n_null)]
    seeds = rng.integers(2**31, size=len(jobs)).tolist()
    args = [(a.n, s, d, w, sd, resolution) for (s, d, w), sd in zip(jobs, seeds)]
    workers = min(workers or os.cpu_count() or 1, len(args))
    if workers > 1 and a.src.size > 20_000:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            results = list(pool.map(_louvain, *zip(*args)))
    else:
        results = [_louvain(*x) for x in args]
    q, comms = results[0]
    null = np.array([r[0] for r in results[1:]])
    module = np.zeros(a.n, dtype=int)
    for i, c in enumerate(sorted(comms, key=len, reverse=True)):
        module[list(c)] = i
    std = float(null.std()) if n_null > 1 else float("nan")
    return {"Q": float(q), "modules": len(comms), "Q_null_mean": float(null.mean()) if n_null
            else float("nan"), "Q_null_std": std,
            "Q_z": float((q - null.mean()) / std) if n_null > 1 and std > 0 else float("nan"),
            "communities": module.tolist()}


def small_world(G, edge_fraction: float = 0.5, n_sources: int = 500, seed: int = 0
                ) -> dict[str, float]:
    """Clustering ``C``, path length ``L`` and small-world ``sigma``, ``omega``.

    ``sigma = (C / C_rand) / (L / L_rand)`` (> 1: small world);
    ``omega = L_rand / L - C / C_latt`` (about 0: small world; -> -1 lattice, -> +1 random).
    See the module docstring for the thresholding and the references.
    """
    a = _a(G)
    rng = np.random.default_rng(seed)
    A = _threshold(_symmetric(a.n, a.src, a.dst, a.weight), edge_fraction)
    R = _random_undirected(A, rng)
    C, L = _clustering(A), _path_length(A, n_sources, rng)
    C_r, L_r = _clustering(R), _path_length(R, n_sources, rng)
    k = float(A.sum() / a.n)
    C_l = 3 * (k - 2) / (4 * (k - 1)) if k > 2 else float("nan")
    return {"clustering": C, "path_length": L, "clustering_rand": C_r, "path_length_rand": L_r,
            "clustering_latt": C_l, "mean_degree": k,
            "sigma": (C / C_r) / (L / L_r) if C_r > 0 and L > 0 else float("nan"),
            "omega": L_r / L - C / C_l if L > 0 and C_l == C_l else float("nan")}


def rich_club(G, edge_fraction: float = 0.5, n_null: int = 5, seed: int = 0,
              levels: int = 30) -> dict[str, Any]:
    """Normalised rich-club coefficient ``phi(k) / phi_rand(k)`` of the thresholded graph.

    ``phi(k) = 2 E_k / (N_k (N_k - 1))`` over the ``N_k`` columns of degree > ``k``;
    ``phi_rand`` averages degree-preserving random graphs. Reported for up to ``levels``
    degrees with at least 5 rich columns; ``max_normalized`` summarises the curve.
    """
    a = _a(G)
    rng = np.random.default_rng(seed)
    A = _threshold(_symmetric(a.n, a.src, a.dst, a.weight), edge_fraction)
    deg = np.asarray(A.sum(1)).ravel()
    ks = np.unique(deg)[:-1]
    ks = ks[[(deg > k).sum() >= 5 for k in ks]] if ks.size else ks
    if ks.size > levels:
        ks = ks[np.linspace(0, ks.size - 1, levels).round().astype(int)]

    def phi(M) -> np.ndarray:
        d = np.asarray(M.sum(1)).ravel()
        U = M.tocoo()
        up = U.row < U.col
        r, c = U.row[up], U.col[up]
        out = []
        for k in ks:
            nk = (d > k).sum()
            ek = ((d[r] > k) & (d[c] > k)).sum()
            out.append(2 * ek / (nk * (nk - 1)) if nk > 1 else np.nan)
        return np.array(out, dtype=float)

    raw = phi(A)
    with warnings.catch_warnings():  # levels no null graph reaches: NaN, said once below
        warnings.simplefilter("ignore", RuntimeWarning)
        rand = np.nanmean([phi(_random_undirected(A, rng)) for _ in range(max(n_null, 1))],
                          axis=0)
    norm = raw / np.where(rand > 0, rand, np.nan)
    finite = norm[np.isfinite(norm)]
    return {"degrees": ks.tolist(), "phi": raw.tolist(), "phi_rand": rand.tolist(),
            "normalized": norm.tolist(),
            "max_normalized": float(finite.max()) if finite.size else float("nan")}


# ---------------------------------------------------------------------- everything
def analyze(G, n_null: int = 3, edge_fraction: float = 0.5, n_sources: int = 500,
            seed: int = 0) -> dict[str, Any]:
    """All metrics of this module in one JSON-ready dict."""
    a = arrays(G)
    out: dict[str, Any] = {"columns": a.n, "edges": int(a.src.size),
                           "weight": G.graph.get("weight", "weight")}
    out["degrees"] = degree_stats(a)
    out.update(reciprocity(a))
    out["edr"] = edr_fit(a)
    out.update(wiring(a))
    out.update(weight_distance(a))
    out.update(weighted_clustering(a))
    rf = receptive_fields(a)
    out["receptive_field"] = _summary(rf[np.isfinite(rf)])
    out["flow"] = area_flow(a)
    out["modularity"] = modularity(a, n_null=n_null, seed=seed)
    out["small_world"] = small_world(a, edge_fraction, n_sources, seed)
    out["rich_club"] = rich_club(a, edge_fraction, n_null, seed)
    return out

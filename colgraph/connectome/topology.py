"""Topology: weighted clustering, modularity against null models, small-world sigma /
omega and the rich club (see :mod:`colgraph.connectome.analysis` for the choices)."""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from .arrays import (_a, _config_model_directed, _random_undirected, _symmetric, _threshold,
                     check_settings)

__all__ = ["weighted_clustering", "modularity", "small_world", "rich_club"]


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
    check_settings(n_null=n_null, seed=seed)
    if isinstance(resolution, bool) or not isinstance(resolution, (int, float)) or \
            not np.isfinite(resolution) or resolution <= 0:
        raise ValueError(f"resolution must be a finite number > 0 (got {resolution!r}): 1 is "
                         f"standard modularity, larger values give smaller modules.")
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
    out = {"Q": float(q), "modules": len(comms), "Q_null_mean": float(null.mean()) if n_null
           else float("nan"), "Q_null_std": std,
           "Q_z": float((q - null.mean()) / std) if n_null > 1 and std > 0 else float("nan"),
           "communities": module.tolist()}
    if n_null < 2:
        out["note"] = f"Q_z n/a: the z-score needs n_null >= 2 null models (got {n_null})"
    elif not std > 0:
        out["note"] = "Q_z n/a: every null model has the same Q (std 0)"
    return out


def small_world(G, edge_fraction: float = 0.5, n_sources: int = 500, seed: int = 0
                ) -> dict[str, float]:
    """Clustering ``C``, path length ``L`` and small-world ``sigma``, ``omega``.

    ``sigma = (C / C_rand) / (L / L_rand)`` (> 1: small world);
    ``omega = L_rand / L - C / C_latt`` (about 0: small world; -> -1 lattice, -> +1 random).
    See the module docstring for the thresholding and the references.
    """
    check_settings(edge_fraction=edge_fraction, n_sources=n_sources, seed=seed)
    a = _a(G)
    rng = np.random.default_rng(seed)
    A = _threshold(_symmetric(a.n, a.src, a.dst, a.weight), edge_fraction)
    R = _random_undirected(A, rng)
    C, L = _clustering(A), _path_length(A, n_sources, rng)
    C_r, L_r = _clustering(R), _path_length(R, n_sources, rng)
    k = float(A.sum() / a.n)
    C_l = 3 * (k - 2) / (4 * (k - 1)) if k > 2 else float("nan")
    out = {"clustering": C, "path_length": L, "clustering_rand": C_r, "path_length_rand": L_r,
           "clustering_latt": C_l, "mean_degree": k,
           "sigma": (C / C_r) / (L / L_r) if C_r > 0 and L > 0 else float("nan"),
           "omega": L_r / L - C / C_l if L > 0 and C_l == C_l else float("nan")}
    notes = []
    if not np.isfinite(L_r):
        notes.append("sigma, omega n/a: the random reference graph has no edges")
        out["sigma"] = out["omega"] = float("nan")
    elif not C_r > 0:
        notes.append("sigma n/a: the random reference graph has no triangles (C_rand = 0)")
    if not C_l == C_l:
        notes.append(f"omega n/a: mean degree {k:.3g} <= 2 after thresholding: the ring "
                     f"lattice reference has no triangles")
    from scipy.sparse.csgraph import connected_components

    parts = connected_components(A, directed=False)[0] - int((np.asarray(A.sum(1)) == 0).sum())
    if parts > 1:  # isolated columns are no component of the thresholded graph's paths
        notes.append(f"the thresholded graph has {parts} components: path lengths average "
                     f"over connected pairs only")
    if notes:
        out["note"] = "; ".join(notes)
    return out


def rich_club(G, edge_fraction: float = 0.5, n_null: int = 5, seed: int = 0,
              levels: int = 30) -> dict[str, Any]:
    """Normalised rich-club coefficient ``phi(k) / phi_rand(k)`` of the thresholded graph.

    ``phi(k) = 2 E_k / (N_k (N_k - 1))`` over the ``N_k`` columns of degree > ``k``;
    ``phi_rand`` averages degree-preserving random graphs. Reported for up to ``levels``
    degrees with at least 5 rich columns; ``max_normalized`` summarises the curve (NaN, with
    a ``note``, when no level has a finite value). The normalisation needs a null model:
    ``n_null=0`` draws one.
    """
    check_settings(n_null=n_null, edge_fraction=edge_fraction, seed=seed)
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise ValueError(f"levels must be an integer >= 1 (got {levels!r}).")
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
    out = {"degrees": ks.tolist(), "phi": raw.tolist(), "phi_rand": rand.tolist(),
           "normalized": norm.tolist(),
           "max_normalized": float(finite.max()) if finite.size else float("nan")}
    if not finite.size:
        out["note"] = ("max_normalized n/a: no degree has 5 or more richer columns" if not
                       ks.size else "max_normalized n/a: the null graphs have no rich club")
    return out

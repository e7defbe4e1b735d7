"""Edge arrays of a connectome graph and the null models the analysis compares with.

Everything here is numpy / scipy.sparse over edge arrays (``O(E)`` per pass); see
:mod:`colgraph.connectome.analysis` for how directedness and weights are handled.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EdgeArrays", "arrays", "ALIASES"]


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

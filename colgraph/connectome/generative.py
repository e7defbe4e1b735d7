"""Generative wiring models: grow a binary undirected graph edge by edge and fit it to a
connectome (Betzel et al. 2016 "Generative models of the human connectome"; Akarca et al.
2021; the reference implementation is the Brain Connectivity Toolbox's
``generative_model``, bctpy for Python).

Symbols: ``N`` columns, ``P`` candidate pairs (all ``N (N - 1) / 2`` unless ``candidates``
restricts them), ``m`` edges, ``d`` the degree of a column in the candidate pairs.

Starting from a seed graph, each new edge ``(i, j)`` is drawn among the absent candidate
pairs with probability ``P_ij ~ D_ij^eta * K_ij^gamma``: ``D`` the distance between the
columns in the sheet's metric, ``K`` a topological term (+ ``epsilon``, so ``K > 0``) from
:data:`MODELS`, until the graph has ``m`` edges. ``eta < 0`` favours short edges;
``gamma > 0`` favours pairs whose ``K`` is large (homophily: shared neighbours).

Cost. ``K`` is updated incrementally: adding ``u - v`` changes the degree of ``u`` and
``v``, the common neighbours of ``(v, x)`` for ``x`` in ``N(u)`` and of ``(u, y)`` for ``y``
in ``N(v)``, and the clustering of ``u``, ``v`` and their common neighbours; only the
candidate pairs incident to those columns are rescored (``O(d)`` per step for ``matching``
/ ``deg-*``, ``O(d * (common neighbours + 2))`` for ``clu-*``, ``O(deg)`` for
``neighbors``). The pair probabilities sit in a 64-ary sum tree (exact sums, no drift), so
a draw costs ``O(64 log_64 P)``. A whole growth is ``O(P)`` to set up plus ``O(m d)``.
With all pairs (``candidates=None``) ``d = N - 1`` and memory is ``~100 P`` bytes: fine up to
a few thousand columns (refused above :data:`MAX_DENSE_COLUMNS`); a sheet of ``10^4 -
10^6`` columns is grown over a sparse candidate set (its own wiring's pairs, or all pairs
within a radius, :func:`radius_candidates`), where ``d`` is the candidates per column.
Measured once on a shared 2-core machine: see :func:`generate`.

bctpy's ``generative_model`` (0.6.1) is no reference for the growth: its draw uses
MATLAB's 1-based ``sum(rand * C(end) >= C)`` as a 0-based index (it adds the pair AFTER the
one drawn, and may draw one edge again), and its ``matching`` model never refreshes
``K^gamma`` after updating ``K``. The tests compare ``K`` and the energy's distributions with
bctpy's ``matching_ind``, ``clustering_coef_bu``, ``betweenness_bin`` and ``degrees_und``.

:func:`energy` compares two graphs by the usual KS energy; :func:`fit_generative` scans an
``(eta, gamma)`` grid per model against a learned connectome and
:func:`plot_energy_landscape` draws the result.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MODELS", "MAX_DENSE_COLUMNS", "generate", "radius_candidates", "energy",
           "ks_statistics", "fit_generative", "plot_energy_landscape"]

#: model -> its topological term K_ij (bctpy's names; "+ epsilon" everywhere)
MODELS = {
    "spatial": "K = 1: distance alone",
    "neighbors": "number of common neighbours of i and j",
    "matching": "matching index 2 |N(i) & N(j)| / (|N(i) - {j}| + |N(j) - {i}|)",
    "clu-avg": "mean of the clustering coefficients of i and j",
    "clu-min": "smaller clustering coefficient of i and j",
    "clu-max": "larger clustering coefficient of i and j",
    "clu-prod": "product of the clustering coefficients of i and j",
    "deg-avg": "mean degree of i and j",
    "deg-min": "smaller degree of i and j",
    "deg-max": "larger degree of i and j",
    "deg-prod": "product of the degrees of i and j",
}
MAX_DENSE_COLUMNS = 6000  # all pairs of more columns than this: pass candidates instead
STATISTICS = ("degree", "clustering", "betweenness", "length")
_FAN = 64  # children per node of the probability sum tree


# ---------------------------------------------------------------------- checks
def _check_model(model: Any) -> str:
    if not isinstance(model, str) or model not in MODELS:
        raise ValueError(f"Unknown generative model {model!r}. Choices: "
                         f"{', '.join(MODELS)}.")
    return model


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise ValueError(f"Expected {name} to be a finite number (got {value!r}), e.g. "
                         f"{'eta=-2.0 (short edges preferred)' if name == 'eta' else 'gamma=1.0'}.")
    return float(value)


def _check_int(name: str, value: Any, low: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"Expected {name} to be an integer >= {low} (got {value!r}): {what}.")
    return int(value)


def _check_grid(name: str, values: Any) -> np.ndarray:
    try:
        grid = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        grid = None
    if grid is None or grid.size == 0 or not np.isfinite(grid).all():
        raise ValueError(f"Expected {name} to be a non-empty list of finite numbers (got "
                         f"{values!r}), e.g. {name}=np.linspace(-4, 0, 9).")
    return grid


def _rng(seed: Any) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    _check_int("seed", seed, 0, "the seed of the random draws, or pass a "
               "numpy Generator (np.random.default_rng(0))")
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------- the sheet
class _Sheet:
    """Columns, their names and a pair-length function in the sheet's metric."""

    def __init__(self, positions_or_graph: Any) -> None:
        import networkx as nx

        self.graph = isinstance(positions_or_graph, nx.Graph)
        self.metric, self.period = "euclidean", None
        if self.graph:
            from .arrays import _metric, _positions

            G = positions_or_graph
            self.nodes = list(G.nodes)
            if len(self.nodes) and all(G.nodes[v].get("pos") is None for v in self.nodes):
                raise ValueError("Expected the graph's nodes to have a 'pos' (the column "
                                 "positions the distances D come from), but none has. Export "
                                 "the connectome with colgraph.connectome.to_networkx, or pass "
                                 "the positions as an (N, D) array.")
            pos = _positions(G, self.nodes)
            self.metric, self.period = _metric(G, pos.shape[1])
        else:
            try:
                pos = np.asarray(positions_or_graph, dtype=float)
            except (TypeError, ValueError):
                raise ValueError(f"Expected column positions as an (N, D) array of numbers "
                                 f"or a networkx graph with node 'pos', got "
                                 f"{type(positions_or_graph).__name__}.") from None
            if pos.ndim == 1:
                pos = pos[:, None]
            if pos.ndim != 2 or pos.shape[1] < 1:
                raise ValueError(f"Expected column positions of shape (N, D), got "
                                 f"{list(pos.shape)}.")
            bad = ~np.isfinite(pos).all(1)
            if bad.any():
                raise ValueError(f"Expected finite column positions, but {int(bad.sum())} "
                                 f"row(s) hold NaN/inf (e.g. row {int(np.flatnonzero(bad)[0])}: "
                                 f"{pos[np.flatnonzero(bad)[0]].tolist()}). Fix or drop those "
                                 f"columns.")
            self.nodes = list(range(pos.shape[0]))
        if pos.shape[0] < 2:
            raise ValueError(f"A generative model needs at least 2 columns, got "
                             f"{pos.shape[0]}.")
        self.pos = pos
        self.n = pos.shape[0]

    def length(self, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        import torch

        from ..geometry.base import measure

        pos = torch.as_tensor(self.pos, dtype=torch.float64)
        period = None if self.period is None else torch.as_tensor(self.period,
                                                                  dtype=torch.float64)
        out = np.empty(s.size)
        for lo in range(0, s.size, 1 << 22):  # bounded temporaries for all pairs of 6000
            hi = lo + (1 << 22)
            out[lo:hi] = measure(pos, torch.from_numpy(s[lo:hi]), torch.from_numpy(t[lo:hi]),
                                 self.metric, period).numpy()
        return out


def _as_pairs(pairs: Any, n: int, what: str, fix: str) -> np.ndarray:
    """Index pairs ``(P, 2)`` (or a ``[2, P]`` tensor, a sheet's ``edge_index``) as
    undirected, distinct ``i < j`` pairs, checked against ``n`` columns."""
    import torch

    if isinstance(pairs, torch.Tensor):
        if pairs.dim() != 2 or pairs.size(0) != 2:
            raise ValueError(f"Expected {what} as a [2, P] edge_index tensor or a (P, 2) array, "
                             f"got a tensor of shape {list(pairs.shape)}. {fix}")
        pairs = pairs.detach().cpu().numpy().T
    arr = np.asarray(pairs)
    if arr.size == 0:
        arr = arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.dtype.kind not in "iu":
        raise ValueError(f"Expected {what} as a (P, 2) array of integer column indices (or a "
                         f"[2, P] edge_index tensor), got shape {list(arr.shape)} "
                         f"{arr.dtype}. {fix}")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"Expected {what} to index columns 0 .. {n - 1}, got values "
                         f"{arr.min()} .. {arr.max()}. {fix}")
    arr = arr.astype(np.int64)
    arr = arr[arr[:, 0] != arr[:, 1]]
    lo, hi = arr.min(1), arr.max(1)
    key = np.unique(lo * n + hi)
    return np.stack([key // n, key % n], 1)


def radius_candidates(positions: Any, radius: float) -> np.ndarray:
    """Every pair of columns closer than ``radius`` (euclidean, k-d tree):
    ``(P, 2)`` index pairs ``i < j`` for :func:`generate`'s ``candidates``.

    ``O(N log N + P)``: the way to grow a sheet of ``10^4 - 10^6`` columns, whose all-pairs
    set is too large.

    Example:
        >>> import numpy as np
        >>> pos = np.random.default_rng(0).random((500, 2))
        >>> pairs = radius_candidates(pos, 0.1)
        >>> pairs.shape[1], bool((pairs[:, 0] < pairs[:, 1]).all())
        (2, True)
    """
    from scipy.spatial import cKDTree

    sheet = _Sheet(positions)
    r = _check_number("radius", radius)
    if r <= 0:
        raise ValueError(f"Expected radius > 0 (got {radius!r}): the largest distance of a "
                         f"candidate pair.")
    pairs = cKDTree(sheet.pos).query_pairs(r, output_type="ndarray").astype(np.int64)
    return _as_pairs(pairs, sheet.n, "the pairs", "")


class _Pairs:
    """The candidate pairs ``i < j`` (sorted by ``i N + j``), their log lengths and the
    pairs incident to each column (CSR: ``inc[ptr[x]:ptr[x+1]]``, the other end ``other``)."""

    def __init__(self, sheet: _Sheet, pairs: np.ndarray | None) -> None:
        n = sheet.n
        if pairs is None:
            u, v = np.triu_indices(n, 1)
        else:
            u, v = pairs[:, 0], pairs[:, 1]
        self.n, self.u, self.v = n, u.astype(np.int64), v.astype(np.int64)
        self.key = self.u * n + self.v  # sorted: triu_indices and _as_pairs are in key order
        self.length = sheet.length(self.u, self.v)
        with np.errstate(divide="ignore"):
            self.log_length = np.log(self.length)
        ends = np.concatenate([self.u, self.v])
        order = np.argsort(ends, kind="stable")
        self.ptr = np.concatenate([[0], np.cumsum(np.bincount(ends, minlength=n))])
        self.inc = (order % self.size).astype(np.int64)
        self.other = np.concatenate([self.v, self.u])[order]

    @property
    def size(self) -> int:
        return self.key.size

    def find(self, a: int, xs: np.ndarray) -> np.ndarray:
        """Pair indices of ``(a, x)`` for each ``x`` (-1 where not a candidate)."""
        q = np.minimum(a, xs) * self.n + np.maximum(a, xs)
        at = np.searchsorted(self.key, q)
        ok = at < self.size
        ok[ok] = self.key[at[ok]] == q[ok]
        return np.where(ok, at, -1)

    def incident(self, nodes: np.ndarray) -> np.ndarray:
        """The pairs incident to any of ``nodes`` (concatenated CSR rows)."""
        start, stop = self.ptr[nodes], self.ptr[nodes + 1]
        count = stop - start
        total = int(count.sum())
        if total == 0:
            return np.zeros(0, np.int64)
        offset = np.repeat(start - np.concatenate([[0], np.cumsum(count)[:-1]]), count)
        return self.inc[offset + np.arange(total)]


class _SumTree:
    """Weights in a ``_FAN``-ary tree of exact sums: set ``k`` leaves in ``O(k log P)``,
    draw a leaf with probability ``w / sum(w)`` in ``O(_FAN log P)``."""

    def __init__(self, w: np.ndarray) -> None:
        self.levels = []
        cur = w
        while True:
            padded = np.zeros(-(-max(cur.size, 1) // _FAN) * _FAN)
            padded[:cur.size] = cur
            self.levels.append(padded)
            if padded.size <= _FAN:
                break
            cur = padded.reshape(-1, _FAN).sum(1)

    def set(self, idx: np.ndarray, w: np.ndarray) -> None:
        self.levels[0][idx] = w
        for lower, upper in zip(self.levels, self.levels[1:]):
            idx = np.unique(idx // _FAN)
            upper[idx] = lower.reshape(-1, _FAN)[idx].sum(1)

    @property
    def total(self) -> float:
        return float(self.levels[-1].sum())

    def draw(self, u: float) -> int:
        r, i = u * self.total, 0
        for level in reversed(self.levels):
            block = level[i * _FAN:(i + 1) * _FAN]
            c = np.cumsum(block)
            j = int(np.searchsorted(c, r, side="right"))
            if j >= block.size or block[j] <= 0:  # rounding at the end: the last one > 0
                j = int(np.flatnonzero(block > 0)[-1])
            r = min(max(r - (c[j] - block[j]), 0.0), block[j] * (1 - 1e-12))
            i = i * _FAN + j
        return i


def _pair_counts(A, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``(A @ A)[u, v]`` (common neighbours) for the pairs, in chunks of rows."""
    out = np.zeros(u.size, np.int64)
    if A.nnz == 0:
        return out
    for lo in range(0, u.size, 1 << 20):
        hi = lo + (1 << 20)
        out[lo:hi] = np.asarray(A[u[lo:hi]].multiply(A[v[lo:hi]]).sum(1)).ravel()
    return out


class _Growth:
    """One growth: the graph so far (``present`` pairs, degrees, common neighbours,
    triangles), its ``K`` on every candidate pair, and the draw probabilities."""

    def __init__(self, pairs: _Pairs, model: str, eta: float, gamma: float, epsilon: float,
                 seed_pairs: np.ndarray) -> None:
        import scipy.sparse as sp

        self.pairs, self.model, self.eta, self.gamma, self.eps = (pairs, model, eta, gamma,
                                                                  epsilon)
        n = pairs.n
        self.present = np.zeros(pairs.size, bool)
        self.present[seed_pairs] = True
        su, sv = pairs.u[seed_pairs], pairs.v[seed_pairs]
        self.deg = np.bincount(np.concatenate([su, sv]), minlength=n).astype(np.int64)
        A = sp.csr_matrix((np.ones(2 * su.size), (np.concatenate([su, sv]),
                                                  np.concatenate([sv, su]))), shape=(n, n))
        if model in ("neighbors", "matching"):
            self.cn = _pair_counts(A, pairs.u, pairs.v)
        if model.startswith("clu"):
            self.tri = (np.asarray((A @ A).multiply(A).sum(1)).ravel() / 2).astype(np.int64)
            self.cc = np.zeros(n)
            self._clustering(np.arange(n))
        with np.errstate(invalid="ignore"):
            self.distance_term = np.where(eta == 0, 0.0, eta * pairs.log_length)
        self._rebuild()

    # K and the weights
    def k(self, idx: np.ndarray) -> np.ndarray:
        """``K`` (with ``epsilon``) of the pairs ``idx`` in the graph as it is now."""
        p, m = self.pairs, self.model
        a, b = p.u[idx], p.v[idx]
        if m == "spatial":
            return np.ones(idx.size)
        if m == "neighbors":
            return self.cn[idx] + self.eps
        if m == "matching":
            den = self.deg[a] + self.deg[b] - 2 * self.present[idx]
            return np.divide(2.0 * self.cn[idx], den, out=np.zeros(idx.size),
                             where=den > 0) + self.eps
        x, y = (self.cc[a], self.cc[b]) if m.startswith("clu") else (self.deg[a], self.deg[b])
        how = m[4:]
        f = {"avg": lambda: (x + y) / 2.0, "min": lambda: np.minimum(x, y),
             "max": lambda: np.maximum(x, y), "prod": lambda: x * 1.0 * y}[how]()
        return f + self.eps

    def _log_weight(self, idx: np.ndarray) -> np.ndarray:
        k = self.distance_term[idx]
        if self.model != "spatial" and self.gamma != 0:
            k = k + self.gamma * np.log(self.k(idx))
        return np.where(self.present[idx], -np.inf, k)

    def _rebuild(self) -> None:
        """Weights of every pair, shifted so the largest is 1 (no overflow)."""
        idx = np.arange(self.pairs.size)
        lw = self._log_weight(idx)
        finite = lw[np.isfinite(lw)]
        if np.isposinf(lw).any():
            raise ValueError(self._infinite())
        self.offset = float(finite.max()) if finite.size else 0.0
        self.tree = _SumTree(np.exp(lw - self.offset))

    def _infinite(self) -> str:
        return (f"D^eta is infinite for eta={self.eta} at a candidate pair of length 0 (two "
                f"columns at one position). Give the columns distinct positions, drop those "
                f"pairs from the candidates, or use eta >= 0.")

    def _update(self, idx: np.ndarray) -> None:
        lw = self._log_weight(idx)
        if np.isposinf(lw).any():
            raise ValueError(self._infinite())
        w = np.exp(lw - self.offset)
        if (w > 1e250).any():  # the weights have grown far past the start: shift again
            self._rebuild()
        else:
            self.tree.set(idx, w)

    def _clustering(self, nodes: np.ndarray) -> None:
        d = self.deg[nodes]
        possible = d * (d - 1) / 2.0
        self.cc[nodes] = np.divide(self.tri[nodes], possible, out=np.zeros(nodes.size),
                                   where=possible > 0)

    def neighbours(self, x: int) -> np.ndarray:
        p = self.pairs
        rows = slice(p.ptr[x], p.ptr[x + 1])
        return p.other[rows][self.present[p.inc[rows]]]

    # one step
    def add(self, r: int) -> None:
        """Add the pair ``r`` and rescore the pairs whose ``K`` changed."""
        p, m = self.pairs, self.model
        u, v = int(p.u[r]), int(p.v[r])
        nu, nv = self.neighbours(u), self.neighbours(v)
        self.present[r] = True
        self.deg[u] += 1
        self.deg[v] += 1
        touched: np.ndarray
        if m in ("neighbors", "matching"):
            a, b = p.find(v, nu), p.find(u, nv)  # v is now a common neighbour of u, y ...
            a, b = a[a >= 0], b[b >= 0]
            self.cn[a] += 1
            self.cn[b] += 1
            touched = (np.concatenate([a, b, [r]]) if m == "neighbors"
                       else p.incident(np.array([u, v])))
        elif m.startswith("clu"):
            common = np.intersect1d(nu, nv, assume_unique=True)
            self.tri[[u, v]] += common.size
            self.tri[common] += 1
            nodes = np.concatenate([[u, v], common]).astype(np.int64)
            self._clustering(nodes)
            touched = p.incident(nodes)
        elif m.startswith("deg"):
            touched = p.incident(np.array([u, v]))
        else:
            touched = np.array([r])
        self._update(touched.astype(np.int64))

    def draw(self, rng: np.random.Generator) -> int:
        if not self.tree.total > 0:
            self._rebuild()  # underflow after many steps: shift the weights back up
            if not self.tree.total > 0:
                raise ValueError(f"No absent candidate pair has a probability > 0 (eta="
                                 f"{self.eta}, gamma={self.gamma}, model={self.model!r}): "
                                 f"use less extreme eta / gamma or more candidate pairs.")
        return self.tree.draw(rng.random())

    def grow(self, m: int, rng: np.random.Generator) -> np.ndarray:
        """Pair indices added, in order, until ``m`` edges exist."""
        order = np.empty(max(0, m - int(self.present.sum())), np.int64)
        for step in range(order.size):
            r = self.draw(rng)
            self.add(r)
            order[step] = r
        return order


# ---------------------------------------------------------------------- generate
def _setup(positions_or_graph: Any, m: Any, model: Any, seed_graph: Any, candidates: Any,
           epsilon: Any) -> tuple[_Sheet, np.ndarray | None, np.ndarray, int]:
    """Every check of :func:`generate` that needs no pair set: the sheet, the candidate
    and seed pairs (index pairs), ``m``."""
    _check_model(model)
    m = _check_int("m", m, 0, "the number of edges the grown graph has (seed edges "
                   "included), e.g. the target connectome's edge count")
    if _check_number("epsilon", epsilon) <= 0:
        raise ValueError(f"Expected epsilon > 0 (got {epsilon!r}): it keeps K > 0 so that "
                         f"K^gamma is defined, e.g. 1e-5.")
    sheet = _Sheet(positions_or_graph)
    n = sheet.n
    cand = None
    if candidates is not None:
        cand = _as_pairs(candidates, n, "candidates", "Pass the sheet's edge_index, "
                         "radius_candidates(pos, r), or None for all pairs.")
    elif n > MAX_DENSE_COLUMNS:
        raise ValueError(f"All pairs of {n:,} columns are {n * (n - 1) // 2:,} candidate "
                         f"pairs (~{100 * n * (n - 1) / 2 / 2**30:.0f} GiB): more than this "
                         f"dense mode handles ({MAX_DENSE_COLUMNS:,} columns). Pass candidates="
                         f"the sheet's own edge_index or radius_candidates(pos, r).")
    seed = _seed_pairs(seed_graph, sheet)
    if cand is not None and seed.size:  # seed edges are pairs of the graph too
        cand = _as_pairs(np.concatenate([cand, seed]), n, "candidates", "")
    size = n * (n - 1) // 2 if cand is None else cand.shape[0]
    if m > size:
        raise ValueError(f"Expected m <= {size:,}, the number of candidate pairs "
                         f"({'all pairs of' if cand is None else 'candidates between'} {n} "
                         f"columns), got m={m}. Lower m or pass more candidate pairs.")
    if m < seed.shape[0]:
        raise ValueError(f"Expected m >= the seed graph's {seed.shape[0]} edges (got m={m}): "
                         f"m counts every edge of the grown graph, seed edges included.")
    return sheet, cand, seed, m


def _seed_pairs(seed_graph: Any, sheet: _Sheet) -> np.ndarray:
    import networkx as nx

    if seed_graph is None:
        return np.zeros((0, 2), np.int64)
    if isinstance(seed_graph, nx.Graph):
        index = {v: i for i, v in enumerate(sheet.nodes)}
        missing = [v for v in seed_graph.nodes if v not in index]
        if missing:
            raise ValueError(f"Expected the seed graph's nodes to be columns of the sheet, but "
                             f"{len(missing)} are not (e.g. {missing[0]!r}). Build it over the "
                             f"same nodes (0 .. N-1 for positions given as an array).")
        seed_graph = np.array([(index[a], index[b]) for a, b in seed_graph.edges],
                              np.int64).reshape(-1, 2)
    return _as_pairs(seed_graph, sheet.n, "seed_graph", "Pass a networkx graph over the "
                     "same nodes or (S, 2) column index pairs.")


def _seed_index(pairs: _Pairs, seed: np.ndarray) -> np.ndarray:
    return np.searchsorted(pairs.key, seed[:, 0] * pairs.n + seed[:, 1])


def generate(positions_or_graph: Any, m: int, eta: float, gamma: float = 0.0,
             model: str = "matching", seed_graph: Any = None, seed: Any = 0,
             candidates: Any = None, epsilon: float = 1e-5, return_edges: bool = False):
    """Grow a binary undirected graph edge by edge with ``P_ij ~ D_ij^eta K_ij^gamma``.

    Args:
        positions_or_graph: column positions ``(N, D)`` (euclidean distances), or a networkx
            graph whose nodes have ``pos`` (its ``metric`` / ``period_*`` attributes, as
            :func:`to_networkx` writes them, give the distances on a sphere or torus; its
            edges are NOT used: pass them as ``seed_graph`` to start from them).
        m: edges of the grown graph, seed edges included (the target's edge count).
        eta: distance exponent (``eta < 0``: short edges preferred).
        gamma: exponent of the topological term ``K`` (unused by ``spatial``).
        model: a key of :data:`MODELS` (bctpy's names).
        seed_graph: edges to start from: a networkx graph over the same nodes, or ``(S, 2)``
            column index pairs (default: none).
        seed: an int or a numpy Generator.
        candidates: the pairs that may be wired: ``(P, 2)`` column index pairs, or a sheet's
            ``edge_index`` ``[2, E]`` tensor (directions merged); default all pairs (at most
            :data:`MAX_DENSE_COLUMNS` columns). Use the sheet's own wiring or
            :func:`radius_candidates` for ``10^4 - 10^6`` columns.
        epsilon: added to ``K`` (so ``K > 0``; bctpy: ``1e-6``, BCT for MATLAB ``1e-5``).
        return_edges: return the ``(m, 2)`` column index pairs in the order they were added
            (seed edges first) instead of a graph.

    Returns:
        An ``nx.Graph`` over the sheet's nodes (``pos``; each edge's ``length`` and
        ``order``, its place in the growth, seed edges first), with graph attributes
        ``model``, ``eta``, ``gamma``, ``seed_edges``; or the edge array.

    Cost (module docstring): ``O(P)`` set-up plus ``O(m d)`` for the growth, ``d`` the
    candidate pairs per column. Measured once on a shared 2-core machine (one run, not a
    benchmark): ``matching``, 10^5 columns at random positions in a square, every pair
    within a radius as candidates (:func:`radius_candidates`, ~30 per column, P = 1.5 *
    10^6; 2.5 s), m = 3 * 10^5 edges (6 per column): 47 s, 0.55 GB peak memory.

    Example:
        >>> import numpy as np
        >>> pos = np.random.default_rng(0).random((50, 2))
        >>> G = generate(pos, m=100, eta=-2.0, gamma=1.0, model="matching", seed=0)
        >>> G.number_of_edges(), G.graph["model"]
        (100, 'matching')
    """
    import networkx as nx

    sheet, cand, seed_pairs, m = _setup(positions_or_graph, m, model, seed_graph, candidates,
                                        epsilon)
    eta, gamma = _check_number("eta", eta), _check_number("gamma", gamma)
    rng = _rng(seed)
    pairs = _Pairs(sheet, cand)
    seed_idx = _seed_index(pairs, seed_pairs)
    growth = _Growth(pairs, model, eta, gamma, float(epsilon), seed_idx)
    order = np.concatenate([seed_idx, growth.grow(m, rng)])
    edges = np.stack([pairs.u[order], pairs.v[order]], 1)
    if return_edges:
        return edges
    G = nx.Graph(model=model, eta=eta, gamma=gamma, seed_edges=int(seed_idx.size),
                 metric=sheet.metric)
    if sheet.period is not None:
        G.graph.update({f"period_{c}": float(p) for c, p in zip("xyz", sheet.period)})
    for i, v in enumerate(sheet.nodes):
        G.add_node(v, pos=tuple(float(x) for x in sheet.pos[i]))
    for k, (r, (a, b)) in enumerate(zip(order, edges)):
        G.add_edge(sheet.nodes[a], sheet.nodes[b], length=float(pairs.length[r]), order=k)
    return G


# ---------------------------------------------------------------------- energy
def _betweenness(A, sources: np.ndarray) -> np.ndarray:
    """Betweenness of every column of the binary undirected graph ``A`` (csr), from the
    shortest paths out of ``sources`` (Brandes, breadth first, vectorised over a batch of
    sources: ``O(diameter * N * batch)`` per batch), on networkx's scale
    (``normalized=True``; ``x n / k`` for ``k`` sampled sources)."""
    n = A.shape[0]
    total = np.zeros(n)
    batch = max(1, (1 << 22) // n)
    for lo in range(0, sources.size, batch):
        src = sources[lo:lo + batch]
        cols = np.arange(src.size)
        dist = np.full((n, src.size), -1, np.int64)
        dist[src, cols] = 0
        sigma = np.zeros((n, src.size))
        sigma[src, cols] = 1.0
        frontier, depth = sigma.copy(), 0
        while True:
            reach = A @ frontier  # shortest paths into the next level  (N, S)
            new = (reach > 0) & (dist < 0)
            if not new.any():
                break
            depth += 1
            dist[new] = depth
            sigma[new] = reach[new]
            frontier = np.where(new, sigma, 0.0)
        delta = np.zeros((n, src.size))
        for level in range(depth, 0, -1):
            at = dist == level
            coef = np.where(at, (1.0 + delta) / np.where(at, sigma, 1.0), 0.0)
            delta += np.where(dist == level - 1, sigma * (A @ coef), 0.0)
        delta[src, cols] = 0.0
        total += delta.sum(1)
    scale = 1.0 / ((n - 1) * (n - 2)) if n > 2 else 1.0
    return total * scale * n / sources.size


def _statistics(n: int, u: np.ndarray, v: np.ndarray, length: np.ndarray,
                sources: int | None, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The four distributions of the energy: degree, clustering and betweenness of every
    column, the length of every edge."""
    import scipy.sparse as sp

    A = sp.csr_matrix((np.ones(2 * u.size), (np.concatenate([u, v]), np.concatenate([v, u]))),
                      shape=(n, n))
    deg = np.asarray(A.sum(1)).ravel()
    tri = np.asarray((A @ A).multiply(A).sum(1)).ravel() / 2
    possible = deg * (deg - 1) / 2
    cc = np.divide(tri, possible, out=np.zeros(n), where=possible > 0)
    k = _sources(n, sources)
    src = np.arange(n) if k == n else rng.choice(n, k, replace=False)
    return {"degree": deg, "clustering": cc, "betweenness": _betweenness(A, src),
            "length": np.asarray(length, float)}


def _sources(n: int, sources: int | None) -> int:
    """Sources of the betweenness: all columns up to 2000, else ``sources`` (default 500)."""
    if sources is None:
        return n if n <= 2000 else 500
    return min(n, sources)


def _ks(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import ks_2samp

    if x.size == 0 or y.size == 0:  # a graph without edges has no edge lengths
        return 0.0 if x.size == y.size else 1.0
    return float(ks_2samp(x, y, method="asymp").statistic)


def _ks_all(model: dict[str, np.ndarray], target: dict[str, np.ndarray]) -> dict[str, float]:
    return {s: _ks(model[s], target[s]) for s in STATISTICS}


def _check_sources(sources: Any) -> None:
    if sources is not None:
        _check_int("betweenness_sources", sources, 2, "the columns whose shortest paths the "
                   "betweenness is estimated from (None: all up to 2000 columns, else 500)")


def _undirected(G, index: dict, who: str) -> tuple[np.ndarray, np.ndarray, list]:
    """A graph's edges between different columns as ``i < j`` index pairs (directions
    merged), with each edge's data."""
    _check_nodes(G, index, who)
    seen: dict[tuple[int, int], dict] = {}
    for a, b, d in G.edges(data=True):
        i, j = index[a], index[b]
        if i != j:
            seen.setdefault((min(i, j), max(i, j)), d)
    keys = list(seen)
    u = np.array([k[0] for k in keys], np.int64)
    v = np.array([k[1] for k in keys], np.int64)
    return u, v, [seen[k] for k in keys]


def _check_nodes(G, index: dict, who: str) -> None:
    import networkx as nx

    if not isinstance(G, nx.Graph):
        raise TypeError(f"Expected the {who} to be a networkx graph, got {type(G).__name__}.")
    missing = [v for v in G.nodes if v not in index]
    if missing or len(G) != len(index):
        raise ValueError(f"Expected the {who} to have the target's {len(index)} nodes, but it "
                         f"has {len(G)}" + (f" (e.g. {missing[0]!r} is not a target node)"
                                            if missing else "") +
                         ". Compare graphs over the same columns.")


def _graph_statistics(G, index: dict, sheet: _Sheet | None, sources: int | None, seed: int,
                      who: str) -> dict[str, np.ndarray]:
    u, v, data = _undirected(G, index, who)
    if data and all("length" in d for d in data):
        length = np.array([float(d["length"]) for d in data])
    elif sheet is not None:
        length = sheet.length(u, v)
    else:
        raise ValueError(f"The {who}'s edge lengths are unknown: give every edge a 'length' "
                         f"or every node a 'pos'.")
    return _statistics(len(index), u, v, length, sources, np.random.default_rng(seed))


def ks_statistics(model_graph, target_graph, betweenness_sources: int | None = None,
                  seed: int = 0) -> dict[str, float]:
    """The KS statistics between two graphs' distributions of degree, clustering
    coefficient, betweenness centrality (columns) and edge length (edges): the terms of
    :func:`energy`.

    Both graphs are taken as binary and undirected (directions merged, self-loops and
    weights ignored) over the same nodes. Edge lengths are the edges' ``length`` where
    every edge has one, else measured between the nodes' ``pos`` in the graph's metric.
    The betweenness is exact up to 2000 columns and estimated from
    ``betweenness_sources`` sampled columns above (default 500; ``O(sources * N *
    diameter)``: minutes for ``10^5`` columns).

    Example:
        >>> import numpy as np
        >>> pos = np.random.default_rng(0).random((40, 2))
        >>> G = generate(pos, 80, eta=-2.0, model="spatial")
        >>> sorted(ks_statistics(G, G).items())
        [('betweenness', 0.0), ('clustering', 0.0), ('degree', 0.0), ('length', 0.0)]
    """
    import networkx as nx

    _check_sources(betweenness_sources)
    _check_int("seed", seed, 0, "the seed of the sampled betweenness sources")
    if not isinstance(target_graph, nx.Graph):
        raise TypeError(f"Expected the target graph to be a networkx graph, got "
                        f"{type(target_graph).__name__}.")
    index = {v: i for i, v in enumerate(target_graph.nodes)}
    if not any(a != b for a, b in target_graph.edges):
        raise ValueError(f"The target graph has no edges between different columns "
                         f"({len(index)} nodes): the energy compares edge-length and degree "
                         f"distributions, which need edges. Pass a graph with edges.")
    _check_nodes(model_graph, index, "model graph")
    sheet = None
    if index and all(target_graph.nodes[v].get("pos") is not None for v in index):
        sheet = _Sheet(target_graph)
    target = _graph_statistics(target_graph, index, sheet, betweenness_sources, seed,
                               "target graph")
    model = _graph_statistics(model_graph, index, sheet, betweenness_sources, seed + 1,
                              "model graph")
    return _ks_all(model, target)


def energy(model_graph, target_graph, betweenness_sources: int | None = None,
           seed: int = 0) -> float:
    """The KS energy of Betzel et al. 2016: the largest of the KS statistics between the two
    graphs' distributions of degree, clustering, betweenness and edge length
    (:func:`ks_statistics`). 0: the four distributions agree; 1: one of them does not
    overlap at all.

    Example:
        >>> import numpy as np
        >>> pos = np.random.default_rng(0).random((60, 2))
        >>> G = generate(pos, 150, eta=-3.0, model="spatial", seed=0)
        >>> R = generate(pos, 150, eta=0.0, model="spatial", seed=0)  # random wiring
        >>> energy(G, G), energy(R, G) > 0.5
        (0.0, True)
    """
    return max(ks_statistics(model_graph, target_graph, betweenness_sources, seed).values())


# ---------------------------------------------------------------------- fit
DEFAULT_MODELS = ("spatial", "neighbors", "matching", "clu-avg", "deg-avg")


def _check_models(models: Any) -> tuple[str, ...]:
    if isinstance(models, str):
        models = (models,)
    try:
        models = tuple(models)
    except TypeError:
        raise ValueError(f"Expected models to be a list of model names, got {models!r}. "
                         f"Choices: {', '.join(MODELS)}.") from None
    if not models:
        raise ValueError(f"Expected at least one model to fit. Choices: {', '.join(MODELS)}.")
    for m in models:
        _check_model(m)
    return tuple(dict.fromkeys(models))


def _target(G, edge_fraction: Any) -> tuple[np.ndarray, float, str]:
    """The binary undirected target: ``(i < j)`` pairs, the edge fraction used and how."""
    import scipy.sparse as sp

    from .arrays import _symmetric, _threshold, arrays, check_settings

    with warnings.catch_warnings():  # an undirected graph: its directions are merged anyway
        warnings.filterwarnings("ignore", message=".*the graph is undirected", category=UserWarning)
        a = arrays(G)
    between = a.src != a.dst
    if not between.any():
        raise ValueError(f"The target graph has no edges between different columns ({a.n} "
                         f"nodes): a generative model grows as many edges as the target has, "
                         f"so there is nothing to fit. Pass a connectome with edges.")
    w = a.weight[between]
    weighted = bool(w.size) and not np.all(w == w[0])
    f = (0.5 if weighted else 1.0) if edge_fraction is None else edge_fraction
    check_settings(edge_fraction=f)
    S = _symmetric(a.n, a.src[between], a.dst[between], w if f < 1 else np.ones(w.size))
    if f < 1:
        B = _threshold(S, f)
        how = (f"symmetrised (w_ij + w_ji) and thresholded: the strongest {f:g} of the "
               f"undirected pairs kept, binary (the graph analyze() measures clustering, "
               f"path length and small-worldness on)")
    else:
        B = S
        how = "symmetrised, every undirected pair kept, binary"
    upper = sp.triu(B, k=1).tocoo()
    order = np.argsort(upper.row * a.n + upper.col)
    return np.stack([upper.row[order], upper.col[order]], 1).astype(np.int64), f, how


def _outside_candidates(pairs: "_Pairs", target_pairs: np.ndarray) -> list[str]:
    """A note when some of the target's edges are no candidate pair (no model grows them)."""
    key = target_pairs[:, 0] * pairs.n + target_pairs[:, 1]
    at = np.searchsorted(pairs.key, key)
    inside = (at < pairs.size) & (pairs.key[np.minimum(at, pairs.size - 1)] == key)
    if inside.all():
        return []
    return [f"{int((~inside).sum())} of the target's {len(key)} edges are not candidate "
            f"pairs: no model can grow them"]


def _landscape(model: str, pairs: "_Pairs", m: int, seed_idx: np.ndarray, etas: np.ndarray,
               gammas: np.ndarray, repeats: int, seed: int, epsilon: float,
               target: dict[str, np.ndarray], betweenness_sources: int | None, bar
               ) -> dict[str, Any]:
    """One model of :func:`fit_generative`: its energy over the grid (``repeats`` growths per
    point, each with its own random stream) and its best point."""
    n = pairs.n
    grid_g = np.zeros(1) if model == "spatial" else gammas
    E = np.zeros((etas.size, grid_g.size, repeats))
    KS = {s: np.zeros_like(E) for s in STATISTICS}
    for i, e in enumerate(etas):
        for j, g in enumerate(grid_g):
            for rep in range(repeats):
                rng = np.random.default_rng([seed, list(MODELS).index(model), i, j, rep])
                growth = _Growth(pairs, model, float(e), float(g), epsilon, seed_idx)
                order = np.concatenate([seed_idx, growth.grow(m, rng)])
                stats = _statistics(n, pairs.u[order], pairs.v[order], pairs.length[order],
                                    betweenness_sources, rng)
                ks = _ks_all(stats, target)
                for s in STATISTICS:
                    KS[s][i, j, rep] = ks[s]
                E[i, j, rep] = max(ks.values())
                bar.update()
    mean = E.mean(2)
    bi, bj = np.unravel_index(int(np.argmin(mean)), mean.shape)
    return {"eta": etas.tolist(), "gamma": None if model == "spatial" else gammas.tolist(),
            "energy": mean.tolist(), "energy_std": E.std(2).tolist(),
            "ks": {s: KS[s].mean(2).tolist() for s in STATISTICS},
            "best": {"eta": float(etas[bi]),
                     "gamma": None if model == "spatial" else float(gammas[bj]),
                     "energy": float(mean[bi, bj]),
                     "ks": {s: float(KS[s][bi, bj].mean()) for s in STATISTICS}},
            "description": MODELS[model]}


def fit_generative(G, models: Any = DEFAULT_MODELS, eta: Any = np.arange(-5.0, 0.01, 0.5),
                   gamma: Any = np.arange(-1.0, 3.01, 0.5), repeats: int = 2, seed: int = 0,
                   edge_fraction: float | None = None, candidates: Any = None,
                   seed_graph: Any = None, epsilon: float = 1e-5,
                   betweenness_sources: int | None = None,
                   progress: bool = False) -> dict[str, Any]:
    """Fit generative models to a connectome: the KS energy over an ``(eta, gamma)`` grid.

    The target is ``G`` made binary and undirected: directions merged (``w_ij + w_ji``) and,
    for a weighted connectome, the strongest ``edge_fraction`` of the undirected pairs kept
    (default 0.5: the binary graph :func:`analyze` measures clustering and small-worldness
    on; ``edge_fraction=1.0`` keeps every pair); an unweighted graph (or one whose weights
    are all equal) is kept whole. Its density is ``m / (N (N - 1) / 2)`` with ``m`` the
    edges kept (``result["target"]``). Distances come from the nodes' ``pos`` in the
    graph's metric.

    For every model, every grid point (``spatial``: every ``eta``; ``gamma`` is unused) is
    grown ``repeats`` times from ``seed_graph`` (default: empty) to ``m`` edges and scored
    with :func:`energy` against the target; the landscape holds the mean over repeats.

    Args:
        G: the connectome (a networkx graph with node ``pos``, e.g. from
            :func:`to_networkx`).
        models: names from :data:`MODELS`.
        eta, gamma: the grid values.
        repeats: graphs grown per grid point.
        seed: the seed of every draw (each run has its own stream: results do not depend on
            which other models are fitted).
        edge_fraction: see above.
        candidates: the pairs that may be wired (see :func:`generate`); default all pairs.
        seed_graph, epsilon: see :func:`generate`.
        betweenness_sources: see :func:`ks_statistics`.
        progress: show a progress bar (tqdm) over the runs.

    Returns:
        A JSON-ready dict: ``target`` (columns, edges, density, edge_fraction, how it was
        binarised, candidates, betweenness sources), ``models``: per model ``eta``,
        ``gamma`` (None for ``spatial``), ``energy`` and ``energy_std`` (lists
        ``[len(eta)][len(gamma)]``, one column for ``spatial``), ``ks`` (the mean KS
        statistic per distribution, same shape), ``best`` (``eta``, ``gamma``,
        ``energy`` and its ``ks``); ``best``: the model with the lowest energy; ``repeats``,
        ``seed``, ``notes``.

    Cost: ``runs = sum over models of len(eta) * len(gamma) * repeats`` (``spatial``:
    ``len(eta) * repeats``) growths of ``m`` edges (see :func:`generate`) plus one energy
    each, whose betweenness (``O(sources * N * diameter)``) dominates from a few thousand
    columns on: the default grid is ~800 runs. Runs are sequential (one process). A sheet of
    10^5 columns grows in under a minute (:func:`generate`), so the default grid's ~800
    growths alone would take ~10 hours there (estimated from that one measurement, energies
    not included): fit a coarse grid with few ``betweenness_sources`` at that size.

    Example:
        >>> import numpy as np
        >>> pos = np.random.default_rng(0).random((60, 2))
        >>> target = generate(pos, 150, eta=-3.0, model="spatial", seed=1)
        >>> fit = fit_generative(target, models=["spatial"], eta=[-5, -3, -1, 0], repeats=1)
        >>> fit["best"]["model"], fit["models"]["spatial"]["best"]["eta"]
        ('spatial', -3.0)
    """
    models = _check_models(models)
    etas, gammas = _check_grid("eta", eta), _check_grid("gamma", gamma)
    repeats = _check_int("repeats", repeats, 1, "graphs grown per grid point, e.g. 2")
    seed = _check_int("seed", seed, 0, "the seed of the growths")
    _check_sources(betweenness_sources)
    if edge_fraction is not None:
        from .arrays import check_settings

        check_settings(edge_fraction=edge_fraction)
    target_pairs, fraction, how = _target(G, edge_fraction)
    m = target_pairs.shape[0]
    sheet, cand, seed_pairs, m = _setup(G, m, models[0], seed_graph, candidates, epsilon)
    pairs = _Pairs(sheet, cand)
    seed_idx = _seed_index(pairs, seed_pairs)
    n = sheet.n
    target = _statistics(n, target_pairs[:, 0], target_pairs[:, 1],
                         sheet.length(target_pairs[:, 0], target_pairs[:, 1]),
                         betweenness_sources, np.random.default_rng([seed, 1 << 20]))
    notes = [] if cand is None else _outside_candidates(pairs, target_pairs)
    runs = sum(etas.size * (1 if k == "spatial" else gammas.size) * repeats for k in models)
    from tqdm import tqdm

    bar = tqdm(total=runs, desc="generative fit", unit="graph", disable=not progress)
    out_models: dict[str, Any] = {}
    for model in models:
        out_models[model] = _landscape(model, pairs, m, seed_idx, etas, gammas, repeats, seed,
                                       float(epsilon), target, betweenness_sources, bar)
    bar.close()
    best = min(out_models, key=lambda k: out_models[k]["best"]["energy"])
    result = {
        "target": {"columns": n, "edges": m, "density": m / (n * (n - 1) / 2),
                   "edge_fraction": fraction, "binarised": how,
                   "candidates": "all pairs" if cand is None else int(pairs.size),
                   "seed_edges": int(seed_idx.size),
                   "betweenness_sources": _sources(n, betweenness_sources)},
        "models": out_models,
        "best": {"model": best, **{k: out_models[best]["best"][k]
                                   for k in ("eta", "gamma", "energy")}},
        "repeats": repeats, "seed": seed, "epsilon": float(epsilon),
    }
    if notes:
        result["notes"] = notes
    return result


def plot_energy_landscape(result: dict[str, Any], path: str | Path) -> Path:
    """Heatmaps of the energy over ``(eta, gamma)``, one per model of
    :func:`fit_generative`'s ``result``, on one colour scale; each model's best point is
    marked, the best model's title says so.

    Example:
        >>> import numpy as np, tempfile
        >>> pos = np.random.default_rng(0).random((40, 2))
        >>> fit = fit_generative(generate(pos, 80, -2.0, model="spatial"), models=["spatial",
        ...                      "matching"], eta=[-3, -1], gamma=[0, 1], repeats=1)
        >>> plot_energy_landscape(fit, Path(tempfile.mkdtemp()) / "energy.png").exists()
        True
    """
    from .figures import _plt, _save

    if not isinstance(result, dict) or not isinstance(result.get("models"), dict) \
            or not result["models"]:
        raise ValueError("Expected the result of fit_generative (a dict with 'models'), got "
                         f"{type(result).__name__}" + (f" with keys {sorted(result)}"
                                                       if isinstance(result, dict) else "") +
                         ".")
    plt = _plt()
    models = result["models"]
    top = max(max(max(row) for row in r["energy"]) for r in models.values())
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models) + 1.2, 4.2),
                             squeeze=False, constrained_layout=True)
    image = None
    for ax, (name, r) in zip(axes[0], models.items()):
        energy_map = np.array(r["energy"], float)
        image = ax.imshow(energy_map, origin="lower", aspect="auto", cmap="viridis_r",
                          vmin=0.0, vmax=max(top, 1e-9), interpolation="nearest")
        etas, gammas = r["eta"], r["gamma"]
        ax.set_yticks(range(len(etas)))
        ax.set_yticklabels([f"{x:g}" for x in etas], fontsize=7)
        ax.set_ylabel("eta (distance exponent)")
        if gammas is None:
            ax.set_xticks([0])
            ax.set_xticklabels(["-"])
            ax.set_xlabel("gamma (unused: K = 1)")
        else:
            ax.set_xticks(range(len(gammas)))
            ax.set_xticklabels([f"{x:g}" for x in gammas], fontsize=7, rotation=90)
            ax.set_xlabel("gamma (topology exponent)")
        b = r["best"]
        bi = etas.index(b["eta"])
        bj = 0 if gammas is None else gammas.index(b["gamma"])
        ax.plot([bj], [bi], marker="*", color="red", markersize=14, markeredgecolor="white")
        where = f"eta={b['eta']:g}" + ("" if b["gamma"] is None else f", gamma={b['gamma']:g}")
        star = " (best model)" if result.get("best", {}).get("model") == name else ""
        ax.set_title(f"{name}{star}\nE = {b['energy']:.3f} at {where}", fontsize=9)
    fig.colorbar(image, ax=list(axes[0]), label="energy (max KS statistic)", shrink=0.9)
    t = result.get("target", {})
    fig.suptitle(f"Generative models: energy over (eta, gamma); {t.get('columns', '?')} "
                 f"columns, {t.get('edges', '?')} edges, {result.get('repeats', '?')} "
                 f"repeat(s) per point", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, path, tight=False)
    return path

"""Null models that separate what a sheet learned from what its geometry imposed.

A spatially embedded graph with local wiring is modular, clustered and "small-world" by
construction: a k-NN grid with RANDOM weights scores modularity far above a
degree-preserving null. So every scalar of the analysis is tested against several null
families, each named by what it keeps:

* ``degree``: directed configuration model: the edges' targets shuffled, weights travel
  with their edges. Keeps every in / out degree; destroys space.
* ``spatial``: degree- AND length-preserving rewiring (Betzel et al. 2016, the
  ``match_length_degree_distribution`` of the network-neuroscience toolboxes): double edge
  swaps ``a -> b, c -> d`` => ``a -> d, c -> b``, each accepted only when both new edges fall
  in the length bins of the edges they replace; then the weights are shuffled within each
  length bin (the weight distribution kept exactly, the weight-length relation at bin
  resolution). Lengths of new pairs come from the sheet's metric (euclidean, wrapped on a
  torus, great circle on a sphere: the graph's ``metric`` / ``period_*`` attributes that
  :func:`~colgraph.connectome.to_networkx` writes). Needs node positions. On k-NN wiring
  few edges can move (5-8% of a random sheet's k-NN edges, none of a full grid lattice's):
  the positions fix most of such a graph, and its null is mostly the weight shuffle.
* ``prior``: the sheet's OWN edges (the wiring the model was given, when the connectome was
  exported without a threshold) with the learned weights permuted within each target
  column; ``prior_length``: within length bins; ``prior_global``: over all edges. "Is this
  structure more than the geometry + the wiring rule?" as a direct test.

:func:`significance` measures every scalar of :data:`SCALARS` on the graph and on
``n_null`` samples of each family: the null mean and std, ``z = (value - mean) / std`` and the
empirical two-sided ``p = (1 + #{|null - mean| >= |value - mean|}) / (n_null + 1)`` (so the
smallest p is ``1 / (n_null + 1)``: raise ``n_null`` to resolve small p-values).

The swaps are vectorised (numpy, batches of proposals, ``O(E log E)`` per batch): a swap
partner ``c -> d`` is drawn among the in-edges of a spatial neighbour ``d`` of ``b``
(k-d tree), since two random edges of a local sheet are almost never swappable.
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from .arrays import EdgeArrays, _a, _config_model_directed, check_settings

__all__ = ["NULLS", "SCALARS", "null_model", "significance", "scalars", "check_families",
           "significance_table"]

#: null family -> what it keeps
NULLS = {
    "degree": "in / out degrees (directed configuration model; weights travel with edges)",
    "spatial": "in / out degrees and the edge-length distribution (length-binned swaps), "
               "weights shuffled within length bins",
    "prior": "the edges themselves, weights permuted within each target column",
    "prior_length": "the edges themselves, weights permuted within length bins",
    "prior_global": "the edges themselves, weights permuted over all edges",
}

#: the scalars tested against the nulls: name -> description
SCALARS = {
    "modularity_Q": "Louvain modularity of the symmetrised weighted graph",
    "weighted_clustering": "directed weighted clustering (Fagiolo)",
    "clustering": "clustering of the thresholded binary graph",
    "path_length": "characteristic path length of the thresholded graph",
    "small_world_sigma": "small-world sigma",
    "small_world_omega": "small-world omega",
    "rich_club_max": "max normalised rich-club coefficient",
    "reciprocity": "share of edges whose reverse exists",
    "weighted_reciprocity": "sum min(w_ij, w_ji) / sum w_ij",
    "edr_lambda": "EDR length scale of the weighted length distribution",
    "ff_index": "feedforward index over areas",
    "weight_distance_rho": "Spearman rho of weight vs length",
}

BINS = 10  # quantile length bins (Betzel et al. use 10), see _cuts


# ---------------------------------------------------------------------- the families
def _cuts(length: np.ndarray) -> np.ndarray:
    """Cuts between length bins: :data:`BINS` quantile bins of the finite lengths, and a
    bin of its own for every length shared by 1% of the edges or more (the few distinct
    lengths of a lattice: 1, sqrt 2, 2, ... on a grid), so no swap trades a lattice
    length for another and a full k-NN lattice, which no length-keeping swap can change,
    keeps its edges (its null is the weight shuffle alone)."""
    ok = np.isfinite(length)
    if not ok.any():
        return np.zeros(0)
    finite = length[ok]
    eps = 1e-6 * max(float(np.abs(finite).max()), 1e-12)
    values, counts = np.unique(np.round(finite / eps) * eps, return_counts=True)
    atoms = values[counts >= max(2, 0.01 * finite.size)]
    cuts = np.unique(np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1]))
    if atoms.size:
        near = np.abs(cuts[:, None] - atoms[None, :]).min(1) < 2 * eps
        cuts = np.unique(np.concatenate([cuts[~near], atoms - eps, atoms + eps]))
    return cuts


def _bins(length: np.ndarray, cuts: np.ndarray | None = None) -> np.ndarray:
    """Bin of each length between ``cuts`` (NaN lengths: a bin of their own, -1)."""
    cuts = _cuts(length) if cuts is None else cuts
    return np.where(np.isfinite(length), np.searchsorted(cuts, length, side="right"), -1)


def _permute_within(groups: np.ndarray, values: np.ndarray, rng) -> np.ndarray:
    """``values`` permuted at random within each group (vectorised: sort by group, then by a
    random key within it)."""
    order = np.lexsort((rng.random(groups.size), groups))  # a random order within groups
    by_group = np.argsort(groups, kind="stable")
    out = np.empty_like(values)
    out[by_group] = values[order]
    return out


def _has_positions(a: EdgeArrays) -> bool:
    return a.pos.ndim == 2 and bool(np.ptp(a.pos, axis=0).any())


def _pair_length(a: EdgeArrays) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Length of new pairs in the graph's metric (the geometry's own :func:`measure`)."""
    import torch

    from ..geometry.base import measure

    pos = torch.as_tensor(a.pos, dtype=torch.float64)
    period = None if a.period is None else torch.as_tensor(a.period, dtype=torch.float64)

    def length(s: np.ndarray, t: np.ndarray) -> np.ndarray:
        return measure(pos, torch.from_numpy(s), torch.from_numpy(t), a.metric, period).numpy()

    return length


def _neighbours(a: EdgeArrays, k: int) -> np.ndarray:
    """The ``k`` nearest columns of every column (itself excluded), ``(N, k)``: a k-d tree
    on the positions, wrapped where the sheet is periodic (chord distance on a sphere has
    the great circle's order)."""
    from scipy.spatial import cKDTree

    pos, box = a.pos - a.pos.min(0), None
    if a.period is not None and np.isfinite(a.period).any():
        # open dimensions get a box wider than the data: no pair wraps around them
        box = np.where(np.isfinite(a.period), a.period, 2 * np.ptp(pos, axis=0) + 1.0)
        pos = np.mod(pos, box)
    k = min(k, a.n - 1)
    _, idx = cKDTree(pos, boxsize=box).query(pos, k + 1)
    return idx[:, 1:].reshape(a.n, k)


def _absent(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Which ``query`` keys are not in the sorted ``keys``."""
    if keys.size == 0:
        return np.ones(query.size, bool)
    at = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return keys[at] != query


def _once(x: np.ndarray) -> np.ndarray:
    """Which entries of ``x`` occur exactly once."""
    _, first, count = np.unique(x, return_index=True, return_counts=True)
    out = np.zeros(x.size, bool)
    out[first[count == 1]] = True
    return out


def _swap(src: np.ndarray, dst: np.ndarray, length: np.ndarray, cuts: np.ndarray, n: int, near: np.ndarray, length_of, rng, batches: int,
          undirected: bool, fixed: np.ndarray) -> None:
    """Length-binned double edge swaps ``a -> b, c -> d`` => ``a -> d, c -> b`` on the edge
    arrays, in place (degrees kept exactly, each new edge in the length bin of the edge it
    replaces: :func:`_cuts`). ``undirected``: each entry is an edge in both directions (kept reciprocal),
    oriented at random for each batch. ``fixed``: sorted keys of other edges a new edge must
    not repeat. Each batch proposes ``E / 2`` swaps and applies the valid, disjoint ones."""
    E = src.size
    if E < 2:
        return
    for _ in range(batches):
        if undirected:  # any end can be the one that moves
            flip = rng.random(E) < 0.5
            src[flip], dst[flip] = dst[flip], src[flip]
        e1 = rng.integers(E, size=max(1, E // 2))
        b = dst[e1]
        d = near[b, rng.integers(near.shape[1], size=e1.size)]  # a column near b
        order = np.argsort(dst, kind="stable")
        ptr = np.searchsorted(dst[order], np.arange(n + 1))
        indeg = ptr[d + 1] - ptr[d]
        has = indeg > 0
        e1, b, d, indeg = e1[has], b[has], d[has], indeg[has]
        e2 = order[ptr[d] + (rng.random(e1.size) * indeg).astype(np.int64)]  # c -> d
        a_, c = src[e1], src[e2]
        ok = (a_ != d) & (c != b) & (a_ != c) & (e1 != e2)
        keys = src * n + dst
        if undirected:
            keys = np.concatenate([keys, dst * n + src])
        keys = np.sort(np.concatenate([keys, fixed]))
        new1, new2 = a_ * n + d, c * n + b
        ok &= _absent(keys, new1) & _absent(keys, new2)
        if undirected:
            ok &= _absent(keys, d * n + a_) & _absent(keys, b * n + c)
            new1, new2 = np.minimum(a_, d) * n + np.maximum(a_, d), \
                np.minimum(c, b) * n + np.maximum(c, b)
        l1, l2 = length_of(a_, d), length_of(c, b)
        ok &= (_bins(l1, cuts) == _bins(length[e1], cuts)) & (_bins(l2, cuts)
                                                             == _bins(length[e2], cuts))
        e1, e2, d, b, new1, new2, l1, l2 = (x[ok] for x in (e1, e2, d, b, new1, new2, l1, l2))
        # one swap per edge and per new pair in a batch: they are applied at once
        m = e1.size
        used, new = _once(np.concatenate([e1, e2])), _once(np.concatenate([new1, new2]))
        keep = used[:m] & used[m:] & new[:m] & new[m:]
        e1, e2, d, b, l1, l2 = (x[keep] for x in (e1, e2, d, b, l1, l2))
        dst[e1], dst[e2] = d, b
        length[e1], length[e2] = l1, l2


def _spatial_rewire(a: EdgeArrays, rng, swaps_per_edge: int = 10, neighbours: int = 16
                    ) -> EdgeArrays:
    """Degree- and length-preserving rewiring (see the module docstring). Reciprocal edge
    pairs are swapped as undirected edges (both directions move together, so the null keeps
    the reciprocity the geometry gives, e.g. k-NN wiring), one-way edges as directed ones;
    then the weights are shuffled within length bins."""
    length_of = _pair_length(a)
    n = a.n
    loops = a.src == a.dst  # self-loops stay as they are
    src, dst, weight = a.src[~loops], a.dst[~loops], a.weight[~loops]
    key = src * n + dst
    paired = np.isin(dst * n + src, key)
    up = paired & (src < dst)  # one entry per reciprocal pair
    ps, pd = src[up].copy(), dst[up].copy()
    os_, od = src[~paired].copy(), dst[~paired].copy()
    near = _neighbours(a, neighbours)
    cuts = _cuts(length_of(src, dst))
    batches = max(1, 2 * swaps_per_edge)
    plen, olen = length_of(ps, pd), length_of(os_, od)
    _swap(ps, pd, plen, cuts, n, near, length_of, rng, batches, True,
          np.sort(np.concatenate([os_ * n + od, od * n + os_])))
    _swap(os_, od, olen, cuts, n, near, length_of, rng, batches, False,
          np.sort(np.concatenate([ps * n + pd, pd * n + ps])))
    src = np.concatenate([ps, pd, os_, a.src[loops]])
    dst = np.concatenate([pd, ps, od, a.dst[loops]])
    length = np.concatenate([plen, plen, olen, length_of(a.src[loops], a.dst[loops])])
    # the observed weights, shuffled within the length bins (swaps keep every edge in its
    # bin, so each bin holds as many edges as before)
    bins = _bins(length, cuts)
    old_bins = _bins(length_of(a.src, a.dst), cuts)
    w = np.concatenate([weight, a.weight[loops]])
    w_bins = np.concatenate([old_bins[~loops], old_bins[loops]])
    new_w = np.empty_like(w)
    order_new = np.lexsort((rng.random(bins.size), bins))
    order_old = np.lexsort((rng.random(w_bins.size), w_bins))
    new_w[order_new] = w[order_old]
    return replace(a, src=src, dst=dst, weight=new_w, length=length)


def _degree(a: EdgeArrays, rng) -> EdgeArrays:
    src, dst, w = _config_model_directed(a, rng)
    length = a.length
    if _has_positions(a):
        length = _pair_length(a)(src, dst)
    else:  # no positions: new pairs have no length
        length = np.full(src.size, np.nan)
    return replace(a, src=src, dst=dst, weight=w, length=length)


def null_model(G, family: str, seed: int = 0) -> EdgeArrays:
    """One sample of a null ``family`` of :data:`NULLS` for the connectome ``G`` (a graph or
    :class:`~colgraph.connectome.arrays.EdgeArrays`), as edge arrays.

    Example:
        >>> from colgraph.connectome import to_networkx
        >>> from colgraph.geometry import grid, knn
        >>> from colgraph import Columnformer
        >>> G = to_networkx(Columnformer(grid(6, wiring=knn(4))))   # the prior wiring
        >>> null = null_model(G, "spatial", seed=1)
        >>> null.src.size == G.number_of_edges()                     # degrees are kept
        True
    """
    check_settings(seed=seed)
    a = _a(G)
    _check_family(a, family)
    rng = np.random.default_rng(seed)
    return _sample(a, family, rng)


def _sample(a: EdgeArrays, family: str, rng) -> EdgeArrays:
    if family == "degree":
        return _degree(a, rng)
    if family == "spatial":
        return _spatial_rewire(a, rng)
    groups = {"prior": a.dst, "prior_length": _bins(a.length),
              "prior_global": np.zeros(a.src.size, np.int64)}[family]
    return replace(a, weight=_permute_within(groups, a.weight, rng))


def _why_not(a: EdgeArrays, family: str) -> str | None:
    """Why ``family`` does not apply to the graph ``a`` (``None``: it does)."""
    if family == "spatial":
        if not _has_positions(a):
            return ("needs node positions ('pos'): the lengths of rewired edges come from "
                    "them")
        if int((a.src != a.dst).sum()) < 2:
            return "needs at least 2 edges between different columns to swap"
    if family == "prior_length" and not np.isfinite(a.length).any():
        return "needs edge lengths ('length' edge attribute)"
    return None


def check_families(families: Any) -> tuple[str, ...] | str | None:
    """``families`` as :func:`significance` takes it (``"auto"``, ``None``, a name or names
    of :data:`NULLS`), refused before any work when it names an unknown family."""
    if families is None or (isinstance(families, str) and families in ("auto", "none")):
        return None if families == "none" else families
    names = (families,) if isinstance(families, str) else families
    if not isinstance(names, (tuple, list)) or not names:
        raise ValueError(f"Expected the null families as 'auto', None or names from "
                         f"{', '.join(NULLS)} (got {families!r}).")
    for family in names:
        if family not in NULLS:
            raise ValueError(f"Unknown null family {family!r}. Choices: {', '.join(NULLS)} "
                             f"(or 'auto').")
    return tuple(dict.fromkeys(names))


def _check_family(a: EdgeArrays, family: Any) -> None:
    check_families(family)
    why = _why_not(a, family)
    if why:
        raise ValueError(f"The {family!r} null model does not apply to this graph: it {why}. "
                         f"Use another family ({', '.join(f for f in NULLS if f != family)}).")


# ---------------------------------------------------------------------- the scalars
def scalars(G, edge_fraction: float = 0.5, n_sources: int = 500, seed: int = 0
            ) -> dict[str, float]:
    """Every scalar of :data:`SCALARS` for one graph (NaN where the graph leaves it
    undefined). Louvain and the small-world / rich-club references are seeded by ``seed``."""
    import warnings

    from .degrees import reciprocity
    from .flow import area_flow
    from .lengths import edr_fit, weight_distance
    from .topology import modularity, rich_club, small_world, weighted_clustering

    a = _a(G)
    out = {"modularity_Q": modularity(a, n_null=0, seed=seed, workers=1)["Q"]}
    out.update(weighted_clustering(a))
    sw = small_world(a, edge_fraction, n_sources, seed)
    out.update(clustering=sw["clustering"], path_length=sw["path_length"],
               small_world_sigma=sw["sigma"], small_world_omega=sw["omega"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out["rich_club_max"] = rich_club(a, edge_fraction, 1, seed)["max_normalized"]
    out.update(reciprocity(a))
    out["edr_lambda"] = edr_fit(a)["lambda"]
    ff = area_flow(a)["ff_index"]
    out["ff_index"] = float("nan") if ff is None else ff
    out["weight_distance_rho"] = weight_distance(a)["weight_distance_rho"]
    return {k: float(out[k]) for k in SCALARS}


def _one_thread() -> None:
    """A worker process's torch uses one thread: the workers share the cores."""
    import torch

    torch.set_num_threads(1)


def _null_scalars(args) -> dict[str, float]:
    a, family, seed, edge_fraction, n_sources = args
    rng = np.random.default_rng(seed)
    return scalars(_sample(a, family, rng), edge_fraction, n_sources, seed)


def _test(value: float, null: np.ndarray) -> dict[str, float | None]:
    """Null mean / std, z and the empirical two-sided p of ``value`` (``None`` where
    undefined: NaN values, fewer than 2 finite nulls, or nulls all equal)."""
    null = null[np.isfinite(null)]
    if not np.isfinite(value) or null.size == 0:
        return {"mean": None, "std": None, "z": None, "p": None, "n": int(null.size)}
    mean, std = float(null.mean()), float(null.std(ddof=1)) if null.size > 1 else float("nan")
    z = (value - mean) / std if null.size > 1 and std > 0 else None
    p = (1 + int((np.abs(null - mean) >= abs(value - mean)).sum())) / (null.size + 1)
    return {"mean": mean, "std": std if np.isfinite(std) else None, "z": z, "p": float(p),
            "n": int(null.size)}


def significance(G, families: tuple[str, ...] | str = "auto", n_null: int = 10,
                 edge_fraction: float = 0.5, n_sources: int = 500, seed: int = 0,
                 workers: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Every scalar of :data:`SCALARS` against ``n_null`` samples of each null family.

    Args:
        G: a connectome graph (or edge arrays), checked as
            :func:`~colgraph.connectome.analyze` checks it.
        families: names from :data:`NULLS`, or ``"auto"``: ``degree``, ``spatial`` (when
            the graph has node positions) and ``prior``. A family named explicitly that
            does not apply (``spatial`` without positions, ...) is refused.
        n_null: samples per family (>= 2 for a z-score); the smallest p is
            ``1 / (n_null + 1)``.
        edge_fraction / n_sources: as in :func:`~colgraph.connectome.small_world`.
        workers: processes for the null samples (default: all cores when the graph has
            more than 20,000 edges; Louvain is pure Python).

    Returns a JSON-ready dict: ``n_null``; ``families`` (name -> what it keeps);
    ``metrics`` (scalar -> ``{"value", <family>: {"mean", "std", "z", "p", "n"}}``, ``None``
    where undefined); ``notes`` (families left out by ``auto`` and why).

    Example:
        >>> import networkx as nx
        >>> G = nx.gnp_random_graph(40, 0.15, seed=0, directed=True)
        >>> out = significance(G, families=("degree", "prior_global"), n_null=3)
        >>> sorted(out["metrics"]["modularity_Q"])
        ['degree', 'prior_global', 'value']
    """
    check_settings(n_null=n_null, edge_fraction=edge_fraction, n_sources=n_sources, seed=seed)
    families = check_families(families)
    if families is None:
        raise ValueError("significance needs null families: 'auto' or names from "
                         f"{', '.join(NULLS)} (got None).")
    if n_null < 1:
        raise ValueError(f"n_null must be >= 1 for a null test (got {n_null}); use >= 2 for "
                         f"z-scores, e.g. 10.")
    a = _a(G)
    notes = []
    if isinstance(families, str) and families == "auto":
        chosen = []
        for family in ("degree", "spatial", "prior"):
            why = _why_not(a, family)
            if why:
                notes.append(f"{family} null left out: it {why}")
            else:
                chosen.append(family)
    else:
        for family in families:
            _check_family(a, family)
        chosen = list(families)
    rng = np.random.default_rng(seed)
    jobs = [(a, family, int(s), edge_fraction, n_sources)
            for family in chosen for s in rng.integers(2**31, size=n_null)]
    value = scalars(a, edge_fraction, n_sources, seed)
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if workers > 1 and a.src.size > 20_000:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # spawned, not forked: a forked child of a process that ran torch's OpenMP threads
        # can hang in its first parallel op (the lengths, the areas' hop counts)
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                 initializer=_one_thread) as pool:
            results = list(_progress(pool.map(_null_scalars, jobs), len(jobs), progress))
    else:
        results = [_null_scalars(j) for j in _progress(jobs, len(jobs), progress)]
    metrics: dict[str, Any] = {}
    for name in SCALARS:
        v = value[name]
        entry: dict[str, Any] = {"value": v if np.isfinite(v) else None}
        for i, family in enumerate(chosen):
            null = np.array([r[name] for r in results[i * n_null:(i + 1) * n_null]])
            entry[family] = _test(v, null)
        metrics[name] = entry
    out = {"n_null": n_null, "families": {f: NULLS[f] for f in chosen}, "metrics": metrics}
    if notes:
        out["notes"] = notes
    return out


def significance_table(result: dict[str, Any]) -> str:
    """:func:`significance`'s result as a text table: each scalar's value, then ``z (p)``
    per family; ``*`` marks |z| >= 3."""
    families = list(result["families"])
    head = f"{'metric':22s} {'value':>9s}  " + "  ".join(f"{f:>16s}" for f in families)
    lines = [f"significance: {result['n_null']} null samples per family (smallest p "
             f"{1 / (result['n_null'] + 1):.2g}); z (p), * = |z| >= 3", head]
    for name, entry in result["metrics"].items():
        if entry["value"] is None:
            continue
        cells = []
        for f in families:
            z, p = entry[f]["z"], entry[f]["p"]
            cell = "n/a" if z is None else f"{z:+.1f}{'*' if abs(z) >= 3 else ' '}"
            cells.append(f"{cell + ('' if p is None else f' ({p:.2f})'):>16s}")
        lines.append(f"{name:22s} {entry['value']:9.4g}  " + "  ".join(cells))
    return "\n".join(lines)


def _progress(items, total: int, show: bool):
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc="null models", unit="graph")

"""Maps on the sheet: spatial autocorrelation and map-vs-map correlation with spatial nulls.

A per-column map (receptive-field size, strength, selectivity, any user array ``[N]`` in
column order) on a spatially embedded sheet is smooth: neighbouring columns have similar
values. Two smooth maps correlate by chance far more often than two white-noise maps, so
the plain correlation p-value (which assumes independent columns) is too small.

* :func:`morans_i`: Moran's I of a map on the sheet's own graph, with its expectation
  ``-1/(N-1)``, a z-score (exact mean and variance of I under random relabelling of the
  columns) and a two-sided permutation p.
* :func:`map_correlation`: Pearson or Spearman r of two maps, the naive p and the p of a
  spatial null model that keeps the first map's spatial autocorrelation
  (:mod:`~colgraph.connectome.map_nulls`): ``"spin"`` rotations for columns on a sphere,
  ``"moran"`` spectral randomisation for any other sheet with a graph; ``"auto"`` picks.

Symbols: ``N`` columns, ``E`` edges, ``P`` permutations / null maps. Everything is numpy /
scipy.sparse: Moran's I costs ``O(E)`` per map plus ``O(E P)`` for its permutations (in
blocks: ``O(N * block)`` memory); the nulls' costs are in :mod:`~colgraph.connectome.map_nulls`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .map_nulls import (_check_settings, _chunks, _constant, _map, _masked_note, _null_blocks,
                    _plan, _sheet, _two_sided, _usable)

__all__ = ["morans_i", "map_correlation", "map_report", "METHODS", "REPORTED"]

METHODS = ("pearson", "spearman")


# ------------------------------------------------------------------ Moran's I
def morans_i(where: Any, values: Any, n_perm: int = 999, seed: int = 0,
             weighted: bool = True) -> dict[str, Any]:
    """Moran's I of a per-column map on the sheet's graph.

    ``I = N / S0 * sum_ij w_ij z_i z_j / sum_i z_i^2`` with ``z`` the map minus its mean
    and ``W`` symmetric without self-loops (``S0 = sum_ij w_ij``). ``I`` near 1: smooth;
    near ``-1/(N-1)``: no spatial structure; negative: a checkerboard.

    Args:
        where: the sheet. A connectome graph (``W = A + A^T`` of its ``weight``s, or binary
            with ``weighted=False``), a colgraph :class:`~colgraph.geometry.Geometry`
            (binary: its edges, symmetrised), edge arrays, a scipy.sparse matrix
            ``[N, N]``, or positions ``[N, D]`` (binary graph of the 8 nearest neighbours).
        values: the map, ``[N]`` in column order. NaN marks columns without a value: they
            are left out with their edges (the result's ``note`` says how many).
        n_perm: random relabellings of the columns for the permutation p (>= 1).
        seed: seed of the permutations.
        weighted: for graphs and sparse matrices, use the edge weights (default) or 1 per
            edge.

    Returns:
        ``I``, ``expected`` (``-1/(N-1)``), ``z`` (``(I - expected) / sd`` with the exact
        variance of I over relabellings, the "randomisation" assumption), ``p`` (two-sided
        permutation p: ``(1 + #{|I_perm - E| >= |I - E|}) / (n_perm + 1)``), ``n`` (columns
        with a value), ``n_perm``, ``weights`` (which matrix); ``note`` when something was
        left out or is undefined (a constant map: ``I``, ``z``, ``p`` are None).

    Example:
        >>> import numpy as np
        >>> from colgraph.geometry import grid, knn
        >>> geo = grid(20, wiring=knn(k=8))
        >>> x = np.cos(np.pi * geo.pos[:, 0].numpy() / 19)  # one smooth gradient
        >>> m = morans_i(geo, x, n_perm=99)
        >>> m["I"] > 0.9, m["p"], round(m["expected"], 4)  # p: 1 / (99 + 1), the smallest
        (True, 0.01, -0.0025)
    """
    _check_settings(n_perm, seed)
    sheet = _sheet(where, weighted)
    x = _map(values, sheet.n, "values")
    keep = ~np.isnan(x)
    _usable(keep, 4, "Moran's I")
    W = sheet.graph()
    notes = sheet.notes + _masked_note(keep)
    if not keep.all():
        W = W[keep][:, keep].tocsr()
    x = x[keep]
    n = x.size
    expected = -1.0 / (n - 1)
    out: dict[str, Any] = {"I": None, "expected": expected, "z": None, "p": None, "n": n,
                           "n_perm": int(n_perm), "weights": sheet.weights}
    z = x - x.mean()
    m2 = float(z @ z)
    S0 = float(W.sum())
    if _constant(x) or m2 <= 0:
        notes.append("the map is constant (up to float rounding): Moran's I is undefined")
    elif S0 <= 0:
        notes.append("no edge joins two columns with values: Moran's I is undefined")
    else:
        scale = n / S0 / m2
        I = scale * float(z @ (W @ z))
        out["I"] = I
        # moments over relabellings (Cliff & Ord 1981): W is symmetric
        S1 = 2.0 * float((W.data ** 2).sum())
        S2 = 4.0 * float((np.asarray(W.sum(1)).ravel() ** 2).sum())
        k = n * float((z ** 4).sum()) / m2 ** 2
        var = (n * ((n * n - 3 * n + 3) * S1 - n * S2 + 3 * S0 ** 2)
               - k * ((n * n - n) * S1 - 2 * n * S2 + 6 * S0 ** 2)) \
            / ((n - 1) * (n - 2) * (n - 3) * S0 ** 2) - expected ** 2
        out["z"] = float((I - expected) / np.sqrt(var)) if var > 0 else None
        if var <= 0:
            notes.append("z: undefined: I does not vary over relabellings of the columns")
        # the permutations in float32 (half the memory traffic; I_perm to ~1e-6 relative,
        # far below what moves a p-value)
        upper, z32 = _upper(W).astype(np.float32), z.astype(np.float32)
        rng = np.random.default_rng(seed)
        null = np.concatenate([2.0 * scale * _quadratic(upper, rng.permuted(
            np.tile(z32, (rows, 1)), axis=1)) for rows in _chunks(n_perm, n)])
        out["p"] = _two_sided(null - expected, I - expected)
    if notes:
        out["note"] = "; ".join(notes)
    return out


def _upper(W):
    import scipy.sparse as sp

    return sp.triu(W, k=1).tocsr()


def _quadratic(upper, Z: np.ndarray) -> np.ndarray:
    """``z^T U z`` for each row ``z`` of ``Z [P, N]`` (``U``: the strict upper triangle)."""
    ZT = np.ascontiguousarray(Z.T)  # (N, P)
    return (upper @ ZT * ZT).sum(0, dtype=np.float64)


def _standardised(X: np.ndarray, method: str) -> np.ndarray:
    """Rows of ``X`` (ranked for Spearman) centred and scaled to unit norm (0 if constant)."""
    if method == "spearman":
        from scipy.stats import rankdata

        X = rankdata(X, axis=-1)
    X = X - X.mean(-1, keepdims=True)
    norm = np.linalg.norm(X, axis=-1, keepdims=True)
    return np.divide(X, norm, out=np.zeros_like(X), where=norm > 0)


def map_correlation(a: Any, b: Any, where: Any, null: str = "auto", n_perm: int = 1000,
                    seed: int = 0, method: str = "pearson", sphere: Any = None,
                    weighted: bool = True, n_eig: int = 100) -> dict[str, Any]:
    """Correlation of two maps on a sheet, tested against a spatial null model.

    Args:
        a, b: the maps, ``[N]`` each, in column order. NaN in either leaves the column out
            (of the correlation and of the null: spins reassign among the kept columns,
            the moran null uses the graph between them), with a ``note``.
        where: the sheet, as for :func:`morans_i` (a Geometry, a connectome graph, ...).
        null: ``"spin"`` (columns on a sphere, or ``sphere=`` given), ``"moran"`` (any
            sheet with a graph or positions), ``"auto"`` (spin on a sphere, else moran).
            The surrogates are of ``a``; ``b`` stays as it is.
        n_perm: null maps (>= 1).
        seed: seed of the rotations / sign flips / permutations.
        method: ``"pearson"`` or ``"spearman"`` (ranks; each null map ranked again).
        sphere: ``[N, 3]`` coordinates of the columns on a sphere (e.g. a FreeSurfer
            ``lh.sphere`` in column order) for the spin test of a folded surface.
        weighted: graph weights for the moran null (as :func:`morans_i`).
        n_eig: leading eigenvectors the moran null randomises.

    Returns:
        ``r``, ``method``, ``p_naive`` (scipy's p for independent columns, two-sided),
        ``p_spatial`` (two-sided, ``(1 + #{|r_null| >= |r|}) / (n_perm + 1)``), ``null``
        (``"spin"`` or ``"moran"``), ``n_perm``, ``n`` (columns used), ``null_mean`` /
        ``null_sd`` of ``r_null``; for moran also ``graph``, ``eigenvectors`` and
        ``variance_outside`` (share of ``a``'s variance permuted without its spatial
        structure: near 0 is good; above 0.2 the test leans toward the naive one, raise
        ``n_eig``); ``note`` when columns were left out or ``r`` is undefined (a constant
        map: ``r``, ``p_naive``, ``p_spatial`` are None).

    Example:
        >>> import numpy as np
        >>> from colgraph.geometry import sphere
        >>> geo = sphere(300)
        >>> z = geo.pos[:, 2].numpy()
        >>> m = map_correlation(z, z ** 3, geo, n_perm=99)
        >>> m["null"], round(m["r"], 2), m["p_spatial"] <= 0.02
        ('spin', 0.92, True)
    """
    _check_settings(n_perm, seed)
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}. Choices: {', '.join(METHODS)}.")
    sheet = _sheet(where, weighted)
    x, y = _map(a, sheet.n, "a"), _map(b, sheet.n, "b")
    keep = ~(np.isnan(x) | np.isnan(y))
    _usable(keep, 4, "map_correlation")
    name, state, details = _plan(sheet, null, sphere, n_eig)
    notes = sheet.notes + [n.replace("NaN", "NaN in a or b") for n in _masked_note(keep)]
    out: dict[str, Any] = {"r": None, "method": method, "p_naive": None, "p_spatial": None,
                           "null": name, "n_perm": int(n_perm), "n": int(keep.sum()),
                           "null_mean": None, "null_sd": None}
    xs, ys = x[keep], y[keep]
    constant = [k for k, v in (("a", xs), ("b", ys)) if _constant(v)]
    if constant:
        notes.append(f"map {' and '.join(constant)} is constant over the {keep.sum()} "
                     f"columns (up to float rounding): the correlation is undefined")
    else:
        from scipy.stats import pearsonr, spearmanr

        r, p = (pearsonr if method == "pearson" else spearmanr)(xs, ys)
        out["r"], out["p_naive"] = float(r), float(p)
        yb = _standardised(ys, method)
        null = np.concatenate([_standardised(block, method) @ yb for block in _null_blocks(
            name, state, xs, keep, sheet, n_perm, np.random.default_rng(seed), n_eig,
            details)])
        out.update(p_spatial=_two_sided(null, float(r)), null_mean=float(null.mean()),
                   null_sd=float(null.std()))
        outside = details.get("variance_outside")
        if outside is not None and outside > 0.2:
            notes.append(f"{outside:.0%} of a's variance lies outside the {details['eigenvectors']} "
                         f"leading eigenvectors and was permuted without its "
                         f"spatial structure: raise n_eig for a stricter test")
    out.update(details)
    if notes:
        out["note"] = "; ".join(notes)
    return out


#: the per-column node metrics whose Moran's I the report gives (each when present)
REPORTED = ("in_strength", "out_strength", "receptive_field", "selectivity")


def map_report(G, n_perm: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The ``maps`` section of ``metrics.json``: Moran's I of each per-column node metric of
    :data:`REPORTED` the graph has (computed with :func:`~colgraph.connectome.node_metrics`
    where the nodes do not carry them), and the correlation of receptive-field size with
    selectivity (with ``out_strength`` when there is no selectivity) against a spatial null
    (``"auto"``: spin on a sphere, moran elsewhere). All on the connectome's own weighted,
    symmetrised graph (``w_ij + w_ji``). Undefined values are None, with a ``note``.

    Example:
        >>> from colgraph import Columnformer
        >>> from colgraph.connectome import to_networkx
        >>> from colgraph.geometry import grid, knn
        >>> G = to_networkx(Columnformer(grid(8, wiring=knn(8)), channels=4, steps=1))
        >>> m = map_report(G, n_perm=49)
        >>> sorted(m["morans_i"]), m["correlation"]["b"]
        (['in_strength', 'out_strength', 'receptive_field'], 'out_strength')
    """
    from .analysis import node_metrics
    from .arrays import arrays

    _check_settings(n_perm, seed)
    a = arrays(G)  # one pass over the graph for every map below
    data = list(G.nodes(data=True))
    have = [k for k in REPORTED if data and all(k in d for _, d in data)]
    maps = {k: np.array([float(d[k]) for _, d in data]) for k in have}
    if any(k not in maps for k in REPORTED[:3]):
        computed = node_metrics(a, community=False)
        maps.update({k: computed[k] for k in REPORTED[:3] if k not in maps})
    out: dict[str, Any] = {"n_perm": int(n_perm), "morans_i": {
        k: morans_i(a, maps[k], n_perm=n_perm, seed=seed) for k in REPORTED if k in maps}}
    inputs = out["morans_i"]["in_strength"]
    if inputs["I"] is None and "constant" in inputs.get("note", ""):
        inputs["note"] += (" (attention and the prior softmax(bias) sum to one over each "
                           "column's inputs)")
    pair = ("receptive_field", "selectivity" if "selectivity" in maps else "out_strength")
    out["correlation"] = {"a": pair[0], "b": pair[1], **map_correlation(
        maps[pair[0]], maps[pair[1]], a, n_perm=n_perm, seed=seed)}
    return out

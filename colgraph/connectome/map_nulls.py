"""Spatial null models of a per-column map: surrogate maps that keep its spatial
autocorrelation, for :func:`colgraph.connectome.map_correlation`.

* **spin** (Alexander-Bloch et al. 2018), for columns on a sphere (a
  :func:`colgraph.geometry.sphere` sheet, or ``sphere=`` coordinates such as a FreeSurfer
  ``lh.sphere`` in column order): the sphere is rotated at random (uniformly over SO(3));
  each column takes the value of the column nearest its rotated position.
* **moran** (Moran spectral randomisation, Wagner & Dadashkarimi 2018), for any sheet with a
  graph (grids, tori, stacks, meshes, user graphs): the map's coefficients on the leading
  eigenvectors of the doubly centred neighbour matrix get random signs, the rest of the map
  is permuted (why this method: :func:`_moran_basis`).

Also here: what a map lives on (:func:`_sheet`: a Geometry, a connectome graph, edge
arrays, a sparse neighbour matrix or positions) and the checks of maps and settings.

Symbols: ``N`` columns, ``E`` edges, ``K`` eigenvectors, ``P`` null maps. The spin null
costs ``O(P N log N)``, the moran null one sparse eigensolve plus ``O(P N K)``; null maps
are drawn in blocks, so memory stays ``O(N K + N * block)``, never ``O(N^2)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["spatial_nulls", "spin_indices", "MAP_NULLS"]

MAP_NULLS = ("auto", "spin", "moran")
KNN = 8  # neighbours per column of the graph built for bare positions
SPHERE_TOL = 1e-2  # largest |distance from the centre - radius| / radius of a sphere's columns
_CHUNK = 2_000_000  # values per block of null maps (rows x columns): ~16 MB of float64


# ------------------------------------------------------------------ the sheet
@dataclass
class _Sheet:
    """What a map lives on: ``n`` columns, positions (or None), a symmetric neighbour
    matrix (or None: built from positions when asked), and how it was made."""

    n: int
    pos: np.ndarray | None = None
    W: Any = None  # scipy.sparse CSR [N, N], symmetric, zero diagonal
    weights: str = "binary"
    sphere_centre: np.ndarray | None = None  # known centre (a 'sphere' metric geometry)
    notes: list[str] = field(default_factory=list)

    def graph(self):
        if self.W is None:
            if self.pos is None:
                raise ValueError("This sheet has neither edges nor positions: Moran's I and "
                                 "the moran null need a graph.")
            from scipy.spatial import cKDTree

            k = min(KNN, self.n - 1)
            _, idx = cKDTree(self.pos).query(self.pos, k + 1)
            src = np.repeat(np.arange(self.n), k)
            self.W = _symmetric(self.n, src, idx[:, 1:].ravel(), None)
            self.weights = f"binary, the {k} nearest neighbours of each column (symmetrised)"
        return self.W


def _symmetric(n: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray | None):
    """``W = A + A^T`` without self-loops: weighted (``w_ij + w_ji``) or, with ``w=None``,
    binary (1 where an edge runs either way)."""
    import scipy.sparse as sp

    keep = src != dst
    data = np.ones(int(keep.sum())) if w is None else np.asarray(w, float)[keep]
    A = sp.csr_matrix((data, (src[keep], dst[keep])), shape=(n, n))
    W = (A + A.T).tocsr()
    if w is None:
        W.data[:] = 1.0
    W.eliminate_zeros()
    return W


def _sheet(where: Any, weighted: bool = True) -> _Sheet:
    """A :class:`_Sheet` from a Geometry, a connectome graph, edge arrays, a sparse matrix
    ``[N, N]`` or positions ``[N, D]``."""
    import networkx as nx
    import scipy.sparse as sp

    from ..geometry import Geometry
    from .arrays import EdgeArrays, arrays

    if not isinstance(weighted, (bool, np.bool_)):
        raise TypeError(f"weighted must be True or False (got {weighted!r}).")
    if isinstance(where, Geometry):
        src, dst = where.edge_index.numpy()
        pos = where.pos.double().numpy()
        return _Sheet(where.num_columns, pos, _symmetric(where.num_columns, src, dst, None),
                      "binary (the geometry's edges, symmetrised)",
                      np.zeros(pos.shape[1]) if where.metric == "sphere" else None)
    if isinstance(where, (nx.Graph, EdgeArrays)):
        a = where if isinstance(where, EdgeArrays) else arrays(where)
        pos = a.pos if np.ptp(a.pos, axis=0).any() else None  # arrays() fills zeros: none
        if weighted:
            W = _symmetric(a.n, a.src, a.dst, a.weight)
            how = f"weighted: w_ij + w_ji (weight = {a.weight_name})"
        else:
            W, how = _symmetric(a.n, a.src, a.dst, None), "binary (edges symmetrised)"
        return _Sheet(a.n, pos, W, how, notes=list(a.notes))
    if sp.issparse(where):
        if where.ndim != 2 or where.shape[0] != where.shape[1]:
            raise ValueError(f"Expected a square neighbour matrix [N, N] (got "
                             f"{list(where.shape)}).")
        coo = sp.coo_matrix(where)
        if coo.nnz and (not np.isfinite(coo.data).all() or (coo.data < 0).any()):
            raise ValueError("Expected finite neighbour weights >= 0 in the sparse matrix.")
        w = coo.data if weighted else None
        return _Sheet(where.shape[0], None, _symmetric(where.shape[0], coo.row, coo.col, w),
                      "weighted: w_ij + w_ji" if weighted else "binary (symmetrised)")
    if hasattr(where, "detach"):
        where = where.detach().cpu().numpy()
    if isinstance(where, (np.ndarray, list, tuple)):
        pos = np.asarray(where, dtype=float)
        if pos.ndim != 2 or pos.shape[0] < 2 or not np.isfinite(pos).all():
            raise ValueError(f"Expected column positions [N, D] with N >= 2, all finite (got "
                             f"shape {list(pos.shape)}).")
        return _Sheet(pos.shape[0], pos)
    raise TypeError(f"Expected where= to be a colgraph Geometry, a connectome graph "
                    f"(networkx), edge arrays, a scipy.sparse neighbour matrix [N, N] or "
                    f"positions [N, D]; got {type(where).__name__}.")


# ------------------------------------------------------------------ checks
def _check_int(name: str, value: Any, low: int, what: str) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < low:
        raise ValueError(f"{name} must be an integer >= {low} (got {value!r}): {what}.")


def _check_settings(n_perm: Any, seed: Any) -> None:
    _check_int("n_perm", n_perm, 1, "the number of null maps / permutations, e.g. 1000")
    _check_int("seed", seed, 0, "the seed of the null maps")


def _map(values: Any, n: int, name: str) -> np.ndarray:
    """``values`` as floats ``[N]``: one per column; NaN marks a column without a value
    (left out), infinities are refused."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"Expected {name} to be numbers, one per column (got "
                        f"{type(values).__name__}).") from None
    if x.shape != (n,):
        raise ValueError(f"Expected {name} of shape [{n}] (one value per column, in column "
                         f"order), got {list(x.shape)}. Pass node_metrics(G)[...] or an "
                         f"array indexed by column id.")
    if np.isinf(x).any():
        i = int(np.flatnonzero(np.isinf(x))[0])
        raise ValueError(f"Expected finite {name} (NaN marks a column without a value), but "
                         f"column {i} holds {x[i]}. Replace it with a number or NaN.")
    return x


def _usable(keep: np.ndarray, minimum: int, what: str) -> None:
    if int(keep.sum()) < minimum:
        raise ValueError(f"{what} needs at least {minimum} columns with a value (got "
                         f"{int(keep.sum())} of {keep.size}; NaN marks a column without one).")


def _constant(x: np.ndarray) -> bool:
    """Whether a map is constant up to float32 rounding (a spread of at most 1e-6 of its
    largest value): e.g. the in-strengths of attention, which sum to one per column."""
    return bool(np.ptp(x) <= 1e-6 * np.abs(x).max())


def _masked_note(keep: np.ndarray) -> list[str]:
    left = int((~keep).sum())
    return [f"{left} of {keep.size} columns hold NaN and were left out (with their edges)"] \
        if left else []


def _chunks(total: int, width: int) -> list[int]:
    rows = max(1, _CHUNK // max(width, 1))
    return [min(rows, total - i) for i in range(0, total, rows)]


def _two_sided(null: np.ndarray, observed: float) -> float:
    """Empirical two-sided p with the +1 correction: ``(1 + #{|null| >= |obs|}) / (P + 1)``
    (a relative tolerance of 1e-12 counts ties from rounding)."""
    hits = np.abs(null) >= abs(observed) * (1 - 1e-12)
    return float((1 + int(hits.sum())) / (null.size + 1))



# ------------------------------------------------------------------ spin null
def _sphere_fit(pos: np.ndarray, centre: np.ndarray | None = None
                ) -> tuple[np.ndarray, float, float]:
    """``(centre, radius, worst relative deviation)`` of the sphere through ``pos [N, 3]``
    (least squares: ``|p|^2 = 2 c.p + r^2 - |c|^2``), or around a known ``centre``."""
    if centre is None:
        A = np.c_[2 * pos, np.ones(len(pos))]
        sol, *_ = np.linalg.lstsq(A, (pos ** 2).sum(1), rcond=None)
        centre = sol[:3]
    d = np.linalg.norm(pos - centre, axis=1)
    r = float(d.mean())
    return centre, r, float(np.abs(d - r).max() / r) if r > 0 else np.inf


def _on_sphere(sheet: _Sheet, sphere: Any) -> tuple[np.ndarray | None, str]:
    """Unit vectors ``[N, 3]`` of the columns on their sphere (None if they lie on none),
    and what arrived, for the error message."""
    if sphere is not None:
        if hasattr(sphere, "detach"):
            sphere = sphere.detach().cpu().numpy()
        s = np.asarray(sphere, dtype=float)
        if s.shape != (sheet.n, 3) or not np.isfinite(s).all():
            raise ValueError(f"Expected sphere= coordinates of shape [{sheet.n}, 3] (one "
                             f"finite point per column, in column order, e.g. the vertices "
                             f"of a FreeSurfer lh.sphere), got shape {list(s.shape)}"
                             + ("" if s.shape != (sheet.n, 3) else " with NaN/inf") + ".")
        centre, r, dev = _sphere_fit(s)
        if dev > SPHERE_TOL:
            raise ValueError(f"Expected sphere= points on a sphere (distances from the fitted "
                             f"centre within {SPHERE_TOL:.0%} of the radius), but they vary "
                             f"by {dev:.1%} of the radius {r:.3g}. Pass the spherical surface "
                             f"(lh.sphere / *.sphere.surf.gii), not the pial or white one.")
        return (s - centre) / r, "sphere= coordinates"
    if sheet.pos is None:
        return None, "a sheet without positions"
    if sheet.pos.shape[1] != 3:
        return None, f"positions {list(sheet.pos.shape)} (a {sheet.pos.shape[1]}-D sheet)"
    centre, r, dev = _sphere_fit(sheet.pos, sheet.sphere_centre)
    if dev > SPHERE_TOL and sheet.sphere_centre is not None:  # a 'sphere' metric off-centre
        centre, r, dev = _sphere_fit(sheet.pos)
    if dev > SPHERE_TOL:
        return None, (f"positions {list(sheet.pos.shape)} whose distances from the best "
                      f"centre vary by {dev:.1%} of the radius")
    return (sheet.pos - centre) / r, "positions on a sphere"


def _spin_error(what: str) -> ValueError:
    return ValueError(f"null='spin' needs columns on a sphere: expected positions [N, 3] at "
                      f"one distance from a centre (within {SPHERE_TOL:.0%}; e.g. a "
                      f"colgraph.geometry.sphere(...) sheet), got {what}. Pass "
                      f"sphere=<[N, 3] coordinates of the columns on a sphere, e.g. a "
                      f"FreeSurfer lh.sphere in column order>, or use null='moran' (any "
                      f"sheet with a graph).")


def _random_rotations(count: int, rng: np.random.Generator) -> np.ndarray:
    """``[count, 3, 3]`` rotation matrices drawn uniformly from SO(3) (det +1)."""
    from scipy.spatial.transform import Rotation

    return Rotation.random(count, random_state=rng).as_matrix().reshape(count, 3, 3)


def _spins(unit: np.ndarray, n_perm: int, rng: np.random.Generator):
    """Blocks ``[rows, N]`` of reassignments: ``idx[p, i]`` = the column nearest column
    ``i``'s position after rotation ``p`` (the null map is ``a[idx[p]]``)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(unit)
    n = len(unit)
    for rows in _chunks(n_perm, n):
        R = _random_rotations(rows, rng)
        moved = np.einsum("nd,pde->pne", unit, R).reshape(-1, 3)  # (rows * N, 3)
        yield tree.query(moved, k=1)[1].reshape(rows, n)


def spin_indices(where: Any, n_perm: int = 1000, seed: int = 0, sphere: Any = None
                 ) -> np.ndarray:
    """``[n_perm, N]`` column indices of ``n_perm`` random rotations of a spherical sheet:
    row ``p`` sends column ``i`` to the column nearest its rotated position, so
    ``values[idx[p]]`` is the ``p``-th spun map (nearest-neighbour reassignment: a column
    may be picked twice and another never, as in Alexander-Bloch et al. 2018).

    ``where``: a sheet whose columns lie on a sphere (a Geometry, a connectome graph,
    positions ``[N, 3]``), or any sheet with ``sphere=`` coordinates ``[N, 3]``.

    Example:
        >>> from colgraph.geometry import sphere
        >>> idx = spin_indices(sphere(200), n_perm=5)
        >>> idx.shape, int(idx.min()) >= 0, int(idx.max()) < 200
        ((5, 200), True, True)
    """
    _check_settings(n_perm, seed)
    sheet = _sheet(where)
    unit, what = _on_sphere(sheet, sphere)
    if unit is None:
        raise _spin_error(what)
    return np.concatenate(list(_spins(unit, n_perm, np.random.default_rng(seed))))


# ------------------------------------------------------------------ moran null
def _moran_basis(W, n_eig: int) -> tuple[np.ndarray, np.ndarray]:
    """``(eigenvalues [K], eigenvectors [N, K])``: the ``n_eig`` leading eigenpairs of the
    doubly centred neighbour matrix ``H W H`` (``H = I - 11^T / N``), positive only.

    Why this null off spheres: Moran spectral randomisation (Wagner & Dadashkarimi 2018,
    BrainSpace) writes a map in the eigenvectors of ``H W H``; eigenvector ``k`` is a
    pattern of Moran's I proportional to its eigenvalue, so the leading ones are the
    sheet's smoothest patterns (on a grid: its lowest spatial frequencies). Flipping the
    sign of each coefficient at random keeps the map's power in every pattern, hence its
    Moran's I and spatial spectrum, on any graph (grid, torus, stack, mesh, user graph),
    with no distance matrix. Restricted to the ``K`` leading eigenvectors, one sparse
    Lanczos solve (``eigsh`` on ``W`` applied as an ``O(E)`` operator) and ``O(N K)``
    memory suffice: it scales to 10^5 columns, where the full basis (``O(N^2)`` memory,
    ``O(N^3)`` time) or variogram matching over pair distances (Burt et al. 2020) would
    not, and it needs no tuning of smoothing kernels. What lies outside the ``K``
    patterns (the map's finest detail) is permuted as in a plain permutation test; the
    result reports the share of the map's variance it holds (``variance_outside``).
    """
    import scipy.sparse.linalg as sla
    from scipy.linalg import eigh

    n = W.shape[0]
    k = int(min(n_eig, n - 2))
    if n <= 500:  # small sheets: the dense solve is exact and quick
        M = W.toarray()
        M = M - M.mean(0) - M.mean(1)[:, None] + M.mean()
        vals, vecs = eigh(M)
        vals, vecs = vals[::-1][:k], vecs[:, ::-1][:, :k]
    else:
        ones = np.full(n, 1.0 / n)

        def hwh(v: np.ndarray) -> np.ndarray:
            v = v - ones * v.sum(0)  # (N,) or (N, m)
            w = W @ v
            return w - ones * w.sum(0)

        op = sla.LinearOperator((n, n), matvec=hwh, matmat=hwh, dtype=float)
        v0 = np.random.default_rng(0).standard_normal(n)  # the same basis on every call
        vals, vecs = sla.eigsh(op, k=k, which="LA", v0=v0 - v0.mean())
        order = np.argsort(-vals)
        vals, vecs = vals[order], vecs[:, order]
    pos = vals > 1e-10 * max(abs(vals).max(), 1e-300)
    return vals[pos], vecs[:, pos]


def _moran_maps(x: np.ndarray, vecs: np.ndarray, n_perm: int, rng: np.random.Generator):
    """Blocks ``[rows, N]`` of surrogates of ``x``: ``mean + V (s * c) + perm(residual)``,
    ``c = V^T (x - mean)``, ``s`` random signs."""
    mean = x.mean()
    c = vecs.T @ (x - mean)  # (K,)
    residual = x - mean - vecs @ c  # (N,)
    n = x.size
    for rows in _chunks(n_perm, max(n, vecs.shape[1])):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(vecs.shape[1], rows))  # (K, rows)
        smooth = (vecs @ (signs * c[:, None])).T  # (rows, N)
        yield mean + smooth + rng.permuted(np.tile(residual, (rows, 1)), axis=1)


# ------------------------------------------------------------------ either null
def _plan(sheet: _Sheet, null: Any, sphere: Any, n_eig: Any) -> tuple[str, Any, dict[str, Any]]:
    """Resolve ``null`` on ``sheet`` before any work: ``(name, state, details)`` with
    ``state`` the columns' unit vectors for a spin, None for moran."""
    if null not in MAP_NULLS:
        raise ValueError(f"Unknown null {null!r}. Choices: {', '.join(MAP_NULLS)} (auto: spin on "
                         f"a sphere, moran elsewhere).")
    _check_int("n_eig", n_eig, 1, "the leading eigenvectors the moran null randomises, "
                                  "e.g. 100")
    unit = what = None
    if null in ("spin", "auto"):
        unit, what = _on_sphere(sheet, sphere)
        if unit is None and null == "spin":
            raise _spin_error(what)
    if unit is not None:
        return "spin", unit, {"sphere": what}
    return "moran", None, {}


def _null_blocks(name: str, state: Any, x: np.ndarray, keep: np.ndarray, sheet: _Sheet,
                 n_perm: int, rng: np.random.Generator, n_eig: int, details: dict[str, Any]):
    """Blocks ``[rows, M]`` of null maps of ``x`` (the ``M`` kept columns' values)."""
    if name == "spin":
        unit = state[keep]
        for idx in _spins(unit, n_perm, rng):
            yield x[idx]
        return
    W = sheet.graph()
    if not keep.all():
        W = W[keep][:, keep].tocsr()
    vals, vecs = _moran_basis(W, n_eig)
    z = x - x.mean()
    inside = float(((vecs.T @ z) ** 2).sum())
    total = float(z @ z)
    details.update({"graph": sheet.weights, "eigenvectors": int(vecs.shape[1]),
                    "variance_outside": (1 - inside / total) if total > 0 else None})
    yield from _moran_maps(x, vecs, n_perm, rng)


def spatial_nulls(a: Any, where: Any, null: str = "auto", n_perm: int = 1000, seed: int = 0,
                  sphere: Any = None, weighted: bool = True, n_eig: int = 100) -> np.ndarray:
    """``[n_perm, N]`` surrogate maps of ``a`` that keep its spatial autocorrelation
    (spin or moran null, see :func:`map_correlation`); NaN where ``a`` is NaN. Memory:
    ``n_perm * N`` floats; :func:`map_correlation` draws them in blocks instead.

    Example:
        >>> import numpy as np
        >>> from colgraph.geometry import grid
        >>> geo = grid(12)
        >>> a = np.sin(geo.pos[:, 0].numpy() / 3)
        >>> spatial_nulls(a, geo, n_perm=3).shape
        (3, 144)
    """
    _check_settings(n_perm, seed)
    sheet = _sheet(where, weighted)
    x = _map(a, sheet.n, "a")
    keep = ~np.isnan(x)
    _usable(keep, 4, "A spatial null")
    name, state, details = _plan(sheet, null, sphere, n_eig)
    out = np.full((n_perm, sheet.n), np.nan)
    blocks = _null_blocks(name, state, x[keep], keep, sheet, n_perm,
                          np.random.default_rng(seed), n_eig, details)
    out[:, keep] = np.concatenate(list(blocks))
    return out

"""Eigenmodes of a sheet's geometry and of its learned connectome, and how well each
reconstructs the sheet's activity (Pang et al., Nature 2023, "Geometric constraints on human
brain function": eigenmodes of the cortex's shape explain activity maps better than
eigenmodes of its connectome).

Symbols: ``N`` columns, ``k`` modes, ``M`` maps (per-column activity patterns).

Operators, each a generalized eigenproblem ``L v = lambda B v`` with ``L`` symmetric positive
semi-definite, solved for its ``k`` smallest eigenvalues:

* **Laplace-Beltrami** of a triangle mesh (:func:`cotangent_laplacian`): ``L`` the cotangent
  stiffness matrix, ``B`` the lumped (barycentric) vertex areas. On a sphere of radius ``r``
  its eigenvalues approach ``l (l + 1) / r^2`` with multiplicity ``2 l + 1``. Used for sheets
  built by :func:`~colgraph.geometry.from_mesh` / :func:`~colgraph.geometry.from_surface`,
  which keep their triangles (``geometry.faces``).
* **Graph Laplacian of the sheet's wiring** (every other sheet): ``L = D - W``, ``B = I``,
  the wiring symmetrised (an edge in either direction connects two columns) with heat-kernel
  weights ``w = exp(-length^2 / (2 h^2))`` (``h``: the median edge length), or binary
  weights. The heat kernel keeps the operator geometric: long-range edges of the wiring
  (``exponential``, ``uniform``) weigh almost nothing, so the modes are those of the sheet's
  shape rather than of its random shortcuts; on an evenly sampled sheet this Laplacian
  approaches the Laplace-Beltrami operator (Belkin & Niyogi's Laplacian eigenmaps). On a
  lattice every weight is the same and the modes are the lattice's cosine / Fourier modes.
* **Normalised graph Laplacian of the connectome** (:func:`connectome_modes`):
  ``L = D - W``, ``B = D`` (eigenvalues of ``I - D^-1/2 W D^-1/2``, in ``[0, 2]``), with
  ``W = A + A^T`` the symmetrised learned weights (attention). Normalised because a column's
  attention sums to one over its inputs while what it sends varies widely: the unnormalised
  Laplacian's low modes would follow the columns that send least, and its eigenvalues would
  depend on the weights' scale; the normalised ones do not.

Vectors are ``B``-orthonormal (``V.T @ B @ V = I``); a connected sheet's first mode is the
constant, eigenvalue 0. Signs are deterministic: each vector's largest-magnitude entry is
positive (the first such entry on a tie). Within a degenerate eigenvalue (a square grid's
``cos(x) / cos(y)`` pair, a sphere's ``2 l + 1`` harmonics) any orthonormal basis of the
eigenspace is a solution: compare subspaces, not vectors.

Large sheets use ``scipy.sparse.linalg.eigsh`` in shift-invert mode around a small negative
shift (one sparse LU factorisation, then a few Lanczos iterations): ``O(N)`` memory, seconds
at 10^5 columns. Sheets of up to :data:`DENSE_MAX` columns are solved densely.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Modes", "geometric_modes", "connectome_modes", "cotangent_laplacian",
           "reconstruct", "activity_maps", "mode_analysis", "plot_modes",
           "plot_reconstruction", "MODE_FIGURES", "DENSE_MAX"]

DENSE_MAX = 600  # sheets of up to this many columns (per component) are solved densely
MODE_FIGURES = ("modes.png", "reconstruction.png")
KINDS = ("auto", "mesh", "graph")
WEIGHTS = ("heat", "binary")


@dataclass(frozen=True)
class Modes:
    """The ``k`` smallest eigenpairs of an operator on the sheet.

    Attributes:
        values: ``[k]`` eigenvalues, ascending.
        vectors: ``[N, k]`` eigenvectors (columns), ``B``-orthonormal (see the module).
        operator: which operator, in words.
        components: connected components of the sheet (the multiplicity of eigenvalue 0).
    """

    values: np.ndarray
    vectors: np.ndarray
    operator: str
    components: int = 1

    def __len__(self) -> int:
        return self.values.size

    def __repr__(self) -> str:
        return (f"Modes({self.operator}, columns={self.vectors.shape[0]}, k={self.values.size}, "
                f"components={self.components})")


# ---------------------------------------------------------------------- checks
def _check_k(k: Any, n: int, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1 (got {k!r}): the number of eigenmodes, "
                         f"e.g. k=50.")
    if k >= n:
        raise ValueError(f"k={k} modes asked of {what} of {n} columns: k must be below the "
                         f"number of columns (k <= {n - 1}).")
    return int(k)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}. Choices: {', '.join(choices)}.")
    return value


# ---------------------------------------------------------------------- operators
def cotangent_laplacian(pos, faces):
    """The cotangent Laplace-Beltrami operator of a triangle mesh: ``(L, B)``, both
    ``scipy.sparse`` CSR ``[N, N]``.

    ``L[i, j] = -(cot a_ij + cot b_ij) / 2`` for each mesh edge (``a``, ``b``: the angles
    opposite it), ``L[i, i] = -sum_j L[i, j]``; ``B`` is diagonal, each vertex a third of the
    area of its triangles (lumped mass). ``L v = lambda B v`` discretises
    ``-Delta v = lambda v`` on the surface.

    Args:
        pos: ``[N, D]`` vertex coordinates (``D`` = 2 or 3).
        faces: ``[F, 3]`` vertex indices of the triangles.

    Example:
        >>> import numpy as np
        >>> L, B = cotangent_laplacian(np.array([[0., 0.], [1., 0.], [0., 1.]]), [[0, 1, 2]])
        >>> round(float(B.sum()), 4), np.allclose(L.sum(1), 0)
        (0.5, True)
    """
    import scipy.sparse as sp

    pos = np.asarray(pos, dtype=np.float64)
    f = np.asarray(faces)
    n = pos.shape[0] if pos.ndim == 2 else 0
    if pos.ndim != 2 or f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise ValueError(f"Expected positions [N, D] and faces [F, 3] with F > 0 (got "
                         f"{list(pos.shape)} and {list(f.shape)}).")
    if f.dtype.kind not in "iu" or f.min() < 0 or f.max() >= n:
        raise ValueError(f"Expected faces to hold integer vertex indices in [0, {n - 1}] (got "
                         f"dtype {f.dtype}, values {f.min()} .. {f.max()}).")
    f = f.astype(np.int64)
    corner = [pos[f[:, c]] for c in range(3)]
    # the angle at corner c lies between the edges to the other two corners
    cot = np.empty((f.shape[0], 3))
    area = None
    for c in range(3):
        u = corner[(c + 1) % 3] - corner[c]
        v = corner[(c + 2) % 3] - corner[c]
        dot = (u * v).sum(1)
        cross = np.sqrt(np.maximum((u * u).sum(1) * (v * v).sum(1) - dot ** 2, 0.0))
        if area is None:
            area = cross / 2
        cot[:, c] = dot / np.where(cross > 0, cross, 1.0)
    flat = area <= 1e-12 * max(np.ptp(pos, axis=0).max(), 1e-300) ** 2
    if flat.any():
        i = int(np.flatnonzero(flat)[0])
        raise ValueError(f"{int(flat.sum())} of {f.shape[0]} triangles have no area (e.g. "
                         f"face {i}: vertices {f[i].tolist()}): the Laplace-Beltrami operator "
                         f"is undefined on them. Remove degenerate triangles (repeated or "
                         f"collinear vertices) from the mesh.")
    # corner c's cotangent weighs the opposite edge (c+1, c+2)
    i = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    j = np.concatenate([f[:, 2], f[:, 0], f[:, 1]])
    w = np.concatenate([cot[:, 0], cot[:, 1], cot[:, 2]]) / 2
    W = sp.coo_matrix((np.r_[w, w], (np.r_[i, j], np.r_[j, i])), shape=(n, n)).tocsr()
    L = (sp.diags(np.asarray(W.sum(1)).ravel()) - W).tocsr()
    mass = np.bincount(f.ravel(), np.repeat(area / 3, 3), minlength=n)
    if (mass <= 0).any():
        v = int(np.flatnonzero(mass <= 0)[0])
        raise ValueError(f"{int((mass <= 0).sum())} vertices (e.g. {v}) are in no triangle: "
                         f"the Laplace-Beltrami operator has no area for them. Drop unused "
                         f"vertices from the mesh.")
    return L, sp.diags(mass).tocsr()


def _no_edges(what: str, n: int) -> ValueError:
    return ValueError(f"{what[:1].upper()}{what[1:]} has no edge between two different columns (of {n}): every "
                      f"column is its own component and every eigenvalue is 0. Give the sheet "
                      f"wiring (or the connectome weights > 0).")


def _wiring_laplacian(n: int, src, dst, length, weights: str, scale: float | None, what: str):
    """``L = D - W`` of the symmetrised wiring (self-loops dropped)."""
    import scipy.sparse as sp

    keep = src != dst
    src, dst, length = src[keep], dst[keep], length[keep]
    if not keep.any():
        raise _no_edges(what, n)
    if weights == "binary":
        w = np.ones(src.size)
        operator = "graph Laplacian D - W of the wiring (binary weights)"
    else:
        if not np.isfinite(length).all():
            raise ValueError("Heat-kernel weights need every edge's length, but some edges have "
                             "none: give the graph's edges a 'length', or pass "
                             "weights='binary'.")
        h = float(np.median(length)) if scale is None else float(scale)
        if not (np.isfinite(h) and h > 0):
            raise ValueError(f"The heat kernel's scale must be a positive number (got {h!r}"
                             f"{' from the median edge length' if scale is None else ''}).")
        w = np.exp(-(length / h) ** 2 / 2)
        operator = (f"graph Laplacian D - W of the wiring (heat kernel exp(-l^2 / 2h^2), "
                    f"h = {h:.4g})")
    A = sp.csr_matrix((w, (src, dst)), shape=(n, n))
    W = A.maximum(A.T).tocsr()  # an edge in either direction connects (lengths are symmetric)
    W.eliminate_zeros()
    L = (sp.diags(np.asarray(W.sum(1)).ravel()) - W).tocsr()
    return L, sp.identity(n, format="csr"), W, operator


# ---------------------------------------------------------------------- the solver
def _orient(vectors: np.ndarray) -> np.ndarray:
    """Each column's largest-magnitude entry positive (the first of near-equal ones)."""
    mag = np.abs(vectors)
    top = mag.max(0)
    first = np.argmax(mag >= top * (1 - 1e-6), axis=0)
    sign = np.sign(vectors[first, np.arange(vectors.shape[1])])
    sign[sign == 0] = 1
    return vectors * sign


def _smallest(L, B, k: int, n: int):
    """The ``k`` smallest eigenpairs of ``L v = lambda B v`` (one connected component)."""
    import scipy.linalg
    import scipy.sparse.linalg as sla

    if n <= DENSE_MAX or k >= n - 1:
        values, vectors = scipy.linalg.eigh(L.toarray(), B.toarray(),
                                            subset_by_index=[0, k - 1])
        return values, vectors
    # shift-invert around sigma < 0: L - sigma B is positive definite, and the eigenvalues
    # nearest sigma are the smallest; |sigma| ~ 1e-6 of the spectrum's scale
    scale = float(np.mean(L.diagonal() / B.diagonal()))
    sigma = -1e-6 * scale
    lu = sla.splu((L - sigma * B).tocsc(), permc_spec="MMD_AT_PLUS_A")
    inverse = sla.LinearOperator(L.shape, matvec=lu.solve, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(n)  # fixed: the same modes every call
    values, vectors = sla.eigsh(L, k=k, M=B, sigma=sigma, which="LM", OPinv=inverse, v0=v0)
    order = np.argsort(values, kind="stable")
    return values[order], vectors[:, order]


def _solve(L, B, W, k: int, operator: str, allow_disconnected: bool, what: str) -> Modes:
    """The ``k`` smallest modes, component by component: each component's zero mode is its
    exact ``B``-normalised indicator."""
    from scipy.sparse.csgraph import connected_components

    n = L.shape[0]
    if W.nnz == 0:
        raise _no_edges(what, n)
    count, label = connected_components(W, directed=False)
    if count > 1 and not allow_disconnected:
        sizes = np.bincount(label)
        raise ValueError(f"{what[:1].upper()}{what[1:]} has {count} connected components (sizes "
                         f"{sorted(sizes.tolist(), reverse=True)[:5]}{' ...' if count > 5 else ''}"
                         f"): its Laplacian has eigenvalue 0 {count} times, one constant mode "
                         f"per component, and its modes never mix components. Analyse one "
                         f"component (scipy.sparse.csgraph.connected_components), or pass "
                         f"allow_disconnected=True for per-component modes.")
    values, vectors = [], []
    order = np.argsort(label, kind="stable")  # components as contiguous blocks: O(E) slicing
    bounds = np.r_[0, np.cumsum(np.bincount(label, minlength=count))]
    if count > 1:
        L, B = L[order][:, order].tocsr(), B[order][:, order].tocsr()
    for c in range(count):
        lo, hi = bounds[c], bounds[c + 1]
        idx = order[lo:hi]
        size = idx.size
        indicator = np.zeros((n, 1))
        mass = B.diagonal()[lo:hi]
        indicator[idx, 0] = 1.0 / np.sqrt(mass.sum())
        values.append(np.zeros(1))
        vectors.append(indicator)
        kc = min(k, size - 1)
        if kc < 1:
            continue
        Lc = L[lo:hi, lo:hi] if count > 1 else L
        Bc = B[lo:hi, lo:hi] if count > 1 else B
        val, vec = _smallest(Lc, Bc, kc + 1, size)
        val, vec = val[1:], vec[:, 1:]  # the zero mode: the exact indicator above
        full = np.zeros((n, vec.shape[1]))
        full[idx] = vec
        values.append(np.maximum(val, 0.0))
        vectors.append(full)
    values = np.concatenate(values)
    vectors = np.concatenate(vectors, axis=1)
    order = np.argsort(values, kind="stable")[:k]  # components' zero modes first, in order
    return Modes(values[order], _orient(vectors[:, order]), operator, count)


# ---------------------------------------------------------------------- public operators
def _sheet(geometry_or_graph):
    """``(n, pos, src, dst, length, faces, name)`` of a Geometry or a networkx graph."""
    from ..geometry import Geometry

    if isinstance(geometry_or_graph, Geometry):
        g = geometry_or_graph
        src, dst = g.edge_index.cpu().numpy()
        return (g.num_columns, g.pos.detach().cpu().double().numpy(), src, dst,
                g.edge_length.detach().cpu().double().numpy(),
                None if g.faces is None else g.faces.cpu().numpy(), f"the sheet {g.name!r}")
    from .arrays import arrays

    try:
        a = arrays(geometry_or_graph)
    except TypeError:
        raise TypeError(f"Expected a colgraph Geometry or a networkx graph, got "
                        f"{type(geometry_or_graph).__name__}.") from None
    return (a.n, a.pos, a.src, a.dst, a.length, None,
            f"the graph {geometry_or_graph.graph.get('name', '')!r}")


def geometric_modes(geometry_or_graph, k: int = 50, kind: str = "auto", weights: str = "heat",
                    scale: float | None = None, faces=None,
                    allow_disconnected: bool = False) -> Modes:
    """The ``k`` smallest eigenmodes of the sheet's geometry.

    Args:
        geometry_or_graph: a :class:`~colgraph.geometry.Geometry` or a networkx graph with
            node ``pos`` and edge ``length`` (e.g. :meth:`Geometry.to_networkx`).
        k: number of modes, ``1 <= k < N``.
        kind: ``"mesh"``: the cotangent Laplace-Beltrami operator of the sheet's triangles
            (a sheet from :func:`~colgraph.geometry.from_mesh` / ``from_surface``, or
            ``faces``); ``"graph"``: the graph Laplacian of its wiring; ``"auto"``: mesh when
            triangles are known, else graph.
        weights: graph Laplacian weights: ``"heat"`` (``exp(-length^2 / 2 h^2)``) or
            ``"binary"`` (see the module for why heat is the default).
        scale: the heat kernel's ``h`` (default: the median edge length).
        faces: ``[F, 3]`` triangles, for a graph or a geometry that does not keep its own.
        allow_disconnected: a sheet in several pieces is refused unless this is set; then
            each piece has its own constant mode (eigenvalue 0) and modes that are zero
            outside it.

    Returns:
        :class:`Modes`: eigenvalues ``[k]`` ascending, eigenvectors ``[N, k]``.

    Example:
        >>> from colgraph.geometry import grid, radius   # the 4-neighbour lattice
        >>> modes = geometric_modes(grid(8, wiring=radius(1.01)), k=3, weights="binary")
        >>> modes.values.round(4).tolist()   # 2 - 2 cos(pi / 8), twice (x and y)
        [0.0, 0.1522, 0.1522]
    """
    kind = _choice("kind", kind, KINDS)
    weights = _choice("weights", weights, WEIGHTS)
    n, pos, src, dst, length, own_faces, what = _sheet(geometry_or_graph)
    k = _check_k(k, n, what)
    faces = own_faces if faces is None else np.asarray(faces)
    if kind == "auto":
        kind = "mesh" if faces is not None else "graph"
    if kind == "mesh":
        if faces is None:
            raise ValueError(f"kind='mesh' needs the sheet's triangles, but {what} keeps none "
                             f"(only sheets built by from_mesh / from_surface do). Pass "
                             f"faces=[F, 3], or use kind='graph' (its wiring's Laplacian).")
        import scipy.sparse as sp

        L, B = cotangent_laplacian(pos, faces)
        f = np.asarray(faces, dtype=np.int64)
        a, b = np.r_[f[:, 0], f[:, 1], f[:, 2]], np.r_[f[:, 1], f[:, 2], f[:, 0]]
        W = sp.csr_matrix((np.ones(a.size), (a, b)), shape=(n, n))  # the mesh's edges
        return _solve(L, B, W + W.T, k, "cotangent Laplace-Beltrami (lumped mass)",
                      allow_disconnected, what)
    L, B, W, operator = _wiring_laplacian(n, np.asarray(src), np.asarray(dst),
                                          np.asarray(length, dtype=float), weights, scale,
                                          what)
    return _solve(L, B, W, k, operator, allow_disconnected, what)


def connectome_modes(G, k: int = 50, allow_disconnected: bool = False) -> Modes:
    """The ``k`` smallest eigenmodes of the connectome's normalised graph Laplacian:
    ``L v = lambda D v`` with ``W = A + A^T`` (``A[i, j]``: the edge ``i -> j``'s
    ``weight``), ``L = D - W``, ``D`` the symmetrised strengths (see the module for why
    normalised).

    Args:
        G: a connectome graph (:func:`~colgraph.connectome.to_networkx`,
            :func:`~colgraph.connectome.read_connectome`) or its edge arrays.
        k: number of modes, ``1 <= k < N``.
        allow_disconnected: as in :func:`geometric_modes` (a column without any weight is a
            component of its own, with mass 1).

    Example:
        >>> import networkx as nx
        >>> modes = connectome_modes(nx.cycle_graph(6, create_using=nx.DiGraph), k=3)
        >>> modes.values.round(4).tolist()   # 1 - cos(2 pi / 6), twice
        [0.0, 0.5, 0.5]
    """
    import scipy.sparse as sp

    from .arrays import EdgeArrays, _symmetric, arrays

    a = G if isinstance(G, EdgeArrays) else arrays(G)
    k = _check_k(k, a.n, "the connectome")
    keep = a.src != a.dst
    W = _symmetric(a.n, a.src[keep], a.dst[keep], a.weight[keep])
    W.eliminate_zeros()
    strength = np.asarray(W.sum(1)).ravel()
    L = (sp.diags(strength) - W).tocsr()
    B = sp.diags(np.where(strength > 0, strength, 1.0)).tocsr()
    return _solve(L, B, W, k, f"normalised graph Laplacian of the connectome (weight = "
                              f"{a.weight_name})", allow_disconnected, "the connectome")


# ---------------------------------------------------------------------- reconstruction
def reconstruct(maps, modes, ks=None) -> np.ndarray:
    """How well the first ``k`` modes reconstruct each map: the Pearson correlation between
    a map and its least-squares fit by modes ``1 .. k`` (Pang et al.'s accuracy), for each
    ``k`` in ``ks``.

    Args:
        maps: ``[N]`` or ``[N, M]`` values per column (numpy or torch).
        modes: :class:`Modes` or an ``[N, K]`` array of mode vectors (columns).
        ks: numbers of modes, each in ``[1, K]`` (default ``1 .. K``).

    Returns:
        ``[len(ks)]`` for one map, ``[len(ks), M]`` for several. NaN where the correlation is
        undefined: a constant map, or a fit without variance (``k = 1`` when the first mode
        is the constant).

    One QR factorisation of the modes serves every ``k`` (its first ``k`` columns span the
    first ``k`` modes), so the cost is ``O(N K (K + M))``.

    Example:
        >>> from colgraph.geometry import ring, knn
        >>> modes = geometric_modes(ring(16, wiring=knn(2)), k=5)
        >>> reconstruct(modes.vectors[:, 1] + modes.vectors[:, 3], modes, [2, 4]).round(3)
        array([0.707, 1.   ])
    """
    vectors = modes.vectors if isinstance(modes, Modes) else np.asarray(modes, dtype=float)
    if vectors.ndim != 2 or vectors.shape[1] < 1:
        raise ValueError(f"Expected modes as Modes or an [N, K] array (got shape "
                         f"{list(vectors.shape)}).")
    n, K = vectors.shape
    x = maps.detach().cpu().numpy() if hasattr(maps, "detach") else np.asarray(maps)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"Expected numeric maps, got dtype {x.dtype}.")
    x = x.astype(np.float64)
    one = x.ndim == 1
    x = x.reshape(x.shape[0], -1) if x.ndim in (1, 2) else None
    if x is None or x.shape[0] != n:
        raise ValueError(f"Expected maps of shape [{n}] or [{n}, M] (one value per column of "
                         f"the {n} the modes cover), got {list(np.shape(maps))}.")
    bad = ~np.isfinite(x)
    if bad.any():
        col, m = np.argwhere(bad)[0]
        raise ValueError(f"The maps hold {int(bad.sum())} NaN / inf value(s) (e.g. column "
                         f"{col} of map {m}): reconstruction needs finite values. Drop or fill "
                         f"those columns first.")
    ks = np.arange(1, K + 1) if ks is None else np.asarray(list(np.atleast_1d(ks)))
    if ks.size == 0 or ks.dtype.kind not in "iu" or ks.min() < 1 or ks.max() > K:
        raise ValueError(f"Expected ks: numbers of modes, integers in [1, {K}] (got "
                         f"{ks.tolist()}).")
    Q, _ = np.linalg.qr(vectors)  # (N, K): span(Q[:, :k]) = span(first k modes)
    c = Q.T @ x  # (K, M) coefficients
    energy = np.cumsum(c ** 2, 0)  # |fit_k|^2 = x . fit_k
    fit_mean = np.cumsum(c * Q.mean(0)[:, None], 0)  # mean of fit_k
    mx = x.mean(0)
    cov = energy - n * mx * fit_mean  # n cov(x, fit_k)
    var_fit = energy - n * fit_mean ** 2
    var_x = (x ** 2).sum(0) - n * mx ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(var_fit * var_x)
    undefined = (var_fit <= 1e-10 * np.maximum(energy, 1e-300)) | \
        (var_x <= 1e-12 * np.maximum((x ** 2).sum(0), 1e-300))
    r = np.where(undefined, np.nan, np.clip(r, -1.0, 1.0))[ks - 1]
    return r[:, 0] if one else r


# ---------------------------------------------------------------------- a trained sheet
def _sheet_model(model):
    from ..model import Columnformer

    cf = getattr(model, "columnformer", model)
    if not isinstance(cf, Columnformer):
        raise TypeError(f"Expected a Columnformer, a model holding one, or a checkpoint path; "
                        f"got {type(model).__name__}.")
    if cf.edges.shard.enabled:
        raise ValueError("Mode analysis needs the whole sheet in one process: load the run "
                         "with colgraph.load_model(path) (it assembles a column-sharded "
                         "sheet) and pass that model.")
    return cf


def activity_maps(model, loader, samples: int = 256):
    """``[N, S]`` column activity maps over the first ``samples`` samples of ``loader``.

    Column ``n``'s activity on sample ``b`` is ``B * |r[n, b]|^2``, where ``r`` is
    :func:`colgraph.objectives.column_responses` of the sheet's final states over a batch of
    ``B`` samples (each column's response centred over the batch and scaled to unit norm):
    the share of its response the column spends on that sample, relative to the batch's
    average (1). It does not depend on the order of a column's channels, which untied
    columns do not share. Batches of one sample (no response to centre) are skipped.

    ``model``: a task model (``model.sheet(x)``) or a bare Columnformer (``model(x)``);
    ``loader``: batches of inputs (or ``(x, y)`` pairs).
    """
    import torch

    from ..objectives import column_responses

    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1 (got {samples!r}).")
    cf = _sheet_model(model)
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    maps, count = [], 0
    try:
        with torch.no_grad():
            for batch in loader:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                x = x[:samples - count]
                if len(x) < 2:
                    if count >= samples:
                        break
                    continue
                out = model(x.to(device)) if model is cf else model.sheet(x.to(device))
                r = column_responses(out.state.float())  # (N, B * C)
                r = r.view(r.size(0), len(x), -1)  # (N, B, C)
                maps.append((r.pow(2).sum(-1) * len(x)).double().cpu().numpy())  # (N, B)
                count += len(x)
                if count >= samples:
                    break
    finally:
        model.train(was)
    if not maps:
        raise ValueError("The loader yielded no batch of 2 or more samples: a column's "
                         "response is centred over a batch, so activity maps need batches "
                         "of at least 2.")
    return np.concatenate(maps, 1)


def _accuracy(r: np.ndarray) -> tuple[list, list]:
    """Mean and s.d. over maps (NaN-ignoring) per k, as JSON lists (None: undefined)."""
    ok = np.isfinite(r)
    count = ok.sum(1)
    mean = np.where(count > 0, np.where(ok, r, 0).sum(1) / np.maximum(count, 1), np.nan)
    var = np.where(count > 0, np.where(ok, (r - mean[:, None]) ** 2, 0).sum(1)
                   / np.maximum(count, 1), np.nan)
    as_list = lambda v: [float(x) if np.isfinite(x) else None for x in v]  # noqa: E731
    return as_list(mean), as_list(np.sqrt(var))


def _analysis(model_or_path, loader="test", k: int = 50, ks=None, samples: int = 256,
              graph=None, max_batches: int | None = None):
    """:func:`mode_analysis`'s dict and the geometric modes."""
    import itertools
    import os

    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1 (got {samples!r}).")
    _check_k(k, np.inf, "a sheet")  # k's type and sign before anything is loaded
    model = model_or_path
    if isinstance(model_or_path, (str, os.PathLike)):
        from ..restore import load_model

        model, _, _, data = load_model(model_or_path, with_data=loader == "test")
        if loader == "test":
            from ..data import iterate_batches

            loader = iterate_batches(data.x_test, data.y_test, 256)
    elif isinstance(loader, str):
        raise ValueError(f"loader={loader!r} needs a checkpoint path (its config names the "
                         f"data); with a model, pass an iterable of batches.")
    if loader is None:
        raise ValueError("Mode analysis needs data (loader): activity maps are responses to "
                         "samples.")
    cf = _sheet_model(model)
    geometry = cf.geometry
    n = geometry.num_columns
    k = _check_k(k, n, "the sheet")
    if iter(loader) is loader:  # one pass only: keep the batches for the second
        loader = list(itertools.islice(loader, max_batches))
    elif max_batches is not None:
        loader = list(itertools.islice(loader, max_batches))
    if graph is None:
        from .export import to_networkx

        graph = to_networkx(model, loader=loader)
    maps = activity_maps(model, loader, samples)
    ks = np.arange(1, k + 1) if ks is None else np.asarray(list(np.atleast_1d(ks)))
    geo = geometric_modes(geometry, k, allow_disconnected=True)
    con = connectome_modes(graph, k, allow_disconnected=True)
    out: dict[str, Any] = {
        "k": k, "ks": [int(v) for v in ks], "columns": n, "maps": int(maps.shape[1]),
        "map": "column activity per sample: B |r|^2 of colgraph.objectives.column_responses "
               "(final states)",
        "accuracy": "Pearson r between each map and its least-squares fit by the first k "
                    "modes, mean and s.d. over maps"}
    notes = []
    for name, modes in (("geometric", geo), ("connectome", con)):
        r = reconstruct(maps, modes, ks)
        mean, sd = _accuracy(r)
        finite = [v for v in mean if v is not None]
        out[name] = {"operator": modes.operator, "components": modes.components,
                     "eigenvalues": [float(v) for v in modes.values],
                     "accuracy_mean": mean, "accuracy_std": sd,
                     "accuracy_at_k": mean[-1],
                     "mean_accuracy": float(np.mean(finite)) if finite else None}
        if modes.components > 1:
            notes.append(f"{name}: the {'sheet' if name == 'geometric' else 'connectome'} has "
                         f"{modes.components} connected components: its first "
                         f"{modes.components} modes are their indicators (eigenvalue 0)")
        if None in mean:
            undefined = [int(kk) for kk, v in zip(ks, mean) if v is None]
            notes.append(f"{name}: accuracy undefined (null) for k = {undefined}: the fit by "
                         f"so few modes is constant (the first mode is), so its correlation "
                         f"with a map is undefined")
    flat = np.ptp(maps, axis=0) <= 1e-12 * np.maximum(np.abs(maps).max(0), 1e-300)
    if flat.any():
        notes.append(f"{int(flat.sum())} of {maps.shape[1]} maps are constant over the sheet: "
                     f"their correlation with any fit is undefined and they are left out of "
                     f"the means")
    g, c = out["geometric"]["mean_accuracy"], out["connectome"]["mean_accuracy"]
    out["geometric_minus_connectome"] = None if g is None or c is None else g - c
    if notes:
        out["notes"] = notes
    return out, geo


def mode_analysis(model_or_path, loader="test", k: int = 50, ks=None, samples: int = 256,
                  graph=None, max_batches: int | None = None) -> dict[str, Any]:
    """Geometric vs connectome eigenmodes of a trained sheet, as Pang et al. (2023) compare
    them: how well the first ``k`` modes of each reconstruct the sheet's activity maps.

    Args:
        model_or_path: a trained model (task or Columnformer) or a checkpoint / run
            directory.
        loader: batches of samples, or ``"test"`` (a checkpoint's own test set).
        k: number of modes (``k < N``).
        ks: numbers of modes to report (default ``1 .. k``).
        samples: activity maps from this many samples (:func:`activity_maps`).
        graph: the connectome graph (default: :func:`~colgraph.connectome.to_networkx` of
            the model on ``loader``: attention weights).
        max_batches: use only this many batches of ``loader``.

    Returns:
        A JSON-ready dict: ``ks``, and for ``geometric`` (:func:`geometric_modes` of the
        sheet) and ``connectome`` (:func:`connectome_modes`) their ``operator``,
        ``eigenvalues``, ``accuracy_mean`` / ``accuracy_std`` per ``k`` (over maps; ``None``
        where undefined), ``accuracy_at_k`` and ``mean_accuracy`` (over ``ks``);
        ``geometric_minus_connectome`` (difference of the mean accuracies); ``notes`` when
        something is undefined.

    Example:
        >>> m = mode_analysis("runs/2026-11-24/06-25-03", k=50)  # doctest: +SKIP
        >>> m["geometric"]["accuracy_at_k"], m["connectome"]["accuracy_at_k"]  # doctest: +SKIP
    """
    return _analysis(model_or_path, loader, k, ks, samples, graph, max_batches)[0]


# ---------------------------------------------------------------------- figures
def _sheet_arrays(sheet):
    """Edge arrays (positions, areas) for drawing: a graph, its arrays or a Geometry."""
    from ..geometry import Geometry
    from .arrays import EdgeArrays, arrays

    if isinstance(sheet, EdgeArrays):
        return sheet
    if isinstance(sheet, Geometry):
        src, dst = sheet.edge_index.cpu().numpy()
        return EdgeArrays(list(range(sheet.num_columns)), src, dst, np.ones(src.size),
                          sheet.edge_length.cpu().double().numpy(),
                          sheet.pos.detach().cpu().double().numpy(),
                          {k: v.cpu().numpy() for k, v in sheet.areas.items()})
    return arrays(sheet)


def plot_modes(sheet, modes: Modes, path, count: int = 6):
    """The first ``count`` non-constant modes drawn on the sheet (a stack's areas side by
    side, spheres and surfaces in 3-D, as the other sheet figures), each on a symmetric
    colour scale with its colour bar and eigenvalue. ``sheet``: a Geometry or a connectome
    graph (positions and areas)."""
    from pathlib import Path

    from .figures import _axes, _label_sheet, _plt, _save, layout
    from .flow import plain_areas

    plt = _plt()
    a = _sheet_arrays(sheet)
    if modes.vectors.shape[0] != a.n:
        raise ValueError(f"The modes cover {modes.vectors.shape[0]} columns, the sheet has "
                         f"{a.n}.")
    xy, kind = layout(a)
    first = min(modes.components, len(modes) - 1) if len(modes) > 1 else 0
    shown = list(range(first, min(first + count, len(modes))))
    cols = 2 if kind == "areas" else min(3, len(shown))
    rows = -(-len(shown) // cols)
    span = np.ptp(xy[:, :2], axis=0) + 1e-9
    w = 5.0 if kind != "areas" else 7.0
    h = 4.2 if kind == "3d" else float(np.clip(w * span[1] / span[0], 1.5, 5)) + 1.2
    fig = plt.figure(figsize=(w * cols, h * rows))
    size = float(np.clip(6e3 / a.n, 0.3, 40)) if kind != "3d" else float(np.clip(2e3 / a.n, 0.2, 12))
    names = [n for n in plain_areas(a) if n in a.areas]
    for i, m in enumerate(shown):
        ax = _axes(fig, kind, rows, cols, i + 1)
        v = modes.vectors[:, m]
        lim = max(float(np.abs(v).max()), 1e-12)
        sc = ax.scatter(*xy.T, c=v, cmap="RdBu_r", vmin=-lim, vmax=lim, s=size,
                        rasterized=a.n > 5000)
        ax.set_title(f"mode {m + 1}: eigenvalue {modes.values[m]:.4g}", fontsize=10)
        _label_sheet(ax, a.areas, xy, names, kind)
        fig.colorbar(sc, ax=ax, shrink=0.8, pad=0.12 if kind == "3d" else 0.04,
                     label="mode value")
    fig.suptitle(f"Geometric eigenmodes: {modes.operator}", fontsize=10)
    _save(fig, Path(path))
    return Path(path)


def plot_reconstruction(section: dict[str, Any], path):
    """Reconstruction accuracy against the number of modes, geometric vs connectome
    (mean over maps, shaded +- 1 s.d.), from :func:`mode_analysis`'s dict."""
    from pathlib import Path

    from .figures import _plt, _save

    plt = _plt()
    ks = np.asarray(section["ks"])
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, colour in (("geometric", "C0"), ("connectome", "C3")):
        s = section[name]
        mean = np.array([np.nan if v is None else v for v in s["accuracy_mean"]], float)
        sd = np.array([np.nan if v is None else v for v in s["accuracy_std"]], float)
        ax.plot(ks, mean, "-", color=colour, marker="o" if ks.size <= 30 else None, ms=3,
                label=f"{name}: {s['operator']}")
        ax.fill_between(ks, mean - sd, mean + sd, color=colour, alpha=0.2)
    ax.set_xlabel("number of modes k")
    ax.set_ylabel("reconstruction accuracy (Pearson r)")
    ax.set_ylim(min(0.0, float(np.nanmin([np.nanmin(np.array(
        [np.nan if v is None else v for v in section[n]["accuracy_mean"]], float))
        for n in ("geometric", "connectome")] + [0.0]))), 1.02)
    ax.set_title(f"Activity maps ({section['maps']}) reconstructed by eigenmodes "
                 f"({section['columns']} columns)\nmean over maps, shaded: +- 1 s.d.",
                 fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(alpha=0.3)
    _save(fig, Path(path))
    return Path(path)

"""Geometry builders: pure functions of their arguments (and a seed), returning a Geometry."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch

from .base import Geometry, measure, pairwise_length
from .wiring import Wiring, knn, radius

__all__ = ["from_coords", "scramble", "grid", "hex_lattice", "hex_coords", "hex_positions", "torus", "stack", "sphere", "ring", "line", "random_sheet",
           "end_areas", "STACK_INTER"]

STACK_INTER = ("knn", "feedforward", "bidirectional", "all")


def from_coords(pos, wiring: Wiring | None = None, areas: dict | None = None,
                period: torch.Tensor | None = None, name: str = "custom",
                metric: str = "euclidean", input_map=None) -> Geometry:
    """Wire columns at coordinates ``pos [N, D]`` with a wiring rule and measure edge lengths.

    Args:
        pos: an array of coordinates, one row per column (any dimension).
        wiring: a wiring rule (default ``knn(8)``).
        areas: named column sets, e.g. ``{"input": [0, 1, 2], "output": [9]}``.
        period: box size per dimension for wrapped (toroidal) distances.
        name: a short description.
        metric: ``"euclidean"`` or ``"sphere"`` (great-circle length on the sphere through
            the points, centred at the origin).
        input_map: optional patch index per column (``-1``: none), an explicit input map
            (see :class:`~colgraph.geometry.Geometry`).

    Example:
        >>> import torch
        >>> from colgraph.geometry import from_coords, knn
        >>> geo = from_coords(torch.rand(100, 2), knn(k=6), areas={"input": range(10)})
        >>> geo.num_edges
        600
    """
    pos = torch.as_tensor(pos, dtype=torch.float32)
    if pos.dim() != 2:
        raise ValueError(f"Expected 'pos' to have shape [N, D] (got {list(pos.shape)}).")
    if not torch.isfinite(pos).all():
        bad = (~torch.isfinite(pos)).any(1).nonzero().flatten()[:5].tolist()
        raise ValueError(f"Expected finite column positions, but 'pos' has NaN/inf at columns "
                         f"{bad}. Fix or drop those columns before wiring.")
    edge_index = (wiring or knn(8))(pos, period)
    length = measure(pos, edge_index[0], edge_index[1], metric, period)
    areas = {k: torch.as_tensor(list(v) if isinstance(v, range) else v) for k, v in
             (areas or {}).items()}
    return Geometry(pos, edge_index, length, areas, period=period, name=name, metric=metric,
                    input_map=input_map)


def end_areas(pos: torch.Tensor, input_size: int | None, output_size: int | None,
              axis: int = 0) -> dict:
    """``input`` = the ``input_size`` columns lowest along ``axis``, ``output`` = the
    ``output_size`` highest (a sensory-to-motor gradient across the sheet).

    Defaults: ``min(64, N // 4)`` input and ``min(16, N // 8)`` output columns (at least 1).
    """
    n = pos.size(0)
    input_size = input_size or max(1, min(64, n // 4))
    output_size = output_size or max(1, min(16, n // 8))
    if not (1 <= input_size <= n and 1 <= output_size <= n):
        raise ValueError(f"input_size={input_size} and output_size={output_size} must be "
                         f"in [1, {n}] for a sheet of {n} columns.")
    order = torch.argsort(pos[:, axis], stable=True)
    return {"sheet": torch.arange(n), "input": order[:input_size].sort().values,
            "output": order[n - output_size:].sort().values}


def _grid_pos(width: int, height: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=1).float()  # row-major (N, 2)


def grid(width: int, height: int | None = None, wiring: Wiring | None = None,
         wrap: bool = False) -> Geometry:
    """A flat ``width x height`` sheet with unit spacing; ``wrap=True`` makes it a torus.

    All columns form the area ``sheet``, aliased as ``input`` and ``output``.

    Example:
        >>> from colgraph.geometry import grid, knn
        >>> geo = grid(16, wiring=knn(k=8), wrap=True)
        >>> float(geo.edge_length.max())   # wrapped: no edge crosses the sheet
        1.4142135381698608
    """
    height = width if height is None else height
    _check_count("grid", width, "width", 1)
    _check_count("grid", height, "height", 1)
    pos = _grid_pos(width, height)
    everything = torch.arange(width * height)
    areas = {"sheet": everything, "input": everything, "output": everything}
    period = torch.tensor([float(width), float(height)]) if wrap else None
    kind = "torus" if wrap else "grid"
    return from_coords(pos, wiring or knn(8), areas, period, f"{kind}({width}x{height})")


def hex_coords(extent: int) -> np.ndarray:
    """Axial coordinates ``(u, v)`` of the hexagons within ``extent`` steps of the centre
    (``|u|, |v|, |u + v| <= extent``), u-major: the column order of :func:`hex_lattice`
    and of the fly optic lobe's columns (:func:`colgraph.connectome.fly_optic_lobe`)."""
    _check_count("hex_lattice", extent, "extent", 0)
    return np.array([(u, v) for u in range(-extent, extent + 1)
                     for v in range(max(-extent, -extent - u), min(extent, extent - u) + 1)],
                    dtype=np.int64).reshape(-1, 2)


def hex_positions(uv: np.ndarray) -> torch.Tensor:
    """Axial hexagon coordinates to the plane, unit spacing between neighbouring columns."""
    uv = torch.as_tensor(uv, dtype=torch.float32)
    return torch.stack([uv[:, 0] + uv[:, 1] / 2, uv[:, 1] * math.sqrt(3) / 2], 1)


def hex_lattice(extent: int, wiring: Wiring | None = None, input_size: int | None = None,
                output_size: int | None = None) -> Geometry:
    """A hexagonal sheet: the ``3 e (e + 1) + 1`` hexagons within ``extent = e`` steps of the
    centre, unit spacing (a compound eye's columns: the fly's optic lobe is a hexagonal
    lattice of columns, 721 at extent 15). Default wiring: the 6 neighbours of each column
    (`radius(1.5)`: fewer on the rim).

    All columns form the area ``sheet``; ``input`` / ``output`` are all of them (as for a
    grid) or the ``input_size`` / ``output_size`` columns nearest the centre (an 8 x 8 image
    of patches needs 64 input columns); labels are the axial coordinates ``"u,v"``.

    Example:
        >>> from colgraph.geometry import hex_lattice
        >>> geo = hex_lattice(2)
        >>> geo.num_columns, geo.in_degree().tolist()[:4], round(float(geo.edge_length.max()), 4)
        (19, [3, 4, 3, 4], 1.0)
    """
    uv = hex_coords(extent)
    n = len(uv)
    pos = hex_positions(uv)
    central = torch.argsort(pos.norm(dim=1), stable=True)  # nearest the centre first
    areas = {"sheet": torch.arange(n)}
    for area, size in (("input", input_size), ("output", output_size)):
        if size is not None:
            _check_count("hex_lattice", size, f"{area}_size", 1)
            if size > n:
                raise ValueError(f"hex_lattice({extent}) has {n} columns, fewer than "
                                 f"{area}_size={size}; raise geometry.extent or lower "
                                 f"geometry.{area}_size.")
        areas[area] = torch.arange(n) if size is None else central[:size].sort().values
    geo = from_coords(pos, wiring or radius(1.5), areas, name=f"hex({extent})")
    return dataclasses.replace(geo, labels=[f"{u},{v}" for u, v in uv.tolist()])


def torus(width: int, height: int | None = None, wiring: Wiring | None = None) -> Geometry:
    """A ``grid`` whose edges wrap around (distances measured on the torus)."""
    return grid(width, height, wiring, wrap=True)


def stack(widths: Sequence[int], spacing: float = 2.0, wiring: Wiring | None = None,
          inter: str = "knn", inter_k: int = 9) -> Geometry:
    """Square areas of the given widths stacked ``spacing`` apart along a third axis.

    Area ``i`` is a ``widths[i] x widths[i]`` grid at height ``z = i * spacing``, stretched to
    cover the same square as the first area (a retinotopic hierarchy: column ``(r, c)`` of
    every area looks at the same part of the visual field). Areas are named ``area0``,
    ``area1``, ... with ``input`` = first and ``output`` = last. Columns are numbered area by
    area, row-major inside each area.

    Args:
        widths: side of each square area, input first.
        spacing: distance between neighbouring areas.
        wiring: the wiring rule (default ``knn(16)``).
        inter: how areas connect.
            ``"knn"``: apply ``wiring`` to all columns in 3D (areas connect where close);
            ``"feedforward"``: ``wiring`` inside each area, plus each column of area ``i + 1``
            receives from its ``inter_k`` nearest columns of area ``i``;
            ``"bidirectional"``: as feedforward, plus the same edges backwards (feedback);
            ``"all"``: ``wiring`` inside each area, plus all-to-all between neighbouring areas
            in both directions.
        inter_k: inter-area inputs per column for ``feedforward`` / ``bidirectional``.

    Example:
        >>> from colgraph.geometry import stack, knn
        >>> geo = stack([8, 6, 4], spacing=2.0, wiring=knn(k=16))
        >>> geo.num_columns, geo.area("output").numel()
        (116, 16)
    """
    widths = list(widths)
    if not widths:
        raise ValueError("stack needs a non-empty list of widths, e.g. geometry.widths=[8,6,4].")
    for w in widths:
        _check_count("stack", w, "widths", 1)
    if inter_k < 1:
        raise ValueError(f"stack needs inter_k >= 1 (got {inter_k}); set geometry.inter_k.")
    if inter not in STACK_INTER:
        raise ValueError(f"Unknown inter-area wiring '{inter}'. Choices: "
                         f"{', '.join(STACK_INTER)}.")
    wiring = wiring or knn(16)
    extent = max(widths[0] - 1, 1)
    pos, areas, start = [], {}, 0
    for i, w in enumerate(widths):
        p = _grid_pos(w, w) * (extent / max(w - 1, 1))
        if w == 1:
            p = p + extent / 2
        z = torch.full((w * w, 1), i * float(spacing))
        pos.append(torch.cat([p, z], dim=1))
        areas[f"area{i}"] = torch.arange(start, start + w * w)
        start += w * w
    areas["input"], areas["output"] = areas["area0"], areas[f"area{len(widths) - 1}"]
    name = f"stack({widths}, spacing={spacing}" + (f", inter={inter})" if inter != "knn" else ")")
    pos = torch.cat(pos)
    if inter == "knn":
        return from_coords(pos, wiring, areas, name=name)
    edges = []
    names = [f"area{i}" for i in range(len(widths))]
    for a in names:  # local wiring inside each area
        idx = areas[a]
        edges.append(idx[wiring(pos[idx])])
    for lower, upper in zip(names[:-1], names[1:]):
        lo, up = areas[lower], areas[upper]
        if inter == "all":
            s_, t_ = torch.meshgrid(lo, up, indexing="ij")
            ff = torch.stack([s_.flatten(), t_.flatten()])
        else:
            from scipy.spatial import cKDTree

            k = min(inter_k, lo.numel())
            _, nbr = cKDTree(pos[lo, :2].double().numpy()).query(pos[up, :2].double().numpy(), k=k)
            nbr = torch.as_tensor(nbr).long().view(up.numel(), k)
            ff = torch.stack([lo[nbr].flatten(), up.repeat_interleave(k)])
        edges.append(ff)
        if inter in ("bidirectional", "all"):
            edges.append(ff.flip(0))
    edge_index = torch.cat(edges, dim=1)
    length = pairwise_length(pos, edge_index[0], edge_index[1])
    return Geometry(pos, edge_index, length, areas, name=name)


def _check_count(builder: str, n: int, key: str = "n", minimum: int = 2) -> None:
    """An integer count (not 2.5, not True) of at least ``minimum``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{builder} needs an integer {key} (got {n!r} of type "
                        f"{type(n).__name__}); set geometry.{key}.")
    if n < minimum:
        raise ValueError(f"{builder} needs {key} >= {minimum} (got {n}); set geometry.{key}.")


def sphere(n: int, radius: float = 1.0, wiring: Wiring | None = None,
           input_size: int | None = None, output_size: int | None = None) -> Geometry:
    """``n`` near-uniform columns on a sphere (Fibonacci lattice), great-circle lengths.

    ``input`` = the ``input_size`` columns nearest the south pole, ``output`` = the
    ``output_size`` nearest the north pole.

    Example:
        >>> from colgraph.geometry import sphere, knn
        >>> geo = sphere(500, wiring=knn(6))
        >>> round(float(geo.pos.norm(dim=1).mean()), 4)
        1.0
    """
    _check_count("sphere", n)
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5**0.5) * i
    rho = (1 - z**2).sqrt()
    pos = (torch.stack([rho * torch.cos(phi), rho * torch.sin(phi), z], 1) * radius).float()
    return from_coords(pos, wiring or knn(8), end_areas(pos, input_size, output_size, axis=2),
                       name=f"sphere({n})", metric="sphere")


def ring(n: int, wiring: Wiring | None = None) -> Geometry:
    """``n`` columns on a circle of circumference ``n`` (1D, wrapped): for sequence data."""
    _check_count("ring", n)
    pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    everything = torch.arange(n)
    return from_coords(pos, wiring or knn(2), {"sheet": everything, "input": everything,
                                                "output": everything},
                       period=torch.tensor([float(n)]), name=f"ring({n})")


def line(n: int, wiring: Wiring | None = None) -> Geometry:
    """``n`` columns on a line with unit spacing (1D, open ends)."""
    _check_count("line", n)
    pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    everything = torch.arange(n)
    return from_coords(pos, wiring or knn(2), {"sheet": everything, "input": everything,
                                                "output": everything}, name=f"line({n})")


def random_sheet(n: int, shape: str = "box", dim: int = 2, size: float | None = None,
                 seed: int = 0, wiring: Wiring | None = None, input_size: int | None = None,
                 output_size: int | None = None) -> Geometry:
    """``n`` columns at uniform random positions in a box ``[0, size]^dim`` or a disc/ball.

    ``size`` defaults to ``n ** (1 / dim)`` (unit density). ``input`` = the ``input_size``
    columns with the smallest first coordinate, ``output`` = the ``output_size`` largest.
    """
    _check_count("random_sheet", n)
    if dim < 1:
        raise ValueError(f"random_sheet needs dim >= 1 (got {dim}); set geometry.dim.")
    if shape not in ("box", "disc"):
        raise ValueError(f"Unknown random sheet shape '{shape}'. Choices: box, disc.")
    size = float(size or n ** (1.0 / dim))
    g = torch.Generator().manual_seed(seed)
    if shape == "box":
        pos = torch.rand(n, dim, generator=g, dtype=torch.float64) * size
    else:  # uniform in a ball of diameter `size`
        direction = torch.randn(n, dim, generator=g, dtype=torch.float64)
        direction = direction / direction.norm(dim=1, keepdim=True)
        r = torch.rand(n, 1, generator=g, dtype=torch.float64) ** (1.0 / dim) * size / 2
        pos = direction * r + size / 2
    pos = pos.float()
    return from_coords(pos, wiring or knn(8), end_areas(pos, input_size, output_size),
                       name=f"random({n}, {shape}, dim={dim}, seed={seed})")


def scramble(geometry: Geometry, seed: int = 0) -> Geometry:
    """``geometry`` with its columns placed at random sites: column ``i`` moves to where
    column ``perm[i]`` was (``perm`` a random permutation drawn from ``seed``). Edges, areas,
    labels and the input map stay with their columns; lengths follow the new positions (a
    mesh's surface paths between sites too: :class:`~colgraph.geometry.SiteLengths`), and
    a mesh's triangles are renumbered to the columns now at their corners.

    A sheet whose wiring ignores its layout: a wiring cost can only shorten its wire by
    moving columns (``migrate.*``), the starting point of migration experiments
    (``geometry.scramble=<seed>`` in a config).

    Example:
        >>> from colgraph.geometry import grid, knn
        >>> geo = grid(8, wiring=knn(k=4))
        >>> mixed = scramble(geo, seed=0)
        >>> bool(mixed.edge_length.mean() > 2 * geo.edge_length.mean())
        True
    """
    from .base import SiteLengths

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"scramble needs a seed, an integer >= 0 (got {seed!r}).")
    N = geometry.num_columns
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(seed))
    pos = geometry.pos[perm]
    src, dst = geometry.edge_index
    length = measure(pos, src, dst, geometry.metric, geometry.period)
    given = SiteLengths.of(geometry)
    if given is not None:
        length = given.lengths(perm, src, dst, length)
    faces = None
    if geometry.faces is not None:
        at = torch.empty_like(perm)
        at[perm] = torch.arange(N)  # the column now at each site
        faces = at[geometry.faces]
    return Geometry(pos, geometry.edge_index, length, dict(geometry.areas),
                    period=geometry.period, name=f"{geometry.name}, scrambled({seed})",
                    labels=geometry.labels, metric=geometry.metric,
                    input_map=geometry.input_map, faces=faces)

"""Geometries: column positions, candidate edges with lengths, and named areas.

Build one in Python (``grid``, ``torus``, ``stack``, ``sphere``, ``ring``, ``line``,
``random_sheet``, ``from_coords``, ``from_networkx``, ``from_mesh``, ``from_surface``,
``read_geometry``) with a
wiring rule (``knn``, ``radius``, ``full``, ``exponential``, ``uniform``, ``union``), or from
a config with :func:`build_geometry`.
"""
from __future__ import annotations

from typing import Any, Callable

from .base import (METRICS, Geometry, canonical_order, great_circle_length, hops_from, measure,
                   pairwise_length, plane_axes, rank_within_target)
from .builders import (STACK_INTER, end_areas, from_coords, grid, line, random_sheet, ring,
                       sphere, stack, torus)
from .io import (from_mesh, from_networkx, from_pyg, read_geometry, to_networkx, to_pyg,
                 write_geometry)
from .surface import from_surface, read_parcellation, write_vertex_data
from .wiring import Wiring, exponential, full, get_wiring, knn, radius, uniform, union

__all__ = ["Geometry", "canonical_order", "pairwise_length", "great_circle_length", "measure",
           "hops_from", "rank_within_target", "plane_axes", "METRICS", "from_coords", "grid", "torus",
           "stack", "sphere", "ring", "line", "random_sheet", "end_areas", "STACK_INTER",
           "from_networkx", "to_networkx", "from_mesh", "read_geometry", "write_geometry",
           "to_pyg", "from_pyg", "from_surface", "read_parcellation", "write_vertex_data",
           "Wiring", "knn", "radius", "full", "exponential", "uniform", "union", "get_wiring",
           "GEOMETRIES", "build_geometry", "build_wiring", "GEOMETRY_FIELDS", "WIRING_FIELDS"]


def build_wiring(w: Any) -> Wiring | None:
    """The wiring rule a ``geometry.wiring`` config node describes.

    ``rule`` (``knn``, ``radius``, ``full``, ``exponential``, ``uniform``) with its fields;
    with ``long_range > 0`` the rule is joined by ``long_range`` exponential-distance-rule
    edges per column (length scale ``lam``, seeded by ``seed``). ``rule=none`` (for
    ``geometry=graph``: the file's edges only) gives ``None``, or the long-range edges alone.
    """
    if w.rule == "none":
        return exponential(m=w.long_range, lam=w.lam, seed=w.seed) if w.long_range else None
    base = get_wiring(w.rule, k=w.k, r=w.r, m=w.long_range or 4, lam=w.lam, seed=w.seed,
                      self_loops=w.self_loops)
    if w.long_range and w.rule != "exponential":
        return union(base, exponential(m=w.long_range, lam=w.lam, seed=w.seed))
    return base


# the geometry.wiring fields each rule reads (long_range, seed and self_loops: every rule);
# config validation refuses a field set for a rule that ignores it
WIRING_FIELDS = {"knn": ("k",), "radius": ("r",), "full": (), "exponential": ("lam",),
                 "uniform": ("k",), "none": ()}

GEOMETRIES: dict[str, Callable[[Any, Wiring], Geometry]] = {
    "grid": lambda c, w: grid(c.width, c.height, wiring=w),
    "torus": lambda c, w: torus(c.width, c.height, wiring=w),
    "stack": lambda c, w: stack(list(c.widths), spacing=c.spacing, wiring=w, inter=c.inter,
                                inter_k=c.inter_k),
    "sphere": lambda c, w: sphere(c.n, radius=c.size or 1.0, wiring=w,
                                  input_size=c.input_size, output_size=c.output_size),
    "ring": lambda c, w: ring(c.n, wiring=w),
    "line": lambda c, w: line(c.n, wiring=w),
    "random": lambda c, w: random_sheet(c.n, shape=c.shape, dim=c.dim, size=c.size,
                                        seed=c.seed, wiring=w, input_size=c.input_size,
                                        output_size=c.output_size),
    "graph": lambda c, w: _graph(c, w),
}
# the geometry config fields each builder above reads (plus wiring)
GEOMETRY_FIELDS = {"grid": ("width", "height"), "torus": ("width", "height"),
                   "stack": ("widths", "spacing", "inter", "inter_k"),
                   "sphere": ("n", "size", "input_size", "output_size"),
                   "ring": ("n",), "line": ("n",),
                   "random": ("n", "shape", "dim", "size", "seed", "input_size", "output_size"),
                   "graph": ("path", "coords")}


def _graph(cfg: Any, wiring: Wiring | None) -> Geometry:
    """The file's sheet, plus the edges of ``geometry.wiring`` unless its rule is ``none``."""
    if not cfg.path:
        raise ValueError("geometry=graph needs a file: set geometry.path=my_sheet.graphml "
                         "(GraphML / GML, or an edge-list CSV with geometry.coords=nodes.csv).")
    geo = read_geometry(cfg.path, coords=cfg.coords)
    return geo if wiring is None else geo.with_wiring(wiring)


def build_geometry(cfg: Any) -> Geometry:
    """Build the geometry a config describes (``cfg.name`` picks the builder).

    ``cfg`` follows :class:`colgraph.config.GeometryConfig`: ``name`` (one of
    :data:`GEOMETRIES`), the builder's fields and a ``wiring`` node.
    """
    if cfg.name not in GEOMETRIES:
        raise ValueError(f"Unknown geometry '{cfg.name}'. Choices: {', '.join(GEOMETRIES)}. "
                         f"Pick one with geometry=<name>.")
    wiring = build_wiring(cfg.wiring)
    if wiring is None and cfg.name != "graph":
        raise ValueError(f"geometry.wiring.rule=none gives geometry={cfg.name} no edges (only "
                         f"geometry=graph has edges of its own). Choose a rule: "
                         f"{', '.join(r for r in WIRING_FIELDS if r != 'none')}.")
    return GEOMETRIES[cfg.name](cfg, wiring)

"""Geometries: column positions, candidate edges with lengths, and named areas.

Build one in Python (``grid``, ``torus``, ``stack``, ``sphere``, ``ring``, ``line``,
``random_sheet``, ``from_coords``, ``from_networkx``, ``from_mesh``, ``from_surface``,
``read_geometry``) with a
wiring rule (``knn``, ``radius``, ``full``, ``exponential``, ``uniform``, ``union``), or from
a config with :func:`build_geometry`: the registries :data:`GEOMETRIES` and :data:`WIRINGS`
hold one config dataclass per option (``GridConfig``, ``KnnWiring``, ...; see
:mod:`colgraph.geometry.registry`).
"""
from __future__ import annotations

from .base import (METRICS, Geometry, SiteLengths, canonical_order, great_circle_length,
                   hops_from, measure, pairwise_length, plane_axes, rank_within_target)
from .builders import (STACK_INTER, end_areas, from_coords, grid, hex_coords, hex_lattice,
                       hex_positions, line, random_sheet, ring, scramble, sphere, stack,
                       torus)
from .io import from_mesh, from_networkx, from_pyg, read_geometry, write_geometry
from .registry import (GEOMETRIES, WIRINGS, ExponentialWiring, FullWiring, GeometryConfig,
                       GraphConfig, GridConfig, HexConfig, KnnWiring, LineConfig, NoWiring, RadiusWiring,
                       RandomConfig, RingConfig, SphereConfig, StackConfig, TorusConfig,
                       UniformWiring, WiringConfig, build_geometry, build_wiring, get_wiring,
                       register_geometry, register_wiring)
from .surface import from_surface, read_parcellation, write_vertex_data
from .wiring import Wiring, exponential, full, knn, radius, uniform, union

__all__ = ["Geometry", "SiteLengths", "canonical_order", "pairwise_length",
           "great_circle_length", "measure", "hops_from", "rank_within_target", "plane_axes", "METRICS", "from_coords", "grid", "torus",
           "hex_lattice", "hex_coords", "hex_positions", "HexConfig",
           "stack", "sphere", "ring", "line", "random_sheet", "scramble", "end_areas", "STACK_INTER",
           "from_networkx", "from_mesh", "read_geometry", "write_geometry", "from_pyg", "from_surface", "read_parcellation", "write_vertex_data",
           "Wiring", "knn", "radius", "full", "exponential", "uniform", "union", "get_wiring",
           "GeometryConfig", "GEOMETRIES", "register_geometry", "GridConfig", "TorusConfig",
           "StackConfig", "SphereConfig", "RingConfig", "LineConfig", "RandomConfig",
           "GraphConfig", "build_geometry", "WiringConfig", "WIRINGS", "register_wiring",
           "KnnWiring", "RadiusWiring", "FullWiring", "ExponentialWiring", "UniformWiring",
           "NoWiring", "build_wiring"]

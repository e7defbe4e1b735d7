"""Geometries: column positions, candidate edges with lengths, and named areas.

Build one in Python (``grid``, ``torus``, ``stack`` with a wiring rule ``knn``, ``radius``,
``full``) or from a config with :func:`build_geometry`.
"""
from __future__ import annotations

from typing import Any, Callable

from .base import Geometry, canonical_order, pairwise_length
from .builders import from_positions, grid, stack, torus
from .wiring import Wiring, full, get_wiring, knn, radius

__all__ = ["Geometry", "canonical_order", "pairwise_length", "from_positions", "grid",
           "torus", "stack", "Wiring", "knn", "radius", "full", "get_wiring", "GEOMETRIES",
           "build_geometry"]


def _grid(cfg: Any, wiring: Wiring) -> Geometry:
    return grid(cfg.width, cfg.height, wiring=wiring)


def _torus(cfg: Any, wiring: Wiring) -> Geometry:
    return torus(cfg.width, cfg.height, wiring=wiring)


def _stack(cfg: Any, wiring: Wiring) -> Geometry:
    return stack(list(cfg.widths), spacing=cfg.spacing, wiring=wiring)


GEOMETRIES: dict[str, Callable[[Any, Wiring], Geometry]] = {
    "grid": _grid, "torus": _torus, "stack": _stack}


def build_geometry(cfg: Any) -> Geometry:
    """Build the geometry a config describes (``cfg.name`` picks the builder).

    ``cfg`` has ``name`` (one of :data:`GEOMETRIES`), the builder's fields and a ``wiring``
    node with ``rule`` (``knn``, ``radius``, ``full``), ``k``, ``r`` and ``self_loops``.
    """
    if cfg.name not in GEOMETRIES:
        raise ValueError(f"Unknown geometry '{cfg.name}'. Choices: {', '.join(GEOMETRIES)}. "
                         f"Pick one with geometry=<name>.")
    w = cfg.wiring
    wiring = get_wiring(w.rule, k=w.k, r=w.r, self_loops=w.self_loops)
    return GEOMETRIES[cfg.name](cfg, wiring)

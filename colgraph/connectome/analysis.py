"""Network-neuroscience analysis of a connectome (a ``DiGraph`` with ``weight``, ``length``
edge attributes and ``pos``, ``area`` node attributes, as :func:`to_networkx` makes).

Choices, explicit because networkx's small-world and rich-club functions reject directed
graphs and ignore weights:

* **Weighted, directed** where definitions exist: strengths, weighted reciprocity
  (``sum min(w_ij, w_ji) / sum w_ij``), directed weighted clustering (Fagiolo),
  area-to-area flow, wiring cost, EDR fit, receptive fields, weight-distance correlation.
* **Symmetrised and weighted** for modularity: ``w_ij + w_ji``, Louvain (networkx, seeded),
  compared with degree-preserving null models (directed configuration model: targets of
  the edges shuffled, weights travel with their edges; self-loops / repeats dropped).
* **Symmetrised, thresholded to a density, binary** for clustering, path length,
  small-world sigma / omega and the rich club: the strongest ``edge_fraction`` of the
  symmetrised edges is kept. References: a degree-preserving random graph (configuration
  model) for ``C_rand`` / ``L_rand`` and the normalised rich club; a ring lattice with the
  same mean degree ``k`` for ``C_latt = 3 (k - 2) / (4 (k - 1))``. Path lengths are
  averaged over BFS from up to ``n_sources`` sampled columns (exact for small graphs).

The measures live by concept in :mod:`~colgraph.connectome.arrays` (edge arrays, null
models), :mod:`~colgraph.connectome.degrees`, :mod:`~colgraph.connectome.lengths`,
:mod:`~colgraph.connectome.flow` and :mod:`~colgraph.connectome.topology`; this module
gathers them (:func:`analyze`, :func:`node_metrics`).

Everything runs on edge arrays with numpy / scipy.sparse (``O(E)`` per pass): a 10^4
column connectome is analysed in seconds (see BENCHMARKS.md).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import ALIASES, EdgeArrays, _a, _summary, arrays, check_settings
from .degrees import degree_stats, reciprocity
from .flow import area_flow, disjoint_areas, plain_areas
from .lengths import edr_fit, receptive_fields, weight_distance, wiring
from .nulls import NULLS, check_families, null_model, significance
from .placement import _has_positions, placement_report
from .topology import modularity, rich_club, small_world, weighted_clustering

__all__ = ["EdgeArrays", "arrays", "degree_stats", "reciprocity", "edr_fit", "wiring",
           "weighted_clustering", "area_flow", "disjoint_areas", "plain_areas", "modularity",
           "small_world", "rich_club", "weight_distance", "receptive_fields", "node_metrics",
           "analyze", "ALIASES", "significance", "null_model", "NULLS"]


def node_metrics(G, community: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-column measures in node order (column order for colgraph's connectomes):
    ``in_degree``, ``out_degree``, ``in_strength``, ``out_strength`` (summed attention),
    ``receptive_field`` (:func:`receptive_fields`) and, with ``community``, the Louvain
    module of each column (``0`` = the largest; see :func:`modularity`).

    Write them next to a surface with :func:`colgraph.geometry.write_vertex_data`, or as
    node attributes with :func:`colgraph.connectome.write_connectome`.
    """
    check_settings(seed=seed)
    a = _a(G)
    out = {"in_degree": np.bincount(a.dst, minlength=a.n).astype(float),
           "out_degree": np.bincount(a.src, minlength=a.n).astype(float),
           "in_strength": np.bincount(a.dst, a.weight, minlength=a.n),
           "out_strength": np.bincount(a.src, a.weight, minlength=a.n),
           "receptive_field": receptive_fields(a)}
    if community:
        out["community"] = np.asarray(modularity(a, n_null=0, seed=seed)["communities"],
                                      dtype=float)
    return out


def analyze(G, n_null: int = 3, edge_fraction: float = 0.5, n_sources: int = 500,
            seed: int = 0, nulls: str | tuple[str, ...] | None = "auto",
            progress: bool = False, placement: bool = False) -> dict[str, Any]:
    """All metrics of this module in one JSON-ready dict.

    ``significance`` tests every scalar against ``n_null`` samples of each null family of
    ``nulls`` (:func:`~colgraph.connectome.significance`; ``"auto"``: degree, spatial where
    the graph has positions, prior; ``None`` or ``n_null=0``: no tests). The modularity's
    ``Q_null_*`` / ``Q_z`` are its degree family's.

    ``G``: a connectome ``DiGraph`` (an undirected graph is analysed with both directions of
    each edge, with a warning and a ``notes`` entry; parallel edges, non-numeric, NaN or
    negative weights and lengths, and graphs without an edge between two columns are
    refused). A metric a graph does not define (small-world sigma without triangles in the
    random reference, the null models' z-score with fewer than 2 nulls, ...) is NaN and
    ``notes`` says why.

    With ``placement``, also ``placement``: how close the columns' layout is to the
    wire-saving optimum (:func:`~colgraph.connectome.placement_report` with ``seed``:
    the actual wire, the best placement found and random placements, overall and per
    area, with its own ``notes``); it needs every column's position (node ``pos``).
    """
    check_settings(n_null, edge_fraction, n_sources, seed)  # before any work
    nulls = check_families(nulls)
    if placement and not _has_positions(G):
        raise ValueError("analyze(placement=True) needs every column's position (node "
                         "attribute 'pos', as colgraph.connectome.to_networkx sets), but the "
                         "graph lacks them: the wire of a placement is weight x length "
                         "between positions. Give every node a 'pos' tuple, or pass "
                         "placement=False.")
    a = _a(G)
    sig = None
    if nulls and n_null > 0:  # the null tests first: a family that does not apply is refused
        sig = significance(a, nulls, n_null, edge_fraction, n_sources, seed, progress=progress)
    out: dict[str, Any] = {"columns": a.n, "edges": int(a.src.size),
                           "weight": G.graph.get("weight", "weight")
                           if not isinstance(G, EdgeArrays) else a.weight_name}
    out["degrees"] = degree_stats(a)
    out.update(reciprocity(a))
    out["edr"] = edr_fit(a)
    out.update(wiring(a))
    out.update(weight_distance(a))
    out.update(weighted_clustering(a))
    rf = receptive_fields(a)
    out["receptive_field"] = _summary(rf[np.isfinite(rf)])
    out["flow"] = area_flow(a)
    degree = sig["metrics"]["modularity_Q"].get("degree") if sig else None
    out["modularity"] = modularity(a, n_null=0 if degree else n_null, seed=seed)
    if degree:  # the degree family's samples are the modularity's null models
        out["modularity"].pop("note", None)
        out["modularity"].update(Q_null_mean=degree["mean"], Q_null_std=degree["std"],
                                 Q_z=degree["z"], Q_p=degree["p"])
        if degree["z"] is None:
            out["modularity"]["note"] = ("Q_z n/a: the z-score needs n_null >= 2 null models "
                                         f"(got {n_null})" if n_null < 2 else
                                         "Q_z n/a: every null model has the same Q (std 0)")
    out["small_world"] = small_world(a, edge_fraction, n_sources, seed)
    out["rich_club"] = rich_club(a, edge_fraction, n_null, seed)
    if sig:
        out["significance"] = sig
    if placement:  # its notes stay in its section (the pins chosen are always noted)
        out["placement"] = placement_report(G, seed=seed)
    notes = list(a.notes) + [f"{name}: {section['note']}" for name, section in (
        ("edr", out["edr"]), ("modularity", out["modularity"]),
        ("small_world", out["small_world"]), ("rich_club", out["rich_club"]))
        if section.get("note")] + [f"significance: {n}" for n in (sig or {}).get("notes", [])]
    if np.isnan(out["weight_distance_rho"]):
        notes.append("weight_distance_rho: n/a: needs at least 3 edges with lengths and "
                     "weights and lengths that vary")
    if notes:  # only when something is undefined: a well-formed sheet's report is unchanged
        out["notes"] = notes
    return out

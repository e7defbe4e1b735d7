"""Published connectomes with columns, as reference graphs for :func:`~colgraph.connectome.
compare`.

* :func:`fly_optic_lobe`: the fruit fly's optic lobe (lamina, medulla), a hexagonal lattice
  of columns, from the connectome the ``flyvis`` package ships (Lappalainen et al. 2024,
  built from the FIB-25 / FIB-19 reconstructions of Takemura et al.): 65 cell types, each
  tiling the columns, and for each pair of types the synapse count at each column offset.
  Reduced to colgraph's level, one node per column: the edge ``c -> c + offset`` weighs
  the synapses of every (source type, target type) pair at that offset, summed over the
  cells of both columns. Same columns and labels (``"u,v"``) as
  :func:`~colgraph.geometry.hex_lattice`, so a hexagonal sheet compares node for node.
"""
from __future__ import annotations

import importlib.util
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["fly_optic_lobe", "FLYVIS_FILE"]

#: the connectome inside the flyvis package (read as data: nothing of flyvis is imported)
FLYVIS_FILE = "connectome/fib25-fib19_v2.2.json"


def _flyvis_file() -> Path:
    spec = importlib.util.find_spec("flyvis")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("The fly optic lobe's connectome ships inside the flyvis package: "
                          "pip install --no-deps flyvis (colgraph reads its data file only, "
                          "so flyvis's own dependencies are not needed), or pass path= the "
                          "JSON file.")
    path = Path(spec.submodule_search_locations[0]) / FLYVIS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed flyvis package; "
                                f"reinstall it, or pass path= the JSON file.")
    return path


def _check(data: Any, path: Path) -> None:
    """The file has the shape of flyvis's connectome (before any work on it)."""
    ok = (isinstance(data, dict) and isinstance(data.get("nodes"), list)
          and isinstance(data.get("edges"), list)
          and all(isinstance(n, dict) and "name" in n and "pattern" in n for n in data["nodes"])
          and all(isinstance(e, dict) and {"src", "tar", "offsets"} <= set(e)
                  for e in data["edges"]))
    if not ok:
        raise ValueError(f"{path} is not a flyvis connectome: expected a JSON object with "
                         f"'nodes' (name, pattern) and 'edges' (src, tar, offsets).")


def fly_optic_lobe(extent: int = 15, types: list[str] | None = None, self_loops: bool = False,
                   path: str | Path | None = None):
    """The fly optic lobe as a column-level ``networkx.DiGraph`` on a hexagonal lattice.

    Args:
        extent: columns within this many steps of the centre (15: the 721 columns flyvis
            models; the lattice of :func:`~colgraph.geometry.hex_lattice` with the same
            extent has the same nodes).
        types: keep only synapses between these cell types (default: all 65), e.g. the
            columnar medulla types.
        self_loops: keep synapses within a column (offset 0) as self-loops (default: left
            out; colgraph's sheets have no self-edges unless asked for).
        path: the JSON file (default: the one inside the installed flyvis package).

    Edges: ``weight`` = synapses (the reported counts; flyvis's optional filling of gaps
    inside each offset pattern is not applied), ``length`` in column spacings; nodes:
    ``pos`` in the plane (unit column spacing), ``area`` ``sheet,input,output`` as a hex
    sheet's. ``G.graph['types']`` lists the cell types kept.

    Example:
        >>> G = fly_optic_lobe(extent=4)          # doctest: +SKIP
        >>> G.number_of_nodes()                   # doctest: +SKIP
        61
    """
    import networkx as nx

    from ..geometry.builders import _check_count, hex_coords, hex_positions

    _check_count("fly_optic_lobe", extent, "extent", 0)
    if types is not None and (isinstance(types, str) or not all(isinstance(t, str)
                                                                  for t in types)):
        raise TypeError(f"types must be a list of cell type names (got {types!r}).")
    path = Path(path) if path is not None else _flyvis_file()
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path}.")
    with path.open() as fh:  # JSON: data only, nothing in it can run
        data = json.load(fh)
    _check(data, path)
    known = {n["name"]: n for n in data["nodes"]}
    if types is not None:
        unknown = sorted(set(types) - set(known))
        if unknown:
            raise ValueError(f"Unknown cell type(s) {', '.join(unknown)}. The connectome's "
                             f"types: {', '.join(sorted(known))}.")
    kept = set(types) if types is not None else set(known)
    uv = hex_coords(extent)
    index = {(int(u), int(v)): i for i, (u, v) in enumerate(uv.tolist())}

    def cells(name: str) -> np.ndarray:
        """Columns (axial) holding a cell of this type: every column, or every stride."""
        kind, arg = known[name]["pattern"][0], known[name]["pattern"][1:]
        if kind != "stride":
            raise ValueError(f"Cell type {name}: pattern {kind!r} is not supported (only "
                             f"'stride', which every type of flyvis's connectome uses).")
        su, sv = arg[0]
        return uv[(uv[:, 0] % su == 0) & (uv[:, 1] % sv == 0)]

    weight: dict[tuple[int, int], float] = defaultdict(float)
    synapses = 0.0
    for e in data["edges"]:
        if e["src"] not in kept or e["tar"] not in kept:
            continue
        src = cells(e["src"])
        tar = {(int(u), int(v)) for u, v in cells(e["tar"]).tolist()}
        for (du, dv), n_syn in e["offsets"]:
            if not self_loops and du == 0 and dv == 0:
                continue
            for u, v in src.tolist():
                t = (u + du, v + dv)
                if t in tar:  # the target cell exists (within the lattice, on its stride)
                    weight[index[(u, v)], index[t]] += float(n_syn)
                    synapses += float(n_syn)
    pos = hex_positions(uv).numpy()
    labels = [f"{u},{v}" for u, v in uv.tolist()]
    G = nx.DiGraph(name=f"fly optic lobe (flyvis, extent {extent})", weight="synapses",
                   metric="euclidean", types=",".join(sorted(kept)), synapses=synapses)
    for i, label in enumerate(labels):
        G.add_node(label, pos=tuple(float(c) for c in pos[i]), area="sheet,input,output",
                   x=float(pos[i, 0]), y=float(pos[i, 1]))
    for (s, t), w in weight.items():
        G.add_edge(labels[s], labels[t], weight=w,
                   length=float(np.linalg.norm(pos[s] - pos[t])))
    return G

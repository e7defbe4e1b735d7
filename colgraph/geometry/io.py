"""Geometries from graphs, meshes and files: bring any sheet to colgraph.

* :func:`from_networkx` / :meth:`Geometry.to_networkx`: a networkx ``Graph`` / ``DiGraph``
  with node positions (and optional edge lengths, areas) <-> a :class:`Geometry`, labels kept.
* :func:`from_mesh`: a triangle mesh (e.g. a cortical surface) -> a sheet.
* :func:`read_geometry` / :func:`write_geometry`: GraphML, GML, or an edge-list CSV plus a
  coordinates CSV.
* :meth:`Geometry.to_pyg` / :func:`from_pyg`: a ``torch_geometric.data.Data`` <-> a
  :class:`Geometry`.

The way back out is a method of the geometry (``geo.to_networkx()``, ``geo.to_pyg()``), so
the one function called ``to_networkx`` is the connectome's
(:func:`colgraph.connectome.to_networkx`: a trained model's learned graph).
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import Geometry, pairwise_length

__all__ = ["from_networkx", "from_mesh", "read_geometry", "write_geometry", "from_pyg",
           "GRAPH_FORMATS"]

GRAPH_FORMATS = (".graphml", ".gml", ".csv")


def _area_names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):  # "V1" or "V1,input" (GraphML has no list type)
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return [str(value)]


def _position(value: Any, node: Hashable) -> list[float]:
    if value is None:
        raise ValueError(f"Node {node!r} has position None. Give every node its coordinates: "
                         f"G.nodes[v]['pos'] = (x, y[, z]).")
    if isinstance(value, str):  # GraphML stores vectors as text: "0.5 1.0" or "0.5,1.0"
        value = value.replace(",", " ").split()
    try:
        return [float(v) for v in np.atleast_1d(np.asarray(value, dtype=float))]
    except (TypeError, ValueError) as e:
        raise ValueError(f"Node {node!r} has position {value!r}, which is not a list of "
                         f"numbers.") from e


def _patch_index(value: Any, node: Hashable) -> int:
    try:
        f = float(value)
    except (TypeError, ValueError):
        f = float("nan")
    if not (f == f and f == int(f) and f >= -1):
        raise ValueError(f"Node {node!r} has input_map {value!r}: expected the index (>= 0) "
                         f"of the patch it receives, or -1 for none.")
    return int(f)


def from_networkx(G, pos: str = "pos", length: str | None = None, area: str = "area",
                  name: str | None = None, input_map: str = "input_map") -> Geometry:
    """A networkx graph becomes a :class:`Geometry`.

    Args:
        G: a ``networkx.Graph`` (edges used in both directions) or ``DiGraph``
            (``u -> v``: ``v`` attends to ``u``).
        pos: node attribute with the coordinates (any dimension). Also accepted: separate
            numeric node attributes ``x``, ``y`` (, ``z``) when ``pos`` is missing.
        length: edge attribute with the edge length; ``None`` = Euclidean from positions.
        area: node attribute naming the node's area(s): a string (comma-separated for
            several) or a list.
        name: a description (default: the graph's ``name`` or ``"networkx"``).
        input_map: node attribute with the patch index (row-major) an input-area column
            receives, if the graph gives an explicit retinotopic map; nodes without it get
            ``-1``. Without the attribute anywhere the map is fitted from positions.

    Node labels of any hashable type are kept in ``Geometry.labels``, in column order.

    Example:
        >>> import networkx as nx
        >>> G = nx.path_graph(["a", "b", "c"])
        >>> for i, v in enumerate(G): G.nodes[v]["pos"] = (float(i), 0.0)
        >>> geo = from_networkx(G)
        >>> geo.labels, geo.num_edges
        (['a', 'b', 'c'], 4)
    """
    import networkx as nx

    if not isinstance(G, (nx.Graph, nx.DiGraph)):
        raise TypeError(f"from_networkx expects a networkx Graph or DiGraph, got "
                        f"{type(G).__name__}.")
    if G.is_multigraph():
        raise TypeError("from_networkx expects a simple Graph or DiGraph, not a multigraph: "
                        "merge parallel edges first (nx.DiGraph(G)).")
    labels = list(G.nodes)
    if not labels:
        raise ValueError("The graph has no nodes.")
    index = {v: i for i, v in enumerate(labels)}
    coords = []
    for v in labels:
        data = G.nodes[v]
        if pos in data:
            coords.append(_position(data[pos], v))
        elif "x" in data and "y" in data:
            coords.append([float(data[c]) for c in ("x", "y", "z") if c in data])
        else:
            raise ValueError(f"Node {v!r} has no '{pos}' attribute. Give every node its "
                             f"coordinates: G.nodes[v]['{pos}'] = (x, y[, z]).")
    dims = {len(c) for c in coords}
    if len(dims) != 1:
        first = {d: next(v for v, c in zip(labels, coords) if len(c) == d) for d in dims}
        raise ValueError("Node positions have different dimensions "
                         + ", ".join(f"{d} (e.g. node {first[d]!r})" for d in sorted(dims))
                         + "; give every node the same number of coordinates.")
    pos_t = torch.tensor(coords, dtype=torch.float32)
    src, dst, lengths = [], [], []
    for u, v, data in G.edges(data=True):
        pairs = [(u, v)] if G.is_directed() or u == v else [(u, v), (v, u)]
        if length is not None and length not in data:
            raise ValueError(f"Edge {u!r} - {v!r} has no '{length}' attribute. Give every "
                             f"edge a length or pass length=None for Euclidean lengths.")
        for a, b in pairs:
            src.append(index[a])
            dst.append(index[b])
            if length is not None:
                lengths.append(float(data[length]))
    edge_index = torch.tensor([src, dst], dtype=torch.long).view(2, -1)
    if length is None:
        edge_length = pairwise_length(pos_t, edge_index[0], edge_index[1])
    else:
        edge_length = torch.tensor(lengths, dtype=torch.float32)
    areas: dict[str, list[int]] = {}
    for v in labels:
        for a in _area_names(G.nodes[v].get(area)):
            areas.setdefault(a, []).append(index[v])
    patches = None
    if any(input_map in G.nodes[v] for v in labels):
        patches = torch.tensor([_patch_index(G.nodes[v].get(input_map, -1), v)
                                for v in labels])
    return Geometry(pos_t, edge_index, edge_length,
                    {k: torch.tensor(v) for k, v in areas.items()},
                    name=name or G.graph.get("name") or "networkx", labels=labels,
                    input_map=patches)


def networkx_graph(geometry: Geometry):
    """A :class:`Geometry` as a ``networkx.DiGraph`` (inverse of :func:`from_networkx`;
    :meth:`Geometry.to_networkx` calls it).

    Nodes are the geometry's labels (or column ids) with ``pos`` (tuple) and ``area``
    (comma-separated names) attributes (and ``input_map`` if the geometry has one); edges
    carry ``length``.
    """
    import networkx as nx

    labels = geometry.labels or list(range(geometry.num_columns))
    G = nx.DiGraph(name=geometry.name)
    areas = geometry.column_areas()
    for i, v in enumerate(labels):
        G.add_node(v, pos=tuple(geometry.pos[i].tolist()), area=areas[i])
        if geometry.input_map is not None:
            G.nodes[v]["input_map"] = int(geometry.input_map[i])
    for (s, t), ln in zip(geometry.edge_index.t().tolist(), geometry.edge_length.tolist()):
        G.add_edge(labels[s], labels[t], length=ln)
    return G


def from_mesh(vertices, faces, k_ring: int = 1, geodesic: bool = False,
              areas: dict | None = None, name: str = "mesh") -> Geometry:
    """A triangle mesh becomes a sheet: columns at vertices, edges from the mesh.

    Args:
        vertices: ``[V, 3]`` (or ``[V, D]``) vertex coordinates.
        faces: ``[F, 3]`` vertex indices of the triangles.
        k_ring: connect every vertex to all vertices within ``k_ring`` mesh hops (1 = mesh
            edges only), in both directions.
        geodesic: lengths along the surface: the shortest path on the mesh graph using at
            most ``k_ring`` hops (equal to the mesh edge length for ``k_ring=1``).
            ``False``: straight-line (Euclidean) lengths.
        areas: named vertex sets.

    Cost is ``O(V * ring size)`` (sparse matrix products, no ``V x V`` matrix): 10^5
    vertices with ``k_ring=2`` take a few seconds.
    """
    import scipy.sparse as sp

    verts = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
    f = np.asarray(faces, dtype=np.int64)
    n = verts.size(0)
    if verts.dim() != 2 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"Expected vertices [V, D] and faces [F, 3] (got {list(verts.shape)} "
                         f"and {list(f.shape)}).")
    if f.size == 0:
        raise ValueError(f"The mesh has {n} vertices but no faces: a sheet from a mesh takes "
                         f"its edges from the triangles. Pass faces [F, 3], or use "
                         f"from_coords(vertices, knn(...)) for points without a mesh.")
    if f.min() < 0 or f.max() >= n:
        raise ValueError(f"Faces index vertices outside [0, {n - 1}] (got min {f.min()}, max "
                         f"{f.max()}).")
    if k_ring < 1:
        raise ValueError(f"k_ring must be >= 1 (got {k_ring}).")
    a = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    b = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    keep = a != b
    a, b = a[keep], b[keep]
    adj = sp.coo_matrix((np.ones(2 * a.size), (np.r_[a, b], np.r_[b, a])), shape=(n, n)).tocsr()
    adj.data[:] = 1.0
    adj.sum_duplicates()
    adj.data[:] = 1.0
    if not geodesic:
        reach = adj.copy()
        for _ in range(k_ring - 1):
            reach = reach + reach @ adj
            reach.data[:] = 1.0
        reach.setdiag(0)
        reach.eliminate_zeros()
        reach = reach.tocoo()
        edge_index = torch.from_numpy(np.stack([reach.row, reach.col]).astype(np.int64))
        length = pairwise_length(verts, edge_index[0], edge_index[1])
    else:
        edge_index, length = _hop_limited_paths(verts, adj.tocoo(), k_ring)
    return Geometry(verts, edge_index, length, areas or {}, name=f"{name}({n} vertices)")


def _hop_limited_paths(verts: torch.Tensor, adj, k: int):
    """Shortest weighted paths using at most ``k`` mesh edges, for all pairs within k hops.

    Min-plus extension of an edge list one hop at a time (sort + reduceat), O(V * ring).
    """
    n = verts.size(0)
    s0, t0 = adj.row.astype(np.int64), adj.col.astype(np.int64)
    w0 = pairwise_length(verts, torch.from_numpy(s0), torch.from_numpy(t0)).double().numpy()
    order = np.argsort(s0, kind="stable")
    s0, t0, w0 = s0[order], t0[order], w0[order]
    ptr = np.searchsorted(s0, np.arange(n + 1))
    src, dst, dist = s0, t0, w0
    for _ in range(k - 1):
        deg = ptr[dst + 1] - ptr[dst]  # extend every path by every edge out of its end
        rep = np.repeat(np.arange(dst.size), deg)
        offs = np.arange(rep.size) - np.repeat(np.cumsum(deg) - deg, deg)
        e = ptr[dst[rep]] + offs
        src = np.concatenate([src, src[rep]])
        dst = np.concatenate([dst, t0[e]])
        dist = np.concatenate([dist, dist[rep] + w0[e]])
        key = src * n + dst
        order = np.lexsort((dist, key))
        key, dist, src, dst = key[order], dist[order], src[order], dst[order]
        first = np.r_[True, key[1:] != key[:-1]]  # smallest distance per pair
        src, dst, dist = src[first], dst[first], dist[first]
        keep = src != dst
        src, dst, dist = src[keep], dst[keep], dist[keep]
    edge_index = torch.from_numpy(np.stack([src, dst]))
    return edge_index, torch.from_numpy(dist).float()


def _read_csv_geometry(path: Path, coords: str | None) -> Geometry:
    import csv

    if not coords:
        raise ValueError(f"An edge-list CSV ({path.name}) needs a coordinates CSV too: set "
                         f"geometry.coords=/path/to/nodes.csv with columns node,x,y[,z][,area].")
    cpath = Path(coords).expanduser()
    if not cpath.is_file():
        raise FileNotFoundError(f"Coordinates file not found: {cpath}.")
    import networkx as nx

    G = nx.DiGraph(name=path.stem)
    with cpath.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "node" not in rows[0]:
        raise ValueError(f"{cpath} must have a header with 'node' and coordinate columns "
                         f"(x, y[, z]) and optionally 'area'.")
    axes = [c for c in ("x", "y", "z") if c in rows[0]]
    if not axes:
        raise ValueError(f"{cpath} has no coordinate columns: expected x, y[, z].")
    seen: dict[str, int] = {}
    for line, r in enumerate(rows, start=2):  # line 1 is the header
        if r["node"] in seen:
            raise ValueError(f"{cpath}, line {line}: node {r['node']!r} is listed again (first "
                             f"on line {seen[r['node']]}). Node ids must be unique.")
        seen[r["node"]] = line
        G.add_node(r["node"], pos=[_number(r.get(c), cpath, line, c) for c in axes],
                   area=r.get("area") or "")
        if r.get("input_map"):
            G.nodes[r["node"]]["input_map"] = _number(r["input_map"], cpath, line, "input_map")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"source", "target"} <= set(reader.fieldnames):
            raise ValueError(f"{path} must have a header with 'source' and 'target' (and "
                             f"optionally 'length').")
        has_length = "length" in reader.fieldnames
        for line, r in enumerate(reader, start=2):
            for end in ("source", "target"):
                if r[end] not in G:
                    raise ValueError(f"{path}, line {line}: edge {r['source']} -> "
                                     f"{r['target']} names node {r[end]!r}, which "
                                     f"{cpath.name} lacks.")
            attrs = {"length": _number(r["length"], path, line, "length")} if has_length else {}
            G.add_edge(r["source"], r["target"], **attrs)
    return from_networkx(G, length="length" if has_length else None, name=path.stem)


def _number(text: str | None, path: Path, line: int, column: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{path}, line {line}, column '{column}': expected a number, got "
                         f"{text!r}.") from None


def _duplicate_graphml_node(path: Path) -> str | None:
    """The first node id a GraphML file declares twice (networkx would merge them)."""
    import xml.etree.ElementTree as ET

    seen = set()
    for _, el in ET.iterparse(path, events=("end",)):
        if el.tag.rsplit("}", 1)[-1] == "node":
            nid = el.get("id")
            if nid in seen:
                return nid
            seen.add(nid)
        el.clear()
    return None


def read_geometry(path: str | Path, coords: str | None = None) -> Geometry:
    """Read a geometry from a file: GraphML / GML (node ``pos`` or ``x``/``y``/``z``, optional
    ``area``; edge ``length``), or an edge-list CSV (``source,target[,length]``) with a
    coordinates CSV (``node,x,y[,z][,area][,input_map]``) given as ``coords``. CSV edges are directed;
    GraphML / GML follow the file's own directedness.
    """
    import networkx as nx

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Geometry file not found: {path}. Set geometry.path to a "
                                f"{', '.join(GRAPH_FORMATS)} file.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv_geometry(path, coords)
    if suffix not in (".graphml", ".gml"):
        raise ValueError(f"Unsupported geometry file '{path.name}'. Choices: "
                         f"{', '.join(GRAPH_FORMATS)}.")
    try:
        if suffix == ".graphml":
            duplicate = _duplicate_graphml_node(path)
            if duplicate is not None:
                raise ValueError(f"node id {duplicate!r} is declared twice (networkx would "
                                 f"merge the two nodes silently). Node ids must be unique.")
            G = nx.read_graphml(path)
        else:
            G = nx.read_gml(path)  # refuses duplicate ids itself
    except Exception as e:  # xml / networkx parse errors, with the file named
        raise ValueError(f"Cannot read {path}: {e}") from None
    has_length = any("length" in d for _, _, d in G.edges(data=True))
    return from_networkx(G, length="length" if has_length else None, name=path.stem)


def write_geometry(geometry: Geometry, path: str | Path) -> Path:
    """Write a geometry so :func:`read_geometry` (and ``geometry=graph``) reads it back:
    ``.graphml`` / ``.gml`` (nodes with ``x``, ``y``[, ``z``] (GraphML has no tuple type),
    ``area`` and ``input_map`` when set; edges with ``length``), or ``.csv``: the edge list
    ``source,target,length`` at ``path`` and ``node,x,y[,z],area[,input_map]`` at
    ``<name>_nodes.csv`` (pass that as ``geometry.coords``)."""
    import csv

    import networkx as nx

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in GRAPH_FORMATS:
        raise ValueError(f"Unsupported geometry file '{path.name}'. Choices: "
                         f"{', '.join(GRAPH_FORMATS)}.")
    if geometry.dim > 3:
        raise ValueError(f"write_geometry stores x, y, z: this geometry has {geometry.dim} "
                         f"dimensions. Keep it as a checkpoint or project it first.")
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = "xyz"[:geometry.dim]
    G = networkx_graph(geometry)
    labels = list(G.nodes)
    for v in labels:
        G.nodes[v].update(zip(axes, G.nodes[v].pop("pos")))
    if suffix == ".graphml":
        nx.write_graphml(nx.relabel_nodes(G, str), path)
    elif suffix == ".gml":
        nx.write_gml(nx.relabel_nodes(G, str), path)
    else:
        nodes = path.with_name(path.stem + "_nodes.csv")
        extra = ["input_map"] if geometry.input_map is not None else []
        with nodes.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["node", *axes, "area", *extra])
            for v in labels:
                d = G.nodes[v]
                w.writerow([v, *(d[a] for a in axes), d["area"], *(d[k] for k in extra)])
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["source", "target", "length"])
            for s, t, d in G.edges(data=True):
                w.writerow([s, t, d["length"]])
    return path


def pyg_data(geometry: Geometry):
    """The geometry as a ``torch_geometric.data.Data`` (:meth:`Geometry.to_pyg` calls it): ``pos``, ``edge_index`` (row 0 =
    source), ``edge_length`` ``[E]`` (also as ``edge_attr`` ``[E, 1]``), one boolean node
    mask ``area_<name>`` per area, ``input_map`` when set; ``num_nodes``."""
    from torch_geometric.data import Data

    data = Data(pos=geometry.pos.clone(), edge_index=geometry.edge_index.clone(),
                edge_length=geometry.edge_length.clone(),
                edge_attr=geometry.edge_length.view(-1, 1).clone(),
                num_nodes=geometry.num_columns)
    for name, idx in geometry.areas.items():
        mask = torch.zeros(geometry.num_columns, dtype=torch.bool)
        mask[idx] = True
        data[f"area_{name}"] = mask
    if geometry.input_map is not None:
        data.input_map = geometry.input_map.clone()
    return data


def from_pyg(data, name: str = "pyg") -> Geometry:
    """A ``torch_geometric.data.Data`` with ``pos`` and ``edge_index`` becomes a geometry.

    Lengths: ``edge_length`` ``[E]``, else a one-column ``edge_attr``, else Euclidean from
    ``pos``. Areas: boolean (or 0/1) node masks named ``area_<name>``."""
    pos = getattr(data, "pos", None)
    if pos is None or getattr(data, "edge_index", None) is None:
        raise ValueError("from_pyg needs a Data with 'pos' (node coordinates [N, D]) and "
                         "'edge_index' [2, E]; set data.pos first (e.g. from a layout).")
    ei = data.edge_index
    length = getattr(data, "edge_length", None)
    attr = getattr(data, "edge_attr", None)
    if length is None and attr is not None and attr.dim() == 2 and attr.size(1) == 1:
        length = attr.view(-1)
    if length is None:
        length = pairwise_length(pos.float(), ei[0], ei[1])
    areas = {}
    for key in data.keys():
        if key.startswith("area_"):
            mask = torch.as_tensor(data[key])
            if mask.shape != (pos.size(0),):
                raise ValueError(f"data.{key} must be a node mask of shape [{pos.size(0)}], "
                                 f"got {list(mask.shape)}.")
            areas[key[len("area_"):]] = mask.bool().nonzero().flatten()
    return Geometry(pos, ei, length, areas, name=name,
                    input_map=getattr(data, "input_map", None))

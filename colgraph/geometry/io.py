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

from .base import Geometry, _indices, pairwise_length

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


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _real(value: Any, where: str) -> float:
    """``value`` as a finite float that float32 holds, or an error starting with ``where``
    (a file and line, or a node / edge)."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{where}: expected a number, got the boolean {value!r}.")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number, got {value!r}.") from None
    if not np.isfinite(f):
        raise ValueError(f"{where}: expected a finite number, got {value!r}. Fix or drop "
                         f"it.")
    if abs(f) > FLOAT32_MAX:
        raise ValueError(f"{where}: {value!r} is beyond float32's range (+-3.4e38), which "
                         f"colgraph computes in. Rescale the values.")
    return f


def _length(value: Any, where: str, self_loop: bool) -> float:
    """An edge length: a finite number >= 0, and 0 only for a self-loop."""
    f = _real(value, where)
    if f < 0:
        raise ValueError(f"{where}: expected a length >= 0, got {value!r}.")
    if f == 0 and not self_loop:
        raise ValueError(f"{where}: length 0 on an edge between two different nodes; only a "
                         f"self-loop may have length 0. Give the edge a positive length.")
    return f


def _position(value: Any, node: Hashable, attr: str = "pos") -> list[float]:
    if value is None:
        raise ValueError(f"Node {node!r} has position None. Give every node its coordinates: "
                         f"G.nodes[v]['{attr}'] = (x, y[, z]).")
    where = f"Node {node!r} has {attr} {value!r}"
    if isinstance(value, str):  # GraphML stores vectors as text: "0.5 1.0" or "0.5,1.0"
        value = value.replace(",", " ").split()
    try:
        a = np.asarray(value)
        flags = value if isinstance(value, (list, tuple)) else []
        if a.dtype.kind in "bc" or any(isinstance(v, (bool, np.bool_)) for v in flags):
            raise TypeError(a.dtype)  # True / 1+2j would become 1.0 silently
        a = np.atleast_1d(a.astype(float))
    except (TypeError, ValueError):
        raise ValueError(f"{where}, which is not a list of numbers. Give (x, y[, z]).") from None
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{where}: expected a flat list of coordinates (x, y[, z]).")
    return [_real(float(v), where) for v in a]


def _patch_index(value: Any, where: str) -> int:
    try:
        f = float("nan") if isinstance(value, (bool, np.bool_)) else float(value)
    except (TypeError, ValueError):
        f = float("nan")
    if not (f == f and abs(f) < 2 ** 53 and f == int(f) and f >= -1):  # nan, 1e30, 1.5
        raise ValueError(f"{where}: expected the index (>= 0) of the patch it receives, or -1 "
                         f"for none.")
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
            coords.append(_position(data[pos], v, pos))
        elif "x" in data and "y" in data:
            coords.append([_real(data[c], f"Node {v!r}, coordinate '{c}'")
                           for c in ("x", "y", "z") if c in data])
        else:
            have = [c for c in ("x", "y", "z") if c in data]
            raise ValueError(f"Node {v!r} has no '{pos}' attribute"
                             + (f" (only {', '.join(have)})" if have else "")
                             + f". Give every node its coordinates: G.nodes[v]['{pos}'] = "
                               f"(x, y[, z]), or x and y (and z) attributes.")
    dims = {len(c) for c in coords}
    if len(dims) != 1:
        first = {d: next(v for v, c in zip(labels, coords) if len(c) == d) for d in dims}
        raise ValueError("Node positions have different dimensions "
                         + ", ".join(f"{d} (e.g. node {first[d]!r})" for d in sorted(dims))
                         + "; give every node the same number of coordinates.")
    pos_t = torch.tensor(coords, dtype=torch.float32)
    src, dst, lengths = [], [], []
    arrow = "->" if G.is_directed() else "-"
    for u, v, data in G.edges(data=True):
        pairs = [(u, v)] if G.is_directed() or u == v else [(u, v), (v, u)]
        if length is not None and length not in data:
            raise ValueError(f"Edge {u!r} {arrow} {v!r} has no '{length}' attribute. Give "
                             f"every edge a '{length}', or none of them (lengths from "
                             f"positions: length=None).")
        if length is not None:
            ln = _length(data[length], f"Edge {u!r} {arrow} {v!r}, '{length}'", u == v)
        for a, b in pairs:
            src.append(index[a])
            dst.append(index[b])
            if length is not None:
                lengths.append(ln)
    edge_index = torch.tensor([src, dst], dtype=torch.long).view(2, -1)
    if length is None:
        edge_length = pairwise_length(pos_t, edge_index[0], edge_index[1])
        if not torch.isfinite(edge_length).all():  # coordinates near float32's limit
            s, t = edge_index[:, int((~torch.isfinite(edge_length)).nonzero()[0, 0])].tolist()
            raise ValueError(f"Edge {labels[s]!r} -> {labels[t]!r}: its length from the "
                             f"positions overflows float32 (coordinates up to "
                             f"{float(pos_t.abs().max()):.3g}). Rescale the coordinates.")
    else:
        edge_length = torch.tensor(lengths, dtype=torch.float32)
    areas: dict[str, list[int]] = {}
    for v in labels:
        for a in _area_names(G.nodes[v].get(area)):
            areas.setdefault(a, []).append(index[v])
    patches = None
    if any(input_map in G.nodes[v] for v in labels):
        patches = torch.tensor([_patch_index(G.nodes[v].get(input_map, -1),
                                             f"Node {v!r} has input_map "
                                             f"{G.nodes[v].get(input_map)!r}")
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

    The geometry keeps the triangles (``geometry.faces``) for surface operators such as the
    Laplace-Beltrami eigenmodes of :func:`colgraph.connectome.geometric_modes`.

    Cost is ``O(V * ring size)`` (sparse matrix products, no ``V x V`` matrix): 10^5
    vertices with ``k_ring=2`` take a few seconds.
    """
    import scipy.sparse as sp

    verts = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
    f = np.asarray(faces)
    if f.dtype.kind not in "iu":  # 2.7 is refused, not truncated to vertex 2
        f = _indices(f.astype(f.dtype.newbyteorder("=")), "faces").numpy()
    f = f.astype(np.int64)
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
    return Geometry(verts, edge_index, length, areas or {}, name=f"{name}({n} vertices)",
                    faces=torch.from_numpy(f))


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


NODE_COLUMNS = ("node", "x", "y", "z", "area", "input_map")
EDGE_COLUMNS = ("source", "target", "length")


def _csv_rows(path: Path, allowed: tuple[str, ...], required: tuple[str, ...],
              layout: str, what: str) -> tuple[list[str], list[tuple[int, dict]]]:
    """The header and ``(line, row)`` pairs of a comma-separated UTF-8 file (a byte-order
    mark is fine), refusing what ``csv`` would accept silently: another delimiter, unknown
    or repeated columns, rows with too few or too many fields, a header without rows."""
    import csv
    import io

    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}: "
                         f"{e.object[e.start:e.start + 1]!r}). Save it as a UTF-8 CSV.") from None
    if not text.strip():
        raise ValueError(f"{path} is empty: expected the header {layout} and one {what} per "
                         f"line.")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = list(reader.fieldnames or [])
    other = next((d for d in ";\t|" if len(fields) == 1 and d in fields[0]), None)
    if other is not None:
        raise ValueError(f"{path} is not comma-separated: its header {fields[0]!r} uses "
                         f"{other!r}. Save it with commas: {layout}.")
    for i, f in enumerate(fields):
        if f in fields[:i]:
            raise ValueError(f"{path}: the header names column {f!r} twice. Name each column "
                             f"once: {layout}.")
        if f not in allowed:
            near = f.strip().lower()
            hint = (f" (did you mean {near!r}? Column names are lower-case, without spaces)"
                    if near in allowed else " (a trailing comma?)" if not f else "")
            raise ValueError(f"{path}: unknown column {f!r} in the header{hint}. Expected "
                             f"{layout}; remove or rename the column, so nothing in the file "
                             f"is ignored.")
    missing = [c for c in required if c not in fields]
    if missing:
        raise ValueError(f"{path}: the header lacks {missing} (it has {fields}). Expected "
                         f"{layout}.")
    rows = []
    for r in reader:
        if None in r or None in r.values():
            n = len(fields) + len(r.get(None, [])) - sum(v is None for v in r.values())
            raise ValueError(f"{path}, line {reader.line_num}: {n} field(s), but the header "
                             f"has {len(fields)} ({','.join(fields)}). Give every row one "
                             f"value per column (quote values that contain commas).")
        rows.append((reader.line_num, r))
    if not rows:
        raise ValueError(f"{path} has a header but no rows: list one {what} per line "
                         f"({layout}).")
    return fields, rows


def _read_csv_geometry(path: Path, coords: str | None) -> Geometry:
    if not coords:
        raise ValueError(f"An edge-list CSV ({path.name}) needs a coordinates CSV too: set "
                         f"geometry.coords=/path/to/nodes.csv with columns node,x,y[,z][,area].")
    cpath = Path(coords).expanduser()
    if not cpath.is_file():
        raise FileNotFoundError(f"Coordinates file not found: {cpath}.")
    import networkx as nx

    G = nx.DiGraph(name=path.stem)
    fields, rows = _csv_rows(cpath, NODE_COLUMNS, ("node",),
                             "node,x,y[,z][,area][,input_map]", "node")
    axes = [c for c in ("x", "y", "z") if c in fields]
    if not axes:
        raise ValueError(f"{cpath} has no coordinate columns: expected x, y[, z].")
    seen: dict[str, int] = {}
    for line, r in rows:
        node = r["node"]
        if not node.strip():
            raise ValueError(f"{cpath}, line {line}: the node id is empty. Give every node an "
                             f"id.")
        if node in seen:
            raise ValueError(f"{cpath}, line {line}: node {node!r} is listed again (first on "
                             f"line {seen[node]}). Node ids must be unique.")
        seen[node] = line
        G.add_node(node, pos=[_real(r[c], f"{cpath}, line {line}, column '{c}'") for c in axes],
                   area=r.get("area") or "")
        if r.get("input_map"):
            G.nodes[node]["input_map"] = _patch_index(
                r["input_map"], f"{cpath}, line {line}, column 'input_map' ({r['input_map']!r})")
    fields, rows = _csv_rows(path, EDGE_COLUMNS, ("source", "target"),
                             "source,target[,length]", "edge")
    has_length = "length" in fields
    first: dict[tuple[str, str], int] = {}
    for line, r in rows:
        s, t = r["source"], r["target"]
        for end in (s, t):
            if end not in G:
                close = next((v for v in G if v.strip() == end.strip()), None)
                hint = f" (it has {close!r}: mind the spaces)" if close is not None else ""
                raise ValueError(f"{path}, line {line}: edge {s} -> {t} names node {end!r}, "
                                 f"which {cpath.name} lacks{hint}.")
        if (s, t) in first:
            raise ValueError(f"{path}, line {line}: edge {s} -> {t} is listed again (first on "
                             f"line {first[s, t]}). Edges must be unique: remove the repeat.")
        first[s, t] = line
        attrs = {}
        if has_length:
            attrs["length"] = _length(r["length"], f"{path}, line {line}, column 'length'",
                                      s == t)
        G.add_edge(s, t, **attrs)
    try:
        return from_networkx(G, length="length" if has_length else None, name=path.stem)
    except ValueError as e:  # the sheet as a whole (e.g. a node without inputs)
        raise ValueError(f"{path} with {cpath.name}: {e}") from None


_LAYOUT = {".graphml": "well-formed GraphML: one <graph> of <node id=...> elements (unique "
                       "ids, with x, y[, z] or pos data) and <edge source=... target=...> "
                       "elements",
           ".gml": "GML: one graph [ ... ] whose nodes have a unique 'id' and 'label' and "
                   "x, y[, z] (or pos), and edges with 'source' and 'target'"}


def _scan_graphml(path: Path) -> None:
    """Refuse, with the line, what networkx would merge or expand silently: a node id
    declared twice, an edge listed twice (networkx makes a multigraph), a second graph (it
    reads only the first), XML entity declarations (an entity can expand to gigabytes)."""
    import xml.parsers.expat

    parser = xml.parsers.expat.ParserCreate()
    nodes: dict[str, int] = {}
    edges: dict[tuple, int] = {}
    directed: list[bool] = []  # one per open <graph>
    graphs = 0

    def start(name: str, attrs: dict) -> None:
        nonlocal graphs
        tag, line = name.rsplit(":", 1)[-1], parser.CurrentLineNumber
        if tag == "graph":
            if not directed:
                graphs += 1
                if graphs > 1:
                    raise ValueError(f"{path}, line {line}: a second <graph>; networkx reads "
                                     f"only the first. Keep one graph per file.")
            directed.append(attrs.get("edgedefault") == "directed")  # networkx's default
        elif tag == "node":
            nid = attrs.get("id")
            if nid in nodes:
                raise ValueError(f"{path}, line {line}: node id {nid!r} is declared twice "
                                 f"(first on line {nodes[nid]}); networkx would merge the two "
                                 f"nodes silently. Node ids must be unique.")
            nodes[nid] = line
        elif tag == "edge":
            s, t = attrs.get("source"), attrs.get("target")
            one_way = not directed or directed[-1]
            key = (s, t) if one_way else tuple(sorted((str(s), str(t))))
            if key in edges:
                kind = "" if one_way else "; in an undirected graph one edge runs both ways"
                raise ValueError(f"{path}, line {line}: edge {s!r} {'->' if one_way else '-'} "
                                 f"{t!r} is listed again (first on line {edges[key]}{kind}). "
                                 f"Edges must be unique: remove the repeat.")
            edges[key] = line

    def end(name: str) -> None:
        if name.rsplit(":", 1)[-1] == "graph":
            directed.pop()

    def entity(name: str, *_) -> None:
        raise ValueError(f"{path}, line {parser.CurrentLineNumber}: declares the XML entity "
                         f"{name!r}. GraphML needs none, and entities can expand to "
                         f"gigabytes: remove the <!DOCTYPE ...> block.")

    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.EntityDeclHandler = entity
    try:
        with path.open("rb") as fh:
            parser.ParseFile(fh)
    except xml.parsers.expat.ExpatError as e:
        raise ValueError(f"Cannot read {path}: {e}. Expected {_LAYOUT['.graphml']}.") from None
    for (s, t), line in edges.items():  # networkx would add such a node, with no position
        for end in (s, t):
            if end not in nodes:
                raise ValueError(f"{path}, line {line}: an edge names node {end!r}, which no "
                                 f"<node> declares. Declare it (with its coordinates) or "
                                 f"remove the edge.")


def _parallel_edge(G) -> str | None:
    """The first edge a multigraph holds more than once, as text."""
    for u, v, k in G.edges(keys=True):
        if G.number_of_edges(u, v) > 1:
            return f"{u!r} {'->' if G.is_directed() else '-'} {v!r}"
    return None


def read_geometry(path: str | Path, coords: str | None = None) -> Geometry:
    """Read a geometry from a file: GraphML / GML (node ``pos`` or ``x``/``y``/``z``, optional
    ``area``; edge ``length``), or an edge-list CSV (``source,target[,length]``) with a
    coordinates CSV (``node,x,y[,z][,area][,input_map]``) given as ``coords``. CSV edges are
    directed; GraphML / GML follow the file's own directedness.

    Nothing is merged, dropped or guessed: a repeated node or edge, a value that is not a
    finite number (or beyond float32), a negative length, an unknown CSV column, a row with
    too few or too many fields, an empty file is refused with the file and its line (CSV,
    GraphML) or the node / edge (GML) named. CSVs are UTF-8 (a byte-order mark is fine),
    comma-separated.
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
    if coords:
        raise ValueError(f"A coordinates file ({coords}) goes with an edge-list CSV only; "
                         f"{path.name} holds its own positions. Unset geometry.coords.")
    if suffix == ".graphml":
        _scan_graphml(path)
    try:
        G = nx.read_graphml(path) if suffix == ".graphml" else nx.read_gml(path)
    except Exception as e:  # xml / networkx parse errors (gml: duplicate ids), file named
        raise ValueError(f"Cannot read {path}: {e}. Expected {_LAYOUT[suffix]}.") from None
    if G.is_multigraph():
        parallel = _parallel_edge(G)
        if parallel is not None:
            raise ValueError(f"{path}: edge {parallel} is listed more than once. Edges must be "
                             f"unique: remove the repeats.")
        G = nx.DiGraph(G) if G.is_directed() else nx.Graph(G)
    has_length = any("length" in d for _, _, d in G.edges(data=True))
    try:
        return from_networkx(G, length="length" if has_length else None, name=path.stem)
    except ValueError as e:  # a node, an edge or the sheet as a whole, with the file named
        raise ValueError(f"{path}: {e}") from None


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

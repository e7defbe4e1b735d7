"""An interactive connectome explorer: one self-contained HTML page (plotly, WebGL traces).

Symbols: ``N`` columns, ``E`` drawn edges (each column's ``top_k`` strongest inputs), ``F``
frames (snapshots over training; 1 for one graph), ``B`` attention bins of the edges.

The page draws the columns where :func:`colgraph.connectome.figures.layout` draws them (2-D
sheets flat, a stack's areas side by side, spheres and surfaces in 3-D with the surface as a
mesh coloured like nilearn's ``view_surf``), coloured by a node metric with a colour bar;
each column's strongest inputs as lines coloured and sized by attention (binned into ``B``
traces: a WebGL line trace has one colour); hover text with the column's id, area and
metrics; an area filter and a colour menu (the page's metric or a hover metric); a click on
a column shows its drawn inputs and outputs over a veil (a double click shows everything
again); with snapshots, a slider over training, the edges grown and pruned since the
previous snapshot drawn on top.
plotly.js and the page's own script are inlined: the file needs no server and no network.

    >>> from colgraph.connectome import view   # doctest: +SKIP
    >>> view(G, color="receptive_field").save("connectome.html")   # doctest: +SKIP
    >>> view("runs/2026-11-24/07-21-07")   # a run's snapshots, a slider  # doctest: +SKIP
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import CHECKPOINT_NAME
from .arrays import EdgeArrays, arrays
from .figures import _layout
from .flow import plain_areas

__all__ = ["view", "ConnectomeView", "METRICS"]

# node metrics computed from the edges (numeric node attributes of the graph are offered too)
METRICS = ("area", "degree", "in_degree", "out_degree", "strength", "in_strength",
           "out_strength", "receptive_field", "community")
HOVER = ("in_degree", "out_degree", "in_strength", "out_strength", "receptive_field")
NOT_METRICS = {"pos", "x", "y", "z", "area", "label", "column"}
NO_POSITIONS = ("lay it out first, e.g. nx.set_node_attributes(G, {v: tuple(p) for v, p in "
                "nx.spring_layout(G, seed=0).items()}, 'pos'); colgraph's own exports carry "
                "the sheet's positions (to_networkx writes 'pos', read_connectome rebuilds it "
                "from the x, y, z attributes)")


class ConnectomeView:
    """The explorer page of :func:`view`: ``save(path)`` writes the HTML file; in Jupyter it
    displays inline. ``figure`` is the plotly figure; ``columns``, ``frames`` (labels) and
    ``metric`` say what it shows."""

    def __init__(self, figure, script: str, columns: int, frames: list[str], metric: str):
        self.figure, self.script = figure, script
        self.columns, self.frames, self.metric = columns, frames, metric

    def to_html(self, full_html: bool = True) -> str:
        """The page as a string: plotly.js, the figure and the page's script inlined."""
        html = self.figure.to_html(include_plotlyjs=True, full_html=full_html,
                                   post_script=self.script, div_id="colgraph-view",
                                   config={"displaylogo": False, "scrollZoom": True,
                                           "doubleClick": False},
                                   default_width="100%", default_height="100%" if full_html
                                   else "720px")
        # the page exactly fills the window: no margin, no scroll bar (a scroll bar coming
        # and going with a hover label resizes the plot: a full redraw, seconds at 10^5)
        return html.replace("<head>", "<head><style>html, body {margin: 0; overflow: hidden;}"
                                      "</style>", 1)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page to ``path`` (one self-contained HTML file); return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_html(), encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        return self.to_html(full_html=False)

    def __repr__(self) -> str:
        return (f"ConnectomeView(columns={self.columns}, frames={len(self.frames)}, "
                f"color={self.metric!r})")


def view(source, color: str = "area", top_k: int = 3, snapshots=None, faces=None,
         title: str | None = None, seed: int = 0) -> ConnectomeView:
    """An interactive page of a connectome (see the module docstring for what it shows).

    Args:
        source: a connectome graph (:func:`~colgraph.connectome.to_networkx`,
            :func:`~colgraph.connectome.read_connectome`), a connectome file, or a run
            directory: its snapshots ``RUN_DIR/connectome/epochNNNN.graphml``
            (``train.connectome_every=N``) on a slider, followed by the learned connectome
            ``RUN_DIR/analysis/connectome.graphml`` when ``colgraph-analyze`` wrote it;
            with neither, the checkpoint's connectome (:func:`to_networkx` of the run: the
            learned bias's prior, no data needed).
        color: the node metric the columns are coloured by: ``area``, ``degree``
            (in + out), ``in_degree``, ``out_degree``, ``strength``, ``in_strength``,
            ``out_strength``, ``receptive_field``, ``community`` (Louvain) or any numeric
            node attribute every column has (``selectivity`` and ``preferred_class`` after
            :func:`~colgraph.connectome.add_selectivity`).
        top_k: each column's strongest inputs drawn (>= 1; thin lines, the page stays
            usable at 10^5 columns with a few per column).
        snapshots: graphs over training shown on a slider before ``source`` (a graph):
            a run directory, a folder of ``epoch*.graphml`` files, or ``(label, graph)``
            pairs. Every graph must hold the same columns.
        faces: ``[F, 3]`` node indices of the triangles of a 3-D sheet's surface (e.g.
            ``geometry.faces`` of a cortical surface), drawn as a mesh coloured by the
            metric; a sphere's surface is its convex hull when not given.
        title: the page's title (default: the graph's name).
        seed: the Louvain seed for ``color="community"``.
    """
    import networkx as nx

    from importlib.util import find_spec

    if find_spec("plotly") is None:
        raise ImportError("colgraph.connectome.view draws with plotly: pip install "
                          "'colgraph[view]' (or pip install plotly).") from None
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1 (got {top_k!r}): the strongest "
                         f"inputs drawn per column, e.g. 3.")
    frames = _frames(source, snapshots)
    graphs = [g for _, g in frames]
    for g in graphs:
        if not isinstance(g, nx.Graph):
            raise TypeError(f"Expected networkx graphs (to_networkx / read_connectome), got "
                            f"{type(g).__name__}.")
    a0 = _checked(frames[0])
    _check_metric(color, graphs)
    sets = [a0] + [_checked(f, a0) for f in frames[1:]]
    names = [n for n in plain_areas(a0.areas) if len(a0.areas[n])]
    kind = _layout(a0.pos, a0.areas)[1]
    title = title or str(graphs[-1].graph.get("name") or "connectome")
    values = [_metric(color, g, a, seed) for g, a in zip(graphs, sets)]
    hovers = [np.stack([_metric(m, g, a, seed) for m in HOVER], 1) for g, a in zip(graphs, sets)]
    faces = _faces(faces, a0, kind, graphs[-1])
    from ._view_page import figure, script

    fig, meta = figure(frames=[label for label, _ in frames], arrays=sets, names=names,
                       kind=kind, color=color, values=values, hover=hovers, hover_names=HOVER,
                       top_k=int(top_k), faces=faces, title=title,
                       categories=names if color == "area" else None)
    return ConnectomeView(fig, script(meta), a0.n, [label for label, _ in frames], color)


def _frames(source, snapshots) -> list[tuple[str, Any]]:
    """``(label, graph)`` pairs: the snapshots, then the graph (or a run's learned one)."""
    from .export import read_connectome

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            if snapshots is not None:
                raise ValueError("Pass snapshots= only with a graph: a run directory brings "
                                 "its own snapshots (RUN_DIR/connectome).")
            frames = _snapshot_files(path)
            learned = path / "analysis" / "connectome.graphml"
            if learned.is_file():
                frames.append(("learned", read_connectome(learned)))
            if not frames and (path / CHECKPOINT_NAME).is_file():  # the checkpoint's prior
                from .export import to_networkx

                frames = [("checkpoint", to_networkx(path))]
            if not frames:
                raise ValueError(f"{path} holds no connectome: no snapshots "
                                 f"({path / 'connectome'}/epochNNNN.graphml, written with "
                                 f"train.connectome_every=N), no "
                                 f"analysis/connectome.graphml (colgraph-analyze writes it) "
                                 f"and no {CHECKPOINT_NAME}. Or export one: "
                                 f"view(to_networkx(run, loader='test')).")
            return frames
        if not path.is_file():
            raise FileNotFoundError(f"No connectome file or run directory at {path}.")
        source = read_connectome(path)
    if snapshots is None:
        return [("connectome", source)]
    if isinstance(snapshots, (str, os.PathLike)):
        snaps = _snapshot_files(Path(snapshots))
        if not snaps:
            raise ValueError(f"No snapshots (epochNNNN.graphml) in {snapshots} or its "
                             f"connectome/ folder.")
    else:
        snaps = list(snapshots)
        bad = next((s for s in snaps if not (isinstance(s, tuple) and len(s) == 2
                                             and isinstance(s[0], str))), None)
        if bad is not None:
            raise TypeError(f"Expected snapshots as (label, graph) pairs with a str label, "
                            f"got {bad!r:.80}.")
    return [*snaps, ("learned", source)]


def _snapshot_files(path: Path) -> list[tuple[str, Any]]:
    from .export import read_connectome

    folder = path / "connectome" if (path / "connectome").is_dir() else path
    files = sorted(folder.glob("epoch*.graphml"))
    return [(f"epoch {int(f.stem[5:])}" if f.stem[5:].isdigit() else f.stem,
             read_connectome(f)) for f in files]


def _checked(frame: tuple[str, Any], first: EdgeArrays | None = None) -> EdgeArrays:
    """A frame's arrays, in ``first``'s node order; positions and columns checked."""
    label, G = frame
    if G.number_of_nodes() == 0:
        raise ValueError(f"The connectome {label!r} has no columns.")
    if not any("pos" in d for _, d in G.nodes(data=True)):
        raise ValueError(f"The connectome {label!r} has no node positions ('pos'), so its "
                         f"columns have nowhere to be drawn: {NO_POSITIONS}.")
    a = arrays(G)
    if first is None:
        return a
    if set(a.nodes) != set(first.nodes) or a.pos.shape[1] != first.pos.shape[1]:
        extra = [v for v in a.nodes if v not in set(first.nodes)][:3]
        raise ValueError(f"The snapshots are of different sheets: {label!r} has "
                         f"{a.n} columns in {a.pos.shape[1]}-D (first: {first.n} in "
                         f"{first.pos.shape[1]}-D" + (f"; e.g. {extra} are not in the first"
                                                        if extra else "") +
                         "). Put one run's snapshots in the folder (one sheet, same columns).")
    if a.nodes != first.nodes:  # same columns, another order: into the first's order
        index = {v: i for i, v in enumerate(first.nodes)}
        perm = np.array([index[v] for v in a.nodes])
        pos = np.empty_like(a.pos)
        pos[perm] = a.pos
        a.src, a.dst, a.pos, a.nodes = perm[a.src], perm[a.dst], pos, list(first.nodes)
    a.areas = first.areas  # one sheet: one set of areas (the filter's)
    return a


def _faces(faces, a: EdgeArrays, kind: str, G) -> np.ndarray | None:
    """The surface's triangles ``[F, 3]`` (column indices), checked; a sphere's convex hull
    when none are given; ``None`` for a sheet not drawn in 3-D."""
    if kind != "3d":
        if faces is not None:
            raise ValueError(f"faces= draws the surface of a 3-D sheet, but this sheet is "
                             f"drawn {'flat' if kind == 'flat' else 'area by area'} "
                             f"({a.pos.shape[1]}-D positions). Drop faces=.")
        return None
    if faces is None:
        if G.graph.get("metric") != "sphere":
            return None  # a 3-D sheet of unknown surface: columns and edges only
        from scipy.spatial import ConvexHull

        return ConvexHull(a.pos[:, :3]).simplices.astype(np.int32)
    f = np.asarray(faces.numpy() if hasattr(faces, "numpy") else faces)
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer) or (
            f.size and (f.min() < 0 or f.max() >= a.n)):
        raise ValueError(f"Expected faces of shape [F, 3] with column indices in [0, "
                         f"{a.n - 1}] (got shape {list(f.shape)}, dtype {f.dtype}): the "
                         f"triangles of the sheet's surface, e.g. geometry.faces.")
    return f.astype(np.int32)


def _attributes(graphs) -> list[str]:
    """Numeric node attributes every column of every graph has."""
    keys = None
    for G in graphs:
        for _, d in G.nodes(data=True):
            k = {n for n, x in d.items() if n not in NOT_METRICS and not isinstance(x, bool)
                 and isinstance(x, (int, float, np.integer, np.floating))}
            keys = k if keys is None else keys & k
    return sorted(keys or ())


def _check_metric(color: Any, graphs) -> None:
    available = list(METRICS) + [k for k in _attributes(graphs) if k not in METRICS]
    if color not in available:
        raise ValueError(f"Unknown colour metric {color!r}. Choices: {', '.join(available)} "
                         f"(numeric node attributes every column has count too; add more "
                         f"with add_node_metrics(G) or add_selectivity(G, ...)).")


def _metric(name: str, G, a: EdgeArrays, seed: int) -> np.ndarray:
    """Node metric ``name`` in ``a``'s node order (a node attribute when every column has
    it, else computed from the edges)."""
    if name != "area" and name in _attributes([G]):
        return np.array([float(G.nodes[v][name]) for v in a.nodes])
    w_in = np.bincount(a.dst, a.weight, minlength=a.n)
    w_out = np.bincount(a.src, a.weight, minlength=a.n)
    d_in = np.bincount(a.dst, minlength=a.n).astype(float)
    d_out = np.bincount(a.src, minlength=a.n).astype(float)
    if name == "area":
        code = np.full(a.n, np.nan)
        for k, n in enumerate(n for n in plain_areas(a.areas) if len(a.areas[n])):
            code[a.areas[n]] = k  # a column in two areas: the last listed (as layout draws)
        return code
    if name == "receptive_field":
        ok = np.isfinite(a.length)
        num = np.bincount(a.dst[ok], a.weight[ok] * a.length[ok], minlength=a.n)
        den = np.bincount(a.dst[ok], a.weight[ok], minlength=a.n)
        return np.divide(num, den, out=np.full(a.n, np.nan), where=den > 0)
    if name == "community":
        from .topology import modularity

        return np.asarray(modularity(a, n_null=0, seed=seed, workers=1)["communities"], dtype=float)
    return {"degree": d_in + d_out, "in_degree": d_in, "out_degree": d_out,
            "strength": w_in + w_out, "in_strength": w_in, "out_strength": w_out}[name]


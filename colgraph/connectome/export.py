"""Export a trained sheet's connectome: the learned, weighted, directed graph.

Edge attributes (every export):

* ``length``: edge length in geometry units.
* ``bias``: the learned per-edge logit bias, mean over heads (and over blocks when depth
  is untied).
* ``attention``: with data, the attention the edge carries, averaged over the samples,
  heads and steps (``steps="mean"``) or at one step (``steps=t``); per-step values are in
  ``attention_t0``, ``attention_t1``, ...
* ``weight``: what the analysis uses. ``attention`` when data was given; otherwise the
  *prior* connectivity ``softmax(bias)`` over each column's incoming edges (the attention
  a column would pay if its queries and keys were uninformative).

Node attributes: ``pos`` (tuple) and ``x``, ``y``, ``z`` (file formats keep scalars only),
``area`` (comma-separated names), ``in_degree`` / ``out_degree`` (after thresholding);
:func:`add_node_metrics` adds strengths, receptive-field size and community. Nodes are the
geometry's labels when it has them, else column ids. GEXF files carry ``viz:position`` so
Gephi opens them in the sheet's layout. :func:`adjacency` (scipy.sparse) and
:func:`to_tables` (pandas edge and node tables) hand the graph to other tools.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..geometry import Geometry, from_networkx, rank_within_target

__all__ = ["ConnectomeSnapshots", "ConnectomeData", "edge_data", "to_networkx", "write_connectome", "read_connectome",
           "to_geometry", "add_node_metrics", "adjacency", "to_tables", "WRITERS", "write_json"]


class ConnectomeData:
    """Per-edge tensors of a trained model: ``bias [E]``, ``attention [T, E]`` (or None)."""

    def __init__(self, geometry: Geometry, bias: Tensor, attention: Tensor | None) -> None:
        self.geometry, self.bias, self.attention = geometry, bias, attention


def _unwrap(model_or_path: Any, with_data: bool):
    """Accept a task, a Columnformer, a checkpoint file or a run directory."""
    from ..model import Columnformer

    if isinstance(model_or_path, (str, os.PathLike)):
        from ..restore import load_model

        model, geometry, _, data = load_model(model_or_path, with_data=with_data)
        return model, model.columnformer, geometry, data
    cf = getattr(model_or_path, "columnformer", model_or_path)
    if not isinstance(cf, Columnformer):
        raise TypeError(f"Expected a Columnformer, a model holding one, or a checkpoint path; "
                        f"got {type(model_or_path).__name__}.")
    # a column-sharded sheet's processes hold only their edges: the whole geometry is
    # assembled from all of them (_whole_sheet)
    return model_or_path, cf, None if cf.edges.shard.enabled else cf.geometry, None


@torch.no_grad()
def edge_data(model_or_path: Any, loader: Any = None, max_batches: int | None = None
              ) -> ConnectomeData:
    """Learned bias and (with data) mean attention per edge and step.

    Args:
        model_or_path: a model (a :class:`~colgraph.tasks.Task` or a ``Columnformer``) or a
            checkpoint / run directory.
        loader: an iterable of input batches (the task's samples, which its encoder turns
            into what the sheet receives; tokens for a bare Columnformer; ``(x, y)`` pairs
            are accepted), or ``"test"`` to use the checkpoint's own test set. ``None``: no
            attention, bias only.
        max_batches: stop after this many batches.

    On a column-sharded sheet every process of its group calls it (the forward passes are
    collective); the first gets the whole sheet's data, the others ``None``.
    """
    if max_batches is not None and (isinstance(max_batches, bool) or not isinstance(
            max_batches, int) or max_batches < 1):
        raise ValueError(f"max_batches must be an integer >= 1 or None (got {max_batches!r}).")
    if isinstance(loader, str) and loader != "test":
        raise ValueError(f"loader must be 'test' (the checkpoint's test set), None (bias only) "
                         f"or an iterable of batches (got {loader!r}).")
    model, cf, geometry, data = _unwrap(model_or_path, with_data=loader == "test")
    bias = torch.stack([s.attn.edge_bias.detach().float().mean(1) for s in cf.blocks]).mean(0)
    if loader is None:
        return _whole_sheet(cf, ConnectomeData(geometry, bias.cpu(), None))
    if isinstance(loader, str):
        if data is None:
            raise ValueError("loader='test' needs a checkpoint path (its config names the data).")
        from ..data import iterate_batches

        loader = iterate_batches(data.x_test, data.y_test, 256)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = None, 0
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        x = x.to(device)
        out = model(x) if model is cf else model.sheet(x)  # what the task feeds the sheet
        att = torch.stack(out.attention).mean(-1).double()  # (T, E): mean over heads
        total = att * len(x) if total is None else total + att * len(x)
        count += len(x)
    model.train(was_training)
    if count == 0:
        raise ValueError("The loader yielded no batches.")
    return _whole_sheet(cf, ConnectomeData(geometry, bias.cpu(),
                                           (total / count).float().cpu()))


def _whole_sheet(cf: Any, data: ConnectomeData) -> ConnectomeData | None:
    """On a column-sharded sheet (every process of its group calls this), the whole
    sheet's data on the group's first process (``None`` on the others): each process's
    edges, biases and attention gathered in rank order, which is the whole edge list's."""
    edges = cf.edges
    shard = edges.shard
    if not shard.enabled:
        return data
    index, length = shard.gather(edges.index, 1), shard.gather(edges.length)
    bias = shard.gather(data.bias)
    attention = None if data.attention is None else shard.gather(data.attention, 1)
    if shard.rank:
        return None
    return ConnectomeData(edges.as_geometry(index, length), bias, attention)


def _prior_weight(geometry: Geometry, bias: Tensor) -> Tensor:
    from torch_geometric.utils import softmax

    return softmax(bias, geometry.edge_index[1], num_nodes=geometry.num_columns)


def to_networkx(model_or_path: Any, loader: Any = None, steps: str | int = "mean",
                threshold: float | None = None, top_k: int | None = None,
                max_batches: int | None = None):
    """The connectome as a ``networkx.DiGraph`` (see the module docstring for attributes).

    Args:
        model_or_path: a trained model, or a checkpoint file / run directory.
        loader: data to measure attention on (see :func:`edge_data`); ``"test"`` uses the
            checkpoint's test set; ``None`` exports the bias-only prior connectivity.
        steps: ``"mean"`` (average attention over steps) or a step index.
        threshold: keep edges whose ``weight`` is at least this (a finite number; one that
            keeps no edge is refused).
        top_k: keep each column's ``top_k`` strongest incoming edges.

    Non-finite weights or biases (a diverged model, NaN input) are refused. A model on a
    column-sharded sheet: see :func:`edge_data` (``None`` on all but the first process).

    Example:
        >>> G = to_networkx("runs/2026-11-24/06-25-03", loader="test")  # doctest: +SKIP
        >>> G.edges["area0-3", "area1-0"]["attention"]                     # doctest: +SKIP
    """
    import networkx as nx

    import math

    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1 (got {top_k!r}); use None to keep every "
                         f"edge.")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(
            threshold, (int, float)) or not math.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite number (got {threshold!r}): edges whose "
                         f"weight is at least this are kept; use None to keep every edge.")
    if steps != "mean" and (isinstance(steps, bool) or not isinstance(steps, int)):
        raise ValueError(f"steps must be 'mean' or a step index (got {steps!r}).")
    data = model_or_path if isinstance(model_or_path, ConnectomeData) else edge_data(
        model_or_path, loader, max_batches)
    if data is None:  # a process of a column-sharded sheet other than its group's first
        return None
    geo = data.geometry
    if data.attention is not None:
        T = data.attention.size(0)
        if steps == "mean":
            weight = data.attention.mean(0)
        elif isinstance(steps, int) and -T <= steps < T:
            weight = data.attention[steps]
        else:
            raise ValueError(f"steps must be 'mean' or a step index in [0, {T - 1}] "
                             f"(got {steps!r}).")
    else:
        weight = _prior_weight(geo, data.bias)
    for name, values in (("weight", weight), ("bias", data.bias)):
        bad = ~torch.isfinite(values)
        if bad.any():
            first = int(bad.nonzero()[0, 0])
            raise ValueError(f"The connectome's edge {name}s hold {int(bad.sum())} non-finite "
                             f"value(s) of {values.numel()} (e.g. edge {first}): "
                             f"the model diverged (or its input holds NaN). Use a checkpoint "
                             f"from before the divergence, or finite data.")
    weight_name = "attention" if data.attention is not None else "prior softmax(bias)"
    keep = torch.ones(geo.num_edges, dtype=torch.bool)
    if threshold is not None:
        keep &= weight >= threshold
        if geo.num_edges and not keep.any():
            raise ValueError(f"threshold={threshold} keeps no edge: the strongest weighs "
                             f"{float(weight.max()):.4g} (weight = {weight_name}). Lower the "
                             f"threshold, or use top_k.")
    if top_k is not None:
        keep &= rank_within_target(geo.edge_index[1], weight, geo.num_columns) < top_k
    labels = geo.labels or list(range(geo.num_columns))
    G = nx.DiGraph(name=geo.name, weight=weight_name, metric=geo.metric)
    if geo.period is not None:  # a torus: scalars, so GraphML / GEXF keep them
        G.graph.update({f"period_{c}": float(p) for c, p in zip("xyz", geo.period.tolist())})
    areas, pos = geo.column_areas(), geo.pos.tolist()
    for i, v in enumerate(labels):
        xyz = dict(zip(("x", "y", "z"), pos[i]))
        G.add_node(v, pos=tuple(pos[i]), area=areas[i], column=i, **xyz)
    cols = {"length": geo.edge_length, "bias": data.bias, "weight": weight}
    if data.attention is not None:
        cols["attention"] = weight
        for t in range(data.attention.size(0)):
            cols[f"attention_t{t}"] = data.attention[t]
    idx = keep.nonzero().flatten()
    src, dst = geo.edge_index[:, idx].tolist()
    values = {k: v[idx].tolist() for k, v in cols.items()}
    for j, (s, t) in enumerate(zip(src, dst)):
        G.add_edge(labels[s], labels[t], **{k: v[j] for k, v in values.items()})
    for v in G:
        G.nodes[v]["in_degree"] = G.in_degree(v)
        G.nodes[v]["out_degree"] = G.out_degree(v)
    return G


# ---------------------------------------------------------------------- files
def _for_file(G, gexf: bool = False):
    """A copy without tuple attributes (GraphML / GEXF keep scalars only); for GEXF, node
    positions as ``viz:position`` so Gephi shows the sheet's layout (a stack's areas side
    by side, see :func:`colgraph.connectome.figures.layout`)."""
    H = G.copy()
    if gexf and H.number_of_nodes():
        from .analysis import arrays
        from .figures import layout

        xy, _ = layout(arrays(H))
        for (_, d), p in zip(H.nodes(data=True), xy):
            xyz = [float(c) for c in p] + [0.0] * (3 - len(p))  # the GEXF writer wants all 3
            d["viz"] = {"position": dict(zip("xyz", xyz))}
    for _, d in H.nodes(data=True):
        d.pop("pos", None)
    H.graph = {k: v for k, v in H.graph.items() if isinstance(v, (str, int, float))}
    return H


def add_node_metrics(G, community: bool = True, seed: int = 0):
    """``G`` with the per-column measures of :func:`colgraph.connectome.node_metrics`
    (``in_strength``, ``out_strength``, ``receptive_field``, ``community``, ...) as node
    attributes, so GraphML / GEXF / CSV files carry them to Gephi, Cytoscape or pandas.
    Returns ``G`` (changed in place)."""
    from .analysis import node_metrics

    metrics = node_metrics(G, community=community, seed=seed)
    for i, v in enumerate(G.nodes):
        for k, values in metrics.items():
            x = float(values[i])
            G.nodes[v][k] = int(x) if k.endswith(("degree", "community")) else x
    return G


def adjacency(G, weight: str = "weight"):
    """The connectome as a ``scipy.sparse`` CSR array ``A[source, target] = weight`` in the
    graph's node order (column order for colgraph's connectomes)."""
    import networkx as nx

    return nx.to_scipy_sparse_array(G, nodelist=list(G.nodes), weight=weight, format="csr")


def to_tables(G):
    """``(edges, nodes)`` as pandas DataFrames: one row per edge (``source``, ``target`` and
    every edge attribute) and one per node (index = node, ``x``, ``y``, ``z``, ``area`` and
    every scalar node attribute). Needs pandas."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_tables needs pandas: pip install pandas") from None
    import networkx as nx

    edges = nx.to_pandas_edgelist(G, source="source", target="target")
    rows = {v: {k: x for k, x in d.items() if k != "pos"} for v, d in G.nodes(data=True)}
    nodes = pd.DataFrame.from_dict(rows, orient="index")
    nodes.index.name = "node"
    return edges, nodes


def _write_csv(G, path: Path) -> None:
    nodes_path = path.with_name(path.stem + "_nodes.csv")
    first = ["x", "y", "z", "area", "column", "in_degree", "out_degree"]
    present = {k for _, d in G.nodes(data=True) for k, x in d.items()
               if isinstance(x, (str, int, float))}
    node_keys = [k for k in first if k in present] + sorted(present - set(first))
    with nodes_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["node"] + node_keys)
        for v, d in G.nodes(data=True):
            w.writerow([v] + [d.get(k, "") for k in node_keys])
    edge_keys = sorted({k for _, _, d in G.edges(data=True) for k in d})
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source", "target"] + edge_keys)
        for s, t, d in G.edges(data=True):
            w.writerow([s, t] + [d.get(k, "") for k in edge_keys])


WRITERS = {".graphml": "GraphML", ".gexf": "GEXF", ".csv": "edge list + node table CSV"}


def write_connectome(G, path: str | os.PathLike) -> Path:
    """Write a connectome: ``.graphml``, ``.gexf`` (Gephi, Cytoscape) or ``.csv`` (edge list
    ``source,target,<attributes>`` plus ``<name>_nodes.csv``)."""
    import networkx as nx

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITERS:
        raise ValueError(f"Unsupported connectome format '{path.suffix}'. Choices: "
                         f"{', '.join(WRITERS)}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".graphml":
        nx.write_graphml(_for_file(G), path)
    elif suffix == ".gexf":
        nx.write_gexf(_for_file(G, gexf=True), path)
    else:
        _write_csv(G, path)
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as strict JSON, which every parser reads: a metric the graph leaves
    undefined (NaN, an infinity) becomes ``null``; NumPy / torch scalars become numbers.

    Example:
        >>> import tempfile
        >>> path = write_json(Path(tempfile.mkdtemp()) / "m.json", {"Q": float("nan"), "k": 2})
        >>> path.read_text().split()
        ['{', '"Q":', 'null,', '"k":', '2', '}']
    """
    import json
    import math

    def plain(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, (str, bool, int)) or x is None:
            return x
        if hasattr(x, "tolist"):  # NumPy / torch scalars and arrays
            return plain(x.tolist())
        x = float(x)
        return x if math.isfinite(x) else None

    path = Path(path)
    path.write_text(json.dumps(plain(obj), indent=1, allow_nan=False))
    return path


def read_connectome(path: str | os.PathLike):
    """Read a connectome written by :func:`write_connectome` back into a ``DiGraph``."""
    import networkx as nx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Connectome file not found: {path}.")
    suffix = path.suffix.lower()
    if suffix not in WRITERS:
        raise ValueError(f"Unsupported connectome format '{path.suffix}'. Choices: "
                         f"{', '.join(WRITERS)}.")
    if suffix == ".csv":
        G = _read_csv(path)
    else:
        from xml.etree.ElementTree import ParseError

        if b"<!DOCTYPE" in path.read_bytes():
            raise ValueError(f"Refusing to read {path}: it declares a DOCTYPE (XML entities can "
                             f"expand without bound or read other files). colgraph writes "
                             f"none; remove the DOCTYPE if you trust the file.")
        try:
            G = nx.read_graphml(path) if suffix == ".graphml" else nx.read_gexf(path)
        except (ParseError, nx.NetworkXError) as e:
            raise ValueError(f"Cannot read {path}: it is not a valid {WRITERS[suffix]} file "
                             f"({e}). Re-export it, or check that it was copied whole.") from None
    for _, d in G.nodes(data=True):
        d.pop("label", None)  # added by the GEXF reader
        d.pop("viz", None)  # GEXF drawing positions (the sheet's own are x / y / z)
        if "x" in d:
            d["pos"] = tuple(float(d[c]) for c in ("x", "y", "z") if c in d)
    for _, _, d in G.edges(data=True):
        d.pop("id", None)
    # GraphML / GEXF / CSV store node ids as text: columns written as 0, 1, ... come back
    # as the integers they were (any other labels stay strings)
    nodes = list(G.nodes)
    if nodes and all(isinstance(v, str) and v.lstrip("-").isdigit() for v in nodes):
        G = nx.relabel_nodes(G, {v: int(v) for v in nodes}, copy=True)
    return G


def _read_csv(path: Path):
    """The edge list ``path`` and its node table, checked row by row (errors name the file
    and line)."""
    import networkx as nx

    nodes_path = path.with_name(path.stem + "_nodes.csv")
    if not nodes_path.is_file():
        raise FileNotFoundError(f"Node table not found: {nodes_path} (written next to {path.name}).")
    G = nx.DiGraph()

    def num(k, v):
        if k in ("area",):
            return v
        try:
            f = float(v)
            return int(f) if k in ("column", "in_degree", "out_degree", "community") else f
        except ValueError:
            return v

    def rows(file: Path, needed: tuple[str, ...], empty_ok: bool = False):
        with file.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = [k for k in needed if k not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{file}: expected a header with the column(s) "
                                 f"{', '.join(needed)} (got {reader.fieldnames}).")
            count = 0
            for row in reader:
                count += 1
                yield reader.line_num, row
            if count == 0 and not empty_ok:
                raise ValueError(f"{file} has a header but no rows: an empty connectome.")

    for line, row in rows(nodes_path, ("node",)):
        v = row.pop("node")
        if v in G:
            raise ValueError(f"{nodes_path}, line {line}: node {v!r} is listed again.")
        G.add_node(v, **{k: num(k, x) for k, x in row.items() if x not in ("", None)})
    for line, row in rows(path, ("source", "target"), empty_ok=True):  # no edges: analysis says
        s, t = row.pop("source"), row.pop("target")
        for v in (s, t):
            if v not in G:
                raise ValueError(f"{path}, line {line}: node {v!r} is not in the node table "
                                 f"{nodes_path.name}.")
        if G.has_edge(s, t):
            raise ValueError(f"{path}, line {line}: edge {s!r} -> {t!r} is listed again (one "
                             f"row per edge; merge the rows).")
        attrs = {}
        for k, x in row.items():
            if x in ("", None):
                continue
            try:
                attrs[k] = float(x)
            except ValueError:
                raise ValueError(f"{path}, line {line}: edge {s!r} -> {t!r} has {k} = {x!r}, "
                                 f"not a number.") from None
        G.add_edge(s, t, **attrs)
    return G


class ConnectomeSnapshots:
    """An end-of-epoch callback for :func:`colgraph.training.train`: every ``every`` epochs
    the connectome (attention on up to ``samples`` test samples) is written to
    ``RUN_DIR/connectome/epochNNNN.graphml`` (``train.connectome_every=N`` adds one)."""

    collective = True  # on a column-sharded sheet, every process of its group takes part

    def __init__(self, every: int, samples: int = 512) -> None:
        if every < 1 or samples < 1:
            raise ValueError(f"ConnectomeSnapshots needs every >= 1 and samples >= 1 (got "
                             f"{every}, {samples}).")
        self.every, self.samples = every, samples

    def __call__(self, model, data, epoch: int, run_dir) -> None:
        if epoch % self.every:
            return
        from ..data import iterate_batches

        x, y = data.x_test[:self.samples], data.y_test[:self.samples]
        device = next(model.parameters()).device
        batches = ((xb.to(device), yb) for xb, yb in iterate_batches(x, y, 256))
        path = Path(run_dir) / "connectome" / f"epoch{epoch:04d}.graphml"
        was_training = model.training
        try:
            graph = to_networkx(model, loader=batches)
            if graph is not None:  # None: another process of a sharded sheet wrote it
                write_connectome(graph, path)
        finally:
            model.train(was_training)


def to_geometry(G, name: str | None = None) -> Geometry:
    """A connectome back to a :class:`Geometry` (positions, edges, lengths, areas), so a
    learned wiring can seed a new sheet."""
    return from_networkx(G, length="length", name=name or G.graph.get("name", "connectome"))

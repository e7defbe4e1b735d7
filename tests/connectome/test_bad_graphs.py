"""Analysis of bad graphs: refused with a clear error, converted with a warning, or a metric
the graph does not define said to be undefined (never a silent NaN, zero or crash)."""
import math

import networkx as nx
import numpy as np
import pytest
import torch

from colgraph import Columnformer
from colgraph.connectome import (analyze, compare, modularity, node_metrics, reciprocity,
                                 rich_club, small_world, to_networkx)
from colgraph.connectome.arrays import EdgeArrays
from colgraph.geometry import knn, stack


def ring(n=30, k=4, directed=True):
    U = nx.watts_strogatz_graph(n, k, 0.0, seed=0)
    for i, v in enumerate(U):
        a = 2 * math.pi * i / n
        U.nodes[v]["pos"] = (math.cos(a), math.sin(a))
    nx.set_edge_attributes(U, 1.0, "weight")
    return U.to_directed() if directed else U


def test_undirected_graph_is_analysed_with_both_directions_and_says_so():
    with pytest.warns(UserWarning, match=r"undirected: each edge u - v is analysed as u -> v "
                                         r"and v -> u"):
        m = analyze(ring(directed=False), n_null=2)
    directed = analyze(ring(), n_null=2)
    assert m["reciprocity"] == 1.0 and m["edges"] == directed["edges"] == 120
    assert any("undirected" in n for n in m["notes"])
    assert "notes" not in directed or not any("undirected" in n for n in directed["notes"])


def test_compare_with_an_undirected_reference_counts_both_directions():
    with pytest.warns(UserWarning, match="undirected"):
        out = compare(ring(), ring(directed=False), n_null=2)
    m = out["metrics"]
    assert m["reciprocity"]["reference"] == 1.0  # not 0
    assert m["density"]["reference"] == m["density"]["learned"]  # not half
    assert any(n.startswith("'reference': the graph is undirected") for n in out["notes"])


@pytest.mark.parametrize("make, match", [
    (lambda: nx.DiGraph(), r"of 0 column\(s\) and 0 edge"),
    (lambda: nx.DiGraph([(0, 0)]), r"of 1 column\(s\) and 0 edge\(s\) between different "
                                   r"columns \(plus 1 self-loop"),
    (lambda: nx.empty_graph(5, create_using=nx.DiGraph), r"of 5 column\(s\) and 0 edge"),
    (lambda: nx.DiGraph([(i, i) for i in range(4)]), r"plus 4 self-loop"),
])
def test_graphs_without_an_edge_between_columns_are_refused(make, match):
    for fn in (lambda G: analyze(G, n_null=1), node_metrics, reciprocity, modularity,
               small_world, rich_club, lambda G: compare(G, ring())):
        with pytest.raises(ValueError, match=r"Cannot analyse a connectome " + ".*" + match):
            fn(make())


def test_zero_total_weight_is_refused():
    G = ring()
    nx.set_edge_attributes(G, 0.0, "weight")
    with pytest.raises(ValueError, match=r"120 edge\(s\) between different columns all have "
                                         r"weight 0"):
        analyze(G)


@pytest.mark.parametrize("value, error, match", [
    (-1.0, ValueError, r"Expected finite edge 'weight' values >= 0, but 1 are not \(e.g. "
                       r"0 -> 1: -1.0\)"),
    (float("nan"), ValueError, r"but 1 are not \(e.g. 0 -> 1: nan\).*diverged model"),
    (float("inf"), ValueError, r"0 -> 1: inf"),
    ("1.0", TypeError, r"Expected numeric edge 'weight' values, but edge 0 -> 1 has '1.0' "
                       r"\(str\)"),
    (True, TypeError, r"has True \(bool\)"),
    (None, ValueError, r"every edge or none to have a 'weight', but 1 of 120 edges have none "
                       r"\(e.g. 0 -> 1\)"),
])
def test_bad_weights_are_refused(value, error, match):
    G = ring()
    G.edges[0, 1]["weight"] = value
    if value is None:
        del G.edges[0, 1]["weight"]
    with pytest.raises(error, match=match):
        analyze(G, n_null=1)


@pytest.mark.parametrize("value, match", [(-1.0, r"'length' values >= 0"),
                                          (float("nan"), r"'length' values >= 0"),
                                          ("x", r"numeric edge 'length'")])
def test_bad_lengths_are_refused(value, match):
    G = ring()
    nx.set_edge_attributes(G, 1.0, "length")
    G.edges[0, 1]["length"] = value
    with pytest.raises((ValueError, TypeError), match=match):
        analyze(G, n_null=1)


@pytest.mark.parametrize("pos, match", [
    ("abc", r"node 3 has 'abc'"), ((1.0, 2.0, 3.0), r"all of one length, but node 3 has"),
    ((float("nan"), 0.0), r"finite node positions, but node 3"), (None, r"1 of 30 have none"),
])
def test_bad_positions_are_refused(pos, match):
    G = ring()
    G.nodes[3]["pos"] = pos
    if pos is None:
        del G.nodes[3]["pos"]
    with pytest.raises(ValueError, match=match):
        analyze(G, n_null=1)


def test_graph_without_positions_is_analysed():
    G = nx.DiGraph(nx.gnp_random_graph(30, 0.2, seed=0, directed=True))
    m = analyze(G, n_null=2)
    assert m["edges"] == G.number_of_edges() and math.isnan(m["edr"]["lambda"])
    assert any(n.startswith("edr: n/a") for n in m["notes"])


def test_parallel_edges_are_refused_and_a_plain_multigraph_is_fine():
    M = nx.MultiDiGraph(ring())
    assert analyze(M, n_null=1)["edges"] == 120  # no parallel edges: as the DiGraph
    M.add_edge(0, 1, weight=2.0)
    with pytest.raises(ValueError, match=r"MultiDiGraph has 1 parallel edge\(s\) \(e.g. 0 -> 1 "
                                         r"2 times\)\. Merge them"):
        analyze(M)


def test_what_is_not_a_graph_is_refused():
    with pytest.raises(TypeError, match=r"Expected a networkx graph .* got int"):
        analyze(5)


def test_hand_built_arrays_are_checked():
    a = EdgeArrays([0, 1], np.array([0]), np.array([5]), np.ones(1), np.full(1, np.nan),
                   np.zeros((2, 1)), {})
    with pytest.raises(ValueError, match=r"src / dst in \[0, 1\] for 2 nodes"):
        reciprocity(a)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_null": -1}, r"n_null must be an integer >= 0 \(got -1\)"),
    ({"n_null": 2.5}, r"n_null must be an integer"),
    ({"edge_fraction": float("nan")}, r"edge_fraction must be in \(0, 1\] \(got nan\)"),
    ({"edge_fraction": 0}, r"edge_fraction must be in \(0, 1\]"),
    ({"n_sources": 0}, r"n_sources must be an integer >= 1"),
    ({"seed": -1}, r"seed must be an integer >= 0"),
])
def test_bad_settings_are_refused_before_any_work(kwargs, match, monkeypatch):
    from colgraph.connectome import analysis

    monkeypatch.setattr(analysis, "arrays", None)  # the graph is never read
    monkeypatch.setattr(analysis, "_a", None)
    with pytest.raises(ValueError, match=match):
        analyze(ring(), **kwargs)
    if "n_sources" not in kwargs:
        import sys

        monkeypatch.setattr(sys.modules["colgraph.connectome.compare"], "_arrays", None)
        with pytest.raises(ValueError, match=match):
            compare(ring(), ring(), **kwargs)


def test_undefined_metrics_say_why():
    two = nx.DiGraph([(0, 1), (1, 0)])
    sw = small_world(two)
    assert math.isnan(sw["sigma"]) and math.isnan(sw["omega"])
    assert "sigma n/a: the random reference graph has no triangles" in sw["note"]
    assert "omega n/a: mean degree 1 <= 2" in sw["note"]
    m = analyze(two, n_null=1)
    assert any("Q_z n/a: the z-score needs n_null >= 2" in n for n in m["notes"])
    assert any(n.startswith("small_world: sigma n/a") for n in m["notes"])
    assert any(n.startswith("rich_club: max_normalized n/a") for n in m["notes"])


def test_disconnected_graph_is_said():
    G = nx.disjoint_union(ring(), ring())
    sw = small_world(G, edge_fraction=1.0)
    assert "the thresholded graph has 2 components" in sw["note"]
    assert math.isfinite(sw["sigma"])


def test_a_well_formed_graph_gets_no_notes():
    G = nx.DiGraph(nx.watts_strogatz_graph(100, 10, 0.1, seed=0).to_directed())
    for i, v in enumerate(G):
        G.nodes[v]["pos"] = (math.cos(2 * math.pi * i / 100), math.sin(2 * math.pi * i / 100))
    rng = np.random.default_rng(0)
    for u, v, d in G.edges(data=True):
        d["weight"], d["length"] = float(rng.random()), float(abs(u - v))
    assert "notes" not in analyze(G, n_null=2, edge_fraction=1.0)


# -------------------------------------------------------------- to_networkx
@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Columnformer(stack([4, 3], wiring=knn(5)), channels=8, steps=2, heads=1)


@pytest.mark.parametrize("kwargs, match", [
    ({"threshold": float("nan")}, r"threshold must be a finite number \(got nan\)"),
    ({"threshold": float("inf")}, r"threshold must be a finite number"),
    ({"threshold": "0.1"}, r"threshold must be a finite number \(got '0.1'\)"),
    ({"threshold": 2.0}, r"threshold=2.0 keeps no edge: the strongest weighs .* \(weight = "
                         r"prior softmax\(bias\)\)"),
    ({"top_k": 0}, r"top_k must be an integer >= 1"),
    ({"top_k": 2.5}, r"top_k must be an integer >= 1 \(got 2.5\)"),
    ({"steps": True}, r"steps must be 'mean' or a step index \(got True\)"),
    ({"loader": "train"}, r"loader must be 'test' .* \(got 'train'\)"),
    ({"loader": [torch.randn(2, 16, 8)], "max_batches": 0}, r"max_batches must be an integer "
                                                            r">= 1"),
])
def test_to_networkx_refuses_bad_arguments(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        to_networkx(model, **kwargs)


def test_to_networkx_refuses_a_diverged_model(model):
    bias = model.blocks[0].attn.edge_bias
    saved = bias.detach().clone()
    try:
        with torch.no_grad():
            bias[3, 0] = float("nan")
        with pytest.raises(ValueError, match=r"edge weights hold \d+ non-finite value\(s\) .*"
                                             r"the model diverged"):
            to_networkx(model)
    finally:
        with torch.no_grad():
            bias.copy_(saved)
    assert to_networkx(model, threshold=0.0).number_of_edges() == model.geometry.num_edges


# ------------------------------------------------------------------ files
@pytest.mark.parametrize("name, text, match", [
    ("empty.graphml", "", r"empty.graphml: it is not a valid GraphML file \(no element found"),
    ("cut.graphml", "<graphml><graph", r"cut.graphml: it is not a valid GraphML file"),
    ("cut.gexf", "<gexf", r"cut.gexf: it is not a valid GEXF file"),
    ("ent.graphml", '<?xml version="1.0"?>\n<!DOCTYPE g [<!ENTITY a "1.0">]>\n<graphml/>',
     r"Refusing to read .*ent.graphml: it declares a DOCTYPE"),
    ("bad.csv", "source,target,weight\na,b,x\n", r"bad.csv, line 2: edge 'a' -> 'b' has "
                                                  r"weight = 'x', not a number"),
    ("dup.csv", "source,target,weight\na,b,1\na,b,2\n", r"dup.csv, line 3: edge 'a' -> 'b' is "
                                                        r"listed again"),
    ("unknown.csv", "source,target\na,zz\n", r"unknown.csv, line 2: node 'zz' is not in the "
                                             r"node table unknown_nodes.csv"),
    ("cols.csv", "src,dst\na,b\n", r"cols.csv: expected a header with the column\(s\) source, "
                                   r"target \(got \['src', 'dst'\]\)"),
    ("hdr.csv", "source,target\n", None),
])
def test_bad_connectome_files_are_refused_naming_the_file(tmp_path, name, text, match):
    from colgraph.connectome import read_connectome

    (tmp_path / name).write_text(text)
    nodes = tmp_path / (name[:-4] + "_nodes.csv")
    nodes.write_text("node,x\na,1\nb,2\n" if name != "hdr.csv" else "node,x\n")
    if match is None:
        match = r"hdr_nodes.csv has a header but no rows"
    with pytest.raises(ValueError, match=match):
        read_connectome(tmp_path / name)
    nodes.write_text("node,x\na,1\na,2\n")
    if name.endswith(".csv") and name != "cols.csv":
        with pytest.raises(ValueError, match=r"_nodes.csv, line 3: node 'a' is listed again"):
            read_connectome(tmp_path / name)


def test_bad_metric_options_are_refused():
    from colgraph.connectome import area_flow, edr_fit

    G = ring()
    for v in G:
        G.nodes[v]["area"] = "A" if v < 15 else "B"
    with pytest.raises(ValueError, match=r"area_flow: unknown area\(s\) 'C' in order. The "
                                         r"graph's areas: A, B"):
        area_flow(G, order=["A", "C"])
    with pytest.raises(ValueError, match=r"bins must be an integer >= 1 \(got 0\)"):
        edr_fit(G, bins=0)
    with pytest.raises(ValueError, match=r"resolution must be a finite number > 0 \(got nan\)"):
        modularity(G, resolution=float("nan"))

import networkx as nx
import pytest
import torch

from colgraph import Columnformer
from colgraph.connectome import (edge_data, read_connectome, to_geometry, to_networkx,
                                 write_connectome)
from colgraph.geometry import from_networkx, knn, stack


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Columnformer(stack([4, 3], wiring=knn(5)), channels=8, steps=2, heads=2)


def tokens(n=3):
    return [torch.randn(4, 16, 8) for _ in range(n)]


def test_export_with_attention(model):
    G = to_networkx(model, loader=tokens())
    geo = model.geometry
    assert G.number_of_nodes() == geo.num_columns and G.number_of_edges() == geo.num_edges
    # attention into each column sums to one: it is a softmax over incoming edges
    into = torch.zeros(geo.num_columns)
    for _, t, d in G.edges(data=True):
        into[t] += d["attention"]
        assert d["weight"] == d["attention"] and "attention_t1" in d and d["length"] > 0
    assert torch.allclose(into, torch.ones(geo.num_columns), atol=1e-4)
    assert G.nodes[0]["area"] == "area0,input" and G.nodes[0]["in_degree"] == 5
    # the export agrees with the model's own attention
    x = torch.randn(4, 16, 8)
    model.eval()
    att = torch.stack(model(x).attention).mean((0, 2))
    data = edge_data(model, [x])
    assert torch.allclose(data.attention.mean(0), att, atol=1e-6)


def test_prior_weight_without_data(model):
    G = to_networkx(model)
    assert G.graph["weight"] == "prior softmax(bias)"
    into = {}
    for _, t, d in G.edges(data=True):
        into[t] = into.get(t, 0) + d["weight"]
        assert "attention" not in d
    assert all(abs(v - 1) < 1e-5 for v in into.values())


def test_threshold_top_k_and_steps(model):
    G = to_networkx(model, loader=tokens(), top_k=2)
    assert all(d == 2 for _, d in G.in_degree())
    strongest = to_networkx(model, loader=tokens(), threshold=0.3)
    assert all(d["weight"] >= 0.3 for _, _, d in strongest.edges(data=True))
    G1 = to_networkx(model, loader=tokens(), steps=1)
    e = next(iter(G1.edges(data=True)))[2]
    assert e["weight"] == e["attention_t1"]
    with pytest.raises(ValueError, match="top_k must be an integer >= 1"):
        to_networkx(model, top_k=0)
    with pytest.raises(ValueError, match="steps must be 'mean' or a step index"):
        to_networkx(model, loader=tokens(), steps=5)


@pytest.mark.parametrize("suffix", [".graphml", ".gexf", ".csv"])
def test_writers_round_trip(model, tmp_path, suffix):
    G = to_networkx(model, loader=tokens())
    path = write_connectome(G, tmp_path / f"c{suffix}")
    back = read_connectome(path)
    assert back.number_of_nodes() == G.number_of_nodes()
    assert back.number_of_edges() == G.number_of_edges()
    assert sorted(back.nodes) == sorted(G.nodes)  # integer column ids come back as integers
    label = {v: v for v in G}
    for s, t, d in back.edges(data=True):
        ref = G.edges[label[s], label[t]]
        for key in ("weight", "length", "bias", "attention", "attention_t0"):
            assert abs(float(d[key]) - ref[key]) < 1e-6, (suffix, key)
    for v, d in back.nodes(data=True):
        ref = G.nodes[label[v]]
        assert d["area"] == ref["area"]
        assert all(abs(a - b) < 1e-6 for a, b in zip(d["pos"], ref["pos"]))


def test_round_trip_to_geometry_seeds_a_new_sheet(model, tmp_path):
    G = to_networkx(model, loader=tokens(), top_k=3)
    geo = to_geometry(read_connectome(write_connectome(G, tmp_path / "c.graphml")))
    assert geo.num_edges == G.number_of_edges() and (geo.in_degree() == 3).all()
    assert geo.area("input").numel() == 16
    Columnformer(geo, channels=8, steps=4)  # a learned wiring seeds a new model


def test_user_labels_survive_export():
    G = nx.grid_2d_graph(3, 3).to_directed()
    for v in G:
        G.nodes[v]["pos"] = v
        G.nodes[v]["area"] = "input,output"
    geo = from_networkx(G)
    cf = Columnformer(geo, channels=4, steps=1)
    C = to_networkx(cf)
    assert set(C.nodes) == set(G.nodes)


def test_bad_inputs(tmp_path):
    with pytest.raises(TypeError, match="Expected a Columnformer"):
        to_networkx(object())
    with pytest.raises(FileNotFoundError, match="Checkpoint not found"):
        to_networkx(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="Unsupported connectome format '.json'"):
        write_connectome(nx.DiGraph(), tmp_path / "c.json")
    with pytest.raises(FileNotFoundError, match="Connectome file not found"):
        read_connectome(tmp_path / "none.graphml")


@pytest.mark.parametrize("suffix", [".graphml", ".gexf", ".csv"])
def test_node_metrics_travel_in_files(model, tmp_path, suffix):
    from colgraph.connectome import add_node_metrics, node_metrics

    G = add_node_metrics(to_networkx(model))
    back = read_connectome(write_connectome(G, tmp_path / f"c{suffix}"))
    expected = node_metrics(to_networkx(model))
    nodes = list(back.nodes)
    for key in ("in_strength", "out_strength", "receptive_field", "community"):
        got = [back.nodes[v][key] for v in nodes]
        assert got == pytest.approx(expected[key].tolist(), rel=1e-5), key
    assert isinstance(back.nodes[nodes[0]]["community"], int)


def test_gexf_carries_the_sheet_layout(model, tmp_path):
    import xml.etree.ElementTree as ET

    from colgraph.connectome.analysis import arrays
    from colgraph.connectome.figures import layout

    G = to_networkx(model)
    path = write_connectome(G, tmp_path / "c.gexf")
    positions = [el for el in ET.parse(path).iter() if el.tag.endswith("position")]
    assert len(positions) == G.number_of_nodes()
    xy, kind = layout(arrays(G))
    assert kind == "areas"  # the stack drawn flat, areas side by side, in Gephi too
    first = positions[0].attrib
    assert float(first["x"]) == pytest.approx(xy[0, 0]) and float(first["y"]) == pytest.approx(xy[0, 1])
    assert "viz" not in read_connectome(path).nodes[list(G)[0]]  # read back without it


def test_adjacency_and_tables(model):
    pd = pytest.importorskip("pandas")
    from colgraph.connectome import adjacency, to_tables

    G = to_networkx(model)
    A = adjacency(G)
    nodes = list(G)
    u, v = next(iter(G.edges))
    assert A.shape == (len(nodes), len(nodes)) and A.nnz == G.number_of_edges()
    assert A[nodes.index(u), nodes.index(v)] == pytest.approx(G.edges[u, v]["weight"])
    edges, table = to_tables(G)
    assert isinstance(edges, pd.DataFrame) and len(edges) == G.number_of_edges()
    assert {"source", "target", "weight", "length"} <= set(edges.columns)
    assert list(table.index) == nodes and {"x", "y", "area"} <= set(table.columns)
    assert "pos" not in table.columns


def _strict(text: str):
    """json.loads that refuses NaN / Infinity, as strict JSON parsers (JavaScript, jq) do."""
    import json

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_write_json_is_strict_json_with_null_for_undefined_values(tmp_path):
    import numpy as np

    from colgraph.connectome import write_json

    metrics = {"Q_z": float("nan"), "sigma": float("inf"), "omega": -np.inf,
               "rho": np.float32(0.5), "n": np.int64(3), "ok": np.bool_(True),
               "t": torch.tensor(2.0),
               "nested": [{"x": float("nan")}, (1, torch.tensor(float("nan")))],
               "areas": ["a", None], "edges": 4}
    path = write_json(tmp_path / "metrics.json", metrics)
    assert _strict(path.read_text()) == {
        "Q_z": None, "sigma": None, "omega": None, "rho": 0.5, "n": 3, "ok": True, "t": 2.0,
        "nested": [{"x": None}, [1, None]], "areas": ["a", None], "edges": 4}

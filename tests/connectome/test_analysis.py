"""Analysis on graphs whose answers are known."""
import math

import networkx as nx
import numpy as np
import pytest

from colgraph.connectome import (area_flow, degree_stats, edr_fit, modularity, node_metrics,
                                 receptive_fields, reciprocity, rich_club, small_world, weight_distance, wiring)


def directed(G, weight=1.0):
    D = G.to_directed() if not G.is_directed() else G
    nx.set_edge_attributes(D, weight, "weight")
    return D


def test_ring_lattice():
    G = directed(nx.watts_strogatz_graph(400, 10, 0.0, seed=0))
    sw = small_world(G, edge_fraction=1.0)
    assert math.isclose(sw["clustering"], 3 * 8 / (4 * 9), rel_tol=1e-9)  # 2/3 for k = 10
    assert sw["omega"] < -0.8  # lattice-like
    assert reciprocity(G)["reciprocity"] == 1.0
    d = degree_stats(G)
    assert d["in_degree"]["min"] == d["in_degree"]["max"] == 10


def test_erdos_renyi_is_not_small_world():
    G = directed(nx.gnp_random_graph(600, 0.02, seed=1))
    sw = small_world(G, edge_fraction=1.0)
    assert 0.7 < sw["sigma"] < 1.5 and sw["omega"] > 0.8
    assert abs(sw["clustering"] - 0.02) < 0.01


def test_watts_strogatz_is_small_world():
    G = directed(nx.watts_strogatz_graph(600, 10, 0.1, seed=2))
    sw = small_world(G, edge_fraction=1.0)
    assert sw["sigma"] > 3 and -0.5 < sw["omega"] < 0.5


def test_two_planted_modules():
    G = directed(nx.planted_partition_graph(2, 60, 0.3, 0.005, seed=3))
    m = modularity(G, n_null=5)
    assert m["modules"] == 2 and m["Q"] > 0.4 and m["Q_z"] > 5
    comms = np.array(m["communities"])
    assert len(set(comms[:60])) == 1 and len(set(comms[60:])) == 1


def test_random_graph_has_no_rich_club_and_star_cores_do():
    G = directed(nx.gnp_random_graph(300, 0.05, seed=4))
    assert rich_club(G, edge_fraction=1.0, n_null=3)["max_normalized"] < 1.6
    H = nx.barabasi_albert_graph(300, 3, seed=5)
    hubs = sorted(H, key=H.degree, reverse=True)[:15]
    H.add_edges_from((a, b) for a in hubs for b in hubs if a < b)  # wire the hubs together
    assert rich_club(directed(H), edge_fraction=1.0, n_null=3)["max_normalized"] > 1.5


def two_area_sheet(ff=0.9, fb=0.1):
    """Area A (columns 0-3) feeds area B (4-7); B feeds back to A with weight fb."""
    G = nx.DiGraph()
    for i in range(8):
        G.add_node(i, pos=(float(i % 4), float(i // 4)), area=("A,input" if i < 4 else "B"))
    for i in range(4):
        G.add_edge(i, (i + 1) % 4, weight=1.0, length=1.0)  # inside A
        G.add_edge(i, i + 4, weight=ff, length=2.0)  # A -> B
        G.add_edge(i + 4, i, weight=fb, length=2.0)  # B -> A
        G.add_edge(i + 4, (i + 1) % 4 + 4, weight=1 - ff, length=1.0)  # inside B
    return G


def test_two_area_flow_index_is_known():
    f = area_flow(two_area_sheet(0.9, 0.1))
    assert f["areas"] == ["A", "B"]  # ordered by hops from the input area
    assert math.isclose(f["ff_index"], (3.6 - 0.4) / 4.0)  # (FF - FB) / (FF + FB) = 0.8
    flow = np.array(f["flow"])
    assert math.isclose(flow[0, 1], 0.9) and math.isclose(flow[1, 0], 0.4 / 4.4)
    assert area_flow(two_area_sheet(1.0, 0.0))["ff_index"] == 1.0


def test_lengths_wiring_and_receptive_fields():
    G = two_area_sheet(0.9, 0.1)
    w = wiring(G)
    assert math.isclose(w["wiring_total"], 4 * (1 + 1.8 + 0.2 + 0.1))
    rf = receptive_fields(G)
    assert math.isclose(rf[4], 2.0 * 0.9 / 1.0 + 1.0 * 0.1)  # B column: mostly from A
    chain = nx.DiGraph()
    for i in range(10):  # weight falls as length grows: rank correlation exactly -1
        chain.add_edge(i, i + 1, weight=1.0 / (i + 1), length=float(i + 1))
    assert math.isclose(weight_distance(chain)["weight_distance_rho"], -1.0)


def test_node_metrics_per_column():
    G = two_area_sheet(0.9, 0.1)
    m = node_metrics(G)
    n = G.number_of_nodes()
    assert all(v.shape == (n,) for v in m.values())
    assert np.allclose(m["receptive_field"], receptive_fields(G), equal_nan=True)
    nodes = list(G)
    assert m["in_degree"].tolist() == [G.in_degree(v) for v in nodes]
    assert np.allclose(m["out_strength"], [G.out_degree(v, weight="weight") for v in nodes])
    assert "community" not in node_metrics(G, community=False)
    caves = directed(nx.connected_caveman_graph(2, 6))  # two 6-cliques, one edge rewired
    c = node_metrics(caves)["community"]
    assert len(set(c[:6])) == 1 and len(set(c[6:])) == 1 and c[0] != c[6]


def test_edr_fit_recovers_lambda():
    rng = np.random.default_rng(0)
    G = nx.DiGraph()
    lengths = 1.0 + rng.exponential(2.5, 4000)
    for i, ln in enumerate(lengths):
        G.add_edge(f"s{i}", f"t{i}", weight=1.0, length=float(ln))
    fit = edr_fit(G)
    assert abs(fit["lambda"] - 2.5) < 0.15 and fit["ks"] < 0.05 and fit["r2"] > 0.8


def test_weighted_directed_clustering_matches_networkx():
    from colgraph.connectome import weighted_clustering

    G = nx.gnp_random_graph(60, 0.15, seed=6, directed=True)
    rng = np.random.default_rng(0)
    for u, v in G.edges:
        G.edges[u, v]["weight"] = float(rng.random())
    expected = nx.average_clustering(G, weight="weight")
    assert math.isclose(weighted_clustering(G)["weighted_clustering"], expected, rel_tol=1e-9)


def test_bad_arguments():
    G = two_area_sheet()
    with pytest.raises(ValueError, match=r"edge_fraction must be in \(0, 1\]"):
        small_world(G, edge_fraction=1.5)
    with pytest.raises(ValueError, match="n_null must be an integer >= 0"):
        modularity(G, n_null=-1)


def test_flow_uses_disjoint_areas_or_says_why_not():
    """Overlapping areas (a 'sheet' holding every column, input / output parts of it) are
    reduced to disjoint ones, and the result says which were left out; a sheet whose areas
    are all the same set reports n/a with the reason."""
    G = two_area_sheet(0.9, 0.1)
    for v in G:  # every column also in an all-covering 'sheet' area
        G.nodes[v]["area"] += ",sheet"
    f = area_flow(G)
    assert f["areas"] == ["A", "B"] and f["dropped"] == ["sheet"] and f["coverage"] == 1.0
    assert f["ff_index"] == pytest.approx(0.8) and "sheet overlap" in f["note"]
    for v in G:  # one area only: A = input = B = sheet
        G.nodes[v]["area"] = "sheet,input,output"
    f = area_flow(G)
    assert f["ff_index"] is None and f["note"].startswith("n/a: fewer than two disjoint areas")
    assert len(f["areas"]) == 1 and len(f["dropped"]) == 2


def test_flow_figure_names_the_reason(tmp_path):
    from colgraph.connectome.figures import plot_flow

    G = two_area_sheet()
    for v in G:
        G.nodes[v]["area"] = "sheet,input,output"
    plot_flow({"flow": area_flow(G)}, tmp_path / "flow.png")
    assert (tmp_path / "flow.png").stat().st_size > 5_000

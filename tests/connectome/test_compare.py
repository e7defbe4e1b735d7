"""compare(): the same metrics on two graphs, KS distances, JSON and a figure."""
import json
import math

import matplotlib
import networkx as nx
import numpy as np
import pytest

matplotlib.use("Agg")

from colgraph.connectome import compare, plot_comparison, write_comparison
from colgraph.connectome.compare import SCALARS, distributions


def ring(n=60, k=6, scale=1.0, weight=1.0):
    G = nx.watts_strogatz_graph(n, k, 0.0, seed=0).to_directed()
    for i, v in enumerate(G):
        a = 2 * math.pi * i / n
        G.nodes[v]["pos"] = (scale * math.cos(a), scale * math.sin(a))
    nx.set_edge_attributes(G, weight, "weight")
    return G


def test_a_graph_matches_itself_at_any_scale():
    # the same ring at 4x the size and 8x the weights (exact in binary floating point):
    # the scale-free terms are identical
    out = compare(ring(), ring(scale=4.0, weight=8.0), n_null=2)
    assert out["names"] == ["learned", "reference"]
    assert set(out["metrics"]) == set(SCALARS)
    for key, d in out["ks"].items():
        assert d["D"] == pytest.approx(0.0, abs=1e-12), key
    for key, v in out["metrics"].items():
        a, b = v["learned"], v["reference"]
        assert (a is None and b is None) or a == pytest.approx(b, rel=1e-6), key
    assert out["metrics"]["reciprocity"]["learned"] == 1.0
    assert set(out["ks"]) == {"in_degree", "out_degree", "in_strength", "out_strength",
                              "edge_weight", "edge_length"}  # lengths from node positions
    json.dumps(out)  # JSON-ready


def test_different_graphs_differ_and_missing_lengths_are_said():
    hubs = nx.DiGraph(nx.barabasi_albert_graph(60, 3, seed=0).to_directed())  # no positions
    out = compare(ring(), hubs, names=("sheet", "hubs"), n_null=2)
    assert out["ks"]["in_degree"]["D"] > 0.5 and out["ks"]["in_degree"]["p"] < 1e-3
    assert "edge_length" not in out["ks"]
    assert out["metrics"]["edr_lambda"]["hubs"] is None
    assert out["metrics"]["edr_lambda"]["sheet"] is not None
    assert any("'hubs' has no edge lengths" in n for n in out["notes"])


def test_length_attribute_wins_over_positions():
    G = ring()
    nx.set_edge_attributes(G, 3.0, "length")
    assert np.allclose(distributions(G)["edge_length"], 1.0)  # all equal: / median = 1


@pytest.mark.parametrize("bad, match", [
    (nx.DiGraph(), r"Cannot analyse a connectome of 0 column\(s\) and 0 edge"),
    (nx.empty_graph(5, create_using=nx.DiGraph), r"of 5 column\(s\) and 0 edge\(s\) between"),
])
def test_graphs_without_edges_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        compare(ring(), bad)


@pytest.mark.parametrize("w", [-1.0, float("nan"), float("inf")])
def test_bad_weights_are_refused(w):
    G = ring()
    G.edges[0, 1]["weight"] = w
    with pytest.raises(ValueError, match=r"Expected finite edge 'weight' values >= 0, but 1 are not \(e.g. 0 -> 1"):
        compare(G, ring())


def test_names_must_differ():
    with pytest.raises(ValueError, match=r"names must be two different, non-empty string labels"):
        compare(ring(), ring(), names=("a", "a"))


def test_figure_and_json(tmp_path, monkeypatch):
    a, b = ring(), nx.DiGraph(nx.barabasi_albert_graph(60, 3, seed=0).to_directed())
    out = write_comparison(a, b, tmp_path, names=("sheet", "hubs"), n_null=2)
    assert json.loads((tmp_path / "compare.json").read_text()) == out
    assert (tmp_path / "compare.png").stat().st_size > 20_000
    # the labelled elements, on the figure as it is saved
    from colgraph.connectome import figures

    saved = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path, tight=True: saved.update(fig=fig))
    plot_comparison(a, b, out, tmp_path / "kept.png")
    axes = saved["fig"].axes
    panels = [ax for ax in axes if "KS D =" in ax.get_title()]
    assert len(panels) == 5  # one per compared distribution (hubs have no lengths)
    assert all(ax.get_xlabel() and ax.get_ylabel() == "P(X >= x)" for ax in panels)
    assert all({t.get_text() for t in ax.get_legend().get_texts()} ==
               {"sheet (n=60)", "hubs (n=60)"} for ax in panels[:4])
    assert "metrics side by side" in [ax.get_title() for ax in axes]
    assert saved["fig"]._suptitle.get_text() == "sheet vs hubs"


def test_what_is_not_a_graph_is_refused():
    with pytest.raises(TypeError, match=r"compare expects networkx graphs .* got int"):
        compare(5, ring())


def test_each_graph_is_tested_against_the_null_families():
    import networkx as nx

    from colgraph.connectome import compare

    a = nx.gnp_random_graph(40, 0.15, seed=0, directed=True)
    b = nx.gnp_random_graph(40, 0.3, seed=1, directed=True)
    out = compare(a, b, names=("a", "b"), n_null=2)
    assert sorted(out["significance"]) == ["a", "b"]
    assert list(out["significance"]["a"]["families"]) == ["degree", "prior"]  # no positions
    assert "z" in out["significance"]["b"]["metrics"]["modularity_Q"]["degree"]
    assert any("'a': significance: spatial null left out" in n for n in out["notes"])
    assert "significance" not in compare(a, b, n_null=2, nulls=None)
    with pytest.raises(ValueError, match="Unknown null family"):
        compare(a, b, nulls=("degre",))

"""Null families of colgraph.connectome.nulls: what each keeps, and the known answers (a k-NN
sheet with random weights is explained by its geometry, planted modules are not)."""
import json
import math

import networkx as nx
import numpy as np
import pytest

from colgraph import Columnformer
from colgraph.connectome import analyze, null_model, read_connectome, significance, \
    to_networkx, write_connectome
from colgraph.connectome.arrays import arrays
from colgraph.connectome.nulls import NULLS, _bins, _cuts, significance_table
from colgraph.geometry import grid, knn, torus
from colgraph.geometry import random_sheet as scattered


def _sheet(geo, weights="random", seed=0):
    """The sheet's own wiring as a connectome, with random (or planted-module) weights."""
    G = to_networkx(Columnformer(geo, channels=8, steps=40))  # steps: output reachable
    rng = np.random.default_rng(seed)
    side = max(p[0] for p in nx.get_node_attributes(G, "pos").values()) + 1
    for u, v, d in G.edges(data=True):
        w = rng.random()
        if weights == "planted":  # four quadrant modules: strong within, weak between
            pu, pv = G.nodes[u]["pos"], G.nodes[v]["pos"]
            same = (pu[0] < side / 2, pu[1] < side / 2) == (pv[0] < side / 2, pv[1] < side / 2)
            w = (1.0 if same else 0.05) * (0.5 + 0.5 * w)
        d["weight"] = float(w)
    return G


def _degrees(a):
    return (np.bincount(a.src, minlength=a.n), np.bincount(a.dst, minlength=a.n))


@pytest.fixture(scope="module")
def random_sheet():
    return _sheet(grid(12, wiring=knn(8)))


def test_families_keep_what_they_say(random_sheet):
    a = arrays(random_sheet)
    for family in NULLS:
        null = null_model(random_sheet, family, seed=3)
        if family == "degree":  # the configuration model drops repeated pairs and loops
            assert 0.9 * a.src.size < null.src.size <= a.src.size
            assert (np.bincount(null.src, minlength=a.n) <= _degrees(a)[0]).all()
            continue
        np.testing.assert_allclose(np.sort(null.weight), np.sort(a.weight))  # same weights
        for mine, theirs in zip(_degrees(null), _degrees(a)):
            np.testing.assert_array_equal(mine, theirs)
    for family in ("prior", "prior_length", "prior_global"):  # the very same edges
        null = null_model(random_sheet, family, seed=3)
        np.testing.assert_array_equal(null.src, a.src)
        np.testing.assert_array_equal(null.dst, a.dst)
        assert not np.array_equal(null.weight, a.weight), family
    prior = null_model(random_sheet, "prior", seed=3)  # within each target column
    for t in range(a.n):
        np.testing.assert_allclose(np.sort(prior.weight[a.dst == t]),
                                   np.sort(a.weight[a.dst == t]))
    assert null_model(random_sheet, "prior", seed=3).weight.tolist() == prior.weight.tolist()


def test_spatial_rewiring_keeps_degrees_lengths_and_reciprocity():
    # random positions: lengths vary continuously, so many swaps are possible
    geo = scattered(300, wiring=knn(6), seed=0)
    G = _sheet(geo)
    a = arrays(G)
    null = null_model(G, "spatial", seed=1)
    for mine, theirs in zip(_degrees(null), _degrees(a)):
        np.testing.assert_array_equal(mine, theirs)
    # every edge kept its length bin: the binned length distribution is unchanged
    length = np.linalg.norm(a.pos[a.src] - a.pos[a.dst], axis=1)
    cuts = _cuts(length)
    np.testing.assert_array_equal(np.sort(_bins(null.length, cuts)),
                                  np.sort(_bins(length, cuts)))
    np.testing.assert_allclose(null.length, np.linalg.norm(null.pos[null.src] -
                                                           null.pos[null.dst], axis=1),
                               rtol=1e-5)
    old = set(zip(a.src.tolist(), a.dst.tolist()))
    new = set(zip(null.src.tolist(), null.dst.tolist()))
    assert len(new) == len(old)  # no repeated pair, no self-loop
    assert all(s != t for s, t in new)
    # it did rewire, as far as k-NN wiring lets it: the positions fix most of a k-NN graph
    assert len(new - old) > 0.02 * len(old)
    reciprocal = lambda edges: sum((t, s) in edges for s, t in edges)  # noqa: E731
    assert reciprocal(new) == reciprocal(old)  # reciprocal pairs move together


def test_lattice_lengths_get_bins_of_their_own():
    length = np.array([1.0] * 50 + [2**0.5] * 50 + [2.0, 2.2, 2.5, 3.0])
    bins = _bins(length)
    assert len(set(bins[:50])) == 1 and len(set(bins[50:100])) == 1
    assert len(set(bins[:50]) | set(bins[50:100]) | set(bins[100:])) == len(set(bins))
    assert not set(bins[100:]) & set(bins[:100])  # rare longer edges never mix with them


def test_spatial_rewiring_on_a_torus_uses_the_wrapped_metric():
    G = _sheet(torus(10, wiring=knn(4)))
    assert G.graph["metric"] == "euclidean" and G.graph["period_x"] == 10.0
    a = arrays(G)
    assert a.period.tolist() == [10.0, 10.0]
    null = null_model(G, "spatial", seed=0)
    assert null.length.max() <= a.length.max() + 1e-6  # wrapped lengths, never across
    # the metric and period survive a file
    path = write_connectome(G, G.graph.get("dir", "/tmp") + "/torus_null_test.graphml")
    b = arrays(read_connectome(path))
    assert b.metric == "euclidean" and b.period.tolist() == [10.0, 10.0]


def test_random_weights_on_knn_are_explained_by_geometry(random_sheet):
    out = significance(random_sheet, n_null=8, seed=0)
    assert list(out["families"]) == ["degree", "spatial", "prior"]
    m = out["metrics"]
    for name in ("modularity_Q", "weighted_clustering", "clustering", "small_world_sigma"):
        assert abs(m[name]["degree"]["z"]) > 3, (name, m[name])  # the lattice vs random
        for family in ("spatial", "prior"):
            assert abs(m[name][family]["z"]) < 3, (name, family, m[name])
    assert m["modularity_Q"]["degree"]["p"] == pytest.approx(1 / 9)
    json.dumps(out, allow_nan=False)  # strict JSON
    text = significance_table(out)
    assert "modularity_Q" in text and "smallest p 0.11" in text


def test_planted_modules_survive_every_family():
    out = significance(_sheet(grid(12, wiring=knn(8)), "planted"), n_null=8, seed=0)
    for name in ("modularity_Q", "weighted_clustering"):
        for family in ("degree", "spatial", "prior"):
            z = out["metrics"][name][family]["z"]
            assert z > 3, (name, family, z)


def test_analyze_reports_significance_and_modularity_from_the_degree_family(random_sheet):
    m = analyze(random_sheet, n_null=3, nulls=("degree", "prior"))
    sig = m["significance"]
    assert sig["n_null"] == 3 and list(sig["families"]) == ["degree", "prior"]
    assert m["modularity"]["Q_z"] == sig["metrics"]["modularity_Q"]["degree"]["z"]
    assert m["modularity"]["Q_p"] == sig["metrics"]["modularity_Q"]["degree"]["p"]
    assert "significance" not in analyze(random_sheet, n_null=3, nulls=None)
    assert "significance" not in analyze(random_sheet, n_null=0)


def test_auto_leaves_out_what_does_not_apply_and_says_why():
    G = nx.gnp_random_graph(30, 0.2, seed=0, directed=True)  # no positions, no lengths
    out = significance(G, n_null=2)
    assert list(out["families"]) == ["degree", "prior"]
    assert any("spatial null left out" in n and "positions" in n for n in out["notes"])
    m = analyze(G, n_null=2)
    assert any(n.startswith("significance: spatial null left out") for n in m["notes"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(families="spatial"), "does not apply.*positions"),
    (dict(families="prior_length"), "does not apply.*lengths"),
    (dict(families="nope"), "Unknown null family 'nope'. Choices: degree, spatial"),
    (dict(families=()), "Expected the null families"),
    (dict(families=None), "needs null families"),
    (dict(n_null=0), "n_null must be >= 1"),
    (dict(n_null=-2), "n_null must be an integer >= 0"),
    (dict(n_null=2.5), "n_null must be an integer"),
    (dict(seed=-1), "seed must be an integer >= 0"),
])
def test_bad_requests_are_refused(kwargs, match):
    G = nx.gnp_random_graph(20, 0.3, seed=0, directed=True)
    with pytest.raises(ValueError, match=match):
        significance(G, **{"n_null": 2, **kwargs})


def test_bad_metric_attributes_are_refused():
    G = _sheet(grid(4, wiring=knn(4)))
    G.graph["metric"] = "manhattan"
    with pytest.raises(ValueError, match="'metric' attribute is 'manhattan'"):
        arrays(G)
    G.graph["metric"] = "euclidean"
    G.graph["period_x"] = -1.0
    with pytest.raises(ValueError, match="period attributes"):
        arrays(G)
    G.graph["period_x"] = "wide"
    with pytest.raises(ValueError, match="period attributes"):
        arrays(G)


def test_null_of_a_graph_too_small_to_rewire():
    G = nx.DiGraph()
    G.add_node(0, pos=(0.0, 0.0))
    G.add_node(1, pos=(1.0, 0.0))
    G.add_edge(0, 1, weight=1.0)
    with pytest.raises(ValueError, match="at least 2 edges"):
        significance(G, families="spatial", n_null=2)
    assert math.isfinite(significance(G, families="prior", n_null=2)["metrics"]
                         ["weighted_reciprocity"]["value"])

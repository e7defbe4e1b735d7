"""Placement of a connectome (colgraph.connectome.placement): known answers (a scrambled
k-NN grid recovered from its weighted graph alone, a pinned path spaced evenly), swap deltas
equal to full recomputation, torus and sphere lengths, the report, the figure, and bad
input refused before any work."""
import json
import math

import networkx as nx
import numpy as np
import pytest
from scipy.spatial import cKDTree

from colgraph.connectome import (assign_sites, placement_report, placement_wire,
                                 plot_placement, quadratic_placement, swap_placement)
from colgraph.connectome.placement import _graph, _Wire
from colgraph.geometry import grid, knn, sphere, torus


def _scrambled_grid(side=16, k=8, seed=0):
    """A k-NN grid's weighted graph whose columns sit at random sites, node ids scrambled
    too (so neither node order nor positions hint at the layout); returns the graph, the
    true position of each node, and the sites."""
    geo = grid(side, wiring=knn(k))
    n = geo.num_columns
    rng = np.random.default_rng(seed)
    true = geo.pos.double().numpy()
    label = rng.permutation(n)  # node label[i] is original column i
    G = nx.DiGraph()
    order = np.argsort(label)  # node j (in insertion order) is original column order[j]
    at = rng.permutation(n)  # scrambled: node j sits at the site of column at[j]
    for j, c in enumerate(order):
        G.add_node(int(label[c]), pos=tuple(true[at[j]]))
    for s, t in geo.edge_index.t().tolist():
        G.add_edge(int(label[s]), int(label[t]), weight=float(rng.uniform(0.5, 1.5)))
    return G, true[order], true


def _corners(true):
    lo, hi = true.min(0), true.max(0)
    want = [(lo[0], lo[1]), (hi[0], lo[1]), (lo[0], hi[1]), (hi[0], hi[1])]
    return [int(np.flatnonzero((true == w).all(1))[0]) for w in want]


def test_scrambled_grid_recovered_from_the_graph_alone():
    """Saving recovered = (cost_scrambled - cost_found) / (cost_scrambled - cost_original)
    >= 0.9; neighbours stay neighbours: >= 90% of the k-NN pairs end up no farther apart
    than in the original grid (sqrt 2 inside, up to sqrt 5 along the border, where a
    column has fewer than 8 neighbours within sqrt 2)."""
    G, true, sites = _scrambled_grid()
    pins = _corners(true)
    scrambled = np.array([G.nodes[v]["pos"] for v in G.nodes])
    start = scrambled.copy()
    start[pins] = true[pins]  # the four corner columns pinned at their true sites
    q = quadratic_placement(G, start, pinned=pins, sites=sites)
    site = cKDTree(sites).query(q)[1]
    assert np.unique(site).size == len(site)  # one column per site
    out = swap_placement(G, sites=sites, start=site, pinned=pins, sweeps=10)
    found = out.pos
    cost = {k: placement_wire(G, x) for k, x in (("scrambled", scrambled), ("original", true),
                                                  ("found", found))}
    saving = (cost["scrambled"] - cost["found"]) / (cost["scrambled"] - cost["original"])
    assert saving >= 0.9, cost
    np.testing.assert_allclose(out.cost[-1], cost["found"], rtol=1e-9)
    index = {v: i for i, v in enumerate(G.nodes)}
    s = np.array([index[u] for u, _ in G.edges])
    t = np.array([index[v] for _, v in G.edges])
    before = np.linalg.norm(true[s] - true[t], axis=1)
    near = np.linalg.norm(found[s] - found[t], axis=1) <= before + 1e-9
    assert near.mean() >= 0.9, near.mean()
    assert (before <= math.sqrt(2) + 1e-9).mean() < 0.95  # the sqrt 2 rule would be too lax
    np.testing.assert_array_equal(found[pins], true[pins])  # pinned columns did not move


def test_quadratic_path_with_pinned_ends_is_evenly_spaced():
    n = 11
    G = nx.path_graph(n)
    for i in G.nodes:
        G.nodes[i]["pos"] = (float(np.cos(i)), 7.0)  # anything but the answer
    G.nodes[0]["pos"], G.nodes[n - 1]["pos"] = (2.0, -1.0), (12.0, 4.0)
    x = quadratic_placement(G, pinned=[0, n - 1])
    f = np.arange(n)[:, None] / (n - 1)
    np.testing.assert_allclose(x, (1 - f) * [2.0, -1.0] + f * [12.0, 4.0], atol=1e-9)


def test_quadratic_weights_pull_harder():
    """Closed form for one free node between two pins: the weighted mean."""
    W = np.array([[0, 3.0, 0], [0, 0, 1.0], [0, 0, 0]])
    x = quadratic_placement(W, np.array([[0.0], [5.0], [4.0]]), pinned=[0, 2])
    np.testing.assert_allclose(x.ravel(), [0.0, 1.0, 4.0])  # (3 * 0 + 1 * 4) / (3 + 1)


def _random_graph(n=60, m=400, seed=1, metric="euclidean", period=None, dim=2):
    rng = np.random.default_rng(seed)
    G = nx.DiGraph(metric=metric)
    if period is not None:
        G.graph.update({f"period_{c}": float(p) for c, p in zip("xyz", period)})
    pos = rng.random((n, dim)) * 10
    if metric == "sphere":
        pos = pos - 5
        pos /= np.linalg.norm(pos, axis=1, keepdims=True)
    for i in range(n):
        G.add_node(i, pos=tuple(pos[i]))
    for s, t in rng.integers(n, size=(m, 2)):
        if s != t:
            G.add_edge(int(s), int(t), weight=float(rng.random()))
    return G, pos


@pytest.mark.parametrize("metric,period,p", [("euclidean", None, 1.0),
                                             ("euclidean", (10.0, 10.0), 2.0),
                                             ("sphere", None, 1.5)])
def test_swap_deltas_equal_full_recomputation(metric, period, p):
    n = 60
    G, pos = _random_graph(n, metric=metric, period=period, dim=3 if metric == "sphere" else 2)
    rng = np.random.default_rng(2)
    extra = 15  # empty sites too
    sites = np.concatenate([pos, pos[rng.integers(n, size=extra)] * 0.9 + 0.01])
    if metric == "sphere":
        sites /= np.linalg.norm(sites, axis=1, keepdims=True)
    W = _Wire(_graph(G, "test"), sites, p)
    site = rng.permutation(n + extra)[:n]
    occupant = np.full(n + extra, -1)
    occupant[site] = np.arange(n)
    a = rng.integers(n, size=200)
    t = rng.integers(n + extra, size=200)
    keep = site[a] != t
    a, t = a[keep], t[keep]
    b = occupant[t]
    delta, _, _ = W.deltas(site, a, b, site[a], t)
    before = W.cost(site)
    for k in range(a.size):
        moved = site.copy()
        moved[a[k]] = t[k]
        if b[k] >= 0:
            moved[b[k]] = site[a[k]]
        assert delta[k] == pytest.approx(W.cost(moved) - before, rel=1e-9, abs=1e-9), k


def test_swaps_lower_the_cost_and_keep_a_permutation():
    geo = grid(10, wiring=knn(8))
    start = np.random.default_rng(0).permutation(100)
    for method in ("greedy", "anneal"):
        out = swap_placement(geo, start=start, method=method, sweeps=15, seed=3)
        assert np.unique(out.site).size == 100
        assert min(out.cost) < 0.8 * out.cost[0], method
        assert placement_wire(geo, out.pos) == pytest.approx(min(out.cost), rel=1e-9)
        if method == "greedy":  # greedy never goes up
            assert all(b <= a + 1e-9 for a, b in zip(out.cost, out.cost[1:]))
        else:
            assert out.temperature[0] > out.temperature[-1] > 0


def test_swaps_respect_pins_and_areas():
    geo = grid(8, wiring=knn(8))
    G = geo.to_networkx()
    for v in G.nodes:
        G.nodes[v]["area"] = "left" if G.nodes[v]["pos"][0] < 4 else "right"
    start = np.random.default_rng(1).permutation(64)
    pins = [0, 5, 17]
    out = swap_placement(G, start=start, pinned=pins, within="area", sweeps=5)
    np.testing.assert_array_equal(out.site[pins], start[pins])
    assert sum(out.accepted) > 10 and out.cost[-1] < out.cost[0]
    left = np.array([G.nodes[v]["area"] == "left" for v in G.nodes])
    for area in (left, ~left):  # swaps within an area: each area keeps its set of sites
        np.testing.assert_array_equal(np.sort(out.site[area]), np.sort(start[area]))


def test_torus_and_sphere_lengths():
    geo = torus(6, wiring=knn(4))
    G = geo.to_networkx()
    G.graph.update(period_x=6.0, period_y=6.0)
    assert placement_wire(G) == pytest.approx(geo.num_edges * 1.0)  # wrapped: all length 1
    G.graph.pop("period_x"), G.graph.pop("period_y")
    assert placement_wire(G) > geo.num_edges * 1.5  # open: the wrap edges are long
    sph = sphere(200, wiring=knn(6))
    S = sph.to_networkx()
    S.graph["metric"] = "sphere"
    np.testing.assert_allclose(placement_wire(S), float(sph.edge_length.sum()), rtol=1e-5)
    assert placement_wire(S) > placement_wire(nx.DiGraph(S, metric="euclidean"))  # arc > chord
    out = swap_placement(S, start=np.random.default_rng(0).permutation(200), sweeps=5)
    assert out.cost[-1] < out.cost[0]


def test_assign_sites_is_one_to_one_and_exact_on_small_inputs():
    rng = np.random.default_rng(0)
    sites = rng.random((300, 2))
    x = sites[rng.permutation(300)[:200]] + rng.normal(0, 1e-4, (200, 2))
    got = assign_sites(x, sites, leaf=16)  # spare sites: 16 leaves of bisection
    assert np.unique(got).size == 200
    assert (got == cKDTree(sites).query(x)[1]).mean() >= 0.9  # nearly all on their own site
    x = sites[rng.permutation(300)] + rng.normal(0, 1e-5, (300, 2))
    np.testing.assert_array_equal(assign_sites(x, sites, leaf=16), cKDTree(sites).query(x)[1])
    collapsed = np.linspace(0, 1, 50)[:, None] * [1e-6, 0]  # order kept at any scale
    line = np.linspace(0, 7, 50)[:, None] * [1, 0]
    np.testing.assert_array_equal(assign_sites(collapsed, line, leaf=8), np.arange(50))


def test_report_known_answers(tmp_path):
    geo = grid(10, wiring=knn(8))
    G = geo.to_networkx()
    for v in G.nodes:
        G.nodes[v]["area"] = "sheet," + ("top" if G.nodes[v]["pos"][1] >= 5 else "bottom")
    r, best = placement_report(G, n_random=6, sweeps=5, return_placement=True)
    json.dumps(r, allow_nan=False)
    w = r["wire"]
    assert w["actual"] == pytest.approx(w["optimal"])  # a grid is already optimal
    assert w["excess"] == pytest.approx(0.0, abs=1e-9)
    assert w["z"] < -10 and w["random_mean"] > 3 * w["actual"]
    assert set(r["areas"]) == {"sheet", "top", "bottom"}
    assert r["areas"]["sheet"]["actual"] == pytest.approx(w["actual"])
    assert r["areas"]["top"]["actual"] < w["actual"] / 2
    assert r["pinned"] >= 2 and any("pinned" in note for note in r["notes"])
    # the same columns scrambled: far from optimal, much of the random excess
    rng = np.random.default_rng(0)
    scr = geo.pos.numpy()[rng.permutation(100)]
    H = nx.relabel_nodes(G, {}, copy=True)
    for i, v in enumerate(H.nodes):
        H.nodes[v]["pos"] = tuple(scr[i].tolist())
    s = placement_report(H, n_random=6, sweeps=10)
    assert s["wire"]["excess"] > 0.8 and s["wire"]["actual_over_optimal"] > 2, s["wire"]
    plot_placement(scr, best.pos, tmp_path / "placement.png", cost=best.cost)
    assert (tmp_path / "placement.png").stat().st_size > 1000


def test_report_undefined_values_are_none():
    G = nx.DiGraph()
    for i in range(4):
        G.add_node(i, pos=(float(i), 0.0), area="a" if i < 2 else "b,c")
    G.add_edge(0, 1)
    G.add_edge(2, 3)
    G.add_node(4, pos=(9.0, 0.0), area="c")  # isolated: pinned in place, noted
    r = placement_report(G, n_random=3, sweeps=2)
    assert r["areas"]["c"]["actual"] is not None
    assert any("component" in note for note in r["notes"])
    G.add_node(5, pos=(3.0, 3.0), area="lonely")
    r = placement_report(G, n_random=3, sweeps=2)
    assert r["areas"]["lonely"]["actual"] is None
    assert any("lonely" in note for note in r["notes"])


def test_scale_measurement_example_runs_small():
    """The README's scale measurement, on 2,000 columns (the 10^5 run is in the README)."""
    from colgraph.geometry import random_sheet

    geo = random_sheet(2000, seed=0, wiring=knn(16))
    pos = geo.pos.double().numpy()
    pins = np.unique(np.concatenate([pos.argmin(0), pos.argmax(0)]))
    x = quadratic_placement(geo, pinned=pins, sites=pos)
    assert np.isfinite(x).all()
    out = swap_placement(geo, sweeps=1)
    assert out.cost[1] <= out.cost[0]


# ---------------------------------------------------------------------- bad input
@pytest.fixture
def small():
    G = grid(4, wiring=knn(4)).to_networkx()
    nx.set_node_attributes(G, "sheet", "area")
    return G


def test_unknown_pinned_area_or_index(small):
    with pytest.raises(ValueError, match="Unknown area 'V9'.*areas: sheet"):
        quadratic_placement(small, pinned="V9")
    with pytest.raises(ValueError, match=r"pinned column indices in \[0, 15\].*\[16\]"):
        swap_placement(small, pinned=[0, 16])
    with pytest.raises(ValueError, match="Unknown area"):
        placement_report(small, pinned=["nope"])


def test_every_column_pinned(small):
    with pytest.raises(ValueError, match="All 16 columns are pinned"):
        quadratic_placement(small, pinned="sheet")
    with pytest.raises(ValueError, match="All 16 columns are pinned"):
        swap_placement(small, pinned=np.ones(16, bool))


def test_no_pin_or_unpinned_component(small):
    with pytest.raises(ValueError, match="at least one pinned column"):
        quadratic_placement(small)
    small.add_node("far", pos=(50.0, 50.0))
    with pytest.raises(ValueError, match="1 of the graph's 2 connected components have no "
                                         "pinned column"):
        quadratic_placement(small, pinned=[0])


def test_positions_with_nan(small):
    pos = np.zeros((16, 2))
    pos[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"finite positions 'pos', but row 3"):
        quadratic_placement(small, pos, pinned=[0])
    with pytest.raises(ValueError, match="finite sites, but row 0"):
        swap_placement(small, sites=np.full((20, 2), np.inf))
    small.nodes[0]["pos"] = (np.nan, 0.0)
    with pytest.raises(ValueError, match="finite node positions"):
        placement_report(small)


def test_fewer_sites_than_columns(small):
    with pytest.raises(ValueError, match="at least as many sites as columns \\(16\\), got 15"):
        swap_placement(small, sites=np.random.default_rng(0).random((15, 2)))
    with pytest.raises(ValueError, match="at least as many sites"):
        quadratic_placement(small, pinned=[0], sites=np.zeros((3, 2)))


def test_graph_without_positions():
    G = nx.path_graph(5, create_using=nx.DiGraph)
    with pytest.raises(ValueError, match="no node 'pos'"):
        quadratic_placement(G, pinned=[0])
    with pytest.raises(ValueError, match="no node 'pos'"):
        swap_placement(G)
    with pytest.raises(ValueError, match="no node 'pos'"):
        placement_report(G)


def test_negative_weights(small):
    u, v = next(iter(small.edges))
    nx.set_edge_attributes(small, 1.0, "weight")
    small.edges[u, v]["weight"] = -0.5
    with pytest.raises(ValueError, match="weight.*>= 0"):
        swap_placement(small)
    W = -np.eye(3, k=1)
    with pytest.raises(ValueError, match=r"W\[0, 1\] = -1.0"):
        quadratic_placement(W, np.zeros((3, 1)), pinned=[0])


@pytest.mark.parametrize("p", [0, -1, float("nan"), "1"])
def test_cost_power_must_be_positive(small, p):
    with pytest.raises(ValueError, match="cost_power must be a finite number > 0"):
        swap_placement(small, cost_power=p)
    with pytest.raises(ValueError, match="cost_power must be a finite number > 0"):
        placement_report(small, cost_power=p)

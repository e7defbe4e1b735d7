"""Generative wiring models: growth, incremental K, the KS energy, fits of known answers."""
import json

import networkx as nx
import numpy as np
import pytest
import torch

from colgraph.connectome import (MODELS, energy, fit_generative, generate, ks_statistics,
                                 plot_energy_landscape, radius_candidates)
from colgraph.connectome.generative import _Growth, _Pairs, _Sheet, _betweenness

POS = np.random.default_rng(0).random((80, 2))  # a small sheet at random positions


def _graph(n, edges):
    G = nx.Graph()
    G.add_nodes_from(range(n))
    G.add_edges_from(map(tuple, edges))
    return G


def _k_from_scratch(model, G, u, v, eps):
    """K of the pairs (u, v) recomputed from the graph with networkx / sets."""
    deg = dict(G.degree)
    cc = nx.clustering(G)
    out = []
    for a, b in zip(u.tolist(), v.tolist()):
        na, nb = set(G[a]), set(G[b])
        if model == "spatial":
            out.append(1.0)
            continue
        if model == "neighbors":
            k = len(na & nb)
        elif model == "matching":
            den = len(na - {b}) + len(nb - {a})
            k = 2 * len(na & nb) / den if den else 0.0
        else:
            x, y = (cc[a], cc[b]) if model.startswith("clu") else (deg[a], deg[b])
            k = {"avg": (x + y) / 2, "min": min(x, y), "max": max(x, y),
                 "prod": x * y}[model[4:]]
        out.append(k + eps)
    return np.array(out)


# ------------------------------------------------------------------ growth
@pytest.mark.parametrize("model", list(MODELS))
def test_incremental_k_equals_k_recomputed_after_many_additions(model):
    """After 300 additions (and from a seed graph), the K kept up to date edge by edge
    equals K recomputed from the final graph, on every candidate pair."""
    n = 60
    sheet = _Sheet(POS[:n])
    pairs = _Pairs(sheet, None)
    seed = np.flatnonzero(np.random.default_rng(1).random(pairs.size) < 0.01)
    growth = _Growth(pairs, model, -1.0, 1.5, 1e-5, seed)
    added = growth.grow(seed.size + 300, np.random.default_rng(2))
    assert added.size == 300 and growth.present.sum() == seed.size + 300
    G = _graph(n, np.stack([pairs.u[growth.present], pairs.v[growth.present]], 1))
    every = np.arange(pairs.size)
    np.testing.assert_allclose(growth.k(every),
                               _k_from_scratch(model, G, pairs.u, pairs.v, 1e-5), atol=1e-12)
    # the probabilities the tree holds are the ones K gives now (absent pairs only)
    w = np.exp(growth._log_weight(every) - growth.offset)
    np.testing.assert_allclose(growth.tree.levels[0][:pairs.size], w, rtol=1e-9, atol=1e-300)


def test_incremental_k_over_sparse_candidates():
    """Over a radius candidate set (with seed edges outside it), K on the candidates is
    still the graph's K: every edge is a candidate, so neighbourhoods are complete."""
    cand = radius_candidates(POS, 0.25)
    seed = np.array([[0, 79], [3, 50]])  # long: not within the radius
    edges = generate(POS, 200, -1.0, 2.0, model="matching", candidates=cand, seed_graph=seed,
                     return_edges=True)
    keys = set(map(tuple, cand.tolist()))
    assert {tuple(e) for e in edges[2:].tolist()} <= keys  # grown only over candidates
    assert edges[:2].tolist() == [[0, 79], [3, 50]]  # seed edges first


def test_growth_returns_m_distinct_edges_and_records_the_order():
    G = generate(POS, 150, -2.0, 1.0, model="matching", seed=0)
    assert G.number_of_edges() == 150 and G.number_of_nodes() == 80
    assert sorted(d["order"] for _, _, d in G.edges(data=True)) == list(range(150))
    u, v = np.array(list(G.edges)).T
    np.testing.assert_allclose([G.edges[a, b]["length"] for a, b in G.edges],
                               np.linalg.norm(POS[u] - POS[v], axis=1))
    again = generate(POS, 150, -2.0, 1.0, model="matching", seed=0, return_edges=True)
    assert {tuple(sorted(e)) for e in again.tolist()} == {tuple(sorted(e)) for e in G.edges}


def test_spatial_with_very_negative_eta_wires_nearest_neighbours():
    """eta = -20: P ~ D^-20 makes nearly every new edge the shortest absent pair, so the
    graph is (almost) the m shortest pairs, each between near neighbours."""
    m = 80
    edges = generate(POS, m, eta=-20.0, model="spatial", seed=0, return_edges=True)
    d = np.linalg.norm(POS[:, None] - POS[None], axis=2)
    iu = np.triu_indices(80, 1)
    shortest = set(zip(*(x[np.argsort(d[iu])[:m]].tolist() for x in iu)))
    assert len({tuple(e) for e in edges.tolist()} & shortest) >= 0.9 * m
    np.fill_diagonal(d, np.inf)
    rank = (d[edges[:, 0]] < d[edges[:, 0], edges[:, 1]][:, None]).sum(1)  # 0: nearest
    assert (rank <= 2).mean() > 0.8  # among the 3 nearest columns of its first end
    rand = generate(POS, m, eta=0.0, model="spatial", seed=0, return_edges=True)
    assert d[edges[:, 0], edges[:, 1]].mean() < 0.3 * d[rand[:, 0], rand[:, 1]].mean()


def test_positive_gamma_matching_grows_clustered_graphs():
    a = nx.average_clustering(generate(POS, 240, -1.0, 3.0, model="matching", seed=0))
    b = nx.average_clustering(generate(POS, 240, -1.0, 0.0, model="matching", seed=0))
    assert a > b + 0.1


def test_a_sheet_edge_index_and_a_graph_on_a_torus_are_accepted():
    from colgraph.geometry import knn, torus

    geo = torus(10, wiring=knn(8))
    G = nx.Graph(metric="euclidean", period_x=10.0, period_y=10.0)
    for i, p in enumerate(geo.pos.tolist()):
        G.add_node(i, pos=tuple(p))
    grown = generate(G, 150, -2.0, 1.0, candidates=geo.edge_index, seed=0)
    lengths = [d["length"] for _, _, d in grown.edges(data=True)]
    assert max(lengths) <= 2.0 + 1e-6  # wrapped distances of knn(8) pairs, not 9 across


# ------------------------------------------------------------------ energy
def test_betweenness_equals_networkx():
    import scipy.sparse as sp

    G = nx.gnm_random_graph(40, 90, seed=1)
    G.add_nodes_from(range(40, 43))  # isolated columns
    A = sp.csr_matrix(nx.to_scipy_sparse_array(G, nodelist=range(43)).astype(float))
    ref = nx.betweenness_centrality(G)
    np.testing.assert_allclose(_betweenness(A, np.arange(43)), [ref[i] for i in range(43)],
                               atol=1e-12)


def test_energy_of_a_graph_with_itself_is_zero_and_against_random_is_large():
    G = generate(POS, 200, -3.0, 1.0, model="matching", seed=0)
    assert energy(G, G) == 0.0
    R = _graph(80, np.array(list(nx.gnm_random_graph(80, 200, seed=0).edges)))
    for v in R:
        R.nodes[v]["pos"] = tuple(POS[v])
    ks = ks_statistics(R, G)
    assert set(ks) == {"degree", "clustering", "betweenness", "length"}
    assert energy(R, G) == max(ks.values()) > 0.5
    from scipy.stats import ks_2samp

    length = lambda H: [np.linalg.norm(POS[a] - POS[b]) for a, b in H.edges]  # noqa: E731
    assert ks["length"] == pytest.approx(ks_2samp(length(R), length(G)).statistic)


# ------------------------------------------------------------------ fits (known answers)
def test_fit_recovers_the_eta_of_a_spatial_graph():
    """A graph grown by `spatial` at eta = -3: the fit's eta within one grid step."""
    target = generate(POS, 240, eta=-3.0, model="spatial", seed=11)
    fit = fit_generative(target, models=["spatial"], eta=np.arange(-6.0, 0.1, 1.0), repeats=2)
    best = fit["models"]["spatial"]["best"]
    assert abs(best["eta"] - (-3.0)) <= 1.0 and best["energy"] < 0.25
    assert fit["target"]["edges"] == 240 and fit["target"]["edge_fraction"] == 1.0


def test_fit_recovers_eta_and_gamma_of_a_matching_graph_and_prefers_matching():
    """A graph grown by `matching` at (eta, gamma) = (-2, 2): the fit's eta and gamma
    within one grid step, and `matching` beats `spatial` (which cannot make its
    clustering)."""
    target = generate(POS, 240, eta=-2.0, gamma=2.0, model="matching", seed=5)
    fit = fit_generative(target, models=["spatial", "matching"], eta=np.arange(-4.0, 0.1, 1.0),
                         gamma=np.arange(-1.0, 4.1, 1.0), repeats=2, seed=0)
    best = fit["models"]["matching"]["best"]
    assert abs(best["eta"] - (-2.0)) <= 1.0 and abs(best["gamma"] - 2.0) <= 1.0
    assert fit["best"]["model"] == "matching"
    assert fit["models"]["spatial"]["best"]["energy"] > best["energy"] + 0.2
    json.dumps(fit, allow_nan=False)  # JSON-ready
    shape = np.array(fit["models"]["matching"]["energy"]).shape
    assert shape == (5, 6) and np.array(fit["models"]["spatial"]["energy"]).shape == (5, 1)


def test_fit_of_a_weighted_directed_connectome_keeps_the_stated_density(tmp_path):
    """A weighted DiGraph: symmetrised, the strongest half of the pairs kept."""
    rng = np.random.default_rng(0)
    G = nx.DiGraph()
    for i in range(40):
        G.add_node(i, pos=tuple(POS[i]))
    for a, b in nx.gnm_random_graph(40, 150, seed=2, directed=True).edges:
        G.add_edge(a, b, weight=float(rng.random()))
    pairs = {tuple(sorted(e)) for e in G.edges}
    fit = fit_generative(G, models=["spatial", "deg-avg"], eta=[-2.0, 0.0], gamma=[0.0, 1.0],
                         repeats=1)
    assert fit["target"]["edges"] == round(0.5 * len(pairs))
    assert fit["target"]["density"] == pytest.approx(fit["target"]["edges"] / (40 * 39 / 2))
    assert "strongest 0.5" in fit["target"]["binarised"]
    path = plot_energy_landscape(fit, tmp_path / "energy.png")
    assert path.exists() and path.stat().st_size > 10_000


def test_fit_is_reproducible_and_each_model_has_its_own_stream():
    target = generate(POS[:40], 80, -2.0, model="spatial", seed=1)
    kw = dict(eta=[-2.0, 0.0], gamma=[0.0, 1.0], repeats=1, seed=3)
    a = fit_generative(target, models=["matching"], **kw)
    b = fit_generative(target, models=["spatial", "matching"], **kw)
    assert a["models"]["matching"] == b["models"]["matching"]


# ------------------------------------------------------------------ bctpy (reference)
def test_k_and_the_energy_statistics_agree_with_bctpy():
    """bctpy's matching index, clustering, betweenness and degrees on a grown graph equal
    ours (bctpy's generative_model itself is no reference: in 0.6.1 its draws take the pair
    after the one drawn, an off-by-one from BCT's 1-based MATLAB, and its matching model
    never refreshes K^gamma)."""
    bct = pytest.importorskip("bct")
    from colgraph.connectome.generative import _statistics

    n = 30
    pairs = _Pairs(_Sheet(POS[:n]), None)
    growth = _Growth(pairs, "matching", -1.0, 1.0, 1e-5, np.zeros(0, np.int64))
    growth.grow(70, np.random.default_rng(0))
    u, v = pairs.u[growth.present], pairs.v[growth.present]
    A = np.zeros((n, n))
    A[u, v] = A[v, u] = 1
    np.testing.assert_allclose(growth.k(np.arange(pairs.size)) - 1e-5,
                               bct.matching_ind(A)[0][pairs.u, pairs.v], atol=1e-12)
    stats = _statistics(n, u, v, np.zeros(u.size), None, np.random.default_rng(0))
    np.testing.assert_allclose(stats["degree"], bct.degrees_und(A))
    np.testing.assert_allclose(stats["clustering"], bct.clustering_coef_bu(A))
    counts = stats["betweenness"] * (n - 1) * (n - 2)  # networkx's scale -> BCT's (ordered
    np.testing.assert_allclose(counts, bct.betweenness_bin(A), atol=1e-9)  # pairs) counts


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, match", [
    (dict(model="matchin"), r"Unknown generative model 'matchin'. Choices: spatial, "
                            r"neighbors, matching"),
    (dict(m=80 * 79 // 2 + 1), r"Expected m <= 3,160, the number of candidate pairs \(all "
                               r"pairs of 80 columns\), got m=3161"),
    (dict(m=-1), r"Expected m to be an integer >= 0 \(got -1\)"),
    (dict(m=2.5), r"Expected m to be an integer >= 0 \(got 2.5\)"),
    (dict(eta=float("nan")), r"Expected eta to be a finite number \(got nan\)"),
    (dict(gamma=float("inf")), r"Expected gamma to be a finite number \(got inf\)"),
    (dict(epsilon=0.0), r"Expected epsilon > 0"),
    (dict(seed=-1), r"Expected seed to be an integer >= 0"),
    (dict(candidates=np.array([[0, 1.5]])), r"Expected candidates as a \(P, 2\) array of "
                                            r"integer column indices"),
    (dict(candidates=np.array([[0, 80]])), r"Expected candidates to index columns 0 .. 79, "
                                           r"got values 0 .. 80"),
    (dict(candidates=np.array([[0, 1], [1, 2]]), m=3), r"Expected m <= 2, the number of "
                                                       r"candidate pairs \(candidates"),
    (dict(seed_graph=np.array([[0, 1], [1, 2]]), m=1), r"Expected m >= the seed graph's 2 "
                                                       r"edges"),
])
def test_generate_refuses_bad_input(kwargs, match):
    args = dict(positions_or_graph=POS, m=100, eta=-1.0, gamma=1.0, model="matching")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        generate(**args)


@pytest.mark.parametrize("bad, match", [
    (np.array([[0.0, 0.0], [np.nan, 1.0], [1.0, 1.0]]),
     r"Expected finite column positions, but 1 row\(s\) hold NaN/inf \(e.g. row 1"),
    (np.array([[0.0, 0.0], [np.inf, 1.0], [1.0, 1.0]]), r"hold NaN/inf"),
    (np.zeros((1, 2)), r"at least 2 columns, got 1"),
    (np.zeros((2, 2, 2)), r"Expected column positions of shape \(N, D\), got \[2, 2, 2\]"),
    ("abc", r"Expected column positions as an \(N, D\) array"),
])
def test_bad_positions_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        generate(bad, 1, -1.0)


def test_coincident_columns_with_negative_eta_are_refused():
    pos = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match=r"D\^eta is infinite for eta=-1.0 .*two columns at "
                                         r"one position"):
        generate(pos, 2, -1.0, model="spatial")
    assert generate(pos, 2, 1.0, model="spatial").number_of_edges() == 2  # eta > 0: fine


def test_all_pairs_of_a_huge_sheet_are_refused_before_any_work():
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"All pairs of 10,000 columns .* Pass candidates="):
        generate(np.random.default_rng(0).random((10_000, 2)), 100, -1.0)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("kwargs, match", [
    (dict(models=["spatial", "geometric"]), r"Unknown generative model 'geometric'. Choices"),
    (dict(models=[]), r"Expected at least one model to fit"),
    (dict(eta=[]), r"Expected eta to be a non-empty list of finite numbers \(got \[\]\)"),
    (dict(gamma=[0.0, np.nan]), r"Expected gamma to be a non-empty list of finite numbers"),
    (dict(eta="steep"), r"Expected eta to be a non-empty list"),
    (dict(repeats=0), r"Expected repeats to be an integer >= 1 \(got 0\)"),
    (dict(edge_fraction=1.5), r"edge_fraction must be in \(0, 1\]"),
    (dict(betweenness_sources=1), r"Expected betweenness_sources to be an integer >= 2"),
])
def test_fit_refuses_bad_settings_before_any_work(kwargs, match):
    target = generate(POS[:20], 30, -1.0, model="spatial")
    with pytest.raises(ValueError, match=match):
        fit_generative(target, **kwargs)


def test_a_target_without_edges_is_refused():
    G = _graph(10, np.zeros((0, 2), int))
    for v in G:
        G.nodes[v]["pos"] = (float(v), 0.0)
    with pytest.raises(ValueError, match=r"The target graph has no edges between different "
                                         r"columns \(10 nodes\): a generative model"):
        fit_generative(G, models=["spatial"], eta=[-1.0])
    with pytest.raises(ValueError, match=r"The target graph has no edges"):
        energy(generate(np.arange(10.0)[:, None], 5, -1.0, model="spatial"), G)
    G.add_edge(0, 0)  # a self-loop is no edge between columns
    with pytest.raises(ValueError, match=r"no edges between different columns"):
        fit_generative(G, models=["spatial"], eta=[-1.0])


def test_a_target_without_positions_or_other_nodes_is_refused(tmp_path):
    G = nx.path_graph(6)
    with pytest.raises(ValueError, match=r"Expected the graph's nodes to have a 'pos'"):
        fit_generative(G, models=["spatial"], eta=[-1.0])
    with pytest.raises(ValueError, match=r"Expected the model graph to have the target's 6 "
                                         r"nodes, but it has 3"):
        energy(nx.path_graph(3), G)
    with pytest.raises(ValueError, match=r"Expected the result of fit_generative"):
        plot_energy_landscape({"energy": 1}, tmp_path / "x.png")


def test_radius_candidates_are_the_pairs_within_the_radius():
    pairs = radius_candidates(POS, 0.2)
    d = np.linalg.norm(POS[:, None] - POS[None], axis=2)
    iu = np.triu_indices(80, 1)
    assert pairs.shape[0] == int((d[iu] < 0.2).sum())
    assert (d[pairs[:, 0], pairs[:, 1]] < 0.2).all()
    with pytest.raises(ValueError, match=r"Expected radius > 0"):
        radius_candidates(POS, 0.0)
    edge_index = torch.tensor([[1, 0, 2], [0, 1, 1]])  # both directions of 0 - 1: one pair
    G = generate(POS[:3], 2, -1.0, model="spatial", candidates=edge_index)
    assert sorted(map(sorted, G.edges)) == [[0, 1], [1, 2]]

import csv

import networkx as nx
import numpy as np
import pytest
import torch

from colgraph.geometry import from_coords, knn
from colgraph.plasticity import PlasticityConfig, grow_edges, matching_index
from colgraph.training import train

from conftest import TINY, compose

GEO = from_coords(torch.rand(64, 2, generator=torch.Generator().manual_seed(0)) * 8, knn(6))


def _matching(G, a, b):
    na, nb = set(G[a]) - {a}, set(G[b]) - {b}
    den = len(na - {b}) + len(nb - {a})
    return 2 * len(na & nb) / den if den else 0.0


def test_matching_index_of_the_wiring_taken_undirected():
    """Inputs and outputs are neighbours; a reciprocal pair is one neighbour; the pair's
    own link is not counted; networkx's neighbourhoods give the same numbers."""
    ei = GEO.edge_index
    G = nx.Graph(list(zip(*ei.tolist())))
    G.add_nodes_from(range(64))
    s, t = torch.triu_indices(64, 64, 1)
    k = matching_index(ei, torch.stack([s, t]), 64)
    ref = [_matching(G, a, b) for a, b in zip(s.tolist(), t.tolist())]
    np.testing.assert_allclose(k.numpy(), ref, atol=1e-12)
    assert (k > 0).float().mean() > 0.05 and k.max() <= 1.0


def test_matching_index_equals_the_generative_models_k():
    """The rule's K is the K of colgraph.connectome.generative's matching model."""
    from colgraph.connectome.generative import _Growth, _Pairs, _Sheet

    pairs = _Pairs(_Sheet(GEO.pos.numpy()), None)
    growth = _Growth(pairs, "matching", -1.0, 1.0, 1e-5, np.zeros(0, np.int64))
    growth.grow(150, np.random.default_rng(0))
    ei = torch.from_numpy(np.stack([pairs.u[growth.present], pairs.v[growth.present]]))
    every = torch.from_numpy(np.stack([pairs.u, pairs.v]))
    np.testing.assert_allclose(matching_index(ei, every, 64).numpy(),
                               growth.k(np.arange(pairs.size)) - 1e-5, atol=1e-12)


def _grown(eta, gamma, n=40, seed=0):
    return grow_edges("homophily", n, GEO.edge_index, GEO.pos, rng=np.random.default_rng(seed),
                      length_fn=GEO.measure, pool=63, homophily_eta=eta,
                      homophily_gamma=gamma)


def test_homophily_prefers_short_edges_between_columns_with_shared_neighbours():
    """Every absent edge is a candidate (pool >= N - 1): the grown edges are much shorter
    and share far more neighbours than the absent edges on average, and each exponent
    drives its own preference."""
    from colgraph.plasticity.grow import _all_non_edges

    absent = _all_non_edges(GEO.edge_index, 64)
    k_all = matching_index(GEO.edge_index, absent, 64).mean()
    len_all = GEO.measure(*absent).mean()
    both = _grown(-3.0, 2.0)
    k_both = matching_index(GEO.edge_index, both, 64).mean()
    assert both.size(1) == 40
    assert GEO.measure(*both).mean() < 0.4 * len_all
    assert k_both > 3 * k_all
    no_topology = _grown(-3.0, 0.0)  # distance only: fewer shared neighbours
    assert matching_index(GEO.edge_index, no_topology, 64).mean() < 0.8 * k_both
    no_distance = _grown(0.0, 2.0)  # topology only: longer edges
    assert GEO.measure(*no_distance).mean() > 1.2 * GEO.measure(*both).mean()
    random = grow_edges("random", 40, GEO.edge_index, GEO.pos, rng=np.random.default_rng(0))
    assert matching_index(GEO.edge_index, random, 64).mean() < 0.5 * k_both


def test_homophily_draws_are_seeded_and_need_lengths():
    assert torch.equal(_grown(-2.0, 1.0, seed=3), _grown(-2.0, 1.0, seed=3))
    with pytest.raises(ValueError, match=r"Grow rule 'homophily' needs edge lengths "
                                         r"\(length_fn\)"):
        grow_edges("homophily", 3, GEO.edge_index, GEO.pos, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"plasticity.homophily_gamma must be a finite number "
                                         r"\(got nan\)"):
        grow_edges("homophily", 3, GEO.edge_index, GEO.pos, rng=np.random.default_rng(0),
                   length_fn=GEO.measure, homophily_gamma=float("nan"))


@pytest.mark.parametrize("bad, message", [
    (dict(grow="homophily", homophily_eta=float("nan")),
     r"plasticity.homophily_eta must be a finite number \(got nan\)"),
    (dict(grow="homophily", homophily_gamma=float("inf")),
     r"plasticity.homophily_gamma must be a finite number \(got inf\)"),
    (dict(grow="random", homophily_gamma=2.0),
     r"plasticity.homophily_gamma=2.0 does not apply to plasticity.grow=random .* only "
     r"grow=homophily read it"),
])
def test_homophily_settings_are_checked(bad, message):
    with pytest.raises(ValueError, match=message):
        PlasticityConfig("custom", **bad)
    cfg = PlasticityConfig("custom", grow="homophily", homophily_eta=-3.0, pool=16)
    assert (cfg.homophily_eta, cfg.homophily_gamma, cfg.pool) == (-3.0, 1.0, 16)


def test_training_grows_the_sheet_by_homophily_from_the_config(tmp_path):
    overrides = TINY + ["plasticity=set", "plasticity.grow=homophily", "plasticity.every=2",
                        "plasticity.drop_fraction=0.5", "plasticity.homophily_eta=-3",
                        "plasticity.homophily_gamma=2"]
    cfg = compose(overrides)
    assert (cfg.plasticity.grow, cfg.plasticity.homophily_eta) == ("homophily", -3)
    train(cfg, tmp_path)
    rows = list(csv.DictReader((tmp_path / "plasticity.csv").open()))
    assert rows and int(rows[0]["removed"]) > 0  # constant budget: what is cut regrows
    assert all(int(r["added"]) == int(r["removed"]) for r in rows)
    # grown edges are short: no longer than the sheet's mean edge
    assert float(rows[0]["added_mean_length"]) <= 1.5 * float(rows[0]["mean_edge_length"])
    with pytest.raises(ValueError, match=r"homophily_gamma=2.0 does not apply"):
        train(compose(TINY + ["plasticity=set", "plasticity.homophily_gamma=2"]),
              tmp_path / "bad")

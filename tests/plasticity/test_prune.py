from dataclasses import fields

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from colgraph.geometry import from_coords, grid, hops_from, knn, uniform
from colgraph.plasticity import (PRUNE_CRITERIA, PlasticityConfig, prune_scores,
                                 rank_within_target, reachability_edges, register_prune,
                                 select_prune)


def test_scores_by_criterion():
    geo = grid(4, wiring=knn(3))
    E, N = geo.num_edges, geo.num_columns
    att = torch.rand(E)
    assert torch.equal(prune_scores("attention", geo.edge_index, N, attention=att), att)
    wiring = prune_scores("wiring", geo.edge_index, N, attention=att, length=geo.edge_length, p=2)
    assert torch.allclose(wiring, att / geo.edge_length.pow(2))
    # bias: the prior weight softmax(bias) over each column's inputs, averaged over heads/blocks
    bias = torch.zeros(2, E, 3)
    prior = prune_scores("bias", geo.edge_index, N, bias=bias)
    assert torch.allclose(prior, 1.0 / geo.in_degree()[geo.edge_index[1]].float())
    bias[:, 0] = 5.0  # a strong prior on edge 0 makes it the strongest, not the weakest
    assert prune_scores("bias", geo.edge_index, N, bias=bias)[0] > 0.9
    r1 = prune_scores("random", geo.edge_index, N, generator=torch.Generator().manual_seed(0))
    r2 = prune_scores("random", geo.edge_index, N, generator=torch.Generator().manual_seed(0))
    assert torch.equal(r1, r2)
    with pytest.raises(ValueError, match="Unknown prune criterion 'magnitude'. Choices"):
        prune_scores("magnitude", geo.edge_index, N)
    with pytest.raises(ValueError, match="needs 'attention'"):
        prune_scores("wiring", geo.edge_index, N, length=geo.edge_length)


@pytest.mark.parametrize("criterion", list(PRUNE_CRITERIA))
def test_every_criterion_scores_every_edge_and_prunes_within_budget(criterion):
    geo = from_coords(torch.rand(30, 2, generator=torch.Generator().manual_seed(0)),
                      uniform(k=5, seed=0))
    E, N = geo.num_edges, geo.num_columns
    g = torch.Generator().manual_seed(1)
    inputs = dict(bias=torch.randn(2, E, 3, generator=g), attention=torch.rand(E, generator=g),
                  length=geo.edge_length, generator=g)
    score = prune_scores(criterion, geo.edge_index, N, **inputs)
    assert score.shape == (E,) and score.dtype == torch.float32 and torch.isfinite(score).all()
    keep = select_prune(score, geo.edge_index, N, n=E // 3, min_in_degree=2)
    assert int((~keep).sum()) <= E // 3
    assert (torch.bincount(geo.edge_index[1][keep], minlength=N) >= 2).all()
    # every setting is a config field (so plasticity.prune=<criterion> can set it)
    assert set(PRUNE_CRITERIA[criterion].settings) <= {f.name for f in fields(PlasticityConfig)}


def test_a_registered_or_passed_criterion_is_used():
    geo = grid(3, wiring=knn(2))
    E, N = geo.num_edges, geo.num_columns

    def longest_first(inputs, *, p: float = 1.0):
        return -inputs.length.pow(p)

    assert torch.equal(prune_scores(longest_first, geo.edge_index, N, length=geo.edge_length),
                       -geo.edge_length)
    register_prune("longest_first")(longest_first)
    try:
        assert PRUNE_CRITERIA.lookup(longest_first).name == "longest_first"
        assert PlasticityConfig("custom", prune="longest_first", p=2.0).prune == "longest_first"
        with pytest.warns(UserWarning, match="Replacing the prune criterion registered as "
                                             "'longest_first'"):
            register_prune("longest_first")(longest_first)
    finally:
        del PRUNE_CRITERIA["longest_first"]
    with pytest.raises(ValueError, match=r"Unknown prune criterion 'longest_first'. Choices: "
                                         + ", ".join(PRUNE_CRITERIA)):
        prune_scores("longest_first", geo.edge_index, N)
    with pytest.raises(ValueError, match=r"'attention' has no setting\(s\) p \(its settings: "
                                         r"none\)"):
        prune_scores("attention", geo.edge_index, N, attention=torch.rand(E), p=2.0)


def test_rank_within_target():
    dst = torch.tensor([0, 0, 0, 1, 1])
    rank = rank_within_target(dst, torch.tensor([0.1, 0.9, 0.5, 0.2, 0.3]), 2)
    assert rank.tolist() == [2, 0, 1, 1, 0]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(6, 40), k=st.integers(1, 5), frac=st.floats(0, 1),
       min_deg=st.integers(1, 3), seed=st.integers(0, 999))
def test_select_prune_never_strands_a_column(n, k, frac, min_deg, seed):
    k = min(k, n - 1)
    geo = from_coords(torch.rand(n, 2, generator=torch.Generator().manual_seed(seed)), knn(k))
    score = torch.rand(geo.num_edges, generator=torch.Generator().manual_seed(seed + 1))
    m = round(frac * geo.num_edges)
    keep = select_prune(score, geo.edge_index, n, m, min_in_degree=min_deg)
    deg = torch.bincount(geo.edge_index[1][keep], minlength=n)
    assert (deg >= torch.clamp(geo.in_degree(), max=min_deg)).all()
    removed = ~keep
    assert int(removed.sum()) <= m
    removable = rank_within_target(geo.edge_index[1], score, n) >= min_deg
    assert int(removed.sum()) == min(m, int(removable.sum()))
    if removed.any() and (keep & removable).any():  # only the weakest removable edges go
        assert score[removed].max() <= score[keep & removable].min()


@settings(max_examples=30, deadline=None)
@given(n=st.integers(8, 60), k=st.integers(2, 6), seed=st.integers(0, 999))
def test_reachability_tree_keeps_every_output_as_close(n, k, seed):
    g = torch.Generator().manual_seed(seed)
    geo = from_coords(torch.rand(n, 2, generator=g), uniform(k=min(k, n - 1), seed=seed))
    inputs, outputs = torch.arange(n // 4 + 1), torch.arange(n - n // 5 - 1, n)
    score = torch.rand(geo.num_edges, generator=g)
    protect = reachability_edges(geo.edge_index, n, inputs, outputs, score)
    before = hops_from(geo.edge_index, n, inputs)[outputs]
    after = hops_from(geo.edge_index[:, protect], n, inputs)[outputs]
    assert torch.equal(before, after)
    # and pruning everything else still leaves them reachable
    keep = select_prune(score, geo.edge_index, n, geo.num_edges, protect=protect)
    assert torch.equal(hops_from(geo.edge_index[:, keep], n, inputs)[outputs], before)


def test_select_prune_rejects_negative_counts():
    geo = grid(3, wiring=knn(2))
    with pytest.raises(ValueError, match="negative"):
        select_prune(torch.rand(geo.num_edges), geo.edge_index, 9, -1)

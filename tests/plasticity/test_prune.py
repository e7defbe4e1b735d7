from dataclasses import fields

import numpy as np
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
    with pytest.raises(ValueError, match=r"select_prune: expected 'n' to be an integer >= 0 "
                                         r"\(got -1\)"):
        select_prune(torch.rand(geo.num_edges), geo.edge_index, 9, -1)


# ------------------------------------------------------------- boundary checks (issue 21)
def _sheet():
    geo = grid(4, wiring=knn(4))
    return geo, geo.num_columns, geo.num_edges, geo.edge_index


@pytest.mark.parametrize("case, match", [
    ("score_short", r"select_prune: expected 'score' to be a tensor of shape \[64\] .* got \[5\]"),
    ("score_long", r"expected 'score' to be a tensor of shape \[64\] .* got \[69\]"),
    ("score_2d", r"got \[64, 1\]"),
    ("score_numpy", r"got ndarray"),
    ("score_nan", r"'score' holds NaN at 1 edge\(s\) \(e.g. edge 7\)"),
    ("score_bool", r"expected real-valued 'score'"),
    ("columns_small", r"expected 'edge_index' values in \[0, 2\] for num_columns=3 "
                      r"\(got min 0, max 15\)"),
    ("columns_zero", r"expected 'num_columns' to be an integer >= 1 \(got 0\)"),
    ("edges_3_rows", r"expected 'edge_index' to be a tensor of shape \[2, E\] \(got \[3, 64\]\)"),
    ("edges_negative", r"values in \[0, 15\] for num_columns=16 \(got min -1"),
    ("edges_float", r"integer column ids \(got torch.float32\)"),
    ("n_too_many", r"cannot prune n=65 edges from 64"),
    ("n_huge", r"cannot prune n=1000000000000 edges from 64"),
    ("n_huge_numpy", r"cannot prune n=18446744073709551615 edges from 64"),
    ("n_float_tensor", r"expected 'n' to be an integer >= 0 \(got tensor\(2.\)\)"),
    ("n_float", r"expected 'n' to be an integer >= 0 \(got 2.5\)"),
    ("n_bool", r"expected 'n' to be an integer >= 0 \(got True\)"),
    ("min_in_degree", r"expected 'min_in_degree' to be an integer >= 0 \(got -1\)"),
    ("protect_short", r"expected 'protect' to be a tensor of shape \[64\]"),
    ("protect_float", r"expected 'protect' to be a bool mask \(got torch.float32\)"),
])
def test_select_prune_refuses_bad_inputs(case, match):
    geo, N, E, ei = _sheet()
    score = torch.rand(E)
    nan = score.clone()
    nan[7] = float("nan")
    args = dict(score=score, edge_index=ei, num_columns=N, n=5)
    args.update({
        "score_short": {"score": score[:5]}, "score_long": {"score": torch.rand(E + 5)},
        "score_2d": {"score": score[:, None]}, "score_numpy": {"score": score.numpy()},
        "score_nan": {"score": nan}, "score_bool": {"score": score > 0.5},
        "columns_small": {"num_columns": 3}, "columns_zero": {"num_columns": 0},
        "edges_3_rows": {"edge_index": torch.cat([ei, ei[:1]])},
        "edges_negative": {"edge_index": ei - 1}, "edges_float": {"edge_index": ei.float()},
        "n_too_many": {"n": E + 1}, "n_float": {"n": 2.5}, "n_bool": {"n": True},
        "n_huge": {"n": 10 ** 12}, "n_huge_numpy": {"n": np.uint64(2 ** 64 - 1)},
        "n_float_tensor": {"n": torch.tensor(2.0)},
        "min_in_degree": {"min_in_degree": -1},
        "protect_short": {"protect": torch.zeros(3, dtype=torch.bool)},
        "protect_float": {"protect": torch.zeros(E)},
    }[case])
    with pytest.raises(ValueError, match=match):
        select_prune(**args)


def test_select_prune_takes_integer_likes_and_keeps_its_results():
    geo, N, E, ei = _sheet()
    score = torch.rand(E, generator=torch.Generator().manual_seed(3))
    keep = select_prune(score, ei, N, 5)
    assert torch.equal(select_prune(score, ei, N, torch.tensor(5)), keep)
    assert torch.equal(select_prune(score, ei, N, np.int64(5)), keep)
    assert int((~select_prune(score, ei, N, E, min_in_degree=0)).sum()) == E  # n = E: all


@pytest.mark.parametrize("case, match", [
    ("sink_out_of_range", r"reachability_edges: expected 'sinks' in \[0, 15\] for "
                          r"num_columns=16 \(got min 99"),
    ("source_out_of_range", r"expected 'sources' in \[0, 15\] .* \(got min 99"),
    ("sink_negative", r"expected 'sinks' in \[0, 15\] .* \(got min -1"),
    ("sources_empty", r"expected 'sources' to be a non-empty 1-D integer tensor .*\(got \[0\] "
                      r"torch.int64\)"),
    ("sinks_empty", r"expected 'sinks' to be a non-empty"),
    ("sources_float", r"'sources' to be a non-empty 1-D integer tensor of column ids \(got "
                      r"\[1\] torch.float32\)"),
    ("sources_list", r"\(got list\), e.g. model.input_index"),
    ("score_short", r"expected 'score' to be a tensor of shape \[64\]"),
    ("columns_small", r"expected 'edge_index' values in \[0, 2\] for num_columns=3"),
])
def test_reachability_edges_refuses_bad_inputs(case, match):
    geo, N, E, ei = _sheet()
    args = dict(edge_index=ei, num_columns=N, sources=torch.tensor([0]),
                sinks=torch.tensor([15]), score=torch.rand(E))
    args.update({
        "sink_out_of_range": {"sinks": torch.tensor([99])},
        "source_out_of_range": {"sources": torch.tensor([99])},
        "sink_negative": {"sinks": torch.tensor([-1])},
        "sources_empty": {"sources": torch.tensor([], dtype=torch.long)},
        "sinks_empty": {"sinks": torch.tensor([], dtype=torch.long)},
        "sources_float": {"sources": torch.tensor([0.0])}, "sources_list": {"sources": [0]},
        "score_short": {"score": torch.rand(3)}, "columns_small": {"num_columns": 3,
                                                                   "sinks": torch.tensor([2])},
    }[case])
    with pytest.raises(ValueError, match=match):
        reachability_edges(**args)


@pytest.mark.parametrize("criterion, kwargs, match", [
    ("attention", {"attention": torch.rand(3)}, r"prune_scores\('attention'\): expected "
                                                r"'attention' to be a tensor of shape \[64\]"),
    ("wiring", {"attention": torch.rand(64), "length": torch.rand(3)}, r"'length' .* \[64\]"),
    ("bias", {"bias": torch.rand(3, 2)}, r"expected 'bias' of shape \[E, H\] or \[S, E, H\] "
                                         r"with E = 64 \(got \[3, 2\]\)"),
    ("bias", {"bias": torch.rand(64)}, r"\(got \[64\]\)"),
    ("wiring", {"attention": torch.rand(64), "length": torch.rand(64), "p": float("nan")},
     r"p must be a finite number \(got nan\)"),
    ("wiring", {"attention": torch.full((64,), float("nan")), "length": torch.rand(64)},
     r"prune_scores\('wiring'\): 'attention' holds NaN at 64 edge"),
    (lambda inputs: torch.full((64,), float("nan")), {},
     r"prune_scores\('<lambda>'\): 'score' holds NaN at 64 edge\(s\)"),
    ("random", {"generator": 0}, r"expected 'generator' to be a torch.Generator"),
    (lambda inputs: torch.rand(3), {}, r"The prune criterion '<lambda>' returned \[3\]; a "
                                       r"criterion must return one keep-score per edge"),
])
def test_prune_scores_refuses_bad_inputs(criterion, kwargs, match):
    geo, N, E, ei = _sheet()
    with pytest.raises(ValueError, match=match):
        prune_scores(criterion, ei, N, **kwargs)
    with pytest.raises(ValueError, match=r"values in \[0, 2\] for num_columns=3"):
        prune_scores(criterion, ei, 3, **kwargs)

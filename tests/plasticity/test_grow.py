from dataclasses import fields

import numpy as np
import pytest
import torch

from colgraph import Columnformer
from colgraph.geometry import from_coords, grid, knn
from colgraph.plasticity import (GROW_RULES, PlasticityConfig, gradient_scores, grow_edges,
                                 register_grow, sample_candidates)


def _keys(ei, n):
    return (ei[1] * n + ei[0]).tolist()


@pytest.mark.parametrize("sources", ["uniform", "edr"])
def test_candidates_are_new_unique_and_canonical(sources):
    geo = grid(12, wiring=knn(8))
    n = geo.num_columns
    need = np.full(n, 5)
    cand = sample_candidates(geo.edge_index, geo.pos, need, sources,
                             np.random.default_rng(0), lam=2.0)
    keys = _keys(cand, n)
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert not set(keys) & set(_keys(geo.edge_index, n))
    assert (cand[0] != cand[1]).all()
    assert (torch.bincount(cand[1], minlength=n) <= 5).all()
    assert cand.size(1) > 0.9 * 5 * n


def test_geometric_growth_prefers_short_edges():
    geo = grid(30, wiring=knn(4))
    rng = np.random.default_rng(0)
    uni = grow_edges("random", 2000, geo.edge_index, geo.pos, rng=rng)
    edr = grow_edges("geometric", 2000, geo.edge_index, geo.pos, rng=rng, lam=2.0)
    length = lambda e: geo.measure(e[0], e[1]).mean()  # noqa: E731
    assert uni.size(1) == edr.size(1) == 2000
    assert length(edr) < 0.4 * length(uni)


def _recorded_loss(model, tokens, loss_fn):
    for s in model.blocks:
        s.attn.start_recording()
    out = model(tokens)
    loss_fn(out).backward()
    return [r for s in model.blocks for r in s.attn.stop_recording()]


@pytest.mark.parametrize("tied", [True, False])
def test_gradient_score_is_the_new_edges_logit_gradient(tied):
    """With logits = bias only (zero queries), a new edge with bias b gets attention alpha
    at every sample and step, and dL/db = alpha * sum g . (v_s - out_t): the score is
    -dL/db / alpha in the limit alpha -> 0."""
    torch.manual_seed(0)
    geo = grid(5, wiring=knn(4))
    model = Columnformer(geo, channels=8, steps=2, tied_depth=tied).double()
    for s in model.blocks:
        torch.nn.init.zeros_(s.attn.query.weight)
    tokens = torch.randn(4, 25, 8, dtype=torch.double)
    target = torch.randn(4, 25, 8, dtype=torch.double)
    loss_fn = lambda out: (out.state - target).pow(2).sum()  # noqa: E731
    records = _recorded_loss(model, tokens, loss_fn)
    cand = torch.tensor([[3, 24, 20], [0, 0, 7]])  # absent (long) edges, canonical order
    score = gradient_scores(records, cand, 25)
    # add the candidates with a very negative bias and measure dL/db with autograd
    edit = model.edges.edit(add=cand)
    b0 = -30.0
    for s in model.blocks:
        s.attn.edge_bias.data[edit.added_position] = b0
    model.zero_grad()
    loss_fn(model(tokens)).backward()
    grad = sum(s.attn.edge_bias.grad[edit.added_position, 0] for s in model.blocks)
    # alpha of a new edge into t: e^b0 / sum over t's other inputs of e^bias
    for j, (s_, t) in enumerate(cand.t().tolist()):
        sheet = model.blocks[0]
        into = (model.edges.index[1] == t).nonzero().flatten()
        others = into[into != edit.added_position[j]]
        alpha = np.exp(b0) / sheet.attn.edge_bias.detach()[others, 0].exp().sum()
        assert float(-grad[j] / alpha) == pytest.approx(float(score[j]), rel=1e-4)


def _needle_task(seed):
    """Column 0 must copy the token of column 24 (the far corner): one edge solves it."""
    torch.manual_seed(seed)
    geo = grid(5, wiring=knn(3))  # input = output = every column
    model = Columnformer(geo, channels=8, steps=1)
    tokens = torch.randn(64, 25, 8)
    out_col = 0

    def loss_fn(out):
        return (out.state[:, out_col] - tokens[:, 24]).pow(2).sum()

    return geo, model, tokens, loss_fn


def test_gradient_growth_finds_the_needed_long_edge():
    """The known-answer test: gradient growth picks 24 -> 0 out of ~21 candidate sources;
    random growth picks it about once in 21 tries."""
    found_gradient, found_random = 0, 0
    for seed in range(10):
        geo, model, tokens, loss_fn = _needle_task(seed)
        records = _recorded_loss(model, tokens, loss_fn)
        add = grow_edges("gradient", 1, model.edges.index, geo.pos,
                         rng=np.random.default_rng(seed), records=records, pool=24)
        found_gradient += add[:, 0].tolist() == [24, 0]
        # random growth into the same column
        into0 = [e for e in grow_edges("random", 400, model.edges.index, geo.pos,
                                       rng=np.random.default_rng(seed)).t().tolist()
                 if e[1] == 0]
        found_random += bool(into0) and into0[0] == [24, 0]
    assert found_gradient == 10
    assert found_random <= 3


def test_gradient_distance_prefers_short_among_helpful():
    geo, model, tokens, loss_fn = _needle_task(0)
    records = _recorded_loss(model, tokens, loss_fn)
    rng = np.random.default_rng(0)
    far = grow_edges("gradient", 5, model.edges.index, geo.pos, rng=rng, records=records,
                     pool=24)
    near = grow_edges("gradient_distance", 5, model.edges.index, geo.pos, rng=rng,
                      records=records, pool=24, lam=0.5, length_fn=geo.measure)
    assert far[:, 0].tolist() == [24, 0]  # the needle, far away
    assert geo.measure(*near).mean() < geo.measure(*far).mean()
    assert (near[1] == 0).all()  # still only edges that help


@pytest.mark.parametrize("rule", list(GROW_RULES))
def test_every_rule_grows_new_unique_edges_within_budget(rule):
    geo, model, tokens, loss_fn = _needle_task(0)
    n, index = geo.num_columns, model.edges.index
    records = _recorded_loss(model, tokens, loss_fn) if GROW_RULES[rule].records else None
    for budget in (0, 7, 40):
        add = grow_edges(rule, budget, index, geo.pos, rng=np.random.default_rng(0),
                         records=records, length_fn=geo.measure)
        keys = _keys(add, n)
        assert add.dim() == 2 and add.size(0) == 2 and add.dtype == torch.long
        assert add.size(1) <= budget and (budget == 0 or add.size(1) > 0)
        assert len(set(keys)) == len(keys) and not set(keys) & set(_keys(index, n))
        assert (add[0] != add[1]).all() and (add >= 0).all() and (add < n).all()
    model.edges.edit(add=add)  # the edge owner accepts what the rule grew
    model.edges.check()
    assert set(GROW_RULES[rule].settings) <= {f.name for f in fields(PlasticityConfig)}


def test_a_registered_or_passed_rule_is_used():
    geo = grid(4, wiring=knn(3))

    def into_zero(inputs, n):  # the first n absent sources of column 0
        have = set(inputs.edge_index[0, inputs.edge_index[1] == 0].tolist()) | {0}
        src = [s for s in range(inputs.pos.size(0)) if s not in have][:n]
        return torch.tensor([src, [0] * len(src)], dtype=torch.long)

    rng = np.random.default_rng(0)
    assert (grow_edges(into_zero, 3, geo.edge_index, geo.pos, rng=rng)[1] == 0).all()
    register_grow("into_zero")(into_zero)
    try:
        assert GROW_RULES.lookup("into_zero").settings == ()
        with pytest.raises(ValueError, match=r"plasticity.pool=4 does not apply to "
                                             r"plasticity.grow=into_zero \(its settings: none\)"):
            PlasticityConfig("custom", grow="into_zero", pool=4)
    finally:
        del GROW_RULES["into_zero"]
    with pytest.raises(ValueError, match=r"'random' has no setting\(s\) lam"):
        grow_edges("random", 3, geo.edge_index, geo.pos, rng=rng, lam=2.0)


def test_grow_errors_are_clear():
    geo = grid(4, wiring=knn(3))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="Unknown grow rule 'magic'. Choices"):
        grow_edges("magic", 3, geo.edge_index, geo.pos, rng=rng)
    with pytest.raises(ValueError, match="needs attention records"):
        grow_edges("gradient", 3, geo.edge_index, geo.pos, rng=rng)
    with pytest.raises(ValueError, match="no gradient"):
        gradient_scores([{"v": torch.zeros(16, 2), "out": torch.zeros(16, 2), "grad": None}],
                        torch.tensor([[1], [0]]), 16)
    with pytest.raises(ValueError, match="No attention records"):
        gradient_scores([], torch.tensor([[1], [0]]), 16)
    assert grow_edges("random", 0, geo.edge_index, geo.pos, rng=rng).shape == (2, 0)


def test_small_isolated_sheets_do_not_loop_forever():
    geo = from_coords(torch.rand(5, 2), knn(4))  # complete: no absent edge exists
    add = grow_edges("random", 3, geo.edge_index, geo.pos, rng=np.random.default_rng(0))
    assert add.size(1) == 0


# ------------------------------------------------------------- boundary checks (issue 21)
@pytest.mark.parametrize("case, match", [
    ("pos_short", r"grow_edges\('random'\): expected 'edge_index' values in \[0, 3\] for "
                  r"num_columns=4"),
    ("pos_1d", r"expected 'pos' to be a floating tensor of shape \[N, D\] .* got \[16\]"),
    ("pos_int", r"expected 'pos' to be a floating tensor .* torch.int64"),
    ("pos_nan", r"'pos' holds NaN/inf at 1 column\(s\) \(e.g. \[2\]\)"),
    ("edges_out_of_range", r"values in \[0, 15\] for num_columns=16 \(got min 100"),
    ("edges_negative", r"\(got min -1"),
    ("edges_3_rows", r"shape \[2, E\] \(got \[3, 64\]\)"),
    ("n_negative", r"expected 'n' to be an integer >= 0 \(got -3\)"),
    ("n_float", r"expected 'n' to be an integer >= 0 \(got 2.5\)"),
    ("rng_int", r"expected 'rng' to be a numpy Generator \(got int\)"),
    ("period_short", r"expected 'period' to hold one finite box size > 0 per dimension \(2\), "
                     r"got \[1.0\]"),
    ("period_zero", r"got \[4.0, 0.0\]"),
    ("length_fn", r"expected 'length_fn' to be a function"),
    ("lam_negative", r"grow rule 'geometric': lam must be a finite number > 0 \(got -1.0\)"),
    ("lam_nan", r"lam must be a finite number > 0 \(got nan\)"),
])
def test_grow_edges_refuses_bad_inputs(case, match):
    geo = grid(4, wiring=knn(4))
    ei, pos = geo.edge_index, geo.pos
    nan = pos.clone()
    nan[2, 0] = float("nan")
    rule, n, kwargs = "random", 5, dict(rng=np.random.default_rng(0))
    args = {"edge_index": ei, "pos": pos}
    change = {
        "pos_short": {"pos": pos[:4]}, "pos_1d": {"pos": pos[:, 0]},
        "pos_int": {"pos": pos.long()}, "pos_nan": {"pos": nan},
        "edges_out_of_range": {"edge_index": ei + 100}, "edges_negative": {"edge_index": ei - 1},
        "edges_3_rows": {"edge_index": torch.cat([ei, ei[:1]])},
        "n_negative": {"n": -3}, "n_float": {"n": 2.5}, "rng_int": {"rng": 0},
        "period_short": {"period": torch.tensor([1.0])},
        "period_zero": {"period": torch.tensor([4.0, 0.0])},
        "length_fn": {"length_fn": 3}, "lam_negative": {"lam": -1.0, "rule": "geometric"},
        "lam_nan": {"lam": float("nan"), "rule": "geometric"},
    }[case]
    rule = change.pop("rule", rule)
    n = change.pop("n", n)
    for k in ("edge_index", "pos"):
        if k in change:
            args[k] = change.pop(k)
    kwargs.update(change)
    with pytest.raises(ValueError, match=match):
        grow_edges(rule, n, args["edge_index"], args["pos"], **kwargs)


def test_grow_edges_checks_what_a_rule_returns():
    geo = grid(4, wiring=knn(4))
    rng = np.random.default_rng(0)
    for bad, match in [(lambda inputs, n: torch.zeros(3, 1, dtype=torch.long),
                        r"returned \[3, 1\]; a grow rule must return at most n = 2"),
                       (lambda inputs, n: torch.tensor([[0, 1, 2], [3, 4, 5]]),
                        r"returned \[2, 3\]"),
                       (lambda inputs, n: torch.tensor([[0], [99]]),
                        r"the edges grow rule '<lambda>' returned: expected 'edge_index' values "
                        r"in \[0, 15\]"),
                       (lambda inputs, n: torch.tensor([[4], [4]]),
                        r"returned self-edges \(e.g. column 4\)")]:
        with pytest.raises(ValueError, match=match):
            grow_edges(bad, 2, geo.edge_index, geo.pos, rng=rng)


def test_grow_edges_asking_for_more_than_exists_gives_what_exists():
    geo = grid(4, wiring=knn(4))  # 16 * 15 possible edges, 64 exist: 176 absent
    add = grow_edges("random", 10_000, geo.edge_index, geo.pos, rng=np.random.default_rng(0))
    assert add.size(1) == 176  # documented: at most n


@pytest.mark.parametrize("need, match", [
    (np.ones(3, int), r"expected 'need' to be 16 integers >= 0 .* got shape \[3\]"),
    (-np.ones(16, int), r"min -1"),
    (np.full(16, 0.5), r"float64"),
])
def test_sample_candidates_refuses_bad_needs(need, match):
    geo = grid(4, wiring=knn(4))
    with pytest.raises(ValueError, match=r"sample_candidates: .*" + match):
        sample_candidates(geo.edge_index, geo.pos, need, "uniform", np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"lam must be a finite number > 0 \(got 0.0\)"):
        sample_candidates(geo.edge_index, geo.pos, np.ones(16, int), "edr",
                          np.random.default_rng(0), lam=0.0)


def test_gradient_scores_refuses_mismatched_records():
    N = 16
    ok = {"v": torch.zeros(N, 2), "out": torch.zeros(N, 2), "grad": torch.zeros(N, 2)}
    with pytest.raises(ValueError, match=r"gradient_scores: expected 'edge_index' values in "
                                         r"\[0, 15\] for num_columns=16 \(got min 0, max 99\)"):
        gradient_scores([ok], torch.tensor([[99], [0]]), N)
    with pytest.raises(ValueError, match=r"record 0's 'v', 'out' and 'grad' to be tensors of one "
                                         r"shape \[N, F\] with N = 16 \(got \{'v': \(3, 2\)"):
        gradient_scores([{**ok, "v": torch.zeros(3, 2)}], torch.tensor([[1], [0]]), N)
    with pytest.raises(ValueError, match=r"record 0 is dict with keys \['out', 'v'\]"):
        gradient_scores([{"v": ok["v"], "out": ok["out"]}], torch.tensor([[1], [0]]), N)
    with pytest.raises(ValueError, match=r"The candidate pool must be an integer >= 1 per "
                                         r"column \(got 2.5\)"):
        from colgraph.plasticity.grow import check_pool

        check_pool(2.5, N)


HUGE = [10 ** 12, np.int64(10 ** 12), np.uint64(2 ** 64 - 1), torch.tensor(10 ** 12)]


@pytest.mark.parametrize("rule", list(GROW_RULES))
@pytest.mark.parametrize("n", HUGE, ids=lambda n: type(n).__name__)
def test_a_huge_n_is_clamped_to_the_room_without_allocating_it(rule, n):
    """n far beyond the sheet's room (N (N - 1) less its edges) asks for every absent
    edge: random / geometric return all of them, the gradient rules their whole pool; fast,
    and nothing of size n is allocated (numpy's allocations are traced)."""
    import time
    import tracemalloc

    geo, model, tokens, loss_fn = _needle_task(0)
    N, index = geo.num_columns, model.edges.index
    room = N * (N - 1) - index.size(1)
    records = _recorded_loss(model, tokens, loss_fn) if GROW_RULES[rule].records else None
    tracemalloc.start()
    start = time.perf_counter()
    try:
        add = grow_edges(rule, n, index, geo.pos, rng=np.random.default_rng(0),
                         records=records, length_fn=geo.measure,
                         **({"pool": 4} if records else {}))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 10 and peak < 50 * 2 ** 20
    keys = _keys(add, N)
    assert len(set(keys)) == len(keys) and not set(keys) & set(_keys(index, N))
    if GROW_RULES[rule].records:  # the pool: 4 candidate sources per column
        assert 0 < add.size(1) <= 4 * N
    else:
        assert add.size(1) == room


def test_the_room_counts_edges_not_self_edges():
    """A sheet with self-edges: they take no room from the N (N - 1) other pairs."""
    geo = grid(3, wiring=knn(2))
    loops = torch.arange(9).repeat(2, 1)
    index = torch.cat([geo.edge_index, loops], 1)
    add = grow_edges("random", 10 ** 9, index, geo.pos, rng=np.random.default_rng(0))
    assert add.size(1) == 9 * 8 - geo.num_edges
    assert grow_edges("random", 10 ** 9, torch.cat([index, add], 1), geo.pos,
                      rng=np.random.default_rng(0)).size(1) == 0  # full: nothing to grow


def test_n_below_the_room_keeps_its_draws():
    """The clamp touches only n beyond the room: below it, the same edges as before."""
    geo = grid(4, wiring=knn(4))
    room = 16 * 15 - geo.num_edges
    for rule in ("random", "geometric"):
        a = grow_edges(rule, room - 1, geo.edge_index, geo.pos, rng=np.random.default_rng(3))
        b = grow_edges(rule, np.int64(room - 1), geo.edge_index, geo.pos,
                       rng=np.random.default_rng(3))
        assert torch.equal(a, b) and a.size(1) <= room - 1


@pytest.mark.parametrize("n, match", [
    (True, r"got True"), (np.float64(3.0), r"got np.float64\(3.0\)|got 3.0"),
    (torch.tensor(2.0), r"got tensor\(2.\)"), (-(10 ** 12), r"got -1000000000000"),
    ("5", r"got '5'"), (None, r"got None"),
])
def test_grow_edges_counts_are_integers(n, match):
    geo = grid(4, wiring=knn(4))
    with pytest.raises(ValueError, match=r"grow_edges\('random'\): expected 'n' to be an "
                                         r"integer >= 0 \(" + match):
        grow_edges("random", n, geo.edge_index, geo.pos, rng=np.random.default_rng(0))


@pytest.mark.parametrize("sources", ["uniform", "edr"])
def test_sample_candidates_clamps_a_huge_need_to_every_other_column(sources):
    """A target has at most N - 1 sources: need beyond that is clamped, not allocated."""
    import time

    geo = grid(4, wiring=knn(4))
    start = time.perf_counter()
    for need in (np.full(16, 10 ** 12), np.full(16, 2 ** 64 - 1, np.uint64)):
        cand = sample_candidates(geo.edge_index, geo.pos, need, sources,
                                 np.random.default_rng(0), lam=2.0)
        per_target = torch.bincount(cand[1], minlength=16)
        assert (per_target <= 15 - 4).all() and cand.size(1) > 0
    assert time.perf_counter() - start < 10

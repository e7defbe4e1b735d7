import math

import pytest
import torch

from colgraph.geometry import grid, knn, line, radius
from colgraph.objectives import (smoothness_loss, topographic_smoothness, wiring_cost,
                                 wiring_length)


def local_and_uniform(geo):
    uniform = 1.0 / geo.in_degree()[geo.edge_index[1]].float()
    # all attention on each column's shortest incoming edge
    local = torch.zeros(geo.num_edges)
    for t in range(geo.num_columns):
        idx = (geo.edge_index[1] == t).nonzero().flatten()
        local[idx[geo.edge_length[idx].argmin()]] = 1.0
    return local.unsqueeze(1), uniform.unsqueeze(1)


def test_uniform_attention_costs_one_and_local_less():
    geo = grid(6, wiring=radius(2.5))
    local, uniform = local_and_uniform(geo)
    assert torch.isclose(wiring_cost([uniform], geo.edge_index, geo.edge_length), torch.tensor(1.0))
    assert wiring_cost([local], geo.edge_index, geo.edge_length) < 0.7
    assert torch.isclose(wiring_length([local], geo.edge_index, geo.edge_length), torch.tensor(1.0))


def test_cost_is_independent_of_sheet_size_and_units():
    small, big = grid(6, wiring=radius(1.5)), grid(30, wiring=radius(1.5))
    costs = []
    for geo in (small, big):
        local, _ = local_and_uniform(geo)
        costs.append(wiring_cost([local, local], geo.edge_index, geo.edge_length))
        scaled = wiring_cost([local], geo.edge_index, 10 * geo.edge_length)
        assert torch.isclose(costs[-1], scaled)
    assert abs(float(costs[0] - costs[1])) < 0.05


def _topographic_states(n=32, batch=64, channels=4):
    """Responses that vary smoothly along a line: column n sees a wave at phase 2 pi n / n."""
    phase = torch.linspace(0, 2 * math.pi, n + 1)[:-1]  # (N,)
    stim = torch.rand(batch, 1, 1) * 2 * math.pi  # a random stimulus position per sample
    return torch.cos(stim - phase.view(1, n, 1)).expand(batch, n, channels).contiguous()


def test_smoothness_loss_known_answers():
    geo = line(2, wiring=knn(k=1))
    same = torch.randn(16, 1, 3).expand(16, 2, 3)
    assert float(smoothness_loss(same, geo.edge_index, geo.edge_length, geo.pos, 1.0)) == 0.0
    geo = line(32, wiring=knn(k=2))
    state = _topographic_states()
    shuffled = state[:, torch.randperm(32, generator=torch.Generator().manual_seed(0))]
    args = (geo.edge_index, geo.edge_length, geo.pos, 1.0)
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    smooth = float(smoothness_loss(state, *args, generator=gen()))
    rough = float(smoothness_loss(shuffled, *args, generator=gen()))
    assert smooth < 0.3 and rough > 2.0 and rough > 5 * smooth
    m_smooth = topographic_smoothness(state, geo.edge_index, geo.edge_length, geo.pos,
                                      generator=gen())
    m_rough = topographic_smoothness(shuffled, geo.edge_index, geo.edge_length, geo.pos,
                                     generator=gen())
    assert m_smooth["smoothness"] > 0.8 and abs(m_rough["smoothness"]) < 0.3
    assert m_smooth["distance"].shape == m_smooth["correlation"].shape


def test_smoothness_loss_is_differentiable_and_checks_radius():
    geo = line(8, wiring=knn(k=2))
    state = torch.randn(4, 8, 3, requires_grad=True)
    smoothness_loss(state, geo.edge_index, geo.edge_length, geo.pos, 1.0).backward()
    assert state.grad is not None and torch.isfinite(state.grad).all()
    with pytest.raises(ValueError, match="shorter than every edge.*shortest edge is 1"):
        smoothness_loss(state, geo.edge_index, geo.edge_length, geo.pos, 0.5)


def test_activity_statistics():
    from colgraph import Columnformer

    geo = grid(4, wiring=knn(k=4))
    model = Columnformer(geo, channels=8, steps=3, activity_threshold=0.5)
    out = model(torch.randn(5, 16, 8))
    act = out.activity
    assert act.silent.shape == (3,) and act.active.shape == (3,)
    assert ((0 <= act.silent) & (act.silent <= 1)).all()
    assert ((0 <= act.active) & (act.active <= 16)).all()
    assert 0 < float(act.l1.detach()) <= 1.0 + 1e-6  # mean|x| / RMS(x) <= 1
    act.l1.backward()
    assert model.column_embed.grad is not None


@pytest.mark.parametrize("recompute", [False, True])
def test_activity_is_computed_only_when_read(recompute, monkeypatch):
    """A step that reads no statistic pays for none (no count, no norm); read, each equals
    its definition on the states after each step, and l1 trains through recompute."""
    from colgraph import Columnformer

    geo = grid(4, wiring=knn(k=4))
    model = Columnformer(geo, channels=8, steps=3, activity_threshold=0.5,
                         recompute=recompute)
    calls = []
    for name in ("count_nonzero",):
        real = getattr(torch, name)
        monkeypatch.setattr(torch, name, lambda *a, real=real, **k: calls.append(1) or real(*a, **k))
    states = []
    model.blocks[0].register_forward_hook(lambda m, i, o: states.append(o[0].detach()))
    out = model(torch.randn(5, 16, 8))
    out.output.sum().backward()
    assert calls == [] and out.activity._cache == {}
    states = states[:3]  # recompute runs each step again in backward
    act = out.activity
    for t, x in enumerate(states):
        rms = x.pow(2).mean().sqrt()
        assert torch.allclose(act.silent[t], (x.abs() < 0.5 * rms).float().mean())
        col_rms = x.pow(2).mean(-1).sqrt()  # (N, B)
        assert torch.allclose(act.active[t], (col_rms > 0.5 * rms).sum(0).float().mean())
    l1 = torch.stack([x.abs().mean() / x.pow(2).mean().sqrt() for x in states]).mean()
    assert torch.allclose(act.l1, l1)
    assert len(calls) == 3  # one count per step, once: later reads are cached
    act.silent, act.active
    assert len(calls) == 3


def test_smoothness_and_sparsity_train_and_are_logged(tmp_path):
    from colgraph.training import train

    from conftest import TINY, compose

    metrics = train(compose(TINY + ["train.max_steps=2", "smoothness.weight=0.5",
                                    "sparsity.weight=0.1"]), tmp_path)
    for key in ("smoothness", "silent", "active_columns"):
        assert math.isfinite(metrics[key]), key
    with pytest.raises(ValueError, match="smoothness needs weight >= 0, temperature > 0"):
        train(compose(TINY + ["smoothness.temperature=0"]), tmp_path / "b")


def test_activity_l1_trains_the_same_with_recompute():
    from colgraph import Columnformer

    geo = grid(4, wiring=knn(k=4))
    grads = []
    for recompute in (False, True):
        torch.manual_seed(0)
        model = Columnformer(geo, channels=8, steps=3, recompute=recompute)
        out = model(torch.randn(5, 16, 8))
        (out.output.pow(2).mean() + out.activity.l1).backward()
        grads.append(model.blocks[0].mlp.fc1.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)

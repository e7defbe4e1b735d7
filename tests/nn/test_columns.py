import pytest
import torch
from torch import nn

from colgraph.nn import ColumnDropout, ColumnLayerNorm, ColumnLinear, ColumnMLP, Sharing, keep_mask


def test_column_linear_equals_per_column_loop():
    lin = ColumnLinear(columns=5, in_features=3, out_features=4)
    x = torch.randn(5, 2, 3)  # (N, B, in)
    ref = torch.stack([x[n] @ lin.weight[n].t() + lin.bias[n] for n in range(5)])
    assert torch.allclose(lin(x), ref, atol=1e-6)
    assert lin.weight.shape == (5, 4, 3)


def test_column_linear_gradients_match_loop():
    lin = ColumnLinear(columns=4, in_features=3, out_features=2).double()
    x = torch.randn(4, 3, 3, dtype=torch.double, requires_grad=True)
    lin(x).pow(2).sum().backward()
    g_w, g_x = lin.weight.grad.clone(), x.grad.clone()
    lin.weight.grad = None
    x.grad = None
    ref = torch.stack([x[n] @ lin.weight[n].t() + lin.bias[n] for n in range(4)])
    ref.pow(2).sum().backward()
    assert torch.allclose(g_w, lin.weight.grad) and torch.allclose(g_x, x.grad)


def test_tied_column_linear_matches_nn_linear():
    shared = nn.Linear(6, 3)
    lin = ColumnLinear(columns=7, in_features=6, out_features=3)
    with torch.no_grad():
        lin.weight.copy_(shared.weight.expand(7, -1, -1))
        lin.bias.copy_(shared.bias.expand(7, -1))
    x = torch.randn(7, 4, 6)
    assert torch.allclose(lin(x), shared(x), atol=1e-6)


def test_columns_own_their_parameters():
    lin = ColumnLinear(columns=3, in_features=4, out_features=4)
    assert not torch.allclose(lin.weight[0], lin.weight[1])  # initialised independently


def test_column_layer_norm_matches_layer_norm_when_tied():
    ln = ColumnLayerNorm(columns=3, channels=8)
    ref = nn.LayerNorm(8)
    with torch.no_grad():
        ref.weight.uniform_()
        ref.bias.uniform_()
        ln.weight.copy_(ref.weight.expand(3, -1))
        ln.bias.copy_(ref.bias.expand(3, -1))
    x = torch.randn(3, 2, 8)
    assert torch.allclose(ln(x), ref(x), atol=1e-6)


def test_mlp_shape_and_repr():
    mlp = ColumnMLP(columns=3, channels=8, hidden=16)
    assert mlp(torch.randn(3, 2, 8)).shape == (3, 2, 8)
    assert repr(mlp) == "ColumnMLP(columns=3, channels=8, hidden=16)"
    assert repr(mlp.fc1) == "ColumnLinear(columns=3, in=8, out=16, bias=True)"


def test_keep_mask_is_bernoulli_and_seeded():
    for p in (0.0, 0.2, 0.5, 0.9):
        mask = keep_mask((1000, 1000), p)
        assert mask.dtype == torch.bool and mask.shape == (1000, 1000)
        assert abs(float(mask.float().mean()) - (1 - p)) < 3e-3
    mask = keep_mask((400_000,), 0.5).float()
    assert abs(float((mask[1:] * mask[:-1]).mean()) - 0.25) < 3e-3  # neighbours independent
    assert abs(float((mask[4:] * mask[:-4]).mean()) - 0.25) < 3e-3  # lanes of one draw too
    assert keep_mask((7,), 0.5).shape == (7,)  # sizes that are not a multiple of four
    torch.manual_seed(3)
    a = keep_mask((5, 6), 0.3)
    torch.manual_seed(3)
    assert torch.equal(a, keep_mask((5, 6), 0.3))


def test_column_dropout_matches_nn_dropout_in_law():
    drop = ColumnDropout(0.5)
    x = torch.ones(4, 8, 16)
    a, b = drop(x), drop(x)
    assert not torch.equal(a, b)  # a fresh mask per call, as nn.Dropout
    assert set(a.unique().tolist()) <= {0.0, 2.0}  # kept units are scaled by 1 / (1 - p)
    assert abs(float(drop(torch.ones(1000, 100)).mean()) - 1.0) < 0.02  # unbiased
    x = torch.randn(3, 4, 5, requires_grad=True)
    y = drop(x)
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() * 2.0)  # gradient flows through kept units
    drop.eval()
    assert torch.equal(drop(x), x)
    assert repr(drop) == "ColumnDropout(p=0.5)"
    with pytest.raises(ValueError, match=r"Dropout probability must be in \[0, 1\) \(got 1.0\)"):
        ColumnDropout(1.0)


def test_column_linear_gradcheck():
    for bias in (True, False):
        lin = ColumnLinear(columns=3, in_features=4, out_features=2, bias=bias).double()
        x = torch.randn(3, 5, 4, dtype=torch.double, requires_grad=True)
        params = (x, lin.weight) + ((lin.bias,) if bias else ())
        from colgraph.nn.columns import _ColumnMatmul

        assert torch.autograd.gradcheck(
            lambda x, w, *b: _ColumnMatmul.apply(x, w, b[0] if b else None), params)


# ---------------------------------------------------------------- weight sharing



def test_full_sharing_is_one_linear_for_every_column():
    lin = ColumnLinear(5, 4, 3, sharing=Sharing("full"))
    x = torch.randn(1, 2, 4).expand(5, 2, 4)  # the same input at every column
    y = lin(x)
    assert lin.weight.shape == (1, 3, 4) and torch.allclose(y, y[:1].expand_as(y))
    assert torch.allclose(y[0], torch.nn.functional.linear(x[0], lin.weight[0], lin.bias[0]))


def test_lowrank_starts_shared_and_learns_per_column_corrections():
    lin = ColumnLinear(5, 4, 3, sharing=Sharing("lowrank", rank=2))
    x = torch.randn(1, 2, 4).expand(5, 2, 4)
    with torch.no_grad():
        lin.bias.copy_(lin.bias[:1].expand_as(lin.bias))
    assert torch.allclose(lin(x), lin(x)[:1].expand(5, 2, 3), atol=1e-6)  # U = 0 at init
    with torch.no_grad():
        lin.u.normal_()
    y = lin(x)
    w = lin.weight[0] + lin.u[3] @ lin.v[3].T  # column 3's effective weight
    assert torch.allclose(y[3], x[3] @ w.T + lin.bias[3], atol=1e-5)
    assert not torch.allclose(y[3], y[0])


def test_group_sharing_ties_columns_of_a_group():
    groups = torch.tensor([2, 2, 7, 7, 7])  # any ids: renumbered 0, 1
    lin = ColumnLinear(5, 4, 3, sharing=Sharing("groups", groups=groups))
    norm = ColumnLayerNorm(5, 4, sharing=Sharing("groups", groups=groups))
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(1, 2, 4).expand(5, 2, 4)
    y = lin(norm(x))
    assert lin.weight.shape == (2, 3, 4) and lin.group.tolist() == [0, 0, 1, 1, 1]
    assert torch.allclose(y[0], y[1]) and torch.allclose(y[2], y[4])
    assert not torch.allclose(y[0], y[2])


def test_sharing_errors():
    with pytest.raises(ValueError, match="Unknown weight sharing 'tied'. Choices: none, full"):
        Sharing("tied")
    with pytest.raises(ValueError, match="sharing_rank must be >= 1"):
        Sharing("lowrank", rank=0)
    with pytest.raises(ValueError, match="2 group ids for 3 columns"):
        ColumnLinear(3, 2, 2, sharing=Sharing("groups", groups=torch.tensor([0, 1])))


def test_columnformer_parameter_counts_by_sharing():
    from colgraph import Columnformer
    from colgraph.geometry import knn, stack

    geo = stack([4, 3, 2], wiring=knn(6))
    counts = {}
    for mode in ("none", "full", "lowrank", "groups"):
        model = Columnformer(geo, channels=8, steps=2, sharing=mode)
        counts[mode] = sum(p.numel() for p in model.parameters())
        out = model(torch.randn(2, 16, 8))
        out.output.sum().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert counts["full"] < counts["groups"] < counts["lowrank"] < counts["none"]


def _sheet_loss(model, x):
    out = model(x)
    return out.output.pow(2).sum() + sum(a.pow(2).sum() for a in out.attention)


def test_weight_gradients_accumulate_in_place_and_equal_autograd(monkeypatch):
    """Recurrent uses of a weight add straight into .grad; every way of asking for
    gradients gives what autograd gives."""
    from colgraph import Columnformer
    from colgraph.geometry import grid, knn
    from colgraph.nn import columns

    calls = []
    real = columns._accumulates_in_place
    monkeypatch.setattr(columns, "_accumulates_in_place",
                        lambda p: calls.append(real(p)) or calls[-1])
    torch.manual_seed(0)
    geo = grid(5, wiring=knn(6))
    model = Columnformer(geo, channels=8, steps=3).double()
    x = torch.randn(4, geo.area("input").numel(), 8, dtype=torch.double)
    params = list(model.parameters())
    ref = torch.autograd.grad(_sheet_loss(model, x), params)  # the engine's own sums
    assert calls and not any(calls)  # autograd.grad: never in place
    calls.clear()
    _sheet_loss(model, x).backward()
    assert all(calls)  # every per-column weight use went in place
    assert all(torch.allclose(p.grad, r) for p, r in zip(params, ref))
    _sheet_loss(model, x).backward()  # accumulation across backward passes
    assert all(torch.allclose(p.grad, 2 * r) for p, r in zip(params, ref))
    model.zero_grad(set_to_none=True)
    model.config.recompute = True  # re-run steps in backward: same sums
    _sheet_loss(model, x).backward()
    assert all(torch.allclose(p.grad, r) for p, r in zip(params, ref))
    # a hook on a weight must see its whole gradient once: autograd's path
    w = model.blocks[0].mlp.fc1.weight
    i = next(j for j, p in enumerate(params) if p is w)
    seen = []
    handle = w.register_hook(lambda g: seen.append(g.clone()))
    model.zero_grad(set_to_none=True)
    _sheet_loss(model, x).backward()
    handle.remove()
    assert len(seen) == 1 and torch.allclose(seen[0], ref[i]) and torch.allclose(w.grad, ref[i])
    model.zero_grad(set_to_none=True)
    _sheet_loss(model, x).backward(inputs=[w])  # only w's gradient is wanted
    assert torch.allclose(w.grad, ref[i])
    assert all(p.grad is None for p in params if p is not w)


@pytest.mark.parametrize("mode", ["none", "full", "lowrank", "groups"])
def test_column_layer_norm_equals_layer_norm_per_column(mode):
    """The hand-written norm (saves x, not the normalised x) == F.layer_norm + affine per
    column: values and gradients, for every sharing mode."""
    sharing = Sharing(mode, groups=torch.tensor([0, 1, 0, 1, 1]) if mode == "groups" else None)
    norm = ColumnLayerNorm(5, 4, sharing=sharing).double()
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(5, 3, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(norm, (x,))
    rows = {"full": [0] * 5, "groups": [0, 1, 0, 1, 1]}.get(mode, list(range(5)))
    w, b = norm.weight[rows], norm.bias[rows]
    ref = torch.stack([torch.nn.functional.layer_norm(x[n], (4,), w[n], b[n]) for n in range(5)])
    assert torch.allclose(norm(x), ref)
    g = torch.randn_like(ref)
    got = torch.autograd.grad(norm(x), [x, norm.weight, norm.bias], g)
    want = torch.autograd.grad(ref, [x, norm.weight, norm.bias], g)
    assert all(torch.allclose(a, b) for a, b in zip(got, want))


@pytest.mark.parametrize("mode", ["none", "full", "lowrank", "groups"])
def test_bf16_weights_equal_fp32_on_rounded_inputs(mode):
    """bf16 weights: the layer equals the fp32 layer on bf16-rounded weights and inputs
    (up to the bf16 rounding of the output), returns fp32, and its weight gradients are
    bf16 and equal fp32's within bf16 precision."""
    torch.manual_seed(0)
    sharing = Sharing(mode, groups=torch.tensor([0, 1, 0, 1, 1]) if mode == "groups" else None)
    lin = ColumnLinear(5, 6, 4, sharing=sharing).to(torch.bfloat16)
    ref = ColumnLinear(5, 6, 4, sharing=sharing)
    ref.load_state_dict(lin.state_dict())  # the same (rounded) values in fp32
    x = torch.randn(5, 3, 6, requires_grad=True)
    x_ref = x.detach().to(torch.bfloat16).float().requires_grad_()
    y, y_ref = lin(x), ref(x_ref)
    assert y.dtype == torch.float32 and y.shape == y_ref.shape
    assert torch.allclose(y, y_ref, rtol=2e-2, atol=2e-2)
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    assert x.grad.dtype == torch.float32
    assert torch.allclose(x.grad, x_ref.grad, rtol=2e-2, atol=2e-2)
    for (name, p), q in zip(lin.named_parameters(), ref.parameters()):
        assert p.dtype == p.grad.dtype == torch.bfloat16, name
        err = (p.grad.float() - q.grad).norm() / q.grad.norm().clamp_min(1e-6)
        assert err < 2e-2, (name, float(err))

import torch
from torch import nn

from colgraph.nn import ColumnLayerNorm, ColumnLinear, ColumnMLP


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


def test_column_linear_gradcheck():
    for bias in (True, False):
        lin = ColumnLinear(columns=3, in_features=4, out_features=2, bias=bias).double()
        x = torch.randn(3, 5, 4, dtype=torch.double, requires_grad=True)
        params = (x, lin.weight) + ((lin.bias,) if bias else ())
        from colgraph.nn.columns import _ColumnMatmul

        assert torch.autograd.gradcheck(
            lambda x, w, *b: _ColumnMatmul.apply(x, w, b[0] if b else None), params)

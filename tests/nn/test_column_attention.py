import pytest
import torch

from colgraph.geometry import grid, knn, radius
from colgraph.nn import ColumnAttention, SheetEdges


def run(backend, geo, heads=2, value_proj=False, qk_dim=None):
    torch.manual_seed(0)
    attn = ColumnAttention(SheetEdges(geo), 8, heads=heads, qk_dim=qk_dim,
                           value_proj=value_proj, backend=backend).double()
    torch.manual_seed(1)
    x = torch.randn(geo.num_columns, 3, 8, dtype=torch.double, requires_grad=True)
    out, alpha = attn(x)
    (out.pow(2).sum() + alpha.pow(2).sum()).backward()
    grads = {n: p.grad for n, p in attn.named_parameters()}
    return out, alpha, x.grad, grads


@pytest.mark.parametrize("wiring", [knn(5), radius(1.5)], ids=["knn", "radius"])
@pytest.mark.parametrize("heads,value_proj,qk_dim", [(1, False, None), (2, True, 3)])
@pytest.mark.parametrize("other", ["pyg", "dense"])
def test_sparse_equals_reference(wiring, heads, value_proj, qk_dim, other):
    """Sparse kernels == PyG MessagePassing == dense masked softmax: outputs AND gradients."""
    geo = grid(6, wiring=wiring)
    out, alpha, gx, grads = run("sparse", geo, heads, value_proj, qk_dim)
    out2, alpha2, gx2, grads2 = run(other, geo, heads, value_proj, qk_dim)
    assert torch.allclose(out, out2) and torch.allclose(alpha, alpha2)
    assert torch.allclose(gx, gx2)
    for name in grads:
        assert torch.allclose(grads[name], grads2[name]), f"gradient of {name} differs"


def test_attention_sums_to_one_per_column():
    geo = grid(5, wiring=radius(1.5))
    attn = ColumnAttention(SheetEdges(geo), 8, heads=2)
    _, alpha = attn(torch.randn(25, 4, 8))
    total = torch.zeros(25, 2).index_add(0, geo.edge_index[1], alpha)
    assert alpha.shape == (geo.num_edges, 2)
    assert torch.allclose(total, torch.ones(25, 2), atol=1e-5)


def test_edge_bias_initialised_from_length():
    geo = grid(5, wiring=radius(2.9))
    attn = ColumnAttention(SheetEdges(geo), 4, bias_sigma=1.0, bias_clamp=3.0)
    expected = (-geo.edge_length.pow(2) / 2).clamp(min=-3.0)
    assert torch.allclose(attn.edge_bias[:, 0], expected)
    assert attn.edge_bias.min() == -3.0  # clamped


def test_heads_must_divide_channels():
    geo = grid(3, wiring=knn(2))
    with pytest.raises(ValueError, match="'heads' must divide 'channels' .*channels=10, heads=3"):
        ColumnAttention(SheetEdges(geo), 10, heads=3)


def test_repr_is_short():
    geo = grid(4, wiring=knn(3))
    r = repr(ColumnAttention(SheetEdges(geo), 8, heads=2))
    assert r == ("ColumnAttention(columns=16, channels=8, heads=2, qk_dim=4, edges=48, "
                 "backend='sparse')")


@pytest.mark.parametrize("kwargs,match", [({"bias_sigma": 0.0}, "bias_sigma must be > 0"),
                                          ({"bias_sigma": -1.0}, "bias_sigma must be > 0"),
                                          ({"bias_clamp": -1.0}, "bias_clamp must be a finite")])
def test_bad_bias_prior_is_refused_not_replaced(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ColumnAttention(SheetEdges(grid(3, wiring=knn(2))), 4, **kwargs)


@pytest.mark.parametrize("backend", ["sparse", "pyg", "dense"])
def test_weights_only_when_asked(backend):
    torch.manual_seed(0)
    attn = ColumnAttention(SheetEdges(grid(5, wiring=radius(1.5))), 8, heads=2,
                           backend=backend)
    x = torch.randn(25, 3, 8)
    out, alpha = attn(x)
    out2, none = attn(x, need_weights=False)
    assert alpha.shape == (attn.num_edges, 2) and none is None
    assert torch.equal(out, out2)

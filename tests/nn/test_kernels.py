import pytest
import torch

from colgraph import Columnformer, ColumnformerConfig
from colgraph.geometry import grid, knn, radius
from colgraph.nn import KERNELS, ColumnAttention, SheetEdges, get_kernel, register_kernel
from colgraph.nn.kernels import dense_attention, sparse_attention

from conftest import fit

SHEETS = {"knn": knn(5), "radius": radius(1.5)}  # constant and variable in-degree


def inputs(wiring, B=3, H=2, D=3, Ch=4):
    """Leaf q, k, v [N, B, H, .] and bias [E, H] (double) on a 5 x 5 sheet."""
    edges = SheetEdges(grid(5, wiring=SHEETS[wiring]))
    g = torch.Generator().manual_seed(0)
    N, E = edges.num_columns, edges.num_edges
    shapes = {"q": (N, B, H, D), "k": (N, B, H, D), "v": (N, B, H, Ch), "bias": (E, H)}
    return edges, {name: torch.randn(*s, generator=g, dtype=torch.double, requires_grad=True)
                   for name, s in shapes.items()}


def call(kernel, edges, t, dropout=lambda a: a, need_weights=True):
    return kernel(t["q"], t["k"], t["v"], edges, t["bias"], dropout, need_weights=need_weights)


def grads(out, weights, t):
    loss = out.pow(2).sum() + (weights.pow(2).sum() if weights is not None else 0)
    return torch.autograd.grad(loss, list(t.values()))


@pytest.mark.parametrize("wiring", SHEETS)
@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_matches_dense_reference(name, wiring):
    """Every registered kernel == the dense masked softmax: output, weights and gradients."""
    edges, t = inputs(wiring)
    out, weights = call(get_kernel(name), edges, t)
    ref, ref_weights = call(dense_attention, edges, t)
    assert out.shape == ref.shape and weights.shape == (edges.num_edges, 2)
    assert torch.allclose(out, ref) and torch.allclose(weights, ref_weights)
    for (key, g), g_ref in zip(zip(t, grads(out, weights, t)), grads(ref, ref_weights, t)):
        assert g.abs().sum() > 0, f"No gradient for {key} ({name})"
        assert torch.allclose(g, g_ref), f"gradient of {key} differs ({name})"


@pytest.mark.parametrize("name", list(KERNELS))
def test_weights_only_when_asked(name):
    """need_weights=False: no weights, the same output, and gradients for q, k, v, bias."""
    edges, t = inputs("radius")
    out, weights = call(get_kernel(name), edges, t)
    out2, none = call(get_kernel(name), edges, t, need_weights=False)
    assert none is None and torch.equal(out, out2)
    for key, g in zip(t, grads(out2, None, t)):
        assert g.abs().sum() > 0, f"No gradient for {key} ({name})"


@pytest.mark.parametrize("name", list(KERNELS))
def test_dropout_weights_the_values_not_the_returned_weights(name):
    edges, t = inputs("knn")
    out, weights = call(get_kernel(name), edges, t)
    half, same = call(get_kernel(name), edges, t, dropout=lambda a: a * 0.5)
    assert torch.allclose(half, 0.5 * out) and torch.equal(weights, same)


def test_sparse_kernel_skips_the_batch_mean(monkeypatch):
    edges, t = inputs("radius")
    block = type(edges.csr().block(3, 2))

    def refuse(*args):
        raise AssertionError("batch mean computed although no weights were asked for")

    monkeypatch.setattr(block, "batch_mean", refuse)
    out, weights = call(sparse_attention, edges, t, need_weights=False)
    assert weights is None and out.shape == (25, 3, 2, 4)


def test_get_kernel_takes_a_name_or_a_callable():
    assert get_kernel("sparse") is sparse_attention
    assert get_kernel(dense_attention) is dense_attention
    with pytest.raises(ValueError, match=r"Unknown attention kernel 'x'\. Choices: sparse, pyg, "
                                         r"dense\. Add one with .*register_kernel\('x'\)"):
        get_kernel("x")
    with pytest.raises(TypeError, match="Expected an attention kernel name or a callable"):
        get_kernel(3)
    with pytest.raises(TypeError, match="non-empty name"):
        register_kernel("")


@pytest.fixture
def counting():
    """A third-party kernel (the sparse maths, counting calls), registered for one test."""
    calls = []

    @register_kernel("counting")
    def counting_kernel(q, k, v, edges, bias, dropout, need_weights):
        calls.append(need_weights)
        return sparse_attention(q, k, v, edges, bias, dropout, need_weights)

    yield calls
    del KERNELS["counting"]


def test_a_registered_kernel_runs_the_model_unchanged(counting):
    """A new kernel is a config value: the model trains with it, no model code changes."""
    geo = grid(5, wiring=knn(6))
    models = {}
    for backend in ("sparse", "counting"):
        torch.manual_seed(0)
        model = Columnformer(geo, ColumnformerConfig(channels=8, steps=2, backend=backend))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        torch.manual_seed(1)
        fit(model, opt, (4, 25, 8), steps=3)
        models[backend] = model
    assert counting == [True] * 6  # 3 batches x 2 steps, weights asked for
    assert "backend='counting'" in repr(models["counting"].blocks[0].attn)
    for (name, p), q in zip(models["sparse"].named_parameters(), models["counting"].parameters()):
        assert torch.equal(p, q), f"{name} differs"
    models["counting"](torch.randn(2, 25, 8), need_attention=False)
    assert counting[-2:] == [False, False]


def test_the_config_accepts_a_registered_kernel(counting):
    assert ColumnformerConfig(backend="counting").backend == "counting"


def test_reregistering_a_name_warns(counting):
    with pytest.warns(UserWarning, match="Replacing the attention kernel registered as"):
        register_kernel("counting")(sparse_attention)


def test_a_kernel_that_breaks_the_contract_is_named():
    geo = grid(4, wiring=knn(3))

    def no_weights(q, k, v, edges, bias, dropout, need_weights):
        return sparse_attention(q, k, v, edges, bias, dropout, False)

    attn = ColumnAttention(SheetEdges(geo), 8, heads=2, backend=no_weights)
    assert attn(torch.randn(16, 2, 8), need_weights=False)[1] is None
    with pytest.raises(RuntimeError, match=r"Attention kernel 'no_weights' returned out "
                                           r"\[16, 2, 2, 4\] and weights None; expected out "
                                           r"\[16, 2, 2, 4\] and weights \[48, 2\]"):
        attn(torch.randn(16, 2, 8))

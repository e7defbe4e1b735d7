import pytest
import torch

from colgraph import Columnformer, ColumnformerConfig
from colgraph.geometry import grid, knn, stack

GEO = stack([4, 3, 2], spacing=2.0, wiring=knn(k=6))

VARIANTS = {
    "default": {},
    "heads_qk": {"heads": 2, "qk_dim": 4},
    "value_proj": {"value_proj": True},
    "no_skip": {"skip": False},
    "inject_every": {"inject": "every"},
    "no_step_embedding": {"step_embedding": False},
    "untied_depth": {"tied_depth": False},
    "dropout": {"dropout": 0.1, "attn_dropout": 0.1},
    "pyg_backend": {"backend": "pyg"},
}


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_shapes(name):
    model = Columnformer(GEO, channels=8, steps=3, **VARIANTS[name])
    out = model(torch.randn(2, 16, 8))
    assert out.output.shape == (2, 4, 8) and out.state.shape == (2, 29, 8)
    assert len(out.attention) == 3
    assert all(a.shape == (GEO.num_edges, model.config.heads) for a in out.attention)
    assert torch.isfinite(out.state).all(), f"NaN in {name}"


@pytest.mark.parametrize("name", VARIANTS)
def test_every_parameter_gets_a_gradient(name):
    model = Columnformer(GEO, channels=8, steps=3, **VARIANTS[name])
    out = model(torch.randn(2, 16, 8))
    (out.output.pow(2).mean() + sum(a.pow(2).sum() for a in out.attention)).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"No gradient for {pname} ({name})"


def test_tied_depth_shares_one_sheet():
    tied = Columnformer(GEO, channels=8, steps=4)
    untied = Columnformer(GEO, channels=8, steps=4, tied_depth=False)
    assert len(tied.blocks) == 1 and len(untied.blocks) == 4
    n_tied = sum(p.numel() for p in tied.blocks.parameters())
    assert sum(p.numel() for p in untied.blocks.parameters()) == 4 * n_tied


def test_sparse_model_equals_dense_model():
    geo = grid(5, wiring=knn(6))
    torch.manual_seed(0)
    sparse = Columnformer(geo, channels=8, steps=2, heads=2).double()
    dense = Columnformer(geo, channels=8, steps=2, heads=2, backend="dense").double()
    dense.load_state_dict(sparse.state_dict())
    x = torch.randn(3, 25, 8, dtype=torch.double)
    assert torch.allclose(sparse(x).state, dense(x).state)


@pytest.mark.parametrize("recompute", [False, True])
def test_attention_only_when_asked(recompute):
    """need_attention=False: attention is None; states and gradients are the same floats."""
    model = Columnformer(GEO, channels=8, steps=3, heads=2, recompute=recompute)
    x = torch.randn(2, 16, 8)
    results = []
    for need in (True, False):
        model.zero_grad()
        out = model(x, need_attention=need)
        out.output.pow(2).mean().backward()
        results.append((out, [p.grad.clone() for p in model.parameters()]))
    (full, grads), (lean, lean_grads) = results
    assert len(full.attention) == 3 and lean.attention is None
    assert torch.equal(full.state, lean.state)
    assert all(torch.equal(a, b) for a, b in zip(grads, lean_grads))


def test_inject_every_uses_tokens_each_step():
    model = Columnformer(GEO, channels=8, steps=2, inject="every", skip=False)
    model.eval()
    x = torch.randn(1, 16, 8)
    first = Columnformer(GEO, channels=8, steps=2, inject="first", skip=False)
    first.load_state_dict(model.state_dict())
    first.eval()
    assert not torch.allclose(model(x).state, first(x).state)


def test_token_shape_mismatch_is_explained():
    model = Columnformer(GEO, channels=8, steps=2)
    with pytest.raises(ValueError, match=r"tokens of shape \[B, 16, 8\].*got \[2, 15, 8\]"):
        model(torch.randn(2, 15, 8))


def test_heads_must_divide_channels_in_config():
    with pytest.raises(ValueError, match="model.heads"):
        ColumnformerConfig(channels=10, heads=4)


def test_unknown_option_lists_choices():
    with pytest.raises(TypeError, match="Unknown Columnformer option.*chanels"):
        Columnformer(GEO, chanels=8)


def test_unknown_input_area():
    with pytest.raises(KeyError, match="Unknown area 'retina'"):
        Columnformer(GEO, channels=8, input_area="retina")


def _saved_bytes(fn) -> int:
    """Bytes autograd keeps for backward while ``fn`` runs (outside checkpointed regions)."""
    total = []

    def pack(t):
        total.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(total), out


@pytest.mark.parametrize("tied_depth", [True, False])
def test_recompute_equals_storing_and_keeps_less(tied_depth):
    geo = stack([6, 4], wiring=knn(8))
    models = []
    for recompute in (False, True):
        torch.manual_seed(0)
        models.append(Columnformer(geo, channels=16, steps=3, heads=2, value_proj=True,
                                   dropout=0.3, tied_depth=tied_depth,
                                   recompute=recompute).train())
    tokens = torch.randn(4, 36, 16)
    saved, grads = [], []
    for model in models:
        torch.manual_seed(1)  # the same dropout masks; recompute must replay them exactly
        n, out = _saved_bytes(lambda: model(tokens))
        loss = out.output.pow(2).mean() + sum(a.pow(2).sum() for a in out.attention)
        loss.backward()
        saved.append(n)
        grads.append({k: p.grad for k, p in model.named_parameters()})
        assert all(g is not None for g in grads[-1].values())
    for k in grads[0]:
        assert torch.allclose(grads[0][k], grads[1][k], atol=1e-6), f"gradient of {k} differs"
    assert saved[1] < 0.5 * saved[0], saved


def test_recompute_is_off_in_eval_and_for_recording_steps():
    model = Columnformer(stack([4, 2], wiring=knn(5)), channels=8, steps=2, recompute=True)
    with torch.no_grad():
        model(torch.randn(2, 16, 8))  # no graph: nothing to recompute
    for sheet in model.blocks:
        sheet.attn.start_recording()
    model(torch.randn(2, 16, 8)).output.sum().backward()
    records = model.blocks[0].attn.stop_recording()
    assert len(records) == 2 and all(r["grad"] is not None for r in records)  # once per step


@pytest.mark.parametrize("key,value", [("dropout", 1.0), ("dropout", -0.1),
                                       ("attn_dropout", float("nan"))])
def test_bad_dropout_is_refused_in_the_config(key, value):
    with pytest.raises(ValueError, match=rf"model.{key} must be in \[0, 1\)"):
        ColumnformerConfig(**{key: value})


def test_bf16_weights_halve_the_matmul_weights_and_track_fp32():
    """model.weight_dtype=bfloat16: every per-column matmul weight (and so its gradient)
    is bf16, everything else fp32; the model tracks the fp32 model holding the same
    (rounded) weights, forward and backward, with the in-place gradient path on."""
    torch.manual_seed(0)
    half = Columnformer(GEO, channels=16, steps=3, value_proj=True, weight_dtype="bfloat16")
    full = Columnformer(GEO, channels=16, steps=3, value_proj=True)
    full.load_state_dict(half.state_dict())
    dtypes = {n: p.dtype for n, p in half.named_parameters()}
    matmul = {n for n in dtypes if any(f".{m}." in n for m in ("fc1", "fc2", "query", "key", "value", "out"))}
    assert matmul and all(dtypes[n] == torch.bfloat16 for n in matmul)
    assert all(d == torch.float32 for n, d in dtypes.items() if n not in matmul)
    assert sum(p.numel() for n, p in half.named_parameters() if n in matmul) > 0.8 * sum(
        p.numel() for p in half.parameters())
    tokens = torch.randn(4, 16, 16)
    outs = [m(tokens) for m in (half, full)]
    assert outs[0].state.dtype == torch.float32
    rel = (outs[0].state - outs[1].state).norm() / outs[1].state.norm()
    assert rel < 2e-2, float(rel)
    for m, out in zip((half, full), outs):
        (out.output.pow(2).mean() + sum(a.pow(2).sum() for a in out.attention)).backward()
    for (name, p), q in zip(half.named_parameters(), full.parameters()):
        assert p.grad.dtype == p.dtype, name
        err = (p.grad.float() - q.grad).norm() / q.grad.norm().clamp_min(1e-6)
        assert err < 5e-2, (name, float(err))


def test_weight_dtype_is_checked():
    with pytest.raises(ValueError, match="model.weight_dtype must be one of float32, bfloat16"):
        ColumnformerConfig(weight_dtype="float16")


def test_checkpoints_that_call_the_blocks_sheets_still_load():
    """The recurrent step's module was once called ``Sheet`` (``model.sheets``): a state
    dict with those keys loads into ``model.blocks``, inside a task too."""
    model = Columnformer(GEO, channels=8, steps=3, tied_depth=False)
    old = {k.replace("blocks.", "sheets.", 1): v for k, v in model.state_dict().items()}
    assert any(k.startswith("sheets.2.") for k in old)
    fresh = Columnformer(GEO, channels=8, steps=3, tied_depth=False)
    fresh.load_state_dict(old)
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in model.state_dict().items()
               if torch.is_tensor(v))
    holder, again = torch.nn.Module(), torch.nn.Module()
    holder.columnformer, again.columnformer = model, Columnformer(GEO, channels=8, steps=3,
                                                                  tied_depth=False)
    again.load_state_dict({k.replace(".blocks.", ".sheets."): v
                           for k, v in holder.state_dict().items()})
    assert torch.equal(again.columnformer.blocks[1].attn.edge_bias,
                       model.blocks[1].attn.edge_bias)

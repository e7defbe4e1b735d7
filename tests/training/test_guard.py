"""The non-finite guard: one check of loss and gradients, then clipping."""
import pytest
import torch
from torch import nn

from colgraph.training.guard import check_and_clip


def _model_with_grads(scale: float = 1.0) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
    loss = model(torch.randn(16, 4)).pow(2).mean() * scale
    loss.backward()
    return model, loss


@pytest.mark.parametrize("max_norm", [0.0, 0.01, 1e6])
def test_clips_like_clip_grad_norm(max_norm):
    model, loss = _model_with_grads(scale=100.0)
    ref, _ = _model_with_grads(scale=100.0)
    assert check_and_clip(loss, model, max_norm) is None
    if max_norm:
        torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm)  # same 1e-6 guard
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def test_non_finite_loss_is_named_and_gradients_are_left_alone():
    model, loss = _model_with_grads()
    before = [p.grad.clone() for p in model.parameters()]
    assert check_and_clip(loss * float("nan"), model, 1e-3) == "the loss is nan (on some rank)"
    assert all(torch.equal(a, p.grad) for a, p in zip(before, model.parameters()))


def test_non_finite_gradient_names_the_first_tensor():
    model, loss = _model_with_grads()
    model[1].weight.grad[0, 3] = float("inf")
    assert check_and_clip(loss, model, 1.0) == "gradient of 1.weight (1 of 8 values non-finite)"


def test_one_host_synchronisation_per_step(monkeypatch):
    """The happy path reads back one flag tensor: no .item() / bool() per check."""
    model, loss = _model_with_grads()
    reads = []
    for name in ("item", "tolist", "__bool__"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name,
                            lambda self, *a, _real=real, _name=name, **k:
                            reads.append(_name) or _real(self, *a, **k))
    check_and_clip(loss, model, 1.0)
    assert reads == ["tolist"]

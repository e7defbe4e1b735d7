"""The CUDA path: the same kernels (torch's CSR ops run on CUDA) give what the CPU gives.
Skipped on machines without a GPU."""
import pytest
import torch

from colgraph import Columnformer
from colgraph.geometry import grid, knn, radius

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("wiring", [knn(6), radius(1.5)], ids=["constant-degree", "variable"])
def test_cuda_step_equals_cpu(wiring):
    geo = grid(6, wiring=wiring)
    torch.manual_seed(0)
    cpu = Columnformer(geo, channels=8, steps=3, heads=2).double()
    gpu = Columnformer(geo, channels=8, steps=3, heads=2).double().cuda()
    gpu.load_state_dict(cpu.state_dict())
    tokens = torch.randn(4, geo.area("input").numel(), 8, dtype=torch.double)
    results = []
    for model, x in ((cpu, tokens), (gpu, tokens.cuda())):
        out = model(x)
        (out.output.pow(2).sum() + sum(a.pow(2).sum() for a in out.attention)).backward()
        results.append((out.state.cpu(), {n: p.grad.cpu() for n, p in model.named_parameters()}))
    (s_cpu, g_cpu), (s_gpu, g_gpu) = results
    assert torch.allclose(s_cpu, s_gpu)
    for name in g_cpu:
        assert torch.allclose(g_cpu[name], g_gpu[name]), name


@cuda
def test_cuda_activity_and_output_equal_cpu():
    """The activity statistics (computed when read) and the output area's states on the GPU
    as on the CPU."""
    geo = grid(6, wiring=knn(6))
    torch.manual_seed(0)
    cpu = Columnformer(geo, channels=8, steps=3, heads=2, recompute=True).double()
    gpu = Columnformer(geo, channels=8, steps=3, heads=2, recompute=True).double().cuda()
    gpu.load_state_dict(cpu.state_dict())
    tokens = torch.randn(4, geo.area("input").numel(), 8, dtype=torch.double)
    outs = [model(x) for model, x in ((cpu, tokens), (gpu, tokens.cuda()))]
    for name in ("l1", "silent", "active"):
        a, b = (getattr(o.activity, name) for o in outs)
        assert b.device.type == "cuda" and torch.allclose(a, b.cpu()), name
    assert torch.allclose(outs[0].output, outs[1].output.cpu())
    for model, out in zip((cpu, gpu), outs):
        (out.output.sum() + out.activity.l1).backward()
    for (name, p), q in zip(cpu.named_parameters(), gpu.parameters()):
        assert torch.allclose(p.grad, q.grad.cpu()), name

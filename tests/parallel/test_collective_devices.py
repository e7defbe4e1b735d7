"""Every tensor handed to a collective lives on the backend's device: under NCCL (chosen on
CUDA) collectives take CUDA tensors only, so a CPU tensor there fails at the first metric
reduction of a multi-GPU run. Checked with the collectives patched to record the device
they are given (this machine has no GPU: a stand-in device plays CUDA's part)."""
import pytest
import torch
import torch.distributed as dist

from colgraph.distributed import Distributed
from colgraph.parallel import ColumnShard, shard as shard_module

STAND_IN = torch.device("meta")  # plays the NCCL device


class Seen(Exception):
    pass


def _record(seen):
    def collective(tensor, *args, **kwargs):
        seen.append(tensor.device)
        raise Seen  # values on the stand-in device cannot be read back: stop here
    return collective


@pytest.mark.parametrize("call", [
    lambda r: r.sum({"loss": 1.0, "acc": 3.0}),
    lambda r: r.mean_tensor(torch.ones(3)),
])
def test_data_parallel_reductions_use_the_backend_device(monkeypatch, call):
    ranks = Distributed(rank=0, world=2)
    ranks.device = STAND_IN
    seen = []
    monkeypatch.setattr(dist, "all_reduce", _record(seen))
    with pytest.raises(Seen):
        call(ranks)
    assert seen == [STAND_IN]


def test_column_shard_counts_use_the_backend_device(monkeypatch):
    shard = ColumnShard([0, 4, 8], rank=0)
    seen = []
    monkeypatch.setattr(dist, "all_reduce", _record(seen))
    monkeypatch.setattr(shard_module, "collective_device", lambda group=None: STAND_IN)
    with pytest.raises(Seen):
        shard.total(3)
    assert seen == [STAND_IN]


def test_nccl_means_the_current_cuda_device(monkeypatch):
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert shard_module.collective_device() == torch.device("cuda", 1)
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "gloo")
    assert shard_module.collective_device() == torch.device("cpu")

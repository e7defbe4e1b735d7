"""Sharded checkpoints (torch.distributed.checkpoint): a sheet saved on 2 processes loads on
3 processes and whole on one, parameters and AdamW moments equal; damaged or malicious
files are refused before anything is read."""
import datetime
import os
import pickle

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from colgraph import Columnformer
from colgraph.geometry import grid, knn
from colgraph.parallel import ColumnShard, owned_state
from colgraph.parallel.checkpoint import ShardsDamaged, load_shards, save_shards

KW = dict(channels=8, steps=2)

from conftest import free_port


def _geo():
    return grid(6, wiring=knn(k=5))



def _join(rank, world, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))


def _trained(model):
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    torch.manual_seed(3)
    tokens = torch.randn(2, model.input_index.numel(), 8)
    out = model(tokens)
    loss = model.shard.sum(out.output.pow(2).sum()) + out.activity.l1
    model.shard.loss(loss).backward()
    model.shard.sync_replicated(model)
    opt.step()
    return opt


def _save(rank, world, port, out):
    """A sheet on 2 processes, one AdamW step, saved; the reference is the same step on one
    process from the same weights (equal up to float order: tests/parallel/test_shard.py)."""
    _join(rank, world, port)
    torch.manual_seed(0)
    whole = Columnformer(_geo(), **KW)
    model = Columnformer(_geo(), shard=ColumnShard([0, 10, 36], rank), **KW)
    model.load_state_dict(owned_state(model, whole.state_dict()))
    opt = _trained(model)
    info = save_shards(f"{out}/shards", model, opt)
    if rank == 0:
        whole_opt = _trained(whole)
        torch.save({"info": info, "whole": whole.state_dict(),
                    "moments": whole_opt.state_dict()}, f"{out}/ref.pt")
    dist.destroy_process_group()


def _load(rank, world, port, out, bounds):
    _join(rank, world, port)
    ref = torch.load(f"{out}/ref.pt", weights_only=True)
    model = Columnformer(_geo(), shard=ColumnShard(bounds, rank), **KW)
    _load_whole_part(model, ref["whole"])
    load_shards(f"{out}/shards", ref["info"], model)
    mine = owned_state(model, ref["whole"])
    for key, t in model.state_dict().items():
        if torch.is_tensor(t):
            assert torch.allclose(t, mine[key], atol=1e-6, rtol=1e-5), key
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    load_shards(f"{out}/shards", ref["info"], model, opt)
    _check_moments(model, opt, ref)
    dist.destroy_process_group()


def _load_whole_part(model, whole):
    """What a checkpoint keeps outside the shards: every tensor that is not rows of columns
    or edges (the step embedding, encoders, readouts; buffers)."""
    from colgraph.parallel.state import row_kinds

    rows = row_kinds(model)[0]
    model.load_state_dict({k: v for k, v in whole.items() if k not in rows}, strict=False)


def _check_moments(model, opt, ref):
    from colgraph.parallel import owned_optimizer_state

    want = owned_optimizer_state(model, opt, ref["moments"], ref["whole"]["edges.index"])
    params = [p for g in opt.param_groups for p in g["params"]]
    checked = 0
    for i, entry in want["state"].items():
        for name, v in entry.items():
            if torch.is_tensor(v) and v.dim() and v.shape == params[int(i)].shape and \
                    name in opt.state[params[int(i)]]:
                assert torch.allclose(opt.state[params[int(i)]][name], v, atol=1e-6,
                                      rtol=1e-5), (i, name)
                checked += 1
    assert checked >= 10


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded")
    mp.spawn(_save, args=(2, free_port(), str(out)), nprocs=2, join=True)
    return out


def test_saved_on_two_processes_loads_on_three(saved):
    mp.spawn(_load, args=(3, free_port(), str(saved), [0, 5, 20, 36]), nprocs=3, join=True)


def test_saved_on_two_processes_loads_whole_on_one(saved):
    ref = torch.load(saved / "ref.pt", weights_only=True)
    model = Columnformer(_geo(), **KW)
    _load_whole_part(model, ref["whole"])
    load_shards(saved / "shards", ref["info"], model)
    for key, t in model.state_dict().items():
        if torch.is_tensor(t):
            assert torch.allclose(t, ref["whole"][key], atol=1e-6, rtol=1e-5), key
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    load_shards(saved / "shards", ref["info"], model, opt)
    _check_moments(model, opt, ref)


def _copy(saved, tmp_path):
    import shutil

    shutil.copytree(saved / "shards", tmp_path / "shards")
    return tmp_path / "shards", torch.load(saved / "ref.pt", weights_only=True)


def test_a_changed_shard_file_is_refused_before_reading(saved, tmp_path):
    shards, ref = _copy(saved, tmp_path)
    victim = next(p for p in shards.iterdir() if p.suffix == ".distcp")
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 1
    victim.write_bytes(bytes(data))
    with pytest.raises(ShardsDamaged, match="changed since it was written"):
        load_shards(shards, ref["info"], Columnformer(_geo(), **KW))


def test_a_missing_shard_file_is_refused(saved, tmp_path):
    shards, ref = _copy(saved, tmp_path)
    next(p for p in shards.iterdir() if p.suffix == ".distcp").unlink()
    with pytest.raises(ShardsDamaged, match="does not hold the files"):
        load_shards(shards, ref["info"], Columnformer(_geo(), **KW))


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/colgraph_pwned",))


def test_metadata_that_would_run_code_is_refused(saved, tmp_path):
    from colgraph.parallel.checkpoint import read_metadata

    shards, ref = _copy(saved, tmp_path)
    (shards / ".metadata").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(ShardsDamaged, match="could run code"):
        read_metadata(shards / ".metadata")
    assert not os.path.exists("/tmp/colgraph_pwned")


def test_metadata_with_a_non_tensor_entry_is_refused(saved, tmp_path):
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata

    from colgraph.parallel.checkpoint import ALLOWED_GLOBALS, read_metadata

    shards, _ = _copy(saved, tmp_path)
    meta = pickle.loads((shards / ".metadata").read_bytes())  # our own file: trusted here
    meta.state_dict_metadata["model.column_embed"] = BytesStorageMetadata()
    (shards / ".metadata").write_bytes(pickle.dumps(meta))
    assert ("torch.distributed.checkpoint.metadata", "BytesStorageMetadata") not in \
        ALLOWED_GLOBALS
    with pytest.raises(ShardsDamaged):
        read_metadata(shards / ".metadata")

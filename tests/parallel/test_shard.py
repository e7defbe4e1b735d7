"""Column sharding: a sheet split over 2 processes (gloo) computes the one-process sheet's
loss, and every gradient, row for row; the halo exchange's backward returns gradients to
their owners."""
import datetime
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from colgraph import Columnformer
from colgraph.geometry import exponential, grid, knn, random_sheet, stack, union
from colgraph.parallel import ColumnShard, HaloPlan, exchange, owned_state

from conftest import compose, free_port


def _run(worker, world: int = 2, *args) -> None:
    mp.spawn(worker, args=(world, free_port(), *args), nprocs=world, join=True)


def _join(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # a collective that one process never reaches fails the test instead of hanging it
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))


GEOMETRIES = {
    "grid_knn": lambda: grid(6, wiring=knn(k=5)),
    "stack": lambda: stack([6, 4, 3], spacing=2.0, wiring=knn(k=6)),
    "random_edr": lambda: random_sheet(40, seed=1, input_size=12, output_size=6,
                                       wiring=union(knn(k=4), exponential(m=3, lam=3.0))),
}
MODELS = {
    "plain": dict(),
    "heads_value_proj": dict(heads=2, value_proj=True, tied_depth=False, inject="every"),
    "recompute": dict(recompute=True),
    "bf16": dict(weight_dtype="bfloat16"),
    "lowrank": dict(sharing="lowrank", sharing_rank=2),
    "groups": dict(sharing="groups"),
    "full": dict(sharing="full"),
    "pyg": dict(backend="pyg"),
    "dense": dict(backend="dense"),
}


def _close(a: torch.Tensor, b: torch.Tensor, tol: float, what: str) -> None:
    """Equal up to float order: within ``tol`` of the reference's largest magnitude."""
    assert a.shape == b.shape, what
    err, scale = float((a.float() - b.float()).abs().max()), float(b.float().abs().max())
    assert err <= tol * max(scale, 1.0), f"{what}: max error {err:.3g} (scale {scale:.3g})"


def _loss(model: Columnformer, tokens: torch.Tensor) -> torch.Tensor:
    """Output states, the activity penalty and attention x length: each a sum over the
    whole sheet (all-reduced on a sharded one)."""
    out = model(tokens)
    shard = model.shard
    wiring = sum((a.sum(1) * model.edges.length).sum() for a in out.attention)
    return (shard.sum(out.output.pow(2).sum()) + out.activity.l1 + shard.sum(wiring)
            + out.activity.silent.sum() * 0)


def _equivalence_worker(rank: int, world: int, port: int, geometries, models) -> None:
    _join(rank, world, port)
    for gname in geometries:
        geo = GEOMETRIES[gname]()
        N = geo.num_columns
        bounds = torch.linspace(0, N, world + 1).round().long()
        for mname in models:
            kwargs = dict(channels=8, steps=3, **MODELS[mname])
            torch.manual_seed(0)
            whole = Columnformer(geo, **kwargs)
            shard = ColumnShard(bounds, rank)
            torch.manual_seed(1)  # a different init: everything must come from the state
            part = Columnformer(geo, shard=shard, **kwargs)
            part.load_state_dict(owned_state(part, whole.state_dict()))
            n_in = whole.input_index.numel()
            torch.manual_seed(2)
            tokens = torch.randn(3, n_in, 8)
            if MODELS[mname].get("inject") == "every":
                tokens = torch.randn(3, 3, n_in, 8)
            loss = _loss(whole, tokens)
            loss.backward()
            sharded = _loss(part, tokens)
            shard.loss(sharded).backward()
            shard.sync_replicated(part)
            what = f"{gname}/{mname} rank {rank}"
            tol = 2e-2 if mname == "bf16" else 2e-6
            _close(sharded, loss, tol, what)
            ours = dict(part.named_parameters())
            grads = {k: p.grad for k, p in whole.named_parameters()}
            reference = owned_state(part, {**grads, "edges.index": whole.edges.index})
            assert set(ours) == set(grads), what
            for key, p in ours.items():
                _close(p.grad, reference[key], tol, f"{what}: gradient of {key}")
    dist.destroy_process_group()


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_two_column_shards_compute_the_one_process_loss_and_gradients(geometry):
    _run(_equivalence_worker, 2, [geometry], list(MODELS))


def test_three_uneven_shards_of_a_stack():
    _run(_equivalence_worker, 3, ["stack"], ["plain", "heads_value_proj"])


def _halo_worker(rank: int, world: int, port: int) -> None:
    _join(rank, world, port)
    # a ring of 6 columns over 2 processes; every column reads its two neighbours
    src = torch.tensor([5, 1, 0, 2, 1, 3, 2, 4, 3, 5, 4, 0])
    dst = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    shard = ColumnShard([0, 3, 6], rank)
    mine = (dst >= shard.lo) & (dst < shard.hi)
    plan = HaloPlan.build(torch.stack([src[mine], dst[mine]]), shard)
    assert plan.recv.tolist() == ([3, 5] if rank == 0 else [0, 2])
    assert plan.recv_counts == ([0, 2] if rank == 0 else [2, 0])
    assert (plan.send + shard.lo).tolist() == ([0, 2] if rank == 0 else [3, 5])
    x = (torch.arange(3.0) + shard.lo).view(3, 1).requires_grad_()
    (ext,) = exchange(plan, shard, x)
    assert ext.flatten().tolist() == ([0, 1, 2, 3, 5] if rank == 0 else [3, 4, 5, 0, 2])
    # the gradient of a halo row reaches its owner and adds to the owner's own
    ext.backward(torch.tensor([[1.0], [1], [1], [10], [100]]))
    assert x.grad.flatten().tolist() == ([11, 1, 101] if rank == 0 else [11, 1, 101])
    dist.destroy_process_group()


def test_halo_plan_and_exchange_on_a_ring():
    _run(_halo_worker, 2)


def test_one_process_is_the_whole_sheet():
    geo = grid(4, wiring=knn(k=4))
    model = Columnformer(geo, channels=8, steps=2)
    shard = model.shard
    assert (shard.parts, shard.lo, shard.hi, shard.enabled) == (1, 0, 16, False)
    assert model.edges.local_index is model.edges.index  # no copy, no renumbering
    assert model.edges.halo().num_halo == 0
    x = torch.randn(16, 1)
    assert exchange(model.edges.halo(), shard, x)[0] is x
    state = model.state_dict()
    assert owned_state(model, state) is state


@pytest.mark.parametrize("bounds, error", [
    ([0, 5, 5, 10], "strictly increasing"), ([1, 10], r"\[0, b1"), ([0], r"\[0, b1"),
])
def test_bad_bounds_are_refused(bounds, error):
    with pytest.raises(ValueError, match=error):
        ColumnShard(bounds)


def test_a_shard_of_another_sheet_is_refused():
    with pytest.raises(ValueError, match="covers 10 columns but the geometry has 16"):
        Columnformer(grid(4, wiring=knn(k=4)), channels=8, shard=ColumnShard([0, 10]))


TASK_CONFIGS = {
    "classify_image": ["task=classify_image", "geometry.widths=[8,4]", "geometry.wiring.k=6"],
    "classify_image_max": ["task=classify_image", "geometry.widths=[8,4]",
                           "geometry.wiring.k=6", "task.pool=max"],
    "masked_image": ["+experiment=mim", "task.mask_ratio=0.25"],
    "predict_sequence": ["task=predict_sequence", "data=waves", "data.samples=40",
                         "geometry=line", "geometry.n=16", "model.steps=3"],
}


def _task_worker(rank: int, world: int, port: int, names) -> None:
    from colgraph.geometry import build_geometry
    from colgraph.objectives import wiring_cost
    from colgraph.restore import build_model, load_task_data

    _join(rank, world, port)
    for name in names:
        cfg = compose(["model.channels=8", "model.steps=2", "model.dropout=0", "device=cpu",
                       *TASK_CONFIGS[name]])
        data = load_task_data(cfg)
        x, y = data.x_train[:4], data.y_train[:4]
        shape, classes = tuple(x.shape[1:]), data.num_classes
        geo = build_geometry(cfg.geometry)
        bounds = torch.linspace(0, geo.num_columns, world + 1).round().long()
        shard = ColumnShard(bounds, rank)
        torch.manual_seed(0)
        whole = build_model(cfg, geo, shape, classes)
        part = build_model(cfg, geo, shape, classes, shard=shard)
        part.load_state_dict(owned_state(part, whole.state_dict()))
        results = []
        for model in (whole, part):
            torch.manual_seed(3)  # the same masks
            res = model(x, y)
            edges = model.columnformer.edges
            loss = res.loss + 0.1 * wiring_cost(res.out.attention, edges.index, edges.length,
                                                shard=edges.shard)
            edges.shard.loss(loss).backward()
            edges.shard.sync_replicated(model)
            results.append((loss, res.stats))
        (loss, stats), (sharded, sharded_stats) = results
        what = f"{name} rank {rank}"
        _close(sharded, loss, 2e-6, what)
        for key in stats:
            _close(sharded_stats[key].float(), stats[key].float(), 2e-6, f"{what}: {key}")
        grads = {k: p.grad for k, p in whole.named_parameters()}
        reference = owned_state(part, {**grads, "columnformer.edges.index":
                                       whole.columnformer.edges.index})
        for key, p in part.named_parameters():
            _close(p.grad, reference[key], 2e-6, f"{what}: gradient of {key}")
    dist.destroy_process_group()


def test_every_task_on_two_column_shards_equals_one_process():
    """Each built-in task's loss, statistics and every gradient (encoder, sheet, readout)
    with the wiring cost, on 2 column shards (output areas split between them)."""
    _run(_task_worker, 2, list(TASK_CONFIGS))


def _random_worker(rank: int, world: int, port: int) -> None:
    _join(rank, world, port)
    geo = grid(6, wiring=knn(k=5))
    shard = ColumnShard([0, 10, 36], rank)  # uneven: different numbers of dropout draws
    torch.manual_seed(0)
    model = Columnformer(geo, channels=8, steps=2, dropout=0.3, attn_dropout=0.2,
                         shard=shard)
    torch.manual_seed(1)  # building drew each process's own rows: the streams start equal here
    tokens = torch.randn(2, model.input_index.numel(), 8)
    draws = []
    for _ in range(2):
        model(tokens)
        draws.append(torch.rand(4))  # the shared stream after a forward with dropout
    every = [torch.empty(8) for _ in range(world)]
    dist.all_gather(every, torch.cat(draws))
    assert all(torch.equal(every[0], e) for e in every)
    # each process drew its own masks: dropped units differ between the processes
    torch.manual_seed(5)
    with shard.own_random():
        mine = torch.rand(16)
    dist.all_gather(every := [torch.empty(16) for _ in range(world)], mine)
    assert not torch.equal(every[0], every[1])
    dist.destroy_process_group()


def test_dropout_draws_per_process_and_keeps_the_shared_stream_in_step():
    """Masked-patch masks and augmentation come from the default stream, which must stay
    the same on every process of a column group although each draws its own dropout."""
    _run(_random_worker, 2)
